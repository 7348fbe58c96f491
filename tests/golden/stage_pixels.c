/*
 * stage_pixels.c - pixels.safetensors: crop.{i} / nocrop.{i} (CLIPImageProcessor with and
 * without the centre crop) for every image, nb_aa.{i} / nb_noaa.{i} (the notebooks' torchvision
 * transform, S = vision image_size) for the images the manifest lists them for (RGB files).
 */
#include "golden.h"

#include "../../src/core/core.h"

#include <stdio.h>

static int manifest_has(const struct golden_ctx *g, const char *name)
{
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(g->manifest, "files");
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(files, "pixels.safetensors");
    return cJSON_GetObjectItemCaseSensitive(spec, name) != NULL;
}

static enum medvlm_status add_one(struct medvlm_st_writer *w, const char *name,
                                  const struct medvlm_image *img,
                                  const struct medvlm_preproc_config *pp,
                                  const struct medvlm_preprocess_options *opt)
{
    int h, wd;
    enum medvlm_status st = medvlm_image_preprocess_size(img->width, img->height, pp, opt, &h, &wd);
    if (st) return st;
    size_t n = (size_t)3 * h * wd;
    float *buf = mv_malloc(n * sizeof *buf);
    if (!buf) return MEDVLM_ERR_NOMEM;
    st = medvlm_image_preprocess(img, pp, opt, buf, n, &h, &wd);
    if (!st) {
        int64_t shape[3] = {3, h, wd};
        st = medvlm_st_writer_add(w, name, MEDVLM_DTYPE_F32, 3, shape, buf);
    }
    mv_free(buf);
    return st;
}

enum medvlm_status golden_stage_pixels(struct golden_ctx *g)
{
    struct medvlm_model *m;
    enum medvlm_status st = golden_model(g, &m);
    if (st) return st;
    const struct medvlm_preproc_config *pp = medvlm_model_preproc(m);
    int S = medvlm_model_config(m)->vision.image_size;
    struct medvlm_st_writer *w = NULL;
    if ((st = medvlm_st_writer_init(&w))) return st;
    int n = golden_image_count(g);
    for (int i = 0; i < n && !st; i++) {
        char *path = golden_image_path(g, i), name[32];
        struct medvlm_image img = {0};
        if (!path) {
            st = mv_err(MEDVLM_ERR_FORMAT, "manifest.json: images[%d] has no \"file\"", i);
            break;
        }
        st = medvlm_image_decode_file(path, NULL, &img);
        struct medvlm_preprocess_options o;
        medvlm_preprocess_options_default(&o);
        if (!st) {
            o.center_crop = 1;
            snprintf(name, sizeof name, "crop.%d", i);
            st = add_one(w, name, &img, pp, &o);
        }
        if (!st) {
            o.center_crop = 0;
            snprintf(name, sizeof name, "nocrop.%d", i);
            st = add_one(w, name, &img, pp, &o);
        }
        o.pipeline = MEDVLM_PREPROCESS_TUTORIAL;
        o.size = S;
        for (int aa = 1; aa >= 0 && !st; aa--) {
            snprintf(name, sizeof name, "%s.%d", aa ? "nb_aa" : "nb_noaa", i);
            if (!manifest_has(g, name)) continue;
            o.antialias = aa;
            st = add_one(w, name, &img, pp, &o);
        }
        medvlm_image_free(&img);
        mv_free(path);
    }
    if (!st) st = golden_save(g, w, "pixels.safetensors");
    medvlm_st_writer_free(w);
    return st;
}

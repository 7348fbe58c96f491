/*
 * synth.c - a small labelled image set made from nothing, for demos and end-to-end tests:
 * H&E-like JPEG tiles whose colour and texture statistics depend on the class, plus a
 * SICAPv2-style label table (image_name + one-hot class columns).
 *
 * Class c gets a base stain colour moved along a pink -> purple axis, a nucleus density that
 * grows with c and a blob size that shrinks with c, so a model can (in principle) tell them
 * apart; the tiles are random otherwise. Nothing here resembles real tissue closely.
 */
#include "../core/core.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jpeglib.h>
#include <setjmp.h>

struct synth_jpeg_err {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
};

static void synth_jpeg_error_exit(j_common_ptr cinfo)
{
    struct synth_jpeg_err *e = (struct synth_jpeg_err *)cinfo->err;
    longjmp(e->jump, 1);
}

/* Encode an RGB image into memory, then save it atomically. */
static enum medvlm_status write_jpeg(const char *path, const uint8_t *rgb, int w, int h)
{
    struct jpeg_compress_struct c;
    struct synth_jpeg_err err;
    unsigned char *mem = NULL;
    unsigned long len = 0;
    c.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = synth_jpeg_error_exit;
    if (setjmp(err.jump)) {
        jpeg_destroy_compress(&c);
        free(mem);
        return mv_err(MEDVLM_ERR_INTERNAL, "%s: JPEG encoding failed", path);
    }
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &mem, &len);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 92, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)c.next_scanline * (size_t)w * 3);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    enum medvlm_status st = mv_write_file_atomic(path, mem, len);
    free(mem);
    return st;
}

static float clamp255(float v)
{
    return v < 0 ? 0 : v > 255 ? 255 : v;
}

/* One tile of class c of k: background stroma + nuclei blobs + grain. */
static void render_tile(uint8_t *rgb, int size, int c, int k, struct mv_rng *rng)
{
    float t = k > 1 ? (float)c / (float)(k - 1) : 0.0f; /* 0 = pink, 1 = purple */
    float base[3] = {235 - 40 * t, 170 - 60 * t, 205 - 10 * t};
    float nuc[3] = {110 - 50 * t, 60 - 30 * t, 150 - 20 * t};
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            float wave = 8.0f * sinf((float)x * (0.05f + 0.05f * t) + (float)y * 0.03f);
            for (int ch = 0; ch < 3; ch++)
                rgb[((size_t)y * size + x) * 3 + ch] =
                    (uint8_t)clamp255(base[ch] + wave + 10.0f * mv_rng_normal(rng));
        }
    int blobs = (int)((0.002f + 0.006f * t) * (float)size * (float)size / 10.0f) + 3;
    float radius = (float)size * (0.045f - 0.025f * t);
    for (int b = 0; b < blobs; b++) {
        float cx = (float)mv_rng_uniform(rng) * (float)size;
        float cy = (float)mv_rng_uniform(rng) * (float)size;
        float r = radius * (0.6f + 0.8f * (float)mv_rng_uniform(rng));
        int x0 = (int)MV_MAX(0.0f, cx - r), x1 = (int)MV_MIN((float)size - 1, cx + r);
        int y0 = (int)MV_MAX(0.0f, cy - r), y1 = (int)MV_MIN((float)size - 1, cy + r);
        for (int y = y0; y <= y1; y++)
            for (int x = x0; x <= x1; x++) {
                float d = hypotf((float)x - cx, (float)y - cy) / r;
                if (d > 1) continue;
                float a = 0.85f * (1 - d * d);
                uint8_t *p = &rgb[((size_t)y * size + x) * 3];
                for (int ch = 0; ch < 3; ch++)
                    p[ch] = (uint8_t)clamp255((1 - a) * p[ch] + a * nuc[ch]);
            }
    }
}

enum medvlm_status medvlm_synth_dataset(const char *dir, const char *const *classes, int k,
                                        int per_class, int size, uint64_t seed)
{
    enum medvlm_status st = MEDVLM_OK;
    char *img_dir = NULL, *csv = NULL, *table = NULL;
    uint8_t *rgb = NULL;
    if (!dir || !classes || k < 1 || k > 1000 || per_class < 1 || per_class > 100000 || size < 16 ||
        size > 4096)
        return mv_err(MEDVLM_ERR_ARG,
                      "synthetic data: need 1..1000 classes, 1..100000 images per class and a "
                      "size of 16..4096 px");
    if ((mkdir(dir, 0755) != 0 && errno != EEXIST))
        return mv_err(MEDVLM_ERR_IO, "%s: cannot create folder: %s", dir, strerror(errno));
    img_dir = mv_path_join(dir, "images");
    csv = mv_path_join(dir, "labels.csv");
    rgb = mv_malloc((size_t)size * (size_t)size * 3);
    size_t cap = 256 + (size_t)k * (size_t)per_class * (64 + 2 * (size_t)k), len = 0;
    table = mv_malloc(cap);
    if (!img_dir || !csv || !rgb || !table) {
        st = MEDVLM_ERR_NOMEM;
        goto fail;
    }
    if (mkdir(img_dir, 0755) != 0 && errno != EEXIST) {
        st = mv_err(MEDVLM_ERR_IO, "%s: cannot create folder: %s", img_dir, strerror(errno));
        goto fail;
    }
    len += (size_t)snprintf(table + len, cap - len, "image_name");
    for (int c = 0; c < k; c++) len += (size_t)snprintf(table + len, cap - len, ",%s", classes[c]);
    len += (size_t)snprintf(table + len, cap - len, "\n");
    struct mv_rng rng;
    mv_rng_seed(&rng, seed);
    /* interleave classes so that any prefix of the table holds every class */
    for (int i = 0; i < per_class; i++)
        for (int c = 0; c < k; c++) {
            char name[64];
            snprintf(name, sizeof name, "synth_%s_%05d.jpg", classes[c], i);
            char *path = mv_path_join(img_dir, name);
            if (!path) {
                st = MEDVLM_ERR_NOMEM;
                goto fail;
            }
            render_tile(rgb, size, c, k, &rng);
            st = write_jpeg(path, rgb, size, size);
            mv_free(path);
            if (st) goto fail;
            if (cap - len < 64 + 2 * (size_t)k + strlen(name)) {
                st = mv_err(MEDVLM_ERR_INTERNAL, "synthetic label table overflow");
                goto fail;
            }
            len += (size_t)snprintf(table + len, cap - len, "%s", name);
            for (int j = 0; j < k; j++)
                len += (size_t)snprintf(table + len, cap - len, ",%d", j == c);
            len += (size_t)snprintf(table + len, cap - len, "\n");
        }
    st = mv_write_file_atomic(csv, table, len);
fail:
    mv_free(img_dir);
    mv_free(csv);
    mv_free(rgb);
    mv_free(table);
    return st;
}

/*
 * preprocess.c - RGB image -> model input (CHW float32) for the two reference pipelines, and
 * the parallel batch (decode + preprocess of many files).
 *
 * HF (CLIPImageProcessor.preprocess): shortest edge -> pp->shortest_edge (new_short = s,
 * new_long = int(s * long / short), double math), Pillow resize (resize_pil.c), centre crop
 * top = (h - ch) // 2 (Python floor; zero padding when the image is smaller), then per value
 * x = (float)(u8 * rescale_factor) in double, (x - mean) / std in float32. The float steps are a
 * function of (u8, channel) only, so they are a 256-entry table per channel: exact and fast.
 *
 * TUTORIAL (torchvision ToTensor -> Normalize -> Resize([S, S])): x = (float)u8 / 255.0f,
 * (x - mean) / std in float32 (again a table), then resize_tv.c on the float planes.
 *
 * HF_TORCHVISION (transformers 5's CLIPImageProcessor, TorchvisionBackend._preprocess): the HF
 * sizes; torch's uint8 antialiased resize (resize_tv_u8.c); centre crop as its center_crop:
 * top = int((h - ch) / 2.0), or, when the image is smaller, zero padding of (ch - h) // 2 above
 * (HF puts the odd row above, this one below); then rescale and normalise fused, as
 * _fuse_mean_std_and_rescale_factor does: mean' = (float)mean * (float)(1 / rescale_factor),
 * std' likewise, x = ((float)u8 - mean') / std' in float32 (a table again). Without
 * normalisation: x = (float)u8 * (float)rescale_factor; without either, (float)u8.
 */
#include "image.h"

#include <stdio.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static const char *const pipeline_names[] = {"hf", "tutorial", "hf-torchvision"};

const char *medvlm_preprocess_name(enum medvlm_preprocess p)
{
    return (unsigned)p < MV_ARRAY_LEN(pipeline_names) ? pipeline_names[p] : NULL;
}

enum medvlm_status medvlm_preprocess_parse(const char *name, enum medvlm_preprocess *out)
{
    for (size_t i = 0; name && i < MV_ARRAY_LEN(pipeline_names); i++)
        if (strcmp(name, pipeline_names[i]) == 0) {
            *out = (enum medvlm_preprocess)i;
            return MEDVLM_OK;
        }
    return mv_err(MEDVLM_ERR_ARG,
                  "preprocess: unknown pipeline '%s' (expected hf, tutorial or hf-torchvision)",
                  name ? name : "(null)");
}

void medvlm_preprocess_options_default(struct medvlm_preprocess_options *opt)
{
    opt->pipeline = MEDVLM_PREPROCESS_HF;
    opt->size = 0;
    opt->antialias = 1;
    opt->center_crop = -1;
}

static int floor_div2(int a)
{
    return a >= 0 ? a / 2 : -((-a + 1) / 2);
}

static enum medvlm_status check_config(const struct medvlm_preproc_config *pp,
                                       const struct medvlm_preprocess_options *opt)
{
    if (!pp) return mv_err(MEDVLM_ERR_ARG, "preprocess: the preprocessor config is NULL");
    if (!medvlm_preprocess_name(opt->pipeline))
        return mv_err(MEDVLM_ERR_ARG,
                      "preprocess: unknown pipeline %d (expected hf, tutorial or hf-torchvision)",
                      (int)opt->pipeline);
    if (opt->size < 0 || opt->size > 65536)
        return mv_err(MEDVLM_ERR_ARG, "preprocess: size %d out of range (0..65536)", opt->size);
    if (pp->shortest_edge <= 0 || pp->shortest_edge > 65536 || pp->crop_height <= 0 ||
        pp->crop_width <= 0 || pp->crop_height > 65536 || pp->crop_width > 65536)
        return mv_err(MEDVLM_ERR_ARG,
                      "preprocess: shortest_edge %d / crop %dx%d out of range (1..65536)",
                      pp->shortest_edge, pp->crop_height, pp->crop_width);
    if (pp->resample != MEDVLM_RESAMPLE_BICUBIC && pp->resample != MEDVLM_RESAMPLE_BILINEAR)
        return mv_err(MEDVLM_ERR_ARG, "preprocess: resample %d (expected 3 bicubic or 2 bilinear)",
                      (int)pp->resample);
    for (int c = 0; c < 3; c++)
        if (!(pp->std[c] != 0.0f)) return mv_err(MEDVLM_ERR_ARG, "preprocess: std[%d] is zero", c);
    return MEDVLM_OK;
}

/* HF_TORCHVISION's centre crop of c from n: int((n - c) / 2.0), or, when n < c, the padding
 * (c - n) // 2 before the image, as a negative start. */
static int tv_crop_start(int n, int c)
{
    return n >= c ? (n - c) / 2 : -((c - n) / 2);
}

/* The resized (not cropped) size of the HF pipeline. */
static enum medvlm_status hf_resized(int width, int height, const struct medvlm_preproc_config *pp,
                                     int *rh, int *rw)
{
    if (!pp->do_resize) {
        *rh = height;
        *rw = width;
        return MEDVLM_OK;
    }
    int s = pp->shortest_edge, shrt = width <= height ? width : height;
    int lng = width <= height ? height : width;
    double nl = (double)((int64_t)s * lng) / shrt;
    if (nl > 1 << 20)
        return mv_err(MEDVLM_ERR_LIMIT,
                      "preprocess: a %dx%d image resized to shortest edge %d would be %.0f pixels "
                      "long (max %d)",
                      width, height, s, nl, 1 << 20);
    int newl = (int)nl;
    if (width <= height) {
        *rw = s;
        *rh = newl;
    } else {
        *rh = s;
        *rw = newl;
    }
    return MEDVLM_OK;
}

/* opt, or (NULL) the defaults written into *def. */
static const struct medvlm_preprocess_options *
options_or_default(const struct medvlm_preprocess_options *opt,
                   struct medvlm_preprocess_options *def)
{
    if (opt) return opt;
    medvlm_preprocess_options_default(def);
    return def;
}

static int hf_crop(const struct medvlm_preproc_config *pp,
                   const struct medvlm_preprocess_options *opt)
{
    return opt->center_crop < 0 ? pp->do_center_crop != 0 : opt->center_crop != 0;
}

enum medvlm_status medvlm_image_preprocess_size(int width, int height,
                                                const struct medvlm_preproc_config *pp,
                                                const struct medvlm_preprocess_options *opt,
                                                int *out_h, int *out_w)
{
    struct medvlm_preprocess_options def;
    opt = options_or_default(opt, &def);
    enum medvlm_status st = check_config(pp, opt);
    if (st) return st;
    if (width <= 0 || height <= 0)
        return mv_err(MEDVLM_ERR_ARG, "preprocess: image size %dx%d", width, height);
    if (opt->pipeline == MEDVLM_PREPROCESS_TUTORIAL) {
        *out_h = opt->size ? opt->size : pp->crop_height;
        *out_w = opt->size ? opt->size : pp->crop_width;
        return MEDVLM_OK;
    }
    if (hf_crop(pp, opt)) {
        *out_h = pp->crop_height;
        *out_w = pp->crop_width;
        return MEDVLM_OK;
    }
    return hf_resized(width, height, pp, out_h, out_w);
}

enum medvlm_status medvlm_image_preprocess_fixed_size(const struct medvlm_preproc_config *pp,
                                                      const struct medvlm_preprocess_options *opt,
                                                      int *out_h, int *out_w)
{
    struct medvlm_preprocess_options def;
    opt = options_or_default(opt, &def);
    enum medvlm_status st = check_config(pp, opt); /* before looking at pp's crop */
    if (st) return st;
    if (opt->pipeline != MEDVLM_PREPROCESS_TUTORIAL && !hf_crop(pp, opt))
        return mv_err(MEDVLM_ERR_ARG, "preprocess: without a centre crop the HF pipeline gives "
                                      "each image its own size; there is no fixed batch size");
    return medvlm_image_preprocess_size(1, 1, pp, opt, out_h, out_w);
}

/* lut[c][v]: the float value of u8 v in channel c after the pipeline's rescale + normalise. */
static void build_lut(const struct medvlm_preproc_config *pp, enum medvlm_preprocess pipe,
                      float lut[3][256])
{
    /* preprocessor_config.json writes 1/255 as 0.00392156862745098; numpy multiplies in double */
    double rf = pp->rescale_factor == (float)(1.0 / 255.0) ? 1.0 / 255.0 : pp->rescale_factor;
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) {
            float x;
            if (pipe == MEDVLM_PREPROCESS_TUTORIAL) {
                x = (float)v / 255.0f;
                x = (x - pp->mean[c]) / pp->std[c];
            } else if (pipe == MEDVLM_PREPROCESS_HF_TORCHVISION) {
                const float inv = (float)(1.0 / rf); /* 255 */
                x = (float)v;
                if (pp->do_rescale && pp->do_normalize)
                    x = (x - pp->mean[c] * inv) / (pp->std[c] * inv);
                else if (pp->do_normalize)
                    x = (x - pp->mean[c]) / pp->std[c];
                else if (pp->do_rescale)
                    x = x * (float)rf;
            } else {
                x = pp->do_rescale ? (float)((double)v * rf) : (float)v;
                if (pp->do_normalize) x = (x - pp->mean[c]) / pp->std[c];
            }
            lut[c][v] = x;
        }
}

/* HWC uint8 (h, w, 3) through the table into CHW float. */
static void to_chw(const uint8_t *src, int h, int w, float lut[3][256], float *dst)
{
    size_t n = (size_t)h * w;
    float *d0 = dst, *d1 = dst + n, *d2 = dst + 2 * n;
    for (size_t i = 0; i < n; i++) {
        d0[i] = lut[0][src[3 * i]];
        d1[i] = lut[1][src[3 * i + 1]];
        d2[i] = lut[2][src[3 * i + 2]];
    }
}

enum medvlm_status medvlm_image_preprocess(const struct medvlm_image *img,
                                           const struct medvlm_preproc_config *pp,
                                           const struct medvlm_preprocess_options *opt,
                                           float *out_chw, size_t out_cap, int *out_h, int *out_w)
{
    struct medvlm_preprocess_options def;
    opt = options_or_default(opt, &def);
    if (!img || !img->rgb || !out_chw)
        return mv_err(MEDVLM_ERR_ARG, "medvlm_image_preprocess: NULL image or output");
    int oh, ow;
    enum medvlm_status st =
        medvlm_image_preprocess_size(img->width, img->height, pp, opt, &oh, &ow);
    if (st) return st;
    size_t need = (size_t)3 * oh * ow;
    if (out_cap < need)
        return mv_err(
            MEDVLM_ERR_ARG,
            "medvlm_image_preprocess: output holds %zu floats, expected 3 x %d x %d = %zu", out_cap,
            oh, ow, need);
    float lut[3][256];
    build_lut(pp, opt->pipeline, lut);
    if (opt->pipeline == MEDVLM_PREPROCESS_TUTORIAL) {
        st = mv_tv_resize_rgb8(img->rgb, img->height, img->width, (const float(*)[256])lut, oh, ow,
                               opt->antialias, out_chw);
    } else {
        int rh, rw;
        if ((st = hf_resized(img->width, img->height, pp, &rh, &rw))) return st;
        const int tv = opt->pipeline == MEDVLM_PREPROCESS_HF_TORCHVISION;
        int y0 = 0, x0 = 0;
        if (hf_crop(pp, opt)) {
            y0 = tv ? tv_crop_start(rh, oh) : floor_div2(rh - oh);
            x0 = tv ? tv_crop_start(rw, ow) : floor_div2(rw - ow);
        }
        uint8_t *win = mv_malloc((size_t)oh * ow * 3);
        if (!win) return MEDVLM_ERR_NOMEM;
        st = tv ? mv_tv_resize_u8_window(img->rgb, img->height, img->width, rh, rw, y0, x0, oh, ow,
                                         pp->resample, win)
                : mv_pil_resize_window(img->rgb, img->height, img->width, rh, rw, y0, x0, oh, ow,
                                       pp->resample, win);
        if (!st) to_chw(win, oh, ow, lut, out_chw);
        mv_free(win);
    }
    if (st) return st;
    if (out_h) *out_h = oh;
    if (out_w) *out_w = ow;
    return MEDVLM_OK;
}

enum medvlm_status medvlm_image_preprocess_files(const char *const *paths, int n,
                                                 const struct medvlm_decode_limits *lim,
                                                 const struct medvlm_preproc_config *pp,
                                                 const struct medvlm_preprocess_options *opt,
                                                 int nthreads, float *out, size_t out_cap,
                                                 enum medvlm_status *item_status)
{
    int oh, ow;
    if (n < 0 || (n > 0 && (!paths || !out)))
        return mv_err(MEDVLM_ERR_ARG, "medvlm_image_preprocess_files: bad arguments");
    enum medvlm_status st = medvlm_image_preprocess_fixed_size(pp, opt, &oh, &ow);
    if (st) return st;
    size_t per = (size_t)3 * oh * ow, need;
    if (!mv_mul_ok(per, (size_t)n, &need) || out_cap < need)
        return mv_err(MEDVLM_ERR_ARG,
                      "medvlm_image_preprocess_files: output holds %zu floats, expected %d x 3 x "
                      "%d x %d",
                      out_cap, n, oh, ow);
    int first_bad = n;
    enum medvlm_status first_st = MEDVLM_OK;
    char first_msg[1024] = "";
#ifdef _OPENMP
    int nt = nthreads > 0 ? nthreads : omp_get_max_threads();
#else
    int nt = 1; /* no OpenMP (the fuzz build): the pragma below is ignored */
    (void)nthreads;
    (void)nt;
#endif
    /* each image is decoded and preprocessed by one thread with no shared state: the results
     * are the same for any thread count */
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (n > 1 && nt > 1)
    for (int i = 0; i < n; i++) {
        struct medvlm_image img;
        enum medvlm_status s = medvlm_image_decode_file(paths[i], lim, &img);
        if (!s) {
            s = medvlm_image_preprocess(&img, pp, opt, out + (size_t)i * per, per, NULL, NULL);
            if (s) mv_err_ctx(s, "%s", paths[i]); /* decode errors already name the file */
        }
        if (s) memset(out + (size_t)i * per, 0, per * sizeof *out);
        medvlm_image_free(&img);
        if (item_status) item_status[i] = s;
        if (s) {
#pragma omp critical(mv_preprocess_files)
            {
                if (i < first_bad) {
                    first_bad = i;
                    first_st = s;
                    snprintf(first_msg, sizeof first_msg, "%s", medvlm_last_error());
                }
            }
        }
    }
    if (first_st) return mv_err(first_st, "%s", first_msg);
    return MEDVLM_OK;
}

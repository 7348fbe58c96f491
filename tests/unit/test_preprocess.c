/*
 * test_preprocess.c - the resamplers against their naive siblings (bit for bit), output sizes,
 * centre-crop padding, argument errors, and the parallel batch: 1 thread == 2 threads ==
 * one image at a time, a bad file reported by name while the others are still written.
 * (Agreement with Pillow / transformers / torchvision itself is the golden stage `pixels`.)
 */
#include "check.h"
#include "golden_path.h"
#include "image/image.h"
#include "io/io.h"

#include <stdio.h>
#include <string.h>

static uint32_t rng_state = 777;
static uint32_t rnd(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}

static void test_pil_naive(void)
{
    static const int sizes[][4] = {
        /* H, W, OH, OW */
        {23, 37, 224, 360},
        {97, 131, 224, 302},
        {199, 300, 224, 337},
        {512, 512, 224, 224},
        {40, 40, 40, 17},
        {17, 60, 50, 60},
        {1, 9, 3, 1},
        {300, 7, 2, 2},
        {64, 48, 64, 48},
        /* extreme downscales: ~1500 taps (SSE2 pass) and > 2000 taps (scalar fallback) */
        {2, 1500, 2, 2},
        {3, 2500, 2, 3},
    };
    for (size_t t = 0; t < MV_ARRAY_LEN(sizes); t++) {
        int H = sizes[t][0], W = sizes[t][1], OH = sizes[t][2], OW = sizes[t][3];
        uint8_t *src = malloc((size_t)H * W * 3);
        for (int i = 0; i < H * W * 3; i++) src[i] = (uint8_t)rnd();
        for (int f = 0; f < 2; f++) {
            enum medvlm_resample filt = f ? MEDVLM_RESAMPLE_BILINEAR : MEDVLM_RESAMPLE_BICUBIC;
            /* windows: the full image, a centre crop, one hanging over every edge */
            int win[3][4] = {{0, 0, OH, OW},
                             {OH / 4, OW / 5, MV_MAX(OH / 2, 1), MV_MAX(OW / 2, 1)},
                             {-3, -5, OH + 7, OW + 4}};
            for (int k = 0; k < 3; k++) {
                int wh = win[k][2], ww = win[k][3];
                uint8_t *a = malloc((size_t)wh * ww * 3), *b = malloc((size_t)wh * ww * 3);
                CHECK_OK(
                    mv_pil_resize_window(src, H, W, OH, OW, win[k][0], win[k][1], wh, ww, filt, a));
                CHECK_OK(mv_pil_resize_window_naive(src, H, W, OH, OW, win[k][0], win[k][1], wh, ww,
                                                    filt, b));
                CHECK(memcmp(a, b, (size_t)wh * ww * 3) == 0,
                      "pil resize %dx%d -> %dx%d window %d (filter %d): fast != naive", W, H, OW,
                      OH, k, (int)filt);
                free(a);
                free(b);
            }
        }
        free(src);
    }
    /* a constant image stays constant (weights sum to one in fixed point) */
    uint8_t flat[30 * 20 * 3], out[7 * 11 * 3];
    memset(flat, 173, sizeof flat);
    CHECK_OK(mv_pil_resize_window(flat, 20, 30, 7, 11, 0, 0, 7, 11, MEDVLM_RESAMPLE_BICUBIC, out));
    int ok = 1;
    for (size_t i = 0; i < sizeof out; i++) ok &= out[i] == 173;
    CHECK(ok, "constant image stays constant");
}

static void test_tv_naive(void)
{
    static const int sizes[][4] = {
        {199, 300, 224, 224}, {240, 240, 224, 224}, {23, 37, 224, 224}, {512, 512, 224, 224},
        {50, 50, 50, 31},     {9, 40, 30, 40},      {1, 1, 5, 3},
    };
    for (size_t t = 0; t < MV_ARRAY_LEN(sizes); t++) {
        int H = sizes[t][0], W = sizes[t][1], OH = sizes[t][2], OW = sizes[t][3];
        size_t n = (size_t)2 * H * W, on = (size_t)2 * OH * OW;
        float *src = malloc(n * sizeof *src), *a = malloc(on * sizeof *a),
              *b = malloc(on * sizeof *b);
        for (size_t i = 0; i < n; i++) src[i] = (float)(rnd() % 20000) / 5000.0f - 2.0f;
        for (int aa = 0; aa < 2; aa++) {
            CHECK_OK(mv_tv_resize(src, 2, H, W, OH, OW, aa, a));
            CHECK_OK(mv_tv_resize_naive(src, 2, H, W, OH, OW, aa, b));
            CHECK(memcmp(a, b, on * sizeof *a) == 0,
                  "tv resize %dx%d -> %dx%d aa %d: fast != naive", W, H, OW, OH, aa);
        }
        free(src);
        free(a);
        free(b);
    }
}

/* the uint8 + table input gives the same floats as building the planes first */
static void test_tv_rgb8(void)
{
    static const int sizes[][4] = {
        {199, 300, 224, 224}, {64, 64, 64, 40}, {30, 50, 45, 50}, {16, 16, 16, 16}, {5, 7, 9, 11},
    };
    float lut[3][256];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) lut[c][v] = ((float)v / 255.0f - 0.4f - 0.05f * c) / 0.27f;
    for (size_t t = 0; t < MV_ARRAY_LEN(sizes); t++) {
        int H = sizes[t][0], W = sizes[t][1], OH = sizes[t][2], OW = sizes[t][3];
        size_t n = (size_t)H * W, on = (size_t)3 * OH * OW;
        uint8_t *rgb = malloc(n * 3);
        float *planes = malloc(3 * n * sizeof *planes), *a = malloc(on * sizeof *a),
              *b = malloc(on * sizeof *b);
        for (size_t i = 0; i < n * 3; i++) rgb[i] = (uint8_t)rnd();
        for (int c = 0; c < 3; c++)
            for (size_t i = 0; i < n; i++) planes[c * n + i] = lut[c][rgb[3 * i + c]];
        for (int aa = 0; aa < 2; aa++) {
            CHECK_OK(mv_tv_resize(planes, 3, H, W, OH, OW, aa, a));
            CHECK_OK(mv_tv_resize_rgb8(rgb, H, W, (const float(*)[256])lut, OH, OW, aa, b));
            CHECK(memcmp(a, b, on * sizeof *a) == 0, "rgb8 %dx%d -> %dx%d aa %d: != planes", W, H,
                  OW, OH, aa);
        }
        free(rgb);
        free(planes);
        free(a);
        free(b);
    }
}

static void test_sizes(void)
{
    struct medvlm_preproc_config pp;
    medvlm_preproc_default(&pp);
    struct medvlm_preprocess_options o;
    medvlm_preprocess_options_default(&o);
    int h, w;
    o.center_crop = 0;
    CHECK_OK(medvlm_image_preprocess_size(300, 199, &pp, &o, &h, &w));
    CHECK(h == 224 && w == 337, "300x199 -> %dx%d", w, h);
    CHECK_OK(medvlm_image_preprocess_size(180, 256, &pp, &o, &h, &w));
    CHECK(h == 318 && w == 224, "180x256 -> %dx%d", w, h);
    CHECK_OK(medvlm_image_preprocess_size(37, 23, &pp, &o, &h, &w));
    CHECK(h == 224 && w == 360, "37x23 -> %dx%d", w, h);
    CHECK_ERR(medvlm_image_preprocess_fixed_size(&pp, &o, &h, &w), MEDVLM_ERR_ARG,
              "no fixed batch size");
    o.center_crop = -1; /* the config's: on */
    CHECK_OK(medvlm_image_preprocess_fixed_size(&pp, &o, &h, &w));
    CHECK(h == 224 && w == 224, "crop %dx%d", w, h);
    o.pipeline = MEDVLM_PREPROCESS_TUTORIAL;
    o.size = 96;
    CHECK_OK(medvlm_image_preprocess_size(300, 199, &pp, &o, &h, &w));
    CHECK(h == 96 && w == 96, "tutorial %dx%d", w, h);
    o.size = -1;
    CHECK_ERR(medvlm_image_preprocess_size(300, 199, &pp, &o, &h, &w), MEDVLM_ERR_ARG, "size -1");
    o.size = 0;
    o.pipeline = (enum medvlm_preprocess)7;
    CHECK_ERR(medvlm_image_preprocess_size(300, 199, &pp, &o, &h, &w), MEDVLM_ERR_ARG,
              "unknown pipeline 7");
    /* an absurd aspect ratio is refused, not allocated */
    medvlm_preprocess_options_default(&o);
    o.center_crop = 0;
    CHECK_ERR(medvlm_image_preprocess_size(1, 20000, &pp, &o, &h, &w), MEDVLM_ERR_LIMIT,
              "would be");
}

static void test_padding_and_args(void)
{
    /* shortest edge 8 < crop 12: CLIPImageProcessor pads the resized image with zeros, which
     * become (0 - mean) / std after normalising */
    struct medvlm_preproc_config pp;
    medvlm_preproc_default(&pp);
    pp.shortest_edge = 8;
    pp.crop_height = pp.crop_width = 12;
    struct medvlm_image img = {.width = 10, .height = 8};
    img.rgb = malloc(10 * 8 * 3);
    memset(img.rgb, 200, 10 * 8 * 3);
    float out[3 * 12 * 12];
    int h, w;
    CHECK_OK(medvlm_image_preprocess(&img, &pp, NULL, out, MV_ARRAY_LEN(out), &h, &w));
    CHECK(h == 12 && w == 12, "padded size %dx%d", w, h);
    /* resized 10x8 -> 10x8 (short edge already 8); top = (8-12)//2 = -2, left = (10-12)//2 = -1 */
    float pad0 = (0.0f - pp.mean[0]) / pp.std[0];
    float v0 = ((float)(200.0 / 255.0) - pp.mean[0]) / pp.std[0];
    CHECK(out[0] == pad0 && out[1 * 12 + 0] == pad0 && out[2 * 12 + 0] == pad0, "top-left padded");
    CHECK(out[2 * 12 + 1] == v0 && out[9 * 12 + 10] == v0, "inside = image");
    CHECK(out[10 * 12 + 5] == pad0 && out[5 * 12 + 11] == pad0, "bottom/right padded");
    CHECK_ERR(medvlm_image_preprocess(&img, &pp, NULL, out, 100, &h, &w), MEDVLM_ERR_ARG,
              "output holds 100 floats, expected 3 x 12 x 12");
    CHECK_ERR(medvlm_image_preprocess(NULL, &pp, NULL, out, 100, &h, &w), MEDVLM_ERR_ARG, "NULL");
    pp.std[1] = 0;
    CHECK_ERR(medvlm_image_preprocess(&img, &pp, NULL, out, MV_ARRAY_LEN(out), &h, &w),
              MEDVLM_ERR_ARG, "std[1] is zero");
    free(img.rgb);
}

static void test_batch(const char *golden)
{
    char man[4096];
    snprintf(man, sizeof man, "%s/manifest.json", golden);
    /* the golden set's images, as its manifest lists them */
    cJSON *root;
    CHECK_OK(mv_json_load(man, &root));
    const cJSON *imgs = cJSON_GetObjectItemCaseSensitive(root, "images");
    int n = cJSON_GetArraySize(imgs);
    CHECK(n > 0, "manifest lists images");
    char **paths = calloc((size_t)n + 1, sizeof *paths);
    for (int i = 0; i < n; i++) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(imgs, i), "file");
        paths[i] = mv_asprintf("%s/images/%s", golden, cJSON_IsString(f) ? f->valuestring : "?");
    }
    cJSON_Delete(root);
    paths[n] = mv_asprintf("%s", "definitely_missing.png");
    struct medvlm_preproc_config pp;
    medvlm_preproc_default(&pp);
    for (int pipe = 0; pipe < 2; pipe++) {
        struct medvlm_preprocess_options o;
        medvlm_preprocess_options_default(&o);
        o.pipeline = pipe ? MEDVLM_PREPROCESS_TUTORIAL : MEDVLM_PREPROCESS_HF;
        int h, w;
        CHECK_OK(medvlm_image_preprocess_fixed_size(&pp, &o, &h, &w));
        size_t per = (size_t)3 * h * w;
        float *one = malloc(per * n * sizeof *one), *t1 = malloc(per * (n + 1) * sizeof *t1),
              *t2 = malloc(per * (n + 1) * sizeof *t2);
        for (int i = 0; i < n; i++) {
            struct medvlm_image img;
            CHECK_OK(medvlm_image_decode_file(paths[i], NULL, &img));
            CHECK_OK(medvlm_image_preprocess(&img, &pp, &o, one + per * i, per, NULL, NULL));
            medvlm_image_free(&img);
        }
        CHECK_OK(medvlm_image_preprocess_files((const char *const *)paths, n, NULL, &pp, &o, 1, t1,
                                               per * n, NULL));
        CHECK_OK(medvlm_image_preprocess_files((const char *const *)paths, n, NULL, &pp, &o, 2, t2,
                                               per * n, NULL));
        CHECK(memcmp(one, t1, per * n * sizeof *t1) == 0, "batch 1 thread == one by one (%d)",
              pipe);
        CHECK(memcmp(t1, t2, per * n * sizeof *t1) == 0, "batch 1 thread == 2 threads (%d)", pipe);
        /* a missing file among them: named in the error, reported per item, the rest written */
        enum medvlm_status *item = calloc((size_t)n + 1, sizeof *item);
        memset(t2, 0xff, per * (n + 1) * sizeof *t2);
        CHECK_ERR(medvlm_image_preprocess_files((const char *const *)paths, n + 1, NULL, &pp, &o, 2,
                                                t2, per * (n + 1), item),
                  MEDVLM_ERR_IO, "definitely_missing.png: cannot open");
        CHECK(item[n] == MEDVLM_ERR_IO && item[0] == MEDVLM_OK && item[n - 1] == MEDVLM_OK,
              "item status");
        CHECK(memcmp(one, t2, per * n * sizeof *t2) == 0, "others still written");
        CHECK(t2[per * n] == 0.0f, "failed slot zeroed");
        CHECK_ERR(medvlm_image_preprocess_files((const char *const *)paths, n, NULL, &pp, &o, 2, t2,
                                                per * n - 1, NULL),
                  MEDVLM_ERR_ARG, "output holds");
        free(item);
        free(one);
        free(t1);
        free(t2);
    }
    for (int i = 0; i <= n; i++) mv_free(paths[i]);
    free(paths);
}

int main(void)
{
    const char *golden = test_golden_dir();
    test_pil_naive();
    test_tv_naive();
    test_tv_rgb8();
    test_sizes();
    test_padding_and_args();
    test_batch(golden);
    return check_summary();
}

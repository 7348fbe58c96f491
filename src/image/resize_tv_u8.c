/*
 * resize_tv_u8.c - torch's interpolate(mode="bicubic" or "bilinear", antialias=True,
 * align_corners=False) on a uint8 image, as torchvision.transforms.v2.functional.resize runs it
 * on a uint8 tensor (CPU; transformers 5's default CLIPImageProcessor): torch's own uint8
 * path, a port of Pillow-SIMD's resampler with torch's choice of fixed point.
 *
 * Per axis, in double: scale = in / out; support = (taps / 2) * max(scale, 1) (taps 4 bicubic,
 * 2 bilinear); output i: center = scale * (i + 0.5), xmin = max((int64)(center - support +
 * 0.5), 0), xsize = min((int64)(center + support + 0.5), in) - xmin; w_j = filter((j + xmin -
 * center + 0.5) / max(scale, 1)), normalised by their sum. The filters are torch's (Keys'
 * cubic with a = -0.5 written as ((a x - 5a) x + 8a) x - 4a beyond 1; the triangle). Then the
 * one difference from Pillow that matters: the weights are rounded to int16 at a precision p
 * chosen per axis, the largest p < 22 with round(max_w 2^(p+1)) < 2^15 (Pillow: 22 bits for
 * every axis), so a tap weighs round(w 2^p) / 2^p with p near 14 when upscaling.
 * Each output = clamp((2^(p-1) + sum src_j k_j) >> p, 0, 255); the horizontal pass runs first
 * (when the width changes), into a uint8 intermediate, then the vertical one (when the height
 * changes). An axis whose size does not change is copied.
 *
 * The fast version computes only a window of the result (the centre crop), as resize_pil.c
 * does; the naive sibling resizes the whole image and crops. Integer sums: bit for bit equal.
 *
 * Letters: H, W source; OH, OW full output; (y0, x0, wh, ww) the window.
 */
#include "image.h"

#include <math.h>
#include <string.h>

/* torch's filters (UpSample.h cubic_convolution1/2 with A = -0.5; the antialias triangle), in
 * its expression order: the doubles are rounded to fixed point, so the last bit can matter. */
static double cubic_filter(double x)
{
    const double a = -0.5;
    x = fabs(x);
    if (x < 1.0) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2.0) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
    return 0.0;
}

static double linear_filter(double x)
{
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* One axis: bounds[2i] first source index, bounds[2i+1] tap count, k[i * ksize + j] the int16
 * weights at precision prec. */
struct tv8_axis {
    int n, ksize;
    unsigned prec;
    int *bounds;
    int16_t *k;
};

static void tv8_axis_free(struct tv8_axis *ax)
{
    mv_free(ax->bounds);
    mv_free(ax->k);
    memset(ax, 0, sizeof *ax);
}

static enum medvlm_status tv8_axis_init(struct tv8_axis *ax, int in, int out,
                                        enum medvlm_resample filter)
{
    memset(ax, 0, sizeof *ax);
    double (*fn)(double) = filter == MEDVLM_RESAMPLE_BICUBIC ? cubic_filter : linear_filter;
    const int taps = filter == MEDVLM_RESAMPLE_BICUBIC ? 4 : 2;
    const double scale = (double)in / out;
    const double support = scale >= 1.0 ? (taps * 0.5) * scale : taps * 0.5;
    const double invscale = scale >= 1.0 ? 1.0 / scale : 1.0;
    const int ksize = (int)ceil(support) * 2 + 1;
    double *w = mv_calloc((size_t)out * ksize, sizeof *w);
    ax->bounds = mv_calloc((size_t)out * 2, sizeof *ax->bounds);
    ax->k = mv_calloc((size_t)out * ksize, sizeof *ax->k);
    if (!w || !ax->bounds || !ax->k) {
        mv_free(w);
        tv8_axis_free(ax);
        return MEDVLM_ERR_NOMEM;
    }
    ax->n = out;
    ax->ksize = ksize;
    double wmax = 0.0;
    for (int i = 0; i < out; i++) {
        const double center = scale * (i + 0.5);
        int64_t xmin = (int64_t)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int64_t xsize = MV_MIN((int64_t)(center + support + 0.5), (int64_t)in) - xmin;
        xsize = MV_MAX(MV_MIN(xsize, (int64_t)ksize), (int64_t)0);
        double *wi = w + (size_t)i * ksize, total = 0.0;
        for (int64_t j = 0; j < xsize; j++) {
            wi[j] = fn(((double)(j + xmin) - center + 0.5) * invscale);
            total += wi[j];
        }
        if (total != 0.0)
            for (int64_t j = 0; j < xsize; j++) {
                wi[j] /= total;
                wmax = MV_MAX(wmax, wi[j]);
            }
        ax->bounds[2 * i] = (int)xmin;
        ax->bounds[2 * i + 1] = (int)xsize;
    }
    unsigned p = 0;
    for (; p < 22; p++)
        if ((int)(0.5 + wmax * (1 << (p + 1))) >= (1 << 15)) break;
    ax->prec = p;
    for (size_t i = 0; i < (size_t)out * ksize; i++) {
        double v = w[i] * (1 << p);
        ax->k[i] = (int16_t)(v < 0 ? (int)(-0.5 + v) : (int)(0.5 + v));
    }
    mv_free(w);
    return MEDVLM_OK;
}

/* One output value from n taps of stride `step` (in bytes of uint8 RGB). */
static inline uint8_t tv8_tap(const uint8_t *s, size_t step, const int16_t *k, int n, unsigned p)
{
    int acc = 1 << (p - 1); /* p >= 1 for any weights <= 1 */
    for (int j = 0; j < n; j++) acc += s[(size_t)j * step] * k[j];
    acc >>= p;
    return (uint8_t)(acc < 0 ? 0 : acc > 255 ? 255 : acc);
}

static enum medvlm_status check_dims(int H, int W, int OH, int OW, int wh, int ww,
                                     enum medvlm_resample filter)
{
    if (H <= 0 || W <= 0 || OH <= 0 || OW <= 0 || wh < 0 || ww < 0)
        return mv_err(MEDVLM_ERR_ARG, "torchvision uint8 resize %dx%d -> %dx%d: bad size", H, W, OH,
                      OW);
    if (filter != MEDVLM_RESAMPLE_BICUBIC && filter != MEDVLM_RESAMPLE_BILINEAR)
        return mv_err(MEDVLM_ERR_ARG,
                      "torchvision uint8 resize: resample %d (expected bicubic "
                      "or bilinear)",
                      (int)filter);
    return MEDVLM_OK;
}

enum medvlm_status mv_tv_resize_u8_window(const uint8_t *src, int H, int W, int OH, int OW, int y0,
                                          int x0, int wh, int ww, enum medvlm_resample filter,
                                          uint8_t *dst)
{
    // src (H, W, 3), dst (wh, ww, 3)
    enum medvlm_status st = check_dims(H, W, OH, OW, wh, ww, filter);
    if (st) return st;
    memset(dst, 0, (size_t)wh * ww * 3);
    const int vy0 = MV_MAX(y0, 0), vy1 = MV_MIN(y0 + wh, OH);
    const int vx0 = MV_MAX(x0, 0), vx1 = MV_MIN(x0 + ww, OW);
    if (vy0 >= vy1 || vx0 >= vx1) return MEDVLM_OK;
    const int need_h = OW != W, need_v = OH != H, nx = vx1 - vx0;
    struct tv8_axis ah = {0}, av = {0};
    uint8_t *mid = NULL;
    if ((need_h && (st = tv8_axis_init(&ah, W, OW, filter))) ||
        (need_v && (st = tv8_axis_init(&av, H, OH, filter))))
        goto fail;
    /* the source rows the window's vertical taps read */
    int r0 = vy0, r1 = vy1;
    if (need_v) {
        r0 = av.bounds[2 * vy0];
        r1 = 0;
        for (int y = vy0; y < vy1; y++) r1 = MV_MAX(r1, av.bounds[2 * y] + av.bounds[2 * y + 1]);
        r1 = MV_MAX(r1, r0);
    }
    /* horizontal pass (or the copy) of rows [r0, r1), the window's columns: mid (r1 - r0, nx, 3) */
    const size_t mrow = (size_t)nx * 3;
    mid = mv_malloc(((size_t)(r1 - r0) * mrow) + 1);
    if (!mid) {
        st = MEDVLM_ERR_NOMEM;
        goto fail;
    }
    for (int r = r0; r < r1; r++) {
        const uint8_t *s = src + (size_t)r * W * 3;
        uint8_t *m = mid + (size_t)(r - r0) * mrow;
        if (!need_h) {
            memcpy(m, s + (size_t)vx0 * 3, mrow);
            continue;
        }
        for (int x = vx0; x < vx1; x++) {
            const uint8_t *t = s + (size_t)ah.bounds[2 * x] * 3;
            const int16_t *k = ah.k + (size_t)x * ah.ksize;
            const int n = ah.bounds[2 * x + 1];
            uint8_t *o = m + (size_t)(x - vx0) * 3;
            for (int c = 0; c < 3; c++) o[c] = tv8_tap(t + c, 3, k, n, ah.prec);
        }
    }
    /* vertical pass (or the copy) into the window */
    for (int y = vy0; y < vy1; y++) {
        uint8_t *o = dst + ((size_t)(y - y0) * ww + (vx0 - x0)) * 3;
        if (!need_v) {
            memcpy(o, mid + (size_t)(y - r0) * mrow, mrow);
            continue;
        }
        const uint8_t *t = mid + (size_t)(av.bounds[2 * y] - r0) * mrow;
        const int16_t *k = av.k + (size_t)y * av.ksize;
        const int n = av.bounds[2 * y + 1];
        for (size_t e = 0; e < mrow; e++) o[e] = tv8_tap(t + e, mrow, k, n, av.prec);
    }
fail:
    tv8_axis_free(&ah);
    tv8_axis_free(&av);
    mv_free(mid);
    return st;
}

enum medvlm_status mv_tv_resize_u8_window_naive(const uint8_t *src, int H, int W, int OH, int OW,
                                                int y0, int x0, int wh, int ww,
                                                enum medvlm_resample filter, uint8_t *dst)
{
    enum medvlm_status st = check_dims(H, W, OH, OW, wh, ww, filter);
    if (st) return st;
    /* the whole image, torch's order: the horizontal pass over every row, then the vertical */
    struct tv8_axis ah = {0}, av = {0};
    const int need_h = OW != W, need_v = OH != H;
    uint8_t *mid = mv_malloc((size_t)H * OW * 3), *full = mv_malloc((size_t)OH * OW * 3);
    if (!mid || !full) {
        st = MEDVLM_ERR_NOMEM;
        goto fail;
    }
    if ((need_h && (st = tv8_axis_init(&ah, W, OW, filter))) ||
        (need_v && (st = tv8_axis_init(&av, H, OH, filter))))
        goto fail;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < OW; x++)
            for (int c = 0; c < 3; c++) {
                uint8_t *o = mid + ((size_t)y * OW + x) * 3 + c;
                if (!need_h) {
                    *o = src[((size_t)y * W + x) * 3 + c];
                    continue;
                }
                const uint8_t *t = src + ((size_t)y * W + ah.bounds[2 * x]) * 3 + c;
                *o = tv8_tap(t, 3, ah.k + (size_t)x * ah.ksize, ah.bounds[2 * x + 1], ah.prec);
            }
    for (int y = 0; y < OH; y++)
        for (int x = 0; x < OW; x++)
            for (int c = 0; c < 3; c++) {
                uint8_t *o = full + ((size_t)y * OW + x) * 3 + c;
                if (!need_v) {
                    *o = mid[((size_t)y * OW + x) * 3 + c];
                    continue;
                }
                const uint8_t *t = mid + ((size_t)av.bounds[2 * y] * OW + x) * 3 + c;
                *o = tv8_tap(t, (size_t)OW * 3, av.k + (size_t)y * av.ksize, av.bounds[2 * y + 1],
                             av.prec);
            }
    for (int y = 0; y < wh; y++)
        for (int x = 0; x < ww; x++)
            for (int c = 0; c < 3; c++) {
                const int fy = y0 + y, fx = x0 + x;
                dst[((size_t)y * ww + x) * 3 + c] = fy >= 0 && fy < OH && fx >= 0 && fx < OW
                                                        ? full[((size_t)fy * OW + fx) * 3 + c]
                                                        : 0;
            }
fail:
    tv8_axis_free(&ah);
    tv8_axis_free(&av);
    mv_free(mid);
    mv_free(full);
    return st;
}

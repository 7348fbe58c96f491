/*
 * resize_tv.c - torch's bilinear interpolate (align_corners=False) on float CHW planes, as
 * torchvision's Resize calls it on a tensor, with the float32 arithmetic of torch's CPU kernels:
 *
 * antialias=True (_upsample_bilinear2d_aa): per axis scale = (float)in / out; support =
 *   scale >= 1 ? scale : 1; output i: center = scale * (i + 0.5); xmin = max((int)(center -
 *   support + 0.5), 0); xsize = min((int)(center + support + 0.5), in) - xmin; weights
 *   w_j = tri((j + xmin - center + 0.5) / max(scale, 1)) normalised by their float sum.
 *   Horizontal pass first (if the width changes), then vertical, each output summed in tap
 *   order: out = s_0 w_0; out += s_j w_j.
 * antialias=False (upsample_bilinear2d): src = max(scale * (dst + 0.5) - 0.5, 0) in double from
 *   the float scale; i0 = (int)src,
 *   i1 = i0 + (i0 < in - 1); l1 = (float)(src - i0), l0 = 1 - l1; out = (s00 lx0 + s01 lx1) ly0 +
 *   (s10 lx0 + s11 lx1) ly1 (rows outer).
 *
 * Letters: C channels, H, W input, OH, OW output.
 */
#include "image.h"

/* The passes are plain loops over rows; GCC's -O2 leaves them scalar. O3 vectorises them
 * across output pixels only, which keeps each output's own sum order: results unchanged
 * (integer sums here; float sums keep their tap order, no reassociation without -ffast-math). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif

#include <math.h>
#include <string.h>

struct tv_axis {
    int n, ksize;
    int *bounds; /* (n, 2): first source index, tap count */
    float *w;    /* (n, ksize) */
};

static void tv_axis_free(struct tv_axis *ax)
{
    mv_free(ax->bounds);
    mv_free(ax->w);
    memset(ax, 0, sizeof *ax);
}

static float tri_filter(float x)
{
    if (x < 0.0f) x = -x;
    if (x < 1.0f) return (float)(1.0 - x);
    return 0.0f;
}

static enum medvlm_status tv_axis_aa(struct tv_axis *ax, int in, int out)
{
    memset(ax, 0, sizeof *ax);
    float scale = (float)in / (float)out;
    float support = scale >= 1.0f ? (float)((2 * 0.5) * scale) : (float)(2 * 0.5);
    float invscale = scale >= 1.0f ? (float)(1.0 / scale) : 1.0f;
    int ksize = (int)ceilf(support) * 2 + 1;
    if (ksize > in + 2) ksize = in + 2;
    ax->n = out;
    ax->ksize = ksize;
    ax->bounds = mv_calloc((size_t)out * 2, sizeof *ax->bounds);
    ax->w = mv_calloc((size_t)out * (size_t)ksize, sizeof *ax->w);
    if (!ax->bounds || !ax->w) {
        tv_axis_free(ax);
        return MEDVLM_ERR_NOMEM;
    }
    for (int i = 0; i < out; i++) {
        float center = (float)(scale * (i + 0.5));
        int64_t xmin = (int64_t)((double)(center - support) + 0.5);
        if (xmin < 0) xmin = 0;
        int64_t xmax = (int64_t)((double)(center + support) + 0.5);
        if (xmax > in) xmax = in;
        int xsize = (int)(xmax - xmin);
        if (xsize > ksize) xsize = ksize; /* cannot happen: ksize covers 2 * support + 1 */
        if (xsize < 0) xsize = 0;
        float *w = ax->w + (size_t)i * ksize, total = 0.0f;
        for (int j = 0; j < xsize; j++) {
            float d = (float)(j + xmin) - center;
            w[j] = tri_filter((float)(((double)d + 0.5) * invscale));
            total += w[j];
        }
        if (total != 0.0f)
            for (int j = 0; j < xsize; j++) w[j] /= total;
        ax->bounds[2 * i] = (int)xmin;
        ax->bounds[2 * i + 1] = xsize;
    }
    return MEDVLM_OK;
}

/* Linear (no antialias) index/weight pairs for one axis. */
static void tv_linear_index(int in, int out, int dst, int *i0, int *i1, float *l0, float *l1)
{
    if (in == out) {
        *i0 = *i1 = dst;
        *l0 = 1.0f;
        *l1 = 0.0f;
        return;
    }
    /* the scale is a float, the source index a double (checked against torch 1.13 weight by
     * weight: interpolating one-hot inputs gives the weights exactly) */
    float scale = (float)in / (float)out;
    double src = (double)scale * (dst + 0.5) - 0.5;
    if (src < 0) src = 0.0;
    int a = (int)src;
    *i0 = a;
    *i1 = a + (a < in - 1 ? 1 : 0);
    double lam = src - a;
    lam = lam < 0.0 ? 0.0 : lam > 1.0 ? 1.0 : lam;
    *l1 = (float)lam;
    *l0 = 1.0f - *l1;
}

/* The input: float planes (C, H, W), or HWC uint8 RGB read through a per-channel table
 * (lut[c][v] = the plane value v would have had: ToTensor + Normalize), which gives the same
 * floats without materialising the planes. */
struct tv_src {
    const float *planes;
    const uint8_t *rgb;
    const float (*lut)[256];
    int H, W;
};

static inline float tv_px(const struct tv_src *s, int c, size_t y, size_t x)
{
    if (s->rgb) return s->lut[c][s->rgb[(y * (size_t)s->W + x) * 3 + (size_t)c]];
    return s->planes[((size_t)c * s->H + y) * s->W + x];
}

static enum medvlm_status check_dims(int C, int H, int W, int OH, int OW)
{
    if (C <= 0 || H <= 0 || W <= 0 || OH <= 0 || OW <= 0)
        return mv_err(MEDVLM_ERR_ARG, "bilinear resize %dx%dx%d -> %dx%d: bad size", C, H, W, OH,
                      OW);
    return MEDVLM_OK;
}

static enum medvlm_status resize_linear(const struct tv_src *src, int C, int OH, int OW, float *dst)
{
    int H = src->H, W = src->W;
    int *xi = mv_malloc((size_t)OW * 2 * sizeof *xi);
    float *xl = mv_malloc((size_t)OW * 2 * sizeof *xl);
    if (!xi || !xl) {
        mv_free(xi);
        mv_free(xl);
        return MEDVLM_ERR_NOMEM;
    }
    for (int x = 0; x < OW; x++)
        tv_linear_index(W, OW, x, &xi[2 * x], &xi[2 * x + 1], &xl[2 * x], &xl[2 * x + 1]);
    for (int c = 0; c < C; c++) {
        for (int y = 0; y < OH; y++) {
            int y0, y1;
            float ly0, ly1;
            tv_linear_index(H, OH, y, &y0, &y1, &ly0, &ly1);
            float *d = dst + ((size_t)c * OH + y) * OW;
            for (int x = 0; x < OW; x++) {
                int a = xi[2 * x], b = xi[2 * x + 1];
                float wa = xl[2 * x], wb = xl[2 * x + 1];
                float t0 = tv_px(src, c, y0, a) * wa;
                t0 += tv_px(src, c, y0, b) * wb;
                float t1 = tv_px(src, c, y1, a) * wa;
                t1 += tv_px(src, c, y1, b) * wb;
                float o = t0 * ly0;
                o += t1 * ly1;
                d[x] = o;
            }
        }
    }
    mv_free(xi);
    mv_free(xl);
    return MEDVLM_OK;
}

static enum medvlm_status tv_resize(const struct tv_src *src, int C, int OH, int OW, int antialias,
                                    float *dst)
{
    int H = src->H, W = src->W;
    enum medvlm_status st = check_dims(C, H, W, OH, OW);
    if (st) return st;
    if (!antialias) return resize_linear(src, C, OH, OW, dst);
    int need_h = OW != W, need_v = OH != H;
    struct tv_axis ah = {0}, av = {0};
    float *mid = NULL;
    if ((need_h && (st = tv_axis_aa(&ah, W, OW))) || (need_v && (st = tv_axis_aa(&av, H, OH))))
        goto fail;
    const float *hsrc = src->planes; /* (C, H, OW) after the horizontal pass */
    if (need_h || (!src->planes && need_v)) {
        int hw = need_h ? OW : W;
        float *hout = need_v ? (mid = mv_malloc((size_t)C * H * hw * sizeof *mid)) : dst;
        if (!hout) {
            st = MEDVLM_ERR_NOMEM;
            goto fail;
        }
        if (src->rgb && need_h && C == 3) {
            /* the three channels of a row together: one pass over the interleaved bytes, each
             * output still summed in its own tap order */
            for (int y = 0; y < H; y++) {
                const uint8_t *row = src->rgb + (size_t)y * W * 3;
                const float *l0 = src->lut[0], *l1 = src->lut[1], *l2 = src->lut[2];
                float *d0 = hout + (size_t)y * OW, *d1 = d0 + (size_t)H * OW,
                      *d2 = d1 + (size_t)H * OW;
                for (int i = 0; i < OW; i++) {
                    const float *w = ah.w + (size_t)i * ah.ksize;
                    int cnt = ah.bounds[2 * i + 1];
                    const uint8_t *p = row + (size_t)ah.bounds[2 * i] * 3;
                    float o0 = 0.0f, o1 = 0.0f, o2 = 0.0f;
                    if (cnt > 0) {
                        o0 = l0[p[0]] * w[0];
                        o1 = l1[p[1]] * w[0];
                        o2 = l2[p[2]] * w[0];
                    }
                    for (int j = 1; j < cnt; j++) {
                        o0 += l0[p[3 * j]] * w[j];
                        o1 += l1[p[3 * j + 1]] * w[j];
                        o2 += l2[p[3 * j + 2]] * w[j];
                    }
                    d0[i] = o0;
                    d1[i] = o1;
                    d2[i] = o2;
                }
            }
        } else {
            for (int c = 0; c < C; c++)
                for (int y = 0; y < H; y++) {
                    float *d = hout + ((size_t)c * H + y) * hw;
                    if (!need_h) { /* planes from the table, for the vertical pass */
                        for (int x = 0; x < W; x++) d[x] = tv_px(src, c, y, x);
                        continue;
                    }
                    for (int i = 0; i < OW; i++) {
                        const float *w = ah.w + (size_t)i * ah.ksize;
                        int x0 = ah.bounds[2 * i], cnt = ah.bounds[2 * i + 1];
                        float o = cnt > 0 ? tv_px(src, c, y, x0) * w[0] : 0.0f;
                        for (int j = 1; j < cnt; j++) o += tv_px(src, c, y, x0 + j) * w[j];
                        d[i] = o;
                    }
                }
        }
        hsrc = hout;
    }
    if (need_v) {
        for (int c = 0; c < C; c++) {
            const float *p = hsrc + (size_t)c * H * OW;
            for (int i = 0; i < OH; i++) {
                const float *w = av.w + (size_t)i * av.ksize;
                int y0 = av.bounds[2 * i], cnt = av.bounds[2 * i + 1];
                float *d = dst + ((size_t)c * OH + i) * OW;
                if (cnt <= 0) {
                    memset(d, 0, (size_t)OW * sizeof *d);
                    continue;
                }
                const float *r = p + (size_t)y0 * OW;
                for (int x = 0; x < OW; x++) d[x] = r[x] * w[0];
                for (int j = 1; j < cnt; j++) {
                    r = p + (size_t)(y0 + j) * OW;
                    float wj = w[j];
                    for (int x = 0; x < OW; x++) d[x] += r[x] * wj;
                }
            }
        }
    }
    if (!need_h && !need_v)
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) dst[((size_t)c * H + y) * W + x] = tv_px(src, c, y, x);
fail:
    tv_axis_free(&ah);
    tv_axis_free(&av);
    mv_free(mid);
    return st;
}

enum medvlm_status mv_tv_resize(const float *src, int C, int H, int W, int OH, int OW,
                                int antialias, float *dst)
{
    struct tv_src s = {.planes = src, .H = H, .W = W};
    return tv_resize(&s, C, OH, OW, antialias, dst);
}

enum medvlm_status mv_tv_resize_rgb8(const uint8_t *rgb, int H, int W, const float lut[3][256],
                                     int OH, int OW, int antialias, float *dst)
{
    struct tv_src s = {.rgb = rgb, .lut = lut, .H = H, .W = W};
    return tv_resize(&s, 3, OH, OW, antialias, dst);
}

enum medvlm_status mv_tv_resize_naive(const float *src, int C, int H, int W, int OH, int OW,
                                      int antialias, float *dst)
{
    enum medvlm_status st = check_dims(C, H, W, OH, OW);
    if (st) return st;
    if (!antialias) {
        for (int c = 0; c < C; c++)
            for (int y = 0; y < OH; y++)
                for (int x = 0; x < OW; x++) {
                    int y0, y1, x0, x1;
                    float ly0, ly1, lx0, lx1;
                    tv_linear_index(H, OH, y, &y0, &y1, &ly0, &ly1);
                    tv_linear_index(W, OW, x, &x0, &x1, &lx0, &lx1);
                    const float *p = src + (size_t)c * H * W;
                    float t0 = p[(size_t)y0 * W + x0] * lx0;
                    t0 += p[(size_t)y0 * W + x1] * lx1;
                    float t1 = p[(size_t)y1 * W + x0] * lx0;
                    t1 += p[(size_t)y1 * W + x1] * lx1;
                    float o = t0 * ly0;
                    o += t1 * ly1;
                    dst[((size_t)c * OH + y) * OW + x] = o;
                }
        return MEDVLM_OK;
    }
    /* each output pixel on its own: horizontal sums of the rows its vertical taps need */
    struct tv_axis ah = {0}, av = {0};
    int need_h = OW != W, need_v = OH != H;
    if ((need_h && (st = tv_axis_aa(&ah, W, OW))) || (need_v && (st = tv_axis_aa(&av, H, OH))))
        goto fail;
    for (int c = 0; c < C; c++)
        for (int y = 0; y < OH; y++)
            for (int x = 0; x < OW; x++) {
                const float *p = src + (size_t)c * H * W;
                int ny = need_v ? av.bounds[2 * y + 1] : 1;
                float o = 0.0f;
                for (int j = 0; j < ny; j++) {
                    int sy = need_v ? av.bounds[2 * y] + j : y;
                    float h;
                    if (need_h) {
                        int nx = ah.bounds[2 * x + 1];
                        const float *w = ah.w + (size_t)x * ah.ksize;
                        h = nx > 0 ? p[(size_t)sy * W + ah.bounds[2 * x]] * w[0] : 0.0f;
                        for (int i = 1; i < nx; i++)
                            h += p[(size_t)sy * W + ah.bounds[2 * x] + i] * w[i];
                    } else {
                        h = p[(size_t)sy * W + x];
                    }
                    if (!need_v)
                        o = h;
                    else if (j == 0)
                        o = h * av.w[(size_t)y * av.ksize];
                    else
                        o += h * av.w[(size_t)y * av.ksize + j];
                }
                dst[((size_t)c * OH + y) * OW + x] = o;
            }
fail:
    tv_axis_free(&ah);
    tv_axis_free(&av);
    return st;
}

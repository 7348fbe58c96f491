/*
 * resize_pil.c - Pillow's Image.resize (ImagingResample, 8 bits per channel) bit for bit:
 * double-precision filter weights per output pixel, normalised, rounded to 22-bit fixed point;
 * a horizontal pass over the source rows the vertical pass needs, then a vertical pass on that
 * uint8 intermediate; each output = clamp8((2^21 + sum src_j * k_j) >> 22). An axis whose size
 * does not change is not resampled (Pillow copies it).
 *
 * The fast version computes only a window of the result (the centre crop): every output pixel
 * depends only on its own taps, so the window of the full resize equals the resize of the
 * window's taps. The naive sibling resizes the full image in Pillow's loop order and crops.
 * Integer sums are exact, so the two agree bit for bit whatever the summation order.
 *
 * Letters: H, W source; OH, OW full output; (y0, x0, wh, ww) the window.
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

#define PRECISION_BITS (32 - 8 - 2)

/* Pillow's filters, evaluated in Pillow's expression order (the weights are rounded to fixed
 * point afterwards, so the last bit of the double can matter). */
static double bicubic_filter(double x)
{
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static double bilinear_filter(double x)
{
    if (x < 0.0) x = -x;
    if (x < 1.0) return 1.0 - x;
    return 0.0;
}

static inline uint8_t clip8(int32_t v)
{
    if (v >= (1 << PRECISION_BITS << 8)) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> PRECISION_BITS);
}

void mv_pil_axis_free(struct mv_pil_axis *ax)
{
    mv_free(ax->bounds);
    mv_free(ax->k);
    memset(ax, 0, sizeof *ax);
}

enum medvlm_status mv_pil_axis_init(struct mv_pil_axis *ax, int in_size, int out_size, int o0,
                                    int n, enum medvlm_resample filter)
{
    memset(ax, 0, sizeof *ax);
    if (in_size <= 0 || out_size <= 0 || o0 < 0 || n < 0 || o0 > out_size - n)
        return mv_err(MEDVLM_ERR_ARG, "resize axis %d -> %d, window [%d, %d) out of range", in_size,
                      out_size, o0, o0 + n);
    double (*fn)(double) = filter == MEDVLM_RESAMPLE_BILINEAR ? bilinear_filter : bicubic_filter;
    double fsupport = filter == MEDVLM_RESAMPLE_BILINEAR ? 1.0 : 2.0;
    double scale = (double)((float)in_size - 0.0f) / out_size, filterscale = scale;
    if (filterscale < 1.0) filterscale = 1.0;
    double support = fsupport * filterscale;
    double ksize_d = ceil(support) * 2 + 1;
    if (ksize_d > (double)in_size + 8) ksize_d = (double)in_size + 8; /* taps never exceed in */
    int ksize = (int)ksize_d;
    ax->n = n;
    ax->ksize = ksize;
    ax->bounds = mv_calloc((size_t)(n ? n : 1) * 2, sizeof *ax->bounds);
    ax->k = mv_calloc((size_t)(n ? n : 1) * (size_t)ksize, sizeof *ax->k);
    double *kd = mv_calloc((size_t)ksize, sizeof *kd);
    if (!ax->bounds || !ax->k || !kd) {
        mv_free(kd);
        mv_pil_axis_free(ax);
        return MEDVLM_ERR_NOMEM;
    }
    for (int i = 0; i < n; i++) {
        int xx = o0 + i;
        double center = 0.0 + (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        if (xmax > ksize) xmax = ksize; /* cannot happen: ksize covers 2 * support + 1 */
        for (int x = 0; x < xmax; x++) {
            double wgt = fn((x + xmin - center + 0.5) * ss);
            kd[x] = wgt;
            ww += wgt;
        }
        for (int x = 0; x < xmax; x++)
            if (ww != 0.0) kd[x] /= ww;
        int32_t *k = ax->k + (size_t)i * ksize;
        for (int x = 0; x < xmax; x++)
            k[x] = kd[x] < 0 ? (int32_t)(-0.5 + kd[x] * (1 << PRECISION_BITS))
                             : (int32_t)(0.5 + kd[x] * (1 << PRECISION_BITS));
        ax->bounds[2 * i] = xmin;
        ax->bounds[2 * i + 1] = xmax;
    }
    mv_free(kd);
    return MEDVLM_OK;
}

/* Horizontal pass: rows [r0, r0 + nr) of src (W wide) -> tmp (nr, ax->n, 3). */
static void horizontal(const uint8_t *src, int W, int r0, int nr, const struct mv_pil_axis *ax,
                       uint8_t *tmp)
{
    for (int r = 0; r < nr; r++) {
        const uint8_t *s = src + (size_t)(r0 + r) * W * 3;
        uint8_t *d = tmp + (size_t)r * ax->n * 3;
        for (int i = 0; i < ax->n; i++) {
            const int32_t *k = ax->k + (size_t)i * ax->ksize;
            const uint8_t *p = s + (size_t)ax->bounds[2 * i] * 3;
            int cnt = ax->bounds[2 * i + 1];
            int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (int j = 0; j < cnt; j++) {
                s0 += p[3 * j] * k[j];
                s1 += p[3 * j + 1] * k[j];
                s2 += p[3 * j + 2] * k[j];
            }
            d[3 * i] = clip8(s0);
            d[3 * i + 1] = clip8(s1);
            d[3 * i + 2] = clip8(s2);
        }
    }
}

#if defined(__SSE2__)
/*
 * The same pass with SSE2, exactly: each 22-bit weight k = kh * 2048 + kl (0 <= kl < 2048,
 * |kh| < 4096) so that both halves are int16; two taps at a time, the bytes of pixels j and j+1
 * interleaved (R R G G B B x x) and multiplied-added with _mm_madd_epi16 into int32 lanes R, G, B.
 * sum p k = 2048 sum p kh + sum p kl, all in int32 without overflow for up to 2000 taps (the
 * caller falls back to the scalar pass beyond), so the result is Pillow's integer sum.
 * Each pixel is loaded as 4 bytes: the last row of the image is read from a padded copy.
 */
#include <emmintrin.h>

#define SSE2_MAX_TAPS 2000

struct hweights {
    int pairs;   /* pairs per output: ceil(ksize / 2) */
    int16_t *wv; /* (n, pairs, 2, 8): low halves then high halves, as R R G G B B 0 0 lanes */
};

static enum medvlm_status hweights_init(struct hweights *hw, const struct mv_pil_axis *ax)
{
    hw->pairs = (ax->ksize + 1) / 2;
    hw->wv = mv_aligned_zeros((size_t)ax->n * hw->pairs * 16 * sizeof *hw->wv);
    if (!hw->wv) return MEDVLM_ERR_NOMEM;
    for (int i = 0; i < ax->n; i++) {
        const int32_t *k = ax->k + (size_t)i * ax->ksize;
        int cnt = ax->bounds[2 * i + 1];
        for (int q = 0; 2 * q < cnt; q++) {
            int16_t *w = hw->wv + ((size_t)i * hw->pairs + q) * 16;
            for (int t = 0; t < 2; t++) {
                int j = 2 * q + t;
                int32_t kj = j < cnt ? k[j] : 0;
                int32_t lo = kj & 2047, hi = (kj - lo) / 2048;
                for (int c = 0; c < 3; c++) {
                    w[2 * c + t] = (int16_t)lo;
                    w[8 + 2 * c + t] = (int16_t)hi;
                }
            }
        }
    }
    return MEDVLM_OK;
}

static inline __m128i load_px(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm_cvtsi32_si128(v);
}

/* rows [r0, r0 + nr) of src (H x W) -> tmp; lastrow: W * 3 + 4 bytes of scratch */
static void horizontal_sse2(const uint8_t *src, int H, int W, int r0, int nr,
                            const struct mv_pil_axis *ax, const struct hweights *hw,
                            uint8_t *lastrow, uint8_t *tmp)
{
    const __m128i zero = _mm_setzero_si128();
    const __m128i round = _mm_set1_epi32(1 << (PRECISION_BITS - 1));
    for (int r = 0; r < nr; r++) {
        const uint8_t *s = src + (size_t)(r0 + r) * W * 3;
        if (r0 + r == H - 1) { /* the 4-byte load of the last pixel must stay in bounds */
            memcpy(lastrow, s, (size_t)W * 3);
            memset(lastrow + (size_t)W * 3, 0, 4);
            s = lastrow;
        }
        uint8_t *d = tmp + (size_t)r * ax->n * 3;
        for (int i = 0; i < ax->n; i++) {
            const uint8_t *p = s + (size_t)ax->bounds[2 * i] * 3;
            int cnt = ax->bounds[2 * i + 1];
            const __m128i *w = (const __m128i *)(hw->wv + (size_t)i * hw->pairs * 16);
            __m128i lo = zero, hi = zero;
            for (int j = 0; j < cnt; j += 2, w += 2) {
                __m128i a = load_px(p + 3 * j);
                __m128i b = j + 1 < cnt ? load_px(p + 3 * j + 3) : a;
                __m128i v = _mm_unpacklo_epi8(_mm_unpacklo_epi8(a, b), zero);
                lo = _mm_add_epi32(lo, _mm_madd_epi16(v, _mm_load_si128(w)));
                hi = _mm_add_epi32(hi, _mm_madd_epi16(v, _mm_load_si128(w + 1)));
            }
            __m128i sum = _mm_add_epi32(_mm_add_epi32(_mm_slli_epi32(hi, 11), lo), round);
            int32_t out[4];
            _mm_storeu_si128((__m128i *)out, sum);
            d[3 * i] = clip8(out[0]);
            d[3 * i + 1] = clip8(out[1]);
            d[3 * i + 2] = clip8(out[2]);
        }
    }
}
#endif

/* Vertical pass: src rows are relative to row r0 (stride `stride` bytes, `len` bytes used
 * from column byte offset `off`); output rows per ax. acc holds `len` int32. */
static void vertical(const uint8_t *src, size_t stride, size_t off, size_t len, int r0,
                     const struct mv_pil_axis *ax, int32_t *acc, uint8_t *dst, size_t dstride)
{
    for (int i = 0; i < ax->n; i++) {
        const int32_t *k = ax->k + (size_t)i * ax->ksize;
        int ymin = ax->bounds[2 * i] - r0, cnt = ax->bounds[2 * i + 1];
        for (size_t e = 0; e < len; e++) acc[e] = 1 << (PRECISION_BITS - 1);
        for (int j = 0; j < cnt; j++) {
            const uint8_t *s = src + (size_t)(ymin + j) * stride + off;
            int32_t kj = k[j];
            for (size_t e = 0; e < len; e++) acc[e] += s[e] * kj;
        }
        uint8_t *d = dst + (size_t)i * dstride;
        for (size_t e = 0; e < len; e++) d[e] = clip8(acc[e]);
    }
}

enum medvlm_status mv_pil_resize_window(const uint8_t *src, int H, int W, int OH, int OW, int y0,
                                        int x0, int wh, int ww, enum medvlm_resample filter,
                                        uint8_t *dst)
{
    if (H <= 0 || W <= 0 || OH <= 0 || OW <= 0 || wh <= 0 || ww <= 0)
        return mv_err(MEDVLM_ERR_ARG, "resize %dx%d -> %dx%d window %dx%d: bad size", W, H, OW, OH,
                      ww, wh);
    memset(dst, 0, (size_t)wh * ww * 3);
    /* the part of the window inside the resized image */
    int vy0 = MV_MAX(y0, 0), vy1 = MV_MIN(y0 + wh, OH);
    int vx0 = MV_MAX(x0, 0), vx1 = MV_MIN(x0 + ww, OW);
    if (vy0 >= vy1 || vx0 >= vx1) return MEDVLM_OK;
    int ny = vy1 - vy0, nx = vx1 - vx0;
    int need_h = OW != W, need_v = OH != H;
    uint8_t *out0 = dst + ((size_t)(vy0 - y0) * ww + (vx0 - x0)) * 3;
    size_t dstride = (size_t)ww * 3;
    struct mv_pil_axis ah = {0}, av = {0};
    uint8_t *tmp = NULL, *lastrow = NULL;
    int32_t *acc = NULL;
    enum medvlm_status st = MEDVLM_OK;
#if defined(__SSE2__)
    struct hweights hw = {0};
#define HORIZONTAL(first, count, out)                                                              \
    (hw.wv ? horizontal_sse2(src, H, W, first, count, &ah, &hw, lastrow, out)                      \
           : horizontal(src, W, first, count, &ah, out))
#else
#define HORIZONTAL(first, count, out) horizontal(src, W, first, count, &ah, out)
#endif

    /* source rows the output rows need */
    int r0 = vy0, r1 = vy1;
    if (need_v) {
        st = mv_pil_axis_init(&av, H, OH, vy0, ny, filter);
        if (st) goto fail;
        r0 = av.bounds[0];
        r1 = av.bounds[2 * (ny - 1)] + av.bounds[2 * (ny - 1) + 1];
        acc = mv_malloc((size_t)nx * 3 * sizeof *acc);
        if (!acc) {
            st = MEDVLM_ERR_NOMEM;
            goto fail;
        }
    }
    if (need_h) {
        st = mv_pil_axis_init(&ah, W, OW, vx0, nx, filter);
        if (st) goto fail;
#if defined(__SSE2__)
        if (ah.ksize <= SSE2_MAX_TAPS) {
            if ((st = hweights_init(&hw, &ah))) goto fail;
            lastrow = mv_malloc((size_t)W * 3 + 4);
            if (!lastrow) {
                st = MEDVLM_ERR_NOMEM;
                goto fail;
            }
        }
#endif
        if (need_v) {
            tmp = mv_malloc((size_t)(r1 - r0) * nx * 3);
            if (!tmp) {
                st = MEDVLM_ERR_NOMEM;
                goto fail;
            }
            HORIZONTAL(r0, r1 - r0, tmp);
            vertical(tmp, (size_t)nx * 3, 0, (size_t)nx * 3, r0, &av, acc, out0, dstride);
        } else {
            for (int r = 0; r < ny; r++) HORIZONTAL(vy0 + r, 1, out0 + (size_t)r * dstride);
        }
    } else if (need_v) {
        vertical(src, (size_t)W * 3, (size_t)vx0 * 3, (size_t)nx * 3, 0, &av, acc, out0, dstride);
    } else {
        for (int r = 0; r < ny; r++)
            memcpy(out0 + (size_t)r * dstride, src + ((size_t)(vy0 + r) * W + vx0) * 3,
                   (size_t)nx * 3);
    }
fail:
#undef HORIZONTAL
#if defined(__SSE2__)
    mv_free(hw.wv);
#endif
    mv_pil_axis_free(&ah);
    mv_pil_axis_free(&av);
    mv_free(tmp);
    mv_free(lastrow);
    mv_free(acc);
    return st;
}

enum medvlm_status mv_pil_resize_window_naive(const uint8_t *src, int H, int W, int OH, int OW,
                                              int y0, int x0, int wh, int ww,
                                              enum medvlm_resample filter, uint8_t *dst)
{
    struct mv_pil_axis ah = {0}, av = {0};
    uint8_t *mid = NULL, *full = NULL;
    enum medvlm_status st = MEDVLM_OK;
    int need_h = OW != W, need_v = OH != H;
    if ((st = mv_pil_axis_init(&ah, W, OW, 0, OW, filter)) ||
        (st = mv_pil_axis_init(&av, H, OH, 0, OH, filter)))
        goto fail;
    /* Pillow: horizontal pass over rows [ybox_first, ybox_last), then vertical */
    int yf = need_v ? av.bounds[0] : 0;
    int yl = need_v ? av.bounds[2 * (OH - 1)] + av.bounds[2 * (OH - 1) + 1] : H;
    mid = mv_malloc((size_t)(yl - yf) * OW * 3);
    full = mv_malloc((size_t)OH * OW * 3);
    if (!mid || !full) {
        st = MEDVLM_ERR_NOMEM;
        goto fail;
    }
    for (int y = 0; y < yl - yf; y++)
        for (int x = 0; x < OW; x++)
            for (int c = 0; c < 3; c++) {
                uint8_t v;
                if (need_h) {
                    int32_t ss = 1 << (PRECISION_BITS - 1);
                    const int32_t *k = ah.k + (size_t)x * ah.ksize;
                    for (int j = 0; j < ah.bounds[2 * x + 1]; j++)
                        ss += src[((size_t)(y + yf) * W + ah.bounds[2 * x] + j) * 3 + c] * k[j];
                    v = clip8(ss);
                } else {
                    v = src[((size_t)(y + yf) * W + x) * 3 + c];
                }
                mid[((size_t)y * OW + x) * 3 + c] = v;
            }
    for (int y = 0; y < OH; y++)
        for (int x = 0; x < OW; x++)
            for (int c = 0; c < 3; c++) {
                uint8_t v;
                if (need_v) {
                    int32_t ss = 1 << (PRECISION_BITS - 1);
                    const int32_t *k = av.k + (size_t)y * av.ksize;
                    for (int j = 0; j < av.bounds[2 * y + 1]; j++)
                        ss += mid[((size_t)(av.bounds[2 * y] - yf + j) * OW + x) * 3 + c] * k[j];
                    v = clip8(ss);
                } else {
                    v = mid[((size_t)y * OW + x) * 3 + c];
                }
                full[((size_t)y * OW + x) * 3 + c] = v;
            }
    for (int y = 0; y < wh; y++)
        for (int x = 0; x < ww; x++)
            for (int c = 0; c < 3; c++) {
                int sy = y + y0, sx = x + x0;
                dst[((size_t)y * ww + x) * 3 + c] = sy >= 0 && sy < OH && sx >= 0 && sx < OW
                                                        ? full[((size_t)sy * OW + sx) * 3 + c]
                                                        : 0;
            }
fail:
    mv_pil_axis_free(&ah);
    mv_pil_axis_free(&av);
    mv_free(mid);
    mv_free(full);
    return st;
}

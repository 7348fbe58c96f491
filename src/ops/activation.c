/*
 * activation.c - the MLP activations, applied in place after the fc1 GEMM (whose bias the
 * GEMM already added): quick_gelu x*sigmoid(1.702x) (CLIP, PLIP) and exact gelu
 * 0.5x(1 + erf(x/sqrt 2)).
 *
 * quick_gelu runs on every element of the (R, I) MLP hidden layer: with libm's scalar expf
 * it was ~7% of a ViT-B/32 forward. mv_expf16 below is a branch-free exp on 16 lanes (Cody-Waite
 * range reduction, degree-7 polynomial: relative error ~1e-7, within ~2 float ulps of expf),
 * compiled for AVX-512, AVX2 and the baseline, picked at load time. No -ffast-math.
 *
 * Glossary: n elements (R rows x I MLP width, contiguous).
 */
#include "ops.h"

#include <math.h>
#include <string.h>

/* The AVX-512 and AVX2 clones pass 16-float vectors in registers; unoptimised builds (the
 * sanitizer pass) keep the helpers as real calls compiled for the default ABI, so they get no
 * clones. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && defined(__OPTIMIZE__)
#define MV_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MV_CLONES
#endif

/* 16 floats as one value: GCC's vector extension (one AVX-512 register in the x86-64-v4 clone,
 * two AVX2 registers in the x86-64-v3 one, four SSE registers otherwise). Every operation is
 * lane by lane, so each element gets the same bits in every clone. Comparisons give lane
 * masks, so the clamps need no branches. */
/* v16f only crosses always_inline helpers, which take the caller's target: no ABI boundary */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float v16f __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));

/* lane-wise select: m ? a : b for masks of all ones / zeros (C has no vector ?:) */
static inline __attribute__((always_inline)) v16f select16(v16i m, v16f a, v16f b)
{
    return (v16f)((m & (v16i)a) | (~m & (v16i)b));
}

static inline __attribute__((always_inline)) v16f splat(float a)
{
    return (v16f){a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a};
}

/* exp(x) per lane for x in [-87, 88], clamped outside (quick_gelu needs no more range).
 * Compiled with -std=c11, so no multiply-add is fused: the same bits in every clone. */
static inline __attribute__((always_inline)) v16f mv_expf16(v16f x)
{
    v16f lo = splat(-87.0f), hi = splat(88.0f);
    x = select16(x < lo, lo, x);
    x = select16(x > hi, hi, x);
    /* x = n ln2 + r, |r| <= ln2/2; n rounded to nearest by the 1.5*2^23 shift */
    v16f shift = splat(12582912.0f);
    v16f n = (x * splat(1.44269504088896341f) + shift) - shift;
    v16f r = x - n * splat(0.693145751953125f); /* ln2 split: n * high part is exact */
    r = r - n * splat(1.42860682030941723212e-6f);
    /* e^r by its Taylor series to r^7 (|r| <= 0.347: truncation < 1e-8 relative) */
    v16f p = splat(1.0f / 5040.0f);
    p = p * r + splat(1.0f / 720.0f);
    p = p * r + splat(1.0f / 120.0f);
    p = p * r + splat(1.0f / 24.0f);
    p = p * r + splat(1.0f / 6.0f);
    p = p * r + splat(0.5f);
    p = p * r + splat(1.0f);
    p = p * r + splat(1.0f);
    /* times 2^n built in the exponent bits */
    v16i bits = (__builtin_convertvector(n, v16i) + 127) << 23;
    v16f scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* exp per lane with underflow to exactly 0 below -87.3 (where expf turns denormal), so
 * masked attention scores (-FLT_MAX, -inf) give 0 as with expf. */
static inline __attribute__((always_inline)) v16f exp0_16(v16f x)
{
    v16f e = mv_expf16(x);
    return select16(x < splat(-87.3f), splat(0.0f), e);
}

MV_CLONES void mv_exp_span(float *x, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        v16f v;
        memcpy(&v, x + i, sizeof v);
        v = exp0_16(v);
        memcpy(x + i, &v, sizeof v);
    }
    if (i < n) {
        v16f v = splat(0.0f);
        memcpy(&v, x + i, (n - i) * sizeof(float));
        v = exp0_16(v);
        memcpy(x + i, &v, (n - i) * sizeof(float));
    }
}

static inline __attribute__((always_inline)) v16f quick_gelu16(v16f x)
{
    return x / (splat(1.0f) + mv_expf16(splat(-1.702f) * x));
}

MV_CLONES static void quick_gelu_span(float *x, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        v16f v;
        memcpy(&v, x + i, sizeof v);
        v = quick_gelu16(v);
        memcpy(x + i, &v, sizeof v);
    }
    if (i < n) { /* the tail through the same lanes: the same bits as in the body */
        v16f v = splat(0.0f);
        memcpy(&v, x + i, (n - i) * sizeof(float));
        v = quick_gelu16(v);
        memcpy(x + i, &v, (n - i) * sizeof(float));
    }
}

static void gelu_span(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752440f));
}

void mv_act_forward(float *x, enum medvlm_act act, size_t n)
{
    // x (n) in place
    const size_t chunk = 8192;
    long nchunks = (long)((n + chunk - 1) / chunk);
#pragma omp parallel for schedule(static) if (n > 262144)
    for (long c = 0; c < nchunks; c++) {
        size_t lo = (size_t)c * chunk, len = MV_MIN(n - lo, chunk);
        if (act == MEDVLM_ACT_GELU)
            gelu_span(x + lo, len);
        else
            quick_gelu_span(x + lo, len);
    }
}

void mv_act_rows(float *C, int ldc, int m, int n, enum medvlm_act act)
{
    // C (m rows of n, row stride ldc) in place
    for (int r = 0; r < m; r++) {
        float *row = C + (size_t)r * (size_t)ldc;
        if (act == MEDVLM_ACT_GELU)
            gelu_span(row, (size_t)n);
        else
            quick_gelu_span(row, (size_t)n);
    }
}

void mv_act_forward_naive(float *x, enum medvlm_act act, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        x[i] = act == MEDVLM_ACT_GELU ? (float)(0.5 * v * (1.0 + erf(v / sqrt(2.0))))
                                      : (float)(v / (1.0 + exp(-1.702 * v)));
    }
}

void mv_act_forward_copy(float *out, const float *inp, enum medvlm_act act, size_t n)
{
    // out (n), inp (n)
    /* copy a chunk, then the in-place kernel on it: the very code of mv_act_forward, the
     * same bits; chunk by chunk so the copy is still in cache when the kernel reads it */
    const size_t chunk = 8192;
    long nchunks = (long)((n + chunk - 1) / chunk);
#pragma omp parallel for schedule(static) if (n > 262144)
    for (long c = 0; c < nchunks; c++) {
        size_t lo = (size_t)c * chunk, len = MV_MIN(n - lo, chunk);
        if (out != inp) memcpy(out + lo, inp + lo, len * sizeof *out);
        if (act == MEDVLM_ACT_GELU)
            gelu_span(out + lo, len);
        else
            quick_gelu_span(out + lo, len);
    }
}

/* quick_gelu(x) = x s with s = sigmoid(1.702 x), and sigmoid' = s (1 - s), so
 * quick_gelu'(x) = s + 1.702 x s (1 - s). s from the same 16-lane exp as the forward. */
static inline __attribute__((always_inline)) v16f quick_gelu_grad16(v16f x)
{
    v16f one = splat(1.0f);
    v16f s = one / (one + mv_expf16(splat(-1.702f) * x));
    return s + splat(1.702f) * x * s * (one - s);
}

/* set: dinp starts from +0 instead of its contents (0 + x is x, and +0 + -0 is +0 as after a
 * zeroing pass), so both forms give the same bits. dout is read before dinp is written, lane
 * block by lane block, so dinp may alias dout. */
MV_CLONES static void quick_gelu_backward_span(float *dinp, const float *dout, const float *x,
                                               size_t n, int set)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        v16f vx, vd, vg = splat(0.0f);
        memcpy(&vx, x + i, sizeof vx);
        memcpy(&vd, dout + i, sizeof vd);
        if (!set) memcpy(&vg, dinp + i, sizeof vg);
        vg += vd * quick_gelu_grad16(vx);
        memcpy(dinp + i, &vg, sizeof vg);
    }
    if (i < n) { /* the tail through the same lanes */
        v16f vx = splat(0.0f), vd = splat(0.0f), vg = splat(0.0f);
        memcpy(&vx, x + i, (n - i) * sizeof(float));
        memcpy(&vd, dout + i, (n - i) * sizeof(float));
        if (!set) memcpy(&vg, dinp + i, (n - i) * sizeof(float));
        vg += vd * quick_gelu_grad16(vx);
        memcpy(dinp + i, &vg, (n - i) * sizeof(float));
    }
}

/* gelu(x) = x Phi(x) with Phi the standard normal CDF 0.5 (1 + erf(x / sqrt 2)) and
 * Phi' = phi = exp(-x^2 / 2) / sqrt(2 pi), so gelu'(x) = Phi(x) + x phi(x). */
static void gelu_backward_span(float *dinp, const float *dout, const float *x, size_t n, int set)
{
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float cdf = 0.5f * (1.0f + erff(v * 0.70710678118654752440f));
        float pdf = expf(-0.5f * v * v) * 0.39894228040143267794f;
        dinp[i] = (set ? 0.0f : dinp[i]) + dout[i] * (cdf + v * pdf);
    }
}

static void act_backward(float *dinp, const float *dout, const float *inp, enum medvlm_act act,
                         size_t n, int set)
{
    // dinp (n), dout (n), inp (n)
    const size_t chunk = 8192;
    long nchunks = (long)((n + chunk - 1) / chunk);
#pragma omp parallel for schedule(static) if (n > 262144)
    for (long c = 0; c < nchunks; c++) {
        size_t lo = (size_t)c * chunk, len = MV_MIN(n - lo, chunk);
        if (act == MEDVLM_ACT_GELU)
            gelu_backward_span(dinp + lo, dout + lo, inp + lo, len, set);
        else
            quick_gelu_backward_span(dinp + lo, dout + lo, inp + lo, len, set);
    }
}

void mv_act_backward(float *dinp, const float *dout, const float *inp, enum medvlm_act act,
                     size_t n)
{
    act_backward(dinp, dout, inp, act, n, 0);
}

void mv_act_backward_set(float *dinp, const float *dout, const float *inp, enum medvlm_act act,
                         size_t n)
{
    act_backward(dinp, dout, inp, act, n, 1);
}

void mv_act_backward_naive(float *dinp, const float *dout, const float *inp, enum medvlm_act act,
                           size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double v = inp[i], d;
        if (act == MEDVLM_ACT_GELU) {
            d = 0.5 * (1.0 + erf(v / sqrt(2.0))) + v * exp(-0.5 * v * v) * 0.39894228040143267794;
        } else {
            double s = 1.0 / (1.0 + exp(-1.702 * v));
            d = s + 1.702 * v * s * (1.0 - s);
        }
        dinp[i] = (float)(dinp[i] + (double)dout[i] * d);
    }
}

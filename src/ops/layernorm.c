/*
 * layernorm.c - LayerNorm over the last dimension: (x - mean) / sqrt(var + eps) * w + b with
 * the biased variance, as torch.nn.LayerNorm. Two passes with double accumulators, so the
 * statistics are exact to float rounding whatever C is.
 *
 * Glossary: R rows, C width.
 */
#include "ops.h"

#include <math.h>

/* The AVX2 clone passes 8-float vectors in registers; unoptimised builds (the sanitizer
 * pass) keep the helpers as real calls compiled for the default ABI, so they get no clones. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && defined(__OPTIMIZE__)
#define MV_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define MV_CLONES
#endif

/* One row. The simd reductions fix the summation order at compile time (lanes, then the
 * lanes summed), so the bits do not depend on threads; -std=c11 fuses no multiply-add. */
MV_CLONES static void layernorm_row(float *o, float *mean, float *rstd, const float *x,
                                    const float *w, const float *b, int C, float eps)
{
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < C; i++) s += x[i];
    double m = s / C, v = 0;
#pragma omp simd reduction(+ : v)
    for (int i = 0; i < C; i++) {
        double d = x[i] - m;
        v += d * d;
    }
    v /= C;
    float mf = (float)m, rs = (float)(1.0 / sqrt(v + (double)eps));
#pragma omp simd
    for (int i = 0; i < C; i++) o[i] = (x[i] - mf) * rs * w[i] + b[i];
    if (mean) *mean = mf;
    if (rstd) *rstd = rs;
}

void mv_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                          const float *b, int R, int C, float eps)
{
    // out (R, C), mean (R), rstd (R), inp (R, C), w (C), b (C)
#pragma omp parallel for schedule(static) if ((size_t)R * C > 262144)
    for (int r = 0; r < R; r++)
        layernorm_row(out + (size_t)r * C, mean ? mean + r : NULL, rstd ? rstd + r : NULL,
                      inp + (size_t)r * C, w, b, C, eps);
}

void mv_layernorm_forward_naive(float *out, float *mean, float *rstd, const float *inp,
                                const float *w, const float *b, int R, int C, float eps)
{
    for (int r = 0; r < R; r++) {
        const float *x = inp + (size_t)r * C;
        double m = 0, v = 0;
        for (int i = 0; i < C; i++) m += x[i];
        m /= C;
        for (int i = 0; i < C; i++) v += ((double)x[i] - m) * ((double)x[i] - m);
        v /= C;
        double rs = 1.0 / sqrt(v + eps);
        for (int i = 0; i < C; i++)
            out[(size_t)r * C + i] = (float)(((double)x[i] - m) * rs * w[i] + b[i]);
        if (mean) mean[r] = (float)m;
        if (rstd) rstd[r] = (float)rs;
    }
}

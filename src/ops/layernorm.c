/*
 * layernorm.c - LayerNorm over the last dimension: (x - mean) / sqrt(var + eps) * w + b with
 * the biased variance, as torch.nn.LayerNorm. Two passes with double accumulators, so the
 * statistics are exact to float rounding whatever C is.
 *
 * Glossary: R rows, C width.
 */
#include "ops.h"

#include <math.h>

/* The AVX-512 and AVX2 clones pass vectors in registers; unoptimised builds (the sanitizer
 * pass) keep the helpers as real calls compiled for the default ABI, so they get no clones. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && defined(__OPTIMIZE__)
#define MV_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
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

/* Backward. In the forward pass y = xhat * w + b with xhat = (x - mean) * rstd, mean and
 * rstd = (var + eps)^-1/2 functions of the whole row. With g = dy * w = dL/dxhat, and
 * dmean/dx_i = 1/C, drstd/dx_i = -rstd^3 (x_i - mean) / C = -rstd^2 xhat_i / C:
 *   dL/dx_j = rstd * (g_j - mean(g) - xhat_j * mean(g * xhat)),
 * the two row means summed in double. The normalised row is recomputed as the forward
 * computed it, (x - mean) * rstd in float, from the saved float statistics. */
MV_CLONES static void layernorm_backward_row(float *dx, const float *dy, const float *x,
                                             const float *w, float m, float rs, int C)
{
    double sg = 0, sgx = 0;
#pragma omp simd reduction(+ : sg, sgx)
    for (int i = 0; i < C; i++) {
        float xh = (x[i] - m) * rs, g = dy[i] * w[i];
        sg += g;
        sgx += (double)g * xh;
    }
    double mg = sg / C, mgx = sgx / C;
#pragma omp simd
    for (int i = 0; i < C; i++) {
        float xh = (x[i] - m) * rs, g = dy[i] * w[i];
        dx[i] += (float)(rs * ((double)g - mg - (double)xh * mgx));
    }
}

/* dw (C) += sum_r dy * xhat, db (C) += sum_r dy: column sums over the rows, in blocks of
 * columns; each column is summed over r = 0, 1, ..., R-1 in that order by one thread, in
 * double accumulators on the stack, so the bits do not depend on the thread count. */
#define MV_LN_BLOCK 64
/* One block of n <= MV_LN_BLOCK columns over all rows; vectorised across the columns, each
 * column's own sum unchanged. */
MV_CLONES static void layernorm_param_block(double *aw, double *ab, const float *dout,
                                            const float *inp, const float *mean, const float *rstd,
                                            int R, int C, int n)
{
    for (int r = 0; r < R; r++) {
        const float *dy = dout + (size_t)r * C, *x = inp + (size_t)r * C;
        float m = mean[r], rs = rstd[r];
#pragma omp simd
        for (int j = 0; j < n; j++) {
            float xh = (x[j] - m) * rs;
            aw[j] += (double)dy[j] * xh;
            ab[j] += dy[j];
        }
    }
}

static void layernorm_param_grad(float *dw, float *db, const float *dout, const float *inp,
                                 const float *mean, const float *rstd, int R, int C)
{
    // dw (C), db (C), dout (R, C), inp (R, C), mean (R), rstd (R)
    int blocks = (C + MV_LN_BLOCK - 1) / MV_LN_BLOCK;
#pragma omp parallel for schedule(static) if ((size_t)R * C > 262144 && blocks > 1)
    for (int bl = 0; bl < blocks; bl++) {
        int lo = bl * MV_LN_BLOCK, n = MV_MIN(C - lo, MV_LN_BLOCK);
        double aw[MV_LN_BLOCK] = {0}, ab[MV_LN_BLOCK] = {0};
        layernorm_param_block(aw, ab, dout + lo, inp + lo, mean, rstd, R, C, n);
        for (int j = 0; j < n; j++) {
            if (dw) dw[lo + j] += (float)aw[j];
            if (db) db[lo + j] += (float)ab[j];
        }
    }
}

void mv_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                           const float *mean, const float *rstd, const float *w, int R, int C)
{
    // dinp (R, C), dw (C), db (C), dout (R, C), inp (R, C), mean (R), rstd (R), w (C)
    if (dinp) {
#pragma omp parallel for schedule(static) if ((size_t)R * C > 262144)
        for (int r = 0; r < R; r++)
            layernorm_backward_row(dinp + (size_t)r * C, dout + (size_t)r * C, inp + (size_t)r * C,
                                   w, mean[r], rstd[r], C);
    }
    if (dw || db) layernorm_param_grad(dw, db, dout, inp, mean, rstd, R, C);
}

void mv_layernorm_backward_naive(float *dinp, float *dw, float *db, const float *dout,
                                 const float *inp, const float *mean, const float *rstd,
                                 const float *w, int R, int C)
{
    for (int r = 0; r < R; r++) {
        const float *x = inp + (size_t)r * C, *dy = dout + (size_t)r * C;
        double m = mean[r], rs = rstd[r], sg = 0, sgx = 0;
        for (int i = 0; i < C; i++) {
            double xh = ((double)x[i] - m) * rs, g = (double)dy[i] * w[i];
            sg += g;
            sgx += g * xh;
        }
        sg /= C, sgx /= C;
        for (int i = 0; dinp && i < C; i++) {
            double xh = ((double)x[i] - m) * rs, g = (double)dy[i] * w[i];
            dinp[(size_t)r * C + i] += (float)(rs * (g - sg - xh * sgx));
        }
    }
    for (int i = 0; (dw || db) && i < C; i++) {
        double aw = 0, ab = 0;
        for (int r = 0; r < R; r++) {
            double dy = dout[(size_t)r * C + i];
            aw += dy * (((double)inp[(size_t)r * C + i] - mean[r]) * rstd[r]);
            ab += dy;
        }
        if (dw) dw[i] += (float)aw;
        if (db) db[i] += (float)ab;
    }
}

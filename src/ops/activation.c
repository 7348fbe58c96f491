/*
 * activation.c - the MLP activations, applied in place after the fc1 GEMM (whose bias the
 * GEMM already added): quick_gelu x*sigmoid(1.702x) (CLIP, PLIP) and exact gelu
 * 0.5x(1 + erf(x/sqrt 2)).
 *
 * Glossary: n elements (R rows x I MLP width, contiguous).
 */
#include "ops.h"

#include <math.h>

/* The formulas in torch's op order: quick_gelu = x * sigmoid(1.702 * x) with
 * sigmoid(z) = 1 / (1 + exp(-z)). */
static inline float quick_gelu(float x)
{
    return x * (1.0f / (1.0f + expf(-1.702f * x)));
}

static inline float gelu(float x)
{
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752440f));
}

void mv_act_forward(float *x, enum medvlm_act act, size_t n)
{
    // x (n) in place
    const long chunk = 4096;
    long nchunks = (long)((n + (size_t)chunk - 1) / (size_t)chunk);
#pragma omp parallel for schedule(static)
    for (long c = 0; c < nchunks; c++) {
        size_t lo = (size_t)c * (size_t)chunk, hi = MV_MIN(n, lo + (size_t)chunk);
        if (act == MEDVLM_ACT_GELU)
            for (size_t i = lo; i < hi; i++) x[i] = gelu(x[i]);
        else
            for (size_t i = lo; i < hi; i++) x[i] = quick_gelu(x[i]);
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

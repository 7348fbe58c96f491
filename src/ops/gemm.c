/*
 * gemm.c - the one matrix-product seam and the linear layer built on it.
 *
 * Every matrix product of medvlm goes through mv_gemm, so another backend (a hand-written
 * kernel, a GPU) is added here and nowhere else. Today it is OpenBLAS's cblas_sgemm (the
 * OpenMP build: it uses the same libgomp pool as our own loops; called from inside one of
 * our parallel regions it runs on the calling thread only).
 *
 * Glossary: R rows, I input width, O output width, M/N/K the GEMM sizes.
 */
#include "ops.h"

#include <cblas.h>
#undef I /* <complex.h> (via cblas.h) defines I; here I is the input width */
#include <string.h>

void mv_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void mv_gemm_naive(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double acc = 0;
            for (int p = 0; p < K; p++) {
                double a = ta ? A[(size_t)p * lda + i] : A[(size_t)i * lda + p];
                double b = tb ? B[(size_t)j * ldb + p] : B[(size_t)p * ldb + j];
                acc += a * b;
            }
            float *c = &C[(size_t)i * ldc + j];
            *c = (float)(alpha * acc + (beta == 0.0f ? 0.0 : (double)beta * *c));
        }
}

/* Rows of out (R, O) = alpha * b (O): the bias the GEMM then accumulates onto. */
static void fill_bias(float *out, const float *b, float alpha, int R, int O)
{
#pragma omp parallel for schedule(static)
    for (int r = 0; r < R; r++) {
        float *o = out + (size_t)r * O;
        if (!b)
            memset(o, 0, (size_t)O * sizeof *o);
        else if (alpha == 1.0f)
            memcpy(o, b, (size_t)O * sizeof *o);
        else
            for (int j = 0; j < O; j++) o[j] = alpha * b[j];
    }
}

void mv_linear_forward(float *out, const float *inp, const float *w, const float *b, float alpha,
                       int R, int I, int O)
{
    // out (R, O), inp (R, I), w (O, I), b (O)
    fill_bias(out, b, alpha, R, O);
    mv_gemm(0, 1, R, O, I, alpha, inp, I, w, I, 1.0f, out, O);
}

void mv_linear_residual_forward(float *x, const float *inp, const float *w, const float *b,
                                int R, int I, int O)
{
    // x (R, O) in place, inp (R, I), w (O, I), b (O)
    if (b) {
#pragma omp parallel for schedule(static)
        for (int r = 0; r < R; r++) {
            float *o = x + (size_t)r * O;
            for (int j = 0; j < O; j++) o[j] += b[j];
        }
    }
    mv_gemm(0, 1, R, O, I, 1.0f, inp, I, w, I, 1.0f, x, O);
}

void mv_linear_forward_naive(float *out, const float *inp, const float *w, const float *b,
                             float alpha, int R, int I, int O)
{
    for (int r = 0; r < R; r++)
        for (int o = 0; o < O; o++) {
            double acc = b ? b[o] : 0.0;
            for (int i = 0; i < I; i++) acc += (double)inp[(size_t)r * I + i] * w[(size_t)o * I + i];
            out[(size_t)r * O + o] = (float)(alpha * acc);
        }
}

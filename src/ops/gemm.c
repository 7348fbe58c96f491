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
#include <omp.h>
#include <string.h>

/* Threading. OpenBLAS's own threaded sgemm splits the work by thread count, and its edge
 * tiles use other kernels than its full tiles, so its results change in the last bits with the
 * thread count. We split instead: every thread makes one single-threaded OpenBLAS call on a
 * block of rows or columns cut at multiples of MV_GEMM_ALIGN. A block boundary on a multiple of
 * every kernel unroll leaves each element in the same kind of tile as in one unsplit call, so
 * any split computes exactly what one single-threaded call computes: results are independent
 * of the thread count, and the split may follow it. We cut the dimension whose re-packing
 * costs least: columns re-pack A (M x K) per thread, rows re-pack B (N x K) per thread. */
#define MV_GEMM_ALIGN 64
/* Up to this many rows x W^T runs on gemm_skinny.c (one image's 50 tokens). */
#define MV_SKINNY_MAX_M 64

static int gemm_mode = 1; /* 1: our split (deterministic); 0: OpenBLAS's own threading */
static int skinny_max_m = MV_SKINNY_MAX_M;

void mv_gemm_set_skinny(int max_rows)
{
    skinny_max_m = max_rows;
}

void mv_gemm_set_mode(int deterministic)
{
    gemm_mode = deterministic;
}

static void gemm_call(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc)
{
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
                K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* [lo, hi) of part i of n parts of len, cut at multiples of MV_GEMM_ALIGN. */
static void split(int len, int parts, int i, int *lo, int *hi)
{
    int units = (len + MV_GEMM_ALIGN - 1) / MV_GEMM_ALIGN;
    int u0 = (int)((long)units * i / parts), u1 = (int)((long)units * (i + 1) / parts);
    *lo = MV_MIN(len, u0 * MV_GEMM_ALIGN);
    *hi = MV_MIN(len, u1 * MV_GEMM_ALIGN);
}

void mv_gemm_serial(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return;
    if (omp_in_parallel()) {
        gemm_call(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* a team of one thread is not "in parallel" for OpenMP: pin OpenBLAS to one thread */
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    gemm_call(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    omp_set_num_threads(nt);
}

void mv_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return;
    if (!gemm_mode || omp_in_parallel()) {
        /* OpenBLAS's own threading (bench --blas-threads); inside one of our parallel regions
         * OpenBLAS runs on the calling thread */
        gemm_call(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    if (!ta && tb && M <= skinny_max_m && mv_gemm_skinny_available()) {
        /* few rows (batch-1 inference): a kernel that does not pack the weights */
        mv_gemm_skinny(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    int T = omp_get_max_threads();
    int by_cols = (double)M * K <= (double)N * K; /* re-pack the smaller operand */
    int len = by_cols ? N : M;
    int parts = MV_MIN(T, (len + MV_GEMM_ALIGN - 1) / MV_GEMM_ALIGN);
    if ((double)M * N * K < 2e6) parts = 1; /* too small to be worth a second thread */
    if (parts <= 1) {
        /* one block on one thread (OpenBLAS follows the OpenMP setting) */
        omp_set_num_threads(1);
        gemm_call(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        omp_set_num_threads(T);
        return;
    }
#pragma omp parallel for num_threads(parts) schedule(static, 1)
    for (int p = 0; p < parts; p++) {
        int lo, hi;
        split(len, parts, p, &lo, &hi);
        if (hi <= lo) continue;
        if (by_cols) {
            const float *Bp = tb ? B + (size_t)lo * ldb : B + lo;
            gemm_call(ta, tb, M, hi - lo, K, alpha, A, lda, Bp, ldb, beta, C + lo, ldc);
        } else {
            const float *Ap = ta ? A + lo : A + (size_t)lo * lda;
            gemm_call(ta, tb, hi - lo, N, K, alpha, Ap, lda, B, ldb, beta, C + (size_t)lo * ldc,
                      ldc);
        }
    }
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
#pragma omp parallel for schedule(static) if ((size_t)R * O > 262144)
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

void mv_linear_residual_forward(float *x, const float *inp, const float *w, const float *b, int R,
                                int I, int O)
{
    // x (R, O) in place, inp (R, I), w (O, I), b (O)
    if (b) {
#pragma omp parallel for schedule(static) if ((size_t)R * O > 262144)
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
            for (int i = 0; i < I; i++)
                acc += (double)inp[(size_t)r * I + i] * w[(size_t)o * I + i];
            out[(size_t)r * O + o] = (float)(alpha * acc);
        }
}

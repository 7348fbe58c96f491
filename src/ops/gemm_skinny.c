/*
 * gemm_skinny.c - C (M, N) = alpha * A (M, K) B^T + beta * C for few rows (M up to ~100: one
 * image's 50 tokens, a short prompt batch) with B (N, K) row-major: the linear layer
 * x W^T with W as stored, unpacked.
 *
 * Why: a general GEMM packs B (here the weights) on every call. With 50 rows that packing
 * moves as many bytes as the arithmetic can hide, and batch-1 inference becomes memory-bound.
 * This kernel reads every weight row once, straight from its place, and keeps the few rows of
 * A in cache: per block of weight rows (L1 resident) it computes their dot products with every
 * row of A, 3 rows at a time: with AVX-512, 8 weight rows and 16 lanes along K (24 zmm
 * accumulators); with AVX2, 4 weight rows and 8 lanes (12 ymm accumulators).
 *
 * Every element is one dot product in a fixed order (L lane sums over K in steps of L, the
 * lanes added pairwise, then the K % L tail; L = 16 where the CPU has AVX-512, else 8), so
 * results do not depend on M, on the position of the row, or on how the columns are split
 * across threads: a batch gives bit-identical rows to its items one by one.
 *
 * Glossary: M rows of A and C, N rows of B = columns of C, K the reduction length.
 */
#include "ops.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#include <immintrin.h>
#define MV_HAVE_AVX2_PATH 1
#endif

/* Which fast path this CPU runs: 2 AVX-512 (16 lanes), 1 AVX2 + FMA (8 lanes), 0 none. */
static int skinny_path(void)
{
#ifdef MV_HAVE_AVX2_PATH
    return mv_cpu_has(MV_CPU_BIT(MV_CPU_AVX512F))                         ? 2
           : mv_cpu_has(MV_CPU_BIT(MV_CPU_AVX2) | MV_CPU_BIT(MV_CPU_FMA)) ? 1
                                                                          : 0;
#else
    return 0;
#endif
}

/* The portable element: the same order as the AVX2 path (8 lanes; lanes l and l+4, then
 * l and l+2, then the two halves; then the K % 8 tail). */
static float dot_ref(const float *a, const float *b, int K)
{
    float lane[8] = {0};
    int k = 0;
    for (; k + 8 <= K; k += 8)
        for (int l = 0; l < 8; l++) lane[l] = fmaf(a[k + l], b[k + l], lane[l]);
    float s =
        ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
    for (; k < K; k++) s = fmaf(a[k], b[k], s);
    return s;
}

/* The same with 16 lanes (the AVX-512 path): lanes l and l+8 first, then as dot_ref. */
static float dot_ref16(const float *a, const float *b, int K)
{
    float lane[16] = {0}, f[8];
    int k = 0;
    for (; k + 16 <= K; k += 16)
        for (int l = 0; l < 16; l++) lane[l] = fmaf(a[k + l], b[k + l], lane[l]);
    for (int l = 0; l < 8; l++) f[l] = lane[l] + lane[l + 8];
    float s = ((f[0] + f[4]) + (f[2] + f[6])) + ((f[1] + f[5]) + (f[3] + f[7]));
    for (; k < K; k++) s = fmaf(a[k], b[k], s);
    return s;
}

#ifdef MV_HAVE_AVX2_PATH
__attribute__((target("avx2,fma"))) static inline float hsum8(__m256 v)
{
    /* lanes (0+4, 1+5, 2+6, 3+7), then (04+26, 15+37), then the two: as dot_ref */
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    __m128 s4 = _mm_add_ps(lo, hi);
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
    return _mm_cvtss_f32(s1);
}

/* MR rows of A (<= 3) times NR rows of B (<= 4): MR x NR dot products over K. */
__attribute__((target("avx2,fma"), always_inline)) static inline void
micro_avx2(float *C, int ldc, const float *A, int lda, const float *B, int ldb, int K, int MR,
           int NR, float alpha, float beta)
{
    __m256 acc[3][4];
#pragma GCC unroll 3
    for (int r = 0; r < 3; r++)
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) acc[r][c] = _mm256_setzero_ps();
    int k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 a[3];
#pragma GCC unroll 3
        for (int r = 0; r < MR; r++) a[r] = _mm256_loadu_ps(A + (size_t)r * lda + k);
#pragma GCC unroll 4
        for (int c = 0; c < NR; c++) {
            __m256 b = _mm256_loadu_ps(B + (size_t)c * ldb + k);
#pragma GCC unroll 3
            for (int r = 0; r < MR; r++) acc[r][c] = _mm256_fmadd_ps(a[r], b, acc[r][c]);
        }
    }
#pragma GCC unroll 3
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int c = 0; c < NR; c++) {
            float s = hsum8(acc[r][c]);
            for (int kk = k; kk < K; kk++)
                s = fmaf(A[(size_t)r * lda + kk], B[(size_t)c * ldb + kk], s);
            float *out = &C[(size_t)r * ldc + c];
            *out = beta == 0.0f ? alpha * s : alpha * s + beta * *out;
        }
}

/* The full 3 x 4 block, written out: 12 accumulators + 3 + 1 registers of the 16. */
__attribute__((target("avx2,fma"))) static void micro_3x4(float *C, int ldc, const float *A,
                                                          int lda, const float *B, int ldb, int K,
                                                          float alpha, float beta)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c03 = c00;
    __m256 c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    __m256 c20 = c00, c21 = c00, c22 = c00, c23 = c00;
    const float *a0 = A, *a1 = A + lda, *a2 = A + 2 * (size_t)lda;
    const float *b0 = B, *b1 = B + ldb, *b2 = B + 2 * (size_t)ldb, *b3 = B + 3 * (size_t)ldb;
    int k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 x0 = _mm256_loadu_ps(a0 + k), x1 = _mm256_loadu_ps(a1 + k);
        __m256 x2 = _mm256_loadu_ps(a2 + k), w;
        w = _mm256_loadu_ps(b0 + k);
        c00 = _mm256_fmadd_ps(x0, w, c00), c10 = _mm256_fmadd_ps(x1, w, c10);
        c20 = _mm256_fmadd_ps(x2, w, c20);
        w = _mm256_loadu_ps(b1 + k);
        c01 = _mm256_fmadd_ps(x0, w, c01), c11 = _mm256_fmadd_ps(x1, w, c11);
        c21 = _mm256_fmadd_ps(x2, w, c21);
        w = _mm256_loadu_ps(b2 + k);
        c02 = _mm256_fmadd_ps(x0, w, c02), c12 = _mm256_fmadd_ps(x1, w, c12);
        c22 = _mm256_fmadd_ps(x2, w, c22);
        w = _mm256_loadu_ps(b3 + k);
        c03 = _mm256_fmadd_ps(x0, w, c03), c13 = _mm256_fmadd_ps(x1, w, c13);
        c23 = _mm256_fmadd_ps(x2, w, c23);
    }
    __m256 acc[12] = {c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23};
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++) {
            float s = hsum8(acc[r * 4 + c]);
            for (int kk = k; kk < K; kk++)
                s = fmaf(A[(size_t)r * lda + kk], B[(size_t)c * ldb + kk], s);
            float *out = &C[(size_t)r * ldc + c];
            *out = beta == 0.0f ? alpha * s : alpha * s + beta * *out;
        }
}

/* Columns [n0, n1) of C. The MR/NR cases are spelled out so each inlines with constants. */
__attribute__((target("avx2,fma"))) static void skinny_avx2(int M, int n0, int n1, int K,
                                                            float alpha, const float *A, int lda,
                                                            const float *B, int ldb, float beta,
                                                            float *C, int ldc)
{
    for (int j = n0; j < n1; j += 4) {
        int nr = MV_MIN(4, n1 - j);
        const float *Bj = B + (size_t)j * ldb;
        int i = 0;
        for (; i + 3 <= M; i += 3) {
            float *Ci = C + (size_t)i * ldc + j;
            const float *Ai = A + (size_t)i * lda;
            if (nr == 4)
                micro_3x4(Ci, ldc, Ai, lda, Bj, ldb, K, alpha, beta);
            else if (nr == 3)
                micro_avx2(Ci, ldc, Ai, lda, Bj, ldb, K, 3, 3, alpha, beta);
            else if (nr == 2)
                micro_avx2(Ci, ldc, Ai, lda, Bj, ldb, K, 3, 2, alpha, beta);
            else
                micro_avx2(Ci, ldc, Ai, lda, Bj, ldb, K, 3, 1, alpha, beta);
        }
        for (; i < M; i++) { /* the last 1-2 rows: one row at a time, same dot order */
            float *Ci = C + (size_t)i * ldc + j;
            const float *Ai = A + (size_t)i * lda;
            if (nr == 4)
                micro_avx2(Ci, ldc, Ai, lda, Bj, ldb, K, 1, 4, alpha, beta);
            else if (nr == 3)
                micro_avx2(Ci, ldc, Ai, lda, Bj, ldb, K, 1, 3, alpha, beta);
            else if (nr == 2)
                micro_avx2(Ci, ldc, Ai, lda, Bj, ldb, K, 1, 2, alpha, beta);
            else
                micro_avx2(Ci, ldc, Ai, lda, Bj, ldb, K, 1, 1, alpha, beta);
        }
    }
}

/* 16 lanes: l + (l + 8), then hsum8's order. */
__attribute__((target("avx512f"))) static inline float hsum16(__m512 v)
{
    __m256 lo = _mm512_castps512_ps256(v);
    __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    __m256 s8 = _mm256_add_ps(lo, hi);
    __m128 l4 = _mm256_castps256_ps128(s8), h4 = _mm256_extractf128_ps(s8, 1);
    __m128 s4 = _mm_add_ps(l4, h4);
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
    return _mm_cvtss_f32(s1);
}

/* MR rows of A (<= 3) times NR rows of B (<= 8), 16 lanes: inlined with constant MR, NR, the
 * accumulators stay in registers (24 + 3 + 1 of the 32). */
__attribute__((target("avx512f"), always_inline)) static inline void
micro_avx512(float *C, int ldc, const float *A, int lda, const float *B, int ldb, int K, int MR,
             int NR, float alpha, float beta)
{
    __m512 acc[3][8];
#pragma GCC unroll 3
    for (int r = 0; r < 3; r++)
#pragma GCC unroll 8
        for (int c = 0; c < 8; c++) acc[r][c] = _mm512_setzero_ps();
    int k = 0;
    for (; k + 16 <= K; k += 16) {
        __m512 a[3];
#pragma GCC unroll 3
        for (int r = 0; r < MR; r++) a[r] = _mm512_loadu_ps(A + (size_t)r * lda + k);
#pragma GCC unroll 8
        for (int c = 0; c < NR; c++) {
            __m512 b = _mm512_loadu_ps(B + (size_t)c * ldb + k);
            __asm__("" : "+v"(b)); /* one load for the MR products, not one folded into each */
#pragma GCC unroll 3
            for (int r = 0; r < MR; r++) acc[r][c] = _mm512_fmadd_ps(a[r], b, acc[r][c]);
        }
    }
#pragma GCC unroll 3
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 8
        for (int c = 0; c < NR; c++) {
            float s = hsum16(acc[r][c]);
            for (int kk = k; kk < K; kk++)
                s = fmaf(A[(size_t)r * lda + kk], B[(size_t)c * ldb + kk], s);
            float *out = &C[(size_t)r * ldc + c];
            *out = beta == 0.0f ? alpha * s : alpha * s + beta * *out;
        }
}

__attribute__((target("avx512f"))) static void micro_3x8(float *C, int ldc, const float *A, int lda,
                                                         const float *B, int ldb, int K,
                                                         float alpha, float beta)
{
    micro_avx512(C, ldc, A, lda, B, ldb, K, 3, 8, alpha, beta);
}

/* The last 1 or 2 rows against 8 weight rows (M = 50 leaves 2), same order. */
__attribute__((target("avx512f"))) static void micro_2x8(float *C, int ldc, const float *A, int lda,
                                                         const float *B, int ldb, int K,
                                                         float alpha, float beta)
{
    micro_avx512(C, ldc, A, lda, B, ldb, K, 2, 8, alpha, beta);
}

__attribute__((target("avx512f"))) static void micro_1x8(float *C, int ldc, const float *A, int lda,
                                                         const float *B, int ldb, int K,
                                                         float alpha, float beta)
{
    micro_avx512(C, ldc, A, lda, B, ldb, K, 1, 8, alpha, beta);
}

/* Fewer than 8 columns (the end of N when it is not a multiple of 8): one element at a time,
 * same order. */
__attribute__((target("avx512f"))) static void micro_edge(float *C, int ldc, const float *A,
                                                          int lda, const float *B, int ldb, int K,
                                                          int mr, int nr, float alpha, float beta)
{
    for (int r = 0; r < mr; r++)
        for (int c = 0; c < nr; c++)
            micro_avx512(C + (size_t)r * ldc + c, ldc, A + (size_t)r * lda, lda,
                         B + (size_t)c * ldb, ldb, K, 1, 1, alpha, beta);
}

/* Columns [n0, n1) of C. */
__attribute__((target("avx512f"))) static void skinny_avx512(int M, int n0, int n1, int K,
                                                             float alpha, const float *A, int lda,
                                                             const float *B, int ldb, float beta,
                                                             float *C, int ldc)
{
    for (int j = n0; j < n1; j += 8) {
        int nr = MV_MIN(8, n1 - j);
        const float *Bj = B + (size_t)j * ldb;
        for (int i = 0; i < M; i += 3) {
            int mr = MV_MIN(3, M - i);
            float *Ci = C + (size_t)i * ldc + j;
            const float *Ai = A + (size_t)i * lda;
            if (mr == 3 && nr == 8)
                micro_3x8(Ci, ldc, Ai, lda, Bj, ldb, K, alpha, beta);
            else if (mr == 2 && nr == 8)
                micro_2x8(Ci, ldc, Ai, lda, Bj, ldb, K, alpha, beta);
            else if (nr == 8)
                micro_1x8(Ci, ldc, Ai, lda, Bj, ldb, K, alpha, beta);
            else
                micro_edge(Ci, ldc, Ai, lda, Bj, ldb, K, mr, nr, alpha, beta);
        }
    }
}
#endif

/* The portable order of fast path `path`: 16 lanes for AVX-512's, else 8. */
static void skinny_ref(int path, int M, int n0, int n1, int K, float alpha, const float *A, int lda,
                       const float *B, int ldb, float beta, float *C, int ldc)
{
    for (int j = n0; j < n1; j++)
        for (int i = 0; i < M; i++) {
            float s =
                (path == 2 ? dot_ref16 : dot_ref)(A + (size_t)i * lda, B + (size_t)j * ldb, K);
            float *out = &C[(size_t)i * ldc + j];
            *out = beta == 0.0f ? alpha * s : alpha * s + beta * *out;
        }
}

int mv_gemm_skinny_available(void)
{
    return skinny_path() > 0;
}

int mv_gemm_skinny_best(void)
{
    return skinny_path();
}

void mv_gemm_skinny_at(int path, int portable, int M, int N, int K, float alpha, const float *A,
                       int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    // C (M, N), A (M, K), B (N, K)
    if (M <= 0 || N <= 0) return;
    path = MV_MIN(MV_MAX(path, 0), skinny_path()); /* never an instruction set the CPU lacks */
    const int fast = portable ? 0 : path;
    /* fixed column blocks of 64, taken first come first served: the split never changes a
     * result, and a thread slowed by another process takes fewer blocks */
    const int nblocks = (N + 63) / 64;
#pragma omp parallel for schedule(dynamic, 1) if (!omp_in_parallel() && (double)M * N * K > 2e6)
    for (int blk = 0; blk < nblocks; blk++) {
        int n0 = blk * 64, n1 = MV_MIN(N, n0 + 64);
#ifdef MV_HAVE_AVX2_PATH
        if (fast == 2) {
            skinny_avx512(M, n0, n1, K, alpha, A, lda, B, ldb, beta, C, ldc);
            continue;
        }
        if (fast == 1) {
            skinny_avx2(M, n0, n1, K, alpha, A, lda, B, ldb, beta, C, ldc);
            continue;
        }
#endif
        skinny_ref(path, M, n0, n1, K, alpha, A, lda, B, ldb, beta, C, ldc);
    }
}

void mv_gemm_skinny(int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                    int ldb, float beta, float *C, int ldc)
{
    mv_gemm_skinny_at(skinny_path(), 0, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void mv_gemm_skinny_portable(int M, int N, int K, float alpha, const float *A, int lda,
                             const float *B, int ldb, float beta, float *C, int ldc)
{
    mv_gemm_skinny_at(skinny_path(), 1, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

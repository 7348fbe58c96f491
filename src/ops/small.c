/*
 * small.c - the two small matrix products every adapter step is made of, for the shapes
 * of few-shot adaptation (B = 32 rows, K = 4 classes, D = 512): far too small for a BLAS call
 * (or gemm.c's packing) to pay off, so plain loops, plus AVX2+FMA versions that run where
 * mv_cpu_has says the CPU has them.
 *
 *   mv_mm_nt      C (M, N)  = A (M, L) Bm (N, L)^T     logits = X W^T
 *   mv_mm_tn_acc  C (M, N) += A (L, M)^T Bm (L, N)     dW += dlogits^T X
 *
 * The *_rows forms take the feature operand as an array of row pointers, so that a shuffled
 * mini-batch is read where it lies instead of being copied together first, and may prefetch
 * the next mini-batch's cache lines from their inner loops through a cursor into a list
 * (mv_line_list builds it).
 *
 * And the vector pieces around them: dot, squared distance, dst (+)= a x + b y, column dot
 * products, the prototype trainer's fused row update and its partial sums into logits, and
 * scans for values that are not finite.
 *
 * Glossary (these kernels' own letters, as their callers use them): M, N rows and columns of
 * the product C, L its reduction length; B rows, K classes (columns) of logits.
 */
#include "ops.h"

#include <math.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define MV_HAVE_X86 1
#endif

static void mm_nt_plain(float *C, const float *A, const float *const *Arows, const float *Bm, int M,
                        int N, int L)
{
    for (int i = 0; i < M; i++) {
        const float *a = Arows ? Arows[i] : A + (size_t)i * L;
        for (int j = 0; j < N; j++) {
            float acc = 0;
            for (int l = 0; l < L; l++) acc += a[l] * Bm[(size_t)j * L + l];
            C[(size_t)i * N + j] = acc;
        }
    }
}

static void mm_tn_acc_plain(float *C, const float *A, const float *Bm, const float *const *Brows,
                            int M, int N, int L, int acc)
{
    if (!acc) memset(C, 0, (size_t)M * N * sizeof(float));
    for (int l = 0; l < L; l++) {
        const float *b = Brows ? Brows[l] : Bm + (size_t)l * N;
        for (int i = 0; i < M; i++) {
            float a = A[(size_t)l * M + i];
            float *c = C + (size_t)i * N;
            for (int j = 0; j < N; j++) c[j] += a * b[j];
        }
    }
}

void mv_mm_nt_ref(float *C, const float *A, const float *Bm, int M, int N, int L)
{
    mm_nt_plain(C, A, NULL, Bm, M, N, L);
}

void mv_mm_tn_acc_ref(float *C, const float *A, const float *Bm, int M, int N, int L)
{
    mm_tn_acc_plain(C, A, Bm, NULL, M, N, L, 1);
}

float mv_dot_ref(const float *a, const float *b, int L)
{
    float acc = 0;
    for (int l = 0; l < L; l++) acc += a[l] * b[l];
    return acc;
}

float mv_sqdist_ref(const float *a, const float *b, int L)
{
    float acc = 0;
    for (int l = 0; l < L; l++) acc += (a[l] - b[l]) * (a[l] - b[l]);
    return acc;
}

void mv_axpby_acc_ref(float *dst, float a, const float *x, float b, const float *y, int L)
{
    for (int l = 0; l < L; l++) dst[l] += a * x[l] + b * y[l];
}

double mv_sqdist_f64(const float *a, const float *b, int L)
{
    double z = 0;
    for (int l = 0; l < L; l++) z += ((double)a[l] - b[l]) * ((double)a[l] - b[l]);
    return z;
}

void mv_axpby_ref(float *dst, float a, const float *x, float b, const float *y, int L)
{
    for (int l = 0; l < L; l++) dst[l] = a * x[l] + b * y[l];
}

float mv_row_update_ref(const struct mv_row_update *u, float *w, float *buf, float *weff,
                        const float *g, const float *zs, int L)
{
    float r = 0;
    for (int l = 0; l < L; l++) {
        float d = u->a * g[l] + u->b * weff[l];
        if (u->clap) d += u->f * w[l] - u->f * zs[l];
        buf[l] = u->mom * buf[l] + u->damp * d;
        w[l] -= u->lr * buf[l];
        float we = u->taskres ? zs[l] + u->alpha * w[l] : w[l];
        if (u->taskres) weff[l] = we;
        r += we * we;
    }
    if (u->clap && u->dist) *u->dist = mv_sqdist_ref(w, zs, L);
    return r;
}

/* The prefetches the AVX2 kernels issue: one per 8-float iteration of dot4x3 (full 3-row,
 * 4-column groups), one per two l of the first four rows' 24- and 16-column tiles. The plain
 * loops issue none. */
long mv_mm_nt_prefetches(int M, int N, int L)
{
    return N >= 4 ? (long)(M / 3) * (N / 4) * (L / 8) : 0;
}

/* The columns the AVX2 tn kernel tiles in a row of N: 24 wide, then one 16 wide if it fits. */
static int tn_tiled(int N, int *tiles)
{
    int n24 = N / 24, n16 = N % 24 >= 16;
    if (tiles) *tiles = n24 + n16;
    return 24 * n24 + 16 * n16;
}

long mv_mm_tn_prefetches(int M, int N, int L)
{
    int tiles;
    (void)tn_tiled(N, &tiles);
    return M >= 4 ? (long)tiles * ((L + 1) / 2) : 0;
}

/* The first index in [i, n) whose float is not finite, or n. */
/* The portable scan is core's (the layers below src/ops use it directly). */
static size_t first_nonfinite_plain(const float *x, size_t i, size_t n)
{
    return i + mv_find_nonfinite(x + i, n - i);
}

/* Copies [i, n) and scans it; the copy stops at the first value that is not finite. */
static size_t copy_first_nonfinite_plain(float *dst, const float *src, size_t i, size_t n)
{
    const size_t f = first_nonfinite_plain(src, i, n);
    memcpy(dst + i, src + i, (f - i) * sizeof(float));
    return f;
}

static void line_list_plain(const void **list, const float *base, size_t stride, const int *idx,
                            int n, int lines)
{
    for (int b = 0; b < n; b++) {
        const char *row = (const char *)(base + (size_t)idx[b] * stride);
        for (int i = 0; i < lines; i++) *list++ = row + (size_t)i * 64;
    }
}

static void partial_logits_plain(float *raw, float *logits, const float *parts, int np,
                                 size_t stride, int B, int K, const float *fac)
{
    const size_t n = (size_t)B * K;
    for (size_t i = 0; i < n; i++) {
        float v = parts[i];
        for (int j = 1; j < np; j++) v += parts[(size_t)j * stride + i];
        raw[i] = v;
        logits[i] = v * fac[i % (size_t)K];
    }
}

#ifdef MV_HAVE_X86

__attribute__((target("avx2,fma"))) static inline float hsum256(__m256 v)
{
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 0x55));
    return _mm_cvtss_f32(lo);
}

/* (hsum256(a), hsum256(b), hsum256(c), hsum256(d)) into out[0..3], with hsum256's very
 * additions ((v0 + v4) + (v2 + v6)) + ((v1 + v5) + (v3 + v7)), four at a time. */
__attribute__((target("avx2,fma"))) static inline void reduce4(float *out, __m256 a, __m256 b,
                                                               __m256 c, __m256 d)
{
    __m256 x = _mm256_add_ps(_mm256_permute2f128_ps(a, c, 0x20), /* (a', c'): v_i + v_i+4 */
                             _mm256_permute2f128_ps(a, c, 0x31));
    __m256 y =
        _mm256_add_ps(_mm256_permute2f128_ps(b, d, 0x20), _mm256_permute2f128_ps(b, d, 0x31));
    /* (a'0 + a'2, b'0 + b'2, a'1 + a'3, b'1 + b'3 | the same of c', d') */
    __m256 t = _mm256_add_ps(_mm256_unpacklo_ps(x, y), _mm256_unpackhi_ps(x, y));
    t = _mm256_add_ps(t, _mm256_shuffle_ps(t, t, _MM_SHUFFLE(1, 0, 3, 2)));
    _mm_storeu_ps(out, _mm_movelh_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1)));
}

/*
 * The dot products below all accumulate one (row, column) pair the same way: one 8-lane
 * FMA accumulator over the 8-float chunks in order, hsum256, then fmaf over the tail. So a
 * logit does not depend on how rows and columns were blocked, and a run split over threads
 * (each thread a subset of the columns) is bit-identical to one thread.
 */

/* Four dot products of a with b0..b3. */
__attribute__((target("avx2,fma"))) static void dot4(float *out, const float *a, const float *b0,
                                                     const float *b1, const float *b2,
                                                     const float *b3, int L)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int l = 0;
    for (; l + 8 <= L; l += 8) {
        __m256 x = _mm256_loadu_ps(a + l);
        s0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b0 + l), s0);
        s1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b1 + l), s1);
        s2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b2 + l), s2);
        s3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b3 + l), s3);
    }
    reduce4(out, s0, s1, s2, s3);
    for (; l < L; l++) {
        out[0] = fmaf(a[l], b0[l], out[0]);
        out[1] = fmaf(a[l], b1[l], out[1]);
        out[2] = fmaf(a[l], b2[l], out[2]);
        out[3] = fmaf(a[l], b3[l], out[3]);
    }
}

/* Two rows a0, a1 against b0..b3: eight dot products, one W load serves both rows. */
__attribute__((target("avx2,fma"))) static void dot4x2(float *out0, float *out1, const float *a0,
                                                       const float *a1, const float *b0,
                                                       const float *b1, const float *b2,
                                                       const float *b3, int L)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    __m256 t0 = s0, t1 = s0, t2 = s0, t3 = s0;
    int l = 0;
    for (; l + 8 <= L; l += 8) {
        __m256 x = _mm256_loadu_ps(a0 + l), y = _mm256_loadu_ps(a1 + l);
        __m256 w0 = _mm256_loadu_ps(b0 + l), w1 = _mm256_loadu_ps(b1 + l);
        __m256 w2 = _mm256_loadu_ps(b2 + l), w3 = _mm256_loadu_ps(b3 + l);
        s0 = _mm256_fmadd_ps(x, w0, s0);
        s1 = _mm256_fmadd_ps(x, w1, s1);
        s2 = _mm256_fmadd_ps(x, w2, s2);
        s3 = _mm256_fmadd_ps(x, w3, s3);
        t0 = _mm256_fmadd_ps(y, w0, t0);
        t1 = _mm256_fmadd_ps(y, w1, t1);
        t2 = _mm256_fmadd_ps(y, w2, t2);
        t3 = _mm256_fmadd_ps(y, w3, t3);
    }
    float r[8];
    reduce4(r, s0, s1, s2, s3);
    reduce4(r + 4, t0, t1, t2, t3);
    for (; l < L; l++) {
        r[0] = fmaf(a0[l], b0[l], r[0]);
        r[1] = fmaf(a0[l], b1[l], r[1]);
        r[2] = fmaf(a0[l], b2[l], r[2]);
        r[3] = fmaf(a0[l], b3[l], r[3]);
        r[4] = fmaf(a1[l], b0[l], r[4]);
        r[5] = fmaf(a1[l], b1[l], r[5]);
        r[6] = fmaf(a1[l], b2[l], r[6]);
        r[7] = fmaf(a1[l], b3[l], r[7]);
    }
    memcpy(out0, r, 4 * sizeof(float));
    memcpy(out1, r + 4, 4 * sizeof(float));
}

/* Three rows against b0..b3: twelve accumulators, enough to cover the FMA latency. pf (or
 * NULL, a constant where inlined): one prefetch per 8-float iteration. */
__attribute__((target("avx2,fma"), always_inline)) static inline void
dot4x3(float *out0, float *out1, float *out2, const float *a0, const float *a1, const float *a2,
       const float *const *bk, int L, struct mv_prefetch *pf)
{
    const void *const *at = pf ? pf->at : NULL;
    const float *b0 = bk[0], *b1 = bk[1], *b2 = bk[2], *b3 = bk[3];
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    __m256 t0 = s0, t1 = s0, t2 = s0, t3 = s0;
    __m256 u0 = s0, u1 = s0, u2 = s0, u3 = s0;
    int l = 0;
    for (; l + 8 <= L; l += 8) {
        if (pf) __builtin_prefetch(*at++);
        __m256 x = _mm256_loadu_ps(a0 + l), y = _mm256_loadu_ps(a1 + l);
        __m256 z = _mm256_loadu_ps(a2 + l), w = _mm256_loadu_ps(b0 + l);
        s0 = _mm256_fmadd_ps(x, w, s0);
        t0 = _mm256_fmadd_ps(y, w, t0);
        u0 = _mm256_fmadd_ps(z, w, u0);
        w = _mm256_loadu_ps(b1 + l);
        s1 = _mm256_fmadd_ps(x, w, s1);
        t1 = _mm256_fmadd_ps(y, w, t1);
        u1 = _mm256_fmadd_ps(z, w, u1);
        w = _mm256_loadu_ps(b2 + l);
        s2 = _mm256_fmadd_ps(x, w, s2);
        t2 = _mm256_fmadd_ps(y, w, t2);
        u2 = _mm256_fmadd_ps(z, w, u2);
        w = _mm256_loadu_ps(b3 + l);
        s3 = _mm256_fmadd_ps(x, w, s3);
        t3 = _mm256_fmadd_ps(y, w, t3);
        u3 = _mm256_fmadd_ps(z, w, u3);
    }
    if (pf) pf->at = at;
    float r[12];
    reduce4(r, s0, s1, s2, s3);
    reduce4(r + 4, t0, t1, t2, t3);
    reduce4(r + 8, u0, u1, u2, u3);
    for (; l < L; l++)
        for (int c = 0; c < 4; c++) {
            r[c] = fmaf(a0[l], bk[c][l], r[c]);
            r[4 + c] = fmaf(a1[l], bk[c][l], r[4 + c]);
            r[8 + c] = fmaf(a2[l], bk[c][l], r[8 + c]);
        }
    memcpy(out0, r, 4 * sizeof(float));
    memcpy(out1, r + 4, 4 * sizeof(float));
    memcpy(out2, r + 8, 4 * sizeof(float));
}

__attribute__((target("avx2,fma"))) static float dot1(const float *a, const float *b, int L)
{
    __m256 s = _mm256_setzero_ps();
    int l = 0;
    for (; l + 8 <= L; l += 8)
        s = _mm256_fmadd_ps(_mm256_loadu_ps(a + l), _mm256_loadu_ps(b + l), s);
    float r = hsum256(s);
    for (; l < L; l++) r = fmaf(a[l], b[l], r);
    return r;
}

__attribute__((target("avx2,fma"), always_inline)) static inline void
mm_nt_body(float *C, const float *A, const float *const *Arows, const float *Bm, int M, int N,
           int L, struct mv_prefetch *pf)
{
    int i = 0;
    for (; i + 3 <= M && N >= 4; i += 3) {
        const float *a0 = Arows ? Arows[i] : A + (size_t)i * L;
        const float *a1 = Arows ? Arows[i + 1] : A + (size_t)(i + 1) * L;
        const float *a2 = Arows ? Arows[i + 2] : A + (size_t)(i + 2) * L;
        float *c0 = C + (size_t)i * N, *c1 = c0 + N, *c2 = c1 + N;
        int j = 0;
        for (; j + 4 <= N; j += 4) {
            const float *bk[4] = {Bm + (size_t)j * L, Bm + (size_t)(j + 1) * L,
                                  Bm + (size_t)(j + 2) * L, Bm + (size_t)(j + 3) * L};
            dot4x3(c0 + j, c1 + j, c2 + j, a0, a1, a2, bk, L, pf);
        }
        for (; j < N; j++) {
            c0[j] = dot1(a0, Bm + (size_t)j * L, L);
            c1[j] = dot1(a1, Bm + (size_t)j * L, L);
            c2[j] = dot1(a2, Bm + (size_t)j * L, L);
        }
    }
    for (; i + 2 <= M && N >= 4; i += 2) {
        const float *a0 = Arows ? Arows[i] : A + (size_t)i * L;
        const float *a1 = Arows ? Arows[i + 1] : A + (size_t)(i + 1) * L;
        float *c0 = C + (size_t)i * N, *c1 = c0 + N;
        int j = 0;
        for (; j + 4 <= N; j += 4)
            dot4x2(c0 + j, c1 + j, a0, a1, Bm + (size_t)j * L, Bm + (size_t)(j + 1) * L,
                   Bm + (size_t)(j + 2) * L, Bm + (size_t)(j + 3) * L, L);
        for (; j < N; j++) {
            c0[j] = dot1(a0, Bm + (size_t)j * L, L);
            c1[j] = dot1(a1, Bm + (size_t)j * L, L);
        }
    }
    for (; i < M; i++) {
        const float *a = Arows ? Arows[i] : A + (size_t)i * L;
        float *c = C + (size_t)i * N;
        int j = 0;
        for (; j + 4 <= N; j += 4)
            dot4(c + j, a, Bm + (size_t)j * L, Bm + (size_t)(j + 1) * L, Bm + (size_t)(j + 2) * L,
                 Bm + (size_t)(j + 3) * L, L);
        for (; j < N; j++) c[j] = dot1(a, Bm + (size_t)j * L, L);
    }
}

/* The instances: without and with prefetching. */
__attribute__((target("avx2,fma"))) static void mm_nt_avx2(float *C, const float *A,
                                                           const float *const *Arows,
                                                           const float *Bm, int M, int N, int L,
                                                           struct mv_prefetch *pf)
{
    if (pf)
        mm_nt_body(C, A, Arows, Bm, M, N, L, pf);
    else
        mm_nt_body(C, A, Arows, Bm, M, N, L, NULL);
}

/* Row l of the tn products' right operand: a row pointer (rows, a constant where inlined), or
 * row l of the matrix. */
#define TN_ROW(l) (rows ? Brows[l] : Bm + (size_t)(l)*N)

/* C rows i..i+3, columns j..j+W-1 (W = 16 or 24: 8 or 12 accumulators; twelve cover the
 * FMA latency, eight do not quite), accumulated over all l in registers, starting from C
 * (acc) or from zero. pf (or NULL): one prefetch per two l. Inlined with constant W, rows and
 * pf nullness, so the inner loop is, per l, W / 2 FMAs, W / 8 loads, 4 broadcasts and the
 * pointer walk, all in registers. */
__attribute__((target("avx2,fma"), always_inline)) static inline void
tn_tile4(float *C, const float *A, const float *Bm, const float *const *Brows, int rows,
         struct mv_prefetch *pf, int M, int N, int L, int i, int j, int acc, int W)
{
    float *c0 = C + (size_t)i * N + j, *c1 = c0 + N, *c2 = c1 + N, *c3 = c2 + N;
    const int wide = W == 24;
    __m256 a0 = _mm256_setzero_ps(), b0 = a0, e0 = a0, a1 = a0, b1 = a0, e1 = a0;
    __m256 a2 = a0, b2 = a0, e2 = a0, a3 = a0, b3 = a0, e3 = a0;
    if (acc) {
        a0 = _mm256_loadu_ps(c0), b0 = _mm256_loadu_ps(c0 + 8);
        a1 = _mm256_loadu_ps(c1), b1 = _mm256_loadu_ps(c1 + 8);
        a2 = _mm256_loadu_ps(c2), b2 = _mm256_loadu_ps(c2 + 8);
        a3 = _mm256_loadu_ps(c3), b3 = _mm256_loadu_ps(c3 + 8);
        if (wide) {
            e0 = _mm256_loadu_ps(c0 + 16), e1 = _mm256_loadu_ps(c1 + 16);
            e2 = _mm256_loadu_ps(c2 + 16), e3 = _mm256_loadu_ps(c3 + 16);
        }
    }
    const void *const *at = pf ? pf->at : NULL;
    const float *ar = A + i;
/* Row r of the tile at one l: the broadcast A value times x, y (and z). */
#define TN_FMA(r)                                                                                  \
    do {                                                                                           \
        __m256 g = _mm256_broadcast_ss(ar + (r));                                                  \
        a##r = _mm256_fmadd_ps(g, x, a##r);                                                        \
        b##r = _mm256_fmadd_ps(g, y, b##r);                                                        \
        if (wide) e##r = _mm256_fmadd_ps(g, z, e##r);                                              \
    } while (0)
#define TN_STEP(l)                                                                                 \
    do {                                                                                           \
        const float *br = TN_ROW(l) + j;                                                           \
        __m256 x = _mm256_loadu_ps(br), y = _mm256_loadu_ps(br + 8);                               \
        __m256 z = wide ? _mm256_loadu_ps(br + 16) : x;                                            \
        TN_FMA(0);                                                                                 \
        TN_FMA(1);                                                                                 \
        TN_FMA(2);                                                                                 \
        TN_FMA(3);                                                                                 \
        ar += M;                                                                                   \
    } while (0)
    /* One l per iteration: unrolled by two, GCC 12 keeps three of the twelve accumulators on
     * the stack (24 wide), and the tile runs 15-20% slower in cache. */
    for (int l = 0; l < L; l++) {
        if (pf && !(l & 1)) __builtin_prefetch(*at++);
        TN_STEP(l);
    }
#undef TN_STEP
#undef TN_FMA
    if (pf) pf->at = at;
    _mm256_storeu_ps(c0, a0);
    _mm256_storeu_ps(c0 + 8, b0);
    _mm256_storeu_ps(c1, a1);
    _mm256_storeu_ps(c1 + 8, b1);
    _mm256_storeu_ps(c2, a2);
    _mm256_storeu_ps(c2 + 8, b2);
    _mm256_storeu_ps(c3, a3);
    _mm256_storeu_ps(c3 + 8, b3);
    if (wide) {
        _mm256_storeu_ps(c0 + 16, e0);
        _mm256_storeu_ps(c1 + 16, e1);
        _mm256_storeu_ps(c2 + 16, e2);
        _mm256_storeu_ps(c3 + 16, e3);
    }
}

/* C (M, N) (+)= A (L, M)^T B (L, N), B as Brows or the matrix Bm; pf: see tn_tile4
 * (prefetches issued while the first four rows of C are computed). */
__attribute__((target("avx2,fma"), always_inline)) static inline void
mm_tn_body(float *C, const float *A, const float *Bm, const float *const *Brows, int rows,
           struct mv_prefetch *pf, int M, int N, int L, int acc)
{
    const int tiled = tn_tiled(N, NULL);
    if (!acc) /* the tails below accumulate in C */
        for (int i = 0; i < M; i++)
            for (int j = (i < M - M % 4 ? tiled : N - N % 8); j < N; j++) C[(size_t)i * N + j] = 0;
    int i = 0;
    for (; i + 4 <= M; i += 4) {
        int j = 0;
        for (; j + 24 <= N; j += 24)
            if (pf && i == 0)
                tn_tile4(C, A, Bm, Brows, rows, pf, M, N, L, i, j, acc, 24);
            else
                tn_tile4(C, A, Bm, Brows, rows, NULL, M, N, L, i, j, acc, 24);
        if (j + 16 <= N) {
            if (pf && i == 0)
                tn_tile4(C, A, Bm, Brows, rows, pf, M, N, L, i, j, acc, 16);
            else
                tn_tile4(C, A, Bm, Brows, rows, NULL, M, N, L, i, j, acc, 16);
            j += 16;
        }
        float *c0 = C + (size_t)i * N, *c1 = c0 + N, *c2 = c1 + N, *c3 = c2 + N;
        for (; j < N; j++)
            for (int l = 0; l < L; l++) {
                const float *ar = A + (size_t)l * M + i;
                float b = TN_ROW(l)[j];
                c0[j] = fmaf(ar[0], b, c0[j]);
                c1[j] = fmaf(ar[1], b, c1[j]);
                c2[j] = fmaf(ar[2], b, c2[j]);
                c3[j] = fmaf(ar[3], b, c3[j]);
            }
    }
    for (; i < M; i++) {
        float *c = C + (size_t)i * N;
        int j = 0;
        for (; j + 8 <= N; j += 8) {
            __m256 v = acc ? _mm256_loadu_ps(c + j) : _mm256_setzero_ps();
            for (int l = 0; l < L; l++)
                v = _mm256_fmadd_ps(_mm256_broadcast_ss(A + (size_t)l * M + i),
                                    _mm256_loadu_ps(TN_ROW(l) + j), v);
            _mm256_storeu_ps(c + j, v);
        }
        for (; j < N; j++)
            for (int l = 0; l < L; l++) c[j] = fmaf(A[(size_t)l * M + i], TN_ROW(l)[j], c[j]);
    }
}

/* The three instances: matrix, rows, rows with prefetch. */
__attribute__((target("avx2,fma"))) static void
mm_tn_mat_avx2(float *C, const float *A, const float *Bm, int M, int N, int L, int acc)
{
    mm_tn_body(C, A, Bm, NULL, 0, NULL, M, N, L, acc);
}

__attribute__((target("avx2,fma"))) static void mm_tn_rows_avx2(float *C, const float *A,
                                                                const float *const *Brows,
                                                                struct mv_prefetch *pf, int M,
                                                                int N, int L, int acc)
{
    if (pf)
        mm_tn_body(C, A, NULL, Brows, 1, pf, M, N, L, acc);
    else
        mm_tn_body(C, A, NULL, Brows, 1, NULL, M, N, L, acc);
}

/* sqdist_avx2's last steps: its two accumulators summed, then the floats past the last full
 * chunk of 8, from l on. Shared with row_update_avx2, which must give the same bits. */
__attribute__((target("avx2,fma"), always_inline)) static inline float
sqdist_finish(__m256 s, __m256 t, const float *a, const float *b, int l, int L)
{
    float r = hsum256(_mm256_add_ps(s, t));
    for (; l < L; l++) r += (a[l] - b[l]) * (a[l] - b[l]);
    return r;
}

/* Chunks of 8 alternate between two accumulators: the even ones (and a last unpaired one)
 * into s, the odd ones into t. */
__attribute__((target("avx2,fma"))) static float sqdist_avx2(const float *a, const float *b, int L)
{
    __m256 s = _mm256_setzero_ps(), t = s;
    int l = 0;
    for (; l + 16 <= L; l += 16) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + l), _mm256_loadu_ps(b + l));
        __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a + l + 8), _mm256_loadu_ps(b + l + 8));
        s = _mm256_fmadd_ps(d0, d0, s);
        t = _mm256_fmadd_ps(d1, d1, t);
    }
    for (; l + 8 <= L; l += 8) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + l), _mm256_loadu_ps(b + l));
        s = _mm256_fmadd_ps(d0, d0, s);
    }
    return sqdist_finish(s, t, a, b, l, L);
}

__attribute__((target("avx2,fma"))) static void axpby_acc_avx2(float *dst, float a, const float *x,
                                                               float b, const float *y, int L)
{
    __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
    int l = 0;
    for (; l + 8 <= L; l += 8) {
        __m256 d = _mm256_loadu_ps(dst + l);
        d = _mm256_fmadd_ps(va, _mm256_loadu_ps(x + l), d);
        d = _mm256_fmadd_ps(vb, _mm256_loadu_ps(y + l), d);
        _mm256_storeu_ps(dst + l, d);
    }
    for (; l < L; l++) dst[l] += a * x[l] + b * y[l];
}

/* dst = a x + b y with the roundings of axpby_acc_avx2 onto a zeroed dst. */
__attribute__((target("avx2,fma"))) static void axpby_avx2(float *dst, float a, const float *x,
                                                           float b, const float *y, int L)
{
    __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
    int l = 0;
    for (; l + 8 <= L; l += 8) {
        __m256 d = _mm256_fmadd_ps(va, _mm256_loadu_ps(x + l), _mm256_setzero_ps());
        _mm256_storeu_ps(dst + l, _mm256_fmadd_ps(vb, _mm256_loadu_ps(y + l), d));
    }
    for (; l < L; l++) dst[l] = 0.0f + (a * x[l] + b * y[l]);
}

/* The trainer's per-class update in one pass; see mv_row_update. Each line repeats one of the
 * separate kernels' operations in its order, the tail its scalar form, one operation per
 * statement so that no compiler fuses a multiply and an add the separate kernels keep
 * apart. */
__attribute__((target("avx2,fma"))) static float row_update_avx2(const struct mv_row_update *u,
                                                                 float *w, float *buf, float *weff,
                                                                 const float *g, const float *zs,
                                                                 int L)
{
    const __m256 zero = _mm256_setzero_ps(), va = _mm256_set1_ps(u->a), vb = _mm256_set1_ps(u->b);
    const __m256 vf = _mm256_set1_ps(u->f), vnf = _mm256_set1_ps(-u->f);
    const __m256 vm = _mm256_set1_ps(u->mom), vd = _mm256_set1_ps(u->damp);
    const __m256 vl = _mm256_set1_ps(u->lr), val = _mm256_set1_ps(u->alpha);
    const int clap = u->clap, taskres = u->taskres; /* not reloaded after every store */
    const int unit = u->damp == 1.0f, dist = clap && u->dist;
    __m256 acc = zero, ds = zero, dt = zero; /* dist: sqdist_avx2's two accumulators */
    int l = 0;
    for (; l + 8 <= L; l += 8) {
        __m256 we = _mm256_loadu_ps(weff + l), wv = _mm256_loadu_ps(w + l), z = zero;
        __m256 d = _mm256_fmadd_ps(va, _mm256_loadu_ps(g + l), zero); /* mv_axpby */
        d = _mm256_fmadd_ps(vb, we, d);
        if (clap) { /* mv_axpby_acc */
            z = _mm256_loadu_ps(zs + l);
            d = _mm256_fmadd_ps(vf, wv, d);
            d = _mm256_fmadd_ps(vnf, z, d);
        }
        __m256 m = _mm256_mul_ps(vm, _mm256_loadu_ps(buf + l));        /* SGD */
        __m256 bb = _mm256_add_ps(m, unit ? d : _mm256_mul_ps(vd, d)); /* x 1: the same bits */
        _mm256_storeu_ps(buf + l, bb);
        wv = _mm256_sub_ps(wv, _mm256_mul_ps(vl, bb));
        _mm256_storeu_ps(w + l, wv);
        we = wv;
        if (taskres) { /* the effective prototype */
            we = _mm256_add_ps(_mm256_loadu_ps(zs + l), _mm256_mul_ps(val, wv));
            _mm256_storeu_ps(weff + l, we);
        }
        acc = _mm256_fmadd_ps(we, we, acc); /* mv_dot */
        if (dist) { /* mv_sqdist of the updated row: chunk l / 8 even into ds, odd into dt */
            __m256 e = _mm256_sub_ps(wv, z);
            if (l & 8)
                dt = _mm256_fmadd_ps(e, e, dt);
            else
                ds = _mm256_fmadd_ps(e, e, ds);
        }
    }
    const int tail = l;
    float r = hsum256(acc);
    for (; l < L; l++) {
        float p = u->a * g[l], q = u->b * weff[l];
        float d = p + q;
        d = 0.0f + d;
        if (u->clap) {
            p = u->f * w[l];
            q = -u->f * zs[l];
            p = p + q;
            d += p;
        }
        p = u->mom * buf[l];
        q = u->damp * d;
        buf[l] = p + q;
        p = u->lr * buf[l];
        w[l] -= p;
        float we = w[l];
        if (u->taskres) {
            p = u->alpha * w[l];
            we = zs[l] + p;
            weff[l] = we;
        }
        r = fmaf(we, we, r);
    }
    if (dist) *u->dist = sqdist_finish(ds, dt, w, zs, tail, L);
    return r;
}

__attribute__((target("avx2,fma"))) static void line_list_avx2(const void **list, const float *base,
                                                               size_t stride, const int *idx, int n,
                                                               int lines)
{
    const __m256i step = _mm256_set1_epi64x(256);
    for (int b = 0; b < n; b++) {
        const float *row = base + (size_t)idx[b] * stride;
        __m256i at = _mm256_add_epi64(_mm256_set1_epi64x((long long)(uintptr_t)row),
                                      _mm256_setr_epi64x(0, 64, 128, 192));
        int i = 0;
        for (; i + 4 <= lines; i += 4, at = _mm256_add_epi64(at, step))
            _mm256_storeu_si256((__m256i *)(void *)(list + i), at);
        for (; i < lines; i++) list[i] = (const char *)row + (size_t)i * 64;
        list += lines;
    }
}

/* K = 4, B even: eight logits per vector, the plain loop's additions and products. */
__attribute__((target("avx2,fma"))) static void partial_logits4(float *raw, float *logits,
                                                                const float *parts, int np,
                                                                size_t stride, int B,
                                                                const float *fac)
{
    const size_t n = (size_t)B * 4;
    const __m256 f = _mm256_setr_ps(fac[0], fac[1], fac[2], fac[3], fac[0], fac[1], fac[2], fac[3]);
    for (size_t i = 0; i < n; i += 8) {
        __m256 v = _mm256_loadu_ps(parts + i);
        for (int j = 1; j < np; j++)
            v = _mm256_add_ps(v, _mm256_loadu_ps(parts + (size_t)j * stride + i));
        _mm256_storeu_ps(raw + i, v);
        _mm256_storeu_ps(logits + i, _mm256_mul_ps(v, f));
    }
}

/* The index of the first of x[i..n) that is not finite, 64 floats per test of their exponent
 * bits; with dst (a constant where inlined), copying what it reads. */
__attribute__((target("avx2,fma"), always_inline)) static inline size_t
scan_avx2(float *dst, const float *x, size_t n)
{
    const __m256i expo = _mm256_set1_epi32(0x7f800000);
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m256i any = _mm256_setzero_si256();
        for (int v = 0; v < 64; v += 8) {
            __m256i e = _mm256_loadu_si256((const __m256i *)(const void *)(x + i + v));
            if (dst) _mm256_storeu_si256((__m256i *)(void *)(dst + i + v), e);
            any = _mm256_or_si256(any, _mm256_cmpeq_epi32(_mm256_and_si256(e, expo), expo));
        }
        if (!_mm256_testz_si256(any, any)) break;
    }
    return dst ? copy_first_nonfinite_plain(dst, x, i, n) : first_nonfinite_plain(x, i, n);
}

__attribute__((target("avx2,fma"))) static size_t first_nonfinite_avx2(const float *x, size_t n)
{
    return scan_avx2(NULL, x, n);
}

__attribute__((target("avx2,fma"))) static size_t
copy_first_nonfinite_avx2(float *dst, const float *src, size_t n)
{
    return scan_avx2(dst, src, n);
}

int mv_kernels_simd(void)
{
    return mv_cpu_has(MV_CPU_BIT(MV_CPU_AVX2) | MV_CPU_BIT(MV_CPU_FMA));
}

void mv_mm_nt(float *C, const float *A, const float *Bm, int M, int N, int L)
{
    if (mv_kernels_simd())
        mm_nt_avx2(C, A, NULL, Bm, M, N, L, NULL);
    else
        mm_nt_plain(C, A, NULL, Bm, M, N, L);
}

void mv_mm_nt_rows(float *C, const float *const *Arows, const float *Bm, int M, int N, int L,
                   struct mv_prefetch *pf)
{
    if (mv_kernels_simd())
        mm_nt_avx2(C, NULL, Arows, Bm, M, N, L, pf);
    else
        mm_nt_plain(C, NULL, Arows, Bm, M, N, L);
}

void mv_mm_tn_acc(float *C, const float *A, const float *Bm, int M, int N, int L)
{
    if (mv_kernels_simd())
        mm_tn_mat_avx2(C, A, Bm, M, N, L, 1);
    else
        mm_tn_acc_plain(C, A, Bm, NULL, M, N, L, 1);
}

void mv_mm_tn_acc_rows(float *C, const float *A, const float *const *Brows, int M, int N, int L)
{
    if (mv_kernels_simd())
        mm_tn_rows_avx2(C, A, Brows, NULL, M, N, L, 1);
    else
        mm_tn_acc_plain(C, A, NULL, Brows, M, N, L, 1);
}

void mv_mm_tn_rows(float *C, const float *A, const float *const *Brows, int M, int N, int L,
                   struct mv_prefetch *pf)
{
    if (mv_kernels_simd())
        mm_tn_rows_avx2(C, A, Brows, pf, M, N, L, 0);
    else
        mm_tn_acc_plain(C, A, NULL, Brows, M, N, L, 0);
}

float mv_dot(const float *a, const float *b, int L)
{
    return mv_kernels_simd() ? dot1(a, b, L) : mv_dot_ref(a, b, L);
}

float mv_sqdist(const float *a, const float *b, int L)
{
    return mv_kernels_simd() ? sqdist_avx2(a, b, L) : mv_sqdist_ref(a, b, L);
}

void mv_axpby_acc(float *dst, float a, const float *x, float b, const float *y, int L)
{
    if (mv_kernels_simd())
        axpby_acc_avx2(dst, a, x, b, y, L);
    else
        mv_axpby_acc_ref(dst, a, x, b, y, L);
}

float mv_row_update(const struct mv_row_update *u, float *w, float *buf, float *weff,
                    const float *g, const float *zs, int L)
{
    return mv_kernels_simd() ? row_update_avx2(u, w, buf, weff, g, zs, L)
                             : mv_row_update_ref(u, w, buf, weff, g, zs, L);
}

void mv_axpby(float *dst, float a, const float *x, float b, const float *y, int L)
{
    if (mv_kernels_simd())
        axpby_avx2(dst, a, x, b, y, L);
    else
        mv_axpby_ref(dst, a, x, b, y, L);
}

void mv_line_list(const void **list, const float *base, size_t stride, const int *idx, int n,
                  int lines)
{
    if (mv_kernels_simd())
        line_list_avx2(list, base, stride, idx, n, lines);
    else
        line_list_plain(list, base, stride, idx, n, lines);
}

size_t mv_first_nonfinite(const float *x, size_t n)
{
    return mv_kernels_simd() ? first_nonfinite_avx2(x, n) : first_nonfinite_plain(x, 0, n);
}

size_t mv_copy_first_nonfinite(float *dst, const float *src, size_t n)
{
    return mv_kernels_simd() ? copy_first_nonfinite_avx2(dst, src, n)
                             : copy_first_nonfinite_plain(dst, src, 0, n);
}

void mv_partial_logits(float *raw, float *logits, const float *parts, int np, size_t stride, int B,
                       int K, const float *fac)
{
    if (K == 4 && B % 2 == 0 && mv_kernels_simd())
        partial_logits4(raw, logits, parts, np, stride, B, fac);
    else
        partial_logits_plain(raw, logits, parts, np, stride, B, K, fac);
}

#else

int mv_kernels_simd(void)
{
    return 0;
}

void mv_mm_nt(float *C, const float *A, const float *Bm, int M, int N, int L)
{
    mm_nt_plain(C, A, NULL, Bm, M, N, L);
}

void mv_mm_nt_rows(float *C, const float *const *Arows, const float *Bm, int M, int N, int L,
                   struct mv_prefetch *pf)
{
    (void)pf;
    mm_nt_plain(C, NULL, Arows, Bm, M, N, L);
}

void mv_mm_tn_acc(float *C, const float *A, const float *Bm, int M, int N, int L)
{
    mm_tn_acc_plain(C, A, Bm, NULL, M, N, L, 1);
}

void mv_mm_tn_acc_rows(float *C, const float *A, const float *const *Brows, int M, int N, int L)
{
    mm_tn_acc_plain(C, A, NULL, Brows, M, N, L, 1);
}

void mv_mm_tn_rows(float *C, const float *A, const float *const *Brows, int M, int N, int L,
                   struct mv_prefetch *pf)
{
    (void)pf;
    mm_tn_acc_plain(C, A, NULL, Brows, M, N, L, 0);
}

float mv_dot(const float *a, const float *b, int L)
{
    return mv_dot_ref(a, b, L);
}

float mv_sqdist(const float *a, const float *b, int L)
{
    return mv_sqdist_ref(a, b, L);
}

void mv_axpby_acc(float *dst, float a, const float *x, float b, const float *y, int L)
{
    mv_axpby_acc_ref(dst, a, x, b, y, L);
}

void mv_axpby(float *dst, float a, const float *x, float b, const float *y, int L)
{
    mv_axpby_ref(dst, a, x, b, y, L);
}

float mv_row_update(const struct mv_row_update *u, float *w, float *buf, float *weff,
                    const float *g, const float *zs, int L)
{
    return mv_row_update_ref(u, w, buf, weff, g, zs, L);
}

void mv_line_list(const void **list, const float *base, size_t stride, const int *idx, int n,
                  int lines)
{
    line_list_plain(list, base, stride, idx, n, lines);
}

size_t mv_first_nonfinite(const float *x, size_t n)
{
    return first_nonfinite_plain(x, 0, n);
}

size_t mv_copy_first_nonfinite(float *dst, const float *src, size_t n)
{
    return copy_first_nonfinite_plain(dst, src, 0, n);
}

void mv_partial_logits(float *raw, float *logits, const float *parts, int np, size_t stride, int B,
                       int K, const float *fac)
{
    partial_logits_plain(raw, logits, parts, np, stride, B, K, fac);
}

#endif

/* ---- column dot products ---- */

#ifdef MV_HAVE_X86
/* K = 4: the four sums in one vector of doubles, the same products and additions in the same
 * order as the loop of mv_coldot. */
__attribute__((target("avx2,fma"))) static void coldot4(float *out, const float *A, const float *Bm,
                                                        int B)
{
    __m256d acc = _mm256_setzero_pd();
    for (int b = 0; b < B; b++)
        acc = _mm256_add_pd(acc, _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(A + 4 * b)),
                                               _mm256_cvtps_pd(_mm_loadu_ps(Bm + 4 * b))));
    _mm_storeu_ps(out, _mm256_cvtpd_ps(acc));
}
#endif

void mv_coldot(float *out, double *acc, const float *A, const float *Bm, int B, int K)
{
#ifdef MV_HAVE_X86
    if (K == 4 && mv_kernels_simd()) {
        coldot4(out, A, Bm, B);
        return;
    }
#endif
    for (int k = 0; k < K; k++) acc[k] = 0;
    for (int b = 0; b < B; b++)
        for (int k = 0; k < K; k++) acc[k] += (double)A[(size_t)b * K + k] * Bm[(size_t)b * K + k];
    for (int k = 0; k < K; k++) out[k] = (float)acc[k];
}

/* ---- the same over threads, for whole feature tables ---- */

#define PAR_ABOVE (1 << 20) /* floats read: below, one thread (a team costs ~10 us) */

/* The team that reads `work` floats when the caller has `threads`: one for small work and
 * inside a parallel region (or without OpenMP). */
static int team_size(int threads, size_t work)
{
    if (threads <= 1 || work < PAR_ABOVE) return 1;
#ifdef _OPENMP
    return omp_in_parallel() ? 1 : threads;
#else
    return 1;
#endif
}

/* mv_first_nonfinite (dst NULL) or mv_copy_first_nonfinite. */
static size_t scan(float *dst, const float *x, size_t n)
{
    return dst ? mv_copy_first_nonfinite(dst, x, n) : mv_first_nonfinite(x, n);
}

/* scan over chunks split among threads: the smallest index found. */
static size_t scan_par(float *dst, const float *x, size_t n, int threads)
{
    const int T = team_size(threads, n);
    if (T <= 1) return scan(dst, x, n);
    const size_t chunk = 1 << 16;
    const long nchunks = (long)((n + chunk - 1) / chunk);
    size_t first = n;
#pragma omp parallel for num_threads(T) schedule(static) reduction(min : first)
    for (long c = 0; c < nchunks; c++) {
        const size_t lo = (size_t)c * chunk, len = MV_MIN(chunk, n - lo);
        const size_t f = scan(dst ? dst + lo : NULL, x + lo, len);
        if (f < len && lo + f < first) first = lo + f;
    }
    return first;
}

size_t mv_first_nonfinite_par(const float *x, size_t n, int threads)
{
    return scan_par(NULL, x, n, threads);
}

size_t mv_copy_first_nonfinite_par(float *dst, const float *src, size_t n, int threads)
{
    return scan_par(dst, src, n, threads);
}

void mv_mm_nt_par(float *C, const float *A, const float *Bm, int M, int N, int L, int threads)
{
    const int T = team_size(threads, (size_t)M * (size_t)L);
    if (T <= 1) {
        mv_mm_nt(C, A, Bm, M, N, L);
        return;
    }
    const int rows = 240; /* a multiple of the kernel's 3-row groups */
    const int nchunks = (M + rows - 1) / rows;
#pragma omp parallel for num_threads(T) schedule(static)
    for (int c = 0; c < nchunks; c++) {
        const int lo = c * rows;
        mv_mm_nt(C + (size_t)lo * N, A + (size_t)lo * L, Bm, MV_MIN(rows, M - lo), N, L);
    }
}

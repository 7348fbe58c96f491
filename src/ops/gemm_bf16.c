/*
 * gemm_bf16.c - the linear layer C (M, N) = alpha * A (M, K) W^T + beta * C with the weight W
 * (N, K) held in bf16 (converted once) and the products run by AVX512_BF16's vdpbf16ps: two
 * bf16 products per fp32 lane per instruction, accumulated in fp32. The activations A stay
 * fp32 in memory and are rounded to bf16 while they are packed.
 *
 * What vdpbf16ps computes (Intel SDM, "VDPBF16PS"; every case below was checked against the
 * instruction on a Sapphire Rapids class Xeon, tests/unit/test_gemm_bf16.c does it again): for
 * each fp32 lane, with the lane's 32 bits of each source a pair of bf16 (element 0 in bits
 * 0..15, element 1 in bits 16..31),
 *     acc = fma(a1, b1, acc); acc = fma(a0, b0, acc)
 * the upper pair first, each fma rounded once to nearest even, denormal inputs (acc included)
 * read as zero and a result that is tiny flushed to a zero of its sign. "Tiny" is judged after
 * rounding to 24 bits with an unbounded exponent (x86's rule): an exact result in
 * [FLT_MIN - 2^-151, FLT_MIN) rounds to FLT_MIN and stays, one below flushes, although a
 * plain fmaf would give FLT_MIN for both. MXCSR is neither read nor written. The portable
 * sibling, mv_bf16_dot2_portable, does exactly this in C, so the two paths agree bit for bit.
 *
 * The conversion fp32 -> bf16 is the SDM's convert_fp32_to_bfloat16 (vcvtne2ps2bf16): round to
 * nearest even on the upper 16 bits, zero and denormals to a zero of their sign, infinities
 * kept, NaN kept NaN (quiet bit set), overflow to infinity.
 *
 * Blocking: W is packed once, panels of NR = 32 output columns, each panel k-pair-major (for each
 * pair of k, the 2 bf16 of each of its 32 columns), so a KC-deep slice of a panel is contiguous
 * (KC/2 x 128 bytes) and stays in L1 while the MR-row tiles of a row block pass over it. A row
 * block of A (at most MC rows, one KC slice) is packed per thread into MR-row micro-panels of
 * bf16 pairs; every MR x NR tile of C is one kernel call (24 zmm accumulators, one broadcast
 * pair of A and two vdpbf16ps per row per k pair).
 *
 * Every element of C is computed by the same sequence wherever its tile falls: for each KC
 * slice in order, acc = 0 and the vdpbf16ps chain over its k pairs in order (zero padding: an
 * odd K's missing partner, rows past M, columns past N, adds products of +0), then
 * C = alpha * acc (+ beta * C) on the first slice and C = C + alpha * acc on the others. So a
 * thread team, which takes (row block, column block) items first come first served, gives the
 * same bits for every T, and the portable path the same bits as the AVX-512 one.
 *
 * Glossary: M rows of A and C, N output features (rows of W, columns of C), K input features;
 * MR x NR the register tile, MC x KC the packed block of A, K2 = ceil(K / 2) k pairs.
 */
#include "ops.h"

#include <float.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#include <immintrin.h>
#define MV_HAVE_BF16_PATH 1
#endif

#define MR 12
#define NR 32
#ifndef MV_BF16_MC /* the blocks, overridable for tuning experiments */
#define MV_BF16_MC 144
#define MV_BF16_KC 256
#endif
#define MC MV_BF16_MC
#define KC MV_BF16_KC
#ifndef MV_BF16_ITEMS /* items per thread a team aims for */
#define MV_BF16_ITEMS 4
#endif

_Static_assert(MC % MR == 0 && KC % 2 == 0, "blocks hold whole tiles and whole k pairs");

/* ---- bf16 numbers ---- */

static inline float f32_of_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

uint16_t mv_bf16_from_f32(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    uint32_t mag = u & 0x7fffffffu;
    if (mag > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);   /* NaN: quiet, still NaN */
    if (mag < 0x00800000u) return (uint16_t)((u >> 16) & 0x8000); /* zero, denormal */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);     /* nearest even; inf stays */
}

static inline float bf16_f32(uint16_t h)
{
    return f32_of_bits((uint32_t)h << 16);
}

static inline float daz(float x)
{
    return fabsf(x) < FLT_MIN ? copysignf(0.0f, x) : x;
}

/* fma(a, b, c) as one step of vdpbf16ps: denormal inputs as zero, tiny results (after
 * rounding, unbounded exponent) flushed. fmaf's result is correctly rounded on the denormal
 * grid: when it is denormal the exact value is tiny either way; when it is +-FLT_MIN, the exact
 * value x = a b + c (a b is exact in double: two 8-bit significands) is recovered as s + e by
 * TwoSum and compared with FLT_MIN - 2^-151, the midpoint below which 24-bit rounding stays
 * under FLT_MIN. */
static inline float fma_daz_ftz(float a, float b, float c)
{
    a = daz(a), b = daz(b), c = daz(c);
    float r = fmaf(a, b, c);
    if (!(fabsf(r) <= FLT_MIN) || r == 0.0f) return r; /* the common case, NaN, inf, zero */
    if (fabsf(r) < FLT_MIN) return copysignf(0.0f, r);
    double p = (double)a * (double)b, s = p + (double)c, bb = s - p;
    double e = (p - (s - bb)) + ((double)c - bb), T = 0x1p-126 - 0x1p-151;
    if (fabs(s) < T || (fabs(s) == T && (s > 0 ? e < 0 : e > 0))) return copysignf(0.0f, r);
    return r;
}

float mv_bf16_dot2_portable(float acc, uint32_t a, uint32_t b)
{
    acc = fma_daz_ftz(bf16_f32((uint16_t)(a >> 16)), bf16_f32((uint16_t)(b >> 16)), acc);
    return fma_daz_ftz(bf16_f32((uint16_t)a), bf16_f32((uint16_t)b), acc);
}

/* ---- the packed weight ---- */

int mv_gemm_bf16_available(void)
{
#ifdef MV_HAVE_BF16_PATH
    return mv_cpu_has(MV_CPU_BIT(MV_CPU_AVX512F) | MV_CPU_BIT(MV_CPU_AVX512_BF16));
#else
    return 0;
#endif
}

/* Element (j, k) of the packed matrix: W[j][k], or W[k][j] when W holds its transpose. */
static inline float weight_at(const float *W, int trans, int N, int K, int j, int k)
{
    return trans ? W[(size_t)k * N + j] : W[(size_t)j * K + k];
}

void mv_bf16_weight_refill(const struct mv_bf16_weight *w, const float *W, int trans)
{
    // W (N, K) row-major fp32, or (K, N) when trans; w->data (panels, K2, NR, 2) bf16
    const int N = w->N, K = w->K, K2 = w->K2;
    for (int p = 0; p < w->panels; p++) {
        uint16_t *d = w->data + (size_t)p * K2 * NR * 2;
        const int nc = MV_MIN(NR, N - p * NR);
        /* k pair by k pair, so the transposed source is read along its rows */
        for (int kp = 0; kp < K2; kp++) {
            uint16_t *o = d + (size_t)kp * NR * 2;
            const int k = 2 * kp, two = k + 1 < K;
            for (int c = 0; c < nc; c++) {
                o[2 * c] = mv_bf16_from_f32(weight_at(W, trans, N, K, p * NR + c, k));
                o[2 * c + 1] =
                    two ? mv_bf16_from_f32(weight_at(W, trans, N, K, p * NR + c, k + 1)) : 0;
            }
            for (int c = nc; c < NR; c++) o[2 * c] = o[2 * c + 1] = 0;
        }
    }
}

static enum medvlm_status weight_pack(struct mv_bf16_weight *w, const float *W, int N, int K,
                                      int trans)
{
    memset(w, 0, sizeof *w);
    if (!W || N < 1 || K < 1)
        return mv_err(MEDVLM_ERR_ARG, "bf16 weight: expected a (N, K) matrix, got (%d, %d)%s", N, K,
                      W ? "" : " and no data");
    int panels = (N + NR - 1) / NR, K2 = (K + 1) / 2;
    size_t n, bytes;
    if (!mv_mul_ok((size_t)panels * NR, (size_t)K2 * 2, &n) || !mv_mul_ok(n, 2, &bytes))
        return mv_err(MEDVLM_ERR_OVERFLOW, "bf16 weight: (%d, %d) does not fit in memory", N, K);
    uint16_t *d = mv_aligned(bytes);
    if (!d) return mv_err_ctx(MEDVLM_ERR_NOMEM, "bf16 weight (%d, %d)", N, K);
    w->data = d;
    w->N = N;
    w->K = K;
    w->K2 = K2;
    w->panels = panels;
    mv_bf16_weight_refill(w, W, trans);
    return MEDVLM_OK;
}

enum medvlm_status mv_bf16_weight_pack(struct mv_bf16_weight *w, const float *W, int N, int K)
{
    return weight_pack(w, W, N, K, 0);
}

enum medvlm_status mv_bf16_weight_pack_trans(struct mv_bf16_weight *w, const float *W, int N, int K)
{
    return weight_pack(w, W, N, K, 1);
}

void mv_bf16_weight_free(struct mv_bf16_weight *w)
{
    if (!w) return;
    mv_free(w->data);
    memset(w, 0, sizeof *w);
}

/* ---- packing A and the tile kernels ---- */

/* A rows [i0, i0 + m) x columns [k0, k0 + kc) as bf16 pairs into MR-row micro-panels: panel
 * q holds rows i0 + q MR .. as dst[q][kp][r] (one 32-bit pair per row and k pair: k0 + 2 kp in
 * bits 0..15, k0 + 2 kp + 1 in bits 16..31); rows past m and an odd kc's last partner zero. */
static void pack_a(uint32_t *dst, const float *A, int lda, int i0, int m, int k0, int kc)
{
    int kc2 = (kc + 1) / 2;
    for (int q = 0; q < m; q += MR) {
        uint32_t *d = dst + (size_t)q * kc2;
        for (int r = 0; r < MR; r++) {
            const float *s = q + r < m ? A + (size_t)(i0 + q + r) * lda + k0 : NULL;
            for (int kp = 0; kp < kc2; kp++) {
                uint32_t lo = s ? mv_bf16_from_f32(s[2 * kp]) : 0;
                uint32_t hi = s && 2 * kp + 1 < kc ? mv_bf16_from_f32(s[2 * kp + 1]) : 0;
                d[(size_t)kp * MR + r] = lo | hi << 16;
            }
        }
    }
}

/* The tile's update from its accumulator, element by element: the same in both kernels. */
static inline float tile_out(float acc, float c, float alpha, float beta, int first)
{
    float t = alpha * acc;
    if (!first || beta == 1.0f) return c + t;
    if (beta == 0.0f) return t; /* C is not read: it may hold anything */
    return beta * c + t;
}

/* One m x n (<= MR x NR) tile in plain C: per element, mv_bf16_dot2_portable over the k pairs
 * in order.
 * a: (kc2, MR) pairs; b: (kc2, NR, 2) bf16; pf: the slice of b the next tile column reads (the
 * vector kernel prefetches it into L2), or NULL. */
static void kernel_portable(int kc2, const uint32_t *a, const uint16_t *b, const uint16_t *pf,
                            float *C, int ldc, int m, int n, float alpha, float beta, int first)
{
    (void)pf;
    float acc[MR][NR] = {{0}};
    for (int kp = 0; kp < kc2; kp++) /* the tile's m x n elements only */
        for (int r = 0; r < m; r++)
            for (int c = 0; c < n; c++) {
                const uint16_t *bp = b + ((size_t)kp * NR + c) * 2;
                uint32_t bw = (uint32_t)bp[0] | (uint32_t)bp[1] << 16;
                acc[r][c] = mv_bf16_dot2_portable(acc[r][c], a[(size_t)kp * MR + r], bw);
            }
    for (int r = 0; r < m; r++)
        for (int c = 0; c < n; c++) {
            float *o = C + (size_t)r * ldc + c;
            *o = tile_out(acc[r][c], first && beta == 0.0f ? 0.0f : *o, alpha, beta, first);
        }
}

#ifdef MV_HAVE_BF16_PATH
/* pack_a with vcvtne2ps2bf16 (the same rounding as mv_bf16_from_f32, checked by the test):
 * 32 floats of a row become 16 pairs, scattered to their k pairs' slots of the micro-panel. */
__attribute__((target("avx512f,avx512bf16"))) static void
pack_a_avx512(uint32_t *dst, const float *A, int lda, int i0, int m, int k0, int kc)
{
    int kc2 = (kc + 1) / 2;
    const __m512i idx =
        _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                           _mm512_set1_epi32(MR));
    for (int q = 0; q < m; q += MR) {
        uint32_t *d = dst + (size_t)q * kc2;
        for (int r = 0; r < MR; r++) {
            const float *s = q + r < m ? A + (size_t)(i0 + q + r) * lda + k0 : A;
            for (int kk = 0; kk < kc; kk += 32) {
                int kn = MV_MIN(32, kc - kk);
                __mmask16 m0 = (__mmask16)(kn >= 16 ? 0xffff : (1u << kn) - 1);
                __mmask16 m1 = (__mmask16)(kn >= 32 ? 0xffff : kn > 16 ? (1u << (kn - 16)) - 1 : 0);
                __mmask16 mp = (__mmask16)(kn >= 32 ? 0xffff : (1u << ((kn + 1) / 2)) - 1);
                __m512 x0 = _mm512_setzero_ps(), x1 = _mm512_setzero_ps();
                if (q + r < m) {
                    x0 = _mm512_maskz_loadu_ps(m0, s + kk);
                    x1 = _mm512_maskz_loadu_ps(m1, s + kk + 16);
                }
                __m512i v = (__m512i)_mm512_cvtne2ps_pbh(x1, x0);
                _mm512_mask_i32scatter_epi32(d + (size_t)(kk / 2) * MR + r, mp, idx, v, 4);
            }
        }
    }
}

/* The tile with 24 zmm accumulators: rows r = 0..11, column halves 0..15 and 16..31. */
__attribute__((target("avx512f,avx512bf16"))) static void
kernel_avx512(int kc2, const uint32_t *a, const uint16_t *b, const uint16_t *pf, float *C, int ldc,
              int m, int n, float alpha, float beta, int first)
{
    __m512 c0[MR], c1[MR];
    for (int r = 0; r < m; r++) { /* the tile's rows arrive while the products run */
        _mm_prefetch((const char *)(C + (size_t)r * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(C + (size_t)r * ldc + NR - 1), _MM_HINT_T0);
    }
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++) c0[r] = c1[r] = _mm512_setzero_ps();
    for (int kp = 0; kp < kc2; kp++) {
        __m512bh b0 = (__m512bh)_mm512_load_si512(b), b1 = (__m512bh)_mm512_load_si512(b + NR);
        if (pf) { /* the next panel's slice, two lines a k pair (its 128 bytes) */
            _mm_prefetch((const char *)(pf + (size_t)kp * 2 * NR), _MM_HINT_T1);
            _mm_prefetch((const char *)(pf + (size_t)kp * 2 * NR + NR), _MM_HINT_T1);
        }
#pragma GCC unroll 12
        for (int r = 0; r < MR; r++) {
            __m512bh ar = (__m512bh)_mm512_set1_epi32((int)a[r]);
            c0[r] = _mm512_dpbf16_ps(c0[r], ar, b0);
            c1[r] = _mm512_dpbf16_ps(c1[r], ar, b1);
        }
        a += MR;
        b += 2 * NR;
    }
    mv_tile_store12x32(c0, c1, C, ldc, m, n, alpha, beta, first, NULL, 1.0f);
}

#endif

typedef void (*kernel_fn)(int, const uint32_t *, const uint16_t *, const uint16_t *, float *, int,
                          int, int, float, float, int);
typedef void (*pack_a_fn)(uint32_t *, const float *, int, int, int, int, int);
struct bf16_path {
    kernel_fn kern;
    pack_a_fn pack_a;
};
static const struct bf16_path path_portable = {kernel_portable, pack_a};
#ifdef MV_HAVE_BF16_PATH
static const struct bf16_path path_avx512 = {kernel_avx512, pack_a_avx512};
#endif

/* ---- the per-thread A block, kept across calls ---- */

/* This thread's MC x KC bf16 block of A (MC x KC/2 pairs, 72 KB), NULL when it cannot be had. */
static uint32_t *thread_panel(void)
{
    return mv_thread_scratch(MV_SCRATCH_GEMM_BF16, (size_t)MC * (KC / 2) * sizeof(uint32_t));
}

/* ---- items: (row block, column block) pairs, first come first served ---- */

struct job {
    const struct bf16_path *path;
    int M, lda, ldc;
    const float *A;
    const struct mv_bf16_weight *W;
    float alpha, beta, *C;
    int unit, cols;     /* rows per row block (a multiple of MR, <= MC); panels per column block */
    int cblocks, items; /* column blocks; row blocks x column blocks */
    int next;           /* the next item */
};

static void run_item(const struct job *jb, uint32_t *pa, int g)
{
    const struct mv_bf16_weight *W = jb->W;
    int u = g / jb->cblocks, v = g % jb->cblocks;
    int i0 = u * jb->unit, m = MV_MIN(jb->unit, jb->M - i0);
    int p0 = v * jb->cols, p1 = MV_MIN(W->panels, p0 + jb->cols);
    for (int k0 = 0; k0 < W->K; k0 += KC) {
        int kc = MV_MIN(KC, W->K - k0), kc2 = (kc + 1) / 2, first = k0 == 0;
        jb->path->pack_a(pa, jb->A, jb->lda, i0, m, k0, kc);
        for (int p = p0; p < p1; p++) {
            const uint16_t *b = W->data + ((size_t)p * W->K2 + (size_t)k0 / 2) * NR * 2;
            /* the first tile of a panel brings the next panel's slice into L2 */
            const uint16_t *next = p + 1 < p1 ? b + (size_t)W->K2 * NR * 2 : NULL;
            int n = MV_MIN(NR, W->N - p * NR);
            for (int ir = 0; ir < m; ir += MR)
                jb->path->kern(kc2, pa + (size_t)ir * kc2, b, ir ? NULL : next,
                               jb->C + (size_t)(i0 + ir) * jb->ldc + (size_t)p * NR, jb->ldc,
                               MV_MIN(MR, m - ir), n, jb->alpha, jb->beta, first);
        }
    }
}

static void job_run(struct job *jb, uint32_t *pa)
{
    for (;;) {
        int g = __atomic_fetch_add(&jb->next, 1, __ATOMIC_RELAXED);
        if (g >= jb->items) break;
        run_item(jb, pa, g);
    }
}

static int gemm_bf16(const struct bf16_path *path, int T, int M, const float *A, int lda,
                     const struct mv_bf16_weight *W, float alpha, float beta, float *C, int ldc)
{
    // C (M, N); A (M, K); W (N, K) packed
    if (!W || !W->data) return -1;
    if (M <= 0) return 0;
    T = MV_MAX(T, 1);
    /* about MV_BF16_ITEMS items per thread: row blocks of whole tiles (at most MC rows), and
     * when the rows give too few, column blocks of whole panels as well */
    int target = T * MV_BF16_ITEMS;
    int unit = (M + target - 1) / target;
    unit = MV_MAX(MR, MV_MIN(MC, (unit + MR - 1) / MR * MR));
    int rblocks = (M + unit - 1) / unit, cblocks = 1;
    if (T > 1 && rblocks < target) cblocks = MV_MIN(W->panels, (target + rblocks - 1) / rblocks);
    int cols = (W->panels + cblocks - 1) / cblocks;
    cblocks = (W->panels + cols - 1) / cols;
    struct job jb = {.path = path,
                     .M = M,
                     .lda = lda,
                     .ldc = ldc,
                     .A = A,
                     .W = W,
                     .alpha = alpha,
                     .beta = beta,
                     .C = C,
                     .unit = unit,
                     .cols = cols,
                     .cblocks = cblocks,
                     .items = rblocks * cblocks};
    if (T == 1 || jb.items < 2) {
        uint32_t *pa = thread_panel();
        if (!pa) return -1;
        job_run(&jb, pa);
        return 0;
    }
    int ok = 1;
#pragma omp parallel num_threads(T)
    {
        uint32_t *pa = thread_panel();
        if (!pa) __atomic_store_n(&ok, 0, __ATOMIC_RELAXED);
#pragma omp barrier
        if (__atomic_load_n(&ok, __ATOMIC_RELAXED)) job_run(&jb, pa);
    }
    return ok ? 0 : -1;
}

int mv_gemm_bf16(int T, int M, const float *A, int lda, const struct mv_bf16_weight *W, float alpha,
                 float beta, float *C, int ldc)
{
#ifdef MV_HAVE_BF16_PATH
    if (mv_gemm_bf16_available())
        return gemm_bf16(&path_avx512, T, M, A, lda, W, alpha, beta, C, ldc);
#endif
    return gemm_bf16(&path_portable, T, M, A, lda, W, alpha, beta, C, ldc);
}

int mv_gemm_bf16_portable(int T, int M, const float *A, int lda, const struct mv_bf16_weight *W,
                          float alpha, float beta, float *C, int ldc)
{
    return gemm_bf16(&path_portable, T, M, A, lda, W, alpha, beta, C, ldc);
}

/*
 * gemm_packed.c - C (M, N) = alpha * op(A) op(B) + beta * C with packed panels and an AVX-512
 * register-tile kernel, on one thread or on a team of threads that share the packed panels of
 * op(B) (see "a team of threads" below): the GEMM seam's backend on CPUs with AVX-512
 * where OpenBLAS runs no AVX kernel (OpenBLAS 0.3.21 does not know newer Xeons, e.g. family 6
 * model 207, and falls back to its SSE3 "Prescott" kernels at about a third of the speed).
 *
 * The classic blocking (Goto, BLIS): for each NC-column panel of op(B) and KC-deep slice,
 * pack the slice of op(B) into NR-column micro-panels (k-major, zero-padded); for each
 * MC-row block of op(A), pack MR-row micro-panels (k-major, zero-padded); then every MR x NR
 * tile of C gets one kernel call that keeps the tile in registers over the KC products.
 *
 * Every element of C is computed by the same sequence of operations wherever its tile falls:
 * for each KC slice in order, a fused multiply-add chain over k in order (an exact product of
 * zero padding adds +0), then C = alpha * acc (+ beta * C) on the first slice and
 * C = C + alpha * acc on the others (a linear layer's bias joins C on the first slice). So a
 * block of rows or columns computed alone, in any split across threads, gives exactly the bits
 * of the whole product, and the plain-C kernel (fmaf in the same order) gives the same bits as
 * the AVX-512 one.
 *
 * The panels (MC x KC of op(A) in L2 with one or two KC x NC panels of op(B)) are one buffer
 * per thread (mv_thread_scratch), made on the thread's first product and kept until the thread
 * ends, as OpenBLAS keeps its own: the steady state (every training step, every batch)
 * allocates nothing.
 *
 * Glossary: M rows of op(A) and C, N columns of op(B) and C, K the reduction length; MR x NR
 * the register tile, MC x KC the packed block of op(A), KC x NC the packed panel of op(B).
 */
#include "ops.h"

#include <math.h>
#include <omp.h>
#include <sched.h>
#include <string.h>

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#include <immintrin.h>
#define MV_HAVE_AVX512_PATH 1
#endif

#define MR 12
#define NR 32
#ifndef MV_PACK_MC /* the blocks, overridable for tuning experiments */
#define MV_PACK_MC 144
#define MV_PACK_KC 256
#define MV_PACK_NC 1536
#endif
#ifndef PF_AHEAD /* floats ahead on a row that the packing prefetches */
#define PF_AHEAD 32
#endif
#ifndef MV_PF_HINT
#define MV_PF_HINT _MM_HINT_T1
#endif
#define MC MV_PACK_MC
#define KC MV_PACK_KC
#define NC MV_PACK_NC

_Static_assert(MC % MR == 0 && NC % NR == 0, "blocks hold whole tiles");

/* op(A) rows [i0, i0 + m) x columns [k0, k0 + kc) into MR-row micro-panels: panel p holds
 * rows i0 + p MR .. as dst[p][k][r] (MR floats per k), rows past m zero. */
static void pack_a(float *dst, int ta, const float *A, int lda, int i0, int m, int k0, int kc)
{
    for (int p = 0; p < m; p += MR) {
        int rows = MV_MIN(MR, m - p);
        float *d = dst + (size_t)p * kc;
        if (ta) { /* A is (K, M): op(A)[i][k] = A[k][i], a row of A is contiguous in i */
            for (int k = 0; k < kc; k++) {
                const float *s = A + (size_t)(k0 + k) * lda + i0 + p;
                float *o = d + (size_t)k * MR;
                int r = 0;
                for (; r < rows; r++) o[r] = s[r];
                for (; r < MR; r++) o[r] = 0.0f;
            }
        } else {
            for (int r = 0; r < rows; r++) {
                const float *s = A + (size_t)(i0 + p + r) * lda + k0;
                for (int k = 0; k < kc; k++) d[(size_t)k * MR + r] = s[k];
            }
            for (int r = rows; r < MR; r++)
                for (int k = 0; k < kc; k++) d[(size_t)k * MR + r] = 0.0f;
        }
    }
}

/* op(B) rows [k0, k0 + kc) x columns [j0, j0 + n) into NR-column micro-panels: panel p holds
 * columns j0 + p NR .. as dst[p][k][c] (NR floats per k), columns past n zero. */
static void pack_b(float *dst, int tb, const float *B, int ldb, int k0, int kc, int j0, int n)
{
    if (!tb) { /* row k of op(B) is contiguous: read each once, across all the micro-panels */
        for (int k = 0; k < kc; k++) {
            const float *s = B + (size_t)(k0 + k) * ldb + j0;
            for (int p = 0; p < n; p += NR) {
                int cols = MV_MIN(NR, n - p);
                float *o = dst + (size_t)p * kc + (size_t)k * NR;
                memcpy(o, s + p, (size_t)cols * sizeof(float));
                for (int c = cols; c < NR; c++) o[c] = 0.0f;
            }
        }
        return;
    }
    for (int p = 0; p < n; p += NR) { /* B is (N, K): op(B)[k][j] = B[j][k] */
        int cols = MV_MIN(NR, n - p);
        float *d = dst + (size_t)p * kc;
        for (int c = 0; c < cols; c++) {
            const float *s = B + (size_t)(j0 + p + c) * ldb + k0;
            for (int k = 0; k < kc; k++) d[(size_t)k * NR + c] = s[k];
        }
        for (int c = cols; c < NR; c++)
            for (int k = 0; k < kc; k++) d[(size_t)k * NR + c] = 0.0f;
    }
}

/* The tile's update from its accumulator, element by element: the same in both kernels. On
 * the first slice a bias term bt (hb: there is one) joins what C starts from: bt + t when
 * beta = 0, (C + bt) + t when beta = 1 -- the bits of filling C with the bias first and then
 * accumulating (mv_linear_forward), or of adding it to C first (the residual form). */
static inline float tile_out(float acc, float c, float alpha, float beta, int first, int hb,
                             float bt)
{
    float t = alpha * acc;
    if (!first) return c + t;
    if (beta == 0.0f) return hb ? bt + t : t; /* C is not read: it may hold anything */
    float base = beta == 1.0f ? c : beta * c;
    return (hb ? base + bt : base) + t;
}

/* The bias term of column c: bias[c] scaled by bs (the product's alpha or 1). */
static inline float bias_term(const float *bias, float bs, int c)
{
    return bs == 1.0f ? bias[c] : bs * bias[c];
}

/* One MR x NR tile in plain C: acc = sum_k a[k][r] b[k][c] as fmaf chains in k order. */
static void kernel_portable(int kc, const float *a, const float *b, float *C, int ldc, int m, int n,
                            float alpha, float beta, int first, const float *bias, float bs)
{
    float acc[MR][NR] = {{0}};
    for (int k = 0; k < kc; k++)
        for (int r = 0; r < MR; r++)
            for (int c = 0; c < NR; c++)
                acc[r][c] = fmaf(a[(size_t)k * MR + r], b[(size_t)k * NR + c], acc[r][c]);
    for (int r = 0; r < m; r++)
        for (int c = 0; c < n; c++) {
            float *o = C + (size_t)r * ldc + c;
            *o = tile_out(acc[r][c], first && beta == 0.0f ? 0.0f : *o, alpha, beta, first,
                          first && bias, first && bias ? bias_term(bias, bs, c) : 0.0f);
        }
}

#ifdef MV_HAVE_AVX512_PATH
/* The same tile with 24 zmm accumulators: rows r = 0..11, column halves 0..15 and 16..31.
 * _mm512_fmadd_ps rounds once like fmaf; the output step uses separate multiply and add. */
__attribute__((target("avx512f"))) static void kernel_avx512(int kc, const float *a, const float *b,
                                                             float *C, int ldc, int m, int n,
                                                             float alpha, float beta, int first,
                                                             const float *bias, float bs)
{
    __m512 c0[MR], c1[MR];
    for (int r = 0; r < m; r++) { /* the tile's rows arrive while the products run */
        _mm_prefetch((const char *)(C + (size_t)r * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(C + (size_t)r * ldc + NR - 1), _MM_HINT_T0);
    }
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++) c0[r] = c1[r] = _mm512_setzero_ps();
    const float *pf = b + (size_t)kc * NR; /* the next micro-panel, two lines a step ahead */
    for (int k = 0; k < kc; k++) {
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
        _mm_prefetch((const char *)(pf + 32 * k), MV_PF_HINT);
        _mm_prefetch((const char *)(pf + 32 * k + 16), MV_PF_HINT);
#pragma GCC unroll 12
        for (int r = 0; r < MR; r++) {
            __m512 ar = _mm512_set1_ps(a[r]);
            c0[r] = _mm512_fmadd_ps(ar, b0, c0[r]);
            c1[r] = _mm512_fmadd_ps(ar, b1, c1[r]);
        }
        a += MR;
        b += NR;
    }
    mv_tile_store12x32(c0, c1, C, ldc, m, n, alpha, beta, first, bias, bs);
}

/* The packing again with 16 x 16 register transposes (mv_transpose16) where the scalar loops
 * gather across rows (op(A) = A, op(B) = B^T): the same panels, element for element, at a
 * fraction of the cost. */
__attribute__((target("avx512f"))) static void pack_a_avx512(float *dst, int ta, const float *A,
                                                             int lda, int i0, int m, int k0, int kc)
{
    if (ta) {
        pack_a(dst, ta, A, lda, i0, m, k0, kc);
        return;
    }
    for (int p = 0; p < m; p += MR) {
        int rows = MV_MIN(MR, m - p);
        float *d = dst + (size_t)p * kc;
        for (int kk = 0; kk < kc; kk += 16) {
            int kn = MV_MIN(16, kc - kk);
            __mmask16 km = (__mmask16)(kn == 16 ? 0xffff : (1u << kn) - 1);
            __m512 r[16];
            for (int i = 0; i < rows; i++) /* the rows' lines a few blocks ahead */
                _mm_prefetch((const char *)(A + (size_t)(i0 + p + i) * lda + k0 + kk + PF_AHEAD),
                             _MM_HINT_T0);
            for (int i = 0; i < 16; i++)
                r[i] = i < rows
                           ? _mm512_maskz_loadu_ps(km, A + (size_t)(i0 + p + i) * lda + k0 + kk)
                           : _mm512_setzero_ps();
            mv_transpose16(r);
            for (int k = 0; k < kn; k++)
                _mm512_mask_storeu_ps(d + (size_t)(kk + k) * MR, 0x0fff, r[k]);
        }
    }
}

__attribute__((target("avx512f"))) static void pack_b_avx512(float *dst, int tb, const float *B,
                                                             int ldb, int k0, int kc, int j0, int n)
{
    if (!tb) {
        pack_b(dst, tb, B, ldb, k0, kc, j0, n);
        return;
    }
    for (int p = 0; p < n; p += NR) {
        int cols = MV_MIN(NR, n - p);
        float *d = dst + (size_t)p * kc;
        for (int h = 0; h < NR; h += 16)
            for (int kk = 0; kk < kc; kk += 16) {
                int kn = MV_MIN(16, kc - kk);
                __mmask16 km = (__mmask16)(kn == 16 ? 0xffff : (1u << kn) - 1);
                __m512 r[16];
                for (int i = 0; i < 16 && h + i < cols; i++)
                    _mm_prefetch(
                        (const char *)(B + (size_t)(j0 + p + h + i) * ldb + k0 + kk + PF_AHEAD),
                        _MM_HINT_T0);
                for (int i = 0; i < 16; i++)
                    r[i] = h + i < cols ? _mm512_maskz_loadu_ps(
                                              km, B + (size_t)(j0 + p + h + i) * ldb + k0 + kk)
                                        : _mm512_setzero_ps();
                mv_transpose16(r);
                for (int k = 0; k < kn; k++) _mm512_store_ps(d + (size_t)(kk + k) * NR + h, r[k]);
            }
    }
}
#endif

int mv_gemm_packed_available(void)
{
#ifdef MV_HAVE_AVX512_PATH
    return mv_cpu_has(MV_CPU_BIT(MV_CPU_AVX512F));
#else
    return 0;
#endif
}

typedef void (*kernel_fn)(int, const float *, const float *, float *, int, int, int, float, float,
                          int, const float *, float);
typedef void (*pack_a_fn)(float *, int, const float *, int, int, int, int, int);
typedef void (*pack_b_fn)(float *, int, const float *, int, int, int, int, int);
struct packed_path {
    kernel_fn kern;
    pack_a_fn pack_a;
    pack_b_fn pack_b;
};

/* ---- the per-thread panels ---- */

/* This thread's MC x KC + 2 KC x NC floats (its op(A) block; one op(B) panel for a product on
 * this thread alone, two when it leads a team: see gemm_team), NULL when they cannot be had.
 * The second op(B) panel is touched only by team leaders. */
static float *thread_panels(void)
{
    return mv_thread_scratch(MV_SCRATCH_GEMM,
                             ((size_t)MC * KC + 2 * (size_t)KC * NC) * sizeof(float));
}

/* Where slice (j0, k0) of a weight packed by mv_gemm_pack_weight starts: the column panels
 * before it are NC wide and hold all K rows, the depth slices before it in its panel are KC
 * deep and as wide as the panel rounded up to NR. */
static size_t prepacked_offset(int N, int K, int j0, int k0)
{
    int n = MV_MIN(NC, N - j0);
    return (size_t)j0 * K + (size_t)k0 * ((n + NR - 1) / NR * NR);
}

/* bias (N), may be NULL: joins C on the first slice, scaled by bs (see tile_out). bp: op(B)
 * already packed (mv_gemm_pack_weight; B and ldb are then not read), or NULL. */
static int gemm_blocked(const struct packed_path *path, int ta, int tb, int M, int N, int K,
                        float alpha, const float *A, int lda, const float *B, int ldb,
                        const float *bp, float beta, float *C, int ldc, const float *bias, float bs,
                        int act)
{
    // C (M, N); op(A) (M, K); op(B) (K, N)
    if (M <= 0 || N <= 0) return 0;
    float *pa = thread_panels();
    if (!pa) return -1;
    float *pb = pa + (size_t)MC * KC;
    if (K <= 0) { /* no products: C = beta * C as the tiles would leave it */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                float *o = C + (size_t)i * ldc + j;
                *o = tile_out(0.0f, beta == 0.0f ? 0.0f : *o, alpha, beta, 1, bias != NULL,
                              bias ? bias_term(bias, bs, j) : 0.0f);
            }
        if (act >= 0) mv_act_rows(C, ldc, M, N, (enum medvlm_act)act);
        return 0;
    }
    for (int j0 = 0; j0 < N; j0 += NC) {
        int n = MV_MIN(NC, N - j0);
        for (int k0 = 0; k0 < K; k0 += KC) {
            int kc = MV_MIN(KC, K - k0), first = k0 == 0;
            const float *pbs = pb;
            if (bp)
                pbs = bp + prepacked_offset(N, K, j0, k0);
            else
                path->pack_b(pb, tb, B, ldb, k0, kc, j0, n);
            for (int i0 = 0; i0 < M; i0 += MC) {
                int m = MV_MIN(MC, M - i0);
                path->pack_a(pa, ta, A, lda, i0, m, k0, kc);
                for (int jr = 0; jr < n; jr += NR)
                    for (int ir = 0; ir < m; ir += MR) {
                        float *Ct = C + (size_t)(i0 + ir) * ldc + j0 + jr;
                        path->kern(kc, pa + (size_t)ir * kc, pbs + (size_t)jr * kc, Ct, ldc,
                                   MV_MIN(MR, m - ir), MV_MIN(NR, n - jr), alpha, beta, first,
                                   first && bias ? bias + j0 + jr : NULL, bs);
                        if (act >= 0 && k0 + kc == K) /* the tile is final: its activation */
                            mv_act_rows(Ct, ldc, MV_MIN(MR, m - ir), MV_MIN(NR, n - jr),
                                        (enum medvlm_act)act);
                    }
            }
        }
    }
    return 0;
}

/* ---- a team of threads on one product ----
 *
 * The product is a list of items in a fixed order: for each KC x NC panel of op(B) ("slice"
 * s, column panels outer, depth inner), its row blocks u of `unit` rows. The threads take
 * items from one shared counter, first come first served, with no barrier between slices:
 * - a slice's panel is packed once into one of two shared buffers (s % 2), its micro-panels
 *   claimed one by one by whichever threads reach the slice first; a thread then waits until
 *   the last micro-panel is in (a short wait: packing, not a slower thread's products);
 * - a buffer is packed again for slice s + 2 only when every item of slice s is done;
 * - item (s, u) of a deeper slice waits for item (s - 1, u), which adds to the same elements
 *   of C before it (taken `units` items earlier, it is nearly always done).
 * So a thread that another process slows down takes fewer items and the others do not wait
 * for it at every slice, and each element of C is computed by the sequence gemm_blocked runs:
 * the bits do not depend on T or on who computed what. */
#define TEAM_MAX_SLICES 128
#define TEAM_MAX_ITEMS  4096
#define TEAM_PACK_GROUP 4 /* micro-panels of op(B) a thread packs at a time */
#ifndef TEAM_COLS_MAX_M   /* up to this many rows a team splits prepacked weights by columns */
#define TEAM_COLS_MAX_M 64
#endif
#ifndef TEAM_COLS /* micro-panels per item then */
#define TEAM_COLS 8
#endif
#ifndef TEAM_BLOCKS /* row blocks per thread and slice, overridable for tuning experiments */
#define TEAM_BLOCKS 8
#endif

struct team {
    const struct packed_path *path;
    int ta, tb, M, N, K, lda, ldb, ldc;
    float alpha, beta, bs;
    const float *A, *B, *bias;
    const float *bp; /* op(B) packed at load (mv_gemm_pack_weight), or NULL: packed here */
    float *C, *bufs; /* bufs: two KC x NC panels */
    int unit, units, slices, kslices;
    int cols; /* > 0: items are groups of this many micro-panels of a slice, over all rows */
    int act;  /* -1, or the activation applied to each tile after its last slice */
    int next; /* the next item */
    int pack_next[TEAM_MAX_SLICES], pack_done[TEAM_MAX_SLICES], items_done[TEAM_MAX_SLICES];
    int item_done[TEAM_MAX_ITEMS]; /* slice-major */
};

static void team_wait(const int *v, int target)
{
    for (int spins = 0; __atomic_load_n(v, __ATOMIC_ACQUIRE) < target; spins++) {
#ifdef MV_HAVE_AVX512_PATH
        _mm_pause();
#endif
        if (spins > 2000) sched_yield(); /* the thread we wait for may need this core */
    }
}

/* Slice s's panel in its buffer: pack unclaimed micro-panels, then wait for the rest. */
static const float *team_panel(struct team *tm, int s, int *j0, int *n, int *k0, int *kc)
{
    *j0 = s / tm->kslices * NC;
    *k0 = s % tm->kslices * KC;
    *n = MV_MIN(NC, tm->N - *j0);
    *kc = MV_MIN(KC, tm->K - *k0);
    if (tm->bp) return tm->bp + prepacked_offset(tm->N, tm->K, *j0, *k0);
    /* claimed in groups of TEAM_PACK_GROUP micro-panels: longer runs of each source row */
    int groups = (*n + NR * TEAM_PACK_GROUP - 1) / (NR * TEAM_PACK_GROUP);
    float *pb = tm->bufs + (size_t)(s & 1) * KC * NC;
    if (__atomic_load_n(&tm->pack_done[s], __ATOMIC_ACQUIRE) == groups) return pb;
    if (s >= 2) team_wait(&tm->items_done[s - 2], tm->units); /* the buffer is free */
    for (;;) {
        int g = __atomic_fetch_add(&tm->pack_next[s], 1, __ATOMIC_RELAXED);
        if (g >= groups) break;
        int p = g * TEAM_PACK_GROUP;
        tm->path->pack_b(pb + (size_t)p * NR * *kc, tm->tb, tm->B, tm->ldb, *k0, *kc, *j0 + p * NR,
                         MV_MIN(NR * TEAM_PACK_GROUP, *n - p * NR));
        __atomic_fetch_add(&tm->pack_done[s], 1, __ATOMIC_RELEASE);
    }
    team_wait(&tm->pack_done[s], groups);
    return pb;
}

/* One tile of C at (i, j), m x n, from packed micro-panels a and b of the slice at depth k0:
 * the kernel, then the activation when this was the tile's last slice. */
static void team_tile(const struct team *tm, const float *a, const float *b, int i, int j, int m,
                      int n, int k0, int kc)
{
    float *Ct = tm->C + (size_t)i * tm->ldc + j;
    int first = k0 == 0;
    tm->path->kern(kc, a, b, Ct, tm->ldc, m, n, tm->alpha, tm->beta, first,
                   first && tm->bias ? tm->bias + j : NULL, tm->bs);
    if (tm->act >= 0 && k0 + kc == tm->K) mv_act_rows(Ct, tm->ldc, m, n, (enum medvlm_act)tm->act);
}

static void team_run(struct team *tm, float *pa)
{
    const struct packed_path *path = tm->path;
    for (;;) {
        int g = __atomic_fetch_add(&tm->next, 1, __ATOMIC_RELAXED);
        if (g >= tm->slices * tm->units) break;
        int s = g / tm->units, u = g % tm->units, j0, n, k0, kc;
        if (s % tm->kslices) team_wait(&tm->item_done[g - tm->units], 1);
        const float *pb = team_panel(tm, s, &j0, &n, &k0, &kc);
        if (tm->cols) { /* few rows: a group of micro-panels, each read once for every row */
            int jlo = u * tm->cols * NR, jhi = MV_MIN(n, jlo + tm->cols * NR);
            for (int i0 = 0; i0 < tm->M && jlo < jhi; i0 += MC) {
                int m = MV_MIN(MC, tm->M - i0);
                path->pack_a(pa, tm->ta, tm->A, tm->lda, i0, m, k0, kc);
                for (int jr = jlo; jr < jhi; jr += NR)
                    for (int ir = 0; ir < m; ir += MR)
                        team_tile(tm, pa + (size_t)ir * kc, pb + (size_t)jr * kc, i0 + ir, j0 + jr,
                                  MV_MIN(MR, m - ir), MV_MIN(NR, jhi - jr), k0, kc);
            }
            __atomic_store_n(&tm->item_done[g], 1, __ATOMIC_RELEASE);
            __atomic_fetch_add(&tm->items_done[s], 1, __ATOMIC_RELEASE);
            continue;
        }
        for (int i0 = u * tm->unit; i0 < MV_MIN(tm->M, (u + 1) * tm->unit); i0 += MC) {
            int m = MV_MIN(MC, MV_MIN(tm->M, (u + 1) * tm->unit) - i0);
            path->pack_a(pa, tm->ta, tm->A, tm->lda, i0, m, k0, kc);
            for (int jr = 0; jr < n; jr += NR)
                for (int ir = 0; ir < m; ir += MR)
                    team_tile(tm, pa + (size_t)ir * kc, pb + (size_t)jr * kc, i0 + ir, j0 + jr,
                              MV_MIN(MR, m - ir), MV_MIN(NR, n - jr), k0, kc);
        }
        __atomic_store_n(&tm->item_done[g], 1, __ATOMIC_RELEASE);
        __atomic_fetch_add(&tm->items_done[s], 1, __ATOMIC_RELEASE);
    }
}

static int gemm_team(const struct packed_path *path, int T, int ta, int tb, int M, int N, int K,
                     float alpha, const float *A, int lda, const float *B, int ldb, const float *bp,
                     float beta, float *C, int ldc, const float *bias, float bs, int act)
{
    if (M <= 0 || N <= 0) return 0;
    int kslices = K > 0 ? (K + KC - 1) / KC : 0, slices = (N + NC - 1) / NC * kslices;
    /* about TEAM_BLOCKS row blocks per thread, a whole number of tiles, at most MC rows unless the
     * items would not fit the table */
    int unit = (M + T * TEAM_BLOCKS - 1) / (T * TEAM_BLOCKS);
    unit = MV_MAX(MR, MV_MIN(MC, (unit + MR - 1) / MR * MR));
    int per_slice = slices ? TEAM_MAX_ITEMS / slices : 0;
    if (per_slice > 0 && (M + unit - 1) / unit > per_slice)
        unit = ((M + per_slice - 1) / per_slice + MR - 1) / MR * MR;
    int units = (M + unit - 1) / unit, cols = 0;
    if (bp && M <= TEAM_COLS_MAX_M) { /* few rows, weights packed: split the columns */
        cols = TEAM_COLS;
        units = (MV_MIN(N, NC) + NR * cols - 1) / (NR * cols);
        if ((size_t)units * slices > TEAM_MAX_ITEMS) cols = 0, units = (M + unit - 1) / unit;
    }
    if (T <= 1 || K <= 0 || slices > TEAM_MAX_SLICES || units * slices < 2)
        return gemm_blocked(path, ta, tb, M, N, K, alpha, A, lda, B, ldb, bp, beta, C, ldc, bias,
                            bs, act);
    struct team tm = {.path = path,
                      .ta = ta,
                      .tb = tb,
                      .M = M,
                      .N = N,
                      .K = K,
                      .lda = lda,
                      .ldb = ldb,
                      .ldc = ldc,
                      .alpha = alpha,
                      .beta = beta,
                      .A = A,
                      .B = B,
                      .C = C,
                      .bias = bias,
                      .bp = bp,
                      .bs = bs,
                      .unit = unit,
                      .units = units,
                      .cols = cols,
                      .act = act,
                      .slices = slices,
                      .kslices = kslices};
    int ok = 1;
#pragma omp parallel num_threads(T)
    {
        float *pa = thread_panels();
        if (!pa) __atomic_store_n(&ok, 0, __ATOMIC_RELAXED);
        if (omp_get_thread_num() == 0 && pa) tm.bufs = pa + (size_t)MC * KC;
#pragma omp barrier
        if (__atomic_load_n(&ok, __ATOMIC_RELAXED)) team_run(&tm, pa);
    }
    return ok ? 0 : -1;
}

static const struct packed_path path_portable = {kernel_portable, pack_a, pack_b};
#ifdef MV_HAVE_AVX512_PATH
static const struct packed_path path_avx512 = {kernel_avx512, pack_a_avx512, pack_b_avx512};
#endif

static const struct packed_path *path_for(int portable)
{
#ifdef MV_HAVE_AVX512_PATH
    if (!portable && mv_cpu_has(MV_CPU_BIT(MV_CPU_AVX512F))) return &path_avx512;
#endif
    (void)portable;
    return &path_portable;
}

int mv_gemm_packed(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc)
{
    return gemm_blocked(path_for(0), ta, tb, M, N, K, alpha, A, lda, B, ldb, NULL, beta, C, ldc,
                        NULL, 1.0f, -1);
}

int mv_gemm_packed_portable(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                            int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    return gemm_blocked(path_for(1), ta, tb, M, N, K, alpha, A, lda, B, ldb, NULL, beta, C, ldc,
                        NULL, 1.0f, -1);
}

int mv_gemm_packed_team(int portable, int T, int ta, int tb, int M, int N, int K, float alpha,
                        const float *A, int lda, const float *B, int ldb, float beta, float *C,
                        int ldc, const float *bias, float bs)
{
    return gemm_team(path_for(portable), T, ta, tb, M, N, K, alpha, A, lda, B, ldb, NULL, beta, C,
                     ldc, bias, bs, -1);
}

size_t mv_gemm_packed_weight_floats(int N, int K)
{
    if (N <= 0 || K <= 0) return 0;
    return (size_t)((N + NR - 1) / NR * NR) * (size_t)K;
}

void mv_gemm_pack_weight(float *dst, const float *W, int N, int K)
{
    // dst (mv_gemm_packed_weight_floats(N, K)), W (N, K)
    const struct packed_path *path = path_for(0);
    for (int j0 = 0; j0 < N; j0 += NC)
        for (int k0 = 0; k0 < K; k0 += KC)
            path->pack_b(dst + prepacked_offset(N, K, j0, k0), 1, W, K, k0, MV_MIN(KC, K - k0), j0,
                         MV_MIN(NC, N - j0));
}

int mv_gemm_packed_team_w(int portable, int T, int M, int N, int K, float alpha, const float *A,
                          int lda, const float *Wp, float beta, float *C, int ldc,
                          const float *bias, float bs, int act)
{
    return gemm_team(path_for(portable), T, 0, 1, M, N, K, alpha, A, lda, NULL, 0, Wp, beta, C, ldc,
                     bias, bs, act);
}

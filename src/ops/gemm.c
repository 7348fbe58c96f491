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
#include <stdio.h>
#include <string.h>
#include <strings.h>

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
/* From this many rows a weight packed at load is read (gemm_packed.c splits products of up to
 * 64 rows by columns, each micro-panel read once for all rows): as fast as the skinny kernel at
 * one image's 50 rows, and W's own pages are then never read again. */
#define MV_PREPACKED_MIN_ROWS 32

static int gemm_mode = 1; /* 1: our split (deterministic); 0: OpenBLAS's own threading */
static int skinny_max_m = MV_SKINNY_MAX_M;
static int backend_set = MV_GEMM_AUTO;
static int use_packed = -1; /* decided on first use from backend_set */

/* OpenBLAS cores with AVX2 or AVX-512 sgemm kernels: where it runs one, it is used. */
static int openblas_core_is_fast(void)
{
    static const char *fast[] = {"haswell", "zen", "skylakex", "cooperlake", "sapphirerapids"};
    const char *core = openblas_get_corename();
    for (size_t i = 0; core && i < MV_ARRAY_LEN(fast); i++)
        if (strcasecmp(core, fast[i]) == 0) return 1;
    return 0;
}

static int packed_on(void)
{
    int u = __atomic_load_n(&use_packed, __ATOMIC_RELAXED);
    if (u < 0) { /* idempotent: concurrent first calls agree */
        u = backend_set == MV_GEMM_PACKED ||
            (backend_set == MV_GEMM_AUTO && mv_gemm_packed_available() && !openblas_core_is_fast());
        if (backend_set == MV_GEMM_PACKED && !mv_gemm_packed_available()) u = 0;
        __atomic_store_n(&use_packed, u, __ATOMIC_RELAXED);
    }
    return u;
}

void mv_gemm_set_backend(enum mv_gemm_backend b)
{
    backend_set = b;
    __atomic_store_n(&use_packed, -1, __ATOMIC_RELAXED);
}

const char *mv_gemm_backend_name(void)
{
    static char name[64];
    if (packed_on()) return "packed avx512";
    snprintf(name, sizeof name, "openblas %s", openblas_get_corename());
    return name;
}

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
    /* the packed kernel, or OpenBLAS when its panels cannot be allocated */
    if (packed_on() && mv_gemm_packed(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) == 0)
        return;
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

/* Where mv_gemm runs a product of M rows (outside a parallel region, each route below the
 * ones before it): OpenBLAS's own threading (bench --blas-threads), the calling thread (inside
 * one of our regions), the skinny kernel (few rows times W^T), the packed team, or OpenBLAS
 * split by medvlm. */
enum route { ROUTE_BLAS_THREADS, ROUTE_CALLER, ROUTE_SKINNY, ROUTE_TEAM, ROUTE_SPLIT };

static enum route route_of(int ta, int tb, int M)
{
    if (!gemm_mode) return ROUTE_BLAS_THREADS;
    if (omp_in_parallel()) return ROUTE_CALLER;
    if (!ta && tb && M <= skinny_max_m && mv_gemm_skinny_available()) return ROUTE_SKINNY;
    return packed_on() ? ROUTE_TEAM : ROUTE_SPLIT;
}

/* Threads for a product: one when it is too small to be worth a second. */
static int team_size(int M, int N, int K)
{
    return (double)M * N * K < 2e6 ? 1 : omp_get_max_threads();
}

/* mv_gemm with the route chosen for a product of rr rows (rr = M: mv_gemm itself). */
static void gemm_routed(int rr, int ta, int tb, int M, int N, int K, float alpha, const float *A,
                        int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return;
    switch (route_of(ta, tb, rr)) {
    case ROUTE_BLAS_THREADS: /* OpenBLAS's own threading (bench --blas-threads) */
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    case ROUTE_CALLER: /* inside one of our parallel regions: on the calling thread */
        gemm_call(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    case ROUTE_SKINNY: /* few rows (batch-1 inference): a kernel that does not pack the weights */
        mv_gemm_skinny(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    case ROUTE_TEAM: /* one team sharing the packed panels of op(B) */
        if (mv_gemm_packed_team(0, team_size(M, N, K), ta, tb, M, N, K, alpha, A, lda, B, ldb, beta,
                                C, ldc, NULL, 1.0f) == 0)
            return;
        break; /* no panels: OpenBLAS below */
    case ROUTE_SPLIT:
        break;
    }
    int T = omp_get_max_threads();
    int by_cols = (double)M * K <= (double)N * K; /* re-pack the smaller operand */
    int len = by_cols ? N : M;
    int parts = MV_MIN(team_size(M, N, K), (len + MV_GEMM_ALIGN - 1) / MV_GEMM_ALIGN);
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

void mv_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc)
{
    gemm_routed(M, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
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
#pragma omp parallel for schedule(dynamic, 32) if ((size_t)R * O > 262144)
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

/* The linear layer on the packed team with the bias folded into the product's first pass (no
 * separate pass over out for it), when mv_gemm would run the packed team for this product;
 * 1 when done. The same bits as the bias pass followed by mv_gemm. */
static int linear_packed(float *out, const float *inp, const float *w, const float *b, float alpha,
                         float beta, float bs, int R, int I, int O, int rr)
{
    if (!b || R <= 0 || O <= 0 || route_of(0, 1, rr) != ROUTE_TEAM) return 0;
    return mv_gemm_packed_team(0, team_size(R, O, I), 0, 1, R, O, I, alpha, inp, I, w, I, beta, out,
                               O, b, bs) == 0;
}

int mv_gemm_packed_on(void)
{
    return gemm_mode && packed_on();
}

/* The same from a weight packed at load: every row count, no packing of W. When the panels
 * cannot be had, the product runs from w if there is one, else it is an error of the caller's
 * (the model packs only when mv_gemm_packed_on). */
static int linear_prepacked(float *out, const float *inp, const float *w, const float *wp,
                            const float *b, float alpha, float beta, float bs, int R, int I, int O,
                            int act, int rr)
{
    if (!wp || R <= 0 || O <= 0) return 0;
    /* under MV_PREPACKED_MIN_ROWS rows (a prompt's tokens) the skinny kernel on W is the faster */
    if (w && rr < MV_PREPACKED_MIN_ROWS && route_of(0, 1, rr) == ROUTE_SKINNY) return 0;
    int T = omp_in_parallel() ? 1 : team_size(R, O, I);
    return mv_gemm_packed_team_w(0, T, R, O, I, alpha, inp, I, wp, beta, out, O, b, bs, act) == 0;
}

/* The linear layers below with the kernel chosen for a product of rr rows (rr = R: as
 * called; more: a few rows of a larger product, with the bits they get in it). */
static void linear_forward_rows(float *out, const float *inp, const float *w, const float *wp,
                                const float *b, float alpha, int R, int I, int O, int rr)
{
    // out (R, O), inp (R, I), w (O, I), wp packed w, b (O)
    if (linear_prepacked(out, inp, w, wp, b, alpha, 0.0f, alpha, R, I, O, -1, rr)) return;
    if (linear_packed(out, inp, w, b, alpha, 0.0f, alpha, R, I, O, rr)) return;
    fill_bias(out, b, alpha, R, O);
    gemm_routed(rr, 0, 1, R, O, I, alpha, inp, I, w, I, 1.0f, out, O);
}

static int linear_forward_act_rows(float *out, const float *inp, const float *w, const float *wp,
                                   const float *b, float alpha, int R, int I, int O,
                                   enum medvlm_act act, int rr)
{
    if (linear_prepacked(out, inp, w, wp, b, alpha, 0.0f, alpha, R, I, O, (int)act, rr)) return 1;
    linear_forward_rows(out, inp, w, wp, b, alpha, R, I, O, rr);
    return 0;
}

static void linear_residual_rows(float *x, const float *inp, const float *w, const float *wp,
                                 const float *b, int R, int I, int O, int rr)
{
    // x (R, O) in place, inp (R, I), w (O, I), wp packed w, b (O)
    if (linear_prepacked(x, inp, w, wp, b, 1.0f, 1.0f, 1.0f, R, I, O, -1, rr)) return;
    if (linear_packed(x, inp, w, b, 1.0f, 1.0f, 1.0f, R, I, O, rr)) return;
    if (b) {
#pragma omp parallel for schedule(dynamic, 32) if ((size_t)R * O > 262144)
        for (int r = 0; r < R; r++) {
            float *o = x + (size_t)r * O;
            for (int j = 0; j < O; j++) o[j] += b[j];
        }
    }
    gemm_routed(rr, 0, 1, R, O, I, 1.0f, inp, I, w, I, 1.0f, x, O);
}

void mv_linear_forward(float *out, const float *inp, const float *w, const float *wp,
                       const float *b, float alpha, int R, int I, int O)
{
    linear_forward_rows(out, inp, w, wp, b, alpha, R, I, O, R);
}

int mv_linear_forward_act(float *out, const float *inp, const float *w, const float *wp,
                          const float *b, float alpha, int R, int I, int O, enum medvlm_act act)
{
    return linear_forward_act_rows(out, inp, w, wp, b, alpha, R, I, O, act, R);
}

void mv_linear_residual_forward(float *x, const float *inp, const float *w, const float *wp,
                                const float *b, int R, int I, int O)
{
    linear_residual_rows(x, inp, w, wp, b, R, I, O, R);
}

void mv_linear_forward_as(float *out, const float *inp, const float *w, const float *wp,
                          const float *b, float alpha, int R, int I, int O, int as_rows)
{
    linear_forward_rows(out, inp, w, wp, b, alpha, R, I, O, MV_MAX(R, as_rows));
}

int mv_linear_forward_act_as(float *out, const float *inp, const float *w, const float *wp,
                             const float *b, float alpha, int R, int I, int O, enum medvlm_act act,
                             int as_rows)
{
    return linear_forward_act_rows(out, inp, w, wp, b, alpha, R, I, O, act, MV_MAX(R, as_rows));
}

void mv_linear_residual_forward_as(float *x, const float *inp, const float *w, const float *wp,
                                   const float *b, int R, int I, int O, int as_rows)
{
    linear_residual_rows(x, inp, w, wp, b, R, I, O, MV_MAX(R, as_rows));
}

void mv_linear_forward_bf16(float *out, const float *inp, const struct mv_bf16_weight *wb,
                            const float *w, const float *b, float alpha, int R, int I, int O)
{
    // out (R, O), inp (R, I), wb bf16 (O, I), w (O, I), b (O)
    if (R <= 0 || O <= 0) return;
    fill_bias(out, b, alpha, R, O);
    if (mv_gemm_bf16(team_size(R, O, I), R, inp, I, wb, alpha, 1.0f, out, O) == 0) return;
    mv_gemm(0, 1, R, O, I, alpha, inp, I, w, I, 1.0f, out, O);
}

void mv_linear_residual_forward_bf16(float *x, const float *inp, const struct mv_bf16_weight *wb,
                                     const float *w, const float *b, int R, int I, int O)
{
    // x (R, O) in place, inp (R, I), wb bf16 (O, I), w (O, I), b (O)
    if (R <= 0 || O <= 0) return;
    if (b) {
#pragma omp parallel for schedule(dynamic, 32) if ((size_t)R * O > 262144)
        for (int r = 0; r < R; r++) {
            float *o = x + (size_t)r * O;
            for (int j = 0; j < O; j++) o[j] += b[j];
        }
    }
    if (mv_gemm_bf16(team_size(R, O, I), R, inp, I, wb, 1.0f, 1.0f, x, O) == 0) return;
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

/* db (O) += alpha * sum_r dout[r] in double, columns in blocks of MV_DB_BLOCK: every column is
 * summed over r = 0, 1, ..., R-1 in that order by one thread, so the bits do not depend on how
 * the blocks fall on threads. The block's accumulators live on the stack (no allocation) and
 * a row of the block is contiguous in dout. */
#define MV_DB_BLOCK 64
/* The AVX-512 and AVX2 clones of the column sums (unoptimised builds, the sanitizer pass, keep
 * one plain copy); vectorised across the columns, each column's sum the same. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && defined(__OPTIMIZE__)
#define MV_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MV_CLONES
#endif

MV_CLONES static void bias_block(double *acc, const float *dout, int R, int O, int n)
{
    for (int r = 0; r < R; r++) {
        const float *d = dout + (size_t)r * O;
#pragma omp simd
        for (int j = 0; j < n; j++) acc[j] += d[j];
    }
}

static void bias_grad(float *db, const float *dout, float alpha, int R, int O)
{
    // db (O), dout (R, O)
    int blocks = (O + MV_DB_BLOCK - 1) / MV_DB_BLOCK;
#pragma omp parallel for schedule(dynamic, 1) if ((size_t)R * O > 262144 && blocks > 1)
    for (int bl = 0; bl < blocks; bl++) {
        int lo = bl * MV_DB_BLOCK, n = MV_MIN(O - lo, MV_DB_BLOCK);
        double acc[MV_DB_BLOCK] = {0};
        bias_block(acc, dout + lo, R, O, n);
        for (int j = 0; j < n; j++) db[lo + j] += (float)(alpha * acc[j]);
    }
}

/* In the forward pass out = alpha * (inp w^T + 1 b^T), so with dout = dL/dout:
 *   dL/dinp = alpha * dout w        (R, O) x (O, I)
 *   dL/dw   = alpha * dout^T inp    (O, R) x (R, I)
 *   dL/db   = alpha * 1^T dout      the column sums of dout.
 * The GEMMs accumulate through beta = 1; the reduction over rows (K of the dw GEMM, the db
 * sum) is never split across threads, so neither depends on the thread count. */
void mv_linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, float alpha, int R, int I, int O)
{
    // dinp (R, I), dw (O, I), db (O), dout (R, O), inp (R, I), w (O, I)
    if (dinp) mv_gemm(0, 0, R, I, O, alpha, dout, O, w, I, 1.0f, dinp, I);
    if (dw) mv_gemm(1, 0, O, I, R, alpha, dout, O, inp, I, 1.0f, dw, I);
    if (db) bias_grad(db, dout, alpha, R, O);
}

void mv_linear_backward_set(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                            const float *w, float alpha, int R, int I, int O)
{
    // dinp (R, I) written, dw (O, I), db (O), dout (R, O), inp (R, I), w (O, I)
    if (dinp) mv_gemm(0, 0, R, I, O, alpha, dout, O, w, I, 0.0f, dinp, I);
    mv_linear_backward(NULL, dw, db, dout, inp, w, alpha, R, I, O);
}

void mv_linear_input_grad_bf16(float *dinp, int set, const float *dout,
                               const struct mv_bf16_weight *wt, const float *w, float alpha, int R,
                               int I, int O)
{
    // dinp (R, I), dout (R, O), wt bf16 (I, O) = w^T, w (O, I)
    if (R <= 0 || I <= 0) return;
    const float beta = set ? 0.0f : 1.0f;
    if (mv_gemm_bf16(team_size(R, I, O), R, dout, O, wt, alpha, beta, dinp, I) == 0) return;
    mv_gemm(0, 0, R, I, O, alpha, dout, O, w, I, beta, dinp, I);
}

void mv_linear_backward_naive(float *dinp, float *dw, float *db, const float *dout,
                              const float *inp, const float *w, float alpha, int R, int I, int O)
{
    if (dinp)
        for (int r = 0; r < R; r++)
            for (int i = 0; i < I; i++) {
                double acc = 0;
                for (int o = 0; o < O; o++)
                    acc += (double)dout[(size_t)r * O + o] * w[(size_t)o * I + i];
                dinp[(size_t)r * I + i] += (float)(alpha * acc);
            }
    if (dw)
        for (int o = 0; o < O; o++)
            for (int i = 0; i < I; i++) {
                double acc = 0;
                for (int r = 0; r < R; r++)
                    acc += (double)dout[(size_t)r * O + o] * inp[(size_t)r * I + i];
                dw[(size_t)o * I + i] += (float)(alpha * acc);
            }
    if (db)
        for (int o = 0; o < O; o++) {
            double acc = 0;
            for (int r = 0; r < R; r++) acc += dout[(size_t)r * O + o];
            db[o] += (float)(alpha * acc);
        }
}

/* LoRA as two thin GEMMs through the rank RK: u = inp A^T first, then out += alpha * u B^T,
 * never the (O, I) product B A (RK << I, O: two thin GEMMs cost (I + O) RK per row). */
void mv_lora_forward(float *out, float *u, const float *inp, const float *A, const float *B,
                     float alpha, int R, int I, int O, int RK)
{
    // out (R, O) accumulated, u (R, RK), inp (R, I), A (RK, I), B (O, RK)
    mv_gemm(0, 1, R, RK, I, 1.0f, inp, I, A, I, 0.0f, u, RK);
    mv_gemm(0, 1, R, O, RK, alpha, u, RK, B, RK, 1.0f, out, O);
}

/* In the forward pass u = inp A^T and out += alpha * u B^T, so:
 *   dL/dB   = alpha * dout^T u      (O, R) x (R, RK)
 *   dL/du   = alpha * dout B        (R, O) x (O, RK), written to du
 *   dL/dA   = du^T inp              (RK, R) x (R, I)
 *   dL/dinp = du A                  (R, RK) x (RK, I). */
void mv_lora_backward(float *dinp, float *dA, float *dB, float *du, const float *dout,
                      const float *u, const float *inp, const float *A, const float *B, float alpha,
                      int R, int I, int O, int RK)
{
    // dinp (R, I), dA (RK, I), dB (O, RK), du (R, RK), dout (R, O), u (R, RK), inp (R, I)
    if (dB) mv_gemm(1, 0, O, RK, R, alpha, dout, O, u, RK, 1.0f, dB, RK);
    if (!dA && !dinp) return;
    mv_gemm(0, 0, R, RK, O, alpha, dout, O, B, RK, 0.0f, du, RK);
    if (dA) mv_gemm(1, 0, RK, I, R, 1.0f, du, RK, inp, I, 1.0f, dA, I);
    if (dinp) mv_gemm(0, 0, R, I, RK, 1.0f, du, RK, A, I, 1.0f, dinp, I);
}

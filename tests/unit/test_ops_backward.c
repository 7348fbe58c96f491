/* test_ops_backward.c - every backward kernel of src/ops/ checked four ways:
 *   1. the optimised kernel against its naive sibling (double accumulators) on random small
 *      shapes, rows not multiples of the GEMM / SIMD blocks, masks on and off;
 *   2. against central finite differences of double-precision forwards written here, which
 *      share no code with the kernels: for L = sum(out * G) with a random G, dL/dx for every
 *      input, weight and bias (h = 1e-5 in double: truncation and rounding both ~1e-9);
 *   3. the contract: gradients accumulate (two calls give twice the gradient) and a NULL
 *      gradient pointer skips that gradient without changing the others;
 *   4. 1 thread gives the same bits as 2, at sizes that take the parallel paths;
 * plus mv_act_forward_copy against the in-place forward, bit for bit. */
#include "check.h"
#include "rand_seqs.h"
#include "ops/ops.h"

#include <float.h>
#include <omp.h>

static struct mv_rng rng;

/* Tolerances. Naive vs optimised: float rounding of sums of up to a few hundred terms.
 * Finite differences: the analytic gradient is float (rel ~1e-7 per element), the central
 * difference is exact to ~1e-9; a missing term or a wrong factor is off by >= 1e-2. */
#define NAIVE_ATOL 2e-5
#define NAIVE_RTOL 1e-5
#define FD_ATOL    1e-5
#define FD_RTOL    1e-5
#define FD_H       1e-5

static float *rand_buf(size_t n, float scale)
{
    float *p = mv_malloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++) p[i] = scale * mv_rng_normal(&rng);
    return p;
}

static float *zeros(size_t n)
{
    return mv_calloc(n + 1, sizeof(float));
}

static float *copy_buf(const float *a, size_t n)
{
    float *p = mv_malloc(n * sizeof(float) + 1);
    memcpy(p, a, n * sizeof(float));
    return p;
}

static double *to_double(const float *a, size_t n)
{
    double *p = mv_malloc(n * sizeof(double) + 1);
    for (size_t i = 0; i < n; i++) p[i] = a[i];
    return p;
}

static int rand_int(int lo, int hi)
{
    return lo + (int)mv_rng_below(&rng, (uint64_t)(hi - lo + 1));
}

static int same_bits(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof(float)) == 0;
}

/* twice (a gradient after two calls from zero) against 2 * once */
static void check_twice(const char *name, const float *twice, const float *once, size_t n)
{
    float *want = copy_buf(once, n);
    for (size_t i = 0; i < n; i++) want[i] *= 2.0f;
    check_close_f32(name, twice, want, n, 1e-6, 1e-6);
    mv_free(want);
}

/* g (n) = central differences of L(ctx) with respect to p[0 .. n). */
typedef double (*loss_fn)(void *ctx);
static void fd_grad(float *g, double *p, size_t n, loss_fn L, void *ctx)
{
    for (size_t i = 0; i < n; i++) {
        double p0 = p[i];
        p[i] = p0 + FD_H;
        double lp = L(ctx);
        p[i] = p0 - FD_H;
        double lm = L(ctx);
        p[i] = p0;
        g[i] = (float)((lp - lm) / (2.0 * FD_H));
    }
}

/* ------------------------------------------------------------------ linear */

struct lin_ctx {
    int R, I, O;
    double alpha, *x, *w, *b, *G;
};

/* L = sum(alpha * (x w^T + b) * G) */
static double lin_loss(void *c)
{
    struct lin_ctx *t = c;
    double L = 0;
    for (int r = 0; r < t->R; r++)
        for (int o = 0; o < t->O; o++) {
            double acc = t->b[o];
            for (int i = 0; i < t->I; i++) acc += t->x[r * t->I + i] * t->w[o * t->I + i];
            L += t->alpha * acc * t->G[r * t->O + o];
        }
    return L;
}

static void test_linear_naive(void)
{
    int shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {65, 17, 33}, {130, 70, 9}, {17, 200, 129}};
    for (int it = 0; it < 10; it++) {
        int R, I, O;
        if (it < 5)
            R = shapes[it][0], I = shapes[it][1], O = shapes[it][2];
        else
            R = rand_int(1, 150), I = rand_int(1, 150), O = rand_int(1, 150);
        float alpha = it % 2 ? 0.125f : 1.0f;
        float *x = rand_buf((size_t)R * I, 1.0f), *w = rand_buf((size_t)O * I, 0.3f);
        float *dy = rand_buf((size_t)R * O, 1.0f);
        /* start from nonzero gradients: the kernels accumulate */
        float *dx1 = rand_buf((size_t)R * I, 1.0f), *dw1 = rand_buf((size_t)O * I, 1.0f);
        float *db1 = rand_buf((size_t)O, 1.0f);
        float *dx2 = copy_buf(dx1, (size_t)R * I), *dw2 = copy_buf(dw1, (size_t)O * I);
        float *db2 = copy_buf(db1, (size_t)O);
        mv_linear_backward(dx1, dw1, db1, dy, x, w, alpha, R, I, O);
        mv_linear_backward_naive(dx2, dw2, db2, dy, x, w, alpha, R, I, O);
        char name[96];
        snprintf(name, sizeof name, "linear backward R=%d I=%d O=%d alpha=%g", R, I, O, alpha);
        check_close_f32(name, dx1, dx2, (size_t)R * I, NAIVE_ATOL, NAIVE_RTOL);
        check_close_f32("linear dw", dw1, dw2, (size_t)O * I, NAIVE_ATOL, NAIVE_RTOL);
        check_close_f32("linear db", db1, db2, (size_t)O, NAIVE_ATOL, NAIVE_RTOL);
        mv_free(x), mv_free(w), mv_free(dy), mv_free(dx1), mv_free(dw1), mv_free(db1);
        mv_free(dx2), mv_free(dw2), mv_free(db2);
    }
}

static void test_linear_fd(void)
{
    int shapes[][3] = {{5, 4, 3}, {9, 7, 6}, {1, 3, 8}};
    for (int it = 0; it < 3; it++) {
        int R = shapes[it][0], I = shapes[it][1], O = shapes[it][2];
        float alpha = it == 1 ? 0.125f : 1.0f;
        size_t nx = (size_t)R * I, nw = (size_t)O * I, ny = (size_t)R * O;
        float *x = rand_buf(nx, 1.0f), *w = rand_buf(nw, 1.0f), *b = rand_buf(O, 1.0f);
        float *G = rand_buf(ny, 1.0f);
        struct lin_ctx t = {
            R, I, O, alpha, to_double(x, nx), to_double(w, nw), to_double(b, O), to_double(G, ny)};
        float *fx = zeros(nx), *fw = zeros(nw), *fb = zeros(O);
        fd_grad(fx, t.x, nx, lin_loss, &t);
        fd_grad(fw, t.w, nw, lin_loss, &t);
        fd_grad(fb, t.b, O, lin_loss, &t);
        for (int naive = 0; naive < 2; naive++) {
            float *dx = zeros(nx), *dw = zeros(nw), *db = zeros(O);
            (naive ? mv_linear_backward_naive : mv_linear_backward)(dx, dw, db, G, x, w, alpha, R,
                                                                    I, O);
            char name[96];
            snprintf(name, sizeof name, "linear %s vs finite differences R=%d I=%d O=%d: dinp",
                     naive ? "naive" : "optimised", R, I, O);
            check_close_f32(name, dx, fx, nx, FD_ATOL, FD_RTOL);
            check_close_f32("linear fd dw", dw, fw, nw, FD_ATOL, FD_RTOL);
            check_close_f32("linear fd db", db, fb, O, FD_ATOL, FD_RTOL);
            mv_free(dx), mv_free(dw), mv_free(db);
        }
        mv_free(x), mv_free(w), mv_free(b), mv_free(G), mv_free(fx), mv_free(fw), mv_free(fb);
        mv_free(t.x), mv_free(t.w), mv_free(t.b), mv_free(t.G);
    }
}

static void test_linear_contract(void)
{
    int R = 37, I = 29, O = 70;
    size_t nx = (size_t)R * I, nw = (size_t)O * I;
    float *x = rand_buf(nx, 1.0f), *w = rand_buf(nw, 1.0f), *dy = rand_buf((size_t)R * O, 1.0f);
    float *dx = zeros(nx), *dw = zeros(nw), *db = zeros(O);
    mv_linear_backward(dx, dw, db, dy, x, w, 0.5f, R, I, O);
    float *dx2 = copy_buf(dx, nx), *dw2 = copy_buf(dw, nw), *db2 = copy_buf(db, O);
    mv_linear_backward(dx2, dw2, db2, dy, x, w, 0.5f, R, I, O);
    check_twice("linear dinp accumulates", dx2, dx, nx);
    check_twice("linear dw accumulates", dw2, dw, nw);
    check_twice("linear db accumulates", db2, db, O);
    /* each gradient alone equals the same gradient computed with the others */
    float *a = zeros(nx), *bw = zeros(nw), *c = zeros(O);
    mv_linear_backward(a, NULL, NULL, dy, x, w, 0.5f, R, I, O);
    mv_linear_backward(NULL, bw, NULL, dy, x, w, 0.5f, R, I, O);
    mv_linear_backward(NULL, NULL, c, dy, x, w, 0.5f, R, I, O);
    mv_linear_backward(NULL, NULL, NULL, dy, x, w, 0.5f, R, I, O);
    CHECK(same_bits(a, dx, nx) && same_bits(bw, dw, nw) && same_bits(c, db, O),
          "linear backward with NULL gradients differs");
    for (int naive = 0; naive < 2; naive++) {
        float *e = zeros(nx), *f = zeros(nw), *g = zeros(O);
        mv_linear_backward_naive(e, NULL, NULL, dy, x, w, 0.5f, R, I, O);
        mv_linear_backward_naive(NULL, f, NULL, dy, x, w, 0.5f, R, I, O);
        mv_linear_backward_naive(NULL, NULL, g, dy, x, w, 0.5f, R, I, O);
        mv_linear_backward_naive(NULL, NULL, NULL, dy, x, w, 0.5f, R, I, O);
        check_close_f32("linear naive NULL dinp", e, dx, nx, NAIVE_ATOL, NAIVE_RTOL);
        check_close_f32("linear naive NULL dw", f, dw, nw, NAIVE_ATOL, NAIVE_RTOL);
        check_close_f32("linear naive NULL db", g, db, O, NAIVE_ATOL, NAIVE_RTOL);
        mv_free(e), mv_free(f), mv_free(g);
    }
    mv_free(x), mv_free(w), mv_free(dy), mv_free(dx), mv_free(dw), mv_free(db), mv_free(dx2);
    mv_free(dw2), mv_free(db2), mv_free(a), mv_free(bw), mv_free(c);
}

static void test_linear_threads(void)
{
    /* sizes past every split threshold: dinp and dw GEMMs cut into 2 blocks, db in 5 column
     * blocks of one parallel loop (R * O > 262144) */
    int R = 1000, I = 150, O = 300;
    size_t nx = (size_t)R * I, nw = (size_t)O * I;
    float *x = rand_buf(nx, 1.0f), *w = rand_buf(nw, 1.0f), *dy = rand_buf((size_t)R * O, 1.0f);
    float *g[2][3];
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        g[t][0] = zeros(nx), g[t][1] = zeros(nw), g[t][2] = zeros(O);
        mv_linear_backward(g[t][0], g[t][1], g[t][2], dy, x, w, 0.5f, R, I, O);
    }
    omp_set_num_threads(2);
    CHECK(same_bits(g[0][0], g[1][0], nx), "linear dinp: 1 thread differs from 2");
    CHECK(same_bits(g[0][1], g[1][1], nw), "linear dw: 1 thread differs from 2");
    CHECK(same_bits(g[0][2], g[1][2], O), "linear db: 1 thread differs from 2");
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < 3; i++) mv_free(g[t][i]);
    mv_free(x), mv_free(w), mv_free(dy);
}

/* ------------------------------------------------------------------ LoRA */

struct lora_ctx {
    int R, I, O, RK;
    double alpha, *x, *A, *B, *G;
};

/* L = sum(alpha * (x A^T) B^T * G) */
/* The _set forms (written, not accumulated) give the bits of zeroing then accumulating, for
 * every activation and with dinp aliasing dout (activation); the linear form also from
 * garbage (NaN) in dinp, which it must not read. */
static void test_backward_set(void)
{
    int R = 300, I = 70, O = 90;
    size_t nx = (size_t)R * I, nw = (size_t)O * I, ny = (size_t)R * O;
    float *x = rand_buf(nx, 1.0f), *w = rand_buf(nw, 1.0f), *dy = rand_buf(ny, 1.0f);
    float *a = zeros(nx), *b = zeros(nx), *dwa = zeros(nw), *dwb = zeros(nw);
    float *dba = zeros(O), *dbb = zeros(O);
    for (size_t i = 0; i < nx; i++) b[i] = NAN;
    mv_linear_backward(a, dwa, dba, dy, x, w, 0.5f, R, I, O);
    mv_linear_backward_set(b, dwb, dbb, dy, x, w, 0.5f, R, I, O);
    CHECK(same_bits(a, b, nx), "linear_backward_set dinp differs from zero + accumulate");
    CHECK(same_bits(dwa, dwb, nw) && same_bits(dba, dbb, O),
          "linear_backward_set dw/db differ from linear_backward");
    for (int gelu = 0; gelu < 2; gelu++) {
        enum medvlm_act act = gelu ? MEDVLM_ACT_GELU : MEDVLM_ACT_QUICK_GELU;
        size_t n = 300001; /* past the parallel threshold, with an 8-lane tail */
        float *in = rand_buf(n, 3.0f), *d = rand_buf(n, 1.0f), *acc = zeros(n);
        float *set = rand_buf(n, 1.0f), *alias = copy_buf(d, n);
        d[5] = -0.0f; /* -0 times a gradient: +0 after zeroing, +0 written */
        alias[5] = -0.0f;
        mv_act_backward(acc, d, in, act, n);
        mv_act_backward_set(set, d, in, act, n);
        mv_act_backward_set(alias, alias, in, act, n);
        CHECK(same_bits(acc, set, n), "act_backward_set (%s) differs from zero + accumulate",
              gelu ? "gelu" : "quick_gelu");
        CHECK(same_bits(acc, alias, n), "act_backward_set (%s) in place differs",
              gelu ? "gelu" : "quick_gelu");
        mv_free(in), mv_free(d), mv_free(acc), mv_free(set), mv_free(alias);
    }
    mv_free(x), mv_free(w), mv_free(dy), mv_free(a), mv_free(b), mv_free(dwa), mv_free(dwb);
    mv_free(dba), mv_free(dbb);
}

static double lora_loss(void *c)
{
    struct lora_ctx *t = c;
    double L = 0;
    for (int r = 0; r < t->R; r++)
        for (int o = 0; o < t->O; o++) {
            double acc = 0;
            for (int k = 0; k < t->RK; k++) {
                double u = 0;
                for (int i = 0; i < t->I; i++) u += t->x[r * t->I + i] * t->A[k * t->I + i];
                acc += u * t->B[o * t->RK + k];
            }
            L += t->alpha * acc * t->G[r * t->O + o];
        }
    return L;
}

static void test_lora(void)
{
    /* against the same products through mv_gemm_naive (the argument order of every GEMM) */
    for (int it = 0; it < 6; it++) {
        int R = rand_int(1, 90), I = rand_int(1, 120), O = rand_int(1, 120), RK = rand_int(1, 16);
        float alpha = it % 2 ? 2.0f : 0.5f;
        size_t nx = (size_t)R * I, ny = (size_t)R * O, nu = (size_t)R * RK;
        float *x = rand_buf(nx, 1.0f), *A = rand_buf((size_t)RK * I, 0.3f);
        float *B = rand_buf((size_t)O * RK, 0.3f), *dy = rand_buf(ny, 1.0f);
        float *y1 = rand_buf(ny, 1.0f), *y2 = copy_buf(y1, ny), *u1 = zeros(nu), *u2 = zeros(nu);
        mv_lora_forward(y1, u1, x, A, B, alpha, R, I, O, RK);
        mv_gemm_naive(0, 1, R, RK, I, 1.0f, x, I, A, I, 0.0f, u2, RK);
        mv_gemm_naive(0, 1, R, O, RK, alpha, u2, RK, B, RK, 1.0f, y2, O);
        char name[96];
        snprintf(name, sizeof name, "lora forward R=%d I=%d O=%d RK=%d", R, I, O, RK);
        check_close_f32(name, y1, y2, ny, NAIVE_ATOL, NAIVE_RTOL);
        check_close_f32("lora u", u1, u2, nu, NAIVE_ATOL, NAIVE_RTOL);
        float *dx1 = rand_buf(nx, 1.0f), *dA1 = rand_buf((size_t)RK * I, 1.0f);
        float *dB1 = rand_buf((size_t)O * RK, 1.0f), *du1 = zeros(nu), *du2 = zeros(nu);
        float *dx2 = copy_buf(dx1, nx), *dA2 = copy_buf(dA1, (size_t)RK * I);
        float *dB2 = copy_buf(dB1, (size_t)O * RK);
        mv_lora_backward(dx1, dA1, dB1, du1, dy, u1, x, A, B, alpha, R, I, O, RK);
        mv_gemm_naive(1, 0, O, RK, R, alpha, dy, O, u1, RK, 1.0f, dB2, RK);
        mv_gemm_naive(0, 0, R, RK, O, alpha, dy, O, B, RK, 0.0f, du2, RK);
        mv_gemm_naive(1, 0, RK, I, R, 1.0f, du2, RK, x, I, 1.0f, dA2, I);
        mv_gemm_naive(0, 0, R, I, RK, 1.0f, du2, RK, A, I, 1.0f, dx2, I);
        check_close_f32("lora du", du1, du2, nu, NAIVE_ATOL, NAIVE_RTOL);
        check_close_f32("lora dinp", dx1, dx2, nx, NAIVE_ATOL, NAIVE_RTOL);
        check_close_f32("lora dA", dA1, dA2, (size_t)RK * I, NAIVE_ATOL, NAIVE_RTOL);
        check_close_f32("lora dB", dB1, dB2, (size_t)O * RK, NAIVE_ATOL, NAIVE_RTOL);
        mv_free(x), mv_free(A), mv_free(B), mv_free(dy), mv_free(y1), mv_free(y2), mv_free(u1);
        mv_free(u2), mv_free(dx1), mv_free(dA1), mv_free(dB1), mv_free(du1), mv_free(du2);
        mv_free(dx2), mv_free(dA2), mv_free(dB2);
    }

    /* finite differences with respect to inp, A and B */
    int shapes[][4] = {{5, 6, 4, 2}, {3, 4, 7, 3}};
    for (int it = 0; it < 2; it++) {
        int R = shapes[it][0], I = shapes[it][1], O = shapes[it][2], RK = shapes[it][3];
        float alpha = it ? 0.25f : 2.0f;
        size_t nx = (size_t)R * I, na = (size_t)RK * I, nb = (size_t)O * RK, ny = (size_t)R * O;
        float *x = rand_buf(nx, 1.0f), *A = rand_buf(na, 1.0f), *B = rand_buf(nb, 1.0f);
        float *G = rand_buf(ny, 1.0f);
        struct lora_ctx t = {R,
                             I,
                             O,
                             RK,
                             alpha,
                             to_double(x, nx),
                             to_double(A, na),
                             to_double(B, nb),
                             to_double(G, ny)};
        float *fx = zeros(nx), *fa = zeros(na), *fb = zeros(nb);
        fd_grad(fx, t.x, nx, lora_loss, &t);
        fd_grad(fa, t.A, na, lora_loss, &t);
        fd_grad(fb, t.B, nb, lora_loss, &t);
        float *y = zeros(ny), *u = zeros((size_t)R * RK), *du = zeros((size_t)R * RK);
        float *dx = zeros(nx), *dA = zeros(na), *dB = zeros(nb);
        mv_lora_forward(y, u, x, A, B, alpha, R, I, O, RK);
        mv_lora_backward(dx, dA, dB, du, G, u, x, A, B, alpha, R, I, O, RK);
        check_close_f32("lora vs finite differences: dinp", dx, fx, nx, FD_ATOL, FD_RTOL);
        check_close_f32("lora vs finite differences: dA", dA, fa, na, FD_ATOL, FD_RTOL);
        check_close_f32("lora vs finite differences: dB", dB, fb, nb, FD_ATOL, FD_RTOL);

        /* accumulation and NULL gradients (du NULL when only dB is wanted) */
        float *dx2 = copy_buf(dx, nx), *dA2 = copy_buf(dA, na), *dB2 = copy_buf(dB, nb);
        mv_lora_backward(dx2, dA2, dB2, du, G, u, x, A, B, alpha, R, I, O, RK);
        check_twice("lora dinp accumulates", dx2, dx, nx);
        check_twice("lora dA accumulates", dA2, dA, na);
        check_twice("lora dB accumulates", dB2, dB, nb);
        float *e = zeros(nx), *f = zeros(na), *g = zeros(nb);
        mv_lora_backward(e, NULL, NULL, du, G, u, x, A, B, alpha, R, I, O, RK);
        mv_lora_backward(NULL, f, NULL, du, G, u, x, A, B, alpha, R, I, O, RK);
        mv_lora_backward(NULL, NULL, g, NULL, G, u, x, A, B, alpha, R, I, O, RK);
        mv_lora_backward(NULL, NULL, NULL, NULL, G, u, x, A, B, alpha, R, I, O, RK);
        CHECK(same_bits(e, dx, nx) && same_bits(f, dA, na) && same_bits(g, dB, nb),
              "lora backward with NULL gradients differs");

        /* PEFT's initialisation B = 0: the output is the base output, bit for bit, and only
         * B gets a gradient */
        float *B0 = zeros(nb), *base = rand_buf(ny, 1.0f), *y0 = copy_buf(base, ny);
        mv_lora_forward(y0, u, x, A, B0, alpha, R, I, O, RK);
        CHECK(same_bits(y0, base, ny), "lora with B = 0 changes the output");
        float *dx0 = rand_buf(nx, 1.0f), *dA0 = zeros(na), *dB0 = zeros(nb), *want = zeros(na);
        float *dxw = copy_buf(dx0, nx);
        mv_lora_backward(dx0, dA0, dB0, du, G, u, x, A, B0, alpha, R, I, O, RK);
        int nonzero = 0; /* dA compared by value: a GEMM of zeros may give -0 */
        for (size_t i = 0; i < na; i++) nonzero |= dA0[i] != want[i];
        CHECK(same_bits(dx0, dxw, nx) && !nonzero, "lora with B = 0: dinp or dA changed");
        check_close_f32("lora with B = 0: dB", dB0, dB, nb, 1e-6, 1e-6);
        mv_free(B0), mv_free(base), mv_free(y0), mv_free(dx0), mv_free(dA0), mv_free(dB0);
        mv_free(want), mv_free(dxw);
        mv_free(dx2), mv_free(dA2), mv_free(dB2), mv_free(e), mv_free(f), mv_free(g);
        mv_free(x), mv_free(A), mv_free(B), mv_free(G), mv_free(fx), mv_free(fa), mv_free(fb);
        mv_free(y), mv_free(u), mv_free(du), mv_free(dx), mv_free(dA), mv_free(dB);
        mv_free(t.x), mv_free(t.A), mv_free(t.B), mv_free(t.G);
    }
}

/* ------------------------------------------------------------------ activations */

static double act_ref(double x, int gelu)
{
    return gelu ? 0.5 * x * (1.0 + erf(x / sqrt(2.0))) : x / (1.0 + exp(-1.702 * x));
}

static void test_act(void)
{
    const char *names[2] = {"quick_gelu", "gelu"};
    for (int a = 0; a < 2; a++) {
        enum medvlm_act act = (enum medvlm_act)a;
        /* optimised vs naive, with the extremes and a length off the 8-lane blocks */
        size_t n = 100003;
        float *x = rand_buf(n, 4.0f), *dy = rand_buf(n, 1.0f), *g1 = rand_buf(n, 1.0f);
        x[0] = 0.0f, x[1] = -30.0f, x[2] = 30.0f, x[3] = -100.0f, x[4] = 100.0f;
        float *g2 = copy_buf(g1, n);
        mv_act_backward(g1, dy, x, act, n);
        mv_act_backward_naive(g2, dy, x, act, n);
        char name[96];
        snprintf(name, sizeof name, "%s backward vs naive", names[a]);
        /* float against double: a few ulps of dy * act'(x), up to ~4 * 1.1 here, can remain
         * after the sum with g cancels (a wrong term or factor is off by ~1e-1) */
        check_close_f32(name, g1, g2, n, 4e-6, 1e-5);

        /* finite differences of the double forward above: act(x) * G is separable, so
         * dL/dx_i is the central difference of element i alone */
        size_t m = 203;
        float *xs = zeros(m), *G = rand_buf(m, 1.0f), *fd = zeros(m);
        for (size_t i = 0; i < m; i++) xs[i] = (float)(-6.0 + 12.0 * (double)i / (double)(m - 1));
        for (size_t i = 0; i < m; i++)
            fd[i] = (float)((act_ref((double)xs[i] + FD_H, a) - act_ref((double)xs[i] - FD_H, a)) /
                            (2.0 * FD_H) * G[i]);
        for (int naive = 0; naive < 2; naive++) {
            float *d = zeros(m);
            (naive ? mv_act_backward_naive : mv_act_backward)(d, G, xs, act, m);
            snprintf(name, sizeof name, "%s %s backward vs finite differences", names[a],
                     naive ? "naive" : "optimised");
            check_close_f32(name, d, fd, m, naive ? 1e-7 : 1e-6, naive ? 1e-6 : 1e-5);
            mv_free(d);
        }
        /* derivatives known in closed form at 0: quick_gelu'(0) = gelu'(0) = 1/2 */
        float z = 0.0f, one = 1.0f, d0 = 0.0f;
        mv_act_backward(&d0, &one, &z, act, 1);
        CHECK(d0 == 0.5f, "%s'(0) = %.9g", names[a], d0);

        /* accumulation */
        float *h1 = zeros(n), *h2 = zeros(n);
        mv_act_backward(h1, dy, x, act, n);
        mv_act_backward(h2, dy, x, act, n);
        mv_act_backward(h2, dy, x, act, n);
        check_twice("act backward accumulates", h2, h1, n);

        /* threads: past the parallel threshold (n > 262144) */
        size_t nb = 300007;
        float *xb = rand_buf(nb, 3.0f), *db = rand_buf(nb, 1.0f), *t1 = zeros(nb), *t2 = zeros(nb);
        omp_set_num_threads(1);
        mv_act_backward(t1, db, xb, act, nb);
        omp_set_num_threads(2);
        mv_act_backward(t2, db, xb, act, nb);
        CHECK(same_bits(t1, t2, nb), "%s backward: 1 thread differs from 2", names[a]);

        /* mv_act_forward_copy: the bits of the in-place forward, input untouched, on a
         * parallel size and on a short span with a tail */
        size_t sizes[2] = {nb, 13};
        for (int s = 0; s < 2; s++) {
            float *in = copy_buf(xb, sizes[s]), *out = zeros(sizes[s]);
            float *inplace = copy_buf(xb, sizes[s]);
            mv_act_forward_copy(out, in, act, sizes[s]);
            mv_act_forward(inplace, act, sizes[s]);
            CHECK(same_bits(out, inplace, sizes[s]), "%s forward_copy (n=%zu) differs in place",
                  names[a], sizes[s]);
            CHECK(same_bits(in, xb, sizes[s]), "%s forward_copy changed its input", names[a]);
            mv_free(in), mv_free(out), mv_free(inplace);
        }
        mv_free(x), mv_free(dy), mv_free(g1), mv_free(g2), mv_free(xs), mv_free(G), mv_free(fd);
        mv_free(h1), mv_free(h2), mv_free(xb), mv_free(db), mv_free(t1), mv_free(t2);
    }
}

/* ------------------------------------------------------------------ layernorm */

#define LN_EPS 1e-5f

struct ln_ctx {
    int R, C;
    double *x, *w, *b, *G;
};

/* L = sum(((x - mean) / sqrt(var + eps) * w + b) * G), biased variance */
static double ln_loss(void *c)
{
    struct ln_ctx *t = c;
    double L = 0;
    for (int r = 0; r < t->R; r++) {
        const double *x = t->x + (size_t)r * t->C;
        double m = 0, v = 0;
        for (int i = 0; i < t->C; i++) m += x[i];
        m /= t->C;
        for (int i = 0; i < t->C; i++) v += (x[i] - m) * (x[i] - m);
        v /= t->C;
        double rs = 1.0 / sqrt(v + (double)LN_EPS);
        for (int i = 0; i < t->C; i++)
            L += ((x[i] - m) * rs * t->w[i] + t->b[i]) * t->G[(size_t)r * t->C + i];
    }
    return L;
}

static void test_layernorm_naive(void)
{
    for (int it = 0; it < 10; it++) {
        int R = it == 0 ? 1 : rand_int(1, 70), C = it == 1 ? 1 : rand_int(2, 300);
        size_t n = (size_t)R * C;
        float *x = rand_buf(n, 2.0f), *w = rand_buf(C, 1.0f), *b = rand_buf(C, 1.0f);
        float *dy = rand_buf(n, 1.0f), *y = zeros(n), *mean = zeros(R), *rstd = zeros(R);
        if (it % 3 == 2)
            for (size_t i = 0; i < n; i++) x[i] += 100.0f;
        mv_layernorm_forward(y, mean, rstd, x, w, b, R, C, LN_EPS);
        float *dx1 = rand_buf(n, 1.0f), *dw1 = rand_buf(C, 1.0f), *db1 = rand_buf(C, 1.0f);
        float *dx2 = copy_buf(dx1, n), *dw2 = copy_buf(dw1, C), *db2 = copy_buf(db1, C);
        mv_layernorm_backward(dx1, dw1, db1, dy, x, mean, rstd, w, R, C);
        mv_layernorm_backward_naive(dx2, dw2, db2, dy, x, mean, rstd, w, R, C);
        char name[96];
        snprintf(name, sizeof name, "layernorm backward R=%d C=%d: dinp", R, C);
        check_close_f32(name, dx1, dx2, n, NAIVE_ATOL, NAIVE_RTOL);
        check_close_f32("layernorm dw", dw1, dw2, C, NAIVE_ATOL, NAIVE_RTOL);
        check_close_f32("layernorm db", db1, db2, C, NAIVE_ATOL, NAIVE_RTOL);
        mv_free(x), mv_free(w), mv_free(b), mv_free(dy), mv_free(y), mv_free(mean);
        mv_free(rstd), mv_free(dx1), mv_free(dw1), mv_free(db1), mv_free(dx2), mv_free(dw2);
        mv_free(db2);
    }
}

static void test_layernorm_fd(void)
{
    int shapes[][2] = {{4, 7}, {3, 16}, {2, 2}};
    for (int it = 0; it < 3; it++) {
        int R = shapes[it][0], C = shapes[it][1];
        size_t n = (size_t)R * C;
        float *x = rand_buf(n, 1.5f), *w = rand_buf(C, 1.0f), *b = rand_buf(C, 1.0f);
        float *G = rand_buf(n, 1.0f), *y = zeros(n), *mean = zeros(R), *rstd = zeros(R);
        struct ln_ctx t = {
            R, C, to_double(x, n), to_double(w, C), to_double(b, C), to_double(G, n)};
        float *fx = zeros(n), *fw = zeros(C), *fb = zeros(C);
        fd_grad(fx, t.x, n, ln_loss, &t);
        fd_grad(fw, t.w, C, ln_loss, &t);
        fd_grad(fb, t.b, C, ln_loss, &t);
        mv_layernorm_forward_naive(y, mean, rstd, x, w, b, R, C, LN_EPS);
        for (int naive = 0; naive < 2; naive++) {
            float *dx = zeros(n), *dw = zeros(C), *db = zeros(C);
            (naive ? mv_layernorm_backward_naive : mv_layernorm_backward)(dx, dw, db, G, x, mean,
                                                                          rstd, w, R, C);
            char name[96];
            snprintf(name, sizeof name, "layernorm %s vs finite differences R=%d C=%d: dinp",
                     naive ? "naive" : "optimised", R, C);
            check_close_f32(name, dx, fx, n, FD_ATOL, FD_RTOL);
            check_close_f32("layernorm fd dw", dw, fw, C, FD_ATOL, FD_RTOL);
            check_close_f32("layernorm fd db", db, fb, C, FD_ATOL, FD_RTOL);
            mv_free(dx), mv_free(dw), mv_free(db);
        }
        mv_free(x), mv_free(w), mv_free(b), mv_free(G), mv_free(y), mv_free(mean), mv_free(rstd);
        mv_free(fx), mv_free(fw), mv_free(fb), mv_free(t.x), mv_free(t.w), mv_free(t.b);
        mv_free(t.G);
    }
}

static void test_layernorm_contract(void)
{
    for (int big = 0; big < 2; big++) {
        /* big: R * C > 262144, rows and column blocks both in parallel loops */
        int R = big ? 700 : 23, C = big ? 400 : 77;
        size_t n = (size_t)R * C;
        float *x = rand_buf(n, 2.0f), *w = rand_buf(C, 1.0f), *b = rand_buf(C, 1.0f);
        float *dy = rand_buf(n, 1.0f), *y = zeros(n), *mean = zeros(R), *rstd = zeros(R);
        mv_layernorm_forward(y, mean, rstd, x, w, b, R, C, LN_EPS);
        float *g[2][3];
        for (int t = 0; t < 2; t++) {
            omp_set_num_threads(t + 1);
            g[t][0] = zeros(n), g[t][1] = zeros(C), g[t][2] = zeros(C);
            mv_layernorm_backward(g[t][0], g[t][1], g[t][2], dy, x, mean, rstd, w, R, C);
        }
        omp_set_num_threads(2);
        CHECK(same_bits(g[0][0], g[1][0], n) && same_bits(g[0][1], g[1][1], C) &&
                  same_bits(g[0][2], g[1][2], C),
              "layernorm backward R=%d C=%d: 1 thread differs from 2", R, C);
        float *dx2 = copy_buf(g[1][0], n), *dw2 = copy_buf(g[1][1], C);
        float *db2 = copy_buf(g[1][2], C);
        mv_layernorm_backward(dx2, dw2, db2, dy, x, mean, rstd, w, R, C);
        check_twice("layernorm dinp accumulates", dx2, g[1][0], n);
        check_twice("layernorm dw accumulates", dw2, g[1][1], C);
        check_twice("layernorm db accumulates", db2, g[1][2], C);
        float *e = zeros(n), *f = zeros(C), *h = zeros(C);
        mv_layernorm_backward(e, NULL, NULL, dy, x, mean, rstd, w, R, C);
        mv_layernorm_backward(NULL, f, NULL, dy, x, mean, rstd, w, R, C);
        mv_layernorm_backward(NULL, NULL, h, dy, x, mean, rstd, w, R, C);
        mv_layernorm_backward(NULL, NULL, NULL, dy, x, mean, rstd, w, R, C);
        CHECK(same_bits(e, g[1][0], n) && same_bits(f, g[1][1], C) && same_bits(h, g[1][2], C),
              "layernorm backward with NULL gradients differs");
        if (!big) {
            float *e2 = zeros(n), *f2 = zeros(C), *h2 = zeros(C);
            mv_layernorm_backward_naive(e2, NULL, NULL, dy, x, mean, rstd, w, R, C);
            mv_layernorm_backward_naive(NULL, f2, NULL, dy, x, mean, rstd, w, R, C);
            mv_layernorm_backward_naive(NULL, NULL, h2, dy, x, mean, rstd, w, R, C);
            check_close_f32("layernorm naive NULL dinp", e2, e, n, NAIVE_ATOL, NAIVE_RTOL);
            check_close_f32("layernorm naive NULL dw", f2, f, C, NAIVE_ATOL, NAIVE_RTOL);
            check_close_f32("layernorm naive NULL db", h2, h, C, NAIVE_ATOL, NAIVE_RTOL);
            mv_free(e2), mv_free(f2), mv_free(h2);
        }
        for (int t = 0; t < 2; t++)
            for (int i = 0; i < 3; i++) mv_free(g[t][i]);
        mv_free(x), mv_free(w), mv_free(b), mv_free(dy), mv_free(y), mv_free(mean);
        mv_free(rstd), mv_free(dx2), mv_free(dw2), mv_free(db2), mv_free(e), mv_free(f);
        mv_free(h);
    }
}

/* ------------------------------------------------------------------ attention */

struct attn_ctx {
    const struct mv_seqs *s;
    int NH, HS;
    double *q, *k, *v, *G;
};

static int visible(const struct mv_seqs *s, int b, int i, int j)
{
    if (s->causal && j > i) return 0;
    return !(s->mask && s->mask[(size_t)b * s->mask_stride + j] == 0);
}

/* L = sum(softmax(q k^T over the visible keys) v * G): masked keys simply left out (every
 * query sees at least key 0 in these tests, so this is the masked softmax exactly). */
static double attn_loss(void *c)
{
    struct attn_ctx *t = c;
    const struct mv_seqs *s = t->s;
    int C = t->NH * t->HS, HS = t->HS;
    double L = 0, p[64];
    for (int b = 0; b < s->B; b++) {
        int N = s->len[b];
        for (int h = 0; h < t->NH; h++)
            for (int i = 0; i < N; i++) {
                const double *qi = t->q + (size_t)(s->off[b] + i) * C + h * HS;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < N; j++) {
                    const double *kj = t->k + (size_t)(s->off[b] + j) * C + h * HS;
                    double acc = 0;
                    for (int d = 0; d < HS; d++) acc += qi[d] * kj[d];
                    p[j] = acc;
                    if (visible(s, b, i, j) && acc > mx) mx = acc;
                }
                for (int j = 0; j < N; j++) {
                    p[j] = visible(s, b, i, j) ? exp(p[j] - mx) : 0.0;
                    sum += p[j];
                }
                for (int d = 0; d < HS; d++) {
                    double o = 0;
                    for (int j = 0; j < N; j++)
                        o += p[j] / sum * t->v[(size_t)(s->off[b] + j) * C + h * HS + d];
                    L += o * t->G[(size_t)(s->off[b] + i) * C + h * HS + d];
                }
            }
    }
    return L;
}

static void test_attention_naive(void)
{
    for (int it = 0; it < 16; it++) {
        int B = rand_int(1, 5), NH = rand_int(1, 4), HS = rand_int(1, 40), C = NH * HS;
        int Tm = rand_int(1, 30);
        struct rand_seqs rs;
        rand_seqs_fill(&rs, &rng, it, B, Tm);
        const struct mv_seqs s = rs.s;
        const int R = rs.R, causal = s.causal;
        size_t n = (size_t)R * C, na = mv_attention_att_size(&s, NH);
        float *q = rand_buf(n, 0.5f), *k = rand_buf(n, 0.5f), *v = rand_buf(n, 1.0f);
        float *dy = rand_buf(n, 1.0f), *o = zeros(n), *att = zeros(na);
        mv_attention_forward(o, att, q, k, v, &s, NH, HS);
        float *g1[4], *g2[4];
        for (int i = 0; i < 3; i++) g1[i] = rand_buf(n, 1.0f), g2[i] = copy_buf(g1[i], n);
        g1[3] = rand_buf(na, 1.0f), g2[3] = rand_buf(na, 1.0f);
        mv_attention_backward(g1[0], g1[1], g1[2], g1[3], dy, att, q, k, v, &s, NH, HS);
        mv_attention_backward_naive(g2[0], g2[1], g2[2], g2[3], dy, att, q, k, v, &s, NH, HS);
        char name[128];
        snprintf(name, sizeof name, "attention backward B=%d NH=%d HS=%d causal=%d mask=%d: dq", B,
                 NH, HS, causal, s.mask != NULL);
        check_close_f32(name, g1[0], g2[0], n, NAIVE_ATOL, 1e-4);
        check_close_f32("attention dk", g1[1], g2[1], n, NAIVE_ATOL, 1e-4);
        check_close_f32("attention dv", g1[2], g2[2], n, NAIVE_ATOL, 1e-4);
        check_close_f32("attention dS (datt)", g1[3], g2[3], na, 1e-6, 1e-4);
        mv_free(q), mv_free(k), mv_free(v), mv_free(dy), mv_free(o), mv_free(att);
        for (int i = 0; i < 4; i++) mv_free(g1[i]), mv_free(g2[i]);
    }
}

static void test_attention_fd(void)
{
    for (int it = 0; it < 4; it++) {
        int NH = 2, HS = 3, C = NH * HS, off[2] = {0, 5}, len[2] = {5, 3}, R = 8;
        /* padding: sequence 0 has 3 valid keys, sequence 1 has 2 (key 0 always valid) */
        int64_t mask[2 * 5] = {1, 1, 1, 0, 0, 1, 1, 0, 0, 0};
        struct mv_seqs s = {.B = 2,
                            .off = off,
                            .len = len,
                            .mask = it & 1 ? mask : NULL,
                            .mask_stride = 5,
                            .causal = it >> 1};
        size_t n = (size_t)R * C, na = mv_attention_att_size(&s, NH);
        float *q = rand_buf(n, 1.0f), *k = rand_buf(n, 1.0f), *v = rand_buf(n, 1.0f);
        float *G = rand_buf(n, 1.0f), *o = zeros(n), *att = zeros(na), *datt = zeros(na);
        struct attn_ctx t = {
            &s, NH, HS, to_double(q, n), to_double(k, n), to_double(v, n), to_double(G, n)};
        float *fq = zeros(n), *fk = zeros(n), *fv = zeros(n);
        fd_grad(fq, t.q, n, attn_loss, &t);
        fd_grad(fk, t.k, n, attn_loss, &t);
        fd_grad(fv, t.v, n, attn_loss, &t);
        mv_attention_forward_naive(o, att, q, k, v, &s, NH, HS);
        for (int naive = 0; naive < 2; naive++) {
            float *dq = zeros(n), *dk = zeros(n), *dv = zeros(n);
            (naive ? mv_attention_backward_naive : mv_attention_backward)(dq, dk, dv, datt, G, att,
                                                                          q, k, v, &s, NH, HS);
            char name[128];
            snprintf(name, sizeof name, "attention %s vs finite differences causal=%d mask=%d: dq",
                     naive ? "naive" : "optimised", s.causal, s.mask != NULL);
            check_close_f32(name, dq, fq, n, FD_ATOL, FD_RTOL);
            check_close_f32("attention fd dk", dk, fk, n, FD_ATOL, FD_RTOL);
            check_close_f32("attention fd dv", dv, fv, n, FD_ATOL, FD_RTOL);
            /* keys behind the padding mask get exactly no gradient */
            int leak = 0;
            for (int b = 0; s.mask && b < 2; b++)
                for (int j = 0; j < len[b]; j++)
                    for (int c = 0; !mask[b * 5 + j] && c < C; c++) {
                        size_t at = (size_t)(off[b] + j) * C + c;
                        leak |= dk[at] != 0.0f || dv[at] != 0.0f;
                    }
            CHECK(!leak, "attention: masked keys got a gradient");
            mv_free(dq), mv_free(dk), mv_free(dv);
        }
        mv_free(q), mv_free(k), mv_free(v), mv_free(G), mv_free(o), mv_free(att), mv_free(datt);
        mv_free(fq), mv_free(fk), mv_free(fv), mv_free(t.q), mv_free(t.k), mv_free(t.v);
        mv_free(t.G);
    }
}

static void test_attention_contract(void)
{
    int NH = 4, HS = 16, C = NH * HS, off[3] = {0, 40, 73}, len[3] = {40, 33, 50}, R = 123;
    int64_t mask[3 * 50];
    for (int b = 0; b < 3; b++)
        for (int j = 0; j < 50; j++) mask[b * 50 + j] = j < len[b] - 5 * b;
    for (int causal = 0; causal < 2; causal++) {
        struct mv_seqs s = {
            .B = 3, .off = off, .len = len, .mask = mask, .mask_stride = 50, .causal = causal};
        size_t n = (size_t)R * C, na = mv_attention_att_size(&s, NH);
        float *q = rand_buf(n, 0.5f), *k = rand_buf(n, 0.5f), *v = rand_buf(n, 1.0f);
        float *dy = rand_buf(n, 1.0f), *o = zeros(n), *att = zeros(na);
        mv_attention_forward(o, att, q, k, v, &s, NH, HS);
        /* threads: 12 (sequence, head) pairs over 1 and 2 threads */
        float *g[2][4];
        for (int t = 0; t < 2; t++) {
            omp_set_num_threads(t + 1);
            g[t][0] = zeros(n), g[t][1] = zeros(n), g[t][2] = zeros(n), g[t][3] = zeros(na);
            mv_attention_backward(g[t][0], g[t][1], g[t][2], g[t][3], dy, att, q, k, v, &s, NH, HS);
        }
        omp_set_num_threads(2);
        CHECK(same_bits(g[0][0], g[1][0], n) && same_bits(g[0][1], g[1][1], n) &&
                  same_bits(g[0][2], g[1][2], n) && same_bits(g[0][3], g[1][3], na),
              "attention backward causal=%d: 1 thread differs from 2", causal);
        /* accumulation */
        float *a2[3];
        for (int i = 0; i < 3; i++) a2[i] = copy_buf(g[1][i], n);
        mv_attention_backward(a2[0], a2[1], a2[2], g[1][3], dy, att, q, k, v, &s, NH, HS);
        check_twice("attention dq accumulates", a2[0], g[1][0], n);
        check_twice("attention dk accumulates", a2[1], g[1][1], n);
        check_twice("attention dv accumulates", a2[2], g[1][2], n);
        /* NULL gradients: each one alone, and none at all */
        float *e = zeros(n), *f = zeros(n), *h = zeros(n), *datt = zeros(na);
        mv_attention_backward(e, NULL, NULL, datt, dy, att, q, k, v, &s, NH, HS);
        mv_attention_backward(NULL, f, NULL, datt, dy, att, q, k, v, &s, NH, HS);
        mv_attention_backward(NULL, NULL, h, datt, dy, att, q, k, v, &s, NH, HS);
        mv_attention_backward(NULL, NULL, NULL, datt, dy, att, q, k, v, &s, NH, HS);
        CHECK(same_bits(e, g[1][0], n) && same_bits(f, g[1][1], n) && same_bits(h, g[1][2], n),
              "attention backward with NULL gradients differs (causal=%d)", causal);
        float *e2 = zeros(n), *f2 = zeros(n), *h2 = zeros(n);
        mv_attention_backward_naive(e2, NULL, NULL, datt, dy, att, q, k, v, &s, NH, HS);
        mv_attention_backward_naive(NULL, f2, NULL, datt, dy, att, q, k, v, &s, NH, HS);
        mv_attention_backward_naive(NULL, NULL, h2, datt, dy, att, q, k, v, &s, NH, HS);
        check_close_f32("attention naive NULL dq", e2, e, n, NAIVE_ATOL, 1e-4);
        check_close_f32("attention naive NULL dk", f2, f, n, NAIVE_ATOL, 1e-4);
        check_close_f32("attention naive NULL dv", h2, h, n, NAIVE_ATOL, 1e-4);
        for (int t = 0; t < 2; t++)
            for (int i = 0; i < 4; i++) mv_free(g[t][i]);
        for (int i = 0; i < 3; i++) mv_free(a2[i]);
        mv_free(q), mv_free(k), mv_free(v), mv_free(dy), mv_free(o), mv_free(att), mv_free(e);
        mv_free(f), mv_free(h), mv_free(datt), mv_free(e2), mv_free(f2), mv_free(h2);
    }
}

/* ------------------------------------------------------------------ losses */

struct l2_ctx {
    int R, D;
    double *x, *G;
};

/* L = sum(x / ||x|| * G) */
static double l2_loss(void *c)
{
    struct l2_ctx *t = c;
    double L = 0;
    for (int r = 0; r < t->R; r++) {
        double ss = 0;
        for (int j = 0; j < t->D; j++) ss += t->x[r * t->D + j] * t->x[r * t->D + j];
        for (int j = 0; j < t->D; j++) L += t->x[r * t->D + j] / sqrt(ss) * t->G[r * t->D + j];
    }
    return L;
}

struct ce_ctx {
    int R, K;
    const int64_t *labels;
    double *x;
};

/* L = mean_r (log sum_j exp(x_rj) - x_r,label) */
static double ce_loss(void *c)
{
    struct ce_ctx *t = c;
    double L = 0;
    for (int r = 0; r < t->R; r++) {
        double sum = 0;
        for (int j = 0; j < t->K; j++) sum += exp(t->x[r * t->K + j]);
        L += log(sum) - t->x[r * t->K + t->labels[r]];
    }
    return L / t->R;
}

static void test_l2norm(void)
{
    int shapes[][2] = {{3, 5}, {2, 16}, {1, 1}};
    for (int it = 0; it < 3; it++) {
        int R = shapes[it][0], D = shapes[it][1];
        size_t n = (size_t)R * D;
        float *x = rand_buf(n, 2.0f), *G = rand_buf(n, 1.0f), *y = zeros(n), *norm = zeros(R);
        struct l2_ctx t = {R, D, to_double(x, n), to_double(G, n)};
        float *fx = zeros(n), *dx = zeros(n);
        fd_grad(fx, t.x, n, l2_loss, &t);
        mv_l2norm_forward(y, norm, x, R, D);
        mv_l2norm_backward(dx, G, y, norm, R, D);
        char name[96];
        snprintf(name, sizeof name, "l2norm vs finite differences R=%d D=%d", R, D);
        check_close_f32(name, dx, fx, n, FD_ATOL, FD_RTOL);
        float *dx2 = copy_buf(dx, n);
        mv_l2norm_backward(dx2, G, y, norm, R, D);
        check_twice("l2norm accumulates", dx2, dx, n);
        mv_free(x), mv_free(G), mv_free(y), mv_free(norm), mv_free(fx), mv_free(dx);
        mv_free(dx2), mv_free(t.x), mv_free(t.G);
    }
}

/* mv_cross_entropy's gradient (the vectorised exponentials, and K = 4's AVX2 path) and its
 * naive sibling's against finite differences of the double-precision loss. */
static void test_cross_entropy(void)
{
    int shapes[][2] = {{4, 5}, {3, 2}, {1, 7}, {4, 4}};
    int64_t labels[4] = {2, 0, 1, 4};
    for (int it = 0; it < 4; it++) {
        int R = shapes[it][0], K = shapes[it][1];
        int64_t lab[4];
        for (int r = 0; r < R; r++) lab[r] = labels[r] % K;
        size_t n = (size_t)R * K;
        float *x = rand_buf(n, 2.0f);
        struct ce_ctx t = {R, K, lab, to_double(x, n)};
        float *fx = zeros(n), *dx = zeros(n), *dn = zeros(n);
        fd_grad(fx, t.x, n, ce_loss, &t);
        double L = mv_cross_entropy(dx, x, lab, R, K);
        char name[96];
        snprintf(name, sizeof name, "cross-entropy vs finite differences R=%d K=%d", R, K);
        check_close_f32(name, dx, fx, n, 1e-7, FD_RTOL);
        CHECK(fabs(L - ce_loss(&t)) < 1e-6, "%s: loss %.9g vs %.9g", name, L, ce_loss(&t));
        double Ln = mv_cross_entropy_naive(dn, x, lab, R, K, 1.0f / (float)R) / R;
        snprintf(name, sizeof name, "cross-entropy naive vs finite differences R=%d K=%d", R, K);
        check_close_f32(name, dn, fx, n, 1e-7, FD_RTOL);
        CHECK(fabs(Ln - ce_loss(&t)) < 1e-12, "%s: loss %.17g vs %.17g", name, Ln, ce_loss(&t));
        /* max subtraction: logits shifted by 1000 (exp would overflow) give the same
         * gradient; every row of the gradient sums to 0 */
        float *xs = copy_buf(x, n), *ds = zeros(n);
        for (size_t i = 0; i < n; i++) xs[i] += 1000.0f;
        (void)mv_cross_entropy(ds, xs, lab, R, K);
        check_close_f32("cross-entropy of shifted logits", ds, dx, n, 1e-4, 0);
        double worst = 0;
        for (int r = 0; r < R; r++) {
            double s = 0;
            for (int j = 0; j < K; j++) s += ds[r * K + j];
            worst = fmax(worst, fabs(s));
        }
        CHECK(worst < 1e-7, "cross-entropy gradient rows sum to %g", worst);
        mv_free(x), mv_free(fx), mv_free(dx), mv_free(dn), mv_free(xs), mv_free(ds);
        mv_free(t.x);
    }
}

/* attention.c's fused short-sequence backward: the AVX-512 code against its portable order
 * bit for bit (where the CPU has AVX-512), both against the naive sibling, 1 thread against
 * 2; the shapes of rand_seqs.h, two of them on the general path. */
static void test_attention_fused(void)
{
    for (int c = 0; c < ATTN_SHAPES; c++) {
        const int *sh = attn_shapes[c], NH = sh[2], HS = sh[3], C = NH * HS;
        struct attn_batch ab;
        attn_batch_fill(&ab, sh[0], sh[1], sh[4], sh[5]);
        const struct mv_seqs *s = &ab.s;
        size_t n = (size_t)ab.R * C, na = mv_attention_att_size(s, NH);
        float *q = rand_buf(n, 0.5f), *k = rand_buf(n, 0.5f), *v = rand_buf(n, 1.0f);
        float *dy = rand_buf(n, 1.0f), *o = zeros(n), *att = zeros(na);
        mv_attention_forward(o, att, q, k, v, s, NH, HS);
        float *g[4][4]; /* fast, portable, naive, fast on 1 thread */
        for (int i = 0; i < 3; i++) g[0][i] = rand_buf(n, 1.0f);
        g[0][3] = rand_buf(na, 1.0f);
        for (int w = 1; w < 4; w++)
            for (int i = 0; i < 4; i++) g[w][i] = copy_buf(g[0][i], i < 3 ? n : na);
        mv_attention_backward(g[0][0], g[0][1], g[0][2], g[0][3], dy, att, q, k, v, s, NH, HS);
        mv_attention_backward_portable(g[1][0], g[1][1], g[1][2], g[1][3], dy, att, q, k, v, s, NH,
                                       HS);
        mv_attention_backward_naive(g[2][0], g[2][1], g[2][2], g[2][3], dy, att, q, k, v, s, NH,
                                    HS);
        omp_set_num_threads(1);
        mv_attention_backward(g[3][0], g[3][1], g[3][2], g[3][3], dy, att, q, k, v, s, NH, HS);
        omp_set_num_threads(2);
        char name[128];
        snprintf(name, sizeof name, "attention backward B=%d N=%d NH=%d HS=%d causal=%d mask=%d",
                 sh[0], sh[1], NH, HS, sh[4], sh[5]);
        const char *what[4] = {"dq", "dk", "dv", "dS (datt)"};
        for (int w = 0; w < 2; w++)
            for (int i = 0; i < 4; i++) {
                char nm[160];
                snprintf(nm, sizeof nm, "%s%s: %s", name, w ? " portable" : "", what[i]);
                check_close_f32(nm, g[w][i], g[2][i], i < 3 ? n : na, i < 3 ? NAIVE_ATOL : 1e-6,
                                1e-4);
            }
        for (int i = 0; i < 4; i++) {
            size_t m = i < 3 ? n : na;
            CHECK(!mv_attention_fused_available() || same_bits(g[0][i], g[1][i], m),
                  "%s: %s: the AVX-512 path differs from the portable order", name, what[i]);
            CHECK(same_bits(g[0][i], g[3][i], m), "%s: %s: 1 thread differs from 2", name, what[i]);
        }
        /* the _set form (over random contents): the bits of zeroing dq, dk, dv, then
         * accumulating */
        for (int i = 0; i < 3; i++) {
            memset(g[3][i], 0, n * sizeof(float));
            for (size_t j = 0; j < n; j++) g[2][i][j] = mv_rng_normal(&rng);
        }
        mv_attention_backward(g[3][0], g[3][1], g[3][2], g[3][3], dy, att, q, k, v, s, NH, HS);
        mv_attention_backward_set(g[2][0], g[2][1], g[2][2], g[2][3], dy, att, q, k, v, s, NH, HS);
        CHECK(same_bits(g[2][0], g[3][0], n) && same_bits(g[2][1], g[3][1], n) &&
                  same_bits(g[2][2], g[3][2], n),
              "%s: the _set form differs from zeroing and accumulating", name);
        mv_free(q), mv_free(k), mv_free(v), mv_free(dy), mv_free(o), mv_free(att);
        for (int w = 0; w < 4; w++)
            for (int i = 0; i < 4; i++) mv_free(g[w][i]);
    }
}

int main(void)
{
    mv_rng_seed(&rng, 4321);
    omp_set_num_threads(2);
    test_linear_naive();
    test_linear_fd();
    test_linear_contract();
    test_linear_threads();
    test_lora();
    test_act();
    test_layernorm_naive();
    test_layernorm_fd();
    test_layernorm_contract();
    test_attention_naive();
    test_attention_fd();
    test_attention_contract();
    test_attention_fused();
    test_l2norm();
    test_cross_entropy();
    test_backward_set(); /* last: its draws leave the other tests' random data as they were */
    return check_summary();
}

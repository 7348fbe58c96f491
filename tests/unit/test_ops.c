/* test_ops.c - every optimised kernel against its naive sibling on random shapes, and the
 * losses against values worked out by hand. */
#include "check.h"
#include "rand_seqs.h"
#include "ops/ops.h"

#include <float.h>

static struct mv_rng rng;

static float *rand_buf(size_t n, float scale)
{
    float *p = mv_malloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++) p[i] = scale * mv_rng_normal(&rng);
    return p;
}

static int rand_int(int lo, int hi)
{
    return lo + (int)mv_rng_below(&rng, (uint64_t)(hi - lo + 1));
}

static void test_gemm(void)
{
    for (int it = 0; it < 24; it++) {
        int M = rand_int(1, 70), N = rand_int(1, 70), K = rand_int(1, 300);
        int ta = it & 1, tb = (it >> 1) & 1;
        int lda = (ta ? M : K) + rand_int(0, 3), ldb = (tb ? K : N) + rand_int(0, 3);
        int ldc = N + rand_int(0, 3);
        float alpha = it % 3 ? 1.0f : 0.5f, beta = it % 4 == 0 ? 0.0f : 1.0f;
        float *A = rand_buf((size_t)(ta ? K : M) * lda, 1.0f);
        float *B = rand_buf((size_t)(tb ? N : K) * ldb, 1.0f);
        float *C1 = rand_buf((size_t)M * ldc, 1.0f);
        float *C2 = mv_malloc((size_t)M * ldc * sizeof(float));
        memcpy(C2, C1, (size_t)M * ldc * sizeof(float));
        mv_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C1, ldc);
        mv_gemm_naive(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C2, ldc);
        char name[96];
        snprintf(name, sizeof name, "gemm ta=%d tb=%d %dx%dx%d", ta, tb, M, N, K);
        check_close_f32(name, C1, C2, (size_t)M * ldc, 1e-4, 1e-5);
        mv_free(A), mv_free(B), mv_free(C1), mv_free(C2);
    }
}

static void test_gemm_skinny_path(int path)
{
    for (int it = 0; it < 30; it++) {
        int M = rand_int(1, 70), N = rand_int(1, 140), K = rand_int(1, 300);
        int lda = K + rand_int(0, 3), ldb = K + rand_int(0, 3), ldc = N + rand_int(0, 3);
        float alpha = it % 3 ? 1.0f : 0.25f, beta = it % 2 ? 1.0f : 0.0f;
        float *A = rand_buf((size_t)M * lda, 1.0f), *B = rand_buf((size_t)N * ldb, 1.0f);
        float *C1 = rand_buf((size_t)M * ldc, 1.0f);
        float *C2 = mv_malloc((size_t)M * ldc * sizeof(float));
        float *C3 = mv_malloc((size_t)M * ldc * sizeof(float));
        memcpy(C2, C1, (size_t)M * ldc * sizeof(float));
        memcpy(C3, C1, (size_t)M * ldc * sizeof(float));
        mv_gemm_skinny_at(path, 0, M, N, K, alpha, A, lda, B, ldb, beta, C1, ldc);
        mv_gemm_naive(0, 1, M, N, K, alpha, A, lda, B, ldb, beta, C2, ldc);
        mv_gemm_skinny_at(path, 1, M, N, K, alpha, A, lda, B, ldb, beta, C3, ldc);
        char name[96];
        snprintf(name, sizeof name, "gemm_skinny path %d %dx%dx%d", path, M, N, K);
        check_close_f32(name, C1, C2, (size_t)M * ldc, 1e-4, 1e-5);
        CHECK(memcmp(C1, C3, (size_t)M * ldc * sizeof(float)) == 0,
              "%s: the vector path differs from the portable order", name);
        /* rows do not depend on M: the last row alone equals the last row in the batch */
        float *row = mv_malloc((size_t)ldc * sizeof(float));
        memcpy(row, C3 + (size_t)(M - 1) * ldc, (size_t)ldc * sizeof(float));
        if (beta == 0.0f) {
            mv_gemm_skinny_at(path, 0, 1, N, K, alpha, A + (size_t)(M - 1) * lda, lda, B, ldb, 0.0f,
                              row, ldc);
            CHECK(memcmp(row, C1 + (size_t)(M - 1) * ldc, (size_t)N * sizeof(float)) == 0,
                  "%s: a row alone differs from the same row in the batch", name);
        }
        mv_free(A), mv_free(B), mv_free(C1), mv_free(C2), mv_free(C3), mv_free(row);
    }
}

/* every fast path the CPU has (AVX-512, AVX2), each against the portable order of its own */
static void test_gemm_skinny(void)
{
    for (int path = mv_gemm_skinny_best(); path >= 1; path--) test_gemm_skinny_path(path);
}

/* gemm_packed.c: against the naive product, the AVX-512 path against its portable order bit
 * for bit, and split invariance (a block of rows or columns alone gives the same bits as in
 * the whole product: what makes mv_gemm's thread split deterministic). Sizes cross the
 * 12 x 32 tile, the 144-row, 256-deep and 1536-column blocks; teams of threads sharing the
 * packed panels give the same bits. */
static void test_gemm_packed(void)
{
    for (int it = 0; it < 28; it++) {
        int M = rand_int(1, 180), N = rand_int(1, 420), K = rand_int(1, 300);
        if (it < 4) M = rand_int(1, 13), N = rand_int(1, 33), K = rand_int(1, 5);
        if (it % 7 == 6) M = rand_int(1, 30), N = rand_int(1540, 1600), K = rand_int(1, 100);
        if (it % 7 == 5) K = rand_int(257, 600); /* three KC slices */
        int ta = it & 1, tb = (it >> 1) & 1;
        int lda = (ta ? M : K) + rand_int(0, 3), ldb = (tb ? K : N) + rand_int(0, 3);
        int ldc = N + rand_int(0, 3);
        float alpha = it % 3 ? 1.0f : 0.5f, beta = it % 4 == 0 ? 0.0f : it % 4 == 1 ? 0.75f : 1.0f;
        float *A = rand_buf((size_t)(ta ? K : M) * lda, 1.0f);
        float *B = rand_buf((size_t)(tb ? N : K) * ldb, 1.0f);
        size_t nc = (size_t)M * ldc;
        float *C0 = rand_buf(nc, 1.0f), *C1 = mv_malloc(nc * 4), *C2 = mv_malloc(nc * 4);
        float *C3 = mv_malloc(nc * 4), *C4 = mv_malloc(nc * 4);
        if (beta == 0.0f) /* C is not read: NaNs in it must not leak */
            for (size_t i = 0; i < nc; i++) C0[i] = NAN;
        memcpy(C1, C0, nc * 4), memcpy(C2, C0, nc * 4), memcpy(C3, C0, nc * 4);
        memcpy(C4, C0, nc * 4);
        CHECK(mv_gemm_packed(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C1, ldc) == 0,
              "gemm_packed: no panels");
        mv_gemm_naive(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C2, ldc);
        mv_gemm_packed_portable(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C3, ldc);
        char name[96];
        snprintf(name, sizeof name, "gemm_packed ta=%d tb=%d %dx%dx%d", ta, tb, M, N, K);
        for (int i = 0; i < M; i++) /* the padding columns past N: C0's, not compared */
            for (int j = N; j < ldc; j++) C1[(size_t)i * ldc + j] = C2[(size_t)i * ldc + j] = 0;
        check_close_f32(name, C1, C2, nc, 1e-4, 1e-5);
        for (int i = 0; i < M; i++)
            for (int j = N; j < ldc; j++) C3[(size_t)i * ldc + j] = 0;
        CHECK(memcmp(C1, C3, nc * 4) == 0, "%s: the AVX-512 path differs from the portable order",
              name);
        /* rows [0, m1) and [m1, M), then columns [0, n1) and [n1, N), as separate calls */
        int m1 = rand_int(0, M), n1 = rand_int(0, N);
        const float *A2 = ta ? A + m1 : A + (size_t)m1 * lda;
        mv_gemm_packed(ta, tb, m1, N, K, alpha, A, lda, B, ldb, beta, C4, ldc);
        mv_gemm_packed(ta, tb, M - m1, N, K, alpha, A2, lda, B, ldb, beta, C4 + (size_t)m1 * ldc,
                       ldc);
        for (int i = 0; i < M; i++)
            for (int j = N; j < ldc; j++) C4[(size_t)i * ldc + j] = 0;
        CHECK(memcmp(C1, C4, nc * 4) == 0, "%s: split at row %d differs", name, m1);
        memcpy(C4, C0, nc * 4);
        const float *B2 = tb ? B + (size_t)n1 * ldb : B + n1;
        mv_gemm_packed(ta, tb, M, n1, K, alpha, A, lda, B, ldb, beta, C4, ldc);
        mv_gemm_packed(ta, tb, M, N - n1, K, alpha, A, lda, B2, ldb, beta, C4 + n1, ldc);
        for (int i = 0; i < M; i++)
            for (int j = N; j < ldc; j++) C4[(size_t)i * ldc + j] = 0;
        CHECK(memcmp(C1, C4, nc * 4) == 0, "%s: split at column %d differs", name, n1);
        /* a team of 2 or 3 threads sharing the packed panels: the same bits */
        for (int T = 2; T <= 3; T++) {
            memcpy(C4, C0, nc * 4);
            CHECK(mv_gemm_packed_team(0, T, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C4, ldc,
                                      NULL, 1.0f) == 0,
                  "gemm_packed_team: no panels");
            for (int i = 0; i < M; i++)
                for (int j = N; j < ldc; j++) C4[(size_t)i * ldc + j] = 0;
            CHECK(memcmp(C1, C4, nc * 4) == 0, "%s: a team of %d differs", name, T);
            memcpy(C4, C0, nc * 4);
            mv_gemm_packed_team(1, T, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C4, ldc, NULL,
                                1.0f);
            for (int i = 0; i < M; i++)
                for (int j = N; j < ldc; j++) C4[(size_t)i * ldc + j] = 0;
            CHECK(memcmp(C1, C4, nc * 4) == 0, "%s: the portable team of %d differs", name, T);
        }
        mv_free(A), mv_free(B), mv_free(C0), mv_free(C1), mv_free(C2), mv_free(C3), mv_free(C4);
    }
}

/* the bias folded into the packed product: the bits of the bias pass, then the product (beta 0:
 * out = bs b, beta 1: C += b), on both paths and teams of 1 and 2 */
static void test_gemm_packed_bias(void)
{
    for (int it = 0; it < 16; it++) {
        int M = rand_int(1, 150), N = rand_int(1, 300), K = rand_int(1, 600);
        int ta = it & 1, tb = (it >> 1) & 1, portable = (it >> 2) & 1, T = 1 + ((it >> 3) & 1);
        int lda = ta ? M : K, ldb = tb ? K : N;
        float alpha = it % 3 ? 1.0f : 0.125f, beta = it % 2 ? 1.0f : 0.0f;
        float bs = beta == 0.0f ? alpha : 1.0f;
        float *A = rand_buf((size_t)(ta ? K : M) * lda, 1.0f);
        float *B = rand_buf((size_t)(tb ? N : K) * ldb, 1.0f), *bias = rand_buf((size_t)N, 1.0f);
        size_t nc = (size_t)M * N;
        float *C1 = rand_buf(nc, 1.0f), *C2 = mv_malloc(nc * 4);
        memcpy(C2, C1, nc * 4);
        for (int i = 0; i < M; i++) /* the separate bias pass, as the linear layers did it */
            for (int j = 0; j < N; j++) {
                float bt = bs == 1.0f ? bias[j] : bs * bias[j];
                C2[(size_t)i * N + j] = beta == 0.0f ? bt : C2[(size_t)i * N + j] + bt;
            }
        mv_gemm_packed_team(portable, T, ta, tb, M, N, K, alpha, A, lda, B, ldb, 1.0f, C2, N, NULL,
                            1.0f);
        CHECK(mv_gemm_packed_team(portable, T, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C1, N,
                                  bias, bs) == 0,
              "gemm_packed_team with a bias: no panels");
        CHECK(memcmp(C1, C2, nc * 4) == 0,
              "gemm_packed_bias ta=%d tb=%d %dx%dx%d beta %g portable %d T %d: differs from the "
              "bias pass + product",
              ta, tb, M, N, K, beta, portable, T);
        mv_free(A), mv_free(B), mv_free(bias), mv_free(C1), mv_free(C2);
    }
}

/* A weight packed once (mv_gemm_pack_weight) gives the bits of the product that packs it, on
 * both paths and any team size; shapes cross the 32-column tiles, the 256-deep slices and the
 * 1536-column panels (N up to 1700). */
static void test_gemm_prepacked(void)
{
    for (int it = 0; it < 16; it++) {
        int M = rand_int(1, 140), N = it < 4 ? rand_int(1537, 1700) : rand_int(1, 300);
        int K = rand_int(1, 600), portable = it & 1, T = 1 + ((it >> 1) & 1);
        float alpha = it % 3 ? 1.0f : 0.125f, beta = (it >> 2) & 1 ? 1.0f : 0.0f;
        float *A = rand_buf((size_t)M * K, 1.0f), *W = rand_buf((size_t)N * K, 1.0f);
        float *bias = it % 5 ? rand_buf((size_t)N, 1.0f) : NULL;
        size_t nc = (size_t)M * N, np = mv_gemm_packed_weight_floats(N, K);
        CHECK(np == (size_t)(N + 31) / 32 * 32 * K, "packed weight size %zu for %dx%d", np, N, K);
        float *Wp = mv_aligned(np * sizeof(float));
        mv_gemm_pack_weight(Wp, W, N, K);
        float *C1 = rand_buf(nc, 1.0f), *C2 = mv_malloc(nc * 4);
        memcpy(C2, C1, nc * 4);
        float bs = beta == 0.0f ? alpha : 1.0f;
        CHECK(mv_gemm_packed_team(portable, T, 0, 1, M, N, K, alpha, A, K, W, K, beta, C1, N, bias,
                                  bs) == 0,
              "gemm_packed_team: no panels");
        CHECK(mv_gemm_packed_team_w(portable, T, M, N, K, alpha, A, K, Wp, beta, C2, N, bias, bs,
                                    -1) == 0,
              "gemm_packed_team_w: no panels");
        CHECK(memcmp(C1, C2, nc * 4) == 0,
              "prepacked %dx%dx%d beta %g portable %d T %d bias %d: differs from packing per call",
              M, N, K, beta, portable, T, bias != NULL);
        /* the activation in the epilogue = the product, then mv_act_forward */
        enum medvlm_act act = it & 8 ? MEDVLM_ACT_GELU : MEDVLM_ACT_QUICK_GELU;
        mv_act_forward(C1, act, nc);
        CHECK(mv_gemm_packed_team_w(portable, T, M, N, K, alpha, A, K, Wp, 0.0f, C2, N, bias, alpha,
                                    (int)act) == 0,
              "gemm_packed_team_w with an activation: no panels");
        float *C3 = mv_malloc(nc * 4);
        CHECK(mv_gemm_packed_team_w(portable, T, M, N, K, alpha, A, K, Wp, 0.0f, C3, N, bias, alpha,
                                    -1) == 0,
              "gemm_packed_team_w: no panels");
        mv_act_forward(C3, act, nc);
        CHECK(memcmp(C2, C3, nc * 4) == 0,
              "prepacked %dx%dx%d portable %d T %d act %d: the epilogue differs from the pass", M,
              N, K, portable, T, (int)act);
        mv_free(C3);
        /* the linear layer reads the packed copy at every row count, w only as a fallback */
        float *y1 = rand_buf(nc, 1.0f), *y2 = mv_malloc(nc * 4);
        mv_linear_forward(y1, A, W, NULL, bias, alpha, M, K, N);
        mv_linear_forward(y2, A, W, Wp, bias, alpha, M, K, N);
        if (mv_gemm_packed_on() && M > 64)
            CHECK(memcmp(y1, y2, nc * 4) == 0, "linear with a packed weight %dx%dx%d: differs", M,
                  K, N);
        else /* few rows: the skinny kernel on w against the packed one, other sums */
            check_close_f32("linear with a packed weight", y2, y1, nc, 1e-4, 1e-4);
        mv_free(A), mv_free(W), mv_free(bias), mv_free(Wp), mv_free(C1), mv_free(C2);
        mv_free(y1), mv_free(y2);
    }
    CHECK(mv_gemm_packed_weight_floats(0, 5) == 0 && mv_gemm_packed_weight_floats(5, 0) == 0,
          "packed weight size of an empty weight");
}

/* A few rows of a linear layer computed alone as rows of an R-row product (the _as forms: a
 * transformer's last layer kept to its pooled rows) get the bits those rows get in the whole
 * product, with and without a weight packed at load, at row counts on both sides of the
 * skinny and prepacked thresholds; with the activation in the epilogue and in the residual
 * form. On OpenBLAS (CPUs where it has fast kernels) within float rounding. */
static void test_linear_rows(void)
{
    static const int rows[] = {7, 31, 50, 64, 65, 183};
    for (int it = 0; it < 12; it++) {
        int R = rows[it % 6], I = rand_int(20, 300), O = rand_int(20, 400), P = 1 + it % 3;
        int packed = it >= 6;
        float *x = rand_buf((size_t)R * I, 1.0f), *w = rand_buf((size_t)O * I, 0.1f);
        float *b = rand_buf((size_t)O, 0.5f), *wp = NULL;
        if (packed) {
            wp = mv_aligned(mv_gemm_packed_weight_floats(O, I) * sizeof(float));
            mv_gemm_pack_weight(wp, w, O, I);
        }
        const int keep[3] = {0, R / 2, R - 1};
        float *full = mv_malloc((size_t)R * O * 4), *res = rand_buf((size_t)R * O, 1.0f);
        float *xp = mv_malloc((size_t)P * I * 4), *yp = mv_malloc((size_t)P * O * 4);
        float *rp = mv_malloc((size_t)P * O * 4);
        int fused = mv_linear_forward_act(full, x, w, wp, b, 1.0f, R, I, O, MEDVLM_ACT_QUICK_GELU);
        if (!fused) mv_act_forward(full, MEDVLM_ACT_QUICK_GELU, (size_t)R * O);
        for (int i = 0; i < P; i++) {
            memcpy(xp + (size_t)i * I, x + (size_t)keep[i] * I, (size_t)I * 4);
            memcpy(rp + (size_t)i * O, res + (size_t)keep[i] * O, (size_t)O * 4);
        }
        fused = mv_linear_forward_act_as(yp, xp, w, wp, b, 1.0f, P, I, O, MEDVLM_ACT_QUICK_GELU, R);
        if (!fused) mv_act_forward(yp, MEDVLM_ACT_QUICK_GELU, (size_t)P * O);
        mv_linear_residual_forward(res, x, w, wp, b, R, I, O);
        mv_linear_residual_forward_as(rp, xp, w, wp, b, P, I, O, R);
        int same = 1;
        double worst = 0;
        for (int i = 0; i < P; i++)
            for (int j = 0; j < O; j++) {
                float a1 = yp[(size_t)i * O + j], a2 = full[(size_t)keep[i] * O + j];
                float r1 = rp[(size_t)i * O + j], r2 = res[(size_t)keep[i] * O + j];
                same &= memcmp(&a1, &a2, 4) == 0 && memcmp(&r1, &r2, 4) == 0;
                worst = MV_MAX(worst, MV_MAX(fabs((double)a1 - a2), fabs((double)r1 - r2)));
            }
        if (mv_gemm_packed_on())
            CHECK(same, "%d rows of %d x %d x %d%s computed alone: not the whole product's bits", P,
                  R, I, O, packed ? " (packed at load)" : "");
        else
            CHECK(worst <= 1e-5, "%d rows of %d x %d x %d computed alone: %g off", P, R, I, O,
                  worst);
        mv_free(x), mv_free(w), mv_free(b), mv_free(wp), mv_free(full), mv_free(res);
        mv_free(xp), mv_free(yp), mv_free(rp);
    }
}

static void test_linear(void)
{
    for (int it = 0; it < 10; it++) {
        int R = rand_int(1, 120), I = rand_int(1, 200), O = rand_int(1, 150);
        float alpha = it % 2 ? 0.125f : 1.0f;
        float *x = rand_buf((size_t)R * I, 1.0f), *w = rand_buf((size_t)O * I, 0.1f);
        float *b = it % 3 ? rand_buf((size_t)O, 0.5f) : NULL;
        float *y1 = rand_buf((size_t)R * O, 1.0f), *y2 = rand_buf((size_t)R * O, 1.0f);
        mv_linear_forward(y1, x, w, NULL, b, alpha, R, I, O);
        mv_linear_forward_naive(y2, x, w, b, alpha, R, I, O);
        check_close_f32("linear", y1, y2, (size_t)R * O, 1e-5, 1e-5);
        /* residual: x0 + (x W^T + b) */
        float *res = rand_buf((size_t)R * O, 1.0f),
              *want = mv_malloc((size_t)R * O * sizeof(float));
        mv_linear_forward_naive(want, x, w, b, 1.0f, R, I, O);
        for (size_t i = 0; i < (size_t)R * O; i++) want[i] += res[i];
        mv_linear_residual_forward(res, x, w, NULL, b, R, I, O);
        check_close_f32("linear residual", res, want, (size_t)R * O, 1e-5, 1e-5);
        mv_free(x), mv_free(w), mv_free(b), mv_free(y1), mv_free(y2), mv_free(res), mv_free(want);
    }
}

static void test_layernorm(void)
{
    for (int it = 0; it < 8; it++) {
        int R = rand_int(1, 50), C = rand_int(1, 800);
        float *x = rand_buf((size_t)R * C, 3.0f), *w = rand_buf((size_t)C, 1.0f);
        float *b = rand_buf((size_t)C, 1.0f);
        /* a large common offset: single-pass float statistics would lose the variance */
        for (size_t i = 0; i < (size_t)R * C; i++) x[i] += 1000.0f;
        float *y1 = rand_buf((size_t)R * C, 1), *y2 = rand_buf((size_t)R * C, 1);
        float m1[64], m2[64], r1[64], r2[64];
        mv_layernorm_forward(y1, m1, r1, x, w, b, R, C, 1e-5f);
        mv_layernorm_forward_naive(y2, m2, r2, x, w, b, R, C, 1e-5f);
        check_close_f32("layernorm", y1, y2, (size_t)R * C, 2e-4, 1e-4);
        check_close_f32("layernorm mean", m1, m2, (size_t)R, 0, 1e-6);
        check_close_f32("layernorm rstd", r1, r2, (size_t)R, 0, 1e-5);
        /* in place */
        mv_layernorm_forward(x, NULL, NULL, x, w, b, R, C, 1e-5f);
        CHECK(memcmp(x, y1, (size_t)R * C * sizeof(float)) == 0, "in-place layernorm differs");
        mv_free(x), mv_free(w), mv_free(b), mv_free(y1), mv_free(y2);
    }
}

static void test_act(void)
{
    size_t n = 100003;
    for (int a = 0; a < 2; a++) {
        float *x = rand_buf(n, 4.0f), *y = mv_malloc(n * sizeof(float));
        x[0] = 0.0f, x[1] = -30.0f, x[2] = 30.0f, x[3] = -100.0f;
        memcpy(y, x, n * sizeof(float));
        mv_act_forward(x, (enum medvlm_act)a, n);
        mv_act_forward_naive(y, (enum medvlm_act)a, n);
        check_close_f32(a ? "gelu" : "quick_gelu", x, y, n, 1e-6, 1e-5);
        mv_free(x), mv_free(y);
    }
    /* known values: quick_gelu(1) = 1/(1+e^-1.702), gelu(1) = 0.5(1+erf(1/sqrt 2)) */
    float q = 1.0f, g = 1.0f;
    mv_act_forward(&q, MEDVLM_ACT_QUICK_GELU, 1);
    mv_act_forward(&g, MEDVLM_ACT_GELU, 1);
    CHECK(fabs(q - 0.845795) < 1e-6, "quick_gelu(1) = %.9g", q);
    CHECK(fabs(g - 0.841345) < 1e-6, "gelu(1) = %.9g", g);
}

static void test_exp(void)
{
    size_t n = 1003;
    float *x = rand_buf(n, 20.0f), *y = mv_malloc(n * sizeof(float));
    x[0] = -FLT_MAX, x[1] = -INFINITY, x[2] = 0.0f, x[3] = -87.5f, x[4] = 88.0f, x[5] = -86.0f;
    memcpy(y, x, n * sizeof(float));
    mv_exp_span(x, n);
    for (size_t i = 0; i < n; i++) y[i] = y[i] < -87.3f ? 0.0f : (float)exp((double)y[i]);
    check_close_f32("exp", x, y, n, 0, 3e-7);
    CHECK(x[0] == 0.0f && x[1] == 0.0f && x[2] == 1.0f, "exp(-max) %g exp(-inf) %g exp(0) %g", x[0],
          x[1], x[2]);
    mv_free(x), mv_free(y);
}

static void test_attention(void)
{
    for (int it = 0; it < 12; it++) {
        int B = rand_int(1, 5), NH = rand_int(1, 4), HS = rand_int(1, 40), C = NH * HS;
        int Tm = rand_int(1, 30);
        struct rand_seqs rs;
        rand_seqs_fill(&rs, &rng, it, B, Tm);
        const struct mv_seqs s = rs.s;
        const int R = rs.R, causal = s.causal, *len = rs.len;
        float *q = rand_buf((size_t)R * C, 1.0f), *k = rand_buf((size_t)R * C, 1.0f);
        float *v = rand_buf((size_t)R * C, 1.0f);
        size_t na = mv_attention_att_size(&s, NH);
        float *o1 = rand_buf((size_t)R * C, 1), *o2 = rand_buf((size_t)R * C, 1);
        float *a1 = rand_buf(na, 1), *a2 = rand_buf(na, 1);
        mv_attention_forward(o1, a1, q, k, v, &s, NH, HS);
        mv_attention_forward_naive(o2, a2, q, k, v, &s, NH, HS);
        char name[96];
        snprintf(name, sizeof name, "attention B=%d NH=%d HS=%d causal=%d mask=%d", B, NH, HS,
                 causal, s.mask != NULL);
        check_close_f32(name, o1, o2, (size_t)R * C, 1e-5, 1e-4);
        check_close_f32("attention probabilities", a1, a2, na, 1e-6, 1e-4);
        /* causal: probabilities above the diagonal are exactly 0 */
        if (causal) {
            int bad = 0;
            size_t at = 0;
            for (int b = 0; b < B; b++)
                for (int h = 0; h < NH; h++, at += (size_t)len[b] * len[b])
                    for (int i = 0; i < len[b]; i++)
                        for (int j = i + 1; j < len[b]; j++)
                            bad |= a1[at + (size_t)i * len[b] + j] != 0.0f;
            CHECK(!bad, "causal attention leaks to future keys");
        }
        mv_free(q), mv_free(k), mv_free(v), mv_free(o1), mv_free(o2), mv_free(a1), mv_free(a2);
    }
}

/* attention.c's fused short-sequence path: the AVX-512 code against its portable order bit
 * for bit (where the CPU has AVX-512), both against the naive sibling, 1 thread against 2. */
static void test_attention_fused(void)
{
    for (int c = 0; c < ATTN_SHAPES; c++) {
        const int *sh = attn_shapes[c], NH = sh[2], HS = sh[3], C = NH * HS;
        struct attn_batch ab;
        attn_batch_fill(&ab, sh[0], sh[1], sh[4], sh[5]);
        const struct mv_seqs *s = &ab.s;
        size_t n = (size_t)ab.R * C, na = mv_attention_att_size(s, NH);
        float *q = rand_buf(n, 0.5f), *k = rand_buf(n, 1.0f), *v = rand_buf(n, 1.0f);
        float *o[3], *a[3];
        for (int i = 0; i < 3; i++) o[i] = rand_buf(n, 1.0f), a[i] = rand_buf(na, 1.0f);
        mv_attention_forward(o[0], a[0], q, k, v, s, NH, HS);
        mv_attention_forward_portable(o[1], a[1], q, k, v, s, NH, HS);
        mv_attention_forward_naive(o[2], a[2], q, k, v, s, NH, HS);
        char name[128];
        snprintf(name, sizeof name, "attention B=%d N=%d NH=%d HS=%d causal=%d mask=%d", sh[0],
                 sh[1], NH, HS, sh[4], sh[5]);
        check_close_f32(name, o[0], o[2], n, 1e-5, 1e-4);
        check_close_f32("attention probabilities", a[0], a[2], na, 1e-6, 1e-4);
        check_close_f32("attention portable", o[1], o[2], n, 1e-5, 1e-4);
        check_close_f32("attention portable probabilities", a[1], a[2], na, 1e-6, 1e-4);
        if (mv_attention_fused_available())
            CHECK(!memcmp(o[0], o[1], n * 4) && !memcmp(a[0], a[1], na * 4),
                  "%s: the AVX-512 path differs from the portable order", name);
        CHECK_OK(medvlm_set_threads(1));
        mv_attention_forward(o[2], a[2], q, k, v, s, NH, HS);
        CHECK_OK(medvlm_set_threads(2));
        CHECK(!memcmp(o[0], o[2], n * 4) && !memcmp(a[0], a[2], na * 4),
              "%s: 1 thread differs from 2", name);
        mv_free(q), mv_free(k), mv_free(v);
        for (int i = 0; i < 3; i++) mv_free(o[i]), mv_free(a[i]);
    }
}

static void test_losses(void)
{
    /* softmax of equal values is uniform; a row shifted by 1000 gives the same result */
    float x[6] = {1, 2, 3, 1001, 1002, 1003}, y[6];
    mv_softmax_forward(y, x, 2, 3);
    double e = exp(1.0) + exp(2.0) + exp(3.0);
    float want[6] = {(float)(exp(1.0) / e), (float)(exp(2.0) / e), (float)(exp(3.0) / e),
                     (float)(exp(1.0) / e), (float)(exp(2.0) / e), (float)(exp(3.0) / e)};
    check_close_f32("softmax", y, want, 6, 1e-7, 1e-6);
    float v[4] = {3, 4, 0, 0}, n[2] = {0, 0}, out[4];
    mv_l2norm_forward(out, n, v, 1, 4);
    CHECK(out[0] == 0.6f && out[1] == 0.8f && n[0] == 5.0f, "l2norm (3,4) -> %g %g", out[0],
          out[1]);
    /* cross-entropy of uniform logits is log K */
    float z[8] = {0};
    int64_t lab[2] = {0, 3};
    CHECK(fabs(mv_cross_entropy(NULL, z, lab, 2, 4) - log(4.0)) < 1e-12, "CE uniform");
    /* CLIP loss: uniform B x B logits -> log B; a dominant diagonal -> ~0; and a worked
     * asymmetric case computed in double by hand */
    float u[9] = {0};
    CHECK(fabs(mv_clip_loss_forward(u, 3) - log(3.0)) < 1e-12, "clip loss uniform");
    float d[4] = {100, 0, 0, 100};
    CHECK(mv_clip_loss_forward(d, 2) < 1e-30, "clip loss diagonal");
    float a[4] = {1, 2, 3, 4}; /* rows: images */
    double li = (log(exp(1.0) + exp(2.0)) - 1 + log(exp(3.0) + exp(4.0)) - 4) / 2;
    double lt = (log(exp(1.0) + exp(3.0)) - 1 + log(exp(2.0) + exp(4.0)) - 4) / 2;
    CHECK(fabs(mv_clip_loss_forward(a, 2) - (li + lt) / 2) < 1e-12, "clip loss 2x2");
    float loss;
    CHECK_OK(medvlm_clip_loss(a, 2, &loss));
    CHECK(fabs(loss - (li + lt) / 2) < 1e-6, "medvlm_clip_loss");
    CHECK_ERR(medvlm_clip_loss(a, 0, &loss), MEDVLM_ERR_ARG, "batch");
}

static void test_threads(void)
{
    CHECK_OK(medvlm_set_threads(1));
    CHECK(medvlm_get_threads() == 1, "threads %d", medvlm_get_threads());
    CHECK_OK(medvlm_set_threads(2));
    CHECK(medvlm_get_threads() == 2, "threads %d", medvlm_get_threads());
    CHECK_ERR(medvlm_set_threads(0), MEDVLM_ERR_ARG, "threads");
}

int main(void)
{
    mv_rng_seed(&rng, 1234);
    test_gemm();
    test_gemm_skinny();
    test_gemm_packed();
    test_gemm_packed_bias();
    test_gemm_prepacked();
    test_linear();
    test_linear_rows();
    test_layernorm();
    test_act();
    test_exp();
    test_attention();
    test_attention_fused();
    test_losses();
    test_threads();
    return check_summary();
}

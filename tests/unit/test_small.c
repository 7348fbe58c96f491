/*
 * test_small.c - the small-shape kernels of src/ops/small.c (the adapters' products, dots,
 * fused row update, scans) against their plain-loop siblings, over threads against one thread,
 * and the cross-entropy (its AVX2 K = 4 path and mv_exp_span) against its double sibling.
 */
#include "check.h"
#include "ops/ops.h"
#include "optim/optim.h"

static void fill_normal(float *p, size_t n, struct mv_rng *r, float sd)
{
    for (size_t i = 0; i < n; i++) p[i] = sd * mv_rng_normal(r);
}

static void test_kernels(void)
{
    struct mv_rng r;
    mv_rng_seed(&r, 3);
    /* tn's tiles: 24 wide, then one 16 wide, then the tails: N = 40, 30, 20, 64, 256 */
    static const int shapes[][3] = {{32, 4, 512}, {5, 7, 9},  {1, 1, 1},   {3, 17, 33},
                                    {8, 512, 4},  {6, 5, 40}, {4, 40, 6},  {9, 30, 5},
                                    {4, 20, 3},   {5, 64, 7}, {4, 256, 32}};
    for (size_t s = 0; s < MV_ARRAY_LEN(shapes); s++) {
        int M = shapes[s][0], N = shapes[s][1], L = shapes[s][2];
        float *A = malloc(sizeof(float) * M * L), *Bm = malloc(sizeof(float) * N * L);
        float *C1 = calloc((size_t)M * N, 4), *C2 = calloc((size_t)M * N, 4);
        fill_normal(A, (size_t)M * L, &r, 1);
        fill_normal(Bm, (size_t)N * L, &r, 1);
        mv_mm_nt(C1, A, Bm, M, N, L);
        mv_mm_nt_ref(C2, A, Bm, M, N, L);
        char name[64];
        snprintf(name, sizeof name, "mm_nt %dx%dx%d", M, N, L);
        check_close_f32(name, C1, C2, (size_t)M * N, 1e-4, 1e-4);
        /* tn: C (M, N) += A (L, M)^T Bm (L, N), reusing the buffers with new roles */
        float *A2 = malloc(sizeof(float) * L * M), *B2 = malloc(sizeof(float) * L * N);
        fill_normal(A2, (size_t)L * M, &r, 1);
        fill_normal(B2, (size_t)L * N, &r, 1);
        for (int i = 0; i < M * N; i++) C1[i] = C2[i] = (float)i * 0.01f;
        mv_mm_tn_acc(C1, A2, B2, M, N, L);
        mv_mm_tn_acc_ref(C2, A2, B2, M, N, L);
        snprintf(name, sizeof name, "mm_tn_acc %dx%dx%d", M, N, L);
        check_close_f32(name, C1, C2, (size_t)M * N, 1e-4, 1e-4);
        /* row-pointer forms on reversed rows equal the contiguous forms on reversed copies */
        const float **ra = malloc(sizeof(float *) * (size_t)(M > L ? M : L));
        float *rev = malloc(sizeof(float) * (size_t)M * L), *C3 = calloc((size_t)M * N, 4);
        for (int i = 0; i < M; i++) {
            ra[i] = A + (size_t)(M - 1 - i) * L;
            memcpy(rev + (size_t)i * L, ra[i], sizeof(float) * L);
        }
        mv_mm_nt_rows(C1, ra, Bm, M, N, L, NULL);
        mv_mm_nt_ref(C3, rev, Bm, M, N, L);
        snprintf(name, sizeof name, "mm_nt_rows %dx%dx%d", M, N, L);
        check_close_f32(name, C1, C3, (size_t)M * N, 1e-4, 1e-4);
        float *rev2 = malloc(sizeof(float) * (size_t)L * N);
        for (int l = 0; l < L; l++) {
            ra[l] = B2 + (size_t)(L - 1 - l) * N;
            memcpy(rev2 + (size_t)l * N, ra[l], sizeof(float) * N);
        }
        for (int i = 0; i < M * N; i++) C1[i] = C3[i] = (float)i * 0.01f;
        mv_mm_tn_acc_rows(C1, A2, ra, M, N, L);
        mv_mm_tn_acc_ref(C3, A2, rev2, M, N, L);
        snprintf(name, sizeof name, "mm_tn_acc_rows %dx%dx%d", M, N, L);
        check_close_f32(name, C1, C3, (size_t)M * N, 1e-4, 1e-4);
        /* the overwriting form: whatever C held (NaN here), as accumulating onto zeros */
        for (int i = 0; i < M * N; i++) C1[i] = NAN, C3[i] = 0;
        mv_mm_tn_rows(C1, A2, ra, M, N, L, NULL);
        mv_mm_tn_acc_ref(C3, A2, rev2, M, N, L);
        snprintf(name, sizeof name, "mm_tn_rows %dx%dx%d", M, N, L);
        check_close_f32(name, C1, C3, (size_t)M * N, 1e-4, 1e-4);
        /* dst = a x + b y: the bits of dst += a x + b y onto zeros, and the plain loop */
        for (int i = 0; i < N; i++) C1[i] = NAN, C2[i] = 0, C3[i] = NAN;
        mv_axpby(C1, 0.7f, B2, -1.3f, Bm, N);
        mv_axpby_acc(C2, 0.7f, B2, -1.3f, Bm, N);
        mv_axpby_ref(C3, 0.7f, B2, -1.3f, Bm, N);
        CHECK(memcmp(C1, C2, sizeof(float) * N) == 0, "axpby %d: not axpby_acc onto zeros", N);
        check_close_f32("axpby vs plain", C1, C3, (size_t)N, 1e-6, 1e-6);
        /* the fused row update = its separate kernels in turn (bits), = plain loops (close) */
        for (int variant = 0; variant < 3; variant++) {
            const int n = N, clap = variant == 1, taskres = variant == 2;
            float *w0 = malloc(sizeof(float) * 8 * (size_t)n);
            float *w1 = w0 + n, *w2 = w1 + n, *b0 = w2 + n, *b1 = b0 + n, *b2 = b1 + n;
            float *e0 = b2 + n, *dw = e0 + n;
            float e1[600], e2[600];
            fill_normal(w0, (size_t)n, &r, 1);
            fill_normal(b0, (size_t)n, &r, 1);
            for (int i = 0; i < n; i++) {
                w1[i] = w2[i] = w0[i];
                b1[i] = b2[i] = b0[i];
                e0[i] = e1[i] = e2[i] = taskres ? Bm[i] + 0.5f * w0[i] : w0[i];
            }
            struct mv_row_update u = {.a = 0.3f,
                                      .b = -0.7f,
                                      .clap = clap,
                                      .f = 0.05f,
                                      .mom = 0.9f,
                                      .damp = 1.0f,
                                      .lr = 0.01f,
                                      .taskres = taskres,
                                      .alpha = 0.5f};
            float *we1 = taskres ? e1 : w1, *we2 = taskres ? e2 : w2;
            float d1 = -1, d3 = -1; /* CLAP: the updated rows' distances to zs (Bm here) */
            u.dist = &d1;
            float n1 = mv_row_update(&u, w1, b1, we1, B2, Bm, n);
            u.dist = &d3;
            float n3 = mv_row_update_ref(&u, w2, b2, we2, B2, Bm, n);
            if (clap) {
                float s1 = mv_sqdist(w1, Bm, n), s3 = mv_sqdist_ref(w2, Bm, n);
                CHECK(memcmp(&d1, &s1, sizeof d1) == 0 && memcmp(&d3, &s3, sizeof d3) == 0,
                      "row update %d: distance %.9g / %.9g, not mv_sqdist's %.9g / %.9g", n, d1, d3,
                      s1, s3);
            } else {
                CHECK(d1 == -1 && d3 == -1, "row update %d (variant %d): a distance without CLAP",
                      n, variant);
            }
            /* the separate kernels */
            float *we0 = taskres ? e0 : w0;
            mv_axpby(dw, u.a, B2, u.b, we0, n);
            if (clap) mv_axpby_acc(dw, u.f, w0, -u.f, Bm, n);
            struct mv_span sp = {w0, dw, (size_t)n};
            struct mv_optim o;
            struct mv_optim_config c;
            mv_optim_config_default(&c, MV_OPTIM_SGD);
            c.momentum = 0.9f;
            CHECK_OK(mv_optim_init(&o, &c, &sp, 1));
            memcpy(o.state, b0, sizeof(float) * n);
            mv_optim_update(&o, 0.01f, 2, 0, (size_t)n);
            if (taskres)
                for (int i = 0; i < n; i++) e0[i] = Bm[i] + 0.5f * w0[i];
            float n0 = mv_dot(we0, we0, n);
            CHECK(memcmp(w0, w1, sizeof(float) * n) == 0 &&
                      memcmp(o.state, b1, sizeof(float) * n) == 0 &&
                      memcmp(we0, we1, sizeof(float) * n) == 0 && n0 == n1,
                  "row update %d (variant %d): not its kernels in turn", n, variant);
            check_close_f32("row update vs plain", w2, w1, (size_t)n, 1e-6, 1e-5);
            CHECK(fabsf(n3 - n1) <= 1e-4f * fabsf(n1) + 1e-6f, "row update norm %g vs %g", n1, n3);
            mv_optim_free(&o);
            free(w0);
        }
        free(ra), free(rev), free(C3), free(rev2);
        free(A), free(Bm), free(C1), free(C2), free(A2), free(B2);
    }
}

/* Whole-table kernels: the first non-finite feature (vector blocks of 64, the tail, over
 * threads above a million floats) and mv_mm_nt split over threads (the same bits). */
static void test_table_kernels(void)
{
    const size_t n = 3000000;
    float *x = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) x[i] = (float)(i % 1000) * 1e-3f - 0.5f;
    float *y = malloc(sizeof(float) * n);
    CHECK(mv_first_nonfinite(x, n) == n && mv_first_nonfinite_par(x, n, 2) == n,
          "finite table: no index");
    for (int t = 0; t <= 2; t++) { /* the copying scan: all of it, from odd starts too */
        memset(y, 0, sizeof(float) * n);
        CHECK(mv_copy_first_nonfinite_par(y, x, n, t) == n && memcmp(x, y, sizeof(float) * n) == 0,
              "finite table, %d threads: not copied whole", t);
        CHECK(mv_copy_first_nonfinite(y + 3, x + 5, n - 77) == n - 77 &&
                  memcmp(x + 5, y + 3, sizeof(float) * (n - 77)) == 0,
              "finite table, odd starts: not copied whole");
    }
    CHECK(mv_first_nonfinite(x, 0) == 0, "empty table");
    const size_t at[] = {0, 5, 63, 64, 65, 65535, 65536, 1000001, 2500000, n - 1};
    const float bad[] = {NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < MV_ARRAY_LEN(at); i++)
        for (size_t b = 0; b < MV_ARRAY_LEN(bad); b++) {
            float keep = x[at[i]];
            x[at[i]] = bad[b];
            for (int t = 0; t <= 2; t++) {
                CHECK(mv_first_nonfinite_par(x, n, t) == at[i], "%g at %zu, %d threads: got %zu",
                      (double)bad[b], at[i], t, mv_first_nonfinite_par(x, n, t));
                CHECK(mv_copy_first_nonfinite_par(y, x, n, t) == at[i],
                      "copying, %g at %zu, %d threads", (double)bad[b], at[i], t);
            }
            CHECK(mv_first_nonfinite(x + at[i] / 2, n - at[i] / 2) == at[i] - at[i] / 2,
                  "%g at %zu from an odd start", (double)bad[b], at[i]);
            x[at[i]] = keep;
        }
    x[2000000] = NAN, x[2999999] = INFINITY, x[1999999] = -INFINITY;
    CHECK(mv_first_nonfinite_par(x, n, 2) == 1999999, "three: the first");
    CHECK(mv_copy_first_nonfinite_par(y, x, n, 2) == 1999999, "copying, three: the first");
    x[2000000] = x[2999999] = x[1999999] = 0;
    free(y);
    /* mm_nt over threads: the one-thread bits */
    const int N = 2500, D = 512;
    struct mv_rng r;
    mv_rng_seed(&r, 9);
    fill_normal(x, (size_t)N * D, &r, 1);
    float zs[4 * 512];
    fill_normal(zs, MV_ARRAY_LEN(zs), &r, 1);
    float *C1 = malloc(sizeof(float) * N * 4), *C2 = malloc(sizeof(float) * N * 4);
    mv_mm_nt(C1, x, zs, N, 4, D);
    for (int t = 0; t <= 2; t++) {
        for (int i = 0; i < N * 4; i++) C2[i] = NAN;
        mv_mm_nt_par(C2, x, zs, N, 4, D, t);
        CHECK(memcmp(C1, C2, sizeof(float) * N * 4) == 0, "mm_nt_par, %d threads: not mm_nt", t);
    }
    free(x), free(C1), free(C2);
}

/* The step's small pieces: the cross-entropy (K = 4 has a vector path) against its double
 * sibling, and W.G from the raw dot products (mv_coldot) against a double oracle; the products'
 * logits are mv_dot's very bits however rows and columns are grouped; the prefetch cursor changes
 * no bit and advances exactly as many entries as announced. */
static void test_step_pieces(void)
{
    struct mv_rng r;
    mv_rng_seed(&r, 11);
    static const int shapes[][2] = {{32, 4}, {6, 4}, {34, 4}, {66, 4}, {5, 4}, {32, 3}, {7, 9}};
    for (size_t s = 0; s < MV_ARRAY_LEN(shapes); s++) {
        const int B = shapes[s][0], K = shapes[s][1];
        float logits[66 * 9], dl[66 * 9], dl_only[66 * 9], raw[66 * 9], wg[9];
        double acc[9];
        int64_t Y[66];
        fill_normal(logits, (size_t)B * K, &r, 8); /* softmax far from uniform */
        fill_normal(raw, (size_t)B * K, &r, 1);
        for (int b = 0; b < B; b++) Y[b] = (int64_t)mv_rng_below(&r, (uint64_t)K);
        const float gs = 1.0f / (float)B;
        double ce = mv_cross_entropy_sum(dl, logits, Y, B, K, gs), ce_ref = 0;
        double ce_only = mv_cross_entropy_sum(NULL, logits, Y, B, K, gs);
        mv_cross_entropy_grad(dl_only, logits, Y, B, K, gs);
        CHECK(memcmp(dl, dl_only, sizeof(float) * (size_t)B * K) == 0,
              "cross-entropy B %d K %d: the gradient alone differs", B, K);
        float want[66 * 9]; /* the naive sibling: everything in double */
        ce_ref = mv_cross_entropy_naive(want, logits, Y, B, K, gs);
        char name[64];
        snprintf(name, sizeof name, "cross-entropy B %d K %d", B, K);
        CHECK(fabs(ce - ce_ref) <= 1e-5 * fabs(ce_ref) && fabs(ce_only - ce_ref) <= 1e-5 * ce_ref,
              "%s: %.9g / %.9g vs %.9g", name, ce, ce_only, ce_ref);
        check_close_f32(name, dl, want, (size_t)B * K, 1e-7, 1e-5);
        double mean = mv_cross_entropy(dl_only, logits, Y, B, K);
        CHECK(mean == ce / B && memcmp(dl, dl_only, sizeof(float) * (size_t)B * K) == 0,
              "%s: the mean form is not the sum's / B", name);
        mv_coldot(wg, acc, dl, raw, B, K);
        for (int k = 0; k < K; k++) {
            double w = 0;
            for (int b = 0; b < B; b++) w += (double)dl[b * K + k] * raw[b * K + k];
            CHECK(wg[k] == (float)w, "W.G B %d K %d class %d: %.9g vs %.9g", B, K, k, wg[k], w);
        }
    }
    /* partial sums to logits (K = 4 has a vector path): the plain additions and products */
    for (int K = 3; K <= 4; K++) {
        const int B = 6, np = 3, stride = B * K + 5; /* parts padded apart */
        float parts[3 * 29], raw[6 * 4], lg[6 * 4], fac[4] = {0.5f, -3.0f, 7.25f, 1e-3f};
        fill_normal(parts, (size_t)np * stride, &r, 1);
        mv_partial_logits(raw, lg, parts, np, (size_t)stride, B, K, fac);
        int same = 1;
        for (int i = 0; i < B * K; i++) {
            float v = parts[i];
            for (int j = 1; j < np; j++) v += parts[j * stride + i];
            same &= raw[i] == v && lg[i] == v * fac[i % K];
        }
        CHECK(same, "partial logits K %d: not the plain sums and products", K);
    }
    /* the prefetch list: every line of the chosen rows, row after row */
    {
        static float base[10 * 40];
        const int idx[3] = {7, 0, 9}, lines = 5;
        const void *list[15];
        mv_line_list(list, base + 8, 40, idx, 3, lines);
        int ok = 1;
        for (int b = 0; b < 3; b++)
            for (int i = 0; i < lines; i++)
                ok &= list[b * lines + i] == (const char *)(base + 8 + idx[b] * 40) + 64 * i;
        CHECK(ok, "line list: wrong addresses");
    }
    /* logits = mv_dot bits; with a prefetch cursor the same bits, the cursor moved exactly */
    static const int prod[][3] = {{32, 4, 256}, {32, 4, 512}, {7, 9, 40}, {5, 3, 19}};
    for (size_t s = 0; s < MV_ARRAY_LEN(prod); s++) {
        const int M = prod[s][0], N = prod[s][1], L = prod[s][2];
        float *X = malloc(sizeof(float) * M * L), *W = malloc(sizeof(float) * N * L);
        float *C0 = malloc(sizeof(float) * M * N), *C1 = malloc(sizeof(float) * M * N);
        float *G0 = malloc(sizeof(float) * N * L), *G1 = malloc(sizeof(float) * N * L);
        float *D = malloc(sizeof(float) * M * N);
        const float **rows = malloc(sizeof(float *) * M);
        fill_normal(X, (size_t)M * L, &r, 1);
        fill_normal(W, (size_t)N * L, &r, 1);
        fill_normal(D, (size_t)M * N, &r, 1);
        for (int i = 0; i < M; i++) rows[i] = X + (size_t)((i * 5) % M) * L;
        long nt = mv_mm_nt_prefetches(M, N, L), tn = mv_mm_tn_prefetches(N, L, M);
        const void **list = malloc(sizeof(void *) * (size_t)(nt + tn + 1));
        for (long i = 0; i < nt + tn + 1; i++) list[i] = X;
        mv_mm_nt_rows(C0, rows, W, M, N, L, NULL);
        struct mv_prefetch pf = {list};
        mv_mm_nt_rows(C1, rows, W, M, N, L, &pf);
        int same = memcmp(C0, C1, sizeof(float) * M * N) == 0;
        for (int i = 0; i < M; i++)
            for (int k = 0; k < N; k++) same &= C0[i * N + k] == mv_dot(rows[i], W + k * L, L);
        CHECK(same, "mm_nt_rows %dx%dx%d: not mv_dot's bits with and without prefetching", M, N, L);
        const void *const *mid = pf.at;
        mv_mm_tn_rows(G0, D, rows, N, L, M, NULL);
        mv_mm_tn_rows(G1, D, rows, N, L, M, &pf);
        CHECK(memcmp(G0, G1, sizeof(float) * N * L) == 0, "mm_tn_rows %dx%dx%d: prefetch", N, L, M);
        if (mv_kernels_simd())
            CHECK(mid - list == nt && pf.at - mid == tn,
                  "prefetches %dx%dx%d: %ld + %ld issued, %ld + %ld announced", M, N, L,
                  (long)(mid - list), (long)(pf.at - mid), nt, tn);
        free(list), free(rows), free(X), free(W), free(C0), free(C1), free(G0), free(G1), free(D);
    }
}

int main(void)
{
    test_kernels();
    test_table_kernels();
    test_step_pieces();
    return check_summary();
}

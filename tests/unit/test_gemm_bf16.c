/* test_gemm_bf16.c - the bf16 linear layer (src/ops/gemm_bf16.c) against three oracles:
 * - the instruction itself: mv_bf16_from_f32 against vcvtne2ps2bf16 and mv_bf16_dot2_portable
 *   against vdpbf16ps, bit for bit, on random bit patterns and on the flush-to-zero boundary;
 * - the products: the portable path against mv_gemm_naive on the bf16-rounded operands (double
 *   accumulators; within fp32 summation error) and on the fp32 operands (within bf16's error,
 *   1e-2 of sum_k |alpha A_ik W_jk| + |beta C_ij|);
 * - properties: the AVX-512 path gives the portable path's bits, and T threads the bits of one.
 * Shapes cross the 12 x 32 tile, the 144-row and 256-deep blocks and odd K, then CLIP's.
 * Without AVX512_BF16 the comparisons with the instruction are skipped (and say so); the
 * portable path is always tested. */
#include "check.h"
#include "ops/ops.h"

#include <float.h>

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#include <immintrin.h>
#define HAVE_HW 1
#endif

static struct mv_rng rng;
static int hw; /* AVX512_BF16 present */

static float *rand_buf(size_t n, float scale)
{
    float *p = mv_malloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++) p[i] = scale * (2.0f * (float)mv_rng_uniform(&rng) - 1.0f);
    return p;
}

static int rand_int(int lo, int hi)
{
    return lo + (int)mv_rng_below(&rng, (uint64_t)(hi - lo + 1));
}

static float f32_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

#ifdef HAVE_HW
__attribute__((target("avx512f,avx512bf16"))) static void hw_convert(uint16_t *out, const float *x)
{
    // out (32), x (32)
    __m256i lo = (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x));
    __m256i hi = (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + 16));
    _mm256_storeu_si256((__m256i *)out, lo);
    _mm256_storeu_si256((__m256i *)(out + 16), hi);
}

__attribute__((target("avx512f,avx512bf16"))) static void hw_dot(float *acc, const uint32_t *a,
                                                                 const uint32_t *b)
{
    // acc, a, b (16)
    __m512 c = _mm512_loadu_ps(acc);
    c = _mm512_dpbf16_ps(c, (__m512bh)_mm512_loadu_si512(a), (__m512bh)_mm512_loadu_si512(b));
    _mm512_storeu_ps(acc, c);
}
#endif

/* A random bf16: mode 0 near 1, 1 any bits (NaN, inf, denormals), 2 pairs whose products fall
 * near FLT_MIN (2^-126 .. 2^-162), with e the other operand's biased exponent. */
static uint16_t rand_bf16(int mode, int e_other)
{
    uint32_t r = (uint32_t)mv_rng_u64(&rng);
    int e;
    if (mode == 0)
        e = 117 + (int)(r % 20);
    else if (mode == 1)
        e = (int)(r % 256);
    else
        e = MV_MAX(1, MV_MIN(254, 254 - (int)(r >> 8) % 36 - e_other));
    return (uint16_t)((r >> 31) << 15 | (uint32_t)e << 7 | ((r >> 16) & 0x7f));
}

static void test_convert(void)
{
    /* the rules, worked out by hand */
    struct {
        uint32_t in;
        uint16_t want;
    } cases[] = {
        {0x3f800000u, 0x3f80}, {0x3f808000u, 0x3f80}, /* tie, even stays */
        {0x3f818000u, 0x3f82},                        /* tie, odd rounds up */
        {0x3f808001u, 0x3f81}, {0x00000001u, 0x0000}, /* denormal to +0 */
        {0x807fffffu, 0x8000},                        /* to -0 */
        {0x00800000u, 0x0080}, {0x7f800000u, 0x7f80},
        {0xff800000u, 0xff80}, {0x7f7fffffu, 0x7f80}, /* FLT_MAX rounds to inf */
        {0x7f800001u, 0x7fc0}, {0xffa00000u, 0xffe0}, /* NaN stays NaN, made quiet */
    };
    for (size_t i = 0; i < MV_ARRAY_LEN(cases); i++) {
        uint16_t got = mv_bf16_from_f32(f32_of(cases[i].in));
        CHECK(got == cases[i].want, "bf16(0x%08x) = 0x%04x, want 0x%04x", cases[i].in, got,
              cases[i].want);
    }
#ifdef HAVE_HW
    if (!hw) return;
    int bad = 0;
    for (int it = 0; it < 20000; it++) {
        float x[32];
        uint16_t h[32];
        for (int i = 0; i < 32; i++) {
            uint32_t u = (uint32_t)mv_rng_u64(&rng);
            /* near 1 and near FLT_MAX (ties, overflow), denormals, anything */
            if (i % 4 == 1) u = (u & 0x8000ffffu) | (uint32_t)(i * 7 % 3 ? 0x3f80 : 0x7f7f) << 16;
            if (i % 8 == 2) u &= 0x807fffffu; /* denormals */
            x[i] = f32_of(u);
        }
        hw_convert(h, x);
        for (int i = 0; i < 32; i++)
            if (h[i] != mv_bf16_from_f32(x[i]) && bad++ < 3)
                fprintf(stderr, "bf16(0x%08x): vcvtneps2bf16 0x%04x, portable 0x%04x\n",
                        bits_of(x[i]), h[i], mv_bf16_from_f32(x[i]));
    }
    CHECK(bad == 0, "mv_bf16_from_f32 differs from the instruction in %d of 640000", bad);
#endif
}

/* mv_bf16_dot2_portable: by hand on the flush boundary, then against vdpbf16ps. */
static void test_dot2(void)
{
    /* acc = FLT_MIN plus a product of -2^-150: exact 2^-126 - 2^-150, below FLT_MIN after
     * 24-bit rounding: flushed (a plain fmaf gives FLT_MIN); -2^-152 rounds back to FLT_MIN */
    uint32_t p75 = (uint32_t)mv_bf16_from_f32(0x1p-75f),
             n75 = (uint32_t)mv_bf16_from_f32(-0x1p-75f);
    uint32_t p76 = (uint32_t)mv_bf16_from_f32(0x1p-76f),
             n76 = (uint32_t)mv_bf16_from_f32(-0x1p-76f);
    float r = mv_bf16_dot2_portable(FLT_MIN, p75 << 16, n75 << 16);
    CHECK(bits_of(r) == 0, "FLT_MIN - 2^-150 gave %a, want +0", r);
    r = mv_bf16_dot2_portable(FLT_MIN, p76 << 16, n76 << 16);
    CHECK(r == FLT_MIN, "FLT_MIN - 2^-152 gave %a, want FLT_MIN", r);
    r = mv_bf16_dot2_portable(-FLT_MIN, p75, p75); /* the low pair: -2^-126 + 2^-150 -> -0 */
    CHECK(bits_of(r) == 0x80000000u, "-FLT_MIN + 2^-150 gave %a, want -0", r);
    r = mv_bf16_dot2_portable(f32_of(1), p75, p75); /* a denormal accumulator reads as 0 */
    CHECK(bits_of(r) == 0, "denormal + 2^-150 gave %a, want +0", r);
    r = mv_bf16_dot2_portable(1.0f, 0x3f80u << 16 | 0x3f80u, 0x4000u << 16 | 0x4040u);
    CHECK(r == 6.0f, "1 + 1*2 + 1*3 gave %g", r);
#ifdef HAVE_HW
    if (!hw) {
        printf("gemm_bf16: this CPU has no AVX512_BF16: vdpbf16ps comparisons skipped\n");
        return;
    }
    long bad = 0, n = 0;
    for (int it = 0; it < 60000; it++) {
        int mode = it % 3;
        float acc[16], got[16];
        uint32_t va[16], vb[16];
        for (int l = 0; l < 16; l++) {
            uint16_t a0 = rand_bf16(mode, 0), a1 = rand_bf16(mode, 0);
            uint16_t b0 = rand_bf16(mode, a0 >> 7 & 0xff), b1 = rand_bf16(mode, a1 >> 7 & 0xff);
            va[l] = (uint32_t)a1 << 16 | a0;
            vb[l] = (uint32_t)b1 << 16 | b0;
            uint32_t u = (uint32_t)mv_rng_u64(&rng);
            if (mode == 0)
                acc[l] = f32_of(u & 0xc07fffffu); /* |acc| in [2, 4) or denormal */
            else if (mode == 1)
                acc[l] = f32_of(u);
            else
                acc[l] = f32_of((u & 0x807fffffu) | (u >> 29 & 3) << 23); /* near FLT_MIN */
            if (l % 5 == 0)                                               /* cancellation */
                acc[l] = -(mv_bf16_dot2_portable(0.0f, va[l], vb[l]));
        }
        memcpy(got, acc, sizeof got);
        hw_dot(got, va, vb);
        for (int l = 0; l < 16; l++, n++) {
            float want = mv_bf16_dot2_portable(acc[l], va[l], vb[l]);
            if (isnan(want) && isnan(got[l])) continue;
            if (bits_of(want) != bits_of(got[l]) && bad++ < 3)
                fprintf(stderr, "dot2(%a, 0x%08x, 0x%08x): vdpbf16ps %a, portable %a\n", acc[l],
                        va[l], vb[l], got[l], want);
        }
    }
    CHECK(bad == 0, "mv_bf16_dot2_portable differs from vdpbf16ps in %ld of %ld", bad, n);
#endif
}

static void test_weight(void)
{
    struct mv_bf16_weight w;
    CHECK(mv_bf16_weight_pack(&w, NULL, 3, 3) == MEDVLM_ERR_ARG, "NULL weight accepted");
    float x = 1.0f;
    CHECK(mv_bf16_weight_pack(&w, &x, 0, 1) == MEDVLM_ERR_ARG, "N = 0 accepted");
    CHECK(w.data == NULL, "failed pack left data");
    CHECK(mv_gemm_bf16(1, 1, &x, 1, &w, 1.0f, 0.0f, &x, 1) == -1, "empty weight multiplied");
    mv_bf16_weight_free(&w);
    mv_bf16_weight_free(NULL);
    int N = 37, K = 7;
    float *W = rand_buf((size_t)N * K, 2.0f);
    CHECK_OK(mv_bf16_weight_pack(&w, W, N, K));
    CHECK(w.N == N && w.K == K && w.K2 == 4 && w.panels == 2, "dims %d %d %d %d", w.N, w.K, w.K2,
          w.panels);
    int bad = 0;
    for (int p = 0; p < w.panels; p++)
        for (int kp = 0; kp < w.K2; kp++)
            for (int c = 0; c < 32; c++)
                for (int h = 0; h < 2; h++) {
                    int j = 32 * p + c, k = 2 * kp + h;
                    uint16_t want = j < N && k < K ? mv_bf16_from_f32(W[(size_t)j * K + k]) : 0;
                    bad += w.data[(((size_t)p * w.K2 + kp) * 32 + c) * 2 + h] != want;
                }
    CHECK(bad == 0, "packed weight: %d of %d entries off the layout", bad, 2 * 4 * 32 * 2);
    mv_bf16_weight_free(&w);
    CHECK(w.data == NULL, "free left data");
    mv_free(W);
}

/* C (rows [r0, r1)) against the two naive oracles: on the bf16-rounded operands within fp32
 * summation error, on the fp32 operands within bf16's. C0 is C before the call. */
static void check_rows(const char *name, const float *C, const float *C0, const float *A, int lda,
                       const float *W, int N, int K, float alpha, float beta, int ldc, int r0,
                       int r1)
{
    int m = r1 - r0;
    float *Ar = mv_malloc((size_t)m * K * 4), *Wr = mv_malloc((size_t)N * K * 4);
    float *R1 = mv_malloc((size_t)m * N * 4), *R2 = mv_malloc((size_t)m * N * 4);
    for (int i = 0; i < m; i++)
        for (int k = 0; k < K; k++) {
            float a = A[(size_t)(r0 + i) * lda + k];
            Ar[(size_t)i * K + k] = f32_of((uint32_t)mv_bf16_from_f32(a) << 16);
        }
    for (size_t i = 0; i < (size_t)N * K; i++)
        Wr[i] = f32_of((uint32_t)mv_bf16_from_f32(W[i]) << 16);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < N; j++)
            R1[(size_t)i * N + j] = R2[(size_t)i * N + j] =
                beta == 0.0f ? 0.0f : C0[(size_t)(r0 + i) * ldc + j];
    mv_gemm_naive(0, 1, m, N, K, alpha, Ar, K, Wr, K, beta, R1, N);
    mv_gemm_naive(0, 1, m, N, K, alpha, A + (size_t)r0 * lda, lda, W, K, beta, R2, N);
    double max1 = 0, max2 = 0; /* errors in units of the scale */
    long bad1 = 0, bad2 = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < N; j++) {
            double s = 0, sr = 0;
            for (int k = 0; k < K; k++) {
                s += fabs((double)A[(size_t)(r0 + i) * lda + k] * W[(size_t)j * K + k]);
                sr += fabs((double)Ar[(size_t)i * K + k] * Wr[(size_t)j * K + k]);
            }
            double cb = beta == 0.0f ? 0 : fabs((double)beta * C0[(size_t)(r0 + i) * ldc + j]);
            s = fabs(alpha) * s + cb + 1e-30;
            sr = fabs(alpha) * sr + cb + 1e-30;
            double c = C[(size_t)(r0 + i) * ldc + j];
            double e1 = fabs(c - R1[(size_t)i * N + j]) / sr,
                   e2 = fabs(c - R2[(size_t)i * N + j]) / s;
            if (!(e1 <= (K + 4) * 0x1p-24)) bad1++;
            if (!(e2 <= 1e-2)) bad2++;
            if (e1 > max1 || isnan(e1)) max1 = e1;
            if (e2 > max2 || isnan(e2)) max2 = e2;
        }
    CHECK(bad1 == 0,
          "%s rows %d..%d: %ld elements off the product of the rounded operands (max %.3g of "
          "the scale, allowed %.3g)",
          name, r0, r1, bad1, max1, (K + 4) * 0x1p-24);
    CHECK(bad2 == 0, "%s rows %d..%d: %ld elements off the fp32 product (max %.3g of the scale)",
          name, r0, r1, bad2, max2);
    mv_free(Ar), mv_free(Wr), mv_free(R1), mv_free(R2);
}

static int same_bits(const float *a, const float *b, int M, int N, int ldc)
{
    for (int i = 0; i < M; i++)
        if (memcmp(a + (size_t)i * ldc, b + (size_t)i * ldc, (size_t)N * 4) != 0) return 0;
    return 1;
}

/* One product: the fast path (AVX-512 where present) on all M rows at T = 1, 2, 3; the
 * portable path and the oracles on rows [r0, r1) (all of them for small shapes). */
static void run_case(int M, int N, int K, int lda, int ldc, float alpha, float beta, int r0, int r1)
{
    float *A = rand_buf((size_t)M * lda, 1.0f), *W = rand_buf((size_t)N * K, 1.0f);
    size_t nc = (size_t)M * ldc;
    float *C0 = rand_buf(nc, 1.0f), *C1 = mv_malloc(nc * 4), *C2 = mv_malloc(nc * 4);
    if (beta == 0.0f) /* C is not read: NaNs in it must not leak */
        for (size_t i = 0; i < nc; i++) C0[i] = NAN;
    struct mv_bf16_weight w;
    CHECK_OK(mv_bf16_weight_pack(&w, W, N, K));
    char name[96];
    snprintf(name, sizeof name, "gemm_bf16 %dx%dx%d a=%g b=%g", M, N, K, alpha, beta);
    if (hw) {
        memcpy(C1, C0, nc * 4);
        CHECK(mv_gemm_bf16(1, M, A, lda, &w, alpha, beta, C1, ldc) == 0, "%s: failed", name);
        for (int T = 2; T <= 3; T++) {
            memcpy(C2, C0, nc * 4);
            CHECK(mv_gemm_bf16(T, M, A, lda, &w, alpha, beta, C2, ldc) == 0, "%s: failed", name);
            CHECK(same_bits(C1, C2, M, N, ldc), "%s: %d threads differ from 1", name, T);
        }
        /* the padding columns past N keep C0's values */
        int pad_ok = 1;
        for (int i = 0; i < M; i++)
            for (int j = N; j < ldc; j++)
                pad_ok &= bits_of(C1[(size_t)i * ldc + j]) == bits_of(C0[(size_t)i * ldc + j]);
        CHECK(pad_ok, "%s: wrote past N", name);
    }
    /* the portable path on rows [r0, r1) alone (its bits do not depend on M) */
    memcpy(C2, C0, nc * 4);
    int m = r1 - r0;
    float *Cr = C2 + (size_t)r0 * ldc;
    CHECK(mv_gemm_bf16_portable(1, m, A + (size_t)r0 * lda, lda, &w, alpha, beta, Cr, ldc) == 0,
          "%s: portable failed", name);
    if (hw)
        CHECK(same_bits(C1 + (size_t)r0 * ldc, Cr, m, N, ldc),
              "%s rows %d..%d: the AVX-512 path differs from the portable one", name, r0, r1);
    if (m <= 40 && (size_t)N * K <= 200000) { /* threads on the portable path too */
        memcpy(C1, C0, nc * 4);
        mv_gemm_bf16_portable(2, m, A + (size_t)r0 * lda, lda, &w, alpha, beta,
                              C1 + (size_t)r0 * ldc, ldc);
        CHECK(same_bits(C1 + (size_t)r0 * ldc, Cr, m, N, ldc), "%s: portable, 2 threads differ",
              name);
    }
    check_rows(name, C2, C0, A, lda, W, N, K, alpha, beta, ldc, r0, r1);
    mv_bf16_weight_free(&w);
    mv_free(A), mv_free(W), mv_free(C0), mv_free(C1), mv_free(C2);
}

static void test_gemm_small(void)
{
    for (int it = 0; it < 30; it++) {
        int M = rand_int(1, 160), N = rand_int(1, 100), K = rand_int(1, 80);
        if (it < 6) M = rand_int(1, 14), N = rand_int(1, 34), K = rand_int(1, 4);
        if (it % 5 == 4) K = rand_int(250, 560); /* two or three 256-deep slices, odd or even */
        if (it % 6 == 5) M = rand_int(140, 300); /* two or three row blocks */
        if (it % 7 == 6) N = rand_int(30, 70), M = rand_int(1, 12); /* column blocks */
        int lda = K + rand_int(0, 3), ldc = N + rand_int(0, 3);
        float alpha = it % 3 ? 1.0f : 0.5f, beta = it % 4 == 0 ? 0.0f : it % 4 == 1 ? 0.75f : 1.0f;
        run_case(M, N, K, lda, ldc, alpha, beta, 0, M);
    }
}

static void test_gemm_clip(void)
{
    static const int shapes[][2] = {{768, 768}, {3072, 768}, {768, 3072}}; /* N, K */
    static const int rows[] = {50, 400};
    for (size_t s = 0; s < MV_ARRAY_LEN(shapes); s++)
        for (size_t r = 0; r < MV_ARRAY_LEN(rows); r++) {
            int M = rows[r], N = shapes[s][0], K = shapes[s][1];
            /* the oracles on the last 4 rows (the end of the last row block) */
            int r0 = hw ? M - 4 : 0, r1 = hw ? M : 4;
            if (!hw) M = 4; /* the portable path alone: these rows only */
            run_case(M, N, K, K, N, 1.0f, r ? 1.0f : 0.0f, r0, r1);
        }
}

/* The training forms: W^T packed from W itself (the input gradient's weight) is the pack of
 * the explicit transpose, entry for entry; a refill after W changed is a fresh pack; and
 * mv_linear_input_grad_bf16 (dinp = / += alpha dout W) is mv_gemm_bf16 on that pack, bit for
 * bit, and within bf16's error of the fp32 product. */
static void test_training_forms(void)
{
    const int O = 45, I = 70, R = 19; /* odd sizes: partial panels, an odd k */
    float *W = rand_buf((size_t)O * I, 1.0f), *Wt = mv_malloc((size_t)I * O * 4);
    for (int o = 0; o < O; o++)
        for (int i = 0; i < I; i++) Wt[(size_t)i * O + o] = W[(size_t)o * I + i];
    struct mv_bf16_weight a, b, c;
    CHECK_OK(mv_bf16_weight_pack_trans(&a, W, I, O));
    CHECK_OK(mv_bf16_weight_pack(&b, Wt, I, O));
    size_t bytes = (size_t)a.panels * 32 * a.K2 * 2 * 2;
    CHECK(a.N == I && a.K == O && memcmp(a.data, b.data, bytes) == 0,
          "the transposed pack differs from the pack of the transpose");
    for (size_t i = 0; i < (size_t)O * I; i += 7) W[i] *= -1.5f;
    mv_bf16_weight_refill(&a, W, 1);
    CHECK_OK(mv_bf16_weight_pack(&c, W, O, I));
    for (int o = 0; o < O; o++)
        for (int i = 0; i < I; i++) Wt[(size_t)i * O + o] = W[(size_t)o * I + i];
    struct mv_bf16_weight d;
    CHECK_OK(mv_bf16_weight_pack(&d, Wt, I, O));
    CHECK(memcmp(a.data, d.data, bytes) == 0, "a transposed refill differs from a fresh pack");
    mv_bf16_weight_free(&b);
    CHECK_OK(mv_bf16_weight_pack(&b, W, O, I));
    mv_bf16_weight_refill(&b, Wt, 1); /* W^T's transpose is W again */
    CHECK(memcmp(b.data, c.data, (size_t)c.panels * 32 * c.K2 * 4) == 0,
          "a refill differs from a fresh pack");
    float *dout = rand_buf((size_t)R * O, 1.0f), *d0 = rand_buf((size_t)R * I, 1.0f);
    for (int set = 0; set <= 1; set++) {
        float *got = mv_malloc((size_t)R * I * 4), *want = mv_malloc((size_t)R * I * 4);
        memcpy(got, d0, (size_t)R * I * 4);
        memcpy(want, d0, (size_t)R * I * 4);
        mv_linear_input_grad_bf16(got, set, dout, &a, W, 0.75f, R, I, O);
        mv_gemm_bf16_portable(1, R, dout, O, &a, 0.75f, set ? 0.0f : 1.0f, want, I);
        CHECK(memcmp(got, want, (size_t)R * I * 4) == 0,
              "input gradient (%s) differs from the portable bf16 product", set ? "=" : "+=");
        check_rows(set ? "input gradient =" : "input gradient +=", got, d0, dout, O, Wt, I, O,
                   0.75f, set ? 0.0f : 1.0f, I, 0, R);
        mv_free(got);
        mv_free(want);
    }
    mv_bf16_weight_free(&a);
    mv_bf16_weight_free(&b);
    mv_bf16_weight_free(&c);
    mv_bf16_weight_free(&d);
    mv_free(W), mv_free(Wt), mv_free(dout), mv_free(d0);
}

int main(void)
{
    mv_rng_seed(&rng, 4321);
    hw = mv_gemm_bf16_available();
    if (!hw)
        printf("gemm_bf16: this CPU has no AVX512_BF16: AVX-512 comparisons skipped, the portable "
               "path tested alone\n");
    test_convert();
    test_dot2();
    test_weight();
    test_gemm_small();
    test_gemm_clip();
    test_training_forms();
    return check_summary();
}

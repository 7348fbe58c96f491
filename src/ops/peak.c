/*
 * peak.c - how fast the CPU can multiply (what it is: core/cpu.c): its floating-point peak,
 * measured with loops that run in registers only (no loads or stores), so that a kernel's GFLOP/s
 * can be read as a fraction of what the cores can do.
 *
 * Each loop keeps NACC independent accumulators (more than an FMA unit's latency times its
 * ports: 4 cycles x 2 ports on current x86 cores) and updates each once per iteration:
 *   fp32 zmm  acc = acc * a + b, 16 lanes: 32 FLOPs per instruction (AVX-512F)
 *   fp32 ymm  the same on 8 lanes:          16 FLOPs per instruction (AVX2 + FMA)
 *   bf16 dot  vdpbf16ps, acc += a0 b0 + a1 b1 per fp32 lane: 32 bf16 pairs, 64 FLOPs per
 *             instruction (AVX512_BF16)
 * Each path is compiled for its instruction set (target attribute) and chosen at run time
 * (mv_cpu_has), as gemm_packed.c does; a path the CPU lacks measures 0. An empty
 * asm statement that claims to change the accumulators after every iteration keeps them in
 * registers and the loop in place, and the sum of the accumulators is returned.
 *
 * The figure at T threads is one OpenMP team running the loop at once; the time of a
 * repetition (~2 ms) runs from a barrier before to a barrier after, and the best of the
 * repetitions (about 0.2 s in all) counts: the machine's other tenants only ever slow a loop
 * down.
 */
#include "ops.h"

#include <math.h>
#include <omp.h>
#include <string.h>
#include <unistd.h>

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#include <immintrin.h>
#define MV_HAVE_PEAK_PATHS 1
#endif

/* ---- the loops ---- */

static const char *const kind_names[MV_PEAK_KINDS] = {"fp32_zmm", "fp32_ymm", "bf16_dot"};

const char *mv_peak_name(enum mv_peak_kind kind)
{
    return (unsigned)kind < MV_PEAK_KINDS ? kind_names[kind] : "?";
}

/* n iterations of the loop; x (near 1) is an operand the compiler cannot see through.
 * Returns the sum of the accumulators so that the work is used. */
typedef float (*peak_loop_fn)(long n, float x);

#ifdef MV_HAVE_PEAK_PATHS
#define NACC_ZMM 24 /* of 32 zmm registers: 24 accumulators + the two operands */
#define NACC_YMM 12 /* of 16 ymm registers under AVX2 */

/* X12(M) expands M(0) .. M(11), X12B(M) M(12) .. M(23); each M(i) is a statement with its own
 * semicolon, and the one after the list is an empty statement. */
#define X12(M)  M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11)
#define X12B(M) M(12) M(13) M(14) M(15) M(16) M(17) M(18) M(19) M(20) M(21) M(22) M(23)
/* Asm operand lists for the barriers (GCC allows 30 operands: 12 in-out ones per statement). */
#define OPS12(v, c)                                                                                \
    "+" c(v##0), "+" c(v##1), "+" c(v##2), "+" c(v##3), "+" c(v##4), "+" c(v##5), "+" c(v##6),     \
        "+" c(v##7), "+" c(v##8), "+" c(v##9), "+" c(v##10), "+" c(v##11)
#define OPS12B(v, c)                                                                               \
    "+" c(v##12), "+" c(v##13), "+" c(v##14), "+" c(v##15), "+" c(v##16), "+" c(v##17),            \
        "+" c(v##18), "+" c(v##19), "+" c(v##20), "+" c(v##21), "+" c(v##22), "+" c(v##23)

__attribute__((target("avx512f"))) static float loop_fp32_zmm(long n, float x)
{
    const __m512 a = _mm512_set1_ps(x), b = _mm512_set1_ps(1e-3f);
#define DECL(i) __m512 z##i = _mm512_set1_ps(1.0f + 0.01f * (i));
#define STEP(i) z##i = _mm512_fmadd_ps(z##i, a, b);
#define SUM(i)  s = _mm512_add_ps(s, z##i);
    X12(DECL) X12B(DECL);
    for (long it = 0; it < n; it++) {
        X12(STEP) X12B(STEP);
        __asm__ volatile("" : OPS12(z, "v"));
        __asm__ volatile("" : OPS12B(z, "v"));
    }
    __m512 s = _mm512_setzero_ps();
    X12(SUM) X12B(SUM);
    return _mm512_reduce_add_ps(s);
#undef DECL
#undef STEP
#undef SUM
}

__attribute__((target("avx2,fma"))) static float loop_fp32_ymm(long n, float x)
{
    const __m256 a = _mm256_set1_ps(x), b = _mm256_set1_ps(1e-3f);
#define DECL(i) __m256 y##i = _mm256_set1_ps(1.0f + 0.01f * (i));
#define STEP(i) y##i = _mm256_fmadd_ps(y##i, a, b);
#define SUM(i)  s = _mm256_add_ps(s, y##i);
    X12(DECL);
    for (long it = 0; it < n; it++) {
        X12(STEP);
        __asm__ volatile("" : OPS12(y, "x"));
    }
    __m256 s = _mm256_setzero_ps();
    X12(SUM);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
#undef DECL
#undef STEP
#undef SUM
}

__attribute__((target("avx512f,avx512bf16"))) static float loop_bf16_dot(long n, float x)
{
    /* a = bf16(x) (x near 1: its top 16 bits), b = 2^-10 = 0x3a80 in bf16 */
    unsigned xb;
    memcpy(&xb, &x, sizeof xb);
    const __m512bh a = (__m512bh)_mm512_set1_epi16((short)(xb >> 16));
    const __m512bh b = (__m512bh)_mm512_set1_epi16(0x3a80);
#define DECL(i) __m512 z##i = _mm512_set1_ps(0.01f * (i));
#define STEP(i) z##i = _mm512_dpbf16_ps(z##i, a, b);
#define SUM(i)  s = _mm512_add_ps(s, z##i);
    X12(DECL) X12B(DECL);
    for (long it = 0; it < n; it++) {
        X12(STEP) X12B(STEP);
        __asm__ volatile("" : OPS12(z, "v"));
        __asm__ volatile("" : OPS12B(z, "v"));
    }
    __m512 s = _mm512_setzero_ps();
    X12(SUM) X12B(SUM);
    return _mm512_reduce_add_ps(s);
#undef DECL
#undef STEP
#undef SUM
}
#endif

/* The loop for kind on this CPU and its FLOPs per iteration, or NULL. */
static peak_loop_fn peak_loop(enum mv_peak_kind kind, double *flops_per_iter)
{
#ifdef MV_HAVE_PEAK_PATHS
    switch (kind) {
    case MV_PEAK_FP32_ZMM:
        if (!mv_cpu_has(MV_CPU_BIT(MV_CPU_AVX512F))) return NULL;
        *flops_per_iter = NACC_ZMM * 32.0;
        return loop_fp32_zmm;
    case MV_PEAK_FP32_YMM:
        if (!mv_cpu_has(MV_CPU_BIT(MV_CPU_AVX2) | MV_CPU_BIT(MV_CPU_FMA))) return NULL;
        *flops_per_iter = NACC_YMM * 16.0;
        return loop_fp32_ymm;
    case MV_PEAK_BF16_DOT:
        if (!mv_cpu_has(MV_CPU_BIT(MV_CPU_AVX512F) | MV_CPU_BIT(MV_CPU_AVX512_BF16))) return NULL;
        *flops_per_iter = NACC_ZMM * 64.0;
        return loop_bf16_dot;
    default:
        return NULL;
    }
#else
    (void)kind;
    (void)flops_per_iter;
    return NULL;
#endif
}

int mv_peak_available(enum mv_peak_kind kind)
{
    double f;
    return peak_loop(kind, &f) != NULL;
}

double mv_peak_gflops(enum mv_peak_kind kind, int threads)
{
    double flops_per_iter = 0;
    peak_loop_fn loop = peak_loop(kind, &flops_per_iter);
    if (!loop || threads < 1) return 0;
    volatile float keep = 0.999f; /* the operand, unknown to the compiler */
    float x = keep, sum = 0;

    /* Calibrate on this thread: double n until one run takes 2 ms (this also wakes the wide
     * units up), then repeat for about 0.2 s in all. Short runs give the best of them a
     * chance to fall between the time slices of other processes on a shared machine. */
    long n = 1024;
    double t = 0;
    for (;;) {
        double t0 = mv_now();
        sum += loop(n, x);
        t = mv_now() - t0;
        if (t >= 0.002 || n >= (1L << 40)) break;
        n *= 2;
    }
    int reps = (int)(0.2 / MV_MAX(t, 1e-6));
    reps = MV_MAX(3, MV_MIN(reps, 200));

    double best = INFINITY;
    int team = 1;
#pragma omp parallel num_threads(threads) reduction(+ : sum)
    {
        const int me = omp_get_thread_num();
        if (me == 0) team = omp_get_num_threads();
        double t0 = 0;
        for (int r = 0; r < reps; r++) {
#pragma omp barrier
            if (me == 0) t0 = mv_now();
            sum += loop(n, x);
#pragma omp barrier
            if (me == 0) best = MV_MIN(best, mv_now() - t0);
        }
    }
    keep = sum;
    if (!(best > 0)) return 0;
    return (double)team * (double)n * flops_per_iter / best * 1e-9;
}

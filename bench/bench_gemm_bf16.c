/*
 * bench_gemm_bf16 [REPS] - the bf16 linear layer (mv_gemm_bf16, vdpbf16ps) against the fp32
 * packed GEMM (mv_gemm_packed_team, A W^T) at ViT-B/32's shapes: M = 50, 400, 1600 rows
 * (1, 8, 32 images of 50 tokens) x (N, K) = (768, 768) q/k/v/o, (3072, 768) fc1, (768, 3072)
 * fc2, on 1 and 2 threads. Each figure is the median of REPS (default 5) timed calls after one
 * warm-up call; GFLOP/s counts 2 M N K. The weight's one-time conversion is timed apart. Also
 * prints the CPU and its register-only peaks (fp32 FMA on zmm, bf16 dot) for scale.
 */
#include "core/core.h"
#include "ops/ops.h"

#include <stdio.h>
#include <stdlib.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    if (reps < 1 || reps > 100) {
        fprintf(stderr, "usage: bench_gemm_bf16 [REPS (1..100, default 5)]\n");
        return 2;
    }
    struct mv_cpu_info ci;
    mv_cpu_info(&ci);
    printf("cpu: %s (family %d model %d), %d CPUs, avx512_bf16 %s, amx_bf16 %s\n", ci.model_name,
           ci.family, ci.model, ci.cpus_online,
           ci.flags & (1u << MV_CPU_AVX512_BF16) ? "yes" : "no",
           ci.flags & (1u << MV_CPU_AMX_BF16) ? "yes" : "no");
    if (!mv_gemm_bf16_available())
        printf("no AVX512_BF16: the bf16 figures are the portable C path (an oracle, slow)\n");
    for (int T = 1; T <= 2; T++)
        printf("peak T=%d: fp32_zmm %.1f GFLOP/s, bf16_dot %.1f GFLOP/s\n", T,
               mv_peak_gflops(MV_PEAK_FP32_ZMM, T), mv_peak_gflops(MV_PEAK_BF16_DOT, T));

    static const int rows[] = {50, 400, 1600};
    static const int shapes[][2] = {{768, 768}, {3072, 768}, {768, 3072}}; /* N, K */
    struct mv_rng rng;
    mv_rng_seed(&rng, 7);
    printf("%5s %5s %5s %2s %10s %10s %8s  (median of %d)\n", "M", "N", "K", "T", "bf16", "fp32",
           "bf16/fp32", reps);
    for (size_t s = 0; s < MV_ARRAY_LEN(shapes); s++) {
        int N = shapes[s][0], K = shapes[s][1], Mmax = rows[MV_ARRAY_LEN(rows) - 1];
        float *W = mv_malloc((size_t)N * K * sizeof(float));
        float *A = mv_malloc((size_t)Mmax * K * sizeof(float));
        float *C = mv_malloc((size_t)Mmax * N * sizeof(float));
        if (!W || !A || !C) return 1;
        for (size_t i = 0; i < (size_t)N * K; i++) W[i] = 0.05f * mv_rng_normal(&rng);
        for (size_t i = 0; i < (size_t)Mmax * K; i++) A[i] = mv_rng_normal(&rng);
        struct mv_bf16_weight w;
        double t0 = mv_now();
        if (mv_bf16_weight_pack(&w, W, N, K) != MEDVLM_OK) return 1;
        printf("weight %dx%d: converted once in %.2f ms, %.2f MB bf16 (fp32 %.2f MB)\n", N, K,
               (mv_now() - t0) * 1e3, (double)w.panels * 32 * w.K2 * 4 / 1e6,
               (double)N * K * 4 / 1e6);
        for (size_t r = 0; r < MV_ARRAY_LEN(rows); r++)
            for (int T = 1; T <= 2; T++) {
                int M = rows[r];
                double tb[100], tf[100], flops = 2.0 * M * N * K;
                for (int i = -1; i < reps; i++) { /* i = -1: warm-up */
                    double a = mv_now();
                    if (mv_gemm_bf16(T, M, A, K, &w, 1.0f, 0.0f, C, N) != 0) return 1;
                    double b = mv_now();
                    if (mv_gemm_packed_team(0, T, 0, 1, M, N, K, 1.0f, A, K, W, K, 0.0f, C, N, NULL,
                                            1.0f) != 0)
                        return 1;
                    double c = mv_now();
                    if (i >= 0) tb[i] = b - a, tf[i] = c - b;
                }
                qsort(tb, (size_t)reps, sizeof(double), cmp_double);
                qsort(tf, (size_t)reps, sizeof(double), cmp_double);
                double gb = flops / tb[reps / 2] / 1e9, gf = flops / tf[reps / 2] / 1e9;
                printf("%5d %5d %5d %2d %10.1f %10.1f %8.2f\n", M, N, K, T, gb, gf, gb / gf);
                fflush(stdout);
            }
        mv_bf16_weight_free(&w);
        mv_free(W), mv_free(A), mv_free(C);
    }
    return 0;
}

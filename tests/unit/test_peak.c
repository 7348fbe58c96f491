/* test_peak.c - the CPU's description and the peak loops: the description is filled in and
 * consistent, each loop is available exactly where the CPU has its instructions, runs (a
 * positive rate at 1 and 2 threads) or measures 0 where it is missing, and bad arguments
 * measure 0 instead of crashing. One short measurement per kind (~0.2 s each). */
#include "check.h"
#include "ops/ops.h"

static int has(const struct mv_cpu_info *ci, enum mv_cpu_flag f)
{
    return (ci->flags >> f) & 1u;
}

static void test_cpu_info(struct mv_cpu_info *ci)
{
    memset(ci, 0x5a, sizeof *ci);
    mv_cpu_info(ci);
    CHECK(memchr(ci->vendor, 0, sizeof ci->vendor) && ci->vendor[0], "vendor not a string");
    CHECK(memchr(ci->model_name, 0, sizeof ci->model_name) && ci->model_name[0],
          "model name not a string");
    CHECK(ci->model_name[0] != ' ', "model name '%s' not trimmed", ci->model_name);
    CHECK(ci->cpus_online >= 1, "%d CPUs online", ci->cpus_online);
    CHECK(ci->flags < (1u << MV_CPU_FLAG_COUNT), "flags %#x: unknown bits", ci->flags);
#if defined(__x86_64__)
    CHECK(strcmp(ci->vendor, "unknown") != 0, "x86 CPU with no CPUID vendor");
    CHECK(ci->family >= 3 && ci->model >= 0 && ci->stepping >= 0, "family %d model %d stepping %d",
          ci->family, ci->model, ci->stepping);
#endif
    CHECK(!has(ci, MV_CPU_AVX512_BF16) || has(ci, MV_CPU_AVX512F), "avx512_bf16 without avx512f");
    static const char *names[] = {"avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16"};
    for (int f = 0; f < MV_CPU_FLAG_COUNT; f++)
        CHECK(!strcmp(mv_cpu_flag_name((enum mv_cpu_flag)f), names[f]), "flag %d named %s", f,
              mv_cpu_flag_name((enum mv_cpu_flag)f));
    CHECK(!strcmp(mv_cpu_flag_name(MV_CPU_FLAG_COUNT), "?"), "out-of-range flag name");
}

static void test_peak(const struct mv_cpu_info *ci)
{
    static const char *names[] = {"fp32_zmm", "fp32_ymm", "bf16_dot"};
    int want[MV_PEAK_KINDS] = {
        has(ci, MV_CPU_AVX512F),
        has(ci, MV_CPU_AVX2) && has(ci, MV_CPU_FMA),
        has(ci, MV_CPU_AVX512F) && has(ci, MV_CPU_AVX512_BF16),
    };
    for (int k = 0; k < MV_PEAK_KINDS; k++) {
        enum mv_peak_kind kind = (enum mv_peak_kind)k;
        CHECK(!strcmp(mv_peak_name(kind), names[k]), "kind %d named %s", k, mv_peak_name(kind));
        CHECK(mv_peak_available(kind) == want[k], "%s: available %d, the flags say %d", names[k],
              mv_peak_available(kind), want[k]);
        CHECK(mv_peak_gflops(kind, 0) == 0.0, "%s at 0 threads", names[k]);
        double g1 = mv_peak_gflops(kind, k == MV_PEAK_FP32_YMM ? 2 : 1);
        if (want[k])
            CHECK(g1 > 0 && isfinite(g1), "%s: %g GFLOP/s", names[k], g1);
        else
            CHECK(g1 == 0.0, "%s: %g GFLOP/s on a CPU without it", names[k], g1);
        printf("%s %s %.1f GFLOP/s\n", names[k], k == MV_PEAK_FP32_YMM ? "2 threads" : "1 thread",
               g1);
    }
    CHECK(mv_peak_available(MV_PEAK_KINDS) == 0, "out-of-range kind available");
    CHECK(mv_peak_gflops(MV_PEAK_KINDS, 1) == 0.0, "out-of-range kind measured");
    CHECK(!strcmp(mv_peak_name(MV_PEAK_KINDS), "?"), "out-of-range kind name");
}

int main(void)
{
    struct mv_cpu_info ci;
    test_cpu_info(&ci);
    printf("cpu %s (%s, family %d model %d), flags %#x\n", ci.model_name, ci.vendor, ci.family,
           ci.model, ci.flags);
    test_peak(&ci);
    return check_summary();
}

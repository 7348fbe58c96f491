/*
 * cpu.c - what the CPU is (CPUID's vendor, brand string, family and model) and which of the
 * instruction sets that medvlm's kernels are written for it runs. The one place that asks the
 * CPU: every kernel with a vector path (ops/, optim/) calls mv_cpu_has, so that the choice of
 * path is made the same way everywhere and a test can see what ran.
 */
#include "core.h"

#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define MV_HAVE_CPUID 1
#endif
/* The kernels' vector paths are built with GCC's target attributes on x86-64 only. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define MV_HAVE_CPU_FLAGS 1
#endif

static const char *const flag_names[MV_CPU_FLAG_COUNT] = {"avx2", "fma", "avx512f", "avx512_bf16",
                                                          "amx_bf16"};

const char *mv_cpu_flag_name(enum mv_cpu_flag f)
{
    return (unsigned)f < MV_CPU_FLAG_COUNT ? flag_names[f] : "?";
}

static unsigned detect_flags(void)
{
    unsigned f = 0;
#ifdef MV_HAVE_CPU_FLAGS
    __builtin_cpu_init(); /* these also check that the OS saves the registers (XCR0) */
    if (__builtin_cpu_supports("avx2")) f |= MV_CPU_BIT(MV_CPU_AVX2);
    if (__builtin_cpu_supports("fma")) f |= MV_CPU_BIT(MV_CPU_FMA);
    if (__builtin_cpu_supports("avx512f")) f |= MV_CPU_BIT(MV_CPU_AVX512F);
    if (__builtin_cpu_supports("avx512bf16")) f |= MV_CPU_BIT(MV_CPU_AVX512_BF16);
    if (__builtin_cpu_supports("amx-bf16")) f |= MV_CPU_BIT(MV_CPU_AMX_BF16);
#endif
    return f;
}

/* Detected on first use. Threads that race here compute the same value, and an int is read and
 * written whole, so no lock is needed; the high bit marks it known. */
static volatile unsigned known;

unsigned mv_cpu_flags(void)
{
    unsigned k = known;
    if (!(k & 0x80000000u)) {
        k = detect_flags() | 0x80000000u;
        known = k;
    }
    return k & ~0x80000000u;
}

int mv_cpu_has(unsigned mask)
{
    return (mv_cpu_flags() & mask) == mask;
}

void mv_cpu_info(struct mv_cpu_info *ci)
{
    memset(ci, 0, sizeof *ci);
    strcpy(ci->vendor, "unknown");
    strcpy(ci->model_name, "unknown");
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    ci->cpus_online = online > 0 && online < (1L << 30) ? (int)online : 0;
    ci->flags = mv_cpu_flags();
#ifdef MV_HAVE_CPUID
    unsigned a, b, c, d, max_ext;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return;
    memcpy(ci->vendor, &b, 4); /* the vendor string is EBX, EDX, ECX */
    memcpy(ci->vendor + 4, &d, 4);
    memcpy(ci->vendor + 8, &c, 4);
    ci->vendor[12] = 0;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        int family = (a >> 8) & 0xf, model = (a >> 4) & 0xf;
        if (family == 0xf) family += (a >> 20) & 0xff;
        if (family == 0x6 || family >= 0xf) model += ((a >> 16) & 0xf) << 4;
        ci->family = family;
        ci->model = model;
        ci->stepping = a & 0xf;
    }
    max_ext = __get_cpuid_max(0x80000000u, NULL);
    if (max_ext >= 0x80000004u) { /* the brand string, 48 bytes in three leaves */
        unsigned r[12];
        for (unsigned i = 0; i < 3; i++)
            __get_cpuid(0x80000002u + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
        char s[49];
        memcpy(s, r, 48);
        s[48] = 0;
        const char *p = s;
        while (*p == ' ') p++;
        size_t n = strlen(p);
        while (n && p[n - 1] == ' ') n--;
        if (n) {
            memcpy(ci->model_name, p, n);
            ci->model_name[n] = 0;
        }
    }
#endif
}

/*
 * core.h - internal foundation shared by every module: errors, allocation, checked size
 * arithmetic, arena, RNG, logging, timing. Nothing here knows about models.
 */
#ifndef MEDVLM_CORE_H
#define MEDVLM_CORE_H

#include "medvlm.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- errors: set the thread-local message and return the status in one expression ---- */

#if defined(__GNUC__)
#define MV_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define MV_PRINTF(a, b)
#endif

/* Records "fmt..." as medvlm_last_error() and returns st. */
enum medvlm_status mv_err(enum medvlm_status st, const char *fmt, ...) MV_PRINTF(2, 3);
/* Prepends "prefix: " to the current message (adds context on the way out) and returns st. */
enum medvlm_status mv_err_ctx(enum medvlm_status st, const char *fmt, ...) MV_PRINTF(2, 3);
void mv_err_clear(void);

/* ---- allocation: every heap byte goes through these (one place to count or fail) ---- */

void *mv_malloc(size_t n);            /* NULL + error message on failure; n == 0 -> 1 byte */
void *mv_calloc(size_t n, size_t sz); /* overflow-checked */
void *mv_realloc(void *p, size_t n);
void *mv_aligned(size_t n);       /* 64-byte aligned, release with mv_free */
void *mv_aligned_zeros(size_t n); /* the same, zeroed */
/* 2 MB aligned and rounded up to 2 MB, asking the kernel for huge pages where it has them (so a
 * large array read in random order costs fewer TLB misses); release with mv_free */
void *mv_aligned_large(size_t n);
char *mv_strdup(const char *s);
char *mv_strndup(const char *s, size_t n);
void mv_free(void *p);
char *mv_asprintf(const char *fmt, ...) MV_PRINTF(1, 2);
/* How many allocations the functions above have made in this process. */
unsigned long mv_alloc_count(void);

/* ---- checked size arithmetic: false on overflow ---- */

static inline bool mv_mul_ok(size_t a, size_t b, size_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool mv_add_ok(size_t a, size_t b, size_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}
/* Product of n int64 dims, each >= 0; false on negative dim or overflow. */
bool mv_numel(const int64_t *shape, int ndim, size_t *out);

/* ---- carving views out of one buffer: a first pass with base NULL counts the floats
 * (c.used), the second, over a buffer of that size, hands out the views. Each view starts
 * on a 64-byte boundary; ok turns false on overflow. ---- */

struct mv_carver {
    float *base;
    size_t used; /* floats */
    bool ok;
};

static inline float *mv_carve(struct mv_carver *c, size_t a, size_t b)
{
    size_t n, padded;
    if (!c->ok || !mv_mul_ok(a, b, &n) || !mv_add_ok(n, 15, &padded)) {
        c->ok = false;
        return NULL;
    }
    float *p = c->base ? c->base + c->used : NULL;
    if (!mv_add_ok(c->used, padded & ~(size_t)15, &c->used)) c->ok = false;
    return p;
}

/* ---- arena: bump allocator for many small, same-lifetime pieces ---- */

struct mv_arena {
    struct mv_arena_block *head;
    size_t block_size;
};
void mv_arena_init(struct mv_arena *a, size_t block_size);
void *mv_arena_alloc(struct mv_arena *a, size_t n); /* 16-byte aligned; NULL on failure */
char *mv_arena_strdup(struct mv_arena *a, const char *s);
char *mv_arena_strndup(struct mv_arena *a, const char *s, size_t n); /* n bytes + NUL */
void mv_arena_free(struct mv_arena *a);

/* ---- RNG: xoshiro256** seeded by splitmix64; the same stream on every platform ---- */

struct mv_rng {
    uint64_t s[4];
};
void mv_rng_seed(struct mv_rng *r, uint64_t seed);
uint64_t mv_rng_u64(struct mv_rng *r);
double mv_rng_uniform(struct mv_rng *r);              /* [0, 1) with 53 bits */
float mv_rng_normal(struct mv_rng *r);                /* standard normal (Box-Muller) */
uint64_t mv_rng_below(struct mv_rng *r, uint64_t n);  /* uniform in [0, n), unbiased */
void mv_rng_shuffle(struct mv_rng *r, int *a, int n); /* Fisher-Yates from the last element */
/* The same shuffle in parts: up to `count` of its swaps from index i (n - 1 to start) down;
 * returns the index to resume from, 0 once done. */
int mv_rng_shuffle_part(struct mv_rng *r, int *a, int i, int count);

/* ---- logging ---- */

void mv_log(enum medvlm_log_level level, const char *fmt, ...) MV_PRINTF(2, 3);

/* ---- files ---- */

/* The readers below refuse anything but a regular file before opening it, so a FIFO (which
 * would block open() forever), a device or a folder is named for what it is. */
/* Read a whole file (NUL-terminated, *len excludes the NUL); error names the path. */
enum medvlm_status mv_read_file(const char *path, char **data, size_t *len);
/* Write bytes atomically: PATH.tmp.<pid>, fsync, rename, fsync of the folder. */
enum medvlm_status mv_write_file_atomic(const char *path, const void *data, size_t len);
/* Map a whole regular file read-only. An empty file gives *map = NULL, *size = 0 (callers say
 * what they expected); release with munmap(*map, *size). Errors name the path. */
enum medvlm_status mv_map_file(const char *path, void **map, size_t *size);
/* Join dir and name with one '/'; NULL on allocation failure. */
char *mv_path_join(const char *dir, const char *name);
bool mv_is_dir(const char *path);
bool mv_is_file(const char *path);     /* a regular file (after following links) */
bool mv_path_exists(const char *path); /* anything at all: file, folder, FIFO, device */
/* What path is when it is not a regular file, for messages: "does not exist", "is a directory",
 * "is a FIFO", "is a device", "is a socket"; NULL for a regular file (or when stat fails for
 * another reason, which opening will then report). */
const char *mv_path_kind(const char *path);

/* ---- UTF-8 ---- */

/* The offset of the first byte of s[0..n) that does not start a valid UTF-8 sequence (strict:
 * no overlong forms, surrogates or code points above U+10FFFF), or n when all is valid. */
size_t mv_utf8_check(const char *s, size_t n);
/* s for a message: valid UTF-8 kept, invalid and control bytes as \xNN, cut to fit cap;
 * returns buf. */
const char *mv_printable(char *buf, size_t cap, const char *s);

/* ---- numbers ---- */

/* The index of the first of x[0..n) that is NaN or +-inf, or n (finite.c; a portable scan at
 * about memory speed for io and model, which sit below src/ops). */
size_t mv_find_nonfinite(const float *x, size_t n);

/* ---- hashing ---- */

/* A 64-bit hash of n bytes (eight xxHash64 lanes, see hash.c): memory speed, the same value on
 * every machine; for fingerprints, not for security. */
uint64_t mv_hash64(const void *data, size_t n, uint64_t seed);

/* ---- time ---- */

double mv_now(void); /* monotonic seconds */

/* ---- cpu.c: the CPU, and the instruction-set features that decide which kernels run ---- */

/* The features, as /proc/cpuinfo names them. Every kernel with a vector path asks here (once
 * per call is cheap: the answer is detected on first use and kept). */
enum mv_cpu_flag {
    MV_CPU_AVX2,
    MV_CPU_FMA,
    MV_CPU_AVX512F,
    MV_CPU_AVX512_BF16,
    MV_CPU_AMX_BF16,
    MV_CPU_FLAG_COUNT
};
/* Bit (1u << enum mv_cpu_flag) set where the CPU has the feature and the OS saves its registers
 * (XCR0); 0 on other architectures and compilers. */
unsigned mv_cpu_flags(void);
/* 1 when every feature of `mask` (bits of enum mv_cpu_flag) is there: mv_cpu_has(MV_CPU_BIT(
 * MV_CPU_AVX2) | MV_CPU_BIT(MV_CPU_FMA)). */
#define MV_CPU_BIT(f) (1u << (f))
int mv_cpu_has(unsigned mask);
const char *mv_cpu_flag_name(enum mv_cpu_flag f); /* "avx512_bf16" */
struct mv_cpu_info {
    char vendor[13];     /* CPUID's vendor string ("GenuineIntel", "AuthenticAMD"), or "unknown" */
    char model_name[49]; /* its brand string ("Intel(R) Xeon(R) Platinum 8480+"), or "unknown" */
    int family, model, stepping; /* CPUID's display family and model (0 where unknown) */
    int cpus_online;             /* logical CPUs online (0 where unknown) */
    unsigned flags;              /* mv_cpu_flags() */
};
void mv_cpu_info(struct mv_cpu_info *ci);

#define MV_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MV_MIN(a, b)    ((a) < (b) ? (a) : (b))
#define MV_MAX(a, b)    ((a) > (b) ? (a) : (b))

#endif

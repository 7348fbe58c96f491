/* alloc.c - the one place heap memory comes from, and the arena built on it. */
#include "core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __linux__
#include <sys/mman.h>
#endif

/* Allocations made so far (tests check that a training step or a batch makes none). */
static _Atomic unsigned long alloc_count;

unsigned long mv_alloc_count(void)
{
    return alloc_count;
}

void *mv_malloc(size_t n)
{
    alloc_count++;
    void *p = malloc(n ? n : 1);
    if (!p) mv_err(MEDVLM_ERR_NOMEM, "out of memory allocating %zu bytes", n);
    return p;
}

void *mv_calloc(size_t n, size_t sz)
{
    alloc_count++;
    size_t total;
    if (!mv_mul_ok(n, sz, &total)) {
        mv_err(MEDVLM_ERR_OVERFLOW, "allocation size %zu x %zu overflows", n, sz);
        return NULL;
    }
    void *p = calloc(total ? total : 1, 1);
    if (!p) mv_err(MEDVLM_ERR_NOMEM, "out of memory allocating %zu bytes", total);
    return p;
}

void *mv_realloc(void *p, size_t n)
{
    alloc_count++;
    void *q = realloc(p, n ? n : 1);
    if (!q) mv_err(MEDVLM_ERR_NOMEM, "out of memory reallocating to %zu bytes", n);
    return q;
}

void *mv_aligned(size_t n)
{
    alloc_count++;
    size_t rounded;
    if (!mv_add_ok(n, 63, &rounded)) {
        mv_err(MEDVLM_ERR_OVERFLOW, "aligned allocation of %zu bytes overflows", n);
        return NULL;
    }
    rounded &= ~(size_t)63;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!p) mv_err(MEDVLM_ERR_NOMEM, "out of memory allocating %zu bytes", n);
    return p;
}

void *mv_aligned_large(size_t n)
{
    alloc_count++;
    const size_t huge = (size_t)2 << 20;
    size_t rounded;
    if (!mv_add_ok(n, huge - 1, &rounded)) {
        mv_err(MEDVLM_ERR_OVERFLOW, "aligned allocation of %zu bytes overflows", n);
        return NULL;
    }
    rounded = rounded / huge * huge;
    void *p = aligned_alloc(huge, rounded ? rounded : huge);
    if (!p) {
        mv_err(MEDVLM_ERR_NOMEM, "out of memory allocating %zu bytes", n);
        return NULL;
    }
#ifdef MADV_HUGEPAGE
    (void)madvise(p, rounded, MADV_HUGEPAGE); /* a hint: without it, ordinary pages */
#endif
    return p;
}

void *mv_aligned_zeros(size_t n)
{
    void *p = mv_aligned(n);
    if (p) memset(p, 0, n);
    return p;
}

char *mv_strdup(const char *s)
{
    return mv_strndup(s, strlen(s));
}

char *mv_strndup(const char *s, size_t n)
{
    char *p = mv_malloc(n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void mv_free(void *p)
{
    free(p);
}

void medvlm_free(void *p)
{
    free(p);
}

char *mv_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return NULL;
    char *p = mv_malloc((size_t)n + 1);
    if (!p) return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

bool mv_numel(const int64_t *shape, int ndim, size_t *out)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (uint64_t)shape[i] > SIZE_MAX) return false;
        if (!mv_mul_ok(n, (size_t)shape[i], &n)) return false;
    }
    *out = n;
    return true;
}

/* ---- arena ---- */

struct mv_arena_block {
    struct mv_arena_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

void mv_arena_init(struct mv_arena *a, size_t block_size)
{
    a->head = NULL;
    a->block_size = block_size ? block_size : 64 * 1024;
}

void *mv_arena_alloc(struct mv_arena *a, size_t n)
{
    size_t need;
    if (!mv_add_ok(n, 15, &need)) {
        mv_err(MEDVLM_ERR_OVERFLOW, "arena allocation of %zu bytes overflows", n);
        return NULL;
    }
    need &= ~(size_t)15;
    struct mv_arena_block *b = a->head;
    if (!b || b->cap - b->used < need) {
        size_t cap = need > a->block_size ? need : a->block_size, total;
        if (!mv_add_ok(cap, sizeof *b, &total)) {
            mv_err(MEDVLM_ERR_OVERFLOW, "arena block of %zu bytes overflows", cap);
            return NULL;
        }
        b = mv_malloc(total);
        if (!b) return NULL;
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += need;
    return p;
}

char *mv_arena_strndup(struct mv_arena *a, const char *s, size_t n)
{
    char *p = mv_arena_alloc(a, n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *mv_arena_strdup(struct mv_arena *a, const char *s)
{
    return mv_arena_strndup(a, s, strlen(s));
}

void mv_arena_free(struct mv_arena *a)
{
    struct mv_arena_block *b = a->head;
    while (b) {
        struct mv_arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
}

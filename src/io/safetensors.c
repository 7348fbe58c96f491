/*
 * safetensors.c - read (mmap, validated, zero-copy for F32) and write (atomic) safetensors.
 *
 * File layout: u64 little-endian N, N bytes of JSON header, then the data region. Every
 * number in the header is untrusted: it is range- and overflow-checked before use.
 */
#define _POSIX_C_SOURCE 200809L
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct medvlm_st {
    char *path;
    void *map; /* whole file, read-only; NULL when parsing a caller's buffer */
    size_t map_size;
    int count;
    struct medvlm_tensor_info *t;
    cJSON *meta; /* the "__metadata__" object, or NULL */
    struct mv_arena names;
    void **owned; /* buffers some tensors point into (pytorch_model.bin copies), or NULL */
    int n_owned;
};

static const struct {
    const char *name;
    size_t size;
} dtypes[MEDVLM_DTYPE_COUNT] = {
    [MEDVLM_DTYPE_F32] = {"F32", 4},   [MEDVLM_DTYPE_F16] = {"F16", 2},
    [MEDVLM_DTYPE_BF16] = {"BF16", 2}, [MEDVLM_DTYPE_F64] = {"F64", 8},
    [MEDVLM_DTYPE_I64] = {"I64", 8},   [MEDVLM_DTYPE_I32] = {"I32", 4},
    [MEDVLM_DTYPE_I16] = {"I16", 2},   [MEDVLM_DTYPE_I8] = {"I8", 1},
    [MEDVLM_DTYPE_U8] = {"U8", 1},     [MEDVLM_DTYPE_BOOL] = {"BOOL", 1},
};

const char *medvlm_dtype_name(enum medvlm_dtype dt)
{
    return (unsigned)dt < MEDVLM_DTYPE_COUNT ? dtypes[dt].name : "?";
}

size_t medvlm_dtype_size(enum medvlm_dtype dt)
{
    return (unsigned)dt < MEDVLM_DTYPE_COUNT ? dtypes[dt].size : 0;
}

static int dtype_from_name(const char *s)
{
    for (int i = 0; i < MEDVLM_DTYPE_COUNT; i++)
        if (strcmp(s, dtypes[i].name) == 0) return i;
    return -1;
}

float mv_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            man &= 0x3ff;
            bits = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float mv_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* A JSON number that is an exact non-negative integer below 2^53. */
static bool json_uint(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || floor(d) != d) return false;
    *out = (uint64_t)d;
    return true;
}

static int cmp_begin(const void *a, const void *b)
{
    const struct medvlm_tensor_info *x = *(const struct medvlm_tensor_info *const *)a;
    const struct medvlm_tensor_info *y = *(const struct medvlm_tensor_info *const *)b;
    uintptr_t px = (uintptr_t)x->data, py = (uintptr_t)y->data;
    return px < py ? -1 : px > py;
}

enum medvlm_status mv_st_parse(const char *path, const void *buf, size_t size,
                               struct medvlm_st **out)
{
    enum medvlm_status st = MEDVLM_OK;
    cJSON *root = NULL;
    const struct medvlm_tensor_info **order = NULL;
    *out = NULL;
    struct medvlm_st *f = mv_calloc(1, sizeof *f);
    if (!f) return MEDVLM_ERR_NOMEM;
    mv_arena_init(&f->names, 16 * 1024);
    f->path = mv_strdup(path);
    if (!f->path) {
        st = MEDVLM_ERR_NOMEM;
        goto fail;
    }
    if (size < 8) {
        st = mv_err(MEDVLM_ERR_FORMAT,
                    "%s: file is %zu bytes, too short for a safetensors header (need at least 8)",
                    path, size);
        goto fail;
    }
    const unsigned char *b = buf;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | b[i];
    if (hlen > size - 8) {
        st = mv_err(MEDVLM_ERR_FORMAT,
                    "%s: header length %llu is larger than the file (%zu bytes): truncated or "
                    "not a safetensors file",
                    path, (unsigned long long)hlen, size);
        goto fail;
    }
    const char *hdr = (const char *)b + 8;
    size_t bad = mv_utf8_check(hdr, (size_t)hlen); /* the format's JSON is UTF-8 */
    if (bad < (size_t)hlen) {
        st = mv_err(MEDVLM_ERR_FORMAT,
                    "%s: safetensors header is not valid UTF-8 (byte 0x%02X at file offset %zu)",
                    path, (unsigned char)hdr[bad], bad + 8);
        goto fail;
    }
    root = cJSON_ParseWithLength(hdr, (size_t)hlen);
    if (!root) {
        const char *e = cJSON_GetErrorPtr();
        long off = e && e >= hdr && e <= hdr + hlen ? (long)(e - hdr) : -1;
        st = mv_err(MEDVLM_ERR_FORMAT, "%s: safetensors header is not valid JSON (near byte %ld)",
                    path, off + 8);
        goto fail;
    }
    if (!cJSON_IsObject(root)) {
        st = mv_err(MEDVLM_ERR_FORMAT, "%s: safetensors header must be a JSON object", path);
        goto fail;
    }
    const unsigned char *data = b + 8 + hlen;
    size_t data_size = size - 8 - (size_t)hlen;
    int n = 0;
    for (const cJSON *it = root->child; it; it = it->next) n++;
    f->t = mv_calloc((size_t)n + 1, sizeof *f->t);
    order = mv_calloc((size_t)n + 1, sizeof *order);
    if (!f->t || !order) {
        st = MEDVLM_ERR_NOMEM;
        goto fail;
    }
    for (cJSON *it = root->child; it; it = it->next) {
        const char *name = it->string ? it->string : "";
        if (strcmp(name, "__metadata__") == 0) {
            if (!cJSON_IsObject(it)) {
                st = mv_err(MEDVLM_ERR_FORMAT, "%s: __metadata__ must be an object", path);
                goto fail;
            }
            for (const cJSON *m = it->child; m; m = m->next)
                if (!cJSON_IsString(m)) {
                    st = mv_err(MEDVLM_ERR_FORMAT,
                                "%s: __metadata__ value of \"%s\" must be a string", path,
                                m->string ? m->string : "");
                    goto fail;
                }
            f->meta = cJSON_DetachItemViaPointer(root, it);
            break;
        }
    }
    for (const cJSON *it = root->child; it; it = it->next) {
        const char *name = it->string ? it->string : "";
        struct medvlm_tensor_info *t = &f->t[f->count];
        if (!cJSON_IsObject(it)) {
            st =
                mv_err(MEDVLM_ERR_FORMAT, "%s: tensor \"%s\": entry must be an object", path, name);
            goto fail;
        }
        for (int j = 0; j < f->count; j++)
            if (strcmp(f->t[j].name, name) == 0) {
                st = mv_err(MEDVLM_ERR_FORMAT, "%s: tensor \"%s\" appears twice", path, name);
                goto fail;
            }
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
        const cJSON *shape = cJSON_GetObjectItemCaseSensitive(it, "shape");
        const cJSON *offs = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        int dti = cJSON_IsString(dt) ? dtype_from_name(dt->valuestring) : -1;
        if (dti < 0) {
            st = mv_err(MEDVLM_ERR_UNSUPPORTED,
                        "%s: tensor \"%s\": unknown or missing dtype %s%s%s (expected one of "
                        "F32 F16 BF16 F64 I64 I32 I16 I8 U8 BOOL)",
                        path, name, cJSON_IsString(dt) ? "\"" : "",
                        cJSON_IsString(dt) ? dt->valuestring : "", cJSON_IsString(dt) ? "\"" : "");
            goto fail;
        }
        if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) > MEDVLM_MAX_DIMS) {
            st = mv_err(MEDVLM_ERR_FORMAT,
                        "%s: tensor \"%s\": shape must be an array of at most %d integers", path,
                        name, MEDVLM_MAX_DIMS);
            goto fail;
        }
        t->ndim = 0;
        for (const cJSON *d = shape->child; d; d = d->next) {
            uint64_t v;
            if (!json_uint(d, &v) || v > (uint64_t)INT64_MAX) {
                st = mv_err(MEDVLM_ERR_FORMAT,
                            "%s: tensor \"%s\": shape entries must be non-negative integers", path,
                            name);
                goto fail;
            }
            t->shape[t->ndim++] = (int64_t)v;
        }
        uint64_t begin, end;
        if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
            !json_uint(cJSON_GetArrayItem(offs, 0), &begin) ||
            !json_uint(cJSON_GetArrayItem(offs, 1), &end)) {
            st =
                mv_err(MEDVLM_ERR_FORMAT,
                       "%s: tensor \"%s\": data_offsets must be [begin, end] integers", path, name);
            goto fail;
        }
        if (begin > end || end > data_size) {
            st = mv_err(MEDVLM_ERR_FORMAT,
                        "%s: tensor \"%s\": data_offsets [%llu, %llu] out of range (data region "
                        "is %zu bytes)",
                        path, name, (unsigned long long)begin, (unsigned long long)end, data_size);
            goto fail;
        }
        size_t numel, nbytes;
        if (!mv_numel(t->shape, t->ndim, &numel) || !mv_mul_ok(numel, dtypes[dti].size, &nbytes)) {
            st = mv_err(MEDVLM_ERR_OVERFLOW, "%s: tensor \"%s\": shape size overflows", path, name);
            goto fail;
        }
        if (nbytes != end - begin) {
            st = mv_err(MEDVLM_ERR_FORMAT,
                        "%s: tensor \"%s\": data_offsets span %llu bytes but dtype %s x shape "
                        "needs %zu",
                        path, name, (unsigned long long)(end - begin), dtypes[dti].name, nbytes);
            goto fail;
        }
        t->name = mv_arena_strdup(&f->names, name);
        if (!t->name) {
            st = MEDVLM_ERR_NOMEM;
            goto fail;
        }
        t->dtype = (enum medvlm_dtype)dti;
        t->nbytes = nbytes;
        t->data = data + begin;
        order[f->count] = t;
        f->count++;
    }
    /* no two non-empty tensors may share bytes */
    qsort(order, (size_t)f->count, sizeof *order, cmp_begin);
    const struct medvlm_tensor_info *prev = NULL;
    for (int i = 0; i < f->count; i++) {
        const struct medvlm_tensor_info *t = order[i];
        if (t->nbytes == 0) continue;
        if (prev &&
            (const unsigned char *)prev->data + prev->nbytes > (const unsigned char *)t->data) {
            st = mv_err(MEDVLM_ERR_FORMAT,
                        "%s: tensors \"%s\" and \"%s\" overlap in the data region", path,
                        prev->name, t->name);
            goto fail;
        }
        prev = t;
    }
    cJSON_Delete(root);
    mv_free(order);
    *out = f;
    return MEDVLM_OK;
fail:
    cJSON_Delete(root);
    mv_free(order);
    medvlm_st_free(f);
    return st;
}

enum medvlm_status medvlm_st_open(const char *path, struct medvlm_st **out)
{
    void *map;
    size_t size;
    *out = NULL;
    enum medvlm_status st = mv_map_file(path, &map, &size);
    if (st) return st;
    if (size == 0)
        return mv_err(MEDVLM_ERR_FORMAT, "%s: file is empty (expected a safetensors file)", path);
    struct medvlm_st *f;
    if ((st = mv_st_parse(path, map, size, &f))) {
        munmap(map, size);
        return st;
    }
    f->map = map;
    f->map_size = size;
    *out = f;
    return MEDVLM_OK;
}

/* Tensor tables from other containers (torchbin.c): see io.h for the ownership rules. */
enum medvlm_status mv_st_from_tensors(const char *path, void *map, size_t map_size,
                                      struct medvlm_tensor_info *tensors, int n, void **owned,
                                      int n_owned, struct medvlm_st **out)
{
    *out = NULL;
    struct medvlm_st *f = mv_calloc(1, sizeof *f);
    if (!f) {
        if (map) munmap(map, map_size);
        for (int i = 0; i < n_owned; i++) mv_free(owned[i]);
        mv_free(owned);
        mv_free(tensors);
        return MEDVLM_ERR_NOMEM;
    }
    mv_arena_init(&f->names, 16 * 1024);
    f->map = map;
    f->map_size = map_size;
    f->t = tensors;
    f->count = n;
    f->owned = owned;
    f->n_owned = n_owned;
    f->path = mv_strdup(path);
    if (!f->path) goto fail;
    for (int i = 0; i < n; i++)
        if (!(f->t[i].name = mv_arena_strdup(&f->names, f->t[i].name))) goto fail;
    *out = f;
    return MEDVLM_OK;
fail:
    medvlm_st_free(f);
    return MEDVLM_ERR_NOMEM;
}

void medvlm_st_free(struct medvlm_st *st)
{
    if (!st) return;
    for (int i = 0; i < st->n_owned; i++) mv_free(st->owned[i]);
    mv_free(st->owned);
    if (st->map) munmap(st->map, st->map_size);
    cJSON_Delete(st->meta);
    mv_arena_free(&st->names);
    mv_free(st->t);
    mv_free(st->path);
    mv_free(st);
}

int mv_st_release_pages(const struct medvlm_st *st, const void *p, size_t bytes)
{
    if (!st || !st->map || !p) return 0;
    uintptr_t lo = (uintptr_t)p, hi = lo + bytes, base = (uintptr_t)st->map;
    if (lo < base || hi > base + st->map_size) return 0; /* not in the mapping (a copy) */
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = (lo + page - 1) / page * page, b = hi / page * page; /* whole pages only */
    if (b <= a) return 0;
    return madvise((void *)a, b - a, MADV_DONTNEED) == 0;
}

const char *medvlm_st_path(const struct medvlm_st *st)
{
    return st->path;
}

int medvlm_st_count(const struct medvlm_st *st)
{
    return st->count;
}

const struct medvlm_tensor_info *medvlm_st_at(const struct medvlm_st *st, int i)
{
    return i >= 0 && i < st->count ? &st->t[i] : NULL;
}

const struct medvlm_tensor_info *medvlm_st_find(const struct medvlm_st *st, const char *name)
{
    for (int i = 0; i < st->count; i++)
        if (strcmp(st->t[i].name, name) == 0) return &st->t[i];
    return NULL;
}

const char *medvlm_st_metadata(const struct medvlm_st *st, const char *key)
{
    const cJSON *v = st->meta ? cJSON_GetObjectItemCaseSensitive(st->meta, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

enum medvlm_status medvlm_st_get_f32(const struct medvlm_st *st, const char *name,
                                     const float **data, float **owned,
                                     const struct medvlm_tensor_info **info)
{
    *data = NULL;
    *owned = NULL;
    const struct medvlm_tensor_info *t = medvlm_st_find(st, name);
    if (info) *info = t;
    if (!t) return mv_err(MEDVLM_ERR_MISSING, "%s: no tensor \"%s\"", st->path, name);
    size_t n = t->nbytes / medvlm_dtype_size(t->dtype);
    if (t->dtype == MEDVLM_DTYPE_F32 && ((uintptr_t)t->data & 3) == 0) {
        *data = t->data;
        return MEDVLM_OK;
    }
    float *buf = mv_calloc(n ? n : 1, sizeof(float));
    if (!buf) return MEDVLM_ERR_NOMEM;
    const unsigned char *src = t->data;
    for (size_t i = 0; i < n; i++) {
        switch (t->dtype) {
        case MEDVLM_DTYPE_F32:
            memcpy(&buf[i], src + 4 * i, 4);
            break;
        case MEDVLM_DTYPE_F16:
        case MEDVLM_DTYPE_BF16: {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            buf[i] = t->dtype == MEDVLM_DTYPE_F16 ? mv_f16_to_f32(h) : mv_bf16_to_f32(h);
            break;
        }
        case MEDVLM_DTYPE_F64: {
            double d;
            memcpy(&d, src + 8 * i, 8);
            buf[i] = (float)d;
            break;
        }
        default:
            mv_free(buf);
            return mv_err(MEDVLM_ERR_SHAPE,
                          "%s: tensor \"%s\" has dtype %s, expected a floating type (F32, F16, "
                          "BF16)",
                          st->path, name, medvlm_dtype_name(t->dtype));
        }
    }
    *data = buf;
    *owned = buf;
    return MEDVLM_OK;
}

/* ---------------------------------------------------------------- writer */

struct st_entry {
    char *name;
    enum medvlm_dtype dtype;
    int ndim;
    int64_t shape[MEDVLM_MAX_DIMS];
    size_t nbytes;
    void *data;
};

struct medvlm_st_writer {
    struct st_entry *e;
    int count, cap;
    cJSON *meta;
};

enum medvlm_status medvlm_st_writer_init(struct medvlm_st_writer **out)
{
    *out = mv_calloc(1, sizeof **out);
    if (!*out) return MEDVLM_ERR_NOMEM;
    (*out)->meta = cJSON_CreateObject();
    if (!(*out)->meta) {
        mv_free(*out);
        *out = NULL;
        return mv_err(MEDVLM_ERR_NOMEM, "out of memory");
    }
    cJSON_AddStringToObject((*out)->meta, "format", "pt");
    return MEDVLM_OK;
}

void medvlm_st_writer_free(struct medvlm_st_writer *w)
{
    if (!w) return;
    for (int i = 0; i < w->count; i++) {
        mv_free(w->e[i].name);
        mv_free(w->e[i].data);
    }
    mv_free(w->e);
    cJSON_Delete(w->meta);
    mv_free(w);
}

enum medvlm_status medvlm_st_writer_add(struct medvlm_st_writer *w, const char *name,
                                        enum medvlm_dtype dtype, int ndim, const int64_t *shape,
                                        const void *data)
{
    if (!name || (unsigned)dtype >= MEDVLM_DTYPE_COUNT || ndim < 0 || ndim > MEDVLM_MAX_DIMS ||
        strcmp(name, "__metadata__") == 0)
        return mv_err(MEDVLM_ERR_ARG, "safetensors writer: bad tensor name, dtype or rank");
    size_t bad = mv_utf8_check(name, strlen(name));
    if (name[bad]) {
        char shown[256];
        return mv_err(MEDVLM_ERR_ARG,
                      "safetensors writer: tensor name \"%s\" is not valid UTF-8 (byte 0x%02X at "
                      "offset %zu); the header is JSON, which must be UTF-8",
                      mv_printable(shown, sizeof shown, name), (unsigned char)name[bad], bad);
    }
    for (int i = 0; i < w->count; i++)
        if (strcmp(w->e[i].name, name) == 0)
            return mv_err(MEDVLM_ERR_ARG, "safetensors writer: tensor \"%s\" added twice", name);
    size_t numel, nbytes;
    if (!mv_numel(shape, ndim, &numel) || !mv_mul_ok(numel, dtypes[dtype].size, &nbytes))
        return mv_err(MEDVLM_ERR_OVERFLOW, "safetensors writer: tensor \"%s\" too large", name);
    if (w->count == w->cap) {
        int cap = w->cap ? 2 * w->cap : 16;
        struct st_entry *e = mv_realloc(w->e, (size_t)cap * sizeof *e);
        if (!e) return MEDVLM_ERR_NOMEM;
        w->e = e;
        w->cap = cap;
    }
    struct st_entry *e = &w->e[w->count];
    e->name = mv_strdup(name);
    e->data = mv_malloc(nbytes);
    if (!e->name || !e->data) {
        mv_free(e->name);
        mv_free(e->data);
        return MEDVLM_ERR_NOMEM;
    }
    if (nbytes) memcpy(e->data, data, nbytes);
    e->dtype = dtype;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
    e->nbytes = nbytes;
    w->count++;
    return MEDVLM_OK;
}

enum medvlm_status medvlm_st_writer_meta(struct medvlm_st_writer *w, const char *key,
                                         const char *value)
{
    if (!key || !value)
        return mv_err(MEDVLM_ERR_ARG, "safetensors writer: metadata key or value NULL");
    /* the header is JSON, which must be UTF-8: such a file Python's safetensors cannot read */
    const char *which = key;
    size_t bad = mv_utf8_check(key, strlen(key));
    if (!key[bad]) {
        which = value;
        bad = mv_utf8_check(value, strlen(value));
    }
    if (which[bad]) {
        char shown[160];
        return mv_err(MEDVLM_ERR_ARG,
                      "safetensors writer: metadata '%s'%s is not valid UTF-8 (byte 0x%02X at "
                      "offset %zu, near \"%s\"); the header is JSON, which must be UTF-8",
                      mv_printable(shown, 64, key), which == key ? " (its key)" : "",
                      (unsigned char)which[bad], bad,
                      mv_printable(shown + 64, 96, which + (bad > 20 ? bad - 20 : 0)));
    }
    cJSON *v = cJSON_CreateString(value);
    if (!v) return mv_err(MEDVLM_ERR_NOMEM, "out of memory");
    if (cJSON_GetObjectItemCaseSensitive(w->meta, key))
        cJSON_ReplaceItemInObjectCaseSensitive(w->meta, key, v);
    else
        cJSON_AddItemToObject(w->meta, key, v);
    return MEDVLM_OK;
}

/* Data are laid out widest dtype first (8-byte types first keep every tensor aligned). */
static int cmp_entry_size(const void *a, const void *b)
{
    const struct st_entry *x = *(const struct st_entry *const *)a;
    const struct st_entry *y = *(const struct st_entry *const *)b;
    size_t sx = dtypes[x->dtype].size, sy = dtypes[y->dtype].size;
    if (sx != sy) return sx > sy ? -1 : 1;
    return strcmp(x->name, y->name);
}

enum medvlm_status medvlm_st_writer_save(struct medvlm_st_writer *w, const char *path)
{
    enum medvlm_status st = MEDVLM_OK;
    struct st_entry **order = mv_calloc((size_t)w->count + 1, sizeof *order);
    cJSON *hdr = cJSON_CreateObject();
    char *json = NULL;
    unsigned char *buf = NULL;
    if (!order || !hdr) {
        st = mv_err(MEDVLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < w->count; i++) order[i] = &w->e[i];
    qsort(order, (size_t)w->count, sizeof *order, cmp_entry_size);
    cJSON_AddItemReferenceToObject(hdr, "__metadata__", w->meta);
    size_t off = 0;
    for (int i = 0; i < w->count; i++) {
        struct st_entry *e = order[i];
        cJSON *t = cJSON_CreateObject();
        cJSON *shape = cJSON_CreateArray();
        cJSON *offs = cJSON_CreateArray();
        if (!t || !shape || !offs) {
            cJSON_Delete(t);
            cJSON_Delete(shape);
            cJSON_Delete(offs);
            st = mv_err(MEDVLM_ERR_NOMEM, "out of memory");
            goto fail;
        }
        cJSON_AddStringToObject(t, "dtype", dtypes[e->dtype].name);
        for (int d = 0; d < e->ndim; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)e->shape[d]));
        cJSON_AddItemToObject(t, "shape", shape);
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + e->nbytes)));
        cJSON_AddItemToObject(t, "data_offsets", offs);
        cJSON_AddItemToObject(hdr, e->name, t);
        off += e->nbytes;
    }
    json = cJSON_PrintUnformatted(hdr);
    if (!json) {
        st = mv_err(MEDVLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    size_t jlen = strlen(json), padded = (jlen + 7) & ~(size_t)7, total = 8 + padded + off;
    buf = mv_malloc(total);
    if (!buf) {
        st = MEDVLM_ERR_NOMEM;
        goto fail;
    }
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    memcpy(buf + 8, json, jlen);
    memset(buf + 8 + jlen, ' ', padded - jlen);
    size_t pos = 8 + padded;
    for (int i = 0; i < w->count; i++) {
        if (order[i]->nbytes) memcpy(buf + pos, order[i]->data, order[i]->nbytes);
        pos += order[i]->nbytes;
    }
    st = mv_write_file_atomic(path, buf, total);
fail:
    mv_free(buf);
    if (json) cJSON_free(json);
    cJSON_Delete(hdr);
    mv_free(order);
    return st;
}

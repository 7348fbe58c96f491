/*
 * torchbin.c - open a PyTorch checkpoint (pytorch_model.bin) as a tensor table, the same
 * `struct medvlm_st` a safetensors file gives, without running any of its code.
 *
 * torch.save (>= 1.6) writes a zip archive, every record stored uncompressed and 64-byte
 * aligned:
 *
 *   <name>/data.pkl      the pickled state dict; each tensor is
 *                        _rebuild_tensor_v2(persistent_load(('storage', torch.FloatStorage,
 *                        key, location, numel)), storage_offset, size, stride, ...)
 *   <name>/data/<key>    the raw little-endian bytes of storage <key>
 *   <name>/version       the format version;  <name>/byteorder: "little" (newer torch)
 *
 * zip.c reads the directory, pickle.c runs data.pkl on an allow-list; here each tensor is
 * checked against its storage record (numel x dtype == record size, offset + extent inside
 * the storage, no overflow) and bound: contiguous tensors point into the mapping, strided
 * ones (a saved transpose) are copied into owned contiguous buffers. The older pre-1.6 format
 * (bare pickles, not a zip) is refused with a hint.
 */
#define _POSIX_C_SOURCE 200809L
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define TB_MAX_PICKLE ((size_t)256 << 20) /* a state dict's data.pkl is kilobytes */

struct tb {
    const char *path;
    struct mv_zip zip;
    struct mv_arena arena; /* pickle results, record names */
    const char *prefix;    /* "<name>/" of the archive's records */
    size_t prefix_len;
    struct medvlm_tensor_info *info;
    void **owned;
    int n_owned;
    size_t owned_bytes, owned_limit;
};

/* The one record named "<name>/data.pkl" at the top of the archive. */
static enum medvlm_status find_pickle(struct tb *b, const struct mv_zip_entry **out)
{
    static const char tail[] = "/data.pkl";
    const size_t tl = sizeof tail - 1;
    *out = NULL;
    for (int i = 0; i < b->zip.count; i++) {
        const struct mv_zip_entry *e = &b->zip.e[i];
        if (e->name_len <= tl || memcmp(e->name + e->name_len - tl, tail, tl) != 0) continue;
        if (memchr(e->name, '/', e->name_len - tl)) continue; /* nested: not the top record */
        if (*out)
            return mv_err(MEDVLM_ERR_FORMAT, "%s: two data.pkl records (\"%.*s\" and \"%.*s\")",
                          b->path, (int)(*out)->name_len, (*out)->name, (int)e->name_len, e->name);
        *out = e;
    }
    if (!*out)
        return mv_err(MEDVLM_ERR_MISSING,
                      "%s: zip archive has no <name>/data.pkl record: not a torch.save checkpoint",
                      b->path);
    b->prefix = (*out)->name;
    b->prefix_len = (*out)->name_len - tl + 1;
    return MEDVLM_OK;
}

static const struct mv_zip_entry *find_record(const struct tb *b, const char *rest)
{
    char name[512];
    size_t rl = strlen(rest);
    if (b->prefix_len + rl >= sizeof name) return NULL;
    memcpy(name, b->prefix, b->prefix_len);
    memcpy(name + b->prefix_len, rest, rl);
    return mv_zip_find(&b->zip, name, b->prefix_len + rl);
}

static enum medvlm_status check_byteorder(const struct tb *b)
{
    const struct mv_zip_entry *e = find_record(b, "byteorder");
    if (!e) return MEDVLM_OK; /* older torch: always little-endian */
    enum medvlm_status st = mv_zip_stored(b->path, e);
    if (st) return st;
    if (e->csize == 6 && memcmp(e->data, "little", 6) == 0) return MEDVLM_OK;
    if (e->csize == 3 && memcmp(e->data, "big", 3) == 0)
        return mv_err(MEDVLM_ERR_UNSUPPORTED,
                      "%s: checkpoint was saved big-endian; re-save it on a little-endian machine "
                      "or convert it to model.safetensors",
                      b->path);
    return mv_err(MEDVLM_ERR_FORMAT, "%s: %.*sbyteorder record is neither \"little\" nor \"big\"",
                  b->path, (int)b->prefix_len, b->prefix);
}

static int cmp_name(const void *x, const void *y)
{
    const struct mv_torch_tensor *a = *(const struct mv_torch_tensor *const *)x;
    const struct mv_torch_tensor *c = *(const struct mv_torch_tensor *const *)y;
    return strcmp(a->name, c->name);
}

static enum medvlm_status check_unique(const char *path, struct mv_torch_tensor *t, int n)
{
    const struct mv_torch_tensor **order = mv_calloc((size_t)n + 1, sizeof *order);
    if (!order) return MEDVLM_ERR_NOMEM;
    for (int i = 0; i < n; i++) order[i] = &t[i];
    qsort(order, (size_t)n, sizeof *order, cmp_name);
    enum medvlm_status st = MEDVLM_OK;
    for (int i = 1; i < n && !st; i++)
        if (strcmp(order[i - 1]->name, order[i]->name) == 0)
            st = mv_err(MEDVLM_ERR_FORMAT, "%s: tensor \"%s\" appears twice in the state dict",
                        path, order[i]->name);
    mv_free(order);
    return st;
}

/* Element index one past the last one the view touches (0 for an empty view). */
static bool view_end(const struct mv_torch_tensor *t, size_t numel, uint64_t *end)
{
    uint64_t last = t->offset;
    if (numel == 0) {
        *end = 0;
        return true;
    }
    for (int d = 0; d < t->ndim; d++) {
        uint64_t step;
        if (__builtin_mul_overflow((uint64_t)(t->shape[d] - 1), (uint64_t)t->stride[d], &step) ||
            __builtin_add_overflow(last, step, &last))
            return false;
    }
    return !__builtin_add_overflow(last, 1, end);
}

static bool is_contiguous(const struct mv_torch_tensor *t, size_t numel)
{
    if (numel == 0) return true;
    uint64_t want = 1; /* partial products of a size mv_numel accepted: no overflow */
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] == 1) continue; /* a size-1 dimension's stride is never used */
        if ((uint64_t)t->stride[d] != want) return false;
        want *= (uint64_t)t->shape[d];
    }
    return true;
}

/* Copy a strided view into dst, row-major. Bounds were checked by view_end. */
static void gather(unsigned char *dst, const unsigned char *storage, size_t esz,
                   const struct mv_torch_tensor *t, size_t numel)
{
    int64_t idx[MEDVLM_MAX_DIMS] = {0};
    for (size_t i = 0; i < numel; i++) {
        uint64_t src = t->offset;
        for (int d = 0; d < t->ndim; d++) src += (uint64_t)idx[d] * (uint64_t)t->stride[d];
        memcpy(dst + i * esz, storage + src * esz, esz);
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (++idx[d] < t->shape[d]) break;
            idx[d] = 0;
        }
    }
}

static enum medvlm_status bind_tensor(struct tb *b, const struct mv_torch_tensor *t,
                                      struct medvlm_tensor_info *out)
{
    enum medvlm_status st;
    char rec[300];
    snprintf(rec, sizeof rec, "data/%s", t->storage_key);
    const struct mv_zip_entry *e = find_record(b, rec);
    if (!e)
        return mv_err(MEDVLM_ERR_MISSING,
                      "%s: tensor \"%s\": storage record %.*s%s is missing from the archive",
                      b->path, t->name, (int)b->prefix_len, b->prefix, rec);
    if ((st = mv_zip_stored(b->path, e))) return st;
    size_t esz = medvlm_dtype_size(t->dtype), numel, nbytes;
    uint64_t storage_bytes;
    if (__builtin_mul_overflow(t->storage_numel, (uint64_t)esz, &storage_bytes) ||
        storage_bytes != e->usize)
        return mv_err(MEDVLM_ERR_FORMAT,
                      "%s: tensor \"%s\": storage record %.*s%s holds %llu bytes but data.pkl "
                      "says %llu x %s (%zu bytes each)",
                      b->path, t->name, (int)b->prefix_len, b->prefix, rec,
                      (unsigned long long)e->usize, (unsigned long long)t->storage_numel,
                      medvlm_dtype_name(t->dtype), esz);
    uint64_t end;
    if (!mv_numel(t->shape, t->ndim, &numel) || !mv_mul_ok(numel, esz, &nbytes) ||
        !view_end(t, numel, &end))
        return mv_err(MEDVLM_ERR_OVERFLOW, "%s: tensor \"%s\": size or stride overflows", b->path,
                      t->name);
    if (end > t->storage_numel)
        return mv_err(MEDVLM_ERR_FORMAT,
                      "%s: tensor \"%s\": storage offset %llu with its size and stride reaches "
                      "element %llu, past the storage's %llu elements",
                      b->path, t->name, (unsigned long long)t->offset, (unsigned long long)end,
                      (unsigned long long)t->storage_numel);
    out->name = t->name;
    out->dtype = t->dtype;
    out->ndim = t->ndim;
    for (int d = 0; d < t->ndim; d++) out->shape[d] = t->shape[d];
    out->nbytes = nbytes;
    if (is_contiguous(t, numel)) {
        out->data = numel ? e->data + t->offset * esz : e->data;
        return MEDVLM_OK;
    }
    /* a strided view (a saved transpose): materialise it, within a budget, since a stride of
     * 0 could otherwise expand a few bytes of file into any amount of memory */
    if (nbytes > b->owned_limit - b->owned_bytes)
        return mv_err(MEDVLM_ERR_LIMIT,
                      "%s: tensor \"%s\" is non-contiguous and needs %zu bytes to copy, over the "
                      "limit of %zu bytes for copies",
                      b->path, t->name, nbytes, b->owned_limit);
    void *buf = mv_aligned(nbytes);
    if (!buf) return mv_err_ctx(MEDVLM_ERR_NOMEM, "%s: tensor \"%s\"", b->path, t->name);
    gather(buf, e->data, esz, t, numel);
    b->owned[b->n_owned++] = buf;
    b->owned_bytes += nbytes;
    out->data = buf;
    return MEDVLM_OK;
}

/* Takes ownership of map (NULL for a caller's buffer). */
static enum medvlm_status build(const char *path, const void *buf, size_t size, void *map,
                                struct medvlm_st **out)
{
    enum medvlm_status st;
    struct tb b = {.path = path};
    struct mv_torch_tensor *tensors = NULL;
    int n = 0;
    char *what = NULL;
    const unsigned char *p = buf;
    *out = NULL;
    mv_arena_init(&b.arena, 16 * 1024);
    b.owned_limit = size > SIZE_MAX / 4 ? SIZE_MAX : 2 * size + ((size_t)1 << 20);
    if (size == 0) {
        st =
            mv_err(MEDVLM_ERR_FORMAT,
                   "%s: file is empty (expected a PyTorch checkpoint written by torch.save)", path);
        goto fail;
    }
    if (size < 2 || p[0] != 'P' || p[1] != 'K') {
        st = p[0] == 0x80
                 ? mv_err(MEDVLM_ERR_UNSUPPORTED,
                          "%s: legacy (pre-1.6) torch.save format, which can only be read by "
                          "running its pickle; re-save it with a current torch "
                          "(torch.save(torch.load(f), f)) or convert it to model.safetensors",
                          path)
                 : mv_err(MEDVLM_ERR_FORMAT,
                          "%s: not a zip archive (a PyTorch >= 1.6 checkpoint starts with \"PK\")",
                          path);
        goto fail;
    }
    if ((st = mv_zip_open(path, buf, size, &b.zip))) goto fail;
    const struct mv_zip_entry *pkl;
    if ((st = find_pickle(&b, &pkl))) goto fail;
    if ((st = mv_zip_stored(path, pkl))) goto fail;
    if (pkl->usize > TB_MAX_PICKLE) {
        st = mv_err(MEDVLM_ERR_LIMIT, "%s: data.pkl is %llu bytes, over the %zu-byte limit", path,
                    (unsigned long long)pkl->usize, TB_MAX_PICKLE);
        goto fail;
    }
    if (mv_crc32(pkl->data, (size_t)pkl->usize) != pkl->crc) {
        st = mv_err(MEDVLM_ERR_FORMAT, "%s: %.*s fails its CRC check (corrupt file)", path,
                    (int)pkl->name_len, pkl->name);
        goto fail;
    }
    if ((st = check_byteorder(&b))) goto fail;
    what = mv_asprintf("%s: %.*s", path, (int)pkl->name_len, pkl->name);
    if (!what) {
        st = MEDVLM_ERR_NOMEM;
        goto fail;
    }
    if ((st = mv_pickle_state_dict(what, pkl->data, (size_t)pkl->usize, &b.arena, &tensors, &n)))
        goto fail;
    if ((st = check_unique(path, tensors, n))) goto fail;
    b.info = mv_calloc((size_t)n + 1, sizeof *b.info);
    b.owned = mv_calloc((size_t)n + 1, sizeof *b.owned);
    if (!b.info || !b.owned) {
        st = MEDVLM_ERR_NOMEM;
        goto fail;
    }
    for (int i = 0; i < n; i++)
        if ((st = bind_tensor(&b, &tensors[i], &b.info[i]))) goto fail;
    st = mv_st_from_tensors(path, map, size, b.info, n, b.owned, b.n_owned, out);
    map = NULL;
    b.info = NULL;
    b.owned = NULL;
fail:
    if (map) munmap(map, size);
    if (b.owned)
        for (int i = 0; i < b.n_owned; i++) mv_free(b.owned[i]);
    mv_free(b.owned);
    mv_free(b.info);
    mv_free(what);
    mv_zip_free(&b.zip);
    mv_arena_free(&b.arena);
    return st;
}

enum medvlm_status mv_torchbin_parse(const char *path, const void *buf, size_t size,
                                     struct medvlm_st **out)
{
    return build(path, buf, size, NULL, out);
}

enum medvlm_status mv_torchbin_open(const char *path, struct medvlm_st **out)
{
    void *map;
    size_t size;
    *out = NULL;
    enum medvlm_status st = mv_map_file(path, &map, &size);
    if (st) return st;
    if (size == 0) return build(path, "", 0, NULL, out);
    return build(path, map, size, map, out);
}

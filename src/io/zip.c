/*
 * zip.c - read the central directory of a zip archive held in memory (a mapped file), the
 * container PyTorch >= 1.6 writes with torch.save. Nothing is copied or decompressed: each
 * entry says where its bytes are inside the caller's buffer.
 *
 * Layout (APPNOTE.TXT): local header + data for each entry, then the central directory
 * (one 46-byte record + name + extra + comment per entry), then the end-of-central-directory
 * record (22 bytes + comment). Archives over 4 GiB or 65535 entries carry a zip64 end record
 * and zip64 "extra" fields holding the 64-bit sizes and offsets. Every number read here is
 * untrusted and checked against the buffer before use.
 */
#include "io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIG_LOCAL      0x04034b50u
#define SIG_CENTRAL    0x02014b50u
#define SIG_EOCD       0x06054b50u
#define SIG_EOCD64     0x06064b50u
#define SIG_EOCD64_LOC 0x07064b50u

static uint16_t rd16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t rd64(const unsigned char *p)
{
    return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32);
}

/* CRC-32 (reflected polynomial 0xedb88320), four bits at a time: a constant 16-entry table,
 * so there is nothing to initialise and nothing shared between threads. */
uint32_t mv_crc32(const void *data, size_t n)
{
    static const uint32_t nibble[16] = {
        0x00000000u, 0x1db71064u, 0x3b6e20c8u, 0x26d930acu, 0x76dc4190u, 0x6b6b51f4u,
        0x4db26158u, 0x5005713cu, 0xedb88320u, 0xf00f9344u, 0xd6d6a3e8u, 0xcb61b38cu,
        0x9b64c2b0u, 0x86d3d2d4u, 0xa00ae278u, 0xbdbdf21cu,
    };
    const unsigned char *p = data;
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        c = nibble[c & 15] ^ (c >> 4);
        c = nibble[c & 15] ^ (c >> 4);
    }
    return c ^ 0xffffffffu;
}

static int cmp_entry(const void *a, const void *b)
{
    const struct mv_zip_entry *x = a, *y = b;
    size_t n = MV_MIN(x->name_len, y->name_len);
    int c = memcmp(x->name, y->name, n);
    if (c) return c;
    return x->name_len < y->name_len ? -1 : x->name_len > y->name_len;
}

/* Locate the end record; sets the central directory's offset, size and entry count. */
static enum medvlm_status find_directory(const char *path, const unsigned char *b, size_t size,
                                         uint64_t *cd_off, uint64_t *cd_size, uint64_t *count,
                                         size_t *cd_limit)
{
    if (size < 22)
        return mv_err(MEDVLM_ERR_FORMAT,
                      "%s: %zu bytes is too short for a zip archive (truncated file?)", path, size);
    size_t eocd = (size_t)-1;
    size_t lowest = size - 22 > 65535 ? size - 22 - 65535 : 0;
    for (size_t off = size - 22 + 1; off-- > lowest;) {
        if (rd32(b + off) == SIG_EOCD && off + 22 + rd16(b + off + 20) <= size) {
            eocd = off;
            break;
        }
    }
    if (eocd == (size_t)-1)
        return mv_err(MEDVLM_ERR_FORMAT,
                      "%s: no zip end-of-central-directory record (truncated download or not a "
                      "zip archive)",
                      path);
    const unsigned char *e = b + eocd;
    if (rd16(e + 4) != 0 || (rd16(e + 6) != 0 && rd16(e + 6) != 0xffff))
        return mv_err(MEDVLM_ERR_UNSUPPORTED, "%s: multi-part zip archives are not supported",
                      path);
    *count = rd16(e + 10);
    *cd_size = rd32(e + 12);
    *cd_off = rd32(e + 16);
    *cd_limit = eocd;
    bool want64 = *count == 0xffff || *cd_size == 0xffffffffu || *cd_off == 0xffffffffu;
    if (eocd >= 20 && rd32(b + eocd - 20) == SIG_EOCD64_LOC) {
        uint64_t r = rd64(b + eocd - 20 + 8);
        if (r > eocd - 20 || eocd - 20 - r < 56 || rd32(b + r) != SIG_EOCD64)
            return mv_err(MEDVLM_ERR_FORMAT,
                          "%s: zip64 end record offset %llu is out of range or corrupt", path,
                          (unsigned long long)r);
        const unsigned char *z = b + r;
        *count = rd64(z + 32);
        *cd_size = rd64(z + 40);
        *cd_off = rd64(z + 48);
        *cd_limit = (size_t)r;
    } else if (want64) {
        return mv_err(MEDVLM_ERR_FORMAT,
                      "%s: zip end record asks for zip64 but has no zip64 locator (corrupt "
                      "archive)",
                      path);
    }
    if (*cd_off > *cd_limit || *cd_size > *cd_limit - *cd_off)
        return mv_err(MEDVLM_ERR_FORMAT,
                      "%s: zip central directory [%llu, +%llu) lies outside the archive "
                      "(truncated or corrupt file)",
                      path, (unsigned long long)*cd_off, (unsigned long long)*cd_size);
    if (*count > *cd_size / 46)
        return mv_err(MEDVLM_ERR_FORMAT,
                      "%s: zip directory claims %llu entries but is only %llu bytes (corrupt)",
                      path, (unsigned long long)*count, (unsigned long long)*cd_size);
    return MEDVLM_OK;
}

/* The zip64 extra field replaces, in order, whichever of usize, csize, offset are 0xffffffff. */
static bool apply_zip64(const unsigned char *x, size_t xlen, uint64_t *usize, uint64_t *csize,
                        uint64_t *off)
{
    bool need_u = *usize == 0xffffffffu, need_c = *csize == 0xffffffffu,
         need_o = *off == 0xffffffffu;
    if (!need_u && !need_c && !need_o) return true;
    size_t p = 0;
    while (p + 4 <= xlen) {
        uint16_t id = rd16(x + p), len = rd16(x + p + 2);
        if (len > xlen - p - 4) return false;
        if (id == 0x0001) {
            const unsigned char *f = x + p + 4;
            size_t need = 8u * (unsigned)(need_u + need_c + need_o);
            if (len < need) return false;
            if (need_u) *usize = rd64(f), f += 8;
            if (need_c) *csize = rd64(f), f += 8;
            if (need_o) *off = rd64(f);
            return true;
        }
        p += 4 + (size_t)len;
    }
    return false;
}

enum medvlm_status mv_zip_open(const char *path, const void *buf, size_t size, struct mv_zip *z)
{
    enum medvlm_status st;
    const unsigned char *b = buf;
    uint64_t cd_off = 0, cd_size = 0, count = 0;
    size_t cd_limit = 0;
    memset(z, 0, sizeof *z);
    if ((st = find_directory(path, b, size, &cd_off, &cd_size, &count, &cd_limit))) return st;
    z->e = mv_calloc((size_t)count + 1, sizeof *z->e);
    if (!z->e) return MEDVLM_ERR_NOMEM;
    size_t p = (size_t)cd_off, end = (size_t)(cd_off + cd_size);
    for (uint64_t i = 0; i < count; i++) {
        if (end - p < 46 || rd32(b + p) != SIG_CENTRAL) {
            st = mv_err(MEDVLM_ERR_FORMAT,
                        "%s: zip central directory record %llu at byte %zu is corrupt (bad "
                        "signature or truncated)",
                        path, (unsigned long long)i, p);
            goto fail;
        }
        const unsigned char *c = b + p;
        size_t nlen = rd16(c + 28), xlen = rd16(c + 30), clen = rd16(c + 32);
        if (end - p - 46 < nlen + xlen + clen) {
            st = mv_err(MEDVLM_ERR_FORMAT,
                        "%s: zip central directory record %llu runs past the directory", path,
                        (unsigned long long)i);
            goto fail;
        }
        struct mv_zip_entry *e = &z->e[z->count];
        e->name = (const char *)c + 46;
        e->name_len = nlen;
        e->flags = rd16(c + 8);
        e->method = rd16(c + 10);
        e->crc = rd32(c + 16);
        uint64_t csize = rd32(c + 20), usize = rd32(c + 24), loff = rd32(c + 42);
        if (!apply_zip64(c + 46 + nlen, xlen, &usize, &csize, &loff)) {
            st = mv_err(MEDVLM_ERR_FORMAT, "%s: zip entry \"%.*s\": bad zip64 extra field", path,
                        (int)nlen, e->name);
            goto fail;
        }
        /* the local header repeats the name; its own sizes may be 0 (data descriptor) */
        if (loff > cd_off || cd_off - loff < 30 || rd32(b + loff) != SIG_LOCAL) {
            st = mv_err(MEDVLM_ERR_FORMAT,
                        "%s: zip entry \"%.*s\": local header offset %llu is out of range or "
                        "corrupt",
                        path, (int)nlen, e->name, (unsigned long long)loff);
            goto fail;
        }
        const unsigned char *l = b + loff;
        uint64_t data_off = loff + 30 + (uint64_t)rd16(l + 26) + rd16(l + 28);
        if (data_off > cd_off || rd16(l + 26) != nlen || memcmp(l + 30, e->name, nlen) != 0) {
            st = mv_err(MEDVLM_ERR_FORMAT,
                        "%s: zip entry \"%.*s\": local header does not match the directory", path,
                        (int)nlen, e->name);
            goto fail;
        }
        if (csize > cd_off - data_off) {
            st = mv_err(MEDVLM_ERR_FORMAT,
                        "%s: zip entry \"%.*s\": %llu bytes at offset %llu run past the data "
                        "region (truncated file?)",
                        path, (int)nlen, e->name, (unsigned long long)csize,
                        (unsigned long long)data_off);
            goto fail;
        }
        if (e->method == 0 && csize != usize) {
            st =
                mv_err(MEDVLM_ERR_FORMAT,
                       "%s: zip entry \"%.*s\" is stored but its sizes differ (%llu vs %llu)", path,
                       (int)nlen, e->name, (unsigned long long)csize, (unsigned long long)usize);
            goto fail;
        }
        e->csize = csize;
        e->usize = usize;
        e->data = b + data_off;
        z->count++;
        p += 46 + nlen + xlen + clen;
    }
    qsort(z->e, (size_t)z->count, sizeof *z->e, cmp_entry);
    for (int i = 1; i < z->count; i++)
        if (cmp_entry(&z->e[i - 1], &z->e[i]) == 0) {
            st = mv_err(MEDVLM_ERR_FORMAT, "%s: zip entry \"%.*s\" appears twice", path,
                        (int)z->e[i].name_len, z->e[i].name);
            goto fail;
        }
    return MEDVLM_OK;
fail:
    mv_zip_free(z);
    return st;
}

void mv_zip_free(struct mv_zip *z)
{
    if (!z) return;
    mv_free(z->e);
    memset(z, 0, sizeof *z);
}

const struct mv_zip_entry *mv_zip_find(const struct mv_zip *z, const char *name, size_t len)
{
    struct mv_zip_entry key = {.name = name, .name_len = len};
    return z->count ? bsearch(&key, z->e, (size_t)z->count, sizeof *z->e, cmp_entry) : NULL;
}

enum medvlm_status mv_zip_stored(const char *path, const struct mv_zip_entry *e)
{
    if (e->flags & 1)
        return mv_err(MEDVLM_ERR_UNSUPPORTED, "%s: zip entry \"%.*s\" is encrypted", path,
                      (int)e->name_len, e->name);
    if (e->method != 0)
        return mv_err(MEDVLM_ERR_UNSUPPORTED,
                      "%s: zip entry \"%.*s\" is compressed (method %u); torch.save stores "
                      "entries uncompressed: re-save the checkpoint with torch.save, or convert "
                      "it to model.safetensors",
                      path, (int)e->name_len, e->name, (unsigned)e->method);
    return MEDVLM_OK;
}

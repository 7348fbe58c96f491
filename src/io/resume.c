/*
 * resume.c - the side file that lets a long feature extraction survive being killed.
 *
 * OUT.partial is an append-only log: a header (magic, fingerprint of the job, item count,
 * embedding dim, batch size) then one record per finished batch:
 *   u32 batch index, u32 count, count x u8 ok-flag, count x dim x f32, u32 FNV-1a of the above.
 * Each record is written with one write() and fdatasync'd. On reopen, records are read back
 * until the first torn or corrupt one, and the file is truncated there; the job then redoes
 * only the missing batches. Batches have fixed boundaries (batch b = items [b*B, b*B+B)), so a
 * resumed run computes every batch exactly as an uninterrupted one does.
 */
#define _POSIX_C_SOURCE 200809L
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RESUME_MAGIC "MEDVLM-RESUME-1\n"

struct mv_resume {
    char *path;
    int fd;
    int n_items, dim, batch, n_batches;
    uint8_t *done; /* (n_batches) */
    uint8_t *ok;   /* (n_items) */
    float *embeds; /* (n_items, dim) */
    int n_done;
    unsigned char *rec; /* one record's bytes, sized for a full batch */
};

static uint32_t fnv1a(const unsigned char *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}

static size_t record_size(const struct mv_resume *r, int count)
{
    return 8 + (size_t)count + (size_t)count * (size_t)r->dim * 4 + 4;
}

static enum medvlm_status write_all(const struct mv_resume *r, const void *buf, size_t n)
{
    const char *p = buf;
    while (n) {
        ssize_t w = write(r->fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return mv_err(MEDVLM_ERR_IO, "%s: write failed: %s", r->path, strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    return MEDVLM_OK;
}

static size_t header_build(unsigned char *h, size_t cap, const char *fp, int n, int dim, int batch)
{
    return (size_t)snprintf((char *)h, cap, "%s%d %d %d\n%s\n", RESUME_MAGIC, n, dim, batch, fp);
}

/* Read back finished records; truncate at the first incomplete or corrupt one. */
static enum medvlm_status replay(struct mv_resume *r, size_t header_len)
{
    struct stat sb;
    if (fstat(r->fd, &sb) != 0) return mv_err(MEDVLM_ERR_IO, "%s: stat failed", r->path);
    size_t size = (size_t)sb.st_size, off = header_len;
    while (off + 8 <= size) {
        unsigned char head[8];
        if (pread(r->fd, head, 8, (off_t)off) != 8) break;
        uint32_t b, count;
        memcpy(&b, head, 4);
        memcpy(&count, head + 4, 4);
        if (b >= (uint32_t)r->n_batches || count == 0 || count > (uint32_t)r->batch) break;
        int first = (int)b * r->batch;
        int expect = MV_MIN(r->batch, r->n_items - first);
        if ((int)count != expect) break;
        size_t rs = record_size(r, (int)count);
        if (off + rs > size || pread(r->fd, r->rec, rs, (off_t)off) != (ssize_t)rs) break;
        uint32_t sum;
        memcpy(&sum, r->rec + rs - 4, 4);
        if (sum != fnv1a(r->rec, rs - 4)) break;
        memcpy(r->ok + first, r->rec + 8, count);
        memcpy(r->embeds + (size_t)first * r->dim, r->rec + 8 + count, (size_t)count * r->dim * 4);
        if (!r->done[b]) r->n_done++;
        r->done[b] = 1;
        off += rs;
    }
    if (off < size && ftruncate(r->fd, (off_t)off) != 0)
        return mv_err(MEDVLM_ERR_IO, "%s: cannot truncate a torn record: %s", r->path,
                      strerror(errno));
    if (lseek(r->fd, (off_t)off, SEEK_SET) < 0)
        return mv_err(MEDVLM_ERR_IO, "%s: seek failed", r->path);
    return MEDVLM_OK;
}

enum medvlm_status mv_resume_open(const char *out_path, const char *fingerprint, int n_items,
                                  int dim, int batch, int resume, struct mv_resume **out)
{
    enum medvlm_status st = MEDVLM_OK;
    unsigned char hdr[4096], old[4096];
    *out = NULL;
    if (n_items < 1 || dim < 1 || batch < 1 || strlen(fingerprint) > 3000)
        return mv_err(MEDVLM_ERR_ARG, "resume log: bad sizes");
    struct mv_resume *r = mv_calloc(1, sizeof *r);
    if (!r) return MEDVLM_ERR_NOMEM;
    r->fd = -1;
    r->n_items = n_items;
    r->dim = dim;
    r->batch = batch;
    r->n_batches = (n_items + batch - 1) / batch;
    r->path = mv_asprintf("%s.partial", out_path);
    r->done = mv_calloc((size_t)r->n_batches, 1);
    r->ok = mv_calloc((size_t)n_items, 1);
    r->embeds = mv_calloc((size_t)n_items * (size_t)dim, sizeof(float));
    r->rec = mv_malloc(record_size(r, batch));
    if (!r->path || !r->done || !r->ok || !r->embeds || !r->rec) {
        st = MEDVLM_ERR_NOMEM;
        goto fail;
    }
    size_t hl = header_build(hdr, sizeof hdr, fingerprint, n_items, dim, batch);
    const char *kind = mv_path_kind(r->path); /* a FIFO there would block our writes */
    if (kind && strcmp(kind, "does not exist") != 0) {
        st = mv_err(MEDVLM_ERR_IO, "%s: %s, expected the resume log (a regular file) or nothing",
                    r->path, kind);
        goto fail;
    }
    if (resume) {
        r->fd = open(r->path, O_RDWR);
        if (r->fd >= 0) {
            ssize_t got = pread(r->fd, old, hl, 0);
            if (got != (ssize_t)hl || memcmp(old, hdr, hl) != 0) {
                st = mv_err(MEDVLM_ERR_ARG,
                            "%s: belongs to a different job (other model, images, preprocessing, "
                            "batch size or number of MPI ranks); delete it or run without "
                            "--resume",
                            r->path);
                goto fail;
            }
            if ((st = replay(r, hl))) goto fail;
            *out = r;
            return MEDVLM_OK;
        }
        if (errno != ENOENT) {
            st = mv_err(MEDVLM_ERR_IO, "%s: cannot open: %s", r->path, strerror(errno));
            goto fail;
        }
    }
    r->fd = open(r->path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (r->fd < 0) {
        st = mv_err(MEDVLM_ERR_IO, "%s: cannot create: %s", r->path, strerror(errno));
        goto fail;
    }
    if ((st = write_all(r, hdr, hl))) goto fail;
    if (fdatasync(r->fd) != 0) {
        st = mv_err(MEDVLM_ERR_IO, "%s: sync failed: %s", r->path, strerror(errno));
        goto fail;
    }
    *out = r;
    return MEDVLM_OK;
fail:
    mv_resume_free(r);
    return st;
}

int mv_resume_batches(const struct mv_resume *r)
{
    return r->n_batches;
}

int mv_resume_done_count(const struct mv_resume *r)
{
    return r->n_done;
}

bool mv_resume_is_done(const struct mv_resume *r, int b)
{
    return b >= 0 && b < r->n_batches && r->done[b];
}

enum medvlm_status mv_resume_append(struct mv_resume *r, int b, const uint8_t *ok,
                                    const float *embeds)
{
    if (b < 0 || b >= r->n_batches) return mv_err(MEDVLM_ERR_ARG, "resume log: bad batch %d", b);
    int first = b * r->batch;
    uint32_t count = (uint32_t)MV_MIN(r->batch, r->n_items - first), ub = (uint32_t)b;
    size_t rs = record_size(r, (int)count);
    memcpy(r->rec, &ub, 4);
    memcpy(r->rec + 4, &count, 4);
    memcpy(r->rec + 8, ok, count);
    memcpy(r->rec + 8 + count, embeds, (size_t)count * r->dim * 4);
    uint32_t sum = fnv1a(r->rec, rs - 4);
    memcpy(r->rec + rs - 4, &sum, 4);
    enum medvlm_status st = write_all(r, r->rec, rs);
    if (st) return st;
    if (fdatasync(r->fd) != 0)
        return mv_err(MEDVLM_ERR_IO, "%s: sync failed: %s", r->path, strerror(errno));
    memcpy(r->ok + first, ok, count);
    memcpy(r->embeds + (size_t)first * r->dim, embeds, (size_t)count * r->dim * 4);
    if (!r->done[b]) r->n_done++;
    r->done[b] = 1;
    return MEDVLM_OK;
}

const float *mv_resume_embeds(const struct mv_resume *r)
{
    return r->embeds;
}

const uint8_t *mv_resume_ok(const struct mv_resume *r)
{
    return r->ok;
}

void mv_resume_remove(struct mv_resume *r)
{
    if (r && r->path) unlink(r->path);
}

void mv_resume_free(struct mv_resume *r)
{
    if (!r) return;
    if (r->fd >= 0) close(r->fd);
    mv_free(r->path);
    mv_free(r->done);
    mv_free(r->ok);
    mv_free(r->embeds);
    mv_free(r->rec);
    mv_free(r);
}

/* file.c - whole-file reads, atomic writes, paths, clock. */
#define _POSIX_C_SOURCE 200809L
#include "core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum medvlm_status mv_read_file(const char *path, char **data, size_t *len)
{
    *data = NULL;
    struct stat sb;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return mv_err(MEDVLM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return mv_err(MEDVLM_ERR_IO, "%s: not a regular file", path);
    }
    size_t n = (size_t)sb.st_size, got = 0;
    char *buf = mv_malloc(n + 1);
    if (!buf) {
        close(fd);
        return mv_err_ctx(MEDVLM_ERR_NOMEM, "%s", path);
    }
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (got != n) {
        mv_free(buf);
        return mv_err(MEDVLM_ERR_IO, "%s: short read (%zu of %zu bytes)", path, got, n);
    }
    buf[n] = '\0';
    *data = buf;
    if (len) *len = n;
    return MEDVLM_OK;
}

enum medvlm_status mv_write_file_atomic(const char *path, const void *data, size_t len)
{
    char *tmp = mv_asprintf("%s.tmp.%ld", path, (long)getpid());
    if (!tmp) return MEDVLM_ERR_NOMEM;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        enum medvlm_status st =
            mv_err(MEDVLM_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        mv_free(tmp);
        return st;
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            enum medvlm_status st =
                mv_err(MEDVLM_ERR_IO, "%s: write failed: %s", path, strerror(e));
            mv_free(tmp);
            return st;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        enum medvlm_status st = mv_err(MEDVLM_ERR_IO, "%s: cannot save: %s", path, strerror(e));
        mv_free(tmp);
        return st;
    }
    mv_free(tmp);
    return MEDVLM_OK;
}

enum medvlm_status mv_map_file(const char *path, void **map, size_t *size)
{
    *map = NULL;
    *size = 0;
    if (!path) return mv_err(MEDVLM_ERR_ARG, "mv_map_file: path is NULL");
    int fd = open(path, O_RDONLY);
    if (fd < 0) return mv_err(MEDVLM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return mv_err(MEDVLM_ERR_IO, "%s: not a regular file", path);
    }
    if (sb.st_size == 0) {
        close(fd);
        return MEDVLM_OK;
    }
    void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return mv_err(MEDVLM_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
    *map = m;
    *size = (size_t)sb.st_size;
    return MEDVLM_OK;
}

char *mv_path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir);
    if (n > 0 && dir[n - 1] == '/') return mv_asprintf("%s%s", dir, name);
    return mv_asprintf("%s/%s", dir, name);
}

bool mv_is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

bool mv_is_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

double mv_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

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

const char *mv_path_kind(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0) return errno == ENOENT || errno == ENOTDIR ? "does not exist" : NULL;
    if (S_ISREG(sb.st_mode)) return NULL;
    if (S_ISDIR(sb.st_mode)) return "is a directory";
    if (S_ISFIFO(sb.st_mode)) return "is a FIFO";
    if (S_ISCHR(sb.st_mode) || S_ISBLK(sb.st_mode)) return "is a device";
    if (S_ISSOCK(sb.st_mode)) return "is a socket";
    return "is not a regular file";
}

bool mv_path_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* What a stat'ed non-regular file is, for the message. */
static const char *kind_of(const struct stat *sb)
{
    if (S_ISDIR(sb->st_mode)) return "is a directory";
    if (S_ISFIFO(sb->st_mode)) return "is a FIFO";
    if (S_ISCHR(sb->st_mode) || S_ISBLK(sb->st_mode)) return "is a device";
    if (S_ISSOCK(sb->st_mode)) return "is a socket";
    return "is not a regular file";
}

/* Open a regular file for reading and fstat it. A FIFO, device or directory is refused before
 * open() (which would block on a FIFO without a writer), and again after it: the open is
 * non-blocking, so a path swapped for a FIFO in between cannot hang us either. */
static enum medvlm_status open_regular(const char *path, int *fd_out, struct stat *sb)
{
    *fd_out = -1;
    if (!path) return mv_err(MEDVLM_ERR_ARG, "open: path is NULL");
    if (stat(path, sb) != 0)
        return mv_err(MEDVLM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(sb->st_mode))
        return mv_err(MEDVLM_ERR_IO, "%s: %s, expected a regular file", path, kind_of(sb));
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) return mv_err(MEDVLM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, sb) != 0 || !S_ISREG(sb->st_mode)) {
        enum medvlm_status st =
            mv_err(MEDVLM_ERR_IO, "%s: %s, expected a regular file", path, kind_of(sb));
        close(fd);
        return st;
    }
    *fd_out = fd;
    return MEDVLM_OK;
}

enum medvlm_status mv_read_file(const char *path, char **data, size_t *len)
{
    *data = NULL;
    struct stat sb;
    int fd;
    enum medvlm_status st = open_regular(path, &fd, &sb);
    if (st) return st;
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

/* fsync the folder holding path, so that a rename into it survives a crash. */
static int sync_parent(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? mv_strndup(path, slash == path ? 1 : (size_t)(slash - path)) : NULL;
    if (slash && !dir) return -1;
    int fd = open(dir ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    mv_free(dir);
    if (fd < 0) return 0; /* a folder we may write but not read: nothing to sync it through */
    /* some file systems refuse fsync on a folder (EINVAL): nothing more can be done there */
    int rc = fsync(fd) != 0 && errno != EINVAL ? -1 : 0;
    close(fd);
    return rc;
}

enum medvlm_status mv_write_file_atomic(const char *path, const void *data, size_t len)
{
    enum medvlm_status st = MEDVLM_OK;
    int fd = -1, created = 0;
    char *tmp = mv_asprintf("%s.tmp.%ld", path, (long)getpid());
    if (!tmp) return MEDVLM_ERR_NOMEM;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        st = mv_err(MEDVLM_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        goto fail;
    }
    created = 1;
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            st = mv_err(MEDVLM_ERR_IO, "%s: write failed: %s", path,
                        w < 0 ? strerror(errno) : "no progress");
            goto fail;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0) {
        st = mv_err(MEDVLM_ERR_IO, "%s: cannot save (fsync): %s", path, strerror(errno));
        goto fail;
    }
    int rc = close(fd);
    fd = -1;
    if (rc != 0) {
        st = mv_err(MEDVLM_ERR_IO, "%s: cannot save (close): %s", path, strerror(errno));
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        st = mv_err(MEDVLM_ERR_IO, "%s: cannot save (rename): %s", path, strerror(errno));
        goto fail;
    }
    created = 0; /* the temporary is now the file */
    if (sync_parent(path) != 0)
        st = mv_err(MEDVLM_ERR_IO, "%s: saved, but its folder could not be synced: %s", path,
                    strerror(errno));
fail:
    if (fd >= 0) close(fd);
    if (created) unlink(tmp);
    mv_free(tmp);
    return st;
}

enum medvlm_status mv_map_file(const char *path, void **map, size_t *size)
{
    *map = NULL;
    *size = 0;
    if (!path) return mv_err(MEDVLM_ERR_ARG, "mv_map_file: path is NULL");
    struct stat sb;
    int fd;
    enum medvlm_status st = open_regular(path, &fd, &sb);
    if (st) return st;
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

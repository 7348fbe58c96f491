/* status.c - status names and the thread-local last-error message. */
#include "core.h"

#include <stdio.h>
#include <string.h>

#define MV_ERR_CAP 2048

static _Thread_local char err_buf[MV_ERR_CAP];

const char *medvlm_last_error(void)
{
    return err_buf;
}

const char *medvlm_status_name(enum medvlm_status st)
{
    switch (st) {
    case MEDVLM_OK:
        return "ok";
    case MEDVLM_ERR_ARG:
        return "invalid argument";
    case MEDVLM_ERR_IO:
        return "i/o error";
    case MEDVLM_ERR_FORMAT:
        return "malformed input";
    case MEDVLM_ERR_SHAPE:
        return "shape mismatch";
    case MEDVLM_ERR_MISSING:
        return "missing";
    case MEDVLM_ERR_NOMEM:
        return "out of memory";
    case MEDVLM_ERR_OVERFLOW:
        return "size overflow";
    case MEDVLM_ERR_UNSUPPORTED:
        return "unsupported";
    case MEDVLM_ERR_LIMIT:
        return "limit exceeded";
    case MEDVLM_ERR_INTERNAL:
        return "internal error";
    }
    return "unknown status";
}

enum medvlm_status mv_err(enum medvlm_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    return st;
}

enum medvlm_status mv_err_ctx(enum medvlm_status st, const char *fmt, ...)
{
    char prefix[512], old[MV_ERR_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err_buf, sizeof old);
    size_t n = strlen(prefix);
    memcpy(err_buf, prefix, n);
    if (n + 2 < sizeof err_buf) {
        err_buf[n++] = ':';
        err_buf[n++] = ' ';
    }
    size_t rest = strlen(old);
    if (rest > sizeof err_buf - 1 - n) rest = sizeof err_buf - 1 - n;
    memcpy(err_buf + n, old, rest);
    err_buf[n + rest] = '\0';
    return st;
}

void mv_err_clear(void)
{
    err_buf[0] = '\0';
}

/* log.c - the logging callback: library diagnostics never go to stdout. */
#include "core.h"

#include <stdio.h>

static void default_log(enum medvlm_log_level level, const char *msg, void *user)
{
    (void)user;
    static const char *names[] = {"debug", "info", "warning", "error"};
    fprintf(stderr, "medvlm: %s: %s\n", names[level], msg);
}

static medvlm_log_fn log_fn = default_log;
static void *log_user;
static enum medvlm_log_level log_min = MEDVLM_LOG_INFO;

void medvlm_set_log(medvlm_log_fn fn, void *user, enum medvlm_log_level min_level)
{
    log_fn = fn;
    log_user = user;
    log_min = min_level;
}

void mv_log(enum medvlm_log_level level, const char *fmt, ...)
{
    if (!log_fn || level < log_min) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log_fn(level, buf, log_user);
}

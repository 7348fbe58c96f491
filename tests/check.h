/*
 * check.h - the tests' assertions. Every failure prints what was compared, the max abs/rel
 * error and the first mismatching index; check_summary() prints "N passed, M failed" and
 * returns the process exit code. Header-only so each test is one .c file.
 */
#ifndef MEDVLM_CHECK_H
#define MEDVLM_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static int check_passed, check_failed;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            check_passed++;                                                                        \
        } else {                                                                                   \
            check_failed++;                                                                        \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

/* Expect a medvlm call to succeed; on failure print medvlm_last_error(). */
#define CHECK_OK(call)                                                                             \
    do {                                                                                           \
        enum medvlm_status st_ = (call);                                                           \
        CHECK(st_ == MEDVLM_OK, "%s -> %s: %s", #call, medvlm_status_name(st_),                    \
              medvlm_last_error());                                                                \
    } while (0)

/* Expect failure with status `want` and a message containing `needle`. */
#define CHECK_ERR(call, want, needle)                                                              \
    do {                                                                                           \
        enum medvlm_status st_ = (call);                                                           \
        CHECK(st_ == (want) && strstr(medvlm_last_error(), (needle)) != NULL,                      \
              "%s -> %s (\"%s\"), expected %s with \"%s\"", #call, medvlm_status_name(st_),        \
              medvlm_last_error(), medvlm_status_name(want), (needle));                            \
    } while (0)

/* |a - ref| <= atol + rtol * |ref| elementwise. */
static inline int check_close_f32(const char *name, const float *a, const float *ref, size_t n,
                                  double atol, double rtol)
{
    double max_abs = 0, max_rel = 0;
    size_t first_bad = (size_t)-1, bad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)ref[i]);
        double r = d / (fabs((double)ref[i]) + 1e-30);
        if (!(d <= atol + rtol * fabs((double)ref[i]))) {
            if (first_bad == (size_t)-1) first_bad = i;
            bad++;
        }
        if (d > max_abs || isnan(d)) max_abs = d;
        if (r > max_rel) max_rel = r;
    }
    if (bad) {
        check_failed++;
        fprintf(stderr,
                "FAIL %s: %zu of %zu elements off (max abs %.3g, max rel %.3g, atol %g rtol %g); "
                "first at [%zu]: got %.9g want %.9g\n",
                name, bad, n, max_abs, max_rel, atol, rtol, first_bad, a[first_bad],
                ref[first_bad]);
        return 0;
    }
    check_passed++;
    return 1;
}

/* Run a shell command; its stdout (and what it redirects) into out (cap bytes, NUL-ended).
 * Returns its exit status, -1 when it could not run or did not exit. */
static inline int check_run(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static inline int check_summary(void)
{
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

/* An environment path the test needs; a missing one fails loudly with how to set it. */
static inline const char *check_env_dir(const char *var, const char *fallback)
{
    const char *v = getenv(var);
    return v && *v ? v : fallback;
}

#endif

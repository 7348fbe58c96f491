/*
 * eval.h - internal header of the evaluation module: metrics (metrics.c) and the report
 * writers (report.c). The public API lives in include/medvlm.h, "metrics" section.
 */
#ifndef MEDVLM_EVAL_H
#define MEDVLM_EVAL_H

#include "../core/core.h"

/* A growing text buffer for reports. After a failed append `failed` is set, later appends
 * do nothing, and mv_eval_buf_take returns NULL. */
struct mv_eval_buf {
    char *data;
    size_t len, cap;
    int failed;
};
void mv_eval_buf_printf(struct mv_eval_buf *b, const char *fmt, ...) MV_PRINTF(2, 3);
void mv_eval_buf_put(struct mv_eval_buf *b, const char *s, size_t n);
/* A CSV field: quoted (with "" for ") when it holds a comma, quote, CR or LF, or starts or
 * ends with a space. */
void mv_eval_buf_csv_field(struct mv_eval_buf *b, const char *s);
/* v with printf's "%*.*f", or "n/a" (right-aligned in width) for NaN: the one way every report
 * writes a score, so that the text table and the HTML report show the same strings. */
void mv_eval_buf_score(struct mv_eval_buf *b, double v, int width, int decimals);
/* s with &, <, >, " and ' as HTML character references (safe in text and quoted attributes). */
void mv_eval_buf_html(struct mv_eval_buf *b, const char *s);
/* n bytes as base64 (RFC 4648, padded). */
void mv_eval_buf_base64(struct mv_eval_buf *b, const uint8_t *data, size_t n);
/* The text (NUL-terminated, caller frees with mv_free) or NULL after a failure. */
char *mv_eval_buf_take(struct mv_eval_buf *b);
void mv_eval_buf_free(struct mv_eval_buf *b);

#endif

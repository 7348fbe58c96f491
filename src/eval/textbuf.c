/* textbuf.c - the growing text buffer the report writers build their output in. */
#include "eval.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int reserve(struct mv_eval_buf *b, size_t extra)
{
    if (b->failed) return 0;
    size_t need;
    if (!mv_add_ok(b->len, extra, &need) || !mv_add_ok(need, 1, &need)) {
        b->failed = 1;
        return 0;
    }
    if (need <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (!mv_mul_ok(cap, 2, &cap)) {
            b->failed = 1;
            return 0;
        }
    }
    char *p = mv_realloc(b->data, cap);
    if (!p) {
        b->failed = 1;
        return 0;
    }
    b->data = p;
    b->cap = cap;
    return 1;
}

void mv_eval_buf_put(struct mv_eval_buf *b, const char *s, size_t n)
{
    if (!reserve(b, n)) return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void mv_eval_buf_printf(struct mv_eval_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if (!reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void mv_eval_buf_csv_field(struct mv_eval_buf *b, const char *s)
{
    size_t n = strlen(s);
    int quote = strpbrk(s, ",\"\r\n") != NULL || (n > 0 && (s[0] == ' ' || s[n - 1] == ' '));
    if (!quote) {
        mv_eval_buf_put(b, s, n);
        return;
    }
    mv_eval_buf_put(b, "\"", 1);
    for (const char *p = s; *p; p++) {
        if (*p == '"') mv_eval_buf_put(b, "\"", 1);
        mv_eval_buf_put(b, p, 1);
    }
    mv_eval_buf_put(b, "\"", 1);
}

char *mv_eval_buf_take(struct mv_eval_buf *b)
{
    if (b->failed || !reserve(b, 0)) {
        mv_eval_buf_free(b);
        return NULL;
    }
    char *s = b->data;
    memset(b, 0, sizeof *b);
    return s;
}

void mv_eval_buf_free(struct mv_eval_buf *b)
{
    mv_free(b->data);
    memset(b, 0, sizeof *b);
}

void mv_eval_buf_score(struct mv_eval_buf *b, double v, int width, int decimals)
{
    if (isnan(v))
        mv_eval_buf_printf(b, "%*s", width, "n/a");
    else
        mv_eval_buf_printf(b, "%*.*f", width, decimals, v);
}

void mv_eval_buf_html(struct mv_eval_buf *b, const char *s)
{
    const char *run = s;
    for (const char *p = s;; p++) {
        const char *rep = NULL;
        switch (*p) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&#39;";
            break;
        case '\0':
            mv_eval_buf_put(b, run, (size_t)(p - run));
            return;
        }
        if (rep) {
            mv_eval_buf_put(b, run, (size_t)(p - run));
            mv_eval_buf_put(b, rep, strlen(rep));
            run = p + 1;
        }
    }
}

void mv_eval_buf_base64(struct mv_eval_buf *b, const uint8_t *data, size_t n)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char q[4];
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16;
        if (i + 1 < n) v |= (uint32_t)data[i + 1] << 8;
        if (i + 2 < n) v |= data[i + 2];
        q[0] = abc[v >> 18 & 63];
        q[1] = abc[v >> 12 & 63];
        q[2] = i + 1 < n ? abc[v >> 6 & 63] : '=';
        q[3] = i + 2 < n ? abc[v & 63] : '=';
        mv_eval_buf_put(b, q, 4);
    }
}

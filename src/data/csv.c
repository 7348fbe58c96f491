/*
 * csv.c - CSV label tables (RFC 4180): comma-separated fields, double-quoted fields may hold
 * commas, "" (one quote) and line breaks; lines end with LF or CRLF; a UTF-8 byte-order mark
 * is skipped; blank lines are skipped (as pandas does). A NUL byte, text after a closing
 * quote and an unterminated quote are errors naming the line.
 */
#include "data.h"

#include <string.h>

/* Scratch for one field being unquoted. */
struct field {
    char *buf;
    size_t len, cap;
};

static enum medvlm_status field_put(struct field *f, char c)
{
    if (f->len + 1 >= f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 256;
        char *p = mv_realloc(f->buf, cap);
        if (!p) return MEDVLM_ERR_NOMEM;
        f->buf = p;
        f->cap = cap;
    }
    f->buf[f->len++] = c;
    return MEDVLM_OK;
}

enum medvlm_status mv_csv_parse(const char *path, const char *data, size_t len,
                                struct medvlm_table **out)
{
    struct mv_table_builder b = {0};
    struct field f = {0};
    enum medvlm_status st = MEDVLM_OK;
    *out = NULL;
    size_t i = 0;
    int line = 1;
    const char *nulp = memchr(data, '\0', len);
    if (nulp) {
        for (const char *q = data; q < nulp; q++) line += *q == '\n';
        goto nul;
    }
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) i = 3;
    while (i < len) {
        /* one record; a blank line is no record */
        int row_line = line;
        if (data[i] == '\n' || (data[i] == '\r' && i + 1 < len && data[i + 1] == '\n')) {
            i += data[i] == '\r' ? 2 : 1;
            line++;
            continue;
        }
        for (;;) { /* one field */
            f.len = 0;
            if (i < len && data[i] == '"') {
                int quote_line = line;
                i++;
                for (;;) {
                    if (i >= len) {
                        st = mv_err(MEDVLM_ERR_FORMAT,
                                    "%s: line %d: a quoted field is never "
                                    "closed (expected a closing \")",
                                    path, quote_line);
                        goto fail;
                    }
                    char c = data[i];
                    if (c == '"') {
                        if (i + 1 < len && data[i + 1] == '"') {
                            if ((st = field_put(&f, '"'))) goto nomem;
                            i += 2;
                            continue;
                        }
                        i++;
                        break;
                    }
                    if (c == '\n') line++;
                    if ((st = field_put(&f, c))) goto nomem;
                    i++;
                }
                if (i < len && data[i] != ',' && data[i] != '\n' &&
                    !(data[i] == '\r' && i + 1 < len && data[i + 1] == '\n') &&
                    !(data[i] == '\r' && i + 1 == len)) {
                    st = mv_err(MEDVLM_ERR_FORMAT,
                                "%s: line %d: expected ',' or the end of the "
                                "line after a closing quote, got '%c'",
                                path, line, (unsigned char)data[i] >= 0x20 ? data[i] : '?');
                    goto fail;
                }
            } else { /* unquoted: the bytes themselves, no copy */
                size_t start = i;
                while (i < len && data[i] != ',' && data[i] != '\n' &&
                       !(data[i] == '\r' && (i + 1 == len || data[i + 1] == '\n')))
                    i++;
                if ((st = mv_tb_cell(&b, data + start, i - start))) goto fail;
                goto next_field;
            }
            if ((st = mv_tb_cell(&b, f.buf ? f.buf : "", f.len))) goto fail;
        next_field:
            if (i < len && data[i] == ',') {
                i++;
                continue;
            }
            break; /* end of line or of the data */
        }
        if (i < len) { /* the line break */
            i += data[i] == '\r' ? 2 : 1;
            if (i > len) i = len;
            line++;
        }
        if ((st = mv_tb_end_row(&b, row_line))) goto fail;
    }
    mv_free(f.buf);
    return mv_tb_finish(&b, path, 0, out);
nul:
    st = mv_err(MEDVLM_ERR_FORMAT,
                "%s: line %d: a NUL byte (expected text; is this a binary "
                "file?)",
                path, line);
    goto fail;
nomem:
    st = mv_err(MEDVLM_ERR_NOMEM, "%s: out of memory reading the table", path);
fail:
    mv_free(f.buf);
    mv_tb_free(&b);
    return st;
}

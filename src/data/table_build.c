/*
 * table_build.c - the row builder the CSV and xlsx readers fill, and the struct medvlm_table
 * it assembles (and frees).
 */
#include "data.h"

#include <limits.h>
#include <string.h>

/* A table and the arena holding its texts (header and cells point into it). */
struct table_owned {
    struct medvlm_table t;
    struct mv_arena arena;
};

enum medvlm_status mv_tb_cell(struct mv_table_builder *b, const char *s, size_t len)
{
    if (b->n_cells >= MV_TABLE_MAX_CELLS || len > MV_TABLE_MAX_BYTES - b->bytes)
        return mv_err(MEDVLM_ERR_LIMIT, "table larger than the limit of %zu cells / %zu bytes",
                      MV_TABLE_MAX_CELLS, MV_TABLE_MAX_BYTES);
    if (b->n_cells == b->cap_cells) {
        size_t cap = b->cap_cells ? b->cap_cells * 2 : 64;
        char **p = mv_realloc(b->cells, cap * sizeof *p);
        if (!p) return MEDVLM_ERR_NOMEM;
        b->cells = p;
        b->cap_cells = cap;
    }
    if (!b->arena.block_size) mv_arena_init(&b->arena, 64 * 1024);
    char *c = mv_arena_alloc(&b->arena, len + 1);
    if (!c) return MEDVLM_ERR_NOMEM;
    memcpy(c, s, len);
    c[len] = '\0';
    b->cells[b->n_cells++] = c;
    b->bytes += len;
    return MEDVLM_OK;
}

size_t mv_tb_row_len(const struct mv_table_builder *b)
{
    return b->n_cells - b->row_first;
}

void mv_tb_drop_row(struct mv_table_builder *b)
{
    b->n_cells = b->row_first; /* the texts stay in the arena until the table goes */
}

enum medvlm_status mv_tb_end_row(struct mv_table_builder *b, int line)
{
    if (b->n_rows + 2 > b->cap_rows) {
        size_t cap = b->cap_rows ? b->cap_rows * 2 : 64;
        if (cap > (size_t)INT_MAX) return mv_err(MEDVLM_ERR_LIMIT, "table has too many rows");
        size_t *rs = mv_realloc(b->row_start, cap * sizeof *rs);
        if (!rs) return MEDVLM_ERR_NOMEM;
        b->row_start = rs;
        int *rl = mv_realloc(b->row_line, cap * sizeof *rl);
        if (!rl) return MEDVLM_ERR_NOMEM;
        b->row_line = rl;
        b->cap_rows = cap;
    }
    b->row_start[b->n_rows] = b->row_first;
    b->row_line[b->n_rows] = line;
    b->n_rows++;
    b->row_start[b->n_rows] = b->n_cells;
    b->row_first = b->n_cells;
    return MEDVLM_OK;
}

void mv_tb_free(struct mv_table_builder *b)
{
    mv_arena_free(&b->arena);
    mv_free(b->cells);
    mv_free(b->row_start);
    mv_free(b->row_line);
    memset(b, 0, sizeof *b);
}

void medvlm_table_free(struct medvlm_table *t)
{
    if (!t) return;
    struct table_owned *o = (struct table_owned *)t; /* t is the first member */
    mv_free(t->header);
    mv_free(t->cells);
    mv_free(t->line);
    mv_free(t->path);
    mv_arena_free(&o->arena);
    mv_free(o);
}

/* The spreadsheet name of a 0-based column: A, B, ..., Z, AA, ... */
static void column_letters(int col, char *buf)
{
    char tmp[16];
    int n = 0;
    col++;
    while (col > 0 && n < 15) {
        int r = (col - 1) % 26;
        tmp[n++] = (char)('A' + r);
        col = (col - 1) / 26;
    }
    for (int i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
    buf[n] = '\0';
}

enum medvlm_status mv_tb_finish(struct mv_table_builder *b, const char *path, int pad,
                                struct medvlm_table **out)
{
    enum medvlm_status st = MEDVLM_OK;
    struct medvlm_table *t = NULL;
    *out = NULL;
    if (mv_tb_row_len(b) > 0) {
        st = mv_err(MEDVLM_ERR_INTERNAL, "%s: unterminated row", path);
        goto fail;
    }
    if (b->n_rows == 0) {
        st = mv_err(MEDVLM_ERR_FORMAT,
                    "%s: the table is empty (expected a header row with "
                    "column names)",
                    path);
        goto fail;
    }
    int ncols = (int)(b->row_start[1] - b->row_start[0]);
    if (pad) /* trailing empty header cells are not columns */
        while (ncols > 0 && b->cells[b->row_start[0] + (size_t)ncols - 1][0] == '\0') ncols--;
    if (ncols == 0) {
        st =
            mv_err(MEDVLM_ERR_FORMAT, "%s: line %d: the header row is empty", path, b->row_line[0]);
        goto fail;
    }
    struct table_owned *own = mv_calloc(1, sizeof *own);
    if (!own) goto nomem;
    t = &own->t;
    own->arena = b->arena; /* the texts move with the table */
    memset(&b->arena, 0, sizeof b->arena);
    t->n_cols = ncols;
    t->line_word = pad ? "row" : "line";
    t->n_rows = (int)(b->n_rows - 1);
    t->path = mv_strdup(path);
    t->header = mv_calloc((size_t)ncols, sizeof *t->header);
    size_t total;
    if (!mv_mul_ok((size_t)t->n_rows, (size_t)ncols, &total) || total > MV_TABLE_MAX_CELLS * 4) {
        st = mv_err(MEDVLM_ERR_LIMIT, "%s: table too large", path);
        goto fail;
    }
    t->cells = mv_calloc(total + 1, sizeof *t->cells);
    t->line = mv_calloc((size_t)t->n_rows + 1, sizeof *t->line);
    if (!t->path || !t->header || !t->cells || !t->line) goto nomem;
    for (int c = 0; c < ncols; c++) t->header[c] = b->cells[b->row_start[0] + (size_t)c];
    for (size_t r = 1; r < b->n_rows; r++) {
        size_t first = b->row_start[r], len = b->row_start[r + 1] - first;
        int line = b->row_line[r];
        if (!pad && len != (size_t)ncols) {
            st = mv_err(MEDVLM_ERR_FORMAT,
                        "%s: line %d: expected %d fields as in the header, "
                        "got %zu",
                        path, line, ncols, len);
            goto fail;
        }
        for (size_t c = (size_t)ncols; c < len; c++) {
            if (b->cells[first + c][0] != '\0') {
                char col[16];
                column_letters((int)c, col);
                st = mv_err(MEDVLM_ERR_FORMAT,
                            "%s: row %d: a value in column %s, beyond the "
                            "header's %d columns",
                            path, line, col, ncols);
                goto fail;
            }
        }
        char **dst = t->cells + (r - 1) * (size_t)ncols;
        for (int c = 0; c < ncols; c++) {
            if ((size_t)c < len) {
                dst[c] = b->cells[first + (size_t)c];
            } else {
                dst[c] = mv_arena_alloc(&own->arena, 1);
                if (!dst[c]) goto nomem;
                dst[c][0] = '\0';
            }
        }
        t->line[r - 1] = line;
    }
    mv_tb_free(b);
    *out = t;
    return MEDVLM_OK;
nomem:
    st = mv_err(MEDVLM_ERR_NOMEM, "%s: out of memory reading the table", path);
fail:
    mv_tb_free(b);
    medvlm_table_free(t);
    return st;
}

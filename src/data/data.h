/*
 * data.h - internal header of the data module: label tables (csv.c, xlsx.c, table.c),
 * datasets (dataset.c), Python's random module (pyrandom.c) and few-shot sampling
 * (fewshot.c). The public API lives in include/medvlm.h, "datasets" section.
 */
#ifndef MEDVLM_DATA_H
#define MEDVLM_DATA_H

#include "../core/core.h"

/* ---- table builder: the readers append cells row by row; table.c assembles the table ---- */

struct mv_table_builder {
    struct mv_arena arena; /* the cell texts; handed to the table */
    char **cells;          /* all cells, row after row (into arena) */
    size_t n_cells, cap_cells;
    size_t *row_start; /* (n_rows + 1) index of each row's first cell */
    int *row_line;
    size_t n_rows, cap_rows;
    size_t row_first; /* first cell of the row being built */
    size_t bytes;     /* total text held, against MV_TABLE_MAX_BYTES */
};
#define MV_TABLE_MAX_BYTES ((size_t)1 << 30)
#define MV_TABLE_MAX_CELLS ((size_t)1 << 26)

/* Append one cell (len bytes, copied) to the current row. */
enum medvlm_status mv_tb_cell(struct mv_table_builder *b, const char *s, size_t len);
/* Close the current row (line = its 1-based line or sheet row, for messages). */
enum medvlm_status mv_tb_end_row(struct mv_table_builder *b, int line);
/* Cells in the row being built. */
size_t mv_tb_row_len(const struct mv_table_builder *b);
/* Forget the cells of the row being built. */
void mv_tb_drop_row(struct mv_table_builder *b);
/* The first row becomes the header. ragged: "error" (CSV: a row with a different field
 * count is an error naming path and line) or "pad" (xlsx: short rows padded with "",
 * long rows may only have empty cells beyond the header). Consumes b. */
enum medvlm_status mv_tb_finish(struct mv_table_builder *b, const char *path, int pad,
                                struct medvlm_table **out);
void mv_tb_free(struct mv_table_builder *b);

/* Parse CSV / xlsx bytes held in memory (used by medvlm_table_load and the fuzzers). */
enum medvlm_status mv_csv_parse(const char *path, const char *data, size_t len,
                                struct medvlm_table **out);
enum medvlm_status mv_xlsx_parse(const char *path, const void *data, size_t len, const char *sheet,
                                 struct medvlm_table **out);

/* ---- CPython's `random` module: MT19937 with random.seed(int), getrandbits, _randbelow
 * and shuffle, bit for bit (checked against /usr/bin/python3). ---- */

struct mv_pyrandom {
    uint32_t mt[624];
    int index;
};
/* random.seed(seed) for an int: init_by_array with |seed| split in 32-bit words, least
 * significant first ([0] for 0). */
void mv_pyrandom_seed(struct mv_pyrandom *r, int64_t seed);
uint32_t mv_pyrandom_u32(struct mv_pyrandom *r); /* genrand_uint32 */
/* random.getrandbits(k), 0 <= k <= 64: 32-bit words filled least significant first, the
 * last one shifted right by 32 - (k mod 32 or 32). */
uint64_t mv_pyrandom_getrandbits(struct mv_pyrandom *r, int k);
/* random._randbelow(n) for n >= 1: rejection sampling on getrandbits(n.bit_length()). */
uint64_t mv_pyrandom_below(struct mv_pyrandom *r, uint64_t n);
/* random.shuffle(x) on an int array. */
void mv_pyrandom_shuffle_int(struct mv_pyrandom *r, int *x, size_t n);

#endif

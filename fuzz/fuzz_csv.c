/* fuzz_csv.c - the CSV label-table reader on arbitrary bytes. */
#include "data/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct medvlm_table *t = NULL;
    if (mv_csv_parse("fuzz.csv", (const char *)data, size, &t) == MEDVLM_OK) {
        /* every cell is a string; the lookup walks the header */
        (void)medvlm_table_column(t, "Path");
        size_t total = 0;
        for (size_t i = 0; i < (size_t)t->n_rows * (size_t)t->n_cols; i++)
            total += t->cells[i][0] != 0;
        (void)total;
        medvlm_table_free(t);
    }
    return 0;
}

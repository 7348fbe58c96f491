/* fuzz_xlsx.c - the .xlsx reader (zip + workbook, rels, shared strings, sheet XML) on
 * arbitrary bytes; the first sheet, and the sheet named "Labels". */
#include "data/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct medvlm_table *t = NULL;
    if (mv_xlsx_parse("fuzz.xlsx", data, size, NULL, &t) == MEDVLM_OK) {
        (void)medvlm_table_column(t, "image_name");
        medvlm_table_free(t);
        t = NULL;
    }
    if (mv_xlsx_parse("fuzz.xlsx", data, size, "Labels", &t) == MEDVLM_OK) medvlm_table_free(t);
    return 0;
}

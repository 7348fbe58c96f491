/*
 * table.c - label tables: medvlm_table_load choosing the reader (csv.c, xlsx.c) by the file's
 * bytes, and looking up a column. The readers build the table through table_build.c.
 */
#include "data.h"

#include <strings.h>
#include <string.h>

int medvlm_table_column(const struct medvlm_table *t, const char *name)
{
    if (!t || !name) return -1;
    for (int c = 0; c < t->n_cols; c++)
        if (strcasecmp(t->header[c], name) == 0) return c;
    return -1;
}

enum medvlm_status medvlm_table_load(const char *path, const char *sheet, struct medvlm_table **out)
{
    if (!out) return mv_err(MEDVLM_ERR_ARG, "table: out must not be NULL");
    *out = NULL;
    if (!path) return mv_err(MEDVLM_ERR_ARG, "table: no path given");
    char *data = NULL;
    size_t len = 0;
    enum medvlm_status st = mv_read_file(path, &data, &len);
    if (st) return st;
    if (len >= 4 && memcmp(data, "PK\3\4", 4) == 0) {
        st = mv_xlsx_parse(path, data, len, sheet, out);
    } else {
        size_t pl = strlen(path);
        if (pl >= 5 &&
            (strcasecmp(path + pl - 5, ".xlsx") == 0 || strcasecmp(path + pl - 5, ".xlsm") == 0)) {
            st = mv_err(MEDVLM_ERR_FORMAT,
                        "%s: not an .xlsx file (expected a zip archive "
                        "starting with PK, got %s)",
                        path, len == 0 ? "an empty file" : "other bytes");
        } else if (sheet) {
            st = mv_err(MEDVLM_ERR_ARG,
                        "%s: a sheet ('%s') was asked for, but the file is "
                        "CSV, not .xlsx",
                        path, sheet);
        } else {
            st = mv_csv_parse(path, data, len, out);
        }
    }
    mv_free(data);
    return st;
}

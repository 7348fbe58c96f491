/*
 * xlsx.c - the cells of one sheet of an Office Open XML workbook (.xlsx), read with libzip
 * and expat, streaming each XML part in chunks.
 *
 * An .xlsx is a zip of XML parts. xl/workbook.xml lists the sheets (name, r:id) in order;
 * xl/_rels/workbook.xml.rels maps each r:id to its part (e.g. worksheets/sheet1.xml,
 * relative to xl/); xl/sharedStrings.xml holds the strings cells refer to by index
 * (<si><t>text</t></si>, or rich text runs <si><r><t>..</t></r>..</si>, phonetic <rPh>
 * ignored). A sheet is <sheetData><row r="1"><c r="A1" t="s"><v>0</v></c>..</row>..; the cell
 * type t is s (shared string), inlineStr (<is><t>), str (formula result), b (0/1), e (error
 * text), d (ISO date) or n / absent (number, its text kept as stored). Rows and cells may be
 * sparse: missing cells are "", rows with no non-empty cell are skipped. Element and
 * attribute names are matched without their namespace prefix.
 */
#include "data.h"

#include <expat.h>
#include <stdio.h>
#include <string.h>
#include <zip.h>

#define XLSX_MAX_PART ((zip_uint64_t)1 << 29) /* decompressed bytes per part */
#define XLSX_MAX_COLS 16384                   /* Excel's limit: column XFD */

enum part { PART_WORKBOOK, PART_RELS, PART_STRINGS, PART_SHEET };

struct sheet_ref {
    char *name, *rid;
};

struct xlsx {
    const char *path;
    enum part part;
    enum medvlm_status st; /* first error in a callback; parsing stops */
    XML_Parser parser;
    /* workbook */
    struct sheet_ref *sheets;
    int n_sheets, cap_sheets;
    /* rels: the target of the wanted r:id */
    const char *want_rid;
    char *target;
    /* shared strings */
    char **strings;
    size_t n_strings, cap_strings;
    int in_si, rph_depth, in_t;
    /* text being collected */
    char *text;
    size_t text_len, text_cap;
    /* sheet */
    struct mv_table_builder b;
    int in_sheetdata, in_row, in_cell, in_v, in_is;
    int row_num, row_nonempty, next_col;
    int cell_col;
    char cell_type[16];
};

static const char *local_name(const char *n)
{
    const char *c = strrchr(n, ':');
    return c ? c + 1 : n;
}

static const char *attr(const char **atts, const char *name, int want_prefixed)
{
    for (int i = 0; atts[i]; i += 2) {
        int prefixed = strchr(atts[i], ':') != NULL;
        if (want_prefixed >= 0 && prefixed != want_prefixed) continue;
        if (strcmp(local_name(atts[i]), name) == 0) return atts[i + 1];
    }
    return NULL;
}

static void fail_at(struct xlsx *x, enum medvlm_status st)
{
    if (!x->st) x->st = st;
    XML_StopParser(x->parser, XML_FALSE);
}

static int text_put(struct xlsx *x, const char *s, int len)
{
    if (len <= 0) return 1;
    size_t need = x->text_len + (size_t)len + 1;
    if (need > MV_TABLE_MAX_BYTES) {
        fail_at(x, mv_err(MEDVLM_ERR_LIMIT, "%s: a cell text is longer than %zu bytes", x->path,
                          MV_TABLE_MAX_BYTES));
        return 0;
    }
    if (need > x->text_cap) {
        size_t cap = x->text_cap ? x->text_cap : 256;
        while (cap < need) cap *= 2;
        char *p = mv_realloc(x->text, cap);
        if (!p) {
            fail_at(x, MEDVLM_ERR_NOMEM);
            return 0;
        }
        x->text = p;
        x->text_cap = cap;
    }
    memcpy(x->text + x->text_len, s, (size_t)len);
    x->text_len += (size_t)len;
    x->text[x->text_len] = '\0';
    return 1;
}

/* "AB12" -> column 27 (0-based), row 12; -1 when there are no letters / digits. */
static void parse_ref(const char *r, int *col, int *row)
{
    int c = 0, n = 0;
    const char *p = r;
    while (*p >= 'A' && *p <= 'Z' && c <= XLSX_MAX_COLS) {
        c = c * 26 + (*p - 'A' + 1);
        p++;
        n++;
    }
    *col = n ? c - 1 : -1;
    long rv = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9' && rv < 100000000) {
        rv = rv * 10 + (*p - '0');
        p++;
        digits++;
    }
    *row = digits && !*p ? (int)rv : -1;
    if (*p) *col = -1;
}

static int parse_uint(const char *s, long max, long *out)
{
    long v = 0;
    if (!*s) return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return 0;
        v = v * 10 + (*s - '0');
        if (v > max) return 0;
    }
    *out = v;
    return 1;
}

/* ---- the cell being closed: its text by type, placed at its column ---- */

static void emit_cell(struct xlsx *x)
{
    const char *val = x->text ? x->text : "";
    size_t len = x->text_len;
    const char *t = x->cell_type;
    int line = (int)XML_GetCurrentLineNumber(x->parser);
    if (len == 0) { /* no value: a gap (still checked for order) */
    } else if (strcmp(t, "s") == 0) {
        long idx;
        if (!parse_uint(val, 1L << 30, &idx) || (size_t)idx >= x->n_strings) {
            fail_at(x, mv_err(MEDVLM_ERR_FORMAT,
                              "%s: sheet row %d: shared string index '%.40s' "
                              "is not one of the %zu strings",
                              x->path, x->row_num, val, x->n_strings));
            return;
        }
        val = x->strings[idx];
        len = strlen(val);
    } else if (strcmp(t, "b") == 0) {
        if (len) {
            val = strcmp(val, "0") == 0 ? "FALSE" : "TRUE";
            len = strlen(val);
        }
    }
    if (x->cell_col < x->next_col) {
        fail_at(x, mv_err(MEDVLM_ERR_FORMAT,
                          "%s: sheet row %d (XML line %d): cells out of "
                          "order (expected columns left to right)",
                          x->path, x->row_num, line));
        return;
    }
    if (len == 0) return; /* an empty cell is a gap */
    while (x->next_col < x->cell_col) {
        enum medvlm_status st = mv_tb_cell(&x->b, "", 0);
        if (st) {
            fail_at(x, st);
            return;
        }
        x->next_col++;
    }
    enum medvlm_status st = mv_tb_cell(&x->b, val, len);
    if (st) {
        fail_at(x, st);
        return;
    }
    x->next_col++;
    x->row_nonempty = 1;
}

/* ---- expat callbacks, one set for every part ---- */

static void XMLCALL on_start(void *ud, const char *name, const char **atts)
{
    struct xlsx *x = ud;
    const char *n = local_name(name);
    switch (x->part) {
    case PART_WORKBOOK:
        if (strcmp(n, "sheet") == 0) {
            const char *sn = attr(atts, "name", 0), *rid = attr(atts, "id", 1);
            if (!sn || !rid) {
                fail_at(x, mv_err(MEDVLM_ERR_FORMAT,
                                  "%s: xl/workbook.xml line %d: a <sheet> "
                                  "without name or r:id",
                                  x->path, (int)XML_GetCurrentLineNumber(x->parser)));
                return;
            }
            if (x->n_sheets == x->cap_sheets) {
                int cap = x->cap_sheets ? x->cap_sheets * 2 : 8;
                if (cap > 1 << 16) {
                    fail_at(x, mv_err(MEDVLM_ERR_LIMIT, "%s: too many sheets", x->path));
                    return;
                }
                struct sheet_ref *p = mv_realloc(x->sheets, (size_t)cap * sizeof *p);
                if (!p) {
                    fail_at(x, MEDVLM_ERR_NOMEM);
                    return;
                }
                x->sheets = p;
                x->cap_sheets = cap;
            }
            struct sheet_ref *s = &x->sheets[x->n_sheets++];
            s->name = mv_strdup(sn);
            s->rid = mv_strdup(rid);
            if (!s->name || !s->rid) fail_at(x, MEDVLM_ERR_NOMEM);
        }
        break;
    case PART_RELS:
        if (strcmp(n, "Relationship") == 0 && !x->target) {
            const char *id = attr(atts, "Id", -1), *tg = attr(atts, "Target", -1);
            if (id && tg && strcmp(id, x->want_rid) == 0) {
                x->target = mv_strdup(tg);
                if (!x->target) fail_at(x, MEDVLM_ERR_NOMEM);
            }
        }
        break;
    case PART_STRINGS:
        if (strcmp(n, "si") == 0) {
            x->in_si = 1;
            x->text_len = 0;
            if (x->text) x->text[0] = '\0';
        } else if (strcmp(n, "rPh") == 0) {
            x->rph_depth++;
        } else if (strcmp(n, "t") == 0 && x->in_si && !x->rph_depth) {
            x->in_t = 1;
        }
        break;
    case PART_SHEET:
        if (strcmp(n, "sheetData") == 0) {
            x->in_sheetdata = 1;
        } else if (x->in_sheetdata && strcmp(n, "row") == 0) {
            const char *r = attr(atts, "r", -1);
            long rv;
            x->row_num = r && parse_uint(r, 1L << 24, &rv) ? (int)rv : x->row_num + 1;
            x->in_row = 1;
            x->row_nonempty = 0;
            x->next_col = 0;
        } else if (x->in_row && strcmp(n, "c") == 0) {
            const char *r = attr(atts, "r", -1), *t = attr(atts, "t", -1);
            int col = x->next_col, row;
            if (r) {
                parse_ref(r, &col, &row);
                if (col < 0 || col >= XLSX_MAX_COLS) {
                    fail_at(x, mv_err(MEDVLM_ERR_FORMAT,
                                      "%s: sheet row %d: bad cell reference "
                                      "'%.20s' (expected a column and row such as B7)",
                                      x->path, x->row_num, r));
                    return;
                }
            }
            x->cell_col = col;
            snprintf(x->cell_type, sizeof x->cell_type, "%s", t ? t : "n");
            x->in_cell = 1;
            x->text_len = 0;
            if (x->text) x->text[0] = '\0';
        } else if (x->in_cell && strcmp(n, "v") == 0) {
            x->in_v = 1;
        } else if (x->in_cell && strcmp(n, "is") == 0) {
            x->in_is = 1;
        } else if (x->in_is && strcmp(n, "rPh") == 0) {
            x->rph_depth++;
        } else if (x->in_is && strcmp(n, "t") == 0 && !x->rph_depth) {
            x->in_t = 1;
        }
        break;
    }
}

static void XMLCALL on_end(void *ud, const char *name)
{
    struct xlsx *x = ud;
    const char *n = local_name(name);
    if (x->part == PART_STRINGS) {
        if (strcmp(n, "t") == 0) {
            x->in_t = 0;
        } else if (strcmp(n, "rPh") == 0) {
            if (x->rph_depth) x->rph_depth--;
        } else if (strcmp(n, "si") == 0 && x->in_si) {
            x->in_si = 0;
            if (x->n_strings == x->cap_strings) {
                size_t cap = x->cap_strings ? x->cap_strings * 2 : 256;
                if (cap > MV_TABLE_MAX_CELLS) {
                    fail_at(x, mv_err(MEDVLM_ERR_LIMIT, "%s: too many shared strings", x->path));
                    return;
                }
                char **p = mv_realloc(x->strings, cap * sizeof *p);
                if (!p) {
                    fail_at(x, MEDVLM_ERR_NOMEM);
                    return;
                }
                x->strings = p;
                x->cap_strings = cap;
            }
            char *s = mv_strndup(x->text ? x->text : "", x->text_len);
            if (!s) {
                fail_at(x, MEDVLM_ERR_NOMEM);
                return;
            }
            x->strings[x->n_strings++] = s;
        }
    } else if (x->part == PART_SHEET) {
        if (strcmp(n, "v") == 0) {
            x->in_v = 0;
        } else if (strcmp(n, "t") == 0) {
            x->in_t = 0;
        } else if (strcmp(n, "rPh") == 0) {
            if (x->rph_depth) x->rph_depth--;
        } else if (strcmp(n, "is") == 0) {
            x->in_is = 0;
        } else if (strcmp(n, "c") == 0 && x->in_cell) {
            x->in_cell = 0;
            emit_cell(x);
        } else if (strcmp(n, "row") == 0 && x->in_row) {
            x->in_row = 0;
            if (x->row_nonempty) {
                enum medvlm_status st = mv_tb_end_row(&x->b, x->row_num);
                if (st) fail_at(x, st);
            } else {
                /* drop the empty cells a row without values may have placed */
                mv_tb_drop_row(&x->b);
            }
        } else if (strcmp(n, "sheetData") == 0) {
            x->in_sheetdata = 0;
        }
    }
}

static void XMLCALL on_text(void *ud, const char *s, int len)
{
    struct xlsx *x = ud;
    if (x->part == PART_STRINGS) {
        if (x->in_t) text_put(x, s, len);
    } else if (x->part == PART_SHEET && x->in_cell) {
        if (x->in_v || (x->in_is && x->in_t)) text_put(x, s, len);
    }
}

/* Stream one zip entry through a fresh expat parser with the callbacks above. */
static enum medvlm_status parse_part(struct xlsx *x, zip_t *za, const char *entry, enum part part,
                                     int optional)
{
    zip_int64_t idx = zip_name_locate(za, entry, 0);
    if (idx < 0) {
        if (optional) return MEDVLM_OK;
        return mv_err(MEDVLM_ERR_FORMAT,
                      "%s: not a valid .xlsx workbook: the archive has no "
                      "%s",
                      x->path, entry);
    }
    zip_stat_t zs;
    if (zip_stat_index(za, (zip_uint64_t)idx, 0, &zs) != 0)
        return mv_err(MEDVLM_ERR_FORMAT, "%s: %s: %s", x->path, entry, zip_strerror(za));
    if ((zs.valid & ZIP_STAT_SIZE) && zs.size > XLSX_MAX_PART)
        return mv_err(MEDVLM_ERR_LIMIT,
                      "%s: %s is %llu bytes uncompressed, over the limit of "
                      "%llu",
                      x->path, entry, (unsigned long long)zs.size,
                      (unsigned long long)XLSX_MAX_PART);
    zip_file_t *zf = zip_fopen_index(za, (zip_uint64_t)idx, 0);
    if (!zf)
        return mv_err(MEDVLM_ERR_FORMAT, "%s: cannot open %s in the archive: %s", x->path, entry,
                      zip_strerror(za));
    XML_Parser p = XML_ParserCreate(NULL);
    if (!p) {
        zip_fclose(zf);
        return MEDVLM_ERR_NOMEM;
    }
    x->parser = p;
    x->part = part;
    x->st = MEDVLM_OK;
    XML_SetUserData(p, x);
    XML_SetElementHandler(p, on_start, on_end);
    XML_SetCharacterDataHandler(p, on_text);
    enum medvlm_status st = MEDVLM_OK;
    char buf[65536];
    zip_uint64_t total = 0;
    for (;;) {
        zip_int64_t got = zip_fread(zf, buf, sizeof buf);
        if (got < 0) {
            st = mv_err(MEDVLM_ERR_FORMAT, "%s: %s: corrupt data in the archive: %s", x->path,
                        entry, zip_file_strerror(zf));
            break;
        }
        total += (zip_uint64_t)got;
        if (total > XLSX_MAX_PART) {
            st = mv_err(MEDVLM_ERR_LIMIT, "%s: %s is larger than the limit of %llu bytes", x->path,
                        entry, (unsigned long long)XLSX_MAX_PART);
            break;
        }
        if (XML_Parse(p, buf, (int)got, got == 0) != XML_STATUS_OK) {
            if (x->st) {
                st = x->st;
            } else {
                st = mv_err(MEDVLM_ERR_FORMAT, "%s: %s line %lu column %lu: bad XML: %s", x->path,
                            entry, (unsigned long)XML_GetCurrentLineNumber(p),
                            (unsigned long)XML_GetCurrentColumnNumber(p),
                            XML_ErrorString(XML_GetErrorCode(p)));
            }
            break;
        }
        if (x->st) {
            st = x->st;
            break;
        }
        if (got == 0) break;
    }
    XML_ParserFree(p);
    x->parser = NULL;
    zip_fclose(zf);
    return st;
}

/* The part a relationship target names: relative to xl/, or absolute from the root. */
static char *resolve_target(const char *target)
{
    if (target[0] == '/') return mv_strdup(target + 1);
    const char *t = target;
    while (strncmp(t, "./", 2) == 0) t += 2;
    return mv_asprintf("xl/%s", t);
}

enum medvlm_status mv_xlsx_parse(const char *path, const void *data, size_t len, const char *sheet,
                                 struct medvlm_table **out)
{
    enum medvlm_status st = MEDVLM_OK;
    struct xlsx x = {.path = path};
    zip_t *za = NULL;
    char *part = NULL;
    *out = NULL;
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(data, len, 0, &ze);
    if (src) {
        za = zip_open_from_source(src, ZIP_RDONLY, &ze);
        if (!za) zip_source_free(src);
    }
    if (!za) {
        st = mv_err(MEDVLM_ERR_FORMAT, "%s: not an .xlsx file (expected a zip archive): %s", path,
                    zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return st;
    }
    zip_error_fini(&ze);

    if ((st = parse_part(&x, za, "xl/workbook.xml", PART_WORKBOOK, 0))) goto fail;
    if (x.n_sheets == 0) {
        st = mv_err(MEDVLM_ERR_FORMAT, "%s: the workbook lists no sheet", path);
        goto fail;
    }
    int which = 0;
    if (sheet) {
        which = -1;
        for (int i = 0; i < x.n_sheets && which < 0; i++)
            if (strcmp(x.sheets[i].name, sheet) == 0) which = i;
        if (which < 0) {
            char names[512] = "";
            size_t used = 0;
            for (int i = 0; i < x.n_sheets && used + 4 < sizeof names; i++) {
                int w = snprintf(names + used, sizeof names - used, "%s'%s'", i ? ", " : "",
                                 x.sheets[i].name);
                if (w < 0) break;
                used += (size_t)w;
                if (used >= sizeof names) used = sizeof names - 1;
            }
            st = mv_err(MEDVLM_ERR_MISSING, "%s: no sheet named '%s' (the workbook has %s)", path,
                        sheet, names);
            goto fail;
        }
    }
    x.want_rid = x.sheets[which].rid;
    if ((st = parse_part(&x, za, "xl/_rels/workbook.xml.rels", PART_RELS, 0))) goto fail;
    if (!x.target) {
        st = mv_err(MEDVLM_ERR_FORMAT,
                    "%s: xl/_rels/workbook.xml.rels has no relationship %s "
                    "for sheet '%s'",
                    path, x.want_rid, x.sheets[which].name);
        goto fail;
    }
    part = resolve_target(x.target);
    if (!part) {
        st = MEDVLM_ERR_NOMEM;
        goto fail;
    }
    if ((st = parse_part(&x, za, "xl/sharedStrings.xml", PART_STRINGS, 1))) goto fail;
    if ((st = parse_part(&x, za, part, PART_SHEET, 0))) goto fail;
    st = mv_tb_finish(&x.b, path, 1, out);
fail:
    mv_tb_free(&x.b);
    for (int i = 0; i < x.n_sheets; i++) {
        mv_free(x.sheets[i].name);
        mv_free(x.sheets[i].rid);
    }
    mv_free(x.sheets);
    for (size_t i = 0; i < x.n_strings; i++) mv_free(x.strings[i]);
    mv_free(x.strings);
    mv_free(x.text);
    mv_free(x.target);
    mv_free(part);
    zip_discard(za);
    return st;
}

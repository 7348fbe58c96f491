/*
 * test_data.c - Python's random reproduced, the tutorial's few-shot sampler on the real
 * SICAPv2 tables, .xlsx / .csv label tables, datasets and their error messages.
 *
 * Expected values were produced outside the suite with /usr/bin/python3: `random` for the
 * generator, and a re-implementation of the tutorial's loader over the CSV copies of the
 * tables (csv module) for the few-shot names and class counts.
 */
#include "check.h"
#include "data/data.h"

#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

static char tmpdir[] = "/tmp/medvlm-data-XXXXXX";
static const char *shared;

static char *tmp_path(const char *name)
{
    static char buf[8][512];
    static int slot;
    char *p = buf[slot++ % 8];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

static const char *write_tmp(const char *name, const char *text)
{
    char *p = tmp_path(name);
    FILE *f = fopen(p, "wb");
    fputs(text, f);
    fclose(f);
    return p;
}

static char *shared_path(const char *rel)
{
    static char buf[4][1024];
    static int slot;
    char *p = buf[slot++ % 4];
    snprintf(p, 1024, "%s/%s", shared, rel);
    return p;
}

/* ---- CPython random ---- */

static void test_pyrandom(void)
{
    struct mv_pyrandom r;
    /* python3: random.seed(s); [getrandbits(32) x3], getrandbits(40), getrandbits(64),
     * getrandbits(7) */
    static const struct {
        int64_t seed;
        uint32_t w[3];
        uint64_t b40, b64, b7;
    } cases[] = {
        {0, {3626764237u, 1654615998u, 3255389356u}, 463385069186ull, 4776171008201404212ull, 123},
        {1, {577090037u, 2444712010u, 3639700191u}, 840964324912ull, 4705193143269049553ull, 15},
        {42, {2746317213u, 478163327u, 107420369u}, 303832645883ull, 4117511471858006928ull, 17},
        {-7, {1390851128u, 4071050724u, 647892279u}, 714660325134ull, 1336213610742710224ull, 105},
        {4294967301ll,
         {675479763u, 2085189291u, 1213270837u},
         665247166058ull,
         267910309641445477ull,
         45},
        {INT64_MAX,
         {1359979423u, 2819855560u, 2711238091u},
         881038174048ull,
         8364931118716031454ull,
         13},
    };
    for (size_t i = 0; i < MV_ARRAY_LEN(cases); i++) {
        mv_pyrandom_seed(&r, cases[i].seed);
        for (int j = 0; j < 3; j++) {
            uint64_t v = mv_pyrandom_getrandbits(&r, 32);
            CHECK(v == cases[i].w[j], "seed %lld word %d: %llu", (long long)cases[i].seed, j,
                  (unsigned long long)v);
        }
        uint64_t b40 = mv_pyrandom_getrandbits(&r, 40), b64 = mv_pyrandom_getrandbits(&r, 64);
        uint64_t b7 = mv_pyrandom_getrandbits(&r, 7);
        CHECK(b40 == cases[i].b40 && b64 == cases[i].b64 && b7 == cases[i].b7,
              "seed %lld: getrandbits(40/64/7) %llu %llu %llu", (long long)cases[i].seed,
              (unsigned long long)b40, (unsigned long long)b64, (unsigned long long)b7);
    }
    /* random.seed(3); x = list(range(20)); random.shuffle(x) */
    int x[20];
    for (int i = 0; i < 20; i++) x[i] = i;
    mv_pyrandom_seed(&r, 3);
    mv_pyrandom_shuffle_int(&r, x, 20);
    static const int want[20] = {8,  3,  6,  5, 15, 16, 2, 12, 0,  1,
                                 13, 10, 19, 9, 14, 11, 4, 17, 18, 7};
    CHECK(memcmp(x, want, sizeof want) == 0, "shuffle(seed 3) differs from Python");
    /* random.Random(3)._randbelow(n) for n in (1, 2, 3, 1000, 2**31, 2**40 + 3) */
    mv_pyrandom_seed(&r, 3);
    static const uint64_t ns[6] = {1, 2, 3, 1000, 1ull << 31, (1ull << 40) + 3};
    static const uint64_t bw[6] = {0, 0, 1, 937, 2036044446ull, 1034389053353ull};
    for (int i = 0; i < 6; i++) {
        uint64_t v = mv_pyrandom_below(&r, ns[i]);
        CHECK(v == bw[i], "_randbelow(%llu) = %llu, want %llu", (unsigned long long)ns[i],
              (unsigned long long)v, (unsigned long long)bw[i]);
    }
}

/* ---- the tutorial's few-shot subsets of the real SICAPv2 Train/Test tables ---- */

static struct medvlm_dataset *load_sicap(const char *rel)
{
    struct medvlm_dataset_options o = {.labels_path = shared_path(rel), .classes = "NC,G3,G4,G5"};
    struct medvlm_dataset *d = NULL;
    CHECK_OK(medvlm_dataset_load(&o, &d));
    return d;
}

static void check_names(const struct medvlm_dataset *d, const int *idx, int n, const int *pos,
                        const char *const *names, int count, const char *what)
{
    for (int i = 0; i < count; i++) {
        CHECK(pos[i] < n && strcmp(d->names[idx[pos[i]]], names[i]) == 0,
              "%s: entry %d is %s, want %s", what, pos[i], pos[i] < n ? d->names[idx[pos[i]]] : "-",
              names[i]);
    }
}

static void test_fewshot(void)
{
    struct medvlm_dataset *d = load_sicap("sicapv2-partition/partition/Test/Train.xlsx");
    if (!d) return;
    int *idx = NULL, n = 0;
    CHECK_OK(medvlm_fewshot_sample(d->labels, d->n, d->n_classes, 16, 1, 0, &idx, &n));
    CHECK(n == 64, "K=16: %d images", n);
    static const int p1[4] = {0, 1, 2, 16};
    static const char *const n1[4] = {"16B0027040_Block_Region_10_3_5_xini_33710_yini_19060.jpg",
                                      "16B0027040_Block_Region_1_13_14_xini_31977_yini_120779.jpg",
                                      "18B0005478J_Block_Region_14_1_0_xini_43363_yini_6600.jpg",
                                      "18B0002932D_Block_Region_10_12_7_xini_16713_yini_69825.jpg"};
    check_names(d, idx, n, p1, n1, 4, "K=16 S=1");
    for (int i = 0; i < n; i++)
        CHECK(d->labels[idx[i]] == i / 16, "K=16: entry %d has class %lld", i,
              (long long)d->labels[idx[i]]);
    medvlm_free(idx);

    /* K=1, seed 0 */
    CHECK_OK(medvlm_fewshot_sample(d->labels, d->n, d->n_classes, 1, 0, 0, &idx, &n));
    static const int p2[4] = {0, 1, 2, 3};
    static const char *const n2[4] = {"18B0005478I_Block_Region_2_14_11_xini_19020_yini_149166.jpg",
                                      "17B0034179_Block_Region_3_4_3_xini_8835_yini_35612.jpg",
                                      "18B0002930B_Block_Region_4_4_19_xini_25625_yini_7750.jpg",
                                      "17B0024162_Block_Region_4_14_8_xini_24129_yini_50778.jpg"};
    CHECK(n == 4, "K=1: %d", n);
    check_names(d, idx, n, p2, n2, 4, "K=1 S=0");
    medvlm_free(idx);

    /* K=2, seed 2024 */
    CHECK_OK(medvlm_fewshot_sample(d->labels, d->n, d->n_classes, 2, 2024, 0, &idx, &n));
    static const int p3[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    static const char *const n3[8] = {"18B0005478H_Block_Region_8_10_1_xini_23978_yini_12658.jpg",
                                      "16B0027040_Block_Region_1_1_5_xini_22761_yini_108491.jpg",
                                      "17B0029534_Block_Region_6_3_3_xini_13252_yini_53694.jpg",
                                      "18B0001510G_Block_Region_4_25_29_xini_34891_yini_79199.jpg",
                                      "17B0017511_Block_Region_2_14_7_xini_14164_yini_113797.jpg",
                                      "16B0022786_Block_Region_1_18_16_xini_23411_yini_63882.jpg",
                                      "17B0035225_Block_Region_12_24_3_xini_17813_yini_24474.jpg",
                                      "18B0005773_Block_Region_3_3_32_xini_45886_yini_55465.jpg"};
    CHECK(n == 8, "K=2: %d", n);
    check_names(d, idx, n, p3, n3, 8, "K=2 S=2024");
    medvlm_free(idx);

    /* errors */
    CHECK_ERR(medvlm_fewshot_sample(d->labels, d->n, d->n_classes, 0, 1, 0, &idx, &n),
              MEDVLM_ERR_ARG, "must be >= 1, got 0");
    CHECK_ERR(medvlm_fewshot_sample(d->labels, d->n, d->n_classes, 800, 1, 0, &idx, &n),
              MEDVLM_ERR_MISSING, "class 3 has 716 images, fewer than the 800 shots");
    CHECK_OK(medvlm_fewshot_sample(d->labels, d->n, d->n_classes, 800, 1, 1, &idx, &n));
    CHECK(n == 800 * 3 + 716, "allow fewer: %d", n);
    medvlm_free(idx);
    medvlm_dataset_free(d);

    d = load_sicap("sicapv2-partition/partition/Test/Test.xlsx");
    if (!d) return;
    CHECK_OK(medvlm_fewshot_sample(d->labels, d->n, d->n_classes, 4, 5, 0, &idx, &n));
    static const int p4[5] = {0, 4, 8, 12, 15};
    static const char *const n4[5] = {"16B0028138_Block_Region_4_18_2_xini_8073_yini_24104.jpg",
                                      "16B0024177_Block_Region_0_6_14_xini_36647_yini_114785.jpg",
                                      "16B0026795_Block_Region_10_20_4_xini_21514_yini_125418.jpg",
                                      "17B0028627_Block_Region_2_7_0_xini_5815_yini_110427.jpg",
                                      "17B0028627_Block_Region_2_26_9_xini_15031_yini_129883.jpg"};
    CHECK(n == 16, "Test K=4: %d", n);
    check_names(d, idx, n, p4, n4, 5, "Test K=4 S=5");
    medvlm_free(idx);
    medvlm_dataset_free(d);

    /* negative labels are not candidates; they do not shift the shuffle of the others */
    const int64_t lab[6] = {0, -1, 1, 0, -1, 1};
    const int64_t kept[4] = {0, 1, 0, 1};
    int *a = NULL, *b = NULL, na, nb;
    CHECK_OK(medvlm_fewshot_sample(lab, 6, 2, 1, 9, 0, &a, &na));
    CHECK_OK(medvlm_fewshot_sample(kept, 4, 2, 1, 9, 0, &b, &nb));
    static const int map[4] = {0, 2, 3, 5};
    CHECK(na == 2 && nb == 2 && a[0] == map[b[0]] && a[1] == map[b[1]], "dropped rows");
    medvlm_free(a);
    medvlm_free(b);
    const int64_t badl[2] = {0, 2};
    CHECK_ERR(medvlm_fewshot_sample(badl, 2, 2, 1, 1, 1, &a, &na), MEDVLM_ERR_ARG,
              "label 2 of row 1 is outside 0..1");
}

/* ---- the real tables: xlsx equals its CSV copy; every partition loads ---- */

static void test_sicap_tables(void)
{
    static const struct {
        const char *xlsx, *csv;
        int rows;
        int64_t counts[4];
    } t[] = {
        {"partition/Test/Train.xlsx", "csv/SICAPv2_train.csv", 9959, {3773, 1829, 3641, 716}},
        {"partition/Test/Test.xlsx", "csv/SICAPv2_test.csv", 2122, {644, 393, 853, 232}},
        {"partition/Validation/Val1/Train.xlsx", NULL, 7472, {3088, 1204, 2662, 518}},
        {"partition/Validation/Val2/Train.xlsx", NULL, 7793, {3056, 1483, 2691, 563}},
        {"partition/Validation/Val3/Train.xlsx", NULL, 8166, {3129, 1468, 2971, 598}},
        {"partition/Validation/Val4/Train.xlsx", NULL, 6446, {2046, 1332, 2599, 469}},
        {"partition/Validation/Val1/Test.xlsx", NULL, 2487, {685, 625, 979, 198}},
        {"partition/Validation/Val2/Test.xlsx", NULL, 2166, {717, 346, 950, 153}},
        {"partition/Validation/Val3/Test.xlsx", NULL, 1793, {644, 361, 670, 118}},
        {"partition/Validation/Val4/Test.xlsx", NULL, 3513, {1727, 497, 1042, 247}},
    };
    char rel[256];
    for (size_t i = 0; i < MV_ARRAY_LEN(t); i++) {
        snprintf(rel, sizeof rel, "sicapv2-partition/%s", t[i].xlsx);
        struct medvlm_table *x = NULL;
        CHECK_OK(medvlm_table_load(shared_path(rel), NULL, &x));
        if (!x) continue;
        CHECK(x->n_rows == t[i].rows && x->n_cols == 6, "%s: %d rows %d cols", rel, x->n_rows,
              x->n_cols);
        CHECK(!strcmp(x->header[0], "image_name") && !strcmp(x->header[5], "G4C"), "%s header",
              rel);
        struct medvlm_dataset *d = load_sicap(rel);
        if (d) {
            int64_t c[4];
            medvlm_dataset_class_counts(d, c);
            CHECK(d->n == t[i].rows && d->skipped_rows == 0 && !memcmp(c, t[i].counts, sizeof c),
                  "%s: %d images, counts %lld %lld %lld %lld", rel, d->n, (long long)c[0],
                  (long long)c[1], (long long)c[2], (long long)c[3]);
        }
        if (t[i].csv) {
            snprintf(rel, sizeof rel, "sicapv2-partition/%s", t[i].csv);
            struct medvlm_table *y = NULL;
            CHECK_OK(medvlm_table_load(shared_path(rel), NULL, &y));
            if (y) {
                CHECK(y->n_rows == x->n_rows && y->n_cols == x->n_cols &&
                          !strcmp(y->header[0], "Path"),
                      "%s shape", rel);
                int diff = -1;
                for (int r = 0; r < x->n_rows && r < y->n_rows && diff < 0; r++)
                    for (int cc = 0; cc < 6 && diff < 0; cc++)
                        if (strcmp(x->cells[(size_t)r * 6 + cc], y->cells[(size_t)r * 6 + cc]))
                            diff = r;
                CHECK(diff < 0, "%s: row %d differs from the xlsx", rel, diff);
                CHECK(y->line[0] == 2 && y->line[y->n_rows - 1] == y->n_rows + 1, "csv lines");
                CHECK(x->line[0] == 2, "xlsx row numbers");
                struct medvlm_dataset *e = NULL;
                struct medvlm_dataset_options o = {.labels_path = shared_path(rel),
                                                   .classes = "NC,G3,G4,G5",
                                                   .images_dir = "/data/sicap/images"};
                CHECK_OK(medvlm_dataset_load(&o, &e));
                if (e && d) {
                    int same = e->n == d->n;
                    for (int r = 0; same && r < e->n; r++)
                        same = !strcmp(e->names[r], d->names[r]) && e->labels[r] == d->labels[r];
                    CHECK(same, "%s: dataset differs from the xlsx one", rel);
                    CHECK(!strncmp(e->paths[0], "/data/sicap/images/", 19) &&
                              !strcmp(e->paths[0] + 19, e->names[0]),
                          "paths: %s", e->paths[0]);
                }
                medvlm_dataset_free(e);
                medvlm_table_free(y);
            }
        }
        medvlm_dataset_free(d);
        medvlm_table_free(x);
    }
    /* wsi_labels.xlsx has other columns: a table, but no image column */
    struct medvlm_dataset_options o = {
        .labels_path = shared_path("sicapv2-partition/wsi_labels.xlsx"), .classes = "NC,G3"};
    struct medvlm_dataset *d = NULL;
    CHECK_ERR(medvlm_dataset_load(&o, &d), MEDVLM_ERR_MISSING, "no image-name column");
    struct medvlm_table *w = NULL;
    CHECK_ERR(
        medvlm_table_load(shared_path("sicapv2-partition/partition/Test/Train.xlsx"), "Nope", &w),
        MEDVLM_ERR_MISSING, "no sheet named 'Nope'");
}

/* ---- hand-made xlsx: named sheets through the rels, inline strings, booleans, gaps ---- */

static void zip_put_text(zip_t *z, const char *name, const char *text)
{
    zip_source_t *s = zip_source_buffer(z, text, strlen(text), 0);
    zip_file_add(z, name, s, ZIP_FL_OVERWRITE);
}

static const char *make_xlsx(const char *name, int with_strings)
{
    const char *p = tmp_path(name);
    int err;
    zip_t *z = zip_open(p, ZIP_CREATE | ZIP_TRUNCATE, &err);
    zip_put_text(z, "xl/workbook.xml",
                 "<?xml version=\"1.0\"?><workbook xmlns=\"http://schemas.openxmlformats.org/"
                 "spreadsheetml/2006/main\" xmlns:r=\"http://schemas.openxmlformats.org/"
                 "officeDocument/2006/relationships\"><sheets><sheet name=\"First\" sheetId=\"1\" "
                 "r:id=\"rId7\"/><sheet name=\"Labels\" sheetId=\"2\" r:id=\"rId3\"/></sheets>"
                 "</workbook>");
    zip_put_text(
        z, "xl/_rels/workbook.xml.rels",
        "<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/"
        "relationships\"><Relationship Id=\"rId3\" Target=\"worksheets/other.xml\" "
        "Type=\"x\"/><Relationship Id=\"rId7\" Target=\"/xl/worksheets/s1.xml\" Type=\"x\"/>"
        "</Relationships>");
    if (with_strings)
        zip_put_text(z, "xl/sharedStrings.xml",
                     "<sst xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\">"
                     "<si><t>file</t></si><si><r><t>la</t></r><r><t xml:space=\"preserve\">bel </t>"
                     "</r><rPh><t>IGNORED</t></rPh></si><si><t>a&amp;b.png</t></si></sst>");
    zip_put_text(z, "xl/worksheets/s1.xml",
                 "<worksheet xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\">"
                 "<sheetData><row r=\"1\"><c r=\"A1\"><v>1</v></c></row></sheetData></worksheet>");
    zip_put_text(
        z, "xl/worksheets/other.xml",
        "<x:worksheet xmlns:x=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\">"
        "<x:sheetData><x:row r=\"1\"><x:c r=\"A1\" t=\"s\"><x:v>0</x:v></x:c><x:c r=\"C1\" "
        "t=\"s\"><x:v>1</x:v></x:c></x:row>"
        "<x:row r=\"2\"><x:c r=\"A2\" t=\"s\"><x:v>2</x:v></x:c><x:c r=\"B2\" t=\"b\">"
        "<x:v>1</x:v></x:c><x:c r=\"C2\" t=\"inlineStr\"><x:is><x:t>G3</x:t></x:is></x:c>"
        "</x:row><x:row r=\"3\"><x:c r=\"A3\" s=\"1\"/></x:row>"
        "<x:row r=\"5\"><x:c r=\"A5\" t=\"inlineStr\"><x:is><x:t>b.png</x:t></x:is></x:c>"
        "<x:c r=\"C5\"><x:v>0.25</x:v></x:c></x:row></x:sheetData></x:worksheet>");
    zip_close(z);
    return p;
}

static void test_xlsx_handmade(void)
{
    const char *p = make_xlsx("hand.xlsx", 1);
    struct medvlm_table *t = NULL;
    CHECK_OK(medvlm_table_load(p, NULL, &t));
    if (t) {
        CHECK(t->n_cols == 1 && t->n_rows == 0 && !strcmp(t->header[0], "1"), "first sheet");
        medvlm_table_free(t);
        t = NULL;
    }
    CHECK_OK(medvlm_table_load(p, "Labels", &t));
    if (t) {
        CHECK(t->n_cols == 3 && t->n_rows == 2, "Labels: %d x %d", t->n_rows, t->n_cols);
        CHECK(!strcmp(t->header[0], "file") && !strcmp(t->header[1], "") &&
                  !strcmp(t->header[2], "label "),
              "rich text + gap: '%s' '%s' '%s'", t->header[0], t->header[1], t->header[2]);
        CHECK(!strcmp(t->cells[0], "a&b.png") && !strcmp(t->cells[1], "TRUE") &&
                  !strcmp(t->cells[2], "G3"),
              "row 2: %s %s %s", t->cells[0], t->cells[1], t->cells[2]);
        CHECK(!strcmp(t->cells[3], "b.png") && !strcmp(t->cells[4], "") &&
                  !strcmp(t->cells[5], "0.25") && t->line[1] == 5,
              "row 5 (row 3 empty skipped)");
        CHECK(medvlm_table_column(t, "FILE") == 0 && medvlm_table_column(t, "x") == -1, "column");
        medvlm_table_free(t);
        t = NULL;
    }
    /* a dataset from it: messages say "row" for sheets */
    const char *g3[1] = {"G3"};
    struct medvlm_dataset_options o = {.labels_path = p,
                                       .sheet = "Labels",
                                       .image_column = "file",
                                       .label_column = "label ",
                                       .class_names = g3,
                                       .n_class_names = 1};
    struct medvlm_dataset *d = NULL;
    CHECK_ERR(medvlm_dataset_load(&o, &d), MEDVLM_ERR_FORMAT,
              "hand.xlsx: row 5: unknown class '0.25' in column label  (expected one of: G3");
    /* a shared-string index beyond the table */
    p = make_xlsx("nostrings.xlsx", 0);
    CHECK_ERR(medvlm_table_load(p, "Labels", &t), MEDVLM_ERR_FORMAT,
              "shared string index '0' is not one of the 0 strings");
    CHECK_ERR(medvlm_table_load(write_tmp("fake.xlsx", "image,label\na,b\n"), NULL, &t),
              MEDVLM_ERR_FORMAT, "not an .xlsx file (expected a zip archive");
    CHECK_ERR(medvlm_table_load(write_tmp("trunc.xlsx", "PK\3\4garbage"), NULL, &t),
              MEDVLM_ERR_FORMAT, "trunc.xlsx: not an .xlsx file");
    CHECK_ERR(medvlm_table_load(tmp_path("absent.csv"), NULL, &t), MEDVLM_ERR_IO, "absent.csv");
}

/* ---- CSV ---- */

static void test_csv(void)
{
    struct medvlm_table *t = NULL;
    const char *p = write_tmp("q.csv", "\xEF\xBB\xBFimage,label\r\n\"a,1.jpg\",NC\r\n\r\n"
                                       "\"b \"\"2\"\".jpg\",\"G\n3\"\r\nc.jpg,\r\n\"\",x");
    CHECK_OK(medvlm_table_load(p, NULL, &t));
    if (t) {
        CHECK(t->n_rows == 4 && t->n_cols == 2 && !strcmp(t->header[0], "image"), "shape/BOM");
        CHECK(!strcmp(t->cells[0], "a,1.jpg") && !strcmp(t->cells[2], "b \"2\".jpg") &&
                  !strcmp(t->cells[3], "G\n3") && !strcmp(t->cells[5], "") &&
                  !strcmp(t->cells[6], "") && !strcmp(t->cells[7], "x"),
              "quoting");
        CHECK(t->line[0] == 2 && t->line[1] == 4 && t->line[2] == 6 && t->line[3] == 7,
              "lines %d %d %d %d", t->line[0], t->line[1], t->line[2], t->line[3]);
        medvlm_table_free(t);
        t = NULL;
    }
    CHECK_ERR(medvlm_table_load(write_tmp("rag.csv", "Path,NC\na.jpg,1\nb.jpg,0,1\n"), NULL, &t),
              MEDVLM_ERR_FORMAT, "rag.csv: line 3: expected 2 fields as in the header, got 3");
    CHECK_ERR(medvlm_table_load(write_tmp("open.csv", "Path,NC\n\"a.jpg,1\n"), NULL, &t),
              MEDVLM_ERR_FORMAT, "open.csv: line 2: a quoted field is never closed");
    CHECK_ERR(medvlm_table_load(write_tmp("after.csv", "Path,NC\n\"a\"b,1\n"), NULL, &t),
              MEDVLM_ERR_FORMAT, "line 2: expected ',' or the end of the line after a closing");
    CHECK_ERR(medvlm_table_load(write_tmp("empty.csv", "\n\n"), NULL, &t), MEDVLM_ERR_FORMAT,
              "the table is empty");
    CHECK_ERR(medvlm_table_load(write_tmp("s.csv", "a\n"), "Sheet1", &t), MEDVLM_ERR_ARG,
              "the file is CSV");
}

/* ---- datasets ---- */

static void test_datasets(void)
{
    struct medvlm_dataset *d = NULL;
    struct medvlm_dataset_options o = {0};

    /* label column of names; classes inferred (sorted) */
    o.labels_path = write_tmp("names.csv", "filename,class\nx/1.png,tumor\n2.png,normal\n"
                                           "3.png,tumor\n");
    CHECK_OK(medvlm_dataset_load(&o, &d));
    if (d) {
        CHECK(d->n == 3 && d->n_classes == 2 && !strcmp(d->classes[0], "normal") &&
                  d->labels[0] == 1 && d->labels[1] == 0 && !strcmp(d->paths[0], "x/1.png"),
              "names");
        medvlm_dataset_free(d);
        d = NULL;
    }
    /* the classes as an array */
    const char *tn[2] = {"tumor", "normal"};
    o.class_names = tn;
    o.n_class_names = 2;
    CHECK_OK(medvlm_dataset_load(&o, &d));
    if (d) {
        CHECK(d->labels[0] == 0 && d->labels[1] == 1 && !strcmp(d->classes[1], "normal"),
              "class_names array");
        medvlm_dataset_free(d);
        d = NULL;
    }
    tn[1] = "tumor";
    CHECK_ERR(medvlm_dataset_load(&o, &d), MEDVLM_ERR_ARG, "class name 1 is given twice");
    o.class_names = NULL;
    o.n_class_names = 0;
    /* given classes, names and indices mixed */
    o.classes = "tumor,normal";
    o.labels_path = write_tmp("mixed.csv", "image,label\na.png,1\nb.png,tumor\n");
    CHECK_OK(medvlm_dataset_load(&o, &d));
    if (d) {
        CHECK(d->labels[0] == 1 && d->labels[1] == 0 && d->n_classes == 2, "given classes");
        medvlm_dataset_free(d);
        d = NULL;
    }
    o.labels_path = write_tmp("unk.csv", "image,label\na.png,tumor\nb.png,stroma\n");
    CHECK_ERR(medvlm_dataset_load(&o, &d), MEDVLM_ERR_FORMAT,
              "unk.csv: line 3: unknown class 'stroma' in column label (expected one of: tumor, "
              "normal");
    /* one-hot: unknown class name, bad cells, skipped rows */
    o.classes = "NC,G3,G9";
    o.labels_path = write_tmp("oh.csv", "Path,NC,G3,G4\na.jpg,1,0,0\n");
    CHECK_ERR(medvlm_dataset_load(&o, &d), MEDVLM_ERR_MISSING, "unknown class 'G9'");
    o.classes = "NC,G3";
    o.labels_path =
        write_tmp("oh2.csv", "Path,NC,G3\na.jpg,1,0\nb.jpg,0,0\nc.jpg,FALSE,1.0\nd.jpg,1,1\n"
                             "e.jpg,,1\n");
    CHECK_OK(medvlm_dataset_load(&o, &d));
    if (d) {
        CHECK(d->n == 2 && d->skipped_rows == 3 && d->labels[1] == 1 &&
                  !strcmp(d->names[1], "c.jpg"),
              "one-hot skipped rows");
        medvlm_dataset_free(d);
        d = NULL;
    }
    o.labels_path = write_tmp("oh3.csv", "Path,NC,G3\na.jpg,1,zero\n");
    CHECK_ERR(medvlm_dataset_load(&o, &d), MEDVLM_ERR_FORMAT,
              "oh3.csv: line 2, column G3: expected a number");
    o.labels_path = write_tmp("dup.csv", "Path,NC,G3\na.jpg,1,0\nb.jpg,0,1\na.jpg,0,1\n");
    CHECK_ERR(medvlm_dataset_load(&o, &d), MEDVLM_ERR_FORMAT,
              "dup.csv: line 4: duplicate image name 'a.jpg' (already listed at line 2)");
    o.labels_path = write_tmp("noimg.csv", "file_id,NC,G3\na.jpg,1,0\n");
    CHECK_ERR(medvlm_dataset_load(&o, &d), MEDVLM_ERR_MISSING,
              "noimg.csv: no image-name column (looked for image_name, Path, image, filename; "
              "the header has: file_id, NC, G3)");
    o.image_column = "file_id";
    CHECK_OK(medvlm_dataset_load(&o, &d));
    medvlm_dataset_free(d);
    d = NULL;
    o.image_column = "nope";
    CHECK_ERR(medvlm_dataset_load(&o, &d), MEDVLM_ERR_MISSING, "no column named 'nope'");
    o.image_column = NULL;
    o.classes = NULL;
    o.labels_path = write_tmp("nolab.csv", "Path,NC,G3\na.jpg,1,0\n");
    CHECK_ERR(medvlm_dataset_load(&o, &d), MEDVLM_ERR_MISSING, "no class names given");
    o.classes = "NC,,G3";
    CHECK_ERR(medvlm_dataset_load(&o, &d), MEDVLM_ERR_ARG, "an empty class name");
    o.classes = "NC,NC";
    CHECK_ERR(medvlm_dataset_load(&o, &d), MEDVLM_ERR_ARG, "class 'NC' is named twice");

    /* missing images: all named, or skipped */
    const char *img = shared_path("sicapv2-patches/images");
    o = (struct medvlm_dataset_options){0};
    o.images_dir = img;
    o.classes = "NC,G3";
    o.check_files = 1;
    o.labels_path =
        write_tmp("miss.csv", "Path,NC,G3\n"
                              "17B0011996_Block_Region_5_10_15_xini_21983_yini_63887.jpg,0,1\n"
                              "gone1.jpg,1,0\ngone2.jpg,0,1\n");
    medvlm_set_log(NULL, NULL, MEDVLM_LOG_ERROR);
    CHECK_ERR(medvlm_dataset_load(&o, &d), MEDVLM_ERR_MISSING,
              "2 of the 3 listed images do not exist under");
    CHECK(strstr(medvlm_last_error(), "gone1.jpg, gone2.jpg") != NULL, "names: %s",
          medvlm_last_error());
    o.skip_missing = 1;
    CHECK_OK(medvlm_dataset_load(&o, &d));
    if (d) {
        CHECK(d->n == 1 && d->missing == 2 && d->labels[0] == 1 && mv_is_file(d->paths[0]),
              "skip missing");
        medvlm_dataset_free(d);
        d = NULL;
    }

    /* class folders: kather2016-samples has 8 folders of 3 TIFFs */
    o = (struct medvlm_dataset_options){0};
    o.images_dir = shared_path("kather2016-samples");
    CHECK_OK(medvlm_dataset_load(&o, &d));
    if (d) {
        CHECK(d->n_classes == 8 && d->n == 24 && !strcmp(d->classes[0], "01_TUMOR") &&
                  !strcmp(d->classes[7], "08_EMPTY") && d->labels[23] == 7,
              "folders: %d %d", d->n_classes, d->n);
        CHECK(!strcmp(d->names[0], "01_TUMOR/1A11_CRC-Prim-HE-07_022.tif_Row_601_Col_151.tif") &&
                  mv_is_file(d->paths[0]),
              "folder names: %s", d->names[0]);
        int pick[2] = {23, 0};
        struct medvlm_dataset *s = NULL;
        CHECK_OK(medvlm_dataset_subset(d, pick, 2, &s));
        CHECK(s && s->n == 2 && s->labels[0] == 7 && !strcmp(s->names[1], d->names[0]) &&
                  s->n_classes == 8,
              "subset");
        medvlm_dataset_free(s);
        pick[0] = 24;
        CHECK_ERR(medvlm_dataset_subset(d, pick, 2, &s), MEDVLM_ERR_ARG, "index 24");
        medvlm_dataset_free(d);
        d = NULL;
    }
    o.classes = "04_LYMPHO,01_TUMOR";
    CHECK_OK(medvlm_dataset_load(&o, &d));
    if (d) {
        CHECK(d->n == 6 && d->labels[0] == 0 && !strncmp(d->names[0], "04_LYMPHO/", 10),
              "given folder classes");
        medvlm_dataset_free(d);
        d = NULL;
    }
    o.classes = "01_TUMOR,99_NONE";
    CHECK_ERR(medvlm_dataset_load(&o, &d), MEDVLM_ERR_MISSING, "unknown class '99_NONE'");
    o.classes = NULL;
    o.images_dir = tmp_path("nothing-here");
    CHECK_ERR(medvlm_dataset_load(&o, &d), MEDVLM_ERR_IO, "not a folder");
}

int main(void)
{
    shared = check_env_dir("MEDVLM_SHARED_DATA", NULL);
    if (!shared) {
        fprintf(stderr, "MEDVLM_SHARED_DATA is not set (the shared data folder with "
                        "sicapv2-partition/); run through ctest\n");
        return 1;
    }
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_pyrandom();
    test_fewshot();
    test_sicap_tables();
    test_xlsx_handmade();
    test_csv();
    test_datasets();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary();
}

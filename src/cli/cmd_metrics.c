/* cmd_metrics.c - `medvlm metrics`: the metrics report of a predictions CSV. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char *usage =
    "usage: medvlm metrics [--classes A,B,..] [--json OUT] PREDICTIONS.csv\n"
    "\n"
    "Balanced accuracy (the tutorial's ACA), accuracy, macro-F1, quadratic kappa, per-class\n"
    "recall / precision / F1 and the confusion matrix (rows = true class) of a predictions\n"
    "table with columns true_label and predicted_label (as medvlm writes it; .csv or .xlsx).\n"
    "Classes, in order: --classes, else the table's p_<class> columns, else the sorted\n"
    "distinct labels.\n"
    "\n"
    "  --classes LIST   class names in label order\n"
    "  --json OUT       also write the report as JSON (written atomically)\n"
    "\n"
    "example:\n"
    "  medvlm metrics --json metrics.json predictions.csv\n";

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Class names: from LIST, the p_ columns, or the sorted distinct labels; *n classes. */
static char **class_list(const char *list, const struct medvlm_table *t, int tc, int pc, int *n)
{
    size_t cap = (size_t)t->n_cols + 2 * (size_t)t->n_rows + 1;
    for (const char *p = list; p && *p; p++) cap += *p == ',';
    char **names = calloc(cap + 1, sizeof *names);
    if (!names) return NULL;
    *n = 0;
    if (list) {
        char *copy = strdup(list);
        for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ","))
            names[(*n)++] = strdup(tok);
        free(copy);
        return names;
    }
    for (int c = 0; c < t->n_cols; c++)
        if (!strncmp(t->header[c], "p_", 2)) names[(*n)++] = strdup(t->header[c] + 2);
    if (*n) return names;
    for (int r = 0; r < t->n_rows; r++) {
        names[(*n)++] = strdup(t->cells[(size_t)r * t->n_cols + tc]);
        names[(*n)++] = strdup(t->cells[(size_t)r * t->n_cols + pc]);
    }
    qsort(names, (size_t)*n, sizeof *names, cmp_str);
    int k = 0;
    for (int i = 0; i < *n; i++) {
        if (k && !strcmp(names[i], names[k - 1])) {
            free(names[i]);
            continue;
        }
        names[k++] = names[i];
    }
    *n = k;
    return names;
}

int cmd_metrics(int argc, char **argv)
{
    const char *classes = NULL, *json = NULL;
    int first;
    const struct cli_opt opts[] = {CLI_OPT_STR("classes", &classes), CLI_OPT_STR("json", &json),
                                   CLI_OPT_END};
    const struct cli_spec spec = {.cmd = "metrics",
                                  .usage = usage,
                                  .opts = opts,
                                  .min_pos = 1,
                                  .max_pos = 1,
                                  .pos_name = "PREDICTIONS file"};
    const int parsed = cli_parse(&spec, argc, argv, &first);
    if (parsed != CLI_GO_ON) return parsed;
    const char *path = argv[first];
    const struct cli_io io = {.in = {{"PREDICTIONS", path}}, .out = {{"--json", json}}};
    if (!cli_outputs_ok("metrics", &io)) return CLI_USAGE;
    struct medvlm_table *t = NULL;
    if (medvlm_table_load(path, NULL, &t) != MEDVLM_OK) return cli_fail(NULL);
    int rc = CLI_FAIL, k = 0;
    char **names = NULL, *text = NULL;
    int64_t *refs = NULL, *preds = NULL;
    struct medvlm_metrics m = {0};
    int tc = medvlm_table_column(t, "true_label"), pc = medvlm_table_column(t, "predicted_label");
    if (tc < 0 || pc < 0) {
        fprintf(stderr, "medvlm: %s: expected columns true_label and predicted_label\n", path);
        goto done;
    }
    if (t->n_rows == 0) {
        fprintf(stderr, "medvlm: %s: no predictions (the table has only a header)\n", path);
        goto done;
    }
    names = class_list(classes, t, tc, pc, &k);
    refs = calloc((size_t)t->n_rows, sizeof *refs);
    preds = calloc((size_t)t->n_rows, sizeof *preds);
    if (!names || !refs || !preds) {
        fprintf(stderr, "medvlm: out of memory\n");
        goto done;
    }
    for (int r = 0; r < t->n_rows; r++) {
        for (int which = 0; which < 2; which++) {
            const char *v = t->cells[(size_t)r * t->n_cols + (which ? pc : tc)];
            int found = -1;
            for (int j = 0; j < k && found < 0; j++)
                if (names[j] && !strcmp(names[j], v)) found = j;
            if (found < 0) {
                fprintf(stderr, "medvlm: %s: %s %d: unknown class '%s' in column %s\n", path,
                        t->line_word, t->line[r], v, which ? "predicted_label" : "true_label");
                goto done;
            }
            (which ? preds : refs)[r] = found;
        }
    }
    if (medvlm_metrics_compute(refs, preds, t->n_rows, k, &m) != MEDVLM_OK ||
        medvlm_metrics_format_table(&m, (const char *const *)names, &text) != MEDVLM_OK) {
        cli_fail(path);
        goto done;
    }
    fputs(text, stdout);
    if (json && medvlm_metrics_write_json(json, &m, (const char *const *)names) != MEDVLM_OK) {
        cli_fail(NULL);
        goto done;
    }
    rc = CLI_OK;
done:
    medvlm_free(text);
    medvlm_metrics_free(&m);
    if (names)
        for (int i = 0; i < k; i++) free(names[i]);
    free(names);
    free(refs);
    free(preds);
    medvlm_table_free(t);
    return rc;
}

/* common.c - flags shared by several subcommands (dataset, preprocessing, threads) and the
 * progress line. */
#include "cli.h"

#include "core/core.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void cli_data_args_init(struct cli_data_args *a)
{
    memset(a, 0, sizeof *a);
    medvlm_preprocess_options_default(&a->pre);
    a->pre.pipeline = MEDVLM_PREPROCESS_TUTORIAL; /* the notebooks' pipeline */
    a->batch_size = 32;
    a->ds.check_files = 1; /* every missing image is reported by name before any work */
}

int cli_table_opt(int c, const char *arg, struct medvlm_dataset_options *ds)
{
    switch (c) {
    case CLI_OPT_IMAGES:
        ds->images_dir = arg;
        return 1;
    case CLI_OPT_LABELS:
        ds->labels_path = arg;
        return 1;
    case CLI_OPT_CLASSES:
        ds->classes = arg;
        return 1;
    case CLI_OPT_SHEET:
        ds->sheet = arg;
        return 1;
    case CLI_OPT_IMAGE_COLUMN:
        ds->image_column = arg;
        return 1;
    case CLI_OPT_LABEL_COLUMN:
        ds->label_column = arg;
        return 1;
    case CLI_OPT_SKIP_MISSING:
        ds->skip_missing = 1;
        return 1;
    }
    return 0;
}

int cli_data_opt(const char *cmd, int c, const char *arg, struct cli_data_args *a)
{
    long v;
    if (cli_table_opt(c, arg, &a->ds)) return 1;
    switch (c) {
    case CLI_OPT_SKIP_BAD:
        a->skip_bad = 1;
        return 1;
    case CLI_OPT_NO_ANTIALIAS:
        a->pre.antialias = 0;
        return 1;
    case CLI_OPT_NO_CENTER_CROP:
        a->pre.center_crop = 0;
        return 1;
    case CLI_OPT_PREPROCESS:
        if (medvlm_preprocess_parse(arg, &a->pre.pipeline) != MEDVLM_OK)
            return -cli_usage(cmd, "--preprocess expects tutorial, hf or hf-torchvision, got '%s'",
                              arg);
        return 1;
    case CLI_OPT_BATCH_SIZE:
        if (!cli_parse_int(arg, 1, 4096, &v))
            return -cli_usage(cmd, "--batch-size expects 1..4096, got '%s'", arg);
        a->batch_size = (int)v;
        return 1;
    case CLI_OPT_THREADS:
        if (!cli_parse_int(arg, 1, 1024, &v))
            return -cli_usage(cmd, "--threads expects 1..1024, got '%s'", arg);
        a->threads = (int)v;
        return 1;
    }
    return 0;
}

static void progress_line(int done, int total, int computed, double seconds, void *user)
{
    const char *what = user;
    double rate = seconds > 0 ? computed / seconds : 0;
    double eta = rate > 0 ? (total - done) / rate : 0;
    int width = 30, fill = total ? (int)((long long)width * done / total) : width;
    fprintf(stderr, "\r%s [", what);
    for (int i = 0; i < width; i++) fputc(i < fill ? '#' : '.', stderr);
    fprintf(stderr, "] %d/%d  %.1f images/s  ETA %dm%02ds ", done, total, rate, (int)eta / 60,
            (int)eta % 60);
    if (done == total) fputc('\n', stderr);
    fflush(stderr);
}

cli_progress_fn cli_progress_for_terminal(void)
{
    return isatty(STDERR_FILENO) ? progress_line : NULL;
}

int cli_same_model(const char *a_what, const struct medvlm_provenance *a, const char *b_what,
                   const struct medvlm_provenance *b)
{
    if (!a->fingerprint || !*a->fingerprint || !b->fingerprint || !*b->fingerprint ||
        !strcmp(a->fingerprint, b->fingerprint))
        return 1;
    fprintf(stderr,
            "medvlm: %s come from the model %s (weights %s) but %s from %s (weights %s): "
            "embeddings of different models do not compare\n",
            a_what, a->model && *a->model ? a->model : "(folder not recorded)", a->fingerprint,
            b_what, b->model && *b->model ? b->model : "(folder not recorded)", b->fingerprint);
    return 0;
}

int cli_read_lines(const char *path, char **data, char ***lines, int *n)
{
    size_t len;
    *lines = NULL;
    *n = 0;
    if (mv_read_file(path, data, &len) != MEDVLM_OK) return 0;
    size_t count = 0;
    for (size_t i = 0; i < len; i++) count += (*data)[i] == '\n';
    *lines = malloc((count + 1) * sizeof **lines);
    if (!*lines) {
        free(*data);
        *data = NULL;
        mv_err(MEDVLM_ERR_NOMEM, "%s: out of memory", path);
        return 0;
    }
    for (char *s = *data, *end = *data + len; s < end;) {
        char *e = memchr(s, '\n', (size_t)(end - s));
        if (!e) e = end;
        *e = '\0';
        if (e > s && e[-1] == '\r') e[-1] = '\0';
        (*lines)[(*n)++] = s;
        s = e + 1;
    }
    return 1;
}

int cli_model_load(const char *dir, const char *run, unsigned flags, struct cli_model *cm)
{
    memset(cm, 0, sizeof *cm);
    if (run) flags |= MEDVLM_LOAD_VISION; /* a fine-tuning changes the vision tower */
    flags |= cli_load_flags;
    if (medvlm_model_load(dir, flags, &cm->base)) return 0;
    cm->m = cm->base;
    if (run) {
        cm->m = NULL;
        if (medvlm_model_apply_run(cm->base, run, 0, &cm->m)) {
            medvlm_model_free(cm->base);
            cm->base = NULL;
            return 0;
        }
    }
    if (medvlm_model_prepare(cm->m, cli_precision)) {
        cli_model_free(cm);
        return 0;
    }
    return 1;
}

void cli_model_free(struct cli_model *cm)
{
    if (cm->m != cm->base) medvlm_model_free(cm->m);
    medvlm_model_free(cm->base);
    memset(cm, 0, sizeof *cm);
}

int cli_write_report(const char *path, struct medvlm_report *r, const struct medvlm_evaluation *ev,
                     const char *const *image_names, const char *images_root,
                     const char *const *paths)
{
    char **own = NULL;
    int ok = 0;
    if (ev) {
        r->metrics = &ev->metrics;
        r->class_names = ev->classes;
        r->n = ev->n;
        r->refs = ev->refs;
        r->preds = ev->preds;
        r->probs = ev->probs;
        r->image_names = image_names;
    }
    if (!paths && images_root && r->image_names && r->n > 0) {
        if (!(own = calloc((size_t)r->n, sizeof *own))) goto nomem;
        for (int i = 0; i < r->n; i++)
            if (r->image_names[i] && !(own[i] = mv_path_join(images_root, r->image_names[i])))
                goto nomem;
    }
    r->image_paths = paths ? paths : (const char *const *)own;
    ok = medvlm_report_write_html(path, r) == MEDVLM_OK;
    if (!ok) cli_fail("--report");
    goto done;
nomem:
    fprintf(stderr, "medvlm: --report: out of memory\n");
done:
    for (int i = 0; own && i < r->n; i++) mv_free(own[i]);
    free(own);
    r->image_paths = NULL;
    return ok;
}

/* common.c - flags shared by several subcommands (dataset, preprocessing, threads) and the
 * progress line. */
#include "cli.h"

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
        if (strcmp(arg, "hf") == 0)
            a->pre.pipeline = MEDVLM_PREPROCESS_HF;
        else if (strcmp(arg, "tutorial") == 0)
            a->pre.pipeline = MEDVLM_PREPROCESS_TUTORIAL;
        else
            return -cli_usage(cmd, "--preprocess expects hf or tutorial, got '%s'", arg);
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

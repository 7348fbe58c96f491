/*
 * cli.h - the medvlm command-line tool: one file per subcommand, a table in main.c.
 * The CLI is the only place that prints results (stdout) and maps a status to an exit code:
 * 0 success, 1 failure, 2 usage error.
 */
#ifndef MEDVLM_CLI_H
#define MEDVLM_CLI_H

#include "medvlm.h"

#include "core/core.h"

#include <stdio.h>

#define CLI_OK    0
#define CLI_FAIL  1
#define CLI_USAGE 2

struct cli_command {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
    const char *summary;
    int all_ranks; /* under mpirun: every rank runs it (features, finetune); else rank 0 alone */
};

/* Print "medvlm: <medvlm_last_error()>" (with context) to stderr and return CLI_FAIL. */
int cli_fail(const char *context);
/* Print "medvlm CMD: msg" and "Try 'medvlm CMD --help'." to stderr; return CLI_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* The rest of every subcommand's option switch, for getopt_long with ':' leading its optstring:
 * 'h' prints `usage` and gives CLI_OK; ':' (an option without its value) and anything else
 * unknown are usage errors naming the option. */
int cli_option_end(const char *cmd, const char *usage, int c, char *const *argv);
/* ---- the option parser of every subcommand (args.c) ----
 * A command lists its options in a table ended by {NULL}; cli_parse fills the destinations,
 * handles --help, the shared dataset flags (data) and the count of positional arguments, and
 * prints every usage error in one wording ("--epochs expects an integer in [0, 1000000], got
 * 'x'", "--optimizer expects one of sgd/adam/adamw, got 'x'"). */
enum cli_kind {
    CLI_STR,    /* const char **dst                                       */
    CLI_FLAG,   /* int *dst = 1; takes no value                            */
    CLI_INT,    /* int *dst, an integer in [lo, hi]                        */
    CLI_LONG,   /* long *dst, an integer in [lo, hi]                       */
    CLI_FLOAT,  /* float *dst, a finite number in [lo, hi]                 */
    CLI_DOUBLE, /* double *dst, a finite number in [lo, hi]                */
    CLI_CHOICE, /* int *dst = the index of the value in choices "a|b|c"    */
    CLI_LIST    /* struct cli_list *dst: every value, in order             */
};
struct cli_list {
    const char **items; /* (cap) the caller's array */
    int n, cap;
};
#define CLI_NO_LIMIT 1e308 /* lo = -CLI_NO_LIMIT / hi = CLI_NO_LIMIT: no bound on that side */
struct cli_opt {
    const char *name; /* the long option, without "--" */
    enum cli_kind kind;
    void *dst;
    double lo, hi;       /* CLI_INT .. CLI_DOUBLE */
    const char *choices; /* CLI_CHOICE */
    int *given;          /* set to 1 when the option is given; may be NULL */
};
struct cli_spec {
    const char *cmd, *usage;
    const struct cli_opt *opts;
    struct cli_data_args *data; /* the shared dataset flags (common.c), NULL: none */
    int data_table_only;        /* only the label-table flags (CLI_TABLE_OPTIONS) */
    int data_preprocess_only;   /* only --preprocess, --no-antialias, --no-center-crop, --threads */
    int min_pos, max_pos;       /* positional arguments accepted; max_pos -1: any number */
    const char *pos_name;       /* how a usage error names them ("MODEL_DIR") */
    int options_first;          /* options end at the first positional argument */
    int loads_model;            /* accepts --allow-nonfinite-weights (sets cli_load_flags) */
    int runs_encoder;           /* accepts --precision (sets cli_precision) */
};
/* Flags every model load of the CLI adds (MEDVLM_LOAD_ALLOW_NONFINITE after
 * --allow-nonfinite-weights): cli_model_load applies them, direct loads OR them in. */
extern unsigned cli_load_flags;
/* --precision (default auto): cli_model_load prepares the model with it
 * (medvlm_model_prepare). */
extern enum medvlm_precision cli_precision;
/* Rows of an option table; the _G forms also set *given when the option is given. */
#define CLI_OPT_STR(n, d)                                                                          \
    {                                                                                              \
        .name = (n), .kind = CLI_STR, .dst = (d)                                                   \
    }
#define CLI_OPT_FLAG(n, d)                                                                         \
    {                                                                                              \
        .name = (n), .kind = CLI_FLAG, .dst = (d)                                                  \
    }
#define CLI_OPT_INT(n, d, l, h)                                                                    \
    {                                                                                              \
        .name = (n), .kind = CLI_INT, .dst = (d), .lo = (l), .hi = (h)                             \
    }
#define CLI_OPT_INT_G(n, d, l, h, g)                                                               \
    {                                                                                              \
        .name = (n), .kind = CLI_INT, .dst = (d), .lo = (l), .hi = (h), .given = (g)               \
    }
#define CLI_OPT_LONG(n, d, l, h)                                                                   \
    {                                                                                              \
        .name = (n), .kind = CLI_LONG, .dst = (d), .lo = (l), .hi = (h)                            \
    }
#define CLI_OPT_LONG_G(n, d, l, h, g)                                                              \
    {                                                                                              \
        .name = (n), .kind = CLI_LONG, .dst = (d), .lo = (l), .hi = (h), .given = (g)              \
    }
#define CLI_OPT_FLOAT(n, d, l, h)                                                                  \
    {                                                                                              \
        .name = (n), .kind = CLI_FLOAT, .dst = (d), .lo = (l), .hi = (h)                           \
    }
#define CLI_OPT_FLOAT_G(n, d, l, h, g)                                                             \
    {                                                                                              \
        .name = (n), .kind = CLI_FLOAT, .dst = (d), .lo = (l), .hi = (h), .given = (g)             \
    }
#define CLI_OPT_DOUBLE(n, d, l, h)                                                                 \
    {                                                                                              \
        .name = (n), .kind = CLI_DOUBLE, .dst = (d), .lo = (l), .hi = (h)                          \
    }
#define CLI_OPT_CHOICE(n, d, c)                                                                    \
    {                                                                                              \
        .name = (n), .kind = CLI_CHOICE, .dst = (d), .choices = (c)                                \
    }
#define CLI_OPT_CHOICE_G(n, d, c, g)                                                               \
    {                                                                                              \
        .name = (n), .kind = CLI_CHOICE, .dst = (d), .choices = (c), .given = (g)                  \
    }
#define CLI_OPT_LIST(n, d)                                                                         \
    {                                                                                              \
        .name = (n), .kind = CLI_LIST, .dst = (d)                                                  \
    }
#define CLI_OPT_END                                                                                \
    {                                                                                              \
        .name = NULL                                                                               \
    }
#define CLI_GO_ON (-1)
/* CLI_GO_ON: parsed, the positional arguments are argv[*first_pos .. argc); CLI_OK: --help
 * was printed; CLI_USAGE: a usage error was printed. */
int cli_parse(const struct cli_spec *s, int argc, char **argv, int *first_pos);

/* ---- a command's inputs and outputs (outputs.c) ----
 * Lists end at the first row without a flag; a NULL path is skipped. cli_outputs_ok is 1 when
 * no output is an input, a model folder or one of its files, or another output; else it
 * prints a usage error naming both flags and returns 0. */
#define CLI_IO_MAX 8
struct cli_io_path {
    const char *flag; /* "--out" */
    const char *path;
};
struct cli_io {
    struct cli_io_path in[CLI_IO_MAX], model[CLI_IO_MAX], out[CLI_IO_MAX];
    struct {
        const char *flag; /* "IMAGE" */
        const char *const *paths;
        int n;
    } in_list; /* many inputs of one kind (image files) */
};
int cli_outputs_ok(const char *cmd, const struct cli_io *io);

/* Parse a whole decimal integer in [lo, hi]; false on anything else. */
int cli_parse_int(const char *s, long lo, long hi, long *out);
int cli_parse_float(const char *s, double *out);
/* Print a JSON string literal with escapes. */
void cli_json_string(FILE *f, const char *s);

/* ---- flags shared by subcommands that read a dataset (common.c) ---- */
enum {
    CLI_OPT_PRECISION = 250, /* --precision (cli_spec.runs_encoder) */
    CLI_OPT_IMAGES = 256,
    CLI_OPT_LABELS,
    CLI_OPT_CLASSES,
    CLI_OPT_SHEET,
    CLI_OPT_IMAGE_COLUMN,
    CLI_OPT_LABEL_COLUMN,
    CLI_OPT_SKIP_MISSING,
    CLI_OPT_SKIP_BAD,
    CLI_OPT_PREPROCESS,
    CLI_OPT_NO_ANTIALIAS,
    CLI_OPT_NO_CENTER_CROP,
    CLI_OPT_BATCH_SIZE,
    CLI_OPT_THREADS,
    CLI_OPT_FIRST_FREE /* commands number their own long options from here */
};
/* getopt_long rows for the shared flags, to splice into a command's option table: the label
 * table / image folder flags alone, or with the preprocessing and speed flags. */
#define CLI_TABLE_OPTIONS                                                                          \
    {"images", required_argument, NULL, CLI_OPT_IMAGES},                                           \
        {"labels", required_argument, NULL, CLI_OPT_LABELS},                                       \
        {"classes", required_argument, NULL, CLI_OPT_CLASSES},                                     \
        {"sheet", required_argument, NULL, CLI_OPT_SHEET},                                         \
        {"image-column", required_argument, NULL, CLI_OPT_IMAGE_COLUMN},                           \
        {"label-column", required_argument, NULL, CLI_OPT_LABEL_COLUMN},                           \
    {                                                                                              \
        "skip-missing", no_argument, NULL, CLI_OPT_SKIP_MISSING                                    \
    }
#define CLI_DATA_OPTIONS                                                                           \
    CLI_TABLE_OPTIONS, {"skip-bad", no_argument, NULL, CLI_OPT_SKIP_BAD},                          \
        {"preprocess", required_argument, NULL, CLI_OPT_PREPROCESS},                               \
        {"no-antialias", no_argument, NULL, CLI_OPT_NO_ANTIALIAS},                                 \
        {"no-center-crop", no_argument, NULL, CLI_OPT_NO_CENTER_CROP},                             \
        {"batch-size", required_argument, NULL, CLI_OPT_BATCH_SIZE},                               \
    {                                                                                              \
        "threads", required_argument, NULL, CLI_OPT_THREADS                                        \
    }
#define CLI_DATA_HELP                                                                              \
    "dataset:\n"                                                                                   \
    "  --images DIR          image folder (names in the table are relative to it; without\n"       \
    "                        --labels: one sub-folder per class)\n"                                \
    "  --labels TABLE        .xlsx or .csv label table (image column + one-hot class columns\n"    \
    "                        or a label column)\n"                                                 \
    "  --classes A,B,...     class names in label order (e.g. NC,G3,G4,G5)\n"                      \
    "  --sheet NAME, --image-column NAME, --label-column NAME\n"                                   \
    "  --skip-missing        leave out listed images that do not exist\n"                          \
    "  --skip-bad            leave out images that fail to decode (else: stop, write nothing)\n"   \
    "preprocessing and speed:\n"                                                                   \
    "  --preprocess tutorial|hf|hf-torchvision  the notebooks' torchvision pipeline\n"             \
    "                        (default); Hugging Face's CLIPImageProcessor as transformers 4\n"     \
    "                        runs it (Pillow resize; CLIPImageProcessorPil in 5); or as\n"         \
    "                        transformers 5's default runs it (torchvision resize: pixels\n"       \
    "                        differ from hf by up to ~0.03 after normalisation)\n"                 \
    "  --no-antialias        tutorial: plain bilinear resize (torchvision < 0.17)\n"               \
    "  --no-center-crop      hf: no centre crop (as the notebooks set it)\n"                       \
    "  --batch-size N        images per forward pass (default 32)\n"                               \
    "  --threads N           threads (default: all cores)\n"

struct cli_data_args {
    struct medvlm_dataset_options ds;
    struct medvlm_preprocess_options pre;
    int skip_bad;
    int batch_size;
    int threads; /* 0 = default */
};
void cli_data_args_init(struct cli_data_args *a);
/* Handle one label-table flag (CLI_TABLE_OPTIONS): 1 handled, 0 not one of them. */
int cli_table_opt(int c, const char *arg, struct medvlm_dataset_options *ds);
/* Handle one shared flag: 1 handled, 0 not a shared flag, -CLI_USAGE bad value (printed). */
int cli_data_opt(const char *cmd, int c, const char *arg, struct cli_data_args *a);

/* Read a text file as lines ("\n" or "\r\n"; a final newline ends the last line, it does not
 * start an empty one). *data holds the text, *lines (n) point into it; free both with free().
 * On failure the message (naming the file) is in medvlm_last_error(). */
int cli_read_lines(const char *path, char **data, char ***lines, int *n);

/* 1 unless the embeddings a_what and b_what both record their model (medvlm_provenance) and
 * the weights differ; then prints which model made each and returns 0. */
int cli_same_model(const char *a_what, const struct medvlm_provenance *a, const char *b_what,
                   const struct medvlm_provenance *b);

/* A model to use (m) and what it was made from: MODEL_DIR loaded with the towers in flags
 * and, with run (not NULL), the fine-tuning run folder applied unmerged (the vision tower is
 * then loaded too). 0 on failure, the message in medvlm_last_error(). */
struct cli_model {
    struct medvlm_model *base, *m;
};
int cli_model_load(const char *dir, const char *run, unsigned flags, struct cli_model *cm);
void cli_model_free(struct cli_model *cm);
#define CLI_RUN_HELP                                                                               \
    "  --run RUN_DIR         apply the fine-tuning of `medvlm finetune --out RUN_DIR` to the\n"    \
    "                        model (unmerged; a run of another model is refused)\n" CLI_MODEL_HELP
#define CLI_MODEL_HELP                                                                             \
    "  --allow-nonfinite-weights  load a model whose weights hold NaN or Inf (refused, naming\n"   \
    "                        the tensor, by default)\n"                                            \
    "  --precision P         fp32, bf16 or auto (default): the encoders' matrix products;\n"       \
    "                        auto runs bf16 only where it is the faster (docs/precision.md)\n"

/* --report FILE.html (medvlm_report_write_html), written after everything else the command
 * writes. r gives the title, summary and the parts an evaluation does not hold (losses, the
 * seed spread); ev, when not NULL, the metrics, class names, predictions and probabilities.
 * The gallery's files: paths (ev->n) when given, else images_root joined with image_names,
 * else none (names only). 1 written, 0 failed (printed). */
int cli_write_report(const char *path, struct medvlm_report *r, const struct medvlm_evaluation *ev,
                     const char *const *image_names, const char *images_root,
                     const char *const *paths);
#define CLI_REPORT_HELP                                                                            \
    "  --report FILE.html    a self-contained HTML report: metrics, confusion heatmap, bars,\n"    \
    "                        loss curve, misclassified images (thumbnails embedded)\n"             \
    "  --report-images DIR   the folder the features' image names are relative to, for the\n"      \
    "                        report's thumbnails\n"

/* ---- medvlm finetune's checkpoint (finetune_checkpoint.c) ---- */

/* The settings a checkpoint must share with the run that resumes it, as "flag value" pairs:
 * the first that differs is named. --epochs, --patience and --stop-after are left out: they
 * decide when training stops, not what an epoch computes. */
struct cli_ft_setting {
    const char *flag;
    char value[512];
};
#define CLI_FT_SETTINGS 18

/* Where a run stands after an epoch. */
struct cli_ft_progress {
    long epoch; /* epochs finished */
    struct mv_rng rng;
    double *losses, *val_losses; /* (epochs) */
    double best_val;
    long best_epoch, since_best;
    float *best; /* snapshot of the best epoch's parameters (with --val) */
    size_t nbest;
};
/* Write path atomically: the state of p, g and the settings. 1 on success. */
int cli_ft_checkpoint_save(const char *path, const struct medvlm_peft *p,
                           const struct cli_ft_progress *g, const struct cli_ft_setting *set);
/* Resume from the checkpoint at path (which exists) for a run of `epochs` epochs: 1 resumed,
 * 0 refused or failed (printed). Nothing is written: a refused checkpoint stays as it was. */
int cli_ft_checkpoint_load(const char *path, long epochs, struct medvlm_peft *p,
                           struct cli_ft_progress *g, const struct cli_ft_setting *set);

typedef void (*cli_progress_fn)(int done, int total, int computed, double seconds, void *user);
/* A progress line on stderr when it is a terminal, else NULL (no output). */
cli_progress_fn cli_progress_for_terminal(void);

/* subcommands */
int cmd_info(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_features(int argc, char **argv);
int cmd_zeroshot(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_dataset(int argc, char **argv);
int cmd_metrics(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_preprocess(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_adapt(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_finetune(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_serve(int argc, char **argv);

#endif

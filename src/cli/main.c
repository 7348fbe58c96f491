/* main.c - the medvlm command table and dispatcher. */
#include "cli.h"

#include "dist/dist.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const struct cli_command commands[] = {
    {"info", cmd_info, "describe a model folder: architecture, parameters, files", 0},
    {"init", cmd_init, "make a random-weight model folder or a synthetic labelled image set", 0},
    {"tokenize", cmd_tokenize, "token ids of prompts (CLIP BPE, the ids of Hugging Face)", 0},
    {"preprocess", cmd_preprocess,
     "images -> model input tensors (hf, hf-torchvision or tutorial pipeline)", 0},
    {"embed", cmd_embed, "image and text embeddings to a safetensors file", 0},
    {"dataset", cmd_dataset, "load a label table or class folders and describe the dataset", 0},
    {"features", cmd_features,
     "embed a dataset's images once (resumable), for zero-shot and adapters", 1},
    {"zeroshot", cmd_zeroshot, "zero-shot classification with class prompts or prompt ensembles",
     0},
    {"sample", cmd_sample, "draw the tutorial's few-shot subset of a label table", 0},
    {"adapt", cmd_adapt, "train few-shot adapters (LP, CLAP, Tip-Adapter...) on features", 0},
    {"predict", cmd_predict, "classify a features file with a saved adapter", 0},
    {"finetune", cmd_finetune, "fine-tune the vision encoder (LayerNorm, bias, LoRA) on few shots",
     1},
    {"merge", cmd_merge, "fold a fine-tuning run into a complete model folder", 0},
    {"metrics", cmd_metrics, "balanced accuracy, kappa, confusion matrix of a predictions table",
     0},
    {"serve", cmd_serve, "a web page and JSON API: zero-shot on uploads, text and image search", 0},
    {"bench", cmd_bench, "time the encoders: images/s, prompts/s, GFLOP/s, peak memory", 0},
};

static void print_help(FILE *f)
{
    fprintf(f, "usage: medvlm [--version] [--help] COMMAND [ARGS]\n"
               "\n"
               "Adapt CLIP-family medical vision-language models (PLIP, CLIP, QuiltNet) to a new\n"
               "image-classification task: zero-shot, few-shot adapters, parameter-efficient\n"
               "fine-tuning.\n"
               "\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'medvlm COMMAND --help' describes one command, with an example.\n"
               "exit status: 0 success, 1 failure, 2 usage error.\n"
               "Under mpirun, features and finetune share the work across the ranks; every other\n"
               "command runs on rank 0 (docs/scale.md).\n");
}

/* Under mpirun (src/dist/): features and finetune run on every rank and share the work; every
 * other command runs on rank 0 alone while the other ranks sleep until it is done. */
static int run_command(const struct cli_command *c, int argc, char **argv)
{
    if (c->all_ranks || mv_dist_size() == 1) return mv_dist_end(c->run(argc, argv));
    int rc = CLI_OK;
    if (mv_dist_rank() == 0) {
        rc = c->run(argc, argv);
        fflush(stdout);
        mv_dist_release();
    } else {
        mv_dist_idle();
    }
    mv_dist_end(CLI_OK); /* rank 0's status is the job's: no abort for a usage error */
    return rc;
}

/* The exit code of one invocation, before standard output is flushed. */
static int dispatch(int argc, char **argv)
{
    if (argc < 2) {
        print_help(stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        print_help(stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("medvlm %s\n", MEDVLM_VERSION_STRING);
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return run_command(&commands[i], argc - 1, argv + 1);
    fprintf(stderr, "medvlm: unknown command '%s'\n", argv[1]);
    fprintf(stderr, "Try 'medvlm --help' for the list of commands.\n");
    return CLI_USAGE;
}

int main(int argc, char **argv)
{
    if (mv_dist_init(&argc, &argv)) {
        fprintf(stderr, "medvlm: %s\n", medvlm_last_error());
        return CLI_FAIL;
    }
    int rc = dispatch(argc, argv);
    if (mv_dist_active()) mv_dist_end(CLI_OK); /* --help, --version, an unknown command */
    /* What a command prints is its result: output that did not reach standard output (a full
     * disk, a closed pipe, /dev/full) is a failure, not a success with a short file. The
     * stream's error flag covers every earlier write; the flush and close cover the rest. */
    errno = 0;
    const int bad = ferror(stdout);
    if (fflush(stdout) != 0 || bad || fclose(stdout) != 0) {
        fprintf(stderr, "medvlm: writing standard output failed: %s\n",
                errno ? strerror(errno) : "write error");
        if (rc == CLI_OK) rc = CLI_FAIL;
    }
    return rc;
}

int cli_fail(const char *context)
{
    /* one line in one write: under mpirun the ranks' lines share the terminal */
    char rank[48] = "";
    if (mv_dist_size() > 1) snprintf(rank, sizeof rank, "MPI rank %d: ", mv_dist_rank());
    if (context && *context)
        fprintf(stderr, "medvlm: %s%s: %s\n", rank, context, medvlm_last_error());
    else
        fprintf(stderr, "medvlm: %s%s\n", rank, medvlm_last_error());
    return CLI_FAIL;
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "medvlm %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'medvlm %s --help'.\n", cmd);
    return CLI_USAGE;
}

int cli_option_end(const char *cmd, const char *usage, int c, char *const *argv)
{
    if (c == 'h') {
        fputs(usage, stdout);
        return CLI_OK;
    }
    if (c == ':') return cli_usage(cmd, "option '%s' needs a value", argv[optind - 1]);
    return cli_usage(cmd, "unknown option '%s'", argv[optind - 1]);
}

int cli_parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

int cli_parse_float(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

void cli_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

/* cmd_init.c - `medvlm init model|data`: make a model folder or a labelled image set. */
#include "cli.h"

#include <stdlib.h>
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

static const char *usage =
    "usage: medvlm init model [--preset tiny|plip] [--seed N] [--force] DIR\n"
    "       medvlm init data [--classes A,B,...] [--per-class N] [--size PX] [--seed N]\n"
    "                        [--force] DIR\n"
    "\n"
    "model: write a Hugging Face CLIP folder with RANDOM weights (config.json,\n"
    "       preprocessor_config.json, model.safetensors) and a small self-made BPE\n"
    "       tokenizer (vocab.json, merges.txt, tokenizer.json) of a preset shape: `plip` is\n"
    "       the vinid/plip = openai/clip-vit-base-patch32 architecture (with the small\n"
    "       vocabulary), `tiny` a 64-wide, 2-layer model for quick runs. Random weights\n"
    "       classify at chance level: this is for trying the tools and for tests.\n"
    "data:  write DIR/images/*.jpg, synthetic H&E-like tiles whose colour and texture\n"
    "       depend on the class, and DIR/labels.csv (image_name + one-hot class columns,\n"
    "       the SICAPv2 table layout). Default classes NC,G3,G4,G5, 8 per class, 256 px.\n"
    "DIR must be absent or empty: a folder that holds anything (a real model's weights, a\n"
    "data set) is refused unless --force, which writes over the files of the same names.\n"
    "\n"
    "examples:\n"
    "  medvlm init model --preset tiny /tmp/tiny-clip\n"
    "  medvlm init data --per-class 20 /tmp/synthetic-sicap\n";

/* The options of `init model` or `init data` and the one output folder, argv[*pos]. */
static int parse_kind(int argc, char **argv, const struct cli_opt *opts, int *pos)
{
    const struct cli_spec spec = {.cmd = "init",
                                  .usage = usage,
                                  .opts = opts,
                                  .min_pos = 1,
                                  .max_pos = 1,
                                  .pos_name = "output DIR"};
    return cli_parse(&spec, argc, argv, pos);
}

/* 1 when dir does not exist or is an empty folder; else prints why it is refused. */
static int empty_or_absent(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) != 0) return 1; /* created when written */
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "medvlm: %s exists and is not a folder\n", dir);
        return 0;
    }
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "medvlm: %s: cannot read the folder: %s\n", dir, strerror(errno));
        return 0;
    }
    const struct dirent *e;
    int empty = 1;
    while (empty && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = 0;
    closedir(d);
    if (!empty)
        fprintf(stderr,
                "medvlm: %s is not empty: init writes a new folder and would replace what is "
                "there (give --force to write over it)\n",
                dir);
    return empty;
}

static void preset_tiny(struct medvlm_config *cfg)
{
    medvlm_config_default(cfg);
    cfg->projection_dim = 32;
    struct medvlm_tower_config *towers[2] = {&cfg->text, &cfg->vision};
    for (int i = 0; i < 2; i++) {
        towers[i]->hidden_size = 64;
        towers[i]->intermediate_size = 256;
        towers[i]->num_hidden_layers = 2;
        towers[i]->num_attention_heads = 4;
    }
}

#define MAX_CLASSES 256

static int init_model(int argc, char **argv)
{
    const char *preset = "tiny";
    long seed = 0;
    int force = 0, pos;
    const struct cli_opt opts[] = {CLI_OPT_STR("preset", &preset),
                                   CLI_OPT_LONG("seed", &seed, 0, 0x7fffffff),
                                   CLI_OPT_FLAG("force", &force), CLI_OPT_END};
    const int parsed = parse_kind(argc, argv, opts, &pos);
    if (parsed != CLI_GO_ON) return parsed;
    struct medvlm_config cfg;
    if (strcmp(preset, "plip") == 0)
        medvlm_config_default(&cfg);
    else if (strcmp(preset, "tiny") == 0)
        preset_tiny(&cfg);
    else
        return cli_usage("init", "unknown preset '%s' (expected tiny or plip)", preset);
    const char *dir = argv[pos];
    if (!force && !empty_or_absent(dir)) return CLI_FAIL;
    /* the tokenizer first: its vocabulary sizes the text embedding */
    int vocab = 0;
    struct medvlm_tokenizer *tok;
    if (medvlm_tokenizer_write_basic(dir, &vocab) || medvlm_tokenizer_load(dir, &tok))
        return cli_fail("init model");
    cfg.text.vocab_size = vocab;
    cfg.text.bos_token_id = medvlm_tokenizer_bos_id(tok);
    cfg.text.eos_token_id = cfg.text.pad_token_id = medvlm_tokenizer_eos_id(tok);
    medvlm_tokenizer_free(tok);
    struct medvlm_model *m;
    if (medvlm_model_init_random(&cfg, (uint64_t)seed, &m)) return cli_fail("init model");
    enum medvlm_status st = medvlm_model_save(m, dir);
    medvlm_model_free(m);
    if (st) return cli_fail("init model");
    printf("wrote %s: %s-shaped CLIP with random weights (seed %ld)\n", dir, preset, seed);
    return CLI_OK;
}

static int init_data(int argc, char **argv)
{
    const char *classes_arg = "NC,G3,G4,G5";
    char classes_buf[4096];
    long per_class = 8, size = 256, seed = 0;
    int force = 0, pos;
    const struct cli_opt opts[] = {
        CLI_OPT_STR("classes", &classes_arg),  CLI_OPT_LONG("per-class", &per_class, 1, 100000),
        CLI_OPT_LONG("size", &size, 16, 4096), CLI_OPT_LONG("seed", &seed, 0, 0x7fffffff),
        CLI_OPT_FLAG("force", &force),         CLI_OPT_END};
    const int parsed = parse_kind(argc, argv, opts, &pos);
    if (parsed != CLI_GO_ON) return parsed;
    if (strlen(classes_arg) >= sizeof classes_buf)
        return cli_usage("init", "--classes list is too long");
    strcpy(classes_buf, classes_arg);
    const char *classes[MAX_CLASSES];
    int k = 0;
    for (char *tok = strtok(classes_buf, ","); tok; tok = strtok(NULL, ",")) {
        if (k == MAX_CLASSES) return cli_usage("init", "at most %d classes", MAX_CLASSES);
        if (!*tok ||
            strspn(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") !=
                strlen(tok))
            return cli_usage("init", "class names may use letters, digits, '_' and '-' only: '%s'",
                             tok);
        classes[k++] = tok;
    }
    if (k < 1) return cli_usage("init", "--classes is empty");
    if (!force && !empty_or_absent(argv[pos])) return CLI_FAIL;
    if (medvlm_synth_dataset(argv[pos], classes, k, (int)per_class, (int)size, (uint64_t)seed))
        return cli_fail("init data");
    printf("wrote %s: %ld synthetic images (%d classes x %ld) and labels.csv\n", argv[pos],
           per_class * k, k, per_class);
    return CLI_OK;
}

int cmd_init(int argc, char **argv)
{
    if (argc < 2) return cli_usage("init", "expected 'model' or 'data'");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage, stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "model") == 0) return init_model(argc - 1, argv + 1);
    if (strcmp(argv[1], "data") == 0) return init_data(argc - 1, argv + 1);
    return cli_usage("init", "unknown kind '%s' (expected 'model' or 'data')", argv[1]);
}

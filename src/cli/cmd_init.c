/* cmd_init.c - `medvlm init model|data`: make a model folder or a labelled image set. */
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char *usage =
    "usage: medvlm init model [--preset tiny|plip] [--seed N] DIR\n"
    "       medvlm init data [--classes A,B,...] [--per-class N] [--size PX] [--seed N] DIR\n"
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
    "\n"
    "examples:\n"
    "  medvlm init model --preset tiny /tmp/tiny-clip\n"
    "  medvlm init data --per-class 20 /tmp/synthetic-sicap\n";

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
    static const struct option opts[] = {{"preset", required_argument, NULL, 'p'},
                                         {"seed", required_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *preset = "tiny";
    long seed = 0;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            preset = optarg;
            break;
        case 's':
            if (!cli_parse_int(optarg, 0, 0x7fffffffL, &seed))
                return cli_usage("init", "--seed expects a non-negative integer, got '%s'", optarg);
            break;
        default:
            return cli_option_end("init", usage, c, argv);
        }
    }
    if (argc - optind != 1) return cli_usage("init", "init model expects one output DIR");
    struct medvlm_config cfg;
    if (strcmp(preset, "plip") == 0)
        medvlm_config_default(&cfg);
    else if (strcmp(preset, "tiny") == 0)
        preset_tiny(&cfg);
    else
        return cli_usage("init", "unknown preset '%s' (expected tiny or plip)", preset);
    const char *dir = argv[optind];
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
    static const struct option opts[] = {
        {"classes", required_argument, NULL, 'c'}, {"per-class", required_argument, NULL, 'n'},
        {"size", required_argument, NULL, 'z'},    {"seed", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    char classes_buf[4096] = "NC,G3,G4,G5";
    long per_class = 8, size = 256, seed = 0;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            if (strlen(optarg) >= sizeof classes_buf)
                return cli_usage("init", "--classes list is too long");
            strcpy(classes_buf, optarg);
            break;
        case 'n':
            if (!cli_parse_int(optarg, 1, 100000, &per_class))
                return cli_usage("init", "--per-class expects 1..100000, got '%s'", optarg);
            break;
        case 'z':
            if (!cli_parse_int(optarg, 16, 4096, &size))
                return cli_usage("init", "--size expects 16..4096 pixels, got '%s'", optarg);
            break;
        case 's':
            if (!cli_parse_int(optarg, 0, 0x7fffffffL, &seed))
                return cli_usage("init", "--seed expects a non-negative integer, got '%s'", optarg);
            break;
        default:
            return cli_option_end("init", usage, c, argv);
        }
    }
    if (argc - optind != 1) return cli_usage("init", "init data expects one output DIR");
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
    if (medvlm_synth_dataset(argv[optind], classes, k, (int)per_class, (int)size, (uint64_t)seed))
        return cli_fail("init data");
    printf("wrote %s: %ld synthetic images (%d classes x %ld) and labels.csv\n", argv[optind],
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

/* cmd_embed.c - `medvlm embed`: image and/or text embeddings of files and prompts. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char *usage =
    "usage: medvlm embed --model DIR [--images FILE]... [IMAGE...] [--prompts FILE]\n"
    "                    --out OUT.safetensors [--preprocess hf|tutorial] [--batch-size N]\n"
    "                    [--threads N] [--skip-bad]\n"
    "\n"
    "Write l2-normalised CLIP embeddings: `image_embeds` (N, D) of the images and\n"
    "`text_embeds` (P, D) of the prompts (a text file, one prompt per line), with their\n"
    "names in the metadata (image_names, prompts as JSON arrays). An image that fails to\n"
    "decode is reported by name and nothing is written, unless --skip-bad leaves it out.\n"
    "\n"
    "  --preprocess hf|tutorial  Hugging Face's CLIPImageProcessor (default here) or the\n"
    "                        notebooks' torchvision pipeline; --no-antialias, "
    "--no-center-crop\n" CLI_RUN_HELP "\n"
    "example:\n"
    "  medvlm embed --model plip --prompts prompts.txt --out emb.safetensors patches/*.jpg\n";

static char *json_array(const char *const *s, int n)
{
    size_t cap = 16;
    for (int i = 0; i < n; i++) cap += 6 * strlen(s[i]) + 4;
    char *out = malloc(cap), *p = out;
    if (!out) return NULL;
    *p++ = '[';
    for (int i = 0; i < n; i++) {
        if (i) *p++ = ',';
        *p++ = '"';
        for (const unsigned char *c = (const unsigned char *)s[i]; *c; c++) {
            if (*c == '"' || *c == '\\') {
                *p++ = '\\';
                *p++ = (char)*c;
            } else if (*c < 0x20) {
                p += sprintf(p, "\\u%04x", *c);
            } else {
                *p++ = (char)*c;
            }
        }
        *p++ = '"';
    }
    *p++ = ']';
    *p = '\0';
    return out;
}

struct embed_args {
    struct cli_data_args data;
    const char *model_dir, *out, *prompts_path, *run;
    char **images; /* (n_images) --image / --images values, then the IMAGE arguments */
    int n_images;
};

/* CLI_GO_ON when the command should go on; else its exit code (usage printed, or --help). */
static int parse_args(int argc, char **argv, struct embed_args *a)
{
    int first;
    cli_data_args_init(&a->data);
    a->data.pre.pipeline = MEDVLM_PREPROCESS_HF;
    if (!(a->images = calloc((size_t)argc + 1, sizeof *a->images))) return CLI_FAIL;
    struct cli_list list = {(const char **)a->images, 0, argc};
    /* --images FILE here names one image (it may be given again), as --image does */
    const struct cli_opt opts[] = {CLI_OPT_STR("model", &a->model_dir),
                                   CLI_OPT_STR("out", &a->out),
                                   CLI_OPT_STR("prompts", &a->prompts_path),
                                   CLI_OPT_STR("run", &a->run),
                                   CLI_OPT_LIST("images", &list),
                                   CLI_OPT_LIST("image", &list),
                                   CLI_OPT_END};
    const struct cli_spec spec = {.loads_model = 1,
                                  .runs_encoder = 1,
                                  .cmd = "embed",
                                  .usage = usage,
                                  .opts = opts,
                                  .data = &a->data,
                                  .max_pos = -1};
    const int parsed = cli_parse(&spec, argc, argv, &first);
    if (parsed != CLI_GO_ON) return parsed;
    for (int i = first; i < argc; i++) a->images[list.n++] = argv[i];
    a->n_images = list.n;
    if (!a->model_dir || !a->out) return cli_usage("embed", "--model and --out are required");
    if (!a->n_images && !a->prompts_path)
        return cli_usage("embed", "nothing to embed: give images and/or --prompts");
    const struct cli_io io = {.in = {{"--prompts", a->prompts_path}},
                              .model = {{"--model", a->model_dir}, {"--run", a->run}},
                              .out = {{"--out", a->out}},
                              .in_list = {"IMAGE", (const char *const *)a->images, a->n_images}};
    return cli_outputs_ok("embed", &io) ? CLI_GO_ON : CLI_USAGE;
}

/* The images, in order, as an unlabelled one-class data set: `image_embeds` and `image_names`
 * added to w; *res keeps the embeddings. 1, or 0 after a message. */
static int embed_images(const struct embed_args *a, const struct medvlm_model *m,
                        struct medvlm_st_writer *w, struct medvlm_features_result *res)
{
    static char none[] = "images";
    char *classes[1] = {none};
    const int D = medvlm_model_config(m)->projection_dim;
    int64_t *labels = calloc((size_t)a->n_images, sizeof *labels);
    const struct medvlm_dataset ds = {.n = a->n_images,
                                      .n_classes = 1,
                                      .paths = a->images,
                                      .names = a->images,
                                      .labels = labels,
                                      .classes = classes};
    const struct medvlm_features_job job = {.model = m,
                                            .data = &ds,
                                            .pre = a->data.pre,
                                            .batch_size = a->data.batch_size,
                                            .threads = a->data.threads,
                                            .skip_bad = a->data.skip_bad,
                                            .progress = cli_progress_for_terminal(),
                                            .progress_user = "images"};
    enum medvlm_status st = labels ? medvlm_features_extract(&job, res) : MEDVLM_ERR_NOMEM;
    free(labels);
    char *names = st ? NULL : json_array((const char *const *)res->names, res->n);
    const int ok = names &&
                   !medvlm_st_writer_add(w, "image_embeds", MEDVLM_DTYPE_F32, 2,
                                         (int64_t[]){res->n, D}, res->features) &&
                   !medvlm_st_writer_meta(w, "image_names", names);
    free(names);
    if (!ok) return cli_fail(NULL), 0;
    if (res->skipped) fprintf(stderr, "medvlm: %d unreadable images left out\n", res->skipped);
    return 1;
}

/* Each prompt its own "class": its prototype is its normalised embedding. `text_embeds` and
 * `prompts` added to w. 1, or 0 after a message. */
static int embed_prompts(const struct embed_args *a, const struct medvlm_model *m, char **prompts,
                         int n, struct medvlm_st_writer *w)
{
    const struct medvlm_config *cfg = medvlm_model_config(m);
    const int D = cfg->projection_dim;
    struct medvlm_tokenizer *tok = NULL;
    struct medvlm_encoder *enc = NULL;
    float *te = malloc((size_t)n * D * sizeof *te);
    int *tc = calloc((size_t)n, sizeof *tc);
    char *json = NULL;
    int ok =
        te && tc && !medvlm_tokenizer_load(a->model_dir, &tok) && !medvlm_encoder_init(m, 32, &enc);
    for (int i = 0; ok && i < n; i++) tc[i] = i;
    ok = ok &&
         !medvlm_zeroshot_prototypes(enc, tok, cfg->text.max_position_embeddings,
                                     (const char *const *)prompts, tc, n, n, D, te) &&
         (json = json_array((const char *const *)prompts, n)) &&
         !medvlm_st_writer_add(w, "text_embeds", MEDVLM_DTYPE_F32, 2, (int64_t[]){n, D}, te) &&
         !medvlm_st_writer_meta(w, "prompts", json);
    if (!ok) cli_fail(NULL);
    medvlm_encoder_free(enc);
    medvlm_tokenizer_free(tok);
    free(te);
    free(tc);
    free(json);
    return ok;
}

int cmd_embed(int argc, char **argv)
{
    struct embed_args a = {0};
    int rc = parse_args(argc, argv, &a);
    if (rc != CLI_GO_ON) return free(a.images), rc;
    if (a.data.threads) medvlm_set_threads(a.data.threads);
    int n_prompts = 0;
    char *pbuf = NULL, **prompts = NULL;
    struct cli_model cm = {0};
    struct medvlm_st_writer *w = NULL;
    struct medvlm_features_result res = {0};
    rc = CLI_FAIL;
    if (a.prompts_path && !cli_read_lines(a.prompts_path, &pbuf, &prompts, &n_prompts)) {
        cli_fail(NULL);
        goto done;
    }
    const unsigned flags =
        (a.n_images ? MEDVLM_LOAD_VISION : 0) | (n_prompts ? MEDVLM_LOAD_TEXT : 0);
    if (!flags) {
        fprintf(stderr, "medvlm: %s: no prompts in the file\n", a.prompts_path);
        goto done;
    }
    if (!cli_model_load(a.model_dir, a.run, flags, &cm) || medvlm_st_writer_init(&w)) {
        cli_fail(NULL);
        goto done;
    }
    if ((a.n_images && !embed_images(&a, cm.m, w, &res)) ||
        (n_prompts && !embed_prompts(&a, cm.m, prompts, n_prompts, w)))
        goto done;
    if (medvlm_st_writer_meta(w, "medvlm", "embeddings/1") || medvlm_st_writer_save(w, a.out)) {
        cli_fail(NULL);
        goto done;
    }
    printf("wrote %s: %d image embeddings, %d text embeddings, %d dims\n", a.out, res.n, n_prompts,
           medvlm_model_config(cm.m)->projection_dim);
    rc = CLI_OK;
done:
    medvlm_features_result_free(&res);
    medvlm_st_writer_free(w);
    cli_model_free(&cm);
    free(prompts);
    free(pbuf);
    free(a.images);
    return rc;
}

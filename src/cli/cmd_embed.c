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

int cmd_embed(int argc, char **argv)
{
    struct cli_data_args a;
    const char *model_dir = NULL, *out = NULL, *prompts_path = NULL, *run = NULL;
    int first;
    cli_data_args_init(&a);
    a.pre.pipeline = MEDVLM_PREPROCESS_HF;
    char **images = calloc((size_t)argc + 1, sizeof *images);
    if (!images) return CLI_FAIL;
    struct cli_list list = {(const char **)images, 0, argc};
    /* --images FILE here names one image (it may be given again), as --image does */
    const struct cli_opt opts[] = {CLI_OPT_STR("model", &model_dir),
                                   CLI_OPT_STR("out", &out),
                                   CLI_OPT_STR("prompts", &prompts_path),
                                   CLI_OPT_STR("run", &run),
                                   CLI_OPT_LIST("images", &list),
                                   CLI_OPT_LIST("image", &list),
                                   CLI_OPT_END};
    const struct cli_spec spec = {
        .loads_model = 1, .cmd = "embed", .usage = usage, .opts = opts, .data = &a, .max_pos = -1};
    const int parsed = cli_parse(&spec, argc, argv, &first);
    if (parsed != CLI_GO_ON) return free(images), parsed;
    for (int i = first; i < argc; i++) images[list.n++] = argv[i];
    const int n_images = list.n;
    if (!model_dir || !out)
        return free(images), cli_usage("embed", "--model and --out are required");
    if (!n_images && !prompts_path)
        return free(images), cli_usage("embed", "nothing to embed: give images and/or --prompts");
    const struct cli_io io = {.in = {{"--prompts", prompts_path}},
                              .model = {{"--model", model_dir}, {"--run", run}},
                              .out = {{"--out", out}},
                              .in_list = {"IMAGE", (const char *const *)images, n_images}};
    if (!cli_outputs_ok("embed", &io)) return free(images), CLI_USAGE;
    if (a.threads) medvlm_set_threads(a.threads);

    int rc = CLI_FAIL, n_prompts = 0;
    char *pbuf = NULL, **prompts = NULL, *jnames = NULL, *jprompts = NULL;
    struct cli_model cm = {0};
    struct medvlm_model *m = NULL;
    struct medvlm_tokenizer *tok = NULL;
    struct medvlm_encoder *enc = NULL;
    struct medvlm_st_writer *w = NULL;
    struct medvlm_features_result res = {0};
    float *te = NULL;
    int *tc = NULL;
    if (prompts_path && !cli_read_lines(prompts_path, &pbuf, &prompts, &n_prompts)) goto fail_msg;
    unsigned flags = (n_images ? MEDVLM_LOAD_VISION : 0) | (n_prompts ? MEDVLM_LOAD_TEXT : 0);
    if (!flags) {
        fprintf(stderr, "medvlm: %s: no prompts in the file\n", prompts_path);
        goto done;
    }
    if (!cli_model_load(model_dir, run, flags, &cm) || medvlm_st_writer_init(&w)) goto fail_msg;
    m = cm.m;
    const struct medvlm_config *cfg = medvlm_model_config(m);
    const int D = cfg->projection_dim;
    if (n_images) {
        /* an unlabelled one-class "dataset" of the files, embedded in order */
        static char none[] = "images";
        char *classes[1] = {none};
        int64_t *labels = calloc((size_t)n_images, sizeof *labels);
        struct medvlm_dataset ds = {.n = n_images,
                                    .n_classes = 1,
                                    .paths = images,
                                    .names = images,
                                    .labels = labels,
                                    .classes = classes};
        struct medvlm_features_job job = {.model = m,
                                          .data = &ds,
                                          .pre = a.pre,
                                          .batch_size = a.batch_size,
                                          .threads = a.threads,
                                          .skip_bad = a.skip_bad,
                                          .progress = cli_progress_for_terminal(),
                                          .progress_user = "images"};
        enum medvlm_status st = labels ? medvlm_features_extract(&job, &res) : MEDVLM_ERR_NOMEM;
        free(labels);
        if (st) goto fail_msg;
        jnames = json_array((const char *const *)res.names, res.n);
        if (!jnames ||
            medvlm_st_writer_add(w, "image_embeds", MEDVLM_DTYPE_F32, 2, (int64_t[]){res.n, D},
                                 res.features) ||
            medvlm_st_writer_meta(w, "image_names", jnames))
            goto fail_msg;
        if (res.skipped) fprintf(stderr, "medvlm: %d unreadable images left out\n", res.skipped);
    }
    if (n_prompts) {
        if (medvlm_tokenizer_load(model_dir, &tok) || medvlm_encoder_init(m, 32, &enc))
            goto fail_msg;
        te = malloc((size_t)n_prompts * D * sizeof *te);
        tc = calloc((size_t)n_prompts, sizeof *tc);
        if (!te || !tc) goto fail_msg;
        /* each prompt is its own "class": its prototype is its normalised embedding */
        for (int i = 0; i < n_prompts; i++) tc[i] = i;
        if (medvlm_zeroshot_prototypes(enc, tok, cfg->text.max_position_embeddings,
                                       (const char *const *)prompts, tc, n_prompts, n_prompts, D,
                                       te))
            goto fail_msg;
        jprompts = json_array((const char *const *)prompts, n_prompts);
        if (!jprompts ||
            medvlm_st_writer_add(w, "text_embeds", MEDVLM_DTYPE_F32, 2, (int64_t[]){n_prompts, D},
                                 te) ||
            medvlm_st_writer_meta(w, "prompts", jprompts))
            goto fail_msg;
    }
    if (medvlm_st_writer_meta(w, "medvlm", "embeddings/1") || medvlm_st_writer_save(w, out))
        goto fail_msg;
    printf("wrote %s: %d image embeddings, %d text embeddings, %d dims\n", out, res.n, n_prompts,
           D);
    rc = CLI_OK;
    goto done;
fail_msg:
    cli_fail(NULL);
done:
    medvlm_features_result_free(&res);
    medvlm_st_writer_free(w);
    medvlm_encoder_free(enc);
    medvlm_tokenizer_free(tok);
    cli_model_free(&cm);
    free(te);
    free(tc);
    free(jnames);
    free(jprompts);
    free(prompts);
    free(pbuf);
    free(images);
    return rc;
}

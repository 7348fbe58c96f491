/* cmd_zeroshot.c - `medvlm zeroshot`: classify with class prompts, print the metrics. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char *usage =
    "usage: medvlm zeroshot --model DIR --prompts PROMPTS.json\n"
    "                       (--features FEATS.safetensors | --images DIR [--labels TABLE] ...)\n"
    "                       [--save-prototypes FILE] [--json FILE] [--predictions FILE.csv]\n"
    "                       [--report FILE.html [--report-images DIR]]\n"
    "\n"
    "Zero-shot classification as in the PEFT-MedVLMs tutorial: each class's prototype is the\n"
    "normalised text embedding of its prompt, or for a prompt ensemble (templates x\n"
    "descriptions) the mean of its prompts' normalised embeddings, re-normalised; logits =\n"
    "exp(logit_scale) * image features . prototypes. Prints balanced accuracy (ACA), accuracy,\n"
    "macro-F1, quadratic kappa, per-class recall and the confusion matrix.\n"
    "\n"
    "  --prompts FILE        {\"classes\": [...], \"templates\": [...], \"descriptions\": {...}}\n"
    "                        (see examples/sicapv2_single.json, sicapv2_ensemble.json)\n"
    "  --features FILE       features from `medvlm features` (else give a dataset below)\n"
    "  --save-prototypes FILE  write the class prototypes (for `medvlm adapt`)\n"
    "  --json FILE           metrics as JSON     --predictions FILE.csv  one row per "
    "image\n" CLI_REPORT_HELP CLI_RUN_HELP "\n" CLI_DATA_HELP "\n"
    "example:\n"
    "  medvlm zeroshot --model plip --prompts examples/sicapv2_ensemble.json \\\n"
    "      --features test_feats.safetensors --json zs.json\n";

struct zs_args {
    struct cli_data_args data;
    const char *model_dir, *prompts, *features, *save, *json, *predictions, *run;
    const char *report, *report_images;
};

/* CLI_GO_ON when the command should go on; else its exit code (usage printed, or --help). */
static int parse_args(int argc, char **argv, struct zs_args *a)
{
    const struct cli_opt opts[] = {CLI_OPT_STR("model", &a->model_dir),
                                   CLI_OPT_STR("prompts", &a->prompts),
                                   CLI_OPT_STR("features", &a->features),
                                   CLI_OPT_STR("save-prototypes", &a->save),
                                   CLI_OPT_STR("json", &a->json),
                                   CLI_OPT_STR("predictions", &a->predictions),
                                   CLI_OPT_STR("run", &a->run),
                                   CLI_OPT_STR("report", &a->report),
                                   CLI_OPT_STR("report-images", &a->report_images),
                                   CLI_OPT_END};
    cli_data_args_init(&a->data);
    const struct cli_spec spec = {.loads_model = 1,
                                  .runs_encoder = 1,
                                  .cmd = "zeroshot",
                                  .usage = usage,
                                  .opts = opts,
                                  .data = &a->data};
    const int r = cli_parse(&spec, argc, argv, NULL);
    if (r != CLI_GO_ON) return r;
    if (!a->model_dir || !a->prompts)
        return cli_usage("zeroshot", "--model and --prompts are required");
    if (!a->features == !a->data.ds.images_dir)
        return cli_usage("zeroshot", "give either --features or a dataset (--images ...)");
    const struct cli_io io = {.in = {{"--prompts", a->prompts},
                                     {"--features", a->features},
                                     {"--labels", a->data.ds.labels_path}},
                              .model = {{"--model", a->model_dir}, {"--run", a->run}},
                              .out = {{"--save-prototypes", a->save},
                                      {"--json", a->json},
                                      {"--predictions", a->predictions},
                                      {"--report", a->report}}};
    return cli_outputs_ok("zeroshot", &io) ? CLI_GO_ON : CLI_USAGE;
}

/* The images to classify: a features file, or a dataset embedded now; their labels in the
 * prompts' class order. */
struct zs_images {
    struct medvlm_features *f;
    struct medvlm_dataset *ds;
    struct medvlm_features_result res;
    int n;
    const float *X;           /* (n, D) */
    const char *const *names; /* (n) */
    int64_t *refs;            /* (n) */
};

static void images_free(struct zs_images *im)
{
    medvlm_features_result_free(&im->res);
    medvlm_dataset_free(im->ds);
    medvlm_features_free(im->f);
    free(im->refs);
}

/* The features file, checked against m: 1, or 0 after a message. */
static int read_features(const struct zs_args *a, const struct medvlm_model *m,
                         struct zs_images *im)
{
    const int D = medvlm_model_config(m)->projection_dim;
    if (medvlm_features_load(a->features, &im->f)) return cli_fail(NULL), 0;
    if (im->f->d != D) {
        fprintf(stderr,
                "medvlm: %s: features are %d-dimensional but %s projects to %d: they come from a "
                "different model\n",
                a->features, im->f->d, a->model_dir, D);
        return 0;
    }
    char what[1100];
    snprintf(what, sizeof what, "the features in %s", a->features);
    return cli_same_model(what, &(struct medvlm_provenance){im->f->fingerprint, im->f->model},
                          "the prompts' embeddings",
                          &(struct medvlm_provenance){medvlm_model_fingerprint(m), a->model_dir});
}

/* The dataset (its classes: the prompts', unless --classes) embedded by m's vision tower. */
static int embed_dataset(const struct zs_args *a, const struct medvlm_model *m,
                         const struct medvlm_prompts *pr, struct zs_images *im)
{
    struct medvlm_dataset_options o = a->data.ds;
    char classes[8192] = "";
    for (int k = 0; k < pr->n_classes; k++) {
        if (strlen(classes) + strlen(pr->classes[k]) + 2 >= sizeof classes) break;
        if (k) strcat(classes, ",");
        strcat(classes, pr->classes[k]);
    }
    if (!o.classes) o.classes = classes;
    if (medvlm_dataset_load(&o, &im->ds)) return cli_fail(NULL), 0;
    const struct medvlm_features_job job = {.model = m,
                                            .data = im->ds,
                                            .pre = a->data.pre,
                                            .batch_size = a->data.batch_size,
                                            .threads = a->data.threads,
                                            .skip_bad = a->data.skip_bad,
                                            .progress = cli_progress_for_terminal(),
                                            .progress_user = "embedding"};
    if (medvlm_features_extract(&job, &im->res)) return cli_fail(NULL), 0;
    return 1;
}

static int load_images(const struct zs_args *a, const struct medvlm_model *m,
                       const struct medvlm_prompts *pr, struct zs_images *im)
{
    if (a->features ? !read_features(a, m, im) : !embed_dataset(a, m, pr, im)) return 0;
    const int K = im->f ? im->f->n_classes : im->ds->n_classes;
    const char *const *classes = (const char *const *)(im->f ? im->f->classes : im->ds->classes);
    const int64_t *labels = im->f ? im->f->labels : im->res.labels;
    const char *from = a->features              ? a->features
                       : a->data.ds.labels_path ? a->data.ds.labels_path
                                                : a->data.ds.images_dir;
    im->n = im->f ? im->f->n : im->res.n;
    im->X = im->f ? im->f->features : im->res.features;
    im->names = (const char *const *)(im->f ? im->f->image_names : im->res.names);
    int *map = malloc((size_t)K * sizeof *map);
    im->refs = malloc((size_t)(im->n ? im->n : 1) * sizeof *im->refs);
    int ok = map && im->refs && !medvlm_prompts_class_map(pr, a->prompts, classes, K, from, map);
    for (int i = 0; ok && i < im->n; i++) im->refs[i] = map[labels[i]];
    free(map);
    if (!ok) cli_fail(NULL);
    return ok;
}

/* Prototypes, logits, metrics: printed, and the files asked for written. */
static int classify(const struct zs_args *a, const struct medvlm_model *m,
                    const struct medvlm_tokenizer *tok, const struct medvlm_prompts *pr,
                    const struct zs_images *im)
{
    const int K = pr->n_classes, D = medvlm_model_config(m)->projection_dim;
    const char *const *classes = (const char *const *)pr->classes;
    const float scale = medvlm_model_logit_scale(m);
    struct medvlm_evaluation ev = {0};
    int report_failed = 0;
    float *protos = malloc((size_t)K * D * sizeof *protos);
    float *logits = malloc((size_t)im->n * K * sizeof *logits + 1);
    int ok = protos && logits && !medvlm_prompts_prototypes(m, tok, pr, NULL, K, protos) &&
             !medvlm_zeroshot_logits(im->X, im->n, protos, K, D, scale, logits, NULL) &&
             !medvlm_evaluate(logits, im->refs, im->n, K, classes, &ev);
    if (ok) {
        int n_texts = 0;
        for (int k = 0; k < K; k++) n_texts += pr->n_prompts[k];
        char summary[160];
        snprintf(summary, sizeof summary, "zero-shot, %d images, %d classes, %d prompts (%s)",
                 im->n, K, n_texts, n_texts > K ? "ensemble" : "one per class");
        printf("%s\n", summary);
        fputs(ev.table, stdout);
        const struct medvlm_provenance from = {medvlm_model_fingerprint(m), a->model_dir};
        ok = !(a->save && medvlm_prototypes_save(a->save, protos, K, D, scale, classes, &from)) &&
             !medvlm_evaluation_save(&ev, im->names, a->json, a->predictions);
        struct medvlm_report rep = {.title = "medvlm zeroshot", .summary = summary};
        const char *root = a->report_images ? a->report_images : a->data.ds.images_dir;
        if (ok && a->report && !cli_write_report(a->report, &rep, &ev, im->names, root, NULL)) {
            ok = 1; /* printed */
            report_failed = 1;
        }
    }
    if (!ok) cli_fail(NULL);
    ok = ok && !report_failed;
    medvlm_evaluation_free(&ev);
    free(protos);
    free(logits);
    return ok;
}

int cmd_zeroshot(int argc, char **argv)
{
    struct zs_args a = {0};
    const int parsed = parse_args(argc, argv, &a);
    if (parsed != CLI_GO_ON) return parsed;
    if (a.data.threads) medvlm_set_threads(a.data.threads);
    struct medvlm_prompts *pr = NULL;
    struct cli_model cm = {0};
    struct medvlm_tokenizer *tok = NULL;
    struct zs_images im = {0};
    const unsigned flags = MEDVLM_LOAD_TEXT | (a.features ? 0 : MEDVLM_LOAD_VISION);
    int ok = !medvlm_prompts_load(a.prompts, &pr) &&
             cli_model_load(a.model_dir, a.run, flags, &cm) &&
             !medvlm_tokenizer_load(a.model_dir, &tok);
    if (!ok) cli_fail(NULL);
    ok = ok && load_images(&a, cm.m, pr, &im) && classify(&a, cm.m, tok, pr, &im);
    images_free(&im);
    medvlm_tokenizer_free(tok);
    cli_model_free(&cm);
    medvlm_prompts_free(pr);
    return ok ? CLI_OK : CLI_FAIL;
}

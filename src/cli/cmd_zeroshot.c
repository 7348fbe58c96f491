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

int cmd_zeroshot(int argc, char **argv)
{
    struct cli_data_args a;
    const char *model_dir = NULL, *prompts_path = NULL, *feats_path = NULL, *save = NULL;
    const char *json = NULL, *pred_path = NULL, *run = NULL, *report = NULL, *report_images = NULL;
    const struct cli_opt opts[] = {CLI_OPT_STR("model", &model_dir),
                                   CLI_OPT_STR("prompts", &prompts_path),
                                   CLI_OPT_STR("features", &feats_path),
                                   CLI_OPT_STR("save-prototypes", &save),
                                   CLI_OPT_STR("json", &json),
                                   CLI_OPT_STR("predictions", &pred_path),
                                   CLI_OPT_STR("run", &run),
                                   CLI_OPT_STR("report", &report),
                                   CLI_OPT_STR("report-images", &report_images),
                                   CLI_OPT_END};
    cli_data_args_init(&a);
    const struct cli_spec spec = {.cmd = "zeroshot", .usage = usage, .opts = opts, .data = &a};
    const int r = cli_parse(&spec, argc, argv, NULL);
    if (r != CLI_GO_ON) return r;
    if (!model_dir || !prompts_path)
        return cli_usage("zeroshot", "--model and --prompts are required");
    if (!feats_path == !a.ds.images_dir)
        return cli_usage("zeroshot", "give either --features or a dataset (--images ...)");
    if (a.threads) medvlm_set_threads(a.threads);

    int rc = CLI_FAIL;
    struct medvlm_prompts *pr = NULL;
    struct cli_model cm = {0};
    struct medvlm_model *m = NULL;
    struct medvlm_tokenizer *tok = NULL;
    struct medvlm_features *f = NULL;
    struct medvlm_dataset *ds = NULL;
    struct medvlm_features_result res = {0};
    struct medvlm_evaluation ev = {0};
    float *protos = NULL, *logits = NULL;
    int64_t *refs = NULL;
    int *map = NULL;

    if (medvlm_prompts_load(prompts_path, &pr)) goto fail_msg;
    const int K = pr->n_classes;
    char classes_csv[8192] = "";
    for (int k = 0; k < K; k++) {
        if (strlen(classes_csv) + strlen(pr->classes[k]) + 2 >= sizeof classes_csv) break;
        if (k) strcat(classes_csv, ",");
        strcat(classes_csv, pr->classes[k]);
    }
    unsigned flags = MEDVLM_LOAD_TEXT | (feats_path ? 0 : MEDVLM_LOAD_VISION);
    if (!cli_model_load(model_dir, run, flags, &cm) || medvlm_tokenizer_load(model_dir, &tok))
        goto fail_msg;
    m = cm.m;
    const struct medvlm_config *cfg = medvlm_model_config(m);
    const int D = cfg->projection_dim;

    /* the image features and their labels in the prompts' class order */
    int n = 0;
    const float *X = NULL;
    const char *const *names = NULL;
    if (feats_path) {
        if (medvlm_features_load(feats_path, &f)) goto fail_msg;
        if (f->d != D) {
            fprintf(stderr,
                    "medvlm: %s: features are %d-dimensional but %s projects to %d: they come "
                    "from a different model\n",
                    feats_path, f->d, model_dir, D);
            goto done;
        }
        char what[1100];
        snprintf(what, sizeof what, "the features in %s", feats_path);
        if (!cli_same_model(what, &(struct medvlm_provenance){f->fingerprint, f->model},
                            "the prompts' embeddings",
                            &(struct medvlm_provenance){medvlm_model_fingerprint(m), model_dir}))
            goto done;
        if (!(map = malloc((size_t)f->n_classes * sizeof *map))) goto fail_msg;
        if (medvlm_prompts_class_map(pr, prompts_path, (const char *const *)f->classes,
                                     f->n_classes, feats_path, map))
            goto fail_msg;
        n = f->n;
        X = f->features;
        names = (const char *const *)f->image_names;
        refs = malloc((size_t)n * sizeof *refs);
        if (!refs) goto fail_msg;
        for (int i = 0; i < n; i++) refs[i] = map[f->labels[i]];
    } else {
        if (!a.ds.classes) a.ds.classes = classes_csv;
        if (medvlm_dataset_load(&a.ds, &ds)) goto fail_msg;
        struct medvlm_features_job job = {.model = m,
                                          .data = ds,
                                          .pre = a.pre,
                                          .batch_size = a.batch_size,
                                          .threads = a.threads,
                                          .skip_bad = a.skip_bad,
                                          .progress = cli_progress_for_terminal(),
                                          .progress_user = "embedding"};
        if (medvlm_features_extract(&job, &res)) goto fail_msg;
        if (!(map = malloc((size_t)ds->n_classes * sizeof *map))) goto fail_msg;
        if (medvlm_prompts_class_map(pr, prompts_path, (const char *const *)ds->classes,
                                     ds->n_classes,
                                     a.ds.labels_path ? a.ds.labels_path : a.ds.images_dir, map))
            goto fail_msg;
        n = res.n;
        X = res.features;
        names = (const char *const *)res.names;
        refs = malloc((size_t)n * sizeof *refs);
        if (!refs) goto fail_msg;
        for (int i = 0; i < n; i++) refs[i] = map[res.labels[i]];
    }

    /* prototypes from the prompts */
    int n_texts = 0;
    for (int k = 0; k < K; k++) n_texts += pr->n_prompts[k];
    protos = malloc((size_t)K * D * sizeof *protos);
    logits = malloc((size_t)n * K * sizeof *logits + 1);
    if (!protos || !logits) goto fail_msg;
    const char *const *classes = (const char *const *)pr->classes;
    if (medvlm_prompts_prototypes(m, tok, pr, NULL, K, protos) ||
        medvlm_zeroshot_logits(X, n, protos, K, D, medvlm_model_logit_scale(m), logits, NULL) ||
        medvlm_evaluate(logits, refs, n, K, classes, &ev))
        goto fail_msg;
    char summary[160];
    snprintf(summary, sizeof summary, "zero-shot, %d images, %d classes, %d prompts (%s)", n, K,
             n_texts, n_texts > K ? "ensemble" : "one per class");
    printf("%s\n", summary);
    fputs(ev.table, stdout);
    const struct medvlm_provenance from = {medvlm_model_fingerprint(m), model_dir};
    if ((save &&
         medvlm_prototypes_save(save, protos, K, D, medvlm_model_logit_scale(m), classes, &from)) ||
        medvlm_evaluation_save(&ev, names, json, pred_path))
        goto fail_msg;
    struct medvlm_report rep = {.title = "medvlm zeroshot", .summary = summary};
    if (report && !cli_write_report(report, &rep, &ev, names,
                                    report_images ? report_images : a.ds.images_dir, NULL))
        goto done;
    rc = CLI_OK;
    goto done;
fail_msg:
    cli_fail(NULL);
done:
    medvlm_evaluation_free(&ev);
    medvlm_features_result_free(&res);
    medvlm_dataset_free(ds);
    medvlm_features_free(f);
    medvlm_tokenizer_free(tok);
    cli_model_free(&cm);
    medvlm_prompts_free(pr);
    free(protos);
    free(logits);
    free(refs);
    free(map);
    return rc;
}

/*
 * cmd_predict.c - `medvlm predict`: apply a saved adapter to a features file, print the
 * metrics against the file's labels, optionally write them as JSON and every prediction as
 * CSV.
 */
#include "cli.h"

#include "core/core.h"
#include "ops/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *usage =
    "usage: medvlm predict (--adapter ADAPTER | --run RUN_DIR) --features FEATS [--json FILE]\n"
    "                      [--predictions FILE.csv] [--report FILE.html [--report-images DIR]]\n"
    "\n"
    "Classify the images of a features file (medvlm features) with an adapter saved by\n"
    "`medvlm adapt --out`, or with the head of a fine-tuning run (`medvlm finetune --out`, on\n"
    "features extracted with `medvlm features --run` of the same run), and report balanced\n"
    "accuracy (ACA), accuracy, macro-F1 and the per-class table against the file's labels.\n"
    "\n"
    "  --adapter FILE      adapter file (medvlm adapt --out)\n"
    "  --run RUN_DIR       a fine-tuning run: its head (RUN_DIR/head.safetensors)\n"
    "  --features FILE     features to classify; same model and classes as the adapter\n"
    "  --json FILE         write the metrics as JSON\n"
    "  --predictions FILE  CSV: image, true label, predicted label, one probability per "
    "class\n" CLI_REPORT_HELP "\n"
    "example:\n"
    "  medvlm predict --adapter clap.safetensors --features test.safetensors \\\n"
    "                 --predictions predictions.csv\n";

/* --report, --report-images */
struct report_args {
    const char *path, *images;
};

/* --run: the fine-tuned head, logits = features normalise_rows(prototypes)^T exp(scale). */
static int predict_run(const char *run, const char *feats_path, const char *json, const char *csv,
                       const struct report_args *ra)
{
    struct medvlm_prototypes *h = NULL;
    struct medvlm_features *f = NULL;
    struct medvlm_evaluation ev = {0};
    float *logits = NULL;
    char *head = mv_path_join(run, "head.safetensors"), fp[17], summary[9000];
    int rc = CLI_FAIL;
    if (!head || medvlm_prototypes_load(head, &h) || medvlm_features_load(feats_path, &f) ||
        medvlm_run_fingerprint(run, fp)) {
        cli_fail(NULL);
        goto done;
    }
    const int K = h->k, D = h->d;
    char what[2][1100];
    snprintf(what[0], sizeof what[0], "the features in %s", feats_path);
    snprintf(what[1], sizeof what[1], "the fine-tuned encoder of %s", run);
    if (!cli_same_model(what[0], &(struct medvlm_provenance){f->fingerprint, f->model}, what[1],
                        &(struct medvlm_provenance){fp, run}))
        goto done;
    if (f->d != D || f->n_classes != K) {
        fprintf(stderr,
                "medvlm: %s has %d classes of %d-dimensional features but the head of %s "
                "has %d classes of %d\n",
                feats_path, f->n_classes, f->d, run, K, D);
        goto done;
    }
    for (int k = 0; k < K; k++)
        if (strcmp(h->classes[k], f->classes[k]) != 0) {
            fprintf(stderr,
                    "medvlm: class %d is '%s' in %s but '%s' in %s: the classes must be "
                    "the same, in the same order\n",
                    k, h->classes[k], head, f->classes[k], feats_path);
            goto done;
        }
    logits = calloc((size_t)f->n * K + 1, sizeof(float));
    if (!logits) {
        fprintf(stderr, "medvlm: out of memory\n");
        goto done;
    }
    /* the head normalises its prototypes' rows */
    mv_l2norm_forward(h->prototypes, NULL, h->prototypes, K, D);
    if (medvlm_zeroshot_logits(f->features, f->n, h->prototypes, K, D, h->logit_scale, logits,
                               NULL) ||
        medvlm_evaluate(logits, f->labels, f->n, K, (const char *const *)h->classes, &ev)) {
        cli_fail(NULL);
        goto done;
    }
    snprintf(summary, sizeof summary,
             "predict: fine-tuned head of %s (%d classes, D %d) on %d images of %s", run, K, D,
             f->n, feats_path);
    printf("%s\n\n%s", summary, ev.table);
    if (medvlm_evaluation_save(&ev, (const char *const *)f->image_names, json, csv)) {
        cli_fail(NULL);
        goto done;
    }
    struct medvlm_report rep = {.title = "medvlm predict", .summary = summary};
    if (ra->path && !cli_write_report(ra->path, &rep, &ev, (const char *const *)f->image_names,
                                      ra->images, NULL))
        goto done;
    rc = CLI_OK;
done:
    mv_free(head);
    medvlm_evaluation_free(&ev);
    medvlm_prototypes_free(h);
    medvlm_features_free(f);
    free(logits);
    return rc;
}

int cmd_predict(int argc, char **argv)
{
    const char *adapter_path = NULL, *feats_path = NULL, *json = NULL, *csv = NULL, *run = NULL;
    struct report_args ra = {NULL, NULL};
    const struct cli_opt opts[] = {
        CLI_OPT_STR("adapter", &adapter_path),    CLI_OPT_STR("run", &run),
        CLI_OPT_STR("features", &feats_path),     CLI_OPT_STR("json", &json),
        CLI_OPT_STR("predictions", &csv),         CLI_OPT_STR("report", &ra.path),
        CLI_OPT_STR("report-images", &ra.images), CLI_OPT_END};
    const struct cli_spec spec = {.cmd = "predict", .usage = usage, .opts = opts};
    const int parsed = cli_parse(&spec, argc, argv, NULL);
    if (parsed != CLI_GO_ON) return parsed;
    if (!adapter_path == !run)
        return cli_usage("predict", "give the classifier: --adapter FILE or --run RUN_DIR");
    if (!feats_path) return cli_usage("predict", "--features FEATS is required");
    const struct cli_io io = {
        .in = {{"--adapter", adapter_path}, {"--features", feats_path}},
        .model = {{"--run", run}},
        .out = {{"--json", json}, {"--predictions", csv}, {"--report", ra.path}}};
    if (!cli_outputs_ok("predict", &io)) return CLI_USAGE;
    if (run) return predict_run(run, feats_path, json, csv, &ra);

    struct medvlm_adapter *ad = NULL;
    struct medvlm_features *f = NULL;
    struct medvlm_evaluation ev = {0};
    float *logits = NULL;
    const char **names = NULL;
    int rc = CLI_FAIL;
    if (medvlm_adapter_load(adapter_path, &ad) || medvlm_features_load(feats_path, &f)) {
        cli_fail(NULL);
        goto done;
    }
    int K = medvlm_adapter_classes(ad), D = medvlm_adapter_dim(ad);
    char what[2][1100];
    snprintf(what[0], sizeof what[0], "the features in %s", feats_path);
    snprintf(what[1], sizeof what[1], "the adapter %s was trained on features", adapter_path);
    const struct medvlm_provenance ap = medvlm_adapter_provenance(ad);
    if (!cli_same_model(what[0], &(struct medvlm_provenance){f->fingerprint, f->model}, what[1],
                        &ap))
        goto done;
    if (f->d != D) {
        fprintf(stderr,
                "medvlm: %s has %d-dimensional features but the adapter %s expects %d: they "
                "come from different models\n",
                feats_path, f->d, adapter_path, D);
        goto done;
    }
    if (f->n_classes != K) {
        fprintf(stderr, "medvlm: %s has %d classes but the adapter %s has %d\n", feats_path,
                f->n_classes, adapter_path, K);
        goto done;
    }
    names = calloc((size_t)K, sizeof *names);
    logits = calloc((size_t)f->n * K + 1, sizeof(float));
    if (!names || !logits) {
        fprintf(stderr, "medvlm: out of memory\n");
        goto done;
    }
    for (int k = 0; k < K; k++) {
        names[k] = medvlm_adapter_class_name(ad, k);
        if (names[k] && strcmp(names[k], f->classes[k]) != 0) {
            fprintf(stderr,
                    "medvlm: class %d is '%s' in the adapter %s but '%s' in %s: the classes must "
                    "be the same, in the same order\n",
                    k, names[k], adapter_path, f->classes[k], feats_path);
            goto done;
        }
        names[k] = f->classes[k];
    }
    if (medvlm_adapter_logits(ad, f->features, f->n, logits) ||
        medvlm_evaluate(logits, f->labels, f->n, K, names, &ev)) {
        cli_fail(NULL);
        goto done;
    }
    char summary[9000];
    snprintf(summary, sizeof summary,
             "predict: %s adapter (%d-shot, %d classes, D %d%s%s) on %d images of %s",
             medvlm_adapter_method_name(medvlm_adapter_method_of(ad)), medvlm_adapter_shots(ad), K,
             D, ap.model ? ", model " : "", ap.model ? ap.model : "", f->n, feats_path);
    printf("%s\n\n%s", summary, ev.table);
    if (medvlm_evaluation_save(&ev, (const char *const *)f->image_names, json, csv)) {
        cli_fail(NULL);
        goto done;
    }
    struct medvlm_report rep = {.title = "medvlm predict", .summary = summary};
    if (ra.path &&
        !cli_write_report(ra.path, &rep, &ev, (const char *const *)f->image_names, ra.images, NULL))
        goto done;
    rc = CLI_OK;
done:
    medvlm_evaluation_free(&ev);
    medvlm_adapter_free(ad);
    medvlm_features_free(f);
    free(names);
    free(logits);
    return rc;
}

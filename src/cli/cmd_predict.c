/*
 * cmd_predict.c - `medvlm predict`: apply a saved adapter to a features file, print the
 * metrics against the file's labels, optionally write them as JSON and every prediction as
 * CSV.
 */
#include "cli.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *usage =
    "usage: medvlm predict --adapter ADAPTER --features FEATS [--json FILE] [--predictions "
    "FILE.csv]\n"
    "\n"
    "Classify the images of a features file (medvlm features) with an adapter saved by\n"
    "`medvlm adapt --out`, and report balanced accuracy (ACA), accuracy, macro-F1 and the\n"
    "per-class table against the file's labels.\n"
    "\n"
    "  --adapter FILE      adapter file (medvlm adapt --out)\n"
    "  --features FILE     features to classify; same model and classes as the adapter\n"
    "  --json FILE         write the metrics as JSON\n"
    "  --predictions FILE  CSV: image, true label, predicted label, one probability per class\n"
    "\n"
    "example:\n"
    "  medvlm predict --adapter clap.safetensors --features test.safetensors \\\n"
    "                 --predictions predictions.csv\n";

int cmd_predict(int argc, char **argv)
{
    const char *adapter_path = NULL, *feats_path = NULL, *json = NULL, *csv = NULL;
    static const struct option opts[] = {
        {"adapter", required_argument, NULL, 'a'}, {"features", required_argument, NULL, 'f'},
        {"json", required_argument, NULL, 'j'},    {"predictions", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            adapter_path = optarg;
            break;
        case 'f':
            feats_path = optarg;
            break;
        case 'j':
            json = optarg;
            break;
        case 'p':
            csv = optarg;
            break;
        default:
            return cli_option_end("predict", usage, c, argv);
        }
    }
    if (optind != argc) return cli_usage("predict", "unexpected argument '%s'", argv[optind]);
    if (!adapter_path || !feats_path)
        return cli_usage("predict", "--adapter and --features are both required");

    struct medvlm_adapter *ad = NULL;
    struct medvlm_features *f = NULL;
    struct medvlm_metrics m = {0};
    float *logits = NULL;
    int64_t *preds = NULL;
    const char **names = NULL;
    char *table = NULL;
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
    logits = calloc((size_t)f->n * K, sizeof(float));
    preds = calloc((size_t)f->n, sizeof(int64_t));
    if (!names || !logits || !preds) {
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
        medvlm_argmax_rows(logits, f->n, K, preds) ||
        medvlm_metrics_compute(f->labels, preds, f->n, K, &m) ||
        medvlm_metrics_format_table(&m, names, &table)) {
        cli_fail(NULL);
        goto done;
    }
    printf("predict: %s adapter (%d-shot, %d classes, D %d%s%s) on %d images of %s\n\n%s",
           medvlm_adapter_method_name(medvlm_adapter_method_of(ad)), medvlm_adapter_shots(ad), K, D,
           ap.model ? ", model " : "", ap.model ? ap.model : "", f->n, feats_path, table);
    if (json && medvlm_metrics_write_json(json, &m, names)) {
        cli_fail(json);
        goto done;
    }
    if (csv) {
        /* probabilities = softmax of the logits, in place */
        for (int i = 0; i < f->n; i++) {
            float *l = logits + (size_t)i * K, mx = l[0];
            double sum = 0;
            for (int k = 1; k < K; k++) mx = l[k] > mx ? l[k] : mx;
            for (int k = 0; k < K; k++) sum += exp((double)l[k] - mx);
            for (int k = 0; k < K; k++) l[k] = (float)(exp((double)l[k] - mx) / sum);
        }
        if (medvlm_predictions_write_csv(csv, (const char *const *)f->image_names, f->labels, preds,
                                         logits, f->n, names, K)) {
            cli_fail(csv);
            goto done;
        }
    }
    rc = CLI_OK;
done:
    medvlm_free(table);
    medvlm_metrics_free(&m);
    medvlm_adapter_free(ad);
    medvlm_features_free(f);
    free(names);
    free(logits);
    free(preds);
    return rc;
}

/*
 * stage_metrics.c - golden stage "metrics": for every caseK in inputs/metrics_inputs
 * (caseK.refs I64 [M], caseK.probs F32 [M, C]) the tutorial's `evaluate`: preds = argmax,
 * the confusion matrix over the sorted union of labels, ACA (rounded and not) and the
 * per-class recall rounded to 3 decimals. The cases are discovered from the file.
 */
#include "golden.h"

#include "../../src/io/io.h"

#include <stdio.h>
#include <string.h>

static enum medvlm_status one_case(struct medvlm_st *in, const char *name, size_t prefix_len,
                                   struct medvlm_st_writer *w)
{
    enum medvlm_status st = MEDVLM_OK;
    char key[256];
    int64_t *preds = NULL;
    double *acc_class = NULL;
    struct medvlm_metrics m = {0};
    snprintf(key, sizeof key, "%.*s.probs", (int)prefix_len, name);
    const struct medvlm_tensor_info *refs = medvlm_st_find(in, name);
    const struct medvlm_tensor_info *probs = medvlm_st_find(in, key);
    if (!probs || probs->dtype != MEDVLM_DTYPE_F32 || probs->ndim != 2 ||
        refs->dtype != MEDVLM_DTYPE_I64 || refs->ndim != 1 || probs->shape[0] != refs->shape[0] ||
        refs->shape[0] > 1 << 30 || probs->shape[1] > 1 << 20)
        return mv_err(MEDVLM_ERR_FORMAT,
                      "metrics_inputs: %s needs I64 [M] refs and F32 [M, C] "
                      "%s",
                      name, key);
    int n = (int)refs->shape[0], c = (int)probs->shape[1];
    preds = mv_calloc((size_t)n, sizeof *preds);
    if (!preds) return MEDVLM_ERR_NOMEM;
    st = medvlm_argmax_rows(probs->data, n, c, preds);
    if (st) goto fail;
    st = medvlm_metrics_compute_union(refs->data, preds, n, &m);
    if (st) goto fail;
    int k = m.n_classes;
    acc_class = mv_calloc((size_t)k, sizeof *acc_class);
    if (!acc_class) {
        st = MEDVLM_ERR_NOMEM;
        goto fail;
    }
    for (int i = 0; i < k; i++) acc_class[i] = medvlm_round_half_even(m.per_class_recall[i], 3);
    double aca = medvlm_round_half_even(m.balanced_accuracy, 2);
    int64_t shp1[1] = {n}, shp2[2] = {k, k}, shpk[1] = {k};
    snprintf(key, sizeof key, "%.*s.preds", (int)prefix_len, name);
    if ((st = medvlm_st_writer_add(w, key, MEDVLM_DTYPE_I64, 1, shp1, preds))) goto fail;
    snprintf(key, sizeof key, "%.*s.confusion_matrix", (int)prefix_len, name);
    if ((st = medvlm_st_writer_add(w, key, MEDVLM_DTYPE_I64, 2, shp2, m.confusion))) goto fail;
    snprintf(key, sizeof key, "%.*s.aca", (int)prefix_len, name);
    if ((st = medvlm_st_writer_add(w, key, MEDVLM_DTYPE_F64, 0, NULL, &aca))) goto fail;
    snprintf(key, sizeof key, "%.*s.aca_unrounded", (int)prefix_len, name);
    if ((st = medvlm_st_writer_add(w, key, MEDVLM_DTYPE_F64, 0, NULL, &m.balanced_accuracy)))
        goto fail;
    snprintf(key, sizeof key, "%.*s.acc_class", (int)prefix_len, name);
    if ((st = medvlm_st_writer_add(w, key, MEDVLM_DTYPE_F64, 1, shpk, acc_class))) goto fail;
fail:
    medvlm_metrics_free(&m);
    mv_free(preds);
    mv_free(acc_class);
    return st;
}

enum medvlm_status golden_stage_metrics(struct golden_ctx *g)
{
    enum medvlm_status st;
    struct medvlm_st *in = NULL;
    struct medvlm_st_writer *w = NULL;
    char *path = golden_path(g, "inputs/metrics_inputs.safetensors");
    if (!path) return MEDVLM_ERR_NOMEM;
    if ((st = medvlm_st_open(path, &in))) goto fail;
    if ((st = medvlm_st_writer_init(&w))) goto fail;
    int cases = 0;
    for (int i = 0; i < medvlm_st_count(in); i++) {
        const char *name = medvlm_st_at(in, i)->name;
        size_t len = strlen(name);
        if (len <= 5 || strcmp(name + len - 5, ".refs") != 0) continue;
        if ((st = one_case(in, name, len - 5, w))) goto fail;
        cases++;
    }
    if (cases == 0) {
        st = mv_err(MEDVLM_ERR_MISSING, "%s: no <case>.refs tensor", path);
        goto fail;
    }
    st = golden_save(g, w, "metrics.safetensors");
fail:
    medvlm_st_writer_free(w);
    medvlm_st_free(in);
    mv_free(path);
    return st;
}

/*
 * evaluate.c - logits -> probabilities -> predictions -> metrics, and the files that record
 * them. Every classifier of medvlm (zero-shot, an adapter, a fine-tuned head) ends here, so
 * the table printed, the JSON and the predictions CSV always come from the same numbers.
 *
 * Glossary: N samples, K classes.
 * Predictions are the first maximum of each row of probabilities (the tutorial's
 * argmax(probs)); probabilities are the row softmax with max subtraction and double sums.
 */
#include "task.h"

#include "../ops/ops.h"

#include <string.h>

enum medvlm_status medvlm_evaluate(const float *logits, const int64_t *refs, int n, int k,
                                   const char *const *classes, struct medvlm_evaluation *ev)
{
    enum medvlm_status st = MEDVLM_OK;
    if (!ev) return mv_err(MEDVLM_ERR_ARG, "evaluate: bad arguments");
    memset(ev, 0, sizeof *ev);
    if (!logits || !refs || n < 0 || k < 1)
        return mv_err(MEDVLM_ERR_ARG, "evaluate: bad arguments");
    ev->n = n;
    ev->k = k;
    ev->refs = refs;
    ev->classes = classes;
    const size_t nk = (size_t)MV_MAX(n, 1) * k;
    ev->logits = mv_malloc(nk * sizeof(float));
    ev->probs = mv_malloc(nk * sizeof(float));
    ev->preds = mv_malloc((size_t)MV_MAX(n, 1) * sizeof(int64_t));
    if (!ev->logits || !ev->probs || !ev->preds) {
        st = mv_err(MEDVLM_ERR_NOMEM, "evaluate: out of memory for %d x %d logits", n, k);
        goto fail;
    }
    memcpy(ev->logits, logits, (size_t)n * k * sizeof(float));
    mv_softmax_forward(ev->probs, ev->logits, n, k);
    if ((st = medvlm_argmax_rows(ev->probs, n, k, ev->preds)) ||
        (st = medvlm_metrics_compute(refs, ev->preds, n, k, &ev->metrics)) ||
        (st = medvlm_metrics_format_table(&ev->metrics, classes, &ev->table)))
        goto fail;
    return MEDVLM_OK;
fail:
    medvlm_evaluation_free(ev);
    return st;
}

enum medvlm_status medvlm_evaluation_save(const struct medvlm_evaluation *ev,
                                          const char *const *image_names, const char *json,
                                          const char *csv)
{
    enum medvlm_status st = MEDVLM_OK;
    if (!ev || !ev->preds) return mv_err(MEDVLM_ERR_ARG, "evaluation save: nothing evaluated");
    if (json && (st = medvlm_metrics_write_json(json, &ev->metrics, ev->classes))) return st;
    if (csv)
        st = medvlm_predictions_write_csv(csv, image_names, ev->refs, ev->preds, ev->probs, ev->n,
                                          ev->classes, ev->k);
    return st;
}

void medvlm_evaluation_free(struct medvlm_evaluation *ev)
{
    if (!ev) return;
    mv_free(ev->logits);
    mv_free(ev->probs);
    mv_free(ev->preds);
    medvlm_metrics_free(&ev->metrics);
    medvlm_free(ev->table);
    memset(ev, 0, sizeof *ev);
}

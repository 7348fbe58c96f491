/*
 * tipadapter.c - Tip-Adapter and Tip-Adapter-F (Zhang et al., ECCV 2022): a key-value cache
 * of the training features (keys) and their one-hot labels (values) added to the zero-shot
 * logits.
 *
 *   A = exp(-beta (1 - X keys^T))                  (B, N)
 *   logits = s X zsn^T + alpha A onehot(Y_cache)   (B, K)
 *
 * Tip-Adapter is training-free (keys = the training features); Tip-Adapter-F fine-tunes the
 * keys (`cache_keys`, (N, D)). Defaults alpha = beta = 1, the paper's starting values (its
 * per-dataset values come from a search on a validation set, which few-shot medical tasks
 * usually lack).
 *
 * Workspace for B rows: A (B, N).
 */
#include "adapters.h"

#include <math.h>
#include <string.h>

static enum medvlm_status layout(struct medvlm_adapter *a)
{
    if (a->n_cache <= 0)
        return mv_err(MEDVLM_ERR_ARG, "%s: the cache needs training samples, got %d", a->ops->name,
                      a->n_cache);
    a->nparams = 1;
    a->params[0] = (struct mv_adapter_param){.name = "cache_keys",
                                             .ndim = 2,
                                             .shape = {a->n_cache, a->d},
                                             .n = (size_t)a->n_cache * a->d};
    return MEDVLM_OK;
}

static enum medvlm_status init(struct medvlm_adapter *a, const float *X, const int64_t *Y, int n)
{
    memcpy(a->params[0].data, X, (size_t)n * a->d * sizeof(float));
    a->cache_labels = mv_calloc((size_t)n, sizeof(int64_t));
    if (!a->cache_labels) return MEDVLM_ERR_NOMEM;
    memcpy(a->cache_labels, Y, (size_t)n * sizeof(int64_t));
    return MEDVLM_OK;
}

static size_t ws_floats(const struct medvlm_adapter *a, int B)
{
    return (size_t)B * a->n_cache;
}

static void forward(const struct medvlm_adapter *a, float *ws, const float *const *X, int B,
                    float *logits)
{
    const int N = a->n_cache, D = a->d, K = a->k;
    const float beta = a->opt.beta, alpha = a->opt.alpha;
    float *A = ws;
    mv_mm_nt_rows(logits, X, a->zsn, B, K, D, NULL);
    for (size_t i = 0; i < (size_t)B * K; i++) logits[i] *= a->scale;
    mv_mm_nt_rows(A, X, a->params[0].data, B, N, D, NULL);
    for (int b = 0; b < B; b++) {
        float *Ab = A + (size_t)b * N, *l = logits + (size_t)b * K;
        for (int i = 0; i < N; i++) {
            Ab[i] = expf(-(beta - beta * Ab[i]));
            l[a->cache_labels[i]] += alpha * Ab[i];
        }
    }
}

/* In the forward pass logits[b, y_i] += alpha A[b, i] with A = exp(beta aff - beta), so
 * d aff[b, i] = alpha dlogits[b, y_i] A[b, i] beta, and dkeys += d aff^T X. */
static void backward(struct medvlm_adapter *a, float *ws, const float *const *X, int B,
                     const float *dlogits)
{
    const int N = a->n_cache, D = a->d, K = a->k;
    const float beta = a->opt.beta, alpha = a->opt.alpha;
    float *A = ws;
    for (int b = 0; b < B; b++) {
        float *Ab = A + (size_t)b * N;
        const float *g = dlogits + (size_t)b * K;
        for (int i = 0; i < N; i++) Ab[i] = alpha * g[a->cache_labels[i]] * Ab[i] * beta;
    }
    mv_mm_tn_acc_rows(a->params[0].grad, A, X, N, D, B);
}

const struct mv_adapter_ops mv_adapter_tip_ops = {.method = MEDVLM_ADAPTER_TIPADAPTER,
                                                  .name = "tipadapter",
                                                  .trains = 0,
                                                  .layout = layout,
                                                  .init = init,
                                                  .ws_floats = ws_floats,
                                                  .forward = forward,
                                                  .backward = backward};

const struct mv_adapter_ops mv_adapter_tipf_ops = {.method = MEDVLM_ADAPTER_TIPADAPTER_F,
                                                   .name = "tipadapter-f",
                                                   .trains = 1,
                                                   .layout = layout,
                                                   .init = init,
                                                   .ws_floats = ws_floats,
                                                   .forward = forward,
                                                   .backward = backward};

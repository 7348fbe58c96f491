/*
 * adapter.c - the adapter object: options and their defaults, method names, creation with
 * one parameter buffer and one gradient buffer, inference, getters.
 */
#include "adapters.h"

#include "../optim/optim.h"

#include <math.h>
#include <string.h>

static const struct mv_adapter_ops *const all_ops[MEDVLM_ADAPTER_COUNT] = {
    [MEDVLM_ADAPTER_ZEROSHOT] = &mv_adapter_zeroshot_ops,
    [MEDVLM_ADAPTER_LP] = &mv_adapter_lp_ops,
    [MEDVLM_ADAPTER_ZSLP] = &mv_adapter_zslp_ops,
    [MEDVLM_ADAPTER_CLIPADAPTER] = &mv_adapter_clipadapter_ops,
    [MEDVLM_ADAPTER_CLAP] = &mv_adapter_clap_ops,
    [MEDVLM_ADAPTER_TIPADAPTER] = &mv_adapter_tip_ops,
    [MEDVLM_ADAPTER_TIPADAPTER_F] = &mv_adapter_tipf_ops,
    [MEDVLM_ADAPTER_TASKRES] = &mv_adapter_taskres_ops,
};

const struct mv_adapter_ops *mv_adapter_ops_for(enum medvlm_adapter_method m)
{
    return (unsigned)m < MEDVLM_ADAPTER_COUNT ? all_ops[m] : NULL;
}

void medvlm_adapter_options_default(struct medvlm_adapter_options *o,
                                    enum medvlm_adapter_method method)
{
    memset(o, 0, sizeof *o);
    o->method = method;
    o->optimizer = MEDVLM_OPTIMIZER_SGD;
    o->schedule = MEDVLM_SCHEDULE_CONSTANT;
    o->epochs = 100;
    o->batch_size = 32;
    o->lr = 1e-3f;
    o->momentum = 0.9f;
    o->adam_beta1 = 0.9f;
    o->adam_beta2 = 0.999f;
    o->adam_eps = 1e-8f;
    o->seed = 0;
    o->threads = 0;
    o->alpha =
        method == MEDVLM_ADAPTER_TIPADAPTER || method == MEDVLM_ADAPTER_TIPADAPTER_F ? 1.0f : 0.5f;
    o->beta = 1.0f;
    o->clap_rho = 0.0f;
}

const char *medvlm_adapter_method_name(enum medvlm_adapter_method m)
{
    const struct mv_adapter_ops *ops = mv_adapter_ops_for(m);
    return ops ? ops->name : "unknown";
}

enum medvlm_status medvlm_adapter_method_from_name(const char *name,
                                                   enum medvlm_adapter_method *out)
{
    char list[256] = "";
    for (int m = 0; m < MEDVLM_ADAPTER_COUNT; m++) {
        if (name && strcmp(name, all_ops[m]->name) == 0) {
            *out = (enum medvlm_adapter_method)m;
            return MEDVLM_OK;
        }
        strncat(list, m ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, all_ops[m]->name, sizeof list - strlen(list) - 1);
    }
    return mv_err(MEDVLM_ERR_ARG, "unknown adapter method '%s'; valid methods: %s",
                  name ? name : "(null)", list);
}

struct mv_adapter_param *mv_adapter_param_find(struct medvlm_adapter *a, const char *name)
{
    for (int i = 0; i < a->nparams; i++)
        if (strcmp(a->params[i].name, name) == 0) return &a->params[i];
    return NULL;
}

enum medvlm_status mv_adapter_create(const struct medvlm_adapter_options *o, int d, int k,
                                     int n_train, const float *zs, float logit_scale,
                                     struct medvlm_adapter **out)
{
    *out = NULL;
    const struct mv_adapter_ops *ops = mv_adapter_ops_for(o->method);
    if (!ops) return mv_err(MEDVLM_ERR_ARG, "adapter: unknown method %d", (int)o->method);
    if (d <= 0 || k <= 0)
        return mv_err(MEDVLM_ERR_ARG, "adapter: feature dim %d and classes %d must be > 0", d, k);
    if (!isfinite(logit_scale) || logit_scale > 80.0f)
        return mv_err(MEDVLM_ERR_ARG, "adapter: logit_scale %g is not a usable raw scale",
                      (double)logit_scale);
    size_t kd;
    if (!mv_mul_ok((size_t)k, (size_t)d, &kd))
        return mv_err(MEDVLM_ERR_OVERFLOW, "adapter: %d x %d prototypes overflow", k, d);
    enum medvlm_status st = MEDVLM_ERR_NOMEM;
    struct medvlm_adapter *a = mv_calloc(1, sizeof *a);
    if (!a) return MEDVLM_ERR_NOMEM;
    a->ops = ops;
    a->opt = *o;
    a->opt.init_prototypes = a->opt.init_w1 = a->opt.init_w2 = NULL;
    a->d = d;
    a->k = k;
    a->n_cache = n_train;
    a->logit_scale = logit_scale;
    a->scale = expf(logit_scale);
    a->zs = mv_calloc(kd, sizeof(float));
    a->zsn = mv_calloc(kd, sizeof(float));
    a->lambdas = mv_calloc((size_t)k, sizeof(float));
    a->rhos = mv_calloc((size_t)k, sizeof(float));
    if (!a->zs || !a->zsn || !a->lambdas || !a->rhos) goto fail;
    memcpy(a->zs, zs, kd * sizeof(float));
    for (int c = 0; c < k; c++) {
        const float *z = zs + (size_t)c * d;
        double ss = 0;
        for (int j = 0; j < d; j++) ss += (double)z[j] * z[j];
        if (!isfinite(ss)) {
            st = mv_err(MEDVLM_ERR_ARG, "adapter: zero-shot prototype %d is not finite", c);
            goto fail;
        }
        float nrm = fmaxf((float)sqrt(ss), 1e-12f);
        for (int j = 0; j < d; j++) a->zsn[(size_t)c * d + j] = z[j] / nrm;
    }
    st = ops->layout(a);
    if (st) goto fail;
    a->param_total = 0;
    for (int i = 0; i < a->nparams; i++)
        if (!mv_add_ok(a->param_total, a->params[i].n, &a->param_total)) {
            st = mv_err(MEDVLM_ERR_OVERFLOW, "adapter: parameter count overflows");
            goto fail;
        }
    st = MEDVLM_ERR_NOMEM;
    a->param_buf = mv_calloc(a->param_total ? a->param_total : 1, sizeof(float));
    a->grad_buf = mv_calloc(a->param_total ? a->param_total : 1, sizeof(float));
    if (!a->param_buf || !a->grad_buf) goto fail;
    size_t off = 0;
    for (int i = 0; i < a->nparams; i++) {
        a->params[i].data = a->param_buf + off;
        a->params[i].grad = a->grad_buf + off;
        off += a->params[i].n;
    }
    *out = a;
    return MEDVLM_OK;
fail:
    medvlm_adapter_free(a);
    return st;
}

void medvlm_adapter_free(struct medvlm_adapter *a)
{
    if (!a) return;
    mv_free(a->zs);
    mv_free(a->zsn);
    mv_free(a->lambdas);
    mv_free(a->rhos);
    mv_free(a->param_buf);
    mv_free(a->grad_buf);
    mv_free(a->cache_labels);
    if (a->class_names)
        for (int c = 0; c < a->k; c++) mv_free(a->class_names[c]);
    mv_free(a->class_names);
    mv_free(a->fingerprint);
    mv_free(a->model);
    mv_free(a);
}

#define MV_INFER_ROWS 256

enum medvlm_status medvlm_adapter_logits(const struct medvlm_adapter *a, const float *X, int n,
                                         float *logits)
{
    if (!a || (!X && n > 0) || (!logits && n > 0) || n < 0)
        return mv_err(MEDVLM_ERR_ARG, "adapter logits: NULL argument or n = %d", n);
    if (n == 0) return MEDVLM_OK;
    int rows = MV_MIN(n, MV_INFER_ROWS);
    float *ws = mv_calloc(a->ops->ws_floats(a, rows), sizeof(float));
    if (!ws) return MEDVLM_ERR_NOMEM;
    const float *ptr[MV_INFER_ROWS];
    for (int r = 0; r < n; r += rows) {
        int b = MV_MIN(rows, n - r);
        for (int i = 0; i < b; i++) ptr[i] = X + (size_t)(r + i) * a->d;
        a->ops->forward(a, ws, ptr, b, logits + (size_t)r * a->k);
    }
    mv_free(ws);
    return MEDVLM_OK;
}

enum medvlm_adapter_method medvlm_adapter_method_of(const struct medvlm_adapter *a)
{
    return a->ops->method;
}

const struct medvlm_adapter_options *medvlm_adapter_options_of(const struct medvlm_adapter *a)
{
    return &a->opt;
}

int medvlm_adapter_dim(const struct medvlm_adapter *a)
{
    return a->d;
}

int medvlm_adapter_classes(const struct medvlm_adapter *a)
{
    return a->k;
}

const float *medvlm_adapter_param(const struct medvlm_adapter *a, const char *name, size_t *numel)
{
    for (int i = 0; i < a->nparams; i++)
        if (strcmp(a->params[i].name, name) == 0) {
            if (numel) *numel = a->params[i].n;
            return a->params[i].data;
        }
    if (numel) *numel = 0;
    return NULL;
}

const float *medvlm_adapter_lambdas(const struct medvlm_adapter *a)
{
    return a->ops->method == MEDVLM_ADAPTER_CLAP ? a->lambdas : NULL;
}

const char *medvlm_adapter_class_name(const struct medvlm_adapter *a, int c)
{
    return a->class_names && c >= 0 && c < a->k ? a->class_names[c] : NULL;
}

struct medvlm_provenance medvlm_adapter_provenance(const struct medvlm_adapter *a)
{
    return (struct medvlm_provenance){a->fingerprint, a->model};
}

int medvlm_adapter_shots(const struct medvlm_adapter *a)
{
    return a->shots;
}

void mv_adapter_shuffle_rng(struct mv_rng *rng, const struct medvlm_adapter_options *o)
{
    mv_rng_seed(rng, o->seed ^ 0x53485546464c45ull); /* "SHUFFLE": apart from init draws */
}

void mv_adapter_optim_config(const struct medvlm_adapter_options *o, struct mv_optim_config *oc)
{
    enum mv_optim_kind kind = o->optimizer == MEDVLM_OPTIMIZER_ADAM    ? MV_OPTIM_ADAM
                              : o->optimizer == MEDVLM_OPTIMIZER_ADAMW ? MV_OPTIM_ADAMW
                                                                       : MV_OPTIM_SGD;
    mv_optim_config_default(oc, kind);
    oc->lr = o->lr;
    oc->momentum = o->optimizer == MEDVLM_OPTIMIZER_SGD ? o->momentum : 0;
    oc->weight_decay = o->weight_decay;
    oc->beta1 = o->adam_beta1;
    oc->beta2 = o->adam_beta2;
    oc->eps = o->adam_eps;
}

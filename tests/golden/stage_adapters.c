/*
 * stage_adapters.c - golden stage "adapters": zero-shot logits, CLAP's multipliers, and for
 * lp, zslp, clipadapter, clap x sgd, adam the full training trajectory (loss before each
 * step), final parameters and test logits/probabilities, from inputs/adapter_inputs and the
 * manifest's "adapters" hyper-parameters. Every size comes from the files.
 */
#include "golden.h"

#include "../../src/adapters/adapters.h"
#include "../../src/io/io.h"
#include "../../src/ops/ops.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

struct adapter_inputs {
    const float *Xtr, *Xte, *zs, *lp_init, *w1, *w2;
    int64_t *Ytr;
    int ntr, nte, d, k, hidden;
    float logit_scale;
};

static enum medvlm_status get2d(const struct medvlm_st *st, const char *name, const float **p,
                                int *rows, int *cols)
{
    const struct medvlm_tensor_info *t;
    float *owned = NULL;
    enum medvlm_status s = medvlm_st_get_f32(st, name, p, &owned, &t);
    if (s) return s;
    if (owned) { /* the golden inputs are F32; a converted copy would leak here */
        medvlm_free(owned);
        return mv_err(MEDVLM_ERR_SHAPE, "%s: %s must be F32", medvlm_st_path(st), name);
    }
    if (t->ndim != 2)
        return mv_err(MEDVLM_ERR_SHAPE, "%s: %s must be 2-D, got %d dims", medvlm_st_path(st), name,
                      t->ndim);
    *rows = (int)t->shape[0];
    *cols = (int)t->shape[1];
    return MEDVLM_OK;
}

static enum medvlm_status load_inputs(const struct medvlm_st *st, struct adapter_inputs *in)
{
    int r, c, r2, c2;
    enum medvlm_status s;
    if ((s = get2d(st, "X_train", &in->Xtr, &in->ntr, &in->d))) return s;
    if ((s = get2d(st, "X_test", &in->Xte, &in->nte, &c))) return s;
    if ((s = get2d(st, "zs_prototypes", &in->zs, &in->k, &c2))) return s;
    if (c != in->d || c2 != in->d)
        return mv_err(MEDVLM_ERR_SHAPE, "adapter inputs: feature dims %d / %d / %d differ", in->d,
                      c, c2);
    if ((s = get2d(st, "lp_init", &in->lp_init, &r, &c))) return s;
    if (r != in->k || c != in->d) return mv_err(MEDVLM_ERR_SHAPE, "lp_init shape");
    if ((s = get2d(st, "clipadapter_w1", &in->w1, &in->hidden, &c))) return s;
    if ((s = get2d(st, "clipadapter_w2", &in->w2, &r2, &c2))) return s;
    if (c != in->d || r2 != in->d || c2 != in->hidden)
        return mv_err(MEDVLM_ERR_SHAPE, "clipadapter_w1/w2 shapes");
    const struct medvlm_tensor_info *y = medvlm_st_find(st, "Y_train");
    const struct medvlm_tensor_info *ls = medvlm_st_find(st, "logit_scale");
    if (!y || y->dtype != MEDVLM_DTYPE_I64 || y->nbytes != (size_t)in->ntr * 8)
        return mv_err(MEDVLM_ERR_SHAPE, "Y_train must be I64 [%d]", in->ntr);
    if (!ls || ls->dtype != MEDVLM_DTYPE_F32 || ls->nbytes != 4)
        return mv_err(MEDVLM_ERR_SHAPE, "logit_scale must be one F32");
    in->Ytr = mv_calloc((size_t)in->ntr, sizeof(int64_t));
    if (!in->Ytr) return MEDVLM_ERR_NOMEM;
    memcpy(in->Ytr, y->data, y->nbytes);
    memcpy(&in->logit_scale, ls->data, 4);
    return MEDVLM_OK;
}

static enum medvlm_status add_f32(struct medvlm_st_writer *w, const char *name, const float *p,
                                  int ndim, int64_t d0, int64_t d1)
{
    int64_t shape[2] = {d0, d1};
    return medvlm_st_writer_add(w, name, MEDVLM_DTYPE_F32, ndim, shape, p);
}

/* Test logits and probabilities of a trained adapter under prefix "<m>.<opt>". */
static enum medvlm_status add_eval(struct medvlm_st_writer *w, const char *prefix,
                                   const struct medvlm_adapter *a, const struct adapter_inputs *in,
                                   int with_probs)
{
    enum medvlm_status s = MEDVLM_ERR_NOMEM;
    size_t n = (size_t)in->nte * in->k;
    float *logits = mv_calloc(n, sizeof(float)), *probs = mv_calloc(n, sizeof(float));
    char name[128];
    if (!logits || !probs) goto fail;
    if ((s = medvlm_adapter_logits(a, in->Xte, in->nte, logits))) goto fail;
    snprintf(name, sizeof name, "%s.test_logits", prefix);
    if ((s = add_f32(w, name, logits, 2, in->nte, in->k))) goto fail;
    if (with_probs) {
        mv_softmax_forward(probs, logits, in->nte, in->k);
        snprintf(name, sizeof name, "%s.test_probs", prefix);
        if ((s = add_f32(w, name, probs, 2, in->nte, in->k))) goto fail;
    }
fail:
    mv_free(logits);
    mv_free(probs);
    return s;
}

static enum medvlm_status manifest_num(const struct golden_ctx *g, const char *key, double *out)
{
    const cJSON *ad = cJSON_GetObjectItemCaseSensitive(g->manifest, "adapters");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(ad, key);
    if (!cJSON_IsNumber(v))
        return mv_err(MEDVLM_ERR_MISSING, "manifest.json: adapters.%s missing", key);
    *out = v->valuedouble;
    return MEDVLM_OK;
}

enum medvlm_status golden_stage_adapters(struct golden_ctx *g)
{
    struct adapter_inputs in = {0};
    struct medvlm_st *st = NULL;
    struct medvlm_st_writer *w = NULL;
    struct medvlm_adapter *a = NULL;
    float *losses = NULL;
    double epochs, lr, batch, momentum = 0.9; /* README: SGD momentum 0.9 */
    char *path = golden_path(g, "inputs/adapter_inputs.safetensors");
    enum medvlm_status s = path ? medvlm_st_open(path, &st) : MEDVLM_ERR_NOMEM;
    if (s) goto fail;
    if ((s = load_inputs(st, &in))) goto fail;
    if ((s = manifest_num(g, "epochs", &epochs)) || (s = manifest_num(g, "lr", &lr)) ||
        (s = manifest_num(g, "batch_size", &batch)))
        goto fail;
    if (manifest_num(g, "momentum", &momentum)) { /* optional key */
        momentum = 0.9;
        mv_err_clear();
    }
    if ((s = medvlm_st_writer_init(&w))) goto fail;

    struct medvlm_adapter_options o;
    medvlm_adapter_options_default(&o, MEDVLM_ADAPTER_ZEROSHOT);
    if ((s = medvlm_adapter_train(&o, in.Xtr, in.Ytr, in.ntr, in.d, in.zs, in.k, in.logit_scale, &a,
                                  NULL)))
        goto fail;
    if ((s = add_eval(w, "zeroshot", a, &in, 0))) goto fail;
    medvlm_adapter_free(a);
    a = NULL;

    static const enum medvlm_adapter_method methods[] = {
        MEDVLM_ADAPTER_LP, MEDVLM_ADAPTER_ZSLP, MEDVLM_ADAPTER_CLIPADAPTER, MEDVLM_ADAPTER_CLAP};
    static const enum medvlm_optimizer optims[] = {MEDVLM_OPTIMIZER_SGD, MEDVLM_OPTIMIZER_ADAM};
    static const char *optim_names[] = {"sgd", "adam"};
    for (size_t mi = 0; mi < MV_ARRAY_LEN(methods); mi++)
        for (size_t oi = 0; oi < MV_ARRAY_LEN(optims); oi++) {
            medvlm_adapter_options_default(&o, methods[mi]);
            o.optimizer = optims[oi];
            o.epochs = (int)epochs;
            o.lr = (float)lr;
            o.batch_size = (int)batch;
            o.momentum = (float)momentum;
            o.alpha = 0.5f;
            o.init_prototypes = in.lp_init;
            o.init_w1 = in.w1;
            o.init_w2 = in.w2;
            o.hidden = in.hidden;
            long steps = medvlm_adapter_steps(&o, in.ntr);
            losses = mv_calloc((size_t)(steps ? steps : 1), sizeof(float));
            if (!losses) {
                s = MEDVLM_ERR_NOMEM;
                goto fail;
            }
            if ((s = medvlm_adapter_train(&o, in.Xtr, in.Ytr, in.ntr, in.d, in.zs, in.k,
                                          in.logit_scale, &a, losses)))
                goto fail;
            const char *mname = medvlm_adapter_method_name(methods[mi]);
            char prefix[64], name[128];
            snprintf(prefix, sizeof prefix, "%s.%s", mname, optim_names[oi]);
            snprintf(name, sizeof name, "%s.losses", prefix);
            if ((s = add_f32(w, name, losses, 1, steps, 0))) goto fail;
            for (int p = 0; p < a->nparams; p++) {
                snprintf(name, sizeof name, "%s.final.%s", prefix, a->params[p].name);
                if ((s = add_f32(w, name, a->params[p].data, 2, a->params[p].shape[0],
                                 a->params[p].shape[1])))
                    goto fail;
            }
            if ((s = add_eval(w, prefix, a, &in, 1))) goto fail;
            if (methods[mi] == MEDVLM_ADAPTER_CLAP && oi == 0 &&
                (s = add_f32(w, "clap.lambdas", medvlm_adapter_lambdas(a), 1, in.k, 0)))
                goto fail;
            medvlm_adapter_free(a);
            a = NULL;
            mv_free(losses);
            losses = NULL;
        }
    s = golden_save(g, w, "adapters.safetensors");
fail:
    if (s) mv_err_ctx(s, "stage adapters");
    medvlm_adapter_free(a);
    mv_free(losses);
    mv_free(in.Ytr);
    medvlm_st_writer_free(w);
    medvlm_st_free(st);
    mv_free(path);
    return s;
}

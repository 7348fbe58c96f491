/*
 * adapter_file.c - adapters on disk: one safetensors file holding everything prediction
 * needs.
 *
 * Tensors: the trained parameters under their names (prototypes | residual | mlp.0.weight,
 * mlp.2.weight | cache_keys), prototypes_zs (K, D), logit_scale [] (raw), cache_labels (N)
 * I64 for Tip-Adapter, lambdas (K) for CLAP.
 * Metadata: medvlm = "adapter/1", method, hparams (JSON object), classes (JSON array of K
 * names), shots, seed.
 */
#include "adapters.h"

#include "../io/io.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADAPTER_FORMAT "adapter/1"

static const char *optimizer_name(enum medvlm_optimizer o)
{
    return o == MEDVLM_OPTIMIZER_ADAM ? "adam" : o == MEDVLM_OPTIMIZER_ADAMW ? "adamw" : "sgd";
}

static char *hparams_json(const struct medvlm_adapter_options *o)
{
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    cJSON_AddStringToObject(j, "optimizer", optimizer_name(o->optimizer));
    cJSON_AddStringToObject(j, "schedule",
                            o->schedule == MEDVLM_SCHEDULE_COSINE ? "cosine" : "constant");
    cJSON_AddNumberToObject(j, "epochs", o->epochs);
    cJSON_AddNumberToObject(j, "batch_size", o->batch_size);
    cJSON_AddNumberToObject(j, "lr", o->lr);
    cJSON_AddNumberToObject(j, "momentum", o->momentum);
    cJSON_AddNumberToObject(j, "weight_decay", o->weight_decay);
    cJSON_AddNumberToObject(j, "adam_beta1", o->adam_beta1);
    cJSON_AddNumberToObject(j, "adam_beta2", o->adam_beta2);
    cJSON_AddNumberToObject(j, "adam_eps", o->adam_eps);
    cJSON_AddNumberToObject(j, "alpha", o->alpha);
    cJSON_AddNumberToObject(j, "beta", o->beta);
    cJSON_AddNumberToObject(j, "hidden", o->hidden);
    cJSON_AddNumberToObject(j, "clap_alm", o->clap_alm);
    cJSON_AddNumberToObject(j, "clap_rho", o->clap_rho);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

enum medvlm_status medvlm_adapter_save(const struct medvlm_adapter *a, const char *path,
                                       const char *const *class_names, int shots,
                                       const struct medvlm_provenance *from)
{
    if (!a || !path) return mv_err(MEDVLM_ERR_ARG, "adapter save: NULL argument");
    struct medvlm_st_writer *w = NULL;
    char *hp = NULL, *classes = NULL;
    cJSON *arr = NULL;
    enum medvlm_status st = medvlm_st_writer_init(&w);
    if (st) return st;
    for (int i = 0; i < a->nparams; i++) {
        const struct mv_adapter_param *p = &a->params[i];
        if ((st = medvlm_st_writer_add(w, p->name, MEDVLM_DTYPE_F32, p->ndim, p->shape, p->data)))
            goto fail;
    }
    int64_t kd[2] = {a->k, a->d}, kk = a->k, nc = a->n_cache;
    if ((st = medvlm_st_writer_add(w, "prototypes_zs", MEDVLM_DTYPE_F32, 2, kd, a->zs)) ||
        (st = medvlm_st_writer_add(w, "logit_scale", MEDVLM_DTYPE_F32, 0, NULL, &a->logit_scale)))
        goto fail;
    if (a->cache_labels &&
        (st = medvlm_st_writer_add(w, "cache_labels", MEDVLM_DTYPE_I64, 1, &nc, a->cache_labels)))
        goto fail;
    if (a->ops->method == MEDVLM_ADAPTER_CLAP &&
        (st = medvlm_st_writer_add(w, "lambdas", MEDVLM_DTYPE_F32, 1, &kk, a->lambdas)))
        goto fail;
    st = MEDVLM_ERR_NOMEM;
    hp = hparams_json(&a->opt);
    arr = cJSON_CreateArray();
    if (!hp || !arr) goto fail;
    for (int c = 0; c < a->k; c++) {
        char num[32];
        const char *name = class_names ? class_names[c] : a->class_names ? a->class_names[c] : NULL;
        if (!name) {
            snprintf(num, sizeof num, "%d", c);
            name = num;
        }
        cJSON_AddItemToArray(arr, cJSON_CreateString(name));
    }
    classes = cJSON_PrintUnformatted(arr);
    if (!classes) goto fail;
    char shots_s[32], seed_s[32];
    const struct medvlm_provenance loaded = {a->fingerprint, a->model}; /* re-saving a loaded one */
    snprintf(shots_s, sizeof shots_s, "%d", shots ? shots : a->shots);
    snprintf(seed_s, sizeof seed_s, "%" PRIu64, a->opt.seed);
    if ((st = medvlm_st_writer_meta(w, "medvlm", ADAPTER_FORMAT)) ||
        (st = medvlm_st_writer_meta(w, "method", a->ops->name)) ||
        (st = medvlm_st_writer_meta(w, "hparams", hp)) ||
        (st = medvlm_st_writer_meta(w, "classes", classes)) ||
        (st = medvlm_st_writer_meta(w, "shots", shots_s)) ||
        (st = medvlm_st_writer_meta(w, "seed", seed_s)) ||
        (st = mv_provenance_write(w, from ? from : &loaded)))
        goto fail;
    st = medvlm_st_writer_save(w, path);
fail:
    cJSON_Delete(arr);
    cJSON_free(hp);
    cJSON_free(classes);
    medvlm_st_writer_free(w);
    return st;
}

/* ---- load ---- */

static enum medvlm_status parse_hparams(const char *path, const char *text,
                                        struct medvlm_adapter_options *o)
{
    cJSON *j = NULL;
    enum medvlm_status st = mv_json_parse(path, text, strlen(text), &j);
    if (st) return mv_err_ctx(st, "%s: metadata hparams", path);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return mv_err(MEDVLM_ERR_FORMAT, "%s: metadata hparams must be a JSON object", path);
    }
    const cJSON *opt = mv_json_get(j, "optimizer"), *sch = mv_json_get(j, "schedule");
    if (cJSON_IsString(opt))
        o->optimizer = !strcmp(opt->valuestring, "adam")    ? MEDVLM_OPTIMIZER_ADAM
                       : !strcmp(opt->valuestring, "adamw") ? MEDVLM_OPTIMIZER_ADAMW
                                                            : MEDVLM_OPTIMIZER_SGD;
    if (cJSON_IsString(sch) && !strcmp(sch->valuestring, "cosine"))
        o->schedule = MEDVLM_SCHEDULE_COSINE;
    if ((st = mv_json_int(path, j, "epochs", &o->epochs)) ||
        (st = mv_json_int(path, j, "batch_size", &o->batch_size)) ||
        (st = mv_json_float(path, j, "lr", &o->lr)) ||
        (st = mv_json_float(path, j, "momentum", &o->momentum)) ||
        (st = mv_json_float(path, j, "weight_decay", &o->weight_decay)) ||
        (st = mv_json_float(path, j, "adam_beta1", &o->adam_beta1)) ||
        (st = mv_json_float(path, j, "adam_beta2", &o->adam_beta2)) ||
        (st = mv_json_float(path, j, "adam_eps", &o->adam_eps)) ||
        (st = mv_json_float(path, j, "alpha", &o->alpha)) ||
        (st = mv_json_float(path, j, "beta", &o->beta)) ||
        (st = mv_json_int(path, j, "hidden", &o->hidden)) ||
        (st = mv_json_int(path, j, "clap_alm", &o->clap_alm)) ||
        (st = mv_json_float(path, j, "clap_rho", &o->clap_rho)))
        goto done;
    if (o->hidden < 0 || o->hidden > (1 << 20))
        st = mv_err(MEDVLM_ERR_FORMAT, "%s: hparams hidden %d out of range", path, o->hidden);
done:
    cJSON_Delete(j);
    return st;
}

/* A 2-D F32 tensor of the file, shape checked against want (-1 = any). */
static enum medvlm_status tensor_2d(const struct medvlm_st *st, const char *name, int64_t r,
                                    int64_t c, const struct medvlm_tensor_info **out)
{
    const char *path = medvlm_st_path(st);
    const struct medvlm_tensor_info *t = medvlm_st_find(st, name);
    if (!t) return mv_err(MEDVLM_ERR_MISSING, "%s: tensor '%s' missing", path, name);
    if (t->dtype != MEDVLM_DTYPE_F32 || t->ndim != 2 || (r >= 0 && t->shape[0] != r) ||
        (c >= 0 && t->shape[1] != c) || t->shape[0] <= 0 || t->shape[1] <= 0 ||
        t->shape[0] > INT32_MAX || t->shape[1] > INT32_MAX)
        return mv_err(MEDVLM_ERR_SHAPE,
                      "%s: tensor '%s' must be F32 [%lld, %lld], got %s with %d dims [%lld, %lld]",
                      path, name, (long long)r, (long long)c, medvlm_dtype_name(t->dtype), t->ndim,
                      (long long)(t->ndim > 0 ? t->shape[0] : 0),
                      (long long)(t->ndim > 1 ? t->shape[1] : 0));
    *out = t;
    return MEDVLM_OK;
}

enum medvlm_status mv_adapter_from_st(const struct medvlm_st *st, struct medvlm_adapter **out)
{
    struct medvlm_adapter *a = NULL;
    cJSON *cls = NULL;
    const char *path = medvlm_st_path(st);
    enum medvlm_status s;
    *out = NULL;
    const char *fmt = medvlm_st_metadata(st, "medvlm");
    if (!fmt || strcmp(fmt, ADAPTER_FORMAT) != 0) {
        s = mv_err(MEDVLM_ERR_FORMAT,
                   "%s: not a medvlm adapter file (metadata medvlm = '%s', expected '%s')", path,
                   fmt ? fmt : "(none)", ADAPTER_FORMAT);
        goto fail;
    }
    enum medvlm_adapter_method m;
    const char *mname = medvlm_st_metadata(st, "method");
    if ((s = medvlm_adapter_method_from_name(mname, &m))) {
        mv_err_ctx(s, "%s: metadata method", path);
        goto fail;
    }
    struct medvlm_adapter_options o;
    medvlm_adapter_options_default(&o, m);
    const char *hp = medvlm_st_metadata(st, "hparams");
    if (hp && (s = parse_hparams(path, hp, &o))) goto fail;
    const char *seed = medvlm_st_metadata(st, "seed");
    if (seed) o.seed = strtoull(seed, NULL, 10);

    const struct medvlm_tensor_info *zs, *ls;
    if ((s = tensor_2d(st, "prototypes_zs", -1, -1, &zs))) goto fail;
    int k = (int)zs->shape[0], d = (int)zs->shape[1];
    ls = medvlm_st_find(st, "logit_scale");
    if (!ls || ls->dtype != MEDVLM_DTYPE_F32 || ls->nbytes != 4) {
        s = mv_err(MEDVLM_ERR_SHAPE, "%s: tensor 'logit_scale' must be one F32 value", path);
        goto fail;
    }
    float logit_scale;
    memcpy(&logit_scale, ls->data, 4);
    int n_cache = 0;
    const struct medvlm_tensor_info *lab = NULL;
    if (m == MEDVLM_ADAPTER_TIPADAPTER || m == MEDVLM_ADAPTER_TIPADAPTER_F) {
        lab = medvlm_st_find(st, "cache_labels");
        if (!lab || lab->dtype != MEDVLM_DTYPE_I64 || lab->ndim != 1 || lab->shape[0] <= 0 ||
            lab->shape[0] > INT32_MAX) {
            s = mv_err(MEDVLM_ERR_SHAPE, "%s: tensor 'cache_labels' must be I64 [N], N > 0", path);
            goto fail;
        }
        n_cache = (int)lab->shape[0];
    }
    /* Every buffer below is sized from tensors present in the file (so by the file's size):
     * the bottleneck width comes from mlp.0.weight, the cache size from cache_keys. */
    if (m == MEDVLM_ADAPTER_CLIPADAPTER) {
        const struct medvlm_tensor_info *w1;
        if ((s = tensor_2d(st, "mlp.0.weight", -1, d, &w1))) goto fail;
        o.hidden = (int)w1->shape[0];
    }
    if (lab) {
        const struct medvlm_tensor_info *keys;
        if ((s = tensor_2d(st, "cache_keys", n_cache, d, &keys))) goto fail;
    }
    /* copy zs out of the (possibly unaligned) mapping */
    float *zbuf = mv_calloc((size_t)k * d, sizeof(float));
    if (!zbuf) {
        s = MEDVLM_ERR_NOMEM;
        goto fail;
    }
    memcpy(zbuf, zs->data, zs->nbytes);
    s = mv_adapter_create(&o, d, k, n_cache, zbuf, logit_scale, &a);
    mv_free(zbuf);
    if (s) {
        mv_err_ctx(s, "%s", path);
        goto fail;
    }
    for (int i = 0; i < a->nparams; i++) {
        const struct medvlm_tensor_info *t;
        if ((s = tensor_2d(st, a->params[i].name, a->params[i].shape[0], a->params[i].shape[1],
                           &t)))
            goto fail;
        memcpy(a->params[i].data, t->data, t->nbytes);
    }
    if (lab) {
        a->cache_labels = mv_calloc((size_t)n_cache, sizeof(int64_t));
        if (!a->cache_labels) {
            s = MEDVLM_ERR_NOMEM;
            goto fail;
        }
        memcpy(a->cache_labels, lab->data, lab->nbytes);
        for (int i = 0; i < n_cache; i++)
            if (a->cache_labels[i] < 0 || a->cache_labels[i] >= k) {
                s = mv_err(MEDVLM_ERR_FORMAT, "%s: cache_labels[%d] = %lld is not in [0, %d)", path,
                           i, (long long)a->cache_labels[i], k);
                goto fail;
            }
    }
    const struct medvlm_tensor_info *lam = medvlm_st_find(st, "lambdas");
    if (lam && lam->dtype == MEDVLM_DTYPE_F32 && lam->nbytes == (size_t)k * 4)
        memcpy(a->lambdas, lam->data, lam->nbytes);
    const char *classes = medvlm_st_metadata(st, "classes");
    if (classes) {
        if ((s = mv_json_parse(path, classes, strlen(classes), &cls))) goto fail;
        if (!cJSON_IsArray(cls) || cJSON_GetArraySize(cls) != k) {
            s = mv_err(MEDVLM_ERR_FORMAT, "%s: metadata classes must be a JSON array of %d names",
                       path, k);
            goto fail;
        }
        a->class_names = mv_calloc((size_t)k, sizeof(char *));
        if (!a->class_names) {
            s = MEDVLM_ERR_NOMEM;
            goto fail;
        }
        for (int c = 0; c < k; c++) {
            const cJSON *e = cJSON_GetArrayItem(cls, c);
            if (!cJSON_IsString(e)) {
                s = mv_err(MEDVLM_ERR_FORMAT, "%s: class %d in metadata classes is not a string",
                           path, c);
                goto fail;
            }
            if (!(a->class_names[c] = mv_strdup(e->valuestring))) {
                s = MEDVLM_ERR_NOMEM;
                goto fail;
            }
        }
    }
    if ((s = mv_provenance_read(st, &a->fingerprint, &a->model))) goto fail;
    const char *shots = medvlm_st_metadata(st, "shots");
    if (shots) {
        long v = strtol(shots, NULL, 10);
        a->shots = v > 0 && v < (1L << 30) ? (int)v : 0;
    }
    *out = a;
    a = NULL;
    s = MEDVLM_OK;
fail:
    cJSON_Delete(cls);
    medvlm_adapter_free(a);
    return s;
}

enum medvlm_status medvlm_adapter_load(const char *path, struct medvlm_adapter **out)
{
    struct medvlm_st *st = NULL;
    if (!path || !out) return mv_err(MEDVLM_ERR_ARG, "adapter load: NULL argument");
    *out = NULL;
    enum medvlm_status s = medvlm_st_open(path, &st);
    if (s) return s;
    s = mv_adapter_from_st(st, out);
    medvlm_st_free(st);
    return s;
}

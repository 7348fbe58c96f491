/*
 * peft.c - the fine-tuning state: trainable sets from the parameter table, one buffer per
 * role, the head, and a step (forward, loss, backward, update) that allocates nothing.
 *
 * Glossary: B images, K classes, D embedding dim, C width, I MLP width, L layers, RK LoRA rank.
 */
#include "peft.h"

#include "../io/io.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const mode_names[] = {"head", "ln", "ln-all", "bias", "lora", "full"};

const char *medvlm_peft_mode_name(enum medvlm_peft_mode mode)
{
    return (unsigned)mode < MV_ARRAY_LEN(mode_names) ? mode_names[mode] : "?";
}

enum medvlm_status medvlm_peft_mode_from_name(const char *name, enum medvlm_peft_mode *out)
{
    for (size_t i = 0; i < MV_ARRAY_LEN(mode_names); i++)
        if (name && strcmp(name, mode_names[i]) == 0) {
            *out = (enum medvlm_peft_mode)i;
            return MEDVLM_OK;
        }
    return mv_err(MEDVLM_ERR_ARG,
                  "unknown PEFT mode \"%s\" (expected one of head, ln, ln-all, bias, lora, full)",
                  name ? name : "");
}

static const char *const lora_short[MV_LORA_N] = {"q", "k", "v", "o", "fc1", "fc2"};
static const char *const lora_modules[MV_LORA_N] = {"q_proj",   "k_proj", "v_proj",
                                                    "out_proj", "fc1",    "fc2"};

const char *mv_lora_module(int target)
{
    return lora_modules[target];
}

const char *mv_lora_parent(int target)
{
    return target >= MV_LORA_FC1 ? "mlp" : "self_attn";
}

enum medvlm_status medvlm_lora_targets_parse(const char *list, unsigned *out)
{
    unsigned mask = 0;
    const char *p = list ? list : "";
    *out = 0;
    while (*p) {
        size_t n = strcspn(p, ",");
        int found = -1;
        for (int t = 0; t < MV_LORA_N && found < 0; t++)
            if ((strlen(lora_short[t]) == n && strncmp(p, lora_short[t], n) == 0) ||
                (strlen(lora_modules[t]) == n && strncmp(p, lora_modules[t], n) == 0))
                found = t;
        if (found < 0)
            return mv_err(MEDVLM_ERR_ARG,
                          "unknown LoRA target \"%.*s\" (expected a comma-separated list of q, k, "
                          "v, o, fc1, fc2)",
                          (int)n, p);
        mask |= 1u << found;
        p += n;
        if (*p == ',') p++;
    }
    if (!mask)
        return mv_err(MEDVLM_ERR_ARG,
                      "empty LoRA target list (expected a comma-separated list of q, k, v, o, "
                      "fc1, fc2)");
    *out = mask;
    return MEDVLM_OK;
}

void medvlm_peft_options_default(struct medvlm_peft_options *o)
{
    memset(o, 0, sizeof *o);
    o->mode = MEDVLM_PEFT_LORA;
    o->lora_rank = 4;
    o->lora_targets = MEDVLM_LORA_Q | MEDVLM_LORA_K | MEDVLM_LORA_V;
    o->optimizer = MEDVLM_OPTIMIZER_ADAM;
    o->lr = 1e-3f;
    o->momentum = 0.9f;
    o->max_batch = 16;
    o->seed = 1;
    o->precision = MEDVLM_PRECISION_FP32;
}

/* ---- the trainable set, from the parameter table ---- */

static bool table_row_trained(enum medvlm_peft_mode mode, const struct medvlm_param_info *p)
{
    if (p->tower != MEDVLM_TOWER_VISION) return false;
    switch (mode) {
    case MEDVLM_PEFT_LN:
        return strstr(p->name, "layer_norm") != NULL;
    case MEDVLM_PEFT_LN_ALL:
        return strstr(p->name, "layer_norm") || strstr(p->name, "pre_layrnorm") ||
               strstr(p->name, "post_layernorm");
    case MEDVLM_PEFT_BIAS:
        return strstr(p->name, "bias") != NULL;
    case MEDVLM_PEFT_FULL:
        return true;
    default:
        return false;
    }
}

static enum medvlm_status add_row(struct medvlm_peft *p, int *cap, const char *name, int ndim,
                                  const int64_t *shape, int param, int layer, int target, int ab)
{
    if (p->n_rows == *cap) {
        int nc = *cap ? 2 * *cap : 64;
        struct mv_peft_row *r = mv_realloc(p->rows, (size_t)nc * sizeof *r);
        if (!r) return MEDVLM_ERR_NOMEM;
        p->rows = r;
        *cap = nc;
    }
    struct mv_peft_row *r = &p->rows[p->n_rows];
    memset(r, 0, sizeof *r);
    r->name = mv_arena_strdup(&p->names, name);
    if (!r->name) return MEDVLM_ERR_NOMEM;
    r->ndim = ndim;
    r->numel = 1;
    for (int d = 0; d < ndim; d++) {
        r->shape[d] = shape[d];
        r->numel *= (size_t)shape[d];
    }
    r->param = param;
    r->layer = layer;
    r->target = target;
    r->ab = ab;
    /* each tensor starts on a 64-byte boundary */
    r->off = p->n;
    p->n += (r->numel + 15) & ~(size_t)15;
    p->n_rows++;
    return MEDVLM_OK;
}

static enum medvlm_status build_rows(struct medvlm_peft *p)
{
    const struct medvlm_model *m = p->m;
    const struct medvlm_tower_config *c = &m->vision.cfg;
    int cap = 0;
    enum medvlm_status st;
    for (int i = 0; i < m->n_params; i++) {
        const struct medvlm_param_info *pi = &m->params[i];
        if (!table_row_trained(p->o.mode, pi)) continue;
        if ((st = add_row(p, &cap, pi->name, pi->ndim, pi->shape, i, -1, -1, 0))) return st;
    }
    if (p->o.mode == MEDVLM_PEFT_LORA) {
        const int64_t C = c->hidden_size, I = c->intermediate_size, RK = p->o.lora_rank;
        const int64_t in[MV_LORA_N] = {C, C, C, C, C, I}, out[MV_LORA_N] = {C, C, C, C, I, C};
        for (int l = 0; l < c->num_hidden_layers; l++)
            for (int t = 0; t < MV_LORA_N; t++) {
                if (!(p->o.lora_targets & (1u << t))) continue;
                char name[160];
                snprintf(name, sizeof name, "vision_model.encoder.layers.%d.%s.%s.lora_A.weight", l,
                         mv_lora_parent(t), mv_lora_module(t));
                if ((st = add_row(p, &cap, name, 2, (int64_t[]){RK, in[t]}, -1, l, t, 0)))
                    return st;
                snprintf(name, sizeof name, "vision_model.encoder.layers.%d.%s.%s.lora_B.weight", l,
                         mv_lora_parent(t), mv_lora_module(t));
                if ((st = add_row(p, &cap, name, 2, (int64_t[]){out[t], RK}, -1, l, t, 1)))
                    return st;
            }
    }
    return add_row(p, &cap, "head.prototypes", 2, (int64_t[]){p->K, p->D}, -1, -1, -1, 0);
}

/* Point the training tower's trained views and the gradient views into the buffers, and
 * fill the buffers' initial values. */
static void bind_rows(struct medvlm_peft *p)
{
    const struct medvlm_model *m = p->m;
    struct mv_rng rng;
    mv_rng_seed(&rng, p->o.seed);
    int lowest = p->tower.cfg.num_hidden_layers;
    for (int i = 0; i < p->n_rows; i++) {
        const struct mv_peft_row *r = &p->rows[i];
        float *data = p->params + r->off, *grad = p->grads + r->off;
        if (r->param >= 0) {
            memcpy(data, m->params[r->param].data, r->numel * sizeof(float));
            *mv_param_view_slot(m, r->param, &p->tower) = data;
            *mv_param_grad_slot(m, r->param, &p->grad) = grad;
            /* which layer is lowest decides where the backward may stop: the embeddings and
             * pre_layrnorm need every layer, post_layernorm and the projection none */
            const char *lp = strstr(r->name, "encoder.layers.");
            int above = strstr(r->name, "post_layernorm") || strstr(r->name, "visual_projection");
            int l = lp ? atoi(lp + 15) : above ? p->tower.cfg.num_hidden_layers : 0;
            lowest = MV_MIN(lowest, l);
            p->encoder_trained = 1;
        } else if (r->layer >= 0) {
            struct mv_layer *ly = &p->tower.layers[r->layer];
            struct mv_layer_grad *gl = &p->grad.layers[r->layer];
            struct mv_linear *lin[MV_LORA_N] = {&ly->q, &ly->k, &ly->v, &ly->o, &ly->fc1, &ly->fc2};
            struct mv_linear_grad *gin[MV_LORA_N] = {&gl->q, &gl->k,   &gl->v,
                                                     &gl->o, &gl->fc1, &gl->fc2};
            if (r->ab == 0) {
                /* torch's nn.Linear default (kaiming_uniform, a = sqrt 5): U(-1/sqrt(in),
                 * 1/sqrt(in)), as peft initialises lora_A */
                double bound = 1.0 / sqrt((double)r->shape[1]);
                for (size_t k = 0; k < r->numel; k++)
                    data[k] = (float)((2.0 * mv_rng_uniform(&rng) - 1.0) * bound);
                lin[r->target]->lora_a = data;
                gin[r->target]->lora_a = grad;
            } else {
                memset(data, 0, r->numel * sizeof(float)); /* B = 0: the base model at start */
                lin[r->target]->lora_b = data;
                gin[r->target]->lora_b = grad;
            }
            lowest = MV_MIN(lowest, r->layer);
            p->encoder_trained = 1;
        } else {
            p->protos = data;
            p->dprotos = grad;
        }
    }
    p->stop_layer = lowest;
}

/* ---- the training tower's linear weights: inference copies, bf16 panels ---- */

static int n_views(const struct medvlm_peft *p)
{
    return p->tower.cfg.num_hidden_layers * MV_LAYER_LINEARS;
}

static struct mv_linear *view_at(struct medvlm_peft *p, int i, int *out, int *in)
{
    return mv_layer_linear(&p->tower.layers[i / MV_LAYER_LINEARS], i % MV_LAYER_LINEARS,
                           p->tower.cfg.hidden_size, p->tower.cfg.intermediate_size, out, in);
}

/* Is x trained (a view into p->params)? */
static int is_trained(const struct medvlm_peft *p, const float *x)
{
    return x >= p->params && x < p->params + p->n;
}

/* The copies a prepared model made for inference are read only where they hold what the
 * step multiplies by: a trained weight's packed panels would be its value at load, and a
 * bf16 copy is used only at bf16 precision (set below). */
static void views_for_training(struct medvlm_peft *p)
{
    for (int i = 0; i < n_views(p); i++) {
        int O, I;
        struct mv_linear *lin = view_at(p, i, &O, &I);
        if (is_trained(p, lin->w)) lin->w_packed = NULL;
        lin->w_bf16 = lin->w_bf16t = NULL;
    }
}

/* The frozen biases and LayerNorm parameters of the layers copied next to each other
 * (p->small): reading them in the file's mapping would map the file's folios around them
 * back in, weights included (see pack.c's copy_small). */
static enum medvlm_status copy_frozen_small(struct medvlm_peft *p)
{
    const struct mv_tower *t = &p->tower;
    const size_t C = (size_t)t->cfg.hidden_size, I = (size_t)t->cfg.intermediate_size;
    p->small = mv_aligned((size_t)t->cfg.num_hidden_layers * (9 * C + I) * sizeof(float));
    if (!p->small) return MEDVLM_ERR_NOMEM;
    float *d = p->small;
    for (int i = 0; i < n_views(p); i++) {
        int O, In;
        struct mv_linear *lin = view_at(p, i, &O, &In);
        if (!lin->b || is_trained(p, lin->b)) continue;
        memcpy(d, lin->b, (size_t)O * sizeof *d);
        lin->b = d;
        d += O;
    }
    for (int l = 0; l < t->cfg.num_hidden_layers; l++) {
        struct mv_norm *ln[2] = {&p->tower.layers[l].ln1, &p->tower.layers[l].ln2};
        for (int j = 0; j < 2; j++) {
            const float **v[2] = {&ln[j]->w, &ln[j]->b};
            for (int k = 0; k < 2; k++) {
                if (is_trained(p, *v[k])) continue;
                memcpy(d, *v[k], C * sizeof *d);
                *v[k] = d;
                d += C;
            }
        }
    }
    return MEDVLM_OK;
}

/* bf16 precision: every view's weight into two bf16 packs, W for the forward and, in the
 * layers the backward visits, W^T for the input gradient; the mapped file's pages of a frozen
 * weight are given back once converted (no product reads them again). */
static enum medvlm_status pack_bf16(struct medvlm_peft *p)
{
    const int n = n_views(p);
    if (copy_frozen_small(p)) return mv_err(MEDVLM_ERR_NOMEM, "fine-tuning at bf16: no memory");
    p->bf16 = mv_calloc((size_t)2 * n, sizeof *p->bf16);
    if (!p->bf16) return MEDVLM_ERR_NOMEM;
    p->n_bf16 = 2 * n;
    for (int i = 0; i < n; i++) {
        int O, I;
        struct mv_linear *lin = view_at(p, i, &O, &I);
        const int backward = p->encoder_trained && i / MV_LAYER_LINEARS >= p->stop_layer;
        enum medvlm_status st = mv_bf16_weight_pack(&p->bf16[2 * i], lin->w, O, I);
        if (!st && backward) st = mv_bf16_weight_pack_trans(&p->bf16[2 * i + 1], lin->w, I, O);
        if (st) return mv_err(st, "fine-tuning at bf16: no memory for the bf16 weights");
        lin->w_bf16 = &p->bf16[2 * i];
        lin->w_bf16t = backward ? &p->bf16[2 * i + 1] : NULL;
        if (!is_trained(p, lin->w))
            (void)mv_st_release_pages(p->m->st, lin->w, (size_t)O * I * sizeof(float));
    }
    return MEDVLM_OK;
}

void mv_peft_sync(struct medvlm_peft *p)
{
    for (int i = 0; p->bf16 && i < n_views(p); i++) {
        int O, I;
        struct mv_linear *lin = view_at(p, i, &O, &I);
        if (!is_trained(p, lin->w)) continue;
        mv_bf16_weight_refill(lin->w_bf16, lin->w, 0);
        if (lin->w_bf16t) mv_bf16_weight_refill(lin->w_bf16t, lin->w, 1);
    }
}

enum medvlm_status medvlm_peft_init(const struct medvlm_model *model,
                                    const struct medvlm_peft_options *o, const float *prototypes,
                                    int K, struct medvlm_peft **out)
{
    *out = NULL;
    if (!model || !o || !prototypes)
        return mv_err(MEDVLM_ERR_ARG, "medvlm_peft_init: NULL argument");
    if (!model->vision.loaded)
        return mv_err(MEDVLM_ERR_ARG,
                      "medvlm_peft_init: the vision tower is not loaded (load the model with "
                      "MEDVLM_LOAD_VISION)");
    if (K < 2 || K > 100000)
        return mv_err(MEDVLM_ERR_ARG, "medvlm_peft_init: %d classes (expected at least 2)", K);
    if ((unsigned)o->mode > MEDVLM_PEFT_FULL)
        return mv_err(MEDVLM_ERR_ARG, "medvlm_peft_init: unknown mode %d", (int)o->mode);
    if ((unsigned)o->precision > MEDVLM_PRECISION_BF16)
        return mv_err(MEDVLM_ERR_ARG, "medvlm_peft_init: unknown precision %d", (int)o->precision);
    if (o->mode == MEDVLM_PEFT_LORA) {
        if (o->lora_rank < 1 || o->lora_rank > model->vision.cfg.hidden_size)
            return mv_err(MEDVLM_ERR_ARG, "LoRA rank %d (expected 1..%d, the vision width)",
                          o->lora_rank, model->vision.cfg.hidden_size);
        if (!(o->lora_targets & 63u) || (o->lora_targets & ~63u))
            return mv_err(MEDVLM_ERR_ARG,
                          "LoRA targets 0x%x (expected a set of q, k, v, o, fc1, "
                          "fc2)",
                          o->lora_targets);
        if (!(o->lora_alpha >= 0) || !isfinite(o->lora_alpha))
            return mv_err(MEDVLM_ERR_ARG, "LoRA alpha %g (expected > 0)", (double)o->lora_alpha);
    }
    if (!(o->lr >= 0) || !isfinite(o->lr))
        return mv_err(MEDVLM_ERR_ARG, "learning rate %g (expected >= 0)", (double)o->lr);
    if (o->max_batch < 1) return mv_err(MEDVLM_ERR_ARG, "batch %d (expected >= 1)", o->max_batch);
    struct medvlm_peft *p = mv_calloc(1, sizeof *p);
    if (!p) return MEDVLM_ERR_NOMEM;
    enum medvlm_status st = MEDVLM_ERR_NOMEM;
    const int L = model->vision.cfg.num_hidden_layers;
    p->m = model;
    p->o = *o;
    p->o.precision = medvlm_precision_resolve(o->precision);
    if (p->o.mode != MEDVLM_PEFT_LORA) p->o.lora_rank = 0;
    if (p->o.mode == MEDVLM_PEFT_LORA && p->o.lora_alpha == 0)
        p->o.lora_alpha = (float)p->o.lora_rank;
    p->K = K;
    p->D = model->cfg.projection_dim;
    p->scale = expf(model->logit_scale);
    mv_arena_init(&p->names, 16 * 1024);
    p->tower = model->vision;
    p->tower.layers = mv_calloc((size_t)L, sizeof *p->tower.layers);
    p->grad.layers = mv_calloc((size_t)L, sizeof *p->grad.layers);
    if (!p->tower.layers || !p->grad.layers) goto fail;
    memcpy(p->tower.layers, model->vision.layers, (size_t)L * sizeof *p->tower.layers);
    p->tower.lora_rank = p->o.lora_rank;
    p->tower.lora_scale = p->o.lora_rank ? p->o.lora_alpha / (float)p->o.lora_rank : 0.0f;
    if ((st = build_rows(p))) goto fail;
    st = MEDVLM_ERR_NOMEM;
    p->params = mv_aligned_zeros(p->n * sizeof(float));
    p->grads = mv_aligned_zeros(p->n * sizeof(float));
    if (!p->params || !p->grads) goto fail;
    bind_rows(p);
    views_for_training(p);
    if (p->o.precision == MEDVLM_PRECISION_BF16 && (st = pack_bf16(p))) goto fail;
    st = MEDVLM_ERR_NOMEM;
    memcpy(p->protos, prototypes, (size_t)K * p->D * sizeof(float));
    size_t B = (size_t)o->max_batch, KD = (size_t)K * p->D;
    p->pn = mv_malloc(KD * sizeof(float));
    p->dpn = mv_malloc(KD * sizeof(float));
    p->pnorm = mv_malloc((size_t)K * sizeof(float));
    p->logits = mv_malloc(B * K * sizeof(float));
    p->dlogits = mv_malloc(B * K * sizeof(float));
    p->dfeats = mv_malloc(B * p->D * sizeof(float));
    if (!p->pn || !p->dpn || !p->pnorm || !p->logits || !p->dlogits || !p->dfeats) goto fail;
    if ((st = mv_train_ws_init(&p->ws, &p->tower, p->D, o->max_batch))) goto fail;
    struct mv_optim_config oc;
    enum mv_optim_kind kind = o->optimizer == MEDVLM_OPTIMIZER_SGD     ? MV_OPTIM_SGD
                              : o->optimizer == MEDVLM_OPTIMIZER_ADAMW ? MV_OPTIM_ADAMW
                                                                       : MV_OPTIM_ADAM;
    mv_optim_config_default(&oc, kind);
    oc.lr = o->lr;
    oc.weight_decay = o->weight_decay;
    if (kind == MV_OPTIM_SGD) oc.momentum = o->momentum;
    struct mv_span span = {p->params, p->grads, p->n};
    if ((st = mv_optim_init(&p->opt, &oc, &span, 1))) goto fail;
    *out = p;
    return MEDVLM_OK;
fail:
    medvlm_peft_free(p);
    return st;
}

void medvlm_peft_free(struct medvlm_peft *p)
{
    if (!p) return;
    mv_optim_free(&p->opt);
    mv_train_ws_free(&p->ws);
    mv_free(p->tower.layers);
    mv_free(p->grad.layers);
    mv_free(p->rows);
    mv_arena_free(&p->names);
    mv_free(p->params);
    mv_free(p->grads);
    mv_free(p->pn);
    mv_free(p->dpn);
    mv_free(p->pnorm);
    mv_free(p->logits);
    mv_free(p->dlogits);
    mv_free(p->dfeats);
    for (int i = 0; i < p->n_bf16; i++) mv_bf16_weight_free(&p->bf16[i]);
    mv_free(p->bf16);
    mv_free(p->small);
    mv_free(p);
}

/* ---- the head: logits = feats normalise_rows(protos)^T s, mean cross-entropy ---- */

static void head_forward(struct medvlm_peft *p, const float *feats, int B)
{
    // pn (K, D) = protos / |protos|; logits (B, K) = s feats pn^T
    mv_l2norm_forward(p->pn, p->pnorm, p->protos, p->K, p->D);
    mv_gemm(0, 1, B, p->K, p->D, p->scale, feats, p->D, p->pn, p->D, 0.0f, p->logits, p->K);
}

static enum medvlm_status check_batch(const struct medvlm_peft *p, const int64_t *labels, int B,
                                      int need_labels)
{
    if (B < 1 || B > p->o.max_batch)
        return mv_err(MEDVLM_ERR_ARG,
                      "fine-tuning step of %d images (expected 1..%d, the batch "
                      "size the state was made for)",
                      B, p->o.max_batch);
    if (!need_labels) return MEDVLM_OK;
    for (int b = 0; b < B; b++)
        if (labels[b] < 0 || labels[b] >= p->K)
            return mv_err(MEDVLM_ERR_ARG, "label %lld of image %d (expected 0..%d)",
                          (long long)labels[b], b, p->K - 1);
    return MEDVLM_OK;
}

enum medvlm_status medvlm_peft_backward(struct medvlm_peft *p, const float *pixels,
                                        const int64_t *labels, int B, float *loss)
{
    if (!p || !pixels || !labels) return mv_err(MEDVLM_ERR_ARG, "medvlm_peft_backward: NULL");
    enum medvlm_status st = check_batch(p, labels, B, 1);
    if (st) return st;
    mv_threads_adapt();
    struct mv_vit_saved *sv = &p->ws.saved;
    mv_vit_forward_train(&p->ws.acts, sv, &p->tower, p->D, pixels, B);
    head_forward(p, sv->feats, B);
    double l = mv_cross_entropy(p->dlogits, p->logits, labels, B, p->K); /* dlogits written */
    if (loss) *loss = (float)l;
    memset(p->grads, 0, p->n * sizeof(float));
    // logits = s feats pn^T: dfeats (B, D) = s dlogits pn; dpn (K, D) = s dlogits^T feats
    size_t KD = (size_t)p->K * p->D;
    memset(p->dpn, 0, KD * sizeof(float));
    mv_gemm(1, 0, p->K, p->D, B, p->scale, p->dlogits, p->K, sv->feats, p->D, 0.0f, p->dpn, p->D);
    mv_l2norm_backward(p->dprotos, p->dpn, p->pn, p->pnorm, p->K, p->D);
    if (p->encoder_trained) {
        mv_gemm(0, 0, B, p->D, p->K, p->scale, p->dlogits, p->K, p->pn, p->D, 0.0f, p->dfeats,
                p->D);
        mv_vit_backward(&p->grad, &p->ws.scratch, p->dfeats, sv, &p->ws.acts, &p->tower, p->D,
                        pixels, B, p->stop_layer);
    }
    return MEDVLM_OK;
}

enum medvlm_status medvlm_peft_step(struct medvlm_peft *p, const float *pixels,
                                    const int64_t *labels, int B, float *loss)
{
    enum medvlm_status st = medvlm_peft_backward(p, pixels, labels, B, loss);
    if (st) return st;
    mv_peft_update(p);
    return MEDVLM_OK;
}

void mv_peft_update(struct medvlm_peft *p)
{
    mv_optim_step(&p->opt, p->o.lr);
    mv_peft_sync(p);
}

enum medvlm_status medvlm_peft_logits(struct medvlm_peft *p, const float *pixels, int B,
                                      const int64_t *labels, float *logits, float *loss)
{
    if (!p || (!pixels && B > 0) || B < 0)
        return mv_err(MEDVLM_ERR_ARG, "medvlm_peft_logits: NULL argument or B = %d", B);
    const struct medvlm_tower_config *c = &p->tower.cfg;
    size_t per = 3 * (size_t)c->image_size * (size_t)c->image_size;
    double total = 0;
    for (int b0 = 0; b0 < B; b0 += p->o.max_batch) {
        int nb = MV_MIN(p->o.max_batch, B - b0);
        enum medvlm_status st = check_batch(p, labels ? labels + b0 : NULL, nb, labels != NULL);
        if (st) return st;
        mv_vit_forward_train(&p->ws.acts, &p->ws.saved, &p->tower, p->D, pixels + b0 * per, nb);
        head_forward(p, p->ws.saved.feats, nb);
        if (logits)
            memcpy(logits + (size_t)b0 * p->K, p->logits, (size_t)nb * p->K * sizeof(float));
        if (labels) total += mv_cross_entropy(NULL, p->logits, labels + b0, nb, p->K) * nb;
    }
    if (loss) *loss = B ? (float)(total / B) : 0.0f;
    return MEDVLM_OK;
}

/* ---- the trained tensors ---- */

int medvlm_peft_tensor_count(const struct medvlm_peft *p)
{
    return p ? p->n_rows : 0;
}

enum medvlm_status medvlm_peft_tensor_at(const struct medvlm_peft *p, int i,
                                         struct medvlm_peft_tensor *out)
{
    if (!p || !out || i < 0 || i >= p->n_rows)
        return mv_err(MEDVLM_ERR_ARG, "medvlm_peft_tensor_at: index %d (expected 0..%d)", i,
                      p ? p->n_rows - 1 : -1);
    const struct mv_peft_row *r = &p->rows[i];
    memset(out, 0, sizeof *out);
    out->name = r->name;
    out->ndim = r->ndim;
    memcpy(out->shape, r->shape, sizeof out->shape);
    out->numel = r->numel;
    out->data = p->params + r->off;
    out->grad = p->grads + r->off;
    return MEDVLM_OK;
}

int medvlm_peft_tensor_find(const struct medvlm_peft *p, const char *name)
{
    for (int i = 0; p && name && i < p->n_rows; i++)
        if (strcmp(p->rows[i].name, name) == 0) return i;
    return -1;
}

size_t medvlm_peft_trainable(const struct medvlm_peft *p)
{
    size_t n = 0;
    for (int i = 0; p && i < p->n_rows; i++) n += p->rows[i].numel;
    return n;
}

const struct medvlm_peft_options *medvlm_peft_options_of(const struct medvlm_peft *p)
{
    return p ? &p->o : NULL;
}

long medvlm_peft_steps(const struct medvlm_peft *p)
{
    return p ? p->opt.step : 0;
}

size_t medvlm_peft_workspace_bytes(const struct medvlm_peft *p)
{
    return p ? p->ws.bytes : 0;
}

size_t medvlm_peft_snapshot_size(const struct medvlm_peft *p)
{
    return p ? p->n : 0;
}

void medvlm_peft_snapshot(const struct medvlm_peft *p, float *buf)
{
    memcpy(buf, p->params, p->n * sizeof(float));
}

void medvlm_peft_restore(struct medvlm_peft *p, const float *buf)
{
    memcpy(p->params, buf, p->n * sizeof(float));
    mv_peft_sync(p);
}

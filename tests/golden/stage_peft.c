/*
 * stage_peft.c - golden stages "peft_grads" and "peft_train": the tutorial's fine-tuning
 * model (vision encoder + zero-shot-initialised head) on the manifest's peft.n images
 * (expected/pixels crop.0..n-1) with inputs/peft_inputs' labels, head and LoRA values:
 * gradients of every LayerNorm, bias, LoRA A/B and head tensor, and short Adam trajectories of
 * ln, bias and lora. Every size comes from the files.
 */
#include "golden.h"

#include "../../src/io/io.h"
#include "../../src/peft/peft.h"

#include <stdio.h>
#include <string.h>

struct peft_inputs {
    struct medvlm_st *st;
    float *pixels;
    int n, S, K, D, rank, steps;
    int64_t *labels;
    const float *head;
    float lr;
};

static int manifest_int(const struct golden_ctx *g, const char *key, int dflt)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(g->manifest, "peft");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, key);
    return cJSON_IsNumber(v) ? v->valueint : dflt;
}

static enum medvlm_status load_inputs(struct golden_ctx *g, struct peft_inputs *in)
{
    memset(in, 0, sizeof *in);
    int N;
    enum medvlm_status s = golden_pixel_inputs(g, &in->pixels, &N, &in->S);
    if (s) return s;
    in->n = manifest_int(g, "n", -1);
    in->rank = manifest_int(g, "lora_r", -1);
    in->steps = manifest_int(g, "adam_steps", -1);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(g->manifest, "peft");
    const cJSON *lr = cJSON_GetObjectItemCaseSensitive(p, "lr");
    in->lr = cJSON_IsNumber(lr) ? (float)lr->valuedouble : -1.0f;
    if (in->n < 1 || in->n > N || in->rank < 1 || in->steps < 1 || !(in->lr > 0))
        return mv_err(MEDVLM_ERR_FORMAT,
                      "manifest peft: n %d (of %d images), lora_r %d, adam_steps %d, lr %g", in->n,
                      N, in->rank, in->steps, (double)in->lr);
    char *path = golden_path(g, "inputs/peft_inputs.safetensors");
    s = medvlm_st_open(path, &in->st);
    mv_free(path);
    if (s) return s;
    const struct medvlm_tensor_info *y = medvlm_st_find(in->st, "labels");
    const struct medvlm_tensor_info *h = medvlm_st_find(in->st, "head_init");
    if (!y || y->dtype != MEDVLM_DTYPE_I64 || y->nbytes != (size_t)in->n * 8)
        return mv_err(MEDVLM_ERR_SHAPE, "peft_inputs: labels must be I64 [%d]", in->n);
    if (!h || h->dtype != MEDVLM_DTYPE_F32 || h->ndim != 2)
        return mv_err(MEDVLM_ERR_SHAPE, "peft_inputs: head_init must be F32 [K, D]");
    in->K = (int)h->shape[0];
    in->D = (int)h->shape[1];
    in->head = h->data;
    in->labels = mv_calloc((size_t)in->n, sizeof(int64_t));
    if (!in->labels) return MEDVLM_ERR_NOMEM;
    memcpy(in->labels, y->data, y->nbytes);
    return MEDVLM_OK;
}

static void free_inputs(struct peft_inputs *in)
{
    medvlm_st_free(in->st);
    mv_free(in->pixels);
    mv_free(in->labels);
}

/* Copy tensor `src` of the inputs into the fine-tuning tensor `dst` (shapes must agree). */
static enum medvlm_status set_tensor(struct medvlm_peft *p, const struct peft_inputs *in,
                                     const char *dst, const char *src)
{
    struct medvlm_peft_tensor t;
    int i = medvlm_peft_tensor_find(p, dst);
    const struct medvlm_tensor_info *x = medvlm_st_find(in->st, src);
    if (i < 0) return mv_err(MEDVLM_ERR_INTERNAL, "no fine-tuning tensor %s", dst);
    medvlm_peft_tensor_at(p, i, &t);
    if (!x || x->dtype != MEDVLM_DTYPE_F32 || x->nbytes != t.numel * sizeof(float))
        return mv_err(MEDVLM_ERR_SHAPE, "peft_inputs: %s must be F32 with %zu values", src,
                      t.numel);
    memcpy(t.data, x->data, x->nbytes);
    return MEDVLM_OK;
}

/* "vision_model.encoder.layers.L.self_attn.q_proj.lora_A.weight" <-> "layers.L.q_proj.A" */
static void lora_names(int l, const char *mod, int ab, char *ours, size_t n1, char *ref, size_t n2)
{
    snprintf(ours, n1, "vision_model.encoder.layers.%d.self_attn.%s.lora_%c.weight", l, mod,
             ab ? 'B' : 'A');
    snprintf(ref, n2, "layers.%d.%s.%c", l, mod, ab ? 'B' : 'A');
}

static const char *const qkv[3] = {"q_proj", "k_proj", "v_proj"};

/* Write every fine-tuning tensor (grad: its gradient) as "<prefix>.<name>", LoRA tensors
 * under the reference's short names ("layers.0.q_proj.A"). */
static enum medvlm_status add_all(struct medvlm_st_writer *w, const struct medvlm_peft *p,
                                  const char *prefix, int grad)
{
    char name[256], ours[160], ref[96];
    for (int i = 0; i < medvlm_peft_tensor_count(p); i++) {
        struct medvlm_peft_tensor t;
        medvlm_peft_tensor_at(p, i, &t);
        const struct mv_peft_row *r = &p->rows[i];
        if (r->layer >= 0)
            lora_names(r->layer, mv_lora_module(r->target), r->ab, ours, sizeof ours, ref,
                       sizeof ref);
        snprintf(name, sizeof name, "%s.%s", prefix, r->layer >= 0 ? ref : t.name);
        enum medvlm_status s = medvlm_st_writer_add(w, name, MEDVLM_DTYPE_F32, t.ndim, t.shape,
                                                    grad ? t.grad : t.data);
        if (s) return s;
    }
    return MEDVLM_OK;
}

static enum medvlm_status make_state(struct golden_ctx *g, const struct peft_inputs *in,
                                     enum medvlm_peft_mode mode, struct medvlm_peft **out)
{
    struct medvlm_model *m;
    enum medvlm_status s = golden_model(g, &m);
    if (s) return s;
    struct medvlm_peft_options o;
    medvlm_peft_options_default(&o);
    o.mode = mode;
    o.lora_rank = in->rank;
    o.lora_alpha = (float)in->rank; /* the reference adds B (A x) unscaled */
    o.lr = in->lr;
    o.max_batch = in->n;
    if (in->D != m->cfg.projection_dim)
        return mv_err(MEDVLM_ERR_SHAPE, "peft_inputs: head_init has %d columns, the model %d",
                      in->D, m->cfg.projection_dim);
    return medvlm_peft_init(m, &o, in->head, in->K, out);
}

/* Write name = the data (or gradient) of fine-tuning tensor i. */
static enum medvlm_status add_tensor(struct medvlm_st_writer *w, const char *name,
                                     const struct medvlm_peft_tensor *t, int grad)
{
    return medvlm_st_writer_add(w, name, MEDVLM_DTYPE_F32, t->ndim, t->shape,
                                grad ? t->grad : t->data);
}

static enum medvlm_status add_forward(struct medvlm_st_writer *w, const char *prefix,
                                      const struct medvlm_peft *p, int n, float loss)
{
    char name[128];
    enum medvlm_status s;
    snprintf(name, sizeof name, "%s.features", prefix);
    if ((s = medvlm_st_writer_add(w, name, MEDVLM_DTYPE_F32, 2, (int64_t[]){n, p->D},
                                  p->ws.saved.feats)))
        return s;
    snprintf(name, sizeof name, "%s.logits", prefix);
    if ((s = medvlm_st_writer_add(w, name, MEDVLM_DTYPE_F32, 2, (int64_t[]){n, p->K}, p->logits)))
        return s;
    snprintf(name, sizeof name, "%s.loss", prefix);
    return medvlm_st_writer_add(w, name, MEDVLM_DTYPE_F32, 0, NULL, &loss);
}

enum medvlm_status golden_stage_peft_grads(struct golden_ctx *g)
{
    struct peft_inputs in;
    struct medvlm_peft *p = NULL;
    struct medvlm_st_writer *w = NULL;
    float loss;
    char name[256], ours[160], ref[96];
    enum medvlm_status s = load_inputs(g, &in);
    if (s || (s = medvlm_st_writer_init(&w))) goto done;
    /* plain: every vision tensor trained, so every LayerNorm and bias gradient is computed */
    if ((s = make_state(g, &in, MEDVLM_PEFT_FULL, &p))) goto done;
    if ((s = medvlm_peft_backward(p, in.pixels, in.labels, in.n, &loss))) goto done;
    if ((s = add_forward(w, "plain", p, in.n, loss))) goto done;
    for (int i = 0; i < medvlm_peft_tensor_count(p); i++) {
        struct medvlm_peft_tensor t;
        medvlm_peft_tensor_at(p, i, &t);
        int head = strcmp(t.name, "head.prototypes") == 0;
        if (!head && !strstr(t.name, "bias") && !strstr(t.name, "layer_norm") &&
            !strstr(t.name, "layrnorm") && !strstr(t.name, "post_layernorm"))
            continue;
        snprintf(name, sizeof name, "plain.grad.%s", t.name);
        if ((s = add_tensor(w, name, &t, 1))) goto done;
    }
    medvlm_peft_free(p);
    p = NULL;
    /* lora: A and B (non-zero) from the inputs, on q, k, v of every layer */
    if ((s = make_state(g, &in, MEDVLM_PEFT_LORA, &p))) goto done;
    for (int l = 0; l < p->tower.cfg.num_hidden_layers; l++)
        for (int j = 0; j < 3; j++)
            for (int ab = 0; ab < 2; ab++) {
                lora_names(l, qkv[j], ab, ours, sizeof ours, ref, sizeof ref);
                snprintf(name, sizeof name, "lora.%s", ref);
                if ((s = set_tensor(p, &in, ours, name))) goto done;
            }
    if ((s = medvlm_peft_backward(p, in.pixels, in.labels, in.n, &loss))) goto done;
    if ((s = add_forward(w, "lora", p, in.n, loss)) || (s = add_all(w, p, "lora.grad", 1)))
        goto done;
    s = golden_save(g, w, "peft_grads.safetensors");
done:
    medvlm_peft_free(p);
    medvlm_st_writer_free(w);
    free_inputs(&in);
    return s;
}

enum medvlm_status golden_stage_peft_train(struct golden_ctx *g)
{
    struct peft_inputs in;
    struct medvlm_st_writer *w = NULL;
    struct medvlm_peft *p = NULL;
    float *losses = NULL, *logits = NULL;
    char name[256], ours[160], ref[96];
    const enum medvlm_peft_mode modes[3] = {MEDVLM_PEFT_LN, MEDVLM_PEFT_BIAS, MEDVLM_PEFT_LORA};
    enum medvlm_status s = load_inputs(g, &in);
    if (s || (s = medvlm_st_writer_init(&w))) goto done;
    losses = mv_calloc((size_t)in.steps, sizeof(float));
    logits = mv_calloc((size_t)in.n * in.K, sizeof(float));
    if (!losses || !logits) {
        s = MEDVLM_ERR_NOMEM;
        goto done;
    }
    for (int mi = 0; mi < 3; mi++) {
        const char *mode = medvlm_peft_mode_name(modes[mi]);
        if ((s = make_state(g, &in, modes[mi], &p))) goto done;
        if (modes[mi] == MEDVLM_PEFT_LORA)
            for (int l = 0; l < p->tower.cfg.num_hidden_layers; l++)
                for (int j = 0; j < 3; j++) {
                    lora_names(l, qkv[j], 0, ours, sizeof ours, ref, sizeof ref);
                    snprintf(name, sizeof name, "lora_train.%s", ref);
                    if ((s = set_tensor(p, &in, ours, name))) goto done;
                }
        for (int t = 0; t < in.steps; t++)
            if ((s = medvlm_peft_step(p, in.pixels, in.labels, in.n, &losses[t]))) goto done;
        snprintf(name, sizeof name, "%s.losses", mode);
        if ((s = medvlm_st_writer_add(w, name, MEDVLM_DTYPE_F32, 1, (int64_t[]){in.steps}, losses)))
            goto done;
        if ((s = medvlm_peft_logits(p, in.pixels, in.n, NULL, logits, NULL))) goto done;
        snprintf(name, sizeof name, "%s.final_logits", mode);
        if ((s = medvlm_st_writer_add(w, name, MEDVLM_DTYPE_F32, 2, (int64_t[]){in.n, in.K},
                                      logits)))
            goto done;
        snprintf(name, sizeof name, "%s.final", mode);
        if ((s = add_all(w, p, name, 0))) goto done;
        medvlm_peft_free(p);
        p = NULL;
    }
    s = golden_save(g, w, "peft_train.safetensors");
done:
    medvlm_peft_free(p);
    medvlm_st_writer_free(w);
    mv_free(losses);
    mv_free(logits);
    free_inputs(&in);
    return s;
}

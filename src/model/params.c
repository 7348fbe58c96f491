/*
 * params.c - the parameter table: the one descriptor list (HF name, tower, shape, slot) that
 * loading, saving, parameter counts, `medvlm info` and PEFT selection are driven by.
 */
#include "model.h"

#include <stdio.h>
#include <string.h>

struct table_builder {
    struct medvlm_model *m;
    int n, cap;
    enum medvlm_status st;
};

static void add(struct table_builder *tb, enum medvlm_tower tower, const float **slot, int ndim,
                const int64_t *shape, const char *fmt, ...) MV_PRINTF(6, 7);

static void add(struct table_builder *tb, enum medvlm_tower tower, const float **slot, int ndim,
                const int64_t *shape, const char *fmt, ...)
{
    if (tb->st) return;
    struct medvlm_model *m = tb->m;
    if (tb->n == tb->cap) {
        int cap = tb->cap ? 2 * tb->cap : 64;
        struct medvlm_param_info *p = mv_realloc(m->params, (size_t)cap * sizeof *p);
        if (!p) {
            tb->st = MEDVLM_ERR_NOMEM;
            return;
        }
        m->params = p;
        const float ***s = mv_realloc(m->slots, (size_t)cap * sizeof *s);
        if (!s) {
            tb->st = MEDVLM_ERR_NOMEM;
            return;
        }
        m->slots = s;
        tb->cap = cap;
    }
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    struct medvlm_param_info *p = &m->params[tb->n];
    memset(p, 0, sizeof *p);
    p->name = mv_arena_strdup(&m->names, name);
    if (!p->name) {
        tb->st = MEDVLM_ERR_NOMEM;
        return;
    }
    p->tower = tower;
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->numel *= (size_t)shape[i];
    }
    p->file_dtype = MEDVLM_DTYPE_F32;
    m->slots[tb->n] = slot;
    tb->n++;
}

#define SHAPE(...)                ((const int64_t[]){__VA_ARGS__})
#define ADD1(tw, slot, a, ...)    add(&tb, tw, slot, 1, SHAPE(a), __VA_ARGS__)
#define ADD2(tw, slot, a, b, ...) add(&tb, tw, slot, 2, SHAPE(a, b), __VA_ARGS__)

static void add_layers(struct table_builder *tb0, struct mv_tower *t, enum medvlm_tower tw,
                       const char *prefix)
{
    struct table_builder tb = *tb0;
    const int C = t->cfg.hidden_size, I = t->cfg.intermediate_size;
    /* Hugging Face's names of mv_layer_linear's views, in its order */
    static const char *const names[MV_LAYER_LINEARS] = {"self_attn.q_proj", "self_attn.k_proj",
                                                        "self_attn.v_proj", "self_attn.out_proj",
                                                        "mlp.fc1",          "mlp.fc2"};
    for (int l = 0; l < t->cfg.num_hidden_layers; l++) {
        struct mv_layer *L = &t->layers[l];
        for (int i = 0; i < MV_LAYER_LINEARS; i++) {
            if (i == 0) {
                ADD1(tw, &L->ln1.w, C, "%s.encoder.layers.%d.layer_norm1.weight", prefix, l);
                ADD1(tw, &L->ln1.b, C, "%s.encoder.layers.%d.layer_norm1.bias", prefix, l);
            } else if (i == 4) {
                ADD1(tw, &L->ln2.w, C, "%s.encoder.layers.%d.layer_norm2.weight", prefix, l);
                ADD1(tw, &L->ln2.b, C, "%s.encoder.layers.%d.layer_norm2.bias", prefix, l);
            }
            int out, in;
            struct mv_linear *lin = mv_layer_linear(L, i, C, I, &out, &in);
            ADD2(tw, &lin->w, out, in, "%s.encoder.layers.%d.%s.weight", prefix, l, names[i]);
            ADD1(tw, &lin->b, out, "%s.encoder.layers.%d.%s.bias", prefix, l, names[i]);
        }
    }
    *tb0 = tb;
}

enum medvlm_status mv_params_build(struct medvlm_model *m)
{
    struct table_builder tb = {.m = m};
    struct mv_tower *t = &m->text, *v = &m->vision;
    t->cfg = m->cfg.text;
    v->cfg = m->cfg.vision;
    int64_t D = m->cfg.projection_dim;
    int64_t Ct = t->cfg.hidden_size, Cv = v->cfg.hidden_size, P = v->cfg.patch_size;
    int grid = mv_vision_grid(&v->cfg);
    t->n_pos = t->cfg.max_position_embeddings;
    v->n_pos = 1 + grid * grid;
    t->layers = mv_calloc((size_t)t->cfg.num_hidden_layers, sizeof *t->layers);
    v->layers = mv_calloc((size_t)v->cfg.num_hidden_layers, sizeof *v->layers);
    if (!t->layers || !v->layers) return MEDVLM_ERR_NOMEM;

    add(&tb, MEDVLM_TOWER_SHARED, NULL, 0, NULL, "logit_scale");
    ADD2(MEDVLM_TOWER_TEXT, &t->tok_emb, t->cfg.vocab_size, Ct,
         "text_model.embeddings.token_embedding.weight");
    ADD2(MEDVLM_TOWER_TEXT, &t->pos_emb, t->n_pos, Ct,
         "text_model.embeddings.position_embedding.weight");
    add_layers(&tb, t, MEDVLM_TOWER_TEXT, "text_model");
    ADD1(MEDVLM_TOWER_TEXT, &t->final_ln.w, Ct, "text_model.final_layer_norm.weight");
    ADD1(MEDVLM_TOWER_TEXT, &t->final_ln.b, Ct, "text_model.final_layer_norm.bias");
    ADD2(MEDVLM_TOWER_TEXT, &t->proj, D, Ct, "text_projection.weight");

    ADD1(MEDVLM_TOWER_VISION, &v->class_emb, Cv, "vision_model.embeddings.class_embedding");
    add(&tb, MEDVLM_TOWER_VISION, &v->patch_w, 4, SHAPE(Cv, 3, P, P),
        "vision_model.embeddings.patch_embedding.weight");
    ADD2(MEDVLM_TOWER_VISION, &v->pos_emb, v->n_pos, Cv,
         "vision_model.embeddings.position_embedding.weight");
    ADD1(MEDVLM_TOWER_VISION, &v->pre_ln.w, Cv, "vision_model.pre_layrnorm.weight");
    ADD1(MEDVLM_TOWER_VISION, &v->pre_ln.b, Cv, "vision_model.pre_layrnorm.bias");
    add_layers(&tb, v, MEDVLM_TOWER_VISION, "vision_model");
    ADD1(MEDVLM_TOWER_VISION, &v->final_ln.w, Cv, "vision_model.post_layernorm.weight");
    ADD1(MEDVLM_TOWER_VISION, &v->final_ln.b, Cv, "vision_model.post_layernorm.bias");
    ADD2(MEDVLM_TOWER_VISION, &v->proj, D, Cv, "visual_projection.weight");
    m->n_params = tb.n;
    return tb.st;
}

/* ---- a row's slot in a copy of its tower, and its gradient twin ---- */

/* Which tower row i's slot lies in, and where: a layer (*layer >= 0, byte offset *off inside
 * struct mv_layer) or the tower struct itself (*layer = -1, offset inside struct mv_tower). */
static const struct mv_tower *slot_place(const struct medvlm_model *m, int i, int *layer,
                                         size_t *off)
{
    const char *slot = (const char *)m->slots[i];
    const struct mv_tower *towers[2] = {&m->text, &m->vision};
    if (!slot) return NULL;
    for (int k = 0; k < 2; k++) {
        const struct mv_tower *t = towers[k];
        const char *l0 = (const char *)t->layers;
        size_t span = (size_t)t->cfg.num_hidden_layers * sizeof(struct mv_layer);
        if (l0 && slot >= l0 && slot < l0 + span) {
            *layer = (int)((size_t)(slot - l0) / sizeof(struct mv_layer));
            *off = (size_t)(slot - l0) % sizeof(struct mv_layer);
            return t;
        }
        if (slot >= (const char *)t && slot < (const char *)(t + 1)) {
            *layer = -1;
            *off = (size_t)(slot - (const char *)t);
            return t;
        }
    }
    return NULL;
}

const float **mv_param_view_slot(const struct medvlm_model *m, int i, struct mv_tower *copy)
{
    int layer;
    size_t off;
    const struct mv_tower *t = slot_place(m, i, &layer, &off);
    if (!t || t->cfg.hidden_size != copy->cfg.hidden_size ||
        (copy->layers == t->layers && layer >= 0))
        return NULL;
    if ((t == &m->vision) != (m->params[i].tower == MEDVLM_TOWER_VISION)) return NULL;
    char *base = layer >= 0 ? (char *)&copy->layers[layer] : (char *)copy;
    return (const float **)(void *)(base + off);
}

float **mv_param_grad_slot(const struct medvlm_model *m, int i, struct mv_tower_grad *g)
{
    int layer;
    size_t off;
    const struct mv_tower *t = slot_place(m, i, &layer, &off);
    if (!t) return NULL;
    if (layer >= 0) return (float **)(void *)((char *)&g->layers[layer] + off);
    const char *slot = (const char *)m->slots[i];
    const struct {
        const void *view;
        float **grad;
    } top[] = {
        {&t->pos_emb, &g->pos_emb},       {&t->patch_w, &g->patch_w},
        {&t->class_emb, &g->class_emb},   {&t->pre_ln.w, &g->pre_ln.w},
        {&t->pre_ln.b, &g->pre_ln.b},     {&t->final_ln.w, &g->final_ln.w},
        {&t->final_ln.b, &g->final_ln.b}, {&t->proj, &g->proj},
    };
    for (size_t k = 0; k < MV_ARRAY_LEN(top); k++)
        if (slot == (const char *)top[k].view) return top[k].grad;
    return NULL; /* the text tower's token embedding */
}

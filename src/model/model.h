/*
 * model.h - the CLIP model in memory: config, the parameter table, and typed views of every
 * weight. The model is immutable after load and may be shared by threads; per-call
 * activations live elsewhere (src/model/vit.c, text.c).
 */
#ifndef MEDVLM_MODEL_H
#define MEDVLM_MODEL_H

#include "../core/core.h"

struct mv_linear {
    const float *w; /* (out, in): y = x w^T + b */
    const float *b; /* (out), NULL for no bias */
    /* LoRA beside it (peft's layout), NULL for none: y += scale * (x lora_a^T) lora_b^T with
     * the tower's lora_rank RK and lora_scale */
    const float *lora_a; /* (RK, in) */
    const float *lora_b; /* (out, RK) */
    /* Inference copies of w made once by medvlm_model_prepare (pack.c), NULL when absent:
     * w_packed in the fp32 kernel's panels (mv_gemm_pack_weight), read instead of w (which
     * stays valid); w_bf16 in bf16 panels (mv_bf16_weight_pack), used in its place when the
     * model runs bf16. Fine-tuning at bf16 precision sets w_bf16 and w_bf16t (W^T in bf16
     * panels, the input gradient's weight) on its training copy of the tower (peft.c). */
    const float *w_packed;
    const struct mv_bf16_weight *w_bf16;
    const struct mv_bf16_weight *w_bf16t;
};

struct mv_norm {
    const float *w; /* (C) */
    const float *b; /* (C) */
};

struct mv_layer {
    struct mv_norm ln1, ln2;
    struct mv_linear q, k, v, o; /* (C, C) each */
    struct mv_linear fc1;        /* (I, C) */
    struct mv_linear fc2;        /* (C, I) */
};

/* Gradients of a layer's parameters: the twins of the views above, member for member (the
 * parameter table maps a view to its gradient by offset, see mv_param_grad_slot). NULL for a
 * frozen parameter: its backward then skips that weight-gradient product. */
struct mv_linear_grad {
    float *w, *b, *lora_a, *lora_b;
    void *no_grad[3]; /* the twins of the inference and bf16 copies, which have no gradient */
};
struct mv_norm_grad {
    float *w, *b;
};
struct mv_layer_grad {
    struct mv_norm_grad ln1, ln2;
    struct mv_linear_grad q, k, v, o, fc1, fc2;
};
_Static_assert(sizeof(struct mv_layer_grad) == sizeof(struct mv_layer) &&
                   sizeof(struct mv_linear_grad) == sizeof(struct mv_linear),
               "gradient views must mirror the parameter views member for member");

/* One tower. Text uses tok_emb/pos_emb/final_ln; vision uses patch_w/class_emb/pos_emb/
 * pre_ln/final_ln (= HF post_layernorm). */
struct mv_tower {
    struct medvlm_tower_config cfg;
    int loaded;
    int n_pos;              /* rows of pos_emb: max_position_embeddings, or 1 + (S/P)^2 */
    const float *tok_emb;   /* (V, C) text */
    const float *pos_emb;   /* (n_pos, C) */
    const float *patch_w;   /* (C, 3, P, P) vision */
    const float *class_emb; /* (C) vision */
    struct mv_norm pre_ln;  /* vision */
    struct mv_layer *layers;
    struct mv_norm final_ln;
    const float *proj; /* (D, C) */
    int lora_rank;     /* RK of the layers' LoRA views (0: none) */
    float lora_scale;  /* peft's lora_alpha / RK */
};

/* Gradients of a vision tower (NULL where frozen); layers (L). */
struct mv_tower_grad {
    float *pos_emb, *patch_w, *class_emb;
    struct mv_norm_grad pre_ln;
    struct mv_layer_grad *layers;
    struct mv_norm_grad final_ln;
    float *proj;
};

struct medvlm_model {
    struct medvlm_config cfg;
    struct medvlm_preproc_config pp;
    struct mv_tower text, vision;
    float logit_scale; /* raw parameter; the logit multiplier is expf(logit_scale) */
    char *dir;
    char fingerprint[17]; /* medvlm_model_fingerprint, "" for a model made in memory */
    char *run;            /* the fine-tuning run folder applied to the base weights, or NULL */
    struct medvlm_st *st; /* mapped weights file, or NULL for a model made in memory */
    struct medvlm_param_info *params;
    const float ***slots; /* slots[i]: the tower-view pointer that params[i].data feeds */
    int n_params;
    float *owned; /* one buffer: random weights, or F16/BF16 converted to F32 */
    /* medvlm_model_prepare's copies (pack.c): the linear layers' fp32 panels in one buffer,
     * or their bf16 panels (n_bf16 of them); precision the encoders run */
    float *packed;
    float *small; /* the layers' biases and LayerNorm parameters, copied (pack.c) */
    struct mv_bf16_weight *bf16;
    int n_bf16;
    enum medvlm_precision precision;
    struct mv_arena names;
};

/* Build the parameter table of cfg: every HF tensor name with its shape and the slot in m
 * that points at its data. Loading, saving, counting and PEFT selection all use it. */
enum medvlm_status mv_params_build(struct medvlm_model *m);

/* Row i of the parameter table as a view of `copy`, a copy of one of m's towers (its layers
 * array its own): the slot that row feeds there, and in `g` the gradient slot twin of it.
 * NULL for a row of the other tower (and for logit_scale). */
const float **mv_param_view_slot(const struct medvlm_model *m, int i, struct mv_tower *copy);
float **mv_param_grad_slot(const struct medvlm_model *m, int i, struct mv_tower_grad *g);

/* A new model with base's config and views pointing at base's weights (which must outlive
 * it): the start of a fine-tuned model whose changed tensors the caller then points
 * elsewhere (src/peft/apply.c). */
enum medvlm_status mv_model_derive(const struct medvlm_model *base, struct medvlm_model **out);

/* medvlm_model_init_random for the towers in flags (MEDVLM_LOAD_*) only; the others stay
 * unloaded and cost no memory. flags == MEDVLM_LOAD_ALL draws the same weights as
 * medvlm_model_init_random; one tower alone draws a different stream. */
enum medvlm_status mv_model_init_random_towers(const struct medvlm_config *cfg, uint64_t seed,
                                               unsigned flags, struct medvlm_model **out);

/* Why medvlm_precision_resolve(MEDVLM_PRECISION_AUTO) gives what it gives on this CPU: one
 * static phrase from the same rule (pack.c), for `medvlm info`. */
const char *mv_precision_auto_reason(void);

/* Linear view i (0..MV_LAYER_LINEARS-1, struct mv_layer's order: q, k, v, out_proj, fc1, fc2)
 * of layer L, with its (out, in) sizes for width C and MLP width I: the parameter table
 * (params.c) and the inference copies (pack.c) walk the same list. */
#define MV_LAYER_LINEARS 6
static inline struct mv_linear *mv_layer_linear(struct mv_layer *L, int i, int C, int I, int *out,
                                                int *in)
{
    struct mv_linear *v[MV_LAYER_LINEARS] = {&L->q, &L->k, &L->v, &L->o, &L->fc1, &L->fc2};
    *out = i == 4 ? I : C;
    *in = i == 5 ? I : C;
    return v[i];
}

/* Free medvlm_model_prepare's copies (pack.c); medvlm_model_free calls it. */
void mv_model_prepared_free(struct medvlm_model *m);

/* Number of vision patches per side and in all: S / P, (S / P)^2. */
static inline int mv_vision_grid(const struct medvlm_tower_config *v)
{
    return v->image_size / v->patch_size;
}

#endif

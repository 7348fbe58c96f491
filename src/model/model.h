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
};

struct medvlm_model {
    struct medvlm_config cfg;
    struct medvlm_preproc_config pp;
    struct mv_tower text, vision;
    float logit_scale; /* raw parameter; the logit multiplier is expf(logit_scale) */
    char *dir;
    char fingerprint[17]; /* medvlm_model_fingerprint, "" for a model made in memory */
    struct medvlm_st *st; /* mapped weights file, or NULL for a model made in memory */
    struct medvlm_param_info *params;
    const float ***slots; /* slots[i]: the tower-view pointer that params[i].data feeds */
    int n_params;
    float *owned; /* one buffer: random weights, or F16/BF16 converted to F32 */
    struct mv_arena names;
};

/* Build the parameter table of cfg: every HF tensor name with its shape and the slot in m
 * that points at its data. Loading, saving, counting and PEFT selection all use it. */
enum medvlm_status mv_params_build(struct medvlm_model *m);

/* medvlm_model_init_random for the towers in flags (MEDVLM_LOAD_*) only; the others stay
 * unloaded and cost no memory. flags == MEDVLM_LOAD_ALL draws the same weights as
 * medvlm_model_init_random; one tower alone draws a different stream. */
enum medvlm_status mv_model_init_random_towers(const struct medvlm_config *cfg, uint64_t seed,
                                               unsigned flags, struct medvlm_model **out);

/* Number of vision patches per side and in all: S / P, (S / P)^2. */
static inline int mv_vision_grid(const struct medvlm_tower_config *v)
{
    return v->image_size / v->patch_size;
}

#endif

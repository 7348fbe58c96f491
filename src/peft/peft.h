/*
 * peft.h - fine-tuning state (struct medvlm_peft): one buffer of trained tensors, one of
 * their gradients and one optimiser state span, all laid out by the rows of the model's
 * parameter table that the mode selects (plus LoRA pairs and the head); a training copy of
 * the vision tower whose trained views point into the buffer; the training workspace.
 *
 * Glossary: B images, K classes, D embedding dim, C width, L layers, RK LoRA rank.
 */
#ifndef MEDVLM_PEFT_H
#define MEDVLM_PEFT_H

#include "../model/encoder.h"
#include "../optim/optim.h"

/* One trained tensor: where it lives in the buffers and where it came from. */
struct mv_peft_row {
    const char *name; /* Hugging Face / peft name, "head.prototypes" */
    int ndim;
    int64_t shape[4];
    size_t off, numel; /* into params / grads */
    int param;         /* row of the model's parameter table, -1 for LoRA and the head */
    int layer, target; /* LoRA: layer and enum mv_lora_target; which of A (0) / B (1) in `ab` */
    int ab;
};

struct medvlm_peft {
    const struct medvlm_model *m;
    struct medvlm_peft_options o;
    struct mv_tower tower;     /* training copy of m->vision; trained views -> params */
    struct mv_tower_grad grad; /* gradient views -> grads (NULL: frozen) */
    struct mv_peft_row *rows;
    int n_rows;
    struct mv_arena names;
    float *params, *grads; /* (n) each */
    size_t n;
    float *protos, *dprotos; /* (K, D) views of the head row */
    int K, D;
    float scale;    /* exp(logit_scale) */
    int stop_layer; /* the lowest layer the backward visits (L: the encoder is frozen) */
    int encoder_trained;
    struct mv_optim opt;
    struct mv_train_ws ws;
    /* bf16 precision: the training tower's linear weights in bf16 panels, two per view (W for
     * the forward, W^T for the input gradient), (n_bf16); NULL at fp32 */
    struct mv_bf16_weight *bf16;
    int n_bf16;
    float *small; /* bf16: the layers' frozen biases and LayerNorm parameters, copied */
    /* the head's scratch, (K, D) / (K) / (B, K) / (B, D) */
    float *pn, *pnorm, *dpn, *logits, *dlogits, *dfeats;
};

/* One optimiser update of every trained tensor from the gradients now in p->grads (what
 * medvlm_peft_step does after the backward; a data-parallel step sums the ranks' gradients
 * into p->grads first). */
void mv_peft_update(struct medvlm_peft *p);
/* After the trained tensors changed (update, restore, state load): at bf16 precision the
 * bf16 panels of trained weights (full mode) are converted again from the fp32 values. */
void mv_peft_sync(struct medvlm_peft *p);

/* The LoRA module names of peft (q_proj, ..., fc2) and their parent (self_attn / mlp). */
const char *mv_lora_module(int target);
const char *mv_lora_parent(int target);

#endif

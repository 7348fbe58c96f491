/*
 * encoder.h - the forward pass of the two towers (vit.c, text.c) over a per-encoder
 * workspace (encoder.c), and the transformer layer they share.
 *
 * Glossary: B batch, N tokens per sequence, R rows (sum of tokens), C width, I MLP width,
 * NH heads, HS head size, L layers, D embedding dim, G patches per image, P patch, S image.
 */
#ifndef MEDVLM_ENCODER_H
#define MEDVLM_ENCODER_H

#include "../ops/ops.h"
#include "model.h"

/* Activations of one pass, views into the encoder's one buffer. */
struct mv_acts {
    float *x;             // (R, C) residual stream
    float *h;             // (R, C) LayerNorm output; vision: patch-embedding GEMM output
    float *q, *k, *v;     // (R, C)
    float *a;             // (R, C) attention output (heads concatenated)
    float *f;             // (R, I) MLP hidden; vision: im2col patches (B*G, 3*P*P)
    float *att;           // (NH * sum N_b^2) attention probabilities
    float *pooled;        // (B, C)
    float *unnorm;        // (B, D)
    float *u;             // (R, RK) LoRA x A^T (towers with LoRA views only)
    int *off, *len, *eos; // (B) row spans of the sequences, EOS positions (text)
    int *keep;            // (B) the pooled rows (inference; NULL in training)
};

/* LoRA targets of a layer, in the order of struct mv_layer's linear views. */
enum mv_lora_target {
    MV_LORA_Q,
    MV_LORA_K,
    MV_LORA_V,
    MV_LORA_O,
    MV_LORA_FC1,
    MV_LORA_FC2,
    MV_LORA_N
};

/* What one layer's backward needs, written by its training forward (views into the training
 * workspace, one set per layer). LayerNorm outputs and the MLP activation are not kept: the
 * backward recomputes them from x_in / x_mid (the same bits as the forward) and from f. */
struct mv_layer_saved {
    float *x_in;          // (R, C) the layer's input (LN1's input)
    float *mean1, *rstd1; // (R) LN1 statistics
    float *q, *k, *v;     // (R, C) q already scaled by HS^-0.5
    float *att;           // (NH * sum N_b^2) attention probabilities
    float *a;             // (R, C) attention output (out_proj's input)
    float *x_mid;         // (R, C) residual after the attention branch (LN2's input)
    float *mean2, *rstd2; // (R) LN2 statistics
    float *f;             // (R, I) fc1 output before the activation
    float *u[MV_LORA_N];  // (R, RK) x A^T of each LoRA view, NULL where none
};

/* Scratch of the backward pass, shared by all layers. */
struct mv_layer_scratch {
    float *h;            // (R, C) a LayerNorm output, recomputed
    float *dh, *da;      // (R, C)
    float *dq, *dk, *dv; // (R, C)
    float *g, *dg, *df;  // (R, I) activation output (recomputed) and gradients
    float *datt;         // (NH * sum N_b^2)
    float *du;           // (R, RK)
};

struct medvlm_encoder {
    const struct medvlm_model *m;
    int max_batch;
    float *buf; /* one allocation holding every float view */
    struct mv_acts acts;
    int *ibuf;
};

/* Where one chunk of a caller's batch goes: rows b0.. of outputs with Btot rows in all. */
struct mv_out_chunk {
    const struct medvlm_encode_out *o;
    int b0, Btot;
};

/* One pre-LN transformer layer in place on acts->x (R rows, sequences s) of tower t (its
 * config and LoRA rank/scale). sv NULL: inference, acts' scratch holds q, k, v, att, a, f;
 * otherwise the training forward writes them (and the layer's input, the residual after the
 * attention branch, the LayerNorm statistics, the LoRA products) into sv. */
void mv_layer_forward(struct mv_acts *a, struct mv_layer_saved *sv, const struct mv_layer *L,
                      const struct mv_tower *t, const struct mv_seqs *s, int R);
/* The layer when only the P rows keep[] of its output are wanted (a tower's last layer,
 * pooled at one row per sequence): the attention runs on every row (its keys and values),
 * out_proj, LN2 and the MLP on the kept rows only, which get the bits they get in
 * mv_layer_forward (the products run the kernel of the R-row product; see
 * mv_linear_forward_act_as). The other rows of x are left as they were (no longer the
 * layer's output). Training (sv) keeps x_mid, LN2's statistics and f for the kept rows only,
 * in their first P rows, for mv_layer_backward_kept. A layer that is not mv_layer_keepable
 * (LoRA on out_proj, fc1 or fc2, whose thin products route by their own rows) runs whole. */
int mv_layer_keepable(const struct mv_layer *L);
void mv_layer_forward_kept(struct mv_acts *a, struct mv_layer_saved *sv, const struct mv_layer *L,
                           const struct mv_tower *t, const struct mv_seqs *s, int R,
                           const int *keep, int P);
/* Its backward: dx (R, C) holds d loss / d (layer output) and is turned in place into
 * d loss / d (layer input) (need_dx 0: nothing below is trained, and dx is left partial);
 * parameter gradients accumulate into G (NULL members: frozen). */
void mv_layer_backward(float *dx, int need_dx, struct mv_layer_grad *G, struct mv_layer_scratch *ws,
                       const struct mv_layer_saved *sv, const struct mv_layer *L,
                       const struct mv_tower *t, const struct mv_seqs *s, int R);
/* The backward of mv_layer_forward_kept (the same keep[], P): dx must be 0 outside the kept
 * rows (the gradient of pooled rows); the MLP and out_proj backward run on the kept rows. */
void mv_layer_backward_kept(float *dx, int need_dx, struct mv_layer_grad *G,
                            struct mv_layer_scratch *ws, const struct mv_layer_saved *sv,
                            const struct mv_layer *L, const struct mv_tower *t,
                            const struct mv_seqs *s, int R, const int *keep, int P);

/* Copy the residual stream into hidden_states[l] for the chunk (full layout: every sequence
 * N rows). */
void mv_capture_hidden(const struct mv_acts *a, const struct mv_out_chunk *oc, int l, int B, int N,
                       int C);

/* Projection + l2-normalisation of acts->pooled into the chunk's outputs. */
void mv_project_outputs(struct mv_acts *a, const struct mv_out_chunk *oc, const float *proj, int B,
                        int C, int D);

/* What the ViT's backward needs beyond the layers' saved state (training workspace views). */
struct mv_vit_saved {
    float *x_emb;                  // (R, C) embeddings before pre_layrnorm
    float *mean0, *rstd0;          // (R) pre_layrnorm statistics
    struct mv_layer_saved *layers; // (L)
    float *x_cls;                  // (B, C) class-token rows of the last layer's output
    float *meanf, *rstdf;          // (B) post_layernorm statistics
    float *pooled;                 // (B, C) post_layernorm output
    float *feats;                  // (B, D) l2-normalised image embeddings: the pass's result
    float *fnorm;                  // (B) their norms before normalisation
};

/* Scratch of the ViT's backward. */
struct mv_vit_scratch {
    float *dx;                     // (R, C) gradient of the residual stream
    float *dunnorm;                // (B, D)
    float *dpooled, *dcls;         // (B, C)
    struct mv_layer_scratch layer; // shared by the layers
};

/* The training workspace (train_ws.c): forward scratch, saved state, backward scratch, one
 * allocation sized for max_batch images of tower t (its LoRA views decide the u buffers). */
struct mv_train_ws {
    int max_batch;
    float *buf;
    size_t bytes;
    int *ibuf;
    struct mv_acts acts; /* x, h, f, unnorm, off, len only */
    struct mv_vit_saved saved;
    struct mv_vit_scratch scratch;
};
enum medvlm_status mv_train_ws_init(struct mv_train_ws *w, const struct mv_tower *t, int D,
                                    int max_batch);
void mv_train_ws_free(struct mv_train_ws *w);

/* The ViT forward for training over tower t (a training copy of the model's vision tower):
 * acts' scratch for what is not kept, sv for what is; sv->feats receives the embeddings. */
void mv_vit_forward_train(struct mv_acts *a, struct mv_vit_saved *sv, const struct mv_tower *t,
                          int D, const float *pixels, int B);
/* Its backward from dfeats (B, D) = d loss / d feats: gradients accumulate into G (NULL
 * members frozen). Layers below stop_layer are not visited (nothing there is trained and no
 * input gradient is wanted); stop_layer 0 goes down to the embeddings when G asks for them
 * (pixels are then read again for the patch-embedding gradient). */
void mv_vit_backward(struct mv_tower_grad *G, struct mv_vit_scratch *ws, const float *dfeats,
                     const struct mv_vit_saved *sv, struct mv_acts *a, const struct mv_tower *t,
                     int D, const float *pixels, int B, int stop_layer);

enum medvlm_status mv_vit_forward(struct medvlm_encoder *e, const float *pixels, int B,
                                  const struct mv_out_chunk *oc);
enum medvlm_status mv_text_forward(struct medvlm_encoder *e, const int64_t *ids,
                                   const int64_t *mask, int B, int T,
                                   const struct mv_out_chunk *oc);

#endif

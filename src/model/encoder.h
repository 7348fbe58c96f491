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
    int *off, *len, *eos; // (B) row spans of the sequences, EOS positions (text)
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

/* One pre-LN transformer layer in place on acts->x (R rows, sequences s). */
void mv_layer_forward(struct mv_acts *a, const struct mv_layer *L,
                      const struct medvlm_tower_config *cfg, const struct mv_seqs *s, int R);

/* Copy the residual stream into hidden_states[l] for the chunk (full layout: every sequence
 * N rows). */
void mv_capture_hidden(const struct mv_acts *a, const struct mv_out_chunk *oc, int l, int B, int N,
                       int C);

/* Projection + l2-normalisation of acts->pooled into the chunk's outputs. */
void mv_project_outputs(struct mv_acts *a, const struct mv_out_chunk *oc, const float *proj, int B,
                        int C, int D);

enum medvlm_status mv_vit_forward(struct medvlm_encoder *e, const float *pixels, int B,
                                  const struct mv_out_chunk *oc);
enum medvlm_status mv_text_forward(struct medvlm_encoder *e, const int64_t *ids,
                                   const int64_t *mask, int B, int T,
                                   const struct mv_out_chunk *oc);

#endif

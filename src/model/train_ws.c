/*
 * train_ws.c - the training workspace of the vision tower: everything one training step of B
 * images writes, in one allocation sized before the first step (struct mv_train_ws).
 *
 * What is stored per layer, and why (see docs/finetune.md): the layer's input and the residual
 * after its attention branch (the two LayerNorms' inputs) with their statistics, q, k, v and
 * the attention probabilities (attention's backward), the attention output (out_proj's input),
 * the fc1 output before the activation, and each LoRA view's x A^T. The LayerNorm outputs and
 * the activation output are recomputed in the backward pass from those (a LayerNorm or an
 * activation costs O(R C) against the O(R C^2) GEMMs that read them), so they are not stored.
 *
 * Glossary: B images, N tokens per image, R = B N rows, C width, I MLP width, NH heads,
 * L layers, D embedding dim, RK LoRA rank, G patches per image, P patch size.
 */
#include "encoder.h"

#include <string.h>

static void carve(struct mv_train_ws *w, const struct mv_tower *t, int D, struct mv_carver *c)
{
    const struct medvlm_tower_config *cf = &t->cfg;
    const size_t B = (size_t)w->max_batch, g = (size_t)mv_vision_grid(cf), N = g * g + 1;
    const size_t R = B * N, C = (size_t)cf->hidden_size, I = (size_t)cf->intermediate_size;
    const size_t P = (size_t)cf->patch_size, RK = (size_t)t->lora_rank;
    const size_t att = (size_t)cf->num_attention_heads * B * N * N;
    const int L = cf->num_hidden_layers;
    struct mv_acts *a = &w->acts;
    struct mv_vit_saved *sv = &w->saved;
    struct mv_vit_scratch *ws = &w->scratch;
    // forward scratch: the residual stream, a LayerNorm output, the MLP hidden / patches
    a->x = mv_carve(c, R, C);
    a->h = mv_carve(c, R, C);
    a->f = mv_carve(c, MV_MAX(R * I, B * g * g * 3 * P * P), 1);
    a->unnorm = mv_carve(c, B, (size_t)D);
    // saved for backward
    sv->x_emb = mv_carve(c, R, C);
    sv->mean0 = mv_carve(c, R, 1);
    sv->rstd0 = mv_carve(c, R, 1);
    for (int l = 0; l < L; l++) {
        struct mv_layer_saved *s = &sv->layers[l];
        const struct mv_layer *ly = &t->layers[l];
        const struct mv_linear *lin[MV_LORA_N] = {&ly->q, &ly->k,   &ly->v,
                                                  &ly->o, &ly->fc1, &ly->fc2};
        s->x_in = mv_carve(c, R, C);
        s->mean1 = mv_carve(c, R, 1);
        s->rstd1 = mv_carve(c, R, 1);
        s->q = mv_carve(c, R, C);
        s->k = mv_carve(c, R, C);
        s->v = mv_carve(c, R, C);
        s->att = mv_carve(c, att, 1);
        s->a = mv_carve(c, R, C);
        s->x_mid = mv_carve(c, R, C);
        s->mean2 = mv_carve(c, R, 1);
        s->rstd2 = mv_carve(c, R, 1);
        s->f = mv_carve(c, R, I);
        for (int i = 0; i < MV_LORA_N; i++) s->u[i] = lin[i]->lora_a ? mv_carve(c, R, RK) : NULL;
    }
    sv->x_cls = mv_carve(c, B, C);
    sv->meanf = mv_carve(c, B, 1);
    sv->rstdf = mv_carve(c, B, 1);
    sv->pooled = mv_carve(c, B, C);
    sv->feats = mv_carve(c, B, (size_t)D);
    sv->fnorm = mv_carve(c, B, 1);
    // backward scratch; the recomputed LayerNorm and activation outputs reuse the forward's
    ws->dx = mv_carve(c, R, C);
    ws->dunnorm = mv_carve(c, B, (size_t)D);
    ws->dpooled = mv_carve(c, B, C);
    ws->dcls = mv_carve(c, B, C);
    ws->layer.h = a->h;
    ws->layer.g = a->f;
    ws->layer.dh = mv_carve(c, R, C);
    ws->layer.da = mv_carve(c, MV_MAX(R * C, B * g * g * C), 1); /* also the patch rows' gradient */
    ws->layer.dq = mv_carve(c, R, C);
    ws->layer.dk = mv_carve(c, R, C);
    ws->layer.dv = mv_carve(c, R, C);
    ws->layer.dg = mv_carve(c, R, I);
    ws->layer.df = mv_carve(c, R, I);
    ws->layer.datt = mv_carve(c, att, 1);
    ws->layer.du = RK ? mv_carve(c, R, RK) : NULL;
}

enum medvlm_status mv_train_ws_init(struct mv_train_ws *w, const struct mv_tower *t, int D,
                                    int max_batch)
{
    memset(w, 0, sizeof *w);
    if (max_batch < 1 || max_batch > (1 << 16))
        return mv_err(MEDVLM_ERR_ARG, "training workspace: batch %d (expected 1..%d)", max_batch,
                      1 << 16);
    w->max_batch = max_batch;
    int L = t->cfg.num_hidden_layers;
    w->saved.layers = mv_calloc((size_t)L, sizeof *w->saved.layers);
    w->ibuf = mv_calloc(4 * (size_t)max_batch, sizeof(int));
    if (!w->saved.layers || !w->ibuf) {
        mv_train_ws_free(w);
        return MEDVLM_ERR_NOMEM;
    }
    struct mv_carver c = {.ok = true};
    carve(w, t, D, &c);
    size_t bytes;
    if (!c.ok || !mv_mul_ok(c.used, sizeof(float), &bytes)) {
        mv_train_ws_free(w);
        return mv_err(MEDVLM_ERR_OVERFLOW,
                      "training workspace: the activations of %d images do not fit in memory",
                      max_batch);
    }
    w->buf = mv_aligned_large(bytes);
    if (!w->buf) {
        mv_train_ws_free(w);
        return mv_err_ctx(MEDVLM_ERR_NOMEM,
                          "training workspace: %zu MB of activations for batch %d (try a smaller "
                          "--batch)",
                          bytes >> 20, max_batch);
    }
    w->bytes = bytes;
    c = (struct mv_carver){.base = w->buf, .ok = true};
    carve(w, t, D, &c);
    w->acts.off = w->ibuf;
    w->acts.len = w->ibuf + max_batch;
    w->acts.eos = w->ibuf + 2 * max_batch;
    w->acts.keep = w->ibuf + 3 * max_batch;
    return MEDVLM_OK;
}

void mv_train_ws_free(struct mv_train_ws *w)
{
    if (!w) return;
    mv_free(w->buf);
    mv_free(w->ibuf);
    mv_free(w->saved.layers);
    memset(w, 0, sizeof *w);
}

/*
 * layer.c - what both towers share: the pre-LayerNorm transformer layer, the capture of
 * hidden states, and the projection to the joint embedding space.
 *
 * Glossary: B batch, N tokens per sequence, R rows, C width, I MLP width, NH heads, HS head
 * size, D embedding dim.
 */
#include "encoder.h"

#include <math.h>
#include <string.h>

/* out (R, O) = alpha * (inp lin.w^T + lin.b), plus alpha * scale * (inp A^T) B^T when the view
 * has LoRA (u (R, RK) receives inp A^T). Without LoRA this is exactly the inference GEMM, and
 * with B = 0 the LoRA term adds exact zeros: the base model's bits either way. rr: the rows of
 * the product whose kernel runs (R, or more for a few rows of a larger product: the bits they
 * get in it; mv_linear_forward_act_as). */
static void linear_fwd(float *out, float *u, const float *inp, const struct mv_linear *lin,
                       const struct mv_tower *t, float alpha, int R, int I, int O, int rr)
{
    if (lin->w_bf16)
        mv_linear_forward_bf16(out, inp, lin->w_bf16, lin->w, lin->b, alpha, R, I, O);
    else
        mv_linear_forward_as(out, inp, lin->w, lin->w_packed, lin->b, alpha, R, I, O, rr);
    if (lin->lora_a)
        mv_lora_forward(out, u, inp, lin->lora_a, lin->lora_b, alpha * t->lora_scale, R, I, O,
                        t->lora_rank);
}

/* The residual form: x (R, O) += inp lin.w^T + lin.b (+ LoRA). */
static void linear_residual_fwd(float *x, float *u, const float *inp, const struct mv_linear *lin,
                                const struct mv_tower *t, int R, int I, int O, int rr)
{
    double t0 = mv_prof_begin();
    if (lin->w_bf16)
        mv_linear_residual_forward_bf16(x, inp, lin->w_bf16, lin->w, lin->b, R, I, O);
    else
        mv_linear_residual_forward_as(x, inp, lin->w, lin->w_packed, lin->b, R, I, O, rr);
    if (lin->lora_a)
        mv_lora_forward(x, u, inp, lin->lora_a, lin->lora_b, t->lora_scale, R, I, O, t->lora_rank);
    mv_prof_end(MV_PROF_GEMM, t0);
}

/* Inference's f (R, I) = act(fc1(h)): the activation runs on each finished tile of the
 * product where the weight was packed at load (no LoRA, fp32; the same bits as the pass). */
static void fc1_act(float *f, float *u, const float *h, const struct mv_layer *L,
                    const struct mv_tower *tw, int R, int rr)
{
    const struct medvlm_tower_config *cfg = &tw->cfg;
    const int C = cfg->hidden_size, I = cfg->intermediate_size;
    double t = mv_prof_begin();
    int fused = 0; /* 1: the activation is applied too */
    if (!L->fc1.lora_a && !L->fc1.w_bf16 && L->fc1.w_packed)
        fused = mv_linear_forward_act_as(f, h, L->fc1.w, L->fc1.w_packed, L->fc1.b, 1.0f, R, C, I,
                                         cfg->hidden_act, rr);
    else
        linear_fwd(f, u, h, &L->fc1, tw, 1.0f, R, C, I, rr);
    mv_prof_end(MV_PROF_GEMM, t);
    t = mv_prof_begin();
    if (!fused) mv_act_forward(f, cfg->hidden_act, (size_t)R * (size_t)I);
    mv_prof_end(MV_PROF_ACT, t);
}

/* x (R, C) += out_proj(attention(LN1(x))) up to the attention: ao (R, C) = the heads'
 * outputs (ao and the saved q, k, v, att are sv's in training, a's otherwise). */
static void attention_block(struct mv_acts *a, struct mv_layer_saved *sv, const struct mv_layer *L,
                            const struct mv_tower *tw, const struct mv_seqs *s, int R,
                            float *const *u)
{
    const struct medvlm_tower_config *cfg = &tw->cfg;
    const int C = cfg->hidden_size, NH = cfg->num_attention_heads;
    const int HS = C / NH;
    const float eps = cfg->layer_norm_eps;
    /* HF: q = q_proj(x) * head_dim**-0.5 (a Python double, rounded to float) */
    const float scale = (float)pow((double)HS, -0.5);
    float *q = sv ? sv->q : a->q, *k = sv ? sv->k : a->k, *v = sv ? sv->v : a->v;
    float *att = sv ? sv->att : a->att, *ao = sv ? sv->a : a->a;
    double t = mv_prof_begin();
    mv_layernorm_forward(a->h, sv ? sv->mean1 : NULL, sv ? sv->rstd1 : NULL, a->x, L->ln1.w,
                         L->ln1.b, R, C, eps);
    mv_prof_end(MV_PROF_LAYERNORM, t);
    t = mv_prof_begin();
    linear_fwd(q, u[MV_LORA_Q], a->h, &L->q, tw, scale, R, C, C, R);
    linear_fwd(k, u[MV_LORA_K], a->h, &L->k, tw, 1.0f, R, C, C, R);
    linear_fwd(v, u[MV_LORA_V], a->h, &L->v, tw, 1.0f, R, C, C, R);
    mv_prof_end(MV_PROF_GEMM, t);
    t = mv_prof_begin();
    mv_attention_forward(ao, att, q, k, v, s, NH, HS);
    mv_prof_end(MV_PROF_ATTENTION, t);
}

void mv_layer_forward(struct mv_acts *a, struct mv_layer_saved *sv, const struct mv_layer *L,
                      const struct mv_tower *tw, const struct mv_seqs *s, int R)
{
    const struct medvlm_tower_config *cfg = &tw->cfg;
    const int C = cfg->hidden_size, I = cfg->intermediate_size;
    const float eps = cfg->layer_norm_eps;
    /* training keeps what backward needs; inference reuses one layer's scratch */
    float *ao = sv ? sv->a : a->a, *f = sv ? sv->f : a->f;
    float *u[MV_LORA_N];
    for (int i = 0; i < MV_LORA_N; i++) u[i] = sv ? sv->u[i] : a->u;
    if (sv) memcpy(sv->x_in, a->x, (size_t)R * C * sizeof(float));
    // x (R, C) += out_proj(attention(LN1(x)))
    attention_block(a, sv, L, tw, s, R, u);
    linear_residual_fwd(a->x, u[MV_LORA_O], ao, &L->o, tw, R, C, C, R);
    if (sv) memcpy(sv->x_mid, a->x, (size_t)R * C * sizeof(float));
    // x (R, C) += fc2(act(fc1(LN2(x))))
    double t = mv_prof_begin();
    mv_layernorm_forward(a->h, sv ? sv->mean2 : NULL, sv ? sv->rstd2 : NULL, a->x, L->ln2.w,
                         L->ln2.b, R, C, eps);
    mv_prof_end(MV_PROF_LAYERNORM, t);
    if (sv) { /* training keeps the pre-activation f and feeds fc2 from a copy */
        t = mv_prof_begin();
        linear_fwd(f, u[MV_LORA_FC1], a->h, &L->fc1, tw, 1.0f, R, C, I, R);
        mv_prof_end(MV_PROF_GEMM, t);
        t = mv_prof_begin();
        mv_act_forward_copy(a->f, f, cfg->hidden_act, (size_t)R * (size_t)I);
        mv_prof_end(MV_PROF_ACT, t);
    } else {
        fc1_act(f, u[MV_LORA_FC1], a->h, L, tw, R, R);
    }
    linear_residual_fwd(a->x, u[MV_LORA_FC2], a->f, &L->fc2, tw, R, I, C, R);
}

int mv_layer_keepable(const struct mv_layer *L)
{
    return !L->o.lora_a && !L->fc1.lora_a && !L->fc2.lora_a;
}

void mv_layer_forward_kept(struct mv_acts *a, struct mv_layer_saved *sv, const struct mv_layer *L,
                           const struct mv_tower *tw, const struct mv_seqs *s, int R,
                           const int *keep, int P)
{
    if (!mv_layer_keepable(L) || 2 * P > R) {
        mv_layer_forward(a, sv, L, tw, s, R);
        return;
    }
    const struct medvlm_tower_config *cfg = &tw->cfg;
    const int C = cfg->hidden_size, I = cfg->intermediate_size;
    const float eps = cfg->layer_norm_eps;
    float *u[MV_LORA_N];
    for (int i = 0; i < MV_LORA_N; i++) u[i] = sv ? sv->u[i] : a->u;
    if (sv) memcpy(sv->x_in, a->x, (size_t)R * C * sizeof(float));
    attention_block(a, sv, L, tw, s, R, u);
    /* the kept rows side by side: the attention output in a->h (LN1's output, read by q, k, v
     * only), then LN2 there; x_mid in sv->x_mid's first P rows (training keeps them) or in
     * a->k (inference's scratch, free once the attention ran); the output in place, or in
     * training in sv->x_mid's next P rows (a sequence has at least 2 rows: R >= 2 P); the MLP
     * in sv->f / a->f */
    const float *ao = sv ? sv->a : a->a;
    float *ao_p = a->h, *x_p = sv ? sv->x_mid : a->k, *h_p = a->h;
    float *xo_p = sv ? sv->x_mid + (size_t)P * C : x_p;
    double t = mv_prof_begin();
    for (int i = 0; i < P; i++) {
        memcpy(ao_p + (size_t)i * C, ao + (size_t)keep[i] * C, (size_t)C * sizeof(float));
        memcpy(x_p + (size_t)i * C, a->x + (size_t)keep[i] * C, (size_t)C * sizeof(float));
    }
    mv_prof_end(MV_PROF_OTHER, t);
    linear_residual_fwd(x_p, NULL, ao_p, &L->o, tw, P, C, C, R);
    if (xo_p != x_p) memcpy(xo_p, x_p, (size_t)P * C * sizeof(float));
    t = mv_prof_begin();
    mv_layernorm_forward(h_p, sv ? sv->mean2 : NULL, sv ? sv->rstd2 : NULL, x_p, L->ln2.w, L->ln2.b,
                         P, C, eps);
    mv_prof_end(MV_PROF_LAYERNORM, t);
    if (sv) { /* training keeps the pre-activation */
        t = mv_prof_begin();
        linear_fwd(sv->f, NULL, h_p, &L->fc1, tw, 1.0f, P, C, I, R);
        mv_prof_end(MV_PROF_GEMM, t);
        t = mv_prof_begin();
        mv_act_forward_copy(a->f, sv->f, cfg->hidden_act, (size_t)P * (size_t)I);
        mv_prof_end(MV_PROF_ACT, t);
    } else {
        fc1_act(a->f, NULL, h_p, L, tw, P, R);
    }
    linear_residual_fwd(xo_p, NULL, a->f, &L->fc2, tw, P, I, C, R);
    for (int i = 0; i < P; i++)
        memcpy(a->x + (size_t)keep[i] * C, xo_p + (size_t)i * C, (size_t)C * sizeof(float));
}

/* Backward of linear_fwd: dinp (R, I) += ... (set: dinp = ..., no zeroing needed), the view's
 * gradients into G (NULL: frozen). */
static void linear_bwd(float *dinp, int set, const struct mv_linear_grad *G, float *du,
                       const float *dout, const float *u, const float *inp,
                       const struct mv_linear *lin, const struct mv_tower *t, float alpha, int R,
                       int I, int O)
{
    float *dx = dinp;           /* the input gradient left to the fp32 product */
    if (dinp && lin->w_bf16t) { /* bf16 training: the input gradient's product in bf16 */
        mv_linear_input_grad_bf16(dinp, set, dout, lin->w_bf16t, lin->w, alpha, R, I, O);
        dx = NULL;
    }
    (set ? mv_linear_backward_set : mv_linear_backward)(dx, G ? G->w : NULL, G ? G->b : NULL, dout,
                                                        inp, lin->w, alpha, R, I, O);
    if (lin->lora_a)
        mv_lora_backward(dinp, G ? G->lora_a : NULL, G ? G->lora_b : NULL, du, dout, u, inp,
                         lin->lora_a, lin->lora_b, alpha * t->lora_scale, R, I, O, t->lora_rank);
}

/* Does the backward of this view need its input (for a weight or LoRA gradient)? */
static int needs_input(const struct mv_linear_grad *G, const struct mv_linear *lin)
{
    return (G && G->w) || lin->lora_a;
}

/* The MLP branch and out_proj backward over `rows` rows: dx (rows, C) holds d loss / d x_out
 * and becomes d loss / d x_mid; da (rows, C) = d loss / d (attention output) is written. The
 * saved f, x_mid, mean2, rstd2 and LoRA products hold those rows; ao is out_proj's input. */
static void mlp_out_backward(float *dx, float *da, const float *ao, struct mv_layer_grad *G,
                             struct mv_layer_scratch *ws, const struct mv_layer_saved *sv,
                             const struct mv_layer *L, const struct mv_tower *tw, int rows)
{
    const struct medvlm_tower_config *cfg = &tw->cfg;
    const int C = cfg->hidden_size, I = cfg->intermediate_size;
    const float eps = cfg->layer_norm_eps;
    double t;
    /* The first gradient into each scratch buffer is written (the _set forms, beta = 0 in
     * their GEMMs), the later ones accumulate: no zeroing passes. */
    /* In the forward pass x_out = x_mid + fc2(act(fc1(LN2(x_mid)))): dx passes straight
     * through the residual to x_mid, and the MLP branch adds its part below. */
    t = mv_prof_begin();
    if (needs_input(G ? &G->fc2 : NULL, &L->fc2)) /* fc2's input, recomputed */
        mv_act_forward_copy(ws->g, sv->f, cfg->hidden_act, (size_t)rows * I);
    mv_prof_end(MV_PROF_ACT, t);
    t = mv_prof_begin();
    linear_bwd(ws->dg, 1, G ? &G->fc2 : NULL, ws->du, dx, sv->u[MV_LORA_FC2], ws->g, &L->fc2, tw,
               1.0f, rows, I, C);
    mv_prof_end(MV_PROF_GEMM, t);
    t = mv_prof_begin();
    mv_act_backward_set(ws->df, ws->dg, sv->f, cfg->hidden_act, (size_t)rows * I);
    mv_prof_end(MV_PROF_ACT, t);
    t = mv_prof_begin();
    if (needs_input(G ? &G->fc1 : NULL, &L->fc1)) /* fc1's input LN2(x_mid), recomputed */
        mv_layernorm_forward(ws->h, NULL, NULL, sv->x_mid, L->ln2.w, L->ln2.b, rows, C, eps);
    mv_prof_end(MV_PROF_LAYERNORM, t);
    t = mv_prof_begin();
    linear_bwd(ws->dh, 1, G ? &G->fc1 : NULL, ws->du, ws->df, sv->u[MV_LORA_FC1], ws->h, &L->fc1,
               tw, 1.0f, rows, C, I);
    mv_prof_end(MV_PROF_GEMM, t);
    t = mv_prof_begin();
    mv_layernorm_backward(dx, G ? G->ln2.w : NULL, G ? G->ln2.b : NULL, ws->dh, sv->x_mid,
                          sv->mean2, sv->rstd2, L->ln2.w, rows, C);
    mv_prof_end(MV_PROF_LAYERNORM, t);
    /* dx is now d loss / d x_mid; x_mid = x_in + out_proj(attention(LN1(x_in))) */
    t = mv_prof_begin();
    linear_bwd(da, 1, G ? &G->o : NULL, ws->du, dx, sv->u[MV_LORA_O], ao, &L->o, tw, 1.0f, rows, C,
               C);
    mv_prof_end(MV_PROF_GEMM, t);
}

/* The attention branch backward from ws->da (R, C): dx (R, C) += d loss / d x_in through it
 * (need_dx 0: only the parameters' gradients). */
static void attention_backward(float *dx, int need_dx, struct mv_layer_grad *G,
                               struct mv_layer_scratch *ws, const struct mv_layer_saved *sv,
                               const struct mv_layer *L, const struct mv_tower *tw,
                               const struct mv_seqs *s, int R)
{
    const struct medvlm_tower_config *cfg = &tw->cfg;
    const int C = cfg->hidden_size, NH = cfg->num_attention_heads;
    const int HS = C / NH;
    const float eps = cfg->layer_norm_eps;
    const float scale = (float)pow((double)HS, -0.5);
    double t = mv_prof_begin();
    mv_attention_backward_set(ws->dq, ws->dk, ws->dv, ws->datt, ws->da, sv->att, sv->q, sv->k,
                              sv->v, s, NH, HS);
    mv_prof_end(MV_PROF_ATTENTION, t);
    t = mv_prof_begin();
    if (needs_input(G ? &G->q : NULL, &L->q) || needs_input(G ? &G->k : NULL, &L->k) ||
        needs_input(G ? &G->v : NULL, &L->v)) /* q/k/v's input LN1(x_in), recomputed */
        mv_layernorm_forward(ws->h, NULL, NULL, sv->x_in, L->ln1.w, L->ln1.b, R, C, eps);
    mv_prof_end(MV_PROF_LAYERNORM, t);
    t = mv_prof_begin();
    /* d LN1(x_in) feeds only LN1's parameters and the layer's input gradient: the lowest
     * visited layer with LN1 frozen needs neither (the q/k/v weight and LoRA gradients still
     * come from dq, dk, dv and the recomputed input) */
    float *dh = need_dx || (G && (G->ln1.w || G->ln1.b)) ? ws->dh : NULL;
    /* q was scaled by HS^-0.5 after its projection: the scale multiplies its gradients */
    linear_bwd(dh, 1, G ? &G->q : NULL, ws->du, ws->dq, sv->u[MV_LORA_Q], ws->h, &L->q, tw, scale,
               R, C, C);
    linear_bwd(dh, 0, G ? &G->k : NULL, ws->du, ws->dk, sv->u[MV_LORA_K], ws->h, &L->k, tw, 1.0f, R,
               C, C);
    linear_bwd(dh, 0, G ? &G->v : NULL, ws->du, ws->dv, sv->u[MV_LORA_V], ws->h, &L->v, tw, 1.0f, R,
               C, C);
    mv_prof_end(MV_PROF_GEMM, t);
    t = mv_prof_begin();
    if (dh)
        mv_layernorm_backward(need_dx ? dx : NULL, G ? G->ln1.w : NULL, G ? G->ln1.b : NULL, dh,
                              sv->x_in, sv->mean1, sv->rstd1, L->ln1.w, R, C);
    mv_prof_end(MV_PROF_LAYERNORM, t);
}

void mv_layer_backward(float *dx, int need_dx, struct mv_layer_grad *G, struct mv_layer_scratch *ws,
                       const struct mv_layer_saved *sv, const struct mv_layer *L,
                       const struct mv_tower *tw, const struct mv_seqs *s, int R)
{
    mlp_out_backward(dx, ws->da, sv->a, G, ws, sv, L, tw, R);
    attention_backward(dx, need_dx, G, ws, sv, L, tw, s, R);
}

void mv_layer_backward_kept(float *dx, int need_dx, struct mv_layer_grad *G,
                            struct mv_layer_scratch *ws, const struct mv_layer_saved *sv,
                            const struct mv_layer *L, const struct mv_tower *tw,
                            const struct mv_seqs *s, int R, const int *keep, int P)
{
    if (!mv_layer_keepable(L) || 2 * P > R) {
        mv_layer_backward(dx, need_dx, G, ws, sv, L, tw, s, R);
        return;
    }
    const int C = tw->cfg.hidden_size;
    /* the kept rows of dx and of out_proj's input, and out_proj's input gradient there, in
     * scratch the attention backward writes later: dq, dk, dv */
    float *dx_p = ws->dq, *ao_p = ws->dk, *da_p = ws->dv;
    double t = mv_prof_begin();
    for (int i = 0; i < P; i++) {
        memcpy(dx_p + (size_t)i * C, dx + (size_t)keep[i] * C, (size_t)C * sizeof(float));
        memcpy(ao_p + (size_t)i * C, sv->a + (size_t)keep[i] * C, (size_t)C * sizeof(float));
    }
    mv_prof_end(MV_PROF_OTHER, t);
    mlp_out_backward(dx_p, da_p, ao_p, G, ws, sv, L, tw, P);
    /* the other rows' outputs reach nothing: their x_mid and attention-output gradients are 0 */
    t = mv_prof_begin();
    memset(ws->da, 0, (size_t)R * C * sizeof(float));
    for (int i = 0; i < P; i++) {
        memcpy(dx + (size_t)keep[i] * C, dx_p + (size_t)i * C, (size_t)C * sizeof(float));
        memcpy(ws->da + (size_t)keep[i] * C, da_p + (size_t)i * C, (size_t)C * sizeof(float));
    }
    mv_prof_end(MV_PROF_OTHER, t);
    attention_backward(dx, need_dx, G, ws, sv, L, tw, s, R);
}

void mv_capture_hidden(const struct mv_acts *a, const struct mv_out_chunk *oc, int l, int B, int N,
                       int C)
{
    if (!oc->o->hidden_states) return;
    size_t per_seq = (size_t)N * (size_t)C;
    float *dst = oc->o->hidden_states + ((size_t)l * oc->Btot + oc->b0) * per_seq;
    memcpy(dst, a->x, (size_t)B * per_seq * sizeof(float));
}

void mv_project_outputs(struct mv_acts *a, const struct mv_out_chunk *oc, const float *proj, int B,
                        int C, int D)
{
    const struct medvlm_encode_out *o = oc->o;
    // unnorm (B, D) = pooled (B, C) proj^T, proj (D, C)
    mv_gemm(0, 1, B, D, C, 1.0f, a->pooled, C, proj, C, 0.0f, a->unnorm, D);
    size_t b0 = (size_t)oc->b0;
    if (o->pooled) memcpy(o->pooled + b0 * C, a->pooled, (size_t)B * C * sizeof(float));
    if (o->embeds_unnorm)
        memcpy(o->embeds_unnorm + b0 * D, a->unnorm, (size_t)B * D * sizeof(float));
    if (o->embeds) mv_l2norm_forward(o->embeds + b0 * D, NULL, a->unnorm, B, D);
}

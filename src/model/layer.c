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

void mv_layer_forward(struct mv_acts *a, const struct mv_layer *L,
                      const struct medvlm_tower_config *cfg, const struct mv_seqs *s, int R)
{
    const int C = cfg->hidden_size, I = cfg->intermediate_size, NH = cfg->num_attention_heads;
    const int HS = C / NH;
    const float eps = cfg->layer_norm_eps;
    /* HF: q = q_proj(x) * head_dim**-0.5 (a Python double, rounded to float) */
    const float scale = (float)pow((double)HS, -0.5);
    double t;
    // x (R, C) += out_proj(attention(LN1(x)))
    t = mv_prof_begin();
    mv_layernorm_forward(a->h, NULL, NULL, a->x, L->ln1.w, L->ln1.b, R, C, eps);
    mv_prof_end(MV_PROF_LAYERNORM, t);
    t = mv_prof_begin();
    mv_linear_forward(a->q, a->h, L->q.w, L->q.b, scale, R, C, C);
    mv_linear_forward(a->k, a->h, L->k.w, L->k.b, 1.0f, R, C, C);
    mv_linear_forward(a->v, a->h, L->v.w, L->v.b, 1.0f, R, C, C);
    mv_prof_end(MV_PROF_GEMM, t);
    t = mv_prof_begin();
    mv_attention_forward(a->a, a->att, a->q, a->k, a->v, s, NH, HS);
    mv_prof_end(MV_PROF_ATTENTION, t);
    t = mv_prof_begin();
    mv_linear_residual_forward(a->x, a->a, L->o.w, L->o.b, R, C, C);
    mv_prof_end(MV_PROF_GEMM, t);
    // x (R, C) += fc2(act(fc1(LN2(x))))
    t = mv_prof_begin();
    mv_layernorm_forward(a->h, NULL, NULL, a->x, L->ln2.w, L->ln2.b, R, C, eps);
    mv_prof_end(MV_PROF_LAYERNORM, t);
    t = mv_prof_begin();
    mv_linear_forward(a->f, a->h, L->fc1.w, L->fc1.b, 1.0f, R, C, I);
    mv_prof_end(MV_PROF_GEMM, t);
    t = mv_prof_begin();
    mv_act_forward(a->f, cfg->hidden_act, (size_t)R * (size_t)I);
    mv_prof_end(MV_PROF_ACT, t);
    t = mv_prof_begin();
    mv_linear_residual_forward(a->x, a->f, L->fc2.w, L->fc2.b, R, I, C);
    mv_prof_end(MV_PROF_GEMM, t);
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

/*
 * vit.c - the vision transformer of CLIP (Hugging Face CLIPVisionTransformer + the visual
 * projection): patch embedding as one GEMM over im2col'd patches, class token, positions,
 * pre-LN, the layers, post-LN of the class token, projection, l2-normalisation.
 *
 * Glossary: B images, S image size, P patch size, g = S/P patches per side, G = g*g,
 * N = 1 + G tokens, C width, D embedding dim, L layers.
 */
#include "encoder.h"

#include <string.h>

/* patches (B*G, 3*P*P): row b*G + gy*g + gx holds the P x P x 3 block of image b in the
 * order of patch_w (C, 3, P, P), so the convolution is patches @ patch_w^T. */
static void im2col(float *patches, const float *pixels, int B, int S, int P)
{
    const int g = S / P, G = g * g, K = 3 * P * P;
#pragma omp parallel for schedule(static) if ((size_t)B * G * K > 262144)
    for (int r = 0; r < B * G; r++) {
        int b = r / G, gy = (r % G) / g, gx = r % g;
        float *dst = patches + (size_t)r * K;
        for (int c = 0; c < 3; c++)
            for (int py = 0; py < P; py++) {
                const float *src =
                    pixels + (((size_t)b * 3 + c) * S + (size_t)gy * P + py) * S + (size_t)gx * P;
                memcpy(dst + ((size_t)c * P + py) * P, src, (size_t)P * sizeof(float));
            }
    }
}

/* x (B*N, C) = [class; patches] + positions (before pre_layrnorm), from pixels (B, 3, S, S);
 * patches (B*G, 3PP) and h (B*G, C) are scratch. */
static void vit_embed(float *x, float *patches, float *h, const struct mv_tower *t,
                      const float *pixels, int B)
{
    const struct medvlm_tower_config *c = &t->cfg;
    const int S = c->image_size, P = c->patch_size, g = S / P, G = g * g, N = G + 1;
    const int C = c->hidden_size, R = B * N;
    // h (B*G, C) = patches (B*G, 3PP) patch_w^T: the stride-P convolution, no bias
    im2col(patches, pixels, B, S, P);
    mv_gemm(0, 1, B * G, C, 3 * P * P, 1.0f, patches, 3 * P * P, t->patch_w, 3 * P * P, 0.0f, h, C);
#pragma omp parallel for schedule(static) if ((size_t)R * C > 262144)
    for (int r = 0; r < R; r++) {
        int b = r / N, n = r % N;
        const float *src = n == 0 ? t->class_emb : h + ((size_t)b * G + n - 1) * C;
        const float *pos = t->pos_emb + (size_t)n * C;
        float *dst = x + (size_t)r * C;
        for (int i = 0; i < C; i++) dst[i] = src[i] + pos[i];
    }
}

static void vit_seqs(struct mv_acts *a, struct mv_seqs *s, int B, int N)
{
    for (int b = 0; b < B; b++) {
        a->off[b] = b * N;
        a->len[b] = N;
    }
    *s = (struct mv_seqs){.B = B, .off = a->off, .len = a->len, .mask = NULL, .causal = 0};
}

enum medvlm_status mv_vit_forward(struct medvlm_encoder *e, const float *pixels, int B,
                                  const struct mv_out_chunk *oc)
{
    const struct mv_tower *t = &e->m->vision;
    const struct medvlm_tower_config *c = &t->cfg;
    struct mv_acts *a = &e->acts;
    const int S = c->image_size, P = c->patch_size, g = S / P, G = g * g, N = G + 1;
    const int C = c->hidden_size, L = c->num_hidden_layers, D = e->m->cfg.projection_dim;
    const int R = B * N;
    const float eps = c->layer_norm_eps;

    double t0 = mv_prof_begin();
    // x (B, N, C) = [class; patches] + positions, then pre_layrnorm in place
    vit_embed(a->x, a->f, a->h, t, pixels, B);
    mv_layernorm_forward(a->x, NULL, NULL, a->x, t->pre_ln.w, t->pre_ln.b, R, C, eps);
    mv_capture_hidden(a, oc, 0, B, N, C);
    mv_prof_end(MV_PROF_EMBED, t0);

    struct mv_seqs s;
    vit_seqs(a, &s, B, N);
    /* only the class tokens' rows are pooled: the last layer's MLP runs on them alone unless
     * the hidden states are wanted */
    const int pooled_only = !oc->o->hidden_states && !oc->o->last_hidden;
    for (int b = 0; b < B; b++) a->keep[b] = b * N;
    for (int l = 0; l < L; l++) {
        if (l == L - 1 && pooled_only)
            mv_layer_forward_kept(a, NULL, &t->layers[l], t, &s, R, a->keep, B);
        else
            mv_layer_forward(a, NULL, &t->layers[l], t, &s, R);
        mv_capture_hidden(a, oc, l + 1, B, N, C);
    }
    t0 = mv_prof_begin();
    if (oc->o->last_hidden)
        memcpy(oc->o->last_hidden + (size_t)oc->b0 * N * C, a->x, (size_t)R * C * sizeof(float));
    // pooled (B, C) = post_layernorm(x[:, 0])
    for (int b = 0; b < B; b++)
        mv_layernorm_forward(a->pooled + (size_t)b * C, NULL, NULL, a->x + (size_t)b * N * C,
                             t->final_ln.w, t->final_ln.b, 1, C, eps);
    mv_project_outputs(a, oc, t->proj, B, C, D);
    mv_prof_end(MV_PROF_OTHER, t0);
    return MEDVLM_OK;
}

/* ---- training: the same pass keeping what backward needs, and the backward below it ---- */

void mv_vit_forward_train(struct mv_acts *a, struct mv_vit_saved *sv, const struct mv_tower *t,
                          int D, const float *pixels, int B)
{
    const struct medvlm_tower_config *c = &t->cfg;
    const int g = mv_vision_grid(c), N = g * g + 1;
    const int C = c->hidden_size, L = c->num_hidden_layers, R = B * N;
    const float eps = c->layer_norm_eps;
    double tp = mv_prof_phase_begin(MV_PROF_FORWARD);
    double t0 = mv_prof_begin();
    vit_embed(sv->x_emb, a->f, a->h, t, pixels, B);
    mv_layernorm_forward(a->x, sv->mean0, sv->rstd0, sv->x_emb, t->pre_ln.w, t->pre_ln.b, R, C,
                         eps);
    mv_prof_end(MV_PROF_EMBED, t0);
    struct mv_seqs s;
    vit_seqs(a, &s, B, N);
    /* the loss reaches the last layer's output through the class tokens only: its out_proj
     * and MLP run on their rows (as in inference, with the same bits) */
    for (int b = 0; b < B; b++) a->keep[b] = b * N;
    for (int l = 0; l < L - 1; l++) mv_layer_forward(a, &sv->layers[l], &t->layers[l], t, &s, R);
    mv_layer_forward_kept(a, &sv->layers[L - 1], &t->layers[L - 1], t, &s, R, a->keep, B);
    t0 = mv_prof_begin();
    // x_cls (B, C) = x[:, 0]; pooled = post_layernorm(x_cls); feats = normalise(pooled proj^T)
    for (int b = 0; b < B; b++)
        memcpy(sv->x_cls + (size_t)b * C, a->x + (size_t)b * N * C, (size_t)C * sizeof(float));
    mv_layernorm_forward(sv->pooled, sv->meanf, sv->rstdf, sv->x_cls, t->final_ln.w, t->final_ln.b,
                         B, C, eps);
    mv_gemm(0, 1, B, D, C, 1.0f, sv->pooled, C, t->proj, C, 0.0f, a->unnorm, D);
    mv_l2norm_forward(sv->feats, sv->fnorm, a->unnorm, B, D);
    mv_prof_end(MV_PROF_OTHER, t0);
    mv_prof_phase_end(MV_PROF_FORWARD, tp);
}

static void vit_backward(struct mv_tower_grad *G, struct mv_vit_scratch *ws, const float *dfeats,
                         const struct mv_vit_saved *sv, struct mv_acts *a, const struct mv_tower *t,
                         int D, const float *pixels, int B, int stop_layer)
{
    const struct medvlm_tower_config *c = &t->cfg;
    const int S = c->image_size, P = c->patch_size, g = S / P, G2 = g * g, N = G2 + 1;
    const int C = c->hidden_size, L = c->num_hidden_layers, R = B * N;
    double t0 = mv_prof_begin();
    // feats = unnorm / |unnorm|; unnorm = pooled proj^T
    memset(ws->dunnorm, 0, (size_t)B * D * sizeof(float));
    mv_l2norm_backward(ws->dunnorm, dfeats, sv->feats, sv->fnorm, B, D);
    memset(ws->dpooled, 0, (size_t)B * C * sizeof(float));
    mv_linear_backward(ws->dpooled, G->proj, NULL, ws->dunnorm, sv->pooled, t->proj, 1.0f, B, C, D);
    // pooled = post_layernorm(x_cls): only the class-token rows of the last output get a gradient
    memset(ws->dx, 0, (size_t)R * C * sizeof(float));
    memset(ws->dcls, 0, (size_t)B * C * sizeof(float));
    mv_layernorm_backward(ws->dcls, G->final_ln.w, G->final_ln.b, ws->dpooled, sv->x_cls, sv->meanf,
                          sv->rstdf, t->final_ln.w, B, C);
    for (int b = 0; b < B; b++)
        memcpy(ws->dx + (size_t)b * N * C, ws->dcls + (size_t)b * C, (size_t)C * sizeof(float));
    mv_prof_end(MV_PROF_OTHER, t0);
    struct mv_seqs s;
    vit_seqs(a, &s, B, N);
    int embed = G->patch_w || G->pos_emb || G->class_emb;
    int below = G->pre_ln.w || G->pre_ln.b || embed; /* trained under the layers */
    for (int b = 0; b < B; b++) a->keep[b] = b * N;
    for (int l = L - 1; l >= stop_layer; l--) {
        int need_dx = l > stop_layer || (l == 0 && below);
        if (l == L - 1)
            mv_layer_backward_kept(ws->dx, need_dx, &G->layers[l], &ws->layer, &sv->layers[l],
                                   &t->layers[l], t, &s, R, a->keep, B);
        else
            mv_layer_backward(ws->dx, need_dx, &G->layers[l], &ws->layer, &sv->layers[l],
                              &t->layers[l], t, &s, R);
    }
    if (stop_layer > 0 || !below) return; /* nothing below is trained */
    t0 = mv_prof_begin();
    // x (after pre_layrnorm) = LN(x_emb)
    float *demb = ws->layer.dh; /* (R, C) */
    memset(demb, 0, (size_t)R * C * sizeof(float));
    mv_layernorm_backward(embed ? demb : NULL, G->pre_ln.w, G->pre_ln.b, ws->dx, sv->x_emb,
                          sv->mean0, sv->rstd0, t->pre_ln.w, R, C);
    if (embed) {
        // x_emb[b, n] = (n ? patch row : class_emb) + pos_emb[n]
        for (int b = 0; b < B; b++)
            for (int n = 0; n < N; n++) {
                const float *d = demb + ((size_t)b * N + n) * C;
                if (G->pos_emb)
                    for (int i = 0; i < C; i++) G->pos_emb[(size_t)n * C + i] += d[i];
                if (n == 0 && G->class_emb)
                    for (int i = 0; i < C; i++) G->class_emb[i] += d[i];
            }
        if (G->patch_w) {
            // dpatch_w (C, 3PP) += dh^T patches; dh (B*G, C) gathers the patch rows of demb
            float *dh = ws->layer.da, *patches = a->f;
            for (int b = 0; b < B; b++)
                memcpy(dh + (size_t)b * G2 * C, demb + ((size_t)b * N + 1) * C,
                       (size_t)G2 * C * sizeof(float));
            im2col(patches, pixels, B, S, P);
            mv_linear_backward(NULL, G->patch_w, NULL, dh, patches, t->patch_w, 1.0f, B * G2,
                               3 * P * P, C);
        }
    }
    mv_prof_end(MV_PROF_EMBED, t0);
}

void mv_vit_backward(struct mv_tower_grad *G, struct mv_vit_scratch *ws, const float *dfeats,
                     const struct mv_vit_saved *sv, struct mv_acts *a, const struct mv_tower *t,
                     int D, const float *pixels, int B, int stop_layer)
{
    double tp = mv_prof_phase_begin(MV_PROF_BACKWARD);
    vit_backward(G, ws, dfeats, sv, a, t, D, pixels, B, stop_layer);
    mv_prof_phase_end(MV_PROF_BACKWARD, tp);
}

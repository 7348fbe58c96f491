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
    // h (B*G, C) = patches (B*G, 3PP) patch_w^T: the stride-P convolution, no bias
    im2col(a->f, pixels, B, S, P);
    mv_gemm(0, 1, B * G, C, 3 * P * P, 1.0f, a->f, 3 * P * P, t->patch_w, 3 * P * P, 0.0f, a->h, C);
    // x (B, N, C) = [class; patches] + positions, then pre_layrnorm in place
#pragma omp parallel for schedule(static) if ((size_t)R * C > 262144)
    for (int r = 0; r < R; r++) {
        int b = r / N, n = r % N;
        const float *src = n == 0 ? t->class_emb : a->h + ((size_t)b * G + n - 1) * C;
        const float *pos = t->pos_emb + (size_t)n * C;
        float *dst = a->x + (size_t)r * C;
        for (int i = 0; i < C; i++) dst[i] = src[i] + pos[i];
    }
    mv_layernorm_forward(a->x, NULL, NULL, a->x, t->pre_ln.w, t->pre_ln.b, R, C, eps);
    mv_capture_hidden(a, oc, 0, B, N, C);
    mv_prof_end(MV_PROF_EMBED, t0);

    for (int b = 0; b < B; b++) {
        a->off[b] = b * N;
        a->len[b] = N;
    }
    struct mv_seqs s = {.B = B, .off = a->off, .len = a->len, .mask = NULL, .causal = 0};
    for (int l = 0; l < L; l++) {
        mv_layer_forward(a, &t->layers[l], c, &s, R);
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

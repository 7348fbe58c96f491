/*
 * text.c - the text transformer of CLIP (Hugging Face CLIPTextTransformer + the text
 * projection): token + position embeddings, causal attention with the key padding mask,
 * final LayerNorm, pooling at the EOS token, projection, l2-normalisation.
 *
 * Only embeddings wanted: every sequence is cut after its EOS token and the sequences are
 * packed without padding. That is exact, not an approximation: with the causal mask, position
 * i depends on positions <= i only, and a masked key adds exactly 0 to the softmax sums, so
 * the rows up to EOS are bit-identical to a padded pass. When hidden states are asked for,
 * every sequence keeps its T rows (the reference layout).
 *
 * Glossary: B prompts, T ids per prompt, N_b rows kept for prompt b, R rows, C width,
 * D embedding dim, L layers, V vocabulary.
 */
#include "encoder.h"

#include <string.h>

/* Hugging Face's pooling position: argmax(ids) (first maximum) for the legacy
 * eos_token_id == 2 configs, else the first position holding eos_token_id (0 if none, as
 * argmax of an all-false row). */
static int eos_position(const int64_t *ids, int T, int eos_token_id)
{
    int best = 0;
    for (int t = 0; t < T; t++) {
        if (eos_token_id == 2) {
            if (ids[t] > ids[best]) best = t;
        } else if (ids[t] == eos_token_id) {
            return t;
        }
    }
    return best;
}

enum medvlm_status mv_text_forward(struct medvlm_encoder *e, const int64_t *ids,
                                   const int64_t *mask, int B, int T, const struct mv_out_chunk *oc)
{
    const struct mv_tower *t = &e->m->text;
    const struct medvlm_tower_config *c = &t->cfg;
    const struct medvlm_encode_out *o = oc->o;
    struct mv_acts *a = &e->acts;
    const int C = c->hidden_size, L = c->num_hidden_layers, D = e->m->cfg.projection_dim;
    const float eps = c->layer_norm_eps;
    const int full = o->hidden_states || o->last_hidden;

    double t0 = mv_prof_begin();
    int R = 0;
    for (int b = 0; b < B; b++) {
        a->eos[b] = eos_position(ids + (size_t)b * T, T, c->eos_token_id);
        a->off[b] = R;
        a->len[b] = full ? T : a->eos[b] + 1;
        R += a->len[b];
    }
    // x (R, C) = token_embedding[ids] + position_embedding[0..N_b)
#pragma omp parallel for schedule(static) if (B > 1)
    for (int b = 0; b < B; b++)
        for (int n = 0; n < a->len[b]; n++) {
            const float *tok = t->tok_emb + (size_t)ids[(size_t)b * T + n] * C;
            const float *pos = t->pos_emb + (size_t)n * C;
            float *dst = a->x + (size_t)(a->off[b] + n) * C;
            for (int i = 0; i < C; i++) dst[i] = tok[i] + pos[i];
        }
    mv_capture_hidden(a, oc, 0, B, T, C);
    mv_prof_end(MV_PROF_EMBED, t0);

    struct mv_seqs s = {
        .B = B, .off = a->off, .len = a->len, .mask = mask, .mask_stride = T, .causal = 1};
    /* only the EOS rows are pooled: the last layer's MLP runs on them alone unless the hidden
     * states are wanted */
    for (int b = 0; b < B; b++) a->keep[b] = a->off[b] + a->eos[b];
    for (int l = 0; l < L; l++) {
        if (l == L - 1 && !full)
            mv_layer_forward_kept(a, NULL, &t->layers[l], t, &s, R, a->keep, B);
        else
            mv_layer_forward(a, NULL, &t->layers[l], t, &s, R);
        mv_capture_hidden(a, oc, l + 1, B, T, C);
    }
    t0 = mv_prof_begin();
    if (o->last_hidden)
        mv_layernorm_forward(o->last_hidden + (size_t)oc->b0 * T * C, NULL, NULL, a->x,
                             t->final_ln.w, t->final_ln.b, R, C, eps);
    // pooled (B, C) = final_layer_norm(x) at each EOS row (LayerNorm is per row)
    for (int b = 0; b < B; b++)
        mv_layernorm_forward(a->pooled + (size_t)b * C, NULL, NULL,
                             a->x + (size_t)(a->off[b] + a->eos[b]) * C, t->final_ln.w,
                             t->final_ln.b, 1, C, eps);
    mv_project_outputs(a, oc, t->proj, B, C, D);
    mv_prof_end(MV_PROF_OTHER, t0);
    return MEDVLM_OK;
}

/*
 * stage_text.c - golden stages `text` and `vision`: both towers' forward pass on the
 * reference inputs of the set (expected/tokens.safetensors input_ids + attention_mask;
 * expected/pixels.safetensors crop.{i} stacked), every hidden state captured.
 * Also the helpers stage_clip.c uses to get both embeddings.
 */
#include "golden.h"

#include "../../src/io/io.h"

#include <stdio.h>
#include <string.h>

/* An I64 tensor of expected/<file> copied out (the mapping need not be 8-aligned). */
static enum medvlm_status read_i64(const struct golden_ctx *g, const char *file, const char *name,
                                   int64_t **out, int *rows, int *cols)
{
    char rel[256];
    snprintf(rel, sizeof rel, "expected/%s", file);
    char *path = golden_path(g, rel);
    struct medvlm_st *st = NULL;
    enum medvlm_status s = path ? medvlm_st_open(path, &st) : MEDVLM_ERR_NOMEM;
    mv_free(path);
    if (s) return s;
    const struct medvlm_tensor_info *t = medvlm_st_find(st, name);
    if (!t || t->dtype != MEDVLM_DTYPE_I64 || t->ndim != 2) {
        s = mv_err(MEDVLM_ERR_MISSING, "%s: no I64 [rows, cols] tensor %s", file, name);
        goto done;
    }
    *rows = (int)t->shape[0];
    *cols = (int)t->shape[1];
    *out = mv_malloc(t->nbytes);
    if (!*out) {
        s = MEDVLM_ERR_NOMEM;
        goto done;
    }
    memcpy(*out, t->data, t->nbytes);
done:
    medvlm_st_free(st);
    return s;
}

enum medvlm_status golden_text_inputs(const struct golden_ctx *g, int64_t **ids, int64_t **mask,
                                      int *P, int *T)
{
    int p2, t2;
    *ids = *mask = NULL;
    enum medvlm_status s = read_i64(g, "tokens.safetensors", "input_ids", ids, P, T);
    if (!s) s = read_i64(g, "tokens.safetensors", "attention_mask", mask, &p2, &t2);
    if (!s && (p2 != *P || t2 != *T))
        s = mv_err(MEDVLM_ERR_SHAPE, "tokens.safetensors: input_ids and attention_mask differ");
    return s;
}

enum medvlm_status golden_pixel_inputs(const struct golden_ctx *g, float **pixels, int *N, int *S)
{
    char *path = golden_path(g, "expected/pixels.safetensors");
    struct medvlm_st *st = NULL;
    enum medvlm_status s = path ? medvlm_st_open(path, &st) : MEDVLM_ERR_NOMEM;
    mv_free(path);
    *pixels = NULL;
    if (s) return s;
    int n = golden_image_count(g);
    size_t per = 0;
    for (int i = 0; i < n && !s; i++) {
        char name[64];
        snprintf(name, sizeof name, "crop.%d", i);
        const float *d;
        float *owned = NULL;
        const struct medvlm_tensor_info *t;
        if ((s = medvlm_st_get_f32(st, name, &d, &owned, &t))) break;
        if (t->ndim != 3 || t->shape[0] != 3 || t->shape[1] != t->shape[2]) {
            s = mv_err(MEDVLM_ERR_SHAPE, "pixels.safetensors: %s is not [3, S, S]", name);
        } else if (i == 0) {
            *S = (int)t->shape[1];
            per = 3 * (size_t)*S * (size_t)*S;
            *pixels = mv_malloc((size_t)n * per * sizeof(float));
            if (!*pixels) s = MEDVLM_ERR_NOMEM;
        } else if (t->shape[1] != *S) {
            s = mv_err(MEDVLM_ERR_SHAPE, "pixels.safetensors: crops differ in size");
        }
        if (!s) memcpy(*pixels + (size_t)i * per, d, per * sizeof(float));
        mv_free(owned);
    }
    medvlm_st_free(st);
    *N = n;
    if (s) {
        mv_free(*pixels);
        *pixels = NULL;
    }
    return s;
}

/* Writes the tower's tensors under the reference names. */
static enum medvlm_status save_tower(const struct golden_ctx *g, const char *file, int B, int N,
                                     int C, int L, int D, const struct medvlm_encode_out *o,
                                     const char *emb_name)
{
    struct medvlm_st_writer *w;
    enum medvlm_status s = medvlm_st_writer_init(&w);
    if (s) return s;
    char name[64], name2[64];
    snprintf(name, sizeof name, "%s_embeds", emb_name);
    snprintf(name2, sizeof name2, "%s_embeds_unnorm", emb_name);
    if (!s)
        s = medvlm_st_writer_add(w, "hidden_states", MEDVLM_DTYPE_F32, 4,
                                 (int64_t[]){L + 1, B, N, C}, o->hidden_states);
    if (!s)
        s = medvlm_st_writer_add(w, "last_hidden_state", MEDVLM_DTYPE_F32, 3, (int64_t[]){B, N, C},
                                 o->last_hidden);
    if (!s)
        s = medvlm_st_writer_add(w, "pooler_output", MEDVLM_DTYPE_F32, 2, (int64_t[]){B, C},
                                 o->pooled);
    if (!s)
        s = medvlm_st_writer_add(w, name2, MEDVLM_DTYPE_F32, 2, (int64_t[]){B, D},
                                 o->embeds_unnorm);
    if (!s) s = medvlm_st_writer_add(w, name, MEDVLM_DTYPE_F32, 2, (int64_t[]){B, D}, o->embeds);
    if (!s) s = golden_save(g, w, file);
    medvlm_st_writer_free(w);
    return s;
}

static void free_out(struct medvlm_encode_out *o)
{
    mv_free(o->embeds);
    mv_free(o->embeds_unnorm);
    mv_free(o->pooled);
    mv_free(o->last_hidden);
    mv_free(o->hidden_states);
}

static enum medvlm_status alloc_out(struct medvlm_encode_out *o, int B, int N, int C, int L, int D)
{
    size_t bnc = (size_t)B * N * C;
    o->embeds = mv_calloc((size_t)B * D, sizeof(float));
    o->embeds_unnorm = mv_calloc((size_t)B * D, sizeof(float));
    o->pooled = mv_calloc((size_t)B * C, sizeof(float));
    o->last_hidden = mv_calloc(bnc, sizeof(float));
    o->hidden_states = mv_calloc(bnc * (size_t)(L + 1), sizeof(float));
    return o->embeds && o->embeds_unnorm && o->pooled && o->last_hidden && o->hidden_states
               ? MEDVLM_OK
               : MEDVLM_ERR_NOMEM;
}

enum medvlm_status golden_stage_text(struct golden_ctx *g)
{
    struct medvlm_model *m;
    struct medvlm_encoder *enc = NULL;
    struct medvlm_encode_out o = {0};
    int64_t *ids = NULL, *mask = NULL;
    int P = 0, T = 0;
    enum medvlm_status s = golden_model(g, &m);
    if (s) return s;
    const struct medvlm_config *cfg = medvlm_model_config(m);
    const int C = cfg->text.hidden_size, L = cfg->text.num_hidden_layers, D = cfg->projection_dim;
    if ((s = golden_text_inputs(g, &ids, &mask, &P, &T))) goto done;
    /* max_batch 4 (< P): the chunked path is part of what is checked */
    if ((s = medvlm_encoder_init(m, 4, &enc))) goto done;
    if ((s = alloc_out(&o, P, T, C, L, D))) goto done;
    if ((s = medvlm_encode_text_ex(enc, ids, mask, P, T, &o))) goto done;
    s = save_tower(g, "text.safetensors", P, T, C, L, D, &o, "text");
done:
    free_out(&o);
    medvlm_encoder_free(enc);
    mv_free(ids);
    mv_free(mask);
    return s;
}

enum medvlm_status golden_stage_vision(struct golden_ctx *g)
{
    struct medvlm_model *m;
    struct medvlm_encoder *enc = NULL;
    struct medvlm_encode_out o = {0};
    float *pixels = NULL;
    int n = 0, S = 0;
    enum medvlm_status s = golden_model(g, &m);
    if (s) return s;
    const struct medvlm_config *cfg = medvlm_model_config(m);
    const struct medvlm_tower_config *v = &cfg->vision;
    const int C = v->hidden_size, L = v->num_hidden_layers, D = cfg->projection_dim;
    const int g1 = v->image_size / v->patch_size, N = 1 + g1 * g1;
    if ((s = golden_pixel_inputs(g, &pixels, &n, &S))) goto done;
    if (S != v->image_size) {
        s = mv_err(MEDVLM_ERR_SHAPE, "pixels.safetensors: crops are %d px, the model takes %d", S,
                   v->image_size);
        goto done;
    }
    if ((s = medvlm_encoder_init(m, 3, &enc))) goto done;
    if ((s = alloc_out(&o, n, N, C, L, D))) goto done;
    if ((s = medvlm_encode_images_ex(enc, pixels, n, &o))) goto done;
    s = save_tower(g, "vision.safetensors", n, N, C, L, D, &o, "image");
done:
    free_out(&o);
    medvlm_encoder_free(enc);
    mv_free(pixels);
    return s;
}

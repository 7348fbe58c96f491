/*
 * encoder.c - struct medvlm_encoder: one workspace sized for max_batch, the public encode
 * calls (batches larger than max_batch run as several passes; vit.c and text.c run the
 * towers on layer.c's shared layer), and the FLOP counts the benchmarks report.
 *
 * Glossary: B batch, N tokens per sequence, R rows, C width, I MLP width, NH heads, HS head
 * size, L layers, D embedding dim, G patches per image, P patch size.
 */
#include "encoder.h"

#include <string.h>

/* ---- workspace: every view of struct mv_acts carved from one buffer ---- */

struct ws_dims {
    size_t R, C, I, f_min, att, B, D, RK;
};

/* The views for dims d (base NULL: only counted); total floats in *total. */
static bool carve(const struct ws_dims *d, float *base, struct mv_acts *a, size_t *total)
{
    struct mv_carver c = {.base = base, .ok = true};
    struct mv_acts counted;
    struct mv_acts *v = base ? a : &counted;
    v->x = mv_carve(&c, d->R, d->C);
    v->h = mv_carve(&c, d->R, d->C);
    v->q = mv_carve(&c, d->R, d->C);
    v->k = mv_carve(&c, d->R, d->C);
    v->v = mv_carve(&c, d->R, d->C);
    v->a = mv_carve(&c, d->R, d->C);
    size_t ri;
    v->f = mv_carve(&c, mv_mul_ok(d->R, d->I, &ri) ? MV_MAX(ri, d->f_min) : SIZE_MAX, 1);
    v->att = mv_carve(&c, d->att, 1);
    v->pooled = mv_carve(&c, d->B, d->C);
    v->unnorm = mv_carve(&c, d->B, d->D);
    v->u = mv_carve(&c, d->R, d->RK);
    *total = c.used;
    return c.ok;
}

static bool tower_dims(const struct mv_tower *t, int vision, int max_batch, size_t D,
                       struct ws_dims *d)
{
    const struct medvlm_tower_config *c = &t->cfg;
    size_t B = (size_t)max_batch,
           N = vision ? (size_t)t->n_pos : (size_t)c->max_position_embeddings;
    size_t nn, att, pp;
    memset(d, 0, sizeof *d);
    d->B = B;
    d->C = (size_t)c->hidden_size;
    d->I = (size_t)c->intermediate_size;
    d->D = D;
    d->RK = (size_t)t->lora_rank;
    if (!mv_mul_ok(B, N, &d->R) || !mv_mul_ok(N, N, &nn) || !mv_mul_ok(nn, B, &att) ||
        !mv_mul_ok(att, (size_t)c->num_attention_heads, &d->att))
        return false;
    if (vision) { /* im2col patches (B*G, 3*P*P) live in f */
        int G = mv_vision_grid(c);
        size_t P = (size_t)c->patch_size;
        if (!mv_mul_ok(3 * P, P, &pp) || !mv_mul_ok(pp, B * (size_t)G * (size_t)G, &d->f_min))
            return false;
    }
    return true;
}

enum medvlm_status medvlm_encoder_init(const struct medvlm_model *model, int max_batch,
                                       struct medvlm_encoder **out)
{
    *out = NULL;
    if (!model) return mv_err(MEDVLM_ERR_ARG, "medvlm_encoder_init: model is NULL");
    if (max_batch < 1 || max_batch > (1 << 20))
        return mv_err(MEDVLM_ERR_ARG, "medvlm_encoder_init: max_batch %d (expected 1..%d)",
                      max_batch, 1 << 20);
    if (!model->text.loaded && !model->vision.loaded)
        return mv_err(MEDVLM_ERR_ARG, "medvlm_encoder_init: the model has no tower loaded");
    size_t total = 0, D = (size_t)model->cfg.projection_dim;
    for (int vision = 0; vision < 2; vision++) {
        const struct mv_tower *t = vision ? &model->vision : &model->text;
        struct ws_dims d;
        size_t n;
        if (!t->loaded) continue;
        if (!tower_dims(t, vision, max_batch, D, &d) || !carve(&d, NULL, NULL, &n) ||
            !mv_mul_ok(n, sizeof(float), &n))
            return mv_err(MEDVLM_ERR_OVERFLOW,
                          "medvlm_encoder_init: activations of %d %s do not fit in memory",
                          max_batch, vision ? "images" : "prompts");
        total = MV_MAX(total, n);
    }
    struct medvlm_encoder *e = mv_calloc(1, sizeof *e);
    if (!e) return MEDVLM_ERR_NOMEM;
    e->m = model;
    e->max_batch = max_batch;
    e->buf = mv_aligned(total);
    e->ibuf = mv_calloc(4 * (size_t)max_batch, sizeof(int));
    if (!e->buf || !e->ibuf) {
        medvlm_encoder_free(e);
        return mv_err_ctx(MEDVLM_ERR_NOMEM, "medvlm_encoder_init: %zu MB of activations",
                          total >> 20);
    }
    e->acts.off = e->ibuf;
    e->acts.len = e->ibuf + max_batch;
    e->acts.eos = e->ibuf + 2 * max_batch;
    e->acts.keep = e->ibuf + 3 * max_batch;
    *out = e;
    return MEDVLM_OK;
}

void medvlm_encoder_free(struct medvlm_encoder *enc)
{
    if (!enc) return;
    mv_free(enc->buf);
    mv_free(enc->ibuf);
    mv_free(enc);
}

/* Point the float views at the buffer with tower t's layout. */
static void bind_views(struct medvlm_encoder *e, int vision)
{
    const struct mv_tower *t = vision ? &e->m->vision : &e->m->text;
    struct ws_dims d;
    size_t n;
    tower_dims(t, vision, e->max_batch, (size_t)e->m->cfg.projection_dim, &d);
    carve(&d, e->buf, &e->acts, &n);
}

/* ---- public calls ---- */

static bool wants_anything(const struct medvlm_encode_out *o)
{
    return o && (o->embeds || o->embeds_unnorm || o->pooled || o->last_hidden || o->hidden_states);
}

enum medvlm_status medvlm_encode_images_ex(struct medvlm_encoder *enc, const float *pixels, int B,
                                           const struct medvlm_encode_out *out)
{
    if (!enc || (!pixels && B > 0) || B < 0 || !out)
        return mv_err(MEDVLM_ERR_ARG, "medvlm_encode_images: NULL argument or B = %d", B);
    if (!enc->m->vision.loaded)
        return mv_err(MEDVLM_ERR_ARG,
                      "medvlm_encode_images: the vision tower is not loaded (load the model "
                      "with MEDVLM_LOAD_VISION)");
    if (!wants_anything(out)) return MEDVLM_OK;
    mv_threads_adapt();
    const struct medvlm_tower_config *c = &enc->m->vision.cfg;
    size_t per_image = 3 * (size_t)c->image_size * (size_t)c->image_size;
    bind_views(enc, 1);
    for (int b0 = 0; b0 < B; b0 += enc->max_batch) {
        int nb = MV_MIN(enc->max_batch, B - b0);
        struct mv_out_chunk oc = {out, b0, B};
        enum medvlm_status st = mv_vit_forward(enc, pixels + (size_t)b0 * per_image, nb, &oc);
        if (st) return st;
    }
    return MEDVLM_OK;
}

enum medvlm_status medvlm_encode_images(struct medvlm_encoder *enc, const float *pixels, int B,
                                        float *embeds)
{
    struct medvlm_encode_out o = {.embeds = embeds};
    if (!embeds) return mv_err(MEDVLM_ERR_ARG, "medvlm_encode_images: embeds is NULL");
    return medvlm_encode_images_ex(enc, pixels, B, &o);
}

enum medvlm_status medvlm_encode_text_ex(struct medvlm_encoder *enc, const int64_t *ids,
                                         const int64_t *mask, int B, int T,
                                         const struct medvlm_encode_out *out)
{
    if (!enc || (!ids && B > 0) || B < 0 || !out)
        return mv_err(MEDVLM_ERR_ARG, "medvlm_encode_text: NULL argument or B = %d", B);
    if (!enc->m->text.loaded)
        return mv_err(MEDVLM_ERR_ARG,
                      "medvlm_encode_text: the text tower is not loaded (load the model with "
                      "MEDVLM_LOAD_TEXT)");
    const struct medvlm_tower_config *c = &enc->m->text.cfg;
    if (T < 1 || T > c->max_position_embeddings)
        return mv_err(MEDVLM_ERR_ARG,
                      "medvlm_encode_text: sequence length %d (expected 1..%d, the model's "
                      "max_position_embeddings)",
                      T, c->max_position_embeddings);
    for (size_t i = 0; i < (size_t)B * (size_t)T; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return mv_err(MEDVLM_ERR_ARG,
                          "medvlm_encode_text: token id %lld at [%zu, %zu] is outside the "
                          "vocabulary (0..%d)",
                          (long long)ids[i], i / (size_t)T, i % (size_t)T, c->vocab_size - 1);
    if (!wants_anything(out)) return MEDVLM_OK;
    mv_threads_adapt();
    bind_views(enc, 0);
    for (int b0 = 0; b0 < B; b0 += enc->max_batch) {
        int nb = MV_MIN(enc->max_batch, B - b0);
        struct mv_out_chunk oc = {out, b0, B};
        size_t at = (size_t)b0 * (size_t)T;
        enum medvlm_status st = mv_text_forward(enc, ids + at, mask ? mask + at : NULL, nb, T, &oc);
        if (st) return st;
    }
    const size_t D = (size_t)enc->m->cfg.projection_dim;
    for (int b = 0; out->embeds && b < B; b++) { /* a NaN prototype would score every image NaN */
        size_t j = mv_find_nonfinite(out->embeds + (size_t)b * D, D);
        if (j < D)
            return mv_err(MEDVLM_ERR_FORMAT,
                          "medvlm_encode_text: the embedding of prompt %d of the batch is not "
                          "finite (%g at dimension %zu): the model's text weights hold NaN or inf",
                          b, (double)out->embeds[(size_t)b * D + j], j);
    }
    return MEDVLM_OK;
}

enum medvlm_status medvlm_encode_text(struct medvlm_encoder *enc, const int64_t *ids,
                                      const int64_t *mask, int B, int T, float *embeds)
{
    struct medvlm_encode_out o = {.embeds = embeds};
    if (!embeds) return mv_err(MEDVLM_ERR_ARG, "medvlm_encode_text: embeds is NULL");
    return medvlm_encode_text_ex(enc, ids, mask, B, T, &o);
}

/* ---- FLOP counts (multiply-add = 2) ---- */

static double layers_flops(const struct medvlm_tower_config *c, double rows, double att_pairs)
{
    double C = c->hidden_size, I = c->intermediate_size;
    double per_layer = 2.0 * rows * (4.0 * C * C + 2.0 * C * I) + 2.0 * 2.0 * att_pairs * C;
    return per_layer * c->num_hidden_layers;
}

double medvlm_vision_flops(const struct medvlm_config *cfg, int B)
{
    const struct medvlm_tower_config *c = &cfg->vision;
    double G = (double)mv_vision_grid(c) * mv_vision_grid(c), N = G + 1, P = c->patch_size;
    double patch = 2.0 * B * G * 3.0 * P * P * c->hidden_size;
    double proj = 2.0 * B * c->hidden_size * cfg->projection_dim;
    return patch + layers_flops(c, (double)B * N, (double)B * N * N) + proj;
}

double medvlm_text_flops(const struct medvlm_config *cfg, int B, const int *lens)
{
    const struct medvlm_tower_config *c = &cfg->text;
    double rows = 0, pairs = 0;
    for (int b = 0; b < B; b++) {
        rows += lens[b];
        pairs += (double)lens[b] * lens[b];
    }
    return layers_flops(c, rows, pairs) + 2.0 * B * c->hidden_size * cfg->projection_dim;
}

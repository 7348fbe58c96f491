/* test_encoder.c - properties of the encoders on small random models of several shapes.
 * Bitwise: 1 thread == 2 threads (every output), padding to the longest == padding to
 * max_position_embeddings, the padding id and a NULL mask change nothing.
 * Within BATCH_TOL: a batch vs its images/prompts one by one, chunked passes vs one pass, the
 * packed text path vs the full one. Those change how many rows each GEMM has, and OpenBLAS
 * computes the last M % 16 rows of a GEMM with narrower kernels that round differently (see
 * src/ops/gemm.c), so the same row can differ in the last bits (measured: <= ~2e-7 on these
 * unit-norm embeddings). Also: pooling at EOS for both eos_token_id conventions, errors. */
#include "check.h"
#include "model/model.h"
#include "ops/ops.h"

#include <omp.h>

static struct mv_rng rng;

struct shape {
    int C, I, L, NH, S, P, act, eos, V, T;
};

static struct medvlm_model *make_model(const struct shape *sh, unsigned flags)
{
    struct medvlm_config cfg;
    medvlm_config_default(&cfg);
    cfg.projection_dim = 24;
    struct medvlm_tower_config *t = &cfg.text, *v = &cfg.vision;
    t->hidden_size = sh->C, t->intermediate_size = sh->I, t->num_hidden_layers = sh->L;
    t->num_attention_heads = sh->NH, t->hidden_act = (enum medvlm_act)sh->act;
    t->vocab_size = sh->V, t->max_position_embeddings = sh->T, t->eos_token_id = sh->eos;
    v->hidden_size = sh->C + sh->NH, v->intermediate_size = sh->I, v->num_hidden_layers = sh->L;
    v->num_attention_heads = sh->NH, v->hidden_act = (enum medvlm_act)sh->act;
    v->image_size = sh->S, v->patch_size = sh->P;
    struct medvlm_model *m = NULL;
    CHECK_OK(mv_model_init_random_towers(&cfg, 7, flags, &m));
    /* non-trivial LayerNorms, so that a wrong LN parameter shows */
    if (m)
        for (int i = 0; i < m->n_params; i++) {
            struct medvlm_param_info *p = &m->params[i];
            if (p->data && strstr(p->name, "norm"))
                for (size_t j = 0; j < p->numel; j++)
                    ((float *)p->data)[j] += 0.1f * mv_rng_normal(&rng);
        }
    return m;
}

static int same(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof(float)) == 0;
}

#define BATCH_TOL 2e-6

static double max_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = MV_MAX(m, fabs((double)a[i] - b[i]));
    return m;
}

static double worst_batch_diff; /* reported at the end */

static int close_batch(const float *a, const float *b, size_t n)
{
    double d = max_diff(a, b, n);
    worst_batch_diff = MV_MAX(worst_batch_diff, d);
    return d <= BATCH_TOL;
}

static float *fbuf(size_t n)
{
    return mv_calloc(n ? n : 1, sizeof(float));
}

static void test_vision(const struct shape *sh)
{
    struct medvlm_model *m = make_model(sh, MEDVLM_LOAD_VISION);
    if (!m) return;
    const struct medvlm_tower_config *v = &m->cfg.vision;
    const int B = 5, S = v->image_size, D = m->cfg.projection_dim, C = v->hidden_size;
    const int g = S / v->patch_size, N = 1 + g * g, L = v->num_hidden_layers;
    size_t per = 3 * (size_t)S * S;
    float *px = fbuf(B * per);
    for (size_t i = 0; i < B * per; i++) px[i] = mv_rng_normal(&rng);
    float *e1 = fbuf(B * D), *e2 = fbuf(B * D), *e3 = fbuf(B * D), *u = fbuf(B * D);
    float *hs1 = fbuf((size_t)(L + 1) * B * N * C), *hs2 = fbuf((size_t)(L + 1) * B * N * C);
    float *pool = fbuf((size_t)B * C), *last = fbuf((size_t)B * N * C);
    struct medvlm_encoder *enc = NULL, *enc1 = NULL;
    CHECK_OK(medvlm_encoder_init(m, B, &enc));
    CHECK_OK(medvlm_encoder_init(m, 1, &enc1));
    /* 2 threads vs 1 thread, every output */
    struct medvlm_encode_out o1 = {e1, u, pool, last, hs1}, o2 = {e2, NULL, NULL, NULL, hs2};
    CHECK_OK(medvlm_set_threads(2));
    CHECK_OK(medvlm_encode_images_ex(enc, px, B, &o1));
    CHECK_OK(medvlm_set_threads(1));
    CHECK_OK(medvlm_encode_images_ex(enc, px, B, &o2));
    CHECK_OK(medvlm_set_threads(2));
    CHECK(same(e1, e2, (size_t)B * D), "vision: 1 thread != 2 threads (embeds)");
    CHECK(same(hs1, hs2, (size_t)(L + 1) * B * N * C), "vision: 1 thread != 2 threads (hidden)");
    CHECK(same(last, hs1 + (size_t)L * B * N * C, (size_t)B * N * C),
          "vision: last_hidden != hidden_states[L]");
    /* embeddings alone (the last layer's MLP on the class tokens' rows only) = with the hidden
     * states asked (the whole last layer): bit for bit where the packed kernel runs the
     * products, which computes a row alike in any product; OpenBLAS within BATCH_TOL */
    CHECK_OK(medvlm_encode_images(enc, px, B, e3));
    if (mv_gemm_packed_on())
        CHECK(same(e1, e3, (size_t)B * D), "vision: embeddings alone != with the hidden states");
    else
        CHECK(close_batch(e1, e3, (size_t)B * D), "vision: embeddings alone != with hidden");
    /* the batch vs one image at a time (encoder of max_batch 1: chunked passes) */
    CHECK_OK(medvlm_encode_images(enc1, px, B, e3));
    CHECK(close_batch(e1, e3, (size_t)B * D), "vision: batch != one by one");
    for (int b = 0; b < B; b++) {
        float one[64];
        CHECK_OK(medvlm_encode_images(enc, px + b * per, 1, one));
        CHECK(close_batch(one, e1 + (size_t)b * D, (size_t)D), "vision: image %d alone differs", b);
    }
    /* embeds are unit-norm and the normalised unnorm */
    for (int b = 0; b < B; b++) {
        double n2 = 0, u2 = 0;
        for (int d = 0; d < D; d++) n2 += (double)e1[b * D + d] * e1[b * D + d];
        for (int d = 0; d < D; d++) u2 += (double)u[b * D + d] * u[b * D + d];
        CHECK(fabs(n2 - 1) < 1e-5, "vision: |embed| = %g", sqrt(n2));
        CHECK(fabs(e1[b * D] - u[b * D] / sqrt(u2)) < 1e-6, "vision: embed != unnorm / |unnorm|");
    }
    /* errors */
    CHECK_ERR(medvlm_encode_text(enc, (int64_t[]){0}, NULL, 1, 1, e1), MEDVLM_ERR_ARG,
              "text tower is not loaded");
    CHECK_ERR(medvlm_encode_images(enc, px, -1, e1), MEDVLM_ERR_ARG, "B = -1");
    medvlm_encoder_free(enc);
    medvlm_encoder_free(enc1);
    mv_free(px), mv_free(e1), mv_free(e2), mv_free(e3), mv_free(u), mv_free(hs1), mv_free(hs2);
    mv_free(pool), mv_free(last);
    medvlm_model_free(m);
}

/* B prompts of random lengths 2..maxlen (BOS .. EOS), padded to T with `pad`. */
static void make_prompts(int64_t *ids, int64_t *mask, const int *lens, int B, int T, int V, int eos,
                         int pad)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int64_t id = 1 + (int64_t)mv_rng_below(&rng, (uint64_t)(V - 2));
            if (id == eos) id = 1;
            if (t == 0) id = 0;
            if (t == lens[b] - 1) id = eos;
            ids[b * T + t] = t < lens[b] ? id : pad;
            mask[b * T + t] = t < lens[b];
        }
}

static void test_text(const struct shape *sh)
{
    struct medvlm_model *m = make_model(sh, MEDVLM_LOAD_TEXT);
    if (!m) return;
    const struct medvlm_tower_config *t = &m->cfg.text;
    const int B = 6, T = t->max_position_embeddings, D = m->cfg.projection_dim;
    const int C = t->hidden_size, L = t->num_hidden_layers, V = t->vocab_size;
    /* the legacy convention pools at argmax(ids): EOS must then be the largest id */
    const int eos = sh->eos == 2 ? V - 1 : sh->eos;
    int lens[6], longest = 0;
    for (int b = 0; b < B; b++) {
        lens[b] = 2 + (int)mv_rng_below(&rng, (uint64_t)(T - 2));
        longest = MV_MAX(longest, lens[b]);
    }
    int64_t *ids = mv_calloc((size_t)B * T, 8), *mask = mv_calloc((size_t)B * T, 8);
    int64_t *ids_l = mv_calloc((size_t)B * T, 8), *mask_l = mv_calloc((size_t)B * T, 8);
    make_prompts(ids, mask, lens, B, T, V, eos, eos);
    for (int b = 0; b < B; b++)
        for (int j = 0; j < longest; j++) {
            ids_l[b * longest + j] = ids[b * T + j];
            mask_l[b * longest + j] = mask[b * T + j];
        }
    float *e1 = fbuf(B * D), *e2 = fbuf(B * D), *e3 = fbuf(B * D), *e4 = fbuf(B * D);
    float *hs1 = fbuf((size_t)(L + 1) * B * T * C), *hs2 = fbuf((size_t)(L + 1) * B * T * C);
    float *pool = fbuf((size_t)B * C), *pool2 = fbuf((size_t)B * C),
          *last = fbuf((size_t)B * T * C);
    struct medvlm_encoder *enc = NULL, *enc2 = NULL;
    CHECK_OK(medvlm_encoder_init(m, B, &enc));
    CHECK_OK(medvlm_encoder_init(m, 2, &enc2));
    /* full path (hidden states asked): 2 threads vs 1 */
    struct medvlm_encode_out o1 = {e1, NULL, pool, last, hs1}, o2 = {e2, NULL, NULL, NULL, hs2};
    CHECK_OK(medvlm_encode_text_ex(enc, ids, mask, B, T, &o1));
    CHECK_OK(medvlm_set_threads(1));
    CHECK_OK(medvlm_encode_text_ex(enc, ids, mask, B, T, &o2));
    CHECK_OK(medvlm_set_threads(2));
    CHECK(same(e1, e2, (size_t)B * D), "text: 1 thread != 2 threads (embeds)");
    CHECK(same(hs1, hs2, (size_t)(L + 1) * B * T * C), "text: 1 thread != 2 threads (hidden)");
    /* pooled = last_hidden at the EOS position */
    for (int b = 0; b < B; b++)
        CHECK(same(pool + (size_t)b * C, last + ((size_t)b * T + lens[b] - 1) * C, (size_t)C),
              "text: pooled is not last_hidden at EOS (prompt %d, EOS at %d)", b, lens[b] - 1);
    /* packed path (embeds only) == full path; padded to the longest == padded to T;
     * chunked (max_batch 2) == one pass; one prompt alone == in the batch */
    struct medvlm_encode_out o3 = {e3, NULL, pool2, NULL, NULL};
    CHECK_OK(medvlm_encode_text_ex(enc, ids, mask, B, T, &o3));
    CHECK(close_batch(e1, e3, (size_t)B * D), "text: packed path != full path");
    CHECK(close_batch(pool, pool2, (size_t)B * C), "text: packed pooled != full pooled");
    CHECK_OK(medvlm_encode_text(enc, ids_l, mask_l, B, longest, e4));
    CHECK(same(e3, e4, (size_t)B * D), "text: padded to longest (%d) != padded to %d", longest, T);
    CHECK_OK(medvlm_encode_text(enc2, ids_l, mask_l, B, longest, e4));
    CHECK(close_batch(e3, e4, (size_t)B * D), "text: max_batch 2 (chunked) != one pass");
    for (int b = 0; b < B; b++) {
        float one[64];
        CHECK_OK(medvlm_encode_text(enc, ids + b * T, mask + b * T, 1, lens[b], one));
        CHECK(close_batch(one, e1 + (size_t)b * D, (size_t)D), "text: prompt %d alone differs", b);
    }
    /* the hidden states beyond EOS are computed too (full layout), and change with padding
     * ids, while the embeddings do not: pad with another id */
    int64_t *ids_p = mv_calloc((size_t)B * T, 8);
    make_prompts(ids_p, mask, lens, B, T, V, eos, eos);
    memcpy(ids_p, ids, (size_t)B * T * 8);
    for (int b = 0; b < B; b++)
        for (int j = lens[b]; j < T; j++) ids_p[b * T + j] = sh->eos == 2 ? 0 : 1;
    CHECK_OK(medvlm_encode_text(enc, ids_p, mask, B, T, e4));
    CHECK(same(e3, e4, (size_t)B * D), "text: the padding id changed the embeddings");
    /* NULL mask == all ones: equal embeddings (the causal mask hides the padding anyway) */
    CHECK_OK(medvlm_encode_text(enc, ids, NULL, B, T, e4));
    CHECK(same(e3, e4, (size_t)B * D), "text: NULL mask differs from the padding mask");
    /* errors */
    CHECK_ERR(medvlm_encode_text(enc, ids, mask, B, T + 1, e4), MEDVLM_ERR_ARG, "sequence length");
    ids_p[3] = V;
    CHECK_ERR(medvlm_encode_text(enc, ids_p, mask, B, T, e4), MEDVLM_ERR_ARG, "vocabulary");
    CHECK_ERR(medvlm_encode_images(enc, (float[]){0}, 1, e4), MEDVLM_ERR_ARG,
              "vision tower is not loaded");
    medvlm_encoder_free(enc);
    medvlm_encoder_free(enc2);
    mv_free(ids), mv_free(mask), mv_free(ids_l), mv_free(mask_l), mv_free(ids_p);
    mv_free(e1), mv_free(e2), mv_free(e3), mv_free(e4), mv_free(hs1), mv_free(hs2);
    mv_free(pool), mv_free(pool2), mv_free(last);
    medvlm_model_free(m);
}

/* Pooling position for both conventions on hand-made ids: eos_token_id 2 -> argmax(ids);
 * otherwise the first position holding eos_token_id. */
static void test_eos_conventions(void)
{
    for (int legacy = 0; legacy < 2; legacy++) {
        struct shape sh = {16, 32, 1, 2, 16, 8, 0, legacy ? 2 : 7, 12, 8};
        struct medvlm_model *m = make_model(&sh, MEDVLM_LOAD_TEXT);
        if (!m) return;
        const int C = 16, T = 8;
        int64_t ids[8] = {0, 5, 11, 7, 3, 7, 7, 7}, mask[8] = {1, 1, 1, 1, 1, 1, 0, 0};
        int want = legacy ? 2 : 3; /* argmax: the 11 at 2; first 7 at 3 */
        float pooled[16], last[8 * 16];
        struct medvlm_encode_out o = {NULL, NULL, pooled, last, NULL};
        struct medvlm_encoder *enc = NULL;
        CHECK_OK(medvlm_encoder_init(m, 1, &enc));
        CHECK_OK(medvlm_encode_text_ex(enc, ids, mask, 1, T, &o));
        CHECK(same(pooled, last + want * C, (size_t)C), "eos_token_id %d: pooled not at %d", sh.eos,
              want);
        CHECK(!same(pooled, last + (want == 2 ? 3 : 2) * C, (size_t)C), "eos: rows equal");
        /* the packed path pools at the same row */
        float pooled2[16];
        struct medvlm_encode_out o2 = {NULL, NULL, pooled2, NULL, NULL};
        CHECK_OK(medvlm_encode_text_ex(enc, ids, mask, 1, T, &o2));
        CHECK(close_batch(pooled, pooled2, (size_t)C), "eos: packed pooled differs");
        medvlm_encoder_free(enc);
        medvlm_model_free(m);
    }
}

int main(void)
{
    mv_rng_seed(&rng, 99);
    /* C, I, L, NH, S, P, act, eos, V, T */
    const struct shape shapes[] = {
        {32, 64, 2, 4, 32, 8, MEDVLM_ACT_QUICK_GELU, 2, 300, 20},
        {48, 80, 3, 3, 30, 6, MEDVLM_ACT_GELU, 250, 300, 33},
        {20, 36, 1, 1, 16, 16, MEDVLM_ACT_GELU, 99, 100, 5},
    };
    for (size_t i = 0; i < MV_ARRAY_LEN(shapes); i++) {
        test_vision(&shapes[i]);
        test_text(&shapes[i]);
    }
    test_eos_conventions();
    CHECK_ERR(medvlm_encoder_init(NULL, 1, &(struct medvlm_encoder *){NULL}), MEDVLM_ERR_ARG,
              "model is NULL");
    printf("largest difference between batch compositions: %.3g (tolerance %g)\n", worst_batch_diff,
           BATCH_TOL);
    return check_summary();
}

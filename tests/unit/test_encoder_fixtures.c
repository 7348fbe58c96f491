/* test_encoder_fixtures.c - medvlm's forward pass against PyTorch on the tiny models of
 * tests/data/enc-* (exact gelu and quick_gelu, both eos_token_id conventions, other head
 * counts, image and patch sizes, LayerNorm eps): every hidden state, pooled output,
 * embedding, logits and the CLIP loss. Regenerate with tools/gen_encoder_fixtures.py. */
#include "check.h"
#include "io/io.h"

#include <stdlib.h>

static const float *get(const struct medvlm_st *st, const char *name, size_t *n)
{
    const struct medvlm_tensor_info *t = medvlm_st_find(st, name);
    CHECK(t && t->dtype == MEDVLM_DTYPE_F32, "fixture tensor %s", name);
    if (!t) return NULL;
    *n = t->nbytes / 4;
    return t->data;
}

static int64_t *get_i64(const struct medvlm_st *st, const char *name, int *rows, int *cols)
{
    const struct medvlm_tensor_info *t = medvlm_st_find(st, name);
    CHECK(t && t->dtype == MEDVLM_DTYPE_I64 && t->ndim == 2, "fixture tensor %s", name);
    if (!t) return NULL;
    *rows = (int)t->shape[0], *cols = (int)t->shape[1];
    int64_t *p = mv_malloc(t->nbytes);
    memcpy(p, t->data, t->nbytes);
    return p;
}

static void compare(const struct medvlm_st *st, const char *fixture, const char *name,
                    const float *got, size_t n, double atol, double rtol)
{
    size_t nr = 0;
    const float *ref = get(st, name, &nr);
    if (!ref) return;
    char label[256];
    snprintf(label, sizeof label, "%s %s", fixture, name);
    CHECK(nr == n, "%s: %zu values, expected %zu", label, n, nr);
    if (nr == n) check_close_f32(label, got, ref, n, atol, rtol);
}

static void run_fixture(const char *dir, const char *fixture)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/expected.safetensors", dir);
    struct medvlm_model *m = NULL;
    struct medvlm_st *st = NULL;
    int64_t *ids = NULL, *mask = NULL;
    CHECK_OK(medvlm_model_load(dir, MEDVLM_LOAD_ALL, &m));
    CHECK_OK(medvlm_st_open(path, &st));
    if (!m || !st) goto done;
    const struct medvlm_config *cfg = medvlm_model_config(m);
    const struct medvlm_tower_config *v = &cfg->vision, *t = &cfg->text;
    const int D = cfg->projection_dim, S = v->image_size, g = S / v->patch_size, N = 1 + g * g;
    size_t npx;
    const float *px = get(st, "pixels", &npx);
    int P, T;
    ids = get_i64(st, "input_ids", &P, &T);
    mask = get_i64(st, "attention_mask", &P, &T);
    if (!px || !ids || !mask) goto done;
    const int NI = (int)(npx / (3 * (size_t)S * S));
    struct medvlm_encoder *enc = NULL;
    CHECK_OK(medvlm_encoder_init(m, 2, &enc)); /* < NI: chunked passes */
    /* vision */
    int Cv = v->hidden_size, Lv = v->num_hidden_layers;
    float *vh = calloc((size_t)(Lv + 1) * NI * N * Cv, 4), *vl = calloc((size_t)NI * N * Cv, 4);
    float *vp = calloc((size_t)NI * Cv, 4), *vu = calloc((size_t)NI * D, 4),
          *ve = calloc((size_t)NI * D, 4);
    struct medvlm_encode_out vo = {ve, vu, vp, vl, vh};
    CHECK_OK(medvlm_encode_images_ex(enc, px, NI, &vo));
    compare(st, fixture, "vision.hidden_states", vh, (size_t)(Lv + 1) * NI * N * Cv, 1e-5, 1e-4);
    compare(st, fixture, "vision.last_hidden_state", vl, (size_t)NI * N * Cv, 1e-5, 1e-4);
    compare(st, fixture, "vision.pooler_output", vp, (size_t)NI * Cv, 1e-5, 1e-4);
    compare(st, fixture, "vision.embeds_unnorm", vu, (size_t)NI * D, 1e-5, 1e-4);
    compare(st, fixture, "vision.embeds", ve, (size_t)NI * D, 2e-6, 0);
    /* text: full path (hidden states), then the packed path (embeddings only) */
    int Ct = t->hidden_size, Lt = t->num_hidden_layers;
    float *th = calloc((size_t)(Lt + 1) * P * T * Ct, 4), *tl = calloc((size_t)P * T * Ct, 4);
    float *tp = calloc((size_t)P * Ct, 4), *tu = calloc((size_t)P * D, 4),
          *te = calloc((size_t)P * D, 4);
    float *te2 = calloc((size_t)P * D, 4);
    struct medvlm_encode_out to = {te, tu, tp, tl, th};
    CHECK_OK(medvlm_encode_text_ex(enc, ids, mask, P, T, &to));
    compare(st, fixture, "text.hidden_states", th, (size_t)(Lt + 1) * P * T * Ct, 1e-5, 1e-4);
    compare(st, fixture, "text.last_hidden_state", tl, (size_t)P * T * Ct, 1e-5, 1e-4);
    compare(st, fixture, "text.pooler_output", tp, (size_t)P * Ct, 1e-5, 1e-4);
    compare(st, fixture, "text.embeds_unnorm", tu, (size_t)P * D, 1e-5, 1e-4);
    compare(st, fixture, "text.embeds", te, (size_t)P * D, 2e-6, 0);
    CHECK_OK(medvlm_encode_text(enc, ids, mask, P, T, te2));
    compare(st, fixture, "text.embeds", te2, (size_t)P * D, 2e-6, 0);
    /* logits and the loss on the first min(NI, P) pairs */
    float *lpi = calloc((size_t)NI * P, 4);
    CHECK_OK(medvlm_clip_logits(m, ve, NI, te, P, lpi, NULL));
    compare(st, fixture, "logits_per_image", lpi, (size_t)NI * P, 1e-4, 1e-4);
    int B = NI < P ? NI : P;
    float *sq = calloc((size_t)B * B, 4), loss = 0;
    for (int i = 0; i < B; i++)
        for (int j = 0; j < B; j++) sq[i * B + j] = lpi[(size_t)i * P + j];
    CHECK_OK(medvlm_clip_loss(sq, B, &loss));
    compare(st, fixture, "loss", &loss, 1, 2e-5, 1e-4);
    free(vh), free(vl), free(vp), free(vu), free(ve), free(th), free(tl), free(tp), free(tu);
    free(te), free(te2), free(lpi), free(sq);
    medvlm_encoder_free(enc);
done:
    mv_free(ids);
    mv_free(mask);
    medvlm_st_free(st);
    medvlm_model_free(m);
}

int main(void)
{
    const char *src = getenv("MEDVLM_SOURCE_DIR");
    if (!src || !*src) {
        fprintf(stderr, "MEDVLM_SOURCE_DIR is not set (ctest sets it)\n");
        return 1;
    }
    const char *fixtures[] = {"enc-a", "enc-b"};
    for (size_t i = 0; i < sizeof fixtures / sizeof *fixtures; i++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/tests/data/%s", src, fixtures[i]);
        run_fixture(dir, fixtures[i]);
    }
    return check_summary();
}

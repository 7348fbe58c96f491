/*
 * test_precision.c - the encoders' precisions (medvlm_model_prepare, docs/precision.md) at the
 * model level, on the golden set tiny-a (its model, its preprocessed pixels crop.{i} and its
 * prompts' tokens) and on a random model made in memory.
 *
 * fp32: a prepared model embeds bit for bit as an unprepared one, images and text, one input
 * per pass (few rows: the skinny route) and all of them in one pass (more than 64 rows: the
 * packed team, which reads the prepared panels instead of packing W); one image of 32..64
 * tokens (or a prompt of 32..64) is close, not bitwise (prepared: the packed panels;
 * unprepared: the skinny kernel).
 * bf16: every image and text embedding within cosine MIN_COS of the fp32 one (the minima are
 * printed: docs/precision.md quotes them), 1 thread == 2 threads bitwise, and on the golden
 * images the zero-shot class (single and ensemble prompts, prototypes embedded at the same
 * precision) as fp32's. On a CPU without AVX512_BF16 the portable path runs, which computes
 * vdpbf16ps exactly, so the same bits come out everywhere.
 * The API: prepare twice, parse / name / resolve, medvlm_model_precision.
 */
#include "check.h"
#include "golden_path.h"
#include "io/io.h"
#include "model/model.h"

#define MIN_COS 0.999

/* What both towers embed: n images (n, 3, S, S) and P prompts (P, T) (mask NULL: all ones). */
struct inputs {
    int n, S, P, T;
    float *pixels;
    int64_t *ids, *mask;
};

static float *fbuf(size_t n)
{
    return mv_calloc(n ? n : 1, sizeof(float));
}

static int same(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof(float)) == 0;
}

/* img (n, D), txt (P, D): m's embeddings of in, passes of at most `batch` inputs, at `threads`. */
static void embed(const struct medvlm_model *m, const struct inputs *in, int batch, int threads,
                  float *img, float *txt)
{
    struct medvlm_encoder *enc = NULL;
    CHECK_OK(medvlm_set_threads(threads));
    CHECK_OK(medvlm_encoder_init(m, batch, &enc));
    if (enc) {
        CHECK_OK(medvlm_encode_images(enc, in->pixels, in->n, img));
        CHECK_OK(medvlm_encode_text(enc, in->ids, in->mask, in->P, in->T, txt));
    }
    medvlm_encoder_free(enc);
    CHECK_OK(medvlm_set_threads(2));
}

/* The smallest cosine between rows of a and b (R, D), folded into *min. */
static void min_cosine(const float *a, const float *b, int R, int D, double *min)
{
    for (int r = 0; r < R; r++) {
        double ab = 0, aa = 0, bb = 0;
        for (int d = 0; d < D; d++) {
            double x = a[(size_t)r * D + d], y = b[(size_t)r * D + d];
            ab += x * y, aa += x * x, bb += y * y;
        }
        double c = ab / sqrt(aa * bb);
        if (!(c >= *min)) *min = c; /* NaN too */
    }
}

/* The three models hold the same weights: plain unprepared, f32 prepared FP32, b16 prepared
 * BF16 (by the caller). Checks the properties of the top comment and prints the smallest
 * cosines of bf16 vs fp32 over batch 1 and the whole batch. ref_img (n, D), ref_txt (P, D)
 * receive the fp32 embeddings (plain, whole batch). */
static void check_models(const char *name, const struct medvlm_model *plain,
                         const struct medvlm_model *f32, const struct medvlm_model *b16,
                         const struct inputs *in, float *ref_img, float *ref_txt)
{
    struct {
        double img, txt;
    } cos = {1, 1};
    const struct medvlm_config *cfg = medvlm_model_config(plain);
    const int D = cfg->projection_dim, n = in->n, P = in->P, all = MV_MAX(n, P);
    const int g = cfg->vision.image_size / cfg->vision.patch_size, N = 1 + g * g;
    /* the whole batch must reach the packed kernel (more than 64 rows); one image of 50 tokens
     * (tiny-a, the random model) is the skinny kernel's */
    CHECK(n * N > 64 && P * in->T > 64, "%s: rows %d (all images), %d (all prompts): want > 64",
          name, n * N, P * in->T);
    printf("%s: rows per product: %d (1 image), %d (%d images), up to %d (%d prompts)\n", name, N,
           n * N, n, P * in->T, P);
    CHECK(medvlm_model_precision(plain) == MEDVLM_PRECISION_FP32 &&
              medvlm_model_precision(f32) == MEDVLM_PRECISION_FP32 &&
              medvlm_model_precision(b16) == MEDVLM_PRECISION_BF16,
          "%s: precisions %s, %s, %s", name, medvlm_precision_name(medvlm_model_precision(plain)),
          medvlm_precision_name(medvlm_model_precision(f32)),
          medvlm_precision_name(medvlm_model_precision(b16)));
    printf("%s: the fp32-prepared model %s\n", name,
           f32->packed ? "holds the packed panels"
                       : "copies nothing (the packed kernel does not run on this CPU)");
    float *img = fbuf((size_t)n * D), *txt = fbuf((size_t)P * D);
    float *img2 = fbuf((size_t)n * D), *txt2 = fbuf((size_t)P * D);
    float *ref1_img = fbuf((size_t)n * D), *ref1_txt = fbuf((size_t)P * D);

    /* fp32 prepared == unprepared, bitwise, at batch 1 and at the whole batch; except one
     * image of 32..64 tokens, which a prepared model runs on the packed panels (split by
     * columns) and an unprepared one on the skinny kernel: other sums, the same to ~1e-7 */
    embed(plain, in, 1, 2, ref1_img, ref1_txt);
    embed(f32, in, 1, 2, img, txt);
    if (f32->packed && N >= 32 && N <= 64)
        check_close_f32("fp32 prepared vs unprepared, images, batch 1", img, ref1_img,
                        (size_t)n * D, 2e-5, 1e-4);
    else
        CHECK(same(img, ref1_img, (size_t)n * D),
              "%s: fp32 prepared != unprepared, images, batch 1", name);
    if (f32->packed) /* a prompt's tokens may be 32..64 rows too */
        check_close_f32("fp32 prepared vs unprepared, text, batch 1", txt, ref1_txt, (size_t)P * D,
                        2e-5, 1e-4);
    else
        CHECK(same(txt, ref1_txt, (size_t)P * D), "%s: fp32 prepared != unprepared, text, batch 1",
              name);
    embed(plain, in, all, 2, ref_img, ref_txt);
    embed(f32, in, all, 2, img, txt);
    CHECK(same(img, ref_img, (size_t)n * D), "%s: fp32 prepared != unprepared, images, batch %d",
          name, n);
    CHECK(same(txt, ref_txt, (size_t)P * D), "%s: fp32 prepared != unprepared, text, batch %d",
          name, P);

    /* bf16: 1 thread == 2 threads bitwise; close to fp32 at both batch sizes */
    embed(b16, in, all, 2, img, txt);
    embed(b16, in, all, 1, img2, txt2);
    CHECK(same(img, img2, (size_t)n * D), "%s: bf16 images, 1 thread != 2 threads", name);
    CHECK(same(txt, txt2, (size_t)P * D), "%s: bf16 text, 1 thread != 2 threads", name);
    CHECK(!same(img, ref_img, (size_t)n * D) && !same(txt, ref_txt, (size_t)P * D),
          "%s: bf16 embeds as fp32 does, bit for bit: the bf16 products did not run", name);
    min_cosine(img, ref_img, n, D, &cos.img);
    min_cosine(txt, ref_txt, P, D, &cos.txt);
    embed(b16, in, 1, 2, img2, txt2);
    min_cosine(img2, ref1_img, n, D, &cos.img);
    min_cosine(txt2, ref1_txt, P, D, &cos.txt);
    CHECK(cos.img >= MIN_COS, "%s: bf16 vs fp32 image embeddings: min cosine %.7f < %g", name,
          cos.img, MIN_COS);
    CHECK(cos.txt >= MIN_COS, "%s: bf16 vs fp32 text embeddings: min cosine %.7f < %g", name,
          cos.txt, MIN_COS);
    printf("%s: bf16 vs fp32, min cosine of %d image embeddings %.7f (1 - cos %.1e), of %d "
           "text embeddings %.7f (1 - cos %.1e)\n",
           name, n, cos.img, 1 - cos.img, P, cos.txt, 1 - cos.txt);
    mv_free(img);
    mv_free(txt);
    mv_free(img2);
    mv_free(txt2);
    mv_free(ref1_img);
    mv_free(ref1_txt);
}

/* Preparing again is refused, whatever the precision asked. */
static void check_prepare_twice(struct medvlm_model *m)
{
    enum medvlm_precision before = medvlm_model_precision(m);
    CHECK_ERR(medvlm_model_prepare(m, MEDVLM_PRECISION_FP32), MEDVLM_ERR_ARG, "prepared already");
    CHECK_ERR(medvlm_model_prepare(m, MEDVLM_PRECISION_BF16), MEDVLM_ERR_ARG, "prepared already");
    CHECK(medvlm_model_precision(m) == before, "a refused prepare changed the precision");
}

/* ---- the golden set ---- */

/* An I64 (rows, cols) tensor of an open file, copied (the mapping need not be 8-aligned). */
static int64_t *read_i64(const struct medvlm_st *st, const char *name, int *rows, int *cols)
{
    const struct medvlm_tensor_info *t = medvlm_st_find(st, name);
    CHECK(t && t->dtype == MEDVLM_DTYPE_I64 && t->ndim == 2, "tokens: no I64 [P, T] %s", name);
    if (!t || t->dtype != MEDVLM_DTYPE_I64 || t->ndim != 2) return NULL;
    *rows = (int)t->shape[0];
    *cols = (int)t->shape[1];
    int64_t *v = mv_malloc(t->nbytes);
    if (v) memcpy(v, t->data, t->nbytes);
    return v;
}

/* The set's preprocessed pixels (crop.{i}, i < manifest images) and prompt tokens. */
static int golden_inputs(const char *g, int n, struct inputs *in)
{
    char path[4096];
    struct medvlm_st *px = NULL, *tk = NULL;
    int P2 = 0, T2 = 0;
    snprintf(path, sizeof path, "%s/expected/pixels.safetensors", g);
    CHECK_OK(medvlm_st_open(path, &px));
    snprintf(path, sizeof path, "%s/expected/tokens.safetensors", g);
    CHECK_OK(medvlm_st_open(path, &tk));
    if (!px || !tk) goto done;
    in->n = n;
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "crop.%d", i);
        const struct medvlm_tensor_info *t = medvlm_st_find(px, name);
        CHECK(t && t->dtype == MEDVLM_DTYPE_F32 && t->ndim == 3 && t->shape[0] == 3 &&
                  t->shape[1] == t->shape[2] && (i == 0 || t->shape[1] == in->S),
              "pixels: %s missing or not F32 [3, S, S]", name);
        if (!t || t->ndim != 3 || t->shape[1] != t->shape[2] || (i && t->shape[1] != in->S))
            goto done;
        if (i == 0) {
            in->S = (int)t->shape[1];
            in->pixels = fbuf((size_t)n * t->nbytes / sizeof(float));
        }
        memcpy(in->pixels + (size_t)i * t->nbytes / sizeof(float), t->data, t->nbytes);
    }
    in->ids = read_i64(tk, "input_ids", &in->P, &in->T);
    in->mask = read_i64(tk, "attention_mask", &P2, &T2);
    CHECK(in->ids && in->mask && P2 == in->P && T2 == in->T, "tokens: ids and mask differ");
done:
    medvlm_st_free(px);
    medvlm_st_free(tk);
    return in->pixels && in->ids && in->mask && P2 == in->P && T2 == in->T;
}

/* The manifest's prompts, single (one per class) or ensemble (a list per class); texts point
 * into the manifest. Returns the number of prompts, 0 on a malformed manifest. */
static int manifest_prompts(const cJSON *man, int ensemble, const char **texts, int *cls, int cap,
                            int *k)
{
    const cJSON *classes = cJSON_GetObjectItemCaseSensitive(man, "classes");
    const cJSON *src =
        cJSON_GetObjectItemCaseSensitive(man, ensemble ? "ensemble_prompts" : "single_prompts");
    int n = 0;
    *k = cJSON_GetArraySize(classes);
    for (int c = 0; c < *k; c++) {
        const cJSON *name = cJSON_GetArrayItem(classes, c);
        const cJSON *list =
            ensemble ? cJSON_GetObjectItemCaseSensitive(src, name->valuestring) : NULL;
        const cJSON *p = ensemble ? (list ? list->child : NULL) : cJSON_GetArrayItem(src, c);
        for (; p && n < cap; p = ensemble ? p->next : NULL) {
            if (!cJSON_IsString(p)) return 0;
            texts[n] = p->valuestring;
            cls[n++] = c;
        }
    }
    return n;
}

/* pred (n): the zero-shot class of each image embedding img (n, D) against prototypes that
 * m's text tower makes of the manifest's prompts; *margin: the smallest top-1 - top-2 logit. */
static void zeroshot(const struct medvlm_model *m, const struct medvlm_tokenizer *tok,
                     const cJSON *man, int ensemble, const float *img, int n, int *pred,
                     float *margin)
{
    const struct medvlm_config *cfg = medvlm_model_config(m);
    const int D = cfg->projection_dim;
    const char *texts[64];
    int cls[64], k = 0;
    int np = manifest_prompts(man, ensemble, texts, cls, 64, &k);
    CHECK(np >= k && k >= 2 && k <= 16, "manifest: %s prompts", ensemble ? "ensemble" : "single");
    if (np < k || k < 2 || k > 16) return;
    float *protos = fbuf((size_t)k * D), *logits = fbuf((size_t)n * k);
    struct medvlm_encoder *enc = NULL;
    CHECK_OK(medvlm_encoder_init(m, 16, &enc));
    if (enc)
        CHECK_OK(medvlm_zeroshot_prototypes(enc, tok, cfg->text.max_position_embeddings, texts, cls,
                                            np, k, D, protos));
    CHECK_OK(
        medvlm_zeroshot_logits(img, n, protos, k, D, medvlm_model_logit_scale(m), logits, NULL));
    *margin = INFINITY;
    for (int i = 0; i < n; i++) {
        const float *l = logits + (size_t)i * k;
        int best = 0;
        for (int c = 1; c < k; c++)
            if (l[c] > l[best]) best = c;
        float second = -INFINITY;
        for (int c = 0; c < k; c++)
            if (c != best && l[c] > second) second = l[c];
        pred[i] = best;
        *margin = fminf(*margin, l[best] - second);
    }
    medvlm_encoder_free(enc);
    mv_free(protos);
    mv_free(logits);
}

static void compare_expected(const char *g, const char *file, const char *tensor, const float *got,
                             size_t n)
{
    char path[4096];
    struct medvlm_st *st = NULL;
    snprintf(path, sizeof path, "%s/expected/%s", g, file);
    CHECK_OK(medvlm_st_open(path, &st));
    const struct medvlm_tensor_info *t = st ? medvlm_st_find(st, tensor) : NULL;
    CHECK(t && t->nbytes == n * sizeof(float), "%s: %s missing or of another size", file, tensor);
    if (t && t->nbytes == n * sizeof(float)) {
        float *ref = fbuf(n);
        memcpy(ref, t->data, t->nbytes);
        check_close_f32(tensor, got, ref, n, 2e-5, 0);
        mv_free(ref);
    }
    medvlm_st_free(st);
}

static void test_golden(void)
{
    const char *g = test_golden_dir();
    char path[4096];
    cJSON *man = NULL;
    snprintf(path, sizeof path, "%s/manifest.json", g);
    CHECK_OK(mv_json_load(path, &man));
    if (!man) return;
    struct inputs in = {0};
    struct medvlm_model *plain = NULL, *f32 = NULL, *b16 = NULL;
    struct medvlm_tokenizer *tok = NULL;
    snprintf(path, sizeof path, "%s/model", g);
    CHECK_OK(medvlm_model_load(path, MEDVLM_LOAD_ALL, &plain));
    CHECK_OK(medvlm_model_load(path, MEDVLM_LOAD_ALL, &f32));
    CHECK_OK(medvlm_model_load(path, MEDVLM_LOAD_ALL, &b16));
    CHECK_OK(medvlm_tokenizer_load(path, &tok));
    int n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(man, "images"));
    const cJSON *set_name = cJSON_GetObjectItemCaseSensitive(man, "name");
    const char *set = cJSON_IsString(set_name) ? set_name->valuestring : "golden";
    if (!plain || !f32 || !b16 || !tok || !golden_inputs(g, n, &in)) goto done;
    CHECK_OK(medvlm_model_prepare(f32, MEDVLM_PRECISION_FP32));
    CHECK_OK(medvlm_model_prepare(b16, MEDVLM_PRECISION_BF16));
    check_prepare_twice(f32);
    check_prepare_twice(b16);

    const int D = medvlm_model_config(plain)->projection_dim;
    float *img = fbuf((size_t)n * D), *txt = fbuf((size_t)in.P * D);
    float *bimg = fbuf((size_t)n * D), *btxt = fbuf((size_t)in.P * D);
    check_models(set, plain, f32, b16, &in, img, txt);
    /* the fp32 embeddings are the reference's (so the cosines above are to PyTorch's) */
    compare_expected(g, "vision.safetensors", "image_embeds", img, (size_t)n * D);
    compare_expected(g, "text.safetensors", "text_embeds", txt, (size_t)in.P * D);

    /* zero-shot: bf16 image embeddings against bf16 prototypes predict what fp32 does */
    embed(b16, &in, MV_MAX(n, in.P), 2, bimg, btxt);
    for (int ensemble = 0; ensemble < 2; ensemble++) {
        int pf[64], pb[64];
        float mf = 0, mb = 0;
        if (n > 64) break;
        zeroshot(plain, tok, man, ensemble, img, n, pf, &mf);
        zeroshot(b16, tok, man, ensemble, bimg, n, pb, &mb);
        int agree = 0;
        char classes[64 + 1] = "";
        for (int i = 0; i < n; i++) {
            classes[i] = (char)('0' + pf[i] % 10);
            classes[i + 1] = '\0';
            agree += pf[i] == pb[i];
            CHECK(pf[i] == pb[i], "%s zero-shot (%s prompts): image %d: bf16 class %d, fp32 %d",
                  set, ensemble ? "ensemble" : "single", i, pb[i], pf[i]);
        }
        printf("%s zero-shot (%s prompts): bf16 = fp32 on %d of %d images (fp32 classes %s); "
               "smallest top-2 logit margin fp32 %.4f, bf16 %.4f\n",
               set, ensemble ? "ensemble" : "single", agree, n, classes, mf, mb);
    }
    mv_free(img);
    mv_free(txt);
    mv_free(bimg);
    mv_free(btxt);
done:
    medvlm_tokenizer_free(tok);
    medvlm_model_free(plain);
    medvlm_model_free(f32);
    medvlm_model_free(b16);
    mv_free(in.pixels);
    mv_free(in.ids);
    mv_free(in.mask);
    cJSON_Delete(man);
}

/* ---- a random model: wider than tiny-a, so that the products take 2 threads ---- */

static void test_random(void)
{
    struct medvlm_config cfg;
    medvlm_config_default(&cfg);
    cfg.projection_dim = 32;
    struct medvlm_tower_config *t = &cfg.text, *v = &cfg.vision;
    t->hidden_size = 128, t->intermediate_size = 512, t->num_hidden_layers = 2;
    t->num_attention_heads = 4, t->vocab_size = 1000, t->max_position_embeddings = 16;
    v->hidden_size = 128, v->intermediate_size = 512, v->num_hidden_layers = 2;
    v->num_attention_heads = 4, v->image_size = 56, v->patch_size = 8; /* 50 tokens */
    struct medvlm_model *plain = NULL, *f32 = NULL, *b16 = NULL, *aut = NULL;
    CHECK_OK(medvlm_model_init_random(&cfg, 11, &plain));
    CHECK_OK(medvlm_model_init_random(&cfg, 11, &f32));
    CHECK_OK(medvlm_model_init_random(&cfg, 11, &b16));
    CHECK_OK(medvlm_model_init_random(&cfg, 11, &aut));
    struct inputs in = {.n = 4, .S = v->image_size, .P = 8, .T = t->max_position_embeddings};
    if (!plain || !f32 || !b16 || !aut) goto done;
    CHECK_OK(medvlm_model_prepare(f32, MEDVLM_PRECISION_FP32));
    CHECK_OK(medvlm_model_prepare(b16, MEDVLM_PRECISION_BF16));
    CHECK_OK(medvlm_model_prepare(aut, MEDVLM_PRECISION_AUTO));
    CHECK(medvlm_model_precision(aut) == medvlm_precision_resolve(MEDVLM_PRECISION_AUTO),
          "prepare(AUTO) runs %s, resolve(AUTO) says %s",
          medvlm_precision_name(medvlm_model_precision(aut)),
          medvlm_precision_name(medvlm_precision_resolve(MEDVLM_PRECISION_AUTO)));
    check_prepare_twice(aut);

    struct mv_rng rng;
    mv_rng_seed(&rng, 5);
    size_t npx = (size_t)in.n * 3 * in.S * in.S;
    in.pixels = fbuf(npx);
    in.ids = mv_malloc((size_t)in.P * in.T * sizeof(int64_t));
    if (!in.pixels || !in.ids) goto done;
    for (size_t i = 0; i < npx; i++) in.pixels[i] = mv_rng_normal(&rng);
    for (size_t i = 0; i < (size_t)in.P * in.T; i++)
        in.ids[i] = (int64_t)mv_rng_below(&rng, (uint64_t)t->vocab_size);
    const int D = cfg.projection_dim;
    float *img = fbuf((size_t)in.n * D), *txt = fbuf((size_t)in.P * D);
    check_models("random", plain, f32, b16, &in, img, txt);
    mv_free(img);
    mv_free(txt);
done:
    medvlm_model_free(plain);
    medvlm_model_free(f32);
    medvlm_model_free(b16);
    medvlm_model_free(aut);
    mv_free(in.pixels);
    mv_free(in.ids);
}

static void test_api(void)
{
    static const enum medvlm_precision all[] = {MEDVLM_PRECISION_AUTO, MEDVLM_PRECISION_FP32,
                                                MEDVLM_PRECISION_BF16};
    for (int i = 0; i < (int)MV_ARRAY_LEN(all); i++) {
        enum medvlm_precision p = MEDVLM_PRECISION_AUTO;
        const char *name = medvlm_precision_name(all[i]);
        CHECK_OK(medvlm_precision_parse(name, &p));
        CHECK(p == all[i], "parse(name(%d) = \"%s\") = %d", (int)all[i], name, (int)p);
    }
    CHECK(strcmp(medvlm_precision_name(MEDVLM_PRECISION_FP32), "fp32") == 0 &&
              strcmp(medvlm_precision_name(MEDVLM_PRECISION_BF16), "bf16") == 0 &&
              strcmp(medvlm_precision_name(MEDVLM_PRECISION_AUTO), "auto") == 0,
          "names");
    enum medvlm_precision p = MEDVLM_PRECISION_BF16;
    CHECK_ERR(medvlm_precision_parse("fp16", &p), MEDVLM_ERR_ARG, "fp16");
    CHECK_ERR(medvlm_precision_parse("fp16", &p), MEDVLM_ERR_ARG, "expected fp32, bf16 or auto");
    CHECK_ERR(medvlm_precision_parse("FP32", &p), MEDVLM_ERR_ARG, "expected fp32, bf16 or auto");
    CHECK_ERR(medvlm_precision_parse(NULL, &p), MEDVLM_ERR_ARG, "expected fp32, bf16 or auto");
    CHECK(p == MEDVLM_PRECISION_BF16, "a refused parse changed *p");
    enum medvlm_precision a = medvlm_precision_resolve(MEDVLM_PRECISION_AUTO);
    CHECK(a == MEDVLM_PRECISION_FP32 || a == MEDVLM_PRECISION_BF16, "resolve(AUTO) = %d", (int)a);
    CHECK(medvlm_precision_resolve(MEDVLM_PRECISION_FP32) == MEDVLM_PRECISION_FP32 &&
              medvlm_precision_resolve(MEDVLM_PRECISION_BF16) == MEDVLM_PRECISION_BF16,
          "resolve of FP32 / BF16 changed them");
    const char *why = mv_precision_auto_reason();
    CHECK(why && *why, "no reason for auto");
    printf("precision auto on this CPU: %s (%s)\n", medvlm_precision_name(a), why ? why : "");
}

int main(void)
{
    test_api();
    test_random();
    test_golden();
    return check_summary();
}

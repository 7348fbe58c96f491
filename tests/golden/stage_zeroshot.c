/*
 * stage_zeroshot.c - golden stage `zeroshot`: single-prompt and ensemble prototypes from the
 * manifest's prompts (this program's tokenizer and text tower), and the logits / softmax of
 * the set's images (the vision stage's reference inputs) against them.
 */
#include "golden.h"

#include "../../src/io/io.h"

#include <stdio.h>
#include <string.h>

/* Prompts of the manifest: "single_prompts" (one per class) or "ensemble_prompts" (a list per
 * class name, in "classes" order). texts/cls are allocated; *n set. */
static enum medvlm_status manifest_prompts(const struct golden_ctx *g, int ensemble,
                                           const char ***texts, int **cls, int *n, int *k)
{
    const cJSON *classes = cJSON_GetObjectItemCaseSensitive(g->manifest, "classes");
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(g->manifest, ensemble ? "ensemble_prompts"
                                                                              : "single_prompts");
    *k = cJSON_GetArraySize(classes);
    int total = 0;
    for (int c = 0; c < *k; c++) {
        const cJSON *name = cJSON_GetArrayItem(classes, c);
        const cJSON *list = ensemble && cJSON_IsString(name)
                                ? cJSON_GetObjectItemCaseSensitive(src, name->valuestring)
                                : NULL;
        total += ensemble ? cJSON_GetArraySize(list) : 1;
    }
    if (*k < 1 || total < *k)
        return mv_err(MEDVLM_ERR_FORMAT, "manifest: classes / %s missing or empty",
                      ensemble ? "ensemble_prompts" : "single_prompts");
    *texts = mv_calloc((size_t)total, sizeof **texts);
    *cls = mv_calloc((size_t)total, sizeof **cls);
    if (!*texts || !*cls) return MEDVLM_ERR_NOMEM;
    *n = 0;
    for (int c = 0; c < *k; c++) {
        const cJSON *name = cJSON_GetArrayItem(classes, c);
        if (!ensemble) {
            const cJSON *p = cJSON_GetArrayItem(src, c);
            if (!cJSON_IsString(p))
                return mv_err(MEDVLM_ERR_FORMAT, "manifest: single_prompts[%d] is not a string", c);
            (*texts)[*n] = p->valuestring;
            (*cls)[(*n)++] = c;
            continue;
        }
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(src, name->valuestring);
        for (const cJSON *p = list ? list->child : NULL; p; p = p->next) {
            if (!cJSON_IsString(p))
                return mv_err(MEDVLM_ERR_FORMAT, "manifest: ensemble_prompts.%s has a non-string",
                              name->valuestring);
            (*texts)[*n] = p->valuestring;
            (*cls)[(*n)++] = c;
        }
    }
    return MEDVLM_OK;
}

enum medvlm_status golden_stage_zeroshot(struct golden_ctx *g)
{
    struct medvlm_model *m;
    struct medvlm_encoder *enc = NULL;
    struct medvlm_tokenizer *tok = NULL;
    struct medvlm_st_writer *w = NULL;
    float *pixels = NULL, *feats = NULL, *protos = NULL, *logits = NULL, *probs = NULL;
    const char **texts = NULL;
    int *cls = NULL;
    int n = 0, S = 0;
    enum medvlm_status s = golden_model(g, &m);
    if (s) return s;
    const struct medvlm_config *cfg = medvlm_model_config(m);
    const int D = cfg->projection_dim;
    if ((s = golden_pixel_inputs(g, &pixels, &n, &S))) goto done;
    if ((s = medvlm_tokenizer_load(g->model_dir, &tok))) goto done;
    if ((s = medvlm_encoder_init(m, 16, &enc))) goto done;
    if ((s = medvlm_st_writer_init(&w))) goto done;
    feats = mv_malloc((size_t)n * D * sizeof(float));
    if (!feats) {
        s = MEDVLM_ERR_NOMEM;
        goto done;
    }
    if ((s = medvlm_encode_images(enc, pixels, n, feats))) goto done;
    for (int ensemble = 0; ensemble < 2; ensemble++) {
        const char *kind = ensemble ? "ensemble" : "single";
        int np = 0, k = 0;
        mv_free(texts);
        mv_free(cls);
        texts = NULL;
        cls = NULL;
        if ((s = manifest_prompts(g, ensemble, &texts, &cls, &np, &k))) goto done;
        mv_free(protos);
        mv_free(logits);
        mv_free(probs);
        protos = mv_malloc((size_t)k * D * sizeof(float));
        logits = mv_malloc((size_t)n * k * sizeof(float));
        probs = mv_malloc((size_t)n * k * sizeof(float));
        if (!protos || !logits || !probs) {
            s = MEDVLM_ERR_NOMEM;
            goto done;
        }
        if ((s = medvlm_zeroshot_prototypes(enc, tok, cfg->text.max_position_embeddings, texts, cls,
                                            np, k, D, protos)) ||
            (s = medvlm_zeroshot_logits(feats, n, protos, k, D, medvlm_model_logit_scale(m), logits,
                                        probs)))
            goto done;
        char name[64];
        snprintf(name, sizeof name, "prototypes_%s", kind);
        if ((s = medvlm_st_writer_add(w, name, MEDVLM_DTYPE_F32, 2, (int64_t[]){k, D}, protos)))
            goto done;
        snprintf(name, sizeof name, "logits_%s", kind);
        if ((s = medvlm_st_writer_add(w, name, MEDVLM_DTYPE_F32, 2, (int64_t[]){n, k}, logits)))
            goto done;
        snprintf(name, sizeof name, "probs_%s", kind);
        if ((s = medvlm_st_writer_add(w, name, MEDVLM_DTYPE_F32, 2, (int64_t[]){n, k}, probs)))
            goto done;
    }
    s = golden_save(g, w, "zeroshot.safetensors");
done:
    medvlm_st_writer_free(w);
    medvlm_encoder_free(enc);
    medvlm_tokenizer_free(tok);
    mv_free(pixels);
    mv_free(feats);
    mv_free(protos);
    mv_free(logits);
    mv_free(probs);
    mv_free(texts);
    mv_free(cls);
    return s;
}

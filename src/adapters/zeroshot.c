/*
 * zeroshot.c - zero-shot classification: class prototypes from prompts, logits, softmax.
 *
 * Glossary: N images, K classes, D embedding dim, P prompts, T text length.
 * A class's prototype is the mean of the l2-normalised text embeddings of its prompts,
 * re-normalised (a single prompt: its normalised embedding), as the PEFT-MedVLMs tutorial
 * builds them; logits = exp(logit_scale) * features . prototypes^T.
 */
#include "adapters.h"

#include "../ops/ops.h"

#include <math.h>
#include <string.h>

enum medvlm_status medvlm_zeroshot_prototypes(struct medvlm_encoder *enc,
                                              const struct medvlm_tokenizer *tok, int max_len,
                                              const char *const *texts, const int *text_class,
                                              int n_texts, int k, int d, float *protos)
{
    enum medvlm_status st = MEDVLM_OK;
    const int chunk = 16;
    int32_t *ids32 = NULL;
    int64_t *ids = NULL, *mask = NULL;
    float *emb = NULL;
    int *count = NULL;
    if (!enc || !tok || !texts || !text_class || n_texts < 1 || k < 1 || d < 1 || max_len < 2 ||
        !protos)
        return mv_err(MEDVLM_ERR_ARG, "zero-shot prototypes: bad arguments");
    ids32 = mv_calloc((size_t)chunk * max_len, 2 * sizeof(int32_t));
    ids = mv_calloc((size_t)chunk * max_len, sizeof(int64_t));
    mask = mv_calloc((size_t)chunk * max_len, sizeof(int64_t));
    emb = mv_calloc((size_t)chunk * d, sizeof(float));
    count = mv_calloc((size_t)k, sizeof(int));
    if (!ids32 || !ids || !mask || !emb || !count) {
        st = MEDVLM_ERR_NOMEM;
        goto fail;
    }
    memset(protos, 0, (size_t)k * d * sizeof(float));
    for (int first = 0; first < n_texts; first += chunk) {
        int b = MV_MIN(chunk, n_texts - first), len;
        int32_t *mask32 = ids32 + (size_t)chunk * max_len;
        st = medvlm_tokenizer_encode_batch(tok, texts + first, b, max_len, MEDVLM_PAD_LONGEST,
                                           ids32, mask32, &len);
        if (st) {
            mv_err_ctx(st, "zero-shot prompt batch starting at prompt %d", first);
            goto fail;
        }
        for (size_t i = 0; i < (size_t)b * len; i++) {
            ids[i] = ids32[i];
            mask[i] = mask32[i];
        }
        if ((st = medvlm_encode_text(enc, ids, mask, b, len, emb))) goto fail;
        for (int i = 0; i < b; i++) {
            int c = text_class[first + i];
            if (c < 0 || c >= k) {
                st = mv_err(MEDVLM_ERR_ARG, "zero-shot prompt %d: class %d outside 0..%d",
                            first + i, c, k - 1);
                goto fail;
            }
            for (int j = 0; j < d; j++) protos[(size_t)c * d + j] += emb[(size_t)i * d + j];
            count[c]++;
        }
    }
    for (int c = 0; c < k; c++)
        if (count[c] == 0) {
            st = mv_err(MEDVLM_ERR_MISSING, "zero-shot: class %d has no prompt", c);
            goto fail;
        }
    /* mean then re-normalise: the mean's scale cancels, but it is kept for the exact op order */
    for (int c = 0; c < k; c++)
        for (int j = 0; j < d; j++) protos[(size_t)c * d + j] /= (float)count[c];
    mv_l2norm_forward(protos, NULL, protos, k, d);
fail:
    mv_free(ids32);
    mv_free(ids);
    mv_free(mask);
    mv_free(emb);
    mv_free(count);
    return st;
}

enum medvlm_status medvlm_zeroshot_logits(const float *features, int n, const float *protos, int k,
                                          int d, float logit_scale, float *logits, float *probs)
{
    if (!features || !protos || !logits || n < 0 || k < 1 || d < 1)
        return mv_err(MEDVLM_ERR_ARG, "zero-shot logits: bad arguments");
    /* the same kernel and scaling as the adapters' zero-shot method: identical logits */
    mv_mm_nt(logits, features, protos, n, k, d);
    const float s = expf(logit_scale);
    for (size_t i = 0; i < (size_t)n * k; i++) logits[i] *= s;
    if (probs) mv_softmax_forward(probs, logits, n, k);
    return MEDVLM_OK;
}

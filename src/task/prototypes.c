/*
 * prototypes.c - prompts -> zero-shot class prototypes.
 *
 * Glossary: K classes, D embedding dim, P prompts, T text length.
 * A class's prototype is the mean of the l2-normalised text embeddings of its prompts,
 * re-normalised (a single prompt: its normalised embedding), as the PEFT-MedVLMs tutorial
 * builds them. Prompts are tokenized and encoded in chunks padded to their longest prompt.
 */
#include "task.h"

#include "../ops/ops.h"

#include <string.h>

/* medvlm_zeroshot_prototypes with each text's length in bytes (lens NULL: C strings): a
 * prompt from a JSON file may hold NUL, which the tokenizer drops and reads on past. */
static enum medvlm_status prototypes_n(struct medvlm_encoder *enc,
                                       const struct medvlm_tokenizer *tok, int max_len,
                                       const char *const *texts, const size_t *lens,
                                       const int *text_class, int n_texts, int k, int d,
                                       float *protos)
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
        st = medvlm_tokenizer_encode_batch_n(tok, texts + first, lens ? lens + first : NULL, b,
                                             max_len, MEDVLM_PAD_LONGEST, ids32, mask32, &len);
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

enum medvlm_status medvlm_zeroshot_prototypes(struct medvlm_encoder *enc,
                                              const struct medvlm_tokenizer *tok, int max_len,
                                              const char *const *texts, const int *text_class,
                                              int n_texts, int k, int d, float *protos)
{
    return prototypes_n(enc, tok, max_len, texts, NULL, text_class, n_texts, k, d, protos);
}

enum medvlm_status medvlm_prompts_class_map(const struct medvlm_prompts *pr, const char *pr_what,
                                            const char *const *classes, int k, const char *what,
                                            int *map)
{
    if (!pr || !classes || k < 0 || !map)
        return mv_err(MEDVLM_ERR_ARG, "prompts class map: bad arguments");
    for (int i = 0; i < k; i++) {
        map[i] = -1;
        for (int c = 0; c < pr->n_classes; c++)
            if (strcmp(classes[i], pr->classes[c]) == 0) map[i] = c;
        if (map[i] < 0)
            return mv_err(MEDVLM_ERR_MISSING, "class '%s' of %s has no prompts in %s", classes[i],
                          what ? what : "the data", pr_what ? pr_what : "the prompts");
    }
    return MEDVLM_OK;
}

enum medvlm_status mv_prompts_prototypes_enc(struct medvlm_encoder *enc,
                                             const struct medvlm_model *m,
                                             const struct medvlm_tokenizer *tok,
                                             const struct medvlm_prompts *pr, const int *order,
                                             int k, float *protos)
{
    enum medvlm_status st = MEDVLM_OK;
    const char **texts = NULL;
    size_t *lens = NULL;
    int *text_class = NULL, n_texts = 0;
    if (!enc || !m || !tok || !pr || k < 1 || !protos || (!order && k != pr->n_classes))
        return mv_err(MEDVLM_ERR_ARG, "prompt prototypes: bad arguments");
    for (int i = 0; i < k; i++) {
        const int c = order ? order[i] : i;
        if (c < 0 || c >= pr->n_classes)
            return mv_err(MEDVLM_ERR_ARG, "prompt prototypes: class %d outside the prompts' %d", c,
                          pr->n_classes);
        n_texts += pr->n_prompts[c];
    }
    texts = mv_malloc((size_t)MV_MAX(n_texts, 1) * sizeof *texts);
    text_class = mv_malloc((size_t)MV_MAX(n_texts, 1) * sizeof *text_class);
    lens = mv_malloc((size_t)MV_MAX(n_texts, 1) * sizeof *lens);
    if (!texts || !text_class || !lens) {
        st = mv_err(MEDVLM_ERR_NOMEM, "prompt prototypes: out of memory");
        goto fail;
    }
    for (int i = 0, t = 0; i < k; i++) {
        const int c = order ? order[i] : i;
        for (int j = 0; j < pr->n_prompts[c]; j++, t++) {
            texts[t] = pr->prompts[c][j];
            lens[t] = pr->prompt_lens ? pr->prompt_lens[c][j] : strlen(texts[t]);
            text_class[t] = i;
        }
    }
    const struct medvlm_config *cfg = medvlm_model_config(m);
    st = prototypes_n(enc, tok, cfg->text.max_position_embeddings, texts, lens, text_class, n_texts,
                      k, cfg->projection_dim, protos);
fail:
    mv_free(texts);
    mv_free(lens);
    mv_free(text_class);
    return st;
}

enum medvlm_status medvlm_prompts_prototypes(const struct medvlm_model *m,
                                             const struct medvlm_tokenizer *tok,
                                             const struct medvlm_prompts *pr, const int *order,
                                             int k, float *protos)
{
    struct medvlm_encoder *enc = NULL;
    if (!m) return mv_err(MEDVLM_ERR_ARG, "prompt prototypes: bad arguments");
    enum medvlm_status st = medvlm_encoder_init(m, 32, &enc);
    if (!st) st = mv_prompts_prototypes_enc(enc, m, tok, pr, order, k, protos);
    medvlm_encoder_free(enc);
    return st;
}

enum medvlm_status medvlm_prototypes_from_prompts(const struct medvlm_model *m,
                                                  const char *model_what,
                                                  const struct medvlm_tokenizer *tok,
                                                  const struct medvlm_prompts *pr, const int *order,
                                                  int k, struct medvlm_prototypes **out)
{
    enum medvlm_status st = MEDVLM_OK;
    struct medvlm_prototypes *p = NULL;
    if (!m || !pr || !out || k < 1)
        return mv_err(MEDVLM_ERR_ARG, "prototypes from prompts: bad arguments");
    *out = NULL;
    const int D = medvlm_model_config(m)->projection_dim;
    int ok = (p = mv_calloc(1, sizeof *p)) != NULL;
    if (ok) {
        p->k = k;
        p->d = D;
        p->logit_scale = medvlm_model_logit_scale(m);
        ok = (p->fingerprint = mv_strdup(medvlm_model_fingerprint(m))) &&
             (p->model = mv_strdup(model_what ? model_what : medvlm_model_dir(m))) &&
             (p->prototypes = mv_calloc((size_t)k * D, sizeof(float))) &&
             (p->classes = mv_calloc((size_t)k, sizeof *p->classes));
        for (int i = 0; ok && i < k; i++)
            ok = (p->classes[i] = mv_strdup(pr->classes[order ? order[i] : i])) != NULL;
    }
    if (!ok) {
        st = mv_err(MEDVLM_ERR_NOMEM, "prototypes from prompts: out of memory");
        goto fail;
    }
    if ((st = medvlm_prompts_prototypes(m, tok, pr, order, k, p->prototypes))) goto fail;
    *out = p;
    return MEDVLM_OK;
fail:
    medvlm_prototypes_free(p);
    return st;
}

/* stage_tokens.c - tokens.safetensors: every prompt of prompts.json through the model folder's
 * tokenizer, padded to max length (77) and to the longest prompt; I64 as transformers returns. */
#include "golden.h"

#include "../../src/text/text.h"

#include <string.h>

static enum medvlm_status add_i64(struct medvlm_st_writer *w, const char *name, const int32_t *v,
                                  int rows, int cols)
{
    size_t n = (size_t)rows * (size_t)cols;
    int64_t *tmp = mv_malloc(n * sizeof *tmp);
    if (!tmp) return MEDVLM_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) tmp[i] = v[i];
    int64_t shape[2] = {rows, cols};
    enum medvlm_status st = medvlm_st_writer_add(w, name, MEDVLM_DTYPE_I64, 2, shape, tmp);
    mv_free(tmp);
    return st;
}

enum medvlm_status golden_stage_tokens(struct golden_ctx *g)
{
    struct medvlm_tokenizer *tok = NULL;
    struct medvlm_st_writer *w = NULL;
    int32_t *ids = NULL, *mask = NULL;
    const char **texts = NULL;
    int p = golden_prompt_count(g), len;
    enum medvlm_status st = medvlm_tokenizer_load(g->model_dir, &tok);
    if (st) goto fail;
    if (p <= 0) {
        st = mv_err(MEDVLM_ERR_MISSING, "%s: no prompts (prompts.json)", g->golden_dir);
        goto fail;
    }
    size_t n = (size_t)p * MEDVLM_CLIP_CONTEXT;
    texts = mv_calloc((size_t)p, sizeof *texts);
    ids = mv_calloc(n, sizeof *ids);
    mask = mv_calloc(n, sizeof *mask);
    if (!texts || !ids || !mask) {
        st = MEDVLM_ERR_NOMEM;
        goto fail;
    }
    for (int i = 0; i < p; i++) {
        texts[i] = golden_prompt(g, i);
        if (!texts[i]) {
            st = mv_err(MEDVLM_ERR_FORMAT, "prompts.json: entry %d is not a string", i);
            goto fail;
        }
    }
    if ((st = medvlm_st_writer_init(&w))) goto fail;
    static const struct {
        enum medvlm_pad pad;
        const char *ids, *mask;
    } modes[] = {{MEDVLM_PAD_MAX_LENGTH, "input_ids", "attention_mask"},
                 {MEDVLM_PAD_LONGEST, "input_ids_longest", "attention_mask_longest"}};
    for (size_t m = 0; m < MV_ARRAY_LEN(modes); m++) {
        if ((st = medvlm_tokenizer_encode_batch(tok, texts, p, MEDVLM_CLIP_CONTEXT, modes[m].pad,
                                                ids, mask, &len)) ||
            (st = add_i64(w, modes[m].ids, ids, p, len)) ||
            (st = add_i64(w, modes[m].mask, mask, p, len)))
            goto fail;
    }
    /* openai_ids: OpenAI's simple_tokenizer (clip.tokenize, truncate=True), padded with 0 */
    memset(ids, 0, n * sizeof *ids);
    for (int i = 0; i < p; i++) {
        int k;
        if ((st = mv_tokenizer_encode_openai(tok, texts[i], ids + (size_t)i * MEDVLM_CLIP_CONTEXT,
                                             MEDVLM_CLIP_CONTEXT, &k))) {
            mv_err_ctx(st, "prompt %d", i);
            goto fail;
        }
    }
    if ((st = add_i64(w, "openai_ids", ids, p, MEDVLM_CLIP_CONTEXT))) goto fail;
    st = golden_save(g, w, "tokens.safetensors");
fail:
    medvlm_st_writer_free(w);
    medvlm_tokenizer_free(tok);
    mv_free(texts);
    mv_free(ids);
    mv_free(mask);
    return st;
}

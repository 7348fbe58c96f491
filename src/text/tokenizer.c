/*
 * tokenizer.c - the public CLIP tokenizer: ids identical to Hugging Face's slow
 * CLIPTokenizer (transformers 4.39, without ftfy) for `tokenizer(texts, padding=...,
 * max_length=77, truncation=True)`.
 *
 * encode(text):
 *   1. strict UTF-8 decode (a bad byte is an error naming its offset)
 *   2. split on the literal special tokens "<|startoftext|>" / "<|endoftext|>" (the added-token
 *      trie of PreTrainedTokenizer.tokenize): they become their ids as they are
 *   3. each other segment: normalize.c, then the regex pieces of pretokenize.c
 *   4. each piece: UTF-8 bytes -> BPE (bpe.c); a piece equal to a special token after
 *      lowercasing is that token's id (the slow tokenizer's BPE cache is seeded with them)
 *   5. [bos] + ids + [eos]; longer than max_len: the first max_len - 2 BPE ids are kept
 */
#include "text.h"

#include <stdio.h>
#include <string.h>

struct medvlm_tokenizer {
    struct mv_bpe *bpe;
    int32_t bos, eos, unk;
};

static const char tok_bos[] = "<|startoftext|>", tok_eos[] = "<|endoftext|>";

/* ---- loading ---- */

static int32_t special_id(const struct mv_bpe *b, const char *tok, int32_t added)
{
    int32_t id = mv_bpe_vocab_id(b, tok);
    return id >= 0 ? id : added;
}

enum medvlm_status mv_tokenizer_from_files(const struct mv_bpe_files *f, const char *what,
                                           struct medvlm_tokenizer **out)
{
    *out = NULL;
    struct medvlm_tokenizer *t = mv_calloc(1, sizeof *t);
    if (!t) return MEDVLM_ERR_NOMEM;
    enum medvlm_status st = mv_bpe_build(f, what, &t->bpe);
    if (st) goto fail;
    t->bos = special_id(t->bpe, tok_bos, f->added_bos);
    t->eos = special_id(t->bpe, tok_eos, f->added_eos);
    t->unk = t->eos; /* unk_token = "<|endoftext|>" */
    if (t->bos < 0 || t->eos < 0) {
        st = mv_err(MEDVLM_ERR_MISSING,
                    "%s: the vocabulary has no \"%s\" token (expected a CLIP BPE vocabulary with "
                    "<|startoftext|> and <|endoftext|>)",
                    what, t->bos < 0 ? tok_bos : tok_eos);
        goto fail;
    }
    *out = t;
    return MEDVLM_OK;
fail:
    medvlm_tokenizer_free(t);
    return st;
}

static enum medvlm_status
parse_file(struct mv_bpe_files *f, const char *path,
           enum medvlm_status (*parse)(struct mv_bpe_files *, const char *, const char *, size_t))
{
    char *text;
    size_t len;
    enum medvlm_status st = mv_read_file(path, &text, &len);
    if (st) return st;
    st = parse(f, path, text, len);
    mv_free(text);
    return st;
}

enum medvlm_status medvlm_tokenizer_load_files(const char *tokenizer_json, const char *vocab_json,
                                               const char *merges_txt,
                                               struct medvlm_tokenizer **out)
{
    if (!out) return mv_err(MEDVLM_ERR_ARG, "medvlm_tokenizer_load_files: out is NULL");
    *out = NULL;
    if (!tokenizer_json && (!vocab_json || !merges_txt))
        return mv_err(MEDVLM_ERR_ARG,
                      "medvlm_tokenizer_load_files: give tokenizer.json, or vocab.json and "
                      "merges.txt");
    struct mv_bpe_files f;
    mv_bpe_files_init(&f);
    enum medvlm_status st;
    const char *what = tokenizer_json ? tokenizer_json : vocab_json;
    if (tokenizer_json)
        st = parse_file(&f, tokenizer_json, mv_bpe_parse_tokenizer_json);
    else if (!(st = parse_file(&f, vocab_json, mv_bpe_parse_vocab)))
        st = parse_file(&f, merges_txt, mv_bpe_parse_merges);
    if (!st) st = mv_tokenizer_from_files(&f, what, out);
    mv_bpe_files_free(&f);
    return st;
}

enum medvlm_status medvlm_tokenizer_load(const char *model_dir, struct medvlm_tokenizer **out)
{
    if (!model_dir || !out) return mv_err(MEDVLM_ERR_ARG, "medvlm_tokenizer_load: NULL argument");
    *out = NULL;
    char *tj = mv_path_join(model_dir, "tokenizer.json");
    char *vj = mv_path_join(model_dir, "vocab.json");
    char *mt = mv_path_join(model_dir, "merges.txt");
    enum medvlm_status st;
    if (!tj || !vj || !mt) {
        st = MEDVLM_ERR_NOMEM;
    } else if (mv_path_exists(tj)) { /* a FIFO or folder is refused as such, not skipped */
        st = medvlm_tokenizer_load_files(tj, NULL, NULL, out);
    } else if (mv_path_exists(vj) && mv_path_exists(mt)) {
        st = medvlm_tokenizer_load_files(NULL, vj, mt, out);
    } else {
        st = mv_err(MEDVLM_ERR_MISSING,
                    "%s: no tokenizer: expected tokenizer.json, or vocab.json and merges.txt "
                    "(a Hugging Face CLIP folder)",
                    model_dir);
    }
    mv_free(tj);
    mv_free(vj);
    mv_free(mt);
    return st;
}

void medvlm_tokenizer_free(struct medvlm_tokenizer *tok)
{
    if (!tok) return;
    mv_bpe_free(tok->bpe);
    mv_free(tok);
}

int medvlm_tokenizer_vocab_size(const struct medvlm_tokenizer *tok)
{
    return mv_bpe_vocab_size(tok->bpe);
}

int32_t medvlm_tokenizer_bos_id(const struct medvlm_tokenizer *tok)
{
    return tok->bos;
}

int32_t medvlm_tokenizer_eos_id(const struct medvlm_tokenizer *tok)
{
    return tok->eos;
}

struct mv_bpe *mv_tokenizer_bpe(const struct medvlm_tokenizer *tok)
{
    return tok->bpe;
}

const char *medvlm_tokenizer_decode_token(const struct medvlm_tokenizer *tok, int32_t id)
{
    return tok ? mv_bpe_id_string(tok->bpe, id) : NULL;
}

/* ---- encoding ---- */

/* Length of the special token starting at s[i], or 0 (exact, case-sensitive: the trie). */
static size_t special_at(const uint32_t *s, size_t n, size_t i, int32_t *which)
{
    static const char *const lits[2] = {tok_bos, tok_eos};
    for (int k = 0; k < 2; k++) {
        size_t j = 0;
        while (lits[k][j] && i + j < n && s[i + j] == (uint32_t)lits[k][j]) j++;
        if (!lits[k][j]) {
            *which = k;
            return j;
        }
    }
    return 0;
}

static bool piece_is(const uint32_t *p, size_t n, const char *lit)
{
    size_t k = 0;
    for (; k < n && lit[k]; k++)
        if (p[k] != (uint32_t)lit[k]) return false;
    return k == n && !lit[k];
}

static enum medvlm_status encode_segment(const struct medvlm_tokenizer *tok, const uint32_t *s,
                                         size_t n, struct mv_u32buf *norm, struct mv_i32buf *ids)
{
    if (n == 0) return MEDVLM_OK;
    enum medvlm_status st = mv_text_normalize(s, n, norm);
    if (st) return st;
    size_t pos = 0, a, b;
    char small[512];
    while (mv_pretok_next(norm->v, norm->n, &pos, &a, &b)) {
        if (piece_is(norm->v + a, b - a, tok_bos) || piece_is(norm->v + a, b - a, tok_eos)) {
            int32_t id = piece_is(norm->v + a, b - a, tok_bos) ? tok->bos : tok->eos;
            if ((st = mv_i32_push(ids, id))) return st;
            continue;
        }
        size_t need = (b - a) * 4;
        char *buf = need <= sizeof small ? small : mv_malloc(need);
        if (!buf) return MEDVLM_ERR_NOMEM;
        size_t len = 0;
        for (size_t k = a; k < b; k++) len += (size_t)mv_utf8_encode(norm->v[k], buf + len);
        st = mv_bpe_encode_word(tok->bpe, buf, len, tok->unk, ids);
        if (buf != small) mv_free(buf);
        if (st) return st;
    }
    return MEDVLM_OK;
}

enum medvlm_status mv_tokenizer_encode_raw(const struct medvlm_tokenizer *tok, const char *text,
                                           size_t len, struct mv_i32buf *ids, size_t *bad_offset)
{
    struct mv_u32buf cps = {0}, norm = {0};
    enum medvlm_status st = mv_utf8_decode(text, len, &cps, bad_offset);
    if (st || cps.n == 0) goto fail;
    size_t seg = 0;
    for (size_t i = 0; i < cps.n;) {
        int32_t which;
        size_t m = cps.v[i] == '<' ? special_at(cps.v, cps.n, i, &which) : 0;
        if (!m) {
            i++;
            continue;
        }
        if ((st = encode_segment(tok, cps.v + seg, i - seg, &norm, ids))) goto fail;
        if ((st = mv_i32_push(ids, which == 0 ? tok->bos : tok->eos))) goto fail;
        i += m;
        seg = i;
    }
    st = encode_segment(tok, cps.v + seg, cps.n - seg, &norm, ids);
fail:
    mv_free(cps.v);
    mv_free(norm.v);
    return st;
}

static enum medvlm_status utf8_error(const char *what, const char *text, size_t off)
{
    return mv_err(MEDVLM_ERR_FORMAT,
                  "%s: invalid UTF-8 at byte offset %zu (0x%02x): prompts must be UTF-8 text", what,
                  off, (unsigned)(unsigned char)text[off]);
}

/* [bos] + ids + [eos] into out[0..max_len), truncated keeping eos; *n = count written. */
static enum medvlm_status encode_into(const struct medvlm_tokenizer *tok, const char *what,
                                      const char *text, size_t text_len, int32_t *out, int max_len,
                                      int *n, int *n_full)
{
    struct mv_i32buf ids = {0};
    size_t bad = 0;
    enum medvlm_status st = mv_tokenizer_encode_raw(tok, text, text_len, &ids, &bad);
    if (st == MEDVLM_ERR_FORMAT) st = utf8_error(what, text, bad);
    if (st == MEDVLM_OK) {
        size_t keep = MV_MIN(ids.n, (size_t)max_len - 2);
        out[0] = tok->bos;
        if (keep) memcpy(out + 1, ids.v, keep * sizeof *out);
        out[keep + 1] = tok->eos;
        *n = (int)keep + 2;
        if (n_full) *n_full = ids.n > (size_t)INT32_MAX - 2 ? INT32_MAX : (int)ids.n + 2;
    }
    mv_free(ids.v);
    return st;
}

enum medvlm_status medvlm_tokenizer_encode_n(const struct medvlm_tokenizer *tok, const char *text,
                                             size_t len, int32_t *ids, int max_len, int *n)
{
    if (!tok || (!text && len) || !ids || !n)
        return mv_err(MEDVLM_ERR_ARG, "medvlm_tokenizer_encode: NULL argument");
    if (max_len < 2)
        return mv_err(MEDVLM_ERR_ARG,
                      "medvlm_tokenizer_encode: max_len %d leaves no room for the start and end "
                      "tokens (need >= 2)",
                      max_len);
    return encode_into(tok, "text", text ? text : "", len, ids, max_len, n, NULL);
}

enum medvlm_status medvlm_tokenizer_encode(const struct medvlm_tokenizer *tok, const char *text,
                                           int32_t *ids, int max_len, int *n)
{
    if (!text) return mv_err(MEDVLM_ERR_ARG, "medvlm_tokenizer_encode: NULL argument");
    return medvlm_tokenizer_encode_n(tok, text, strlen(text), ids, max_len, n);
}

enum medvlm_status medvlm_tokenizer_count_n(const struct medvlm_tokenizer *tok, const char *text,
                                            size_t len, int *n)
{
    if (!tok || (!text && len) || !n)
        return mv_err(MEDVLM_ERR_ARG, "medvlm_tokenizer_count: NULL argument");
    int32_t tmp[2];
    int got;
    return encode_into(tok, "text", text ? text : "", len, tmp, 2, &got, n);
}

enum medvlm_status medvlm_tokenizer_count(const struct medvlm_tokenizer *tok, const char *text,
                                          int *n)
{
    if (!text) return mv_err(MEDVLM_ERR_ARG, "medvlm_tokenizer_count: NULL argument");
    return medvlm_tokenizer_count_n(tok, text, strlen(text), n);
}

enum medvlm_status medvlm_tokenizer_encode_batch(const struct medvlm_tokenizer *tok,
                                                 const char *const *texts, int count, int max_len,
                                                 enum medvlm_pad pad, int32_t *ids, int32_t *mask,
                                                 int *len)
{
    return medvlm_tokenizer_encode_batch_n(tok, texts, NULL, count, max_len, pad, ids, mask, len);
}

enum medvlm_status medvlm_tokenizer_encode_batch_n(const struct medvlm_tokenizer *tok,
                                                   const char *const *texts, const size_t *lens,
                                                   int count, int max_len, enum medvlm_pad pad,
                                                   int32_t *ids, int32_t *mask, int *len)
{
    if (!tok || (!texts && count) || !ids || !len || count < 0)
        return mv_err(MEDVLM_ERR_ARG, "medvlm_tokenizer_encode_batch: NULL or negative argument");
    if (max_len < 2)
        return mv_err(MEDVLM_ERR_ARG, "medvlm_tokenizer_encode_batch: max_len %d < 2", max_len);
    if (pad != MEDVLM_PAD_MAX_LENGTH && pad != MEDVLM_PAD_LONGEST)
        return mv_err(MEDVLM_ERR_ARG, "medvlm_tokenizer_encode_batch: unknown padding mode %d",
                      (int)pad);
    size_t stride = (size_t)max_len;
    int longest = 0;
    for (int i = 0; i < count; i++) {
        if (!texts[i])
            return mv_err(MEDVLM_ERR_ARG, "medvlm_tokenizer_encode_batch: prompt %d is NULL", i);
        char what[32];
        snprintf(what, sizeof what, "prompt %d", i);
        int n;
        enum medvlm_status st = encode_into(tok, what, texts[i], lens ? lens[i] : strlen(texts[i]),
                                            ids + (size_t)i * stride, max_len, &n, NULL);
        if (st) return st;
        for (int k = n; k < max_len; k++) ids[(size_t)i * stride + (size_t)k] = tok->eos;
        if (mask)
            for (int k = 0; k < max_len; k++) mask[(size_t)i * stride + (size_t)k] = k < n;
        longest = MV_MAX(longest, n);
    }
    int width = pad == MEDVLM_PAD_LONGEST ? longest : max_len;
    /* pad-to-longest: repack the rows with stride width (moving forward only, width <= stride) */
    for (int i = 1; i < count && width < max_len; i++) {
        memmove(ids + (size_t)i * (size_t)width, ids + (size_t)i * stride,
                (size_t)width * sizeof *ids);
        if (mask)
            memmove(mask + (size_t)i * (size_t)width, mask + (size_t)i * stride,
                    (size_t)width * sizeof *mask);
    }
    *len = width;
    return MEDVLM_OK;
}

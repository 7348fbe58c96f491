/*
 * tokenizer_files.c - read the CLIP BPE tokenizer files into plain lists: vocab.json
 * ({token: id}), merges.txt (one "a b" pair per line after a "#version" line) and
 * tokenizer.json (Hugging Face `tokenizers`: model.vocab, model.merges as "a b" strings or
 * ["a", "b"] pairs, added_tokens). Building the BPE tables is src/text/'s job.
 *
 * Limits: at most MV_CLIP_MAX_MERGES merges are kept (the slow CLIPTokenizer's slice);
 * token ids must be integers in [0, 2^24).
 */
#include "io.h"

#include <math.h>
#include <string.h>

#define MAX_TOKEN_ID (1 << 24)

void mv_bpe_files_init(struct mv_bpe_files *f)
{
    memset(f, 0, sizeof *f);
    mv_arena_init(&f->arena, 256 * 1024);
    f->added_bos = f->added_eos = -1;
}

void mv_bpe_files_free(struct mv_bpe_files *f)
{
    if (!f) return;
    mv_arena_free(&f->arena);
    mv_free(f->vocab_tok);
    mv_free(f->vocab_id);
    mv_free(f->merge_a);
    mv_free(f->merge_b);
    mv_free(f->merge_line);
    memset(f, 0, sizeof *f);
    f->added_bos = f->added_eos = -1;
}

static enum medvlm_status add_vocab(struct mv_bpe_files *f, const char *tok, int32_t id)
{
    if (f->n_vocab == f->cap_vocab) {
        int cap = f->cap_vocab ? f->cap_vocab * 2 : 1024;
        const char **t = mv_realloc(f->vocab_tok, (size_t)cap * sizeof *t);
        if (!t) return MEDVLM_ERR_NOMEM;
        f->vocab_tok = t;
        int32_t *ids = mv_realloc(f->vocab_id, (size_t)cap * sizeof *ids);
        if (!ids) return MEDVLM_ERR_NOMEM;
        f->vocab_id = ids;
        f->cap_vocab = cap;
    }
    char *s = mv_arena_strdup(&f->arena, tok);
    if (!s) return MEDVLM_ERR_NOMEM;
    f->vocab_tok[f->n_vocab] = s;
    f->vocab_id[f->n_vocab] = id;
    f->n_vocab++;
    return MEDVLM_OK;
}

static enum medvlm_status add_merge(struct mv_bpe_files *f, const char *a, size_t na, const char *b,
                                    size_t nb)
{
    if (f->n_merges == f->cap_merges) {
        int cap = f->cap_merges ? f->cap_merges * 2 : 1024;
        const char **pa = mv_realloc(f->merge_a, (size_t)cap * sizeof *pa);
        if (!pa) return MEDVLM_ERR_NOMEM;
        f->merge_a = pa;
        const char **pb = mv_realloc(f->merge_b, (size_t)cap * sizeof *pb);
        if (!pb) return MEDVLM_ERR_NOMEM;
        f->merge_b = pb;
        long *pl = mv_realloc(f->merge_line, (size_t)cap * sizeof *pl);
        if (!pl) return MEDVLM_ERR_NOMEM;
        f->merge_line = pl;
        f->cap_merges = cap;
    }
    char *sa = mv_arena_strndup(&f->arena, a, na), *sb = mv_arena_strndup(&f->arena, b, nb);
    if (!sa || !sb) return MEDVLM_ERR_NOMEM;
    f->merge_a[f->n_merges] = sa;
    f->merge_b[f->n_merges] = sb;
    f->merge_line[f->n_merges] = 0;
    f->n_merges++;
    return MEDVLM_OK;
}

/* A JSON value that must be a token id: an integer in [0, 2^24). */
static enum medvlm_status read_id(const char *what, const char *tok, const cJSON *v, int32_t *id)
{
    if (!cJSON_IsNumber(v) || floor(v->valuedouble) != v->valuedouble || v->valuedouble < 0 ||
        v->valuedouble >= MAX_TOKEN_ID)
        return mv_err(MEDVLM_ERR_FORMAT,
                      "%s: token \"%.40s\": expected an integer id in [0, %d), got %s", what, tok,
                      MAX_TOKEN_ID, cJSON_IsNumber(v) ? "a number out of range" : "a non-number");
    *id = (int32_t)v->valuedouble;
    return MEDVLM_OK;
}

static enum medvlm_status vocab_from_object(struct mv_bpe_files *f, const char *what,
                                            const cJSON *obj)
{
    if (!cJSON_IsObject(obj))
        return mv_err(MEDVLM_ERR_FORMAT, "%s: expected a JSON object {token: id}", what);
    for (const cJSON *it = obj->child; it; it = it->next) {
        if (!it->string)
            return mv_err(MEDVLM_ERR_FORMAT, "%s: vocabulary entry without a key", what);
        int32_t id;
        enum medvlm_status st = read_id(what, it->string, it, &id);
        if (st) return st;
        if ((st = add_vocab(f, it->string, id))) return st;
    }
    if (f->n_vocab == 0) return mv_err(MEDVLM_ERR_FORMAT, "%s: empty vocabulary", what);
    return MEDVLM_OK;
}

enum medvlm_status mv_bpe_parse_vocab(struct mv_bpe_files *f, const char *what, const char *text,
                                      size_t len)
{
    cJSON *root;
    enum medvlm_status st = mv_json_parse(what, text, len, &root);
    if (st) return st;
    st = vocab_from_object(f, what, root);
    cJSON_Delete(root);
    return st;
}

static int is_ascii_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Split one merges.txt line on whitespace (Python str.split()) into exactly two fields. */
static enum medvlm_status merge_line(struct mv_bpe_files *f, const char *what, long lineno,
                                     const char *s, size_t n)
{
    const char *field[3];
    size_t flen[3];
    int k = 0;
    size_t i = 0;
    while (i < n) {
        while (i < n && is_ascii_space(s[i])) i++;
        if (i == n) break;
        size_t start = i;
        while (i < n && !is_ascii_space(s[i])) i++;
        if (k < 3) {
            field[k] = s + start;
            flen[k] = i - start;
        }
        k++;
    }
    if (k != 2)
        return mv_err(MEDVLM_ERR_FORMAT,
                      "%s:%ld: expected a merge of two symbols separated by a space, got %d "
                      "field(s)",
                      what, lineno, k);
    return add_merge(f, field[0], flen[0], field[1], flen[1]);
}

enum medvlm_status mv_bpe_parse_merges(struct mv_bpe_files *f, const char *what, const char *text,
                                       size_t len)
{
    /* read().strip().split("\n")[1 : 1 + MV_CLIP_MAX_MERGES] */
    size_t b = 0, e = len;
    while (b < e && is_ascii_space(text[b])) b++;
    while (e > b && is_ascii_space(text[e - 1])) e--;
    if (memchr(text + b, '\0', e - b))
        return mv_err(MEDVLM_ERR_FORMAT, "%s: contains a NUL byte (not a text file)", what);
    f->merges_path = what;
    long lineno = 0, first_line = 1;
    for (size_t i = 0; i < b; i++) first_line += text[i] == '\n';
    size_t p = b;
    int kept = 0;
    while (p <= e && kept < MV_CLIP_MAX_MERGES) {
        const char *nl = memchr(text + p, '\n', e - p);
        size_t q = nl ? (size_t)(nl - text) : e;
        if (lineno > 0) {
            enum medvlm_status st = merge_line(f, what, first_line + lineno, text + p, q - p);
            if (st) return st;
            f->merge_line[f->n_merges - 1] = first_line + lineno;
            kept++;
        }
        lineno++;
        if (!nl) break;
        p = q + 1;
    }
    return MEDVLM_OK;
}

/* One tokenizer.json merge: "a b" (exactly one space) or ["a", "b"]. */
static enum medvlm_status json_merge(struct mv_bpe_files *f, const char *what, int idx,
                                     const cJSON *m)
{
    if (cJSON_IsString(m)) {
        const char *s = m->valuestring, *sp = strchr(s, ' ');
        if (!sp || sp == s || !sp[1] || strchr(sp + 1, ' '))
            return mv_err(MEDVLM_ERR_FORMAT,
                          "%s: model.merges[%d] = \"%.60s\": expected \"a b\" (two symbols, one "
                          "space)",
                          what, idx, s);
        return add_merge(f, s, (size_t)(sp - s), sp + 1, strlen(sp + 1));
    }
    if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2) {
        const cJSON *a = cJSON_GetArrayItem(m, 0), *b = cJSON_GetArrayItem(m, 1);
        if (cJSON_IsString(a) && cJSON_IsString(b) && a->valuestring[0] && b->valuestring[0])
            return add_merge(f, a->valuestring, strlen(a->valuestring), b->valuestring,
                             strlen(b->valuestring));
    }
    return mv_err(MEDVLM_ERR_FORMAT,
                  "%s: model.merges[%d]: expected a string \"a b\" or a pair [\"a\", \"b\"] of "
                  "non-empty strings",
                  what, idx);
}

static enum medvlm_status added_tokens(struct mv_bpe_files *f, const char *what, const cJSON *arr)
{
    if (!arr) return MEDVLM_OK;
    if (!cJSON_IsArray(arr))
        return mv_err(MEDVLM_ERR_FORMAT, "%s: \"added_tokens\" must be an array", what);
    int i = 0;
    for (const cJSON *t = arr->child; t; t = t->next, i++) {
        const cJSON *c = mv_json_get(t, "content"), *id = mv_json_get(t, "id");
        if (!cJSON_IsString(c) || !id)
            return mv_err(MEDVLM_ERR_FORMAT,
                          "%s: added_tokens[%d]: expected {\"id\": int, \"content\": string}", what,
                          i);
        int32_t v;
        enum medvlm_status st = read_id(what, c->valuestring, id, &v);
        if (st) return st;
        int special = !strcmp(c->valuestring, "<|startoftext|>") ? 1
                      : !strcmp(c->valuestring, "<|endoftext|>") ? 2
                                                                 : 0;
        if (!special) continue;
        if (special == 1)
            f->added_bos = v;
        else
            f->added_eos = v;
        /* a special token only listed here joins the vocabulary (its id counts in its size) */
        int known = 0;
        for (int k = 0; k < f->n_vocab && !known; k++)
            known = !strcmp(f->vocab_tok[k], c->valuestring);
        if (!known && (st = add_vocab(f, c->valuestring, v))) return st;
    }
    return MEDVLM_OK;
}

enum medvlm_status mv_bpe_parse_tokenizer_json(struct mv_bpe_files *f, const char *what,
                                               const char *text, size_t len)
{
    cJSON *root;
    enum medvlm_status st = mv_json_parse(what, text, len, &root);
    if (st) return st;
    const cJSON *model = mv_json_get(root, "model");
    const cJSON *type = mv_json_get(model, "type");
    const cJSON *vocab = mv_json_get(model, "vocab"), *merges = mv_json_get(model, "merges");
    if (!cJSON_IsObject(model) || !vocab || !merges) {
        st = mv_err(MEDVLM_ERR_FORMAT,
                    "%s: expected a \"model\" object with \"vocab\" and \"merges\" (a BPE "
                    "tokenizer.json)",
                    what);
        goto fail;
    }
    if (type && (!cJSON_IsString(type) || strcmp(type->valuestring, "BPE") != 0)) {
        st = mv_err(MEDVLM_ERR_UNSUPPORTED, "%s: model.type is \"%s\", expected \"BPE\"", what,
                    cJSON_IsString(type) ? type->valuestring : "?");
        goto fail;
    }
    if ((st = vocab_from_object(f, what, vocab))) goto fail;
    if (!cJSON_IsArray(merges)) {
        st = mv_err(MEDVLM_ERR_FORMAT, "%s: model.merges must be an array", what);
        goto fail;
    }
    int i = 0;
    for (const cJSON *m = merges->child; m && i < MV_CLIP_MAX_MERGES; m = m->next, i++)
        if ((st = json_merge(f, what, i, m))) goto fail;
    st = added_tokens(f, what, mv_json_get(root, "added_tokens"));
fail:
    cJSON_Delete(root);
    return st;
}

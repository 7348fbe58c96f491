/*
 * openai.c - the other CLIP tokenizer: OpenAI's clip/simple_tokenizer.py without ftfy, which
 * golden sets record as `openai_ids` (clip.tokenize(texts, truncate=True), padded with 0).
 *
 *   text = html.unescape(html.unescape(text)).strip(); re.sub(r"\s+", " "); strip; lower
 *   then the same regex, byte-level BPE and vocabulary as the Hugging Face path (bpe.c)
 *
 * Unlike Hugging Face's slow tokenizer there is no control-character removal, no CJK
 * isolation and no NFC. html.unescape is Python's: numeric references with its replacement
 * rules, named references from the HTML5 table (html_entities.c), the longest known legacy
 * prefix for unterminated names.
 */
#include "text.h"

#include <string.h>

/* Python html._invalid_charrefs for 0x80..0x9F (windows-1252); 0 = keep the code point. */
static const uint16_t cp1252[32] = {0x20AC, 0x81,   0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
                                    0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D,   0x017D, 0x8F,
                                    0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
                                    0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D,   0x017E, 0x0178};

/* The name s[0..n) (with a trailing ';' if present) in the table: Python's `s in _html5`. */
static const struct mv_html_entity *lookup(const uint32_t *s, size_t n)
{
    bool semi = n > 0 && s[n - 1] == ';';
    size_t len = semi ? n - 1 : n;
    char key[40];
    if (len == 0 || len >= sizeof key) return NULL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] >= 0x80) return NULL;
        key[i] = (char)s[i];
    }
    key[len] = '\0';
    return mv_html_entity_find(key, semi);
}

static bool is_hex(uint32_t c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

static bool invalid_codepoint(uint32_t n)
{
    return (n >= 0x1 && n <= 0x8) || (n >= 0xE && n <= 0x1F) || (n >= 0x7F && n <= 0x9F) ||
           (n >= 0xFDD0 && n <= 0xFDEF) || n == 0xB || (n & 0xFFFE) == 0xFFFE;
}

/* One pass of html.unescape over in, appended to out. */
static enum medvlm_status unescape(const uint32_t *in, size_t n, struct mv_u32buf *out)
{
    enum medvlm_status st = MEDVLM_OK;
    size_t i = 0;
    while (i < n && !st) {
        if (in[i] != '&' || i + 1 >= n) {
            st = mv_u32_push(out, in[i++]);
            continue;
        }
        size_t j = i + 1;
        if (in[j] == '#') {
            /* #[0-9]+;? | #[xX][0-9a-fA-F]+;? */
            bool hex = j + 1 < n && (in[j + 1] == 'x' || in[j + 1] == 'X');
            size_t k = j + 1 + hex, d = k;
            uint64_t num = 0;
            while (k < n && (hex ? is_hex(in[k]) : (in[k] >= '0' && in[k] <= '9'))) {
                uint32_t c = in[k] | 0x20;
                uint32_t v = c <= '9' ? c - '0' : c - 'a' + 10;
                if (num <= 0x10FFFF) num = num * (hex ? 16 : 10) + v;
                k++;
            }
            if (k == d) { /* no digits: "&#" is not a reference */
                st = mv_u32_push(out, in[i++]);
                continue;
            }
            if (k < n && in[k] == ';') k++;
            uint32_t rep;
            if (num == 0)
                rep = 0xFFFD;
            else if (num == 0x0D)
                rep = 0x0D;
            else if (num >= 0x80 && num <= 0x9F)
                rep = cp1252[num - 0x80];
            else if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF)
                rep = 0xFFFD;
            else if (invalid_codepoint((uint32_t)num))
                rep = 0;
            else
                rep = (uint32_t)num;
            if (rep) st = mv_u32_push(out, rep);
            i = k;
            continue;
        }
        /* [^\t\n\f <&#;]{1,32};? */
        size_t k = j;
        while (k < n && k - j < 32 && in[k] != '\t' && in[k] != '\n' && in[k] != '\f' &&
               in[k] != ' ' && in[k] != '<' && in[k] != '&' && in[k] != '#' && in[k] != ';')
            k++;
        if (k == j) {
            st = mv_u32_push(out, in[i++]);
            continue;
        }
        if (k < n && in[k] == ';') k++;
        const struct mv_html_entity *e = lookup(in + j, k - j);
        size_t used = k - j;
        for (size_t x = k - j - 1; !e && x > 1; x--) { /* longest known prefix */
            if ((e = lookup(in + j, x)) != NULL) used = x;
        }
        if (!e) { /* not a reference: "&" + name as it was */
            for (size_t x = i; x < k && !st; x++) st = mv_u32_push(out, in[x]);
        } else {
            st = mv_u32_push(out, e->cp);
            if (!st && e->cp2) st = mv_u32_push(out, e->cp2);
            for (size_t x = j + used; x < k && !st; x++) st = mv_u32_push(out, in[x]);
        }
        i = k;
    }
    return st;
}

enum medvlm_status mv_tokenizer_encode_openai(const struct medvlm_tokenizer *tok, const char *text,
                                              int32_t *ids, int max_len, int *n)
{
    struct mv_u32buf a = {0}, b = {0}, c = {0};
    struct mv_i32buf bpe = {0};
    size_t bad;
    enum medvlm_status st = MEDVLM_OK;
    if (max_len < 2) return mv_err(MEDVLM_ERR_ARG, "openai encode: max_len %d < 2", max_len);
    if (mv_utf8_decode(text, strlen(text), &a, &bad)) {
        st = mv_err(MEDVLM_ERR_FORMAT, "text: invalid UTF-8 at byte offset %zu", bad);
        goto fail;
    }
    if ((st = unescape(a.v, a.n, &b))) goto fail;
    a.n = 0;
    if ((st = unescape(b.v, b.n, &a))) goto fail;
    /* .strip() (str.isspace), re.sub(r"\s+", " ") (regex's \s), .strip() */
    size_t lo = 0, hi = a.n;
    while (lo < hi && mv_uc_is_space(a.v[lo])) lo++;
    while (hi > lo && mv_uc_is_space(a.v[hi - 1])) hi--;
    b.n = 0;
    for (size_t i = lo; i < hi; i++) {
        if (mv_uc_is_regex_space(a.v[i])) {
            if (b.n && b.v[b.n - 1] == ' ' && i > lo && mv_uc_is_regex_space(a.v[i - 1])) continue;
            if ((st = mv_u32_push(&b, ' '))) goto fail;
        } else if ((st = mv_u32_push(&b, a.v[i]))) {
            goto fail;
        }
    }
    lo = 0;
    hi = b.n;
    while (lo < hi && mv_uc_is_space(b.v[lo])) lo++;
    while (hi > lo && mv_uc_is_space(b.v[hi - 1])) hi--;
    if (lo && hi > lo) memmove(b.v, b.v + lo, (hi - lo) * sizeof *b.v);
    b.n = hi - lo;
    for (size_t i = 0; i < b.n; i++) {
        uint32_t low[2];
        int k = mv_uc_lower(b.v, b.n, i, low);
        for (int q = 0; q < k; q++)
            if ((st = mv_u32_push(&c, low[q]))) goto fail;
    }
    size_t pos = 0, s, e;
    char small[512];
    while (mv_pretok_next(c.v, c.n, &pos, &s, &e)) {
        size_t need = (e - s) * 4, len = 0;
        char *buf = need <= sizeof small ? small : mv_malloc(need);
        if (!buf) {
            st = MEDVLM_ERR_NOMEM;
            goto fail;
        }
        for (size_t k = s; k < e; k++) len += (size_t)mv_utf8_encode(c.v[k], buf + len);
        int32_t sp = -1;
        if (len == 15 && !memcmp(buf, "<|startoftext|>", 15)) sp = medvlm_tokenizer_bos_id(tok);
        if (len == 13 && !memcmp(buf, "<|endoftext|>", 13)) sp = medvlm_tokenizer_eos_id(tok);
        st = sp >= 0 ? mv_i32_push(&bpe, sp)
                     : mv_bpe_encode_word(mv_tokenizer_bpe(tok), buf, len,
                                          medvlm_tokenizer_eos_id(tok), &bpe);
        if (buf != small) mv_free(buf);
        if (st) goto fail;
    }
    size_t keep = MV_MIN(bpe.n, (size_t)max_len - 2);
    ids[0] = medvlm_tokenizer_bos_id(tok);
    if (keep) memcpy(ids + 1, bpe.v, keep * sizeof *ids);
    ids[keep + 1] = medvlm_tokenizer_eos_id(tok);
    *n = (int)keep + 2;
fail:
    mv_free(a.v);
    mv_free(b.v);
    mv_free(c.v);
    mv_free(bpe.v);
    return st;
}

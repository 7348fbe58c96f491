/*
 * openai.c - the other CLIP tokenizer: OpenAI's clip/simple_tokenizer.py without ftfy, which
 * golden sets record as `openai_ids` (clip.tokenize(texts, truncate=True), padded with 0).
 *
 *   text = html.unescape(html.unescape(text)).strip(); re.sub(r"\s+", " "); strip; lower
 *   then the same regex, byte-level BPE and vocabulary as the Hugging Face path (bpe.c)
 *
 * Unlike Hugging Face's slow tokenizer there is no control-character removal, no CJK
 * isolation and no NFC. html.unescape is Python's: numeric references with its replacement
 * rules, named references from the HTML5 table, the longest known prefix for unterminated
 * names. Only a subset of the 2231 HTML5 names is known here (the common ones below);
 * another name is left as it is.
 */
#include "text.h"

#include <string.h>

struct entity {
    const char *name; /* without ';' */
    uint32_t cp;
    bool legacy; /* also recognised without the ';' */
};

static const struct entity entities[] = {
    {"AMP", 0x26, true},      {"COPY", 0xA9, true},    {"GT", 0x3E, true},
    {"LT", 0x3C, true},       {"QUOT", 0x22, true},    {"REG", 0xAE, true},
    {"AElig", 0xC6, true},    {"Aacute", 0xC1, true},  {"Acirc", 0xC2, true},
    {"Agrave", 0xC0, true},   {"Alpha", 0x391, false}, {"Aring", 0xC5, true},
    {"Atilde", 0xC3, true},   {"Auml", 0xC4, true},    {"Beta", 0x392, false},
    {"Ccedil", 0xC7, true},   {"Delta", 0x394, false}, {"Eacute", 0xC9, true},
    {"Ecirc", 0xCA, true},    {"Egrave", 0xC8, true},  {"Euml", 0xCB, true},
    {"Gamma", 0x393, false},  {"Iacute", 0xCD, true},  {"Icirc", 0xCE, true},
    {"Igrave", 0xCC, true},   {"Iuml", 0xCF, true},    {"Lambda", 0x39B, false},
    {"Ntilde", 0xD1, true},   {"Oacute", 0xD3, true},  {"Ocirc", 0xD4, true},
    {"Ograve", 0xD2, true},   {"Omega", 0x3A9, false}, {"Oslash", 0xD8, true},
    {"Otilde", 0xD5, true},   {"Ouml", 0xD6, true},    {"Sigma", 0x3A3, false},
    {"Uacute", 0xDA, true},   {"Ucirc", 0xDB, true},   {"Ugrave", 0xD9, true},
    {"Uuml", 0xDC, true},     {"aacute", 0xE1, true},  {"acirc", 0xE2, true},
    {"aelig", 0xE6, true},    {"agrave", 0xE0, true},  {"alpha", 0x3B1, false},
    {"amp", 0x26, true},      {"apos", 0x27, false},   {"aring", 0xE5, true},
    {"atilde", 0xE3, true},   {"auml", 0xE4, true},    {"beta", 0x3B2, false},
    {"bull", 0x2022, false},  {"ccedil", 0xE7, true},  {"cent", 0xA2, true},
    {"copy", 0xA9, true},     {"deg", 0xB0, true},     {"delta", 0x3B4, false},
    {"divide", 0xF7, true},   {"eacute", 0xE9, true},  {"ecirc", 0xEA, true},
    {"egrave", 0xE8, true},   {"euml", 0xEB, true},    {"euro", 0x20AC, false},
    {"frac12", 0xBD, true},   {"frac14", 0xBC, true},  {"frac34", 0xBE, true},
    {"gamma", 0x3B3, false},  {"ge", 0x2265, false},   {"gt", 0x3E, true},
    {"hellip", 0x2026, false}, {"iacute", 0xED, true}, {"icirc", 0xEE, true},
    {"igrave", 0xEC, true},   {"iuml", 0xEF, true},    {"lambda", 0x3BB, false},
    {"laquo", 0xAB, true},    {"ldquo", 0x201C, false}, {"le", 0x2264, false},
    {"lsquo", 0x2018, false}, {"lt", 0x3C, true},      {"mdash", 0x2014, false},
    {"micro", 0xB5, true},    {"middot", 0xB7, true},  {"minus", 0x2212, false},
    {"mu", 0x3BC, false},     {"nbsp", 0xA0, true},    {"ndash", 0x2013, false},
    {"ne", 0x2260, false},    {"ntilde", 0xF1, true},  {"oacute", 0xF3, true},
    {"ocirc", 0xF4, true},    {"ograve", 0xF2, true},  {"omega", 0x3C9, false},
    {"oslash", 0xF8, true},   {"otilde", 0xF5, true},  {"ouml", 0xF6, true},
    {"para", 0xB6, true},     {"pi", 0x3C0, false},    {"plusmn", 0xB1, true},
    {"pound", 0xA3, true},    {"quot", 0x22, true},    {"raquo", 0xBB, true},
    {"rdquo", 0x201D, false}, {"reg", 0xAE, true},     {"rsquo", 0x2019, false},
    {"sect", 0xA7, true},     {"sigma", 0x3C3, false}, {"sup1", 0xB9, true},
    {"sup2", 0xB2, true},     {"sup3", 0xB3, true},    {"szlig", 0xDF, true},
    {"times", 0xD7, true},    {"trade", 0x2122, false}, {"uacute", 0xFA, true},
    {"ucirc", 0xFB, true},    {"ugrave", 0xF9, true},  {"uuml", 0xFC, true},
    {"yen", 0xA5, true},
};

/* Python html._invalid_charrefs for 0x80..0x9F (windows-1252); 0 = keep the code point. */
static const uint16_t cp1252[32] = {
    0x20AC, 0x81,   0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x8D,   0x017D, 0x8F,   0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D,   0x017E, 0x0178};

/* The name s[0..n) (with a trailing ';' if present) in the table: Python's `s in _html5`. */
static const struct entity *lookup(const uint32_t *s, size_t n)
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
    for (size_t i = 0; i < MV_ARRAY_LEN(entities); i++)
        if (!strcmp(key, entities[i].name)) return semi || entities[i].legacy ? &entities[i] : NULL;
    return NULL;
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
            if (num == 0) rep = 0xFFFD;
            else if (num == 0x0D) rep = 0x0D;
            else if (num >= 0x80 && num <= 0x9F) rep = cp1252[num - 0x80];
            else if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) rep = 0xFFFD;
            else if (invalid_codepoint((uint32_t)num)) rep = 0;
            else rep = (uint32_t)num;
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
        const struct entity *e = lookup(in + j, k - j);
        size_t used = k - j;
        for (size_t x = k - j - 1; !e && x > 1; x--) { /* longest known prefix */
            if ((e = lookup(in + j, x)) != NULL) used = x;
        }
        if (!e) { /* not a reference: "&" + name as it was */
            for (size_t x = i; x < k && !st; x++) st = mv_u32_push(out, in[x]);
        } else {
            st = mv_u32_push(out, e->cp);
            for (size_t x = j + used; x < k && !st; x++) st = mv_u32_push(out, in[x]);
        }
        i = k;
    }
    return st;
}

enum medvlm_status mv_tokenizer_encode_openai(const struct medvlm_tokenizer *tok,
                                              const char *text, int32_t *ids, int max_len,
                                              int *n)
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

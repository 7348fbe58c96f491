/*
 * pretokenize.c - the CLIP pre-tokenizer regex, written out over code points:
 *
 *   <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
 *
 * compiled by the Python `regex` module with IGNORECASE. At each position the alternatives
 * are tried in order and the first that matches wins (no longest-match); text between
 * matches (whitespace) is skipped. Case-insensitive literals use simple case folding, under
 * which U+017F LATIN SMALL LETTER LONG S equals 's' (the text is already lowercased, so that is
 * the only case folding that can still matter).
 *
 * Two more details of `regex` (checked on every code point with regex 2026.5 in Python 3.11):
 * \s is str.isspace minus U+001C..U+001F, and under IGNORECASE U+0345 COMBINING GREEK
 * YPOGEGRAMMENI (Mn, whose case partners are letters) matches none of \p{L}, \p{N} and
 * [^\s\p{L}\p{N}]: it ends any run and is skipped like whitespace.
 */
#include "text.h"

static bool fold_eq(uint32_t c, char p)
{
    if (c == (uint32_t)(unsigned char)p) return true;
    if (p >= 'a' && p <= 'z' && c == (uint32_t)(p - 32)) return true;
    return p == 's' && c == 0x17F;
}

/* Length of literal lit matched case-insensitively at s[i..n), or 0. */
static size_t match_lit(const uint32_t *s, size_t n, size_t i, const char *lit)
{
    size_t k = 0;
    for (; lit[k]; k++)
        if (i + k >= n || !fold_eq(s[i + k], lit[k])) return 0;
    return k;
}

bool mv_uc_is_regex_space(uint32_t cp)
{
    return mv_uc_is_space(cp) && !(cp >= 0x1C && cp <= 0x1F);
}

/* [^\s\p{L}\p{N}] under IGNORECASE */
static bool is_other(uint32_t c)
{
    return !mv_uc_is_regex_space(c) && !mv_uc_is_letter(c) && !mv_uc_is_number(c) && c != 0x345;
}

bool mv_pretok_next(const uint32_t *s, size_t n, size_t *pos, size_t *start, size_t *end)
{
    static const char *const specials[] = {"<|startoftext|>", "<|endoftext|>"};
    static const char *const contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    for (size_t i = *pos; i < n; i++) {
        uint32_t c = s[i];
        size_t m = 0;
        if (c == '<') {
            for (size_t k = 0; k < MV_ARRAY_LEN(specials) && !m; k++)
                m = match_lit(s, n, i, specials[k]);
        } else if (c == '\'') {
            for (size_t k = 0; k < MV_ARRAY_LEN(contractions) && !m; k++)
                m = match_lit(s, n, i, contractions[k]);
        }
        if (!m) {
            if (mv_uc_is_letter(c)) {
                m = 1;
                while (i + m < n && mv_uc_is_letter(s[i + m])) m++;
            } else if (mv_uc_is_number(c)) {
                m = 1;
            } else if (is_other(c)) {
                m = 1;
                while (i + m < n && is_other(s[i + m])) m++;
            }
        }
        if (m) {
            *start = i;
            *end = i + m;
            *pos = i + m;
            return true;
        }
    }
    *pos = n;
    return false;
}

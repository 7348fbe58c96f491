/*
 * unicode.c - UTF-8 decoding and the character classes of Python 3.11, the reference the
 * tokenizer ids come from (transformers' slow CLIPTokenizer runs on Python's unicodedata,
 * Unicode 14.0, and str.lower / str.isspace).
 *
 * Unicode version: the tables are utf8proc's (Debian 12: utf8proc 2.8 = Unicode 15.0). The
 * 4489 code points assigned in Unicode 15.0 (and the 627 of 15.1, for a newer utf8proc) are
 * reported as unassigned (Cn), which Python 3.11 says of them, so the cleaning step drops them
 * exactly as the reference does. Checked exhaustively against Python 3.11 / utf8proc 2.8:
 * general categories then agree on all 0x110000 code points, and simple lowercase mappings on
 * all but U+0130 (handled below with its full mapping). A utf8proc built on Unicode 16 or later
 * would need its additions listed here too.
 */
#include "text.h"

#include <utf8proc.h>

/* ---- buffers ---- */

enum medvlm_status mv_u32_reserve(struct mv_u32buf *b, size_t n)
{
    if (n <= b->cap) return MEDVLM_OK;
    size_t cap = b->cap ? b->cap : 64, bytes;
    while (cap < n) {
        if (!mv_mul_ok(cap, 2, &cap)) return mv_err(MEDVLM_ERR_OVERFLOW, "text buffer overflow");
    }
    if (!mv_mul_ok(cap, sizeof *b->v, &bytes))
        return mv_err(MEDVLM_ERR_OVERFLOW, "text buffer of %zu code points overflows", cap);
    uint32_t *v = mv_realloc(b->v, bytes);
    if (!v) return MEDVLM_ERR_NOMEM;
    b->v = v;
    b->cap = cap;
    return MEDVLM_OK;
}

enum medvlm_status mv_u32_push(struct mv_u32buf *b, uint32_t x)
{
    if (b->n == b->cap) {
        enum medvlm_status st = mv_u32_reserve(b, b->n + 1);
        if (st) return st;
    }
    b->v[b->n++] = x;
    return MEDVLM_OK;
}

enum medvlm_status mv_i32_push(struct mv_i32buf *b, int32_t x)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64, bytes;
        if (!mv_mul_ok(cap, sizeof *b->v, &bytes))
            return mv_err(MEDVLM_ERR_OVERFLOW, "id buffer overflow");
        int32_t *v = mv_realloc(b->v, bytes);
        if (!v) return MEDVLM_ERR_NOMEM;
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = x;
    return MEDVLM_OK;
}

/* ---- UTF-8 ---- */

enum medvlm_status mv_utf8_decode(const char *str, size_t len, struct mv_u32buf *out,
                                  size_t *bad_offset)
{
    const unsigned char *s = (const unsigned char *)str;
    enum medvlm_status st = mv_u32_reserve(out, out->n + len);
    if (st) return st;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        uint32_t cp;
        size_t k;
        if (c < 0x80) {
            out->v[out->n++] = c;
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            cp = c & 0x1F;
            k = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            cp = c & 0x0F;
            k = 2;
        } else if (c >= 0xF0 && c <= 0xF4) {
            cp = c & 0x07;
            k = 3;
        } else {
            goto bad;
        }
        if (len - i <= k) goto bad;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) goto bad;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            goto bad;
        out->v[out->n++] = cp;
        i += k + 1;
    }
    return MEDVLM_OK;
bad:
    *bad_offset = i;
    return MEDVLM_ERR_FORMAT;
}

int mv_utf8_encode(uint32_t cp, char *out)
{
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- categories ---- */

struct range {
    uint32_t lo, hi;
};

/* Assigned in Unicode 15.0 (4489 code points) and 15.1 (627): unassigned for Python 3.11. */
static const struct range newer_than_14[] = {
    {0x0CF3, 0x0CF3},   {0x0ECE, 0x0ECE},   {0x2FFC, 0x2FFF},   {0x31EF, 0x31EF},
    {0x10EFD, 0x10EFF}, {0x1123F, 0x11241}, {0x11B00, 0x11B09}, {0x11F00, 0x11F10},
    {0x11F12, 0x11F3A}, {0x11F3E, 0x11F59}, {0x1342F, 0x1342F}, {0x13439, 0x13455},
    {0x1B132, 0x1B132}, {0x1B155, 0x1B155}, {0x1D2C0, 0x1D2D3}, {0x1DF25, 0x1DF2A},
    {0x1E030, 0x1E06D}, {0x1E08F, 0x1E08F}, {0x1E4D0, 0x1E4F9}, {0x1F6DC, 0x1F6DC},
    {0x1F774, 0x1F776}, {0x1F77B, 0x1F77F}, {0x1F7D9, 0x1F7D9}, {0x1FA75, 0x1FA77},
    {0x1FA87, 0x1FA88}, {0x1FAAD, 0x1FAAF}, {0x1FABB, 0x1FABD}, {0x1FABF, 0x1FABF},
    {0x1FACE, 0x1FACF}, {0x1FADA, 0x1FADB}, {0x1FAE8, 0x1FAE8}, {0x1FAF7, 0x1FAF8},
    {0x2B739, 0x2B739}, {0x2EBF0, 0x2EE5D}, {0x31350, 0x323AF},
};

static bool in_ranges(const struct range *r, size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid].lo)
            hi = mid;
        else if (cp > r[mid].hi)
            lo = mid + 1;
        else
            return true;
    }
    return false;
}

int mv_uc_category(uint32_t cp)
{
    if (cp > 0x10FFFF) return UTF8PROC_CATEGORY_CN;
    if (cp >= 0x0CF3 && in_ranges(newer_than_14, MV_ARRAY_LEN(newer_than_14), cp))
        return UTF8PROC_CATEGORY_CN;
    return utf8proc_category((utf8proc_int32_t)cp);
}

bool mv_uc_is_letter(uint32_t cp)
{
    if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
    int c = mv_uc_category(cp);
    return c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO;
}

bool mv_uc_is_number(uint32_t cp)
{
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    int c = mv_uc_category(cp);
    return c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO;
}

bool mv_uc_is_space(uint32_t cp)
{
    /* str.isspace: bidirectional class WS, B or S, or category Zs. */
    if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F);
    if (cp == 0x85) return true;
    int c = mv_uc_category(cp);
    return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

bool mv_uc_is_cjk(uint32_t cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
           (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

/* ---- lowercase ---- */

/* Cased (Unicode DerivedCoreProperties): Lu, Ll, Lt, Other_Lowercase, Other_Uppercase. The
 * Other_* code points that are not case-ignorable either have a case mapping (circled and
 * Roman-numeral letters), are the two ordinal indicators or the enclosed capitals below. Only
 * used for Final_Sigma, where case-ignorable code points are skipped before Cased is asked.
 * Checked on all code points against Python 3.11's str.lower final-sigma decisions. */
static bool is_cased(uint32_t cp)
{
    int c = mv_uc_category(cp);
    if (c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT)
        return true;
    if (cp == 0xAA || cp == 0xBA) return true;
    /* squared / negative circled / negative squared Latin capitals: Other_Uppercase, no mapping */
    if ((cp >= 0x1F130 && cp <= 0x1F149) || (cp >= 0x1F150 && cp <= 0x1F169) ||
        (cp >= 0x1F170 && cp <= 0x1F189))
        return true;
    if (c == UTF8PROC_CATEGORY_CN) return false;
    utf8proc_int32_t x = (utf8proc_int32_t)cp;
    return utf8proc_tolower(x) != x || utf8proc_toupper(x) != x;
}

/* Case_Ignorable: Mn, Me, Cf, Lm, Sk, and Word_Break MidLetter / MidNumLet / Single_Quote. */
static bool is_case_ignorable(uint32_t cp)
{
    static const uint32_t mid[] = {0x27,   0x2E,   0x3A,   0xB7,   0x387,  0x55F,
                                   0x5F4,  0x2018, 0x2019, 0x2024, 0x2027, 0xFE13,
                                   0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A};
    for (size_t i = 0; i < MV_ARRAY_LEN(mid); i++)
        if (cp == mid[i]) return true;
    int c = mv_uc_category(cp);
    return c == UTF8PROC_CATEGORY_MN || c == UTF8PROC_CATEGORY_ME || c == UTF8PROC_CATEGORY_CF ||
           c == UTF8PROC_CATEGORY_LM || c == UTF8PROC_CATEGORY_SK;
}

/* Python's handle_capital_sigma: U+03A3 is final when preceded by a cased letter and not
 * followed by one (case-ignorable code points skipped on both sides). */
static bool final_sigma(const uint32_t *s, size_t n, size_t i)
{
    size_t j = i;
    while (j > 0 && is_case_ignorable(s[j - 1])) j--;
    if (j == 0 || !is_cased(s[j - 1])) return false;
    j = i + 1;
    while (j < n && is_case_ignorable(s[j])) j++;
    return j == n || !is_cased(s[j]);
}

int mv_uc_lower(const uint32_t *s, size_t n, size_t i, uint32_t out[2])
{
    uint32_t cp = s[i];
    if (cp < 0x80) {
        out[0] = cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
        return 1;
    }
    if (cp == 0x130) { /* SpecialCasing: LATIN CAPITAL LETTER I WITH DOT ABOVE -> i + U+0307 */
        out[0] = 'i';
        out[1] = 0x307;
        return 2;
    }
    if (cp == 0x3A3) {
        out[0] = final_sigma(s, n, i) ? 0x3C2 : 0x3C3;
        return 1;
    }
    if (mv_uc_category(cp) == UTF8PROC_CATEGORY_CN) {
        out[0] = cp;
        return 1;
    }
    out[0] = (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp);
    return 1;
}

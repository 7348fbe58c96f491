/*
 * normalize.c - the text the CLIP regex sees, as transformers' slow CLIPTokenizer makes it
 * without ftfy: BasicTokenizer(do_lower_case=True, strip_accents=False,
 * do_split_on_punc=False).tokenize(text), joined with single spaces.
 *
 *   1. clean: drop U+0000, U+FFFD and every category C* code point except \t \n \r; map
 *      \t \n \r and category Zs to " "
 *   2. put " " before and after every CJK ideograph (kana and hangul are not ideographs)
 *   3. NFC (utf8proc)
 *   4. split on whitespace (str.split), lowercase each piece (str.lower), join with " "
 */
#include "text.h"

#include <utf8proc.h>

static bool is_control(uint32_t cp)
{
    if (cp == '\t' || cp == '\n' || cp == '\r') return false;
    int c = mv_uc_category(cp);
    return c == UTF8PROC_CATEGORY_CN || c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF ||
           c == UTF8PROC_CATEGORY_CS || c == UTF8PROC_CATEGORY_CO;
}

static bool is_clean_space(uint32_t cp)
{
    return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' ||
           (cp >= 0x80 && mv_uc_category(cp) == UTF8PROC_CATEGORY_ZS);
}

/* Steps 1-2 into out; returns whether everything left is ASCII (NFC is then the identity). */
static enum medvlm_status clean(const uint32_t *s, size_t n, struct mv_u32buf *out, bool *ascii)
{
    *ascii = true;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = s[i];
        enum medvlm_status st = MEDVLM_OK;
        if (cp == 0 || cp == 0xFFFD || is_control(cp)) continue;
        if (is_clean_space(cp)) {
            st = mv_u32_push(out, ' ');
        } else if (mv_uc_is_cjk(cp)) {
            *ascii = false;
            if (!(st = mv_u32_push(out, ' ')) && !(st = mv_u32_push(out, cp)))
                st = mv_u32_push(out, ' ');
        } else {
            if (cp >= 0x80) *ascii = false;
            st = mv_u32_push(out, cp);
        }
        if (st) return st;
    }
    return MEDVLM_OK;
}

/* utf8proc (2.8) composes a Hangul LV syllable with a following U+11A7 (it tests T >= TBase
 * instead of T > TBase) and so loses the U+11A7, which NFC keeps. U+11A7 never composes, so it
 * stands aside as U+FDD0 (a noncharacter: dropped by the cleaning step, never in this text). */
#define HANGUL_TBASE 0x11A7
#define STAND_IN     0xFDD0

/* Step 3 in place: re-encode, decompose + canonical order (utf8proc_decompose), compose. */
static enum medvlm_status nfc(struct mv_u32buf *b)
{
    enum medvlm_status st = MEDVLM_OK;
    size_t bytes;
    if (!mv_mul_ok(b->n, 4, &bytes)) return mv_err(MEDVLM_ERR_OVERFLOW, "text too long");
    char *utf8 = mv_malloc(bytes);
    utf8proc_int32_t *dec = NULL;
    if (!utf8) return MEDVLM_ERR_NOMEM;
    size_t len = 0;
    for (size_t i = 0; i < b->n; i++)
        len += (size_t)mv_utf8_encode(b->v[i] == HANGUL_TBASE ? STAND_IN : b->v[i], utf8 + len);
    const utf8proc_option_t opt = UTF8PROC_STABLE | UTF8PROC_COMPOSE;
    utf8proc_ssize_t need =
        utf8proc_decompose((const utf8proc_uint8_t *)utf8, (utf8proc_ssize_t)len, NULL, 0, opt);
    if (need < 0) {
        st = mv_err(MEDVLM_ERR_INTERNAL, "NFC: %s", utf8proc_errmsg(need));
        goto fail;
    }
    size_t dbytes;
    if (!mv_mul_ok((size_t)need + 1, sizeof *dec, &dbytes)) {
        st = mv_err(MEDVLM_ERR_OVERFLOW, "NFC: text too long");
        goto fail;
    }
    dec = mv_malloc(dbytes);
    if (!dec) {
        st = MEDVLM_ERR_NOMEM;
        goto fail;
    }
    utf8proc_ssize_t got =
        utf8proc_decompose((const utf8proc_uint8_t *)utf8, (utf8proc_ssize_t)len, dec, need, opt);
    if (got < 0 || got > need) {
        st = mv_err(MEDVLM_ERR_INTERNAL, "NFC: decomposition changed size");
        goto fail;
    }
    got = utf8proc_normalize_utf32(dec, got, opt);
    if (got < 0) {
        st = mv_err(MEDVLM_ERR_INTERNAL, "NFC: %s", utf8proc_errmsg(got));
        goto fail;
    }
    if ((st = mv_u32_reserve(b, (size_t)got))) goto fail;
    for (utf8proc_ssize_t i = 0; i < got; i++)
        b->v[i] = dec[i] == STAND_IN ? HANGUL_TBASE : (uint32_t)dec[i];
    b->n = (size_t)got;
fail:
    mv_free(utf8);
    mv_free(dec);
    return st;
}

enum medvlm_status mv_text_normalize(const uint32_t *s, size_t n, struct mv_u32buf *out)
{
    struct mv_u32buf tmp = {0};
    bool ascii;
    enum medvlm_status st = clean(s, n, &tmp, &ascii);
    if (st) goto fail;
    if (!ascii && (st = nfc(&tmp))) goto fail;
    out->n = 0;
    size_t i = 0;
    while (i < tmp.n) {
        while (i < tmp.n && mv_uc_is_space(tmp.v[i])) i++;
        if (i == tmp.n) break;
        size_t start = i;
        while (i < tmp.n && !mv_uc_is_space(tmp.v[i])) i++;
        if (out->n && (st = mv_u32_push(out, ' '))) goto fail;
        for (size_t j = start; j < i; j++) {
            uint32_t low[2];
            int k = mv_uc_lower(tmp.v + start, i - start, j - start, low);
            for (int q = 0; q < k; q++)
                if ((st = mv_u32_push(out, low[q]))) goto fail;
        }
    }
fail:
    mv_free(tmp.v);
    return st;
}

/* json.c - typed, located reads over cJSON: every message names the file and key. */
#include "io.h"

#include <math.h>
#include <string.h>

enum medvlm_status mv_json_parse(const char *what, const char *text, size_t len, cJSON **out)
{
    *out = cJSON_ParseWithLength(text, len);
    if (*out) return MEDVLM_OK;
    const char *e = cJSON_GetErrorPtr();
    long off = -1, line = 1;
    if (e && e >= text && e <= text + len) {
        off = (long)(e - text);
        for (const char *p = text; p < e; p++) line += *p == '\n';
    }
    return mv_err(MEDVLM_ERR_FORMAT, "%s: malformed JSON near line %ld (byte %ld)", what, line,
                  off);
}

enum medvlm_status mv_json_load(const char *path, cJSON **out)
{
    char *text;
    size_t len;
    *out = NULL;
    enum medvlm_status st = mv_read_file(path, &text, &len);
    if (st != MEDVLM_OK) return st;
    st = mv_json_parse(path, text, len, out);
    mv_free(text);
    return st;
}

const cJSON *mv_json_get(const cJSON *obj, const char *key)
{
    if (!cJSON_IsObject(obj)) return NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNull(v) ? NULL : v;
}

enum medvlm_status mv_json_int(const char *file, const cJSON *obj, const char *key, int *out)
{
    const cJSON *v = mv_json_get(obj, key);
    if (!v) return MEDVLM_OK;
    if (!cJSON_IsNumber(v) || floor(v->valuedouble) != v->valuedouble ||
        fabs(v->valuedouble) > 2147483647.0)
        return mv_err(MEDVLM_ERR_FORMAT, "%s: \"%s\" must be an integer", file, key);
    *out = (int)v->valuedouble;
    return MEDVLM_OK;
}

enum medvlm_status mv_json_float(const char *file, const cJSON *obj, const char *key, float *out)
{
    const cJSON *v = mv_json_get(obj, key);
    if (!v) return MEDVLM_OK;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return mv_err(MEDVLM_ERR_FORMAT, "%s: \"%s\" must be a finite number", file, key);
    *out = (float)v->valuedouble;
    return MEDVLM_OK;
}

enum medvlm_status mv_json_bool(const char *file, const cJSON *obj, const char *key, int *out)
{
    const cJSON *v = mv_json_get(obj, key);
    if (!v) return MEDVLM_OK;
    if (!cJSON_IsBool(v))
        return mv_err(MEDVLM_ERR_FORMAT, "%s: \"%s\" must be true or false", file, key);
    *out = cJSON_IsTrue(v);
    return MEDVLM_OK;
}

/* ---- strings that may hold NUL ----
 * cJSON decodes "\u0000" into its C strings, where it ends them. Before cJSON runs, each such
 * escape becomes the escape of U+10FFFF (a noncharacter, which Unicode reserves for a program's
 * internal use), and mv_json_restore_nul turns that back into a NUL byte, with the length. A
 * text that holds U+10FFFF itself is refused, so the mapping is exact. */

#define NUL_STAND_IN     "\xf4\x8f\xbf\xbf" /* U+10FFFF in UTF-8 */
#define NUL_STAND_IN_ESC "\\uDBFF\\uDFFF"   /* and as a JSON escape */

static int hex4(const char *s, size_t n, size_t i, unsigned *v)
{
    if (n - i < 4) return 0;
    *v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[i + (size_t)k];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d == 16) return 0;
        *v = *v << 4 | d;
    }
    return 1;
}

static long line_of(const char *s, size_t off)
{
    long line = 1;
    for (size_t i = 0; i < off; i++) line += s[i] == '\n';
    return line;
}

enum medvlm_status mv_json_parse_nul(const char *what, const char *text, size_t len, cJSON **out)
{
    *out = NULL;
    size_t cap;
    if (!mv_mul_ok(len, 2, &cap) || !mv_add_ok(cap, 1, &cap)) return MEDVLM_ERR_OVERFLOW;
    char *buf = mv_malloc(cap);
    if (!buf) return mv_err_ctx(MEDVLM_ERR_NOMEM, "%s", what);
    size_t o = 0;
    int in_string = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        unsigned v, lo;
        if (i + 4 <= len && memcmp(text + i, NUL_STAND_IN, 4) == 0) {
            mv_free(buf);
            return mv_err(MEDVLM_ERR_FORMAT,
                          "%s: line %ld: holds U+10FFFF, a noncharacter medvlm reserves (for "
                          "\\u0000 in strings); remove it",
                          what, line_of(text, i));
        }
        if (in_string && c == '\\' && i + 1 < len && text[i + 1] == 'u' &&
            hex4(text, len, i + 2, &v)) {
            if (v == 0) { /* \u0000 -> the stand-in */
                memcpy(buf + o, NUL_STAND_IN_ESC, 12);
                o += 12;
                i += 5;
                continue;
            }
            if (v == 0xDBFF && i + 11 < len && text[i + 6] == '\\' && text[i + 7] == 'u' &&
                hex4(text, len, i + 8, &lo) && lo == 0xDFFF) {
                mv_free(buf);
                return mv_err(MEDVLM_ERR_FORMAT,
                              "%s: line %ld: holds \\uDBFF\\uDFFF (U+10FFFF), a noncharacter "
                              "medvlm reserves (for \\u0000 in strings); remove it",
                              what, line_of(text, i));
            }
            memcpy(buf + o, text + i, 6);
            o += 6;
            i += 5;
            continue;
        }
        if (in_string && c == '\\' && i + 1 < len) { /* any other escape: both bytes */
            buf[o++] = c;
            buf[o++] = text[++i];
            continue;
        }
        if (c == '"') in_string = !in_string;
        buf[o++] = c;
    }
    buf[o] = '\0';
    enum medvlm_status st = mv_json_parse(what, buf, o, out);
    mv_free(buf);
    return st;
}

size_t mv_json_restore_nul(char *s)
{
    size_t o = 0, i = 0;
    while (s[i]) {
        /* byte by byte: never past the terminating NUL */
        if ((unsigned char)s[i] == 0xf4 && (unsigned char)s[i + 1] == 0x8f &&
            (unsigned char)s[i + 2] == 0xbf && (unsigned char)s[i + 3] == 0xbf) {
            s[o++] = '\0';
            i += 4;
        } else {
            s[o++] = s[i++];
        }
    }
    s[o] = '\0';
    return o;
}

int mv_json_has_nul(const char *s)
{
    return strstr(s, NUL_STAND_IN) != NULL;
}

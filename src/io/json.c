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

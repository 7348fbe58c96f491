/*
 * prompts.c - class prompt files: {"classes", "templates", "descriptions"} expanded into one
 * prompt list per class (descriptions outer, templates inner; see include/medvlm.h).
 */
#include "io.h"

#include <string.h>

#define PROMPT_PLACEHOLDER "[CLS]"
#define PROMPTS_MAX        ((size_t)1 << 16) /* prompts per class and in all */
#define PROMPT_CLASSES_MAX 4096

void medvlm_prompts_free(struct medvlm_prompts *p)
{
    if (!p) return;
    for (int c = 0; c < p->n_classes; c++) {
        if (p->classes) mv_free(p->classes[c]);
        if (p->prompts && p->prompts[c]) {
            for (int i = 0; i < p->n_prompts[c]; i++) mv_free(p->prompts[c][i]);
            mv_free(p->prompts[c]);
        }
        if (p->prompt_lens) mv_free(p->prompt_lens[c]);
    }
    mv_free(p->prompt_lens);
    mv_free(p->classes);
    mv_free(p->n_prompts);
    mv_free(p->prompts);
    mv_free(p);
}

/* s with every [CLS] replaced by d (Python's str.replace). */
static char *replace_all(const char *s, const char *d)
{
    size_t pl = strlen(PROMPT_PLACEHOLDER), dl = strlen(d), n = 0, len = 0;
    for (const char *p = strstr(s, PROMPT_PLACEHOLDER); p; p = strstr(p + pl, PROMPT_PLACEHOLDER))
        n++;
    size_t grow;
    if (!mv_mul_ok(n, dl, &grow) || !mv_add_ok(strlen(s), grow, &len)) return NULL;
    char *out = mv_malloc(len + 1), *o = out;
    if (!out) return NULL;
    for (;;) {
        const char *p = strstr(s, PROMPT_PLACEHOLDER);
        size_t head = p ? (size_t)(p - s) : strlen(s);
        memcpy(o, s, head);
        o += head;
        if (!p) break;
        memcpy(o, d, dl);
        o += dl;
        s = p + pl;
    }
    *o = '\0';
    return out;
}

/* A string or an array of strings; n = -1 when it is neither (or has a non-string). */
static int string_list(const cJSON *v, const char **first)
{
    if (cJSON_IsString(v)) {
        *first = v->valuestring;
        return 1;
    }
    if (!cJSON_IsArray(v)) return -1;
    int n = 0;
    for (const cJSON *e = v->child; e; e = e->next) {
        if (!cJSON_IsString(e)) return -1;
        n++;
    }
    return n;
}

static const cJSON *list_item(const cJSON *v, int i)
{
    return cJSON_IsString(v) ? v : cJSON_GetArrayItem(v, i);
}

static enum medvlm_status from_json(const char *what, const cJSON *root,
                                    struct medvlm_prompts **out)
{
    enum medvlm_status st = MEDVLM_OK;
    struct medvlm_prompts *p = NULL;
    if (!cJSON_IsObject(root))
        return mv_err(MEDVLM_ERR_FORMAT,
                      "%s: expected a JSON object with \"descriptions\" (and "
                      "optionally \"classes\", \"templates\")",
                      what);
    for (const cJSON *k = root->child; k; k = k->next)
        if (strcmp(k->string, "classes") && strcmp(k->string, "templates") &&
            strcmp(k->string, "descriptions"))
            return mv_err(MEDVLM_ERR_FORMAT,
                          "%s: unknown key \"%s\" (expected classes, "
                          "templates, descriptions)",
                          what, k->string);
    const cJSON *classes = mv_json_get(root, "classes");
    const cJSON *templates = mv_json_get(root, "templates");
    const cJSON *desc = mv_json_get(root, "descriptions");
    if (!cJSON_IsObject(desc) || !desc->child)
        return mv_err(MEDVLM_ERR_FORMAT,
                      "%s: \"descriptions\" must be an object mapping each "
                      "class to a list of descriptions, e.g. {\"NC\": [\"benign glands\"]}",
                      what);
    int n_templates = 0;
    const char *dummy;
    if (templates) {
        n_templates = string_list(templates, &dummy);
        if (n_templates <= 0)
            return mv_err(MEDVLM_ERR_FORMAT,
                          "%s: \"templates\" must be a non-empty list of "
                          "strings containing %s",
                          what, PROMPT_PLACEHOLDER);
        for (int t = 0; t < n_templates; t++)
            if (!strstr(list_item(templates, t)->valuestring, PROMPT_PLACEHOLDER))
                return mv_err(MEDVLM_ERR_FORMAT,
                              "%s: template %d \"%.80s\" has no %s "
                              "placeholder",
                              what, t, list_item(templates, t)->valuestring, PROMPT_PLACEHOLDER);
    }
    /* described classes: unique, each with a non-empty list of strings */
    int n_desc = 0;
    for (const cJSON *d = desc->child; d; d = d->next) {
        if (mv_json_has_nul(d->string))
            return mv_err(MEDVLM_ERR_FORMAT,
                          "%s: the class name \"%s...\" in \"descriptions\" holds \\u0000 (a NUL), "
                          "which a class name must not",
                          what, d->string);
        for (const cJSON *e = desc->child; e != d; e = e->next)
            if (strcmp(e->string, d->string) == 0)
                return mv_err(MEDVLM_ERR_FORMAT, "%s: class \"%s\" is described twice", what,
                              d->string);
        int n = string_list(d, &dummy);
        if (n < 0)
            return mv_err(MEDVLM_ERR_FORMAT,
                          "%s: descriptions of class \"%s\" must be a string "
                          "or a list of strings",
                          what, d->string);
        if (n == 0)
            return mv_err(MEDVLM_ERR_MISSING, "%s: class \"%s\" has no descriptions", what,
                          d->string);
        if (++n_desc > PROMPT_CLASSES_MAX)
            return mv_err(MEDVLM_ERR_LIMIT, "%s: more than %d described classes", what,
                          PROMPT_CLASSES_MAX);
    }
    int k = n_desc;
    if (classes) {
        k = string_list(classes, &dummy);
        if (k <= 0 || cJSON_IsString(classes))
            return mv_err(MEDVLM_ERR_FORMAT,
                          "%s: \"classes\" must be a non-empty list of class "
                          "names",
                          what);
        if (k > PROMPT_CLASSES_MAX)
            return mv_err(MEDVLM_ERR_LIMIT, "%s: more than %d classes", what, PROMPT_CLASSES_MAX);
        for (int c = 0; c < k; c++) {
            const char *name = cJSON_GetArrayItem(classes, c)->valuestring;
            if (mv_json_has_nul(name))
                return mv_err(MEDVLM_ERR_FORMAT,
                              "%s: class %d \"%s...\" in \"classes\" holds \\u0000 (a NUL), which "
                              "a class name must not",
                              what, c, name);
            for (int j = 0; j < c; j++)
                if (strcmp(cJSON_GetArrayItem(classes, j)->valuestring, name) == 0)
                    return mv_err(MEDVLM_ERR_FORMAT,
                                  "%s: class \"%s\" is listed twice in "
                                  "\"classes\"",
                                  what, name);
            if (!cJSON_GetObjectItemCaseSensitive(desc, name))
                return mv_err(MEDVLM_ERR_MISSING,
                              "%s: class \"%s\" has no descriptions (add "
                              "\"descriptions\": {\"%s\": [...]})",
                              what, name, name);
        }
        for (const cJSON *d = desc->child; d; d = d->next) {
            int listed = 0;
            for (int c = 0; c < k && !listed; c++)
                listed = strcmp(cJSON_GetArrayItem(classes, c)->valuestring, d->string) == 0;
            if (!listed)
                return mv_err(MEDVLM_ERR_FORMAT,
                              "%s: descriptions for unknown class \"%s\" (not "
                              "in \"classes\")",
                              what, d->string);
        }
    }

    p = mv_calloc(1, sizeof *p);
    if (!p) return MEDVLM_ERR_NOMEM;
    p->classes = mv_calloc((size_t)k, sizeof *p->classes);
    p->n_prompts = mv_calloc((size_t)k, sizeof *p->n_prompts);
    p->prompts = mv_calloc((size_t)k, sizeof *p->prompts);
    p->prompt_lens = mv_calloc((size_t)k, sizeof *p->prompt_lens);
    if (!p->classes || !p->n_prompts || !p->prompts || !p->prompt_lens) goto nomem;
    p->n_classes = k;
    const cJSON *d = desc->child;
    size_t all = 0;
    for (int c = 0; c < k; c++, d = d ? d->next : NULL) {
        const char *name = classes ? cJSON_GetArrayItem(classes, c)->valuestring : d->string;
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(desc, name);
        int nd = string_list(list, &dummy);
        size_t total;
        if (!mv_mul_ok((size_t)nd, (size_t)(n_templates ? n_templates : 1), &total) ||
            total > PROMPTS_MAX || (all += total) > PROMPTS_MAX) {
            st = mv_err(MEDVLM_ERR_LIMIT, "%s: class \"%s\" expands to too many prompts", what,
                        name);
            goto fail;
        }
        if (!(p->classes[c] = mv_strdup(name))) goto nomem;
        if (!(p->prompts[c] = mv_calloc(total, sizeof **p->prompts))) goto nomem;
        if (!(p->prompt_lens[c] = mv_calloc(total, sizeof **p->prompt_lens))) goto nomem;
        for (int i = 0; i < nd; i++) {
            const char *text = list_item(list, i)->valuestring;
            for (int t = 0; t < (n_templates ? n_templates : 1); t++) {
                char *s = n_templates ? replace_all(list_item(templates, t)->valuestring, text)
                                      : mv_strdup(text);
                if (!s) goto nomem;
                /* "\u0000" in a description or template: a NUL inside the prompt, which the
                 * tokenizer drops as Hugging Face's text cleaning does (the rest is kept) */
                p->prompt_lens[c][p->n_prompts[c]] = mv_json_restore_nul(s);
                p->prompts[c][p->n_prompts[c]++] = s;
            }
        }
    }
    *out = p;
    return MEDVLM_OK;
nomem:
    st = mv_err(MEDVLM_ERR_NOMEM, "%s: out of memory expanding the prompts", what);
fail:
    medvlm_prompts_free(p);
    return st;
}

enum medvlm_status medvlm_prompts_parse(const char *what, const char *json, size_t len,
                                        struct medvlm_prompts **out)
{
    if (!out) return mv_err(MEDVLM_ERR_ARG, "prompts: out must not be NULL");
    *out = NULL;
    if (!what) what = "prompts";
    if (!json) return mv_err(MEDVLM_ERR_ARG, "%s: no JSON text", what);
    /* JSON is UTF-8 (Python's json.load refuses other bytes); a Latin-1 class name would
     * otherwise match nothing and be reported as a class without prompts */
    size_t bad = mv_utf8_check(json, len);
    if (bad < len) {
        long line = 1;
        size_t bol = 0;
        for (size_t i = 0; i < bad; i++)
            if (json[i] == '\n') line++, bol = i + 1;
        size_t eol = bad;
        while (eol < len && json[eol] != '\n' && eol - bol < 120) eol++;
        char *text = mv_strndup(json + bol, eol - bol);
        char shown[256];
        enum medvlm_status st = mv_err(
            MEDVLM_ERR_FORMAT,
            "%s: line %ld, column %zu: byte 0x%02X is not valid UTF-8, in \"%s\" (a class name or "
            "prompt in another encoding, such as Latin-1?); save the file as UTF-8",
            what, line, bad - bol + 1, (unsigned char)json[bad],
            text ? mv_printable(shown, sizeof shown, text) : "");
        mv_free(text);
        return st;
    }
    cJSON *root = NULL;
    enum medvlm_status st = mv_json_parse_nul(what, json, len, &root);
    if (st) return st;
    st = from_json(what, root, out);
    cJSON_Delete(root);
    return st;
}

enum medvlm_status medvlm_prompts_load(const char *path, struct medvlm_prompts **out)
{
    if (!out) return mv_err(MEDVLM_ERR_ARG, "prompts: out must not be NULL");
    *out = NULL;
    if (!path) return mv_err(MEDVLM_ERR_ARG, "prompts: no path given");
    char *text = NULL;
    size_t len = 0;
    enum medvlm_status st = mv_read_file(path, &text, &len);
    if (st) return st;
    st = medvlm_prompts_parse(path, text, len, out);
    mv_free(text);
    return st;
}

/* test_prompts.c - prompt files: the golden set's templates x descriptions expand to its
 * ensemble_prompts, the shipped examples, and the error messages. */
#include "check.h"
#include "golden_path.h"
#include "io/io.h"

static int same_as_manifest(const struct medvlm_prompts *p, const cJSON *classes,
                            const cJSON *expected, const char *what)
{
    int ok = p->n_classes == cJSON_GetArraySize(classes);
    CHECK(ok, "%s: %d classes, manifest has %d", what, p->n_classes, cJSON_GetArraySize(classes));
    for (int c = 0; ok && c < p->n_classes; c++) {
        const char *name = cJSON_GetArrayItem(classes, c)->valuestring;
        CHECK(!strcmp(p->classes[c], name), "%s: class %d is %s, want %s", what, c, p->classes[c],
              name);
        /* expected: an object class -> list, or a flat list (one prompt per class) */
        const cJSON *want =
            cJSON_IsObject(expected) ? cJSON_GetObjectItemCaseSensitive(expected, name) : NULL;
        int n = want ? cJSON_GetArraySize(want) : 1;
        CHECK(p->n_prompts[c] == n, "%s: class %s has %d prompts, want %d", what, name,
              p->n_prompts[c], n);
        for (int i = 0; i < n && i < p->n_prompts[c]; i++) {
            const char *w = want ? cJSON_GetArrayItem(want, i)->valuestring
                                 : cJSON_GetArrayItem(expected, c)->valuestring;
            CHECK(!strcmp(p->prompts[c][i], w), "%s: %s[%d] = '%s', want '%s'", what, name, i,
                  p->prompts[c][i], w);
        }
    }
    return ok;
}

static void test_golden(const char *golden, const char *src)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/manifest.json", golden);
    cJSON *man = NULL;
    CHECK_OK(mv_json_load(path, &man));
    if (!man) return;
    const cJSON *classes = cJSON_GetObjectItem(man, "classes");
    /* a prompts file made of the manifest's own classes / templates / descriptions */
    cJSON *file = cJSON_CreateObject();
    cJSON_AddItemToObject(file, "classes", cJSON_Duplicate(classes, 1));
    cJSON_AddItemToObject(file, "templates",
                          cJSON_Duplicate(cJSON_GetObjectItem(man, "templates"), 1));
    cJSON_AddItemToObject(file, "descriptions",
                          cJSON_Duplicate(cJSON_GetObjectItem(man, "descriptions"), 1));
    char *text = cJSON_Print(file);
    struct medvlm_prompts *p = NULL;
    CHECK_OK(medvlm_prompts_parse("manifest-ensemble", text, strlen(text), &p));
    if (p) same_as_manifest(p, classes, cJSON_GetObjectItem(man, "ensemble_prompts"), "ensemble");
    medvlm_prompts_free(p);
    p = NULL;
    cJSON_free(text);
    cJSON_Delete(file);

    snprintf(path, sizeof path, "%s/examples/sicapv2_ensemble.json", src);
    CHECK_OK(medvlm_prompts_load(path, &p));
    if (p) same_as_manifest(p, classes, cJSON_GetObjectItem(man, "ensemble_prompts"), path);
    medvlm_prompts_free(p);
    p = NULL;
    snprintf(path, sizeof path, "%s/examples/sicapv2_single.json", src);
    CHECK_OK(medvlm_prompts_load(path, &p));
    if (p) same_as_manifest(p, classes, cJSON_GetObjectItem(man, "single_prompts"), path);
    medvlm_prompts_free(p);
    p = NULL;
    snprintf(path, sizeof path, "%s/examples/sicapv2_conch_ensemble.json", src);
    CHECK_OK(medvlm_prompts_load(path, &p));
    if (p) {
        CHECK(p->n_classes == 4 && p->n_prompts[0] == 18 && p->n_prompts[3] == 18, "conch sizes");
        CHECK(!strcmp(p->prompts[0][0], "benign prostatic tissue.") &&
                  !strcmp(p->prompts[0][1], "an H&E image of benign prostatic tissue.") &&
                  !strcmp(p->prompts[0][6], "non-cancerous prostate glands with basal cells."),
              "conch order (descriptions outer): %s | %s | %s", p->prompts[0][0], p->prompts[0][1],
              p->prompts[0][6]);
    }
    medvlm_prompts_free(p);
    cJSON_Delete(man);
}

#define PARSE(text, pp) medvlm_prompts_parse("t.json", text, strlen(text), pp)

static void test_forms_and_errors(void)
{
    struct medvlm_prompts *p = NULL;
    /* no classes key: the descriptions' order; a single string; [CLS] twice */
    CHECK_OK(PARSE("{\"templates\": [\"[CLS] or [CLS]\", \"x [CLS]\"], \"descriptions\": "
                   "{\"b\": \"one\", \"a\": [\"two\", \"three\"]}}",
                   &p));
    if (p) {
        CHECK(p->n_classes == 2 && !strcmp(p->classes[0], "b") && p->n_prompts[0] == 2 &&
                  p->n_prompts[1] == 4,
              "forms");
        CHECK(!strcmp(p->prompts[0][0], "one or one") && !strcmp(p->prompts[1][1], "x two") &&
                  !strcmp(p->prompts[1][2], "three or three"),
              "expansion: %s %s %s", p->prompts[0][0], p->prompts[1][1], p->prompts[1][2]);
    }
    medvlm_prompts_free(p);
    medvlm_prompts_free(NULL);
    p = NULL;
    CHECK_ERR(PARSE("{\"classes\": [\"NC\", \"G3\"], \"descriptions\": {\"NC\": [\"x\"]}}", &p),
              MEDVLM_ERR_MISSING, "t.json: class \"G3\" has no descriptions");
    CHECK_ERR(PARSE("{\"descriptions\": {\"NC\": []}}", &p), MEDVLM_ERR_MISSING,
              "class \"NC\" has no descriptions");
    CHECK_ERR(
        PARSE("{\"classes\": [\"NC\"], \"descriptions\": {\"NC\": [\"x\"], \"G9\": [\"y\"]}}", &p),
        MEDVLM_ERR_FORMAT, "descriptions for unknown class \"G9\"");
    CHECK_ERR(PARSE("{\n\"classes\": [\"NC\"],\n\"descriptions\": {\"NC\": [\"x\"],}\n}", &p),
              MEDVLM_ERR_FORMAT, "t.json: malformed JSON near line 3");
    CHECK_ERR(
        PARSE("{\"templates\": [\"no placeholder\"], \"descriptions\": {\"NC\": [\"x\"]}}", &p),
        MEDVLM_ERR_FORMAT, "template 0 \"no placeholder\" has no [CLS]");
    CHECK_ERR(PARSE("{\"descriptions\": {\"NC\": [1]}}", &p), MEDVLM_ERR_FORMAT,
              "must be a string or a list of strings");
    CHECK_ERR(PARSE("{\"descriptions\": {\"NC\": \"a\", \"NC\": \"b\"}}", &p), MEDVLM_ERR_FORMAT,
              "class \"NC\" is described twice");
    CHECK_ERR(PARSE("{\"classes\": [\"NC\", \"NC\"], \"descriptions\": {\"NC\": \"a\"}}", &p),
              MEDVLM_ERR_FORMAT, "listed twice");
    CHECK_ERR(PARSE("{\"descriptions\": {\"NC\": \"a\"}, \"prompt\": 1}", &p), MEDVLM_ERR_FORMAT,
              "unknown key \"prompt\"");
    CHECK_ERR(PARSE("[1, 2]", &p), MEDVLM_ERR_FORMAT, "expected a JSON object");
    /* a class name in Latin-1 ("G\xe9"): not "class ... has no prompts" but where the bytes are */
    CHECK_ERR(PARSE("{\"classes\": [\"NC\", \"G3\"],\n\"descriptions\": {\"NC\": \"a\", "
                    "\"G\xe9"
                    "3\": \"b\"}}",
                    &p),
              MEDVLM_ERR_FORMAT,
              "t.json: line 2, column 31: byte 0xE9 is not valid UTF-8, in \"\"descriptions\": "
              "{\"NC\": \"a\", \"G\\xE93\": \"b\"}}\"");
    /* "\u0000" in a description or template: kept in the prompt with its length (the C string
     * used to end there); an escaped backslash before "u0000" is text; class names refuse it */
    CHECK_OK(PARSE("{\"templates\": [\"[CLS]\", \"x\\u0000[CLS]\"], \"descriptions\": "
                   "{\"NC\": [\"desc of \\u0000 NC\", \"a\\\\u0000\"]}}",
                   &p));
    if (p) {
        CHECK(p->n_prompts[0] == 4 && p->prompt_lens[0][0] == 12 &&
                  !memcmp(p->prompts[0][0], "desc of \0 NC", 13) && p->prompt_lens[0][1] == 14 &&
                  !memcmp(p->prompts[0][1], "x\0desc of \0 NC", 15),
              "NUL kept: lengths %zu %zu", p->prompt_lens[0][0], p->prompt_lens[0][1]);
        CHECK(p->n_prompts[0] == 4 && p->prompt_lens[0][2] == 7 &&
                  !strcmp(p->prompts[0][2], "a\\u0000"),
              "an escaped backslash: '%s'", p->prompts[0][2]);
    }
    medvlm_prompts_free(p);
    p = NULL;
    CHECK_ERR(PARSE("{\"descriptions\": {\"N\\u0000C\": \"x\"}}", &p), MEDVLM_ERR_FORMAT,
              "holds \\u0000 (a NUL), which a class name must not");
    CHECK_ERR(PARSE("{\"descriptions\": {\"NC\": \"x\\uDBFF\\uDFFF\"}}", &p), MEDVLM_ERR_FORMAT,
              "t.json: line 1: holds \\uDBFF\\uDFFF (U+10FFFF), a noncharacter");
    CHECK_ERR(medvlm_prompts_load("/nonexistent/p.json", &p), MEDVLM_ERR_IO, "/nonexistent/p.json");
    CHECK(p == NULL, "nothing returned on error");
}

/* The prototypes of a prompt holding "\u0000" are those of the prompt without it: the lengths
 * go from the JSON reader through the prompts to the tokenizer. */
static void test_nul_prototypes(const char *golden)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/model", golden);
    struct medvlm_model *m = NULL;
    struct medvlm_tokenizer *tok = NULL;
    struct medvlm_prompts *a = NULL, *b = NULL;
    CHECK_OK(medvlm_model_load(dir, MEDVLM_LOAD_TEXT, &m));
    CHECK_OK(medvlm_tokenizer_load(dir, &tok));
    static const char ja[] = "{\"descriptions\": {\"NC\": \"desc of \\u0000 NC\", \"G3\": "
                             "\"grade\\u0000 3\"}}";
    static const char jb[] = "{\"descriptions\": {\"NC\": \"desc of NC\", \"G3\": \"grade 3\"}}";
    CHECK_OK(medvlm_prompts_parse("a.json", ja, sizeof ja - 1, &a));
    CHECK_OK(medvlm_prompts_parse("b.json", jb, sizeof jb - 1, &b));
    if (m && tok && a && b) {
        const int d = medvlm_model_config(m)->projection_dim;
        float *pa = calloc((size_t)2 * d, sizeof *pa), *pb = calloc((size_t)2 * d, sizeof *pb);
        CHECK_OK(medvlm_prompts_prototypes(m, tok, a, NULL, 2, pa));
        CHECK_OK(medvlm_prompts_prototypes(m, tok, b, NULL, 2, pb));
        CHECK(!memcmp(pa, pb, (size_t)2 * d * sizeof *pa),
              "prototypes of \"desc of \\u0000 NC\" differ from those of \"desc of NC\"");
        free(pa);
        free(pb);
    }
    medvlm_prompts_free(a);
    medvlm_prompts_free(b);
    medvlm_tokenizer_free(tok);
    medvlm_model_free(m);
}

int main(void)
{
    const char *golden = test_golden_dir();
    const char *src = getenv("MEDVLM_SOURCE_DIR");
    if (!src) {
        fprintf(stderr, "MEDVLM_SOURCE_DIR is not set; run through ctest\n");
        return 1;
    }
    test_golden(golden, src);
    test_forms_and_errors();
    if (golden) test_nul_prototypes(golden);
    return check_summary();
}

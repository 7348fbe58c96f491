/*
 * featfile.c - feature files ("features/1": image features, labels, class and image names)
 * and prototype files ("prototypes/1": zero-shot class prototypes + logit_scale), the two
 * safetensors files that connect `medvlm features` / `medvlm zeroshot` to `medvlm adapt`.
 * The readers work on an open safetensors file (mv_*_from_st in io.h, also used by the fuzzer)
 * behind the path-based public functions.
 */
#include "io.h"

#include <math.h>
#include <string.h>

#define FEATURES_FORMAT   "features/1"
#define PROTOTYPES_FORMAT "prototypes/1"

static void free_names(char **names, int n)
{
    if (!names) return;
    for (int i = 0; i < n; i++) mv_free(names[i]);
    mv_free(names);
}

/* metadata key -> array of want strings (want < 0: any count, returned in *count). */
static enum medvlm_status read_names(const struct medvlm_st *st, const char *key, int want,
                                     char ***out, int *count)
{
    const char *path = medvlm_st_path(st);
    const char *text = medvlm_st_metadata(st, key);
    cJSON *j = NULL;
    char **names = NULL;
    *out = NULL;
    if (!text) return mv_err(MEDVLM_ERR_MISSING, "%s: metadata '%s' missing", path, key);
    enum medvlm_status s = mv_json_parse(path, text, strlen(text), &j);
    if (s) return mv_err_ctx(s, "%s: metadata '%s'", path, key);
    int n = cJSON_IsArray(j) ? cJSON_GetArraySize(j) : -1;
    if (n < 0 || (want >= 0 && n != want) || (want < 0 && n == 0)) {
        s = mv_err(MEDVLM_ERR_FORMAT,
                   "%s: metadata '%s' must be a JSON array of %s%d names, got %s%d", path, key,
                   want < 0 ? "> " : "", want < 0 ? 0 : want, n < 0 ? "something else " : "",
                   n < 0 ? 0 : n);
        goto fail;
    }
    names = mv_calloc((size_t)(n ? n : 1), sizeof(char *));
    if (!names) {
        s = MEDVLM_ERR_NOMEM;
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(j, i);
        if (!cJSON_IsString(e)) {
            s = mv_err(MEDVLM_ERR_FORMAT, "%s: metadata '%s' entry %d is not a string", path, key,
                       i);
            goto fail;
        }
        if (!(names[i] = mv_strdup(e->valuestring))) {
            s = MEDVLM_ERR_NOMEM;
            goto fail;
        }
        /* class names are keys: a repeated one would merge rows and leave a class empty */
        for (int k = 0; strcmp(key, "classes") == 0 && k < i; k++)
            if (strcmp(names[k], names[i]) == 0) {
                s = mv_err(MEDVLM_ERR_FORMAT,
                           "%s: metadata 'classes' names class '%.100s' twice (entries %d and %d); "
                           "class names must be distinct",
                           path, names[i], k, i);
                goto fail;
            }
    }
    *out = names;
    if (count) *count = n;
    names = NULL;
fail:
    free_names(names, n);
    cJSON_Delete(j);
    return s;
}

static char *names_json(const char *const *names, int n)
{
    cJSON *arr = cJSON_CreateArray();
    if (!arr) return NULL;
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateString(names[i]));
    char *s = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    return s;
}

static enum medvlm_status check_format(const struct medvlm_st *st, const char *want)
{
    const char *fmt = medvlm_st_metadata(st, "medvlm");
    if (fmt && strcmp(fmt, want) == 0) return MEDVLM_OK;
    return mv_err(MEDVLM_ERR_FORMAT,
                  "%s: not a medvlm %s file (metadata medvlm = '%s', expected '%s')",
                  medvlm_st_path(st), strchr(want, 'f') == want ? "features" : "prototypes",
                  fmt ? fmt : "(none)", want);
}

/* A 2-D float tensor converted to an owned F32 copy. */
static enum medvlm_status get_matrix(const struct medvlm_st *st, const char *name, float **out,
                                     int *rows, int *cols)
{
    const float *p;
    float *owned = NULL;
    const struct medvlm_tensor_info *t;
    enum medvlm_status s = medvlm_st_get_f32(st, name, &p, &owned, &t);
    if (s) return s;
    if (t->ndim != 2 || t->shape[0] <= 0 || t->shape[1] <= 0 || t->shape[0] > INT32_MAX ||
        t->shape[1] > INT32_MAX) {
        mv_free(owned);
        return mv_err(MEDVLM_ERR_SHAPE,
                      "%s: tensor '%s' must be 2-D [rows, dim] and non-empty, got %d dims",
                      medvlm_st_path(st), name, t->ndim);
    }
    size_t n = (size_t)t->shape[0] * (size_t)t->shape[1];
    if (!owned) {
        owned = mv_calloc(n, sizeof(float));
        if (!owned) return MEDVLM_ERR_NOMEM;
        memcpy(owned, p, n * sizeof(float));
    }
    *out = owned;
    *rows = (int)t->shape[0];
    *cols = (int)t->shape[1];
    return MEDVLM_OK;
}

/* The scheme of medvlm_model_fingerprint the files record (metadata model_fingerprint_format):
 * 2 hashes every weight; files without it (format 1) hashed only the projections. */
#define FINGERPRINT_FORMAT "2"

enum medvlm_status mv_provenance_write(struct medvlm_st_writer *w,
                                       const struct medvlm_provenance *from)
{
    enum medvlm_status s = MEDVLM_OK;
    if (from && from->fingerprint && *from->fingerprint &&
        !(s = medvlm_st_writer_meta(w, "model_fingerprint", from->fingerprint)))
        s = medvlm_st_writer_meta(w, "model_fingerprint_format", FINGERPRINT_FORMAT);
    if (!s && from && from->model && *from->model)
        s = medvlm_st_writer_meta(w, "model", from->model);
    return s;
}

enum medvlm_status mv_provenance_read(const struct medvlm_st *st, char **fingerprint, char **model)
{
    const char *f = medvlm_st_metadata(st, "model_fingerprint");
    const char *m = medvlm_st_metadata(st, "model");
    const char *v = medvlm_st_metadata(st, "model_fingerprint_format");
    *fingerprint = *model = NULL;
    if (f && !v)
        return mv_err(MEDVLM_ERR_FORMAT,
                      "%s: records a model fingerprint (%s) of an older medvlm, which hashed only "
                      "the projection weights and cannot tell which model made these embeddings: "
                      "make the file again with this version (re-extract the features, re-save "
                      "the prototypes, re-train the adapter or fine-tuning run)",
                      medvlm_st_path(st), f);
    if (f && strcmp(v, FINGERPRINT_FORMAT) != 0)
        return mv_err(MEDVLM_ERR_UNSUPPORTED,
                      "%s: model_fingerprint_format %s is unknown to this medvlm (it writes %s); "
                      "use the medvlm that wrote the file, or make the file again",
                      medvlm_st_path(st), v, FINGERPRINT_FORMAT);
    *fingerprint = f ? mv_strdup(f) : NULL;
    *model = m ? mv_strdup(m) : NULL;
    return (f && !*fingerprint) || (m && !*model) ? MEDVLM_ERR_NOMEM : MEDVLM_OK;
}

void medvlm_features_free(struct medvlm_features *f)
{
    if (!f) return;
    mv_free(f->fingerprint);
    mv_free(f->model);
    mv_free(f->features);
    mv_free(f->labels);
    free_names(f->classes, f->n_classes);
    free_names(f->image_names, f->n);
    mv_free(f);
}

enum medvlm_status mv_features_from_st(const struct medvlm_st *st, struct medvlm_features **out)
{
    struct medvlm_features *f = NULL;
    const char *path = medvlm_st_path(st);
    enum medvlm_status s;
    *out = NULL;
    if ((s = check_format(st, FEATURES_FORMAT))) goto fail;
    if (!(f = mv_calloc(1, sizeof *f))) {
        s = MEDVLM_ERR_NOMEM;
        goto fail;
    }
    if (!medvlm_st_find(st, "features")) {
        s = mv_err(MEDVLM_ERR_MISSING, "%s: tensor 'features' missing", path);
        goto fail;
    }
    if ((s = get_matrix(st, "features", &f->features, &f->n, &f->d))) goto fail;
    const struct medvlm_tensor_info *lab = medvlm_st_find(st, "labels");
    if (!lab || lab->dtype != MEDVLM_DTYPE_I64 || lab->ndim != 1 || lab->shape[0] != f->n) {
        s = mv_err(MEDVLM_ERR_SHAPE, "%s: tensor 'labels' must be I64 [%d] (one per feature row)%s",
                   path, f->n, lab ? "" : ", it is missing");
        goto fail;
    }
    if (!(f->labels = mv_calloc((size_t)f->n, sizeof(int64_t)))) {
        s = MEDVLM_ERR_NOMEM;
        goto fail;
    }
    memcpy(f->labels, lab->data, lab->nbytes);
    if ((s = read_names(st, "classes", -1, &f->classes, &f->n_classes))) goto fail;
    for (int i = 0; i < f->n; i++)
        if (f->labels[i] < 0 || f->labels[i] >= f->n_classes) {
            s = mv_err(MEDVLM_ERR_FORMAT, "%s: label %lld of row %d is not in [0, %d) (%d classes)",
                       path, (long long)f->labels[i], i, f->n_classes, f->n_classes);
            goto fail;
        }
    if (medvlm_st_metadata(st, "image_names") &&
        (s = read_names(st, "image_names", f->n, &f->image_names, NULL)))
        goto fail;
    for (int i = 0; i < f->n; i++) { /* a NaN row would be scored as class 0 */
        const float *row = f->features + (size_t)i * f->d;
        size_t j = mv_find_nonfinite(row, (size_t)f->d);
        if (j == (size_t)f->d) continue;
        s = mv_err(MEDVLM_ERR_FORMAT,
                   "%s: row %d (image %s) of 'features' is not finite (%g at column %zu): "
                   "extract the features again",
                   path, i, f->image_names ? f->image_names[i] : "not named", (double)row[j], j);
        goto fail;
    }
    if ((s = mv_provenance_read(st, &f->fingerprint, &f->model))) goto fail;
    *out = f;
    f = NULL;
fail:
    medvlm_features_free(f);
    return s;
}

enum medvlm_status medvlm_features_load(const char *path, struct medvlm_features **out)
{
    struct medvlm_st *st = NULL;
    if (!path || !out) return mv_err(MEDVLM_ERR_ARG, "features load: NULL argument");
    *out = NULL;
    enum medvlm_status s = medvlm_st_open(path, &st);
    if (s) return s;
    s = mv_features_from_st(st, out);
    medvlm_st_free(st);
    return s;
}

enum medvlm_status medvlm_features_save(const char *path, const float *X, const int64_t *Y, int n,
                                        int d, const char *const *classes, int k,
                                        const char *const *image_names,
                                        const struct medvlm_provenance *from)
{
    if (!path || !X || !Y || !classes || n <= 0 || d <= 0 || k <= 0)
        return mv_err(MEDVLM_ERR_ARG, "features save: NULL argument or empty sizes");
    /* names go into the JSON header, which must be UTF-8 (Python's safetensors and json refuse
     * anything else): a file or class name that is not is refused here, named, rather than
     * written as a file no other tool can read or escaped into a name that is not the file's */
    for (int i = 0; i < k + (image_names ? n : 0); i++) {
        const char *s = i < k ? classes[i] : image_names[i - k];
        size_t bad = s ? mv_utf8_check(s, strlen(s)) : 0;
        if (s && !s[bad]) continue;
        char shown[256];
        return mv_err(MEDVLM_ERR_ARG,
                      "features save %s: %s %d, '%s', is not valid UTF-8 (byte 0x%02X at offset "
                      "%zu): rename the file or convert the label table to UTF-8",
                      path, i < k ? "class" : "image", i < k ? i : i - k,
                      s ? mv_printable(shown, sizeof shown, s) : "(NULL)",
                      s ? (unsigned char)s[bad] : 0, bad);
    }
    struct medvlm_st_writer *w = NULL;
    char *cj = NULL, *ij = NULL;
    int64_t shape[2] = {n, d}, nl = n;
    enum medvlm_status s = medvlm_st_writer_init(&w);
    if (s) return s;
    if ((s = medvlm_st_writer_add(w, "features", MEDVLM_DTYPE_F32, 2, shape, X)) ||
        (s = medvlm_st_writer_add(w, "labels", MEDVLM_DTYPE_I64, 1, &nl, Y)))
        goto fail;
    s = MEDVLM_ERR_NOMEM;
    if (!(cj = names_json(classes, k))) goto fail;
    if (image_names && !(ij = names_json(image_names, n))) goto fail;
    if ((s = medvlm_st_writer_meta(w, "medvlm", FEATURES_FORMAT)) ||
        (s = medvlm_st_writer_meta(w, "classes", cj)) ||
        (ij && (s = medvlm_st_writer_meta(w, "image_names", ij))) ||
        (s = mv_provenance_write(w, from)))
        goto fail;
    s = medvlm_st_writer_save(w, path);
fail:
    cJSON_free(cj);
    cJSON_free(ij);
    medvlm_st_writer_free(w);
    return s;
}

void medvlm_prototypes_free(struct medvlm_prototypes *p)
{
    if (!p) return;
    mv_free(p->fingerprint);
    mv_free(p->model);
    mv_free(p->prototypes);
    free_names(p->classes, p->k);
    mv_free(p);
}

enum medvlm_status mv_prototypes_from_st(const struct medvlm_st *st, struct medvlm_prototypes **out)
{
    struct medvlm_prototypes *p = NULL;
    const char *path = medvlm_st_path(st);
    enum medvlm_status s;
    *out = NULL;
    if ((s = check_format(st, PROTOTYPES_FORMAT))) goto fail;
    if (!(p = mv_calloc(1, sizeof *p))) {
        s = MEDVLM_ERR_NOMEM;
        goto fail;
    }
    if (!medvlm_st_find(st, "prototypes")) {
        s = mv_err(MEDVLM_ERR_MISSING, "%s: tensor 'prototypes' missing", path);
        goto fail;
    }
    if ((s = get_matrix(st, "prototypes", &p->prototypes, &p->k, &p->d))) goto fail;
    const struct medvlm_tensor_info *ls = medvlm_st_find(st, "logit_scale");
    if (!ls || ls->dtype != MEDVLM_DTYPE_F32 || ls->nbytes != 4) {
        s = mv_err(MEDVLM_ERR_SHAPE,
                   "%s: tensor 'logit_scale' must be one F32 value (shape [] or [1])", path);
        goto fail;
    }
    memcpy(&p->logit_scale, ls->data, 4);
    if ((s = read_names(st, "classes", p->k, &p->classes, NULL))) goto fail;
    for (int c = 0; c < p->k; c++) {
        const float *row = p->prototypes + (size_t)c * p->d;
        size_t j = mv_find_nonfinite(row, (size_t)p->d);
        if (j == (size_t)p->d) continue;
        s = mv_err(MEDVLM_ERR_FORMAT,
                   "%s: the prototype of class %d (%s) is not finite (%g at column %zu)", path, c,
                   p->classes[c], (double)row[j], j);
        goto fail;
    }
    if (!isfinite(p->logit_scale)) {
        s = mv_err(MEDVLM_ERR_FORMAT, "%s: logit_scale is not finite (%g)", path,
                   (double)p->logit_scale);
        goto fail;
    }
    if ((s = mv_provenance_read(st, &p->fingerprint, &p->model))) goto fail;
    *out = p;
    p = NULL;
fail:
    medvlm_prototypes_free(p);
    return s;
}

enum medvlm_status medvlm_prototypes_load(const char *path, struct medvlm_prototypes **out)
{
    struct medvlm_st *st = NULL;
    if (!path || !out) return mv_err(MEDVLM_ERR_ARG, "prototypes load: NULL argument");
    *out = NULL;
    enum medvlm_status s = medvlm_st_open(path, &st);
    if (s) return s;
    s = mv_prototypes_from_st(st, out);
    medvlm_st_free(st);
    return s;
}

enum medvlm_status medvlm_prototypes_save(const char *path, const float *P, int k, int d,
                                          float logit_scale, const char *const *classes,
                                          const struct medvlm_provenance *from)
{
    if (!path || !P || !classes || k <= 0 || d <= 0)
        return mv_err(MEDVLM_ERR_ARG, "prototypes save: NULL argument or empty sizes");
    struct medvlm_st_writer *w = NULL;
    char *cj = NULL;
    int64_t shape[2] = {k, d};
    enum medvlm_status s = medvlm_st_writer_init(&w);
    if (s) return s;
    if ((s = medvlm_st_writer_add(w, "prototypes", MEDVLM_DTYPE_F32, 2, shape, P)) ||
        (s = medvlm_st_writer_add(w, "logit_scale", MEDVLM_DTYPE_F32, 0, NULL, &logit_scale)))
        goto fail;
    if (!(cj = names_json(classes, k))) {
        s = MEDVLM_ERR_NOMEM;
        goto fail;
    }
    if ((s = medvlm_st_writer_meta(w, "medvlm", PROTOTYPES_FORMAT)) ||
        (s = medvlm_st_writer_meta(w, "classes", cj)) || (s = mv_provenance_write(w, from)))
        goto fail;
    s = medvlm_st_writer_save(w, path);
fail:
    cJSON_free(cj);
    medvlm_st_writer_free(w);
    return s;
}

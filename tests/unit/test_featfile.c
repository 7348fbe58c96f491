/*
 * test_featfile.c - small synthetic features / prototypes files.
 *
 *   test_featfile            write the files into a temp folder, read them back, check them
 *   test_featfile --make DIR write them into DIR for the CLI tests (tests/cli/test_adapt.sh)
 *
 * The task (D = 16, classes "benign", "grade 3", "grade 4" along the unit vectors e0, e1, e2):
 *   train.safetensors   10 + 10 + 6 images near e_c (noise std 0.05), except 3 "grade 4"
 *                       images at 0.9 e0 + 0.5 e2 (so a cache model can learn them)
 *   test.safetensors    6 per class near e_c, except 2 "grade 4" images at 0.9 e0 + 0.5 e2,
 *                       which zero-shot calls "benign": recall 1, 1, 4/6 -> ACA 88.89 %
 *   protos.safetensors  prototypes e0, e1, e2, logit_scale ln 100
 *   protos8.safetensors the same classes in D = 8 (another model)
 *   protos_renamed.safetensors  class 1 called "G3"
 */
#include "check.h"
#include "core/core.h"

#include <sys/stat.h>
#include <unistd.h>

enum { D = 16, K = 3 };
static const char *classes[K] = {"benign", "grade 3", "grade 4"};
static const char *renamed[K] = {"benign", "G3", "grade 4"};

static void unit_row(float *x, int d)
{
    double s = 0;
    for (int j = 0; j < d; j++) s += (double)x[j] * x[j];
    for (int j = 0; j < d; j++) x[j] = (float)(x[j] / sqrt(s));
}

static int write_set(const char *path, const int *per_class, int misplaced, struct mv_rng *r)
{
    int n = per_class[0] + per_class[1] + per_class[2];
    float *X = calloc((size_t)n * D, sizeof(float));
    int64_t *Y = calloc((size_t)n, sizeof(int64_t));
    char(*names)[32] = calloc((size_t)n, 32);
    const char **np = calloc((size_t)n, sizeof(char *));
    int i = 0;
    for (int c = 0; c < K; c++)
        for (int j = 0; j < per_class[c]; j++, i++) {
            float *x = X + (size_t)i * D;
            for (int t = 0; t < D; t++) x[t] = 0.05f * mv_rng_normal(r);
            if (c == 2 && j < misplaced) {
                x[0] += 0.9f;
                x[2] += 0.5f;
            } else {
                x[c] += 1.0f;
            }
            unit_row(x, D);
            Y[i] = c;
            snprintf(names[i], 32, "%s_%02d.png", c == 0 ? "nc" : c == 1 ? "g3" : "g4", j);
            np[i] = names[i];
        }
    enum medvlm_status st = medvlm_features_save(path, X, Y, n, D, classes, K, np, NULL);
    if (st) fprintf(stderr, "test_featfile: %s\n", medvlm_last_error());
    free(X), free(Y), free(names), free(np);
    return st == MEDVLM_OK;
}

static int write_protos(const char *path, int d, const char *const *names)
{
    float P[K * D] = {0};
    for (int c = 0; c < K; c++) P[c * d + c] = 1.0f;
    enum medvlm_status st = medvlm_prototypes_save(path, P, K, d, logf(100.0f), names, NULL);
    if (st) fprintf(stderr, "test_featfile: %s\n", medvlm_last_error());
    return st == MEDVLM_OK;
}

static int make(const char *dir)
{
    char p[4096];
    struct mv_rng r;
    mv_rng_seed(&r, 2024);
    const int train[K] = {10, 10, 6}, test[K] = {6, 6, 6};
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/train.safetensors", dir);
    if (!write_set(p, train, 3, &r)) return 0;
    snprintf(p, sizeof p, "%s/test.safetensors", dir);
    if (!write_set(p, test, 2, &r)) return 0;
    snprintf(p, sizeof p, "%s/protos.safetensors", dir);
    if (!write_protos(p, D, classes)) return 0;
    snprintf(p, sizeof p, "%s/protos8.safetensors", dir);
    if (!write_protos(p, 8, classes)) return 0;
    snprintf(p, sizeof p, "%s/protos_renamed.safetensors", dir);
    return write_protos(p, D, renamed);
}

/* A features file written field by field: n rows of d values, labels, the classes as JSON,
 * an optional fingerprint and its format (NULL: none, as older medvlm versions wrote). */
static enum medvlm_status write_raw(const char *path, const float *X, int n, int d,
                                    const int64_t *Y, const char *classes_json,
                                    const char *names_json, const char *fp, const char *fp_format)
{
    struct medvlm_st_writer *w = NULL;
    int64_t shape[2] = {n, d}, nl = n;
    enum medvlm_status s = medvlm_st_writer_init(&w);
    if (!s) s = medvlm_st_writer_add(w, "features", MEDVLM_DTYPE_F32, 2, shape, X);
    if (!s) s = medvlm_st_writer_add(w, "labels", MEDVLM_DTYPE_I64, 1, &nl, Y);
    if (!s) s = medvlm_st_writer_meta(w, "medvlm", "features/1");
    if (!s) s = medvlm_st_writer_meta(w, "classes", classes_json);
    if (!s && names_json) s = medvlm_st_writer_meta(w, "image_names", names_json);
    if (!s && fp) s = medvlm_st_writer_meta(w, "model_fingerprint", fp);
    if (!s && fp_format) s = medvlm_st_writer_meta(w, "model_fingerprint_format", fp_format);
    if (!s) s = medvlm_st_writer_save(w, path);
    medvlm_st_writer_free(w);
    return s;
}

/* Files a reader must refuse, each named for what is wrong with it. */
static void test_refused(const char *dir)
{
    char p[160];
    float X[3 * 4] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0};
    int64_t Y[3] = {0, 1, 1};
    struct medvlm_features *f = NULL;
    snprintf(p, sizeof p, "%s/raw.safetensors", dir);
    /* the fingerprint of an older medvlm (it hashed only the projections) */
    CHECK_OK(write_raw(p, X, 3, 4, Y, "[\"a\", \"b\"]", NULL, "0123456789abcdef", NULL));
    CHECK_ERR(medvlm_features_load(p, &f), MEDVLM_ERR_FORMAT,
              "records a model fingerprint (0123456789abcdef) of an older medvlm");
    CHECK(strstr(medvlm_last_error(), "re-extract the features"), "says what to do: %s",
          medvlm_last_error());
    CHECK_OK(write_raw(p, X, 3, 4, Y, "[\"a\", \"b\"]", NULL, "0123456789abcdef", "2"));
    CHECK_OK(medvlm_features_load(p, &f));
    CHECK(f && f->fingerprint && !strcmp(f->fingerprint, "0123456789abcdef"), "fingerprint read");
    medvlm_features_free(f);
    f = NULL;
    /* a NaN or inf row (it would be scored as class 0), named by index and image */
    const char *names = "[\"x.png\", \"y.png\", \"z.png\"]";
    X[1 * 4 + 2] = NAN;
    CHECK_OK(write_raw(p, X, 3, 4, Y, "[\"a\", \"b\"]", names, NULL, NULL));
    CHECK_ERR(medvlm_features_load(p, &f), MEDVLM_ERR_FORMAT,
              "row 1 (image y.png) of 'features' is not finite (nan at column 2)");
    X[1 * 4 + 2] = 0;
    X[2 * 4 + 0] = -INFINITY;
    CHECK_OK(write_raw(p, X, 3, 4, Y, "[\"a\", \"b\"]", NULL, NULL, NULL));
    CHECK_ERR(medvlm_features_load(p, &f), MEDVLM_ERR_FORMAT,
              "row 2 (image not named) of 'features' is not finite (-inf at column 0)");
    X[2 * 4 + 0] = 1;
    /* a class named twice (rows merged, a class of support 0, a wrong balanced accuracy) */
    CHECK_OK(write_raw(p, X, 3, 4, Y, "[\"G3\", \"NC\", \"G3\"]", NULL, NULL, NULL));
    CHECK_ERR(medvlm_features_load(p, &f), MEDVLM_ERR_FORMAT,
              "metadata 'classes' names class 'G3' twice (entries 0 and 2)");
    unlink(p);
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--make")) return make(argv[2]) ? 0 : 1;
    char dir[64], p[128];
    snprintf(dir, sizeof dir, "featfile_test_%d", (int)getpid());
    CHECK(make(dir), "fixtures written");
    struct medvlm_features *f = NULL;
    snprintf(p, sizeof p, "%s/test.safetensors", dir);
    CHECK_OK(medvlm_features_load(p, &f));
    if (f) {
        CHECK(f->n == 18 && f->d == D && f->n_classes == K, "test set shape");
        CHECK(!strcmp(f->classes[2], "grade 4") && !strcmp(f->image_names[13], "g4_01.png"),
              "names");
        double norm = 0;
        for (int j = 0; j < D; j++) norm += f->features[5 * D + j] * f->features[5 * D + j];
        CHECK(fabs(norm - 1) < 1e-6, "rows are unit vectors");
        CHECK(f->features[12 * D + 0] > f->features[12 * D + 2], "misplaced grade 4 image");
    }
    medvlm_features_free(f);
    struct medvlm_prototypes *pr = NULL;
    snprintf(p, sizeof p, "%s/protos8.safetensors", dir);
    CHECK_OK(medvlm_prototypes_load(p, &pr));
    CHECK(pr && pr->d == 8 && pr->k == K, "8-d prototypes");
    medvlm_prototypes_free(pr);
    snprintf(p, sizeof p, "%s/train.safetensors", dir);
    CHECK_ERR(medvlm_prototypes_load(p, &pr), MEDVLM_ERR_FORMAT, "not a medvlm prototypes file");
    test_refused(dir);
    const char *files[] = {"train", "test", "protos", "protos8", "protos_renamed"};
    for (size_t i = 0; i < MV_ARRAY_LEN(files); i++) {
        snprintf(p, sizeof p, "%s/%s.safetensors", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
    return check_summary();
}

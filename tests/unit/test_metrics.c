/* test_metrics.c - metrics against values computed by hand (a plain-Python re-derivation of
 * sklearn's definitions), numpy rounding, argmax ties, and the three report writers. */
#include "check.h"
#include "core/core.h"
#include "io/io.h"

#include <unistd.h>

static const int64_t refs8[8] = {0, 0, 1, 1, 2, 2, 2, 3};
static const int64_t preds8[8] = {0, 1, 1, 1, 2, 0, 2, 3};

static void test_full_form(void)
{
    struct medvlm_metrics m;
    CHECK_OK(medvlm_metrics_compute(refs8, preds8, 8, 4, &m));
    CHECK(m.n_classes == 4 && m.n_samples == 8 && m.n_absent == 0, "dims %d %d %d", m.n_classes,
          m.n_samples, m.n_absent);
    static const int64_t cm[16] = {1, 1, 0, 0, 0, 2, 0, 0, 1, 0, 2, 0, 0, 0, 0, 1};
    CHECK(memcmp(m.confusion, cm, sizeof cm) == 0, "confusion matrix differs");
    CHECK(m.balanced_accuracy == 79.16666666666666, "balanced accuracy %.17g", m.balanced_accuracy);
    CHECK(m.accuracy == 75.0, "accuracy %.17g", m.accuracy);
    CHECK(fabs(m.macro_f1 - 0.775) < 1e-15, "macro-F1 %.17g", m.macro_f1);
    CHECK(fabs(m.quadratic_kappa - 0.6774193548387097) < 1e-15, "kappa %.17g", m.quadratic_kappa);
    const double rec[4] = {0.5, 1.0, 2.0 / 3.0, 1.0}, pre[4] = {0.5, 2.0 / 3.0, 1.0, 1.0};
    const double f1[4] = {0.5, 0.8, 0.8, 1.0};
    for (int c = 0; c < 4; c++) {
        CHECK(fabs(m.per_class_recall[c] - rec[c]) < 1e-15, "recall[%d] %g", c,
              m.per_class_recall[c]);
        CHECK(fabs(m.per_class_precision[c] - pre[c]) < 1e-15, "precision[%d]", c);
        CHECK(fabs(m.per_class_f1[c] - f1[c]) < 1e-15, "f1[%d] %g", c, m.per_class_f1[c]);
        CHECK(m.labels[c] == c, "labels[%d]", c);
    }
    CHECK(m.support[2] == 3, "support");
    medvlm_metrics_free(&m);
    CHECK(m.confusion == NULL && m.n_classes == 0, "free zeroes the struct");
    medvlm_metrics_free(&m); /* twice is fine */
    medvlm_metrics_free(NULL);

    /* a fifth class with no sample: recall NaN, out of the mean; kappa unchanged */
    medvlm_set_log(NULL, NULL, MEDVLM_LOG_WARN);
    CHECK_OK(medvlm_metrics_compute(refs8, preds8, 8, 5, &m));
    CHECK(m.n_absent == 1 && isnan(m.per_class_recall[4]), "absent class");
    CHECK(m.balanced_accuracy == 79.16666666666666, "balanced accuracy %.17g", m.balanced_accuracy);
    CHECK(fabs(m.macro_f1 - 0.775) < 1e-15, "macro-F1 skips a class absent from both");
    CHECK(fabs(m.quadratic_kappa - 0.6774193548387097) < 1e-15, "kappa %.17g", m.quadratic_kappa);
    medvlm_metrics_free(&m);

    /* one class everywhere: kappa undefined */
    const int64_t z[3] = {1, 1, 1};
    CHECK_OK(medvlm_metrics_compute(z, z, 3, 2, &m));
    CHECK(isnan(m.quadratic_kappa) && m.accuracy == 100.0 && m.balanced_accuracy == 100.0,
          "degenerate case");
    medvlm_metrics_free(&m);

    /* errors */
    const int64_t bad[2] = {0, 4};
    CHECK_ERR(medvlm_metrics_compute(bad, bad, 2, 4, &m), MEDVLM_ERR_ARG,
              "true label 4 of sample 1 is outside 0..3");
    CHECK_ERR(medvlm_metrics_compute(refs8, bad, 2, 4, &m), MEDVLM_ERR_ARG, "predicted label 4");
    CHECK_ERR(medvlm_metrics_compute(refs8, preds8, 0, 4, &m), MEDVLM_ERR_ARG, "at least one");
    CHECK_ERR(medvlm_metrics_compute(refs8, preds8, 8, 0, &m), MEDVLM_ERR_ARG, "one class");
    CHECK(m.confusion == NULL, "nothing allocated on error");
}

static void test_union_form(void)
{
    /* labels 7 and 3 only, 5 never seen: a 2x2 matrix over [3, 7] */
    const int64_t r[5] = {7, 7, 3, 3, 3}, p[5] = {7, 3, 3, 3, 7};
    struct medvlm_metrics m;
    CHECK_OK(medvlm_metrics_compute_union(r, p, 5, &m));
    CHECK(m.n_classes == 2 && m.labels[0] == 3 && m.labels[1] == 7, "union labels");
    static const int64_t cm[4] = {2, 1, 1, 1};
    CHECK(memcmp(m.confusion, cm, sizeof cm) == 0, "union confusion");
    CHECK(fabs(m.balanced_accuracy - 100.0 * (2.0 / 3.0 + 0.5) / 2) < 1e-12, "union ACA %.17g",
          m.balanced_accuracy);
    medvlm_metrics_free(&m);
    /* a predicted-only label gets a row with support 0 */
    const int64_t r2[2] = {0, 0}, p2[2] = {0, 2};
    CHECK_OK(medvlm_metrics_compute_union(r2, p2, 2, &m));
    CHECK(m.n_classes == 2 && m.labels[1] == 2 && m.support[1] == 0 && m.n_absent == 1,
          "pred-only label");
    CHECK(m.balanced_accuracy == 50.0, "ACA over the true classes %.17g", m.balanced_accuracy);
    medvlm_metrics_free(&m);
}

static void test_round_argmax(void)
{
    /* expected values: Python round(x * 10**d) / 10**d, which is numpy.round's algorithm */
    CHECK(medvlm_round_half_even(0.125, 2) == 0.12, "0.125");
    CHECK(medvlm_round_half_even(0.135, 2) == 0.14, "0.135");
    CHECK(medvlm_round_half_even(2.675, 2) == 2.68, "2.675 (2.675*100 rounds up in binary)");
    CHECK(medvlm_round_half_even(66.665, 2) == 66.67, "66.665");
    CHECK(medvlm_round_half_even(100.0 / 3.0, 2) == 33.33, "100/3");
    CHECK(medvlm_round_half_even(0.5, 0) == 0.0 && medvlm_round_half_even(1.5, 0) == 2.0,
          "ties to even");
    CHECK(medvlm_round_half_even(2.0 / 3.0, 3) == 0.667, "2/3");

    const float probs[4 * 3] = {0.2f, 0.5f, 0.5f, 1.0f,  0.0f,  0.0f,
                                0.1f, NAN,  0.9f, -1.0f, -0.5f, -0.7f};
    int64_t out[4];
    CHECK_OK(medvlm_argmax_rows(probs, 4, 3, out));
    CHECK(out[0] == 1 && out[1] == 0 && out[2] == 1 && out[3] == 1, "argmax %lld %lld %lld %lld",
          (long long)out[0], (long long)out[1], (long long)out[2], (long long)out[3]);
    CHECK_ERR(medvlm_argmax_rows(probs, 4, 0, out), MEDVLM_ERR_ARG, "columns");
}

static char *slurp(const char *path)
{
    char *d = NULL;
    size_t n;
    if (mv_read_file(path, &d, &n)) return NULL;
    return d;
}

static void test_reports(void)
{
    struct medvlm_metrics m;
    CHECK_OK(medvlm_metrics_compute(refs8, preds8, 8, 4, &m));
    const char *names[4] = {"NC", "G3", "G4", "G5"};
    char *text = NULL;
    CHECK_OK(medvlm_metrics_format_table(&m, names, &text));
    if (text) {
        CHECK(strstr(text, "balanced accuracy  79.17 %") != NULL, "table: %s", text);
        CHECK(strstr(text, "accuracy           75.00 %") != NULL, "table accuracy");
        CHECK(strstr(text, "macro-F1           0.7750") != NULL, "table F1");
        CHECK(strstr(text, "quadratic kappa    0.6774") != NULL, "table kappa");
        CHECK(strstr(text, "G4       0.667      1.000    0.800        3") != NULL, "table row:\n%s",
              text);
        CHECK(strstr(text, "\nNC      1   1   0   0\nG3      0   2   0   0\n") != NULL,
              "table confusion row:\n%s", text);
        CHECK(strstr(text, "\n       NC  G3  G4  G5\n") != NULL, "table header:\n%s", text);
    }
    medvlm_free(text);

    char dir[] = "/tmp/medvlm-metrics-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char jpath[256], cpath[256];
    snprintf(jpath, sizeof jpath, "%s/m.json", dir);
    snprintf(cpath, sizeof cpath, "%s/p.csv", dir);
    CHECK_OK(medvlm_metrics_write_json(jpath, &m, names));
    cJSON *root = NULL;
    CHECK_OK(mv_json_load(jpath, &root));
    if (root) {
        const cJSON *cls = cJSON_GetObjectItem(root, "classes");
        CHECK(cJSON_GetArraySize(cls) == 4 &&
                  !strcmp(cJSON_GetArrayItem(cls, 1)->valuestring, "G3"),
              "json classes");
        CHECK(cJSON_GetObjectItem(root, "balanced_accuracy")->valuedouble == 79.16666666666666,
              "json balanced accuracy");
        CHECK(cJSON_GetObjectItem(root, "accuracy")->valuedouble == 75.0, "json accuracy");
        const cJSON *cm = cJSON_GetObjectItem(root, "confusion_matrix");
        CHECK(cJSON_GetArrayItem(cJSON_GetArrayItem(cm, 2), 0)->valuedouble == 1 &&
                  cJSON_GetArrayItem(cJSON_GetArrayItem(cm, 0), 2)->valuedouble == 0,
              "json confusion rows = true class");
        CHECK(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "per_class_recall"), 2)->valuedouble ==
                  2.0 / 3.0,
              "json recall");
        CHECK(cJSON_IsNumber(cJSON_GetObjectItem(root, "quadratic_kappa")) &&
                  cJSON_IsNumber(cJSON_GetObjectItem(root, "macro_f1")),
              "json kappa/F1");
        cJSON_Delete(root);
    }
    medvlm_metrics_free(&m);

    const char *imgs[3] = {"a.jpg", "odd, \"name\".jpg", "dir/c.jpg"};
    const int64_t r[3] = {0, 1, 3}, p[3] = {0, 2, 3};
    const float pr[12] = {0.7f, 0.1f, 0.1f, 0.1f, 0.f, 0.25f, 0.5f, 0.25f, 0.f, 0.f, 0.f, 1.f};
    const char *cn[4] = {"NC", "G,3", "G4", "G5"};
    CHECK_OK(medvlm_predictions_write_csv(cpath, imgs, r, p, pr, 3, cn, 4));
    char *csv = slurp(cpath);
    CHECK(csv && strcmp(csv, "image,true_label,predicted_label,p_NC,\"p_G,3\",p_G4,p_G5\r\n"
                             "a.jpg,NC,NC,0.699999988,0.100000001,0.100000001,0.100000001\r\n"
                             "\"odd, \"\"name\"\".jpg\",\"G,3\",G4,0,0.25,0.5,0.25\r\n"
                             "dir/c.jpg,G5,G5,0,0,0,1\r\n") == 0,
          "csv:\n%s", csv ? csv : "(none)");
    mv_free(csv);
    /* the table reader reads it back field for field */
    struct medvlm_table *t = NULL;
    CHECK_OK(medvlm_table_load(cpath, NULL, &t));
    if (t) {
        CHECK(t->n_rows == 3 && t->n_cols == 7 && !strcmp(t->header[4], "p_G,3") &&
                  !strcmp(t->cells[7], imgs[1]) && !strcmp(t->cells[8], "G,3") &&
                  !strcmp(t->cells[13], "0.25"),
              "csv round trip");
        medvlm_table_free(t);
    }
    CHECK_ERR(medvlm_metrics_write_json("/nonexistent-dir/x.json", &m, names), MEDVLM_ERR_ARG,
              "empty");
    unlink(jpath);
    unlink(cpath);
    rmdir(dir);
}

int main(void)
{
    test_full_form();
    test_union_form();
    test_round_argmax();
    test_reports();
    return check_summary();
}

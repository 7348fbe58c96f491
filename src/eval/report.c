/*
 * report.c - metrics and predictions written for people and programs: a text table, a JSON
 * report and a predictions CSV. Nothing here prints; files are written atomically.
 */
#include "eval.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Name of class k: the caller's, else the label value. buf holds the fallback. */
static const char *class_name(const struct medvlm_metrics *m, const char *const *names, int k,
                              char *buf, size_t cap)
{
    if (names && names[k]) return names[k];
    snprintf(buf, cap, "%lld", (long long)(m->labels ? m->labels[k] : k));
    return buf;
}

static enum medvlm_status check_metrics(const struct medvlm_metrics *m)
{
    if (!m || m->n_classes <= 0 || !m->confusion || !m->labels || !m->support ||
        !m->per_class_recall || !m->per_class_precision || !m->per_class_f1)
        return mv_err(MEDVLM_ERR_ARG, "metrics report: the metrics are empty (compute them "
                                      "with medvlm_metrics_compute first)");
    return MEDVLM_OK;
}

enum medvlm_status medvlm_metrics_format_table(const struct medvlm_metrics *m,
                                               const char *const *class_names, char **text)
{
    if (!text) return mv_err(MEDVLM_ERR_ARG, "metrics table: text must not be NULL");
    *text = NULL;
    enum medvlm_status st = check_metrics(m);
    if (st) return st;
    int k = m->n_classes;
    char nb[32];
    int w = 5; /* "class" */
    for (int c = 0; c < k; c++) {
        size_t l = strlen(class_name(m, class_names, c, nb, sizeof nb));
        if (l > (size_t)w) w = l > 40 ? 40 : (int)l;
    }
    int64_t maxv = 0;
    for (size_t i = 0; i < (size_t)k * (size_t)k; i++) maxv = MV_MAX(maxv, m->confusion[i]);
    int cw = snprintf(NULL, 0, "%lld", (long long)maxv);
    for (int c = 0; c < k; c++) {
        int l = (int)strlen(class_name(m, class_names, c, nb, sizeof nb));
        if (l > cw) cw = l > 40 ? 40 : l;
    }

    struct mv_eval_buf b = {0};
    mv_eval_buf_printf(&b, "samples            %d\n", m->n_samples);
    mv_eval_buf_printf(&b, "balanced accuracy  ");
    mv_eval_buf_score(&b, m->balanced_accuracy, 0, 2);
    mv_eval_buf_printf(&b, " %%\naccuracy           ");
    mv_eval_buf_score(&b, m->accuracy, 0, 2);
    mv_eval_buf_printf(&b, " %%\nmacro-F1           ");
    mv_eval_buf_score(&b, m->macro_f1, 0, 4);
    mv_eval_buf_printf(&b, "\nquadratic kappa    ");
    mv_eval_buf_score(&b, m->quadratic_kappa, 0, 4);
    mv_eval_buf_printf(&b, "\n");
    if (m->n_absent > 0)
        mv_eval_buf_printf(&b,
                           "(%d class(es) without true samples: recall n/a, left out of "
                           "balanced accuracy)\n",
                           m->n_absent);

    mv_eval_buf_printf(&b, "\n%-*s  %7s  %9s  %7s  %7s\n", w, "class", "recall", "precision", "F1",
                       "support");
    for (int c = 0; c < k; c++) {
        mv_eval_buf_printf(&b, "%-*.40s  ", w, class_name(m, class_names, c, nb, sizeof nb));
        mv_eval_buf_score(&b, m->per_class_recall[c], 7, 3);
        mv_eval_buf_printf(&b, "  ");
        mv_eval_buf_score(&b, m->per_class_precision[c], 9, 3);
        mv_eval_buf_printf(&b, "  ");
        mv_eval_buf_score(&b, m->per_class_f1[c], 7, 3);
        mv_eval_buf_printf(&b, "  %7lld\n", (long long)m->support[c]);
    }

    mv_eval_buf_printf(&b, "\nconfusion matrix (rows = true class, columns = predicted)\n");
    mv_eval_buf_printf(&b, "%-*s", w, "");
    for (int c = 0; c < k; c++)
        mv_eval_buf_printf(&b, "  %*.40s", cw, class_name(m, class_names, c, nb, sizeof nb));
    mv_eval_buf_printf(&b, "\n");
    for (int r = 0; r < k; r++) {
        mv_eval_buf_printf(&b, "%-*.40s", w, class_name(m, class_names, r, nb, sizeof nb));
        for (int c = 0; c < k; c++)
            mv_eval_buf_printf(&b, "  %*lld", cw, (long long)m->confusion[(size_t)r * k + c]);
        mv_eval_buf_printf(&b, "\n");
    }
    *text = mv_eval_buf_take(&b);
    if (!*text) return mv_err(MEDVLM_ERR_NOMEM, "metrics table: out of memory");
    return MEDVLM_OK;
}

/* A number, or null for NaN / infinity (JSON has neither). */
static cJSON *json_num(double v)
{
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

enum medvlm_status medvlm_metrics_write_json(const char *path, const struct medvlm_metrics *m,
                                             const char *const *class_names)
{
    if (!path) return mv_err(MEDVLM_ERR_ARG, "metrics json: path must not be NULL");
    enum medvlm_status st = check_metrics(m);
    if (st) return st;
    int k = m->n_classes;
    char nb[32], *text = NULL;
    cJSON *root = cJSON_CreateObject();
    cJSON *classes = cJSON_AddArrayToObject(root, "classes");
    cJSON *labels = cJSON_AddArrayToObject(root, "labels");
    cJSON_AddNumberToObject(root, "n_samples", m->n_samples);
    cJSON_AddItemToObject(root, "balanced_accuracy", json_num(m->balanced_accuracy));
    cJSON_AddItemToObject(root, "accuracy", json_num(m->accuracy));
    cJSON_AddItemToObject(root, "macro_f1", json_num(m->macro_f1));
    cJSON_AddItemToObject(root, "quadratic_kappa", json_num(m->quadratic_kappa));
    cJSON *rec = cJSON_AddArrayToObject(root, "per_class_recall");
    cJSON *pre = cJSON_AddArrayToObject(root, "per_class_precision");
    cJSON *f1 = cJSON_AddArrayToObject(root, "per_class_f1");
    cJSON *sup = cJSON_AddArrayToObject(root, "support");
    cJSON *cm = cJSON_AddArrayToObject(root, "confusion_matrix");
    if (!root || !classes || !labels || !rec || !pre || !f1 || !sup || !cm) goto nomem;
    for (int c = 0; c < k; c++) {
        cJSON_AddItemToArray(classes,
                             cJSON_CreateString(class_name(m, class_names, c, nb, sizeof nb)));
        cJSON_AddItemToArray(labels, cJSON_CreateNumber((double)m->labels[c]));
        cJSON_AddItemToArray(rec, json_num(m->per_class_recall[c]));
        cJSON_AddItemToArray(pre, json_num(m->per_class_precision[c]));
        cJSON_AddItemToArray(f1, json_num(m->per_class_f1[c]));
        cJSON_AddItemToArray(sup, cJSON_CreateNumber((double)m->support[c]));
        cJSON *row = cJSON_CreateArray();
        if (!row) goto nomem;
        for (int j = 0; j < k; j++)
            cJSON_AddItemToArray(row, cJSON_CreateNumber((double)m->confusion[(size_t)c * k + j]));
        cJSON_AddItemToArray(cm, row);
    }
    text = cJSON_Print(root);
    if (!text) goto nomem;
    char *withnl = mv_asprintf("%s\n", text); /* end the file with a newline */
    st = withnl ? mv_write_file_atomic(path, withnl, strlen(withnl)) : MEDVLM_ERR_NOMEM;
    mv_free(withnl);
    cJSON_free(text);
    cJSON_Delete(root);
    return st;
nomem:
    cJSON_Delete(root);
    return mv_err(MEDVLM_ERR_NOMEM, "metrics json: out of memory");
}

enum medvlm_status medvlm_predictions_write_csv(const char *path, const char *const *image_names,
                                                const int64_t *refs, const int64_t *preds,
                                                const float *probs, int n,
                                                const char *const *class_names, int k)
{
    if (!path || n < 0 || k <= 0 || (n > 0 && (!refs || !preds)))
        return mv_err(MEDVLM_ERR_ARG,
                      "predictions csv: need a path, n >= 0 samples with refs "
                      "and preds, and k >= 1 classes (got n %d, k %d)",
                      n, k);
    struct mv_eval_buf b = {0};
    char nb[32];
    mv_eval_buf_printf(&b, "image,true_label,predicted_label");
    if (probs) {
        for (int c = 0; c < k; c++) {
            const char *name = class_names && class_names[c] ? class_names[c] : NULL;
            if (!name) {
                snprintf(nb, sizeof nb, "%d", c);
                name = nb;
            }
            char *col = mv_asprintf("p_%s", name);
            if (!col) {
                mv_eval_buf_free(&b);
                return MEDVLM_ERR_NOMEM;
            }
            mv_eval_buf_put(&b, ",", 1);
            mv_eval_buf_csv_field(&b, col);
            mv_free(col);
        }
    }
    mv_eval_buf_put(&b, "\r\n", 2);
    for (int i = 0; i < n; i++) {
        if (image_names && image_names[i]) {
            mv_eval_buf_csv_field(&b, image_names[i]);
        } else {
            mv_eval_buf_printf(&b, "%d", i);
        }
        const int64_t two[2] = {refs[i], preds[i]};
        for (int t = 0; t < 2; t++) {
            mv_eval_buf_put(&b, ",", 1);
            if (class_names && two[t] >= 0 && two[t] < k && class_names[two[t]])
                mv_eval_buf_csv_field(&b, class_names[two[t]]);
            else
                mv_eval_buf_printf(&b, "%lld", (long long)two[t]);
        }
        if (probs)
            for (int c = 0; c < k; c++)
                mv_eval_buf_printf(&b, ",%.9g", (double)probs[(size_t)i * (size_t)k + c]);
        mv_eval_buf_put(&b, "\r\n", 2);
    }
    size_t len = b.len;
    char *text = mv_eval_buf_take(&b);
    if (!text) return mv_err(MEDVLM_ERR_NOMEM, "predictions csv: out of memory");
    enum medvlm_status st = mv_write_file_atomic(path, text, len);
    mv_free(text);
    return st;
}

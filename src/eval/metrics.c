/*
 * metrics.c - classification metrics from true labels and predictions: confusion matrix,
 * per-class recall / precision / F1, balanced accuracy (the tutorial's ACA), accuracy,
 * macro-F1 and Cohen's quadratic-weighted kappa, as scikit-learn defines them.
 *
 * Glossary: M samples, K classes; cm (K, K) rows = true class, columns = predicted class.
 */
#include "eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum medvlm_status medvlm_argmax_rows(const float *probs, int n, int c, int64_t *preds)
{
    if (n < 0 || c <= 0 || (n > 0 && (!probs || !preds)))
        return mv_err(MEDVLM_ERR_ARG, "argmax: need n >= 0 rows and c >= 1 columns, got %d x %d", n,
                      c);
    for (int i = 0; i < n; i++) {
        const float *row = probs + (size_t)i * (size_t)c; // (C)
        int best = 0;
        if (!isnan(row[0])) {
            for (int j = 1; j < c; j++) {
                if (isnan(row[j])) { /* numpy: the first NaN is the maximum */
                    best = j;
                    break;
                }
                if (row[j] > row[best]) best = j;
            }
        }
        preds[i] = best;
    }
    return MEDVLM_OK;
}

double medvlm_round_half_even(double x, int decimals)
{
    if (decimals < 0) decimals = 0;
    if (decimals > 15) decimals = 15;
    double f = 1.0;
    for (int i = 0; i < decimals; i++) f *= 10.0; /* exact: 10^d < 2^53 */
    /* numpy: y = x * 10^d; rint(y) (ties to even in the default rounding mode); y / 10^d */
    return nearbyint(x * f) / f;
}

void medvlm_metrics_free(struct medvlm_metrics *m)
{
    if (!m) return;
    mv_free(m->labels);
    mv_free(m->support);
    mv_free(m->per_class_recall);
    mv_free(m->per_class_precision);
    mv_free(m->per_class_f1);
    mv_free(m->confusion);
    memset(m, 0, sizeof *m);
}

/* Allocate the arrays for k classes. */
static enum medvlm_status metrics_alloc(struct medvlm_metrics *m, int k, int n)
{
    memset(m, 0, sizeof *m);
    m->n_classes = k;
    m->n_samples = n;
    m->labels = mv_calloc((size_t)k, sizeof *m->labels);
    m->support = mv_calloc((size_t)k, sizeof *m->support);
    m->per_class_recall = mv_calloc((size_t)k, sizeof *m->per_class_recall);
    m->per_class_precision = mv_calloc((size_t)k, sizeof *m->per_class_precision);
    m->per_class_f1 = mv_calloc((size_t)k, sizeof *m->per_class_f1);
    size_t kk;
    if (!mv_mul_ok((size_t)k, (size_t)k, &kk))
        return mv_err(MEDVLM_ERR_OVERFLOW, "metrics: %d classes overflow the confusion matrix", k);
    m->confusion = mv_calloc(kk, sizeof *m->confusion);
    if (!m->labels || !m->support || !m->per_class_recall || !m->per_class_precision ||
        !m->per_class_f1 || !m->confusion) {
        medvlm_metrics_free(m);
        return MEDVLM_ERR_NOMEM;
    }
    return MEDVLM_OK;
}

/* numpy's pairwise summation (add.reduce over a contiguous float64 array), so that means
 * match numpy to the last bit: sequential below 8 elements, 8 running sums per block of up
 * to 128, halves recursively above. */
static double np_pairwise_sum(const double *a, size_t n)
{
    if (n < 8) {
        double res = 0.0;
        for (size_t i = 0; i < n; i++) res += a[i];
        return res;
    }
    if (n <= 128) {
        double r[8];
        for (int j = 0; j < 8; j++) r[j] = a[j];
        size_t i;
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++) r[j] += a[i + j];
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) res += a[i];
        return res;
    }
    size_t n2 = n / 2;
    n2 -= n2 % 8;
    return np_pairwise_sum(a, n2) + np_pairwise_sum(a + n2, n - n2);
}

/* Everything after the confusion matrix is filled: per-class scores and the summaries. */
static enum medvlm_status metrics_finish(struct medvlm_metrics *m)
{
    int k = m->n_classes;
    const int64_t *cm = m->confusion; // (K, K)
    int64_t correct = 0, total = 0;
    double f1_sum = 0;
    int recall_n = 0, f1_n = 0;
    m->n_absent = 0;
    for (int c = 0; c < k; c++) {
        int64_t row = 0, col = 0;
        for (int j = 0; j < k; j++) {
            row += cm[(size_t)c * k + j];
            col += cm[(size_t)j * k + c];
        }
        int64_t tp = cm[(size_t)c * k + c];
        correct += tp;
        total += row;
        m->support[c] = row;
        double recall = row > 0 ? (double)tp / (double)row : NAN;
        double precision = col > 0 ? (double)tp / (double)col : 0.0;
        double r0 = row > 0 ? recall : 0.0;
        m->per_class_recall[c] = recall;
        m->per_class_precision[c] = precision;
        m->per_class_f1[c] = precision + r0 > 0 ? 2 * precision * r0 / (precision + r0) : 0.0;
        if (row > 0) {
            recall_n++;
        } else {
            m->n_absent++;
        }
        if (row > 0 || col > 0) {
            f1_sum += m->per_class_f1[c];
            f1_n++;
        }
    }
    m->accuracy = total > 0 ? 100.0 * (double)correct / (double)total : NAN;
    /* numpy: 100 * mean(recall) over the classes present; mean = pairwise sum / count */
    double *present = mv_calloc((size_t)k, sizeof *present);
    if (!present) return MEDVLM_ERR_NOMEM;
    int np_ = 0;
    for (int c = 0; c < k; c++)
        if (m->support[c] > 0) present[np_++] = m->per_class_recall[c];
    m->balanced_accuracy =
        recall_n > 0 ? 100.0 * (np_pairwise_sum(present, (size_t)np_) / recall_n) : NAN;
    m->macro_f1 = f1_n > 0 ? f1_sum / f1_n : NAN;

    /* Cohen's kappa, quadratic weights w[i,j] = (i - j)^2 over class indices:
     * expected[i,j] = row_sum[i] * col_sum[j] / total; kappa = 1 - sum(w O) / sum(w E). */
    double num = 0, den = 0;
    for (int j = 0; j < k; j++) { /* column sums into `present` (free again) */
        double cs = 0;
        for (int t = 0; t < k; t++) cs += (double)cm[(size_t)t * k + j];
        present[j] = cs;
    }
    for (int i = 0; i < k; i++) {
        double rs = (double)m->support[i];
        for (int j = 0; j < k; j++) {
            double w = (double)(i - j) * (double)(i - j);
            num += w * (double)cm[(size_t)i * k + j];
            den += w * (total > 0 ? rs * present[j] / (double)total : 0.0);
        }
    }
    m->quadratic_kappa = den > 0 ? 1.0 - num / den : NAN;
    mv_free(present);
    return MEDVLM_OK;
}

static enum medvlm_status check_inputs(const int64_t *refs, const int64_t *preds, int n)
{
    if (n <= 0) return mv_err(MEDVLM_ERR_ARG, "metrics: need at least one sample, got %d", n);
    if (!refs || !preds) return mv_err(MEDVLM_ERR_ARG, "metrics: refs and preds must not be NULL");
    return MEDVLM_OK;
}

enum medvlm_status medvlm_metrics_compute(const int64_t *refs, const int64_t *preds, int n,
                                          int n_classes, struct medvlm_metrics *out)
{
    if (!out) return mv_err(MEDVLM_ERR_ARG, "metrics: out must not be NULL");
    memset(out, 0, sizeof *out);
    enum medvlm_status st = check_inputs(refs, preds, n);
    if (st) return st;
    if (n_classes <= 0)
        return mv_err(MEDVLM_ERR_ARG, "metrics: need at least one class, got %d", n_classes);
    for (int i = 0; i < n; i++) {
        if (refs[i] < 0 || refs[i] >= n_classes)
            return mv_err(MEDVLM_ERR_ARG,
                          "metrics: true label %lld of sample %d is outside "
                          "0..%d",
                          (long long)refs[i], i, n_classes - 1);
        if (preds[i] < 0 || preds[i] >= n_classes)
            return mv_err(MEDVLM_ERR_ARG,
                          "metrics: predicted label %lld of sample %d is outside "
                          "0..%d",
                          (long long)preds[i], i, n_classes - 1);
    }
    st = metrics_alloc(out, n_classes, n);
    if (st) return st;
    for (int c = 0; c < n_classes; c++) out->labels[c] = c;
    for (int i = 0; i < n; i++) out->confusion[(size_t)refs[i] * n_classes + preds[i]]++;
    st = metrics_finish(out);
    if (st) {
        medvlm_metrics_free(out);
        return st;
    }
    for (int c = 0; c < n_classes; c++)
        if (out->support[c] == 0)
            mv_log(MEDVLM_LOG_WARN,
                   "metrics: class %d has no sample among the %d true labels; "
                   "left out of balanced accuracy",
                   c, n);
    return MEDVLM_OK;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Index of v in the sorted array u (k entries); v is known to be present. */
static int find_label(const int64_t *u, int k, int64_t v)
{
    int lo = 0, hi = k - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (u[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

enum medvlm_status medvlm_metrics_compute_union(const int64_t *refs, const int64_t *preds, int n,
                                                struct medvlm_metrics *out)
{
    if (!out) return mv_err(MEDVLM_ERR_ARG, "metrics: out must not be NULL");
    memset(out, 0, sizeof *out);
    enum medvlm_status st = check_inputs(refs, preds, n);
    if (st) return st;
    int64_t *u = mv_calloc((size_t)n * 2, sizeof *u);
    if (!u) return MEDVLM_ERR_NOMEM;
    memcpy(u, refs, (size_t)n * sizeof *u);
    memcpy(u + n, preds, (size_t)n * sizeof *u);
    qsort(u, (size_t)n * 2, sizeof *u, cmp_i64);
    int k = 0;
    for (int i = 0; i < 2 * n; i++)
        if (k == 0 || u[i] != u[k - 1]) u[k++] = u[i];
    st = metrics_alloc(out, k, n);
    if (st) goto fail;
    memcpy(out->labels, u, (size_t)k * sizeof *u);
    for (int i = 0; i < n; i++) {
        int r = find_label(u, k, refs[i]), p = find_label(u, k, preds[i]);
        out->confusion[(size_t)r * k + p]++;
    }
    st = metrics_finish(out);
    if (st) medvlm_metrics_free(out);
fail:
    mv_free(u);
    return st;
}

/*
 * loss.c - row softmax, l2-normalisation and the losses: cross-entropy and CLIP's symmetric
 * contrastive loss. Reductions that decide accuracy use max subtraction and double sums.
 *
 * Glossary: R rows, K classes (columns), D embedding dim, B batch (square logits).
 */
#include "ops.h"

#include <math.h>

void mv_softmax_forward(float *out, const float *inp, int R, int K)
{
    // out (R, K), inp (R, K)
    for (int r = 0; r < R; r++) {
        const float *x = inp + (size_t)r * K;
        float *o = out + (size_t)r * K;
        float mx = -INFINITY;
        for (int j = 0; j < K; j++) mx = x[j] > mx ? x[j] : mx;
        double sum = 0;
        for (int j = 0; j < K; j++) sum += exp((double)x[j] - mx);
        for (int j = 0; j < K; j++) o[j] = (float)(exp((double)x[j] - mx) / sum);
    }
}

void mv_l2norm_forward(float *out, float *norm, const float *inp, int R, int D)
{
    // out (R, D), norm (R), inp (R, D)
    for (int r = 0; r < R; r++) {
        const float *x = inp + (size_t)r * D;
        double ss = 0;
        for (int j = 0; j < D; j++) ss += (double)x[j] * x[j];
        float n = (float)sqrt(ss);
        for (int j = 0; j < D; j++) out[(size_t)r * D + j] = x[j] / n;
        if (norm) norm[r] = n;
    }
}

/* Backward. In the forward pass y = x / n with n = ||x||, and dn/dx = x / n = y, so
 * dy_i/dx_j = (delta_ij - y_i y_j) / n and dL/dx = (dy - y <y, dy>) / n, the dot in double. */
void mv_l2norm_backward(float *dinp, const float *dout, const float *out, const float *norm, int R,
                        int D)
{
    // dinp (R, D), dout (R, D), out (R, D), norm (R)
    for (int r = 0; r < R; r++) {
        const float *y = out + (size_t)r * D, *dy = dout + (size_t)r * D;
        double dot = 0;
        for (int j = 0; j < D; j++) dot += (double)y[j] * dy[j];
        double inv = 1.0 / norm[r];
        for (int j = 0; j < D; j++)
            dinp[(size_t)r * D + j] += (float)(((double)dy[j] - y[j] * dot) * inv);
    }
}

/* -log softmax(row)[label] for one row of K values at stride `step`. */
static double ce_row(const float *x, size_t step, int K, int label)
{
    double mx = -INFINITY;
    for (int j = 0; j < K; j++) mx = x[j * step] > mx ? x[j * step] : mx;
    double sum = 0;
    for (int j = 0; j < K; j++) sum += exp((double)x[j * step] - mx);
    return mx + log(sum) - (double)x[(size_t)label * step];
}

double mv_cross_entropy_forward(const float *logits, const int *labels, int R, int K)
{
    // logits (R, K), labels (R)
    double total = 0;
    for (int r = 0; r < R; r++) total += ce_row(logits + (size_t)r * K, 1, K, labels[r]);
    return R ? total / R : 0.0;
}

/* In the forward pass L = (1/R) sum_r (logsumexp(x_r) - x_r[label_r]), and
 * d logsumexp(x) / dx_j = softmax(x)_j, so dL/dx_rj = (softmax(x_r)_j - [j == label_r]) / R.
 * The softmax in double with max subtraction, as the forward's log-sum-exp. */
void mv_cross_entropy_backward(float *dlogits, const float *logits, const int *labels, int R, int K)
{
    // dlogits (R, K), logits (R, K), labels (R)
    for (int r = 0; r < R; r++) {
        const float *x = logits + (size_t)r * K;
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < K; j++) mx = x[j] > mx ? x[j] : mx;
        for (int j = 0; j < K; j++) sum += exp((double)x[j] - mx);
        double scale = 1.0 / (sum * R);
        for (int j = 0; j < K; j++) {
            double g = exp((double)x[j] - mx) * scale - (j == labels[r] ? 1.0 / R : 0.0);
            dlogits[(size_t)r * K + j] += (float)g;
        }
    }
}

double mv_clip_loss_forward(const float *logits_per_image, int B)
{
    // logits_per_image (B, B): rows are images; its columns are logits_per_text's rows
    double per_image = 0, per_text = 0;
    for (int i = 0; i < B; i++) {
        per_image += ce_row(logits_per_image + (size_t)i * B, 1, B, i);
        per_text += ce_row(logits_per_image + i, (size_t)B, B, i);
    }
    return B ? (per_image / B + per_text / B) / 2.0 : 0.0;
}

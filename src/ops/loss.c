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

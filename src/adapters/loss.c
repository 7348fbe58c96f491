/*
 * loss.c - the cross-entropy every adapter minimises (train.c, train_proto.c).
 *
 * Glossary: B rows, K classes.
 */
#include "adapters.h"

#include "../ops/ops.h"

#include <math.h>

/* log_softmax with max subtraction in float, the sums of exponentials in double. With
 * dlogits, 16 rows at a time: their exponentials taken there all at once by the ops'
 * vectorised exp (within ~2 ulps of expf; PyTorch's own is not libm's either) and kept, and
 * sum_b log(sum_b) as the log of the product of their sums (each in [1, K]). Without, one
 * expf and one log per row. */
double mv_cross_entropy_sum(float *dlogits, const float *logits, const int64_t *Y, int B, int K,
                            float gscale)
{
    double total = 0;
    if (!dlogits) {
        for (int b = 0; b < B; b++) {
            const float *l = logits + (size_t)b * K;
            float mx = l[0];
            for (int c = 1; c < K; c++) mx = l[c] > mx ? l[c] : mx;
            double sum = 0;
            for (int c = 0; c < K; c++) sum += expf(l[c] - mx);
            total += (double)mx + log(sum) - (double)l[Y[b]];
        }
        return total;
    }
    for (int b0 = 0; b0 < B; b0 += 16) { /* 16 rows at a time: one log of their sums' product */
        const int nb = MV_MIN(16, B - b0);
        float mx[16];
        for (int b = 0; b < nb; b++) {
            const float *l = logits + (size_t)(b0 + b) * K;
            float *g = dlogits + (size_t)(b0 + b) * K, m = l[0];
            for (int c = 1; c < K; c++) m = l[c] > m ? l[c] : m;
            for (int c = 0; c < K; c++) g[c] = l[c] - m;
            mx[b] = m;
        }
        float *g0 = dlogits + (size_t)b0 * K;
        mv_exp_span(g0, (size_t)nb * K);
        double prod = 1;
        for (int b = 0; b < nb; b++) {
            float *g = g0 + (size_t)b * K;
            const int64_t y = Y[b0 + b];
            double sum = 0;
            for (int c = 0; c < K; c++) sum += g[c];
            total += (double)mx[b] - (double)logits[(size_t)(b0 + b) * K + y];
            prod *= sum;
            float inv = (float)(1.0 / sum);
            for (int c = 0; c < K; c++) g[c] = (g[c] * inv - (float)(c == y)) * gscale;
        }
        total += log(prod);
    }
    return total;
}

double mv_cross_entropy(float *dlogits, const float *logits, const int64_t *Y, int B, int K)
{
    return mv_cross_entropy_sum(dlogits, logits, Y, B, K, 1.0f / (float)B) / B;
}

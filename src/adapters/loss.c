/*
 * loss.c - the cross-entropy every adapter minimises (train.c, train_proto.c).
 *
 * Glossary: B rows, K classes.
 */
#include "adapters.h"

#include "../ops/ops.h"

#include <math.h>

#ifdef MV_HAVE_X86
#include <immintrin.h>

/* mv_cross_entropy_sum for K = 4 and an even number of rows, up to 32 at a time, two rows per
 * 8-lane vector: the same steps as the loop below, with the sums of exponentials in float (in
 * the order (e0 + e2) + (e1 + e3)) and the max, normalisation and one-hot subtraction done on
 * both rows at once. The value (value != 0) of each 16-row group is its own chain, as in the
 * loop; the two chains of 32 rows run side by side. */
__attribute__((target("avx2,fma"))) static double ce_rows4(float *g0, const float *l0,
                                                           const int64_t *Y, int nb, float gscale,
                                                           int value, double total)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 0, 1, 2, 3);
    const __m256i pick = _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2); /* int64 labels' low halves */
    float mx[32], sums[32];
    for (int p = 0; p < nb; p += 2) {
        __m256 v = _mm256_loadu_ps(l0 + (size_t)p * 4);
        __m256 m = _mm256_max_ps(v, _mm256_shuffle_ps(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
        m = _mm256_max_ps(m, _mm256_shuffle_ps(m, m, _MM_SHUFFLE(2, 3, 0, 1)));
        _mm256_storeu_ps(g0 + (size_t)p * 4, _mm256_sub_ps(v, m));
        mx[p] = _mm256_cvtss_f32(m);
        mx[p + 1] = _mm_cvtss_f32(_mm256_extractf128_ps(m, 1));
    }
    mv_exp_span(g0, (size_t)nb * 4);
    const __m256 vs = _mm256_set1_ps(gscale), one = _mm256_set1_ps(1.0f);
    for (int p = 0; p < nb; p += 2) {
        __m256 e = _mm256_loadu_ps(g0 + (size_t)p * 4);
        __m256 t = _mm256_add_ps(e, _mm256_shuffle_ps(e, e, _MM_SHUFFLE(1, 0, 3, 2)));
        t = _mm256_add_ps(t, _mm256_shuffle_ps(t, t, _MM_SHUFFLE(2, 3, 0, 1)));
        sums[p] = _mm256_cvtss_f32(t);
        sums[p + 1] = _mm_cvtss_f32(_mm256_extractf128_ps(t, 1));
        __m256i y = _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)(Y + p)));
        y = _mm256_permutevar8x32_epi32(y, pick);
        __m256 hot = _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(lane, y)), one);
        __m256 q = _mm256_sub_ps(_mm256_mul_ps(e, _mm256_div_ps(one, t)), hot);
        _mm256_storeu_ps(g0 + (size_t)p * 4, _mm256_mul_ps(q, vs));
    }
    if (!value) return total;
    const int n0 = MV_MIN(nb, 16), n1 = nb - n0;
    double t0 = 0, p0 = 1, t1 = 0, p1 = 1;
    for (int b = 0; b < n0; b++) {
        t0 += (double)mx[b] - (double)l0[(size_t)b * 4 + Y[b]];
        p0 *= (double)sums[b];
        if (b < n1) {
            const int c = 16 + b;
            t1 += (double)mx[c] - (double)l0[(size_t)c * 4 + Y[c]];
            p1 *= (double)sums[c];
        }
    }
    total += t0 + log(p0);
    if (n1) total += t1 + log(p1);
    return total;
}
#endif

/* log_softmax with max subtraction in float, the sums of exponentials in double. With
 * dlogits, 16 rows at a time: their exponentials taken there all at once by the ops'
 * vectorised exp (within ~2 ulps of expf; PyTorch's own is not libm's either) and kept, and
 * sum_b log(sum_b) as the log of the product of their sums (each in [1, K]). Without, one
 * expf and one log per row. */

static double ce_sum(float *dlogits, const float *logits, const int64_t *Y, int B, int K,
                     float gscale, int value)
{
    double total = 0;
#ifdef MV_HAVE_X86
    if (dlogits && K == 4 && B % 2 == 0 && mv_kernels_simd()) {
        for (int b0 = 0; b0 < B; b0 += 32)
            total = ce_rows4(dlogits + (size_t)b0 * 4, logits + (size_t)b0 * 4, Y + b0,
                             MV_MIN(32, B - b0), gscale, value, total);
        return total;
    }
#endif
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

double mv_cross_entropy_sum(float *dlogits, const float *logits, const int64_t *Y, int B, int K,
                            float gscale)
{
    return ce_sum(dlogits, logits, Y, B, K, gscale, 1);
}

void mv_cross_entropy_grad(float *dlogits, const float *logits, const int64_t *Y, int B, int K,
                           float gscale)
{
    (void)ce_sum(dlogits, logits, Y, B, K, gscale, 0);
}

double mv_cross_entropy(float *dlogits, const float *logits, const int64_t *Y, int B, int K)
{
    return mv_cross_entropy_sum(dlogits, logits, Y, B, K, 1.0f / (float)B) / B;
}

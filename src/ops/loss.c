/*
 * loss.c - row softmax, l2-normalisation and the losses: cross-entropy (fine-tuning's head and
 * every adapter minimise the one below) and CLIP's symmetric contrastive loss. Reductions that
 * decide accuracy use max subtraction and double sums.
 *
 * Glossary: R rows, K classes (columns), D embedding dim, B batch (square logits).
 */
#include "ops.h"

#include <math.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define MV_HAVE_CE4 1 /* the AVX2 path for K = 4 */
#endif

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

/* -log softmax(row)[label] for one row of K values at stride `step`, all in double. */
static double ce_row(const float *x, size_t step, int K, int64_t label)
{
    double mx = -INFINITY;
    for (int j = 0; j < K; j++) mx = x[j * step] > mx ? x[j * step] : mx;
    double sum = 0;
    for (int j = 0; j < K; j++) sum += exp((double)x[j * step] - mx);
    return mx + log(sum) - (double)x[(size_t)label * step];
}

#ifdef MV_HAVE_CE4

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

/* With dlogits, 16 rows at a time: their exponentials taken there all at once by the ops'
 * vectorised exp (within ~2 ulps of expf; PyTorch's own is not libm's either) and kept, and
 * sum_b log(sum_b) as the log of the product of their sums (each in [1, K]). Without, ce_row:
 * the value alone, in double (as the CLIP loss). value 0: the gradient alone (the same bits). */
static double ce_sum(float *dlogits, const float *logits, const int64_t *Y, int B, int K,
                     float gscale, int value)
{
    // dlogits (B, K), logits (B, K), Y (B)
    double total = 0;
#ifdef MV_HAVE_CE4
    if (dlogits && K == 4 && B % 2 == 0 && mv_kernels_simd()) {
        for (int b0 = 0; b0 < B; b0 += 32)
            total = ce_rows4(dlogits + (size_t)b0 * 4, logits + (size_t)b0 * 4, Y + b0,
                             MV_MIN(32, B - b0), gscale, value, total);
        return total;
    }
#endif
    if (!dlogits) {
        for (int b = 0; b < B; b++) total += ce_row(logits + (size_t)b * K, 1, K, Y[b]);
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

double mv_cross_entropy_sum(float *dlogits, const float *logits, const int64_t *labels, int R,
                            int K, float gscale)
{
    return ce_sum(dlogits, logits, labels, R, K, gscale, 1);
}

void mv_cross_entropy_grad(float *dlogits, const float *logits, const int64_t *labels, int R, int K,
                           float gscale)
{
    (void)ce_sum(dlogits, logits, labels, R, K, gscale, 0);
}

double mv_cross_entropy(float *dlogits, const float *logits, const int64_t *labels, int R, int K)
{
    return R ? mv_cross_entropy_sum(dlogits, logits, labels, R, K, 1.0f / (float)R) / R : 0.0;
}

/* In the forward pass L = sum_r (logsumexp(x_r) - x_r[label_r]) (times gscale for the
 * gradient), and d logsumexp(x) / dx_j = softmax(x)_j, so dL/dx_rj = (softmax(x_r)_j -
 * [j == label_r]) gscale. Max subtraction, exponentials and sums all in double. */
double mv_cross_entropy_naive(float *dlogits, const float *logits, const int64_t *labels, int R,
                              int K, float gscale)
{
    // dlogits (R, K), logits (R, K), labels (R)
    double total = 0;
    for (int r = 0; r < R; r++) {
        const float *x = logits + (size_t)r * K;
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < K; j++) mx = x[j] > mx ? x[j] : mx;
        for (int j = 0; j < K; j++) sum += exp((double)x[j] - mx);
        total += mx + log(sum) - (double)x[labels[r]];
        if (dlogits)
            for (int j = 0; j < K; j++)
                dlogits[(size_t)r * K + j] =
                    (float)((exp((double)x[j] - mx) / sum - (j == labels[r])) * gscale);
    }
    return total;
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

/*
 * attention.c - scaled dot-product attention per (sequence, head), Hugging Face's eager
 * CLIPAttention: scores = q k^T (q already scaled by HS^-0.5), plus float32 min on every
 * masked score (once for the causal mask, once for the key padding mask: both are added, as
 * HF adds the two masks separately), softmax over keys with max subtraction, out = p v.
 *
 * The batch is a list of row spans (struct mv_seqs), so sequences of different lengths can be
 * packed without padding. The (sequence, head) pairs run in parallel; each one does two small
 * GEMMs (cache resident: N x HS and N x N) on its own thread, so nothing depends on the
 * thread count.
 *
 * Glossary: B sequences, N_b tokens of sequence b, C width, NH heads, HS head size, R rows.
 */
#include "ops.h"

#include <float.h>
#include <math.h>

size_t mv_attention_att_size(const struct mv_seqs *s, int NH)
{
    size_t n = 0;
    for (int b = 0; b < s->B; b++) n += (size_t)s->len[b] * (size_t)s->len[b];
    return n * (size_t)NH;
}

/* Offset of sequence b's probabilities in att: NH * sum_{b' < b} N_b'^2. */
static size_t att_offset(const struct mv_seqs *s, int b, int NH)
{
    size_t n = 0;
    for (int i = 0; i < b; i++) n += (size_t)s->len[i] * (size_t)s->len[i];
    return n * (size_t)NH;
}

static inline int key_masked(const struct mv_seqs *s, int b, int j)
{
    return s->mask && s->mask[(size_t)b * s->mask_stride + j] == 0;
}

/* Mask and softmax one score row p (N) of query i in place. */
static void mask_softmax_row(float *p, const struct mv_seqs *s, int b, int i, int N)
{
    const float neg = -FLT_MAX; /* torch.finfo(float32).min */
    float mx = -INFINITY;
    for (int j = 0; j < N; j++) {
        float v = p[j];
        if (s->causal && j > i) v += neg;
        if (key_masked(s, b, j)) v += neg;
        p[j] = v;
        mx = v > mx ? v : mx;
    }
    for (int j = 0; j < N; j++) p[j] -= mx;
    mv_exp_span(p, (size_t)N);
    float sum = 0.0f;
    for (int j = 0; j < N; j++) sum += p[j];
    float inv = 1.0f / sum;
    for (int j = 0; j < N; j++) p[j] *= inv;
}

void mv_attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                          const struct mv_seqs *s, int NH, int HS)
{
    // out (R, C), att (NH * sum N_b^2), q k v (R, C)
    const int C = NH * HS, pairs = s->B * NH;
#pragma omp parallel for schedule(dynamic, 1) if (pairs > 1)
    for (int bh = 0; bh < pairs; bh++) {
        int b = bh / NH, h = bh % NH, N = s->len[b];
        size_t row0 = (size_t)s->off[b] * C + (size_t)h * HS;
        float *p = att + att_offset(s, b, NH) + (size_t)h * N * N; // (N, N)
        mv_gemm_serial(0, 1, N, N, HS, 1.0f, q + row0, C, k + row0, C, 0.0f, p, N);
        for (int i = 0; i < N; i++) mask_softmax_row(p + (size_t)i * N, s, b, i, N);
        mv_gemm_serial(0, 0, N, HS, N, 1.0f, p, N, v + row0, C, 0.0f, out + row0, C);
    }
}

void mv_attention_forward_naive(float *out, float *att, const float *q, const float *k,
                                const float *v, const struct mv_seqs *s, int NH, int HS)
{
    const int C = NH * HS;
    const double neg = -FLT_MAX;
    for (int b = 0; b < s->B; b++) {
        int N = s->len[b];
        for (int h = 0; h < NH; h++) {
            float *p = att + att_offset(s, b, NH) + (size_t)h * N * N;
            for (int i = 0; i < N; i++) {
                const float *qi = q + (size_t)(s->off[b] + i) * C + h * HS;
                double mx = -INFINITY;
                for (int j = 0; j < N; j++) {
                    const float *kj = k + (size_t)(s->off[b] + j) * C + h * HS;
                    double acc = 0;
                    for (int d = 0; d < HS; d++) acc += (double)qi[d] * kj[d];
                    /* float32 min added in float, as the reference: -FLT_MAX, or -inf twice */
                    float sc = (float)acc;
                    if (s->causal && j > i) sc = (float)(sc + neg);
                    if (key_masked(s, b, j)) sc = sc + (float)neg;
                    p[(size_t)i * N + j] = sc;
                    if (sc > mx) mx = sc;
                }
                double sum = 0;
                for (int j = 0; j < N; j++) sum += exp((double)p[(size_t)i * N + j] - mx);
                for (int j = 0; j < N; j++)
                    p[(size_t)i * N + j] = (float)(exp((double)p[(size_t)i * N + j] - mx) / sum);
                for (int d = 0; d < HS; d++) {
                    double acc = 0;
                    for (int j = 0; j < N; j++)
                        acc += (double)p[(size_t)i * N + j] *
                               v[(size_t)(s->off[b] + j) * C + h * HS + d];
                    out[(size_t)(s->off[b] + i) * C + h * HS + d] = (float)acc;
                }
            }
        }
    }
}

/* Backward. In the forward pass, per (sequence, head): S = q k^T (plus the masks, constants),
 * P = softmax(S) per row, O = P v. With dO = dL/dO and dP = dL/dP:
 *   dv = P^T dO,  dP = dO v^T,
 *   the softmax of row i has d P_il / d S_ij = P_il (delta_lj - P_ij), so
 *   dS_ij = sum_l dP_il P_il (delta_lj - P_ij) = P_ij (dP_ij - sum_l dP_il P_il),
 *   dq = dS k,  dk = dS^T q.
 * Masked keys have P = 0 exactly, so their dS is 0 and they get no gradient. Each pair
 * writes its own rows and head columns of dq, dk, dv and its own block of datt: no races,
 * and each pair runs on one thread with serial GEMMs, so nothing depends on the thread count. */
void mv_attention_backward(float *dq, float *dk, float *dv, float *datt, const float *dout,
                           const float *att, const float *q, const float *k, const float *v,
                           const struct mv_seqs *s, int NH, int HS)
{
    // dq dk dv (R, C), datt (NH * sum N_b^2), dout (R, C), att (NH * sum N_b^2), q k v (R, C)
    const int C = NH * HS, pairs = s->B * NH;
#pragma omp parallel for schedule(dynamic, 1) if (pairs > 1)
    for (int bh = 0; bh < pairs; bh++) {
        int b = bh / NH, h = bh % NH, N = s->len[b];
        size_t row0 = (size_t)s->off[b] * C + (size_t)h * HS, at = att_offset(s, b, NH);
        const float *p = att + at + (size_t)h * N * N; // (N, N)
        const float *dO = dout + row0;                 // (N, HS) at stride C
        if (dv) mv_gemm_serial(1, 0, N, HS, N, 1.0f, p, N, dO, C, 1.0f, dv + row0, C);
        if (!dq && !dk) continue;
        float *ds = datt + at + (size_t)h * N * N; // (N, N): dP, then dS in place
        mv_gemm_serial(0, 1, N, N, HS, 1.0f, dO, C, v + row0, C, 0.0f, ds, N);
        for (int i = 0; i < N; i++) {
            const float *pi = p + (size_t)i * N;
            float *di = ds + (size_t)i * N;
            double dot = 0;
            for (int j = 0; j < N; j++) dot += (double)di[j] * pi[j];
            for (int j = 0; j < N; j++) di[j] = (float)(pi[j] * (di[j] - dot));
        }
        if (dq) mv_gemm_serial(0, 0, N, HS, N, 1.0f, ds, N, k + row0, C, 1.0f, dq + row0, C);
        if (dk) mv_gemm_serial(1, 0, N, HS, N, 1.0f, ds, N, q + row0, C, 1.0f, dk + row0, C);
    }
}

/* dP_ij = dO_i . v_j of head h, in double (recomputed rather than stored in float). */
static double attn_dp(const float *ob, const float *vb, int i, int j, int C, int h, int HS)
{
    double acc = 0;
    for (int d = 0; d < HS; d++)
        acc += (double)ob[(size_t)i * C + h * HS + d] * vb[(size_t)j * C + h * HS + d];
    return acc;
}

void mv_attention_backward_naive(float *dq, float *dk, float *dv, float *datt, const float *dout,
                                 const float *att, const float *q, const float *k, const float *v,
                                 const struct mv_seqs *s, int NH, int HS)
{
    const int C = NH * HS;
    for (int b = 0; b < s->B; b++) {
        int N = s->len[b];
        const float *qb = q + (size_t)s->off[b] * C, *kb = k + (size_t)s->off[b] * C;
        const float *vb = v + (size_t)s->off[b] * C, *ob = dout + (size_t)s->off[b] * C;
        for (int h = 0; h < NH; h++) {
            const float *p = att + att_offset(s, b, NH) + (size_t)h * N * N;
            float *ds = datt + att_offset(s, b, NH) + (size_t)h * N * N;
            /* dS row by row: dP_ij = dO_i . v_j in double, then P_ij (dP_ij - dP_i . P_i) */
            for (int i = 0; i < N; i++) {
                double dot = 0;
                for (int j = 0; j < N; j++)
                    dot += attn_dp(ob, vb, i, j, C, h, HS) * p[(size_t)i * N + j];
                for (int j = 0; j < N; j++)
                    ds[(size_t)i * N + j] =
                        (float)(p[(size_t)i * N + j] * (attn_dp(ob, vb, i, j, C, h, HS) - dot));
            }
            for (int i = 0; i < N; i++)
                for (int d = 0; d < HS; d++) {
                    size_t o = (size_t)i * C + h * HS + d;
                    double aq = 0, ak = 0, av = 0;
                    for (int j = 0; j < N; j++) {
                        size_t c = (size_t)j * C + h * HS + d;
                        aq += (double)ds[(size_t)i * N + j] * kb[c];
                        ak += (double)ds[(size_t)j * N + i] * qb[c];
                        av += (double)p[(size_t)j * N + i] * ob[c];
                    }
                    if (dq) dq[(size_t)s->off[b] * C + o] += (float)aq;
                    if (dk) dk[(size_t)s->off[b] * C + o] += (float)ak;
                    if (dv) dv[(size_t)s->off[b] * C + o] += (float)av;
                }
        }
    }
}

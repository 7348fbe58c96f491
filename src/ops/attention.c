/*
 * attention.c - scaled dot-product attention per (sequence, head), Hugging Face's eager
 * CLIPAttention: scores = q k^T (q already scaled by HS^-0.5), plus float32 min on every
 * masked score (once for the causal mask, once for the key padding mask: both are added, as
 * HF adds the two masks separately), softmax over keys with max subtraction, out = p v.
 *
 * The batch is a list of row spans (struct mv_seqs), so sequences of different lengths can be
 * packed without padding. The (sequence, head) pairs run in parallel, each one whole on one
 * thread, so nothing depends on the thread count.
 *
 * Two paths per pair. The fused one (short sequences: NP * HS <= ATT_MAX_T; CLIP's 50 image
 * and 77 text tokens) keeps the pair in cache: k (or v) transposed into a stack buffer, the
 * products by a small register-tile kernel (fused multiply-add chains over the reduction index
 * in order, from +0; under the causal mask the terms past the diagonal skipped), the masks,
 * softmax and softmax backward row by row on the saved probabilities. It runs with AVX-512
 * where the CPU has it; mv_attention_*_portable run the same arithmetic in plain C (fmaf, the
 * same lane sums), bit for bit: the oracle of the vector code. The general path (longer
 * sequences, or no AVX-512) does the products with the GEMM seam's serial call: a general
 * packed GEMM, whose packing costs more than a 50 x 50 x 64 product itself.
 *
 * Glossary: B sequences, N_b tokens of sequence b, C width, NH heads, HS head size, R rows;
 * NP = N rounded up to 16 (a row of the transposed k or v), TR x TC the product tile.
 */
#include "ops.h"

#include <float.h>
#include <math.h>
#include <string.h>

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#include <immintrin.h>
#define MV_HAVE_AVX512_PATH 1
#endif

/* The fused path's transposed k or v of one pair lives on the stack: HS rows of NP floats, at
 * most 64 KB. */
#define ATT_MAX_T 16384

static int fused_fits(int N, int HS)
{
    return (size_t)(N + 15) / 16 * 16 * (size_t)HS <= ATT_MAX_T; /* rows padded to 16 */
}

/* The product kernel's tile: TR rows by up to 64 columns (a column group). */
#define TR 6
#define TC 64

/* Under the causal mask P_ij = 0 for j > i, so the products skip the terms past the
 * diagonal, by row blocks of TR (the same blocks in the vector and the portable code):
 * ATT_T_BELOW: C row i sums t < the end of i's block (p v, dS k: t is the key j);
 * ATT_T_ABOVE: t >= the start of i's block (p^T dO, dS^T q: row j, t the query i);
 * ATT_COLS_BELOW: the column groups past the end of i's block are not computed, acc = +0
 * (q k^T, dO v^T: those scores are masked, those dP meet P = 0). */
enum att_tri { ATT_FULL, ATT_T_BELOW, ATT_T_ABOVE, ATT_COLS_BELOW };

/* C (M, NC) = A (M, K) B (K, NC), or C += that: A[r][t] at A[r * ars + t * acs], B rows at
 * stride ldb, C rows at stride ldc. Each element is acc = fma(A[r][t], B[t][c], acc) over
 * t in tri's range in order from acc = +0, then stored: add 0: C = acc; 1: C = C + acc;
 * 2: C = +0 + acc (the bits of zeroing C, then adding). */
struct att_mm {
    int M, NC, K;
    const float *A;
    size_t ars, acs;
    const float *B;
    size_t ldb;
    float *C;
    size_t ldc;
    int add;
    enum att_tri tri;
};

/* The reduction range [*t0, *t1) of the row block starting at r0 and column group at c0. */
static inline void tri_range(const struct att_mm *m, int r0, int c0, int *t0, int *t1)
{
    *t0 = 0, *t1 = m->K;
    if (m->tri == ATT_T_BELOW) *t1 = MV_MIN(m->K, r0 + TR);
    if (m->tri == ATT_T_ABOVE) *t0 = MV_MIN(m->K, r0);
    if (m->tri == ATT_COLS_BELOW && c0 >= r0 + TR) *t1 = 0;
}

/* The kernels of the fused path: the products, the masked softmax of a pair's N score rows p
 * (N, N) in place (km: key padding mask bits, bit j%16 of km[j/16] set = masked), and the
 * softmax backward ds (N, N) = p * (dp - rowsum(dp * p)) in place over dp; transpose: xt (HS,
 * N) at row stride ldt = x (N, HS) at row stride C, transposed. */
struct att_kernels {
    void (*transpose)(float *xt, size_t ldt, const float *x, int N, int HS, int C);
    void (*mm)(const struct att_mm *m);
    void (*softmax)(float *p, int N, const uint16_t *km, int causal);
    void (*dsoftmax)(float *ds, const float *p, int N);
};

static void transpose_portable(float *xt, size_t ldt, const float *x, int N, int HS, int C)
{
    for (int j = 0; j < N; j++)
        for (int d = 0; d < HS; d++) xt[(size_t)d * ldt + j] = x[(size_t)j * C + d];
}

/* Sums of 16 lanes as the vector code forms them: lane l += lane l + w for w = 8, 4, 2, 1. */
static float lanes_sum(float *lane)
{
    for (int w = 8; w > 0; w /= 2)
        for (int l = 0; l < w; l++) lane[l] = lane[l] + lane[l + w];
    return lane[0];
}
static double lanes_sum_d(double *lane)
{
    for (int w = 8; w > 0; w /= 2)
        for (int l = 0; l < w; l++) lane[l] = lane[l] + lane[l + w];
    return lane[0];
}

static void mm_portable(const struct att_mm *m)
{
    for (int r = 0; r < m->M; r++)
        for (int c = 0; c < m->NC; c++) {
            float acc = 0.0f;
            int t0, t1;
            tri_range(m, r - r % TR, c - c % TC, &t0, &t1);
            for (int t = t0; t < t1; t++)
                acc = fmaf(m->A[(size_t)r * m->ars + (size_t)t * m->acs],
                           m->B[(size_t)t * m->ldb + c], acc);
            float *o = m->C + (size_t)r * m->ldc + c;
            *o = m->add ? (m->add == 1 ? *o : 0.0f) + acc : acc;
        }
}

/* exp(x) as the vector code computes it: 0 below -87.3 (and for -inf), x clamped to [-87, 88],
 * x = n ln2 + r by a rounding shift, e^r by its Taylor series to r^7 (Horner, fused), times 2^n
 * built in the exponent bits. Relative error ~1e-7. */
#define EXP_SHIFT 12582912.0f /* 1.5 * 2^23: adding it rounds to an integer */
#define EXP_LOG2E 1.44269504088896341f
#define EXP_LN2HI 0.693145751953125f
#define EXP_LN2LO 1.42860682030941723212e-6f
static const float exp_coef[8] = {1.0f / 5040.0f, 1.0f / 720.0f, 1.0f / 120.0f, 1.0f / 24.0f,
                                  1.0f / 6.0f,    0.5f,          1.0f,          1.0f};

static float exp0_portable(float x)
{
    float xc = x < -87.0f ? -87.0f : x;
    xc = xc > 88.0f ? 88.0f : xc;
    float n = fmaf(xc, EXP_LOG2E, EXP_SHIFT);
    n = n - EXP_SHIFT;
    float r = fmaf(-n, EXP_LN2HI, xc);
    r = fmaf(-n, EXP_LN2LO, r);
    float p = exp_coef[0];
    for (int i = 1; i < 8; i++) p = fmaf(p, r, exp_coef[i]);
    /* n is an integer in [-126, 127] (NaN only for a NaN x, converted as the vector code does) */
    uint32_t bits = ((uint32_t)(n == n ? (int32_t)n : INT32_MIN) + 127u) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float e = p * scale;
    return x < -87.3f ? 0.0f : e;
}

static inline int km_masked(const uint16_t *km, int j)
{
    return km && (km[j >> 4] >> (j & 15) & 1);
}

/* Row sums as the vector code forms them: 16 lanes (element j into lane j % 16), then the
 * lanes by lanes_sum. */
static void softmax_portable(float *p, int N, const uint16_t *km, int causal)
{
    const float neg = -FLT_MAX; /* torch.finfo(float32).min */
    for (int i = 0; i < N; i++, p += N) {
        float mx = -INFINITY, lane[16] = {0};
        for (int j = 0; j < N; j++) {
            float v = p[j];
            if (causal && j > i) v = v + neg;
            if (km_masked(km, j)) v = v + neg;
            p[j] = v;
            mx = v > mx ? v : mx;
        }
        for (int j = 0; j < N; j++) {
            p[j] = exp0_portable(p[j] - mx);
            lane[j & 15] = lane[j & 15] + p[j];
        }
        float inv = 1.0f / lanes_sum(lane);
        for (int j = 0; j < N; j++) p[j] = p[j] * inv;
    }
}

/* The row dot products dp . p in double in 16 lanes (the float products are exact in double),
 * then the lanes by lanes_sum_d. */
static void dsoftmax_portable(float *ds, const float *p, int N)
{
    for (int i = 0; i < N; i++, ds += N, p += N) {
        double lane[16] = {0};
        for (int j = 0; j < N; j++) lane[j & 15] += (double)ds[j] * p[j];
        double dot = lanes_sum_d(lane);
        for (int j = 0; j < N; j++) ds[j] = (float)((double)p[j] * ((double)ds[j] - dot));
    }
}

static const struct att_kernels kernels_portable = {transpose_portable, mm_portable,
                                                    softmax_portable, dsoftmax_portable};

#ifdef MV_HAVE_AVX512_PATH
/* One tile of mm: TR rows (rows past M repeat row M-1, their results dropped) by CV vectors of
 * 16 columns, the last vector's columns limited by kl. always_inline with constant TR and CV,
 * so the accumulators stay in registers. */
__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) void
tile_avx512(const int CV, const struct att_mm *m, int r0, int c0, __mmask16 kl)
{
    const int M = m->M, add = m->add;
    int t0, t1;
    tri_range(m, r0, c0, &t0, &t1);
    const size_t acs = m->acs, ldb = m->ldb;
    const float *a[TR];
#pragma GCC unroll 8
    for (int r = 0; r < TR; r++) a[r] = m->A + (size_t)MV_MIN(r0 + r, M - 1) * m->ars;
    const float *b = m->B + (size_t)t0 * ldb + c0;
    __m512 acc[TR][4];
#pragma GCC unroll 8
    for (int r = 0; r < TR; r++)
#pragma GCC unroll 4
        for (int v = 0; v < CV; v++) acc[r][v] = _mm512_setzero_ps();
    for (int t = t0; t < t1; t++, b += ldb) {
        __m512 bv[4];
#pragma GCC unroll 4
        for (int v = 0; v < CV; v++)
            bv[v] =
                v == CV - 1 ? _mm512_maskz_loadu_ps(kl, b + 16 * v) : _mm512_loadu_ps(b + 16 * v);
        size_t at = (size_t)t * acs;
#pragma GCC unroll 8
        for (int r = 0; r < TR; r++) {
            __m512 x = _mm512_set1_ps(a[r][at]);
#pragma GCC unroll 4
            for (int v = 0; v < CV; v++) acc[r][v] = _mm512_fmadd_ps(x, bv[v], acc[r][v]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < TR; r++) {
        if (r0 + r >= M) break;
        float *o = m->C + (size_t)(r0 + r) * m->ldc + c0;
#pragma GCC unroll 4
        for (int v = 0; v < CV; v++) {
            __mmask16 k = v == CV - 1 ? kl : (__mmask16)0xffff;
            __m512 x = acc[r][v];
            if (add) /* maskz_loadu with an empty mask: +0 */
                x = _mm512_add_ps(_mm512_maskz_loadu_ps(add == 1 ? k : 0, o + 16 * v), x);
            _mm512_mask_storeu_ps(o + 16 * v, k, x);
        }
    }
}

__attribute__((target("avx512f"))) static void mm_avx512(const struct att_mm *m)
{
    for (int c0 = 0; c0 < m->NC; c0 += TC) {
        int n = MV_MIN(m->NC - c0, TC), cv = (n + 15) / 16, tail = n - 16 * (cv - 1);
        __mmask16 kl = (__mmask16)(tail == 16 ? 0xffff : (1u << tail) - 1);
        for (int r0 = 0; r0 < m->M; r0 += TR) switch (cv) {
            case 1:
                tile_avx512(1, m, r0, c0, kl);
                break;
            case 2:
                tile_avx512(2, m, r0, c0, kl);
                break;
            case 3:
                tile_avx512(3, m, r0, c0, kl);
                break;
            default:
                tile_avx512(4, m, r0, c0, kl);
                break;
            }
    }
}

/* lanes_sum and lanes_sum_d (lanes 0..7 in d0, 8..15 in d1) by halves. */
__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) float
sum16(__m512 x)
{
    __m256 t8 = _mm256_add_ps(_mm512_castps512_ps256(x),
                              _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
    __m128 t4 = _mm_add_ps(_mm256_castps256_ps128(t8), _mm256_extractf128_ps(t8, 1));
    __m128 t2 = _mm_add_ps(t4, _mm_movehl_ps(t4, t4));
    return _mm_cvtss_f32(_mm_add_ss(t2, _mm_shuffle_ps(t2, t2, 1)));
}
__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) double
sum16_d(__m512d d0, __m512d d1)
{
    __m512d t8 = _mm512_add_pd(d0, d1);
    __m256d t4 = _mm256_add_pd(_mm512_castpd512_pd256(t8), _mm512_extractf64x4_pd(t8, 1));
    __m128d t2 = _mm_add_pd(_mm256_castpd256_pd128(t4), _mm256_extractf128_pd(t4, 1));
    return _mm_cvtsd_f64(_mm_add_sd(t2, _mm_unpackhi_pd(t2, t2)));
}

static inline __mmask16 tail_mask(int n)
{
    return (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1);
}

/* transpose_portable by 16 x 16 blocks in registers: rows past N and columns past HS load as
 * 0, only the block's real rows and columns are stored. */
__attribute__((target("avx512f"))) static void
transpose_avx512(float *xt, size_t ldt, const float *x, int N, int HS, int C)
{
    for (int j0 = 0; j0 < N; j0 += 16)
        for (int d0 = 0; d0 < HS; d0 += 16) {
            int nj = MV_MIN(16, N - j0), nd = MV_MIN(16, HS - d0);
            __mmask16 kd = tail_mask(nd), kj = tail_mask(nj);
            __m512 r[16];
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++)
                r[i] = i < nj ? _mm512_maskz_loadu_ps(kd, x + (size_t)(j0 + i) * C + d0)
                              : _mm512_setzero_ps();
            mv_transpose16(r);
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++)
                if (i < nd) _mm512_mask_storeu_ps(xt + (size_t)(d0 + i) * ldt + j0, kj, r[i]);
        }
}

/* exp0_portable on 16 lanes; the ternaries as compare masks and blends. */
__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) __m512
exp0_avx512(__m512 x)
{
    const __m512 lo = _mm512_set1_ps(-87.0f), hi = _mm512_set1_ps(88.0f);
    const __m512 shift = _mm512_set1_ps(EXP_SHIFT);
    __m512 xc = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ), x, lo);
    xc = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(xc, hi, _CMP_GT_OQ), xc, hi);
    __m512 n = _mm512_fmadd_ps(xc, _mm512_set1_ps(EXP_LOG2E), shift);
    n = _mm512_sub_ps(n, shift);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2HI), xc);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2LO), r);
    __m512 p = _mm512_set1_ps(exp_coef[0]);
#pragma GCC unroll 8
    for (int i = 1; i < 8; i++) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(exp_coef[i]));
    __m512i bits =
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvttps_epi32(n), _mm512_set1_epi32(127)), 23);
    __m512 e = _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3f), _CMP_LT_OQ), e,
                                _mm512_setzero_ps());
}

__attribute__((target("avx512f"))) static void softmax_avx512(float *p, int N, const uint16_t *km,
                                                              int causal)
{
    const __m512 neg = _mm512_set1_ps(-FLT_MAX);
    const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int i = 0; i < N; i++, p += N) {
        __m512 vmx = _mm512_set1_ps(-INFINITY), sum = _mm512_setzero_ps();
        for (int j = 0; j < N; j += 16) {
            __mmask16 k = tail_mask(N - j);
            __m512 v = _mm512_maskz_loadu_ps(k, p + j);
            if (causal) { /* lanes with j + l > i */
                __mmask16 kc = _mm512_cmpgt_epi32_mask(
                    _mm512_add_epi32(lanes, _mm512_set1_epi32(j)), _mm512_set1_epi32(i));
                v = _mm512_mask_add_ps(v, kc, v, neg);
            }
            if (km) v = _mm512_mask_add_ps(v, (__mmask16)km[j >> 4], v, neg);
            _mm512_mask_storeu_ps(p + j, k, v);
            /* mx = v > mx ? v : mx, lane by lane */
            vmx = _mm512_mask_blend_ps(_mm512_mask_cmp_ps_mask(k, v, vmx, _CMP_GT_OQ), vmx, v);
        }
        /* the largest lane: the same value in any order (exp(x - +0) = exp(x - -0)) */
        const __m512 vm = _mm512_set1_ps(_mm512_reduce_max_ps(vmx));
        for (int j = 0; j < N; j += 16) {
            __mmask16 k = tail_mask(N - j);
            __m512 e = exp0_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, p + j), vm));
            _mm512_mask_storeu_ps(p + j, k, e);
            sum = _mm512_mask_add_ps(sum, k, sum, e);
        }
        const __m512 inv = _mm512_set1_ps(1.0f / sum16(sum));
        for (int j = 0; j < N; j += 16) {
            __mmask16 k = tail_mask(N - j);
            _mm512_mask_storeu_ps(p + j, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, p + j), inv));
        }
    }
}

/* The low and high 8 floats of x widened to double. */
__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) __m512d
lo_pd(__m512 x)
{
    return _mm512_cvtps_pd(_mm512_castps512_ps256(x));
}
__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) __m512d
hi_pd(__m512 x)
{
    return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
}

__attribute__((target("avx512f"))) static void dsoftmax_avx512(float *ds, const float *p, int N)
{
    for (int i = 0; i < N; i++, ds += N, p += N) {
        __m512d d0 = _mm512_setzero_pd(), d1 = _mm512_setzero_pd();
        for (int j = 0; j < N; j += 16) { /* masked lanes add exact +0 products */
            __mmask16 k = tail_mask(N - j);
            __m512 x = _mm512_maskz_loadu_ps(k, ds + j), y = _mm512_maskz_loadu_ps(k, p + j);
            d0 = _mm512_add_pd(d0, _mm512_mul_pd(lo_pd(x), lo_pd(y)));
            d1 = _mm512_add_pd(d1, _mm512_mul_pd(hi_pd(x), hi_pd(y)));
        }
        const __m512d vd = _mm512_set1_pd(sum16_d(d0, d1));
        for (int j = 0; j < N; j += 16) {
            __mmask16 k = tail_mask(N - j);
            __m512 x = _mm512_maskz_loadu_ps(k, ds + j), y = _mm512_maskz_loadu_ps(k, p + j);
            __m256 r0 = _mm512_cvtpd_ps(_mm512_mul_pd(lo_pd(y), _mm512_sub_pd(lo_pd(x), vd)));
            __m256 r1 = _mm512_cvtpd_ps(_mm512_mul_pd(hi_pd(y), _mm512_sub_pd(hi_pd(x), vd)));
            __m512 r = _mm512_castpd_ps(_mm512_insertf64x4(
                _mm512_castps_pd(_mm512_castps256_ps512(r0)), _mm256_castps_pd(r1), 1));
            _mm512_mask_storeu_ps(ds + j, k, r);
        }
    }
}

static const struct att_kernels kernels_avx512 = {transpose_avx512, mm_avx512, softmax_avx512,
                                                  dsoftmax_avx512};
#endif

int mv_attention_fused_available(void)
{
    return mv_gemm_packed_available(); /* the same test: AVX-512F, built with GCC on x86-64 */
}

/* The fused path's kernels on this CPU, or NULL: the general path for every pair. */
static const struct att_kernels *fused_kernels(void)
{
#ifdef MV_HAVE_AVX512_PATH
    if (mv_cpu_has(MV_CPU_BIT(MV_CPU_AVX512F))) return &kernels_avx512;
#endif
    return NULL;
}

/* Sequence b's key padding mask as bits (NULL: none). km holds (N + 15) / 16 words. */
static const uint16_t *mask_bits(uint16_t *km, const struct mv_seqs *s, int b, int N)
{
    if (!s->mask) return NULL;
    memset(km, 0, (size_t)(N + 15) / 16 * sizeof *km);
    for (int j = 0; j < N; j++)
        if (s->mask[(size_t)b * s->mask_stride + j] == 0) km[j >> 4] |= (uint16_t)(1u << (j & 15));
    return km;
}

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

/* One pair on the fused path: p (N, N) = softmax(mask(q k^T)), o (N, HS) = p v. */
static void pair_forward_fused(const struct att_kernels *kr, float *o, float *p, const float *q,
                               const float *k, const float *v, const uint16_t *km, int causal,
                               int N, int HS, int C)
{
    // o q k v (N, HS) at row stride C, p (N, N)
    _Alignas(64) float kt[ATT_MAX_T]; // (HS, NP)
    const size_t np = (size_t)(N + 15) / 16 * 16;
    kr->transpose(kt, np, k, N, HS, C);
    kr->mm(&(struct att_mm){N, N, HS, q, (size_t)C, 1, kt, np, p, (size_t)N, 0,
                            causal ? ATT_COLS_BELOW : ATT_FULL});
    kr->softmax(p, N, km, causal);
    kr->mm(&(struct att_mm){N, HS, N, p, (size_t)N, 1, v, (size_t)C, o, (size_t)C, 0,
                            causal ? ATT_T_BELOW : ATT_FULL});
}

static void attention_forward(const struct att_kernels *kr, float *out, float *att, const float *q,
                              const float *k, const float *v, const struct mv_seqs *s, int NH,
                              int HS)
{
    // out (R, C), att (NH * sum N_b^2), q k v (R, C)
    const int C = NH * HS, pairs = s->B * NH;
#pragma omp parallel for schedule(dynamic, 1) if (pairs > 1)
    for (int bh = 0; bh < pairs; bh++) {
        int b = bh / NH, h = bh % NH, N = s->len[b];
        size_t row0 = (size_t)s->off[b] * C + (size_t)h * HS;
        float *p = att + att_offset(s, b, NH) + (size_t)h * N * N; // (N, N)
        if (kr && fused_fits(N, HS)) {
            uint16_t kmb[(ATT_MAX_T + 15) / 16];
            pair_forward_fused(kr, out + row0, p, q + row0, k + row0, v + row0,
                               mask_bits(kmb, s, b, N), s->causal, N, HS, C);
            continue;
        }
        mv_gemm_serial(0, 1, N, N, HS, 1.0f, q + row0, C, k + row0, C, 0.0f, p, N);
        for (int i = 0; i < N; i++) mask_softmax_row(p + (size_t)i * N, s, b, i, N);
        mv_gemm_serial(0, 0, N, HS, N, 1.0f, p, N, v + row0, C, 0.0f, out + row0, C);
    }
}

void mv_attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                          const struct mv_seqs *s, int NH, int HS)
{
    attention_forward(fused_kernels(), out, att, q, k, v, s, NH, HS);
}

void mv_attention_forward_portable(float *out, float *att, const float *q, const float *k,
                                   const float *v, const struct mv_seqs *s, int NH, int HS)
{
    attention_forward(&kernels_portable, out, att, q, k, v, s, NH, HS);
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
 * and each pair runs whole on one thread, so nothing depends on the thread count. */

/* One pair on the fused path: dv += p^T dO; ds (N, N) = dP = dO v^T, then dS in place;
 * dq += dS k, dk += dS^T q (set: dq, dk, dv = +0 + ..., as zeroed, then accumulated). */
static void pair_backward_fused(const struct att_kernels *kr, int set, float *dq, float *dk,
                                float *dv, float *ds, const float *dO, const float *p,
                                const float *q, const float *k, const float *v, int causal, int N,
                                int HS, int C)
{
    // dq dk dv dO q k v (N, HS) at row stride C, ds p (N, N)
    const size_t n = (size_t)N, c = (size_t)C;
    const int add = set ? 2 : 1;
    const enum att_tri below = causal ? ATT_T_BELOW : ATT_FULL;
    const enum att_tri above = causal ? ATT_T_ABOVE : ATT_FULL;
    if (dv) kr->mm(&(struct att_mm){N, HS, N, p, 1, n, dO, c, dv, c, add, above});
    if (!dq && !dk) return;
    _Alignas(64) float vt[ATT_MAX_T]; // (HS, NP)
    const size_t np = (n + 15) / 16 * 16;
    kr->transpose(vt, np, v, N, HS, C);
    kr->mm(
        &(struct att_mm){N, N, HS, dO, c, 1, vt, np, ds, n, 0, causal ? ATT_COLS_BELOW : ATT_FULL});
    kr->dsoftmax(ds, p, N);
    if (dq) kr->mm(&(struct att_mm){N, HS, N, ds, n, 1, k, c, dq, c, add, below});
    if (dk) kr->mm(&(struct att_mm){N, HS, N, ds, 1, n, q, c, dk, c, add, above});
}

/* x (N, HS) at row stride C = 0, where not NULL. */
static void zero_head(float *x, int N, int HS, int C)
{
    for (int i = 0; x && i < N; i++) memset(x + (size_t)i * C, 0, (size_t)HS * sizeof *x);
}

static void attention_backward(const struct att_kernels *kr, int set, float *dq, float *dk,
                               float *dv, float *datt, const float *dout, const float *att,
                               const float *q, const float *k, const float *v,
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
        float *ds = datt + at + (size_t)h * N * N;     // (N, N): dP, then dS in place
        if (kr && fused_fits(N, HS)) {
            pair_backward_fused(kr, set, dq ? dq + row0 : NULL, dk ? dk + row0 : NULL,
                                dv ? dv + row0 : NULL, ds, dO, p, q + row0, k + row0, v + row0,
                                s->causal, N, HS, C);
            continue;
        }
        if (set) {
            zero_head(dq ? dq + row0 : NULL, N, HS, C);
            zero_head(dk ? dk + row0 : NULL, N, HS, C);
            zero_head(dv ? dv + row0 : NULL, N, HS, C);
        }
        if (dv) mv_gemm_serial(1, 0, N, HS, N, 1.0f, p, N, dO, C, 1.0f, dv + row0, C);
        if (!dq && !dk) continue;
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

void mv_attention_backward(float *dq, float *dk, float *dv, float *datt, const float *dout,
                           const float *att, const float *q, const float *k, const float *v,
                           const struct mv_seqs *s, int NH, int HS)
{
    attention_backward(fused_kernels(), 0, dq, dk, dv, datt, dout, att, q, k, v, s, NH, HS);
}

void mv_attention_backward_set(float *dq, float *dk, float *dv, float *datt, const float *dout,
                               const float *att, const float *q, const float *k, const float *v,
                               const struct mv_seqs *s, int NH, int HS)
{
    attention_backward(fused_kernels(), 1, dq, dk, dv, datt, dout, att, q, k, v, s, NH, HS);
}

void mv_attention_backward_portable(float *dq, float *dk, float *dv, float *datt, const float *dout,
                                    const float *att, const float *q, const float *k,
                                    const float *v, const struct mv_seqs *s, int NH, int HS)
{
    attention_backward(&kernels_portable, 0, dq, dk, dv, datt, dout, att, q, k, v, s, NH, HS);
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

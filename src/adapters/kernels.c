/*
 * kernels.c - the two small matrix products every adapter step is made of, for the shapes
 * of few-shot adaptation (B = 32 rows, K = 4 classes, D = 512): far too small for a BLAS call
 * to pay off, so plain loops, plus AVX2+FMA versions chosen once at run time.
 *
 *   mv_mm_nt      C (M, N)  = A (M, L) Bm (N, L)^T     logits = X W^T
 *   mv_mm_tn_acc  C (M, N) += A (L, M)^T Bm (L, N)     dW += dlogits^T X
 *
 * The *_rows forms take the feature operand as an array of row pointers, so that a shuffled
 * mini-batch is read where it lies instead of being copied together first.
 *
 * and the vector pieces around them (dot, squared distance, dst += a x + b y).
 */
#include "adapters.h"

#include <math.h>
#include <string.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define MV_HAVE_X86 1
#include <immintrin.h>
#endif

/* The stream's position, copied into a local for the length of a loop so that it lives in
 * registers; pf NULL: an empty stream. */
struct pf_cursor {
    const float *const *rows;
    int nrows, lines, b, line;
};

static inline struct pf_cursor pf_begin(const struct mv_prefetch *pf)
{
    struct pf_cursor c = {0};
    if (pf) c = (struct pf_cursor){pf->rows, pf->nrows, pf->lines, pf->b, pf->line};
    return c;
}

static inline void pf_next(struct pf_cursor *c)
{
    if (c->b >= c->nrows) return;
    __builtin_prefetch((const char *)c->rows[c->b] + (size_t)c->line * 64);
    if (++c->line == c->lines) {
        c->line = 0;
        c->b++;
    }
}

static inline void pf_end(struct mv_prefetch *pf, const struct pf_cursor *c)
{
    if (!pf) return;
    pf->b = c->b;
    pf->line = c->line;
}

void mv_prefetch_rest(struct mv_prefetch *pf)
{
    for (; pf && pf->b < pf->nrows; pf->b++, pf->line = 0)
        for (; pf->line < pf->lines; pf->line++)
            __builtin_prefetch((const char *)pf->rows[pf->b] + (size_t)pf->line * 64);
}

static void mm_nt_plain(float *C, const float *A, const float *const *Arows, const float *Bm, int M,
                        int N, int L)
{
    for (int i = 0; i < M; i++) {
        const float *a = Arows ? Arows[i] : A + (size_t)i * L;
        for (int j = 0; j < N; j++) {
            float acc = 0;
            for (int l = 0; l < L; l++) acc += a[l] * Bm[(size_t)j * L + l];
            C[(size_t)i * N + j] = acc;
        }
    }
}

static void mm_tn_acc_plain(float *C, const float *A, const float *Bm, const float *const *Brows,
                            int M, int N, int L, int acc)
{
    if (!acc) memset(C, 0, (size_t)M * N * sizeof(float));
    for (int l = 0; l < L; l++) {
        const float *b = Brows ? Brows[l] : Bm + (size_t)l * N;
        for (int i = 0; i < M; i++) {
            float a = A[(size_t)l * M + i];
            float *c = C + (size_t)i * N;
            for (int j = 0; j < N; j++) c[j] += a * b[j];
        }
    }
}

void mv_mm_nt_ref(float *C, const float *A, const float *Bm, int M, int N, int L)
{
    mm_nt_plain(C, A, NULL, Bm, M, N, L);
}

void mv_mm_tn_acc_ref(float *C, const float *A, const float *Bm, int M, int N, int L)
{
    mm_tn_acc_plain(C, A, Bm, NULL, M, N, L, 1);
}

float mv_dot_ref(const float *a, const float *b, int L)
{
    float acc = 0;
    for (int l = 0; l < L; l++) acc += a[l] * b[l];
    return acc;
}

float mv_sqdist_ref(const float *a, const float *b, int L)
{
    float acc = 0;
    for (int l = 0; l < L; l++) acc += (a[l] - b[l]) * (a[l] - b[l]);
    return acc;
}

void mv_axpby_acc_ref(float *dst, float a, const float *x, float b, const float *y, int L)
{
    for (int l = 0; l < L; l++) dst[l] += a * x[l] + b * y[l];
}

double mv_sqdist_f64(const float *a, const float *b, int L)
{
    double z = 0;
    for (int l = 0; l < L; l++) z += ((double)a[l] - b[l]) * ((double)a[l] - b[l]);
    return z;
}

void mv_axpby_ref(float *dst, float a, const float *x, float b, const float *y, int L)
{
    for (int l = 0; l < L; l++) dst[l] = a * x[l] + b * y[l];
}

float mv_row_update_ref(const struct mv_row_update *u, float *w, float *buf, float *weff,
                        const float *g, const float *zs, int L)
{
    float r = 0;
    for (int l = 0; l < L; l++) {
        float d = u->a * g[l] + u->b * weff[l];
        if (u->clap) d += u->f * w[l] - u->f * zs[l];
        buf[l] = u->mom * buf[l] + u->damp * d;
        w[l] -= u->lr * buf[l];
        float we = u->taskres ? zs[l] + u->alpha * w[l] : w[l];
        if (u->taskres) weff[l] = we;
        r += we * we;
    }
    return r;
}

#ifdef MV_HAVE_X86

__attribute__((target("avx2,fma"))) static inline float hsum256(__m256 v)
{
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 0x55));
    return _mm_cvtss_f32(lo);
}

/*
 * The dot products below all accumulate one (row, column) pair the same way: one 8-lane
 * FMA accumulator over the 8-float chunks in order, hsum256, then fmaf over the tail. So a
 * logit does not depend on how rows and columns were blocked, and a run split over threads
 * (each thread a subset of the columns) is bit-identical to one thread.
 */

/* Four dot products of a with b0..b3. */
__attribute__((target("avx2,fma"))) static void dot4(float *out, const float *a, const float *b0,
                                                     const float *b1, const float *b2,
                                                     const float *b3, int L)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int l = 0;
    for (; l + 8 <= L; l += 8) {
        __m256 x = _mm256_loadu_ps(a + l);
        s0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b0 + l), s0);
        s1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b1 + l), s1);
        s2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b2 + l), s2);
        s3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b3 + l), s3);
    }
    float r0 = hsum256(s0), r1 = hsum256(s1), r2 = hsum256(s2), r3 = hsum256(s3);
    for (; l < L; l++) {
        r0 = fmaf(a[l], b0[l], r0);
        r1 = fmaf(a[l], b1[l], r1);
        r2 = fmaf(a[l], b2[l], r2);
        r3 = fmaf(a[l], b3[l], r3);
    }
    out[0] = r0;
    out[1] = r1;
    out[2] = r2;
    out[3] = r3;
}

/* Two rows a0, a1 against b0..b3: eight dot products, one W load serves both rows. */
__attribute__((target("avx2,fma"))) static void dot4x2(float *out0, float *out1, const float *a0,
                                                       const float *a1, const float *b0,
                                                       const float *b1, const float *b2,
                                                       const float *b3, int L)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    __m256 t0 = s0, t1 = s0, t2 = s0, t3 = s0;
    int l = 0;
    for (; l + 8 <= L; l += 8) {
        __m256 x = _mm256_loadu_ps(a0 + l), y = _mm256_loadu_ps(a1 + l);
        __m256 w0 = _mm256_loadu_ps(b0 + l), w1 = _mm256_loadu_ps(b1 + l);
        __m256 w2 = _mm256_loadu_ps(b2 + l), w3 = _mm256_loadu_ps(b3 + l);
        s0 = _mm256_fmadd_ps(x, w0, s0);
        s1 = _mm256_fmadd_ps(x, w1, s1);
        s2 = _mm256_fmadd_ps(x, w2, s2);
        s3 = _mm256_fmadd_ps(x, w3, s3);
        t0 = _mm256_fmadd_ps(y, w0, t0);
        t1 = _mm256_fmadd_ps(y, w1, t1);
        t2 = _mm256_fmadd_ps(y, w2, t2);
        t3 = _mm256_fmadd_ps(y, w3, t3);
    }
    float r[8] = {hsum256(s0), hsum256(s1), hsum256(s2), hsum256(s3),
                  hsum256(t0), hsum256(t1), hsum256(t2), hsum256(t3)};
    for (; l < L; l++) {
        r[0] = fmaf(a0[l], b0[l], r[0]);
        r[1] = fmaf(a0[l], b1[l], r[1]);
        r[2] = fmaf(a0[l], b2[l], r[2]);
        r[3] = fmaf(a0[l], b3[l], r[3]);
        r[4] = fmaf(a1[l], b0[l], r[4]);
        r[5] = fmaf(a1[l], b1[l], r[5]);
        r[6] = fmaf(a1[l], b2[l], r[6]);
        r[7] = fmaf(a1[l], b3[l], r[7]);
    }
    memcpy(out0, r, 4 * sizeof(float));
    memcpy(out1, r + 4, 4 * sizeof(float));
}

/* Three rows against b0..b3: twelve accumulators, enough to cover the FMA latency. */
__attribute__((target("avx2,fma"))) static void dot4x3(float *out0, float *out1, float *out2,
                                                       const float *a0, const float *a1,
                                                       const float *a2, const float *const *bk,
                                                       int L, struct mv_prefetch *pf)
{
    const float *b0 = bk[0], *b1 = bk[1], *b2 = bk[2], *b3 = bk[3];
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    __m256 t0 = s0, t1 = s0, t2 = s0, t3 = s0;
    __m256 u0 = s0, u1 = s0, u2 = s0, u3 = s0;
    struct pf_cursor pc = pf_begin(pf);
    int l = 0;
    for (; l + 8 <= L; l += 8) {
        pf_next(&pc);
        __m256 x = _mm256_loadu_ps(a0 + l), y = _mm256_loadu_ps(a1 + l);
        __m256 z = _mm256_loadu_ps(a2 + l), w = _mm256_loadu_ps(b0 + l);
        s0 = _mm256_fmadd_ps(x, w, s0);
        t0 = _mm256_fmadd_ps(y, w, t0);
        u0 = _mm256_fmadd_ps(z, w, u0);
        w = _mm256_loadu_ps(b1 + l);
        s1 = _mm256_fmadd_ps(x, w, s1);
        t1 = _mm256_fmadd_ps(y, w, t1);
        u1 = _mm256_fmadd_ps(z, w, u1);
        w = _mm256_loadu_ps(b2 + l);
        s2 = _mm256_fmadd_ps(x, w, s2);
        t2 = _mm256_fmadd_ps(y, w, t2);
        u2 = _mm256_fmadd_ps(z, w, u2);
        w = _mm256_loadu_ps(b3 + l);
        s3 = _mm256_fmadd_ps(x, w, s3);
        t3 = _mm256_fmadd_ps(y, w, t3);
        u3 = _mm256_fmadd_ps(z, w, u3);
    }
    pf_end(pf, &pc);
    float r[12] = {hsum256(s0), hsum256(s1), hsum256(s2), hsum256(s3), hsum256(t0), hsum256(t1),
                   hsum256(t2), hsum256(t3), hsum256(u0), hsum256(u1), hsum256(u2), hsum256(u3)};
    for (; l < L; l++)
        for (int c = 0; c < 4; c++) {
            r[c] = fmaf(a0[l], bk[c][l], r[c]);
            r[4 + c] = fmaf(a1[l], bk[c][l], r[4 + c]);
            r[8 + c] = fmaf(a2[l], bk[c][l], r[8 + c]);
        }
    memcpy(out0, r, 4 * sizeof(float));
    memcpy(out1, r + 4, 4 * sizeof(float));
    memcpy(out2, r + 8, 4 * sizeof(float));
}

__attribute__((target("avx2,fma"))) static float dot1(const float *a, const float *b, int L)
{
    __m256 s = _mm256_setzero_ps();
    int l = 0;
    for (; l + 8 <= L; l += 8)
        s = _mm256_fmadd_ps(_mm256_loadu_ps(a + l), _mm256_loadu_ps(b + l), s);
    float r = hsum256(s);
    for (; l < L; l++) r = fmaf(a[l], b[l], r);
    return r;
}

__attribute__((target("avx2,fma"))) static void mm_nt_avx2(float *C, const float *A,
                                                           const float *const *Arows,
                                                           const float *Bm, int M, int N, int L,
                                                           struct mv_prefetch *pf)
{
    int i = 0;
    for (; i + 3 <= M && N >= 4; i += 3) {
        const float *a0 = Arows ? Arows[i] : A + (size_t)i * L;
        const float *a1 = Arows ? Arows[i + 1] : A + (size_t)(i + 1) * L;
        const float *a2 = Arows ? Arows[i + 2] : A + (size_t)(i + 2) * L;
        float *c0 = C + (size_t)i * N, *c1 = c0 + N, *c2 = c1 + N;
        int j = 0;
        for (; j + 4 <= N; j += 4) {
            const float *bk[4] = {Bm + (size_t)j * L, Bm + (size_t)(j + 1) * L,
                                  Bm + (size_t)(j + 2) * L, Bm + (size_t)(j + 3) * L};
            dot4x3(c0 + j, c1 + j, c2 + j, a0, a1, a2, bk, L, pf);
        }
        for (; j < N; j++) {
            c0[j] = dot1(a0, Bm + (size_t)j * L, L);
            c1[j] = dot1(a1, Bm + (size_t)j * L, L);
            c2[j] = dot1(a2, Bm + (size_t)j * L, L);
        }
    }
    for (; i + 2 <= M && N >= 4; i += 2) {
        const float *a0 = Arows ? Arows[i] : A + (size_t)i * L;
        const float *a1 = Arows ? Arows[i + 1] : A + (size_t)(i + 1) * L;
        float *c0 = C + (size_t)i * N, *c1 = c0 + N;
        int j = 0;
        for (; j + 4 <= N; j += 4)
            dot4x2(c0 + j, c1 + j, a0, a1, Bm + (size_t)j * L, Bm + (size_t)(j + 1) * L,
                   Bm + (size_t)(j + 2) * L, Bm + (size_t)(j + 3) * L, L);
        for (; j < N; j++) {
            c0[j] = dot1(a0, Bm + (size_t)j * L, L);
            c1[j] = dot1(a1, Bm + (size_t)j * L, L);
        }
    }
    for (; i < M; i++) {
        const float *a = Arows ? Arows[i] : A + (size_t)i * L;
        float *c = C + (size_t)i * N;
        int j = 0;
        for (; j + 4 <= N; j += 4)
            dot4(c + j, a, Bm + (size_t)j * L, Bm + (size_t)(j + 1) * L, Bm + (size_t)(j + 2) * L,
                 Bm + (size_t)(j + 3) * L, L);
        for (; j < N; j++) c[j] = dot1(a, Bm + (size_t)j * L, L);
    }
}

/* C rows i..i+3, columns j..j+15 accumulated over all l in registers, starting from C
 * (acc) or from zero. */
__attribute__((target("avx2,fma"))) static void
mm_tn_acc_avx2(float *C, const float *A, const float *Bm, const float *const *Brows, int M, int N,
               int L, int acc, struct mv_prefetch *pf)
{
    if (!acc) /* the tails below accumulate in C */
        for (int i = 0; i < M; i++)
            for (int j = (i < M - M % 4 ? N - N % 16 : N - N % 8); j < N; j++)
                C[(size_t)i * N + j] = 0;
    int i = 0;
    for (; i + 4 <= M; i += 4) {
        float *c0 = C + (size_t)i * N, *c1 = c0 + N, *c2 = c1 + N, *c3 = c2 + N;
        int j = 0;
        for (; j + 16 <= N; j += 16) {
            __m256 a0 = _mm256_setzero_ps(), b0 = a0, a1 = a0, b1 = a0, a2 = a0, b2 = a0, a3 = a0,
                   b3 = a0;
            if (acc) {
                a0 = _mm256_loadu_ps(c0 + j), b0 = _mm256_loadu_ps(c0 + j + 8);
                a1 = _mm256_loadu_ps(c1 + j), b1 = _mm256_loadu_ps(c1 + j + 8);
                a2 = _mm256_loadu_ps(c2 + j), b2 = _mm256_loadu_ps(c2 + j + 8);
                a3 = _mm256_loadu_ps(c3 + j), b3 = _mm256_loadu_ps(c3 + j + 8);
            }
            struct pf_cursor pc = pf_begin(pf);
            for (int l = 0; l < L; l++) {
                pf_next(&pc);
                const float *ar = A + (size_t)l * M + i;
                const float *br = (Brows ? Brows[l] : Bm + (size_t)l * N) + j;
                __m256 x = _mm256_loadu_ps(br), y = _mm256_loadu_ps(br + 8);
                __m256 g0 = _mm256_broadcast_ss(ar), g1 = _mm256_broadcast_ss(ar + 1);
                __m256 g2 = _mm256_broadcast_ss(ar + 2), g3 = _mm256_broadcast_ss(ar + 3);
                a0 = _mm256_fmadd_ps(g0, x, a0);
                b0 = _mm256_fmadd_ps(g0, y, b0);
                a1 = _mm256_fmadd_ps(g1, x, a1);
                b1 = _mm256_fmadd_ps(g1, y, b1);
                a2 = _mm256_fmadd_ps(g2, x, a2);
                b2 = _mm256_fmadd_ps(g2, y, b2);
                a3 = _mm256_fmadd_ps(g3, x, a3);
                b3 = _mm256_fmadd_ps(g3, y, b3);
            }
            pf_end(pf, &pc);
            _mm256_storeu_ps(c0 + j, a0);
            _mm256_storeu_ps(c0 + j + 8, b0);
            _mm256_storeu_ps(c1 + j, a1);
            _mm256_storeu_ps(c1 + j + 8, b1);
            _mm256_storeu_ps(c2 + j, a2);
            _mm256_storeu_ps(c2 + j + 8, b2);
            _mm256_storeu_ps(c3 + j, a3);
            _mm256_storeu_ps(c3 + j + 8, b3);
        }
        for (; j < N; j++)
            for (int l = 0; l < L; l++) {
                const float *ar = A + (size_t)l * M + i;
                float b = (Brows ? Brows[l] : Bm + (size_t)l * N)[j];
                c0[j] = fmaf(ar[0], b, c0[j]);
                c1[j] = fmaf(ar[1], b, c1[j]);
                c2[j] = fmaf(ar[2], b, c2[j]);
                c3[j] = fmaf(ar[3], b, c3[j]);
            }
    }
    for (; i < M; i++) {
        float *c = C + (size_t)i * N;
        int j = 0;
        for (; j + 8 <= N; j += 8) {
            __m256 v = acc ? _mm256_loadu_ps(c + j) : _mm256_setzero_ps();
            for (int l = 0; l < L; l++)
                v = _mm256_fmadd_ps(_mm256_broadcast_ss(A + (size_t)l * M + i),
                                    _mm256_loadu_ps((Brows ? Brows[l] : Bm + (size_t)l * N) + j),
                                    v);
            _mm256_storeu_ps(c + j, v);
        }
        for (; j < N; j++)
            for (int l = 0; l < L; l++)
                c[j] = fmaf(A[(size_t)l * M + i], (Brows ? Brows[l] : Bm + (size_t)l * N)[j], c[j]);
    }
}

__attribute__((target("avx2,fma"))) static float sqdist_avx2(const float *a, const float *b, int L)
{
    __m256 s = _mm256_setzero_ps(), t = s;
    int l = 0;
    for (; l + 16 <= L; l += 16) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + l), _mm256_loadu_ps(b + l));
        __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a + l + 8), _mm256_loadu_ps(b + l + 8));
        s = _mm256_fmadd_ps(d0, d0, s);
        t = _mm256_fmadd_ps(d1, d1, t);
    }
    for (; l + 8 <= L; l += 8) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + l), _mm256_loadu_ps(b + l));
        s = _mm256_fmadd_ps(d0, d0, s);
    }
    float r = hsum256(_mm256_add_ps(s, t));
    for (; l < L; l++) r += (a[l] - b[l]) * (a[l] - b[l]);
    return r;
}

__attribute__((target("avx2,fma"))) static void axpby_acc_avx2(float *dst, float a, const float *x,
                                                               float b, const float *y, int L)
{
    __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
    int l = 0;
    for (; l + 8 <= L; l += 8) {
        __m256 d = _mm256_loadu_ps(dst + l);
        d = _mm256_fmadd_ps(va, _mm256_loadu_ps(x + l), d);
        d = _mm256_fmadd_ps(vb, _mm256_loadu_ps(y + l), d);
        _mm256_storeu_ps(dst + l, d);
    }
    for (; l < L; l++) dst[l] += a * x[l] + b * y[l];
}

/* dst = a x + b y with the roundings of axpby_acc_avx2 onto a zeroed dst. */
__attribute__((target("avx2,fma"))) static void axpby_avx2(float *dst, float a, const float *x,
                                                           float b, const float *y, int L)
{
    __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
    int l = 0;
    for (; l + 8 <= L; l += 8) {
        __m256 d = _mm256_fmadd_ps(va, _mm256_loadu_ps(x + l), _mm256_setzero_ps());
        _mm256_storeu_ps(dst + l, _mm256_fmadd_ps(vb, _mm256_loadu_ps(y + l), d));
    }
    for (; l < L; l++) dst[l] = 0.0f + (a * x[l] + b * y[l]);
}

/* The trainer's per-class update in one pass; see mv_row_update. Each line repeats one of the
 * separate kernels' operations in its order, the tail its scalar form, one operation per
 * statement so that no compiler fuses a multiply and an add the separate kernels keep
 * apart. */
__attribute__((target("avx2,fma"))) static float row_update_avx2(const struct mv_row_update *u,
                                                                 float *w, float *buf, float *weff,
                                                                 const float *g, const float *zs,
                                                                 int L)
{
    const __m256 zero = _mm256_setzero_ps(), va = _mm256_set1_ps(u->a), vb = _mm256_set1_ps(u->b);
    const __m256 vf = _mm256_set1_ps(u->f), vnf = _mm256_set1_ps(-u->f);
    const __m256 vm = _mm256_set1_ps(u->mom), vd = _mm256_set1_ps(u->damp);
    const __m256 vl = _mm256_set1_ps(u->lr), val = _mm256_set1_ps(u->alpha);
    __m256 acc = zero;
    int l = 0;
    for (; l + 8 <= L; l += 8) {
        __m256 we = _mm256_loadu_ps(weff + l), wv = _mm256_loadu_ps(w + l);
        __m256 d = _mm256_fmadd_ps(va, _mm256_loadu_ps(g + l), zero); /* mv_axpby */
        d = _mm256_fmadd_ps(vb, we, d);
        if (u->clap) { /* mv_axpby_acc */
            d = _mm256_fmadd_ps(vf, wv, d);
            d = _mm256_fmadd_ps(vnf, _mm256_loadu_ps(zs + l), d);
        }
        __m256 m = _mm256_mul_ps(vm, _mm256_loadu_ps(buf + l)); /* SGD */
        __m256 bb = _mm256_add_ps(m, _mm256_mul_ps(vd, d));
        _mm256_storeu_ps(buf + l, bb);
        wv = _mm256_sub_ps(wv, _mm256_mul_ps(vl, bb));
        _mm256_storeu_ps(w + l, wv);
        we = wv;
        if (u->taskres) { /* the effective prototype */
            we = _mm256_add_ps(_mm256_loadu_ps(zs + l), _mm256_mul_ps(val, wv));
            _mm256_storeu_ps(weff + l, we);
        }
        acc = _mm256_fmadd_ps(we, we, acc); /* mv_dot */
    }
    float r = hsum256(acc);
    for (; l < L; l++) {
        float p = u->a * g[l], q = u->b * weff[l];
        float d = p + q;
        d = 0.0f + d;
        if (u->clap) {
            p = u->f * w[l];
            q = -u->f * zs[l];
            p = p + q;
            d += p;
        }
        p = u->mom * buf[l];
        q = u->damp * d;
        buf[l] = p + q;
        p = u->lr * buf[l];
        w[l] -= p;
        float we = w[l];
        if (u->taskres) {
            p = u->alpha * w[l];
            we = zs[l] + p;
            weff[l] = we;
        }
        r = fmaf(we, we, r);
    }
    return r;
}

static int simd_level = -1;

int mv_kernels_simd(void)
{
    if (simd_level < 0) {
        __builtin_cpu_init();
        simd_level = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return simd_level;
}

void mv_mm_nt(float *C, const float *A, const float *Bm, int M, int N, int L)
{
    if (mv_kernels_simd())
        mm_nt_avx2(C, A, NULL, Bm, M, N, L, NULL);
    else
        mm_nt_plain(C, A, NULL, Bm, M, N, L);
}

void mv_mm_nt_rows(float *C, const float *const *Arows, const float *Bm, int M, int N, int L,
                   struct mv_prefetch *pf)
{
    if (mv_kernels_simd())
        mm_nt_avx2(C, NULL, Arows, Bm, M, N, L, pf);
    else
        mm_nt_plain(C, NULL, Arows, Bm, M, N, L);
}

void mv_mm_tn_acc(float *C, const float *A, const float *Bm, int M, int N, int L)
{
    if (mv_kernels_simd())
        mm_tn_acc_avx2(C, A, Bm, NULL, M, N, L, 1, NULL);
    else
        mm_tn_acc_plain(C, A, Bm, NULL, M, N, L, 1);
}

void mv_mm_tn_acc_rows(float *C, const float *A, const float *const *Brows, int M, int N, int L)
{
    if (mv_kernels_simd())
        mm_tn_acc_avx2(C, A, NULL, Brows, M, N, L, 1, NULL);
    else
        mm_tn_acc_plain(C, A, NULL, Brows, M, N, L, 1);
}

void mv_mm_tn_rows(float *C, const float *A, const float *const *Brows, int M, int N, int L,
                   struct mv_prefetch *pf)
{
    if (mv_kernels_simd())
        mm_tn_acc_avx2(C, A, NULL, Brows, M, N, L, 0, pf);
    else
        mm_tn_acc_plain(C, A, NULL, Brows, M, N, L, 0);
}

float mv_dot(const float *a, const float *b, int L)
{
    return mv_kernels_simd() ? dot1(a, b, L) : mv_dot_ref(a, b, L);
}

float mv_sqdist(const float *a, const float *b, int L)
{
    return mv_kernels_simd() ? sqdist_avx2(a, b, L) : mv_sqdist_ref(a, b, L);
}

void mv_axpby_acc(float *dst, float a, const float *x, float b, const float *y, int L)
{
    if (mv_kernels_simd())
        axpby_acc_avx2(dst, a, x, b, y, L);
    else
        mv_axpby_acc_ref(dst, a, x, b, y, L);
}

float mv_row_update(const struct mv_row_update *u, float *w, float *buf, float *weff,
                    const float *g, const float *zs, int L)
{
    return mv_kernels_simd() ? row_update_avx2(u, w, buf, weff, g, zs, L)
                             : mv_row_update_ref(u, w, buf, weff, g, zs, L);
}

void mv_axpby(float *dst, float a, const float *x, float b, const float *y, int L)
{
    if (mv_kernels_simd())
        axpby_avx2(dst, a, x, b, y, L);
    else
        mv_axpby_ref(dst, a, x, b, y, L);
}

#else

int mv_kernels_simd(void)
{
    return 0;
}

void mv_mm_nt(float *C, const float *A, const float *Bm, int M, int N, int L)
{
    mm_nt_plain(C, A, NULL, Bm, M, N, L);
}

void mv_mm_nt_rows(float *C, const float *const *Arows, const float *Bm, int M, int N, int L,
                   struct mv_prefetch *pf)
{
    (void)pf;
    mm_nt_plain(C, NULL, Arows, Bm, M, N, L);
}

void mv_mm_tn_acc(float *C, const float *A, const float *Bm, int M, int N, int L)
{
    mm_tn_acc_plain(C, A, Bm, NULL, M, N, L, 1);
}

void mv_mm_tn_acc_rows(float *C, const float *A, const float *const *Brows, int M, int N, int L)
{
    mm_tn_acc_plain(C, A, NULL, Brows, M, N, L, 1);
}

void mv_mm_tn_rows(float *C, const float *A, const float *const *Brows, int M, int N, int L,
                   struct mv_prefetch *pf)
{
    (void)pf;
    mm_tn_acc_plain(C, A, NULL, Brows, M, N, L, 0);
}

float mv_dot(const float *a, const float *b, int L)
{
    return mv_dot_ref(a, b, L);
}

float mv_sqdist(const float *a, const float *b, int L)
{
    return mv_sqdist_ref(a, b, L);
}

void mv_axpby_acc(float *dst, float a, const float *x, float b, const float *y, int L)
{
    mv_axpby_acc_ref(dst, a, x, b, y, L);
}

void mv_axpby(float *dst, float a, const float *x, float b, const float *y, int L)
{
    mv_axpby_ref(dst, a, x, b, y, L);
}

float mv_row_update(const struct mv_row_update *u, float *w, float *buf, float *weff,
                    const float *g, const float *zs, int L)
{
    return mv_row_update_ref(u, w, buf, weff, g, zs, L);
}

#endif

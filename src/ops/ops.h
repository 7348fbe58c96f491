/*
 * ops.h - the numerical kernels of the transformer: one op family per file, each backward
 * right below its forward. Every optimised kernel has a naive sibling (`*_naive`, double
 * accumulators) that a test compares it with, and every backward a finite-difference test
 * (tests/unit/test_ops_backward.c).
 *
 * Dimension letters (the same in every file of src/ops/):
 *   B batch (sequences or images)      N tokens per sequence (T for text)
 *   R rows = sum of tokens over the batch (activations are (R, C) row-major)
 *   C width                            NH heads, HS head size (C = NH * HS)
 *   I MLP width                        P patch size, S image size
 *   K classes / reduction length       D embedding dim
 *   RK LoRA rank
 *
 * Conventions: signature order is outputs, saved-for-backward, inputs, weights, dims. A saved
 * pointer may be NULL when no backward will follow (inference). Backward: input gradients
 * first, then dout, then the saved tensors, then weights, dims; every gradient ACCUMULATES
 * (+=, the caller zeroes), and a NULL gradient pointer means "not needed" (a frozen weight
 * costs no weight-gradient GEMM). Weight-gradient reductions over rows run in a fixed order,
 * so gradients, like outputs, never depend on the thread count. Kernels run their own OpenMP
 * loops and call the GEMM seam (gemm.c), which runs OpenBLAS on the same libgomp pool; results
 * never depend on the thread count (no reduction is split across threads).
 */
#ifndef MEDVLM_OPS_H
#define MEDVLM_OPS_H

#include "../core/core.h"

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#include <immintrin.h>
/* 16 rows of 16 floats transposed in registers (r[i] lane j becomes r[j] lane i): the packing
 * of the GEMMs and attention's transposes share it. Unpack pairs of rows, shuffle lanes within
 * 128-bit quarters, then gather the quarters of the four row groups. */
__attribute__((target("avx512f"), always_inline)) static inline void mv_transpose16(__m512 r[16])
{
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) { /* lane L of r[4i + j]: column 4L + j of rows 4i .. 4i+3 */
        r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
    }
    for (int j = 0; j < 4; j++) { /* gather lane L of the four row groups: column 4L + j */
        __m512 t0 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88);
        __m512 t1 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xdd);
        __m512 t2 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88);
        __m512 t3 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xdd);
        t[j] = _mm512_shuffle_f32x4(t0, t2, 0x88);
        t[8 + j] = _mm512_shuffle_f32x4(t0, t2, 0xdd);
        t[4 + j] = _mm512_shuffle_f32x4(t1, t3, 0x88);
        t[12 + j] = _mm512_shuffle_f32x4(t1, t3, 0xdd);
    }
    for (int i = 0; i < 16; i++) r[i] = t[i];
}

/* Write a 12 x 32 register tile (row r in c0[r], c1[r]) to C (row stride ldc), its first m
 * rows and n columns: C = C + alpha acc after the first slice of a product; on the first,
 * (beta C + bs bias) + alpha acc, where beta = 0 does not read C, beta = 1 does not scale it and
 * a NULL bias adds nothing (see gemm_packed.c's tile_out, the same operations one by one). */
__attribute__((target("avx512f"), always_inline)) static inline void
mv_tile_store12x32(const __m512 *c0, const __m512 *c1, float *C, int ldc, int m, int n, float alpha,
                   float beta, int first, const float *bias, float bs)
{
    __mmask16 k0 = (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1);
    __mmask16 k1 = (__mmask16)(n >= 32 ? 0xffff : n > 16 ? (1u << (n - 16)) - 1 : 0);
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    int mode = !first ? 0 : beta == 1.0f ? 3 : beta == 0.0f ? 1 : 2;
    int hb = first && bias;
    __m512 bt0 = _mm512_setzero_ps(), bt1 = bt0;
    if (hb) { /* scaled unless bs = 1 */
        bt0 = _mm512_maskz_loadu_ps(k0, bias), bt1 = _mm512_maskz_loadu_ps(k1, bias + 16);
        if (bs != 1.0f) {
            bt0 = _mm512_mul_ps(_mm512_set1_ps(bs), bt0);
            bt1 = _mm512_mul_ps(_mm512_set1_ps(bs), bt1);
        }
    }
#pragma GCC unroll 12
    for (int r = 0; r < 12; r++) {
        if (r >= m) break;
        float *o = C + (size_t)r * ldc;
        __m512 t0 = _mm512_mul_ps(va, c0[r]), t1 = _mm512_mul_ps(va, c1[r]);
        if (mode != 1) {
            __m512 o0 = _mm512_maskz_loadu_ps(k0, o), o1 = _mm512_maskz_loadu_ps(k1, o + 16);
            if (mode == 2) {
                o0 = _mm512_mul_ps(vb, o0);
                o1 = _mm512_mul_ps(vb, o1);
            }
            if (hb) {
                o0 = _mm512_add_ps(o0, bt0);
                o1 = _mm512_add_ps(o1, bt1);
            }
            t0 = _mm512_add_ps(o0, t0);
            t1 = _mm512_add_ps(o1, t1);
        } else if (hb) {
            t0 = _mm512_add_ps(bt0, t0);
            t1 = _mm512_add_ps(bt1, t1);
        }
        _mm512_mask_storeu_ps(o, k0, t0);
        _mm512_mask_storeu_ps(o + 16, k1, t1);
    }
}
#endif

/* ---- threads.c: per-thread scratch ---- */

/* The kernels' per-thread buffers, one slot each. */
enum mv_scratch_slot { MV_SCRATCH_GEMM, MV_SCRATCH_GEMM_BF16, MV_SCRATCH_N };
/* The calling thread's buffer of `bytes` (64-byte aligned) in `slot`, made on the thread's
 * first use and kept until the thread ends (a pthread key's destructor frees it), so the steady
 * state allocates nothing; NULL when it cannot be had. A slot is always asked for the same
 * size. */
void *mv_thread_scratch(enum mv_scratch_slot slot, size_t bytes);

/* ---- gemm.c: the one GEMM seam (OpenBLAS today), row-major ---- */

/* gemm_skinny.c: C (M, N) = alpha * A (M, K) B^T + beta * C with B (N, K), for few rows
 * (batch-1 inference): reads B in place, no packing; each element is one dot product in a
 * fixed order (AVX-512 or AVX2+FMA where the CPU has it), so rows never depend on M or on
 * threads.
 * mv_gemm_skinny_portable: the same order in plain C as the fast path this CPU runs (16 lanes
 * with AVX-512, 8 with AVX2; the fast path must match it bit for bit). */
void mv_gemm_skinny(int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                    int ldb, float beta, float *C, int ldc);
/* 1 when a fast (AVX-512, or AVX2+FMA) path runs on this CPU; mv_gemm uses the kernel only
 * then. */
int mv_gemm_skinny_available(void);
/* The fast path this CPU runs: 2 AVX-512 (16 lanes), 1 AVX2 + FMA (8 lanes), 0 none. */
int mv_gemm_skinny_best(void);
/* mv_gemm_skinny on fast path `path` (clamped to 0 .. mv_gemm_skinny_best(), so that tests check
 * each path on a CPU that has a faster one); portable: that path's order in plain C. */
void mv_gemm_skinny_at(int path, int portable, int M, int N, int K, float alpha, const float *A,
                       int lda, const float *B, int ldb, float beta, float *C, int ldc);
void mv_gemm_skinny_portable(int M, int N, int K, float alpha, const float *A, int lda,
                             const float *B, int ldb, float beta, float *C, int ldc);

/* gemm_packed.c: the same contract as mv_gemm (op(A), op(B) as below), on the calling thread:
 * packed panels and an AVX-512 12 x 32 register tile; the panels are one buffer per thread
 * (~3.2 MB of address space, ~1.7 MB touched; made on the thread's first call). Each element's
 * arithmetic does not depend on M, N, its position or a split of the rows or columns, so split
 * products are bit-identical to whole ones. mv_gemm_packed_portable: the same arithmetic in
 * plain C (fmaf), the oracle of the AVX-512 path. Both return 0, or -1 (nothing written) when
 * the panels could not be allocated. */
int mv_gemm_packed_available(void); /* 1 when the CPU has AVX-512F */
int mv_gemm_packed(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc);
int mv_gemm_packed_portable(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                            int lda, const float *B, int ldb, float beta, float *C, int ldc);
/* The same on an OpenMP team of T threads (call it outside a parallel region): each packed
 * panel of op(B) is packed once and shared, row blocks are taken first come first served and
 * no barrier separates the panels, so a thread slowed by another process takes less work
 * (a product of up to 64 rows from a weight packed at load is split by columns instead).
 * Bit-identical to the calls above for every T. A bias (N, or NULL) joins the product's first
 * pass: C = alpha op(A) op(B) + bs bias (beta = 0), or C = (C + bs bias) + alpha op(A) op(B)
 * (beta = 1), each element with the bits of filling or adding the bias first and then calling
 * the product (bs = 1 adds bias as it is). portable: the plain-C path. */
int mv_gemm_packed_team(int portable, int T, int ta, int tb, int M, int N, int K, float alpha,
                        const float *A, int lda, const float *B, int ldb, float beta, float *C,
                        int ldc, const float *bias, float bs);
/* A linear layer's weight W (N, K) packed once (at load) into the panels the kernel reads for
 * op(B) = W^T, in the order the products visit them: for each 1536-column panel, each 256-deep
 * slice as 32-column micro-panels (k-major, columns past N zero). mv_gemm_packed_weight_floats:
 * its size, N rounded up to 32 times K floats (0 when N or K < 1); dst is 64-byte aligned.
 * mv_gemm_packed_team_w: mv_gemm_packed_team(portable, T, 0, 1, M, N, K, ...) with op(B) read
 * from Wp instead of packed from W: the same bits, minus the packing. act: -1, or an enum
 * medvlm_act applied to each tile of C as its last slice is written (mv_act_rows: the bits of
 * the product followed by mv_act_forward, without a pass of its own). */
size_t mv_gemm_packed_weight_floats(int N, int K);
void mv_gemm_pack_weight(float *dst, const float *W, int N, int K);
int mv_gemm_packed_team_w(int portable, int T, int M, int N, int K, float alpha, const float *A,
                          int lda, const float *Wp, float beta, float *C, int ldc,
                          const float *bias, float bs, int act);

/* gemm_bf16.c: the linear layer C (M, N) = alpha * A (M, K) W^T + beta * C with W (N, K) in
 * bf16, products by AVX512_BF16's vdpbf16ps (bf16 x bf16 pairs accumulated in fp32), A rounded
 * to bf16 while it is packed. Not bit-compatible with the fp32 GEMMs: the error is bf16's
 * (~2^-9 relative per operand), i.e. ~1e-2 of sum_k |A_ik| |W_jk| at worst, far less on
 * average.
 *
 * The weight, converted once (round to nearest even, denormals to zero, NaN kept NaN) into the
 * layout the kernel reads: panels of 32 output features, each (K2 = ceil(K/2) k pairs, 32
 * features, 2) bf16, zero-padded. Memory: 2 bytes per weight (N rounded up to 32, K to even)
 * against 4 for fp32, e.g. 1.18 MB for a 768 x 768 layer, 4.7 MB for 3072 x 768 (fp32: 2.36
 * and 9.4 MB); ViT-B/32's vision tower (85 M weights in its linear layers) 170 MB. The struct
 * owns data (64-byte aligned); it is read-only after the pack and may be shared by threads. */
struct mv_bf16_weight {
    uint16_t *data; /* (panels, K2, 32, 2) bf16: [p][kp][c][h] = W[32 p + c][2 kp + h] */
    int N, K;       /* output and input features */
    int K2;         /* k pairs, ceil(K / 2) */
    int panels;     /* 32-feature panels, ceil(N / 32) */
};
/* W (N, K) row-major fp32 (as Hugging Face stores a linear layer) into *w; MEDVLM_OK, or
 * MEDVLM_ERR_ARG (N or K < 1), _OVERFLOW, _NOMEM with *w zeroed. Free with mv_bf16_weight_free
 * (NULL or a zeroed struct is fine). */
enum medvlm_status mv_bf16_weight_pack(struct mv_bf16_weight *w, const float *W, int N, int K);
/* The same for the matrix whose transpose W (K, N) holds: the packed (N, K) matrix is W^T.
 * Training's input gradient dX = dY W is dY (W^T)^T: W^T packed this way is its weight. */
enum medvlm_status mv_bf16_weight_pack_trans(struct mv_bf16_weight *w, const float *W, int N,
                                             int K);
/* Convert W again into a packed weight's existing panels (the same N, K; trans as the pack
 * that made it): after W changed (training with bf16 products keeps W in fp32 and refills its
 * panels after each update). Allocates nothing. */
void mv_bf16_weight_refill(const struct mv_bf16_weight *w, const float *W, int trans);
void mv_bf16_weight_free(struct mv_bf16_weight *w);
/* 1 when the CPU has AVX-512F and AVX512_BF16 (mv_gemm_bf16 then runs vdpbf16ps). */
int mv_gemm_bf16_available(void);
/* C (M, N) = alpha * A W^T + beta * C, A (M, W->K) with row stride lda, C row stride ldc (beta
 * = 0: C is not read). On an OpenMP team of T threads (call it outside a parallel region; T = 1
 * runs on the calling thread): (row block, column block) items taken first come first served;
 * each element's arithmetic is fixed (for each 256-deep slice of k in order, a vdpbf16ps chain
 * from 0, then C = alpha acc + beta C, or C += alpha acc), so the bits do not depend on T, M or
 * who computed what. A per-thread A block (72 KB) is made on a thread's first call and kept
 * until the thread ends; nothing else is allocated. Returns 0, or -1 (nothing written) when W
 * is empty or a block could not be allocated. mv_gemm_bf16_portable: the same bits in plain C
 * (exact emulation of vdpbf16ps, below), the oracle of the AVX-512 path, on any CPU. */
int mv_gemm_bf16(int T, int M, const float *A, int lda, const struct mv_bf16_weight *W, float alpha,
                 float beta, float *C, int ldc);
int mv_gemm_bf16_portable(int T, int M, const float *A, int lda, const struct mv_bf16_weight *W,
                          float alpha, float beta, float *C, int ldc);
/* bf16 numbers (the exact inverse is io.h's mv_bf16_to_f32): the conversion vcvtne2ps2bf16
 * does (nearest even; zero and denormals to a zero of their sign; inf kept; NaN quiet NaN), and
 * one lane of vdpbf16ps:
 * acc = fma(a.hi, b.hi, acc), then acc = fma(a.lo, b.lo, acc) (hi = bits 16..31), each rounded
 * to nearest even, denormal inputs read as zero, tiny results (judged after rounding) flushed
 * to a zero of their sign. */
uint16_t mv_bf16_from_f32(float x);
float mv_bf16_dot2_portable(float acc, uint32_t a, uint32_t b);

/* C (M, N) = alpha * op(A) op(B) + beta * C; op(A) is (M, K): A is (K, M) when ta;
 * op(B) is (K, N): B is (N, K) when tb. lda/ldb/ldc are row strides in floats. */
void mv_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc);
/* One OpenBLAS call on the calling thread, always the same kernel path: for kernels that
 * run their own parallel loop over many small products (attention). */
void mv_gemm_serial(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc);
/* 1 (default): medvlm splits the GEMMs across threads so that results do not depend on the
 * thread count; 0: OpenBLAS's own threading (results change in the last bits). For benchmarks.
 */
void mv_gemm_set_mode(int deterministic);
/* GEMMs with at most this many rows use gemm_skinny.c (default 64; 0: never). Benchmarks. */
void mv_gemm_set_skinny(int max_rows);
/* The backend of the products: MV_GEMM_AUTO (default) runs gemm_packed.c where the CPU has
 * AVX-512F and OpenBLAS runs no AVX2/AVX-512 kernel (its core name is not Haswell, Zen,
 * SkylakeX, Cooperlake or SapphireRapids), else OpenBLAS. For benchmarks and tests. */
enum mv_gemm_backend { MV_GEMM_AUTO, MV_GEMM_OPENBLAS, MV_GEMM_PACKED };
void mv_gemm_set_backend(enum mv_gemm_backend b);
/* The backend in use ("openblas <core>" or "packed avx512"), for reports. */
const char *mv_gemm_backend_name(void);
/* Same contract, plain loops with double accumulators: the oracle for tests. */
void mv_gemm_naive(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc);

/* out (R, O) = alpha * (inp (R, I) w^T) + alpha * b: a linear layer x W^T + b with W (O, I).
 * The bias is written first and the product accumulated onto it (one GEMM, beta = 1);
 * alpha folds a following scale (attention's head_dim^-0.5) into the same pass. wp: W packed
 * by mv_gemm_pack_weight (NULL: none), read instead of w by the packed team from 32 rows on:
 * the bits of the packed team on w (fewer rows run the skinny kernel on w, and w is read when
 * the team's panels cannot be had). */
void mv_linear_forward(float *out, const float *inp, const float *w, const float *wp,
                       const float *b, float alpha, int R, int I, int O);
/* x (R, O) += inp (R, I) w^T + b: the residual branch of a transformer layer, in place. */
void mv_linear_residual_forward(float *x, const float *inp, const float *w, const float *wp,
                                const float *b, int R, int I, int O);
/* 1 when mv_gemm runs the packed kernel on this CPU (so a weight packed at load is read). */
int mv_gemm_packed_on(void);
/* out = act(alpha (inp w^T + b)): mv_linear_forward followed by mv_act_forward, bit for bit;
 * 1 when the activation joined the product (a weight packed at load, from 32 rows), else 0
 * with only the linear layer done (the caller then runs mv_act_forward). */
int mv_linear_forward_act(float *out, const float *inp, const float *w, const float *wp,
                          const float *b, float alpha, int R, int I, int O, enum medvlm_act act);
/* mv_linear_forward(_act) and mv_linear_residual_forward for R rows taken out of a product of
 * as_rows rows: the kernel is the one that product runs, and every kernel computes a row
 * independently of the others, so each row gets the bits it gets in the whole product
 * (medvlm's packed and skinny kernels; OpenBLAS, the route on CPUs where it has fast kernels,
 * runs other kernels on its edge tiles: there the rows agree to float rounding). For a
 * transformer's last layer when only its pooled rows are wanted. */
void mv_linear_forward_as(float *out, const float *inp, const float *w, const float *wp,
                          const float *b, float alpha, int R, int I, int O, int as_rows);
int mv_linear_forward_act_as(float *out, const float *inp, const float *w, const float *wp,
                             const float *b, float alpha, int R, int I, int O, enum medvlm_act act,
                             int as_rows);
void mv_linear_residual_forward_as(float *x, const float *inp, const float *w, const float *wp,
                                   const float *b, int R, int I, int O, int as_rows);
/* The two forms above with the weight in bf16 (mv_gemm_bf16: activations rounded to bf16,
 * fp32 accumulation): out = alpha (inp wb^T + b), x += inp wb^T + b, the bias added in fp32 as
 * above. w (O, I) fp32 is read only when the bf16 kernel's blocks cannot be had (then the fp32
 * path runs). */
void mv_linear_forward_bf16(float *out, const float *inp, const struct mv_bf16_weight *wb,
                            const float *w, const float *b, float alpha, int R, int I, int O);
void mv_linear_residual_forward_bf16(float *x, const float *inp, const struct mv_bf16_weight *wb,
                                     const float *w, const float *b, int R, int I, int O);
void mv_linear_forward_naive(float *out, const float *inp, const float *w, const float *b,
                             float alpha, int R, int I, int O);
/* Backward of out = alpha * (inp w^T + b) (and of the residual form, alpha = 1):
 * dinp (R, I) += alpha * dout w; dw (O, I) += alpha * dout^T inp; db (O) += alpha * sum_r dout.
 * Any of dinp, dw, db may be NULL. dout (R, O), inp (R, I), w (O, I). */
void mv_linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, float alpha, int R, int I, int O);
/* The same with dinp written (=) instead of accumulated: the first gradient into a buffer
 * needs no zeroing pass (its GEMM runs with beta = 0). dinp may be NULL. */
void mv_linear_backward_set(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                            const float *w, float alpha, int R, int I, int O);
/* The input gradient of the backward above with the weight in bf16 (training at bf16
 * precision): dinp (R, I) = alpha * dout w (set), or += (not set), by mv_gemm_bf16 with wt =
 * w^T packed (mv_bf16_weight_pack_trans(wt, w, I, O)): dout rounded to bf16, fp32
 * accumulation. w (O, I) fp32 is read only when the bf16 kernel's blocks cannot be had. */
void mv_linear_input_grad_bf16(float *dinp, int set, const float *dout,
                               const struct mv_bf16_weight *wt, const float *w, float alpha, int R,
                               int I, int O);
void mv_linear_backward_naive(float *dinp, float *dw, float *db, const float *dout,
                              const float *inp, const float *w, float alpha, int R, int I, int O);

/* LoRA beside a linear layer: out (R, O) += alpha * (inp A^T) B^T with A (RK, I), B (O, RK);
 * u (R, RK) = inp A^T is written (saved for backward). alpha is peft's lora_alpha / RK times
 * any scale folded into the layer (attention's HS^-0.5 for q). */
void mv_lora_forward(float *out, float *u, const float *inp, const float *A, const float *B,
                     float alpha, int R, int I, int O, int RK);
/* Its backward: dB (O, RK) += alpha * dout^T u; du (R, RK) = alpha * dout B (scratch, written);
 * dA (RK, I) += du^T inp; dinp (R, I) += du A. dA, dB, dinp may be NULL (du is then still
 * needed when dA or dinp is wanted). */
void mv_lora_backward(float *dinp, float *dA, float *dB, float *du, const float *dout,
                      const float *u, const float *inp, const float *A, const float *B, float alpha,
                      int R, int I, int O, int RK);

/* ---- activation.c ---- */

/* x (R, I) = act(x) in place; quick_gelu x*sigmoid(1.702x) or exact gelu 0.5x(1+erf(x/sqrt2)).
 */
void mv_act_forward(float *x, enum medvlm_act act, size_t n);
void mv_act_forward_naive(float *x, enum medvlm_act act, size_t n);
/* act on m rows of n floats, row stride ldc, in place: each element the bits of
 * mv_act_forward (a product's epilogue runs it on each finished tile while it is in cache). */
void mv_act_rows(float *C, int ldc, int m, int n, enum medvlm_act act);
/* out (n) = act(inp) out of place (the backward pass recomputes the MLP hidden layer from the
 * saved pre-activation instead of storing it): the same bits as mv_act_forward. */
void mv_act_forward_copy(float *out, const float *inp, enum medvlm_act act, size_t n);
/* dinp (n) += dout * act'(inp), inp the saved pre-activation. dinp must not alias dout. */
void mv_act_backward(float *dinp, const float *dout, const float *inp, enum medvlm_act act,
                     size_t n);
void mv_act_backward_naive(float *dinp, const float *dout, const float *inp, enum medvlm_act act,
                           size_t n);
/* dinp (n) = dout * act'(inp), written: the bits of zeroing dinp, then mv_act_backward, without
 * the zeroing pass. dinp may alias dout. */
void mv_act_backward_set(float *dinp, const float *dout, const float *inp, enum medvlm_act act,
                         size_t n);
/* x (n) = exp(x) in place, vectorised (relative error ~1e-7), exactly 0 below -87.3 (and
 * for -inf), clamped at 88. */
void mv_exp_span(float *x, size_t n);

/* ---- layernorm.c ---- */

/* out (R, C) = (inp - mean) / sqrt(var + eps) * w + b per row, biased variance, statistics
 * in double. mean, rstd (R) are saved for backward (NULL: not saved). out may alias inp. */
void mv_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                          const float *b, int R, int C, float eps);
void mv_layernorm_forward_naive(float *out, float *mean, float *rstd, const float *inp,
                                const float *w, const float *b, int R, int C, float eps);
/* Backward from the saved statistics (the normalised rows are recomputed, not stored):
 * xhat = (inp - mean) * rstd; dinp (R, C) += rstd * (g - mean(g) - xhat * mean(g * xhat))
 * with g = dout * w; dw (C) += sum_r dout * xhat; db (C) += sum_r dout. dinp, dw, db may each
 * be NULL. dinp must not alias dout or inp. */
void mv_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                           const float *mean, const float *rstd, const float *w, int R, int C);
void mv_layernorm_backward_naive(float *dinp, float *dw, float *db, const float *dout,
                                 const float *inp, const float *mean, const float *rstd,
                                 const float *w, int R, int C);

/* ---- attention.c ---- */

/* The batch's sequences as row spans of the (R, C) activations. */
struct mv_seqs {
    int B;
    const int *off;      /* (B) first row of sequence b */
    const int *len;      /* (B) its length N_b */
    const int64_t *mask; /* (B, mask_stride) key padding mask (0 = masked) or NULL */
    int mask_stride;
    int causal; /* 1: query i sees keys j <= i only */
};

/* Floats of the saved probabilities for seqs: NH * sum_b N_b^2. */
size_t mv_attention_att_size(const struct mv_seqs *s, int NH);
/* Scaled dot-product attention per (sequence, head), in parallel over them.
 * out (R, C); att (NH * sum N_b^2) softmax probabilities, saved for backward (required: it is
 * also the scratch); q (R, C) already scaled by HS^-0.5, k, v (R, C); head h is columns
 * [h*HS, (h+1)*HS). Masked scores get float32 min added once per mask (causal, padding), as
 * Hugging Face does, then softmax with max subtraction. */
void mv_attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                          const struct mv_seqs *s, int NH, int HS);
void mv_attention_forward_naive(float *out, float *att, const float *q, const float *k,
                                const float *v, const struct mv_seqs *s, int NH, int HS);
/* Backward through the saved probabilities att (softmax backward: dS = P * (dP - rowsum(dP *
 * P))): dq, dk, dv (R, C) += the gradients w.r.t. the (already scaled) q and k, v; datt is
 * scratch of att's size (written). dout (R, C). Masked keys have P = 0, hence no gradient. */
void mv_attention_backward(float *dq, float *dk, float *dv, float *datt, const float *dout,
                           const float *att, const float *q, const float *k, const float *v,
                           const struct mv_seqs *s, int NH, int HS);
void mv_attention_backward_naive(float *dq, float *dk, float *dv, float *datt, const float *dout,
                                 const float *att, const float *q, const float *k, const float *v,
                                 const struct mv_seqs *s, int NH, int HS);
/* The same with dq, dk, dv written (=) instead of accumulated: the bits of zeroing them, then
 * mv_attention_backward, without the zeroing passes (each (row, head) block belongs to one
 * pair). */
void mv_attention_backward_set(float *dq, float *dk, float *dv, float *datt, const float *dout,
                               const float *att, const float *q, const float *k, const float *v,
                               const struct mv_seqs *s, int NH, int HS);
/* The fused short-sequence path (pairs with NP * HS <= 16384, NP = N rounded up to 16) runs
 * with AVX-512 where the CPU has it (1 from mv_attention_fused_available), else the general
 * path. The _portable forms
 * run the fused path's arithmetic in plain C (fmaf, the same lane sums): the same bits as the
 * AVX-512 code, its oracle in tests; longer pairs take the general path in both. */
int mv_attention_fused_available(void);
void mv_attention_forward_portable(float *out, float *att, const float *q, const float *k,
                                   const float *v, const struct mv_seqs *s, int NH, int HS);
void mv_attention_backward_portable(float *dq, float *dk, float *dv, float *datt, const float *dout,
                                    const float *att, const float *q, const float *k,
                                    const float *v, const struct mv_seqs *s, int NH, int HS);

/* ---- loss.c: softmax, l2-normalise, CLIP contrastive loss ---- */

/* out (R, K) = softmax(inp) per row (max subtraction, double sums); out may alias inp. */
void mv_softmax_forward(float *out, const float *inp, int R, int K);
/* out (R, D) = inp / ||inp||_2 per row; norm (R) saved (NULL: not saved); out may alias. */
void mv_l2norm_forward(float *out, float *norm, const float *inp, int R, int D);
/* dinp (R, D) += (dout - out * <out, dout>) / norm per row, out = inp / norm the forward's
 * output and norm (R) its saved norms. */
void mv_l2norm_backward(float *dinp, const float *dout, const float *out, const float *norm, int R,
                        int D);
/* The cross-entropy, one implementation for fine-tuning's head and every adapter, log_softmax
 * with max subtraction. Mean over R rows of logits (R, K) against labels (R); with dlogits (not
 * NULL) also writes dlogits = (softmax - onehot) / R. */
double mv_cross_entropy(float *dlogits, const float *logits, const int64_t *labels, int R, int K);
/* The sum (not the mean) over the R rows, and dlogits = (softmax - onehot) gscale: one part
 * of a batch whose mean is taken later. With dlogits the max is taken in float and the
 * exponentials are the vectorised mv_exp_span's (within ~2 ulps of expf; K = 4 runs two rows
 * per AVX2 vector), their sums in double; without, the value alone is computed in double. */
double mv_cross_entropy_sum(float *dlogits, const float *logits, const int64_t *labels, int R,
                            int K, float gscale);
/* Only mv_cross_entropy_sum's dlogits (the same bits), for a caller that does not need the
 * value. */
void mv_cross_entropy_grad(float *dlogits, const float *logits, const int64_t *labels, int R, int K,
                           float gscale);
/* The naive sibling, everything in double: returns the sum over rows and, with dlogits,
 * writes (softmax - onehot) gscale. */
double mv_cross_entropy_naive(float *dlogits, const float *logits, const int64_t *labels, int R,
                              int K, float gscale);
/* CLIP loss of a square logits_per_image (B, B): (CE(rows, arange) + CE(columns, arange)) / 2.
 */
double mv_clip_loss_forward(const float *logits_per_image, int B);

/* ---- small.c: products and vector kernels for few-shot shapes ---- */

/* Plain loops, and AVX2+FMA versions where the CPU has them (mv_kernels_simd). Each product
 * element and each dot is accumulated one way (one 8-lane FMA chain over the 8-float chunks in
 * order, a fixed horizontal sum, then the tail), however rows and columns are blocked, so a
 * split over threads gives the same bits as one thread. */

/* 1 when the AVX2+FMA versions run (mv_cpu_has AVX2 and FMA). */
int mv_kernels_simd(void);
/* C (M, N) = A (M, L) Bm (N, L)^T. */
void mv_mm_nt(float *C, const float *A, const float *Bm, int M, int N, int L);
/* C (M, N) += A (L, M)^T Bm (L, N). */
void mv_mm_tn_acc(float *C, const float *A, const float *Bm, int M, int N, int L);
/* Addresses to prefetch from inside the kernels' inner loops, one per iteration that issues
 * one: a cursor into a list, advanced as they go. A call issues exactly
 * mv_mm_nt_prefetches / mv_mm_tn_prefetches of them; the list must hold that many (pad it
 * with any address already in cache). */
struct mv_prefetch {
    const void *const *at;
};
long mv_mm_nt_prefetches(int M, int N, int L);
long mv_mm_tn_prefetches(int M, int N, int L);
/* The same products with the row operand given as row pointers: Arows (M) rows of L floats;
 * Brows (L) rows of N floats. mv_mm_tn_rows overwrites C (mv_mm_tn_acc_rows onto zeros,
 * without the zeroing). pf: the prefetch cursor, or NULL. */
void mv_mm_nt_rows(float *C, const float *const *Arows, const float *Bm, int M, int N, int L,
                   struct mv_prefetch *pf);
void mv_mm_tn_acc_rows(float *C, const float *A, const float *const *Brows, int M, int N, int L);
void mv_mm_tn_rows(float *C, const float *A, const float *const *Brows, int M, int N, int L,
                   struct mv_prefetch *pf);
/* The plain-loop siblings (a test compares them). */
void mv_mm_nt_ref(float *C, const float *A, const float *Bm, int M, int N, int L);
void mv_mm_tn_acc_ref(float *C, const float *A, const float *Bm, int M, int N, int L);
/* dot(a, b), sum (a - b)^2, dst += a x + b y, dst = a x + b y (the bits of mv_axpby_acc
 * onto zeros) over L floats. */
float mv_dot(const float *a, const float *b, int L);
float mv_sqdist(const float *a, const float *b, int L);
void mv_axpby_acc(float *dst, float a, const float *x, float b, const float *y, int L);
void mv_axpby(float *dst, float a, const float *x, float b, const float *y, int L);
/* sum (a - b)^2 accumulated in double, in order. */
double mv_sqdist_f64(const float *a, const float *b, int L);
float mv_dot_ref(const float *a, const float *b, int L);
float mv_sqdist_ref(const float *a, const float *b, int L);
void mv_axpby_acc_ref(float *dst, float a, const float *x, float b, const float *y, int L);
void mv_axpby_ref(float *dst, float a, const float *x, float b, const float *y, int L);
/* out (K) = sum_b A_bk Bm_bk for A, Bm (B, K), accumulated in acc (K) in double, in row order
 * (the prototype adapters' W_k . G_k from the forward pass's raw dot products). */
void mv_coldot(float *out, double *acc, const float *A, const float *Bm, int B, int K);
/* The prototype trainer's update of one class row, in one pass, for SGD with momentum after
 * its first step: the bits of, in turn,
 *   dW = a G + b Weff (mv_axpby);  CLAP: dW += f W - f zs (mv_axpby_acc);
 *   buf = mom buf + damp dW;  W -= lr buf (the optimizer's SGD);
 *   TaskRes: Weff = zs + alpha W (else Weff is W);  return mv_dot(Weff, Weff);
 *   CLAP with dist set: *dist = mv_sqdist(W, zs), the next step's penalty distance.
 * mv_row_update_ref: the same in plain loops (its sums are not mv_dot's and mv_sqdist's; a
 * test compares). */
struct mv_row_update {
    float a, b;
    int clap;
    float f;
    float mom, damp, lr;
    int taskres;
    float alpha;
    float *dist; /* CLAP: receives |W - zs|^2 of the updated row; NULL: not computed */
};
float mv_row_update(const struct mv_row_update *u, float *w, float *buf, float *weff,
                    const float *g, const float *zs, int L);
float mv_row_update_ref(const struct mv_row_update *u, float *w, float *buf, float *weff,
                        const float *g, const float *zs, int L);
/* list (n * lines) = the 64-byte lines of rows base + idx[b] * stride, `lines` per row, row
 * after row: what a prefetch cursor walks. */
void mv_line_list(const void **list, const float *base, size_t stride, const int *idx, int n,
                  int lines);
/* The index of the first of x[0..n) that is not finite (NaN, +-inf), or n. */
size_t mv_first_nonfinite(const float *x, size_t n);
/* The same index, copying src to dst on the way: all n values when they are all finite. */
size_t mv_copy_first_nonfinite(float *dst, const float *src, size_t n);
/* mv_first_nonfinite and mv_mm_nt on up to `threads` threads, as the caller decided (one for
 * small inputs, inside a parallel region, or threads <= 1): the same results. */
size_t mv_first_nonfinite_par(const float *x, size_t n, int threads);
size_t mv_copy_first_nonfinite_par(float *dst, const float *src, size_t n, int threads);
void mv_mm_nt_par(float *C, const float *A, const float *Bm, int M, int N, int L, int threads);
/* raw (B, K) = the sum of np partial (B, K) arrays (stride floats apart) in order; logits =
 * raw times fac (K) by column. */
void mv_partial_logits(float *raw, float *logits, const float *parts, int np, size_t stride, int B,
                       int K, const float *fac);

/* ---- profile.c: seconds per op family (bench --profile) ---- */

enum mv_prof_op {
    MV_PROF_GEMM,
    MV_PROF_LAYERNORM,
    MV_PROF_ATTENTION,
    MV_PROF_ACT,
    MV_PROF_EMBED,
    MV_PROF_OTHER,
    MV_PROF_COUNT
};
/* Phases of a training step: ops run between mv_prof_phase_begin(ph) and _end are booked to
 * ph (outside any phase: to MV_PROF_FORWARD), and the phase's wall time is summed. */
enum mv_prof_phase { MV_PROF_FORWARD, MV_PROF_BACKWARD, MV_PROF_PHASES };
void mv_prof_enable(int on); /* on: reset the totals and start; off: stop, keep them */
double mv_prof_begin(void);
void mv_prof_end(enum mv_prof_op op, double t0);
double mv_prof_phase_begin(enum mv_prof_phase ph);
void mv_prof_phase_end(enum mv_prof_phase ph, double t0);
double mv_prof_total(enum mv_prof_op op); /* all phases */
double mv_prof_phase_total(enum mv_prof_phase ph, enum mv_prof_op op);
double mv_prof_phase_wall(enum mv_prof_phase ph);
const char *mv_prof_name(enum mv_prof_op op);

/* ---- peak.c: the CPU and its floating-point peak (bench --peak, --gemm) ---- */

/* The CPU itself (identity, features): core.h's mv_cpu_info, mv_cpu_has. */

/* Register-only loops, no memory traffic: fp32 FMA on 512-bit (AVX-512F) and 256-bit (AVX2 +
 * FMA) registers, bf16 pair dot products into fp32 (vdpbf16ps, AVX512_BF16; 2 FLOPs a pair). */
enum mv_peak_kind { MV_PEAK_FP32_ZMM, MV_PEAK_FP32_YMM, MV_PEAK_BF16_DOT, MV_PEAK_KINDS };
const char *mv_peak_name(enum mv_peak_kind kind); /* "fp32_zmm", "fp32_ymm", "bf16_dot" */
int mv_peak_available(enum mv_peak_kind kind);    /* 1 when this CPU runs that loop */
/* GFLOP/s of kind's loop on a team of `threads` OpenMP threads running it at once (call it
 * outside a parallel region): the best of several repetitions, about 0.2 s in all. 0 when the
 * CPU lacks the instructions or threads < 1. */
double mv_peak_gflops(enum mv_peak_kind kind, int threads);

/* ---- threads.c ---- */

/* Threads the kernels and OpenBLAS use (both follow libgomp's max threads). */
int mv_threads(void);
/* Before a batch (encoders, a training step): the calling thread's count for the next batches
 * set to the asked-for count (medvlm_set_threads), or fewer: the CPUs it may run on less the
 * cores other processes kept busy since the last look (at most every 0.25 s; at least one
 * thread). The speed changes, never the results. Allocates nothing. mv_threads_others: those
 * cores at the last look (0 before the second). */
void mv_threads_adapt(void);
double mv_threads_others(void);

#endif

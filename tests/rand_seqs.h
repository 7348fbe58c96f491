/*
 * rand_seqs.h - a random batch of up to 5 sequences of up to 30 tokens for the attention
 * tests (tests/unit/test_ops.c, test_ops_backward.c): lengths, row offsets, a key padding mask
 * (the first `valid` keys of each sequence), used on even-numbered pairs of iterations, and
 * the causal flag on odd iterations.
 */
#ifndef MEDVLM_RAND_SEQS_H
#define MEDVLM_RAND_SEQS_H

#include "ops/ops.h"

struct rand_seqs {
    int off[5], len[5], R;
    int64_t mask[5 * 30];
    struct mv_seqs s;
};

/* B <= 5 sequences of at most Tm <= 30 tokens for iteration `it`: every third iteration all
 * Tm long, else random lengths. */
static inline void rand_seqs_fill(struct rand_seqs *t, struct mv_rng *rng, int it, int B, int Tm)
{
    t->R = 0;
    for (int b = 0; b < B; b++) {
        t->len[b] = it % 3 == 0 ? Tm : 1 + (int)mv_rng_below(rng, (uint64_t)Tm);
        t->off[b] = t->R;
        t->R += t->len[b];
        int valid = 1 + (int)mv_rng_below(rng, (uint64_t)t->len[b]);
        for (int j = 0; j < Tm; j++) t->mask[b * Tm + j] = j < valid;
    }
    t->s = (struct mv_seqs){.B = B,
                            .off = t->off,
                            .len = t->len,
                            .mask = it % 4 < 2 ? t->mask : NULL,
                            .mask_stride = Tm,
                            .causal = it % 2};
}

/* A batch of B <= 4 sequences of N, N-3, N-6, ... tokens (at least 1; N <= 320) for the
 * fused attention path's tests: a key padding mask (masked: sequence b sees its first
 * len - 5b - 1 keys, at least 1) and the causal flag. */
struct attn_batch {
    int off[4], len[4], R;
    int64_t mask[4 * 320];
    struct mv_seqs s;
};

static inline void attn_batch_fill(struct attn_batch *t, int B, int N, int causal, int masked)
{
    t->R = 0;
    for (int b = 0; b < B; b++) {
        t->len[b] = N - 3 * b > 0 ? N - 3 * b : 1;
        t->off[b] = t->R;
        t->R += t->len[b];
        int valid = t->len[b] - 5 * b - 1 > 0 ? t->len[b] - 5 * b - 1 : 1;
        for (int j = 0; j < N; j++) t->mask[b * N + j] = j < valid;
    }
    t->s = (struct mv_seqs){.B = B,
                            .off = t->off,
                            .len = t->len,
                            .mask = masked ? t->mask : NULL,
                            .mask_stride = N,
                            .causal = causal};
}

/* The shapes: {B, N, NH, HS, causal, masked}. CLIP's image (50 tokens) and text (77, causal
 * and padding) pairs at HS 64, odd sizes around the 16-lane vectors, and two pairs too long
 * for the fused path (N * HS above its stack buffer), which take the general path. */
static const int attn_shapes[][6] = {
    {3, 50, 2, 64, 0, 0},  {2, 77, 2, 64, 1, 1},   {3, 17, 3, 80, 0, 1}, {2, 33, 2, 7, 1, 0},
    {1, 1, 1, 1, 0, 0},    {2, 16, 1, 16, 1, 1},   {4, 64, 1, 48, 0, 1}, {2, 5, 2, 130, 1, 1},
    {1, 300, 2, 64, 0, 1}, {1, 129, 1, 128, 1, 0},
};
#define ATTN_SHAPES ((int)(sizeof attn_shapes / sizeof attn_shapes[0]))

#endif

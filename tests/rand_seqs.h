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

#endif

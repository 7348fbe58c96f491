/*
 * finetune.c - a data-parallel fine-tuning step: every rank holds the same parameters and
 * optimiser state, computes the gradient of its slice of the global batch, and the slices'
 * gradients are summed in a fixed order before the same update runs on every rank.
 *
 * The gradient of the global batch of B images is the mean over its images. Rank r takes the
 * slice [B r / N, B (r+1) / N) of n_r images; medvlm_peft_backward gives the mean over the
 * slice, g_r, so the global gradient is sum_r (n_r / B) g_r. The sum runs over a fixed binary
 * tree: at level s = 1, 2, 4, ... rank r (r a multiple of 2s) adds rank r + s's partial sum to
 * its own, so rank 0 ends with ((g_0 + g_1) + (g_2 + g_3)) + ...; the result is broadcast.
 * For a given N the bits never depend on timing or on the MPI library's choice of reduction
 * algorithm (MPI_Allreduce promises neither). Across N the sum is regrouped (and each slice's
 * forward runs with another batch size), so N ranks follow one process's trajectory within
 * float rounding, not bit for bit; N = 1 is medvlm_peft_step itself.
 *
 * What moves per step: the trained tensors' gradient, log2(N) messages deep up the tree and
 * one broadcast down (LoRA r = 4 on q, k, v of ViT-B/32: 221,184 floats, 0.9 MB).
 */
#include "dist.h"

#include "../peft/peft.h"

#include <string.h>

#ifdef MEDVLM_MPI
#include <mpi.h>

/* The step's scratch (the partner's gradient, the ranks' losses): allocated by the first step,
 * grown only if a later one needs more, kept for the life of the process. */
static void *scratch(size_t bytes)
{
    static void *buf;
    static size_t cap;
    if (bytes <= cap) return buf;
    void *nb = mv_malloc(bytes);
    if (!nb) return NULL;
    mv_free(buf);
    buf = nb;
    cap = bytes;
    return buf;
}

/* Add rank `from`'s n floats into g (tmp: n floats of scratch), in messages of 2^26 floats. */
static void tree_recv_add(float *g, float *tmp, size_t n, int from)
{
    const size_t chunk = (size_t)1 << 26;
    for (size_t i = 0; i < n; i += chunk) {
        int c = (int)MV_MIN(chunk, n - i);
        MPI_Recv(tmp, c, MPI_FLOAT, from, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        for (int j = 0; j < c; j++) g[i + (size_t)j] += tmp[j];
    }
}

static void chunked(float *g, size_t n, int peer, int send)
{
    const size_t chunk = (size_t)1 << 26;
    for (size_t i = 0; i < n; i += chunk) {
        int c = (int)MV_MIN(chunk, n - i);
        if (send)
            MPI_Send(g + i, c, MPI_FLOAT, peer, 7, MPI_COMM_WORLD);
        else
            MPI_Bcast(g + i, c, MPI_FLOAT, 0, MPI_COMM_WORLD);
    }
}

enum medvlm_status mv_dist_peft_step(struct medvlm_peft *p, const float *pixels,
                                     const int64_t *labels, int B, float *loss)
{
    const int rank = mv_dist_rank(), N = mv_dist_size();
    if (N == 1) return medvlm_peft_step(p, pixels, labels, B, loss);
    if (!p || !pixels || !labels || B < 1)
        return mv_err(MEDVLM_ERR_ARG, "data-parallel step: NULL argument or batch %d", B);
    const int first = (int)((long long)B * rank / N), last = (int)((long long)B * (rank + 1) / N);
    const int nr = last - first;
    const struct medvlm_tower_config *c = &p->tower.cfg;
    const size_t per = 3 * (size_t)c->image_size * (size_t)c->image_size;
    float mine = 0;
    if (nr > 0) {
        enum medvlm_status st =
            medvlm_peft_backward(p, pixels + (size_t)first * per, labels + first, nr, &mine);
        if (st) return st;
        const float w = (float)nr / (float)B;
        for (size_t i = 0; i < p->n; i++) p->grads[i] *= w;
    } else {
        memset(p->grads, 0, p->n * sizeof(float));
    }
    /* the fixed tree: up to rank 0, then everyone gets rank 0's sum */
    const size_t chunk = MV_MIN(p->n, (size_t)1 << 26);
    double *parts = scratch((size_t)N * sizeof(double) + chunk * sizeof(float)); /* (N) */
    if (!parts) return MEDVLM_ERR_NOMEM;
    float *tmp = (float *)(void *)(parts + N); /* (chunk) */
    for (int s = 1; s < N; s <<= 1) {
        if (rank % (2 * s) == 0) {
            if (rank + s < N) tree_recv_add(p->grads, tmp, p->n, rank + s);
        } else {
            chunked(p->grads, p->n, rank - s, 1);
            break;
        }
    }
    chunked(p->grads, p->n, 0, 0);
    /* the global mean loss, summed in rank order on every rank */
    double part = (double)mine * nr;
    MPI_Allgather(&part, 1, MPI_DOUBLE, parts, 1, MPI_DOUBLE, MPI_COMM_WORLD);
    double total = 0;
    for (int r = 0; r < N; r++) total += parts[r];
    if (loss) *loss = (float)(total / B);
    mv_peft_update(p);
    return MEDVLM_OK;
}

#else /* built without MPI: one process */

enum medvlm_status mv_dist_peft_step(struct medvlm_peft *p, const float *pixels,
                                     const int64_t *labels, int B, float *loss)
{
    return medvlm_peft_step(p, pixels, labels, B, loss);
}

#endif

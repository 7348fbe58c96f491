/*
 * train_proto.c - the training loop of train.c for the prototype methods (lp, zslp, clap,
 * taskres: one weight row per class, cosine logits, see proto.c), spread over threads.
 *
 * Glossary: B batch rows, N training rows, D feature dim, K classes, NB column blocks.
 *
 * On the tutorial's shapes (B = 32, K = 4, D = 512) a step is two tiny matrix products, and
 * with thousands of training rows most of its time goes to reading B shuffled feature rows
 * (64 KB) from memory: one core cannot draw that fast, two draw well over twice as much.
 * So the feature columns are cut in NB blocks (D / 256 of them, multiples of 8 wide) and
 * each thread owns whole blocks: their columns of every batch row, and their columns of
 * the prototypes, gradients and optimizer state, in private contiguous (K, width) copies.
 * Only sums of K or B x K numbers cross between threads, and a step has one barrier:
 *
 *   A. each block: its partial dot products x_b . w_k (B, K) and, for CLAP, its partial
 *      |w_k - zs_k|^2 (unless the fused update of the step before gave it). -- barrier
 *   B. every thread: the raw dot products (partials summed in block order), the logits
 *      (times s / |w_k|), the cross-entropy, dlogits (B, K) and W_k . G_k = sum_b dlogits_bk
 *      raw_bk (proto.c), the same numbers everywhere; then each block:
 *      G = dlogits^T X_block (K, width), the gradient through the normalisation,
 *        dW_k = (s / r_k) (G_k - W_k (W_k . G_k) / r_k^2)   (TaskRes: dR = alpha dW),
 *      CLAP's penalty gradient, the optimizer update, and its partial |w_k|^2 (for SGD with
 *      momentum all of that in one pass per class row, mv_row_update, the same bits, which
 *      also gives CLAP's next |w_k - zs_k|^2).
 *   What B reads from other threads (partials of A, norms of the previous B) is buffered by
 *   step parity: a thread can only overwrite it two steps later, after the next barrier,
 *   which every thread passes only once done with this step.
 *
 * The blocks and the order of their sums depend on D alone, so every thread count gives
 * the bits of one thread; with one block (D < 512) the numbers are exactly those of the
 * generic loop. The row orders are train.c's shuffles, drawn one epoch ahead (the last step of
 * an epoch prefetches the first rows of the next) into an array the threads share, by the
 * threads that wait at the barriers: a few swaps at a time, so that the shuffle (~50 us for
 * 10,000 rows, a 64-bit division per swap) fills time otherwise spent spinning.
 *
 * Features that do not sit in cache are read at the memory's pace, so a block prefetches its
 * columns of the next step's rows while it computes: their cache lines, listed in the order
 * the next forward pass reads them, one per inner iteration of the forward kernel and one
 * per two of the backward kernel (struct mv_prefetch), the rest after them. Issued in one
 * burst instead, the prefetches stall the core as long as the loads would; spread, they
 * overlap the arithmetic (see BENCHMARKS.md). Such features (up to 1 GB) sit best on 2 MB
 * pages where the kernel gives them (mv_aligned_large): a step's 32 random rows lie on as
 * many 4 KB pages, nearly each a TLB miss and a page walk (two-level under a hypervisor).
 * medvlm_adapter_train copies them there as it checks them (mv_adapter_proto_stages); the
 * trainer reads the features it is given where they are. The copy costs ~1% of a 10,000-row
 * run and saves ~10%.
 *
 * The barrier makes a step as slow as the slowest core, and on a shared machine one core can
 * run at half the other's pace for seconds. So training runs in periods (an epoch, or enough
 * of them for 128 steps), the first steps of each timed, and when the faster thread alone
 * would step faster than the team it runs the next periods alone, every block in turn (see
 * next_runner). Blocks are computed the same way whoever computes them: the same bits.
 */
#include "adapters.h"

#include "../optim/optim.h"

#include <limits.h>
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#define BLOCK_MIN      256       /* columns per block at least: D / BLOCK_MIN blocks */
#define PREFETCH_ABOVE (4 << 20) /* bytes of features beyond which rows are fetched ahead */
#define COPY_BELOW     (1024.0 * 1024 * 1024) /* and up to which they are copied to huge pages */

/* A block of columns [d0, d0 + dn): private copies, contiguous (K, dn). Each block on its own
 * cache lines, like everything below that one thread writes and another reads or writes
 * beside: two cores writing one line take turns owning it, at the price of a cache miss. */
struct col_block {
    int d0, dn;
    float *w;         /* (K, dn) the trained parameter (W, or TaskRes's R) */
    float *dw;        /* (K, dn) its gradient */
    float *weff;      /* (K, dn) the effective prototypes: w, or zs + alpha R */
    float *zs;        /* (K, dn) */
    float *g;         /* (K, dn) dlogits^T X_block */
    const float **xb; /* (B) this step's rows, advanced to column d0 */
    const void **pfl; /* the lines of the next step's rows (nlines), then padding up to what
                         the kernels consume */
    long nlines;
    struct mv_prefetch pf;
    int fetching; /* this step prefetches */
    long zp_step; /* CLAP: the step whose partial |w_k - zs_k|^2 the fused update of the step
                     before has stored already, or -1 */
    struct mv_optim opt;
} __attribute__((aligned(64)));

/* The epochs' row orders, shared by the threads: epoch e reads orders[e % 3]. While it runs,
 * the next epoch's order (this one shuffled again, train.c's draws) is built in
 * orders[(e + 1) % 3] by whichever thread waits at a barrier, a few swaps at a time under a
 * lock, and finished by the first thread that needs it: the epoch's last step prefetches the
 * next epoch's first rows. A thread can lag one step behind the other, so the order of the
 * previous epoch may still be read while the next is built: hence three. */
struct shuffler {
    _Alignas(64) atomic_int lock; /* a line that the threads poll, apart from the state */
    atomic_int built;             /* the last epoch whose order is complete */
    _Alignas(64) int epoch, at;   /* under the lock: the epoch being built, where it resumes */
    struct mv_rng rng;            /* under the lock */
    int *orders;                  /* (3, N) */
    int n;
};

#define WAIT_SWAPS 8 /* a waiting thread's share at a time: ~100 cycles, then it looks again */

static int *order_of(const struct shuffler *sh, int epoch)
{
    return sh->orders + (size_t)(epoch % 3) * (size_t)sh->n;
}

enum { SHUFFLE_BUSY = -1, SHUFFLE_MORE, SHUFFLE_DONE };

/* Up to `swaps` swaps of epoch `target`'s shuffle: SHUFFLE_DONE once its order is complete
 * (and visible to the caller), SHUFFLE_MORE if swaps remain, SHUFFLE_BUSY if another thread
 * is at it (looked at without writing, so as not to pull the lock's line from under it) or
 * the previous epoch's order is not complete yet. */
static int shuffle_some(struct shuffler *sh, int target, int swaps)
{
    if (atomic_load_explicit(&sh->built, memory_order_acquire) >= target) return SHUFFLE_DONE;
    if (atomic_load_explicit(&sh->lock, memory_order_relaxed) ||
        atomic_exchange_explicit(&sh->lock, 1, memory_order_acquire))
        return SHUFFLE_BUSY;
    const int built = atomic_load_explicit(&sh->built, memory_order_relaxed);
    int done = built >= target;
    /* begun, or its start (the previous order) complete: a thread idle while another runs
     * the epochs alone may ask ahead */
    const int ready = sh->epoch == target || built >= target - 1;
    if (!done && ready) {
        if (sh->epoch != target) { /* start it from the previous epoch's order */
            memcpy(order_of(sh, target), order_of(sh, target - 1), (size_t)sh->n * sizeof(int));
            sh->epoch = target;
            sh->at = sh->n - 1;
        }
        sh->at = mv_rng_shuffle_part(&sh->rng, order_of(sh, target), sh->at, swaps);
        if ((done = sh->at <= 0)) atomic_store_explicit(&sh->built, target, memory_order_release);
    }
    atomic_store_explicit(&sh->lock, 0, memory_order_release);
    return done ? SHUFFLE_DONE : ready ? SHUFFLE_MORE : SHUFFLE_BUSY;
}

/* Spin, then yield: a short wait costs ~50 ns, and a thread descheduled on a busy machine
 * does not make the other burn its time slice. Each thread counts its arrivals on a line of
 * its own and waits until every other count has caught up: one store and one read of each
 * other line per passage, no read-modify-write of a shared line. While it spins, a thread
 * shuffles epoch `target`'s order (none if target < 0). */
struct arrival {
    _Alignas(64) atomic_long count;
};

struct spin_barrier {
    struct arrival *at; /* (n) */
    int n;
};

static void barrier_wait(struct spin_barrier *b, int t, struct shuffler *sh, int target)
{
    if (b->n <= 1) return;
    const long mine = atomic_load_explicit(&b->at[t].count, memory_order_relaxed) + 1;
    atomic_store_explicit(&b->at[t].count, mine, memory_order_release);
    for (int u = 0; u < b->n; u++) {
        if (u == t) continue;
        for (long spin = 0; atomic_load_explicit(&b->at[u].count, memory_order_acquire) < mine;
             spin++) {
            if (target >= 0) {
                if (shuffle_some(sh, target, WAIT_SWAPS) == SHUFFLE_MORE) continue;
                target = -1; /* done, or another thread is at it */
            }
            if (spin < 20000) {
#ifdef MV_HAVE_X86
                __builtin_ia32_pause();
#endif
            } else {
                sched_yield();
            }
        }
    }
}

/* What the threads share. Each array indexed by block is written by the block's thread. */
struct proto_run {
    struct medvlm_adapter *a;
    const float *X;   /* (N, D) */
    const int64_t *Y; /* (N) */
    int n, B, NB, iters, shuffle;
    int prefetch; /* the features do not sit in cache: fetch rows ahead */
    long steps;
    struct col_block *blocks; /* (NB) */
    /* Arrays by (parity, block), each (parity, block) part padded to whole cache lines:
     * lp_stride floats or k_stride doubles apart. */
    size_t lp_stride, k_stride;
    float *lp;     /* (2, NB, B, K) partial dot products, by step parity */
    double *zp;    /* (2, NB, K) CLAP partial |w_k - zs_k|^2, by step parity */
    double *np;    /* (2, NB, K) partial |weff_k|^2, by the parity of the step that reads it */
    double *zalm;  /* (NB, K) CLAP-ALM: partial squared distances at an epoch's end */
    float *losses; /* (steps) or NULL */
    struct shuffler *sh;      /* the epochs' row orders */
    struct spin_barrier *bar; /* apart from the fields above, which every step reads */
    struct pace *pace;        /* (T) each thread's timings of the current period */
    int period;               /* epochs per period: the team or one thread runs a period */
    int solo;                 /* this period: -1 the team, or the one thread that runs it */
    int alternate;            /* >= 0 (tests): team and thread alternate % T alone in turn */
    int recorder;             /* this period's thread that computes the losses */
    int solo_periods;         /* periods run solo since the team last ran one */
    int probe_every;          /* solo periods before the team runs one again */
    int probing;              /* the thread that ran solo before this team period, or -1 */
    uint64_t team_step;       /* the team's median step at its last period, in ticks */
    uint64_t *solo_step;      /* (T) each thread's median step alone, 0 if never measured */
};

/* A thread's timings of the first PACE_STEPS steps of a period, in ticks: the whole step and
 * the step less its wait at the barrier. */
#define PACE_STEPS 32
#define PACE_PROBE 4 /* solo periods before the team runs one again, at first */

struct pace {
    _Alignas(64) uint32_t step[PACE_STEPS];
    uint32_t busy[PACE_STEPS];
    int n;
};

static uint64_t ticks(void)
{
#ifdef MV_HAVE_X86
    return __builtin_ia32_rdtsc();
#else
    return (uint64_t)(mv_now() * 1e9);
#endif
}

static int cmp_u32(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return (a > b) - (a < b);
}

static uint64_t median_u32(const uint32_t *v, int n)
{
    uint32_t tmp[PACE_STEPS];
    memcpy(tmp, v, (size_t)n * sizeof *v);
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_u32);
    return tmp[n / 2];
}

/* Who runs the next period, from the timings of the one that ended (thread 0, between two
 * barriers). The team, unless one core is so much slower that the faster thread alone would
 * step faster: each block's work is then done by that thread in turn while the other idles
 * (and shuffles). Which thread does the arithmetic changes no bit of the result. A thread
 * alone is first expected to take 1 + 0.7 (T - 1) times its busy time in a team of T (1.7
 * for two: two blocks instead of one, the cross-entropy once, as measured here); then its
 * measured step counts. The team gets a period again after `probe_every` solo periods, in
 * case the cores have evened out: 4, doubled (up to 32) each time the team turns out still
 * slower. */
static int next_runner(struct proto_run *r, int T)
{
    const int solo = r->solo;
    if (r->alternate >= 0) return solo >= 0 ? -1 : r->alternate % T;
    if (solo >= 0) {
        const struct pace *p = &r->pace[solo];
        if (p->n < 4) return solo;
        r->solo_step[solo] = median_u32(p->step, p->n);
        if (r->solo_step[solo] >= r->team_step) { /* alone was the wrong guess */
            r->probe_every = PACE_PROBE;
            return -1;
        }
        if (++r->solo_periods < r->probe_every) return solo;
        r->probing = solo;
        return -1;
    }
    const int probed = r->probing;
    r->probing = -1;
    for (int t = 0; t < T; t++)
        if (r->pace[t].n < 4) return -1;
    r->team_step = median_u32(r->pace[0].step, r->pace[0].n);
    int fast = 0;
    uint64_t best = UINT64_MAX;
    for (int t = 0; t < T; t++) {
        const uint64_t b = median_u32(r->pace[t].busy, r->pace[t].n);
        if (b < best) best = b, fast = t;
    }
    r->recorder = fast; /* the loss values (not needed by the step) on the faster core */
    const uint64_t alone =
        r->solo_step[fast] ? r->solo_step[fast] : best * (uint64_t)(10 + 7 * (T - 1)) / 10;
    if (alone * 10 >= r->team_step * 9) {
        r->probe_every = PACE_PROBE;
        return -1;
    }
    if (probed == fast) r->probe_every = MV_MIN(2 * r->probe_every, 32);
    r->solo_periods = 0;
    return fast;
}

/* The parts of the shared arrays: block j's at parity par. */
static float *lp_at(const struct proto_run *r, int par, int j)
{
    return r->lp + ((size_t)par * r->NB + j) * r->lp_stride;
}

static double *zp_at(const struct proto_run *r, int par, int j)
{
    return r->zp + ((size_t)par * r->NB + j) * r->k_stride;
}

static double *np_at(const struct proto_run *r, int par, int j)
{
    return r->np + ((size_t)par * r->NB + j) * r->k_stride;
}

/* Per thread: logits and dlogits of the step (the same numbers in every thread). */
struct proto_thread {
    float *raw, *logits, *dl; /* (B, K) */
    float *wg;                /* (K) W_k . G_k */
    double *acc;              /* (K) its sums */
    int64_t *yb;              /* (B) labels of the step's rows */
    float *fac;               /* (K) s / max(|weff_k|, eps) */
};

/* Block j's effective prototypes and their partial squared norms into np row `slot`. */
static void refresh_block(struct proto_run *r, int j, int slot)
{
    const struct medvlm_adapter *a = r->a;
    const int K = a->k;
    struct col_block *c = &r->blocks[j];
    double *np = np_at(r, slot, j);
    for (int k = 0; k < K; k++) {
        float *we = c->weff + (size_t)k * c->dn;
        if (a->ops->method == MEDVLM_ADAPTER_TASKRES) {
            const float *zs = c->zs + (size_t)k * c->dn, *R = c->w + (size_t)k * c->dn;
            for (int i = 0; i < c->dn; i++) we[i] = zs[i] + a->opt.alpha * R[i];
        }
        np[k] = mv_dot(we, we, c->dn);
    }
}

/* Phase A for block j at step `step`: rows order[0..B-1]; next (or NULL): the next step's
 * order. */
static void block_dots(struct proto_run *r, int j, const int *order, const int *next, long step,
                       int par)
{
    const struct medvlm_adapter *a = r->a;
    const int K = a->k, D = a->d;
    struct col_block *c = &r->blocks[j];
    for (int b = 0; b < r->B; b++) c->xb[b] = r->X + (size_t)order[b] * D + c->d0;
    c->fetching = next != NULL;
    if (next) { /* the next step's lines in the order its forward pass will read them */
        mv_line_list(c->pfl, r->X + c->d0, (size_t)D, next, r->B, (int)(c->nlines / r->B));
        c->pf.at = c->pfl;
    }
    mv_mm_nt_rows(lp_at(r, par, j), c->xb, c->weff, r->B, K, c->dn, c->fetching ? &c->pf : NULL);
    if (a->ops->method == MEDVLM_ADAPTER_CLAP && c->zp_step != step) {
        double *zp = zp_at(r, par, j);
        for (int k = 0; k < K; k++)
            zp[k] = mv_sqdist(c->w + (size_t)k * c->dn, c->zs + (size_t)k * c->dn, c->dn);
    }
}

/* Phase B, every thread: raw dot products, logits, dlogits, W_k . G_k and the cross-entropy
 * sum of the step. */
static double step_loss(const struct proto_run *r, struct proto_thread *th, const int *order,
                        int par, int value)
{
    const struct medvlm_adapter *a = r->a;
    const int K = a->k, B = r->B;
    for (int k = 0; k < K; k++) {
        double n2 = 0;
        for (int j = 0; j < r->NB; j++) n2 += np_at(r, par, j)[k];
        th->fac[k] = a->scale / fmaxf(sqrtf((float)n2), 1e-12f);
    }
    mv_partial_logits(th->raw, th->logits, lp_at(r, par, 0), r->NB, r->lp_stride, B, K, th->fac);
    for (int b = 0; b < B; b++) th->yb[b] = r->Y[order[b]];
    double ce = 0;
    if (value)
        ce = mv_cross_entropy_sum(th->dl, th->logits, th->yb, B, K, 1.0f / (float)B);
    else
        mv_cross_entropy_grad(th->dl, th->logits, th->yb, B, K, 1.0f / (float)B);
    mv_coldot(th->wg, th->acc, th->dl, th->raw, B, K);
    return ce;
}

/* Phase B for block j at (0-based) step `step`: G, the gradient, the update. */
static void block_update(struct proto_run *r, const struct proto_thread *th, int j, long step,
                         float lr, int par)
{
    struct medvlm_adapter *a = r->a;
    const int K = a->k, NB = r->NB;
    struct col_block *c = &r->blocks[j];
    const float s = a->scale * (a->ops->method == MEDVLM_ADAPTER_TASKRES ? a->opt.alpha : 1.0f);
    mv_mm_tn_rows(c->g, th->dl, c->xb, K, c->dn, r->B, c->fetching ? &c->pf : NULL);
    if (c->fetching) /* what the kernels' iterations did not cover */
        for (const void *const *l = c->pf.at; l < c->pfl + c->nlines; l++) __builtin_prefetch(*l);
    struct mv_row_update u = {.clap = a->ops->method == MEDVLM_ADAPTER_CLAP,
                              .taskres = a->ops->method == MEDVLM_ADAPTER_TASKRES,
                              .alpha = a->opt.alpha,
                              .lr = lr};
    const int fused =
        mv_kernels_simd() && mv_optim_sgd_momentum(&c->opt, step + 1, &u.mom, &u.damp);
    float dist = 0;
    if (u.clap) u.dist = &dist; /* the next step's distances, while the rows are at hand */
    for (int k = 0; k < K; k++) {
        double n2 = 0;
        for (int i = 0; i < NB; i++) n2 += np_at(r, par, i)[k];
        const float rk = sqrtf((float)n2);
        const size_t row = (size_t)k * c->dn;
        if (rk > 1e-12f) {
            float inv = 1.0f / rk;
            u.a = s * inv;
            u.b = -s * th->wg[k] * inv * inv * inv;
        } else {
            u.a = s / 1e-12f;
            u.b = 0.0f;
        }
        if (u.clap) {
            double z = 0, dz;
            for (int i = 0; i < NB; i++) z += zp_at(r, par, i)[k];
            (void)mv_clap_penalty(a, k, z, &dz);
            u.f = (float)(2.0 * dz / K);
        }
        if (fused) { /* all of the below in one pass over the row */
            np_at(r, par ^ 1, j)[k] = mv_row_update(&u, c->w + row, c->opt.state + row,
                                                    c->weff + row, c->g + row, c->zs + row, c->dn);
            if (u.clap) zp_at(r, par ^ 1, j)[k] = dist;
            continue;
        }
        mv_axpby(c->dw + row, u.a, c->g + row, u.b, c->weff + row, c->dn);
        if (u.clap) mv_axpby_acc(c->dw + row, u.f, c->w + row, -u.f, c->zs + row, c->dn);
    }
    if (fused) {
        c->zp_step = step + 1;
        return;
    }
    mv_optim_update(&c->opt, lr, step + 1, 0, (size_t)K * c->dn);
    refresh_block(r, j, par ^ 1);
}

/* The CLAP penalty of the step (the loss adds terms / K), from the partial distances. */
static double step_penalty(const struct proto_run *r, int par)
{
    const struct medvlm_adapter *a = r->a;
    const int K = a->k;
    double total = 0, dz;
    for (int k = 0; k < K; k++) {
        double z = 0;
        for (int j = 0; j < r->NB; j++) z += zp_at(r, par, j)[k];
        total += mv_clap_penalty(a, k, z, &dz);
    }
    return total / K;
}

static void run_thread(struct proto_run *r, struct proto_thread *th, int t, int T)
{
    struct medvlm_adapter *a = r->a;
    const struct medvlm_adapter_options *o = &a->opt;
    const int K = a->k, B = r->B, NB = r->NB;
    const int clap = a->ops->method == MEDVLM_ADAPTER_CLAP;
    const enum mv_sched_kind sched =
        o->schedule == MEDVLM_SCHEDULE_COSINE ? MV_SCHED_COSINE : MV_SCHED_CONSTANT;
    for (int j = t; j < NB; j += T) refresh_block(r, j, 0);
    barrier_wait(r->bar, t, r->sh, -1);
    long step = 0;
    for (int e = 0; e < o->epochs; e++) {
        const int ahead = r->shuffle && e + 1 < o->epochs;
        const int target = ahead ? e + 1 : -1; /* the order to build while waiting */
        const int *order = order_of(r->sh, r->shuffle ? e : 0);
        struct pace *pc = &r->pace[t];
        if (T > 1 && e % r->period == 0) { /* a new period: who runs it */
            if (e > 0) {
                barrier_wait(r->bar, t, r->sh, target);
                if (t == 0) r->solo = next_runner(r, T);
                barrier_wait(r->bar, t, r->sh, target);
            }
            pc->n = 0;
        }
        const int solo = r->solo, team = solo < 0;
        const int j0 = team ? t : t == solo ? 0 : NB, js = team ? T : 1; /* my blocks */
        const int records = t == (team ? r->recorder : solo) && r->losses;
        for (int it = 0; it < r->iters && j0 < NB; it++, step++) {
            const int par = (int)(step & 1);
            const int *cur = order + (size_t)it * B;
            const int *nx = !r->prefetch        ? NULL /* the next step's rows, to prefetch */
                            : it + 1 < r->iters ? cur + B
                            : ahead             ? order_of(r->sh, e + 1)
                                                : NULL;
            const int timed = T > 1 && pc->n < PACE_STEPS;
            const uint64_t t0 = timed ? ticks() : 0;
            if (ahead && it + 1 == r->iters) /* the next epoch's order, complete */
                while (shuffle_some(r->sh, e + 1, INT_MAX) != SHUFFLE_DONE) {
#ifdef MV_HAVE_X86
                    __builtin_ia32_pause();
#endif
                }
            for (int j = j0; j < NB; j += js) block_dots(r, j, cur, nx, step, par);
            uint64_t waited = 0;
            if (team) {
                const uint64_t w0 = timed ? ticks() : 0;
                barrier_wait(r->bar, t, r->sh, target);
                if (timed) waited = ticks() - w0;
            }
            double ce = step_loss(r, th, cur, par, records);
            float lr = mv_sched_lr(sched, o->lr, 0.0f, step, r->steps);
            for (int j = j0; j < NB; j += js) block_update(r, th, j, step, lr, par);
            if (records) r->losses[step] = (float)(ce / B + (clap ? step_penalty(r, par) : 0.0));
            if (timed) {
                const uint64_t dt = ticks() - t0;
                pc->step[pc->n] = (uint32_t)MV_MIN(dt, UINT32_MAX);
                pc->busy[pc->n++] = (uint32_t)MV_MIN(dt - MV_MIN(waited, dt), UINT32_MAX);
            }
        }
        if (j0 >= NB) step += r->iters; /* idle this period */
        if (clap && o->clap_alm) {      /* the outer step, on the distances after the epoch */
            for (int j = j0; j < NB; j += js) {
                const struct col_block *c = &r->blocks[j];
                for (int k = 0; k < K; k++)
                    r->zalm[(size_t)j * r->k_stride + k] =
                        mv_sqdist_f64(c->w + (size_t)k * c->dn, c->zs + (size_t)k * c->dn, c->dn);
            }
            barrier_wait(r->bar, t, r->sh, target);
            if (t == 0)
                for (int k = 0; k < K; k++) {
                    double z = 0;
                    for (int j = 0; j < NB; j++) z += r->zalm[(size_t)j * r->k_stride + k];
                    mv_clap_alm_update(a, k, z);
                }
            barrier_wait(r->bar, t, r->sh, target);
        }
    }
}

/* The methods this trainer runs: one weight row per class. */
static int proto_method(enum medvlm_adapter_method m)
{
    return m == MEDVLM_ADAPTER_LP || m == MEDVLM_ADAPTER_ZSLP || m == MEDVLM_ADAPTER_CLAP ||
           m == MEDVLM_ADAPTER_TASKRES;
}

int mv_adapter_proto_trains(const struct medvlm_adapter *a)
{
    return proto_method(a->ops->method);
}

/* Shuffled batches over more than PREFETCH_ABOVE bytes of features: the rows come from
 * memory, and the trainer fetches them ahead. */
static int reads_memory(int batch, int n, int d)
{
    return batch < n && (double)n * d * sizeof(float) > PREFETCH_ABOVE;
}

/* Block j of NB over D columns: multiples of 8 wide, as even as that allows. */
static void block_cols(int D, int NB, int j, int *d0, int *dn)
{
    int lo = j == 0 ? 0 : (int)((long)D * j / NB) / 8 * 8;
    int hi = j == NB - 1 ? D : (int)((long)D * (j + 1) / NB) / 8 * 8;
    *d0 = lo;
    *dn = hi - lo;
}

int mv_adapter_proto_stages(const struct medvlm_adapter_options *o, int n, int d)
{
    const struct mv_adapter_ops *ops = o ? mv_adapter_ops_for(o->method) : NULL;
    if (!ops || o->epochs <= 0 || o->batch_size <= 0 || d <= 0) return 0;
    return proto_method(ops->method) && reads_memory(o->batch_size, n, d) &&
           (double)n * d * sizeof(float) <= COPY_BELOW;
}

enum medvlm_status mv_adapter_train_proto(struct medvlm_adapter *a, const float *X,
                                          const int64_t *Y, int n, float *losses, int threads,
                                          int alternate, int *threads_used)
{
    if (!mv_adapter_proto_trains(a))
        return mv_err(MEDVLM_ERR_INTERNAL, "adapter: %s is not a prototype method", a->ops->name);
    const struct medvlm_adapter_options *o = &a->opt;
    const int K = a->k, D = a->d;
    struct proto_run r = {.a = a, .X = X, .Y = Y, .n = n, .losses = losses, .alternate = alternate};
    r.B = MV_MIN(o->batch_size, n);
    r.iters = MV_MAX(n / o->batch_size, 1);
    r.shuffle = o->batch_size < n;
    r.steps = (long)o->epochs * r.iters;
    r.NB = MV_MAX(1, D / BLOCK_MIN);
    r.prefetch = reads_memory(o->batch_size, n, D);
#ifdef _OPENMP
    if (omp_in_parallel()) threads = 1; /* no nested teams */
#endif
    int T = MV_MAX(1, MV_MIN(threads, r.NB));
    enum medvlm_status st = MEDVLM_ERR_NOMEM;
    const size_t kd = (size_t)K * D;
    struct proto_thread th[64];
    T = MV_MIN(T, (int)MV_ARRAY_LEN(th));
    memset(th, 0, sizeof th);
    float *pool = NULL; /* every block's w, dw, weff, zs, g: 5 (K, D) */
    const float **xbs = NULL;
    r.lp_stride = ((size_t)r.B * K + 15) / 16 * 16;
    r.k_stride = ((size_t)K + 7) / 8 * 8;
    const size_t xb_stride = ((size_t)r.B + 7) / 8 * 8;
    r.blocks = mv_aligned_zeros((size_t)r.NB * sizeof *r.blocks);
    pool = mv_aligned(5 * kd * sizeof(float) + 64 * (size_t)r.NB * 5);
    xbs = mv_aligned_zeros((size_t)r.NB * xb_stride * sizeof(float *));
    r.lp = mv_aligned_zeros(2 * (size_t)r.NB * r.lp_stride * sizeof(float));
    r.zp = mv_aligned_zeros(2 * (size_t)r.NB * r.k_stride * sizeof(double));
    r.np = mv_aligned_zeros(2 * (size_t)r.NB * r.k_stride * sizeof(double));
    r.zalm = mv_aligned_zeros((size_t)r.NB * r.k_stride * sizeof(double));
    r.sh = mv_aligned_zeros(sizeof *r.sh);
    if (r.sh) r.sh->orders = mv_calloc(3 * (size_t)n, sizeof(int));
    r.bar = mv_aligned_zeros(sizeof *r.bar);
    if (r.bar) r.bar->at = mv_aligned_zeros((size_t)T * sizeof *r.bar->at);
    r.pace = mv_aligned_zeros((size_t)T * sizeof *r.pace);
    r.solo_step = mv_calloc((size_t)T, sizeof *r.solo_step);
    r.solo = r.probing = -1;
    r.probe_every = PACE_PROBE;
    r.period = alternate >= 0 ? 1 : MV_MAX(1, 128 / r.iters);
    if (!r.bar || !r.bar->at || !r.pace || !r.solo_step || !r.blocks || !pool || !xbs || !r.lp ||
        !r.zp || !r.np || !r.zalm || !r.sh || !r.sh->orders)
        goto fail;
    r.sh->n = n; /* the first epoch's order: train.c's first shuffle */
    mv_adapter_shuffle_rng(&r.sh->rng, o);
    for (int i = 0; i < n; i++) r.sh->orders[i] = i;
    if (r.shuffle) mv_rng_shuffle(&r.sh->rng, r.sh->orders, n);
    for (int t = 0; t < T; t++) { /* one allocation per thread, parts on their own lines */
        const size_t bk = ((size_t)r.B * K * sizeof(float) + 63) / 64 * 64;
        const size_t kf = ((size_t)K * sizeof(double) + 63) / 64 * 64;
        const size_t yb = ((size_t)r.B * sizeof(int64_t) + 63) / 64 * 64;
        char *m = mv_aligned_zeros(3 * bk + 3 * kf + yb);
        if (!m) goto fail;
        th[t].raw = (float *)(void *)m;
        th[t].logits = (float *)(void *)(m + bk);
        th[t].dl = (float *)(void *)(m + 2 * bk);
        th[t].acc = (double *)(void *)(m + 3 * bk);
        th[t].wg = (float *)(void *)(m + 3 * bk + kf);
        th[t].fac = (float *)(void *)(m + 3 * bk + 2 * kf);
        th[t].yb = (int64_t *)(void *)(m + 3 * bk + 3 * kf);
    }
    struct mv_optim_config oc;
    mv_adapter_optim_config(o, &oc);
    float *next = pool;
    for (int j = 0; j < r.NB; j++) {
        struct col_block *c = &r.blocks[j];
        block_cols(D, r.NB, j, &c->d0, &c->dn);
        const size_t m = (size_t)K * c->dn, stride = (m + 15) / 16 * 16; /* 64-byte aligned */
        c->w = next;
        c->dw = next + stride;
        c->zs = next + 2 * stride;
        c->g = next + 3 * stride;
        c->weff = a->ops->method == MEDVLM_ADAPTER_TASKRES ? next + 4 * stride : c->w;
        next += 5 * stride;
        c->xb = xbs + (size_t)j * xb_stride;
        c->zp_step = -1;
        c->nlines = (long)r.B * (((long)c->dn * (long)sizeof(float) + 63) / 64);
        if (r.prefetch) {
            const long npf = MV_MAX(c->nlines, mv_mm_nt_prefetches(r.B, K, c->dn) +
                                                   mv_mm_tn_prefetches(K, c->dn, r.B));
            c->pfl = mv_calloc((size_t)npf, sizeof(void *));
            if (!c->pfl) goto fail;
            for (long i = c->nlines; i < npf; i++) c->pfl[i] = c->pfl; /* in cache */
        }
        for (int k = 0; k < K; k++) {
            memcpy(c->w + (size_t)k * c->dn, a->params[0].data + (size_t)k * D + c->d0,
                   (size_t)c->dn * sizeof(float));
            memcpy(c->zs + (size_t)k * c->dn, a->zs + (size_t)k * D + c->d0,
                   (size_t)c->dn * sizeof(float));
        }
        struct mv_span span = {c->w, c->dw, m};
        if ((st = mv_optim_init(&c->opt, &oc, &span, 1))) goto fail;
        st = MEDVLM_ERR_NOMEM;
    }
    int used = 1;
    r.bar->n = 1;
#ifdef _OPENMP
    if (T > 1) {
#pragma omp parallel num_threads(T)
        {
            /* the runtime may give fewer threads than asked: split over those there are */
            int nt = omp_get_num_threads();
#pragma omp single
            {
                used = nt;
                r.bar->n = nt;
            }
            run_thread(&r, &th[omp_get_thread_num()], omp_get_thread_num(), nt);
        }
    } else
#endif
        run_thread(&r, &th[0], 0, 1);
    for (int j = 0; j < r.NB; j++) {
        const struct col_block *c = &r.blocks[j];
        for (int k = 0; k < K; k++)
            memcpy(a->params[0].data + (size_t)k * D + c->d0, c->w + (size_t)k * c->dn,
                   (size_t)c->dn * sizeof(float));
    }
    if (threads_used) *threads_used = used;
    st = MEDVLM_OK;
fail:
    if (r.blocks)
        for (int j = 0; j < r.NB; j++) {
            mv_optim_free(&r.blocks[j].opt);
            mv_free(r.blocks[j].pfl);
        }
    for (int t = 0; t < T; t++) mv_free(th[t].raw); /* the thread's one allocation */
    mv_free(r.blocks);
    mv_free(pool);
    mv_free((void *)xbs);
    mv_free(r.lp);
    mv_free(r.zp);
    mv_free(r.np);
    mv_free(r.zalm);
    if (r.sh) mv_free(r.sh->orders);
    mv_free(r.sh);
    if (r.bar) mv_free(r.bar->at);
    mv_free(r.bar);
    mv_free(r.pace);
    mv_free(r.solo_step);
    return st;
}

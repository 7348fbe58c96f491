/*
 * train_split.c - the training loop of train.c with the classes split over two threads, for
 * the prototype methods (lp, zslp, clap, taskres).
 *
 * Thread t owns classes [k0, k1): their weight rows, gradient rows, optimizer state and
 * (CLAP) multipliers. Per step each thread writes its columns of the logits, one barrier,
 * then both compute the same cross-entropy from the full logits and each back-propagates
 * into its own rows. The logits and penalty terms are double-buffered by step parity, so
 * one barrier per step suffices: a thread can only start writing step s + 2's buffer after
 * both passed step s + 1's barrier, i.e. after the other finished reading step s. Both
 * threads shuffle with the same seeded RNG, so they agree on every batch without talking.
 * Every number is computed as in the one-thread loop (kernels.c computes a logit the same
 * way whatever the class range), so the result is bit-identical to it.
 */
#include "adapters.h"

#include "../optim/optim.h"

#include <string.h>

#ifdef _OPENMP /* the fuzz build compiles the library without OpenMP */
#include <omp.h>

struct split_thread {
    float *ws, *dlogits; /* ws_floats(B); (B, K) */
    const float **xb;    /* (B) row pointers */
    int64_t *yb;         /* (B) */
    int *perm;           /* (N) */
    double *scratch;     /* (K) penalty terms recomputed with the gradient */
    struct mv_optim opt;
};

static int splittable(const struct medvlm_adapter *a)
{
    enum medvlm_adapter_method m = a->ops->method;
    return a->k >= 2 && (m == MEDVLM_ADAPTER_LP || m == MEDVLM_ADAPTER_ZSLP ||
                         m == MEDVLM_ADAPTER_CLAP || m == MEDVLM_ADAPTER_TASKRES);
}

static enum mv_optim_kind optim_kind(enum medvlm_optimizer o)
{
    return o == MEDVLM_OPTIMIZER_ADAM    ? MV_OPTIM_ADAM
           : o == MEDVLM_OPTIMIZER_ADAMW ? MV_OPTIM_ADAMW
                                         : MV_OPTIM_SGD;
}

static void run_thread(struct medvlm_adapter *a, struct split_thread *th, int t, const float *X,
                       const int64_t *Y, int n, float *losses, float *logits2, double *terms2)
{
    const struct medvlm_adapter_options *o = &a->opt;
    const int D = a->d, K = a->k;
    const int k0 = t ? K / 2 : 0, k1 = t ? K : K / 2;
    const long steps = medvlm_adapter_steps(o, n);
    const int iters = MV_MAX(n / o->batch_size, 1);
    const int B = MV_MIN(o->batch_size, n);
    const int shuffle = o->batch_size < n;
    const int clap = a->ops->method == MEDVLM_ADAPTER_CLAP;
    struct mv_rng rng;
    mv_rng_seed(&rng, o->seed ^ 0x53485546464c45ull); /* the same stream as train.c */
    for (int i = 0; i < n; i++) th->perm[i] = i;
    long step = 0;
    for (int e = 0; e < o->epochs; e++) {
        if (shuffle)
            for (int i = n - 1; i > 0; i--) {
                int j = (int)mv_rng_below(&rng, (uint64_t)i + 1);
                int tmp = th->perm[i];
                th->perm[i] = th->perm[j];
                th->perm[j] = tmp;
            }
        for (int it = 0; it < iters; it++, step++) {
            float *logits = logits2 + (size_t)(step & 1) * B * K;
            double *terms = terms2 + (size_t)(step & 1) * K;
            for (int b = 0; b < B; b++) {
                int r = th->perm[it * B + b];
                th->xb[b] = X + (size_t)r * D;
                th->yb[b] = Y[r];
            }
            if (shuffle && it + 1 < iters)
                for (int b = 0; b < B; b++) {
                    const char *row = (const char *)(X + (size_t)th->perm[(it + 1) * B + b] * D);
                    for (size_t off = 0; off < (size_t)D * sizeof(float); off += 64)
                        __builtin_prefetch(row + off);
                }
            memset(a->params[0].grad + (size_t)k0 * D, 0, (size_t)(k1 - k0) * D * sizeof(float));
            mv_proto_forward_range(a, th->ws, th->xb, B, k0, k1, logits);
            if (clap) mv_clap_penalty_range(a, k0, k1, 0, terms + k0);
#pragma omp barrier
            double loss = mv_cross_entropy(th->dlogits, logits, th->yb, B, K);
            if (clap) {
                double total = 0;
                for (int c = 0; c < K; c++) total += terms[c];
                loss += total / K;
            }
            if (t == 0 && losses) losses[step] = (float)loss;
            mv_proto_backward_range(a, th->ws, th->xb, B, k0, k1, th->dlogits);
            if (clap) mv_clap_penalty_range(a, k0, k1, 1, th->scratch);
            float lr = mv_sched_lr(o->schedule == MEDVLM_SCHEDULE_COSINE ? MV_SCHED_COSINE
                                                                         : MV_SCHED_CONSTANT,
                                   o->lr, 0.0f, step, steps);
            mv_optim_step(&th->opt, lr);
        }
        if (clap) mv_clap_epoch_end_range(a, k0, k1);
    }
}

enum medvlm_status mv_adapter_train_split(struct medvlm_adapter *a, const float *X,
                                          const int64_t *Y, int n, float *losses)
{
    if (!splittable(a) || omp_get_max_threads() < 2 || omp_in_parallel())
        return mv_err(MEDVLM_ERR_UNSUPPORTED, "adapter: %s does not train on two threads here",
                      a->ops->name);
    const struct medvlm_adapter_options *o = &a->opt;
    const int D = a->d, K = a->k, B = MV_MIN(o->batch_size, n);
    struct split_thread th[2];
    memset(th, 0, sizeof th);
    float *logits2 = mv_calloc(2 * (size_t)B * K, sizeof(float));
    double *terms2 = mv_calloc(2 * (size_t)K, sizeof(double));
    enum medvlm_status st = MEDVLM_ERR_NOMEM;
    if (!logits2 || !terms2) goto fail;
    struct mv_optim_config oc;
    mv_optim_config_default(&oc, optim_kind(o->optimizer));
    oc.lr = o->lr;
    oc.momentum = o->optimizer == MEDVLM_OPTIMIZER_SGD ? o->momentum : 0;
    oc.weight_decay = o->weight_decay;
    oc.beta1 = o->adam_beta1;
    oc.beta2 = o->adam_beta2;
    oc.eps = o->adam_eps;
    for (int t = 0; t < 2; t++) {
        const int k0 = t ? K / 2 : 0, k1 = t ? K : K / 2;
        th[t].ws = mv_calloc(a->ops->ws_floats(a, B), sizeof(float));
        th[t].dlogits = mv_calloc((size_t)B * K, sizeof(float));
        th[t].xb = mv_calloc((size_t)B, sizeof(float *));
        th[t].yb = mv_calloc((size_t)B, sizeof(int64_t));
        th[t].perm = mv_calloc((size_t)n, sizeof(int));
        th[t].scratch = mv_calloc((size_t)K, sizeof(double));
        if (!th[t].ws || !th[t].dlogits || !th[t].xb || !th[t].yb || !th[t].perm || !th[t].scratch)
            goto fail;
        struct mv_span span = {a->params[0].data + (size_t)k0 * D,
                               a->params[0].grad + (size_t)k0 * D, (size_t)(k1 - k0) * D};
        if ((st = mv_optim_init(&th[t].opt, &oc, &span, 1))) goto fail;
        st = MEDVLM_ERR_NOMEM;
    }
    int ran = 0;
#pragma omp parallel num_threads(2)
    {
        if (omp_get_num_threads() == 2) {
#pragma omp single
            ran = 1;
            int t = omp_get_thread_num();
            run_thread(a, &th[t], t, X, Y, n, losses, logits2, terms2);
        }
    }
    st = ran ? MEDVLM_OK
             : mv_err(MEDVLM_ERR_UNSUPPORTED, "adapter: OpenMP gave fewer than two threads");
fail:
    for (int t = 0; t < 2; t++) {
        mv_optim_free(&th[t].opt);
        mv_free(th[t].ws);
        mv_free(th[t].dlogits);
        mv_free((void *)th[t].xb);
        mv_free(th[t].yb);
        mv_free(th[t].perm);
        mv_free(th[t].scratch);
    }
    mv_free(logits2);
    mv_free(terms2);
    return st;
}

#else

enum medvlm_status mv_adapter_train_split(struct medvlm_adapter *a, const float *X,
                                          const int64_t *Y, int n, float *losses)
{
    (void)X, (void)Y, (void)n, (void)losses;
    return mv_err(MEDVLM_ERR_UNSUPPORTED, "adapter: %s: built without OpenMP, one thread",
                  a->ops->name);
}

#endif

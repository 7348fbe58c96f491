/*
 * train.c - medvlm_adapter_train and the one training loop every adapter follows.
 *
 * As the PEFT-MedVLMs notebook's train_adapter: each epoch takes max(N / batch, 1) steps of
 * `batch` rows (the last N mod batch rows of a shuffled epoch are not used); a step is
 * forward, mean cross-entropy (+ the method's regulariser), backward, optimizer update. Rows
 * are reshuffled every epoch (Fisher-Yates from the seeded RNG) when batch < N; with
 * batch >= N every step is the whole set in order. Everything a step touches is allocated
 * before the first step. Here the loop runs through the method's vtable on one thread; the
 * prototype methods (lp, zslp, clap, taskres) run it as train_proto.c reorganises it.
 */
#include "adapters.h"

#include "../optim/optim.h"

#include <math.h>
#include <string.h>

long medvlm_adapter_steps(const struct medvlm_adapter_options *o, int n)
{
    const struct mv_adapter_ops *ops = o ? mv_adapter_ops_for(o->method) : NULL;
    if (!ops || !ops->trains || o->epochs <= 0 || o->batch_size <= 0 || n <= 0) return 0;
    long iters = MV_MAX(n / o->batch_size, 1);
    return (long)o->epochs * iters;
}

/* Checks the arguments and that every feature is finite (on `threads` threads); with
 * staged != NULL, copies the features there as it scans them. */
static enum medvlm_status check_inputs(const struct medvlm_adapter_options *o, const float *X,
                                       const int64_t *Y, int n, int d, const float *zs, int k,
                                       float *staged, int threads)
{
    if (!o || !zs || d <= 0 || k <= 0 || n < 0 || (n > 0 && (!X || !Y)))
        return mv_err(MEDVLM_ERR_ARG, "adapter train: NULL input or bad sizes (n %d, d %d, k %d)",
                      n, d, k);
    const struct mv_adapter_ops *ops = mv_adapter_ops_for(o->method);
    if (!ops) return mv_err(MEDVLM_ERR_ARG, "adapter train: unknown method %d", (int)o->method);
    if (n == 0 && o->method != MEDVLM_ADAPTER_ZEROSHOT)
        return mv_err(MEDVLM_ERR_ARG, "adapter train: %s needs training samples, got none",
                      ops->name);
    if (ops->trains) {
        if (o->epochs < 0 || o->batch_size <= 0)
            return mv_err(MEDVLM_ERR_ARG,
                          "adapter train: epochs %d must be >= 0 and batch size %d > 0", o->epochs,
                          o->batch_size);
        if (!(o->lr >= 0) || !isfinite(o->lr) || !(o->momentum >= 0) || !(o->weight_decay >= 0))
            return mv_err(
                MEDVLM_ERR_ARG,
                "adapter train: lr %g, momentum %g, weight decay %g must be finite and >= 0",
                (double)o->lr, (double)o->momentum, (double)o->weight_decay);
        if ((long)o->epochs * MV_MAX(n / o->batch_size, 1) > 1000000000L)
            return mv_err(MEDVLM_ERR_LIMIT, "adapter train: %d epochs x %d steps is too many",
                          o->epochs, MV_MAX(n / o->batch_size, 1));
    }
    if (!isfinite(o->alpha) || !isfinite(o->beta) || o->hidden < 0 || !(o->clap_rho >= 0) ||
        !isfinite(o->clap_rho))
        return mv_err(MEDVLM_ERR_ARG,
                      "adapter train: alpha %g, beta %g, hidden %d, rho %g out of range",
                      (double)o->alpha, (double)o->beta, o->hidden, (double)o->clap_rho);
    for (int i = 0; i < n; i++)
        if (Y[i] < 0 || Y[i] >= k)
            return mv_err(MEDVLM_ERR_ARG,
                          "adapter train: label %lld of sample %d is not in [0, %d)",
                          (long long)Y[i], i, k);
    size_t nd;
    if (!mv_mul_ok((size_t)n, (size_t)d, &nd))
        return mv_err(MEDVLM_ERR_OVERFLOW, "adapter train: %d x %d features overflow", n, d);
    size_t i = staged ? mv_copy_first_nonfinite_par(staged, X, nd, threads)
                      : mv_first_nonfinite_par(X, nd, threads);
    if (i < nd)
        return mv_err(MEDVLM_ERR_ARG, "adapter train: feature %zu of sample %zu is not finite",
                      i % (size_t)d, i / (size_t)d);
    return MEDVLM_OK;
}

enum medvlm_status mv_adapter_train_loop(struct medvlm_adapter *a, const float *X, const int64_t *Y,
                                         int n, float *losses)
{
    const struct medvlm_adapter_options *o = &a->opt;
    const int D = a->d, K = a->k;
    const long steps = medvlm_adapter_steps(o, n);
    const int iters = MV_MAX(n / o->batch_size, 1);
    const int B = MV_MIN(o->batch_size, n);
    const int shuffle = o->batch_size < n;
    enum medvlm_status st = MEDVLM_ERR_NOMEM;
    struct mv_optim opt = {0};
    float *ws = NULL, *logits = NULL, *dlogits = NULL;
    const float **xb = NULL;
    int64_t *yb = NULL;
    int *perm = NULL;

    ws = mv_calloc(a->ops->ws_floats(a, B), sizeof(float));
    logits = mv_calloc((size_t)B * K, sizeof(float));
    dlogits = mv_calloc((size_t)B * K, sizeof(float));
    xb = mv_calloc((size_t)B, sizeof(float *));
    yb = mv_calloc((size_t)B, sizeof(int64_t));
    perm = mv_calloc((size_t)n, sizeof(int));
    if (!ws || !logits || !dlogits || !xb || !yb || !perm) goto fail;

    struct mv_optim_config oc;
    mv_adapter_optim_config(o, &oc);
    struct mv_span spans[MV_ADAPTER_MAX_PARAMS];
    for (int i = 0; i < a->nparams; i++)
        spans[i] = (struct mv_span){a->params[i].data, a->params[i].grad, a->params[i].n};
    st = mv_optim_init(&opt, &oc, spans, a->nparams);
    if (st) goto fail;

    struct mv_rng rng;
    mv_adapter_shuffle_rng(&rng, o);
    for (int i = 0; i < n; i++) perm[i] = i;
    long step = 0;
    for (int e = 0; e < o->epochs; e++) {
        if (shuffle) mv_rng_shuffle(&rng, perm, n);
        for (int it = 0; it < iters; it++, step++) {
            for (int b = 0; b < B; b++) {
                int r = perm[it * B + b];
                xb[b] = X + (size_t)r * D;
                yb[b] = Y[r];
            }
            if (shuffle) {
                /* the next step's rows are scattered over X: start fetching them now */
                if (it + 1 < iters)
                    for (int b = 0; b < B; b++) {
                        const char *row = (const char *)(X + (size_t)perm[(it + 1) * B + b] * D);
                        for (size_t off = 0; off < (size_t)D * sizeof(float); off += 64)
                            __builtin_prefetch(row + off);
                    }
            }
            memset(a->grad_buf, 0, a->param_total * sizeof(float));
            a->ops->forward(a, ws, xb, B, logits);
            double loss = mv_cross_entropy(dlogits, logits, yb, B, K);
            a->ops->backward(a, ws, xb, B, dlogits);
            if (a->ops->regularizer) loss += a->ops->regularizer(a, 1);
            if (losses) losses[step] = (float)loss;
            float lr = mv_sched_lr(o->schedule == MEDVLM_SCHEDULE_COSINE ? MV_SCHED_COSINE
                                                                         : MV_SCHED_CONSTANT,
                                   o->lr, 0.0f, step, steps);
            mv_optim_step(&opt, lr);
        }
        if (a->ops->epoch_end) a->ops->epoch_end(a);
    }
    st = MEDVLM_OK;
fail:
    mv_optim_free(&opt);
    mv_free(ws);
    mv_free(logits);
    mv_free(dlogits);
    mv_free((void *)xb);
    mv_free(yb);
    mv_free(perm);
    return st;
}

enum medvlm_status medvlm_adapter_train(const struct medvlm_adapter_options *o, const float *X,
                                        const int64_t *Y, int n, int d, const float *zs_prototypes,
                                        int k, float logit_scale, struct medvlm_adapter **out,
                                        float *losses_out)
{
    struct medvlm_adapter *a = NULL;
    if (!out) return mv_err(MEDVLM_ERR_ARG, "adapter train: NULL out");
    *out = NULL;
    /* features the trainer will read from memory: onto 2 MB pages, as they are checked */
    float *staged = NULL;
    if (o && n > 0 && d > 0 && X && mv_adapter_proto_stages(o, n, d)) {
        staged = mv_aligned_large((size_t)n * (size_t)d * sizeof(float));
        if (!staged) mv_err_clear(); /* then they are read where they are */
    }
    /* the threads every loop below runs on, decided here once: the option, or the library's
     * count (medvlm_set_threads) */
    const int threads = o && o->threads > 0 ? o->threads : medvlm_get_threads();
    enum medvlm_status st = check_inputs(o, X, Y, n, d, zs_prototypes, k, staged, threads);
    if (st) goto fail;
    const float *Xs = staged ? staged : X;
    st = mv_adapter_create(o, d, k, n, zs_prototypes, logit_scale, &a);
    if (st) goto fail;
    a->opt.threads = threads;
    a->opt.init_prototypes = o->init_prototypes;
    a->opt.init_w1 = o->init_w1;
    a->opt.init_w2 = o->init_w2;
    st = a->ops->init(a, Xs, Y, n);
    a->opt.init_prototypes = a->opt.init_w1 = a->opt.init_w2 = NULL;
    if (st) goto fail;
    if (a->ops->trains && medvlm_adapter_steps(o, n) > 0) {
        st = mv_adapter_proto_trains(a)
                 ? mv_adapter_train_proto(a, Xs, Y, n, losses_out, threads, -1, NULL)
                 : mv_adapter_train_loop(a, X, Y, n, losses_out);
        if (st) goto fail;
    }
    mv_free(staged);
    *out = a;
    return MEDVLM_OK;
fail:
    mv_free(staged);
    medvlm_adapter_free(a);
    return st;
}

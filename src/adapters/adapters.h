/*
 * adapters.h - few-shot black-box adapters behind one vtable, and the one training loop.
 *
 * Glossary: B batch rows, N training rows (Tip-Adapter cache size), D feature dim,
 * K classes, H CLIP-Adapter bottleneck.
 *
 * An adapter is its parameters (named tensors in one buffer, gradients in a second buffer of
 * the same layout), fixed inputs (zs, the normalised zs, scale, cache labels) and a method
 * (struct mv_adapter_ops). A method's forward writes logits for B rows and keeps what its
 * backward needs in a workspace the caller sized with ws_floats(B); backward accumulates
 * parameter gradients (+=) from dlogits; the caller zeroes them.
 */
#ifndef MEDVLM_ADAPTERS_H
#define MEDVLM_ADAPTERS_H

#include "../core/core.h"

#define MV_ADAPTER_MAX_PARAMS 3

struct mv_adapter_param {
    const char *name; /* tensor name in the adapter file and the golden set */
    int ndim;
    int64_t shape[2];
    size_t n;
    float *data; /* view into medvlm_adapter.param_buf */
    float *grad; /* view into medvlm_adapter.grad_buf */
};

struct medvlm_adapter;

struct mv_adapter_ops {
    enum medvlm_adapter_method method;
    const char *name;
    int trains; /* 0: nothing to optimise (zero-shot, Tip-Adapter) */
    /* Parameter shapes: fill a->params[] names/shapes/ndim/n and a->nparams. */
    enum medvlm_status (*layout)(struct medvlm_adapter *a);
    /* Initial values (params are allocated); X, Y the training set. */
    enum medvlm_status (*init)(struct medvlm_adapter *a, const float *X, const int64_t *Y, int n);
    size_t (*ws_floats)(const struct medvlm_adapter *a, int B);
    /* logits (B, K) for the B feature rows X[0..B-1] (each D floats, row pointers so a
     * shuffled batch needs no copy); ws keeps what backward needs. */
    void (*forward)(const struct medvlm_adapter *a, float *ws, const float *const *X, int B,
                    float *logits);
    /* grads += d loss / d params given dlogits (B, K) of the same batch; may clobber ws. */
    void (*backward)(struct medvlm_adapter *a, float *ws, const float *const *X, int B,
                     const float *dlogits);
    /* Optional: a loss term on the parameters alone; returns its value and, when grad,
     * accumulates its gradient. */
    double (*regularizer)(struct medvlm_adapter *a, int grad);
    /* Optional: called after every epoch (CLAP's augmented-Lagrangian outer step). */
    void (*epoch_end)(struct medvlm_adapter *a);
};

struct medvlm_adapter {
    const struct mv_adapter_ops *ops;
    struct medvlm_adapter_options opt; /* init_* pointers cleared after training */
    int d, k;
    float logit_scale; /* raw */
    float scale;       /* exp(logit_scale) */
    float *zs;         /* (K, D) as given */
    float *zsn;        /* (K, D) rows normalised */
    int nparams;
    struct mv_adapter_param params[MV_ADAPTER_MAX_PARAMS];
    float *param_buf, *grad_buf;
    size_t param_total;
    float *lambdas;            /* (K) CLAP */
    float *rhos;               /* (K) CLAP-ALM penalty parameters */
    int n_cache;               /* Tip-Adapter: rows of the cache */
    int64_t *cache_labels;     /* (N) Tip-Adapter */
    char **class_names;        /* (K) from a loaded file, or NULL */
    char *fingerprint, *model; /* provenance from a loaded file, or NULL */
    int shots;
};

extern const struct mv_adapter_ops mv_adapter_zeroshot_ops, mv_adapter_lp_ops, mv_adapter_zslp_ops,
    mv_adapter_clap_ops, mv_adapter_taskres_ops, mv_adapter_clipadapter_ops, mv_adapter_tip_ops,
    mv_adapter_tipf_ops;

const struct mv_adapter_ops *mv_adapter_ops_for(enum medvlm_adapter_method m);

/* n_train sizes Tip-Adapter's cache (ignored by the other methods).
 * An adapter with its fixed inputs and allocated (zeroed) parameters, not yet initialised. */
enum medvlm_status mv_adapter_create(const struct medvlm_adapter_options *o, int d, int k,
                                     int n_train, const float *zs, float logit_scale,
                                     struct medvlm_adapter **out);
/* The adapter held by an open safetensors file (medvlm_adapter_load without the file). */
enum medvlm_status mv_adapter_from_st(const struct medvlm_st *st, struct medvlm_adapter **out);
struct mv_adapter_param *mv_adapter_param_find(struct medvlm_adapter *a, const char *name);
struct mv_optim_config;
/* The RNG of the per-epoch shuffle (mv_rng_shuffle of the row order, once per epoch), seeded
 * from the options; both training loops draw the same orders. */
void mv_adapter_shuffle_rng(struct mv_rng *rng, const struct medvlm_adapter_options *o);
/* The optimizer the options ask for (kind, lr, momentum for SGD, weight decay, Adam's). */
void mv_adapter_optim_config(const struct medvlm_adapter_options *o, struct mv_optim_config *oc);

/* The small products and vector kernels the adapters are made of (mv_mm_nt, mv_dot,
 * mv_row_update...) are ops.h's (src/ops/small.c), and so is their cross-entropy. */
#include "../ops/ops.h"

/* rdtsc and pause in the trainer's spin waits. */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define MV_HAVE_X86 1
#endif

/* ---- the prototype methods (proto.c) ---- */

/* CLAP: the penalty of class c at squared distance z = |W_c - zs_c|^2 (without the 1/K), and
 * *dz = its derivative in z. */
double mv_clap_penalty(const struct medvlm_adapter *a, int c, double z, double *dz);
/* CLAP-ALM outer step for class c at squared distance z: lambda_c <- max(0, lambda_c + rho_c z),
 * then rho_c <- z. */
void mv_clap_alm_update(struct medvlm_adapter *a, int c, double z);

/* ---- the training loops ---- */

/* Train a (initialised) through its vtable, one thread (train.c): every method. */
enum medvlm_status mv_adapter_train_loop(struct medvlm_adapter *a, const float *X, const int64_t *Y,
                                         int n, float *losses);

/* 1 for lp, zslp, clap, taskres: the methods mv_adapter_train_proto trains. */
int mv_adapter_proto_trains(const struct medvlm_adapter *a);
/* Train a (initialised) with train.c's loop, rows of a step spread over up to `threads`
 * threads (>= 1, as medvlm_adapter_train decided; one inside a parallel region); the same bits
 * whatever the count. alternate: -1 lets the timings decide, period by period, whether the
 * team or one thread alone runs; >= 0 (tests) alternates, epoch by epoch, between the team
 * and thread (alternate mod threads) alone. threads_used (optional) receives the number that
 * ran. */
enum medvlm_status mv_adapter_train_proto(struct medvlm_adapter *a, const float *X,
                                          const int64_t *Y, int n, float *losses, int threads,
                                          int alternate, int *threads_used);
/* 1 if training method o on n rows of d features reads them from memory rather than cache
 * (over 4 MB, shuffled batches, a prototype method): then the rows are better on 2 MB pages
 * (mv_aligned_large), copied there by medvlm_adapter_train as it checks them. */
int mv_adapter_proto_stages(const struct medvlm_adapter_options *o, int n, int d);

#endif

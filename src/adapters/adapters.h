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

/* ---- kernels (kernels.c): plain loops, with an AVX2+FMA variant picked at run time ---- */

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
/* The threads an adapter loop runs on when asked for `threads`: <= 0, the library's count;
 * one inside a parallel region (or without OpenMP). */
int mv_adapter_team(int threads);
/* mv_first_nonfinite and mv_mm_nt split over `threads` threads (<= 0: OpenMP's default; one
 * for small inputs or inside a parallel region), the same results. */
size_t mv_first_nonfinite_par(const float *x, size_t n, int threads);
size_t mv_copy_first_nonfinite_par(float *dst, const float *src, size_t n, int threads);
void mv_mm_nt_par(float *C, const float *A, const float *Bm, int M, int N, int L, int threads);
/* raw (B, K) = the sum of np partial (B, K) arrays (stride floats apart) in order; logits =
 * raw times fac (K) by column. */
void mv_partial_logits(float *raw, float *logits, const float *parts, int np, size_t stride, int B,
                       int K, const float *fac);
/* Where the AVX2+FMA variants exist (kernels.c, loss.c, proto.c); mv_kernels_simd says at run
 * time whether the CPU runs them. */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define MV_HAVE_X86 1
#endif
/* 1 when the AVX2+FMA variants are in use. */
int mv_kernels_simd(void);
/* ---- the prototype methods (proto.c) ---- */

/* wg (K) = W_k . G_k of the backward pass, G = dlogits^T X, as sum_b dlogits_bk raw_bk from
 * the raw dot products raw = X W^T (B, K) of the forward pass, accumulated in acc (K) in
 * double, in row order. */
void mv_proto_wg(float *wg, double *acc, const float *dlogits, const float *raw, int B, int K);
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
 * threads (0 = the library's count); the same bits whatever the count. threads_used
 * (optional) receives the number that ran. */
enum medvlm_status mv_adapter_train_proto(struct medvlm_adapter *a, const float *X,
                                          const int64_t *Y, int n, float *losses, int threads,
                                          int *threads_used);
/* For tests: >= 0 makes mv_adapter_train_proto alternate, epoch by epoch, between the team and
 * thread (value mod threads) alone, whatever the timings; -1 (the default) leaves it to them. */
extern int mv_adapter_proto_alternate;
/* 1 if training method o on n rows of d features reads them from memory rather than cache
 * (over 4 MB, shuffled batches, a prototype method): then the rows are better on 2 MB pages
 * (mv_aligned_large), copied there by medvlm_adapter_train as it checks them. */
int mv_adapter_proto_stages(const struct medvlm_adapter_options *o, int n, int d);

/* ---- losses (loss.c) ---- */

/* Mean cross-entropy over B rows of logits (B, K) with labels Y; writes
 * dlogits = (softmax - onehot) / B when dlogits != NULL. */
double mv_cross_entropy(float *dlogits, const float *logits, const int64_t *Y, int B, int K);
/* The sum (not the mean) over the B rows, and dlogits = (softmax - onehot) gscale: one part
 * of a batch whose mean is taken later. */
double mv_cross_entropy_sum(float *dlogits, const float *logits, const int64_t *Y, int B, int K,
                            float gscale);
/* Only mv_cross_entropy_sum's dlogits (the same bits), for a caller that does not need the
 * value. */
void mv_cross_entropy_grad(float *dlogits, const float *logits, const int64_t *Y, int B, int K,
                           float gscale);

#endif

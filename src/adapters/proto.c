/*
 * proto.c - the prototype-classifier adapters: one weight row per class, cosine logits.
 *
 *   logits = s X normalise_rows(W)^T          X (B, D), W (K, D), s = exp(logit_scale)
 *
 *   zeroshot  W = zs, nothing trained
 *   lp        W trained from a random init (normal, std sqrt(2/D)) - Linear Probe
 *   zslp      W trained from zs - ZS-LP
 *   clap      zslp + sum_c lambda_c ||W_c - zs_c||^2 / K, lambda from the zero-shot
 *             probabilities of the training set (CLAP, Silva-Rodriguez et al. 2024)
 *   taskres   W = zs + alpha R, R trained from 0 (TaskRes, Yu et al. CVPR 2023)
 *
 * The normalisation is folded into the logits' columns, Wn_k = W_k / r_k with r_k = |W_k|
 * (F.normalize: max(r_k, 1e-12)), so Wn is never materialised: logits = (X W^T) s / r_k.
 * train_proto.c trains these methods with the same formulas, spread over threads.
 */
#include "adapters.h"

#include "../ops/ops.h"

#include <math.h>
#include <string.h>

/* ---- layouts and inits ---- */

static enum medvlm_status layout_none(struct medvlm_adapter *a)
{
    a->nparams = 0;
    return MEDVLM_OK;
}

static enum medvlm_status layout_named(struct medvlm_adapter *a, const char *name)
{
    a->nparams = 1;
    a->params[0] = (struct mv_adapter_param){
        .name = name, .ndim = 2, .shape = {a->k, a->d}, .n = (size_t)a->k * a->d};
    return MEDVLM_OK;
}

static enum medvlm_status layout_prototypes(struct medvlm_adapter *a)
{
    return layout_named(a, "prototypes");
}

static enum medvlm_status layout_residual(struct medvlm_adapter *a)
{
    return layout_named(a, "residual");
}

static enum medvlm_status init_none(struct medvlm_adapter *a, const float *X, const int64_t *Y,
                                    int n)
{
    (void)a, (void)X, (void)Y, (void)n;
    return MEDVLM_OK;
}

static enum medvlm_status init_lp(struct medvlm_adapter *a, const float *X, const int64_t *Y, int n)
{
    (void)X, (void)Y, (void)n;
    float *W = a->params[0].data;
    if (a->opt.init_prototypes) {
        memcpy(W, a->opt.init_prototypes, a->params[0].n * sizeof(float));
        return MEDVLM_OK;
    }
    struct mv_rng rng;
    mv_rng_seed(&rng, a->opt.seed);
    float std = sqrtf(2.0f / (float)a->d);
    for (size_t i = 0; i < a->params[0].n; i++) W[i] = std * mv_rng_normal(&rng);
    return MEDVLM_OK;
}

static enum medvlm_status init_zs(struct medvlm_adapter *a, const float *X, const int64_t *Y, int n)
{
    (void)X, (void)Y, (void)n;
    memcpy(a->params[0].data, a->zs, a->params[0].n * sizeof(float));
    return MEDVLM_OK;
}

/* p[i] = softmax(s l_i)[Y_i] for the rows l_i of logits (n, K): mv_softmax_forward's very
 * operations on the scaled logits, for the label's probability alone (K + 1 exponentials a
 * row instead of 2 K); rows split over up to `threads` threads. */
static void label_probs(float *p, const float *logits, const int64_t *Y, int n, int K, float s,
                        int threads)
{
    const int T = (size_t)n * K < 4096 ? 1 : MV_MAX(threads, 1);
#ifdef _OPENMP
#pragma omp parallel for num_threads(T) schedule(static) if (T > 1)
#else
    (void)T;
#endif
    for (int i = 0; i < n; i++) {
        const float *l = logits + (size_t)i * K;
        float mx = -INFINITY;
        for (int j = 0; j < K; j++) {
            const float x = l[j] * s;
            mx = x > mx ? x : mx;
        }
        double sum = 0;
        for (int j = 0; j < K; j++) sum += exp((double)(l[j] * s) - mx);
        p[i] = (float)(exp((double)(l[Y[i]] * s) - mx) / sum);
    }
}

/* lambda_c = mean over the training rows of class c of softmax(s X normalise(zs)^T)[c];
 * 0 for a class without rows. */
static enum medvlm_status init_clap(struct medvlm_adapter *a, const float *X, const int64_t *Y,
                                    int n)
{
    init_zs(a, X, Y, n);
    const int K = a->k, D = a->d;
    float *logits = mv_calloc((size_t)n * K + (size_t)n, sizeof(float));
    double *sum = mv_calloc((size_t)K, sizeof(double));
    int *count = mv_calloc((size_t)K, sizeof(int));
    if (!logits || !sum || !count) {
        mv_free(logits);
        mv_free(sum);
        mv_free(count);
        return MEDVLM_ERR_NOMEM;
    }
    float *p = logits + (size_t)n * K;
    mv_mm_nt_par(logits, X, a->zsn, n, K, D, a->opt.threads);
    label_probs(p, logits, Y, n, K, a->scale, a->opt.threads);
    for (int i = 0; i < n; i++) {
        sum[Y[i]] += p[i];
        count[Y[i]]++;
    }
    for (int c = 0; c < K; c++) {
        a->lambdas[c] = count[c] ? (float)(sum[c] / count[c]) : 0.0f;
        a->rhos[c] = a->opt.clap_rho;
    }
    mv_free(logits);
    mv_free(sum);
    mv_free(count);
    return MEDVLM_OK;
}

/* ---- forward / backward ---- */

static size_t ws_none(const struct medvlm_adapter *a, int B)
{
    (void)a, (void)B;
    return 1;
}

static size_t ws_proto(const struct medvlm_adapter *a, int B)
{
    return 2 * (size_t)a->k * a->d + 4 * (size_t)a->k + (size_t)B * a->k;
}

static void scale_logits(float *logits, float s, size_t n)
{
    for (size_t i = 0; i < n; i++) logits[i] *= s;
}

/* logits (B, K) = s X zsn^T */
static void forward_zeroshot(const struct medvlm_adapter *a, float *ws, const float *const *X,
                             int B, float *logits)
{
    (void)ws;
    mv_mm_nt_rows(logits, X, a->zsn, B, a->k, a->d, NULL);
    scale_logits(logits, a->scale, (size_t)B * a->k);
}

static void backward_none(struct medvlm_adapter *a, float *ws, const float *const *X, int B,
                          const float *dlogits)
{
    (void)a, (void)ws, (void)X, (void)B, (void)dlogits;
}

/* Workspace views for B rows: acc (K doubles) | Weff (K, D) | norms (K) | wg (K) | G (K, D) |
 * raw (B, K). */
struct proto_ws {
    double *acc;
    float *weff, *norms, *wg, *G, *raw;
};

static struct proto_ws proto_views(const struct medvlm_adapter *a, float *ws)
{
    const size_t kd = (size_t)a->k * a->d, K = (size_t)a->k;
    struct proto_ws v = {(double *)(void *)ws, ws + 2 * K,      ws + 2 * K + kd,
                         ws + 3 * K + kd,      ws + 4 * K + kd, ws + 4 * K + 2 * kd};
    return v;
}

/* W (K, D) of this step: the prototypes, or zs + alpha R for TaskRes. */
static const float *effective_w(const struct medvlm_adapter *a, float *weff)
{
    if (a->ops->method != MEDVLM_ADAPTER_TASKRES) return a->params[0].data;
    const float *R = a->params[0].data;
    for (size_t i = 0; i < (size_t)a->k * a->d; i++) weff[i] = a->zs[i] + a->opt.alpha * R[i];
    return weff;
}

/* logits (B, K) = s raw / max(r_k, eps) with raw = X W^T (kept for the backward pass) and
 * r_k = |W_k|. */
static void forward_proto(const struct medvlm_adapter *a, float *ws, const float *const *X, int B,
                          float *logits)
{
    const int K = a->k, D = a->d;
    struct proto_ws v = proto_views(a, ws);
    const float *W = effective_w(a, v.weff);
    mv_mm_nt_rows(v.raw, X, W, B, K, D, NULL);
    for (int k = 0; k < K; k++) {
        const float *w = W + (size_t)k * D;
        v.norms[k] = sqrtf(mv_dot(w, w, D));
    }
    for (int b = 0; b < B; b++)
        for (int k = 0; k < K; k++)
            logits[(size_t)b * K + k] =
                v.raw[(size_t)b * K + k] * (a->scale / fmaxf(v.norms[k], 1e-12f));
}

/* In the forward pass logits = s X Wn^T with Wn_k = W_k / r_k, so dWn = s G with
 * G = dlogits^T X, and through the normalisation
 *   dW_k = (dWn_k - Wn_k (Wn_k . dWn_k)) / r_k = (s / r_k) (G_k - W_k (W_k . G_k) / r_k^2)
 * (below eps the divisor is the constant eps). W_k . G_k = sum_b dlogits_bk (x_b . W_k)
 * comes from the forward pass's raw dot products (mv_coldot). TaskRes: W = zs + alpha R,
 * so dR = alpha dW. */
static void backward_proto(struct medvlm_adapter *a, float *ws, const float *const *X, int B,
                           const float *dlogits)
{
    const int K = a->k, D = a->d;
    struct proto_ws v = proto_views(a, ws);
    const float *W = a->ops->method == MEDVLM_ADAPTER_TASKRES ? v.weff : a->params[0].data;
    mv_mm_tn_rows(v.G, dlogits, X, K, D, B, NULL);
    float s = a->scale;
    if (a->ops->method == MEDVLM_ADAPTER_TASKRES) s *= a->opt.alpha;
    mv_coldot(v.wg, v.acc, dlogits, v.raw, B, K);
    for (int k = 0; k < K; k++) {
        const float *g = v.G + (size_t)k * D, *w = W + (size_t)k * D;
        float *dw = a->params[0].grad + (size_t)k * D;
        float r = v.norms[k];
        if (r > 1e-12f) {
            float inv = 1.0f / r;
            mv_axpby_acc(dw, s * inv, g, -s * v.wg[k] * inv * inv * inv, w, D);
        } else {
            mv_axpby_acc(dw, s / 1e-12f, g, 0.0f, w, D);
        }
    }
}

/* ---- CLAP: the class-wise penalty towards the zero-shot prototypes ---- */

/* mean_c lambda_c z_c with z_c = ||W_c - zs_c||^2: class c's term and its dz. The
 * augmented-Lagrangian variant (clap_alm) keeps this loss and moves lambda between epochs
 * (mv_clap_alm_update), as the authors' code does. */
double mv_clap_penalty(const struct medvlm_adapter *a, int c, double z, double *dz)
{
    *dz = a->lambdas[c];
    return a->lambdas[c] * z;
}

/* mean_c of the penalties; grad: dW += its gradient. */
static double clap_regularizer(struct medvlm_adapter *a, int grad)
{
    const int K = a->k, D = a->d;
    const float *W = a->params[0].data;
    float *dW = a->params[0].grad;
    double total = 0;
    for (int c = 0; c < K; c++) {
        const float *w = W + (size_t)c * D, *t = a->zs + (size_t)c * D;
        double dz;
        total += mv_clap_penalty(a, c, mv_sqdist(w, t, D), &dz);
        if (grad) {
            float f = (float)(2.0 * dz / K);
            mv_axpby_acc(dW + (size_t)c * D, f, w, -f, t, D);
        }
    }
    return total / K;
}

/* The CLAP code's outer step (its PHR gradient): x = lambda_c + rho_c z; lambda_c <- x when
 * x >= 0, else 0; then rho_c <- z. rho_c starts at clap_rho (0 there), so the first step
 * leaves lambda as it is. */
void mv_clap_alm_update(struct medvlm_adapter *a, int c, double z)
{
    double x = (double)a->lambdas[c] + (double)a->rhos[c] * z;
    a->lambdas[c] = (float)(x >= 0 ? x : 0);
    a->rhos[c] = (float)z;
}

/* Outer step of the augmented Lagrangian after an epoch, on the current distances. */
static void clap_epoch_end(struct medvlm_adapter *a)
{
    if (!a->opt.clap_alm) return;
    const int D = a->d;
    for (int c = 0; c < a->k; c++) {
        const float *w = a->params[0].data + (size_t)c * D, *t = a->zs + (size_t)c * D;
        mv_clap_alm_update(a, c, mv_sqdist_f64(w, t, D));
    }
}

const struct mv_adapter_ops mv_adapter_zeroshot_ops = {.method = MEDVLM_ADAPTER_ZEROSHOT,
                                                       .name = "zeroshot",
                                                       .trains = 0,
                                                       .layout = layout_none,
                                                       .init = init_none,
                                                       .ws_floats = ws_none,
                                                       .forward = forward_zeroshot,
                                                       .backward = backward_none};

const struct mv_adapter_ops mv_adapter_lp_ops = {.method = MEDVLM_ADAPTER_LP,
                                                 .name = "lp",
                                                 .trains = 1,
                                                 .layout = layout_prototypes,
                                                 .init = init_lp,
                                                 .ws_floats = ws_proto,
                                                 .forward = forward_proto,
                                                 .backward = backward_proto};

const struct mv_adapter_ops mv_adapter_zslp_ops = {.method = MEDVLM_ADAPTER_ZSLP,
                                                   .name = "zslp",
                                                   .trains = 1,
                                                   .layout = layout_prototypes,
                                                   .init = init_zs,
                                                   .ws_floats = ws_proto,
                                                   .forward = forward_proto,
                                                   .backward = backward_proto};

const struct mv_adapter_ops mv_adapter_clap_ops = {.method = MEDVLM_ADAPTER_CLAP,
                                                   .name = "clap",
                                                   .trains = 1,
                                                   .layout = layout_prototypes,
                                                   .init = init_clap,
                                                   .ws_floats = ws_proto,
                                                   .forward = forward_proto,
                                                   .backward = backward_proto,
                                                   .regularizer = clap_regularizer,
                                                   .epoch_end = clap_epoch_end};

const struct mv_adapter_ops mv_adapter_taskres_ops = {.method = MEDVLM_ADAPTER_TASKRES,
                                                      .name = "taskres",
                                                      .trains = 1,
                                                      .layout = layout_residual,
                                                      .init = init_none,
                                                      .ws_floats = ws_proto,
                                                      .forward = forward_proto,
                                                      .backward = backward_proto};

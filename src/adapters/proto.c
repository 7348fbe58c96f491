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
 * Forward, backward and the CLAP penalty work on a range of classes, so that the split
 * trainer (train_split.c) can give each thread its own classes.
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

/* lambda_c = mean over the training rows of class c of softmax(s X normalise(zs)^T)[c];
 * 0 for a class without rows. */
static enum medvlm_status init_clap(struct medvlm_adapter *a, const float *X, const int64_t *Y,
                                    int n)
{
    init_zs(a, X, Y, n);
    const int K = a->k, D = a->d;
    float *logits = mv_calloc((size_t)n * K, sizeof(float));
    double *sum = mv_calloc((size_t)K, sizeof(double));
    int *count = mv_calloc((size_t)K, sizeof(int));
    if (!logits || !sum || !count) {
        mv_free(logits);
        mv_free(sum);
        mv_free(count);
        return MEDVLM_ERR_NOMEM;
    }
    mv_mm_nt(logits, X, a->zsn, n, K, D);
    for (size_t i = 0; i < (size_t)n * K; i++) logits[i] *= a->scale;
    mv_softmax_forward(logits, logits, n, K);
    for (int i = 0; i < n; i++) {
        sum[Y[i]] += logits[(size_t)i * K + Y[i]];
        count[Y[i]]++;
    }
    for (int c = 0; c < K; c++) a->lambdas[c] = count[c] ? (float)(sum[c] / count[c]) : 0.0f;
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
    return 2 * (size_t)a->k * a->d + (size_t)a->k + 2 * (size_t)B * a->k;
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
    mv_mm_nt_rows(logits, X, a->zsn, B, a->k, a->d);
    scale_logits(logits, a->scale, (size_t)B * a->k);
}

static void backward_none(struct medvlm_adapter *a, float *ws, const float *const *X, int B,
                          const float *dlogits)
{
    (void)a, (void)ws, (void)X, (void)B, (void)dlogits;
}

/* Workspace views for B rows: Weff (K, D) | norms (K) | G (K, D) | lg (B, K) | dl (B, K). */
struct proto_ws {
    float *weff, *norms, *G, *lg, *dl;
};

static struct proto_ws proto_views(const struct medvlm_adapter *a, float *ws, int B)
{
    size_t kd = (size_t)a->k * a->d;
    struct proto_ws v = {ws, ws + kd, ws + kd + a->k, ws + 2 * kd + a->k, NULL};
    v.dl = v.lg + (size_t)B * a->k;
    return v;
}

/* Rows k0..k1-1 of W (K, D) of this step: the prototypes, or zs + alpha R for TaskRes. */
static const float *effective_w(const struct medvlm_adapter *a, float *weff, int k0, int k1)
{
    if (a->ops->method != MEDVLM_ADAPTER_TASKRES) return a->params[0].data;
    const float *R = a->params[0].data;
    for (size_t i = (size_t)k0 * a->d; i < (size_t)k1 * a->d; i++)
        weff[i] = a->zs[i] + a->opt.alpha * R[i];
    return weff;
}

/* Columns k0..k1-1 of logits (B, K). Every logit is computed the same way whatever the
 * range (see kernels.c), so splitting the classes over threads changes no bit. */
void mv_proto_forward_range(const struct medvlm_adapter *a, float *ws, const float *const *X, int B,
                            int k0, int k1, float *logits)
{
    const int K = a->k, D = a->d, kn = k1 - k0;
    struct proto_ws v = proto_views(a, ws, B);
    const float *W = effective_w(a, v.weff, k0, k1);
    float *out = kn == K ? logits : v.lg; /* (B, kn) */
    mv_mm_nt_rows(out, X, W + (size_t)k0 * D, B, kn, D);
    for (int k = k0; k < k1; k++) {
        const float *w = W + (size_t)k * D;
        v.norms[k] = sqrtf(mv_dot(w, w, D));
    }
    for (int b = 0; b < B; b++)
        for (int k = 0; k < kn; k++)
            logits[(size_t)b * K + k0 + k] =
                out[(size_t)b * kn + k] * (a->scale / fmaxf(v.norms[k0 + k], 1e-12f));
}

/* In the forward pass logits = s X Wn^T with Wn_k = W_k / r_k, so dWn = s G with
 * G = dlogits^T X, and through the normalisation
 *   dW_k = (dWn_k - Wn_k (Wn_k . dWn_k)) / r_k = (s / r_k) (G_k - W_k (W_k . G_k) / r_k^2)
 * (below eps the divisor is the constant eps). TaskRes: W = zs + alpha R, so dR = alpha dW.
 * Rows k0..k1-1 of the gradient only. */
void mv_proto_backward_range(struct medvlm_adapter *a, float *ws, const float *const *X, int B,
                             int k0, int k1, const float *dlogits)
{
    const int K = a->k, D = a->d, kn = k1 - k0;
    struct proto_ws v = proto_views(a, ws, B);
    const float *W = a->ops->method == MEDVLM_ADAPTER_TASKRES ? v.weff : a->params[0].data;
    const float *dl = dlogits; /* (B, kn) */
    if (kn != K) {
        for (int b = 0; b < B; b++)
            memcpy(v.dl + (size_t)b * kn, dlogits + (size_t)b * K + k0, (size_t)kn * sizeof(float));
        dl = v.dl;
    }
    float *G = v.G + (size_t)k0 * D;
    memset(G, 0, (size_t)kn * D * sizeof(float));
    mv_mm_tn_acc_rows(G, dl, X, kn, D, B);
    float s = a->scale;
    if (a->ops->method == MEDVLM_ADAPTER_TASKRES) s *= a->opt.alpha;
    for (int k = k0; k < k1; k++) {
        const float *g = v.G + (size_t)k * D, *w = W + (size_t)k * D;
        float *dw = a->params[0].grad + (size_t)k * D;
        float r = v.norms[k];
        if (r > 1e-12f) {
            float inv = 1.0f / r;
            float wg = mv_dot(w, g, D);
            mv_axpby_acc(dw, s * inv, g, -s * wg * inv * inv * inv, w, D);
        } else {
            mv_axpby_acc(dw, s / 1e-12f, g, 0.0f, w, D);
        }
    }
}

static void forward_proto(const struct medvlm_adapter *a, float *ws, const float *const *X, int B,
                          float *logits)
{
    mv_proto_forward_range(a, ws, X, B, 0, a->k, logits);
}

static void backward_proto(struct medvlm_adapter *a, float *ws, const float *const *X, int B,
                           const float *dlogits)
{
    mv_proto_backward_range(a, ws, X, B, 0, a->k, dlogits);
}

/* ---- CLAP: the class-wise penalty towards the zero-shot prototypes ---- */

/* Plain: mean_c lambda_c z_c with z_c = ||W_c - zs_c||^2.
 * Augmented Lagrangian (clap_alm): mean_c P(z_c, lambda_c, rho) with the PHR penalty
 * P = lambda z + rho z^2 / 2 when lambda + rho z >= 0, else -lambda^2 / (2 rho);
 * dP/dz = max(lambda + rho z, 0). */
double mv_clap_penalty(const struct medvlm_adapter *a, int c, double z, double *dz)
{
    const double lam = a->lambdas[c], rho = a->opt.clap_rho;
    if (!a->opt.clap_alm) {
        *dz = lam;
        return lam * z;
    }
    if (lam + rho * z >= 0) {
        *dz = lam + rho * z;
        return lam * z + rho * z * z / 2;
    }
    *dz = 0;
    return -lam * lam / (2 * rho);
}

/* terms[c - k0] = the penalty of class c (without the 1/K); grad: dW rows += its gradient. */
void mv_clap_penalty_range(struct medvlm_adapter *a, int k0, int k1, int grad, double *terms)
{
    const int K = a->k, D = a->d;
    const float *W = a->params[0].data;
    float *dW = a->params[0].grad;
    for (int c = k0; c < k1; c++) {
        const float *w = W + (size_t)c * D, *t = a->zs + (size_t)c * D;
        double dz;
        terms[c - k0] = mv_clap_penalty(a, c, mv_sqdist(w, t, D), &dz);
        if (grad) {
            float f = (float)(2.0 * dz / K);
            mv_axpby_acc(dW + (size_t)c * D, f, w, -f, t, D);
        }
    }
}

static double clap_regularizer(struct medvlm_adapter *a, int grad)
{
    double terms[256], total = 0;
    for (int k0 = 0; k0 < a->k; k0 += 256) {
        int k1 = MV_MIN(a->k, k0 + 256);
        mv_clap_penalty_range(a, k0, k1, grad, terms);
        for (int c = k0; c < k1; c++) total += terms[c - k0];
    }
    return total / a->k;
}

void mv_clap_alm_update(struct medvlm_adapter *a, int c, double z)
{
    double v = a->lambdas[c] + a->opt.clap_rho * z;
    a->lambdas[c] = (float)(v > 0 ? v : 0);
}

/* Outer step of the augmented Lagrangian: lambda_c <- dP/dz at the current W. */
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

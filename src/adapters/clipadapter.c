/*
 * clipadapter.c - CLIP-Adapter (Gao et al., IJCV 2023): a bottleneck MLP on the image
 * features mixed back into them with ratio alpha, then cosine logits against the fixed
 * zero-shot prototypes.
 *
 *   h1 = relu(X w1^T)                  (B, H)   w1 = mlp.0.weight (H, D)
 *   h2 = relu(h1 w2^T)                 (B, D)   w2 = mlp.2.weight (D, H)
 *   f  = (1 - alpha) X + alpha h2      (B, D)
 *   logits = s normalise(f) zsn^T      (B, K)
 *
 * Workspace for B rows: h1 (B, H) | h2 (B, D) | fn (B, D) | fnorm (B) | dfn (B, D) | dh1 (B, H).
 */
#include "adapters.h"

#include <math.h>
#include <string.h>

static int hidden_of(const struct medvlm_adapter *a)
{
    return (int)a->params[0].shape[0];
}

static enum medvlm_status layout(struct medvlm_adapter *a)
{
    int H = a->opt.hidden > 0 ? a->opt.hidden : MV_MAX(a->d / 4, 1);
    a->nparams = 2;
    a->params[0] = (struct mv_adapter_param){
        .name = "mlp.0.weight", .ndim = 2, .shape = {H, a->d}, .n = (size_t)H * a->d};
    a->params[1] = (struct mv_adapter_param){
        .name = "mlp.2.weight", .ndim = 2, .shape = {a->d, H}, .n = (size_t)a->d * H};
    a->opt.hidden = H;
    return MEDVLM_OK;
}

/* torch.nn.Linear's default: kaiming_uniform(a = sqrt 5) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
static void uniform_init(float *w, size_t n, int fan_in, struct mv_rng *rng)
{
    float bound = 1.0f / sqrtf((float)fan_in);
    for (size_t i = 0; i < n; i++) w[i] = (float)((2.0 * mv_rng_uniform(rng) - 1.0) * bound);
}

static enum medvlm_status init(struct medvlm_adapter *a, const float *X, const int64_t *Y, int n)
{
    (void)X, (void)Y, (void)n;
    struct mv_rng rng;
    mv_rng_seed(&rng, a->opt.seed);
    int H = hidden_of(a);
    if (a->opt.init_w1)
        memcpy(a->params[0].data, a->opt.init_w1, a->params[0].n * sizeof(float));
    else
        uniform_init(a->params[0].data, a->params[0].n, a->d, &rng);
    if (a->opt.init_w2)
        memcpy(a->params[1].data, a->opt.init_w2, a->params[1].n * sizeof(float));
    else
        uniform_init(a->params[1].data, a->params[1].n, H, &rng);
    return MEDVLM_OK;
}

static size_t ws_floats(const struct medvlm_adapter *a, int B)
{
    size_t H = (size_t)hidden_of(a), D = (size_t)a->d;
    return (size_t)B * (2 * H + 3 * D + 1);
}

struct views {
    float *h1, *h2, *fn, *fnorm, *dfn, *dh1;
};

static struct views carve(const struct medvlm_adapter *a, float *ws, int B)
{
    size_t H = (size_t)hidden_of(a), D = (size_t)a->d, b = (size_t)B;
    struct views v;
    v.h1 = ws;
    v.h2 = v.h1 + b * H;
    v.fn = v.h2 + b * D;
    v.fnorm = v.fn + b * D;
    v.dfn = v.fnorm + b;
    v.dh1 = v.dfn + b * D;
    return v;
}

static void forward(const struct medvlm_adapter *a, float *ws, const float *const *X, int B,
                    float *logits)
{
    const int H = hidden_of(a), D = a->d, K = a->k;
    const float *w1 = a->params[0].data, *w2 = a->params[1].data;
    const float alpha = a->opt.alpha;
    struct views v = carve(a, ws, B);
    mv_mm_nt_rows(v.h1, X, w1, B, H, D, NULL);
    for (size_t i = 0; i < (size_t)B * H; i++) v.h1[i] = v.h1[i] > 0 ? v.h1[i] : 0;
    mv_mm_nt(v.h2, v.h1, w2, B, D, H);
    for (size_t i = 0; i < (size_t)B * D; i++) v.h2[i] = v.h2[i] > 0 ? v.h2[i] : 0;
    for (int b = 0; b < B; b++) {
        float *f = v.fn + (size_t)b * D;
        const float *x = X[b], *h = v.h2 + (size_t)b * D;
        double ss = 0;
        for (int j = 0; j < D; j++) {
            f[j] = (1.0f - alpha) * x[j] + alpha * h[j];
            ss += (double)f[j] * f[j];
        }
        float nrm = (float)sqrt(ss);
        v.fnorm[b] = nrm;
        float den = fmaxf(nrm, 1e-12f);
        for (int j = 0; j < D; j++) f[j] /= den;
    }
    mv_mm_nt(logits, v.fn, a->zsn, B, K, D);
    for (size_t i = 0; i < (size_t)B * K; i++) logits[i] *= a->scale;
}

/* Backward through the forward above, last line first:
 *   dfn = s dlogits zsn; df = (dfn - fn (fn . dfn)) / |f|; dh2 = alpha df [h2 > 0];
 *   dw2 += dh2^T h1; dh1 = dh2 w2 [h1 > 0]; dw1 += dh1^T X. */
static void backward(struct medvlm_adapter *a, float *ws, const float *const *X, int B,
                     const float *dlogits)
{
    const int H = hidden_of(a), D = a->d, K = a->k;
    const float *w2 = a->params[1].data;
    float *dw1 = a->params[0].grad, *dw2 = a->params[1].grad;
    const float alpha = a->opt.alpha;
    struct views v = carve(a, ws, B);
    for (int b = 0; b < B; b++) {
        float *g = v.dfn + (size_t)b * D;
        const float *fn = v.fn + (size_t)b * D, *h2 = v.h2 + (size_t)b * D;
        memset(g, 0, (size_t)D * sizeof(float));
        for (int k = 0; k < K; k++) {
            float dl = a->scale * dlogits[(size_t)b * K + k];
            const float *z = a->zsn + (size_t)k * D;
            for (int j = 0; j < D; j++) g[j] += dl * z[j];
        }
        double proj = 0;
        for (int j = 0; j < D; j++) proj += (double)fn[j] * g[j];
        float p = (float)proj;
        float inv = v.fnorm[b] > 1e-12f ? 1.0f / v.fnorm[b] : 1e12f;
        if (!(v.fnorm[b] > 1e-12f)) p = 0;
        /* g becomes dh2 in place */
        for (int j = 0; j < D; j++) g[j] = h2[j] > 0 ? alpha * (g[j] - fn[j] * p) * inv : 0;
    }
    float *dh2 = v.dfn;
    mv_mm_tn_acc(dw2, dh2, v.h1, D, H, B);
    for (int b = 0; b < B; b++) {
        float *dh = v.dh1 + (size_t)b * H;
        const float *h1 = v.h1 + (size_t)b * H, *g = dh2 + (size_t)b * D;
        memset(dh, 0, (size_t)H * sizeof(float));
        for (int j = 0; j < D; j++) {
            float gj = g[j];
            const float *w = w2 + (size_t)j * H;
            for (int h = 0; h < H; h++) dh[h] += gj * w[h];
        }
        for (int h = 0; h < H; h++) dh[h] = h1[h] > 0 ? dh[h] : 0;
    }
    mv_mm_tn_acc_rows(dw1, v.dh1, X, H, D, B);
}

const struct mv_adapter_ops mv_adapter_clipadapter_ops = {.method = MEDVLM_ADAPTER_CLIPADAPTER,
                                                          .name = "clipadapter",
                                                          .trains = 1,
                                                          .layout = layout,
                                                          .init = init,
                                                          .ws_floats = ws_floats,
                                                          .forward = forward,
                                                          .backward = backward};

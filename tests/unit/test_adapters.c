/*
 * test_adapters.c - the adapters against independent oracles:
 * - every backward against central finite differences of a double-precision re-implementation
 *   of the forward written here (so forward and backward are both checked);
 * - hand-computed Tip-Adapter logits and one TaskRes step;
 * - lr = 0 leaves every parameter bit-identical, for every optimizer;
 * - optimizer rules by hand (the kernels under the adapters: test_small.c);
 * - save / load round trips, shuffling, and error messages.
 */
#include "adapters/adapters.h"
#include "check.h"
#include "ops/ops.h"
#include "optim/optim.h"

#include <omp.h>
#include <unistd.h>

static void fill_normal(float *p, size_t n, struct mv_rng *r, float sd)
{
    for (size_t i = 0; i < n; i++) p[i] = sd * mv_rng_normal(r);
}

static void normalize(float *p, int rows, int d)
{
    for (int i = 0; i < rows; i++) {
        double s = 0;
        for (int j = 0; j < d; j++) s += (double)p[i * d + j] * p[i * d + j];
        for (int j = 0; j < d; j++) p[i * d + j] = (float)(p[i * d + j] / sqrt(s));
    }
}

/* ---------------------------------------------------------------- double-precision oracle */

struct problem {
    int B, D, K;
    const float *X, *zs;
    const int64_t *Y;
    double s;
};

static double ce_d(const double *logits, const int64_t *Y, int B, int K)
{
    double tot = 0;
    for (int b = 0; b < B; b++) {
        double mx = logits[b * K];
        for (int k = 1; k < K; k++) mx = fmax(mx, logits[b * K + k]);
        double sum = 0;
        for (int k = 0; k < K; k++) sum += exp(logits[b * K + k] - mx);
        tot += mx + log(sum) - logits[b * K + Y[b]];
    }
    return tot / B;
}

static void cos_logits_d(double *logits, const double *F, const double *W, int B, int K, int D,
                         double s, int normalize_f)
{
    for (int b = 0; b < B; b++) {
        double fn = 0;
        for (int j = 0; j < D; j++) fn += F[b * D + j] * F[b * D + j];
        fn = normalize_f ? sqrt(fn) : 1.0;
        for (int k = 0; k < K; k++) {
            double wn = 0, dot = 0;
            for (int j = 0; j < D; j++) {
                wn += W[k * D + j] * W[k * D + j];
                dot += F[b * D + j] * W[k * D + j];
            }
            logits[b * K + k] = s * dot / (sqrt(wn) * fn);
        }
    }
}

/* The loss of adapter a's method with parameters p (all params concatenated, double). */
static double loss_d(const struct medvlm_adapter *a, const struct problem *pr, const double *p)
{
    const int B = pr->B, D = pr->D, K = pr->K;
    double *logits = calloc((size_t)B * K, sizeof(double));
    double *X = calloc((size_t)B * D, sizeof(double));
    double *W = calloc((size_t)K * D, sizeof(double));
    for (int i = 0; i < B * D; i++) X[i] = pr->X[i];
    double reg = 0;
    enum medvlm_adapter_method m = a->ops->method;
    if (m == MEDVLM_ADAPTER_LP || m == MEDVLM_ADAPTER_ZSLP || m == MEDVLM_ADAPTER_CLAP ||
        m == MEDVLM_ADAPTER_TASKRES) {
        for (int i = 0; i < K * D; i++)
            W[i] = m == MEDVLM_ADAPTER_TASKRES ? pr->zs[i] + (double)a->opt.alpha * p[i] : p[i];
        cos_logits_d(logits, X, W, B, K, D, pr->s, 0);
        if (m == MEDVLM_ADAPTER_CLAP)
            for (int k = 0; k < K; k++) {
                double z = 0;
                for (int j = 0; j < D; j++)
                    z += (p[k * D + j] - pr->zs[k * D + j]) * (p[k * D + j] - pr->zs[k * D + j]);
                reg += a->lambdas[k] * z; /* ALM keeps this loss, moving lambda between epochs */
            }
        reg /= K;
    } else if (m == MEDVLM_ADAPTER_CLIPADAPTER) {
        int H = a->opt.hidden;
        const double *w1 = p, *w2 = p + (size_t)H * D;
        double *F = calloc((size_t)B * D, sizeof(double)), *h1 = calloc((size_t)H, sizeof(double));
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < H; h++) {
                double t = 0;
                for (int j = 0; j < D; j++) t += X[b * D + j] * w1[h * D + j];
                h1[h] = t > 0 ? t : 0;
            }
            for (int j = 0; j < D; j++) {
                double t = 0;
                for (int h = 0; h < H; h++) t += h1[h] * w2[j * H + h];
                double alpha = a->opt.alpha;
                F[b * D + j] = (1 - alpha) * X[b * D + j] + alpha * (t > 0 ? t : 0);
            }
        }
        for (int i = 0; i < K * D; i++) W[i] = pr->zs[i];
        cos_logits_d(logits, F, W, B, K, D, pr->s, 1);
        free(F);
        free(h1);
    } else { /* tip-adapter(-f): p = keys (N, D) */
        for (int i = 0; i < K * D; i++) W[i] = pr->zs[i];
        cos_logits_d(logits, X, W, B, K, D, pr->s, 0);
        for (int b = 0; b < B; b++)
            for (int n = 0; n < a->n_cache; n++) {
                double aff = 0;
                for (int j = 0; j < D; j++) aff += X[b * D + j] * p[n * D + j];
                logits[b * K + a->cache_labels[n]] += a->opt.alpha * exp(-a->opt.beta * (1 - aff));
            }
    }
    double L = ce_d(logits, pr->Y, B, K) + reg;
    free(logits);
    free(X);
    free(W);
    return L;
}

/* Analytic gradient (the library's forward + CE + backward + regulariser) vs central
 * differences of loss_d. */
static void gradcheck(enum medvlm_adapter_method m, int alm, uint64_t seed)
{
    const int B = 6, D = 9, K = 3;
    struct mv_rng r;
    mv_rng_seed(&r, seed);
    float X[6 * 9], zs[3 * 9];
    int64_t Y[6];
    fill_normal(X, sizeof X / sizeof X[0], &r, 1);
    normalize(X, B, D);
    fill_normal(zs, sizeof zs / sizeof zs[0], &r, 1);
    normalize(zs, K, D);
    for (int b = 0; b < B; b++) Y[b] = b % K;
    struct medvlm_adapter_options o;
    medvlm_adapter_options_default(&o, m);
    o.epochs = 0;
    o.hidden = 3;
    o.alpha = 0.7f;
    o.beta = 2.0f;
    o.clap_alm = alm;
    o.clap_rho = 0.5f;
    o.seed = seed;
    struct medvlm_adapter *a = NULL;
    CHECK_OK(medvlm_adapter_train(&o, X, Y, B, D, zs, K, 1.5f, &a, NULL));
    if (!a) return;
    /* move the parameters off their init so that every term has a gradient */
    for (size_t i = 0; i < a->param_total; i++) a->param_buf[i] += 0.3f * mv_rng_normal(&r);
    if (m == MEDVLM_ADAPTER_CLAP)
        for (int k = 0; k < K; k++) a->lambdas[k] = 0.2f + 0.3f * (float)k;
    struct problem pr = {B, D, K, X, zs, Y, exp(1.5)};
    float *ws = calloc(a->ops->ws_floats(a, B), sizeof(float));
    float logits[6 * 3], dlogits[6 * 3];
    const float *rows[6];
    for (int b = 0; b < B; b++) rows[b] = X + (size_t)b * D;
    memset(a->grad_buf, 0, a->param_total * sizeof(float));
    a->ops->forward(a, ws, rows, B, logits);
    double loss = mv_cross_entropy(dlogits, logits, Y, B, K);
    a->ops->backward(a, ws, rows, B, dlogits);
    if (a->ops->regularizer) loss += a->ops->regularizer(a, 1);
    size_t P = a->param_total;
    double *p = calloc(P, sizeof(double));
    for (size_t i = 0; i < P; i++) p[i] = a->param_buf[i];
    CHECK(fabs(loss - loss_d(a, &pr, p)) < 1e-5 * fmax(1, fabs(loss)),
          "%s: loss %.9g vs double oracle %.9g", a->ops->name, loss, loss_d(a, &pr, p));
    float *fd = calloc(P, sizeof(float));
    const double h = 1e-6;
    for (size_t i = 0; i < P; i++) {
        double keep = p[i];
        p[i] = keep + h;
        double lp = loss_d(a, &pr, p);
        p[i] = keep - h;
        double lm = loss_d(a, &pr, p);
        p[i] = keep;
        fd[i] = (float)((lp - lm) / (2 * h));
    }
    char name[96];
    snprintf(name, sizeof name, "grad %s%s (%zu params)", a->ops->name, alm ? " alm" : "", P);
    double gmax = 0;
    for (size_t i = 0; i < P; i++) gmax = fmax(gmax, fabs(fd[i]));
    CHECK(gmax > 1e-3, "%s: gradient not exercised (max %g)", name, gmax);
    check_close_f32(name, a->grad_buf, fd, P, 2e-5 * fmax(gmax, 1), 2e-3);
    free(fd);
    free(p);
    free(ws);
    medvlm_adapter_free(a);
}

/* ---------------------------------------------------------------- hand-computed cases */

static void test_tip_hand(void)
{
    /* cache = the unit vectors e0 (class 0), e1 (class 1); zs = the same; s = exp(0) = 1.
     * x = (0.6, 0.8): zero-shot logits (0.6, 0.8), affinities (0.6, 0.8),
     * A = exp(-beta (1 - aff)); logits = (0.6 + alpha A0, 0.8 + alpha A1). */
    const float Xc[4] = {1, 0, 0, 1}, zs[4] = {1, 0, 0, 1}, x[2] = {0.6f, 0.8f};
    const int64_t Y[2] = {0, 1};
    struct medvlm_adapter_options o;
    medvlm_adapter_options_default(&o, MEDVLM_ADAPTER_TIPADAPTER);
    CHECK(o.alpha == 1.0f && o.beta == 1.0f, "Tip-Adapter defaults alpha = beta = 1");
    struct medvlm_adapter *a = NULL;
    float logits[2];
    CHECK_OK(medvlm_adapter_train(&o, Xc, Y, 2, 2, zs, 2, 0.0f, &a, NULL));
    CHECK_OK(medvlm_adapter_logits(a, x, 1, logits));
    const float want1[2] = {1.27032005f, 1.61873075f}; /* 0.6 + e^-0.4, 0.8 + e^-0.2 */
    check_close_f32("tip alpha 1 beta 1", logits, want1, 2, 1e-6, 1e-6);
    medvlm_adapter_free(a);
    o.alpha = 2;
    o.beta = 2;
    CHECK_OK(medvlm_adapter_train(&o, Xc, Y, 2, 2, zs, 2, 0.0f, &a, NULL));
    CHECK_OK(medvlm_adapter_logits(a, x, 1, logits));
    const float want2[2] = {1.49865793f, 2.14064009f}; /* 0.6 + 2e^-0.8, 0.8 + 2e^-0.4 */
    check_close_f32("tip alpha 2 beta 2", logits, want2, 2, 1e-6, 1e-6);
    medvlm_adapter_free(a);
}

static void test_taskres_hand(void)
{
    /* zs = I (2x2), s = 1, one sample x = e0 of class 0, alpha 0.5, one plain SGD step lr 1.
     * logits (1, 0): loss = log(1 + e^-1) = 0.313261688; dlogits = (p0 - 1, p1) with
     * p1 = 1/(1+e) = 0.268941421. Through the normalisation (|W_k| = 1):
     * dW_0 = (-p1, 0) - e0 (-p1) = 0, dW_1 = (p1, 0) - e1 * 0 = (p1, 0); dR = 0.5 dW, so after
     * the step R_1 = (-0.134470711, 0), W_1 = e1 + 0.5 R_1, and for x = e0 the class-1 logit is
     * -0.0672353553 / |W_1| = -0.0670838968. */
    const float zs[4] = {1, 0, 0, 1}, x[2] = {1, 0};
    const int64_t Y[1] = {0};
    struct medvlm_adapter_options o;
    medvlm_adapter_options_default(&o, MEDVLM_ADAPTER_TASKRES);
    o.epochs = 1;
    o.lr = 1;
    o.momentum = 0;
    o.alpha = 0.5f;
    struct medvlm_adapter *a = NULL;
    float loss[1], logits[2];
    CHECK_OK(medvlm_adapter_train(&o, x, Y, 1, 2, zs, 2, 0.0f, &a, loss));
    if (!a) return;
    const float want_loss[1] = {0.313261688f};
    check_close_f32("taskres loss", loss, want_loss, 1, 1e-7, 1e-6);
    size_t n;
    const float *R = medvlm_adapter_param(a, "residual", &n);
    const float want_r[4] = {0, 0, -0.134470711f, 0};
    CHECK(R && n == 4, "residual present");
    if (R) check_close_f32("taskres residual", R, want_r, 4, 1e-7, 1e-6);
    CHECK_OK(medvlm_adapter_logits(a, x, 1, logits));
    const float want_l[2] = {1.0f, -0.0670838968f};
    check_close_f32("taskres logits", logits, want_l, 2, 1e-7, 1e-6);
    medvlm_adapter_free(a);
}

/* ---------------------------------------------------------------- properties */

static void random_task(struct mv_rng *r, float *X, int64_t *Y, float *zs, int n, int d, int k)
{
    fill_normal(X, (size_t)n * d, r, 1);
    normalize(X, n, d);
    fill_normal(zs, (size_t)k * d, r, 1);
    normalize(zs, k, d);
    for (int i = 0; i < n; i++) Y[i] = i % k;
}

static void test_lr_zero(void)
{
    enum { N = 40, D = 16, K = 4 };
    static float X[N * D], zs[K * D];
    static int64_t Y[N];
    struct mv_rng r;
    mv_rng_seed(&r, 7);
    random_task(&r, X, Y, zs, N, D, K);
    static const enum medvlm_optimizer opts[] = {MEDVLM_OPTIMIZER_SGD, MEDVLM_OPTIMIZER_ADAM,
                                                 MEDVLM_OPTIMIZER_ADAMW};
    for (int m = 0; m < MEDVLM_ADAPTER_COUNT; m++) {
        struct medvlm_adapter_options o;
        medvlm_adapter_options_default(&o, (enum medvlm_adapter_method)m);
        if (!mv_adapter_ops_for(o.method)->trains) continue;
        for (size_t oi = 0; oi < 3; oi++) {
            struct medvlm_adapter *a0 = NULL, *a1 = NULL;
            o.optimizer = opts[oi];
            o.batch_size = 8; /* shuffled mini-batches */
            o.weight_decay = 0.1f;
            o.clap_alm = 0;
            o.epochs = 0;
            CHECK_OK(medvlm_adapter_train(&o, X, Y, N, D, zs, K, 2.0f, &a0, NULL));
            o.epochs = 3;
            o.lr = 0;
            float losses[3 * (N / 8)];
            CHECK_OK(medvlm_adapter_train(&o, X, Y, N, D, zs, K, 2.0f, &a1, losses));
            CHECK(a0 && a1 && a0->param_total == a1->param_total &&
                      memcmp(a0->param_buf, a1->param_buf, a0->param_total * sizeof(float)) == 0,
                  "%s optimizer %zu: lr 0 changed a parameter", mv_adapter_ops_for(o.method)->name,
                  oi);
            CHECK(isfinite(losses[0]) && losses[0] > 0, "losses written");
            medvlm_adapter_free(a0);
            medvlm_adapter_free(a1);
        }
    }
}

/* The trainer's check of its features names the sample and the feature. */
static void test_nonfinite_features(void)
{
    const int N = 2500, D = 512;
    float *x = calloc((size_t)N * D, sizeof(float));
    struct mv_rng r;
    mv_rng_seed(&r, 9);
    fill_normal(x, (size_t)N * D, &r, 1);
    int64_t *Y = calloc(N, sizeof(int64_t));
    float zs[4 * 512];
    fill_normal(zs, MV_ARRAY_LEN(zs), &r, 1);
    x[(size_t)2001 * D + 17] = NAN;
    struct medvlm_adapter_options o;
    medvlm_adapter_options_default(&o, MEDVLM_ADAPTER_LP);
    struct medvlm_adapter *a = NULL;
    CHECK_ERR(medvlm_adapter_train(&o, x, Y, N, D, zs, 4, 1.0f, &a, NULL), MEDVLM_ERR_ARG,
              "feature 17 of sample 2001 is not finite");
    x[(size_t)2001 * D + 17] = 0;
    free(x), free(Y);
}

static void test_optim_rules(void)
{
    float p[1] = {1}, g[1] = {1};
    struct mv_span sp = {p, g, 1};
    struct mv_optim o;
    struct mv_optim_config c;
    mv_optim_config_default(&c, MV_OPTIM_SGD);
    c.momentum = 0.9f;
    CHECK_OK(mv_optim_init(&o, &c, &sp, 1));
    mv_optim_step(&o, 0.1f); /* buf = 1, p = 0.9 */
    CHECK(fabsf(p[0] - 0.9f) < 1e-7f, "sgd step 1: %g", p[0]);
    mv_optim_step(&o, 0.1f); /* buf = 0.9 + 1 = 1.9, p = 0.71 */
    CHECK(fabsf(p[0] - 0.71f) < 1e-6f, "sgd step 2: %g", p[0]);
    mv_optim_free(&o);
    p[0] = 1;
    g[0] = 0.5f;
    mv_optim_config_default(&c, MV_OPTIM_ADAM);
    CHECK_OK(mv_optim_init(&o, &c, &sp, 1));
    mv_optim_step(&o, 0.1f); /* bias-corrected m / sqrt(v) = g / |g| */
    CHECK(fabsf(p[0] - 0.9f) < 1e-6f, "adam step 1: %g", p[0]);
    g[0] = 0;
    mv_optim_step(&o, 0.1f); /* m = 0.045, v = 0.000249750; mhat = 0.236842, vhat = 0.124937 */
    CHECK(fabsf(p[0] - (0.9f - 0.1f * 0.236842f / sqrtf(0.124937f))) < 1e-6f, "adam step 2: %g",
          p[0]);
    mv_optim_free(&o);
    p[0] = 2;
    g[0] = 0;
    mv_optim_config_default(&c, MV_OPTIM_ADAMW);
    CHECK(c.weight_decay == 0.01f, "AdamW default weight decay");
    CHECK_OK(mv_optim_init(&o, &c, &sp, 1));
    mv_optim_step(&o, 0.5f); /* decoupled: p *= 1 - 0.5 * 0.01 */
    CHECK(fabsf(p[0] - 1.99f) < 1e-6f, "adamw decay: %g", p[0]);
    mv_optim_free(&o);
    CHECK(mv_sched_lr(MV_SCHED_COSINE, 1, 0, 0, 10) == 1.0f, "cosine start");
    CHECK(fabsf(mv_sched_lr(MV_SCHED_COSINE, 1, 0, 5, 10) - 0.5f) < 1e-6f, "cosine middle");
    CHECK(mv_sched_lr(MV_SCHED_COSINE, 1, 0, 10, 10) < 1e-6f, "cosine end");
    CHECK(mv_sched_lr(MV_SCHED_CONSTANT, 0.3f, 0, 7, 10) == 0.3f, "constant");
    /* ranges of a step (as threads apply them, across a span boundary) = the whole step */
    for (int kind = MV_OPTIM_SGD; kind <= MV_OPTIM_ADAMW; kind++) {
        float pa[19], pb[19], ga[19];
        for (int i = 0; i < 19; i++)
            pa[i] = pb[i] = 0.1f * (float)i - 0.5f, ga[i] = 0.3f - 0.05f * i;
        struct mv_span sa[2] = {{pa, ga, 11}, {pa + 11, ga + 11, 8}};
        struct mv_span sb[2] = {{pb, ga, 11}, {pb + 11, ga + 11, 8}};
        struct mv_optim oa, ob;
        mv_optim_config_default(&c, (enum mv_optim_kind)kind);
        c.momentum = kind == MV_OPTIM_SGD ? 0.9f : 0.0f;
        CHECK_OK(mv_optim_init(&oa, &c, sa, 2));
        CHECK_OK(mv_optim_init(&ob, &c, sb, 2));
        for (long t = 1; t <= 3; t++) {
            mv_optim_step(&oa, 0.01f);
            mv_optim_update(&ob, 0.01f, t, 7, 12);
            mv_optim_update(&ob, 0.01f, t, 0, 7);
        }
        CHECK(memcmp(pa, pb, sizeof pa) == 0, "optimizer %d: ranges differ from whole steps", kind);
        mv_optim_free(&oa);
        mv_optim_free(&ob);
    }
}

static void test_training_behaviour(void)
{
    enum { N = 100, D = 32, K = 4 };
    static float X[N * D], zs[K * D];
    static int64_t Y[N];
    struct mv_rng r;
    mv_rng_seed(&r, 11);
    random_task(&r, X, Y, zs, N, D, K);
    /* make the task learnable: pull every row towards a class direction */
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++) X[i * D + j] += 0.3f * zs[Y[i] * D + j];
    normalize(X, N, D);
    struct medvlm_adapter_options o;
    medvlm_adapter_options_default(&o, MEDVLM_ADAPTER_CLAP);
    CHECK(medvlm_adapter_steps(&o, N) == 100 * 3, "steps = epochs x max(N / batch, 1): %ld",
          medvlm_adapter_steps(&o, N));
    o.batch_size = 200;
    CHECK(medvlm_adapter_steps(&o, N) == 100, "batch > N: one step per epoch");
    o.batch_size = 32;
    float l1[300], l2[300], l3[300];
    struct medvlm_adapter *a1, *a2, *a3;
    o.seed = 5;
    CHECK_OK(medvlm_adapter_train(&o, X, Y, N, D, zs, K, 3.0f, &a1, l1));
    CHECK_OK(medvlm_adapter_train(&o, X, Y, N, D, zs, K, 3.0f, &a2, l2));
    o.seed = 6;
    CHECK_OK(medvlm_adapter_train(&o, X, Y, N, D, zs, K, 3.0f, &a3, l3));
    CHECK(memcmp(l1, l2, sizeof l1) == 0, "same seed, same trajectory");
    CHECK(memcmp(l1, l3, sizeof l1) != 0, "another seed shuffles differently");
    CHECK(l1[297] + l1[298] + l1[299] < l1[0] + l1[1] + l1[2], "training lowers the loss: %g -> %g",
          l1[0], l1[299]);
    medvlm_adapter_free(a1);
    medvlm_adapter_free(a2);
    medvlm_adapter_free(a3);
    /* CLAP ALM, the authors' outer step: rho_c from 0, so the first leaves lambda alone and sets
     * rho_c = z_c; the next lambda_c <- max(0, lambda_c + rho_c z), rho_c <- z */
    {
        struct medvlm_adapter h = {.k = 2};
        float lam[2] = {0.3f, -1.0f}, rho[2] = {0, 0};
        h.lambdas = lam, h.rhos = rho;
        mv_clap_alm_update(&h, 0, 2.0);
        mv_clap_alm_update(&h, 1, 0.5);
        CHECK(lam[0] == 0.3f && rho[0] == 2.0f && lam[1] == 0.0f && rho[1] == 0.5f,
              "ALM first outer step: lambda %g %g rho %g %g", lam[0], lam[1], rho[0], rho[1]);
        mv_clap_alm_update(&h, 0, 0.25);
        CHECK(lam[0] == (float)(0.3 + 2.0 * 0.25) && rho[0] == 0.25f,
              "ALM second outer step: lambda %g rho %g", lam[0], rho[0]);
        lam[1] = -1.0f;
        mv_clap_alm_update(&h, 1, 1.0); /* x = -1 + 0.5 < 0 */
        CHECK(lam[1] == 0.0f && rho[1] == 1.0f, "ALM clamps at 0: %g", lam[1]);
    }
    /* and in training: after 5 epochs lambda_c has grown by the products of distances */
    o.clap_alm = 1;
    o.epochs = 5;
    o.lr = 0.05f;
    CHECK_OK(medvlm_adapter_train(&o, X, Y, N, D, zs, K, 3.0f, &a1, NULL));
    o.clap_alm = 0;
    CHECK_OK(medvlm_adapter_train(&o, X, Y, N, D, zs, K, 3.0f, &a2, NULL));
    int grew = 1;
    for (int c = 0; c < K; c++) grew &= a1->lambdas[c] > a2->lambdas[c];
    CHECK(grew, "ALM outer steps raise the multipliers (%g vs %g)", a1->lambdas[0], a2->lambdas[0]);
    medvlm_adapter_free(a1);
    medvlm_adapter_free(a2);
}

/* Any thread count gives the bits of one thread: D = 777 is three column blocks (256, 256
 * and 265 wide: the kernels' tails), K = 5; shuffled mini-batches, Adam with a cosine
 * schedule, CLAP-ALM's outer steps. */
static void test_threads(void)
{
    enum { N = 90, D = 777, K = 5, E = 4 };
    static float X[N * D], zs[K * D];
    static int64_t Y[N];
    struct mv_rng r;
    mv_rng_seed(&r, 77);
    random_task(&r, X, Y, zs, N, D, K);
    static const enum medvlm_adapter_method ms[] = {MEDVLM_ADAPTER_LP, MEDVLM_ADAPTER_ZSLP,
                                                    MEDVLM_ADAPTER_CLAP, MEDVLM_ADAPTER_TASKRES};
    for (size_t mi = 0; mi < MV_ARRAY_LEN(ms); mi++)
        for (int variant = 0; variant < 4; variant++) {
            struct medvlm_adapter_options o;
            medvlm_adapter_options_default(&o, ms[mi]);
            o.epochs = E;
            o.batch_size = variant == 3 ? 100 : 8; /* full batch, or 11 shuffled steps */
            o.lr = 0.05f;
            o.seed = 3;
            o.optimizer = variant == 1 ? MEDVLM_OPTIMIZER_ADAM : MEDVLM_OPTIMIZER_SGD;
            o.schedule = variant == 1 ? MEDVLM_SCHEDULE_COSINE : MEDVLM_SCHEDULE_CONSTANT;
            o.clap_alm = variant == 2;
            long steps = medvlm_adapter_steps(&o, N);
            float l1[E * 11], l2[E * 11];
            struct medvlm_adapter *a1 = NULL, *a2 = NULL;
            o.threads = 1;
            CHECK_OK(medvlm_adapter_train(&o, X, Y, N, D, zs, K, 2.0f, &a1, l1));
            for (int T = 2; T <= 3; T++) {
                /* the threaded trainer itself on a fresh init, and how many threads ran */
                o.epochs = 0;
                CHECK_OK(medvlm_adapter_train(&o, X, Y, N, D, zs, K, 2.0f, &a2, NULL));
                o.epochs = E;
                if (!a1 || !a2) continue;
                /* the team throughout, then alternating with thread 0 or the last alone */
                for (int alt = -1; alt < T; alt += T - 1) {
                    if (alt >= 0) {
                        o.epochs = 0;
                        CHECK_OK(medvlm_adapter_train(&o, X, Y, N, D, zs, K, 2.0f, &a2, NULL));
                        o.epochs = E;
                        if (!a2) continue;
                    }
                    a2->opt.epochs = E;
                    int used = 0;
                    omp_set_num_threads(T); /* whatever OMP_NUM_THREADS says */
                    CHECK_OK(mv_adapter_train_proto(a2, X, Y, N, l2, T, alt, &used));
                    CHECK(used == T, "%d threads asked, %d ran", T, used);
                    CHECK(memcmp(l1, l2, (size_t)steps * sizeof(float)) == 0 &&
                              memcmp(a1->param_buf, a2->param_buf,
                                     a1->param_total * sizeof(float)) == 0 &&
                              memcmp(a1->lambdas, a2->lambdas, K * sizeof(float)) == 0,
                          "%s variant %d: %d threads (alternating with %d) differ from one "
                          "(loss %.9g vs %.9g)",
                          medvlm_adapter_method_name(ms[mi]), variant, T, alt, l1[steps - 1],
                          l2[steps - 1]);
                    medvlm_adapter_free(a2);
                    a2 = NULL;
                }
            }
            medvlm_adapter_free(a1);
        }
    /* through the public option, for a method trained by the generic loop too */
    struct medvlm_adapter_options o;
    medvlm_adapter_options_default(&o, MEDVLM_ADAPTER_CLIPADAPTER);
    o.threads = 2;
    o.epochs = 2;
    struct medvlm_adapter *a = NULL;
    CHECK_OK(medvlm_adapter_train(&o, X, Y, N, D, zs, K, 2.0f, &a, NULL));
    medvlm_adapter_free(a);
}

/* CLAP's multipliers: per class, the mean over its rows of the zero-shot softmax probability
 * of the label, the bits of the plain definition (mv_mm_nt, the logits scaled, then
 * mv_softmax_forward) on one and two threads, on a table big enough to be split. */
static void test_clap_init(void)
{
    enum { N = 1500, D = 40, K = 4 };
    static float X[N * D], zs[K * D], logits[N * K];
    static int64_t Y[N];
    struct mv_rng r;
    mv_rng_seed(&r, 5);
    random_task(&r, X, Y, zs, N, D, K);
    for (int T = 1; T <= 2; T++) {
        struct medvlm_adapter_options o;
        medvlm_adapter_options_default(&o, MEDVLM_ADAPTER_CLAP);
        o.epochs = 0;
        o.threads = T;
        struct medvlm_adapter *a = NULL;
        CHECK_OK(medvlm_adapter_train(&o, X, Y, N, D, zs, K, 3.0f, &a, NULL));
        if (!a) continue;
        mv_mm_nt(logits, X, a->zsn, N, K, D);
        for (int i = 0; i < N * K; i++) logits[i] *= a->scale;
        mv_softmax_forward(logits, logits, N, K);
        double sum[K] = {0};
        int count[K] = {0};
        for (int i = 0; i < N; i++) {
            sum[Y[i]] += logits[(size_t)i * K + Y[i]];
            count[Y[i]]++;
        }
        int same = 1;
        for (int c = 0; c < K; c++) same &= a->lambdas[c] == (float)(sum[c] / count[c]);
        CHECK(same, "CLAP multipliers on %d threads: not the definition's bits (%.9g vs %.9g)", T,
              a->lambdas[0], (float)(sum[0] / count[0]));
        medvlm_adapter_free(a);
    }
}

/* Features beyond 4 MB: the trainer prefetches the next step's rows from its kernels (the list,
 * the cursor, the padding, the rest after the kernels). It reads only, so 2 threads still give
 * the bits of 1, for K = 4 (tiles and groups full), 9 (more than one tile row) and 3 (no
 * kernel prefetches, all after). */
static void test_threads_prefetch(void)
{
    enum { N = 2100, D = 512 }; /* 4.3 MB */
    float *X = malloc(sizeof(float) * N * D), zs[9 * D];
    int64_t *Y = malloc(sizeof(int64_t) * N);
    struct mv_rng r;
    mv_rng_seed(&r, 5);
    static const int ks[] = {4, 9, 3};
    for (size_t i = 0; X && Y && i < MV_ARRAY_LEN(ks); i++) {
        const int K = ks[i];
        random_task(&r, X, Y, zs, N, D, K);
        struct medvlm_adapter_options o;
        medvlm_adapter_options_default(&o, MEDVLM_ADAPTER_CLAP);
        o.epochs = 3;
        o.lr = 0.05f;
        float l1[3 * (N / 32)], l2[3 * (N / 32)];
        struct medvlm_adapter *a1 = NULL, *a2 = NULL;
        o.threads = 1;
        CHECK_OK(medvlm_adapter_train(&o, X, Y, N, D, zs, K, 2.0f, &a1, l1));
        o.threads = 2;
        omp_set_num_threads(2);
        for (int alt = -1; alt < 2; alt++) { /* the team, then alternating with a thread alone */
            if (alt < 0) {
                CHECK_OK(medvlm_adapter_train(&o, X, Y, N, D, zs, K, 2.0f, &a2, l2));
            } else { /* the trainer itself on a fresh init */
                o.epochs = 0;
                CHECK_OK(medvlm_adapter_train(&o, X, Y, N, D, zs, K, 2.0f, &a2, NULL));
                o.epochs = 3;
                if (a2) {
                    a2->opt.epochs = 3;
                    CHECK_OK(mv_adapter_train_proto(a2, X, Y, N, l2, 2, alt, NULL));
                }
            }
            if (a1 && a2)
                CHECK(memcmp(l1, l2, sizeof l1) == 0 &&
                          memcmp(a1->param_buf, a2->param_buf, a1->param_total * sizeof(float)) ==
                              0,
                      "prefetching trainer, K %d, alternating with %d: 2 threads differ from one "
                      "(loss %.9g vs %.9g)",
                      K, alt, l1[MV_ARRAY_LEN(l1) - 1], l2[MV_ARRAY_LEN(l2) - 1]);
            medvlm_adapter_free(a2);
            a2 = NULL;
        }
        /* the trainer called on the caller's features reads them in place */
        o.epochs = 0;
        CHECK_OK(medvlm_adapter_train(&o, X, Y, N, D, zs, K, 2.0f, &a2, NULL));
        if (a1 && a2) {
            a2->opt.epochs = 3;
            CHECK_OK(mv_adapter_train_proto(a2, X, Y, N, l2, 2, -1, NULL));
            CHECK(memcmp(l1, l2, sizeof l1) == 0 &&
                      memcmp(a1->param_buf, a2->param_buf, a1->param_total * sizeof(float)) == 0,
                  "prefetching trainer, K %d, features in place: differs from one thread", K);
        }
        medvlm_adapter_free(a2);
        a2 = NULL;
        medvlm_adapter_free(a1);
    }
    free(X);
    free(Y);
}

/* The prototype methods' trainer is the generic loop reorganised: the same bits with one
 * column block (D < 512), the same numbers within float rounding with two (D = 600), where
 * dot products are summed from two halves. */
static void test_proto_vs_loop(void)
{
    enum { N = 90, DMAX = 600, K = 5, E = 3 };
    static float X[N * DMAX], zs[K * DMAX];
    static int64_t Y[N];
    static const enum medvlm_adapter_method ms[] = {MEDVLM_ADAPTER_LP, MEDVLM_ADAPTER_ZSLP,
                                                    MEDVLM_ADAPTER_CLAP, MEDVLM_ADAPTER_TASKRES};
    static const int dims[] = {37, DMAX};
    for (int di = 0; di < 2; di++) {
        const int D = dims[di];
        struct mv_rng r;
        mv_rng_seed(&r, 78);
        random_task(&r, X, Y, zs, N, D, K);
        for (size_t mi = 0; mi < MV_ARRAY_LEN(ms); mi++)
            for (int variant = 0; variant < 3; variant++) {
                struct medvlm_adapter_options o;
                medvlm_adapter_options_default(&o, ms[mi]);
                o.epochs = E;
                o.batch_size = variant == 0 ? 16 : 40;
                /* CLAP-ALM's multipliers grow by products of squared distances (the authors'
                 * rule): at lr 0.05 with Adam they reach ~18 within 3 epochs, and so stiff a
                 * penalty magnifies the two summation orders' rounding past the tolerance */
                o.lr = variant == 2 ? 0.01f : 0.05f;
                o.seed = 5;
                o.optimizer = variant == 2 ? MEDVLM_OPTIMIZER_ADAM : MEDVLM_OPTIMIZER_SGD;
                o.clap_alm = variant == 2;
                long steps = medvlm_adapter_steps(&o, N);
                float l1[E * 5], l2[E * 5];
                struct medvlm_adapter *a1 = NULL, *a2 = NULL;
                CHECK_OK(medvlm_adapter_train(&o, X, Y, N, D, zs, K, 2.0f, &a1, l1));
                o.epochs = 0;
                CHECK_OK(medvlm_adapter_train(&o, X, Y, N, D, zs, K, 2.0f, &a2, NULL));
                if (!a1 || !a2) continue;
                a2->opt.epochs = E;
                CHECK_OK(mv_adapter_train_loop(a2, X, Y, N, l2));
                if (D < 512) {
                    CHECK(memcmp(l1, l2, (size_t)steps * sizeof(float)) == 0 &&
                              memcmp(a1->param_buf, a2->param_buf,
                                     a1->param_total * sizeof(float)) == 0 &&
                              memcmp(a1->lambdas, a2->lambdas, K * sizeof(float)) == 0,
                          "%s variant %d: one block differs from the generic loop", a1->ops->name,
                          variant);
                } else {
                    check_close_f32("losses", l1, l2, (size_t)steps, 1e-6, 1e-5);
                    check_close_f32("parameters", a1->param_buf, a2->param_buf, a1->param_total,
                                    1e-6, 1e-5);
                    check_close_f32("lambdas", a1->lambdas, a2->lambdas, K, 1e-6, 1e-5);
                }
                medvlm_adapter_free(a1);
                medvlm_adapter_free(a2);
            }
    }
}

static void test_save_load(void)
{
    enum { N = 24, D = 12, K = 3 };
    static float X[N * D], zs[K * D];
    static int64_t Y[N];
    struct mv_rng r;
    mv_rng_seed(&r, 21);
    random_task(&r, X, Y, zs, N, D, K);
    char path[64];
    snprintf(path, sizeof path, "adapter_test_%d.safetensors", (int)getpid());
    const char *names[K] = {"benign", "grade \"3\"", "grade 4"};
    for (int m = 0; m < MEDVLM_ADAPTER_COUNT; m++) {
        struct medvlm_adapter_options o;
        medvlm_adapter_options_default(&o, (enum medvlm_adapter_method)m);
        o.epochs = 3;
        o.batch_size = 8;
        o.optimizer = MEDVLM_OPTIMIZER_ADAM;
        o.lr = 0.01f;
        o.seed = 99;
        o.hidden = 5;
        struct medvlm_adapter *a = NULL, *b = NULL;
        CHECK_OK(medvlm_adapter_train(&o, X, Y, N, D, zs, K, 2.5f, &a, NULL));
        if (!a) continue;
        /* the provenance every other method, none for the rest */
        const struct medvlm_provenance from = {"0123456789abcdef", "/models/plip"};
        CHECK_OK(medvlm_adapter_save(a, path, names, 8, m % 2 ? &from : NULL));
        CHECK_OK(medvlm_adapter_load(path, &b));
        if (!b) {
            medvlm_adapter_free(a);
            continue;
        }
        float la[N * K], lb[N * K];
        CHECK_OK(medvlm_adapter_logits(a, X, N, la));
        CHECK_OK(medvlm_adapter_logits(b, X, N, lb));
        CHECK(memcmp(la, lb, sizeof la) == 0, "%s: logits after load are bit-identical",
              medvlm_adapter_method_name(o.method));
        CHECK(medvlm_adapter_method_of(b) == o.method && medvlm_adapter_shots(b) == 8 &&
                  b->opt.seed == 99 && b->opt.optimizer == MEDVLM_OPTIMIZER_ADAM,
              "%s: metadata back", medvlm_adapter_method_name(o.method));
        CHECK(medvlm_adapter_class_name(b, 1) && !strcmp(medvlm_adapter_class_name(b, 1), names[1]),
              "class names back");
        struct medvlm_provenance pb = medvlm_adapter_provenance(b);
        if (m % 2)
            CHECK(pb.fingerprint && !strcmp(pb.fingerprint, from.fingerprint) && pb.model &&
                      !strcmp(pb.model, from.model),
                  "%s: provenance back", medvlm_adapter_method_name(o.method));
        else
            CHECK(!pb.fingerprint && !pb.model, "%s: no provenance saved, none back",
                  medvlm_adapter_method_name(o.method));
        medvlm_adapter_free(a);
        medvlm_adapter_free(b);
    }
    /* not an adapter file */
    float P[K * D];
    memcpy(P, zs, sizeof P);
    CHECK_OK(medvlm_prototypes_save(path, P, K, D, 4.6f, names, NULL));
    struct medvlm_adapter *b = NULL;
    CHECK_ERR(medvlm_adapter_load(path, &b), MEDVLM_ERR_FORMAT, "not a medvlm adapter file");
    struct medvlm_prototypes *pp = NULL;
    CHECK_OK(medvlm_prototypes_load(path, &pp));
    CHECK(pp && pp->k == K && pp->d == D && pp->logit_scale == 4.6f &&
              !strcmp(pp->classes[2], "grade 4") && !memcmp(pp->prototypes, P, sizeof P) &&
              !pp->fingerprint && !pp->model,
          "prototypes round trip");
    medvlm_prototypes_free(pp);
    const struct medvlm_provenance src = {"fedcba9876543210", "/models/quiltnet"};
    CHECK_OK(medvlm_prototypes_save(path, P, K, D, 4.6f, names, &src));
    CHECK_OK(medvlm_prototypes_load(path, &pp));
    CHECK(pp && pp->fingerprint && !strcmp(pp->fingerprint, src.fingerprint) && pp->model &&
              !strcmp(pp->model, src.model),
          "prototypes provenance round trip");
    medvlm_prototypes_free(pp);
    struct medvlm_features *f = NULL;
    CHECK_ERR(medvlm_features_load(path, &f), MEDVLM_ERR_FORMAT, "not a medvlm features file");
    const char *img[N];
    char imgbuf[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(imgbuf[i], sizeof imgbuf[i], "img%d.png", i);
        img[i] = imgbuf[i];
    }
    CHECK_OK(medvlm_features_save(path, X, Y, N, D, names, K, img, &src));
    CHECK_OK(medvlm_features_load(path, &f));
    CHECK(f && f->n == N && f->d == D && f->n_classes == K && f->labels[5] == Y[5] &&
              !memcmp(f->features, X, sizeof X) && !strcmp(f->image_names[3], "img3.png") &&
              f->fingerprint && !strcmp(f->fingerprint, src.fingerprint) && f->model &&
              !strcmp(f->model, src.model),
          "features round trip");
    medvlm_features_free(f);
    int64_t badY[N];
    memcpy(badY, Y, sizeof badY);
    badY[4] = 7;
    CHECK_OK(medvlm_features_save(path, X, badY, N, D, names, K, NULL, NULL));
    CHECK_ERR(medvlm_features_load(path, &f), MEDVLM_ERR_FORMAT, "label 7 of row 4");
    unlink(path);
}

static void test_errors(void)
{
    enum medvlm_adapter_method m;
    CHECK_ERR(
        medvlm_adapter_method_from_name("clipadaptr", &m), MEDVLM_ERR_ARG,
        "valid methods: zeroshot, lp, zslp, clipadapter, clap, tipadapter, tipadapter-f, taskres");
    CHECK_OK(medvlm_adapter_method_from_name("tipadapter-f", &m));
    CHECK(m == MEDVLM_ADAPTER_TIPADAPTER_F, "name -> method");
    const float X[4] = {1, 0, 0, 1}, zs[4] = {1, 0, 0, 1};
    const int64_t Ybad[2] = {0, 2};
    struct medvlm_adapter_options o;
    medvlm_adapter_options_default(&o, MEDVLM_ADAPTER_LP);
    struct medvlm_adapter *a = NULL;
    CHECK_ERR(medvlm_adapter_train(&o, X, Ybad, 2, 2, zs, 2, 1.0f, &a, NULL), MEDVLM_ERR_ARG,
              "label 2 of sample 1 is not in [0, 2)");
    const int64_t Y[2] = {0, 1};
    o.batch_size = 0;
    CHECK_ERR(medvlm_adapter_train(&o, X, Y, 2, 2, zs, 2, 1.0f, &a, NULL), MEDVLM_ERR_ARG,
              "batch size 0");
    medvlm_adapter_options_default(&o, MEDVLM_ADAPTER_LP);
    CHECK_ERR(medvlm_adapter_train(&o, X, Y, 0, 2, zs, 2, 1.0f, &a, NULL), MEDVLM_ERR_ARG,
              "needs training samples");
    o.lr = NAN;
    CHECK_ERR(medvlm_adapter_train(&o, X, Y, 2, 2, zs, 2, 1.0f, &a, NULL), MEDVLM_ERR_ARG,
              "lr nan");
    CHECK(a == NULL, "no adapter on failure");
    CHECK_ERR(medvlm_adapter_load("/nonexistent/x.safetensors", &a), MEDVLM_ERR_IO,
              "/nonexistent/x.safetensors");
}

int main(void)
{
    test_nonfinite_features();
    test_clap_init();
    test_optim_rules();
    for (uint64_t seed = 1; seed <= 3; seed++) {
        gradcheck(MEDVLM_ADAPTER_LP, 0, seed);
        gradcheck(MEDVLM_ADAPTER_ZSLP, 0, seed);
        gradcheck(MEDVLM_ADAPTER_CLAP, 0, seed);
        gradcheck(MEDVLM_ADAPTER_CLAP, 1, seed);
        gradcheck(MEDVLM_ADAPTER_TASKRES, 0, seed);
        gradcheck(MEDVLM_ADAPTER_CLIPADAPTER, 0, seed);
        gradcheck(MEDVLM_ADAPTER_TIPADAPTER_F, 0, seed);
    }
    test_tip_hand();
    test_taskres_hand();
    test_lr_zero();
    test_training_behaviour();
    test_threads();
    test_threads_prefetch();
    test_proto_vs_loop();
    test_save_load();
    test_errors();
    return check_summary();
}

/*
 * optim.c - SGD-momentum, Adam and AdamW over flat spans, written as torch 1.13 writes them
 * (torch/optim/sgd.py, adam.py, adamw.py, single-tensor path), in float32 with the scalar
 * factors computed in double as Python does.
 */
#include "optim.h"

#include <math.h>
#include <string.h>

#if defined(__GNUC__) && defined(__x86_64__)
#define MV_OPTIM_X86 1
#include <immintrin.h>

/* The common case (momentum, no weight decay, no nesterov, not the first step) in AVX2:
 * buf = mom buf + damp g; p -= lr buf - exactly the scalar loop's operations. */
__attribute__((target("avx2"))) static void
sgd_momentum_avx2(float *p, const float *g, float *buf, size_t n, float lr, float mom, float damp)
{
    __m256 vl = _mm256_set1_ps(lr), vm = _mm256_set1_ps(mom), vd = _mm256_set1_ps(damp);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 b = _mm256_add_ps(_mm256_mul_ps(vm, _mm256_loadu_ps(buf + i)),
                                 _mm256_mul_ps(vd, _mm256_loadu_ps(g + i)));
        _mm256_storeu_ps(buf + i, b);
        _mm256_storeu_ps(p + i, _mm256_sub_ps(_mm256_loadu_ps(p + i), _mm256_mul_ps(vl, b)));
    }
    for (; i < n; i++) {
        buf[i] = mom * buf[i] + damp * g[i];
        p[i] -= lr * buf[i];
    }
}

static int have_avx2(void)
{
    return mv_cpu_has(MV_CPU_BIT(MV_CPU_AVX2));
}
#endif

void mv_optim_config_default(struct mv_optim_config *c, enum mv_optim_kind kind)
{
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->lr = 1e-3f;
    c->beta1 = 0.9f;
    c->beta2 = 0.999f;
    c->eps = 1e-8f;
    if (kind == MV_OPTIM_ADAMW) c->weight_decay = 1e-2f;
}

enum medvlm_status mv_optim_init(struct mv_optim *o, const struct mv_optim_config *cfg,
                                 const struct mv_span *spans, int nspans)
{
    memset(o, 0, sizeof *o);
    if (nspans < 0 || nspans > MV_OPTIM_MAX_SPANS)
        return mv_err(MEDVLM_ERR_INTERNAL, "optimizer: %d spans, at most %d", nspans,
                      MV_OPTIM_MAX_SPANS);
    if (!(cfg->lr >= 0) || !(cfg->momentum >= 0) || !(cfg->weight_decay >= 0))
        return mv_err(MEDVLM_ERR_ARG, "optimizer: lr %g, momentum %g, weight decay %g must be >= 0",
                      (double)cfg->lr, (double)cfg->momentum, (double)cfg->weight_decay);
    if (cfg->kind != MV_OPTIM_SGD &&
        !(cfg->beta1 >= 0 && cfg->beta1 < 1 && cfg->beta2 >= 0 && cfg->beta2 < 1))
        return mv_err(MEDVLM_ERR_ARG, "optimizer: Adam betas (%g, %g) must be in [0, 1)",
                      (double)cfg->beta1, (double)cfg->beta2);
    o->cfg = *cfg;
    o->nspans = nspans;
    for (int i = 0; i < nspans; i++) {
        o->spans[i] = spans[i];
        if (!mv_add_ok(o->total, spans[i].n, &o->total))
            return mv_err(MEDVLM_ERR_OVERFLOW, "optimizer: parameter count overflows");
    }
    size_t per = cfg->kind == MV_OPTIM_SGD ? 1 : 2;
    o->state = mv_calloc(o->total ? o->total : 1, per * sizeof(float));
    if (!o->state) return MEDVLM_ERR_NOMEM;
    return MEDVLM_OK;
}

void mv_optim_free(struct mv_optim *o)
{
    if (!o) return;
    mv_free(o->state);
    o->state = NULL;
}

void mv_optim_reset(struct mv_optim *o)
{
    size_t per = o->cfg.kind == MV_OPTIM_SGD ? 1 : 2;
    memset(o->state, 0, o->total * per * sizeof(float));
    o->step = 0;
}

/* torch.optim.SGD: g += wd p; buf = g (first step) or momentum buf + (1 - dampening) g;
 * nesterov: g += momentum buf, else g = buf; p -= lr g. */
static void sgd_span(const struct mv_optim_config *c, float lr, int first, float *p, const float *g,
                     float *buf, size_t n)
{
    const float mom = c->momentum, wd = c->weight_decay, damp = 1.0f - c->dampening;
#ifdef MV_OPTIM_X86
    if (mom != 0 && wd == 0 && !c->nesterov && !first && have_avx2()) {
        sgd_momentum_avx2(p, g, buf, n, lr, mom, damp);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        if (wd != 0) gi += wd * p[i];
        if (mom != 0) {
            buf[i] = first ? gi : mom * buf[i] + damp * gi;
            gi = c->nesterov ? gi + mom * buf[i] : buf[i];
        }
        p[i] -= lr * gi;
    }
}

/* torch.optim.Adam (1.13): g += wd p (Adam) or p *= 1 - lr wd (AdamW);
 * m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
 * p -= (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps). */
static void adam_span(const struct mv_optim_config *c, float lr, long t, float *p, const float *g,
                      float *m, float *v, size_t n)
{
    const float b1 = c->beta1, b2 = c->beta2, eps = c->eps;
    const float a1 = (float)(1.0 - (double)b1), a2 = (float)(1.0 - (double)b2);
    double bc1 = 1.0 - pow((double)b1, (double)t), bc2 = 1.0 - pow((double)b2, (double)t);
    const float step_size = (float)((double)lr / bc1);
    const float bc2_sqrt = (float)sqrt(bc2);
    const int decoupled = c->kind == MV_OPTIM_ADAMW;
    const float wd = c->weight_decay;
    const float decay = (float)(1.0 - (double)lr * (double)wd);
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        if (wd != 0) {
            if (decoupled)
                p[i] *= decay;
            else
                gi += wd * p[i];
        }
        m[i] = m[i] * b1 + a1 * gi;
        v[i] = v[i] * b2 + a2 * gi * gi;
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        p[i] -= step_size * (m[i] / denom);
    }
}

void mv_optim_update(struct mv_optim *o, float lr, long step, size_t off, size_t n)
{
    size_t base = 0, end = off + n;
    for (int s = 0; s < o->nspans && base < end; s++) {
        const struct mv_span *sp = &o->spans[s];
        size_t lo = MV_MAX(off, base), hi = MV_MIN(end, base + sp->n);
        if (lo < hi) {
            size_t i = lo - base, m = hi - lo;
            if (o->cfg.kind == MV_OPTIM_SGD)
                sgd_span(&o->cfg, lr, step == 1, sp->param + i, sp->grad + i, o->state + lo, m);
            else
                adam_span(&o->cfg, lr, step, sp->param + i, sp->grad + i, o->state + lo,
                          o->state + o->total + lo, m);
        }
        base += sp->n;
    }
}

int mv_optim_sgd_momentum(const struct mv_optim *o, long step, float *mom, float *damp)
{
    const struct mv_optim_config *c = &o->cfg;
    if (c->kind != MV_OPTIM_SGD || c->momentum == 0 || c->weight_decay != 0 || c->nesterov ||
        step <= 1)
        return 0;
    *mom = c->momentum;
    *damp = 1.0f - c->dampening;
    return 1;
}

void mv_optim_step(struct mv_optim *o, float lr)
{
    o->step++;
    mv_optim_update(o, lr, o->step, 0, o->total);
}

float mv_sched_lr(enum mv_sched_kind kind, float base, float eta_min, long t, long total)
{
    if (kind == MV_SCHED_CONSTANT || total <= 0) return base;
    if (t > total) t = total;
    double c = cos(3.14159265358979323846 * (double)t / (double)total);
    return (float)((double)eta_min + ((double)base - (double)eta_min) * (1.0 + c) / 2.0);
}

/*
 * optim.h - optimizers over flat float spans: SGD with momentum, Adam, AdamW, with PyTorch's
 * update rules (torch 1.13) so that trajectories match step for step; and learning-rate
 * schedules (constant, cosine).
 *
 * A span is (param, grad, n): the optimizer owns one state buffer sized for all spans up
 * front (momentum, or first and second moments), so a step allocates nothing.
 */
#ifndef MEDVLM_OPTIM_H
#define MEDVLM_OPTIM_H

#include "../core/core.h"

enum mv_optim_kind { MV_OPTIM_SGD, MV_OPTIM_ADAM, MV_OPTIM_ADAMW };

struct mv_optim_config {
    enum mv_optim_kind kind;
    float lr;
    float momentum;          /* SGD; 0 = plain SGD */
    float dampening;         /* SGD; PyTorch default 0 */
    int nesterov;            /* SGD */
    float weight_decay;      /* SGD/Adam: added to the gradient (L2); AdamW: decoupled */
    float beta1, beta2, eps; /* Adam(W) */
};

/* PyTorch defaults for the kind: SGD lr 1e-3 momentum 0; Adam lr 1e-3 betas (0.9, 0.999)
 * eps 1e-8 wd 0; AdamW the same with weight decay 1e-2. */
void mv_optim_config_default(struct mv_optim_config *c, enum mv_optim_kind kind);

struct mv_span {
    float *param; /* (n) updated in place */
    float *grad;  /* (n) read */
    size_t n;
};

#define MV_OPTIM_MAX_SPANS 8

struct mv_optim {
    struct mv_optim_config cfg;
    int nspans;
    struct mv_span spans[MV_OPTIM_MAX_SPANS];
    size_t total; /* sum of span sizes */
    float *state; /* SGD: momentum buffer (total); Adam: m (total) then v (total) */
    long step;    /* steps taken so far */
};

/* Set up for the given spans (copied); allocates the state once. */
enum medvlm_status mv_optim_init(struct mv_optim *o, const struct mv_optim_config *cfg,
                                 const struct mv_span *spans, int nspans);
void mv_optim_free(struct mv_optim *o);
/* Zero the state and the step count (a fresh optimizer over the same spans). */
void mv_optim_reset(struct mv_optim *o);
/* One update of every span with learning rate lr (the schedule's value for this step). */
void mv_optim_step(struct mv_optim *o, float lr);
/* The same update restricted to elements [off, off + n) of the spans laid end to end, as
 * step number `step` (1-based; o->step is left alone): threads may update disjoint ranges of
 * one step at once. mv_optim_step is o->step++ and this over all o->total elements. */
void mv_optim_update(struct mv_optim *o, float lr, long step, size_t off, size_t n);

/* 1 when step `step` (1-based) of o is plain SGD with momentum (no weight decay, no
 * nesterov, not the first step): buf = mom buf + damp g; p -= lr buf, with the momentum
 * buffer at o->state; *mom and *damp then hold the factors. */
int mv_optim_sgd_momentum(const struct mv_optim *o, long step, float *mom, float *damp);

/* ---- schedules ---- */

enum mv_sched_kind { MV_SCHED_CONSTANT, MV_SCHED_COSINE };

/* lr at step t of total steps: constant = base; cosine = torch CosineAnnealingLR with
 * T_max = total and eta_min: eta_min + (base - eta_min) (1 + cos(pi t / total)) / 2. */
float mv_sched_lr(enum mv_sched_kind kind, float base, float eta_min, long t, long total);

#endif

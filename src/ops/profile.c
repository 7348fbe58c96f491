/*
 * profile.c - optional wall-clock time per op family, for `medvlm bench --profile`. Off by
 * default (one branch per op call); the encoders bracket each op with mv_prof_begin/end.
 * Not meant for concurrent encoders: the totals are process-wide.
 */
#include "ops.h"

static int enabled;
static double totals[MV_PROF_COUNT];
static const char *names[MV_PROF_COUNT] = {
    "gemm (linear layers)", "layernorm", "attention", "activation", "embeddings", "other",
};

void mv_prof_enable(int on)
{
    enabled = on;
    if (on)
        for (int i = 0; i < MV_PROF_COUNT; i++) totals[i] = 0;
}

double mv_prof_begin(void)
{
    return enabled ? mv_now() : 0.0;
}

void mv_prof_end(enum mv_prof_op op, double t0)
{
    if (enabled) totals[op] += mv_now() - t0;
}

double mv_prof_total(enum mv_prof_op op)
{
    return totals[op];
}

const char *mv_prof_name(enum mv_prof_op op)
{
    return names[op];
}

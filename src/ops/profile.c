/*
 * profile.c - optional wall-clock time per op family, for `medvlm bench --profile`. Off by
 * default (one branch per op call); the encoders bracket each op with mv_prof_begin/end.
 * The training pass also marks its phase (forward / backward, mv_prof_phase_begin/end), so
 * each op's time is booked to the phase it ran in and the phases' own wall time is kept.
 * Not meant for concurrent encoders: the totals are process-wide.
 */
#include "ops.h"

static int enabled;
static int phase; /* the phase ops are booked to: MV_PROF_FORWARD unless a backward runs */
static double totals[MV_PROF_PHASES][MV_PROF_COUNT];
static double walls[MV_PROF_PHASES];
static const char *names[MV_PROF_COUNT] = {
    "gemm (linear layers)", "layernorm", "attention", "activation", "embeddings", "other",
};

void mv_prof_enable(int on)
{
    enabled = on;
    phase = MV_PROF_FORWARD;
    if (on)
        for (int p = 0; p < MV_PROF_PHASES; p++) {
            walls[p] = 0;
            for (int i = 0; i < MV_PROF_COUNT; i++) totals[p][i] = 0;
        }
}

double mv_prof_begin(void)
{
    return enabled ? mv_now() : 0.0;
}

void mv_prof_end(enum mv_prof_op op, double t0)
{
    if (enabled) totals[phase][op] += mv_now() - t0;
}

double mv_prof_phase_begin(enum mv_prof_phase ph)
{
    phase = ph;
    return mv_prof_begin();
}

void mv_prof_phase_end(enum mv_prof_phase ph, double t0)
{
    if (enabled) walls[ph] += mv_now() - t0;
    phase = MV_PROF_FORWARD;
}

double mv_prof_total(enum mv_prof_op op)
{
    double t = 0;
    for (int p = 0; p < MV_PROF_PHASES; p++) t += totals[p][op];
    return t;
}

double mv_prof_phase_total(enum mv_prof_phase ph, enum mv_prof_op op)
{
    return totals[ph][op];
}

double mv_prof_phase_wall(enum mv_prof_phase ph)
{
    return walls[ph];
}

const char *mv_prof_name(enum mv_prof_op op)
{
    return names[op];
}

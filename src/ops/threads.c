/*
 * threads.c - one thread count for our OpenMP loops and OpenBLAS. Both run on libgomp (the
 * OpenMP build of OpenBLAS), so there is one pool and no oversubscription.
 */
#include "ops.h"

#include <cblas.h>
#include <omp.h>
#include <pthread.h>

int mv_threads(void)
{
    return omp_get_max_threads();
}

enum medvlm_status medvlm_set_threads(int n)
{
    if (n < 1 || n > 1024)
        return mv_err(MEDVLM_ERR_ARG, "medvlm_set_threads: %d threads (expected 1..1024)", n);
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
    return MEDVLM_OK;
}

int medvlm_get_threads(void)
{
    return omp_get_max_threads();
}

/* ---- per-thread scratch ---- */

struct scratch {
    void *p[MV_SCRATCH_N];
};

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_ok;

static void scratch_free(void *v)
{
    struct scratch *sc = v;
    for (int i = 0; i < MV_SCRATCH_N; i++) mv_free(sc->p[i]);
    mv_free(sc);
}

static void scratch_key_init(void)
{
    scratch_key_ok = pthread_key_create(&scratch_key, scratch_free) == 0;
}

void *mv_thread_scratch(enum mv_scratch_slot slot, size_t bytes)
{
    pthread_once(&scratch_once, scratch_key_init);
    if (!scratch_key_ok || (int)slot < 0 || slot >= MV_SCRATCH_N) return NULL;
    struct scratch *sc = pthread_getspecific(scratch_key);
    if (!sc) {
        sc = mv_malloc(sizeof *sc);
        if (!sc) return NULL;
        for (int i = 0; i < MV_SCRATCH_N; i++) sc->p[i] = NULL;
        if (pthread_setspecific(scratch_key, sc) != 0) {
            mv_free(sc);
            return NULL;
        }
    }
    if (!sc->p[slot]) sc->p[slot] = mv_aligned(bytes);
    return sc->p[slot];
}

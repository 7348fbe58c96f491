/*
 * threads.c - one thread count for our OpenMP loops and OpenBLAS. Both run on libgomp (the
 * OpenMP build of OpenBLAS), so there is one pool and no oversubscription.
 */
#include "ops.h"

#include <cblas.h>
#include <omp.h>

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

/*
 * comm.c - the distributed run: start, who am I, threads per rank, idling, the end.
 *
 * One binary serves both worlds. MPI_Init is called only when an MPI launcher started the
 * process (mpirun sets OMPI_COMM_WORLD_SIZE, srun with PMIx PMIX_RANK, with PMI-2 PMI_RANK):
 * a plain `medvlm ...` never touches MPI (no singleton start-up, nothing for the network to
 * refuse), and behaves exactly as the serial build.
 */
#include "dist.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef MEDVLM_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1, g_active = 0;

int mv_dist_rank(void)
{
    return g_rank;
}

int mv_dist_size(void)
{
    return g_size;
}

int mv_dist_active(void)
{
    return g_active;
}

/* The size an MPI launcher announced, 0 when none did. */
static int launched_size(void)
{
    const char *s = getenv("OMPI_COMM_WORLD_SIZE");
    if (s && *s) return atoi(s);
    if (getenv("PMIX_RANK") || getenv("PMI_RANK")) {
        s = getenv("PMI_SIZE");
        return s && *s ? atoi(s) : 1;
    }
    return 0;
}

#ifdef MEDVLM_MPI

/* Threads of this rank: OMP_NUM_THREADS; else the cores the launcher bound it to (Open MPI
 * binds to cores for np <= 2, to sockets above); else the node's cores / its ranks. */
static void pick_threads(int local)
{
    const char *env = getenv("OMP_NUM_THREADS");
    int online = (int)sysconf(_SC_NPROCESSORS_ONLN), bound = online, t;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) bound = CPU_COUNT(&set);
    if (online < 1) online = 1;
    const char *why;
    char buf[96];
    if (env && *env) {
        t = medvlm_get_threads();
        why = "OMP_NUM_THREADS";
    } else if (bound < online) {
        t = bound > 0 ? bound : 1;
        snprintf(buf, sizeof buf, "the %d core%s the launcher bound it to", t, t == 1 ? "" : "s");
        why = buf;
    } else {
        t = MV_MAX(1, online / MV_MAX(1, local));
        snprintf(buf, sizeof buf, "%d cores / %d rank%s on the node", online, local,
                 local == 1 ? "" : "s");
        why = buf;
    }
    if (!(env && *env)) medvlm_set_threads(t);
    if (g_rank == 0 && g_size > 1)
        mv_log(MEDVLM_LOG_INFO,
               "MPI: %d ranks, %d on this node, %d thread%s each (%s; --threads "
               "overrides)",
               g_size, local, t, t == 1 ? "" : "s", why);
}

enum medvlm_status mv_dist_init(int *argc, char ***argv)
{
    if (launched_size() == 0) return MEDVLM_OK;
    int provided;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return mv_err(MEDVLM_ERR_IO, "MPI_Init failed (launched by mpirun or srun)");
    g_active = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    MPI_Comm node;
    int local = 1;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) ==
        MPI_SUCCESS) {
        MPI_Comm_size(node, &local);
        MPI_Comm_free(&node);
    }
    pick_threads(local);
    return MEDVLM_OK;
}

int mv_dist_end(int rc)
{
    if (!g_active) return rc;
    if (rc != 0 && g_size > 1) {
        fflush(stdout);
        fprintf(stderr, "medvlm: MPI rank %d of %d failed (exit %d): stopping the job\n", g_rank,
                g_size, rc);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, rc);
    }
    MPI_Finalize();
    g_active = 0;
    return rc;
}

/* Both sides of the release are one non-blocking barrier: the waiting ranks poll it with a
 * sleep between polls, so an idle rank costs no core while rank 0 works. */
void mv_dist_idle(void)
{
    if (g_size < 2) return;
    MPI_Request req;
    int done = 0;
    MPI_Ibarrier(MPI_COMM_WORLD, &req);
    const struct timespec nap = {0, 2 * 1000 * 1000};
    while (MPI_Test(&req, &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && !done) nanosleep(&nap, NULL);
}

void mv_dist_release(void)
{
    if (g_size < 2) return;
    MPI_Request req;
    MPI_Ibarrier(MPI_COMM_WORLD, &req);
    MPI_Wait(&req, MPI_STATUS_IGNORE);
}

int mv_dist_all_ok(int ok)
{
    if (g_size < 2) return ok;
    int in = ok ? 1 : 0, out = 0;
    MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    return out;
}

void mv_dist_bcast_double(double *x)
{
    if (g_size > 1) MPI_Bcast(x, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
}

#else /* built without MPI: one process */

enum medvlm_status mv_dist_init(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (launched_size() > 1)
        return mv_err(MEDVLM_ERR_ARG,
                      "launched as %d MPI processes, but this medvlm was built without MPI "
                      "(configure with -DMEDVLM_MPI=ON and Open MPI's development files, "
                      "libopenmpi-dev): each process would run the whole command",
                      launched_size());
    return MEDVLM_OK;
}

int mv_dist_end(int rc)
{
    return rc;
}

void mv_dist_idle(void) {}

void mv_dist_release(void) {}

int mv_dist_all_ok(int ok)
{
    return ok;
}

void mv_dist_bcast_double(double *x)
{
    (void)x;
}

#endif

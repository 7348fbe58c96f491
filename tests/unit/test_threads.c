/* test_threads.c - the thread count beside a busy process (mv_threads_adapt): a child process
 * spinning on one core is seen (the cores other processes kept busy, read from /proc/stat less
 * this process's own CPU time, come to at least ~1) and taken off the CPUs this process may run
 * on; once the child is gone the count goes back up as far as the rest of the machine allows.
 * Other tests running beside this one only add to what is seen, so the checks hold on a busy
 * machine too. */
#include "check.h"
#include "ops/ops.h"

#include <omp.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void nap(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* The count the rule gives for `others` busy cores on ncpu CPUs, asked for `want`. */
static int expected(int ncpu, int want, double others)
{
    int n = ncpu - (int)(others + 0.5);
    return n < 1 ? 1 : n > want ? want : n;
}

int main(void)
{
    cpu_set_t set;
    CHECK(sched_getaffinity(0, sizeof set, &set) == 0, "sched_getaffinity");
    const int ncpu = CPU_COUNT(&set);
    printf("CPUs this process may run on: %d\n", ncpu);
    if (ncpu < 2) { /* one thread is all there is: the count stays 1 */
        medvlm_set_threads(1);
        mv_threads_adapt();
        nap(0.3);
        mv_threads_adapt();
        CHECK(omp_get_max_threads() == 1, "one CPU: %d threads", omp_get_max_threads());
        return check_summary();
    }
    const int want = ncpu;
    CHECK(medvlm_set_threads(want) == MEDVLM_OK, "medvlm_set_threads(%d)", want);

    pid_t child = fork();
    if (child == 0) { /* one core's worth of another process */
        volatile unsigned long spin = 0;
        for (;;) spin++;
    }
    CHECK(child > 0, "fork");
    nap(0.1);           /* the child is running */
    mv_threads_adapt(); /* the first look */
    nap(0.4);
    mv_threads_adapt();
    double busy = mv_threads_others();
    int n = omp_get_max_threads();
    printf("with a spinning child: others %.2f cores, %d of %d threads\n", busy, n, want);
    CHECK(busy >= 0.6, "a process spinning on one core was not seen: %.2f cores busy", busy);
    CHECK(n == expected(ncpu, want, busy) && n < want, "with %.2f cores busy: %d threads", busy, n);
    CHECK(medvlm_get_threads() == want, "the asked-for count changed: %d", medvlm_get_threads());

    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    nap(0.4);
    mv_threads_adapt();
    busy = mv_threads_others();
    n = omp_get_max_threads();
    printf("after it: others %.2f cores, %d of %d threads\n", busy, n, want);
    CHECK(n == expected(ncpu, want, busy), "with %.2f cores busy: %d threads", busy, n);

    /* asking again resets the count at once */
    CHECK(medvlm_set_threads(want) == MEDVLM_OK && omp_get_max_threads() == want,
          "medvlm_set_threads(%d): %d threads", want, omp_get_max_threads());
    return check_summary();
}

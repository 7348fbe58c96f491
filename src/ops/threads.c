/*
 * threads.c - one thread count for our OpenMP loops and OpenBLAS. Both run on libgomp (the
 * OpenMP build of OpenBLAS), so there is one pool and no oversubscription.
 */
#include "ops.h"

#include <cblas.h>
#include <fcntl.h>
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

int mv_threads(void)
{
    return omp_get_max_threads();
}

/* The calling thread's asked-for count (medvlm_set_threads; 0: libgomp's default, read at the
 * first use) and the state of its contention check (below). Thread-local like libgomp's own
 * setting: each serve worker asks for its own count. */
static _Thread_local int threads_wanted;
static _Thread_local struct {
    double wall, self_cpu;   /* seconds */
    double others;           /* cores other processes kept busy over the last interval */
    unsigned long long busy; /* clock ticks the CPUs we may run on were busy, in all */
    int valid, running;      /* running: the count set now */
} seen;

static void set_running(int n)
{
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
    seen.running = n;
}

enum medvlm_status medvlm_set_threads(int n)
{
    if (n < 1 || n > 1024)
        return mv_err(MEDVLM_ERR_ARG, "medvlm_set_threads: %d threads (expected 1..1024)", n);
    threads_wanted = n;
    seen.valid = 0;
    set_running(n);
    return MEDVLM_OK;
}

int medvlm_get_threads(void)
{
    return threads_wanted ? threads_wanted : omp_get_max_threads();
}

/* ---- sharing the CPUs with other processes ----
 *
 * A product split over T threads ends when its last item is done; when another process takes
 * one of our cores, the thread the scheduler parks behind it holds its item until its next
 * time slice and the others wait, at every product and every element-wise pass: two threads
 * then run slower than one. So before each batch the library looks at how busy the CPUs it may
 * run on were since the last look (/proc/stat), less its own CPU time (getrusage): the cores
 * that other processes kept busy, rounded, are taken off those CPUs, and the next batches run
 * on at most what is left (at least one thread; never more than asked for). Every result is the
 * same at any thread count, so this changes the speed only. MEDVLM_ADAPT_THREADS=0 in the
 * environment turns it off. */

/* Ticks the CPUs in `set` were busy (user, nice, system, irq, softirq; not idle, iowait, or
 * steal, which the hypervisor takes from every thread alike), from /proc/stat read in pieces
 * into a stack buffer (no allocation: a training step allocates nothing). 0 when unreadable. */
static int busy_ticks(const cpu_set_t *set, unsigned long long *out)
{
    int fd = open("/proc/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[4096];
    size_t have = 0;
    unsigned long long busy = 0;
    int any = 0, done = 0;
    while (!done) {
        ssize_t r = read(fd, buf + have, sizeof buf - 1 - have);
        if (r <= 0)
            done = 1;
        else
            have += (size_t)r;
        buf[have] = '\0';
        char *line = buf, *nl;
        while ((nl = strchr(line, '\n')) || (done && *line)) {
            if (nl) *nl = '\0';
            unsigned cpu;
            unsigned long long v[8] = {0};
            if (strncmp(line, "cpu", 3) == 0 && line[3] >= '0' && line[3] <= '9' &&
                sscanf(line + 3, "%u %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &v[0], &v[1],
                       &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) >= 8 &&
                cpu < CPU_SETSIZE && CPU_ISSET(cpu, set)) {
                busy += v[0] + v[1] + v[2] + v[5] + v[6];
                any = 1;
            }
            if (!nl) break;
            line = nl + 1;
        }
        if (!done) { /* keep the unfinished line */
            size_t rest = strlen(line);
            memmove(buf, line, rest);
            have = rest;
            if (have == sizeof buf - 1) have = 0; /* a line this long is no cpu line */
        }
    }
    close(fd);
    *out = busy;
    return any;
}

double mv_threads_others(void)
{
    return seen.others;
}

void mv_threads_adapt(void)
{
    if (omp_in_parallel()) return;
    if (!threads_wanted) threads_wanted = omp_get_max_threads();
    const int want = threads_wanted;
    static int enabled = -1; /* the same for every thread; racing first reads agree */
    if (enabled < 0) {
        const char *e = getenv("MEDVLM_ADAPT_THREADS");
        enabled = !(e && strcmp(e, "0") == 0);
    }
    if (want <= 1 || !enabled) return;
    const double now = mv_now();
    if (seen.valid && now - seen.wall < 0.25) return; /* ticks are 10 ms: look every 0.25 s */
    cpu_set_t set;
    unsigned long long busy;
    struct rusage ru;
    if (sched_getaffinity(0, sizeof set, &set) != 0 || !busy_ticks(&set, &busy) ||
        getrusage(RUSAGE_SELF, &ru) != 0)
        return;
    const double self = (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
                        (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
    if (seen.valid && busy >= seen.busy) {
        const double hz = (double)sysconf(_SC_CLK_TCK), dt = now - seen.wall;
        const double others = ((double)(busy - seen.busy) / hz - (self - seen.self_cpu)) / dt;
        seen.others = others;
        /* the CPUs we may run on less those other processes kept busy, rounded */
        int n = CPU_COUNT(&set) - (int)(others + 0.5);
        n = n < 1 ? 1 : n > want ? want : n;
        if (n != seen.running) set_running(n);
    } else if (seen.running != want) {
        set_running(want);
    }
    seen.wall = now;
    seen.self_cpu = self;
    seen.busy = busy;
    seen.valid = 1;
}

/* ---- per-thread scratch ---- */

/* The buffers are mapped directly, not taken from malloc: a thread's buffers go back to the
 * system when it ends, so short-lived threads (the server's connection threads, which embed
 * with a borrowed encoder) leave no malloc arena grown behind them. */
struct scratch {
    void *p[MV_SCRATCH_N];
    size_t n[MV_SCRATCH_N];
};

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_ok;

static void scratch_free(void *v)
{
    struct scratch *sc = v;
    for (int i = 0; i < MV_SCRATCH_N; i++)
        if (sc->p[i]) munmap(sc->p[i], sc->n[i]);
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
        for (int i = 0; i < MV_SCRATCH_N; i++) sc->p[i] = NULL, sc->n[i] = 0;
        if (pthread_setspecific(scratch_key, sc) != 0) {
            mv_free(sc);
            return NULL;
        }
    }
    if (!sc->p[slot] && bytes) { /* page-aligned, so 64-byte aligned */
        void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) {
            mv_err(MEDVLM_ERR_NOMEM, "out of memory mapping %zu bytes of scratch", bytes);
            return NULL;
        }
        sc->p[slot] = m;
        sc->n[slot] = bytes;
    }
    return sc->p[slot];
}

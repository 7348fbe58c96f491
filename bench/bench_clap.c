/*
 * bench_clap [--n N] [--dim D] [--classes K] [--reps R] [--method NAME] [--threads T] [--epochs E]
 *            [--walk]
 *
 * Times one adapter training run as the PEFT-MedVLMs notebook's train_adapter does it
 * (100 epochs, shuffled batches of 32, SGD momentum 0.9, lr 1e-3; CLAP by default) on N x D
 * random l2-normalised features with labels i mod K: the C counterpart of
 * `torch_baseline.py clap --n N`. Prints one JSON line: times of R runs and the median.
 *
 * --walk times only the reading: every epoch a new random order, batches of 32 rows, each
 * of the T threads summing its share of the columns of every row while prefetching the next
 * step's, no other arithmetic and no synchronisation: what bringing the rows in from memory
 * costs at the trainer's pace of prefetching, a floor for the trainer (which does all its
 * arithmetic on top) as long as the features do not sit in cache. Like the trainer, it reads
 * a copy of the features on 2 MB pages.
 */
#include "medvlm.h"

#include "core/core.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

typedef float v8f __attribute__((vector_size(32)));

/* Read X (n, d) as the trainer does: per epoch a new order, per step `batch` rows, thread t
 * of T its contiguous share of the columns, and while reading a row, one cache line per 16
 * floats of the same row of the next step (within an epoch) prefetched. Returns a sum so that
 * nothing is optimised out. */
static double walk(const float *X, int n, int d, int epochs, int batch, int threads)
{
    double total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    {
        int T = omp_get_num_threads(), t = omp_get_thread_num();
        int d0 = (int)((long)d * t / T), d1 = (int)((long)d * (t + 1) / T);
        int *perm = malloc(sizeof(int) * (size_t)n);
        struct mv_rng r;
        mv_rng_seed(&r, 1); /* every thread the same orders */
        v8f acc[4] = {{0}};
        float tail = 0;
        for (int i = 0; perm && i < n; i++) perm[i] = i;
        for (int e = 0; perm && e < epochs; e++) {
            for (int i = n - 1; i > 0; i--) {
                int j = (int)mv_rng_below(&r, (uint64_t)i + 1), tmp = perm[i];
                perm[i] = perm[j];
                perm[j] = tmp;
            }
            for (int s = 0; s + batch <= n; s += batch)
                for (int b = s; b < s + batch; b++) {
                    const float *x = X + (size_t)perm[b] * d;
                    /* the same row of the next step, or this one at an epoch's last step */
                    const char *ahead =
                        (const char *)(X + (size_t)perm[s + 2 * batch <= n ? b + batch : b] * d);
                    int j = d0;
                    for (; j + 8 <= d1; j += 8) {
                        if (!(j & 15)) __builtin_prefetch(ahead + (size_t)j * sizeof(float));
                        v8f v;
                        memcpy(&v, x + j, sizeof v);
                        acc[(j >> 3) & 3] += v;
                    }
                    for (; j < d1; j++) tail += x[j];
                }
        }
        for (int i = 0; i < 4; i++)
            for (int l = 0; l < 8; l++) total += acc[i][l];
        total += tail;
        free(perm);
    }
    return total;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int n = 10000, d = 512, k = 4, reps = 5, threads = 0, epochs = 100, walk_only = 0;
    const char *method = "clap";
    for (int i = 1; i < argc; i += 2) {
        if (!strcmp(argv[i], "--walk")) {
            walk_only = 1;
            i--;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "bench_clap: %s needs a value\n", argv[i]);
            return 2;
        }
        if (!strcmp(argv[i], "--n"))
            n = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dim"))
            d = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--classes"))
            k = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--epochs"))
            epochs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--method"))
            method = argv[i + 1];
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench_clap: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (n <= 0 || d <= 0 || k <= 0 || reps <= 0 || reps > 100) {
        fprintf(stderr, "bench_clap: bad sizes\n");
        return 2;
    }
    struct medvlm_adapter_options o;
    enum medvlm_adapter_method m;
    if (medvlm_adapter_method_from_name(method, &m)) {
        fprintf(stderr, "bench_clap: %s\n", medvlm_last_error());
        return 2;
    }
    medvlm_adapter_options_default(&o, m); /* 100 epochs, batch 32, SGD 0.9, lr 1e-3 */
    o.threads = threads;                   /* 0: the library's count */
    if (!threads) threads = medvlm_get_threads();
    o.epochs = epochs;
    float *X = malloc(sizeof(float) * (size_t)n * d), *zs = malloc(sizeof(float) * (size_t)k * d);
    int64_t *Y = malloc(sizeof(int64_t) * (size_t)n);
    long steps = medvlm_adapter_steps(&o, n);
    float *losses = malloc(sizeof(float) * (size_t)(steps ? steps : 1));
    double *times = malloc(sizeof(double) * (size_t)reps);
    if (!X || !zs || !Y || !losses || !times) return 1;
    struct mv_rng r;
    mv_rng_seed(&r, 0);
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < d; j++) s += pow(X[(size_t)i * d + j] = mv_rng_normal(&r), 2);
        for (int j = 0; j < d; j++) X[(size_t)i * d + j] /= (float)sqrt(s);
        Y[i] = i % k;
    }
    for (int c = 0; c < k; c++) {
        double s = 0;
        for (int j = 0; j < d; j++) s += pow(zs[(size_t)c * d + j] = mv_rng_normal(&r), 2);
        for (int j = 0; j < d; j++) zs[(size_t)c * d + j] /= (float)sqrt(s);
    }
    /* the walk reads a copy on huge pages, as the trainer does (train_proto.c) */
    float *XL = walk_only ? mv_aligned_large(sizeof(float) * (size_t)n * d) : NULL;
    if (XL) memcpy(XL, X, sizeof(float) * (size_t)n * d);
    for (int rep = -1; rep < reps; rep++) { /* rep -1: warm-up */
        struct medvlm_adapter *a = NULL;
        double t0 = mv_now();
        if (walk_only) {
            losses[steps ? steps - 1 : 0] =
                (float)walk(XL ? XL : X, n, d, o.epochs, o.batch_size, threads);
        } else if (medvlm_adapter_train(&o, X, Y, n, d, zs, k, logf(100.0f), &a, losses)) {
            fprintf(stderr, "bench_clap: %s\n", medvlm_last_error());
            return 1;
        }
        double t = mv_now() - t0;
        if (rep >= 0) times[rep] = t;
        medvlm_adapter_free(a);
    }
    printf("{\"mode\":\"%s%s\",\"threads\":%d,\"n\":%d,\"dim\":%d,\"classes\":%d,\"epochs\":%d,"
           "\"batch\":%d,"
           "\"steps\":%ld,\"final_loss\":%.6g,\"times\":[",
           method, walk_only ? "-walk" : "", threads, n, d, k, o.epochs, o.batch_size, steps,
           steps ? losses[steps - 1] : 0.0);
    for (int i = 0; i < reps; i++) printf("%s%.6f", i ? "," : "", times[i]);
    qsort(times, (size_t)reps, sizeof(double), cmp_double);
    printf("],\"median_s\":%.6f}\n", times[reps / 2]);
    free(X), free(zs), free(Y), free(losses), free(times);
    mv_free(XL);
    return 0;
}

/*
 * bench_preprocess - images/s of decode + preprocess on the data-loading path.
 *
 *   bench_preprocess [--n N] [--threads T] [--reps R] [--model DIR] IMAGE...
 *
 * The files given (e.g. the 512x512 SICAPv2 JPEGs) are cycled to N images (default 200).
 * For each configuration it times R runs (default 5) and prints the best as images/s (the least
 * disturbed run: the machine is shared):
 *   decode          medvlm_image_decode_file only (1 thread)
 *   hf / tutorial   decode + preprocess, batch API with 1 thread and with T threads
 *                   (default: all cores)
 * The preprocessing config is the model folder's (default: CLIP's, 224 px).
 * Compare with bench/pil_preprocess.py (Pillow + torchvision, same files, same N).
 */
#include "medvlm.h"

#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double best(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return t[0];
}

int main(int argc, char **argv)
{
    int n = 200, threads = 0, reps = 5, nfiles = 0;
    const char *model = NULL;
    const char **files = calloc((size_t)argc, sizeof *files);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--n") && i + 1 < argc)
            n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--model") && i + 1 < argc)
            model = argv[++i];
        else
            files[nfiles++] = argv[i];
    }
    if (!nfiles || n <= 0 || reps <= 0 || reps > 99) {
        fprintf(
            stderr,
            "usage: bench_preprocess [--n N] [--threads T] [--reps R] [--model DIR] IMAGE...\n");
        return 2;
    }
    struct medvlm_preproc_config pp;
    medvlm_preproc_default(&pp);
    if (model) {
        char *p = mv_path_join(model, "preprocessor_config.json");
        if (medvlm_preproc_load(p, &pp)) {
            fprintf(stderr, "%s\n", medvlm_last_error());
            return 1;
        }
        mv_free(p);
    }
    const char **paths = malloc(sizeof *paths * (size_t)n);
    for (int i = 0; i < n; i++) paths[i] = files[i % nfiles];
    double t[99];
    /* decode only */
    for (int r = 0; r < reps; r++) {
        double t0 = mv_now();
        for (int i = 0; i < n; i++) {
            struct medvlm_image img;
            if (medvlm_image_decode_file(paths[i], NULL, &img)) {
                fprintf(stderr, "%s\n", medvlm_last_error());
                return 1;
            }
            medvlm_image_free(&img);
        }
        t[r] = mv_now() - t0;
    }
    printf("decode             1 thread : %8.1f images/s\n", n / best(t, reps));
    for (int pipe = 0; pipe < 3; pipe++) {
        struct medvlm_preprocess_options o;
        medvlm_preprocess_options_default(&o);
        const char *name = pipe == 0 ? "hf (crop)" : pipe == 1 ? "tutorial aa" : "tutorial no-aa";
        if (pipe) {
            o.pipeline = MEDVLM_PREPROCESS_TUTORIAL;
            o.antialias = pipe == 1;
        }
        int h, w;
        if (medvlm_image_preprocess_fixed_size(&pp, &o, &h, &w)) return 1;
        size_t cap = (size_t)n * 3 * h * w;
        float *out = malloc(cap * sizeof *out);
        for (int k = 0; k < 2; k++) {
            int nt = k == 0 ? 1 : threads;
            for (int r = 0; r < reps; r++) {
                double t0 = mv_now();
                if (medvlm_image_preprocess_files(paths, n, NULL, &pp, &o, nt, out, cap, NULL)) {
                    fprintf(stderr, "%s\n", medvlm_last_error());
                    return 1;
                }
                t[r] = mv_now() - t0;
            }
            char label[32];
            if (nt)
                snprintf(label, sizeof label, "%d thread%s", nt, nt == 1 ? " " : "s");
            else
                snprintf(label, sizeof label, "all cores");
            printf("%-16s %s: %8.1f images/s\n", name, label, n / best(t, reps));
        }
        free(out);
    }
    free(paths);
    free(files);
    return 0;
}

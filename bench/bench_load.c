/*
 * bench_load - how long medvlm_model_load takes.
 *
 *   bench_load MODEL_DIR [REPS [P]]      time loading MODEL_DIR (both towers), median of REPS;
 *                                        with P (fp32, bf16 or auto) also the time of
 *                                        medvlm_model_prepare at that precision after it
 *   bench_load --make-plip DIR           write a full-size PLIP-shaped folder (random weights)
 *
 * Loading maps model.safetensors and validates it; F32 weights are not copied. It reads every
 * weight once (the fingerprint, the non-finite scan). Preparing copies the linear layers'
 * weights into the layout the product kernels read (or into bf16).
 */
#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--make-plip") == 0) {
        struct medvlm_config cfg;
        medvlm_config_default(&cfg); /* transformers' defaults = the PLIP / ViT-B/32 shapes */
        struct medvlm_model *m;
        if (medvlm_model_init_random(&cfg, 0, &m) || medvlm_model_save(m, argv[2])) {
            fprintf(stderr, "bench_load: %s\n", medvlm_last_error());
            return 1;
        }
        medvlm_model_free(m);
        return 0;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: bench_load MODEL_DIR [REPS] | bench_load --make-plip DIR\n");
        return 2;
    }
    int reps = argc > 2 ? atoi(argv[2]) : 21;
    if (reps < 1 || reps > 10000) reps = 21;
    enum medvlm_precision prec = MEDVLM_PRECISION_AUTO;
    if (argc > 3 && medvlm_precision_parse(argv[3], &prec)) {
        fprintf(stderr, "bench_load: %s\n", medvlm_last_error());
        return 2;
    }
    double *t = calloc((size_t)reps, sizeof *t), *tp = calloc((size_t)reps, sizeof *tp);
    for (int r = 0; r < reps; r++) {
        double t0 = mv_now();
        struct medvlm_model *m;
        if (medvlm_model_load(argv[1], MEDVLM_LOAD_ALL, &m)) {
            fprintf(stderr, "bench_load: %s\n", medvlm_last_error());
            return 1;
        }
        t[r] = mv_now() - t0;
        if (argc > 3) {
            t0 = mv_now();
            if (medvlm_model_prepare(m, prec)) {
                fprintf(stderr, "bench_load: %s\n", medvlm_last_error());
                return 1;
            }
            tp[r] = mv_now() - t0;
        }
        medvlm_model_free(m);
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    qsort(tp, (size_t)reps, sizeof *tp, cmp_double);
    printf("{\"bench\":\"load\",\"model\":\"%s\",\"reps\":%d,\"min_ms\":%.3f,\"median_ms\":%.3f,"
           "\"max_ms\":%.3f",
           argv[1], reps, 1e3 * t[0], 1e3 * t[reps / 2], 1e3 * t[reps - 1]);
    if (argc > 3)
        printf(",\"precision\":\"%s\",\"prepare_min_ms\":%.3f,\"prepare_median_ms\":%.3f,"
               "\"prepare_max_ms\":%.3f",
               argv[3], 1e3 * tp[0], 1e3 * tp[reps / 2], 1e3 * tp[reps - 1]);
    printf("}\n");
    free(t);
    free(tp);
    return 0;
}

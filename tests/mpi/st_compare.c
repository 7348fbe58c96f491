/*
 * st_compare.c - st_compare A B ATOL RTOL: every F32 / F64 tensor of safetensors file B within
 * |b - a| <= ATOL + RTOL |a| of A's tensor of the same name and shape (and every tensor of A
 * in B, and the reverse). Prints each tensor's max abs / rel error; on failure names the tensor
 * and its first mismatching index, and exits 1. The MPI tests compare N ranks' fine-tuning
 * with one process's by it (tests/cli/test_mpi.sh).
 */
#include <medvlm.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: st_compare A.safetensors B.safetensors ATOL RTOL\n");
        return 2;
    }
    const double atol = atof(argv[3]), rtol = atof(argv[4]);
    struct medvlm_st *a = NULL, *b = NULL;
    if (medvlm_st_open(argv[1], &a) || medvlm_st_open(argv[2], &b)) {
        fprintf(stderr, "st_compare: %s\n", medvlm_last_error());
        medvlm_st_free(a);
        return 2;
    }
    int bad = 0;
    if (medvlm_st_count(a) != medvlm_st_count(b)) {
        fprintf(stderr, "st_compare: %d tensors in %s, %d in %s\n", medvlm_st_count(a), argv[1],
                medvlm_st_count(b), argv[2]);
        bad = 1;
    }
    for (int i = 0; i < medvlm_st_count(a); i++) {
        const struct medvlm_tensor_info *ta = medvlm_st_at(a, i);
        const struct medvlm_tensor_info *tb = medvlm_st_find(b, ta->name);
        if (!tb || tb->nbytes != ta->nbytes || tb->dtype != ta->dtype) {
            fprintf(stderr, "FAIL %s: missing or another shape / dtype in %s\n", ta->name, argv[2]);
            bad = 1;
            continue;
        }
        const int f64 = ta->dtype == MEDVLM_DTYPE_F64;
        if (ta->dtype != MEDVLM_DTYPE_F32 && !f64) {
            if (memcmp(ta->data, tb->data, ta->nbytes) != 0) {
                fprintf(stderr, "FAIL %s: not F32 or F64, and the bytes differ\n", ta->name);
                bad = 1;
            }
            continue;
        }
        const size_t n = ta->nbytes / (f64 ? 8 : 4);
        size_t first = (size_t)-1;
        double max_abs = 0, max_rel = 0, xf = 0, yf = 0;
        for (size_t j = 0; j < n; j++) {
            double x = f64 ? ((const double *)ta->data)[j] : ((const float *)ta->data)[j];
            double y = f64 ? ((const double *)tb->data)[j] : ((const float *)tb->data)[j];
            if (x == y) continue; /* inf included */
            double d = fabs(y - x), r = d / fmax(fabs(x), 1e-30);
            if (d > max_abs) max_abs = d;
            if (d > 0 && r > max_rel) max_rel = r;
            if (!(d <= atol + rtol * fabs(x)) && first == (size_t)-1) {
                first = j;
                xf = x;
                yf = y;
            }
        }
        printf("%-70s max abs %.3g max rel %.3g\n", ta->name, max_abs, max_rel);
        if (first != (size_t)-1) {
            fprintf(stderr,
                    "FAIL %s: max abs %.3g, max rel %.3g (atol %g, rtol %g); first at "
                    "index %zu: %.9g vs %.9g\n",
                    ta->name, max_abs, max_rel, atol, rtol, first, xf, yf);
            bad = 1;
        }
    }
    medvlm_st_free(a);
    medvlm_st_free(b);
    return bad;
}

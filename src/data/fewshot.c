/*
 * fewshot.c - the tutorial's few-shot subset: Python's random.seed + random.shuffle over the
 * kept rows in table order, then the first K rows of each class in shuffled order.
 */
#include "data.h"

#include <string.h>

enum medvlm_status medvlm_fewshot_sample(const int64_t *labels, int n, int n_classes, int shots,
                                         int64_t seed, int allow_fewer, int **out_idx, int *out_n)
{
    enum medvlm_status st = MEDVLM_OK;
    int *rows = NULL, *idx = NULL, *taken = NULL, *have = NULL;
    if (!out_idx || !out_n) return mv_err(MEDVLM_ERR_ARG, "fewshot: out_idx and out_n needed");
    *out_idx = NULL;
    *out_n = 0;
    if (shots <= 0)
        return mv_err(MEDVLM_ERR_ARG, "fewshot: the number of shots must be >= 1, got %d", shots);
    if (n_classes <= 0 || n < 0 || (n > 0 && !labels))
        return mv_err(MEDVLM_ERR_ARG,
                      "fewshot: need n >= 0 labels and >= 1 class (got n %d, "
                      "%d classes)",
                      n, n_classes);
    size_t cap;
    if (!mv_mul_ok((size_t)n_classes, (size_t)shots, &cap) || cap > (size_t)1 << 31)
        return mv_err(MEDVLM_ERR_OVERFLOW, "fewshot: %d classes x %d shots is too many", n_classes,
                      shots);
    if (cap > (size_t)n) cap = (size_t)n;
    rows = mv_calloc((size_t)n + 1, sizeof *rows);
    idx = mv_calloc(cap + 1, sizeof *idx);
    taken = mv_calloc((size_t)n_classes, sizeof *taken);
    have = mv_calloc((size_t)n_classes, sizeof *have);
    if (!rows || !idx || !taken || !have) {
        st = MEDVLM_ERR_NOMEM;
        goto fail;
    }
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (labels[i] < 0) continue;
        if (labels[i] >= n_classes) {
            st = mv_err(MEDVLM_ERR_ARG, "fewshot: label %lld of row %d is outside 0..%d",
                        (long long)labels[i], i, n_classes - 1);
            goto fail;
        }
        have[labels[i]]++;
        rows[m++] = i;
    }
    for (int c = 0; c < n_classes; c++) {
        if (have[c] < shots && !allow_fewer) {
            st = mv_err(MEDVLM_ERR_MISSING,
                        "fewshot: class %d has %d image%s, fewer than the "
                        "%d shots asked for (allow fewer to take them all)",
                        c, have[c], have[c] == 1 ? "" : "s", shots);
            goto fail;
        }
    }
    struct mv_pyrandom rng;
    mv_pyrandom_seed(&rng, seed);
    mv_pyrandom_shuffle_int(&rng, rows, (size_t)m);
    /* class by class, the first `shots` of that class in shuffled order */
    int k = 0;
    for (int c = 0; c < n_classes; c++)
        for (int i = 0; i < m && taken[c] < shots; i++)
            if (labels[rows[i]] == c) {
                idx[k++] = rows[i];
                taken[c]++;
            }
    *out_idx = idx;
    *out_n = k;
    idx = NULL;
fail:
    mv_free(rows);
    mv_free(idx);
    mv_free(taken);
    mv_free(have);
    return st;
}

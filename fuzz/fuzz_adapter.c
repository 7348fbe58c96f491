/* fuzz_adapter.c - the adapter, features and prototypes readers on arbitrary safetensors
 * bytes; a loaded adapter also classifies one feature row. */
#include "adapters/adapters.h"
#include "io/io.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct medvlm_st *st;
    if (mv_st_parse("fuzz.safetensors", data, size, &st) != MEDVLM_OK) return 0;
    struct medvlm_adapter *a = NULL;
    if (mv_adapter_from_st(st, &a) == MEDVLM_OK) {
        int d = medvlm_adapter_dim(a), k = medvlm_adapter_classes(a);
        if ((size_t)d * k < ((size_t)1 << 24)) {
            float *x = mv_calloc((size_t)d, sizeof(float)),
                  *logits = mv_calloc((size_t)k, sizeof(float));
            if (x && logits) {
                x[0] = 1.0f;
                (void)medvlm_adapter_logits(a, x, 1, logits);
            }
            mv_free(x);
            mv_free(logits);
        }
        medvlm_adapter_free(a);
    }
    struct medvlm_features *f = NULL;
    if (mv_features_from_st(st, &f) == MEDVLM_OK) medvlm_features_free(f);
    struct medvlm_prototypes *p = NULL;
    if (mv_prototypes_from_st(st, &p) == MEDVLM_OK) medvlm_prototypes_free(p);
    medvlm_st_free(st);
    return 0;
}

/* fuzz_safetensors.c - the safetensors header parser and the F32 views on arbitrary bytes. */
#include "io/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct medvlm_st *st;
    if (mv_st_parse("fuzz.safetensors", data, size, &st) != MEDVLM_OK) return 0;
    for (int i = 0; i < medvlm_st_count(st); i++) {
        const struct medvlm_tensor_info *t = medvlm_st_at(st, i);
        const float *f;
        float *owned;
        if (medvlm_st_get_f32(st, t->name, &f, &owned, NULL) == MEDVLM_OK) {
            volatile float sink = 0;
            size_t n = t->nbytes / medvlm_dtype_size(t->dtype);
            for (size_t j = 0; j < n; j++) sink += f[j];
            (void)sink;
            mv_free(owned);
        }
    }
    (void)medvlm_st_metadata(st, "format");
    medvlm_st_free(st);
    return 0;
}

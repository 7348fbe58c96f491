/* fuzz_torchbin.c - pytorch_model.bin reading on arbitrary bytes: the zip directory, the
 * storage checks and strided copies (mv_torchbin_parse), and the pickle machine on its own
 * (the same bytes taken as a data.pkl, so pickle seeds reach it without a valid zip). */
#include "io/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct medvlm_st *st;
    if (mv_torchbin_parse("fuzz.bin", data, size, &st) == MEDVLM_OK) {
        volatile unsigned char sink = 0;
        for (int i = 0; i < medvlm_st_count(st); i++) {
            const struct medvlm_tensor_info *t = medvlm_st_at(st, i);
            const unsigned char *p = t->data;
            for (size_t j = 0; j < t->nbytes; j++) sink ^= p[j]; /* every byte is readable */
            const float *f;
            float *owned;
            if (medvlm_st_get_f32(st, t->name, &f, &owned, NULL) == MEDVLM_OK) mv_free(owned);
        }
        (void)sink;
        medvlm_st_free(st);
    }
    struct mv_arena a;
    struct mv_torch_tensor *t;
    int n;
    mv_arena_init(&a, 4096);
    (void)mv_pickle_state_dict("fuzz.pkl", data, size, &a, &t, &n);
    mv_arena_free(&a);
    return 0;
}

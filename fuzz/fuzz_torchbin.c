/* fuzz_torchbin.c - pytorch_model.bin reading on arbitrary bytes: the zip directory, the
 * storage checks and strided copies (mv_torchbin_parse), and the pickle machine on its own
 * (the same bytes taken as a data.pkl, so pickle seeds reach it without a valid zip).
 * Mutations inside data.pkl would almost always fail its CRC, so each input is also parsed
 * once more with the CRCs of its data.pkl records recomputed. */
#include "io/io.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void parse(const uint8_t *data, size_t size)
{
    struct medvlm_st *st;
    if (mv_torchbin_parse("fuzz.bin", data, size, &st) != MEDVLM_OK) return;
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

/* Store the right CRC for every <name>/data.pkl record of buf; true if one changed. */
static bool fix_crcs(uint8_t *buf, size_t size)
{
    struct mv_zip z;
    bool changed = false;
    if (mv_zip_open("fuzz.bin", buf, size, &z) != MEDVLM_OK) return false;
    for (int i = 0; i < z.count; i++) {
        const struct mv_zip_entry *e = &z.e[i];
        if (e->name_len < 8 || memcmp(e->name + e->name_len - 8, "data.pkl", 8) != 0 ||
            e->method != 0)
            continue;
        uint32_t crc = mv_crc32(e->data, (size_t)e->usize);
        if (crc == e->crc) continue;
        uint8_t *c = (uint8_t *)e->name - 46; /* its central directory record */
        for (int k = 0; k < 4; k++) c[16 + k] = (uint8_t)(crc >> (8 * k));
        changed = true;
    }
    mv_zip_free(&z);
    return changed;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    parse(data, size);
    uint8_t *copy = malloc(size ? size : 1);
    if (copy) {
        if (size) memcpy(copy, data, size);
        if (fix_crcs(copy, size)) parse(copy, size);
        free(copy);
    }
    struct mv_arena a;
    struct mv_torch_tensor *t;
    int n;
    mv_arena_init(&a, 4096);
    (void)mv_pickle_state_dict("fuzz.pkl", data, size, &a, &t, &n);
    mv_arena_free(&a);
    return 0;
}

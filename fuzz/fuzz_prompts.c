/* fuzz_prompts.c - prompt files (JSON classes / templates / descriptions) on arbitrary bytes. */
#include "medvlm.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct medvlm_prompts *p = NULL;
    if (medvlm_prompts_parse("fuzz.json", (const char *)data, size, &p) == MEDVLM_OK) {
        size_t total = 0;
        for (int c = 0; c < p->n_classes; c++)
            for (int i = 0; i < p->n_prompts[c]; i++) total += strlen(p->prompts[c][i]);
        (void)total;
        medvlm_prompts_free(p);
    }
    return 0;
}

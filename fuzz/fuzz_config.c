/* fuzz_config.c - config.json and preprocessor_config.json readers on arbitrary bytes. */
#include "io/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *root;
    if (mv_json_parse("fuzz.json", (const char *)data, size, &root) != MEDVLM_OK) return 0;
    struct medvlm_config cfg;
    struct medvlm_preproc_config pp;
    (void)mv_config_from_json("config.json", root, &cfg);
    (void)mv_preproc_from_json("preprocessor_config.json", root, &pp);
    cJSON_Delete(root);
    return 0;
}

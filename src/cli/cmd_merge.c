/* cmd_merge.c - `medvlm merge`: fold a fine-tuning run into a complete model folder. */
#include "cli.h"

#include "core/core.h"

#include <string.h>

static const char *usage =
    "usage: medvlm merge --model DIR --run RUN_DIR --out NEW_DIR\n"
    "\n"
    "Write a complete Hugging Face CLIP folder (config.json, model.safetensors,\n"
    "preprocessor_config.json and the tokenizer files) with the fine-tuning of RUN_DIR\n"
    "folded in: LoRA merged into its weights (W + alpha/r B A), the trained LayerNorm, bias or\n"
    "other tensors in place of the base's. medvlm and transformers' CLIPModel.from_pretrained\n"
    "load it like the original. The run must come from DIR (its fingerprint is checked).\n"
    "\n"
    "  --model DIR      the base model the run was trained from\n"
    "  --run RUN_DIR    the output folder of `medvlm finetune`\n"
    "  --out NEW_DIR    the new model folder (created; its files written atomically)\n"
    "\n"
    "example:\n"
    "  medvlm merge --model plip --run runs/lora-16shot --out plip-sicap-lora\n";

/* The tokenizer and image-processor files travel with the weights. */
static const char *const copied[] = {"tokenizer.json", "vocab.json", "merges.txt",
                                     "tokenizer_config.json", "special_tokens_map.json"};

int cmd_merge(int argc, char **argv)
{
    const char *model_dir = NULL, *run = NULL, *out = NULL;
    const struct cli_opt opts[] = {CLI_OPT_STR("model", &model_dir), CLI_OPT_STR("run", &run),
                                   CLI_OPT_STR("out", &out), CLI_OPT_END};
    const struct cli_spec spec = {.loads_model = 1, .cmd = "merge", .usage = usage, .opts = opts};
    const int parsed = cli_parse(&spec, argc, argv, NULL);
    if (parsed != CLI_GO_ON) return parsed;
    if (!model_dir || !run || !out)
        return cli_usage("merge", "--model, --run and --out are all required");
    const struct cli_io io = {.model = {{"--model", model_dir}, {"--run", run}},
                              .out = {{"--out", out}}};
    if (!cli_outputs_ok("merge", &io)) return CLI_USAGE;
    struct medvlm_model *base = NULL, *m = NULL;
    int rc = CLI_FAIL;
    if (medvlm_model_load(model_dir, MEDVLM_LOAD_ALL | cli_load_flags, &base) ||
        medvlm_model_apply_run(base, run, 1, &m) || medvlm_model_save(m, out)) {
        cli_fail(NULL);
        goto done;
    }
    for (size_t i = 0; i < MV_ARRAY_LEN(copied); i++) {
        char *src = mv_path_join(model_dir, copied[i]), *dst = mv_path_join(out, copied[i]);
        char *data = NULL;
        size_t len;
        int ok = src && dst;
        if (ok && mv_is_file(src))
            ok = !mv_read_file(src, &data, &len) && !mv_write_file_atomic(dst, data, len);
        mv_free(data);
        mv_free(src);
        mv_free(dst);
        if (!ok) {
            cli_fail(out);
            goto done;
        }
    }
    printf("merged %s into %s: %s\n", run, model_dir, out);
    rc = CLI_OK;
done:
    medvlm_model_free(m);
    medvlm_model_free(base);
    return rc;
}

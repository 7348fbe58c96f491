/* cmd_info.c - `medvlm info MODEL_DIR`: what a model folder holds, and the precision
 * `--precision auto` runs its encoders at on this CPU. */
#include "cli.h"
#include "model/model.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>

static const char *usage =
    "usage: medvlm info [--json] MODEL_DIR\n"
    "\n"
    "Describe a Hugging Face CLIP folder: both towers' architecture, parameter counts,\n"
    "weight dtypes, exp(logit_scale) and the files found; and which precision `auto` picks\n"
    "for the encoders on this CPU, and why (docs/precision.md).\n"
    "\n"
    "  --json      one JSON object on stdout instead of text\n"
    "\n"
    "example:\n"
    "  medvlm info ~/models/plip\n";

static const char *act_name(enum medvlm_act a)
{
    return a == MEDVLM_ACT_GELU ? "gelu" : "quick_gelu";
}

static const char *known_files[] = {
    "config.json",
    "model.safetensors",
    "pytorch_model.bin",
    "preprocessor_config.json",
    "tokenizer.json",
    "vocab.json",
    "merges.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
};

struct counts {
    size_t text, vision, shared;
    unsigned dtypes; /* bit per medvlm_dtype seen */
};

static struct counts count_params(const struct medvlm_model *m)
{
    struct counts c = {0};
    for (int i = 0; i < medvlm_model_param_count(m); i++) {
        const struct medvlm_param_info *p = medvlm_model_param(m, i);
        if (p->tower == MEDVLM_TOWER_TEXT)
            c.text += p->numel;
        else if (p->tower == MEDVLM_TOWER_VISION)
            c.vision += p->numel;
        else
            c.shared += p->numel;
        c.dtypes |= 1u << p->file_dtype;
    }
    return c;
}

static void print_tower_text(const char *name, const struct medvlm_tower_config *t, int vision,
                             size_t params)
{
    printf("%s tower\n", name);
    printf("  width %d, layers %d, heads %d (head size %d), MLP %d\n", t->hidden_size,
           t->num_hidden_layers, t->num_attention_heads, t->hidden_size / t->num_attention_heads,
           t->intermediate_size);
    if (vision) {
        int g = t->image_size / t->patch_size;
        printf("  image %d px, patch %d, %d patches + class token\n", t->image_size, t->patch_size,
               g * g);
    } else {
        printf("  vocabulary %d, context %d, eos id %d\n", t->vocab_size,
               t->max_position_embeddings, t->eos_token_id);
    }
    printf("  activation %s, layer_norm_eps %g\n", act_name(t->hidden_act), t->layer_norm_eps);
    printf("  parameters %zu\n", params);
}

static void json_tower(const struct medvlm_tower_config *t, int vision, size_t params)
{
    printf("{\"hidden_size\":%d,\"intermediate_size\":%d,\"num_hidden_layers\":%d,"
           "\"num_attention_heads\":%d,\"hidden_act\":\"%s\",\"layer_norm_eps\":%g,",
           t->hidden_size, t->intermediate_size, t->num_hidden_layers, t->num_attention_heads,
           act_name(t->hidden_act), t->layer_norm_eps);
    if (vision)
        printf("\"image_size\":%d,\"patch_size\":%d,\"num_channels\":%d,", t->image_size,
               t->patch_size, t->num_channels);
    else
        printf("\"vocab_size\":%d,\"max_position_embeddings\":%d,\"eos_token_id\":%d,",
               t->vocab_size, t->max_position_embeddings, t->eos_token_id);
    printf("\"parameters\":%zu}", params);
}

int cmd_info(int argc, char **argv)
{
    int json = 0, pos;
    const struct cli_opt opts[] = {CLI_OPT_FLAG("json", &json), CLI_OPT_END};
    const struct cli_spec spec = {.loads_model = 1,
                                  .cmd = "info",
                                  .usage = usage,
                                  .opts = opts,
                                  .min_pos = 1,
                                  .max_pos = 1,
                                  .pos_name = "MODEL_DIR"};
    const int r = cli_parse(&spec, argc, argv, &pos);
    if (r != CLI_GO_ON) return r;
    const char *dir = argv[pos];
    struct medvlm_model *m;
    if (medvlm_model_load(dir, MEDVLM_LOAD_ALL | cli_load_flags, &m) != MEDVLM_OK)
        return cli_fail(NULL);
    const struct medvlm_config *cfg = medvlm_model_config(m);
    const struct medvlm_preproc_config *pp = medvlm_model_preproc(m);
    struct counts n = count_params(m);
    float scale = expf(medvlm_model_logit_scale(m));
    const char *auto_name = medvlm_precision_name(medvlm_precision_resolve(MEDVLM_PRECISION_AUTO));
    if (json) {
        printf("{\"model\":");
        cli_json_string(stdout, dir);
        printf(",\"projection_dim\":%d,\"logit_scale\":%.9g,\"exp_logit_scale\":%.9g,",
               cfg->projection_dim, medvlm_model_logit_scale(m), scale);
        printf("\"text\":");
        json_tower(&cfg->text, 0, n.text);
        printf(",\"vision\":");
        json_tower(&cfg->vision, 1, n.vision);
        printf(",\"parameters\":{\"text\":%zu,\"vision\":%zu,\"shared\":%zu,\"total\":%zu}", n.text,
               n.vision, n.shared, n.text + n.vision + n.shared);
        printf(",\"dtypes\":[");
        int first = 1;
        for (int d = 0; d < MEDVLM_DTYPE_COUNT; d++)
            if (n.dtypes & (1u << d)) {
                printf("%s\"%s\"", first ? "" : ",", medvlm_dtype_name((enum medvlm_dtype)d));
                first = 0;
            }
        printf("],\"preprocess\":{\"shortest_edge\":%d,\"crop\":[%d,%d],\"do_center_crop\":%s,"
               "\"mean\":[%.8g,%.8g,%.8g],\"std\":[%.8g,%.8g,%.8g],\"resample\":%d}",
               pp->shortest_edge, pp->crop_height, pp->crop_width,
               pp->do_center_crop ? "true" : "false", pp->mean[0], pp->mean[1], pp->mean[2],
               pp->std[0], pp->std[1], pp->std[2], (int)pp->resample);
        printf(",\"files\":[");
        first = 1;
        for (size_t i = 0; i < sizeof known_files / sizeof known_files[0]; i++) {
            char path[4096];
            struct stat sb;
            snprintf(path, sizeof path, "%s/%s", dir, known_files[i]);
            if (stat(path, &sb) == 0) {
                printf("%s{\"name\":\"%s\",\"bytes\":%lld}", first ? "" : ",", known_files[i],
                       (long long)sb.st_size);
                first = 0;
            }
        }
        printf("],\"precision_auto\":\"%s\",\"precision_auto_reason\":", auto_name);
        cli_json_string(stdout, mv_precision_auto_reason());
        printf("}\n");
    } else {
        printf("model %s\n", dir);
        print_tower_text("vision", &cfg->vision, 1, n.vision);
        print_tower_text("text", &cfg->text, 0, n.text);
        printf("projection dim %d\n", cfg->projection_dim);
        printf("logit_scale %.6g (exp %.6g)\n", medvlm_model_logit_scale(m), scale);
        printf("parameters total %zu (vision %zu, text %zu, logit_scale %zu)\n",
               n.text + n.vision + n.shared, n.vision, n.text, n.shared);
        printf("weight dtypes");
        for (int d = 0; d < MEDVLM_DTYPE_COUNT; d++)
            if (n.dtypes & (1u << d)) printf(" %s", medvlm_dtype_name((enum medvlm_dtype)d));
        printf("\npreprocess shortest edge %d, crop %dx%d (%s), resample %s\n", pp->shortest_edge,
               pp->crop_height, pp->crop_width, pp->do_center_crop ? "on" : "off",
               pp->resample == MEDVLM_RESAMPLE_BICUBIC ? "bicubic" : "bilinear");
        printf("files");
        for (size_t i = 0; i < sizeof known_files / sizeof known_files[0]; i++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dir, known_files[i]);
            struct stat sb;
            if (stat(path, &sb) == 0) printf(" %s", known_files[i]);
        }
        printf("\nprecision auto: %s (%s)\n", auto_name, mv_precision_auto_reason());
    }
    medvlm_model_free(m);
    return CLI_OK;
}

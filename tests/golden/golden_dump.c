/*
 * golden_dump GOLDEN_DIR OUT_DIR [STAGE...] - write every stage medvlm computes so far (or
 * the ones named) into OUT_DIR with the names of GOLDEN_DIR/expected.
 */
#include "golden.h"

#include "../../src/io/io.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

struct stage {
    const char *name;
    golden_stage_fn fn;
};

static const struct stage stages[] = {
    {"decode", golden_stage_decode},         {"pixels", golden_stage_pixels},
    {"tokens", golden_stage_tokens},         {"text", golden_stage_text},
    {"vision", golden_stage_vision},         {"clip", golden_stage_clip},
    {"zeroshot", golden_stage_zeroshot},     {"adapters", golden_stage_adapters},
    {"metrics", golden_stage_metrics},       {"peft_grads", golden_stage_peft_grads},
    {"peft_train", golden_stage_peft_train},
};

char *golden_path(const struct golden_ctx *g, const char *rel)
{
    return mv_path_join(g->golden_dir, rel);
}

enum medvlm_status golden_model(struct golden_ctx *g, struct medvlm_model **out)
{
    if (!g->model) {
        enum medvlm_status st = medvlm_model_load(g->model_dir, MEDVLM_LOAD_ALL, &g->model);
        if (st) return st;
    }
    *out = g->model;
    return MEDVLM_OK;
}

int golden_image_count(const struct golden_ctx *g)
{
    return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(g->manifest, "images"));
}

char *golden_image_path(const struct golden_ctx *g, int i)
{
    const cJSON *img =
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(g->manifest, "images"), i);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(img, "file");
    if (!cJSON_IsString(f)) return NULL;
    return mv_asprintf("%s/images/%s", g->golden_dir, f->valuestring);
}

static cJSON *prompts_json;

int golden_prompt_count(const struct golden_ctx *g)
{
    (void)g;
    return cJSON_GetArraySize(prompts_json);
}

const char *golden_prompt(const struct golden_ctx *g, int i)
{
    (void)g;
    const cJSON *p = cJSON_GetArrayItem(prompts_json, i);
    return cJSON_IsString(p) ? p->valuestring : NULL;
}

enum medvlm_status golden_save(const struct golden_ctx *g, struct medvlm_st_writer *w,
                               const char *file)
{
    char *path = mv_path_join(g->out_dir, file);
    if (!path) return MEDVLM_ERR_NOMEM;
    enum medvlm_status st = medvlm_st_writer_save(w, path);
    mv_free(path);
    return st;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: golden_dump GOLDEN_DIR OUT_DIR [STAGE...]\nstages:");
        for (size_t i = 0; i < MV_ARRAY_LEN(stages); i++) fprintf(stderr, " %s", stages[i].name);
        fprintf(stderr, "\n");
        return 2;
    }
    struct golden_ctx g = {.golden_dir = argv[1], .out_dir = argv[2]};
    char *man = golden_path(&g, "manifest.json"), *pj = golden_path(&g, "prompts.json");
    g.model_dir = golden_path(&g, "model");
    if (!mv_is_dir(g.golden_dir) || !mv_is_file(man)) {
        fprintf(stderr,
                "golden_dump: %s is not a golden folder (no manifest.json); set MEDVLM_GOLDEN "
                "to e.g. ../shared/golden/tiny-a\n",
                g.golden_dir);
        return 1;
    }
    if (mv_json_load(man, &g.manifest) || (mv_is_file(pj) && mv_json_load(pj, &prompts_json))) {
        fprintf(stderr, "golden_dump: %s\n", medvlm_last_error());
        return 1;
    }
    if (mkdir(g.out_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "golden_dump: cannot create %s: %s\n", g.out_dir, strerror(errno));
        return 1;
    }
    int failed = 0, ran = 0;
    for (size_t i = 0; i < MV_ARRAY_LEN(stages); i++) {
        if (!stages[i].fn) continue;
        int wanted = argc == 3;
        for (int a = 3; a < argc; a++) wanted |= strcmp(argv[a], stages[i].name) == 0;
        if (!wanted) continue;
        ran++;
        double t0 = mv_now();
        enum medvlm_status st = stages[i].fn(&g);
        if (st) {
            fprintf(stderr, "golden_dump: stage %s failed: %s\n", stages[i].name,
                    medvlm_last_error());
            failed++;
        } else {
            fprintf(stderr, "golden_dump: stage %s written (%.3f s)\n", stages[i].name,
                    mv_now() - t0);
        }
    }
    for (int a = 3; a < argc; a++) {
        int known = 0;
        for (size_t i = 0; i < MV_ARRAY_LEN(stages); i++)
            known |= stages[i].fn && strcmp(argv[a], stages[i].name) == 0;
        if (!known) {
            fprintf(stderr, "golden_dump: unknown stage '%s'\n", argv[a]);
            failed++;
        }
    }
    medvlm_model_free(g.model);
    cJSON_Delete(g.manifest);
    cJSON_Delete(prompts_json);
    mv_free(man);
    mv_free(pj);
    mv_free(g.model_dir);
    fprintf(stderr, "golden_dump: %d stage(s) run, %d failed\n", ran, failed);
    return failed ? 1 : 0;
}

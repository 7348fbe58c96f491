/*
 * golden.h - the golden harness: golden_dump reads a golden folder (manifest.json, model/,
 * images/, inputs/) and writes every stage medvlm can compute, under the file and tensor names
 * of expected/; golden_compare checks them with the manifest's tolerances.
 *
 * A stage is one function writing one OUT/<stage>.safetensors. Add a stage: write
 * tests/golden/stage_<name>.c, declare it below, add it to the table in golden_dump.c and
 * to GOLDEN_STAGES in tests/CMakeLists.txt. Read every size from the files: other golden
 * sets with other sizes are run against the same program.
 */
#ifndef MEDVLM_GOLDEN_H
#define MEDVLM_GOLDEN_H

#include "medvlm.h"

#include <cjson/cJSON.h>

struct golden_ctx {
    const char *golden_dir; /* the set: manifest.json, model/, images/, inputs/ */
    const char *out_dir;    /* where <stage>.safetensors files go */
    cJSON *manifest;
    char *model_dir;            /* golden_dir/model */
    struct medvlm_model *model; /* loaded on first use by golden_model() */
};

/* Path inside the golden folder (caller frees with medvlm_free). */
char *golden_path(const struct golden_ctx *g, const char *rel);
/* The model of the set, loaded once (both towers). */
enum medvlm_status golden_model(struct golden_ctx *g, struct medvlm_model **out);
/* manifest "images": count and i-th file path (caller frees). */
int golden_image_count(const struct golden_ctx *g);
char *golden_image_path(const struct golden_ctx *g, int i);
/* prompts.json: array of strings (owned by the ctx's JSON; valid while ctx lives). */
int golden_prompt_count(const struct golden_ctx *g);
const char *golden_prompt(const struct golden_ctx *g, int i);
/* Save a writer as OUT/<file> (e.g. "tokens.safetensors"). */
enum medvlm_status golden_save(const struct golden_ctx *g, struct medvlm_st_writer *w,
                               const char *file);

typedef enum medvlm_status (*golden_stage_fn)(struct golden_ctx *g);

enum medvlm_status golden_stage_zeroshot(struct golden_ctx *g);
enum medvlm_status golden_stage_metrics(struct golden_ctx *g);
enum medvlm_status golden_stage_tokens(struct golden_ctx *g);
/* ---- encoders (stage_text.c, stage_clip.c) ---- */
enum medvlm_status golden_stage_text(struct golden_ctx *g);
enum medvlm_status golden_stage_vision(struct golden_ctx *g);
enum medvlm_status golden_stage_clip(struct golden_ctx *g);
/* expected/tokens.safetensors input_ids, attention_mask (P, T), caller frees (medvlm_free). */
enum medvlm_status golden_text_inputs(const struct golden_ctx *g, int64_t **ids, int64_t **mask,
                                      int *P, int *T);
/* expected/pixels.safetensors crop.0..N-1 stacked (N, 3, S, S), caller frees. */
enum medvlm_status golden_pixel_inputs(const struct golden_ctx *g, float **pixels, int *N, int *S);
/* stages, in the README's order */
enum medvlm_status golden_stage_decode(struct golden_ctx *g);
enum medvlm_status golden_stage_pixels(struct golden_ctx *g);
enum medvlm_status golden_stage_adapters(struct golden_ctx *g);
/* fine-tuning (stage_peft.c) */
enum medvlm_status golden_stage_peft_grads(struct golden_ctx *g);
enum medvlm_status golden_stage_peft_train(struct golden_ctx *g);

#endif

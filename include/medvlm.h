/*
 * medvlm.h - adapt CLIP-family medical vision-language models in C.
 *
 * This is the only public header of libmedvlm. It reads top to bottom as a tour:
 * errors, files, the model, text, images, embeddings, zero-shot, adapters, metrics.
 *
 * A complete zero-shot program:
 *
 *     #include <medvlm.h>
 *     #include <stdio.h>
 *
 *     int main(void)
 *     {
 *         struct medvlm_model *model = NULL;
 *         if (medvlm_model_load("plip", MEDVLM_LOAD_ALL, &model) != MEDVLM_OK) {
 *             fprintf(stderr, "medvlm: %s\n", medvlm_last_error());
 *             return 1;
 *         }
 *         const struct medvlm_config *cfg = medvlm_model_config(model);
 *         printf("vision width %d, %d layers\n", cfg->vision.hidden_size,
 *                cfg->vision.num_hidden_layers);
 *         medvlm_model_free(model);
 *         return 0;
 *     }
 *
 * Build it with `cc prog.c $(pkg-config --cflags --libs medvlm)`.
 *
 * Conventions (the same everywhere):
 * - Fallible functions return `enum medvlm_status`; MEDVLM_OK is 0. On failure the human
 *   message (what, where, expected vs got, a hint) is in medvlm_last_error(), per thread.
 * - Objects come back through out-parameters and are released by the matching *_free,
 *   which accepts NULL.
 * - Ownership: a pointer returned by a getter is owned by the object it came from and lives
 *   as long as that object; everything a caller passes in stays the caller's.
 * - The library never prints to stdout and never exits.
 */
#ifndef MEDVLM_H
#define MEDVLM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MEDVLM_VERSION_MAJOR 0
#define MEDVLM_VERSION_MINOR 1
#define MEDVLM_VERSION_PATCH 0
#define MEDVLM_VERSION_STRING "0.1.0"

/* ---------------------------------------------------------------- errors and logging */

enum medvlm_status {
    MEDVLM_OK = 0,
    MEDVLM_ERR_ARG,         /* a caller's argument is wrong (NULL, out of range, bad flag)  */
    MEDVLM_ERR_IO,          /* a file could not be opened, read, mapped or written          */
    MEDVLM_ERR_FORMAT,      /* a file's content is malformed (JSON, safetensors, image...)  */
    MEDVLM_ERR_SHAPE,       /* a tensor has the wrong shape or dtype for its role           */
    MEDVLM_ERR_MISSING,     /* something required is absent (file, tensor, key, class)      */
    MEDVLM_ERR_NOMEM,       /* an allocation failed                                         */
    MEDVLM_ERR_OVERFLOW,    /* a size computed from input does not fit                      */
    MEDVLM_ERR_UNSUPPORTED, /* well-formed but not handled (dtype, colour mode, ...)        */
    MEDVLM_ERR_LIMIT,       /* input exceeds a configured safety limit                      */
    MEDVLM_ERR_INTERNAL     /* a bug in medvlm; please report it                            */
};

/* The message of the last failure on this thread ("" if none). Valid until the next
 * medvlm call on this thread. */
const char *medvlm_last_error(void);
/* A short constant name for a status ("io error", ...). */
const char *medvlm_status_name(enum medvlm_status st);

enum medvlm_log_level { MEDVLM_LOG_DEBUG, MEDVLM_LOG_INFO, MEDVLM_LOG_WARN, MEDVLM_LOG_ERROR };
typedef void (*medvlm_log_fn)(enum medvlm_log_level level, const char *msg, void *user);
/* Route the library's diagnostics (warnings such as skipped rows) to fn; NULL silences them.
 * The default drops DEBUG and writes the rest to stderr. Not thread-safe to change while
 * other threads call into the library. */
void medvlm_set_log(medvlm_log_fn fn, void *user, enum medvlm_log_level min_level);

/* ---------------------------------------------------------------- safetensors files */

enum medvlm_dtype {
    MEDVLM_DTYPE_F32,
    MEDVLM_DTYPE_F16,
    MEDVLM_DTYPE_BF16,
    MEDVLM_DTYPE_F64,
    MEDVLM_DTYPE_I64,
    MEDVLM_DTYPE_I32,
    MEDVLM_DTYPE_I16,
    MEDVLM_DTYPE_I8,
    MEDVLM_DTYPE_U8,
    MEDVLM_DTYPE_BOOL,
    MEDVLM_DTYPE_COUNT
};
const char *medvlm_dtype_name(enum medvlm_dtype dt); /* "F32", ... */
size_t medvlm_dtype_size(enum medvlm_dtype dt);

#define MEDVLM_MAX_DIMS 8

/* One tensor of an open safetensors file. `data` points into the read-only mapping. */
struct medvlm_tensor_info {
    const char *name;
    enum medvlm_dtype dtype;
    int ndim;
    int64_t shape[MEDVLM_MAX_DIMS];
    size_t nbytes;
    const void *data;
};

struct medvlm_st; /* an open (mmapped, validated) safetensors file */

/* Map and validate a whole file: header length, JSON, dtypes, every data_offsets pair
 * inside the data region and equal to dtype x shape, no overlap, no overflow. */
enum medvlm_status medvlm_st_open(const char *path, struct medvlm_st **out);
void medvlm_st_free(struct medvlm_st *st);
const char *medvlm_st_path(const struct medvlm_st *st);
int medvlm_st_count(const struct medvlm_st *st);
const struct medvlm_tensor_info *medvlm_st_at(const struct medvlm_st *st, int i);
/* NULL when absent (no error set). */
const struct medvlm_tensor_info *medvlm_st_find(const struct medvlm_st *st, const char *name);
/* The "__metadata__" string value for key, or NULL. */
const char *medvlm_st_metadata(const struct medvlm_st *st, const char *key);
/* Float32 view of a tensor: zero-copy for F32; F16/BF16/F64 converted into a new buffer
 * that *owned receives (free it with medvlm_free); NULL *owned means zero-copy. */
enum medvlm_status medvlm_st_get_f32(const struct medvlm_st *st, const char *name,
                                     const float **data, float **owned,
                                     const struct medvlm_tensor_info **info);

struct medvlm_st_writer; /* collects tensors and metadata, then saves atomically */
enum medvlm_status medvlm_st_writer_init(struct medvlm_st_writer **out);
void medvlm_st_writer_free(struct medvlm_st_writer *w);
/* Copies `data` (dtype x shape bytes). Names must be unique. */
enum medvlm_status medvlm_st_writer_add(struct medvlm_st_writer *w, const char *name,
                                        enum medvlm_dtype dtype, int ndim, const int64_t *shape,
                                        const void *data);
enum medvlm_status medvlm_st_writer_meta(struct medvlm_st_writer *w, const char *key,
                                         const char *value);
/* Writes PATH.tmp.<pid>, fsyncs, renames to PATH: a reader never sees a half file. */
enum medvlm_status medvlm_st_writer_save(struct medvlm_st_writer *w, const char *path);

void medvlm_free(void *p); /* frees buffers the library handed to the caller */

/* ---------------------------------------------------------------- the model */

enum medvlm_act { MEDVLM_ACT_QUICK_GELU, MEDVLM_ACT_GELU };

/* One transformer tower, as transformers' CLIPTextConfig / CLIPVisionConfig. */
struct medvlm_tower_config {
    int hidden_size;
    int intermediate_size;
    int num_hidden_layers;
    int num_attention_heads;
    enum medvlm_act hidden_act;
    float layer_norm_eps;
    /* text only */
    int vocab_size;
    int max_position_embeddings;
    int eos_token_id;
    int bos_token_id;
    int pad_token_id;
    /* vision only */
    int num_channels;
    int image_size;
    int patch_size;
};

struct medvlm_config {
    int projection_dim;
    float logit_scale_init_value;
    struct medvlm_tower_config text;
    struct medvlm_tower_config vision;
};

/* transformers' defaults (the openai/clip-vit-base-patch32 = vinid/plip shapes). */
void medvlm_config_default(struct medvlm_config *cfg);
/* Parse a config.json (old flat / *_config_dict style or new nested style). */
enum medvlm_status medvlm_config_load(const char *path, struct medvlm_config *cfg);

enum medvlm_resample { MEDVLM_RESAMPLE_BICUBIC = 3, MEDVLM_RESAMPLE_BILINEAR = 2 };

/* preprocessor_config.json (CLIPImageProcessor). */
struct medvlm_preproc_config {
    int do_resize;
    int shortest_edge; /* "size": 224 or {"shortest_edge": 224} */
    int do_center_crop;
    int crop_height, crop_width;
    int do_rescale;
    float rescale_factor;
    int do_normalize;
    float mean[3], std[3];
    enum medvlm_resample resample;
};
void medvlm_preproc_default(struct medvlm_preproc_config *pp);
enum medvlm_status medvlm_preproc_load(const char *path, struct medvlm_preproc_config *pp);

enum medvlm_load_flags {
    MEDVLM_LOAD_TEXT = 1,   /* text tower + text_projection */
    MEDVLM_LOAD_VISION = 2, /* vision tower + visual_projection */
    MEDVLM_LOAD_ALL = 3
};

struct medvlm_model;

/* Load a Hugging Face CLIP folder: config.json, model.safetensors, preprocessor_config.json
 * (optional: defaults). Weights are mapped, not copied (F32); the towers not asked for in
 * `flags` are neither converted nor touched. Every tensor is checked against the config. */
enum medvlm_status medvlm_model_load(const char *dir, unsigned flags, struct medvlm_model **out);
/* A model with random weights (normal, std 0.02; LayerNorm 1/0) of the given config. */
enum medvlm_status medvlm_model_init_random(const struct medvlm_config *cfg, uint64_t seed,
                                            struct medvlm_model **out);
/* Write config.json, preprocessor_config.json and model.safetensors into dir (created). */
enum medvlm_status medvlm_model_save(const struct medvlm_model *m, const char *dir);
void medvlm_model_free(struct medvlm_model *m);
const struct medvlm_config *medvlm_model_config(const struct medvlm_model *m);
const struct medvlm_preproc_config *medvlm_model_preproc(const struct medvlm_model *m);
float medvlm_model_logit_scale(const struct medvlm_model *m); /* raw; use expf() */
/* "" for a model made in memory. */
const char *medvlm_model_dir(const struct medvlm_model *m);

enum medvlm_tower { MEDVLM_TOWER_TEXT = 1, MEDVLM_TOWER_VISION = 2, MEDVLM_TOWER_SHARED = 4 };

/* The parameter table: one row per Hugging Face tensor name. */
struct medvlm_param_info {
    const char *name; /* "vision_model.encoder.layers.0.self_attn.q_proj.weight" */
    enum medvlm_tower tower;
    int ndim;
    int64_t shape[4];
    size_t numel;
    const float *data; /* NULL if that tower was not loaded */
    enum medvlm_dtype file_dtype;
};
int medvlm_model_param_count(const struct medvlm_model *m);
const struct medvlm_param_info *medvlm_model_param(const struct medvlm_model *m, int i);
const struct medvlm_param_info *medvlm_model_param_find(const struct medvlm_model *m,
                                                        const char *name);

/* ---------------------------------------------------------------- tokenizer */

/* ---------------------------------------------------------------- images */

/* ---------------------------------------------------------------- encoders */

/* The forward pass of both towers. An encoder holds the activations of one batch (sized once
 * for max_batch, nothing is allocated while encoding); the model stays immutable, so several
 * encoders (one per thread) may share one model. Results are bit-identical for any thread
 * count; an input encoded in another batch size may differ in the last float bits (the BLAS
 * rounds a GEMM's last rows differently; ~1e-7 on the unit-norm embeddings).
 *
 *     struct medvlm_encoder *enc;
 *     medvlm_encoder_init(model, 32, &enc);
 *     medvlm_encode_images(enc, pixels, n, image_embeds);  // (n, 3, S, S) -> (n, D)
 *     medvlm_encode_text(enc, ids, mask, k, T, text_embeds); // (k, T) -> (k, D)
 *     medvlm_clip_logits(model, image_embeds, n, text_embeds, k, logits, NULL);
 *     medvlm_encoder_free(enc);
 */
struct medvlm_encoder;

/* max_batch >= 1: the largest batch one forward pass holds; larger calls are split into
 * passes of max_batch. Only the towers the model has loaded get buffers. */
enum medvlm_status medvlm_encoder_init(const struct medvlm_model *model, int max_batch,
                                       struct medvlm_encoder **out);
void medvlm_encoder_free(struct medvlm_encoder *enc);

/* Optional outputs of one encode call; every pointer may be NULL and is the caller's. With
 * B inputs, N tokens (vision: 1 + (S/P)^2; text: T), C the tower width, L its layers:
 * embeds (B, D) l2-normalised; embeds_unnorm (B, D) = pooled @ projection^T;
 * pooled (B, C) = Hugging Face's pooler_output (vision: post_layernorm of the class token;
 * text: final_layer_norm at the EOS token); last_hidden (B, N, C) (vision: no post LN; text:
 * after final_layer_norm); hidden_states (L + 1, B, N, C): [0] embeddings (vision: after
 * pre_layrnorm), [l] the output of layer l. */
struct medvlm_encode_out {
    float *embeds;
    float *embeds_unnorm;
    float *pooled;
    float *last_hidden;
    float *hidden_states;
};

/* pixels (B, 3, S, S): CHW, normalised (CLIPImageProcessor output), S = vision image_size.
 * embeds (B, D) receives the l2-normalised image embeddings. */
enum medvlm_status medvlm_encode_images(struct medvlm_encoder *enc, const float *pixels, int B,
                                        float *embeds);
enum medvlm_status medvlm_encode_images_ex(struct medvlm_encoder *enc, const float *pixels,
                                           int B, const struct medvlm_encode_out *out);

/* ids, mask (B, T): token ids and attention mask (0 = padding; NULL = all ones), any
 * 1 <= T <= max_position_embeddings, so padded-to-longest batches work. Pooling is at the EOS
 * token: argmax(ids) when the config's eos_token_id is 2 (legacy configs such as vinid/plip),
 * else the first position holding eos_token_id. Padding after EOS never changes embeds. */
enum medvlm_status medvlm_encode_text(struct medvlm_encoder *enc, const int64_t *ids,
                                      const int64_t *mask, int B, int T, float *embeds);
enum medvlm_status medvlm_encode_text_ex(struct medvlm_encoder *enc, const int64_t *ids,
                                         const int64_t *mask, int B, int T,
                                         const struct medvlm_encode_out *out);

/* logits_per_image (NI, NT) = exp(logit_scale) * image_embeds (NI, D) . text_embeds (NT, D)^T;
 * logits_per_text (NT, NI) its transpose; either output may be NULL. */
enum medvlm_status medvlm_clip_logits(const struct medvlm_model *model, const float *image_embeds,
                                      int NI, const float *text_embeds, int NT,
                                      float *logits_per_image, float *logits_per_text);
/* CLIP's contrastive loss of a square logits_per_image (B, B), image i paired with text i:
 * (CE(logits_per_text, arange B) + CE(logits_per_image, arange B)) / 2, mean-reduced. */
enum medvlm_status medvlm_clip_loss(const float *logits_per_image, int B, float *loss);

/* Threads for every kernel and for OpenBLAS (one OpenMP pool). Default: OMP_NUM_THREADS or
 * the number of cores. Applies to the calling thread's later calls. */
enum medvlm_status medvlm_set_threads(int n);
int medvlm_get_threads(void);

/* Floating-point operations of one forward pass (multiply-add = 2), for reports: a vision
 * pass over B images, a text pass over B sequences of lens[b] tokens each. */
double medvlm_vision_flops(const struct medvlm_config *cfg, int B);
double medvlm_text_flops(const struct medvlm_config *cfg, int B, const int *lens);

/* ---------------------------------------------------------------- datasets */

/* ---------------------------------------------------------------- zero-shot */

/* ---------------------------------------------------------------- adapters */

/* ---------------------------------------------------------------- metrics */

#ifdef __cplusplus
}
#endif
#endif /* MEDVLM_H */

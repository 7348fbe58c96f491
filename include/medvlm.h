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

/* ---------------------------------------------------------------- datasets */

/* ---------------------------------------------------------------- zero-shot */

/* ---------------------------------------------------------------- adapters */

/* Few-shot black-box adapters: small models trained in seconds on frozen, l2-normalised image
 * features X (N, D) with integer labels Y (N) in [0, K), starting from the zero-shot class
 * prototypes zs (K, D) and the model's raw logit_scale (the adapters use s = exp(it)).
 * Every method maps features to K logits:
 *
 *   zeroshot     s X normalise_rows(zs)^T                               (nothing trained)
 *   lp           s X normalise_rows(W)^T, W random (normal, std sqrt(2/D))  Linear Probe
 *   zslp         the same with W initialised to zs                      ZS-LP
 *   clipadapter  s normalise(f) normalise_rows(zs)^T, f = (1-a) X + a relu(relu(X w1^T) w2^T)
 *                (w1 (H, D), w2 (D, H), H = D/4 unless set; a = alpha, default 0.5)
 *   clap         zslp + mean_c lambda_c ||W_c - zs_c||^2, lambda_c = mean zero-shot
 *                probability of class c over its training samples (CLAP, Silva-Rodriguez et
 *                al. CVPR 2024); clap_alm = 1 updates lambda by the augmented-Lagrangian
 *                outer step after every epoch
 *   tipadapter   s X normalise_rows(zs)^T + alpha exp(-beta (1 - X keys^T)) onehot(Y),
 *                keys = the training features (training-free; alpha 1, beta 1 by default)
 *   tipadapter-f the same with the keys fine-tuned
 *   taskres      s X normalise_rows(zs + alpha R)^T, R trained from 0 (alpha 0.5)
 *
 * Training (all trainable methods): `epochs` epochs of max(N / batch_size, 1) mini-batch
 * steps of mean cross-entropy (the PEFT-MedVLMs notebook's train_adapter); the rows are
 * shuffled each epoch from `seed` when batch_size < N, and a full batch is used in order
 * otherwise. Defaults: 100 epochs, batch 32, SGD lr 1e-3 momentum 0.9 (PyTorch rules). */

enum medvlm_adapter_method {
    MEDVLM_ADAPTER_ZEROSHOT,
    MEDVLM_ADAPTER_LP,
    MEDVLM_ADAPTER_ZSLP,
    MEDVLM_ADAPTER_CLIPADAPTER,
    MEDVLM_ADAPTER_CLAP,
    MEDVLM_ADAPTER_TIPADAPTER,
    MEDVLM_ADAPTER_TIPADAPTER_F,
    MEDVLM_ADAPTER_TASKRES,
    MEDVLM_ADAPTER_COUNT
};

enum medvlm_optimizer { MEDVLM_OPTIMIZER_SGD, MEDVLM_OPTIMIZER_ADAM, MEDVLM_OPTIMIZER_ADAMW };
enum medvlm_schedule { MEDVLM_SCHEDULE_CONSTANT, MEDVLM_SCHEDULE_COSINE };

struct medvlm_adapter_options {
    enum medvlm_adapter_method method;
    enum medvlm_optimizer optimizer;
    enum medvlm_schedule schedule; /* cosine: per step, down to 0 at the last step */
    int epochs;                    /* 100 */
    int batch_size;                /* 32 */
    float lr;                      /* 1e-3 */
    float momentum;                /* SGD, 0.9 */
    float weight_decay;            /* 0 (AdamW: decoupled) */
    float adam_beta1, adam_beta2, adam_eps; /* 0.9, 0.999, 1e-8 */
    uint64_t seed;                 /* LP / CLIP-Adapter init and the per-epoch shuffle */
    float alpha;  /* clipadapter residual ratio 0.5; tipadapter cache weight 1; taskres 0.5 */
    float beta;   /* tipadapter sharpness, 1 */
    int hidden;   /* clipadapter bottleneck width; 0 = D / 4 */
    int clap_alm;     /* clap: 1 = augmented-Lagrangian multiplier updates */
    float clap_rho;   /* clap_alm penalty weight rho, 1 */
    /* Optional initial values (copied; NULL = the method's own init): lp (K, D);
     * clipadapter w1 (H, D) and w2 (D, H) with H = hidden. */
    const float *init_prototypes;
    const float *init_w1;
    const float *init_w2;
};

/* The defaults above for `method`. */
void medvlm_adapter_options_default(struct medvlm_adapter_options *o,
                                    enum medvlm_adapter_method method);
/* "zeroshot", "lp", "zslp", "clipadapter", "clap", "tipadapter", "tipadapter-f", "taskres". */
const char *medvlm_adapter_method_name(enum medvlm_adapter_method m);
/* Unknown name -> MEDVLM_ERR_ARG with the list of valid names. */
enum medvlm_status medvlm_adapter_method_from_name(const char *name,
                                                   enum medvlm_adapter_method *out);
/* Number of optimizer steps training takes (the length of losses_out); 0 for methods
 * without training. */
long medvlm_adapter_steps(const struct medvlm_adapter_options *o, int n);

struct medvlm_adapter; /* a trained (or loaded) adapter: parameters + what prediction needs */

/* Train an adapter. X (n, d) and zs (k, d) are copied where kept; labels must be in [0, k).
 * losses_out (optional, medvlm_adapter_steps() floats) receives the loss before each step. */
enum medvlm_status medvlm_adapter_train(const struct medvlm_adapter_options *o, const float *X,
                                        const int64_t *Y, int n, int d,
                                        const float *zs_prototypes, int k, float logit_scale,
                                        struct medvlm_adapter **out, float *losses_out);
/* logits (n, k) for features X (n, d). */
enum medvlm_status medvlm_adapter_logits(const struct medvlm_adapter *a, const float *X, int n,
                                         float *logits);
void medvlm_adapter_free(struct medvlm_adapter *a);

enum medvlm_adapter_method medvlm_adapter_method_of(const struct medvlm_adapter *a);
const struct medvlm_adapter_options *medvlm_adapter_options_of(const struct medvlm_adapter *a);
int medvlm_adapter_dim(const struct medvlm_adapter *a);     /* D */
int medvlm_adapter_classes(const struct medvlm_adapter *a); /* K */
/* A trained tensor by name ("prototypes", "mlp.0.weight", "mlp.2.weight", "residual",
 * "cache_keys"); NULL when the method has none of that name. *numel receives its size. */
const float *medvlm_adapter_param(const struct medvlm_adapter *a, const char *name,
                                  size_t *numel);
/* CLAP's class multipliers (K) as they ended training; NULL for other methods. */
const float *medvlm_adapter_lambdas(const struct medvlm_adapter *a);

/* Save as safetensors (atomic): the parameters, `prototypes_zs`, `logit_scale`, and for
 * Tip-Adapter `cache_labels`; metadata medvlm = "adapter/1", method, hparams (JSON), classes
 * (JSON array; class_names may be NULL -> "0", "1", ...), shots, seed. */
enum medvlm_status medvlm_adapter_save(const struct medvlm_adapter *a, const char *path,
                                       const char *const *class_names, int shots);
/* Load what medvlm_adapter_save wrote; everything prediction needs is in the file. */
enum medvlm_status medvlm_adapter_load(const char *path, struct medvlm_adapter **out);
/* The class names and shots saved with a loaded adapter (NULL / 0 for a trained one). */
const char *medvlm_adapter_class_name(const struct medvlm_adapter *a, int c);
int medvlm_adapter_shots(const struct medvlm_adapter *a);


/* Feature files (`medvlm features`): safetensors with `features` (N, D) F32 l2-normalised,
 * `labels` (N) I64, metadata medvlm = "features/1", classes = JSON array of class names,
 * image_names = JSON array of N names. Prototype files (`medvlm zeroshot
 * --save-prototypes`): `prototypes` (K, D) F32 normalised, `logit_scale` [] F32 raw,
 * metadata medvlm = "prototypes/1", classes = JSON array of K names. Loading checks every
 * shape, dtype and label and names the file in its message. */
struct medvlm_features {
    int n, d, n_classes;
    float *features;    /* (n, d) */
    int64_t *labels;    /* (n), each in [0, n_classes) */
    char **classes;     /* (n_classes) */
    char **image_names; /* (n), or NULL when the file has none */
};
enum medvlm_status medvlm_features_load(const char *path, struct medvlm_features **out);
/* image_names may be NULL. */
enum medvlm_status medvlm_features_save(const char *path, const float *X, const int64_t *Y,
                                        int n, int d, const char *const *classes, int k,
                                        const char *const *image_names);
void medvlm_features_free(struct medvlm_features *f);

struct medvlm_prototypes {
    int k, d;
    float *prototypes; /* (k, d) */
    float logit_scale; /* raw */
    char **classes;    /* (k) */
};
enum medvlm_status medvlm_prototypes_load(const char *path, struct medvlm_prototypes **out);
enum medvlm_status medvlm_prototypes_save(const char *path, const float *P, int k, int d,
                                          float logit_scale, const char *const *classes);
void medvlm_prototypes_free(struct medvlm_prototypes *p);

/* ---------------------------------------------------------------- metrics */

#ifdef __cplusplus
}
#endif
#endif /* MEDVLM_H */

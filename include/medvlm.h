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

/* A label table: rows x columns of strings as read from an .xlsx sheet or a .csv file (the
 * first row is the header). An .xlsx number is its text as stored in the file ("1",
 * "0.25"), a boolean "TRUE" / "FALSE", an error cell its text ("#N/A"); rows without any
 * value (blank CSV lines, empty sheet rows) are skipped. */
struct medvlm_table {
    char *path;     /* as given                                                  */
    int n_rows;     /* data rows, header excluded                                */
    int n_cols;     /* columns (the header's)                                    */
    char **header;  /* (n_cols) column names                                     */
    char **cells;   /* (n_rows * n_cols) row-major; "" for an empty cell          */
    int *line;      /* (n_rows) CSV line / sheet row number of each row (1-based) */
    const char *line_word; /* "line" (CSV) or "row" (xlsx), for messages           */
};
/* Read .xlsx (by libzip + expat: shared and inline strings, numbers, booleans; `sheet` names
 * the sheet, NULL = the first in the workbook) or .csv (RFC 4180 quoting, UTF-8 BOM, CRLF;
 * a row with a different number of fields than the header is an error naming file and line),
 * chosen by the file's first bytes (a zip is xlsx). */
enum medvlm_status medvlm_table_load(const char *path, const char *sheet,
                                     struct medvlm_table **out);
void medvlm_table_free(struct medvlm_table *t);
/* Index of the column named `name` (ASCII case-insensitive), or -1. */
int medvlm_table_column(const struct medvlm_table *t, const char *name);

/* Where a dataset comes from. Unset (NULL / 0) fields take the defaults in brackets. */
struct medvlm_dataset_options {
    const char *images_dir;  /* image root; listed names are relative to it [names as paths] */
    const char *labels_path; /* .xlsx / .csv label table [none: images_dir holds one
                                sub-folder per class, files sorted by name]              */
    const char *sheet;       /* .xlsx sheet [the first]                                    */
    const char *classes;     /* "NC,G3,G4,G5": class names in label order [one-hot: required;
                                label column: sorted distinct names, or 0..max for indices;
                                folders: sorted sub-folder names]                        */
    const char *const *class_names; /* the same as an array (used when n_class_names > 0) */
    int n_class_names;
    const char *image_column; /* [image_name, Path, image, filename, path: the first found] */
    const char *label_column; /* a single column of class names or indices [one-hot columns
                                named by the classes when all exist, else label, class]   */
    int skip_missing;        /* listed images that do not exist are dropped (counted) rather
                                than reported as an error                                 */
    int check_files;         /* check that every listed image exists [no]; skip_missing
                                implies it                                                */
};

/* A labelled image list. Rows keep the table's order (skipped rows removed). */
struct medvlm_dataset {
    int n;             /* images                                                    */
    int n_classes;     /* K                                                         */
    char **paths;      /* (n) images_dir/name (or name without images_dir)          */
    char **names;      /* (n) as listed in the table / folder ("G3/x.jpg")          */
    int64_t *labels;   /* (n) in 0..K-1                                             */
    char **classes;    /* (K) class names in label order                            */
    int skipped_rows;  /* one-hot rows whose values do not sum to 1 (dropped)        */
    int missing;       /* images dropped because skip_missing found them absent      */
};
/* Load a dataset. Errors name the file and line: a missing image column, unknown class
 * names, duplicate image names, missing images (all of them, by name), bad cells. */
enum medvlm_status medvlm_dataset_load(const struct medvlm_dataset_options *opt,
                                       struct medvlm_dataset **out);
void medvlm_dataset_free(struct medvlm_dataset *d);
/* The rows idx[0..n-1] of d, in that order, as a new dataset (classes copied). */
enum medvlm_status medvlm_dataset_subset(const struct medvlm_dataset *d, const int *idx, int n,
                                         struct medvlm_dataset **out);
/* Number of images of each class: counts (n_classes). */
void medvlm_dataset_class_counts(const struct medvlm_dataset *d, int64_t *counts);

/* Few-shot subset exactly as the PEFT-MedVLMs tutorial draws it with Python's `random`:
 * the candidate rows are those with labels[i] >= 0 in table order (a negative label marks a
 * dropped row, e.g. a one-hot row not summing to 1); random.seed(seed); random.shuffle(rows);
 * then for each class 0..n_classes-1 the first `shots` rows of that class in shuffled order.
 * *out_idx (release with medvlm_free) receives the chosen indices into labels, class by
 * class; *out_n their number. A class with fewer than `shots` rows is an error naming the
 * class and its count unless allow_fewer (then all its rows are taken). shots >= 1. */
enum medvlm_status medvlm_fewshot_sample(const int64_t *labels, int n, int n_classes, int shots,
                                         int64_t seed, int allow_fewer, int **out_idx,
                                         int *out_n);

/* ---------------------------------------------------------------- prompts */

/* Class prompts for zero-shot classifiers, from a JSON file:
 *
 *     {"classes": ["NC", "G3"],
 *      "templates": ["a histopathology slide showing [CLS]", "histopathology image of [CLS]"],
 *      "descriptions": {"NC": ["benign glands"], "G3": ["atrophic dense glands"]}}
 *
 * Each class gets template.replace("[CLS]", description) (every occurrence) for every
 * description x template: descriptions outer, templates inner, so one description gives
 * the templates in file order (the tutorial's ensemble). Without "templates" each
 * description is a prompt of its own. A description may be one string or a list.
 * "classes" is optional (default: the order of "descriptions"); when given, every class
 * needs descriptions and every described class must be listed. Errors name the file, the
 * key and, for malformed JSON, the line. */
struct medvlm_prompts {
    int n_classes;    /* K                                                  */
    char **classes;   /* (K) class names                                    */
    int *n_prompts;   /* (K) prompts of class k                             */
    char ***prompts;  /* (K)(n_prompts[k]) the expanded prompt texts        */
};
enum medvlm_status medvlm_prompts_load(const char *path, struct medvlm_prompts **out);
/* The same from JSON text in memory; `what` names it in messages. */
enum medvlm_status medvlm_prompts_parse(const char *what, const char *json, size_t len,
                                        struct medvlm_prompts **out);
void medvlm_prompts_free(struct medvlm_prompts *p);

/* ---------------------------------------------------------------- zero-shot */

/* ---------------------------------------------------------------- adapters */

/* ---------------------------------------------------------------- metrics */

/* Classification metrics over refs (true labels) and preds, as the PEFT-MedVLMs tutorial's
 * `evaluate` and scikit-learn compute them.
 *
 * Two forms fill the same struct:
 * - medvlm_metrics_compute: the full report over the K classes the caller names (labels
 *   0..K-1; a ref or pred outside that range is an error). A class with no sample in refs
 *   has recall NaN and is left out of the balanced-accuracy mean (as sklearn's
 *   balanced_accuracy_score does); n_absent counts them and a warning is logged.
 * - medvlm_metrics_compute_union: the tutorial's exact form. The classes are the sorted
 *   union of the values found in refs and preds (sklearn confusion_matrix's default), so a
 *   class absent from both is dropped; labels[k] is the value of row/column k.
 *
 * Units: balanced_accuracy (the tutorial's ACA = mean per-class recall) and accuracy are in
 * percent, unrounded (medvlm_round_half_even(x, 2) gives the tutorial's printed value);
 * per-class recall / precision / F1 and macro_f1 are fractions in [0, 1]; macro_f1 averages
 * F1 over the classes present in refs or preds (sklearn's default labels); a class never
 * predicted has precision 0. quadratic_kappa is Cohen's kappa with weights (i - j)^2 over
 * the struct's class indices (sklearn cohen_kappa_score(weights="quadratic", labels=...));
 * NaN when undefined (every sample in one class and every prediction in that class). */
struct medvlm_metrics {
    int n_classes;            /* K: rows of every per-class array                   */
    int n_samples;            /* M                                                  */
    int n_absent;             /* classes with no sample in refs                     */
    double balanced_accuracy; /* percent                                            */
    double accuracy;          /* percent                                            */
    double macro_f1;          /* [0, 1]                                             */
    double quadratic_kappa;   /* [-1, 1] or NaN                                     */
    int64_t *labels;          /* (K) label value of class k (k itself in the full form) */
    int64_t *support;         /* (K) samples of class k in refs (row sums)          */
    double *per_class_recall; /* (K) cm[k,k] / support[k]; NaN if support is 0      */
    double *per_class_precision; /* (K) cm[k,k] / column sum; 0 if never predicted   */
    double *per_class_f1;     /* (K)                                                */
    int64_t *confusion;       /* (K, K) row = true class, column = predicted class  */
};

/* preds[i] = argmax_j probs[i, j] (the first maximum on ties; a NaN wins, as numpy's argmax).
 * probs (n, c) row-major; preds (n). */
enum medvlm_status medvlm_argmax_rows(const float *probs, int n, int c, int64_t *preds);
/* Full report over classes 0..n_classes-1. refs, preds (n). *out is overwritten (its arrays
 * are allocated; release with medvlm_metrics_free). */
enum medvlm_status medvlm_metrics_compute(const int64_t *refs, const int64_t *preds, int n,
                                          int n_classes, struct medvlm_metrics *out);
/* The tutorial's form: classes = sorted union of the values in refs and preds. */
enum medvlm_status medvlm_metrics_compute_union(const int64_t *refs, const int64_t *preds,
                                                int n, struct medvlm_metrics *out);
/* Releases the arrays and zeroes the struct; accepts NULL and a zeroed struct. */
void medvlm_metrics_free(struct medvlm_metrics *m);
/* numpy.round(x, decimals): scale by 10^decimals, round half to even, scale back
 * (0 <= decimals <= 15). */
double medvlm_round_half_even(double x, int decimals);

/* Reports. class_names (K entries) may be NULL: the label values are printed instead.
 * Nothing is printed: the text comes back in *text (release with medvlm_free). */
enum medvlm_status medvlm_metrics_format_table(const struct medvlm_metrics *m,
                                               const char *const *class_names, char **text);
/* A JSON object: classes, n_samples, balanced_accuracy and accuracy (percent), macro_f1,
 * quadratic_kappa (null when NaN), per_class_recall (null for an absent class),
 * per_class_precision, per_class_f1, support, confusion_matrix (rows = true class, columns
 * = predicted, in `classes` order). Written atomically. */
enum medvlm_status medvlm_metrics_write_json(const char *path, const struct medvlm_metrics *m,
                                             const char *const *class_names);
/* CSV with header image,true_label,predicted_label,p_<class>...: one row per sample; labels
 * written as class names (values 0..k-1 index class_names), probabilities with %.9g; probs
 * (n, k) may be NULL (no probability columns); image_names may be NULL (row index). Fields
 * are quoted as RFC 4180 requires. Written atomically. */
enum medvlm_status medvlm_predictions_write_csv(const char *path, const char *const *image_names,
                                                const int64_t *refs, const int64_t *preds,
                                                const float *probs, int n,
                                                const char *const *class_names, int k);

#ifdef __cplusplus
}
#endif
#endif /* MEDVLM_H */

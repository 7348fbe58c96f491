/*
 * medvlm.h - adapt CLIP-family medical vision-language models in C.
 *
 * This is the only public header of libmedvlm. It reads top to bottom as a tour:
 * errors, files, the model, text, images, embeddings, zero-shot, adapters, metrics, tasks,
 * fine-tuning.
 *
 * A complete zero-shot program (examples/zeroshot.c; the tests build it, run it and check
 * that this copy is the same):
 *
 *     // zeroshot.c - classify the images of a features file with class prompts; print the metrics.
 *     // Build: cc zeroshot.c $(pkg-config --cflags --libs medvlm) -o zeroshot
 *     // Run:   ./zeroshot plip sicapv2_ensemble.json test_features.safetensors
 *     #include <medvlm.h>
 *     #include <stdio.h>
 *     #include <stdlib.h>
 *     #include <string.h>
 *
 *     int main(int argc, char **argv)
 *     {
 *         if (argc != 4) {
 *             fprintf(stderr, "usage: %s MODEL_DIR PROMPTS.json FEATURES.safetensors\n", argv[0]);
 *             return 2;
 *         }
 *         const char *model_dir = argv[1], *prompts = argv[2], *features = argv[3];
 *         struct medvlm_model *m = NULL;
 *         struct medvlm_tokenizer *tok = NULL;
 *         struct medvlm_prompts *pr = NULL;
 *         struct medvlm_features *f = NULL;
 *         struct medvlm_prototypes *p = NULL;
 *         struct medvlm_evaluation ev = {0};
 *         int *map = NULL, rc = 1;
 *         float *logits = NULL;
 *         if (medvlm_model_load(model_dir, MEDVLM_LOAD_TEXT, &m) ||
 *             medvlm_tokenizer_load(model_dir, &tok) || medvlm_prompts_load(prompts, &pr) ||
 *             medvlm_features_load(features, &f))
 *             goto fail;
 *         // features of another model do not compare with this model's text embeddings
 *         if (f->fingerprint && strcmp(f->fingerprint, medvlm_model_fingerprint(m)) != 0) {
 *             fprintf(stderr, "zeroshot: %s comes from another model than %s\n", features,
 *                     model_dir);
 *             goto done;
 *         }
 *         // each class of the features file gets the prompts of the class of the same name
 *         map = malloc(sizeof *map * (size_t)f->n_classes);
 *         logits = malloc(sizeof *logits * (size_t)f->n * (size_t)f->n_classes + 1);
 *         if (!map || !logits) {
 *             fprintf(stderr, "zeroshot: out of memory\n");
 *             goto done;
 *         }
 *         if (medvlm_prompts_class_map(pr, prompts, (const char *const *)f->classes, f->n_classes,
 *                                      features, map) ||
 *             medvlm_prototypes_from_prompts(m, model_dir, tok, pr, map, f->n_classes, &p) ||
 *             medvlm_zeroshot_logits(f->features, f->n, p->prototypes, p->k, p->d, p->logit_scale,
 *                                    logits, NULL) ||
 *             medvlm_evaluate(logits, f->labels, f->n, p->k, (const char *const *)p->classes, &ev))
 *             goto fail;
 *         fputs(ev.table, stdout); // balanced accuracy, per-class recall, confusion matrix
 *         rc = 0;
 *         goto done;
 *     fail:
 *         fprintf(stderr, "zeroshot: %s\n", medvlm_last_error());
 *     done:
 *         medvlm_evaluation_free(&ev);
 *         medvlm_prototypes_free(p);
 *         medvlm_features_free(f);
 *         medvlm_prompts_free(pr);
 *         medvlm_tokenizer_free(tok);
 *         medvlm_model_free(m);
 *         free(map);
 *         free(logits);
 *         return rc;
 *     }
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

#define MEDVLM_VERSION_MAJOR  0
#define MEDVLM_VERSION_MINOR  1
#define MEDVLM_VERSION_PATCH  0
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
    MEDVLM_LOAD_ALL = 3,
    /* accept NaN and +-inf weights (for inspecting a broken file); without it loading refuses
     * the first non-finite weight of a loaded tower, naming the tensor and the index. The
     * embeddings of such a model are still refused where they are produced. */
    MEDVLM_LOAD_ALLOW_NONFINITE = 8
};

struct medvlm_model;

/* Load a Hugging Face CLIP folder: config.json, model.safetensors, preprocessor_config.json
 * (optional: defaults). Without model.safetensors, pytorch_model.bin (torch.save zip format,
 * torch >= 1.6) is read instead, without running its pickle. Weights are mapped, not copied
 * (F32); the towers not asked for in `flags` are neither converted nor bound (their bytes are
 * read once, by the fingerprint). Every tensor is checked against the config, and the loaded
 * towers' weights must be finite (see MEDVLM_LOAD_ALLOW_NONFINITE). A config.json,
 * model.safetensors or tokenizer file that is a FIFO, device or folder is refused as such. */
enum medvlm_status medvlm_model_load(const char *dir, unsigned flags, struct medvlm_model **out);
/* A model with random weights (normal, std 0.02; LayerNorm 1/0) of the given config. */
enum medvlm_status medvlm_model_init_random(const struct medvlm_config *cfg, uint64_t seed,
                                            struct medvlm_model **out);
/* Write config.json, preprocessor_config.json and model.safetensors into dir (created). */
enum medvlm_status medvlm_model_save(const struct medvlm_model *m, const char *dir);
void medvlm_model_free(struct medvlm_model *m);

/* The arithmetic of the encoders' matrix products. FP32: fp32 weights and products (every
 * golden stage checks against PyTorch in fp32). BF16: the linear layers' weights converted
 * once to bf16 and multiplied with bf16 activations accumulating in fp32 (LayerNorm, softmax
 * and the residual stream stay fp32; AVX512_BF16's vdpbf16ps where the CPU has it), with the
 * accuracy cost docs/precision.md states. AUTO: BF16 where it is the faster on this CPU, FP32
 * elsewhere (medvlm_precision_resolve says which). */
enum medvlm_precision { MEDVLM_PRECISION_AUTO, MEDVLM_PRECISION_FP32, MEDVLM_PRECISION_BF16 };
/* "auto", "fp32", "bf16" -> *p; MEDVLM_ERR_ARG naming the choices otherwise. */
enum medvlm_status medvlm_precision_parse(const char *s, enum medvlm_precision *p);
const char *medvlm_precision_name(enum medvlm_precision p);
/* AUTO resolved for this CPU (FP32 or BF16); FP32 and BF16 as they are. */
enum medvlm_precision medvlm_precision_resolve(enum medvlm_precision p);
/* Make m ready to embed: each linear layer's weight converted once, at load, into the layout
 * (and precision) that the product kernels read, so no product packs or converts a weight
 * again. FP32 on a CPU where the products run medvlm's packed AVX-512 kernel: a packed copy of
 * every linear weight (4 bytes per weight, the out dimension rounded up to 32; 340 MB for
 * ViT-B/32's vision tower), and the mapped file's pages of the originals are given back to the
 * system (they are read again only by training); elsewhere nothing is copied. Call it once,
 * after medvlm_model_load (and medvlm_model_apply_run), before the first encoder is made and
 * before threads share m; again on a prepared model: MEDVLM_ERR_ARG. Fine-tuning
 * (medvlm_peft_*) neither needs nor uses it. MEDVLM_OK, or MEDVLM_ERR_NOMEM (m unchanged). */
enum medvlm_status medvlm_model_prepare(struct medvlm_model *m, enum medvlm_precision p);
/* The precision m's encoders run: FP32 unless medvlm_model_prepare chose BF16. */
enum medvlm_precision medvlm_model_precision(const struct medvlm_model *m);
const struct medvlm_config *medvlm_model_config(const struct medvlm_model *m);
const struct medvlm_preproc_config *medvlm_model_preproc(const struct medvlm_model *m);
float medvlm_model_logit_scale(const struct medvlm_model *m); /* raw; use expf() */
/* "" for a model made in memory. */
const char *medvlm_model_dir(const struct medvlm_model *m);
/* 16 hex digits that identify the weights a model embeds with: a hash of every tensor of the
 * file's parameter table (both towers, projections, logit scale: names, dtypes and bytes as
 * stored), the same whichever towers were loaded (loading reads every page of the file once to
 * compute it). Features, prototypes and adapters record it (metadata model_fingerprint,
 * model_fingerprint_format "2"), so that files from different models (PLIP and CLIP ViT-B/32
 * are both 512-dimensional, a fine-tuned encoder keeps its projections) are not mixed. Files
 * of older medvlm versions, whose fingerprint hashed only the projections, are refused by the
 * readers with a message to make them again. "" for a model made in memory. */
const char *medvlm_model_fingerprint(const struct medvlm_model *m);

/* Which model the embeddings of a features, prototypes or adapter file come from: its
 * medvlm_model_fingerprint and the folder it was loaded from (metadata model_fingerprint and
 * model). NULL or "" when unknown: files written before medvlm recorded it, or embeddings
 * of a model made in memory. Files whose fingerprints are both known and differ come from
 * different weights, and the command line refuses to mix them. */
struct medvlm_provenance {
    const char *fingerprint, *model;
};

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

/* CLIP byte-level BPE with ids identical to Hugging Face's slow CLIPTokenizer (transformers
 * 4.39, without ftfy): text cleaning, CJK isolation, NFC, lowercasing, the CLIP regex, BPE
 * over the first 48894 merges, [<|startoftext|>] + ids + [<|endoftext|>], truncation keeping
 * the end token, padding with <|endoftext|>.
 *
 *     struct medvlm_tokenizer *tok;
 *     int32_t ids[MEDVLM_CLIP_CONTEXT];
 *     int n;
 *     if (medvlm_tokenizer_load("plip", &tok) == MEDVLM_OK &&
 *         medvlm_tokenizer_encode(tok, "Gleason grade 3", ids, MEDVLM_CLIP_CONTEXT, &n) == 0)
 *         ...  // ids = 49406 ... 49407, n = 6 (gle ason grade 3)
 *     medvlm_tokenizer_free(tok);
 *
 * A loaded tokenizer is read-only except for an internal BPE cache behind a mutex: any number
 * of threads may encode with one tokenizer. Results depend on Unicode tables: Python 3.11's
 * (Unicode 14.0) are reproduced over utf8proc (see src/text/unicode.c). */

#define MEDVLM_CLIP_CONTEXT 77 /* CLIP's text length (max_position_embeddings) */

struct medvlm_tokenizer;

/* Load the tokenizer of a model folder: tokenizer.json if present (model.vocab + model.merges,
 * merges as "a b" strings or ["a", "b"] pairs), else vocab.json + merges.txt. */
enum medvlm_status medvlm_tokenizer_load(const char *model_dir, struct medvlm_tokenizer **out);
/* Load from named files: tokenizer_json alone (the others may be NULL and are then ignored),
 * or vocab_json + merges_txt with tokenizer_json NULL. */
enum medvlm_status medvlm_tokenizer_load_files(const char *tokenizer_json, const char *vocab_json,
                                               const char *merges_txt,
                                               struct medvlm_tokenizer **out);
void medvlm_tokenizer_free(struct medvlm_tokenizer *tok);
/* Largest id + 1 (49408 for CLIP): the rows a text embedding needs. */
int medvlm_tokenizer_vocab_size(const struct medvlm_tokenizer *tok);
int32_t medvlm_tokenizer_bos_id(const struct medvlm_tokenizer *tok); /* <|startoftext|> */
int32_t medvlm_tokenizer_eos_id(const struct medvlm_tokenizer *tok); /* <|endoftext|> = pad */
/* The vocabulary string of an id (byte-level BPE form, e.g. "grade</w>"), owned by tok; NULL
 * if the id is out of range or unused. */
const char *medvlm_tokenizer_decode_token(const struct medvlm_tokenizer *tok, int32_t id);

/* Encode one UTF-8 string: ids[0..*n) = [bos] + BPE ids + [eos] with *n <= max_len (>= 2);
 * longer texts keep their first max_len - 2 BPE ids. Invalid UTF-8 is MEDVLM_ERR_FORMAT naming
 * the byte offset. */
enum medvlm_status medvlm_tokenizer_encode(const struct medvlm_tokenizer *tok, const char *text,
                                           int32_t *ids, int max_len, int *n);
/* The same for len bytes that may hold NUL, which the text cleaning drops as Hugging Face's
 * CLIPTokenizer does (the text after it is kept): "a\0b" gives the ids of "ab". The C-string
 * form above is this one with strlen(text). */
enum medvlm_status medvlm_tokenizer_encode_n(const struct medvlm_tokenizer *tok, const char *text,
                                             size_t len, int32_t *ids, int max_len, int *n);
/* Length encode would have without truncation (start and end tokens included). */
enum medvlm_status medvlm_tokenizer_count(const struct medvlm_tokenizer *tok, const char *text,
                                          int *n);
enum medvlm_status medvlm_tokenizer_count_n(const struct medvlm_tokenizer *tok, const char *text,
                                            size_t len, int *n);

enum medvlm_pad {
    MEDVLM_PAD_MAX_LENGTH, /* every row max_len wide (padding="max_length") */
    MEDVLM_PAD_LONGEST     /* rows as wide as the longest encoded text (padding=True) */
};
/* Encode count texts into row-major ids [count, *len] and mask [count, *len] (1 = token,
 * 0 = padding; mask may be NULL). Padding is eos. Both buffers must hold count * max_len
 * values; *len is max_len or the longest row. Errors name the prompt index. */
enum medvlm_status medvlm_tokenizer_encode_batch(const struct medvlm_tokenizer *tok,
                                                 const char *const *texts, int count, int max_len,
                                                 enum medvlm_pad pad, int32_t *ids, int32_t *mask,
                                                 int *len);
/* The same with each text's length in bytes (lens NULL: strlen of each), for texts that may
 * hold NUL (struct medvlm_prompts' prompt_lens). */
enum medvlm_status medvlm_tokenizer_encode_batch_n(const struct medvlm_tokenizer *tok,
                                                   const char *const *texts, const size_t *lens,
                                                   int count, int max_len, enum medvlm_pad pad,
                                                   int32_t *ids, int32_t *mask, int *len);

/* Write a small self-made CLIP-style tokenizer into dir (created if missing): vocab.json,
 * merges.txt, tokenizer.json, tokenizer_config.json, special_tokens_map.json. Ids: 256 byte
 * symbols, their "</w>" forms, merges learnt from a built-in English/histology word list,
 * then <|startoftext|> and <|endoftext|> last. *vocab_size (may be NULL) receives its size,
 * for sizing a text embedding. */
enum medvlm_status medvlm_tokenizer_write_basic(const char *dir, int *vocab_size);

/* ---------------------------------------------------------------- images */

/* Decoding gives the pixels Pillow gives for Image.open(f).convert("RGB"): JPEG through
 * libjpeg-turbo (accurate integer IDCT, fancy upsampling: bit-identical to Pillow; CMYK/YCCK
 * JPEGs are read as Adobe-inverted CMYK and converted as Pillow's cmyk2rgb), PNG through libpng
 * (every bit depth and colour type, interlaced; 16-bit RGB(A)/LA keep the high byte, 16-bit
 * grey is clamped to 0..255 as Pillow's mode "I" -> "RGB"; palette indices past the PLTE give
 * grey i,i,i), TIFF through libtiff (strips or tiles, any compression libtiff has). Alpha is
 * dropped without compositing; grey is replicated. The format is sniffed from the bytes, never
 * from the file name. EXIF/TIFF orientation is not applied (Pillow does not either). */

/* A decoded image: `height` rows of `width` RGB triplets. `rgb` is owned by the struct and
 * released by medvlm_image_free. */
struct medvlm_image {
    int width, height;
    uint8_t *rgb; /* (height, width, 3) */
};

/* Checked on the size a file declares, before any pixel buffer is allocated. A field <= 0
 * means no limit for that field. */
struct medvlm_decode_limits {
    int max_width;      /* default 20000 */
    int max_height;     /* default 20000 */
    int64_t max_pixels; /* width * height; default 100 000 000 (300 MB decoded per image and
                           decoding thread; docs/images.md) */
};
void medvlm_decode_limits_default(struct medvlm_decode_limits *lim);

enum medvlm_image_format {
    MEDVLM_IMAGE_UNKNOWN,
    MEDVLM_IMAGE_JPEG,
    MEDVLM_IMAGE_PNG,
    MEDVLM_IMAGE_TIFF
};
/* The format of an encoded image from its first bytes. */
enum medvlm_image_format medvlm_image_sniff(const void *data, size_t size);

/* Decode a file (lim NULL = defaults). Errors name the file and say what was expected:
 * empty, truncated, corrupt, unknown format, over the limits. On failure *out is zeroed. */
enum medvlm_status medvlm_image_decode_file(const char *path,
                                            const struct medvlm_decode_limits *lim,
                                            struct medvlm_image *out);
/* The same from memory; `name` (may be NULL) names the data in messages. */
enum medvlm_status medvlm_image_decode_memory(const void *data, size_t size, const char *name,
                                              const struct medvlm_decode_limits *lim,
                                              struct medvlm_image *out);
void medvlm_image_free(struct medvlm_image *img); /* frees rgb and zeroes *img; NULL ok */

/* The ways the reference code turns an RGB image into a model input (CHW float32):
 * - HF: transformers' CLIPImageProcessor as transformers 4.x runs it (in 5.x:
 *   CLIPImageProcessorPil): resize the shortest edge to pp->shortest_edge with Pillow's
 *   fixed-point bicubic (or bilinear, pp->resample), centre crop to crop_height x crop_width
 *   (zero padding where the image is smaller), rescale, normalise with pp->mean/std.
 *   Bit-exact to the uint8 step; the float steps as numpy does them.
 * - HF_TORCHVISION: transformers 5's default CLIPImageProcessor (the torchvision backend): the
 *   same sizes, resized by torch's uint8 antialiased interpolate (Pillow's filters, but weights
 *   rounded to about 14 bits instead of 22, so resized pixels differ from HF's by a level or so:
 *   up to ~0.03 after normalisation), centre crop (padding split the other way round for odd
 *   differences), then (x - 255 mean) / (255 std) in float32. Bit-exact to transformers 5.25
 *   with torch 2.15 on CPU.
 * - TUTORIAL: the PEFT-MedVLMs notebooks' torchvision transform: ToTensor, Normalize(mean, std),
 *   Resize([S, S]) bilinear on the float tensor (the image is squashed, not cropped), with
 *   antialias (torchvision >= 0.17 default) or without. */
enum medvlm_preprocess {
    MEDVLM_PREPROCESS_HF,
    MEDVLM_PREPROCESS_TUTORIAL,
    MEDVLM_PREPROCESS_HF_TORCHVISION
};
/* "hf", "tutorial", "hf-torchvision" (NULL for an unknown value), and back: MEDVLM_OK, or
 * MEDVLM_ERR_ARG for an unknown name (the message lists the names). */
const char *medvlm_preprocess_name(enum medvlm_preprocess p);
enum medvlm_status medvlm_preprocess_parse(const char *name, enum medvlm_preprocess *out);

struct medvlm_preprocess_options {
    enum medvlm_preprocess pipeline;
    int size;        /* TUTORIAL: output side S; 0 = the config's crop size. HF*: unused */
    int antialias;   /* TUTORIAL: 1 = antialias=True (default), 0 = plain bilinear */
    int center_crop; /* HF*: -1 = the config's do_center_crop (default), 0 = off, 1 = on */
};
/* HF, size 0, antialias 1, center_crop -1. */
void medvlm_preprocess_options_default(struct medvlm_preprocess_options *opt);

/* The output size for an image of width x height, without touching pixels (opt NULL =
 * defaults). */
enum medvlm_status medvlm_image_preprocess_size(int width, int height,
                                                const struct medvlm_preproc_config *pp,
                                                const struct medvlm_preprocess_options *opt,
                                                int *out_h, int *out_w);
/* The output size when it does not depend on the image (HF with a centre crop, TUTORIAL);
 * MEDVLM_ERR_ARG otherwise (HF without crop gives each image its own size). */
enum medvlm_status medvlm_image_preprocess_fixed_size(const struct medvlm_preproc_config *pp,
                                                      const struct medvlm_preprocess_options *opt,
                                                      int *out_h, int *out_w);
/* Preprocess one image into out_chw: 3 x out_h x out_w floats; out_cap is its capacity in
 * floats. Thread-safe (no shared state); allocates only scratch it frees before returning. */
enum medvlm_status medvlm_image_preprocess(const struct medvlm_image *img,
                                           const struct medvlm_preproc_config *pp,
                                           const struct medvlm_preprocess_options *opt,
                                           float *out_chw, size_t out_cap, int *out_h, int *out_w);
/* Decode and preprocess n files in parallel (OpenMP, nthreads 0 = default) into out:
 * (n, 3, H, W) with H, W from medvlm_image_preprocess_fixed_size; out_cap in floats. The
 * results do not depend on the thread count. item_status (may be NULL) receives each file's
 * status; the return value is the first failure by index (its message names the file), and
 * the other images are still written. */
enum medvlm_status medvlm_image_preprocess_files(const char *const *paths, int n,
                                                 const struct medvlm_decode_limits *lim,
                                                 const struct medvlm_preproc_config *pp,
                                                 const struct medvlm_preprocess_options *opt,
                                                 int nthreads, float *out, size_t out_cap,
                                                 enum medvlm_status *item_status);

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
enum medvlm_status medvlm_encode_images_ex(struct medvlm_encoder *enc, const float *pixels, int B,
                                           const struct medvlm_encode_out *out);

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
 * pass over B images, a text pass over B sequences of lens[b] tokens each, every layer over
 * every row (the model's count; an embeddings-only pass runs the last layer's out_proj and
 * MLP on the pooled rows only, about 6% less work at ViT-B/32's sizes). */
double medvlm_vision_flops(const struct medvlm_config *cfg, int B);
double medvlm_text_flops(const struct medvlm_config *cfg, int B, const int *lens);

/* ---------------------------------------------------------------- datasets */

/* Write a small synthetic labelled set into dir: images/synth_<class>_<i>.jpg (size x size
 * H&E-like tiles whose colour and texture depend on the class) and labels.csv
 * (image_name + one-hot class columns, as the SICAPv2 tables). For demos and tests. */
enum medvlm_status medvlm_synth_dataset(const char *dir, const char *const *classes, int k,
                                        int per_class, int size, uint64_t seed);
/* A label table: rows x columns of strings as read from an .xlsx sheet or a .csv file (the
 * first row is the header). An .xlsx number is its text as stored in the file ("1",
 * "0.25"), a boolean "TRUE" / "FALSE", an error cell its text ("#N/A"); rows without any
 * value (blank CSV lines, empty sheet rows) are skipped. */
struct medvlm_table {
    char *path;            /* as given                                                  */
    int n_rows;            /* data rows, header excluded                                */
    int n_cols;            /* columns (the header's)                                    */
    char **header;         /* (n_cols) column names                                     */
    char **cells;          /* (n_rows * n_cols) row-major; "" for an empty cell          */
    int *line;             /* (n_rows) CSV line / sheet row number of each row (1-based) */
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
    int skip_missing;         /* listed images that do not exist are dropped (counted) rather
                                 than reported as an error                                 */
    int check_files;          /* check that every listed image exists [no]; skip_missing
                                 implies it                                                */
};

/* A labelled image list. Rows keep the table's order (skipped rows removed). */
struct medvlm_dataset {
    int n;            /* images                                                    */
    int n_classes;    /* K                                                         */
    char **paths;     /* (n) images_dir/name (or name without images_dir)          */
    char **names;     /* (n) as listed in the table / folder ("G3/x.jpg")          */
    int64_t *labels;  /* (n) in 0..K-1                                             */
    char **classes;   /* (K) class names in label order                            */
    int skipped_rows; /* one-hot rows whose values do not sum to 1 (dropped)        */
    int missing;      /* images dropped because skip_missing found them absent      */
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
                                         int64_t seed, int allow_fewer, int **out_idx, int *out_n);

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
    int n_classes;   /* K                                                  */
    char **classes;  /* (K) class names                                    */
    int *n_prompts;  /* (K) prompts of class k                             */
    char ***prompts; /* (K)(n_prompts[k]) the expanded prompt texts        */
    /* (K)(n_prompts[k]) their lengths in bytes: a prompt may hold NUL ("\u0000" in the JSON),
     * so pass text and length to the tokenizer (medvlm_tokenizer_encode_n and _batch_n), which
     * drops it as Hugging Face's text cleaning does; each text is also NUL-terminated. NULL
     * in a struct filled by hand: the texts are C strings */
    size_t **prompt_lens;
};
enum medvlm_status medvlm_prompts_load(const char *path, struct medvlm_prompts **out);
/* The same from JSON text in memory; `what` names it in messages. */
enum medvlm_status medvlm_prompts_parse(const char *what, const char *json, size_t len,
                                        struct medvlm_prompts **out);
void medvlm_prompts_free(struct medvlm_prompts *p);

/* ---------------------------------------------------------------- feature extraction */

/* Embed every image of a dataset once (vision tower, l2-normalised) and save a features file
 * (medvlm_features_save's format). Batches of batch_size images in dataset order are
 * appended to OUT.partial as they finish; with `resume`, a log left by a killed run of the
 * same job is replayed and only the missing batches are computed: the file is identical to an
 * uninterrupted run's. An image that fails to decode stops the job before anything is written
 * (its name in the message) unless skip_bad, which leaves it out (logged as a warning). */
struct medvlm_features_job {
    const struct medvlm_model *model; /* vision tower loaded */
    const struct medvlm_dataset *data;
    struct medvlm_preprocess_options pre;
    int batch_size;
    int threads; /* decode/preprocess threads, 0 = default */
    int resume;
    int skip_bad;
    const char *out_path; /* NULL: results in memory only (no file, no resume log) */
    /* called after each batch: images done (in order), total, images computed by this run,
     * seconds since the first computed batch; may be NULL */
    void (*progress)(int done, int total, int computed, double seconds, void *user);
    void *progress_user;
};
struct medvlm_features_result {
    int n, d;        /* images written, embedding dim                                */
    float *features; /* (n, d)                                                       */
    int64_t *labels; /* (n)                                                          */
    char **names;    /* (n) borrowed from the dataset's names: valid while it lives  */
    int skipped;     /* images left out by skip_bad                                  */
    int resumed;     /* batches replayed from OUT.partial                            */
    int computed;    /* images embedded by this run                                  */
};
enum medvlm_status medvlm_features_extract(const struct medvlm_features_job *job,
                                           struct medvlm_features_result *res);
void medvlm_features_result_free(struct medvlm_features_result *res);

/* ---------------------------------------------------------------- zero-shot */

/* Class prototypes (K, D) from prompts: texts[i] belongs to class text_class[i]; each class's
 * prototype is the mean of its prompts' l2-normalised text embeddings, re-normalised (one
 * prompt per class = the single-prompt case; several = a prompt ensemble). Prompts are
 * tokenized with `tok` (truncated to max_len, usually 77) and encoded in batches padded to
 * their longest prompt. enc must have the text tower loaded. */
enum medvlm_status medvlm_zeroshot_prototypes(struct medvlm_encoder *enc,
                                              const struct medvlm_tokenizer *tok, int max_len,
                                              const char *const *texts, const int *text_class,
                                              int n_texts, int k, int d, float *protos);
/* logits (N, K) = exp(logit_scale) * features (N, D) . protos (K, D)^T; probs (N, K), may be
 * NULL, the row-wise softmax. logit_scale is the raw parameter. */
enum medvlm_status medvlm_zeroshot_logits(const float *features, int n, const float *protos, int k,
                                          int d, float logit_scale, float *logits, float *probs);

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
 *                al. CVPR 2024); clap_alm = 1 updates lambda after every epoch by the
 *                authors' augmented-Lagrangian outer step: lambda_c <- max(0, lambda_c +
 *                rho_c z_c), rho_c <- z_c (rho_c from clap_rho, 0)
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
    enum medvlm_schedule schedule;          /* cosine: per step, down to 0 at the last step */
    int epochs;                             /* 100 */
    int batch_size;                         /* 32 */
    float lr;                               /* 1e-3 */
    float momentum;                         /* SGD, 0.9 */
    float weight_decay;                     /* 0 (AdamW: decoupled) */
    float adam_beta1, adam_beta2, adam_eps; /* 0.9, 0.999, 1e-8 */
    uint64_t seed;                          /* LP / CLIP-Adapter init and the per-epoch shuffle */
    float alpha;    /* clipadapter residual ratio 0.5; tipadapter cache weight 1; taskres 0.5 */
    float beta;     /* tipadapter sharpness, 1 */
    int hidden;     /* clipadapter bottleneck width; 0 = D / 4 */
    int threads;    /* lp, zslp, clap, taskres: threads that split the feature columns
                     * (D / 256 blocks at most); every count gives the same bits.
                     * 0 (default): the library's count (medvlm_set_threads) */
    int clap_alm;   /* clap: 1 = augmented-Lagrangian multiplier updates */
    float clap_rho; /* clap_alm initial penalty parameter rho_c, 0 (the CLAP code's) */
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
                                        const int64_t *Y, int n, int d, const float *zs_prototypes,
                                        int k, float logit_scale, struct medvlm_adapter **out,
                                        float *losses_out);
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
const float *medvlm_adapter_param(const struct medvlm_adapter *a, const char *name, size_t *numel);
/* CLAP's class multipliers (K) as they ended training; NULL for other methods. */
const float *medvlm_adapter_lambdas(const struct medvlm_adapter *a);

/* Save as safetensors (atomic): the parameters, `prototypes_zs`, `logit_scale`, and for
 * Tip-Adapter `cache_labels`; metadata medvlm = "adapter/1", method, hparams (JSON), classes
 * (JSON array; class_names may be NULL -> "0", "1", ...), shots, seed, and the provenance of
 * the features and prototypes it was trained on (from, may be NULL). */
enum medvlm_status medvlm_adapter_save(const struct medvlm_adapter *a, const char *path,
                                       const char *const *class_names, int shots,
                                       const struct medvlm_provenance *from);
/* Load what medvlm_adapter_save wrote; everything prediction needs is in the file. */
enum medvlm_status medvlm_adapter_load(const char *path, struct medvlm_adapter **out);
/* The class names and shots saved with a loaded adapter (NULL / 0 for a trained one). */
const char *medvlm_adapter_class_name(const struct medvlm_adapter *a, int c);
int medvlm_adapter_shots(const struct medvlm_adapter *a);
/* The provenance saved with a loaded adapter (fields NULL when unknown). */
struct medvlm_provenance medvlm_adapter_provenance(const struct medvlm_adapter *a);

/* Feature files (`medvlm features`): safetensors with `features` (N, D) F32 l2-normalised,
 * `labels` (N) I64, metadata medvlm = "features/1", classes = JSON array of class names,
 * image_names = JSON array of N names. Prototype files (`medvlm zeroshot
 * --save-prototypes`): `prototypes` (K, D) F32 normalised, `logit_scale` [] F32 raw,
 * metadata medvlm = "prototypes/1", classes = JSON array of K names. Both may carry
 * model_fingerprint and model (medvlm_provenance). Loading checks every shape, dtype and
 * label and names the file in its message. */
struct medvlm_features {
    int n, d, n_classes;
    float *features;           /* (n, d) */
    int64_t *labels;           /* (n), each in [0, n_classes) */
    char **classes;            /* (n_classes) */
    char **image_names;        /* (n), or NULL when the file has none */
    char *fingerprint, *model; /* their provenance, NULL when the file does not say */
};
enum medvlm_status medvlm_features_load(const char *path, struct medvlm_features **out);
/* image_names and from may be NULL. */
enum medvlm_status medvlm_features_save(const char *path, const float *X, const int64_t *Y, int n,
                                        int d, const char *const *classes, int k,
                                        const char *const *image_names,
                                        const struct medvlm_provenance *from);
void medvlm_features_free(struct medvlm_features *f);

struct medvlm_prototypes {
    int k, d;
    float *prototypes;         /* (k, d) */
    float logit_scale;         /* raw */
    char **classes;            /* (k) */
    char *fingerprint, *model; /* their provenance, NULL when the file does not say */
};
enum medvlm_status medvlm_prototypes_load(const char *path, struct medvlm_prototypes **out);
/* from may be NULL. */
enum medvlm_status medvlm_prototypes_save(const char *path, const float *P, int k, int d,
                                          float logit_scale, const char *const *classes,
                                          const struct medvlm_provenance *from);
void medvlm_prototypes_free(struct medvlm_prototypes *p);

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
    int n_classes;               /* K: rows of every per-class array                   */
    int n_samples;               /* M                                                  */
    int n_absent;                /* classes with no sample in refs                     */
    double balanced_accuracy;    /* percent                                            */
    double accuracy;             /* percent                                            */
    double macro_f1;             /* [0, 1]                                             */
    double quadratic_kappa;      /* [-1, 1] or NaN                                     */
    int64_t *labels;             /* (K) label value of class k (k itself in the full form) */
    int64_t *support;            /* (K) samples of class k in refs (row sums)          */
    double *per_class_recall;    /* (K) cm[k,k] / support[k]; NaN if support is 0      */
    double *per_class_precision; /* (K) cm[k,k] / column sum; 0 if never predicted   */
    double *per_class_f1;        /* (K)                                                */
    int64_t *confusion;          /* (K, K) row = true class, column = predicted class  */
};

/* preds[i] = argmax_j probs[i, j] (the first maximum on ties; a NaN wins, as numpy's argmax).
 * probs (n, c) row-major; preds (n). */
enum medvlm_status medvlm_argmax_rows(const float *probs, int n, int c, int64_t *preds);
/* Full report over classes 0..n_classes-1. refs, preds (n). *out is overwritten (its arrays
 * are allocated; release with medvlm_metrics_free). */
enum medvlm_status medvlm_metrics_compute(const int64_t *refs, const int64_t *preds, int n,
                                          int n_classes, struct medvlm_metrics *out);
/* The tutorial's form: classes = sorted union of the values in refs and preds. */
enum medvlm_status medvlm_metrics_compute_union(const int64_t *refs, const int64_t *preds, int n,
                                                struct medvlm_metrics *out);
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

/* ---------------------------------------------------------------- tasks */

/* The paths from prompts and images to results that the command-line tool, the server and
 * the MPI driver share (src/task/): prompts -> prototypes (below), images -> features
 * (medvlm_features_extract, above), logits -> predictions -> metrics (medvlm_evaluate).
 * The complete zero-shot program at the top of this header uses each of them. */

/* map (k): the prompts' class index of each of the k class names (matched by name). A class
 * without prompts is an error naming it, `what` (where the names come from) and `pr_what`
 * (the prompts file); either may be NULL. */
enum medvlm_status medvlm_prompts_class_map(const struct medvlm_prompts *pr, const char *pr_what,
                                            const char *const *classes, int k, const char *what,
                                            int *map);
/* protos (k, D): the zero-shot prototypes of k classes, class i's from the prompts of pr's
 * class order[i] (order NULL: pr's own classes, k = pr->n_classes), embedded by m's text
 * tower (medvlm_zeroshot_prototypes, prompts truncated to the model's text length). */
enum medvlm_status medvlm_prompts_prototypes(const struct medvlm_model *m,
                                             const struct medvlm_tokenizer *tok,
                                             const struct medvlm_prompts *pr, const int *order,
                                             int k, float *protos);
/* The same as a prototypes object (*out, release with medvlm_prototypes_free): the class
 * names, m's logit scale and its provenance (m's weights fingerprint and model_what, NULL:
 * m's folder), as `medvlm zeroshot --save-prototypes` writes and `medvlm adapt` reads. */
enum medvlm_status medvlm_prototypes_from_prompts(const struct medvlm_model *m,
                                                  const char *model_what,
                                                  const struct medvlm_tokenizer *tok,
                                                  const struct medvlm_prompts *pr, const int *order,
                                                  int k, struct medvlm_prototypes **out);

/* One classifier's results on n samples with reference labels. */
struct medvlm_evaluation {
    int n, k;
    float *logits;                 /* (n, k) a copy of the classifier's logits             */
    float *probs;                  /* (n, k) their row softmax                             */
    int64_t *preds;                /* (n) first maximum of each row of probs               */
    struct medvlm_metrics metrics; /* preds against refs                                  */
    char *table;                   /* medvlm_metrics_format_table of the metrics           */
    const int64_t *refs;           /* (n) borrowed from the caller: valid while it lives   */
    const char *const *classes;    /* (k) borrowed, may be NULL                            */
};
/* Evaluate logits (n, k) against refs (n, values in [0, k)); classes (k) name the rows of the
 * table. *ev is zeroed first; release with medvlm_evaluation_free. */
enum medvlm_status medvlm_evaluate(const float *logits, const int64_t *refs, int n, int k,
                                   const char *const *classes, struct medvlm_evaluation *ev);
/* Write the metrics JSON to json and the predictions CSV to csv (either may be NULL; image
 * names may be NULL), as medvlm_metrics_write_json and medvlm_predictions_write_csv. */
enum medvlm_status medvlm_evaluation_save(const struct medvlm_evaluation *ev,
                                          const char *const *image_names, const char *json,
                                          const char *csv);
void medvlm_evaluation_free(struct medvlm_evaluation *ev);

/* One self-contained HTML page of a run's results, for people: the metrics table (the numbers
 * formatted as medvlm_metrics_format_table formats them), the confusion matrix as a heatmap
 * with its counts, per-class recall and precision bars, the training loss curve, the spread
 * of several seeds and a gallery of misclassified images with thumbnails. Inline SVG and CSS,
 * JPEG thumbnails as data: URIs; no script, nothing fetched. Every caller-given string (class,
 * method and image names, the title) is HTML-escaped. Each part is drawn only when its
 * inputs are given (non-NULL, count > 0). An image that cannot be read gets its name without
 * a thumbnail; that is not an error. Written atomically. */
struct medvlm_report {
    const char *title;                    /* e.g. "medvlm zeroshot"; NULL: "medvlm report"     */
    const char *summary;                  /* a line describing the run, may be NULL           */
    const struct medvlm_metrics *metrics; /* may be NULL (e.g. several methods side by side) */
    const char *const *class_names;       /* (K) may be NULL: the label values are shown      */
    const float *losses;                  /* (n_losses) training loss per step, may be NULL   */
    long n_losses;
    /* several seeds (and methods): balanced accuracy per run, in percent */
    int n_methods, n_seeds;
    const char *const *methods; /* (n_methods) */
    const long *seeds;          /* (n_seeds) */
    const double *seed_aca;     /* (n_methods, n_seeds) */
    /* the gallery: samples whose prediction differs from the true class */
    int n;                          /* samples */
    const int64_t *refs, *preds;    /* (n) class indices into metrics' classes */
    const float *probs;             /* (n, K) probabilities, may be NULL */
    const char *const *image_names; /* (n) shown under each thumbnail, may be NULL */
    const char *const *image_paths; /* (n) files the thumbnails are read from, may be NULL */
    int gallery_max;                /* at most this many thumbnails; 0 = 48 */
    int thumb_size;                 /* longer side in pixels; 0 = 112 */
};
enum medvlm_status medvlm_report_write_html(const char *path, const struct medvlm_report *r);

/* ---------------------------------------------------------------- fine-tuning (PEFT) */

/* Parameter-efficient fine-tuning of the vision encoder by backpropagation, the tutorial's
 * last part: the encoder + a zero-shot-initialised linear head (logits = normalise(features)
 * normalise_rows(prototypes)^T exp(logit_scale), mean cross-entropy), with a subset of the
 * encoder trained and the head's prototypes always trained.
 *
 *     struct medvlm_peft_options o;
 *     medvlm_peft_options_default(&o);          // Adam, lr 1e-3, batch 16
 *     o.mode = MEDVLM_PEFT_LORA;                // rank 4 on q, k, v of every layer
 *     struct medvlm_peft *ft;
 *     medvlm_peft_init(model, &o, prototypes, 4, &ft);   // prototypes (K, D) from zero-shot
 *     for (...) medvlm_peft_step(ft, pixels, labels, B, &loss);
 *     medvlm_peft_free(ft);
 *
 * The trainable sets come from the model's parameter table (Hugging Face names):
 *   head     the head alone (the encoder frozen: no backward through it)
 *   ln       the affine of the encoder layers' LayerNorms: names containing "layer_norm"
 *            (the notebook's rule; pre_layrnorm and post_layernorm stay frozen)
 *   ln-all   ln + pre_layrnorm + post_layernorm
 *   bias     every vision bias (LayerNorm biases included)
 *   lora     LoRA of rank lora_rank on lora_targets of every vision layer (peft's scaling
 *            lora_alpha / rank; B = 0 and A as torch's default nn.Linear init at the start)
 *   full     every vision parameter and the visual projection (for comparison)
 * The model itself is never modified: trained tensors are copies, frozen ones are read from
 * the model, which must outlive the fine-tuning state. */
enum medvlm_peft_mode {
    MEDVLM_PEFT_HEAD,
    MEDVLM_PEFT_LN,
    MEDVLM_PEFT_LN_ALL,
    MEDVLM_PEFT_BIAS,
    MEDVLM_PEFT_LORA,
    MEDVLM_PEFT_FULL
};
const char *medvlm_peft_mode_name(enum medvlm_peft_mode mode); /* "lora", ... */
/* MEDVLM_ERR_ARG with the valid names listed when name is not one. */
enum medvlm_status medvlm_peft_mode_from_name(const char *name, enum medvlm_peft_mode *out);

enum medvlm_lora_target {
    MEDVLM_LORA_Q = 1,
    MEDVLM_LORA_K = 2,
    MEDVLM_LORA_V = 4,
    MEDVLM_LORA_O = 8,
    MEDVLM_LORA_FC1 = 16,
    MEDVLM_LORA_FC2 = 32
};
/* "q,k,v" -> MEDVLM_LORA_Q | K | V; names q k v o fc1 fc2 (and peft's module names q_proj
 * k_proj v_proj out_proj fc1 fc2). MEDVLM_ERR_ARG naming the bad entry and the valid ones. */
enum medvlm_status medvlm_lora_targets_parse(const char *list, unsigned *out);

struct medvlm_peft_options {
    enum medvlm_peft_mode mode;      /* default lora */
    int lora_rank;                   /* 4 */
    float lora_alpha;                /* 0: = lora_rank (scaling 1) */
    unsigned lora_targets;           /* MEDVLM_LORA_Q | K | V */
    enum medvlm_optimizer optimizer; /* Adam (torch 1.13's formula) */
    float lr;                        /* 1e-3 */
    float weight_decay;              /* 0 (AdamW: decoupled; Adam, SGD: L2 added to the gradient) */
    float momentum;                  /* SGD: 0.9 */
    int max_batch;                   /* images per step at most: 16 (sizes the workspace) */
    uint64_t seed;                   /* draws the LoRA A initialisation */
    /* The vision layers' linear products (docs/precision.md): fp32 (default), or bf16 with
     * fp32 master weights: every linear weight converted to bf16 once at init (trained ones
     * again after each update), the forward products and the input-gradient products run in
     * bf16 with fp32 accumulation; LayerNorm, attention, the activations, LoRA, the weight,
     * bias and LoRA gradients, the trained tensors and the optimiser state stay fp32. auto:
     * medvlm_precision_resolve's choice for this CPU. */
    enum medvlm_precision precision;
};
void medvlm_peft_options_default(struct medvlm_peft_options *o);

struct medvlm_peft; /* a fine-tuning state: trained tensors, gradients, optimiser, workspace */

/* Set up fine-tuning of model's vision tower with a head initialised from prototypes (K, D)
 * (the zero-shot class prototypes; copied). Allocates everything a step needs, once. */
enum medvlm_status medvlm_peft_init(const struct medvlm_model *model,
                                    const struct medvlm_peft_options *o, const float *prototypes,
                                    int K, struct medvlm_peft **out);
void medvlm_peft_free(struct medvlm_peft *p);
/* Forward, loss and backward of B <= max_batch images (pixels (B, 3, S, S), labels in
 * 0..K-1): gradients replace the previous ones; nothing is updated. *loss may be NULL. */
enum medvlm_status medvlm_peft_backward(struct medvlm_peft *p, const float *pixels,
                                        const int64_t *labels, int B, float *loss);
/* medvlm_peft_backward then one optimiser update of every trained tensor. */
enum medvlm_status medvlm_peft_step(struct medvlm_peft *p, const float *pixels,
                                    const int64_t *labels, int B, float *loss);
/* The head's logits (B, K) of the current parameters; with labels (may be NULL) also the
 * mean cross-entropy in *loss. Any B: runs in chunks of max_batch. */
enum medvlm_status medvlm_peft_logits(struct medvlm_peft *p, const float *pixels, int B,
                                      const int64_t *labels, float *logits, float *loss);

/* The trained tensors, in a fixed order: the encoder's (Hugging Face names, table order),
 * the LoRA pairs ("vision_model.encoder.layers.0.self_attn.q_proj.lora_A.weight" (RK, in),
 * "...lora_B.weight" (out, RK)), then "head.prototypes" (K, D). data may be written between
 * steps (to set initial values); grad holds the last backward's gradient. */
struct medvlm_peft_tensor {
    const char *name;
    int ndim;
    int64_t shape[4];
    size_t numel;
    float *data;
    const float *grad;
};
int medvlm_peft_tensor_count(const struct medvlm_peft *p);
enum medvlm_status medvlm_peft_tensor_at(const struct medvlm_peft *p, int i,
                                         struct medvlm_peft_tensor *out);
/* Index of the tensor called name, -1 if none. */
int medvlm_peft_tensor_find(const struct medvlm_peft *p, const char *name);
size_t medvlm_peft_trainable(const struct medvlm_peft *p); /* scalars trained in all */
const struct medvlm_peft_options *medvlm_peft_options_of(const struct medvlm_peft *p);
/* Optimiser steps taken so far. */
long medvlm_peft_steps(const struct medvlm_peft *p);
/* Bytes of the training workspace (activations kept for backward and scratch). */
size_t medvlm_peft_workspace_bytes(const struct medvlm_peft *p);

/* Every trained value as one flat array of medvlm_peft_snapshot_size floats (to keep the
 * best epoch's parameters), and back. */
size_t medvlm_peft_snapshot_size(const struct medvlm_peft *p);
void medvlm_peft_snapshot(const struct medvlm_peft *p, float *buf);
void medvlm_peft_restore(struct medvlm_peft *p, const float *buf);

/* Checkpoints: add the state (trained tensors "param/<name>", the optimiser's moments
 * "optim/state" and step count "optim/step") to a writer the caller saves with its own
 * metadata; load it back into a state made with the same settings (every tensor is checked
 * before anything is overwritten). */
enum medvlm_status medvlm_peft_state_add(const struct medvlm_peft *p, struct medvlm_st_writer *w);
enum medvlm_status medvlm_peft_state_load(struct medvlm_peft *p, const struct medvlm_st *st);

/* Write a run folder's model files into dir (which must exist), each atomically:
 * - lora: adapter_model.safetensors + adapter_config.json in Hugging Face peft's format
 *   (keys "base_model.model.vision_model.encoder.layers.N.self_attn.q_proj.lora_A.weight",
 *   a target_modules pattern that selects the vision tower's modules only), loadable with
 *   PeftModel.from_pretrained(CLIPModel.from_pretrained(model_dir), dir);
 * - ln, ln-all, bias, full: trained_params.safetensors, the changed tensors under their
 *   Hugging Face names (model.load_state_dict(..., strict=False) takes them);
 * - every mode: head.safetensors, the head's prototypes as a prototypes file (K classes named
 *   by classes, may be NULL) with the logit scale and the model's provenance. */
enum medvlm_status medvlm_peft_save_run(const struct medvlm_peft *p, const char *dir,
                                        const char *const *classes);

/* A fine-tuned model: base with the run folder's changes applied. LoRA is kept beside its
 * linear layers (merge = 0: every forward adds alpha/r (x A^T) B^T) or folded into their
 * weights (merge = 1: W + alpha/r B A, what medvlm_model_save then writes as a complete
 * model folder); the changed tensors of ln / bias / full runs replace the base's. base must be
 * the model the run was trained from (its fingerprint is checked: a run of another model is
 * refused, naming both) and must outlive the result, whose weights it shares. The result's
 * fingerprint hashes the base's and the run's tensors, so features of a fine-tuned model are
 * not mixed with the base model's. */
enum medvlm_status medvlm_model_apply_run(const struct medvlm_model *base, const char *run_dir,
                                          int merge, struct medvlm_model **out);
/* The fingerprint medvlm_model_apply_run gives the fine-tuned model, from the run folder
 * alone (it records its base model's fingerprint). */
enum medvlm_status medvlm_run_fingerprint(const char *run_dir, char fingerprint[17]);
/* The run folder applied to m, "" for a model loaded as it is. */
const char *medvlm_model_run(const struct medvlm_model *m);

#ifdef __cplusplus
}
#endif
#endif /* MEDVLM_H */

/*
 * io.h - internal file formats: safetensors (mmap reader, atomic writer), JSON helpers
 * over cJSON, model folder configs. Later: tokenizer files, feature files, xlsx/csv.
 */
#ifndef MEDVLM_IO_H
#define MEDVLM_IO_H

#include "../core/core.h"

#include <cjson/cJSON.h>

/* F16 / BF16 bit patterns to float. */
float mv_f16_to_f32(uint16_t h);
float mv_bf16_to_f32(uint16_t h);

/* Parse a safetensors header held in memory (used by the mmap reader and the fuzzer).
 * `buf` is the whole file; on success *out holds the tensors with data pointers into buf. */
enum medvlm_status mv_st_parse(const char *path, const void *buf, size_t size,
                               struct medvlm_st **out);

/* Give the pages of [p, p + bytes) back to the system when they lie in st's read-only file
 * mapping (whole pages inside the range only): a later read maps them again from the file,
 * so the data stays valid. 1 when pages were released, 0 when p is not in the mapping (a
 * copy, or a model made in memory) or the range holds no whole page. */
int mv_st_release_pages(const struct medvlm_st *st, const void *p, size_t bytes);

/* ---- JSON helpers: read typed values with a path for messages ---- */

/* Parse a JSON file; the error names the file and the byte offset of a syntax error. */
enum medvlm_status mv_json_load(const char *path, cJSON **out);
/* Parse JSON text held in memory; `what` names it in messages. */
enum medvlm_status mv_json_parse(const char *what, const char *text, size_t len, cJSON **out);
/* Key lookup that skips JSON null (null == absent, as transformers treats it). */
/* mv_json_parse for texts whose strings may hold "\u0000" (prompts): cJSON ends its C strings
 * at a NUL, so each such escape is parsed as U+10FFFF (a noncharacter; a text holding it
 * itself is refused) and the caller turns the strings it keeps back with mv_json_restore_nul,
 * which returns their length (the NULs included; the buffer stays NUL-terminated).
 * mv_json_has_nul says whether a parsed string held "\u0000" (for names that must not). */
enum medvlm_status mv_json_parse_nul(const char *what, const char *text, size_t len, cJSON **out);
size_t mv_json_restore_nul(char *s);
int mv_json_has_nul(const char *s);
const cJSON *mv_json_get(const cJSON *obj, const char *key);
/* Read an integer / number / bool if present and of the right type; a present value of the
 * wrong type is an error naming file and key. Absent leaves *out unchanged. */
enum medvlm_status mv_json_int(const char *file, const cJSON *obj, const char *key, int *out);
enum medvlm_status mv_json_float(const char *file, const cJSON *obj, const char *key, float *out);
enum medvlm_status mv_json_bool(const char *file, const cJSON *obj, const char *key, int *out);

/* ---- resume log (resume.c): finished batches of a long job, kept in OUT.partial ---- */
struct mv_resume;
/* resume = 0 starts a new log; 1 replays OUT.partial if present (refusing one made by a
 * different job: the fingerprint, sizes and batch size must match). */
enum medvlm_status mv_resume_open(const char *out_path, const char *fingerprint, int n_items,
                                  int dim, int batch, int resume, struct mv_resume **out);
int mv_resume_batches(const struct mv_resume *r);
int mv_resume_done_count(const struct mv_resume *r);
bool mv_resume_is_done(const struct mv_resume *r, int b);
/* Record batch b (items [b*batch, min(n, b*batch+batch))): ok flags and (count, dim) rows. */
enum medvlm_status mv_resume_append(struct mv_resume *r, int b, const uint8_t *ok,
                                    const float *embeds);
const float *mv_resume_embeds(const struct mv_resume *r); /* (n_items, dim) */
const uint8_t *mv_resume_ok(const struct mv_resume *r);   /* (n_items) */
void mv_resume_remove(struct mv_resume *r);               /* delete OUT.partial */
void mv_resume_free(struct mv_resume *r);

/* ---- configs (config.c); also used by the fuzzers on in-memory JSON ---- */
enum medvlm_status mv_config_from_json(const char *file, const cJSON *root,
                                       struct medvlm_config *cfg);
enum medvlm_status mv_preproc_from_json(const char *file, const cJSON *root,
                                        struct medvlm_preproc_config *pp);

/* ---- tokenizer files (tokenizer_files.c): vocab.json, merges.txt, tokenizer.json ---- */

/* The slow CLIPTokenizer reads merges.txt lines [1 : 49152 - 256 - 2 + 1]: at most 48894
 * merges (49152 = OpenAI's BPE budget, minus 256 byte symbols and 2 special tokens). */
#define MV_CLIP_MAX_MERGES (49152 - 256 - 2)

/* What the files say, before any BPE table is built. Strings live in `arena`. */
struct mv_bpe_files {
    struct mv_arena arena;
    int n_vocab, cap_vocab;
    const char **vocab_tok; /* (n_vocab) token strings in file order */
    int32_t *vocab_id;      /* (n_vocab) their ids */
    int n_merges, cap_merges;
    const char **merge_a, **merge_b; /* (n_merges) merge i has rank i */
    int32_t added_bos, added_eos;    /* ids from tokenizer.json "added_tokens", else -1 */
    /* where the merges came from, for messages: merges.txt's path (borrowed from the caller of
     * mv_bpe_parse_merges) and each merge's line in it; NULL for tokenizer.json, whose merges
     * are named by their index in model.merges */
    const char *merges_path;
    long *merge_line; /* (n_merges) */
};

void mv_bpe_files_init(struct mv_bpe_files *f);
void mv_bpe_files_free(struct mv_bpe_files *f);
/* vocab.json text: one object {token: id}. `what` names the file in messages. */
enum medvlm_status mv_bpe_parse_vocab(struct mv_bpe_files *f, const char *what, const char *text,
                                      size_t len);
/* merges.txt text: the first line ("#version ...") is skipped, as the slow tokenizer does. */
enum medvlm_status mv_bpe_parse_merges(struct mv_bpe_files *f, const char *what, const char *text,
                                       size_t len);
/* tokenizer.json text: model.vocab and model.merges ("a b" strings or ["a", "b"] pairs). */
enum medvlm_status mv_bpe_parse_tokenizer_json(struct mv_bpe_files *f, const char *what,
                                               const char *text, size_t len);
/* ---- PyTorch checkpoints (zip.c, pickle.c, torchbin.c): pytorch_model.bin ---- */

/* One entry of a zip archive held in memory; name and data point into the caller's buffer. */
struct mv_zip_entry {
    const char *name; /* not NUL-terminated */
    size_t name_len;
    uint16_t method, flags;
    uint32_t crc;
    uint64_t csize, usize;
    const unsigned char *data; /* csize bytes, inside the buffer */
};
struct mv_zip {
    struct mv_zip_entry *e; /* sorted by name, names unique */
    int count;
};
/* Read and validate the central directory of the archive in buf (zip64 aware). */
enum medvlm_status mv_zip_open(const char *path, const void *buf, size_t size, struct mv_zip *z);
void mv_zip_free(struct mv_zip *z);
const struct mv_zip_entry *mv_zip_find(const struct mv_zip *z, const char *name, size_t len);
/* MEDVLM_OK when e's bytes are usable as they are (stored, not encrypted). */
enum medvlm_status mv_zip_stored(const char *path, const struct mv_zip_entry *e);
uint32_t mv_crc32(const void *data, size_t n);

/* One tensor of a torch state dict as data.pkl describes it (nothing resolved yet). */
struct mv_torch_tensor {
    const char *name;        /* NUL-terminated, in the arena */
    const char *storage_key; /* the record data/<key> */
    enum medvlm_dtype dtype; /* from torch.<X>Storage */
    uint64_t storage_numel;  /* elements the persistent id says the storage holds */
    uint64_t offset;         /* storage_offset, elements */
    int ndim;
    int64_t shape[MEDVLM_MAX_DIMS];
    int64_t stride[MEDVLM_MAX_DIMS]; /* elements, >= 0 */
};
/* Run data.pkl through a strict, allow-listed pickle machine (nothing is imported or
 * called) and return the state dict it builds: name -> tensor, in file order. Every object
 * lives in `arena`. `what` names the pickle in messages ("dir/pytorch_model.bin: x/data.pkl"). */
enum medvlm_status mv_pickle_state_dict(const char *what, const void *buf, size_t len,
                                        struct mv_arena *arena, struct mv_torch_tensor **out,
                                        int *count);

/* Open a PyTorch >= 1.6 checkpoint (zip) as a tensor table, the same interface as a
 * safetensors file. Contiguous tensors point into the mapping; others are made contiguous. */
enum medvlm_status mv_torchbin_open(const char *path, struct medvlm_st **out);
/* The same on a caller's buffer (tests, fuzzer); tensors may point into buf. */
enum medvlm_status mv_torchbin_parse(const char *path, const void *buf, size_t size,
                                     struct medvlm_st **out);
/* Build a tensor table from parts (safetensors.c). Takes ownership of everything, also on
 * failure: map (munmap'ed unless NULL), the tensors array (mv_free; names are copied) and
 * each owned[i] buffer plus the owned array (mv_free). */
enum medvlm_status mv_st_from_tensors(const char *path, void *map, size_t map_size,
                                      struct medvlm_tensor_info *tensors, int n, void **owned,
                                      int n_owned, struct medvlm_st **out);

/* ---- feature and prototype files (featfile.c): the readers on an open file ---- */
enum medvlm_status mv_features_from_st(const struct medvlm_st *st, struct medvlm_features **out);
/* The provenance metadata (model_fingerprint, model_fingerprint_format, model) of a features,
 * prototypes or adapter file: writing skips what is NULL or ""; reading gives copies, NULL
 * where absent, and refuses a fingerprint of the old format (no model_fingerprint_format: it
 * hashed only the projections, see medvlm_model_fingerprint) with a message to make the file
 * again. */
enum medvlm_status mv_provenance_write(struct medvlm_st_writer *w,
                                       const struct medvlm_provenance *from);
enum medvlm_status mv_provenance_read(const struct medvlm_st *st, char **fingerprint, char **model);
enum medvlm_status mv_prototypes_from_st(const struct medvlm_st *st,
                                         struct medvlm_prototypes **out);

#endif

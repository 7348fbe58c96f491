/*
 * text.h - internal pieces of the CLIP tokenizer (src/text/):
 *
 *   unicode.c     UTF-8 decoding with located errors; the character classes of Python 3.11
 *                 (Unicode 14.0) over utf8proc: general category, str.isspace, str.lower
 *   normalize.c   Hugging Face BasicTokenizer(lower, no accent strip, no punctuation split):
 *                 clean, isolate CJK ideographs, NFC, split on whitespace, lowercase, join
 *   pretokenize.c the CLIP pre-tokenizer regex, hand-written over code points
 *   bpe.c         symbols, merge ranks, the BPE loop and its cache
 *   tokenizer.c   the public medvlm_tokenizer_* API
 *   basic_vocab.c medvlm_tokenizer_write_basic: a small self-made CLIP-style vocabulary
 */
#ifndef MEDVLM_TEXT_H
#define MEDVLM_TEXT_H

#include "../core/core.h"
#include "../io/io.h"

#include <stdbool.h>
#include <stdint.h>

/* ---- growable buffers of code points / ids ---- */

struct mv_u32buf {
    uint32_t *v;
    size_t n, cap;
};
struct mv_i32buf {
    int32_t *v;
    size_t n, cap;
};
enum medvlm_status mv_u32_push(struct mv_u32buf *b, uint32_t x);
enum medvlm_status mv_i32_push(struct mv_i32buf *b, int32_t x);
enum medvlm_status mv_u32_reserve(struct mv_u32buf *b, size_t n);

/* ---- unicode.c ---- */

/* Decode strict UTF-8 (no overlongs, surrogates or values above U+10FFFF) into out (appended).
 * On a bad sequence returns MEDVLM_ERR_FORMAT with *bad_offset = byte offset of its start
 * (no message set: the caller knows which prompt it is). */
enum medvlm_status mv_utf8_decode(const char *s, size_t len, struct mv_u32buf *out,
                                  size_t *bad_offset);
/* Encode one code point (< 0x110000) as UTF-8 into out[0..3]; returns the byte count. */
int mv_utf8_encode(uint32_t cp, char *out);

/* General category as Python 3.11's unicodedata (Unicode 14.0) reports it: utf8proc's, except
 * that code points first assigned in Unicode 15.0 / 15.1 are unassigned (Cn). Values are
 * utf8proc's UTF8PROC_CATEGORY_*. */
int mv_uc_category(uint32_t cp);
bool mv_uc_is_letter(uint32_t cp); /* \p{L}: Lu Ll Lt Lm Lo */
bool mv_uc_is_number(uint32_t cp); /* \p{N}: Nd Nl No */
bool mv_uc_is_space(uint32_t cp);  /* Python str.isspace / \s */
bool mv_uc_is_cjk(uint32_t cp);    /* BasicTokenizer._is_chinese_char */
/* Python str.lower of code point i of s[0..n) (full mapping + Final_Sigma context); writes 1
 * or 2 code points to out and returns the count. */
int mv_uc_lower(const uint32_t *s, size_t n, size_t i, uint32_t out[2]);

/* ---- normalize.c ---- */

/* BasicTokenizer(do_lower_case, strip_accents=False, do_split_on_punc=False).tokenize joined
 * with single spaces: the text the CLIP regex runs on. out is cleared first. */
enum medvlm_status mv_text_normalize(const uint32_t *s, size_t n, struct mv_u32buf *out);

/* ---- pretokenize.c ---- */

/* The next regex match at or after *pos in s[0..n): [*start, *end). false when none is left.
 * Pattern (case-insensitive): <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|
 * [\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+ */
bool mv_pretok_next(const uint32_t *s, size_t n, size_t *pos, size_t *start, size_t *end);
/* \s of the Python `regex` module: str.isspace without U+001C..U+001F. */
bool mv_uc_is_regex_space(uint32_t cp);

/* ---- bpe.c ---- */

struct mv_bpe;
/* Build symbols, vocabulary and merge ranks from the parsed files. `what` names the source. */
enum medvlm_status mv_bpe_build(const struct mv_bpe_files *f, const char *what,
                                struct mv_bpe **out);
void mv_bpe_free(struct mv_bpe *b);
/* BPE of one pre-token (its UTF-8 bytes); appends vocabulary ids (unknown symbols -> unk_id). */
enum medvlm_status mv_bpe_encode_word(struct mv_bpe *b, const char *piece, size_t n, int32_t unk_id,
                                      struct mv_i32buf *out);
/* The two BPE loops over symbol numbers (w from mv_bpe_word_symbols), in place, giving the
 * new length: naive = the reference loop, O(n^2); heap = O(n log n), used for long words.
 * A test keeps them equal. */
void mv_bpe_word_symbols(const struct mv_bpe *b, const char *piece, size_t n, int32_t *w);
size_t mv_bpe_merge_naive(const struct mv_bpe *b, int32_t *w, size_t n);
enum medvlm_status mv_bpe_merge_heap(const struct mv_bpe *b, int32_t *w, size_t n, size_t *out_n);
int mv_bpe_symbol_count(const struct mv_bpe *b);
/* The id of a vocabulary string, or -1. */
int32_t mv_bpe_vocab_id(const struct mv_bpe *b, const char *tok);
/* max id + 1, and the string of an id (NULL for a gap). */
int mv_bpe_vocab_size(const struct mv_bpe *b);
const char *mv_bpe_id_string(const struct mv_bpe *b, int32_t id);
int mv_bpe_merge_count(const struct mv_bpe *b);

/* ---- tokenizer.c ---- */

/* A tokenizer from already parsed files (the fuzzer's entry); `what` names them. */
enum medvlm_status mv_tokenizer_from_files(const struct mv_bpe_files *f, const char *what,
                                           struct medvlm_tokenizer **out);
/* The BPE ids of text[0..len) without start/end tokens or truncation, appended to ids. Invalid
 * UTF-8: MEDVLM_ERR_FORMAT with *bad_offset set and no message. */
enum medvlm_status mv_tokenizer_encode_raw(const struct medvlm_tokenizer *tok, const char *text,
                                           size_t len, struct mv_i32buf *ids, size_t *bad_offset);

/* The tokenizer's BPE tables (for openai.c). */
struct mv_bpe *mv_tokenizer_bpe(const struct medvlm_tokenizer *tok);

/* ---- html_entities.c ---- */

struct mv_html_entity {
    const char *name; /* without the ';' */
    uint32_t cp, cp2; /* the replacement: one code point, or two when cp2 != 0 */
    bool legacy;      /* also recognised without ';' */
};
/* The HTML5 named reference `name` (no ';'), followed by ';' or not; NULL if unknown. */
const struct mv_html_entity *mv_html_entity_find(const char *name, bool with_semicolon);

/* ---- openai.c ---- */

/* OpenAI simple_tokenizer (no ftfy) + clip.tokenize(truncate=True): ids[0..*n), *n <= max_len.
 * Golden sets keep it as `openai_ids` (padded with 0 there). */
enum medvlm_status mv_tokenizer_encode_openai(const struct medvlm_tokenizer *tok, const char *text,
                                              int32_t *ids, int max_len, int *n);

/* GPT-2 byte-to-unicode table: the code point standing for byte b, and the inverse (-1). */
uint32_t mv_byte_to_unicode(uint8_t b);
int mv_unicode_to_byte(uint32_t cp);

#endif

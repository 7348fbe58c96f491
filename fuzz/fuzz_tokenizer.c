/* fuzz_tokenizer.c - the tokenizer files and the encoder on arbitrary bytes.
 *
 * Input starting with '{': tokenizer files. With a NUL byte inside, the bytes before it are
 * vocab.json and the rest merges.txt; otherwise the whole input is tokenizer.json. A file set
 * that loads is then used to encode a fixed prompt and the input itself.
 * Any other input: text, encoded (Hugging Face and OpenAI paths, batch with both paddings) with
 * a real vocabulary loaded once: $MEDVLM_GOLDEN/model if set, else the self-made basic one. */
#include "text/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct medvlm_tokenizer *shared_tok;
static char basic_dir[64];

static void remove_basic_dir(void)
{
    static const char *files[] = {"vocab.json", "merges.txt", "tokenizer.json",
                                  "tokenizer_config.json", "special_tokens_map.json"};
    for (size_t i = 0; i < MV_ARRAY_LEN(files); i++) {
        char *p = mv_path_join(basic_dir, files[i]);
        if (p) unlink(p);
        mv_free(p);
    }
    rmdir(basic_dir);
}

static struct medvlm_tokenizer *load_shared(void)
{
    if (shared_tok) return shared_tok;
    const char *g = getenv("MEDVLM_GOLDEN");
    char dir[4096];
    if (g && *g) {
        snprintf(dir, sizeof dir, "%s/model", g);
        if (medvlm_tokenizer_load(dir, &shared_tok) == MEDVLM_OK) return shared_tok;
    }
    snprintf(basic_dir, sizeof basic_dir, "/tmp/medvlm-fuzz-tok-%d", (int)getpid());
    atexit(remove_basic_dir);
    if (medvlm_tokenizer_write_basic(basic_dir, NULL) != MEDVLM_OK ||
        medvlm_tokenizer_load(basic_dir, &shared_tok) != MEDVLM_OK) {
        fprintf(stderr, "fuzz_tokenizer: cannot make a vocabulary: %s\n", medvlm_last_error());
        abort();
    }
    return shared_tok;
}

static void encode_all(struct medvlm_tokenizer *tok, const char *text, size_t len)
{
    struct mv_i32buf ids = {0};
    size_t bad;
    int vs = medvlm_tokenizer_vocab_size(tok);
    if (mv_tokenizer_encode_raw(tok, text, len, &ids, &bad) == MEDVLM_OK)
        for (size_t i = 0; i < ids.n; i++)
            if (ids.v[i] < 0 || ids.v[i] >= vs) abort(); /* an id outside the vocabulary */
    mv_free(ids.v);
    /* the public C-string API (stops at the first NUL): batch padded to the longest */
    char *s = mv_strndup(text, len);
    if (!s) return;
    int32_t out[2 * MEDVLM_CLIP_CONTEXT], mask[2 * MEDVLM_CLIP_CONTEXT];
    int n, w;
    const char *two[2] = {s, "a"};
    if (medvlm_tokenizer_encode_batch(tok, two, 2, MEDVLM_CLIP_CONTEXT, MEDVLM_PAD_LONGEST, out,
                                      mask, &w) == MEDVLM_OK) {
        if (w < 3 || w > MEDVLM_CLIP_CONTEXT || out[0] != medvlm_tokenizer_bos_id(tok)) abort();
        for (int k = 0; k < 2 * w; k++)
            if (out[k] < 0 || out[k] >= vs || (mask[k] != 0 && mask[k] != 1)) abort();
    }
    (void)mv_tokenizer_encode_openai(tok, s, out, MEDVLM_CLIP_CONTEXT, &n);
    mv_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    if (size == 0 || data[0] != '{') {
        encode_all(load_shared(), text, size);
        return 0;
    }
    struct mv_bpe_files f;
    mv_bpe_files_init(&f);
    const uint8_t *nul = memchr(data, 0, size);
    enum medvlm_status st;
    if (nul) {
        size_t nv = (size_t)(nul - data);
        st = mv_bpe_parse_vocab(&f, "vocab.json", text, nv);
        if (!st) st = mv_bpe_parse_merges(&f, "merges.txt", text + nv + 1, size - nv - 1);
    } else {
        st = mv_bpe_parse_tokenizer_json(&f, "tokenizer.json", text, size);
    }
    struct medvlm_tokenizer *tok = NULL;
    if (!st && mv_tokenizer_from_files(&f, "fuzz", &tok) == MEDVLM_OK) {
        static const char prompt[] = "A histopathology image of Gleason grade 3 <|endoftext|> it's";
        encode_all(tok, prompt, sizeof prompt - 1);
        encode_all(tok, text, size);
        medvlm_tokenizer_free(tok);
    }
    mv_bpe_files_free(&f);
    return 0;
}

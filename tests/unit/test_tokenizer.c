/* test_tokenizer.c - the CLIP tokenizer: golden ids from each file format on its own (vocab.json
 * + merges.txt, tokenizer.json with "a b" merges, tokenizer.json with ["a", "b"] merges),
 * the Python-semantics corner cases, a seeded property test over random Unicode, threads,
 * bad files and the self-made basic vocabulary. */
#include "check.h"
#include "golden_path.h"
#include "io/io.h"
#include "text/text.h"

#include <pthread.h>
#include <unistd.h>

static char tmp_root[256];

static void copy_file(const char *from, const char *to)
{
    char *data;
    size_t len;
    CHECK_OK(mv_read_file(from, &data, &len));
    if (!data) return;
    CHECK_OK(mv_write_file_atomic(to, data, len));
    mv_free(data);
}

static char *make_dir(const char *name)
{
    char *d = mv_path_join(tmp_root, name);
    CHECK(mkdir(d, 0755) == 0, "mkdir %s", d);
    return d;
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char *p = mv_path_join(dir, name);
    CHECK_OK(mv_write_file_atomic(p, text, strlen(text)));
    mv_free(p);
}

/* ---- golden: each format alone gives exactly expected/tokens.safetensors ---- */

static int n_prompts;
static const char **prompts;
static cJSON *prompts_json;

static void load_prompts(const char *golden)
{
    char *p = mv_path_join(golden, "prompts.json");
    CHECK_OK(mv_json_load(p, &prompts_json));
    mv_free(p);
    n_prompts = cJSON_GetArraySize(prompts_json);
    prompts = mv_calloc((size_t)n_prompts + 1, sizeof *prompts);
    for (int i = 0; i < n_prompts; i++)
        prompts[i] = cJSON_GetArrayItem(prompts_json, i)->valuestring;
}

static void compare_expected(const char *golden, struct medvlm_tokenizer *tok, const char *label)
{
    char *path = mv_path_join(golden, "expected/tokens.safetensors");
    struct medvlm_st *st = NULL;
    CHECK_OK(medvlm_st_open(path, &st));
    mv_free(path);
    if (!st) return;
    static const struct {
        enum medvlm_pad pad;
        const char *ids, *mask;
    } modes[] = {{MEDVLM_PAD_MAX_LENGTH, "input_ids", "attention_mask"},
                 {MEDVLM_PAD_LONGEST, "input_ids_longest", "attention_mask_longest"}};
    size_t cap = (size_t)n_prompts * MEDVLM_CLIP_CONTEXT;
    int32_t *ids = mv_calloc(cap, sizeof *ids), *mask = mv_calloc(cap, sizeof *mask);
    for (size_t m = 0; m < MV_ARRAY_LEN(modes); m++) {
        int len = -1;
        CHECK_OK(medvlm_tokenizer_encode_batch(tok, prompts, n_prompts, MEDVLM_CLIP_CONTEXT,
                                               modes[m].pad, ids, mask, &len));
        const struct medvlm_tensor_info *ti = medvlm_st_find(st, modes[m].ids);
        const struct medvlm_tensor_info *tm = medvlm_st_find(st, modes[m].mask);
        CHECK(ti && tm && ti->dtype == MEDVLM_DTYPE_I64 && ti->ndim == 2 &&
                  ti->shape[0] == n_prompts && ti->shape[1] == len,
              "%s %s: shape [%d, %d] vs file", label, modes[m].ids, n_prompts, len);
        if (!ti || !tm || ti->shape[1] != len) continue;
        int bad = 0;
        for (int i = 0; i < n_prompts; i++)
            for (int k = 0; k < len; k++) {
                int64_t want, wm;
                memcpy(&want, (const char *)ti->data + 8 * ((size_t)i * (size_t)len + (size_t)k),
                       8);
                memcpy(&wm, (const char *)tm->data + 8 * ((size_t)i * (size_t)len + (size_t)k), 8);
                int32_t got = ids[(size_t)i * (size_t)len + (size_t)k];
                int32_t gm = mask[(size_t)i * (size_t)len + (size_t)k];
                if ((got != want || gm != wm) && bad++ < 3)
                    fprintf(stderr, "  %s %s: prompt %d pos %d: got %d/%d want %lld/%lld\n", label,
                            modes[m].ids, i, k, got, gm, (long long)want, (long long)wm);
            }
        CHECK(bad == 0, "%s %s: %d mismatching ids", label, modes[m].ids, bad);
    }
    mv_free(ids);
    mv_free(mask);
    medvlm_st_free(st);
}

/* tokenizer.json with its "a b" merges rewritten as ["a", "b"] pairs (tokenizers >= 0.20). */
static void write_pair_merges(const char *golden, const char *dir)
{
    char *src = mv_path_join(golden, "model/tokenizer.json");
    cJSON *root = NULL;
    CHECK_OK(mv_json_load(src, &root));
    mv_free(src);
    if (!root) return;
    cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    cJSON *pairs = cJSON_CreateArray();
    for (const cJSON *m = merges->child; m; m = m->next) {
        char *s = mv_strdup(m->valuestring), *sp = strchr(s, ' ');
        *sp = '\0';
        const char *two[2] = {s, sp + 1};
        cJSON_AddItemToArray(pairs, cJSON_CreateStringArray(two, 2));
        mv_free(s);
    }
    cJSON_ReplaceItemInObjectCaseSensitive(model, "merges", pairs);
    char *text = cJSON_PrintUnformatted(root);
    write_text(dir, "tokenizer.json", text);
    cJSON_free(text);
    cJSON_Delete(root);
}

static struct medvlm_tokenizer *tok_vm, *tok_tj, *tok_pairs;

static void test_golden_formats(const char *golden)
{
    char from[4096], to[4096];
    char *d1 = make_dir("vocab_merges"), *d2 = make_dir("tokenizer_json"), *d3 = make_dir("pairs");
    snprintf(from, sizeof from, "%s/model/vocab.json", golden);
    snprintf(to, sizeof to, "%s/vocab.json", d1);
    copy_file(from, to);
    snprintf(from, sizeof from, "%s/model/merges.txt", golden);
    snprintf(to, sizeof to, "%s/merges.txt", d1);
    copy_file(from, to);
    snprintf(from, sizeof from, "%s/model/tokenizer.json", golden);
    snprintf(to, sizeof to, "%s/tokenizer.json", d2);
    copy_file(from, to);
    write_pair_merges(golden, d3);

    CHECK_OK(medvlm_tokenizer_load(d1, &tok_vm));
    CHECK_OK(medvlm_tokenizer_load(d2, &tok_tj));
    CHECK_OK(medvlm_tokenizer_load(d3, &tok_pairs));
    if (!tok_vm || !tok_tj || !tok_pairs) return;
    compare_expected(golden, tok_vm, "vocab.json+merges.txt");
    compare_expected(golden, tok_tj, "tokenizer.json");
    compare_expected(golden, tok_pairs, "tokenizer.json pairs");
    CHECK(medvlm_tokenizer_vocab_size(tok_vm) == 49408 &&
              medvlm_tokenizer_vocab_size(tok_tj) == 49408,
          "vocab size %d %d", medvlm_tokenizer_vocab_size(tok_vm),
          medvlm_tokenizer_vocab_size(tok_tj));
    CHECK(medvlm_tokenizer_bos_id(tok_vm) == 49406 && medvlm_tokenizer_eos_id(tok_vm) == 49407,
          "special ids %d %d", medvlm_tokenizer_bos_id(tok_vm), medvlm_tokenizer_eos_id(tok_vm));
    CHECK(mv_bpe_merge_count(mv_tokenizer_bpe(tok_vm)) == MV_CLIP_MAX_MERGES &&
              mv_bpe_merge_count(mv_tokenizer_bpe(tok_tj)) == MV_CLIP_MAX_MERGES,
          "merges %d %d", mv_bpe_merge_count(mv_tokenizer_bpe(tok_vm)),
          mv_bpe_merge_count(mv_tokenizer_bpe(tok_tj)));
    const char *s = medvlm_tokenizer_decode_token(tok_vm, 49406);
    CHECK(s && !strcmp(s, "<|startoftext|>"), "decode 49406 = %s", s ? s : "NULL");
    CHECK(medvlm_tokenizer_decode_token(tok_vm, 49408) == NULL, "decode out of range");
    /* the model folder itself holds both: tokenizer.json is preferred, same ids */
    char mdir[4096];
    snprintf(mdir, sizeof mdir, "%s/model", golden);
    struct medvlm_tokenizer *t = NULL;
    CHECK_OK(medvlm_tokenizer_load(mdir, &t));
    if (t) compare_expected(golden, t, "model folder");
    medvlm_tokenizer_free(t);
    mv_free(d1);
    mv_free(d2);
    mv_free(d3);
}

/* ---- behaviour of the reference, case by case ---- */

static int enc(struct medvlm_tokenizer *t, const char *text, int32_t *ids)
{
    int n = -1;
    CHECK_OK(medvlm_tokenizer_encode(t, text, ids, MEDVLM_CLIP_CONTEXT, &n));
    return n;
}

/* encode(a) == encode(b) (want_equal) or differs. */
static void same(struct medvlm_tokenizer *t, const char *a, const char *b, int want_equal)
{
    int32_t x[MEDVLM_CLIP_CONTEXT], y[MEDVLM_CLIP_CONTEXT];
    int nx = enc(t, a, x), ny = enc(t, b, y);
    int eq = nx == ny && nx > 0 && memcmp(x, y, (size_t)nx * sizeof *x) == 0;
    CHECK(eq == want_equal, "\"%s\" vs \"%s\": expected %s ids", a, b,
          want_equal ? "the same" : "different");
}

/* encode(whole) == encode(a) minus its eos, followed by encode(b) minus its bos. */
static void concat(struct medvlm_tokenizer *t, const char *whole, const char *a, const char *b)
{
    int32_t w[MEDVLM_CLIP_CONTEXT], x[MEDVLM_CLIP_CONTEXT], y[MEDVLM_CLIP_CONTEXT];
    int nw = enc(t, whole, w), nx = enc(t, a, x), ny = enc(t, b, y);
    int ok = nw == nx + ny - 2 && !memcmp(w, x, (size_t)(nx - 1) * sizeof *w) &&
             !memcmp(w + nx - 1, y + 1, (size_t)(ny - 1) * sizeof *w);
    CHECK(ok, "\"%s\" should split as \"%s\" + \"%s\"", whole, a, b);
}

static void test_semantics(struct medvlm_tokenizer *t)
{
    int32_t ids[MEDVLM_CLIP_CONTEXT];
    /* known ids: CLIP vocab */
    int n = enc(t, "Gleason grade 3", ids); /* gle ason grade 3 */
    CHECK(n == 6 && ids[0] == 49406 && ids[5] == 49407, "n %d", n);
    CHECK(enc(t, "", ids) == 2 && ids[0] == 49406 && ids[1] == 49407, "empty text");
    CHECK(enc(t, " \t\n ", ids) == 2, "whitespace only");
    /* cleaning: controls dropped, \t \n \r and Zs are spaces, U+FFFD dropped */
    same(t,
         "a\x01"
         "b",
         "ab", 1);
    same(t, "a\tb\r\nc", "a b c", 1);
    same(t,
         "a\xc2\xa0"
         "b",
         "a b", 1); /* U+00A0 NO-BREAK SPACE (Zs) */
    same(t,
         "a\xe2\x80\x8b"
         "b",
         "ab", 1); /* U+200B ZERO WIDTH SPACE (Cf) */
    same(t,
         "a\xef\xbf\xbd"
         "b",
         "ab", 1);                      /* U+FFFD */
    same(t, "x\xee\x80\x80y", "xy", 1); /* U+E000 private use (Co) */
    /* CJK ideographs are isolated; kana is not */
    same(t, "\xe4\xb8\xad\xe6\x96\x87", "\xe4\xb8\xad \xe6\x96\x87", 1);
    same(t, "\xe3\x81\xae\xe3\x83\x86", "\xe3\x81\xae \xe3\x83\x86", 0);
    /* NFC: e + U+0301 == U+00E9 */
    same(t, "cafe\xcc\x81", "caf\xc3\xa9", 1);
    /* lowercasing with Python's rules: U+0130 -> i + U+0307; final sigma */
    same(t, "\xc4\xb0", "i\xcc\x87", 1);
    same(t, "\xce\x9f\xce\x94\xce\x9f\xce\xa3", "\xce\xbf\xce\xb4\xce\xbf\xcf\x82",
         1); /* ΟΔΟΣ = οδος */
    same(t, "\xce\x9f\xce\x94\xce\x9f\xce\xa3", "\xce\xbf\xce\xb4\xce\xbf\xcf\x83", 0);
    same(t, "\xce\xa3\xce\x91", "\xcf\x83\xce\xb1", 1); /* ΣΑ: not final -> σα */
    same(t, "HISTOLOGY Slide", "histology slide", 1);
    /* regex: contractions before letters; case-insensitive 's also matches 'ſ (U+017F) */
    concat(t, "it's", "it", "'s");
    concat(t, "it'\xc5\xbf", "it", "'\xc5\xbf");
    concat(t, "x86", "x", "86");
    /* special tokens: split out of the raw text before cleaning */
    concat(t, "!!<|endoftext|>", "!!", "<|endoftext|>");
    n = enc(t, "a<|endoftext|>b", ids);
    CHECK(n == 5 && ids[2] == 49407, "inline <|endoftext|>: n %d id %d", n, ids[2]);
    n = enc(t, "<|STARTOFTEXT|>", ids); /* not the trie's literal, but the lowercased regex piece */
    CHECK(n == 3 && ids[1] == 49406, "uppercase special: n %d id %d", n, ids[1]);
    /* regex IGNORECASE: U+0345 matches no class: skipped, and it ends a letter run */
    same(t, "ba\xcd\x85", "ba", 1);
    same(t,
         "ba\xcd\x85"
         "c",
         "ba c", 1);
    /* NFC keeps U+11A7 after a Hangul LV syllable (utf8proc would swallow it) */
    same(t, "\xea\xb0\x80\xe1\x86\xa7", "\xea\xb0\x80", 0);
    /* Unicode versions: Python 3.11 = Unicode 14.0 */
    same(t, "a\xf0\x9f\xab\xa0", "a", 0); /* U+1FAE0 (Unicode 14): kept */
    same(t, "a\xf0\x9f\xab\xa8", "a", 1); /* U+1FAE8 (Unicode 15): unassigned for Python, dropped */
    /* truncation keeps eos */
    char longtext[2000] = "";
    for (int i = 0; i < 100; i++) strcat(longtext, "gland ");
    n = enc(t, longtext, ids);
    CHECK(n == MEDVLM_CLIP_CONTEXT && ids[76] == 49407 && ids[75] != 49407, "truncated n %d", n);
    int full = 0;
    CHECK_OK(medvlm_tokenizer_count(t, longtext, &full));
    CHECK(full == 102, "count %d", full);
    int32_t small[4];
    CHECK_OK(medvlm_tokenizer_encode(t, longtext, small, 3, &n));
    CHECK(n == 3 && small[0] == 49406 && small[2] == 49407, "max_len 3");
    CHECK_ERR(medvlm_tokenizer_encode(t, "x", small, 1, &n), MEDVLM_ERR_ARG, "max_len 1");
    /* invalid UTF-8 names the offset (and the prompt in a batch) */
    CHECK_ERR(medvlm_tokenizer_encode(t, "abc\xff", ids, 77, &n), MEDVLM_ERR_FORMAT,
              "invalid UTF-8 at byte offset 3");
    CHECK_ERR(medvlm_tokenizer_encode(t, "ab\xc3", ids, 77, &n), MEDVLM_ERR_FORMAT,
              "byte offset 2");
    CHECK_ERR(medvlm_tokenizer_encode(t, "\xed\xa0\x80", ids, 77, &n), MEDVLM_ERR_FORMAT,
              "byte offset 0"); /* surrogate */
    CHECK_ERR(medvlm_tokenizer_encode(t, "\xc0\xaf", ids, 77, &n), MEDVLM_ERR_FORMAT,
              "byte offset 0"); /* overlong */
    const char *batch[3] = {"ok", "fine", "bad \xe2\x82"};
    int32_t bids[3 * 77];
    int len;
    CHECK_ERR(medvlm_tokenizer_encode_batch(t, batch, 3, 77, MEDVLM_PAD_LONGEST, bids, NULL, &len),
              MEDVLM_ERR_FORMAT, "prompt 2: invalid UTF-8 at byte offset 4");
    /* batch padded to the longest */
    const char *two[2] = {"a", "a b c"};
    int32_t mask[2 * 77];
    CHECK_OK(medvlm_tokenizer_encode_batch(t, two, 2, 77, MEDVLM_PAD_LONGEST, bids, mask, &len));
    CHECK(len == 5 && bids[3] == 49407 && bids[4] == 49407 && mask[2] == 1 && mask[3] == 0 &&
              mask[5 + 4] == 1,
          "longest: len %d", len);
}

/* ---- property: random Unicode gives the same ids from every format, all in range ---- */

static size_t random_text(struct mv_rng *r, char *out, size_t cap)
{
    static const uint32_t pool[] = {
        ' ',     '\t',   '\n',    '\r',   0x0B,     0x1C,    0x85,    0xA0,    0x2028,  0x3000,
        0x200B,  0x200D, 0xFEFF,  0xFFFD, 0x01,     0x7F,    '\'',    '<',     '|',     '>',
        's',     'S',    0x17F,   0x130,  0x3A3,    0x301,   0x308,   0x345,   0x4E2D,  0x6587,
        0x3042,  0xAC00, 0x1100,  0x1161, 0xF900,   0x20000, 0x1F52C, 0x1F9EB, 0x1FAE0, 0x1FAE8,
        0x1F469, 0x200D, 0x1F3FD, 0xE000, 0x10FFFD, 0x31350, 0x0CF3,  0x2160,  0x24B6,  0x00C5,
        0x212B,  0x212A, 0x1E9E,  0xDF,   0xFB01,   0x0660,  0x0966,  0x00B2,  0x2153,  '0',
        '9',     '.',    ',',     '-',    '&',      ';',     0x2019,  0x201C,  0x2014,  0x0627};
    static const char *words[] = {"<|endoftext|>", "<|startoftext|>", "'s",    "'ll",  "gland",
                                  "Gleason",       "HISTOLOGY",       "&amp;", "it's", "  "};
    size_t n = 0, len = 1 + mv_rng_below(r, 40);
    for (size_t i = 0; i < len && n + 32 < cap; i++) {
        uint64_t kind = mv_rng_below(r, 10);
        if (kind < 2) {
            const char *w = words[mv_rng_below(r, MV_ARRAY_LEN(words))];
            memcpy(out + n, w, strlen(w));
            n += strlen(w);
            continue;
        }
        uint32_t cp;
        if (kind < 5)
            cp = 'a' + (uint32_t)mv_rng_below(r, 26);
        else if (kind < 8)
            cp = pool[mv_rng_below(r, MV_ARRAY_LEN(pool))];
        else {
            do cp = (uint32_t)mv_rng_below(r, 0x110000);
            while (cp >= 0xD800 && cp <= 0xDFFF);
            if (cp == 0) cp = 1;
        }
        n += (size_t)mv_utf8_encode(cp, out + n);
    }
    out[n] = '\0';
    return n;
}

static void test_property(void)
{
    struct mv_rng r;
    mv_rng_seed(&r, 20240320);
    char text[2048];
    int32_t a[MEDVLM_CLIP_CONTEXT], b[MEDVLM_CLIP_CONTEXT], c[MEDVLM_CLIP_CONTEXT];
    int differ = 0, range = 0, errs = 0, rejected = 0;
    for (int it = 0; it < 3000; it++) {
        size_t n = random_text(&r, text, sizeof text);
        int na = 0, nb = 0, nc = 0;
        errs += medvlm_tokenizer_encode(tok_vm, text, a, MEDVLM_CLIP_CONTEXT, &na) != MEDVLM_OK;
        errs += medvlm_tokenizer_encode(tok_tj, text, b, MEDVLM_CLIP_CONTEXT, &nb) != MEDVLM_OK;
        errs += medvlm_tokenizer_encode(tok_pairs, text, c, MEDVLM_CLIP_CONTEXT, &nc) != MEDVLM_OK;
        if (na != nb || na != nc || memcmp(a, b, (size_t)na * 4) || memcmp(a, c, (size_t)na * 4))
            differ++;
        for (int k = 0; k < na; k++) range += a[k] < 0 || a[k] >= 49408;
        /* break the UTF-8 at a random place: the error names that offset */
        if (n > 1) {
            size_t off = mv_rng_below(&r, n);
            /* only a lead-byte position gives a predictable offset */
            if (((unsigned char)text[off] & 0xC0) != 0x80) {
                text[off] = (char)0xFF;
                char want[64];
                snprintf(want, sizeof want, "byte offset %zu", off);
                enum medvlm_status st = medvlm_tokenizer_encode(tok_vm, text, a, 77, &na);
                rejected += st == MEDVLM_ERR_FORMAT && strstr(medvlm_last_error(), want);
                if (!(st == MEDVLM_ERR_FORMAT && strstr(medvlm_last_error(), want)))
                    fprintf(stderr, "  bad UTF-8 at %zu: %s\n", off, medvlm_last_error());
            } else {
                rejected++;
            }
        } else {
            rejected++;
        }
    }
    CHECK(errs == 0, "%d encode errors on valid text", errs);
    CHECK(differ == 0, "%d texts gave different ids across formats", differ);
    CHECK(range == 0, "%d ids out of range", range);
    CHECK(rejected == 3000, "%d of 3000 invalid texts rejected with their offset", rejected);
}

/* ---- threads: one tokenizer, two threads, the single-thread ids ---- */

struct thread_arg {
    struct medvlm_tokenizer *tok;
    const int32_t *want;
    int bad;
};

static void *thread_fn(void *p)
{
    struct thread_arg *a = p;
    int32_t ids[MEDVLM_CLIP_CONTEXT];
    for (int rep = 0; rep < 50; rep++)
        for (int i = 0; i < n_prompts; i++) {
            int n;
            if (medvlm_tokenizer_encode(a->tok, prompts[i], ids, 77, &n) != MEDVLM_OK ||
                memcmp(ids, a->want + i * 77, (size_t)n * sizeof *ids))
                a->bad++;
        }
    return NULL;
}

static void test_threads(void)
{
    int32_t *want = mv_calloc((size_t)n_prompts * 77, sizeof *want);
    for (int i = 0; i < n_prompts; i++) {
        int n;
        CHECK_OK(medvlm_tokenizer_encode(tok_tj, prompts[i], want + i * 77, 77, &n));
    }
    pthread_t th[2];
    struct thread_arg args[2] = {{tok_tj, want, 0}, {tok_tj, want, 0}};
    for (int k = 0; k < 2; k++) pthread_create(&th[k], NULL, thread_fn, &args[k]);
    for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
    CHECK(args[0].bad == 0 && args[1].bad == 0, "threads: %d + %d mismatches", args[0].bad,
          args[1].bad);
    mv_free(want);
}

/* ---- bad files: clear errors naming the file and what was expected ---- */

static void test_bad_files(void)
{
    char *d = make_dir("bad");
    struct medvlm_tokenizer *t = NULL;
    CHECK_ERR(medvlm_tokenizer_load(d, &t), MEDVLM_ERR_MISSING, "expected tokenizer.json");
    write_text(d, "vocab.json", "{\"a\": 0, \"b\": \"x\"}");
    write_text(d, "merges.txt", "#version: 0.2\na b\n");
    CHECK_ERR(medvlm_tokenizer_load(d, &t), MEDVLM_ERR_FORMAT,
              "token \"b\": expected an integer id");
    write_text(d, "vocab.json", "{\"a\": 0, \"b\": 1, \"ab\": 3}");
    CHECK_ERR(medvlm_tokenizer_load(d, &t), MEDVLM_ERR_MISSING, "<|startoftext|>");
    write_text(d, "vocab.json", "{\"a\": 0, \"<|startoftext|>\": 1, \"<|endoftext|>\": 2}");
    write_text(d, "merges.txt", "#version: 0.2\na b\nc d e\n");
    CHECK_ERR(medvlm_tokenizer_load(d, &t), MEDVLM_ERR_FORMAT, "merges.txt:3: expected a merge");
    /* a merge of symbols that are no tokens: refused, as Hugging Face's tokenizers does (kept,
     * it gave <|endoftext|> mid-sequence), naming the line, the merge and the missing token */
    write_text(d, "merges.txt", "#version: 0.2\na a\na b</w>\n");
    write_text(d, "vocab.json",
               "{\"a\": 0, \"<|startoftext|>\": 1, \"<|endoftext|>\": 2, \"aa\": 3}");
    CHECK_ERR(medvlm_tokenizer_load(d, &t), MEDVLM_ERR_FORMAT,
              "merges.txt: line 3: the merge \"a b</w>\" uses \"b</w>\", which is not in the "
              "vocabulary");
    write_text(d, "vocab.json",
               "{\"a\": 0, \"<|startoftext|>\": 1, \"<|endoftext|>\": 2, \"b</w>\": 3}");
    CHECK_ERR(medvlm_tokenizer_load(d, &t), MEDVLM_ERR_FORMAT,
              "line 2: the merge \"a a\" uses \"aa\", which is not in the vocabulary");
    write_text(d, "merges.txt", "#version: 0.2\n");
    write_text(d, "vocab.json", "{\"a\": 0, \"<|startoftext|>\": 1, \"<|endoftext|>\": 2}");
    CHECK_OK(medvlm_tokenizer_load(d, &t));
    if (t) { /* "b</w>" is no vocabulary token: unknown symbols become <|endoftext|> */
        int32_t ids[8];
        int n;
        CHECK_OK(medvlm_tokenizer_encode(t, "ab", ids, 8, &n));
        CHECK(n == 4 && ids[1] == 0 && ids[2] == 2, "unknown symbol -> unk (n %d id %d)", n,
              ids[2]);
    }
    medvlm_tokenizer_free(t);
    t = NULL;
    write_text(d, "tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": [");
    CHECK_ERR(medvlm_tokenizer_load(d, &t), MEDVLM_ERR_FORMAT, "tokenizer.json: malformed JSON");
    write_text(d, "tokenizer.json",
               "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a  b\"]}}");
    CHECK_ERR(medvlm_tokenizer_load(d, &t), MEDVLM_ERR_FORMAT, "model.merges[0]");
    write_text(d, "tokenizer.json",
               "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [[\"a\"]]}}");
    CHECK_ERR(medvlm_tokenizer_load(d, &t), MEDVLM_ERR_FORMAT, "model.merges[0]");
    write_text(d, "tokenizer.json",
               "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, "
               "\"merges\": [\"a b\", [\"ab\", \"c\"]]}}");
    CHECK_ERR(medvlm_tokenizer_load(d, &t), MEDVLM_ERR_FORMAT,
              "tokenizer.json: model.merges[1]: the merge \"ab c\" uses \"c\", which is not in "
              "the vocabulary");
    write_text(d, "tokenizer.json",
               "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}, \"merges\": []}}");
    CHECK_ERR(medvlm_tokenizer_load(d, &t), MEDVLM_ERR_UNSUPPORTED, "expected \"BPE\"");
    write_text(d, "tokenizer.json", "{\"model\": {\"vocab\": {\"a\": -1}, \"merges\": []}}");
    CHECK_ERR(medvlm_tokenizer_load(d, &t), MEDVLM_ERR_FORMAT, "token \"a\"");
    CHECK(t == NULL, "no tokenizer on failure");
    /* a special token only in added_tokens (found by fuzzing: its id was outside the size) */
    write_text(d, "tokenizer.json",
               "{\"model\": {\"vocab\": {\"a</w>\": 0, \"<|endoftext|>\": 1}, \"merges\": []},"
               " \"added_tokens\": [{\"id\": 5, \"content\": \"<|startoftext|>\"}]}");
    CHECK_OK(medvlm_tokenizer_load(d, &t));
    if (t) {
        int32_t ids[8];
        int n;
        CHECK_OK(medvlm_tokenizer_encode(t, "a b", ids, 8, &n));
        const char *s5 = medvlm_tokenizer_decode_token(t, 5);
        CHECK(medvlm_tokenizer_vocab_size(t) == 6 && n == 4 && ids[0] == 5 && ids[1] == 0 &&
                  ids[2] == 1 && s5 && !strcmp(s5, "<|startoftext|>"),
              "added-token bos: size %d n %d ids %d %d %d", medvlm_tokenizer_vocab_size(t), n,
              ids[0], ids[1], ids[2]);
    }
    medvlm_tokenizer_free(t);
    t = NULL;
    mv_free(d);
}

/* ---- the self-made vocabulary ---- */

static void test_basic(void)
{
    char *d = make_dir("basic");
    int vs = 0;
    CHECK_OK(medvlm_tokenizer_write_basic(d, &vs));
    CHECK(vs > 514 + 100, "basic vocab size %d", vs);
    char tj[4096], vj[4096], mt[4096];
    snprintf(tj, sizeof tj, "%s/tokenizer.json", d);
    snprintf(vj, sizeof vj, "%s/vocab.json", d);
    snprintf(mt, sizeof mt, "%s/merges.txt", d);
    struct medvlm_tokenizer *a = NULL, *b = NULL;
    CHECK_OK(medvlm_tokenizer_load_files(tj, NULL, NULL, &a));
    CHECK_OK(medvlm_tokenizer_load_files(NULL, vj, mt, &b));
    if (a && b) {
        CHECK(medvlm_tokenizer_vocab_size(a) == vs && medvlm_tokenizer_vocab_size(b) == vs,
              "sizes %d %d %d", vs, medvlm_tokenizer_vocab_size(a), medvlm_tokenizer_vocab_size(b));
        CHECK(medvlm_tokenizer_eos_id(a) == vs - 1 && medvlm_tokenizer_bos_id(a) == vs - 2,
              "specials last");
        int32_t ids[MEDVLM_CLIP_CONTEXT], ids2[MEDVLM_CLIP_CONTEXT];
        int n, n2;
        CHECK_OK(medvlm_tokenizer_encode(a, "histopathology slide of benign glands", ids, 77, &n));
        CHECK_OK(
            medvlm_tokenizer_encode(b, "histopathology slide of benign glands", ids2, 77, &n2));
        CHECK(n == n2 && !memcmp(ids, ids2, (size_t)n * 4), "basic: formats agree");
        CHECK(n < 10, "basic merges compress known words: %d ids", n);
        /* the BPE strings spell the words back */
        char joined[256] = "";
        for (int i = 1; i + 1 < n; i++) strcat(joined, medvlm_tokenizer_decode_token(a, ids[i]));
        CHECK(!strcmp(joined, "histopathology</w>slide</w>of</w>benign</w>glands</w>"),
              "decoded \"%s\"", joined);
        struct mv_rng r;
        mv_rng_seed(&r, 7);
        char text[2048];
        int bad = 0;
        for (int it = 0; it < 300; it++) {
            random_text(&r, text, sizeof text);
            CHECK_OK(medvlm_tokenizer_encode(a, text, ids, 77, &n));
            CHECK_OK(medvlm_tokenizer_encode(b, text, ids2, 77, &n2));
            bad += n != n2 || memcmp(ids, ids2, (size_t)n * 4);
            for (int k = 0; k < n; k++) bad += ids[k] < 0 || ids[k] >= vs;
        }
        CHECK(bad == 0, "basic property: %d bad", bad);
    }
    medvlm_tokenizer_free(a);
    medvlm_tokenizer_free(b);
    mv_free(d);
}

/* ---- the O(n log n) BPE equals the reference loop ---- */

static int compare_bpe_loops(const struct mv_bpe *b, const char *word, size_t n)
{
    int32_t *x = mv_malloc(n * sizeof *x), *y = mv_malloc(n * sizeof *y);
    mv_bpe_word_symbols(b, word, n, x);
    memcpy(y, x, n * sizeof *x);
    size_t nx = mv_bpe_merge_naive(b, x, n), ny = 0;
    int ok = mv_bpe_merge_heap(b, y, n, &ny) == MEDVLM_OK && nx == ny &&
             memcmp(x, y, nx * sizeof *x) == 0;
    mv_free(x);
    mv_free(y);
    return ok;
}

static void test_bpe_loops(void)
{
    struct mv_rng r;
    mv_rng_seed(&r, 99);
    char word[400];
    int bad = 0, runs = 0;
    /* the real merges: random letters, repeated words, bytes */
    static const char *parts[] = {"histo", "pathology",  "gland", "s",
                                  "ing",   "cribriform", "aa",    "e"};
    for (int it = 0; it < 400; it++, runs++) {
        size_t n = 0, len = 1 + mv_rng_below(&r, 300);
        while (n < len) {
            uint64_t k = mv_rng_below(&r, 3);
            if (k == 0) {
                const char *w = parts[mv_rng_below(&r, MV_ARRAY_LEN(parts))];
                size_t l = strlen(w);
                if (n + l > len) l = len - n;
                memcpy(word + n, w, l);
                n += l;
            } else {
                word[n++] =
                    k == 1 ? (char)('a' + mv_rng_below(&r, 26)) : (char)mv_rng_below(&r, 256);
            }
        }
        bad += !compare_bpe_loops(mv_tokenizer_bpe(tok_vm), word, n);
    }
    /* random merge tables over {a, b, c}, including orders no BPE training would produce */
    for (int table = 0; table < 40; table++) {
        char merges[8192], vocab[16384];
        size_t m = (size_t)snprintf(merges, sizeof merges, "#version: 0.2\n");
        /* every merge's parts and result are tokens (a later duplicate key wins) */
        size_t v = (size_t)snprintf(vocab, sizeof vocab,
                                    "{\"a\": 0, \"b\": 3, \"c\": 4, \"a</w>\": 5, "
                                    "\"b</w>\": 6, \"c</w>\": 7, \"<|startoftext|>\": 1, "
                                    "\"<|endoftext|>\": 2");
        int count = 5 + (int)mv_rng_below(&r, 60);
        for (int i = 0; i < count; i++) {
            char l[8], rr[8];
            int nl = 1 + (int)mv_rng_below(&r, 3), nr = 1 + (int)mv_rng_below(&r, 3);
            for (int k = 0; k < nl; k++) l[k] = (char)('a' + mv_rng_below(&r, 3));
            for (int k = 0; k < nr; k++) rr[k] = (char)('a' + mv_rng_below(&r, 3));
            l[nl] = rr[nr] = '\0';
            const char *end = mv_rng_below(&r, 3) == 0 ? "</w>" : "";
            m += (size_t)snprintf(merges + m, sizeof merges - m, "%s %s%s\n", l, rr, end);
            v += (size_t)snprintf(vocab + v, sizeof vocab - v,
                                  ", \"%s\": %d, \"%s%s\": %d, \"%s%s%s\": %d", l, 10 + 3 * i, rr,
                                  end, 11 + 3 * i, l, rr, end, 12 + 3 * i);
        }
        snprintf(vocab + v, sizeof vocab - v, "}");
        struct mv_bpe_files f;
        mv_bpe_files_init(&f);
        struct mv_bpe *b = NULL;
        CHECK_OK(mv_bpe_parse_vocab(&f, "v", vocab, strlen(vocab)));
        CHECK_OK(mv_bpe_parse_merges(&f, "m", merges, m));
        CHECK_OK(mv_bpe_build(&f, "random", &b));
        for (int it = 0; b && it < 100; it++, runs++) {
            size_t n = 1 + mv_rng_below(&r, 120);
            for (size_t k = 0; k < n; k++) word[k] = (char)('a' + mv_rng_below(&r, 3));
            bad += !compare_bpe_loops(b, word, n);
        }
        mv_bpe_free(b);
        mv_bpe_files_free(&f);
    }
    CHECK(bad == 0, "heap BPE differs from the reference loop on %d of %d words", bad, runs);
}

/* ---- byte table and unicode helpers ---- */

static void test_tables(void)
{
    int ok = 1;
    for (int b = 0; b < 256; b++) ok &= mv_unicode_to_byte(mv_byte_to_unicode((uint8_t)b)) == b;
    CHECK(ok, "byte table round trip");
    CHECK(mv_byte_to_unicode(' ') == 0x120 && mv_byte_to_unicode(0) == 0x100 &&
              mv_byte_to_unicode(0xAD) == 0x143 && mv_byte_to_unicode('a') == 'a',
          "GPT-2 byte table");
    CHECK(mv_uc_is_space(0x2028) && mv_uc_is_space(0x1F) && !mv_uc_is_space(0x200B), "isspace");
    CHECK(mv_uc_is_letter(0x4E2D) && !mv_uc_is_letter(0x301) && mv_uc_is_number(0x2160), "classes");
    CHECK(mv_uc_category(0x1FAE8) == 0 && mv_uc_category(0x31350) == 0 &&
              mv_uc_category(0x1FAE0) != 0,
          "Unicode 14 view");
}

/* A NUL inside a prompt: Hugging Face's (slow, transformers 4.39) CLIPTokenizer's text cleaning
 * drops it and keeps the rest ("desc of \0 NC" = "desc of  NC" = "desc of NC"); before the
 * length-taking entry points, the C string ended there and gave the ids of "desc of ". */
static void test_nul(const struct medvlm_tokenizer *tok)
{
    static const char with_nul[] = "desc of \0 NC";
    static const int32_t want[] = {49406, 561, 3219, 539, 4911, 49407}; /* "desc of NC" */
    int32_t ids[16], ref[16];
    int n = 0, nr = 0, full = 0;
    CHECK_OK(medvlm_tokenizer_encode_n(tok, with_nul, sizeof with_nul - 1, ids, 16, &n));
    CHECK_OK(medvlm_tokenizer_encode(tok, "desc of NC", ref, 16, &nr));
    CHECK(n == 6 && nr == 6 && !memcmp(ids, want, sizeof want) && !memcmp(ref, want, sizeof want),
          "NUL mid-prompt: %d ids (%d %d %d %d ...), want those of \"desc of NC\"", n, ids[0],
          ids[1], ids[2], ids[3]);
    CHECK_OK(medvlm_tokenizer_count_n(tok, with_nul, sizeof with_nul - 1, &full));
    CHECK(full == 6, "count_n %d", full);
    CHECK_OK(medvlm_tokenizer_encode_n(tok, "a\0b", 3, ids, 16, &n));
    CHECK_OK(medvlm_tokenizer_encode(tok, "ab", ref, 16, &nr));
    CHECK(n == nr && !memcmp(ids, ref, (size_t)n * sizeof *ids), "\"a\\0b\" = \"ab\"");
    /* the batch form with lengths, padded to the longest */
    const char *texts[2] = {with_nul, "desc of NC"};
    const size_t lens[2] = {sizeof with_nul - 1, 10};
    int32_t b[2 * 16], mask[2 * 16];
    int len = 0;
    CHECK_OK(medvlm_tokenizer_encode_batch_n(tok, texts, lens, 2, 16, MEDVLM_PAD_LONGEST, b, mask,
                                             &len));
    CHECK(len == 6 && !memcmp(b, want, sizeof want) && !memcmp(b + 6, want, sizeof want),
          "batch_n with a NUL: width %d", len);
}

int main(void)
{
    const char *golden = test_golden_dir();
    snprintf(tmp_root, sizeof tmp_root, "/tmp/medvlm-test-tok-XXXXXX");
    if (!mkdtemp(tmp_root)) {
        fprintf(stderr, "mkdtemp failed\n");
        return 1;
    }
    load_prompts(golden);
    test_tables();
    test_golden_formats(golden);
    if (tok_vm && tok_tj && tok_pairs) {
        test_semantics(tok_vm);
        test_semantics(tok_tj);
        test_property();
        test_threads();
        test_bpe_loops();
    }
    if (tok_tj) test_nul(tok_tj);
    test_bad_files();
    test_basic();
    medvlm_tokenizer_free(tok_vm);
    medvlm_tokenizer_free(tok_tj);
    medvlm_tokenizer_free(tok_pairs);
    cJSON_Delete(prompts_json);
    mv_free(prompts);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_root);
    return check_summary();
}

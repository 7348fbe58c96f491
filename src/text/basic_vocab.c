/*
 * basic_vocab.c - medvlm_tokenizer_write_basic: a small CLIP-style BPE tokenizer made here,
 * so that `medvlm init` can create a working model folder without any download.
 *
 * Layout of the ids (as CLIP's): the 256 byte symbols in bytes_to_unicode order, the same 256
 * with "</w>", one id per merge result (first occurrence), then <|startoftext|> and
 * <|endoftext|> last. The merges are learnt by plain BPE training on the built-in word list
 * below: repeatedly merge the most frequent adjacent pair (ties: the smaller pair in byte
 * order), stopping when no pair occurs twice.
 */
#include "text.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_SYMS   4096
#define MAX_MERGES 2000
#define MAX_WORD   40

static const char corpus[] =
    "a an the of and in on with without to for is are was by from as at or this that image "
    "images photo slide slides tissue tissues showing shows presence present cells cell "
    "nuclei nucleus gland glands glandular benign malignant cancer cancerous non-cancerous "
    "tumor tumour tumors carcinoma adenocarcinoma gleason grade grades pattern patterns "
    "prostate prostatic breast colon colorectal lung liver kidney skin lymph node nodes "
    "lymphocytes lymphocyte stroma stromal epithelium epithelial mucosa muscle smooth fat "
    "adipose necrosis necrotic debris mucus inflammation inflammatory normal abnormal "
    "histopathology histology pathology pathological microscopy microscope stained staining "
    "stain hematoxylin eosin immunohistochemistry magnification atrophic dense cribriform "
    "ill-formed fused papillary isolated nest nests lumen roseting poorly well moderately "
    "differentiated invasive infiltrating ductal lobular mitotic mitosis figure figures "
    "high low grade small large round oval irregular pleomorphic hyperchromatic nucleoli "
    "cytoplasm eosinophilic basophilic clear vacuolated fibrous fibrosis collagen vessel "
    "vessels blood red white background artifact region regions area areas patch patches "
    "class classes label labels a photo of a histopathology image showing the presence of "
    "benign glands atrophic dense glands cribriform glands fused glands isolated cells "
    "tissue on image tissue showing cells with nuclei and cytoplasm of the tissue in the "
    "slide section sections biopsy biopsies specimen sample samples patient patients case "
    "cases study studies model models zero shot few shot learning adapter adapters";

struct trainer {
    char *sym[MAX_SYMS]; /* symbol strings (owned) */
    int n_sym;
    int *words[512]; /* each word: symbol indices, -1 terminated */
    int n_words;
    int merge_l[MAX_MERGES], merge_r[MAX_MERGES];
    int n_merges;
};

static int sym_index(struct trainer *t, const char *s)
{
    for (int i = 0; i < t->n_sym; i++)
        if (!strcmp(t->sym[i], s)) return i;
    if (t->n_sym == MAX_SYMS) return -1;
    t->sym[t->n_sym] = mv_strdup(s);
    return t->sym[t->n_sym] ? t->n_sym++ : -1;
}

/* A symbol's string for a byte (and the "</w>" form). */
static void byte_sym(unsigned b, bool end, char *out)
{
    int n = mv_utf8_encode(mv_byte_to_unicode((uint8_t)b), out);
    strcpy(out + n, end ? "</w>" : "");
}

static enum medvlm_status train(struct trainer *t)
{
    const char *p = corpus;
    while (*p) {
        while (*p == ' ') p++;
        size_t n = strcspn(p, " ");
        if (!n) break;
        if (n > MAX_WORD || t->n_words == (int)MV_ARRAY_LEN(t->words))
            return mv_err(MEDVLM_ERR_INTERNAL, "basic vocabulary: corpus too large");
        int *w = mv_malloc((n + 1) * sizeof *w);
        if (!w) return MEDVLM_ERR_NOMEM;
        t->words[t->n_words++] = w;
        for (size_t i = 0; i < n; i++) {
            char s[16];
            byte_sym((unsigned char)p[i], i + 1 == n, s);
            if ((w[i] = sym_index(t, s)) < 0) return MEDVLM_ERR_NOMEM;
        }
        w[n] = -1;
        p += n;
    }
    while (t->n_merges < MAX_MERGES) {
        int best_l = -1, best_r = -1, best_c = 1;
        /* count every distinct pair (quadratic but tiny) */
        for (int a = 0; a < t->n_words; a++) {
            for (int i = 0; t->words[a][i] >= 0 && t->words[a][i + 1] >= 0; i++) {
                int l = t->words[a][i], r = t->words[a][i + 1], c = 0;
                for (int b = 0; b < t->n_words; b++)
                    for (int j = 0; t->words[b][j] >= 0 && t->words[b][j + 1] >= 0; j++)
                        c += t->words[b][j] == l && t->words[b][j + 1] == r;
                int cmp = 0;
                if (c == best_c && best_l >= 0) {
                    cmp = strcmp(t->sym[l], t->sym[best_l]);
                    if (!cmp) cmp = strcmp(t->sym[r], t->sym[best_r]);
                }
                if (c > best_c || (c == best_c && best_l >= 0 && cmp < 0)) {
                    best_c = c;
                    best_l = l;
                    best_r = r;
                }
            }
        }
        if (best_l < 0) break;
        char joined[256];
        snprintf(joined, sizeof joined, "%s%s", t->sym[best_l], t->sym[best_r]);
        int m = sym_index(t, joined);
        if (m < 0) return MEDVLM_ERR_NOMEM;
        t->merge_l[t->n_merges] = best_l;
        t->merge_r[t->n_merges] = best_r;
        t->n_merges++;
        for (int a = 0; a < t->n_words; a++) {
            int *w = t->words[a], o = 0, i = 0;
            while (w[i] >= 0) {
                if (w[i + 1] >= 0 && w[i] == best_l && w[i + 1] == best_r) {
                    w[o++] = m;
                    i += 2;
                } else {
                    w[o++] = w[i++];
                }
            }
            w[o] = -1;
        }
    }
    return MEDVLM_OK;
}

static enum medvlm_status save_json(const char *dir, const char *name, cJSON *root)
{
    enum medvlm_status st = MEDVLM_OK;
    char *text = root ? cJSON_PrintUnformatted(root) : NULL;
    char *path = mv_path_join(dir, name);
    if (!text || !path)
        st = mv_err(MEDVLM_ERR_NOMEM, "%s/%s: out of memory", dir, name);
    else
        st = mv_write_file_atomic(path, text, strlen(text));
    cJSON_free(text);
    mv_free(path);
    return st;
}

static cJSON *added_token(const char *content, int id)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", id);
    cJSON_AddStringToObject(o, "content", content);
    cJSON_AddBoolToObject(o, "single_word", 0);
    cJSON_AddBoolToObject(o, "lstrip", 0);
    cJSON_AddBoolToObject(o, "rstrip", 0);
    cJSON_AddBoolToObject(o, "normalized", 1);
    cJSON_AddBoolToObject(o, "special", 1);
    return o;
}

static enum medvlm_status write_files(const char *dir, struct trainer *t, int *vocab_size)
{
    enum medvlm_status st = MEDVLM_OK;
    cJSON *vocab = cJSON_CreateObject(), *tj = cJSON_CreateObject(), *cfg = cJSON_CreateObject();
    cJSON *stm = cJSON_CreateObject();
    char *merges = NULL;
    if (!vocab || !tj || !cfg || !stm) goto nomem;
    int id = 0;
    for (int pass = 0; pass < 2; pass++) {
        /* bytes_to_unicode order: printable bytes first, then the others */
        for (int printable = 1; printable >= 0; printable--)
            for (unsigned b = 0; b < 256; b++) {
                if ((mv_byte_to_unicode((uint8_t)b) == b) != printable) continue;
                char s[16];
                byte_sym(b, pass == 1, s);
                if (!cJSON_AddNumberToObject(vocab, s, id++)) goto nomem;
            }
    }
    size_t cap = 64, len = 0;
    for (int i = 0; i < t->n_merges; i++)
        cap += strlen(t->sym[t->merge_l[i]]) + strlen(t->sym[t->merge_r[i]]) + 2;
    if (!(merges = mv_malloc(cap))) goto nomem;
    len += (size_t)snprintf(merges, cap, "#version: 0.2\n");
    cJSON *mlist = cJSON_CreateArray();
    if (!mlist) goto nomem;
    for (int i = 0; i < t->n_merges; i++) {
        const char *l = t->sym[t->merge_l[i]], *r = t->sym[t->merge_r[i]];
        len += (size_t)snprintf(merges + len, cap - len, "%s %s\n", l, r);
        char pair[256], joined[256];
        snprintf(pair, sizeof pair, "%s %s", l, r);
        snprintf(joined, sizeof joined, "%s%s", l, r);
        cJSON_AddItemToArray(mlist, cJSON_CreateString(pair));
        if (!cJSON_GetObjectItemCaseSensitive(vocab, joined))
            cJSON_AddNumberToObject(vocab, joined, id++);
    }
    int bos = id++, eos = id++;
    cJSON_AddNumberToObject(vocab, "<|startoftext|>", bos);
    cJSON_AddNumberToObject(vocab, "<|endoftext|>", eos);

    /* tokenizer.json: the tokenizers BPE layout CLIP ships */
    cJSON_AddStringToObject(tj, "version", "1.0");
    cJSON *added = cJSON_AddArrayToObject(tj, "added_tokens");
    cJSON_AddItemToArray(added, added_token("<|startoftext|>", bos));
    cJSON_AddItemToArray(added, added_token("<|endoftext|>", eos));
    cJSON *model = cJSON_AddObjectToObject(tj, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    cJSON_AddStringToObject(model, "unk_token", "<|endoftext|>");
    cJSON_AddStringToObject(model, "continuing_subword_prefix", "");
    cJSON_AddStringToObject(model, "end_of_word_suffix", "</w>");
    cJSON_AddBoolToObject(model, "fuse_unk", 0);
    cJSON_AddItemReferenceToObject(model, "vocab", vocab);
    cJSON_AddItemToObject(model, "merges", mlist);

    cJSON_AddBoolToObject(cfg, "do_lower_case", 1);
    cJSON_AddStringToObject(cfg, "bos_token", "<|startoftext|>");
    cJSON_AddStringToObject(cfg, "eos_token", "<|endoftext|>");
    cJSON_AddStringToObject(cfg, "pad_token", "<|endoftext|>");
    cJSON_AddStringToObject(cfg, "unk_token", "<|endoftext|>");
    cJSON_AddNumberToObject(cfg, "model_max_length", MEDVLM_CLIP_CONTEXT);
    cJSON_AddStringToObject(cfg, "tokenizer_class", "CLIPTokenizer");
    cJSON_AddStringToObject(stm, "bos_token", "<|startoftext|>");
    cJSON_AddStringToObject(stm, "eos_token", "<|endoftext|>");
    cJSON_AddStringToObject(stm, "pad_token", "<|endoftext|>");
    cJSON_AddStringToObject(stm, "unk_token", "<|endoftext|>");

    char *mpath = mv_path_join(dir, "merges.txt");
    if (!mpath) goto nomem;
    st = mv_write_file_atomic(mpath, merges, len);
    mv_free(mpath);
    if (!st) st = save_json(dir, "vocab.json", vocab);
    if (!st) st = save_json(dir, "tokenizer.json", tj);
    if (!st) st = save_json(dir, "tokenizer_config.json", cfg);
    if (!st) st = save_json(dir, "special_tokens_map.json", stm);
    if (!st && vocab_size) *vocab_size = id;
    goto done;
nomem:
    st = mv_err(MEDVLM_ERR_NOMEM, "basic tokenizer: out of memory");
done:
    cJSON_Delete(tj);
    cJSON_Delete(vocab);
    cJSON_Delete(cfg);
    cJSON_Delete(stm);
    mv_free(merges);
    return st;
}

enum medvlm_status medvlm_tokenizer_write_basic(const char *dir, int *vocab_size)
{
    if (!dir) return mv_err(MEDVLM_ERR_ARG, "medvlm_tokenizer_write_basic: dir is NULL");
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return mv_err(MEDVLM_ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
    if (!mv_is_dir(dir)) return mv_err(MEDVLM_ERR_IO, "%s: not a directory", dir);
    struct trainer *t = mv_calloc(1, sizeof *t);
    if (!t) return MEDVLM_ERR_NOMEM;
    enum medvlm_status st = train(t);
    if (!st) st = write_files(dir, t, vocab_size);
    for (int i = 0; i < t->n_sym; i++) mv_free(t->sym[i]);
    for (int i = 0; i < t->n_words; i++) mv_free(t->words[i]);
    mv_free(t);
    return st;
}

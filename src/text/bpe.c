/*
 * bpe.c - byte-level BPE as the slow CLIPTokenizer runs it.
 *
 * Every string that can appear during BPE (the 256 byte symbols, their "</w>" forms, both
 * sides and the result of every merge, every vocabulary token) is interned once as a symbol
 * number, so a word is an int array and a merge is a lookup of the pair (left, right) ->
 * (rank, merged symbol). A symbol that is not in vocab.json maps to the unknown id.
 *
 * BPE of a word (its bytes b0..bn-1 as byte symbols, the last one with "</w>"): repeatedly take
 * the adjacent pair of lowest rank and merge every occurrence of it, left to right without
 * overlap; stop when no adjacent pair has a rank or one symbol is left.
 *
 * The cache (pre-token bytes -> ids) is shared by all threads behind a mutex; the tables are
 * read-only after mv_bpe_build.
 */
#include "text.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define CACHE_MAX_ENTRIES 65536
#define CACHE_MAX_PIECE   128 /* longer pre-tokens are not cached */
#define HEAP_THRESHOLD    48  /* longer words use the O(n log n) BPE */

struct sym {
    const char *s;
    uint32_t len;
    int32_t vocab_id; /* -1: not in the vocabulary */
};

struct merge_slot {
    uint64_t key; /* (left << 32 | right) + 1; 0 = empty */
    int32_t rank;
    int32_t result;
};

struct cache_entry {
    uint64_t hash;
    uint32_t len, n_ids;
    const char *piece;
    const int32_t *ids;
};

struct mv_bpe {
    struct mv_arena arena;
    struct sym *syms;
    int n_syms, cap_syms;
    int32_t *sym_table; /* open addressing over symbol numbers, -1 empty */
    size_t sym_mask;
    struct merge_slot *merges;
    size_t merge_mask;
    int n_merges;
    int32_t byte_sym[256], byte_end_sym[256];
    const char **id_string; /* (vocab_size) */
    int vocab_size;
    /* cache */
    pthread_mutex_t lock;
    struct mv_arena cache_arena;
    struct cache_entry *cache;
    size_t cache_mask, cache_count;
};

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

/* ---- byte-to-unicode (GPT-2) ---- */

static bool byte_is_printable(unsigned b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

uint32_t mv_byte_to_unicode(uint8_t b)
{
    if (byte_is_printable(b)) return b;
    /* the other 68 bytes, in increasing order, become U+0100, U+0101, ... */
    uint32_t k = 0;
    for (unsigned x = 0; x < b; x++) k += !byte_is_printable(x);
    return 0x100 + k;
}

int mv_unicode_to_byte(uint32_t cp)
{
    if (cp < 0x100) return byte_is_printable(cp) ? (int)cp : -1;
    uint32_t k = cp - 0x100, seen = 0;
    for (unsigned x = 0; x < 256; x++)
        if (!byte_is_printable(x) && seen++ == k) return (int)x;
    return -1;
}

/* ---- symbols ---- */

static int32_t sym_find(const struct mv_bpe *b, const char *s, size_t n)
{
    size_t i = (size_t)hash_bytes(s, n) & b->sym_mask;
    for (;;) {
        int32_t k = b->sym_table[i];
        if (k < 0) return -1;
        const struct sym *y = &b->syms[k];
        if (y->len == n && memcmp(y->s, s, n) == 0) return k;
        i = (i + 1) & b->sym_mask;
    }
}

static enum medvlm_status sym_grow_table(struct mv_bpe *b)
{
    size_t cap = (b->sym_mask + 1) * 2;
    int32_t *t = mv_malloc(cap * sizeof *t);
    if (!t) return MEDVLM_ERR_NOMEM;
    memset(t, 0xff, cap * sizeof *t);
    for (int k = 0; k < b->n_syms; k++) {
        size_t i = (size_t)hash_bytes(b->syms[k].s, b->syms[k].len) & (cap - 1);
        while (t[i] >= 0) i = (i + 1) & (cap - 1);
        t[i] = k;
    }
    mv_free(b->sym_table);
    b->sym_table = t;
    b->sym_mask = cap - 1;
    return MEDVLM_OK;
}

/* The symbol number of s[0..n), added if new. */
static enum medvlm_status sym_intern(struct mv_bpe *b, const char *s, size_t n, int32_t *out)
{
    int32_t k = sym_find(b, s, n);
    if (k >= 0) {
        *out = k;
        return MEDVLM_OK;
    }
    if (n > UINT32_MAX || b->n_syms >= INT32_MAX / 2)
        return mv_err(MEDVLM_ERR_LIMIT, "tokenizer: too many or too long symbols");
    enum medvlm_status st;
    if ((size_t)b->n_syms * 2 >= b->sym_mask + 1 && (st = sym_grow_table(b))) return st;
    if (b->n_syms == b->cap_syms) {
        int cap = b->cap_syms ? b->cap_syms * 2 : 4096;
        struct sym *y = mv_realloc(b->syms, (size_t)cap * sizeof *y);
        if (!y) return MEDVLM_ERR_NOMEM;
        b->syms = y;
        b->cap_syms = cap;
    }
    char *copy = mv_arena_alloc(&b->arena, n + 1);
    if (!copy) return MEDVLM_ERR_NOMEM;
    memcpy(copy, s, n);
    copy[n] = '\0';
    k = b->n_syms++;
    b->syms[k] = (struct sym){copy, (uint32_t)n, -1};
    size_t i = (size_t)hash_bytes(s, n) & b->sym_mask;
    while (b->sym_table[i] >= 0) i = (i + 1) & b->sym_mask;
    b->sym_table[i] = k;
    *out = k;
    return MEDVLM_OK;
}

/* ---- merges ---- */

static const struct merge_slot *merge_find(const struct mv_bpe *b, int32_t l, int32_t r)
{
    uint64_t key = (((uint64_t)(uint32_t)l << 32) | (uint32_t)r) + 1;
    size_t i = (size_t)mix64(key) & b->merge_mask;
    for (;;) {
        const struct merge_slot *m = &b->merges[i];
        if (m->key == 0) return NULL;
        if (m->key == key) return m;
        i = (i + 1) & b->merge_mask;
    }
}

/* A later duplicate of a pair takes the later rank, as dict(zip(merges, range(n))) does. */
static void merge_put(struct mv_bpe *b, int32_t l, int32_t r, int32_t rank, int32_t result)
{
    uint64_t key = (((uint64_t)(uint32_t)l << 32) | (uint32_t)r) + 1;
    size_t i = (size_t)mix64(key) & b->merge_mask;
    while (b->merges[i].key != 0 && b->merges[i].key != key) i = (i + 1) & b->merge_mask;
    b->merges[i] = (struct merge_slot){key, rank, result};
}

/* ---- build ---- */

enum medvlm_status mv_bpe_build(const struct mv_bpe_files *f, const char *what, struct mv_bpe **out)
{
    *out = NULL;
    enum medvlm_status st = MEDVLM_OK;
    struct mv_bpe *b = mv_calloc(1, sizeof *b);
    if (!b) return MEDVLM_ERR_NOMEM;
    mv_arena_init(&b->arena, 256 * 1024);
    mv_arena_init(&b->cache_arena, 256 * 1024);
    pthread_mutex_init(&b->lock, NULL);
    /* room for every symbol the files can name at load <= 1/2: no rehash while building */
    size_t expect = 512 + (size_t)f->n_vocab + 3 * (size_t)f->n_merges, tcap = 4096;
    while (tcap < 2 * expect) tcap *= 2;
    b->sym_mask = tcap - 1;
    b->sym_table = mv_malloc((b->sym_mask + 1) * sizeof *b->sym_table);
    if (!b->sym_table) {
        st = MEDVLM_ERR_NOMEM;
        goto fail;
    }
    memset(b->sym_table, 0xff, (b->sym_mask + 1) * sizeof *b->sym_table);

    /* byte symbols */
    for (int x = 0; x < 256; x++) {
        char s[8];
        int n = mv_utf8_encode(mv_byte_to_unicode((uint8_t)x), s);
        memcpy(s + n, "</w>", 4);
        if ((st = sym_intern(b, s, (size_t)n, &b->byte_sym[x])) ||
            (st = sym_intern(b, s, (size_t)n + 4, &b->byte_end_sym[x])))
            goto fail;
    }
    /* vocabulary: a later duplicate key wins, as json.load does */
    int32_t max_id = -1;
    for (int i = 0; i < f->n_vocab; i++) {
        int32_t k;
        if ((st = sym_intern(b, f->vocab_tok[i], strlen(f->vocab_tok[i]), &k))) goto fail;
        b->syms[k].vocab_id = f->vocab_id[i];
        if (f->vocab_id[i] > max_id) max_id = f->vocab_id[i];
    }
    b->vocab_size = max_id + 1;
    b->id_string = mv_calloc((size_t)b->vocab_size, sizeof *b->id_string);
    if (!b->id_string) {
        st = MEDVLM_ERR_NOMEM;
        goto fail;
    }
    for (int k = 0; k < b->n_syms; k++)
        if (b->syms[k].vocab_id >= 0) b->id_string[b->syms[k].vocab_id] = b->syms[k].s;
    /* merges */
    size_t cap = 1024;
    while (cap < (size_t)f->n_merges * 2 + 2) cap *= 2;
    b->merges = mv_calloc(cap, sizeof *b->merges);
    if (!b->merges) {
        st = MEDVLM_ERR_NOMEM;
        goto fail;
    }
    b->merge_mask = cap - 1;
    b->n_merges = f->n_merges;
    for (int i = 0; i < f->n_merges; i++) {
        const char *l = f->merge_a[i], *r = f->merge_b[i];
        size_t nl = strlen(l), nr = strlen(r), nlr;
        if (!mv_add_ok(nl, nr, &nlr) || nlr > 4096) {
            st = mv_err(MEDVLM_ERR_LIMIT, "%s: merge %d is longer than 4096 bytes", what, i);
            goto fail;
        }
        char buf[4097];
        memcpy(buf, l, nl);
        memcpy(buf + nl, r, nr);
        int32_t kl, kr, klr;
        if ((st = sym_intern(b, l, nl, &kl)) || (st = sym_intern(b, r, nr, &kr)) ||
            (st = sym_intern(b, buf, nlr, &klr)))
            goto fail;
        /* Hugging Face's tokenizers refuses a merge whose parts or result are not tokens
         * (MergeTokenOutOfVocabulary); kept, it would give <|endoftext|> mid-sequence */
        int32_t missing = b->syms[kl].vocab_id < 0 ? kl : b->syms[kr].vocab_id < 0 ? kr : klr;
        if (b->syms[missing].vocab_id < 0) {
            char where[64];
            if (f->merges_path)
                snprintf(where, sizeof where, "line %ld", f->merge_line[i]);
            else
                snprintf(where, sizeof where, "model.merges[%d]", i);
            st = mv_err(MEDVLM_ERR_FORMAT,
                        "%s: %s: the merge \"%.100s %.100s\" uses \"%.*s\", which is not in "
                        "the vocabulary%s%s (every merge's two parts and their concatenation "
                        "must be tokens, as Hugging Face's tokenizers requires)",
                        f->merges_path ? f->merges_path : what, where, l, r,
                        (int)MV_MIN(b->syms[missing].len, 200u), b->syms[missing].s,
                        f->merges_path ? " of " : "", f->merges_path ? what : "");
            goto fail;
        }
        merge_put(b, kl, kr, i, klr);
    }
    *out = b;
    return MEDVLM_OK;
fail:
    mv_bpe_free(b);
    return st;
}

void mv_bpe_free(struct mv_bpe *b)
{
    if (!b) return;
    pthread_mutex_destroy(&b->lock);
    mv_arena_free(&b->arena);
    mv_arena_free(&b->cache_arena);
    mv_free(b->syms);
    mv_free(b->sym_table);
    mv_free(b->merges);
    mv_free(b->id_string);
    mv_free(b->cache);
    mv_free(b);
}

int32_t mv_bpe_vocab_id(const struct mv_bpe *b, const char *tok)
{
    int32_t k = sym_find(b, tok, strlen(tok));
    return k < 0 ? -1 : b->syms[k].vocab_id;
}

int mv_bpe_vocab_size(const struct mv_bpe *b)
{
    return b->vocab_size;
}

const char *mv_bpe_id_string(const struct mv_bpe *b, int32_t id)
{
    return id >= 0 && id < b->vocab_size ? b->id_string[id] : NULL;
}

int mv_bpe_merge_count(const struct mv_bpe *b)
{
    return b->n_merges;
}

/* ---- cache ---- */

/* Appends the cached ids of piece to out; false when absent. Called with the lock held. */
static bool cache_get(struct mv_bpe *b, uint64_t h, const char *piece, size_t n,
                      struct mv_i32buf *out, enum medvlm_status *st)
{
    if (!b->cache) return false;
    size_t i = (size_t)h & b->cache_mask;
    for (;;) {
        const struct cache_entry *e = &b->cache[i];
        if (!e->piece) return false;
        if (e->hash == h && e->len == n && memcmp(e->piece, piece, n) == 0) {
            for (uint32_t k = 0; k < e->n_ids && !*st; k++) *st = mv_i32_push(out, e->ids[k]);
            return true;
        }
        i = (i + 1) & b->cache_mask;
    }
}

/* Grow the table (load <= 1/2) up to 2 * CACHE_MAX_ENTRIES slots. Lock held. */
static bool cache_grow(struct mv_bpe *b)
{
    size_t cap = b->cache ? (b->cache_mask + 1) * 2 : 1024;
    struct cache_entry *t = mv_calloc(cap, sizeof *t);
    if (!t) {
        mv_err_clear();
        return false;
    }
    for (size_t i = 0; b->cache && i <= b->cache_mask; i++) {
        if (!b->cache[i].piece) continue;
        size_t j = (size_t)b->cache[i].hash & (cap - 1);
        while (t[j].piece) j = (j + 1) & (cap - 1);
        t[j] = b->cache[i];
    }
    mv_free(b->cache);
    b->cache = t;
    b->cache_mask = cap - 1;
    return true;
}

/* Best effort: a failed allocation only means the word is not cached. Lock held. */
static void cache_put(struct mv_bpe *b, uint64_t h, const char *piece, size_t n, const int32_t *ids,
                      size_t n_ids)
{
    if (b->cache_count >= CACHE_MAX_ENTRIES) { /* full: start over */
        memset(b->cache, 0, (b->cache_mask + 1) * sizeof *b->cache);
        mv_arena_free(&b->cache_arena);
        b->cache_count = 0;
    }
    if ((!b->cache || (b->cache_count + 1) * 2 > b->cache_mask + 1) && !cache_grow(b)) return;
    char *p = mv_arena_alloc(&b->cache_arena, n + 1);
    int32_t *v = mv_arena_alloc(&b->cache_arena, n_ids * sizeof *v + 1);
    if (!p || !v) {
        mv_err_clear();
        return;
    }
    memcpy(p, piece, n);
    memcpy(v, ids, n_ids * sizeof *v);
    size_t i = (size_t)h & b->cache_mask;
    while (b->cache[i].piece) i = (i + 1) & b->cache_mask;
    b->cache[i] = (struct cache_entry){h, (uint32_t)n, (uint32_t)n_ids, p, v};
    b->cache_count++;
}

/* ---- BPE ---- */

void mv_bpe_word_symbols(const struct mv_bpe *b, const char *piece, size_t n, int32_t *w)
{
    for (size_t i = 0; i + 1 < n; i++) w[i] = b->byte_sym[(unsigned char)piece[i]];
    w[n - 1] = b->byte_end_sym[(unsigned char)piece[n - 1]];
}

size_t mv_bpe_merge_naive(const struct mv_bpe *b, int32_t *w, size_t len)
{
    while (len > 1) {
        int32_t best = INT32_MAX, merged = -1, left = -1, right = -1;
        for (size_t i = 0; i + 1 < len; i++) {
            const struct merge_slot *m = merge_find(b, w[i], w[i + 1]);
            if (m && m->rank < best) {
                best = m->rank;
                merged = m->result;
                left = w[i];
                right = w[i + 1];
            }
        }
        if (merged < 0) break;
        size_t o = 0;
        for (size_t i = 0; i < len;) {
            if (i + 1 < len && w[i] == left && w[i + 1] == right) {
                w[o++] = merged;
                i += 2;
            } else {
                w[o++] = w[i++];
            }
        }
        len = o;
    }
    return len;
}

/* ---- the same BPE in O(n log n) for long words ----
 * Symbols form a linked list over their original positions; a min-heap holds candidate pairs
 * keyed (rank, position of the left symbol). All entries of the lowest rank (one pair) are
 * merged in position order, which is the naive loop's left-to-right pass; pairs created by
 * those merges are pushed only after the whole batch, so that even a merge table whose new
 * pairs rank below the pair being merged behaves as the naive loop. Entries are validated
 * when popped (the pair may have been consumed). */

struct heap_entry {
    int32_t rank;
    uint32_t pos;
    int32_t left, right; /* the symbols the entry was made for */
};

static bool heap_less(const struct heap_entry *a, const struct heap_entry *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(struct heap_entry *h, size_t *n, struct heap_entry e)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&e, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static struct heap_entry heap_pop(struct heap_entry *h, size_t *n)
{
    struct heap_entry top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && heap_less(&h[c + 1], &h[c])) c++;
        if (!heap_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

enum medvlm_status mv_bpe_merge_heap(const struct mv_bpe *b, int32_t *w, size_t n, size_t *out_n)
{
    /* each merge removes one symbol and pushes at most 2 entries: n + 2n entries at most */
    size_t cap, bytes;
    if (n > UINT32_MAX / 4 || !mv_mul_ok(n, 3, &cap) ||
        !mv_mul_ok(cap, sizeof(struct heap_entry), &bytes))
        return mv_err(MEDVLM_ERR_LIMIT, "BPE: word of %zu bytes is too long", n);
    struct heap_entry *heap = mv_malloc(bytes);
    int32_t *next = mv_malloc(n * sizeof *next), *prev = mv_malloc(n * sizeof *prev);
    uint32_t *touched = mv_malloc(n * sizeof *touched);
    if (!heap || !next || !prev || !touched) {
        mv_free(heap);
        mv_free(next);
        mv_free(prev);
        mv_free(touched);
        return MEDVLM_ERR_NOMEM;
    }
    size_t hn = 0;
    for (size_t i = 0; i < n; i++) {
        next[i] = i + 1 < n ? (int32_t)(i + 1) : -1;
        prev[i] = (int32_t)i - 1;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        const struct merge_slot *m = merge_find(b, w[i], w[i + 1]);
        if (m) heap_push(heap, &hn, (struct heap_entry){m->rank, (uint32_t)i, w[i], w[i + 1]});
    }
    while (hn) {
        int32_t rank = heap[0].rank;
        size_t nt = 0;
        while (hn && heap[0].rank == rank) {
            struct heap_entry e = heap_pop(heap, &hn);
            int32_t p = (int32_t)e.pos, q = next[p];
            if (w[p] != e.left || q < 0 || w[q] != e.right) continue; /* stale */
            const struct merge_slot *m = merge_find(b, e.left, e.right);
            w[p] = m->result;
            w[q] = -1; /* dead */
            next[p] = next[q];
            if (next[q] >= 0) prev[next[q]] = p;
            touched[nt++] = (uint32_t)p;
        }
        for (size_t k = 0; k < nt; k++) {
            int32_t p = (int32_t)touched[k];
            if (w[p] < 0) continue;
            int32_t l = prev[p], r = next[p];
            const struct merge_slot *m;
            if (l >= 0 && (m = merge_find(b, w[l], w[p])))
                heap_push(heap, &hn, (struct heap_entry){m->rank, (uint32_t)l, w[l], w[p]});
            if (r >= 0 && (m = merge_find(b, w[p], w[r])))
                heap_push(heap, &hn, (struct heap_entry){m->rank, (uint32_t)p, w[p], w[r]});
        }
    }
    size_t o = 0;
    for (int32_t p = 0; p >= 0; p = next[p]) w[o++] = w[p];
    *out_n = o;
    mv_free(heap);
    mv_free(next);
    mv_free(prev);
    mv_free(touched);
    return MEDVLM_OK;
}

int mv_bpe_symbol_count(const struct mv_bpe *b)
{
    return b->n_syms;
}

enum medvlm_status mv_bpe_encode_word(struct mv_bpe *b, const char *piece, size_t n, int32_t unk_id,
                                      struct mv_i32buf *out)
{
    if (n == 0) return MEDVLM_OK;
    enum medvlm_status st = MEDVLM_OK;
    bool cacheable = n <= CACHE_MAX_PIECE;
    uint64_t h = cacheable ? hash_bytes(piece, n) : 0;
    if (cacheable) {
        pthread_mutex_lock(&b->lock);
        bool hit = cache_get(b, h, piece, n, out, &st);
        pthread_mutex_unlock(&b->lock);
        if (hit) return st;
    }
    int32_t small[CACHE_MAX_PIECE];
    int32_t *w = n <= CACHE_MAX_PIECE ? small : mv_malloc(n * sizeof *w);
    if (!w) return MEDVLM_ERR_NOMEM;
    mv_bpe_word_symbols(b, piece, n, w);
    size_t len;
    if (n <= HEAP_THRESHOLD) {
        len = mv_bpe_merge_naive(b, w, n);
    } else if ((st = mv_bpe_merge_heap(b, w, n, &len))) {
        if (w != small) mv_free(w);
        return st;
    }
    for (size_t i = 0; i < len; i++) {
        int32_t id = b->syms[w[i]].vocab_id;
        w[i] = id >= 0 ? id : unk_id;
    }
    size_t base = out->n;
    for (size_t i = 0; i < len && !st; i++) st = mv_i32_push(out, w[i]);
    if (!st && cacheable) {
        pthread_mutex_lock(&b->lock);
        cache_put(b, h, piece, n, out->v + base, len);
        pthread_mutex_unlock(&b->lock);
    }
    if (w != small) mv_free(w);
    return st;
}

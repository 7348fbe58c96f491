/*
 * bench_tokenizer GOLDEN_DIR [SENTENCES] - tokenizer throughput.
 *
 *   load      tokenizer.json and vocab.json + merges.txt of GOLDEN_DIR/model (ms)
 *   ensemble  the SICAPv2 zero-shot ensemble: manifest "templates" x "descriptions"
 *             ([CLS] replaced), batch-encoded to 77 ids, repeated for about a second
 *   generated SENTENCES (default 20000) seeded pseudo-English/histology sentences with
 *             numbers, punctuation and some non-ASCII, written to a temporary file, read
 *             back and encoded line by line: first pass (cold BPE cache) and second pass
 * prints prompts/s and MB/s (UTF-8 input bytes) for each.
 */
#include "core/core.h"
#include "io/io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *replace_cls(const char *tmpl, const char *desc)
{
    const char *p = strstr(tmpl, "[CLS]");
    if (!p) return mv_strdup(tmpl);
    return mv_asprintf("%.*s%s%s", (int)(p - tmpl), tmpl, desc, p + 5);
}

static void report(const char *what, int prompts, size_t bytes, double secs)
{
    printf("%-22s %8d prompts %9.3f MB %8.3f s  %10.0f prompts/s %8.2f MB/s\n", what, prompts,
           bytes / 1e6, secs, prompts / secs, bytes / 1e6 / secs);
}

static const char *words[] = {"a",
                              "the",
                              "of",
                              "with",
                              "and",
                              "histopathology",
                              "image",
                              "slide",
                              "showing",
                              "benign",
                              "glands",
                              "gleason",
                              "grade",
                              "cribriform",
                              "fused",
                              "papillary",
                              "patterns",
                              "isolated",
                              "nest",
                              "cells",
                              "lumen",
                              "tissue",
                              "stroma",
                              "nuclei",
                              "mitotic",
                              "figures",
                              "H&E-stained",
                              "adenocarcinoma",
                              "infiltrating",
                              "lymphocytes",
                              "necrosis",
                              "Ki-67",
                              "p53",
                              "x40",
                              "magnification",
                              "well-differentiated",
                              "poorly",
                              "café",
                              "naïve",
                              "Müller",
                              "µm",
                              "±",
                              "biopsy",
                              "patient's",
                              "tumour",
                              "they're",
                              "(TILs)",
                              "5%",
                              "3.14",
                              "🔬",
                              "中文",
                              "Ångström"};

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_tokenizer GOLDEN_DIR [SENTENCES]\n");
        return 2;
    }
    int sentences = argc > 2 ? atoi(argv[2]) : 20000;
    char *model = mv_path_join(argv[1], "model"), *man = mv_path_join(argv[1], "manifest.json");
    char *tj = mv_path_join(model, "tokenizer.json"), *vj = mv_path_join(model, "vocab.json");
    char *mt = mv_path_join(model, "merges.txt");
    struct medvlm_tokenizer *tok = NULL, *tok2 = NULL;
    double t0 = mv_now();
    if (medvlm_tokenizer_load_files(tj, NULL, NULL, &tok)) goto fail;
    double t1 = mv_now();
    if (medvlm_tokenizer_load_files(NULL, vj, mt, &tok2)) goto fail;
    double t2 = mv_now();
    printf("load tokenizer.json %.1f ms, vocab.json + merges.txt %.1f ms\n", (t1 - t0) * 1e3,
           (t2 - t1) * 1e3);
    medvlm_tokenizer_free(tok2);

    /* ---- the zero-shot ensemble ---- */
    cJSON *m = NULL;
    if (mv_json_load(man, &m)) goto fail;
    const cJSON *tmpl = cJSON_GetObjectItemCaseSensitive(m, "templates");
    const cJSON *desc = cJSON_GetObjectItemCaseSensitive(m, "descriptions");
    char *prompts[256];
    int np = 0;
    size_t bytes = 0;
    for (const cJSON *c = desc ? desc->child : NULL; c; c = c->next)
        for (const cJSON *d = c->child; d; d = d->next)
            for (const cJSON *t = tmpl ? tmpl->child : NULL; t && np < 256; t = t->next) {
                prompts[np] = replace_cls(t->valuestring, d->valuestring);
                bytes += strlen(prompts[np++]);
            }
    cJSON_Delete(m);
    if (np == 0) {
        fprintf(stderr, "bench_tokenizer: no templates/descriptions in %s\n", man);
        return 1;
    }
    int32_t *ids = mv_malloc((size_t)np * 77 * sizeof *ids), *mask = mv_malloc((size_t)np * 77 * 4);
    int len, reps = 0;
    double s = mv_now(), e;
    do {
        if (medvlm_tokenizer_encode_batch(tok, (const char *const *)prompts, np, 77,
                                          MEDVLM_PAD_MAX_LENGTH, ids, mask, &len))
            goto fail;
        reps++;
        e = mv_now();
    } while (e - s < 1.0);
    report("ensemble (16 prompts)", np * reps, bytes * (size_t)reps, e - s);
    for (int i = 0; i < np; i++) mv_free(prompts[i]);
    mv_free(ids);
    mv_free(mask);

    /* ---- a large generated file ---- */
    struct mv_rng r;
    mv_rng_seed(&r, 42);
    size_t cap = (size_t)sentences * 200 + 1, n = 0;
    char *text = mv_malloc(cap);
    for (int i = 0; i < sentences; i++) {
        int nw = 4 + (int)mv_rng_below(&r, 16);
        for (int k = 0; k < nw; k++) {
            const char *w = words[mv_rng_below(&r, MV_ARRAY_LEN(words))];
            if (mv_rng_below(&r, 8) == 0) { /* a made-up word: exercises cold BPE */
                char tmp[16];
                int l = 3 + (int)mv_rng_below(&r, 8);
                for (int q = 0; q < l; q++) tmp[q] = (char)('a' + mv_rng_below(&r, 26));
                tmp[l] = '\0';
                n += (size_t)snprintf(text + n, cap - n, "%s%s", k ? " " : "", tmp);
            } else {
                n += (size_t)snprintf(text + n, cap - n, "%s%s", k ? " " : "", w);
            }
        }
        n += (size_t)snprintf(text + n, cap - n, ".\n");
    }
    char path[] = "/tmp/medvlm-bench-tok-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) goto fail;
    close(fd);
    if (mv_write_file_atomic(path, text, n)) goto fail;
    mv_free(text);
    size_t flen;
    if (mv_read_file(path, &text, &flen)) goto fail;
    unlink(path);
    int32_t row[77];
    for (int pass = 0; pass < 2; pass++) {
        int count = 0, nn;
        s = mv_now();
        for (char *p = text; *p;) {
            char *nl = strchr(p, '\n');
            if (nl) *nl = '\0';
            if (medvlm_tokenizer_encode(tok, p, row, 77, &nn)) goto fail;
            count++;
            if (nl) *nl = '\n';
            p = nl ? nl + 1 : p + strlen(p);
        }
        e = mv_now();
        report(pass ? "generated, 2nd pass" : "generated, 1st pass", count, flen, e - s);
    }
    mv_free(text);
    medvlm_tokenizer_free(tok);
    mv_free(model);
    mv_free(man);
    mv_free(tj);
    mv_free(vj);
    mv_free(mt);
    return 0;
fail:
    fprintf(stderr, "bench_tokenizer: %s\n", medvlm_last_error());
    return 1;
}

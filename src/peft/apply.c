/*
 * apply.c - a fine-tuned model from a base model and a run folder of `medvlm finetune`: the
 * LoRA adapter kept beside its linear layers (unmerged) or folded into their weights
 * (merged, W' = W + alpha/r B A), and the changed tensors of ln / bias / full runs replacing
 * the base's. The base's weights are shared, not copied.
 *
 * Glossary: C width, I MLP width, RK LoRA rank, L layers.
 */
#include "peft.h"

#include "../io/io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* FNV-1a over bytes, continuing h. */
static uint64_t fnv_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* "base_model.model.vision_model.encoder.layers.L.<parent>.<module>.lora_<A|B>.weight":
 * layer, target and A (0) / B (1); 0 when the name is not of that form. */
static int parse_lora_key(const char *name, int L, int *layer, int *target, int *ab)
{
    const char *pre = "base_model.model.vision_model.encoder.layers.";
    size_t n = strlen(pre);
    if (strncmp(name, pre, n) != 0) return 0;
    char *end;
    long l = strtol(name + n, &end, 10);
    if (end == name + n || *end != '.' || l < 0 || l >= L) return 0;
    for (int t = 0; t < MV_LORA_N; t++) {
        char tail[96];
        for (int k = 0; k < 2; k++) {
            snprintf(tail, sizeof tail, ".%s.%s.lora_%c.weight", mv_lora_parent(t),
                     mv_lora_module(t), k ? 'B' : 'A');
            if (strcmp(end, tail) == 0) {
                *layer = (int)l;
                *target = t;
                *ab = k;
                return 1;
            }
        }
    }
    return 0;
}

struct run_files {
    struct medvlm_st *st; /* adapter_model.safetensors or trained_params.safetensors */
    int lora, head_only;
    int rank;
    float alpha;
};

static enum medvlm_status open_run(const char *dir, struct run_files *rf)
{
    char *a = mv_path_join(dir, "adapter_model.safetensors");
    char *t = mv_path_join(dir, "trained_params.safetensors");
    char *c = mv_path_join(dir, "adapter_config.json");
    char *h = mv_path_join(dir, "head.safetensors");
    enum medvlm_status st = MEDVLM_ERR_NOMEM;
    cJSON *cfg = NULL;
    memset(rf, 0, sizeof *rf);
    if (!a || !t || !c) goto done;
    if (!mv_is_dir(dir)) {
        st = mv_err(MEDVLM_ERR_IO, "%s: not a folder (expected a run folder of medvlm finetune)",
                    dir);
        goto done;
    }
    rf->lora = mv_is_file(a);
    if (!rf->lora && !mv_is_file(t) && h && mv_is_file(h)) {
        /* a head-only run: the encoder is the base's; head.safetensors records the base */
        st = medvlm_st_open(h, &rf->st);
        rf->head_only = 1;
        goto done;
    }
    if (!rf->lora && !mv_is_file(t)) {
        st = mv_err(MEDVLM_ERR_MISSING,
                    "%s: no adapter_model.safetensors or trained_params.safetensors (expected a "
                    "run folder of medvlm finetune)",
                    dir);
        goto done;
    }
    if ((st = medvlm_st_open(rf->lora ? a : t, &rf->st))) goto done;
    if (rf->lora) {
        rf->rank = 0;
        rf->alpha = 0;
        if ((st = mv_json_load(c, &cfg)) || (st = mv_json_int(c, cfg, "r", &rf->rank)) ||
            (st = mv_json_float(c, cfg, "lora_alpha", &rf->alpha)))
            goto done;
        if (rf->rank < 1 || !(rf->alpha > 0)) {
            st = mv_err(MEDVLM_ERR_FORMAT,
                        "%s: r = %d, lora_alpha = %g (expected r >= 1, alpha > 0)", c, rf->rank,
                        (double)rf->alpha);
            goto done;
        }
    }
done:
    cJSON_Delete(cfg);
    mv_free(a);
    mv_free(t);
    mv_free(c);
    mv_free(h);
    return st;
}

/* The fine-tuned model's fingerprint: FNV-1a over the base's fingerprint, then each of the
 * run's tensors (name and F32 values, in file order). */
static enum medvlm_status run_hash(const struct medvlm_st *st, const char *base_fp, char out[17])
{
    uint64_t h = fnv_bytes(1469598103934665603ull, base_fp, strlen(base_fp));
    for (int i = 0; i < medvlm_st_count(st); i++) {
        const struct medvlm_tensor_info *t = medvlm_st_at(st, i);
        const float *d;
        float *conv;
        enum medvlm_status s = medvlm_st_get_f32(st, t->name, &d, &conv, NULL);
        if (s) return s;
        h = fnv_bytes(fnv_bytes(h, t->name, strlen(t->name)), d,
                      t->nbytes / medvlm_dtype_size(t->dtype) * sizeof(float));
        mv_free(conv);
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
    return MEDVLM_OK;
}

enum medvlm_status medvlm_run_fingerprint(const char *run_dir, char fingerprint[17])
{
    struct run_files rf;
    char *fp = NULL, *model = NULL;
    enum medvlm_status st = open_run(run_dir, &rf);
    if (!st) st = mv_provenance_read(rf.st, &fp, &model);
    /* a base made in memory has the fingerprint "" (and records none) */
    const char *base_fp = fp ? fp : "";
    if (!st && rf.head_only)
        snprintf(fingerprint, 17, "%s", base_fp);
    else if (!st)
        st = run_hash(rf.st, base_fp, fingerprint);
    mv_free(fp);
    mv_free(model);
    medvlm_st_free(rf.st);
    return st;
}

/* Check the run's recorded base model against base. */
static enum medvlm_status check_provenance(const struct medvlm_model *base, const char *dir,
                                           const struct medvlm_st *st)
{
    char *fp = NULL, *model = NULL;
    enum medvlm_status s = mv_provenance_read(st, &fp, &model);
    if (!s && fp && *fp && base->fingerprint[0] && strcmp(fp, base->fingerprint) != 0)
        s = mv_err(MEDVLM_ERR_ARG,
                   "%s was fine-tuned from the model %s (fingerprint %s), not from %s "
                   "(fingerprint %s): apply a run to the model it was trained from",
                   dir, model && *model ? model : "(unknown folder)", fp,
                   base->dir && *base->dir ? base->dir : "this model", base->fingerprint);
    mv_free(fp);
    mv_free(model);
    return s;
}

enum medvlm_status medvlm_model_apply_run(const struct medvlm_model *base, const char *run_dir,
                                          int merge, struct medvlm_model **out)
{
    struct run_files rf;
    struct medvlm_model *m = NULL;
    *out = NULL;
    if (!base || !run_dir) return mv_err(MEDVLM_ERR_ARG, "medvlm_model_apply_run: NULL argument");
    if (!base->vision.loaded)
        return mv_err(MEDVLM_ERR_ARG,
                      "%s: a fine-tuning changes the vision tower: load the model "
                      "with MEDVLM_LOAD_VISION",
                      run_dir);
    enum medvlm_status st = open_run(run_dir, &rf);
    if (st || (st = check_provenance(base, run_dir, rf.st))) goto fail;
    if ((st = mv_model_derive(base, &m))) goto fail;
    if (rf.head_only) { /* the encoder unchanged: the base's weights and fingerprint */
        m->run = mv_strdup(run_dir);
        medvlm_st_free(rf.st);
        if (!m->run) {
            medvlm_model_free(m);
            return MEDVLM_ERR_NOMEM;
        }
        *out = m;
        return MEDVLM_OK;
    }
    const struct medvlm_tower_config *c = &base->vision.cfg;
    const int L = c->num_hidden_layers;
    const int64_t C = c->hidden_size, I = c->intermediate_size;
    const int64_t in[MV_LORA_N] = {C, C, C, C, C, I}, outd[MV_LORA_N] = {C, C, C, C, I, C};
    const char *path = medvlm_st_path(rf.st);
    /* pass 1: check every tensor and count the floats to hold */
    size_t total = 0;
    unsigned seen[2][64] = {{0}};
    for (int i = 0; i < medvlm_st_count(rf.st); i++) {
        const struct medvlm_tensor_info *t = medvlm_st_at(rf.st, i);
        size_t want;
        if (rf.lora) {
            int l, tg, ab;
            if (!parse_lora_key(t->name, L, &l, &tg, &ab)) {
                st = mv_err(MEDVLM_ERR_UNSUPPORTED,
                            "%s: tensor \"%s\" is not a LoRA weight of this model's vision tower "
                            "(expected base_model.model.vision_model.encoder.layers.N.self_attn."
                            "q_proj.lora_A.weight and the like, N < %d)",
                            path, t->name, L);
                goto fail;
            }
            int64_t r0 = ab ? outd[tg] : rf.rank, r1 = ab ? rf.rank : in[tg];
            if (t->ndim != 2 || t->shape[0] != r0 || t->shape[1] != r1) {
                st = mv_err(MEDVLM_ERR_SHAPE, "%s: tensor \"%s\" is not [%lld, %lld] (r = %d)",
                            path, t->name, (long long)r0, (long long)r1, rf.rank);
                goto fail;
            }
            if (l < 64) seen[ab][l] |= 1u << tg;
            want = (size_t)(r0 * r1);
            if (merge && ab) want += (size_t)(outd[tg] * in[tg]);
        } else {
            const struct medvlm_param_info *p = medvlm_model_param_find(base, t->name);
            if (!p || p->tower != MEDVLM_TOWER_VISION) {
                st = mv_err(MEDVLM_ERR_UNSUPPORTED,
                            "%s: tensor \"%s\" is not a vision parameter of this model", path,
                            t->name);
                goto fail;
            }
            want = p->numel;
            if (t->nbytes != want * medvlm_dtype_size(t->dtype)) {
                st = mv_err(MEDVLM_ERR_SHAPE,
                            "%s: tensor \"%s\" holds %zu bytes, expected %zu "
                            "values",
                            path, t->name, t->nbytes, want);
                goto fail;
            }
        }
        if (!mv_add_ok(total, want, &total)) {
            st = mv_err(MEDVLM_ERR_OVERFLOW, "%s: too large", path);
            goto fail;
        }
    }
    if (rf.lora)
        for (int l = 0; l < L && l < 64; l++)
            if (seen[0][l] != seen[1][l]) {
                st = mv_err(MEDVLM_ERR_FORMAT,
                            "%s: layer %d has a lora_A without its lora_B or "
                            "the reverse",
                            path, l);
                goto fail;
            }
    m->owned = mv_malloc((total ? total : 1) * sizeof(float));
    m->run = mv_strdup(run_dir);
    mv_free(m->dir);
    m->dir = mv_asprintf("%s (fine-tuned: %s)", base->dir ? base->dir : "", run_dir);
    if (!m->owned || !m->run || !m->dir) {
        st = MEDVLM_ERR_NOMEM;
        goto fail;
    }
    /* pass 2: copy (converting to F32) and point the views */
    size_t off = 0;
    const float scale = rf.lora ? rf.alpha / (float)rf.rank : 0.0f;
    for (int i = 0; i < medvlm_st_count(rf.st); i++) {
        const struct medvlm_tensor_info *t = medvlm_st_at(rf.st, i);
        const float *d;
        float *conv;
        if ((st = medvlm_st_get_f32(rf.st, t->name, &d, &conv, NULL))) goto fail;
        size_t n = t->nbytes / medvlm_dtype_size(t->dtype);
        float *dst = m->owned + off;
        memcpy(dst, d, n * sizeof(float));
        mv_free(conv);
        off += n;
        if (!rf.lora) { /* pass 1 found the row */
            int k = (int)(medvlm_model_param_find(m, t->name) - m->params);
            m->params[k].data = dst;
            *m->slots[k] = dst;
            continue;
        }
        int l, tg, ab;
        parse_lora_key(t->name, L, &l, &tg, &ab);
        struct mv_layer *ly = &m->vision.layers[l];
        struct mv_linear *lin[MV_LORA_N] = {&ly->q, &ly->k, &ly->v, &ly->o, &ly->fc1, &ly->fc2};
        if (ab)
            lin[tg]->lora_b = dst;
        else
            lin[tg]->lora_a = dst;
        if (merge && ab) off += (size_t)(outd[tg] * in[tg]); /* room for the merged weight */
    }
    if (rf.lora && merge) {
        /* W' (out, in) = W + scale * B (out, RK) A (RK, in), in the room after each B */
        for (int l = 0; l < L; l++) {
            struct mv_layer *ly = &m->vision.layers[l];
            struct mv_linear *lin[MV_LORA_N] = {&ly->q, &ly->k, &ly->v, &ly->o, &ly->fc1, &ly->fc2};
            for (int tg = 0; tg < MV_LORA_N; tg++) {
                if (!lin[tg]->lora_a) continue;
                float *w = (float *)(uintptr_t)(lin[tg]->lora_b + outd[tg] * rf.rank);
                memcpy(w, lin[tg]->w, (size_t)(outd[tg] * in[tg]) * sizeof(float));
                mv_gemm_naive(0, 0, (int)outd[tg], (int)in[tg], rf.rank, scale, lin[tg]->lora_b,
                              rf.rank, lin[tg]->lora_a, (int)in[tg], 1.0f, w, (int)in[tg]);
                lin[tg]->w = w;
                lin[tg]->lora_a = lin[tg]->lora_b = NULL;
                /* the table row of this weight now points at the merged copy */
                char name[160];
                snprintf(name, sizeof name, "vision_model.encoder.layers.%d.%s.%s.weight", l,
                         mv_lora_parent(tg), mv_lora_module(tg));
                m->params[medvlm_model_param_find(m, name) - m->params].data = w;
            }
        }
    } else if (rf.lora) {
        m->vision.lora_rank = rf.rank;
        m->vision.lora_scale = scale;
    }
    if ((st = run_hash(rf.st, base->fingerprint, m->fingerprint))) goto fail;
    medvlm_st_free(rf.st);
    *out = m;
    return MEDVLM_OK;
fail:
    medvlm_st_free(rf.st);
    medvlm_model_free(m);
    return st;
}

const char *medvlm_model_run(const struct medvlm_model *m)
{
    return m && m->run ? m->run : "";
}

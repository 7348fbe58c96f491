/*
 * model.c - load a Hugging Face CLIP folder (config.json, model.safetensors or
 * pytorch_model.bin, preprocessor_config.json), make one with random weights, save one.
 */
#define _POSIX_C_SOURCE 200809L
#include "model.h"
#include "../io/io.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static enum medvlm_status model_alloc(const struct medvlm_config *cfg, struct medvlm_model **out)
{
    struct medvlm_model *m = mv_calloc(1, sizeof *m);
    *out = NULL;
    if (!m) return MEDVLM_ERR_NOMEM;
    mv_arena_init(&m->names, 32 * 1024);
    m->cfg = *cfg;
    medvlm_preproc_default(&m->pp);
    m->pp.shortest_edge = cfg->vision.image_size;
    m->pp.crop_height = m->pp.crop_width = cfg->vision.image_size;
    m->logit_scale = cfg->logit_scale_init_value;
    enum medvlm_status st = mv_params_build(m);
    if (st) {
        medvlm_model_free(m);
        return st;
    }
    *out = m;
    return MEDVLM_OK;
}

void medvlm_model_free(struct medvlm_model *m)
{
    if (!m) return;
    mv_model_prepared_free(m);
    medvlm_st_free(m->st);
    mv_free(m->owned);
    mv_free(m->text.layers);
    mv_free(m->vision.layers);
    mv_free(m->params);
    mv_free(m->slots);
    mv_free(m->dir);
    mv_free(m->run);
    mv_arena_free(&m->names);
    mv_free(m);
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

static bool is_ignored_buffer(const char *name)
{
    return strcmp(name, "text_model.embeddings.position_ids") == 0 ||
           strcmp(name, "vision_model.embeddings.position_ids") == 0;
}

/* Check every table row against the file, then point the requested towers' slots at the
 * data (zero-copy F32; F16/BF16 converted into m->owned). */
static enum medvlm_status bind_weights(struct medvlm_model *m, unsigned flags)
{
    const struct medvlm_st *st = m->st;
    const char *path = medvlm_st_path(st);
    char want[128], got[128];
    size_t convert = 0;
    for (int i = 0; i < m->n_params; i++) {
        struct medvlm_param_info *p = &m->params[i];
        const struct medvlm_tensor_info *t = medvlm_st_find(st, p->name);
        if (!t) {
            shape_str(want, sizeof want, p->ndim, p->shape);
            return mv_err(MEDVLM_ERR_MISSING,
                          "%s: missing tensor \"%s\" (expected shape %s from config.json)", path,
                          p->name, want);
        }
        int shape_ok = t->ndim == p->ndim || (p->ndim == 0 && t->ndim == 1 && t->shape[0] == 1);
        for (int d = 0; shape_ok && d < p->ndim; d++) shape_ok = t->shape[d] == p->shape[d];
        if (!shape_ok) {
            shape_str(want, sizeof want, p->ndim, p->shape);
            shape_str(got, sizeof got, t->ndim, t->shape);
            return mv_err(MEDVLM_ERR_SHAPE,
                          "%s: tensor \"%s\" has shape %s, expected %s (from config.json)", path,
                          p->name, got, want);
        }
        if (t->dtype != MEDVLM_DTYPE_F32 && t->dtype != MEDVLM_DTYPE_F16 &&
            t->dtype != MEDVLM_DTYPE_BF16)
            return mv_err(MEDVLM_ERR_SHAPE,
                          "%s: tensor \"%s\" has dtype %s, expected F32, F16 or BF16", path,
                          p->name, medvlm_dtype_name(t->dtype));
        p->file_dtype = t->dtype;
        bool wanted = (p->tower & flags) || p->tower == MEDVLM_TOWER_SHARED;
        bool aligned = ((uintptr_t)t->data & 3) == 0;
        if (wanted && (t->dtype != MEDVLM_DTYPE_F32 || !aligned) && p->tower != MEDVLM_TOWER_SHARED)
            convert += p->numel;
    }
    for (int i = 0; i < medvlm_st_count(st); i++) {
        const struct medvlm_tensor_info *t = medvlm_st_at(st, i);
        if (is_ignored_buffer(t->name) || medvlm_model_param_find(m, t->name)) continue;
        mv_log(MEDVLM_LOG_WARN, "%s: ignoring unexpected tensor \"%s\" (not part of a CLIPModel)",
               path, t->name);
    }
    if (convert) {
        m->owned = mv_calloc(convert, sizeof(float));
        if (!m->owned) return mv_err_ctx(MEDVLM_ERR_NOMEM, "%s: converting weights to F32", path);
    }
    size_t off = 0;
    for (int i = 0; i < m->n_params; i++) {
        struct medvlm_param_info *p = &m->params[i];
        if (p->tower == MEDVLM_TOWER_SHARED) { /* logit_scale: a scalar, read now */
            const float *d;
            float *owned;
            enum medvlm_status s = medvlm_st_get_f32(st, p->name, &d, &owned, NULL);
            if (s) return s;
            m->logit_scale = d[0];
            mv_free(owned);
            if (!isfinite(m->logit_scale))
                return mv_err(MEDVLM_ERR_FORMAT, "%s: logit_scale is not finite", path);
            continue;
        }
        if (!(p->tower & flags)) continue;
        const float *d;
        float *owned;
        enum medvlm_status s = medvlm_st_get_f32(st, p->name, &d, &owned, NULL);
        if (s) return s;
        if (owned) {
            memcpy(m->owned + off, owned, p->numel * sizeof(float));
            mv_free(owned);
            d = m->owned + off;
            off += p->numel;
        }
        p->data = d;
        *m->slots[i] = d;
        size_t bad =
            (flags & MEDVLM_LOAD_ALLOW_NONFINITE) ? p->numel : mv_find_nonfinite(d, p->numel);
        if (bad < p->numel) {
            char at[96] = "";
            if (p->ndim == 2)
                snprintf(at, sizeof at, " [%zu, %zu]", bad / (size_t)p->shape[1],
                         bad % (size_t)p->shape[1]);
            return mv_err(MEDVLM_ERR_FORMAT,
                          "%s: tensor \"%s\" holds a non-finite weight (%g at flat index %zu%s): "
                          "every embedding would be NaN; fix the file (or load with "
                          "MEDVLM_LOAD_ALLOW_NONFINITE to inspect it)",
                          path, p->name, (double)d[bad], bad, at);
        }
    }
    if (flags & MEDVLM_LOAD_TEXT) m->text.loaded = 1;
    if (flags & MEDVLM_LOAD_VISION) m->vision.loaded = 1;
    return MEDVLM_OK;
}

/* medvlm_model_fingerprint: every tensor of the parameter table (both towers, the projections
 * and the logit scale, in the table's order, whichever towers are loaded, so that features of
 * the vision tower and prototypes of the text tower of one model match) hashed as stored in
 * the file: its name, dtype, size and bytes. The bytes are cut in chunks of 8 MiB hashed in
 * parallel (mv_hash64, seeded by the chunk's place) and the chunk values combined in order, so
 * the value does not depend on the thread count. Reading every page of the file costs what
 * BENCHMARKS.md says (a few tens of ms for ViT-B/32 from the page cache). Format 2: format 1
 * hashed only the two projections; files recording it are refused by mv_provenance_read. */
#define FP_CHUNK ((size_t)8 << 20)
#define FP_SEED  0x6d6564766c6d0002ull /* "medvlm" + the format */

struct fp_chunk {
    const unsigned char *p;
    size_t n;
    uint64_t h;
    int release; /* a tensor of a tower not loaded: its pages are given back once hashed */
};

/* The fingerprint hashes every tensor of the file, loaded towers or not; the pages of the
 * towers not in `flags` are given back as soon as they are hashed, so loading one tower of a
 * large model does not hold the other's pages (nor its peak RSS) for nothing. */
static enum medvlm_status fingerprint(struct medvlm_model *m, unsigned flags)
{
    const double t0 = mv_now();
    size_t n_chunks = 0, total = 0;
    for (int i = 0; i < m->n_params; i++) {
        const struct medvlm_tensor_info *t = medvlm_st_find(m->st, m->params[i].name);
        if (!t) return mv_err(MEDVLM_ERR_MISSING, "fingerprint: no tensor %s", m->params[i].name);
        n_chunks += t->nbytes / FP_CHUNK + 1;
        total += t->nbytes;
    }
    struct fp_chunk *c = mv_calloc(n_chunks, sizeof *c);
    uint64_t *rows = mv_calloc((size_t)m->n_params, 4 * sizeof *rows);
    if (!c || !rows) {
        mv_free(c);
        mv_free(rows);
        return MEDVLM_ERR_NOMEM;
    }
    size_t k = 0;
    for (int i = 0; i < m->n_params; i++) {
        const struct medvlm_tensor_info *t = medvlm_st_find(m->st, m->params[i].name);
        const int release =
            !(m->params[i].tower & flags) && m->params[i].tower != MEDVLM_TOWER_SHARED;
        size_t off = 0;
        do { /* an empty tensor is one empty chunk */
            c[k].release = release;
            c[k].p = (const unsigned char *)t->data + off;
            c[k].n = MV_MIN(FP_CHUNK, t->nbytes - off);
            off += c[k++].n;
        } while (off < t->nbytes);
    }
    const long nc = (long)k;
#pragma omp parallel for schedule(dynamic, 1) if (total > FP_CHUNK)
    for (long j = 0; j < nc; j++) {
        c[j].h = mv_hash64(c[j].p, c[j].n, FP_SEED + (uint64_t)j);
        if (c[j].release) (void)mv_st_release_pages(m->st, c[j].p, c[j].n);
    }
    k = 0;
    for (int i = 0; i < m->n_params; i++) {
        const struct medvlm_tensor_info *t = medvlm_st_find(m->st, m->params[i].name);
        const size_t first = k, count = t->nbytes / FP_CHUNK + (t->nbytes % FP_CHUNK || !t->nbytes);
        uint64_t chunks = FP_SEED;
        for (; k < first + count; k++) chunks = mv_hash64(&c[k].h, sizeof c[k].h, chunks);
        rows[4 * i + 0] = mv_hash64(t->name, strlen(t->name), FP_SEED);
        rows[4 * i + 1] = (uint64_t)t->dtype;
        rows[4 * i + 2] = (uint64_t)t->nbytes;
        rows[4 * i + 3] = chunks;
    }
    const uint64_t all = mv_hash64(rows, (size_t)m->n_params * 4 * sizeof *rows, FP_SEED);
    snprintf(m->fingerprint, sizeof m->fingerprint, "%016llx", (unsigned long long)all);
    mv_log(MEDVLM_LOG_DEBUG, "%s: fingerprint %s: %.1f MB hashed in %.1f ms", medvlm_st_path(m->st),
           m->fingerprint, (double)total / 1e6, 1e3 * (mv_now() - t0));
    mv_free(c);
    mv_free(rows);
    return MEDVLM_OK;
}

enum medvlm_status medvlm_model_load(const char *dir, unsigned flags, struct medvlm_model **out)
{
    enum medvlm_status st;
    struct medvlm_model *m = NULL;
    char *cfg_path = NULL, *pp_path = NULL, *w_path = NULL;
    struct medvlm_config cfg;
    *out = NULL;
    if (!dir) return mv_err(MEDVLM_ERR_ARG, "medvlm_model_load: dir is NULL");
    if (!(flags & MEDVLM_LOAD_ALL))
        return mv_err(MEDVLM_ERR_ARG, "medvlm_model_load: flags select no tower");
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return mv_err(MEDVLM_ERR_IO,
                      "%s: %s (expected a Hugging Face CLIP folder with config.json and "
                      "model.safetensors)",
                      dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return mv_err(MEDVLM_ERR_ARG,
                      "%s: is a file, not a folder (expected a Hugging Face CLIP folder with "
                      "config.json and model.safetensors)",
                      dir);
    cfg_path = mv_path_join(dir, "config.json");
    pp_path = mv_path_join(dir, "preprocessor_config.json");
    w_path = mv_path_join(dir, "model.safetensors");
    if (!cfg_path || !pp_path || !w_path) {
        st = MEDVLM_ERR_NOMEM;
        goto fail;
    }
    /* a name that exists but is no regular file (a FIFO, a folder) is refused as what it is
     * by the readers, never taken for missing */
    if (!mv_path_exists(cfg_path)) {
        st = mv_err(MEDVLM_ERR_MISSING,
                    "%s: missing config.json (expected a Hugging Face CLIP folder with "
                    "config.json and model.safetensors)",
                    dir);
        goto fail;
    }
    if ((st = medvlm_config_load(cfg_path, &cfg))) goto fail;
    if ((st = model_alloc(&cfg, &m))) goto fail;
    if (mv_path_exists(pp_path) && (st = medvlm_preproc_load(pp_path, &m->pp))) goto fail;
    if (mv_path_exists(w_path)) { /* preferred when both exist, as transformers does */
        if ((st = medvlm_st_open(w_path, &m->st))) goto fail;
    } else {
        char *bin = mv_path_join(dir, "pytorch_model.bin");
        if (!bin) {
            st = MEDVLM_ERR_NOMEM;
            goto fail;
        }
        st = mv_path_exists(bin)
                 ? mv_torchbin_open(bin, &m->st)
                 : mv_err(MEDVLM_ERR_MISSING,
                          "%s: missing model.safetensors (expected a Hugging Face CLIP "
                          "folder with config.json and model.safetensors or "
                          "pytorch_model.bin)",
                          dir);
        mv_free(bin);
        if (st) goto fail;
    }
    if ((st = bind_weights(m, flags)) || (st = fingerprint(m, flags))) goto fail;
    m->dir = mv_strdup(dir);
    if (!m->dir) {
        st = MEDVLM_ERR_NOMEM;
        goto fail;
    }
    mv_free(cfg_path);
    mv_free(pp_path);
    mv_free(w_path);
    *out = m;
    return MEDVLM_OK;
fail:
    mv_free(cfg_path);
    mv_free(pp_path);
    mv_free(w_path);
    medvlm_model_free(m);
    return st;
}

enum medvlm_status medvlm_model_init_random(const struct medvlm_config *cfg, uint64_t seed,
                                            struct medvlm_model **out)
{
    return mv_model_init_random_towers(cfg, seed, MEDVLM_LOAD_ALL, out);
}

enum medvlm_status mv_model_init_random_towers(const struct medvlm_config *cfg, uint64_t seed,
                                               unsigned flags, struct medvlm_model **out)
{
    struct medvlm_model *m;
    *out = NULL;
    if (!(flags & MEDVLM_LOAD_ALL))
        return mv_err(MEDVLM_ERR_ARG, "medvlm_model_init_random: flags select no tower");
    enum medvlm_status st = model_alloc(cfg, &m);
    if (st) return st;
    size_t total = 0;
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].tower & flags) total += m->params[i].numel;
    m->owned = mv_aligned(total * sizeof(float));
    if (!m->owned) {
        medvlm_model_free(m);
        return MEDVLM_ERR_NOMEM;
    }
    struct mv_rng rng;
    mv_rng_seed(&rng, seed);
    size_t off = 0;
    for (int i = 0; i < m->n_params; i++) {
        struct medvlm_param_info *p = &m->params[i];
        if (!(p->tower & flags)) continue;
        float *d = m->owned + off;
        off += p->numel;
        size_t len = strlen(p->name);
        bool is_norm = strstr(p->name, "layer_norm") || strstr(p->name, "layrnorm") ||
                       strstr(p->name, "layernorm");
        bool is_bias = len > 5 && strcmp(p->name + len - 5, ".bias") == 0;
        for (size_t j = 0; j < p->numel; j++)
            d[j] = is_norm ? (is_bias ? 0.0f : 1.0f) : 0.02f * mv_rng_normal(&rng);
        p->data = d;
        *m->slots[i] = d;
    }
    m->text.loaded = (flags & MEDVLM_LOAD_TEXT) != 0;
    m->vision.loaded = (flags & MEDVLM_LOAD_VISION) != 0;
    m->dir = mv_strdup("");
    if (!m->dir) {
        medvlm_model_free(m);
        return MEDVLM_ERR_NOMEM;
    }
    *out = m;
    return MEDVLM_OK;
}

static const char *act_name(enum medvlm_act a)
{
    return a == MEDVLM_ACT_GELU ? "gelu" : "quick_gelu";
}

static cJSON *tower_json(const struct medvlm_tower_config *t, int vision)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "hidden_size", t->hidden_size);
    cJSON_AddNumberToObject(o, "intermediate_size", t->intermediate_size);
    cJSON_AddNumberToObject(o, "num_hidden_layers", t->num_hidden_layers);
    cJSON_AddNumberToObject(o, "num_attention_heads", t->num_attention_heads);
    cJSON_AddStringToObject(o, "hidden_act", act_name(t->hidden_act));
    cJSON_AddNumberToObject(o, "layer_norm_eps", t->layer_norm_eps);
    if (vision) {
        cJSON_AddNumberToObject(o, "num_channels", t->num_channels);
        cJSON_AddNumberToObject(o, "image_size", t->image_size);
        cJSON_AddNumberToObject(o, "patch_size", t->patch_size);
        cJSON_AddStringToObject(o, "model_type", "clip_vision_model");
    } else {
        cJSON_AddNumberToObject(o, "vocab_size", t->vocab_size);
        cJSON_AddNumberToObject(o, "max_position_embeddings", t->max_position_embeddings);
        cJSON_AddNumberToObject(o, "bos_token_id", t->bos_token_id);
        cJSON_AddNumberToObject(o, "eos_token_id", t->eos_token_id);
        cJSON_AddNumberToObject(o, "pad_token_id", t->pad_token_id);
        cJSON_AddStringToObject(o, "model_type", "clip_text_model");
    }
    return o;
}

static enum medvlm_status save_json(const char *dir, const char *name, cJSON *root)
{
    char *text = root ? cJSON_Print(root) : NULL;
    char *path = mv_path_join(dir, name);
    enum medvlm_status st = MEDVLM_ERR_NOMEM;
    if (text && path) st = mv_write_file_atomic(path, text, strlen(text));
    if (text) cJSON_free(text);
    mv_free(path);
    cJSON_Delete(root);
    return st;
}

enum medvlm_status medvlm_model_save(const struct medvlm_model *m, const char *dir)
{
    if (!m->text.loaded || !m->vision.loaded)
        return mv_err(MEDVLM_ERR_ARG, "medvlm_model_save: both towers must be loaded to save");
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return mv_err(MEDVLM_ERR_IO, "%s: cannot create folder: %s", dir, strerror(errno));
    cJSON *cfg = cJSON_CreateObject();
    if (!cfg) return mv_err(MEDVLM_ERR_NOMEM, "out of memory");
    cJSON_AddItemToObject(cfg, "architectures",
                          cJSON_CreateStringArray((const char *[]){"CLIPModel"}, 1));
    cJSON_AddStringToObject(cfg, "model_type", "clip");
    cJSON_AddNumberToObject(cfg, "projection_dim", m->cfg.projection_dim);
    cJSON_AddNumberToObject(cfg, "logit_scale_init_value", m->cfg.logit_scale_init_value);
    cJSON_AddItemToObject(cfg, "text_config", tower_json(&m->cfg.text, 0));
    cJSON_AddItemToObject(cfg, "vision_config", tower_json(&m->cfg.vision, 1));
    enum medvlm_status st = save_json(dir, "config.json", cfg);
    if (st) return st;

    const struct medvlm_preproc_config *pp = &m->pp;
    cJSON *p = cJSON_CreateObject();
    if (!p) return mv_err(MEDVLM_ERR_NOMEM, "out of memory");
    cJSON_AddStringToObject(p, "image_processor_type", "CLIPImageProcessor");
    cJSON_AddBoolToObject(p, "do_resize", pp->do_resize);
    cJSON *size = cJSON_AddObjectToObject(p, "size");
    cJSON_AddNumberToObject(size, "shortest_edge", pp->shortest_edge);
    cJSON_AddBoolToObject(p, "do_center_crop", pp->do_center_crop);
    cJSON *crop = cJSON_AddObjectToObject(p, "crop_size");
    cJSON_AddNumberToObject(crop, "height", pp->crop_height);
    cJSON_AddNumberToObject(crop, "width", pp->crop_width);
    cJSON_AddBoolToObject(p, "do_rescale", pp->do_rescale);
    cJSON_AddNumberToObject(p, "rescale_factor", pp->rescale_factor);
    cJSON_AddBoolToObject(p, "do_normalize", pp->do_normalize);
    cJSON_AddItemToObject(p, "image_mean", cJSON_CreateFloatArray(pp->mean, 3));
    cJSON_AddItemToObject(p, "image_std", cJSON_CreateFloatArray(pp->std, 3));
    cJSON_AddNumberToObject(p, "resample", pp->resample);
    if ((st = save_json(dir, "preprocessor_config.json", p))) return st;

    struct medvlm_st_writer *w;
    if ((st = medvlm_st_writer_init(&w))) return st;
    for (int i = 0; i < m->n_params && !st; i++) {
        const struct medvlm_param_info *q = &m->params[i];
        if (q->tower == MEDVLM_TOWER_SHARED)
            st = medvlm_st_writer_add(w, q->name, MEDVLM_DTYPE_F32, 0, NULL, &m->logit_scale);
        else
            st = medvlm_st_writer_add(w, q->name, MEDVLM_DTYPE_F32, q->ndim, q->shape, q->data);
    }
    char *path = mv_path_join(dir, "model.safetensors");
    if (!st && !path) st = MEDVLM_ERR_NOMEM;
    if (!st) st = medvlm_st_writer_save(w, path);
    mv_free(path);
    medvlm_st_writer_free(w);
    return st;
}

const struct medvlm_config *medvlm_model_config(const struct medvlm_model *m)
{
    return &m->cfg;
}

const struct medvlm_preproc_config *medvlm_model_preproc(const struct medvlm_model *m)
{
    return &m->pp;
}

float medvlm_model_logit_scale(const struct medvlm_model *m)
{
    return m->logit_scale;
}

const char *medvlm_model_dir(const struct medvlm_model *m)
{
    return m->dir ? m->dir : "";
}

const char *medvlm_model_fingerprint(const struct medvlm_model *m)
{
    return m->fingerprint;
}

int medvlm_model_param_count(const struct medvlm_model *m)
{
    return m->n_params;
}

const struct medvlm_param_info *medvlm_model_param(const struct medvlm_model *m, int i)
{
    return i >= 0 && i < m->n_params ? &m->params[i] : NULL;
}

const struct medvlm_param_info *medvlm_model_param_find(const struct medvlm_model *m,
                                                        const char *name)
{
    for (int i = 0; i < m->n_params; i++)
        if (strcmp(m->params[i].name, name) == 0) return &m->params[i];
    return NULL;
}

enum medvlm_status mv_model_derive(const struct medvlm_model *base, struct medvlm_model **out)
{
    struct medvlm_model *m;
    enum medvlm_status st = model_alloc(&base->cfg, &m);
    *out = NULL;
    if (st) return st;
    m->pp = base->pp;
    m->logit_scale = base->logit_scale;
    memcpy(m->fingerprint, base->fingerprint, sizeof m->fingerprint);
    m->dir = mv_strdup(base->dir ? base->dir : "");
    if (!m->dir) {
        medvlm_model_free(m);
        return MEDVLM_ERR_NOMEM;
    }
    for (int i = 0; i < m->n_params; i++) {
        m->params[i].data = base->params[i].data;
        m->params[i].file_dtype = base->params[i].file_dtype;
        if (m->slots[i]) *m->slots[i] = base->params[i].data;
    }
    m->text.loaded = base->text.loaded;
    m->vision.loaded = base->vision.loaded;
    *out = m;
    return MEDVLM_OK;
}

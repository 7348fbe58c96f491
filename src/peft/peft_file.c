/*
 * peft_file.c - what a fine-tuning writes and reads back: the state (trained tensors,
 * optimiser moments and step) inside a checkpoint, and the run folder's files in the formats
 * the Python world loads: peft's adapter_model.safetensors + adapter_config.json for LoRA,
 * the changed tensors under their Hugging Face names for ln / bias / full, and the head.
 */
#include "peft.h"

#include "../io/io.h"

#include <stdio.h>
#include <string.h>

/* ---- checkpoint state ---- */

static size_t optim_state_len(const struct medvlm_peft *p)
{
    return p->opt.cfg.kind == MV_OPTIM_SGD ? p->opt.total : 2 * p->opt.total;
}

enum medvlm_status medvlm_peft_state_add(const struct medvlm_peft *p, struct medvlm_st_writer *w)
{
    char name[256];
    enum medvlm_status st;
    for (int i = 0; i < p->n_rows; i++) {
        const struct mv_peft_row *r = &p->rows[i];
        snprintf(name, sizeof name, "param/%s", r->name);
        if ((st = medvlm_st_writer_add(w, name, MEDVLM_DTYPE_F32, r->ndim, r->shape,
                                       p->params + r->off)))
            return st;
    }
    /* the moments over the whole buffer (padding included: it stays 0) */
    int64_t n = (int64_t)optim_state_len(p), step = p->opt.step;
    if ((st = medvlm_st_writer_add(w, "optim/state", MEDVLM_DTYPE_F32, 1, &n, p->opt.state)))
        return st;
    return medvlm_st_writer_add(w, "optim/step", MEDVLM_DTYPE_I64, 1, (int64_t[]){1}, &step);
}

enum medvlm_status medvlm_peft_state_load(struct medvlm_peft *p, const struct medvlm_st *st)
{
    const char *path = medvlm_st_path(st);
    char name[256];
    for (int i = 0; i < p->n_rows; i++) {
        const struct mv_peft_row *r = &p->rows[i];
        snprintf(name, sizeof name, "param/%s", r->name);
        const struct medvlm_tensor_info *t = medvlm_st_find(st, name);
        if (!t)
            return mv_err(MEDVLM_ERR_MISSING,
                          "%s: no tensor \"%s\" (a checkpoint of another "
                          "fine-tuning mode or model?)",
                          path, name);
        if (t->dtype != MEDVLM_DTYPE_F32 || t->nbytes != r->numel * sizeof(float))
            return mv_err(MEDVLM_ERR_SHAPE,
                          "%s: tensor \"%s\" holds %zu bytes of %s, expected %zu "
                          "F32 values",
                          path, name, t->nbytes, medvlm_dtype_name(t->dtype), r->numel);
    }
    const struct medvlm_tensor_info *s = medvlm_st_find(st, "optim/state");
    const struct medvlm_tensor_info *k = medvlm_st_find(st, "optim/step");
    size_t n = optim_state_len(p);
    if (!s || s->dtype != MEDVLM_DTYPE_F32 || s->nbytes != n * sizeof(float))
        return mv_err(MEDVLM_ERR_SHAPE,
                      "%s: optim/state must be %zu F32 values (another optimiser?)", path, n);
    if (!k || k->dtype != MEDVLM_DTYPE_I64 || k->nbytes != 8)
        return mv_err(MEDVLM_ERR_SHAPE, "%s: optim/step must be one I64", path);
    int64_t step;
    memcpy(&step, k->data, 8);
    if (step < 0) return mv_err(MEDVLM_ERR_FORMAT, "%s: optim/step is %lld", path, (long long)step);
    /* everything checked: now overwrite */
    for (int i = 0; i < p->n_rows; i++) {
        const struct mv_peft_row *r = &p->rows[i];
        snprintf(name, sizeof name, "param/%s", r->name);
        memcpy(p->params + r->off, medvlm_st_find(st, name)->data, r->numel * sizeof(float));
    }
    memcpy(p->opt.state, s->data, s->nbytes);
    p->opt.step = (long)step;
    mv_peft_sync(p);
    return MEDVLM_OK;
}

/* ---- the run folder ---- */

static char *lora_regex(unsigned targets)
{
    /* peft matches a string target_modules with re.fullmatch on each module's name: the
     * vision tower's layers only (the text tower has modules of the same names), each module
     * under its own parent */
    char attn[64] = "", mlp[32] = "";
    for (int t = 0; t < MV_LORA_N; t++) {
        if (!(targets & (1u << t))) continue;
        char *dst = t >= MV_LORA_FC1 ? mlp : attn;
        if (dst[0]) strcat(dst, "|");
        strcat(dst, mv_lora_module(t));
    }
    if (attn[0] && mlp[0])
        return mv_asprintf("vision_model\\.encoder\\.layers\\.\\d+\\.(self_attn\\.(%s)|mlp\\.(%s))",
                           attn, mlp);
    return mv_asprintf("vision_model\\.encoder\\.layers\\.\\d+\\.%s\\.(%s)",
                       attn[0] ? "self_attn" : "mlp", attn[0] ? attn : mlp);
}

static enum medvlm_status write_adapter_config(const struct medvlm_peft *p, const char *dir,
                                               const char *base)
{
    cJSON *o = cJSON_CreateObject();
    char *re = lora_regex(p->o.lora_targets), *text = NULL, *path = NULL;
    enum medvlm_status st = MEDVLM_ERR_NOMEM;
    if (!o || !re) goto done;
    cJSON_AddStringToObject(o, "peft_type", "LORA");
    cJSON_AddNullToObject(o, "task_type");
    cJSON_AddStringToObject(o, "base_model_name_or_path", base ? base : "");
    cJSON_AddNumberToObject(o, "r", p->o.lora_rank);
    cJSON_AddNumberToObject(o, "lora_alpha", p->o.lora_alpha);
    cJSON_AddNumberToObject(o, "lora_dropout", 0.0);
    cJSON_AddStringToObject(o, "target_modules", re);
    cJSON_AddStringToObject(o, "bias", "none");
    cJSON_AddBoolToObject(o, "fan_in_fan_out", 0);
    cJSON_AddBoolToObject(o, "inference_mode", 1);
    cJSON_AddBoolToObject(o, "init_lora_weights", 1);
    cJSON_AddNullToObject(o, "modules_to_save");
    text = cJSON_Print(o);
    path = mv_path_join(dir, "adapter_config.json");
    if (!text || !path) goto done;
    st = mv_write_file_atomic(path, text, strlen(text));
done:
    cJSON_Delete(o);
    cJSON_free(text);
    mv_free(re);
    mv_free(path);
    return st;
}

enum medvlm_status medvlm_peft_save_run(const struct medvlm_peft *p, const char *dir,
                                        const char *const *classes)
{
    struct medvlm_st_writer *w = NULL;
    char name[256], *path = NULL;
    const char *base = p->m->dir;
    int lora = p->o.mode == MEDVLM_PEFT_LORA;
    enum medvlm_status st = medvlm_st_writer_init(&w);
    if (st) goto done;
    if ((st = medvlm_st_writer_meta(w, "format", "pt"))) goto done;
    if ((st = medvlm_st_writer_meta(w, "medvlm_peft", medvlm_peft_mode_name(p->o.mode)))) goto done;
    if ((st = mv_provenance_write(w, &(struct medvlm_provenance){p->m->fingerprint, base})))
        goto done;
    for (int i = 0; i < p->n_rows; i++) {
        const struct mv_peft_row *r = &p->rows[i];
        if (r->param < 0 && r->layer < 0) continue; /* the head: its own file */
        /* peft's keys: base_model.model.<module>.lora_A.weight (no adapter name) */
        snprintf(name, sizeof name, "%s%s", r->layer >= 0 ? "base_model.model." : "", r->name);
        if ((st = medvlm_st_writer_add(w, name, MEDVLM_DTYPE_F32, r->ndim, r->shape,
                                       p->params + r->off)))
            goto done;
    }
    if (p->o.mode != MEDVLM_PEFT_HEAD) {
        path = mv_path_join(dir, lora ? "adapter_model.safetensors" : "trained_params.safetensors");
        if (!path || (st = medvlm_st_writer_save(w, path))) goto done;
        mv_free(path);
        path = NULL;
        if (lora && (st = write_adapter_config(p, dir, base))) goto done;
    }
    /* the head: prototypes, the logit scale and the class names, as a prototypes file */
    path = mv_path_join(dir, "head.safetensors");
    if (!path) {
        st = MEDVLM_ERR_NOMEM;
        goto done;
    }
    char **names = NULL;
    if (!classes) { /* "0", "1", ...: a prototypes file names its classes */
        names = mv_calloc((size_t)p->K, sizeof *names);
        for (int k = 0; names && k < p->K; k++) names[k] = mv_asprintf("%d", k);
        for (int k = 0; names && k < p->K; k++)
            if (!names[k]) st = MEDVLM_ERR_NOMEM;
        if (!names) st = MEDVLM_ERR_NOMEM;
    }
    if (!st)
        st = medvlm_prototypes_save(path, p->protos, p->K, p->D, p->m->logit_scale,
                                    classes ? classes : (const char *const *)names,
                                    &(struct medvlm_provenance){p->m->fingerprint, base});
    for (int k = 0; names && k < p->K; k++) mv_free(names[k]);
    mv_free(names);
done:
    medvlm_st_writer_free(w);
    mv_free(path);
    return st;
}

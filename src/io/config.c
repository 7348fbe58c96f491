/*
 * config.c - config.json (CLIPConfig) and preprocessor_config.json (CLIPImageProcessor),
 * read as transformers 4.39 reads them: missing keys take its defaults, unknown keys and
 * nulls are ignored.
 */
#include "io.h"

#include <stdio.h>
#include <string.h>

/* No real CLIP size is near this; it keeps products of sizes far from overflow. */
#define MV_MAX_DIM (1 << 20)

void medvlm_config_default(struct medvlm_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->projection_dim = 512;
    cfg->logit_scale_init_value = 2.6592f;
    struct medvlm_tower_config *t = &cfg->text, *v = &cfg->vision;
    t->hidden_size = 512;
    t->intermediate_size = 2048;
    t->num_hidden_layers = 12;
    t->num_attention_heads = 8;
    t->hidden_act = MEDVLM_ACT_QUICK_GELU;
    t->layer_norm_eps = 1e-5f;
    t->vocab_size = 49408;
    t->max_position_embeddings = 77;
    t->pad_token_id = 1;
    t->bos_token_id = 49406;
    t->eos_token_id = 49407;
    v->hidden_size = 768;
    v->intermediate_size = 3072;
    v->num_hidden_layers = 12;
    v->num_attention_heads = 12;
    v->hidden_act = MEDVLM_ACT_QUICK_GELU;
    v->layer_norm_eps = 1e-5f;
    v->num_channels = 3;
    v->image_size = 224;
    v->patch_size = 32;
}

static enum medvlm_status read_act(const char *file, const cJSON *obj, const char *where,
                                   enum medvlm_act *out)
{
    const cJSON *v = mv_json_get(obj, "hidden_act");
    if (!v) return MEDVLM_OK;
    if (cJSON_IsString(v)) {
        if (strcmp(v->valuestring, "quick_gelu") == 0) {
            *out = MEDVLM_ACT_QUICK_GELU;
            return MEDVLM_OK;
        }
        if (strcmp(v->valuestring, "gelu") == 0) {
            *out = MEDVLM_ACT_GELU;
            return MEDVLM_OK;
        }
    }
    return mv_err(MEDVLM_ERR_UNSUPPORTED,
                  "%s: %s.hidden_act %s%s%s is not supported (expected \"quick_gelu\" or \"gelu\")",
                  file, where, cJSON_IsString(v) ? "\"" : "",
                  cJSON_IsString(v) ? v->valuestring : "(not a string)",
                  cJSON_IsString(v) ? "\"" : "");
}

static enum medvlm_status read_tower(const char *file, const cJSON *obj, const char *where,
                                     struct medvlm_tower_config *t)
{
    enum medvlm_status st;
    if (!obj) return MEDVLM_OK;
    if (!cJSON_IsObject(obj))
        return mv_err(MEDVLM_ERR_FORMAT, "%s: \"%s\" must be an object", file, where);
#define INT(key, field)                                                                            \
    if ((st = mv_json_int(file, obj, key, &t->field)) != MEDVLM_OK)                                \
        return mv_err_ctx(st, "%s", where);
    INT("hidden_size", hidden_size)
    INT("intermediate_size", intermediate_size)
    INT("num_hidden_layers", num_hidden_layers)
    INT("num_attention_heads", num_attention_heads)
    INT("vocab_size", vocab_size)
    INT("max_position_embeddings", max_position_embeddings)
    INT("eos_token_id", eos_token_id)
    INT("bos_token_id", bos_token_id)
    INT("pad_token_id", pad_token_id)
    INT("num_channels", num_channels)
    INT("image_size", image_size)
    INT("patch_size", patch_size)
#undef INT
    if ((st = mv_json_float(file, obj, "layer_norm_eps", &t->layer_norm_eps)) != MEDVLM_OK)
        return mv_err_ctx(st, "%s", where);
    return read_act(file, obj, where, &t->hidden_act);
}

static enum medvlm_status check_pos(const char *file, const char *where, const char *key, int v)
{
    if (v <= 0 || v > MV_MAX_DIM)
        return mv_err(MEDVLM_ERR_FORMAT, "%s: %s.%s = %d is out of range (expected 1..%d)", file,
                      where, key, v, MV_MAX_DIM);
    return MEDVLM_OK;
}

static enum medvlm_status check_tower(const char *file, const char *where,
                                      const struct medvlm_tower_config *t, int vision)
{
    enum medvlm_status st;
    if ((st = check_pos(file, where, "hidden_size", t->hidden_size)) ||
        (st = check_pos(file, where, "intermediate_size", t->intermediate_size)) ||
        (st = check_pos(file, where, "num_hidden_layers", t->num_hidden_layers)) ||
        (st = check_pos(file, where, "num_attention_heads", t->num_attention_heads)))
        return st;
    if (t->num_hidden_layers > 1024)
        return mv_err(MEDVLM_ERR_FORMAT, "%s: %s.num_hidden_layers = %d is out of range", file,
                      where, t->num_hidden_layers);
    if (t->hidden_size % t->num_attention_heads != 0)
        return mv_err(MEDVLM_ERR_FORMAT,
                      "%s: %s.hidden_size %d is not divisible by num_attention_heads %d", file,
                      where, t->hidden_size, t->num_attention_heads);
    if (!(t->layer_norm_eps > 0))
        return mv_err(MEDVLM_ERR_FORMAT, "%s: %s.layer_norm_eps must be > 0", file, where);
    if (vision) {
        if ((st = check_pos(file, where, "image_size", t->image_size)) ||
            (st = check_pos(file, where, "patch_size", t->patch_size)))
            return st;
        if (t->num_channels != 3)
            return mv_err(MEDVLM_ERR_UNSUPPORTED, "%s: %s.num_channels = %d (only 3 is supported)",
                          file, where, t->num_channels);
        if (t->patch_size > t->image_size)
            return mv_err(MEDVLM_ERR_FORMAT, "%s: %s.patch_size %d exceeds image_size %d", file,
                          where, t->patch_size, t->image_size);
    } else {
        if ((st = check_pos(file, where, "vocab_size", t->vocab_size)) ||
            (st = check_pos(file, where, "max_position_embeddings", t->max_position_embeddings)))
            return st;
    }
    return MEDVLM_OK;
}

static enum medvlm_status config_validate(const char *file, const struct medvlm_config *cfg)
{
    enum medvlm_status st = check_pos(file, "config", "projection_dim", cfg->projection_dim);
    if (st) return st;
    if ((st = check_tower(file, "text_config", &cfg->text, 0))) return st;
    return check_tower(file, "vision_config", &cfg->vision, 1);
}

enum medvlm_status mv_config_from_json(const char *file, const cJSON *root,
                                       struct medvlm_config *cfg)
{
    enum medvlm_status st;
    medvlm_config_default(cfg);
    if (!cJSON_IsObject(root))
        return mv_err(MEDVLM_ERR_FORMAT, "%s: expected a JSON object (a CLIPConfig)", file);
    if ((st = mv_json_int(file, root, "projection_dim", &cfg->projection_dim)) ||
        (st = mv_json_float(file, root, "logit_scale_init_value", &cfg->logit_scale_init_value)))
        return st;
    const cJSON *tc = mv_json_get(root, "text_config"), *vc = mv_json_get(root, "vision_config");
    const cJSON *tcd = mv_json_get(root, "text_config_dict");
    const cJSON *vcd = mv_json_get(root, "vision_config_dict");
    if (tc || vc || tcd || vcd) {
        /* transformers: *_config_dict, when given, takes precedence over *_config */
        if ((st = read_tower(file, tc, "text_config", &cfg->text)) ||
            (st = read_tower(file, tcd, "text_config_dict", &cfg->text)) ||
            (st = read_tower(file, vc, "vision_config", &cfg->vision)) ||
            (st = read_tower(file, vcd, "vision_config_dict", &cfg->vision)))
            return st;
    } else {
        /* flat: a single tower's config at top level */
        const cJSON *mt = mv_json_get(root, "model_type");
        int vision = (cJSON_IsString(mt) && strstr(mt->valuestring, "vision")) ||
                     mv_json_get(root, "patch_size") || mv_json_get(root, "image_size");
        if ((st = read_tower(file, root, vision ? "vision_config" : "text_config",
                             vision ? &cfg->vision : &cfg->text)))
            return st;
    }
    return config_validate(file, cfg);
}

enum medvlm_status medvlm_config_load(const char *path, struct medvlm_config *cfg)
{
    cJSON *root;
    enum medvlm_status st = mv_json_load(path, &root);
    if (st) return st;
    st = mv_config_from_json(path, root, cfg);
    cJSON_Delete(root);
    return st;
}

/* ---------------------------------------------------------------- preprocessor_config.json */

void medvlm_preproc_default(struct medvlm_preproc_config *pp)
{
    static const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
    static const float std[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    pp->do_resize = 1;
    pp->shortest_edge = 224;
    pp->do_center_crop = 1;
    pp->crop_height = pp->crop_width = 224;
    pp->do_rescale = 1;
    pp->rescale_factor = 1.0f / 255.0f;
    pp->do_normalize = 1;
    memcpy(pp->mean, mean, sizeof mean);
    memcpy(pp->std, std, sizeof std);
    pp->resample = MEDVLM_RESAMPLE_BICUBIC;
}

static enum medvlm_status read_vec3(const char *file, const cJSON *root, const char *key,
                                    float out[3])
{
    const cJSON *v = mv_json_get(root, key);
    if (!v) return MEDVLM_OK;
    if (cJSON_IsNumber(v)) { /* a scalar applies to every channel */
        out[0] = out[1] = out[2] = (float)v->valuedouble;
        return MEDVLM_OK;
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 3)
        return mv_err(MEDVLM_ERR_FORMAT, "%s: \"%s\" must be a list of 3 numbers", file, key);
    int i = 0;
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        if (!cJSON_IsNumber(e))
            return mv_err(MEDVLM_ERR_FORMAT, "%s: \"%s\" must be a list of 3 numbers", file, key);
        out[i] = (float)e->valuedouble;
    }
    return MEDVLM_OK;
}

/* "size": 224 | {"shortest_edge": 224} | {"height": h, "width": w} */
static enum medvlm_status read_size(const char *file, const cJSON *root, const char *key, int *edge,
                                    int *h, int *w)
{
    const cJSON *v = mv_json_get(root, key);
    enum medvlm_status st;
    if (!v) return MEDVLM_OK;
    if (cJSON_IsNumber(v)) {
        int n = 0;
        if ((st = mv_json_int(file, root, key, &n))) return st;
        if (edge) *edge = n;
        if (h) *h = *w = n;
    } else if (cJSON_IsObject(v)) {
        if (edge && (st = mv_json_int(file, v, "shortest_edge", edge)))
            return mv_err_ctx(st, "%s", key);
        if (h && (st = mv_json_int(file, v, "height", h))) return mv_err_ctx(st, "%s", key);
        if (h && (st = mv_json_int(file, v, "width", w))) return mv_err_ctx(st, "%s", key);
        if (edge && mv_json_get(v, "height") && !mv_json_get(v, "shortest_edge"))
            return mv_err(MEDVLM_ERR_UNSUPPORTED,
                          "%s: \"%s\" as {height, width} is not supported; expected an integer "
                          "or {\"shortest_edge\": N}",
                          file, key);
    } else {
        return mv_err(MEDVLM_ERR_FORMAT, "%s: \"%s\" must be an integer or an object", file, key);
    }
    return MEDVLM_OK;
}

enum medvlm_status mv_preproc_from_json(const char *file, const cJSON *root,
                                        struct medvlm_preproc_config *pp)
{
    enum medvlm_status st;
    int resample = pp->resample;
    medvlm_preproc_default(pp);
    resample = pp->resample;
    if (!cJSON_IsObject(root))
        return mv_err(MEDVLM_ERR_FORMAT, "%s: expected a JSON object (CLIPImageProcessor)", file);
    if ((st = mv_json_bool(file, root, "do_resize", &pp->do_resize)) ||
        (st = mv_json_bool(file, root, "do_center_crop", &pp->do_center_crop)) ||
        (st = mv_json_bool(file, root, "do_rescale", &pp->do_rescale)) ||
        (st = mv_json_bool(file, root, "do_normalize", &pp->do_normalize)) ||
        (st = mv_json_float(file, root, "rescale_factor", &pp->rescale_factor)) ||
        (st = mv_json_int(file, root, "resample", &resample)) ||
        (st = read_size(file, root, "size", &pp->shortest_edge, NULL, NULL)) ||
        (st = read_size(file, root, "crop_size", NULL, &pp->crop_height, &pp->crop_width)) ||
        (st = read_vec3(file, root, "image_mean", pp->mean)) ||
        (st = read_vec3(file, root, "image_std", pp->std)))
        return st;
    if (resample != MEDVLM_RESAMPLE_BICUBIC && resample != MEDVLM_RESAMPLE_BILINEAR)
        return mv_err(MEDVLM_ERR_UNSUPPORTED,
                      "%s: \"resample\" = %d is not supported (expected 3 = bicubic or 2 = "
                      "bilinear)",
                      file, resample);
    pp->resample = (enum medvlm_resample)resample;
    if (pp->shortest_edge <= 0 || pp->shortest_edge > 65536 || pp->crop_height <= 0 ||
        pp->crop_width <= 0 || pp->crop_height > 65536 || pp->crop_width > 65536)
        return mv_err(MEDVLM_ERR_FORMAT, "%s: \"size\"/\"crop_size\" out of range (1..65536)",
                      file);
    for (int c = 0; c < 3; c++)
        if (!(pp->std[c] != 0))
            return mv_err(MEDVLM_ERR_FORMAT, "%s: \"image_std\"[%d] must be non-zero", file, c);
    return MEDVLM_OK;
}

enum medvlm_status medvlm_preproc_load(const char *path, struct medvlm_preproc_config *pp)
{
    cJSON *root;
    enum medvlm_status st = mv_json_load(path, &root);
    if (st) return st;
    st = mv_preproc_from_json(path, root, pp);
    cJSON_Delete(root);
    return st;
}

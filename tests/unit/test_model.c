/* test_model.c - model folder loading on the golden set, config styles, random init + save. */
#include "check.h"
#include "golden_path.h"
#include "io/io.h"
#include "model/model.h"

#include <unistd.h>

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void test_golden_model(const char *golden)
{
    char dir[4096], wpath[4096];
    snprintf(dir, sizeof dir, "%s/model", golden);
    snprintf(wpath, sizeof wpath, "%s/model/model.safetensors", golden);
    struct medvlm_model *m;
    CHECK_OK(medvlm_model_load(dir, MEDVLM_LOAD_ALL, &m));
    if (!m) return;
    /* parameter counts against the file's own header, computed independently */
    struct medvlm_st *st;
    CHECK_OK(medvlm_st_open(wpath, &st));
    size_t file_text = 0, file_vision = 0, file_other = 0;
    for (int i = 0; i < medvlm_st_count(st); i++) {
        const struct medvlm_tensor_info *t = medvlm_st_at(st, i);
        size_t n = t->nbytes / medvlm_dtype_size(t->dtype);
        if (strstr(t->name, "position_ids")) continue;
        if (!strncmp(t->name, "text_model.", 11) || !strncmp(t->name, "text_projection", 15))
            file_text += n;
        else if (!strncmp(t->name, "vision_model.", 13) ||
                 !strncmp(t->name, "visual_projection", 17))
            file_vision += n;
        else
            file_other += n;
    }
    size_t text = 0, vision = 0, other = 0;
    for (int i = 0; i < medvlm_model_param_count(m); i++) {
        const struct medvlm_param_info *p = medvlm_model_param(m, i);
        CHECK(p->data || p->tower == MEDVLM_TOWER_SHARED, "%s bound", p->name);
        if (p->tower == MEDVLM_TOWER_TEXT)
            text += p->numel;
        else if (p->tower == MEDVLM_TOWER_VISION)
            vision += p->numel;
        else
            other += p->numel;
    }
    CHECK(text == file_text && vision == file_vision && other == file_other,
          "counts text %zu/%zu vision %zu/%zu other %zu/%zu", text, file_text, vision, file_vision,
          other, file_other);
    /* values are the file's: spot-check a weight, zero-copy */
    const struct medvlm_tensor_info *q =
        medvlm_st_find(st, "vision_model.encoder.layers.1.mlp.fc2.weight");
    const struct medvlm_param_info *p =
        medvlm_model_param_find(m, "vision_model.encoder.layers.1.mlp.fc2.weight");
    CHECK(q && p && memcmp(p->data, q->data, q->nbytes) == 0, "fc2 values");
    CHECK(m->owned == NULL, "F32 weights are mapped, not copied");
    CHECK(m->vision.layers[1].fc2.w == p->data, "tower view points at the same data");
    const struct medvlm_tensor_info *ls = medvlm_st_find(st, "logit_scale");
    float lsv;
    memcpy(&lsv, ls->data, 4);
    CHECK(medvlm_model_logit_scale(m) == lsv, "logit_scale");
    medvlm_st_free(st);
    /* config as the manifest's resolved_config */
    char man_path[4096];
    snprintf(man_path, sizeof man_path, "%s/manifest.json", golden);
    cJSON *man;
    CHECK_OK(mv_json_load(man_path, &man));
    const cJSON *rc = cJSON_GetObjectItem(man, "resolved_config");
    const cJSON *tc = cJSON_GetObjectItem(rc, "text_config"),
                *vc = cJSON_GetObjectItem(rc, "vision_config");
    const struct medvlm_config *cfg = medvlm_model_config(m);
    CHECK(cfg->projection_dim == cJSON_GetObjectItem(rc, "projection_dim")->valueint, "proj");
    CHECK(cfg->text.hidden_size == cJSON_GetObjectItem(tc, "hidden_size")->valueint, "text width");
    CHECK(cfg->text.eos_token_id == cJSON_GetObjectItem(tc, "eos_token_id")->valueint, "eos");
    CHECK(cfg->vision.num_hidden_layers == cJSON_GetObjectItem(vc, "num_hidden_layers")->valueint,
          "layers");
    CHECK(cfg->vision.patch_size == cJSON_GetObjectItem(vc, "patch_size")->valueint, "patch");
    CHECK(fabsf(cfg->vision.layer_norm_eps -
                (float)cJSON_GetObjectItem(vc, "layer_norm_eps")->valuedouble) < 1e-12f,
          "eps");
    cJSON_Delete(man);
    medvlm_model_free(m);

    /* one tower only: the other's views stay unset */
    CHECK_OK(medvlm_model_load(dir, MEDVLM_LOAD_TEXT, &m));
    if (m) {
        CHECK(m->text.tok_emb && !m->vision.patch_w && !m->vision.layers[0].q.w, "text only");
        medvlm_model_free(m);
    }
    CHECK_OK(medvlm_model_load(dir, MEDVLM_LOAD_VISION, &m));
    if (m) {
        CHECK(!m->text.tok_emb && m->vision.patch_w, "vision only");
        medvlm_model_free(m);
    }
}

static void test_config_styles(void)
{
    struct medvlm_config c;
    /* new style with missing keys -> transformers defaults */
    write_text("cfg.json",
               "{\"projection_dim\": 16, \"text_config\": {\"hidden_size\": 32, "
               "\"num_attention_heads\": 4, \"foo\": [1,{}]}, \"vision_config\": null}");
    CHECK_OK(medvlm_config_load("cfg.json", &c));
    CHECK(c.projection_dim == 16 && c.text.hidden_size == 32 && c.text.num_hidden_layers == 12 &&
              c.vision.hidden_size == 768 && c.text.eos_token_id == 49407,
          "defaults");
    /* old style: *_config_dict wins over *_config */
    write_text("cfg.json",
               "{\"text_config\": {\"hidden_size\": 64}, \"text_config_dict\": "
               "{\"hidden_size\": 128, \"hidden_act\": \"gelu\"}, \"vision_config_dict\": "
               "{\"patch_size\": 16, \"image_size\": 224}}");
    CHECK_OK(medvlm_config_load("cfg.json", &c));
    CHECK(c.text.hidden_size == 128 && c.text.hidden_act == MEDVLM_ACT_GELU &&
              c.vision.patch_size == 16,
          "dict style");
    /* flat vision config */
    write_text("cfg.json", "{\"model_type\": \"clip_vision_model\", \"hidden_size\": 96, "
                           "\"num_attention_heads\": 3}");
    CHECK_OK(medvlm_config_load("cfg.json", &c));
    CHECK(c.vision.hidden_size == 96 && c.text.hidden_size == 512, "flat");
    write_text("cfg.json", "{\"text_config\": {\"hidden_size\": 30, \"num_attention_heads\": 4}}");
    CHECK_ERR(medvlm_config_load("cfg.json", &c), MEDVLM_ERR_FORMAT, "not divisible");
    write_text("cfg.json", "{\"text_config\": {\"hidden_act\": \"swish\"}}");
    CHECK_ERR(medvlm_config_load("cfg.json", &c), MEDVLM_ERR_UNSUPPORTED, "hidden_act");
    write_text("cfg.json", "{\"text_config\": {\"hidden_size\": \"big\"}}");
    CHECK_ERR(medvlm_config_load("cfg.json", &c), MEDVLM_ERR_FORMAT, "hidden_size");
    write_text("cfg.json", "{\"text_config\": {");
    CHECK_ERR(medvlm_config_load("cfg.json", &c), MEDVLM_ERR_FORMAT, "malformed JSON");
    unlink("cfg.json");

    struct medvlm_preproc_config pp;
    write_text("pp.json",
               "{\"size\": {\"shortest_edge\": 256}, \"crop_size\": {\"height\": 240, "
               "\"width\": 200}, \"do_center_crop\": false, \"image_mean\": [0.5,0.5,0.5]}");
    CHECK_OK(medvlm_preproc_load("pp.json", &pp));
    CHECK(pp.shortest_edge == 256 && pp.crop_height == 240 && pp.crop_width == 200 &&
              !pp.do_center_crop && pp.mean[1] == 0.5f && pp.std[0] > 0.26f,
          "dict sizes");
    write_text("pp.json", "{\"size\": 224, \"crop_size\": 224, \"resample\": 3}");
    CHECK_OK(medvlm_preproc_load("pp.json", &pp));
    CHECK(pp.shortest_edge == 224 && pp.crop_width == 224 && pp.do_center_crop, "int sizes");
    write_text("pp.json", "{\"image_std\": [0, 1, 1]}");
    CHECK_ERR(medvlm_preproc_load("pp.json", &pp), MEDVLM_ERR_FORMAT, "image_std");
    unlink("pp.json");
}

/* A small CLIP: width 16, 2 heads, 32 px images of 8 px patches, text_layers text layers. */
static void small_config(struct medvlm_config *cfg, int text_layers)
{
    medvlm_config_default(cfg);
    cfg->projection_dim = 8;
    cfg->text.hidden_size = 16;
    cfg->text.intermediate_size = 32;
    cfg->text.num_hidden_layers = text_layers;
    cfg->text.num_attention_heads = 2;
    cfg->text.vocab_size = 100;
    cfg->vision.hidden_size = 16;
    cfg->vision.intermediate_size = 32;
    cfg->vision.num_hidden_layers = 2;
    cfg->vision.num_attention_heads = 2;
    cfg->vision.image_size = 32;
    cfg->vision.patch_size = 8;
}

static void test_random_roundtrip(void)
{
    struct medvlm_config cfg;
    small_config(&cfg, 1);
    cfg.vision.hidden_act = MEDVLM_ACT_GELU;
    struct medvlm_model *a, *b;
    CHECK_OK(medvlm_model_init_random(&cfg, 7, &a));
    CHECK_OK(medvlm_model_save(a, "rand-model"));
    CHECK_OK(medvlm_model_load("rand-model", MEDVLM_LOAD_ALL, &b));
    if (a && b) {
        CHECK(medvlm_model_param_count(a) == medvlm_model_param_count(b), "same table");
        for (int i = 0; i < medvlm_model_param_count(a); i++) {
            const struct medvlm_param_info *p = medvlm_model_param(a, i),
                                           *q = medvlm_model_param(b, i);
            CHECK(strcmp(p->name, q->name) == 0 && (p->tower == MEDVLM_TOWER_SHARED ||
                                                    memcmp(p->data, q->data, p->numel * 4) == 0),
                  "%s round trip", p->name);
        }
        CHECK(b->vision.n_pos == 17 && b->cfg.vision.hidden_act == MEDVLM_ACT_GELU, "config kept");
        CHECK(medvlm_model_logit_scale(b) == cfg.logit_scale_init_value, "logit scale");
    }
    medvlm_model_free(a);
    medvlm_model_free(b);
}

/* The fingerprint covers every weight: noise in one encoder matrix changes it; it is the same
 * whichever towers are loaded (features of the vision tower meet prototypes of the text one). */
static void test_fingerprint(void)
{
    struct medvlm_config cfg;
    small_config(&cfg, 2);
    struct medvlm_model *a = NULL, *t = NULL, *v = NULL, *all = NULL, *b = NULL, *bt = NULL;
    CHECK_OK(medvlm_model_init_random(&cfg, 11, &a));
    if (!a) return;
    CHECK_OK(medvlm_model_save(a, "fp-model-a"));
    const struct medvlm_param_info *p =
        medvlm_model_param_find(a, "vision_model.encoder.layers.1.mlp.fc2.weight");
    CHECK(p && p->data, "fc2 of layer 1 in the table");
    if (p && p->data) {
        float *w = (float *)p->data; /* a model made in memory owns its weights */
        w[5] += 1e-3f;
        CHECK_OK(medvlm_model_save(a, "fp-model-b"));
    }
    CHECK_OK(medvlm_model_load("fp-model-a", MEDVLM_LOAD_TEXT, &t));
    CHECK_OK(medvlm_model_load("fp-model-a", MEDVLM_LOAD_VISION, &v));
    CHECK_OK(medvlm_model_load("fp-model-a", MEDVLM_LOAD_ALL, &all));
    CHECK_OK(medvlm_model_load("fp-model-b", MEDVLM_LOAD_ALL, &b));
    CHECK_OK(medvlm_model_load("fp-model-b", MEDVLM_LOAD_TEXT, &bt));
    if (t && v && all && b && bt) {
        const char *ft = medvlm_model_fingerprint(t);
        CHECK(strlen(ft) == 16 && !strcmp(ft, medvlm_model_fingerprint(v)) &&
                  !strcmp(ft, medvlm_model_fingerprint(all)),
              "fingerprints of one model differ by towers: %s %s %s", ft,
              medvlm_model_fingerprint(v), medvlm_model_fingerprint(all));
        CHECK(strcmp(ft, medvlm_model_fingerprint(b)) != 0,
              "noise in vision_model.encoder.layers.1.mlp.fc2.weight keeps the fingerprint %s", ft);
        CHECK(!strcmp(medvlm_model_fingerprint(b), medvlm_model_fingerprint(bt)),
              "the text-only load of the noisy model: %s, all: %s", medvlm_model_fingerprint(bt),
              medvlm_model_fingerprint(b));
    }
    medvlm_model_free(a);
    medvlm_model_free(t);
    medvlm_model_free(v);
    medvlm_model_free(all);
    medvlm_model_free(b);
    medvlm_model_free(bt);
}

/* One NaN weight: refused at load naming the tensor (unless MEDVLM_LOAD_ALLOW_NONFINITE), and
 * the NaN embeddings of such a model refused by the feature extraction, naming the image. */
static void test_nonfinite(const char *golden)
{
    struct medvlm_config cfg;
    small_config(&cfg, 1);
    struct medvlm_model *a = NULL, *b = NULL;
    CHECK_OK(medvlm_model_init_random(&cfg, 5, &a));
    if (!a) return;
    const struct medvlm_param_info *p =
        medvlm_model_param_find(a, "vision_model.encoder.layers.1.mlp.fc2.weight");
    if (!p || !p->data) {
        CHECK(0, "fc2 of layer 1 in the table");
        medvlm_model_free(a);
        return;
    }
    ((float *)p->data)[3 * 32 + 7] = NAN; /* row 3, column 7 of (16, 32) */
    CHECK_OK(medvlm_model_save(a, "nan-model"));
    medvlm_model_free(a);
    CHECK_ERR(medvlm_model_load("nan-model", MEDVLM_LOAD_VISION, &b), MEDVLM_ERR_FORMAT,
              "tensor \"vision_model.encoder.layers.1.mlp.fc2.weight\" holds a non-finite "
              "weight (nan at flat index 103 [3, 7])");
    CHECK_OK(medvlm_model_load("nan-model", MEDVLM_LOAD_TEXT, &b)); /* that tower not loaded */
    medvlm_model_free(b);
    b = NULL;
    CHECK_OK(medvlm_model_load("nan-model", MEDVLM_LOAD_VISION | MEDVLM_LOAD_ALLOW_NONFINITE, &b));
    if (!b || !golden) {
        medvlm_model_free(b);
        return;
    }
    FILE *f = fopen("nan-labels.csv", "w");
    if (f) {
        fputs("image_name,label\nimg0.jpg,a\nimg1.png,b\n", f);
        fclose(f);
    }
    char images[1024];
    snprintf(images, sizeof images, "%s/images", golden);
    struct medvlm_dataset_options o = {.images_dir = images, .labels_path = "nan-labels.csv"};
    struct medvlm_dataset *ds = NULL;
    CHECK_OK(medvlm_dataset_load(&o, &ds));
    if (ds) {
        struct medvlm_features_job job = {.model = b, .data = ds, .batch_size = 2};
        medvlm_preprocess_options_default(&job.pre);
        struct medvlm_features_result res;
        CHECK_ERR(medvlm_features_extract(&job, &res), MEDVLM_ERR_FORMAT,
                  "image 0 (img0.jpg): its embedding is not finite");
    }
    medvlm_dataset_free(ds);
    medvlm_model_free(b);
    remove("nan-labels.csv");
}

int main(void)
{
    test_golden_model(test_golden_dir());
    test_config_styles();
    test_random_roundtrip();
    test_fingerprint();
    test_nonfinite(test_golden_dir());
    return check_summary();
}

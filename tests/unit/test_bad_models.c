/*
 * test_bad_models.c - the catalogue of broken model folders: each must make `medvlm info`
 * exit 1 with one line on stderr naming the file and the problem.
 */
#include "check.h"
#include "io/io.h"

#include <sys/stat.h>
#include <unistd.h>

static const char *cli;

/* Run `medvlm info DIR`, return the exit status; the output (stdout+stderr) in out. */
static int run_info(const char *dir, char *out, size_t cap)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' info '%s' 2>&1", cli, dir);
    return check_run(cmd, out, cap);
}

static void expect_error(const char *dir, const char *needle1, const char *needle2)
{
    char out[8192];
    int rc = run_info(dir, out, sizeof out);
    int lines = 0;
    for (const char *p = out; *p; p++) lines += *p == '\n';
    CHECK(rc == 1 && lines == 1 && strstr(out, needle1) && strstr(out, needle2),
          "%s: exit %d, %d lines, output: %s (wanted \"%s\" and \"%s\")", dir, rc, lines, out,
          needle1, needle2);
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
}

/* A fresh copy of the good model in dir (config, preprocessor, weights). */
static void make_good(struct medvlm_model *m, const char *dir)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "rm");
    CHECK_OK(medvlm_model_save(m, dir));
}

/* Rewrite dir/model.safetensors from the good file: drop `drop`, or replace `name` by a
 * tensor of the given dtype/shape (zero-filled). */
static void rewrite(const char *dir, const char *drop, const char *name, enum medvlm_dtype dt,
                    int ndim, const int64_t *shape)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    struct medvlm_st *st;
    CHECK_OK(medvlm_st_open(path, &st));
    struct medvlm_st_writer *w;
    CHECK_OK(medvlm_st_writer_init(&w));
    static unsigned char zeros[1 << 20];
    for (int i = 0; i < medvlm_st_count(st); i++) {
        const struct medvlm_tensor_info *t = medvlm_st_at(st, i);
        if (drop && strcmp(t->name, drop) == 0) continue;
        if (name && strcmp(t->name, name) == 0)
            CHECK_OK(medvlm_st_writer_add(w, t->name, dt, ndim, shape, zeros));
        else
            CHECK_OK(medvlm_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data));
    }
    medvlm_st_free(st);
    CHECK_OK(medvlm_st_writer_save(w, path));
    medvlm_st_writer_free(w);
}

/* Replace the safetensors file by a hand-written header and n zero data bytes. */
static void raw_weights(const char *dir, const char *hdr, size_t ndata)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    size_t hl = strlen(hdr);
    unsigned char *buf = calloc(8 + hl + ndata, 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, hdr, hl);
    write_bytes(path, buf, 8 + hl + ndata);
    free(buf);
}

int main(void)
{
    cli = getenv("MEDVLM_CLI");
    if (!cli) {
        fprintf(stderr, "MEDVLM_CLI is not set (run through ctest)\n");
        return 1;
    }
    struct medvlm_config cfg;
    medvlm_config_default(&cfg);
    cfg.projection_dim = 8;
    cfg.text.hidden_size = cfg.vision.hidden_size = 16;
    cfg.text.intermediate_size = cfg.vision.intermediate_size = 32;
    cfg.text.num_hidden_layers = cfg.vision.num_hidden_layers = 1;
    cfg.text.num_attention_heads = cfg.vision.num_attention_heads = 2;
    cfg.text.vocab_size = 64;
    cfg.vision.image_size = 32;
    cfg.vision.patch_size = 16;
    struct medvlm_model *m;
    CHECK_OK(medvlm_model_init_random(&cfg, 1, &m));
    if (!m) return check_summary();
    char out[8192];
    const char *d = "bad-model";

    make_good(m, d);
    CHECK(run_info(d, out, sizeof out) == 0 && strstr(out, "parameters total"), "good: %s", out);

    make_good(m, d);
    unlink("bad-model/config.json");
    expect_error(d, "bad-model", "missing config.json");

    make_good(m, d);
    write_bytes("bad-model/config.json", "{\"text_config\": {\"hidden_size\": 16,,}", 36);
    expect_error(d, "bad-model/config.json", "malformed JSON near line 1");

    make_good(m, d);
    struct stat sb;
    CHECK(stat("bad-model/model.safetensors", &sb) == 0 &&
              truncate("bad-model/model.safetensors", sb.st_size - 100) == 0,
          "truncate the data region");
    expect_error(d, "bad-model/model.safetensors", "out of range");

    make_good(m, d);
    CHECK(truncate("bad-model/model.safetensors", 100) == 0, "truncate");
    expect_error(d, "bad-model/model.safetensors", "larger than the file");

    make_good(m, d);
    raw_weights(d, "{\"logit_scale\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4000]}}",
                8);
    expect_error(d, "bad-model/model.safetensors", "out of range");

    make_good(m, d);
    raw_weights(d,
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
                24);
    expect_error(d, "bad-model/model.safetensors", "overlap");

    make_good(m, d);
    rewrite(d, NULL, "text_model.final_layer_norm.weight", MEDVLM_DTYPE_I32, 1, (int64_t[]){16});
    expect_error(d, "text_model.final_layer_norm.weight", "has dtype I32, expected F32");

    make_good(m, d);
    rewrite(d, NULL, "vision_model.encoder.layers.0.mlp.fc1.weight", MEDVLM_DTYPE_F32, 2,
            (int64_t[]){16, 32});
    expect_error(d, "vision_model.encoder.layers.0.mlp.fc1.weight",
                 "shape [16, 32], expected [32, 16]");

    make_good(m, d);
    rewrite(d, "vision_model.pre_layrnorm.bias", NULL, MEDVLM_DTYPE_F32, 0, NULL);
    expect_error(d, "missing tensor \"vision_model.pre_layrnorm.bias\"", "expected shape [16]");

    make_good(m, d);
    write_bytes("bad-model/model.safetensors", "", 0);
    expect_error(d, "bad-model/model.safetensors", "empty");

    make_good(m, d);
    unlink("bad-model/model.safetensors");
    expect_error(d, "bad-model", "missing model.safetensors");

    expect_error("bad-model/config.json", "bad-model/config.json", "is a file, not a folder");
    expect_error("no-such-model-dir", "no-such-model-dir", "No such file");

    /* F16 weights load (converted) and describe themselves */
    make_good(m, d);
    {
        struct medvlm_st *st;
        CHECK_OK(medvlm_st_open("bad-model/model.safetensors", &st));
        struct medvlm_st_writer *w;
        CHECK_OK(medvlm_st_writer_init(&w));
        for (int i = 0; i < medvlm_st_count(st); i++) {
            const struct medvlm_tensor_info *t = medvlm_st_at(st, i);
            size_t n = t->nbytes / 4;
            uint16_t *h = malloc(2 * n + 2);
            for (size_t j = 0; j < n; j++) h[j] = 0x3C00; /* 1.0 */
            CHECK_OK(medvlm_st_writer_add(w, t->name, MEDVLM_DTYPE_F16, t->ndim, t->shape, h));
            free(h);
        }
        medvlm_st_free(st);
        CHECK_OK(medvlm_st_writer_save(w, "bad-model/model.safetensors"));
        medvlm_st_writer_free(w);
        CHECK(run_info(d, out, sizeof out) == 0 && strstr(out, "weight dtypes F16"), "f16: %s",
              out);
        struct medvlm_model *h;
        CHECK_OK(medvlm_model_load(d, MEDVLM_LOAD_VISION, &h));
        if (h) {
            const struct medvlm_param_info *p =
                medvlm_model_param_find(h, "visual_projection.weight");
            CHECK(p && p->data && p->data[0] == 1.0f && p->data[p->numel - 1] == 1.0f, "converted");
            p = medvlm_model_param_find(h, "text_projection.weight");
            CHECK(p && p->data == NULL, "text tower not converted for a vision-only load");
            medvlm_model_free(h);
        }
    }
    medvlm_model_free(m);
    return check_summary();
}

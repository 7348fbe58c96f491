/* test_torchbin.c - pytorch_model.bin (torch.save zip) reading: dtypes, views, model folders
 * against the same values in safetensors, and a catalogue of corrupt and hostile inputs.
 * Fixtures: tests/data/torchbin/ (tools/make_torchbin_fixtures.py). */
#include "check.h"
#include "io/io.h"
#include "model/model.h"

#include <sys/stat.h>
#include <unistd.h>

static char data_dir[2048];

static const char *fixture(const char *name)
{
    static char path[8][4096];
    static int next;
    char *p = path[next++ % 8];
    if (snprintf(p, 4096, "%s/%.1000s", data_dir, name) >= 4096) exit(1);
    return p;
}

static unsigned char *slurp(const char *path, size_t *len)
{
    char *d = NULL;
    if (mv_read_file(path, &d, len) != MEDVLM_OK) {
        fprintf(stderr, "cannot read fixture %s: %s\n", path, medvlm_last_error());
        exit(1);
    }
    return (unsigned char *)d;
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n)) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fclose(f);
}

static void copy_file(const char *from, const char *to)
{
    size_t n;
    unsigned char *b = slurp(from, &n);
    write_bytes(to, b, n);
    mv_free(b);
}

/* Replace every occurrence of `from` by `to` (same length); returns the count. */
static int replace_all(unsigned char *b, size_t n, const char *from, const char *to, size_t len)
{
    int count = 0;
    for (size_t i = 0; i + len <= n; i++)
        if (memcmp(b + i, from, len) == 0) {
            memcpy(b + i, to, len);
            count++;
        }
    return count;
}

static unsigned char *find_bytes(unsigned char *b, size_t n, const char *what, size_t len)
{
    for (size_t i = 0; i + len <= n; i++)
        if (memcmp(b + i, what, len) == 0) return b + i;
    return NULL;
}

/* After editing data.pkl in place, store its new CRC in the central directory. */
static void fix_pickle_crc(unsigned char *b, size_t n)
{
    struct mv_zip z;
    if (mv_zip_open("fix", b, n, &z) != MEDVLM_OK) return;
    for (int i = 0; i < z.count; i++) {
        const struct mv_zip_entry *e = &z.e[i];
        if (e->name_len < 8 || memcmp(e->name + e->name_len - 8, "data.pkl", 8) != 0) continue;
        uint32_t crc = mv_crc32(e->data, (size_t)e->usize);
        unsigned char *c = (unsigned char *)e->name - 46; /* the central record */
        for (int k = 0; k < 4; k++) c[16 + k] = (unsigned char)(crc >> (8 * k));
    }
    mv_zip_free(&z);
}

/* A failure must be one line that names the file. */
static void check_message(const char *path)
{
    const char *m = medvlm_last_error();
    CHECK(strstr(m, path) != NULL && strchr(m, '\n') == NULL, "message \"%s\" names %s", m, path);
}

#define PARSE_ERR(buf, n, want, needle)                                                            \
    do {                                                                                           \
        struct medvlm_st *s_ = NULL;                                                               \
        CHECK_ERR(mv_torchbin_parse("bad.bin", buf, n, &s_), want, needle);                        \
        CHECK(s_ == NULL, "no table on failure");                                                  \
        check_message("bad.bin");                                                                  \
    } while (0)

static void test_dtypes(const char *file)
{
    struct medvlm_st *st = NULL;
    CHECK_OK(mv_torchbin_open(fixture(file), &st));
    if (!st) return;
    static const struct {
        const char *name;
        enum medvlm_dtype dt;
    } want[] = {
        {"f32", MEDVLM_DTYPE_F32},   {"f16", MEDVLM_DTYPE_F16},    {"bf16", MEDVLM_DTYPE_BF16},
        {"f64", MEDVLM_DTYPE_F64},   {"i64", MEDVLM_DTYPE_I64},    {"i32", MEDVLM_DTYPE_I32},
        {"i16", MEDVLM_DTYPE_I16},   {"i8", MEDVLM_DTYPE_I8},      {"u8", MEDVLM_DTYPE_U8},
        {"bool", MEDVLM_DTYPE_BOOL}, {"scalar", MEDVLM_DTYPE_F32}, {"empty", MEDVLM_DTYPE_F32}};
    CHECK(medvlm_st_count(st) == 12, "%s: %d tensors", file, medvlm_st_count(st));
    for (int i = 0; i < 12 && i < medvlm_st_count(st); i++) {
        const struct medvlm_tensor_info *t = medvlm_st_at(st, i);
        CHECK(strcmp(t->name, want[i].name) == 0 && t->dtype == want[i].dt,
              "%s: tensor %d is %s %s, expected %s %s", file, i, t->name,
              medvlm_dtype_name(t->dtype), want[i].name, medvlm_dtype_name(want[i].dt));
    }
    /* values: base = -2..3 */
    for (int k = 0; k < 6; k++) {
        double base = k - 2;
        const struct medvlm_tensor_info *t;
        const unsigned char *p;
        float f;
        double d;
        int64_t l;
        int32_t i32;
        int16_t i16;
        uint16_t h;
        if ((t = medvlm_st_find(st, "f32")) && t->ndim == 2 && t->shape[0] == 2 &&
            t->shape[1] == 3) {
            memcpy(&f, (const unsigned char *)t->data + 4 * k, 4);
            CHECK(f == base / 4, "f32[%d] = %g", k, f);
        } else {
            CHECK(0, "f32 shape");
        }
        if ((t = medvlm_st_find(st, "f16")) && t->nbytes == 12) {
            memcpy(&h, (const unsigned char *)t->data + 2 * k, 2);
            CHECK(mv_f16_to_f32(h) == base / 4, "f16[%d]", k);
        }
        if ((t = medvlm_st_find(st, "bf16")) && t->nbytes == 12) {
            memcpy(&h, (const unsigned char *)t->data + 2 * k, 2);
            CHECK(mv_bf16_to_f32(h) == base / 4, "bf16[%d]", k);
        }
        if ((t = medvlm_st_find(st, "f64")) && t->nbytes == 48) {
            memcpy(&d, (const unsigned char *)t->data + 8 * k, 8);
            CHECK(d == base / 4, "f64[%d]", k);
        }
        if ((t = medvlm_st_find(st, "i64")) && t->nbytes == 48) {
            memcpy(&l, (const unsigned char *)t->data + 8 * k, 8);
            CHECK(l == (int64_t)(k - 2) * ((int64_t)1 << 40), "i64[%d]", k);
        }
        if ((t = medvlm_st_find(st, "i32")) && t->nbytes == 24) {
            memcpy(&i32, (const unsigned char *)t->data + 4 * k, 4);
            CHECK(i32 == (k - 2) * 100000, "i32[%d]", k);
        }
        if ((t = medvlm_st_find(st, "i16")) && t->nbytes == 12) {
            memcpy(&i16, (const unsigned char *)t->data + 2 * k, 2);
            CHECK(i16 == (k - 2) * 1000, "i16[%d]", k);
        }
        if ((t = medvlm_st_find(st, "i8")) && t->nbytes == 6) {
            p = t->data;
            CHECK((int8_t)p[k] == k - 2, "i8[%d]", k);
        }
        if ((t = medvlm_st_find(st, "u8")) && t->nbytes == 6) {
            p = t->data;
            CHECK(p[k] == (unsigned)(248 + k), "u8[%d]", k);
        }
        if ((t = medvlm_st_find(st, "bool")) && t->nbytes == 6) {
            p = t->data;
            CHECK(p[k] == (k > 2), "bool[%d]", k);
        }
    }
    const struct medvlm_tensor_info *t = medvlm_st_find(st, "scalar");
    float f = 0;
    if (t) memcpy(&f, t->data, 4);
    CHECK(t && t->ndim == 0 && t->nbytes == 4 && f == 7.5f, "scalar");
    t = medvlm_st_find(st, "empty");
    CHECK(t && t->ndim == 2 && t->shape[0] == 0 && t->shape[1] == 3 && t->nbytes == 0, "empty");
    const float *fd;
    float *owned;
    CHECK_OK(medvlm_st_get_f32(st, "f32", &fd, &owned, NULL));
    CHECK(owned == NULL && ((uintptr_t)fd & 63) == 0, "contiguous F32 is zero-copy, 64-aligned");
    CHECK(strstr(medvlm_st_path(st), file) != NULL, "path");
    medvlm_st_free(st);
}

static void test_views(void)
{
    struct medvlm_st *st = NULL;
    CHECK_OK(mv_torchbin_open(fixture("views.bin"), &st));
    if (!st) return;
    const float *f;
    float *owned;
    const struct medvlm_tensor_info *t;
    /* t = arange(12).reshape(3, 4).t(): (4, 3), t[i][j] = 4 j + i, copied contiguous */
    CHECK_OK(medvlm_st_get_f32(st, "t", &f, &owned, &t));
    if (f && t) {
        int ok = t->ndim == 2 && t->shape[0] == 4 && t->shape[1] == 3 && t->nbytes == 48;
        for (int i = 0; ok && i < 4; i++)
            for (int j = 0; j < 3; j++) ok &= f[i * 3 + j] == (float)(4 * j + i);
        CHECK(ok, "transposed view made contiguous");
    }
    mv_free(owned);
    /* a = base[:5], b = base[5:]: one storage, b at offset 5, both zero-copy */
    CHECK_OK(medvlm_st_get_f32(st, "b", &f, &owned, &t));
    CHECK(f && owned == NULL && t->shape[0] == 7 && f[0] == 5.0f && f[6] == 11.0f, "offset view");
    const struct medvlm_tensor_info *a = medvlm_st_find(st, "a");
    CHECK(a && t && (const float *)a->data + 5 == (const float *)t->data, "shared storage");
    /* e = arange(4).expand(1, -1): stride 0 on a size-1 dimension is still contiguous */
    t = medvlm_st_find(st, "e");
    if (t && t->nbytes == 32 && t->dtype == MEDVLM_DTYPE_I64) {
        int64_t v[4];
        memcpy(v, t->data, sizeof v);
        CHECK(v[0] == 0 && v[3] == 3, "expanded int64");
    } else {
        CHECK(0, "e missing or mis-typed");
    }
    /* h = base.half().reshape(2, 6)[:, ::2]: (2, 3) = 0 2 4 / 6 8 10 */
    CHECK_OK(medvlm_st_get_f32(st, "h", &f, &owned, &t));
    if (f && t) {
        CHECK(t->dtype == MEDVLM_DTYPE_F16 && t->nbytes == 12 && f[0] == 0 && f[1] == 2 &&
                  f[2] == 4 && f[3] == 6 && f[5] == 10,
              "every other column of an F16 matrix");
    }
    mv_free(owned);
    medvlm_st_free(st);
}

/* Two loaded models hold bit-identical parameters. */
static void compare_models(const char *a_dir, const char *b_dir, enum medvlm_dtype file_dtype)
{
    struct medvlm_model *a = NULL, *b = NULL;
    CHECK_OK(medvlm_model_load(fixture(a_dir), MEDVLM_LOAD_ALL, &a));
    CHECK_OK(medvlm_model_load(fixture(b_dir), MEDVLM_LOAD_ALL, &b));
    if (a && b) {
        CHECK(medvlm_model_param_count(a) == medvlm_model_param_count(b) &&
                  medvlm_model_param_count(a) == 46,
              "param count %d", medvlm_model_param_count(a));
        int same = 0;
        for (int i = 0; i < medvlm_model_param_count(a); i++) {
            const struct medvlm_param_info *p = medvlm_model_param(a, i),
                                           *q = medvlm_model_param(b, i);
            if (p->tower == MEDVLM_TOWER_SHARED) continue;
            bool ok = p->data && q->data && p->numel == q->numel &&
                      memcmp(p->data, q->data, p->numel * sizeof(float)) == 0 &&
                      p->file_dtype == file_dtype && q->file_dtype == file_dtype;
            CHECK(ok, "%s vs %s: %s differs (dtype %s / %s)", a_dir, b_dir, p->name,
                  medvlm_dtype_name(p->file_dtype), medvlm_dtype_name(q->file_dtype));
            same += ok;
        }
        CHECK(same > 40, "compared %d tensors", same);
        CHECK(medvlm_model_logit_scale(a) == medvlm_model_logit_scale(b) &&
                  fabsf(medvlm_model_logit_scale(a) - 2.6592f) < 2e-3f,
              "logit_scale %g vs %g", medvlm_model_logit_scale(a), medvlm_model_logit_scale(b));
        if (file_dtype == MEDVLM_DTYPE_F32)
            CHECK(a->owned == NULL, "F32 pytorch_model.bin weights bound without a model copy");
    }
    medvlm_model_free(a);
    medvlm_model_free(b);
}

static void test_models(void)
{
    compare_models("f32", "f32-st", MEDVLM_DTYPE_F32);
    compare_models("f16", "f16-st", MEDVLM_DTYPE_F16);

    /* views in the f32 checkpoint: the transpose is copied, the rest point into the file */
    char bin[4096];
    snprintf(bin, sizeof bin, "%s", fixture("f32/pytorch_model.bin"));
    struct medvlm_st *st = NULL;
    CHECK_OK(mv_torchbin_open(bin, &st));
    if (st) {
        const struct medvlm_tensor_info *tp = medvlm_st_find(st, "text_projection.weight");
        const struct medvlm_tensor_info *q =
            medvlm_st_find(st, "vision_model.encoder.layers.0.self_attn.q_proj.weight");
        const struct medvlm_tensor_info *k =
            medvlm_st_find(st, "vision_model.encoder.layers.0.self_attn.k_proj.weight");
        const struct medvlm_tensor_info *pid =
            medvlm_st_find(st, "text_model.embeddings.position_ids");
        CHECK(tp && tp->ndim == 2 && tp->shape[0] == 8 && tp->shape[1] == 16, "transpose shape");
        CHECK(q && k && (const unsigned char *)k->data == (const unsigned char *)q->data + 1024,
              "shared storage: k at offset 256 elements after q, zero-copy");
        if (pid && pid->ndim == 2 && pid->nbytes == 16 * 8) {
            int64_t v[16];
            memcpy(v, pid->data, sizeof v);
            int ok = pid->dtype == MEDVLM_DTYPE_I64;
            for (int i = 0; i < 16; i++) ok &= v[i] == i;
            CHECK(ok, "expanded position_ids [1, 16] read as arange");
        } else {
            CHECK(0, "position_ids missing or mis-shaped");
        }
        medvlm_st_free(st);
    }

    /* one tower only */
    struct medvlm_model *m = NULL;
    CHECK_OK(medvlm_model_load(fixture("f32"), MEDVLM_LOAD_TEXT, &m));
    if (m) CHECK(m->text.proj && !m->vision.patch_w, "text only");
    medvlm_model_free(m);

    /* both files: model.safetensors wins (the .bin here is garbage and must not be read) */
    mkdir("tb-both", 0755);
    copy_file(fixture("f32-st/config.json"), "tb-both/config.json");
    copy_file(fixture("f32-st/model.safetensors"), "tb-both/model.safetensors");
    write_bytes("tb-both/pytorch_model.bin", "garbage", 7);
    CHECK_OK(medvlm_model_load("tb-both", MEDVLM_LOAD_ALL, &m));
    medvlm_model_free(m);

    /* only a broken pytorch_model.bin: the error names that file */
    unlink("tb-both/model.safetensors");
    CHECK_ERR(medvlm_model_load("tb-both", MEDVLM_LOAD_ALL, &m), MEDVLM_ERR_FORMAT, "not a zip");
    check_message("tb-both/pytorch_model.bin");
    write_bytes("tb-both/pytorch_model.bin", "", 0);
    CHECK_ERR(medvlm_model_load("tb-both", MEDVLM_LOAD_ALL, &m), MEDVLM_ERR_FORMAT, "empty");
    check_message("tb-both/pytorch_model.bin");
    unlink("tb-both/pytorch_model.bin");
    CHECK_ERR(medvlm_model_load("tb-both", MEDVLM_LOAD_ALL, &m), MEDVLM_ERR_MISSING,
              "pytorch_model.bin");
    /* a checkpoint of another model: the loader names the missing tensor */
    copy_file(fixture("dtypes.bin"), "tb-both/pytorch_model.bin");
    CHECK_ERR(medvlm_model_load("tb-both", MEDVLM_LOAD_ALL, &m), MEDVLM_ERR_MISSING,
              "missing tensor \"logit_scale\"");
    unlink("tb-both/pytorch_model.bin");
    unlink("tb-both/config.json");
    rmdir("tb-both");
}

static void test_refusals(void)
{
    struct medvlm_st *st = NULL;
    unlink("medvlm-evil-ran.txt");
    CHECK_ERR(mv_torchbin_open(fixture("evil.bin"), &st), MEDVLM_ERR_UNSUPPORTED,
              "refusing pickle global os.system");
    check_message("evil.bin");
    CHECK(access("medvlm-evil-ran.txt", F_OK) != 0, "the evil pickle's command did not run");
    CHECK_ERR(mv_torchbin_open(fixture("legacy.bin"), &st), MEDVLM_ERR_UNSUPPORTED,
              "legacy (pre-1.6)");
    check_message("legacy.bin");
    CHECK_ERR(mv_torchbin_open(fixture("bigendian.bin"), &st), MEDVLM_ERR_UNSUPPORTED,
              "saved big-endian");
    check_message("bigendian.bin");
    CHECK_ERR(mv_torchbin_open("no-such.bin", &st), MEDVLM_ERR_IO, "no-such.bin");

    /* an archive re-written by Python's zipfile: records not aligned, byteorder "little" */
    CHECK_OK(mv_torchbin_open(fixture("rezip.bin"), &st));
    if (st) {
        const float *f;
        float *owned;
        CHECK_OK(medvlm_st_get_f32(st, "f32", &f, &owned, NULL));
        CHECK(f && f[0] == -0.5f && f[5] == 0.75f, "unaligned f32 values");
        mv_free(owned);
        medvlm_st_free(st);
        st = NULL;
    }
    CHECK(st == NULL, "no table");
}

static void test_corrupt(void)
{
    size_t n;
    unsigned char *orig = slurp(fixture("dtypes.bin"), &n);
    unsigned char *b = malloc(n);
    struct medvlm_st *st = NULL;
    CHECK_OK(mv_torchbin_parse("ok.bin", orig, n, &st));
    medvlm_st_free(st);

    PARSE_ERR(orig, 0, MEDVLM_ERR_FORMAT, "empty");
    PARSE_ERR("hello world, not a zip", 22, MEDVLM_ERR_FORMAT, "not a zip");
    PARSE_ERR(orig, n - 10, MEDVLM_ERR_FORMAT, "end-of-central-directory");
    PARSE_ERR(orig, n / 2, MEDVLM_ERR_FORMAT, "end-of-central-directory");

    /* every truncation fails cleanly */
    int ok_count = 0;
    for (size_t len = 0; len < n; len++) {
        if (mv_torchbin_parse("bad.bin", orig, len, &st) == MEDVLM_OK) {
            ok_count++;
            medvlm_st_free(st);
        }
    }
    CHECK(ok_count == 0, "%d truncations were accepted", ok_count);

    /* corrupt central directory: the first record's signature */
    memcpy(b, orig, n);
    unsigned char *cd = find_bytes(b, n, "PK\1\2", 4);
    CHECK(cd != NULL, "central directory found");
    if (cd) cd[3] = 9;
    PARSE_ERR(b, n, MEDVLM_ERR_FORMAT, "central directory record 0");
    /* central directory offset pointing past the end: torch writes zip64 end records */
    memcpy(b, orig, n);
    unsigned char *z64 = find_bytes(b, n, "PK\6\6", 4);
    CHECK(z64 != NULL, "zip64 end record");
    if (z64) z64[48 + 6] = 0x7f;
    PARSE_ERR(b, n, MEDVLM_ERR_FORMAT, "outside the archive");
    memcpy(b, orig, n);
    unsigned char *loc = find_bytes(b, n, "PK\6\7", 4);
    if (loc) loc[8] = 0xff;
    PARSE_ERR(b, n, MEDVLM_ERR_FORMAT, "zip64 end record offset");
    /* ... and in a classic end record (Python's zipfile writes no zip64 for small files) */
    size_t rn;
    unsigned char *r = slurp(fixture("rezip.bin"), &rn);
    CHECK(find_bytes(r, rn, "PK\6\6", 4) == NULL && rn > 22, "rezip.bin has no zip64 record");
    r[rn - 22 + 16] = 0xf0;
    PARSE_ERR(r, rn, MEDVLM_ERR_FORMAT, "outside the archive");
    mv_free(r);

    /* missing data.pkl */
    memcpy(b, orig, n);
    CHECK(replace_all(b, n, "dtypes/data.pkl", "dtypes/data.pkx", 15) == 2, "renamed data.pkl");
    PARSE_ERR(b, n, MEDVLM_ERR_MISSING, "no <name>/data.pkl");

    /* storage record missing */
    memcpy(b, orig, n);
    CHECK(replace_all(b, n, "dtypes/data/0", "dtypes/data/Z", 13) == 2, "renamed data/0");
    PARSE_ERR(b, n, MEDVLM_ERR_MISSING, "storage record dtypes/data/0 is missing");

    /* storage offset out of range: f32 (2 x 3 over a 6-element storage) at offset 5 */
    memcpy(b, orig, n);
    unsigned char *off = find_bytes(b, n, "QK\0K\2K\3", 7);
    CHECK(off != NULL, "f32 offset found");
    if (off) off[2] = 5;
    fix_pickle_crc(b, n);
    PARSE_ERR(b, n, MEDVLM_ERR_FORMAT, "past the storage's 6 elements");

    /* storage numel x dtype disagrees with the record size */
    memcpy(b, orig, n);
    unsigned char *numel = find_bytes(b, n, "cpuq\7K\6t", 8);
    CHECK(numel != NULL, "f32 numel found");
    if (numel) numel[6] = 7;
    fix_pickle_crc(b, n);
    PARSE_ERR(b, n, MEDVLM_ERR_FORMAT, "holds 24 bytes but data.pkl says 7 x F32");

    /* a disallowed global in an otherwise valid archive */
    memcpy(b, orig, n);
    CHECK(replace_all(b, n, "torch\nFloatStorage", "torch\nFloatStorag3", 18) == 1, "global");
    fix_pickle_crc(b, n);
    PARSE_ERR(b, n, MEDVLM_ERR_UNSUPPORTED, "refusing pickle global torch.FloatStorag3");

    /* data.pkl damaged without fixing the CRC */
    memcpy(b, orig, n);
    unsigned char *o = find_bytes(b, n, "OrderedDict", 11);
    if (o) o[0] = 'X';
    PARSE_ERR(b, n, MEDVLM_ERR_FORMAT, "CRC");

    /* compressed data.pkl (method 8 in the central directory) */
    memcpy(b, orig, n);
    cd = find_bytes(b, n, "PK\1\2", 4);
    if (cd) cd[10] = 8;
    PARSE_ERR(b, n, MEDVLM_ERR_UNSUPPORTED, "compressed (method 8)");

    free(b);
    mv_free(orig);
}

static enum medvlm_status run_pickle(const char *bytes, size_t n)
{
    struct mv_arena a;
    struct mv_torch_tensor *t;
    int count;
    mv_arena_init(&a, 4096);
    enum medvlm_status st = mv_pickle_state_dict("p.pkl", bytes, n, &a, &t, &count);
    mv_arena_free(&a);
    return st;
}

static void test_pickle_machine(void)
{
    CHECK_ERR(run_pickle("\x80\x02K\x01.", 5), MEDVLM_ERR_FORMAT, "holds a int");
    CHECK_OK(run_pickle("\x80\x02}q\x00.", 6));
    CHECK_ERR(run_pickle("\x80\x02}q\x00", 5), MEDVLM_ERR_FORMAT, "without STOP");
    CHECK_ERR(run_pickle(".", 1), MEDVLM_ERR_FORMAT, "underflow");
    CHECK_ERR(run_pickle("\x80\x09}.", 4), MEDVLM_ERR_UNSUPPORTED, "protocol 9");
    CHECK_ERR(run_pickle("}h\x05.", 4), MEDVLM_ERR_FORMAT, "memo entry 5");
    CHECK_ERR(run_pickle("}r\xff\xff\xff\x7f.", 7), MEDVLM_ERR_LIMIT, "memo index");
    CHECK_ERR(run_pickle("}X\xff\xff\xff\x7f", 6), MEDVLM_ERR_FORMAT, "truncated");
    CHECK_ERR(run_pickle("c__builtin__\neval\n.", 19), MEDVLM_ERR_UNSUPPORTED, "__builtin__.eval");
    CHECK_ERR(run_pickle("\x8c\x08"
                         "builtins\x8c\x04"
                         "exec\x93.",
                         17),
              MEDVLM_ERR_UNSUPPORTED, "builtins.exec");
    CHECK_ERR(run_pickle("ctorch\nFloatStorage\n)R.", 23), MEDVLM_ERR_UNSUPPORTED,
              "called directly");
    CHECK_ERR(run_pickle("}K\x01K\x02s.", 8), MEDVLM_ERR_FORMAT, "key 0 is a int");
    CHECK_ERR(run_pickle("}X\x01\x00\x00\x00"
                         "aK\x02s.",
                         13),
              MEDVLM_ERR_UNSUPPORTED, "\"a\" is a int");
    CHECK_ERR(run_pickle("i", 1), MEDVLM_ERR_UNSUPPORTED, "opcode 0x69");
    CHECK_ERR(run_pickle("K\x01\x85Q.", 5), MEDVLM_ERR_FORMAT, "persistent id");
    CHECK_ERR(run_pickle("K\x01K\x02"
                         "b.",
                         6),
              MEDVLM_ERR_UNSUPPORTED, "BUILD on a int");
    CHECK_ERR(run_pickle("(K\x01K\x02K\x03"
                         "d.",
                         9),
              MEDVLM_ERR_FORMAT, "odd number");
    CHECK_ERR(run_pickle("(K\x01u.", 5), MEDVLM_ERR_FORMAT, "below its MARK");
    /* deep marks and a long stack hit the limits, not the memory */
    size_t big = (1u << 16) + 10;
    char *p = malloc(big + 1);
    memset(p, '(', big);
    CHECK_ERR(run_pickle(p, big), MEDVLM_ERR_LIMIT, "nested MARKs");
    free(p);
    big = (1u << 21) + 10;
    p = malloc(big);
    memset(p, '2', big); /* DUP: a deep stack of one object */
    p[0] = 'N';
    CHECK_ERR(run_pickle(p, big), MEDVLM_ERR_LIMIT, "stack deeper");
    for (size_t i = 0; i + 1 < big; i += 2) { /* EMPTY_TUPLE POP: many objects, flat stack */
        p[i] = ')';
        p[i + 1] = '0';
    }
    CHECK_ERR(run_pickle(p, big), MEDVLM_ERR_LIMIT, "pickle objects");
    free(p);

    /* every truncation of a real data.pkl fails cleanly; the whole one succeeds */
    size_t n;
    unsigned char *file = slurp(fixture("proto4.bin"), &n);
    struct mv_zip z;
    CHECK_OK(mv_zip_open("proto4.bin", file, n, &z));
    const struct mv_zip_entry *e = mv_zip_find(&z, "proto4/data.pkl", 15);
    CHECK(e != NULL, "proto4/data.pkl");
    if (e) {
        CHECK_OK(run_pickle((const char *)e->data, (size_t)e->usize));
        int accepted = 0;
        for (size_t len = 0; len < e->usize; len++)
            accepted += run_pickle((const char *)e->data, len) == MEDVLM_OK;
        CHECK(accepted == 0, "%d truncated pickles accepted", accepted);
        /* every single-byte change either fails with a message or still parses */
        unsigned char *copy = malloc((size_t)e->usize);
        for (size_t i = 0; i < e->usize; i++) {
            memcpy(copy, e->data, (size_t)e->usize);
            copy[i] ^= 0x5a;
            if (run_pickle((const char *)copy, (size_t)e->usize) != MEDVLM_OK)
                CHECK(medvlm_last_error()[0] != '\0', "byte %zu: failure without message", i);
        }
        free(copy);
    }
    mv_zip_free(&z);
    mv_free(file);
}

int main(void)
{
    const char *src = check_env_dir("MEDVLM_SOURCE_DIR", "../..");
    snprintf(data_dir, sizeof data_dir, "%s/tests/data/torchbin", src);
    struct stat sb;
    if (stat(data_dir, &sb) != 0) {
        fprintf(stderr, "fixtures not found in %s: set MEDVLM_SOURCE_DIR to the repository\n",
                data_dir);
        return 1;
    }
    CHECK(mv_crc32("123456789", 9) == 0xcbf43926u, "CRC-32 check value %08x",
          mv_crc32("123456789", 9));
    CHECK(mv_crc32("", 0) == 0, "CRC-32 of nothing");
    test_dtypes("dtypes.bin");
    test_dtypes("proto4.bin");
    test_views();
    test_models();
    test_refusals();
    test_corrupt();
    test_pickle_machine();
    return check_summary();
}

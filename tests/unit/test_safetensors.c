/* test_safetensors.c - writer/reader round trip, dtype conversion, and every validation rule. */
#include "check.h"
#include "io/io.h"

#include <unistd.h>

/* Build a file from a raw header string and n data bytes. */
static enum medvlm_status parse_raw(const char *hdr, size_t ndata, struct medvlm_st **out)
{
    size_t hl = strlen(hdr);
    unsigned char *buf = calloc(8 + hl + ndata + 1, 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, hdr, hl);
    enum medvlm_status st = mv_st_parse("raw.safetensors", buf, 8 + hl + ndata, out);
    if (st == MEDVLM_OK) medvlm_st_free(*out); /* data points into buf */
    free(buf);
    return st;
}

int main(void)
{
    /* round trip with metadata and several dtypes */
    struct medvlm_st_writer *w;
    CHECK_OK(medvlm_st_writer_init(&w));
    float f[6] = {1, -2, 3.5f, 0, 1e-8f, 6};
    int64_t l[3] = {-1, 0, 1ll << 40};
    uint8_t u[5] = {0, 1, 2, 254, 255};
    CHECK_OK(medvlm_st_writer_add(w, "f", MEDVLM_DTYPE_F32, 2, (int64_t[]){2, 3}, f));
    CHECK_OK(medvlm_st_writer_add(w, "l", MEDVLM_DTYPE_I64, 1, (int64_t[]){3}, l));
    CHECK_OK(medvlm_st_writer_add(w, "u", MEDVLM_DTYPE_U8, 1, (int64_t[]){5}, u));
    float s = 2.5f;
    CHECK_OK(medvlm_st_writer_add(w, "scalar", MEDVLM_DTYPE_F32, 0, NULL, &s));
    CHECK_ERR(medvlm_st_writer_add(w, "f", MEDVLM_DTYPE_F32, 1, (int64_t[]){1}, f), MEDVLM_ERR_ARG,
              "twice");
    CHECK_OK(medvlm_st_writer_meta(w, "classes", "NC,G3"));
    CHECK_OK(medvlm_st_writer_save(w, "rt.safetensors"));
    medvlm_st_writer_free(w);

    struct medvlm_st *st;
    CHECK_OK(medvlm_st_open("rt.safetensors", &st));
    if (st) {
        CHECK(medvlm_st_count(st) == 4, "count %d", medvlm_st_count(st));
        const struct medvlm_tensor_info *t = medvlm_st_find(st, "f");
        CHECK(t && t->ndim == 2 && t->shape[1] == 3 && ((uintptr_t)t->data & 3) == 0, "f");
        const float *fd;
        float *owned;
        CHECK_OK(medvlm_st_get_f32(st, "f", &fd, &owned, NULL));
        CHECK(owned == NULL && fd && memcmp(fd, f, sizeof f) == 0, "zero-copy F32");
        t = medvlm_st_find(st, "l");
        CHECK(t && memcmp(t->data, l, sizeof l) == 0, "I64");
        t = medvlm_st_find(st, "u");
        CHECK(t && memcmp(t->data, u, sizeof u) == 0, "U8");
        t = medvlm_st_find(st, "scalar");
        CHECK(t && t->ndim == 0 && t->nbytes == 4, "scalar");
        CHECK(medvlm_st_metadata(st, "classes") &&
                  strcmp(medvlm_st_metadata(st, "classes"), "NC,G3") == 0,
              "metadata");
        CHECK(medvlm_st_find(st, "nope") == NULL, "absent");
        CHECK_ERR(medvlm_st_get_f32(st, "l", &fd, &owned, NULL), MEDVLM_ERR_SHAPE, "dtype I64");
        medvlm_st_free(st);
    }
    unlink("rt.safetensors");

    /* F16 / BF16 conversion */
    CHECK(mv_f16_to_f32(0x3C00) == 1.0f && mv_f16_to_f32(0xC000) == -2.0f, "f16 normal");
    CHECK(mv_f16_to_f32(0x0001) == ldexpf(1, -24), "f16 subnormal");
    CHECK(isinf(mv_f16_to_f32(0x7C00)) && isnan(mv_f16_to_f32(0x7E00)), "f16 inf/nan");
    CHECK(mv_bf16_to_f32(0x3F80) == 1.0f && mv_bf16_to_f32(0x4049) == 3.140625f, "bf16");

    /* validation catalogue */
    struct medvlm_st *x;
    unsigned char small[4] = {0};
    CHECK_ERR(mv_st_parse("tiny", small, 4, &x), MEDVLM_ERR_FORMAT, "too short");
    unsigned char huge[16] = {0xff, 0xff, 0, 0, 0, 0, 0, 0};
    CHECK_ERR(mv_st_parse("huge", huge, 16, &x), MEDVLM_ERR_FORMAT, "larger than the file");
    CHECK_ERR(parse_raw("{\"a\":", 0, &x), MEDVLM_ERR_FORMAT, "not valid JSON");
    CHECK_ERR(parse_raw("[1,2]", 0, &x), MEDVLM_ERR_FORMAT, "must be a JSON object");
    /* the header must be UTF-8 (the format says so; Python's json refuses other bytes) */
    CHECK_ERR(parse_raw("{\"__metadata__\":{\"n\":\"caf\xe9\"}}", 0, &x), MEDVLM_ERR_FORMAT,
              "header is not valid UTF-8 (byte 0xE9 at file offset 33)");
    CHECK_ERR(parse_raw("{\"__metadata__\":{\"n\":\"\xed\xa0\x80\"}}", 0, &x), MEDVLM_ERR_FORMAT,
              "not valid UTF-8 (byte 0xED"); /* a surrogate */
    CHECK_OK(parse_raw("{\"__metadata__\":{\"n\":\"caf\xc3\xa9 \xf0\x9f\x94\xac\"}}", 0, &x));
    /* and the writer refuses to make such a header, naming the key and the byte */
    struct medvlm_st_writer *wu;
    CHECK_OK(medvlm_st_writer_init(&wu));
    CHECK_ERR(medvlm_st_writer_meta(wu, "image_names", "[\"caf\xe9.jpg\"]"), MEDVLM_ERR_ARG,
              "metadata 'image_names' is not valid UTF-8 (byte 0xE9 at offset 5, near "
              "\"[\"caf\\xE9.jpg\"]\")");
    CHECK_ERR(medvlm_st_writer_add(wu, "t\xff", MEDVLM_DTYPE_U8, 1, (int64_t[]){1}, "x"),
              MEDVLM_ERR_ARG, "tensor name \"t\\xFF\" is not valid UTF-8");
    medvlm_st_writer_free(wu);
    CHECK_ERR(parse_raw("{\"a\":{\"dtype\":\"Q8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, &x),
              MEDVLM_ERR_UNSUPPORTED, "unknown or missing dtype");
    CHECK_ERR(parse_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, &x),
              MEDVLM_ERR_FORMAT, "out of range");
    CHECK_ERR(parse_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, &x),
              MEDVLM_ERR_FORMAT, "needs 12");
    CHECK_ERR(parse_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                        12, &x),
              MEDVLM_ERR_FORMAT, "overlap");
    CHECK_ERR(parse_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, &x),
              MEDVLM_ERR_FORMAT, "non-negative");
    CHECK_ERR(parse_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
                        "\"data_offsets\":[0,8]}}",
                        8, &x),
              MEDVLM_ERR_OVERFLOW, "overflows");
    CHECK_ERR(parse_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,4]}}", 8, &x),
              MEDVLM_ERR_FORMAT, "out of range");
    CHECK_ERR(parse_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                        "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                        8, &x),
              MEDVLM_ERR_FORMAT, "appears twice");
    CHECK_ERR(parse_raw("{\"__metadata__\":{\"k\":1}}", 0, &x), MEDVLM_ERR_FORMAT,
              "must be a string");
    CHECK_OK(parse_raw(
        "{\"__metadata__\":{\"format\":\"pt\"},\"e\":{\"dtype\":\"F32\",\"shape\":[0],"
        "\"data_offsets\":[0,0]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
        4, &x));
    CHECK_ERR(medvlm_st_open("/nonexistent.safetensors", &x), MEDVLM_ERR_IO,
              "/nonexistent.safetensors");
    FILE *e = fopen("empty.safetensors", "w");
    fclose(e);
    CHECK_ERR(medvlm_st_open("empty.safetensors", &x), MEDVLM_ERR_FORMAT, "empty");
    unlink("empty.safetensors");
    return check_summary();
}

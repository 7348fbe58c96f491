/*
 * test_image.c - decoding (every input made here with libjpeg/libpng/libtiff writers, plus the
 * real TIFF/JPEG tiles of MEDVLM_SHARED_DATA against checksums of Pillow's decode) and bad
 * input (truncated, bad CRC, huge, empty, text named .jpg): each fails with a message naming
 * the file.
 */
#include "check.h"
#include "image/image.h"

#include <stdio.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>
#include <tiffio.h>

/* ---------------------------------------------------------------- helpers */

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

static uint32_t rng_state = 12345;
static uint8_t rnd8(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (uint8_t)(rng_state >> 24);
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

/* a smooth colour image, so that JPEG reproduces it closely */
static uint8_t *smooth_rgb(int w, int h)
{
    uint8_t *p = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            p[(y * w + x) * 3] = (uint8_t)(40 + 150 * x / w);
            p[(y * w + x) * 3 + 1] = (uint8_t)(200 - 120 * y / h);
            p[(y * w + x) * 3 + 2] = (uint8_t)(90 + (x + y) / 2);
        }
    return p;
}

static int max_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
    int m = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        if (d > m) m = d;
    }
    return m;
}

/* ---------------------------------------------------------------- writers */

static int jpeg_ycck; /* make_jpeg: store CMYK input as YCCK (Adobe transform 2) */

static unsigned char *make_jpeg(const uint8_t *px, int w, int h, int comps, J_COLOR_SPACE cs,
                                int quality, int progressive, unsigned long *size)
{
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    unsigned char *buf = NULL;
    *size = 0;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    jpeg_mem_dest(&ci, &buf, size);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = comps;
    ci.in_color_space = cs;
    jpeg_set_defaults(&ci);
    if (jpeg_ycck && cs == JCS_CMYK) {
        jpeg_set_colorspace(&ci, JCS_YCCK);
        for (int c = 0; c < ci.num_components; c++) /* no chroma subsampling: exact blocks */
            ci.comp_info[c].h_samp_factor = ci.comp_info[c].v_samp_factor = 1;
    }
    jpeg_set_quality(&ci, quality, TRUE);
    if (progressive) jpeg_simple_progression(&ci);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW r = (JSAMPROW)(px + (size_t)ci.next_scanline * w * comps);
        jpeg_write_scanlines(&ci, &r, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    return buf;
}

static char warnings[1024];
static void capture_log(enum medvlm_log_level level, const char *msg, void *user)
{
    (void)level;
    (void)user;
    size_t n = strlen(warnings);
    snprintf(warnings + n, sizeof warnings - n, "%s\n", msg);
}

struct membuf {
    uint8_t *p;
    size_t n, cap;
};

static void membuf_write(png_structp png, png_bytep d, size_t n)
{
    struct membuf *m = png_get_io_ptr(png);
    if (m->n + n > m->cap) {
        m->cap = (m->n + n) * 2;
        m->p = realloc(m->p, m->cap);
    }
    memcpy(m->p + m->n, d, n);
    m->n += n;
}

static void membuf_flush(png_structp png)
{
    (void)png;
}

/* rows: h rows of packed PNG row bytes (big-endian 16-bit samples) */
static struct membuf make_png(int w, int h, int bd, int ct, int interlace, const uint8_t *rows,
                              const png_color *pal, int npal)
{
    struct membuf m = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        fprintf(stderr, "libpng writer failed\n");
        exit(1);
    }
    png_set_write_fn(png, &m, membuf_write, membuf_flush);
    png_set_check_for_invalid_index(png, 0);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, bd, ct,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (pal) png_set_PLTE(png, info, pal, npal);
    png_text txt = {.compression = PNG_TEXT_COMPRESSION_NONE, .key = "Comment", .text = "medvlm"};
    png_set_text(png, info, &txt, 1);
    png_write_info(png, info);
    if (rows) {
        size_t rb = png_get_rowbytes(png, info);
        png_bytep *rp = malloc(sizeof *rp * (size_t)h);
        for (int y = 0; y < h; y++) rp[y] = (png_bytep)(rows + (size_t)y * rb);
        png_write_image(png, rp);
        png_write_end(png, info);
        free(rp);
    }
    png_destroy_write_struct(&png, &info);
    return m;
}

/* ---------------------------------------------------------------- decode tests */

static void test_sniff(void)
{
    CHECK(medvlm_image_sniff("\xff\xd8\xff\xe0", 4) == MEDVLM_IMAGE_JPEG, "jpeg");
    CHECK(medvlm_image_sniff("\x89PNG\r\n\x1a\n", 8) == MEDVLM_IMAGE_PNG, "png");
    CHECK(medvlm_image_sniff("II*\0", 4) == MEDVLM_IMAGE_TIFF, "tiff le");
    CHECK(medvlm_image_sniff("MM\0*", 4) == MEDVLM_IMAGE_TIFF, "tiff be");
    CHECK(medvlm_image_sniff("GIF89a", 6) == MEDVLM_IMAGE_UNKNOWN, "gif");
    CHECK(medvlm_image_sniff("\x89PNG", 4) == MEDVLM_IMAGE_UNKNOWN, "short png");
}

static void test_jpeg(void)
{
    int w = 67, h = 45;
    uint8_t *src = smooth_rgb(w, h);
    unsigned long nb, np;
    unsigned char *base = make_jpeg(src, w, h, 3, JCS_RGB, 95, 0, &nb);
    unsigned char *prog = make_jpeg(src, w, h, 3, JCS_RGB, 95, 1, &np);
    write_file("img_base.jpg", base, nb);
    write_file("img_prog.jpg", prog, np);
    struct medvlm_image a = {0}, b = {0};
    CHECK_OK(medvlm_image_decode_file("img_base.jpg", NULL, &a));
    CHECK_OK(medvlm_image_decode_file("img_prog.jpg", NULL, &b));
    CHECK(a.width == w && a.height == h && b.width == w && b.height == h, "jpeg sizes");
    if (a.rgb && b.rgb) {
        /* same quantised coefficients: progressive decodes bit-identically to baseline */
        CHECK(memcmp(a.rgb, b.rgb, (size_t)w * h * 3) == 0, "progressive == baseline");
        int d = max_diff(a.rgb, src, (size_t)w * h * 3);
        CHECK(d <= 12, "jpeg q95 max diff %d", d);
    }
    medvlm_image_free(&a);
    medvlm_image_free(&b);
    CHECK(a.rgb == NULL && a.width == 0, "free zeroes");

    /* truncated: half the bytes */
    write_file("img_trunc.jpg", base, nb / 2);
    CHECK_ERR(medvlm_image_decode_file("img_trunc.jpg", NULL, &a), MEDVLM_ERR_FORMAT,
              "img_trunc.jpg: truncated JPEG");
    CHECK(a.rgb == NULL, "no pixels on failure");
    /* only the SOI marker (2 bytes), or it and the next marker's first byte */
    CHECK_ERR(medvlm_image_decode_memory(base, 2, "soi.jpg", NULL, &a), MEDVLM_ERR_FORMAT,
              "soi.jpg: truncated JPEG: the data end after 2 bytes, before the image header");
    CHECK_ERR(medvlm_image_decode_memory(base, 3, "soi3.jpg", NULL, &a), MEDVLM_ERR_FORMAT,
              "soi3.jpg: truncated JPEG: the data end after 3 bytes, before the image header");
    /* corrupt data libjpeg tolerates (garbage bytes before a marker): decoded, as Pillow does,
     * with a warning naming the file through the log */
    unsigned char *junk = malloc(nb + 2);
    size_t seg = 4 + ((size_t)base[4] << 8 | base[5]); /* after the first segment (APP0) */
    memcpy(junk, base, seg);
    junk[seg] = junk[seg + 1] = 0x00;
    memcpy(junk + seg + 2, base + seg, nb - seg);
    warnings[0] = '\0';
    medvlm_set_log(capture_log, NULL, MEDVLM_LOG_WARN);
    CHECK_OK(medvlm_image_decode_memory(junk, nb + 2, "junk.jpg", NULL, &a));
    medvlm_set_log(NULL, NULL, MEDVLM_LOG_WARN);
    CHECK(strstr(warnings, "junk.jpg: corrupt JPEG data, decoded anyway as Pillow does (libjpeg: "
                           "Corrupt JPEG data: 2 extraneous bytes before marker"),
          "libjpeg's warning reported: '%s'", warnings);
    medvlm_image_free(&a);
    free(junk);
    /* claims 65000 x 65000: patch the SOF0 frame header */
    unsigned char *big = malloc(nb);
    memcpy(big, base, nb);
    int patched = 0;
    for (unsigned long i = 0; i + 8 < nb; i++)
        if (big[i] == 0xff && big[i + 1] == 0xc0) {
            big[i + 5] = big[i + 7] = 0xfd;
            big[i + 6] = big[i + 8] = 0xe8;
            patched = 1;
            break;
        }
    CHECK(patched, "SOF0 found");
    write_file("img_huge.jpg", big, nb);
    CHECK_ERR(medvlm_image_decode_file("img_huge.jpg", NULL, &a), MEDVLM_ERR_LIMIT,
              "img_huge.jpg: JPEG declares 65000 x 65000 pixels (12.7 GB decoded), over the decode "
              "limit");
    free(big);

    /* grey JPEG -> R = G = B */
    uint8_t *grey = malloc((size_t)w * h);
    for (int i = 0; i < w * h; i++) grey[i] = src[3 * i + 1];
    unsigned long ng;
    unsigned char *gj = make_jpeg(grey, w, h, 1, JCS_GRAYSCALE, 100, 0, &ng);
    CHECK_OK(medvlm_image_decode_memory(gj, ng, "grey.jpg", NULL, &a));
    if (a.rgb) {
        int same = 1, d = 0;
        for (int i = 0; i < w * h; i++) {
            same &= a.rgb[3 * i] == a.rgb[3 * i + 1] && a.rgb[3 * i] == a.rgb[3 * i + 2];
            d = MV_MAX(d, abs(a.rgb[3 * i] - grey[i]));
        }
        CHECK(same && d <= 2, "grey jpeg replicated (max diff %d)", d);
    }
    medvlm_image_free(&a);

    /* CMYK: 16x16 blocks of constant ink at quality 100 decode exactly; Pillow reads the samples
     * as Adobe-inverted CMYK ("CMYK;I") and converts with cmyk2rgb */
    int cw = 32, ch = 16;
    static const uint8_t inks[2][4] = {{10, 200, 90, 30}, {250, 5, 128, 220}};
    uint8_t *cmyk = malloc((size_t)cw * ch * 4);
    for (int y = 0; y < ch; y++)
        for (int x = 0; x < cw; x++) memcpy(cmyk + (y * cw + x) * 4, inks[x / 16], 4);
    unsigned long nc;
    unsigned char *cj = make_jpeg(cmyk, cw, ch, 4, JCS_CMYK, 100, 0, &nc);
    write_file("img_cmyk.jpg", cj, nc);
    CHECK_OK(medvlm_image_decode_file("img_cmyk.jpg", NULL, &a));
    if (a.rgb) {
        int d = 0;
        for (int i = 0; i < cw * ch; i++) {
            const uint8_t *s = inks[(i % cw) / 16];
            uint8_t inv[4] = {(uint8_t)(255 - s[0]), (uint8_t)(255 - s[1]), (uint8_t)(255 - s[2]),
                              (uint8_t)(255 - s[3])};
            uint8_t want[3];
            mv_cmyk_to_rgb(inv, want);
            d = MV_MAX(d, max_diff(a.rgb + 3 * i, want, 3));
        }
        CHECK(d == 0, "cmyk jpeg as Pillow: max diff %d", d);
        /* hand-computed for ink 0: C=245 M=55 Y=165 K=225 -> nk=30 -> (1, 24, 11) */
        CHECK(a.rgb[0] == 1 && a.rgb[1] == 24 && a.rgb[2] == 11, "cmyk pixel 0 = %d %d %d",
              a.rgb[0], a.rgb[1], a.rgb[2]);
    }
    medvlm_image_free(&a);
    /* YCCK (Adobe transform 2): libjpeg turns it back into CMYK, then the same as above; the
     * colour transform rounds, so allow a level or two */
    jpeg_ycck = 1;
    unsigned long ny;
    unsigned char *yj = make_jpeg(cmyk, cw, ch, 4, JCS_CMYK, 100, 0, &ny);
    jpeg_ycck = 0;
    write_file("img_ycck.jpg", yj, ny);
    CHECK_OK(medvlm_image_decode_file("img_ycck.jpg", NULL, &a));
    if (a.rgb) {
        int d = 0;
        for (int i = 0; i < cw * ch; i++) {
            const uint8_t *s = inks[(i % cw) / 16];
            uint8_t inv[4] = {(uint8_t)(255 - s[0]), (uint8_t)(255 - s[1]), (uint8_t)(255 - s[2]),
                              (uint8_t)(255 - s[3])};
            uint8_t want[3];
            mv_cmyk_to_rgb(inv, want);
            d = MV_MAX(d, max_diff(a.rgb + 3 * i, want, 3));
        }
        CHECK(d <= 2, "ycck jpeg: max diff %d", d);
    }
    medvlm_image_free(&a);
    free(yj);
    free(cmyk);
    free(grey);
    free(src);
    free(base);
    free(prog);
    free(gj);
    free(cj);
}

/* expected RGB of one PNG sample layout, from the raw row bytes (the rules of png.c) */
static void png_expect(const uint8_t *rows, int w, int h, int bd, int ct, const png_color *pal,
                       int npal, uint8_t *out)
{
    int ch = ct == 0 ? 1 : ct == 2 ? 3 : ct == 3 ? 1 : ct == 4 ? 2 : 4;
    size_t rb = ((size_t)w * ch * bd + 7) / 8;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const uint8_t *r = rows + y * rb;
            unsigned s[4];
            for (int c = 0; c < ch; c++) {
                size_t bit = ((size_t)x * ch + c) * bd;
                if (bd == 16)
                    s[c] = (unsigned)r[bit / 8] << 8 | r[bit / 8 + 1];
                else if (bd == 8)
                    s[c] = r[bit / 8];
                else
                    s[c] = (r[bit / 8] >> (8 - bd - bit % 8)) & ((1u << bd) - 1);
            }
            uint8_t *o = out + ((size_t)y * w + x) * 3;
            if (ct == 3) {
                if ((int)s[0] < npal)
                    o[0] = pal[s[0]].red, o[1] = pal[s[0]].green, o[2] = pal[s[0]].blue;
                else
                    o[0] = o[1] = o[2] = (uint8_t)s[0];
            } else if (ct == 0 || ct == 4) {
                unsigned v = bd == 16 ? (ct == 0 ? (s[0] > 255 ? 255 : s[0]) : s[0] >> 8)
                                      : s[0] * (bd == 1   ? 255
                                                : bd == 2 ? 85
                                                : bd == 4 ? 17
                                                          : 1);
                o[0] = o[1] = o[2] = (uint8_t)v;
            } else {
                for (int c = 0; c < 3; c++) o[c] = (uint8_t)(bd == 16 ? s[c] >> 8 : s[c]);
            }
        }
}

static void test_png_layouts(void)
{
    static const struct {
        int bd, ct, interlace;
        const char *what;
    } cases[] = {
        {8, 2, 0, "rgb8"},
        {8, 2, 1, "rgb8 interlaced"},
        {16, 2, 0, "rgb16"},
        {16, 6, 1, "rgba16 interlaced"},
        {8, 6, 0, "rgba8"},
        {16, 0, 0, "grey16"},
        {16, 0, 1, "grey16 interlaced"},
        {8, 0, 0, "grey8"},
        {1, 0, 0, "grey1"},
        {2, 0, 1, "grey2 interlaced"},
        {4, 0, 0, "grey4"},
        {8, 4, 0, "grey+alpha8"},
        {16, 4, 0, "grey+alpha16"},
        {8, 3, 0, "palette8"},
        {4, 3, 1, "palette4 interlaced"},
        {1, 3, 0, "palette1"},
    };
    png_color pal[5] = {{10, 20, 30}, {200, 100, 0}, {1, 2, 3}, {255, 255, 255}, {9, 8, 7}};
    int w = 37, h = 23;
    for (size_t t = 0; t < MV_ARRAY_LEN(cases); t++) {
        int bd = cases[t].bd, ct = cases[t].ct;
        int ch = ct == 0 ? 1 : ct == 2 ? 3 : ct == 3 ? 1 : ct == 4 ? 2 : 4;
        size_t rb = ((size_t)w * ch * bd + 7) / 8;
        uint8_t *rows = malloc(rb * h);
        for (size_t i = 0; i < rb * h; i++) rows[i] = rnd8();
        if (ct == 0 && bd == 16) /* many small values so that the clamp and the copy both show */
            for (size_t i = 0; i < rb * h; i += 4) rows[i] = 0;
        if (ct == 3 && bd == 8) /* indices 0..7: 5..7 are past the 5 PLTE entries */
            for (size_t i = 0; i < rb * h; i++) rows[i] &= 7;
        if (ct == 3 && bd == 4)
            for (size_t i = 0; i < rb * h; i++) rows[i] &= 0x33;
        int npal = MV_MIN(5, 1 << bd);
        struct membuf m = make_png(w, h, bd, ct, cases[t].interlace, rows, ct == 3 ? pal : NULL,
                                   ct == 3 ? npal : 0);
        uint8_t *want = malloc((size_t)w * h * 3);
        png_expect(rows, w, h, bd, ct, pal, npal, want);
        struct medvlm_image img;
        CHECK_OK(medvlm_image_decode_memory(m.p, m.n, cases[t].what, NULL, &img));
        if (img.rgb) {
            CHECK(img.width == w && img.height == h, "%s size", cases[t].what);
            int d = max_diff(img.rgb, want, (size_t)w * h * 3);
            CHECK(d == 0, "%s: max diff %d", cases[t].what, d);
        }
        if (bd == 16 && ct == 0 && !cases[t].interlace) write_file("img_grey16.png", m.p, m.n);
        if (bd == 8 && ct == 2 && cases[t].interlace) write_file("img_interlaced.png", m.p, m.n);
        medvlm_image_free(&img);
        free(want);
        free(rows);
        free(m.p);
    }
    /* 16-bit grey as Pillow: mode "I" clamped to 0..255 (checked against Pillow 9.4) */
    uint8_t g16[8] = {0x00, 0x00, 0x00, 0xc8, 0x01, 0x00, 0x12, 0x34};
    struct membuf m = make_png(4, 1, 16, 0, 0, g16, NULL, 0);
    struct medvlm_image img;
    CHECK_OK(medvlm_image_decode_memory(m.p, m.n, "g16.png", NULL, &img));
    if (img.rgb)
        CHECK(img.rgb[0] == 0 && img.rgb[3] == 200 && img.rgb[6] == 255 && img.rgb[9] == 255,
              "grey16 clamp: %d %d %d %d", img.rgb[0], img.rgb[3], img.rgb[6], img.rgb[9]);
    medvlm_image_free(&img);
    free(m.p);
}

static int find_chunk(const struct membuf *m, const char *type)
{
    for (size_t i = 8; i + 8 <= m->n;) {
        uint32_t len = (uint32_t)m->p[i] << 24 | m->p[i + 1] << 16 | m->p[i + 2] << 8 | m->p[i + 3];
        if (memcmp(m->p + i + 4, type, 4) == 0) return (int)i;
        i += 12 + len;
    }
    return -1;
}

static void test_png_bad(void)
{
    int w = 16, h = 16;
    uint8_t *rows = smooth_rgb(w, h);
    struct membuf m = make_png(w, h, 8, 2, 0, rows, NULL, 0);
    struct medvlm_image img;
    /* bad CRC in IDAT (critical) */
    int at = find_chunk(&m, "IDAT");
    CHECK(at > 0, "IDAT found");
    uint8_t *bad = malloc(m.n);
    memcpy(bad, m.p, m.n);
    uint32_t idat_len =
        (uint32_t)bad[at] << 24 | bad[at + 1] << 16 | bad[at + 2] << 8 | bad[at + 3];
    bad[at + 8 + idat_len] ^= 0x55; /* the stored CRC itself: the data still inflates */
    write_file("img_badcrc.png", bad, m.n);
    CHECK_ERR(medvlm_image_decode_file("img_badcrc.png", NULL, &img), MEDVLM_ERR_FORMAT,
              "img_badcrc.png: corrupt PNG: IDAT: CRC error");
    /* bad CRC in tEXt (ancillary): Pillow refuses it too */
    memcpy(bad, m.p, m.n);
    at = find_chunk(&m, "tEXt");
    CHECK(at > 0, "tEXt found");
    bad[at + 9] ^= 1;
    CHECK_ERR(medvlm_image_decode_memory(bad, m.n, "text_crc.png", NULL, &img), MEDVLM_ERR_FORMAT,
              "text_crc.png: corrupt PNG: tEXt: CRC error");
    /* truncated */
    write_file("img_trunc.png", m.p, m.n - 40);
    CHECK_ERR(medvlm_image_decode_file("img_trunc.png", NULL, &img), MEDVLM_ERR_FORMAT,
              "img_trunc.png: truncated PNG");
    CHECK_ERR(medvlm_image_decode_memory(m.p, 20, "sig_only.png", NULL, &img), MEDVLM_ERR_FORMAT,
              "sig_only.png: truncated PNG");
    /* a custom limit */
    struct medvlm_decode_limits lim;
    medvlm_decode_limits_default(&lim);
    lim.max_pixels = 200;
    CHECK_ERR(medvlm_image_decode_memory(m.p, m.n, "small_limit.png", &lim, &img), MEDVLM_ERR_LIMIT,
              "small_limit.png: PNG declares 16 x 16 pixels (1 kB decoded), over the decode limit");
    lim.max_pixels = 0;
    lim.max_width = 15;
    CHECK_ERR(medvlm_image_decode_memory(m.p, m.n, "narrow.png", &lim, &img), MEDVLM_ERR_LIMIT,
              "max 15 x 20000");
    lim.max_width = 16;
    CHECK_OK(medvlm_image_decode_memory(m.p, m.n, "fits.png", &lim, &img));
    medvlm_image_free(&img);
    free(m.p);
    free(bad);
    /* 100000 x 100000: refused from the header, before any allocation */
    struct membuf huge = make_png(100000, 100000, 8, 2, 0, NULL, NULL, 0);
    write_file("img_huge.png", huge.p, huge.n);
    CHECK_ERR(medvlm_image_decode_file("img_huge.png", NULL, &img), MEDVLM_ERR_LIMIT,
              "img_huge.png: PNG declares 100000 x 100000 pixels (30.0 GB decoded), over the "
              "decode limit (max 20000 x 20000");
    free(huge.p);
    /* 20000 x 20000 (a "bomb": 1.2 GB per decoding thread) is over the default pixel limit,
     * 10000 x 10000 is not (its header passes; the data are missing) */
    huge = make_png(20000, 20000, 8, 2, 0, NULL, NULL, 0);
    CHECK_ERR(medvlm_image_decode_memory(huge.p, huge.n, "bomb.png", NULL, &img), MEDVLM_ERR_LIMIT,
              "bomb.png: PNG declares 20000 x 20000 pixels (1.2 GB decoded), over the decode "
              "limit (max 20000 x 20000, 100000000 pixels)");
    free(huge.p);
    huge = make_png(10000, 10000, 8, 2, 0, NULL, NULL, 0);
    enum medvlm_status big_st = medvlm_image_decode_memory(huge.p, huge.n, "big.png", NULL, &img);
    CHECK(big_st != MEDVLM_ERR_LIMIT, "10000 x 10000 refused by the limit: %s",
          medvlm_last_error());
    medvlm_image_free(&img);
    free(huge.p);
    free(rows);
}

static void test_other_bad(void)
{
    struct medvlm_image img;
    write_file("img_empty.png", "", 0);
    CHECK_ERR(medvlm_image_decode_file("img_empty.png", NULL, &img), MEDVLM_ERR_FORMAT,
              "img_empty.png: empty file (0 bytes)");
    const char *text = "this is not an image\n";
    write_file("img_text.jpg", text, strlen(text));
    CHECK_ERR(medvlm_image_decode_file("img_text.jpg", NULL, &img), MEDVLM_ERR_UNSUPPORTED,
              "img_text.jpg: not a JPEG, PNG or TIFF image (first bytes 74 68 69 73");
    CHECK_ERR(medvlm_image_decode_file("no_such_file.png", NULL, &img), MEDVLM_ERR_IO,
              "no_such_file.png: cannot open");
    CHECK_ERR(medvlm_image_decode_memory("II*\0\x08\0\0\0", 8, "stub.tif", NULL, &img),
              MEDVLM_ERR_FORMAT, "stub.tif: corrupt or truncated TIFF");
    CHECK(img.rgb == NULL, "zeroed on failure");
}

/* ---------------------------------------------------------------- TIFF */

static void write_tiff(const char *path, int w, int h, int spp, int photo, int tiled, int comp,
                       const uint8_t *px, const uint16_t *cmap)
{
    TIFF *t = TIFFOpen(path, "w");
    TIFFSetField(t, TIFFTAG_IMAGEWIDTH, (uint32_t)w);
    TIFFSetField(t, TIFFTAG_IMAGELENGTH, (uint32_t)h);
    TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, (uint16_t)spp);
    TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, (uint16_t)8);
    TIFFSetField(t, TIFFTAG_PHOTOMETRIC, (uint16_t)photo);
    TIFFSetField(t, TIFFTAG_PLANARCONFIG, (uint16_t)PLANARCONFIG_CONTIG);
    TIFFSetField(t, TIFFTAG_COMPRESSION, (uint16_t)comp);
    if (spp == 4) {
        uint16_t extra = EXTRASAMPLE_UNASSALPHA;
        TIFFSetField(t, TIFFTAG_EXTRASAMPLES, 1, &extra);
    }
    if (cmap) TIFFSetField(t, TIFFTAG_COLORMAP, cmap, cmap + 256, cmap + 512);
    if (tiled) {
        TIFFSetField(t, TIFFTAG_TILEWIDTH, 16u);
        TIFFSetField(t, TIFFTAG_TILELENGTH, 16u);
        size_t ts = (size_t)TIFFTileSize(t);
        uint8_t *buf = calloc(1, ts);
        for (int ty = 0; ty < h; ty += 16)
            for (int tx = 0; tx < w; tx += 16) {
                memset(buf, 0, ts);
                for (int y = 0; y < 16 && ty + y < h; y++)
                    for (int x = 0; x < 16 && tx + x < w; x++)
                        memcpy(buf + ((size_t)y * 16 + x) * spp,
                               px + ((size_t)(ty + y) * w + tx + x) * spp, (size_t)spp);
                TIFFWriteTile(t, buf, (uint32_t)tx, (uint32_t)ty, 0, 0);
            }
        free(buf);
    } else {
        TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, 5u);
        for (int y = 0; y < h; y++)
            TIFFWriteScanline(t, (void *)(px + (size_t)y * w * spp), (uint32_t)y, 0);
    }
    TIFFClose(t);
}

static void test_tiff(void)
{
    int w = 40, h = 27; /* not a multiple of the 16x16 tiles or the 5-row strips */
    uint8_t *px = malloc((size_t)w * h * 4), *want = malloc((size_t)w * h * 3);
    for (int i = 0; i < w * h * 4; i++) px[i] = rnd8();
    static const struct {
        int spp, photo, tiled, comp;
        const char *file;
    } cases[] = {
        {3, PHOTOMETRIC_RGB, 1, COMPRESSION_NONE, "img_tiled.tif"},
        {3, PHOTOMETRIC_RGB, 1, COMPRESSION_ADOBE_DEFLATE, "img_tiled_deflate.tif"},
        {3, PHOTOMETRIC_RGB, 0, COMPRESSION_PACKBITS, "img_packbits.tif"},
        {4, PHOTOMETRIC_RGB, 0, COMPRESSION_LZW, "img_rgba_lzw.tif"},
        {1, PHOTOMETRIC_MINISBLACK, 1, COMPRESSION_NONE, "img_grey_tiled.tif"},
        {1, PHOTOMETRIC_MINISWHITE, 0, COMPRESSION_NONE, "img_miniswhite.tif"},
        {1, PHOTOMETRIC_PALETTE, 0, COMPRESSION_PACKBITS, "img_palette.tif"},
    };
    uint16_t cmap[768];
    for (int i = 0; i < 768; i++) cmap[i] = (uint16_t)(i * 85 + 7);
    for (size_t t = 0; t < MV_ARRAY_LEN(cases); t++) {
        int spp = cases[t].spp;
        write_tiff(cases[t].file, w, h, spp, cases[t].photo, cases[t].tiled, cases[t].comp, px,
                   cases[t].photo == PHOTOMETRIC_PALETTE ? cmap : NULL);
        for (int i = 0; i < w * h; i++)
            for (int c = 0; c < 3; c++) {
                uint8_t v = px[i * spp + (spp >= 3 ? c : 0)];
                if (cases[t].photo == PHOTOMETRIC_MINISWHITE) v = (uint8_t)(255 - v);
                if (cases[t].photo == PHOTOMETRIC_PALETTE) v = (uint8_t)(cmap[c * 256 + v] >> 8);
                want[i * 3 + c] = v;
            }
        struct medvlm_image img;
        CHECK_OK(medvlm_image_decode_file(cases[t].file, NULL, &img));
        if (img.rgb) {
            CHECK(img.width == w && img.height == h, "%s size", cases[t].file);
            int d = max_diff(img.rgb, want, (size_t)w * h * 3);
            CHECK(d == 0, "%s: max diff %d", cases[t].file, d);
        }
        medvlm_image_free(&img);
    }
    /* a truncated tiled file: the error names it */
    char *data;
    size_t n;
    CHECK_OK(mv_read_file("img_tiled.tif", &data, &n));
    struct medvlm_image img;
    CHECK_ERR(medvlm_image_decode_memory(data, n / 2, "half.tif", NULL, &img), MEDVLM_ERR_FORMAT,
              "half.tif: corrupt or truncated TIFF");
    mv_free(data);
    free(px);
    free(want);
}

/* 16-bit samples: RGB keeps the high byte, grey is clamped (Pillow "RGB;16", "I;16") */
static void test_tiff16(void)
{
    int w = 21, h = 9;
    for (int spp = 1; spp <= 3; spp += 2) {
        uint16_t *px = malloc(sizeof *px * (size_t)w * h * spp);
        for (int i = 0; i < w * h * spp; i++)
            px[i] = (uint16_t)(i % 3 == 0 ? rnd8() : (rnd8() << 8 | rnd8()));
        const char *file = spp == 1 ? "img_grey16.tif" : "img_rgb16.tif";
        TIFF *t = TIFFOpen(file, "w");
        TIFFSetField(t, TIFFTAG_IMAGEWIDTH, (uint32_t)w);
        TIFFSetField(t, TIFFTAG_IMAGELENGTH, (uint32_t)h);
        TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, (uint16_t)spp);
        TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, (uint16_t)16);
        TIFFSetField(t, TIFFTAG_PHOTOMETRIC,
                     (uint16_t)(spp == 1 ? PHOTOMETRIC_MINISBLACK : PHOTOMETRIC_RGB));
        TIFFSetField(t, TIFFTAG_PLANARCONFIG, (uint16_t)PLANARCONFIG_CONTIG);
        TIFFSetField(t, TIFFTAG_COMPRESSION, (uint16_t)COMPRESSION_LZW);
        TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, 4u);
        for (int y = 0; y < h; y++) TIFFWriteScanline(t, px + (size_t)y * w * spp, (uint32_t)y, 0);
        TIFFClose(t);
        struct medvlm_image img;
        CHECK_OK(medvlm_image_decode_file(file, NULL, &img));
        if (img.rgb) {
            int bad = 0;
            for (int i = 0; i < w * h; i++)
                for (int c = 0; c < 3; c++) {
                    uint16_t v = px[i * spp + (spp == 3 ? c : 0)];
                    uint8_t want = spp == 3 ? (uint8_t)(v >> 8) : (uint8_t)(v > 255 ? 255 : v);
                    bad += img.rgb[3 * i + c] != want;
                }
            CHECK(bad == 0, "%s: %d values differ", file, bad);
        }
        medvlm_image_free(&img);
        free(px);
    }
}

/* real tiles: FNV-1a of Pillow's Image.open(f).convert("RGB").tobytes() (Pillow 9.4; all 43
 * files of the shared data folder were also compared byte for byte outside the suite) */
static void test_real_files(void)
{
    static const struct {
        const char *rel;
        int w, h;
        uint64_t fnv;
    } files[] = {
        {"nct-crc-he-100k-nonorm-samples/ADI-AAQEFMRI.tif", 224, 224, 0x31bdc166ec213779ULL},
        {"nct-crc-he-100k-nonorm-samples/BACK-AAQSHYMA.tif", 224, 224, 0xab7d8bd3edf8732bULL},
        {"nct-crc-he-100k-nonorm-samples/DEB-ACHGAMCT.tif", 224, 224, 0xf19c43e6b7173fb6ULL},
        {"kather2016-samples/01_TUMOR/1A11_CRC-Prim-HE-07_022.tif_Row_601_Col_151.tif", 150, 150,
         0x0782cfce08433fc5ULL},
        {"kather2016-samples/01_TUMOR/1AB_CRC-Prim-HE-01_015.tif_Row_1_Col_151.tif", 150, 150,
         0x9ee6de049297fa6eULL},
        {"sicapv2-patches/images/16B0026792_Block_Region_0_8_14_xini_23978_yini_146374.jpg", 512,
         512, 0x51beb39281a61112ULL},
    };
    const char *dir = getenv("MEDVLM_SHARED_DATA");
    if (!dir || !*dir) {
        fprintf(stderr, "FAIL: MEDVLM_SHARED_DATA is not set (the real-tile checks need it)\n");
        check_failed++;
        return;
    }
    for (size_t i = 0; i < MV_ARRAY_LEN(files); i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, files[i].rel);
        struct medvlm_image img;
        CHECK_OK(medvlm_image_decode_file(path, NULL, &img));
        if (!img.rgb) continue;
        uint64_t h = fnv1a(img.rgb, (size_t)img.width * img.height * 3);
        CHECK(img.width == files[i].w && img.height == files[i].h && h == files[i].fnv,
              "%s: %dx%d fnv %016llx, Pillow gives %dx%d %016llx", files[i].rel, img.width,
              img.height, (unsigned long long)h, files[i].w, files[i].h,
              (unsigned long long)files[i].fnv);
        medvlm_image_free(&img);
    }
}

int main(void)
{
    test_sniff();
    test_jpeg();
    test_png_layouts();
    test_png_bad();
    test_other_bad();
    test_tiff();
    test_tiff16();
    test_real_files();
    return check_summary();
}

/*
 * png.c - PNG through libpng, converted to RGB exactly as Pillow 9.4 reads the file and then
 * applies convert("RGB"):
 *   grey 1/2/4/8-bit  -> v scaled to 8 bits (x255, x85, x17, x1), replicated (modes 1, L;2, L;4, L)
 *   grey 16-bit       -> Pillow mode "I": clamp(v, 0, 255) replicated (so most values are 255)
 *   grey+alpha        -> grey replicated (16-bit: high byte), alpha dropped
 *   RGB / RGBA        -> as is, alpha dropped (16-bit: high byte of each sample)
 *   palette 1..8-bit  -> PLTE colour; an index past the PLTE entries gives (i, i, i), Pillow's
 *                        default palette; tRNS ignored (convert("RGB") drops transparency)
 * Interlaced files are deinterlaced by libpng. Gamma, sBIT, iCCP are ignored, as in Pillow.
 * Every CRC error (critical or ancillary chunk) is fatal, as in Pillow; truncated data too.
 *
 * libpng reports errors through our error function, which longjmps to png_jmpbuf: libpng never
 * aborts the process.
 */
#include "image.h"

#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <png.h>

struct png_src {
    const uint8_t *data;
    size_t size, pos;
    char msg[256];
    int truncated;
};

static void on_error(png_structp png, png_const_charp msg)
{
    struct png_src *s = png_get_error_ptr(png);
    if (s && !s->msg[0]) snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void on_read(png_structp png, png_bytep out, size_t len)
{
    struct png_src *s = png_get_io_ptr(png);
    if (len > s->size - s->pos) {
        s->truncated = 1;
        png_error(png, "unexpected end of data");
    }
    memcpy(out, s->data + s->pos, len);
    s->pos += len;
}

/* One row of native samples (after png_set_packing: sub-byte samples one per byte) to RGB. */
static void row_to_rgb(const uint8_t *src, uint8_t *dst, int w, int ct, int bd,
                       const png_color *pal, int npal)
{
    int x;
    switch (ct) {
    case PNG_COLOR_TYPE_GRAY:
        if (bd == 16) {
            for (x = 0; x < w; x++) {
                unsigned v = (unsigned)src[2 * x] << 8 | src[2 * x + 1];
                dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = (uint8_t)(v > 255 ? 255 : v);
            }
        } else {
            int mul = bd == 1 ? 255 : bd == 2 ? 85 : bd == 4 ? 17 : 1;
            for (x = 0; x < w; x++)
                dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = (uint8_t)(src[x] * mul);
        }
        break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: {
        int step = bd == 16 ? 4 : 2;
        for (x = 0; x < w; x++) dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = src[step * x];
        break;
    }
    case PNG_COLOR_TYPE_RGB:
    case PNG_COLOR_TYPE_RGB_ALPHA: {
        int ch = ct == PNG_COLOR_TYPE_RGB ? 3 : 4, bs = bd == 16 ? 2 : 1, step = ch * bs;
        for (x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) dst[3 * x + c] = src[step * x + bs * c];
        break;
    }
    case PNG_COLOR_TYPE_PALETTE:
        for (x = 0; x < w; x++) {
            int i = src[x];
            if (i < npal) {
                dst[3 * x] = pal[i].red;
                dst[3 * x + 1] = pal[i].green;
                dst[3 * x + 2] = pal[i].blue;
            } else {
                dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = (uint8_t)i;
            }
        }
        break;
    }
}

enum medvlm_status mv_png_decode(const char *name, const uint8_t *data, size_t size,
                                 const struct medvlm_decode_limits *lim, struct medvlm_image *out)
{
    struct png_src src = {.data = data, .size = size};
    enum medvlm_status st = MEDVLM_OK;
    png_structp png = NULL;
    png_infop info = NULL;
    /* touched after setjmp: kept in memory that longjmp does not restore */
    uint8_t *volatile native = NULL;
    png_bytep *volatile rows = NULL;

    /* The IHDR is the first chunk: check the declared size before libpng reads further. */
    if (size >= 24 && memcmp(data + 12, "IHDR", 4) == 0) {
        uint32_t w0 = (uint32_t)data[16] << 24 | (uint32_t)data[17] << 16 |
                      (uint32_t)data[18] << 8 | data[19];
        uint32_t h0 = (uint32_t)data[20] << 24 | (uint32_t)data[21] << 16 |
                      (uint32_t)data[22] << 8 | data[23];
        if (w0 && h0 && (st = mv_image_check_limits(name, "PNG", w0, h0, lim))) return st;
    }
    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, on_error, on_warning);
    if (!png) return mv_err(MEDVLM_ERR_NOMEM, "%s: cannot create a PNG reader", name);
    info = png_create_info_struct(png);
    if (!info) {
        st = mv_err(MEDVLM_ERR_NOMEM, "%s: cannot create a PNG reader", name);
        goto fail;
    }
    if (setjmp(png_jmpbuf(png))) {
        /* only libpng calls longjmp here, and st is MEDVLM_OK whenever one runs */
        if (src.truncated)
            st = mv_err(MEDVLM_ERR_FORMAT, "%s: truncated PNG (data ends after %zu bytes)", name,
                        size);
        else
            st = mv_err(MEDVLM_ERR_FORMAT, "%s: corrupt PNG: %s", name,
                        src.msg[0] ? src.msg : "unknown libpng error");
        goto fail;
    }
    png_set_read_fn(png, &src, on_read);
    png_set_crc_action(png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff); /* our limits below, with our message */
    png_set_check_for_invalid_index(png, 0);          /* Pillow accepts such indices */
    /* Ancillary chunks cannot change the pixels we return: skip them unparsed (their CRC is
     * still checked), so that e.g. a zTXt or iCCP claiming a gigabyte allocates nothing. */
    static const png_byte skip[] = "bKGD\0cHRM\0eXIf\0gAMA\0hIST\0iCCP\0iTXt\0oFFs\0pCAL\0pHYs\0"
                                   "sBIT\0sCAL\0sPLT\0sRGB\0tEXt\0tIME\0tRNS\0zTXt";
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, skip, (int)(sizeof skip / 5));
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, 0); /* unknown ones too */
    png_set_chunk_malloc_max(png, (png_alloc_size_t)8 << 20);
    png_read_info(png, info);
    png_uint_32 w32, h32;
    int bd, ct, interlace;
    png_get_IHDR(png, info, &w32, &h32, &bd, &ct, &interlace, NULL, NULL);
    st = mv_image_check_limits(name, "PNG", w32, h32, lim);
    if (st) goto fail;
    int w = (int)w32, h = (int)h32;
    png_colorp pal = NULL;
    int npal = 0;
    if (ct == PNG_COLOR_TYPE_PALETTE && !png_get_PLTE(png, info, &pal, &npal)) {
        st = mv_err(MEDVLM_ERR_FORMAT, "%s: palette PNG without a PLTE chunk", name);
        goto fail;
    }
    if (bd < 8) png_set_packing(png);
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info), need;
    if (!mv_mul_ok((size_t)w, (size_t)(bd == 16 ? 8 : 4), &need) || rowbytes > need) {
        st = mv_err(MEDVLM_ERR_INTERNAL, "%s: unexpected PNG row size %zu", name, rowbytes);
        goto fail;
    }
    st = mv_image_alloc(name, w, h, out);
    if (st) goto fail;
    int direct = ct == PNG_COLOR_TYPE_RGB && bd == 8;
    if (passes > 1) {
        /* Adam7: the whole image in native layout, then convert */
        size_t total;
        if (!mv_mul_ok(rowbytes, (size_t)h, &total)) {
            st = mv_err(MEDVLM_ERR_OVERFLOW, "%s: PNG size overflows", name);
            goto fail;
        }
        native = direct ? NULL : mv_malloc(total);
        rows = mv_calloc((size_t)h, sizeof *rows);
        if ((!direct && !native) || !rows) {
            st = mv_err_ctx(MEDVLM_ERR_NOMEM, "%s", name);
            goto fail;
        }
        for (int y = 0; y < h; y++)
            rows[y] = direct ? out->rgb + (size_t)y * w * 3 : native + (size_t)y * rowbytes;
        png_read_image(png, rows);
        if (!direct)
            for (int y = 0; y < h; y++)
                row_to_rgb(rows[y], out->rgb + (size_t)y * w * 3, w, ct, bd, pal, npal);
    } else {
        native = direct ? NULL : mv_malloc(rowbytes);
        if (!direct && !native) {
            st = mv_err_ctx(MEDVLM_ERR_NOMEM, "%s", name);
            goto fail;
        }
        for (int y = 0; y < h; y++) {
            uint8_t *dst = out->rgb + (size_t)y * w * 3;
            png_read_row(png, direct ? dst : native, NULL);
            if (!direct) row_to_rgb(native, dst, w, ct, bd, pal, npal);
        }
    }
    /* Not png_read_end: Pillow stops at the pixels too, and tolerates what follows them. */
fail:
    png_destroy_read_struct(&png, info ? &info : NULL, NULL);
    mv_free(native);
    mv_free((void *)rows);
    if (st) medvlm_image_free(out);
    return st;
}

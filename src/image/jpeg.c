/*
 * jpeg.c - JPEG through libjpeg-turbo, configured as Pillow configures it (default accurate
 * integer IDCT, fancy upsampling, no scaling), so the pixels are bit-identical to Pillow's.
 *
 * Colour: 1 component -> grey replicated; 3 -> libjpeg's RGB (YCbCr or RGB in the file);
 * 4 (CMYK, or YCCK that libjpeg turns into CMYK) -> Pillow's reading: the samples are taken as
 * Adobe-inverted CMYK ("CMYK;I"), then Pillow's cmyk2rgb. Anything else is refused.
 *
 * libjpeg reports fatal errors through error_exit, which must not return: ours longjmps back
 * here, so libjpeg never calls exit(). A premature end of data (libjpeg would pad the image
 * with grey and warn) is an error, as in Pillow without LOAD_TRUNCATED_IMAGES ("truncated
 * JPEG", naming the file, also for a file that is only an SOI marker); other corrupt-data
 * warnings are tolerated, as Pillow tolerates them, and reported: the first one per file as a
 * warning through the library's log (mv_log, MEDVLM_LOG_WARN) naming the file and libjpeg's
 * message, with the count of the others.
 */
#include "image.h"

#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

struct jerr {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
    char warning[JMSG_LENGTH_MAX]; /* the first corrupt-data warning */
    int truncated;
};

static void on_error_exit(j_common_ptr ci)
{
    struct jerr *e = (struct jerr *)ci->err;
    ci->err->format_message(ci, e->msg);
    longjmp(e->jb, 1);
}

static void on_emit_message(j_common_ptr ci, int level)
{
    struct jerr *e = (struct jerr *)ci->err;
    if (level >= 0) return; /* trace messages */
    if (ci->err->msg_code == JWRN_JPEG_EOF) {
        e->truncated = 1;
        ci->err->format_message(ci, e->msg);
        longjmp(e->jb, 1);
    }
    if (ci->err->num_warnings++ == 0) ci->err->format_message(ci, e->warning);
}

/* The corrupt-data warnings libjpeg gave while decoding name (see the file comment). */
static void report_warnings(const char *name, const struct jerr *e)
{
    long n = e->pub.num_warnings;
    if (n == 1)
        mv_log(MEDVLM_LOG_WARN,
               "%s: corrupt JPEG data, decoded anyway as Pillow does (libjpeg: %s)", name,
               e->warning);
    else if (n > 1)
        mv_log(MEDVLM_LOG_WARN,
               "%s: corrupt JPEG data, decoded anyway as Pillow does (libjpeg: %s; and %ld more "
               "warnings)",
               name, e->warning, n - 1);
}

enum medvlm_status mv_jpeg_decode(const char *name, const uint8_t *data, size_t size,
                                  const struct medvlm_decode_limits *lim, struct medvlm_image *out)
{
    struct jpeg_decompress_struct ci;
    struct jerr e;
    enum medvlm_status st = MEDVLM_OK;
    /* touched after setjmp: kept in memory that longjmp does not restore */
    uint8_t *volatile row = NULL;
    volatile int created = 0;

    memset(&e, 0, sizeof e);
    ci.err = jpeg_std_error(&e.pub);
    e.pub.error_exit = on_error_exit;
    e.pub.emit_message = on_emit_message;
    if (setjmp(e.jb)) {
        /* only libjpeg calls longjmp here, and st is MEDVLM_OK whenever one runs */
        if (e.truncated)
            st =
                mv_err(MEDVLM_ERR_FORMAT, "%s: truncated JPEG: the data end after %zu bytes%s (%s)",
                       name, size, created == 2 ? "" : ", before the image header", e.msg);
        else
            st = mv_err(MEDVLM_ERR_FORMAT, "%s: corrupt JPEG: %s", name, e.msg);
        goto fail;
    }
    jpeg_create_decompress(&ci);
    created = 1;
    if (size > (size_t)(unsigned long)-1) {
        st = mv_err(MEDVLM_ERR_LIMIT, "%s: JPEG of %zu bytes is too large", name, size);
        goto fail;
    }
    jpeg_mem_src(&ci, data, (unsigned long)size);
    jpeg_read_header(&ci, TRUE);
    created = 2; /* the header was read */
    st = mv_image_check_limits(name, "JPEG", ci.image_width, ci.image_height, lim);
    if (st) goto fail;
    int nc = ci.num_components;
    switch (ci.jpeg_color_space) {
    case JCS_GRAYSCALE:
        ci.out_color_space = JCS_GRAYSCALE;
        break;
    case JCS_YCbCr:
    case JCS_RGB:
        ci.out_color_space = JCS_RGB;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        ci.out_color_space = JCS_CMYK;
        break;
    default:
        st = mv_err(MEDVLM_ERR_UNSUPPORTED,
                    "%s: JPEG with %d colour components of an unknown colour space is not "
                    "supported (expected grey, YCbCr/RGB or CMYK/YCCK)",
                    name, nc);
        goto fail;
    }
    ci.dct_method = JDCT_ISLOW;
    ci.do_fancy_upsampling = TRUE;
    ci.scale_num = ci.scale_denom = 1;
    jpeg_start_decompress(&ci);
    int w = (int)ci.output_width, h = (int)ci.output_height, oc = ci.output_components;
    st = mv_image_alloc(name, w, h, out);
    if (st) goto fail;
    if (oc != 3) {
        row = mv_malloc((size_t)w * (size_t)oc);
        if (!row) {
            st = mv_err_ctx(MEDVLM_ERR_NOMEM, "%s", name);
            goto fail;
        }
    }
    while (ci.output_scanline < ci.output_height) {
        size_t y = ci.output_scanline;
        uint8_t *dst = out->rgb + y * (size_t)w * 3;
        JSAMPROW rp = oc == 3 ? dst : row;
        if (jpeg_read_scanlines(&ci, &rp, 1) != 1) {
            st = mv_err(MEDVLM_ERR_FORMAT, "%s: JPEG decoder returned no row %zu", name, y);
            goto fail;
        }
        if (oc == 1) {
            for (int x = 0; x < w; x++) dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = row[x];
        } else if (oc == 4) {
            for (int x = 0; x < w; x++) {
                const uint8_t *s = row + 4 * x;
                uint8_t cmyk[4] = {(uint8_t)(255 - s[0]), (uint8_t)(255 - s[1]),
                                   (uint8_t)(255 - s[2]), (uint8_t)(255 - s[3])};
                mv_cmyk_to_rgb(cmyk, dst + 3 * x);
            }
        }
    }
    /* The pixels are all there; what follows (EOI, trailing markers) cannot change them and
     * Pillow does not read it either. */
    jpeg_abort_decompress(&ci);
fail:
    if (created) jpeg_destroy_decompress(&ci);
    report_warnings(name, &e);
    mv_free(row);
    if (st) medvlm_image_free(out);
    return st;
}

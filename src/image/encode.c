/*
 * encode.c - small pictures for people: a thumbnail (Pillow's fixed-point bilinear resample
 * to fit a square) and a baseline JPEG of it in memory (libjpeg-turbo). The HTML report
 * embeds these, and `medvlm serve` sends them as tiles. Nothing here feeds the model.
 *
 * libjpeg reports fatal errors through error_exit, which must not return: ours longjmps back
 * with the message, as in jpeg.c.
 */
#include "image.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

enum medvlm_status mv_image_thumbnail(const struct medvlm_image *img, int max_side,
                                      struct medvlm_image *out)
{
    if (!out) return mv_err(MEDVLM_ERR_ARG, "thumbnail: out must not be NULL");
    memset(out, 0, sizeof *out);
    if (!img || !img->rgb || img->width <= 0 || img->height <= 0 || max_side <= 0)
        return mv_err(MEDVLM_ERR_ARG, "thumbnail: need a decoded image and a side >= 1");
    int w = img->width, h = img->height;
    if (w > max_side || h > max_side) { /* fit the longer side, keep the aspect ratio */
        if (w >= h) {
            h = (int)(((int64_t)h * max_side + w / 2) / w);
            w = max_side;
        } else {
            w = (int)(((int64_t)w * max_side + h / 2) / h);
            h = max_side;
        }
        if (w < 1) w = 1;
        if (h < 1) h = 1;
    }
    enum medvlm_status st = mv_image_alloc("thumbnail", w, h, out);
    if (st) return st;
    if (w == img->width && h == img->height) {
        memcpy(out->rgb, img->rgb, (size_t)w * (size_t)h * 3);
        return MEDVLM_OK;
    }
    st = mv_pil_resize_window(img->rgb, img->height, img->width, h, w, 0, 0, h, w,
                              MEDVLM_RESAMPLE_BILINEAR, out->rgb);
    if (st) medvlm_image_free(out);
    return st;
}

struct enc_err {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
};

static void on_error_exit(j_common_ptr ci)
{
    struct enc_err *e = (struct enc_err *)ci->err;
    ci->err->format_message(ci, e->msg);
    longjmp(e->jb, 1);
}

enum medvlm_status mv_jpeg_encode(const struct medvlm_image *img, int quality, uint8_t **out,
                                  size_t *len)
{
    if (!out || !len) return mv_err(MEDVLM_ERR_ARG, "jpeg encode: out and len must not be NULL");
    *out = NULL;
    *len = 0;
    if (!img || !img->rgb || img->width <= 0 || img->height <= 0 || img->width > 65500 ||
        img->height > 65500)
        return mv_err(MEDVLM_ERR_ARG, "jpeg encode: need an image of 1..65500 pixels a side");
    struct jpeg_compress_struct ci;
    struct enc_err e;
    /* touched after setjmp: kept in memory that longjmp does not restore */
    unsigned char *volatile buf = NULL;
    volatile unsigned long size = 0;
    memset(&ci, 0, sizeof ci);
    ci.err = jpeg_std_error(&e.pub);
    e.pub.error_exit = on_error_exit;
    e.msg[0] = '\0';
    if (setjmp(e.jb)) {
        jpeg_destroy_compress(&ci);
        free(buf);
        return mv_err(MEDVLM_ERR_INTERNAL, "jpeg encode: %s", e.msg);
    }
    jpeg_create_compress(&ci);
    unsigned char *b = NULL;
    unsigned long s = 0;
    jpeg_mem_dest(&ci, &b, &s);
    ci.image_width = (JDIMENSION)img->width;
    ci.image_height = (JDIMENSION)img->height;
    ci.input_components = 3;
    ci.in_color_space = JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, quality < 1 ? 1 : quality > 100 ? 100 : quality, TRUE);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = img->rgb + (size_t)ci.next_scanline * (size_t)img->width * 3;
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    buf = b;
    size = s;
    jpeg_destroy_compress(&ci);
    /* libjpeg's buffer came from malloc: hand over a copy from ours */
    *out = mv_malloc(size);
    if (!*out) {
        free(buf);
        return MEDVLM_ERR_NOMEM;
    }
    memcpy(*out, buf, size);
    *len = size;
    free(buf);
    return MEDVLM_OK;
}

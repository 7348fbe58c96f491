/*
 * tiff.c - TIFF through libtiff, read from memory (first directory only).
 *
 * The common layouts are read strip by strip or tile by tile (TIFFReadEncodedStrip /
 * TIFFReadEncodedTile: any compression libtiff has) and converted as Pillow does:
 *   RGB, RGBA / RGB + extra samples -> first three samples (alpha dropped, no compositing)
 *   grey (min-is-black), grey + alpha -> replicated; min-is-white -> 255 - v (Pillow "L;I")
 *   palette                          -> colormap >> 8 (Pillow keeps the high byte)
 *   16-bit RGB(A)                    -> high byte; 16-bit grey -> clamp(v, 0, 255) (mode I;16)
 * Every other layout (YCbCr, CMYK, Lab, 1/2/4-bit samples, planar-separate...) goes through
 * libtiff's TIFFReadRGBAImageOriented, which converts to 8-bit RGBA. Checked against Pillow:
 * bilevel (group 4), CMYK and LA agree; layouts not tried may differ.
 *
 * Errors: libtiff's messages go to a per-handle handler (TIFFOpenOptions, libtiff >= 4.5), so
 * decoding is thread-safe and the first message ends up in ours.
 */
#include "image.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <tiffio.h>

struct tiff_src {
    const uint8_t *data;
    toff_t size, pos;
    char msg[256];
};

static tmsize_t mem_read(thandle_t h, void *buf, tmsize_t n)
{
    struct tiff_src *s = (struct tiff_src *)h;
    if (n < 0) return -1;
    toff_t left = s->pos < s->size ? s->size - s->pos : 0;
    if ((toff_t)n > left) n = (tmsize_t)left;
    memcpy(buf, s->data + s->pos, (size_t)n);
    s->pos += (toff_t)n;
    return n;
}

static tmsize_t mem_write(thandle_t h, void *buf, tmsize_t n)
{
    (void)h;
    (void)buf;
    (void)n;
    return -1;
}

static toff_t mem_seek(thandle_t h, toff_t off, int whence)
{
    struct tiff_src *s = (struct tiff_src *)h;
    toff_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? s->pos : s->size;
    if (whence != SEEK_SET && whence != SEEK_CUR && whence != SEEK_END) return (toff_t)-1;
    /* offsets are unsigned in libtiff: negative moves arrive wrapped around */
    toff_t np = base + off;
    if (np > s->size && np - s->size > (toff_t)1 << 40) return (toff_t)-1;
    s->pos = np;
    return np;
}

static int mem_close(thandle_t h)
{
    (void)h;
    return 0;
}

static toff_t mem_size(thandle_t h)
{
    return ((struct tiff_src *)h)->size;
}

static int mem_map(thandle_t h, void **base, toff_t *size)
{
    struct tiff_src *s = (struct tiff_src *)h;
    *base = (void *)s->data;
    *size = s->size;
    return 1;
}

static void mem_unmap(thandle_t h, void *base, toff_t size)
{
    (void)h;
    (void)base;
    (void)size;
}

static int on_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    (void)tif;
    struct tiff_src *s = user;
    if (s && !s->msg[0]) {
        char m[200];
        vsnprintf(m, sizeof m, fmt, ap);
        snprintf(s->msg, sizeof s->msg, "%s%s%s", module ? module : "", module ? ": " : "", m);
    }
    return 1;
}

static int on_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    (void)tif;
    (void)user;
    (void)module;
    (void)fmt;
    (void)ap;
    return 1; /* handled: nothing reaches the global (stderr) handler */
}

enum layout {
    LAYOUT_RGB,
    LAYOUT_GREY,
    LAYOUT_GREY_INV,
    LAYOUT_PALETTE,
    LAYOUT_RGB16,
    LAYOUT_GREY16,
    LAYOUT_RGBA_IMAGE
};

/* `n` pixels of `bpp` bytes each to RGB. 16-bit samples arrive in host byte order. */
static void px_to_rgb(const uint8_t *src, uint8_t *dst, int n, int bpp, enum layout l,
                      const uint16_t *cm[3])
{
    for (int x = 0; x < n; x++, src += bpp, dst += 3) {
        uint16_t s16[3];
        switch (l) {
        case LAYOUT_RGB:
            dst[0] = src[0];
            dst[1] = src[1];
            dst[2] = src[2];
            break;
        case LAYOUT_GREY:
            dst[0] = dst[1] = dst[2] = src[0];
            break;
        case LAYOUT_GREY_INV:
            dst[0] = dst[1] = dst[2] = (uint8_t)(255 - src[0]);
            break;
        case LAYOUT_PALETTE:
            dst[0] = (uint8_t)(cm[0][src[0]] >> 8);
            dst[1] = (uint8_t)(cm[1][src[0]] >> 8);
            dst[2] = (uint8_t)(cm[2][src[0]] >> 8);
            break;
        case LAYOUT_RGB16: /* Pillow "RGB;16": the high byte */
            memcpy(s16, src, sizeof s16);
            for (int c = 0; c < 3; c++) dst[c] = (uint8_t)(s16[c] >> 8);
            break;
        case LAYOUT_GREY16: /* Pillow "I;16" -> RGB: clamped to 0..255 */
            memcpy(s16, src, 2);
            dst[0] = dst[1] = dst[2] = (uint8_t)(s16[0] > 255 ? 255 : s16[0]);
            break;
        default:
            break;
        }
    }
}

static enum medvlm_status tiff_fail(const char *name, const struct tiff_src *s, const char *what)
{
    return mv_err(MEDVLM_ERR_FORMAT, "%s: corrupt or truncated TIFF: %s%s%s", name, what,
                  s->msg[0] ? ": " : "", s->msg);
}

static enum medvlm_status read_strips(TIFF *tif, const char *name, struct tiff_src *s, int w, int h,
                                      int bpp, enum layout l, const uint16_t *cm[3],
                                      struct medvlm_image *out)
{
    uint32_t rps = 0;
    if (!TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rps) || rps == 0) rps = (uint32_t)h;
    if (rps > (uint32_t)h) rps = (uint32_t)h;
    tmsize_t ssize = TIFFStripSize(tif);
    size_t need;
    if (ssize <= 0 || !mv_mul_ok((size_t)w * (size_t)bpp, rps, &need) || (size_t)ssize < need)
        return tiff_fail(name, s, "bad strip size");
    uint8_t *buf = mv_malloc((size_t)ssize);
    if (!buf) return mv_err_ctx(MEDVLM_ERR_NOMEM, "%s", name);
    enum medvlm_status st = MEDVLM_OK;
    for (uint32_t y0 = 0; y0 < (uint32_t)h; y0 += rps) {
        uint32_t nrows = MV_MIN(rps, (uint32_t)h - y0);
        tstrip_t strip = TIFFComputeStrip(tif, y0, 0);
        tmsize_t got = TIFFReadEncodedStrip(tif, strip, buf, (tmsize_t)((size_t)w * bpp * nrows));
        if (got < (tmsize_t)((size_t)w * bpp * nrows)) {
            st = tiff_fail(name, s, "cannot read strip");
            break;
        }
        for (uint32_t r = 0; r < nrows; r++)
            px_to_rgb(buf + (size_t)r * w * bpp, out->rgb + ((size_t)(y0 + r) * w) * 3, w, bpp, l,
                      cm);
    }
    mv_free(buf);
    return st;
}

static enum medvlm_status read_tiles(TIFF *tif, const char *name, struct tiff_src *s, int w, int h,
                                     int bpp, enum layout l, const uint16_t *cm[3],
                                     struct medvlm_image *out)
{
    uint32_t tw = 0, th = 0;
    if (!TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw) || !TIFFGetField(tif, TIFFTAG_TILELENGTH, &th) ||
        tw == 0 || th == 0 || tw > 16384 || th > 16384 ||
        (uint64_t)tw * th > MV_MIN((uint64_t)1 << 24, 16 * (uint64_t)w * h + 65536))
        return tiff_fail(name, s, "bad tile size");
    tmsize_t tsize = TIFFTileSize(tif);
    size_t need;
    if (tsize <= 0 || !mv_mul_ok((size_t)tw * th, (size_t)bpp, &need) || (size_t)tsize < need)
        return tiff_fail(name, s, "bad tile size");
    uint8_t *buf = mv_malloc((size_t)tsize);
    if (!buf) return mv_err_ctx(MEDVLM_ERR_NOMEM, "%s", name);
    enum medvlm_status st = MEDVLM_OK;
    for (uint32_t ty = 0; ty < (uint32_t)h && !st; ty += th) {
        for (uint32_t tx = 0; tx < (uint32_t)w; tx += tw) {
            ttile_t t = TIFFComputeTile(tif, tx, ty, 0, 0);
            if (TIFFReadEncodedTile(tif, t, buf, (tmsize_t)need) < (tmsize_t)need) {
                st = tiff_fail(name, s, "cannot read tile");
                break;
            }
            uint32_t nr = MV_MIN(th, (uint32_t)h - ty), nc = MV_MIN(tw, (uint32_t)w - tx);
            for (uint32_t r = 0; r < nr; r++)
                px_to_rgb(buf + (size_t)r * tw * bpp, out->rgb + (((size_t)(ty + r) * w) + tx) * 3,
                          (int)nc, bpp, l, cm);
        }
    }
    mv_free(buf);
    return st;
}

static enum medvlm_status read_rgba(TIFF *tif, const char *name, struct tiff_src *s, int w, int h,
                                    struct medvlm_image *out)
{
    char emsg[1024] = "";
    if (!TIFFRGBAImageOK(tif, emsg))
        return mv_err(MEDVLM_ERR_UNSUPPORTED, "%s: TIFF layout not supported: %s", name, emsg);
    uint32_t *px = mv_calloc((size_t)w * (size_t)h, sizeof *px);
    if (!px) return mv_err_ctx(MEDVLM_ERR_NOMEM, "%s", name);
    enum medvlm_status st = MEDVLM_OK;
    if (!TIFFReadRGBAImageOriented(tif, (uint32_t)w, (uint32_t)h, px, ORIENTATION_TOPLEFT, 1)) {
        st = tiff_fail(name, s, "cannot decode");
    } else {
        size_t n = (size_t)w * h;
        for (size_t i = 0; i < n; i++) {
            out->rgb[3 * i] = (uint8_t)TIFFGetR(px[i]);
            out->rgb[3 * i + 1] = (uint8_t)TIFFGetG(px[i]);
            out->rgb[3 * i + 2] = (uint8_t)TIFFGetB(px[i]);
        }
    }
    mv_free(px);
    return st;
}

enum medvlm_status mv_tiff_decode(const char *name, const uint8_t *data, size_t size,
                                  const struct medvlm_decode_limits *lim, struct medvlm_image *out)
{
    struct tiff_src src = {.data = data, .size = size};
    enum medvlm_status st = MEDVLM_OK;
    TIFF *tif = NULL;
    TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
    if (!opts) return mv_err(MEDVLM_ERR_NOMEM, "%s: cannot create a TIFF reader", name);
    TIFFOpenOptionsSetErrorHandlerExtR(opts, on_error, &src);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, on_warning, &src);
    /* libtiff's own buffers (strips of the RGBA reader, directories): in proportion to the
     * pixel limit, between 64 MiB and 2 GiB */
    uint64_t max_alloc = (uint64_t)1 << 31;
    if (lim->max_pixels > 0 && (uint64_t)lim->max_pixels < max_alloc / 32)
        max_alloc = MV_MAX((uint64_t)lim->max_pixels * 32, (uint64_t)64 << 20);
    TIFFOpenOptionsSetMaxSingleMemAlloc(opts, (tmsize_t)max_alloc);
    /* "m": memory-mapped access through mem_map; "r": read only */
    tif = TIFFClientOpenExt(name, "rm", (thandle_t)&src, mem_read, mem_write, mem_seek, mem_close,
                            mem_size, mem_map, mem_unmap, opts);
    if (!tif) {
        st = tiff_fail(name, &src, "cannot open");
        goto fail;
    }
    uint32_t w32 = 0, h32 = 0;
    uint16_t spp = 1, bps = 1, photo = 0, planar = PLANARCONFIG_CONTIG;
    if (!TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w32) ||
        !TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h32)) {
        st = tiff_fail(name, &src, "no ImageWidth/ImageLength");
        goto fail;
    }
    st = mv_image_check_limits(name, "TIFF", w32, h32, lim);
    if (st) goto fail;
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
    TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bps);
    TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &planar);
    if (!TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photo)) photo = 0xffff;
    int w = (int)w32, h = (int)h32;
    enum layout l = LAYOUT_RGBA_IMAGE;
    const uint16_t *cm[3] = {NULL, NULL, NULL};
    /* the strip/tile path: 8- or 16-bit samples, interleaved, at most 8 samples per pixel */
    int contig = planar == PLANARCONFIG_CONTIG || spp == 1;
    if (bps == 16 && spp <= 8 && contig) {
        if (photo == PHOTOMETRIC_RGB && spp >= 3)
            l = LAYOUT_RGB16;
        else if (photo == PHOTOMETRIC_MINISBLACK && spp == 1)
            l = LAYOUT_GREY16;
    }
    if (bps == 8 && spp <= 8 && contig) {
        if (photo == PHOTOMETRIC_RGB && spp >= 3)
            l = LAYOUT_RGB;
        else if (photo == PHOTOMETRIC_MINISBLACK && spp >= 1 && spp <= 2)
            l = LAYOUT_GREY;
        else if (photo == PHOTOMETRIC_MINISWHITE && spp == 1)
            l = LAYOUT_GREY_INV;
        else if (photo == PHOTOMETRIC_PALETTE && spp == 1) {
            uint16_t *r, *g, *b;
            if (TIFFGetField(tif, TIFFTAG_COLORMAP, &r, &g, &b)) {
                cm[0] = r, cm[1] = g, cm[2] = b;
                l = LAYOUT_PALETTE;
            }
        }
    }
    st = mv_image_alloc(name, w, h, out);
    if (st) goto fail;
    int bpp = spp * (bps / 8); /* bytes per pixel on the strip/tile path */
    if (l == LAYOUT_RGBA_IMAGE)
        st = read_rgba(tif, name, &src, w, h, out);
    else if (TIFFIsTiled(tif))
        st = read_tiles(tif, name, &src, w, h, bpp, l, cm, out);
    else
        st = read_strips(tif, name, &src, w, h, bpp, l, cm, out);
fail:
    if (tif) TIFFClose(tif);
    TIFFOpenOptionsFree(opts);
    if (st) medvlm_image_free(out);
    return st;
}

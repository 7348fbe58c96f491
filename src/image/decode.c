/*
 * decode.c - the decode entry points: format sniffing (magic bytes, never the name) and
 * dispatch to jpeg.c / png.c / tiff.c, which check sizes and allocate through image.c.
 */
#include "image.h"

#include <stdio.h>
#include <string.h>

enum medvlm_image_format medvlm_image_sniff(const void *data, size_t size)
{
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    const uint8_t *p = data;
    if (!p) return MEDVLM_IMAGE_UNKNOWN;
    /* SOI and the next marker's 0xff; an SOI alone is a JPEG cut short (reported as such) */
    if (size >= 2 && p[0] == 0xff && p[1] == 0xd8 && (size == 2 || p[2] == 0xff))
        return MEDVLM_IMAGE_JPEG;
    if (size >= 8 && memcmp(p, png_magic, 8) == 0) return MEDVLM_IMAGE_PNG;
    /* classic TIFF (42) and BigTIFF (43), either byte order */
    if (size >= 4 && ((p[0] == 'I' && p[1] == 'I' && (p[2] == 42 || p[2] == 43) && p[3] == 0) ||
                      (p[0] == 'M' && p[1] == 'M' && p[2] == 0 && (p[3] == 42 || p[3] == 43))))
        return MEDVLM_IMAGE_TIFF;
    return MEDVLM_IMAGE_UNKNOWN;
}

enum medvlm_status medvlm_image_decode_memory(const void *data, size_t size, const char *name,
                                              const struct medvlm_decode_limits *lim,
                                              struct medvlm_image *out)
{
    if (!out) return mv_err(MEDVLM_ERR_ARG, "medvlm_image_decode_memory: out is NULL");
    memset(out, 0, sizeof *out);
    if (!name) name = "<memory>";
    if (!data && size) return mv_err(MEDVLM_ERR_ARG, "%s: data is NULL", name);
    struct medvlm_decode_limits def;
    if (!lim) {
        medvlm_decode_limits_default(&def);
        lim = &def;
    }
    if (size == 0)
        return mv_err(MEDVLM_ERR_FORMAT,
                      "%s: empty file (0 bytes), expected a JPEG, PNG or "
                      "TIFF image",
                      name);
    enum medvlm_status st;
    switch (medvlm_image_sniff(data, size)) {
    case MEDVLM_IMAGE_JPEG:
        st = mv_jpeg_decode(name, data, size, lim, out);
        break;
    case MEDVLM_IMAGE_PNG:
        st = mv_png_decode(name, data, size, lim, out);
        break;
    case MEDVLM_IMAGE_TIFF:
        st = mv_tiff_decode(name, data, size, lim, out);
        break;
    default: {
        const uint8_t *p = data;
        char hex[3 * 8 + 1] = "";
        int k = 0;
        for (size_t i = 0; i < size && i < 8; i++)
            k += snprintf(hex + k, sizeof hex - (size_t)k, "%s%02x", i ? " " : "", p[i]);
        return mv_err(MEDVLM_ERR_UNSUPPORTED,
                      "%s: not a JPEG, PNG or TIFF image (first bytes %s; the format is read from "
                      "the content, not the file name)",
                      name, hex);
    }
    }
    if (st) medvlm_image_free(out);
    return st;
}

enum medvlm_status medvlm_image_decode_file(const char *path,
                                            const struct medvlm_decode_limits *lim,
                                            struct medvlm_image *out)
{
    if (!out) return mv_err(MEDVLM_ERR_ARG, "medvlm_image_decode_file: out is NULL");
    memset(out, 0, sizeof *out);
    if (!path) return mv_err(MEDVLM_ERR_ARG, "medvlm_image_decode_file: path is NULL");
    char *buf;
    size_t len;
    enum medvlm_status st = mv_read_file(path, &buf, &len);
    if (st) return st;
    st = medvlm_image_decode_memory(buf, len, path, lim, out);
    mv_free(buf);
    return st;
}

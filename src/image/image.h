/*
 * image.h - internal image module: the three decoders behind medvlm_image_decode_memory, the
 * Pillow fixed-point resampler, the torchvision float bilinear resampler, torch's uint8
 * antialiased resampler (transformers 5's default processor), and their naive
 * siblings (kept for the tests: the fast versions must agree with them bit for bit).
 *
 * Layouts: decoded images are HWC uint8 RGB (struct medvlm_image); model inputs are CHW
 * float32. Letters: H, W input height/width, OH, OW output height/width.
 */
#ifndef MEDVLM_IMAGE_H
#define MEDVLM_IMAGE_H

#include "../core/core.h"

/* ---- decode.c: shared by the decoders ---- */

/* Error unless w x h is within lim (checked before any pixel allocation). `what` names the
 * format in the message ("PNG"). */
enum medvlm_status mv_image_check_limits(const char *name, const char *what, uint64_t w, uint64_t h,
                                         const struct medvlm_decode_limits *lim);
/* Allocate out->rgb for w x h (after the limit check); out->width/height set. */
enum medvlm_status mv_image_alloc(const char *name, int w, int h, struct medvlm_image *out);

/* ---- one decoder per file; each fills *out (zeroed on failure) ---- */
enum medvlm_status mv_jpeg_decode(const char *name, const uint8_t *data, size_t size,
                                  const struct medvlm_decode_limits *lim, struct medvlm_image *out);
enum medvlm_status mv_png_decode(const char *name, const uint8_t *data, size_t size,
                                 const struct medvlm_decode_limits *lim, struct medvlm_image *out);
enum medvlm_status mv_tiff_decode(const char *name, const uint8_t *data, size_t size,
                                  const struct medvlm_decode_limits *lim, struct medvlm_image *out);

/* Pillow's CMYK -> RGB (Convert.c cmyk2rgb) on one pixel of real (non-inverted) CMYK. */
static inline void mv_cmyk_to_rgb(const uint8_t cmyk[4], uint8_t rgb[3])
{
    int nk = 255 - cmyk[3];
    for (int c = 0; c < 3; c++) {
        int tmp = cmyk[c] * nk + 128;
        int v = nk - (((tmp >> 8) + tmp) >> 8);
        rgb[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

/* ---- resize_pil.c: Pillow's ImagingResample on uint8 RGB, fixed point (22 bits) ---- */

/* Coefficients of one axis for the outputs [o0, o0 + n) of an in_size -> out_size resize.
 * bounds[2i] = first source index, bounds[2i+1] = tap count; k[i * ksize + j] = weight. */
struct mv_pil_axis {
    int n, ksize;
    int *bounds;
    int32_t *k;
};
enum medvlm_status mv_pil_axis_init(struct mv_pil_axis *ax, int in_size, int out_size, int o0,
                                    int n, enum medvlm_resample filter);
void mv_pil_axis_free(struct mv_pil_axis *ax);

/* Resize src (H, W, 3) to the full size (OH, OW) and write only the window rows
 * [y0, y0 + wh) x cols [x0, x0 + ww) of the result into dst (wh, ww, 3); window positions
 * outside [0, OH) x [0, OW) are 0 (CLIPImageProcessor's centre-crop padding). The window
 * is computed directly: no full-size intermediate. */
enum medvlm_status mv_pil_resize_window(const uint8_t *src, int H, int W, int OH, int OW, int y0,
                                        int x0, int wh, int ww, enum medvlm_resample filter,
                                        uint8_t *dst);
/* Naive sibling: the full resize pixel by pixel in Pillow's order, then the window. */
enum medvlm_status mv_pil_resize_window_naive(const uint8_t *src, int H, int W, int OH, int OW,
                                              int y0, int x0, int wh, int ww,
                                              enum medvlm_resample filter, uint8_t *dst);

/* ---- resize_tv.c: torch's bilinear interpolate on float CHW planes (align_corners=False) ---- */

/* src (C, H, W) -> dst (C, OH, OW); antialias as torch's _upsample_bilinear2d_aa. */
enum medvlm_status mv_tv_resize(const float *src, int C, int H, int W, int OH, int OW,
                                int antialias, float *dst);
/* The same from HWC uint8 RGB (H, W, 3) through lut[c][v] (the float value of v in channel c):
 * bit-identical to building the planes with lut and calling mv_tv_resize, without the planes. */
enum medvlm_status mv_tv_resize_rgb8(const uint8_t *rgb, int H, int W, const float lut[3][256],
                                     int OH, int OW, int antialias, float *dst);
enum medvlm_status mv_tv_resize_naive(const float *src, int C, int H, int W, int OH, int OW,
                                      int antialias, float *dst);

/* ---- resize_tv_u8.c: torch's uint8 interpolate with antialias (int16 weights) ---- */

/* Resize src (H, W, 3) to (OH, OW) as torchvision's v2 resize does on a uint8 tensor (bicubic or
 * bilinear, antialias=True) and write the window rows [y0, y0 + wh) x cols [x0, x0 + ww) of
 * the result into dst (wh, ww, 3); positions outside the result are 0 (the centre crop's
 * padding). Only the window's taps are computed. */
enum medvlm_status mv_tv_resize_u8_window(const uint8_t *src, int H, int W, int OH, int OW, int y0,
                                          int x0, int wh, int ww, enum medvlm_resample filter,
                                          uint8_t *dst);
/* Naive sibling: the whole resize in torch's order, then the window. */
enum medvlm_status mv_tv_resize_u8_window_naive(const uint8_t *src, int H, int W, int OH, int OW,
                                                int y0, int x0, int wh, int ww,
                                                enum medvlm_resample filter, uint8_t *dst);

/* ---- encode.c: thumbnails and JPEG for people (reports, the server), never for the model ---- */

/* out = img scaled (Pillow's bilinear) so that its longer side is at most max_side, aspect
 * ratio kept; a smaller image is copied as is. out is allocated (medvlm_image_free). */
enum medvlm_status mv_image_thumbnail(const struct medvlm_image *img, int max_side,
                                      struct medvlm_image *out);
/* A baseline JPEG of img (quality 1..100) in *out (len bytes; release with mv_free). */
enum medvlm_status mv_jpeg_encode(const struct medvlm_image *img, int quality, uint8_t **out,
                                  size_t *len);

#endif

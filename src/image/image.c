/*
 * image.c - the decoded image itself: the size limits every decoder checks before it
 * allocates, the allocation, and freeing.
 */
#include "image.h"

#include <stdio.h>

#include <string.h>

#define MV_DEFAULT_MAX_SIDE 20000
/* 100 megapixels: 300 MB of decoded RGB per decoding thread. Whole tiles and large fields of
 * view (10000 x 10000) pass; a 20000 x 20000 "bomb" (1.2 GB per thread) does not. */
#define MV_DEFAULT_MAX_PIXELS ((int64_t)100 * 1000 * 1000)

void medvlm_decode_limits_default(struct medvlm_decode_limits *lim)
{
    lim->max_width = MV_DEFAULT_MAX_SIDE;
    lim->max_height = MV_DEFAULT_MAX_SIDE;
    lim->max_pixels = MV_DEFAULT_MAX_PIXELS;
}

enum medvlm_status mv_image_check_limits(const char *name, const char *what, uint64_t w, uint64_t h,
                                         const struct medvlm_decode_limits *lim)
{
    if (w == 0 || h == 0)
        return mv_err(MEDVLM_ERR_FORMAT, "%s: %s declares an empty image (%llu x %llu)", name, what,
                      (unsigned long long)w, (unsigned long long)h);
    int over = (lim->max_width > 0 && w > (uint64_t)lim->max_width) ||
               (lim->max_height > 0 && h > (uint64_t)lim->max_height) ||
               (lim->max_pixels > 0 &&
                (w > (uint64_t)lim->max_pixels || w * h > (uint64_t)lim->max_pixels));
    /* whatever the limits, a side must fit an int and 3 * w * h a size_t */
    if (over || w > INT32_MAX / 4 || h > INT32_MAX / 4 || w * h > SIZE_MAX / 4) {
        const double bytes = 3.0 * (double)w * (double)h; /* decoded RGB */
        char size[32];
        if (bytes >= 1e9)
            snprintf(size, sizeof size, "%.1f GB", bytes / 1e9);
        else if (bytes >= 1e6)
            snprintf(size, sizeof size, "%.0f MB", bytes / 1e6);
        else
            snprintf(size, sizeof size, "%.0f kB", bytes / 1e3);
        return mv_err(MEDVLM_ERR_LIMIT,
                      "%s: %s declares %llu x %llu pixels (%s decoded), over the decode limit "
                      "(max %d x %d, %lld pixels); raise struct medvlm_decode_limits to accept it",
                      name, what, (unsigned long long)w, (unsigned long long)h, size,
                      lim->max_width, lim->max_height, (long long)lim->max_pixels);
    }
    return MEDVLM_OK;
}

enum medvlm_status mv_image_alloc(const char *name, int w, int h, struct medvlm_image *out)
{
    size_t n;
    if (w <= 0 || h <= 0 || !mv_mul_ok((size_t)w, (size_t)h, &n) || !mv_mul_ok(n, 3, &n))
        return mv_err(MEDVLM_ERR_OVERFLOW, "%s: image size %d x %d overflows", name, w, h);
    out->rgb = mv_malloc(n);
    if (!out->rgb) return mv_err_ctx(MEDVLM_ERR_NOMEM, "%s", name);
    out->width = w;
    out->height = h;
    return MEDVLM_OK;
}

void medvlm_image_free(struct medvlm_image *img)
{
    if (!img) return;
    mv_free(img->rgb);
    memset(img, 0, sizeof *img);
}

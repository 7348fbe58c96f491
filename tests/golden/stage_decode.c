/* stage_decode.c - decode.safetensors: rgb.{i} = every manifest image decoded to RGB, U8 [H,W,3].
 */
#include "golden.h"

#include "../../src/core/core.h"

#include <stdio.h>

enum medvlm_status golden_stage_decode(struct golden_ctx *g)
{
    struct medvlm_st_writer *w = NULL;
    enum medvlm_status st = medvlm_st_writer_init(&w);
    if (st) return st;
    int n = golden_image_count(g);
    for (int i = 0; i < n && !st; i++) {
        char *path = golden_image_path(g, i);
        struct medvlm_image img;
        if (!path) {
            st = mv_err(MEDVLM_ERR_FORMAT, "manifest.json: images[%d] has no \"file\"", i);
            break;
        }
        st = medvlm_image_decode_file(path, NULL, &img);
        if (!st) {
            char name[32];
            snprintf(name, sizeof name, "rgb.%d", i);
            int64_t shape[3] = {img.height, img.width, 3};
            st = medvlm_st_writer_add(w, name, MEDVLM_DTYPE_U8, 3, shape, img.rgb);
        }
        medvlm_image_free(&img);
        mv_free(path);
    }
    if (!st) st = golden_save(g, w, "decode.safetensors");
    medvlm_st_writer_free(w);
    return st;
}

/* fuzz_image.c - the decode entry point on arbitrary bytes: format sniffing, the JPEG, PNG and
 * TIFF decoders and their RGB conversions; small results also go through the three
 * preprocessing pipelines. Limits are lowered (160 x 160 pixels) so that each run stays fast and a
 * header claiming a huge image is refused at once. */
#include "medvlm.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct medvlm_decode_limits lim = {
        .max_width = 1024, .max_height = 1024, .max_pixels = 160 * 160};
    struct medvlm_image img;
    if (medvlm_image_decode_memory(data, size, "fuzz", &lim, &img) != MEDVLM_OK) return 0;
    if ((size_t)img.width * img.height <= 96 * 96) {
        struct medvlm_preproc_config pp;
        medvlm_preproc_default(&pp);
        pp.shortest_edge = 24 + img.width % 9;
        pp.crop_height = pp.crop_width = 28;
        struct medvlm_preprocess_options o;
        medvlm_preprocess_options_default(&o);
        float *out = malloc(sizeof(float) * 3 * 64 * 64);
        int h, w;
        if (out) {
            (void)medvlm_image_preprocess(&img, &pp, &o, out, 3 * 64 * 64, &h, &w);
            o.pipeline = MEDVLM_PREPROCESS_HF_TORCHVISION;
            pp.resample = img.width & 1 ? MEDVLM_RESAMPLE_BILINEAR : MEDVLM_RESAMPLE_BICUBIC;
            (void)medvlm_image_preprocess(&img, &pp, &o, out, 3 * 64 * 64, &h, &w);
            o.pipeline = MEDVLM_PREPROCESS_TUTORIAL;
            o.size = 17;
            o.antialias = img.height & 1;
            (void)medvlm_image_preprocess(&img, &pp, &o, out, 3 * 64 * 64, &h, &w);
            free(out);
        }
    }
    medvlm_image_free(&img);
    return 0;
}

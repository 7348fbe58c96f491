/*
 * stage_clip.c - golden stage `clip`: logits between every crop and every prompt of the set
 * and the contrastive loss on the first clip_loss_batch pairs, from this program's own
 * image and text embeddings (the reference inputs of the vision and text stages).
 */
#include "golden.h"

#include "../../src/io/io.h"

#include <string.h>

enum medvlm_status golden_stage_clip(struct golden_ctx *g)
{
    struct medvlm_model *m;
    struct medvlm_encoder *enc = NULL;
    struct medvlm_st_writer *w = NULL;
    float *pixels = NULL, *ie = NULL, *te = NULL, *lpi = NULL, *lpt = NULL, *lb = NULL;
    int64_t *ids = NULL, *mask = NULL;
    int n = 0, S = 0, P = 0, T = 0;
    enum medvlm_status s = golden_model(g, &m);
    if (s) return s;
    const int D = medvlm_model_config(m)->projection_dim;
    const cJSON *jb = cJSON_GetObjectItemCaseSensitive(g->manifest, "clip_loss_batch");
    int B = cJSON_IsNumber(jb) ? jb->valueint : 0;
    if ((s = golden_pixel_inputs(g, &pixels, &n, &S))) goto done;
    if ((s = golden_text_inputs(g, &ids, &mask, &P, &T))) goto done;
    if (B < 1 || B > n || B > P) {
        s = mv_err(MEDVLM_ERR_FORMAT, "manifest clip_loss_batch %d: expected 1..min(%d, %d)", B, n,
                   P);
        goto done;
    }
    ie = mv_malloc((size_t)n * D * sizeof(float));
    te = mv_malloc((size_t)P * D * sizeof(float));
    lpi = mv_malloc((size_t)n * P * sizeof(float));
    lpt = mv_malloc((size_t)n * P * sizeof(float));
    lb = mv_malloc((size_t)B * B * sizeof(float));
    if (!ie || !te || !lpi || !lpt || !lb) {
        s = MEDVLM_ERR_NOMEM;
        goto done;
    }
    if ((s = medvlm_encoder_init(m, 8, &enc))) goto done;
    if ((s = medvlm_encode_images(enc, pixels, n, ie))) goto done;
    if ((s = medvlm_encode_text(enc, ids, mask, P, T, te))) goto done;
    if ((s = medvlm_clip_logits(m, ie, n, te, P, lpi, lpt))) goto done;
    /* the loss batch: images 0..B-1 with prompts 0..B-1 */
    float *lbi = lpi; /* reuse: (B, B) logits_per_image of the batch */
    float *sq = mv_malloc((size_t)B * B * sizeof(float));
    if (!sq) {
        s = MEDVLM_ERR_NOMEM;
        goto done;
    }
    for (int i = 0; i < B; i++)
        for (int j = 0; j < B; j++) {
            sq[(size_t)i * B + j] = lbi[(size_t)i * P + j];
            lb[(size_t)j * B + i] = lbi[(size_t)i * P + j];
        }
    float loss = 0, ls = medvlm_model_logit_scale(m);
    s = medvlm_clip_loss(sq, B, &loss);
    mv_free(sq);
    if (s) goto done;
    if ((s = medvlm_st_writer_init(&w))) goto done;
    if (!s) s = medvlm_st_writer_add(w, "logit_scale", MEDVLM_DTYPE_F32, 0, NULL, &ls);
    if (!s)
        s = medvlm_st_writer_add(w, "logits_per_image", MEDVLM_DTYPE_F32, 2, (int64_t[]){n, P},
                                 lpi);
    if (!s)
        s = medvlm_st_writer_add(w, "logits_per_text", MEDVLM_DTYPE_F32, 2, (int64_t[]){P, n}, lpt);
    if (!s)
        s = medvlm_st_writer_add(w, "loss_batch_logits_per_text", MEDVLM_DTYPE_F32, 2,
                                 (int64_t[]){B, B}, lb);
    if (!s) s = medvlm_st_writer_add(w, "loss", MEDVLM_DTYPE_F32, 0, NULL, &loss);
    if (!s) s = golden_save(g, w, "clip.safetensors");
done:
    medvlm_st_writer_free(w);
    medvlm_encoder_free(enc);
    mv_free(pixels);
    mv_free(ids);
    mv_free(mask);
    mv_free(ie);
    mv_free(te);
    mv_free(lpi);
    mv_free(lpt);
    mv_free(lb);
    return s;
}

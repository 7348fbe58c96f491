/*
 * clip.c - CLIP's similarity head: logits between image and text embeddings scaled by
 * exp(logit_scale), and the symmetric contrastive loss.
 *
 * Glossary: NI images, NT prompts, D embedding dim, B the square loss batch.
 */
#include "../ops/ops.h"
#include "model.h"

#include <math.h>

enum medvlm_status medvlm_clip_logits(const struct medvlm_model *model, const float *image_embeds,
                                      int NI, const float *text_embeds, int NT,
                                      float *logits_per_image, float *logits_per_text)
{
    if (!model || NI < 0 || NT < 0 || (NI && !image_embeds) || (NT && !text_embeds))
        return mv_err(MEDVLM_ERR_ARG, "medvlm_clip_logits: NULL argument or negative count");
    const int D = model->cfg.projection_dim;
    const float s = expf(model->logit_scale);
    // HF: logits_per_text (NT, NI) = (text (NT, D) image^T) * exp(logit_scale), then
    // logits_per_image = its transpose: the same values
    for (int i = 0; i < NI; i++)
        for (int j = 0; j < NT; j++) {
            const float *x = image_embeds + (size_t)i * D, *y = text_embeds + (size_t)j * D;
            float dot = 0.0f;
            for (int d = 0; d < D; d++) dot += y[d] * x[d];
            float v = dot * s;
            if (logits_per_image) logits_per_image[(size_t)i * NT + j] = v;
            if (logits_per_text) logits_per_text[(size_t)j * NI + i] = v;
        }
    return MEDVLM_OK;
}

enum medvlm_status medvlm_clip_loss(const float *logits_per_image, int B, float *loss)
{
    if (!logits_per_image || !loss || B < 1)
        return mv_err(MEDVLM_ERR_ARG, "medvlm_clip_loss: NULL argument or batch %d < 1", B);
    *loss = (float)mv_clip_loss_forward(logits_per_image, B);
    return MEDVLM_OK;
}

/*
 * zeroshot.c - zero-shot logits from features and class prototypes:
 * logits = exp(logit_scale) * features . prototypes^T, and their row softmax.
 * The prototypes come from prompts in the task layer (src/task/prototypes.c): the adapters
 * see features and prototypes only.
 *
 * Glossary: N images, K classes, D embedding dim.
 */
#include "adapters.h"

#include "../ops/ops.h"

#include <math.h>
#include <string.h>

enum medvlm_status medvlm_zeroshot_logits(const float *features, int n, const float *protos, int k,
                                          int d, float logit_scale, float *logits, float *probs)
{
    if (!features || !protos || !logits || n < 0 || k < 1 || d < 1)
        return mv_err(MEDVLM_ERR_ARG, "zero-shot logits: bad arguments");
    /* the same kernel and scaling as the adapters' zero-shot method: identical logits */
    mv_mm_nt(logits, features, protos, n, k, d);
    const float s = expf(logit_scale);
    for (size_t i = 0; i < (size_t)n * k; i++) logits[i] *= s;
    if (probs) mv_softmax_forward(probs, logits, n, k);
    return MEDVLM_OK;
}

/*
 * task.h - internal header of the task layer: the paths from prompts and images to results
 * that the command-line tool, the server and the MPI driver share, written once:
 *
 *   prompts -> prototypes             prototypes.c  (tokenizer + text tower)
 *   images  -> features               features.c    (dataset + vision tower, resumable)
 *   logits  -> predictions -> metrics evaluate.c
 *   results -> an HTML page          report.c      (metrics, curves, thumbnails of images)
 *
 * It sits above the model, the tokenizer, the data sets and the adapters, and below the CLI:
 * the adapters see features and prototypes only, never an encoder. The public API of each
 * part is in include/medvlm.h, sections "feature extraction", "zero-shot" and "tasks".
 */
#ifndef MEDVLM_TASK_H
#define MEDVLM_TASK_H

#include "../core/core.h"

/* medvlm_prompts_prototypes on the caller's encoder enc (of model m), which it reuses: for
 * callers that hold one encoder per thread (the server's workers). */
enum medvlm_status mv_prompts_prototypes_enc(struct medvlm_encoder *enc,
                                             const struct medvlm_model *m,
                                             const struct medvlm_tokenizer *tok,
                                             const struct medvlm_prompts *pr, const int *order,
                                             int k, float *protos);

#endif

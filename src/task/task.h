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

#endif

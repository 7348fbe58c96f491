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

struct mv_resume;

/* ---- feature extraction in parts (features.c) ----
 * medvlm_features_extract = mv_features_compute over every batch + mv_features_finish. A
 * distributed run (src/dist/) computes a shard of the batches per process, gathers the shards
 * into one state and finishes it once: the same bytes as one process, since every batch keeps
 * its fixed boundaries. */
struct mv_features_shard {
    int b0, b1;          /* batches [b0, b1) of the job's fixed boundaries */
    const char *log_tag; /* NULL: the resume log is OUT.partial; else OUT.<tag>.partial, whose
                            header also names the shard (replayed only into the same shard) */
};
struct mv_features_state {
    int n, d;              /* dataset images, embedding dim */
    float *all;            /* (n, d) embeddings; those of batches outside the shard are 0 */
    uint8_t *all_ok;       /* (n) 1 = decoded (only meaningful inside the shard) */
    int resumed, computed; /* batches replayed from the log, images embedded by this run */
    struct mv_resume *log; /* the open resume log (NULL without out_path); owned */
};
/* Number of fixed batches of the job. */
int mv_features_batches(const struct medvlm_features_job *job);
/* Embed the batches of shard (NULL: all) into *fs, appending each to the resume log. */
enum medvlm_status mv_features_compute(const struct medvlm_features_job *job,
                                       const struct mv_features_shard *shard,
                                       struct mv_features_state *fs);
/* The result of a complete state (every batch filled), written to job->out_path when set.
 * res->resumed / computed are copied from fs. The resume log is left for the caller. */
enum medvlm_status mv_features_finish(const struct medvlm_features_job *job,
                                      const struct mv_features_state *fs,
                                      struct medvlm_features_result *res);
void mv_features_state_free(struct mv_features_state *fs); /* closes the log, keeps its file */

/* medvlm_prompts_prototypes on the caller's encoder enc (of model m), which it reuses: for
 * callers that hold one encoder per thread (the server's workers). */
enum medvlm_status mv_prompts_prototypes_enc(struct medvlm_encoder *enc,
                                             const struct medvlm_model *m,
                                             const struct medvlm_tokenizer *tok,
                                             const struct medvlm_prompts *pr, const int *order,
                                             int k, float *protos);

#endif

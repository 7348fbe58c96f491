/*
 * dist.h - internal header of the distributed layer: medvlm under `mpirun -np N` (Open MPI),
 * with results that do not depend on N. The only module that calls MPI; it sits above the task
 * layer and fine-tuning, below the CLI.
 *
 *   comm.c      the run: start (MPI_Init only when launched by an MPI launcher), rank and size,
 *               threads per rank, idling ranks, the end (finalize, or abort naming the rank)
 *   features.c  feature extraction in fixed shards of batches, one resume log per rank, the
 *               shards gathered by rank 0 into one file byte-identical to one process's
 *   finetune.c  a data-parallel training step: each rank a slice of every global batch,
 *               gradients summed over a fixed binary tree, the same update on every rank
 *
 * Built without MPI (-DMEDVLM_MPI=OFF, or no Open MPI development files) every function here
 * is the one-process case: rank 0 of 1, collectives that copy.
 */
#ifndef MEDVLM_DIST_H
#define MEDVLM_DIST_H

#include "../core/core.h"

struct medvlm_peft;

/* ---- the run (comm.c) ---- */

/* Start: MPI_Init when the process was launched by mpirun / srun (OMPI_COMM_WORLD_SIZE,
 * PMIX_RANK or PMI_RANK in the environment), else nothing. Without MPI support, a launch by
 * mpirun with more than one process is refused (each would run the whole command). Picks the
 * threads of each rank: OMP_NUM_THREADS when set, else the cores the launcher bound the rank
 * to, else the node's cores / the ranks on the node; said on stderr by rank 0 when size > 1. */
enum medvlm_status mv_dist_init(int *argc, char ***argv);
/* The end of a command with exit code rc: MPI_Finalize when every rank got here, or, when rc
 * is not 0 and size > 1, a message naming this rank and MPI_Abort (the other ranks may wait in
 * a collective that will never complete). Returns rc. */
int mv_dist_end(int rc);
int mv_dist_rank(void);   /* 0 without MPI */
int mv_dist_size(void);   /* 1 without MPI */
int mv_dist_active(void); /* 1 when MPI was initialised (launched by mpirun, even -np 1) */
/* Ranks other than 0 of a command that runs on rank 0 alone: sleep until rank 0 calls
 * mv_dist_release (no CPU used while waiting). Rank 0 calls mv_dist_release when done. */
void mv_dist_idle(void);
void mv_dist_release(void);
/* Every rank: 1 when every rank passed ok = 1 (a logical AND over the ranks). */
int mv_dist_all_ok(int ok);
/* Rank 0's value of *x on every rank. */
void mv_dist_bcast_double(double *x);

/* ---- feature extraction (features.c) ---- */

/* medvlm_features_extract across the ranks: rank r extracts batches [nb r / N, nb (r+1) / N)
 * with its own resume log OUT.rank<r>.partial (N = 1: OUT.partial, as one process), rank 0
 * gathers the shards in rank order and writes job->out_path (res filled on rank 0 only; on
 * the other ranks res->n = 0). The logs are removed once the file is written. */
enum medvlm_status mv_dist_features_extract(const struct medvlm_features_job *job,
                                            struct medvlm_features_result *res);

/* ---- data-parallel fine-tuning (finetune.c) ---- */

/* One training step on the global batch pixels (B, 3, S, S), labels (B), the same on every
 * rank: rank r computes the mean-loss gradient of its slice [B r / N, B (r+1) / N), weighted
 * by its share of B; the slices' gradients are summed over a fixed binary tree (rank r + 2^s
 * into rank r) and broadcast; every rank applies the same optimiser update. *loss: the mean
 * loss of the global batch. N = 1 is medvlm_peft_step, bit for bit. */
enum medvlm_status mv_dist_peft_step(struct medvlm_peft *p, const float *pixels,
                                     const int64_t *labels, int B, float *loss);

#endif

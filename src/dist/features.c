/*
 * features.c - feature extraction across MPI ranks, with the bytes of one process.
 *
 * The job's fixed batches (batch b = images [b B, b B + B)) are cut into N contiguous shards:
 * rank r takes batches [nb r / N, nb (r+1) / N). Each batch is computed as a single process
 * computes it (same images, same batch, same kernels), so its embeddings are the same bits.
 * Each rank appends its finished batches to its own resume log, OUT.rank<r>.partial, whose
 * header names the job and the shard. Rank 0 then receives the shards in rank order into one
 * state and writes the file through the same code as one process (mv_features_finish): the
 * same order, header and provenance. Only once that file is in place do the ranks delete their
 * logs; a rank that dies before leaves every log behind, and --resume with the same N redoes
 * only the batches missing from them.
 *
 * What moves: each rank sends rank 0 its shard's ok flags (1 byte an image) and embeddings
 * (D floats an image), in messages of at most 256 MiB.
 */
#include "dist.h"

#include "../io/io.h"
#include "../task/task.h"

#include <stdio.h>
#include <string.h>

#ifdef MEDVLM_MPI
#include <mpi.h>

enum { TAG_COUNTS = 1, TAG_OK, TAG_EMB };

/* Images [first, last) of rank r's shard. */
static void shard_items(const struct medvlm_features_job *job, int nb, int r, int size, int *first,
                        int *last)
{
    const int B = job->batch_size;
    int b0 = (int)((long long)nb * r / size), b1 = (int)((long long)nb * (r + 1) / size);
    *first = b0 * B;
    *last = MV_MIN(b1 * B, job->data->n);
    if (*last < *first) *last = *first;
}

/* Move n elements of type t from rank `from` to rank 0, in messages of at most 256 MiB. */
static void move_chunked(void *buf, size_t n, MPI_Datatype t, size_t elem, int from, int tag)
{
    const size_t chunk = ((size_t)256 << 20) / elem;
    char *p = buf;
    for (size_t i = 0; i < n; i += chunk) {
        int c = (int)MV_MIN(chunk, n - i);
        if (mv_dist_rank() == 0)
            MPI_Recv(p + i * elem, c, t, from, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        else
            MPI_Send(p + i * elem, c, t, 0, tag, MPI_COMM_WORLD);
    }
}

enum medvlm_status mv_dist_features_extract(const struct medvlm_features_job *job,
                                            struct medvlm_features_result *res)
{
    const int rank = mv_dist_rank(), size = mv_dist_size();
    memset(res, 0, sizeof *res);
    if (size == 1) return medvlm_features_extract(job, res);
    if (!job || !job->model || !job->data || job->data->n < 1 || job->batch_size < 1)
        return medvlm_features_extract(job, res); /* the one-process message */
    struct medvlm_features_job mine = *job;
    if (rank != 0) mine.progress = NULL; /* one progress line: rank 0's shard */
    const int nb = mv_features_batches(job);
    char tag[32];
    snprintf(tag, sizeof tag, "rank%d", rank);
    const struct mv_features_shard shard = {(int)((long long)nb * rank / size),
                                            (int)((long long)nb * (rank + 1) / size), tag};
    struct mv_features_state fs;
    enum medvlm_status st = mv_features_compute(&mine, &shard, &fs);
    if (st) return st; /* the CLI stops the job, naming this rank */
    const size_t d = (size_t)fs.d;
    int counts[2] = {fs.resumed, fs.computed};
    if (rank != 0) {
        int first, last;
        shard_items(job, nb, rank, size, &first, &last);
        MPI_Send(counts, 2, MPI_INT, 0, TAG_COUNTS, MPI_COMM_WORLD);
        move_chunked(fs.all_ok + first, (size_t)(last - first), MPI_BYTE, 1, rank, TAG_OK);
        move_chunked(fs.all + (size_t)first * d, (size_t)(last - first) * d, MPI_FLOAT,
                     sizeof(float), rank, TAG_EMB);
    } else {
        for (int r = 1; r < size; r++) {
            int first, last, c[2];
            shard_items(job, nb, r, size, &first, &last);
            MPI_Recv(c, 2, MPI_INT, r, TAG_COUNTS, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            counts[0] += c[0];
            counts[1] += c[1];
            move_chunked(fs.all_ok + first, (size_t)(last - first), MPI_BYTE, 1, r, TAG_OK);
            move_chunked(fs.all + (size_t)first * d, (size_t)(last - first) * d, MPI_FLOAT,
                         sizeof(float), r, TAG_EMB);
        }
        st = mv_features_finish(job, &fs, res);
        res->resumed = counts[0];
        res->computed = counts[1];
    }
    /* rank 0 says whether the file is written; only then do the logs go */
    int written = st == MEDVLM_OK;
    MPI_Bcast(&written, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (written) mv_resume_remove(fs.log);
    mv_features_state_free(&fs);
    if (rank == 0 || written) return st;
    return mv_err(MEDVLM_ERR_IO, "rank 0 could not write %s", job->out_path);
}

#else /* built without MPI: one process */

enum medvlm_status mv_dist_features_extract(const struct medvlm_features_job *job,
                                            struct medvlm_features_result *res)
{
    return medvlm_features_extract(job, res);
}

#endif

/*
 * features.c - extract the l2-normalised image embeddings of a dataset once, resumably.
 *
 * Batches have fixed boundaries in dataset order (batch b = images [b*B, b*B+B)); each
 * finished batch is appended to OUT.partial (src/io/resume.c) before the next starts, so a
 * killed run loses at most one batch, and a resumed run computes every batch exactly as an
 * uninterrupted run does: the result is the same file, byte for byte.
 */
#include "task.h"

#include "../io/io.h"

#include <stdio.h>
#include <string.h>

/* What identifies a job: a resume log is only replayed into the same job. */
static char *job_fingerprint(const struct medvlm_features_job *job, int d, int h, int w)
{
    uint64_t hash = 1469598103934665603ull;
    const struct medvlm_dataset *ds = job->data;
    for (int i = 0; i < ds->n; i++) {
        for (const unsigned char *p = (const unsigned char *)ds->paths[i]; *p; p++)
            hash = (hash ^ *p) * 1099511628211ull;
        hash = (hash ^ (uint64_t)ds->labels[i]) * 1099511628211ull;
    }
    return mv_asprintf("model=%s weights=%s dim=%d input=%dx%d pipeline=%d size=%d antialias=%d "
                       "crop=%d images=%d hash=%016llx",
                       medvlm_model_dir(job->model), medvlm_model_fingerprint(job->model), d, h, w,
                       (int)job->pre.pipeline, job->pre.size, job->pre.antialias,
                       job->pre.center_crop, ds->n, (unsigned long long)hash);
}

/* Check the job and fill st's sizes. */
static enum medvlm_status job_check(const struct medvlm_features_job *job, int *d, int *h, int *w)
{
    if (!job || !job->model || !job->data || job->data->n < 1 || job->batch_size < 1)
        return mv_err(MEDVLM_ERR_ARG, "features: need a model, a non-empty dataset and a batch "
                                      "size >= 1");
    const struct medvlm_preproc_config *pp = medvlm_model_preproc(job->model);
    *d = medvlm_model_config(job->model)->projection_dim;
    enum medvlm_status st = medvlm_image_preprocess_fixed_size(pp, &job->pre, h, w);
    if (st) return st;
    int S = medvlm_model_config(job->model)->vision.image_size;
    if (*h != S || *w != S)
        return mv_err(MEDVLM_ERR_ARG,
                      "features: preprocessing gives %dx%d images but the model takes %dx%d "
                      "(check crop_size in preprocessor_config.json or --size)",
                      *h, *w, S, S);
    return MEDVLM_OK;
}

int mv_features_batches(const struct medvlm_features_job *job)
{
    return (job->data->n + job->batch_size - 1) / job->batch_size;
}

enum medvlm_status mv_features_compute(const struct medvlm_features_job *job,
                                       const struct mv_features_shard *shard,
                                       struct mv_features_state *fs)
{
    enum medvlm_status st = MEDVLM_OK;
    struct medvlm_encoder *enc = NULL;
    float *pixels = NULL, *emb = NULL;
    enum medvlm_status *item = NULL;
    uint8_t *ok = NULL;
    char *fp = NULL, *log_base = NULL;
    int d = 0, h = 0, w = 0;
    memset(fs, 0, sizeof *fs);
    if ((st = job_check(job, &d, &h, &w))) return st;
    const struct medvlm_dataset *ds = job->data;
    const struct medvlm_preproc_config *pp = medvlm_model_preproc(job->model);
    const int B = job->batch_size, nb = mv_features_batches(job);
    const int b0 = shard ? shard->b0 : 0, b1 = shard ? shard->b1 : nb;
    if (b0 < 0 || b1 > nb || b0 > b1)
        return mv_err(MEDVLM_ERR_ARG, "features: shard of batches [%d, %d) of %d", b0, b1, nb);
    for (int i = 0; job->out_path && i < ds->n; i++) { /* before the work, not after it */
        size_t bad = mv_utf8_check(ds->names[i], strlen(ds->names[i]));
        if (!ds->names[i][bad]) continue;
        char shown[256];
        return mv_err(MEDVLM_ERR_ARG,
                      "image %d, '%s', has a name that is not valid UTF-8 (byte 0x%02X at offset "
                      "%zu): a features file stores the names as UTF-8 JSON; rename the file or "
                      "convert the label table to UTF-8",
                      i, mv_printable(shown, sizeof shown, ds->names[i]),
                      (unsigned char)ds->names[i][bad], bad);
    }
    size_t per = (size_t)3 * h * w;
    fs->n = ds->n;
    fs->d = d;
    pixels = mv_malloc((size_t)B * per * sizeof(float));
    emb = mv_malloc((size_t)B * d * sizeof(float));
    item = mv_calloc((size_t)B, sizeof *item);
    ok = mv_calloc((size_t)B, 1);
    fp = job_fingerprint(job, d, h, w);
    fs->all = mv_calloc((size_t)ds->n * d, sizeof(float));
    fs->all_ok = mv_calloc((size_t)ds->n, 1);
    if (!pixels || !emb || !item || !ok || !fp || !fs->all || !fs->all_ok) {
        st = MEDVLM_ERR_NOMEM;
        goto fail;
    }
    if (job->out_path) { /* a file result is resumable; an in-memory one is not */
        if (shard && shard->log_tag) {
            /* a shard's log is its own file, and replays only into the same shard */
            char *tagged = mv_asprintf("%s shard=%d-%d", fp, b0, b1);
            log_base = mv_asprintf("%s.%s", job->out_path, shard->log_tag);
            mv_free(fp);
            fp = tagged;
            if (!fp || !log_base) {
                st = MEDVLM_ERR_NOMEM;
                goto fail;
            }
        }
        if ((st = mv_resume_open(log_base ? log_base : job->out_path, fp, ds->n, d, B, job->resume,
                                 &fs->log)))
            goto fail;
        fs->resumed = mv_resume_done_count(fs->log);
        memcpy(fs->all, mv_resume_embeds(fs->log), (size_t)ds->n * d * sizeof(float));
        memcpy(fs->all_ok, mv_resume_ok(fs->log), (size_t)ds->n);
    }
    if ((st = medvlm_encoder_init(job->model, B, &enc))) goto fail;
    double t0 = mv_now();
    for (int b = b0; b < b1; b++) {
        if (fs->log && mv_resume_is_done(fs->log, b)) continue;
        int first = b * B, count = MV_MIN(B, ds->n - first);
        st = medvlm_image_preprocess_files((const char *const *)ds->paths + first, count, NULL, pp,
                                           &job->pre, job->threads, pixels, (size_t)B * per, item);
        int bad = 0;
        for (int i = 0; i < count; i++) {
            ok[i] = item[i] == MEDVLM_OK;
            if (ok[i]) continue;
            bad++;
            /* the batch call keeps one message; decode again alone to report this file's */
            struct medvlm_image img;
            if (medvlm_image_decode_file(ds->paths[first + i], NULL, &img) == MEDVLM_OK) {
                medvlm_image_free(&img);
                mv_err(item[i], "%s: cannot be preprocessed (%s)", ds->paths[first + i],
                       medvlm_status_name(item[i]));
            }
            mv_log(job->skip_bad ? MEDVLM_LOG_WARN : MEDVLM_LOG_ERROR, "%s%s", medvlm_last_error(),
                   job->skip_bad ? " (skipped)" : "");
            memset(pixels + (size_t)i * per, 0, per * sizeof(float));
        }
        if (bad && !job->skip_bad) {
            st = mv_err(MEDVLM_ERR_FORMAT,
                        "%d image(s) failed to decode (listed above); nothing was written: fix "
                        "or remove them, or pass --skip-bad to leave them out",
                        bad);
            goto fail;
        }
        if ((st = medvlm_encode_images(enc, pixels, count, emb))) goto fail;
        for (int i = 0; i < count; i++) { /* NaN never goes into a file or a score */
            const float *row = emb + (size_t)i * d;
            size_t j = ok[i] ? mv_find_nonfinite(row, (size_t)d) : (size_t)d;
            if (j == (size_t)d) continue;
            st = mv_err(MEDVLM_ERR_FORMAT,
                        "image %d (%s): its embedding is not finite (%g at dimension %zu): the "
                        "model's weights or the image's pixels hold NaN or inf; nothing was "
                        "written",
                        first + i, ds->names[first + i], (double)row[j], j);
            goto fail;
        }
        if (fs->log && (st = mv_resume_append(fs->log, b, ok, emb))) goto fail;
        memcpy(fs->all + (size_t)first * d, emb, (size_t)count * d * sizeof(float));
        memcpy(fs->all_ok + first, ok, (size_t)count);
        fs->computed += count;
        if (job->progress)
            job->progress(first + count, MV_MIN(b1 * B, ds->n), fs->computed, mv_now() - t0,
                          job->progress_user);
    }
fail:
    if (st) mv_features_state_free(fs);
    medvlm_encoder_free(enc);
    mv_free(pixels);
    mv_free(emb);
    mv_free(item);
    mv_free(ok);
    mv_free(fp);
    mv_free(log_base);
    return st;
}

enum medvlm_status mv_features_finish(const struct medvlm_features_job *job,
                                      const struct mv_features_state *fs,
                                      struct medvlm_features_result *res)
{
    enum medvlm_status st = MEDVLM_OK;
    const struct medvlm_dataset *ds = job->data;
    const int d = fs->d;
    memset(res, 0, sizeof *res);
    /* gather the images that decoded, in dataset order */
    int n_ok = 0;
    for (int i = 0; i < ds->n; i++) n_ok += fs->all_ok[i];
    if (n_ok == 0)
        return mv_err(MEDVLM_ERR_FORMAT, "features: no image of the dataset could be read");
    res->features = mv_malloc((size_t)n_ok * d * sizeof(float));
    res->labels = mv_malloc((size_t)n_ok * sizeof(int64_t));
    res->names = mv_calloc((size_t)n_ok, sizeof(char *));
    if (!res->features || !res->labels || !res->names) {
        st = MEDVLM_ERR_NOMEM;
        goto fail;
    }
    for (int i = 0, j = 0; i < ds->n; i++) {
        if (!fs->all_ok[i]) continue;
        memcpy(res->features + (size_t)j * d, fs->all + (size_t)i * d, (size_t)d * sizeof(float));
        res->labels[j] = ds->labels[i];
        res->names[j] = ds->names[i];
        j++;
    }
    res->n = n_ok;
    res->d = d;
    res->skipped = ds->n - n_ok;
    res->resumed = fs->resumed;
    res->computed = fs->computed;
    if (job->out_path) {
        const struct medvlm_provenance from = {medvlm_model_fingerprint(job->model),
                                               medvlm_model_dir(job->model)};
        if ((st = medvlm_features_save(job->out_path, res->features, res->labels, n_ok, d,
                                       (const char *const *)ds->classes, ds->n_classes,
                                       (const char *const *)res->names, &from)))
            goto fail;
    }
fail:
    if (st) medvlm_features_result_free(res);
    return st;
}

void mv_features_state_free(struct mv_features_state *fs)
{
    if (!fs) return;
    mv_resume_free(fs->log);
    mv_free(fs->all);
    mv_free(fs->all_ok);
    memset(fs, 0, sizeof *fs);
}

enum medvlm_status medvlm_features_extract(const struct medvlm_features_job *job,
                                           struct medvlm_features_result *res)
{
    struct mv_features_state fs;
    memset(res, 0, sizeof *res);
    enum medvlm_status st = mv_features_compute(job, NULL, &fs);
    if (st) return st;
    if (!(st = mv_features_finish(job, &fs, res))) mv_resume_remove(fs.log);
    mv_features_state_free(&fs);
    return st;
}

void medvlm_features_result_free(struct medvlm_features_result *res)
{
    if (!res) return;
    mv_free(res->features);
    mv_free(res->labels);
    mv_free(res->names);
    memset(res, 0, sizeof *res);
}

/*
 * api.c - the JSON API of `medvlm serve`, one handler per endpoint:
 *   GET  info           the model, the classes, the tiles, the limits
 *   POST zeroshot       an image (JSON {"image": base64} or the raw bytes) -> class
 *                       probabilities for the loaded prompts or the request's own
 *                       ("prompts": the prompts-file object), and the adapter's
 *   POST search/text    {"text", "k"} -> the k tiles most similar to the text
 *   POST search/image   {"image" | "index", "k"} -> the k tiles most similar to the image
 *   GET  tile/{index}   a JPEG thumbnail of a tile of the features file
 * Nothing a request says reaches the filesystem: a tile is named by its row in the features
 * file, and its file name comes from that file. Every error is a JSON body with a message.
 */
#include "serve.h"

#include "core/core.h"
#include "image/image.h"
#include "task/task.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void mv_serve_limits_default(struct mv_serve_limits *l)
{
    l->max_upload = (size_t)16 << 20;
    l->max_pixels = (int64_t)25000000;
    l->max_side = 10000;
    l->timeout_s = 30;
    l->max_requests = 32;
    l->max_k = 100;
    l->max_text = 2000;
    l->max_prompts = 512;
}

/* ---- responses ---- */

static void respond_json(struct mv_serve_response *r, int status, cJSON *root)
{
    char *text = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!text) {
        mv_serve_error(r, 503, "out of memory");
        return;
    }
    r->status = status;
    r->body = text;
    r->len = strlen(text);
    r->type = "application/json";
}

void mv_serve_error(struct mv_serve_response *r, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *text = NULL;
    cJSON *root = cJSON_CreateObject();
    if (root && cJSON_AddStringToObject(root, "error", msg) &&
        cJSON_AddNumberToObject(root, "status", status))
        text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!text) { /* out of memory: a fixed body the HTTP layer knows not to free */
        r->status = 503;
        r->body = NULL;
        r->len = 0;
        r->type = "application/json";
        return;
    }
    r->status = status;
    r->body = text;
    r->len = strlen(text);
    r->type = "application/json";
}

/* ---- workers ---- */

enum medvlm_status mv_serve_workers_init(struct mv_serve_state *s, int n)
{
    s->workers = mv_calloc((size_t)n, sizeof *s->workers);
    if (!s->workers) return MEDVLM_ERR_NOMEM;
    s->n_workers = n;
    for (int i = 0; i < n; i++) {
        enum medvlm_status st = medvlm_encoder_init(s->model, 16, &s->workers[i].enc);
        if (st) return st;
        s->workers[i].pixels = mv_calloc((size_t)3 * s->S * s->S, sizeof(float));
        if (!s->workers[i].pixels) return MEDVLM_ERR_NOMEM;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    return MEDVLM_OK;
}

void mv_serve_workers_free(struct mv_serve_state *s)
{
    if (!s->workers) return;
    for (int i = 0; i < s->n_workers; i++) {
        medvlm_encoder_free(s->workers[i].enc);
        mv_free(s->workers[i].pixels);
    }
    mv_free(s->workers);
    s->workers = NULL;
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
}

/* A free worker, waiting at most the timeout; NULL when none came free. */
static struct mv_worker *worker_get(struct mv_serve_state *s)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += s->lim.timeout_s;
    struct mv_worker *w = NULL;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        for (int i = 0; i < s->n_workers && !w; i++)
            if (!s->workers[i].busy) w = &s->workers[i];
        if (w || pthread_cond_timedwait(&s->cv, &s->mu, &until) == ETIMEDOUT) break;
    }
    if (!w) /* one last look after the timeout */
        for (int i = 0; i < s->n_workers && !w; i++)
            if (!s->workers[i].busy) w = &s->workers[i];
    if (w) w->busy = 1;
    pthread_mutex_unlock(&s->mu);
    /* the encoders run one thread each: the workers are the parallelism, and OpenMP pools
     * never fight over the cores */
    if (w) medvlm_set_threads(1);
    return w;
}

/* A query embedding buffer (D) and a free worker for a search: 1, or 0 after a 503 answer. */
static int query_and_worker(struct mv_serve_state *s, struct mv_serve_response *r, float **q,
                            struct mv_worker **w)
{
    if (!(*q = malloc((size_t)s->D * sizeof **q))) {
        mv_serve_error(r, 503, "out of memory");
        return 0;
    }
    if (!(*w = worker_get(s))) {
        mv_serve_error(r, 503, "every worker is busy: try again");
        return 0;
    }
    return 1;
}

static void worker_put(struct mv_serve_state *s, struct mv_worker *w)
{
    if (!w) return;
    pthread_mutex_lock(&s->mu);
    w->busy = 0;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* ---- request bodies ---- */

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

/* Base64 (standard or URL alphabet, padding optional, whitespace skipped; a data: URI's
 * header is skipped) into a new buffer. 0 on malformed input. */
static int b64_decode(const char *s, uint8_t **out, size_t *len)
{
    const char *comma = strncmp(s, "data:", 5) == 0 ? strchr(s, ',') : NULL;
    if (comma) s = comma + 1;
    size_t n = strlen(s);
    uint8_t *buf = malloc(n / 4 * 3 + 3);
    if (!buf) return 0;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0, pad = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') continue;
        if (*p == '=') {
            pad++;
            continue;
        }
        int v = b64_value(*p);
        if (v < 0 || pad) {
            free(buf);
            return 0;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[o++] = (uint8_t)(acc >> bits);
        }
    }
    *out = buf;
    *len = o;
    return 1;
}

static int is_json(const char *content_type)
{
    return content_type && strncmp(content_type, "application/json", 16) == 0;
}

/* The request's JSON object, or an error response (NULL). */
static cJSON *parse_body(const char *body, size_t len, struct mv_serve_response *r)
{
    if (len == 0) {
        mv_serve_error(r, 400, "the request body is empty: expected a JSON object");
        return NULL;
    }
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        mv_serve_error(r, 400, "the request body is not a JSON object");
        return NULL;
    }
    return root;
}

/* "k": 1..max_k, default 12. 0 after an error response. */
static int parse_k(const struct mv_serve_state *s, const cJSON *root, struct mv_serve_response *r)
{
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(root, "k");
    if (!k) return 12 < s->lim.max_k ? 12 : s->lim.max_k;
    if (!cJSON_IsNumber(k) || k->valuedouble != floor(k->valuedouble) || k->valuedouble < 1 ||
        k->valuedouble > s->lim.max_k) {
        mv_serve_error(r, 400, "\"k\" must be an integer in 1..%d", s->lim.max_k);
        return 0;
    }
    return (int)k->valuedouble;
}

/* Decode and embed an image (bytes) with worker w: emb (D). 0 after an error response. */
static int embed_image(struct mv_serve_state *s, struct mv_worker *w, const uint8_t *data,
                       size_t len, float *emb, struct mv_serve_response *r)
{
    if (len == 0) {
        mv_serve_error(r, 400, "the image is empty");
        return 0;
    }
    if (medvlm_image_sniff(data, len) == MEDVLM_IMAGE_UNKNOWN) {
        mv_serve_error(r, 415, "the upload is not a JPEG, PNG or TIFF image");
        return 0;
    }
    struct medvlm_decode_limits lim = {s->lim.max_side, s->lim.max_side, s->lim.max_pixels};
    struct medvlm_image img = {0};
    enum medvlm_status st = medvlm_image_decode_memory(data, len, "upload", &lim, &img);
    if (st) {
        mv_serve_error(r, st == MEDVLM_ERR_LIMIT || st == MEDVLM_ERR_OVERFLOW ? 413 : 400, "%s",
                       medvlm_last_error());
        return 0;
    }
    int h = 0, wd = 0;
    st = medvlm_image_preprocess(&img, medvlm_model_preproc(s->model), &s->pre, w->pixels,
                                 (size_t)3 * s->S * s->S, &h, &wd);
    medvlm_image_free(&img);
    if (!st && (h != s->S || wd != s->S))
        st = mv_err(MEDVLM_ERR_INTERNAL, "preprocessed to %d x %d, expected %d", h, wd, s->S);
    if (!st) st = medvlm_encode_images(w->enc, w->pixels, 1, emb);
    if (st) {
        mv_serve_error(r, st == MEDVLM_ERR_NOMEM ? 503 : 500, "%s", medvlm_last_error());
        return 0;
    }
    return 1;
}

/* The image of a request: the "image" field (base64) of a JSON body, else the raw body. */
static int request_image(const char *content_type, const cJSON *root, const char *body, size_t len,
                         uint8_t **data, size_t *n, struct mv_serve_response *r)
{
    *data = NULL;
    *n = 0;
    if (!root) {
        if (len == 0) {
            mv_serve_error(r, 400,
                           "the request body is empty: send an image or a JSON object "
                           "with \"image\"");
            return 0;
        }
        *data = malloc(len);
        if (!*data) {
            mv_serve_error(r, 503, "out of memory");
            return 0;
        }
        memcpy(*data, body, len);
        *n = len;
        return 1;
    }
    (void)content_type;
    const cJSON *img = cJSON_GetObjectItemCaseSensitive(root, "image");
    if (!img) {
        mv_serve_error(r, 400, "missing field \"image\" (base64 of a JPEG, PNG or TIFF file)");
        return 0;
    }
    if (!cJSON_IsString(img) || !b64_decode(img->valuestring, data, n)) {
        mv_serve_error(r, 400, "\"image\" must be a base64 string (or a data: URI)");
        return 0;
    }
    return 1;
}

static cJSON *class_list(const char *const *names, int k)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < k; i++) cJSON_AddItemToArray(a, cJSON_CreateString(names[i]));
    return a;
}

/* {"classes", "probabilities", "prediction"} of logits (k). */
static cJSON *prob_object(const char *const *names, const float *probs, int k)
{
    cJSON *o = cJSON_CreateObject(), *p = cJSON_CreateArray();
    int best = 0;
    for (int i = 0; i < k; i++) {
        cJSON_AddItemToArray(p, cJSON_CreateNumber(probs[i]));
        if (probs[i] > probs[best]) best = i;
    }
    cJSON_AddItemToObject(o, "classes", class_list(names, k));
    cJSON_AddItemToObject(o, "probabilities", p);
    cJSON_AddStringToObject(o, "prediction", names[best]);
    return o;
}

/* ---- handlers ---- */

static void api_info(struct mv_serve_state *s, struct mv_serve_response *r)
{
    cJSON *root = cJSON_CreateObject(), *lim = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "medvlm", MEDVLM_VERSION_STRING);
    cJSON_AddStringToObject(root, "model", s->model_name);
    cJSON_AddNumberToObject(root, "dim", s->D);
    cJSON_AddItemToObject(root, "classes", class_list(s->classes, s->K));
    cJSON *pj = s->prompts_json ? cJSON_Parse(s->prompts_json) : NULL;
    cJSON_AddItemToObject(root, "prompts", pj ? pj : cJSON_CreateNull());
    if (s->adapter) {
        cJSON *a = cJSON_CreateObject();
        int k = medvlm_adapter_classes(s->adapter);
        cJSON_AddStringToObject(a, "method",
                                medvlm_adapter_method_name(medvlm_adapter_method_of(s->adapter)));
        cJSON *c = cJSON_CreateArray();
        for (int i = 0; i < k; i++) {
            const char *n = medvlm_adapter_class_name(s->adapter, i);
            cJSON_AddItemToArray(c, cJSON_CreateString(n ? n : ""));
        }
        cJSON_AddItemToObject(a, "classes", c);
        cJSON_AddItemToObject(root, "adapter", a);
    } else {
        cJSON_AddNullToObject(root, "adapter");
    }
    cJSON_AddNumberToObject(root, "tiles", s->feats ? s->feats->n : 0);
    cJSON_AddBoolToObject(root, "thumbnails", s->feats && s->feats->image_names && s->images_root);
    cJSON_AddNumberToObject(lim, "max_upload_bytes", (double)s->lim.max_upload);
    cJSON_AddNumberToObject(lim, "max_pixels", (double)s->lim.max_pixels);
    cJSON_AddNumberToObject(lim, "max_side", s->lim.max_side);
    cJSON_AddNumberToObject(lim, "timeout_seconds", s->lim.timeout_s);
    cJSON_AddNumberToObject(lim, "max_concurrent_requests", s->lim.max_requests);
    cJSON_AddNumberToObject(lim, "workers", s->n_workers);
    cJSON_AddNumberToObject(lim, "max_k", s->lim.max_k);
    cJSON_AddNumberToObject(lim, "max_text_bytes", s->lim.max_text);
    cJSON_AddNumberToObject(lim, "max_prompts", s->lim.max_prompts);
    cJSON_AddItemToObject(root, "limits", lim);
    respond_json(r, 200, root);
}

/* The request's own prompt set ("prompts": the prompts-file object) as prototypes embedded by
 * worker w: *K, *names (owned by *pr), *protos (K, D; free()). 0 after an error response. */
static int request_prompts(struct mv_serve_state *s, struct mv_worker *w, const cJSON *spec,
                           struct medvlm_prompts **pr, float **protos, struct mv_serve_response *r)
{
    char *text = cJSON_PrintUnformatted(spec);
    enum medvlm_status st =
        text ? medvlm_prompts_parse("\"prompts\"", text, strlen(text), pr) : MEDVLM_ERR_NOMEM;
    free(text);
    if (st) {
        mv_serve_error(r, 400, "%s", medvlm_last_error());
        return 0;
    }
    int n = 0, K = (*pr)->n_classes;
    for (int k = 0; k < K; k++) n += (*pr)->n_prompts[k];
    if (K < 1 || n > s->lim.max_prompts) {
        mv_serve_error(r, 413, "\"prompts\" gives %d classes and %d prompts: at most %d prompts", K,
                       n, s->lim.max_prompts);
        return 0;
    }
    *protos = malloc((size_t)K * s->D * sizeof **protos);
    if (!*protos) {
        mv_serve_error(r, 503, "out of memory");
        return 0;
    }
    st = mv_prompts_prototypes_enc(w->enc, s->model, s->tok, *pr, NULL, K, *protos);
    if (st) {
        mv_serve_error(r, 400, "%s", medvlm_last_error());
        return 0;
    }
    return 1;
}

static void api_zeroshot(struct mv_serve_state *s, const char *ctype, const char *body, size_t len,
                         struct mv_serve_response *r)
{
    cJSON *root = NULL;
    uint8_t *img = NULL;
    size_t n = 0;
    struct medvlm_prompts *pr = NULL;
    float *protos = NULL, *emb = NULL, *logits = NULL, *probs = NULL;
    struct mv_worker *w = NULL;
    if (is_json(ctype) && !(root = parse_body(body, len, r))) goto done;
    if (!request_image(ctype, root, body, len, &img, &n, r)) goto done;
    const cJSON *spec = root ? cJSON_GetObjectItemCaseSensitive(root, "prompts") : NULL;
    if (spec && !cJSON_IsObject(spec)) {
        mv_serve_error(r, 400, "\"prompts\" must be an object like a prompts file");
        goto done;
    }
    if (!(w = worker_get(s))) {
        mv_serve_error(r, 503, "every worker is busy: try again");
        goto done;
    }
    int K = s->K;
    const char *const *names = s->classes;
    const float *P = s->protos;
    if (spec) {
        if (!request_prompts(s, w, spec, &pr, &protos, r)) goto done;
        K = pr->n_classes;
        names = (const char *const *)pr->classes;
        P = protos;
    }
    const int KA = s->adapter && !spec ? medvlm_adapter_classes(s->adapter) : 0;
    emb = malloc((size_t)s->D * sizeof *emb);
    logits = malloc((size_t)(K > KA ? K : KA) * sizeof *logits);
    probs = malloc((size_t)(K > KA ? K : KA) * sizeof *probs);
    if (!emb || !logits || !probs) {
        mv_serve_error(r, 503, "out of memory");
        goto done;
    }
    if (!embed_image(s, w, img, n, emb, r)) goto done;
    worker_put(s, w);
    w = NULL;
    if (medvlm_zeroshot_logits(emb, 1, P, K, s->D, medvlm_model_logit_scale(s->model), logits,
                               probs)) {
        mv_serve_error(r, 500, "%s", medvlm_last_error());
        goto done;
    }
    cJSON *out = prob_object(names, probs, K);
    if (KA > 0) {
        if (medvlm_adapter_logits(s->adapter, emb, 1, logits)) {
            cJSON_Delete(out);
            mv_serve_error(r, 500, "%s", medvlm_last_error());
            goto done;
        }
        float mx = logits[0];
        double sum = 0;
        for (int k = 1; k < KA; k++) mx = fmaxf(mx, logits[k]);
        for (int k = 0; k < KA; k++) sum += exp((double)logits[k] - mx);
        const char **an = malloc((size_t)KA * sizeof *an);
        if (!an) {
            cJSON_Delete(out);
            mv_serve_error(r, 503, "out of memory");
            goto done;
        }
        for (int k = 0; k < KA; k++) {
            probs[k] = (float)(exp((double)logits[k] - mx) / sum);
            an[k] = medvlm_adapter_class_name(s->adapter, k);
            if (!an[k]) an[k] = "";
        }
        cJSON *a = prob_object(an, probs, KA);
        free(an);
        cJSON_AddStringToObject(a, "method",
                                medvlm_adapter_method_name(medvlm_adapter_method_of(s->adapter)));
        cJSON_AddItemToObject(out, "adapter", a);
    }
    respond_json(r, 200, out);
done:
    worker_put(s, w);
    cJSON_Delete(root);
    medvlm_prompts_free(pr);
    free(img);
    free(protos);
    free(emb);
    free(logits);
    free(probs);
}

/* The k rows of the features most similar to q (D): {"results": [...]}. */
static void search_results(struct mv_serve_state *s, const float *q, int k,
                           struct mv_serve_response *r)
{
    const struct medvlm_features *f = s->feats;
    if (k > f->n) k = f->n;
    int *best = malloc((size_t)(k ? k : 1) * sizeof *best);
    float *bs = malloc((size_t)(k ? k : 1) * sizeof *bs);
    if (!best || !bs) {
        free(best);
        free(bs);
        mv_serve_error(r, 503, "out of memory");
        return;
    }
    int have = 0;
    for (int i = 0; i < f->n; i++) {
        const float *x = f->features + (size_t)i * f->d; // (D)
        float v = 0;
        for (int j = 0; j < f->d; j++) v += x[j] * q[j];
        if (have == k && !(v > bs[k - 1])) continue;
        int at = have < k ? have++ : k - 1; /* insert in descending order, ties keep order */
        while (at > 0 && v > bs[at - 1]) {
            bs[at] = bs[at - 1];
            best[at] = best[at - 1];
            at--;
        }
        bs[at] = v;
        best[at] = i;
    }
    cJSON *root = cJSON_CreateObject(), *res = cJSON_AddArrayToObject(root, "results");
    for (int t = 0; t < have; t++) {
        cJSON *o = cJSON_CreateObject();
        int i = best[t];
        char nb[32];
        snprintf(nb, sizeof nb, "#%d", i);
        cJSON_AddNumberToObject(o, "index", i);
        cJSON_AddStringToObject(o, "name", f->image_names ? f->image_names[i] : nb);
        cJSON_AddStringToObject(o, "label", f->classes[f->labels[i]]);
        cJSON_AddNumberToObject(o, "score", bs[t]);
        cJSON_AddItemToArray(res, o);
    }
    free(best);
    free(bs);
    respond_json(r, 200, root);
}

static void api_search_text(struct mv_serve_state *s, const char *body, size_t len,
                            struct mv_serve_response *r)
{
    cJSON *root = parse_body(body, len, r);
    if (!root) return;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "text");
    int k = parse_k(s, root, r);
    struct mv_worker *w = NULL;
    float *q = NULL;
    if (!k) goto done;
    if (!t) {
        mv_serve_error(r, 400, "missing field \"text\"");
        goto done;
    }
    if (!cJSON_IsString(t) || !t->valuestring[0] ||
        strlen(t->valuestring) > (size_t)s->lim.max_text) {
        mv_serve_error(r, 400, "\"text\" must be a string of 1..%d bytes", s->lim.max_text);
        goto done;
    }
    if (!query_and_worker(s, r, &q, &w)) goto done;
    /* one prompt of one class: its prototype is its normalised embedding */
    const char *texts[1] = {t->valuestring};
    const int cls[1] = {0};
    enum medvlm_status st = medvlm_zeroshot_prototypes(
        w->enc, s->tok, medvlm_model_config(s->model)->text.max_position_embeddings, texts, cls, 1,
        1, s->D, q);
    worker_put(s, w);
    w = NULL;
    if (st) {
        mv_serve_error(r, 400, "%s", medvlm_last_error());
        goto done;
    }
    search_results(s, q, k, r);
done:
    worker_put(s, w);
    free(q);
    cJSON_Delete(root);
}

static void api_search_image(struct mv_serve_state *s, const char *ctype, const char *body,
                             size_t len, struct mv_serve_response *r)
{
    cJSON *root = NULL;
    uint8_t *img = NULL;
    size_t n = 0;
    float *q = NULL;
    struct mv_worker *w = NULL;
    int k = 12 < s->lim.max_k ? 12 : s->lim.max_k;
    if (is_json(ctype)) {
        if (!(root = parse_body(body, len, r)) || !(k = parse_k(s, root, r))) goto done;
        const cJSON *idx = cJSON_GetObjectItemCaseSensitive(root, "index");
        if (idx) {
            if (!cJSON_IsNumber(idx) || idx->valuedouble != floor(idx->valuedouble) ||
                idx->valuedouble < 0 || idx->valuedouble >= s->feats->n) {
                mv_serve_error(r, 404, "\"index\" must be a tile index in 0..%d", s->feats->n - 1);
                goto done;
            }
            search_results(s, s->feats->features + (size_t)idx->valuedouble * s->feats->d, k, r);
            goto done;
        }
    }
    if (!request_image(ctype, root, body, len, &img, &n, r)) goto done;
    if (!query_and_worker(s, r, &q, &w)) goto done;
    if (!embed_image(s, w, img, n, q, r)) goto done;
    worker_put(s, w);
    w = NULL;
    search_results(s, q, k, r);
done:
    worker_put(s, w);
    free(img);
    free(q);
    cJSON_Delete(root);
}

/* A name from the features file that stays inside the images folder: relative, no "..". */
static int safe_name(const char *name)
{
    if (!name || !*name || name[0] == '/') return 0;
    for (const char *p = name; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.') return 0;
        p += n;
        while (*p == '/') p++;
    }
    return 1;
}

static void api_tile(struct mv_serve_state *s, const char *arg, struct mv_serve_response *r)
{
    const struct medvlm_features *f = s->feats;
    if (!f || !f->image_names || !s->images_root) {
        mv_serve_error(r, 404, "no tiles are served (start with --features and --images)");
        return;
    }
    long idx = -1;
    if (*arg && strlen(arg) <= 10 && strspn(arg, "0123456789") == strlen(arg))
        idx = strtol(arg, NULL, 10);
    if (idx < 0 || idx >= f->n) {
        mv_serve_error(r, 404, "no tile '%.40s': tiles are numbered 0..%d", arg, f->n - 1);
        return;
    }
    if (!safe_name(f->image_names[idx])) {
        mv_serve_error(r, 404, "tile %ld has a name outside the images folder", idx);
        return;
    }
    char *path = mv_path_join(s->images_root, f->image_names[idx]);
    struct medvlm_image img = {0}, th = {0};
    struct medvlm_decode_limits lim = {s->lim.max_side, s->lim.max_side, s->lim.max_pixels};
    uint8_t *jpg = NULL;
    size_t len = 0;
    enum medvlm_status st = path ? medvlm_image_decode_file(path, &lim, &img) : MEDVLM_ERR_NOMEM;
    if (!st) st = mv_image_thumbnail(&img, 256, &th);
    if (!st) st = mv_jpeg_encode(&th, 85, &jpg, &len);
    if (st) {
        mv_log(MEDVLM_LOG_WARN, "serve: tile %ld: %s", idx, medvlm_last_error());
        mv_serve_error(r, 404, "tile %ld could not be read", idx);
    } else if (!(r->body = malloc(len))) {
        mv_serve_error(r, 503, "out of memory");
    } else {
        memcpy(r->body, jpg, len);
        r->len = len;
        r->status = 200;
        r->type = "image/jpeg";
    }
    mv_free(jpg);
    medvlm_image_free(&th);
    medvlm_image_free(&img);
    mv_free(path);
}

/* The OpenAPI document of this server: with --token, every operation asks for the bearer
 * token (a security scheme and a top-level requirement); without, none. */
static void api_openapi(const struct mv_serve_state *s, struct mv_serve_response *r)
{
    if (!s->token) {
        r->body = strdup(mv_serve_openapi_json);
    } else {
        cJSON *doc = cJSON_Parse(mv_serve_openapi_json), *scheme = cJSON_CreateObject();
        cJSON *req = cJSON_CreateObject(), *security = cJSON_CreateArray();
        cJSON *comp = doc ? cJSON_GetObjectItemCaseSensitive(doc, "components") : NULL;
        cJSON *schemes = comp ? cJSON_AddObjectToObject(comp, "securitySchemes") : NULL;
        if (schemes && scheme && req && security) {
            cJSON_AddStringToObject(scheme, "type", "http");
            cJSON_AddStringToObject(scheme, "scheme", "bearer");
            cJSON_AddItemToObject(schemes, "bearer", scheme);
            cJSON_AddItemToObject(req, "bearer", cJSON_CreateArray());
            cJSON_AddItemToArray(security, req);
            cJSON_AddItemToObject(doc, "security", security);
            scheme = req = security = NULL;
            r->body = cJSON_PrintUnformatted(doc);
        }
        cJSON_Delete(scheme);
        cJSON_Delete(req);
        cJSON_Delete(security);
        cJSON_Delete(doc);
    }
    if (!r->body) {
        mv_serve_error(r, 503, "out of memory");
        return;
    }
    r->len = strlen(r->body);
    r->status = 200;
    r->type = "application/json";
}

void mv_serve_api(struct mv_serve_state *s, const char *method, const char *path,
                  const char *content_type, const char *body, size_t len,
                  struct mv_serve_response *r)
{
    int get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    const char *want = NULL;
    if (strcmp(path, "info") == 0) {
        if (get) {
            api_info(s, r);
            return;
        }
        want = "GET";
    } else if (strcmp(path, "openapi.json") == 0) {
        if (get) {
            api_openapi(s, r);
            return;
        }
        want = "GET";
    } else if (strcmp(path, "zeroshot") == 0) {
        if (post) {
            api_zeroshot(s, content_type, body, len, r);
            return;
        }
        want = "POST";
    } else if (strcmp(path, "search/text") == 0 || strcmp(path, "search/image") == 0) {
        if (!s->feats) {
            mv_serve_error(r, 404, "no tiles to search: start with --features");
            return;
        }
        if (post && path[7] == 't') {
            api_search_text(s, body, len, r);
            return;
        }
        if (post) {
            api_search_image(s, content_type, body, len, r);
            return;
        }
        want = "POST";
    } else if (strncmp(path, "tile/", 5) == 0) {
        if (get) {
            api_tile(s, path + 5, r);
            return;
        }
        want = "GET";
    } else {
        mv_serve_error(r, 404, "no such endpoint: /api/%.80s (see /api/openapi.json)", path);
        return;
    }
    mv_serve_error(r, 405, "/api/%s answers %s only", path, want);
}

/*
 * serve.h - internal header of `medvlm serve`: a small HTTP server (GNU libmicrohttpd) in
 * front of one loaded model. One concern per file:
 *   http.c     the libmicrohttpd glue: daemon, uploads, limits, token, admission, routing
 *   api.c      the JSON API handlers (info, zeroshot, search/text, search/image, tile)
 *   page.c     the single embedded web page (HTML, CSS, JavaScript; nothing fetched)
 *   openapi.c  the OpenAPI 3 document of the API
 * Built only when libmicrohttpd is found; src/cli/cmd_serve.c loads what the server needs
 * and hands it over here.
 */
#ifndef MEDVLM_SERVE_H
#define MEDVLM_SERVE_H

#include "medvlm.h"

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

/* Stated limits; every one is enforced and reported in /api/info. */
struct mv_serve_limits {
    size_t max_upload;  /* request body bytes (413 beyond)                           */
    int64_t max_pixels; /* decoded width * height of an uploaded image (413 beyond)   */
    int max_side;       /* decoded width or height                                    */
    int timeout_s;      /* idle connection timeout, and the longest wait for a worker */
    int max_requests;   /* API requests in flight at once (503 beyond)                */
    int max_k;          /* results of a search                                        */
    int max_text;       /* bytes of a search text                                     */
    int max_prompts;    /* prompts of a request's own prompt set                      */
};
void mv_serve_limits_default(struct mv_serve_limits *l);

/* One worker: an encoder and its buffers. A request holds one while it encodes. */
struct mv_worker {
    struct medvlm_encoder *enc;
    float *pixels; /* (3, S, S) */
    int busy;
};

/* What the server serves. The pointers are borrowed from the caller (cmd_serve.c) and must
 * outlive mv_serve_run; the model is shared read-only by the workers. */
struct mv_serve_state {
    const struct medvlm_model *model;
    const struct medvlm_tokenizer *tok;
    const char *model_name;
    struct medvlm_preprocess_options pre;
    int S, D; /* preprocessed side, embedding dim */
    /* the default prompt set: K classes, their prototypes */
    int K;
    const char *const *classes; /* (K) */
    const float *protos;        /* (K, D) */
    const char *prompts_json;   /* the prompts file's text, for the page's editor; may be NULL */
    /* optional: a trained adapter over the same embeddings */
    const struct medvlm_adapter *adapter;
    /* optional: the tiles of a features file and their folder */
    const struct medvlm_features *feats;
    const char *images_root;
    const char *token; /* NULL: no token asked */
    struct mv_serve_limits lim;
    /* the worker pool */
    int n_workers;
    struct mv_worker *workers;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

/* A response: HTTP status, body (malloc'ed, the HTTP layer frees it), its type. */
struct mv_serve_response {
    int status;
    char *body;
    size_t len;
    const char *type;
};

/* ---- api.c ---- */
/* The workers' encoders and buffers (n >= 1); 0 on success, the message in
 * medvlm_last_error() otherwise. */
enum medvlm_status mv_serve_workers_init(struct mv_serve_state *s, int n);
void mv_serve_workers_free(struct mv_serve_state *s);
/* Answer one API request: path is the part after "/api/". Never fails: errors become a
 * 4xx/5xx response with a JSON {"error": message, "status": code}. */
void mv_serve_api(struct mv_serve_state *s, const char *method, const char *path,
                  const char *content_type, const char *body, size_t len,
                  struct mv_serve_response *r);
/* The JSON error response. */
void mv_serve_error(struct mv_serve_response *r, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* ---- page.c, openapi.c ---- */
extern const char mv_serve_page_html[];
extern const char mv_serve_openapi_json[];

/* ---- http.c ---- */
/* Listen on bind:port (port 0: any free port) and serve until *stop is set by a signal
 * handler or a sigwait loop of the caller: the call returns after `ready(port, user)` has
 * been called and `wait_stop(user)` has returned. */
enum medvlm_status mv_serve_run(struct mv_serve_state *s, const char *bind, int port,
                                void (*ready)(int port, void *user), void (*wait_stop)(void *user),
                                void *user);

#endif

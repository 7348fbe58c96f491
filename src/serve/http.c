/*
 * http.c - `medvlm serve`'s HTTP layer on GNU libmicrohttpd: one thread per connection (the
 * daemon's own polling thread accepts), a bounded number of API requests in flight (503
 * with a JSON error beyond it), request bodies collected up to the upload limit (413 beyond;
 * a declared Content-Length over it is refused before the body is read), an idle timeout,
 * the bearer token, and the routes: "/" the page, "/api/..." the API (api.c), anything else
 * a JSON 404. The URL never names a file.
 */
#include "serve.h"

#include "core/core.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* One request's state across the calls libmicrohttpd makes for it. */
struct req {
    char *buf; /* the body so far (NUL-terminated) */
    size_t len, cap;
    int too_big;   /* the body passed the upload limit: the rest is discarded */
    int admitted;  /* counted in the requests in flight */
    int responded; /* a response is queued already */
};

struct http {
    struct mv_serve_state *s;
    atomic_int in_flight;
};

static const char oom_body[] = "{\"error\":\"out of memory\",\"status\":503}";

static enum MHD_Result respond(struct MHD_Connection *c, struct mv_serve_response *r)
{
    struct MHD_Response *resp;
    if (r->body)
        resp = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
    else
        resp = MHD_create_response_from_buffer(sizeof oom_body - 1, (void *)oom_body,
                                               MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(r->body);
        return MHD_NO;
    }
    r->body = NULL; /* the response owns it now */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (r->status == 401) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (r->status == 503) MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, struct req *q, int status,
                                  const char *msg)
{
    struct mv_serve_response r = {0};
    mv_serve_error(&r, status, "%s", msg);
    q->responded = 1;
    return respond(c, &r);
}

/* "Bearer <token>", compared in constant time. */
static int token_ok(const struct mv_serve_state *s, struct MHD_Connection *c)
{
    if (!s->token) return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncmp(h, "Bearer ", 7) != 0) return 0;
    h += 7;
    size_t a = strlen(h), b = strlen(s->token);
    unsigned diff = (unsigned)(a != b);
    for (size_t i = 0; i < a; i++) diff |= (unsigned char)h[i] ^ (unsigned char)s->token[i % b];
    return diff == 0;
}

/* The first call for a request: admission, token, declared size. */
static enum MHD_Result begin(struct http *h, struct MHD_Connection *c, const char *url,
                             struct req *q)
{
    const struct mv_serve_state *s = h->s;
    if (strncmp(url, "/api/", 5) != 0) return MHD_YES;
    if (!token_ok(s, c))
        return send_error(c, q, 401,
                          "this server asks for a token: send the header "
                          "'Authorization: Bearer <token>'");
    q->admitted = 1;
    if (atomic_fetch_add(&h->in_flight, 1) >= s->lim.max_requests) {
        char msg[128];
        snprintf(msg, sizeof msg, "busy: %d requests are in flight already, try again",
                 s->lim.max_requests);
        return send_error(c, q, 503, msg);
    }
    const char *cl =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > s->lim.max_upload) {
        char msg[160];
        snprintf(msg, sizeof msg, "the request body declares %s bytes; the limit is %zu", cl,
                 s->lim.max_upload);
        return send_error(c, q, 413, msg);
    }
    return MHD_YES;
}

static void append(struct req *q, const char *data, size_t n, size_t max)
{
    if (q->too_big) return;
    if (n > max - q->len) {
        q->too_big = 1;
        free(q->buf);
        q->buf = NULL;
        q->len = q->cap = 0;
        return;
    }
    if (q->len + n + 1 > q->cap) {
        size_t cap = q->cap ? q->cap : 4096;
        while (cap < q->len + n + 1) cap *= 2;
        char *p = realloc(q->buf, cap);
        if (!p) {
            q->too_big = 1;
            return;
        }
        q->buf = p;
        q->cap = cap;
    }
    memcpy(q->buf + q->len, data, n);
    q->len += n;
    q->buf[q->len] = '\0';
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **req_cls)
{
    (void)version;
    struct http *h = cls;
    struct mv_serve_state *s = h->s;
    struct req *q = *req_cls;
    if (!q) {
        if (!(q = calloc(1, sizeof *q))) return MHD_NO;
        *req_cls = q;
        return begin(h, c, url, q);
    }
    if (*upload_size) {
        if (!q->responded) append(q, upload_data, *upload_size, s->lim.max_upload);
        *upload_size = 0;
        return MHD_YES;
    }
    if (q->responded) return MHD_YES;
    q->responded = 1;
    if (q->too_big) {
        char msg[96];
        snprintf(msg, sizeof msg, "the request body is over the limit of %zu bytes",
                 s->lim.max_upload);
        return send_error(c, q, 413, msg);
    }
    struct mv_serve_response r = {0};
    if (strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0) {
        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
            return send_error(c, q, 405, "the page answers GET only");
        struct MHD_Response *resp = MHD_create_response_from_buffer(
            strlen(mv_serve_page_html), (void *)mv_serve_page_html, MHD_RESPMEM_PERSISTENT);
        if (!resp) return MHD_NO;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/html; charset=utf-8");
        MHD_add_response_header(resp, "Content-Security-Policy",
                                "default-src 'self'; img-src 'self' data: blob:; "
                                "style-src 'unsafe-inline'; script-src 'unsafe-inline'");
        MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
        enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    if (strncmp(url, "/api/", 5) != 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "not found: %.100s (the page is at /, the API under /api/)", url);
        return send_error(c, q, 404, msg);
    }
    const char *ctype =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    mv_serve_api(s, method, url + 5, ctype, q->buf ? q->buf : "", q->len, &r);
    return respond(c, &r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)c;
    (void)toe;
    struct http *h = cls;
    struct req *q = *req_cls;
    if (!q) return;
    if (q->admitted) atomic_fetch_sub(&h->in_flight, 1);
    free(q->buf);
    free(q);
    *req_cls = NULL;
}

enum medvlm_status mv_serve_run(struct mv_serve_state *s, const char *bind, int port,
                                void (*ready)(int port, void *user), void (*wait_stop)(void *user),
                                void *user)
{
    struct http h = {.s = s};
    atomic_init(&h.in_flight, 0);
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    struct sockaddr *sa;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_ERROR_LOG | MHD_USE_POLL;
    memset(&a4, 0, sizeof a4);
    memset(&a6, 0, sizeof a6);
    if (inet_pton(AF_INET, bind, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)port);
        sa = (struct sockaddr *)&a4;
    } else if (inet_pton(AF_INET6, bind, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)port);
        sa = (struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        return mv_err(MEDVLM_ERR_ARG, "serve: --bind '%s' is not an IPv4 or IPv6 address", bind);
    }
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, on_request, &h, MHD_OPTION_SOCK_ADDR, sa,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, &h, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)s->lim.timeout_s, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)(2 * s->lim.max_requests + 8), MHD_OPTION_END);
    if (!d)
        return mv_err(MEDVLM_ERR_IO,
                      "serve: could not listen on %s port %d (in use, or not an address of "
                      "this machine?)",
                      bind, port);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    ready(info ? info->port : port, user);
    wait_stop(user);
    MHD_stop_daemon(d);
    return MEDVLM_OK;
}

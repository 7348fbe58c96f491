/*
 * cmd_serve.c - `medvlm serve`: load the model, the prompts and (optionally) the tiles of a
 * features file and an adapter once, then answer the web page and the JSON API of
 * src/serve/ until SIGINT or SIGTERM. Built without libmicrohttpd, the command says so.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char *usage =
    "usage: medvlm serve --model DIR --prompts PROMPTS.json [--features F.safetensors\n"
    "                    --images ROOT] [--adapter A.safetensors] [--run RUN_DIR]\n"
    "                    [--port 8080] [--bind 127.0.0.1] [--token T] [limits]\n"
    "\n"
    "A web page and a JSON API for the model: drop a tile and see its class probabilities\n"
    "for the prompts (editable in the page) and the adapter's prediction; type a description\n"
    "and see the most similar tiles of the features file; click a tile for its neighbours.\n"
    "The API is under /api/ (info, zeroshot, search/text, search/image, tile/{index}),\n"
    "described by /api/openapi.json; every error is a JSON object with a message.\n"
    "\n"
    "  --model DIR         the model (loaded once, shared by the workers)\n"
    "  --prompts FILE      class prompts, as for medvlm zeroshot\n"
    "  --features FILE     tiles to search (medvlm features, same model)\n"
    "  --images ROOT       the folder the features' image names are relative to (thumbnails)\n"
    "  --adapter FILE      an adapter (medvlm adapt --out) whose prediction is shown "
    "too\n" CLI_RUN_HELP
    "  --port N            TCP port (default 8080; 0: any free port, printed)\n"
    "  --bind ADDR         address to listen on (default 127.0.0.1, this machine only)\n"
    "  --token T           ask every /api/ request for 'Authorization: Bearer T'\n"
    "                      (give one whenever --bind is not a loopback address)\n"
    "  --workers N         encoders working at once, one thread each (default 2)\n"
    "  --preprocess tutorial|hf|hf-torchvision  as for medvlm features (default tutorial)\n"
    "limits (a request beyond them gets a 4xx/503 JSON answer):\n"
    "  --max-upload MB     request body (default 16)\n"
    "  --max-pixels N      decoded width x height of an upload (default 25000000)\n"
    "  --timeout S         idle connection timeout and longest wait for a worker (default 30)\n"
    "  --max-requests N    API requests in flight at once, 503 beyond (default 32)\n"
    "\n"
    "example:\n"
    "  medvlm serve --model plip --prompts examples/sicapv2_ensemble.json \\\n"
    "      --features test.safetensors --images SICAPv2/images --port 8080\n";

#ifndef MEDVLM_HAVE_MHD

int cmd_serve(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            break;
        }
    fprintf(stderr, "medvlm serve: this medvlm was built without libmicrohttpd: install it "
                    "(apt-get install libmicrohttpd-dev) and rebuild\n");
    return CLI_FAIL;
}

#else

#include "core/core.h"
#include "serve/serve.h"

#include <pthread.h>
#include <signal.h>

static void on_ready(int port, void *user)
{
    const char *bind = user;
    printf("medvlm serve: listening on http://%s%s%s:%d/ (Ctrl-C stops)\n",
           strchr(bind, ':') ? "[" : "", bind, strchr(bind, ':') ? "]" : "", port);
    fflush(stdout);
}

/* SIGINT and SIGTERM are blocked in every thread (set before the server starts them): this
 * thread alone takes them. */
static void wait_signal(void *user)
{
    (void)user;
    sigset_t set;
    int sig;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigwait(&set, &sig);
    fprintf(stderr, "medvlm serve: %s, stopping\n", sig == SIGINT ? "interrupted" : "terminated");
}

struct serve_args {
    const char *model_dir, *prompts_path, *feats_path, *images, *adapter_path, *run, *bind;
    const char *token;
    int port, workers;
};

/* What the server holds for its life. */
struct serve_inputs {
    struct cli_model cm;
    struct medvlm_tokenizer *tok;
    struct medvlm_prompts *pr;
    struct medvlm_features *f;
    struct medvlm_adapter *ad;
    float *protos;      /* (K, D) the prompts' prototypes */
    char *prompts_text; /* the prompt file, for the page */
};

static void inputs_free(struct serve_inputs *in)
{
    free(in->protos);
    mv_free(in->prompts_text);
    medvlm_adapter_free(in->ad);
    medvlm_features_free(in->f);
    medvlm_prompts_free(in->pr);
    medvlm_tokenizer_free(in->tok);
    cli_model_free(&in->cm);
}

/* CLI_GO_ON when the command should go on; else its exit code (usage printed, or --help).
 * Fills a and the limits and preprocessing of s. */
static int parse_args(int argc, char **argv, struct serve_args *a, struct mv_serve_state *s)
{
    const char *pipeline = "tutorial"; /* as medvlm features extracts by default */
    int max_upload_mb = 16;
    a->bind = "127.0.0.1";
    a->port = 8080;
    a->workers = 2;
    mv_serve_limits_default(&s->lim);
    medvlm_preprocess_options_default(&s->pre);
    long max_pixels = s->lim.max_pixels;
    const struct cli_opt opts[] = {CLI_OPT_STR("model", &a->model_dir),
                                   CLI_OPT_STR("prompts", &a->prompts_path),
                                   CLI_OPT_STR("features", &a->feats_path),
                                   CLI_OPT_STR("images", &a->images),
                                   CLI_OPT_STR("adapter", &a->adapter_path),
                                   CLI_OPT_STR("run", &a->run),
                                   CLI_OPT_INT("port", &a->port, 0, 65535),
                                   CLI_OPT_STR("bind", &a->bind),
                                   CLI_OPT_STR("token", &a->token),
                                   CLI_OPT_INT("workers", &a->workers, 1, 256),
                                   CLI_OPT_STR("preprocess", &pipeline),
                                   CLI_OPT_INT("max-upload", &max_upload_mb, 1, 1024),
                                   CLI_OPT_LONG("max-pixels", &max_pixels, 1, 400000000L),
                                   CLI_OPT_INT("timeout", &s->lim.timeout_s, 1, 3600),
                                   CLI_OPT_INT("max-requests", &s->lim.max_requests, 1, 4096),
                                   CLI_OPT_END};
    const struct cli_spec spec = {
        .loads_model = 1, .runs_encoder = 1, .cmd = "serve", .usage = usage, .opts = opts};
    const int parsed = cli_parse(&spec, argc, argv, NULL);
    if (parsed != CLI_GO_ON) return parsed;
    if (a->token && !*a->token) return cli_usage("serve", "--token must not be empty");
    if (medvlm_preprocess_parse(pipeline, &s->pre.pipeline))
        return cli_usage("serve", "--preprocess expects tutorial, hf or hf-torchvision, got '%s'",
                         pipeline);
    s->lim.max_upload = (size_t)max_upload_mb << 20;
    s->lim.max_pixels = max_pixels;
    if (!a->model_dir || !a->prompts_path)
        return cli_usage("serve", "--model and --prompts are required");
    if (a->images && !a->feats_path)
        return cli_usage("serve", "--images names the folder of --features' tiles: give both");
    if (!a->token && strcmp(a->bind, "127.0.0.1") != 0 && strcmp(a->bind, "::1") != 0)
        fprintf(stderr,
                "medvlm serve: warning: listening on %s without --token: anyone who "
                "reaches this address can use the server\n",
                a->bind);
    return CLI_GO_ON;
}

/* The features and the adapter belong to the model: 1, or 0 after a message. */
static int check_inputs(const struct serve_args *a, const struct serve_inputs *in, int D)
{
    if (in->f && in->f->d != D) {
        fprintf(stderr, "medvlm: %s has %d-dimensional features but %s embeds in %d\n",
                a->feats_path, in->f->d, a->model_dir, D);
        return 0;
    }
    const struct medvlm_provenance model = {medvlm_model_fingerprint(in->cm.m), a->model_dir};
    if (in->f && !cli_same_model(a->feats_path,
                                 &(struct medvlm_provenance){in->f->fingerprint, in->f->model},
                                 "the model", &model))
        return 0;
    if (in->ad && medvlm_adapter_dim(in->ad) != D) {
        fprintf(stderr,
                "medvlm: the adapter %s expects %d-dimensional features but %s embeds in %d\n",
                a->adapter_path, medvlm_adapter_dim(in->ad), a->model_dir, D);
        return 0;
    }
    return 1;
}

/* Load what the server holds and point s at it: 1, or 0 after a message. */
static int load_inputs(const struct serve_args *a, struct serve_inputs *in,
                       struct mv_serve_state *s)
{
    size_t prompts_len;
    if (medvlm_prompts_load(a->prompts_path, &in->pr) ||
        mv_read_file(a->prompts_path, &in->prompts_text, &prompts_len) ||
        !cli_model_load(a->model_dir, a->run, MEDVLM_LOAD_ALL, &in->cm) ||
        medvlm_tokenizer_load(a->model_dir, &in->tok) ||
        (a->feats_path && medvlm_features_load(a->feats_path, &in->f)) ||
        (a->adapter_path && medvlm_adapter_load(a->adapter_path, &in->ad)))
        return cli_fail(NULL), 0;
    s->D = medvlm_model_config(in->cm.m)->projection_dim;
    int sh = 0, sw = 0;
    if (medvlm_image_preprocess_fixed_size(medvlm_model_preproc(in->cm.m), &s->pre, &sh, &sw) ||
        sh != sw) {
        fprintf(stderr, "medvlm serve: the preprocessing must give a fixed square size (use "
                        "--preprocess tutorial, or a model that centre-crops)\n");
        return 0;
    }
    s->S = sh;
    if (!check_inputs(a, in, s->D)) return 0;
    s->K = in->pr->n_classes;
    in->protos = malloc((size_t)s->K * s->D * sizeof *in->protos);
    if (!in->protos || medvlm_prompts_prototypes(in->cm.m, in->tok, in->pr, NULL, s->K, in->protos))
        return cli_fail(a->prompts_path), 0;
    s->model = in->cm.m;
    s->tok = in->tok;
    s->model_name = a->model_dir;
    s->classes = (const char *const *)in->pr->classes;
    s->protos = in->protos;
    s->prompts_json = in->prompts_text;
    s->adapter = in->ad;
    s->feats = in->f;
    s->images_root = a->images;
    s->token = a->token;
    return 1;
}

/* Serve until SIGINT or SIGTERM: 1 after a clean stop, 0 after a message. */
static int run(const struct serve_args *a, struct mv_serve_state *s)
{
    if (mv_serve_workers_init(s, a->workers)) return cli_fail("serve"), 0;
    /* SIGINT/SIGTERM for wait_signal only: blocked before the server's threads exist */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (mv_serve_run(s, a->bind, a->port, on_ready, wait_signal, (void *)a->bind))
        return cli_fail(NULL), 0;
    return 1;
}

int cmd_serve(int argc, char **argv)
{
    struct serve_args a = {0};
    struct mv_serve_state s;
    memset(&s, 0, sizeof s);
    const int parsed = parse_args(argc, argv, &a, &s);
    if (parsed != CLI_GO_ON) return parsed;
    struct serve_inputs in = {0};
    medvlm_set_threads(1); /* each worker encodes on one thread */
    const int ok = load_inputs(&a, &in, &s) && run(&a, &s);
    mv_serve_workers_free(&s);
    inputs_free(&in);
    return ok ? CLI_OK : CLI_FAIL;
}

#endif

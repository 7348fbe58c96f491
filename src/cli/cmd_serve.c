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
    "  --preprocess tutorial|hf  as for medvlm features (default tutorial)\n"
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

int cmd_serve(int argc, char **argv)
{
    const char *model_dir = NULL, *prompts_path = NULL, *feats_path = NULL, *images = NULL;
    const char *adapter_path = NULL, *run = NULL, *bind = "127.0.0.1", *token = NULL;
    int port = 8080, workers = 2, pipeline = 0, max_upload_mb = 16;
    struct mv_serve_state s;
    memset(&s, 0, sizeof s);
    mv_serve_limits_default(&s.lim);
    medvlm_preprocess_options_default(&s.pre);
    long max_pixels = s.lim.max_pixels;
    int timeout_s = s.lim.timeout_s, max_requests = s.lim.max_requests;
    const struct cli_opt opts[] = {CLI_OPT_STR("model", &model_dir),
                                   CLI_OPT_STR("prompts", &prompts_path),
                                   CLI_OPT_STR("features", &feats_path),
                                   CLI_OPT_STR("images", &images),
                                   CLI_OPT_STR("adapter", &adapter_path),
                                   CLI_OPT_STR("run", &run),
                                   CLI_OPT_INT("port", &port, 0, 65535),
                                   CLI_OPT_STR("bind", &bind),
                                   CLI_OPT_STR("token", &token),
                                   CLI_OPT_INT("workers", &workers, 1, 256),
                                   CLI_OPT_CHOICE("preprocess", &pipeline, "tutorial|hf"),
                                   CLI_OPT_INT("max-upload", &max_upload_mb, 1, 1024),
                                   CLI_OPT_LONG("max-pixels", &max_pixels, 1, 400000000L),
                                   CLI_OPT_INT("timeout", &timeout_s, 1, 3600),
                                   CLI_OPT_INT("max-requests", &max_requests, 1, 4096),
                                   CLI_OPT_END};
    const struct cli_spec spec = {.loads_model = 1, .cmd = "serve", .usage = usage, .opts = opts};
    const int parsed = cli_parse(&spec, argc, argv, NULL);
    if (parsed != CLI_GO_ON) return parsed;
    if (token && !*token) return cli_usage("serve", "--token must not be empty");
    /* the tutorial's pipeline, as medvlm features extracts by default */
    s.pre.pipeline = pipeline == 1 ? MEDVLM_PREPROCESS_HF : MEDVLM_PREPROCESS_TUTORIAL;
    s.lim.max_upload = (size_t)max_upload_mb << 20;
    s.lim.max_pixels = max_pixels;
    s.lim.timeout_s = timeout_s;
    s.lim.max_requests = max_requests;
    if (!model_dir || !prompts_path)
        return cli_usage("serve", "--model and --prompts are required");
    if (images && !feats_path)
        return cli_usage("serve", "--images names the folder of --features' tiles: give both");
    if (!token && strcmp(bind, "127.0.0.1") != 0 && strcmp(bind, "::1") != 0)
        fprintf(stderr,
                "medvlm serve: warning: listening on %s without --token: anyone who "
                "reaches this address can use the server\n",
                bind);

    int rc = CLI_FAIL;
    struct cli_model cm = {0};
    struct medvlm_tokenizer *tok = NULL;
    struct medvlm_prompts *pr = NULL;
    struct medvlm_features *f = NULL;
    struct medvlm_adapter *ad = NULL;
    float *protos = NULL;
    char *prompts_text = NULL;
    size_t prompts_len;
    medvlm_set_threads(1); /* each worker encodes on one thread */
    if (medvlm_prompts_load(prompts_path, &pr) ||
        mv_read_file(prompts_path, &prompts_text, &prompts_len) ||
        !cli_model_load(model_dir, run, MEDVLM_LOAD_ALL, &cm) ||
        medvlm_tokenizer_load(model_dir, &tok) ||
        (feats_path && medvlm_features_load(feats_path, &f)) ||
        (adapter_path && medvlm_adapter_load(adapter_path, &ad))) {
        cli_fail(NULL);
        goto done;
    }
    const struct medvlm_config *cfg = medvlm_model_config(cm.m);
    s.D = cfg->projection_dim;
    int sh = 0, sw = 0;
    if (medvlm_image_preprocess_fixed_size(medvlm_model_preproc(cm.m), &s.pre, &sh, &sw) ||
        sh != sw) {
        fprintf(stderr, "medvlm serve: the preprocessing must give a fixed square size (use "
                        "--preprocess tutorial, or a model that centre-crops)\n");
        goto done;
    }
    s.S = sh;
    if (f && f->d != s.D) {
        fprintf(stderr, "medvlm: %s has %d-dimensional features but %s embeds in %d\n", feats_path,
                f->d, model_dir, s.D);
        goto done;
    }
    if (f && !cli_same_model(
                 feats_path, &(struct medvlm_provenance){f->fingerprint, f->model}, "the model",
                 &(struct medvlm_provenance){medvlm_model_fingerprint(cm.m), model_dir}))
        goto done;
    if (ad && medvlm_adapter_dim(ad) != s.D) {
        fprintf(stderr,
                "medvlm: the adapter %s expects %d-dimensional features but %s embeds "
                "in %d\n",
                adapter_path, medvlm_adapter_dim(ad), model_dir, s.D);
        goto done;
    }
    s.K = pr->n_classes;
    protos = malloc((size_t)s.K * s.D * sizeof *protos);
    if (!protos || medvlm_prompts_prototypes(cm.m, tok, pr, NULL, s.K, protos)) {
        cli_fail(prompts_path);
        goto done;
    }
    s.model = cm.m;
    s.tok = tok;
    s.model_name = model_dir;
    s.classes = (const char *const *)pr->classes;
    s.protos = protos;
    s.prompts_json = prompts_text;
    s.adapter = ad;
    s.feats = f;
    s.images_root = images;
    s.token = token;
    if (mv_serve_workers_init(&s, (int)workers)) {
        cli_fail("serve");
        goto done;
    }
    /* SIGINT/SIGTERM for wait_signal only: blocked before the server's threads exist */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (mv_serve_run(&s, bind, (int)port, on_ready, wait_signal, (void *)bind)) {
        cli_fail(NULL);
        goto done;
    }
    rc = CLI_OK;
done:
    mv_serve_workers_free(&s);
    free(protos);
    mv_free(prompts_text);
    medvlm_adapter_free(ad);
    medvlm_features_free(f);
    medvlm_prompts_free(pr);
    medvlm_tokenizer_free(tok);
    cli_model_free(&cm);
    return rc;
}

#endif

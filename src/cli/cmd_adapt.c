/*
 * cmd_adapt.c - `medvlm adapt`: train few-shot black-box adapters on a K-shot sample of
 * training features, evaluate them on test features, print the metrics (one method, or
 * every method side by side; one seed, or mean and std over several), save the adapter.
 */
#include "cli.h"

#include "core/core.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *usage =
    "usage: medvlm adapt --method NAME | --methods all|NAME,.. --train FEATS --test FEATS\n"
    "                    (--prompts PROMPTS.json --model DIR | --prototypes PROTOS)\n"
    "                    --shots K [--seed S | --seeds S1,S2,..] [options] [--out ADAPTER]\n"
    "\n"
    "Few-shot black-box adaptation on frozen features, as the PEFT-MedVLMs tutorial does it:\n"
    "draw K images per class from the training features (the tutorial's sampler: Python's\n"
    "random.seed(S) + shuffle, then the first K of each class), train the adapter, and\n"
    "report balanced accuracy (ACA), accuracy and macro-F1 on the test features.\n"
    "\n"
    "  --method NAME       zeroshot, lp, zslp, clipadapter, clap, tipadapter, tipadapter-f,\n"
    "                      taskres\n"
    "  --methods LIST      all, or names separated by commas: one table comparing them on\n"
    "                      the same shots (all: zero-shot and every adapter)\n"
    "  --train FEATS       features file (medvlm features) to draw the shots from\n"
    "  --test FEATS        features file to evaluate on\n"
    "  --prompts FILE      class prompts, as for medvlm zeroshot: the zero-shot prototypes\n"
    "                      (the classifier ZS-LP and CLAP start from) are their text\n"
    "                      embeddings, computed with --model\n"
    "  --model DIR         the model the features were extracted with\n"
    "  --precision P       fp32, bf16 or auto (default): the text encoder's products\n"
    "  --prototypes FILE   instead of --prompts and --model: prototypes saved by\n"
    "                      medvlm zeroshot --save-prototypes\n"
    "  --shots K           images per class (>= 1)\n"
    "  --seed S            sampling seed, also the adapter's init/shuffle seed (default 1)\n"
    "  --seeds LIST        several seeds: mean and std (population) over them\n"
    "  --allow-fewer       train on every image of a class that has fewer than K\n"
    "  --epochs N          (100)   --batch-size N (32)   --lr X (0.001)\n"
    "  --optimizer NAME    sgd (momentum 0.9), adam or adamw (default sgd)\n"
    "  --momentum X        SGD momentum (0.9)     --weight-decay X (0)\n"
    "  --schedule NAME     constant or cosine (default constant)\n"
    "  --alpha X           clipadapter residual ratio (0.5), tipadapter cache weight (1),\n"
    "                      taskres residual scale (0.5)\n"
    "  --beta X            tipadapter sharpness (1)\n"
    "  --hidden H          clipadapter bottleneck (default D/4)\n"
    "  --clap-alm          clap: augmented-Lagrangian multiplier updates after each epoch\n"
    "  --rho X             clap-alm initial penalty parameter (0; then each class's distance)\n"
    "  --threads N         training threads (default: all cores; lp, zslp, clap and taskres\n"
    "                      split the feature columns, and every count gives the same numbers)\n"
    "  --json FILE         write the results as JSON\n"
    "  --out FILE          save the adapter (one method; trained with the first "
    "seed)\n" CLI_REPORT_HELP "\n"
    "example:\n"
    "  medvlm adapt --method clap --train train.safetensors --test test.safetensors \\\n"
    "               --prompts examples/sicapv2_ensemble.json --model plip \\\n"
    "               --shots 16 --seeds 1,2,3 --out clap.safetensors\n";

#define MAX_SEEDS 64

struct adapt_args {
    const char *train, *test, *protos, *prompts, *model, *json, *out, *method;
    const char *report, *report_images;
    int shots, have_shots, allow_fewer, nseeds;
    long seeds[MAX_SEEDS];
    struct medvlm_adapter_options o; /* user overrides, with have_* flags */
    int have_epochs, have_batch, have_lr, have_momentum, have_wd, have_alpha, have_beta,
        have_hidden, have_rho, have_optim, have_sched, clap_alm;
    int optimizer, schedule; /* indices into "sgd|adam|adamw" and "constant|cosine" */
};

/* One method's results over the seeds. */
struct method_result {
    enum medvlm_adapter_method method;
    double aca[MAX_SEEDS], acc[MAX_SEEDS], secs[MAX_SEEDS]; /* percent, seconds */
    double f1[MAX_SEEDS];                                   /* macro-F1, [0, 1] */
    float first_loss, last_loss;
    long steps;
    float *losses0; /* (steps) the first seed's losses, for --report */
};

static void mean_std(const double *v, int n, double *mean, double *std)
{
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += v[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) q += (v[i] - *mean) * (v[i] - *mean);
    *std = sqrt(q / n);
}

static int parse_seeds(const char *s, struct adapt_args *a)
{
    a->nseeds = 0;
    char *copy = strdup(s), *save = NULL;
    if (!copy) return 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (a->nseeds == MAX_SEEDS || !cli_parse_int(tok, 0, 1L << 62, &a->seeds[a->nseeds])) {
            free(copy);
            return 0;
        }
        a->nseeds++;
    }
    free(copy);
    return a->nseeds > 0;
}

/* CLI_GO_ON when the command should go on; else its exit code (usage printed, or --help). */
static int parse_args(int argc, char **argv, struct adapt_args *a)
{
    const char *method = NULL, *methods = NULL, *seeds = NULL;
    long seed = 1;
    int have_seed = 0;
    const struct cli_opt opts[] = {
        CLI_OPT_STR("method", &method),
        CLI_OPT_STR("methods", &methods),
        CLI_OPT_STR("train", &a->train),
        CLI_OPT_STR("test", &a->test),
        CLI_OPT_STR("prototypes", &a->protos),
        CLI_OPT_STR("prompts", &a->prompts),
        CLI_OPT_STR("model", &a->model),
        CLI_OPT_INT_G("shots", &a->shots, 1, CLI_NO_LIMIT, &a->have_shots),
        CLI_OPT_LONG_G("seed", &seed, 0, (double)(1L << 62), &have_seed),
        CLI_OPT_STR("seeds", &seeds),
        CLI_OPT_FLAG("allow-fewer", &a->allow_fewer),
        CLI_OPT_INT_G("epochs", &a->o.epochs, 0, 1000000, &a->have_epochs),
        CLI_OPT_INT_G("batch-size", &a->o.batch_size, 1, 1 << 30, &a->have_batch),
        CLI_OPT_FLOAT_G("lr", &a->o.lr, 0, CLI_NO_LIMIT, &a->have_lr),
        CLI_OPT_CHOICE_G("optimizer", &a->optimizer, "sgd|adam|adamw", &a->have_optim),
        CLI_OPT_FLOAT_G("momentum", &a->o.momentum, 0, CLI_NO_LIMIT, &a->have_momentum),
        CLI_OPT_FLOAT_G("weight-decay", &a->o.weight_decay, 0, CLI_NO_LIMIT, &a->have_wd),
        CLI_OPT_CHOICE_G("schedule", &a->schedule, "constant|cosine", &a->have_sched),
        CLI_OPT_FLOAT_G("alpha", &a->o.alpha, -CLI_NO_LIMIT, CLI_NO_LIMIT, &a->have_alpha),
        CLI_OPT_FLOAT_G("beta", &a->o.beta, 0, CLI_NO_LIMIT, &a->have_beta),
        CLI_OPT_INT_G("hidden", &a->o.hidden, 1, 1 << 20, &a->have_hidden),
        CLI_OPT_FLAG("clap-alm", &a->clap_alm),
        CLI_OPT_FLOAT_G("rho", &a->o.clap_rho, 0, CLI_NO_LIMIT, &a->have_rho),
        CLI_OPT_STR("json", &a->json),
        CLI_OPT_STR("out", &a->out),
        CLI_OPT_STR("report", &a->report),
        CLI_OPT_STR("report-images", &a->report_images),
        CLI_OPT_INT("threads", &a->o.threads, 1, 1024),
        CLI_OPT_END};
    const struct cli_spec spec = {
        .loads_model = 1, .runs_encoder = 1, .cmd = "adapt", .usage = usage, .opts = opts};
    const int parsed = cli_parse(&spec, argc, argv, NULL);
    if (parsed != CLI_GO_ON) return parsed;
    if (method && methods)
        return cli_usage("adapt", "give --method or --methods once (got '%s' and '%s')", method,
                         methods);
    a->method = method ? method : methods;
    static const enum medvlm_optimizer optimizer_of[] = {
        MEDVLM_OPTIMIZER_SGD, MEDVLM_OPTIMIZER_ADAM, MEDVLM_OPTIMIZER_ADAMW};
    a->o.optimizer = optimizer_of[a->optimizer];
    a->o.schedule = a->schedule ? MEDVLM_SCHEDULE_COSINE : MEDVLM_SCHEDULE_CONSTANT;
    a->nseeds = 1;
    a->seeds[0] = seed;
    if (seeds && !have_seed && !parse_seeds(seeds, a))
        return cli_usage("adapt",
                         "--seeds expects up to %d integers >= 0 separated by commas, got '%s'",
                         MAX_SEEDS, seeds);
    if (seeds && have_seed) return cli_usage("adapt", "give --seed or --seeds, not both");
    if (!a->method) return cli_usage("adapt", "--method NAME or --methods all|NAME,.. is required");
    if (!a->train || !a->test) return cli_usage("adapt", "--train and --test are both required");
    if (a->protos && (a->prompts || a->model))
        return cli_usage("adapt", "give --prompts with --model, or --prototypes: not both");
    if (!a->protos && !a->prompts && !a->model)
        return cli_usage("adapt", "the zero-shot classifier is required: --prompts FILE with "
                                  "--model DIR, or --prototypes FILE");
    if (!a->protos && !a->model)
        return cli_usage("adapt", "--prompts needs --model DIR, the model the features were "
                                  "extracted with, to embed them");
    if (!a->protos && !a->prompts)
        return cli_usage("adapt", "--model needs --prompts FILE, the class prompts to embed");
    if (!a->have_shots) return cli_usage("adapt", "--shots K is required");
    const struct cli_io io = {
        .in = {{"--train", a->train},
               {"--test", a->test},
               {"--prototypes", a->protos},
               {"--prompts", a->prompts}},
        .model = {{"--model", a->model}},
        .out = {{"--json", a->json}, {"--out", a->out}, {"--report", a->report}}};
    if (!cli_outputs_ok("adapt", &io)) return CLI_USAGE;
    if (a->out && (!strcmp(a->method, "all") || strchr(a->method, ',')))
        return cli_usage("adapt", "--out saves one adapter: name one --method, not '%s'",
                         a->method);
    return CLI_GO_ON;
}

/* --method / --methods: "all" (every method, zero-shot first) or names separated by commas,
 * each once. The count, or 0 after an error message. */
static int parse_methods(const char *list, enum medvlm_adapter_method *methods)
{
    int nm = 0;
    if (!strcmp(list, "all")) {
        for (int m = 0; m < MEDVLM_ADAPTER_COUNT; m++)
            methods[nm++] = (enum medvlm_adapter_method)m;
        return nm;
    }
    for (const char *at = list;; at++) {
        const char *end = strchr(at, ',');
        size_t len = end ? (size_t)(end - at) : strlen(at);
        char name[64];
        if (len >= sizeof name) len = sizeof name - 1;
        memcpy(name, at, len);
        name[len] = '\0';
        enum medvlm_adapter_method m;
        if (medvlm_adapter_method_from_name(name, &m) != MEDVLM_OK) {
            fprintf(stderr, "medvlm adapt: %s (or all)\n", medvlm_last_error());
            return 0;
        }
        for (int i = 0; i < nm; i++)
            if (methods[i] == m) {
                fprintf(stderr, "medvlm adapt: method '%s' is listed twice in '%s'\n", name, list);
                return 0;
            }
        if (nm == MEDVLM_ADAPTER_COUNT) return 0; /* unreachable: each method at most once */
        methods[nm++] = m;
        if (!end) return nm;
        at = end;
    }
}

/* The method's defaults with the user's explicit choices on top. */
static void method_options(const struct adapt_args *a, enum medvlm_adapter_method m, long seed,
                           struct medvlm_adapter_options *o)
{
    medvlm_adapter_options_default(o, m);
    o->seed = (uint64_t)seed;
    if (a->have_epochs) o->epochs = a->o.epochs;
    if (a->have_batch) o->batch_size = a->o.batch_size;
    if (a->have_lr) o->lr = a->o.lr;
    if (a->have_optim) o->optimizer = a->o.optimizer;
    if (a->have_momentum) o->momentum = a->o.momentum;
    if (a->have_wd) o->weight_decay = a->o.weight_decay;
    if (a->have_sched) o->schedule = a->o.schedule;
    if (a->have_alpha) o->alpha = a->o.alpha;
    if (a->have_beta) o->beta = a->o.beta;
    if (a->have_hidden) o->hidden = a->o.hidden;
    if (a->have_rho) o->clap_rho = a->o.clap_rho;
    o->clap_alm = a->clap_alm;
    o->threads = a->o.threads; /* 0: all cores */
}

/* Same model: equal dims; same task: the same class names in the same order. */
static int check_compatible(const struct adapt_args *a, const struct medvlm_features *tr,
                            const struct medvlm_features *te, const struct medvlm_prototypes *p)
{
    const struct medvlm_features *f[2] = {tr, te};
    const char *name[2] = {a->train, a->test};
    const char *from = a->protos ? a->protos : a->prompts;
    char what[2][1100];
    snprintf(what[0], sizeof what[0], "the features in %s", a->train);
    snprintf(what[1], sizeof what[1], "those in %s", a->test);
    if (!cli_same_model(what[0], &(struct medvlm_provenance){tr->fingerprint, tr->model}, what[1],
                        &(struct medvlm_provenance){te->fingerprint, te->model}))
        return 0;
    snprintf(what[1], sizeof what[1], "the prototypes of %s", from);
    for (int i = 0; i < 2; i++) {
        snprintf(what[0], sizeof what[0], "the features in %s", name[i]);
        if (!cli_same_model(what[0], &(struct medvlm_provenance){f[i]->fingerprint, f[i]->model},
                            what[1], &(struct medvlm_provenance){p->fingerprint, p->model}))
            return 0;
        if (f[i]->d != p->d) {
            fprintf(stderr,
                    "medvlm: %s has %d-dimensional features but the prototypes of %s are "
                    "%d-dimensional: features and prototypes come from different models\n",
                    name[i], f[i]->d, from, p->d);
            return 0;
        }
        if (f[i]->n_classes != p->k) {
            fprintf(stderr, "medvlm: %s has %d classes but the prototypes of %s have %d\n", name[i],
                    f[i]->n_classes, from, p->k);
            return 0;
        }
        for (int c = 0; c < p->k; c++)
            if (strcmp(f[i]->classes[c], p->classes[c]) != 0) {
                fprintf(stderr,
                        "medvlm: class %d is '%s' in %s but '%s' in the prototypes of %s: the "
                        "classes must be the same, in the same order\n",
                        c, f[i]->classes[c], name[i], p->classes[c], from);
                return 0;
            }
    }
    return 1;
}

/* The zero-shot prototypes of --prompts embedded by --model, in the training features' class
 * order (the prompts' classes matched by name): what `medvlm zeroshot --save-prototypes`
 * writes for the same prompts and model. */
static int prompt_prototypes(const struct adapt_args *a, const struct medvlm_features *tr,
                             struct medvlm_prototypes **out)
{
    int ok = 0;
    struct medvlm_prompts *pr = NULL;
    struct medvlm_model *m = NULL;
    struct medvlm_tokenizer *tok = NULL;
    struct medvlm_prototypes *p = NULL;
    int *map = NULL;
    const int K = tr->n_classes;
    if (medvlm_prompts_load(a->prompts, &pr) ||
        medvlm_model_load(a->model, MEDVLM_LOAD_TEXT | cli_load_flags, &m) ||
        medvlm_model_prepare(m, cli_precision) || medvlm_tokenizer_load(a->model, &tok)) {
        cli_fail(NULL);
        goto done;
    }
    const int D = medvlm_model_config(m)->projection_dim;
    if (tr->d != D) {
        fprintf(stderr,
                "medvlm: %s has %d-dimensional features but %s embeds the prompts of %s in %d "
                "dimensions: the features come from a different model\n",
                a->train, tr->d, a->model, a->prompts, D);
        goto done;
    }
    map = mv_calloc((size_t)K, sizeof *map);
    if (!map) goto nomem;
    if (medvlm_prompts_class_map(pr, a->prompts, (const char *const *)tr->classes, K, a->train,
                                 map)) {
        cli_fail(NULL);
        goto done;
    }
    if (pr->n_classes != K) {
        fprintf(stderr,
                "medvlm: %s has prompts for %d classes but %s has %d: give the prompts of "
                "the features' classes only\n",
                a->prompts, pr->n_classes, a->train, K);
        goto done;
    }
    if (medvlm_prototypes_from_prompts(m, a->model, tok, pr, map, K, &p)) {
        cli_fail(a->prompts);
        goto done;
    }
    *out = p;
    p = NULL;
    ok = 1;
    goto done;
nomem:
    fprintf(stderr, "medvlm: out of memory\n");
done:
    medvlm_prototypes_free(p);
    medvlm_tokenizer_free(tok);
    medvlm_model_free(m);
    medvlm_prompts_free(pr);
    mv_free(map);
    return ok;
}

/* Every class has at least K training images, unless --allow-fewer. */
static int check_shots(const struct adapt_args *a, const struct medvlm_features *tr)
{
    int ok = 1;
    for (int c = 0; c < tr->n_classes; c++) {
        int have = 0;
        for (int i = 0; i < tr->n; i++) have += tr->labels[i] == c;
        if (have < a->shots) {
            if (a->allow_fewer) {
                fprintf(stderr,
                        "medvlm: note: class '%s' has %d training image%s, fewer than "
                        "%d: using %s\n",
                        tr->classes[c], have, have == 1 ? "" : "s", a->shots,
                        have ? "all of them" : "none");
            } else {
                fprintf(stderr,
                        "medvlm: class '%s' has %d training image%s in %s, fewer than the %d "
                        "shots asked for (--allow-fewer trains on what there is)\n",
                        tr->classes[c], have, have == 1 ? "" : "s", a->train, a->shots);
                ok = 0;
            }
        }
    }
    return ok;
}

/* Train one method on one sample, evaluate on the test set; fills slot `si` of r (and keeps
 * the first seed's losses). With keep_ev, the first seed's evaluation goes there. */
static enum medvlm_status run_one(const struct adapt_args *a, const struct medvlm_features *te,
                                  const struct medvlm_prototypes *p, const float *X,
                                  const int64_t *Y, int n, int si, struct method_result *r,
                                  struct medvlm_adapter **keep, struct medvlm_evaluation *keep_ev)
{
    struct medvlm_adapter_options o;
    method_options(a, r->method, a->seeds[si], &o);
    long steps = medvlm_adapter_steps(&o, n);
    float *losses = calloc((size_t)(steps > 0 ? steps : 1), sizeof(float));
    float *logits = calloc((size_t)te->n * p->k + 1, sizeof(float));
    struct medvlm_adapter *ad = NULL;
    struct medvlm_evaluation ev = {0};
    enum medvlm_status st = MEDVLM_ERR_NOMEM;
    if (!losses || !logits) {
        fprintf(stderr, "medvlm: out of memory\n");
        goto done;
    }
    double t0 = mv_now();
    st = medvlm_adapter_train(&o, X, Y, n, p->d, p->prototypes, p->k, p->logit_scale, &ad, losses);
    if (st) goto done;
    r->secs[si] = mv_now() - t0;
    r->steps = steps;
    r->first_loss = steps ? losses[0] : NAN;
    r->last_loss = steps ? losses[steps - 1] : NAN;
    if ((st = medvlm_adapter_logits(ad, te->features, te->n, logits)) ||
        (st = medvlm_evaluate(logits, te->labels, te->n, p->k, (const char *const *)p->classes,
                              &ev)))
        goto done;
    r->aca[si] = ev.metrics.balanced_accuracy;
    r->acc[si] = ev.metrics.accuracy;
    r->f1[si] = ev.metrics.macro_f1;
    if (keep && !*keep) {
        *keep = ad;
        ad = NULL;
    }
    if (keep_ev && si == 0) {
        *keep_ev = ev;
        memset(&ev, 0, sizeof ev);
    }
    if (si == 0) {
        r->losses0 = losses;
        losses = NULL;
    }
done:
    medvlm_evaluation_free(&ev);
    medvlm_adapter_free(ad);
    free(losses);
    free(logits);
    return st;
}

static const char *optim_name(enum medvlm_optimizer o)
{
    return o == MEDVLM_OPTIMIZER_ADAM ? "adam" : o == MEDVLM_OPTIMIZER_ADAMW ? "adamw" : "sgd";
}

static void print_table(const struct adapt_args *a, const struct method_result *res, int nm)
{
    printf("\n%-13s %8s %7s %8s %9s  %s\n", "method", "ACA %", "std", "acc %", "macro-F1",
           a->nseeds > 1 ? "ACA % per seed" : "train s");
    for (int i = 0; i < nm; i++) {
        double am, as, cm, cs, fm, fs;
        mean_std(res[i].aca, a->nseeds, &am, &as);
        mean_std(res[i].acc, a->nseeds, &cm, &cs);
        mean_std(res[i].f1, a->nseeds, &fm, &fs);
        printf("%-13s %8.2f %7.2f %8.2f %9.4f ", medvlm_adapter_method_name(res[i].method),
               medvlm_round_half_even(am, 2), medvlm_round_half_even(as, 2),
               medvlm_round_half_even(cm, 2), fm);
        if (a->nseeds > 1)
            for (int s = 0; s < a->nseeds; s++)
                printf(" %.2f", medvlm_round_half_even(res[i].aca[s], 2));
        else
            printf(" %.3f", res[i].secs[0]);
        printf("\n");
    }
}

/* The training rows drawn for each seed (rows of the training features, in the sampler's
 * order), kept for the JSON: which images a result came from. */
struct draws {
    int *idx[MAX_SEEDS], n[MAX_SEEDS];
};

static int write_json(const struct adapt_args *a, const struct method_result *res, int nm,
                      const struct medvlm_features *tr, const struct medvlm_features *te,
                      const struct draws *dr)
{
    cJSON *root = cJSON_CreateObject(), *seeds = cJSON_AddArrayToObject(root, "seeds");
    cJSON *methods = cJSON_AddArrayToObject(root, "methods");
    cJSON_AddNumberToObject(root, "shots", a->shots);
    cJSON_AddNumberToObject(root, "train_pool", tr->n);
    cJSON_AddNumberToObject(root, "test_images", te->n);
    for (int s = 0; s < a->nseeds; s++)
        cJSON_AddItemToArray(seeds, cJSON_CreateNumber((double)a->seeds[s]));
    if (tr->image_names) { /* per seed, the training images in the sampler's order */
        cJSON *samples = cJSON_AddArrayToObject(root, "train_images");
        for (int s = 0; s < a->nseeds; s++) {
            cJSON *one = cJSON_CreateObject(), *names = cJSON_AddArrayToObject(one, "images");
            cJSON_AddNumberToObject(one, "seed", (double)a->seeds[s]);
            for (int i = 0; i < dr->n[s]; i++)
                cJSON_AddItemToArray(names, cJSON_CreateString(tr->image_names[dr->idx[s][i]]));
            cJSON_AddItemToArray(samples, one);
        }
    }
    for (int i = 0; i < nm; i++) {
        cJSON *m = cJSON_CreateObject(), *runs = NULL;
        cJSON_AddStringToObject(m, "method", medvlm_adapter_method_name(res[i].method));
        double mean, std;
        const double *cols[3] = {res[i].aca, res[i].acc, res[i].f1};
        const char *names[3] = {"balanced_accuracy", "accuracy", "macro_f1"};
        for (int k = 0; k < 3; k++) {
            mean_std(cols[k], a->nseeds, &mean, &std);
            cJSON *o = cJSON_AddObjectToObject(m, names[k]);
            cJSON_AddNumberToObject(o, "mean", mean);
            cJSON_AddNumberToObject(o, "std", std);
        }
        runs = cJSON_AddArrayToObject(m, "runs");
        for (int s = 0; s < a->nseeds; s++) {
            cJSON *r = cJSON_CreateObject();
            cJSON_AddNumberToObject(r, "seed", (double)a->seeds[s]);
            cJSON_AddNumberToObject(r, "balanced_accuracy", res[i].aca[s]);
            cJSON_AddNumberToObject(r, "accuracy", res[i].acc[s]);
            cJSON_AddNumberToObject(r, "macro_f1", res[i].f1[s]);
            cJSON_AddNumberToObject(r, "train_seconds", res[i].secs[s]);
            cJSON_AddItemToArray(runs, r);
        }
        cJSON_AddItemToArray(methods, m);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) {
        fprintf(stderr, "medvlm: out of memory\n");
        return 0;
    }
    size_t len = strlen(text);
    text[len] = '\0';
    enum medvlm_status st = mv_write_file_atomic(a->json, text, len);
    cJSON_free(text);
    if (st) {
        cli_fail("--json");
        return 0;
    }
    return 1;
}

/* --report: what the text output shows. One method and one seed: its metrics, loss curve and
 * misclassified test images; otherwise the balanced accuracy of every method and seed (with
 * one method, the first seed's loss curve too). 0 on failure (printed). */
static int write_report(const struct adapt_args *a, const struct method_result *res, int nm,
                        const struct medvlm_features *tr, const struct medvlm_features *te,
                        const struct medvlm_prototypes *p, int n,
                        const struct medvlm_evaluation *ev)
{
    double *aca = calloc((size_t)nm * a->nseeds, sizeof *aca);
    const char **mnames = calloc((size_t)nm, sizeof *mnames);
    char summary[2400];
    snprintf(summary, sizeof summary,
             "adapt: %d-shot, %d training images (of %d in %s), %d test images, %d classes, D %d",
             a->shots, n, tr->n, a->train, te->n, p->k, p->d);
    int ok = 0;
    if (!aca || !mnames) {
        fprintf(stderr, "medvlm: --report: out of memory\n");
        goto done;
    }
    for (int i = 0; i < nm; i++) {
        mnames[i] = medvlm_adapter_method_name(res[i].method);
        memcpy(aca + (size_t)i * a->nseeds, res[i].aca, (size_t)a->nseeds * sizeof *aca);
    }
    const int one = nm == 1 && a->nseeds == 1;
    struct medvlm_report rep = {.title = "medvlm adapt",
                                .summary = summary,
                                .class_names = (const char *const *)p->classes,
                                .losses = nm == 1 ? res[0].losses0 : NULL,
                                .n_losses = nm == 1 && res[0].losses0 ? res[0].steps : 0,
                                .n_methods = one ? 0 : nm,
                                .n_seeds = one ? 0 : a->nseeds,
                                .methods = mnames,
                                .seeds = a->seeds,
                                .seed_aca = aca};
    ok = cli_write_report(a->report, &rep, one ? ev : NULL, (const char *const *)te->image_names,
                          a->report_images, NULL);
done:
    free(aca);
    free(mnames);
    return ok;
}

/* Every seed's K-shot draw from tr (kept in dr) and every method trained on it and tested on
 * te; *n: the training images of the last draw. 1, or 0 after a message. */
static int run_seeds(const struct adapt_args *a, const struct medvlm_features *tr,
                     const struct medvlm_features *te, const struct medvlm_prototypes *p,
                     struct method_result *res, int nm, struct medvlm_adapter **keep,
                     struct medvlm_evaluation *detail, struct draws *dr, int *n)
{
    float *X = calloc((size_t)p->k * a->shots * p->d, sizeof(float));
    int64_t *Y = calloc((size_t)p->k * a->shots, sizeof(int64_t));
    int ok = X && Y;
    if (!ok) fprintf(stderr, "medvlm: out of memory\n");
    for (int s = 0; ok && s < a->nseeds; s++) {
        int *idx = NULL;
        if (medvlm_fewshot_sample(tr->labels, tr->n, tr->n_classes, a->shots, a->seeds[s],
                                  a->allow_fewer, &idx, n)) {
            cli_fail(a->train);
            ok = 0;
            break;
        }
        for (int i = 0; i < *n; i++) {
            memcpy(X + (size_t)i * p->d, tr->features + (size_t)idx[i] * p->d,
                   (size_t)p->d * sizeof(float));
            Y[i] = tr->labels[idx[i]];
        }
        dr->idx[s] = idx;
        dr->n[s] = *n;
        if (*n == 0) {
            fprintf(stderr, "medvlm: no training images were drawn from %s\n", a->train);
            ok = 0;
        }
        for (int i = 0; ok && i < nm; i++)
            if (run_one(a, te, p, X, Y, *n, s, &res[i], keep, nm == 1 ? detail : NULL)) {
                cli_fail(medvlm_adapter_method_name(res[i].method));
                ok = 0;
            }
    }
    free(X);
    free(Y);
    return ok;
}

/* What ran: the data, the training of one method, its metrics or the table of seeds. */
static void print_summary(const struct adapt_args *a, const struct medvlm_features *tr,
                          const struct medvlm_features *te, const struct medvlm_prototypes *p,
                          const struct method_result *res, int nm, int n,
                          const struct medvlm_evaluation *detail)
{
    struct medvlm_adapter_options o0;
    method_options(a, res[0].method, a->seeds[0], &o0);
    const char *model = p->model ? p->model : tr->model; /* where the files record it */
    printf(
        "adapt: %d-shot, %d training images (of %d in %s), %d test images, %d classes, D %d%s%s\n",
        a->shots, n, tr->n, a->train, te->n, p->k, p->d, model ? ", model " : "",
        model ? model : "");
    if (nm == 1 && res[0].steps > 0) {
        char mom[48] = ""; /* the momentum used, SGD only */
        if (o0.optimizer == MEDVLM_OPTIMIZER_SGD)
            snprintf(mom, sizeof mom, " momentum %g", (double)o0.momentum);
        printf("%s: %d epochs, batch %d, %s lr %g%s: %ld steps, loss %.4f -> %.4f, %.3f s\n",
               medvlm_adapter_method_name(res[0].method), o0.epochs, o0.batch_size,
               optim_name(o0.optimizer), (double)o0.lr, mom, res[0].steps,
               (double)res[0].first_loss, (double)res[0].last_loss, res[0].secs[0]);
    }
    if (nm == 1 && a->nseeds == 1) printf("\n%s", detail->table);
    if (nm > 1 || a->nseeds > 1) {
        printf("seeds");
        for (int s = 0; s < a->nseeds; s++) printf(" %ld", a->seeds[s]);
        printf("\n");
        print_table(a, res, nm);
    }
}

/* --out: the adapter of the first seed, with the provenance of its prototypes or, where they
 * do not say, of its features. */
static int save_adapter(const struct adapt_args *a, const struct medvlm_adapter *keep,
                        const struct medvlm_prototypes *p, const struct medvlm_features *tr,
                        enum medvlm_adapter_method method)
{
    const struct medvlm_provenance from =
        p->fingerprint ? (struct medvlm_provenance){p->fingerprint, p->model}
                       : (struct medvlm_provenance){tr->fingerprint, tr->model};
    if (medvlm_adapter_save(keep, a->out, (const char *const *)p->classes, a->shots, &from))
        return cli_fail(a->out), 0;
    printf("\nsaved %s adapter (seed %ld) to %s\n", medvlm_adapter_method_name(method), a->seeds[0],
           a->out);
    return 1;
}

int cmd_adapt(int argc, char **argv)
{
    struct adapt_args a = {0};
    const int parsed = parse_args(argc, argv, &a);
    if (parsed != CLI_GO_ON) return parsed;
    enum medvlm_adapter_method methods[MEDVLM_ADAPTER_COUNT];
    const int nm = parse_methods(a.method, methods);
    if (nm <= 0) return CLI_USAGE;
    struct medvlm_features *tr = NULL, *te = NULL;
    struct medvlm_prototypes *p = NULL;
    struct method_result *res = calloc((size_t)nm, sizeof *res);
    struct medvlm_adapter *keep = NULL;
    struct medvlm_evaluation detail = {0};
    struct draws dr = {{NULL}, {0}};
    int n = 0, ok = res != NULL;
    for (int i = 0; ok && i < nm; i++) res[i].method = methods[i];
    if (ok && (medvlm_features_load(a.train, &tr) || medvlm_features_load(a.test, &te) ||
               (a.protos && medvlm_prototypes_load(a.protos, &p)))) {
        cli_fail(NULL);
        ok = 0;
    }
    if (ok && !a.protos) {
        if (a.o.threads) medvlm_set_threads(a.o.threads);
        ok = prompt_prototypes(&a, tr, &p);
    }
    ok = ok && check_compatible(&a, tr, te, p) && check_shots(&a, tr) &&
         run_seeds(&a, tr, te, p, res, nm, a.out ? &keep : NULL, &detail, &dr, &n);
    if (ok) print_summary(&a, tr, te, p, res, nm, n, &detail);
    ok = ok && !(a.json && !write_json(&a, res, nm, tr, te, &dr)) &&
         !(a.out && !save_adapter(&a, keep, p, tr, methods[0])) &&
         !(a.report && !write_report(&a, res, nm, tr, te, p, n, nm == 1 ? &detail : NULL));
    medvlm_evaluation_free(&detail);
    medvlm_adapter_free(keep);
    medvlm_features_free(tr);
    medvlm_features_free(te);
    medvlm_prototypes_free(p);
    for (int i = 0; res && i < nm; i++) free(res[i].losses0);
    free(res);
    for (int s = 0; s < a.nseeds; s++) medvlm_free(dr.idx[s]);
    return ok ? CLI_OK : CLI_FAIL;
}

/* cmd_finetune.c - `medvlm finetune`: parameter-efficient fine-tuning of the vision encoder on
 * a few-shot subset (the tutorial's last part): LayerNorm affine, bias, LoRA, head or full,
 * with per-epoch atomic checkpoints and a bit-identical --resume. */
#include "cli.h"

#include "core/core.h"
#include "dist/dist.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *usage =
    "usage: medvlm finetune --model DIR --peft MODE --images DIR --labels TABLE\n"
    "                       --prompts P.json --shots K --out RUN_DIR [options]\n"
    "\n"
    "Fine-tune part of the vision encoder with a zero-shot-initialised linear head (the\n"
    "prompt-ensemble prototypes of P.json; logits = normalised features x normalised\n"
    "prototypes x exp(logit_scale); mean cross-entropy) on the tutorial's K-shot subset of\n"
    "TABLE (the subset `medvlm sample` prints for the same seed). The images are decoded and\n"
    "preprocessed once; every epoch reshuffles them from the seed and ends with an atomic\n"
    "checkpoint in RUN_DIR, from which --resume continues to bit-identical parameters.\n"
    "The loss of each epoch goes to stderr (with a progress bar when it is a terminal); the\n"
    "summary and the test metrics to stdout. Under `mpirun -np N` every rank computes a slice\n"
    "of each batch and the gradients are summed in a fixed order: the same trajectory as one\n"
    "process within float rounding (N = 1: bit for bit); rank 0 writes RUN_DIR and evaluates\n"
    "--test, and --resume may use another N (docs/scale.md).\n"
    "\n"
    "  --model DIR           Hugging Face CLIP folder\n"
    "  --peft MODE           head | ln | ln-all | bias | lora | full (default lora):\n"
    "                        ln = the encoder layers' LayerNorm affine (the notebook's rule),\n"
    "                        ln-all adds pre/post LayerNorm, bias = every vision bias,\n"
    "                        lora = LoRA on --lora-targets, full = every vision parameter\n"
    "  --rank R              LoRA rank (default 4)\n"
    "  --lora-alpha A        LoRA alpha; the update is scaled by A / R (default A = R)\n"
    "  --lora-targets LIST   q,k,v,o,fc1,fc2 (default q,k,v)\n"
    "  --prompts P.json      class prompts (templates x descriptions) for the head; their\n"
    "                        classes are the default of --classes\n"
    "  --shots K             training images per class\n"
    "  --seed S              sampler (Python random.seed), shuffles and LoRA init (default 1)\n"
    "  --epochs E            passes over the K-shot set (default 20); a resumed run may be\n"
    "                        given more epochs than it started with\n"
    "  --batch B             images per step (default 16)\n"
    "  --lr LR               learning rate (default 1e-3)\n"
    "  --optimizer NAME      adam (default) | adamw | sgd\n"
    "  --weight-decay W      (default 0; adamw 0.01)\n"
    "  --momentum M          sgd momentum (default 0.9)\n"
    "  --val K2              K2 further images per class as a validation split: its loss is\n"
    "                        printed each epoch, training stops after --patience epochs\n"
    "                        without improvement and the best epoch's parameters are kept\n"
    "  --patience P          (default 3)\n"
    "  --test TABLE          evaluate the result on TABLE's images (metrics table)\n"
    "  --test-images DIR     image folder of --test (default: --images)\n"
    "  --json FILE           the test metrics as JSON (with --test)\n"
    "  --report FILE.html    an HTML report of the test metrics, the loss per epoch and the\n"
    "                        misclassified test images (with --test)\n"
    "  --out RUN_DIR         run folder (created; refused if it holds a checkpoint, unless\n"
    "                        --resume): checkpoint.safetensors, adapter_model.safetensors +\n"
    "                        adapter_config.json (lora, peft's format) or\n"
    "                        trained_params.safetensors, head.safetensors, run.json\n"
    "  --resume              continue the run in RUN_DIR from its last checkpoint (the same\n"
    "                        settings; a missing checkpoint starts from the beginning)\n"
    "  --precision P         fp32 (default), bf16 or auto: the vision layers' matrix products;\n"
    "                        bf16 keeps fp32 master weights and optimiser state\n"
    "                        (docs/precision.md); auto = bf16 where it is the faster\n"
    "  --stop-after E        stop after epoch E as if interrupted: its checkpoint is written,\n"
    "                        the final files are not (--resume continues); to split a run\n"
    "dataset:\n"
    "  --images DIR          image folder (names in the table are relative to it)\n"
    "  --labels TABLE        .xlsx or .csv label table (image column + one-hot class columns\n"
    "                        or a label column)\n"
    "  --classes A,B,...     class names in label order (default: the prompts' classes)\n"
    "  --sheet NAME, --image-column NAME, --label-column NAME\n"
    "  --skip-missing        leave out listed images that do not exist\n"
    "preprocessing and speed:\n"
    "  --preprocess tutorial|hf  the notebooks' torchvision pipeline (default) or\n"
    "                        Hugging Face's CLIPImageProcessor\n"
    "  --no-antialias        tutorial: plain bilinear resize (torchvision < 0.17)\n"
    "  --no-center-crop      hf: no centre crop (as the notebooks set it)\n"
    "  --threads N           threads (default: all cores; the results do not depend on it)\n"
    "\n"
    "example (the tutorial's settings):\n"
    "  medvlm finetune --model plip --peft lora --images SICAPv2/images \\\n"
    "      --labels SICAPv2/partition/Test/Train.xlsx --classes NC,G3,G4,G5 \\\n"
    "      --prompts examples/sicapv2_ensemble.json --shots 16 --seed 1 \\\n"
    "      --test SICAPv2/partition/Test/Test.xlsx --out runs/lora-16shot\n";

struct ft_args {
    struct cli_data_args data;
    const char *model, *prompts, *out, *test, *test_images, *json, *peft_name, *targets_name;
    const char *report;
    const char *optimizer_name;
    struct medvlm_peft_options po;
    long shots, seed, epochs, val, patience, stop_after;
    int resume, have_wd, have_rank, have_alpha, have_patience;
};

/* The shortest decimal that reads back as the same float (0.001, not 0.00100000005). */
static void float_text(char *buf, size_t n, float x)
{
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, n, "%.*g", prec, (double)x);
        if (strtof(buf, NULL) == x) return;
    }
}

static void settings_of(const struct ft_args *a, const struct medvlm_peft_options *o,
                        const char *fingerprint, char *const *classes, int K,
                        struct cli_ft_setting *s)
{
    static const char *const targets[] = {"q", "k", "v", "o", "fc1", "fc2"};
    int lora = o->mode == MEDVLM_PEFT_LORA, i = 0;
    char t[64] = "", f[32];
    for (int j = 0; lora && j < 6; j++)
        if (o->lora_targets & (1u << j))
            snprintf(t + strlen(t), sizeof t - strlen(t), "%s%s", t[0] ? "," : "", targets[j]);
#define SET(fl, ...) (s[i].flag = fl, snprintf(s[i].value, sizeof s[i].value, __VA_ARGS__), i++)
    SET("--model (fingerprint)", "%s", fingerprint);
    SET("--peft", "%s", medvlm_peft_mode_name(o->mode));
    SET("--rank", "%d", lora ? o->lora_rank : 0);
    float_text(f, sizeof f, lora ? o->lora_alpha : 0.0f);
    SET("--lora-alpha", "%s", f);
    SET("--lora-targets", "%s", t);
    SET("--optimizer", "%s", a->optimizer_name);
    float_text(f, sizeof f, o->lr);
    SET("--lr", "%s", f);
    float_text(f, sizeof f, o->weight_decay);
    SET("--weight-decay", "%s", f);
    float_text(f, sizeof f, o->optimizer == MEDVLM_OPTIMIZER_SGD ? o->momentum : 0.0f);
    SET("--momentum", "%s", f);
    SET("--batch", "%d", o->max_batch);
    SET("--shots", "%ld", a->shots);
    SET("--seed", "%ld", a->seed);
    SET("--val", "%ld", a->val);
    SET("--labels", "%s", a->data.ds.labels_path);
    s[i].flag = "--classes";
    s[i].value[0] = 0;
    for (int k = 0; k < K; k++)
        snprintf(s[i].value + strlen(s[i].value), sizeof s[i].value - strlen(s[i].value), "%s%s",
                 k ? "," : "", classes[k]);
    i++;
    SET("--prompts", "%s", a->prompts);
    SET("--precision", "%s", medvlm_precision_name(o->precision)); /* as resolved */
    const struct medvlm_preprocess_options *pre = &a->data.pre;
    if (pre->pipeline == MEDVLM_PREPROCESS_TUTORIAL)
        SET("--preprocess", "tutorial%s", pre->antialias ? "" : " --no-antialias");
    else
        SET("--preprocess", "%s%s", medvlm_preprocess_name(pre->pipeline),
            pre->center_crop == 0 ? " --no-center-crop" : "");
#undef SET
}

/* CLI_GO_ON when the run should go on; else the exit code (usage printed, or --help). */
static int parse_args(int argc, char **argv, struct ft_args *a)
{
    static const char *const optimizers[] = {"adam", "adamw", "sgd"};
    static const enum medvlm_optimizer optimizer_of[] = {
        MEDVLM_OPTIMIZER_ADAM, MEDVLM_OPTIMIZER_ADAMW, MEDVLM_OPTIMIZER_SGD};
    const char *cmd = "finetune", *batch_size = NULL;
    int optimizer = 0, skip_bad = 0, precision = 0;
    double alpha = 0, momentum = 0;
    cli_data_args_init(&a->data);
    medvlm_peft_options_default(&a->po);
    a->seed = 1;
    a->epochs = 20;
    a->patience = 3;
    momentum = a->po.momentum;
    const struct cli_opt opts[] = {
        CLI_OPT_STR("model", &a->model),
        CLI_OPT_STR("peft", &a->peft_name),
        CLI_OPT_INT_G("rank", &a->po.lora_rank, 1, 4096, &a->have_rank),
        {.name = "lora-alpha",
         .kind = CLI_DOUBLE,
         .dst = &alpha,
         .lo = 0,
         .hi = CLI_NO_LIMIT,
         .given = &a->have_alpha},
        CLI_OPT_STR("lora-targets", &a->targets_name),
        CLI_OPT_STR("prompts", &a->prompts),
        CLI_OPT_LONG("shots", &a->shots, 1, 1L << 24),
        CLI_OPT_LONG("seed", &a->seed, -(double)(1L << 62), (double)(1L << 62)),
        CLI_OPT_LONG("epochs", &a->epochs, 1, 1L << 20),
        CLI_OPT_INT("batch", &a->po.max_batch, 1, 4096),
        CLI_OPT_FLOAT("lr", &a->po.lr, 0, CLI_NO_LIMIT),
        CLI_OPT_CHOICE("optimizer", &optimizer, "adam|adamw|sgd"),
        CLI_OPT_FLOAT_G("weight-decay", &a->po.weight_decay, 0, CLI_NO_LIMIT, &a->have_wd),
        CLI_OPT_DOUBLE("momentum", &momentum, 0, 1),
        CLI_OPT_LONG("val", &a->val, 1, 1L << 24),
        CLI_OPT_LONG_G("patience", &a->patience, 1, 1L << 20, &a->have_patience),
        CLI_OPT_STR("test", &a->test),
        CLI_OPT_STR("test-images", &a->test_images),
        CLI_OPT_STR("out", &a->out),
        CLI_OPT_FLAG("resume", &a->resume),
        CLI_OPT_LONG("stop-after", &a->stop_after, 1, 1L << 20),
        CLI_OPT_CHOICE("precision", &precision, "fp32|bf16|auto"),
        CLI_OPT_STR("json", &a->json),
        CLI_OPT_STR("report", &a->report),
        /* shared flags that do not apply here: said so instead of ignored */
        CLI_OPT_FLAG("skip-bad", &skip_bad),
        CLI_OPT_STR("batch-size", &batch_size),
        CLI_OPT_END};
    const struct cli_spec spec = {
        .loads_model = 1, .cmd = cmd, .usage = usage, .opts = opts, .data = &a->data};
    const int parsed = cli_parse(&spec, argc, argv, NULL);
    if (parsed != CLI_GO_ON) return parsed;
    if (skip_bad)
        return cli_usage(cmd, "--skip-bad does not apply: every K-shot image must decode");
    if (batch_size)
        return cli_usage(cmd, "--batch-size does not apply: --batch B sets the images per "
                              "training step");
    if (a->peft_name && medvlm_peft_mode_from_name(a->peft_name, &a->po.mode))
        return cli_usage(cmd, "--peft: %s", medvlm_last_error());
    if (a->targets_name && medvlm_lora_targets_parse(a->targets_name, &a->po.lora_targets))
        return cli_usage(cmd, "--lora-targets: %s", medvlm_last_error());
    if (a->have_alpha && !(alpha > 0))
        return cli_usage(cmd, "--lora-alpha expects a number > 0, got %g", alpha);
    if (a->have_alpha) a->po.lora_alpha = (float)alpha;
    if (!(momentum < 1))
        return cli_usage(cmd, "--momentum expects a number in [0, 1), got %g", momentum);
    a->po.momentum = (float)momentum;
    static const enum medvlm_precision precisions[] = {MEDVLM_PRECISION_FP32, MEDVLM_PRECISION_BF16,
                                                       MEDVLM_PRECISION_AUTO};
    a->po.precision = precisions[precision];
    a->optimizer_name = optimizers[optimizer];
    a->po.optimizer = optimizer_of[optimizer];
    if (!a->model) return cli_usage(cmd, "--model DIR is required");
    if (!a->prompts) return cli_usage(cmd, "--prompts P.json is required (the head's classes)");
    if (!a->data.ds.labels_path) return cli_usage(cmd, "--labels TABLE is required");
    if (!a->shots) return cli_usage(cmd, "--shots K is required");
    if (!a->out) return cli_usage(cmd, "--out RUN_DIR is required");
    const struct cli_io io = {
        .in = {{"--labels", a->data.ds.labels_path},
               {"--test", a->test},
               {"--prompts", a->prompts}},
        .model = {{"--model", a->model}},
        .out = {{"--out", a->out}, {"--json", a->json}, {"--report", a->report}}};
    if (!cli_outputs_ok(cmd, &io)) return CLI_USAGE;
    if (a->po.mode != MEDVLM_PEFT_LORA && (a->targets_name || a->have_rank || a->have_alpha))
        return cli_usage(cmd, "%s goes with --peft lora, not --peft %s",
                         a->targets_name ? "--lora-targets"
                         : a->have_rank  ? "--rank"
                                         : "--lora-alpha",
                         medvlm_peft_mode_name(a->po.mode));
    if (a->have_patience && !a->val) return cli_usage(cmd, "--patience goes with --val K2");
    if (a->json && !a->test) return cli_usage(cmd, "--json writes the test metrics: give --test");
    if (a->report && !a->test)
        return cli_usage(cmd, "--report shows the test metrics: give --test");
    if (a->test_images && !a->test) return cli_usage(cmd, "--test-images goes with --test TABLE");
    if (a->shots + a->val > INT32_MAX / 2)
        return cli_usage(cmd, "--shots + --val is too large (%ld)", a->shots + a->val);
    if (a->po.optimizer == MEDVLM_OPTIMIZER_ADAMW && !a->have_wd) a->po.weight_decay = 0.01f;
    a->po.seed = (uint64_t)a->seed;
    return CLI_GO_ON;
}

/* ---- data: the K-shot subset (and validation) decoded and preprocessed once ---- */

struct split {
    int n;
    float *pixels; /* (n, 3, S, S) */
    int64_t *labels;
    char **names; /* borrowed from the dataset */
};

/* 1 loaded, 0 failed (the message, naming the image, in medvlm_last_error()). */
static int load_pixels(const struct ft_args *a, const struct medvlm_model *m,
                       const struct medvlm_dataset *d, const int *idx, int n, struct split *s)
{
    int H, W;
    const struct medvlm_preproc_config *pp = medvlm_model_preproc(m);
    if (medvlm_image_preprocess_fixed_size(pp, &a->data.pre, &H, &W)) return 0;
    size_t per = 3 * (size_t)H * W;
    s->n = n;
    s->pixels = mv_malloc((size_t)(n ? n : 1) * per * sizeof(float));
    s->labels = mv_malloc((size_t)(n ? n : 1) * sizeof(int64_t));
    s->names = mv_malloc((size_t)(n ? n : 1) * sizeof(char *));
    const char **paths = mv_malloc((size_t)(n ? n : 1) * sizeof(char *));
    if (!s->pixels || !s->labels || !s->names || !paths) {
        mv_free(paths);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        paths[i] = d->paths[idx[i]];
        s->labels[i] = d->labels[idx[i]];
        s->names[i] = d->names[idx[i]];
    }
    enum medvlm_status st = medvlm_image_preprocess_files(
        paths, n, NULL, pp, &a->data.pre, a->data.threads, s->pixels, (size_t)n * per, NULL);
    mv_free(paths);
    return st == MEDVLM_OK;
}

static void split_free(struct split *s)
{
    mv_free(s->pixels);
    mv_free(s->labels);
    mv_free(s->names);
    memset(s, 0, sizeof *s);
}

/* Every class needs --shots (+ --val) images: else one line naming the class, the table and
 * how many it has. */
static int enough_images(const struct ft_args *a, const struct medvlm_dataset *d)
{
    for (int c = 0; c < d->n_classes; c++) {
        int have = 0;
        for (int i = 0; i < d->n; i++) have += d->labels[i] == c;
        if (have >= a->shots + a->val) continue;
        if (a->val)
            fprintf(stderr,
                    "medvlm: class '%s' has %d image%s in %s, fewer than --shots %ld + --val "
                    "%ld = %ld\n",
                    d->classes[c], have, have == 1 ? "" : "s", a->data.ds.labels_path, a->shots,
                    a->val, a->shots + a->val);
        else
            fprintf(stderr, "medvlm: class '%s' has %d image%s in %s, fewer than --shots %ld\n",
                    d->classes[c], have, have == 1 ? "" : "s", a->data.ds.labels_path, a->shots);
        return 0;
    }
    return 1;
}

/* ---- progress ---- */

/* The bar of one epoch on a terminal; returns its width, for bar_clear. done0 epochs were
 * finished before this session (a resumed run): the ETA counts from there. */
static int bar(long epoch, long epochs, long done0, int done, int total, double loss, double t0)
{
    double el = mv_now() - t0;
    double frac = ((double)(epoch - 1 - done0) + (double)done / total) / (double)(epochs - done0);
    double eta = frac > 0 ? el / frac - el : 0;
    char b[21];
    int fill = (int)(20.0 * done / total);
    for (int i = 0; i < 20; i++) b[i] = i < fill ? '#' : '.';
    b[20] = 0;
    int w = fprintf(stderr, "\repoch %ld/%ld [%s] %d/%d loss %.4f ETA %dm%02ds ", epoch, epochs, b,
                    done, total, loss, (int)eta / 60, (int)eta % 60);
    fflush(stderr);
    return w > 0 ? w : 0;
}

static void bar_clear(int width)
{
    if (width > 0) fprintf(stderr, "\r%*s\r", width, "");
}

/* ---- the run ---- */

static int write_run_json(const struct ft_args *a, const struct medvlm_peft *p,
                          const struct cli_ft_progress *g, const struct cli_ft_setting *set,
                          const struct split *tr, const struct split *va,
                          const struct medvlm_metrics *met, char *const *classes, int K,
                          double seconds)
{
    const int n_train = tr->n, n_val = va->n;
    cJSON *o = cJSON_CreateObject(), *s = cJSON_AddObjectToObject(o, "settings");
    cJSON *ep = cJSON_AddArrayToObject(o, "epochs");
    for (int i = 0; i < CLI_FT_SETTINGS; i++) cJSON_AddStringToObject(s, set[i].flag, set[i].value);
    cJSON_AddStringToObject(o, "model", a->model);
    cJSON_AddStringToObject(o, "model_fingerprint", set[0].value);
    cJSON_AddStringToObject(o, "peft", medvlm_peft_mode_name(a->po.mode));
    cJSON_AddNumberToObject(o, "seed", (double)a->seed);
    cJSON_AddNumberToObject(o, "trainable_parameters", (double)medvlm_peft_trainable(p));
    cJSON_AddNumberToObject(o, "train_images", n_train);
    cJSON_AddNumberToObject(o, "val_images", n_val);
    cJSON_AddNumberToObject(o, "steps", (double)medvlm_peft_steps(p));
    cJSON_AddNumberToObject(o, "seconds", seconds);
    cJSON *cl = cJSON_AddArrayToObject(o, "classes");
    for (int k = 0; k < K; k++) cJSON_AddItemToArray(cl, cJSON_CreateString(classes[k]));
    /* the images trained on (`medvlm sample`'s for the same seed) and validated on */
    cJSON *tn = cJSON_AddArrayToObject(o, "train_image_names");
    for (int i = 0; i < n_train; i++) cJSON_AddItemToArray(tn, cJSON_CreateString(tr->names[i]));
    cJSON *vn = cJSON_AddArrayToObject(o, "val_image_names");
    for (int i = 0; i < n_val; i++) cJSON_AddItemToArray(vn, cJSON_CreateString(va->names[i]));
    for (long e = 0; e < g->epoch; e++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddNumberToObject(r, "epoch", (double)(e + 1));
        cJSON_AddNumberToObject(r, "loss", g->losses[e]);
        if (n_val) cJSON_AddNumberToObject(r, "val_loss", g->val_losses[e]);
        cJSON_AddItemToArray(ep, r);
    }
    if (n_val) cJSON_AddNumberToObject(o, "best_epoch", (double)g->best_epoch);
    if (met) {
        cJSON *t = cJSON_AddObjectToObject(o, "test");
        cJSON_AddStringToObject(t, "labels", a->test);
        cJSON_AddNumberToObject(t, "n", met->n_samples);
        cJSON_AddNumberToObject(t, "balanced_accuracy", met->balanced_accuracy);
        cJSON_AddNumberToObject(t, "accuracy", met->accuracy);
        cJSON_AddNumberToObject(t, "macro_f1", met->macro_f1);
        if (isnan(met->quadratic_kappa))
            cJSON_AddNullToObject(t, "quadratic_kappa");
        else
            cJSON_AddNumberToObject(t, "quadratic_kappa", met->quadratic_kappa);
        cJSON *rc = cJSON_AddArrayToObject(t, "per_class_recall");
        for (int k = 0; k < met->n_classes; k++)
            cJSON_AddItemToArray(rc, isnan(met->per_class_recall[k])
                                         ? cJSON_CreateNull()
                                         : cJSON_CreateNumber(met->per_class_recall[k]));
    }
    char *text = cJSON_Print(o), *path = mv_path_join(a->out, "run.json");
    int ok = 0;
    if (!text || !path)
        mv_err(MEDVLM_ERR_NOMEM, "run.json: out of memory");
    else
        ok = mv_write_file_atomic(path, text, strlen(text)) == MEDVLM_OK;
    cJSON_free(text);
    mv_free(path);
    cJSON_Delete(o);
    return ok;
}

/* Evaluate on the --test dataset d in chunks: the metrics, and the table printed as
 * `medvlm zeroshot` prints its own. 0 on failure (printed). */
static int evaluate(const struct ft_args *a, struct medvlm_peft *p, const struct medvlm_model *m,
                    const struct medvlm_dataset *d, char *const *classes, int K,
                    struct medvlm_evaluation *ev)
{
    struct split s = {0};
    float *logits = NULL;
    int *idx = NULL, ok = 0;
    const char *what = a->test;
    idx = mv_malloc((size_t)(d->n ? d->n : 1) * sizeof(int));
    logits = mv_malloc((size_t)(d->n ? d->n : 1) * K * sizeof(float));
    if (!idx || !logits) goto done;
    const int chunk = 256;
    for (int i0 = 0; i0 < d->n; i0 += chunk) {
        int n = MV_MIN(chunk, d->n - i0);
        for (int i = 0; i < n; i++) idx[i] = i0 + i;
        if (!load_pixels(a, m, d, idx, n, &s) ||
            medvlm_peft_logits(p, s.pixels, n, NULL, logits + (size_t)i0 * K, NULL))
            goto done;
        split_free(&s);
    }
    if (medvlm_evaluate(logits, d->labels, d->n, K, (const char *const *)classes, ev)) goto done;
    printf("fine-tuned (%s), %d test images of %s, %d classes\n", medvlm_peft_mode_name(a->po.mode),
           d->n, a->test, K);
    fputs(ev->table, stdout);
    what = a->json;
    if (medvlm_evaluation_save(ev, NULL, a->json, NULL)) goto done;
    ok = 1;
done:
    if (!ok) {
        /* the library's messages name the file; add ours only where they do not */
        const char *e = medvlm_last_error();
        if (what && e && strstr(e, what)) what = NULL;
        cli_fail(what);
    }
    split_free(&s);
    mv_free(idx);
    mv_free(logits);
    return ok;
}

/* --report: the test evaluation ev of dataset d (its images' thumbnails) and the loss per epoch.
 * 0 on failure (printed). */
static int write_report(const struct ft_args *a, const struct cli_ft_progress *g,
                        const struct medvlm_evaluation *ev, const struct medvlm_dataset *d)
{
    float *losses = mv_calloc((size_t)MV_MAX(g->epoch, 1), sizeof *losses);
    if (!losses) {
        fprintf(stderr, "medvlm: --report: out of memory\n");
        return 0;
    }
    for (long e = 0; e < g->epoch; e++) losses[e] = (float)g->losses[e];
    char summary[2400];
    snprintf(summary, sizeof summary, "fine-tuned (%s), %d test images of %s, %d classes",
             medvlm_peft_mode_name(a->po.mode), d->n, a->test, ev->k);
    struct medvlm_report rep = {
        .title = "medvlm finetune", .summary = summary, .losses = losses, .n_losses = g->epoch};
    const int ok = cli_write_report(a->report, &rep, ev, (const char *const *)d->names, NULL,
                                    (const char *const *)d->paths);
    mv_free(losses);
    return ok;
}

/* Train from epoch g->epoch + 1 to --epochs (or --stop-after, or an early stop), a checkpoint
 * after each epoch. 1 done (*stopped: 1 early stop, 2 --stop-after), 0 failed (printed). */
static int train(const struct ft_args *a, struct medvlm_peft *p, const struct split *tr,
                 const struct split *va, size_t per, struct cli_ft_progress *g,
                 const struct cli_ft_setting *set, const char *ck_path, int *stopped)
{
    const int B = a->po.max_batch, root = mv_dist_rank() == 0;
    const int tty = root && isatty(STDERR_FILENO);
    const long done0 = g->epoch;
    int *perm = mv_malloc((size_t)(tr->n ? tr->n : 1) * sizeof(int)), ok = 0, width = 0;
    float *batch = mv_malloc((size_t)B * per * sizeof(float)); /* (B, 3, S, S) */
    int64_t *blab = mv_malloc((size_t)B * sizeof(int64_t));
    const char *what = NULL;
    if (!perm || !batch || !blab) goto done;
    /* an early-stopped run stays stopped when resumed with the same --patience */
    *stopped = va->n && g->since_best >= a->patience;
    double t0 = mv_now();
    while (g->epoch < a->epochs && !*stopped) {
        long e = g->epoch + 1;
        for (int i = 0; i < tr->n; i++) perm[i] = i;
        mv_rng_shuffle(&g->rng, perm, tr->n);
        double sum = 0;
        int steps = (tr->n + B - 1) / B;
        for (int s = 0; s < steps; s++) {
            int nb = MV_MIN(B, tr->n - s * B);
            for (int j = 0; j < nb; j++) {
                int i = perm[s * B + j];
                memcpy(batch + (size_t)j * per, tr->pixels + (size_t)i * per, per * sizeof(float));
                blab[j] = tr->labels[i];
            }
            float loss;
            /* under mpirun each rank takes a slice of the batch (src/dist/finetune.c) */
            if (mv_dist_peft_step(p, batch, blab, nb, &loss)) goto done;
            sum += (double)loss * nb;
            if (tty) width = bar(e, a->epochs, done0, s + 1, steps, sum / (s * B + nb), t0);
        }
        g->losses[e - 1] = sum / tr->n;
        if (va->n) {
            /* rank 0's validation loss decides on every rank */
            float vl = 0;
            int ok_val = !root || !medvlm_peft_logits(p, va->pixels, va->n, va->labels, NULL, &vl);
            if (!ok_val) goto done;
            double vld = vl;
            mv_dist_bcast_double(&vld);
            vl = (float)vld;
            g->val_losses[e - 1] = vl;
            if (vl < g->best_val) {
                g->best_val = vl;
                g->best_epoch = e;
                g->since_best = 0;
                medvlm_peft_snapshot(p, g->best);
            } else if (++g->since_best >= a->patience) {
                *stopped = 1;
            }
        }
        g->epoch = e;
        if (tty) bar_clear(width);
        if (va->n && root)
            fprintf(stderr, "epoch %ld/%ld loss %.6f val_loss %.6f%s (%.1f s)\n", e, a->epochs,
                    g->losses[e - 1], g->val_losses[e - 1], g->best_epoch == e ? " best" : "",
                    mv_now() - t0);
        else if (root)
            fprintf(stderr, "epoch %ld/%ld loss %.6f (%.1f s)\n", e, a->epochs, g->losses[e - 1],
                    mv_now() - t0);
        /* every rank holds the same state: rank 0 alone writes it */
        if (root && !cli_ft_checkpoint_save(ck_path, p, g, set)) {
            what = ck_path;
            goto done;
        }
        if (a->stop_after && e >= a->stop_after && g->epoch < a->epochs && !*stopped) *stopped = 2;
    }
    ok = 1;
done:
    if (!ok) {
        if (tty) bar_clear(width);
        const char *e = medvlm_last_error();
        cli_fail(what && e && strstr(e, what) ? NULL : what);
    }
    mv_free(perm);
    mv_free(batch);
    mv_free(blab);
    return ok;
}

/* The prompts' class names as one "A,B,C" list: the default of --classes. */
static char *classes_csv(const struct medvlm_prompts *pr)
{
    size_t n = 1;
    for (int k = 0; k < pr->n_classes; k++) n += strlen(pr->classes[k]) + 1;
    char *s = mv_malloc(n);
    if (!s) return NULL;
    s[0] = 0;
    for (int k = 0; k < pr->n_classes; k++) {
        if (k) strcat(s, ",");
        strcat(s, pr->classes[k]);
    }
    return s;
}

/* The K-shot training images, then --val further ones per class, decoded: the first K of each
 * class in the sampler's order are exactly `medvlm sample --shots K`'s. 1, or 0 after a
 * message. */
static int draw_images(const struct ft_args *a, const struct medvlm_model *m,
                       const struct medvlm_dataset *d, struct split *tr, struct split *va)
{
    int *idx = NULL, n_idx = 0, ok = 0;
    if (medvlm_fewshot_sample(d->labels, d->n, d->n_classes, (int)(a->shots + a->val), a->seed, 0,
                              &idx, &n_idx))
        return cli_fail(a->data.ds.labels_path), 0;
    int *order = mv_malloc((size_t)(n_idx ? n_idx : 1) * sizeof(int));
    if (order) {
        /* idx is class by class, shots + val each: the first shots of a class train */
        int nt = 0, nv = 0, per = (int)(a->shots + a->val);
        for (int i = 0; i < n_idx; i++)
            if (i % per < a->shots) order[nt++] = idx[i];
        for (int i = 0; i < n_idx; i++)
            if (i % per >= a->shots) order[nt + nv++] = idx[i];
        ok = load_pixels(a, m, d, order, nt, tr) && load_pixels(a, m, d, order + nt, nv, va);
    }
    if (!ok) cli_fail(NULL);
    mv_free(order);
    medvlm_free(idx);
    return ok;
}

/* The fine-tuning state and its progress, fresh or from the checkpoint (--resume). 1, or 0
 * after a message. */
static int start(const struct ft_args *a, const struct medvlm_model *m, const float *protos, int K,
                 char *const *classes, const char *ck_path, int have_ck, struct medvlm_peft **p,
                 struct cli_ft_progress *g, struct cli_ft_setting *set)
{
    const int root = mv_dist_rank() == 0;
    if (medvlm_peft_init(m, &a->po, protos, K, p)) return cli_fail(NULL), 0;
    settings_of(a, medvlm_peft_options_of(*p), medvlm_model_fingerprint(m), classes, K, set);
    g->losses = mv_calloc((size_t)a->epochs, sizeof(double));
    g->val_losses = mv_calloc((size_t)a->epochs, sizeof(double));
    if (!g->losses || !g->val_losses) return cli_fail(NULL), 0;
    if (a->val) {
        g->nbest = medvlm_peft_snapshot_size(*p);
        if (!(g->best = mv_malloc(g->nbest * sizeof(float)))) return cli_fail(NULL), 0;
        medvlm_peft_snapshot(*p, g->best);
    }
    g->best_val = INFINITY;
    mv_rng_seed(&g->rng, (uint64_t)a->seed ^ 0x5eedf17e7u);
    if (a->resume && !have_ck && root)
        fprintf(stderr, "medvlm: --resume: no checkpoint %s yet: starting from the beginning\n",
                ck_path);
    if (a->resume && have_ck) {
        if (!cli_ft_checkpoint_load(ck_path, a->epochs, *p, g, set)) return 0;
        if (root)
            fprintf(stderr, "medvlm: resuming %s after epoch %ld of %ld\n", a->out, g->epoch,
                    a->epochs);
    }
    return 1;
}

/* After training (rank 0): what happened, the run folder, the test metrics, run.json and the
 * report. 1, or 0 after a message. */
static int finish(const struct ft_args *a, struct medvlm_peft *p, const struct medvlm_model *m,
                  const struct cli_ft_progress *g, const struct cli_ft_setting *set,
                  const struct split *tr, const struct split *va, const struct medvlm_dataset *d,
                  const struct medvlm_dataset *td, int stopped, double t_start,
                  struct medvlm_evaluation *ev)
{
    const int K = d->n_classes;
    if (stopped)
        fprintf(stderr,
                "medvlm: early stop after epoch %ld: no better validation loss for %ld epoch%s "
                "(best: epoch %ld)\n",
                g->epoch, a->patience, a->patience == 1 ? "" : "s", g->best_epoch);
    printf("trained %ld epoch%s, %ld steps: loss %.4f -> %.4f", g->epoch, g->epoch == 1 ? "" : "s",
           medvlm_peft_steps(p), g->losses[0], g->losses[g->epoch - 1]);
    if (va->n)
        printf(", best val_loss %.4f at epoch %ld (its parameters kept)", g->best_val,
               g->best_epoch);
    printf("\n");
    if (g->best && g->best_epoch > 0) medvlm_peft_restore(p, g->best);
    if (medvlm_peft_save_run(p, a->out, (const char *const *)d->classes)) return cli_fail(NULL), 0;
    if (td && !evaluate(a, p, m, td, d->classes, K, ev)) return 0;
    if (!write_run_json(a, p, g, set, tr, va, td ? &ev->metrics : NULL, d->classes, K,
                        mv_now() - t_start))
        return cli_fail(NULL), 0;
    if (a->report && !write_report(a, g, ev, td)) return 0;
    printf("wrote %s: %shead.safetensors, run.json (%.1f s)\n", a->out,
           a->po.mode == MEDVLM_PEFT_LORA   ? "adapter_model.safetensors, adapter_config.json, "
           : a->po.mode == MEDVLM_PEFT_HEAD ? ""
                                            : "trained_params.safetensors, ",
           mv_now() - t_start);
    return 1;
}

int cmd_finetune(int argc, char **argv)
{
    struct ft_args a = {0};
    if (argc < 2) return cli_usage("finetune", "no arguments");
    int rc = parse_args(argc, argv, &a);
    if (rc != CLI_GO_ON) return rc;
    if (a.data.threads) medvlm_set_threads(a.data.threads);
    struct medvlm_model *m = NULL;
    struct medvlm_tokenizer *tok = NULL;
    struct medvlm_prompts *pr = NULL;
    struct medvlm_dataset *d = NULL, *td = NULL;
    struct medvlm_peft *p = NULL;
    struct split tr = {0}, va = {0};
    struct cli_ft_progress g = {0};
    struct medvlm_evaluation ev = {0};
    struct cli_ft_setting set[CLI_FT_SETTINGS];
    float *protos = NULL;
    char *ck_path = mv_path_join(a.out, "checkpoint.safetensors"), *csv = NULL;
    int *map = NULL, stopped = 0;
    rc = CLI_FAIL;
    double t_start = mv_now();
    if (!ck_path) goto fail_msg;

    /* a run folder's checkpoint is never overwritten by a new run: --resume continues it */
    int have_ck = mv_is_file(ck_path);
    if (have_ck && !a.resume) {
        fprintf(stderr,
                "medvlm: --out %s already holds a run (%s): add --resume to continue it, or "
                "give another --out\n",
                a.out, ck_path);
        goto done;
    }
    if (medvlm_model_load(a.model, MEDVLM_LOAD_ALL | cli_load_flags, &m) ||
        medvlm_tokenizer_load(a.model, &tok) || medvlm_prompts_load(a.prompts, &pr))
        goto fail_msg;
    if (!a.data.ds.classes) {
        if (!(csv = classes_csv(pr))) goto fail_msg;
        a.data.ds.classes = csv;
    }
    if (medvlm_dataset_load(&a.data.ds, &d)) goto fail_msg;
    const int K = d->n_classes, D = medvlm_model_config(m)->projection_dim;
    if (a.test) { /* read (and every image checked) before training, not after */
        struct medvlm_dataset_options o = a.data.ds;
        o.labels_path = a.test;
        if (a.test_images) o.images_dir = a.test_images;
        o.class_names = (const char *const *)d->classes;
        o.n_class_names = K;
        o.classes = NULL;
        if (medvlm_dataset_load(&o, &td)) goto fail_msg;
    }
    /* the head's classes are the table's, each matched to its prompts by name */
    map = mv_calloc((size_t)K, sizeof *map);
    protos = mv_calloc((size_t)K * D, sizeof(float));
    if (!map || !protos) goto fail_msg;
    if (medvlm_prompts_class_map(pr, a.prompts, (const char *const *)d->classes, K,
                                 a.data.ds.labels_path, map))
        goto fail_msg;
    if (!enough_images(&a, d)) goto done;
    if (medvlm_prompts_prototypes(m, tok, pr, map, K, protos)) {
        cli_fail(a.prompts);
        goto done;
    }
    if (!draw_images(&a, m, d, &tr, &va)) goto done;
    const int root = mv_dist_rank() == 0; /* under mpirun, rank 0 writes and prints */
    if (root && mkdir(a.out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "medvlm: cannot create the run folder --out %s: %s\n", a.out,
                strerror(errno));
        goto done;
    }
    if (!start(&a, m, protos, K, d->classes, ck_path, have_ck, &p, &g, set)) goto done;
    if (root)
        printf("fine-tuning %s (%s, %s): %zu trainable parameters, %d training images, %d "
               "validation, %ld epochs of batch %d\n",
               a.model, medvlm_peft_mode_name(a.po.mode),
               medvlm_precision_name(medvlm_peft_options_of(p)->precision),
               medvlm_peft_trainable(p), tr.n, va.n, a.epochs, a.po.max_batch);
    fflush(stdout);
    int H, W;
    if (medvlm_image_preprocess_fixed_size(medvlm_model_preproc(m), &a.data.pre, &H, &W))
        goto fail_msg;
    if (!train(&a, p, &tr, &va, 3 * (size_t)H * W, &g, set, ck_path, &stopped)) goto done;
    if (root && stopped == 2)
        printf("stopped after epoch %ld of %ld (--stop-after): the checkpoint %s continues it "
               "with --resume\n",
               g.epoch, a.epochs, ck_path);
    /* the other ranks' part ends with the training */
    if (!root || stopped == 2 || finish(&a, p, m, &g, set, &tr, &va, d, td, stopped, t_start, &ev))
        rc = CLI_OK;
    goto done;
fail_msg:
    cli_fail(NULL);
done:
    medvlm_evaluation_free(&ev);
    medvlm_peft_free(p);
    split_free(&tr);
    split_free(&va);
    mv_free(g.losses);
    mv_free(g.val_losses);
    mv_free(g.best);
    mv_free(protos);
    mv_free(map);
    mv_free(ck_path);
    mv_free(csv);
    medvlm_dataset_free(td);
    medvlm_dataset_free(d);
    medvlm_prompts_free(pr);
    medvlm_tokenizer_free(tok);
    medvlm_model_free(m);
    return rc;
}

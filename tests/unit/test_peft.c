/* test_peft.c - properties of fine-tuning on small random models (the golden stages
 * peft_grads / peft_train check the numbers against PyTorch; the ops' finite-difference tests
 * check each backward):
 * - the training forward gives the inference encoder's embeddings bit for bit (where the
 *   packed kernel runs the products; within 1e-6 on OpenBLAS);
 * - LoRA with B = 0 (the start of a run) gives the base model's embeddings bit for bit, and
 *   a run applied unmerged equals it merged (within 1e-5) after training;
 * - lr = 0 leaves every trained value bit-identical;
 * - 1 thread == 2 threads, bit for bit, for every mode;
 * - a state saved after 2 steps and loaded into a fresh state continues to the same bits as
 *   4 uninterrupted steps;
 * - no allocation inside a step, counted (medvlm's allocator, and in builds without
 *   sanitizers every malloc of the process but the OpenMP runtime's team records);
 * - the whole model's gradients against central differences of the loss in float (coarse:
 *   wiring, not rounding);
 * - the trainable sets are the ones the issue and the golden README name;
 * - bad arguments are errors naming what was wrong. */
#include "check.h"
#include "model/model.h"
#include "peft/peft.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <unistd.h>

/* ---- counting every allocation of the process (not under the sanitizers, which own malloc).
 * The OpenMP runtime (libgomp) allocates a small team record when a parallel region has
 * another team size than the one before (a region whose if() clause is false runs as a team
 * of one): those are counted apart, by the caller's library. */
#if !defined(__SANITIZE_ADDRESS__)
#include <dlfcn.h>
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
static _Atomic unsigned long libc_allocs, gomp_allocs;
static _Thread_local int in_count;
static void count_caller(void *ret)
{
    if (in_count) return;
    in_count = 1;
    Dl_info info;
    if (dladdr(ret, &info) && info.dli_fname && strstr(info.dli_fname, "libgomp"))
        gomp_allocs++;
    else
        libc_allocs++;
    in_count = 0;
}
void *malloc(size_t n)
{
    count_caller(__builtin_return_address(0));
    return __libc_malloc(n);
}
void *calloc(size_t n, size_t s)
{
    count_caller(__builtin_return_address(0));
    return __libc_calloc(n, s);
}
void *realloc(void *p, size_t n)
{
    count_caller(__builtin_return_address(0));
    return __libc_realloc(p, n);
}
void *aligned_alloc(size_t a, size_t n)
{
    count_caller(__builtin_return_address(0));
    return __libc_memalign(a, n);
}
void *memalign(size_t a, size_t n)
{
    count_caller(__builtin_return_address(0));
    return __libc_memalign(a, n);
}
int posix_memalign(void **p, size_t a, size_t n)
{
    count_caller(__builtin_return_address(0));
    *p = __libc_memalign(a, n);
    return *p ? 0 : 12;
}
#define COUNT_LIBC 1
#else
static unsigned long libc_allocs, gomp_allocs;
#define COUNT_LIBC 0
#endif

static struct mv_rng rng;

static struct medvlm_model *make_model(int C, int I, int L, int NH, int S, int P, int act)
{
    struct medvlm_config cfg;
    medvlm_config_default(&cfg);
    cfg.projection_dim = 16;
    struct medvlm_tower_config *v = &cfg.vision, *t = &cfg.text;
    v->hidden_size = C, v->intermediate_size = I, v->num_hidden_layers = L;
    v->num_attention_heads = NH, v->hidden_act = (enum medvlm_act)act;
    v->image_size = S, v->patch_size = P;
    t->hidden_size = 16, t->intermediate_size = 32, t->num_hidden_layers = 1;
    t->num_attention_heads = 2, t->vocab_size = 64, t->max_position_embeddings = 8;
    struct medvlm_model *m = NULL;
    CHECK_OK(medvlm_model_init_random(&cfg, 11, &m));
    if (m) /* non-trivial LayerNorms and biases, so that every parameter matters */
        for (int i = 0; i < m->n_params; i++) {
            struct medvlm_param_info *p = &m->params[i];
            if (p->data && (strstr(p->name, "norm") || strstr(p->name, "bias")))
                for (size_t j = 0; j < p->numel; j++)
                    ((float *)p->data)[j] += 0.2f * mv_rng_normal(&rng);
        }
    return m;
}

static float *rand_buf(size_t n, float scale)
{
    float *p = mv_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = scale * mv_rng_normal(&rng);
    return p;
}

struct setup {
    struct medvlm_model *m;
    float *pixels, *protos;
    int64_t labels[8];
    int B, K, S, D;
};

static void setup_make(struct setup *s, int C, int I, int L, int NH, int S, int P, int act, int B)
{
    memset(s, 0, sizeof *s);
    s->m = make_model(C, I, L, NH, S, P, act);
    s->B = B;
    s->K = 3;
    s->S = S;
    s->D = 16;
    s->pixels = rand_buf((size_t)B * 3 * S * S, 1.0f);
    s->protos = rand_buf((size_t)s->K * s->D, 1.0f);
    for (int b = 0; b < B; b++) s->labels[b] = b % s->K;
}

static void setup_free(struct setup *s)
{
    medvlm_model_free(s->m);
    mv_free(s->pixels);
    mv_free(s->protos);
}

/* The precision of every state make_state makes (the property tests run at both). */
static enum medvlm_precision precision = MEDVLM_PRECISION_FP32;

static struct medvlm_peft *make_state(const struct setup *s, enum medvlm_peft_mode mode, float lr,
                                      unsigned targets)
{
    struct medvlm_peft_options o;
    medvlm_peft_options_default(&o);
    o.precision = precision;
    o.mode = mode;
    o.lr = lr;
    o.max_batch = s->B;
    o.seed = 3;
    if (targets) o.lora_targets = targets;
    struct medvlm_peft *p = NULL;
    CHECK_OK(medvlm_peft_init(s->m, &o, s->protos, s->K, &p));
    return p;
}

/* Every trained value of p, copied (caller frees). */
static float *snapshot(const struct medvlm_peft *p)
{
    float *b = mv_malloc(medvlm_peft_snapshot_size(p) * sizeof(float) + 1);
    medvlm_peft_snapshot(p, b);
    return b;
}

static int same_bits(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof(float)) == 0;
}

static const enum medvlm_peft_mode all_modes[] = {MEDVLM_PEFT_HEAD,   MEDVLM_PEFT_LN,
                                                  MEDVLM_PEFT_LN_ALL, MEDVLM_PEFT_BIAS,
                                                  MEDVLM_PEFT_LORA,   MEDVLM_PEFT_FULL};

static void test_forward_equals_inference(const struct setup *s)
{
    struct medvlm_peft *p = make_state(s, MEDVLM_PEFT_LORA, 1e-3f, 63);
    struct medvlm_encoder *enc = NULL;
    float *e = mv_malloc((size_t)s->B * s->D * sizeof(float));
    CHECK_OK(medvlm_encoder_init(s->m, s->B, &enc));
    CHECK_OK(medvlm_encode_images(enc, s->pixels, s->B, e));
    CHECK_OK(medvlm_peft_backward(p, s->pixels, s->labels, s->B, NULL));
    /* the inference pass runs the last layer's MLP on the class tokens' rows only, with the
     * kernels of the whole product: the same bits where those compute every row alike (the
     * packed kernel); OpenBLAS's edge tiles round differently (see test_encoder.c) */
    if (mv_gemm_packed_on())
        CHECK(same_bits(p->ws.saved.feats, e, (size_t)s->B * s->D),
              "the training forward (LoRA, B = 0) differs from the inference encoder");
    else {
        float worst = 0;
        for (size_t i = 0; i < (size_t)s->B * s->D; i++)
            worst = fmaxf(worst, fabsf(p->ws.saved.feats[i] - e[i]));
        CHECK(worst <= 1e-6f, "the training forward (LoRA, B = 0) is %g off the inference encoder",
              (double)worst);
    }
    medvlm_encoder_free(enc);
    mv_free(e);
    medvlm_peft_free(p);
}

/* Save a run of p in a fresh temporary folder; returns the folder (caller frees). */
static char *save_run(const struct medvlm_peft *p)
{
    char tmpl[] = "/tmp/medvlm-test-peft-XXXXXX";
    char *dir = mkdtemp(tmpl) ? mv_strdup(tmpl) : NULL;
    CHECK(dir != NULL, "mkdtemp");
    if (dir) CHECK_OK(medvlm_peft_save_run(p, dir, NULL));
    return dir;
}

static void remove_run(char *dir)
{
    const char *files[] = {"adapter_model.safetensors", "adapter_config.json",
                           "trained_params.safetensors", "head.safetensors"};
    for (size_t i = 0; dir && i < MV_ARRAY_LEN(files); i++) {
        char *f = mv_path_join(dir, files[i]);
        unlink(f);
        mv_free(f);
    }
    if (dir) rmdir(dir);
    mv_free(dir);
}

static void encode(const struct medvlm_model *m, const struct setup *s, float *e)
{
    struct medvlm_encoder *enc = NULL;
    CHECK_OK(medvlm_encoder_init(m, s->B, &enc));
    CHECK_OK(medvlm_encode_images(enc, s->pixels, s->B, e));
    medvlm_encoder_free(enc);
}

static void test_lora_runs(const struct setup *s)
{
    const size_t n = (size_t)s->B * s->D;
    float *base = mv_malloc(n * sizeof(float)), *e1 = mv_malloc(n * sizeof(float));
    float *e2 = mv_malloc(n * sizeof(float));
    encode(s->m, s, base);
    /* B = 0: the untrained run gives the base's bits, unmerged and merged */
    struct medvlm_peft *p = make_state(s, MEDVLM_PEFT_LORA, 1e-2f, 63);
    char *dir = save_run(p);
    struct medvlm_model *un = NULL, *mg = NULL;
    CHECK_OK(medvlm_model_apply_run(s->m, dir, 0, &un));
    CHECK_OK(medvlm_model_apply_run(s->m, dir, 1, &mg));
    if (un && mg) {
        encode(un, s, e1);
        CHECK(same_bits(e1, base, n), "LoRA with B = 0 (unmerged) differs from the base model");
        encode(mg, s, e2);
        CHECK(same_bits(e2, base, n), "LoRA with B = 0 (merged) differs from the base model");
    }
    medvlm_model_free(un);
    medvlm_model_free(mg);
    remove_run(dir);
    /* trained: merged == unmerged within 1e-5, and both differ from the base */
    for (int t = 0; t < 5; t++) CHECK_OK(medvlm_peft_step(p, s->pixels, s->labels, s->B, NULL));
    dir = save_run(p);
    un = mg = NULL;
    CHECK_OK(medvlm_model_apply_run(s->m, dir, 0, &un));
    CHECK_OK(medvlm_model_apply_run(s->m, dir, 1, &mg));
    if (un && mg) {
        encode(un, s, e1);
        encode(mg, s, e2);
        check_close_f32("LoRA merged vs unmerged", e2, e1, n, 1e-5, 0);
        double diff = 0;
        for (size_t i = 0; i < n; i++) diff = fmax(diff, fabs((double)e1[i] - base[i]));
        CHECK(diff > 1e-4, "five LoRA steps at lr 1e-2 changed the embeddings by only %g", diff);
        /* the training forward of the trained state is the unmerged model's inference */
        CHECK_OK(medvlm_peft_logits(p, s->pixels, s->B, NULL, NULL, NULL));
        check_close_f32("training forward vs unmerged run", p->ws.saved.feats, e1, n, 1e-6, 0);
        CHECK(strcmp(medvlm_model_fingerprint(un), medvlm_model_fingerprint(s->m)) != 0,
              "a fine-tuned model keeps the base's fingerprint");
        char fp[17];
        CHECK_OK(medvlm_run_fingerprint(dir, fp));
        CHECK(strcmp(fp, medvlm_model_fingerprint(un)) == 0,
              "medvlm_run_fingerprint %s differs from the applied run's %s", fp,
              medvlm_model_fingerprint(un));
    }
    medvlm_model_free(un);
    medvlm_model_free(mg);
    remove_run(dir);
    medvlm_peft_free(p);
    mv_free(base);
    mv_free(e1);
    mv_free(e2);
}

/* ln / bias / full runs: the applied run's embeddings are the training forward's. */
static void test_other_runs(const struct setup *s)
{
    const enum medvlm_peft_mode modes[] = {MEDVLM_PEFT_LN, MEDVLM_PEFT_BIAS, MEDVLM_PEFT_FULL};
    const size_t n = (size_t)s->B * s->D;
    float *e = mv_malloc(n * sizeof(float));
    for (size_t i = 0; i < MV_ARRAY_LEN(modes); i++) {
        struct medvlm_peft *p = make_state(s, modes[i], 1e-2f, 0);
        for (int t = 0; t < 3; t++) CHECK_OK(medvlm_peft_step(p, s->pixels, s->labels, s->B, NULL));
        char *dir = save_run(p);
        struct medvlm_model *m = NULL;
        CHECK_OK(medvlm_model_apply_run(s->m, dir, 0, &m));
        if (m) {
            encode(m, s, e);
            CHECK_OK(medvlm_peft_logits(p, s->pixels, s->B, NULL, NULL, NULL));
            char name[64];
            snprintf(name, sizeof name, "%s run applied vs training forward",
                     medvlm_peft_mode_name(modes[i]));
            check_close_f32(name, e, p->ws.saved.feats, n, 1e-6, 0);
        }
        medvlm_model_free(m);
        remove_run(dir);
        medvlm_peft_free(p);
    }
    mv_free(e);
}

static void test_lr_zero(const struct setup *s)
{
    for (size_t i = 0; i < MV_ARRAY_LEN(all_modes); i++) {
        struct medvlm_peft *p = make_state(s, all_modes[i], 0.0f, 0);
        if (!p) continue;
        float *before = snapshot(p);
        for (int t = 0; t < 3; t++) CHECK_OK(medvlm_peft_step(p, s->pixels, s->labels, s->B, NULL));
        float *after = snapshot(p);
        CHECK(same_bits(before, after, medvlm_peft_snapshot_size(p)),
              "%s: lr = 0 changed a parameter", medvlm_peft_mode_name(all_modes[i]));
        mv_free(before);
        mv_free(after);
        medvlm_peft_free(p);
    }
}

static void test_threads(const struct setup *s)
{
    for (size_t i = 0; i < MV_ARRAY_LEN(all_modes); i++) {
        float *res[2] = {NULL, NULL};
        float loss[2] = {0, 0};
        size_t n = 0;
        for (int nt = 1; nt <= 2; nt++) {
            omp_set_num_threads(nt);
            struct medvlm_peft *p = make_state(s, all_modes[i], 1e-2f, 0);
            if (!p) continue;
            for (int t = 0; t < 3; t++)
                CHECK_OK(medvlm_peft_step(p, s->pixels, s->labels, s->B, &loss[nt - 1]));
            res[nt - 1] = snapshot(p);
            n = medvlm_peft_snapshot_size(p);
            medvlm_peft_free(p);
        }
        if (res[0] && res[1])
            CHECK(same_bits(res[0], res[1], n) && loss[0] == loss[1],
                  "%s: 1 thread and 2 threads differ", medvlm_peft_mode_name(all_modes[i]));
        mv_free(res[0]);
        mv_free(res[1]);
    }
    omp_set_num_threads(2);
}

static void test_resume(const struct setup *s)
{
    const enum medvlm_optimizer opts[] = {MEDVLM_OPTIMIZER_ADAM, MEDVLM_OPTIMIZER_ADAMW,
                                          MEDVLM_OPTIMIZER_SGD};
    /* lora with each optimiser, and full (whose trained weights a bf16 state converts again
     * when the state is loaded) */
    for (size_t k = 0; k <= MV_ARRAY_LEN(opts); k++) {
        struct medvlm_peft_options o;
        medvlm_peft_options_default(&o);
        o.mode = k < MV_ARRAY_LEN(opts) ? MEDVLM_PEFT_LORA : MEDVLM_PEFT_FULL;
        o.lr = 1e-2f;
        o.optimizer = opts[k % MV_ARRAY_LEN(opts)]; /* full runs with Adam */
        o.max_batch = s->B;
        o.precision = precision;
        struct medvlm_peft *a = NULL, *b = NULL, *c = NULL;
        CHECK_OK(medvlm_peft_init(s->m, &o, s->protos, s->K, &a));
        CHECK_OK(medvlm_peft_init(s->m, &o, s->protos, s->K, &b));
        CHECK_OK(medvlm_peft_init(s->m, &o, s->protos, s->K, &c));
        if (!a || !b || !c) goto next;
        for (int t = 0; t < 4; t++) CHECK_OK(medvlm_peft_step(a, s->pixels, s->labels, s->B, NULL));
        for (int t = 0; t < 2; t++) CHECK_OK(medvlm_peft_step(b, s->pixels, s->labels, s->B, NULL));
        struct medvlm_st_writer *w = NULL;
        struct medvlm_st *st = NULL;
        char path[] = "/tmp/medvlm-test-ckpt-XXXXXX";
        int fd = mkstemp(path);
        CHECK(fd >= 0, "mkstemp");
        close(fd);
        CHECK_OK(medvlm_st_writer_init(&w));
        CHECK_OK(medvlm_peft_state_add(b, w));
        CHECK_OK(medvlm_st_writer_save(w, path));
        CHECK_OK(medvlm_st_open(path, &st));
        if (st) CHECK_OK(medvlm_peft_state_load(c, st));
        CHECK(medvlm_peft_steps(c) == 2, "the loaded state has %ld steps", medvlm_peft_steps(c));
        for (int t = 0; t < 2; t++) CHECK_OK(medvlm_peft_step(c, s->pixels, s->labels, s->B, NULL));
        float *x = snapshot(a), *y = snapshot(c);
        CHECK(same_bits(x, y, medvlm_peft_snapshot_size(a)),
              "%s, optimizer %d, %s: 2 steps + save + load + 2 steps differ from 4 steps",
              medvlm_peft_mode_name(o.mode), (int)o.optimizer, medvlm_precision_name(precision));
        mv_free(x);
        mv_free(y);
        /* a state of another mode is refused before anything is overwritten (a lora
         * checkpoint: an ln state's tensors are not in it) */
        struct medvlm_peft *d =
            o.mode == MEDVLM_PEFT_LORA ? make_state(s, MEDVLM_PEFT_LN, 1e-2f, 0) : NULL;
        if (d && st) {
            float *before = snapshot(d);
            CHECK_ERR(medvlm_peft_state_load(d, st), MEDVLM_ERR_MISSING, "another fine-tuning");
            float *after = snapshot(d);
            CHECK(same_bits(before, after, medvlm_peft_snapshot_size(d)),
                  "a refused checkpoint changed the state");
            mv_free(before);
            mv_free(after);
        }
        medvlm_peft_free(d);
        medvlm_st_free(st);
        medvlm_st_writer_free(w);
        unlink(path);
    next:
        medvlm_peft_free(a);
        medvlm_peft_free(b);
        medvlm_peft_free(c);
    }
}

static void test_no_alloc(const struct setup *s)
{
    for (size_t i = 0; i < MV_ARRAY_LEN(all_modes); i++) {
        struct medvlm_peft *p = make_state(s, all_modes[i], 1e-3f, 0);
        if (!p) continue;
        CHECK_OK(medvlm_peft_step(p, s->pixels, s->labels, s->B, NULL)); /* warm-up */
        unsigned long a0 = mv_alloc_count(), l0 = libc_allocs, g0 = gomp_allocs;
        for (int t = 0; t < 3; t++) CHECK_OK(medvlm_peft_step(p, s->pixels, s->labels, s->B, NULL));
        CHECK_OK(medvlm_peft_logits(p, s->pixels, s->B, s->labels, NULL, NULL));
        unsigned long a1 = mv_alloc_count(), l1 = libc_allocs, g1 = gomp_allocs;
        CHECK(a1 == a0, "%s: %lu medvlm allocations in 3 steps",
              medvlm_peft_mode_name(all_modes[i]), a1 - a0);
        CHECK(l1 == l0, "%s: %lu allocations of the process (OpenBLAS, libc, medvlm) in 3 steps",
              medvlm_peft_mode_name(all_modes[i]), l1 - l0);
        if (i == 0 && COUNT_LIBC)
            printf("note: %lu OpenMP team records allocated by libgomp in 3 steps (%s)\n", g1 - g0,
                   medvlm_peft_mode_name(all_modes[i]));
        medvlm_peft_free(p);
    }
    if (!COUNT_LIBC) printf("note: sanitizer build: only medvlm's allocator is counted\n");
}

/* Central differences of the loss in float for a few elements of every trained tensor: the
 * whole chain (head, l2-normalisation, projection, post-LN, layers, pre-LN, embeddings) wired
 * right. Coarse tolerances: float forward, h = 1e-2 on values of order 1. */
static void test_whole_gradient(const struct setup *s)
{
    struct medvlm_peft *p = make_state(s, MEDVLM_PEFT_FULL, 0.0f, 0);
    struct medvlm_peft *q = make_state(s, MEDVLM_PEFT_LORA, 0.0f, 63);
    struct medvlm_peft *states[2] = {p, q};
    for (int si = 0; si < 2; si++) {
        struct medvlm_peft *st = states[si];
        if (!st) continue;
        if (si == 1) /* non-zero B so that A has a gradient */
            for (int i = 0; i < medvlm_peft_tensor_count(st); i++) {
                struct medvlm_peft_tensor t;
                medvlm_peft_tensor_at(st, i, &t);
                if (strstr(t.name, "lora_B"))
                    for (size_t j = 0; j < t.numel; j++) t.data[j] = 0.3f * mv_rng_normal(&rng);
            }
        CHECK_OK(medvlm_peft_backward(st, s->pixels, s->labels, s->B, NULL));
        int bad = 0, checked = 0;
        for (int i = 0; i < medvlm_peft_tensor_count(st); i++) {
            struct medvlm_peft_tensor t;
            medvlm_peft_tensor_at(st, i, &t);
            float *g = mv_malloc(t.numel * sizeof(float));
            memcpy(g, t.grad, t.numel * sizeof(float));
            for (int k = 0; k < 3; k++) {
                size_t j = (size_t)mv_rng_below(&rng, t.numel);
                const float x = t.data[j], h = 1e-2f;
                float lp, lm;
                t.data[j] = x + h;
                medvlm_peft_logits(st, s->pixels, s->B, s->labels, NULL, &lp);
                t.data[j] = x - h;
                medvlm_peft_logits(st, s->pixels, s->B, s->labels, NULL, &lm);
                t.data[j] = x;
                double fd = ((double)lp - lm) / (2.0 * h);
                checked++;
                if (fabs(fd - g[j]) > 2e-3 + 0.05 * fabs(fd)) {
                    bad++;
                    fprintf(stderr, "  %s[%zu]: analytic %.6g, central difference %.6g\n", t.name,
                            j, (double)g[j], fd);
                }
            }
            mv_free(g);
        }
        CHECK(bad == 0, "%s: %d of %d gradients disagree with central differences",
              si ? "lora" : "full", bad, checked);
    }
    medvlm_peft_free(p);
    medvlm_peft_free(q);
}

static int count_named(const struct medvlm_peft *p, const char *needle)
{
    int n = 0;
    for (int i = 0; i < medvlm_peft_tensor_count(p); i++) {
        struct medvlm_peft_tensor t;
        medvlm_peft_tensor_at(p, i, &t);
        n += strstr(t.name, needle) != NULL;
    }
    return n;
}

static void test_sets(const struct setup *s)
{
    const int L = s->m->vision.cfg.num_hidden_layers;
    struct medvlm_peft *p;
    p = make_state(s, MEDVLM_PEFT_HEAD, 1e-3f, 0);
    CHECK(p && medvlm_peft_tensor_count(p) == 1, "head: only the prototypes");
    medvlm_peft_free(p);
    p = make_state(s, MEDVLM_PEFT_LN, 1e-3f, 0);
    CHECK(p && medvlm_peft_tensor_count(p) == 4 * L + 1 && count_named(p, "layer_norm") == 4 * L &&
              count_named(p, "layrnorm") == 0 && count_named(p, "post_layernorm") == 0,
          "ln: layer_norm1/2 weight and bias of every layer, and the head");
    medvlm_peft_free(p);
    p = make_state(s, MEDVLM_PEFT_LN_ALL, 1e-3f, 0);
    CHECK(p && medvlm_peft_tensor_count(p) == 4 * L + 5, "ln-all: adds pre and post LayerNorm");
    medvlm_peft_free(p);
    p = make_state(s, MEDVLM_PEFT_BIAS, 1e-3f, 0);
    /* per layer: q k v out fc1 fc2 + 2 LayerNorm biases; pre and post LN biases */
    CHECK(p && medvlm_peft_tensor_count(p) == 8 * L + 3 && count_named(p, "text_model") == 0,
          "bias: every vision bias");
    medvlm_peft_free(p);
    p = make_state(s, MEDVLM_PEFT_LORA, 1e-3f, 0);
    CHECK(p && medvlm_peft_tensor_count(p) == 6 * L + 1 && count_named(p, "q_proj.lora_A") == L,
          "lora: A and B on q, k, v by default");
    if (p) { /* B = 0, A inside torch's default bound 1/sqrt(in) */
        struct medvlm_peft_tensor t;
        medvlm_peft_tensor_at(p,
                              medvlm_peft_tensor_find(p, "vision_model.encoder.layers.0."
                                                         "self_attn.q_proj.lora_B.weight"),
                              &t);
        int zero = 1;
        for (size_t j = 0; j < t.numel; j++) zero &= t.data[j] == 0.0f;
        CHECK(zero, "LoRA B starts at 0");
        medvlm_peft_tensor_at(p,
                              medvlm_peft_tensor_find(p, "vision_model.encoder.layers.0."
                                                         "self_attn.q_proj.lora_A.weight"),
                              &t);
        double bound = 1.0 / sqrt((double)t.shape[1]), mx = 0;
        for (size_t j = 0; j < t.numel; j++) mx = fmax(mx, fabs(t.data[j]));
        CHECK(mx <= bound && mx > 0.5 * bound, "LoRA A within U(-%g, %g): max %g", bound, bound,
              mx);
    }
    medvlm_peft_free(p);
    p = make_state(s, MEDVLM_PEFT_LORA, 1e-3f, MEDVLM_LORA_O | MEDVLM_LORA_FC2);
    CHECK(p && count_named(p, "out_proj.lora") == 2 * L &&
              count_named(p, "mlp.fc2.lora") == 2 * L && count_named(p, "q_proj") == 0,
          "lora targets o, fc2");
    medvlm_peft_free(p);
}

static void test_errors(const struct setup *s)
{
    struct medvlm_peft_options o;
    struct medvlm_peft *p = NULL;
    medvlm_peft_options_default(&o);
    o.lora_rank = 0;
    CHECK_ERR(medvlm_peft_init(s->m, &o, s->protos, s->K, &p), MEDVLM_ERR_ARG, "LoRA rank 0");
    medvlm_peft_options_default(&o);
    CHECK_ERR(medvlm_peft_init(s->m, &o, s->protos, 1, &p), MEDVLM_ERR_ARG, "1 classes");
    enum medvlm_peft_mode mode;
    CHECK_ERR(medvlm_peft_mode_from_name("lorra", &mode), MEDVLM_ERR_ARG, "head, ln, ln-all");
    unsigned t;
    CHECK_ERR(medvlm_lora_targets_parse("q,x", &t), MEDVLM_ERR_ARG, "\"x\"");
    CHECK_OK(medvlm_lora_targets_parse("q_proj,v,fc1", &t));
    CHECK(t == (MEDVLM_LORA_Q | MEDVLM_LORA_V | MEDVLM_LORA_FC1), "targets parsed: 0x%x", t);
    p = make_state(s, MEDVLM_PEFT_BIAS, 1e-3f, 0);
    if (p) {
        int64_t bad[8] = {0, 1, 7};
        CHECK_ERR(medvlm_peft_step(p, s->pixels, bad, s->B, NULL), MEDVLM_ERR_ARG, "label 7");
        CHECK_ERR(medvlm_peft_step(p, s->pixels, s->labels, s->B + 1, NULL), MEDVLM_ERR_ARG,
                  "expected 1..");
    }
    medvlm_peft_free(p);
    struct medvlm_model *m = NULL;
    CHECK_ERR(medvlm_model_apply_run(s->m, "/nonexistent-run", 0, &m), MEDVLM_ERR_IO,
              "/nonexistent-run");
}

static double cosine(const float *a, const float *b, size_t n)
{
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return aa == 0 && bb == 0 ? 1.0 : ab / sqrt(aa * bb + 1e-300);
}

/* Does every linear view of p's training tower multiply by bf16 panels of its current
 * weight: W for the forward, and W^T for the input gradient in the layers the backward visits
 * (all: 1), or by none (0)? -1: some do, one lacks W^T where the backward needs it, or a panel
 * is not the conversion of the weight the view holds. */
static int views_bf16(const struct medvlm_peft *p)
{
    const struct medvlm_tower_config *c = &p->tower.cfg;
    int with = 0, total = 0, stale = 0;
    for (int l = 0; l < c->num_hidden_layers; l++)
        for (int i = 0; i < MV_LAYER_LINEARS; i++) {
            int O, I;
            struct mv_linear *lin = mv_layer_linear(&p->tower.layers[l], i, c->hidden_size,
                                                    c->intermediate_size, &O, &I);
            const int backward = p->encoder_trained && l >= p->stop_layer;
            total++;
            if (!lin->w_bf16 && !lin->w_bf16t) continue;
            with++;
            struct mv_bf16_weight a, b;
            CHECK_OK(mv_bf16_weight_pack(&a, lin->w, O, I));
            CHECK_OK(mv_bf16_weight_pack_trans(&b, lin->w, I, O));
            stale += !lin->w_bf16 || !lin->w_bf16t != !backward ||
                     memcmp(a.data, lin->w_bf16->data, (size_t)a.panels * 32 * a.K2 * 4) ||
                     (lin->w_bf16t &&
                      memcmp(b.data, lin->w_bf16t->data, (size_t)b.panels * 32 * b.K2 * 4));
            mv_bf16_weight_free(&a);
            mv_bf16_weight_free(&b);
        }
    return stale ? -1 : with == total ? 1 : with == 0 ? 0 : -1;
}

/* bf16 precision against fp32, for every mode: the bf16 state multiplies by bf16 panels of
 * every weight (W^T only where the backward goes; kept equal to the fp32 master weights
 * through updates and a restore in full mode) and the fp32 state by none; the loss, the gradients
 * and the parameters after 3 steps are within bf16's error of fp32's (not their bits: the bf16
 * products did run). */
static void test_bf16(const struct setup *s)
{
    for (size_t i = 0; i < MV_ARRAY_LEN(all_modes); i++) {
        const char *mode = medvlm_peft_mode_name(all_modes[i]);
        struct medvlm_peft *p[2];
        float loss[2] = {0, 0}, *g[2], *x[2], *start = NULL;
        for (int b = 0; b < 2; b++) {
            precision = b ? MEDVLM_PRECISION_BF16 : MEDVLM_PRECISION_FP32;
            p[b] = make_state(s, all_modes[i], 1e-2f, 0);
        }
        precision = MEDVLM_PRECISION_FP32;
        if (!p[0] || !p[1]) goto next;
        const size_t n = medvlm_peft_snapshot_size(p[0]);
        CHECK(medvlm_peft_options_of(p[1])->precision == MEDVLM_PRECISION_BF16 &&
                  medvlm_peft_options_of(p[0])->precision == MEDVLM_PRECISION_FP32,
              "%s: the states' precision", mode);
        CHECK(views_bf16(p[0]) == 0, "%s: an fp32 state multiplies by bf16 panels", mode);
        CHECK(views_bf16(p[1]) == 1, "%s: a bf16 state's views lack their bf16 panels", mode);
        start = snapshot(p[1]);
        for (int b = 0; b < 2; b++) {
            CHECK_OK(medvlm_peft_backward(p[b], s->pixels, s->labels, s->B, &loss[b]));
            g[b] = mv_malloc(n * sizeof(float));
            memcpy(g[b], p[b]->grads, n * sizeof(float));
        }
        double cg = cosine(g[0], g[1], n);
        CHECK(fabsf(loss[1] - loss[0]) <= 2e-3f * fabsf(loss[0]) + 1e-4f && cg >= 0.999,
              "%s: bf16 loss %.7g vs fp32 %.7g, gradient cosine %.6f (expected >= 0.999)", mode,
              (double)loss[1], (double)loss[0], cg);
        CHECK(!same_bits(g[0], g[1], n), "%s: bf16 gradients are fp32's bits", mode);
        for (int b = 0; b < 2; b++) {
            mv_peft_update(p[b]);
            for (int t = 0; t < 2; t++)
                CHECK_OK(medvlm_peft_step(p[b], s->pixels, s->labels, s->B, NULL));
            x[b] = snapshot(p[b]);
        }
        /* what 3 steps moved, bf16 against fp32 */
        for (size_t k = 0; k < n; k++) x[0][k] -= start[k], x[1][k] -= start[k];
        double cx = cosine(x[0], x[1], n);
        CHECK(cx >= 0.99, "%s: the parameters' change in 3 steps, bf16 vs fp32: cosine %.6f", mode,
              cx);
        CHECK(views_bf16(p[1]) == 1, "%s: after 3 steps the bf16 panels are not the weights'",
              mode);
        medvlm_peft_restore(p[1], start);
        CHECK(views_bf16(p[1]) == 1, "%s: after a restore the bf16 panels are not the weights'",
              mode);
        if (getenv("MEDVLM_TEST_VERBOSE"))
            printf("bf16 %s: loss %.7g vs %.7g, gradient cosine %.7f, 3-step change cosine %.7f\n",
                   mode, (double)loss[1], (double)loss[0], cg, cx);
        for (int b = 0; b < 2; b++) mv_free(g[b]), mv_free(x[b]);
    next:
        mv_free(start);
        for (int b = 0; b < 2; b++) medvlm_peft_free(p[b]);
    }
}

/* A model prepared for inference (fp32 panels, or bf16) trains as the plain model does at
 * fp32 precision, bit for bit: the state reads neither copy where it would be stale. Run
 * last: it prepares the setup's model. */
static void test_prepared_model(const struct setup *s, enum medvlm_precision inference)
{
    const enum medvlm_peft_mode modes[] = {MEDVLM_PEFT_FULL, MEDVLM_PEFT_LORA};
    float *before[2] = {NULL, NULL}, *after = NULL;
    size_t n[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        struct medvlm_peft *p = make_state(s, modes[i], 1e-2f, 0);
        for (int t = 0; p && t < 3; t++)
            CHECK_OK(medvlm_peft_step(p, s->pixels, s->labels, s->B, NULL));
        if (p) before[i] = snapshot(p), n[i] = medvlm_peft_snapshot_size(p);
        medvlm_peft_free(p);
    }
    CHECK_OK(medvlm_model_prepare(s->m, inference));
    for (int i = 0; i < 2; i++) {
        struct medvlm_peft *p = make_state(s, modes[i], 1e-2f, 0);
        if (!p) continue;
        for (int t = 0; t < 3; t++) CHECK_OK(medvlm_peft_step(p, s->pixels, s->labels, s->B, NULL));
        after = snapshot(p);
        CHECK(before[i] && same_bits(before[i], after, n[i]),
              "%s on a model prepared for %s inference: not the plain model's bits",
              medvlm_peft_mode_name(modes[i]), medvlm_precision_name(inference));
        mv_free(after);
        mv_free(before[i]);
        medvlm_peft_free(p);
    }
}

int main(void)
{
    mv_rng_seed(&rng, 1234);
    omp_set_num_threads(2);
    /* two shapes: a quick_gelu one and a gelu one with an odd patch grid and heads */
    struct setup a, b;
    setup_make(&a, 32, 64, 2, 4, 32, 8, MEDVLM_ACT_QUICK_GELU, 4);
    setup_make(&b, 24, 40, 3, 3, 20, 5, MEDVLM_ACT_GELU, 5);
    struct setup *all[2] = {&a, &b};
    for (int i = 0; i < 2; i++) {
        if (!all[i]->m) continue;
        test_forward_equals_inference(all[i]);
        test_lora_runs(all[i]);
        test_other_runs(all[i]);
        for (int half = 0; half < 2; half++) { /* the properties at both precisions */
            precision = half ? MEDVLM_PRECISION_BF16 : MEDVLM_PRECISION_FP32;
            test_lr_zero(all[i]);
            test_threads(all[i]);
            test_resume(all[i]);
            test_no_alloc(all[i]);
        }
        precision = MEDVLM_PRECISION_FP32;
        test_bf16(all[i]);
        test_whole_gradient(all[i]);
        test_sets(all[i]);
        test_errors(all[i]);
        test_prepared_model(all[i], i ? MEDVLM_PRECISION_BF16 : MEDVLM_PRECISION_FP32);
    }
    setup_free(&a);
    setup_free(&b);
    return check_summary();
}

/* cmd_bench.c - `medvlm bench`: images/s, prompts/s, GFLOP/s and peak memory of the encoders,
 * the time of one fine-tuning step (--train), the raw sgemm rate of the machine at the ViT
 * shapes (--gemm) and its floating-point peak (--peak). Every run first states the CPU. */
#include "cli.h"

#include "model/model.h"
#include "ops/ops.h"
#include "peft/peft.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static const char *usage =
    "usage: medvlm bench [--random plip | --model DIR] [--only vision|text] [--batch B]\n"
    "                    [--threads N] [--reps R] [--json] [--profile] [--gemm]\n"
    "                    [--blas-threads] [--no-skinny] [--gemm-backend B]\n"
    "                    [--train MODE] [--peak] [--precision P]\n"
    "\n"
    "Time the forward pass of the encoders: vision at batch 1, 8 and 32 (images/s) and text\n"
    "on 16 zero-shot prompts padded to 77 tokens and to the longest (18; prompts/s), each the\n"
    "median of R timed runs after one warm-up, with the GFLOP/s achieved (the model's FLOPs of\n"
    "the pass, multiply-add = 2: text to each prompt's EOS, the last layer whole, as other\n"
    "runtimes run it) and the process's peak RSS so far. The first line (JSON: bench\n"
    "\"cpu\") names the CPU: model, vendor, family and model numbers, the threads, and its\n"
    "avx2, fma, avx512f, avx512_bf16 and amx_bf16 flags.\n"
    "\n"
    "  --random plip  a model with random weights and the vinid/plip (= openai/clip-vit-base-\n"
    "                 patch32) sizes, made in memory (the default); only the towers benched\n"
    "  --model DIR    a Hugging Face CLIP folder instead\n"
    "  --only T       vision or text only\n"
    "  --batch B      this batch size only (text: B prompts, the 16 repeated)\n"
    "  --threads N    threads for medvlm and OpenBLAS (default: OMP_NUM_THREADS or all cores)\n"
    "  --reps R       timed repetitions (default 5)\n"
    "  --json         one JSON object per result line: bench, batch, len, per_s, gflops,\n"
    "                 threads, peak_rss_mb, median_s\n"
    "  --profile      also the time per op family (GEMM, LayerNorm, attention, ...)\n"
    "  --blas-threads let OpenBLAS split each GEMM across threads itself instead of medvlm\n"
    "                 (results then change in the last bits with the thread count)\n"
    "  --no-skinny    never use the unpacked few-row GEMM kernel (batch 1) but OpenBLAS\n"
    "  --gemm-backend B  auto (default: the packed AVX-512 kernel where the CPU has AVX-512F\n"
    "                 and OpenBLAS runs no AVX2/AVX-512 kernel for it, else OpenBLAS),\n"
    "                 openblas or packed: the matrix products' kernel, for comparisons\n"
    "  --gemm         instead: sgemm GFLOP/s at the ViT-B/32 shapes (batch 32, 8 and 1) and\n"
    "                 the text tower's (16 prompts of 18 tokens), raw OpenBLAS (its own\n"
    "                 threading), as medvlm calls it (its split, and its packed AVX-512\n"
    "                 kernel where OpenBLAS has no AVX kernel for the CPU) and, with that\n"
    "                 kernel, from a weight packed at load as a prepared model runs it,\n"
    "                 each also as a share of the fp32 zmm peak (as --peak measures it, at\n"
    "                 the same threads; fp32 ymm without AVX-512). JSON adds peak_gflops,\n"
    "                 peak_kind and of_peak (a fraction)\n"
    "  --peak         instead: the CPU's floating-point peak, from loops that run in\n"
    "                 registers only: fp32 FMA on zmm (AVX-512F) and ymm (AVX2 + FMA)\n"
    "                 registers and bf16 dot products (vdpbf16ps, AVX512_BF16; 2 FLOPs per\n"
    "                 pair), at 1 thread and at N; the best of repetitions over ~0.2 s each.\n"
    "                 A kind the CPU lacks is reported unavailable. JSON: bench \"peak\",\n"
    "                 kind (fp32_zmm, fp32_ymm, bf16_dot), threads, gflops, available\n"
    "  --precision P  fp32, bf16 or auto (default: bf16 only where it is the faster): the\n"
    "                 encoders' products, and with --train the fine-tuning's (bf16 with fp32\n"
    "                 master weights); every result line names it (JSON precision)\n"
    "  --train MODE   instead: one fine-tuning step of the vision encoder (medvlm_peft_step:\n"
    "                 forward, zero-shot head on K = 4 random prototypes, cross-entropy,\n"
    "                 backward, Adam) with PEFT mode lora (rank 4 on q, k, v), ln, ln-all,\n"
    "                 bias, head or full, at --batch B (default 16): the median of R steps\n"
    "                 after one warm-up step. JSON: bench \"train\", peft, batch, step_s,\n"
    "                 peak_rss_mb, threads, gflops (matrix-product FLOPs of the step: the\n"
    "                 forward, the backward's input gradients in the layers it visits, the\n"
    "                 trained matrices' weight gradients, LoRA, the head), trainable,\n"
    "                 workspace_mb. With --profile, also the step split into forward and\n"
    "                 backward by op family, the head + loss + gradient zeroing, the optimiser\n"
    "\n"
    "example:\n"
    "  medvlm bench --only vision --batch 32 --threads 2 --reps 5 --json\n"
    "  medvlm bench --train lora --batch 16 --threads 2 --reps 5 --json --profile\n"
    "  medvlm bench --peak --threads 2\n";

/* The 16 zero-shot prompts of the PEFT-MedVLMs SICAPv2 setup, tokenized (CLIP BPE): the
 * same ids as the PyTorch baseline's PROMPT_IDS. Lengths 6..18 with BOS and EOS. */
static const int prompt_ids[16][18] = {
    {49406, 3353, 268, 12690, 879, 49407},
    {49406, 7166, 1163, 3394, 274, 49407},
    {49406, 7166, 1163, 3394, 275, 49407},
    {49406, 7166, 1163, 3394, 276, 49407},
    {49406, 320, 677, 6005, 64, 9881, 8837, 3649, 1465, 2326, 70, 2961, 49407},
    {49406, 677, 6005, 64, 9881, 2867, 539, 1465, 2326, 70, 2961, 49407},
    {49406, 23290, 15368, 3649, 1465, 2326, 70, 2961, 49407},
    {49406, 8848, 539, 1465, 2326, 70, 2961, 15368, 525, 2867, 49407},
    {49406, 320, 677, 6005, 64, 9881, 8837, 3649, 18724, 3977, 19353, 70, 2961, 49407},
    {49406, 677, 6005, 64, 9881, 2867, 539, 18724, 3977, 19353, 70, 2961, 49407},
    {49406, 23290, 15368, 3649, 1621, 1036, 1907, 660, 268, 6528, 38994, 1884, 33667, 11637, 49407},
    {49406, 8848, 539, 1621, 1036, 1907, 660, 268, 6528, 38994, 1884, 33667, 11637, 15368, 525,
     2867, 49407},
    {49406, 320, 677, 6005, 64, 9881, 8837, 3649, 19044, 8719, 8890, 2193, 664, 1656, 6146, 694,
     11637, 49407},
    {49406, 677, 6005, 64, 9881, 2867, 539, 19044, 8719, 8890, 2193, 664, 1656, 6146, 694, 11637,
     49407},
    {49406, 23290, 15368, 3649, 19044, 8719, 8890, 49407},
    {49406, 8848, 539, 19044, 8719, 8890, 15368, 525, 2867, 49407},
};

static int prompt_len(int i)
{
    int n = 0;
    while (n < 18 && prompt_ids[i][n]) n++;
    return n;
}

struct bench_opts {
    int threads, reps, batch, json, profile;
    const char *precision; /* what the encoders run: medvlm_model_precision after prepare */
};

/* Seconds per op family over the timed runs (--profile), per run. */
static void report_profile(const struct bench_opts *o, const char *bench, int batch, int len)
{
    if (!o->profile) return;
    double total = 0;
    for (int i = 0; i < MV_PROF_COUNT; i++) total += mv_prof_total((enum mv_prof_op)i);
    for (int i = 0; i < MV_PROF_COUNT; i++) {
        double t = mv_prof_total((enum mv_prof_op)i) / o->reps;
        if (o->json)
            printf("{\"profile\": \"%s\", \"batch\": %d, \"len\": %d, \"op\": \"%s\", "
                   "\"s_per_run\": %.6f, \"share\": %.4f}\n",
                   bench, batch, len, mv_prof_name((enum mv_prof_op)i), t,
                   total > 0 ? mv_prof_total((enum mv_prof_op)i) / total : 0.0);
        else
            printf("    %-22s %8.2f ms/run  %5.1f%%\n", mv_prof_name((enum mv_prof_op)i), 1e3 * t,
                   total > 0 ? 100.0 * mv_prof_total((enum mv_prof_op)i) / total : 0.0);
    }
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* KB on Linux */
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static void report(const struct bench_opts *o, const char *bench, int batch, int len, double med,
                   double flops)
{
    double per_s = batch / med, gflops = flops / med * 1e-9;
    if (o->json) {
        printf("{\"bench\": \"%s\", \"batch\": %d, ", bench, batch);
        if (len) printf("\"len\": %d, ", len);
        printf(
            "\"per_s\": %.3f, \"gflops\": %.1f, \"threads\": %d, \"peak_rss_mb\": %.1f, "
            "\"median_s\": %.6f, \"reps\": %d, \"precision\": \"%s\", \"gemm_backend\": \"%s\"}\n",
            per_s, gflops, o->threads, peak_rss_mb(), med, o->reps, o->precision,
            mv_gemm_backend_name());
    } else {
        printf("%-6s batch %3d", bench, batch);
        if (len)
            printf(" len %2d", len);
        else
            printf("       ");
        printf("  %8.2f %s/s  %7.1f GFLOP/s  median %.4f s  peak RSS %.0f MB  (%d threads, %s)\n",
               per_s, strcmp(bench, "vision") ? "prompts" : "images", gflops, med, peak_rss_mb(),
               o->threads, o->precision);
    }
    fflush(stdout);
}

static int bench_vision(const struct medvlm_model *m, const struct bench_opts *o)
{
    const struct medvlm_config *cfg = medvlm_model_config(m);
    static const int default_batches[] = {1, 8, 32};
    int nb = o->batch ? 1 : 3, maxb = o->batch ? o->batch : 32;
    int S = cfg->vision.image_size, D = cfg->projection_dim;
    size_t per = 3 * (size_t)S * S;
    float *px = malloc((size_t)maxb * per * sizeof(float));
    float *emb = malloc((size_t)maxb * D * sizeof(float));
    double *t = malloc((size_t)o->reps * sizeof(double));
    struct medvlm_encoder *enc = NULL;
    int rc = CLI_OK;
    if (!px || !emb || !t) {
        fprintf(stderr, "medvlm bench: out of memory\n");
        rc = CLI_FAIL;
        goto done;
    }
    for (size_t i = 0; i < (size_t)maxb * per; i++) /* a smooth pseudo-image in [-2, 2] */
        px[i] = 2.0f * sinf((float)(i % 9973) * 0.01f);
    for (int k = 0; k < nb; k++) {
        int B = o->batch ? o->batch : default_batches[k];
        if (medvlm_encoder_init(m, B, &enc)) {
            rc = cli_fail("bench");
            goto done;
        }
        if (medvlm_encode_images(enc, px, B, emb)) { /* warm-up */
            rc = cli_fail("bench");
            goto done;
        }
        mv_prof_enable(o->profile);
        for (int r = 0; r < o->reps; r++) {
            double t0 = mv_now();
            medvlm_encode_images(enc, px, B, emb);
            t[r] = mv_now() - t0;
        }
        mv_prof_enable(0);
        report(o, "vision", B, 0, median(t, o->reps), medvlm_vision_flops(cfg, B));
        report_profile(o, "vision", B, 0);
        medvlm_encoder_free(enc);
        enc = NULL;
    }
done:
    medvlm_encoder_free(enc);
    free(px);
    free(emb);
    free(t);
    return rc;
}

static int bench_text(const struct medvlm_model *m, const struct bench_opts *o)
{
    const struct medvlm_config *cfg = medvlm_model_config(m);
    int B = o->batch ? o->batch : 16, D = cfg->projection_dim, longest = 0;
    int Tmax = cfg->text.max_position_embeddings;
    int64_t *ids = malloc((size_t)B * Tmax * sizeof(int64_t));
    int64_t *mask = malloc((size_t)B * Tmax * sizeof(int64_t));
    int *lens = malloc((size_t)B * sizeof(int));
    float *emb = malloc((size_t)B * D * sizeof(float));
    double *t = malloc((size_t)o->reps * sizeof(double));
    struct medvlm_encoder *enc = NULL;
    int rc = CLI_OK;
    if (!ids || !mask || !lens || !emb || !t) {
        fprintf(stderr, "medvlm bench: out of memory\n");
        rc = CLI_FAIL;
        goto done;
    }
    for (int b = 0; b < B; b++) longest = MV_MAX(longest, prompt_len(b % 16));
    if (longest > Tmax || cfg->text.vocab_size <= 49407) {
        fprintf(stderr,
                "medvlm bench: the text bench needs the CLIP vocabulary (49408 ids) and "
                "%d positions\n",
                longest);
        rc = CLI_FAIL;
        goto done;
    }
    if (medvlm_encoder_init(m, B, &enc)) {
        rc = cli_fail("bench");
        goto done;
    }
    int lens_to_run[2] = {Tmax, longest};
    for (int k = 0; k < 2; k++) {
        int T = lens_to_run[k];
        for (int b = 0; b < B; b++) {
            int n = prompt_len(b % 16);
            for (int j = 0; j < T; j++) {
                ids[(size_t)b * T + j] = j < n ? prompt_ids[b % 16][j] : 49407;
                mask[(size_t)b * T + j] = j < n;
            }
            lens[b] = n; /* rows medvlm computes: up to EOS (see text.c) */
        }
        if (medvlm_encode_text(enc, ids, mask, B, T, emb)) {
            rc = cli_fail("bench");
            goto done;
        }
        mv_prof_enable(o->profile);
        for (int r = 0; r < o->reps; r++) {
            double t0 = mv_now();
            medvlm_encode_text(enc, ids, mask, B, T, emb);
            t[r] = mv_now() - t0;
        }
        mv_prof_enable(0);
        report(o, "text", B, T, median(t, o->reps), medvlm_text_flops(cfg, B, lens));
        report_profile(o, "text", B, T);
    }
done:
    medvlm_encoder_free(enc);
    free(ids);
    free(mask);
    free(lens);
    free(emb);
    free(t);
    return rc;
}

/* ---- the CPU and its peak ---- */

/* The first line of every run: which CPU, how many threads, which instruction sets. */
static void report_cpu(const struct bench_opts *o)
{
    struct mv_cpu_info ci;
    mv_cpu_info(&ci);
    if (o->json) {
        printf("{\"bench\": \"cpu\", \"model_name\": ");
        cli_json_string(stdout, ci.model_name);
        printf(", \"vendor\": ");
        cli_json_string(stdout, ci.vendor);
        printf(", \"family\": %d, \"model\": %d, \"stepping\": %d, \"threads\": %d, "
               "\"cpus_online\": %d, \"flags\": {",
               ci.family, ci.model, ci.stepping, o->threads, ci.cpus_online);
        for (int f = 0; f < MV_CPU_FLAG_COUNT; f++)
            printf("%s\"%s\": %s", f ? ", " : "", mv_cpu_flag_name((enum mv_cpu_flag)f),
                   ci.flags & (1u << f) ? "true" : "false");
        printf("}}\n");
    } else {
        printf("cpu %s (%s, family %d model %d stepping %d), %d thread%s of %d CPUs online, flags",
               ci.model_name, ci.vendor, ci.family, ci.model, ci.stepping, o->threads,
               o->threads == 1 ? "" : "s", ci.cpus_online);
        for (int f = 0; f < MV_CPU_FLAG_COUNT; f++)
            if (ci.flags & (1u << f)) printf(" %s", mv_cpu_flag_name((enum mv_cpu_flag)f));
        int lacks = 0;
        for (int f = 0; f < MV_CPU_FLAG_COUNT; f++)
            if (!(ci.flags & (1u << f)))
                printf("%s %s", lacks++ ? "" : ", lacks", mv_cpu_flag_name((enum mv_cpu_flag)f));
        printf("\n");
    }
    fflush(stdout);
}

/* One peak figure, measured and printed; returns its GFLOP/s (0: the CPU lacks the kind). */
static double report_peak(const struct bench_opts *o, enum mv_peak_kind kind, int threads)
{
    static const char *const human[MV_PEAK_KINDS] = {"fp32 zmm", "fp32 ymm", "bf16 dot"};
    static const char *const needs[MV_PEAK_KINDS] = {"avx512f", "avx2 + fma",
                                                     "avx512f + avx512_bf16"};
    int avail = mv_peak_available(kind);
    double gf = avail ? mv_peak_gflops(kind, threads) : 0.0;
    if (o->json)
        printf("{\"bench\": \"peak\", \"kind\": \"%s\", \"threads\": %d, \"gflops\": %.1f, "
               "\"available\": %s}\n",
               mv_peak_name(kind), threads, gf, avail ? "true" : "false");
    else if (avail)
        printf("peak %s  %3d thread%s  %7.1f GFLOP/s\n", human[kind], threads,
               threads == 1 ? " " : "s", gf);
    else
        printf("peak %s  %3d thread%s  unavailable (the CPU lacks %s)\n", human[kind], threads,
               threads == 1 ? " " : "s", needs[kind]);
    fflush(stdout);
    return gf;
}

static int bench_peak(const struct bench_opts *o)
{
    for (int k = 0; k < MV_PEAK_KINDS; k++) {
        report_peak(o, (enum mv_peak_kind)k, 1);
        if (o->threads > 1) report_peak(o, (enum mv_peak_kind)k, o->threads);
    }
    return CLI_OK;
}

static int bench_gemm(const struct bench_opts *o)
{
    static const int shapes[][3] = {
        {1600, 3072, 768}, {1600, 768, 3072},  {1600, 768, 768}, {1568, 768, 3072},
        {400, 3072, 768},  {400, 768, 3072},   {400, 768, 768},  {50, 3072, 768},
        {50, 768, 3072},   {50, 768, 768},     {288, 2048, 512}, {288, 512, 2048},
        {288, 512, 512},   {2048, 2048, 2048},
    };
    float *a = mv_aligned((size_t)2048 * 3072 * sizeof(float));
    float *b = mv_aligned((size_t)2048 * 3072 * sizeof(float));
    float *c = mv_aligned((size_t)2048 * 3072 * sizeof(float));
    float *bp = mv_aligned(mv_gemm_packed_weight_floats(3072, 2048) * sizeof(float));
    double *t = malloc((size_t)o->reps * sizeof(double));
    if (!a || !b || !c || !bp || !t) {
        fprintf(stderr, "medvlm bench: out of memory\n");
        mv_free(a), mv_free(b), mv_free(c), mv_free(bp), free(t);
        return CLI_FAIL;
    }
    for (size_t i = 0; i < (size_t)2048 * 3072; i++) {
        a[i] = 0.01f * (float)((i * 7) % 13) - 0.06f;
        b[i] = 0.01f * (float)((i * 5) % 11) - 0.05f;
    }
    /* the yardstick: fp32 FMA on the widest registers the CPU has, at the same threads */
    enum mv_peak_kind pk =
        mv_peak_available(MV_PEAK_FP32_ZMM) ? MV_PEAK_FP32_ZMM : MV_PEAK_FP32_YMM;
    double peak = report_peak(o, pk, o->threads);
    /* "openblas": cblas_sgemm with OpenBLAS's own threading (the machine's rate);
     * "medvlm": mv_gemm as the encoders call it (thread split, skinny kernel for few rows);
     * "prepacked": a prepared model's linear layer, the weight packed once before the timing
     * (the packed kernel's CPUs, more than 64 rows: fewer run the skinny kernel) */
    for (int backend = 0; backend < 3; backend++) {
        if (backend == 2 && !mv_gemm_packed_on()) break;
        mv_gemm_set_mode(backend > 0);
        mv_gemm_set_skinny(backend ? 64 : 0);
        const char *bname = backend == 2 ? "prepacked" : backend ? "medvlm" : "openblas";
        for (size_t s = 0; s < MV_ARRAY_LEN(shapes); s++) {
            int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
            if (backend == 2 && M <= 64) continue;
            int inner = M < 256 ? 20 : M < 512 ? 4 : 1; /* small shapes: time several calls */
            if (backend == 2) mv_gemm_pack_weight(bp, b, N, K);
            for (int r = -1; r < o->reps; r++) { /* r = -1: the warm-up */
                double t0 = mv_now();
                for (int i = 0; i < inner; i++)
                    if (backend == 2) /* the linear layers' layout: C (M, N) = A (M, K) B^T */
                        mv_gemm_packed_team_w(0, o->threads, M, N, K, 1.0f, a, K, bp, 0.0f, c, N,
                                              NULL, 1.0f, -1);
                    else
                        mv_gemm(0, 1, M, N, K, 1.0f, a, K, b, K, 0.0f, c, N);
                if (r >= 0) t[r] = (mv_now() - t0) / inner;
            }
            double med = median(t, o->reps), gf = 2.0 * M * N * K / med * 1e-9;
            const char *kernel = backend == 2 ? "packed avx512, weights packed at load"
                                 : backend    ? mv_gemm_backend_name()
                                              : "openblas threads";
            if (o->json) {
                printf("{\"bench\": \"gemm\", \"backend\": \"%s\", \"m\": %d, \"n\": %d, "
                       "\"k\": %d, \"gflops\": %.1f, \"threads\": %d, \"median_s\": %.6f, "
                       "\"kernel\": \"%s\"",
                       bname, M, N, K, gf, o->threads, med, kernel);
                if (peak > 0)
                    printf(", \"peak_gflops\": %.1f, \"peak_kind\": \"%s\", \"of_peak\": %.3f",
                           peak, mv_peak_name(pk), gf / peak);
                printf("}\n");
            } else {
                printf("%-9s sgemm %5d x %5d x %5d  %7.1f GFLOP/s", bname, M, N, K, gf);
                if (peak > 0) printf("  %3.0f%% of peak", 100.0 * gf / peak);
                printf("  (%d threads, %s)\n", o->threads, kernel);
            }
            fflush(stdout);
        }
    }
    mv_free(a), mv_free(b), mv_free(c), mv_free(bp), free(t);
    return CLI_OK;
}

/* ---- --train: one fine-tuning step ---- */

/* Matrix-product FLOPs of one step of p on B images (multiply-add = 2); the elementwise work
 * (LayerNorm, activations, softmax, recomputations, the optimiser) is not counted. */
static double train_flops(const struct medvlm_peft *p, const struct medvlm_config *cfg, int B)
{
    const struct medvlm_tower_config *c = &p->tower.cfg;
    const double g = mv_vision_grid(c), G = g * g, N = G + 1, R = (double)B * N;
    const double C = c->hidden_size, I = c->intermediate_size, P = c->patch_size;
    const double RK = p->tower.lora_rank, D = p->D, K = p->K;
    const int L = c->num_hidden_layers;
    double f = medvlm_vision_flops(cfg, B); /* the forward pass */
    f += 3 * 2.0 * B * K * D;               /* head: logits, dfeats, dprotos */
    if (!p->encoder_trained) return f;
    const struct mv_tower_grad *tg = &p->grad;
    int below = tg->pre_ln.w || tg->pre_ln.b || tg->patch_w || tg->pos_emb || tg->class_emb;
    f += 2.0 * B * C * D * (tg->proj ? 2 : 1); /* projection: dpooled (+ dproj) */
    for (int l = 0; l < L; l++) {
        const struct mv_layer *ly = &p->tower.layers[l];
        const struct mv_layer_grad *gl = &tg->layers[l];
        const struct mv_linear *lin[6] = {&ly->q, &ly->k, &ly->v, &ly->o, &ly->fc1, &ly->fc2};
        const struct mv_linear_grad *gin[6] = {&gl->q, &gl->k, &gl->v, &gl->o, &gl->fc1, &gl->fc2};
        const double in[6] = {C, C, C, C, C, I}, out[6] = {C, C, C, C, I, C};
        for (int i = 0; i < 6; i++) {
            if (lin[i]->lora_a) f += 2.0 * R * RK * (in[i] + out[i]); /* LoRA forward */
            if (l < p->stop_layer) continue;
            /* the lowest visited layer skips q/k/v's input gradient when nothing needs it */
            int skip =
                i < 3 && l == p->stop_layer && !(l == 0 && below) && !gl->ln1.w && !gl->ln1.b;
            if (!skip) f += 2.0 * R * in[i] * out[i];                         /* dinp */
            if (gin[i]->w) f += 2.0 * R * in[i] * out[i];                     /* dw */
            if (lin[i]->lora_a) f += 2.0 * R * RK * (2 * out[i] + 2 * in[i]); /* dB du dA dinp */
        }
        if (l >= p->stop_layer) f += 4 * 2.0 * B * N * N * C; /* attention: dv dP dq dk */
    }
    if (p->stop_layer == 0 && tg->patch_w) f += 2.0 * B * G * 3 * P * P * C;
    return f;
}

static void print_prof_line(const struct bench_opts *o, const char *peft, int B, const char *phase,
                            const char *op, double s, double step)
{
    if (o->json)
        printf("{\"profile\": \"train\", \"peft\": \"%s\", \"batch\": %d, \"phase\": \"%s\", "
               "\"op\": \"%s\", \"s_per_step\": %.6f, \"share\": %.4f}\n",
               peft, B, phase, op, s, step > 0 ? s / step : 0.0);
    else
        printf("      %-28s %9.2f ms  %5.1f%%\n", op, 1e3 * s, step > 0 ? 100.0 * s / step : 0.0);
}

/* The step as medvlm_peft_step runs it, split: medvlm_peft_backward (the ViT's forward and
 * backward phases by op family, the head, loss and gradient zeroing around them), then the
 * optimiser update. Per step, averaged over o->reps steps. */
static int profile_train(struct medvlm_peft *p, const struct bench_opts *o, const char *peft,
                         const float *px, const int64_t *labels, int B)
{
    static const char *phase_names[MV_PROF_PHASES] = {"forward", "backward"};
    double call = 0, opt = 0;
    mv_prof_enable(1);
    for (int r = 0; r < o->reps; r++) {
        double t0 = mv_now();
        if (medvlm_peft_backward(p, px, labels, B, NULL)) return cli_fail("bench");
        double t1 = mv_now();
        mv_optim_step(&p->opt, p->o.lr);
        double t2 = mv_now();
        call += t1 - t0;
        opt += t2 - t1;
    }
    mv_prof_enable(0);
    double n = o->reps, step = (call + opt) / n, phases = 0;
    if (!o->json) printf("    profile (%d steps): %.4f s per step\n", o->reps, step);
    for (int ph = 0; ph < MV_PROF_PHASES; ph++) {
        double wall = mv_prof_phase_wall((enum mv_prof_phase)ph) / n, ops = 0;
        phases += wall;
        if (!o->json)
            printf("    %-8s %9.2f ms  %5.1f%%\n", phase_names[ph], 1e3 * wall,
                   step > 0 ? 100 * wall / step : 0.0);
        for (int i = 0; i < MV_PROF_COUNT; i++) {
            double t = mv_prof_phase_total((enum mv_prof_phase)ph, (enum mv_prof_op)i) / n;
            ops += t;
            if (t > 0)
                print_prof_line(o, peft, B, phase_names[ph], mv_prof_name((enum mv_prof_op)i), t,
                                step);
        }
        print_prof_line(o, peft, B, phase_names[ph], "copies, memsets, other", wall - ops, step);
    }
    if (!o->json) printf("    rest\n");
    print_prof_line(o, peft, B, "head", "head, loss, gradient zeroing", call / n - phases, step);
    print_prof_line(o, peft, B, "optimizer", "optimiser (Adam)", opt / n, step);
    return CLI_OK;
}

static int bench_train(const struct medvlm_model *m, const struct bench_opts *o,
                       enum medvlm_peft_mode mode)
{
    const struct medvlm_config *cfg = medvlm_model_config(m);
    const int B = o->batch ? o->batch : 16, K = 4, D = cfg->projection_dim;
    const int S = cfg->vision.image_size;
    const char *peft = medvlm_peft_mode_name(mode);
    size_t per = 3 * (size_t)S * S;
    float *px = malloc((size_t)B * per * sizeof(float));
    float *protos = malloc((size_t)K * D * sizeof(float));
    int64_t *labels = malloc((size_t)B * sizeof(int64_t));
    double *t = malloc((size_t)o->reps * sizeof(double));
    struct medvlm_peft *p = NULL;
    int rc = CLI_OK;
    if (!px || !protos || !labels || !t) {
        fprintf(stderr, "medvlm bench: out of memory\n");
        rc = CLI_FAIL;
        goto done;
    }
    for (size_t i = 0; i < (size_t)B * per; i++) px[i] = 2.0f * sinf((float)(i % 9973) * 0.01f);
    struct mv_rng rng;
    mv_rng_seed(&rng, 0);
    for (size_t i = 0; i < (size_t)K * D; i++) protos[i] = mv_rng_normal(&rng);
    for (int b = 0; b < B; b++) labels[b] = b % K;
    struct medvlm_peft_options po;
    medvlm_peft_options_default(&po);
    po.mode = mode;
    po.max_batch = B;
    po.precision = cli_precision;
    if (medvlm_peft_init(m, &po, protos, K, &p) || medvlm_peft_step(p, px, labels, B, NULL)) {
        rc = cli_fail("bench");
        goto done;
    }
    for (int r = 0; r < o->reps; r++) {
        double t0 = mv_now();
        medvlm_peft_step(p, px, labels, B, NULL);
        t[r] = mv_now() - t0;
    }
    if (o->json) { /* every step's time, in order, before the median sorts them */
        printf("{\"bench\": \"train_steps\", \"peft\": \"%s\", \"batch\": %d, \"times\": [", peft,
               B);
        for (int r = 0; r < o->reps; r++) printf("%s%.4f", r ? ", " : "", t[r]);
        printf("]}\n");
    }
    const char *precision = medvlm_precision_name(medvlm_peft_options_of(p)->precision);
    double med = median(t, o->reps), gflops = train_flops(p, cfg, B) / med * 1e-9;
    double ws_mb = (double)medvlm_peft_workspace_bytes(p) / (1024.0 * 1024.0);
    size_t trainable = medvlm_peft_trainable(p);
    if (o->json)
        printf("{\"bench\": \"train\", \"peft\": \"%s\", \"batch\": %d, \"step_s\": %.6f, "
               "\"peak_rss_mb\": %.1f, \"threads\": %d, \"gflops\": %.1f, \"trainable\": %zu, "
               "\"workspace_mb\": %.1f, \"reps\": %d, \"precision\": \"%s\", "
               "\"gemm_backend\": \"%s\"}\n",
               peft, B, med, peak_rss_mb(), o->threads, gflops, trainable, ws_mb, o->reps,
               precision, mv_gemm_backend_name());
    else
        printf("train %-6s batch %3d  %.4f s/step  %7.1f GFLOP/s  peak RSS %.0f MB (workspace "
               "%.0f MB)  %zu trainable  (%d threads, %s, %s)\n",
               peft, B, med, gflops, peak_rss_mb(), ws_mb, trainable, o->threads, precision,
               mv_gemm_backend_name());
    fflush(stdout);
    if (o->profile) rc = profile_train(p, o, peft, px, labels, B);
done:
    medvlm_peft_free(p);
    free(px);
    free(protos);
    free(labels);
    free(t);
    return rc;
}

int cmd_bench(int argc, char **argv)
{
    struct bench_opts o = {.reps = 5};
    const char *model_dir = NULL, *random = NULL, *train_name = NULL;
    int gemm = 0, peak = 0, blas_threads = 0, no_skinny = 0, only = 0, backend = 0,
        backend_given = 0;
    enum { ONLY_BOTH, ONLY_VISION, ONLY_TEXT };
    const struct cli_opt opts[] = {
        CLI_OPT_STR("random", &random),
        CLI_OPT_STR("model", &model_dir),
        CLI_OPT_CHOICE("only", &only, "both|vision|text"),
        CLI_OPT_INT("batch", &o.batch, 1, 4096),
        CLI_OPT_INT("threads", &o.threads, 1, 1024),
        CLI_OPT_INT("reps", &o.reps, 1, 1000),
        CLI_OPT_FLAG("json", &o.json),
        CLI_OPT_FLAG("gemm", &gemm),
        CLI_OPT_FLAG("profile", &o.profile),
        CLI_OPT_FLAG("blas-threads", &blas_threads),
        CLI_OPT_FLAG("no-skinny", &no_skinny),
        CLI_OPT_STR("train", &train_name),
        CLI_OPT_CHOICE_G("gemm-backend", &backend, "auto|openblas|packed", &backend_given),
        CLI_OPT_FLAG("peak", &peak),
        CLI_OPT_END};
    const struct cli_spec spec = {
        .loads_model = 1, .runs_encoder = 1, .cmd = "bench", .usage = usage, .opts = opts};
    const int parsed = cli_parse(&spec, argc, argv, NULL);
    if (parsed != CLI_GO_ON) return parsed;
    if (random && strcmp(random, "plip") != 0)
        return cli_usage("bench", "--random %s: only 'plip' is known", random);
    enum medvlm_peft_mode mode = MEDVLM_PEFT_LORA;
    const int train = train_name != NULL;
    if (train && medvlm_peft_mode_from_name(train_name, &mode))
        return cli_usage("bench", "--train %s: expected lora, ln, ln-all, bias, head or full",
                         train_name);
    if (blas_threads) mv_gemm_set_mode(0);
    if (no_skinny) mv_gemm_set_skinny(0);
    static const enum mv_gemm_backend backends[] = {MV_GEMM_AUTO, MV_GEMM_OPENBLAS, MV_GEMM_PACKED};
    if (backend_given) mv_gemm_set_backend(backends[backend]);
    if (o.threads && medvlm_set_threads(o.threads)) return cli_fail("bench");
    o.threads = medvlm_get_threads();
    report_cpu(&o);
    if (peak || gemm) {
        int rc = peak ? bench_peak(&o) : CLI_OK;
        return rc || !gemm ? rc : bench_gemm(&o);
    }

    if (train && only == ONLY_TEXT)
        return cli_usage("bench",
                         "--train fine-tunes the vision tower: --only text does not apply");
    if (train) only = ONLY_VISION;
    int do_vision = only != ONLY_TEXT, do_text = only != ONLY_VISION;
    unsigned flags = (do_vision ? MEDVLM_LOAD_VISION : 0) | (do_text ? MEDVLM_LOAD_TEXT : 0);
    struct medvlm_model *m = NULL;
    enum medvlm_status st;
    if (model_dir) {
        st = medvlm_model_load(model_dir, flags | cli_load_flags, &m);
    } else {
        struct medvlm_config cfg;
        medvlm_config_default(&cfg); /* = vinid/plip sizes */
        st = mv_model_init_random_towers(&cfg, 0, flags, &m);
    }
    if (!st && !train) st = medvlm_model_prepare(m, cli_precision);
    o.precision = m ? medvlm_precision_name(medvlm_model_precision(m)) : "fp32";
    if (st) {
        medvlm_model_free(m);
        return cli_fail(model_dir ? model_dir : "bench");
    }
    int rc = CLI_OK;
    if (train)
        rc = bench_train(m, &o, mode);
    else if (do_vision)
        rc = bench_vision(m, &o);
    if (!rc && do_text && !train) rc = bench_text(m, &o);
    medvlm_model_free(m);
    return rc;
}

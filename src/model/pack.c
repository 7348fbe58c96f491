/*
 * pack.c - a model made ready to embed: every linear layer's weight converted once, after
 * load, into the layout and precision the product kernels read (medvlm_model_prepare), so
 * that no forward pass packs or converts a weight again.
 *
 * fp32: where the products run the packed AVX-512 kernel (gemm_packed.c), each weight W
 * (out, in) becomes the kernel's panels of W^T in one buffer, in the order a product visits
 * them; the products then read the panels and skip their packing, with the same bits (the
 * panels hold the same numbers in the same places). The mapped file's pages of W are given
 * back as each weight is packed, so the process holds about one copy of the weights at any
 * time, not two; training, which reads W, maps them again from the file.
 * bf16: each weight converted to bf16 panels (mv_bf16_weight_pack); the products run
 * mv_gemm_bf16 (layer.c chooses by the view's w_bf16).
 *
 * Glossary: L layers, C width, I MLP width.
 */
#include "../io/io.h"
#include "encoder.h"

#include <string.h>

/* Linear view i of a tower (layer i / MV_LAYER_LINEARS) and its (out, in) sizes. */
static struct mv_linear *linear_at(struct mv_tower *t, int i, int *out, int *in)
{
    return mv_layer_linear(&t->layers[i / MV_LAYER_LINEARS], i % MV_LAYER_LINEARS,
                           t->cfg.hidden_size, t->cfg.intermediate_size, out, in);
}

static int n_linears(const struct mv_tower *t)
{
    return t->loaded ? t->cfg.num_hidden_layers * MV_LAYER_LINEARS : 0;
}

enum medvlm_status medvlm_precision_parse(const char *s, enum medvlm_precision *p)
{
    static const char *names[] = {"auto", "fp32", "bf16"};
    for (int i = 0; s && i < (int)MV_ARRAY_LEN(names); i++)
        if (strcmp(s, names[i]) == 0) {
            *p = (enum medvlm_precision)i;
            return MEDVLM_OK;
        }
    return mv_err(MEDVLM_ERR_ARG, "precision '%s': expected fp32, bf16 or auto", s ? s : "(null)");
}

const char *medvlm_precision_name(enum medvlm_precision p)
{
    return p == MEDVLM_PRECISION_BF16 ? "bf16" : p == MEDVLM_PRECISION_FP32 ? "fp32" : "auto";
}

/* auto: bf16 where vdpbf16ps outruns fp32 FMA. AMD Zen 4 and later (family 25 and up) run a
 * 512-bit vdpbf16ps (64 FLOPs) at the rate of a 512-bit FMA (32 FLOPs): twice the FLOP rate.
 * Intel's AVX512_BF16 cores without AMX run it at half the fp32 FMA's FLOP rate (measured by
 * `medvlm bench --peak` on a family 6 model 207 Xeon), and medvlm has no AMX kernel: fp32.
 * *why: the reason, for this CPU (mv_precision_auto_reason). */
static enum medvlm_precision auto_rule(const char **why)
{
    struct mv_cpu_info ci;
    mv_cpu_info(&ci);
    if (!mv_gemm_bf16_available()) {
        *why = "no AVX512_BF16 here (CPU or build): bf16 would run the portable emulation";
        return MEDVLM_PRECISION_FP32;
    }
    if (strcmp(ci.vendor, "AuthenticAMD") == 0 && ci.family >= 25) {
        *why = "AMD family 25 and later run AVX512_BF16's dot products at twice the fp32 FMA's "
               "FLOP rate";
        return MEDVLM_PRECISION_BF16;
    }
    *why = strcmp(ci.vendor, "GenuineIntel") == 0
               ? "Intel cores run AVX512_BF16's dot products at half the fp32 FMA's FLOP rate, "
                 "and medvlm has no AMX kernel"
               : "bf16 is chosen only on AMD family 25 and later, where it is measured faster";
    return MEDVLM_PRECISION_FP32;
}

enum medvlm_precision medvlm_precision_resolve(enum medvlm_precision p)
{
    const char *why;
    return p != MEDVLM_PRECISION_AUTO ? p : auto_rule(&why);
}

const char *mv_precision_auto_reason(void)
{
    const char *why;
    (void)auto_rule(&why);
    return why;
}

enum medvlm_precision medvlm_model_precision(const struct medvlm_model *m)
{
    return m->precision == MEDVLM_PRECISION_BF16 ? MEDVLM_PRECISION_BF16 : MEDVLM_PRECISION_FP32;
}

/* The layers' biases and LayerNorm parameters copied next to each other (m->small), so a
 * forward pass touches no page of the weights file near a packed weight: the kernel maps a
 * whole cached folio of the file around each page a process touches, and in a safetensors
 * file the biases sit between the weights (hundreds of KB of them mapped back per bias). */
static enum medvlm_status copy_small(struct medvlm_model *m)
{
    struct mv_tower *towers[2] = {&m->text, &m->vision};
    size_t total = 0;
    for (int t = 0; t < 2; t++) {
        const struct mv_tower *tw = towers[t];
        if (!tw->loaded) continue;
        const size_t C = (size_t)tw->cfg.hidden_size, I = (size_t)tw->cfg.intermediate_size;
        total += (size_t)tw->cfg.num_hidden_layers * (5 * C + I + 4 * C); /* 6 biases, 2 LNs */
    }
    if (!total) return MEDVLM_OK;
    m->small = mv_aligned(total * sizeof(float));
    if (!m->small) return MEDVLM_ERR_NOMEM;
    float *d = m->small;
    for (int t = 0; t < 2; t++) {
        struct mv_tower *tw = towers[t];
        const int C = tw->cfg.hidden_size;
        for (int i = 0; i < n_linears(tw); i++) {
            int O, I;
            struct mv_linear *lin = linear_at(tw, i, &O, &I);
            if (!lin->b) continue;
            memcpy(d, lin->b, (size_t)O * sizeof *d);
            lin->b = d;
            d += O;
        }
        for (int l = 0; tw->loaded && l < tw->cfg.num_hidden_layers; l++) {
            struct mv_norm *ln[2] = {&tw->layers[l].ln1, &tw->layers[l].ln2};
            for (int j = 0; j < 2; j++) {
                memcpy(d, ln[j]->w, (size_t)C * sizeof *d);
                memcpy(d + C, ln[j]->b, (size_t)C * sizeof *d);
                ln[j]->w = d;
                ln[j]->b = d + C;
                d += 2 * C;
            }
        }
    }
    return MEDVLM_OK;
}

static enum medvlm_status prepare_fp32(struct medvlm_model *m)
{
    struct mv_tower *towers[2] = {&m->text, &m->vision};
    size_t total = 0;
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < n_linears(towers[t]); i++) {
            int O, I;
            (void)linear_at(towers[t], i, &O, &I);
            total += mv_gemm_packed_weight_floats(O, I);
        }
    if (!total) return MEDVLM_OK;
    m->packed = mv_aligned_large(total * sizeof(float));
    if (!m->packed)
        return mv_err(MEDVLM_ERR_NOMEM, "%s: no memory for the packed weights (%zu MB)",
                      m->dir && *m->dir ? m->dir : "model", total * sizeof(float) >> 20);
    size_t off = 0;
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < n_linears(towers[t]); i++) {
            int O, I;
            struct mv_linear *lin = linear_at(towers[t], i, &O, &I);
            mv_gemm_pack_weight(m->packed + off, lin->w, O, I);
            lin->w_packed = m->packed + off;
            off += mv_gemm_packed_weight_floats(O, I);
            (void)mv_st_release_pages(m->st, lin->w, (size_t)O * I * sizeof(float));
        }
    return MEDVLM_OK;
}

static enum medvlm_status prepare_bf16(struct medvlm_model *m)
{
    struct mv_tower *towers[2] = {&m->text, &m->vision};
    int n = n_linears(&m->text) + n_linears(&m->vision), k = 0;
    if (!n) return MEDVLM_OK;
    m->bf16 = mv_calloc((size_t)n, sizeof *m->bf16);
    if (!m->bf16) return MEDVLM_ERR_NOMEM;
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < n_linears(towers[t]); i++, k++) {
            int O, I;
            struct mv_linear *lin = linear_at(towers[t], i, &O, &I);
            enum medvlm_status st = mv_bf16_weight_pack(&m->bf16[k], lin->w, O, I);
            if (st) {
                for (int j = 0; j < k; j++) mv_bf16_weight_free(&m->bf16[j]);
                mv_free(m->bf16);
                m->bf16 = NULL;
                for (int t2 = 0; t2 < 2; t2++)
                    for (int i2 = 0; i2 < n_linears(towers[t2]); i2++)
                        linear_at(towers[t2], i2, &O, &I)->w_bf16 = NULL;
                return mv_err(st, "%s: no memory for the bf16 weights",
                              m->dir && *m->dir ? m->dir : "model");
            }
            lin->w_bf16 = &m->bf16[k];
            m->n_bf16 = k + 1;
            (void)mv_st_release_pages(m->st, lin->w, (size_t)O * I * sizeof(float));
        }
    return MEDVLM_OK;
}

enum medvlm_status medvlm_model_prepare(struct medvlm_model *m, enum medvlm_precision p)
{
    if (m->packed || m->small || m->bf16 || m->precision != MEDVLM_PRECISION_AUTO)
        return mv_err(MEDVLM_ERR_ARG, "medvlm_model_prepare: the model is prepared already");
    p = medvlm_precision_resolve(p);
    enum medvlm_status st = MEDVLM_OK;
    if ((p == MEDVLM_PRECISION_BF16 || mv_gemm_packed_on()) && (st = copy_small(m)))
        return mv_err(st, "%s: no memory for the prepared weights",
                      m->dir && *m->dir ? m->dir : "model");
    if (p == MEDVLM_PRECISION_BF16)
        st = prepare_bf16(m);
    else if (mv_gemm_packed_on())
        st = prepare_fp32(m);
    if (st == MEDVLM_OK) m->precision = p;
    return st;
}

void mv_model_prepared_free(struct medvlm_model *m)
{
    for (int i = 0; i < m->n_bf16; i++) mv_bf16_weight_free(&m->bf16[i]);
    mv_free(m->bf16);
    mv_free(m->packed);
    mv_free(m->small);
    m->small = NULL;
    m->bf16 = NULL;
    m->packed = NULL;
    m->n_bf16 = 0;
}

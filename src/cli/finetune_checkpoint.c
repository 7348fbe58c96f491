/* finetune_checkpoint.c - `medvlm finetune`'s checkpoint.safetensors: the fine-tuning state
 * (medvlm_peft_state_add), the shuffle generator, the epoch's losses, the best epoch and its
 * parameters, and the settings (metadata "setting --flag"), written atomically after every
 * epoch; read back by --resume only when every setting matches. */
#include "cli.h"

#include "core/core.h"

#include <string.h>

/* ---- checkpoint: the state + the generator, the epoch, the losses and the best epoch ---- */

int cli_ft_checkpoint_save(const char *path, const struct medvlm_peft *p,
                           const struct cli_ft_progress *g, const struct cli_ft_setting *set)
{
    struct medvlm_st_writer *w = NULL;
    int ok = 0;
    if (medvlm_st_writer_init(&w) || medvlm_peft_state_add(p, w)) goto done;
    for (int i = 0; i < CLI_FT_SETTINGS; i++) {
        char key[64];
        snprintf(key, sizeof key, "setting %s", set[i].flag);
        if (medvlm_st_writer_meta(w, key, set[i].value)) goto done;
    }
    int64_t ep[4] = {g->epoch, g->best_epoch, g->since_best, 0};
    double best = g->best_val;
    int64_t ne = g->epoch ? g->epoch : 1;
    if (medvlm_st_writer_add(w, "run/epoch", MEDVLM_DTYPE_I64, 1, (int64_t[]){4}, ep) ||
        medvlm_st_writer_add(w, "run/rng", MEDVLM_DTYPE_I64, 1, (int64_t[]){4}, g->rng.s) ||
        medvlm_st_writer_add(w, "run/best_val", MEDVLM_DTYPE_F64, 1, (int64_t[]){1}, &best) ||
        medvlm_st_writer_add(w, "run/losses", MEDVLM_DTYPE_F64, 1, &ne, g->losses) ||
        medvlm_st_writer_add(w, "run/val_losses", MEDVLM_DTYPE_F64, 1, &ne, g->val_losses) ||
        (g->best && medvlm_st_writer_add(w, "run/best", MEDVLM_DTYPE_F32, 1,
                                         (int64_t[]){(int64_t)g->nbest}, g->best)))
        goto done;
    ok = medvlm_st_writer_save(w, path) == MEDVLM_OK;
done:
    medvlm_st_writer_free(w);
    return ok;
}

static const void *ck_tensor(const struct medvlm_st *st, const char *name, enum medvlm_dtype dt,
                             size_t nbytes)
{
    const struct medvlm_tensor_info *t = medvlm_st_find(st, name);
    if (!t || t->dtype != dt || t->nbytes != nbytes) {
        mv_err(MEDVLM_ERR_FORMAT, "%s: tensor \"%s\" missing or of the wrong size",
               medvlm_st_path(st), name);
        return NULL;
    }
    return t->data;
}

int cli_ft_checkpoint_load(const char *path, long epochs, struct medvlm_peft *p,
                           struct cli_ft_progress *g, const struct cli_ft_setting *set)
{
    struct medvlm_st *st = NULL;
    int ok = 0;
    if (medvlm_st_open(path, &st)) goto fail_msg;
    for (int i = 0; i < CLI_FT_SETTINGS; i++) {
        char key[64];
        snprintf(key, sizeof key, "setting %s", set[i].flag);
        const char *v = medvlm_st_metadata(st, key);
        if (!v && strcmp(set[i].flag, "--precision") == 0)
            v = "fp32"; /* written before --precision existed, when training ran fp32 */
        if (!v || strcmp(v, set[i].value)) {
            fprintf(stderr,
                    "medvlm: --resume: %s was made with other settings: %s was '%s', this run "
                    "has '%s' (give the same, or another --out)\n",
                    path, set[i].flag, v ? v : "(not recorded)", set[i].value);
            goto done;
        }
    }
    const int64_t *ep = ck_tensor(st, "run/epoch", MEDVLM_DTYPE_I64, 32);
    const uint64_t *rng = ck_tensor(st, "run/rng", MEDVLM_DTYPE_I64, 32);
    const double *best = ck_tensor(st, "run/best_val", MEDVLM_DTYPE_F64, 8);
    if (!ep || !rng || !best) goto fail_msg;
    if (ep[0] < 1 || ep[0] > (1L << 20) || ep[1] < 0 || ep[1] > ep[0] || ep[2] < 0 ||
        ep[2] > ep[0]) {
        mv_err(MEDVLM_ERR_FORMAT, "%s: run/epoch holds %lld, %lld, %lld", path, (long long)ep[0],
               (long long)ep[1], (long long)ep[2]);
        goto fail_msg;
    }
    if (ep[0] > epochs) {
        fprintf(stderr,
                "medvlm: --resume: %s is after epoch %lld, beyond --epochs %ld: give --epochs "
                "%lld or more\n",
                path, (long long)ep[0], epochs, (long long)ep[0]);
        goto done;
    }
    size_t nl = (size_t)ep[0] * sizeof(double);
    const double *l = ck_tensor(st, "run/losses", MEDVLM_DTYPE_F64, nl);
    const double *vl = ck_tensor(st, "run/val_losses", MEDVLM_DTYPE_F64, nl);
    if (!l || !vl) goto fail_msg;
    const float *bp = NULL;
    if (g->best && !(bp = ck_tensor(st, "run/best", MEDVLM_DTYPE_F32, g->nbest * sizeof(float))))
        goto fail_msg;
    if (medvlm_peft_state_load(p, st)) goto fail_msg;
    g->epoch = ep[0];
    g->best_epoch = ep[1];
    g->since_best = ep[2];
    memcpy(g->rng.s, rng, 32);
    g->best_val = *best;
    memcpy(g->losses, l, nl);
    memcpy(g->val_losses, vl, nl);
    if (bp) memcpy(g->best, bp, g->nbest * sizeof(float));
    ok = 1;
    goto done;
fail_msg:
    fprintf(stderr,
            "medvlm: --resume: %s (a corrupt or truncated checkpoint: left as it is; delete it "
            "to start again)\n",
            medvlm_last_error());
done:
    medvlm_st_free(st);
    return ok;
}

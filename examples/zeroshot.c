// zeroshot.c - classify the images of a features file with class prompts; print the metrics.
// Build: cc zeroshot.c $(pkg-config --cflags --libs medvlm) -o zeroshot
// Run:   ./zeroshot plip sicapv2_ensemble.json test_features.safetensors
#include <medvlm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL_DIR PROMPTS.json FEATURES.safetensors\n", argv[0]);
        return 2;
    }
    const char *model_dir = argv[1], *prompts = argv[2], *features = argv[3];
    struct medvlm_model *m = NULL;
    struct medvlm_tokenizer *tok = NULL;
    struct medvlm_prompts *pr = NULL;
    struct medvlm_features *f = NULL;
    struct medvlm_prototypes *p = NULL;
    struct medvlm_evaluation ev = {0};
    int *map = NULL, rc = 1;
    float *logits = NULL;
    if (medvlm_model_load(model_dir, MEDVLM_LOAD_TEXT, &m) ||
        medvlm_tokenizer_load(model_dir, &tok) || medvlm_prompts_load(prompts, &pr) ||
        medvlm_features_load(features, &f))
        goto fail;
    // features of another model do not compare with this model's text embeddings
    if (f->fingerprint && strcmp(f->fingerprint, medvlm_model_fingerprint(m)) != 0) {
        fprintf(stderr, "zeroshot: %s comes from another model than %s\n", features,
                model_dir);
        goto done;
    }
    // each class of the features file gets the prompts of the class of the same name
    map = malloc(sizeof *map * (size_t)f->n_classes);
    logits = malloc(sizeof *logits * (size_t)f->n * (size_t)f->n_classes + 1);
    if (!map || !logits) {
        fprintf(stderr, "zeroshot: out of memory\n");
        goto done;
    }
    if (medvlm_prompts_class_map(pr, prompts, (const char *const *)f->classes, f->n_classes,
                                 features, map) ||
        medvlm_prototypes_from_prompts(m, model_dir, tok, pr, map, f->n_classes, &p) ||
        medvlm_zeroshot_logits(f->features, f->n, p->prototypes, p->k, p->d, p->logit_scale,
                               logits, NULL) ||
        medvlm_evaluate(logits, f->labels, f->n, p->k, (const char *const *)p->classes, &ev))
        goto fail;
    fputs(ev.table, stdout); // balanced accuracy, per-class recall, confusion matrix
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "zeroshot: %s\n", medvlm_last_error());
done:
    medvlm_evaluation_free(&ev);
    medvlm_prototypes_free(p);
    medvlm_features_free(f);
    medvlm_prompts_free(pr);
    medvlm_tokenizer_free(tok);
    medvlm_model_free(m);
    free(map);
    free(logits);
    return rc;
}

/* cmd_features.c - `medvlm features`: embed a dataset once, resumably. */
#include "cli.h"

#include "dist/dist.h"

#include <string.h>

static const char *usage =
    "usage: medvlm features --model DIR --images DIR [--labels TABLE --classes A,B,...]\n"
    "                       --out FEATS.safetensors [--resume] [options]\n"
    "\n"
    "Embed every image of a dataset with the model's vision tower (l2-normalised projected\n"
    "embeddings) and save `features` (N, D), `labels` (N), class and image names: the input\n"
    "of `medvlm zeroshot --features` and `medvlm adapt`. Written atomically; finished\n"
    "batches are kept in OUT.partial as they go, and --resume continues a killed run with\n"
    "the same result as an uninterrupted one. Under `mpirun -np N` the batches are shared out\n"
    "in N fixed shards (one OUT.rank<r>.partial each) and rank 0 writes the same file as one\n"
    "process (docs/scale.md).\n"
    "\n" CLI_DATA_HELP
    "  --resume              continue from OUT.partial if a killed run left one\n" CLI_RUN_HELP "\n"
    "example (SICAPv2 as in the PEFT-MedVLMs tutorial):\n"
    "  medvlm features --model plip --images SICAPv2/images \\\n"
    "      --labels SICAPv2/partition/Test/Train.xlsx --classes NC,G3,G4,G5 \\\n"
    "      --out train_feats.safetensors\n";

int cmd_features(int argc, char **argv)
{
    struct cli_data_args a;
    const char *model_dir = NULL, *out = NULL, *run = NULL;
    int resume = 0;
    cli_data_args_init(&a);
    const struct cli_opt opts[] = {CLI_OPT_STR("model", &model_dir), CLI_OPT_STR("out", &out),
                                   CLI_OPT_FLAG("resume", &resume), CLI_OPT_STR("run", &run),
                                   CLI_OPT_END};
    const struct cli_spec spec = {.loads_model = 1,
                                  .runs_encoder = 1,
                                  .cmd = "features",
                                  .usage = usage,
                                  .opts = opts,
                                  .data = &a};
    const int parsed = cli_parse(&spec, argc, argv, NULL);
    if (parsed != CLI_GO_ON) return parsed;
    if (!model_dir || !out || !a.ds.images_dir)
        return cli_usage("features", "--model, --images and --out are required");
    const struct cli_io io = {.in = {{"--labels", a.ds.labels_path}},
                              .model = {{"--model", model_dir}, {"--run", run}},
                              .out = {{"--out", out}}};
    if (!cli_outputs_ok("features", &io)) return CLI_USAGE;
    if (a.threads) medvlm_set_threads(a.threads);
    struct cli_model cm = {0};
    struct medvlm_model *m = NULL;
    struct medvlm_dataset *ds = NULL;
    struct medvlm_features_result res = {0};
    int rc = CLI_FAIL;
    if (medvlm_dataset_load(&a.ds, &ds)) {
        cli_fail(NULL);
        goto done;
    }
    if (ds->skipped_rows && mv_dist_rank() == 0)
        fprintf(stderr, "medvlm: %d table rows skipped (one-hot values not summing to 1)\n",
                ds->skipped_rows);
    if (!cli_model_load(model_dir, run, MEDVLM_LOAD_VISION, &cm)) {
        cli_fail(NULL);
        goto done;
    }
    m = cm.m;
    struct medvlm_features_job job = {
        .model = m,
        .data = ds,
        .pre = a.pre,
        .batch_size = a.batch_size,
        .threads = a.threads,
        .resume = resume,
        .skip_bad = a.skip_bad,
        .out_path = out,
        .progress = cli_progress_for_terminal(),
        .progress_user = "features",
    };
    if (mv_dist_features_extract(&job, &res)) {
        cli_fail(NULL);
        goto done;
    }
    rc = CLI_OK;
    if (mv_dist_rank() != 0) goto done; /* rank 0 wrote the file and says so */
    int64_t counts[256] = {0};
    for (int i = 0; i < res.n; i++)
        if (res.labels[i] >= 0 && res.labels[i] < 256) counts[res.labels[i]]++;
    printf("wrote %s: %d images x %d dims", out, res.n, res.d);
    if (res.resumed) printf(" (%d batches resumed, %d images computed)", res.resumed, res.computed);
    if (res.skipped) printf(", %d unreadable images left out", res.skipped);
    printf("\nclasses:");
    for (int k = 0; k < ds->n_classes && k < 256; k++)
        printf(" %s=%lld", ds->classes[k], (long long)counts[k]);
    printf("\n");
done:
    medvlm_features_result_free(&res);
    medvlm_dataset_free(ds);
    cli_model_free(&cm);
    return rc;
}

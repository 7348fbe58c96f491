/* cmd_sample.c - `medvlm sample`: the tutorial's few-shot subset of a label table, or of a
 * features file (the subset `medvlm adapt` trains on). */
#include "cli.h"

#include <string.h>

static const char *usage =
    "usage: medvlm sample (--labels TABLE [--classes A,B,..] | --features FEATS)\n"
    "                     --shots K --seed S [options]\n"
    "\n"
    "Draw a few-shot subset exactly as the PEFT-MedVLMs tutorial does with Python's random\n"
    "module: the table's rows (one-hot rows not summing to 1 dropped), random.seed(S),\n"
    "random.shuffle, then the first K images of each class in class order. Prints the\n"
    "chosen image names, one per line, class by class. On a features file (medvlm features\n"
    "of the table) the same subset: the images `medvlm adapt` trains on.\n"
    "\n"
    "  --labels TABLE        .xlsx or .csv label table\n"
    "  --classes LIST        class names in label order (one-hot column names)\n"
    "  --features FEATS      instead of a table: a features file with image names\n"
    "  --shots K             images per class (>= 1)\n"
    "  --seed S              Python random.seed value (default 1)\n"
    "  --allow-fewer         take every image of a class with fewer than K\n"
    "  --sheet NAME          .xlsx sheet (default: the first)\n"
    "  --image-column NAME   column of image names (default: image_name, Path, ...)\n"
    "  --label-column NAME   one column of class names or indices instead of one-hot\n"
    "  --with-labels         print NAME,CLASS per line\n"
    "\n"
    "example:\n"
    "  medvlm sample --labels SICAPv2/partition/Test/Train.xlsx --classes NC,G3,G4,G5 \\\n"
    "                --shots 16 --seed 1\n";

/* Load a features file to sample from: its image names are what `sample` prints. */
static int features_rows(const char *path, struct medvlm_features **f)
{
    if (medvlm_features_load(path, f) != MEDVLM_OK) return 0;
    if (!(*f)->image_names) {
        fprintf(stderr, "medvlm: %s holds no image names: there is nothing to print\n", path);
        return 0;
    }
    return 1;
}

int cmd_sample(int argc, char **argv)
{
    struct cli_data_args a;
    long shots = 0, seed = 1;
    int allow_fewer = 0, with_labels = 0, have_shots = 0;
    const char *feats = NULL;
    cli_data_args_init(&a);
    a.ds.check_files = 0; /* only names are printed */
    const struct cli_opt opts[] = {
        CLI_OPT_LONG_G("shots", &shots, 1, CLI_NO_LIMIT, &have_shots),
        CLI_OPT_LONG("seed", &seed, -(double)(1L << 62), (double)(1L << 62)),
        CLI_OPT_FLAG("allow-fewer", &allow_fewer),
        CLI_OPT_FLAG("with-labels", &with_labels),
        CLI_OPT_STR("features", &feats),
        CLI_OPT_END};
    const struct cli_spec spec = {
        .cmd = "sample", .usage = usage, .opts = opts, .data = &a, .data_table_only = 1};
    const int r = cli_parse(&spec, argc, argv, NULL);
    if (r != CLI_GO_ON) return r;
    struct medvlm_dataset_options opt = a.ds;
    if (!opt.labels_path == !feats)
        return cli_usage("sample", "give --labels TABLE or --features FEATS (one of them)");
    if (feats && (opt.classes || opt.sheet || opt.image_column || opt.label_column))
        return cli_usage("sample", "a features file carries its classes: the table options "
                                   "(--classes, --sheet, --image-column, --label-column) go "
                                   "with --labels");
    if (!have_shots) return cli_usage("sample", "--shots K is required");
    struct medvlm_dataset *d = NULL;
    struct medvlm_features *f = NULL;
    if (feats ? !features_rows(feats, &f) : medvlm_dataset_load(&opt, &d) != MEDVLM_OK) {
        medvlm_features_free(f);
        return cli_fail(NULL);
    }
    const int64_t *labels = d ? d->labels : f->labels;
    char *const *names = d ? d->names : f->image_names;
    char *const *classes = d ? d->classes : f->classes;
    int *idx = NULL, n = 0, rc = CLI_OK;
    if (medvlm_fewshot_sample(labels, d ? d->n : f->n, d ? d->n_classes : f->n_classes, (int)shots,
                              seed, allow_fewer, &idx, &n) != MEDVLM_OK) {
        rc = cli_fail(feats ? feats : opt.labels_path);
        n = 0;
    }
    for (int i = 0; i < n; i++) {
        if (with_labels)
            printf("%s,%s\n", names[idx[i]], classes[labels[idx[i]]]);
        else
            printf("%s\n", names[idx[i]]);
    }
    medvlm_free(idx);
    medvlm_dataset_free(d);
    medvlm_features_free(f);
    return rc;
}

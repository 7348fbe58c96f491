/* cmd_dataset.c - `medvlm dataset`: load a labelled image list and describe it. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char *usage =
    "usage: medvlm dataset [--labels TABLE] [--images DIR] [--classes A,B,..] [options]\n"
    "\n"
    "Load a dataset as the other commands do and print what it holds: images, classes with\n"
    "their counts, rows skipped. From a label table (.xlsx / .csv: one-hot columns named by\n"
    "the classes, or one label column), or from DIR with one sub-folder per class.\n"
    "\n"
    "  --labels TABLE        .xlsx or .csv label table\n"
    "  --images DIR          image root (names in the table are relative to it)\n"
    "  --classes LIST        class names in label order\n"
    "  --sheet NAME          .xlsx sheet (default: the first)\n"
    "  --image-column NAME   column of image names (default: image_name, Path, ...)\n"
    "  --label-column NAME   one column of class names or indices instead of one-hot\n"
    "  --check-files         fail, naming every missing image, if one does not exist\n"
    "  --skip-missing        drop listed images that do not exist\n"
    "  --list                print NAME,CLASS for every image instead of the summary\n"
    "\n"
    "example:\n"
    "  medvlm dataset --labels SICAPv2/partition/Test/Test.xlsx --classes NC,G3,G4,G5\n";

int cmd_dataset(int argc, char **argv)
{
    struct cli_data_args a;
    int list = 0;
    cli_data_args_init(&a);
    a.ds.check_files = 0; /* --check-files asks for it here */
    const struct cli_opt opts[] = {CLI_OPT_FLAG("check-files", &a.ds.check_files),
                                   CLI_OPT_FLAG("list", &list), CLI_OPT_END};
    const struct cli_spec spec = {
        .cmd = "dataset", .usage = usage, .opts = opts, .data = &a, .data_table_only = 1};
    const int r = cli_parse(&spec, argc, argv, NULL);
    if (r != CLI_GO_ON) return r;
    const struct medvlm_dataset_options opt = a.ds;
    if (!opt.labels_path && !opt.images_dir)
        return cli_usage("dataset", "give --labels TABLE, --images DIR, or both");
    struct medvlm_dataset *d = NULL;
    if (medvlm_dataset_load(&opt, &d) != MEDVLM_OK) return cli_fail(NULL);
    if (list) {
        for (int i = 0; i < d->n; i++) printf("%s,%s\n", d->names[i], d->classes[d->labels[i]]);
        medvlm_dataset_free(d);
        return CLI_OK;
    }
    int64_t *counts = calloc((size_t)d->n_classes, sizeof *counts);
    if (!counts) {
        medvlm_dataset_free(d);
        fprintf(stderr, "medvlm: out of memory\n");
        return CLI_FAIL;
    }
    medvlm_dataset_class_counts(d, counts);
    printf("source   %s\n", opt.labels_path ? opt.labels_path : opt.images_dir);
    printf("images   %d\n", d->n);
    if (opt.labels_path)
        printf("skipped  %d rows (one-hot values not summing to 1)\n", d->skipped_rows);
    if (opt.skip_missing) printf("missing  %d images (dropped)\n", d->missing);
    printf("classes  %d\n", d->n_classes);
    int w = 5;
    for (int k = 0; k < d->n_classes; k++) {
        int l = (int)strlen(d->classes[k]);
        if (l > w) w = l > 40 ? 40 : l;
    }
    for (int k = 0; k < d->n_classes; k++)
        printf("  %-*s  %lld\n", w, d->classes[k], (long long)counts[k]);
    free(counts);
    medvlm_dataset_free(d);
    return CLI_OK;
}

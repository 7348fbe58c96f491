/* outputs.c - a command never writes over one of its own inputs, nor twice to one path. */
#include "cli.h"

#include <string.h>
#include <sys/stat.h>

/* The files a model folder holds that medvlm reads (src/io): an output there would replace
 * the model. */
static const char *const model_files[] = {"config.json",
                                          "model.safetensors",
                                          "pytorch_model.bin",
                                          "tokenizer.json",
                                          "vocab.json",
                                          "merges.txt",
                                          "tokenizer_config.json",
                                          "special_tokens_map.json",
                                          "preprocessor_config.json"};

/* Same file or folder: the same path, or both exist as the same inode. */
static int same_path(const char *a, const char *b)
{
    struct stat sa, sb;
    if (strcmp(a, b) == 0) return 1;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* out is one of the model files of folder dir. */
static int in_model(const char *out, const char *dir, const char **which)
{
    if (same_path(out, dir)) return *which = "", 1;
    for (size_t i = 0; i < MV_ARRAY_LEN(model_files); i++) {
        char *p = mv_path_join(dir, model_files[i]);
        const int hit = p && same_path(out, p);
        mv_free(p);
        if (hit) return *which = model_files[i], 1;
    }
    return 0;
}

int cli_outputs_ok(const char *cmd, const struct cli_io *io)
{
    for (int i = 0; i < CLI_IO_MAX && io->out[i].flag; i++) {
        const struct cli_io_path *o = &io->out[i];
        if (!o->path) continue;
        for (int j = 0; j < CLI_IO_MAX && io->in[j].flag; j++) {
            const struct cli_io_path *in = &io->in[j];
            if (in->path && same_path(o->path, in->path)) {
                cli_usage(cmd, "%s %s is also the input %s: it would be overwritten", o->flag,
                          o->path, in->flag);
                return 0;
            }
        }
        for (int j = 0; j < io->in_list.n; j++)
            if (io->in_list.paths[j] && same_path(o->path, io->in_list.paths[j])) {
                cli_usage(cmd, "%s %s is also the input %s: it would be overwritten", o->flag,
                          o->path, io->in_list.flag);
                return 0;
            }
        for (int j = 0; j < CLI_IO_MAX && io->model[j].flag; j++) {
            const char *which;
            if (io->model[j].path && in_model(o->path, io->model[j].path, &which)) {
                if (*which)
                    cli_usage(cmd, "%s %s would overwrite %s of the model %s", o->flag, o->path,
                              which, io->model[j].path);
                else
                    cli_usage(cmd, "%s %s would overwrite the model folder %s", o->flag, o->path,
                              io->model[j].path);
                return 0;
            }
        }
        for (int j = 0; j < i; j++)
            if (io->out[j].path && same_path(o->path, io->out[j].path)) {
                cli_usage(cmd, "%s and %s both write %s", io->out[j].flag, o->flag, o->path);
                return 0;
            }
    }
    return 1;
}

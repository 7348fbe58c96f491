/* cmd_preprocess.c - `medvlm preprocess`: images -> model inputs (CHW float32) in a
 * safetensors file, optionally also as viewable PNGs. */
#include "cli.h"

#include "core/core.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *usage =
    "usage: medvlm preprocess --model DIR [--preprocess hf|hf-torchvision|tutorial]\n"
    "                         [--no-antialias]\n"
    "                         [--no-center-crop] [--size S] [--threads N]\n"
    "                         --out FILE.safetensors [--png DIR] IMAGE...\n"
    "\n"
    "Decode JPEG/PNG/TIFF images (the format is read from the bytes) and turn them into the\n"
    "pixel tensors the reference Python pipelines give, read from the model folder's\n"
    "preprocessor_config.json (defaults if absent) and config.json (vision image_size).\n"
    "\n"
    "  --model DIR          Hugging Face CLIP folder (config.json, preprocessor_config.json)\n"
    "  --preprocess P       hf (default): CLIPImageProcessor: shortest-edge Pillow bicubic "
    "resize,\n"
    "                       centre crop, rescale, normalise (transformers 4.x, and\n"
    "                       CLIPImageProcessorPil in 5.x);\n"
    "                       hf-torchvision: transformers 5's default CLIPImageProcessor\n"
    "                       (torchvision uint8 antialiased bicubic resize; differs from hf by\n"
    "                       about one 8-bit level);\n"
    "                       tutorial: torchvision ToTensor, Normalize, Resize([S, S]) bilinear\n"
    "  --no-center-crop     hf, hf-torchvision: keep the whole resized image (non-square images "
    "give non-square\n"
    "                       tensors)\n"
    "  --no-antialias       tutorial: plain bilinear (torchvision antialias=False)\n"
    "  --size S             tutorial: output side (default: the vision image_size)\n"
    "  --threads N          decode and preprocess N images at a time (default: all cores)\n"
    "  --out FILE           safetensors output: F32 tensors pixels.0, pixels.1, ... [3, H, W];\n"
    "                       metadata image.<i> = the file, plus pipeline, antialias, center_crop\n"
    "  --png DIR            also write DIR/<i>.png: each tensor de-normalised back to 8 bits\n"
    "\n"
    "prints one line per image (index, file, tensor shape) and a summary.\n"
    "exit status: 0 success, 1 an image or file failed (named), 2 usage error.\n"
    "\n"
    "example:\n"
    "  medvlm preprocess --model ~/models/plip --out pixels.safetensors --png view/ \\\n"
    "      sicapv2/images/*.jpg\n";

struct pngbuf {
    uint8_t *p;
    size_t n, cap;
    int failed;
};

static void png_mem_write(png_structp png, png_bytep d, size_t n)
{
    struct pngbuf *b = png_get_io_ptr(png);
    if (b->n + n > b->cap) {
        size_t cap = (b->n + n) * 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) {
            b->failed = 1;
            png_error(png, "out of memory");
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void png_mem_flush(png_structp png)
{
    (void)png;
}

static void png_quiet(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void png_fail(png_structp png, png_const_charp msg)
{
    (void)msg;
    png_longjmp(png, 1);
}

/* Encode 8-bit RGB rows as a PNG in memory; 0 on failure. */
static int encode_png(struct pngbuf *buf, png_bytep *rows, int w, int h)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_fail, png_quiet);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, info ? &info : NULL);
        return 0;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return 0;
    }
    png_set_write_fn(png, buf, png_mem_write, png_mem_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return 1;
}

/* CHW floats back to 8-bit RGB (undo normalise and rescale), written as an 8-bit RGB PNG. */
static int write_view_png(const char *path, const float *chw, int h, int w,
                          const struct medvlm_preproc_config *pp, int tutorial)
{
    size_t n = (size_t)h * w;
    uint8_t *rgb = malloc(n * 3);
    png_bytep *rows = malloc(sizeof *rows * (size_t)h);
    struct pngbuf buf = {0};
    int ok = 0;
    if (rgb && rows) {
        double scale = tutorial ? 255.0 : (pp->do_rescale ? 1.0 / pp->rescale_factor : 1.0);
        for (int c = 0; c < 3; c++)
            for (size_t i = 0; i < n; i++) {
                double v = chw[c * n + i];
                if (tutorial || pp->do_normalize) v = v * pp->std[c] + pp->mean[c];
                v = v * scale + 0.5;
                rgb[3 * i + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        for (int y = 0; y < h; y++) rows[y] = rgb + (size_t)y * w * 3;
        if (!encode_png(&buf, rows, w, h))
            fprintf(stderr, "medvlm: %s: cannot encode the PNG\n", path);
        else if (mv_write_file_atomic(path, buf.p, buf.n) != MEDVLM_OK)
            cli_fail(NULL);
        else
            ok = 1;
    } else {
        fprintf(stderr, "medvlm: %s: out of memory\n", path);
    }
    free(buf.p);
    free(rgb);
    free(rows);
    return ok;
}

struct pp_args {
    const char *model, *out, *png_dir;
    struct medvlm_preprocess_options o;
    long size;
    int threads;
    const char *const *paths; /* (n) the images */
    int n;
};

/* CLI_GO_ON when the command should go on; else its exit code (usage printed, or --help). */
static int parse_args(int argc, char **argv, struct pp_args *a)
{
    struct cli_data_args d;
    cli_data_args_init(&d);
    medvlm_preprocess_options_default(&d.pre); /* Hugging Face's pipeline by default here */
    int first;
    const struct cli_opt opts[] = {
        CLI_OPT_STR("model", &a->model), CLI_OPT_LONG("size", &a->size, 1, 65536),
        CLI_OPT_STR("out", &a->out), CLI_OPT_STR("png", &a->png_dir), CLI_OPT_END};
    const struct cli_spec spec = {.cmd = "preprocess",
                                  .usage = usage,
                                  .opts = opts,
                                  .data = &d,
                                  .data_preprocess_only = 1,
                                  .max_pos = -1};
    const int parsed = cli_parse(&spec, argc, argv, &first);
    if (parsed != CLI_GO_ON) return parsed;
    a->o = d.pre;
    a->threads = d.threads;
    a->paths = (const char *const *)(argv + first);
    a->n = argc - first;
    if (!a->model) return cli_usage("preprocess", "--model DIR is required");
    if (!a->out) return cli_usage("preprocess", "--out FILE.safetensors is required");
    if (a->n <= 0) return cli_usage("preprocess", "no IMAGE given");
    const struct cli_io io = {.model = {{"--model", a->model}},
                              .out = {{"--out", a->out}, {"--png", a->png_dir}},
                              .in_list = {"IMAGE", a->paths, a->n}};
    if (!cli_outputs_ok("preprocess", &io)) return CLI_USAGE;
    if (a->o.pipeline != MEDVLM_PREPROCESS_TUTORIAL && (a->size || !a->o.antialias))
        return cli_usage("preprocess",
                         "--size and --no-antialias apply to --preprocess tutorial only");
    if (a->o.pipeline == MEDVLM_PREPROCESS_TUTORIAL && a->o.center_crop == 0)
        return cli_usage("preprocess",
                         "--no-center-crop applies to --preprocess hf and hf-torchvision only");
    return CLI_GO_ON;
}

/* The model folder's config.json and preprocessor_config.json (defaults when absent); the
 * output side from --size or the vision image_size. 1, or 0 after a message. */
static int read_model(struct pp_args *a, struct medvlm_preproc_config *pp)
{
    struct medvlm_config cfg;
    char *cfg_path = mv_path_join(a->model, "config.json");
    char *pp_path = mv_path_join(a->model, "preprocessor_config.json");
    int ok = 0;
    medvlm_preproc_default(pp);
    if (!cfg_path || !pp_path)
        fprintf(stderr, "medvlm: out of memory\n");
    else if (!mv_is_dir(a->model))
        fprintf(stderr, "medvlm: %s: not a folder (expected a Hugging Face CLIP folder)\n",
                a->model);
    else if (medvlm_config_load(cfg_path, &cfg) ||
             (mv_is_file(pp_path) && medvlm_preproc_load(pp_path, pp)))
        cli_fail(NULL);
    else
        ok = 1;
    if (ok) a->o.size = (int)(a->size ? a->size : cfg.vision.image_size);
    mv_free(cfg_path);
    mv_free(pp_path);
    return ok;
}

/* Image path decoded and preprocessed alone (its own size): *buf (re)allocated. */
static int one_image(const struct pp_args *a, const struct medvlm_preproc_config *pp,
                     const char *path, float **buf, int *h, int *w)
{
    struct medvlm_image img;
    if (medvlm_image_decode_file(path, NULL, &img) != MEDVLM_OK) return cli_fail(NULL), 0;
    enum medvlm_status st = medvlm_image_preprocess_size(img.width, img.height, pp, &a->o, h, w);
    free(*buf);
    *buf = st ? NULL : malloc((size_t)3 * *h * *w * sizeof **buf);
    if (!st && !*buf) st = mv_err(MEDVLM_ERR_NOMEM, "out of memory");
    if (!st) st = medvlm_image_preprocess(&img, pp, &a->o, *buf, (size_t)3 * *h * *w, h, w);
    medvlm_image_free(&img);
    if (st) cli_fail(path);
    return !st;
}

/* The file's metadata and the file itself, then the summary line. */
static int save(const struct pp_args *a, const struct medvlm_preproc_config *pp,
                struct medvlm_st_writer *w)
{
    char count[32];
    snprintf(count, sizeof count, "%d", a->n);
    const int hf = a->o.pipeline != MEDVLM_PREPROCESS_TUTORIAL;
    const int crop = a->o.center_crop < 0 ? pp->do_center_crop : a->o.center_crop;
    if (medvlm_st_writer_meta(w, "count", count) ||
        medvlm_st_writer_meta(w, "pipeline", medvlm_preprocess_name(a->o.pipeline)) ||
        medvlm_st_writer_meta(w, "center_crop", hf ? (crop ? "true" : "false") : "n/a") ||
        medvlm_st_writer_meta(w, "antialias", hf ? "n/a" : (a->o.antialias ? "true" : "false")) ||
        medvlm_st_writer_save(w, a->out))
        return cli_fail(NULL), 0;
    printf("wrote %d tensor%s (%s%s) to %s\n", a->n, a->n == 1 ? "" : "s",
           medvlm_preprocess_name(a->o.pipeline),
           hf ? (crop ? ", centre crop" : ", no crop")
              : (a->o.antialias ? ", antialias" : ", no antialias"),
           a->out);
    return 1;
}

int cmd_preprocess(int argc, char **argv)
{
    struct pp_args a = {0};
    const int parsed = parse_args(argc, argv, &a);
    if (parsed != CLI_GO_ON) return parsed;
    struct medvlm_preproc_config pp;
    struct medvlm_st_writer *w = NULL;
    float *buf = NULL;
    int ok = read_model(&a, &pp);
    if (ok && a.png_dir && mkdir(a.png_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "medvlm: %s: cannot create: %s\n", a.png_dir, strerror(errno));
        ok = 0;
    }
    if (ok && medvlm_st_writer_init(&w)) {
        cli_fail(NULL);
        ok = 0;
    }
    int fh, fw, fixed = medvlm_image_preprocess_fixed_size(&pp, &a.o, &fh, &fw) == MEDVLM_OK;
    const size_t per = fixed ? (size_t)3 * fh * fw : 0;
    if (ok && fixed) {
        /* every image has the same size: the parallel batch, then one tensor per image */
        size_t total;
        if (!mv_mul_ok(per, (size_t)a.n, &total) || !(buf = malloc(total * sizeof *buf))) {
            fprintf(stderr, "medvlm: out of memory for %d images of 3x%dx%d\n", a.n, fh, fw);
            ok = 0;
        } else if (medvlm_image_preprocess_files(a.paths, a.n, NULL, &pp, &a.o, a.threads, buf,
                                                 total, NULL)) {
            cli_fail(NULL);
            ok = 0;
        }
    }
    for (int i = 0; ok && i < a.n; i++) {
        int h = fh, wd = fw;
        if (!fixed && !one_image(&a, &pp, a.paths[i], &buf, &h, &wd)) break;
        const float *px = fixed ? buf + per * i : buf;
        char name[64], key[64];
        snprintf(name, sizeof name, "pixels.%d", i);
        snprintf(key, sizeof key, "image.%d", i);
        const int64_t shape[3] = {3, h, wd};
        if (medvlm_st_writer_add(w, name, MEDVLM_DTYPE_F32, 3, shape, px) ||
            medvlm_st_writer_meta(w, key, a.paths[i])) {
            cli_fail(NULL);
            break;
        }
        if (a.png_dir) {
            char *pp_out = mv_asprintf("%s/%d.png", a.png_dir, i);
            ok = pp_out &&
                 write_view_png(pp_out, px, h, wd, &pp, a.o.pipeline == MEDVLM_PREPROCESS_TUTORIAL);
            free(pp_out);
            if (!ok) break;
        }
        printf("%d\t%s\t3x%dx%d\n", i, a.paths[i], h, wd);
        if (i == a.n - 1) ok = save(&a, &pp, w) ? 2 : 0;
    }
    medvlm_st_writer_free(w);
    free(buf);
    return ok == 2 ? CLI_OK : CLI_FAIL;
}

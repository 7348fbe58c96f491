/* cmd_tokenize.c - `medvlm tokenize`: the CLIP token ids of prompts, as the text tower gets them.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char *usage =
    "usage: medvlm tokenize --model DIR [--max-length N] [--pad none|longest|max] [--json]\n"
    "                       [--tokens] [--file FILE] [TEXT...]\n"
    "\n"
    "Print the token ids of each prompt with the model folder's CLIP tokenizer (tokenizer.json,\n"
    "or vocab.json + merges.txt): the ids of Hugging Face's CLIPTokenizer, start and end tokens\n"
    "included, truncated to the maximum length keeping the end token.\n"
    "\n"
    "  --model DIR        model folder with the tokenizer files\n"
    "  --max-length N     maximum ids per prompt, >= 2 (default 77)\n"
    "  --pad MODE         none (default): as long as each prompt; longest: pad to the longest\n"
    "                     prompt; max: pad to --max-length. Padding is <|endoftext|>, mask 0.\n"
    "  --tokens           also print the BPE string of every id\n"
    "  --json             one JSON object on stdout: ids, attention masks, tokens, lengths\n"
    "  --file FILE        read prompts from FILE, one per line (before the TEXT arguments)\n"
    "\n"
    "Text output: one line of ids per prompt (with --tokens, a second line of BPE strings).\n"
    "A truncated prompt is reported on stderr.\n"
    "\n"
    "example:\n"
    "  medvlm tokenize --model ~/models/plip --tokens \"Gleason grade 3\"\n"
    "  49406 7166 1163 3394 274 49407\n"
    "  <|startoftext|> gle ason</w> grade</w> 3</w> <|endoftext|>\n";

struct prompts {
    char **v;
    int n, cap;
    int from_file; /* the first from_file prompts come from --file */
    char *file_data;
};

static int add_prompt(struct prompts *p, char *s)
{
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 16;
        char **v = realloc(p->v, (size_t)cap * sizeof *v);
        if (!v) return 0;
        p->v = v;
        p->cap = cap;
    }
    p->v[p->n++] = s;
    return 1;
}

static int read_prompt_file(struct prompts *p, const char *path)
{
    char **lines;
    int n;
    if (!cli_read_lines(path, &p->file_data, &lines, &n)) return 0;
    int ok = 1;
    for (int i = 0; i < n && ok; i++) ok = add_prompt(p, lines[i]);
    free(lines);
    return ok;
}

static void print_json_ints(const int32_t *v, int n)
{
    putchar('[');
    for (int k = 0; k < n; k++) printf(k ? ",%d" : "%d", v[k]);
    putchar(']');
}

struct tok_args {
    const char *model, *file;
    int max_len, json, tokens, pad; /* pad: -1 none, else enum medvlm_pad */
};

/* The ids of every prompt: rows of max_len (unpadded) or of width (padded). */
struct encoded {
    int32_t *ids, *mask; /* (n, max_len) */
    int *lens, *full;    /* (n) ids kept, ids before truncation */
    int width;           /* padded row width */
};

static void encoded_free(struct encoded *e)
{
    free(e->ids);
    free(e->mask);
    free(e->lens);
    free(e->full);
}

/* CLI_GO_ON when the command should go on; else its exit code (usage printed, or --help). */
static int parse_args(int argc, char **argv, struct tok_args *a, struct prompts *p)
{
    int pad_mode = 0, first;
    a->max_len = MEDVLM_CLIP_CONTEXT;
    const struct cli_opt opts[] = {CLI_OPT_STR("model", &a->model),
                                   CLI_OPT_INT("max-length", &a->max_len, 2, 4096),
                                   CLI_OPT_CHOICE("pad", &pad_mode, "none|longest|max"),
                                   CLI_OPT_FLAG("json", &a->json),
                                   CLI_OPT_FLAG("tokens", &a->tokens),
                                   CLI_OPT_STR("file", &a->file),
                                   CLI_OPT_END};
    /* options first: a prompt may start with '-' */
    const struct cli_spec spec = {
        .cmd = "tokenize", .usage = usage, .opts = opts, .max_pos = -1, .options_first = 1};
    const int parsed = cli_parse(&spec, argc, argv, &first);
    if (parsed != CLI_GO_ON) return parsed;
    a->pad = pad_mode == 1 ? MEDVLM_PAD_LONGEST : pad_mode == 2 ? MEDVLM_PAD_MAX_LENGTH : -1;
    if (!a->model) return cli_usage("tokenize", "--model DIR is required");
    if (a->file && !read_prompt_file(p, a->file)) {
        fprintf(stderr, "medvlm tokenize: %s\n", medvlm_last_error());
        return CLI_FAIL;
    }
    p->from_file = p->n;
    for (int i = first; i < argc; i++)
        if (!add_prompt(p, argv[i])) {
            fprintf(stderr, "medvlm tokenize: out of memory\n");
            return CLI_FAIL;
        }
    if (p->n == 0) return cli_usage("tokenize", "no prompt: give TEXT arguments or --file FILE");
    return CLI_GO_ON;
}

/* Every prompt encoded (and padded when asked): 1, or 0 after a message naming the prompt. */
static int encode(const struct tok_args *a, const struct medvlm_tokenizer *tok,
                  const struct prompts *p, struct encoded *e)
{
    const size_t cells = (size_t)p->n * (size_t)a->max_len;
    e->ids = calloc(cells, sizeof *e->ids);
    e->mask = calloc(cells, sizeof *e->mask);
    e->lens = calloc((size_t)p->n, sizeof *e->lens);
    e->full = calloc((size_t)p->n, sizeof *e->full);
    e->width = a->max_len;
    if (!e->ids || !e->mask || !e->lens || !e->full) {
        fprintf(stderr, "medvlm tokenize: out of memory\n");
        return 0;
    }
    for (int i = 0; i < p->n; i++) {
        if (medvlm_tokenizer_count(tok, p->v[i], &e->full[i]) ||
            medvlm_tokenizer_encode(tok, p->v[i], e->ids + (size_t)i * (size_t)a->max_len,
                                    a->max_len, &e->lens[i])) {
            char ctx[64];
            if (i < p->from_file)
                snprintf(ctx, sizeof ctx, "tokenize: %.40s:%d", a->file, i + 1);
            else
                snprintf(ctx, sizeof ctx, "tokenize: argument %d", i - p->from_file + 1);
            cli_fail(ctx);
            return 0;
        }
        if (e->full[i] > e->lens[i])
            fprintf(stderr, "medvlm tokenize: prompt %d truncated from %d to %d ids\n", i,
                    e->full[i], e->lens[i]);
    }
    if (a->pad >= 0 &&
        medvlm_tokenizer_encode_batch(tok, (const char *const *)p->v, p->n, a->max_len,
                                      (enum medvlm_pad)a->pad, e->ids, e->mask, &e->width)) {
        cli_fail("tokenize");
        return 0;
    }
    return 1;
}

static void print_tokens_json(const struct medvlm_tokenizer *tok, const int32_t *row, int n)
{
    printf(",\"tokens\":[");
    for (int k = 0; k < n; k++) {
        const char *s = medvlm_tokenizer_decode_token(tok, row[k]);
        if (k) putchar(',');
        cli_json_string(stdout, s ? s : "");
    }
    putchar(']');
}

static void print_json(const struct tok_args *a, const struct medvlm_tokenizer *tok,
                       const struct prompts *p, const struct encoded *e)
{
    printf("{\"max_length\":%d,\"pad\":\"%s\",\"vocab_size\":%d,\"prompts\":[", a->max_len,
           a->pad < 0                     ? "none"
           : a->pad == MEDVLM_PAD_LONGEST ? "longest"
                                          : "max",
           medvlm_tokenizer_vocab_size(tok));
    for (int i = 0; i < p->n; i++) {
        const int n = a->pad >= 0 ? e->width : e->lens[i];
        const int32_t *row = e->ids + (size_t)i * (size_t)(a->pad >= 0 ? e->width : a->max_len);
        printf(i ? ",{\"text\":" : "{\"text\":");
        cli_json_string(stdout, p->v[i]);
        printf(",\"length\":%d,\"truncated\":%s,\"ids\":", e->lens[i],
               e->full[i] > e->lens[i] ? "true" : "false");
        print_json_ints(row, n);
        if (a->pad >= 0) {
            printf(",\"attention_mask\":");
            print_json_ints(e->mask + (size_t)i * (size_t)e->width, n);
        }
        if (a->tokens) print_tokens_json(tok, row, n);
        putchar('}');
    }
    printf("]}\n");
}

static void print_text(const struct tok_args *a, const struct medvlm_tokenizer *tok,
                       const struct prompts *p, const struct encoded *e)
{
    for (int i = 0; i < p->n; i++) {
        const int n = a->pad >= 0 ? e->width : e->lens[i];
        const int32_t *row = e->ids + (size_t)i * (size_t)(a->pad >= 0 ? e->width : a->max_len);
        for (int k = 0; k < n; k++) printf(k ? " %d" : "%d", row[k]);
        putchar('\n');
        if (!a->tokens) continue;
        for (int k = 0; k < n; k++) {
            const char *s = medvlm_tokenizer_decode_token(tok, row[k]);
            printf(k ? " %s" : "%s", s ? s : "?");
        }
        putchar('\n');
    }
}

int cmd_tokenize(int argc, char **argv)
{
    struct tok_args a = {0};
    struct prompts p = {0};
    struct medvlm_tokenizer *tok = NULL;
    struct encoded e = {0};
    int rc = parse_args(argc, argv, &a, &p);
    if (rc == CLI_GO_ON) {
        rc = CLI_FAIL;
        if (medvlm_tokenizer_load(a.model, &tok))
            cli_fail("tokenize");
        else if (encode(&a, tok, &p, &e)) {
            (a.json ? print_json : print_text)(&a, tok, &p, &e);
            rc = CLI_OK;
        }
    }
    encoded_free(&e);
    medvlm_tokenizer_free(tok);
    free(p.v);
    free(p.file_data);
    return rc;
}

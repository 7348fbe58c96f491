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

int cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *file = NULL;
    int max_len = MEDVLM_CLIP_CONTEXT, json = 0, tokens = 0, pad_mode = 0, first;
    const struct cli_opt opts[] = {CLI_OPT_STR("model", &model),
                                   CLI_OPT_INT("max-length", &max_len, 2, 4096),
                                   CLI_OPT_CHOICE("pad", &pad_mode, "none|longest|max"),
                                   CLI_OPT_FLAG("json", &json),
                                   CLI_OPT_FLAG("tokens", &tokens),
                                   CLI_OPT_STR("file", &file),
                                   CLI_OPT_END};
    /* options first: a prompt may start with '-' */
    const struct cli_spec spec = {
        .cmd = "tokenize", .usage = usage, .opts = opts, .max_pos = -1, .options_first = 1};
    const int parsed = cli_parse(&spec, argc, argv, &first);
    if (parsed != CLI_GO_ON) return parsed;
    const int pad = pad_mode == 1   ? MEDVLM_PAD_LONGEST
                    : pad_mode == 2 ? MEDVLM_PAD_MAX_LENGTH
                                    : -1; /* none */
    if (!model) return cli_usage("tokenize", "--model DIR is required");
    struct prompts p = {0};
    int rc = CLI_FAIL;
    struct medvlm_tokenizer *tok = NULL;
    int32_t *ids = NULL, *mask = NULL;
    int *lens = NULL, *full = NULL;
    if (file && !read_prompt_file(&p, file)) {
        fprintf(stderr, "medvlm tokenize: %s\n", medvlm_last_error());
        goto done;
    }
    int from_file = p.n;
    for (int i = first; i < argc; i++)
        if (!add_prompt(&p, argv[i])) goto done;
    if (p.n == 0) {
        free(p.v);
        free(p.file_data);
        return cli_usage("tokenize", "no prompt: give TEXT arguments or --file FILE");
    }
    if (medvlm_tokenizer_load(model, &tok)) {
        rc = cli_fail("tokenize");
        goto done;
    }
    size_t cells = (size_t)p.n * (size_t)max_len;
    ids = calloc(cells, sizeof *ids);
    mask = calloc(cells, sizeof *mask);
    lens = calloc((size_t)p.n, sizeof *lens);
    full = calloc((size_t)p.n, sizeof *full);
    if (!ids || !mask || !lens || !full) {
        fprintf(stderr, "medvlm tokenize: out of memory\n");
        goto done;
    }
    int width = (int)max_len;
    for (int i = 0; i < p.n; i++) {
        if (medvlm_tokenizer_count(tok, p.v[i], &full[i]) ||
            medvlm_tokenizer_encode(tok, p.v[i], ids + (size_t)i * (size_t)max_len, (int)max_len,
                                    &lens[i])) {
            char ctx[64];
            if (i < from_file)
                snprintf(ctx, sizeof ctx, "tokenize: %.40s:%d", file, i + 1);
            else
                snprintf(ctx, sizeof ctx, "tokenize: argument %d", i - from_file + 1);
            rc = cli_fail(ctx);
            goto done;
        }
        if (full[i] > lens[i])
            fprintf(stderr, "medvlm tokenize: prompt %d truncated from %d to %d ids\n", i, full[i],
                    lens[i]);
    }
    if (pad >= 0 && medvlm_tokenizer_encode_batch(tok, (const char *const *)p.v, p.n, (int)max_len,
                                                  (enum medvlm_pad)pad, ids, mask, &width)) {
        rc = cli_fail("tokenize");
        goto done;
    }
    if (json) {
        printf("{\"max_length\":%d,\"pad\":\"%s\",\"vocab_size\":%d,\"prompts\":[", max_len,
               pad < 0                     ? "none"
               : pad == MEDVLM_PAD_LONGEST ? "longest"
                                           : "max",
               medvlm_tokenizer_vocab_size(tok));
    }
    for (int i = 0; i < p.n; i++) {
        int n = pad >= 0 ? width : lens[i];
        const int32_t *row = ids + (size_t)i * (size_t)(pad >= 0 ? width : max_len);
        if (json) {
            printf(i ? ",{\"text\":" : "{\"text\":");
            cli_json_string(stdout, p.v[i]);
            printf(",\"length\":%d,\"truncated\":%s,\"ids\":", lens[i],
                   full[i] > lens[i] ? "true" : "false");
            print_json_ints(row, n);
            if (pad >= 0) {
                printf(",\"attention_mask\":");
                print_json_ints(mask + (size_t)i * (size_t)width, n);
            }
            if (tokens) {
                printf(",\"tokens\":[");
                for (int k = 0; k < n; k++) {
                    const char *s = medvlm_tokenizer_decode_token(tok, row[k]);
                    if (k) putchar(',');
                    cli_json_string(stdout, s ? s : "");
                }
                putchar(']');
            }
            putchar('}');
        } else {
            for (int k = 0; k < n; k++) printf(k ? " %d" : "%d", row[k]);
            putchar('\n');
            if (tokens) {
                for (int k = 0; k < n; k++) {
                    const char *s = medvlm_tokenizer_decode_token(tok, row[k]);
                    printf(k ? " %s" : "%s", s ? s : "?");
                }
                putchar('\n');
            }
        }
    }
    if (json) printf("]}\n");
    rc = CLI_OK;
done:
    medvlm_tokenizer_free(tok);
    free(ids);
    free(mask);
    free(lens);
    free(full);
    free(p.v);
    free(p.file_data);
    return rc;
}

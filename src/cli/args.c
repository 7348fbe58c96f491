/* args.c - the option parser every subcommand uses: a table of its options (name, kind of
 * value, where the value goes, accepted range), the shared dataset flags of common.c, --help,
 * positional arguments, and one wording for every usage error. */
#include "cli.h"

#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OPTS 96
#define OPT_BASE 1024 /* getopt values of a command's own options: OPT_BASE + row */

/* Every value that an option of this kind accepts, for its usage error: "an integer in 1..1024",
 * "an integer >= 1", "a non-negative number", "a number in [0, 1]", "a finite number". Integer
 * bounds from 2^30 on read as no bound. */
static void describe(const struct cli_opt *o, char *buf, size_t n)
{
    const int real = o->kind == CLI_FLOAT || o->kind == CLI_DOUBLE;
    const double big = real ? 1e300 : 1073741824.0;
    const int open_hi = o->hi >= big, open_lo = o->lo <= -big;
    const char *what = real ? "a number" : "an integer";
    if (open_lo && open_hi)
        snprintf(buf, n, "%s", real ? "a finite number" : what);
    else if (open_hi && real && o->lo == 0)
        snprintf(buf, n, "a non-negative number");
    else if (open_hi)
        snprintf(buf, n, "%s >= %.17g", what, o->lo);
    else if (open_lo)
        snprintf(buf, n, "%s <= %.17g", what, o->hi);
    else if (real)
        snprintf(buf, n, "a number in [%.17g, %.17g]", o->lo, o->hi);
    else
        snprintf(buf, n, "an integer in %.17g..%.17g", o->lo, o->hi);
}

/* Store optarg into o's destination: 1, or 0 after a usage message. */
static int store(const char *cmd, const struct cli_opt *o, const char *arg)
{
    char range[128];
    long v;
    double x;
    switch (o->kind) {
    case CLI_STR:
        *(const char **)o->dst = arg;
        break;
    case CLI_FLAG:
        *(int *)o->dst = 1;
        break;
    case CLI_INT:
    case CLI_LONG:
        /* the widest range the destination holds; a bound beyond it is no bound */
        const long lo_max = o->kind == CLI_INT ? INT_MIN : LONG_MIN;
        const long hi_max = o->kind == CLI_INT ? INT_MAX : LONG_MAX;
        const long lo = o->lo <= (double)lo_max ? lo_max : (long)o->lo;
        const long hi = o->hi >= (double)hi_max ? hi_max : (long)o->hi;
        if (!cli_parse_int(arg, lo, hi, &v)) {
            describe(o, range, sizeof range);
            cli_usage(cmd, "--%s expects %s, got '%s'", o->name, range, arg);
            return 0;
        }
        if (o->kind == CLI_INT)
            *(int *)o->dst = (int)v;
        else
            *(long *)o->dst = v;
        break;
    case CLI_FLOAT:
    case CLI_DOUBLE:
        if (!cli_parse_float(arg, &x) || x < o->lo || x > o->hi) {
            describe(o, range, sizeof range);
            cli_usage(cmd, "--%s expects %s, got '%s'", o->name, range, arg);
            return 0;
        }
        if (o->kind == CLI_FLOAT)
            *(float *)o->dst = (float)x;
        else
            *(double *)o->dst = x;
        break;
    case CLI_LIST: {
        struct cli_list *l = o->dst;
        if (l->n == l->cap) {
            cli_usage(cmd, "--%s is given more than %d times", o->name, l->cap);
            return 0;
        }
        l->items[l->n++] = arg;
        break;
    }
    case CLI_CHOICE: {
        const size_t len = strlen(arg);
        int i = 0;
        for (const char *c = o->choices; *c; i++) {
            const char *bar = strchr(c, '|');
            const size_t n = bar ? (size_t)(bar - c) : strlen(c);
            if (n == len && len && strncmp(c, arg, n) == 0) {
                *(int *)o->dst = i;
                goto given;
            }
            c += n + (bar != NULL);
        }
        char list[256];
        snprintf(list, sizeof list, "%s", o->choices);
        for (char *p = list; (p = strchr(p, '|'));) *p = '/';
        cli_usage(cmd, "--%s expects one of %s, got '%s'", o->name, list, arg);
        return 0;
    }
    }
given:
    if (o->given) *o->given = 1;
    return 1;
}

unsigned cli_load_flags;
enum medvlm_precision cli_precision = MEDVLM_PRECISION_AUTO;

int cli_parse(const struct cli_spec *s, int argc, char **argv, int *first_pos)
{
    int allow_nonfinite = 0;
    static const struct option table_opts[] = {CLI_TABLE_OPTIONS};
    static const struct option data_opts[] = {CLI_DATA_OPTIONS};
    static const struct option pre_opts[] = {
        {"preprocess", required_argument, NULL, CLI_OPT_PREPROCESS},
        {"no-antialias", no_argument, NULL, CLI_OPT_NO_ANTIALIAS},
        {"no-center-crop", no_argument, NULL, CLI_OPT_NO_CENTER_CROP},
        {"threads", required_argument, NULL, CLI_OPT_THREADS}};
    struct option all[MAX_OPTS + 1];
    int n = 0, c;
    /* the command's own rows first: a name it shares with the dataset flags is its own */
    for (int i = 0; s->opts && s->opts[i].name; i++) {
        if (n == MAX_OPTS) return cli_usage(s->cmd, "internal: too many options");
        const struct cli_opt *o = &s->opts[i];
        all[n++] = (struct option){o->name, o->kind == CLI_FLAG ? no_argument : required_argument,
                                   NULL, OPT_BASE + i};
    }
    if (s->data) {
        const struct option *d = s->data_table_only        ? table_opts
                                 : s->data_preprocess_only ? pre_opts
                                                           : data_opts;
        const int nd = s->data_table_only        ? (int)MV_ARRAY_LEN(table_opts)
                       : s->data_preprocess_only ? (int)MV_ARRAY_LEN(pre_opts)
                                                 : (int)MV_ARRAY_LEN(data_opts);
        for (int i = 0; i < nd && n < MAX_OPTS; i++) all[n++] = d[i];
    }
    if (s->loads_model && n < MAX_OPTS)
        all[n++] = (struct option){"allow-nonfinite-weights", no_argument, &allow_nonfinite, 1};
    if (s->runs_encoder && n < MAX_OPTS)
        all[n++] = (struct option){"precision", required_argument, NULL, CLI_OPT_PRECISION};
    all[n++] = (struct option){"help", no_argument, NULL, 'h'};
    all[n] = (struct option){NULL, 0, NULL, 0};
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, s->options_first ? "+:h" : ":h", all, NULL)) != -1) {
        if (c == 0) continue; /* a flag getopt stored itself */
        if (c >= OPT_BASE) {
            if (!store(s->cmd, &s->opts[c - OPT_BASE], optarg)) return CLI_USAGE;
            continue;
        }
        if (c == CLI_OPT_PRECISION) {
            enum medvlm_precision p;
            if (medvlm_precision_parse(optarg, &p)) /* "precision 'x': expected ..." */
                return cli_usage(s->cmd, "--%s", medvlm_last_error());
            cli_precision = p;
            continue;
        }
        if (s->data && c >= CLI_OPT_IMAGES && c < CLI_OPT_FIRST_FREE) {
            const int r = cli_data_opt(s->cmd, c, optarg, s->data);
            if (r < 0) return -r;
            continue;
        }
        return cli_option_end(s->cmd, s->usage, c, argv);
    }
    const int npos = argc - optind;
    if (npos < s->min_pos || (s->max_pos >= 0 && npos > s->max_pos)) {
        if (s->max_pos == 0) return cli_usage(s->cmd, "unexpected argument '%s'", argv[optind]);
        if (s->min_pos == s->max_pos)
            return cli_usage(s->cmd, "expected %s%s, got %d argument%s",
                             s->min_pos == 1 ? "one " : "", s->pos_name ? s->pos_name : "argument",
                             npos, npos == 1 ? "" : "s");
        return cli_usage(s->cmd, "expected %d to %d %s, got %d", s->min_pos, s->max_pos,
                         s->pos_name ? s->pos_name : "arguments", npos);
    }
    if (allow_nonfinite) cli_load_flags |= MEDVLM_LOAD_ALLOW_NONFINITE;
    if (first_pos) *first_pos = optind;
    return CLI_GO_ON;
}

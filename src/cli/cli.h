/*
 * cli.h - the medvlm command-line tool: one file per subcommand, a table in main.c.
 * The CLI is the only place that prints results (stdout) and maps a status to an exit code:
 * 0 success, 1 failure, 2 usage error.
 */
#ifndef MEDVLM_CLI_H
#define MEDVLM_CLI_H

#include "medvlm.h"

#include <stdio.h>

#define CLI_OK 0
#define CLI_FAIL 1
#define CLI_USAGE 2

struct cli_command {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
    const char *summary;
};

/* Print "medvlm: <medvlm_last_error()>" (with context) to stderr and return CLI_FAIL. */
int cli_fail(const char *context);
/* Print "medvlm CMD: msg" and "Try 'medvlm CMD --help'." to stderr; return CLI_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Parse a whole decimal integer in [lo, hi]; false on anything else. */
int cli_parse_int(const char *s, long lo, long hi, long *out);
int cli_parse_float(const char *s, double *out);
/* Print a JSON string literal with escapes. */
void cli_json_string(FILE *f, const char *s);

/* subcommands */
int cmd_info(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_adapt(int argc, char **argv);
int cmd_predict(int argc, char **argv);

#endif

/*
 * cli.c - error printing and option parsing shared by ferry's subcommands.
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "termsafe.h"

/* Format "ferry: " + message + newline into one buffer and write it once. */
__attribute__((format(printf, 1, 0)))
static void vreport(const char *fmt, va_list ap, const char *hint)
{
    char line[1024];
    int n, m;

    n = snprintf(line, sizeof line, "ferry: ");
    m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    if (m < 0)
        m = 0;
    n = (size_t)(n + m) >= sizeof line - 1 ? (int)sizeof line - 2 : n + m;
    /* Messages carry names and text from the server and the filesystem:
     * no escape sequence or line break of theirs reaches the terminal,
     * nor a C1 control in UTF-8 (U+0080 to U+009F: U+009B is a CSI to
     * terminals that obey C1). */
    termsafe_defang(line, (size_t)n);
    if (hint) {
        m = snprintf(line + n, sizeof line - (size_t)n, "\n%s", hint);
        n = (size_t)(n + m) >= sizeof line - 1 ? (int)sizeof line - 2 : n + m;
    }
    line[n++] = '\n';
    /* Best effort: if stderr is gone there is nobody left to tell. */
    if (write(STDERR_FILENO, line, (size_t)n) < 0)
        return;
}

void cli_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreport(fmt, ap, NULL);
    va_end(ap);
}

int cli_usage_error(const char *help_cmd, const char *fmt, ...)
{
    char hint[128];
    va_list ap;

    snprintf(hint, sizeof hint, "Try '%s --help' for more information.", help_cmd);
    va_start(ap, fmt);
    vreport(fmt, ap, hint);
    va_end(ap);
    return EXIT_USAGE;
}

static int seconds(const char *help_cmd, const char *option, const char *text, double max_s,
                   int zero_ok, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(text, &end);
    /* isfinite also rejects "nan" and "inf", which strtod accepts. */
    if (end == text || *end != '\0' || errno != 0 || !isfinite(v) || v < 0 ||
        (v == 0 && !zero_ok) || v > max_s) {
        cli_usage_error(help_cmd, "bad value for %s: '%s' (seconds, %s, at most %.0f)", option,
                        text, zero_ok ? "0 for none" : "more than 0", max_s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_seconds(const char *help_cmd, const char *option, const char *text, double max_s,
                double *out)
{
    return seconds(help_cmd, option, text, max_s, 0, out);
}

int cli_seconds_or_0(const char *help_cmd, const char *option, const char *text, double max_s,
                     double *out)
{
    return seconds(help_cmd, option, text, max_s, 1, out);
}

int cli_bad_option(const char *help_cmd, int opt, char **argv)
{
    const char *word = argv[optind - 1];
    const char *what = opt == ':' ? "needs a value" : "is not known";

    /* A long option is named by the word getopt stopped at; a short one
     * by optopt, as it may sit inside a cluster such as -nx. */
    if (strncmp(word, "--", 2) == 0)
        return cli_usage_error(help_cmd, "option '%s' %s", word, what);
    return cli_usage_error(help_cmd, "option '-%c' %s", optopt, what);
}

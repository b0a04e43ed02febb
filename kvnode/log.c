/*
 * log.c — one line per call to stderr, written with a single fprintf of a
 * preformatted buffer so lines from one process never interleave.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static log_level_t current_level = LOG_INFO;
static char current_tag[32] = "-";

int log_parse_level(const char *s, log_level_t *out)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (s && strcmp(s, names[i]) == 0) {
            *out = (log_level_t)i;
            return 0;
        }
    return -EINVAL;
}

void log_set_level(log_level_t level)
{
    current_level = level;
}

void log_set_tag(const char *tag)
{
    snprintf(current_tag, sizeof current_tag, "%s", tag);
}

bool log_enabled(log_level_t level)
{
    return level <= current_level;
}

void log_write(log_level_t level, const char *module, const char *fmt, ...)
{
    static const char letters[] = "EWID";
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%ld.%03ld %c %s %s: %s\n", (long)ts.tv_sec, ts.tv_nsec / 1000000L,
            letters[level], current_tag, module, msg);
}

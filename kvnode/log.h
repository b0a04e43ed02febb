/*
 * log.h — leveled logging for the daemons (never used by ringlib).
 *
 * Each line: monotonic seconds, level, the process tag (a node's short id),
 * the module, the message. The level is checked before any formatting.
 */
#ifndef LOG_H
#define LOG_H

#include <stdbool.h>

typedef enum { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG } log_level_t;

/* Parse "error|warn|info|debug"; returns 0 or -EINVAL. */
int log_parse_level(const char *s, log_level_t *out);
void log_set_level(log_level_t level);
/* Tag printed on every line (copied; e.g. the node's short id). */
void log_set_tag(const char *tag);
bool log_enabled(log_level_t level);
void log_write(log_level_t level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG_AT(lvl, mod, ...)                                                                      \
    do {                                                                                           \
        if (log_enabled(lvl))                                                                      \
            log_write(lvl, mod, __VA_ARGS__);                                                      \
    } while (0)
#define log_error(mod, ...) LOG_AT(LOG_ERROR, mod, __VA_ARGS__)
#define log_warn(mod, ...) LOG_AT(LOG_WARN, mod, __VA_ARGS__)
#define log_info(mod, ...) LOG_AT(LOG_INFO, mod, __VA_ARGS__)
#define log_debug(mod, ...) LOG_AT(LOG_DEBUG, mod, __VA_ARGS__)

#endif

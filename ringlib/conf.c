/*
 * conf.c — "NAME = VALUE" lines into "--NAME=VALUE" arguments (see conf.h).
 *
 * Why arguments and not a struct: the daemon already validates every flag
 * in one place (its getopt loop); feeding the file through that loop keeps
 * one set of rules and one set of error messages, and lets command-line
 * flags placed after the file's arguments win. This module only refuses
 * what getopt cannot see: unknown keys, lines that are not NAME = VALUE,
 * a key set twice (the file is the operator's record; a silent "last one
 * wins" inside it hides mistakes).
 *
 * No I/O, no logging: the caller reads the file and reports the error.
 */
#include "conf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static void set_err(char err[CONF_ERR_MAX], const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_err(char err[CONF_ERR_MAX], const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, CONF_ERR_MAX, fmt, ap);
    va_end(ap);
}

/* s[0..n) trimmed of blanks on both sides: new start in *s, returns length. */
static size_t trim(const char **s, size_t n)
{
    while (n > 0 && is_blank(**s)) {
        (*s)++;
        n--;
    }
    while (n > 0 && is_blank((*s)[n - 1]))
        n--;
    return n;
}

/* 1 true, 0 false, -1 neither. */
static int parse_bool(const char *v, size_t n)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strlen(yes[i]) == n && strncasecmp(v, yes[i], n) == 0)
            return 1;
        if (strlen(no[i]) == n && strncasecmp(v, no[i], n) == 0)
            return 0;
    }
    return -1;
}

/* Append "--NAME" or "--NAME=VALUE" (value may be NULL) from line. */
static int push(conf_args_t *a, size_t *cap, const char *name, const char *v, size_t vn,
                unsigned line)
{
    if (a->argc + 1 >= *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        char **nargv = realloc(a->argv, ncap * sizeof *nargv);
        if (!nargv)
            return -ENOMEM;
        a->argv = nargv;
        unsigned *nlines = realloc(a->lines, ncap * sizeof *nlines);
        if (!nlines)
            return -ENOMEM;
        a->lines = nlines;
        *cap = ncap;
    }
    size_t nn = strlen(name);
    size_t len = 2 + nn + (v ? 1 + vn : 0) + 1;
    char *s = malloc(len);
    if (!s)
        return -ENOMEM;
    memcpy(s, "--", 2);
    memcpy(s + 2, name, nn);
    if (v) {
        s[2 + nn] = '=';
        memcpy(s + 3 + nn, v, vn);
    }
    s[len - 1] = '\0';
    a->argv[a->argc] = s;
    a->lines[a->argc] = line;
    a->argc++;
    a->argv[a->argc] = NULL;
    return 0;
}

/* One non-blank, non-comment line: 0, or -EINVAL/-ENOMEM with err set. */
static int parse_line(const char *s, size_t n, unsigned line, const conf_key_t *keys, size_t nkeys,
                      unsigned *seen, conf_args_t *a, size_t *cap, char err[CONF_ERR_MAX])
{
    const char *eq = memchr(s, '=', n);
    if (!eq) {
        set_err(err, "expected NAME = VALUE, got '%.*s'", (int)(n > 60 ? 60 : n), s);
        return -EINVAL;
    }
    const char *name = s;
    size_t nn = trim(&name, (size_t)(eq - s));
    const char *v = eq + 1;
    size_t vn = trim(&v, n - (size_t)(eq + 1 - s));
    if (nn == 0) {
        set_err(err, "no key before '='");
        return -EINVAL;
    }
    size_t k;
    for (k = 0; k < nkeys; k++)
        if (strlen(keys[k].name) == nn && memcmp(keys[k].name, name, nn) == 0)
            break;
    if (k == nkeys) {
        set_err(err, "unknown key '%.*s'", (int)(nn > 60 ? 60 : nn), name);
        return -EINVAL;
    }
    if (seen[k]) {
        set_err(err, "key '%s' given twice (first on line %u)", keys[k].name, seen[k]);
        return -EINVAL;
    }
    seen[k] = line;
    if (keys[k].takes_value) {
        if (vn == 0) {
            set_err(err, "key '%s' needs a value", keys[k].name);
            return -EINVAL;
        }
        return push(a, cap, keys[k].name, v, vn, line);
    }
    int b = parse_bool(v, vn);
    if (b < 0) {
        set_err(err, "key '%s' takes true or false, got '%.*s'", keys[k].name,
                (int)(vn > 60 ? 60 : vn), v);
        return -EINVAL;
    }
    return b ? push(a, cap, keys[k].name, NULL, 0, line) : 0;
}

int conf_parse(const char *text, size_t len, const conf_key_t *keys, size_t nkeys, conf_args_t *out,
               unsigned *err_line, char err[CONF_ERR_MAX])
{
    conf_args_t a = {0};
    size_t cap = 0;
    int rc = 0;
    *err_line = 0;
    err[0] = '\0';
    /* seen[k]: the line key k was set on, 0 if not yet. */
    unsigned *seen = calloc(nkeys ? nkeys : 1, sizeof *seen);
    if (!seen) {
        set_err(err, "out of memory");
        rc = -ENOMEM;
        goto out;
    }
    unsigned line = 0;
    for (size_t pos = 0; pos < len;) {
        line++;
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        const char *s = text + pos;
        size_t n = end - pos;
        pos = end + 1;
        if (memchr(s, '\0', n)) {
            set_err(err, "NUL byte in the line (not a text file?)");
            rc = -EINVAL;
            break;
        }
        n = trim(&s, n);
        if (n == 0 || s[0] == '#')
            continue;
        rc = parse_line(s, n, line, keys, nkeys, seen, &a, &cap, err);
        if (rc < 0)
            break;
    }
    if (rc == -EINVAL)
        *err_line = line;
    else if (rc == -ENOMEM)
        set_err(err, "out of memory");
out:
    free(seen);
    if (rc < 0) {
        conf_args_free(&a);
        *out = (conf_args_t){0};
        return rc;
    }
    *out = a;
    return 0;
}

void conf_args_free(conf_args_t *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->argc; i++)
        free(a->argv[i]);
    free(a->argv);
    free(a->lines);
    *a = (conf_args_t){0};
}

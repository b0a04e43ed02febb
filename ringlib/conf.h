/*
 * conf.h — a daemon's configuration file turned into command-line flags.
 *
 * Pure text handling: the caller reads the file into a buffer, conf_parse
 * turns it into "--NAME=VALUE" arguments for getopt_long, so that a value
 * from the file is checked by exactly the code that checks the flag, and a
 * flag given on the command line after them overrides it (getopt keeps the
 * last occurrence).
 *
 * The format: one "NAME = VALUE" per line; NAME is a long flag without its
 * "--"; VALUE is the rest of the line with surrounding blanks removed and is
 * taken literally (no quoting, no escapes). Blank lines and lines whose
 * first non-blank character is '#' are ignored; a '#' elsewhere is part of
 * the value (a secured endpoint ends in "#KEY"). A flag that takes no value
 * is written "NAME = true" (also yes, on, 1) or "NAME = false" (no, off,
 * 0; the line then adds nothing).
 */
#ifndef CONF_H
#define CONF_H

#include <stdbool.h>
#include <stddef.h>

/* One key a file may set: the long flag's name, and whether it takes a value. */
typedef struct {
    const char *name;
    bool takes_value; /* false: a switch, written NAME = true|false */
} conf_key_t;

/* The arguments a file amounts to; owned by the caller, freed by conf_args_free. */
typedef struct {
    char **argv;     /* argc strings "--NAME" or "--NAME=VALUE", then NULL; NULL if argc is 0 */
    unsigned *lines; /* argv[i] came from line lines[i] (1-based) */
    size_t argc;
} conf_args_t;

enum {
    /* Room for an error message, NUL included. */
    CONF_ERR_MAX = 256,
};

/*
 * Parse text[0..len) (need not be NUL-terminated) against the nkeys allowed
 * keys. On success returns 0 and fills *out (call conf_args_free when
 * done; an empty file gives argc 0). On a bad file returns -EINVAL with
 * *err_line set to the offending line (1-based) and err (CONF_ERR_MAX
 * bytes) saying what is wrong: a line without '=', an empty name, an
 * unknown key, a key given twice, a missing value, a switch whose value is
 * not a boolean, a NUL byte. Returns -ENOMEM (err_line 0) when memory runs
 * out. *out is left empty on any failure.
 */
int conf_parse(const char *text, size_t len, const conf_key_t *keys, size_t nkeys, conf_args_t *out,
               unsigned *err_line, char err[CONF_ERR_MAX]);

/* Free what conf_parse gave and leave *a empty; a NULL or empty *a is fine. */
void conf_args_free(conf_args_t *a);

#endif

/*
 * metrics.c — the Prometheus text format (see metrics.h). Text only: the
 * buffer grows by doubling; a failed allocation marks it failed and
 * later writes are dropped, so the HTTP edge answers 500 instead of
 * sending half a scrape.
 */
#include "metrics.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mx_buf_init(mx_buf_t *b)
{
    memset(b, 0, sizeof *b);
}

void mx_buf_free(mx_buf_t *b)
{
    free(b->data);
    mx_buf_init(b);
}

bool mx_buf_failed(const mx_buf_t *b)
{
    return b->failed;
}

static bool reserve(mx_buf_t *b, size_t more)
{
    if (b->failed)
        return false;
    if (b->len + more + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) {
        b->failed = true;
        return false;
    }
    b->data = d;
    b->cap = cap;
    return true;
}

static void put(mx_buf_t *b, const char *s, size_t n)
{
    if (!reserve(b, n))
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void puts_(mx_buf_t *b, const char *s)
{
    put(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void putf(mx_buf_t *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    assert(n >= 0 && (size_t)n < sizeof tmp);
    put(b, tmp, (size_t)n);
}

/* HELP escapes \ and newline; label values also ". */
static void put_escaped(mx_buf_t *b, const char *s, bool quote)
{
    for (const char *p = s; *p; p++) {
        if (*p == '\\')
            put(b, "\\\\", 2);
        else if (*p == '\n')
            put(b, "\\n", 2);
        else if (*p == '"' && quote)
            put(b, "\\\"", 2);
        else
            put(b, p, 1);
    }
}

bool mx_name_ok(const char *s)
{
    if (!s || !*s)
        return false;
    for (const char *p = s; *p; p++) {
        bool alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_';
        if (!alpha && !(p > s && *p >= '0' && *p <= '9'))
            return false;
    }
    return true;
}

void mx_family(mx_buf_t *b, const char *name, mx_type_t type, const char *help)
{
    assert(mx_name_ok(name));
    puts_(b, "# HELP ");
    puts_(b, name);
    puts_(b, " ");
    put_escaped(b, help, false);
    puts_(b, "\n# TYPE ");
    puts_(b, name);
    puts_(b, type == MX_COUNTER ? " counter\n" : type == MX_GAUGE ? " gauge\n" : " histogram\n");
}

/* name{a="x",b="y"[,le="…"]} — the labels part only when there are any. */
static void put_series(mx_buf_t *b, const char *name, const char *suffix, const mx_label_t *labels,
                       size_t nlabels, const char *le)
{
    assert(mx_name_ok(name));
    puts_(b, name);
    puts_(b, suffix);
    if (nlabels == 0 && !le)
        return;
    puts_(b, "{");
    for (size_t i = 0; i < nlabels; i++) {
        assert(mx_name_ok(labels[i].name) && strcmp(labels[i].name, "le") != 0);
        if (i)
            puts_(b, ",");
        puts_(b, labels[i].name);
        puts_(b, "=\"");
        put_escaped(b, labels[i].value ? labels[i].value : "", true);
        puts_(b, "\"");
    }
    if (le) {
        puts_(b, nlabels ? ",le=\"" : "le=\"");
        puts_(b, le);
        puts_(b, "\"");
    }
    puts_(b, "}");
}

/* The shortest of %.15g / %.17g that reads back as v: 0.005, not 0.0050000000000000001. */
static void fmt_double(char out[40], double v)
{
    if (isnan(v)) {
        snprintf(out, 40, "NaN");
    } else if (isinf(v)) {
        snprintf(out, 40, v > 0 ? "+Inf" : "-Inf");
    } else {
        snprintf(out, 40, "%.15g", v);
        if (strtod(out, NULL) != v)
            snprintf(out, 40, "%.17g", v);
    }
}

static void put_double(mx_buf_t *b, double v)
{
    char s[40];
    fmt_double(s, v);
    puts_(b, s);
}

void mx_sample_u64(mx_buf_t *b, const char *name, const mx_label_t *labels, size_t nlabels,
                   uint64_t value)
{
    put_series(b, name, "", labels, nlabels, NULL);
    putf(b, " %llu\n", (unsigned long long)value);
}

void mx_sample_double(mx_buf_t *b, const char *name, const mx_label_t *labels, size_t nlabels,
                      double value)
{
    put_series(b, name, "", labels, nlabels, NULL);
    puts_(b, " ");
    put_double(b, value);
    puts_(b, "\n");
}

void mx_hist_init(mx_hist_t *h, const double *bounds, size_t nbounds)
{
    assert(nbounds <= MX_BUCKETS_MAX);
    memset(h, 0, sizeof *h);
    h->bounds = bounds;
    h->nbounds = nbounds;
}

void mx_hist_observe(mx_hist_t *h, double v)
{
    size_t i = 0;
    while (i < h->nbounds && v > h->bounds[i])
        i++;
    h->counts[i]++;
    h->count++;
    h->sum += v;
}

void mx_hist_write(mx_buf_t *b, const char *name, const mx_label_t *labels, size_t nlabels,
                   const mx_hist_t *h)
{
    uint64_t cum = 0;
    char le[40];
    for (size_t i = 0; i <= h->nbounds; i++) {
        cum += h->counts[i];
        if (i < h->nbounds)
            fmt_double(le, h->bounds[i]);
        else
            snprintf(le, sizeof le, "+Inf");
        put_series(b, name, "_bucket", labels, nlabels, le);
        putf(b, " %llu\n", (unsigned long long)cum);
    }
    put_series(b, name, "_sum", labels, nlabels, NULL);
    puts_(b, " ");
    put_double(b, h->sum);
    puts_(b, "\n");
    put_series(b, name, "_count", labels, nlabels, NULL);
    putf(b, " %llu\n", (unsigned long long)h->count);
}

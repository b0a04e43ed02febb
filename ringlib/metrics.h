/*
 * metrics.h — the Prometheus text exposition format (version 0.0.4), as a
 * pure text builder: no registry, no I/O, no clock. A scrape asks each
 * module to write its current counters into one mx_buf_t; the HTTP edge
 * (kvnode/http_metrics) sends the text.
 *
 * Names must be valid metric names ([a-zA-Z_][a-zA-Z0-9_]*); they are the
 * caller's constants and are asserted, not escaped. Label values and HELP
 * text come from anywhere and are escaped (\\, \n, and \" in label values).
 *
 * Out of memory is sticky: the buffer remembers it (mx_buf_failed) and
 * every later call does nothing, so a writer need not check each call.
 */
#ifndef METRICS_H
#define METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *data; /* NUL-terminated text, owned by the buffer */
    size_t len, cap;
    bool failed; /* an allocation failed: the text is incomplete */
} mx_buf_t;

typedef enum { MX_COUNTER, MX_GAUGE, MX_HISTOGRAM } mx_type_t;

/* One label: name (a valid label name, not "le") and any value. */
typedef struct {
    const char *name;
    const char *value;
} mx_label_t;

enum { MX_BUCKETS_MAX = 24 };

/*
 * A histogram with fixed upper bounds (ascending, finite; +Inf is implicit).
 * Counts are per bucket (not cumulative); the writer makes them cumulative.
 */
typedef struct {
    const double *bounds; /* borrowed; must outlive the histogram */
    size_t nbounds;       /* at most MX_BUCKETS_MAX */
    uint64_t counts[MX_BUCKETS_MAX + 1];
    uint64_t count;
    double sum;
} mx_hist_t;

/* An empty buffer (no allocation until the first write). */
void mx_buf_init(mx_buf_t *b);
/* Free the text; the buffer is empty again. */
void mx_buf_free(mx_buf_t *b);
bool mx_buf_failed(const mx_buf_t *b);

/* "# HELP name help" and "# TYPE name type": once per family, before its samples. */
void mx_family(mx_buf_t *b, const char *name, mx_type_t type, const char *help);

/*
 * One sample line: name{labels} value. nlabels may be 0 (labels NULL).
 * Integers are written exactly; doubles with %.17g (NaN and ±Inf as
 * Prometheus spells them).
 */
void mx_sample_u64(mx_buf_t *b, const char *name, const mx_label_t *labels, size_t nlabels,
                   uint64_t value);
void mx_sample_double(mx_buf_t *b, const char *name, const mx_label_t *labels, size_t nlabels,
                      double value);

/* Set up h with these bounds (borrowed; ascending). */
void mx_hist_init(mx_hist_t *h, const double *bounds, size_t nbounds);
/* Count one observation of v (in the first bucket whose bound is >= v). */
void mx_hist_observe(mx_hist_t *h, double v);
/*
 * name_bucket{labels,le="…"} cumulative counts (the last one le="+Inf"),
 * then name_sum and name_count, with the family's labels.
 */
void mx_hist_write(mx_buf_t *b, const char *name, const mx_label_t *labels, size_t nlabels,
                   const mx_hist_t *h);

/* Whether s is a valid metric or label name: [a-zA-Z_][a-zA-Z0-9_]*. */
bool mx_name_ok(const char *s);

#endif

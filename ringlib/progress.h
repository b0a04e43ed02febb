/*
 * progress.h — how far the ring's data movement is (dhtctl status): keys and
 * bytes left, the rate from two samples of the nodes' cumulative "moved"
 * counters, and the time left at that rate. Pure arithmetic, no I/O.
 */
#ifndef PROGRESS_H
#define PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One sample of what a node (or the ring, summed) reports in STATS layout 2. */
typedef struct {
    uint64_t keys_left;               /* hint backlog + range stream records left */
    uint64_t bytes_left;              /* estimate */
    uint64_t streams;                 /* range streams running */
    uint64_t moved_keys, moved_bytes; /* cumulative since the node started */
} progress_sample_t;

typedef struct {
    bool idle;          /* nothing left and no stream running */
    bool rate_known;    /* two comparable samples */
    double keys_per_s;  /* valid when rate_known */
    double bytes_per_s; /* valid when rate_known */
    bool eta_known;     /* idle, or keys left moving at a rate > 0 (a stream that
                         * has not counted its range yet: unknown) */
    double eta_s;       /* seconds left at the current rate (0 when idle) */
} progress_est_t;

/*
 * The estimate for cur, given the sample prev taken dt_ms earlier (prev
 * NULL or dt_ms 0: no rate). A counter that went backwards (a node
 * restarted, or left the sum) makes the rate unknown rather than negative.
 * The time left is keys_left over the key rate; 0 when idle, unknown
 * while streams run with nothing counted left (still comparing digests).
 */
void progress_estimate(const progress_sample_t *prev, const progress_sample_t *cur, uint64_t dt_ms,
                       progress_est_t *out);

/*
 * The ring's estimate from its nodes': total is the sum of the nodes'
 * samples, parts their n estimates. The rate is the sum of the known
 * rates (known if any is); the time left is total keys left over it.
 */
void progress_combine(const progress_sample_t *total, const progress_est_t *parts, size_t n,
                      progress_est_t *out);

/* "0s", "42s", "3m07s", "2h05m", "3d04h"; "unknown" for a negative or NaN s. */
const char *progress_duration(double s, char *buf, size_t cap);

/* "512 B", "1.5 KiB", "20.0 MiB", ... (1024-based). */
const char *progress_bytes(double b, char *buf, size_t cap);

#endif

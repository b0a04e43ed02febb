/*
 * progress.c — rate and time-left arithmetic for dhtctl status (see progress.h).
 */
#include "progress.h"

#include <math.h>
#include <stdio.h>

void progress_estimate(const progress_sample_t *prev, const progress_sample_t *cur, uint64_t dt_ms,
                       progress_est_t *out)
{
    *out = (progress_est_t){0};
    out->idle = cur->keys_left == 0 && cur->streams == 0;
    if (prev && dt_ms > 0 && cur->moved_keys >= prev->moved_keys &&
        cur->moved_bytes >= prev->moved_bytes) {
        double dt = (double)dt_ms / 1000.0;
        out->rate_known = true;
        out->keys_per_s = (double)(cur->moved_keys - prev->moved_keys) / dt;
        out->bytes_per_s = (double)(cur->moved_bytes - prev->moved_bytes) / dt;
    }
    if (out->idle) {
        out->eta_known = true;
        out->eta_s = 0;
    } else if (cur->keys_left > 0 && out->rate_known && out->keys_per_s > 0) {
        out->eta_known = true;
        out->eta_s = (double)cur->keys_left / out->keys_per_s;
    }
}

void progress_combine(const progress_sample_t *total, const progress_est_t *parts, size_t n,
                      progress_est_t *out)
{
    *out = (progress_est_t){0};
    out->idle = total->keys_left == 0 && total->streams == 0;
    for (size_t i = 0; i < n; i++) {
        if (!parts[i].rate_known)
            continue;
        out->rate_known = true;
        out->keys_per_s += parts[i].keys_per_s;
        out->bytes_per_s += parts[i].bytes_per_s;
    }
    if (out->idle) {
        out->eta_known = true;
        out->eta_s = 0;
    } else if (total->keys_left > 0 && out->rate_known && out->keys_per_s > 0) {
        out->eta_known = true;
        out->eta_s = (double)total->keys_left / out->keys_per_s;
    }
}

const char *progress_duration(double s, char *buf, size_t cap)
{
    if (!(s >= 0) || s > 1e12) {
        snprintf(buf, cap, "unknown");
        return buf;
    }
    uint64_t t = (uint64_t)ceil(s);
    if (t < 60)
        snprintf(buf, cap, "%llus", (unsigned long long)t);
    else if (t < 3600)
        snprintf(buf, cap, "%llum%02llus", (unsigned long long)(t / 60),
                 (unsigned long long)(t % 60));
    else if (t < 86400)
        snprintf(buf, cap, "%lluh%02llum", (unsigned long long)(t / 3600),
                 (unsigned long long)(t % 3600 / 60));
    else
        snprintf(buf, cap, "%llud%02lluh", (unsigned long long)(t / 86400),
                 (unsigned long long)(t % 86400 / 3600));
    return buf;
}

const char *progress_bytes(double b, char *buf, size_t cap)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (!(b >= 0))
        b = 0;
    unsigned u = 0;
    while (b >= 1024 && u + 1 < sizeof unit / sizeof unit[0]) {
        b /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, cap, "%.0f B", b);
    else
        snprintf(buf, cap, "%.1f %s", b, unit[u]);
    return buf;
}

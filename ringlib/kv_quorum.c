/*
 * kv_quorum.c — counting answers towards a read or write quorum.
 *
 * Failure is declared as soon as more than n - need replicas failed: at
 * that point waiting for the others cannot help, so the client hears
 * "unavailable" promptly instead of after the full timeout.
 */
#include "kv_quorum.h"

#include <errno.h>
#include <string.h>

int kv_quorum_init(kv_quorum_t *q, unsigned n, unsigned need)
{
    if (n == 0 || n > KV_QUORUM_MAX || need == 0 || need > n)
        return -EINVAL;
    memset(q, 0, sizeof *q);
    q->n = n;
    q->need = need;
    return 0;
}

int kv_quorum_require(kv_quorum_t *q, unsigned members, unsigned need)
{
    unsigned size = 0;
    for (unsigned i = 0; i < KV_QUORUM_MAX; i++)
        size += (members >> i) & 1u;
    if (q->ngroups == KV_QUORUM_GROUPS || size == 0 || need == 0 || members >> q->n != 0 ||
        q->ok + q->failed > 0)
        return -EINVAL;
    q->group[q->ngroups++] = (kv_quorum_group_t){members, size, need < size ? need : size, 0, 0};
    return 0;
}

int kv_quorum_extend(kv_quorum_t *q, unsigned more)
{
    if (more < q->n || more > KV_QUORUM_MAX)
        return -EINVAL;
    q->n = more;
    return 0;
}

kv_quorum_state_t kv_quorum_state(const kv_quorum_t *q)
{
    bool met = q->ok >= q->need;
    if (q->failed > q->n - q->need)
        return KV_QUORUM_FAILED;
    for (unsigned g = 0; g < q->ngroups; g++) {
        if (q->group[g].failed > q->group[g].size - q->group[g].need)
            return KV_QUORUM_FAILED;
        met &= q->group[g].ok >= q->group[g].need;
    }
    return met ? KV_QUORUM_MET : KV_QUORUM_PENDING;
}

kv_quorum_state_t kv_quorum_on_reply(kv_quorum_t *q, unsigned idx, bool success, bool found,
                                     kv_version_t version)
{
    if (idx >= q->n || q->replied[idx])
        return kv_quorum_state(q);
    q->replied[idx] = true;
    q->success[idx] = success;
    for (unsigned g = 0; g < q->ngroups; g++) {
        if (q->group[g].members >> idx & 1u) {
            q->group[g].ok += success;
            q->group[g].failed += !success;
        }
    }
    if (success) {
        q->ok++;
        q->found[idx] = found;
        q->version[idx] = version;
    } else {
        q->failed++;
    }
    return kv_quorum_state(q);
}

int kv_quorum_newest(const kv_quorum_t *q)
{
    int best = -1;
    for (unsigned i = 0; i < q->n; i++) {
        if (!q->success[i] || !q->found[i])
            continue;
        if (best < 0 || kv_version_cmp(q->version[i], q->version[best]) > 0)
            best = (int)i;
    }
    return best;
}

size_t kv_quorum_stale(const kv_quorum_t *q, unsigned *out, size_t cap)
{
    int best = kv_quorum_newest(q);
    size_t k = 0;
    if (best < 0)
        return 0;
    for (unsigned i = 0; i < q->n && k < cap; i++) {
        if (!q->success[i] || (int)i == best)
            continue;
        if (!q->found[i] || kv_version_cmp(q->version[i], q->version[best]) < 0)
            out[k++] = i;
    }
    return k;
}

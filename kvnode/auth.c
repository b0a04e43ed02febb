/*
 * auth.c — the ZAP handler and the allow-lists of a secured node (auth.h).
 *
 * ZeroMQ's I/O thread asks the handler about each CURVE handshake and waits
 * for the answer without blocking anyone (the handshake is simply not
 * finished yet), so the handler is one more socket on the node's loop: no
 * thread of ours ever waits on a peer. Requests are answered in the order
 * they come, from memory; a flood of handshakes costs a list lookup each.
 *
 * Refusals, of handshakes and of single messages (auth_check), are logged
 * with the key's fingerprint, at most 10 lines a second between them (a
 * scan or a misconfigured client retrying in a loop must not fill the
 * disk); a line after dropped ones says so.
 */
#include "auth.h"

#include "log.h"
#include "rpc.h"
#include "sec_acl.h"

#include <errno.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

enum {
    ZAP_FRAMES_MAX = 8,
    REFUSAL_LOGS_PER_S = 10,
};

struct auth {
    void *zctx;
    loop_t *loop;
    void *zap;
    sec_keypair_t self;
    char *peer_path, *client_path;
    sec_keylist_t *peers, *clients;
    uint64_t log_window_ms;
    unsigned logged_in_window;
    uint64_t suppressed;
};

/* Load one list (NULL path: empty). 0 or -errno with err set. */
static int load_list(const char *what, const char *path, unsigned flags, sec_keylist_t **out,
                     char *err, size_t errcap)
{
    if (!path) {
        *out = sec_keylist_new();
        return *out ? 0 : -ENOMEM;
    }
    unsigned line = 0;
    int rc = sec_keylist_load(path, flags, out, &line);
    if (rc == -EINVAL && line > 0 && (flags & SEC_LIST_VOLUMES))
        snprintf(err, errcap,
                 "%s %s, line %u: not a public key (40 Z85 characters) optionally followed by "
                 "volume names ([A-Za-z0-9._-], at most %d bytes each), nor a key listed both "
                 "with and without volumes; '#' comments",
                 what, path, line, SEC_VOLUME_MAX);
    else if (rc == -EINVAL && line > 0)
        snprintf(err, errcap,
                 "%s %s, line %u: not a public key (40 Z85 characters; '#' comments; "
                 "volume names are for client keys only)",
                 what, path, line);
    else if (rc == -EINVAL)
        snprintf(err, errcap, "%s %s: not a regular file of at most 1 MiB", what, path);
    else if (rc < 0)
        snprintf(err, errcap, "%s %s: %s", what, path, strerror(-rc));
    return rc;
}

static int load_lists(auth_t *a, sec_keylist_t **peers, sec_keylist_t **clients, char *err,
                      size_t errcap)
{
    int rc = load_list("--peer-keys", a->peer_path, 0, peers, err, errcap);
    if (rc < 0)
        return rc;
    rc = sec_keylist_add(*peers, &a->self.pub);
    if (rc == 0)
        rc = load_list("--client-keys", a->client_path, SEC_LIST_VOLUMES, clients, err, errcap);
    if (rc < 0) {
        if (rc == -ENOMEM)
            snprintf(err, errcap, "out of memory");
        sec_keylist_destroy(peers);
    }
    return rc;
}

/*
 * Whether one more refusal line may be logged now (at most
 * REFUSAL_LOGS_PER_S a second, handshakes and messages together); *more
 * says whether lines were dropped since the last one logged.
 */
static bool log_budget(auth_t *a, bool *more)
{
    uint64_t now = loop_now_ms(a->loop);
    if (now - a->log_window_ms >= 1000) {
        a->log_window_ms = now;
        a->logged_in_window = 0;
    }
    if (a->logged_in_window >= REFUSAL_LOGS_PER_S) {
        a->suppressed++;
        return false;
    }
    a->logged_in_window++;
    *more = a->suppressed > 0;
    a->suppressed = 0;
    return true;
}

static void log_refusal(auth_t *a, const uint8_t key[SEC_KEY_BYTES], const char *address)
{
    bool more;
    if (!log_budget(a, &more))
        return;
    sec_pub_t pub;
    memcpy(pub.b, key, sizeof pub.b);
    char fp[SEC_FP_SIZE];
    sec_fingerprint(&pub, fp);
    log_warn("auth", "refused key %s from %s: not in the peer or client list%s", fp, address,
             more ? " (more refusals were not logged)" : "");
}

static void send_frame(void *s, const void *data, size_t len, bool more)
{
    zmq_send(s, data, len, more ? ZMQ_SNDMORE : 0);
}

/* Answer one ZAP request (RFC 27): 200 with the key as User-Id, or 400. */
static void on_zap(loop_t *loop, void *zsock, int fd, void *arg)
{
    (void)fd;
    auth_t *a = arg;
    for (int batch = 0; batch < 256; batch++) {
        zmq_msg_t f[ZAP_FRAMES_MAX];
        int total = rpc_recv_frames(zsock, f, ZAP_FRAMES_MAX);
        if (total == 0) {
            loop_idle(loop, zsock);
            return;
        }
        int n = total < ZAP_FRAMES_MAX ? total : ZAP_FRAMES_MAX;
        bool curve = n >= 7 && zmq_msg_size(&f[5]) == 5 &&
                     memcmp(zmq_msg_data(&f[5]), "CURVE", 5) == 0 &&
                     zmq_msg_size(&f[6]) == SEC_KEY_BYTES;
        const char *code = "400", *text = "mechanism not allowed";
        char user[SEC_Z85_LEN + 1] = "";
        if (curve) {
            const uint8_t *key = zmq_msg_data(&f[6]);
            if (sec_keylist_contains(a->peers, key) || sec_keylist_contains(a->clients, key)) {
                code = "200";
                text = "OK";
                sec_z85_encode(key, user);
            } else {
                char address[64] = "?";
                size_t alen = zmq_msg_size(&f[3]);
                if (alen > 0 && alen < sizeof address) {
                    memcpy(address, zmq_msg_data(&f[3]), alen);
                    address[alen] = '\0';
                }
                log_refusal(a, key, address);
                text = "key not allowed";
            }
        }
        /* A REP socket must answer every request, even a malformed one. */
        send_frame(zsock, "1.0", 3, true);
        if (n >= 2)
            send_frame(zsock, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), true);
        else
            send_frame(zsock, "", 0, true);
        send_frame(zsock, code, 3, true);
        send_frame(zsock, text, strlen(text), true);
        send_frame(zsock, user, strlen(user), true);
        send_frame(zsock, "", 0, false);
        for (int i = 0; i < n; i++)
            zmq_msg_close(&f[i]);
    }
}

auth_t *auth_new(void *zctx, loop_t *loop, const sec_keypair_t *self, const char *peer_path,
                 const char *client_path, char *err, size_t errcap)
{
    auth_t *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    a->zctx = zctx;
    a->loop = loop;
    a->self = *self;
    a->peer_path = peer_path ? strdup(peer_path) : NULL;
    a->client_path = client_path ? strdup(client_path) : NULL;
    if ((peer_path && !a->peer_path) || (client_path && !a->client_path)) {
        snprintf(err, errcap, "out of memory");
        goto fail;
    }
    if (load_lists(a, &a->peers, &a->clients, err, errcap) < 0)
        goto fail;
    a->zap = zmq_socket(zctx, ZMQ_REP);
    int linger = 0;
    if (!a->zap || zmq_setsockopt(a->zap, ZMQ_LINGER, &linger, sizeof linger) < 0 ||
        zmq_bind(a->zap, "inproc://zeromq.zap.01") < 0) {
        snprintf(err, errcap, "cannot start the ZAP handler: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (loop_add_socket(loop, a->zap, on_zap, a) < 0) {
        snprintf(err, errcap, "out of memory");
        goto fail;
    }
    return a;
fail:
    auth_destroy(&a);
    return NULL;
}

void auth_destroy(auth_t **pa)
{
    if (!pa || !*pa)
        return;
    auth_t *a = *pa;
    if (a->zap) {
        loop_remove_socket(a->loop, a->zap);
        zmq_close(a->zap);
    }
    sec_keylist_destroy(&a->peers);
    sec_keylist_destroy(&a->clients);
    free(a->peer_path);
    free(a->client_path);
    sodium_memzero(&a->self, sizeof a->self);
    free(a);
    *pa = NULL;
}

int auth_reload(auth_t *a, char *err, size_t errcap)
{
    sec_keylist_t *peers = NULL, *clients = NULL;
    int rc = load_lists(a, &peers, &clients, err, errcap);
    if (rc < 0)
        return rc;
    sec_keylist_destroy(&a->peers);
    sec_keylist_destroy(&a->clients);
    a->peers = peers;
    a->clients = clients;
    return 0;
}

bool auth_check(auth_t *a, const char *user_id, const wire_msg_t *m, char *why, size_t cap)
{
    uint8_t key[SEC_KEY_BYTES] = {0};
    bool decoded = user_id && sec_z85_decode(user_id, strlen(user_id), key) == 0;
    sec_acl_t v = decoded ? sec_acl_decide(a->peers, a->clients, key, m) : SEC_ACL_UNKNOWN;
    if (v == SEC_ACL_ALLOW)
        return true;
    char vols[128] = "";
    const char *type = wire_type_name(m->type);
    switch (v) {
    case SEC_ACL_PEER_ONLY:
        snprintf(why, cap, "access denied: %s needs a peer key", type);
        break;
    case SEC_ACL_VOLUME:
        sec_keylist_volumes(a->clients, key, vols, sizeof vols);
        snprintf(why, cap, "access denied: this client key may only use volume(s) %s", vols);
        break;
    default:
        snprintf(why, cap, "access denied: this key is not allowed on this ring");
        break;
    }
    bool more;
    if (!log_budget(a, &more))
        return false;
    char fp[SEC_FP_SIZE] = "?";
    sec_pub_t pub;
    memcpy(pub.b, key, sizeof pub.b);
    if (decoded)
        sec_fingerprint(&pub, fp);
    const char *reason = v == SEC_ACL_PEER_ONLY ? "a peer operation"
                         : v == SEC_ACL_VOLUME  ? "a key outside its volumes"
                                                : "no longer in the peer or client list";
    if (v == SEC_ACL_VOLUME)
        log_warn("auth", "refused %s from client key %s: %s (%s)%s", type, fp, reason, vols,
                 more ? " (more refusals were not logged)" : "");
    else
        log_warn("auth", "refused %s from %skey %s: %s%s", type,
                 v == SEC_ACL_PEER_ONLY ? "client " : "", fp, reason,
                 more ? " (more refusals were not logged)" : "");
    return false;
}

size_t auth_peer_count(const auth_t *a)
{
    return sec_keylist_count(a->peers);
}

size_t auth_client_count(const auth_t *a)
{
    return sec_keylist_count(a->clients);
}

size_t auth_restricted_count(const auth_t *a)
{
    return sec_keylist_restricted_count(a->clients);
}

/*
 * auth.h — who may talk to a secured node: the ZAP handler of its CURVE
 * server socket and what each message's sender may ask.
 *
 * Two allow-lists of public keys (sec_key.h): peers (ring members: every
 * operation) and clients (store and read-only ring operations; a client
 * key may be restricted to some volumes' store keys). The node's
 * own public key always counts as a peer. The ZAP handler (ZeroMQ RFC 27)
 * is a REP socket on inproc://zeromq.zap.01 served from the process's loop:
 * a handshake with a listed key is accepted and its connection's User-Id
 * set to the key's Z85 text; any other key is refused and logged with its
 * fingerprint. Because a connection outlives the lists, the node also asks
 * auth_check() about every message: a key removed by auth_reload() is refused
 * from its next message on.
 */
#ifndef AUTH_H
#define AUTH_H

#include "loop.h"
#include "sec_key.h"
#include "wire.h"

#include <stdbool.h>

#include <stddef.h>
#include <stdint.h>

typedef struct auth auth_t;

/*
 * Load the lists (peer_path and client_path may be NULL: empty list; both
 * copied) and bind the ZAP handler in zctx, watched by loop (both borrowed,
 * outliving the auth). Must run before any CURVE server socket of zctx
 * binds. Returns NULL with err (errcap bytes) explaining why: a list that
 * cannot be read or is malformed (with its line), or the ZAP endpoint
 * already bound.
 */
auth_t *auth_new(void *zctx, loop_t *loop, const sec_keypair_t *self, const char *peer_path,
                 const char *client_path, char *err, size_t errcap);
void auth_destroy(auth_t **auth);

/*
 * Re-read both lists. On any error the old lists stay in force and err
 * says why; returns 0 or -errno.
 */
int auth_reload(auth_t *auth, char *err, size_t errcap);

/*
 * Whether the sender of m may send it: user_id is the Z85 text of the key
 * its connection authenticated with (the "User-Id" property of the
 * received message; NULL or unknown: refused). Peers may send anything;
 * clients the store and read-only ring operations, and a client key
 * listed with volumes only store keys of those volumes (sec_acl.h). When
 * refused, why (cap bytes) holds the reason for the ERROR reply, and the
 * refusal is logged with the key's fingerprint, rate-limited together
 * with the handshake refusals.
 */
bool auth_check(auth_t *auth, const char *user_id, const wire_msg_t *m, char *why, size_t cap);

/* Number of keys in each list (the node's own key included in peers). */
size_t auth_peer_count(const auth_t *auth);
size_t auth_client_count(const auth_t *auth);
/* Number of client keys restricted to volumes. */
size_t auth_restricted_count(const auth_t *auth);

#endif

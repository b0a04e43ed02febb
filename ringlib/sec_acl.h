/*
 * sec_acl.h — what a key may ask of a secured node: the authorisation
 * decision for one received message, as a pure function of the allow-lists
 * (sec_key.h) and the decoded message (wire.h).
 *
 * Peers (ring members) may send everything. Clients may send the store
 * operations and the read-only views of the ring (sec_acl_client_may). A
 * client key listed with volumes may, in addition, name only store keys of
 * those volumes ("v/VOL/..."): every message that carries a store key is
 * checked, so neither another volume nor another namespace (the memcached
 * port's "mc/", keys written with dhtctl) is reachable with it. Ring,
 * status and lookup messages carry no store key (a lookup sends the key's
 * position only) and stay allowed.
 *
 * No sockets, no clock, no logging: the caller logs and answers.
 */
#ifndef SEC_ACL_H
#define SEC_ACL_H

#include "sec_key.h"
#include "wire.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    SEC_ACL_ALLOW,
    SEC_ACL_UNKNOWN,   /* the key is in neither list (or no longer) */
    SEC_ACL_PEER_ONLY, /* a client key asked a peer operation */
    SEC_ACL_VOLUME,    /* a client key restricted to volumes named a key outside them */
} sec_acl_t;

/* Whether a client key may send a message of this type (before any volume check). */
bool sec_acl_client_may(uint8_t type);

/*
 * The decision for message m (decoded; its key borrowed) sent by the
 * connection authenticated with key. peers and clients are borrowed; the
 * node's own key is expected in peers. The peer list wins when a key is in
 * both.
 */
sec_acl_t sec_acl_decide(const sec_keylist_t *peers, const sec_keylist_t *clients,
                         const uint8_t key[SEC_KEY_BYTES], const wire_msg_t *m);

#endif

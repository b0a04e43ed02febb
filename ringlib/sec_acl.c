/*
 * sec_acl.c — the authorisation decision of a secured node (sec_acl.h).
 *
 * The volume check looks at every message that carries a store key, not
 * at a list of types known to carry one: a client type added later with a
 * key field is checked without anyone remembering to add it here. Types a
 * client may not send at all are refused before that.
 */
#include "sec_acl.h"

bool sec_acl_client_may(uint8_t type)
{
    switch (type) {
    case WIRE_PING:
    case WIRE_INFO:
    case WIRE_FIND:
    case WIRE_FINGERS:
    case WIRE_MEMBERS: /* a view of the ring, as FINGERS */
    case WIRE_KV_GET:
    case WIRE_KV_PUT:
    case WIRE_KV_READ:
    case WIRE_STATS:
        return true;
    default:
        return false;
    }
}

static bool carries_store_key(const wire_msg_t *m)
{
    switch (m->type) {
    case WIRE_KV_GET:
    case WIRE_KV_PUT:
    case WIRE_KV_READ:
        return true;
    default:
        return m->key_bytes != NULL || m->key_len > 0;
    }
}

sec_acl_t sec_acl_decide(const sec_keylist_t *peers, const sec_keylist_t *clients,
                         const uint8_t key[SEC_KEY_BYTES], const wire_msg_t *m)
{
    if (sec_keylist_contains(peers, key))
        return SEC_ACL_ALLOW;
    if (!sec_keylist_contains(clients, key))
        return SEC_ACL_UNKNOWN;
    if (!sec_acl_client_may(m->type))
        return SEC_ACL_PEER_ONLY;
    if (sec_keylist_restricted(clients, key) && carries_store_key(m) &&
        !sec_keylist_allows(clients, key, m->key_bytes, m->key_len))
        return SEC_ACL_VOLUME;
    return SEC_ACL_ALLOW;
}

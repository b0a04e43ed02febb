/*
 * test_sec_acl.c — the authorisation decision of a secured node: every
 * message type against peers, clients with every volume, clients
 * restricted to volumes, and unknown keys.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "sec_acl.h"

typedef struct {
    sec_keypair_t peer, full, home, stranger;
    sec_keylist_t *peers, *clients;
} fixture_t;

static int setup(void **state)
{
    static fixture_t f;
    if (sec_keypair_generate(&f.peer) || sec_keypair_generate(&f.full) ||
        sec_keypair_generate(&f.home) || sec_keypair_generate(&f.stranger))
        return -1;
    char zp[SEC_Z85_LEN + 1], zf[SEC_Z85_LEN + 1], zh[SEC_Z85_LEN + 1], text[512];
    sec_z85_encode(f.peer.pub.b, zp);
    sec_z85_encode(f.full.pub.b, zf);
    sec_z85_encode(f.home.pub.b, zh);
    snprintf(text, sizeof text, "%s\n", zp);
    if (sec_keylist_parse(text, strlen(text), 0, &f.peers, NULL) < 0)
        return -1;
    snprintf(text, sizeof text, "%s\n%s home # ann\n", zf, zh);
    if (sec_keylist_parse(text, strlen(text), SEC_LIST_VOLUMES, &f.clients, NULL) < 0)
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    sec_keylist_destroy(&f->peers);
    sec_keylist_destroy(&f->clients);
    return 0;
}

static wire_msg_t *msg(uint8_t type, const char *key)
{
    static wire_msg_t m;
    wire_init(&m, type, 1);
    if (key) {
        m.key_bytes = (const uint8_t *)key;
        m.key_len = (uint16_t)strlen(key);
    }
    return &m;
}

static sec_acl_t decide(const fixture_t *f, const sec_keypair_t *who, uint8_t type, const char *key)
{
    return sec_acl_decide(f->peers, f->clients, who->pub.b, msg(type, key));
}

static const uint8_t all_types[] = {
    WIRE_PING,       WIRE_INFO,      WIRE_NOTIFY, WIRE_FIND,      WIRE_FINGERS,  WIRE_UPDATE,
    WIRE_LEAVE,      WIRE_KV_GET,    WIRE_KV_PUT, WIRE_REPL_GET,  WIRE_REPL_PUT, WIRE_SYNC_DIGEST,
    WIRE_SYNC_OFFER, WIRE_SYNC_PULL, WIRE_STATS,  WIRE_SYNC_DROP, WIRE_KV_READ,  WIRE_MEMBERS,
};
enum { NTYPES = sizeof all_types / sizeof all_types[0] };

static bool is_store_op(uint8_t t)
{
    return t == WIRE_KV_GET || t == WIRE_KV_PUT || t == WIRE_KV_READ;
}

static void test_decide_peer_may_everything(void **state)
{
    fixture_t *f = *state;
    for (size_t i = 0; i < NTYPES; i++) {
        assert_int_equal(decide(f, &f->peer, all_types[i], "mc/x"), SEC_ACL_ALLOW);
        assert_int_equal(decide(f, &f->peer, all_types[i], NULL), SEC_ACL_ALLOW);
    }
}

static void test_decide_unknown_key_refused(void **state)
{
    fixture_t *f = *state;
    for (size_t i = 0; i < NTYPES; i++)
        assert_int_equal(decide(f, &f->stranger, all_types[i], "v/home/super"), SEC_ACL_UNKNOWN);
}

static void test_decide_client_types(void **state)
{
    fixture_t *f = *state;
    const uint8_t client[] = {WIRE_PING,   WIRE_INFO,   WIRE_FIND,    WIRE_FINGERS, WIRE_MEMBERS,
                              WIRE_KV_GET, WIRE_KV_PUT, WIRE_KV_READ, WIRE_STATS};
    for (size_t i = 0; i < NTYPES; i++) {
        bool may = memchr(client, all_types[i], sizeof client) != NULL;
        assert_int_equal(sec_acl_client_may(all_types[i]), may);
        const char *key = is_store_op(all_types[i]) ? "v/home/super" : NULL;
        sec_acl_t want = may ? SEC_ACL_ALLOW : SEC_ACL_PEER_ONLY;
        assert_int_equal(decide(f, &f->full, all_types[i], key), want);
        assert_int_equal(decide(f, &f->home, all_types[i], key), want);
    }
}

static void test_decide_full_client_any_key(void **state)
{
    fixture_t *f = *state;
    const char *keys[] = {"mc/item", "v/other/super", "greeting", ""};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        assert_int_equal(decide(f, &f->full, WIRE_KV_GET, keys[k]), SEC_ACL_ALLOW);
        assert_int_equal(decide(f, &f->full, WIRE_KV_PUT, keys[k]), SEC_ACL_ALLOW);
        assert_int_equal(decide(f, &f->full, WIRE_KV_READ, keys[k]), SEC_ACL_ALLOW);
    }
}

static void test_decide_restricted_client_volumes(void **state)
{
    fixture_t *f = *state;
    const uint8_t store[] = {WIRE_KV_GET, WIRE_KV_PUT, WIRE_KV_READ};
    const char *inside[] = {"v/home/super", "v/home/next", "v/home/i/1", "v/home/c/2a/0",
                            "v/home/lock/2a"};
    const char *outside[] = {"v/other/super", "v/homes/super", "v/home", "mc/item",
                             "mc!flush",      "greeting",      "",       "V/home/super"};
    for (size_t t = 0; t < sizeof store; t++) {
        for (size_t k = 0; k < sizeof inside / sizeof inside[0]; k++)
            assert_int_equal(decide(f, &f->home, store[t], inside[k]), SEC_ACL_ALLOW);
        for (size_t k = 0; k < sizeof outside / sizeof outside[0]; k++)
            if (decide(f, &f->home, store[t], outside[k]) != SEC_ACL_VOLUME)
                fail_msg("%s of \"%s\" allowed to a key restricted to home",
                         wire_type_name(store[t]), outside[k]);
        /* A store operation without a key names no volume of ours. */
        assert_int_equal(decide(f, &f->home, store[t], NULL), SEC_ACL_VOLUME);
    }
    /* Ring views carry no store key: allowed. */
    assert_int_equal(decide(f, &f->home, WIRE_FIND, NULL), SEC_ACL_ALLOW);
    assert_int_equal(decide(f, &f->home, WIRE_STATS, NULL), SEC_ACL_ALLOW);
    /* Any other client type that carries a store key is checked as well. */
    assert_int_equal(decide(f, &f->home, WIRE_PING, "mc/x"), SEC_ACL_VOLUME);
    assert_int_equal(decide(f, &f->home, WIRE_PING, "v/home/x"), SEC_ACL_ALLOW);
}

static void test_decide_peer_list_wins(void **state)
{
    fixture_t *f = *state;
    /* The same key in both lists is a peer: its volume grant does not bind it. */
    sec_keylist_t *peers = NULL;
    char zh[SEC_Z85_LEN + 1];
    sec_z85_encode(f->home.pub.b, zh);
    assert_int_equal(sec_keylist_parse(zh, SEC_Z85_LEN, 0, &peers, NULL), 0);
    assert_int_equal(sec_acl_decide(peers, f->clients, f->home.pub.b, msg(WIRE_KV_GET, "mc/x")),
                     SEC_ACL_ALLOW);
    sec_keylist_destroy(&peers);
    assert_int_equal(sec_acl_decide(NULL, NULL, f->home.pub.b, msg(WIRE_PING, NULL)),
                     SEC_ACL_UNKNOWN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decide_peer_may_everything),
        cmocka_unit_test(test_decide_unknown_key_refused),
        cmocka_unit_test(test_decide_client_types),
        cmocka_unit_test(test_decide_full_client_any_key),
        cmocka_unit_test(test_decide_restricted_client_volumes),
        cmocka_unit_test(test_decide_peer_list_wins),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

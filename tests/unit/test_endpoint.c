/*
 * test_endpoint.c — endpoint normalization and its refusals.
 *
 * A node's id is the hash of its normalized endpoint, so besides the accepted
 * spellings the tests check that normalization is idempotent and that every
 * refusal comes with a reason.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "endpoint.h"
#include "sec_key.h"

static void assert_normalizes(const char *in, const char *want)
{
    char out[ENDPOINT_MAX];
    const char *why = "untouched";
    int rc = endpoint_normalize(in, out, sizeof out, &why);
    if (rc != 0)
        fail_msg("\"%s\" refused (%d): %s", in, rc, why);
    assert_string_equal(out, want);
    /* Normalizing a normalized endpoint changes nothing. */
    char again[ENDPOINT_MAX];
    assert_int_equal(endpoint_normalize(out, again, sizeof again, NULL), 0);
    assert_string_equal(again, out);
}

static void assert_refused(const char *in)
{
    char out[ENDPOINT_MAX];
    const char *why = NULL;
    int rc = endpoint_normalize(in, out, sizeof out, &why);
    if (rc != -EINVAL)
        fail_msg("\"%s\" gave %d, expected -EINVAL", in ? in : "(null)", rc);
    assert_non_null(why);
    assert_true(strlen(why) > 0);
    /* why may be NULL. */
    assert_int_equal(endpoint_normalize(in, out, sizeof out, NULL), -EINVAL);
}

static void test_endpoint_normalize_host_port(void **state)
{
    (void)state;
    assert_normalizes("127.0.0.1:7001", "tcp://127.0.0.1:7001");
    assert_normalizes("localhost:1", "tcp://localhost:1");
    assert_normalizes("node-1.example.org:65535", "tcp://node-1.example.org:65535");
    assert_normalizes("my_host:80", "tcp://my_host:80");
}

static void test_endpoint_normalize_tcp_passthrough(void **state)
{
    (void)state;
    assert_normalizes("tcp://127.0.0.1:7001", "tcp://127.0.0.1:7001");
    assert_normalizes("tcp://Node.Example.ORG:9000", "tcp://Node.Example.ORG:9000");
}

static void test_endpoint_normalize_ipv6(void **state)
{
    (void)state;
    assert_normalizes("[::1]:7000", "tcp://[::1]:7000");
    assert_normalizes("tcp://[::1]:7000", "tcp://[::1]:7000");
    assert_normalizes("[fe80::1:2]:7000", "tcp://[fe80::1:2]:7000");
    assert_normalizes("[::ffff:127.0.0.1]:7000", "tcp://[::ffff:127.0.0.1]:7000");
}

static void test_endpoint_normalize_ipc(void **state)
{
    (void)state;
    assert_normalizes("ipc:///tmp/dht/node0.sock", "ipc:///tmp/dht/node0.sock");
    assert_normalizes("ipc://relative", "ipc://relative");
}

static void test_endpoint_normalize_port_leading_zeros(void **state)
{
    (void)state;
    /* Deterministic ids: one port, one spelling. */
    assert_normalizes("host:0080", "tcp://host:80");
    assert_normalizes("tcp://host:00001", "tcp://host:1");
}

static void test_endpoint_normalize_refuses_empty(void **state)
{
    (void)state;
    assert_refused("");
    assert_refused(NULL);
    assert_refused("ipc://");
    assert_refused("tcp://");
}

static void test_endpoint_normalize_refuses_bad_port(void **state)
{
    (void)state;
    assert_refused("127.0.0.1");
    assert_refused("127.0.0.1:");
    assert_refused("tcp://127.0.0.1");
    assert_refused("host:0");
    assert_refused("host:00000");
    assert_refused("host:65536");
    assert_refused("host:99999");
    assert_refused("host:123456");
    assert_refused("host:7a");
    assert_refused("host:-1");
    assert_refused("host:+80");
    assert_refused("host: 80");
    assert_refused("host:80 ");
    assert_refused("[::1]");
}

static void test_endpoint_normalize_refuses_bad_host(void **state)
{
    (void)state;
    assert_refused(":7000");
    assert_refused("tcp://:7000");
    assert_refused("bad host:7000");
    assert_refused("host/x:7000");
    assert_refused("::1:7000");
    assert_refused("[]:7000");
    assert_refused("[::1:7000");
    assert_refused("[::g]:7000");
    assert_refused("[fe80::1%eth0]:7000");
}

static void test_endpoint_normalize_refuses_wildcards(void **state)
{
    (void)state;
    assert_refused("*:7000");
    assert_refused("tcp://*:7000");
    assert_refused("host:*");
    assert_refused("tcp://127.0.0.1:*");
    assert_refused("*:*");
}

static void test_endpoint_normalize_refuses_transports(void **state)
{
    (void)state;
    assert_refused("udp://127.0.0.1:7000");
    assert_refused("inproc://x");
    assert_refused("pgm://eth0;239.192.1.1:5555");
    assert_refused("TCP://127.0.0.1:7000");
    assert_refused("tcp:/127.0.0.1:7000");
}

static void test_endpoint_normalize_length_limit(void **state)
{
    (void)state;
    char in[2 * ENDPOINT_MAX];
    /* "tcp://" + host + ":7000" of exactly ENDPOINT_MAX - 1 characters fits. */
    size_t host = ENDPOINT_MAX - 1 - strlen("tcp://") - strlen(":7000");
    memcpy(in, "tcp://", 6);
    memset(in + 6, 'h', host);
    strcpy(in + 6 + host, ":7000");
    assert_int_equal(strlen(in), ENDPOINT_MAX - 1);
    assert_normalizes(in, in);
    /* One more character does not. */
    memset(in + 6, 'h', host + 1);
    strcpy(in + 6 + host + 1, ":7000");
    assert_int_equal(strlen(in), ENDPOINT_MAX);
    assert_refused(in);
    /* Short input whose normalized form (with "tcp://") would not fit. */
    memset(in, 'h', host + 1);
    strcpy(in + host + 1, ":7000");
    assert_true(strlen(in) < ENDPOINT_MAX);
    assert_refused(in);
    /* ipc:// paths obey the same limit. */
    memcpy(in, "ipc://", 6);
    memset(in + 6, 'p', ENDPOINT_MAX - 7);
    in[ENDPOINT_MAX - 1] = '\0';
    assert_normalizes(in, in);
    memset(in + 6, 'p', ENDPOINT_MAX - 6);
    in[ENDPOINT_MAX] = '\0';
    assert_refused(in);
    /* Very long input. */
    memset(in, 'h', sizeof in - 1);
    in[sizeof in - 1] = '\0';
    assert_refused(in);
}

static void test_endpoint_normalize_wire_safe(void **state)
{
    (void)state;
    /*
     * An endpoint travels in every NOTIFY, FIND reply and successor list,
     * where the grammar carries printable ASCII without spaces (0x21-0x7e):
     * whatever is accepted here must be carriable there.
     */
    const char *inputs[] = {
        "ipc:///tmp/my dir/n0.sock", "ipc:///tmp/tab\there", "ipc:///tmp/caf\xc3\xa9",
        "ipc:///tmp/nl\n",           "127.0.0.1:7001",       "[::1]:7000"};
    for (size_t k = 0; k < sizeof inputs / sizeof inputs[0]; k++) {
        char out[ENDPOINT_MAX];
        if (endpoint_normalize(inputs[k], out, sizeof out, NULL) != 0)
            continue;
        for (const char *p = out; *p; p++)
            if (*p < 0x21 || *p > 0x7e)
                fail_msg("accepted \"%s\", which the wire cannot carry (byte 0x%02x)", out,
                         (unsigned char)*p);
    }
}

static void test_endpoint_normalize_small_buffer(void **state)
{
    (void)state;
    char out[8];
    const char *why = NULL;
    assert_int_equal(endpoint_normalize("127.0.0.1:7001", out, sizeof out, &why), -EINVAL);
    assert_non_null(why);
    why = NULL;
    assert_int_equal(endpoint_normalize("ipc:///tmp/long/path", out, sizeof out, &why), -EINVAL);
    assert_non_null(why);
    char exact[sizeof "tcp://h:1"];
    assert_int_equal(endpoint_normalize("h:1", exact, sizeof exact, NULL), 0);
    assert_string_equal(exact, "tcp://h:1");
}

/* A valid Z85 key (the text of 32 bytes) and its bytes' first group. */
#define KEY40 "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"

static void test_endpoint_key_suffix(void **state)
{
    (void)state;
    assert_normalizes("127.0.0.1:7001#" KEY40, "tcp://127.0.0.1:7001#" KEY40);
    assert_normalizes("tcp://[::1]:07000#" KEY40, "tcp://[::1]:7000#" KEY40);
    assert_normalizes("ipc:///tmp/n#0.sock#" KEY40, "ipc:///tmp/n#0.sock#" KEY40);
    /* In an ipc path a '#' that does not start a key is part of the path. */
    assert_normalizes("ipc:///tmp/n#0.sock", "ipc:///tmp/n#0.sock");

    char base[ENDPOINT_MAX];
    uint8_t key[32], want[32];
    assert_int_equal(sec_z85_decode(KEY40, 40, want), 0);
    assert_int_equal(endpoint_split_key("tcp://h:1#" KEY40, base, key), 1);
    assert_string_equal(base, "tcp://h:1");
    assert_memory_equal(key, want, 32);
    assert_int_equal(endpoint_split_key("tcp://h:1", base, key), 0);
    assert_string_equal(base, "tcp://h:1");
    assert_int_equal(endpoint_split_key("ipc:///x#" KEY40, base, key), 1);
    assert_string_equal(base, "ipc:///x");
    assert_int_equal(endpoint_split_key("tcp://h:1#short", base, key), -EINVAL);
    assert_int_equal(endpoint_split_key(NULL, base, key), -EINVAL);
}

static void test_endpoint_key_suffix_refused(void **state)
{
    (void)state;
    assert_refused("127.0.0.1:7001#");
    assert_refused("127.0.0.1:7001#abc");
    assert_refused("127.0.0.1:7001#" KEY40 "x");
    assert_refused("127.0.0.1:7001##" KEY40);
    assert_refused("127.0.0.1:7001#rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf\"");
    assert_refused("#" KEY40);
    assert_refused("bad host:1#" KEY40);
}

static void test_endpoint_is_local(void **state)
{
    (void)state;
    assert_true(endpoint_is_local("tcp://127.0.0.1:7000"));
    assert_true(endpoint_is_local("127.1.2.3:7000"));
    assert_true(endpoint_is_local("tcp://[::1]:7000"));
    assert_true(endpoint_is_local("tcp://localhost:7000"));
    assert_true(endpoint_is_local("ipc:///tmp/n0"));
    assert_true(endpoint_is_local("tcp://127.0.0.1:7000#" KEY40));
    assert_false(endpoint_is_local("tcp://0.0.0.0:7000"));
    assert_false(endpoint_is_local("tcp://10.0.0.1:7000"));
    assert_false(endpoint_is_local("tcp://128.0.0.1:7000"));
    assert_false(endpoint_is_local("tcp://127.0.0.1.example.org:7000"));
    assert_false(endpoint_is_local("tcp://127.0.0.256:7000"));
    assert_false(endpoint_is_local("tcp://[::2]:7000"));
    assert_false(endpoint_is_local("tcp://node1:7000"));
    assert_false(endpoint_is_local(NULL));
}

static bool v4_loopback(const char *a)
{
    struct sockaddr_in in = {.sin_family = AF_INET};
    assert_int_equal(inet_pton(AF_INET, a, &in.sin_addr), 1);
    return endpoint_sockaddr_is_loopback((const struct sockaddr *)&in);
}

static bool v6_loopback(const char *a)
{
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
    assert_int_equal(inet_pton(AF_INET6, a, &in6.sin6_addr), 1);
    return endpoint_sockaddr_is_loopback((const struct sockaddr *)&in6);
}

static void test_endpoint_split_hostport(void **state)
{
    (void)state;
    char host[16], port[ENDPOINT_PORT_MAX];
    const char *why = NULL;
    assert_int_equal(endpoint_split_hostport("127.0.0.1:11211", host, sizeof host, port, &why), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_string_equal(port, "11211");
    assert_int_equal(endpoint_split_hostport("localhost:0", host, sizeof host, port, &why), 0);
    assert_string_equal(host, "localhost");
    assert_string_equal(port, "0");
    assert_int_equal(endpoint_split_hostport("[::1]:65535", host, sizeof host, port, &why), 0);
    assert_string_equal(host, "::1");
    assert_string_equal(port, "65535");
    static const char *const bad[] = {
        "nonsense",
        "127.0.0.1",
        "127.0.0.1:",
        ":80",
        "[::1]",
        "[::1]80",
        "::1:80",
        "127.0.0.1:65536",
        "127.0.0.1:099999",
        "127.0.0.1:x",
        "127.0.0.1:-1",
        "127.0.0.1:80/x",
        "a-host-name-that-is-too-long:80",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why = NULL;
        if (endpoint_split_hostport(bad[i], host, sizeof host, port, &why) != -EINVAL)
            fail_msg("'%s' accepted", bad[i]);
        assert_non_null(why);
    }
}

static void test_endpoint_sockaddr_is_loopback(void **state)
{
    (void)state;
    assert_true(v4_loopback("127.0.0.1"));
    assert_true(v4_loopback("127.255.3.4"));
    assert_false(v4_loopback("10.0.0.1"));
    assert_false(v4_loopback("0.0.0.0"));
    assert_true(v6_loopback("::1"));
    assert_true(v6_loopback("::ffff:127.0.0.2"));
    assert_false(v6_loopback("::ffff:10.0.0.1"));
    assert_false(v6_loopback("::"));
    assert_false(v6_loopback("fe80::1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endpoint_normalize_host_port),
        cmocka_unit_test(test_endpoint_normalize_tcp_passthrough),
        cmocka_unit_test(test_endpoint_normalize_ipv6),
        cmocka_unit_test(test_endpoint_normalize_ipc),
        cmocka_unit_test(test_endpoint_normalize_port_leading_zeros),
        cmocka_unit_test(test_endpoint_normalize_refuses_empty),
        cmocka_unit_test(test_endpoint_normalize_refuses_bad_port),
        cmocka_unit_test(test_endpoint_normalize_refuses_bad_host),
        cmocka_unit_test(test_endpoint_normalize_refuses_wildcards),
        cmocka_unit_test(test_endpoint_normalize_refuses_transports),
        cmocka_unit_test(test_endpoint_normalize_length_limit),
        cmocka_unit_test(test_endpoint_normalize_wire_safe),
        cmocka_unit_test(test_endpoint_normalize_small_buffer),
        cmocka_unit_test(test_endpoint_key_suffix),
        cmocka_unit_test(test_endpoint_key_suffix_refused),
        cmocka_unit_test(test_endpoint_is_local),
        cmocka_unit_test(test_endpoint_split_hostport),
        cmocka_unit_test(test_endpoint_sockaddr_is_loopback),
    };
    return cmocka_run_group_tests_name("endpoint", tests, NULL, NULL);
}

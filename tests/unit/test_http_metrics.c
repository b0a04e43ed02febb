/*
 * test_http_metrics.c — the metrics HTTP server on a real loop over
 * loopback TCP (port 0): a client thread speaks raw HTTP while the test's
 * thread runs the loop. A 4 MB scrape to a reader with a tiny receive
 * buffer that waits before reading (the timer-driven write retries), the
 * same after the client shut its side down, a request head split across
 * writes, bare-LF heads, HEAD, 404/405/400/431, and the addresses refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "http_metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    /* the script */
    unsigned port;
    const char *parts[3]; /* sent in order, delay_ms apart */
    unsigned delay_ms;
    bool half_close;     /* shutdown(SHUT_WR) after the request */
    unsigned read_after; /* ms to wait before reading */
    int rcvbuf;          /* SO_RCVBUF (0: default) */
    /* the outcome */
    char *resp;
    size_t len;
    atomic_bool done;
} client_t;

static void *client_main(void *arg)
{
    client_t *c = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->rcvbuf)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &c->rcvbuf, sizeof c->rcvbuf);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        for (int i = 0; i < 3 && c->parts[i]; i++) {
            if (i)
                usleep(c->delay_ms * 1000);
            ssize_t w = send(fd, c->parts[i], strlen(c->parts[i]), MSG_NOSIGNAL);
            (void)w;
        }
        if (c->half_close)
            shutdown(fd, SHUT_WR);
        usleep(c->read_after * 1000);
        size_t cap = 1 << 16;
        c->resp = malloc(cap);
        for (;;) {
            if (c->len + 4096 > cap)
                c->resp = realloc(c->resp, cap *= 2);
            ssize_t r = recv(fd, c->resp + c->len, 4096, 0);
            if (r <= 0)
                break;
            c->len += (size_t)r;
        }
        c->resp[c->len] = '\0';
    }
    close(fd);
    atomic_store(&c->done, true);
    return NULL;
}

typedef struct {
    client_t *c;
    bool timed_out;
} watch_t;

static void on_check(loop_t *loop, void *arg)
{
    watch_t *w = arg;
    if (atomic_load(&w->c->done)) {
        loop_stop(loop);
        return;
    }
    loop_timer_add(loop, 5, on_check, w);
}

static void on_deadline(loop_t *loop, void *arg)
{
    ((watch_t *)arg)->timed_out = true;
    loop_stop(loop);
}

static size_t big_lines; /* samples the collector writes */

static void collect(mx_buf_t *b, void *arg)
{
    (void)arg;
    mx_family(b, "test_big", MX_GAUGE, "A big family.");
    for (size_t i = 0; i < big_lines; i++) {
        char v[24];
        snprintf(v, sizeof v, "%zu", i);
        mx_label_t l = {"i", v};
        mx_sample_u64(b, "test_big", &l, 1, i);
    }
}

/* Run the client script against a fresh server until the client is done. */
static void run(client_t *c)
{
    loop_t *loop = loop_new();
    char err[256];
    http_metrics_t *h =
        http_metrics_new(loop, "127.0.0.1:0", false, collect, NULL, err, sizeof err);
    assert_non_null(h);
    c->port = http_metrics_port(h);
    assert_true(c->port > 0);
    watch_t w = {c, false};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, client_main, c), 0);
    loop_timer_add(loop, 5, on_check, &w);
    uint64_t dl = loop_timer_add(loop, 20000, on_deadline, &w);
    loop_run(loop);
    loop_timer_cancel(loop, dl);
    pthread_join(t, NULL);
    http_metrics_destroy(&h);
    assert_null(h);
    loop_destroy(&loop);
    assert_false(w.timed_out);
    assert_non_null(c->resp);
}

/* The body after the head; its length must be the head's Content-Length. */
static const char *body_of(const client_t *c, size_t *len)
{
    const char *end = strstr(c->resp, "\r\n\r\n");
    assert_non_null(end);
    const char *cl = strstr(c->resp, "Content-Length: ");
    assert_non_null(cl);
    *len = c->len - (size_t)(end + 4 - c->resp);
    assert_int_equal(strtoull(cl + 16, NULL, 10), *len);
    return end + 4;
}

static void check_big(client_t *c)
{
    assert_true(strncmp(c->resp, "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_non_null(strstr(c->resp, "Content-Type: text/plain; version=0.0.4"));
    assert_non_null(strstr(c->resp, "Connection: close\r\n"));
    size_t len;
    const char *body = body_of(c, &len);
    mx_buf_t want;
    mx_buf_init(&want);
    collect(&want, NULL);
    assert_true(len > want.len);
    assert_memory_equal(body, want.data, want.len);
    assert_non_null(strstr(body + want.len, "http_metrics_scrapes_total 1\n"));
    mx_buf_free(&want);
    free(c->resp);
}

static void test_big_slow_reader(void **state)
{
    (void)state;
    big_lines = 200000; /* ~4 MB */
    client_t c = {
        .parts = {"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"}, .read_after = 300, .rcvbuf = 4096};
    run(&c);
    assert_true(c.len > 4000000);
    check_big(&c);
}

static void test_big_half_closed(void **state)
{
    (void)state;
    big_lines = 200000;
    client_t c = {.parts = {"GET /metrics HTTP/1.0\r\n\r\n"},
                  .half_close = true,
                  .read_after = 300,
                  .rcvbuf = 4096};
    run(&c);
    check_big(&c);
}

static void test_split_head(void **state)
{
    (void)state;
    big_lines = 3;
    client_t c = {.parts = {"GET /met", "rics HTTP/1.1\r\nHost: x\r", "\n\r\n"}, .delay_ms = 50};
    run(&c);
    check_big(&c);
}

static void test_bare_lf_and_query(void **state)
{
    (void)state;
    big_lines = 3;
    client_t c = {.parts = {"GET /metrics?x=1 HTTP/1.0\n\n"}};
    run(&c);
    check_big(&c);
}

static void test_head(void **state)
{
    (void)state;
    big_lines = 10;
    client_t c = {.parts = {"HEAD /metrics HTTP/1.1\r\n\r\n"}};
    run(&c);
    assert_true(strncmp(c.resp, "HTTP/1.1 200 OK\r\n", 17) == 0);
    const char *end = strstr(c.resp, "\r\n\r\n");
    assert_non_null(end);
    assert_int_equal(end + 4 - c.resp, c.len); /* no body */
    assert_true(strtoull(strstr(c.resp, "Content-Length: ") + 16, NULL, 10) > 100);
    free(c.resp);
}

static void expect_status(const char *req, const char *status)
{
    big_lines = 3;
    client_t c = {.parts = {req}};
    run(&c);
    if (strncmp(c.resp, status, strlen(status)) != 0)
        fail_msg("request '%s' answered '%.40s', wanted '%s'", req, c.resp, status);
    size_t len;
    body_of(&c, &len);
    free(c.resp);
}

static void test_errors(void **state)
{
    (void)state;
    expect_status("GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 404 ");
    expect_status("GET /metricsx HTTP/1.1\r\n\r\n", "HTTP/1.1 404 ");
    expect_status("POST /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 405 ");
    expect_status("GARBAGE\r\n\r\n", "HTTP/1.1 400 ");
    expect_status("GET /metrics HTTP/2.0\r\n\r\n", "HTTP/1.1 400 ");
    expect_status("GET  /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 400 ");
    expect_status("get /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 400 ");
    static char big[HTTP_METRICS_REQ_MAX + 100];
    memset(big, 'x', sizeof big - 1);
    expect_status(big, "HTTP/1.1 431 ");
}

static void test_addresses(void **state)
{
    (void)state;
    loop_t *loop = loop_new();
    char err[256];
    static const char *const bad[] = {"nonsense", "127.0.0.1", "127.0.0.1:99999",     "127.0.0.1:x",
                                      ":80",      "[::1]",     "127.0.0.1:80/metrics"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        http_metrics_t *h = http_metrics_new(loop, bad[i], true, collect, NULL, err, sizeof err);
        if (h)
            fail_msg("'%s' accepted", bad[i]);
        assert_true(strlen(err) > 0);
    }
    err[0] = '\0';
    assert_null(http_metrics_new(loop, "0.0.0.0:0", false, collect, NULL, err, sizeof err));
    assert_non_null(strstr(err, "not a loopback address"));
    http_metrics_t *h =
        http_metrics_new(loop, "http://localhost:0", false, collect, NULL, err, sizeof err);
    assert_non_null(h);
    http_metrics_destroy(&h);
    h = http_metrics_new(loop, "[::1]:0", false, collect, NULL, err, sizeof err);
    if (h) /* IPv6 may be off on this machine */
        http_metrics_destroy(&h);
    loop_destroy(&loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_big_slow_reader),
        cmocka_unit_test(test_big_half_closed),
        cmocka_unit_test(test_split_head),
        cmocka_unit_test(test_bare_lf_and_query),
        cmocka_unit_test(test_head),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_rpc.c — rpc.c's connection handling against a real ROUTER on
 * loopback TCP, in one process on one loop:
 *  - a request sent to a peer that is down, and abandoned at its deadline,
 *    must not reach a process that listens on that address later (a late
 *    write applied by a restarted node would overwrite newer data);
 *  - a peer that misses one deadline but answers other calls meanwhile is
 *    busy, not gone: its other calls stay in flight and get their answers;
 *  - so do calls with longer deadlines to a peer that answers nothing for
 *    a while (a replica waiting for its commit).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "loop.h"
#include "rpc.h"
#include "wire.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

enum { CALLS = 3 };

typedef struct {
    void *zctx;
    loop_t *loop;
    rpc_t *rpc;
    void *server; /* ROUTER standing in for the peer, or NULL while "down" */
    char ep[64];
    /* What the server received, and the identity of its sender. */
    int received;
    uint64_t received_ids[16];
    uint8_t ident[256];
    size_t ident_len;
    /* Calls made by the test: their results (1: not finished). */
    int rc[CALLS];
    uint64_t req_id[CALLS];
} fix_t;

static void on_server(loop_t *loop, void *zsock, int fd, void *arg)
{
    (void)fd;
    fix_t *f = arg;
    for (;;) {
        zmq_msg_t parts[3];
        int total = rpc_recv_frames(zsock, parts, 3);
        if (total == 0) {
            loop_idle(loop, zsock);
            return;
        }
        assert_int_equal(total, 2);
        f->ident_len = zmq_msg_size(&parts[0]);
        assert_true(f->ident_len <= sizeof f->ident);
        memcpy(f->ident, zmq_msg_data(&parts[0]), f->ident_len);
        wire_msg_t *m = test_malloc(sizeof *m);
        assert_int_equal(wire_decode(zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]), m), 0);
        if (f->received < 16)
            f->received_ids[f->received] = m->req_id;
        f->received++;
        test_free(m);
        for (int i = 0; i < total; i++)
            zmq_msg_close(&parts[i]);
    }
}

static void server_up(fix_t *f, const char *ep)
{
    f->server = zmq_socket(f->zctx, ZMQ_ROUTER);
    int linger = 0;
    zmq_setsockopt(f->server, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_bind(f->server, ep), 0);
    size_t len = sizeof f->ep;
    assert_int_equal(zmq_getsockopt(f->server, ZMQ_LAST_ENDPOINT, f->ep, &len), 0);
    assert_int_equal(loop_add_socket(f->loop, f->server, on_server, f), 0);
}

static void server_down(fix_t *f)
{
    loop_remove_socket(f->loop, f->server);
    zmq_close(f->server);
    f->server = NULL;
}

/* Answer the server's request `req_id` (a PING) now. */
static void server_answer(fix_t *f, uint64_t req_id)
{
    wire_msg_t *r = test_malloc(sizeof *r);
    wire_init(r, WIRE_PING | WIRE_REPLY, req_id);
    uint8_t buf[256];
    int len = wire_encode(r, buf, sizeof buf);
    test_free(r);
    assert_true(len > 0);
    assert_true(zmq_send(f->server, f->ident, f->ident_len, ZMQ_SNDMORE) >= 0);
    assert_true(zmq_send(f->server, buf, (size_t)len, 0) >= 0);
    loop_touch(f->loop, f->server);
}

static int setup(void **state)
{
    fix_t *f = test_calloc(1, sizeof *f);
    f->zctx = zmq_ctx_new();
    f->loop = loop_new();
    f->rpc = rpc_new(f->zctx, f->loop);
    assert_non_null(f->rpc);
    for (int i = 0; i < CALLS; i++)
        f->rc[i] = 1;
    server_up(f, "tcp://127.0.0.1:*");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fix_t *f = *state;
    rpc_destroy(&f->rpc);
    if (f->server)
        server_down(f);
    loop_destroy(&f->loop);
    zmq_ctx_term(f->zctx);
    test_free(f);
    return 0;
}

static void on_done(int rc, const wire_msg_t *reply, void *arg)
{
    (void)reply;
    *(int *)arg = rc;
}

static void on_stop(loop_t *loop, void *arg)
{
    (void)arg;
    loop_stop(loop);
}

static void run_for(fix_t *f, uint64_t ms)
{
    loop_timer_add(f->loop, ms, on_stop, NULL);
    assert_int_equal(loop_run(f->loop), 0);
}

static void call(fix_t *f, int i, unsigned timeout_ms)
{
    wire_msg_t *req = test_malloc(sizeof *req);
    wire_init(req, WIRE_PING, 0);
    assert_int_equal(rpc_call(f->rpc, f->ep, req, timeout_ms, on_done, &f->rc[i]), 0);
    f->req_id[i] = req->req_id;
    test_free(req);
}

static void test_rpc_abandoned_request_not_delivered_later(void **state)
{
    fix_t *f = *state;
    char ep[64];
    snprintf(ep, sizeof ep, "%s", f->ep);
    /* One exchange, so the connection has heard its peer before it dies. */
    call(f, 0, 2000);
    run_for(f, 100);
    assert_int_equal(f->received, 1);
    server_answer(f, f->req_id[0]);
    run_for(f, 100);
    assert_int_equal(f->rc[0], 0);

    server_down(f);
    run_for(f, 100); /* the client notices the connection is gone */
    call(f, 1, 500);
    run_for(f, 700);
    assert_int_equal(f->rc[1], -ETIMEDOUT);

    /* A new process on the same address: ZeroMQ reconnects within 100 ms. */
    f->received = 0;
    server_up(f, ep);
    run_for(f, 600);
    assert_int_equal(f->received, 0);
    /* The address works: a new call gets through (so the check above can fail). */
    call(f, 2, 2000);
    run_for(f, 600);
    assert_int_equal(f->received, 1);
    assert_int_equal(f->received_ids[0], f->req_id[2]);
}

static void test_rpc_busy_peer_keeps_other_calls(void **state)
{
    fix_t *f = *state;
    call(f, 0, 200);  /* never answered */
    call(f, 1, 2000); /* answered at once */
    call(f, 2, 2000); /* answered after call 0 timed out */
    /* All three reach the server: usually within 100 ms, but on a loaded
     * machine the first connection can take longer. Polled for up to 1 s,
     * so that the answers below still come well inside calls 1 and 2's
     * 2000 ms (call 0 may time out meanwhile, as it must anyway). */
    for (int waited = 0; f->received < 3 && waited < 1000; waited += 20)
        run_for(f, 20);
    assert_int_equal(f->received, 3);
    server_answer(f, f->req_id[1]);
    run_for(f, 300);
    assert_int_equal(f->rc[0], -ETIMEDOUT);
    assert_int_equal(f->rc[1], 0);
    assert_int_equal(f->rc[2], 1);
    server_answer(f, f->req_id[2]);
    run_for(f, 200);
    assert_int_equal(f->rc[2], 0);
}

static void test_rpc_silent_peer_keeps_longer_calls(void **state)
{
    fix_t *f = *state;
    /* A replica's commit can outlast a short call's deadline: nothing at all
     * is answered until then, but the longer call must still get its answer. */
    call(f, 0, 200);
    call(f, 1, 3000);
    run_for(f, 400);
    assert_int_equal(f->received, 2);
    assert_int_equal(f->rc[0], -ETIMEDOUT);
    assert_int_equal(f->rc[1], 1);
    server_answer(f, f->req_id[1]);
    run_for(f, 200);
    assert_int_equal(f->rc[1], 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rpc_abandoned_request_not_delivered_later, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rpc_busy_peer_keeps_other_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_silent_peer_keeps_longer_calls, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

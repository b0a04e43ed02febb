/*
 * test_loop.c — the reactor's ZeroMQ watches over inproc PAIR sockets (no
 * network): input wakes the loop through ZMQ_FD, a callback that reads one
 * message at a time still gets every queued message without a new signal,
 * and input whose signal something else consumed (a send, a ZMQ_EVENTS
 * check) is still delivered after loop_touch. Each also with the loop
 * looking for input before it sleeps (loop_set_spin).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "loop.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

typedef struct {
    void *zctx, *a, *b;
    loop_t *loop;
    int got;
    int want;
    bool timed_out;
} fix_t;

static int setup(void **state)
{
    static int n;
    fix_t *f = test_calloc(1, sizeof *f);
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://loop-%d", n++);
    f->zctx = zmq_ctx_new();
    f->a = zmq_socket(f->zctx, ZMQ_PAIR);
    f->b = zmq_socket(f->zctx, ZMQ_PAIR);
    assert_int_equal(zmq_bind(f->a, ep), 0);
    assert_int_equal(zmq_connect(f->b, ep), 0);
    f->loop = loop_new();
    assert_non_null(f->loop);
    *state = f;
    return 0;
}

/* The same loop looking for input for 2 ms before it sleeps (loop_set_spin). */
static int setup_spin(void **state)
{
    setup(state);
    fix_t *f = *state;
    loop_set_spin(f->loop, 2000);
    return 0;
}

static int teardown(void **state)
{
    fix_t *f = *state;
    loop_destroy(&f->loop);
    int linger = 0;
    zmq_setsockopt(f->a, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(f->b, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(f->a);
    zmq_close(f->b);
    zmq_ctx_term(f->zctx);
    test_free(f);
    return 0;
}

/* Reads one message per call, like a callback that has used up its batch. */
static void on_one(loop_t *loop, void *zsock, int fd, void *arg)
{
    (void)fd;
    fix_t *f = arg;
    char buf[8];
    if (zmq_recv(zsock, buf, sizeof buf, ZMQ_DONTWAIT) >= 0 && ++f->got == f->want)
        loop_stop(loop);
}

static void on_deadline(loop_t *loop, void *arg)
{
    fix_t *f = arg;
    f->timed_out = true;
    loop_stop(loop);
}

static void send_n(void *s, int n)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(zmq_send(s, "m", 1, 0), 1);
}

static void run_until(fix_t *f, uint64_t ms)
{
    uint64_t t = loop_timer_add(f->loop, ms, on_deadline, f);
    assert_int_equal(loop_run(f->loop), 0);
    loop_timer_cancel(f->loop, t);
}

static void test_loop_input_wakes(void **state)
{
    fix_t *f = *state;
    f->want = 1;
    assert_int_equal(loop_add_socket(f->loop, f->a, on_one, f), 0);
    send_n(f->b, 1);
    run_until(f, 2000);
    assert_false(f->timed_out);
    assert_int_equal(f->got, 1);
}

static void test_loop_one_signal_many_messages(void **state)
{
    fix_t *f = *state;
    f->want = 20;
    assert_int_equal(loop_add_socket(f->loop, f->a, on_one, f), 0);
    /* Twenty messages, at most one fd signal: the rest must come from asking again. */
    send_n(f->b, 20);
    run_until(f, 2000);
    assert_false(f->timed_out);
    assert_int_equal(f->got, 20);
}

/* Input arrives and its signal is consumed by someone else on the loop's thread. */
static void consume_then_touch(loop_t *loop, void *arg)
{
    fix_t *f = arg;
    send_n(f->b, 1);
    int ev = 0;
    size_t len = sizeof ev;
    assert_int_equal(zmq_getsockopt(f->a, ZMQ_EVENTS, &ev, &len), 0);
    assert_true(ev & ZMQ_POLLIN);
    loop_touch(loop, f->a);
}

static void test_loop_touch_after_consumed_signal(void **state)
{
    fix_t *f = *state;
    f->want = 1;
    assert_int_equal(loop_add_socket(f->loop, f->a, on_one, f), 0);
    /* Let the loop find the socket empty first, so only the fd or a touch can wake it. */
    assert_true(loop_timer_add(f->loop, 50, consume_then_touch, f) > 0);
    run_until(f, 2000);
    assert_false(f->timed_out);
    assert_int_equal(f->got, 1);
}

static void on_fd(loop_t *loop, void *zsock, int fd, void *arg)
{
    (void)zsock;
    fix_t *f = arg;
    char c;
    if (read(fd, &c, 1) == 1 && ++f->got == f->want)
        loop_stop(loop);
}

/* (No cmocka assertion off the test's thread: a failed write shows as the loop's timeout.) */
static void *write_later(void *arg)
{
    usleep(500);
    if (write(*(int *)arg, "x", 1) != 1)
        perror("write_later");
    return NULL;
}

/* A byte in a pipe reaches its callback: written before the run, or by a thread during it. */
static void pipe_byte(fix_t *f, bool later)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    f->want = 1;
    assert_int_equal(loop_add_fd(f->loop, p[0], on_fd, f), 0);
    pthread_t t;
    if (later)
        assert_int_equal(pthread_create(&t, NULL, write_later, &p[1]), 0);
    else
        assert_int_equal(write(p[1], "x", 1), 1);
    run_until(f, 2000);
    if (later)
        pthread_join(t, NULL);
    assert_false(f->timed_out);
    assert_int_equal(f->got, 1);
    loop_remove_fd(f->loop, p[0]);
    close(p[0]);
    close(p[1]);
}

static void test_loop_plain_fd(void **state)
{
    pipe_byte(*state, false);
}

/* Input that arrives while the loop looks before sleeping (loop_set_spin) is taken. */
static void test_loop_input_during_spin(void **state)
{
    pipe_byte(*state, true);
}

/* A stop asked before the run (e.g. a join that failed inside node_start) ends it at once. */
static void test_loop_stop_before_run(void **state)
{
    fix_t *f = *state;
    loop_stop(f->loop);
    uint64_t t0 = loop_clock_ms();
    run_until(f, 2000);
    assert_false(f->timed_out);
    assert_true(loop_clock_ms() - t0 < 1000);
    /* ... and only that run: the next one runs until its own stop. */
    run_until(f, 50);
    assert_true(f->timed_out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_loop_input_wakes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_one_signal_many_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_touch_after_consumed_signal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_plain_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_stop_before_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_input_wakes, setup_spin, teardown),
        cmocka_unit_test_setup_teardown(test_loop_one_signal_many_messages, setup_spin, teardown),
        cmocka_unit_test_setup_teardown(test_loop_touch_after_consumed_signal, setup_spin,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_loop_plain_fd, setup_spin, teardown),
        cmocka_unit_test_setup_teardown(test_loop_stop_before_run, setup_spin, teardown),
        cmocka_unit_test_setup_teardown(test_loop_input_during_spin, setup_spin, teardown),
        cmocka_unit_test_setup_teardown(test_loop_input_during_spin, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_rpc_ctx.c — rpc_ctx_new's number of ZeroMQ I/O threads:
 * RPC_IO_THREADS, or DHTFS_IO_THREADS (1..16) from the environment,
 * anything else in it ignored.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "rpc.h"

#include <stdlib.h>
#include <zmq.h>

static int io_threads(void)
{
    void *zctx = rpc_ctx_new();
    assert_non_null(zctx);
    int n = zmq_ctx_get(zctx, ZMQ_IO_THREADS);
    zmq_ctx_term(zctx);
    return n;
}

static void test_defaults(void **state)
{
    (void)state;
    unsetenv("DHTFS_IO_THREADS");
    assert_int_equal(io_threads(), RPC_IO_THREADS);
}

static void test_env_overrides(void **state)
{
    (void)state;
    setenv("DHTFS_IO_THREADS", "3", 1);
    assert_int_equal(io_threads(), 3);
    setenv("DHTFS_IO_THREADS", "16", 1);
    assert_int_equal(io_threads(), 16);
    setenv("DHTFS_IO_THREADS", "1", 1);
    assert_int_equal(io_threads(), 1);
    unsetenv("DHTFS_IO_THREADS");
}

static void test_env_bad_ignored(void **state)
{
    (void)state;
    const char *bad[] = {"0", "17", "-1", "2x", "x", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("DHTFS_IO_THREADS", bad[i], 1);
        assert_int_equal(io_threads(), RPC_IO_THREADS);
    }
    unsetenv("DHTFS_IO_THREADS");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_env_overrides),
        cmocka_unit_test(test_env_bad_ignored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

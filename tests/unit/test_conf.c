/*
 * test_conf.c — configuration files into flags: the accepted format, what
 * each refusal says and on which line, and that nothing leaks on failure
 * (the sanitizer build runs these too).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "conf.h"

static const conf_key_t keys[] = {
    {"listen", true},   {"data", true},      {"join", true},
    {"replicas", true}, {"insecure", false}, {"write-quorum", true},
};
#define NKEYS (sizeof keys / sizeof keys[0])

static conf_args_t parse_ok(const char *text)
{
    conf_args_t a;
    unsigned line = 99;
    char err[CONF_ERR_MAX];
    int rc = conf_parse(text, strlen(text), keys, NKEYS, &a, &line, err);
    if (rc != 0)
        fail_msg("refused (%d) at line %u: %s", rc, line, err);
    return a;
}

/* Refused with -EINVAL at want_line, the message containing want. */
static void assert_refused(const char *text, unsigned want_line, const char *want)
{
    conf_args_t a = {(char **)1, (unsigned *)1, 5}; /* must be emptied */
    unsigned line = 0;
    char err[CONF_ERR_MAX] = "";
    int rc = conf_parse(text, strlen(text), keys, NKEYS, &a, &line, err);
    if (rc != -EINVAL)
        fail_msg("\"%s\" gave %d, expected -EINVAL", text, rc);
    assert_int_equal(line, want_line);
    if (!strstr(err, want))
        fail_msg("error '%s' does not contain '%s'", err, want);
    assert_null(a.argv);
    assert_int_equal(a.argc, 0);
}

static void test_conf_parse_values_comments_blanks(void **state)
{
    (void)state;
    conf_args_t a = parse_ok("# a node\n"
                             "\n"
                             "listen = tcp://127.0.0.1:7000\n"
                             "   # indented comment\n"
                             "data=/var/lib/dhtfs/node 1  \r\n"
                             "\tjoin\t=\t10.0.0.5:7000#rq{Sx+kN2HPJ4(qY3dh9O%7rG4k:Y1!8Ve.!3M<f\n"
                             "replicas = 3");
    assert_int_equal(a.argc, 4);
    assert_string_equal(a.argv[0], "--listen=tcp://127.0.0.1:7000");
    assert_int_equal(a.lines[0], 3);
    /* Inner blanks stay: the value is the rest of the line. */
    assert_string_equal(a.argv[1], "--data=/var/lib/dhtfs/node 1");
    assert_int_equal(a.lines[1], 5);
    /* '#' after the start of a line is data: a secured endpoint's key. */
    assert_string_equal(a.argv[2], "--join=10.0.0.5:7000#rq{Sx+kN2HPJ4(qY3dh9O%7rG4k:Y1!8Ve.!3M<f");
    /* The last line needs no newline. */
    assert_string_equal(a.argv[3], "--replicas=3");
    assert_int_equal(a.lines[3], 7);
    assert_null(a.argv[4]);
    conf_args_free(&a);
    assert_null(a.argv);
    assert_int_equal(a.argc, 0);
}

static void test_conf_parse_value_with_equals(void **state)
{
    (void)state;
    conf_args_t a = parse_ok("data = /srv/a=b\n");
    assert_int_equal(a.argc, 1);
    assert_string_equal(a.argv[0], "--data=/srv/a=b");
    conf_args_free(&a);
}

static void test_conf_parse_switches(void **state)
{
    (void)state;
    conf_args_t a = parse_ok("insecure = true\n");
    assert_int_equal(a.argc, 1);
    assert_string_equal(a.argv[0], "--insecure");
    conf_args_free(&a);
    a = parse_ok("insecure = YES\n");
    assert_string_equal(a.argv[0], "--insecure");
    conf_args_free(&a);
    a = parse_ok("insecure = off\n");
    assert_int_equal(a.argc, 0);
    conf_args_free(&a);
    assert_refused("insecure = maybe\n", 1, "takes true or false, got 'maybe'");
    assert_refused("insecure =\n", 1, "takes true or false");
}

static void test_conf_parse_empty(void **state)
{
    (void)state;
    conf_args_t a = parse_ok("");
    assert_int_equal(a.argc, 0);
    conf_args_free(&a);
    a = parse_ok("\n\n# nothing\n   \n");
    assert_int_equal(a.argc, 0);
    conf_args_free(&a);
    conf_args_free(NULL);
}

static void test_conf_parse_refusals(void **state)
{
    (void)state;
    assert_refused("listen = a:1\nbogus = 3\n", 2, "unknown key 'bogus'");
    assert_refused("\n\njust some words\n", 3, "expected NAME = VALUE");
    assert_refused("= 3\n", 1, "no key before '='");
    assert_refused("replicas = 3\n#\nreplicas = 2\n", 3, "given twice (first on line 1)");
    assert_refused("insecure = no\ninsecure = yes\n", 2, "given twice");
    assert_refused("join =   \n", 1, "'join' needs a value");
    /* Keys are the flags' names exactly: no "--", no case folding, no '_'. */
    assert_refused("--listen = a:1\n", 1, "unknown key '--listen'");
    assert_refused("Listen = a:1\n", 1, "unknown key 'Listen'");
    assert_refused("write_quorum = 2\n", 1, "unknown key 'write_quorum'");
    /* A prefix of a key is not the key (getopt would accept it). */
    assert_refused("list = a:1\n", 1, "unknown key 'list'");
}

static void test_conf_parse_nul_byte(void **state)
{
    (void)state;
    const char text[] = "listen = a:1\ndata = /x\0y\n";
    conf_args_t a;
    unsigned line = 0;
    char err[CONF_ERR_MAX];
    assert_int_equal(conf_parse(text, sizeof text - 1, keys, NKEYS, &a, &line, err), -EINVAL);
    assert_int_equal(line, 2);
    assert_non_null(strstr(err, "NUL"));
}

static void test_conf_parse_length_bounded(void **state)
{
    (void)state;
    /* Only text[0..len) is read: the rest of the buffer does not exist. */
    const char text[] = "replicas = 3\nbogus = 1\n";
    conf_args_t a;
    unsigned line = 0;
    char err[CONF_ERR_MAX];
    assert_int_equal(conf_parse(text, 13, keys, NKEYS, &a, &line, err), 0);
    assert_int_equal(a.argc, 1);
    assert_string_equal(a.argv[0], "--replicas=3");
    conf_args_free(&a);
}

static void test_conf_parse_many_lines(void **state)
{
    (void)state;
    /* Past the first allocation: the argument array grows. */
    static const conf_key_t many[] = {
        {"a0", true}, {"a1", true}, {"a2", true}, {"a3", true}, {"a4", true},
        {"a5", true}, {"a6", true}, {"a7", true}, {"a8", true}, {"a9", true},
        {"b0", true}, {"b1", true}, {"b2", true}, {"b3", true}, {"b4", true},
        {"b5", true}, {"b6", true}, {"b7", true}, {"b8", true}, {"b9", true},
    };
    char text[1024] = "";
    for (size_t i = 0; i < 20; i++) {
        char l[32];
        snprintf(l, sizeof l, "%s = v%zu\n", many[i].name, i);
        strcat(text, l);
    }
    conf_args_t a;
    unsigned line = 0;
    char err[CONF_ERR_MAX];
    assert_int_equal(conf_parse(text, strlen(text), many, 20, &a, &line, err), 0);
    assert_int_equal(a.argc, 20);
    assert_string_equal(a.argv[19], "--b9=v19");
    assert_int_equal(a.lines[19], 20);
    assert_null(a.argv[20]);
    conf_args_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conf_parse_values_comments_blanks),
        cmocka_unit_test(test_conf_parse_value_with_equals),
        cmocka_unit_test(test_conf_parse_switches),
        cmocka_unit_test(test_conf_parse_empty),
        cmocka_unit_test(test_conf_parse_refusals),
        cmocka_unit_test(test_conf_parse_nul_byte),
        cmocka_unit_test(test_conf_parse_length_bounded),
        cmocka_unit_test(test_conf_parse_many_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * wirepoke — send raw frames to a node and print what (if anything) comes
 * back. Used by the bad-input tests to deliver messages dhtctl would never
 * produce: wrong versions, garbage, extra frames.
 *
 *   wirepoke EP HEX [HEX...]   one frame per argument ("" = empty frame,
 *                              "zeros:N" = N zero bytes)
 *
 * Prints "reply TYPE" (for a KV_GET or REPL_GET reply also "found F version
 * HLC.NODE") or "error CODE MESSAGE" and exits 0, or prints
 * "no reply" and exits 3 after two seconds.
 */
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static int unhex(const char *s, unsigned char *out, size_t cap)
{
    size_t n = strlen(s);
    if (n % 2 || n / 2 > cap)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (unsigned char)v;
    }
    return (int)(n / 2);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: wirepoke EP HEX [HEX...]\n");
        return 2;
    }
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0, timeout = 2000;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    if (zmq_connect(s, argv[1]) < 0) {
        fprintf(stderr, "wirepoke: connect %s: %s\n", argv[1], zmq_strerror(zmq_errno()));
        return 2;
    }
    static unsigned char buf[65536];
    for (int i = 2; i < argc; i++) {
        int flags = i + 1 < argc ? ZMQ_SNDMORE : 0;
        if (strncmp(argv[i], "zeros:", 6) == 0) {
            size_t len = strtoul(argv[i] + 6, NULL, 10);
            unsigned char *z = calloc(1, len ? len : 1);
            if (!z)
                return 2;
            zmq_send(s, z, len, flags);
            free(z);
            continue;
        }
        int n = unhex(argv[i], buf, sizeof buf);
        if (n < 0) {
            fprintf(stderr, "wirepoke: bad hex '%s'\n", argv[i]);
            return 2;
        }
        zmq_send(s, buf, (size_t)n, flags);
    }
    int n = zmq_recv(s, buf, sizeof buf, 0);
    int rc = 3;
    if (n < 0) {
        printf("no reply\n");
    } else {
        wire_msg_t *m = malloc(sizeof *m);
        int d = wire_decode(buf, (size_t)n > sizeof buf ? sizeof buf : (size_t)n, m);
        if (d < 0)
            printf("undecodable reply\n");
        else if (m->type == WIRE_ERROR)
            printf("error %d %s\n", m->err_code, m->err_msg);
        else if (m->type == (WIRE_REPL_GET | WIRE_REPLY) || m->type == (WIRE_KV_GET | WIRE_REPLY))
            printf("reply %s found %d version %016llx.%016llx\n", wire_type_name(m->type), m->found,
                   (unsigned long long)m->version.hlc, (unsigned long long)m->version.node);
        else
            printf("reply %s\n", wire_type_name(m->type));
        free(m);
        rc = 0;
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
    return rc;
}

/*
 * zmq-curve-rtt.c — what CurveZMQ costs one ZeroMQ round trip, and whether
 * a value-carrying message sent as one frame instead of two ([header]
 * [value], as dhtfs's wire format does) would save much of it.
 *
 * A DEALER sends N messages of SIZE value bytes plus a 40-byte header,
 * as FRAMES (1: header and value in one frame, 2: two frames, K > 2: the
 * header and the value cut into K - 1 equal frames) to a ROUTER
 * in a forked process that echoes each message back; with CURVE=1 both
 * sockets run CurveZMQ (fresh key pairs), IOTHREADS on both contexts.
 * Prints wall time and CPU time (client: getrusage self; server: of the
 * child, warm-up included) per round trip: on a shared machine the CPU
 * times are the steadier figure.
 *
 * Build: cc -O2 -o zmq-curve-rtt bench/zmq-curve-rtt.c -lzmq
 * Usage: zmq-curve-rtt N SIZE FRAMES CURVE IOTHREADS PORT
 *   e.g. for f in 2 1; do ./zmq-curve-rtt 8000 1024 $f 1 1 42001; done
 */
#include <zmq.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_FRAMES 64

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double cpu(int who)
{
    struct rusage r;
    getrusage(who, &r);
    return (double)(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
           (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec) * 1e-6;
}

static void serve(const char *ep, int curve, const char *ssec, int iot)
{
    void *ctx = zmq_ctx_new();
    zmq_ctx_set(ctx, ZMQ_IO_THREADS, iot);
    void *s = zmq_socket(ctx, ZMQ_ROUTER);
    if (curve) {
        int one = 1;
        zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof one);
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, ssec, 40);
    }
    if (zmq_bind(s, ep) < 0) {
        fprintf(stderr, "bind %s: %s\n", ep, zmq_strerror(zmq_errno()));
        _exit(1);
    }
    for (;;) {
        zmq_msg_t m[MAX_FRAMES + 1];
        int k = 0, more;
        do {
            zmq_msg_init(&m[k]);
            zmq_msg_recv(&m[k], s, 0);
            more = zmq_msg_more(&m[k]);
            k++;
        } while (more && k < MAX_FRAMES + 1);
        if (k == 2 && zmq_msg_size(&m[1]) == 1 && ((char *)zmq_msg_data(&m[1]))[0] == 'Q')
            break;
        for (int i = 0; i < k; i++)
            zmq_msg_send(&m[i], s, i < k - 1 ? ZMQ_SNDMORE : 0);
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
    _exit(0);
}

int main(int argc, char **argv)
{
    if (argc != 7 || atoi(argv[3]) < 1 || atoi(argv[3]) > MAX_FRAMES) {
        fprintf(stderr, "usage: zmq-curve-rtt N SIZE FRAMES(1..64) CURVE(0|1) IOTHREADS PORT\n");
        return 2;
    }
    int n = atoi(argv[1]), size = atoi(argv[2]), frames = atoi(argv[3]), curve = atoi(argv[4]),
        iot = atoi(argv[5]), port = atoi(argv[6]);
    char spub[41], ssec[41], cpub[41], csec[41];
    zmq_curve_keypair(spub, ssec);
    zmq_curve_keypair(cpub, csec);
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
    pid_t pid = fork();
    if (pid == 0)
        serve(ep, curve, ssec, iot);
    void *ctx = zmq_ctx_new();
    zmq_ctx_set(ctx, ZMQ_IO_THREADS, iot);
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    if (curve) {
        zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, spub, 40);
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, cpub, 40);
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, csec, 40);
    }
    zmq_connect(s, ep);
    char *buf = calloc(1, (size_t)size + 64);
    double t0 = 0, c0 = 0;
    for (int i = -1000; i < n; i++) { /* 1000 warm-up round trips */
        if (i == 0) {
            t0 = now();
            c0 = cpu(RUSAGE_SELF);
        }
        if (frames >= 2) {
            zmq_send(s, buf, 40, ZMQ_SNDMORE);
            size_t part = (size_t)size / (size_t)(frames - 1), off = 0;
            for (int f = 1; f < frames; f++, off += part)
                zmq_send(s, buf + off, f < frames - 1 ? part : (size_t)size - off,
                         f < frames - 1 ? ZMQ_SNDMORE : 0);
        } else {
            zmq_send(s, buf, (size_t)size + 40, 0);
        }
        int more;
        size_t ml = sizeof more;
        do {
            zmq_msg_t m;
            zmq_msg_init(&m);
            zmq_msg_recv(&m, s, 0);
            zmq_msg_close(&m);
            zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ml);
        } while (more);
    }
    double dt = now() - t0, dc = cpu(RUSAGE_SELF) - c0;
    zmq_send(s, "Q", 1, 0);
    waitpid(pid, NULL, 0);
    double sc = cpu(RUSAGE_CHILDREN);
    printf(
        "size=%d frames=%d curve=%d iot=%d: %.1f us/rtt  client cpu %.1f us/rtt  server cpu %.1f "
        "us/rtt (incl warmup)\n",
        size, frames, curve, iot, dt / n * 1e6, dc / n * 1e6, sc / (n + 1000) * 1e6);
    zmq_close(s);
    zmq_ctx_term(ctx);
    free(buf);
    return 0;
}

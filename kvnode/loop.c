/*
 * loop.c — a small reactor: ZeroMQ sockets and plain fds in one poll(2).
 *
 * Registrations live in a growable array; removal only marks an entry dead
 * so that a callback may remove any socket (even its own) while the poll
 * results are being dispatched; dead entries are compacted before the next
 * poll. Timers are kept in a binary min-heap by deadline; cancellation is
 * lazy (the entry is skipped when it surfaces), which keeps cancel O(log n)
 * free and the heap simple.
 *
 * ZeroMQ sockets are polled through their ZMQ_FD, not with zmq_poll():
 * zmq_poll asks every socket for ZMQ_EVENTS before and after polling, and
 * each ask is a poll(2) and a getpid(2) inside libzmq, so with a socket per
 * peer and lane most of a node's system calls were these checks (160 per
 * put across a 3-node ring, measured with strace -c). ZMQ_FD only says
 * "look at ZMQ_EVENTS now" and is edge-like: any send, receive or ZMQ_EVENTS
 * on the socket may consume its signal. So a socket is asked for ZMQ_EVENTS
 * only while it may hold input: after its fd signalled, after its callback
 * ran (it reads a bounded batch) unless the callback read until EAGAIN
 * (loop_idle), and after a send on it (loop_touch); a socket found empty
 * is then left to its fd.
 */
#include "loop.h"

#include <errno.h>
#include <sched.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

typedef struct {
    void *zsock;
    int fd; /* the plain fd, or the socket's ZMQ_FD */
    loop_io_fn fn;
    void *arg;
    bool dead;
    bool maybe; /* a socket that may hold input its fd will not signal */
    bool ready;
} watch_t;

typedef struct {
    uint64_t deadline;
    uint64_t id;
    loop_timer_fn fn;
    void *arg;
} timer_t_;

struct loop {
    watch_t *watches;
    size_t nwatch, capwatch;
    struct pollfd *pfds;
    size_t cappfds;

    timer_t_ *heap;
    size_t nheap, capheap;
    uint64_t next_timer_id;
    /* Cancelled ids not yet popped; small because timers are few. */
    uint64_t *cancelled;
    size_t ncancelled, capcancelled;

    loop_hook_fn before;
    void *before_arg;
    uint64_t now;
    unsigned spin_us;
    bool stop;
};

static uint64_t clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t loop_clock_ms(void)
{
    return clock_us() / 1000u;
}

loop_t *loop_new(void)
{
    loop_t *loop = calloc(1, sizeof *loop);
    if (loop)
        loop->now = loop_clock_ms();
    return loop;
}

void loop_destroy(loop_t **ploop)
{
    if (!ploop || !*ploop)
        return;
    loop_t *loop = *ploop;
    free(loop->watches);
    free(loop->pfds);
    free(loop->heap);
    free(loop->cancelled);
    free(loop);
    *ploop = NULL;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    while (ncap < need)
        ncap *= 2;
    void *p = realloc(*arr, ncap * elem);
    if (!p)
        return -ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

static int add_watch(loop_t *loop, void *zsock, int fd, loop_io_fn fn, void *arg)
{
    if (zsock) {
        size_t len = sizeof fd;
        if (zmq_getsockopt(zsock, ZMQ_FD, &fd, &len) < 0)
            return -zmq_errno();
    }
    if (grow((void **)&loop->watches, &loop->capwatch, loop->nwatch + 1, sizeof(watch_t)) < 0)
        return -ENOMEM;
    loop->watches[loop->nwatch++] = (watch_t){zsock, fd, fn, arg, false, zsock != NULL, false};
    return 0;
}

void loop_touch(loop_t *loop, void *zsock)
{
    for (size_t i = 0; i < loop->nwatch; i++)
        if (loop->watches[i].zsock == zsock)
            loop->watches[i].maybe = true;
}

void loop_idle(loop_t *loop, void *zsock)
{
    for (size_t i = 0; i < loop->nwatch; i++)
        if (loop->watches[i].zsock == zsock)
            loop->watches[i].maybe = false;
}

/* Whether a socket has a message to read; one that has none is left to its fd. */
static bool zsock_ready(watch_t *w)
{
    int ev = 0;
    size_t len = sizeof ev;
    if (zmq_getsockopt(w->zsock, ZMQ_EVENTS, &ev, &len) < 0)
        return true; /* the callback meets the error */
    w->maybe = (ev & ZMQ_POLLIN) != 0;
    return w->maybe;
}

int loop_add_socket(loop_t *loop, void *zsock, loop_io_fn fn, void *arg)
{
    return add_watch(loop, zsock, -1, fn, arg);
}

int loop_add_fd(loop_t *loop, int fd, loop_io_fn fn, void *arg)
{
    return add_watch(loop, NULL, fd, fn, arg);
}

void loop_remove_socket(loop_t *loop, void *zsock)
{
    if (!zsock)
        return; /* NULL would match every plain fd watch */
    for (size_t i = 0; i < loop->nwatch; i++)
        if (loop->watches[i].zsock == zsock)
            loop->watches[i].dead = true;
}

void loop_remove_fd(loop_t *loop, int fd)
{
    for (size_t i = 0; i < loop->nwatch; i++)
        if (!loop->watches[i].zsock && loop->watches[i].fd == fd)
            loop->watches[i].dead = true;
}

static bool timer_less(const timer_t_ *a, const timer_t_ *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->id < b->id);
}

static void heap_up(loop_t *loop, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!timer_less(&loop->heap[i], &loop->heap[p]))
            break;
        timer_t_ t = loop->heap[i];
        loop->heap[i] = loop->heap[p];
        loop->heap[p] = t;
        i = p;
    }
}

static void heap_down(loop_t *loop, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, s = i;
        if (l < loop->nheap && timer_less(&loop->heap[l], &loop->heap[s]))
            s = l;
        if (r < loop->nheap && timer_less(&loop->heap[r], &loop->heap[s]))
            s = r;
        if (s == i)
            return;
        timer_t_ t = loop->heap[i];
        loop->heap[i] = loop->heap[s];
        loop->heap[s] = t;
        i = s;
    }
}

uint64_t loop_timer_add(loop_t *loop, uint64_t delay_ms, loop_timer_fn fn, void *arg)
{
    if (grow((void **)&loop->heap, &loop->capheap, loop->nheap + 1, sizeof(timer_t_)) < 0)
        return 0;
    uint64_t id = ++loop->next_timer_id;
    loop->heap[loop->nheap] = (timer_t_){loop_clock_ms() + delay_ms, id, fn, arg};
    heap_up(loop, loop->nheap++);
    return id;
}

void loop_timer_cancel(loop_t *loop, uint64_t id)
{
    if (id == 0)
        return;
    bool pending = false;
    for (size_t i = 0; i < loop->nheap && !pending; i++)
        pending = loop->heap[i].id == id;
    if (!pending)
        return;
    if (grow((void **)&loop->cancelled, &loop->capcancelled, loop->ncancelled + 1,
             sizeof(uint64_t)) < 0)
        return;
    loop->cancelled[loop->ncancelled++] = id;
}

static bool take_cancelled(loop_t *loop, uint64_t id)
{
    for (size_t i = 0; i < loop->ncancelled; i++)
        if (loop->cancelled[i] == id) {
            loop->cancelled[i] = loop->cancelled[--loop->ncancelled];
            return true;
        }
    return false;
}

void loop_set_before_poll(loop_t *loop, loop_hook_fn fn, void *arg)
{
    loop->before = fn;
    loop->before_arg = arg;
}

void loop_set_spin(loop_t *loop, unsigned us)
{
    loop->spin_us = us;
}

/*
 * poll(2) that first looks without sleeping for loop->spin_us when it
 * would sleep (never past timeout ms, which the look takes its time off):
 * the number of ready fds, or -1 and errno.
 */
static int poll_spin(loop_t *loop, size_t n, int timeout)
{
    if (timeout != 0 && loop->spin_us > 0) {
        uint64_t t0 = clock_us(), spin = loop->spin_us, spent;
        if (timeout > 0 && spin > (uint64_t)timeout * 1000)
            spin = (uint64_t)timeout * 1000;
        do {
            int got = poll(loop->pfds, (nfds_t)n, 0);
            if (got != 0)
                return got;
            sched_yield();
            spent = clock_us() - t0;
        } while (spent < spin);
        /* (A negative timeout would sleep for good.) */
        if (timeout > 0)
            timeout = spent / 1000 >= (uint64_t)timeout ? 0 : timeout - (int)(spent / 1000);
    }
    return poll(loop->pfds, (nfds_t)n, timeout);
}

uint64_t loop_now_ms(loop_t *loop)
{
    return loop->now;
}

void loop_stop(loop_t *loop)
{
    loop->stop = true;
}

static void run_timers(loop_t *loop)
{
    loop->now = loop_clock_ms();
    while (loop->nheap && loop->heap[0].deadline <= loop->now && !loop->stop) {
        timer_t_ t = loop->heap[0];
        loop->heap[0] = loop->heap[--loop->nheap];
        heap_down(loop, 0);
        if (!take_cancelled(loop, t.id))
            t.fn(loop, t.arg);
    }
}

static void compact(loop_t *loop)
{
    size_t w = 0;
    for (size_t r = 0; r < loop->nwatch; r++)
        if (!loop->watches[r].dead)
            loop->watches[w++] = loop->watches[r];
    loop->nwatch = w;
}

static int loop_iterate(loop_t *loop);

int loop_run(loop_t *loop)
{
    int rc = loop_iterate(loop);
    /* Reset on the way out, not in: a stop asked before the run (a join
     * that failed inside node_start) must end it, not be forgotten. */
    loop->stop = false;
    return rc;
}

static int loop_iterate(loop_t *loop)
{
    while (!loop->stop) {
        run_timers(loop);
        if (loop->stop)
            break;
        if (loop->before)
            loop->before(loop, loop->before_arg);
        /*
         * The hook may stop the loop (dhtfs runs its ready fibers there);
         * polling now could block forever when no timer is left to wake it.
         */
        if (loop->stop)
            break;
        compact(loop);
        if (grow((void **)&loop->pfds, &loop->cappfds, loop->nwatch + 1, sizeof(struct pollfd)) < 0)
            return -ENOMEM;
        size_t n = loop->nwatch;
        bool any_ready = false;
        for (size_t i = 0; i < n; i++) {
            watch_t *w = &loop->watches[i];
            w->ready = w->zsock && w->maybe && zsock_ready(w);
            any_ready |= w->ready;
            loop->pfds[i] = (struct pollfd){w->fd, POLLIN, 0};
        }
        int timeout = -1;
        if (any_ready) {
            timeout = 0;
        } else if (loop->nheap) {
            uint64_t now = loop_clock_ms();
            uint64_t wait = loop->heap[0].deadline > now ? loop->heap[0].deadline - now : 0;
            timeout = wait > INT32_MAX ? INT32_MAX : (int)wait;
        }
        if (poll_spin(loop, n, timeout) < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        loop->now = loop_clock_ms();
        for (size_t i = 0; i < n; i++) {
            watch_t *w = &loop->watches[i];
            short re = loop->pfds[i].revents;
            if (w->zsock)
                w->ready = w->ready || (re && zsock_ready(w));
            else
                w->ready = (re & (POLLIN | POLLERR | POLLHUP | POLLNVAL)) != 0;
        }
        /* Callbacks may add watches (appended past n, moving the array) or mark any dead. */
        for (size_t i = 0; i < n && !loop->stop; i++) {
            if (!loop->watches[i].ready || loop->watches[i].dead)
                continue;
            watch_t w = loop->watches[i];
            /* A socket found ready stays "maybe": its callback reads a bounded batch. */
            w.fn(loop, w.zsock, w.fd, w.arg);
        }
    }
    return 0;
}

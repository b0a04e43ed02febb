/*
 * loop.h — the one event loop of a process: ZeroMQ sockets and plain file
 * descriptors polled together, one-shot timers on the monotonic clock, and
 * a hook run before every poll for batched work.
 *
 * Callbacks run on the loop's thread and must not block. Sockets and timers
 * may be added or removed from inside any callback.
 */
#ifndef LOOP_H
#define LOOP_H

#include <stdint.h>

typedef struct loop loop_t;

/* zsock is the ZeroMQ socket or NULL for a plain fd. */
typedef void (*loop_io_fn)(loop_t *loop, void *zsock, int fd, void *arg);
typedef void (*loop_timer_fn)(loop_t *loop, void *arg);
typedef void (*loop_hook_fn)(loop_t *loop, void *arg);

loop_t *loop_new(void);
/* Frees the loop; sockets and fds registered in it are not closed. */
void loop_destroy(loop_t **loop);

/*
 * Watch a ZeroMQ socket (or, with zsock NULL, fd) for input; fn also runs
 * when the fd reports an error (e.g. a FUSE device after unmount). 0 or -errno.
 */
int loop_add_socket(loop_t *loop, void *zsock, loop_io_fn fn, void *arg);
int loop_add_fd(loop_t *loop, int fd, loop_io_fn fn, void *arg);
/*
 * Call after sending on a watched socket outside its own callback: a send
 * may consume the signal of input that arrived meanwhile (see loop.c).
 */
void loop_touch(loop_t *loop, void *zsock);
/*
 * Call from a socket's callback when a receive on it found nothing
 * (EAGAIN): libzmq has just taken in every signal, so until its fd
 * signals again the socket is not asked (see loop.c).
 */
void loop_idle(loop_t *loop, void *zsock);
/* Stop watching; safe from callbacks, also for the socket being served. */
void loop_remove_socket(loop_t *loop, void *zsock);
void loop_remove_fd(loop_t *loop, int fd);

/*
 * Run fn once after delay_ms. Returns a timer id (> 0) for loop_timer_cancel,
 * or 0 when out of memory.
 */
uint64_t loop_timer_add(loop_t *loop, uint64_t delay_ms, loop_timer_fn fn, void *arg);
/* Cancelling a timer that already fired or was cancelled does nothing. */
void loop_timer_cancel(loop_t *loop, uint64_t id);

/* One hook, run before every poll (NULL to clear). */
void loop_set_before_poll(loop_t *loop, loop_hook_fn fn, void *arg);

/*
 * Before sleeping in poll(2), look for input without sleeping for up to us
 * microseconds (yielding the CPU between looks); 0, the default, sleeps at
 * once. A wake-up through the scheduler costs tens of microseconds on the
 * VMs we run on, and a process in a request/reply exchange (a FUSE client
 * between the kernel and its store) often has its next input that soon;
 * the price is CPU time spent looking.
 */
void loop_set_spin(loop_t *loop, unsigned us);

/* Milliseconds on CLOCK_MONOTONIC, cached at each loop iteration. */
uint64_t loop_now_ms(loop_t *loop);
uint64_t loop_clock_ms(void);

/*
 * Run until loop_stop() (at once if it was called before). Returns 0, or
 * -errno when polling fails.
 */
int loop_run(loop_t *loop);
void loop_stop(loop_t *loop);

#endif

/*
 * fiber.h — cooperative fibers on the process's one event loop.
 *
 * Every FUSE request runs as a fiber: it starts store operations, parks
 * until their callbacks wake it, and goes on where it stopped. Fibers only
 * switch when one parks, so state shared between them needs no locks
 * except across a park (fiber_mutex_t). No thread ever blocks on a peer.
 */
#ifndef FIBER_H
#define FIBER_H

#include "loop.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct fiber fiber_t;

/* Take over loop's before-poll hook to run woken fibers. 0 or -errno. */
int fiber_init(loop_t *loop);
/* Frees pooled stacks; fibers still parked are leaked (their owners are gone). */
void fiber_shutdown(void);

/*
 * Run fn(arg) as a new fiber. From the loop (not a fiber) it starts at once
 * and runs until it first parks; from a fiber it starts at the next turn.
 * 0 or -ENOMEM.
 */
int fiber_spawn(void (*fn)(void *), void *arg);

/* The running fiber, or NULL on the loop's own stack. */
fiber_t *fiber_self(void);

/*
 * A word the running fiber carries for its owner, inherited by the fibers
 * it spawns (the FUSE request a store operation works for). NULL on the
 * loop's own stack.
 */
void fiber_set_tag(void *tag);
void *fiber_tag(void);
/*
 * The serial store round trips on the running fiber's path so far: a
 * counter each fiber carries (a spawned fiber starts from its parent's,
 * a group's waiter takes the largest of its members' when they end), for
 * counting how many round trips a request waited for one after another.
 * 0 on the loop's own stack; setting it there does nothing.
 */
unsigned fiber_serial(void);
void fiber_serial_set(unsigned n);
/* Park the running fiber until fiber_wake(). Must run in a fiber. */
void fiber_park(void);
/* Make a parked fiber runnable (it runs before the next poll). */
void fiber_wake(fiber_t *f);
/* Park for delay_ms. */
void fiber_sleep(loop_t *loop, unsigned delay_ms);
/*
 * Run every woken fiber until none is ready, as the loop's before-poll
 * hook does. For drivers that own the scheduling, such as unit tests that
 * complete store operations themselves. Not from a fiber.
 */
void fiber_run_ready(void);
/* Fibers alive. */
size_t fiber_count(void);

/* Several fibers started together and waited for together. */
typedef struct {
    unsigned pending;
    fiber_t *waiter;
    unsigned serial; /* the largest fiber_serial of the members that ended */
} fiber_group_t;

/* Run fn(arg) as a fiber of group g (starts at the next turn). 0 or -ENOMEM (not started). */
int fiber_group_spawn(fiber_group_t *g, void (*fn)(void *), void *arg);
/* Park until every fiber of g has finished. */
void fiber_group_wait(fiber_group_t *g);

/* A lock held across parks; waiters are served in order. */
typedef struct fiber_waiter fiber_waiter_t;
typedef struct {
    bool held;
    fiber_waiter_t *head, *tail;
} fiber_mutex_t;

void fiber_mutex_lock(fiber_mutex_t *m);
void fiber_mutex_unlock(fiber_mutex_t *m);

#endif

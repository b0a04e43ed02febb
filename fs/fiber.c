/*
 * fiber.c — fibers with pooled, guard-paged stacks.
 *
 * Stacks are mmap'd: the kernel commits only the pages a fiber touches, so
 * a generous size costs address space, not memory.
 *
 * A fiber's first entry goes through makecontext/setcontext; every switch
 * after that is _setjmp/_longjmp, as QEMU's coroutine-ucontext does:
 * swapcontext saves and restores the signal mask, a system call each way,
 * and fibers switch several times per FUSE request (~6 % of dhtfs's
 * samples under random writes on a VM where a system call costs ~1 µs). The
 * mask never changes on the loop's thread, so there is nothing to save.
 * _longjmp between stacks is what glibc's fortified longjmp refuses (it
 * takes a jump to another stack for a corrupt one), hence no fortify here;
 * AddressSanitizer is told about each switch, as it must be.
 */
#undef _FORTIFY_SOURCE
#include "fiber.h"

#include <errno.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define FIBER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FIBER_ASAN 1
#endif
#endif
#ifdef FIBER_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

#define STACK_SIZE (256 * 1024)
/*
 * Stacks kept for reuse. A sequential reader alone keeps readahead_kb /
 * chunk size fetch fibers alive (64 at the defaults) besides the FUSE
 * requests and write-backs; a pool smaller than that unmapped and mapped
 * a stack (mmap, mprotect, munmap and a page fault per page touched) for
 * most chunks read. A pooled stack holds only the pages it touched.
 */
#define STACK_POOL_MAX 512

struct fiber {
    ucontext_t ctx; /* the first entry only */
    jmp_buf jb;     /* where it parked */
    bool started;
    void *fake_stack; /* AddressSanitizer's, while switched out */
    void *stack;
    void (*fn)(void *);
    void *arg;
    void *tag;
    unsigned serial; /* fiber_serial */
    bool done;
    bool queued;
    fiber_t *next_ready;
};

struct fiber_waiter {
    fiber_t *fiber;
    fiber_waiter_t *next;
};

static jmp_buf loop_jb;
static fiber_t *current;
static fiber_t *ready_head, *ready_tail;
static void *stack_pool[STACK_POOL_MAX];
static size_t stack_pool_len;
static size_t alive;

static void *stack_get(void)
{
    if (stack_pool_len > 0)
        return stack_pool[--stack_pool_len];
    long page = sysconf(_SC_PAGESIZE);
    void *s = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (s == MAP_FAILED)
        return NULL;
    /* The lowest page stays unmapped so an overflow faults instead of corrupting. */
    mprotect(s, (size_t)page, PROT_NONE);
    return s;
}

static void stack_put(void *s)
{
    if (stack_pool_len < STACK_POOL_MAX)
        stack_pool[stack_pool_len++] = s;
    else
        munmap(s, STACK_SIZE);
}

/*
 * AddressSanitizer's view of the stacks: the loop's (learnt at the first
 * switch into a fiber) and the switches between it and a fiber's. No-ops
 * in other builds.
 */
#ifdef FIBER_ASAN
static const void *loop_stack;
static size_t loop_stack_size;
static void *loop_fake_stack;
#endif

static void to_fiber_begin(fiber_t *f)
{
#ifdef FIBER_ASAN
    __sanitizer_start_switch_fiber(&loop_fake_stack, f->stack, STACK_SIZE);
#else
    (void)f;
#endif
}

static void to_fiber_end(fiber_t *f)
{
#ifdef FIBER_ASAN
    __sanitizer_finish_switch_fiber(f->fake_stack, &loop_stack, &loop_stack_size);
#else
    (void)f;
#endif
}

/* f leaves for the loop; an ending fiber's fake stack goes (NULL save). */
static void to_loop_begin(fiber_t *f, bool ending)
{
#ifdef FIBER_ASAN
    __sanitizer_start_switch_fiber(ending ? NULL : &f->fake_stack, loop_stack, loop_stack_size);
#else
    (void)f;
    (void)ending;
#endif
}

static void to_loop_end(void)
{
#ifdef FIBER_ASAN
    __sanitizer_finish_switch_fiber(loop_fake_stack, NULL, NULL);
#endif
}

static void trampoline(void)
{
    fiber_t *f = current;
    to_fiber_end(f);
    f->fn(f->arg);
    f->done = true;
    to_loop_begin(f, true);
    _longjmp(loop_jb, 1);
}

/* From the loop's own stack only: fibers never resume one another. */
static void resume(fiber_t *f)
{
    if (current)
        abort(); /* a fiber running the ready queue would overwrite loop_jb */
    current = f;
    to_fiber_begin(f);
    if (_setjmp(loop_jb) == 0) {
        if (f->started)
            _longjmp(f->jb, 1);
        f->started = true;
        setcontext(&f->ctx);
    }
    to_loop_end();
    current = NULL;
    if (f->done) {
        stack_put(f->stack);
        free(f);
        alive--;
    }
}

static void run_ready(loop_t *loop, void *arg)
{
    (void)loop;
    (void)arg;
    fiber_t *f;
    while ((f = ready_head) != NULL) {
        ready_head = f->next_ready;
        if (!ready_head)
            ready_tail = NULL;
        f->queued = false;
        resume(f);
    }
}

void fiber_run_ready(void)
{
    run_ready(NULL, NULL);
}

int fiber_init(loop_t *loop)
{
    loop_set_before_poll(loop, run_ready, NULL);
    return 0;
}

void fiber_shutdown(void)
{
    while (stack_pool_len > 0)
        munmap(stack_pool[--stack_pool_len], STACK_SIZE);
}

static void enqueue(fiber_t *f)
{
    if (f->queued)
        return;
    f->queued = true;
    f->next_ready = NULL;
    if (ready_tail)
        ready_tail->next_ready = f;
    else
        ready_head = f;
    ready_tail = f;
}

int fiber_spawn(void (*fn)(void *), void *arg)
{
    fiber_t *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    f->stack = stack_get();
    if (!f->stack) {
        free(f);
        return -ENOMEM;
    }
    f->fn = fn;
    f->arg = arg;
    f->tag = current ? current->tag : NULL;
    f->serial = current ? current->serial : 0;
    getcontext(&f->ctx);
    f->ctx.uc_stack.ss_sp = f->stack;
    f->ctx.uc_stack.ss_size = STACK_SIZE;
    f->ctx.uc_link = NULL; /* never returns: trampoline jumps back */
    makecontext(&f->ctx, trampoline, 0);
    alive++;
    if (current)
        enqueue(f);
    else
        resume(f);
    return 0;
}

fiber_t *fiber_self(void)
{
    return current;
}

void fiber_set_tag(void *tag)
{
    if (current)
        current->tag = tag;
}

void *fiber_tag(void)
{
    return current ? current->tag : NULL;
}

unsigned fiber_serial(void)
{
    return current ? current->serial : 0;
}

void fiber_serial_set(unsigned n)
{
    if (current)
        current->serial = n;
}

void fiber_park(void)
{
    fiber_t *f = current;
    to_loop_begin(f, false);
    if (_setjmp(f->jb) == 0)
        _longjmp(loop_jb, 1);
    to_fiber_end(f);
}

void fiber_wake(fiber_t *f)
{
    enqueue(f);
}

static void wake_timer(loop_t *loop, void *arg)
{
    (void)loop;
    fiber_wake(arg);
}

void fiber_sleep(loop_t *loop, unsigned delay_ms)
{
    if (loop_timer_add(loop, delay_ms, wake_timer, current) == 0)
        return;
    fiber_park();
}

size_t fiber_count(void)
{
    return alive;
}

void fiber_mutex_lock(fiber_mutex_t *m)
{
    if (!m->held) {
        m->held = true;
        return;
    }
    fiber_waiter_t w = {.fiber = current, .next = NULL};
    if (m->tail)
        m->tail->next = &w;
    else
        m->head = &w;
    m->tail = &w;
    /* Ownership is handed over by unlock, so held stays true. */
    fiber_park();
}

void fiber_mutex_unlock(fiber_mutex_t *m)
{
    fiber_waiter_t *w = m->head;
    if (!w) {
        m->held = false;
        return;
    }
    m->head = w->next;
    if (!m->head)
        m->tail = NULL;
    fiber_wake(w->fiber);
}

typedef struct {
    fiber_group_t *group;
    void (*fn)(void *);
    void *arg;
} group_job_t;

static void group_run(void *arg)
{
    group_job_t job = *(group_job_t *)arg;
    free(arg);
    job.fn(job.arg);
    if (current->serial > job.group->serial)
        job.group->serial = current->serial;
    if (--job.group->pending == 0 && job.group->waiter)
        fiber_wake(job.group->waiter);
}

int fiber_group_spawn(fiber_group_t *g, void (*fn)(void *), void *arg)
{
    group_job_t *job = malloc(sizeof(*job));
    if (!job)
        return -ENOMEM;
    *job = (group_job_t){g, fn, arg};
    g->pending++;
    int rc = fiber_spawn(group_run, job);
    if (rc < 0) {
        g->pending--;
        free(job);
    }
    return rc;
}

void fiber_group_wait(fiber_group_t *g)
{
    while (g->pending > 0) {
        g->waiter = current;
        fiber_park();
    }
    g->waiter = NULL;
    if (current && g->serial > current->serial)
        current->serial = g->serial;
}

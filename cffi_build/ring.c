/*
 * ring.c -- counters and eventcount of msgr's SPSC ring set.
 *
 * A ring set is N single-producer rings drained by ONE consumer thread.  The
 * items themselves live in Python lists; this file only owns, per ring, the
 * 64-bit tail (items published, written by the ring's producer) and head
 * (items released, written by the consumer), each on its own 64-byte cache
 * line, plus one eventcount shared by the whole set.
 *
 * Memory ordering:
 *   - Producer: writes slots (Python, under the GIL), then
 *     store_release(tail).  Consumer: load_acquire(tail), then reads slots.
 *     Symmetrically the consumer clears slots, store_release(head); the
 *     producer load_acquire(head) before overwriting slots below it.
 *   - Sleeping (Dekker style, no lost wake-ups): the consumer does
 *         key = load_acquire(seq); waiters = 1; fence(seq_cst);
 *         re-check tails and closed; futex_wait(&seq, key)
 *     and a producer does
 *         store_release(tail); fence(seq_cst);
 *         if (waiters && exchange(waiters, 0)) { seq += 1; futex_wake(&seq) }
 *     The two seq_cst fences guarantee that either the consumer's re-check
 *     sees the new tail, or the producer sees waiters == 1 and bumps seq, in
 *     which case futex_wait() either returns EAGAIN (seq != key) or is woken.
 *     A producer therefore enters the kernel only when the consumer has
 *     announced that it is going to sleep.  close() sets closed, fences and
 *     always bumps seq and wakes.
 *   - Spurious wake-ups, EAGAIN and timeouts all lead back to a re-check of
 *     the tails.  Timeouts are measured with CLOCK_MONOTONIC, the clock that
 *     FUTEX_WAIT's relative timeout uses.  A signal (EINTR) makes wait()
 *     return 0 early so the Python caller can run its signal handlers.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1   /* syscall(); Python.h defines it the same way */
#endif
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

#include "msgr_native.h"

#define RING_CACHELINE 64
#define RING_SPINS 50
#define RING_YIELDS 3

struct ring_counters {
    _Alignas(RING_CACHELINE) uint64_t tail;  /* producer i writes */
    _Alignas(RING_CACHELINE) uint64_t head;  /* consumer writes */
};

struct msgr_ringset {
    _Alignas(RING_CACHELINE) uint32_t seq;   /* eventcount futex word */
    uint32_t waiters;                         /* consumer about to sleep */
    uint32_t closed;
    uint32_t nrings;                          /* immutable */
    struct ring_counters rings[];
};

static void ring_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

#ifdef __linux__
/* Returns 0 when woken (or seq already != key), else an errno value. */
static int ring_futex_wait(uint32_t *addr, uint32_t key,
                           const struct timespec *rel)
{
    if (syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, key, rel, NULL, 0) == 0)
        return 0;
    return errno == EAGAIN ? 0 : errno;
}

static void ring_futex_wake(uint32_t *addr, int count)
{
    syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, count, NULL, NULL, 0);
}
#else
/* Portable stand-in: short sleeps that re-check; no kernel wake-up. */
static int ring_futex_wait(uint32_t *addr, uint32_t key,
                           const struct timespec *rel)
{
    struct timespec nap = {0, 1000000};

    if (rel && (rel->tv_sec == 0 && rel->tv_nsec < nap.tv_nsec))
        nap = *rel;
    if (__atomic_load_n(addr, __ATOMIC_ACQUIRE) != key)
        return 0;
    return nanosleep(&nap, NULL) == 0 ? 0 : errno;
}

static void ring_futex_wake(uint32_t *addr, int count)
{
    (void)addr;
    (void)count;
}
#endif

static double ring_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static struct timespec ring_timespec(double seconds)
{
    struct timespec ts;

    if (seconds < 0)
        seconds = 0;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L)
        ts.tv_nsec = 999999999L;
    return ts;
}

msgr_ringset *msgr_ringset_new(uint32_t nrings)
{
    size_t size;
    void *mem = NULL;

    if (nrings == 0 || nrings > MSGR_RINGSET_MAX_RINGS)
        return NULL;
    size = sizeof(struct msgr_ringset) +
           (size_t)nrings * sizeof(struct ring_counters);
    if (posix_memalign(&mem, RING_CACHELINE, size) != 0)
        return NULL;
    memset(mem, 0, size);
    ((msgr_ringset *)mem)->nrings = nrings;
    return (msgr_ringset *)mem;
}

void msgr_ringset_free(msgr_ringset *rs)
{
    free(rs);
}

static void ring_wake(msgr_ringset *rs, int count)
{
    __atomic_fetch_add(&rs->seq, 1u, __ATOMIC_RELEASE);
    ring_futex_wake(&rs->seq, count);
}

int msgr_ring_publish(msgr_ringset *rs, uint32_t i, uint64_t tail)
{
    struct ring_counters *r;
    uint64_t old;

    if (i >= rs->nrings)
        return -1;
    r = &rs->rings[i];
    old = __atomic_load_n(&r->tail, __ATOMIC_RELAXED);  /* own variable */
    if (tail < old)
        return -2;
    if (tail == old)
        return 0;
    __atomic_store_n(&r->tail, tail, __ATOMIC_RELEASE);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (__atomic_load_n(&rs->waiters, __ATOMIC_RELAXED) &&
        __atomic_exchange_n(&rs->waiters, 0u, __ATOMIC_ACQ_REL))
        ring_wake(rs, 1);
    return 0;
}

uint64_t msgr_ring_head(msgr_ringset *rs, uint32_t i)
{
    if (i >= rs->nrings)
        return 0;
    return __atomic_load_n(&rs->rings[i].head, __ATOMIC_ACQUIRE);
}

/* Consumer side: 1 if some ring has items, -1 closed and drained, else 0. */
static int ring_poll(msgr_ringset *rs, const uint64_t *heads, uint64_t *tails)
{
    int closed = __atomic_load_n(&rs->closed, __ATOMIC_ACQUIRE) != 0;
    int ready = 0;

    for (uint32_t i = 0; i < rs->nrings; i++) {
        tails[i] = __atomic_load_n(&rs->rings[i].tail, __ATOMIC_ACQUIRE);
        if (tails[i] > heads[i])
            ready = 1;
    }
    if (ready)
        return 1;
    return closed ? -1 : 0;
}

static void ring_release_heads(msgr_ringset *rs, const uint64_t *heads)
{
    for (uint32_t i = 0; i < rs->nrings; i++) {
        uint64_t *h = &rs->rings[i].head;
        /* Only the consumer writes head: skip stores that change nothing,
           so producers' cached copies of the line stay valid. */
        if (__atomic_load_n(h, __ATOMIC_RELAXED) != heads[i])
            __atomic_store_n(h, heads[i], __ATOMIC_RELEASE);
    }
}

/* Spins, then yields; returns the first non-zero poll result or 0. */
static int ring_spin(msgr_ringset *rs, const uint64_t *heads, uint64_t *tails)
{
    for (int n = 0; n < RING_SPINS + RING_YIELDS; n++) {
        int r;

        if (n < RING_SPINS)
            ring_cpu_relax();
        else
            sched_yield();
        r = ring_poll(rs, heads, tails);
        if (r != 0)
            return r;
    }
    return 0;
}

/* One announced sleep; returns a poll result, or 0 with *intr on EINTR. */
static int ring_sleep(msgr_ringset *rs, const uint64_t *heads,
                      uint64_t *tails, const struct timespec *rel, int *intr)
{
    uint32_t key = __atomic_load_n(&rs->seq, __ATOMIC_ACQUIRE);
    int r, err;

    __atomic_store_n(&rs->waiters, 1u, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    r = ring_poll(rs, heads, tails);
    if (r == 0) {
        err = ring_futex_wait(&rs->seq, key, rel);
        *intr = err == EINTR;
        r = ring_poll(rs, heads, tails);
    }
    __atomic_store_n(&rs->waiters, 0u, __ATOMIC_RELAXED);
    return r;
}

int msgr_ringset_wait(msgr_ringset *rs, const uint64_t *heads,
                      uint64_t *tails, double timeout)
{
    double deadline = 0;
    int r, intr = 0;

    ring_release_heads(rs, heads);
    r = ring_poll(rs, heads, tails);
    if (r != 0 || timeout == 0)
        return r;
    if (timeout > 0)
        deadline = ring_now() + timeout;
    r = ring_spin(rs, heads, tails);
    while (r == 0 && !intr) {
        struct timespec rel;
        double left = 0;

        if (timeout > 0) {
            left = deadline - ring_now();
            if (left <= 0)
                break;
            rel = ring_timespec(left);
        }
        r = ring_sleep(rs, heads, tails, timeout > 0 ? &rel : NULL, &intr);
    }
    return r;
}

void msgr_ringset_close(msgr_ringset *rs)
{
    __atomic_store_n(&rs->closed, 1u, __ATOMIC_RELEASE);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    ring_wake(rs, INT_MAX);
}

int msgr_ringset_closed(msgr_ringset *rs)
{
    return __atomic_load_n(&rs->closed, __ATOMIC_ACQUIRE) != 0;
}

int msgr_ringset_sleeping(msgr_ringset *rs)
{
    return __atomic_load_n(&rs->waiters, __ATOMIC_RELAXED) != 0;
}

#undef RING_CACHELINE
#undef RING_SPINS
#undef RING_YIELDS

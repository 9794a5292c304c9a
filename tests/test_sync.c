/* test_sync.c: Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event
 * and Barrier (Python's threading / multiprocessing primitives), between
 * threads and between processes, run once per start method (argv[1]).
 *
 * Every shared thing lives in the shared arena: the board where parties
 * report (board_t, from mp__arena_alloc) and the sync objects themselves, so
 * the same pointers work in threads and in children under fork, spawn and
 * forkserver. A party is a target (int fn(void *)) run either in a raw
 * pthread (so these tests do not depend on mproc's Thread) or in a child
 * process; it never calls cmocka: it reports through the board and its
 * return value (exit code). The parties' own synchronization is by futex
 * words of the board (word_*), not by the primitives under test, and by
 * "this task is asleep" checks in /proc; the only timeouts are generous
 * bounds (MP_TEST_LONG), or the behaviour under test, measured with margins.
 * mp-test: per-start-method
 * mp-test: timeout=900 */
#include "mp_test.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "sys/platform.h"

/* ---- the board -------------------------------------------------------- */

#define SLOTS 16
#define ROUNDS 1000

typedef struct {
    uint32_t go;      /* set by the test to release parties */
    uint32_t ready;   /* parties increment it once running */
    uint32_t held;    /* holders increment it once they hold */
    uint32_t done;    /* parties increment it once their call returned */
    uint32_t never;   /* nobody sets it: wait on it to block forever */
    uint32_t waiting; /* condition waiters, incremented under the lock */
    uint32_t woken;   /* condition waiters whose wait returned */
    uint32_t flag;    /* a predicate / "set before the event" flag */
    int32_t rc[SLOTS];  /* a party's main return code */
    int32_t rc2[SLOTS]; /* a second code (release, count...) */
    int32_t cnt[SLOTS]; /* a count (rlock count, items consumed...) */
    double el[SLOTS];   /* seconds the party's call took */
    double at[SLOTS];   /* when it returned (CLOCK_MONOTONIC, seconds) */
    pid_t tid[SLOTS];   /* kernel id of the party's thread */
    pid_t pid[SLOTS];   /* the party's process */
    volatile int64_t counter; /* protected by the lock under test */
    int32_t cur, max, total;  /* concurrent holders of a semaphore */
    int32_t items, produced, finished; /* producer/consumer, under the lock */
    int32_t parties;          /* barrier: parties, for the action */
    int32_t arrivals;         /* barrier: arrivals before wait */
    int32_t action_runs;      /* barrier: times the action ran */
    int32_t action_bad;       /* barrier: action saw a wrong arrival count */
    int32_t fail_round;       /* barrier: the action fails on this run */
    int32_t arg_misalign;     /* barrier: the action's arg % max_align_t */
    uint32_t mask[ROUNDS];    /* barrier: indexes seen per round */
} board_t;

enum { OBJ_LOCK, OBJ_RLOCK, OBJ_SEM, OBJ_COND };
enum { HOLD_RELEASE, HOLD_FOREVER, HOLD_RETURN };
enum { TRY_RELEASE, TRY_KEEP };

/* What a party gets (copied into a child: only arena pointers in it). */
typedef struct {
    board_t *b;
    mp_lock_t *lock;
    mp_rlock_t *rlock;
    mp_sem_t *sem;
    mp_cond_t *cond, *cond2;
    mp_event_t *ev;
    mp_barrier_t *bar;
    int kind; /* OBJ_* */
    int id;   /* the party's slot in the board */
    int n;    /* times / iterations */
    int mode;
    double timeout;
} targ_t;

static board_t *board_new(void)
{
    board_t *b = mp__arena_alloc(sizeof *b);
    assert_non_null(b);
    return b;
}

static void on_sigusr1(int sig) { (void)sig; }

/* catch_sigusr1 makes SIGUSR1 interrupt blocking calls and do nothing else
 * (no SA_RESTART: a futex wait returns EINTR). */
static void catch_sigusr1(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigusr1;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
}

static void block_forever(board_t *b)
{
    for (;;)
        mp_test_word_wait(&b->never, 1, MP_FOREVER);
}

/* A generous bound for a party's own waits (children cannot fail a case:
 * they give up and report). */
#define CHILD_LONG (60.0 * mp_test_scale())

/* ---- acting on "the object" of a party --------------------------------- */

static int obj_acquire(const targ_t *a, double timeout)
{
    switch (a->kind) {
    case OBJ_LOCK: return mp_lock_acquire(a->lock, timeout);
    case OBJ_RLOCK: return mp_rlock_acquire(a->rlock, timeout);
    case OBJ_SEM: return mp_sem_acquire(a->sem, timeout);
    case OBJ_COND: return mp_cond_acquire(a->cond, timeout);
    default: return -EINVAL;
    }
}

static int obj_release(const targ_t *a)
{
    switch (a->kind) {
    case OBJ_LOCK: return mp_lock_release(a->lock);
    case OBJ_RLOCK: return mp_rlock_release(a->rlock);
    case OBJ_SEM: return mp_sem_release(a->sem, 1);
    case OBJ_COND: return mp_cond_release(a->cond);
    default: return -EINVAL;
    }
}

/* ---- targets (threads and processes alike) ----------------------------- */

/* t_hold takes the object a->n times (at least once), reports in held, then:
 * HOLD_RELEASE waits for go and releases as many times; HOLD_FOREVER blocks
 * until killed; HOLD_RETURN returns (a thread ends, a process exits) while
 * holding. Codes: 10 acquire failed (rc[id]), 11 go never came, 12 release
 * failed (rc2[id]). */
static int t_hold(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    int n = a->n > 0 ? a->n : 1;
    b->tid[a->id] = mp_test_tid();
    for (int i = 0; i < n; i++) {
        int rc = obj_acquire(a, CHILD_LONG);
        if (rc != 0) {
            b->rc[a->id] = rc;
            mp_test_word_inc(&b->held);
            return 10;
        }
    }
    b->rc[a->id] = 0;
    if (a->kind == OBJ_RLOCK)
        b->cnt[a->id] = mp_rlock_count(a->rlock);
    mp_test_word_inc(&b->held);
    switch (a->mode) {
    case HOLD_FOREVER:
        block_forever(b);
        return 0;
    case HOLD_RETURN:
        return 0;
    default:
        if (mp_test_word_wait(&b->go, 1, CHILD_LONG) != 0)
            return 11;
        for (int i = 0; i < n; i++) {
            int rc = obj_release(a);
            if (rc != 0) {
                b->rc2[a->id] = rc;
                return 12;
            }
        }
        return 0;
    }
}

/* t_try makes one acquire with a->timeout, records its code, its duration
 * and (RLock) the count, then releases what it got (TRY_KEEP: after go).
 * Codes: 21 go never came, 22 release failed (rc2[id]). */
static int t_try(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    b->tid[a->id] = mp_test_tid();
    mp_test_word_inc(&b->ready);
    double t0 = mp_test_now();
    int rc = obj_acquire(a, a->timeout);
    b->at[a->id] = mp_test_now();
    b->el[a->id] = b->at[a->id] - t0;
    b->rc[a->id] = rc;
    if (a->kind == OBJ_RLOCK)
        b->cnt[a->id] = mp_rlock_count(a->rlock);
    mp_test_word_inc(&b->done);
    if (rc == 0 || rc == -EOWNERDEAD) {
        if (a->mode == TRY_KEEP && mp_test_word_wait(&b->go, 1, CHILD_LONG) != 0)
            return 21;
        int r = obj_release(a);
        b->rc2[a->id] = r;
        if (r != 0)
            return 22;
    }
    return 0;
}

/* t_incr adds 1 to the counter a->n times under the object. The read and
 * the write are apart (with a yield between now and then), so increments
 * get lost unless the object excludes. Codes: 13 acquire, 14 release. */
static int t_incr(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    mp_test_word_inc(&b->ready);
    mp_test_word_wait(&b->go, 1, CHILD_LONG);
    for (int i = 0; i < a->n; i++) {
        int rc = obj_acquire(a, CHILD_LONG);
        if (rc != 0) {
            b->rc[a->id] = rc;
            return 13;
        }
        int64_t v = b->counter;
        if ((i & 31) == 0)
            sched_yield();
        b->counter = v + 1;
        rc = obj_release(a);
        if (rc != 0) {
            b->rc2[a->id] = rc;
            return 14;
        }
    }
    return 0;
}

/* t_sem_holders takes a slot a->n times, counting the holders at once
 * (cur) and the most ever seen (max). Codes: 15 acquire, 16 release. */
static int t_sem_holders(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    mp_test_word_inc(&b->ready);
    mp_test_word_wait(&b->go, 1, CHILD_LONG);
    for (int i = 0; i < a->n; i++) {
        int rc = mp_sem_acquire(a->sem, CHILD_LONG);
        if (rc != 0) {
            b->rc[a->id] = rc;
            return 15;
        }
        int c = __atomic_add_fetch(&b->cur, 1, __ATOMIC_SEQ_CST);
        int m = __atomic_load_n(&b->max, __ATOMIC_SEQ_CST);
        while (c > m && !__atomic_compare_exchange_n(&b->max, &m, c, 0,
                                                     __ATOMIC_SEQ_CST,
                                                     __ATOMIC_SEQ_CST)) {
        }
        __atomic_add_fetch(&b->total, 1, __ATOMIC_SEQ_CST);
        if ((i & 3) == 0)
            sched_yield();
        __atomic_sub_fetch(&b->cur, 1, __ATOMIC_SEQ_CST);
        rc = mp_sem_release(a->sem, 1);
        if (rc != 0) {
            b->rc2[a->id] = rc;
            return 16;
        }
    }
    return 0;
}

/* t_sem_two takes one slot, reports, then takes a second one with
 * a->timeout (recorded in rc[id], el[id]) and releases both. */
static int t_sem_two(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    b->tid[a->id] = mp_test_tid();
    int rc = mp_sem_acquire(a->sem, CHILD_LONG);
    b->rc2[a->id] = rc;
    mp_test_word_inc(&b->held);
    if (rc != 0)
        return 17;
    double t0 = mp_test_now();
    rc = mp_sem_acquire(a->sem, a->timeout);
    b->at[a->id] = mp_test_now();
    b->el[a->id] = b->at[a->id] - t0;
    b->rc[a->id] = rc;
    mp_test_word_inc(&b->done);
    if (mp_sem_release(a->sem, rc == 0 ? 2 : 1) != 0)
        return 18;
    return 0;
}

/* t_cond_wait: under the lock, count itself in waiting and wait (a->timeout)
 * once; record the code (and the RLock count, taken a->n times), count
 * itself in woken and release. Codes: 23 acquire, 24 release. */
static int t_cond_wait(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    int n = a->n > 0 ? a->n : 1;
    if (a->mode == 1)
        catch_sigusr1();
    b->tid[a->id] = mp_test_tid();
    b->pid[a->id] = getpid();
    for (int i = 0; i < n; i++) {
        int rc = a->rlock ? mp_rlock_acquire(a->rlock, CHILD_LONG)
                          : mp_cond_acquire(a->cond, CHILD_LONG);
        if (rc != 0) {
            b->rc[a->id] = rc;
            mp_test_word_inc(&b->waiting);
            return 23;
        }
    }
    mp_test_word_inc(&b->waiting);
    double t0 = mp_test_now();
    int rc = mp_cond_wait(a->cond, a->timeout);
    b->at[a->id] = mp_test_now();
    b->el[a->id] = b->at[a->id] - t0;
    b->rc[a->id] = rc;
    if (a->rlock)
        b->cnt[a->id] = mp_rlock_count(a->rlock);
    mp_test_word_inc(&b->woken);
    for (int i = 0; i < n; i++) {
        int r = mp_cond_release(a->cond);
        if (r != 0) {
            b->rc2[a->id] = r;
            return 24;
        }
    }
    if (a->rlock)
        b->rc2[a->id] = mp_cond_release(a->cond); /* one too many: -EPERM */
    return 0;
}

/* t_consumer takes items until the producer has finished and none is left.
 * Codes: 25 acquire, 26 wait timed out / failed (rc[id]), 27 release. */
static int t_consumer(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    int rc = mp_cond_acquire(a->cond, CHILD_LONG);
    if (rc != 0) {
        b->rc[a->id] = rc;
        return 25;
    }
    for (;;) {
        while (b->items == 0 && !b->finished) {
            rc = mp_cond_wait(a->cond, CHILD_LONG);
            if (rc != 0) {
                b->rc[a->id] = rc;
                mp_cond_release(a->cond);
                return 26;
            }
        }
        if (b->items == 0)
            break;
        b->items--;
        b->cnt[a->id]++;
        mp_cond_notify(a->cond2, 1); /* not full any more */
    }
    if (mp_cond_release(a->cond) != 0)
        return 27;
    return 0;
}

/* t_event_wait waits for the event; the test sets flag before the event,
 * so a wait that returns 0 must see it. Codes: 40 wait failed, 41 returned
 * before the set. */
static int t_event_wait(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    b->tid[a->id] = mp_test_tid();
    mp_test_word_inc(&b->ready);
    double t0 = mp_test_now();
    int rc = mp_event_wait(a->ev, a->timeout);
    b->at[a->id] = mp_test_now();
    b->el[a->id] = b->at[a->id] - t0;
    b->rc[a->id] = rc;
    if (rc != 0)
        return 40;
    if (mp_test_word_get(&b->flag) != 1)
        return 41;
    return 0;
}

/* bar_action: the barrier's action; its argument is a copy of the board
 * pointer. It runs once per round, when every party of the round (and none
 * of the next) has arrived; it fails on run fail_round. */
static int bar_action(void *arg)
{
    board_t *b;
    memcpy(&b, arg, sizeof b); /* alignment: its own case, below */
    b->arg_misalign = (int32_t)((uintptr_t)arg % _Alignof(max_align_t));
    int runs = __atomic_add_fetch(&b->action_runs, 1, __ATOMIC_SEQ_CST);
    int arr = __atomic_load_n(&b->arrivals, __ATOMIC_SEQ_CST);
    if (arr != b->parties * runs && !b->action_bad)
        b->action_bad = runs;
    return b->fail_round == runs ? 1 : 0;
}

/* t_barrier waits a->n rounds (a->timeout each). After each wait: the index
 * is in 0..parties-1 (recorded in mask[round]); every party of the round
 * arrived and none is more than one round ahead; with mode 1 the action has
 * run exactly once per round so far. Codes: 30 wait failed (rc[id] = code,
 * cnt[id] = round), 31 left the barrier early, 32 the action count is
 * wrong. */
static int t_barrier(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    int parties = b->parties;
    b->tid[a->id] = mp_test_tid();
    mp_test_word_inc(&b->ready);
    for (int r = 0; r < a->n; r++) {
        __atomic_add_fetch(&b->arrivals, 1, __ATOMIC_SEQ_CST);
        int idx = mp_barrier_wait(a->bar, a->timeout);
        if (idx < 0 || idx >= parties) {
            b->rc[a->id] = idx;
            b->cnt[a->id] = r;
            return 30;
        }
        if (r < ROUNDS)
            __atomic_fetch_or(&b->mask[r], 1u << idx, __ATOMIC_SEQ_CST);
        int arr = __atomic_load_n(&b->arrivals, __ATOMIC_SEQ_CST);
        if (arr < parties * (r + 1) || arr > parties * (r + 2) - 1) {
            b->rc[a->id] = arr;
            b->cnt[a->id] = r;
            return 31;
        }
        if (a->mode == 1 &&
            __atomic_load_n(&b->action_runs, __ATOMIC_SEQ_CST) != r + 1) {
            b->rc[a->id] = __atomic_load_n(&b->action_runs, __ATOMIC_SEQ_CST);
            b->cnt[a->id] = r;
            return 32;
        }
    }
    b->rc[a->id] = 0;
    return 0;
}

/* t_bar_once waits once (a->timeout) and records the code and duration. */
static int t_bar_once(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    b->tid[a->id] = mp_test_tid();
    mp_test_word_inc(&b->ready);
    double t0 = mp_test_now();
    int rc = mp_barrier_wait(a->bar, a->timeout);
    b->at[a->id] = mp_test_now();
    b->el[a->id] = b->at[a->id] - t0;
    b->rc[a->id] = rc;
    mp_test_word_inc(&b->done);
    return 0;
}

/* t_block_forever reports ready and blocks until killed. */
static int t_block_forever(void *arg)
{
    targ_t *a = arg;
    a->b->tid[a->id] = mp_test_tid();
    mp_test_word_inc(&a->b->ready);
    block_forever(a->b);
    return 0;
}

/* t_free_all: mp_*_free in a process that did not make the objects does
 * nothing. */
static int t_free_all(void *arg)
{
    targ_t *a = arg;
    mp_lock_free(a->lock);
    mp_rlock_free(a->rlock);
    mp_sem_free(a->sem);
    mp_cond_free(a->cond);
    mp_event_free(a->ev);
    mp_barrier_free(a->bar);
    return 0;
}

/* ---- parties: a target in a thread or in a child process --------------- */

/* (mp_party_start, mp_party_join and mp_party_kill are in mp_test.h.) */

/* kill_unreaped SIGKILLs a process party without joining it, and waits
 * until it is dead: a zombie of ours (fork, spawn) or gone (forkserver,
 * whose server reaps it). mp_party_join reaps it later. */
static void kill_unreaped(mp_party_t *y)
{
    assert_true(y->proc);
    pid_t pid = mp_process_pid(y->p);
    mp_assert_int(kill(pid, SIGKILL), 0);
    double end = mp_test_now() + MP_TEST_LONG;
    char st;
    while ((st = mp_test_proc_state(pid, NULL)) != 'Z' && st != 0) {
        if (mp_test_now() > end)
            mp_test_fail("process %d still %c after SIGKILL\n", (int)pid, st);
        mp_test_sleep(0.001);
    }
}

static const char *kind_name(int proc) { return proc ? "process" : "thread"; }

static mp_lock_t *lock_new(void)
{
    mp_lock_t *l = NULL;
    mp_assert_int(mp_lock_new(&l), 0);
    assert_non_null(l);
    return l;
}

static mp_rlock_t *rlock_new(void)
{
    mp_rlock_t *l = NULL;
    mp_assert_int(mp_rlock_new(&l), 0);
    assert_non_null(l);
    return l;
}

static mp_sem_t *sem_new(int value, int bounded)
{
    mp_sem_t *s = NULL;
    mp_assert_int(mp_sem_new(&s, value, bounded), 0);
    assert_non_null(s);
    return s;
}

static mp_cond_t *cond_new(mp_lock_t *l, mp_rlock_t *r)
{
    mp_cond_t *c = NULL;
    mp_assert_int(mp_cond_new(&c, l, r), 0);
    assert_non_null(c);
    return c;
}

static mp_event_t *event_new(void)
{
    mp_event_t *e = NULL;
    mp_assert_int(mp_event_new(&e), 0);
    assert_non_null(e);
    return e;
}

static mp_barrier_t *barrier_new(board_t *b, int parties, int with_action,
                                 double timeout)
{
    mp_barrier_t *bar = NULL;
    b->parties = parties;
    int rc = with_action
                 ? mp_barrier_new(&bar, parties, bar_action, &b, sizeof b, timeout)
                 : mp_barrier_new(&bar, parties, NULL, NULL, 0, timeout);
    mp_assert_int(rc, 0);
    assert_non_null(bar);
    return bar;
}

/* Warm-up: the arena, a lock, and one child of the program's start method
 * (so the forkserver and its connection exist before the snapshot). */
static int warm_sync(void)
{
    void *x = mp__arena_alloc(16);
    if (!x)
        return -ENOMEM;
    mp__arena_free(x);
    mp_lock_t *l = NULL;
    int rc = mp_lock_new(&l);
    if (rc != 0)
        return rc;
    rc = mp_lock_acquire(l, 0);
    if (rc == 0)
        rc = mp_lock_release(l);
    mp_lock_free(l);
    if (rc != 0)
        return rc;
    return mp_test_warm_child();
}

/* ---- Lock --------------------------------------------------------------- */

/* One thread: acquire/release, locked(), releasing an unlocked lock is
 * -EPERM, the holder acquiring again is -EDEADLK (Python would hang), a
 * free lock is taken with timeout 0, any negative timeout waits forever. */
static void lock_basic(void **state)
{
    mp_lock_t *l = lock_new();
    mp_assert_int(mp_lock_locked(l), 0);
    mp_assert_int(mp_lock_release(l), -EPERM);
    mp_assert_int(mp_lock_acquire(l, MP_FOREVER), 0);
    mp_assert_int(mp_lock_locked(l), 1);
    double t0 = mp_test_now();
    mp_assert_int(mp_lock_acquire(l, MP_FOREVER), -EDEADLK);
    mp_assert_int(mp_lock_acquire(l, 0.5), -EDEADLK);
    mp_test_check_quick(mp_test_now() - t0, "re-acquiring a held lock");
    mp_assert_int(mp_lock_locked(l), 1);
    mp_assert_int(mp_lock_release(l), 0);
    mp_assert_int(mp_lock_locked(l), 0);
    mp_assert_int(mp_lock_release(l), -EPERM);
    mp_assert_int(mp_lock_acquire(l, 0), 0);
    mp_assert_int(mp_lock_release(l), 0);
    mp_assert_int(mp_lock_acquire(l, -5.0), 0);
    mp_assert_int(mp_lock_release(l), 0);
    mp_assert_int(mp_lock_acquire(l, 1.0), 0);
    mp_assert_int(mp_lock_release(l), 0);
    mp_assert_int(mp_lock_locked(l), 0);
    mp_lock_free(l);
}

/* A lock held by another party (thread or process): acquire(0) is
 * -ETIMEDOUT at once, acquire(0.3) after 0.3 s; releasing it from here is
 * -EPERM and leaves it held; a party blocked in acquire gets it as soon as
 * the holder releases. */
static void lock_contended(int proc)
{
    board_t *b = board_new();
    mp_lock_t *l = lock_new();
    targ_t ha = {.b = b, .lock = l, .kind = OBJ_LOCK, .id = 0, .n = 1,
                 .mode = HOLD_RELEASE};
    static mp_party_t h, w;
    mp_party_start(&h, proc, t_hold, &ha, sizeof ha);
    mp_test_wait_word(&b->held, 1, "holder");
    mp_assert_int(b->rc[0], 0);
    mp_assert_int(mp_lock_locked(l), 1);

    double t0 = mp_test_now();
    mp_assert_int(mp_lock_acquire(l, 0), -ETIMEDOUT);
    mp_test_check_quick(mp_test_now() - t0, "acquire(0) on a held lock");
    t0 = mp_test_now();
    mp_assert_int(mp_lock_acquire(l, 0.3), -ETIMEDOUT);
    mp_test_check_timed(mp_test_now() - t0, 0.3, "acquire(0.3) on a held lock");
    mp_assert_int(mp_lock_release(l), -EPERM);
    mp_assert_int(mp_lock_locked(l), 1);
    mp_assert_int(mp_lock_acquire(l, 0), -ETIMEDOUT);

    /* A waiter blocks until the holder releases. */
    targ_t wa = {.b = b, .lock = l, .kind = OBJ_LOCK, .id = 1,
                 .timeout = MP_TEST_LONG, .mode = TRY_RELEASE};
    mp_party_start(&w, proc, t_try, &wa, sizeof wa);
    mp_test_wait_word(&b->ready, 1, "waiter");
    mp_test_wait_asleep(b->tid[1], "the waiter in acquire");
    mp_assert_int(mp_test_word_get(&b->done), 0);
    double t_rel = mp_test_now();
    mp_test_word_store(&b->go, 1);
    mp_assert_int(mp_party_join(&h), 0);
    mp_assert_int(mp_party_join(&w), 0);
    mp_assert_int(b->rc[1], 0);
    mp_test_check_prompt(b->at[1], t_rel, "the waiter for a released lock");
    mp_assert_int(b->rc2[1], 0);
    mp_assert_int(mp_lock_locked(l), 0);
    mp_assert_int(mp_lock_acquire(l, 0), 0);
    mp_assert_int(mp_lock_release(l), 0);
    mp_lock_free(l);
    mp__arena_free(b);
}

static void lock_contended_threads(void **state) { lock_contended(0); }
static void lock_contended_processes(void **state) { lock_contended(1); }

/* Mutual exclusion: every increment under the lock survives. */
static void lock_mutual_exclusion(int proc, int parties, int n)
{
    board_t *b = board_new();
    mp_lock_t *l = lock_new();
    static mp_party_t y[SLOTS];
    for (int i = 0; i < parties; i++) {
        targ_t a = {.b = b, .lock = l, .kind = OBJ_LOCK, .id = i, .n = n};
        mp_party_start(&y[i], proc, t_incr, &a, sizeof a);
    }
    mp_test_wait_word(&b->ready, (uint32_t)parties, "incrementers");
    mp_test_word_store(&b->go, 1);
    for (int i = 0; i < parties; i++) {
        int code = mp_party_join(&y[i]);
        if (code != 0)
            mp_test_fail("%s %d returned %d (13: acquire gave %d, 14: release "
                         "gave %d)\n", kind_name(proc), i, code, b->rc[i],
                         b->rc2[i]);
    }
    mp_assert_int(b->counter, (int64_t)parties * n);
    mp_assert_int(mp_lock_locked(l), 0);
    mp_lock_free(l);
    mp__arena_free(b);
}

static void lock_mutex_threads(void **state) { lock_mutual_exclusion(0, 4, 10000); }
static void lock_mutex_processes(void **state) { lock_mutual_exclusion(1, 2, 10000); }

/* The holder dies holding the lock, before anybody waits: the next acquire
 * returns -EOWNERDEAD and holds the lock; it then works as usual. how: a
 * process SIGKILLed, a process that exits, a thread that returns. */
enum { DIE_KILL, DIE_EXIT, DIE_THREAD };

static void owner_died_after(int kind, int how)
{
    board_t *b = board_new();
    targ_t a = {.b = b, .kind = kind, .id = 0, .n = kind == OBJ_RLOCK ? 2 : 1,
                .mode = how == DIE_KILL ? HOLD_FOREVER : HOLD_RETURN};
    if (kind == OBJ_LOCK)
        a.lock = lock_new();
    else
        a.rlock = rlock_new();
    static mp_party_t h;
    mp_party_start(&h, how != DIE_THREAD, t_hold, &a, sizeof a);
    mp_test_wait_word(&b->held, 1, "holder");
    mp_assert_int(b->rc[0], 0);
    if (kind == OBJ_RLOCK)
        mp_assert_int(b->cnt[0], 2);
    if (how == DIE_KILL)
        mp_party_kill(&h);
    else
        mp_assert_int(mp_party_join(&h), 0);

    double t0 = mp_test_now();
    mp_assert_int(obj_acquire(&a, MP_TEST_LONG), -EOWNERDEAD);
    mp_test_check_quick(mp_test_now() - t0, "acquire after the holder died");
    if (kind == OBJ_LOCK) {
        mp_assert_int(mp_lock_locked(a.lock), 1);
    } else {
        mp_assert_int(mp_rlock_count(a.rlock), 1);
    }
    mp_assert_int(obj_release(&a), 0);
    if (kind == OBJ_LOCK)
        mp_assert_int(mp_lock_locked(a.lock), 0);
    else
        mp_assert_int(mp_rlock_count(a.rlock), 0);
    mp_assert_int(obj_release(&a), -EPERM);
    mp_assert_int(obj_acquire(&a, 0), 0);
    mp_assert_int(obj_release(&a), 0);
    mp_assert_int(obj_acquire(&a, MP_TEST_LONG), 0);
    mp_assert_int(obj_release(&a), 0);

    /* And it still excludes: another party cannot take it while we hold. */
    mp_assert_int(obj_acquire(&a, 0), 0);
    targ_t ta = a;
    ta.id = 1;
    ta.timeout = 0;
    ta.mode = TRY_RELEASE;
    mp_party_start(&h, 0, t_try, &ta, sizeof ta);
    mp_assert_int(mp_party_join(&h), 0);
    mp_assert_int(b->rc[1], -ETIMEDOUT);
    mp_assert_int(obj_release(&a), 0);
    mp_lock_free(a.lock);
    mp_rlock_free(a.rlock);
    mp__arena_free(b);
}

static void lock_owner_killed(void **state) { owner_died_after(OBJ_LOCK, DIE_KILL); }
static void lock_owner_exited(void **state) { owner_died_after(OBJ_LOCK, DIE_EXIT); }
static void lock_owner_thread_ended(void **state) { owner_died_after(OBJ_LOCK, DIE_THREAD); }
static void rlock_owner_killed(void **state) { owner_died_after(OBJ_RLOCK, DIE_KILL); }
static void rlock_owner_exited(void **state) { owner_died_after(OBJ_RLOCK, DIE_EXIT); }
static void rlock_owner_thread_ended(void **state) { owner_died_after(OBJ_RLOCK, DIE_THREAD); }

/* ---- the robust list: several locks held and released out of order, a
 * glibc robust mutex on the same list, a lock held across a fork ---- */

typedef struct {
    board_t *b;
    mp_lock_t *l[3];
    int mode;
} list_t;

enum { LIST_MOVES, LIST_GLIBC, LIST_FORK };

/* t_list: LIST_MOVES takes A and B, releases A (unlinking the older
 * entry, behind B) and takes C. LIST_GLIBC takes A, then takes and gives
 * back a glibc robust mutex, which shares the thread's robust list and its
 * list_op_pending slot. Both then block until killed. LIST_FORK runs in a
 * child of a parent that holds A: A is not the child's, B works. */
static int t_list(void *arg)
{
    list_t *a = arg;
    board_t *b = a->b;
    b->tid[0] = mp_test_tid();
    switch (a->mode) {
    case LIST_MOVES:
        b->rc[0] = mp_lock_acquire(a->l[0], CHILD_LONG);
        b->rc[1] = mp_lock_acquire(a->l[1], CHILD_LONG);
        b->rc[2] = mp_lock_release(a->l[0]);
        b->rc[3] = mp_lock_acquire(a->l[2], CHILD_LONG);
        break;
    case LIST_GLIBC: {
        pthread_mutexattr_t at;
        pthread_mutex_t gm;
        pthread_mutexattr_init(&at);
        pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST);
        pthread_mutex_init(&gm, &at);
        b->rc[0] = mp_lock_acquire(a->l[0], CHILD_LONG);
        b->rc[1] = -pthread_mutex_lock(&gm);
        b->rc[2] = -pthread_mutex_unlock(&gm);
        b->rc[3] = 0;
        break;
    }
    default: /* LIST_FORK */
        b->rc[0] = mp_lock_acquire(a->l[0], 0);
        b->rc[1] = mp_lock_acquire(a->l[1], CHILD_LONG);
        b->rc[2] = mp_lock_release(a->l[1]);
        b->rc[3] = mp_lock_release(a->l[0]);
        return 0;
    }
    mp_test_word_inc(&b->held);
    block_forever(b);
    return 0;
}

static void list_setup(list_t *a, int mode)
{
    a->b = board_new();
    for (int i = 0; i < 3; i++)
        a->l[i] = lock_new();
    a->mode = mode;
}

/* list_kill_holder runs t_list (mode) in a child, checks its calls all
 * succeeded, and SIGKILLs it while it holds its locks. */
static void list_kill_holder(list_t *a, int mode, const char *what)
{
    list_setup(a, mode);
    static mp_party_t h;
    mp_party_start(&h, 1, t_list, a, sizeof *a);
    mp_test_wait_word(&a->b->held, 1, what);
    for (int i = 0; i < 4; i++)
        mp_assert_int(a->b->rc[i], 0);
    mp_party_kill(&h);
}

static void list_teardown(list_t *a)
{
    for (int i = 0; i < 3; i++)
        mp_lock_free(a->l[i]);
    mp__arena_free(a->b);
}

/* A process that took A, B, released A and took C is SIGKILLed: A is free,
 * B and C were marked by the kernel (a try takes them with -EOWNERDEAD),
 * and all three work on. */
static void lock_owner_killed_after_moves(void **state)
{
    list_t a;
    list_kill_holder(&a, LIST_MOVES, "holder of B and C");
    /* Reaped: the kernel has handled the dead thread's list and pending
     * entry, so a try (timeout 0, no sleeping, no owner check) finds B and
     * C marked; an entry the kernel missed would still hold the dead TID. */
    mp_assert_int(mp_lock_acquire(a.l[0], 0), 0);
    mp_assert_int(mp_lock_acquire(a.l[1], 0), -EOWNERDEAD);
    mp_assert_int(mp_lock_acquire(a.l[2], 0), -EOWNERDEAD);
    for (int i = 2; i >= 0; i--)
        mp_assert_int(mp_lock_release(a.l[i]), 0);
    for (int i = 0; i < 3; i++) {
        mp_assert_int(mp_lock_acquire(a.l[i], 0), 0);
        mp_assert_int(mp_lock_release(a.l[i]), 0);
    }
    list_teardown(&a);
}

/* A process holding A uses a glibc robust mutex and is SIGKILLed: the
 * kernel still found A on the list it shares with glibc (a try takes it with
 * -EOWNERDEAD). */
static void lock_owner_killed_after_glibc_robust(void **state)
{
    list_t a;
    list_kill_holder(&a, LIST_GLIBC, "holder of A");
    mp_assert_int(mp_lock_acquire(a.l[0], 0), -EOWNERDEAD);
    mp_assert_int(mp_lock_release(a.l[0]), 0);
    mp_assert_int(mp_lock_acquire(a.l[0], 0), 0);
    mp_assert_int(mp_lock_release(a.l[0]), 0);
    list_teardown(&a);
}

/* This thread holds A while a child is made: the child cannot take A nor
 * release it, takes and releases B, and its exit leaves A held by us, not
 * marked as of a dead owner. */
static void lock_held_across_child(void **state)
{
    list_t a;
    list_setup(&a, LIST_FORK);
    mp_assert_int(mp_lock_acquire(a.l[0], 0), 0);
    static mp_party_t h;
    mp_party_start(&h, 1, t_list, &a, sizeof a);
    mp_assert_int(mp_party_join(&h), 0);
    mp_assert_int(a.b->rc[0], -ETIMEDOUT);
    mp_assert_int(a.b->rc[1], 0);
    mp_assert_int(a.b->rc[2], 0);
    mp_assert_int(a.b->rc[3], -EPERM);
    mp_assert_int(mp_lock_locked(a.l[0]), 1);
    mp_assert_int(mp_lock_release(a.l[0]), 0);
    mp_assert_int(mp_lock_acquire(a.l[0], 0), 0);
    mp_assert_int(mp_lock_release(a.l[0]), 0);
    list_teardown(&a);
}

/* check_waiters_after_owner_died: two waiters (slots 1 and 2) were asleep
 * when the holder went away at t_rel: exactly one got -EOWNERDEAD, the other
 * 0, both promptly, each released cleanly (an RLock with count 1), and the
 * object works afterwards. Frees the object and the board. */
static void check_waiters_after_owner_died(board_t *b, targ_t *a, int kind, double t_rel,
                                           const char *what)
{
    int r1 = b->rc[1], r2 = b->rc[2];
    if (!((r1 == -EOWNERDEAD && r2 == 0) || (r1 == 0 && r2 == -EOWNERDEAD)))
        mp_test_fail("waiters got %d (%s) and %d (%s); expected one "
                     "-EOWNERDEAD and one 0\n", r1, mp_strerror(r1), r2,
                     mp_strerror(r2));
    for (int i = 1; i <= 2; i++) {
        mp_test_check_prompt(b->at[i], t_rel, what);
        mp_assert_int(b->rc2[i], 0);
        if (kind == OBJ_RLOCK)
            mp_assert_int(b->cnt[i], 1);
    }
    mp_assert_int(obj_acquire(a, 0), 0);
    mp_assert_int(obj_release(a), 0);
    mp_lock_free(a->lock);
    mp_rlock_free(a->rlock);
    mp__arena_free(b);
}

/* The holder (a process) is SIGKILLed while others are blocked in acquire
 * (a thread of ours and a child process, both asleep in acquire): each of
 * them gets the lock in turn, the first with -EOWNERDEAD, the second with 0;
 * neither waits for its timeout. */
static void owner_died_waiters(int kind)
{
    board_t *b = board_new();
    targ_t a = {.b = b, .kind = kind, .id = 0, .n = kind == OBJ_RLOCK ? 2 : 1,
                .mode = HOLD_FOREVER};
    if (kind == OBJ_LOCK)
        a.lock = lock_new();
    else
        a.rlock = rlock_new();
    static mp_party_t h, w[2];
    mp_party_start(&h, 1, t_hold, &a, sizeof a);
    mp_test_wait_word(&b->held, 1, "holder");
    mp_assert_int(b->rc[0], 0);
    for (int i = 0; i < 2; i++) {
        targ_t wa = a;
        wa.id = 1 + i;
        wa.timeout = MP_TEST_LONG;
        wa.mode = TRY_RELEASE;
        mp_party_start(&w[i], i, t_try, &wa, sizeof wa);
    }
    mp_test_wait_word(&b->ready, 2, "waiters");
    mp_test_wait_asleep(b->tid[1], "the waiting thread");
    mp_test_wait_asleep(b->tid[2], "the waiting process");
    double t_rel = mp_test_now();
    mp_party_kill(&h);
    int c1 = mp_party_join(&w[0]), c2 = mp_party_join(&w[1]);
    mp_assert_int(c1, 0);
    mp_assert_int(c2, 0);
    check_waiters_after_owner_died(b, &a, kind, t_rel, "a waiter for a lock whose holder died");
}

static void lock_owner_killed_waiters(void **state) { owner_died_waiters(OBJ_LOCK); }
static void rlock_owner_killed_waiters(void **state) { owner_died_waiters(OBJ_RLOCK); }

/* t_hold_then_return: holds the object, reports, waits for go and
 * returns holding it (its thread ends holding the lock). */
static int t_hold_then_return(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    int n = a->n > 0 ? a->n : 1;
    b->tid[a->id] = mp_test_tid();
    for (int i = 0; i < n; i++) {
        int rc = obj_acquire(a, CHILD_LONG);
        if (rc != 0) {
            b->rc[a->id] = rc;
            mp_test_word_inc(&b->held);
            return 10;
        }
    }
    b->rc[a->id] = 0;
    mp_test_word_inc(&b->held);
    if (mp_test_word_wait(&b->go, 1, CHILD_LONG) != 0)
        return 11;
    return 0;
}

/* A thread that ends holding the lock while a thread and a process wait in
 * acquire: both get it in turn, one of them with -EOWNERDEAD. */
static void thread_ended_waiters(int kind)
{
    board_t *b = board_new();
    targ_t a = {.b = b, .kind = kind, .id = 0, .n = kind == OBJ_RLOCK ? 3 : 1};
    if (kind == OBJ_LOCK)
        a.lock = lock_new();
    else
        a.rlock = rlock_new();
    static mp_party_t h, w[2];
    mp_party_start(&h, 0, t_hold_then_return, &a, sizeof a);
    mp_test_wait_word(&b->held, 1, "holder");
    mp_assert_int(b->rc[0], 0);
    for (int i = 0; i < 2; i++) {
        targ_t wa = a;
        wa.id = 1 + i;
        wa.timeout = MP_TEST_LONG;
        wa.mode = TRY_RELEASE;
        mp_party_start(&w[i], i, t_try, &wa, sizeof wa);
    }
    mp_test_wait_word(&b->ready, 2, "waiters");
    mp_test_wait_asleep(b->tid[1], "the waiting thread");
    mp_test_wait_asleep(b->tid[2], "the waiting process");
    double t_rel = mp_test_now();
    mp_test_word_store(&b->go, 1);
    mp_assert_int(mp_party_join(&h), 0);
    mp_assert_int(mp_party_join(&w[0]), 0);
    mp_assert_int(mp_party_join(&w[1]), 0);
    check_waiters_after_owner_died(b, &a, kind, t_rel, "a waiter for a lock whose holder ended");
}

static void lock_thread_ended_waiters(void **state) { thread_ended_waiters(OBJ_LOCK); }
static void rlock_thread_ended_waiters(void **state) { thread_ended_waiters(OBJ_RLOCK); }

/* ---- RLock -------------------------------------------------------------- */

/* Recursion: taken 3 times (count 3), another thread cannot take it until
 * it was released 3 times; releasing what one does not hold is -EPERM. */
static void rlock_recursion(int proc)
{
    board_t *b = board_new();
    mp_rlock_t *r = rlock_new();
    static mp_party_t y;
    int id = 0;
    targ_t ta = {.b = b, .rlock = r, .kind = OBJ_RLOCK, .timeout = 0,
                 .mode = TRY_RELEASE};

    mp_assert_int(mp_rlock_count(r), 0);
    mp_assert_int(mp_rlock_release(r), -EPERM);
    for (int i = 1; i <= 3; i++) {
        mp_assert_int(mp_rlock_acquire(r, i == 2 ? 0 : MP_FOREVER), 0);
        mp_assert_int(mp_rlock_count(r), i);
    }
    for (int k = 3; k >= 1; k--) {
        ta.id = id;
        mp_party_start(&y, proc, t_try, &ta, sizeof ta);
        mp_assert_int(mp_party_join(&y), 0);
        if (b->rc[id] != -ETIMEDOUT)
            mp_test_fail("another %s took an RLock held %d time(s): %d (%s)\n",
                         kind_name(proc), k, b->rc[id], mp_strerror(b->rc[id]));
        mp_assert_int(b->cnt[id], 0);
        id++;
        mp_assert_int(mp_rlock_release(r), 0);
        mp_assert_int(mp_rlock_count(r), k - 1);
    }
    mp_assert_int(mp_rlock_release(r), -EPERM);
    mp_assert_int(mp_rlock_count(r), 0);

    /* Now free: another party takes it (count 1 there), and while it holds
     * it this one neither takes it nor releases it. */
    ta.id = id;
    ta.mode = TRY_KEEP;
    mp_party_start(&y, proc, t_try, &ta, sizeof ta);
    mp_test_wait_word(&b->done, (uint32_t)id + 1, "the other party's acquire");
    mp_assert_int(b->rc[id], 0);
    mp_assert_int(b->cnt[id], 1);
    mp_assert_int(mp_rlock_count(r), 0);
    mp_assert_int(mp_rlock_acquire(r, 0), -ETIMEDOUT);
    double t0 = mp_test_now();
    mp_assert_int(mp_rlock_acquire(r, 0.3), -ETIMEDOUT);
    mp_test_check_timed(mp_test_now() - t0, 0.3, "RLock acquire(0.3) held elsewhere");
    mp_assert_int(mp_rlock_release(r), -EPERM);
    mp_test_word_store(&b->go, 1);
    mp_assert_int(mp_party_join(&y), 0);
    mp_assert_int(b->rc2[id], 0);
    mp_assert_int(mp_rlock_acquire(r, 0), 0);
    mp_assert_int(mp_rlock_count(r), 1);
    mp_assert_int(mp_rlock_release(r), 0);
    mp_rlock_free(r);
    mp__arena_free(b);
}

static void rlock_recursion_threads(void **state) { rlock_recursion(0); }
static void rlock_recursion_processes(void **state) { rlock_recursion(1); }

/* An RLock excludes too: 2 processes x 5,000 increments, each taking it
 * twice. */
static int t_incr_rlock2(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    mp_test_word_inc(&b->ready);
    mp_test_word_wait(&b->go, 1, CHILD_LONG);
    for (int i = 0; i < a->n; i++) {
        if (mp_rlock_acquire(a->rlock, CHILD_LONG) != 0 ||
            mp_rlock_acquire(a->rlock, 0) != 0)
            return 13;
        int64_t v = b->counter;
        if ((i & 31) == 0)
            sched_yield();
        b->counter = v + 1;
        if (mp_rlock_release(a->rlock) != 0 || mp_rlock_release(a->rlock) != 0)
            return 14;
    }
    return 0;
}

static void rlock_mutex_processes(void **state)
{
    board_t *b = board_new();
    mp_rlock_t *r = rlock_new();
    static mp_party_t y[2];
    for (int i = 0; i < 2; i++) {
        targ_t a = {.b = b, .rlock = r, .kind = OBJ_RLOCK, .id = i, .n = 5000};
        mp_party_start(&y[i], 1, t_incr_rlock2, &a, sizeof a);
    }
    mp_test_wait_word(&b->ready, 2, "incrementers");
    mp_test_word_store(&b->go, 1);
    for (int i = 0; i < 2; i++)
        mp_assert_int(mp_party_join(&y[i]), 0);
    mp_assert_int(b->counter, 10000);
    mp_rlock_free(r);
    mp__arena_free(b);
}

/* ---- Semaphore ---------------------------------------------------------- */

/* One thread: value, acquire/release, release(n), timeouts, bad values. */
static void sem_basic(void **state)
{
    mp_sem_t *s = NULL;
    mp_assert_int(mp_sem_new(&s, -1, 0), -EINVAL);
    mp_assert_int(mp_sem_new(&s, INT_MIN, 0), -EINVAL);
    s = sem_new(2, 0);
    mp_assert_int(mp_sem_value(s), 2);
    mp_assert_int(mp_sem_acquire(s, MP_FOREVER), 0);
    mp_assert_int(mp_sem_value(s), 1);
    mp_assert_int(mp_sem_acquire(s, 0), 0);
    mp_assert_int(mp_sem_value(s), 0);
    double t0 = mp_test_now();
    mp_assert_int(mp_sem_acquire(s, 0), -ETIMEDOUT);
    mp_test_check_quick(mp_test_now() - t0, "Semaphore acquire(0) at 0");
    t0 = mp_test_now();
    mp_assert_int(mp_sem_acquire(s, 0.3), -ETIMEDOUT);
    mp_test_check_timed(mp_test_now() - t0, 0.3, "Semaphore acquire(0.3) at 0");
    mp_assert_int(mp_sem_value(s), 0);
    mp_assert_int(mp_sem_release(s, 1), 0);
    mp_assert_int(mp_sem_value(s), 1);
    mp_assert_int(mp_sem_release(s, 3), 0); /* unbounded: above the initial */
    mp_assert_int(mp_sem_value(s), 4);
    mp_assert_int(mp_sem_release(s, 0), -EINVAL);
    mp_assert_int(mp_sem_release(s, -2), -EINVAL);
    mp_assert_int(mp_sem_value(s), 4);
    for (int i = 0; i < 4; i++)
        mp_assert_int(mp_sem_acquire(s, 0), 0);
    mp_assert_int(mp_sem_acquire(s, 0), -ETIMEDOUT);
    mp_sem_free(s);

    s = sem_new(0, 0);
    mp_assert_int(mp_sem_value(s), 0);
    mp_assert_int(mp_sem_acquire(s, 0), -ETIMEDOUT);
    mp_assert_int(mp_sem_release(s, 1), 0);
    mp_assert_int(mp_sem_acquire(s, -3.0), 0);
    mp_sem_free(s);
}

/* release(n) wakes n waiters: three parties wait on a Semaphore(0);
 * release(2) lets exactly two through, release(1) the third. */
static void sem_release_n(int proc)
{
    board_t *b = board_new();
    mp_sem_t *s = sem_new(0, 0);
    static mp_party_t y[3];
    for (int i = 0; i < 3; i++)
        b->rc[i] = 12345; /* not returned yet */
    for (int i = 0; i < 3; i++) {
        targ_t a = {.b = b, .sem = s, .kind = OBJ_SEM, .id = i,
                    .timeout = MP_TEST_LONG, .mode = TRY_KEEP};
        mp_party_start(&y[i], proc, t_try, &a, sizeof a);
    }
    mp_test_wait_word(&b->ready, 3, "waiters");
    for (int i = 0; i < 3; i++)
        mp_test_wait_asleep(b->tid[i], "a waiter in acquire");
    double t_rel = mp_test_now();
    mp_assert_int(mp_sem_release(s, 2), 0);
    mp_test_wait_word(&b->done, 2, "waiters let through by release(2)");
    mp_assert_int(mp_sem_value(s), 0);
    mp_test_sleep(0.2); /* a window for a third waiter to pass wrongly */
    if (mp_test_word_get(&b->done) != 2)
        mp_test_fail("release(2) let %u waiters through\n", mp_test_word_get(&b->done));
    int passed = 0;
    for (int i = 0; i < 3; i++)
        if (b->rc[i] == 0) {
            mp_test_check_prompt(b->at[i], t_rel, "a waiter let through by release(2)");
            passed++;
        }
    mp_assert_int(passed, 2);
    t_rel = mp_test_now();
    mp_assert_int(mp_sem_release(s, 1), 0);
    mp_test_wait_word(&b->done, 3, "the waiter let through by release(1)");
    for (int i = 0; i < 3; i++)
        if (b->at[i] > t_rel)
            mp_test_check_prompt(b->at[i], t_rel, "the waiter let through by release(1)");
    mp_assert_int(mp_sem_value(s), 0);
    mp_test_word_store(&b->go, 1); /* each releases its slot */
    for (int i = 0; i < 3; i++) {
        mp_assert_int(mp_party_join(&y[i]), 0);
        mp_assert_int(b->rc[i], 0);
    }
    mp_assert_int(mp_sem_value(s), 3);
    mp_sem_free(s);
    mp__arena_free(b);
}

static void sem_release_n_threads(void **state) { sem_release_n(0); }
static void sem_release_n_processes(void **state) { sem_release_n(1); }

/* Never more than N holders at once among several parties. */
static void sem_holders(int proc, int bounded)
{
    enum { N = 3, PARTIES = 6, ITERS = 400 };
    board_t *b = board_new();
    mp_sem_t *s = sem_new(N, bounded);
    static mp_party_t y[PARTIES];
    for (int i = 0; i < PARTIES; i++) {
        targ_t a = {.b = b, .sem = s, .kind = OBJ_SEM, .id = i, .n = ITERS};
        mp_party_start(&y[i], proc, t_sem_holders, &a, sizeof a);
    }
    mp_test_wait_word(&b->ready, PARTIES, "parties");
    mp_test_word_store(&b->go, 1);
    for (int i = 0; i < PARTIES; i++) {
        int code = mp_party_join(&y[i]);
        if (code != 0)
            mp_test_fail("%s %d returned %d (15: acquire gave %d, 16: release "
                         "gave %d)\n", kind_name(proc), i, code, b->rc[i],
                         b->rc2[i]);
    }
    if (b->max > N)
        mp_test_fail("%d holders at once of a Semaphore(%d)\n", b->max, N);
    mp_assert_int(b->total, PARTIES * ITERS);
    mp_assert_int(b->cur, 0);
    mp_assert_int(mp_sem_value(s), N);
    print_message("most holders at once: %d of %d\n", b->max, N);
    mp_sem_free(s);
    mp__arena_free(b);
}

static void sem_holders_threads(void **state) { sem_holders(0, 0); }
static void sem_holders_processes(void **state) { sem_holders(1, 0); }
static void bsem_holders_processes(void **state) { sem_holders(1, 1); }

/* BoundedSemaphore: releasing above the initial value is -EOVERFLOW and
 * releases nothing; bad initial values. */
static void bsem_overflow(void **state)
{
    mp_sem_t *s = NULL;
    mp_assert_int(mp_sem_new(&s, 0, 1), -EINVAL);
    mp_assert_int(mp_sem_new(&s, -1, 1), -EINVAL);
    mp_assert_int(mp_sem_new(&s, MP_SEM_BOUNDED_MAX + 1, 1), -EINVAL);
    s = sem_new(MP_SEM_BOUNDED_MAX, 1);
    mp_assert_int(mp_sem_value(s), MP_SEM_BOUNDED_MAX);
    mp_assert_int(mp_sem_release(s, 1), -EOVERFLOW);
    mp_sem_free(s);

    s = sem_new(2, 1);
    mp_assert_int(mp_sem_value(s), 2);
    mp_assert_int(mp_sem_release(s, 1), -EOVERFLOW);
    mp_assert_int(mp_sem_value(s), 2);
    mp_assert_int(mp_sem_acquire(s, 0), 0);
    mp_assert_int(mp_sem_value(s), 1);
    mp_assert_int(mp_sem_release(s, 2), -EOVERFLOW);
    mp_assert_int(mp_sem_value(s), 1);
    mp_assert_int(mp_sem_release(s, 1), 0);
    mp_assert_int(mp_sem_value(s), 2);
    mp_assert_int(mp_sem_release(s, 1), -EOVERFLOW);
    mp_assert_int(mp_sem_acquire(s, 0), 0);
    mp_assert_int(mp_sem_acquire(s, 0), 0);
    mp_assert_int(mp_sem_acquire(s, 0), -ETIMEDOUT);
    double t0 = mp_test_now();
    mp_assert_int(mp_sem_acquire(s, 0.3), -ETIMEDOUT);
    mp_test_check_timed(mp_test_now() - t0, 0.3, "BoundedSemaphore acquire(0.3) at 0");
    mp_assert_int(mp_sem_release(s, 2), 0);
    mp_assert_int(mp_sem_value(s), 2);
    mp_sem_free(s);
}

/* A BoundedSemaphore may be released by another thread than the one that
 * took the slot (as in Python); the slot is then free, and the taker's end
 * must not give it back a second time: never more than N holders. */
static void bsem_release_by_other(void **state)
{
    board_t *b = board_new();
    mp_sem_t *s = sem_new(2, 1);
    targ_t a = {.b = b, .sem = s, .kind = OBJ_SEM, .id = 0, .n = 1,
                .mode = HOLD_RETURN};
    static mp_party_t y;
    mp_party_start(&y, 0, t_hold_then_return, &a, sizeof a);
    mp_test_wait_word(&b->held, 1, "holder");
    mp_assert_int(b->rc[0], 0);
    mp_assert_int(mp_sem_value(s), 1);
    mp_assert_int(mp_sem_release(s, 1), 0); /* the holder's slot, from here */
    mp_assert_int(mp_sem_value(s), 2);
    mp_assert_int(mp_sem_acquire(s, 0), 0);
    mp_assert_int(mp_sem_acquire(s, 0), 0);
    mp_test_word_store(&b->go, 1); /* the taker ends */
    mp_assert_int(mp_party_join(&y), 0);
    /* We hold both slots; nothing may be recovered from the ended taker. */
    mp_assert_int(mp_sem_acquire(s, 0), -ETIMEDOUT);
    mp_assert_int(mp_sem_acquire(s, 0.2), -ETIMEDOUT);
    mp_assert_int(mp_sem_value(s), 0);
    mp_assert_int(mp_sem_release(s, 2), 0);
    mp_assert_int(mp_sem_value(s), 2);
    mp_sem_free(s);
    mp__arena_free(b);
}

/* A holder dies holding a slot of a BoundedSemaphore(2) (a process
 * SIGKILLed, or a thread that returns): the slot comes back, another party
 * takes both slots. A plain Semaphore does not track holders: its slot
 * stays taken. */
static void bsem_dead_holder(int how)
{
    board_t *b = board_new();
    for (int bounded = 1; bounded >= 0; bounded--) {
        memset(b, 0, sizeof *b);
        mp_sem_t *s = sem_new(2, bounded);
        targ_t a = {.b = b, .sem = s, .kind = OBJ_SEM, .id = 0, .n = 1,
                    .mode = how == DIE_KILL ? HOLD_FOREVER : HOLD_RETURN};
        static mp_party_t h, y;
        mp_party_start(&h, how != DIE_THREAD, t_hold, &a, sizeof a);
        mp_test_wait_word(&b->held, 1, "holder");
        mp_assert_int(b->rc[0], 0);
        if (how == DIE_KILL)
            mp_party_kill(&h);
        else
            mp_assert_int(mp_party_join(&h), 0);
        if (!bounded) {
            mp_assert_int(mp_sem_value(s), 1);
            mp_assert_int(mp_sem_acquire(s, 0), 0);
            mp_assert_int(mp_sem_acquire(s, 0.2), -ETIMEDOUT);
            mp_assert_int(mp_sem_release(s, 2), 0);
            mp_sem_free(s);
            break;
        }
        /* Another process takes both slots within a generous timeout. */
        targ_t ya = {.b = b, .sem = s, .kind = OBJ_SEM, .id = 1,
                     .timeout = MP_TEST_LONG};
        mp_party_start(&y, 1, t_sem_two, &ya, sizeof ya);
        mp_assert_int(mp_party_join(&y), 0);
        mp_assert_int(b->rc2[1], 0);
        if (b->rc[1] != 0)
            mp_test_fail("the dead holder's slot was not recovered: second "
                         "acquire gave %d (%s) after %.2f s\n", b->rc[1],
                         mp_strerror(b->rc[1]), b->el[1]);
        mp_assert_int(mp_sem_value(s), 2);
        mp_assert_int(mp_sem_release(s, 1), -EOVERFLOW);
        mp_assert_int(mp_sem_acquire(s, 0), 0);
        mp_assert_int(mp_sem_acquire(s, 0), 0);
        mp_assert_int(mp_sem_acquire(s, 0), -ETIMEDOUT);
        mp_assert_int(mp_sem_release(s, 2), 0);
        mp_sem_free(s);
    }
    mp__arena_free(b);
}

static void bsem_holder_killed(void **state) { bsem_dead_holder(DIE_KILL); }
static void bsem_holder_exited(void **state) { bsem_dead_holder(DIE_EXIT); }
static void bsem_holder_thread_ended(void **state) { bsem_dead_holder(DIE_THREAD); }

/* The holder is killed while another process already waits for its slot:
 * the waiter gets it within a generous timeout. */
static void bsem_holder_killed_waiter(void **state)
{
    board_t *b = board_new();
    mp_sem_t *s = sem_new(2, 1);
    targ_t a = {.b = b, .sem = s, .kind = OBJ_SEM, .id = 0, .n = 1,
                .mode = HOLD_FOREVER};
    static mp_party_t h, y;
    mp_party_start(&h, 1, t_hold, &a, sizeof a);
    mp_test_wait_word(&b->held, 1, "holder");
    mp_assert_int(b->rc[0], 0);
    targ_t ya = {.b = b, .sem = s, .kind = OBJ_SEM, .id = 1,
                 .timeout = MP_TEST_LONG};
    mp_party_start(&y, 1, t_sem_two, &ya, sizeof ya);
    mp_test_wait_word(&b->held, 2, "the waiter's first slot");
    mp_assert_int(b->rc2[1], 0);
    mp_test_wait_asleep(b->tid[1], "the waiter in its second acquire");
    mp_assert_int(mp_test_word_get(&b->done), 0);
    mp_party_kill(&h);
    mp_assert_int(mp_party_join(&y), 0);
    if (b->rc[1] != 0)
        mp_test_fail("the waiter did not get the dead holder's slot: %d (%s) "
                     "after %.2f s\n", b->rc[1], mp_strerror(b->rc[1]), b->el[1]);
    print_message("slot recovered %.3f s after the kill\n", b->el[1]);
    mp_assert_int(mp_sem_value(s), 2);
    mp_sem_free(s);
    mp__arena_free(b);
}

/* The holder process is SIGKILLed but not reaped yet (a zombie: its parent,
 * this process, has not joined it): its slot still comes back, so that
 * the parent can take both slots before joining. */
static void bsem_holder_zombie(void **state)
{
    board_t *b = board_new();
    mp_sem_t *s = sem_new(2, 1);
    targ_t a = {.b = b, .sem = s, .kind = OBJ_SEM, .id = 0, .n = 1,
                .mode = HOLD_FOREVER};
    static mp_party_t h;
    mp_party_start(&h, 1, t_hold, &a, sizeof a);
    mp_test_wait_word(&b->held, 1, "holder");
    mp_assert_int(b->rc[0], 0);
    kill_unreaped(&h);
    double t0 = mp_test_now();
    int r1 = mp_sem_acquire(s, 10.0 * mp_test_scale());
    int r2 = r1 == 0 ? mp_sem_acquire(s, 10.0 * mp_test_scale()) : r1;
    double el = mp_test_now() - t0;
    mp_assert_int(mp_party_join(&h), -SIGKILL);
    if (r1 != 0 || r2 != 0)
        mp_test_fail("a killed, unreaped holder's slot was not recovered: "
                     "acquires gave %d, %d after %.1f s\n", r1, r2, el);
    mp_assert_int(mp_sem_release(s, 2), 0);
    mp_sem_free(s);
    mp__arena_free(b);
}

/* ---- Condition ---------------------------------------------------------- */

static int pred_flag(void *arg)
{
    board_t *b = arg;
    __atomic_add_fetch(&b->cnt[15], 1, __ATOMIC_SEQ_CST);
    return (int)mp_test_word_get(&b->flag);
}

/* Calls that need the lock return -EPERM without it; both a Lock and an
 * RLock given is -EINVAL; over a Lock the Condition is not reentrant, over
 * its own RLock it is. */
static void cond_basic(void **state)
{
    board_t *b = board_new();
    mp_lock_t *l = lock_new();
    mp_rlock_t *r = rlock_new();
    mp_cond_t *c = NULL;
    mp_assert_int(mp_cond_new(&c, l, r), -EINVAL);
    mp_assert_int(mp_cond_new(NULL, l, NULL), -EINVAL);

    c = cond_new(l, NULL);
    mp_assert_int(mp_cond_wait(c, 0), -EPERM);
    mp_assert_int(mp_cond_wait(c, 1.0), -EPERM);
    mp_assert_int(mp_cond_wait_for(c, pred_flag, b, 1.0), -EPERM);
    mp_assert_int(mp_cond_notify(c, 1), -EPERM);
    mp_assert_int(mp_cond_notify_all(c), -EPERM);
    mp_assert_int(mp_cond_release(c), -EPERM);
    mp_assert_int(mp_cond_acquire(c, 0), 0);
    mp_assert_int(mp_lock_locked(l), 1);
    mp_assert_int(mp_cond_acquire(c, 0.2), -EDEADLK);
    mp_assert_int(mp_cond_notify(c, 1), 0); /* nobody waits: nothing happens */
    mp_assert_int(mp_cond_notify(c, 5), 0);
    mp_assert_int(mp_cond_notify_all(c), 0);
    /* A notify is not remembered: a later wait times out. */
    double t0 = mp_test_now();
    mp_assert_int(mp_cond_wait(c, 0.3), -ETIMEDOUT);
    mp_test_check_timed(mp_test_now() - t0, 0.3, "Condition wait(0.3)");
    mp_assert_int(mp_lock_locked(l), 1); /* we hold it again */
    t0 = mp_test_now();
    mp_assert_int(mp_cond_wait(c, 0), -ETIMEDOUT);
    mp_test_check_quick(mp_test_now() - t0, "Condition wait(0)");
    mp_assert_int(mp_lock_release(l), 0); /* the lock itself, released */
    mp_assert_int(mp_cond_release(c), -EPERM);
    mp_assert_int(mp_cond_acquire(c, MP_FOREVER), 0);
    mp_assert_int(mp_cond_release(c), 0);
    mp_cond_free(c);

    /* Over the given RLock, and over its own. */
    c = cond_new(NULL, r);
    mp_assert_int(mp_cond_acquire(c, 0), 0);
    mp_assert_int(mp_rlock_count(r), 1);
    mp_assert_int(mp_cond_acquire(c, 0), 0);
    mp_assert_int(mp_rlock_count(r), 2);
    mp_assert_int(mp_cond_wait(c, 0.05), -ETIMEDOUT);
    mp_assert_int(mp_rlock_count(r), 2);
    mp_assert_int(mp_cond_release(c), 0);
    mp_assert_int(mp_cond_release(c), 0);
    mp_assert_int(mp_rlock_count(r), 0);
    mp_assert_int(mp_cond_release(c), -EPERM);
    mp_cond_free(c);
    c = cond_new(NULL, NULL);
    mp_assert_int(mp_cond_notify(c, 1), -EPERM);
    mp_assert_int(mp_cond_acquire(c, 0), 0);
    mp_assert_int(mp_cond_acquire(c, 0), 0);
    mp_assert_int(mp_cond_wait(c, 0.05), -ETIMEDOUT);
    mp_assert_int(mp_cond_release(c), 0);
    mp_assert_int(mp_cond_release(c), 0);
    mp_assert_int(mp_cond_release(c), -EPERM);
    mp_cond_free(c);
    /* The user's locks outlive their Conditions. */
    mp_assert_int(mp_lock_acquire(l, 0), 0);
    mp_assert_int(mp_lock_release(l), 0);
    mp_assert_int(mp_rlock_acquire(r, 0), 0);
    mp_assert_int(mp_rlock_release(r), 0);
    mp_lock_free(l);
    mp_rlock_free(r);
    mp__arena_free(b);
}

/* start_waiters starts k parties in t_cond_wait and returns once all of
 * them are inside wait (they count themselves under the lock, and we took
 * the lock after the last count). Returns holding the lock. */
static void start_waiters(mp_party_t *y, int k, int proc, const targ_t *a)
{
    board_t *b = a->b;
    for (int i = 0; i < k; i++) {
        targ_t wa = *a;
        wa.id = i;
        mp_party_start(&y[i], proc, t_cond_wait, &wa, sizeof wa);
    }
    mp_test_wait_word(&b->waiting, (uint32_t)k, "waiters");
    mp_assert_int(mp_cond_acquire(a->cond, MP_TEST_LONG), 0);
}

/* notify(1) wakes one waiter, notify(2) two more; notify_all the rest. */
static void cond_notify(int proc)
{
    enum { K = 5 };
    board_t *b = board_new();
    mp_lock_t *l = lock_new();
    mp_cond_t *c = cond_new(l, NULL);
    static mp_party_t y[K];
    targ_t a = {.b = b, .lock = NULL, .cond = c, .n = 1,
                .timeout = MP_TEST_LONG};
    start_waiters(y, K, proc, &a);
    double t_first = mp_test_now();
    mp_assert_int(mp_cond_notify(c, 1), 0);
    mp_assert_int(mp_cond_release(c), 0);
    mp_test_wait_word(&b->woken, 1, "waiters woken by notify(1)");
    mp_test_sleep(0.2); /* a window for a wrongly woken second waiter */
    if (mp_test_word_get(&b->woken) != 1)
        mp_test_fail("notify(1) woke %u waiters (notified while some waiters "
                     "may not sleep yet)\n", mp_test_word_get(&b->woken));

    mp_assert_int(mp_cond_acquire(c, MP_TEST_LONG), 0);
    mp_assert_int(mp_cond_notify(c, 2), 0);
    mp_assert_int(mp_cond_release(c), 0);
    mp_test_wait_word(&b->woken, 3, "waiters woken by notify(2)");
    mp_test_sleep(0.2);
    if (mp_test_word_get(&b->woken) != 3)
        mp_test_fail("notify(1) then notify(2) woke %u waiters\n",
                     mp_test_word_get(&b->woken));

    mp_assert_int(mp_cond_acquire(c, MP_TEST_LONG), 0);
    double t_all = mp_test_now();
    mp_assert_int(mp_cond_notify_all(c), 0);
    mp_assert_int(mp_cond_release(c), 0);
    mp_test_wait_word(&b->woken, K, "waiters woken by notify_all");
    for (int i = 0; i < K; i++) {
        int code = mp_party_join(&y[i]);
        if (code != 0)
            mp_test_fail("waiter %d returned %d (rc %d, rc2 %d)\n", i, code,
                         b->rc[i], b->rc2[i]);
        mp_assert_int(b->rc[i], 0);
        mp_test_check_prompt(b->at[i], b->at[i] < t_all ? t_first : t_all,
                     "a Condition waiter");
    }
    mp_assert_int(mp_lock_locked(l), 0);
    mp_cond_free(c);
    mp_lock_free(l);
    mp__arena_free(b);
}

static void cond_notify_threads(void **state) { cond_notify(0); }
static void cond_notify_processes(void **state) { cond_notify(1); }

/* notify_all wakes every waiter at once (threads and processes mixed). */
static void cond_notify_all_mixed(void **state)
{
    enum { K = 6 };
    board_t *b = board_new();
    mp_cond_t *c = cond_new(NULL, NULL);
    static mp_party_t y[K];
    for (int i = 0; i < K; i++) {
        targ_t wa = {.b = b, .cond = c, .id = i, .n = 1,
                     .timeout = MP_TEST_LONG};
        mp_party_start(&y[i], i & 1, t_cond_wait, &wa, sizeof wa);
    }
    mp_test_wait_word(&b->waiting, K, "waiters");
    mp_assert_int(mp_cond_acquire(c, MP_TEST_LONG), 0);
    double t_rel = mp_test_now();
    mp_assert_int(mp_cond_notify_all(c), 0);
    mp_assert_int(mp_cond_release(c), 0);
    mp_test_wait_word(&b->woken, K, "waiters woken by notify_all");
    for (int i = 0; i < K; i++) {
        mp_assert_int(mp_party_join(&y[i]), 0);
        mp_assert_int(b->rc[i], 0);
        mp_test_check_prompt(b->at[i], t_rel, "a Condition waiter");
    }
    mp_cond_free(c);
    mp__arena_free(b);
}

/* A waiter returns 0 only when notified (Python's Condition never wakes
 * spuriously): after notify(1) woke one of two sleeping waiters, a signal
 * that interrupts the other one's sleep must not make it return. */
static void cond_no_spurious_wakeup(int proc)
{
    enum { K = 2, UNSET = 12345 };
    board_t *b = board_new();
    mp_lock_t *l = lock_new();
    mp_cond_t *c = cond_new(l, NULL);
    static mp_party_t y[K];
    catch_sigusr1();
    for (int i = 0; i < K; i++)
        b->rc[i] = UNSET;
    for (int i = 0; i < K; i++) {
        targ_t wa = {.b = b, .cond = c, .id = i, .n = 1,
                     .timeout = MP_TEST_LONG, .mode = 1};
        mp_party_start(&y[i], proc, t_cond_wait, &wa, sizeof wa);
    }
    mp_test_wait_word(&b->waiting, K, "waiters");
    for (int i = 0; i < K; i++)
        mp_test_wait_asleep(b->tid[i], "a waiter in Condition wait");
    mp_assert_int(mp_cond_acquire(c, MP_TEST_LONG), 0);
    mp_assert_int(mp_cond_notify(c, 1), 0);
    mp_assert_int(mp_cond_release(c), 0);
    mp_test_wait_word(&b->woken, 1, "the waiter woken by notify(1)");
    int other = -1;
    for (int i = 0; i < K; i++)
        if (__atomic_load_n(&b->rc[i], __ATOMIC_SEQ_CST) == UNSET)
            other = i;
    if (other < 0 || mp_test_word_get(&b->woken) != 1)
        mp_test_fail("notify(1) woke %u waiters\n", mp_test_word_get(&b->woken));
    mp_test_wait_asleep(b->tid[other], "the waiter left");
    mp_assert_int((int)syscall(SYS_tgkill, b->pid[other], b->tid[other], SIGUSR1),
                  0);
    mp_test_sleep(0.3); /* a window for the interrupted waiter to return wrongly */
    if (mp_test_word_get(&b->woken) != 1)
        mp_test_fail("a signal made a waiter return from wait without a "
                     "notify (code %d)\n", b->rc[other]);
    mp_assert_int(mp_cond_acquire(c, MP_TEST_LONG), 0);
    mp_assert_int(mp_cond_notify(c, 1), 0);
    mp_assert_int(mp_cond_release(c), 0);
    mp_test_wait_word(&b->woken, K, "the waiter woken by the second notify(1)");
    for (int i = 0; i < K; i++) {
        mp_assert_int(mp_party_join(&y[i]), 0);
        mp_assert_int(b->rc[i], 0);
    }
    mp_cond_free(c);
    mp_lock_free(l);
    mp__arena_free(b);
}

static void cond_no_spurious_wakeup_threads(void **state) { cond_no_spurious_wakeup(0); }
static void cond_no_spurious_wakeup_processes(void **state) { cond_no_spurious_wakeup(1); }

/* wait's timeout: -ETIMEDOUT after it, holding the lock again. */
static void cond_wait_timeout(int proc)
{
    board_t *b = board_new();
    mp_lock_t *l = lock_new();
    mp_cond_t *c = cond_new(l, NULL);
    static mp_party_t y;
    targ_t a = {.b = b, .cond = c, .id = 0, .n = 1, .timeout = 0.4};
    mp_party_start(&y, proc, t_cond_wait, &a, sizeof a);
    mp_assert_int(mp_party_join(&y), 0);
    mp_assert_int(b->rc[0], -ETIMEDOUT);
    mp_test_check_timed(b->el[0], 0.4, "Condition wait(0.4)");
    mp_assert_int(mp_lock_locked(l), 0);
    mp_cond_free(c);
    mp_lock_free(l);
    mp__arena_free(b);
}

static void cond_wait_timeout_threads(void **state) { cond_wait_timeout(0); }
static void cond_wait_timeout_processes(void **state) { cond_wait_timeout(1); }

typedef struct {
    board_t *b;
    mp_cond_t *c;
} setter_t;

/* thr_setter: takes the lock (so only once the main thread waits), wakes it
 * with the predicate still false, then sets it and wakes it again. */
static void *thr_setter(void *arg)
{
    setter_t *s = arg;
    if (mp_cond_acquire(s->c, CHILD_LONG) != 0)
        return NULL;
    mp_cond_notify_all(s->c);
    mp_cond_release(s->c);
    if (mp_cond_acquire(s->c, CHILD_LONG) != 0)
        return NULL;
    mp_test_word_store(&s->b->flag, 1);
    mp_cond_notify_all(s->c);
    mp_cond_release(s->c);
    return NULL;
}

/* wait_for: a true predicate returns 1 at once (even with timeout 0); a
 * false one 0 after the timeout, holding the lock; one made true by another
 * thread (after a notify that leaves it false) returns 1. */
static void cond_wait_for(void **state)
{
    board_t *b = board_new();
    mp_lock_t *l = lock_new();
    mp_cond_t *c = cond_new(l, NULL);
    mp_assert_int(mp_cond_acquire(c, 0), 0);
    mp_test_word_store(&b->flag, 1);
    double t0 = mp_test_now();
    mp_assert_int(mp_cond_wait_for(c, pred_flag, b, 0), 1);
    mp_assert_int(mp_cond_wait_for(c, pred_flag, b, MP_FOREVER), 1);
    mp_test_check_quick(mp_test_now() - t0, "wait_for with a true predicate");
    mp_assert_int(mp_lock_locked(l), 1);

    mp_test_word_store(&b->flag, 0);
    t0 = mp_test_now();
    mp_assert_int(mp_cond_wait_for(c, pred_flag, b, 0), 0);
    mp_test_check_quick(mp_test_now() - t0, "wait_for(0) with a false predicate");
    t0 = mp_test_now();
    mp_assert_int(mp_cond_wait_for(c, pred_flag, b, 0.4), 0);
    mp_test_check_timed(mp_test_now() - t0, 0.4, "wait_for(0.4) with a false predicate");
    mp_assert_int(mp_lock_locked(l), 1);
    mp_assert_int(mp_cond_release(c), 0);
    mp_assert_int(mp_cond_release(c), -EPERM);

    /* Made true by another thread while we wait. */
    mp_assert_int(mp_cond_acquire(c, 0), 0);
    setter_t s = {b, c};
    pthread_t th;
    mp_assert_int(pthread_create(&th, NULL, thr_setter, &s), 0);
    b->cnt[15] = 0;
    t0 = mp_test_now();
    int rc = mp_cond_wait_for(c, pred_flag, b, MP_TEST_LONG);
    double el = mp_test_now() - t0;
    mp_assert_int(mp_lock_locked(l), 1);
    mp_assert_int(mp_cond_release(c), 0);
    mp_assert_int(pthread_join(th, NULL), 0);
    mp_assert_int(rc, 1);
    if (el > MP_TEST_LONG - 1.0)
        mp_test_fail("wait_for returned only at its timeout\n");
    if (b->cnt[15] < 2)
        mp_test_fail("the predicate was checked %d times\n", b->cnt[15]);
    mp_cond_free(c);
    mp_lock_free(l);
    mp__arena_free(b);
}

/* Over an RLock held twice: wait releases it fully (another thread takes
 * it meanwhile) and gives back the count 2. */
static void cond_rlock(int proc)
{
    board_t *b = board_new();
    mp_rlock_t *r = rlock_new();
    mp_cond_t *c = cond_new(NULL, r);
    static mp_party_t y;
    targ_t a = {.b = b, .cond = c, .rlock = r, .id = 0, .n = 2,
                .timeout = MP_TEST_LONG};
    mp_party_start(&y, proc, t_cond_wait, &a, sizeof a);
    mp_test_wait_word(&b->waiting, 1, "the waiter");
    double t0 = mp_test_now();
    int rc = mp_rlock_acquire(r, MP_TEST_LONG);
    mp_assert_int(rc, 0);
    mp_test_check_quick(mp_test_now() - t0, "taking the RLock of a waiting Condition");
    mp_assert_int(mp_rlock_count(r), 1);
    mp_assert_int(mp_cond_notify(c, 1), 0);
    mp_assert_int(mp_rlock_release(r), 0);
    mp_assert_int(mp_party_join(&y), 0);
    mp_assert_int(b->rc[0], 0);
    mp_assert_int(b->cnt[0], 2);     /* the count after wait */
    mp_assert_int(b->rc2[0], -EPERM); /* a third release */
    mp_assert_int(mp_rlock_acquire(r, 0), 0);
    mp_assert_int(mp_rlock_release(r), 0);
    mp_cond_free(c);
    mp_rlock_free(r);
    mp__arena_free(b);
}

static void cond_rlock_threads(void **state) { cond_rlock(0); }
static void cond_rlock_processes(void **state) { cond_rlock(1); }

/* Producer/consumer between processes: two Conditions over one Lock (not
 * empty, not full) and a bounded count of items; 2 consumer processes and
 * this process producing 3,000 items with notify(1): every item is taken
 * exactly once, nobody waits for its timeout (a lost wake-up would). */
static void cond_producer_consumer(int proc)
{
    enum { TOTAL = 3000, CAP = 4, NC = 2 };
    board_t *b = board_new();
    mp_lock_t *l = lock_new();
    mp_cond_t *not_empty = cond_new(l, NULL), *not_full = cond_new(l, NULL);
    static mp_party_t y[NC];
    for (int i = 0; i < NC; i++) {
        targ_t a = {.b = b, .cond = not_empty, .cond2 = not_full, .id = i};
        mp_party_start(&y[i], proc, t_consumer, &a, sizeof a);
    }
    for (int i = 0; i < TOTAL; i++) {
        mp_assert_int(mp_cond_acquire(not_full, MP_TEST_LONG), 0);
        while (b->items >= CAP) {
            int rc = mp_cond_wait(not_full, MP_TEST_LONG);
            if (rc != 0) {
                mp_lock_release(l);
                mp_test_fail("producer: wait gave %d (%s) at item %d\n", rc,
                             mp_strerror(rc), i);
            }
        }
        b->items++;
        b->produced++;
        mp_assert_int(mp_cond_notify(not_empty, 1), 0);
        mp_assert_int(mp_cond_release(not_full), 0);
    }
    mp_assert_int(mp_cond_acquire(not_empty, MP_TEST_LONG), 0);
    b->finished = 1;
    mp_assert_int(mp_cond_notify_all(not_empty), 0);
    mp_assert_int(mp_cond_release(not_empty), 0);
    int sum = 0;
    for (int i = 0; i < NC; i++) {
        int code = mp_party_join(&y[i]);
        if (code != 0)
            mp_test_fail("consumer %d returned %d (26: wait gave %d)\n", i,
                         code, b->rc[i]);
        sum += b->cnt[i];
    }
    mp_assert_int(sum, TOTAL);
    mp_assert_int(b->items, 0);
    print_message("consumers took %d and %d items\n", b->cnt[0], b->cnt[1]);
    mp_cond_free(not_empty);
    mp_cond_free(not_full);
    mp_lock_free(l);
    mp__arena_free(b);
}

static void cond_producer_consumer_threads(void **state) { cond_producer_consumer(0); }
static void cond_producer_consumer_processes(void **state) { cond_producer_consumer(1); }

/* A waiter process is SIGKILLed while it waits (the oldest waiter); then a
 * live thread waits: notify(1) must reach the live waiter, not be lost on
 * the dead one. */
static void cond_dead_waiter(int reap)
{
    board_t *b = board_new();
    mp_lock_t *l = lock_new();
    mp_cond_t *c = cond_new(l, NULL);
    static mp_party_t dead, live;
    targ_t da = {.b = b, .cond = c, .id = 0, .n = 1, .timeout = MP_FOREVER};
    mp_party_start(&dead, 1, t_cond_wait, &da, sizeof da);
    mp_test_wait_word(&b->waiting, 1, "the doomed waiter");
    mp_test_wait_asleep(b->tid[0], "the doomed waiter in wait");
    if (reap)
        mp_party_kill(&dead);
    else
        kill_unreaped(&dead);
    b->rc[1] = 12345;
    targ_t la = {.b = b, .cond = c, .id = 1, .n = 1, .timeout = MP_TEST_LONG};
    mp_party_start(&live, 0, t_cond_wait, &la, sizeof la);
    mp_test_wait_word(&b->waiting, 2, "the live waiter");
    mp_assert_int(mp_cond_acquire(c, MP_TEST_LONG), 0); /* it waits now */
    double t_rel = mp_test_now();
    mp_assert_int(mp_cond_notify(c, 1), 0);
    mp_assert_int(mp_cond_release(c), 0);
    mp_assert_int(mp_party_join(&live), 0);
    if (b->rc[1] != 0)
        mp_test_fail("notify(1) did not reach the live waiter (it got %d, %s): "
                     "lost on the dead one\n", b->rc[1], mp_strerror(b->rc[1]));
    mp_test_check_prompt(b->at[1], t_rel, "the live waiter");
    if (!reap)
        mp_assert_int(mp_party_join(&dead), -SIGKILL);
    mp_assert_int(mp_lock_locked(l), 0);
    mp_cond_free(c);
    mp_lock_free(l);
    mp__arena_free(b);
}

static void cond_dead_waiter_reaped(void **state) { cond_dead_waiter(1); }
static void cond_dead_waiter_zombie(void **state) { cond_dead_waiter(0); }

/* t_cond_notify_die: once the waiter waits, take the Condition's lock,
 * notify, report and block holding it (the test kills us). */
static int t_cond_notify_die(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    if (mp_test_word_wait(&b->waiting, 1, CHILD_LONG) != 0)
        return 50;
    int rc = mp_cond_acquire(a->cond, CHILD_LONG);
    if (rc != 0) {
        b->rc[a->id] = rc;
        return 51;
    }
    rc = mp_cond_notify(a->cond, 1);
    b->rc[a->id] = rc;
    mp_test_word_inc(&b->held);
    block_forever(b);
    return 0;
}

/* The lock's holder dies while a waiter waits: the waiter wakes (notified)
 * and takes the lock back with -EOWNERDEAD; the Condition goes on working. */
static void cond_wait_owner_died(void **state)
{
    board_t *b = board_new();
    mp_lock_t *l = lock_new();
    mp_cond_t *c = cond_new(l, NULL);
    static mp_party_t w, k;
    targ_t wa = {.b = b, .cond = c, .id = 0, .n = 1, .timeout = MP_TEST_LONG};
    mp_party_start(&w, 0, t_cond_wait, &wa, sizeof wa);
    targ_t ka = {.b = b, .cond = c, .id = 1};
    mp_party_start(&k, 1, t_cond_notify_die, &ka, sizeof ka);
    mp_test_wait_word(&b->held, 1, "the notifier");
    mp_assert_int(b->rc[1], 0);
    mp_party_kill(&k);
    mp_test_wait_word(&b->woken, 1, "the waiter");
    mp_assert_int(b->rc[0], -EOWNERDEAD);
    mp_assert_int(mp_party_join(&w), 0);
    mp_assert_int(b->rc2[0], 0);
    mp_assert_int(mp_lock_locked(l), 0);
    mp_assert_int(mp_cond_acquire(c, 0), 0);
    mp_assert_int(mp_cond_wait(c, 0.05), -ETIMEDOUT);
    mp_assert_int(mp_cond_release(c), 0);
    mp_cond_free(c);
    mp_lock_free(l);
    mp__arena_free(b);
}

/* ---- Event -------------------------------------------------------------- */

static void event_basic(void **state)
{
    mp_event_t *e = event_new();
    mp_assert_int(mp_event_is_set(e), 0);
    double t0 = mp_test_now();
    mp_assert_int(mp_event_wait(e, 0), -ETIMEDOUT);
    mp_test_check_quick(mp_test_now() - t0, "Event wait(0) when clear");
    t0 = mp_test_now();
    mp_assert_int(mp_event_wait(e, 0.3), -ETIMEDOUT);
    mp_test_check_timed(mp_test_now() - t0, 0.3, "Event wait(0.3) when clear");
    mp_assert_int(mp_event_set(e), 0);
    mp_assert_int(mp_event_is_set(e), 1);
    mp_assert_int(mp_event_set(e), 0);
    mp_assert_int(mp_event_is_set(e), 1);
    t0 = mp_test_now();
    mp_assert_int(mp_event_wait(e, 0), 0);
    mp_assert_int(mp_event_wait(e, 5.0), 0);
    mp_assert_int(mp_event_wait(e, MP_FOREVER), 0);
    mp_test_check_quick(mp_test_now() - t0, "Event wait when set");
    mp_assert_int(mp_event_is_set(e), 1); /* waiting does not clear */
    mp_assert_int(mp_event_clear(e), 0);
    mp_assert_int(mp_event_is_set(e), 0);
    mp_assert_int(mp_event_clear(e), 0);
    t0 = mp_test_now();
    mp_assert_int(mp_event_wait(e, 0.2), -ETIMEDOUT);
    mp_test_check_timed(mp_test_now() - t0, 0.2, "Event wait(0.2) after clear");
    mp_event_free(e);
}

/* set wakes every waiter, in threads and in several processes; none of
 * them returns before the set; after clear, waiters time out again. */
static void event_wakes(int proc)
{
    enum { K = 4 };
    board_t *b = board_new();
    mp_event_t *e = event_new();
    static mp_party_t y[K];
    for (int i = 0; i < K; i++) {
        targ_t a = {.b = b, .ev = e, .id = i, .timeout = MP_TEST_LONG};
        mp_party_start(&y[i], proc, t_event_wait, &a, sizeof a);
    }
    mp_test_wait_word(&b->ready, K, "waiters");
    for (int i = 0; i < K; i++)
        mp_test_wait_asleep(b->tid[i], "a waiter in Event wait");
    mp_test_word_store(&b->flag, 1);
    double t_rel = mp_test_now();
    mp_assert_int(mp_event_set(e), 0);
    for (int i = 0; i < K; i++) {
        int code = mp_party_join(&y[i]);
        if (code != 0)
            mp_test_fail("waiter %d returned %d (40: wait gave %d, 41: "
                         "returned before the set)\n", i, code, b->rc[i]);
        mp_test_check_prompt(b->at[i], t_rel, "an Event waiter");
    }
    mp_assert_int(mp_event_clear(e), 0);
    memset(b->rc, 0, sizeof b->rc);
    for (int i = 0; i < 2; i++) {
        targ_t a = {.b = b, .ev = e, .id = i, .timeout = 0.3};
        mp_party_start(&y[i], proc, t_event_wait, &a, sizeof a);
    }
    for (int i = 0; i < 2; i++) {
        mp_assert_int(mp_party_join(&y[i]), 40);
        mp_assert_int(b->rc[i], -ETIMEDOUT);
        mp_test_check_timed(b->el[i], 0.3, "Event wait(0.3) after clear");
    }
    mp_event_free(e);
    mp__arena_free(b);
}

static void event_wakes_threads(void **state) { event_wakes(0); }
static void event_wakes_processes(void **state) { event_wakes(1); }

/* Set and clear many times while a process waits each time: no wake-up is
 * lost (each round's wait returns 0 well before its timeout). */
static int t_event_rounds(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    for (int r = 0; r < a->n; r++) {
        /* Round r: wait for the event, acknowledge with done = r + 1. */
        int rc = mp_event_wait(a->ev, CHILD_LONG);
        if (rc != 0) {
            b->rc[0] = rc;
            b->cnt[0] = r;
            return 42;
        }
        mp_test_word_store(&b->done, (uint32_t)r + 1);
        /* The test clears, then moves go to r + 1 before the next set. */
        if (mp_test_word_wait(&b->go, (uint32_t)r + 1, CHILD_LONG) != 0)
            return 43;
    }
    return 0;
}

static void event_ping_pong(void **state)
{
    enum { N = 500 };
    board_t *b = board_new();
    mp_event_t *e = event_new();
    static mp_party_t y;
    targ_t a = {.b = b, .ev = e, .n = N};
    mp_party_start(&y, 1, t_event_rounds, &a, sizeof a);
    for (int r = 0; r < N; r++) {
        mp_assert_int(mp_event_set(e), 0);
        if (mp_test_word_wait(&b->done, (uint32_t)r + 1, MP_TEST_LONG) != 0)
            mp_test_fail("round %d: the waiter never woke\n", r);
        mp_assert_int(mp_event_clear(e), 0);
        mp_test_word_store(&b->go, (uint32_t)r + 1);
    }
    int code = mp_party_join(&y);
    if (code != 0)
        mp_test_fail("the waiter returned %d (wait gave %d in round %d)\n",
                     code, b->rc[0], b->cnt[0]);
    mp_event_free(e);
    mp__arena_free(b);
}

/* A pulse: set() then clear() at once. Python's Event.wait blocks "until
 * another thread calls set()": every party asleep in wait at the set
 * returns 0, even though the flag is clear again when it runs. */
static void event_pulse(int proc)
{
    enum { K = 3 };
    board_t *b = board_new();
    mp_event_t *e = event_new();
    static mp_party_t y[K];
    for (int i = 0; i < K; i++) {
        targ_t a = {.b = b, .ev = e, .id = i, .timeout = 10.0 * mp_test_scale()};
        mp_party_start(&y[i], proc, t_event_wait, &a, sizeof a);
    }
    mp_test_wait_word(&b->ready, K, "waiters");
    for (int i = 0; i < K; i++)
        mp_test_wait_asleep(b->tid[i], "a waiter in Event wait");
    mp_test_word_store(&b->flag, 1);
    double t_rel = mp_test_now();
    mp_assert_int(mp_event_set(e), 0);
    mp_assert_int(mp_event_clear(e), 0);
    int missed = 0;
    for (int i = 0; i < K; i++) {
        int code = mp_party_join(&y[i]);
        if (code != 0 || b->at[i] - t_rel > 5.0 * mp_test_scale())
            missed++;
    }
    if (missed)
        mp_test_fail("%d of %d waiters asleep at set() did not return 0 "
                     "(set then clear at once): first code %d (%s)\n", missed,
                     K, b->rc[0], mp_strerror(b->rc[0]));
    mp_event_free(e);
    mp__arena_free(b);
}

static void event_pulse_threads(void **state) { event_pulse(0); }
static void event_pulse_processes(void **state) { event_pulse(1); }

/* ---- Barrier ------------------------------------------------------------ */

/* parties = 1: every wait returns 0 at once and runs the action. */
static void barrier_one(void **state)
{
    board_t *b = board_new();
    mp_barrier_t *bar = barrier_new(b, 1, 1, MP_FOREVER);
    mp_assert_int(mp_barrier_parties(bar), 1);
    for (int i = 0; i < 5; i++) {
        b->arrivals++;
        mp_assert_int(mp_barrier_wait(bar, MP_FOREVER), 0);
        mp_assert_int(b->action_runs, i + 1);
        mp_assert_int(mp_barrier_n_waiting(bar), 0);
    }
    b->arrivals++;
    mp_assert_int(mp_barrier_wait(bar, 0), 0);
    mp_assert_int(b->action_runs, 6);
    mp_assert_int(mp_barrier_broken(bar), 0);
    mp_assert_int(b->action_bad, 0);
    mp_barrier_free(bar);
    mp__arena_free(b);
}

/* The action's argument (a copy) is aligned for any type (as malloc's
 * memory is), so the action can use it as the struct it was made from. */
static void barrier_action_arg_aligned(void **state)
{
    board_t *b = board_new();
    b->arg_misalign = -1;
    mp_barrier_t *bar = barrier_new(b, 1, 1, MP_FOREVER);
    b->arrivals = 1;
    mp_assert_int(mp_barrier_wait(bar, MP_FOREVER), 0);
    mp_assert_int(b->action_runs, 1);
    if (b->arg_misalign != 0)
        mp_test_fail("the action's argument is at an address %d bytes past a "
                     "multiple of %d\n", b->arg_misalign,
                     (int)_Alignof(max_align_t));
    mp_barrier_free(bar);
    mp__arena_free(b);
}

/* Rounds in lockstep: the indexes of a round are 0..parties-1, each once;
 * nobody leaves before everyone arrived; with an action, it runs exactly
 * once per round, after the last arrival and before anyone leaves. */
static void barrier_rounds(int proc, int parties, int rounds, int action)
{
    board_t *b = board_new();
    mp_barrier_t *bar = barrier_new(b, parties, action, MP_FOREVER);
    mp_assert_int(mp_barrier_parties(bar), parties);
    static mp_party_t y[SLOTS];
    for (int i = 0; i < parties; i++) {
        targ_t a = {.b = b, .bar = bar, .id = i, .n = rounds,
                    .timeout = MP_TEST_LONG, .mode = action};
        mp_party_start(&y[i], proc, t_barrier, &a, sizeof a);
    }
    for (int i = 0; i < parties; i++) {
        int code = mp_party_join(&y[i]);
        if (code != 0)
            mp_test_fail("party %d returned %d in round %d (30: wait gave %d, "
                         "31: left early, arrivals %d, 32: action count %d)\n",
                         i, code, b->cnt[i], b->rc[i], b->rc[i], b->rc[i]);
    }
    uint32_t all = (1u << parties) - 1;
    for (int r = 0; r < rounds && r < ROUNDS; r++)
        if (b->mask[r] != all)
            mp_test_fail("round %d: indexes seen %#x, expected %#x\n", r,
                         b->mask[r], all);
    if (action) {
        mp_assert_int(b->action_runs, rounds);
        if (b->action_bad)
            mp_test_fail("the action of round %d ran before every party "
                         "arrived (or after one left)\n", b->action_bad);
    }
    mp_assert_int(mp_barrier_n_waiting(bar), 0);
    mp_assert_int(mp_barrier_broken(bar), 0);
    mp_barrier_free(bar);
    mp__arena_free(b);
}

static void barrier_rounds_threads(void **state) { barrier_rounds(0, 4, 200, 1); }
static void barrier_rounds_threads_no_action(void **state) { barrier_rounds(0, 3, 200, 0); }
static void barrier_lockstep_processes(void **state) { barrier_rounds(1, 5, 1000, 1); }
static void barrier_lockstep_processes_no_action(void **state) { barrier_rounds(1, 3, 300, 0); }

/* wait_n_waiting waits until n parties wait in the barrier. */
static void wait_n_waiting(mp_barrier_t *bar, int n)
{
    double end = mp_test_now() + MP_TEST_LONG;
    int v;
    while ((v = mp_barrier_n_waiting(bar)) != n) {
        if (mp_test_now() > end)
            mp_test_fail("n_waiting is %d, expected %d\n", v, n);
        mp_test_sleep(0.001);
    }
}

/* start_bar_waiters starts k parties in t_bar_once (timeout t) and waits
 * until all of them wait in the barrier. */
static void start_bar_waiters(mp_party_t *y, int k, int proc, board_t *b,
                              mp_barrier_t *bar, double t)
{
    for (int i = 0; i < k; i++) {
        targ_t a = {.b = b, .bar = bar, .id = i, .timeout = t};
        mp_party_start(&y[i], proc, t_bar_once, &a, sizeof a);
    }
    wait_n_waiting(bar, k);
}

/* one_round: with the barrier usable again, k parties and this one make a
 * full round; the indexes are distinct. */
static void one_round(int proc, board_t *b, mp_barrier_t *bar, int k)
{
    static mp_party_t y[SLOTS];
    memset(b->rc, 0, sizeof b->rc);
    start_bar_waiters(y, k, proc, b, bar, MP_TEST_LONG);
    int mine = mp_barrier_wait(bar, MP_TEST_LONG);
    unsigned seen = 0;
    if (mine >= 0)
        seen |= 1u << mine;
    for (int i = 0; i < k; i++) {
        mp_assert_int(mp_party_join(&y[i]), 0);
        if (b->rc[i] >= 0)
            seen |= 1u << b->rc[i];
    }
    mp_assert_int(mine >= 0, 1);
    mp_assert_int(seen, (1u << (k + 1)) - 1);
}

/* abort: waiters get MP_EBROKEN, so does every later wait until reset;
 * n_waiting and broken tell the state; after reset a round works. */
static void barrier_abort(int proc)
{
    board_t *b = board_new();
    mp_barrier_t *bar = barrier_new(b, 3, 0, MP_FOREVER);
    static mp_party_t y[2];
    mp_assert_int(mp_barrier_n_waiting(bar), 0);
    mp_assert_int(mp_barrier_broken(bar), 0);
    start_bar_waiters(y, 2, proc, b, bar, MP_TEST_LONG);
    mp_assert_int(mp_barrier_n_waiting(bar), 2);
    double t_rel = mp_test_now();
    mp_assert_int(mp_barrier_abort(bar), 0);
    for (int i = 0; i < 2; i++) {
        mp_assert_int(mp_party_join(&y[i]), 0);
        mp_assert_int(b->rc[i], MP_EBROKEN);
        mp_test_check_prompt(b->at[i], t_rel, "a Barrier waiter at abort");
    }
    mp_assert_int(mp_barrier_broken(bar), 1);
    double t0 = mp_test_now();
    mp_assert_int(mp_barrier_wait(bar, MP_TEST_LONG), MP_EBROKEN);
    mp_assert_int(mp_barrier_wait(bar, 0), MP_EBROKEN);
    mp_test_check_quick(mp_test_now() - t0, "wait on a broken barrier");
    mp_assert_int(mp_barrier_abort(bar), 0);
    mp_assert_int(mp_barrier_reset(bar), 0);
    mp_assert_int(mp_barrier_broken(bar), 0);
    mp_assert_int(mp_barrier_n_waiting(bar), 0);
    one_round(proc, b, bar, 2);
    one_round(proc, b, bar, 2);
    mp_barrier_free(bar);
    mp__arena_free(b);
}

static void barrier_abort_threads(void **state) { barrier_abort(0); }
static void barrier_abort_processes(void **state) { barrier_abort(1); }

/* reset while parties wait: they get MP_EBROKEN; the barrier is then
 * usable (not broken) at once. */
static void barrier_reset(int proc)
{
    board_t *b = board_new();
    mp_barrier_t *bar = barrier_new(b, 3, 0, MP_FOREVER);
    static mp_party_t y[2];
    start_bar_waiters(y, 2, proc, b, bar, MP_TEST_LONG);
    double t_rel = mp_test_now();
    mp_assert_int(mp_barrier_reset(bar), 0);
    for (int i = 0; i < 2; i++) {
        mp_assert_int(mp_party_join(&y[i]), 0);
        mp_assert_int(b->rc[i], MP_EBROKEN);
        mp_test_check_prompt(b->at[i], t_rel, "a Barrier waiter at reset");
    }
    mp_assert_int(mp_barrier_broken(bar), 0);
    mp_assert_int(mp_barrier_n_waiting(bar), 0);
    one_round(proc, b, bar, 2);
    mp_barrier_free(bar);
    mp__arena_free(b);
}

static void barrier_reset_threads(void **state) { barrier_reset(0); }
static void barrier_reset_processes(void **state) { barrier_reset(1); }

/* A failing action breaks the barrier: every waiter of that round, the one
 * that ran the action included, gets MP_EBROKEN; the action ran once. */
static void barrier_action_fails(int proc)
{
    board_t *b = board_new();
    mp_barrier_t *bar = barrier_new(b, 3, 1, MP_FOREVER);
    b->fail_round = 1;
    static mp_party_t y[3];
    for (int i = 0; i < 3; i++) {
        targ_t a = {.b = b, .bar = bar, .id = i, .timeout = MP_TEST_LONG};
        b->arrivals++;
        mp_party_start(&y[i], proc, t_bar_once, &a, sizeof a);
    }
    for (int i = 0; i < 3; i++) {
        mp_assert_int(mp_party_join(&y[i]), 0);
        if (b->rc[i] != MP_EBROKEN)
            mp_test_fail("party %d got %d (%s) from a round whose action "
                         "failed\n", i, b->rc[i], mp_strerror(b->rc[i]));
    }
    mp_assert_int(b->action_runs, 1);
    mp_assert_int(mp_barrier_broken(bar), 1);
    mp_assert_int(mp_barrier_wait(bar, 0), MP_EBROKEN);
    mp_assert_int(mp_barrier_reset(bar), 0);
    b->action_runs = 0;
    b->arrivals = 0;
    b->fail_round = 0;
    static mp_party_t z[3];
    for (int i = 0; i < 3; i++) {
        targ_t a = {.b = b, .bar = bar, .id = i, .n = 3,
                    .timeout = MP_TEST_LONG, .mode = 1};
        mp_party_start(&z[i], proc, t_barrier, &a, sizeof a);
    }
    for (int i = 0; i < 3; i++)
        mp_assert_int(mp_party_join(&z[i]), 0);
    mp_assert_int(b->action_runs, 3);
    mp_barrier_free(bar);
    mp__arena_free(b);
}

static void barrier_action_fails_threads(void **state) { barrier_action_fails(0); }
static void barrier_action_fails_processes(void **state) { barrier_action_fails(1); }

/* A wait that times out breaks the barrier for every waiter: the timed one
 * after its timeout, the others (waiting without limit) at that moment. The
 * barrier's default timeout applies to MP_BARRIER_DEFAULT. */
static void barrier_timeout(int proc)
{
    board_t *b = board_new();
    mp_barrier_t *bar = barrier_new(b, 3, 0, MP_FOREVER);
    static mp_party_t y[1];
    start_bar_waiters(y, 1, proc, b, bar, MP_TEST_LONG);
    double t0 = mp_test_now();
    mp_assert_int(mp_barrier_wait(bar, 0.4), MP_EBROKEN);
    mp_test_check_timed(mp_test_now() - t0, 0.4, "Barrier wait(0.4)");
    mp_assert_int(mp_party_join(&y[0]), 0);
    mp_assert_int(b->rc[0], MP_EBROKEN);
    mp_test_check_prompt(b->at[0], t0 + 0.4, "the other Barrier waiter at a timeout");
    mp_assert_int(mp_barrier_broken(bar), 1);
    mp_assert_int(mp_barrier_reset(bar), 0);
    one_round(proc, b, bar, 2);
    mp_barrier_free(bar);

    /* wait(0) with others missing breaks it at once. */
    bar = barrier_new(b, 2, 0, MP_FOREVER);
    t0 = mp_test_now();
    mp_assert_int(mp_barrier_wait(bar, 0), MP_EBROKEN);
    mp_test_check_quick(mp_test_now() - t0, "Barrier wait(0)");
    mp_assert_int(mp_barrier_broken(bar), 1);
    mp_barrier_free(bar);

    /* The default timeout. */
    bar = barrier_new(b, 2, 0, 0.3);
    memset(b->rc, 0, sizeof b->rc);
    targ_t a = {.b = b, .bar = bar, .id = 0, .timeout = MP_BARRIER_DEFAULT};
    mp_party_start(&y[0], proc, t_bar_once, &a, sizeof a);
    mp_assert_int(mp_party_join(&y[0]), 0);
    mp_assert_int(b->rc[0], MP_EBROKEN);
    mp_test_check_timed(b->el[0], 0.3, "Barrier wait(MP_BARRIER_DEFAULT), default 0.3");
    mp_assert_int(mp_barrier_broken(bar), 1);
    mp_assert_int(mp_barrier_reset(bar), 0);
    /* An explicit timeout overrides the default. */
    mp_party_start(&y[0], proc, t_bar_once, &a, sizeof a);
    t0 = mp_test_now();
    int rc = mp_barrier_wait(bar, MP_TEST_LONG);
    mp_assert_int(mp_party_join(&y[0]), 0);
    mp_assert_int(rc >= 0, 1);
    mp_assert_int(b->rc[0] >= 0, 1);
    mp_barrier_free(bar);
    mp__arena_free(b);
}

static void barrier_timeout_threads(void **state) { barrier_timeout(0); }
static void barrier_timeout_processes(void **state) { barrier_timeout(1); }

/* A party is killed before it arrives: the others, waiting with a timeout,
 * get MP_EBROKEN by that timeout instead of hanging; the barrier is broken
 * for everyone after. */
static void barrier_dead_party(void **state)
{
    board_t *b = board_new();
    mp_barrier_t *bar = barrier_new(b, 3, 0, MP_FOREVER);
    static mp_party_t dead, other;
    targ_t da = {.b = b, .id = 2};
    mp_party_start(&dead, 1, t_block_forever, &da, sizeof da);
    mp_test_wait_word(&b->ready, 1, "the doomed party");
    targ_t oa = {.b = b, .bar = bar, .id = 0, .timeout = 1.0};
    mp_party_start(&other, 1, t_bar_once, &oa, sizeof oa);
    wait_n_waiting(bar, 1);
    mp_party_kill(&dead);
    double t0 = mp_test_now();
    int rc = mp_barrier_wait(bar, 1.0);
    double el = mp_test_now() - t0;
    mp_assert_int(mp_party_join(&other), 0);
    mp_assert_int(rc, MP_EBROKEN);
    /* The other process's timeout ran out first and broke it for us. */
    if (el > 1.0 + 10.0 * mp_test_scale())
        mp_test_fail("wait(1.0) with a dead party returned after %.2f s\n", el);
    mp_assert_int(b->rc[0], MP_EBROKEN);
    mp_test_check_timed(b->el[0], 1.0, "the other process's wait(1.0) with a dead party");
    mp_assert_int(mp_barrier_broken(bar), 1);
    mp_barrier_free(bar);
    mp__arena_free(b);
}

/* A party is SIGKILLed while asleep in wait (it had arrived). The others of
 * that round return by their timeout (an index: the dead one counted, or
 * MP_EBROKEN); after reset, a full round of live parties works: the dead
 * party does not wedge the barrier for good. */
static void kill_unreaped(mp_party_t *y);

static void barrier_party_killed_waiting(int reap)
{
    board_t *b = board_new();
    mp_barrier_t *bar = barrier_new(b, 3, 0, MP_FOREVER);
    static mp_party_t dead, y[2];
    targ_t da = {.b = b, .bar = bar, .id = 5, .timeout = MP_FOREVER};
    mp_party_start(&dead, 1, t_bar_once, &da, sizeof da);
    wait_n_waiting(bar, 1);
    mp_test_wait_asleep(b->tid[5], "the doomed party in wait");
    if (reap)
        mp_party_kill(&dead);
    else
        kill_unreaped(&dead);
    targ_t a = {.b = b, .bar = bar, .id = 0, .timeout = 2.0};
    mp_party_start(&y[0], 0, t_bar_once, &a, sizeof a);
    double t0 = mp_test_now();
    int rc = mp_barrier_wait(bar, 2.0);
    double el = mp_test_now() - t0;
    mp_assert_int(mp_party_join(&y[0]), 0);
    print_message("round with the dead party: %d (%s), %d (%s)\n", rc,
                  mp_test_codename(rc), b->rc[0], mp_test_codename(b->rc[0]));
    if (el > 2.0 + 10.0 * mp_test_scale())
        mp_test_fail("wait(2.0) with a dead party returned after %.1f s\n", el);
    mp_assert_int(mp_barrier_reset(bar), 0);
    /* A full round of live parties: a thread, a process and this one. */
    double t = 10.0 * mp_test_scale();
    memset(b->rc, 0, sizeof b->rc);
    targ_t a0 = {.b = b, .bar = bar, .id = 0, .timeout = t};
    targ_t a1 = {.b = b, .bar = bar, .id = 1, .timeout = t};
    mp_party_start(&y[0], 0, t_bar_once, &a0, sizeof a0);
    mp_party_start(&y[1], 1, t_bar_once, &a1, sizeof a1);
    int mine = mp_barrier_wait(bar, t);
    mp_assert_int(mp_party_join(&y[0]), 0);
    mp_assert_int(mp_party_join(&y[1]), 0);
    if (mine < 0 || b->rc[0] < 0 || b->rc[1] < 0)
        mp_test_fail("after a party died waiting and a reset, a full round "
                     "gave %d (%s), %d (%s), %d (%s): the barrier is wedged\n",
                     mine, mp_strerror(mine), b->rc[0], mp_strerror(b->rc[0]),
                     b->rc[1], mp_strerror(b->rc[1]));
    mp_assert_int((1 << mine) | (1 << b->rc[0]) | (1 << b->rc[1]), 7);
    if (!reap)
        mp_assert_int(mp_party_join(&dead), -SIGKILL);
    mp_barrier_free(bar);
    mp__arena_free(b);
}

/* A party released from a round keeps its success even when it wakes only
 * after the barrier was aborted, and the next round fills without waiting
 * for it to leave (Python would make the round wait for it, and would then
 * raise BrokenBarrierError in it). The released party is a stopped
 * process: it cannot wake until SIGCONT. */
static void barrier_released_party_survives_abort(void **state)
{
    board_t *b = board_new();
    mp_barrier_t *bar = barrier_new(b, 2, 0, MP_FOREVER);
    static mp_party_t late, y;
    targ_t la = {.b = b, .bar = bar, .id = 5, .timeout = MP_FOREVER};
    mp_party_start(&late, 1, t_bar_once, &la, sizeof la);
    wait_n_waiting(bar, 1);
    mp_test_wait_asleep(b->tid[5], "the first party in wait");
    pid_t pid = mp_process_pid(late.p);
    mp_assert_int(kill(pid, SIGSTOP), 0);
    double t = 10.0 * mp_test_scale();
    mp_assert_int(mp_barrier_wait(bar, t), 1); /* completes round 1 */
    /* Round 2, between a thread and this one, while the stopped party of
     * round 1 has not left. */
    targ_t a = {.b = b, .bar = bar, .id = 0, .timeout = t};
    mp_party_start(&y, 0, t_bar_once, &a, sizeof a);
    int mine = mp_barrier_wait(bar, t);
    mp_assert_int(mp_party_join(&y), 0);
    if (mine < 0 || b->rc[0] < 0)
        mp_test_fail("round 2 gave %d (%s) and %d (%s) while a released party "
                     "of round 1 was stopped\n", mine, mp_strerror(mine), b->rc[0],
                     mp_strerror(b->rc[0]));
    mp_assert_int((1 << mine) | (1 << b->rc[0]), 3);
    mp_assert_int(mp_barrier_abort(bar), 0);
    mp_assert_int(kill(pid, SIGCONT), 0);
    mp_assert_int(mp_party_join(&late), 0);
    if (b->rc[5] != 0)
        mp_test_fail("the party released from round 1 returned %d (%s) after "
                     "an abort in a later round, expected index 0\n", b->rc[5],
                     mp_strerror(b->rc[5]));
    mp_assert_int(mp_barrier_broken(bar), 1);
    mp_barrier_free(bar);
    mp__arena_free(b);
}

static void barrier_party_killed_waiting_reaped(void **state) { barrier_party_killed_waiting(1); }
static void barrier_party_killed_waiting_zombie(void **state) { barrier_party_killed_waiting(0); }

/* ---- bad input, freed handles, foreign frees ---------------------------- */

static void bad_args(void **state)
{
    const double nan = NAN;
    mp_lock_t *l = lock_new();
    mp_rlock_t *r = rlock_new();
    mp_sem_t *s = sem_new(1, 0);
    mp_cond_t *c = cond_new(l, NULL);
    mp_event_t *e = event_new();
    board_t *b = board_new();
    mp_barrier_t *bar = barrier_new(b, 2, 0, MP_FOREVER);

    /* constructors */
    mp_assert_int(mp_lock_new(NULL), -EINVAL);
    mp_assert_int(mp_rlock_new(NULL), -EINVAL);
    mp_assert_int(mp_sem_new(NULL, 1, 0), -EINVAL);
    mp_assert_int(mp_cond_new(NULL, NULL, NULL), -EINVAL);
    mp_assert_int(mp_event_new(NULL), -EINVAL);
    mp_assert_int(mp_barrier_new(NULL, 2, NULL, NULL, 0, MP_FOREVER), -EINVAL);
    mp_sem_t *s2 = NULL;
    mp_assert_int(mp_sem_new(&s2, -1, 0), -EINVAL);
    mp_cond_t *c2 = NULL;
    mp_assert_int(mp_cond_new(&c2, l, r), -EINVAL);
    mp_barrier_t *b2 = NULL;
    mp_assert_int(mp_barrier_new(&b2, 0, NULL, NULL, 0, MP_FOREVER), -EINVAL);
    mp_assert_int(mp_barrier_new(&b2, -3, NULL, NULL, 0, MP_FOREVER), -EINVAL);
    static char big[4097];
    mp_assert_int(mp_barrier_new(&b2, 2, bar_action, big, sizeof big, MP_FOREVER),
                  -EINVAL);
    mp_assert_int(mp_barrier_new(&b2, 2, bar_action, NULL, 8, MP_FOREVER), -EINVAL);
    mp_assert_int(mp_barrier_new(&b2, 2, NULL, NULL, 0, nan), -EINVAL);
    mp_assert_int(mp_barrier_new(&b2, 2, bar_action, big, 4096, MP_FOREVER), 0);
    mp_barrier_free(b2);

    /* NULL handles */
    mp_assert_int(mp_lock_acquire(NULL, 0), -EINVAL);
    mp_assert_int(mp_lock_release(NULL), -EINVAL);
    mp_assert_int(mp_lock_locked(NULL), -EINVAL);
    mp_assert_int(mp_rlock_acquire(NULL, 0), -EINVAL);
    mp_assert_int(mp_rlock_release(NULL), -EINVAL);
    mp_assert_int(mp_rlock_count(NULL), -EINVAL);
    mp_assert_int(mp_sem_acquire(NULL, 0), -EINVAL);
    mp_assert_int(mp_sem_release(NULL, 1), -EINVAL);
    mp_assert_int(mp_sem_value(NULL), -EINVAL);
    mp_assert_int(mp_cond_acquire(NULL, 0), -EINVAL);
    mp_assert_int(mp_cond_release(NULL), -EINVAL);
    mp_assert_int(mp_cond_wait(NULL, 0), -EINVAL);
    mp_assert_int(mp_cond_wait_for(NULL, pred_flag, b, 0), -EINVAL);
    mp_assert_int(mp_cond_notify(NULL, 1), -EINVAL);
    mp_assert_int(mp_cond_notify_all(NULL), -EINVAL);
    mp_assert_int(mp_event_set(NULL), -EINVAL);
    mp_assert_int(mp_event_clear(NULL), -EINVAL);
    mp_assert_int(mp_event_is_set(NULL), -EINVAL);
    mp_assert_int(mp_event_wait(NULL, 0), -EINVAL);
    mp_assert_int(mp_barrier_wait(NULL, 0), -EINVAL);
    mp_assert_int(mp_barrier_abort(NULL), -EINVAL);
    mp_assert_int(mp_barrier_reset(NULL), -EINVAL);
    mp_assert_int(mp_barrier_parties(NULL), -EINVAL);
    mp_assert_int(mp_barrier_n_waiting(NULL), -EINVAL);
    mp_assert_int(mp_barrier_broken(NULL), -EINVAL);
    mp_lock_free(NULL);
    mp_rlock_free(NULL);
    mp_sem_free(NULL);
    mp_cond_free(NULL);
    mp_event_free(NULL);
    mp_barrier_free(NULL);

    /* A handle of the wrong kind is refused too. */
    mp_assert_int(mp_lock_acquire((mp_lock_t *)(void *)e, 0), -EINVAL);
    mp_assert_int(mp_event_set((mp_event_t *)(void *)l), -EINVAL);
    mp_assert_int(mp_sem_value((mp_sem_t *)(void *)r), -EINVAL);

    /* NaN timeouts; nothing taken, nothing broken */
    mp_assert_int(mp_lock_acquire(l, nan), -EINVAL);
    mp_assert_int(mp_lock_locked(l), 0);
    mp_assert_int(mp_rlock_acquire(r, nan), -EINVAL);
    mp_assert_int(mp_rlock_count(r), 0);
    mp_assert_int(mp_sem_acquire(s, nan), -EINVAL);
    mp_assert_int(mp_sem_value(s), 1);
    mp_assert_int(mp_cond_acquire(c, nan), -EINVAL);
    mp_assert_int(mp_lock_locked(l), 0);
    mp_assert_int(mp_event_wait(e, nan), -EINVAL);
    mp_assert_int(mp_barrier_wait(bar, nan), -EINVAL);
    mp_assert_int(mp_barrier_n_waiting(bar), 0);
    mp_assert_int(mp_barrier_broken(bar), 0);
    mp_assert_int(mp_cond_acquire(c, 0), 0);
    mp_assert_int(mp_cond_wait(c, nan), -EINVAL);
    mp_assert_int(mp_cond_wait_for(c, pred_flag, b, nan), -EINVAL);
    mp_assert_int(mp_cond_wait_for(c, NULL, b, 0), -EINVAL);
    mp_assert_int(mp_cond_notify(c, -1), -EINVAL);
    mp_assert_int(mp_lock_locked(l), 1);
    mp_assert_int(mp_cond_release(c), 0);
    /* bad counts */
    mp_assert_int(mp_sem_release(s, 0), -EINVAL);
    mp_assert_int(mp_sem_release(s, -1), -EINVAL);
    mp_assert_int(mp_sem_value(s), 1);

    mp_barrier_free(bar);
    mp_event_free(e);
    mp_cond_free(c);
    mp_sem_free(s);
    mp_rlock_free(r);
    mp_lock_free(l);
    mp__arena_free(b);
}

/* A freed handle is refused with -EINVAL (the header's promise). */
static void freed_handles(void **state)
{
    board_t *b = board_new();
    mp_lock_t *l = lock_new();
    mp_rlock_t *r = rlock_new();
    mp_sem_t *s = sem_new(1, 0);
    mp_event_t *e = event_new();
    mp_cond_t *c = cond_new(NULL, NULL);
    mp_barrier_t *bar = barrier_new(b, 2, 0, MP_FOREVER);
    mp_lock_free(l);
    mp_rlock_free(r);
    mp_sem_free(s);
    mp_event_free(e);
    mp_cond_free(c);
    mp_barrier_free(bar);
    mp_assert_int(mp_lock_acquire(l, 0), -EINVAL);
    mp_assert_int(mp_lock_release(l), -EINVAL);
    mp_assert_int(mp_lock_locked(l), -EINVAL);
    mp_assert_int(mp_rlock_acquire(r, 0), -EINVAL);
    mp_assert_int(mp_rlock_count(r), -EINVAL);
    mp_assert_int(mp_sem_acquire(s, 0), -EINVAL);
    mp_assert_int(mp_sem_release(s, 1), -EINVAL);
    mp_assert_int(mp_sem_value(s), -EINVAL);
    mp_assert_int(mp_event_set(e), -EINVAL);
    mp_assert_int(mp_event_wait(e, 0), -EINVAL);
    mp_assert_int(mp_cond_acquire(c, 0), -EINVAL);
    mp_assert_int(mp_cond_notify_all(c), -EINVAL);
    mp_assert_int(mp_barrier_wait(bar, 0), -EINVAL);
    mp_assert_int(mp_barrier_parties(bar), -EINVAL);
    mp__arena_free(b);
}

/* mp_*_free in a child process (not the creator) does nothing: the objects
 * keep working in the parent. */
static void free_in_child(void **state)
{
    board_t *b = board_new();
    targ_t a = {.b = b, .lock = lock_new(), .rlock = rlock_new(),
                .sem = sem_new(1, 1), .ev = event_new()};
    a.cond = cond_new(a.lock, NULL);
    a.bar = barrier_new(b, 1, 0, MP_FOREVER);
    static mp_party_t y;
    mp_party_start(&y, 1, t_free_all, &a, sizeof a);
    mp_assert_int(mp_party_join(&y), 0);
    mp_assert_int(mp_lock_acquire(a.lock, 0), 0);
    mp_assert_int(mp_cond_wait(a.cond, 0), -ETIMEDOUT);
    mp_assert_int(mp_lock_release(a.lock), 0);
    mp_assert_int(mp_rlock_acquire(a.rlock, 0), 0);
    mp_assert_int(mp_rlock_release(a.rlock), 0);
    mp_assert_int(mp_sem_acquire(a.sem, 0), 0);
    mp_assert_int(mp_sem_release(a.sem, 1), 0);
    mp_assert_int(mp_event_set(a.ev), 0);
    mp_assert_int(mp_event_is_set(a.ev), 1);
    mp_assert_int(mp_barrier_wait(a.bar, 0), 0);
    mp_cond_free(a.cond);
    mp_barrier_free(a.bar);
    mp_event_free(a.ev);
    mp_sem_free(a.sem);
    mp_rlock_free(a.rlock);
    mp_lock_free(a.lock);
    mp__arena_free(b);
}

int main(int argc, char **argv)
{
    static const mp_test_case_t cases[] = {
        MP_TEST(lock_basic),
        MP_TEST(lock_contended_threads),
        MP_TEST(lock_contended_processes),
        MP_TEST_T(lock_mutex_threads, 120),
        MP_TEST_T(lock_mutex_processes, 120),
        MP_TEST(lock_owner_killed),
        MP_TEST(lock_owner_killed_after_moves),
        MP_TEST(lock_owner_killed_after_glibc_robust),
        MP_TEST(lock_held_across_child),
        MP_TEST(lock_owner_exited),
        MP_TEST(lock_owner_thread_ended),
        MP_TEST(lock_owner_killed_waiters),
        MP_TEST(lock_thread_ended_waiters),
        MP_TEST(rlock_recursion_threads),
        MP_TEST(rlock_recursion_processes),
        MP_TEST_T(rlock_mutex_processes, 120),
        MP_TEST(rlock_owner_killed),
        MP_TEST(rlock_owner_exited),
        MP_TEST(rlock_owner_thread_ended),
        MP_TEST(rlock_owner_killed_waiters),
        MP_TEST(rlock_thread_ended_waiters),
        MP_TEST(sem_basic),
        MP_TEST(sem_release_n_threads),
        MP_TEST(sem_release_n_processes),
        MP_TEST_T(sem_holders_threads, 120),
        MP_TEST_T(sem_holders_processes, 120),
        MP_TEST_T(bsem_holders_processes, 120),
        MP_TEST(bsem_overflow),
        MP_TEST(bsem_release_by_other),
        MP_TEST(bsem_holder_killed),
        MP_TEST(bsem_holder_exited),
        MP_TEST(bsem_holder_thread_ended),
        MP_TEST(bsem_holder_killed_waiter),
        MP_TEST(bsem_holder_zombie),
        MP_TEST(cond_basic),
        MP_TEST(cond_notify_threads),
        MP_TEST(cond_notify_processes),
        MP_TEST(cond_notify_all_mixed),
        MP_TEST(cond_no_spurious_wakeup_threads),
        MP_TEST(cond_no_spurious_wakeup_processes),
        MP_TEST(cond_wait_timeout_threads),
        MP_TEST(cond_wait_timeout_processes),
        MP_TEST(cond_wait_for),
        MP_TEST(cond_rlock_threads),
        MP_TEST(cond_rlock_processes),
        MP_TEST_T(cond_producer_consumer_threads, 120),
        MP_TEST_T(cond_producer_consumer_processes, 120),
        MP_TEST(cond_wait_owner_died),
        MP_TEST(cond_dead_waiter_reaped),
        MP_TEST(cond_dead_waiter_zombie),
        MP_TEST(event_basic),
        MP_TEST(event_wakes_threads),
        MP_TEST(event_wakes_processes),
        MP_TEST_T(event_ping_pong, 120),
        MP_TEST(event_pulse_threads),
        MP_TEST(event_pulse_processes),
        MP_TEST(barrier_one),
        MP_TEST(barrier_action_arg_aligned),
        MP_TEST_T(barrier_rounds_threads, 120),
        MP_TEST_T(barrier_rounds_threads_no_action, 120),
        MP_TEST_T(barrier_lockstep_processes, 180),
        MP_TEST_T(barrier_lockstep_processes_no_action, 180),
        MP_TEST(barrier_abort_threads),
        MP_TEST(barrier_abort_processes),
        MP_TEST(barrier_reset_threads),
        MP_TEST(barrier_reset_processes),
        MP_TEST(barrier_action_fails_threads),
        MP_TEST(barrier_action_fails_processes),
        MP_TEST(barrier_timeout_threads),
        MP_TEST(barrier_timeout_processes),
        MP_TEST(barrier_dead_party),
        MP_TEST(barrier_party_killed_waiting_reaped),
        MP_TEST(barrier_party_killed_waiting_zombie),
        MP_TEST(barrier_released_party_survives_abort),
        MP_TEST(bad_args),
        MP_TEST(freed_handles),
        MP_TEST(free_in_child),
    };
    static const mp_test_config_t cfg = {
        .per_method = 1,
        .warmup = warm_sync,
    };
    return mp_test_main(argc, argv, cases, sizeof cases / sizeof cases[0], &cfg);
}

/* sync.c: Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event and
 * Barrier, in the shared arena, for threads and processes alike.
 *
 * Every object starts with a header (magic, kind, creator pid) so a stale or
 * foreign pointer is refused with -EINVAL, and so only the creator frees.
 * Locks are robust futex words (src/sys/robust.c). Semaphores and events are
 * plain futex counters. Conditions count notifications in a sequence word.
 * A Barrier keeps Python's states (filling, resetting, broken) under an
 * internal robust lock, with round numbers in place of Python's draining
 * state; a party that dies inside the bookkeeping breaks the barrier
 * instead of wedging it. A BoundedSemaphore records its holders' TIDs
 * so that the slots of a dead holder can be taken back.
 *
 * Lock order: a Condition's user lock, then nothing (the sequence word is a
 * futex); the Barrier's internal lock is a leaf. MT-safe: yes. Fork-safe: yes
 * (no process-local state). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "internal.h"

#define SYNC_MAGIC 0x6d707379u /* "mpsy" */
enum { K_LOCK = 1, K_RLOCK, K_SEM, K_COND, K_EVENT, K_BARRIER };

typedef struct {
    uint32_t magic;
    uint32_t kind;
    int32_t creator;
    uint32_t shift; /* the object's distance from its arena block */
} hdr_t;

struct mp_lock {
    hdr_t h;
    mp__robust_t r;
};

struct mp_rlock {
    hdr_t h;
    mp__robust_t r;
    uint32_t count; /* touched only by the holder */
};

struct mp_sem {
    hdr_t h;
    _Atomic uint32_t value;
    _Atomic uint32_t waiters;
    int32_t bounded;
    int32_t initial;
    mp__robust_t guard;   /* bounded: protects holders[] */
    int32_t holders[];    /* bounded: TIDs holding a slot (0: free entry) */
};

/* A waiter of a Condition: a node in the arena, queued in arrival order,
 * with a word of its own to sleep on (as Python's per-waiter locks), so that
 * notify(n) wakes exactly the n oldest waiters. */
typedef struct cwaiter {
    _Atomic uint32_t notified;
    int32_t tid, pid; /* who waits: notify skips waiters that died */
    struct cwaiter *prev, *next;
} cwaiter_t;

struct mp_cond {
    hdr_t h;
    mp_lock_t *lock;
    mp_rlock_t *rlock;
    int own_rlock;
    cwaiter_t *head, *tail; /* under the user lock */
};

struct mp_event {
    hdr_t h;
    _Atomic uint32_t flag;
    _Atomic uint32_t waiters;
};

enum { B_FILLING = 0, B_RESETTING = -1, B_BROKEN = -2 };

struct mp_barrier {
    hdr_t h;
    mp__robust_t guard;
    _Atomic uint32_t seq; /* bumped on every state change: waiters sleep on it */
    _Atomic uint32_t sleepers;
    uint32_t woken_seq;   /* seq when sleepers were last woken (guard) */
    int32_t parties;
    int32_t count;        /* parties inside the current round */
    int32_t state;
    uint64_t gen;         /* rounds completed: a waiter whose round number
                           * moved on was released (see mp_barrier_wait) */
    double timeout;
    char module[256];
    uint64_t offset;      /* the action, by module and offset (0: none) */
    uint32_t arg_len;
    uint32_t arg_off;     /* the action's argument, at data + arg_off */
    int32_t data[];       /* parties slots: TIDs of the parties inside wait */
};

/* The argument sits 16-byte aligned from the object's (16-aligned) start,
 * so an action may use it as the struct it was copied from. */
#define BAR_ARG(b) ((unsigned char *)(b) + (b)->arg_off)

/* spin_until waits a few microseconds for *w to differ from v before a
 * caller goes to sleep on it, when this process may run on more than one
 * CPU: a wake-up across CPUs costs tens of microseconds, and in hand-offs
 * (Event ping-pong, Barrier rounds) the other side usually answers sooner.
 * Pinned to one CPU, spinning would only steal the other side's time, so
 * it is skipped. Then it yields the CPU once: when the other side shares
 * our CPU it answers during the yield, and neither side enters futex_wait
 * or futex_wake (Event round trips on one CPU: 3.6x Python before, 6-7x
 * after). Returns 1 if the word changed. */
static int multi_cpu = -1;

static int spin_until(const _Atomic uint32_t *w, uint32_t v)
{
    if (multi_cpu < 0)
        multi_cpu = mp_cpu_count() > 1;
    for (int i = 0; multi_cpu && i < 200; i++) {
        if (atomic_load_explicit(w, memory_order_acquire) != v)
            return 1;
        mp__cpu_relax();
    }
    sched_yield();
    return atomic_load_explicit(w, memory_order_acquire) != v;
}

/* Objects start on a cache line. The arena aligns blocks to 16 bytes; a
 * Lock at 16 past a line had its list links in the next line, and the
 * store of both links was split across the two (measured in a copy of the
 * fast path: 7.8-8.2 ns a pair aligned, 8.6-8.9 ns split). A Lock's header,
 * word and links now share one line. */
#define OBJ_ALIGN 64

static void *obj_new(size_t size, uint32_t kind)
{
    if (size > SIZE_MAX - OBJ_ALIGN)
        return NULL;
    char *blk = mp__arena_alloc(size + OBJ_ALIGN - 16);
    if (!blk)
        return NULL;
    hdr_t *h = (hdr_t *)(((uintptr_t)blk + OBJ_ALIGN - 1) & ~(uintptr_t)(OBJ_ALIGN - 1));
    h->shift = (uint32_t)((char *)h - blk);
    h->kind = kind;
    h->creator = getpid();
    h->magic = SYNC_MAGIC;
    return h;
}

/* A handle is valid while its header holds the magic: freeing clears it. */
static inline int obj_ok(const void *p, uint32_t kind)
{
    const hdr_t *h = p;
    return h && h->magic == SYNC_MAGIC && h->kind == kind;
}

static void obj_free(void *p, uint32_t kind)
{
    hdr_t *h = p;
    if (!obj_ok(p, kind) || !mp__arena_contains(h) || h->creator != getpid() ||
        h->shift >= OBJ_ALIGN || h->shift % 16)
        return;
    h->magic = 0;
    mp__arena_free((char *)h - h->shift);
}

static inline int deadline_of(double timeout, mp__deadline_t *d)
{
    if (timeout < 0) { /* MP_FOREVER: no clock read */
        *d = MP__NEVER;
        return 0;
    }
    return mp__deadline(timeout, d);
}

/* ---- Lock ---------------------------------------------------------------- */

int mp_lock_new(mp_lock_t **out)
{
    if (!out)
        return -EINVAL;
    mp_lock_t *l = obj_new(sizeof *l, K_LOCK);
    if (!l)
        return -ENOMEM;
    *out = l;
    return 0;
}

int mp_lock_acquire(mp_lock_t *l, double timeout)
{
    mp__deadline_t d;
    if (!obj_ok(l, K_LOCK) || isnan(timeout))
        return -EINVAL;
    if (mp__robust_trylock_fast(&l->r))
        return 0;
    if (deadline_of(timeout, &d) < 0)
        return -EINVAL;
    for (;;) {
        int r = mp__robust_lock(&l->r, d);
        if (r != -EINTR)
            return r;
    }
}

int mp_lock_release(mp_lock_t *l)
{
    if (!obj_ok(l, K_LOCK))
        return -EINVAL;
    return mp__robust_unlock_inline(&l->r);
}

int mp_lock_locked(mp_lock_t *l)
{
    if (!obj_ok(l, K_LOCK))
        return -EINVAL;
    return mp__robust_held(&l->r);
}

void mp_lock_free(mp_lock_t *l) { obj_free(l, K_LOCK); }

/* ---- RLock --------------------------------------------------------------- */

int mp_rlock_new(mp_rlock_t **out)
{
    if (!out)
        return -EINVAL;
    mp_rlock_t *l = obj_new(sizeof *l, K_RLOCK);
    if (!l)
        return -ENOMEM;
    *out = l;
    return 0;
}

int mp_rlock_acquire(mp_rlock_t *l, double timeout)
{
    mp__deadline_t d;
    if (!obj_ok(l, K_RLOCK) || deadline_of(timeout, &d) < 0)
        return -EINVAL;
    if (mp__robust_owned(&l->r)) {
        if (l->count == UINT32_MAX)
            return -EOVERFLOW;
        l->count++;
        return 0;
    }
    int r = mp__robust_lock(&l->r, d);
    if (r == 0 || r == -EOWNERDEAD)
        l->count = 1;
    return r;
}

int mp_rlock_release(mp_rlock_t *l)
{
    if (!obj_ok(l, K_RLOCK))
        return -EINVAL;
    if (!mp__robust_owned(&l->r))
        return -EPERM;
    if (--l->count > 0)
        return 0;
    return mp__robust_unlock(&l->r);
}

int mp_rlock_count(mp_rlock_t *l)
{
    if (!obj_ok(l, K_RLOCK))
        return -EINVAL;
    return mp__robust_owned(&l->r) ? (int)l->count : 0;
}

void mp_rlock_free(mp_rlock_t *l) { obj_free(l, K_RLOCK); }

/* ---- Semaphore ----------------------------------------------------------- */

int mp_sem_new(mp_sem_t **out, int value, int bounded)
{
    if (!out || value < 0 || (bounded && (value < 1 || value > MP_SEM_BOUNDED_MAX)))
        return -EINVAL;
    size_t n = bounded ? (size_t)value : 0;
    mp_sem_t *s = obj_new(sizeof *s + n * sizeof(int32_t), K_SEM);
    if (!s)
        return -ENOMEM;
    s->value = (uint32_t)value;
    s->bounded = bounded != 0;
    s->initial = value;
    *out = s;
    return 0;
}

/* Bounded semaphores: holders[] names who holds each slot. */
static void holders_lock(mp_sem_t *s)
{
    int r;
    do
        r = mp__robust_lock(&s->guard, MP__NEVER);
    while (r == -EINTR);
    /* -EOWNERDEAD: a process died while editing holders[]; each edit is one
     * store, so the table is whole. */
}

static void holders_add(mp_sem_t *s, int32_t tid)
{
    holders_lock(s);
    for (int i = 0; i < s->initial; i++) {
        if (s->holders[i] == 0) {
            s->holders[i] = tid;
            break;
        }
    }
    mp__robust_unlock(&s->guard);
}

/* Removes one record: the caller's own if any, else a dead holder's, else
 * any (a BoundedSemaphore, as in Python, may be released by another thread).
 * Returns 0, or -EOVERFLOW when nobody holds a slot. */
static int holders_remove(mp_sem_t *s, int32_t tid)
{
    int found = -1;
    holders_lock(s);
    for (int i = 0; i < s->initial && found < 0; i++)
        if (s->holders[i] == tid)
            found = i;
    for (int i = 0; i < s->initial && found < 0; i++)
        if (s->holders[i] && !mp__tid_alive(s->holders[i]))
            found = i;
    for (int i = 0; i < s->initial && found < 0; i++)
        if (s->holders[i])
            found = i;
    if (found >= 0)
        s->holders[found] = 0;
    mp__robust_unlock(&s->guard);
    return found >= 0 ? 0 : -EOVERFLOW;
}

/* Gives back the slots of holders that died. Returns how many. */
static int holders_reclaim(mp_sem_t *s)
{
    int n = 0;
    holders_lock(s);
    for (int i = 0; i < s->initial; i++) {
        if (s->holders[i] && !mp__tid_alive(s->holders[i])) {
            s->holders[i] = 0;
            n++;
        }
    }
    mp__robust_unlock(&s->guard);
    if (n) {
        atomic_fetch_add(&s->value, (uint32_t)n);
        mp__futex_wake((uint32_t *)&s->value, n);
    }
    return n;
}

static int sem_trydown(mp_sem_t *s)
{
    uint32_t v = atomic_load(&s->value);
    while (v > 0)
        if (atomic_compare_exchange_weak(&s->value, &v, v - 1))
            return 1;
    return 0;
}

static int sem_took(mp_sem_t *s)
{
    if (s->bounded)
        holders_add(s, mp__gettid());
    return 0;
}

int mp_sem_acquire(mp_sem_t *s, double timeout)
{
    mp__deadline_t d;
    if (!obj_ok(s, K_SEM) || deadline_of(timeout, &d) < 0)
        return -EINVAL;
    for (;;) {
        if (sem_trydown(s))
            return sem_took(s);
        mp__deadline_t slice = d;
        if (s->bounded) {
            /* A dead holder never releases: look for one now and then. */
            if (holders_reclaim(s))
                continue;
            mp__deadline_t next = mp__now_ns() + 100000000LL;
            if (next < slice)
                slice = next;
        }
        atomic_fetch_add(&s->waiters, 1);
        int r = mp__futex_wait((uint32_t *)&s->value, 0, slice);
        atomic_fetch_sub(&s->waiters, 1);
        if (r == -ETIMEDOUT && slice == d)
            return sem_trydown(s) ? sem_took(s) : -ETIMEDOUT;
    }
}

int mp_sem_release(mp_sem_t *s, int n)
{
    if (!obj_ok(s, K_SEM) || n < 1)
        return -EINVAL;
    if (s->bounded) {
        uint32_t v = atomic_load(&s->value);
        if (v + (uint32_t)n > (uint32_t)s->initial)
            return -EOVERFLOW;
        for (int i = 0; i < n; i++)
            if (holders_remove(s, mp__gettid()) < 0)
                return -EOVERFLOW;
    }
    atomic_fetch_add(&s->value, (uint32_t)n);
    if (atomic_load(&s->waiters))
        mp__futex_wake((uint32_t *)&s->value, n);
    return 0;
}

int mp_sem_value(mp_sem_t *s)
{
    if (!obj_ok(s, K_SEM))
        return -EINVAL;
    return (int)atomic_load(&s->value);
}

void mp_sem_free(mp_sem_t *s) { obj_free(s, K_SEM); }

/* ---- Event --------------------------------------------------------------- */

int mp_event_new(mp_event_t **out)
{
    if (!out)
        return -EINVAL;
    mp_event_t *e = obj_new(sizeof *e, K_EVENT);
    if (!e)
        return -ENOMEM;
    *out = e;
    return 0;
}

/* The event word holds the flag (bit 0) and a count of sets (the rest): a
 * waiter that slept through a set followed by a clear still returns, as in
 * Python, where set() wakes everyone waiting at that moment. */
int mp_event_set(mp_event_t *e)
{
    if (!obj_ok(e, K_EVENT))
        return -EINVAL;
    uint32_t v = atomic_load(&e->flag);
    while (!(v & 1))
        if (atomic_compare_exchange_weak(&e->flag, &v, (v + 2) | 1))
            break;
    if (atomic_load(&e->waiters))
        mp__futex_wake((uint32_t *)&e->flag, INT32_MAX);
    return 0;
}

int mp_event_clear(mp_event_t *e)
{
    if (!obj_ok(e, K_EVENT))
        return -EINVAL;
    atomic_fetch_and(&e->flag, ~1u);
    return 0;
}

int mp_event_is_set(mp_event_t *e)
{
    if (!obj_ok(e, K_EVENT))
        return -EINVAL;
    return (int)(atomic_load(&e->flag) & 1);
}

int mp_event_wait(mp_event_t *e, double timeout)
{
    mp__deadline_t d;
    if (!obj_ok(e, K_EVENT) || deadline_of(timeout, &d) < 0)
        return -EINVAL;
    uint32_t v0 = atomic_load(&e->flag), v = v0;
    if (!(v & 1) && spin_until(&e->flag, v))
        v = atomic_load(&e->flag);
    while (!(v & 1) && (v >> 1) == (v0 >> 1)) {
        atomic_fetch_add(&e->waiters, 1);
        int r = mp__futex_wait((uint32_t *)&e->flag, v, d);
        atomic_fetch_sub(&e->waiters, 1);
        v = atomic_load(&e->flag);
        if (r == -ETIMEDOUT)
            return (v & 1) || (v >> 1) != (v0 >> 1) ? 0 : -ETIMEDOUT;
    }
    return 0;
}

void mp_event_free(mp_event_t *e) { obj_free(e, K_EVENT); }

/* ---- Condition ----------------------------------------------------------- */

int mp_cond_new(mp_cond_t **out, mp_lock_t *lock, mp_rlock_t *rlock)
{
    if (!out || (lock && rlock) || (lock && !obj_ok(lock, K_LOCK)) ||
        (rlock && !obj_ok(rlock, K_RLOCK)))
        return -EINVAL;
    mp_cond_t *c = obj_new(sizeof *c, K_COND);
    if (!c)
        return -ENOMEM;
    if (!lock && !rlock) {
        if (mp_rlock_new(&rlock) < 0) {
            obj_free(c, K_COND);
            return -ENOMEM;
        }
        c->own_rlock = 1;
    }
    c->lock = lock;
    c->rlock = rlock;
    *out = c;
    return 0;
}

int mp_cond_acquire(mp_cond_t *c, double timeout)
{
    if (!obj_ok(c, K_COND))
        return -EINVAL;
    return c->lock ? mp_lock_acquire(c->lock, timeout) : mp_rlock_acquire(c->rlock, timeout);
}

int mp_cond_release(mp_cond_t *c)
{
    if (!obj_ok(c, K_COND))
        return -EINVAL;
    return c->lock ? mp_lock_release(c->lock) : mp_rlock_release(c->rlock);
}

static int cond_owned(mp_cond_t *c)
{
    return c->lock ? mp__robust_owned(&c->lock->r) : mp__robust_owned(&c->rlock->r);
}

static void cq_remove(mp_cond_t *c, cwaiter_t *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        c->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        c->tail = w->prev;
    w->prev = w->next = NULL;
}

/* Queues the caller, releases the lock (fully, for an RLock), sleeps until
 * notified or d, takes the lock back. With the lock held. */
static int cond_wait_locked(mp_cond_t *c, mp__deadline_t d)
{
    cwaiter_t *w = mp__arena_alloc(sizeof *w);
    if (!w)
        return -ENOMEM;
    w->tid = mp__gettid();
    w->pid = getpid();
    w->prev = c->tail;
    if (c->tail)
        c->tail->next = w;
    else
        c->head = w;
    c->tail = w;
    uint32_t count = 0;
    mp__robust_t *r = c->lock ? &c->lock->r : &c->rlock->r;
    if (c->rlock) {
        count = c->rlock->count;
        c->rlock->count = 0;
    }
    mp__robust_unlock(r);
    int rc = 0;
    while (!atomic_load(&w->notified)) {
        if (mp__futex_wait((uint32_t *)&w->notified, 0, d) == -ETIMEDOUT)
            break;
    }
    int lr;
    do
        lr = mp__robust_lock(r, MP__NEVER);
    while (lr == -EINTR);
    if (c->rlock)
        c->rlock->count = count ? count : 1;
    /* Under the lock again: a notify that came with the timeout still
     * counts; otherwise we leave the queue. */
    if (!atomic_load(&w->notified)) {
        cq_remove(c, w);
        rc = -ETIMEDOUT;
    }
    mp__arena_free(w);
    return lr == -EOWNERDEAD ? lr : rc;
}

int mp_cond_wait(mp_cond_t *c, double timeout)
{
    mp__deadline_t d;
    if (!obj_ok(c, K_COND) || deadline_of(timeout, &d) < 0)
        return -EINVAL;
    if (!cond_owned(c))
        return -EPERM;
    return cond_wait_locked(c, d);
}

int mp_cond_wait_for(mp_cond_t *c, mp_cond_pred_fn pred, void *arg, double timeout)
{
    mp__deadline_t d;
    if (!obj_ok(c, K_COND) || !pred || deadline_of(timeout, &d) < 0)
        return -EINVAL;
    if (!cond_owned(c))
        return -EPERM;
    while (!pred(arg)) {
        int r = cond_wait_locked(c, d);
        if (r == -ETIMEDOUT)
            return pred(arg) ? 1 : 0;
        if (r == -ENOMEM)
            return r;
    }
    return 1;
}

int mp_cond_notify(mp_cond_t *c, int n)
{
    if (!obj_ok(c, K_COND) || n < 1)
        return -EINVAL;
    if (!cond_owned(c))
        return -EPERM;
    /* The n oldest waiters leave the queue notified; each wakes on its own
     * word. The waiter frees its node once it has the lock back. */
    pid_t me = getpid();
    for (int i = 0; i < n && c->head;) {
        cwaiter_t *w = c->head;
        cq_remove(c, w);
        /* A waiter that died (its process killed) would swallow the
         * notification: skip it and free its node, which it cannot. */
        if (!(w->pid == me ? mp__tid_alive(w->tid) : mp__tid_alive(w->pid) && mp__tid_alive(w->tid))) {
            mp__arena_free(w);
            continue;
        }
        atomic_store(&w->notified, 1);
        mp__futex_wake((uint32_t *)&w->notified, 1);
        i++;
    }
    return 0;
}

int mp_cond_notify_all(mp_cond_t *c)
{
    return mp_cond_notify(c, INT32_MAX);
}

void mp_cond_free(mp_cond_t *c)
{
    if (!obj_ok(c, K_COND) || c->h.creator != getpid())
        return;
    if (c->own_rlock)
        mp_rlock_free(c->rlock);
    obj_free(c, K_COND);
}

/* ---- Barrier ------------------------------------------------------------- */

int mp_barrier_new(mp_barrier_t **out, int parties, mp_barrier_action_fn action,
                   const void *arg, size_t arg_len, double timeout)
{
    if (!out || parties < 1 || isnan(timeout) || arg_len > 4096 || (arg_len && !arg))
        return -EINVAL;
    char module[MP__MODULE_MAX];
    uint64_t off = 0;
    if (action) {
        if (mp__target_locate((mp_target_fn)action, module, sizeof module, &off) < 0 ||
            strlen(module) >= 256)
            return -EINVAL;
    }
    if ((size_t)parties > (SIZE_MAX - arg_len - sizeof(mp_barrier_t)) / sizeof(int32_t))
        return -EINVAL;
    mp_barrier_t *b = obj_new(sizeof *b + (size_t)parties * sizeof(int32_t) + 16 + arg_len, K_BARRIER);
    if (!b)
        return -ENOMEM;
    b->parties = parties;
    b->arg_off = (uint32_t)((offsetof(mp_barrier_t, data) + (size_t)parties * sizeof(int32_t) + 15) &
                            ~(size_t)15);
    b->timeout = timeout;
    if (action) {
        strcpy(b->module, module);
        b->offset = off;
    }
    b->arg_len = (uint32_t)arg_len;
    if (arg_len)
        memcpy(BAR_ARG(b), arg, arg_len);
    *out = b;
    return 0;
}

/* Takes the guard; a party that died holding it breaks the barrier. */
static void bar_lock(mp_barrier_t *b)
{
    int r;
    do
        r = mp__robust_lock(&b->guard, MP__NEVER);
    while (r == -EINTR);
    if (r == -EOWNERDEAD) {
        /* The dead party may have stopped between a slot and the count:
         * the slots (TIDs of the parties inside) are the truth. */
        int n = 0;
        for (int i = 0; i < b->parties; i++)
            n += b->data[i] != 0;
        b->count = n;
        b->state = B_BROKEN;
        atomic_fetch_add(&b->seq, 1);
    }
}

/* A state change bumps seq under the guard; the sleepers are woken after
 * the guard is released (bar_unlock), so that they do not wake only to
 * block on the guard (measured: 3.3 context switches per round instead of
 * 2 when waking under the lock). */
static void bar_changed(mp_barrier_t *b)
{
    atomic_fetch_add(&b->seq, 1);
}

static void bar_unlock(mp_barrier_t *b)
{
    uint32_t s = atomic_load(&b->seq);
    int wake = s != b->woken_seq;
    b->woken_seq = s;
    mp__robust_unlock(&b->guard);
    if (wake && atomic_load(&b->sleepers))
        mp__futex_wake((uint32_t *)&b->seq, INT32_MAX);
}

static void bar_purge(mp_barrier_t *b);

/* Sleeps (guard released) until the state moves on or d. Sleeps in slices
 * of a second: after each, parties that died inside the barrier are
 * forgotten (bar_purge), so they cannot hold the others forever. */
static int bar_sleep(mp_barrier_t *b, mp__deadline_t d)
{
    uint32_t seq = atomic_load(&b->seq);
    bar_unlock(b);
    int r = 0;
    spin_until(&b->seq, seq);
    while (atomic_load(&b->seq) == seq) {
        mp__deadline_t slice = mp__now_ns() + 1000000000LL;
        if (slice > d)
            slice = d;
        atomic_fetch_add(&b->sleepers, 1);
        r = mp__futex_wait((uint32_t *)&b->seq, seq, slice);
        atomic_fetch_sub(&b->sleepers, 1);
        if (r == -ETIMEDOUT) {
            if (slice == d)
                break;
            bar_lock(b);
            bar_purge(b);
            bar_unlock(b);
            r = 0;
        }
    }
    bar_lock(b);
    return r == -ETIMEDOUT ? r : 0;
}

static void bar_break(mp_barrier_t *b)
{
    b->state = B_BROKEN;
    bar_changed(b);
}

/* Each party inside wait holds a slot with its TID, so that parties that
 * died inside can be told from live ones and stop counting. */
static int bar_enter(mp_barrier_t *b)
{
    for (int i = 0; i < b->parties; i++) {
        if (b->data[i] == 0) {
            b->data[i] = mp__gettid();
            return i;
        }
    }
    return -1; /* cannot happen: count < parties here */
}

/* Forgets the parties that died inside wait; the round they were in is
 * broken (they will never arrive or leave). */
static void bar_purge(mp_barrier_t *b)
{
    int dead = 0;
    for (int i = 0; i < b->parties; i++) {
        if (b->data[i] && !mp__tid_alive(b->data[i])) {
            b->data[i] = 0;
            dead++;
        }
    }
    if (dead) {
        b->count -= dead;
        if (b->state == B_FILLING && b->count > 0)
            b->state = B_BROKEN;
        if (b->count == 0 && b->state == B_RESETTING)
            b->state = B_FILLING;
        bar_changed(b);
    }
}

/* A party leaves a round that did not complete; the last one out of a
 * resetting barrier lets the next round in. A party whose slot no longer
 * holds its TID is no longer counted (the count was rebuilt from the slots
 * after a party died holding the guard). */
static void bar_exit(mp_barrier_t *b, int slot)
{
    if (slot < 0 || b->data[slot] != mp__gettid())
        return;
    b->data[slot] = 0;
    if (--b->count == 0 && b->state == B_RESETTING) {
        b->state = B_FILLING;
        bar_changed(b);
    }
}

/* The last arrival completes the round: every party in it is released at
 * once (they no longer count, nor hold a slot), and the next round may fill
 * before they have woken. */
static void bar_release(mp_barrier_t *b)
{
    /* Slots first: if we die here, the count rebuilt from them is right. */
    memset(b->data, 0, (size_t)b->parties * sizeof b->data[0]);
    b->count = 0;
    b->gen++;
    bar_changed(b);
}

/* Python makes a new round wait until every party of the last one has left
 * (its draining state). Here the last arrival numbers the round as done
 * (gen) and the next round fills at once: a released party knows it was
 * released by the round number having moved, whatever happened since. On
 * one CPU, two parties then need one context switch per round instead of
 * two. A round that breaks keeps its number, so its parties see the broken
 * state; a reset with parties inside waits for them to leave (resetting),
 * as in Python. */
int mp_barrier_wait(mp_barrier_t *b, double timeout)
{
    mp__deadline_t d;
    if (!obj_ok(b, K_BARRIER))
        return -EINVAL;
    if (timeout == MP_BARRIER_DEFAULT)
        timeout = b->timeout;
    if (deadline_of(timeout, &d) < 0)
        return -EINVAL;
    bar_lock(b);
    /* Wait for the parties of a reset round to leave. */
    while (b->state == B_RESETTING) {
        if (bar_sleep(b, d) == -ETIMEDOUT && b->state == B_RESETTING) {
            bar_break(b);
            break;
        }
    }
    if (b->state == B_BROKEN) {
        bar_unlock(b);
        return MP_EBROKEN;
    }
    int slot = bar_enter(b);
    int index = b->count++;
    uint64_t round = b->gen;
    if (b->count == b->parties) {
        int ok = 1;
        if (b->offset) {
            mp_barrier_action_fn fn = (mp_barrier_action_fn)mp__target_resolve(b->module, b->offset);
            ok = fn && fn(b->arg_len ? BAR_ARG(b) : NULL) == 0;
        }
        if (ok) {
            bar_release(b);
            bar_unlock(b);
            return index;
        }
        bar_break(b);
    } else {
        while (b->gen == round && b->state == B_FILLING) {
            if (bar_sleep(b, d) == -ETIMEDOUT && b->gen == round && b->state == B_FILLING) {
                bar_break(b);
                break;
            }
        }
        if (b->gen != round) {
            bar_unlock(b);
            return index;
        }
    }
    bar_exit(b, slot);
    bar_unlock(b);
    return MP_EBROKEN;
}

int mp_barrier_abort(mp_barrier_t *b)
{
    if (!obj_ok(b, K_BARRIER))
        return -EINVAL;
    bar_lock(b);
    bar_break(b);
    bar_unlock(b);
    return 0;
}

int mp_barrier_reset(mp_barrier_t *b)
{
    if (!obj_ok(b, K_BARRIER))
        return -EINVAL;
    bar_lock(b);
    bar_purge(b);
    if (b->count > 0) {
        /* As Python: the waiters leave with MP_EBROKEN; the last one out
         * opens the barrier again; arrivals wait until then. */
        if (b->state == B_FILLING || b->state == B_BROKEN)
            b->state = B_RESETTING;
    } else {
        b->state = B_FILLING;
    }
    bar_changed(b);
    bar_unlock(b);
    return 0;
}

int mp_barrier_parties(mp_barrier_t *b)
{
    return obj_ok(b, K_BARRIER) ? b->parties : -EINVAL;
}

int mp_barrier_n_waiting(mp_barrier_t *b)
{
    if (!obj_ok(b, K_BARRIER))
        return -EINVAL;
    bar_lock(b);
    int n = b->state == B_FILLING ? b->count : 0;
    bar_unlock(b);
    return n;
}

int mp_barrier_broken(mp_barrier_t *b)
{
    return obj_ok(b, K_BARRIER) ? b->state == B_BROKEN : -EINVAL;
}

void mp_barrier_free(mp_barrier_t *b) { obj_free(b, K_BARRIER); }

/* queue.c: Queue, JoinableQueue and SimpleQueue in the shared arena.
 *
 * A queue is a chain of chunks (64 KiB arena blocks) holding records packed
 * one after another; the consumer side reads at head->rpos, the producer side
 * writes at tail->wpos, and a chunk that was read to its end is kept as the
 * queue's spare (or given back) once the chain moved past it. The chain
 * grows with the queue, so an unbounded queue is bounded by memory only.
 *
 * A record is {len, big}: a small message (up to INLINE_MAX bytes) follows
 * its record in the chunk, copied in and out under the queue's lock; a large
 * one lives in a block of its own ("big"), copied in by the producer and out
 * by the consumer without the lock held, so that megabytes never stop the
 * others and move with one memcpy on each side.
 *
 * Crash safety. The lock is a robust futex word: if its holder dies, the next
 * locker is told and repairs the queue before going on. Repair is possible
 * because every change to the queue's shape is written first as a journal
 * (the complete new values of head, tail, spare, the read and write offsets,
 * the counts, a big block entering or leaving the in-flight list), then
 * marked valid with one store, then applied; applying is idempotent, so the
 * repairer applies a valid journal again and the queue is exactly "before"
 * or exactly "after". A small message's bytes are written past the tail's
 * wpos before the journal, so a producer killed in the middle of them leaves
 * nothing visible. Big blocks being filled by a producer or emptied by a
 * consumer sit on the in-flight list with their thread's id; blocks whose
 * thread died are given back by the next large put or get (at most every
 * SWEEP_NS). What can leak when a process is killed: one chunk, in the few
 * instructions between taking it from the arena and recording it, and one
 * big block a consumer finished copying but had not given back yet.
 *
 * Waiting: consumers wait for "a put or a close" on get_seq, producers of a
 * bounded queue for "a get or a close" on put_seq, joiners on join_seq. A
 * waiter registers under the lock (waiters), so that the other side bumps the
 * sequence word only when somebody waits, spins briefly on the word when
 * more than one CPU can run us, and then sleeps on it (sleepers, so that the
 * waker enters the kernel only when somebody sleeps).
 *
 * Lock order: the queue's lock, then the arena's (a leaf). MT-safe: yes.
 * Fork-safe: yes (no process-local state). */
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "arena.h"
#include "internal.h"

#define Q_MAGIC 0x6d707175u /* "mpqu" */
enum { K_QUEUE = 1, K_JOINABLE, K_SIMPLE };

/* 64 KiB arena blocks: the arena puts a 16-byte header in front. */
#define CHUNK_ALLOC ((size_t)(64 << 10) - 16)
#define INLINE_MAX ((size_t)8192)
#define SWEEP_NS 100000000LL
#define SPIN 200

typedef struct big {
    struct big *next; /* the in-flight list */
    int32_t tid, pid; /* the thread filling or emptying it */
    uint64_t len;
    unsigned char data[];
} big_t;

typedef struct {
    uint64_t len;
    big_t *big; /* NULL: the bytes follow, padded to 16 */
} rec_t;

typedef struct chunk {
    struct chunk *next;
    uint32_t cap; /* bytes of data[] */
    uint32_t wpos, rpos;
    uint32_t pad[3];
    unsigned char data[];
} chunk_t;

#define REC_SIZE(len) (sizeof(rec_t) + (((len) + 15) & ~(size_t)15))

/* The journal: the complete shape after the change under way. */
typedef struct {
    uint32_t valid;
    uint32_t pad;
    chunk_t *head, *tail, *spare;
    chunk_t *link_from; /* non-NULL: link_from->next = tail */
    uint32_t rpos, wpos; /* head->rpos, tail->wpos */
    uint64_t count, unfinished;
    big_t *push, *pop; /* enters / leaves the in-flight list */
} journal_t;

struct mp_queue {
    uint32_t magic, kind;
    int32_t creator;
    uint32_t pad;
    mp__robust_t lock;
    chunk_t *head, *tail, *spare;
    big_t *inflight;
    _Atomic uint64_t count;
    _Atomic uint64_t unfinished;
    uint64_t maxsize, max_msg;
    _Atomic uint32_t closed;
    _Atomic uint32_t get_seq, get_waiters, get_sleepers;
    _Atomic uint32_t put_seq, put_waiters, put_sleepers;
    _Atomic uint32_t join_seq, join_sleepers;
    int64_t last_sweep;
    uint64_t recoveries;
    journal_t j;
};

/* ---- handles, lock, journal ------------------------------------------------ */

static inline int q_ok(const mp_queue_t *q)
{
    return q && q->magic == Q_MAGIC;
}

static int multi_cpu = -1;

static int spin_until(const _Atomic uint32_t *w, uint32_t v)
{
    if (multi_cpu < 0)
        multi_cpu = mp_cpu_count() > 1;
    if (!multi_cpu)
        return 0;
    for (int i = 0; i < SPIN; i++) {
        if (atomic_load_explicit(w, memory_order_acquire) != v)
            return 1;
        mp__cpu_relax();
    }
    return 0;
}

static int on_list(const mp_queue_t *q, const big_t *b)
{
    for (const big_t *p = q->inflight; p; p = p->next)
        if (p == b)
            return 1;
    return 0;
}

/* unlist takes b off the in-flight list with one store. */
static void unlist(mp_queue_t *q, big_t *b)
{
    big_t **pp = &q->inflight;
    while (*pp && *pp != b)
        pp = &(*pp)->next;
    if (*pp)
        __atomic_store_n(pp, b->next, __ATOMIC_RELEASE);
}

static void list(mp_queue_t *q, big_t *b)
{
    b->next = q->inflight;
    __atomic_store_n(&q->inflight, b, __ATOMIC_RELEASE);
}

/* apply makes the queue's shape what the valid journal says; running it
 * again (after its runner died half-way) changes nothing more. */
static void apply(mp_queue_t *q)
{
    journal_t *j = &q->j;
    if (j->link_from)
        j->link_from->next = j->tail;
    q->head = j->head;
    q->tail = j->tail;
    q->spare = j->spare;
    j->head->rpos = j->rpos;
    j->tail->wpos = j->wpos;
    atomic_store_explicit(&q->count, j->count, memory_order_relaxed);
    atomic_store_explicit(&q->unfinished, j->unfinished, memory_order_relaxed);
    if (j->push && !on_list(q, j->push))
        list(q, j->push);
    if (j->pop)
        unlist(q, j->pop);
    __atomic_store_n(&j->valid, 0, __ATOMIC_RELEASE);
}

/* begin fills the journal with the current shape; the caller edits it and
 * calls commit. */
static journal_t *begin(mp_queue_t *q)
{
    journal_t *j = &q->j;
    j->head = q->head;
    j->tail = q->tail;
    j->spare = q->spare;
    j->link_from = NULL;
    j->rpos = q->head->rpos;
    j->wpos = q->tail->wpos;
    j->count = atomic_load_explicit(&q->count, memory_order_relaxed);
    j->unfinished = atomic_load_explicit(&q->unfinished, memory_order_relaxed);
    j->push = j->pop = NULL;
    return j;
}

static void commit(mp_queue_t *q)
{
    __atomic_store_n(&q->j.valid, 1, __ATOMIC_RELEASE);
    apply(q);
}

/* qlock takes the queue's lock, repairing the queue if its last holder died.
 * A holder keeps the lock for a bounded time (no waiting under it), so the
 * deadline only guards against a holder stopped for good; it gets a second
 * of grace so that a "nowait" call does not fail for mere contention. */
static int qlock(mp_queue_t *q, mp__deadline_t d)
{
    mp__deadline_t ld = d == MP__NEVER ? MP__NEVER : d + 1000000000LL;
    int r;
    do
        r = mp__robust_lock(&q->lock, ld);
    while (r == -EINTR);
    if (r == -EOWNERDEAD) {
        if (__atomic_load_n(&q->j.valid, __ATOMIC_ACQUIRE))
            apply(q);
        q->recoveries++;
        r = 0;
    }
    return r;
}

static void qunlock(mp_queue_t *q) { mp__robust_unlock(&q->lock); }

/* wait_for is called with the lock held when the caller must wait for the
 * other side (a bump of *seq); returns with the lock held again: 0 (look
 * again), -ETIMEDOUT, or a lock error (lock not held then). */
static int wait_for(mp_queue_t *q, _Atomic uint32_t *seq, _Atomic uint32_t *waiters,
                    _Atomic uint32_t *sleepers, mp__deadline_t d)
{
    uint32_t s = atomic_load(seq);
    atomic_fetch_add(waiters, 1);
    qunlock(q);
    int r = 0;
    if (!spin_until(seq, s)) {
        atomic_fetch_add(sleepers, 1);
        r = mp__futex_wait((const uint32_t *)seq, s, d);
        atomic_fetch_sub(sleepers, 1);
        if (r == -EINTR)
            r = 0;
    }
    int lr = qlock(q, d == MP__NEVER ? MP__NEVER : mp__now_ns());
    if (lr < 0) {
        atomic_fetch_sub(waiters, 1);
        return lr;
    }
    atomic_fetch_sub(waiters, 1);
    return r;
}

/* signal bumps *seq if anyone waits (lock held); the caller wakes after
 * unlocking if it returns 1. */
static int signal_side(_Atomic uint32_t *seq, _Atomic uint32_t *waiters)
{
    if (!atomic_load_explicit(waiters, memory_order_relaxed))
        return 0;
    atomic_fetch_add(seq, 1);
    return 1;
}

static void wake(_Atomic uint32_t *seq, _Atomic uint32_t *sleepers, int n)
{
    if (atomic_load(sleepers))
        mp__futex_wake((const uint32_t *)seq, n);
}

/* sweep gives back the big blocks of threads that died while filling or
 * emptying them (lock held; at most every SWEEP_NS per queue). */
static void sweep(mp_queue_t *q)
{
    int64_t now = mp__now_ns();
    if (now - q->last_sweep < SWEEP_NS)
        return;
    q->last_sweep = now;
    pid_t me = getpid();
    big_t *b = q->inflight;
    while (b) {
        big_t *next = b->next;
        int dead = b->pid == me ? (syscall(SYS_tgkill, me, b->tid, 0) < 0 && errno == ESRCH)
                                : !mp__tid_alive(b->tid);
        if (dead) {
            unlist(q, b);
            mp__arena_free(b);
        }
        b = next;
    }
}

/* ---- making and freeing ------------------------------------------------------- */

static chunk_t *chunk_new(void)
{
    chunk_t *c = mp__arena_alloc_raw(CHUNK_ALLOC);
    if (!c)
        return NULL;
    c->next = NULL;
    c->cap = (uint32_t)(CHUNK_ALLOC - sizeof(chunk_t));
    c->wpos = c->rpos = 0;
    return c;
}

static int q_new(mp_queue_t **out, const mp_queue_opts_t *opts, uint32_t kind)
{
    if (!out)
        return -EINVAL;
    mp_queue_t *q = mp__arena_alloc(sizeof *q);
    if (!q)
        return -ENOMEM;
    chunk_t *c = chunk_new();
    if (!c) {
        mp__arena_free(q);
        return -ENOMEM;
    }
    q->head = q->tail = c;
    if (opts) {
        q->maxsize = opts->maxsize;
        q->max_msg = opts->max_msg;
    }
    q->kind = kind;
    q->creator = getpid();
    __atomic_store_n(&q->magic, Q_MAGIC, __ATOMIC_RELEASE);
    *out = q;
    return 0;
}

int mp_queue_new(mp_queue_t **out, const mp_queue_opts_t *opts)
{
    return q_new(out, opts, K_QUEUE);
}

int mp_joinablequeue_new(mp_queue_t **out, const mp_queue_opts_t *opts)
{
    return q_new(out, opts, K_JOINABLE);
}

int mp_simplequeue_new(mp_simplequeue_t **out, const mp_queue_opts_t *opts)
{
    if (opts && opts->maxsize)
        return -EINVAL;
    return q_new(out, opts, K_SIMPLE);
}

void mp_queue_free(mp_queue_t *q)
{
    if (!q_ok(q) || !mp__arena_contains(q) || q->creator != getpid())
        return;
    if (qlock(q, MP__NEVER) < 0)
        return;
    q->magic = 0;
    for (chunk_t *c = q->head, *next; c; c = next) {
        next = c->next;
        for (uint32_t at = c->rpos; at < c->wpos;) {
            rec_t *r = (rec_t *)(c->data + at);
            mp__arena_free(r->big);
            at += (uint32_t)(r->big ? sizeof(rec_t) : REC_SIZE(r->len));
        }
        mp__arena_free(c);
    }
    for (big_t *b = q->inflight, *next; b; b = next) {
        next = b->next;
        mp__arena_free(b);
    }
    mp__arena_free(q->spare);
    qunlock(q);
    mp__arena_free(q);
}

void mp_simplequeue_free(mp_simplequeue_t *q) { mp_queue_free(q); }

/* ---- put ------------------------------------------------------------------------ */

/* append adds a record for buf[0..len) (or for big) at the tail; lock held.
 * Returns 0 or -ENOMEM (nothing changed). */
static int append(mp_queue_t *q, const void *buf, size_t len, big_t *big)
{
    size_t need = big ? sizeof(rec_t) : REC_SIZE(len);
    chunk_t *t = q->tail, *c = t;
    uint32_t at = t->wpos;
    if (t->cap - t->wpos < need) {
        if (!q->spare) {
            chunk_t *n = chunk_new();
            if (!n)
                return -ENOMEM;
            __atomic_store_n(&q->spare, n, __ATOMIC_RELEASE);
        }
        c = q->spare;
        c->next = NULL;
        c->wpos = c->rpos = 0;
        at = 0;
    }
    rec_t *r = (rec_t *)(c->data + at);
    r->len = len;
    r->big = big;
    if (!big && len)
        memcpy(r + 1, buf, len);
    journal_t *j = begin(q);
    if (c != t) {
        j->link_from = t;
        j->tail = c;
        j->spare = NULL;
    }
    j->wpos = at + (uint32_t)need;
    j->count++;
    if (q->kind == K_JOINABLE)
        j->unfinished++;
    j->pop = big;
    commit(q);
    return 0;
}

/* room waits (lock held) until the queue is open and has room. Returns 0
 * with the lock held, MP_ECLOSED / MP_EFULL with the lock held, or a lock
 * error without it. */
static int room(mp_queue_t *q, mp__deadline_t d)
{
    for (;;) {
        if (atomic_load(&q->closed))
            return MP_ECLOSED;
        if (!q->maxsize || atomic_load_explicit(&q->count, memory_order_relaxed) < q->maxsize)
            return 0;
        if (d != MP__NEVER && mp__now_ns() >= d)
            return MP_EFULL;
        int r = wait_for(q, &q->put_seq, &q->put_waiters, &q->put_sleepers, d);
        if (r == -ETIMEDOUT)
            continue; /* one last look, then MP_EFULL */
        if (r < 0)
            return r;
    }
}

static int put_big(mp_queue_t *q, const void *buf, size_t len, mp__deadline_t d)
{
    big_t *b = mp__arena_alloc_raw(sizeof(big_t) + len);
    if (!b)
        return -ENOMEM;
    b->len = len;
    b->tid = mp__gettid();
    b->pid = getpid();
    int r = qlock(q, d);
    if (r < 0) {
        mp__arena_free(b);
        return r;
    }
    if (atomic_load(&q->closed)) {
        qunlock(q);
        mp__arena_free(b);
        return MP_ECLOSED;
    }
    sweep(q);
    list(q, b); /* ours until it is queued: given back if we die */
    qunlock(q);

    memcpy(b->data, buf, len);

    r = qlock(q, d);
    if (r < 0)
        return r; /* b stays listed: the sweep gives it back */
    r = room(q, d);
    if (r == 0)
        r = append(q, NULL, len, b);
    if (r < 0) {
        if (!mp__robust_owned(&q->lock))
            return r; /* lock lost: b is given back when the queue is freed */
        unlist(q, b);
        qunlock(q);
        mp__arena_free(b);
        return r;
    }
    int w = signal_side(&q->get_seq, &q->get_waiters);
    qunlock(q);
    if (w)
        wake(&q->get_seq, &q->get_sleepers, 1);
    return 0;
}

int mp_queue_put(mp_queue_t *q, const void *buf, size_t len, double timeout)
{
    mp__deadline_t d = MP__NEVER;
    if (!q_ok(q) || (!buf && len) || mp__deadline(timeout, &d) < 0)
        return -EINVAL;
    if (q->max_msg && len > q->max_msg)
        return -EMSGSIZE;
    if (len > INLINE_MAX)
        return put_big(q, buf, len, d);
    int r = qlock(q, d);
    if (r < 0)
        return r;
    r = room(q, d);
    if (r == 0)
        r = append(q, buf, len, NULL);
    int w = r == 0 && signal_side(&q->get_seq, &q->get_waiters);
    qunlock(q);
    if (w)
        wake(&q->get_seq, &q->get_sleepers, 1);
    return r;
}

int mp_queue_put_nowait(mp_queue_t *q, const void *buf, size_t len)
{
    return mp_queue_put(q, buf, len, 0);
}

/* ---- get ------------------------------------------------------------------------ */

/* first waits (lock held) for a message and returns its record: NULL with
 * *err MP_EEOF, MP_EEMPTY or a lock error (lock not held then). */
static rec_t *first(mp_queue_t *q, mp__deadline_t d, int *err)
{
    for (;;) {
        chunk_t *h = q->head;
        if (h->rpos == h->wpos && h->next) {
            /* h is read to its end: the chain moves past it. */
            journal_t *j = begin(q);
            chunk_t *give = q->spare ? h : NULL;
            j->head = h->next;
            j->rpos = h->next->rpos;
            if (!q->spare)
                j->spare = h;
            commit(q);
            mp__arena_free(give);
            continue;
        }
        if (h->rpos < h->wpos)
            return (rec_t *)(h->data + h->rpos);
        if (atomic_load(&q->closed)) {
            *err = MP_EEOF;
            return NULL;
        }
        if (d != MP__NEVER && mp__now_ns() >= d) {
            *err = MP_EEMPTY;
            return NULL;
        }
        int r = wait_for(q, &q->get_seq, &q->get_waiters, &q->get_sleepers, d);
        if (r < 0 && r != -ETIMEDOUT) {
            *err = r;
            return NULL;
        }
    }
}

/* take removes the first record r (lock held, r small or big). For a big
 * one, the block moves to the in-flight list in the same step, marked as the
 * caller's. */
static void take(mp_queue_t *q, rec_t *r)
{
    journal_t *j = begin(q);
    j->rpos += (uint32_t)(r->big ? sizeof(rec_t) : REC_SIZE(r->len));
    j->count--;
    if (r->big) {
        r->big->tid = mp__gettid();
        r->big->pid = getpid();
        j->push = r->big;
    }
    commit(q);
}

/* get_common: to != NULL copies into to[0..cap); else mallocs into *out. */
static int get_common(mp_queue_t *q, void *to, size_t cap, void **out, size_t *len,
                      double timeout)
{
    mp__deadline_t d = MP__NEVER;
    if (!q_ok(q) || !len || mp__deadline(timeout, &d) < 0)
        return -EINVAL;
    int err = qlock(q, d);
    if (err < 0)
        return err;
    rec_t *r = first(q, d, &err);
    if (!r) {
        if (err != MP_EEOF && err != MP_EEMPTY)
            return err; /* lock lost */
        qunlock(q);
        return err;
    }
    size_t n = r->len;
    *len = n;
    void *dst = to;
    if (out) {
        dst = malloc(n ? n : 1);
        if (!dst) {
            qunlock(q);
            return -ENOMEM;
        }
    } else if (cap < n) {
        qunlock(q);
        return MP_ETOOSHORT;
    }
    big_t *b = r->big;
    if (!b && n)
        memcpy(dst, r + 1, n);
    take(q, r);
    int w = q->maxsize && signal_side(&q->put_seq, &q->put_waiters);
    qunlock(q);
    if (w)
        wake(&q->put_seq, &q->put_sleepers, 1);
    if (b) {
        memcpy(dst, b->data, n);
        if (qlock(q, MP__NEVER) == 0) {
            unlist(q, b);
            qunlock(q);
            mp__arena_free(b);
        }
    }
    if (out)
        *out = dst;
    return 0;
}

int mp_queue_get(mp_queue_t *q, void *buf, size_t cap, size_t *len, double timeout)
{
    if (!buf && cap)
        return -EINVAL;
    return get_common(q, buf ? buf : (void *)"", buf ? cap : 0, NULL, len, timeout);
}

int mp_queue_get_alloc(mp_queue_t *q, void **out, size_t *len, double timeout)
{
    if (!out)
        return -EINVAL;
    return get_common(q, NULL, 0, out, len, timeout);
}

int mp_queue_get_nowait(mp_queue_t *q, void *buf, size_t cap, size_t *len)
{
    return mp_queue_get(q, buf, cap, len, 0);
}

/* ---- state ------------------------------------------------------------------------ */

long mp_queue_qsize(mp_queue_t *q)
{
    if (!q_ok(q))
        return -EINVAL;
    return (long)atomic_load(&q->count);
}

int mp_queue_empty(mp_queue_t *q)
{
    if (!q_ok(q))
        return -EINVAL;
    return atomic_load(&q->count) == 0;
}

int mp_queue_full(mp_queue_t *q)
{
    if (!q_ok(q))
        return -EINVAL;
    return q->maxsize && atomic_load(&q->count) >= q->maxsize;
}

int mp_queue_close(mp_queue_t *q)
{
    if (!q_ok(q))
        return -EINVAL;
    int r = qlock(q, MP__NEVER);
    if (r < 0)
        return r;
    atomic_store(&q->closed, 1);
    atomic_fetch_add(&q->get_seq, 1);
    atomic_fetch_add(&q->put_seq, 1);
    qunlock(q);
    mp__futex_wake((const uint32_t *)&q->get_seq, INT32_MAX);
    mp__futex_wake((const uint32_t *)&q->put_seq, INT32_MAX);
    return 0;
}

int mp_queue_closed(mp_queue_t *q)
{
    if (!q_ok(q))
        return -EINVAL;
    return (int)atomic_load(&q->closed);
}

/* ---- JoinableQueue -------------------------------------------------------------------- */

int mp_queue_task_done(mp_queue_t *q)
{
    if (!q_ok(q) || q->kind != K_JOINABLE)
        return -EINVAL;
    int r = qlock(q, MP__NEVER);
    if (r < 0)
        return r;
    uint64_t u = atomic_load(&q->unfinished);
    if (u == 0) {
        qunlock(q);
        return -EOVERFLOW;
    }
    atomic_store(&q->unfinished, u - 1);
    if (u == 1)
        atomic_fetch_add(&q->join_seq, 1);
    qunlock(q);
    if (u == 1)
        wake(&q->join_seq, &q->join_sleepers, INT32_MAX);
    return 0;
}

int mp_queue_join(mp_queue_t *q, double timeout)
{
    mp__deadline_t d;
    if (!q_ok(q) || q->kind != K_JOINABLE || mp__deadline(timeout, &d) < 0)
        return -EINVAL;
    for (;;) {
        uint32_t s = atomic_load(&q->join_seq);
        if (atomic_load(&q->unfinished) == 0)
            return 0;
        atomic_fetch_add(&q->join_sleepers, 1);
        int r = mp__futex_wait((const uint32_t *)&q->join_seq, s, d);
        atomic_fetch_sub(&q->join_sleepers, 1);
        if (r == -ETIMEDOUT)
            return atomic_load(&q->unfinished) == 0 ? 0 : -ETIMEDOUT;
    }
}

/* ---- SimpleQueue ------------------------------------------------------------------------ */

int mp_simplequeue_put(mp_simplequeue_t *q, const void *buf, size_t len)
{
    return mp_queue_put(q, buf, len, MP_FOREVER);
}

int mp_simplequeue_get(mp_simplequeue_t *q, void *buf, size_t cap, size_t *len)
{
    return mp_queue_get(q, buf, cap, len, MP_FOREVER);
}

int mp_simplequeue_get_alloc(mp_simplequeue_t *q, void **out, size_t *len)
{
    return mp_queue_get_alloc(q, out, len, MP_FOREVER);
}

int mp_simplequeue_empty(mp_simplequeue_t *q) { return mp_queue_empty(q); }

int mp_simplequeue_close(mp_simplequeue_t *q) { return mp_queue_close(q); }

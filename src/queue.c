/* queue.c: Queue, JoinableQueue and SimpleQueue in the shared arena.
 *
 * A queue is a chain of chunks (64 KiB arena blocks) holding records packed
 * one after another. Producers append at the tail under the producers' lock;
 * consumers read at the head under the consumers' lock (the two-lock queue of
 * Michael and Scott): one producer and one consumer never wait for each
 * other, and each side's state sits in cache lines of its own. A record
 * becomes visible to consumers when the producer stores the chunk's write
 * offset (or links the next chunk); the consumer frees a chunk once it read
 * it to its end and the producer has moved to a later one. The chain grows
 * with the queue, so an unbounded queue is bounded by memory only.
 *
 * A record is {len, big}: a small message (up to INLINE_MAX bytes) follows its
 * record in the chunk, copied in and out under its side's lock; a large one
 * lives in a block of its own ("big"), copied in by the producer and out by
 * the consumer without any lock held, so that megabytes never stop the others
 * and move with one memcpy on each side.
 *
 * Counting: put_total (producers) and get_total (consumers) only grow;
 * qsize is their difference, done_total counts task_done calls.
 *
 * Crash safety. Both locks are robust futex words: if a holder dies, the next
 * locker of that side is told and repairs the side before going on. Repair is
 * possible because every change of a side is written first as that side's
 * journal (the complete new values: tail and write offset, or head and read
 * offset, the side's total, a big block leaving or entering the side's
 * in-flight list), marked valid with one store, then applied; applying is
 * idempotent, so the repairer applies a valid journal again and the side is
 * exactly "before" or exactly "after". A small message's bytes are written
 * past the write offset before the journal, so a producer killed in the
 * middle of them leaves nothing visible. Big blocks being filled by a
 * producer or emptied by a consumer sit on the side's in-flight list with the
 * thread's id; the blocks of a thread that died are given back by that side's
 * next large operation (at most every SWEEP_NS). What a kill can leak: a
 * chunk taken from the arena but not yet journaled, a chunk read to its end
 * but not yet given back, and a big block a consumer finished copying but had
 * not given back yet.
 *
 * Waiting: consumers wait for "a put or a close" on gw.seq, producers of a
 * bounded queue for "a get or a close" on pw.seq, joiners on join_seq. A
 * waiter counts itself in the side's waiters, reads the sequence word, looks
 * once more, spins briefly when more than one CPU can run us, then sleeps
 * (counted in sleepers). The other side publishes its change, fences, and
 * bumps the word only when somebody waits, entering the kernel only when
 * somebody sleeps: either the waiter sees the change or the waker sees the
 * waiter.
 *
 * Lock order: a side's lock, then the arena's (a leaf); close takes the
 * producers' lock alone. MT-safe: yes. Fork-safe: yes (no process-local
 * state). */
#include <errno.h>
#include <sched.h>
#include <stdalign.h>
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
#define LINE 64

typedef struct big {
    struct big *next; /* the side's in-flight list */
    int32_t tid, pid; /* the thread filling or emptying it */
    uint64_t len;
    unsigned char data[];
} big_t;

typedef struct {
    uint64_t len;
    big_t *big; /* NULL: the bytes follow, padded to 16 */
} rec_t;

/* Written by producers only. 48 bytes, so that data[] starts a cache line
 * (arena blocks of this size start 16 bytes past a page). */
typedef struct chunk {
    struct chunk *_Atomic next;
    _Atomic uint32_t wpos; /* records end here */
    uint32_t cap;          /* bytes of data[] */
    uint64_t pad[4];
    unsigned char data[];
} chunk_t;

#define REC_SIZE(len) (sizeof(rec_t) + (((len) + 15) & ~(size_t)15))

typedef struct {
    uint32_t valid;
    uint32_t wpos;
    chunk_t *tail;
    chunk_t *link_from; /* non-NULL: link_from->next = tail */
    uint64_t total;
    big_t *pop; /* leaves the producers' in-flight list */
} pjournal_t;

typedef struct {
    uint32_t valid;
    uint32_t rpos;
    uint32_t known;
    chunk_t *head;
    uint64_t total;
    big_t *push; /* enters the consumers' in-flight list */
} cjournal_t;

typedef struct {
    mp__robust_t lock;
    big_t *inflight;
    int64_t last_sweep;
    uint64_t recoveries;
} side_t;

struct mp_queue {
    /* read-mostly */
    uint32_t magic, kind;
    int32_t creator;
    _Atomic uint32_t closed;
    uint64_t maxsize, max_msg;
    void *base; /* the arena block this is in */

    /* producers; the totals, read by the other side, on lines of their own */
    alignas(LINE) side_t p;
    chunk_t *tail;
    pjournal_t pj;
    alignas(LINE) _Atomic uint64_t put_total;

    /* consumers */
    alignas(LINE) side_t c;
    chunk_t *head;
    uint32_t rpos;
    uint32_t known; /* head->wpos as last read: records below it need no look */
    cjournal_t cj;
    alignas(LINE) _Atomic uint64_t get_total;

    /* One line for each kind of wait: seq, waiters, sleepers. */
    alignas(LINE) struct {
        _Atomic uint32_t seq, waiters, sleepers;
    } gw, pw;
    alignas(LINE) _Atomic uint64_t done_total;
    _Atomic uint32_t join_seq, join_sleepers;
};

/* ---- handles, locks, journals --------------------------------------------- */

static inline int q_ok(const mp_queue_t *q)
{
    return q && q->magic == Q_MAGIC;
}

static int multi_cpu = -1;

static int many_cpus(void)
{
    if (multi_cpu < 0)
        multi_cpu = mp_cpu_count() > 1;
    return multi_cpu;
}

/* spin_until gives the other side a moment to answer before the caller
 * sleeps: with more than one CPU, by spinning a little; then, by yielding
 * the CPU once, so that a producer sharing our CPU fills the queue for a
 * whole time slice instead of waking the consumer for every message (the
 * scheduler may put both on one CPU even when more are allowed). Returns 1
 * if *w moved off v. */
static int spin_until(const _Atomic uint32_t *w, uint32_t v)
{
    for (int i = 0; many_cpus() && i < SPIN; i++) {
        if (atomic_load_explicit(w, memory_order_acquire) != v)
            return 1;
        mp__cpu_relax();
    }
    sched_yield();
    return atomic_load_explicit(w, memory_order_acquire) != v;
}

static int on_list(const side_t *s, const big_t *b)
{
    for (const big_t *p = s->inflight; p; p = p->next)
        if (p == b)
            return 1;
    return 0;
}

/* unlist takes b off the side's in-flight list with one store. */
static void unlist(side_t *s, big_t *b)
{
    big_t **pp = &s->inflight;
    while (*pp && *pp != b)
        pp = &(*pp)->next;
    if (*pp)
        __atomic_store_n(pp, b->next, __ATOMIC_RELEASE);
}

static void enlist(side_t *s, big_t *b)
{
    b->next = s->inflight;
    __atomic_store_n(&s->inflight, b, __ATOMIC_RELEASE);
}

/* The appliers make a side's shape what its valid journal says; running one
 * again (after its runner died half-way) changes nothing more. put_total goes
 * first, so that it never lags what consumers can see. */
static void apply_p(mp_queue_t *q)
{
    pjournal_t *j = &q->pj;
    /* A published big block may be taken and freed by a consumer at once:
     * it must have left our in-flight list before. */
    if (j->pop)
        unlist(&q->p, j->pop);
    atomic_store_explicit(&q->put_total, j->total, memory_order_relaxed);
    atomic_store_explicit(&j->tail->wpos, j->wpos, memory_order_release);
    if (j->link_from)
        atomic_store_explicit(&j->link_from->next, j->tail, memory_order_release);
    q->tail = j->tail;
    __atomic_store_n(&j->valid, 0, __ATOMIC_RELEASE);
}

static void apply_c(mp_queue_t *q)
{
    cjournal_t *j = &q->cj;
    q->head = j->head;
    q->rpos = j->rpos;
    q->known = j->known;
    atomic_store_explicit(&q->get_total, j->total, memory_order_relaxed);
    if (j->push && !on_list(&q->c, j->push))
        enlist(&q->c, j->push);
    __atomic_store_n(&j->valid, 0, __ATOMIC_RELEASE);
}

/* lock_side takes a side's lock, repairing the side if its last holder died.
 * A holder keeps the lock for a bounded time (no waiting under it), so the
 * deadline only guards against a holder stopped for good; it gets a second
 * of grace so that a "nowait" call does not fail for mere contention. */
static int lock_side(mp_queue_t *q, side_t *s, mp__deadline_t d)
{
    mp__deadline_t ld = d == MP__NEVER ? MP__NEVER : d + 1000000000LL;
    int r;
    do
        r = mp__robust_lock(&s->lock, ld);
    while (r == -EINTR);
    if (r == -EOWNERDEAD) {
        if (s == &q->p && __atomic_load_n(&q->pj.valid, __ATOMIC_ACQUIRE))
            apply_p(q);
        if (s == &q->c && __atomic_load_n(&q->cj.valid, __ATOMIC_ACQUIRE))
            apply_c(q);
        s->recoveries++;
        r = 0;
    }
    return r;
}

static void unlock_side(side_t *s) { mp__robust_unlock(&s->lock); }

/* wait_on: the caller (holding s's lock, which it gives up meanwhile) waits
 * until ready(q) or a bump of *seq, at most until d. Returns with the lock
 * held: 0 (look again), -ETIMEDOUT; or a lock error without it. */
static int wait_on(mp_queue_t *q, side_t *s, _Atomic uint32_t *seq, _Atomic uint32_t *waiters,
                   _Atomic uint32_t *sleepers, int (*ready)(mp_queue_t *),
                   int (*hint)(const mp_queue_t *), mp__deadline_t d)
{
    /* First, with a second CPU, watch the counts without telling anybody:
     * registering makes the other side bump and us reread a shared line for
     * every message, which costs more than the message when the two sides
     * keep pace. The lock is given up meanwhile. */
    if (many_cpus()) {
        unlock_side(s);
        for (int i = 0; i < SPIN && !hint(q); i++)
            mp__cpu_relax();
        int lr = lock_side(q, s, d == MP__NEVER ? MP__NEVER : mp__now_ns());
        if (lr < 0)
            return lr;
        if (ready(q))
            return 0;
    }
    atomic_fetch_add(waiters, 1);
    atomic_thread_fence(memory_order_seq_cst); /* pairs with signal_side's */
    uint32_t v = atomic_load(seq);
    int r = 0;
    if (!ready(q)) {
        unlock_side(s);
        if (!spin_until(seq, v)) {
            atomic_fetch_add(sleepers, 1);
            r = mp__futex_wait((const uint32_t *)seq, v, d);
            atomic_fetch_sub(sleepers, 1);
            if (r == -EINTR)
                r = 0;
        }
        int lr = lock_side(q, s, d == MP__NEVER ? MP__NEVER : mp__now_ns());
        if (lr < 0)
            r = lr;
    }
    atomic_fetch_sub(waiters, 1);
    return r;
}

/* signal_side, after a change the other side may wait for: bump *seq if
 * anyone waits, and wake one sleeper. */
static void signal_side(_Atomic uint32_t *seq, _Atomic uint32_t *waiters,
                        _Atomic uint32_t *sleepers, int n)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (!atomic_load_explicit(waiters, memory_order_relaxed))
        return;
    atomic_fetch_add(seq, 1);
    if (atomic_load(sleepers))
        mp__futex_wake((const uint32_t *)seq, n);
}

/* sweep gives back the big blocks of threads that died while filling or
 * emptying them (side lock held; at most every SWEEP_NS). */
static void sweep(side_t *s)
{
    int64_t now = mp__now_ns();
    if (now - s->last_sweep < SWEEP_NS)
        return;
    s->last_sweep = now;
    pid_t me = getpid();
    big_t *b = s->inflight;
    while (b) {
        big_t *next = b->next;
        int dead = b->pid == me ? (syscall(SYS_tgkill, me, b->tid, 0) < 0 && errno == ESRCH)
                                : !mp__tid_alive(b->tid);
        if (dead) {
            unlist(s, b);
            mp__arena_free(b);
        }
        b = next;
    }
}

static uint64_t queued(const mp_queue_t *q)
{
    uint64_t g = atomic_load(&q->get_total), p = atomic_load(&q->put_total);
    return p > g ? p - g : 0;
}

/* ---- making and freeing ------------------------------------------------------- */

static chunk_t *chunk_new(void)
{
    chunk_t *c = mp__arena_alloc_raw(CHUNK_ALLOC);
    if (!c)
        return NULL;
    atomic_store_explicit(&c->next, NULL, memory_order_relaxed);
    atomic_store_explicit(&c->wpos, 0, memory_order_relaxed);
    c->cap = (uint32_t)(CHUNK_ALLOC - sizeof(chunk_t));
    return c;
}

static int q_new(mp_queue_t **out, const mp_queue_opts_t *opts, uint32_t kind)
{
    if (!out)
        return -EINVAL;
    void *base = mp__arena_alloc(sizeof(mp_queue_t) + LINE);
    if (!base)
        return -ENOMEM;
    mp_queue_t *q = (mp_queue_t *)(((uintptr_t)base + LINE - 1) & ~(uintptr_t)(LINE - 1));
    chunk_t *c = chunk_new();
    if (!c) {
        mp__arena_free(base);
        return -ENOMEM;
    }
    q->base = base;
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

static void free_list(big_t *b)
{
    while (b) {
        big_t *next = b->next;
        mp__arena_free(b);
        b = next;
    }
}

void mp_queue_free(mp_queue_t *q)
{
    if (!q_ok(q) || !mp__arena_contains(q) || q->creator != getpid())
        return;
    if (lock_side(q, &q->p, MP__NEVER) < 0)
        return;
    if (lock_side(q, &q->c, MP__NEVER) < 0) {
        unlock_side(&q->p);
        return;
    }
    q->magic = 0;
    uint32_t at = q->rpos;
    for (chunk_t *c = q->head, *next; c; c = next, at = 0) {
        next = atomic_load(&c->next);
        for (uint32_t end = atomic_load(&c->wpos); at < end;) {
            rec_t *r = (rec_t *)(c->data + at);
            mp__arena_free(r->big);
            at += (uint32_t)(r->big ? sizeof(rec_t) : REC_SIZE(r->len));
        }
        mp__arena_free(c);
    }
    free_list(q->p.inflight);
    free_list(q->c.inflight);
    unlock_side(&q->c);
    unlock_side(&q->p);
    mp__arena_free(q->base);
}

void mp_simplequeue_free(mp_simplequeue_t *q) { mp_queue_free(q); }

/* ---- put ------------------------------------------------------------------------ */

/* append adds a record for buf[0..len) (or for big) at the tail; producers'
 * lock held. Returns 0 or -ENOMEM (nothing changed). */
static int append(mp_queue_t *q, const void *buf, size_t len, big_t *big)
{
    size_t need = big ? sizeof(rec_t) : REC_SIZE(len);
    chunk_t *t = q->tail, *c = t;
    uint32_t at = atomic_load_explicit(&t->wpos, memory_order_relaxed);
    if (t->cap - at < need) {
        c = chunk_new(); /* leaked if we die before the journal */
        if (!c)
            return -ENOMEM;
        at = 0;
    }
    rec_t *r = (rec_t *)(c->data + at);
    r->len = len;
    r->big = big;
    if (!big && len)
        memcpy(r + 1, buf, len);
    pjournal_t *j = &q->pj;
    j->tail = c;
    j->link_from = c != t ? t : NULL;
    j->wpos = at + (uint32_t)need;
    j->total = atomic_load_explicit(&q->put_total, memory_order_relaxed) + 1;
    j->pop = big;
    __atomic_store_n(&j->valid, 1, __ATOMIC_RELEASE);
    apply_p(q);
    return 0;
}

static int room_hint(const mp_queue_t *q)
{
    return atomic_load_explicit(&q->closed, memory_order_relaxed) || queued(q) < q->maxsize;
}

static int has_room(mp_queue_t *q)
{
    return atomic_load(&q->closed) || queued(q) < q->maxsize;
}

/* room waits (producers' lock held) until the queue is closed or has room.
 * Returns 0 or MP_ECLOSED / MP_EFULL with the lock held, or a lock error
 * without it. */
static int room(mp_queue_t *q, mp__deadline_t d)
{
    for (;;) {
        if (atomic_load(&q->closed))
            return MP_ECLOSED;
        if (!q->maxsize || queued(q) < q->maxsize)
            return 0;
        if (d != MP__NEVER && mp__now_ns() >= d)
            return MP_EFULL;
        int r = wait_on(q, &q->p, &q->pw.seq, &q->pw.waiters, &q->pw.sleepers, has_room,
                        room_hint, d);
        if (r < 0 && r != -ETIMEDOUT)
            return r; /* the deadline passed: one last look, then MP_EFULL */
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
    int r = lock_side(q, &q->p, d);
    if (r < 0) {
        mp__arena_free(b);
        return r;
    }
    if (atomic_load(&q->closed)) {
        unlock_side(&q->p);
        mp__arena_free(b);
        return MP_ECLOSED;
    }
    sweep(&q->p);
    enlist(&q->p, b); /* ours until queued: given back if we die */
    unlock_side(&q->p);

    memcpy(b->data, buf, len);

    r = lock_side(q, &q->p, d);
    if (r < 0)
        return r; /* b stays listed: given back when the queue is freed */
    r = room(q, d);
    if (r == 0)
        r = append(q, NULL, len, b);
    if (r < 0) {
        if (!mp__robust_owned(&q->p.lock))
            return r;
        unlist(&q->p, b);
        unlock_side(&q->p);
        mp__arena_free(b);
        return r;
    }
    unlock_side(&q->p);
    signal_side(&q->gw.seq, &q->gw.waiters, &q->gw.sleepers, 1);
    return 0;
}

int mp_queue_put(mp_queue_t *q, const void *buf, size_t len, double timeout)
{
    mp__deadline_t d;
    if (!q_ok(q) || (!buf && len) || mp__deadline(timeout, &d) < 0)
        return -EINVAL;
    if (q->max_msg && len > q->max_msg)
        return -EMSGSIZE;
    if (len > INLINE_MAX)
        return put_big(q, buf, len, d);
    int r = lock_side(q, &q->p, d);
    if (r < 0)
        return r;
    r = room(q, d);
    if (r == 0)
        r = append(q, buf, len, NULL);
    unlock_side(&q->p);
    if (r == 0)
        signal_side(&q->gw.seq, &q->gw.waiters, &q->gw.sleepers, 1);
    return r;
}

int mp_queue_put_nowait(mp_queue_t *q, const void *buf, size_t len)
{
    return mp_queue_put(q, buf, len, 0);
}

/* ---- get ------------------------------------------------------------------------ */

/* next_rec returns the first record (consumers' lock held), moving the head
 * past chunks read to their end, or NULL if there is none yet. */
static rec_t *next_rec(mp_queue_t *q)
{
    for (;;) {
        chunk_t *h = q->head;
        if (q->rpos < q->known)
            return (rec_t *)(h->data + q->rpos);
        q->known = atomic_load_explicit(&h->wpos, memory_order_acquire);
        if (q->rpos < q->known)
            return (rec_t *)(h->data + q->rpos);
        chunk_t *n = atomic_load_explicit(&h->next, memory_order_acquire);
        if (!n)
            return NULL;
        /* The producer moved on; h's last records may have landed before. */
        if (q->rpos < atomic_load_explicit(&h->wpos, memory_order_acquire))
            continue;
        cjournal_t *j = &q->cj;
        j->head = n;
        j->rpos = 0;
        j->known = 0;
        j->total = atomic_load_explicit(&q->get_total, memory_order_relaxed);
        j->push = NULL;
        __atomic_store_n(&j->valid, 1, __ATOMIC_RELEASE);
        apply_c(q);
        mp__arena_free(h); /* leaked if we die before */
    }
}

/* rec_hint looks, without the lock, whether the head chunk has a record
 * past the read offset (or a successor): the only producer store it sees is
 * the one that publishes a record. A racy look: head may have moved on (its
 * memory stays mapped), and the caller looks again under the lock. */
static int rec_hint(const mp_queue_t *q)
{
    const chunk_t *h = __atomic_load_n(&q->head, __ATOMIC_RELAXED);
    return atomic_load_explicit(&q->closed, memory_order_relaxed) ||
           __atomic_load_n(&q->rpos, __ATOMIC_RELAXED) <
               atomic_load_explicit(&h->wpos, memory_order_relaxed) ||
           atomic_load_explicit(&h->next, memory_order_relaxed) != NULL;
}

static int has_rec(mp_queue_t *q)
{
    return atomic_load(&q->closed) || next_rec(q) != NULL;
}

/* first waits (consumers' lock held) for a record. Returns it, or NULL with
 * *err MP_EEOF or MP_EEMPTY (lock held), or a lock error (lock not held). */
static rec_t *first(mp_queue_t *q, mp__deadline_t d, int *err)
{
    for (;;) {
        rec_t *r = next_rec(q);
        if (r)
            return r;
        if (atomic_load(&q->closed)) {
            /* close holds the producers' lock: no put lands after it. */
            if ((r = next_rec(q)) != NULL)
                return r;
            *err = MP_EEOF;
            return NULL;
        }
        if (d != MP__NEVER && mp__now_ns() >= d) {
            *err = MP_EEMPTY;
            return NULL;
        }
        int w = wait_on(q, &q->c, &q->gw.seq, &q->gw.waiters, &q->gw.sleepers, has_rec,
                        rec_hint, d);
        if (w < 0 && w != -ETIMEDOUT) {
            *err = w;
            return NULL;
        }
    }
}

/* take removes the first record r (consumers' lock held). A big block moves
 * to the consumers' in-flight list in the same step, marked as the caller's. */
static void take(mp_queue_t *q, rec_t *r)
{
    cjournal_t *j = &q->cj;
    j->head = q->head;
    j->rpos = q->rpos + (uint32_t)(r->big ? sizeof(rec_t) : REC_SIZE(r->len));
    j->known = q->known;
    j->total = atomic_load_explicit(&q->get_total, memory_order_relaxed) + 1;
    j->push = NULL;
    if (r->big) {
        r->big->tid = mp__gettid();
        r->big->pid = getpid();
        j->push = r->big;
    }
    __atomic_store_n(&j->valid, 1, __ATOMIC_RELEASE);
    apply_c(q);
}

/* get_common: out == NULL copies into to[0..cap); else mallocs into *out. */
static int get_common(mp_queue_t *q, void *to, size_t cap, void **out, size_t *len,
                      double timeout)
{
    mp__deadline_t d;
    if (!q_ok(q) || !len || mp__deadline(timeout, &d) < 0)
        return -EINVAL;
    int err = lock_side(q, &q->c, d);
    if (err < 0)
        return err;
    rec_t *r = first(q, d, &err);
    if (!r) {
        if (err == MP_EEOF || err == MP_EEMPTY)
            unlock_side(&q->c);
        return err;
    }
    size_t n = r->len;
    *len = n;
    void *dst = to;
    if (out) {
        dst = mp__malloc(n ? n : 1);
        if (!dst) {
            unlock_side(&q->c);
            return -ENOMEM;
        }
    } else if (cap < n) {
        unlock_side(&q->c);
        return MP_ETOOSHORT;
    }
    big_t *b = r->big;
    if (!b && n)
        memcpy(dst, r + 1, n);
    take(q, r);
    if (b)
        sweep(&q->c);
    unlock_side(&q->c);
    if (q->maxsize)
        signal_side(&q->pw.seq, &q->pw.waiters, &q->pw.sleepers, 1);
    if (b) {
        memcpy(dst, b->data, n);
        if (lock_side(q, &q->c, MP__NEVER) == 0) {
            unlist(&q->c, b);
            unlock_side(&q->c);
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
    static char none;
    return get_common(q, buf ? buf : &none, buf ? cap : 0, NULL, len, timeout);
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
    return (long)queued(q);
}

int mp_queue_empty(mp_queue_t *q)
{
    if (!q_ok(q))
        return -EINVAL;
    return queued(q) == 0;
}

int mp_queue_full(mp_queue_t *q)
{
    if (!q_ok(q))
        return -EINVAL;
    return q->maxsize && queued(q) >= q->maxsize;
}

int mp_queue_close(mp_queue_t *q)
{
    if (!q_ok(q))
        return -EINVAL;
    /* Under the producers' lock, so that no put completes after it. */
    int r = lock_side(q, &q->p, MP__NEVER);
    if (r < 0)
        return r;
    atomic_store(&q->closed, 1);
    unlock_side(&q->p);
    atomic_fetch_add(&q->gw.seq, 1);
    atomic_fetch_add(&q->pw.seq, 1);
    mp__futex_wake((const uint32_t *)&q->gw.seq, INT32_MAX);
    mp__futex_wake((const uint32_t *)&q->pw.seq, INT32_MAX);
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
    uint64_t done = atomic_load(&q->done_total);
    do {
        if (done >= atomic_load(&q->put_total))
            return -EOVERFLOW;
    } while (!atomic_compare_exchange_weak(&q->done_total, &done, done + 1));
    if (done + 1 >= atomic_load(&q->put_total)) {
        atomic_fetch_add(&q->join_seq, 1);
        if (atomic_load(&q->join_sleepers))
            mp__futex_wake((const uint32_t *)&q->join_seq, INT32_MAX);
    }
    return 0;
}

int mp_queue_join(mp_queue_t *q, double timeout)
{
    mp__deadline_t d;
    if (!q_ok(q) || q->kind != K_JOINABLE || mp__deadline(timeout, &d) < 0)
        return -EINVAL;
    for (;;) {
        atomic_fetch_add(&q->join_sleepers, 1);
        uint32_t s = atomic_load(&q->join_seq);
        uint64_t p = atomic_load(&q->put_total);
        if (atomic_load(&q->done_total) >= p) {
            atomic_fetch_sub(&q->join_sleepers, 1);
            return 0;
        }
        int r = mp__futex_wait((const uint32_t *)&q->join_seq, s, d);
        atomic_fetch_sub(&q->join_sleepers, 1);
        if (r == -ETIMEDOUT) {
            p = atomic_load(&q->put_total);
            return atomic_load(&q->done_total) >= p ? 0 : -ETIMEDOUT;
        }
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

/* manager_sync.c: the manager's synchronization and queue kinds (Lock, RLock,
 * Semaphore, BoundedSemaphore, Condition, Event, Barrier, Queue,
 * JoinableQueue) as the server runs them, and their client shorthands
 * (mp_mlock_acquire, mp_mqueue_put, ...).
 *
 * Each kind is plain state guarded by the server mutex: a method runs with it
 * held and sleeps in mgr_wait on its object's condition variable, which
 * releases it; every change of state wakes the waiters of the objects that
 * care (mgr_wake), and each waiter re-checks its own condition, so waking
 * too many is harmless and waking too few never happens. A wait is bounded
 * by the request's deadline; a deadline already passed (a timeout of 0, or
 * a false `block` argument) tries once. A server shutting down ends every
 * wait with MP_EEOF.
 *
 * The semantics are Python's threading and queue objects, as the thread of a
 * Python manager server runs them for each client connection; a connection
 * is a client thread, so ownership is per connection (mgr_client_t):
 *   - Lock: any client may release a held Lock (threading.Lock allows it);
 *     acquiring a Lock one already holds blocks (as Python) since another
 *     client may release it. RLock: owner and count; only the owner
 *     releases (-EPERM otherwise).
 *   - A Lock or RLock held by a client whose connection drops is released
 *     and marked owner-died; the next acquirer gets it with -EOWNERDEAD.
 *   - Semaphores remember which clients took slots (at most the initial
 *     value's worth: acquiring beyond it consumes releases, as a signal, and
 *     is never given back), a release pays back the releaser's own slots
 *     first, then the oldest holder's; the slots of a client that drops are
 *     given back, and each such slot's next acquirer gets -EOWNERDEAD. A
 *     Semaphore(0) used as a signal therefore gives nothing back.
 *   - A Condition either owns an RLock (no argument, as Python) or shares
 *     the state of a Lock/RLock object of the same server. The lock state
 *     ("lock core") is reference counted by the objects using it and keeps
 *     the list of those objects: a release wakes the waiters of each, so a
 *     client blocked in Lock.acquire wakes when a Condition's wait releases
 *     the lock, and the other way round. Waiters of a Condition queue in
 *     arrival order, so notify(n) wakes exactly the n oldest.
 *   - Barrier: Python's state machine (filling, draining, resetting,
 *     broken); a timeout breaks it for everybody (BrokenBarrierError).
 *   - Queue, JoinableQueue: values stored packed (mgr_store) in a FIFO list,
 *     replied as they are (mgr_pack_raw); unfinished-task counting.
 *
 * Results that Python returns as None are packed as nil; acquire packs true
 * (a failed acquire is -ETIMEDOUT), waits of Condition and Event pack
 * Python's bool (false on timeout, return 0).
 *
 * MT-safe: the kinds run under the server mutex only; the shorthands are as
 * safe as mp_proxy_call. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "manager_int.h"

/* ---- helpers ---------------------------------------------------------------- */

static int pack_nil(msgpack_packer *pk) { return msgpack_pack_nil(pk) ? -ENOMEM : 0; }

static int pack_bool(msgpack_packer *pk, bool b)
{
    return (b ? msgpack_pack_true(pk) : msgpack_pack_false(pk)) ? -ENOMEM : 0;
}

static int pack_int(msgpack_packer *pk, int64_t i)
{
    return msgpack_pack_int64(pk, i) ? -ENOMEM : 0;
}

static int is_method(const char *method, const char *name)
{
    return strcmp(method, name) == 0;
}

/* The deadline of a request whose `block` argument (args[i], optional, a
 * bool) says false: already passed, so the method tries once. */
static int opt_block(const mp_val_t *args, size_t nargs, size_t i, mp__deadline_t *d)
{
    if (nargs <= i)
        return 0;
    if (args[i].type != MP_VAL_BOOL)
        return -EINVAL;
    if (!args[i].v.b)
        *d = 0;
    return 0;
}

/* An optional integer argument args[i] (def when absent). */
static int opt_int(const mp_val_t *args, size_t nargs, size_t i, int64_t def, int64_t *out)
{
    if (nargs <= i) {
        *out = def;
        return 0;
    }
    if (args[i].type != MP_VAL_INT)
        return -EINVAL;
    *out = args[i].v.i;
    return 0;
}

/* wait_step sleeps once on o until woken or d. Returns 0 (re-check the
 * condition; also after the deadline passed inside mgr_wait, so the state is
 * looked at once more, as Python's wait_for does), -ETIMEDOUT once d has
 * passed before sleeping, MP_EEOF on shutdown. */
static int wait_step(mgr_server_t *s, mgr_obj_t *o, mp__deadline_t d)
{
    if (d != MP__NEVER && mp__now_ns() >= d)
        return -ETIMEDOUT;
    int r = mgr_wait(s, o, d);
    return r == -ETIMEDOUT ? 0 : r;
}

/* ---- lock core: the state of a Lock or RLock --------------------------------- */

/* A lock core is shared by the Lock/RLock object that made it and by every
 * Condition built over that object (or made by a Condition for itself).
 * watch[] lists those objects: each change wakes all their waiters. */
typedef struct {
    mgr_client_t *owner;   /* NULL: unlocked */
    uint64_t count;        /* RLock recursion level (1 for a held Lock) */
    int rlock;
    int owner_died;        /* released because its owner dropped */
    uint32_t refs;         /* objects using it (entries of watch[]) */
    mgr_obj_t **watch;
    size_t nwatch, capwatch;
} lockcore_t;

static void core_changed(lockcore_t *lk)
{
    for (size_t i = 0; i < lk->nwatch; i++)
        mgr_wake(lk->watch[i]);
}

static int core_attach(lockcore_t *lk, mgr_obj_t *o)
{
    if (lk->nwatch == lk->capwatch) {
        size_t cap = lk->capwatch ? lk->capwatch * 2 : 2;
        mgr_obj_t **w = realloc(lk->watch, cap * sizeof *w);
        if (!w)
            return -ENOMEM;
        lk->watch = w;
        lk->capwatch = cap;
    }
    lk->watch[lk->nwatch++] = o;
    lk->refs++;
    return 0;
}

/* core_detach forgets o and frees the core with its last user. */
static void core_detach(lockcore_t *lk, mgr_obj_t *o)
{
    for (size_t i = 0; i < lk->nwatch; i++) {
        if (lk->watch[i] == o) {
            lk->watch[i] = lk->watch[--lk->nwatch];
            break;
        }
    }
    if (--lk->refs == 0) {
        free(lk->watch);
        free(lk);
    }
}

static int core_new(int rlock, mgr_obj_t *o, lockcore_t **out)
{
    lockcore_t *lk = calloc(1, sizeof *lk);
    if (!lk)
        return -ENOMEM;
    lk->rlock = rlock;
    int r = core_attach(lk, o);
    if (r < 0) {
        free(lk);
        return r;
    }
    *out = lk;
    return 0;
}

/* core_take gives a free lock to cl: -EOWNERDEAD (taken) when its previous
 * owner dropped while holding it. */
static int core_take(lockcore_t *lk, mgr_client_t *cl, uint64_t count)
{
    lk->owner = cl;
    lk->count = count;
    if (lk->owner_died) {
        lk->owner_died = 0;
        return -EOWNERDEAD;
    }
    return 0;
}

/* core_acquire: Lock.acquire / RLock.acquire for cl, sleeping on o (the
 * object the request came to) until d. Returns 0, -EOWNERDEAD (acquired),
 * -ETIMEDOUT, -EOVERFLOW (RLock count), MP_EEOF. */
static int core_acquire(mgr_server_t *s, mgr_obj_t *o, lockcore_t *lk, mgr_client_t *cl,
                        mp__deadline_t d)
{
    if (lk->rlock && lk->owner == cl) {
        if (lk->count == UINT64_MAX)
            return -EOVERFLOW;
        lk->count++;
        return 0;
    }
    while (lk->owner) {
        int r = wait_step(s, o, d);
        if (r < 0)
            return r;
    }
    return core_take(lk, cl, 1);
}

/* core_release: a Lock may be released by anybody while held; an RLock by
 * its owner only. Returns 0 or -EPERM. */
static int core_release(lockcore_t *lk, mgr_client_t *cl)
{
    if (!lk->owner || (lk->rlock && lk->owner != cl))
        return -EPERM;
    if (--lk->count > 0)
        return 0;
    lk->owner = NULL;
    core_changed(lk);
    return 0;
}

static void core_client_gone(lockcore_t *lk, mgr_client_t *cl)
{
    if (lk->owner != cl)
        return;
    lk->owner = NULL;
    lk->count = 0;
    lk->owner_died = 1;
    core_changed(lk);
}

/* ---- Lock, RLock ------------------------------------------------------------ */

static int lock_create_common(mgr_obj_t *o, int rlock, size_t nargs)
{
    if (nargs != 0)
        return -EINVAL;
    lockcore_t *lk;
    int r = core_new(rlock, o, &lk);
    if (r < 0)
        return r;
    o->state = lk;
    return 0;
}

static int lock_create(mgr_server_t *s, mgr_obj_t *o, const mp_val_t *args, size_t nargs)
{
    return lock_create_common(o, 0, nargs);
}

static int rlock_create(mgr_server_t *s, mgr_obj_t *o, const mp_val_t *args, size_t nargs)
{
    return lock_create_common(o, 1, nargs);
}

static void lock_destroy(mgr_obj_t *o)
{
    if (o->state)
        core_detach(o->state, o);
    o->state = NULL;
}

/* The methods a lock core answers for a Lock, RLock or Condition:
 * "acquire" [block], "release", "locked". Returns 1 when method is none of
 * them (*rc untouched). */
static int lock_methods(mgr_server_t *s, mgr_obj_t *o, lockcore_t *lk, mgr_client_t *cl,
                        const char *method, const mp_val_t *args, size_t nargs,
                        mp__deadline_t d, msgpack_packer *pk, int *rc)
{
    int r;
    if (is_method(method, "acquire")) {
        if (nargs > 1 || (r = opt_block(args, nargs, 0, &d)) < 0) {
            *rc = -EINVAL;
            return 0;
        }
        r = core_acquire(s, o, lk, cl, d);
        *rc = r == 0 ? pack_bool(pk, true) : r;
    } else if (is_method(method, "release")) {
        r = nargs ? -EINVAL : core_release(lk, cl);
        *rc = r == 0 ? pack_nil(pk) : r;
    } else if (is_method(method, "locked")) {
        *rc = nargs ? -EINVAL : pack_bool(pk, lk->owner != NULL);
    } else {
        return 1;
    }
    return 0;
}

static int lock_call(mgr_server_t *s, mgr_obj_t *o, mgr_client_t *cl, const char *method,
                     const mp_val_t *args, size_t nargs, mp__deadline_t d, msgpack_packer *pk)
{
    int rc;
    if (lock_methods(s, o, o->state, cl, method, args, nargs, d, pk, &rc) == 0)
        return rc;
    return -ENOSYS;
}

static void lock_client_gone(mgr_server_t *s, mgr_obj_t *o, mgr_client_t *cl)
{
    core_client_gone(o->state, cl);
}

const mgr_kind_t mgr_kind_lock = {
    .name = "Lock",
    .create = lock_create,
    .destroy = lock_destroy,
    .call = lock_call,
    .client_gone = lock_client_gone,
};

const mgr_kind_t mgr_kind_rlock = {
    .name = "RLock",
    .create = rlock_create,
    .destroy = lock_destroy,
    .call = lock_call,
    .client_gone = lock_client_gone,
};

/* ---- Semaphore, BoundedSemaphore ------------------------------------------- */

typedef struct {
    mgr_client_t *cl;
    int64_t n;             /* slots cl holds (> 0) */
} holder_t;

typedef struct {
    int64_t value;
    int64_t initial;
    int bounded;
    int64_t held;          /* sum of h[].n, at most initial */
    int64_t returned;      /* slots given back by dropped clients, <= value:
                              their next acquirers get -EOWNERDEAD */
    holder_t *h;           /* in order of first acquisition: oldest first */
    size_t nh, caph;
} msem_t;

static int sem_create_common(mgr_obj_t *o, int bounded, const mp_val_t *args, size_t nargs)
{
    int64_t value;
    if (nargs > 1 || opt_int(args, nargs, 0, 1, &value) < 0 || value < 0)
        return -EINVAL;
    msem_t *sm = calloc(1, sizeof *sm);
    if (!sm)
        return -ENOMEM;
    sm->value = sm->initial = value;
    sm->bounded = bounded;
    o->state = sm;
    return 0;
}

static int sem_create(mgr_server_t *s, mgr_obj_t *o, const mp_val_t *args, size_t nargs)
{
    return sem_create_common(o, 0, args, nargs);
}

static int bsem_create(mgr_server_t *s, mgr_obj_t *o, const mp_val_t *args, size_t nargs)
{
    return sem_create_common(o, 1, args, nargs);
}

static void sem_destroy(mgr_obj_t *o)
{
    msem_t *sm = o->state;
    if (sm) {
        free(sm->h);
        free(sm);
    }
    o->state = NULL;
}

static holder_t *sem_find(msem_t *sm, mgr_client_t *cl)
{
    for (size_t i = 0; i < sm->nh; i++)
        if (sm->h[i].cl == cl)
            return &sm->h[i];
    return NULL;
}

static void sem_drop_holder(msem_t *sm, size_t i)
{
    memmove(&sm->h[i], &sm->h[i + 1], (sm->nh - i - 1) * sizeof sm->h[0]);
    sm->nh--;
}

/* sem_pay takes n slots back from the holders (the releaser's own first, then
 * the oldest): a release pays for an acquire. */
static void sem_pay(msem_t *sm, mgr_client_t *cl, int64_t n)
{
    holder_t *own = sem_find(sm, cl);
    if (own) {
        int64_t k = own->n < n ? own->n : n;
        own->n -= k;
        sm->held -= k;
        n -= k;
        if (own->n == 0)
            sem_drop_holder(sm, (size_t)(own - sm->h));
    }
    while (n > 0 && sm->nh > 0) {
        int64_t k = sm->h[0].n < n ? sm->h[0].n : n;
        sm->h[0].n -= k;
        sm->held -= k;
        n -= k;
        if (sm->h[0].n == 0)
            sem_drop_holder(sm, 0);
    }
}

static int sem_acquire(mgr_server_t *s, mgr_obj_t *o, msem_t *sm, mgr_client_t *cl,
                       mp__deadline_t d)
{
    while (sm->value == 0) {
        int r = wait_step(s, o, d);
        if (r < 0)
            return r;
    }
    if (sm->held < sm->initial) {
        holder_t *own = sem_find(sm, cl);
        if (!own) {
            if (sm->nh == sm->caph) {
                size_t cap = sm->caph ? sm->caph * 2 : 4;
                holder_t *h = realloc(sm->h, cap * sizeof *h);
                if (!h)
                    return -ENOMEM;
                sm->h = h;
                sm->caph = cap;
            }
            own = &sm->h[sm->nh++];
            own->cl = cl;
            own->n = 0;
        }
        own->n++;
        sm->held++;
    }
    sm->value--;
    if (sm->returned > 0) {
        sm->returned--;
        return -EOWNERDEAD;
    }
    return 0;
}

static int sem_release(mgr_obj_t *o, msem_t *sm, mgr_client_t *cl, int64_t n)
{
    if (n < 1)
        return -EINVAL;
    if (sm->value > INT64_MAX - n || (sm->bounded && sm->value + n > sm->initial))
        return -EOVERFLOW; /* Python: ValueError: released too many times */
    sm->value += n;
    sem_pay(sm, cl, n);
    mgr_wake(o);
    return 0;
}

static int sem_call(mgr_server_t *s, mgr_obj_t *o, mgr_client_t *cl, const char *method,
                    const mp_val_t *args, size_t nargs, mp__deadline_t d, msgpack_packer *pk)
{
    msem_t *sm = o->state;
    int r;
    if (is_method(method, "acquire")) {
        if (nargs > 1 || opt_block(args, nargs, 0, &d) < 0)
            return -EINVAL;
        r = sem_acquire(s, o, sm, cl, d);
        return r == 0 ? pack_bool(pk, true) : r;
    }
    if (is_method(method, "release")) {
        int64_t n;
        if (nargs > 1 || opt_int(args, nargs, 0, 1, &n) < 0)
            return -EINVAL;
        r = sem_release(o, sm, cl, n);
        return r == 0 ? pack_nil(pk) : r;
    }
    if (is_method(method, "get_value"))
        return nargs ? -EINVAL : pack_int(pk, sm->value);
    return -ENOSYS;
}

/* The slots of a dropped client go back; their next acquirers are told. */
static void sem_client_gone(mgr_server_t *s, mgr_obj_t *o, mgr_client_t *cl)
{
    msem_t *sm = o->state;
    holder_t *own = sem_find(sm, cl);
    if (!own)
        return;
    int64_t n = own->n;
    sem_drop_holder(sm, (size_t)(own - sm->h));
    sm->held -= n;
    if (sm->value > INT64_MAX - n)
        return;
    sm->value += n;
    sm->returned += n;
    mgr_wake(o);
}

const mgr_kind_t mgr_kind_semaphore = {
    .name = "Semaphore",
    .create = sem_create,
    .destroy = sem_destroy,
    .call = sem_call,
    .client_gone = sem_client_gone,
};

const mgr_kind_t mgr_kind_bsemaphore = {
    .name = "BoundedSemaphore",
    .create = bsem_create,
    .destroy = sem_destroy,
    .call = sem_call,
    .client_gone = sem_client_gone,
};

/* ---- Condition ----------------------------------------------------------------- */

/* A waiter lives on the stack of the server thread running its wait. */
typedef struct cwaiter {
    struct cwaiter *prev, *next;
    int notified;
} cwaiter_t;

typedef struct {
    lockcore_t *lk;
    cwaiter_t *head, *tail; /* arrival order */
} mcond_t;

static int cond_create(mgr_server_t *s, mgr_obj_t *o, const mp_val_t *args, size_t nargs)
{
    if (nargs > 1)
        return -EINVAL;
    mcond_t *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    int r;
    if (nargs == 0 || args[0].type == MP_VAL_NIL) {
        r = core_new(1, o, &c->lk); /* Python: Condition() makes an RLock */
    } else {
        uint64_t id = mgr_proxy_id(&args[0]);
        mgr_obj_t *lo = id ? mgr_lookup(s, id) : NULL;
        if (!id)
            r = -EINVAL;
        else if (!lo)
            r = -ENOENT;
        else if ((lo->kind != &mgr_kind_lock && lo->kind != &mgr_kind_rlock) || !lo->state)
            r = -EINVAL;
        else if ((r = core_attach(lo->state, o)) == 0)
            c->lk = lo->state;
    }
    if (r < 0) {
        free(c);
        return r;
    }
    o->state = c;
    return 0;
}

static void cond_destroy(mgr_obj_t *o)
{
    mcond_t *c = o->state;
    if (c) {
        core_detach(c->lk, o);
        free(c);
    }
    o->state = NULL;
}

static void cond_unlink(mcond_t *c, cwaiter_t *w)
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

/* cond_wait: Condition.wait. The caller must hold the lock (-EPERM). Releases
 * it fully (an RLock's level is kept), waits for a notify until d, then
 * takes the lock back with the same level (without limit, as Python).
 * *notified: whether a notify came. Returns 0, -EOWNERDEAD (the lock was
 * taken back from a dropped owner), -EPERM, MP_EEOF. */
static int cond_wait(mgr_server_t *s, mgr_obj_t *o, mcond_t *c, mgr_client_t *cl,
                     mp__deadline_t d, int *notified)
{
    lockcore_t *lk = c->lk;
    if (lk->owner != cl)
        return -EPERM; /* Python: RuntimeError: cannot wait on un-acquired lock */
    uint64_t level = lk->count;
    cwaiter_t w = { .prev = c->tail, .next = NULL, .notified = 0 };
    if (c->tail)
        c->tail->next = &w;
    else
        c->head = &w;
    c->tail = &w;
    lk->owner = NULL;
    lk->count = 0;
    core_changed(lk);

    int r = 0;
    while (!w.notified) {
        r = wait_step(s, o, d);
        if (r < 0)
            break;
    }
    if (!w.notified)
        cond_unlink(c, &w);
    *notified = w.notified;
    if (r < 0 && r != -ETIMEDOUT)
        return r; /* MP_EEOF; -EBADF: the Condition was freed meanwhile */
    while (lk->owner) {
        r = wait_step(s, o, MP__NEVER);
        if (r < 0)
            return r;
    }
    return core_take(lk, cl, level);
}

/* cond_notify wakes the n oldest waiters (n < 0: all). */
static void cond_notify(mgr_obj_t *o, mcond_t *c, int64_t n)
{
    int any = 0;
    while (c->head && n != 0) {
        cwaiter_t *w = c->head;
        cond_unlink(c, w);
        w->notified = 1;
        any = 1;
        if (n > 0)
            n--;
    }
    if (any)
        mgr_wake(o);
}

static int cond_call(mgr_server_t *s, mgr_obj_t *o, mgr_client_t *cl, const char *method,
                     const mp_val_t *args, size_t nargs, mp__deadline_t d, msgpack_packer *pk)
{
    mcond_t *c = o->state;
    int rc;
    if (lock_methods(s, o, c->lk, cl, method, args, nargs, d, pk, &rc) == 0)
        return rc;
    if (is_method(method, "wait")) {
        int notified = 0;
        if (nargs)
            return -EINVAL;
        rc = cond_wait(s, o, c, cl, d, &notified);
        return rc == 0 ? pack_bool(pk, notified) : rc;
    }
    if (is_method(method, "notify") || is_method(method, "notify_all")) {
        int64_t n = -1;
        int all = is_method(method, "notify_all");
        if (all ? nargs != 0 : (nargs > 1 || opt_int(args, nargs, 0, 1, &n) < 0 || n < 0))
            return -EINVAL;
        if (c->lk->owner != cl)
            return -EPERM; /* Python: RuntimeError: cannot notify on un-acquired lock */
        cond_notify(o, c, all ? -1 : n);
        return pack_nil(pk);
    }
    return -ENOSYS;
}

/* A Condition over a Lock object: that object's client_gone releases it too;
 * whichever runs first does it (and a Condition may outlive its Lock). */
static void cond_client_gone(mgr_server_t *s, mgr_obj_t *o, mgr_client_t *cl)
{
    mcond_t *c = o->state;
    core_client_gone(c->lk, cl);
}

const mgr_kind_t mgr_kind_condition = {
    .name = "Condition",
    .create = cond_create,
    .destroy = cond_destroy,
    .call = cond_call,
    .client_gone = cond_client_gone,
};

/* ---- Event ------------------------------------------------------------------ */

typedef struct {
    int flag;
} mevent_t;

static int event_create(mgr_server_t *s, mgr_obj_t *o, const mp_val_t *args, size_t nargs)
{
    if (nargs != 0)
        return -EINVAL;
    mevent_t *e = calloc(1, sizeof *e);
    if (!e)
        return -ENOMEM;
    o->state = e;
    return 0;
}


static int event_call(mgr_server_t *s, mgr_obj_t *o, mgr_client_t *cl, const char *method,
                      const mp_val_t *args, size_t nargs, mp__deadline_t d, msgpack_packer *pk)
{
    mevent_t *e = o->state;
    if (is_method(method, "set")) {
        if (nargs)
            return -EINVAL;
        if (!e->flag) {
            e->flag = 1;
            mgr_wake(o);
        }
        return pack_nil(pk);
    }
    if (is_method(method, "clear")) {
        if (nargs)
            return -EINVAL;
        e->flag = 0;
        return pack_nil(pk);
    }
    if (is_method(method, "is_set"))
        return nargs ? -EINVAL : pack_bool(pk, e->flag);
    if (is_method(method, "wait")) {
        if (nargs)
            return -EINVAL;
        while (!e->flag) {
            int r = wait_step(s, o, d);
            if (r == -ETIMEDOUT)
                break;
            if (r < 0)
                return r;
        }
        return pack_bool(pk, e->flag); /* Python: the flag on return */
    }
    return -ENOSYS;
}

const mgr_kind_t mgr_kind_event = {
    .name = "Event",
    .create = event_create,
    .destroy = mgr_destroy_plain,
    .call = event_call,
    .client_gone = NULL,
};

/* ---- Barrier ------------------------------------------------------------------ */

enum { B_FILLING = 0, B_DRAINING = 1, B_RESETTING = -1, B_BROKEN = -2 };

typedef struct {
    int64_t parties;
    int64_t count;         /* parties inside wait */
    int state;
} mbarrier_t;

static int barrier_create(mgr_server_t *s, mgr_obj_t *o, const mp_val_t *args, size_t nargs)
{
    if (nargs != 1 || args[0].type != MP_VAL_INT || args[0].v.i < 1)
        return -EINVAL; /* Python: ValueError: parties must be > 0 */
    mbarrier_t *b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    b->parties = args[0].v.i;
    b->state = B_FILLING;
    o->state = b;
    return 0;
}

static void bar_break(mgr_obj_t *o, mbarrier_t *b)
{
    b->state = B_BROKEN;
    mgr_wake(o);
}

/* bar_wait: Barrier.wait. Returns the arrival index (>= 0), MP_EBROKEN
 * (broken, aborted, reset while waiting, or a timeout, which breaks it for
 * everybody), MP_EEOF. */
static int64_t bar_wait(mgr_server_t *s, mgr_obj_t *o, mbarrier_t *b, mp__deadline_t d)
{
    /* Wait for the previous round to drain or a reset to finish. */
    while (b->state == B_DRAINING || b->state == B_RESETTING) {
        int r = wait_step(s, o, d);
        if (r == -ETIMEDOUT) {
            bar_break(o, b);
            break;
        }
        if (r < 0)
            return r;
    }
    if (b->state == B_BROKEN)
        return MP_EBROKEN;
    int64_t index = b->count++;
    int64_t rc = index;
    if (b->count == b->parties) {
        b->state = B_DRAINING;
        mgr_wake(o);
    } else {
        while (b->state == B_FILLING) {
            int r = wait_step(s, o, d);
            if (r == -ETIMEDOUT) {
                bar_break(o, b);
                break;
            }
            if (r < 0) {
                rc = r;
                break;
            }
        }
        if (rc >= 0 && b->state != B_DRAINING)
            rc = MP_EBROKEN;
    }
    /* The last one out of a draining or resetting barrier opens it again. */
    if (--b->count == 0 && (b->state == B_DRAINING || b->state == B_RESETTING)) {
        b->state = B_FILLING;
        mgr_wake(o);
    }
    return rc;
}

static int barrier_call(mgr_server_t *s, mgr_obj_t *o, mgr_client_t *cl, const char *method,
                        const mp_val_t *args, size_t nargs, mp__deadline_t d, msgpack_packer *pk)
{
    mbarrier_t *b = o->state;
    if (nargs)
        return is_method(method, "wait") || is_method(method, "abort") ||
                       is_method(method, "reset") || is_method(method, "parties") ||
                       is_method(method, "n_waiting") || is_method(method, "broken")
                   ? -EINVAL
                   : -ENOSYS;
    if (is_method(method, "wait")) {
        int64_t r = bar_wait(s, o, b, d);
        return r >= 0 ? pack_int(pk, r) : (int)r;
    }
    if (is_method(method, "abort")) {
        bar_break(o, b);
        return pack_nil(pk);
    }
    if (is_method(method, "reset")) {
        /* As Python: the waiters leave with MP_EBROKEN, the last one out
         * opens the barrier again; arrivals wait until then. */
        if (b->count > 0) {
            if (b->state == B_FILLING || b->state == B_BROKEN)
                b->state = B_RESETTING;
        } else {
            b->state = B_FILLING;
        }
        mgr_wake(o);
        return pack_nil(pk);
    }
    if (is_method(method, "parties"))
        return pack_int(pk, b->parties);
    if (is_method(method, "n_waiting"))
        return pack_int(pk, b->state == B_FILLING ? b->count : 0);
    if (is_method(method, "broken"))
        return pack_bool(pk, b->state == B_BROKEN);
    return -ENOSYS;
}

const mgr_kind_t mgr_kind_barrier = {
    .name = "Barrier",
    .create = barrier_create,
    .destroy = mgr_destroy_plain,
    .call = barrier_call,
    .client_gone = NULL,
};

/* ---- Queue, JoinableQueue ------------------------------------------------------ */

typedef struct qitem {
    struct qitem *next;
    void *buf;             /* one packed value (mgr_store) */
    size_t len;
} qitem_t;

typedef struct {
    qitem_t *head, *tail;
    size_t n;
    size_t maxsize;        /* 0: unbounded */
    int joinable;
    uint64_t unfinished;   /* JoinableQueue: puts not yet task_done */
} mqueue_t;

static int queue_create_common(mgr_obj_t *o, int joinable, const mp_val_t *args, size_t nargs)
{
    int64_t maxsize;
    if (nargs > 1 || opt_int(args, nargs, 0, 0, &maxsize) < 0)
        return -EINVAL;
    mqueue_t *q = calloc(1, sizeof *q);
    if (!q)
        return -ENOMEM;
    q->maxsize = maxsize > 0 ? (size_t)maxsize : 0; /* Python: <= 0 is unbounded */
    q->joinable = joinable;
    o->state = q;
    return 0;
}

static int queue_create(mgr_server_t *s, mgr_obj_t *o, const mp_val_t *args, size_t nargs)
{
    return queue_create_common(o, 0, args, nargs);
}

static int jqueue_create(mgr_server_t *s, mgr_obj_t *o, const mp_val_t *args, size_t nargs)
{
    return queue_create_common(o, 1, args, nargs);
}

static void queue_destroy(mgr_obj_t *o)
{
    mqueue_t *q = o->state;
    if (!q)
        return;
    for (qitem_t *it = q->head, *next; it; it = next) {
        next = it->next;
        free(it->buf);
        free(it);
    }
    free(q);
    o->state = NULL;
}

static int queue_full(const mqueue_t *q) { return q->maxsize && q->n >= q->maxsize; }

/* "put" [v, block]: MP_EFULL when still full at d. */
static int queue_put(mgr_server_t *s, mgr_obj_t *o, mqueue_t *q, const mp_val_t *args,
                     size_t nargs, mp__deadline_t d)
{
    if (nargs < 1 || nargs > 2 || opt_block(args, nargs, 1, &d) < 0)
        return -EINVAL;
    qitem_t *it = malloc(sizeof *it);
    if (!it)
        return -ENOMEM;
    int r = mgr_store(&args[0], &it->buf, &it->len);
    if (r < 0) {
        free(it);
        return r;
    }
    while (queue_full(q)) {
        r = wait_step(s, o, d);
        if (r < 0) {
            free(it->buf);
            free(it);
            return r == -ETIMEDOUT ? MP_EFULL : r;
        }
    }
    it->next = NULL;
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    q->n++;
    if (q->joinable)
        q->unfinished++;
    mgr_wake(o);
    return 0;
}

/* "get" [block]: packs the oldest value; MP_EEMPTY when still empty at d.
 * A value that cannot be packed stays first in the queue. */
static int queue_get(mgr_server_t *s, mgr_obj_t *o, mqueue_t *q, const mp_val_t *args,
                     size_t nargs, mp__deadline_t d, msgpack_packer *pk)
{
    if (nargs > 1 || opt_block(args, nargs, 0, &d) < 0)
        return -EINVAL;
    while (q->n == 0) {
        int r = wait_step(s, o, d);
        if (r < 0)
            return r == -ETIMEDOUT ? MP_EEMPTY : r;
    }
    qitem_t *it = q->head;
    int r = mgr_pack_raw(pk, it->buf, it->len);
    if (r < 0)
        return r;
    q->head = it->next;
    if (!q->head)
        q->tail = NULL;
    q->n--;
    free(it->buf);
    free(it);
    mgr_wake(o);
    return 0;
}

static int queue_call(mgr_server_t *s, mgr_obj_t *o, mgr_client_t *cl, const char *method,
                      const mp_val_t *args, size_t nargs, mp__deadline_t d, msgpack_packer *pk)
{
    mqueue_t *q = o->state;
    int r;
    int nowait = is_method(method, "put_nowait");
    if (nowait || is_method(method, "put")) {
        if (nowait && nargs != 1)
            return -EINVAL;
        r = queue_put(s, o, q, args, nargs, nowait ? 0 : d);
        return r == 0 ? pack_nil(pk) : r;
    }
    if (is_method(method, "get"))
        return queue_get(s, o, q, args, nargs, d, pk);
    if (is_method(method, "get_nowait"))
        return nargs ? -EINVAL : queue_get(s, o, q, args, nargs, 0, pk);
    if (is_method(method, "qsize"))
        return nargs ? -EINVAL : pack_int(pk, (int64_t)q->n);
    if (is_method(method, "empty"))
        return nargs ? -EINVAL : pack_bool(pk, q->n == 0);
    if (is_method(method, "full"))
        return nargs ? -EINVAL : pack_bool(pk, queue_full(q));
    if (q->joinable && is_method(method, "task_done")) {
        if (nargs)
            return -EINVAL;
        if (q->unfinished == 0)
            return -EINVAL; /* Python: ValueError: task_done() called too many times */
        if (--q->unfinished == 0)
            mgr_wake(o);
        return pack_nil(pk);
    }
    if (q->joinable && is_method(method, "join")) {
        if (nargs)
            return -EINVAL;
        while (q->unfinished > 0) {
            r = wait_step(s, o, d);
            if (r < 0)
                return r;
        }
        return pack_nil(pk);
    }
    return -ENOSYS;
}

const mgr_kind_t mgr_kind_queue = {
    .name = "Queue",
    .create = queue_create,
    .destroy = queue_destroy,
    .call = queue_call,
    .client_gone = NULL,
};

const mgr_kind_t mgr_kind_jqueue = {
    .name = "JoinableQueue",
    .create = jqueue_create,
    .destroy = queue_destroy,
    .call = queue_call,
    .client_gone = NULL,
};

/* ---- client shorthands ----------------------------------------------------------- */

/* call_bool calls a method that packs a bool: 1 or 0, or a negative code
 * (-EBADMSG for a reply of another type). */
static int call_bool(mp_proxy_t *p, const char *method, double timeout)
{
    mp_val_t *res = NULL;
    int r = mp_proxy_call(p, method, NULL, 0, &res, timeout);
    if (r == 0)
        r = res && res->type == MP_VAL_BOOL ? (res->v.b ? 1 : 0) : -EBADMSG;
    mp_val_free(res);
    return r;
}

int mp_mqueue_put(mp_proxy_t *q, const mp_val_t *v, double timeout)
{
    if (!v)
        return -EINVAL;
    return mp_proxy_call(q, "put", v, 1, NULL, timeout);
}

int mp_mqueue_get(mp_proxy_t *q, mp_val_t **v, double timeout)
{
    if (!v)
        return -EINVAL; /* the item would be taken and lost */
    return mp_proxy_call(q, "get", NULL, 0, v, timeout);
}

int mp_mqueue_qsize(mp_proxy_t *q, size_t *n)
{
    mp_val_t *res = NULL;
    int r = mp_proxy_call(q, "qsize", NULL, 0, &res, MP_FOREVER);
    if (r == 0) {
        if (res && res->type == MP_VAL_INT && res->v.i >= 0) {
            if (n)
                *n = (size_t)res->v.i;
        } else {
            r = -EBADMSG;
        }
    }
    mp_val_free(res);
    return r;
}

int mp_mqueue_task_done(mp_proxy_t *q)
{
    return mp_proxy_call(q, "task_done", NULL, 0, NULL, MP_FOREVER);
}

int mp_mqueue_join(mp_proxy_t *q, double timeout)
{
    return mp_proxy_call(q, "join", NULL, 0, NULL, timeout);
}

int mp_mlock_acquire(mp_proxy_t *l, double timeout)
{
    return mp_proxy_call(l, "acquire", NULL, 0, NULL, timeout);
}

int mp_mlock_release(mp_proxy_t *l)
{
    return mp_proxy_call(l, "release", NULL, 0, NULL, MP_FOREVER);
}

int mp_mcond_wait(mp_proxy_t *c, double timeout)
{
    int r = call_bool(c, "wait", timeout);
    return r < 0 ? r : r ? 0 : -ETIMEDOUT;
}

int mp_mcond_notify(mp_proxy_t *c, int64_t n)
{
    mp_val_t arg = mp_val_int(n);
    return mp_proxy_call(c, "notify", &arg, 1, NULL, MP_FOREVER);
}

int mp_mcond_notify_all(mp_proxy_t *c)
{
    return mp_proxy_call(c, "notify_all", NULL, 0, NULL, MP_FOREVER);
}

int mp_mevent_set(mp_proxy_t *e)
{
    return mp_proxy_call(e, "set", NULL, 0, NULL, MP_FOREVER);
}

int mp_mevent_clear(mp_proxy_t *e)
{
    return mp_proxy_call(e, "clear", NULL, 0, NULL, MP_FOREVER);
}

int mp_mevent_is_set(mp_proxy_t *e)
{
    return call_bool(e, "is_set", MP_FOREVER);
}

int mp_mevent_wait(mp_proxy_t *e, double timeout)
{
    int r = call_bool(e, "wait", timeout);
    return r < 0 ? r : r ? 0 : -ETIMEDOUT;
}

int mp_mbarrier_wait(mp_proxy_t *b, double timeout, int64_t *index)
{
    mp_val_t *res = NULL;
    int r = mp_proxy_call(b, "wait", NULL, 0, &res, timeout);
    if (r == 0) {
        if (res && res->type == MP_VAL_INT) {
            if (index)
                *index = res->v.i;
        } else {
            r = -EBADMSG;
        }
    }
    mp_val_free(res);
    return r;
}

int mp_mbarrier_abort(mp_proxy_t *b)
{
    return mp_proxy_call(b, "abort", NULL, 0, NULL, MP_FOREVER);
}

int mp_mbarrier_reset(mp_proxy_t *b)
{
    return mp_proxy_call(b, "reset", NULL, 0, NULL, MP_FOREVER);
}

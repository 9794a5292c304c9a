/* pool.c: Pool and ThreadPool (Python's multiprocessing.Pool and
 * multiprocessing.pool.ThreadPool), AsyncResult and the imap iterators.
 *
 * Shape. A pool is one block in the shared arena (the "board": the task
 * queue, one slot per worker, the function table) plus a process-local
 * handle. Work is described by jobs, also in the arena: one job per apply or
 * map call, holding its tasks (one per apply, one per chunk for map), the
 * arguments or the copied input items, and the results. Workers (processes
 * of any start method, or threads) take tasks from the board's FIFO under a
 * robust lock, run them and write the results straight into the job. There
 * is no task-handler or result-handler thread on the hot path: the caller
 * enqueues, the worker completes, and whoever waits sleeps on the job's
 * futex word. One handler thread per pool (the "supervisor") watches the
 * workers (pidfd sentinels), replaces the ones that exit or die, fails the
 * task a dead worker held, and runs callbacks.
 *
 * Worker death. Taking a task is, under the queue lock: slot.current = t;
 * t.owner = slot; t.state = RUNNING; then unlink t. If the worker dies at any
 * instant, the supervisor (under the same lock, so the state is settled)
 * looks at slot.current: still QUEUED means it was not taken (the next taker
 * simply takes it); RUNNING and owned by the dead slot means it was running:
 * it is unlinked if still first, failed with MP_EWORKERDIED and completed on
 * the worker's behalf; DONE means the worker died while completing it, and
 * the supervisor finishes the completion steps that are safe to repeat.
 * A worker clears slot.current only after its last access to the job, and
 * drops its reference to the job after that, so a job is never freed under a
 * worker's feet; the supervisor drops the reference of a worker that died
 * with current set.
 *
 * Functions cross the exec of spawn and forkserver workers as (module,
 * offset) entries in the board's function table; a worker resolves each
 * entry once.
 *
 * Lock order: pool->mu (process-local) before board->mu (robust, shared);
 * async->mu is a leaf. MT-safe: yes (the handles may be used from any thread
 * of the process that made the pool). */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "arena.h"
#include "internal.h"

#define POOL_FNS 256
#define SPIN_NS 30000 /* how long a waiter looks before it sleeps */
#define NO_FN UINT32_MAX

enum { T_QUEUED = 0, T_RUNNING = 1, T_DONE = 2 };
enum { P_RUN = 0, P_CLOSE = 1, P_TERMINATE = 2 };
enum { J_APPLY = 1, J_MAP = 2 };

typedef struct job job_t;

typedef struct task {
    struct task *next;   /* queue link */
    job_t *job;
    _Atomic uint32_t state;
    _Atomic int32_t owner;   /* slot running it, -1 before */
    int32_t rc;              /* apply: the task's code; map: first failing item's */
    uint32_t pad;
    size_t first, count;     /* map: items [first, first + count) */
    size_t bad;              /* map: index of the first failing item */
} task_t;

struct job {
    _Atomic uint32_t refs;   /* the caller's handle + one per unfinished task */
    _Atomic uint32_t seq;    /* futex word: bumped at each task completion */
    _Atomic uint32_t waiters;
    _Atomic uint32_t ndone;  /* tasks completed and counted by their completer */
    _Atomic uint32_t nsettled; /* completions finished for a worker that died */
    _Atomic uint32_t pushed; /* who pushes it on the done stack (callbacks) */
    _Atomic uint32_t nlog;   /* unordered imap: entries reserved in log */
    _Atomic uint32_t *log;   /* unordered imap: task index + 1, in completion order */
    uint32_t kind, notify, ntasks;
    uint32_t fn;
    size_t n, in_size, out_size, chunk;
    _Atomic size_t items_done;
    unsigned char *in, *out; /* map: the copied items, the results (arena) */
    int32_t *rc;             /* map: per-item codes, when asked for (arena) */
    void *res;               /* apply: the result bytes (arena) */
    size_t res_len;
    unsigned char ires[48];  /* apply: a small result lives here, not in res */
    size_t arg_len;          /* apply: the argument follows the tasks */
    uintptr_t cookie;        /* the owner's mp_async_t, for callbacks */
    job_t *_Atomic dnext;    /* done-stack link */
    task_t tasks[];
};

typedef struct {
    uint64_t parent;         /* the function's address in the pool's owner */
    uint64_t off;
    char *module;            /* arena string */
} fnent_t;

typedef struct {
    _Atomic pid_t pid;
    task_t *_Atomic current;
    _Atomic uint32_t exited; /* thread workers: set as the thread returns */
    _Atomic uint32_t sleeping; /* counted in board.idle */
} wslot_t;

typedef struct {
    mp__robust_t mu;         /* the queue and the tasks' state transitions */
    task_t *head, *tail;
    _Atomic uint32_t qseq;   /* futex word: bumped at enqueue and state changes */
    _Atomic uint32_t idle;   /* workers asleep on qseq */
    _Atomic uint32_t state;
    _Atomic uint32_t nfns;
    job_t *_Atomic done_head;
    int32_t efd;             /* wakes the supervisor */
    uint32_t n, maxtasks, threads;
    uint32_t init_fn;
    void *initarg;
    size_t initarg_len;
    fnent_t fns[POOL_FNS];
    wslot_t w[];
} board_t;

struct mp_pool {
    pthread_mutex_t mu;
    board_t *b;
    int threads, n;
    int efd;
    mp_start_method_t method;
    pid_t owner;
    mp_process_t **procs;    /* process pools: per slot, NULL while empty */
    pthread_t *tids;         /* thread pools */
    unsigned char *tlive;
    struct pollfd *pf;       /* the supervisor's poll set */
    uint32_t *who;
    mp_pool_t *gnext;        /* the list of this process's pools (exit) */
    pthread_t sup;
    int sup_started, joined;
    int free_pending;        /* mp_pool_free from the supervisor or a worker */
    _Atomic uint32_t sup_done;
    _Atomic int state;
    int start_err;
    unsigned long named;     /* workers started so far (names) */
};

struct mp_async {
    pthread_mutex_t mu;
    _Atomic int refs;        /* the caller + the pool while a callback is due */
    job_t *job;
    mp_async_opts_t cb;
    void (*progress)(size_t, size_t, void *);
    void *progress_user;
    size_t reported;
    uint32_t cursor;         /* tasks known done, in order */
    int final, rc;
    size_t bad;
    void *out;               /* map: the caller's buffer */
    int *item_rc;
    _Atomic int cb_due;      /* a callback is yet to run: not ready before */
};

struct mp_imap {
    mp_async_t *a;
    int unordered;
    size_t next;             /* ordered: next index */
    uint32_t cur, scan;      /* unordered: chunk being drained, first unyielded */
    uint32_t lpos;           /* unordered: next entry of the completion log */
    size_t cur_pos;
    unsigned char *yielded;
    size_t given;
};

struct mp_out {
    unsigned char *buf;
    size_t len, cap;
    int err;
};

/* The pool whose supervisor or worker thread this is: such a thread may
 * terminate its pool but never wait for it (it would wait for itself). */
static _Thread_local mp_pool_t *tl_pool;

/* ---- small helpers ------------------------------------------------------------ */

/* The CPUs this process may run on (its affinity), once: spinning while
 * the peer needs our only CPU would only delay it. */
static int ncpus(void)
{
    static int n;
    if (!n)
        n = mp_cpu_count();
    return n;
}

static int board_lock(board_t *b);

static void board_unlock(board_t *b)
{
    mp__robust_unlock(&b->mu);
}

/* Repair after a worker died holding the lock. The only multi-store update
 * is the unlink of the first task (head, then tail): make tail agree. And a
 * worker that died while claiming the first task may have left its
 * slot.current on it while it is still QUEUED: the next taker will own it,
 * so that slot must not (its settlement would touch another's task). */
static void board_repair(board_t *b)
{
    task_t *t = b->head, *last = NULL;
    while (t) {
        last = t;
        t = t->next;
    }
    b->tail = last;
    if (b->head && atomic_load(&b->head->state) == T_QUEUED)
        for (uint32_t s = 0; s < b->n; s++)
            if (atomic_load(&b->w[s].current) == b->head)
                atomic_store(&b->w[s].current, NULL);
}

static int board_lock(board_t *b)
{
    int rc = mp__robust_lock(&b->mu, MP__NEVER);
    if (rc == -EOWNERDEAD) {
        board_repair(b);
        rc = 0;
    }
    return rc;
}

static void job_unref(job_t *j)
{
    if (atomic_fetch_sub(&j->refs, 1) != 1)
        return;
    mp__arena_free((void *)j->log);
    mp__arena_free(j->in);
    mp__arena_free(j->out);
    mp__arena_free(j->rc);
    mp__arena_free(j->res);
    mp__arena_free(j);
}

static void wake_supervisor(int efd)
{
    uint64_t one = 1;
    ssize_t w = write(efd, &one, sizeof one);
    (void)w;
}

static int all_done(const job_t *j)
{
    for (uint32_t i = 0; i < j->ntasks; i++)
        if (atomic_load(&j->tasks[i].state) != T_DONE)
            return 0;
    return 1;
}

/* job.pushed: 0, then the pusher's id (a worker slot + 1, or PUSH_SUP for
 * the supervisor) while it links the job on the done stack, then LINKED;
 * CB_RUN once the supervisor took it off and ran its callback. */
#define PUSH_SUP UINT32_C(0xfffffffd)
#define PUSH_LINKED UINT32_C(0xfffffffe)
#define PUSH_CB_RUN UINT32_C(0xffffffff)

static void link_done(board_t *b, job_t *j)
{
    job_t *old = atomic_load(&b->done_head);
    do
        atomic_store(&j->dnext, old);
    while (!atomic_compare_exchange_weak(&b->done_head, &old, j));
    atomic_store(&j->pushed, PUSH_LINKED);
    wake_supervisor(b->efd);
}

static void push_done(board_t *b, job_t *j, uint32_t who)
{
    uint32_t zero = 0;
    if (atomic_compare_exchange_strong(&j->pushed, &zero, who))
        link_done(b, j);
}

/* The completion steps after t became DONE (by its worker, or on its
 * behalf): count it, log it, wake the waiters, queue the callbacks.
 * first == 0 is the supervisor finishing for a worker that died in here:
 * its counts may or may not have been made, so it only adds to nsettled,
 * and the "all done" test uses both counters, then the tasks' states (the
 * truth), which makes one of the last completers push the job. */
static void task_finish(board_t *b, task_t *t, int first, uint32_t who)
{
    job_t *j = t->job;
    int maybe_last = 1;
    if (first) {
        if (j->kind == J_MAP)
            atomic_fetch_add(&j->items_done, t->count);
        if (j->log) {
            uint32_t pos = atomic_fetch_add(&j->nlog, 1);
            atomic_store(&j->log[pos], (uint32_t)(t - j->tasks) + 1);
        }
        maybe_last = atomic_fetch_add(&j->ndone, 1) + 1 + atomic_load(&j->nsettled) >=
                     j->ntasks;
    } else {
        atomic_fetch_add(&j->nsettled, 1);
    }
    atomic_fetch_add(&j->seq, 1);
    if (atomic_load(&j->waiters))
        mp__futex_wake((const uint32_t *)&j->seq, INT32_MAX);
    if (j->notify && maybe_last && all_done(j))
        push_done(b, j, who);
}

/* Fail a task that will never run or never finish (queued at terminate, or
 * held by a dead worker). The caller holds the task's reference. */
static void task_fail(board_t *b, task_t *t, int code, uint32_t from)
{
    job_t *j = t->job;
    t->rc = code;
    t->bad = t->first;
    if (j->rc)
        for (size_t i = 0; i < t->count; i++)
            j->rc[t->first + i] = code;
    uint32_t st = from;
    if (atomic_compare_exchange_strong(&t->state, &st, T_DONE)) {
        task_finish(b, t, 1, PUSH_SUP);
        job_unref(j);
    }
}

/* ---- the worker -------------------------------------------------------------- */

typedef struct {
    board_t *b;
    uint32_t slot;
    mp_pool_t *pool;         /* thread workers: their pool */
} wargs_t;

static void *fn_cache[POOL_FNS]; /* a worker process serves one pool */

static void *fn_get(board_t *b, uint32_t i)
{
    if (b->threads)
        return (void *)(uintptr_t)b->fns[i].parent;
    if (!fn_cache[i])
        fn_cache[i] = (void *)mp__target_resolve(b->fns[i].module, b->fns[i].off);
    return fn_cache[i];
}

int mp_out_write(mp_out_t *o, const void *buf, size_t len)
{
    if (!o || (!buf && len))
        return -EINVAL;
    if (len > SIZE_MAX - o->len)
        return -ENOMEM;
    if (o->len + len > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap < o->len + len)
            cap = cap > SIZE_MAX / 2 ? o->len + len : cap * 2;
        unsigned char *nb = realloc(o->buf, cap);
        if (!nb)
            return -ENOMEM;
        o->buf = nb;
        o->cap = cap;
    }
    if (len)
        memcpy(o->buf + o->len, buf, len);
    o->len += len;
    return 0;
}

static void run_apply(board_t *b, task_t *t, mp_out_t *o)
{
    job_t *j = t->job;
    mp_task_fn fn = (mp_task_fn)fn_get(b, j->fn);
    o->len = 0;
    int rc = fn ? fn((const unsigned char *)(j->tasks + 1), j->arg_len, o) : -ENOENT;
    if (o->len && !rc && o->len <= sizeof j->ires) {
        memcpy(j->ires, o->buf, o->len);
        j->res_len = o->len;
    } else if (o->len && !rc) {
        void *res = mp__arena_alloc_raw(o->len);
        if (!res) {
            rc = -ENOMEM;
        } else {
            memcpy(res, o->buf, o->len);
            j->res = res;
            j->res_len = o->len;
        }
    }
    t->rc = rc;
    if (o->cap > (1u << 20)) { /* do not keep a huge buffer for the next task */
        free(o->buf);
        o->buf = NULL;
        o->cap = 0;
    }
}

static void run_chunk(board_t *b, task_t *t)
{
    job_t *j = t->job;
    mp_map_fn fn = (mp_map_fn)fn_get(b, j->fn);
    const unsigned char *in = j->in + t->first * j->in_size;
    unsigned char *out = j->out + t->first * j->out_size;
    memset(out, 0, t->count * j->out_size);
    for (size_t i = 0; i < t->count; i++) {
        int rc = fn ? fn(in + i * j->in_size, out + i * j->out_size) : -ENOENT;
        if (rc) {
            if (j->rc)
                j->rc[t->first + i] = rc;
            if (!t->rc) {
                t->rc = rc;
                t->bad = t->first + i;
            }
        }
    }
}

/* Take the first task, or NULL. The order of the stores is what lets the
 * supervisor settle a worker that dies here (see the top of the file). */
static task_t *take(board_t *b, uint32_t slot)
{
    task_t *t;
    while ((t = b->head)) {
        /* A task that is not QUEUED here was failed on behalf of a worker
         * that died between claiming and unlinking it: just unlink it. */
        int mine = atomic_load(&t->state) == T_QUEUED;
        if (mine) {
            atomic_store(&b->w[slot].current, t);
            atomic_store(&t->owner, (int32_t)slot);
            atomic_store(&t->state, T_RUNNING);
        }
        b->head = t->next;
        if (!b->head)
            b->tail = NULL;
        if (mine)
            return t;
    }
    return NULL;
}

static int queue_pending(board_t *b)
{
    return __atomic_load_n(&b->head, __ATOMIC_RELAXED) != NULL;
}

/* Look for a change of *word (or, b given, a queued task) for a while before
 * sleeping on it: with other CPUs, about SPIN_NS (a futex wake-up crossing
 * CPUs costs tens of µs here, more than a short task); on one CPU, two
 * yields, which let the peer run and batch its work (the caller enqueues
 * several tasks in a row instead of waking a worker for each). Returns 1
 * if something changed. */
static int spin_for(_Atomic uint32_t *word, uint32_t v, board_t *b)
{
    int multi = ncpus() > 1;
    int64_t end = multi ? mp__now_ns() + SPIN_NS : 0;
    for (int i = 0;; i++) {
        if (atomic_load(word) != v || (b && queue_pending(b)))
            return 1;
        if (multi ? mp__now_ns() >= end : i >= 2)
            return 0;
        sched_yield();
    }
}

static void worker_loop(board_t *b, uint32_t slot)
{
    mp_out_t o = {0};
    uint32_t done = 0;
    wslot_t *w = &b->w[slot];
    for (;;) {
        uint32_t seq = atomic_load(&b->qseq);
        uint32_t st = atomic_load(&b->state);
        task_t *t = NULL;
        if (st != P_TERMINATE) {
            if (board_lock(b) < 0)
                break;
            t = take(b, slot);
            board_unlock(b);
        }
        if (!t) {
            if (st != P_RUN)
                break;
            /* Spin a little before sleeping when another CPU may be about
             * to hand us work: a futex wake across CPUs costs tens of µs. */
            if (spin_for(&b->qseq, seq, b))
                continue;
            atomic_fetch_add(&b->idle, 1);
            atomic_store(&w->sleeping, 1);
            mp__futex_wait((const uint32_t *)&b->qseq, seq, MP__NEVER);
            atomic_store(&w->sleeping, 0);
            atomic_fetch_sub(&b->idle, 1);
            continue;
        }
        job_t *j = t->job;
        if (j->kind == J_APPLY)
            run_apply(b, t, &o);
        else
            run_chunk(b, t);
        uint32_t running = T_RUNNING;
        if (atomic_compare_exchange_strong(&t->state, &running, T_DONE))
            task_finish(b, t, 1, slot + 1);
        atomic_store(&w->current, NULL);
        job_unref(j);
        if (b->maxtasks && ++done >= b->maxtasks)
            break;
    }
    free(o.buf);
}

static int worker_main(void *arg)
{
    wargs_t a;
    memcpy(&a, arg, sizeof a);
    board_t *b = a.b;
    atomic_store(&b->w[a.slot].pid, b->threads ? mp__gettid() : getpid());
    if (b->init_fn != NO_FN) {
        mp_pool_init_fn init = (mp_pool_init_fn)fn_get(b, b->init_fn);
        if (init)
            init(b->initarg, b->initarg_len);
    }
    worker_loop(b, a.slot);
    return 0;
}

static void *thread_worker(void *arg)
{
    wargs_t *a = arg;
    board_t *b = a->b;
    uint32_t slot = a->slot;
    tl_pool = a->pool;
    free(a);
    wargs_t copy = {b, slot, NULL};
    worker_main(&copy);
    atomic_store(&b->w[slot].exited, 1);
    wake_supervisor(b->efd);
    return NULL;
}

/* ---- starting workers and the supervisor ---------------------------------------- */

static int start_worker(mp_pool_t *p, uint32_t slot)
{
    board_t *b = p->b;
    atomic_store(&b->w[slot].exited, 0);
    atomic_store(&b->w[slot].current, NULL);
    atomic_store(&b->w[slot].pid, 0);
    if (p->threads) {
        wargs_t *a = malloc(sizeof *a);
        if (!a)
            return -ENOMEM;
        a->b = b;
        a->slot = slot;
        a->pool = p;
        sigset_t old;
        mp__signals_block_all(&old);
        int rc = pthread_create(&p->tids[slot], NULL, thread_worker, a);
        mp__signals_restore(&old);
        if (rc) {
            free(a);
            return -rc;
        }
        p->tlive[slot] = 1;
        return 0;
    }
    static const char *kind[] = {"Fork", "Fork", "Spawn", "Forkserver"};
    char name[64];
    mp_start_method_t m = p->method == MP_START_DEFAULT ? mp_get_start_method() : p->method;
    snprintf(name, sizeof name, "%sPoolWorker-%lu", kind[m & 3], ++p->named);
    int fds[1] = {p->efd};
    mp_process_opts_t o = {.name = name, .daemon = 1, .start_method = m,
                           .pass_fds = fds, .n_pass_fds = 1};
    wargs_t a = {b, slot, NULL};
    mp_process_t *proc;
    int rc = mp_process_new(&proc, worker_main, &a, sizeof a, &o);
    if (rc < 0)
        return rc;
    rc = mp_process_start(proc);
    if (rc < 0) {
        mp_process_free(proc);
        return rc;
    }
    pid_t expect = 0;
    atomic_compare_exchange_strong(&b->w[slot].pid, &expect, mp_process_pid(proc));
    p->procs[slot] = proc;
    return 0;
}

static int slot_live(const mp_pool_t *p, uint32_t s)
{
    return p->threads ? p->tlive[s] : p->procs[s] != NULL;
}

/* A worker is gone (its process was reaped, or its thread joined): settle the
 * task it held. */
static void settle_slot(mp_pool_t *p, uint32_t s)
{
    board_t *b = p->b;
    wslot_t *w = &b->w[s];
    if (board_lock(b) < 0)
        return;
    if (atomic_exchange(&w->sleeping, 0))
        atomic_fetch_sub(&b->idle, 1); /* killed asleep: it no longer is */
    task_t *t = atomic_load(&w->current);
    if (t && atomic_load(&t->owner) != (int32_t)s)
        t = NULL; /* claimed by another after this one died claiming it */
    if (t) {
        job_t *j = t->job;
        uint32_t st = atomic_load(&t->state);
        if (st == T_RUNNING) {
            if (b->head == t) {
                b->head = t->next;
                if (!b->head)
                    b->tail = NULL;
            }
            int code = atomic_load(&b->state) == P_TERMINATE ? MP_ETERMINATED
                                                             : MP_EWORKERDIED;
            task_fail(b, t, code, T_RUNNING);
        } else if (st == T_DONE) {
            /* Died while completing it: finish the completion (a push it
             * had begun included) and drop the reference it still held. */
            if (j->notify && atomic_load(&j->pushed) == s + 1) {
                job_t *k = atomic_load(&b->done_head);
                while (k && k != j)
                    k = atomic_load(&k->dnext);
                if (k)
                    atomic_store(&j->pushed, PUSH_LINKED);
                else
                    link_done(b, j);
            }
            task_finish(b, t, 0, PUSH_SUP);
            job_unref(j);
        }
        atomic_store(&w->current, NULL);
    }
    atomic_store(&w->pid, 0);
    board_unlock(b);
}

static void run_callbacks(mp_pool_t *p);
static void pool_release(mp_pool_t *p);

/* Fail everything still queued (terminate, or no worker can be started). */
static void fail_queue(board_t *b, int code)
{
    if (board_lock(b) < 0)
        return;
    task_t *t = b->head;
    b->head = b->tail = NULL;
    board_unlock(b);
    while (t) {
        task_t *next = t->next;
        task_fail(b, t, code, T_QUEUED);
        t = next;
    }
}

/* Every call checks that the caller owns the pool: the pid costs no system
 * call (mp__self_pid). */
#define me() mp__self_pid()

/* At exit, the pools still running are terminated (as Python's finalizers
 * do), before mproc's own exit handler stops the daemonic children: this
 * handler is registered after it, so it runs first. */
static volatile sig_atomic_t exiting;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t pools_mu = PTHREAD_MUTEX_INITIALIZER;
static mp_pool_t *pools;

static void on_exit_pool(void)
{
    exiting = 1;
    /* Terminate outside pools_mu: a callback run meanwhile may make or free
     * a pool. (Freeing a pool from another thread while the process exits
     * is not supported.) */
    for (;;) {
        mp_pool_t *p = NULL;
        pthread_mutex_lock(&pools_mu);
        for (mp_pool_t *q = pools; q && !p; q = q->gnext)
            if (q->owner == me() && atomic_load(&q->state) != P_TERMINATE)
                p = q;
        pthread_mutex_unlock(&pools_mu);
        if (!p)
            break;
        mp_pool_terminate(p);
    }
}

static void register_exit(void)
{
    mp__exit_register();
    atexit(on_exit_pool);
}

static void pools_link(mp_pool_t *p, int add)
{
    pthread_mutex_lock(&pools_mu);
    mp_pool_t **pp = &pools;
    while (*pp && *pp != p)
        pp = &(*pp)->gnext;
    if (add && !*pp) {
        p->gnext = pools;
        pools = p;
    } else if (!add && *pp) {
        *pp = p->gnext;
    }
    pthread_mutex_unlock(&pools_mu);
}

static void *supervisor(void *arg)
{
    mp_pool_t *p = arg;
    board_t *b = p->b;
    tl_pool = p;
    struct pollfd *pf = p->pf;
    uint32_t *who = p->who;
    for (;;) {
        int np = 0, live = 0, empty = 0;
        pf[np++] = (struct pollfd){.fd = p->efd, .events = POLLIN};
        pthread_mutex_lock(&p->mu);
        for (uint32_t s = 0; s < (uint32_t)p->n; s++) {
            if (!slot_live(p, s)) {
                empty++;
                continue;
            }
            live++;
            if (!p->threads) {
                who[np] = s;
                pf[np++] = (struct pollfd){.fd = mp_process_sentinel(p->procs[s]),
                                           .events = POLLIN};
            }
        }
        int st = atomic_load(&p->state);
        int pending = queue_pending(b);
        pthread_mutex_unlock(&p->mu);
        if (st != P_RUN && live == 0 && (!pending || st == P_TERMINATE || exiting))
            break;
        int r = poll(pf, (nfds_t)np, empty ? 50 : -1);
        if (r < 0 && errno != EINTR)
            break;
        if (pf[0].revents) {
            uint64_t v;
            ssize_t rd = read(p->efd, &v, sizeof v);
            (void)rd;
        }
        run_callbacks(p);
        pthread_mutex_lock(&p->mu);
        for (int i = 1; i < np; i++) {
            if (!pf[i].revents)
                continue;
            uint32_t s = who[i];
            mp_process_join(p->procs[s], 0);
            settle_slot(p, s);
            mp_process_free(p->procs[s]);
            p->procs[s] = NULL;
        }
        if (p->threads) {
            for (uint32_t s = 0; s < (uint32_t)p->n; s++) {
                if (p->tlive[s] && atomic_load(&b->w[s].exited)) {
                    pthread_join(p->tids[s], NULL);
                    p->tlive[s] = 0;
                    settle_slot(p, s);
                }
            }
        }
        st = atomic_load(&p->state);
        int want = !exiting && (st == P_RUN || (st == P_CLOSE && queue_pending(b)));
        int alive = 0, err = 0;
        for (uint32_t s = 0; s < (uint32_t)p->n; s++) {
            if (!slot_live(p, s) && want) {
                int rc = start_worker(p, s);
                if (rc < 0)
                    err = rc;
            }
            alive += slot_live(p, s);
        }
        if (want && !alive && err) {
            p->start_err = err;
            fail_queue(b, err);
        }
        pthread_mutex_unlock(&p->mu);
        run_callbacks(p);
    }
    run_callbacks(p);
    pthread_mutex_lock(&p->mu);
    int release = p->free_pending;
    pthread_mutex_unlock(&p->mu);
    if (release) {
        /* Freed from one of its own threads: nobody will join us. */
        pthread_detach(pthread_self());
        pool_release(p);
        return NULL;
    }
    atomic_store(&p->sup_done, 1);
    mp__futex_wake((const uint32_t *)&p->sup_done, INT32_MAX);
    return NULL;
}

/* ---- pools ---------------------------------------------------------------------- */

static int fn_index(mp_pool_t *p, const void *fn, uint32_t *out)
{
    board_t *b = p->b;
    uint32_t n = atomic_load(&b->nfns);
    for (uint32_t i = 0; i < n; i++)
        if (b->fns[i].parent == (uint64_t)(uintptr_t)fn) {
            *out = i;
            return 0;
        }
    pthread_mutex_lock(&p->mu);
    n = atomic_load(&b->nfns);
    for (uint32_t i = 0; i < n; i++)
        if (b->fns[i].parent == (uint64_t)(uintptr_t)fn) {
            pthread_mutex_unlock(&p->mu);
            *out = i;
            return 0;
        }
    int rc = 0;
    if (n == POOL_FNS) {
        rc = -E2BIG;
    } else if (!p->threads) {
        char *mod = malloc(MP__MODULE_MAX);
        uint64_t off;
        rc = mod ? mp__target_locate((mp_target_fn)(uintptr_t)fn, mod, MP__MODULE_MAX, &off)
                 : -ENOMEM;
        if (rc == 0) {
            size_t len = strlen(mod) + 1;
            b->fns[n].module = mp__arena_alloc_raw(len);
            if (!b->fns[n].module)
                rc = -ENOMEM;
            else
                memcpy(b->fns[n].module, mod, len);
            b->fns[n].off = off;
        }
        free(mod);
    }
    if (rc == 0) {
        b->fns[n].parent = (uint64_t)(uintptr_t)fn;
        atomic_store(&b->nfns, n + 1);
        *out = n;
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static void pool_release(mp_pool_t *p)
{
    if (p->b) {
        for (uint32_t i = 0; i < atomic_load(&p->b->nfns); i++)
            mp__arena_free(p->b->fns[i].module);
        mp__arena_free(p->b->initarg);
        mp__arena_free(p->b);
    }
    if (p->efd >= 0)
        close(p->efd);
    free(p->procs);
    free(p->tids);
    free(p->tlive);
    free(p->pf);
    free(p->who);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static int pool_new(mp_pool_t **out, int n, const mp_pool_opts_t *o, int threads)
{
    if (!out || n <= 0 || (o && o->maxtasksperchild < 0) ||
        (o && o->initarg_len && !o->initarg))
        return -EINVAL;
    if (!threads && mp_process_daemon(mp_current_process()))
        return MP_EDAEMON;
    pthread_once(&exit_once, register_exit);
    int rc = mp__arena_init();
    if (rc < 0)
        return rc;
    mp_pool_t *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    pthread_mutex_init(&p->mu, NULL);
    p->efd = -1;
    p->threads = threads;
    p->n = n;
    p->owner = me();
    p->method = o ? o->start_method : MP_START_DEFAULT;
    board_t *b = p->b = mp__arena_alloc(sizeof *b + (size_t)n * sizeof(wslot_t));
    if (threads) {
        p->tids = calloc((size_t)n, sizeof *p->tids);
        p->tlive = calloc((size_t)n, 1);
    } else {
        p->procs = calloc((size_t)n, sizeof *p->procs);
    }
    p->pf = calloc((size_t)n + 1, sizeof *p->pf);
    p->who = calloc((size_t)n + 1, sizeof *p->who);
    p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!b || (threads ? !p->tids || !p->tlive : !p->procs) || p->efd < 0 || !p->pf ||
        !p->who) {
        rc = p->efd < 0 && b ? -errno : -ENOMEM;
        pool_release(p);
        return rc;
    }
    b->efd = p->efd;
    b->n = (uint32_t)n;
    b->threads = (uint32_t)threads;
    b->maxtasks = o ? (uint32_t)o->maxtasksperchild : 0;
    b->init_fn = NO_FN;
    if (o && o->initializer) {
        rc = fn_index(p, (const void *)(uintptr_t)o->initializer, &b->init_fn);
        if (rc == 0 && o->initarg_len) {
            b->initarg = mp__arena_alloc_raw(o->initarg_len);
            if (!b->initarg)
                rc = -ENOMEM;
            else
                memcpy(b->initarg, o->initarg, o->initarg_len);
            b->initarg_len = o->initarg_len;
        }
        if (rc < 0) {
            pool_release(p);
            return rc;
        }
    }
    for (uint32_t s = 0; s < (uint32_t)n; s++) {
        rc = start_worker(p, s);
        if (rc < 0)
            break;
    }
    if (rc == 0) {
        sigset_t old;
        mp__signals_block_all(&old);
        rc = -pthread_create(&p->sup, NULL, supervisor, p);
        mp__signals_restore(&old);
    }
    if (rc < 0) {
        /* Undo: stop whatever started. */
        atomic_store(&b->state, P_TERMINATE);
        atomic_fetch_add(&b->qseq, 1);
        mp__futex_wake((const uint32_t *)&b->qseq, INT32_MAX);
        for (uint32_t s = 0; s < (uint32_t)n; s++) {
            if (threads && p->tlive[s])
                pthread_join(p->tids[s], NULL);
            if (!threads && p->procs[s]) {
                mp_process_kill(p->procs[s]);
                mp_process_join(p->procs[s], MP_FOREVER);
                mp_process_free(p->procs[s]);
            }
        }
        pool_release(p);
        return rc;
    }
    p->sup_started = 1;
    pools_link(p, 1);
    *out = p;
    return 0;
}

int mp_pool_new(mp_pool_t **out, int processes, const mp_pool_opts_t *opts)
{
    return pool_new(out, processes, opts, 0);
}

int mp_thread_pool_new(mp_pool_t **out, int threads, const mp_pool_opts_t *opts)
{
    return pool_new(out, threads, opts, 1);
}

static int usable(const mp_pool_t *p)
{
    return p && p->owner == me();
}

static void set_state(mp_pool_t *p, int st)
{
    atomic_store(&p->state, st);
    atomic_store(&p->b->state, (uint32_t)st);
    atomic_fetch_add(&p->b->qseq, 1);
    mp__futex_wake((const uint32_t *)&p->b->qseq, INT32_MAX);
    wake_supervisor(p->efd);
}

int mp_pool_close(mp_pool_t *p)
{
    if (!usable(p))
        return -EINVAL;
    pthread_mutex_lock(&p->mu);
    int st = atomic_load(&p->state);
    if (st == P_RUN)
        set_state(p, P_CLOSE);
    pthread_mutex_unlock(&p->mu);
    return st == P_TERMINATE ? MP_ECLOSED : 0;
}

int mp_pool_terminate(mp_pool_t *p)
{
    if (!usable(p))
        return -EINVAL;
    pthread_mutex_lock(&p->mu);
    if (atomic_load(&p->state) != P_TERMINATE) {
        set_state(p, P_TERMINATE);
        fail_queue(p->b, MP_ETERMINATED);
        if (!p->threads)
            for (int s = 0; s < p->n; s++)
                if (p->procs[s])
                    mp_process_kill(p->procs[s]);
    }
    pthread_mutex_unlock(&p->mu);
    if (tl_pool == p)
        return 0; /* a callback or task of this pool: the pool ends after it */
    return mp_pool_join(p, MP_FOREVER);
}

int mp_pool_join(mp_pool_t *p, double timeout)
{
    if (!usable(p))
        return -EINVAL;
    mp__deadline_t d;
    int rc = mp__deadline(timeout, &d);
    if (rc < 0)
        return rc;
    if (atomic_load(&p->state) == P_RUN)
        return MP_ERUNNING;
    if (tl_pool == p)
        return -EDEADLK; /* it would wait for the calling thread itself */
    while (!atomic_load(&p->sup_done)) {
        rc = mp__futex_wait((const uint32_t *)&p->sup_done, 0, d);
        if (rc == -ETIMEDOUT && !atomic_load(&p->sup_done))
            return -ETIMEDOUT;
    }
    pthread_mutex_lock(&p->mu);
    if (!p->joined) {
        pthread_join(p->sup, NULL);
        p->joined = 1;
    }
    pthread_mutex_unlock(&p->mu);
    return 0;
}

void mp_pool_free(mp_pool_t *p)
{
    if (!usable(p))
        return;
    mp_pool_terminate(p);
    pools_link(p, 0);
    if (tl_pool == p) {
        pthread_mutex_lock(&p->mu);
        p->free_pending = 1; /* the supervisor releases it as it ends */
        pthread_mutex_unlock(&p->mu);
        wake_supervisor(p->efd);
        return;
    }
    pool_release(p);
}

int mp_pool_size(const mp_pool_t *p)
{
    return p ? p->n : -EINVAL;
}

int mp_pool_worker_pids(mp_pool_t *p, pid_t *out, size_t cap)
{
    if (!p || (!out && cap))
        return -EINVAL;
    for (size_t s = 0; s < cap && s < (size_t)p->n; s++)
        out[s] = atomic_load(&p->b->w[s].pid);
    return p->n;
}

/* ---- submitting --------------------------------------------------------------- */

static int enqueue(mp_pool_t *p, job_t *j)
{
    board_t *b = p->b;
    for (uint32_t i = 0; i < j->ntasks; i++) {
        j->tasks[i].job = j;
        j->tasks[i].owner = -1;
        j->tasks[i].next = i + 1 < j->ntasks ? &j->tasks[i + 1] : NULL;
    }
    atomic_store(&j->refs, 1 + j->ntasks);
    /* The state check and the append are one step under pool->mu, so
     * nothing is queued after terminate emptied the queue. */
    pthread_mutex_lock(&p->mu);
    if (atomic_load(&p->state) != P_RUN) {
        pthread_mutex_unlock(&p->mu);
        return MP_ECLOSED;
    }
    int rc = board_lock(b);
    if (rc < 0) {
        pthread_mutex_unlock(&p->mu);
        return rc;
    }
    if (b->tail)
        b->tail->next = &j->tasks[0];
    else
        b->head = &j->tasks[0];
    b->tail = &j->tasks[j->ntasks - 1];
    board_unlock(b);
    pthread_mutex_unlock(&p->mu);
    atomic_fetch_add(&b->qseq, 1);
    uint32_t idle = atomic_load(&b->idle);
    if (idle)
        mp__futex_wake((const uint32_t *)&b->qseq, j->ntasks < idle ? (int)j->ntasks : (int)idle);
    return 0;
}

static mp_async_t *async_new(job_t *j, const mp_async_opts_t *cb)
{
    mp_async_t *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    pthread_mutex_init(&a->mu, NULL);
    a->refs = 1;
    a->job = j;
    if (cb && (cb->callback || cb->error_callback)) {
        a->cb = *cb;
        a->refs = 2; /* the pool's, until the callback ran */
        a->cb_due = 1;
        j->notify = 1;
        j->cookie = (uintptr_t)a;
    }
    return a;
}

static void async_unref(mp_async_t *a)
{
    if (atomic_fetch_sub(&a->refs, 1) != 1)
        return;
    job_unref(a->job);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

int mp_pool_apply_async(mp_pool_t *p, mp_task_fn fn, const void *arg, size_t arg_len,
                        const mp_async_opts_t *cb, mp_async_t **out)
{
    if (!usable(p) || !fn || !out || (!arg && arg_len))
        return -EINVAL;
    if (atomic_load(&p->state) != P_RUN)
        return MP_ECLOSED;
    uint32_t fi;
    int rc = fn_index(p, (const void *)(uintptr_t)fn, &fi);
    if (rc < 0)
        return rc;
    if (arg_len > SIZE_MAX - sizeof(job_t) - sizeof(task_t))
        return -ENOMEM;
    job_t *j = mp__arena_alloc(sizeof *j + sizeof(task_t) + arg_len);
    if (!j)
        return -ENOMEM;
    j->kind = J_APPLY;
    j->fn = fi;
    j->ntasks = 1;
    j->arg_len = arg_len;
    if (arg_len)
        memcpy(j->tasks + 1, arg, arg_len);
    mp_async_t *a = async_new(j, cb);
    if (!a) {
        mp__arena_free(j);
        return -ENOMEM;
    }
    rc = enqueue(p, j);
    if (rc < 0) {
        mp__arena_free(j);
        pthread_mutex_destroy(&a->mu);
        free(a);
        return rc;
    }
    *out = a;
    return 0;
}

int mp_pool_apply(mp_pool_t *p, mp_task_fn fn, const void *arg, size_t arg_len,
                  void *buf, size_t cap, size_t *len)
{
    mp_async_t *a;
    int rc = mp_pool_apply_async(p, fn, arg, arg_len, NULL, &a);
    if (rc < 0)
        return rc;
    const void *data;
    size_t n;
    rc = mp_async_get(a, MP_FOREVER, &data, &n);
    if (rc == 0) {
        if (len)
            *len = n;
        if (n > cap && buf)
            rc = MP_ETOOSHORT;
        else if (buf && n)
            memcpy(buf, data, n);
    }
    mp_async_free(a);
    return rc;
}

static size_t default_chunk(size_t n, int workers)
{
    size_t d = (size_t)workers * 4;
    size_t c = n / d;
    if (n % d)
        c++;
    return c ? c : 1;
}

/* What the caller side of a map result holds, set before the job is
 * queued (a fast task may complete it, and run its callback, at once). */
typedef struct {
    void *out;
    int *item_rc;
    void (*progress)(size_t, size_t, void *);
    void *progress_user;
    int log; /* unordered imap: keep the completion order */
} mapside_t;

static int map_submit(mp_pool_t *p, mp_map_fn fn, const void *in, size_t n, size_t in_size,
                      size_t out_size, size_t chunk, int per_item, const mp_async_opts_t *cb,
                      const mapside_t *side, mp_async_t **out)
{
    if (!usable(p) || !fn || !out || (n && (!in || !in_size)))
        return -EINVAL;
    if (atomic_load(&p->state) != P_RUN)
        return MP_ECLOSED;
    if (n && (in_size > SIZE_MAX / n || (out_size && out_size > SIZE_MAX / n)))
        return -ENOMEM;
    uint32_t fi;
    int rc = fn_index(p, (const void *)(uintptr_t)fn, &fi);
    if (rc < 0)
        return rc;
    size_t nt = n / chunk + (n % chunk != 0); /* no overflow, whatever chunk */
    if (nt > UINT32_MAX - 1)
        return -E2BIG;
    job_t *j = mp__arena_alloc(sizeof *j + nt * sizeof(task_t));
    if (!j)
        return -ENOMEM;
    j->kind = J_MAP;
    j->fn = fi;
    j->ntasks = (uint32_t)nt;
    j->n = n;
    j->in_size = in_size;
    j->out_size = out_size;
    j->chunk = chunk;
    if (n) {
        j->in = mp__arena_alloc_raw(n * in_size);
        j->out = out_size ? mp__arena_alloc_raw(n * out_size) : NULL;
        j->rc = per_item ? mp__arena_alloc(n * sizeof(int32_t)) : NULL;
        j->log = side->log ? mp__arena_alloc(nt * sizeof(uint32_t)) : NULL;
        if (!j->in || (out_size && !j->out) || (per_item && !j->rc) ||
            (side->log && !j->log)) {
            j->refs = 1;
            job_unref(j);
            return -ENOMEM;
        }
        memcpy(j->in, in, n * in_size);
    }
    for (size_t i = 0; i < nt; i++) {
        j->tasks[i].first = i * chunk;
        j->tasks[i].count = i + 1 < nt ? chunk : n - i * chunk;
    }
    mp_async_t *a = async_new(j, cb);
    if (!a) {
        j->refs = 1;
        job_unref(j);
        return -ENOMEM;
    }
    a->out = side->out;
    a->item_rc = side->item_rc;
    a->progress = side->progress;
    a->progress_user = side->progress_user;
    if (nt == 0) {
        /* Nothing to do: ready at once; the callback runs from the handler,
         * which must still be there (checked under pool->mu as enqueue). */
        atomic_store(&j->refs, 1);
        pthread_mutex_lock(&p->mu);
        rc = atomic_load(&p->state) == P_RUN ? 0 : MP_ECLOSED;
        if (rc == 0 && j->notify)
            push_done(p->b, j, PUSH_SUP);
        pthread_mutex_unlock(&p->mu);
        if (rc < 0) {
            job_unref(j);
            pthread_mutex_destroy(&a->mu);
            free(a);
            return rc;
        }
        *out = a;
        return 0;
    }
    rc = enqueue(p, j);
    if (rc < 0) {
        atomic_store(&j->refs, 1);
        job_unref(j);
        pthread_mutex_destroy(&a->mu);
        free(a);
        return rc;
    }
    *out = a;
    return 0;
}

int mp_pool_map_async(mp_pool_t *p, mp_map_fn fn, const void *in, size_t n, size_t in_size,
                      void *out, size_t out_size, const mp_map_opts_t *o, mp_async_t **res)
{
    if (!p || (n && out_size && !out))
        return -EINVAL;
    size_t chunk = o && o->chunksize ? o->chunksize : default_chunk(n, p->n);
    mapside_t side = {.out = out};
    if (o) {
        side.item_rc = o->item_rc;
        side.progress = o->progress;
        side.progress_user = o->progress_user;
    }
    return map_submit(p, fn, in, n, in_size, out_size, chunk, o && o->item_rc,
                      o ? &o->async : NULL, &side, res);
}

int mp_pool_map(mp_pool_t *p, mp_map_fn fn, const void *in, size_t n, size_t in_size,
                void *out, size_t out_size, const mp_map_opts_t *o, size_t *failed)
{
    mp_map_opts_t oo = o ? *o : (mp_map_opts_t){0};
    oo.async = (mp_async_opts_t){0};
    mp_async_t *a;
    int rc = mp_pool_map_async(p, fn, in, n, in_size, out, out_size, &oo, &a);
    if (rc < 0)
        return rc;
    rc = mp_async_get(a, MP_FOREVER, NULL, NULL);
    if (rc != 0 && rc != -ETIMEDOUT && failed)
        mp_async_failed(a, failed);
    mp_async_free(a);
    return rc;
}

/* ---- results -------------------------------------------------------------------- */

static _Thread_local mp_async_t *cb_running;

/* Advance the cursor over finished tasks and report progress. */
static int async_scan(mp_async_t *a)
{
    job_t *j = a->job;
    pthread_mutex_lock(&a->mu);
    while (a->cursor < j->ntasks && atomic_load(&j->tasks[a->cursor].state) == T_DONE)
        a->cursor++;
    /* As in Python, a result with a callback is ready once the callback
     * ran (the callback itself already sees it ready). */
    int done = a->cursor == j->ntasks && (!atomic_load(&a->cb_due) || cb_running == a);
    size_t items = done ? j->n : atomic_load(&j->items_done);
    int report = a->progress && items != a->reported && j->kind == J_MAP;
    if (report)
        a->reported = items;
    pthread_mutex_unlock(&a->mu);
    if (report)
        a->progress(items, j->n, a->progress_user);
    return done;
}

/* Wait until the job is done or d passes. Spins briefly first when another
 * CPU is running the task. */
static int async_wait(mp_async_t *a, mp__deadline_t d)
{
    job_t *j = a->job;
    int spun = d != MP__NEVER;
    for (;;) {
        uint32_t s = atomic_load(&j->seq);
        if (async_scan(a))
            return 0;
        if (!spun) {
            spun = 1;
            if (spin_for(&j->seq, s, NULL))
                continue;
        }
        if (d != MP__NEVER && mp__now_ns() >= d)
            return -ETIMEDOUT;
        atomic_fetch_add(&j->waiters, 1);
        int rc = mp__futex_wait((const uint32_t *)&j->seq, s, d);
        atomic_fetch_sub(&j->waiters, 1);
        if (rc == -ETIMEDOUT && !async_scan(a))
            return -ETIMEDOUT;
    }
}

/* Once done: the outcome, the map's results into the caller's buffer. */
static void async_final(mp_async_t *a)
{
    job_t *j = a->job;
    pthread_mutex_lock(&a->mu);
    if (!a->final) {
        a->rc = 0;
        for (uint32_t i = 0; i < j->ntasks; i++)
            if (j->tasks[i].rc && (!a->rc || j->tasks[i].bad < a->bad)) {
                a->rc = j->tasks[i].rc;
                a->bad = j->tasks[i].bad;
            }
        if (j->kind == J_MAP && j->n) {
            if (a->out && j->out)
                memcpy(a->out, j->out, j->n * j->out_size);
            if (a->item_rc && j->rc)
                for (size_t i = 0; i < j->n; i++)
                    a->item_rc[i] = j->rc[i];
        }
        a->final = 1;
    }
    pthread_mutex_unlock(&a->mu);
}

int mp_async_wait(mp_async_t *a, double timeout)
{
    if (!a)
        return -EINVAL;
    mp__deadline_t d;
    int rc = mp__deadline(timeout, &d);
    return rc < 0 ? rc : async_wait(a, d);
}

int mp_async_get(mp_async_t *a, double timeout, const void **data, size_t *len)
{
    int rc = mp_async_wait(a, timeout);
    if (rc < 0)
        return rc;
    async_final(a);
    job_t *j = a->job;
    int bytes = j->kind == J_APPLY && a->rc == 0;
    if (data)
        *data = !bytes ? NULL : j->res ? j->res : j->ires;
    if (len)
        *len = bytes ? j->res_len : 0;
    return a->rc;
}

int mp_async_ready(mp_async_t *a)
{
    return a ? async_scan(a) : -EINVAL;
}

int mp_async_successful(mp_async_t *a)
{
    if (!a)
        return -EINVAL;
    if (!async_scan(a))
        return -EAGAIN;
    async_final(a);
    return a->rc == 0;
}

int mp_async_failed(mp_async_t *a, size_t *index)
{
    if (!a || !index)
        return -EINVAL;
    if (!async_scan(a))
        return -EAGAIN;
    async_final(a);
    if (!a->rc)
        return -ENOENT;
    *index = a->bad;
    return 0;
}

void mp_async_free(mp_async_t *a)
{
    if (a)
        async_unref(a);
}

static void run_callbacks(mp_pool_t *p)
{
    job_t *j = atomic_exchange(&p->b->done_head, NULL);
    while (j) {
        job_t *next = atomic_load(&j->dnext);
        mp_async_t *a = (mp_async_t *)j->cookie;
        atomic_store(&j->pushed, PUSH_CB_RUN);
        async_final(a);
        cb_running = a;
        if (a->rc == 0 && a->cb.callback)
            a->cb.callback(a, a->cb.user);
        else if (a->rc != 0 && a->cb.error_callback)
            a->cb.error_callback(a, a->rc, a->cb.user);
        cb_running = NULL;
        atomic_store(&a->cb_due, 0);
        atomic_fetch_add(&j->seq, 1);
        mp__futex_wake((const uint32_t *)&j->seq, INT32_MAX);
        async_unref(a);
        j = next;
    }
}

/* ---- imap ----------------------------------------------------------------------- */

static int imap_new(mp_pool_t *p, mp_map_fn fn, const void *in, size_t n, size_t in_size,
                    size_t out_size, const mp_map_opts_t *o, int unordered, mp_imap_t **it)
{
    if (!it)
        return -EINVAL;
    size_t chunk = o && o->chunksize ? o->chunksize : 1;
    mp_imap_t *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    mapside_t side = {.log = unordered};
    if (o) {
        side.progress = o->progress;
        side.progress_user = o->progress_user;
    }
    int rc = map_submit(p, fn, in, n, in_size, out_size, chunk, 1, NULL, &side, &m->a);
    if (rc < 0) {
        free(m);
        return rc;
    }
    m->unordered = unordered;
    if (unordered && m->a->job->ntasks) {
        m->yielded = calloc(m->a->job->ntasks, 1);
        if (!m->yielded) {
            mp_imap_free(m);
            return -ENOMEM;
        }
    }
    m->cur = UINT32_MAX;
    *it = m;
    return 0;
}

int mp_pool_imap(mp_pool_t *p, mp_map_fn fn, const void *in, size_t n, size_t in_size,
                 size_t out_size, const mp_map_opts_t *o, mp_imap_t **it)
{
    return imap_new(p, fn, in, n, in_size, out_size, o, 0, it);
}

int mp_pool_imap_unordered(mp_pool_t *p, mp_map_fn fn, const void *in, size_t n,
                           size_t in_size, size_t out_size, const mp_map_opts_t *o,
                           mp_imap_t **it)
{
    return imap_new(p, fn, in, n, in_size, out_size, o, 1, it);
}

/* Wait until task ti is done (or, ti == UINT32_MAX, any unyielded one). */
static int imap_wait(mp_imap_t *m, uint32_t *ti, mp__deadline_t d)
{
    job_t *j = m->a->job;
    for (;;) {
        uint32_t s = atomic_load(&j->seq);
        async_scan(m->a);
        if (*ti != UINT32_MAX) {
            if (atomic_load(&j->tasks[*ti].state) == T_DONE)
                return 0;
        } else {
            /* The completion log: one step per chunk. */
            uint32_t nl = atomic_load(&j->nlog);
            while (m->lpos < nl) {
                uint32_t e = atomic_load(&j->log[m->lpos]);
                if (!e)
                    break; /* being written, or its writer died: scan */
                m->lpos++;
                if (!m->yielded[e - 1]) {
                    *ti = e - 1;
                    return 0;
                }
            }
            /* A hole in the log, or a completion the log never got (its
             * worker died completing it): look at the tasks themselves. */
            if (m->lpos < nl || atomic_load(&j->nsettled)) {
                while (m->scan < j->ntasks && m->yielded[m->scan])
                    m->scan++;
                for (uint32_t i = m->scan; i < j->ntasks; i++)
                    if (!m->yielded[i] && atomic_load(&j->tasks[i].state) == T_DONE) {
                        *ti = i;
                        return 0;
                    }
            }
        }
        if (d != MP__NEVER && mp__now_ns() >= d)
            return -ETIMEDOUT;
        atomic_fetch_add(&j->waiters, 1);
        mp__futex_wait((const uint32_t *)&j->seq, s, d);
        atomic_fetch_sub(&j->waiters, 1);
    }
}

static int imap_item(mp_imap_t *m, size_t i, void *out, size_t *index)
{
    job_t *j = m->a->job;
    if (out && j->out_size)
        memcpy(out, j->out + i * j->out_size, j->out_size);
    if (index)
        *index = i;
    m->given++;
    return j->rc[i];
}

int mp_imap_next(mp_imap_t *m, double timeout, void *out, size_t *index)
{
    if (!m)
        return -EINVAL;
    mp__deadline_t d;
    int rc = mp__deadline(timeout, &d);
    if (rc < 0)
        return rc;
    job_t *j = m->a->job;
    if (m->given == j->n)
        return MP_EEOF;
    if (!m->unordered) {
        uint32_t ti = (uint32_t)(m->next / j->chunk);
        rc = imap_wait(m, &ti, d);
        if (rc < 0)
            return rc;
        return imap_item(m, m->next++, out, index);
    }
    if (m->cur == UINT32_MAX) {
        uint32_t ti = UINT32_MAX;
        rc = imap_wait(m, &ti, d);
        if (rc < 0)
            return rc;
        m->cur = ti;
        m->cur_pos = 0;
    }
    task_t *t = &j->tasks[m->cur];
    rc = imap_item(m, t->first + m->cur_pos, out, index);
    if (++m->cur_pos == t->count) {
        m->yielded[m->cur] = 1;
        m->cur = UINT32_MAX;
    }
    return rc;
}

void mp_imap_free(mp_imap_t *m)
{
    if (!m)
        return;
    mp_async_free(m->a);
    free(m->yielded);
    free(m);
}

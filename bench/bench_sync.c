/* bench_sync.c: round functions of the sync cases (Lock, Event, Barrier).
 *
 * lock_uncontended: acquire+release pairs per second in one thread.
 *   mproc: mp_lock_acquire(l, MP_FOREVER) + mp_lock_release; raw: a
 *   pthread_mutex_t with default attributes, lock + unlock.
 * lock_contended: two processes each repeat acquire / increment one shared
 *   counter / release until told to stop; total increments per second.
 *   mproc: an mp_lock_t and two mp_process children (fork start method);
 *   raw: a PTHREAD_PROCESS_SHARED mutex (default type) and two fork()ed
 *   children. The counter is in MAP_SHARED|MAP_ANONYMOUS memory made before
 *   the children start; after the round the counter must equal the sum of the
 *   workers' own counts (a check of mutual exclusion).
 * event_pingpong: the benchmark process (A) and one mp_process child (B)
 *   alternate through two Events: A sets e1, B waits e1, clears it, sets e2;
 *   A waits e2, clears it, sets e1 again... Round trips per second.
 *   handoff: the floor, two flags and sched_yield (see its comment).
 * barrier_rounds: the benchmark process and one mp_process child wait on one
 *   Barrier(2) over and over; rounds per second.
 *
 * Process start-up and the first round trip or barrier round are not timed.
 * Every blocking call waits with MP_FOREVER (as the Python peers, which call
 * acquire() and wait() without timeout); a lost wake-up shows as the
 * runner's "no result after N s" on the case. The Python peers are
 * bench/py/sync.py. MT-safe: no. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mproc.h"
#include "bench.h"

/* Acquire/release pairs per timed operation of lock_uncontended (so the
 * clock read and the indirect call of mpb_rate_loop do not dilute a pair). */
#define UNCONT_BATCH 1000

/* Increments a lock_contended worker does between two looks at the stop
 * flag (the Python peer does the same). */
#define CONT_BATCH 100

#define CACHELINE 64

/* ---- helpers ----------------------------------------------------------------- */

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* shared_map returns len zeroed bytes of MAP_SHARED|MAP_ANONYMOUS memory
 * (inherited by fork children), or NULL. */
static void *shared_map(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);

    return p == MAP_FAILED ? NULL : p;
}

/* fork_child starts target(arg copy) as an mp_process with the fork start
 * method. */
static int fork_child(mp_process_t **out, mp_target_fn target, const void *arg,
                      size_t len)
{
    mp_process_opts_t opts = {.start_method = MP_START_FORK};
    int rc = mp_process_new(out, target, arg, len, &opts);

    if (rc < 0)
        return rc;
    rc = mp_process_start(*out);
    if (rc < 0) {
        mp_process_free(*out);
        *out = NULL;
    }
    return rc;
}

/* join_child joins and frees p; returns 0 if it exited with code 0. */
static int join_child(mp_process_t *p)
{
    int code = -1, rc;

    if (!p)
        return 0;
    rc = mp_process_join(p, MP_FOREVER);
    if (rc == 0)
        rc = mp_process_exitcode(p, &code);
    if (rc == 0 && code != 0)
        rc = -ECHILD;
    mp_process_free(p);
    return rc;
}

/* reap waits for a fork()ed pid; returns 0 if it exited with status 0. */
static int reap(pid_t pid)
{
    int status;
    pid_t w;

    do
        w = waitpid(pid, &status, 0);
    while (w < 0 && errno == EINTR);
    if (w < 0)
        return -errno;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -ECHILD;
}

/* ---- lock_uncontended ------------------------------------------------------------ */

static int mproc_lock_op(void *state)
{
    mp_lock_t *l = state;
    int rc;

    for (int i = 0; i < UNCONT_BATCH; i++) {
        if ((rc = mp_lock_acquire(l, MP_FOREVER)) != 0)
            return rc < 0 ? rc : -EPROTO;
        if ((rc = mp_lock_release(l)) != 0)
            return rc < 0 ? rc : -EPROTO;
    }
    return 0;
}

int mpb_lock_uncontended_mproc_round(const mpb_round_t *r, double *value)
{
    mp_lock_t *l = NULL;
    int rc = mp_lock_new(&l);

    if (rc < 0)
        return rc;
    rc = mpb_rate_loop(r, mproc_lock_op, l, 1, value);
    mp_lock_free(l);
    *value *= UNCONT_BATCH;
    return rc;
}

static int raw_lock_op(void *state)
{
    pthread_mutex_t *m = state;
    int rc;

    for (int i = 0; i < UNCONT_BATCH; i++) {
        if ((rc = pthread_mutex_lock(m)) != 0)
            return -rc;
        if ((rc = pthread_mutex_unlock(m)) != 0)
            return -rc;
    }
    return 0;
}

int mpb_lock_uncontended_raw_round(const mpb_round_t *r, double *value)
{
    pthread_mutex_t m;
    int rc = pthread_mutex_init(&m, NULL);

    if (rc != 0)
        return -rc;
    rc = mpb_rate_loop(r, raw_lock_op, &m, 1, value);
    pthread_mutex_destroy(&m);
    *value *= UNCONT_BATCH;
    return rc;
}

/* pshared= : the like-for-like peer of a lock shared between processes: a
 * process-shared pthread mutex in MAP_SHARED memory. (glibc runs a private
 * mutex in a single-threaded process without atomic instructions, which no
 * lock shared between processes can do: raw= shows that bound.) */
int mpb_lock_uncontended_pshared_round(const mpb_round_t *r, double *value)
{
    pthread_mutexattr_t a;
    pthread_mutex_t *m = mmap(NULL, sizeof *m, PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return -errno;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    int rc = pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
    if (rc == 0) {
        rc = mpb_rate_loop(r, raw_lock_op, m, 1, value);
        pthread_mutex_destroy(m);
        *value *= UNCONT_BATCH;
    } else {
        rc = -rc;
    }
    munmap(m, sizeof *m);
    return rc;
}

/* ---- lock_contended ---------------------------------------------------------------- */

/* contend_t is the round's shared memory: each hot field on its own line. */
typedef struct {
    _Alignas(CACHELINE) _Atomic int ready; /* workers at the starting line */
    _Atomic int go;                        /* set by the parent: start */
    _Atomic int stop;                      /* set by the parent: stop */
    long done[2];                          /* each worker's own count */
    double end[2];                         /* when each worker stopped */
    _Alignas(CACHELINE) long counter;      /* guarded by the lock */
    _Alignas(CACHELINE) pthread_mutex_t mutex; /* raw peer's lock */
    _Alignas(CACHELINE) mp_lock_t *lock;   /* mproc's lock (in the arena) */
} contend_t;

typedef struct {
    contend_t *sh;
    int idx;
} contend_arg_t;

/* wait_go marks the worker ready and waits for the parent's go. */
static void wait_go(contend_t *sh)
{
    atomic_fetch_add(&sh->ready, 1);
    while (!atomic_load(&sh->go))
        sleep_s(20e-6);
}

static void worker_done(contend_t *sh, int idx, long n)
{
    sh->end[idx] = mpb_now();
    sh->done[idx] = n;
}

static int mproc_contend_worker(void *arg)
{
    const contend_arg_t *a = arg;
    contend_t *sh = a->sh;
    mp_lock_t *l = sh->lock;
    long n = 0;

    wait_go(sh);
    while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
        for (int i = 0; i < CONT_BATCH; i++) {
            if (mp_lock_acquire(l, MP_FOREVER) != 0)
                return 2;
            sh->counter++;
            if (mp_lock_release(l) != 0)
                return 3;
        }
        n += CONT_BATCH;
    }
    worker_done(sh, a->idx, n);
    return 0;
}

static int raw_contend_worker(contend_t *sh, int idx)
{
    pthread_mutex_t *m = &sh->mutex;
    long n = 0;

    wait_go(sh);
    while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
        for (int i = 0; i < CONT_BATCH; i++) {
            if (pthread_mutex_lock(m) != 0)
                return 2;
            sh->counter++;
            if (pthread_mutex_unlock(m) != 0)
                return 3;
        }
        n += CONT_BATCH;
    }
    worker_done(sh, idx, n);
    return 0;
}

/* contend_run times the two started workers: it waits for both to be
 * ready, lets them go for the round's budget, stops them and calls join(i)
 * for both. Returns 0 and the rate, or a negative code. */
static int contend_run(const mpb_round_t *r, contend_t *sh, int nstarted,
                       int (*join)(void *ctx, int i), void *ctx, double *value)
{
    double t0, t1;
    int rc = 0, jrc;

    while (atomic_load(&sh->ready) < nstarted)
        sleep_s(20e-6);
    t0 = mpb_now();
    atomic_store(&sh->go, 1);
    sleep_s(r->seconds);
    atomic_store(&sh->stop, 1);
    for (int i = 0; i < nstarted; i++)
        if ((jrc = join(ctx, i)) < 0 && rc == 0)
            rc = jrc;
    if (rc < 0)
        return rc;
    if (sh->counter != sh->done[0] + sh->done[1])
        return -EPROTO;   /* lost mutual exclusion */
    t1 = sh->end[0] > sh->end[1] ? sh->end[0] : sh->end[1];
    *value = (double)sh->counter / (t1 - t0);
    return 0;
}

static int join_mproc(void *ctx, int i)
{
    return join_child(((mp_process_t **)ctx)[i]);
}

int mpb_lock_contended_mproc_round(const mpb_round_t *r, double *value)
{
    contend_t *sh = shared_map(sizeof *sh);
    mp_process_t *kids[2] = {NULL, NULL};
    int rc, n = 0;

    if (!sh)
        return -errno;
    rc = mp_lock_new(&sh->lock);
    for (; rc == 0 && n < 2; n++) {
        contend_arg_t a = {sh, n};

        rc = fork_child(&kids[n], mproc_contend_worker, &a, sizeof a);
        if (rc < 0)
            break;
    }
    if (rc < 0) {   /* release whoever started, then report */
        atomic_store(&sh->stop, 1);
        atomic_store(&sh->go, 1);
        for (int i = 0; i < n; i++)
            join_child(kids[i]);
    } else {
        rc = contend_run(r, sh, n, join_mproc, kids, value);
    }
    mp_lock_free(sh->lock);
    munmap(sh, sizeof *sh);
    return rc;
}

static int join_raw(void *ctx, int i)
{
    return reap(((pid_t *)ctx)[i]);
}

int mpb_lock_contended_raw_round(const mpb_round_t *r, double *value)
{
    contend_t *sh = shared_map(sizeof *sh);
    pthread_mutexattr_t ma;
    pid_t kids[2];
    int rc, n = 0;

    if (!sh)
        return -errno;
    pthread_mutexattr_init(&ma);
    rc = -pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    if (rc == 0)
        rc = -pthread_mutex_init(&sh->mutex, &ma);
    pthread_mutexattr_destroy(&ma);
    for (; rc == 0 && n < 2; n++) {
        kids[n] = fork();
        if (kids[n] < 0) {
            rc = -errno;
            break;
        }
        if (kids[n] == 0)
            _exit(raw_contend_worker(sh, n));
    }
    if (rc < 0) {
        atomic_store(&sh->stop, 1);
        atomic_store(&sh->go, 1);
        for (int i = 0; i < n; i++)
            reap(kids[i]);
    } else {
        rc = contend_run(r, sh, n, join_raw, kids, value);
        pthread_mutex_destroy(&sh->mutex);
    }
    munmap(sh, sizeof *sh);
    return rc;
}

/* ---- event_pingpong ------------------------------------------------------------------ */

typedef struct {
    mp_event_t *e1, *e2;   /* A -> B, B -> A */
    _Atomic int stop;      /* set by A before its last e1 */
} pingpong_t;

/* pong is B: wait e1, clear it, set e2, until A says stop. */
static int pong(void *arg)
{
    pingpong_t *sh = *(pingpong_t **)arg;

    for (;;) {
        if (mp_event_wait(sh->e1, MP_FOREVER) != 0)
            return 2;
        if (mp_event_clear(sh->e1) != 0)
            return 3;
        if (atomic_load(&sh->stop))
            return 0;
        if (mp_event_set(sh->e2) != 0)
            return 4;
    }
}

/* ping is one round trip of A. */
static int ping(pingpong_t *sh)
{
    int rc;

    if ((rc = mp_event_set(sh->e1)) != 0)
        return rc < 0 ? rc : -EPROTO;
    if ((rc = mp_event_wait(sh->e2, MP_FOREVER)) != 0)
        return rc < 0 ? rc : -EPROTO;
    if ((rc = mp_event_clear(sh->e2)) != 0)
        return rc < 0 ? rc : -EPROTO;
    return 0;
}

int mpb_event_pingpong_mproc_round(const mpb_round_t *r, double *value)
{
    pingpong_t *sh = shared_map(sizeof *sh);
    mp_process_t *b = NULL;
    double t0, elapsed = 0;
    long n = 0;
    int rc, jrc;

    if (!sh)
        return -errno;
    rc = mp_event_new(&sh->e1);
    if (rc == 0)
        rc = mp_event_new(&sh->e2);
    if (rc == 0)
        rc = fork_child(&b, pong, &sh, sizeof sh);
    if (rc == 0)
        rc = ping(sh);   /* untimed: B has started and answers */
    t0 = mpb_now();
    while (rc == 0) {
        rc = ping(sh);
        n++;
        if ((elapsed = mpb_now() - t0) >= r->seconds)
            break;
    }
    if (b) {
        atomic_store(&sh->stop, 1);
        mp_event_set(sh->e1);
        jrc = join_child(b);
        if (rc == 0)
            rc = jrc;
    }
    if (rc == 0)
        *value = (double)n / elapsed;
    if (sh->e1)
        mp_event_free(sh->e1);
    if (sh->e2)
        mp_event_free(sh->e2);
    munmap(sh, sizeof *sh);
    return rc;
}

/* handoff= : the floor of any round trip between two processes: the same
 * alternation through two flags in shared memory, each side waiting by
 * sched_yield (never sleeping: not a usable Event, a measure of the two
 * context switches a trip costs when both share one CPU). */
typedef struct {
    _Atomic uint32_t e1, e2;
} handoff_t;

static void handoff_wait(_Atomic uint32_t *w)
{
    while (!atomic_load_explicit(w, memory_order_acquire))
        sched_yield();
    atomic_store_explicit(w, 0, memory_order_relaxed);
}

int mpb_event_pingpong_handoff_round(const mpb_round_t *r, double *value)
{
    handoff_t *sh = shared_map(sizeof *sh);
    double t0, elapsed = 0;
    long n = 0;

    if (!sh)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        munmap(sh, sizeof *sh);
        return -e;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        for (;;) {
            handoff_wait(&sh->e1);
            atomic_store_explicit(&sh->e2, 1, memory_order_release);
        }
    }
    atomic_store(&sh->e1, 1); /* untimed: the child has started and answers */
    handoff_wait(&sh->e2);
    t0 = mpb_now();
    do {
        atomic_store_explicit(&sh->e1, 1, memory_order_release);
        handoff_wait(&sh->e2);
        n++;
    } while ((elapsed = mpb_now() - t0) < r->seconds);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    munmap(sh, sizeof *sh);
    *value = (double)n / elapsed;
    return 0;
}

/* ---- barrier_rounds ---------------------------------------------------------------------- */

typedef struct {
    mp_barrier_t *b;
    _Atomic long stop;   /* 0, or the number of the last round */
} rounds_t;

/* Both parties number rounds from 1. The parent sets stop to the number of
 * the last round before it arrives there; the other party leaves after
 * passing that round. */
static int rounds_child(void *arg)
{
    rounds_t *sh = *(rounds_t **)arg;
    long s;

    for (long i = 1;; i++) {
        if (mp_barrier_wait(sh->b, MP_FOREVER) < 0)
            return 2;
        s = atomic_load(&sh->stop);
        if (s && i >= s)
            return 0;
    }
}

int mpb_barrier_rounds_mproc_round(const mpb_round_t *r, double *value)
{
    rounds_t *sh = shared_map(sizeof *sh);
    mp_process_t *c = NULL;
    double t0, elapsed = 0;
    long n = 0;
    int rc, jrc;

    if (!sh)
        return -errno;
    rc = mp_barrier_new(&sh->b, 2, NULL, NULL, 0, MP_FOREVER);
    if (rc == 0)
        rc = fork_child(&c, rounds_child, &sh, sizeof sh);
    if (rc == 0 && (rc = mp_barrier_wait(sh->b, MP_FOREVER)) > 0)
        rc = 0;   /* round 1, untimed */
    t0 = mpb_now();
    while (rc == 0) {
        if ((rc = mp_barrier_wait(sh->b, MP_FOREVER)) > 0)
            rc = 0;
        n++;   /* round n + 1 */
        if ((elapsed = mpb_now() - t0) >= r->seconds)
            break;
    }
    if (c) {
        atomic_store(&sh->stop, n + 2);
        if (rc == 0 && (rc = mp_barrier_wait(sh->b, MP_FOREVER)) > 0)
            rc = 0;
        if (rc < 0)   /* the child may wait forever: break the barrier */
            mp_barrier_abort(sh->b);
        jrc = join_child(c);
        if (rc == 0)
            rc = jrc;
    }
    if (rc == 0)
        *value = (double)n / elapsed;
    if (sh->b)
        mp_barrier_free(sh->b);
    munmap(sh, sizeof *sh);
    return rc;
}

/* bench_manager.c: round functions of the manager cases (a Manager's dict,
 * Queue and Lock used through proxies from a child process).
 *
 * Every round, mproc's and Python's alike, starts one manager (a server
 * process, fork start method) and makes the case's object in it, then
 * starts one child process (fork) that receives the proxy in its argument.
 * The child opens its own connection to the manager with WARM (100)
 * untimed operations, then times itself: it does operations in batches of
 * BATCH (100), reading the clock after each batch, until the budget has
 * passed (at least one batch), and stores its operation count and elapsed
 * time in shared memory. The value is ops / elapsed. Starting the manager,
 * making the object, starting and joining the child, the checks after the
 * round and shutting the manager down are not timed.
 *
 * One operation is a PAIR of calls, two round trips to the server (so
 * ops/s = pairs/s, and calls/s is twice the value), on both sides:
 *   manager_dict   d["key"] = i, then d["key"], checked to be i (i counts
 *                  up from 0 over the warm-up and the timed loop). After
 *                  the child, the parent checks d["key"] == the last i.
 *   manager_queue  q.put(i), then q.get(timeout=60 s), checked to be i (one
 *                  unbounded Queue; the child is its only user). After the
 *                  child, the parent checks that the queue is empty.
 *   manager_lock   l.acquire(), then l.release() (a Lock; the child is its
 *                  only user). After the child, the parent checks that the
 *                  lock is free (a non-blocking acquire succeeds).
 * Keys are strings, values integers (msgpack str and int for mproc, pickled
 * str and int for Python).
 *
 * The implementations, exactly:
 *   mproc=   mp_manager_start(start_method MP_START_FORK, the rest zeroed);
 *            mp_manager_dict / mp_manager_queue(0) / mp_manager_lock; the
 *            child is an mp_process (fork) whose argument holds the proxy
 *            pointer; mp_dict_set + mp_dict_get; mp_mqueue_put(MP_FOREVER)
 *            + mp_mqueue_get(60 s); mp_mlock_acquire(MP_FOREVER) +
 *            mp_mlock_release. Values are mp_val_str("key") and
 *            mp_val_int(i) built on the stack; each result is freed.
 *   python=  bench/py/manager.py: get_context("fork").Manager(); m.dict(),
 *            m.Queue(), m.Lock(); a ctx.Process with the proxy as its
 *            argument; d["key"] = i, then d["key"]; q.put(i) +
 *            q.get(timeout=60); l.acquire() + l.release().
 * MT-safe: no. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "mproc.h"
#include "bench.h"

#define WARM 100             /* untimed operations in the child */
#define BATCH 100            /* operations between two looks at the clock */
#define GET_TIMEOUT 60.0     /* seconds a queue get may wait */
#define JOIN_SLACK 30.0      /* seconds past the budget to wait for the child */
#define SHUTDOWN_TIMEOUT 10.0

typedef enum { MK_DICT, MK_QUEUE, MK_LOCK } mkind_t;

static const char *const kind_name[] = {"manager_dict", "manager_queue",
                                        "manager_lock"};

/* msh_t is what the child reports (MAP_SHARED, made before the fork). */
typedef struct {
    _Atomic int failed;   /* the child's first error code */
    long ops;             /* timed operations (pairs) */
    double elapsed;       /* seconds they took */
    int64_t last;         /* the last i used (dict: the value left) */
} msh_t;

typedef struct {
    msh_t *sh;
    mp_proxy_t *p;
    mkind_t kind;
    double seconds;
} marg_t;

static int mfault(_Atomic int *failed, const char *who, int code,
                  const char *fmt, ...)
{
    _Atomic int local = 0;
    va_list ap;

    va_start(ap, fmt);
    code = mpb_vfault(failed ? failed : &local, who, code, fmt, ap);
    va_end(ap);
    return code;
}

/* one_op does the case's pair of calls with sequence number i, checked. */
static int one_op(const marg_t *a, int64_t i)
{
    const char *who = kind_name[a->kind];
    mp_val_t key = mp_val_str("key"), v = mp_val_int(i), *out = NULL;
    int rc;

    switch (a->kind) {
    case MK_DICT:
        if ((rc = mp_dict_set(a->p, &key, &v)) != 0)
            return mfault(&a->sh->failed, who, rc < 0 ? rc : -EPROTO,
                          "mp_dict_set %lld failed with %d", (long long)i, rc);
        if ((rc = mp_dict_get(a->p, &key, &out)) != 0)
            return mfault(&a->sh->failed, who, rc < 0 ? rc : -EPROTO,
                          "mp_dict_get after %lld failed with %d", (long long)i, rc);
        break;
    case MK_QUEUE:
        if ((rc = mp_mqueue_put(a->p, &v, MP_FOREVER)) != 0)
            return mfault(&a->sh->failed, who, rc < 0 ? rc : -EPROTO,
                          "mp_mqueue_put %lld failed with %d", (long long)i, rc);
        if ((rc = mp_mqueue_get(a->p, &out, GET_TIMEOUT)) != 0)
            return mfault(&a->sh->failed, who, rc < 0 ? rc : -EPROTO,
                          "mp_mqueue_get after %lld failed with %d", (long long)i, rc);
        break;
    case MK_LOCK:
        if ((rc = mp_mlock_acquire(a->p, MP_FOREVER)) != 0)
            return mfault(&a->sh->failed, who, rc < 0 ? rc : -EPROTO,
                          "mp_mlock_acquire %lld failed with %d", (long long)i, rc);
        if ((rc = mp_mlock_release(a->p)) != 0)
            return mfault(&a->sh->failed, who, rc < 0 ? rc : -EPROTO,
                          "mp_mlock_release %lld failed with %d", (long long)i, rc);
        return 0;
    }
    rc = 0;
    if (!out || out->type != MP_VAL_INT || out->v.i != i)
        rc = mfault(&a->sh->failed, who, -EPROTO, "operation %lld: got %s %lld",
                    (long long)i, !out ? "nothing" : out->type == MP_VAL_INT ?
                    "int" : "a non-int", out && out->type == MP_VAL_INT ?
                    (long long)out->v.i : 0LL);
    mp_val_free(out);
    return rc;
}

/* child: WARM untimed operations, then batches until the budget. */
static int child(void *arg)
{
    const marg_t *a = arg;
    int64_t i = 0;
    long n = 0;
    double t0, el;

    for (; i < WARM; i++)
        if (one_op(a, i) < 0)
            return 2;
    t0 = mpb_now();
    do {
        for (int k = 0; k < BATCH; k++, i++)
            if (one_op(a, i) < 0)
                return 2;
        n += BATCH;
        el = mpb_now() - t0;
    } while (el < a->seconds);
    a->sh->ops = n;
    a->sh->elapsed = el;
    a->sh->last = i - 1;
    return 0;
}

/* check_after verifies the object's state after the child (untimed). */
static int check_after(const marg_t *a)
{
    const char *who = kind_name[a->kind];
    mp_val_t key = mp_val_str("key"), *out = NULL;
    size_t n = 0;
    int rc;

    switch (a->kind) {
    case MK_DICT:
        if ((rc = mp_dict_get(a->p, &key, &out)) != 0)
            return mfault(NULL, who, rc < 0 ? rc : -EPROTO, "final get failed");
        rc = out->type == MP_VAL_INT && out->v.i == a->sh->last ? 0 :
             mfault(NULL, who, -EPROTO, "final value is not %lld",
                    (long long)a->sh->last);
        mp_val_free(out);
        return rc;
    case MK_QUEUE:
        if ((rc = mp_mqueue_qsize(a->p, &n)) != 0)
            return mfault(NULL, who, rc < 0 ? rc : -EPROTO, "qsize failed");
        return n == 0 ? 0 : mfault(NULL, who, -EPROTO, "%zu items left", n);
    case MK_LOCK:
        if ((rc = mp_mlock_acquire(a->p, 0)) != 0)
            return mfault(NULL, who, rc < 0 ? rc : -EPROTO,
                          "the lock is not free after the child (%d)", rc);
        if ((rc = mp_mlock_release(a->p)) != 0)
            return mfault(NULL, who, rc < 0 ? rc : -EPROTO, "final release");
        return 0;
    }
    return -EINVAL;
}

static int manager_round(const mpb_round_t *r, mkind_t kind, double *value)
{
    const char *who = kind_name[kind];
    mp_manager_opts_t opts = {.start_method = MP_START_FORK};
    msh_t *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    mp_manager_t *m = NULL;
    mpb_child_t kid = {0};
    marg_t a = {NULL, NULL, kind, r->warmup ? 0 : r->seconds};
    int rc, jrc;

    if (sh == MAP_FAILED)
        return -errno;
    memset(sh, 0, sizeof *sh);
    a.sh = sh;
    if ((rc = mp_manager_start(&m, &opts)) < 0) {
        rc = mfault(NULL, who, rc, "mp_manager_start failed");
        goto out;
    }
    rc = kind == MK_DICT ? mp_manager_dict(m, &a.p) :
         kind == MK_QUEUE ? mp_manager_queue(m, 0, &a.p) : mp_manager_lock(m, &a.p);
    if (rc < 0) {
        rc = mfault(NULL, who, rc, "making the object failed");
        goto out;
    }
    if ((rc = mpb_child_start(1, child, &a, sizeof a, &kid.mp, &kid.pid)) < 0) {
        rc = mfault(NULL, who, rc, "starting the child failed");
        goto out;
    }
    jrc = mpb_child_join(&kid, mpb_now() + JOIN_SLACK + 20 * r->seconds);
    mpb_child_kill(&kid);
    if (atomic_load(&sh->failed))
        rc = atomic_load(&sh->failed);
    else if (jrc < 0)
        rc = mfault(NULL, who, jrc, "the child failed");
    if (rc == 0)
        rc = check_after(&a);
    if (rc == 0)
        *value = (double)sh->ops / sh->elapsed;
out:
    mp_proxy_free(a.p);
    if (m) {
        int src = mp_manager_shutdown(m, SHUTDOWN_TIMEOUT);

        if (src < 0 && rc == 0)
            rc = mfault(NULL, who, src, "mp_manager_shutdown failed");
        mp_manager_free(m);
    }
    munmap(sh, sizeof *sh);
    return rc;
}

int mpb_manager_dict_mproc_round(const mpb_round_t *r, double *value)
{
    return manager_round(r, MK_DICT, value);
}

int mpb_manager_queue_mproc_round(const mpb_round_t *r, double *value)
{
    return manager_round(r, MK_QUEUE, value);
}

int mpb_manager_lock_mproc_round(const mpb_round_t *r, double *value)
{
    return manager_round(r, MK_LOCK, value);
}

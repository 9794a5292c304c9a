/* bench_shared.c: round functions of the shared-data cases (Value, Array,
 * SharedMemory).
 *
 * The cases:
 *   value_incr  two processes each repeat a locked increment of one shared
 *       Value('i') until told to stop; total increments per second.
 *       mproc: mp_value_add(v, 1, NULL) on an mp_value_new(MP_TYPE_INT)
 *       Value with its default lock (an RLock, as Python's).
 *       python=: Value('i') and `with v.get_lock(): v.value += 1`.
 *       The rounds follow lock_contended (bench_sync.c) exactly: the workers
 *       (mp_process children, fork start method) say they are ready, the
 *       benchmark process reads the clock and sets go, sleeps the budget and
 *       sets stop; each worker looks at stop every CONT_BATCH increments and
 *       records its count and end time. The value is the final count / (the
 *       later end - go); the final count must equal the sum of the workers'
 *       counts (no increment lost).
 *   array_sum  one child sums a shared array of ARRAY_N (10^7) doubles;
 *       elements summed per second. The benchmark process makes the array
 *       and fills it (a[i] = i % 1024, so every sum is exact whatever the
 *       order) before the child starts (untimed). The child sums it once
 *       untimed (the first touch of each page by a new process), then sums
 *       it over and over until the budget has passed (at least once),
 *       timing itself; it checks every sum. The value is passes x ARRAY_N /
 *       elapsed.
 *       mproc: mp_array_new(MP_TYPE_DOUBLE, ARRAY_N) with its default lock,
 *       which the child does not take: a plain C loop over mp_array_ptr (one
 *       accumulator, in order, as Python's sum; no vector tricks).
 *       python=: Array('d', ARRAY_N, lock=False) and sum(a) in the child:
 *       the idiomatic and fastest pure-Python form. lock=False is Python's
 *       fair counterpart of the unlocked C read: with the default lock,
 *       sum(a) would take the lock once per element and be far slower.
 *   shm_attach  create + attach + close + close + unlink cycles per second
 *       in one process, 4096-byte segments with fresh generated names.
 *       mproc: mp_shm_new(NULL name, 4096), mp_shm_attach(name), mp_shm_close
 *       of both, mp_shm_unlink, mp_shm_free of both (no unlink_on_exit).
 *       python=: SharedMemory(create=True, size=4096), SharedMemory(name),
 *       close(), close(), unlink(); Python's resource tracker (register and
 *       unregister messages to its process) is part of what Python users
 *       pay and is kept. raw=: the same eleven system calls and nothing
 *       else (see raw_shm_cycle), the floor of any named-segment cycle.
 *
 * Process start-up is not timed. The Python peers are bench/py/shared.py.
 * MT-safe: no. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mproc.h"
#include "bench.h"

/* Increments a value_incr worker does between two looks at the stop flag
 * (as lock_contended; the Python peer does the same). */
#define CONT_BATCH 100

/* Elements of the array_sum array. */
#define ARRAY_N 10000000L

/* Bytes of a shm_attach segment. */
#define SHM_SIZE 4096

#define CACHELINE 64

/* shared_map returns len zeroed bytes of MAP_SHARED|MAP_ANONYMOUS memory
 * (inherited by fork children), or NULL. */
static void *shared_map(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);

    return p == MAP_FAILED ? NULL : p;
}

/* ---- value_incr ---------------------------------------------------------------- */

/* incr_t is the round's control block (MAP_SHARED, made before the fork). */
typedef struct {
    _Alignas(CACHELINE) _Atomic int ready; /* workers at the starting line */
    _Atomic int go;                        /* set by the parent: start */
    _Atomic int stop;                      /* set by the parent: stop */
    _Atomic int failed;                    /* a worker's first error code */
    long done[2];                          /* each worker's own count */
    double end[2];                         /* when each worker stopped */
} incr_t;

typedef struct {
    incr_t *sh;
    mp_value_t *v;
    int idx;
} incr_arg_t;

static int incr_fail(incr_t *sh, int code)
{
    int expected = 0;

    fprintf(stderr, "mp_bench: value_incr: mp_value_add: %s\n", mp_strerror(code));
    atomic_compare_exchange_strong(&sh->failed, &expected, code);
    return 2;
}

static int incr_worker(void *arg)
{
    const incr_arg_t *a = arg;
    incr_t *sh = a->sh;
    mp_value_t *v = a->v;
    long n = 0;
    int rc;

    atomic_fetch_add(&sh->ready, 1);
    while (!atomic_load(&sh->go))
        mpb_sleep(20e-6);
    while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
        for (int i = 0; i < CONT_BATCH; i++)
            if ((rc = mp_value_add(v, 1, NULL)) != 0)
                return incr_fail(sh, rc);
        n += CONT_BATCH;
    }
    sh->end[a->idx] = mpb_now();
    sh->done[a->idx] = n;
    return 0;
}

int mpb_value_incr_mproc_round(const mpb_round_t *r, double *value)
{
    incr_t *sh = shared_map(sizeof *sh);
    mpb_child_t kids[2] = {{0}};
    mp_value_t *v = NULL;
    int64_t final = 0;
    double t0 = 0, t1;
    int rc, jrc, n = 0;

    if (!sh)
        return -errno;
    if ((rc = mp_value_new(&v, MP_TYPE_INT, 0, NULL, NULL)) < 0)
        goto out;
    for (; n < 2; n++) {
        incr_arg_t a = {sh, v, n};

        if ((rc = mpb_child_start(1, incr_worker, &a, sizeof a, &kids[n].mp,
                                  &kids[n].pid)) < 0)
            break;
    }
    if (rc == 0)
        rc = mpb_wait_ready(&sh->ready, &sh->failed, 2);
    if (rc < 0) {   /* release whoever started, then report */
        atomic_store(&sh->stop, 1);
        atomic_store(&sh->go, 1);
        goto join;
    }
    t0 = mpb_now();
    atomic_store(&sh->go, 1);
    mpb_sleep(r->seconds);
    atomic_store(&sh->stop, 1);
join:
    for (int i = 0; i < n; i++)
        if ((jrc = mpb_child_join(&kids[i], mpb_now() + 30 + 20 * r->seconds)) < 0 &&
            rc == 0)
            rc = jrc;
    for (int i = 0; i < n; i++)
        mpb_child_kill(&kids[i]);
    if (atomic_load(&sh->failed) && (rc == 0 || rc == -ECHILD))
        rc = atomic_load(&sh->failed);
    if (rc == 0)
        rc = mp_value_get_i64(v, &final);
    if (rc == 0 && final != sh->done[0] + sh->done[1]) {
        fprintf(stderr, "mp_bench: value_incr: value %lld, workers counted "
                "%ld + %ld\n", (long long)final, sh->done[0], sh->done[1]);
        rc = -EPROTO;
    }
    if (rc == 0) {
        t1 = sh->end[0] > sh->end[1] ? sh->end[0] : sh->end[1];
        *value = (double)final / (t1 - t0);
    }
out:
    mp_value_free(v);
    munmap(sh, sizeof *sh);
    return rc;
}

/* ---- array_sum ------------------------------------------------------------------- */

typedef struct {
    _Atomic int failed;
    long passes;   /* timed passes */
    double elapsed;
} sum_t;

typedef struct {
    sum_t *sh;
    mp_array_t *a;
    double seconds;
    double want;   /* the exact sum */
} sum_arg_t;

/* sum_pass adds the n doubles at p in order, one accumulator: the plain loop
 * (the compiler may not reorder floating-point additions). */
static double sum_pass(const double *p, long n)
{
    double s = 0;

    for (long i = 0; i < n; i++)
        s += p[i];
    return s;
}

static int sum_worker(void *arg)
{
    const sum_arg_t *a = arg;
    const double *p = mp_array_ptr(a->a);
    long n = mp_array_len(a->a), passes = 0;
    double t0, elapsed, s;

    if (!p || n != ARRAY_N) {
        atomic_store(&a->sh->failed, -EINVAL);
        return 2;
    }
    s = sum_pass(p, n);                      /* untimed: first touch */
    t0 = mpb_now();
    do {
        if (s != a->want)
            break;
        s = sum_pass(p, n);
        passes++;
    } while ((elapsed = mpb_now() - t0) < a->seconds);
    if (s != a->want) {
        fprintf(stderr, "mp_bench: array_sum: sum %.17g, expected %.17g\n", s,
                a->want);
        atomic_store(&a->sh->failed, -EPROTO);
        return 3;
    }
    a->sh->passes = passes;
    a->sh->elapsed = elapsed;
    return 0;
}

int mpb_array_sum_mproc_round(const mpb_round_t *r, double *value)
{
    sum_t *sh = shared_map(sizeof *sh);
    mpb_child_t kid = {0};
    mp_array_t *a = NULL;
    double *p, want = 0;
    int rc, jrc;

    if (!sh)
        return -errno;
    if ((rc = mp_array_new(&a, MP_TYPE_DOUBLE, 0, (size_t)ARRAY_N, NULL, NULL)) < 0)
        goto out;
    p = mp_array_ptr(a);
    for (long i = 0; i < ARRAY_N; i++) {
        p[i] = (double)(i % 1024);
        want += p[i];
    }
    sum_arg_t arg = {sh, a, r->warmup ? 0 : r->seconds, want};

    if ((rc = mpb_child_start(1, sum_worker, &arg, sizeof arg, &kid.mp, &kid.pid)) < 0)
        goto out;
    jrc = mpb_child_join(&kid, mpb_now() + 60 + 20 * r->seconds);
    mpb_child_kill(&kid);
    rc = atomic_load(&sh->failed) ? atomic_load(&sh->failed) : jrc;
    if (rc == 0 && !(sh->passes > 0 && sh->elapsed > 0))
        rc = -EPROTO;
    if (rc == 0)
        *value = (double)sh->passes * (double)ARRAY_N / sh->elapsed;
out:
    mp_array_free(a);
    munmap(sh, sizeof *sh);
    return rc;
}

/* ---- shm_attach ------------------------------------------------------------------- */

/* shm_cycle is one create + attach + close + close + unlink cycle. */
static int shm_cycle(void *state)
{
    mp_shm_t *a = NULL, *b = NULL;
    int rc;

    (void)state;
    if ((rc = mp_shm_new(&a, NULL, SHM_SIZE, NULL)) < 0)
        return rc;
    rc = mp_shm_attach(&b, mp_shm_name(a));
    if (rc == 0 && mp_shm_size(b) != SHM_SIZE)
        rc = -EPROTO;
    if (rc == 0)
        rc = mp_shm_close(b);
    if (rc == 0)
        rc = mp_shm_close(a);
    int urc = mp_shm_unlink(a);   /* whatever happened: leave nothing */
    if (rc == 0)
        rc = urc;
    mp_shm_free(b);
    mp_shm_free(a);
    return rc;
}

int mpb_shm_attach_mproc_round(const mpb_round_t *r, double *value)
{
    return mpb_rate_loop(r, shm_cycle, NULL, 100, value);
}

/* raw= : the floor. The same cycle as the system calls it needs and nothing
 * else, on /dev/shm directly: create (open O_CREAT|O_EXCL, ftruncate, mmap,
 * close), attach (open, fstat for the size, mmap, close), two munmaps and
 * the unlink. Names from a counter (no check of the name's form, no
 * bookkeeping). */
static int raw_shm_cycle(void *state)
{
    static unsigned long seq;
    char path[64];
    struct stat st;
    void *p = MAP_FAILED, *q = MAP_FAILED;
    int rc = 0;

    (void)state;
    snprintf(path, sizeof path, "/dev/shm/mpb_raw_%d_%lu", (int)getpid(), seq++);
    int fd = open(path, O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    if (ftruncate(fd, SHM_SIZE) < 0 ||
        (p = mmap(NULL, SHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED)
        rc = -errno;
    close(fd);
    if (rc == 0) {
        int fd2 = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
        if (fd2 < 0 || fstat(fd2, &st) < 0 ||
            (q = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd2,
                      0)) == MAP_FAILED)
            rc = -errno;
        else if (st.st_size != SHM_SIZE)
            rc = -EPROTO;
        if (fd2 >= 0)
            close(fd2);
    }
    if (q != MAP_FAILED)
        munmap(q, SHM_SIZE);
    if (p != MAP_FAILED)
        munmap(p, SHM_SIZE);
    if (unlink(path) < 0 && rc == 0)
        rc = -errno;
    return rc;
}

int mpb_shm_attach_raw_round(const mpb_round_t *r, double *value)
{
    return mpb_rate_loop(r, raw_shm_cycle, NULL, 100, value);
}

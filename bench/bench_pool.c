/* bench_pool.c: round functions of the pool cases (Pool: map, apply_async,
 * apply).
 *
 * Every round, mproc's and Python's alike, makes one pool of POOL_WORKERS
 * (2) worker processes with the fork start method, warms it with untimed
 * work, times the case's operation repeated until the budget has passed,
 * then closes and joins the pool. Making, warming and closing the pool are
 * not timed (Python: Pool(2) once, warm it, then time).
 *
 * The cases:
 *   pool_map_tiny  items per second: map of x -> x + 1 over MAP_N (10^6)
 *       int64 items with the default chunksize (Python's: n / (4 x workers)
 *       rounded up, here 125,000 items, 8 tasks). One untimed map first,
 *       then maps until the time spent inside the map calls reaches the
 *       budget (at least one). Between maps, outside the clock, every
 *       result is checked (out[i] == i + 1) and the output cleared.
 *   pool_apply_async  tasks per second: batches of ASYNC_N (20,000)
 *       apply_async(incr, i), then the get of each in order (timeout 60 s)
 *       checking that it is i + 1, and its release. One untimed batch
 *       first, then batches until the time spent in them reaches the budget
 *       (at least one); checks are inside the clock, on both sides.
 *   pool_apply_rtt  microseconds per call: apply(incr, i) one at a time,
 *       each result checked. RTT_WARM untimed calls first, then calls until
 *       the budget has passed (at least 100).
 *   pool_map_sleep  efficiency: map of SLEEP_N (200) items whose function
 *       sleeps SLEEP_S (5 ms) and returns x + 1, default chunksize (25
 *       items, 8 tasks). The ideal time is SLEEP_N x SLEEP_S / POOL_WORKERS
 *       (0.5 s); the value is maps x ideal / the time spent inside the map
 *       calls (1: perfect; higher is better). One untimed map of
 *       SLEEP_WARM items first, then maps until the budget (at least one).
 *
 * The implementations, exactly:
 *   mproc=   mp_pool_new(2, start_method MP_START_FORK); mp_pool_map with a
 *            zeroed mp_map_opts_t (chunksize 0: the default) into a C array
 *            of int64; mp_pool_apply_async + mp_async_get(60 s) +
 *            mp_async_free; mp_pool_apply into an 8-byte buffer. The task
 *            functions are global (mpb_pool_*), as a pool needs under spawn.
 *            Arguments and results are 8-byte int64 in host order.
 *   python=  bench/py/pool.py: get_context("fork").Pool(2); pool.map(incr,
 *            data) on data = list(range(10**6)) (default chunksize), the
 *            result list compared with the expected one between maps;
 *            pool.apply_async(incr, (i,)) + r.get(60); pool.apply(incr,
 *            (i,)); pool.map(nap, range(200)) with time.sleep(0.005).
 * MT-safe: no. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mproc.h"
#include "bench.h"

#define POOL_WORKERS 2
#define MAP_N 1000000L       /* pool_map_tiny: items per map */
#define ASYNC_N 20000        /* pool_apply_async: tasks per batch */
#define GET_TIMEOUT 60.0     /* seconds a get may wait before the round fails */
#define RTT_WARM 100         /* pool_apply_rtt: untimed calls */
#define SLEEP_N 200L         /* pool_map_sleep: items per map */
#define SLEEP_S 0.005        /* pool_map_sleep: each item's sleep */
#define SLEEP_WARM 8         /* pool_map_sleep: items of the untimed map */
#define JOIN_TIMEOUT 30.0

/* The functions the workers run: global, so that a pool can locate them
 * under any start method. */
int mpb_pool_incr_item(const void *in, void *out);
int mpb_pool_nap_item(const void *in, void *out);
int mpb_pool_incr_task(const void *arg, size_t arg_len, mp_out_t *out);

/* ---- the workers' functions ------------------------------------------------------ */

/* mpb_pool_incr_item: one map item, int64 x -> x + 1. */
int mpb_pool_incr_item(const void *in, void *out)
{
    int64_t x;

    memcpy(&x, in, sizeof x);
    x++;
    memcpy(out, &x, sizeof x);
    return 0;
}

/* mpb_pool_nap_item: one map item that sleeps SLEEP_S, then x -> x + 1. */
int mpb_pool_nap_item(const void *in, void *out)
{
    mpb_sleep(SLEEP_S);
    return mpb_pool_incr_item(in, out);
}

/* mpb_pool_incr_task: apply's task, an 8-byte int64 x -> x + 1. */
int mpb_pool_incr_task(const void *arg, size_t arg_len, mp_out_t *out)
{
    int64_t x;

    if (arg_len != sizeof x)
        return -EINVAL;
    memcpy(&x, arg, sizeof x);
    x++;
    return mp_out_write(out, &x, sizeof x);
}

/* ---- helpers ------------------------------------------------------------------------ */

static int pfault(const char *who, int code, const char *fmt, ...)
{
    _Atomic int failed = 0;
    va_list ap;

    va_start(ap, fmt);
    code = mpb_vfault(&failed, who, code, fmt, ap);
    va_end(ap);
    return code;
}

/* pool_start makes the round's pool: POOL_WORKERS processes, fork. */
static int pool_start(const char *who, mp_pool_t **p)
{
    mp_pool_opts_t opts = {.start_method = MP_START_FORK};
    int rc = mp_pool_new(p, POOL_WORKERS, &opts);

    if (rc < 0)
        return pfault(who, rc, "mp_pool_new(%d) failed", POOL_WORKERS);
    return 0;
}

/* pool_finish ends the round's pool: close and join when the round went
 * well (a failing join fails it), then free (which terminates a pool still
 * running). Returns rc, or the close or join code if rc was 0. */
static int pool_finish(const char *who, mp_pool_t *p, int rc)
{
    int crc;

    if (!p)
        return rc;
    if (rc == 0) {
        if ((crc = mp_pool_close(p)) < 0)
            rc = pfault(who, crc, "mp_pool_close failed");
        else if ((crc = mp_pool_join(p, JOIN_TIMEOUT)) < 0)
            rc = pfault(who, crc, "mp_pool_join failed");
    }
    mp_pool_free(p);
    return rc;
}

/* map_items maps fn over n int64 items of in into out (default chunksize)
 * and adds the time the call took to *elapsed. */
static int map_items(const char *who, mp_pool_t *p, mp_map_fn fn,
                     const int64_t *in, int64_t *out, size_t n, double *elapsed)
{
    mp_map_opts_t mo = {0};
    size_t failed = 0;
    double t0 = mpb_now();
    int rc = mp_pool_map(p, fn, in, n, sizeof *in, out, sizeof *out, &mo, &failed);

    *elapsed += mpb_now() - t0;
    if (rc != 0)
        return pfault(who, rc < 0 ? rc : -EPROTO, "mp_pool_map of %zu items: "
                      "item %zu failed with %d", n, failed, rc);
    return 0;
}

/* check_items checks out[i] == in[i] + 1 for n items and clears out. */
static int check_items(const char *who, const int64_t *in, int64_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (out[i] != in[i] + 1)
            return pfault(who, -EPROTO, "item %zu: %lld, expected %lld", i,
                          (long long)out[i], (long long)(in[i] + 1));
    memset(out, 0, n * sizeof *out);
    return 0;
}

/* map_round is pool_map_tiny and pool_map_sleep: maps of n items of fn,
 * one untimed of warm items first, then maps until the time spent in them
 * reaches the budget. *maps and *elapsed receive the timed maps and time. */
static int map_round(const mpb_round_t *r, const char *who, mp_map_fn fn,
                     size_t n, size_t warm, long *maps, double *elapsed)
{
    int64_t *in = malloc(n * sizeof *in), *out = calloc(n, sizeof *out);
    mp_pool_t *p = NULL;
    double untimed = 0;
    int rc;

    *maps = 0;
    *elapsed = 0;
    if (!in || !out) {
        rc = pfault(who, -ENOMEM, "no room for %zu items", n);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        in[i] = (int64_t)i;
    if ((rc = pool_start(who, &p)) < 0)
        goto out;
    rc = map_items(who, p, fn, in, out, warm, &untimed);
    if (rc == 0)
        rc = check_items(who, in, out, warm);
    while (rc == 0 && (*maps == 0 || *elapsed < r->seconds)) {
        rc = map_items(who, p, fn, in, out, n, elapsed);
        if (rc == 0)
            rc = check_items(who, in, out, n);
        ++*maps;
    }
out:
    rc = pool_finish(who, p, rc);
    free(in);
    free(out);
    return rc;
}

/* ---- pool_map_tiny ------------------------------------------------------------------ */

int mpb_pool_map_tiny_mproc_round(const mpb_round_t *r, double *value)
{
    long maps;
    double elapsed;
    int rc = map_round(r, "pool_map_tiny", mpb_pool_incr_item, MAP_N, MAP_N,
                       &maps, &elapsed);

    if (rc == 0)
        *value = (double)maps * (double)MAP_N / elapsed;
    return rc;
}

/* ---- pool_map_sleep ----------------------------------------------------------------- */

int mpb_pool_map_sleep_mproc_round(const mpb_round_t *r, double *value)
{
    long maps;
    double elapsed;
    int rc = map_round(r, "pool_map_sleep", mpb_pool_nap_item, SLEEP_N,
                       SLEEP_WARM, &maps, &elapsed);

    if (rc == 0)
        *value = (double)maps * (SLEEP_N * SLEEP_S / POOL_WORKERS) / elapsed;
    return rc;
}

/* ---- pool_apply_async --------------------------------------------------------------- */

/* async_batch submits n tasks apply_async(incr, i), then gets each in order
 * (checking i + 1) and frees it. Every submitted result is freed, also
 * after a failure. */
static int async_batch(mp_pool_t *p, mp_async_t **res, int n)
{
    const char *who = "pool_apply_async";
    int rc = 0, k = 0;

    for (; k < n; k++) {
        int64_t x = k;

        if ((rc = mp_pool_apply_async(p, mpb_pool_incr_task, &x, sizeof x,
                                      NULL, &res[k])) < 0) {
            rc = pfault(who, rc, "mp_pool_apply_async of task %d failed", k);
            break;
        }
    }
    for (int i = 0; i < k; i++) {
        const void *data = NULL;
        size_t len = 0;
        int64_t y = 0;
        int grc;

        if (rc == 0) {
            grc = mp_async_get(res[i], GET_TIMEOUT, &data, &len);
            if (grc != 0)
                rc = pfault(who, grc < 0 ? grc : -EPROTO, "get of task %d "
                            "failed with %d", i, grc);
            else if (len != sizeof y)
                rc = pfault(who, -EPROTO, "task %d: %zu result bytes, not 8",
                            i, len);
            else if (memcpy(&y, data, sizeof y), y != (int64_t)i + 1)
                rc = pfault(who, -EPROTO, "task %d: result %lld, expected %d",
                            i, (long long)y, i + 1);
        }
        mp_async_free(res[i]);
        res[i] = NULL;
    }
    return rc;
}

int mpb_pool_apply_async_mproc_round(const mpb_round_t *r, double *value)
{
    mp_async_t **res = calloc(ASYNC_N, sizeof *res);
    mp_pool_t *p = NULL;
    double elapsed = 0, t0;
    long batches = 0;
    int rc;

    if (!res)
        return -ENOMEM;
    if ((rc = pool_start("pool_apply_async", &p)) < 0)
        goto out;
    rc = async_batch(p, res, ASYNC_N);     /* untimed */
    while (rc == 0 && (batches == 0 || elapsed < r->seconds)) {
        t0 = mpb_now();
        rc = async_batch(p, res, ASYNC_N);
        elapsed += mpb_now() - t0;
        batches++;
    }
    if (rc == 0)
        *value = (double)batches * ASYNC_N / elapsed;
out:
    rc = pool_finish("pool_apply_async", p, rc);
    free(res);
    return rc;
}

/* ---- pool_apply_rtt ----------------------------------------------------------------- */

typedef struct {
    mp_pool_t *p;
    int64_t seq;
} rtt_t;

/* rtt_call is one apply(incr, seq), checked. */
static int rtt_call(void *state)
{
    rtt_t *t = state;
    int64_t x = t->seq++, y = 0;
    size_t len = 0;
    int rc = mp_pool_apply(t->p, mpb_pool_incr_task, &x, sizeof x, &y,
                           sizeof y, &len);

    if (rc != 0)
        return pfault("pool_apply_rtt", rc < 0 ? rc : -EPROTO, "apply %lld "
                      "failed with %d", (long long)x, rc);
    if (len != sizeof y || y != x + 1)
        return pfault("pool_apply_rtt", -EPROTO, "apply %lld: %zu bytes, "
                      "result %lld", (long long)x, len, (long long)y);
    return 0;
}

int mpb_pool_apply_rtt_mproc_round(const mpb_round_t *r, double *value)
{
    rtt_t t = {NULL, 0};
    double rate = 0;
    int rc;

    if ((rc = pool_start("pool_apply_rtt", &t.p)) < 0)
        return rc;
    for (int i = 0; i < RTT_WARM && rc == 0; i++)   /* untimed */
        rc = rtt_call(&t);
    if (rc == 0)
        rc = mpb_rate_loop(r, rtt_call, &t, 100, &rate);
    if (rc == 0)
        *value = 1e6 / rate;
    return pool_finish("pool_apply_rtt", t.p, rc);
}

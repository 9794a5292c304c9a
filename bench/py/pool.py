"""pool.py: the Python peer of the pool benchmark cases (bench_pool.c).

One round of the given case for about --seconds seconds; prints the value
on stdout. Each round makes one get_context("fork").Pool(2), warms it with
untimed work, times the case's operation repeated until the budget has
passed, then closes and joins the pool. Interpreter start-up, making the
pool, warming it and closing it are not timed. The protocols are the C
side's (see the top of bench_pool.c):

  map_tiny      pool.map(incr, data) over data = list(range(10**6)) with
                the default chunksize; one untimed map first, then maps
                until the time inside the map calls reaches the budget; each
                result list is compared with the expected one between maps,
                outside the clock. Items per second.
  apply_async   batches of 20,000 pool.apply_async(incr, (i,)), then
                r.get(60) of each in order, checked to be i + 1; one
                untimed batch first, then batches until the budget. Tasks
                per second.
  apply_rtt     pool.apply(incr, (i,)) one at a time, each result checked;
                100 untimed calls first, then calls until the budget (at
                least 100). Microseconds per call.
  map_sleep     pool.map(nap, range(200)), nap sleeping 5 ms and returning
                x + 1, default chunksize; one untimed map of 8 items first,
                then maps until the budget. Efficiency: maps x the ideal
                time (200 x 5 ms / 2 workers = 0.5 s) / the time inside the
                map calls.

Usage: python3 pool.py --case CASE [--seconds S]
"""
import os
import sys

# multiprocessing.pool imports the standard module "queue", which this
# directory's queue.py would shadow: take the directory off the module path.
if sys.path and os.path.abspath(sys.path[0]) == \
        os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import argparse  # noqa: E402
import multiprocessing  # noqa: E402
import time  # noqa: E402

WORKERS = 2
MAP_N = 1_000_000
ASYNC_N = 20_000
GET_TIMEOUT = 60
RTT_WARM = 100
SLEEP_N = 200
SLEEP_S = 0.005
SLEEP_WARM = 8


def incr(x):
    return x + 1


def nap(x):
    time.sleep(SLEEP_S)
    return x + 1


def map_round(pool, fn, n, warm, seconds):
    """Maps of fn over range(n) after one untimed map of warm items;
    returns (maps, time inside the timed map calls)."""
    data = list(range(n))
    expected = list(range(1, n + 1))
    if pool.map(fn, data[:warm]) != expected[:warm]:
        raise RuntimeError("warm-up map: wrong results")
    perf = time.perf_counter
    maps = 0
    elapsed = 0.0
    while maps == 0 or elapsed < seconds:
        t0 = perf()
        res = pool.map(fn, data)
        elapsed += perf() - t0
        maps += 1
        if res != expected:
            raise RuntimeError("map %d: wrong results" % maps)
        del res
    return maps, elapsed


def map_tiny(pool, seconds):
    maps, elapsed = map_round(pool, incr, MAP_N, MAP_N, seconds)
    return maps * MAP_N / elapsed


def map_sleep(pool, seconds):
    maps, elapsed = map_round(pool, nap, SLEEP_N, SLEEP_WARM, seconds)
    return maps * (SLEEP_N * SLEEP_S / WORKERS) / elapsed


def async_batch(pool, n):
    apply_async = pool.apply_async
    rs = [apply_async(incr, (i,)) for i in range(n)]
    for i, r in enumerate(rs):
        y = r.get(GET_TIMEOUT)
        if y != i + 1:
            raise RuntimeError("task %d: result %r, expected %d" % (i, y, i + 1))


def apply_async(pool, seconds):
    async_batch(pool, ASYNC_N)        # untimed
    perf = time.perf_counter
    batches = 0
    elapsed = 0.0
    while batches == 0 or elapsed < seconds:
        t0 = perf()
        async_batch(pool, ASYNC_N)
        elapsed += perf() - t0
        batches += 1
    return batches * ASYNC_N / elapsed


def apply_rtt(pool, seconds):
    apply = pool.apply
    seq = 0

    def call():
        nonlocal seq
        y = apply(incr, (seq,))
        if y != seq + 1:
            raise RuntimeError("apply %d: result %r" % (seq, y))
        seq += 1

    for _ in range(RTT_WARM):         # untimed
        call()
    perf = time.perf_counter
    n = 0
    t0 = perf()
    while True:
        call()
        n += 1
        elapsed = perf() - t0
        if n >= 100 and elapsed >= seconds:
            break
    return elapsed / n * 1e6


CASES = {
    "map_tiny": map_tiny,
    "apply_async": apply_async,
    "apply_rtt": apply_rtt,
    "map_sleep": map_sleep,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", required=True, choices=sorted(CASES))
    ap.add_argument("--seconds", type=float, default=0.5)
    a = ap.parse_args()
    ctx = multiprocessing.get_context("fork")
    pool = ctx.Pool(WORKERS)
    try:
        value = CASES[a.case](pool, a.seconds)
    except RuntimeError as e:
        pool.terminate()
        pool.join()
        print("pool.py %s: %s" % (a.case, e), file=sys.stderr)
        return 1
    except BaseException:
        pool.terminate()
        pool.join()
        raise
    pool.close()
    pool.join()
    print("%.6g" % value)
    return 0


if __name__ == "__main__":
    sys.exit(main())

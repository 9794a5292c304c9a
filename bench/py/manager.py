"""manager.py: the Python peer of the manager benchmark cases
(bench_manager.c).

One round of the given case for about --seconds seconds; prints the value
(operations per second) on stdout. The protocol is the C side's (see the
top of bench_manager.c): get_context("fork").Manager() is started and the
object made outside the clock; one ctx.Process child receives the proxy
as its argument, does WARM (100) untimed operations (its first call opens
its own connection), then does operations in batches of BATCH (100),
reading the clock after each batch, until the budget has passed; it stores
its count and elapsed time in shared memory. The value is ops / elapsed.

One operation is a PAIR of calls (two round trips to the manager), as in C:

  dict   d["key"] = i, then d["key"], checked to be i; afterwards the
         parent checks that d["key"] is the last i.
  queue  q.put(i), then q.get(timeout=60), checked to be i; afterwards the
         parent checks that the queue is empty.
  lock   l.acquire(), then l.release(); afterwards the parent checks that
         the lock is free (l.acquire(False) succeeds).

Usage: python3 manager.py --case CASE [--seconds S]
"""
import os
import sys

# multiprocessing.managers imports the standard module "queue", which this
# directory's queue.py would shadow: take the directory off the module path.
if sys.path and os.path.abspath(sys.path[0]) == \
        os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import argparse  # noqa: E402
import multiprocessing  # noqa: E402
import time  # noqa: E402

WARM = 100
BATCH = 100
GET_TIMEOUT = 60
JOIN_SLACK = 30


def dict_op(d, i):
    d["key"] = i
    y = d["key"]
    if y != i:
        raise RuntimeError("dict: got %r, expected %d" % (y, i))


def queue_op(q, i):
    q.put(i)
    y = q.get(timeout=GET_TIMEOUT)
    if y != i:
        raise RuntimeError("queue: got %r, expected %d" % (y, i))


def lock_op(lk, i):
    lk.acquire()
    lk.release()


OPS = {"dict": dict_op, "queue": queue_op, "lock": lock_op}


def child(case, proxy, seconds, result):
    op = OPS[case]
    i = 0
    while i < WARM:                   # untimed
        op(proxy, i)
        i += 1
    perf = time.perf_counter
    n = 0
    t0 = perf()
    while True:
        for _ in range(BATCH):
            op(proxy, i)
            i += 1
        n += BATCH
        elapsed = perf() - t0
        if elapsed >= seconds:
            break
    result[0] = n
    result[1] = elapsed
    result[2] = i - 1


def make(manager, case):
    if case == "dict":
        return manager.dict()
    if case == "queue":
        return manager.Queue()
    return manager.Lock()


def check_after(case, proxy, last):
    if case == "dict":
        if proxy["key"] != last:
            raise RuntimeError("dict: final value %r, expected %d"
                               % (proxy["key"], last))
    elif case == "queue":
        if proxy.qsize() != 0:
            raise RuntimeError("queue: %d items left" % proxy.qsize())
    else:
        if not proxy.acquire(False):
            raise RuntimeError("lock: not free after the child")
        proxy.release()


def run(ctx, case, seconds):
    result = ctx.Array("d", 3, lock=False)
    with ctx.Manager() as manager:
        proxy = make(manager, case)
        p = ctx.Process(target=child, args=(case, proxy, seconds, result))
        p.start()
        p.join(JOIN_SLACK + 20 * seconds)
        if p.exitcode is None:
            p.kill()
            p.join()
            raise RuntimeError("the child did not finish")
        if p.exitcode != 0:
            raise RuntimeError("child exit code %r" % p.exitcode)
        check_after(case, proxy, int(result[2]))
        del proxy
    return result[0] / result[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", required=True, choices=sorted(OPS))
    ap.add_argument("--seconds", type=float, default=0.5)
    a = ap.parse_args()
    ctx = multiprocessing.get_context("fork")
    try:
        value = run(ctx, a.case, a.seconds)
    except RuntimeError as e:
        print("manager.py %s: %s" % (a.case, e), file=sys.stderr)
        return 1
    print("%.6g" % value)
    return 0


if __name__ == "__main__":
    sys.exit(main())

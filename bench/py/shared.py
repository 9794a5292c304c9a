"""shared.py: the Python peer of the shared-data benchmark cases
(bench_shared.c).

One round of the given case for about --seconds seconds; prints the value
on stdout. Interpreter start-up and process start-up are not timed.
Processes use the fork start method, as the C side.

  value_incr  2 Processes x (with v.get_lock(): v.value += 1) on one
              Value('i') (its default lock, an RLock) until stopped; total
              increments per second (checked against the workers' own
              counts). The protocol is lock_contended's (sync.py).
  array_sum   one child sums an Array('d', 10**7, lock=False) with sum(a),
              once untimed, then over and over until the budget has passed;
              elements per second. lock=False: the C side reads without the
              lock too, and with the default lock sum(a) would take it once
              per element. sum(a) is the idiomatic, fastest pure-Python way.
  shm_attach  SharedMemory(create=True, size=4096), SharedMemory(name),
              close(), close(), unlink(): cycles per second in one process,
              resource tracker included (it is what Python users pay).

Usage: python3 shared.py --case CASE [--seconds S]
"""
import argparse
import array
import ctypes
import multiprocessing
import sys
import time
from multiprocessing import shared_memory

CONT_BATCH = 100      # increments between two looks at the stop flag
ARRAY_N = 10_000_000
SHM_SIZE = 4096


# ---- value_incr ------------------------------------------------------------

def incr_worker(idx, v, ready, go, stop, done, end):
    lock = v.get_lock()
    ready.release()
    while not go.value:
        time.sleep(20e-6)
    n = 0
    while not stop.value:
        for _ in range(CONT_BATCH):
            with lock:
                v.value += 1
        n += CONT_BATCH
    end[idx] = time.monotonic()
    done[idx] = n


def value_incr(ctx, seconds):
    v = ctx.Value("i", 0)
    ready = ctx.Semaphore(0)
    go = ctx.Value("i", 0, lock=False)
    stop = ctx.Value("i", 0, lock=False)
    done = ctx.Array("q", 2, lock=False)
    end = ctx.Array("d", 2, lock=False)
    procs = [ctx.Process(target=incr_worker,
                         args=(i, v, ready, go, stop, done, end))
             for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        ready.acquire()
    t0 = time.monotonic()
    go.value = 1
    time.sleep(seconds)
    stop.value = 1
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError("worker exit code %r" % p.exitcode)
    if v.value != done[0] + done[1]:
        raise RuntimeError("value %d != %d + %d"
                           % (v.value, done[0], done[1]))
    return v.value / (max(end[0], end[1]) - t0)


# ---- array_sum -------------------------------------------------------------

def sum_worker(a, seconds, want, result):
    s = sum(a)                    # untimed: first touch
    passes = 0
    t0 = time.perf_counter()
    while True:
        if s != want:
            raise RuntimeError("sum %r, expected %r" % (s, want))
        s = sum(a)
        passes += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            break
    if s != want:
        raise RuntimeError("sum %r, expected %r" % (s, want))
    result[0] = passes
    result[1] = elapsed


def array_sum(ctx, seconds):
    a = ctx.Array("d", ARRAY_N, lock=False)
    # a[i] = i % 1024, filled by copying a repeated block (untimed).
    block = array.array("d", range(1024))
    pattern = block * (ARRAY_N // 1024) + block[:ARRAY_N % 1024]
    ctypes.memmove(a, pattern.buffer_info()[0], ARRAY_N * 8)
    want = float(sum(range(1024)) * (ARRAY_N // 1024)
                 + sum(range(ARRAY_N % 1024)))
    del pattern
    result = ctx.Array("d", 2, lock=False)
    p = ctx.Process(target=sum_worker, args=(a, seconds, want, result))
    p.start()
    p.join()
    if p.exitcode != 0:
        raise RuntimeError("child exit code %r" % p.exitcode)
    return result[0] * ARRAY_N / result[1]


# ---- shm_attach ------------------------------------------------------------

def shm_cycle():
    a = shared_memory.SharedMemory(create=True, size=SHM_SIZE)
    b = shared_memory.SharedMemory(a.name)
    b.close()
    a.close()
    a.unlink()


def shm_attach(seconds):
    for _ in range(10):           # untimed: starts the resource tracker
        shm_cycle()
    n = 0
    perf = time.perf_counter
    t0 = perf()
    while True:
        shm_cycle()
        n += 1
        elapsed = perf() - t0
        if elapsed >= seconds and n >= 100:
            break
    return n / elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", required=True,
                    choices=["value_incr", "array_sum", "shm_attach"])
    ap.add_argument("--seconds", type=float, default=0.5)
    a = ap.parse_args()
    ctx = multiprocessing.get_context("fork")
    try:
        if a.case == "value_incr":
            value = value_incr(ctx, a.seconds)
        elif a.case == "array_sum":
            value = array_sum(ctx, a.seconds)
        else:
            value = shm_attach(a.seconds)
    except RuntimeError as e:
        print("shared.py %s: %s" % (a.case, e), file=sys.stderr)
        return 1
    print("%.6g" % value)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""sync.py: the Python peer of the sync benchmark cases (bench_sync.c).

One round of the given case for about --seconds seconds; prints the value
on stdout. Interpreter start-up, process start-up and the first round trip
or barrier round are not timed. Processes use the fork start method, as the
C side.

  lock_uncontended  multiprocessing.Lock() acquire + release in one thread;
                    pairs per second
  lock_contended    2 Processes x (acquire, counter.value += 1, release) on
                    one Lock and one Value('i', lock=False) until stopped;
                    total increments per second (checked against the
                    workers' own counts)
  event_pingpong    this process (A) and one child (B) alternate through two
                    Events: A sets e1, B waits e1, clears it, sets e2; A
                    waits e2, clears it, ...; round trips per second
  barrier_rounds    this process and one child wait on one Barrier(2) over
                    and over; rounds per second

Usage: python3 sync.py --case CASE [--seconds S]
"""
import argparse
import multiprocessing
import sys
import time

UNCONT_BATCH = 1000   # acquire/release pairs between two clock reads
CONT_BATCH = 100      # increments between two looks at the stop flag


def lock_uncontended(ctx, seconds):
    lock = ctx.Lock()
    acq, rel = lock.acquire, lock.release
    for _ in range(UNCONT_BATCH):
        acq()
        rel()
    n = 0
    t0 = time.perf_counter()
    while True:
        for _ in range(UNCONT_BATCH):
            acq()
            rel()
        n += UNCONT_BATCH
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return n / elapsed


def contend_worker(idx, lock, counter, ready, go, stop, done, end):
    acq, rel = lock.acquire, lock.release
    ready.release()
    while not go.value:
        time.sleep(20e-6)
    n = 0
    while not stop.value:
        for _ in range(CONT_BATCH):
            acq()
            counter.value += 1
            rel()
        n += CONT_BATCH
    end[idx] = time.monotonic()
    done[idx] = n


def lock_contended(ctx, seconds):
    lock = ctx.Lock()
    counter = ctx.Value("i", 0, lock=False)
    ready = ctx.Semaphore(0)
    go = ctx.Value("i", 0, lock=False)
    stop = ctx.Value("i", 0, lock=False)
    done = ctx.Array("q", 2, lock=False)
    end = ctx.Array("d", 2, lock=False)
    procs = [ctx.Process(target=contend_worker,
                         args=(i, lock, counter, ready, go, stop, done, end))
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
    if counter.value != done[0] + done[1]:
        raise RuntimeError("counter %d != %d + %d"
                           % (counter.value, done[0], done[1]))
    return counter.value / (max(end[0], end[1]) - t0)


def pong(e1, e2, stop):
    while True:
        e1.wait()
        e1.clear()
        if stop.value:
            return
        e2.set()


def event_pingpong(ctx, seconds):
    e1, e2 = ctx.Event(), ctx.Event()
    stop = ctx.Value("i", 0, lock=False)
    b = ctx.Process(target=pong, args=(e1, e2, stop))
    b.start()
    e1.set()          # untimed round trip: B has started and answers
    e2.wait()
    e2.clear()
    n = 0
    t0 = time.perf_counter()
    while True:
        e1.set()
        e2.wait()
        e2.clear()
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            break
    stop.value = 1
    e1.set()
    b.join()
    if b.exitcode != 0:
        raise RuntimeError("B exit code %r" % b.exitcode)
    return n / elapsed


def rounds_child(barrier, stop):
    # Rounds are numbered from 1; stop is 0 or the number of the last round.
    i = 0
    while True:
        barrier.wait()
        i += 1
        s = stop.value
        if s and i >= s:
            return


def barrier_rounds(ctx, seconds):
    barrier = ctx.Barrier(2)
    stop = ctx.Value("q", 0, lock=False)
    c = ctx.Process(target=rounds_child, args=(barrier, stop))
    c.start()
    barrier.wait()    # round 1, untimed
    n = 0
    t0 = time.perf_counter()
    while True:
        barrier.wait()
        n += 1        # round n + 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            break
    stop.value = n + 2
    barrier.wait()
    c.join()
    if c.exitcode != 0:
        raise RuntimeError("child exit code %r" % c.exitcode)
    return n / elapsed


CASES = {
    "lock_uncontended": lock_uncontended,
    "lock_contended": lock_contended,
    "event_pingpong": event_pingpong,
    "barrier_rounds": barrier_rounds,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", required=True, choices=sorted(CASES))
    ap.add_argument("--seconds", type=float, default=0.5)
    a = ap.parse_args()
    ctx = multiprocessing.get_context("fork")
    try:
        value = CASES[a.case](ctx, a.seconds)
    except RuntimeError as e:
        print("sync.py %s: %s" % (a.case, e), file=sys.stderr)
        return 1
    print("%.6g" % value)
    return 0


if __name__ == "__main__":
    sys.exit(main())

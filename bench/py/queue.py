"""queue.py: the Python peer of the queue benchmark cases (bench_queue.c).

One round of about --seconds seconds; prints messages per second on stdout.
The protocol is the C side's (see the top of bench_queue.c), with the fork
start method:

  --kind queue     multiprocessing.Queue() (unbounded, Python's default)
  --kind simple    multiprocessing.SimpleQueue()
  --kind joinable  multiprocessing.JoinableQueue(): the consumer calls
                   task_done() after each get(), the producer join()s after
                   every JOIN_BATCH puts; the last join ends the round
  --procs 2        (queue only) 2 producers and 2 consumers on one Queue; the
                   main process puts one None per consumer once both
                   producers were joined, which ends the stream

A message is a bytes object of exactly --size bytes: struct "<QII" header
(seq, producer, flags), 0xa5 filler, struct "<Q" seq again at the end. The
consumers start first; each producer puts one untimed warm-up message, says
it is ready and waits for go. A producer reads time.monotonic() at go (t0)
and puts until its budget has passed (looking at the clock every 16 messages
below 4 KiB, every message from 4 KiB), flagging the last message LAST. One
consumer reads the clock when it gets the LAST message; two read it after
every message. The value is messages / (latest receipt - earliest t0). The
consumers check the size, header and trailer of every message and the
sequence numbers; the main process checks the counts (any fault: exit 1).
Interpreter and process start-up are not timed.

Usage: python3 queue.py [--kind K] --size N [--procs P] [--seconds S]
"""
import os
import sys

# This file is named like the standard module "queue", which multiprocessing
# imports: take its directory off the module path first.
if sys.path and os.path.abspath(sys.path[0]) == \
        os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import argparse  # noqa: E402
import multiprocessing  # noqa: E402
import struct  # noqa: E402
import time  # noqa: E402

JOIN_BATCH = 1000
F_LAST, F_WARM = 1, 2
HDR = struct.Struct("<QII")
TRL = struct.Struct("<Q")
WARM_SEQ = (1 << 64) - 1


def producer(kind, q, pid, size, seconds, ready, go, t0s, tjs, sent):
    hdr_pack, trl_pack, join = HDR.pack, TRL.pack, b"".join
    pad = b"\xa5" * (size - HDR.size - TRL.size)
    put = q.put
    joinable = kind == "joinable"
    every = JOIN_BATCH if joinable else (1 if size >= 4096 else 16)
    put(join((hdr_pack(WARM_SEQ, pid, F_WARM), pad, trl_pack(WARM_SEQ))))
    ready.release()
    while not go.value:
        time.sleep(20e-6)
    now = time.monotonic
    t0 = now()
    t0s[pid] = t0
    seq = 0
    while True:
        flags = 0
        if seq % every == every - 1 and now() - t0 >= seconds:
            flags = F_LAST
        put(join((hdr_pack(seq, pid, flags), pad, trl_pack(seq))))
        seq += 1
        if joinable and seq % every == 0:
            q.join()
        if flags:
            break
    if joinable:
        tjs[pid] = now()
    sent[pid] = seq


def consumer(kind, q, cid, size, nprod, ready, t1s, got, sums):
    hdr_unpack, trl_unpack = HDR.unpack_from, TRL.unpack_from
    tail = size - TRL.size
    get = q.get
    task_done = q.task_done if kind == "joinable" else None
    many = nprod > 1
    nxt = [0] * nprod
    sm = [0] * nprod
    n = 0
    t1 = 0.0
    now = time.monotonic
    ready.release()
    while True:
        m = get()
        if m is None:
            if many:
                break
            raise RuntimeError("consumer %d: end of stream before LAST" % cid)
        if task_done:
            task_done()
        if len(m) != size:
            raise RuntimeError("consumer %d: message %d has %d bytes"
                               % (cid, n, len(m)))
        seq, prod, flags = hdr_unpack(m)
        if flags & F_WARM:
            continue
        if (prod >= nprod or trl_unpack(m, tail)[0] != seq or seq < nxt[prod]
                or (not many and seq != nxt[prod])):
            raise RuntimeError("consumer %d: message %d: producer %d seq %d, "
                               "expected %d" % (cid, n, prod, seq,
                                                nxt[min(prod, nprod - 1)]))
        nxt[prod] = seq + 1
        sm[prod] += seq
        n += 1
        if many:
            t1 = now()
        elif flags & F_LAST:
            t1 = now()
            break
    t1s[cid] = t1
    got[cid] = n
    for i in range(nprod):
        sums[cid * nprod + i] = sm[i]


def join_all(procs, deadline):
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            for k in procs:
                if k.is_alive():
                    k.kill()
                    k.join()
            raise RuntimeError("a worker had not finished in time "
                               "(lost message or wake-up?); killed")
        if p.exitcode != 0:
            raise RuntimeError("%s exit code %r" % (p.name, p.exitcode))


def run(ctx, kind, size, nprocs, seconds):
    if kind == "simple":
        q = ctx.SimpleQueue()
    elif kind == "joinable":
        q = ctx.JoinableQueue()
    else:
        q = ctx.Queue()
    nprod = ncons = nprocs
    ready = ctx.Semaphore(0)
    go = ctx.Value("i", 0, lock=False)
    t0s = ctx.Array("d", nprod, lock=False)
    tjs = ctx.Array("d", nprod, lock=False)
    sent = ctx.Array("q", nprod, lock=False)
    t1s = ctx.Array("d", ncons, lock=False)
    got = ctx.Array("q", ncons, lock=False)
    sums = ctx.Array("Q", ncons * nprod, lock=False)
    cons = [ctx.Process(target=consumer, name="consumer%d" % i,
                        args=(kind, q, i, size, nprod, ready, t1s, got, sums))
            for i in range(ncons)]
    prods = [ctx.Process(target=producer, name="producer%d" % i,
                         args=(kind, q, i, size, seconds, ready, go, t0s, tjs,
                               sent))
             for i in range(nprod)]
    for p in cons:
        p.start()
    for p in cons:
        ready.acquire()
    for p in prods:
        p.start()
    for p in prods:
        ready.acquire()
    go.value = 1
    deadline = time.monotonic() + 30 + 20 * seconds
    try:
        join_all(prods, deadline)
        if ncons > 1:
            for _ in range(ncons):
                q.put(None)
        join_all(cons, deadline)
    finally:
        for p in prods + cons:
            if p.is_alive():
                p.kill()
                p.join()
    if kind != "simple":
        q.close()
        q.join_thread()

    total = sum(sent)
    for i in range(nprod):
        s = sent[i]
        got_sum = sum(sums[j * nprod + i] for j in range(ncons))
        if s == 0 or got_sum != s * (s - 1) // 2:
            raise RuntimeError("producer %d: sent %d, seqs received add up to "
                               "%d" % (i, s, got_sum))
    if sum(got) != total:
        raise RuntimeError("%d messages sent, %d received" % (total, sum(got)))
    t0 = min(t0s)
    t1 = max(tjs) if kind == "joinable" else max(t1s)
    return total / (t1 - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", default="queue",
                    choices=["queue", "simple", "joinable"])
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--procs", type=int, default=1, choices=[1, 2])
    ap.add_argument("--seconds", type=float, default=0.5)
    a = ap.parse_args()
    if a.size < 32 or (a.procs > 1 and a.kind != "queue"):
        ap.error("--size must be >= 32; --procs 2 only with --kind queue")
    ctx = multiprocessing.get_context("fork")
    try:
        value = run(ctx, a.kind, a.size, a.procs, a.seconds)
    except RuntimeError as e:
        print("queue.py: %s" % e, file=sys.stderr)
        return 1
    print("%.6g" % value)
    return 0


if __name__ == "__main__":
    sys.exit(main())

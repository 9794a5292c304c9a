"""conn.py: the Python peer of the connection benchmark cases (bench_conn.c).

One round of about --seconds seconds; prints the value on stdout. The
protocols are the C side's (see the top of bench_conn.c), with the fork
start method:

  --case stream --size N [--mbps]
        pipe_64b, pipe_1m: a producer Process sends messages of exactly N
        bytes through Pipe(duplex=False) with send_bytes, a consumer
        Process receives them with recv_bytes. Each closes the end it does
        not use, and the main process closes both once they have started.
        A message: struct "<QII" header (seq, 0, flags), 0xa5 filler,
        struct "<Q" seq again at the end, written in place into one
        bytearray (no copy of the payload per message). The consumer starts
        first; the producer sends one untimed warm-up message, says it is
        ready and waits for go; it reads time.monotonic() at go (t0) and
        sends until its budget has passed (looking at the clock every 16
        messages below 4 KiB, every message from 4 KiB), flagging the last
        message LAST; the consumer reads the clock when LAST arrives (t1)
        and checks every message's size, seq and trailer. Prints messages
        / (t1 - t0), or with --mbps that x N / 10^6 (MB/s).
  --case pipe_rtt
        this process (A) and one child (B) share a duplex Pipe(); A sends a
        64-byte message with send_bytes, B sends it back; microseconds per
        round trip. One untimed round trip first; A checks each answer.
  --case listener_rtt
        the same over Listener(path, 'AF_UNIX') (no authkey; the path in a
        fresh temporary directory): A listens and accepts, B connects with
        Client(path) and echoes.

Interpreter and process start-up are not timed.

Usage: python3 conn.py --case CASE [--size N] [--mbps] [--seconds S]
"""
import argparse
import multiprocessing
import os
import shutil
import struct
import sys
import tempfile
import time
from multiprocessing.connection import Client, Listener

F_LAST, F_WARM = 1, 2
HDR = struct.Struct("<QII")
TRL = struct.Struct("<Q")
WARM_SEQ = (1 << 64) - 1
RTT_SIZE = 64


def fill(buf, size, seq, flags):
    HDR.pack_into(buf, 0, seq, 0, flags)
    TRL.pack_into(buf, size - TRL.size, seq)


# ---- one way: pipe_64b, pipe_1m --------------------------------------------

def producer(r, w, size, seconds, ready, go, t0s, sent):
    r.close()
    msg = bytearray(b"\xa5" * size)
    send = w.send_bytes
    hdr_pack, trl_pack = HDR.pack_into, TRL.pack_into
    tail = size - TRL.size
    every = 1 if size >= 4096 else 16
    fill(msg, size, WARM_SEQ, F_WARM)
    send(msg)
    ready.release()
    while not go.value:
        time.sleep(20e-6)
    now = time.monotonic
    t0 = now()
    t0s[0] = t0
    seq = 0
    while True:
        flags = 0
        if seq % every == every - 1 and now() - t0 >= seconds:
            flags = F_LAST
        hdr_pack(msg, 0, seq, 0, flags)
        trl_pack(msg, tail, seq)
        send(msg)
        seq += 1
        if flags:
            break
    sent.value = seq
    w.close()


def consumer(r, w, size, ready, t1s, got):
    w.close()
    hdr_unpack, trl_unpack = HDR.unpack_from, TRL.unpack_from
    tail = size - TRL.size
    recv = r.recv_bytes
    nxt = 0
    n = 0
    ready.release()
    while True:
        try:
            m = recv()
        except EOFError:
            raise RuntimeError("consumer: end of file after %d messages, "
                               "before the last one" % n)
        if len(m) != size:
            raise RuntimeError("consumer: message %d has %d bytes"
                               % (n, len(m)))
        seq, _, flags = hdr_unpack(m)
        if flags & F_WARM:
            continue
        if trl_unpack(m, tail)[0] != seq or seq != nxt:
            raise RuntimeError("consumer: message %d: seq %d, expected %d"
                               % (n, seq, nxt))
        nxt = seq + 1
        n += 1
        if flags & F_LAST:
            t1s[0] = time.monotonic()
            break
    got.value = n
    r.close()


def join_all(procs, deadline):
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            for k in procs:
                if k.is_alive():
                    k.kill()
                    k.join()
            raise RuntimeError("a worker had not finished in time "
                               "(lost message?); killed")
        if p.exitcode != 0:
            raise RuntimeError("%s exit code %r" % (p.name, p.exitcode))


def stream(ctx, size, mbps, seconds):
    if size < 32:
        raise RuntimeError("--size must be >= 32")
    r, w = ctx.Pipe(duplex=False)
    ready = ctx.Semaphore(0)
    go = ctx.Value("i", 0, lock=False)
    t0s = ctx.Array("d", 1, lock=False)
    t1s = ctx.Array("d", 1, lock=False)
    sent = ctx.Value("q", 0, lock=False)
    got = ctx.Value("q", 0, lock=False)
    cons = ctx.Process(target=consumer, name="consumer",
                       args=(r, w, size, ready, t1s, got))
    prod = ctx.Process(target=producer, name="producer",
                       args=(r, w, size, seconds, ready, go, t0s, sent))
    procs = [prod, cons]
    try:
        cons.start()
        ready.acquire()
        prod.start()
        ready.acquire()
        r.close()
        w.close()
        go.value = 1
        join_all(procs, time.monotonic() + 30 + 20 * seconds)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
    if sent.value == 0 or got.value != sent.value:
        raise RuntimeError("%d messages sent, %d received"
                           % (sent.value, got.value))
    rate = sent.value / (t1s[0] - t0s[0])
    return rate * size / 1e6 if mbps else rate


# ---- round trips: pipe_rtt, listener_rtt ---------------------------------------

def echo_loop(c):
    recv, send = c.recv_bytes, c.send_bytes
    while True:
        try:
            m = recv()
        except EOFError:
            return
        send(m)


def pipe_echo(a, b):
    a.close()
    echo_loop(b)


def listener_echo(address):
    echo_loop(Client(address, "AF_UNIX"))


def measure(c, seconds):
    msg = bytearray(b"\xa5" * RTT_SIZE)
    send, recv = c.send_bytes, c.recv_bytes
    hdr_unpack, trl_unpack = HDR.unpack_from, TRL.unpack_from
    tail = RTT_SIZE - TRL.size

    def ping(seq):
        fill(msg, RTT_SIZE, seq, 0)
        send(msg)
        m = recv()
        if (len(m) != RTT_SIZE or hdr_unpack(m)[0] != seq
                or trl_unpack(m, tail)[0] != seq):
            raise RuntimeError("answer of %d bytes, not the message %d sent"
                               % (len(m), seq))

    ping(0)           # untimed: B answers
    seq = 1
    n = 0
    perf = time.perf_counter
    t0 = perf()
    while True:
        ping(seq)
        seq += 1
        n += 1
        elapsed = perf() - t0
        if elapsed >= seconds:
            break
    return elapsed / n * 1e6


def finish(b):
    b.join(30)
    if b.is_alive():
        b.kill()
        b.join()
        raise RuntimeError("B did not end at end of file; killed")
    if b.exitcode != 0:
        raise RuntimeError("B exit code %r" % b.exitcode)


def pipe_rtt(ctx, seconds):
    a, b = ctx.Pipe()
    p = ctx.Process(target=pipe_echo, args=(a, b))
    p.start()
    b.close()
    try:
        value = measure(a, seconds)
    finally:
        a.close()     # B sees end of file
        finish(p)
    return value


def listener_rtt(ctx, seconds):
    d = tempfile.mkdtemp(prefix="mp_bench-conn-")
    address = os.path.join(d, "s")
    try:
        with Listener(address, "AF_UNIX") as listener:
            p = ctx.Process(target=listener_echo, args=(address,))
            p.start()
            c = listener.accept()
            try:
                value = measure(c, seconds)
            finally:
                c.close()     # B sees end of file
                finish(p)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return value


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", required=True,
                    choices=["stream", "pipe_rtt", "listener_rtt"])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--mbps", action="store_true")
    ap.add_argument("--seconds", type=float, default=0.5)
    a = ap.parse_args()
    ctx = multiprocessing.get_context("fork")
    try:
        if a.case == "stream":
            value = stream(ctx, a.size, a.mbps, a.seconds)
        elif a.case == "pipe_rtt":
            value = pipe_rtt(ctx, a.seconds)
        else:
            value = listener_rtt(ctx, a.seconds)
    except RuntimeError as e:
        print("conn.py %s: %s" % (a.case, e), file=sys.stderr)
        return 1
    print("%.6g" % value)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""process.py: the Python peer of the process_* benchmark cases.

One round: start and join trivial processes one after the other with
multiprocessing's given start method for about --seconds seconds, and print
the rate (processes started and joined per second) on stdout. Interpreter
start-up and the first process (which also starts the forkserver, or warms
the spawn path) are not timed.

Usage: python3 process.py --method fork|spawn|forkserver [--seconds S] [--min N]
"""
import argparse
import multiprocessing
import sys
import time


def target():
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", required=True,
                    choices=["fork", "spawn", "forkserver"])
    ap.add_argument("--seconds", type=float, default=0.5)
    ap.add_argument("--min", type=int, default=3)
    a = ap.parse_args()
    ctx = multiprocessing.get_context(a.method)

    warm = ctx.Process(target=target)
    warm.start()
    warm.join()

    n = 0
    t0 = time.perf_counter()
    while True:
        p = ctx.Process(target=target)
        p.start()
        p.join()
        if p.exitcode != 0:
            print("process.py: child exit code %r" % p.exitcode, file=sys.stderr)
            return 1
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= a.seconds and n >= a.min:
            break
    print("%.6g" % (n / elapsed))
    return 0


if __name__ == "__main__":
    sys.exit(main())

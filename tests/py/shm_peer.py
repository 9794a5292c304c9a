"""shm_peer.py: the Python side of tests/test_shm.c's interop cases.

Run as: python3 shm_peer.py MODE NAME [ARG]
  attach-shm NAME         attach SharedMemory NAME, write b"howdy" at 0
  attach-list NAME FMT    attach the ShareableList that C made, check its
                          items and its format (FMT), then change items in
                          place (the C side checks the changes)
  create-list NAME        create a ShareableList named NAME (C checks it)

Python's resource tracker is switched off: it would unlink, when this
process exits, every segment it merely attached to (the flaw mproc avoids),
and it would leave a tracker process behind. Exit code 0 means success; a
mismatch is printed on stderr with exit code 1.
"""
import sys
from multiprocessing import resource_tracker, shared_memory

resource_tracker.register = lambda *a, **k: None
resource_tracker.unregister = lambda *a, **k: None

C_ITEMS = [7, 2.5, True, None, "howdy \u2713", b"by\x00tes", -9000000000, ""]
PY_ITEMS = [42, -1.5, False, None, "h\u00e9llo w\u00f6rld", b"\x00bin\xff",
            "x" * 20]


def fail(msg):
    print("shm_peer.py: " + msg, file=sys.stderr)
    sys.exit(1)


def main():
    mode, name = sys.argv[1], sys.argv[2]
    if mode == "attach-shm":
        shm = shared_memory.SharedMemory(name)
        shm.buf[:5] = b"howdy"
        shm.close()
    elif mode == "attach-list":
        sl = shared_memory.ShareableList(name=name)
        got = list(sl)
        if got != C_ITEMS or [type(x) for x in got] != [type(x) for x in C_ITEMS]:
            fail("items %r, expected %r" % (got, C_ITEMS))
        if sl.format != sys.argv[3]:
            fail("format %r, expected %r" % (sl.format, sys.argv[3]))
        if sl.count(7) != 1 or sl.index(None) != 3:
            fail("count/index")
        try:
            sl[5] = b"123456789"  # storage of 8 bytes
            fail("no storage limit error")
        except ValueError:
            pass
        sl[0] = "changed"
        sl[2] = 3.25
        sl[4] = None
        sl[7] = b"1234567"
        sl[-2] = True
        sl.shm.close()
    elif mode == "create-list":
        sl = shared_memory.ShareableList(PY_ITEMS, name=name)
        sl.shm.close()
    else:
        fail("unknown mode " + mode)


if __name__ == "__main__":
    main()

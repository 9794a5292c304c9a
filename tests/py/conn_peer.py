"""conn_peer.py: a Python peer for test_listener: a multiprocessing Listener
or Client that echoes every message back until end of file.

usage: conn_peer.py [--py312 DIGEST] listen|client ADDRESS KEY

  ADDRESS  mproc's form: "/path", "./rel", "@abstract", "host:port"
  KEY      "-" for no key (authkey=None), else the key in hex ("" = b'')
  --py312  speak Python 3.12's handshake (handshake312.py) with DIGEST in
           our challenges, whatever this interpreter's own version is

listen prints "ready ADDRESS" (the bound address, mproc's form) on stdout
once it listens, then accepts one client. Both roles then print "ok" once
the handshake passed and echo messages until the other side closes.
Exit codes: 0 done; 3 AuthenticationError; 4 the peer went away during the
handshake (EOF, reset); 5 the echo failed; 1 anything else. A 60-second
alarm ends a peer left waiting.
"""
import os
import signal
import sys

import multiprocessing.connection as mpc
from multiprocessing import AuthenticationError


def to_python(address):
    if address.startswith('@'):
        return '\0' + address[1:]
    if address.startswith(('/', './', '../')):
        return address
    host, _, port = address.rpartition(':')
    return (host, int(port))


def to_mproc(address):
    if isinstance(address, bytes):
        address = address.decode()
    if isinstance(address, tuple):
        return '%s:%d' % (address[0], address[1])
    if address.startswith('\0'):
        return '@' + address[1:]
    return address


def echo(conn):
    while True:
        try:
            data = conn.recv_bytes()
        except EOFError:
            return 0
        conn.send_bytes(data)


def main(argv):
    signal.alarm(60)
    if argv and argv[0] == '--py312':
        import handshake312
        handshake312.install(argv[1])
        argv = argv[2:]
    role, address, key = argv
    key = None if key == '-' else bytes.fromhex(key)
    address = to_python(address)
    try:
        if role == 'listen':
            listener = mpc.Listener(address, authkey=key)
            print('ready', to_mproc(listener.address), flush=True)
            try:
                conn = listener.accept()
            finally:
                listener.close()
        else:
            conn = mpc.Client(address, authkey=key)
    except AuthenticationError:
        return 3
    except (EOFError, ConnectionError):
        return 4
    print('ok', flush=True)
    try:
        return echo(conn)
    except (OSError, EOFError):
        return 5
    finally:
        conn.close()


if __name__ == '__main__':
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main(sys.argv[1:]))

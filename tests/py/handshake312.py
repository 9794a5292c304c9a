"""handshake312.py: the authkey handshake of Python 3.12+'s
multiprocessing.connection, for interpreters that predate it (3.11 sends a
20-byte challenge and answers with a raw HMAC-MD5).

What 3.12+ does, as this module reproduces it:
  challenge:  b'#CHALLENGE#' + b'{digest}' + 40 random bytes
  response:   b'{digest}' + HMAC-digest(key, everything after #CHALLENGE#),
              or a raw 16-byte HMAC-MD5 when the challenge was the legacy
              20-byte form
  verdict:    b'#WELCOME#' or b'#FAILURE#'
The challenger accepts any allowed digest in the response, and an unprefixed
16-byte HMAC-MD5 of the whole prefixed message. Every receive is limited to
256 bytes.

install(digest) swaps these functions into multiprocessing.connection, where
Listener.accept and Client look them up at call time.
"""
import hmac
import os
import multiprocessing.connection as mpc
from multiprocessing import AuthenticationError

CHALLENGE = b'#CHALLENGE#'
WELCOME = b'#WELCOME#'
FAILURE = b'#FAILURE#'
ALLOWED = (b'md5', b'sha256', b'sha384', b'sha3_256', b'sha3_384')
RANDOM_LEN = 40
LEGACY_LEN = 20
MD5_LEN = 16


def split_digest(data):
    """(digest name or '' for the legacy form, payload)."""
    if len(data) in (LEGACY_LEN, MD5_LEN):
        return '', data
    if data[:1] == b'{':
        end = data.find(b'}', 1, 2 + max(len(a) for a in ALLOWED))
        if end > 0 and data[1:end] in ALLOWED:
            return data[1:end].decode('ascii'), data[end + 1:]
    raise AuthenticationError('no digest prefix or an unsupported digest')


def deliver_challenge(conn, key, digest='sha256'):
    message = b'{' + digest.encode('ascii') + b'}' + os.urandom(RANDOM_LEN)
    conn.send_bytes(CHALLENGE + message)
    response = conn.recv_bytes(256)
    try:
        name, mac = split_digest(response)
        want = hmac.new(key, message, name or 'md5').digest()
        if len(want) != len(mac) or not hmac.compare_digest(want, mac):
            raise AuthenticationError('digest received was wrong')
    except AuthenticationError:
        conn.send_bytes(FAILURE)
        raise
    conn.send_bytes(WELCOME)


def answer_challenge(conn, key):
    message = conn.recv_bytes(256)
    if not message.startswith(CHALLENGE):
        raise AuthenticationError('expected a challenge')
    message = message[len(CHALLENGE):]
    if len(message) < LEGACY_LEN:
        raise AuthenticationError('challenge too short')
    name, _ = split_digest(message)
    if name:
        response = b'{' + name.encode('ascii') + b'}' + \
            hmac.new(key, message, name).digest()
    else:
        response = hmac.new(key, message, 'md5').digest()
    conn.send_bytes(response)
    if conn.recv_bytes(256) != WELCOME:
        raise AuthenticationError('digest sent was rejected')


def install(digest='sha256'):
    mpc.deliver_challenge = lambda c, k: deliver_challenge(c, k, digest)
    mpc.answer_challenge = answer_challenge

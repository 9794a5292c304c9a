/* mproc/conn.h: connections (Python's multiprocessing.connection): Pipe,
 * Connection, wait, Listener and Client with the authkey handshake.
 * Included by mproc.h; do not include directly.
 *
 * A connection carries whole byte messages over a descriptor (a pipe, a unix
 * socket or a TCP socket). Boundaries are kept: each send is one message,
 * empty ones included, up to any size (over 4 GiB too). The wire format is
 * Python's: a 4-byte big-endian length, or for sizes over 2 GiB the escape
 * 0xffffffff followed by an 8-byte big-endian length, then the bytes. So a C
 * program and a Python program exchange messages through Listener/Client,
 * and a Python child can read a pipe a C parent writes.
 *
 * Handles: a connection handle is valid in the process that made it and in
 * every child it starts under fork, spawn and forkserver, at the same address
 * and with the same descriptor number (pass the handle in the target's
 * argument). Each process owns its copy: mp_conn_close in one process closes
 * that process's descriptor only, as in Python. A spawned or forkserver child
 * receives every connection open in its parent at start (as a forked child
 * inherits every descriptor), so the end-of-file rules are the same under
 * every start method: close in the child the ends it does not use. A boot
 * record carries at most 4096 open connections: with more open, starting a
 * spawn or forkserver child returns -E2BIG (fork has no limit).
 *
 * End of file: a receive returns MP_EEOF once every copy of the peer end, in
 * every process, is closed and the messages sent before are read.
 *
 * SIGPIPE: sending to a pipe whose readers are gone returns -EPIPE. To get a
 * code rather than a killed process, mproc sets SIGPIPE to SIG_IGN when the
 * first connection is made, if its disposition was the default (as Python
 * does at start-up); a handler the program installed is left alone, and
 * runs. This holds for duplex Pipes too, which are pipes (sockets are
 * written with MSG_NOSIGNAL and raise no signal).
 *
 * Threads: a handle may be used by one thread at a time (as in Python); two
 * threads may send on one and receive on the other end.
 *
 * Sharing a read end: several processes may receive from one connection if
 * they take turns under a lock (as Python's Queue does). A process that got
 * -EMSGSIZE, MP_ETOOSHORT or -ETIMEDOUT in the middle of a message holds
 * that message's header in its own handle: it must finish the message
 * before another process reads. A receive with a timeout never waits past
 * it, even when another reader takes the bytes it saw arrive (it reads
 * without blocking: MSG_DONTWAIT, RWF_NOWAIT).
 *
 * Timeouts: seconds as a double; MP_FOREVER waits without limit, 0 does not
 * wait; NaN is -EINVAL. A receive that times out returns -ETIMEDOUT and
 * loses nothing, even in the middle of a message (a peer that stalls
 * mid-frame): the bytes that came are kept and the next receive goes on from
 * there. Only a stream cut inside a message (end of file, a negative length)
 * breaks a connection: later receives return -EPROTO. */
#ifndef MPROC_CONN_H
#define MPROC_CONN_H

#include <stddef.h>
#include <stdint.h>

typedef struct mp_conn mp_conn_t;
typedef struct mp_listener mp_listener_t;

/* MP_SIZE_REST as the size of mp_conn_send_bytes_at: "up to the end". */
#define MP_SIZE_REST ((size_t)-1)

/* ---- Pipe and Connection -------------------------------------------------- */

/* mp_pipe makes a pair of connected connections. duplex non-zero: both ends
 * send and receive (two pipes, one per direction: Python uses a unix
 * socketpair, whose round trip costs twice as much); duplex 0: *c1 only
 * receives and *c2 only sends (a pipe), and the wrong direction returns
 * -EBADF. A duplex end holds two descriptors (four per Pipe), buffers what
 * a pipe buffers each way (64 KiB by default, where a socketpair takes about
 * 200 KiB before a send blocks), and its pipes count against the user's
 * pipe-user-pages-soft (past it the kernel gives new pipes one page).
 * Returns: 0 and *c1, *c2; -EMFILE/-ENFILE; -ENOMEM; -EINVAL.
 * Python: Pipe(duplex) -> (conn1, conn2). */
MP_API int mp_pipe(mp_conn_t **c1, mp_conn_t **c2, int duplex);

/* mp_conn_from_fd wraps a descriptor this process owns (a pipe end, a stream
 * socket) into a connection that takes it over: mp_conn_close closes it.
 * readable/writable say which directions the descriptor serves.
 * Returns: 0 and *out; -EBADF (fd not open); -EINVAL (neither direction);
 * -EMFILE (half a million handles in use); -ENOMEM.
 * Python: Connection(handle, readable, writable). */
MP_API int mp_conn_from_fd(mp_conn_t **out, int fd, int readable, int writable);

/* mp_conn_send_bytes sends buf[0..len) as one message (len 0 is a message;
 * buf may be NULL then).
 * Blocks: while the descriptor is full (the reader is slow), without limit,
 *   as Python's send_bytes does; the message is written whole or the
 *   connection reports a broken peer.
 * Returns: 0; -EPIPE/-ECONNRESET (the peer is gone); -EBADF (a receive-only
 *   end); MP_ECLOSED; -EINVAL. Python: Connection.send_bytes(buf). */
MP_API int mp_conn_send_bytes(mp_conn_t *c, const void *buf, size_t len);

/* mp_conn_send_bytes_at sends buf[offset..offset+size) of a buffer of len
 * bytes as one message; size MP_SIZE_REST means up to len.
 * Returns: as mp_conn_send_bytes; -EINVAL if offset > len or
 * offset + size > len (nothing sent).
 * Python: Connection.send_bytes(buf, offset, size). */
MP_API int mp_conn_send_bytes_at(mp_conn_t *c, const void *buf, size_t len,
                                 size_t offset, size_t size);

/* mp_conn_recv_bytes receives the next message into a new buffer (*buf,
 * *len; release it with free(); a 0-byte message gives a non-NULL *buf).
 * maxlength: the largest message accepted (0: no limit). Memory grows with
 * the bytes that actually arrive, never with what a header claims.
 * Blocks: until a whole message arrived, at most timeout seconds.
 * Returns: 0; MP_EEOF (every copy of the peer end closed); -EMSGSIZE (the
 *   message is longer than maxlength: nothing is read past its header and it
 *   stays first in line for a later call with a larger limit; Python breaks
 *   the connection here); -ETIMEDOUT; -EPROTO (the peer broke the framing:
 *   end of file inside a message, a negative length; the connection is
 *   broken); -ENOMEM; -EBADF (a send-only end); MP_ECLOSED; -EINVAL.
 * Python: Connection.recv_bytes(maxlength). */
MP_API int mp_conn_recv_bytes(mp_conn_t *c, void **buf, size_t *len,
                              size_t maxlength, double timeout);

/* mp_conn_recv_bytes_into receives the next message into buf[offset..len),
 * setting *got to its size.
 * Returns: 0; MP_ETOOSHORT with *got set to the message's size when it does
 *   not fit (the message is not lost: it stays first in line); -EINVAL if
 *   offset > len; otherwise as mp_conn_recv_bytes.
 * Python: Connection.recv_bytes_into(buf, offset) and BufferTooShort. */
MP_API int mp_conn_recv_bytes_into(mp_conn_t *c, void *buf, size_t len,
                                   size_t offset, size_t *got, double timeout);

/* mp_conn_poll says whether data is waiting: returns 1 when bytes of a
 * message (or end of file) are there to read, 0 when none came within
 * timeout (a receive may still wait for the rest of a large message, as in
 * Python);
 * -EBADF (a send-only end); MP_ECLOSED; -EINVAL.
 * Python: Connection.poll(timeout). */
MP_API int mp_conn_poll(mp_conn_t *c, double timeout);

/* mp_conn_fileno returns the connection's descriptor (for select/poll loops:
 * the one it reads from), or MP_ECLOSED / -EINVAL. A duplex Pipe writes to a
 * second descriptor, so its fileno is not the whole connection: it does not
 * poll writable, shutdown does nothing to it, and mp_conn_from_fd on a copy
 * of it makes a connection that only receives (pass the handle to children
 * instead: it works under every start method). Python: Connection.fileno(). */
MP_API int mp_conn_fileno(const mp_conn_t *c);

/* mp_conn_readable and mp_conn_writable return 1 or 0 (0 for NULL).
 * Python: Connection.readable, Connection.writable. */
MP_API int mp_conn_readable(const mp_conn_t *c);
MP_API int mp_conn_writable(const mp_conn_t *c);

/* mp_conn_closed returns 1 once mp_conn_close was called in this process
 * (1 for NULL). Python: Connection.closed. */
MP_API int mp_conn_closed(const mp_conn_t *c);

/* mp_conn_close closes this process's descriptor; the handle stays valid
 * (its calls return MP_ECLOSED) until mp_conn_free. Closing twice is a
 * no-op. Other processes' copies are untouched. Accepts NULL.
 * Python: Connection.close(). */
MP_API void mp_conn_close(mp_conn_t *c);

/* mp_conn_free closes c if open and releases the handle in this process
 * only: a parent's or child's copy stays open and valid. Accepts NULL. */
MP_API void mp_conn_free(mp_conn_t *c);

/* ---- Structured values (see mproc/value.h) -------------------------------- */

/* mp_conn_send sends v, encoded as one msgpack message.
 * Returns: as mp_conn_send_bytes; -EINVAL for a malformed value; -ENOMEM.
 * Python: Connection.send(obj) (mproc sends msgpack, not pickle). */
MP_API int mp_conn_send(mp_conn_t *c, const struct mp_val *v);

/* mp_conn_recv receives one message and decodes it into *out (release with
 * mp_val_free). maxlength bounds the message as in mp_conn_recv_bytes.
 * Returns: as mp_conn_recv_bytes; -EBADMSG (the message is not one valid
 * msgpack value: it is consumed, the connection stays usable); -ENOMEM
 * (from decoding: the message is consumed).
 * Python: Connection.recv(). */
MP_API int mp_conn_recv(mp_conn_t *c, struct mp_val **out, size_t maxlength,
                        double timeout);

/* ---- wait ------------------------------------------------------------------ */

typedef enum {
    MP_WAIT_CONN = 1,    /* ready: a message or end of file is waiting */
    MP_WAIT_PROCESS = 2, /* ready: the process ended (its sentinel) */
    MP_WAIT_FD = 3,      /* ready: the descriptor is readable (or hung up) */
} mp_wait_kind_t;

/* mp_waitable_t is one object for mp_wait; build it with the helpers below.
 * mp_wait sets ready to 1 or 0. */
typedef struct {
    mp_wait_kind_t kind;
    union {
        mp_conn_t *conn;
        mp_process_t *process;
        int fd;
    } u;
    int ready;
} mp_waitable_t;

/* mp_waitable_conn, mp_waitable_process, mp_waitable_fd build a waitable. */
MP_API mp_waitable_t mp_waitable_conn(mp_conn_t *c);
MP_API mp_waitable_t mp_waitable_process(mp_process_t *p);
MP_API mp_waitable_t mp_waitable_fd(int fd);

/* mp_wait waits until at least one of objs[0..n) is ready, at most timeout
 * seconds, and marks each one's ready field.
 * Returns: the number ready (0 when the timeout passed with none ready);
 *   -EINVAL (bad kind, NULL, a closed connection, an unstarted process,
 *   a negative descriptor); -ENOMEM.
 * Python: multiprocessing.connection.wait(object_list, timeout). */
MP_API int mp_wait(mp_waitable_t *objs, size_t n, double timeout);

/* ---- Listener and Client ---------------------------------------------------- */

/* Addresses are strings:
 *   "/path/to/sock" or "./rel": a unix socket at that path (the listener
 *     removes the file when closed);
 *   "@name": a Linux abstract unix socket (Python's "\0name");
 *   "host:port": TCP, IPv4 or a resolvable name; "[v6addr]:port": IPv6;
 *     port 0 picks a free port (see mp_listener_address).
 *   ":port": TCP on every address (listener) or the local host (client).
 * Name lookup (getaddrinfo) is not bounded by the timeouts below; a name
 * that does not resolve is -EINVAL. A relative unix path is resolved when
 * the listener is made, as in Python.
 * Python: an address string (AF_UNIX) or a (host, port) tuple (AF_INET).
 *
 * A listener is a plain object of the process that made it (unlike a
 * connection, its handle does not travel to spawned children): accept in
 * one process and hand the accepted connections to children. */
#define MP_ADDRESS_MAX 256

/* mp_listener_opts_t holds Listener's keyword arguments; zero means default. */
typedef struct {
    int backlog;            /* listen backlog; 0: 1, as Python */
    const void *authkey;    /* NULL: no authentication (Python: authkey=None) */
    size_t authkey_len;     /* 0 with a non-NULL authkey: an empty key, which
                             * still runs the handshake */
} mp_listener_opts_t;

/* mp_listener_new binds and listens on address (NULL: a fresh abstract unix
 * address, as Python's arbitrary_address).
 * Returns: 0 and *out; -EADDRINUSE (another listener holds the address);
 *   -EINVAL (malformed address); -ENAMETOOLONG; -EACCES; other -errno of
 *   socket/bind/listen; -ENOMEM.
 * Python: multiprocessing.connection.Listener(address, family, backlog,
 * authkey). */
MP_API int mp_listener_new(mp_listener_t **out, const char *address,
                           const mp_listener_opts_t *opts);

/* mp_listener_accept waits for a client, at most timeout seconds, and runs
 * the handshake if the listener has an authkey (the same timeout bounds it).
 * Returns: 0 and *out; -ETIMEDOUT; MP_EAUTH (the client failed the
 *   handshake, sent garbage or hung up during it: its connection is closed,
 *   the listener keeps working); MP_ECLOSED; -EINVAL; -ENOMEM; -EMFILE.
 *   With an authkey, a timeout of 0 leaves no time for the handshake.
 * Python: Listener.accept(). */
MP_API int mp_listener_accept(mp_listener_t *l, mp_conn_t **out, double timeout);

/* mp_listener_address returns the bound address in the form above (the real
 * port when 0 was asked), or NULL. Python: Listener.address. */
MP_API const char *mp_listener_address(const mp_listener_t *l);

/* mp_listener_last_accepted returns the address of the client accepted
 * last, "host:port" for TCP, "" for a unix socket (whose clients have no
 * name) or before the first accept; NULL for NULL.
 * Python: Listener.last_accepted. */
MP_API const char *mp_listener_last_accepted(const mp_listener_t *l);

/* mp_listener_fileno returns the listening socket, or MP_ECLOSED/-EINVAL. */
MP_API int mp_listener_fileno(const mp_listener_t *l);

/* mp_listener_close stops listening (and removes a unix socket's file);
 * the handle stays valid until mp_listener_free. Accepts NULL.
 * Python: Listener.close(). */
MP_API void mp_listener_close(mp_listener_t *l);

/* mp_listener_free closes l if needed and releases it. Accepts NULL. */
MP_API void mp_listener_free(mp_listener_t *l);

/* mp_client_opts_t holds Client's keyword arguments; zero means default. */
typedef struct {
    const void *authkey;    /* NULL: no authentication */
    size_t authkey_len;
} mp_client_opts_t;

/* mp_client connects to a Listener at address and, with an authkey, runs
 * the handshake (answer the listener's challenge, then challenge it).
 * Blocks: connecting and the handshake, at most timeout seconds together.
 * Returns: 0 and *out; -ECONNREFUSED/-ENOENT (nobody listens); -ETIMEDOUT;
 *   MP_EAUTH (wrong key on either side, a peer that does not speak the
 *   handshake or hangs up during it); -EINVAL (malformed address, a name
 *   that does not resolve, a key over INT_MAX bytes); -ENAMETOOLONG;
 *   -EMFILE/-ENFILE; -EAGAIN (temporary name lookup failure); other -errno
 *   of socket/connect (-ENETUNREACH...); -ENOMEM.
 * Python: multiprocessing.connection.Client(address, family, authkey). */
MP_API int mp_client(mp_conn_t **out, const char *address,
                     const mp_client_opts_t *opts, double timeout);

/* mp_conn_deliver_challenge sends a challenge over c and checks the peer's
 * answer: HMAC-SHA256 of a random message with the "{sha256}" prefix of
 * Python 3.12+, and the raw HMAC-MD5 answer of Python <= 3.11 accepted;
 * compared in constant time. Replies "#WELCOME#" or "#FAILURE#".
 * Returns: 0; MP_EAUTH (wrong answer, garbage, a message over 256 bytes);
 *   -ETIMEDOUT; MP_EEOF; -EPIPE/-ECONNRESET; -EBADF (a one-way end);
 *   MP_ECLOSED; -ENOMEM; the -errno of getrandom; -EINVAL.
 * Python: multiprocessing.connection.deliver_challenge(c, authkey). */
MP_API int mp_conn_deliver_challenge(mp_conn_t *c, const void *key, size_t keylen,
                                     double timeout);

/* mp_conn_answer_challenge answers a challenge received over c (with the
 * digest the challenger names, MD5 for a challenge without prefix).
 * Returns: 0; MP_EAUTH (the challenger rejected the answer, or sent
 *   garbage); -ETIMEDOUT; MP_EEOF; -EPIPE/-ECONNRESET; -EBADF (a one-way
 *   end); MP_ECLOSED; -ENOMEM; -EINVAL.
 * Python: multiprocessing.connection.answer_challenge(c, authkey). */
MP_API int mp_conn_answer_challenge(mp_conn_t *c, const void *key, size_t keylen,
                                    double timeout);

#endif

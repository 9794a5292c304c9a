/* conn.c: Pipe, Connection and wait (Python's multiprocessing.connection),
 * carrying framed byte messages over pipes and stream sockets.
 *
 * Thread-safety: the handle table is guarded by a process-local mutex; one
 * handle is used by one thread at a time (as Python's Connection). Fork-safe:
 * the table's mutex is taken around fork (pthread_atfork).
 *
 * Handles. A handle is a slot of a process-private table mapped at one fixed
 * address (TABLE_BASE) in every process of the family. Private, because each
 * process owns its copy of a connection (closing it closes that process's
 * descriptor only, as in Python); at a fixed address, because a spawned or
 * forkserver child rebuilds the slots its parent had open at the same
 * indices (mp__conn_export / mp__conn_import, through the boot record), so a
 * handle passed in the target's argument means the same connection there.
 * Under fork the mapping is simply copied. A slot is FREE, OPEN or CLOSED;
 * closed slots are only reused after mp_conn_free, and a bootstrapped child
 * allocates above its parent's high-water mark, so a stale handle never
 * names another connection.
 *
 * Framing is Python's: a 4-byte big-endian signed length, or -1 and an 8-byte
 * big-endian length for messages over 2 GiB, then the bytes. A receiver reads
 * exactly one frame (never ahead), so several processes may share a read end
 * under a lock as Python's Queue does, and nothing is lost to a process that
 * exits with bytes in a private buffer.
 *
 * Receive state per handle: has_hdr/size keep a header already read whose
 * body is still in the descriptor (a message too long for the caller's limit
 * or buffer waits there for a larger one); hdr/hdr_got and part/part_got keep
 * the bytes of a frame that a timeout interrupted, so the next call goes on
 * where it stopped; broken marks a stream cut inside a frame (end of file
 * mid-message, a negative length), after which framing is lost. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <fcntl.h>
#include <unistd.h>

#include "arena.h"
#include "internal.h"

_Static_assert(sizeof(void *) == 8, "connections need a 64-bit address space");
#define TABLE_BASE ((uintptr_t)0x1f0000000000ULL)
#define SLOT_MAX (1u << 19)
#define SMALL_MAX (16u * 1024)     /* header and body copied into one write */
#define TINY_MAX 252u              /* ... framed in a small buffer on the fast path */
#define GROW_MIN ((size_t)1 << 20) /* first allocation of a large message */
#define PIPE_GROW (1 << 20)        /* the pipe buffer a large message asks for */

enum { S_FREE = 0, S_OPEN = 1, S_CLOSED = 2 };

struct mp_conn {
    uint8_t state, readable, writable, sock;
    uint8_t has_hdr, broken, hdr_got, grown;
    int32_t fd;          /* read from (and the one for poll and fileno) */
    int32_t wfd;         /* written to: fd, or the other pipe of a duplex Pipe */
    uint32_t next_free;
    unsigned char hdr[12]; /* header bytes read so far (hdr_got) */
    uint64_t size;       /* the pending message's size when has_hdr */
    char *part;          /* body bytes read before a timeout (part_got) */
    size_t part_got, part_cap;
};
/* A slot is a power of two, so that checking a handle is a mask and a shift
 * (the handle check is on every call's path). */
_Static_assert(sizeof(struct mp_conn) == 64, "a slot is 64 bytes");

static pthread_mutex_t T_mu = PTHREAD_MUTEX_INITIALIZER;
static struct mp_conn *T_slots;  /* == TABLE_BASE once mapped */
static _Atomic uint32_t T_hwm = 1; /* slots [1, hwm) have been handed out */
static uint32_t T_free;           /* free list through next_free; 0: empty */
static pthread_once_t T_once = PTHREAD_ONCE_INIT;

static void atfork_prepare(void) { pthread_mutex_lock(&T_mu); }
static void atfork_parent(void) { pthread_mutex_unlock(&T_mu); }
static void atfork_child(void) { pthread_mutex_init(&T_mu, NULL); }

/* Python ignores SIGPIPE at start-up, so a write to a pipe whose readers are
 * gone is an error, not a death. We do the same, but only if the program
 * left SIGPIPE at its default: its own handler stays. */
static void once_init(void)
{
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && !(old.sa_flags & SA_SIGINFO) &&
        old.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* Maps the table (reserved, pages made on first touch); T_mu held. */
static int table_map(void)
{
    if (T_slots)
        return 0;
    void *p = mmap((void *)TABLE_BASE, (size_t)SLOT_MAX * sizeof(struct mp_conn),
                   PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE,
                   -1, 0);
    if (p == MAP_FAILED)
        return -ENOMEM;
    if (p != (void *)TABLE_BASE) { /* a kernel that ignores the flag */
        munmap(p, (size_t)SLOT_MAX * sizeof(struct mp_conn));
        return -ENOMEM;
    }
    T_slots = p;
    return 0;
}

static int slot_alloc(int fd, int wfd, int readable, int writable, struct mp_conn **out)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -EBADF;
    pthread_once(&T_once, once_init);
    pthread_mutex_lock(&T_mu);
    int rc = table_map();
    uint32_t i = 0;
    if (rc == 0) {
        if (T_free) {
            i = T_free;
            T_free = T_slots[i].next_free;
        } else if (T_hwm < SLOT_MAX) {
            i = T_hwm++;
        } else {
            rc = -EMFILE;
        }
    }
    if (rc == 0) {
        /* Filled under the lock: mp__conn_export never sees half a slot. */
        struct mp_conn *c = &T_slots[i];
        memset(c, 0, sizeof *c);
        c->fd = fd;
        c->wfd = wfd;
        c->readable = !!readable;
        c->writable = !!writable;
        c->sock = S_ISSOCK(st.st_mode);
        c->state = S_OPEN;
        *out = c;
    }
    pthread_mutex_unlock(&T_mu);
    return rc;
}

/* Returns the slot index of handle c, or 0 if c is not a handle. */
static uint32_t slot_index(const mp_conn_t *c)
{
    /* One unsigned compare takes out slot 0, slots never handed out (hwm
     * stays 1 until the table is mapped) and addresses below the table
     * (the subtraction wraps). */
    uintptr_t off = (uintptr_t)c - TABLE_BASE;
    uintptr_t i = off / sizeof *c;
    if (off % sizeof *c || i - 1 >= (uintptr_t)T_hwm - 1)
        return 0;
    return (uint32_t)i;
}

/* is_open: c is a handle to an open connection. */
static inline int is_open(const mp_conn_t *c)
{
    return slot_index(c) && c->state == S_OPEN;
}

/* check: 0 when c is an open handle; MP_ECLOSED or -EINVAL otherwise. */
static int check(const mp_conn_t *c)
{
    if (!slot_index(c) || c->state == S_FREE)
        return -EINVAL;
    return c->state == S_OPEN ? 0 : MP_ECLOSED;
}

int mp_conn_from_fd(mp_conn_t **out, int fd, int readable, int writable)
{
    if (!out)
        return -EINVAL;
    if (fd < 0 || fcntl(fd, F_GETFD) < 0)
        return -EBADF;
    if (!readable && !writable)
        return -EINVAL;
    int rc = slot_alloc(fd, fd, readable, writable, out);
    if (rc == 0)
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    return rc;
}

/* A duplex Pipe is two pipes, one per direction, where Python uses a unix
 * socketpair: a round trip over pipes costs half as much here (8.7 us
 * against 17.5 us on one CPU, 64-75 us against 85-206 us across CPUs), and
 * nothing else differs: end of file and EPIPE come when every copy of the
 * other end is closed, as with a socket. Each end holds two descriptors;
 * fileno is the one to read (poll, wait). */
int mp_pipe(mp_conn_t **c1, mp_conn_t **c2, int duplex)
{
    if (!c1 || !c2)
        return -EINVAL;
    int ab[2] = {-1, -1}, ba[2] = {-1, -1}, rc; /* c1 -> c2, c2 -> c1 */
    rc = mp__sys_pipe(ab, O_CLOEXEC);
    if (rc == 0 && duplex && (rc = mp__sys_pipe(ba, O_CLOEXEC)) < 0) {
        close(ab[0]);
        close(ab[1]);
    }
    if (rc < 0)
        return rc;
    mp_conn_t *a = NULL, *b = NULL;
    /* Simplex: c1 reads ab, c2 writes it (Python's Pipe(False) order). */
    if (duplex)
        rc = slot_alloc(ba[0], ab[1], 1, 1, &a);
    else
        rc = slot_alloc(ab[0], ab[0], 1, 0, &a);
    if (rc == 0)
        rc = duplex ? slot_alloc(ab[0], ba[1], 1, 1, &b) : slot_alloc(ab[1], ab[1], 0, 1, &b);
    if (rc < 0) {
        if (a) {
            a->state = S_CLOSED;
            mp_conn_free(a);
        }
        for (int i = 0; i < 2; i++) {
            close(ab[i]);
            if (duplex)
                close(ba[i]);
        }
        return rc;
    }
    *c1 = a;
    *c2 = b;
    return 0;
}

int mp_conn_fileno(const mp_conn_t *c)
{
    int rc = check(c);
    return rc < 0 ? rc : c->fd;
}

int mp_conn_readable(const mp_conn_t *c)
{
    return slot_index(c) && c->state != S_FREE && c->readable;
}

int mp_conn_writable(const mp_conn_t *c)
{
    return slot_index(c) && c->state != S_FREE && c->writable;
}
int mp_conn_closed(const mp_conn_t *c) { return check(c) != 0; }

void mp_conn_close(mp_conn_t *c)
{
    if (check(c) != 0)
        return;
    /* Under the lock, so that a spawn in another thread hands the child
     * either the open connection or none, never a reused number. */
    pthread_mutex_lock(&T_mu);
    int fd = c->fd, wfd = c->wfd;
    c->state = S_CLOSED;
    c->fd = c->wfd = -1;
    close(fd);
    if (wfd != fd)
        close(wfd);
    pthread_mutex_unlock(&T_mu);
    free(c->part);
    c->part = NULL;
    c->has_hdr = 0;
    c->hdr_got = 0;
}

void mp_conn_free(mp_conn_t *c)
{
    uint32_t i = slot_index(c);
    if (!i || c->state == S_FREE)
        return;
    mp_conn_close(c);
    pthread_mutex_lock(&T_mu);
    c->state = S_FREE;
    c->next_free = T_free;
    T_free = i;
    pthread_mutex_unlock(&T_mu);
}

/* ---- sending --------------------------------------------------------------- */

/* Waits until fd takes more bytes (a descriptor the caller made
 * non-blocking); returns 0 or -errno. */
static int wait_writable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    while (poll(&p, 1, -1) < 0)
        if (errno != EINTR)
            return -errno;
    return 0;
}

/* Writes every byte of iov[0..n) (modified as it goes). */
static int write_all(mp_conn_t *c, struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t w;
        if (c->sock) {
            struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
            w = sendmsg(c->wfd, &m, MSG_NOSIGNAL);
        } else {
            w = n == 1 ? write(c->wfd, iov[0].iov_base, iov[0].iov_len)
                       : writev(c->wfd, iov, n);
        }
        if (w < 0) {
            int e = errno;
            if (e == EINTR)
                continue;
            if (e == EAGAIN || e == EWOULDBLOCK) {
                int rc = wait_writable(c->wfd);
                if (rc < 0)
                    return rc;
                continue;
            }
            return -e;
        }
        size_t left = (size_t)w;
        while (n > 0 && left >= iov[0].iov_len) {
            left -= iov[0].iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov[0].iov_base = (char *)iov[0].iov_base + left;
            iov[0].iov_len -= left;
        }
    }
    return 0;
}

/* Fills hdr with the frame header for len bytes; returns its size. */
static size_t frame_header(unsigned char hdr[12], uint64_t len)
{
    if (len <= 0x7fffffff) {
        for (int i = 0; i < 4; i++)
            hdr[i] = (unsigned char)(len >> (24 - 8 * i));
        return 4;
    }
    memset(hdr, 0xff, 4);
    for (int i = 0; i < 8; i++)
        hdr[4 + i] = (unsigned char)(len >> (56 - 8 * i));
    return 12;
}

/* A pipe that carries a large message gets a larger buffer (once, best
 * effort): a 64 KiB pipe makes writer and reader take turns sixteen times
 * per megabyte, each turn a wake-up, which costs most when they run on
 * different CPUs. Pipes that carry only small messages keep the default,
 * so the user's pipe memory (pipe-user-pages-soft) is spent only where it
 * pays. */
static void grow_pipe(mp_conn_t *c, size_t len)
{
    c->grown = 1;
    int want = len < PIPE_GROW ? (int)len : PIPE_GROW;
    int now = fcntl(c->wfd, F_GETPIPE_SZ);
    if (now > 0 && now < want)
        fcntl(c->wfd, F_SETPIPE_SZ, want);
}

/* The rest of a send whose first write on a pipe returned w, short of the
 * frame f[0..n): a short write, an interruption or a full non-blocking pipe
 * goes on in write_all; a failure is returned, not tried again (one EPIPE
 * raises one SIGPIPE for a program that handles it). errno is w's. */
static int send_rest(mp_conn_t *c, unsigned char *f, size_t n, ssize_t w)
{
    if (w < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
        return -errno;
    size_t done = w > 0 ? (size_t)w : 0;
    struct iovec iov = {f + done, n - done};
    return write_all(c, &iov, 1);
}

/* mp_conn_send_bytes beyond its fast path: every check, sockets, and
 * messages of any size. */
static __attribute__((noinline)) int send_general(mp_conn_t *c, const void *buf,
                                                  size_t len)
{
    int rc = check(c);
    if (rc < 0)
        return rc;
    if (!buf && len)
        return -EINVAL;
    if (!c->writable)
        return -EBADF;
    unsigned char small[4 + SMALL_MAX];
    if (len <= SMALL_MAX) {
        /* One write: the reader sees the frame in one piece and we pay one
         * system call. */
        frame_header(small, len);
        if (len)
            memcpy(small + 4, buf, len);
        if (!c->sock)
            return send_rest(c, small, 4 + len, write(c->wfd, small, 4 + len));
        struct iovec iov = {small, 4 + len};
        return write_all(c, &iov, 1);
    }
    if (!c->sock && !c->grown)
        grow_pipe(c, len);
    size_t h = frame_header(small, len);
    struct iovec iov[2] = {{small, h}, {(void *)buf, len}};
    return write_all(c, iov, 2);
}

int mp_conn_send_bytes(mp_conn_t *c, const void *buf, size_t len)
{
    /* The common case as a raw writer does it: a small message on an open
     * pipe end, framed on the stack and written with one call from here.
     * Measured: a message cost mproc about 250 instructions to raw's 40
     * before the send and the receive had these paths. */
    if (len <= TINY_MAX && buf && is_open(c) && c->writable && !c->sock) {
        unsigned char f[4 + TINY_MAX];
        f[0] = f[1] = 0;
        f[2] = (unsigned char)(len >> 8);
        f[3] = (unsigned char)len;
        memcpy(f + 4, buf, len);
        ssize_t w = write(c->wfd, f, 4 + len);
        return w == (ssize_t)(4 + len) ? 0 : send_rest(c, f, 4 + len, w);
    }
    return send_general(c, buf, len);
}

int mp_conn_send_bytes_at(mp_conn_t *c, const void *buf, size_t len, size_t offset,
                          size_t size)
{
    if (!buf && len)
        return -EINVAL;
    if (offset > len)
        return -EINVAL;
    if (size == MP_SIZE_REST)
        size = len - offset;
    else if (size > len - offset)
        return -EINVAL;
    return mp_conn_send_bytes(c, buf ? (const char *)buf + offset : NULL, size);
}

/* ---- receiving ------------------------------------------------------------- */

/* A read that never blocks: MSG_DONTWAIT for a socket, RWF_NOWAIT for a
 * pipe (the descriptor's own flags are shared with other processes and are
 * left alone). Sets errno to EAGAIN when nothing is there. */
static int nowait_works = 1; /* cleared if the kernel refuses RWF_NOWAIT */

static ssize_t read_nowait(mp_conn_t *c, void *p, size_t n)
{
    if (c->sock)
        return recv(c->fd, p, n, MSG_DONTWAIT);
    if (nowait_works) {
        struct iovec v = {p, n};
        ssize_t r = preadv2(c->fd, &v, 1, -1, RWF_NOWAIT);
        if (r >= 0 || errno != EOPNOTSUPP)
            return r;
        nowait_works = 0;
    }
    int rc = mp__wait_readable(c->fd, 0);
    if (rc < 0) {
        errno = rc == -ETIMEDOUT ? EAGAIN : -rc;
        return -1;
    }
    return read(c->fd, p, n);
}

/* Before a receive on a socket or a duplex Pipe sleeps, it looks again for
 * a short while (SPIN_NS) when there is more than one CPU, yielding between
 * looks: a sleeping reader woken from another CPU costs tens of
 * microseconds on small machines, more than a whole round trip on one CPU,
 * and a duplex connection mostly carries requests and their answers, which
 * come back within that time. The yield lets a sender that shares our CPU
 * run. The first look is the read itself (MSG_DONTWAIT or RWF_NOWAIT), so a
 * receive that finds its bytes waiting makes one system call. A simplex
 * pipe, and any pipe on one CPU, without a deadline is read with a plain
 * blocking read: a one-way stream is about throughput, where a reader that
 * sleeps while the writer fills the pipe drains it in bursts, and a
 * non-blocking look at a pipe (RWF_NOWAIT) costs more than the read
 * (measured: 15-25% per call). */
#define SPIN_NS 20000

static int multi_cpu = -1;

/* 1 when this process may run on more than one CPU (read once). */
static int multi(void)
{
    if (multi_cpu < 0)
        multi_cpu = mp_cpu_count() > 1;
    return multi_cpu;
}

/* Connections that carry requests and answers look again before sleeping:
 * sockets and duplex Pipes (two pipes: wfd differs from fd). */
static int spins(const mp_conn_t *c)
{
    return (c->sock || c->wfd != c->fd) && multi();
}

/* Reads up to n bytes into p (at least one unless end of file or error),
 * waiting until deadline d. Returns the count, 0 at end of file, -ETIMEDOUT
 * or -errno. */
static ssize_t read_some(mp_conn_t *c, void *p, size_t n, mp__deadline_t d)
{
    int64_t spin_end = 0;
    int spin = spins(c) && d != 0;
    if (!spin && !c->sock && d == MP__NEVER)
        goto block;
    for (;;) {
        ssize_t r = read_nowait(c, p, n);
        if (r >= 0)
            return r;
        int e = errno;
        if (e == EINTR)
            continue;
        if (e != EAGAIN && e != EWOULDBLOCK)
            return e == ECONNRESET ? MP_EEOF : -e;
        if (spin) {
            int64_t now = mp__now_ns();
            if (!spin_end)
                spin_end = now + SPIN_NS;
            if (now < spin_end && now < d) {
                sched_yield();
                continue;
            }
        }
        if (d == MP__NEVER) {
        block:
            /* Sleep in the read itself (one call); a descriptor the caller
             * made non-blocking says EAGAIN, and then poll sleeps. */
            r = c->sock ? recv(c->fd, p, n, 0) : read(c->fd, p, n);
            if (r >= 0)
                return r;
            e = errno;
            if (e == EINTR)
                goto block;
            if (e != EAGAIN && e != EWOULDBLOCK)
                return e == ECONNRESET ? MP_EEOF : -e;
        }
        int rc = mp__wait_readable(c->fd, d);
        if (rc < 0)
            return rc;
    }
}

/* A cut inside a frame: the stream can no longer be framed. */
static int cut(mp_conn_t *c)
{
    c->broken = 1;
    free(c->part);
    c->part = NULL;
    c->part_got = 0;
    return -EPROTO;
}

/* Makes sure the next frame's header has been read (c->has_hdr, c->size).
 * Header bytes that came before a timeout are kept for the next call. */
static int read_header(mp_conn_t *c, mp__deadline_t d)
{
    if (c->broken)
        return -EPROTO;
    if (c->has_hdr)
        return 0;
    static const unsigned char escape[4] = {0xff, 0xff, 0xff, 0xff};
    for (;;) {
        size_t need = c->hdr_got >= 4 && !memcmp(c->hdr, escape, 4) ? 12 : 4;
        if (c->hdr_got == need)
            break;
        ssize_t r = read_some(c, c->hdr + c->hdr_got, need - c->hdr_got, d);
        if (r > 0) {
            c->hdr_got = (uint8_t)(c->hdr_got + r);
            continue;
        }
        if (r == 0 || r == MP_EEOF)
            return c->hdr_got ? cut(c) : MP_EEOF;
        return (int)r; /* a timeout or an error: what came is kept */
    }
    const unsigned char *h = c->hdr;
    int32_t s = (int32_t)((uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 |
                          (uint32_t)h[2] << 8 | h[3]);
    uint64_t size = (uint64_t)s;
    if (s == -1) {
        size = 0;
        for (int i = 4; i < 12; i++)
            size = size << 8 | h[i];
    } else if (s < 0) {
        return cut(c);
    }
    c->hdr_got = 0;
    c->size = size;
    c->has_hdr = 1;
    return 0;
}

static int recv_prologue(mp_conn_t *c, double timeout, mp__deadline_t *d)
{
    int rc = check(c);
    if (rc < 0)
        return rc;
    if (!c->readable)
        return -EBADF;
    return mp__deadline(timeout, d);
}

/* Reads the pending body into c->part, whose memory grows with the bytes
 * that arrive: a header claiming gigabytes costs nothing until they come.
 * A timeout keeps what came (the next call goes on from there). */
static int fill_part(mp_conn_t *c, mp__deadline_t d)
{
    size_t size = (size_t)c->size;
    if (!c->part) {
        c->part_cap = size < GROW_MIN ? size : GROW_MIN;
        c->part = mp__malloc(c->part_cap ? c->part_cap : 1);
        c->part_got = 0;
        if (!c->part)
            return -ENOMEM;
    }
    while (c->part_got < size) {
        if (c->part_got == c->part_cap) {
            size_t ncap = c->part_cap > size / 2 ? size : c->part_cap * 2;
            char *nb = realloc(c->part, ncap);
            if (!nb)
                return -ENOMEM; /* nothing lost: a later call goes on */
            c->part = nb;
            c->part_cap = ncap;
        }
        ssize_t r = read_some(c, c->part + c->part_got, c->part_cap - c->part_got, d);
        if (r == 0 || r == MP_EEOF)
            return cut(c);
        if (r < 0)
            return (int)r;
        c->part_got += (size_t)r;
    }
    return 0;
}

/* Reads the pending body (size bytes) into dst, after the part an earlier
 * call kept; a timeout moves what came into c->part (grown first, so that
 * a failed allocation loses nothing either). */
static int read_body_into(mp_conn_t *c, char *dst, mp__deadline_t d)
{
    size_t size = (size_t)c->size, got = 0;
    if (c->part) {
        memcpy(dst, c->part, c->part_got);
        got = c->part_got;
    }
    while (got < size) {
        ssize_t r = read_some(c, dst + got, size - got, d);
        if (r == 0 || r == MP_EEOF)
            return cut(c);
        if (r < 0) {
            if (got > c->part_got) {
                char *np = realloc(c->part, got);
                if (!np)
                    return cut(c); /* the bytes are out of the stream and nowhere */
                memcpy(np + c->part_got, dst + c->part_got, got - c->part_got);
                c->part = np;
                c->part_got = c->part_cap = got;
            }
            return (int)r;
        }
        got += (size_t)r;
    }
    free(c->part);
    c->part = NULL;
    c->part_got = 0;
    c->has_hdr = 0;
    return 0;
}

int mp_conn_recv_bytes(mp_conn_t *c, void **buf, size_t *len, size_t maxlength,
                       double timeout)
{
    mp__deadline_t d;
    if (!buf || !len)
        return -EINVAL;
    int rc = recv_prologue(c, timeout, &d);
    if (rc == 0)
        rc = read_header(c, d);
    if (rc < 0)
        return rc;
    if ((maxlength && c->size > maxlength) || c->size > SIZE_MAX - 1)
        return -EMSGSIZE;
    rc = fill_part(c, d);
    if (rc < 0)
        return rc;
    *buf = c->part;
    *len = (size_t)c->size;
    c->part = NULL;
    c->part_got = 0;
    c->has_hdr = 0;
    return 0;
}

#define FAST_NA 1 /* recv_into_fast: go on in the general path */

/* The rest of recv_into_fast's body after a first read that returned r,
 * short of size: 0 once all of it is in dst; a cut at end of file; FAST_NA
 * with what came kept in part when a read fails. errno is r's. */
static __attribute__((noinline)) int fast_body_rest(mp_conn_t *c, char *dst,
                                                    size_t size, ssize_t r)
{
    size_t n = 0;
    for (;;) {
        if (r > 0) {
            n += (size_t)r;
            if (n == size)
                return 0;
        } else if (r == 0) {
            return cut(c);
        } else if (errno != EINTR) {
            if (n) { /* keep what came: the general path starts from part */
                c->part = mp__malloc(n);
                if (!c->part)
                    return cut(c);
                memcpy(c->part, dst, n);
                c->part_got = c->part_cap = n;
            }
            return FAST_NA;
        }
        r = read(c->fd, dst + n, size - n);
    }
}

/* The common case in the fewest steps, as a raw reader does it: a pipe end
 * with nothing pending and no deadline; read the header, then the body
 * straight into dst. Anything else (a short or failed read, the -1 escape
 * or a negative length) leaves its state in c (header bytes in hdr, body
 * bytes in part) and returns FAST_NA, so the general path goes on from
 * exactly there. */
static int recv_into_fast(mp_conn_t *c, char *dst, size_t cap, size_t *got)
{
    ssize_t r = read(c->fd, c->hdr, 4);
    if (r == 0)
        return MP_EEOF;
    if (r < 0)
        return FAST_NA;
    c->hdr_got = (uint8_t)r;
    if (r < 4 || (c->hdr[0] & 0x80))
        return FAST_NA;
    const unsigned char *h = c->hdr;
    size_t size = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
    c->hdr_got = 0;
    c->size = size;
    c->has_hdr = 1;
    if (size > cap) {
        *got = size;
        return MP_ETOOSHORT;
    }
    if (size) {
        r = read(c->fd, dst, size);
        if (r != (ssize_t)size) {
            int rc = fast_body_rest(c, dst, size, r);
            if (rc != 0)
                return rc;
        }
    }
    c->has_hdr = 0;
    *got = size;
    return 0;
}

/* mp_conn_recv_bytes_into beyond its fast path: every check, deadlines,
 * sockets, and what an earlier call left (a header, part of a body). */
static __attribute__((noinline)) int recv_into_general(mp_conn_t *c, void *buf,
                                                       size_t len, size_t offset,
                                                       size_t *got, double timeout)
{
    mp__deadline_t d;
    if ((!buf && len) || !got || offset > len)
        return -EINVAL;
    int rc = recv_prologue(c, timeout, &d);
    if (rc == 0)
        rc = read_header(c, d);
    if (rc < 0)
        return rc;
    if (c->size > len - offset) {
        *got = c->size > SIZE_MAX ? SIZE_MAX : (size_t)c->size;
        return MP_ETOOSHORT;
    }
    size_t n = (size_t)c->size;
    rc = read_body_into(c, (char *)buf + offset, d);
    if (rc == 0)
        *got = n;
    return rc;
}

int mp_conn_recv_bytes_into(mp_conn_t *c, void *buf, size_t len, size_t offset,
                            size_t *got, double timeout)
{
    if (timeout < 0 && buf && got && offset <= len && is_open(c) && c->readable &&
        !c->sock && !spins(c) && !c->has_hdr && !c->hdr_got &&
        !c->part && !c->broken) {
        int frc = recv_into_fast(c, (char *)buf + offset, len - offset, got);
        if (frc <= 0)
            return frc;
    }
    return recv_into_general(c, buf, len, offset, got, timeout);
}

int mp_conn_poll(mp_conn_t *c, double timeout)
{
    mp__deadline_t d;
    int rc = recv_prologue(c, timeout, &d);
    if (rc < 0)
        return rc;
    if (c->has_hdr || c->broken)
        return 1;
    rc = mp__wait_readable(c->fd, d);
    return rc == 0 ? 1 : rc == -ETIMEDOUT ? 0 : rc;
}

/* ---- structured values ------------------------------------------------------ */

int mp_conn_send(mp_conn_t *c, const mp_val_t *v)
{
    int rc = check(c);
    if (rc < 0)
        return rc;
    void *buf = NULL;
    size_t len = 0;
    rc = mp_val_pack(v, &buf, &len);
    if (rc == 0)
        rc = mp_conn_send_bytes(c, buf, len);
    free(buf);
    return rc;
}

int mp_conn_recv(mp_conn_t *c, mp_val_t **out, size_t maxlength, double timeout)
{
    if (!out)
        return -EINVAL;
    void *buf = NULL;
    size_t len = 0;
    int rc = mp_conn_recv_bytes(c, &buf, &len, maxlength, timeout);
    if (rc < 0)
        return rc;
    rc = mp_val_unpack(buf, len, out);
    free(buf);
    return rc;
}

/* ---- wait ------------------------------------------------------------------- */

mp_waitable_t mp_waitable_conn(mp_conn_t *c)
{
    return (mp_waitable_t){.kind = MP_WAIT_CONN, .u.conn = c};
}

mp_waitable_t mp_waitable_process(mp_process_t *p)
{
    return (mp_waitable_t){.kind = MP_WAIT_PROCESS, .u.process = p};
}

mp_waitable_t mp_waitable_fd(int fd)
{
    return (mp_waitable_t){.kind = MP_WAIT_FD, .u.fd = fd};
}

/* Fills p with what to poll for o; *now set when o is ready without polling
 * (a connection holding a read header). */
static int wait_item(const mp_waitable_t *o, struct pollfd *p, int *now)
{
    int fd, rc;
    *now = 0;
    switch (o->kind) {
    case MP_WAIT_CONN:
        rc = check(o->u.conn);
        if (rc < 0 || !o->u.conn->readable)
            return -EINVAL;
        fd = o->u.conn->fd;
        *now = o->u.conn->has_hdr || o->u.conn->broken;
        break;
    case MP_WAIT_PROCESS:
        if (!o->u.process)
            return -EINVAL;
        fd = mp_process_sentinel(o->u.process);
        if (fd < 0)
            return -EINVAL;
        break;
    case MP_WAIT_FD:
        fd = o->u.fd;
        if (fd < 0)
            return -EINVAL;
        break;
    default:
        return -EINVAL;
    }
    *p = (struct pollfd){.fd = fd, .events = POLLIN};
    return 0;
}

int mp_wait(mp_waitable_t *objs, size_t n, double timeout)
{
    mp__deadline_t d;
    if ((!objs && n) || n > INT_MAX || mp__deadline(timeout, &d) < 0)
        return -EINVAL;
    struct pollfd stack[16], *p = n <= 16 ? stack : mp__malloc(n * sizeof *p);
    if (!p)
        return -ENOMEM;
    int rc = 0, early = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        int now;
        rc = wait_item(&objs[i], &p[i], &now);
        early |= now;
    }
    while (rc == 0) {
        int r = poll(p, (nfds_t)n, early ? 0 : mp__deadline_ms(d));
        if (r >= 0)
            break;
        if (errno != EINTR)
            rc = -errno;
    }
    int ready = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const mp_conn_t *c = objs[i].kind == MP_WAIT_CONN ? objs[i].u.conn : NULL;
        int now = c && (c->has_hdr || c->broken);
        objs[i].ready = now || (p[i].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL));
        ready += objs[i].ready;
    }
    if (p != stack)
        free(p);
    return rc < 0 ? rc : ready;
}

/* ---- handing connections to bootstrapped children --------------------------- */

int mp__conn_export(mp__boot_t *b)
{
    b->nconns = 0;
    pthread_mutex_lock(&T_mu);
    uint32_t hwm = T_hwm;
    b->conn_hwm = hwm;
    if (!T_slots) {
        pthread_mutex_unlock(&T_mu);
        return 0;
    }
    int rc = 0;
    for (uint32_t i = 1; i < hwm && rc == 0; i++) {
        struct mp_conn *c = &T_slots[i];
        if (c->state != S_OPEN)
            continue;
        if (b->nconns == MP__MAX_CONNS || b->nfds + 2 > MP__MAX_FDS - 4) {
            rc = -E2BIG;
            break;
        }
        b->conns[b->nconns++] = (mp__conn_rec_t){
            .slot = i, .fd = c->fd, .wfd = c->wfd, .size = c->size,
            .flags = (uint32_t)(c->readable | c->writable << 1 | c->sock << 2 |
                                c->has_hdr << 3 |
                                /* a part-read frame stays behind */
                                (c->broken | !!c->hdr_got | !!c->part_got) << 4)};
        for (int j = 0; j < 2; j++) {
            int fd = j ? c->wfd : c->fd;
            uint32_t k = 0;
            while (k < b->nfds && b->fds[k] != fd)
                k++;
            if (k == b->nfds)
                b->fds[b->nfds++] = fd;
        }
    }
    pthread_mutex_unlock(&T_mu);
    return rc;
}

int mp__conn_holds_fd(int fd)
{
    int held = 0;
    pthread_mutex_lock(&T_mu);
    for (uint32_t i = 1; T_slots && i < T_hwm && !held; i++)
        held = T_slots[i].state == S_OPEN && (T_slots[i].fd == fd || T_slots[i].wfd == fd);
    pthread_mutex_unlock(&T_mu);
    return held;
}

int mp__conn_import(const mp__boot_t *b)
{
    if (!b->nconns && b->conn_hwm <= 1)
        return 0;
    if (b->conn_hwm > SLOT_MAX)
        return -EINVAL;
    pthread_once(&T_once, once_init);
    pthread_mutex_lock(&T_mu);
    int rc = table_map();
    if (rc == 0) {
        T_hwm = b->conn_hwm > 1 ? b->conn_hwm : 1;
        /* Slots below the mark that do not come open were closed (or freed)
         * in the parent: closed here, so their calls say MP_ECLOSED. */
        for (uint32_t i = 1; i < T_hwm; i++)
            T_slots[i] = (struct mp_conn){.state = S_CLOSED, .fd = -1, .wfd = -1};
        for (uint32_t k = 0; k < b->nconns; k++) {
            const mp__conn_rec_t *r = &b->conns[k];
            if (r->slot == 0 || r->slot >= T_hwm)
                continue;
            struct mp_conn *c = &T_slots[r->slot];
            memset(c, 0, sizeof *c);
            c->fd = r->fd;
            c->wfd = r->wfd;
            c->readable = r->flags & 1;
            c->writable = r->flags >> 1 & 1;
            c->sock = r->flags >> 2 & 1;
            c->has_hdr = r->flags >> 3 & 1;
            c->broken = r->flags >> 4 & 1;
            c->size = r->size;
            c->state = S_OPEN;
            fcntl(c->fd, F_SETFD, FD_CLOEXEC);
            fcntl(c->wfd, F_SETFD, FD_CLOEXEC);
        }
    }
    pthread_mutex_unlock(&T_mu);
    return rc;
}

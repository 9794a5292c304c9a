/* manager.c: Manager (Python's multiprocessing.managers): the server core
 * and the client side of proxies.
 *
 * Server. A listener (unix or TCP) without a key of its own; each accepted
 * connection gets a thread that runs the authkey handshake (Python's, both
 * ways: deliver, then answer), then serves requests one at a time: decode
 * with the bounded value decoder, look the object up, call its kind under
 * the server mutex, reply. Blocking methods sleep on the object's condition
 * variable, which releases the mutex, so other clients go on. When a
 * connection drops, every object is told (client_gone): a Lock that client
 * held is released and its next acquirer is told the owner died. A request
 * that does not decode, or names what does not exist, gets an error reply
 * and the connection goes on; only a frame over max_message (which cannot be
 * skipped without reading it) ends that one connection.
 *
 * Client. A proxy is a small record in the shared arena (address, key,
 * object id, type), so children receive it under every start method. Each
 * thread of each process talks to a manager over its own connection, opened
 * on first use and cached per thread (a fork child opens its own: the
 * cached entry records the pid). A connection that fails, or whose reply
 * did not come in time, is dropped (a late reply would desynchronize it).
 *
 * A started manager is a daemonic child process: it dies with its parent
 * (no orphan server), and it is shut down cleanly at exit (an atexit handler
 * registered after mproc's own, so it runs first).
 *
 * MT-safe: yes. Fork-safe: yes (see the connection cache). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "manager_int.h"

#define PROXY_MAGIC 0x6d707078u /* "mppx" */
#define TYPE_MAX 48
#define MAX_MESSAGE_DEFAULT ((size_t)64 << 20)
#define CONNECT_TIMEOUT 30.0
#define HANDSHAKE_TIMEOUT 10.0
#define REPLY_GRACE 10.0     /* beyond a call's own timeout */
#define CACHE_MAX 16         /* managers a thread talks to at once */
#define MAX_TYPES 32
#define MAX_NAMES 256

struct mp_proxy {
    uint32_t magic;
    int32_t creator;        /* the process whose mp_proxy_free deletes it */
    uint64_t id;
    uint64_t max_message;
    uint32_t keylen;
    char type[TYPE_MAX];
    char address[MP_ADDRESS_MAX];
    unsigned char key[MP_AUTHKEY_MAX];
};

/* ---- framed I/O on a private connection --------------------------------------------- */

/* A manager connection belongs to one thread of one process (never handed
 * on), so unlike a general Connection it may read ahead: one recv brings a
 * whole small frame (header and body) and whatever follows stays in the
 * buffer for the next call. That halves the system calls of a request. The
 * framing is Python's (4-byte big-endian length; -1 and an 8-byte length
 * above 2 GiB). The buffer grows with the bytes that arrive, up to the
 * frame limit, never with what a header claims. */
typedef struct {
    int fd;
    unsigned char *buf;
    size_t off, len, cap;
} frd_t;

#define RD_MIN 4096
#define RD_SPIN_NS 20000

static int multi_cpu(void)
{
    static int m = -1;
    if (m < 0)
        m = mp_cpu_count() > 1;
    return m;
}

/* Receives more bytes into r (at least one), waiting until d. */
static int frd_fill(frd_t *r, mp__deadline_t d)
{
    int64_t spin_end = 0;
    /* On one CPU the peer cannot have answered yet: sleep in the read at
     * once (a look first would be one more system call per message). */
    int look = multi_cpu() || d != MP__NEVER;
    for (;;) {
        if (!look)
            goto block;
        ssize_t n = recv(r->fd, r->buf + r->len, r->cap - r->len, MSG_DONTWAIT);
        if (n > 0) {
            r->len += (size_t)n;
            return 0;
        }
        if (n == 0)
            return MP_EEOF;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return errno == ECONNRESET ? MP_EEOF : -errno;
        /* With another CPU, the answer to a request usually comes sooner
         * than a sleep and wake-up would take: look for a moment. */
        if (multi_cpu()) {
            int64_t now = mp__now_ns();
            if (!spin_end)
                spin_end = now + RD_SPIN_NS;
            if (now < spin_end && now < d) {
                sched_yield();
                continue;
            }
        }
        if (d == MP__NEVER) {
        block:
            n = recv(r->fd, r->buf + r->len, r->cap - r->len, 0);
            if (n > 0) {
                r->len += (size_t)n;
                return 0;
            }
            if (n == 0)
                return MP_EEOF;
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return errno == ECONNRESET ? MP_EEOF : -errno;
        }
        int rc = mp__wait_readable(r->fd, d);
        if (rc < 0)
            return rc;
    }
}

/* Makes room to read more of a frame that needs `need` bytes in all (its
 * header and body, at most the frame limit + 12): moves the unread bytes to
 * the front and, when the buffer is full, doubles it, never past need. */
static int frd_room(frd_t *r, size_t need)
{
    if (r->off) {
        memmove(r->buf, r->buf + r->off, r->len - r->off);
        r->len -= r->off;
        r->off = 0;
    }
    if (r->len < r->cap)
        return 0;
    size_t cap = r->cap ? r->cap * 2 : RD_MIN;
    size_t top = need > RD_MIN ? need : RD_MIN;
    if (cap > top)
        cap = top;
    if (cap <= r->len)
        return -EPROTO; /* cannot happen: need > len here */
    unsigned char *nb = realloc(r->buf, cap);
    if (!nb)
        return -ENOMEM;
    r->buf = nb;
    r->cap = cap;
    return 0;
}

/* Receives one frame: *body points into the buffer (valid until the next
 * call) for *n bytes. -EMSGSIZE for a frame over max (the connection must
 * then be dropped), -EPROTO for a negative length, MP_EEOF, -ETIMEDOUT. */
static int frd_recv(frd_t *r, size_t max, mp__deadline_t d, const void **body, size_t *n)
{
    for (;;) {
        size_t avail = r->len - r->off;
        const unsigned char *h = r->buf + r->off;
        size_t need = 4;
        if (avail >= 4) {
            int32_t s = (int32_t)((uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 |
                                  (uint32_t)h[2] << 8 | h[3]);
            size_t hl = 4;
            uint64_t size = (uint64_t)s;
            if (s == -1) {
                hl = 12;
                if (avail < 12) {
                    need = 12;
                    goto more;
                }
                size = 0;
                for (int i = 4; i < 12; i++)
                    size = size << 8 | h[i];
            } else if (s < 0) {
                return -EPROTO;
            }
            if (size > max)
                return -EMSGSIZE;
            need = hl + (size_t)size;
            if (avail >= need) {
                *body = h + hl;
                *n = (size_t)size;
                r->off += need;
                return 0;
            }
        }
    more:;
        int rc = frd_room(r, need);
        if (rc < 0)
            return rc;
        rc = frd_fill(r, d);
        if (rc < 0)
            return rc;
    }
}

/* Sends one frame, waiting for room in the socket until d: -ETIMEDOUT
 * then, with part of the frame perhaps sent, so the caller must drop the
 * connection (a peer that stops reading cannot hold a call past its
 * deadline). */
static int frd_send(int fd, const void *p, size_t n, mp__deadline_t d)
{
    unsigned char hdr[12];
    size_t hl = 4;
    if (n <= 0x7fffffff) {
        for (int i = 0; i < 4; i++)
            hdr[i] = (unsigned char)(n >> (24 - 8 * i));
    } else {
        memset(hdr, 0xff, 4);
        for (int i = 0; i < 8; i++)
            hdr[4 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
        hl = 12;
    }
    struct iovec iov[2] = {{hdr, hl}, {(void *)p, n}};
    struct iovec *v = iov;
    int cnt = 2;
    while (cnt > 0) {
        struct msghdr m = {.msg_iov = v, .msg_iovlen = (size_t)cnt};
        ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                struct pollfd pf = {.fd = fd, .events = POLLOUT};
                int r = poll(&pf, 1, mp__deadline_ms(d));
                if (r == 0)
                    return -ETIMEDOUT;
                if (r < 0 && errno != EINTR)
                    return -errno;
                continue;
            }
            return errno == ECONNRESET ? MP_EEOF : -errno;
        }
        size_t left = (size_t)w;
        while (cnt > 0 && left >= v[0].iov_len) {
            left -= v[0].iov_len;
            v++;
            cnt--;
        }
        if (cnt > 0) {
            v[0].iov_base = (char *)v[0].iov_base + left;
            v[0].iov_len -= left;
        }
    }
    return 0;
}

/* A growable buffer as msgpack-c's writer. */
typedef struct {
    char *data;
    size_t len, cap;
    int err;
} buf_t;

static int buf_write(void *data, const char *p, size_t n)
{
    buf_t *b = data;
    if (b->err)
        return -1;
    if (n > SIZE_MAX / 2 - b->len) {
        b->err = -ENOMEM;
        return -1;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        char *nd = realloc(b->data, cap);
        if (!nd) {
            b->err = -ENOMEM;
            return -1;
        }
        b->data = nd;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

/* Reads the leading msgpack integer of a reply (the code) and says where
 * the result starts. */
static int read_code(const unsigned char *p, size_t len, int64_t *code, size_t *used)
{
    if (len < 1)
        return -EPROTO;
    unsigned char t = p[0];
    if (t <= 0x7f) {
        *code = t;
        *used = 1;
        return 0;
    }
    if (t >= 0xe0) {
        *code = (int8_t)t;
        *used = 1;
        return 0;
    }
    int n;
    int sign;
    switch (t) {
    case 0xcc: n = 1; sign = 0; break;
    case 0xcd: n = 2; sign = 0; break;
    case 0xce: n = 4; sign = 0; break;
    case 0xcf: n = 8; sign = 0; break;
    case 0xd0: n = 1; sign = 1; break;
    case 0xd1: n = 2; sign = 1; break;
    case 0xd2: n = 4; sign = 1; break;
    case 0xd3: n = 8; sign = 1; break;
    default: return -EPROTO;
    }
    if (len < (size_t)n + 1)
        return -EPROTO;
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[1 + i];
    if (sign && n < 8 && (v >> (8 * n - 1)))
        v |= ~0ull << (8 * n);
    *code = (int64_t)v;
    *used = (size_t)n + 1;
    return 0;
}

/* ---- the shared-memory channel ---------------------------------------------------- */

/* A client of the same family as the server (both map the same arena: the
 * manager's own children, the process that started it) moves its requests
 * to a channel in the arena after the handshake: the request and reply
 * bytes are copied through a buffer there and each side wakes the other
 * with a futex, which costs about half of a unix-socket round trip here
 * (two futex calls instead of four socket calls, and no socket buffers).
 * The socket stays open and is how each side learns that the other is
 * gone: a waiter looks at it between slices of CHAN_SLICE_NS. The server
 * thread of the connection owns the channel and frees it when it ends;
 * the client only forgets it. */
typedef struct {
    _Atomic uint32_t req;     /* bumped by the client once a request is in buf */
    _Atomic uint32_t rep;     /* bumped by the server once the reply is there */
    _Atomic uint32_t closed;  /* set by the server as it stops */
    _Atomic uint32_t refs;    /* client + server: the last one frees it */
    _Atomic uint32_t ans;     /* the request number the reply in buf answers */
    uint32_t pad;
    unsigned char *buf;       /* arena; the client grows it between calls */
    uint64_t cap, len;
    unsigned char *big;       /* a reply larger than cap (arena; the client frees it) */
} chan_t;

#define CHAN_MIN 4096
#define CHAN_SLICE_NS 100000000LL /* 100 ms between looks at the socket */

typedef struct {
    uint64_t token;           /* random, one per family (arena) */
} mroot_t;

static void mroot_init(void *p)
{
    mroot_t *r = p;
    uint64_t t = 0;
    if (getrandom(&t, sizeof t, 0) != (ssize_t)sizeof t)
        t = (uint64_t)mp__now_ns() ^ ((uint64_t)getpid() << 32);
    r->token = (t >> 1) | 1; /* never 0, and an int64 on the wire */
}

static void chan_unref(chan_t *ch)
{
    if (!ch || atomic_fetch_sub(&ch->refs, 1) != 1)
        return;
    mp__arena_free(ch->buf);
    mp__arena_free(ch->big);
    mp__arena_free(ch);
}

/* The family token, or 0 when this process has no arena. */
static uint64_t family_token(void)
{
    int fd;
    uintptr_t base;
    size_t reserve;
    mp__arena_describe(&fd, &base, &reserve);
    if (fd < 0)
        return 0;
    mroot_t *r = mp__arena_root(MP__ROOT_MANAGER, sizeof *r, mroot_init);
    return r ? r->token : 0;
}

/* Has the peer closed (or reset) the socket? A look that does not block. */
static int sock_gone(int fd)
{
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    if (poll(&pf, 1, 0) <= 0)
        return 0;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* Waits until *w != v, looking at the socket between slices; spins first
 * with another CPU. Returns 0, MP_EEOF (the peer closed the socket: gone),
 * MP_ECLOSED (the server closed the channel) or -ETIMEDOUT. */
static int chan_wait(_Atomic uint32_t *w, uint32_t v, int fd, mp__deadline_t d,
                     _Atomic uint32_t *closed)
{
    if (multi_cpu()) {
        int64_t end = mp__now_ns() + RD_SPIN_NS;
        while (atomic_load(w) == v && mp__now_ns() < end)
            sched_yield();
    } else {
        /* One CPU: the peer we just woke is runnable here; handing it the
         * CPU directly makes two switches a request. Sleeping at once lets
         * the wake-up preempt us part of the time instead: a third switch
         * per request in about half the runs, measured. */
        for (int i = 0; i < 2 && atomic_load(w) == v; i++)
            sched_yield();
    }
    while (atomic_load(w) == v) {
        if (closed && atomic_load(closed))
            return MP_ECLOSED;
        int64_t now = mp__now_ns();
        if (d != MP__NEVER && now >= d)
            return -ETIMEDOUT;
        mp__deadline_t slice = now + CHAN_SLICE_NS;
        if (d != MP__NEVER && d < slice)
            slice = d;
        int rc = mp__futex_wait((const uint32_t *)w, v, slice);
        if (rc == -ETIMEDOUT && atomic_load(w) == v && sock_gone(fd))
            return MP_EEOF;
    }
    return 0;
}

/* ---- the client: connections per thread ---------------------------------------- */

/* The pid is checked on every call: mp__self_pid costs no system call. */
#define me() mp__self_pid()

typedef struct {
    char address[MP_ADDRESS_MAX];
    pid_t pid;
    frd_t rd;                 /* rd.fd: the socket, close-on-exec */
    chan_t *ch;               /* the shared-memory channel, or NULL */
} centry_t;

/* Every manager socket of this process, so that a fork child closes them
 * all at once (an atfork handler): a child holding its parent's socket
 * would hide the parent's death from the server. They are plain
 * close-on-exec descriptors, not Connections, so spawn and forkserver
 * children never receive them either. */
static pthread_mutex_t fds_mu = PTHREAD_MUTEX_INITIALIZER;
static int *fds;
static size_t nfds, capfds;
static pthread_once_t fds_once = PTHREAD_ONCE_INIT;

static void fds_child(void)
{
    pthread_mutex_init(&fds_mu, NULL);
    for (size_t i = 0; i < nfds; i++)
        close(fds[i]);
    nfds = 0;
}

static void fds_init(void)
{
    pthread_atfork(NULL, NULL, fds_child);
}

static int fds_add(int fd)
{
    pthread_once(&fds_once, fds_init);
    pthread_mutex_lock(&fds_mu);
    int rc = 0;
    if (nfds == capfds) {
        size_t cap = capfds ? capfds * 2 : 16;
        int *n = realloc(fds, cap * sizeof *n);
        if (n) {
            fds = n;
            capfds = cap;
        } else {
            rc = -ENOMEM;
        }
    }
    if (rc == 0)
        fds[nfds++] = fd;
    pthread_mutex_unlock(&fds_mu);
    return rc;
}

/* Closes fd (ours) and forgets it. */
static void fds_close(int fd)
{
    pthread_mutex_lock(&fds_mu);
    for (size_t i = 0; i < nfds; i++)
        if (fds[i] == fd) {
            fds[i] = fds[--nfds];
            break;
        }
    close(fd);
    pthread_mutex_unlock(&fds_mu);
}

/* Lets go of an entry of this process: the channel first, then the socket
 * (the server frees a channel outright once the socket is closed). */
static void entry_close(centry_t *e)
{
    chan_unref(e->ch);
    e->ch = NULL;
    fds_close(e->rd.fd);
}

typedef struct {
    centry_t e[CACHE_MAX];
    int n;
} cache_t;

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_destroy(void *arg)
{
    cache_t *c = arg;
    for (int i = 0; i < c->n; i++) {
        if (c->e[i].pid == me())
            entry_close(&c->e[i]);
        free(c->e[i].rd.buf);
    }
    free(c);
}

static void cache_init(void)
{
    pthread_key_create(&cache_key, cache_destroy);
}

static cache_t *cache_get(void)
{
    pthread_once(&cache_once, cache_init);
    cache_t *c = pthread_getspecific(cache_key);
    if (!c) {
        c = calloc(1, sizeof *c);
        if (c && pthread_setspecific(cache_key, c) != 0) {
            free(c);
            c = NULL;
        }
    }
    return c;
}

static void cache_drop(cache_t *c, int i)
{
    if (c->e[i].pid == me())
        entry_close(&c->e[i]); /* a fork child's copy was closed at fork */
    free(c->e[i].rd.buf);
    c->e[i] = c->e[--c->n];
}

/* Connection errors that mean "the manager is not there (any more)". */
static int gone(int rc)
{
    return rc == MP_EEOF || rc == -EPIPE || rc == -ECONNRESET || rc == -ECONNREFUSED ||
           rc == -ENOENT || rc == MP_ECLOSED || rc == -EPROTO;
}

static int connect_to(const char *address, const unsigned char *key, size_t keylen,
                      double timeout, mp_conn_t **out)
{
    mp_client_opts_t o = {.authkey = key, .authkey_len = keylen};
    int rc = mp_client(out, address, &o, timeout);
    return rc;
}

/* One request over the socket (the handshake-time path). */
static int sock_call(centry_t *e, const void *req, size_t len, size_t max, mp__deadline_t d,
                     const void **reply, size_t *rlen)
{
    int rc = frd_send(e->rd.fd, req, len, d);
    return rc < 0 ? rc : frd_recv(&e->rd, max, d, reply, rlen);
}

/* Offers the server a channel in our arena; keeps it if the server shares
 * the arena (same family token) and takes it; the socket serves otherwise.
 * Returns 0, or the error of the exchange, after which the caller drops
 * the connection (whether the server took the channel is unknown then, so
 * the block is left to it). */
static int chan_open(centry_t *e, size_t max)
{
    uint64_t token = family_token();
    if (!token)
        return 0;
    chan_t *ch = mp__arena_alloc(sizeof *ch);
    unsigned char *buf = ch ? mp__arena_alloc_raw(CHAN_MIN) : NULL;
    if (!buf) {
        mp__arena_free(ch);
        return 0;
    }
    ch->buf = buf;
    ch->cap = CHAN_MIN;
    atomic_store(&ch->refs, 2); /* ours, and the server's once it took it */
    unsigned char req[64];
    buf_t b = {.data = (char *)req, .cap = sizeof req};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, buf_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint64(&pk, 0);
    msgpack_pack_str(&pk, 7);
    msgpack_pack_str_body(&pk, "channel", 7);
    msgpack_pack_nil(&pk);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint64(&pk, (uint64_t)(uintptr_t)ch);
    msgpack_pack_uint64(&pk, token);
    const void *reply;
    size_t rlen;
    int64_t code = -1;
    size_t used;
    mp__deadline_t d;
    int rc = b.err ? -ENOMEM : mp__deadline(CONNECT_TIMEOUT, &d);
    if (rc == 0)
        rc = sock_call(e, b.data, b.len, max, d, &reply, &rlen);
    if (rc == 0)
        rc = read_code(reply, rlen, &code, &used);
    if (rc < 0)
        return rc; /* the block stays with whoever has it */
    if (code == 0) {
        e->ch = ch;
        return 0;
    }
    /* Refused (another family, another server): ours alone. */
    atomic_store(&ch->refs, 1);
    chan_unref(ch);
    return 0;
}

/* One request through the channel: *reply points into the channel's
 * buffer (or its big reply) until the next call. */
static int chan_call(centry_t *e, const void *req, size_t len, mp__deadline_t d,
                     const void **reply, size_t *rlen)
{
    chan_t *ch = e->ch;
    if (ch->big) {
        mp__arena_free(ch->big);
        ch->big = NULL;
    }
    if (len > ch->cap) {
        size_t cap = ch->cap;
        while (cap < len)
            cap = cap > SIZE_MAX / 2 ? len : cap * 2;
        unsigned char *nb = mp__arena_alloc_raw(cap);
        if (!nb)
            return -ENOMEM;
        mp__arena_free(ch->buf);
        ch->buf = nb;
        ch->cap = cap;
    }
    memcpy(ch->buf, req, len);
    ch->len = len;
    uint32_t r = atomic_load(&ch->rep);
    uint32_t mine = atomic_fetch_add(&ch->req, 1) + 1;
    mp__futex_wake((const uint32_t *)&ch->req, 1);
    int rc = chan_wait(&ch->rep, r, e->rd.fd, d, &ch->closed);
    if (rc < 0)
        return rc == MP_ECLOSED ? MP_EEOF : rc;
    /* A reply to this request counts even if the server closed right
     * after it (the operation happened); anything else means it is gone. */
    if (atomic_load(&ch->ans) != mine)
        return MP_EEOF;
    *reply = ch->big ? ch->big : ch->buf;
    *rlen = (size_t)ch->len;
    return 0;
}

static int conn_for(const mp_proxy_t *p, int *slot, centry_t **out)
{
    cache_t *c = cache_get();
    if (!c)
        return -ENOMEM;
    for (int i = 0; i < c->n; i++) {
        if (strcmp(c->e[i].address, p->address) != 0)
            continue;
        if (c->e[i].pid != me()) { /* inherited over fork: not ours */
            cache_drop(c, i);
            break;
        }
        *slot = i;
        *out = &c->e[i];
        return 0;
    }
    if (c->n == CACHE_MAX)
        cache_drop(c, 0);
    mp_conn_t *conn;
    int rc = connect_to(p->address, p->key, p->keylen, CONNECT_TIMEOUT, &conn);
    if (rc == MP_EAUTH) /* a wrong key, or a server that died mid-handshake */
        rc = connect_to(p->address, p->key, p->keylen, CONNECT_TIMEOUT, &conn);
    if (rc < 0)
        return gone(rc) ? MP_EEOF : rc;
    /* After the handshake the socket is ours alone: a plain close-on-exec
     * descriptor (see fds_add), not a Connection. */
    int fd = fcntl(mp_conn_fileno(conn), F_DUPFD_CLOEXEC, 3);
    rc = fd < 0 ? -errno : fds_add(fd);
    mp_conn_free(conn);
    if (rc < 0) {
        if (fd >= 0)
            close(fd);
        return rc;
    }
    centry_t *e = &c->e[c->n];
    memset(e, 0, sizeof *e);
    snprintf(e->address, sizeof e->address, "%s", p->address);
    e->pid = me();
    e->rd.fd = fd;
    *slot = c->n++;
    *out = e;
    rc = chan_open(e, p->max_message);
    if (rc < 0) {
        /* The offer's fate is unknown: the connection is out of step. */
        cache_drop(c, *slot);
        return gone(rc) ? MP_EEOF : rc;
    }
    return 0;
}

static int proxy_ok(const mp_proxy_t *p)
{
    return p && p->magic == PROXY_MAGIC;
}

int mp_proxy_call(mp_proxy_t *p, const char *method, const mp_val_t *args, size_t nargs,
                  mp_val_t **result, double timeout)
{
    if (result)
        *result = NULL;
    if (!proxy_ok(p) || !method || (nargs && !args) || isnan(timeout))
        return -EINVAL;
    for (size_t i = 0; i < nargs; i++)
        if (mp__val_check(&args[i]) < 0)
            return -EINVAL;
    buf_t b = {0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, buf_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint64(&pk, p->id);
    size_t ml = strlen(method);
    msgpack_pack_str(&pk, ml);
    msgpack_pack_str_body(&pk, method, ml);
    if (timeout < 0)
        msgpack_pack_nil(&pk);
    else
        msgpack_pack_double(&pk, timeout);
    msgpack_pack_array(&pk, nargs);
    for (size_t i = 0; i < nargs; i++)
        mp__val_pack_into(&pk, &args[i]);
    int rc = b.err;
    if (rc == 0 && b.len > p->max_message)
        rc = -EMSGSIZE;
    if (rc < 0) {
        free(b.data);
        return rc;
    }
    int slot;
    centry_t *e;
    rc = conn_for(p, &slot, &e);
    if (rc < 0) {
        free(b.data);
        return rc;
    }
    const void *reply = NULL;
    size_t rlen = 0;
    mp__deadline_t d = MP__NEVER;
    rc = mp__deadline(timeout < 0 ? MP_FOREVER : timeout + REPLY_GRACE, &d);
    if (rc == 0)
        rc = e->ch ? chan_call(e, b.data, b.len, d, &reply, &rlen)
                   : sock_call(e, b.data, b.len, p->max_message, d, &reply, &rlen);
    free(b.data);
    if (rc == 0 && rlen > p->max_message)
        rc = -EMSGSIZE;
    if (rc < 0) {
        /* The connection is out of step (or dead): never reuse it. */
        cache_drop(cache_get(), slot);
        return gone(rc) ? MP_EEOF : rc;
    }
    int64_t code;
    size_t used;
    rc = read_code(reply, rlen, &code, &used);
    if (rc == 0 && (code > 0 || code < INT32_MIN))
        rc = -EPROTO;
    if (rc == 0 && code == 0 && result)
        rc = mp_val_unpack((const unsigned char *)reply + used, rlen - used, result);
    if (rc < 0) {
        cache_drop(cache_get(), slot);
        return rc == -EPROTO || rc == -EBADMSG ? -EPROTO : rc;
    }
    return (int)code;
}

/* ---- proxies ---------------------------------------------------------------- */

static int proxy_new(const mp_proxy_t *root, uint64_t id, const char *type, int own,
                     mp_proxy_t **out)
{
    if (strlen(type) >= TYPE_MAX)
        return -EPROTO;
    mp_proxy_t *p = mp__arena_alloc(sizeof *p);
    if (!p)
        return -ENOMEM;
    *p = *root;
    p->id = id;
    p->creator = own ? (int32_t)me() : 0;
    snprintf(p->type, sizeof p->type, "%s", type);
    *out = p;
    return 0;
}

/* Reads [id, type] from a manager reply. */
static int id_type(const mp_val_t *r, uint64_t *id, const char **type)
{
    if (!r || r->type != MP_VAL_ARRAY || r->v.a.n != 2 ||
        r->v.a.items[0].type != MP_VAL_INT || r->v.a.items[0].v.i <= 0 ||
        r->v.a.items[1].type != MP_VAL_STR)
        return -EPROTO;
    *id = (uint64_t)r->v.a.items[0].v.i;
    *type = r->v.a.items[1].v.s.ptr;
    return 0;
}

const char *mp_proxy_type(const mp_proxy_t *p)
{
    return proxy_ok(p) ? p->type : NULL;
}

void mp_proxy_free(mp_proxy_t *p)
{
    if (!proxy_ok(p))
        return;
    if (p->creator == (int32_t)me() && p->id) {
        mp_proxy_t root = *p;
        root.id = 0;
        mp_val_t a = mp_val_int((int64_t)p->id);
        mp_proxy_call(&root, "free", &a, 1, NULL, MP_FOREVER);
    }
    p->magic = 0;
    mp__arena_free(p);
}

#define PROXY_TAG "__mproc_proxy__"

int mp_proxy_value(const mp_proxy_t *p, mp_val_t **out)
{
    if (!proxy_ok(p) || !out)
        return -EINVAL;
    mp_val_t items[3] = {mp_val_str(p->address), mp_val_int((int64_t)p->id),
                         mp_val_str(p->type)};
    mp_val_t arr = mp_val_array(items, 3);
    mp_val_kv_t kv = {mp_val_str(PROXY_TAG), arr};
    mp_val_t m = mp_val_map(&kv, 1);
    void *buf;
    size_t len;
    int rc = mp_val_pack(&m, &buf, &len);
    if (rc < 0)
        return rc;
    rc = mp_val_unpack(buf, len, out);
    free(buf);
    return rc;
}

uint64_t mgr_proxy_id(const mp_val_t *v)
{
    const mp_val_t *a = v && v->type == MP_VAL_MAP && v->v.m.n == 1
                            ? mp_val_map_get(v, PROXY_TAG) : NULL;
    if (!a || a->type != MP_VAL_ARRAY || a->v.a.n != 3 ||
        a->v.a.items[0].type != MP_VAL_STR || a->v.a.items[1].type != MP_VAL_INT ||
        a->v.a.items[1].v.i <= 0 || a->v.a.items[2].type != MP_VAL_STR)
        return 0;
    return (uint64_t)a->v.a.items[1].v.i;
}

/* ---- managers (client side) ------------------------------------------------------- */

struct mp_manager {
    mp_proxy_t root;         /* id 0: the manager itself */
    mp_process_t *proc;      /* started: the server */
    pid_t owner;
    int shut;
    int exitcode;
    mp_manager_t *gnext;
};

static pthread_mutex_t mgrs_mu = PTHREAD_MUTEX_INITIALIZER;
static mp_manager_t *mgrs;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

static void on_exit_managers(void)
{
    pthread_mutex_lock(&mgrs_mu);
    for (mp_manager_t *m = mgrs; m; m = m->gnext)
        if (m->owner == me() && m->proc && !m->shut)
            mp_manager_shutdown(m, 5.0);
    pthread_mutex_unlock(&mgrs_mu);
}

static void register_exit(void)
{
    mp__exit_register();
    atexit(on_exit_managers);
}

static void mgrs_link(mp_manager_t *m, int add)
{
    pthread_mutex_lock(&mgrs_mu);
    mp_manager_t **pp = &mgrs;
    while (*pp && *pp != m)
        pp = &(*pp)->gnext;
    if (add && !*pp) {
        m->gnext = mgrs;
        mgrs = m;
    } else if (!add && *pp) {
        *pp = m->gnext;
    }
    pthread_mutex_unlock(&mgrs_mu);
}

static int key_of(const void *key, size_t len, unsigned char *out, uint32_t *outlen)
{
    if (key) {
        if (len > MP_AUTHKEY_MAX)
            return -EINVAL;
        memcpy(out, key, len);
        *outlen = (uint32_t)len;
        return 0;
    }
    int n = mp_process_authkey(mp_current_process(), out, MP_AUTHKEY_MAX);
    if (n < 0)
        return n;
    *outlen = (uint32_t)n;
    return 0;
}

static mp_manager_t *manager_alloc(const char *address, const unsigned char *key,
                                   uint32_t keylen, size_t max_message)
{
    mp_manager_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->root.magic = PROXY_MAGIC;
    m->root.max_message = max_message ? max_message : MAX_MESSAGE_DEFAULT;
    m->root.keylen = keylen;
    memcpy(m->root.key, key, keylen);
    snprintf(m->root.address, sizeof m->root.address, "%s", address);
    snprintf(m->root.type, sizeof m->root.type, "manager");
    m->owner = me();
    return m;
}

int mp_manager_connect(mp_manager_t **out, const char *address, const void *authkey,
                       size_t authkey_len, double timeout)
{
    if (!out || !address || strlen(address) >= MP_ADDRESS_MAX)
        return -EINVAL;
    unsigned char key[MP_AUTHKEY_MAX];
    uint32_t keylen;
    int rc = key_of(authkey, authkey_len, key, &keylen);
    if (rc < 0)
        return rc;
    mp_conn_t *c;
    rc = connect_to(address, key, keylen, timeout, &c);
    if (rc < 0)
        return rc;
    mp_conn_free(c); /* the key works; calls open their own connections */
    mp_manager_t *m = manager_alloc(address, key, keylen, 0);
    if (!m)
        return -ENOMEM;
    *out = m;
    return 0;
}

const char *mp_manager_address(const mp_manager_t *m)
{
    return m ? m->root.address : NULL;
}

pid_t mp_manager_pid(const mp_manager_t *m)
{
    return m && m->proc ? mp_process_pid(m->proc) : 0;
}

int mp_manager_shutdown(mp_manager_t *m, double timeout)
{
    if (!m)
        return -EINVAL;
    if (!m->proc) {
        /* Connected to a server: ask it to stop serving. */
        int rc = mp_proxy_call(&m->root, "shutdown", NULL, 0, NULL,
                               timeout < 0 ? 30.0 : timeout);
        return rc == MP_EEOF ? 0 : rc;
    }
    if (m->owner != me())
        return -EPERM;
    if (m->shut)
        return 0;
    mp_proxy_call(&m->root, "shutdown", NULL, 0, NULL, 5.0);
    int rc = mp_process_join(m->proc, timeout);
    if (rc == -ETIMEDOUT) {
        mp_process_kill(m->proc);
        rc = mp_process_join(m->proc, MP_FOREVER);
    }
    if (rc == 0)
        rc = mp_process_exitcode(m->proc, &m->exitcode);
    m->shut = 1;
    return rc < 0 ? rc : 0;
}

int mp_manager_exitcode(mp_manager_t *m, int *code)
{
    if (!m || !code)
        return -EINVAL;
    if (!m->proc)
        return -EPERM;
    if (!m->shut)
        return MP_ERUNNING;
    *code = m->exitcode;
    return 0;
}

void mp_manager_free(mp_manager_t *m)
{
    if (!m)
        return;
    if (m->proc && m->owner == me()) {
        mp_manager_shutdown(m, 5.0);
        mp_process_free(m->proc);
    }
    /* This thread's connection to it is of no more use. */
    cache_t *c = cache_get();
    for (int i = 0; c && i < c->n; i++)
        if (!strcmp(c->e[i].address, m->root.address)) {
            cache_drop(c, i);
            break;
        }
    mgrs_link(m, 0);
    free(m);
}

int mp_manager_create(mp_manager_t *m, const char *type, const mp_val_t *args, size_t nargs,
                      mp_proxy_t **out)
{
    if (!m || !type || !out || (nargs && !args))
        return -EINVAL;
    mp_val_t a[2] = {mp_val_str(type), mp_val_array((mp_val_t *)args, nargs)};
    mp_val_t *r;
    int rc = mp_proxy_call(&m->root, "create", a, 2, &r, MP_FOREVER);
    if (rc < 0)
        return rc;
    uint64_t id;
    const char *t;
    rc = id_type(r, &id, &t);
    if (rc == 0)
        rc = proxy_new(&m->root, id, t, 1, out);
    mp_val_free(r);
    return rc;
}

int mp_manager_get(mp_manager_t *m, const char *name, mp_proxy_t **out)
{
    if (!m || !name || !out)
        return -EINVAL;
    mp_val_t a = mp_val_str(name);
    mp_val_t *r;
    int rc = mp_proxy_call(&m->root, "get", &a, 1, &r, MP_FOREVER);
    if (rc < 0)
        return rc;
    uint64_t id;
    const char *t;
    rc = id_type(r, &id, &t);
    if (rc == 0)
        rc = proxy_new(&m->root, id, t, 0, out);
    mp_val_free(r);
    return rc;
}

int mp_proxy_from_value(const mp_val_t *v, mp_proxy_t **out)
{
    uint64_t id = mgr_proxy_id(v);
    if (!id || !out)
        return -EINVAL;
    const mp_val_t *a = mp_val_map_get(v, PROXY_TAG);
    const char *addr = a->v.a.items[0].v.s.ptr;
    if (a->v.a.items[0].v.s.len >= MP_ADDRESS_MAX)
        return -EINVAL;
    /* The key: that of the manager this process knows at that address, or
     * the process's own. */
    mp_proxy_t root = {.magic = PROXY_MAGIC, .max_message = MAX_MESSAGE_DEFAULT};
    snprintf(root.address, sizeof root.address, "%s", addr);
    int found = 0;
    pthread_mutex_lock(&mgrs_mu);
    for (mp_manager_t *m = mgrs; m; m = m->gnext)
        if (!strcmp(m->root.address, addr)) {
            root = m->root;
            found = 1;
            break;
        }
    pthread_mutex_unlock(&mgrs_mu);
    if (!found) {
        int rc = key_of(NULL, 0, root.key, &root.keylen);
        if (rc < 0)
            return rc;
    }
    return proxy_new(&root, id, a->v.a.items[2].v.s.ptr, 0, out);
}

/* Shorthands for making objects. */
int mp_manager_dict(mp_manager_t *m, mp_proxy_t **out)
{
    return mp_manager_create(m, "dict", NULL, 0, out);
}

int mp_manager_list(mp_manager_t *m, mp_proxy_t **out)
{
    return mp_manager_create(m, "list", NULL, 0, out);
}

int mp_manager_namespace(mp_manager_t *m, mp_proxy_t **out)
{
    return mp_manager_create(m, "Namespace", NULL, 0, out);
}

static int create_int(mp_manager_t *m, const char *type, int64_t v, mp_proxy_t **out)
{
    mp_val_t a = mp_val_int(v);
    return mp_manager_create(m, type, &a, 1, out);
}

int mp_manager_queue(mp_manager_t *m, size_t maxsize, mp_proxy_t **out)
{
    return maxsize > INT64_MAX ? -EINVAL : create_int(m, "Queue", (int64_t)maxsize, out);
}

int mp_manager_joinable_queue(mp_manager_t *m, size_t maxsize, mp_proxy_t **out)
{
    return maxsize > INT64_MAX ? -EINVAL
                               : create_int(m, "JoinableQueue", (int64_t)maxsize, out);
}

int mp_manager_lock(mp_manager_t *m, mp_proxy_t **out)
{
    return mp_manager_create(m, "Lock", NULL, 0, out);
}

int mp_manager_rlock(mp_manager_t *m, mp_proxy_t **out)
{
    return mp_manager_create(m, "RLock", NULL, 0, out);
}

int mp_manager_semaphore(mp_manager_t *m, int64_t value, mp_proxy_t **out)
{
    return create_int(m, "Semaphore", value, out);
}

int mp_manager_bounded_semaphore(mp_manager_t *m, int64_t value, mp_proxy_t **out)
{
    return create_int(m, "BoundedSemaphore", value, out);
}

int mp_manager_condition(mp_manager_t *m, mp_proxy_t *lock, mp_proxy_t **out)
{
    if (!lock)
        return mp_manager_create(m, "Condition", NULL, 0, out);
    mp_val_t *v;
    int rc = mp_proxy_value(lock, &v);
    if (rc < 0)
        return rc;
    rc = mp_manager_create(m, "Condition", v, 1, out);
    mp_val_free(v);
    return rc;
}

int mp_manager_event(mp_manager_t *m, mp_proxy_t **out)
{
    return mp_manager_create(m, "Event", NULL, 0, out);
}

int mp_manager_barrier(mp_manager_t *m, int64_t parties, mp_proxy_t **out)
{
    return create_int(m, "Barrier", parties, out);
}

int mp_manager_value(mp_manager_t *m, const char *typecode, const mp_val_t *init,
                     mp_proxy_t **out)
{
    if (!typecode || !init)
        return -EINVAL;
    mp_val_t a[2] = {mp_val_str(typecode), *init};
    return mp_manager_create(m, "Value", a, 2, out);
}

int mp_manager_array(mp_manager_t *m, const char *typecode, const mp_val_t *items,
                     mp_proxy_t **out)
{
    if (!typecode || !items)
        return -EINVAL;
    mp_val_t a[2] = {mp_val_str(typecode), *items};
    return mp_manager_create(m, "Array", a, 2, out);
}

/* ---- the server -------------------------------------------------------------------- */

typedef struct {
    char *name;
    uint64_t id;
} name_t;

struct mgr_client {
    mgr_server_t *s;
    mp_conn_t *conn;
    chan_t *chan;              /* the client's shared-memory channel, once taken */
    mgr_client_t *prev, *next;
};

struct mgr_server {
    pthread_mutex_t mu;
    pthread_cond_t idle;       /* nclients reached 0 */
    mp_listener_t *l;
    int stop_pipe[2];
    _Atomic int stopping;
    unsigned char key[MP_AUTHKEY_MAX];
    size_t keylen;
    size_t max_message;
    mgr_obj_t **objs;          /* by id - 1 */
    size_t nobjs, cap;
    name_t names[MAX_NAMES];
    size_t nnames;
    const mp_mtype_t *types[MAX_TYPES];
    size_t ntypes;
    mgr_client_t *clients;
    size_t nclients;
};

struct mp_mserver {
    mgr_server_t s;
};

static int fuzz_mode; /* mgr_fuzz_request: never block, never stop */

static const mgr_kind_t *const builtin[] = {
    &mgr_kind_dict, &mgr_kind_namespace, &mgr_kind_list, &mgr_kind_value,
    &mgr_kind_array, &mgr_kind_lock, &mgr_kind_rlock, &mgr_kind_semaphore,
    &mgr_kind_bsemaphore, &mgr_kind_condition, &mgr_kind_event, &mgr_kind_barrier,
    &mgr_kind_queue, &mgr_kind_jqueue,
};

int mgr_pack_val(msgpack_packer *pk, const mp_val_t *v)
{
    int rc = mp__val_check(v);
    return rc < 0 ? rc : mp__val_pack_into(pk, v);
}

int mgr_pack_raw(msgpack_packer *pk, const void *buf, size_t len)
{
    return pk->callback(pk->data, buf, len) ? -ENOMEM : 0;
}

int mgr_store(const mp_val_t *v, void **buf, size_t *len)
{
    return mp_val_pack(v, buf, len);
}

int mgr_wait(mgr_server_t *s, mgr_obj_t *o, mp__deadline_t d)
{
    if (atomic_load(&s->stopping))
        return MP_EEOF;
    int rc;
    if (d == MP__NEVER) {
        rc = pthread_cond_wait(&o->cv, &s->mu);
    } else {
        struct timespec ts;
        rc = pthread_cond_timedwait(&o->cv, &s->mu, mp__deadline_ts(d, &ts));
    }
    if (atomic_load(&s->stopping))
        return MP_EEOF;
    if (o->dead)
        return -EBADF; /* freed by its creator while we waited */
    return rc == ETIMEDOUT ? -ETIMEDOUT : 0;
}

void mgr_destroy_plain(mgr_obj_t *o)
{
    free(o->state);
    o->state = NULL;
}

void mgr_wake(mgr_obj_t *o)
{
    pthread_cond_broadcast(&o->cv);
}

mgr_obj_t *mgr_lookup(mgr_server_t *s, uint64_t id)
{
    if (id == 0 || id > s->nobjs)
        return NULL;
    mgr_obj_t *o = s->objs[id - 1];
    return o && !o->dead ? o : NULL;
}

static void obj_destroy(mgr_obj_t *o)
{
    if (o->custom) {
        if (o->custom->free_obj)
            o->custom->free_obj(o->state);
    } else if (o->kind->destroy) {
        o->kind->destroy(o);
    }
    pthread_cond_destroy(&o->cv);
    free(o);
}

static void obj_put(mgr_server_t *s, mgr_obj_t *o)
{
    if (--o->refs == 0) {
        s->objs[o->id - 1] = NULL;
        obj_destroy(o);
    }
}

/* The kind of registered types: methods by name from the table. */
static int custom_call(mgr_server_t *s, mgr_obj_t *o, mgr_client_t *cl, const char *method,
                       const mp_val_t *args, size_t nargs, mp__deadline_t d,
                       msgpack_packer *pk)
{
    (void)s;
    (void)cl;
    (void)d;
    if (method[0] == '_')
        return -ENOSYS;
    const mp_mtype_t *t = o->custom;
    for (size_t i = 0; i < t->nmethods; i++) {
        if (!t->methods[i].name || strcmp(t->methods[i].name, method) != 0 ||
            !t->methods[i].fn)
            continue;
        mp_val_t *res = NULL;
        int rc = t->methods[i].fn(o->state, args, nargs, &res);
        if (rc > 0)
            rc = -EINVAL;
        if (rc == 0) {
            mp_val_t nil = mp_val_nil();
            rc = mgr_pack_val(pk, res ? res : &nil);
        }
        if (res) {
            if (t->free_result)
                t->free_result(res);
            else
                free(res);
        }
        return rc;
    }
    return -ENOSYS;
}

static const mgr_kind_t custom_kind = {.name = "custom", .call = custom_call};

static int cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
    return -rc;
}

/* Makes an object of type (under s->mu); its id in *id. */
static int obj_create(mgr_server_t *s, const char *type, const mp_val_t *args, size_t nargs,
                      uint64_t *id, const char **tname)
{
    const mgr_kind_t *k = NULL;
    const mp_mtype_t *t = NULL;
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++)
        if (!strcmp(builtin[i]->name, type))
            k = builtin[i];
    for (size_t i = 0; !k && i < s->ntypes; i++)
        if (!strcmp(s->types[i]->name, type)) {
            t = s->types[i];
            k = &custom_kind;
        }
    if (!k)
        return -ENOENT;
    if (s->nobjs == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        mgr_obj_t **n = realloc(s->objs, cap * sizeof *n);
        if (!n)
            return -ENOMEM;
        s->objs = n;
        s->cap = cap;
    }
    mgr_obj_t *o = calloc(1, sizeof *o);
    if (!o)
        return -ENOMEM;
    int rc = cond_init(&o->cv);
    if (rc < 0) {
        free(o);
        return rc;
    }
    o->kind = k;
    o->custom = t;
    o->id = s->nobjs + 1;
    o->refs = 1;
    if (t)
        rc = t->new_obj ? t->new_obj(&o->state, args, nargs) : 0;
    else
        rc = k->create(s, o, args, nargs);
    if (rc != 0) {
        pthread_cond_destroy(&o->cv);
        free(o);
        return rc > 0 ? -EINVAL : rc;
    }
    s->objs[s->nobjs++] = o;
    *id = o->id;
    *tname = t ? t->name : k->name;
    return 0;
}

static int pack_id_type(msgpack_packer *pk, uint64_t id, const char *type)
{
    msgpack_pack_array(pk, 2);
    msgpack_pack_uint64(pk, id);
    size_t n = strlen(type);
    msgpack_pack_str(pk, n);
    return msgpack_pack_str_body(pk, type, n) ? -ENOMEM : 0;
}

/* Wakes every waiter of every object (they see stopping: MP_EEOF). */
static void wake_all(mgr_server_t *s)
{
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->nobjs; i++)
        if (s->objs[i])
            mgr_wake(s->objs[i]);
    pthread_mutex_unlock(&s->mu);
}

static void server_stop(mgr_server_t *s)
{
    if (atomic_exchange(&s->stopping, 1))
        return;
    char one = 1;
    ssize_t w = write(s->stop_pipe[1], &one, 1);
    (void)w;
    wake_all(s);
}

/* Ends every channel: their server threads and clients see closed. */
static void close_channels(mgr_server_t *s)
{
    pthread_mutex_lock(&s->mu);
    for (mgr_client_t *cl = s->clients; cl; cl = cl->next)
        if (cl->chan) {
            /* Bump the words too, so a waiter that looked just before
             * sleeps no slice at all. */
            atomic_store(&cl->chan->closed, 1);
            atomic_fetch_add(&cl->chan->req, 1);
            mp__futex_wake((const uint32_t *)&cl->chan->req, INT32_MAX);
        }
    pthread_mutex_unlock(&s->mu);
}

/* The manager's own methods (id 0), under s->mu. */
static int manager_call(mgr_server_t *s, mgr_client_t *cl, const char *method,
                        const mp_val_t *args, size_t nargs, msgpack_packer *pk)
{
    if (!strcmp(method, "create")) {
        if (nargs != 2 || args[0].type != MP_VAL_STR || args[1].type != MP_VAL_ARRAY)
            return -EINVAL;
        uint64_t id;
        const char *t;
        int rc = obj_create(s, args[0].v.s.ptr, args[1].v.a.items, args[1].v.a.n, &id, &t);
        return rc < 0 ? rc : pack_id_type(pk, id, t);
    }
    if (!strcmp(method, "get")) {
        if (nargs != 1 || args[0].type != MP_VAL_STR)
            return -EINVAL;
        for (size_t i = 0; i < s->nnames; i++) {
            mgr_obj_t *o;
            if (!strcmp(s->names[i].name, args[0].v.s.ptr) &&
                (o = mgr_lookup(s, s->names[i].id)))
                return pack_id_type(pk, o->id, o->custom ? o->custom->name : o->kind->name);
        }
        return -ENOENT;
    }
    if (!strcmp(method, "free")) {
        if (nargs != 1 || args[0].type != MP_VAL_INT || args[0].v.i <= 0)
            return -EINVAL;
        mgr_obj_t *o = mgr_lookup(s, (uint64_t)args[0].v.i);
        if (!o)
            return -EBADF;
        o->dead = 1;
        mgr_wake(o);
        obj_put(s, o);
        return msgpack_pack_nil(pk) ? -ENOMEM : 0;
    }
    if (!strcmp(method, "ping"))
        return msgpack_pack_nil(pk) ? -ENOMEM : 0;
    if (!strcmp(method, "channel")) {
        /* A client of our family offers a channel in the arena we share. */
        if (nargs != 2 || args[0].type != MP_VAL_INT || args[1].type != MP_VAL_INT ||
            args[0].v.i <= 0 || fuzz_mode || !cl || cl->chan)
            return -EINVAL;
        uint64_t tok = family_token();
        chan_t *ch = (chan_t *)(uintptr_t)(uint64_t)args[0].v.i;
        if (!tok || (uint64_t)args[1].v.i != tok || !mp__arena_contains(ch) ||
            !mp__arena_contains((const char *)ch + sizeof *ch - 1))
            return -EXDEV;
        cl->chan = ch;
        return msgpack_pack_nil(pk) ? -ENOMEM : 0;
    }
    if (!strcmp(method, "shutdown")) {
        if (fuzz_mode)
            return msgpack_pack_nil(pk) ? -ENOMEM : 0;
        pthread_mutex_unlock(&s->mu);
        server_stop(s);
        pthread_mutex_lock(&s->mu);
        return msgpack_pack_nil(pk) ? -ENOMEM : 0;
    }
    return -ENOSYS;
}

/* One request: decode, dispatch, build the reply in out. */
static void serve_one(mgr_server_t *s, mgr_client_t *cl, const void *req, size_t len,
                      buf_t *out)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, buf_write);
    /* The code goes first as a fixed 9-byte int64, filled in at the end. */
    static const char code_slot[9] = {(char)0xd3};
    buf_write(out, code_slot, sizeof code_slot);
    if (out->err)
        return; /* no memory even for the code: the caller hangs up */
    int rc;
    mp_val_t *r = NULL;
    rc = mp_val_unpack(req, len, &r);
    if (rc == 0 && (r->type != MP_VAL_ARRAY || r->v.a.n != 4 ||
                    r->v.a.items[0].type != MP_VAL_INT || r->v.a.items[0].v.i < 0 ||
                    r->v.a.items[1].type != MP_VAL_STR ||
                    (r->v.a.items[2].type != MP_VAL_NIL &&
                     r->v.a.items[2].type != MP_VAL_FLOAT &&
                     r->v.a.items[2].type != MP_VAL_INT) ||
                    r->v.a.items[3].type != MP_VAL_ARRAY))
        rc = -EBADMSG;
    else if (rc < 0)
        rc = -EBADMSG;
    if (rc == 0) {
        const mp_val_t *it = r->v.a.items;
        uint64_t id = (uint64_t)it[0].v.i;
        const char *method = it[1].v.s.ptr;
        double t = it[2].type == MP_VAL_NIL ? -1.0
                   : it[2].type == MP_VAL_FLOAT ? it[2].v.f : (double)it[2].v.i;
        mp__deadline_t d;
        rc = mp__deadline(fuzz_mode ? 0 : t, &d);
        const mp_val_t *args = it[3].v.a.items;
        size_t nargs = it[3].v.a.n;
        if (rc == 0) {
            pthread_mutex_lock(&s->mu);
            if (id == 0) {
                rc = manager_call(s, cl, method, args, nargs, &pk);
            } else {
                mgr_obj_t *o = mgr_lookup(s, id);
                if (!o) {
                    rc = -EBADF;
                } else {
                    o->refs++;
                    rc = o->kind->call(s, o, cl, method, args, nargs, d, &pk);
                    obj_put(s, o);
                }
            }
            pthread_mutex_unlock(&s->mu);
        }
    }
    mp_val_free(r);
    if (rc > 0)
        rc = -EINVAL;
    if (rc != 0 || out->err) {
        if (rc == 0)
            rc = out->err;
        out->err = 0;
        out->len = sizeof code_slot;
        msgpack_pack_nil(&pk);
    }
    if (out->len > s->max_message) {
        rc = -EMSGSIZE;
        out->len = sizeof code_slot;
        msgpack_pack_nil(&pk);
    }
    uint64_t c = (uint64_t)(int64_t)rc;
    for (int i = 0; i < 8; i++)
        out->data[1 + i] = (char)(c >> (56 - 8 * i));
}

static void client_end(mgr_client_t *cl)
{
    mgr_server_t *s = cl->s;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->nobjs; i++) {
        mgr_obj_t *o = s->objs[i];
        if (o && o->kind->client_gone)
            o->kind->client_gone(s, o, cl);
    }
    if (cl->prev)
        cl->prev->next = cl->next;
    else
        s->clients = cl->next;
    if (cl->next)
        cl->next->prev = cl->prev;
    mp_conn_free(cl->conn);
    free(cl);
    if (--s->nclients == 0)
        pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->mu);
}

/* Is [p, p + n) inside the arena? */
static int in_arena(const void *p, size_t n)
{
    return n && mp__arena_contains(p) && mp__arena_contains((const char *)p + n - 1);
}

/* Serves a client through its channel until it goes (its socket closes)
 * or the server stops; then lets go of the channel. The client's side of
 * the block is not trusted: buf, cap and len are read once per request and
 * checked against the arena, and the request is copied out before it is
 * decoded (the decoder reads its input twice). */
static void serve_channel(mgr_server_t *s, mgr_client_t *cl, int fd, buf_t *out)
{
    chan_t *ch = cl->chan;
    uint32_t seen = 0; /* a fresh channel: its first request may be in already */
    unsigned char *req = NULL;
    size_t reqcap = 0;
    int rc = 0;
    while (!atomic_load(&s->stopping)) {
        rc = chan_wait(&ch->req, seen, fd, MP__NEVER, &ch->closed);
        if (rc < 0 || atomic_load(&ch->closed) || atomic_load(&s->stopping))
            break; /* (close_channels bumps req without a request) */
        seen = atomic_load(&ch->req);
        unsigned char *buf = ch->buf;
        size_t cap = (size_t)ch->cap, len = (size_t)ch->len;
        if (!in_arena(buf, cap) || cap < 16) {
            rc = -EPROTO; /* nowhere to answer: hang up on it */
            break;
        }
        if (len > cap || len > s->max_message)
            len = 0; /* not a request we can read: answered as garbage */
        if (len > reqcap) {
            unsigned char *n = realloc(req, len);
            if (!n) {
                rc = -ENOMEM;
                break;
            }
            req = n;
            reqcap = len;
        }
        if (len)
            memcpy(req, buf, len);
        out->len = 0;
        out->err = 0;
        serve_one(s, cl, len ? req : (const unsigned char *)"", len, out);
        if (out->err) {
            rc = out->err;
            break;
        }
        if (out->len <= cap) {
            memcpy(buf, out->data, out->len);
        } else {
            unsigned char *big = mp__arena_alloc_raw(out->len);
            if (!big) {
                /* Say so in the buffer: an int64 code and nil. */
                static const unsigned char nomem[10] = {0xd3, 0xff, 0xff, 0xff, 0xff,
                                                        0xff, 0xff, 0xff, 0xf4, 0xc0};
                memcpy(buf, nomem, sizeof nomem);
                out->len = sizeof nomem;
            } else {
                memcpy(big, out->data, out->len);
                ch->big = big;
            }
        }
        ch->len = out->len;
        atomic_store(&ch->ans, seen);
        atomic_fetch_add(&ch->rep, 1);
        mp__futex_wake((const uint32_t *)&ch->rep, 1);
    }
    free(req);
    atomic_store(&ch->closed, 1);
    atomic_fetch_add(&ch->rep, 1);
    mp__futex_wake((const uint32_t *)&ch->rep, INT32_MAX);
    pthread_mutex_lock(&s->mu);
    cl->chan = NULL;
    pthread_mutex_unlock(&s->mu);
    if (rc == MP_EEOF && !atomic_load(&s->stopping)) {
        /* The socket closed: every process that held it let go of the
         * channel before closing (or ended), so it is ours alone. */
        mp__arena_free(ch->buf);
        mp__arena_free(ch->big);
        mp__arena_free(ch);
    } else {
        chan_unref(ch);
    }
}

static void *client_thread(void *arg)
{
    mgr_client_t *cl = arg;
    mgr_server_t *s = cl->s;
    /* Python's Listener.accept with a key: challenge the client, then
     * answer its challenge. */
    int rc = mp_conn_deliver_challenge(cl->conn, s->key, s->keylen, HANDSHAKE_TIMEOUT);
    if (rc == 0)
        rc = mp_conn_answer_challenge(cl->conn, s->key, s->keylen, HANDSHAKE_TIMEOUT);
    buf_t out = {0};
    frd_t rd = {.fd = mp_conn_fileno(cl->conn)};
    while (rc == 0 && !atomic_load(&s->stopping)) {
        const void *req;
        size_t len;
        rc = frd_recv(&rd, s->max_message, MP__NEVER, &req, &len);
        if (rc == -EMSGSIZE) {
            /* Cannot be skipped without reading it: say so, then hang up. */
            out.len = 0;
            msgpack_packer pk;
            msgpack_packer_init(&pk, &out, buf_write);
            msgpack_pack_int64(&pk, -EMSGSIZE);
            msgpack_pack_nil(&pk);
            if (!out.err)
                frd_send(rd.fd, out.data, out.len, MP__NEVER);
            break;
        }
        if (rc < 0)
            break;
        out.len = 0;
        out.err = 0;
        serve_one(s, cl, req, len, &out);
        if (out.err || frd_send(rd.fd, out.data, out.len, MP__NEVER) < 0)
            break;
        if (cl->chan) {
            serve_channel(s, cl, rd.fd, &out);
            break;
        }
    }
    free(out.data);
    free(rd.buf);
    client_end(cl);
    return NULL;
}

static int server_init(mgr_server_t *s, const mp_manager_opts_t *o, const char *address)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    cond_init(&s->idle);
    s->stop_pipe[0] = s->stop_pipe[1] = -1;
    s->max_message = o && o->max_message ? o->max_message : MAX_MESSAGE_DEFAULT;
    uint32_t kl;
    int rc = key_of(o ? o->authkey : NULL, o ? o->authkey_len : 0, s->key, &kl);
    if (rc < 0)
        return rc;
    s->keylen = kl;
    for (size_t i = 0; o && o->types && o->types[i]; i++) {
        const mp_mtype_t *t = o->types[i];
        if (s->ntypes == MAX_TYPES || !t->name || strlen(t->name) >= TYPE_MAX)
            return -EINVAL;
        s->types[s->ntypes++] = t;
    }
    if (pipe2(s->stop_pipe, O_CLOEXEC) < 0)
        return -errno;
    mp_listener_opts_t lo = {.backlog = 16}; /* as Python's manager server */
    return mp_listener_new(&s->l, address, &lo);
}

static void server_release(mgr_server_t *s)
{
    mp_listener_free(s->l);
    for (size_t i = 0; i < s->nobjs; i++)
        if (s->objs[i])
            obj_destroy(s->objs[i]);
    free(s->objs);
    for (size_t i = 0; i < s->nnames; i++)
        free(s->names[i].name);
    if (s->stop_pipe[0] >= 0)
        close(s->stop_pipe[0]);
    if (s->stop_pipe[1] >= 0)
        close(s->stop_pipe[1]);
    pthread_cond_destroy(&s->idle);
    pthread_mutex_destroy(&s->mu);
}

/* Accept until stopped; then end every connection and wait for the threads. */
static int server_run(mgr_server_t *s)
{
    int rc = 0;
    while (!atomic_load(&s->stopping)) {
        struct pollfd pf[2] = {{.fd = mp_listener_fileno(s->l), .events = POLLIN},
                               {.fd = s->stop_pipe[0], .events = POLLIN}};
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        if (pf[1].revents)
            break;
        if (!pf[0].revents)
            continue;
        mp_conn_t *c;
        int r = mp_listener_accept(s->l, &c, 0);
        if (r < 0)
            continue; /* -EMFILE and the like: try again on the next client */
        mgr_client_t *cl = calloc(1, sizeof *cl);
        if (!cl) {
            mp_conn_free(c);
            continue;
        }
        cl->s = s;
        cl->conn = c;
        pthread_mutex_lock(&s->mu);
        cl->next = s->clients;
        if (s->clients)
            s->clients->prev = cl;
        s->clients = cl;
        s->nclients++;
        pthread_mutex_unlock(&s->mu);
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        pthread_t t;
        sigset_t old;
        mp__signals_block_all(&old);
        int e = pthread_create(&t, &a, client_thread, cl);
        mp__signals_restore(&old);
        pthread_attr_destroy(&a);
        if (e)
            client_end(cl);
    }
    /* However the stop came (a client, mp_mserver_stop from a signal
     * handler), no waiter may stay asleep. */
    server_stop(s);
    wake_all(s);
    close_channels(s);
    mp_listener_close(s->l);
    /* End the reading side first: a thread waiting for a request sees the
     * end, while one that is answering (the client that asked for the
     * shutdown, or any other in the middle of a call) still delivers its
     * reply: the operation happened, so the caller must hear so. A client
     * that does not read its reply within a second is cut off. */
    pthread_mutex_lock(&s->mu);
    for (mgr_client_t *cl = s->clients; cl; cl = cl->next)
        shutdown(mp_conn_fileno(cl->conn), SHUT_RD);
    mp__deadline_t d = mp__now_ns() + 1000000000LL;
    struct timespec ts;
    while (s->nclients && mp__now_ns() < d)
        pthread_cond_timedwait(&s->idle, &s->mu, mp__deadline_ts(d, &ts));
    for (mgr_client_t *cl = s->clients; cl; cl = cl->next)
        shutdown(mp_conn_fileno(cl->conn), SHUT_RDWR);
    while (s->nclients)
        pthread_cond_wait(&s->idle, &s->mu);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int mp_mserver_new(mp_mserver_t **out, const mp_manager_opts_t *opts)
{
    if (!out)
        return -EINVAL;
    mp_mserver_t *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    int rc = server_init(&m->s, opts, opts ? opts->address : NULL);
    if (rc < 0) {
        server_release(&m->s);
        free(m);
        return rc;
    }
    *out = m;
    return 0;
}

int mp_mserver_add(mp_mserver_t *m, const char *name, const char *type, const mp_val_t *args,
                   size_t nargs)
{
    if (!m || !name || !type || (nargs && !args))
        return -EINVAL;
    for (size_t i = 0; i < nargs; i++)
        if (mp__val_check(&args[i]) < 0)
            return -EINVAL;
    mgr_server_t *s = &m->s;
    pthread_mutex_lock(&s->mu);
    int rc = s->nnames == MAX_NAMES ? -ENOSPC : 0;
    for (size_t i = 0; rc == 0 && i < s->nnames; i++)
        if (!strcmp(s->names[i].name, name))
            rc = -EEXIST;
    uint64_t id = 0;
    const char *t;
    char *dup = rc == 0 ? strdup(name) : NULL;
    if (rc == 0 && !dup)
        rc = -ENOMEM;
    if (rc == 0)
        rc = obj_create(s, type, args, nargs, &id, &t);
    if (rc == 0) {
        s->names[s->nnames].name = dup;
        s->names[s->nnames++].id = id;
    } else {
        free(dup);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

const char *mp_mserver_address(const mp_mserver_t *m)
{
    return m ? mp_listener_address(m->s.l) : NULL;
}

int mp_mserver_serve_forever(mp_mserver_t *m)
{
    return m ? server_run(&m->s) : -EINVAL;
}

void mp_mserver_stop(mp_mserver_t *m)
{
    if (m) {
        /* Async-signal-safe: one write to the stop pipe; the serving thread
         * does the rest. */
        if (!atomic_exchange(&m->s.stopping, 1)) {
            char one = 1;
            ssize_t w = write(m->s.stop_pipe[1], &one, 1);
            (void)w;
        }
    }
}

void mp_mserver_free(mp_mserver_t *m)
{
    if (!m)
        return;
    server_release(&m->s);
    free(m);
}

/* ---- starting a manager process ----------------------------------------------------- */

typedef struct {
    char address[MP_ADDRESS_MAX];
    unsigned char key[MP_AUTHKEY_MAX];
    uint32_t keylen;
    uint64_t max_message;
    int32_t reply_slot;       /* the pipe end the server reports on */
    uint32_t ntypes;
    char init_module[MP__MODULE_MAX];
    uint64_t init_off;
    char type_module[MAX_TYPES][256];
    uint64_t type_off[MAX_TYPES];
    uint64_t initarg_len;
    mp_conn_t *report;
    unsigned char initarg[]; /* initarg_len bytes */
} start_t;

static int server_main(void *arg)
{
    start_t *st = arg;
    const mp_mtype_t *types[MAX_TYPES + 1] = {0};
    for (uint32_t i = 0; i < st->ntypes; i++)
        types[i] = (const mp_mtype_t *)(uintptr_t)mp__target_resolve(st->type_module[i],
                                                                     st->type_off[i]);
    mp_manager_opts_t o = {.address = st->address[0] ? st->address : NULL,
                           .authkey = st->key, .authkey_len = st->keylen,
                           .max_message = st->max_message, .types = types};
    if (st->init_module[0] || st->init_off) {
        void (*init)(const void *, size_t) =
            (void (*)(const void *, size_t))(uintptr_t)mp__target_resolve(st->init_module,
                                                                         st->init_off);
        if (init)
            init(st->initarg, st->initarg_len);
    }
    mp_mserver_t *m;
    int rc = mp_mserver_new(&m, &o);
    if (rc < 0) {
        mp_val_t v = mp_val_int(rc);
        mp_conn_send(st->report, &v);
        return 1;
    }
    const char *addr = mp_mserver_address(m);
    mp_val_t v = mp_val_str(addr ? addr : "");
    mp_conn_send(st->report, &v);
    mp_conn_free(st->report);
    rc = mp_mserver_serve_forever(m);
    mp_mserver_free(m);
    return rc < 0 ? 1 : 0;
}

int mp_manager_start(mp_manager_t **out, const mp_manager_opts_t *opts)
{
    if (!out)
        return -EINVAL;
    if (opts && ((opts->address && strlen(opts->address) >= MP_ADDRESS_MAX) ||
                 (opts->initarg_len && !opts->initarg)))
        return -EINVAL;
    if (mp_process_daemon(mp_current_process()))
        return MP_EDAEMON;
    pthread_once(&exit_once, register_exit);
    /* The server maps our arena from the start, so that this family's
     * clients can talk to it through channels there. */
    int arc = mp__arena_init();
    if (arc < 0)
        return arc;
    size_t ialen = opts ? opts->initarg_len : 0;
    start_t *st = calloc(1, sizeof *st + ialen);
    if (!st)
        return -ENOMEM;
    int rc = 0;
    if (opts && opts->address)
        snprintf(st->address, sizeof st->address, "%s", opts->address);
    rc = key_of(opts ? opts->authkey : NULL, opts ? opts->authkey_len : 0, st->key,
                &st->keylen);
    st->max_message = opts && opts->max_message ? opts->max_message : MAX_MESSAGE_DEFAULT;
    if (rc == 0 && opts && opts->initializer)
        rc = mp__target_locate((mp_target_fn)(uintptr_t)opts->initializer, st->init_module,
                               sizeof st->init_module, &st->init_off);
    for (size_t i = 0; rc == 0 && opts && opts->types && opts->types[i]; i++) {
        if (i == MAX_TYPES) {
            rc = -EINVAL;
            break;
        }
        rc = mp__target_locate((mp_target_fn)(uintptr_t)opts->types[i], st->type_module[i],
                               sizeof st->type_module[i], &st->type_off[i]);
        st->ntypes = (uint32_t)i + 1;
    }
    if (ialen)
        memcpy(st->initarg, opts->initarg, ialen);
    st->initarg_len = ialen;
    mp_conn_t *rd = NULL, *wr = NULL;
    if (rc == 0)
        rc = mp_pipe(&rd, &wr, 0);
    st->report = wr;
    mp_process_t *proc = NULL;
    if (rc == 0) {
        mp_process_opts_t po = {.name = "SyncManager", .daemon = 1,
                                .start_method = opts ? opts->start_method : MP_START_DEFAULT};
        rc = mp_process_new(&proc, server_main, st, sizeof *st + ialen, &po);
    }
    if (rc == 0)
        rc = mp_process_start(proc);
    free(st);
    mp_conn_free(wr);
    mp_val_t *v = NULL;
    if (rc == 0) {
        rc = mp_conn_recv(rd, &v, 4096, CONNECT_TIMEOUT);
        if (rc == MP_EEOF)
            rc = MP_ESPAWN;
        else if (rc == 0 && v->type == MP_VAL_INT)
            rc = v->v.i < 0 && v->v.i > INT32_MIN ? (int)v->v.i : -EPROTO;
        else if (rc == 0 && (v->type != MP_VAL_STR || v->v.s.len == 0 ||
                             v->v.s.len >= MP_ADDRESS_MAX))
            rc = -EPROTO;
    }
    mp_conn_free(rd);
    mp_manager_t *m = NULL;
    if (rc == 0) {
        unsigned char key[MP_AUTHKEY_MAX];
        uint32_t keylen = 0;
        rc = key_of(opts ? opts->authkey : NULL, opts ? opts->authkey_len : 0, key, &keylen);
        m = rc < 0 ? NULL : manager_alloc(v->v.s.ptr, key, keylen,
                                           opts ? opts->max_message : 0);
        if (rc == 0 && !m)
            rc = -ENOMEM;
    }
    mp_val_free(v);
    if (rc < 0) {
        if (proc) {
            mp_process_kill(proc);
            mp_process_join(proc, MP_FOREVER);
            mp_process_free(proc);
        }
        return rc;
    }
    m->proc = proc;
    mgrs_link(m, 1);
    *out = m;
    return 0;
}

/* ---- the fuzzer's entry ------------------------------------------------------------ */

static mgr_server_t *fz;
static mgr_client_t fz_client;

static void fuzz_reset(void)
{
    if (fz) {
        server_release(fz);
        free(fz);
    }
    fz = calloc(1, sizeof *fz);
    if (!fz)
        return;
    pthread_mutex_init(&fz->mu, NULL);
    cond_init(&fz->idle);
    fz->stop_pipe[0] = fz->stop_pipe[1] = -1;
    fz->max_message = 1 << 20;
    fz_client.s = fz;
    /* One object of each kind, ids 1..14, in the order of builtin[]. */
    mp_val_t two = mp_val_int(2);
    mp_val_t vargs[2] = {mp_val_str("i"), mp_val_int(7)};
    mp_val_t items[3] = {mp_val_int(1), mp_val_int(2), mp_val_int(3)};
    mp_val_t aargs[2] = {mp_val_str("d"), mp_val_array(items, 3)};
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++) {
        const char *n = builtin[i]->name;
        const mp_val_t *a = NULL;
        size_t na = 0;
        if (!strcmp(n, "Value"))
            a = vargs, na = 2;
        else if (!strcmp(n, "Array"))
            a = aargs, na = 2;
        else if (!strcmp(n, "Barrier") || !strcmp(n, "Queue"))
            a = &two, na = 1;
        uint64_t id;
        const char *t;
        obj_create(fz, n, a, na, &id, &t);
    }
}

/* mgr_fuzz_request serves one request against a private server that holds
 * one object of each built-in kind (rebuilt when it has grown); nothing
 * blocks (every deadline is now) and shutdown is not honoured. The reply is
 * a malloc'd buffer. */
MP_HIDDEN int mgr_fuzz_request(const void *req, size_t len, void **reply, size_t *rlen);
int mgr_fuzz_request(const void *req, size_t len, void **reply, size_t *rlen)
{
    if (!fz || fz->nobjs > 256)
        fuzz_reset();
    if (!fz)
        return -ENOMEM;
    fuzz_mode = 1;
    buf_t out = {0};
    serve_one(fz, &fz_client, req, len, &out);
    if (out.err) {
        free(out.data);
        return out.err;
    }
    *reply = out.data;
    *rlen = out.len;
    return 0;
}

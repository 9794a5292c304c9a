/* listener.c: Listener and Client (Python's multiprocessing.connection):
 * stream sockets on unix paths, abstract unix names and TCP, with the
 * authkey handshake of auth.c.
 *
 * MT-safe: a listener is used by one thread at a time; the only global
 * state is the counter that numbers fresh abstract addresses (atomic).
 * Fork-safe: yes. A listener is a plain malloc'd object of the process that
 * made it; a forked child holds a copy whose close shuts the child's
 * descriptor only and never removes the socket file (as Python's
 * util.Finalize, which ignores calls from other processes).
 *
 * Invariants: every descriptor is born close-on-exec; the listening socket
 * is non-blocking (accept waits in poll against the deadline, so a client
 * that vanishes between poll and accept cannot block us), accepted and
 * connected sockets are blocking (the connection layer waits in poll).
 * One timeout per call becomes one absolute deadline; connecting, accepting
 * and the handshake share it.
 *
 * Differences from Python, on purpose: TCP sockets get TCP_NODELAY on both
 * ends (Python leaves Nagle on; with it every small round trip can stall for
 * the delayed-ACK timer); an empty key (non-NULL, length 0) runs the
 * handshake on both sides (Python 3.11's Listener skips it, its Client does
 * not, and the two hang). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "mproc.h"
#include "sys/platform.h"

#define SUN_PATH_CAP (sizeof(((struct sockaddr_un *)0)->sun_path))

struct mp_listener {
    int fd;        /* the listening socket; -1 once closed */
    int family;    /* AF_UNIX, AF_INET or AF_INET6 */
    int owns_file; /* we bound the socket file at path */
    pid_t owner;   /* the process that bound it */
    dev_t dev;     /* the file we bound, to remove only that one */
    ino_t ino;
    int has_key;
    unsigned char *key; /* has_key: keylen bytes (a 1-byte block if 0) */
    size_t keylen;
    char path[SUN_PATH_CAP];
    char address[MP_ADDRESS_MAX];
    char last[MP_ADDRESS_MAX]; /* the last accepted client's address */
};

/* A parsed address: a unix one inline, a TCP one as getaddrinfo results. */
typedef struct {
    int family; /* AF_UNIX, or AF_INET/AF_INET6 with ai set */
    struct sockaddr_un un;
    socklen_t unlen;
    struct addrinfo *ai;
} addr_t;

static _Atomic unsigned fresh_counter;

static double remaining(mp__deadline_t d)
{
    if (d == MP__NEVER)
        return MP_FOREVER;
    int64_t left = d - mp__now_ns();
    return left > 0 ? (double)left / 1e9 : 0.0;
}

/* ---- addresses ------------------------------------------------------------ */

static int is_unix_path(const char *a)
{
    return a[0] == '/' || strncmp(a, "./", 2) == 0 || strncmp(a, "../", 3) == 0;
}

/* parse_unix fills a with the unix address s ("/path", "./rel",
 * "@name"): a path keeps its NUL (the kernel ignores what follows it), an
 * abstract name has none, so that it is the very name Python's "\0name"
 * binds. */
static int parse_unix(const char *s, addr_t *a)
{
    size_t n = strlen(s);
    memset(&a->un, 0, sizeof a->un);
    a->un.sun_family = AF_UNIX;
    a->family = AF_UNIX;
    if (s[0] == '@') {
        if (n < 2)
            return -EINVAL;
        if (n > SUN_PATH_CAP)
            return -ENAMETOOLONG;
        memcpy(a->un.sun_path + 1, s + 1, n - 1);
        a->unlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
        return 0;
    }
    if (n >= SUN_PATH_CAP)
        return -ENAMETOOLONG;
    memcpy(a->un.sun_path, s, n + 1);
    a->unlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

static int gai_code(int e)
{
    switch (e) {
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_AGAIN:
        return -EAGAIN;
    case EAI_SYSTEM:
        return errno > 0 ? -errno : -EIO;
    default:
        return -EINVAL; /* no such host, or not an address */
    }
}

/* parse_port reads a decimal port (0..65535) into buf; -EINVAL otherwise. */
static int parse_port(const char *p, char *buf, size_t cap)
{
    size_t n = strlen(p);
    if (n == 0 || n >= cap || n > 5 || strspn(p, "0123456789") != n)
        return -EINVAL;
    if (atoi(p) > 65535)
        return -EINVAL;
    memcpy(buf, p, n + 1);
    return 0;
}

/* parse_tcp resolves "host:port" (IPv4 or a name; empty host: any address
 * for a listener, the local host for a client) or "[v6]:port". */
static int parse_tcp(const char *s, int passive, addr_t *a)
{
    char host[MP_ADDRESS_MAX], port[8];
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    const char *colon;
    size_t hlen;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close == s + 1 || close[1] != ':')
            return -EINVAL;
        hlen = (size_t)(close - s - 1);
        memcpy(host, s + 1, hlen);
        colon = close + 1;
        hints.ai_family = AF_INET6;
        hints.ai_flags |= AI_NUMERICHOST;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -EINVAL;
        hlen = (size_t)(colon - s);
        memcpy(host, s, hlen);
        if (memchr(host, ':', hlen))
            return -EINVAL; /* an IPv6 address needs its brackets */
        hints.ai_family = AF_INET;
    }
    host[hlen] = 0;
    int rc = parse_port(colon + 1, port, sizeof port);
    if (rc != 0)
        return rc;
    a->family = hints.ai_family;
    rc = getaddrinfo(hlen ? host : NULL, port, &hints, &a->ai);
    if (rc != 0) {
        a->ai = NULL;
        return gai_code(rc);
    }
    return 0;
}

/* parse_address parses any address string (see mproc/conn.h). */
static int parse_address(const char *s, int passive, addr_t *a)
{
    a->ai = NULL;
    if (strnlen(s, MP_ADDRESS_MAX) >= MP_ADDRESS_MAX)
        return -ENAMETOOLONG;
    if (s[0] == '@' || is_unix_path(s))
        return parse_unix(s, a);
    if (s[0] == '[' || strchr(s, ':'))
        return parse_tcp(s, passive, a);
    return -EINVAL;
}

/* format_inet writes the bound TCP address of fd (its peer's with peer
 * set) as "a.b.c.d:port" or "[v6]:port". */
static int format_inet(int fd, int peer, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    if ((peer ? getpeername : getsockname)(fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    int rc = getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, serv, sizeof serv,
                         NI_NUMERICHOST | NI_NUMERICSERV);
    if (rc != 0)
        return gai_code(rc);
    int n = ss.ss_family == AF_INET6 ? snprintf(out, cap, "[%s]:%s", host, serv)
                                     : snprintf(out, cap, "%s:%s", host, serv);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* fresh_address makes a new abstract address, as Python's
 * arbitrary_address: "@mp-<pid>-<counter>-<random>". */
static void fresh_address(char *out, size_t cap)
{
    unsigned r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
        r = (unsigned)mp__now_ns();
    unsigned k = atomic_fetch_add(&fresh_counter, 1);
    snprintf(out, cap, "@mp-%ld-%u-%08x", (long)getpid(), k, r);
}

/* ---- sockets -------------------------------------------------------------- */

static void set_nodelay(int fd)
{
    int one = 1;
    /* Only a speed matter: a failure leaves a working socket. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int set_blocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

/* wrap hands fd over to a new connection (fd is closed on failure). */
static int wrap(int fd, mp_conn_t **out)
{
    int rc = mp_conn_from_fd(out, fd, 1, 1);
    if (rc != 0)
        close(fd);
    return rc;
}

/* handshake_code turns a failed handshake's code into the caller's: a peer
 * that vanished, sent garbage or failed the check is MP_EAUTH; a time-out
 * and our own shortage keep their codes. */
static int handshake_code(int rc)
{
    if (rc == -ETIMEDOUT || rc == -ENOMEM || rc == -EINVAL)
        return rc;
    return MP_EAUTH;
}

/* ---- Listener ------------------------------------------------------------- */

static int check_key(const void *key, size_t len)
{
    return (!key && len) || len > INT_MAX ? -EINVAL : 0;
}

/* bind_unix binds and listens on a unix address; for a path, remembers the
 * file it made so that close removes that file and no other. An existing
 * file (a live listener or a stale one) fails with -EADDRINUSE, as in
 * Python: we never remove a file we did not make. */
static int bind_unix(mp_listener_t *l, const addr_t *a, int backlog)
{
    int fd = mp__sys_socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return fd;
    l->fd = fd;
    if (bind(fd, (const struct sockaddr *)&a->un, a->unlen) < 0)
        return -errno;
    if (a->un.sun_path[0] != 0) {
        struct stat st;
        memcpy(l->path, a->un.sun_path, sizeof l->path);
        if (lstat(l->path, &st) == 0) {
            l->owns_file = 1;
            l->dev = st.st_dev;
            l->ino = st.st_ino;
        }
    }
    return listen(fd, backlog) < 0 ? -errno : 0;
}

static int bind_inet(mp_listener_t *l, const addr_t *a, int backlog)
{
    const struct addrinfo *ai = a->ai;
    int one = 1;
    int fd = mp__sys_socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return fd;
    l->fd = fd;
    /* As Python on POSIX: a port in TIME_WAIT can be bound again at once;
     * a port somebody listens on still gives EADDRINUSE. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        return -errno;
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0)
        return -errno;
    if (listen(fd, backlog) < 0)
        return -errno;
    return format_inet(fd, 0, l->address, sizeof l->address);
}

int mp_listener_new(mp_listener_t **out, const char *address, const mp_listener_opts_t *opts)
{
    static const mp_listener_opts_t defaults;
    mp_listener_t *l = NULL;
    addr_t a = {.ai = NULL};
    int rc;

    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!opts)
        opts = &defaults;
    if (opts->backlog < 0 || check_key(opts->authkey, opts->authkey_len) != 0)
        return -EINVAL;
    l = mp__calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    l->fd = -1;
    l->owner = getpid();
    if (opts->authkey) {
        l->key = mp__malloc(opts->authkey_len ? opts->authkey_len : 1);
        if (!l->key) {
            rc = -ENOMEM;
            goto fail;
        }
        memcpy(l->key, opts->authkey, opts->authkey_len);
        l->keylen = opts->authkey_len;
        l->has_key = 1;
    }
    if (address)
        rc = parse_address(address, 1, &a);
    else {
        fresh_address(l->address, sizeof l->address);
        rc = parse_address(l->address, 1, &a);
    }
    if (rc != 0)
        goto fail;
    l->family = a.family;
    int backlog = opts->backlog ? opts->backlog : 1;
    if (a.family == AF_UNIX) {
        if (address)
            memcpy(l->address, address, strlen(address) + 1);
        rc = bind_unix(l, &a, backlog);
    } else {
        rc = bind_inet(l, &a, backlog);
    }
    if (rc != 0)
        goto fail;
    if (a.ai)
        freeaddrinfo(a.ai);
    *out = l;
    return 0;
fail:
    if (a.ai)
        freeaddrinfo(a.ai);
    mp_listener_free(l);
    return rc;
}

/* accept_until takes the next connection from the listening socket before
 * d: the descriptor (blocking, close-on-exec), or -ETIMEDOUT / -errno. The
 * network errors Linux passes on from a connection that died in the queue
 * (accept(2), "Error handling") mean: try the next one. */
static int accept_until(int lfd, mp__deadline_t d)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            return fd;
        switch (errno) {
        case EINTR:
        case ECONNABORTED:
        case EPROTO:
        case ENETDOWN:
        case ENOPROTOOPT:
        case EHOSTDOWN:
        case ENONET:
        case EHOSTUNREACH:
        case EOPNOTSUPP:
        case ENETUNREACH:
            continue;
        case EAGAIN: {
            int rc = mp__wait_readable(lfd, d);
            if (rc != 0)
                return rc;
            continue;
        }
        default:
            return -errno;
        }
    }
}

int mp_listener_accept(mp_listener_t *l, mp_conn_t **out, double timeout)
{
    mp_conn_t *c = NULL;
    mp__deadline_t d;
    if (!l || !out)
        return -EINVAL;
    *out = NULL;
    int rc = mp__deadline(timeout, &d);
    if (rc != 0)
        return rc;
    if (l->fd < 0)
        return MP_ECLOSED;
    int fd = accept_until(l->fd, d);
    if (fd < 0)
        return fd;
    l->last[0] = 0;
    if (l->family != AF_UNIX) {
        set_nodelay(fd);
        if (format_inet(fd, 1, l->last, sizeof l->last) != 0)
            l->last[0] = 0;
    }
    rc = wrap(fd, &c);
    if (rc != 0)
        return rc;
    if (l->has_key) {
        /* Python's order on the listening side: challenge, then answer. */
        rc = mp_conn_deliver_challenge(c, l->key, l->keylen, remaining(d));
        if (rc == 0)
            rc = mp_conn_answer_challenge(c, l->key, l->keylen, remaining(d));
        if (rc != 0) {
            mp_conn_free(c);
            return handshake_code(rc);
        }
    }
    *out = c;
    return 0;
}

const char *mp_listener_address(const mp_listener_t *l)
{
    return l ? l->address : NULL;
}

const char *mp_listener_last_accepted(const mp_listener_t *l)
{
    return l ? l->last : NULL;
}

int mp_listener_fileno(const mp_listener_t *l)
{
    if (!l)
        return -EINVAL;
    return l->fd < 0 ? MP_ECLOSED : l->fd;
}

void mp_listener_close(mp_listener_t *l)
{
    if (!l || l->fd < 0)
        return;
    close(l->fd);
    l->fd = -1;
    if (l->owns_file && l->owner == getpid()) {
        struct stat st;
        /* Only the file we bound: if somebody replaced it, it is theirs. */
        if (lstat(l->path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino)
            unlink(l->path);
    }
    l->owns_file = 0;
}

void mp_listener_free(mp_listener_t *l)
{
    if (!l)
        return;
    mp_listener_close(l);
    if (l->key) {
        OPENSSL_cleanse(l->key, l->keylen);
        free(l->key);
    }
    free(l);
}

/* ---- Client --------------------------------------------------------------- */

/* connect_unix connects the blocking unix socket fd before d. A unix
 * connect does not complete asynchronously (a non-blocking one fails with
 * EAGAIN while the listener's backlog is full), so it blocks for the time
 * left, which SO_SNDTIMEO bounds. */
static int connect_unix(int fd, const addr_t *a, mp__deadline_t d)
{
    int rc = 0;
    for (int tried = 0;; tried = 1) {
        if (d != MP__NEVER) {
            int64_t left = d - mp__now_ns();
            if (tried && left <= 0) {
                rc = -ETIMEDOUT;
                break;
            }
            if (left < 1000)
                left = 1000; /* at least one microsecond: 0 means forever */
            struct timeval tv = {.tv_sec = (time_t)(left / 1000000000),
                                 .tv_usec = (suseconds_t)(left % 1000000000 / 1000)};
            if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
                return -errno;
        }
        if (connect(fd, (const struct sockaddr *)&a->un, a->unlen) == 0)
            break;
        if (errno != EINTR && errno != EAGAIN) {
            rc = -errno;
            break;
        }
    }
    if (d != MP__NEVER) {
        struct timeval zero = {0, 0};
        if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &zero, sizeof zero) < 0 && rc == 0)
            rc = -errno;
    }
    return rc;
}

/* connect_inet connects the non-blocking socket fd to ai before d, then
 * makes it blocking. */
static int connect_inet(int fd, const struct addrinfo *ai, mp__deadline_t d)
{
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        if (errno != EINPROGRESS && errno != EINTR)
            return -errno;
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        for (;;) {
            int r = poll(&pfd, 1, mp__deadline_ms(d));
            if (r > 0)
                break;
            if (r == 0)
                return -ETIMEDOUT;
            if (errno != EINTR)
                return -errno;
        }
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            return -errno;
        if (err != 0)
            return -err;
    }
    return set_blocking(fd);
}

/* connect_any connects to a parsed address before d: the descriptor, or
 * the error of the last address tried. */
static int connect_any(const addr_t *a, mp__deadline_t d)
{
    int rc = -ECONNREFUSED;
    if (a->family == AF_UNIX) {
        int fd = mp__sys_socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0)
            return fd;
        rc = connect_unix(fd, a, d);
        if (rc != 0) {
            close(fd);
            return rc;
        }
        return fd;
    }
    for (const struct addrinfo *ai = a->ai; ai; ai = ai->ai_next) {
        int fd = mp__sys_socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (fd < 0)
            return fd;
        rc = connect_inet(fd, ai, d);
        if (rc == 0) {
            set_nodelay(fd);
            return fd;
        }
        close(fd);
        if (rc == -ETIMEDOUT)
            break;
    }
    return rc;
}

int mp_client(mp_conn_t **out, const char *address, const mp_client_opts_t *opts, double timeout)
{
    static const mp_client_opts_t defaults;
    mp_conn_t *c = NULL;
    addr_t a = {.ai = NULL};
    mp__deadline_t d;

    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!opts)
        opts = &defaults;
    if (!address || check_key(opts->authkey, opts->authkey_len) != 0)
        return -EINVAL;
    int rc = mp__deadline(timeout, &d);
    if (rc != 0)
        return rc;
    rc = parse_address(address, 0, &a);
    if (rc != 0)
        return rc;
    int fd = connect_any(&a, d);
    if (a.ai)
        freeaddrinfo(a.ai);
    if (fd < 0)
        return fd;
    rc = wrap(fd, &c);
    if (rc != 0)
        return rc;
    if (opts->authkey) {
        /* Python's order on the connecting side: answer, then challenge. */
        rc = mp_conn_answer_challenge(c, opts->authkey, opts->authkey_len, remaining(d));
        if (rc == 0)
            rc = mp_conn_deliver_challenge(c, opts->authkey, opts->authkey_len, remaining(d));
        if (rc != 0) {
            mp_conn_free(c);
            return handshake_code(rc);
        }
    }
    *out = c;
    return 0;
}

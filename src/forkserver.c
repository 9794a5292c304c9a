/* forkserver.c: the forkserver start method.
 *
 * The server is the program re-executed with MPROC_FORKSERVER set: a clean
 * process (no user state, one thread) that listens on an abstract unix socket
 * and forks a child per request. One server serves the whole family: its
 * address and a 32-byte secret live in an arena root block, so children under
 * any start method reach the same server. A request carries the boot record
 * and the descriptors the child must hold at the requester's numbers (stdio,
 * the requester's alive pipe); the reply carries the child's pid, a pidfd
 * (for signals) and the read end of a status pipe on which the server writes
 * the child's exit code when it reaps it (the requester's sentinel).
 *
 * The server exits when the process that started it ends (its alive pipe
 * reaches end-of-file), and that process stops and reaps it at exit.
 * Process-local state: the starter's record of its server (`mine`), reset in
 * forked children. MT-safe: yes (requests are serialized per connection; the
 * root block's robust mutex guards the server's start). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arena.h"
#include "internal.h"

#define FS_MAGIC 0x6d7066737271ULL
#define SECRET_LEN 32

typedef struct {
    pthread_mutex_t mu;
    uint32_t generation;   /* bumped each time a server is started */
    char name[64];         /* abstract socket name without the leading NUL */
    unsigned char secret[SECRET_LEN];
} fs_root_t;

typedef struct {
    uint64_t magic;
    uint64_t bloblen;
    uint32_t nfds;
    uint32_t pad;
    unsigned char secret[SECRET_LEN];
} fs_req_t;

typedef struct {
    int32_t rc;
    int32_t pid;
} fs_rep_t;

static struct {
    pthread_mutex_t mu;
    pid_t pid;     /* the server this process started, or 0 */
    int pidfd;
    int hooked;
} mine = {PTHREAD_MUTEX_INITIALIZER, 0, -1, 0};

static void mine_atfork_child(void)
{
    /* The server belongs to the parent. */
    pthread_mutex_init(&mine.mu, NULL);
    if (mine.pidfd >= 0)
        close(mine.pidfd);
    mine.pid = 0;
    mine.pidfd = -1;
}

static void root_init(void *p)
{
    fs_root_t *r = p;
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&r->mu, &ma);
    pthread_mutexattr_destroy(&ma);
}

static void root_lock(fs_root_t *r)
{
    if (pthread_mutex_lock(&r->mu) == EOWNERDEAD)
        pthread_mutex_consistent(&r->mu); /* the name is whole or empty */
}

static socklen_t make_addr(struct sockaddr_un *sa, const char *name)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    size_t n = strlen(name);
    memcpy(sa->sun_path + 1, name, n);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

static int connect_to(const char *name)
{
    struct sockaddr_un sa;
    socklen_t sl = make_addr(&sa, name);
    int fd = mp__sys_socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0)
        return fd;
    if (connect(fd, (struct sockaddr *)&sa, sl) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

/* Starts a server; with r->mu held. */
static int start_server_locked(fs_root_t *r)
{
    char name[64];
    unsigned char secret[SECRET_LEN];
    struct sockaddr_un sa;
    int lfd = -1, rc, afd;
    uintptr_t base;
    size_t reserve;
    pid_t pid;

    if (getrandom(secret, sizeof secret, 0) != (ssize_t)sizeof secret)
        return -EIO;
    snprintf(name, sizeof name, "mproc-fs-%d-%02x%02x%02x%02x", getpid(), secret[0],
             secret[1], secret[2], secret[3]);
    int alive = mp__alive_read();
    if (alive < 0)
        return alive;
    mp__arena_describe(&afd, &base, &reserve);
    lfd = mp__sys_socket(AF_UNIX, SOCK_STREAM, 0);
    if (lfd < 0)
        return lfd;
    socklen_t sl = make_addr(&sa, name);
    if (bind(lfd, (struct sockaddr *)&sa, sl) < 0 || listen(lfd, 128) < 0) {
        rc = -errno;
        goto out;
    }
    char var[512], hex[2 * SECRET_LEN + 1];
    for (int i = 0; i < SECRET_LEN; i++)
        snprintf(hex + 2 * i, 3, "%02x", secret[i]);
    snprintf(var, sizeof var, "MPROC_FORKSERVER=%d,%d,%d,%lx,%zx,%s", lfd, alive, afd,
             (unsigned long)base, reserve, hex);
    int keep[] = {lfd, alive, afd};
    rc = mp__exec_self(var, keep, 3, &pid);
    if (rc < 0)
        goto out;
    int pidfd = mp__pidfd_open(pid);
    if (pidfd < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        rc = pidfd;
        goto out;
    }
    pthread_mutex_lock(&mine.mu);
    if (!mine.hooked) {
        pthread_atfork(NULL, NULL, mine_atfork_child);
        mine.hooked = 1;
    }
    if (mine.pidfd >= 0) { /* an older server of ours that had died */
        waitpid(mine.pid, NULL, WNOHANG);
        close(mine.pidfd);
    }
    mine.pid = pid;
    mine.pidfd = pidfd;
    pthread_mutex_unlock(&mine.mu);
    memcpy(r->secret, secret, sizeof secret);
    snprintf(r->name, sizeof r->name, "%s", name);
    r->generation++;
    rc = 0;
out:
    close(lfd);
    return rc;
}

void mp__forkserver_stop(void)
{
    if (!__atomic_load_n(&mine.pid, __ATOMIC_ACQUIRE))
        return; /* the common case: we never started one */
    pthread_mutex_lock(&mine.mu);
    if (mine.pid > 0) {
        mp__pidfd_signal(mine.pidfd, SIGTERM);
        int code;
        mp__wait_readable(mine.pidfd, MP__NEVER);
        mp__pidfd_reap(mine.pidfd, &code);
        close(mine.pidfd);
        mine.pid = 0;
        mine.pidfd = -1;
        fs_root_t *r = mp__arena_root(MP__ROOT_FORKSERVER, sizeof(fs_root_t), root_init);
        if (r) {
            root_lock(r);
            r->name[0] = 0;
            pthread_mutex_unlock(&r->mu);
        }
    }
    pthread_mutex_unlock(&mine.mu);
}

/* Connects to the family's server, starting one if there is none or it is
 * gone. Returns the connection and copies the secret. */
static int connect_server(unsigned char *secret)
{
    fs_root_t *r = mp__arena_root(MP__ROOT_FORKSERVER, sizeof(fs_root_t), root_init);
    if (!r)
        return -ENOMEM;
    root_lock(r);
    int fd = -ECONNREFUSED;
    if (r->name[0])
        fd = connect_to(r->name);
    if (fd == -ECONNREFUSED || fd == -ENOENT) {
        int rc = start_server_locked(r);
        fd = rc < 0 ? rc : connect_to(r->name);
    }
    memcpy(secret, r->secret, SECRET_LEN);
    pthread_mutex_unlock(&r->mu);
    return fd;
}

/* Sends buf with n descriptors: the first MP__SCM_BATCH ride with buf, the
 * rest follow in one-byte messages of a batch each. */
static int send_batch(int fd, const void *buf, size_t len, const int *fds, int n)
{
    char cbuf[CMSG_SPACE(sizeof(int) * MP__SCM_BATCH)];
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (n > 0) {
        memset(cbuf, 0, sizeof cbuf);
        mh.msg_control = cbuf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
    }
    ssize_t r;
    do
        r = sendmsg(fd, &mh, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    if ((size_t)r < len)
        return mp__send_all(fd, (const char *)buf + r, len - (size_t)r);
    return 0;
}

static int send_fds(int fd, const void *buf, size_t len, const int *fds, int n)
{
    int k = n < MP__SCM_BATCH ? n : MP__SCM_BATCH;
    int rc = send_batch(fd, buf, len, fds, k);
    for (int i = k; rc == 0 && i < n; i += k) {
        k = n - i < MP__SCM_BATCH ? n - i : MP__SCM_BATCH;
        rc = send_batch(fd, "f", 1, fds + i, k);
    }
    return rc;
}

/* Receives exactly len bytes; the first segment may carry up to max fds,
 * stored in fds (*n set). Extra fds are closed. */
static int recv_fds(int fd, void *buf, size_t len, int *fds, int max, int *n)
{
    char cbuf[CMSG_SPACE(sizeof(int) * MP__SCM_BATCH)];
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                        .msg_controllen = sizeof cbuf};
    ssize_t r;
    *n = 0;
    do
        r = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *in = (int *)CMSG_DATA(c);
        for (int i = 0; i < k; i++) {
            if (*n < max)
                fds[(*n)++] = in[i];
            else
                close(in[i]);
        }
    }
    if (r == 0)
        return MP_EEOF;
    if ((size_t)r < len)
        return mp__recv_all(fd, (char *)buf + r, len - (size_t)r);
    return 0;
}

int mp__start_forkserver(struct mp_process *p)
{
    int rc, conn = -1, got[2] = {-1, -1}, ngot = 0;
    void *blob = NULL;
    size_t len = 0;
    mp__boot_t *b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    rc = mp__boot_fill(b, p);
    if (rc < 0)
        goto out;
    /* The child holds our stdio, our alive pipe and the passed descriptors
     * at the same numbers. */
    int fds[MP__MAX_FDS], nf = 0;
    int base[4] = {0, 1, 2, b->parent_alive_fd};
    for (int i = 0; i < 4; i++)
        if (fcntl(base[i], F_GETFD) >= 0)
            fds[nf++] = base[i];
    for (uint32_t i = 0; i < b->nfds && nf < MP__MAX_FDS; i++)
        fds[nf++] = b->fds[i];
    memcpy(b->fds, fds, sizeof(int) * (size_t)nf);
    b->nfds = (uint32_t)nf;
    b->arena_fd = -1; /* the server's children inherit its mapping */
    blob = mp__boot_encode(b, &len);
    if (!blob) {
        rc = -ENOMEM;
        goto out;
    }
    fs_req_t req = {.magic = FS_MAGIC, .bloblen = len, .nfds = (uint32_t)nf};
    conn = connect_server(req.secret);
    if (conn < 0) {
        rc = conn;
        goto out;
    }
    fs_rep_t rep;
    if (send_fds(conn, &req, sizeof req, fds, nf) < 0 || mp__send_all(conn, blob, len) < 0 ||
        recv_fds(conn, &rep, sizeof rep, got, 2, &ngot) < 0) {
        rc = MP_ESPAWN;
        goto out;
    }
    if (rep.rc < 0 || ngot != 2) {
        rc = rep.rc < 0 ? rep.rc : MP_ESPAWN;
        goto out;
    }
    p->pid = rep.pid;
    p->pidfd = got[0];
    p->statfd = got[1];
    got[0] = got[1] = -1;
    rc = 0;
out:
    for (int i = 0; i < 2; i++)
        if (got[i] >= 0)
            close(got[i]);
    if (conn >= 0)
        close(conn);
    free(blob);
    free(b);
    return rc;
}

/* ---- the server ---------------------------------------------------------- */

typedef struct {
    int pidfd, statw;
} fs_child_t;

static fs_child_t *kids;
static size_t nkids, capkids;

/* In the forked child: put the received descriptors at their numbers and
 * close every descriptor of the server's. */
static void child_fds(const mp__boot_t *b, const int *got, int afd)
{
    int high = afd;
    for (uint32_t i = 0; i < b->nfds; i++)
        if (b->fds[i] > high)
            high = b->fds[i];
    high++;
    int tmp[MP__MAX_FDS];
    for (uint32_t i = 0; i < b->nfds; i++)
        tmp[i] = fcntl(got[i], F_DUPFD_CLOEXEC, high);
    for (uint32_t i = 0; i < b->nfds; i++)
        if (tmp[i] < 0 || dup2(tmp[i], b->fds[i]) < 0)
            _exit(255);
    for (int fd = 0; fd < high; fd++) {
        int keep = fd == afd;
        for (uint32_t i = 0; i < b->nfds && !keep; i++)
            keep = b->fds[i] == fd;
        if (!keep)
            close(fd);
    }
    close_range((unsigned)high, ~0U, 0);
}

static void serve_one(int c, int afd, const unsigned char *secret)
{
    fs_req_t req;
    int got[MP__MAX_FDS], ngot = 0, st[2] = {-1, -1};
    void *blob = NULL;
    mp__boot_t *b = NULL;
    fs_rep_t rep = {.rc = MP_ESPAWN};
    struct timeval tv = {5, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (recv_fds(c, &req, sizeof req, got, MP__MAX_FDS, &ngot) < 0)
        goto out;
    while ((uint32_t)ngot < req.nfds && req.nfds <= MP__MAX_FDS) {
        char one;
        int k = 0;
        if (recv_fds(c, &one, 1, got + ngot, MP__MAX_FDS - ngot, &k) < 0 || k == 0)
            goto out;
        ngot += k;
    }
    /* Only members of the family know the secret. */
    unsigned char diff = 0;
    for (int i = 0; i < SECRET_LEN; i++)
        diff |= req.secret[i] ^ secret[i];
    if (req.magic != FS_MAGIC || diff || req.bloblen > ((size_t)1 << 31) + 65536 ||
        req.nfds != (uint32_t)ngot)
        goto out;
    blob = malloc(req.bloblen ? req.bloblen : 1);
    b = malloc(sizeof *b);
    if (!blob || !b || mp__recv_all(c, blob, req.bloblen) < 0 ||
        mp__boot_decode(blob, req.bloblen, b) < 0 || b->nfds != (uint32_t)ngot)
        goto out;
    if (pipe2(st, O_CLOEXEC) < 0) {
        rep.rc = -errno;
        goto reply;
    }
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGCHLD, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        child_fds(b, got, afd);
        mp__child_main(b);
    }
    if (pid < 0) {
        rep.rc = -errno;
        goto reply;
    }
    int pidfd = mp__pidfd_open(pid);
    if (pidfd < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        rep.rc = pidfd;
        goto reply;
    }
    rep.rc = 0;
    rep.pid = pid;
    int out[2] = {pidfd, st[0]};
    if (send_fds(c, &rep, sizeof rep, out, 2) < 0) {
        /* The requester is gone: nobody would ever join this child. */
        mp__pidfd_signal(pidfd, SIGKILL);
    }
    close(st[0]);
    st[0] = -1;
    if (nkids == capkids) {
        size_t cap = capkids ? capkids * 2 : 16;
        fs_child_t *nk = realloc(kids, cap * sizeof *nk);
        if (!nk) { /* cannot track it: its status will read as EOF (255) */
            close(pidfd);
            close(st[1]);
            st[1] = -1;
            goto out;
        }
        kids = nk;
        capkids = cap;
    }
    kids[nkids++] = (fs_child_t){pidfd, st[1]};
    st[1] = -1;
    goto out;
reply:
    send_fds(c, &rep, sizeof rep, NULL, 0);
out:
    for (int i = 0; i < ngot; i++)
        close(got[i]);
    for (int i = 0; i < 2; i++)
        if (st[i] >= 0)
            close(st[i]);
    free(blob);
    free(b);
}

static void reap_kids(struct pollfd *pf)
{
    for (size_t i = 0; i < nkids;) {
        int code;
        if (pf[i].revents && mp__pidfd_reap(kids[i].pidfd, &code) == 1) {
            int32_t st = code;
            ssize_t w = write(kids[i].statw, &st, sizeof st);
            (void)w;
            close(kids[i].statw);
            close(kids[i].pidfd);
            kids[i] = kids[--nkids];
            pf[i] = pf[nkids];
            continue;
        }
        i++;
    }
}

_Noreturn void mp__forkserver_main(const char *spec)
{
    int lfd, alive, afd;
    unsigned long base;
    size_t reserve;
    char hex[2 * SECRET_LEN + 1];
    unsigned char secret[SECRET_LEN];
    if (sscanf(spec, "%d,%d,%d,%lx,%zx,%64s", &lfd, &alive, &afd, &base, &reserve, hex) != 6)
        _exit(2);
    for (int i = 0; i < SECRET_LEN; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            _exit(2);
        secret[i] = (unsigned char)v;
    }
    if (afd >= 0 && mp__arena_attach(afd, base, reserve) < 0)
        _exit(2);
    fcntl(lfd, F_SETFD, FD_CLOEXEC);
    fcntl(alive, F_SETFD, FD_CLOEXEC);
    if (afd >= 0)
        fcntl(afd, F_SETFD, FD_CLOEXEC);
    mp__stdin_devnull();
    /* A requester that died closes its status pipe: writing the status
     * must not kill the server. Children get the default back. */
    signal(SIGPIPE, SIG_IGN);
    for (;;) {
        size_t n = nkids + 2;
        struct pollfd *pf = calloc(n, sizeof *pf);
        if (!pf)
            _exit(3);
        for (size_t i = 0; i < nkids; i++)
            pf[i] = (struct pollfd){.fd = kids[i].pidfd, .events = POLLIN};
        pf[nkids] = (struct pollfd){.fd = lfd, .events = POLLIN};
        pf[nkids + 1] = (struct pollfd){.fd = alive, .events = POLLIN};
        if (poll(pf, n, -1) < 0 && errno != EINTR)
            _exit(3);
        if (pf[nkids + 1].revents) /* the starter has ended */
            _exit(0);
        int incoming = pf[nkids].revents != 0;
        reap_kids(pf);
        free(pf);
        if (incoming) {
            int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
            if (c >= 0) {
                serve_one(c, afd, secret);
                close(c);
            }
        }
    }
}

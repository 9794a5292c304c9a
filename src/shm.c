/* shm.c: named shared memory (Python's SharedMemory) and the exit watcher
 * that unlinks a creator's segments when the creator ends.
 *
 * A segment is /dev/shm/<name>, the file glibc's shm_open and Python use.
 * Creation with unlink_on_exit is atomic: the file is made unnamed
 * (O_TMPFILE), sized, mapped, registered with the watcher, and only then
 * given its name with linkat, which fails with EEXIST if the name is taken.
 * So a failed call leaves nothing, and no other process ever sees a
 * half-made segment. Without it, creation is Python's (open with O_EXCL
 * under the name, then size): cheaper, and a failure removes the name.
 *
 * The exit watcher (one per creating process, started on demand): a child
 * forked by the creator that holds only one end of a SOCK_SEQPACKET pair.
 * The creator sends "add name dev ino" before naming a segment and "del"
 * when it unlinks it. When the creator ends, however it ends, the kernel
 * closes its end and the watcher reads end-of-file; it then unlinks each
 * name it still holds, but only if the name still refers to the same inode
 * (dev, ino): a segment that someone else unlinked and re-created under the
 * same name is left alone, and so is a name the creator registered but was
 * killed before linking. When the creator has unlinked all its registered
 * segments it closes its end and reaps the watcher, so a process that does
 * not use the feature, or no longer does, has no extra process. Processes
 * that attach never register anything, so they never remove a segment.
 *
 * Invariants: W.fd >= 0 exactly when a watcher runs, and then W.n >= 1
 * (outside the moments of add/del under W.mu); the creator's end is
 * close-on-exec and closed in every forked child (atfork), so only the
 * creator holds it and end-of-file means the creator is gone.
 * Lock order: W.mu only.
 * MT-safe: yes (W.mu). Fork-safe: yes: a forked child is not the creator;
 * its copy of the registry is emptied and its copy of the descriptor closed. */
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mproc.h"
#include "sys/platform.h"

#define SHM_DIR "/dev/shm"
#define NAME_CAP (MP_SHM_NAME_MAX + 2) /* leading '/', name, NUL */

struct mp_shm {
    char name[NAME_CAP]; /* with the leading '/' */
    void *buf;           /* NULL once closed */
    size_t size;
    uint64_t dev, ino;   /* the inode mapped */
};

/* ---- the exit watcher -------------------------------------------------- */

enum { OP_ADD = 1, OP_DEL = 2 };

typedef struct {
    uint32_t op;
    uint32_t pad;
    uint64_t dev, ino;
    char name[NAME_CAP];
} wmsg_t;

static struct {
    pthread_mutex_t mu; /* recursive: the watcher's own fork runs the
                         * prepare handler while reg_add holds it */
    int atfork_done;
    int fd;       /* the creator's end, -1 when no watcher runs */
    pid_t pid;    /* the watcher */
    int pidfd;    /* its pidfd, to wait for it without waitpid races */
    size_t n, cap;
    wmsg_t *v;    /* registered segments (op unused) */
} W = {PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP, 0, -1, 0, -1, 0, 0, NULL};

static void atfork_prepare(void) { pthread_mutex_lock(&W.mu); }
static void atfork_parent(void) { pthread_mutex_unlock(&W.mu); }
static void atfork_child(void)
{
    /* This child did not create the registered segments: forget them, and
     * drop the descriptor so the watcher sees only the creator's. */
    if (W.fd >= 0)
        close(W.fd);
    if (W.pidfd >= 0)
        close(W.pidfd);
    W.fd = W.pidfd = -1;
    W.pid = 0;
    W.n = 0;
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&W.mu, &a);
    pthread_mutexattr_destroy(&a);
}

/* unmap_shared drops every MAP_SHARED mapping the watcher inherited (the
 * arena, segments), so that it pins no shared memory while it waits.
 * Uses only system calls: the watcher is a fork of a possibly threaded
 * process. */
static void unmap_shared(void)
{
    size_t cap = 1 << 20, len = 0;
    char *b = mmap(NULL, cap, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED)
        return;
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        goto out;
    for (;;) {
        ssize_t r = read(fd, b + len, cap - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
        if (len == cap - 1)
            break;
    }
    close(fd);
    b[len] = 0;
    for (char *line = b; line && *line;) {
        char *nl = strchr(line, '\n');
        unsigned long lo, hi;
        char perms[5] = {0};
        if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) == 3 && perms[3] == 's')
            munmap((void *)lo, hi - lo);
        line = nl ? nl + 1 : NULL;
    }
out:
    munmap(b, cap);
}

static void close_all_but(int keep)
{
    if (keep > 3)
        syscall(SYS_close_range, 3u, (unsigned)keep - 1, 0u);
    if (syscall(SYS_close_range, (unsigned)keep + 1, ~0u, 0u) < 0) {
        long max = sysconf(_SC_OPEN_MAX);
        for (long i = 3; i < max && i < 65536; i++)
            if (i != keep)
                close((int)i);
    }
}

/* sweep unlinks each held name that still refers to the registered inode. */
static void sweep(const wmsg_t *v, size_t n)
{
    char path[sizeof SHM_DIR + NAME_CAP];
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        snprintf(path, sizeof path, SHM_DIR "%s", v[i].name);
        if (stat(path, &st) == 0 && (uint64_t)st.st_dev == v[i].dev &&
            (uint64_t)st.st_ino == v[i].ino)
            unlink(path);
    }
}

/* watcher_main runs in the watcher; every signal but SIGKILL and SIGSTOP
 * stays blocked (the mask of the fork), so a terminal's Ctrl-C that ends the
 * creator cannot end the watcher before it has swept. */
static void __attribute__((noreturn)) watcher_main(int sock)
{
    prctl(PR_SET_NAME, "mp-shm-watch", 0, 0, 0);
    int fd = fcntl(sock, F_DUPFD, 3);
    if (fd < 0)
        _exit(1);
    int nul = open("/dev/null", O_RDWR);
    if (nul >= 0) {
        dup2(nul, 0);
        dup2(nul, 1);
        dup2(nul, 2);
    }
    close_all_but(fd);
    unmap_shared();
    /* Tell the creator we hold nothing of its own any more. */
    char ready = 1;
    while (send(fd, &ready, 1, MSG_NOSIGNAL) < 0 && errno == EINTR)
        ;

    size_t n = 0, cap = 0;
    wmsg_t *v = NULL;
    for (;;) {
        wmsg_t m;
        ssize_t r = recv(fd, &m, sizeof m, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r != (ssize_t)sizeof m)
            break; /* end-of-file: the creator is gone (or a broken peer) */
        m.name[NAME_CAP - 1] = 0;
        if (m.op == OP_ADD) {
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 64;
                void *p = cap ? mremap(v, cap * sizeof *v, ncap * sizeof *v,
                                       MREMAP_MAYMOVE)
                              : mmap(NULL, ncap * sizeof *v,
                                     PROT_READ | PROT_WRITE,
                                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (p == MAP_FAILED)
                    continue; /* cannot hold it: the creator's add got lost */
                v = p;
                cap = ncap;
            }
            v[n++] = m;
        } else if (m.op == OP_DEL) {
            for (size_t i = 0; i < n; i++) {
                if (v[i].dev == m.dev && v[i].ino == m.ino &&
                    strcmp(v[i].name, m.name) == 0) {
                    v[i] = v[--n];
                    break;
                }
            }
        }
    }
    sweep(v, n);
    _exit(0);
}

/* watcher_start forks the watcher. Called with W.mu held, W.fd < 0. */
static int watcher_start(void)
{
    if (!W.atfork_done)
        return -ENOMEM; /* pthread_atfork failed: a fork could copy W.mu held */
    int sv[2];
    int rc = mp__sys_socketpair(SOCK_SEQPACKET | SOCK_CLOEXEC, sv);
    if (rc < 0)
        return rc;
    sigset_t old;
    mp__signals_block_all(&old);
    pid_t pid = mp__sys_fork();
    if (pid == 0) {
        close(sv[0]);
        watcher_main(sv[1]);
    }
    mp__signals_restore(&old);
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        return (int)pid;
    }
    int pidfd = mp__pidfd_open(pid);
    /* Wait for its "ready": from then on it holds no descriptor and no
     * shared mapping of ours (so it keeps no pipe, socket or daemon child's
     * alive pipe open, and pins no memory). */
    char ready = 0;
    ssize_t r = -1;
    if (pidfd >= 0 &&
        mp__wait_readable(sv[0], mp__now_ns() + 10 * 1000000000LL) == 0)
        while ((r = recv(sv[0], &ready, 1, 0)) < 0 && errno == EINTR)
            ;
    if (pidfd < 0 || r != 1 || ready != 1) {
        /* Without a pidfd we cannot wait for it safely; without "ready" it
         * is broken: end it (it exits at end-of-file). */
        rc = pidfd < 0 ? pidfd : -EIO;
        close(sv[0]);
        if (pidfd >= 0)
            close(pidfd);
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        return rc;
    }
    W.fd = sv[0];
    W.pid = pid;
    W.pidfd = pidfd;
    return 0;
}

/* watcher_stop closes our end and waits (bounded) for the watcher to end and
 * reaps it. Called with W.mu held. */
static void watcher_stop(void)
{
    close(W.fd);
    W.fd = -1;
    mp__deadline_t d = mp__now_ns() + 10 * 1000000000LL;
    if (mp__wait_readable(W.pidfd, d) == 0) {
        int code;
        (void)mp__pidfd_reap(W.pidfd, &code);
    }
    close(W.pidfd);
    W.pidfd = -1;
    W.pid = 0;
}

static int wsend(uint32_t op, const char *name, uint64_t dev, uint64_t ino)
{
    wmsg_t m;
    memset(&m, 0, sizeof m);
    m.op = op;
    m.dev = dev;
    m.ino = ino;
    snprintf(m.name, sizeof m.name, "%s", name);
    for (;;) {
        ssize_t r = send(W.fd, &m, sizeof m, MSG_NOSIGNAL);
        if (r == (ssize_t)sizeof m)
            return 0;
        if (r < 0 && errno == EINTR)
            continue;
        return r < 0 ? -errno : -EIO;
    }
}

/* The fork handlers are in place before anyone takes W.mu: a fork in
 * another thread while W.mu is held must not leave the child a held lock. */
static pthread_once_t W_once = PTHREAD_ONCE_INIT;

static void w_init(void)
{
    W.atfork_done = pthread_atfork(atfork_prepare, atfork_parent, atfork_child) == 0;
}

static void w_lock(void)
{
    pthread_once(&W_once, w_init);
    pthread_mutex_lock(&W.mu);
}

/* reg_add registers a segment for unlinking at exit, starting the watcher
 * if none runs. */
static int reg_add(const char *name, uint64_t dev, uint64_t ino)
{
    w_lock();
    int rc = 0;
    if (W.n == W.cap) {
        size_t ncap = W.cap ? W.cap * 2 : 8;
        wmsg_t *p = realloc(W.v, ncap * sizeof *p);
        if (!p) {
            rc = -ENOMEM;
            goto out;
        }
        W.v = p;
        W.cap = ncap;
    }
    if (W.fd < 0 && (rc = watcher_start()) < 0)
        goto out;
    if ((rc = wsend(OP_ADD, name, dev, ino)) < 0) {
        if (W.n == 0)
            watcher_stop();
        goto out;
    }
    memset(&W.v[W.n], 0, sizeof W.v[W.n]);
    snprintf(W.v[W.n].name, NAME_CAP, "%s", name);
    W.v[W.n].dev = dev;
    W.v[W.n].ino = ino;
    W.n++;
out:
    pthread_mutex_unlock(&W.mu);
    return rc;
}

/* reg_del cancels a registration (no-op when this process holds none for
 * that segment) and stops the watcher when none is left. */
static void reg_del(const char *name, uint64_t dev, uint64_t ino)
{
    w_lock();
    for (size_t i = 0; i < W.n; i++) {
        if (W.v[i].dev == dev && W.v[i].ino == ino &&
            strcmp(W.v[i].name, name) == 0) {
            W.v[i] = W.v[--W.n];
            (void)wsend(OP_DEL, name, dev, ino);
            if (W.n == 0)
                watcher_stop(); /* end-of-file sweeps nothing: none left */
            break;
        }
    }
    pthread_mutex_unlock(&W.mu);
}

/* mp__shm_watcher_pid returns the pid of this process's exit watcher, or 0
 * (for tests). */
MP_HIDDEN pid_t mp__shm_watcher_pid(void);
pid_t mp__shm_watcher_pid(void)
{
    w_lock();
    pid_t p = W.pid;
    pthread_mutex_unlock(&W.mu);
    return p;
}

/* ---- segments ------------------------------------------------------------ */

/* check_name validates a user's name and writes it with one leading '/'. */
static int check_name(const char *name, char out[NAME_CAP])
{
    if (!name)
        return -EINVAL;
    if (name[0] == '/')
        name++;
    size_t n = strnlen(name, MP_SHM_NAME_MAX + 1);
    if (n == 0 || memchr(name, '/', n) || !strcmp(name, ".") ||
        !strcmp(name, ".."))
        return -EINVAL;
    if (n > MP_SHM_NAME_MAX)
        return -ENAMETOOLONG;
    out[0] = '/';
    memcpy(out + 1, name, n + 1);
    return 0;
}

/* make_name writes a fresh name as Python makes them: "/psm_" + 8 hex. The
 * bits come from a per-process generator seeded once from getrandom (and
 * again in a fork child, told by an atfork handler: the pid is mixed in),
 * not a system call per name; a taken name is retried by the caller, so
 * they only need to differ. */
static _Atomic uint64_t name_state;
static _Atomic int name_seeded;
static pthread_once_t name_once = PTHREAD_ONCE_INIT;

static void name_forked(void)
{
    atomic_store(&name_seeded, 0);
}

static void name_atfork(void)
{
    pthread_atfork(NULL, NULL, name_forked);
}

static void make_name(char out[NAME_CAP])
{
    if (!atomic_load(&name_seeded)) {
        pthread_once(&name_once, name_atfork);
        uint64_t seed = 0;
        if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed)
            seed = (uint64_t)mp__now_ns();
        atomic_store(&name_state, seed ^ ((uint64_t)getpid() << 32));
        atomic_store(&name_seeded, 1);
    }
    uint64_t x = atomic_fetch_add(&name_state, 0x9e3779b97f4a7c15ull) + 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    x ^= x >> 31;
    snprintf(out, NAME_CAP, "/psm_%08x", (uint32_t)x);
}

/* create_plain makes an untracked segment the short way (as Python and
 * shm_open do): open with O_EXCL under its name, size, map. A process that
 * attaches in between sees an empty segment (-EINVAL), as with Python; a
 * failure after the open removes the name again. Two system calls fewer
 * than the atomic way below (no fstat, no linkat: about a third of a
 * create+attach+close+unlink cycle here). */
static int create_plain(mp_shm_t *s, size_t size)
{
    char path[sizeof SHM_DIR + NAME_CAP];
    snprintf(path, sizeof path, SHM_DIR "%s", s->name);
    int fd = open(path, O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    void *p = MAP_FAILED;
    int rc = mp__sys_ftruncate(fd, (off_t)size);
    if (rc == 0) {
        p = mp__sys_mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            rc = -errno;
    }
    close(fd);
    if (rc < 0) {
        unlink(path);
        return rc;
    }
    s->buf = p;
    s->size = size;
    return 0;
}

/* create makes s->name (already set) as a new segment of size bytes. */
static int create(mp_shm_t *s, size_t size, int track)
{
    if (!track)
        return create_plain(s, size);
    void *p = MAP_FAILED;
    int registered = 0, rc;
    int fd = open(SHM_DIR, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    if ((rc = mp__sys_ftruncate(fd, (off_t)size)) < 0)
        goto fail;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto fail;
    }
    p = mp__sys_mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        rc = -errno;
        goto fail;
    }
    /* Registered before it is named: if we die between the two, the watcher
     * finds no such name, or another inode under it, and removes nothing. */
    if (track) {
        if ((rc = reg_add(s->name, st.st_dev, st.st_ino)) < 0)
            goto fail;
        registered = 1;
    }
    char proc[40], path[sizeof SHM_DIR + NAME_CAP];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    snprintf(path, sizeof path, SHM_DIR "%s", s->name);
    if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) < 0) {
        rc = -errno;
        goto fail;
    }
    close(fd);
    s->buf = p;
    s->size = size;
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    return 0;
fail:
    if (registered)
        reg_del(s->name, st.st_dev, st.st_ino);
    if (p != MAP_FAILED)
        munmap(p, size);
    close(fd);
    return rc;
}

int mp_shm_new(mp_shm_t **out, const char *name, size_t size,
               const mp_shm_opts_t *opts)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (size == 0 || size > (size_t)INT64_MAX)
        return -EINVAL;
    mp_shm_t *s = mp__calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    int track = opts && opts->unlink_on_exit;
    int rc = 0;
    if (name) {
        if ((rc = check_name(name, s->name)) == 0)
            rc = create(s, size, track);
    } else {
        /* A taken random name is retried, as Python does. */
        for (int tries = 0; tries < 64; tries++) {
            make_name(s->name);
            if ((rc = create(s, size, track)) != -EEXIST)
                break;
        }
    }
    if (rc < 0) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int mp_shm_attach(mp_shm_t **out, const char *name)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    mp_shm_t *s = mp__calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    int fd = -1, rc;
    if ((rc = check_name(name, s->name)) < 0)
        goto fail;
    char path[sizeof SHM_DIR + NAME_CAP];
    snprintf(path, sizeof path, SHM_DIR "%s", s->name);
    fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto fail;
    }
    if (st.st_size <= 0) {
        rc = -EINVAL; /* Python: "cannot mmap an empty file" */
        goto fail;
    }
    void *p = mp__sys_mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE,
                           MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        rc = -errno;
        goto fail;
    }
    close(fd);
    s->buf = p;
    s->size = (size_t)st.st_size;
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    *out = s;
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    free(s);
    return rc;
}

const char *mp_shm_name(const mp_shm_t *s) { return s ? s->name + 1 : NULL; }

size_t mp_shm_size(const mp_shm_t *s) { return s ? s->size : 0; }

void *mp_shm_buf(const mp_shm_t *s) { return s ? s->buf : NULL; }

int mp_shm_close(mp_shm_t *s)
{
    if (!s)
        return -EINVAL;
    if (s->buf) {
        munmap(s->buf, s->size);
        s->buf = NULL;
    }
    return 0;
}

int mp_shm_unlink(mp_shm_t *s)
{
    if (!s)
        return -EINVAL;
    char path[sizeof SHM_DIR + NAME_CAP];
    snprintf(path, sizeof path, SHM_DIR "%s", s->name);
    int rc = unlink(path) < 0 ? -errno : 0;
    /* Gone (by us or by someone else): no longer ours to unlink at exit. */
    if (rc == 0 || rc == -ENOENT)
        reg_del(s->name, s->dev, s->ino);
    return rc;
}

void mp_shm_free(mp_shm_t *s)
{
    if (!s)
        return;
    mp_shm_close(s);
    free(s);
}

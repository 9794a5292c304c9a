/* process.c: Process objects, the registry of live children, the current and
 * parent process, and the exit semantics.
 *
 * Process-local state lives in `S` below: this process's identity, its parent,
 * its live children and its alive pipe (a pipe whose write end only this
 * process holds: children watch the read end, which reaches end-of-file when
 * this process ends however it ends). MT-safe: yes, under S.mu (a leaf lock
 * but for p->mu, which may be held when taking S.mu: order p->mu, then S.mu).
 * Fork-safe: yes: an atfork child handler resets the registry and hands the
 * alive pipe's read end over as the child's parent-alive descriptor. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arena.h"
#include "internal.h"

static struct {
    pthread_mutex_t mu;
    int ready;
    struct mp_process self, parent;
    int has_parent;
    struct mp_process *children; /* started, not yet reaped; each holds a ref */
    _Atomic int counter;         /* numbers the children: Process-N */
    int alive_r, alive_w;        /* this process's alive pipe, -1 until used */
    int parent_alive;            /* the parent's alive pipe (read end) or -1 */
    _Atomic int method;
    int atexit_set;
} S = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .alive_r = -1, .alive_w = -1, .parent_alive = -1,
    .counter = 1, .method = MP_START_FORK,
};

/* copy_str and the integer formatting below avoid snprintf on the start
 * path: vfprintf's large stack frame touches stack pages that fork has just
 * made copy-on-write, and each costs a page fault per child (measured). */
static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

static void fmt_uint(char *buf, unsigned v)
{
    char tmp[16];
    int n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    for (int i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = 0;
}

static void atfork_prepare(void) { pthread_mutex_lock(&S.mu); }
static void atfork_parent(void) { pthread_mutex_unlock(&S.mu); }

/* In every forked child (ours or the program's own fork): no children yet,
 * and the parent's alive pipe becomes our parent-alive descriptor. */
static void atfork_child(void)
{
    pthread_mutex_init(&S.mu, NULL);
    S.children = NULL;
    if (S.alive_w >= 0)
        close(S.alive_w);
    if (S.parent_alive >= 0 && S.parent_alive != S.alive_r)
        close(S.parent_alive);
    S.parent_alive = S.alive_r;
    S.alive_r = S.alive_w = -1;
    /* atexit_set stays: the inherited handler serves the child too. */
}

static void init_self_locked(void)
{
    if (S.ready)
        return;
    struct mp_process *me = &S.self;
    pthread_mutex_init(&me->mu, NULL);
    me->kind = KIND_SELF;
    me->state = ST_STARTED;
    me->refs = 1;
    me->pidfd = me->statfd = -1;
    strcpy(me->name, "MainProcess");
    me->authkey_len = 32;
    if (getrandom(me->authkey, 32, 0) != 32) {
        /* getrandom cannot fail for 32 bytes once the pool is ready; fall
         * back to a key that is at least unique per process. */
        for (int i = 0; i < 32; i++)
            me->authkey[i] = (unsigned char)(getpid() >> (i % 4 * 8)) ^ (unsigned char)i;
    }
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
    S.ready = 1;
}

static void ensure_init(void)
{
    pthread_mutex_lock(&S.mu);
    init_self_locked();
    pthread_mutex_unlock(&S.mu);
}

void mp__become_child(const char *name, const char *ident, int daemon,
                      const unsigned char *key, size_t keylen,
                      const char *parent_name, pid_t parent_pid,
                      int parent_alive_fd, mp_start_method_t method)
{
    pthread_mutex_lock(&S.mu);
    init_self_locked();
    struct mp_process *me = &S.self, *pa = &S.parent;
    copy_str(me->name, sizeof me->name, name);
    copy_str(me->ident, sizeof me->ident, ident);
    me->daemon = daemon;
    memcpy(me->authkey, key, keylen);
    me->authkey_len = keylen;
    S.counter = 1;
    memset(pa, 0, sizeof *pa);
    pthread_mutex_init(&pa->mu, NULL);
    pa->kind = KIND_PARENT;
    pa->state = ST_STARTED;
    pa->refs = 1;
    pa->pid = parent_pid;
    pa->pidfd = parent_alive_fd;
    pa->statfd = -1;
    copy_str(pa->name, sizeof pa->name, parent_name);
    S.has_parent = 1;
    S.parent_alive = parent_alive_fd;
    S.method = method;
    pthread_mutex_unlock(&S.mu);
}

int mp__alive_read(void)
{
    int rc = 0;
    pthread_mutex_lock(&S.mu);
    if (S.alive_r < 0) {
        int fds[2];
        rc = mp__sys_pipe(fds, O_CLOEXEC);
        if (rc == 0) {
            S.alive_r = fds[0];
            S.alive_w = fds[1];
        }
    }
    if (rc == 0)
        rc = S.alive_r;
    pthread_mutex_unlock(&S.mu);
    return rc;
}

int mp__stdin_devnull(void)
{
    /* As Python's children: stdin is /dev/null, so children never compete
     * with the parent for terminal input. */
    if (mp__conn_holds_fd(0))
        return 0; /* a connection on descriptor 0 stays what it is */
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fd != 0) {
        dup2(fd, 0);
        close(fd);
    } else {
        fcntl(0, F_SETFD, 0);
    }
    return 0;
}

/* ---- start methods ------------------------------------------------------ */

int mp_set_start_method(mp_start_method_t method)
{
    if (method < MP_START_FORK || method > MP_START_FORKSERVER)
        return -EINVAL;
    atomic_store(&S.method, method);
    return 0;
}

mp_start_method_t mp_get_start_method(void)
{
    return (mp_start_method_t)atomic_load(&S.method);
}

static const char *const method_names[] = {NULL, "fork", "spawn", "forkserver"};

const char *mp_start_method_name(mp_start_method_t method)
{
    if (method < MP_START_FORK || method > MP_START_FORKSERVER)
        return NULL;
    return method_names[method];
}

int mp_start_method_parse(const char *name, mp_start_method_t *out)
{
    if (!name || !out)
        return -EINVAL;
    for (int m = MP_START_FORK; m <= MP_START_FORKSERVER; m++) {
        if (strcmp(name, method_names[m]) == 0) {
            *out = (mp_start_method_t)m;
            return 0;
        }
    }
    return -EINVAL;
}

int mp_cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* ---- objects ------------------------------------------------------------ */

static int valid_name(const char *name)
{
    return name && name[0] && strlen(name) <= MP_NAME_MAX;
}

int mp_process_new(mp_process_t **out, mp_target_fn target, const void *arg,
                   size_t arg_len, const mp_process_opts_t *opts)
{
    mp_process_opts_t none = {0};
    if (!opts)
        opts = &none;
    if (!out || !target || (!arg && arg_len) ||
        (opts->name && !valid_name(opts->name)) ||
        (opts->authkey && (opts->authkey_len < 1 || opts->authkey_len > MP_AUTHKEY_MAX)) ||
        (!opts->authkey && opts->authkey_len) ||
        opts->n_pass_fds > MP_PASS_FDS_MAX || (opts->n_pass_fds && !opts->pass_fds) ||
        opts->start_method < MP_START_DEFAULT || opts->start_method > MP_START_FORKSERVER)
        return -EINVAL;
    ensure_init();
    struct mp_process *p = mp__calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    if (arg_len) {
        p->arg = mp__malloc(arg_len);
        if (!p->arg) {
            free(p);
            return -ENOMEM;
        }
        memcpy(p->arg, arg, arg_len);
    }
    pthread_mutex_init(&p->mu, NULL);
    p->refs = 1;
    p->kind = KIND_CHILD;
    p->state = ST_NEW;
    p->owner = getpid();
    p->target = target;
    p->arg_len = arg_len;
    p->daemon = opts->daemon != 0;
    p->method = opts->start_method;
    p->pidfd = p->statfd = -1;
    for (size_t i = 0; i < opts->n_pass_fds; i++) {
        if (opts->pass_fds[i] < 0) {
            free(p->arg);
            free(p);
            return -EINVAL;
        }
        p->pass_fds[i] = opts->pass_fds[i];
    }
    p->n_pass_fds = opts->n_pass_fds;
    int n = atomic_fetch_add(&S.counter, 1);
    pthread_mutex_lock(&S.mu);
    /* Identities nest: a child of Process-1 numbers its own children 1:1,
     * 1:2... A chain too deep for the buffer keeps its last levels' prefix. */
    char num[16];
    fmt_uint(num, (unsigned)n);
    size_t il = strlen(S.self.ident);
    if (il && il + 1 + strlen(num) < sizeof p->ident) {
        memcpy(p->ident, S.self.ident, il);
        p->ident[il] = ':';
        strcpy(p->ident + il + 1, num);
    } else {
        strcpy(p->ident, num);
    }
    if (opts->authkey) {
        memcpy(p->authkey, opts->authkey, opts->authkey_len);
        p->authkey_len = opts->authkey_len;
    } else {
        memcpy(p->authkey, S.self.authkey, S.self.authkey_len);
        p->authkey_len = S.self.authkey_len;
    }
    pthread_mutex_unlock(&S.mu);
    if (opts->name) {
        copy_str(p->name, sizeof p->name, opts->name);
    } else {
        memcpy(p->name, "Process-", 8);
        copy_str(p->name + 8, sizeof p->name - 8, p->ident);
    }
    *out = p;
    return 0;
}

static void release_fds(struct mp_process *p)
{
    if (p->kind != KIND_CHILD)
        return;
    if (p->pidfd >= 0)
        close(p->pidfd);
    if (p->statfd >= 0)
        close(p->statfd);
    p->pidfd = p->statfd = -1;
}

static void unref(struct mp_process *p)
{
    if (atomic_fetch_sub(&p->refs, 1) != 1)
        return;
    release_fds(p);
    pthread_mutex_destroy(&p->mu);
    free(p->arg);
    free(p);
}

void mp_process_free(mp_process_t *p)
{
    if (p && p->kind == KIND_CHILD)
        unref(p);
}

/* Calls on a child handle are only valid in the process that made it (as in
 * Python: "can only join a child process"). */
static int check_child(const struct mp_process *p)
{
    if (!p)
        return -EINVAL;
    if (p->kind == KIND_CHILD && p->owner != getpid())
        return -EINVAL;
    return 0;
}

/* ---- the registry ------------------------------------------------------- */

static void registry_add(struct mp_process *p)
{
    atomic_fetch_add(&p->refs, 1);
    pthread_mutex_lock(&S.mu);
    p->prev = NULL;
    p->next = S.children;
    if (S.children)
        S.children->prev = p;
    S.children = p;
    pthread_mutex_unlock(&S.mu);
}

static void registry_remove(struct mp_process *p)
{
    pthread_mutex_lock(&S.mu);
    if (p->prev)
        p->prev->next = p->next;
    else if (S.children == p)
        S.children = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->prev = p->next = NULL;
    pthread_mutex_unlock(&S.mu);
}

/* reap_locked: with p->mu held and p started, collect its exit status if it
 * has exited. Returns 1 if done, 0 if still running. */
static int reap_locked(struct mp_process *p)
{
    if (p->state != ST_STARTED)
        return 1;
    int code = 0;
    if (p->statfd >= 0) { /* forkserver: the server sends the status */
        if (mp__wait_readable(p->statfd, 0) < 0)
            return 0;
        int32_t st;
        ssize_t r;
        do
            r = read(p->statfd, &st, sizeof st);
        while (r < 0 && errno == EINTR);
        code = r == (ssize_t)sizeof st ? st : 255;
    } else {
        int r = mp__pidfd_reap(p->pidfd, &code);
        if (r == 0)
            return 0;
        if (r < 0) /* ECHILD: someone else reaped it (SIGCHLD ignored) */
            code = 255;
    }
    p->exitcode = code;
    p->state = ST_DONE;
    return 1;
}

/* After reap_locked said done: drop the registry's reference (outside p->mu
 * would be nicer, but the registry never holds the last user reference while
 * the caller holds its own). */
static void reaped(struct mp_process *p)
{
    registry_remove(p);
    unref(p);
}

/* poll_reap: reap p without blocking. Returns 1 if it has exited. */
static int poll_reap(struct mp_process *p)
{
    pthread_mutex_lock(&p->mu);
    int was = p->state == ST_STARTED;
    int done = reap_locked(p);
    pthread_mutex_unlock(&p->mu);
    if (was && done)
        reaped(p);
    return done;
}

/* Takes a snapshot of the live children, each with a reference. */
static int snapshot(struct mp_process ***out)
{
    pthread_mutex_lock(&S.mu);
    int n = 0;
    if (!S.children) { /* the common case in a child: touch no heap */
        pthread_mutex_unlock(&S.mu);
        *out = NULL;
        return 0;
    }
    for (struct mp_process *c = S.children; c; c = c->next)
        n++;
    struct mp_process **v = malloc(sizeof *v * (size_t)(n ? n : 1));
    if (!v) {
        pthread_mutex_unlock(&S.mu);
        return -ENOMEM;
    }
    n = 0;
    for (struct mp_process *c = S.children; c; c = c->next) {
        atomic_fetch_add(&c->refs, 1);
        v[n++] = c;
    }
    pthread_mutex_unlock(&S.mu);
    *out = v;
    return n;
}

static void cleanup_finished(void)
{
    struct mp_process **v;
    int n = snapshot(&v);
    if (n <= 0)
        return;
    for (int i = 0; i < n; i++) {
        poll_reap(v[i]);
        unref(v[i]);
    }
    free(v);
}

int mp_active_children(mp_process_t **out, size_t cap)
{
    if (!out && cap)
        return -EINVAL;
    struct mp_process **v;
    int n = snapshot(&v);
    if (n < 0)
        return n;
    int alive = 0;
    for (int i = 0; i < n; i++) {
        if (!poll_reap(v[i])) {
            if ((size_t)alive < cap) {
                out[alive] = v[i];
                v[i] = NULL; /* the snapshot's reference goes to the caller */
            }
            alive++;
        }
        if (v[i])
            unref(v[i]);
    }
    free(v);
    return alive;
}

/* ---- exit semantics ----------------------------------------------------- */

/* As Python's _exit_function: terminate the daemonic children, then join
 * every child. Firmer than Python: a daemon that ignores SIGTERM is killed
 * after a grace period instead of hanging the exit. */
static void shutdown_children(void)
{
    struct mp_process **v;
    int n = snapshot(&v);
    if (n <= 0)
        return;
    for (int i = 0; i < n; i++)
        if (v[i]->daemon)
            mp_process_terminate(v[i]);
    for (int i = 0; i < n; i++) {
        if (v[i]->daemon && mp_process_join(v[i], 2.0) == -ETIMEDOUT)
            mp_process_kill(v[i]);
        mp_process_join(v[i], MP_FOREVER);
        unref(v[i]);
    }
    free(v);
}

/* As Python: first the non-daemonic threads (threading._shutdown), then the
 * children (multiprocessing's _exit_function). */
static void exit_handler(void)
{
    mp__threads_shutdown();
    shutdown_children();
    mp__forkserver_stop();
    fflush(NULL);
}

void mp__exit_register(void)
{
    pthread_mutex_lock(&S.mu);
    int need = !S.atexit_set;
    S.atexit_set = 1;
    pthread_mutex_unlock(&S.mu);
    if (need)
        atexit(exit_handler);
}

_Noreturn void mp__child_exit(int code)
{
    mp__threads_shutdown();
    shutdown_children();
    mp__forkserver_stop();
    fflush(NULL);
    _exit(code & 0xff);
}

/* ---- start -------------------------------------------------------------- */

/* As Python's start: flush stdout and stderr (only when they hold output, to
 * leave their pages untouched otherwise). Other streams the caller flushes
 * before start, as in Python; the child flushes all its streams at exit. */
static void flush_std_streams(void)
{
    if (__fpending(stdout))
        fflush(stdout);
    if (__fpending(stderr))
        fflush(stderr);
}

static int start_fork(struct mp_process *p)
{
    sigset_t old;
    int alive = mp__alive_read();
    if (alive < 0)
        return alive;
    mp__signals_block_all(&old);
    pid_t pid = mp__sys_fork();
    if (pid == 0) {
        /* The atfork handler already made the parent's alive pipe ours. */
        mp__signals_restore(&old);
        char pname[MP_NAME_MAX + 1];
        copy_str(pname, sizeof pname, S.self.name);
        mp__become_child(p->name, p->ident, p->daemon, p->authkey, p->authkey_len,
                         pname, getppid(), alive, mp_get_start_method());
        if (p->daemon && mp__die_with_parent(alive) < 0)
            _exit(255);
        mp__stdin_devnull();
        mp__child_exit(p->target(p->arg));
    }
    mp__signals_restore(&old);
    if (pid < 0)
        return pid;
    int pidfd = mp__pidfd_open(pid);
    if (pidfd < 0) {
        /* We cannot watch it: do not leave it behind. */
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return pidfd;
    }
    p->pid = pid;
    p->pidfd = pidfd;
    return 0;
}

int mp_process_start(mp_process_t *p)
{
    int rc = check_child(p);
    if (rc < 0)
        return rc;
    if (p->kind != KIND_CHILD)
        return MP_ESTARTED;
    ensure_init();
    if (S.self.daemon)
        return MP_EDAEMON;
    cleanup_finished(); /* as Python's start(): reap what has finished */
    pthread_mutex_lock(&p->mu);
    if (p->state == ST_CLOSED) {
        rc = MP_ECLOSED;
        goto out;
    }
    if (p->state != ST_NEW) {
        rc = MP_ESTARTED;
        goto out;
    }
    mp__exit_register();
    /* Flush what the parent buffered, so the child cannot print it again. */
    flush_std_streams();
    mp_start_method_t m = p->method ? p->method : mp_get_start_method();
    switch (m) {
    case MP_START_SPAWN: rc = mp__start_spawn(p); break;
    case MP_START_FORKSERVER: rc = mp__start_forkserver(p); break;
    default: rc = start_fork(p); break;
    }
    if (rc == 0) {
        p->state = ST_STARTED;
        registry_add(p);
    }
out:
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int mp_process_run(mp_process_t *p)
{
    if (!p || !p->target)
        return -EINVAL;
    return p->target(p->arg);
}

/* ---- join, poll, signals, close ----------------------------------------- */

static int sentinel_of(const struct mp_process *p)
{
    return p->statfd >= 0 ? p->statfd : p->pidfd;
}

int mp_process_join(mp_process_t *p, double timeout)
{
    mp__deadline_t d;
    int rc = check_child(p);
    if (rc < 0)
        return rc;
    if (p->kind != KIND_CHILD || mp__deadline(timeout, &d) < 0)
        return -EINVAL;
    pthread_mutex_lock(&p->mu);
    int state = p->state, fd = sentinel_of(p);
    pthread_mutex_unlock(&p->mu);
    if (state == ST_NEW)
        return MP_ENOTSTARTED;
    if (state == ST_CLOSED)
        return MP_ECLOSED;
    if (state == ST_DONE)
        return 0;
    for (;;) {
        rc = mp__wait_readable(fd, d);
        if (rc == -ETIMEDOUT)
            return rc;
        if (poll_reap(p))
            return 0;
        /* Readable but not yet reapable cannot last; wait against the same
         * deadline rather than spin. */
        if (rc < 0)
            return rc;
        if (mp__deadline_ms(d) == 0)
            return -ETIMEDOUT;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

int mp_process_is_alive(mp_process_t *p)
{
    int rc = check_child(p);
    if (rc < 0)
        return rc;
    if (p->kind == KIND_SELF)
        return 1;
    if (p->kind == KIND_PARENT)
        return p->pidfd >= 0 ? mp__wait_readable(p->pidfd, 0) == -ETIMEDOUT : 0;
    pthread_mutex_lock(&p->mu);
    int state = p->state;
    pthread_mutex_unlock(&p->mu);
    if (state == ST_CLOSED)
        return MP_ECLOSED;
    if (state != ST_STARTED)
        return 0;
    return !poll_reap(p);
}

static int send_signal(struct mp_process *p, int sig)
{
    int rc = check_child(p);
    if (rc < 0)
        return rc;
    if (p->kind != KIND_CHILD)
        return -EINVAL;
    pthread_mutex_lock(&p->mu);
    if (p->state == ST_NEW)
        rc = MP_ENOTSTARTED;
    else if (p->state == ST_CLOSED)
        rc = MP_ECLOSED;
    else if (p->state == ST_STARTED)
        rc = mp__pidfd_signal(p->pidfd, sig);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int mp_process_terminate(mp_process_t *p) { return send_signal(p, SIGTERM); }
int mp_process_kill(mp_process_t *p) { return send_signal(p, SIGKILL); }

int mp_process_close(mp_process_t *p)
{
    int rc = check_child(p);
    if (rc < 0)
        return rc;
    if (p->kind != KIND_CHILD)
        return -EINVAL;
    if (p->state == ST_STARTED && !poll_reap(p))
        return MP_ERUNNING;
    pthread_mutex_lock(&p->mu);
    release_fds(p);
    p->state = ST_CLOSED;
    pthread_mutex_unlock(&p->mu);
    return 0;
}

/* ---- attributes --------------------------------------------------------- */

const char *mp_process_name(const mp_process_t *p)
{
    return p ? p->name : NULL;
}

int mp_process_set_name(mp_process_t *p, const char *name)
{
    if (!p || !valid_name(name))
        return -EINVAL;
    pthread_mutex_lock(&p->mu);
    copy_str(p->name, sizeof p->name, name);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

pid_t mp_process_pid(const mp_process_t *p)
{
    if (!p)
        return 0;
    return p->kind == KIND_SELF ? getpid() : p->pid;
}

int mp_process_exitcode(mp_process_t *p, int *code)
{
    int rc = check_child(p);
    if (rc < 0 || !code)
        return -EINVAL;
    if (p->kind != KIND_CHILD)
        return MP_ERUNNING;
    if (p->state == ST_NEW)
        return MP_ENOTSTARTED;
    if (p->state == ST_CLOSED)
        return MP_ECLOSED;
    if (p->state == ST_STARTED && !poll_reap(p))
        return MP_ERUNNING;
    pthread_mutex_lock(&p->mu);
    *code = p->exitcode;
    pthread_mutex_unlock(&p->mu);
    return 0;
}

int mp_process_daemon(const mp_process_t *p)
{
    return p ? p->daemon : -EINVAL;
}

int mp_process_set_daemon(mp_process_t *p, int daemon)
{
    int rc = check_child(p);
    if (rc < 0)
        return rc;
    if (p->kind != KIND_CHILD)
        return MP_ESTARTED;
    pthread_mutex_lock(&p->mu);
    if (p->state != ST_NEW)
        rc = p->state == ST_CLOSED ? MP_ECLOSED : MP_ESTARTED;
    else
        p->daemon = daemon != 0;
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int mp_process_sentinel(const mp_process_t *p)
{
    if (!p)
        return -EINVAL;
    if (p->kind == KIND_SELF)
        return -EINVAL;
    if (p->kind == KIND_PARENT)
        return p->pidfd >= 0 ? p->pidfd : -EINVAL;
    if (p->state == ST_NEW)
        return MP_ENOTSTARTED;
    if (p->state == ST_CLOSED)
        return MP_ECLOSED;
    return sentinel_of(p);
}

int mp_process_authkey(const mp_process_t *p, void *buf, size_t cap)
{
    if (!p || (!buf && cap))
        return -EINVAL;
    if (p->kind == KIND_PARENT)
        return -EINVAL;
    memcpy(buf, p->authkey, cap < p->authkey_len ? cap : p->authkey_len);
    return (int)p->authkey_len;
}

int mp_process_set_authkey(mp_process_t *p, const void *key, size_t len)
{
    if (!p || !key || len < 1 || len > MP_AUTHKEY_MAX || p->kind == KIND_PARENT)
        return -EINVAL;
    if (p->kind == KIND_CHILD && p->state != ST_NEW)
        return MP_ESTARTED;
    pthread_mutex_lock(&p->mu);
    memcpy(p->authkey, key, len);
    p->authkey_len = len;
    pthread_mutex_unlock(&p->mu);
    return 0;
}

mp_process_t *mp_current_process(void)
{
    ensure_init();
    return &S.self;
}

mp_process_t *mp_parent_process(void)
{
    ensure_init();
    return S.has_parent ? &S.parent : NULL;
}

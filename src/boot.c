/* boot.c: how spawned and forkserver children come to life.
 *
 * A spawned child is the program itself, re-executed through /proc/self/exe
 * with MPROC_BOOT=<fd> in its environment. The library's constructor sees the
 * variable before main runs, reads the boot record from that descriptor, maps
 * the arena at the parent's address, becomes the process the record describes,
 * runs the target and exits: main never runs in the child, so programs need no
 * `if __name__ == "__main__"` guard. The forkserver process is started the
 * same way with MPROC_FORKSERVER.
 *
 * The target is found again by module and offset: the parent records which
 * loaded object (dl_iterate_phdr name, "" for the executable) holds the
 * function and its offset from that object's load bias; the child adds the
 * offset to the same object's bias in its own address space.
 * MT-safe: yes (no shared state). Fork-safe: yes. */
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <linux/close_range.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arena.h"
#include "internal.h"

#define BOOT_MAGIC 0x6d70626f6f743031ULL /* "mpboot01" */
#define BOOT_MAX ((size_t)1 << 31)       /* argument bytes and all */

extern char **environ;

/* ---- target by module and offset ---------------------------------------- */

struct locate {
    uintptr_t addr;
    const char *name;
    uintptr_t bias;
    int found;
};

static int locate_cb(struct dl_phdr_info *info, size_t size, void *data)
{
    struct locate *l = data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (l->addr >= lo && l->addr < lo + ph->p_memsz) {
            l->name = info->dlpi_name ? info->dlpi_name : "";
            l->bias = info->dlpi_addr;
            l->found = 1;
            return 1;
        }
    }
    return 0;
}

int mp__target_locate(mp_target_fn fn, char *module, size_t cap, uint64_t *off)
{
    struct locate l = {.addr = (uintptr_t)fn};
    dl_iterate_phdr(locate_cb, &l);
    if (!l.found || strlen(l.name) >= cap)
        return -EINVAL;
    strcpy(module, l.name);
    *off = l.addr - l.bias;
    return 0;
}

struct resolve {
    const char *name;
    uintptr_t bias;
    int found;
};

static int resolve_cb(struct dl_phdr_info *info, size_t size, void *data)
{
    struct resolve *r = data;
    const char *n = info->dlpi_name ? info->dlpi_name : "";
    if (strcmp(n, r->name) == 0) {
        r->bias = info->dlpi_addr;
        r->found = 1;
        return 1;
    }
    return 0;
}

mp_target_fn mp__target_resolve(const char *module, uint64_t off)
{
    struct resolve r = {.name = module};
    dl_iterate_phdr(resolve_cb, &r);
    if (!r.found)
        return NULL;
    return (mp_target_fn)(r.bias + (uintptr_t)off);
}

/* ---- the boot record ---------------------------------------------------- */

typedef struct {
    unsigned char *buf;
    size_t len, cap;
    int err;
} wbuf;

static void put(wbuf *w, const void *p, size_t n)
{
    if (w->err)
        return;
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 1024;
        while (cap < w->len + n)
            cap *= 2;
        unsigned char *nb = realloc(w->buf, cap);
        if (!nb) {
            w->err = 1;
            return;
        }
        w->buf = nb;
        w->cap = cap;
    }
    if (n)
        memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void put_u64(wbuf *w, uint64_t v) { put(w, &v, sizeof v); }
static void put_bytes(wbuf *w, const void *p, size_t n)
{
    put_u64(w, n);
    put(w, p, n);
}
static void put_str(wbuf *w, const char *s) { put_bytes(w, s, strlen(s)); }

typedef struct {
    const unsigned char *p;
    size_t left;
    int err;
} rbuf;

static uint64_t get_u64(rbuf *r)
{
    uint64_t v = 0;
    if (r->left < sizeof v) {
        r->err = 1;
        return 0;
    }
    memcpy(&v, r->p, sizeof v);
    r->p += sizeof v;
    r->left -= sizeof v;
    return v;
}

/* get_bytes returns a pointer into the record for n bytes, checked. */
static const void *get_bytes(rbuf *r, size_t *n, size_t max)
{
    uint64_t len = get_u64(r);
    if (r->err || len > r->left || len > max) {
        r->err = 1;
        return NULL;
    }
    const void *p = r->p;
    r->p += len;
    r->left -= len;
    *n = (size_t)len;
    return p;
}

static void get_str(rbuf *r, char *dst, size_t cap)
{
    size_t n = 0;
    const void *p = get_bytes(r, &n, cap - 1);
    if (!p) {
        dst[0] = 0;
        return;
    }
    memcpy(dst, p, n);
    dst[n] = 0;
}

void *mp__boot_encode(const mp__boot_t *b, size_t *len)
{
    wbuf w = {0};
    put_u64(&w, BOOT_MAGIC);
    put_str(&w, b->module);
    put_u64(&w, b->offset);
    put_bytes(&w, b->arg, b->arg_len);
    put_str(&w, b->name);
    put_str(&w, b->ident);
    put_str(&w, b->parent_name);
    put_u64(&w, (uint64_t)(int64_t)b->parent_pid);
    put_u64(&w, (uint64_t)b->daemon);
    put_u64(&w, (uint64_t)b->method);
    put_bytes(&w, b->authkey, b->authkey_len);
    put_u64(&w, (uint64_t)(int64_t)b->parent_alive_fd);
    put_u64(&w, (uint64_t)(int64_t)b->arena_fd);
    put_u64(&w, b->arena_base);
    put_u64(&w, b->arena_reserve);
    put_u64(&w, b->nfds);
    for (uint32_t i = 0; i < b->nfds; i++)
        put_u64(&w, (uint64_t)(int64_t)b->fds[i]);
    put_u64(&w, b->conn_hwm);
    put_u64(&w, b->nconns);
    for (uint32_t i = 0; i < b->nconns; i++) {
        put_u64(&w, b->conns[i].slot);
        put_u64(&w, b->conns[i].flags);
        put_u64(&w, (uint64_t)(int64_t)b->conns[i].fd);
        put_u64(&w, (uint64_t)(int64_t)b->conns[i].wfd);
        put_u64(&w, b->conns[i].size);
    }
    if (w.err) {
        free(w.buf);
        return NULL;
    }
    *len = w.len;
    return w.buf;
}

/* Decodes into b; b->arg points into buf (the caller keeps buf alive). */
int mp__boot_decode(const void *buf, size_t len, mp__boot_t *b)
{
    rbuf r = {.p = buf, .left = len};
    size_t n;
    memset(b, 0, sizeof *b);
    if (get_u64(&r) != BOOT_MAGIC)
        return -EINVAL;
    get_str(&r, b->module, sizeof b->module);
    b->offset = get_u64(&r);
    b->arg = (void *)get_bytes(&r, &b->arg_len, BOOT_MAX);
    get_str(&r, b->name, sizeof b->name);
    get_str(&r, b->ident, sizeof b->ident);
    get_str(&r, b->parent_name, sizeof b->parent_name);
    b->parent_pid = (int32_t)get_u64(&r);
    b->daemon = (int32_t)get_u64(&r);
    b->method = (int32_t)get_u64(&r);
    const void *k = get_bytes(&r, &n, MP_AUTHKEY_MAX);
    if (k) {
        memcpy(b->authkey, k, n);
        b->authkey_len = (uint32_t)n;
    }
    b->parent_alive_fd = (int32_t)get_u64(&r);
    b->arena_fd = (int32_t)get_u64(&r);
    b->arena_base = get_u64(&r);
    b->arena_reserve = get_u64(&r);
    b->nfds = (uint32_t)get_u64(&r);
    if (b->nfds > MP__MAX_FDS)
        return -EINVAL;
    for (uint32_t i = 0; i < b->nfds; i++)
        b->fds[i] = (int32_t)get_u64(&r);
    b->conn_hwm = (uint32_t)get_u64(&r);
    b->nconns = (uint32_t)get_u64(&r);
    if (b->nconns > MP__MAX_CONNS)
        return -EINVAL;
    for (uint32_t i = 0; i < b->nconns; i++) {
        b->conns[i].slot = (uint32_t)get_u64(&r);
        b->conns[i].flags = (uint32_t)get_u64(&r);
        b->conns[i].fd = (int32_t)get_u64(&r);
        b->conns[i].wfd = (int32_t)get_u64(&r);
        b->conns[i].size = get_u64(&r);
    }
    if (r.err || r.left)
        return -EINVAL;
    if (b->method < MP_START_FORK || b->method > MP_START_FORKSERVER)
        b->method = MP_START_FORK;
    return 0;
}

int mp__boot_fill(mp__boot_t *b, const struct mp_process *p)
{
    int rc = mp__target_locate(p->target, b->module, sizeof b->module, &b->offset);
    if (rc < 0)
        return rc;
    rc = mp__arena_init();
    if (rc < 0)
        return rc;
    int alive = mp__alive_read();
    if (alive < 0)
        return alive;
    mp_process_t *me = mp_current_process();
    b->arg = p->arg;
    b->arg_len = p->arg_len;
    snprintf(b->name, sizeof b->name, "%s", p->name);
    snprintf(b->ident, sizeof b->ident, "%s", p->ident);
    snprintf(b->parent_name, sizeof b->parent_name, "%s", mp_process_name(me));
    b->parent_pid = getpid();
    b->daemon = p->daemon;
    b->method = mp_get_start_method();
    memcpy(b->authkey, p->authkey, p->authkey_len);
    b->authkey_len = (uint32_t)p->authkey_len;
    b->parent_alive_fd = alive;
    int afd;
    uintptr_t base;
    size_t reserve;
    mp__arena_describe(&afd, &base, &reserve);
    b->arena_fd = afd;
    b->arena_base = base;
    b->arena_reserve = reserve;
    b->nfds = 0;
    for (size_t i = 0; i < p->n_pass_fds; i++) {
        if (fcntl(p->pass_fds[i], F_GETFD) < 0)
            return -EBADF;
        b->fds[b->nfds++] = p->pass_fds[i];
    }
    return mp__conn_export(b);
}

/* ---- I/O helpers -------------------------------------------------------- */

int mp__send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int mp__recv_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len) {
        ssize_t n = recv(fd, p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return MP_EEOF;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ---- the child side ----------------------------------------------------- */

static void set_cloexec(int fd, int on)
{
    int fl = fcntl(fd, F_GETFD);
    if (fl >= 0)
        fcntl(fd, F_SETFD, on ? fl | FD_CLOEXEC : fl & ~FD_CLOEXEC);
}

_Noreturn void mp__child_main(mp__boot_t *b)
{
    if (b->arena_fd >= 0) {
        if (mp__arena_attach(b->arena_fd, (uintptr_t)b->arena_base, b->arena_reserve) < 0)
            _exit(255);
        set_cloexec(b->arena_fd, 1);
    }
    if (b->parent_alive_fd >= 0)
        set_cloexec(b->parent_alive_fd, 1);
    if (mp__conn_import(b) < 0)
        _exit(255);
    mp_target_fn fn = mp__target_resolve(b->module, b->offset);
    if (!fn)
        _exit(255);
    mp__become_child(b->name, b->ident, b->daemon, b->authkey, b->authkey_len,
                     b->parent_name, b->parent_pid, b->parent_alive_fd,
                     (mp_start_method_t)b->method);
    if (b->daemon && mp__die_with_parent(b->parent_alive_fd) < 0)
        _exit(255);
    mp__stdin_devnull();
    mp__child_exit(fn(b->arg));
}

/* Reads "<u64 length><record>" from fd; the record's buffer is leaked on
 * purpose (the argument points into it for the life of the child). */
static _Noreturn void boot_from_fd(int fd)
{
    uint64_t len;
    mp__boot_t *b = malloc(sizeof *b);
    if (!b || mp__recv_all(fd, &len, sizeof len) < 0 || len > BOOT_MAX + 65536)
        _exit(255);
    void *buf = malloc(len ? len : 1);
    if (!buf || mp__recv_all(fd, buf, len) < 0 || mp__boot_decode(buf, len, b) < 0)
        _exit(255);
    close(fd);
    mp__child_main(b);
}

/* A re-executed program's command name is "exe" (from /proc/self/exe): give
 * it the program's name back, so ps and top show what runs. */
static void name_self(const char *name)
{
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    char comm[16];
    size_t n = strlen(base);
    if (n > 15)
        n = 15;
    memcpy(comm, base, n);
    comm[n] = 0;
    prctl(PR_SET_NAME, comm);
}

/* Runs before main in every program linked with mproc. Outside a child being
 * bootstrapped, it only looks at two environment variables. */
__attribute__((constructor)) static void mp__boot_ctor(void)
{
    const char *v = getenv("MPROC_BOOT");
    if (v) {
        int fd = atoi(v);
        struct stat st;
        unsetenv("MPROC_BOOT");
        /* Only a socket handed over by a parent is a boot channel; a stray
         * variable in a normal run is ignored. */
        if (fd > 2 && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)) {
            name_self(program_invocation_name);
            boot_from_fd(fd);
        }
    }
    v = getenv("MPROC_FORKSERVER");
    if (v) {
        char spec[512];
        snprintf(spec, sizeof spec, "%s", v);
        unsetenv("MPROC_FORKSERVER");
        name_self("mp-forkserver");
        mp__forkserver_main(spec);
    }
}

/* ---- spawn -------------------------------------------------------------- */

/* make_env copies environ without our variables, plus `extra`. */
static char **make_env(const char *extra)
{
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **env = malloc(sizeof *env * (n + 2));
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "MPROC_BOOT=", 11) && strncmp(environ[i], "MPROC_FORKSERVER=", 17))
            env[k++] = environ[i];
    env[k++] = (char *)extra;
    env[k] = NULL;
    return env;
}

int mp__exec_self(const char *envvar, const int *keep, int nkeep, pid_t *out)
{
    int ep[2] = {-1, -1}, rc;
    char **env = make_env(envvar);
    char *argv[] = {program_invocation_name, NULL};
    sigset_t old;
    if (!env)
        return -ENOMEM;
    rc = mp__sys_pipe(ep, O_CLOEXEC);
    if (rc < 0)
        goto out;
    mp__signals_block_all(&old);
    pid_t pid = mp__sys_fork();
    if (pid == 0) {
        close(ep[0]);
        /* The child holds its stdio and the kept descriptors, nothing else
         * (descriptors the program opened without O_CLOEXEC included). */
        close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
        for (int i = 0; i < nkeep; i++)
            if (keep[i] >= 0)
                set_cloexec(keep[i], 0);
        mp__signals_reset_for_exec();
        mp__signals_restore(&old);
        int e = mp__fault_hit(MP__SYS_EXEC);
        if (!e) {
            execve("/proc/self/exe", argv, env);
            e = errno;
        }
        ssize_t w = write(ep[1], &e, sizeof e);
        (void)w;
        _exit(127);
    }
    mp__signals_restore(&old);
    close(ep[1]);
    if (pid < 0) {
        rc = pid;
        goto out;
    }
    int e = 0;
    ssize_t r;
    do
        r = read(ep[0], &e, sizeof e);
    while (r < 0 && errno == EINTR);
    if (r == (ssize_t)sizeof e) { /* exec failed: the child is exiting */
        waitpid(pid, NULL, 0);
        rc = -e;
        goto out;
    }
    *out = pid;
    rc = 0;
out:
    if (ep[0] >= 0)
        close(ep[0]);
    free(env);
    return rc;
}

int mp__start_spawn(struct mp_process *p)
{
    int sp[2] = {-1, -1}, rc, pidfd = -1;
    void *blob = NULL;
    size_t len = 0;
    pid_t pid = -1;
    mp__boot_t *b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    rc = mp__boot_fill(b, p);
    if (rc < 0)
        goto out;
    blob = mp__boot_encode(b, &len);
    if (!blob) {
        rc = -ENOMEM;
        goto out;
    }
    rc = mp__sys_socketpair(SOCK_STREAM, sp);
    if (rc < 0)
        goto out;
    char var[64];
    snprintf(var, sizeof var, "MPROC_BOOT=%d", sp[1]);
    int keep[3 + MP__MAX_FDS] = {sp[1], b->arena_fd, b->parent_alive_fd};
    for (uint32_t i = 0; i < b->nfds; i++)
        keep[3 + i] = b->fds[i];
    rc = mp__exec_self(var, keep, 3 + (int)b->nfds, &pid);
    close(sp[1]);
    sp[1] = -1;
    if (rc < 0)
        goto out;
    uint64_t n = len;
    if (mp__send_all(sp[0], &n, sizeof n) < 0 || mp__send_all(sp[0], blob, len) < 0) {
        rc = MP_ESPAWN; /* the child died before reading its record */
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        goto out;
    }
    pidfd = mp__pidfd_open(pid);
    if (pidfd < 0) {
        rc = pidfd;
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        goto out;
    }
    p->pid = pid;
    p->pidfd = pidfd;
    rc = 0;
out:
    if (sp[0] >= 0)
        close(sp[0]);
    free(blob);
    free(b);
    return rc;
}

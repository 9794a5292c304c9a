/* internal.h: what process.c, boot.c and forkserver.c share.
 *
 * A child is described to its bootstrap by a "boot record": everything it
 * must know to become the process its parent asked for (target by module and
 * offset, argument bytes, name, identity, daemon flag, authkey, parent, the
 * descriptors it keeps). Under fork the record is never encoded; under spawn
 * it travels over a socketpair; under forkserver it travels with the
 * descriptors over the server's unix socket. */
#ifndef MP_INTERNAL_H
#define MP_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "mproc.h"
#include "sys/platform.h"

#define MP__IDENT_MAX 128
#define MP__MODULE_MAX 4096
/* Descriptors a bootstrapped child receives: its connections, the passed
 * descriptors and the forkserver's four base ones. The forkserver sends them
 * in batches of MP__SCM_BATCH (the kernel takes at most 253 per message). */
#define MP__MAX_CONNS 4096
#define MP__MAX_FDS (2 * MP__MAX_CONNS + MP_PASS_FDS_MAX + 8)
#define MP__SCM_BATCH 250

enum { KIND_CHILD, KIND_SELF, KIND_PARENT };
enum { ST_NEW, ST_STARTED, ST_DONE, ST_CLOSED };

struct mp_process {
    pthread_mutex_t mu;
    _Atomic int refs;
    int kind, state;
    pid_t owner;            /* the process that made this handle */
    mp_target_fn target;
    void *arg;
    size_t arg_len;
    char name[MP_NAME_MAX + 1];
    char ident[MP__IDENT_MAX]; /* "1:3": the child numbers from the main process */
    int daemon;
    mp_start_method_t method;
    unsigned char authkey[MP_AUTHKEY_MAX];
    size_t authkey_len;
    pid_t pid;
    int pidfd;              /* fork, spawn, forkserver: signals; fork/spawn: sentinel */
    int statfd;             /* forkserver: the exit status arrives here (sentinel) */
    int exitcode;
    int pass_fds[MP_PASS_FDS_MAX];
    size_t n_pass_fds;
    struct mp_process *prev, *next; /* the registry of live children */
};

/* One open connection handed to a bootstrapped child (conn.c). */
typedef struct {
    uint32_t slot, flags;
    int32_t fd, wfd; /* read and write descriptors (the same but for a duplex Pipe) */
    uint64_t size;
} mp__conn_rec_t;

/* The boot record, decoded. Strings are NUL-terminated. */
typedef struct {
    char module[MP__MODULE_MAX];
    uint64_t offset;
    void *arg;
    size_t arg_len;
    char name[MP_NAME_MAX + 1];
    char ident[MP__IDENT_MAX];
    char parent_name[MP_NAME_MAX + 1];
    int32_t parent_pid;
    int32_t daemon;
    int32_t method;         /* the family's default start method */
    unsigned char authkey[MP_AUTHKEY_MAX];
    uint32_t authkey_len;
    int32_t parent_alive_fd;
    int32_t arena_fd;
    uint64_t arena_base, arena_reserve;
    uint32_t nfds;          /* descriptors the child keeps at these numbers */
    int32_t fds[MP__MAX_FDS];
    uint32_t conn_hwm;      /* the parent's connection table high-water mark */
    uint32_t nconns;        /* the connections open in the parent */
    mp__conn_rec_t conns[MP__MAX_CONNS];
} mp__boot_t;

/* boot.c */
MP_HIDDEN int mp__target_locate(mp_target_fn fn, char *module, size_t cap, uint64_t *off);
MP_HIDDEN mp_target_fn mp__target_resolve(const char *module, uint64_t off);
/* mp__boot_encode returns a malloc'd buffer (*len bytes) or NULL. */
MP_HIDDEN void *mp__boot_encode(const mp__boot_t *b, size_t *len);
MP_HIDDEN int mp__boot_decode(const void *buf, size_t len, mp__boot_t *b);
MP_HIDDEN int mp__boot_fill(mp__boot_t *b, const struct mp_process *p);
/* mp__child_main runs a bootstrapped child (spawn or forkserver): become the
 * process b describes, run the target, exit. Never returns. */
MP_HIDDEN _Noreturn void mp__child_main(mp__boot_t *b);
MP_HIDDEN int mp__start_spawn(struct mp_process *p);
/* mp__exec_self forks and re-executes the program with one extra environment
 * variable (NAME=value), keeping the descriptors in keep[] open across exec.
 * Returns 0 and *pid once exec succeeded, or the -errno of fork or exec. */
MP_HIDDEN int mp__exec_self(const char *envvar, const int *keep, int nkeep, pid_t *pid);
MP_HIDDEN int mp__send_all(int fd, const void *buf, size_t len);
MP_HIDDEN int mp__recv_all(int fd, void *buf, size_t len);

/* process.c */
/* mp__become_child sets this process's identity after fork or bootstrap. */
MP_HIDDEN void mp__become_child(const char *name, const char *ident, int daemon,
                                const unsigned char *key, size_t keylen,
                                const char *parent_name, pid_t parent_pid,
                                int parent_alive_fd, mp_start_method_t method);
/* mp__child_exit flushes stdio, runs the exit semantics (terminate daemonic
 * children, join the others) and _exits with code. */
MP_HIDDEN _Noreturn void mp__child_exit(int code);
/* mp__exit_register installs, once per process, the exit handler: wait for
 * non-daemonic threads, terminate daemonic children, join the others. */
MP_HIDDEN void mp__exit_register(void);
/* thread.c: wait for every non-daemonic thread but the caller. */
MP_HIDDEN void mp__threads_shutdown(void);
/* mp__alive_read returns the read end of this process's alive pipe (whose
 * write end only this process holds), creating it on first use. */
MP_HIDDEN int mp__alive_read(void);
MP_HIDDEN int mp__stdin_devnull(void);

/* conn.c */
/* mp__conn_export adds this process's open connections to b (records and
 * descriptors); -E2BIG when they do not fit. */
MP_HIDDEN int mp__conn_export(mp__boot_t *b);
/* mp__conn_holds_fd: 1 if an open connection of this process uses fd. */
MP_HIDDEN int mp__conn_holds_fd(int fd);
/* mp__conn_import rebuilds them in a bootstrapped child at the same slots. */
MP_HIDDEN int mp__conn_import(const mp__boot_t *b);

/* forkserver.c */
MP_HIDDEN int mp__start_forkserver(struct mp_process *p);
MP_HIDDEN _Noreturn void mp__forkserver_main(const char *spec);
/* mp__forkserver_stop stops the server this process started, if any, and
 * reaps it (called at exit). */
MP_HIDDEN void mp__forkserver_stop(void);

#endif

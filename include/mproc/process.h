/* mproc/process.h: processes and start methods (Python's multiprocessing.Process).
 * Included by mproc.h; do not include directly. */
#ifndef MPROC_PROCESS_H
#define MPROC_PROCESS_H

#include <sys/types.h>

/* mp_process_t is a handle on one process: a child this process created, the
 * current process (mp_current_process) or its parent (mp_parent_process).
 * Handles are process-local; the methods of one handle may be called from
 * several threads at once. */
typedef struct mp_process mp_process_t;

/* mp_target_fn is what a child runs: it receives a pointer to its own copy of
 * the argument given to mp_process_new, and its return value (0..255) is the
 * child's exit code. Python: Process(target=...) / Process.run. */
typedef int (*mp_target_fn)(void *arg);

/* mp_start_method_t names how a child is created (Python's start methods).
 * MP_START_DEFAULT means "the program's method" (mp_set_start_method). */
typedef enum {
    MP_START_DEFAULT = 0,
    MP_START_FORK = 1,       /* fork(): the child is a copy of the parent */
    MP_START_SPAWN = 2,      /* fork + exec of the program; only the target runs */
    MP_START_FORKSERVER = 3, /* forked from a clean server process */
} mp_start_method_t;

/* mp_process_opts_t holds Process's keyword arguments; zero means default. */
typedef struct {
    const char *name;            /* NULL: "Process-N" ("Process-N:M" below a child) */
    int daemon;                  /* non-zero: daemonic child */
    mp_start_method_t start_method; /* MP_START_DEFAULT: the program's method */
    const void *authkey;         /* NULL: inherit the current process's key */
    size_t authkey_len;          /* 1..MP_AUTHKEY_MAX when authkey is given */
    const int *pass_fds;         /* descriptors the child keeps at the same numbers */
    size_t n_pass_fds;           /* 0..MP_PASS_FDS_MAX */
} mp_process_opts_t;

/* pass_fds: under fork a child inherits every descriptor anyway; under spawn
 * and forkserver it holds only its stdio, the library's own descriptors and
 * these (Python passes them by pickling a Connection; C passes numbers). A
 * pipe end handed this way can be used in the child by the same number, e.g.
 * given in the target's argument. Descriptors of mproc objects (connections,
 * queues) are passed by the library without being listed here. */
#define MP_PASS_FDS_MAX 32

#define MP_AUTHKEY_MAX 256
#define MP_NAME_MAX 256

/* mp_set_start_method sets the program-wide start method used by every
 * process created with MP_START_DEFAULT. Children inherit it.
 * Returns: 0; -EINVAL for an unknown method or MP_START_DEFAULT.
 * Safe: any thread; Python: multiprocessing.set_start_method(m, force=True). */
MP_API int mp_set_start_method(mp_start_method_t method);

/* mp_get_start_method returns the program-wide start method (MP_START_FORK
 * unless changed). Python: multiprocessing.get_start_method(). */
MP_API mp_start_method_t mp_get_start_method(void);

/* mp_start_method_name returns "fork", "spawn" or "forkserver" (NULL for an
 * unknown value); mp_start_method_parse does the reverse (-EINVAL if unknown). */
MP_API const char *mp_start_method_name(mp_start_method_t method);
MP_API int mp_start_method_parse(const char *name, mp_start_method_t *out);

/* mp_process_new makes a process object that will run target(arg copy).
 * The arg_len bytes at arg are copied now; the child gets its own copy, under
 * every start method (so arg must not hold pointers that only make sense in
 * the parent unless the start method is fork). arg may be NULL if arg_len is 0.
 * Under spawn and forkserver, target must be a function of the program or of
 * a library it loaded at start-up (it is found again by module and offset).
 * Returns: 0 and *out; -EINVAL (NULL out or target, bad opts, name too long,
 *   authkey_len out of range); -ENOMEM.
 * Python: Process(target=, args=, name=, daemon=). */
MP_API int mp_process_new(mp_process_t **out, mp_target_fn target,
                          const void *arg, size_t arg_len,
                          const mp_process_opts_t *opts);

/* mp_process_start starts the child. The parent's stdio buffers are flushed
 * first, so nothing buffered is printed twice.
 * Returns: 0; MP_ESTARTED if started before; MP_ECLOSED after close;
 *   MP_EDAEMON if the current process is a daemon; MP_ESPAWN if a spawn or
 *   forkserver child could not be bootstrapped; -EAGAIN, -ENOMEM or another
 *   -errno from fork/exec/socket calls (nothing is leaked).
 * Safe: any thread. Python: Process.start(). */
MP_API int mp_process_start(mp_process_t *p);

/* mp_process_run runs p's target in the calling process and returns its
 * return value (Python: Process.run()). -EINVAL for NULL. */
MP_API int mp_process_run(mp_process_t *p);

/* mp_process_join waits until p has exited and reaps it.
 * Blocks: at most timeout seconds (MP_FOREVER: no limit, 0: poll).
 * Returns: 0 once p has exited; -ETIMEDOUT if still running at the deadline;
 *   MP_ENOTSTARTED; MP_ECLOSED; -EINVAL (NULL, NaN timeout, p is the current
 *   process or the parent). Python: Process.join(timeout). */
MP_API int mp_process_join(mp_process_t *p, double timeout);

/* mp_process_is_alive returns 1 if p was started and has not exited, 0
 * otherwise (reaping it if it has exited); a negative code for NULL or a
 * closed handle. For mp_parent_process() it tells whether the parent lives.
 * Python: Process.is_alive(). */
MP_API int mp_process_is_alive(mp_process_t *p);

/* mp_process_terminate sends SIGTERM; mp_process_kill sends SIGKILL. Neither
 * waits. Signalling a process that already exited is not an error.
 * Returns: 0; MP_ENOTSTARTED; MP_ECLOSED; -EINVAL.
 * Python: Process.terminate(), Process.kill(). */
MP_API int mp_process_terminate(mp_process_t *p);
MP_API int mp_process_kill(mp_process_t *p);

/* mp_process_close releases p's descriptors once p has exited; after it,
 * every call but the name getter and mp_process_free returns MP_ECLOSED.
 * Returns: 0 (also when already closed or never started); MP_ERUNNING if p
 *   is still running (nothing is released). Python: Process.close(). */
MP_API int mp_process_close(mp_process_t *p);

/* mp_process_free drops the caller's handle. A child still running is not
 * affected: it stays among the active children and is joined (or, if
 * daemonic, terminated) when the program exits. Accepts NULL.
 * The handles of mp_current_process and mp_parent_process are not freed. */
MP_API void mp_process_free(mp_process_t *p);

/* mp_process_name returns p's name ("MainProcess" for the main process); the
 * string lives as long as p or until the next set_name.
 * mp_process_set_name renames p (Python: Process.name = ...).
 * Returns: 0; -EINVAL (NULL, empty or too long). */
MP_API const char *mp_process_name(const mp_process_t *p);
MP_API int mp_process_set_name(mp_process_t *p, const char *name);

/* mp_process_pid returns p's pid, or 0 before start (Python: pid is None). */
MP_API pid_t mp_process_pid(const mp_process_t *p);

/* mp_process_exitcode gives p's exit code once it has exited: the target's
 * return value, or -N when killed by signal N (Python's convention).
 * Returns: 0 and *code; MP_ERUNNING if p is still running; MP_ENOTSTARTED;
 *   -EINVAL. Reaps p if it has exited. Python: Process.exitcode. */
MP_API int mp_process_exitcode(mp_process_t *p, int *code);

/* mp_process_daemon returns 1 if p is daemonic, else 0 (negative on NULL).
 * mp_process_set_daemon sets the flag before start.
 * Returns: 0; MP_ESTARTED after start; -EINVAL. Python: Process.daemon. */
MP_API int mp_process_daemon(const mp_process_t *p);
MP_API int mp_process_set_daemon(mp_process_t *p, int daemon);

/* mp_process_sentinel returns a descriptor that becomes readable when p ends
 * (for poll/select or mp_wait); it belongs to p and is valid until close.
 * Returns: the descriptor; MP_ENOTSTARTED; MP_ECLOSED; -EINVAL.
 * Python: Process.sentinel. */
MP_API int mp_process_sentinel(const mp_process_t *p);

/* mp_process_authkey copies p's authentication key (inherited from its
 * creator; the main process gets 32 random bytes) into buf.
 * Returns: the key length (copying at most cap bytes); -EINVAL.
 * mp_process_set_authkey replaces it (1..MP_AUTHKEY_MAX bytes): 0 or
 * -EINVAL; MP_ESTARTED for a started child. Python: Process.authkey. */
MP_API int mp_process_authkey(const mp_process_t *p, void *buf, size_t cap);
MP_API int mp_process_set_authkey(mp_process_t *p, const void *key, size_t len);

/* mp_current_process returns the handle of the calling process, never NULL;
 * it lives as long as the process. Python: multiprocessing.current_process(). */
MP_API mp_process_t *mp_current_process(void);

/* mp_parent_process returns the handle of the process that started this one,
 * or NULL in the main process. Only name, pid and is_alive are meaningful.
 * Python: multiprocessing.parent_process(). */
MP_API mp_process_t *mp_parent_process(void);

/* mp_active_children reaps every child that has exited and reports the live
 * ones: it stores up to cap new handles in out (release each with
 * mp_process_free) and returns how many children are alive (which may be more
 * than cap). out may be NULL when cap is 0. Returns a negative code on
 * -EINVAL. Python: multiprocessing.active_children(). */
MP_API int mp_active_children(mp_process_t **out, size_t cap);

/* mp_cpu_count returns the number of CPUs this process may run on (>= 1).
 * Python: os.process_cpu_count() / multiprocessing.cpu_count(). */
MP_API int mp_cpu_count(void);

#endif

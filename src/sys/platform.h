/* platform.h: the contract of mproc's platform layer (src/sys/).
 *
 * Everything Linux-specific that the components need sits behind these
 * prototypes: futexes, the memfd-backed arena mapping, pidfds, signal
 * helpers, deadlines, and the system-call table used for fault injection.
 * Components never call these system calls directly, so tests can make any
 * of them fail (see mp__fault_*). All functions return 0 or a negative errno
 * value unless their comment says otherwise; none of them prints or aborts.
 * MT-safe: yes. Fork-safe: yes (no process-local state but the fault table,
 * which children inherit on purpose). */
#ifndef MP_SYS_PLATFORM_H
#define MP_SYS_PLATFORM_H

#include <errno.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#define MP_HIDDEN __attribute__((visibility("hidden")))

/* ---- deadlines ---------------------------------------------------------- */

/* mp__deadline_t is one absolute CLOCK_MONOTONIC instant in nanoseconds, or
 * MP__NEVER. A public timeout becomes one deadline at entry; every retry
 * (EINTR, spurious wake-up, partial read) waits against the same deadline. */
typedef int64_t mp__deadline_t;
#define MP__NEVER INT64_MAX

/* mp__now_ns returns CLOCK_MONOTONIC in nanoseconds. */
MP_HIDDEN int64_t mp__now_ns(void);

/* mp__deadline turns a timeout in seconds into a deadline: negative means
 * MP__NEVER, 0 means "now". Returns -EINVAL for NaN. */
MP_HIDDEN int mp__deadline(double timeout, mp__deadline_t *out);

/* mp__deadline_ms returns the milliseconds left before d for poll(): -1 for
 * MP__NEVER, 0 once passed, rounded up otherwise. */
MP_HIDDEN int mp__deadline_ms(mp__deadline_t d);

/* mp__deadline_ts fills an absolute timespec for d (for FUTEX_WAIT_BITSET and
 * pthread_*_clocklock); returns NULL for MP__NEVER, else ts. */
MP_HIDDEN struct timespec *mp__deadline_ts(mp__deadline_t d, struct timespec *ts);

/* ---- futex -------------------------------------------------------------- */

/* mp__futex_wait sleeps while *addr == val, until woken or deadline d.
 * The futex is process-shared (no FUTEX_PRIVATE_FLAG): addr may be in the
 * arena. Returns 0 when woken or when *addr != val (-EAGAIN is folded into
 * 0: the caller re-checks its condition), -ETIMEDOUT at the deadline,
 * -EINTR if a signal interrupted it (the caller retries with the same d). */
MP_HIDDEN int mp__futex_wait(const uint32_t *addr, uint32_t val, mp__deadline_t d);

/* mp__futex_wake wakes at most n waiters on addr (INT32_MAX: all). Returns
 * the number woken (>= 0). */
MP_HIDDEN int mp__futex_wake(const uint32_t *addr, int n);

/* mp__cpu_relax tells the CPU the caller is spinning (x86 PAUSE). */
static inline void mp__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* ---- robust futex locks ---------------------------------------------------- */

/* mp__robust_t is an owned lock word in shared memory that the kernel frees
 * when its owner dies. The word holds the owner's TID, FUTEX_WAITERS and
 * FUTEX_OWNER_DIED (the kernel's robust-futex protocol); the entry is linked
 * into the calling thread's robust list (the one glibc registers with
 * set_robust_list, whose layout and futex offset we match and check at run
 * time), with the list_op_pending slot covering the moments between the word
 * and the list. Must be in memory mapped MAP_SHARED; 8-byte aligned; zero is
 * unlocked. */
typedef struct {
    uint32_t word;
    uint32_t sleepers; /* lockers inside futex_wait: unlock wakes only if any */
    uint32_t spare[4];
    void *prev; /* robust-list links, at glibc's offsets from the word */
    void *next;
} mp__robust_t;

/* mp__robust_lock takes m for the calling thread.
 * Returns 0; -EOWNERDEAD (taken; the previous owner died holding it);
 * -ETIMEDOUT at deadline d; -EDEADLK if the calling thread holds it;
 * -ENOTSUP if this thread has no robust list we can share. */
MP_HIDDEN int mp__robust_lock(mp__robust_t *m, mp__deadline_t d);

/* mp__robust_unlock releases m. Returns 0, or -EPERM if the caller does not
 * hold it. */
MP_HIDDEN int mp__robust_unlock(mp__robust_t *m);

/* The fast paths below are inline so that Lock acquire and release cost
 * one call each (lock_uncontended, one thread: 52M pairs/s with the
 * nested calls, 89-93M inline, against 84M-124M for a process-shared pthread
 * mutex in the same runs). They use the
 * per-thread state robust.c keeps: the TID and the thread's robust-list
 * head, both NULL/0 until robust.c has looked them up (and the TID again
 * after fork), in which case the callers fall back to the functions above,
 * which also handle every contended case. */
struct mp__robust_head {
    void *list;
    long futex_offset;
    void *list_op_pending;
};
/* initial-exec: the library is position-independent, and the default TLS
 * model would make every lock and unlock call __tls_get_addr. */
#define MP__TLS __thread __attribute__((tls_model("initial-exec")))
extern MP__TLS MP_HIDDEN pid_t mp__tl_tid;
extern MP__TLS MP_HIDDEN struct mp__robust_head *mp__tl_head;

#define MP__ROBUST_ENTRY(m) ((void *)&(m)->next)
/* A node is the {prev, next} pair; links point at the `next` field of the
 * neighbour (or at the head's `list` field, which plays that role). */
#define MP__ROBUST_NODE(link) ((void **)(((uintptr_t)(link) & ~(uintptr_t)1) - sizeof(void *)))

static inline void mp__robust_enqueue(struct mp__robust_head *h, mp__robust_t *m)
{
    void **first_node = MP__ROBUST_NODE(h->list);
    first_node[0] = MP__ROBUST_ENTRY(m); /* first->prev = &m->next */
    m->next = h->list;
    m->prev = (void *)&h->list;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    h->list = MP__ROBUST_ENTRY(m);
}

/* m's own links are left as they are: the kernel reaches entries only
 * through the list, and the next enqueue overwrites them. */
static inline void mp__robust_dequeue(mp__robust_t *m)
{
    void **next_node = MP__ROBUST_NODE(m->next);
    void **prev_node = MP__ROBUST_NODE(m->prev);
    next_node[0] = m->prev;
    prev_node[1] = m->next;
}

/* mp__robust_trylock_fast takes a free, never-contended m and returns 1, or
 * returns 0 for the caller to go to mp__robust_lock. */
static inline int mp__robust_trylock_fast(mp__robust_t *m)
{
    struct mp__robust_head *h = mp__tl_head;
    uint32_t tid = (uint32_t)mp__tl_tid, v = 0;
    if (__builtin_expect(!h || !tid, 0))
        return 0;
    /* list_op_pending names m until the next list operation: see robust.c. */
    h->list_op_pending = MP__ROBUST_ENTRY(m);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    if (!__atomic_compare_exchange_n(&m->word, &v, tid, 0, __ATOMIC_ACQUIRE,
                                     __ATOMIC_RELAXED))
        return 0;
    mp__robust_enqueue(h, m);
    return 1;
}

/* mp__robust_unlock_inline is mp__robust_unlock with its common case
 * inline. */
MP_HIDDEN int mp__robust_unlock_wake(mp__robust_t *m, struct mp__robust_head *h);
static inline int mp__robust_unlock_inline(mp__robust_t *m)
{
    struct mp__robust_head *h = mp__tl_head;
    uint32_t tid = (uint32_t)mp__tl_tid;
    if (__builtin_expect(!h || !tid, 0))
        return mp__robust_unlock(m);
    if ((__atomic_load_n(&m->word, __ATOMIC_RELAXED) & FUTEX_TID_MASK) != tid)
        return -EPERM;
    h->list_op_pending = MP__ROBUST_ENTRY(m);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    mp__robust_dequeue(m);
    uint32_t v = __atomic_exchange_n(&m->word, 0, __ATOMIC_RELEASE);
    if (__builtin_expect((v & FUTEX_WAITERS) != 0, 0))
        return mp__robust_unlock_wake(m, h);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    h->list_op_pending = NULL;
    return 0;
}

/* mp__robust_owned: 1 if the calling thread holds m; mp__robust_held: 1 if
 * anyone does. */
MP_HIDDEN int mp__robust_owned(const mp__robust_t *m);
MP_HIDDEN int mp__robust_held(const mp__robust_t *m);

/* mp__self_pid returns getpid(), cached (an atfork handler resets it in a
 * fork child), for checks made on every call. */
MP_HIDDEN pid_t mp__self_pid(void);

/* mp__gettid returns the calling thread's kernel id (cached per thread). */
MP_HIDDEN pid_t mp__gettid(void);

/* mp__tid_alive tells whether a thread with that kernel id exists (0 when it
 * certainly does not; a reused id reads as alive). */
MP_HIDDEN int mp__tid_alive(pid_t tid);

/* ---- processes ---------------------------------------------------------- */

/* mp__pidfd_open returns a pidfd (close-on-exec) for pid, or -errno. */
MP_HIDDEN int mp__pidfd_open(pid_t pid);

/* mp__pidfd_signal sends sig through pidfd; a process that already exited
 * (ESRCH) is not an error. */
MP_HIDDEN int mp__pidfd_signal(int pidfd, int sig);

/* mp__pidfd_reap reaps the child behind pidfd without blocking: returns 1 and
 * *exitcode (Python's convention: status, or -signal) if it has exited, 0 if
 * it still runs, or -errno. */
MP_HIDDEN int mp__pidfd_reap(int pidfd, int *exitcode);

/* mp__wait_readable waits until fd is readable (or hung up) or d passes.
 * Returns 0 when readable, -ETIMEDOUT, or -errno. EINTR is retried. */
MP_HIDDEN int mp__wait_readable(int fd, mp__deadline_t d);

/* ---- signals ------------------------------------------------------------ */

/* mp__signals_block_all blocks every signal in the calling thread and saves
 * the old mask in *old (used around fork). mp__signals_restore puts it back. */
MP_HIDDEN void mp__signals_block_all(sigset_t *old);
MP_HIDDEN void mp__signals_restore(const sigset_t *old);

/* mp__signals_reset_for_exec sets every caught signal back to SIG_DFL (in a
 * child between fork and exec; async-signal-safe). */
MP_HIDDEN void mp__signals_reset_for_exec(void);

/* mp__die_with_parent arranges for the calling process to be SIGKILLed when
 * the pipe behind alive_fd (whose write end only the parent holds) reaches
 * end-of-file, i.e. when the parent process ends, however it ends. Unlike
 * PR_SET_PDEATHSIG it follows the parent process, not the parent thread.
 * Returns 0, or -errno; kills the caller at once if the parent is already gone. */
MP_HIDDEN int mp__die_with_parent(int alive_fd);

/* ---- the system-call table (fault injection) ----------------------------- */

/* Every system call or allocation whose failure a component must survive goes
 * through mp__sys. Tests arm a fault with mp__fault_arm: the nth call (1 =
 * next) of that entry fails with -err (err > 0), once. */
typedef enum {
    MP__SYS_FORK, MP__SYS_MMAP, MP__SYS_MEMFD, MP__SYS_FTRUNCATE,
    MP__SYS_PIPE, MP__SYS_SOCKETPAIR, MP__SYS_PIDFD_OPEN, MP__SYS_MALLOC,
    MP__SYS_EXEC, MP__SYS_SOCKET,
    MP__SYS_COUNT
} mp__sys_id;

MP_HIDDEN void mp__fault_arm(mp__sys_id id, int nth, int err);
MP_HIDDEN void mp__fault_clear(void);
/* mp__fault_hit returns the error to inject for this call of id (> 0), or 0. */
MP_HIDDEN int mp__fault_hit(mp__sys_id id);

MP_HIDDEN pid_t mp__sys_fork(void);
MP_HIDDEN void *mp__sys_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
MP_HIDDEN int mp__sys_memfd(const char *name, unsigned flags);
MP_HIDDEN int mp__sys_ftruncate(int fd, off_t len);
MP_HIDDEN int mp__sys_pipe(int fds[2], int flags);
MP_HIDDEN int mp__sys_socketpair(int type, int fds[2]);
MP_HIDDEN int mp__sys_socket(int domain, int type, int proto);
MP_HIDDEN void *mp__malloc(size_t n);
MP_HIDDEN void *mp__calloc(size_t n, size_t size);

/* The mp__sys_* calls return -errno (or MAP_FAILED with *errno set for mmap,
 * NULL for the allocators) exactly as the wrapped call would fail. */

#endif

/* mp_test.h: the test harness of mproc: one process per case, a deadline per
 * case, and a leak check after every case (children, descriptors, /dev/shm).
 *
 * How a test program runs (mp_test_main):
 *
 *   runner (main of the test program; a child subreaper; never uses mproc)
 *     └─ case child (one fork per case; runs the case body under cmocka)
 *          └─ whatever the case starts
 *
 * - The runner forks one case child per case and waits for it until the
 *   case's deadline; on timeout it SIGKILLs every process below it and the
 *   case fails. While the case runs, the runner reaps orphans that die (as
 *   init would). After the case child exits, any process left below the
 *   runner fails the case and is killed; only the library's own long-lived
 *   helpers recorded at the warm-up (e.g. the forkserver) get a grace period
 *   to exit by themselves, and fail the case if they do not.
 * - A new entry in /dev/shm after the case fails it (and is removed).
 * - In the case child: the start method is set (argv[1] for per-method
 *   programs), the warm-up runs (it makes the library create what it keeps
 *   for the life of a process: the arena memfd, the forkserver and its
 *   connection), then the descriptors and the processes below the runner are
 *   recorded. After the body they are compared exactly: a new descriptor, a
 *   descriptor the case closed, a new live process or a zombie fails the case.
 *   Since the warm-up already made the long-lived objects, one descriptor
 *   leaked by one call is caught.
 * - Cases flagged MP_TEST_COLD skip the warm-up: the case child stays a fresh
 *   process that has not used the library (the body runs library code only in
 *   raw-forked sub-children, each of which starts cold). Exact checks apply.
 * - Targets of processes started by a case must not call cmocka's assertions
 *   (under fork they run in a copy of the case's stack); they report through
 *   their exit code or shared memory.
 *
 * Command line: test_x [fork|spawn|forkserver] [case-filter]
 *   The filter is a substring of case names (also MP_TEST_FILTER).
 *   MP_TEST_TIMEOUT_SCALE multiplies every deadline (sanitizer builds: x3 by
 *   default). test_x --helper NAME ARGS... runs a helper program (the test
 *   binary re-executed by name, as libuv does).
 * Exit code: 0 all passed, 1 something failed, 77 every case was skipped. */
#ifndef MP_TEST_H
#define MP_TEST_H

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <cmocka.h>

#include "mproc.h"

/* A case body: a cmocka test function. */
typedef void (*mp_test_fn)(void **state);

/* A warm-up: returns 0, or a negative code (the case then fails). */
typedef int (*mp_test_warmup_fn)(void);

#define MP_TEST_COLD 1u /* no warm-up; the case child never uses the library */

typedef struct {
    const char *name;
    mp_test_fn fn;
    double timeout;           /* seconds before scaling; 0: 60 s */
    unsigned flags;           /* MP_TEST_COLD */
    mp_test_warmup_fn warmup; /* NULL: the program's warm-up */
} mp_test_case_t;

#define MP_TEST(fn) {#fn, fn, 0, 0, NULL}
#define MP_TEST_T(fn, secs) {#fn, fn, (secs), 0, NULL}
#define MP_TEST_COLD_T(fn, secs) {#fn, fn, (secs), MP_TEST_COLD, NULL}
#define MP_TEST_W(fn, secs, warm) {#fn, fn, (secs), 0, (warm)}

/* A helper program: the test binary run as `test_x --helper NAME ARGS...`;
 * fn gets argv from NAME on and its return value is main's. */
typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
} mp_test_helper_t;

typedef struct {
    int per_method;              /* argv[1] is the start method (required) */
    mp_test_warmup_fn warmup;    /* default warm-up (NULL: none) */
    const mp_test_helper_t *helpers;
    size_t nhelpers;
} mp_test_config_t;

/* mp_test_main runs the program; call it as `return mp_test_main(...)` from
 * main. Under spawn and forkserver a child never runs main (the library runs
 * only the target), so nothing here runs in a started child. */
int mp_test_main(int argc, char **argv, const mp_test_case_t *cases,
                 size_t ncases, const mp_test_config_t *cfg);

/* ---- facilities for cases --------------------------------------------- */

/* mp_test_method is the start method of this run (MP_START_FORK when the
 * program is not per-method); mp_test_method_name names it. */
mp_start_method_t mp_test_method(void);
const char *mp_test_method_name(void);

/* mp_test_scale multiplies timeouts (MP_TEST_TIMEOUT_SCALE, x3 under ASan). */
double mp_test_scale(void);

/* MP_TEST_LONG is the generous bound of any wait that should end quickly:
 * reaching it means the behaviour is broken, not that the machine is slow. */
#define MP_TEST_LONG (30.0 * mp_test_scale())

/* mp_test_skip marks the case skipped (exit 77 if every case is) and leaves
 * the body. */
#define mp_test_skip(...) \
    do { mp_test__skip(__VA_ARGS__); skip(); } while (0)
void mp_test__skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* mp_test_fail prints a message and fails the case. */
#define mp_test_fail(...) \
    do { print_error(__VA_ARGS__); fail(); } while (0)

/* mp_assert_int(actual, expected) fails the case unless the two integers
 * are equal, printing both in decimal with the name of any error code.
 * mp_assert_str does the same for strings (NULL allowed). */
#define mp_assert_int(a, b)                                                  \
    do {                                                                     \
        long long a_ = (long long)(a), b_ = (long long)(b);                  \
        if (a_ != b_) {                                                      \
            print_error("%s is %lld%s, expected %s = %lld%s\n", #a, a_,      \
                        mp_test_codename(a_), #b, b_, mp_test_codename(b_)); \
            _fail(__FILE__, __LINE__);                                       \
        }                                                                    \
    } while (0)
#define mp_assert_str(a, b)                                                  \
    do {                                                                     \
        const char *a_ = (a), *b_ = (b);                                     \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) {                             \
            print_error("%s is \"%s\", expected %s = \"%s\"\n", #a,         \
                        a_ ? a_ : "(null)", #b, b_ ? b_ : "(null)");         \
            _fail(__FILE__, __LINE__);                                       \
        }                                                                    \
    } while (0)

/* mp_test_codename returns " (name)" for values that look like error codes
 * (-4095..-1), "" otherwise. */
const char *mp_test_codename(long long v);

/* mp_test_now returns CLOCK_MONOTONIC in seconds. */
double mp_test_now(void);

/* Descriptor snapshots. kind is readlink(/proc/self/fd/N) with a trailing
 * ":[inode]" removed ("pipe", "socket", "anon_inode:[pidfd]", "/memfd:x"). */
#define MP_TEST_MAXFD 1024
typedef struct {
    int n, overflow;
    int fd[MP_TEST_MAXFD];
    char kind[MP_TEST_MAXFD][48];
} mp_test_fds_t;

/* mp_test_fds_snap records the open descriptors of the calling process. */
void mp_test_fds_snap(mp_test_fds_t *s);

/* mp_test_fds_diff compares two snapshots by number and kind; it writes a
 * description of every difference into msg (if not NULL) and returns how
 * many there are. */
int mp_test_fds_diff(const mp_test_fds_t *before, const mp_test_fds_t *after,
                     char *msg, size_t cap);

/* mp_test_fds_kinds writes the sorted kinds of the descriptors of after that
 * are not in before (by number), joined by ';', into out. Used to compare
 * two fresh processes, where numbers may differ but kinds must not. */
void mp_test_fds_kinds(const mp_test_fds_t *before, const mp_test_fds_t *after,
                       char *out, size_t cap);

/* A process seen in /proc. */
typedef struct {
    pid_t pid, ppid;
    char state; /* R S D Z T ... */
    char comm[24];
} mp_test_proc_t;

/* mp_test_procs lists the descendants of root (root excluded), at most cap
 * of them into out; returns how many there are. */
int mp_test_procs(pid_t root, mp_test_proc_t *out, int cap);

/* mp_test_zombies counts zombies among the descendants of root. */
int mp_test_zombies(pid_t root);

/* mp_test_proc_state returns the state letter of pid ('Z' for a zombie), or
 * 0 if there is no such process. If ppid is not NULL it gets the parent. */
char mp_test_proc_state(pid_t pid, pid_t *ppid);

/* mp_test_pidfd opens a pidfd for pid (-errno on failure). */
int mp_test_pidfd(pid_t pid);

/* mp_test_fd_readable polls fd for input for at most timeout seconds:
 * 1 readable (or hung up), 0 not within the timeout, -errno. */
int mp_test_fd_readable(int fd, double timeout);

/* mp_test_wait_gone waits until pid has exited (zombie or reaped): 0, or
 * -ETIMEDOUT. A pid that does not exist counts as gone. */
int mp_test_wait_gone(pid_t pid, double timeout);

/* mp_test_waitpid waits for the child pid with a deadline and reaps it:
 * returns 0 and the raw status, or -ETIMEDOUT (the child is left alone). */
int mp_test_waitpid(pid_t pid, int *status, double timeout);

/* mp_test_read_full reads exactly len bytes from fd before the deadline:
 * returns len, fewer at EOF, or -errno / -ETIMEDOUT. */
ssize_t mp_test_read_full(int fd, void *buf, size_t len, double timeout);

/* mp_test_self_exe is the path of the test program ("/proc/self/exe" read
 * once at start-up). */
const char *mp_test_self_exe(void);


/* ---- words in shared memory, for parties to meet without sleep guesses ---
 * A word lives in memory every party maps (the arena, or MAP_SHARED); the
 * writers wake every futex waiter on it. */

/* mp_test_word_inc adds 1 to *w; mp_test_word_store sets it; both wake the
 * waiters. mp_test_word_get reads it. */
void mp_test_word_inc(uint32_t *w);
void mp_test_word_store(uint32_t *w, uint32_t v);
uint32_t mp_test_word_get(const uint32_t *w);

/* mp_test_word_wait waits until *w >= atleast: 0, -ETIMEDOUT, or -EINVAL
 * for a NaN timeout. */
int mp_test_word_wait(uint32_t *w, uint32_t atleast, double timeout);


/* ---- parties: a target run in a thread or in a child process -------------
 * A party runs a target (int fn(void *arg), as for mp_process_new) either in
 * a raw pthread (so a test does not depend on mproc's Thread) or in a child
 * process (mp_process_new and mp_process_start, no options). Either way the
 * target gets its own copy of the argument: the child through
 * mp_process_new, the thread in the party's inline buffer. A target never
 * calls cmocka (see above); it reports through its return value and shared
 * memory. Call these from the case's own thread. */

/* The largest argument a party takes (the thread's copy is inline). */
#define MP_PARTY_ARGMAX 256

typedef struct {
    int proc;        /* 1: a child process (p), 0: a thread (th) */
    mp_process_t *p; /* the child, until mp_party_join */
    pthread_t th;
    mp_target_fn fn;
    int ret;         /* the thread's return value (INT_MIN until it returns) */
    union {
        max_align_t align_;
        unsigned char b[MP_PARTY_ARGMAX];
    } arg;           /* the thread's copy of the argument */
} mp_party_t;

/* mp_party_start runs fn(a copy of the len bytes at arg) in a new thread
 * (proc 0) or child process (proc 1); len is at most MP_PARTY_ARGMAX. It
 * fails the case if the party cannot be started. y must stay where it is
 * until mp_party_join. */
void mp_party_start(mp_party_t *y, int proc, mp_target_fn fn, const void *arg,
                    size_t len);

/* mp_party_join waits (MP_TEST_LONG) for the party and returns its return
 * value (a process: its exit code, -N if killed by signal N; its handle is
 * freed). A party that does not end in time fails the case. */
int mp_party_join(mp_party_t *y);

/* mp_party_kill SIGKILLs a process party and joins it (the join must give
 * -SIGKILL, or the case fails). */
void mp_party_kill(mp_party_t *y);

/* mp_test_process_join waits (MP_TEST_LONG) for the started child p, frees
 * its handle and returns its exit code (-N if killed by signal N). A child
 * that does not end in time fails the case. */
int mp_test_process_join(mp_process_t *p);

/* ---- small helpers for the component tests ------------------------------- */

/* mp_test_tid returns the calling thread's kernel id. */
pid_t mp_test_tid(void);

/* mp_test_sleep sleeps s seconds (for pacing and polling only, never to
 * order events). */
void mp_test_sleep(double s);

/* mp_test_wait_word waits (MP_TEST_LONG) until the shared word *w reaches n;
 * fails the case otherwise, naming what. */
void mp_test_wait_word(uint32_t *w, uint32_t n, const char *what);

/* mp_test_wait_asleep waits (MP_TEST_LONG) until task tid (a thread of ours
 * or of a child) sleeps in its blocking call; fails the case if it ends or
 * never sleeps. */
void mp_test_wait_asleep(pid_t tid, const char *what);

/* mp_test_check_timed fails the case unless a wait that timed out took
 * about want seconds (not less; generously more on a loaded machine);
 * mp_test_check_quick unless a call that must not wait took little time;
 * mp_test_check_prompt unless a waiter returned (at) soon after the event
 * that should wake it (since), rather than by its own timeout. */
void mp_test_check_timed(double el, double want, const char *what);
void mp_test_check_quick(double el, const char *what);
void mp_test_check_prompt(double at, double since, const char *what);

/* mp_test_warm_child starts one child that returns 0 at once and joins it
 * (60 s), so that a warm-up has made what the start method needs (the
 * forkserver and its connection, the spawn bootstrap). Returns 0 or the
 * failing call's code. */
int mp_test_warm_child(void);

/* ---- payloads: bytes derived from a key ----------------------------------- */

/* mp_test_mix64 is a 64-bit hash of x (splitmix64's finaliser): a seed for
 * payload keys and for pseudo-random choices in cases. */
uint64_t mp_test_mix64(uint64_t x);

/* mp_test_pat_fill writes the len bytes of key's payload into buf: every
 * byte depends on the key and on its offset. Safe in targets (no cmocka). */
void mp_test_pat_fill(void *buf, size_t len, uint64_t key);

/* mp_test_pat_bad returns the offset of the first byte of buf[0..len) that
 * is not key's payload (as mp_test_pat_fill writes it), or -1 when all are.
 * Safe in targets (no cmocka). */
long mp_test_pat_bad(const void *buf, size_t len, uint64_t key);

/* mp_test_shm_prefix returns the prefix ("mpt_<pid>_") that every /dev/shm
 * name a test makes must start with: the harness checks those names for
 * leaks after each case (and only those, so concurrent runs do not meet). */
const char *mp_test_shm_prefix(void);

/* mp_test_find_python writes the path of the first python3 on PATH into
 * out and returns 1, or returns 0 when there is none (callers skip). */
int mp_test_find_python(char *out, size_t cap);

#endif

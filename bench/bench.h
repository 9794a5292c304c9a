/* bench.h: the benchmark harness's contract between the runner (mp_bench.c)
 * and the files that define cases (bench_<component>.c).
 *
 * A case measures one thing (a rate or a time) for mproc and for one or more
 * peers (Python's multiprocessing, raw POSIX, ...). The runner calls round
 * functions alternately (mproc, peer 1, peer 2, mproc, peer 1, ...), takes
 * the median of each implementation's rounds and prints one line per peer:
 *
 *   bench <case>[@cpuN] mproc=<value> <peer>=<value> <unit> speedup=<x>
 *
 * To add a case:
 *  1. write its C round functions (mproc and raw peers) in
 *     bench_<component>.c, using the helpers of bench.c (mpb_rate_loop does
 *     "repeat an operation for the round's budget"), and declare them below;
 *  2. write its Python peer as bench/py/<script>.py: it takes --seconds S,
 *     measures one round of about S seconds (not counting interpreter
 *     start-up or warm-up) and prints the value in the case's unit;
 *  3. add a row to the case table in mp_bench.c (PY_PEER for Python peers)
 *     and the new .c file to bench/CMakeLists.txt.
 *
 * Each (case, placement) runs in a fresh process, so library state (the
 * arena, a forkserver) never leaks from one case into the next.
 * MT-safe: no (the benchmark is single-threaded). */
#ifndef MPB_BENCH_H
#define MPB_BENCH_H

#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>

#include "mproc.h"

#define MPB_MAX_PEERS 6

/* mpb_kind_t says which way is better: a rate (higher) or a time (lower). */
typedef enum { MPB_RATE, MPB_TIME } mpb_kind_t;

typedef struct mpb_case mpb_case_t;
typedef struct mpb_impl mpb_impl_t;

/* mpb_round_t describes one round for a round function. */
typedef struct {
    const mpb_case_t *c;   /* the case */
    const mpb_impl_t *impl; /* the implementation being measured */
    double seconds;        /* time budget: a round should take about this long */
    int warmup;            /* 1: untimed warm-up round, value is discarded */
} mpb_round_t;

/* mpb_round_fn measures one round and stores the value (in the case's unit)
 * in *value. Returns 0, or a negative code (a -errno value or an mproc
 * code) which the runner reports with mp_strerror. */
typedef int (*mpb_round_fn)(const mpb_round_t *r, double *value);

/* mpb_impl is one implementation of a case: mproc or a peer. */
struct mpb_impl {
    const char *name;      /* "mproc", "python", "raw", "zmq", ... */
    mpb_round_fn round;
    /* For mpb_python_round: the script (relative to bench/py/) and its
     * arguments; the runner appends --seconds S. */
    const char *py[8];
    int no_warmup;         /* 1: skip the untimed warm-up round */
};

/* mpb_case is one row of the case table. */
struct mpb_case {
    const char *name;      /* "process_fork"; CASES=<prefix> selects by it */
    const char *unit;      /* one word: "procs/s", "us", "MB/s" */
    mpb_kind_t kind;
    const void *param;     /* case-specific data for the round functions */
    mpb_impl_t mproc;
    mpb_impl_t peers[MPB_MAX_PEERS]; /* ends at the first NULL name */
    int rounds_x;          /* rounds are multiplied by this (0: by 1) */
};

/* mpb_now returns CLOCK_MONOTONIC in seconds. */
double mpb_now(void);

/* mpb_op_fn performs one operation of a rate loop. Returns 0 or a negative
 * code, which ends the loop. */
typedef int (*mpb_op_fn)(void *state);

/* mpb_rate_loop repeats op until the round's budget has passed and at least
 * min_ops operations were done, and stores operations per second in *rate.
 * A warm-up round does at most a few operations. Returns 0 or op's code. */
int mpb_rate_loop(const mpb_round_t *r, mpb_op_fn op, void *state,
                  long min_ops, double *rate);

/* mpb_python_round runs r->impl->py as `python3 bench/py/<script> <args>
 * --seconds S` and parses the single number it prints. The interpreter is
 * $MP_BENCH_PYTHON or python3; the directory is $MP_BENCH_PYDIR or the
 * source tree's bench/py. Returns 0, -ECHILD if the script failed, -EPROTO
 * if it printed no number, or the -errno of spawning it. */
int mpb_python_round(const mpb_round_t *r, double *value);

/* mpb_child_start starts a worker process that runs fn(arg): with
 * mp_process_new(mp, fn, arg, len) and the fork start method when use_mproc
 * (*mp is the started process), else with fork() (*pid is the child, which
 * calls fn on its fork copy of arg and _exits with its return value; stdio
 * is flushed first). On failure *mp is NULL and *pid 0. Returns 0 or a
 * negative code (an mproc code or -errno). */
int mpb_child_start(int use_mproc, mp_target_fn fn, const void *arg,
                    size_t len, mp_process_t **mp, pid_t *pid);

/* mpb_child_t is a worker process started with mpb_child_start: mp (mproc)
 * or pid (fork()) is set, the other is NULL / 0; joined says it was reaped.
 * Zero-initialised it holds no process. */
typedef struct {
    mp_process_t *mp;
    pid_t pid;
    int joined;
} mpb_child_t;

/* mpb_child_join waits for c until deadline (an mpb_now time): with
 * mp_process_join, or for a fork()ed child with mpb_wait_pid. Returns 0 if
 * it exited with 0 (or c holds no process or was joined already), -ECHILD
 * if it exited otherwise, -ETIMEDOUT, or another negative code. */
int mpb_child_join(mpb_child_t *c, double deadline);

/* mpb_child_kill kills c with SIGKILL (mp_process_kill) if it was not
 * joined, reaps it, frees its mp_process_t and leaves c holding no
 * process. */
void mpb_child_kill(mpb_child_t *c);

/* mpb_wait_pid waits for the fork()ed child pid until deadline (an mpb_now
 * time) with a pidfd and poll, so the parent does not wake during a round
 * (every 1 ms without a pidfd). Returns 0 with its wait status in *status,
 * -ETIMEDOUT, or -errno. */
int mpb_wait_pid(pid_t pid, double deadline, int *status);

/* mpb_wait_ready waits until *ready reaches n (workers at the starting line
 * of a round, in MAP_SHARED memory), for at most 30 s, sleeping 20 us
 * between looks. Returns 0, *failed if a worker stored a code there, or
 * -ETIMEDOUT. */
int mpb_wait_ready(_Atomic int *ready, _Atomic int *failed, int n);

/* mpb_sleep sleeps s seconds (resuming after EINTR). */
void mpb_sleep(double s);

/* The raw peers' framing over a pipe or a stream socket: a 4-byte length
 * (host order) just before the payload. MPB_END is what a read returns at
 * end of file before a message. */
#define MPB_END 1

/* mpb_write_all writes len bytes of buf to fd, looping on partial writes
 * and EINTR. Returns 0 or -errno. */
int mpb_write_all(int fd, const void *buf, size_t len);

/* mpb_read_exact reads exactly len bytes into buf, looping on partial reads
 * and EINTR. Returns 0, MPB_END at end of file before the first byte,
 * -EPROTO at end of file after it, or -errno. */
int mpb_read_exact(int fd, void *buf, size_t len);

/* mpb_raw_send writes the 4-byte length and msg's len bytes with one
 * write(2) (more only after a partial write); the length is stored in the
 * 4 bytes just before msg, which must be writable. Returns 0 or -errno. */
int mpb_raw_send(int fd, void *msg, size_t len);

/* mpb_raw_recv reads one message of at most cap bytes: exactly 4 bytes of
 * length, then exactly that many bytes into buf (two reads when nothing is
 * partial); *len is the length. Returns 0, MPB_END at end of file before a
 * message, -EMSGSIZE if it is longer than cap, -EPROTO at end of file
 * inside one, or -errno. */
int mpb_raw_recv(int fd, void *buf, size_t cap, size_t *len);

/* The process_* cases (bench_process.c); param points to an int holding
 * the mp_start_method_t. */
int mpb_process_mproc_round(const mpb_round_t *r, double *value);
int mpb_process_raw_fork_round(const mpb_round_t *r, double *value);
int mpb_process_raw_spawn_round(const mpb_round_t *r, double *value);

/* The sync cases (bench_sync.c): lock_uncontended, lock_contended,
 * event_pingpong, barrier_rounds; param is unused. */
int mpb_lock_uncontended_mproc_round(const mpb_round_t *r, double *value);
int mpb_lock_uncontended_raw_round(const mpb_round_t *r, double *value);
int mpb_lock_uncontended_pshared_round(const mpb_round_t *r, double *value);
int mpb_lock_contended_mproc_round(const mpb_round_t *r, double *value);
int mpb_lock_contended_raw_round(const mpb_round_t *r, double *value);
int mpb_event_pingpong_mproc_round(const mpb_round_t *r, double *value);
int mpb_event_pingpong_handoff_round(const mpb_round_t *r, double *value);
int mpb_barrier_rounds_mproc_round(const mpb_round_t *r, double *value);

/* The queue cases (bench_queue.c): queue_64b, queue_4k, queue_1m,
 * queue_64b_2p2c, simplequeue_64b, joinable_64b; param points to an
 * mpb_queue_param_t. Unit: messages per second. */
typedef enum { MPB_Q_QUEUE, MPB_Q_SIMPLE, MPB_Q_JOINABLE } mpb_qkind_t;

typedef struct {
    mpb_qkind_t kind;
    size_t size;          /* bytes per message, at least 32 */
    int producers, consumers; /* 1 or 2 each (raw, mq, zmq: 1 and 1) */
    size_t maxsize;       /* the mproc queue's maxsize; 0: unbounded */
} mpb_queue_param_t;

int mpb_queue_mproc_round(const mpb_round_t *r, double *value);
int mpb_queue_raw_round(const mpb_round_t *r, double *value);
int mpb_queue_mq_round(const mpb_round_t *r, double *value);
#ifdef MPB_HAVE_ZMQ
int mpb_queue_zmq_round(const mpb_round_t *r, double *value);
#endif

/* The connection cases (bench_conn.c): pipe_64b and pipe_1m (one way,
 * producer -> consumer; param points to an mpb_conn_param_t), pipe_rtt and
 * listener_rtt (round trips in microseconds; param is unused). */
typedef struct {
    size_t size;          /* bytes per message, at least 32 */
    int mbps;             /* 1: the value is MB/s (10^6 bytes), else msgs/s */
} mpb_conn_param_t;

int mpb_pipe_stream_mproc_round(const mpb_round_t *r, double *value);
int mpb_pipe_stream_raw_round(const mpb_round_t *r, double *value);
int mpb_pipe_rtt_mproc_round(const mpb_round_t *r, double *value);
int mpb_pipe_rtt_raw_round(const mpb_round_t *r, double *value);
int mpb_listener_rtt_mproc_round(const mpb_round_t *r, double *value);

/* The shared-data cases (bench_shared.c): value_incr (ops/s), array_sum
 * (elems/s), shm_attach (cycles/s); param is unused. */
int mpb_value_incr_mproc_round(const mpb_round_t *r, double *value);
int mpb_array_sum_mproc_round(const mpb_round_t *r, double *value);
int mpb_shm_attach_mproc_round(const mpb_round_t *r, double *value);
int mpb_shm_attach_raw_round(const mpb_round_t *r, double *value);

/* bench_pool.c */
int mpb_pool_map_tiny_mproc_round(const mpb_round_t *r, double *value);
int mpb_pool_apply_async_mproc_round(const mpb_round_t *r, double *value);
int mpb_pool_apply_rtt_mproc_round(const mpb_round_t *r, double *value);
int mpb_pool_map_sleep_mproc_round(const mpb_round_t *r, double *value);

/* The manager cases (bench_manager.c): manager_dict (d[k] = i, then d[k]),
 * manager_queue (put + get), manager_lock (acquire + release) from a child
 * process; ops/s, one op being the pair of calls. param is unused. */
int mpb_manager_dict_mproc_round(const mpb_round_t *r, double *value);
int mpb_manager_queue_mproc_round(const mpb_round_t *r, double *value);
int mpb_manager_lock_mproc_round(const mpb_round_t *r, double *value);

/* mpb_vfault reports a worker's check failure on stderr ("mp_bench: who:
 * message (code name)") and keeps the first code in *failed; returns code. */
int mpb_vfault(_Atomic int *failed, const char *who, int code, const char *fmt,
               va_list ap);

#endif

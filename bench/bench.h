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

#endif

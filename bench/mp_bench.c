/* mp_bench.c: the benchmark runner and its case table.
 *
 *   mp_bench [-l] [-v] [-r ROUNDS] [-s SECONDS] [-t TIMEOUT] [-c CSV] [PREFIX]
 *
 * runs every case whose name starts with PREFIX (all when empty) twice:
 * pinned to one CPU (the line says <case>@cpuN) and unpinned (<case>). Each
 * (case, placement) runs in a fresh copy of this program (`--one CASE --cpu
 * N`), started in its own process group with the placement already set, so
 * its children and Python peers inherit the affinity and no library state
 * carries over between cases. Within a case the rounds alternate between
 * mproc and each peer (-r rounds each, times the case's rounds_x where a
 * case needs more to settle); the medians are printed as
 *
 *   bench <case> mproc=<value> <peer>=<value> <unit> speedup=<x>
 *
 * and appended to the CSV file (case,placement,impl,value,unit,speedup).
 * speedup is mproc/peer for rates and peer/mproc for times: above 1 means
 * mproc wins. Exit status: 0 when every round of every case succeeded, 1 if
 * some failed (the others still run), 2 on bad usage.
 *
 * Environment: MP_BENCH_ROUNDS, MP_BENCH_SECONDS (defaults for -r, -s),
 * MP_BENCH_PYTHON (the interpreter), MP_BENCH_PYDIR (the peers' scripts).
 * MT-safe: no. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mproc.h"
#include "bench.h"

#define MAX_ROUNDS 99
#define MAX_IMPLS (1 + MPB_MAX_PEERS)

extern char **environ;

/* ---- the case table ------------------------------------------------------ */

#define PY_PEER(...) {.name = "python", .round = mpb_python_round, \
                      .no_warmup = 1, .py = {__VA_ARGS__, NULL}}

static const mpb_case_t cases[] = {
    {
        .name = "process_fork", .unit = "procs/s", .kind = MPB_RATE,
        .param = &(const int){MP_START_FORK},
        .mproc = {.name = "mproc", .round = mpb_process_mproc_round},
        .peers = {
            PY_PEER("process.py", "--method", "fork"),
            {.name = "raw", .round = mpb_process_raw_fork_round},
        },
    },
    {
        .name = "process_spawn", .unit = "procs/s", .kind = MPB_RATE,
        .param = &(const int){MP_START_SPAWN},
        .mproc = {.name = "mproc", .round = mpb_process_mproc_round},
        .peers = {
            PY_PEER("process.py", "--method", "spawn"),
            {.name = "raw", .round = mpb_process_raw_spawn_round},
        },
    },
    {
        .name = "process_forkserver", .unit = "procs/s", .kind = MPB_RATE,
        .param = &(const int){MP_START_FORKSERVER},
        .mproc = {.name = "mproc", .round = mpb_process_mproc_round},
        .peers = {
            PY_PEER("process.py", "--method", "forkserver"),
            {.name = "raw", .round = mpb_process_raw_fork_round},
        },
    },
    {
        .name = "lock_uncontended", .unit = "ops/s", .kind = MPB_RATE,
        .mproc = {.name = "mproc", .round = mpb_lock_uncontended_mproc_round},
        .peers = {
            PY_PEER("sync.py", "--case", "lock_uncontended"),
            {.name = "raw", .round = mpb_lock_uncontended_raw_round},
            {.name = "pshared", .round = mpb_lock_uncontended_pshared_round},
        },
    },
    {
        .name = "lock_contended", .unit = "ops/s", .kind = MPB_RATE,
        .mproc = {.name = "mproc", .round = mpb_lock_contended_mproc_round},
        .peers = {
            PY_PEER("sync.py", "--case", "lock_contended"),
            {.name = "raw", .round = mpb_lock_contended_raw_round},
        },
    },
    {
        .name = "event_pingpong", .unit = "trips/s", .kind = MPB_RATE,
        .mproc = {.name = "mproc", .round = mpb_event_pingpong_mproc_round},
        .peers = {
            PY_PEER("sync.py", "--case", "event_pingpong"),
            {.name = "handoff", .round = mpb_event_pingpong_handoff_round},
        },
    },
    {
        .name = "barrier_rounds", .unit = "rounds/s", .kind = MPB_RATE,
        .mproc = {.name = "mproc", .round = mpb_barrier_rounds_mproc_round},
        .peers = {
            PY_PEER("sync.py", "--case", "barrier_rounds"),
        },
    },
    /* The queue cases: see bench_queue.c; messages/s only (one unit per
     * case: MB/s is messages/s x the size). */
    {
        .name = "queue_64b", .unit = "msgs/s", .kind = MPB_RATE,
        .param = &(const mpb_queue_param_t){MPB_Q_QUEUE, 64, 1, 1, 0},
        .mproc = {.name = "mproc", .round = mpb_queue_mproc_round},
        .peers = {
            PY_PEER("queue.py", "--size", "64"),
            {.name = "raw", .round = mpb_queue_raw_round},
            {.name = "mq", .round = mpb_queue_mq_round},
#ifdef MPB_HAVE_ZMQ
            {.name = "zmq", .round = mpb_queue_zmq_round},
#endif
        },
    },
    {
        .name = "queue_4k", .unit = "msgs/s", .kind = MPB_RATE,
        .param = &(const mpb_queue_param_t){MPB_Q_QUEUE, 4096, 1, 1, 0},
        .mproc = {.name = "mproc", .round = mpb_queue_mproc_round},
        .peers = {
            PY_PEER("queue.py", "--size", "4096"),
            {.name = "raw", .round = mpb_queue_raw_round},
        },
    },
    {
        .name = "queue_1m", .unit = "msgs/s", .kind = MPB_RATE,
        .param = &(const mpb_queue_param_t){MPB_Q_QUEUE, 1 << 20, 1, 1, 0},
        .mproc = {.name = "mproc", .round = mpb_queue_mproc_round},
        .peers = {
            PY_PEER("queue.py", "--size", "1048576"),
            {.name = "raw", .round = mpb_queue_raw_round},
        },
    },
    {
        .name = "queue_64b_2p2c", .unit = "msgs/s", .kind = MPB_RATE,
        .param = &(const mpb_queue_param_t){MPB_Q_QUEUE, 64, 2, 2, 0},
        .mproc = {.name = "mproc", .round = mpb_queue_mproc_round},
        .peers = {
            PY_PEER("queue.py", "--size", "64", "--procs", "2"),
        },
    },
    {
        .name = "simplequeue_64b", .unit = "msgs/s", .kind = MPB_RATE,
        .param = &(const mpb_queue_param_t){MPB_Q_SIMPLE, 64, 1, 1, 0},
        .mproc = {.name = "mproc", .round = mpb_queue_mproc_round},
        .peers = {
            PY_PEER("queue.py", "--kind", "simple", "--size", "64"),
        },
    },
    {
        .name = "joinable_64b", .unit = "msgs/s", .kind = MPB_RATE,
        .param = &(const mpb_queue_param_t){MPB_Q_JOINABLE, 64, 1, 1, 0},
        .mproc = {.name = "mproc", .round = mpb_queue_mproc_round},
        .peers = {
            PY_PEER("queue.py", "--kind", "joinable", "--size", "64"),
        },
    },
    /* The connection cases: see bench_conn.c. */
    {
        /* mproc and raw make the same system calls here, so the ratio sits
         * at 1.0, and rounds differ by 10-15% on a small machine: three
         * times the rounds keep the medians' ratio from wandering. */
        .name = "pipe_64b", .unit = "msgs/s", .kind = MPB_RATE,
        .param = &(const mpb_conn_param_t){64, 0}, .rounds_x = 3,
        .mproc = {.name = "mproc", .round = mpb_pipe_stream_mproc_round},
        .peers = {
            PY_PEER("conn.py", "--case", "stream", "--size", "64"),
            {.name = "raw", .round = mpb_pipe_stream_raw_round},
        },
    },
    {
        .name = "pipe_rtt", .unit = "us", .kind = MPB_TIME,
        .mproc = {.name = "mproc", .round = mpb_pipe_rtt_mproc_round},
        .peers = {
            PY_PEER("conn.py", "--case", "pipe_rtt"),
            {.name = "raw", .round = mpb_pipe_rtt_raw_round},
        },
    },
    {
        .name = "pipe_1m", .unit = "MB/s", .kind = MPB_RATE,
        .param = &(const mpb_conn_param_t){1048576, 1},
        .mproc = {.name = "mproc", .round = mpb_pipe_stream_mproc_round},
        .peers = {
            PY_PEER("conn.py", "--case", "stream", "--size", "1048576",
                    "--mbps"),
            {.name = "raw", .round = mpb_pipe_stream_raw_round},
        },
    },
    {
        .name = "listener_rtt", .unit = "us", .kind = MPB_TIME,
        .mproc = {.name = "mproc", .round = mpb_listener_rtt_mproc_round},
        .peers = {
            PY_PEER("conn.py", "--case", "listener_rtt"),
        },
    },
    /* The shared-data cases: see bench_shared.c. */
    {
        .name = "value_incr", .unit = "ops/s", .kind = MPB_RATE,
        .mproc = {.name = "mproc", .round = mpb_value_incr_mproc_round},
        .peers = {
            PY_PEER("shared.py", "--case", "value_incr"),
        },
    },
    {
        .name = "array_sum", .unit = "elems/s", .kind = MPB_RATE,
        .mproc = {.name = "mproc", .round = mpb_array_sum_mproc_round},
        .peers = {
            PY_PEER("shared.py", "--case", "array_sum"),
        },
    },
    {
        .name = "shm_attach", .unit = "cycles/s", .kind = MPB_RATE,
        .mproc = {.name = "mproc", .round = mpb_shm_attach_mproc_round},
        .peers = {
            PY_PEER("shared.py", "--case", "shm_attach"),
            {.name = "raw", .round = mpb_shm_attach_raw_round},
        },
    },
    /* The pool cases: see bench_pool.c. */
    {
        .name = "pool_map_tiny", .unit = "items/s", .kind = MPB_RATE,
        .mproc = {.name = "mproc", .round = mpb_pool_map_tiny_mproc_round},
        .peers = {
            PY_PEER("pool.py", "--case", "map_tiny"),
        },
    },
    {
        .name = "pool_apply_async", .unit = "tasks/s", .kind = MPB_RATE,
        .mproc = {.name = "mproc", .round = mpb_pool_apply_async_mproc_round},
        .peers = {
            PY_PEER("pool.py", "--case", "apply_async"),
        },
    },
    {
        .name = "pool_apply_rtt", .unit = "us", .kind = MPB_TIME,
        .mproc = {.name = "mproc", .round = mpb_pool_apply_rtt_mproc_round},
        .peers = {
            PY_PEER("pool.py", "--case", "apply_rtt"),
        },
    },
    {
        .name = "pool_map_sleep", .unit = "efficiency", .kind = MPB_RATE,
        .mproc = {.name = "mproc", .round = mpb_pool_map_sleep_mproc_round},
        .peers = {
            PY_PEER("pool.py", "--case", "map_sleep"),
        },
    },
    /* The manager cases: see bench_manager.c (one op = a pair of calls). */
    {
        .name = "manager_dict", .unit = "ops/s", .kind = MPB_RATE,
        .mproc = {.name = "mproc", .round = mpb_manager_dict_mproc_round},
        .peers = {
            PY_PEER("manager.py", "--case", "dict"),
        },
    },
    {
        .name = "manager_queue", .unit = "ops/s", .kind = MPB_RATE,
        .mproc = {.name = "mproc", .round = mpb_manager_queue_mproc_round},
        .peers = {
            PY_PEER("manager.py", "--case", "queue"),
        },
    },
    {
        .name = "manager_lock", .unit = "ops/s", .kind = MPB_RATE,
        .mproc = {.name = "mproc", .round = mpb_manager_lock_mproc_round},
        .peers = {
            PY_PEER("manager.py", "--case", "lock"),
        },
    },
};

#define NCASES (sizeof cases / sizeof cases[0])

/* ---- settings -------------------------------------------------------------- */

static struct {
    int rounds;
    double seconds;
    double timeout;     /* per (case, placement), in seconds */
    int timeout_set;    /* -t given: not stretched by a case's rounds_x */
    const char *csv;
    int verbose;
} cfg = {.rounds = 5, .seconds = 0.5};

/* ---- one (case, placement): the --one mode --------------------------------- */

/* case_rounds: the rounds per implementation of case c (-r times its
 * rounds_x, at most MAX_ROUNDS). The default time limit grows with
 * rounds_x too; one given with -t is taken as it is. */
static int case_rounds(const mpb_case_t *c)
{
    int x = c->rounds_x > 0 ? c->rounds_x : 1;

    return cfg.rounds > MAX_ROUNDS / x ? MAX_ROUNDS : cfg.rounds * x;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* fmt_value prints v with about four significant digits, never in
 * exponent form. */
static const char *fmt_value(double v, char *buf, size_t cap)
{
    double a = fabs(v);
    int decimals = a >= 1000 ? 0 : a >= 100 ? 1 : a >= 10 ? 2 : a >= 1 ? 3 : 4;

    snprintf(buf, cap, "%.*f", decimals, v);
    return buf;
}

static void csv_row(const char *name, const char *placement, const char *impl,
                    const char *value, const char *unit, const char *speedup)
{
    char line[512];
    int fd, len;

    if (!cfg.csv)
        return;
    len = snprintf(line, sizeof line, "%s,%s,%s,%s,%s,%s\n", name, placement,
                   impl, value, unit, speedup);
    fd = open(cfg.csv, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "mp_bench: %s: %s\n", cfg.csv, strerror(errno));
        return;
    }
    if (write(fd, line, (size_t)len) != len)
        fprintf(stderr, "mp_bench: %s: short write\n", cfg.csv);
    close(fd);
}

static const mpb_impl_t *impl_at(const mpb_case_t *c, int i)
{
    if (i == 0)
        return &c->mproc;
    return i <= MPB_MAX_PEERS && c->peers[i - 1].name ? &c->peers[i - 1] : NULL;
}

static void report(const mpb_case_t *c, const char *label, const char *placement,
                   int nimpl, double *med, const int *failed)
{
    char mv[32], pv[32], sv[32];

    if (failed[0]) {
        csv_row(c->name, placement, "mproc", "", c->unit, "");
        return;
    }
    fmt_value(med[0], mv, sizeof mv);
    csv_row(c->name, placement, "mproc", mv, c->unit, "");
    for (int i = 1; i < nimpl; i++) {
        const mpb_impl_t *p = impl_at(c, i);
        double s;

        if (failed[i])
            continue;
        s = c->kind == MPB_RATE ? med[0] / med[i] : med[i] / med[0];
        fmt_value(med[i], pv, sizeof pv);
        snprintf(sv, sizeof sv, "%.2f", s);
        printf("bench %s mproc=%s %s=%s %s speedup=%s\n", label, mv, p->name,
               pv, c->unit, sv);
        csv_row(c->name, placement, p->name, pv, c->unit, sv);
    }
    fflush(stdout);
}

static int run_one(const mpb_case_t *c, int cpu)
{
    static double vals[MAX_IMPLS][MAX_ROUNDS];
    double med[MAX_IMPLS];
    int failed[MAX_IMPLS] = {0}, nimpl = 0, status = 0, rounds = case_rounds(c);
    char label[160], placement[32], v[32];

    if (cpu >= 0) {
        cpu_set_t set;

        /* The runner set the affinity before exec; make sure of it anyway. */
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) < 0) {
            fprintf(stderr, "mp_bench: cannot pin to CPU %d: %s\n", cpu,
                    strerror(errno));
            return 1;
        }
        snprintf(placement, sizeof placement, "cpu%d", cpu);
        snprintf(label, sizeof label, "%s@cpu%d", c->name, cpu);
    } else {
        snprintf(placement, sizeof placement, "all");
        snprintf(label, sizeof label, "%s", c->name);
    }
    while (impl_at(c, nimpl))
        nimpl++;

    for (int i = 0; i < nimpl; i++) {
        const mpb_impl_t *im = impl_at(c, i);
        mpb_round_t r = {c, im, cfg.seconds < 0.05 ? cfg.seconds : 0.05, 1};
        double dummy;
        int rc;

        if (im->no_warmup)
            continue;
        rc = im->round(&r, &dummy);
        if (rc < 0) {
            fprintf(stderr, "mp_bench: %s %s: warm-up failed: %s\n", label,
                    im->name, mp_strerror(rc));
            failed[i] = 1;
        }
    }
    for (int k = 0; k < rounds; k++) {
        for (int i = 0; i < nimpl; i++) {
            const mpb_impl_t *im = impl_at(c, i);
            mpb_round_t r = {c, im, cfg.seconds, 0};
            int rc;

            if (failed[i])
                continue;
            rc = im->round(&r, &vals[i][k]);
            if (rc < 0) {
                fprintf(stderr, "mp_bench: %s %s: round %d failed: %s\n",
                        label, im->name, k + 1, mp_strerror(rc));
                failed[i] = 1;
            } else if (cfg.verbose) {
                fprintf(stderr, "mp_bench: %s round %d %s=%s %s\n", label,
                        k + 1, im->name, fmt_value(vals[i][k], v, sizeof v),
                        c->unit);
            }
        }
    }
    for (int i = 0; i < nimpl; i++) {
        if (failed[i])
            status = 1;
        else
            med[i] = median(vals[i], rounds);
    }
    if (failed[0])
        printf("bench %s mproc=FAILED\n", label);
    report(c, label, placement, nimpl, med, failed);
    return status;
}

/* ---- the runner ------------------------------------------------------------- */

/* pin_cpu returns the CPU to pin to: 0 if allowed, else the lowest allowed. */
static int pin_cpu(const cpu_set_t *allowed)
{
    for (int i = 0; i < CPU_SETSIZE; i++)
        if (CPU_ISSET(i, allowed))
            return i;
    return 0;
}

/* kill_children SIGKILLs every live child of this process (found in
 * /proc), printing each one's pid and name. Returns how many. */
static int kill_children(void)
{
    char path[64], buf[512], *rp;
    long me = (long)getpid(), ppid;
    int n = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;

    if (!d)
        return 0;
    while ((e = readdir(d))) {
        FILE *f;
        size_t len;
        long pid = strtol(e->d_name, &rp, 10);

        if (*rp || pid <= 0)
            continue;
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        if (!(f = fopen(path, "r")))
            continue;
        len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        /* pid (comm) state ppid ...; comm may hold spaces and parentheses. */
        rp = strrchr(buf, ')');
        if (!rp || sscanf(rp + 1, " %*c %ld", &ppid) != 1 || ppid != me)
            continue;
        *rp = '\0';
        if (n < 5)
            fprintf(stderr, "mp_bench: left behind: pid %ld %s)\n", pid,
                    strchr(buf, '(') ? strchr(buf, '(') : "(?");
        kill((pid_t)pid, SIGKILL);
        n++;
    }
    closedir(d);
    if (n > 5)
        fprintf(stderr, "mp_bench: left behind: %d processes in all\n", n);
    return n;
}

/* leftovers checks that a case left no process behind. The runner is a
 * child subreaper, so whatever a case orphaned (a forkserver, a resource
 * tracker, a grandchild) becomes our child. It waits up to a second for them
 * to exit, reaping them, then kills by pid those that stay and names them.
 * Returns how many had to be killed. */
static int leftovers(void)
{
    struct timespec tick = {0, 20 * 1000 * 1000};
    int status, killed = 0;
    pid_t w;

    for (int i = 0; i < 50; i++) {
        while ((w = waitpid(-1, &status, WNOHANG)) > 0)
            ;
        if (w < 0)
            return 0;
        nanosleep(&tick, NULL);
    }
    killed = kill_children();
    while (waitpid(-1, &status, 0) > 0)
        ;
    return killed;
}

/* self_path returns the path of this program (so that a case's processes
 * are named mp_bench, not exe, in ps and perf). */
static const char *self_path(void)
{
    static char path[4096];
    ssize_t n;

    if (path[0])
        return path;
    n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0 || (size_t)n >= sizeof path - 1)
        return strcpy(path, "/proc/self/exe");
    path[n] = '\0';
    return path;
}

/* spawn_one runs `self --one NAME --cpu CPU ...` with the given affinity in a
 * new process group and waits for it, killing the group after cfg.timeout.
 * Returns 0 if it succeeded. */
static int spawn_one(const mpb_case_t *c, int cpu, const cpu_set_t *all)
{
    char cpus[16], rounds[16], secs[32];
    char *argv[16];
    posix_spawnattr_t attr;
    cpu_set_t one;
    struct timespec tick = {0, 50 * 1000 * 1000};
    double deadline, limit;
    int argc = 0, rc, status;
    pid_t pid, w;

    snprintf(cpus, sizeof cpus, "%d", cpu);
    snprintf(rounds, sizeof rounds, "%d", cfg.rounds);
    snprintf(secs, sizeof secs, "%g", cfg.seconds);
    argv[argc++] = (char *)"mp_bench";  /* argv[0] as users see it */
    argv[argc++] = (char *)"--one";
    argv[argc++] = (char *)c->name;
    argv[argc++] = (char *)"--cpu";
    argv[argc++] = cpus;
    argv[argc++] = (char *)"-r";
    argv[argc++] = rounds;
    argv[argc++] = (char *)"-s";
    argv[argc++] = secs;
    if (cfg.verbose)
        argv[argc++] = (char *)"-v";
    if (cfg.csv) {
        argv[argc++] = (char *)"-c";
        argv[argc++] = (char *)cfg.csv;
    }
    argv[argc] = NULL;

    if (cpu >= 0) {
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        if (sched_setaffinity(0, sizeof one, &one) < 0) {
            fprintf(stderr, "mp_bench: cannot pin to CPU %d: %s\n", cpu,
                    strerror(errno));
            return 1;
        }
    }
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    fflush(stdout);
    rc = posix_spawn(&pid, self_path(), NULL, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    if (cpu >= 0)
        sched_setaffinity(0, sizeof *all, all);
    if (rc != 0) {
        fprintf(stderr, "mp_bench: cannot start %s: %s\n", c->name,
                strerror(rc));
        return 1;
    }

    limit = cfg.timeout_set ? cfg.timeout
                            : cfg.timeout * (c->rounds_x > 0 ? c->rounds_x : 1);
    deadline = mpb_now() + limit;
    while ((w = waitpid(pid, &status, WNOHANG)) == 0) {
        if (mpb_now() > deadline) {
            fprintf(stderr, "mp_bench: %s%s%s: no result after %.0f s; "
                    "killed\n", c->name, cpu >= 0 ? "@cpu" : "",
                    cpu >= 0 ? cpus : "", limit);
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            leftovers();
            return 1;
        }
        nanosleep(&tick, NULL);
    }
    if (w < 0)
        return 1;
    if (leftovers())
        fprintf(stderr, "mp_bench: %s%s%s: processes were left behind after "
                "the case ended (killed)\n", c->name,
                cpu >= 0 ? "@cpu" : "", cpu >= 0 ? cpus : "");
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "mp_bench: %s: killed by signal %d\n", c->name,
                WTERMSIG(status));
        return 1;
    }
    return WEXITSTATUS(status) != 0;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: mp_bench [-l] [-v] [-r ROUNDS] [-s SECONDS] [-t TIMEOUT] "
            "[-c CSV] [PREFIX]\n"
            "  -l  list the cases and exit\n"
            "  -v  print every round's value on stderr\n"
            "  -r  rounds per implementation (median; default 5; pipe_64b\n"
            "      runs three times as many, at most 99)\n"
            "  -s  seconds per round (default 0.5)\n"
            "  -t  seconds allowed per case and placement (default: derived)\n"
            "  -c  append results to this CSV file (written with a header)\n");
    return 2;
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

int main(int argc, char **argv)
{
    const char *prefix = "", *one = NULL, *env;
    int cpu = -1, status = 0, matched = 0;
    cpu_set_t all;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if ((env = getenv("MP_BENCH_ROUNDS")) && *env)
        cfg.rounds = atoi(env);
    if ((env = getenv("MP_BENCH_SECONDS")) && *env)
        cfg.seconds = atof(env);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;

        if (!strcmp(a, "-l") || !strcmp(a, "--list")) {
            for (size_t k = 0; k < NCASES; k++)
                printf("%s\n", cases[k].name);
            return 0;
        } else if (!strcmp(a, "-v")) {
            cfg.verbose = 1;
        } else if (!strcmp(a, "-r") && next) {
            cfg.rounds = atoi(argv[++i]);
        } else if (!strcmp(a, "-s") && next) {
            cfg.seconds = atof(argv[++i]);
        } else if (!strcmp(a, "-t") && next) {
            cfg.timeout = atof(argv[++i]);
            cfg.timeout_set = 1;
        } else if (!strcmp(a, "-c") && next) {
            cfg.csv = argv[++i];
        } else if (!strcmp(a, "--one") && next) {
            one = argv[++i];
        } else if (!strcmp(a, "--cpu") && next) {
            cpu = atoi(argv[++i]);
        } else if (a[0] == '-' || *prefix) {
            return usage();
        } else {
            prefix = a;
        }
    }
    if (cfg.rounds < 1 || cfg.rounds > MAX_ROUNDS || !(cfg.seconds > 0))
        return usage();

    if (one) {
        for (size_t k = 0; k < NCASES; k++)
            if (!strcmp(cases[k].name, one))
                return run_one(&cases[k], cpu);
        fprintf(stderr, "mp_bench: no case named %s\n", one);
        return 2;
    }

    if (cfg.timeout <= 0)
        cfg.timeout = 60 + 20.0 * cfg.rounds * MAX_IMPLS * cfg.seconds;
    /* Orphans of a case become our children, so leftovers() can see them. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    if (sched_getaffinity(0, sizeof all, &all) < 0) {
        perror("mp_bench: sched_getaffinity");
        return 1;
    }
    for (size_t k = 0; k < NCASES; k++)
        matched += starts_with(cases[k].name, prefix);
    if (!matched) {
        fprintf(stderr, "mp_bench: no case starts with \"%s\"; cases:\n",
                prefix);
        for (size_t k = 0; k < NCASES; k++)
            fprintf(stderr, "  %s\n", cases[k].name);
        return 2;
    }
    if (cfg.csv) {
        FILE *f = fopen(cfg.csv, "w");

        if (!f || fputs("case,placement,impl,value,unit,speedup\n", f) < 0 ||
            fclose(f) != 0) {
            fprintf(stderr, "mp_bench: cannot write %s\n", cfg.csv);
            return 1;
        }
    }
    for (size_t k = 0; k < NCASES; k++) {
        if (!starts_with(cases[k].name, prefix))
            continue;
        status |= spawn_one(&cases[k], pin_cpu(&all), &all);
        status |= spawn_one(&cases[k], -1, &all);
    }
    return status;
}

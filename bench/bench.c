/* bench.c: helpers for the round functions of the benchmark cases: the
 * clock, the rate loop, starting a worker process (mproc or fork()), and
 * running a Python peer script for one round.
 * MT-safe: no (the benchmark is single-threaded). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#ifndef MPB_PYDIR
#define MPB_PYDIR "bench/py"
#endif

extern char **environ;

double mpb_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int mpb_rate_loop(const mpb_round_t *r, mpb_op_fn op, void *state,
                  long min_ops, double *rate)
{
    double t0 = mpb_now(), elapsed;
    long n = 0;
    int rc;

    if (r->warmup && min_ops > 2)
        min_ops = 2;
    for (;;) {
        rc = op(state);
        if (rc < 0)
            return rc;
        n++;
        elapsed = mpb_now() - t0;
        if (n >= min_ops && (elapsed >= r->seconds || r->warmup))
            break;
    }
    *rate = (double)n / elapsed;
    return 0;
}

int mpb_child_start(int use_mproc, mp_target_fn fn, const void *arg,
                    size_t len, mp_process_t **mp, pid_t *pid)
{
    *mp = NULL;
    *pid = 0;
    if (use_mproc) {
        mp_process_opts_t opts = {.start_method = MP_START_FORK};
        int rc = mp_process_new(mp, fn, arg, len, &opts);

        if (rc < 0)
            return rc;
        if ((rc = mp_process_start(*mp)) < 0) {
            mp_process_free(*mp);
            *mp = NULL;
        }
        return rc;
    }
    fflush(NULL);
    *pid = fork();
    if (*pid < 0) {
        *pid = 0;
        return -errno;
    }
    if (*pid == 0)
        _exit(fn((void *)arg));
    return 0;
}

/* read_all reads fd to EOF into buf (NUL-terminated, truncated to cap - 1). */
static void read_all(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    char sink[256];
    ssize_t k;

    for (;;) {
        if (len + 1 < cap)
            k = read(fd, buf + len, cap - 1 - len);
        else
            k = read(fd, sink, sizeof sink);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        if (len + 1 < cap)
            len += (size_t)k;
    }
    buf[len] = '\0';
}

int mpb_python_round(const mpb_round_t *r, double *value)
{
    const char *python = getenv("MP_BENCH_PYTHON");
    const char *pydir = getenv("MP_BENCH_PYDIR");
    char script[4096], secs[32], out[4096], *argv[16], *end;
    posix_spawn_file_actions_t fa;
    int fds[2], status, rc, argc = 0;
    pid_t pid;

    if (!python || !*python)
        python = "python3";
    if (!pydir || !*pydir)
        pydir = MPB_PYDIR;
    snprintf(script, sizeof script, "%s/%s", pydir, r->impl->py[0]);
    snprintf(secs, sizeof secs, "%g", r->seconds);
    argv[argc++] = (char *)python;
    argv[argc++] = script;
    for (int i = 1; r->impl->py[i] && argc < 13; i++)
        argv[argc++] = (char *)r->impl->py[i];
    argv[argc++] = (char *)"--seconds";
    argv[argc++] = secs;
    argv[argc] = NULL;

    if (pipe2(fds, O_CLOEXEC) < 0)
        return -errno;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    rc = posix_spawnp(&pid, python, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        fprintf(stderr, "mp_bench: cannot run %s: %s\n", python, strerror(rc));
        close(fds[0]);
        return -rc;
    }
    read_all(fds[0], out, sizeof out);
    close(fds[0]);
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -errno;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "mp_bench: %s %s: %s %d\n", python, script,
                WIFEXITED(status) ? "exit status" : "killed by signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        return -ECHILD;
    }
    *value = strtod(out, &end);
    if (end == out || !isfinite(*value) || *value <= 0) {
        fprintf(stderr, "mp_bench: %s %s printed no value\n", python, script);
        return -EPROTO;
    }
    return 0;
}

/* bench.c: helpers for the round functions of the benchmark cases: the
 * clock, the rate loop, starting, joining and killing a worker process
 * (mproc or fork()), the raw peers' length-prefixed framing, and running a
 * Python peer script for one round.
 * MT-safe: no (the benchmark is single-threaded). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
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

void mpb_sleep(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int mpb_wait_pid(pid_t pid, double deadline, int *status)
{
    int fd = (int)syscall(SYS_pidfd_open, pid, 0), rc = 0;
    pid_t w;

    for (;;) {
        double left = deadline - mpb_now();

        w = waitpid(pid, status, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR) {
            rc = -errno;
            break;
        }
        if (left <= 0) {
            rc = -ETIMEDOUT;
            break;
        }
        if (fd >= 0) {
            struct pollfd pfd = {fd, POLLIN, 0};

            poll(&pfd, 1, left > 1 ? 1000 : (int)(left * 1000) + 1);
        } else {
            mpb_sleep(1e-3);
        }
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

int mpb_child_join(mpb_child_t *c, double deadline)
{
    int rc, code = -1, status;
    double left = deadline - mpb_now();

    if (c->joined || (!c->mp && !c->pid))
        return 0;
    if (c->mp) {
        if ((rc = mp_process_join(c->mp, left > 0 ? left : 0)) < 0)
            return rc;
        c->joined = 1;
        if ((rc = mp_process_exitcode(c->mp, &code)) < 0)
            return rc;
        return code == 0 ? 0 : -ECHILD;
    }
    if ((rc = mpb_wait_pid(c->pid, deadline, &status)) < 0)
        return rc;
    c->joined = 1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -ECHILD;
}

void mpb_child_kill(mpb_child_t *c)
{
    int status;

    if (c->mp) {
        if (!c->joined) {
            mp_process_kill(c->mp);
            mp_process_join(c->mp, MP_FOREVER);
        }
        mp_process_free(c->mp);
        c->mp = NULL;
    } else if (c->pid) {
        if (!c->joined) {
            kill(c->pid, SIGKILL);
            while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
                ;
        }
        c->pid = 0;
    }
}

int mpb_wait_ready(_Atomic int *ready, _Atomic int *failed, int n)
{
    double deadline = mpb_now() + 30;

    while (atomic_load(ready) < n) {
        if (atomic_load(failed))
            return atomic_load(failed);
        if (mpb_now() > deadline)
            return -ETIMEDOUT;
        mpb_sleep(20e-6);
    }
    return 0;
}

int mpb_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    ssize_t k;

    while (len > 0) {
        k = write(fd, p, len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -errno;
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

int mpb_read_exact(int fd, void *buf, size_t len)
{
    char *p = buf;
    size_t done = 0;
    ssize_t k;

    while (done < len) {
        k = read(fd, p + done, len - done);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -errno;
        if (k == 0)
            return done == 0 ? MPB_END : -EPROTO;
        done += (size_t)k;
    }
    return 0;
}

int mpb_raw_send(int fd, void *msg, size_t len)
{
    uint32_t n = (uint32_t)len;
    char *p = (char *)msg - sizeof n;

    memcpy(p, &n, sizeof n);
    return mpb_write_all(fd, p, len + sizeof n);
}

int mpb_raw_recv(int fd, void *buf, size_t cap, size_t *len)
{
    uint32_t n;
    int rc = mpb_read_exact(fd, &n, sizeof n);

    if (rc != 0)
        return rc;
    if (n > cap)
        return -EMSGSIZE;
    *len = n;
    rc = mpb_read_exact(fd, buf, n);
    return rc == MPB_END ? (n ? -EPROTO : 0) : rc;
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

int mpb_vfault(_Atomic int *failed, const char *who, int code, const char *fmt,
               va_list ap)
{
    int expected = 0;

    fprintf(stderr, "mp_bench: %s: ", who);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (%s)\n", mp_strerror(code));
    atomic_compare_exchange_strong(failed, &expected, code);
    return code;
}

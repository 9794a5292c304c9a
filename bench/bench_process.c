/* bench_process.c: round functions of the process_* cases: trivial processes
 * started and joined one after the other, per second.
 *
 * mproc: mp_process_new (with the case's start method), mp_process_start,
 * mp_process_join(MP_FOREVER), mp_process_free. raw: fork + _exit(0) +
 * waitpid (for fork and forkserver), posix_spawn of /bin/true + waitpid (for
 * spawn). The Python peer is bench/py/process.py. MT-safe: no. */
#define _GNU_SOURCE
#include <errno.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mproc.h"
#include "bench.h"

extern char **environ;

/* A process round does at least this many processes, however slow. */
#define MIN_PROCS 3

/* trivial is the target of every mproc child: it returns exit code 0. */
static int trivial(void *arg)
{
    (void)arg;
    return 0;
}

/* reap waits for pid and checks that it exited with status 0. */
static int reap(pid_t pid)
{
    int status;
    pid_t r;

    do
        r = waitpid(pid, &status, 0);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -ECHILD;
}

static int mproc_op(void *state)
{
    mp_process_opts_t opts = {.start_method = *(const int *)state};
    mp_process_t *p = NULL;
    int code = -1;
    int rc;

    rc = mp_process_new(&p, trivial, NULL, 0, &opts);
    if (rc < 0)
        return rc;
    rc = mp_process_start(p);
    if (rc == 0)
        rc = mp_process_join(p, MP_FOREVER);
    if (rc == 0)
        rc = mp_process_exitcode(p, &code);
    if (rc == 0 && code != 0)
        rc = -ECHILD;
    mp_process_free(p);
    return rc;
}

int mpb_process_mproc_round(const mpb_round_t *r, double *value)
{
    int method = *(const int *)r->c->param;

    return mpb_rate_loop(r, mproc_op, &method, MIN_PROCS, value);
}

static int raw_fork_op(void *state)
{
    pid_t pid;

    (void)state;
    pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0)
        _exit(0);
    return reap(pid);
}

int mpb_process_raw_fork_round(const mpb_round_t *r, double *value)
{
    return mpb_rate_loop(r, raw_fork_op, NULL, MIN_PROCS, value);
}

static int raw_spawn_op(void *state)
{
    char *argv[] = {(char *)"true", NULL};
    pid_t pid;
    int rc;

    (void)state;
    rc = posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ);
    if (rc != 0)
        return -rc;
    return reap(pid);
}

int mpb_process_raw_spawn_round(const mpb_round_t *r, double *value)
{
    return mpb_rate_loop(r, raw_spawn_op, NULL, MIN_PROCS, value);
}

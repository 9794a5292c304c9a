/* story.h: the few helpers the seed stories share, so that each story's file
 * shows only its story.
 *
 * - story_begin: line-buffered stdout, and the start method named by argv[1]
 *   ("fork", "spawn" or "forkserver"; none means the default, fork).
 * - story_fail: say which claim did not hold, and give the exit code 1.
 * - story_sleep: a short pause that stands for "work".
 * - story_fifo_*: a named pipe in a private temporary directory. The seeds
 *   wait with time.sleep() for another process to reach some point; the
 *   stories wait for a message instead, so they never depend on timing. A
 *   named pipe is opened by its path, which a child receives inside its
 *   argument, so it works under every start method (a forkserver child does
 *   not inherit the parent's descriptors).
 *
 * - story_pipe_*: a pipe on which children (processes or threads) report
 *   what they do, in small records, so that the parent can check a claim
 *   about all of them (how many were inside at once). A process child gets
 *   the write end by number (mp_process_opts_t.pass_fds).
 * - story_witness: run this program again in a "role", with its stdout
 *   captured, for the stories whose claim is about how a program ends.
 *
 * Header-only; uses libc and the public mproc API. story_fail, story_sleep,
 * story_now and story_pipe_send may be called from any thread; the others
 * belong to the main thread. */
#ifndef MPROC_STORY_H
#define MPROC_STORY_H

#include <mproc.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* STORY_PATH_MAX bounds the paths the stories pass to their children: they
 * travel inside fixed-size argument structs, which mproc copies into the
 * child. */
#define STORY_PATH_MAX 96

/* story_begin makes stdout line-buffered (so that the lines of parent and
 * children come out in the order they were printed, also through a pipe)
 * and applies the start method named in argv[1]. Exits with 2 on a bad name. */
static inline void story_begin(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2)
        return;
    mp_start_method_t m;
    if (mp_start_method_parse(argv[1], &m) != 0 || mp_set_start_method(m) != 0) {
        fprintf(stderr, "usage: %s [fork|spawn|forkserver]\n", argv[0]);
        exit(2);
    }
}

/* story_fail prints "<program>: <message>" on stderr and returns 1, the exit
 * code of a story whose claim did not hold: `return story_fail(...)`. */
static inline int story_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static inline int story_fail(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "story check failed: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

/* story_sleep pauses for the given seconds (restarting after signals). */
static inline void story_sleep(double seconds)
{
    struct timespec ts;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* story_now returns a monotonic clock in seconds. */
static inline double story_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* story_fifo_t is a private directory holding named pipes. */
typedef struct {
    char dir[STORY_PATH_MAX];
} story_fifo_t;

/* story_fifo_dir creates the private directory. Returns 0 or -errno. */
static inline int story_fifo_dir(story_fifo_t *f)
{
    snprintf(f->dir, sizeof f->dir, "/tmp/mproc-story-XXXXXX");
    return mkdtemp(f->dir) ? 0 : -errno;
}

/* story_fifo_make creates the named pipe `name` in f and writes its path to
 * path (STORY_PATH_MAX bytes). Returns 0 or -errno. */
static inline int story_fifo_make(const story_fifo_t *f, const char *name,
                                  char path[STORY_PATH_MAX])
{
    if (snprintf(path, STORY_PATH_MAX, "%s/%s", f->dir, name) >= STORY_PATH_MAX)
        return -ENAMETOOLONG;
    return mkfifo(path, 0600) == 0 ? 0 : -errno;
}

/* story_fifo_path writes the path of a file `name` in f's directory to path
 * (STORY_PATH_MAX bytes), for stories that keep ordinary files there.
 * Returns 0 or -ENAMETOOLONG. */
static inline int story_fifo_path(const story_fifo_t *f, const char *name,
                                  char path[STORY_PATH_MAX])
{
    if (snprintf(path, STORY_PATH_MAX, "%s/%s", f->dir, name) >= STORY_PATH_MAX)
        return -ENAMETOOLONG;
    return 0;
}

/* story_fifo_remove deletes the named pipes listed (NULL-terminated) and the
 * directory. */
static inline void story_fifo_remove(const story_fifo_t *f, const char *path, ...)
{
    va_list ap;
    va_start(ap, path);
    for (const char *p = path; p; p = va_arg(ap, const char *))
        unlink(p);
    va_end(ap);
    rmdir(f->dir);
}

/* story_fifo_listen opens the reading end of a named pipe without waiting
 * for a writer. Open it before starting the process that will write, so the
 * writer finds a reader. Returns the descriptor or -errno. */
static inline int story_fifo_listen(const char *path)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    return fd >= 0 ? fd : -errno;
}

/* story_fifo_hear reads what one writer says, up to its end of file, into buf
 * (NUL-terminated, at most cap - 1 bytes), waiting at most timeout seconds.
 * It closes fd. Returns the number of bytes, or -ETIMEDOUT, or -errno.
 * (On Linux, a reader of a named pipe sees hang-up only after a writer has
 * come and gone, so waiting before the writer opens is safe.) */
static inline long story_fifo_hear(int fd, char *buf, size_t cap, double timeout)
{
    double deadline = story_now() + timeout;
    size_t len = 0;
    long rc = 0;
    for (;;) {
        double left = deadline - story_now();
        if (left <= 0) {
            rc = -ETIMEDOUT;
            break;
        }
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int n = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        if (n == 0)
            continue;
        ssize_t got = read(fd, buf + len, cap - 1 - len);
        if (got < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (got < 0) {
            rc = -errno;
            break;
        }
        if (got == 0 || (len += (size_t)got) == cap - 1) {
            rc = (long)len;
            break;
        }
    }
    buf[len] = '\0';
    close(fd);
    return rc;
}

/* story_fifo_say writes msg to the named pipe at path, whose reader must be
 * listening already, and closes it. Returns 0 or -errno. */
static inline int story_fifo_say(const char *path, const char *msg)
{
    int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = strlen(msg);
    ssize_t put = write(fd, msg, len);
    int rc = put == (ssize_t)len ? 0 : (put < 0 ? -errno : -EIO);
    close(fd);
    return rc;
}

/* story_bool prints a flag as Python prints a bool. */
static inline const char *story_bool(int flag)
{
    return flag ? "True" : "False";
}

/* ---- reports from children ---------------------------------------------- */

/* story_pipe_t: a pipe; children write fixed-size records of at most
 * PIPE_BUF bytes on wr (each write is atomic, so records of several writers
 * never mix) and the parent reads them from rd in the order they were
 * written. Both ends are close-on-exec: a spawn or forkserver child gets wr
 * only through pass_fds. */
typedef struct {
    int rd;
    int wr;
} story_pipe_t;

/* story_pipe_open makes the pipe. Returns 0 or -errno. */
static inline int story_pipe_open(story_pipe_t *p)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -errno;
    p->rd = fds[0];
    p->wr = fds[1];
    return 0;
}

/* story_pipe_close closes both ends (those still open). */
static inline void story_pipe_close(story_pipe_t *p)
{
    if (p->rd >= 0)
        close(p->rd);
    if (p->wr >= 0)
        close(p->wr);
    p->rd = p->wr = -1;
}

/* story_pipe_send writes one record of len bytes (len <= PIPE_BUF) on fd.
 * Returns 0 or -errno. */
static inline int story_pipe_send(int fd, const void *rec, size_t len)
{
    ssize_t put;
    while ((put = write(fd, rec, len)) < 0 && errno == EINTR)
        ;
    return put == (ssize_t)len ? 0 : (put < 0 ? -errno : -EIO);
}

/* story_pipe_recv reads one record of len bytes from fd, waiting until
 * deadline (a story_now() time). Returns 0, -ETIMEDOUT, MP_EEOF when every
 * writer is gone, or -errno. */
static inline int story_pipe_recv(int fd, void *rec, size_t len, double deadline)
{
    size_t got = 0;
    while (got < len) {
        double left = deadline - story_now();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int n = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n <= 0)
            continue;
        ssize_t r = read(fd, (char *)rec + got, len - got);
        if (r < 0 && errno != EINTR && errno != EAGAIN)
            return -errno;
        if (r == 0)
            return MP_EEOF;
        if (r > 0)
            got += (size_t)r;
    }
    return 0;
}

/* ---- a witness of the program's end ------------------------------------ */

/* STORY_ROLE_ENV names the role in which story_witness runs the program. */
#define STORY_ROLE_ENV "MPROC_STORY_ROLE"

/* story_role returns the role this program was run in by story_witness, or
 * NULL when it was run by hand. */
static inline const char *story_role(void)
{
    return getenv(STORY_ROLE_ENV);
}

/* story_witness runs this program again (with the same start method
 * argument) in the given role, its stdout going into a pipe; relays what it
 * prints to our stdout and keeps it in transcript (NUL-terminated, at most
 * cap - 1 bytes) until the pipe ends, which happens when every process
 * holding it has ended; then waits for the program and stores its wait
 * status in *status. Gives up after timeout seconds (killing the program).
 * Returns 0, -ETIMEDOUT, or -errno. A program cannot watch its own end:
 * this is how a story checks what happens after main returns. */
static inline int story_witness(int argc, char **argv, const char *role,
                                char *transcript, size_t cap, double timeout,
                                int *status)
{
    int fds[2];
    pid_t pid;
    size_t len = 0;
    int rc = 0;

    if (pipe2(fds, O_CLOEXEC) != 0)
        return -errno;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    char *args[] = { argv[0], argc > 1 ? argv[1] : NULL, NULL };
    setenv(STORY_ROLE_ENV, role, 1);
    int err = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, args, environ);
    unsetenv(STORY_ROLE_ENV);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (err != 0) {
        close(fds[0]);
        return -err;
    }

    double deadline = story_now() + timeout;
    for (;;) {
        double left = deadline - story_now();
        if (left <= 0) {
            rc = -ETIMEDOUT;
            break;
        }
        struct pollfd pfd = { .fd = fds[0], .events = POLLIN };
        if (poll(&pfd, 1, (int)(left * 1000) + 1) <= 0)
            continue;
        ssize_t got = read(fds[0], transcript + len, cap - 1 - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        fwrite(transcript + len, 1, (size_t)got, stdout);
        fflush(stdout);
        len += (size_t)got;
        if (len == cap - 1)
            break;
    }
    transcript[len] = '\0';
    close(fds[0]);

    /* The pipe ends as the program closes its descriptors, a moment before
     * it can be waited for. */
    pid_t done;
    while ((done = waitpid(pid, status, WNOHANG)) == 0 && story_now() < deadline + 5.0)
        story_sleep(0.005);
    if (done != pid) {
        kill(pid, SIGKILL);
        waitpid(pid, status, 0);
        rc = -ETIMEDOUT;
    }
    return rc;
}

/* story_count returns how many times needle occurs in hay. */
static inline int story_count(const char *hay, const char *needle)
{
    int n = 0;
    size_t len = strlen(needle);
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += len)
        n++;
    return n;
}

/* ---- children's lines, chance, ends ------------------------------------- */

/* story_say prints a child's line at once. A spawn or forkserver child does
 * not run main, so its stdout is not line-buffered as the main process's is
 * (story_begin); unflushed, its lines would come out only when it exits, all
 * together, or never for a daemon, which is killed. */
static inline void story_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void story_say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

/* story_randint returns a number in [lo, hi], like random.randint. */
static inline int story_randint(unsigned *seed, int lo, int hi)
{
    return lo + (int)(rand_r(seed) % (unsigned)(hi - lo + 1));
}

/* story_join_ok joins p (at most a minute), frees it, and returns 0 if it
 * exited with 0; otherwise it says why and returns 1. */
static inline int story_join_ok(mp_process_t *p, const char *who)
{
    int code = -1;
    int rc = mp_process_join(p, 60.0);
    if (rc == 0)
        rc = mp_process_exitcode(p, &code);
    mp_process_free(p);
    if (rc != 0 || code != 0)
        return story_fail("%s: %s, exit code %d", who, mp_strerror(rc), code);
    return 0;
}

#endif

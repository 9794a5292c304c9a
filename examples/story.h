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
 * Header-only; uses libc and the public mproc API. Not thread-safe (the
 * stories are single-threaded). */
#ifndef MPROC_STORY_H
#define MPROC_STORY_H

#include <mproc.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

#endif

/* proc.c: pidfds, readiness waits, signal helpers and the parent-death
 * watch. MT-safe: yes. Fork-safe: yes (no state). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "platform.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

int mp__pidfd_open(pid_t pid)
{
    int e = mp__fault_hit(MP__SYS_PIDFD_OPEN);
    if (e)
        return -e;
    long fd = syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0)
        return -errno;
    /* pidfds are close-on-exec from birth. */
    return (int)fd;
}

int mp__pidfd_signal(int pidfd, int sig)
{
    if (syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) == 0)
        return 0;
    return errno == ESRCH ? 0 : -errno;
}

int mp__pidfd_reap(int pidfd, int *exitcode)
{
    siginfo_t si;
    for (;;) {
        memset(&si, 0, sizeof si);
        if (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG) == 0)
            break;
        if (errno != EINTR)
            return -errno;
    }
    if (si.si_pid == 0)
        return 0;
    *exitcode = si.si_code == CLD_EXITED ? si.si_status : -si.si_status;
    return 1;
}

int mp__wait_readable(int fd, mp__deadline_t d)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    for (;;) {
        int r = poll(&pfd, 1, mp__deadline_ms(d));
        if (r > 0)
            return 0;
        if (r == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

void mp__signals_block_all(sigset_t *old)
{
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, old);
}

void mp__signals_restore(const sigset_t *old)
{
    pthread_sigmask(SIG_SETMASK, old, NULL);
}

void mp__signals_reset_for_exec(void)
{
    struct sigaction sa;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        if (syscall(SYS_rt_sigaction, sig, NULL, &sa, 8) != 0)
            continue;
        if (sa.sa_handler != SIG_IGN && sa.sa_handler != SIG_DFL) {
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = SIG_DFL;
            syscall(SYS_rt_sigaction, sig, &sa, NULL, 8);
        }
    }
}

int mp__die_with_parent(int alive_fd)
{
    /* A private open file description of the same pipe: O_ASYNC and the
     * signal owner live on the description, and siblings share the one they
     * inherited. When the last write end closes (the parent process ended,
     * whatever thread created us), the kernel sends the chosen signal,
     * SIGKILL, to us. */
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", alive_fd);
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fcntl(fd, F_SETOWN, getpid()) < 0 || fcntl(fd, F_SETSIG, SIGKILL) < 0 ||
        fcntl(fd, F_SETFL, O_RDONLY | O_NONBLOCK | O_ASYNC) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    /* The parent may have died before O_ASYNC was armed. */
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    if (poll(&pfd, 1, 0) > 0 && (pfd.revents & POLLHUP))
        kill(getpid(), SIGKILL);
    /* fd stays open for the life of the process, on purpose. */
    return 0;
}

/* ---- the pid, cached ------------------------------------------------------- */

static pid_t self_pid;
static pthread_once_t self_once = PTHREAD_ONCE_INIT;
static void self_reset(void) { self_pid = 0; }
static void self_atfork(void) { pthread_atfork(NULL, NULL, self_reset); }

pid_t mp__self_pid(void)
{
    if (!self_pid) {
        pthread_once(&self_once, self_atfork);
        self_pid = getpid();
    }
    return self_pid;
}

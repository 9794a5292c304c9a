/* fault.c: the system-call table, through which every call whose failure
 * mproc must survive passes, so that tests can make the nth call fail.
 * MT-safe: yes (atomics). Fork-safe: yes (children inherit armed faults on
 * purpose: a test may arm a fault for the child's first fork). */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "platform.h"

static _Atomic int fault_countdown[MP__SYS_COUNT];
static _Atomic int fault_err[MP__SYS_COUNT];

void mp__fault_arm(mp__sys_id id, int nth, int err)
{
    if ((unsigned)id >= MP__SYS_COUNT || nth < 1 || err <= 0)
        return;
    atomic_store(&fault_err[id], err);
    atomic_store(&fault_countdown[id], nth);
}

void mp__fault_clear(void)
{
    for (int i = 0; i < MP__SYS_COUNT; i++)
        atomic_store(&fault_countdown[i], 0);
}

int mp__fault_hit(mp__sys_id id)
{
    int n = atomic_load_explicit(&fault_countdown[id], memory_order_relaxed);
    while (n > 0) {
        if (atomic_compare_exchange_weak(&fault_countdown[id], &n, n - 1))
            return n == 1 ? atomic_load(&fault_err[id]) : 0;
    }
    return 0;
}

pid_t mp__sys_fork(void)
{
    int e = mp__fault_hit(MP__SYS_FORK);
    if (e)
        return -e;
    pid_t pid = fork();
    return pid < 0 ? -errno : pid;
}

void *mp__sys_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    int e = mp__fault_hit(MP__SYS_MMAP);
    if (e) {
        errno = e;
        return MAP_FAILED;
    }
    return mmap(addr, len, prot, flags, fd, off);
}

int mp__sys_memfd(const char *name, unsigned flags)
{
    int e = mp__fault_hit(MP__SYS_MEMFD);
    if (e)
        return -e;
    int fd = memfd_create(name, flags);
    return fd < 0 ? -errno : fd;
}

int mp__sys_ftruncate(int fd, off_t len)
{
    int e = mp__fault_hit(MP__SYS_FTRUNCATE);
    if (e)
        return -e;
    return ftruncate(fd, len) < 0 ? -errno : 0;
}

int mp__sys_pipe(int fds[2], int flags)
{
    int e = mp__fault_hit(MP__SYS_PIPE);
    if (e)
        return -e;
    return pipe2(fds, flags) < 0 ? -errno : 0;
}

int mp__sys_socketpair(int type, int fds[2])
{
    int e = mp__fault_hit(MP__SYS_SOCKETPAIR);
    if (e)
        return -e;
    return socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, fds) < 0 ? -errno : 0;
}

int mp__sys_socket(int domain, int type, int proto)
{
    int e = mp__fault_hit(MP__SYS_SOCKET);
    if (e)
        return -e;
    int fd = socket(domain, type | SOCK_CLOEXEC, proto);
    return fd < 0 ? -errno : fd;
}

void *mp__malloc(size_t n)
{
    if (mp__fault_hit(MP__SYS_MALLOC))
        return NULL;
    return malloc(n);
}

void *mp__calloc(size_t n, size_t size)
{
    if (mp__fault_hit(MP__SYS_MALLOC))
        return NULL;
    return calloc(n, size);
}

/* futex.c: process-shared futex wait and wake with absolute monotonic
 * deadlines. MT-safe: yes. Fork-safe: yes (no state). */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "platform.h"

int mp__futex_wait(const uint32_t *addr, uint32_t val, mp__deadline_t d)
{
    struct timespec ts;
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time, so retries
     * after EINTR keep the caller's single deadline. */
    long r = syscall(SYS_futex, addr, FUTEX_WAIT_BITSET, val,
                     mp__deadline_ts(d, &ts), NULL, FUTEX_BITSET_MATCH_ANY);
    if (r == 0)
        return 0;
    switch (errno) {
    case EAGAIN:
        return 0;
    case ETIMEDOUT:
        return -ETIMEDOUT;
    case EINTR:
        return -EINTR;
    default:
        return -errno;
    }
}

int mp__futex_wake(const uint32_t *addr, int n)
{
    long r = syscall(SYS_futex, addr, FUTEX_WAKE, n, NULL, NULL, 0);
    return r < 0 ? 0 : (int)r;
}

/* time.c: deadlines. A public timeout (double seconds) becomes one absolute
 * CLOCK_MONOTONIC instant at entry; retries wait against that instant.
 * MT-safe: yes. Fork-safe: yes (no state). */
#include <errno.h>
#include <limits.h>
#include <math.h>

#include "platform.h"

int64_t mp__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int mp__deadline(double timeout, mp__deadline_t *out)
{
    if (isnan(timeout))
        return -EINVAL;
    if (timeout < 0 || timeout > 1e9) { /* > 31 years: treat as forever */
        *out = MP__NEVER;
        return 0;
    }
    *out = mp__now_ns() + (int64_t)(timeout * 1e9);
    return 0;
}

int mp__deadline_ms(mp__deadline_t d)
{
    if (d == MP__NEVER)
        return -1;
    int64_t left = d - mp__now_ns();
    if (left <= 0)
        return 0;
    int64_t ms = (left + 999999) / 1000000;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

struct timespec *mp__deadline_ts(mp__deadline_t d, struct timespec *ts)
{
    if (d == MP__NEVER)
        return NULL;
    ts->tv_sec = d / 1000000000LL;
    ts->tv_nsec = d % 1000000000LL;
    return ts;
}

/* mproc/common.h: version, export macro, error codes, timeouts.
 * Included by mproc.h; do not include directly. */
#ifndef MPROC_COMMON_H
#define MPROC_COMMON_H

#include <stddef.h>

#define MP_VERSION_MAJOR 0
#define MP_VERSION_MINOR 1
#define MP_VERSION_PATCH 0

#if defined(MP_BUILDING_LIBRARY)
#define MP_API __attribute__((visibility("default")))
#else
#define MP_API
#endif

/* MP_FOREVER is the timeout that waits without limit. Any negative timeout
 * means the same; 0 means "do not wait"; NaN is rejected with -EINVAL. */
#define MP_FOREVER (-1.0)

/* Library error codes, for what Python raises as its own exceptions or
 * assertions. Everything else is a negative errno value (-EINVAL,
 * -ETIMEDOUT, -ENOMEM, -EOWNERDEAD, -EMSGSIZE, ...). The range
 * -3999..-3000 is reserved for these. */
enum {
    MP_EEMPTY = -3001,       /* queue.Empty */
    MP_EFULL = -3002,        /* queue.Full */
    MP_EEOF = -3003,         /* EOFError: end of stream */
    MP_ECLOSED = -3004,      /* object was closed (ValueError: ... is closed) */
    MP_EBROKEN = -3005,      /* threading.BrokenBarrierError */
    MP_EAUTH = -3006,        /* multiprocessing.AuthenticationError */
    MP_ETOOSHORT = -3007,    /* multiprocessing.BufferTooShort */
    MP_EWORKERDIED = -3008,  /* a pool worker died while running the task */
    MP_ESTARTED = -3009,     /* already started (start twice, daemon after start) */
    MP_ENOTSTARTED = -3010,  /* not started yet (join/sentinel before start) */
    MP_ERUNNING = -3011,     /* still running (close, exitcode of a live process) */
    MP_EDAEMON = -3012,      /* daemonic processes are not allowed to have children */
    MP_ESPAWN = -3013,       /* a child could not be bootstrapped (exec, forkserver) */
    MP_ETERMINATED = -3014,  /* the pool was terminated before the task finished */
};

/* mp_strerror names a code: a library code, a negative errno value, or 0.
 * Returns: a static string, never NULL ("unknown error" for unknown codes).
 * Safe: any thread, any process, async-signal-safe. */
MP_API const char *mp_strerror(int code);

#endif

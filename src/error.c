/* error.c: mp_strerror. MT-safe: yes (static strings only). */
#include <errno.h>
#include <string.h>

#include "mproc.h"

const char *mp_strerror(int code)
{
    switch (code) {
    case 0: return "success";
    case MP_EEMPTY: return "queue is empty";
    case MP_EFULL: return "queue is full";
    case MP_EEOF: return "end of file: every copy of the other end is closed";
    case MP_ECLOSED: return "object is closed";
    case MP_EBROKEN: return "barrier is broken";
    case MP_EAUTH: return "authentication failed";
    case MP_ETOOSHORT: return "buffer too short for the message";
    case MP_EWORKERDIED: return "worker process died while running the task";
    case MP_ESTARTED: return "process has already been started";
    case MP_ENOTSTARTED: return "process has not been started";
    case MP_ERUNNING: return "process is still running";
    case MP_EDAEMON: return "daemonic processes are not allowed to have children";
    case MP_ESPAWN: return "child process could not be bootstrapped";
    case MP_ETERMINATED: return "the pool was terminated before the task finished";
    }
    if (code < 0 && code > -4096) {
        /* strerrordesc_np returns static text (glibc 2.32+), unlike strerror,
         * which may format into a thread-unsafe buffer. */
        const char *s = strerrordesc_np(-code);
        if (s)
            return s;
    }
    return "unknown error";
}

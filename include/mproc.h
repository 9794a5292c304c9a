/* mproc.h: the public API of mproc, Python's multiprocessing and threading
 * for C on Linux. This header is the reference: each declaration is preceded
 * by a comment naming what it does, what blocks, what it returns, and the
 * Python call it corresponds to.
 *
 * Conventions: every fallible call returns 0 or a negative code (a negative
 * errno value or one of the MP_E* library codes; mp_strerror names them);
 * every blocking call takes a timeout in seconds (MP_FOREVER waits without
 * limit, 0 does not wait); constructors hand objects through an out-parameter
 * and destructors accept NULL. */
#ifndef MPROC_H
#define MPROC_H

#ifdef __cplusplus
extern "C" {
#endif

#include "mproc/common.h"
#include "mproc/process.h"
#include "mproc/thread.h"
#include "mproc/sync.h"
#include "mproc/queue.h"
#include "mproc/shared.h"
#include "mproc/value.h"
#include "mproc/conn.h"
#include "mproc/shm.h"
#include "mproc/pool.h"
#include "mproc/manager.h"

#ifdef __cplusplus
}
#endif

#endif

/* mproc/queue.h: Queue, JoinableQueue and SimpleQueue (Python's
 * multiprocessing.Queue family), carrying byte messages between threads and
 * processes. Included by mproc.h; do not include directly.
 *
 * A queue lives in the shared arena: the same handle works in every thread of
 * the process that made it and in every child process under fork, spawn and
 * forkserver (pass it in the target's argument). Messages are copied into
 * shared memory by put, before put returns, and out of it by get: there is no
 * feeder thread, so a process may exit or be joined right after put, however
 * large the message (Python deadlocks there), and a message accepted by put
 * survives its producer.
 *
 * Messages are byte strings from 0 bytes up to the queue's max_msg (default:
 * as large as memory allows, 1 GiB and more). Order is FIFO for the messages
 * of one producer; messages of several producers interleave in the order
 * their puts completed.
 *
 * Closing ends the stream, beyond Python: after mp_queue_close (by any
 * process), put fails with MP_ECLOSED, and every get returns the messages
 * still queued, then MP_EEOF, to every consumer, instead of blocking: no
 * sentinel per consumer. Python's close() only stops the calling process.
 *
 * Crash safety: a process killed at any instant (in the middle of put or get
 * included) never leaves the queue locked or a partial message visible: a
 * message is either wholly in the queue or not at all, and the others carry
 * on. A message that a consumer had taken when it was killed is gone with
 * it. The memory of a message a producer was writing when it was killed is
 * reclaimed by later large puts and gets (see docs/design-notes.md).
 *
 * Timeouts: seconds as a double; MP_FOREVER waits without limit, 0 does not
 * wait (Python's block=False); NaN is -EINVAL. NULL or freed handles return
 * -EINVAL. Each queue is freed by its creator once nobody uses it any more;
 * mp_queue_free called in another process does nothing. */
#ifndef MPROC_QUEUE_H
#define MPROC_QUEUE_H

#include <stddef.h>

typedef struct mp_queue mp_queue_t;
typedef struct mp_queue mp_simplequeue_t; /* the same machinery, fewer calls */

typedef struct {
    size_t maxsize; /* most messages queued at once; 0: unbounded (Python's default) */
    size_t max_msg; /* largest message put accepts, in bytes; 0: no limit */
} mp_queue_opts_t;

/* ---- Queue ------------------------------------------------------------------ */

/* mp_queue_new makes an empty queue. opts may be NULL (unbounded, no message
 * limit). Returns: 0 and *out; -EINVAL; -ENOMEM. Python: Queue(maxsize). */
MP_API int mp_queue_new(mp_queue_t **out, const mp_queue_opts_t *opts);

/* mp_queue_put appends a copy of buf[0..len) (len 0 is a message too; buf
 * may be NULL then).
 * Blocks: while a bounded queue is full, at most timeout seconds.
 * Returns: 0; MP_EFULL (still full at the timeout, also for timeout 0);
 *   MP_ECLOSED (the queue was closed; also when it closes while waiting);
 *   -EMSGSIZE (len > max_msg: nothing queued); -ENOMEM (no shared memory
 *   for it: nothing queued); -EINVAL. Python: Queue.put(obj, block, timeout). */
MP_API int mp_queue_put(mp_queue_t *q, const void *buf, size_t len, double timeout);

/* mp_queue_put_nowait is mp_queue_put with timeout 0. Python: put_nowait. */
MP_API int mp_queue_put_nowait(mp_queue_t *q, const void *buf, size_t len);

/* mp_queue_get removes the oldest message and copies it into buf[0..cap);
 * *len receives its size.
 * Blocks: while the queue is empty and not closed, at most timeout seconds.
 * Returns: 0; MP_EEMPTY (still empty at the timeout, also for timeout 0);
 *   MP_EEOF (the queue is closed and drained: the end of the stream);
 *   MP_ETOOSHORT (cap < the message's size: *len is set to it and the
 *   message stays first in the queue); -EINVAL (q or len NULL, or buf NULL
 *   with cap > 0). Python: Queue.get(block, timeout). */
MP_API int mp_queue_get(mp_queue_t *q, void *buf, size_t cap, size_t *len, double timeout);

/* mp_queue_get_alloc is mp_queue_get into a buffer it allocates: *out
 * receives malloc'ed memory holding the message (release it with free; a
 * 0-byte message still gets a non-NULL buffer), *len its size.
 * Returns: as mp_queue_get; -ENOMEM (the message stays queued). */
MP_API int mp_queue_get_alloc(mp_queue_t *q, void **out, size_t *len, double timeout);

/* mp_queue_get_nowait is mp_queue_get with timeout 0. Python: get_nowait. */
MP_API int mp_queue_get_nowait(mp_queue_t *q, void *buf, size_t cap, size_t *len);

/* mp_queue_qsize returns the number of messages queued (>= 0), or -EINVAL.
 * As in Python, the answer may be stale by the time the caller reads it.
 * Python: Queue.qsize(). */
MP_API long mp_queue_qsize(mp_queue_t *q);

/* mp_queue_empty and mp_queue_full return 1 or 0 (a snapshot), or -EINVAL.
 * An unbounded queue is never full. Python: empty(), full(). */
MP_API int mp_queue_empty(mp_queue_t *q);
MP_API int mp_queue_full(mp_queue_t *q);

/* mp_queue_close ends the stream for everybody: puts fail with MP_ECLOSED from
 * now on (waiting producers wake and fail), and consumers receive MP_EEOF
 * once the queued messages are gone (waiting consumers wake). Closing twice
 * is harmless. Returns: 0; -EINVAL. Python: close(), for every process. */
MP_API int mp_queue_close(mp_queue_t *q);

/* mp_queue_closed returns 1 once the queue was closed, 0 before, or -EINVAL. */
MP_API int mp_queue_closed(mp_queue_t *q);

/* mp_queue_free releases the queue and every message still in it (its
 * creator only; nobody may use it afterwards). Accepts NULL. */
MP_API void mp_queue_free(mp_queue_t *q);

/* ---- JoinableQueue ------------------------------------------------------------ */

/* mp_joinablequeue_new makes a queue that also counts unfinished tasks: each
 * put adds one, each mp_queue_task_done takes one away. Every mp_queue_*
 * call works on it. Returns: as mp_queue_new. Python: JoinableQueue(maxsize). */
MP_API int mp_joinablequeue_new(mp_queue_t **out, const mp_queue_opts_t *opts);

/* mp_queue_task_done tells that a message taken by get was processed.
 * Returns: 0; -EOVERFLOW (called more times than messages were put: Python's
 * ValueError; nothing changes); -EINVAL (NULL, or not a JoinableQueue).
 * Python: JoinableQueue.task_done(). */
MP_API int mp_queue_task_done(mp_queue_t *q);

/* mp_queue_join waits until every message put so far was taken and marked
 * done (at once if there are none).
 * Returns: 0; -ETIMEDOUT; -EINVAL (NULL, or not a JoinableQueue).
 * Python: JoinableQueue.join(), with a timeout. */
MP_API int mp_queue_join(mp_queue_t *q, double timeout);

/* ---- SimpleQueue ----------------------------------------------------------------- */

/* mp_simplequeue_new makes an unbounded queue with Python's SimpleQueue
 * calls: put and get always block (get: until a message comes or the queue is
 * closed), empty, close. opts may be NULL; opts->maxsize must be 0.
 * Returns: 0 and *out; -EINVAL; -ENOMEM. Python: SimpleQueue(). */
MP_API int mp_simplequeue_new(mp_simplequeue_t **out, const mp_queue_opts_t *opts);

/* mp_simplequeue_put: as mp_queue_put without a timeout (never full).
 * Returns: 0; MP_ECLOSED; -EMSGSIZE; -ENOMEM; -EINVAL. */
MP_API int mp_simplequeue_put(mp_simplequeue_t *q, const void *buf, size_t len);

/* mp_simplequeue_get: as mp_queue_get with MP_FOREVER.
 * Returns: 0; MP_EEOF; MP_ETOOSHORT; -EINVAL. */
MP_API int mp_simplequeue_get(mp_simplequeue_t *q, void *buf, size_t cap, size_t *len);

/* mp_simplequeue_get_alloc: as mp_queue_get_alloc with MP_FOREVER. */
MP_API int mp_simplequeue_get_alloc(mp_simplequeue_t *q, void **out, size_t *len);

/* mp_simplequeue_empty: 1 or 0, or -EINVAL. Python: SimpleQueue.empty(). */
MP_API int mp_simplequeue_empty(mp_simplequeue_t *q);

/* mp_simplequeue_close: as mp_queue_close. mp_simplequeue_free: as
 * mp_queue_free. */
MP_API int mp_simplequeue_close(mp_simplequeue_t *q);
MP_API void mp_simplequeue_free(mp_simplequeue_t *q);

#endif

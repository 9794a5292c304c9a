/* mproc/pool.h: Pool and ThreadPool (Python's multiprocessing.Pool and
 * multiprocessing.pool.ThreadPool) with AsyncResult and the imap iterators.
 * Included by mproc.h; do not include directly.
 *
 * A pool owns a fixed number of workers (processes started with the
 * program's start method, or threads) that take tasks from one shared queue.
 * Tasks are C functions; their arguments and results are bytes copied into
 * the shared arena, so the same call works under fork, spawn and forkserver.
 *
 * Task functions report an error by returning a non-zero code (a negative
 * errno value or a code of the program's own). That code comes back from get,
 * apply or map as it is. Codes the pool itself produces:
 *   MP_EWORKERDIED  the worker running the task died (SIGKILL, a crash,
 *                   _exit); the worker is replaced and every other task goes on
 *                   (Python's Pool hangs forever here);
 *   MP_ETERMINATED  the pool was terminated before the task finished;
 *   MP_ECLOSED      a task was submitted after close or terminate;
 *   -ETIMEDOUT      a wait ran out of time (the task goes on).
 *
 * Callbacks (callback, error_callback, progress) run in the process that made
 * the pool: callbacks in the pool's handler thread, progress in the thread
 * that waits (map, get, wait, next). A callback must not block on the pool.
 *
 * A pool is used only by the process that made it (any of its threads); its
 * workers are daemonic. A pool knows at most 256 distinct task functions
 * (initializer included): past that, submitting a new one returns -E2BIG. mp_pool_free terminates a pool that is still running
 * and never leaves a worker behind. */
#ifndef MPROC_POOL_H
#define MPROC_POOL_H

#include <stddef.h>
#include <sys/types.h>

typedef struct mp_pool mp_pool_t;
typedef struct mp_async mp_async_t;  /* AsyncResult and MapResult */
typedef struct mp_imap mp_imap_t;    /* IMapIterator, IMapUnorderedIterator */
typedef struct mp_out mp_out_t;      /* where a task writes its result bytes */

/* A task for apply and apply_async: arg is a copy of the bytes the caller
 * passed. It writes its result with mp_out_write (nothing written: an empty
 * result) and returns 0, or a non-zero error code. */
typedef int (*mp_task_fn)(const void *arg, size_t arg_len, mp_out_t *out);

/* A function for map and imap: in points at one input item (in_size bytes),
 * out at that item's result slot (out_size bytes, zeroed). Returns 0 or a
 * non-zero error code for this item. Python's starmap is map over an array of
 * structs: one struct holds one call's arguments. */
typedef int (*mp_map_fn)(const void *in, void *out);

/* Runs once in each worker before its first task (Python's initializer);
 * arg is a copy of the pool's initarg. */
typedef void (*mp_pool_init_fn)(const void *arg, size_t arg_len);

typedef struct {
    mp_pool_init_fn initializer;      /* NULL: none */
    const void *initarg;              /* copied; may be NULL when initarg_len is 0 */
    size_t initarg_len;
    int maxtasksperchild;             /* 0: a worker lives as long as the pool; < 0: -EINVAL */
    mp_start_method_t start_method;   /* MP_START_DEFAULT: the program's method */
} mp_pool_opts_t;

/* Called when a result is ready, in the pool's handler thread: callback on
 * success, error_callback with the code on failure. The result stays valid
 * until the caller's mp_async_free (the callback may call mp_async_get with
 * timeout 0 to read it, but must not free it). */
typedef struct {
    void (*callback)(mp_async_t *r, void *user);
    void (*error_callback)(mp_async_t *r, int err, void *user);
    void *user;
} mp_async_opts_t;

typedef struct {
    size_t chunksize;   /* items per task; 0: Python's default (map: n / (4 *
                           workers), rounded up; imap: 1) */
    /* progress(done, total, user): items finished so far, called from the
     * thread that waits, each time a task finishes; NULL: none. */
    void (*progress)(size_t done, size_t total, void *user);
    void *progress_user;
    int *item_rc;       /* NULL, or n codes filled when the map is complete:
                           0, the item's own code, MP_EWORKERDIED, ... */
    mp_async_opts_t async; /* map_async only: callbacks */
} mp_map_opts_t;

/* ---- making and ending pools ---------------------------------------------- */

/* mp_pool_new starts `processes` worker processes (mp_cpu_count() is
 * Python's default). opts may be NULL.
 * Returns: 0 and *out; -EINVAL (processes <= 0, maxtasksperchild < 0, a
 *   function that cannot be located); MP_EDAEMON (called in a daemonic
 *   process); -ENOMEM; the error of starting a worker.
 * Python: Pool(processes, initializer, initargs, maxtasksperchild). */
MP_API int mp_pool_new(mp_pool_t **out, int processes, const mp_pool_opts_t *opts);

/* mp_thread_pool_new is the same with threads (opts->start_method ignored;
 * a daemonic process may make one). Python: multiprocessing.pool.ThreadPool. */
MP_API int mp_thread_pool_new(mp_pool_t **out, int threads, const mp_pool_opts_t *opts);

/* mp_pool_close stops accepting tasks; the workers exit once every queued
 * task is done. Returns 0, MP_ECLOSED if terminated, -EINVAL. Python: close. */
MP_API int mp_pool_close(mp_pool_t *p);

/* mp_pool_terminate stops at once: every queued task fails with
 * MP_ETERMINATED (error callbacks run), worker processes are killed (their
 * tasks fail the same way). A process pool returns promptly whatever is
 * queued; a ThreadPool's workers cannot be killed, so it returns once each
 * has finished the task in hand. Called from one of the pool's callbacks or
 * ThreadPool tasks, it stops the pool and returns without waiting.
 * Python: terminate. */
MP_API int mp_pool_terminate(mp_pool_t *p);

/* mp_pool_join waits for every worker to exit, at most timeout seconds;
 * once it returned 0, every callback of the pool's results has run.
 * Returns: 0; MP_ERUNNING (neither closed nor terminated); -ETIMEDOUT;
 * -EDEADLK (called from the pool's own callback or ThreadPool task);
 * -EINVAL. Python: join. */
MP_API int mp_pool_join(mp_pool_t *p, double timeout);

/* mp_pool_free terminates the pool if it is still running, joins it and
 * frees it. Results already handed out stay readable. From the pool's own
 * callback or ThreadPool task, the pool is freed once that returns. NULL is
 * ignored. */
MP_API void mp_pool_free(mp_pool_t *p);

/* mp_pool_size: the number of workers. mp_pool_worker_pids copies the pids
 * of the current workers (0 for a slot being replaced; the thread ids for a
 * ThreadPool) into out[0..cap) and returns how many there are. */
MP_API int mp_pool_size(const mp_pool_t *p);
MP_API int mp_pool_worker_pids(mp_pool_t *p, pid_t *out, size_t cap);

/* ---- apply ------------------------------------------------------------------ */

/* mp_out_write appends len bytes to the task's result. Returns 0, -ENOMEM,
 * -EINVAL. Only inside a task. */
MP_API int mp_out_write(mp_out_t *out, const void *buf, size_t len);

/* mp_pool_apply_async queues fn(arg) and hands back its result. cb may be
 * NULL. Returns: 0 and *out; MP_ECLOSED; -EINVAL; -ENOMEM.
 * Python: apply_async(func, args, callback=, error_callback=). */
MP_API int mp_pool_apply_async(mp_pool_t *p, mp_task_fn fn, const void *arg,
                               size_t arg_len, const mp_async_opts_t *cb,
                               mp_async_t **out);

/* mp_pool_apply runs fn(arg) on a worker and waits for it. The result is
 * copied into buf[0..cap) and its length stored in *len (buf and len may be
 * NULL when the result does not matter). Returns: 0; the task's own code;
 * MP_ETOOSHORT (cap too small: *len is the size needed); MP_EWORKERDIED;
 * MP_ECLOSED; -EINVAL. Python: apply(func, args). */
MP_API int mp_pool_apply(mp_pool_t *p, mp_task_fn fn, const void *arg, size_t arg_len,
                         void *buf, size_t cap, size_t *len);

/* ---- map --------------------------------------------------------------------- */

/* mp_pool_map calls fn on each of the n items of in (in_size bytes each) and
 * writes the results to out (out_size bytes each, in input order), in chunks
 * of opts->chunksize items. Every item is attempted, also after one failed.
 * Returns: 0 (every item succeeded); otherwise the code of the failing item
 *   with the lowest index, whose index goes to *failed (may be NULL); items
 *   of a chunk whose worker died fail with MP_EWORKERDIED. -EINVAL for NULL
 *   fn, in_size 0 with n > 0, NULL in or out with n > 0; MP_ECLOSED.
 * n == 0 returns 0 at once (MP_ECLOSED on a closed pool).
 * Python: map(func, iterable, chunksize). */
MP_API int mp_pool_map(mp_pool_t *p, mp_map_fn fn, const void *in, size_t n,
                       size_t in_size, void *out, size_t out_size,
                       const mp_map_opts_t *opts, size_t *failed);

/* mp_pool_map_async is map without waiting: out must stay valid until the
 * result is ready; the results are in out once mp_async_get returned (or
 * when callback runs). mp_async_failed tells the failing index.
 * Python: map_async(func, iterable, chunksize, callback, error_callback). */
MP_API int mp_pool_map_async(mp_pool_t *p, mp_map_fn fn, const void *in, size_t n,
                             size_t in_size, void *out, size_t out_size,
                             const mp_map_opts_t *opts, mp_async_t **res);

/* ---- results ------------------------------------------------------------------ */

/* mp_async_get waits at most timeout seconds for the result.
 * Returns: 0; the task's code (map: the lowest failing item's);
 *   MP_EWORKERDIED; MP_ETERMINATED; -ETIMEDOUT (not ready yet); -EINVAL.
 * data and len (either may be NULL) receive apply's result bytes, valid
 * until mp_async_free (NULL and 0 for map). Python: AsyncResult.get. */
MP_API int mp_async_get(mp_async_t *r, double timeout, const void **data, size_t *len);

/* mp_async_wait waits at most timeout seconds. Returns 0 (ready) or
 * -ETIMEDOUT. Python: wait. */
MP_API int mp_async_wait(mp_async_t *r, double timeout);

/* mp_async_ready: 1 if the result is ready, 0 if not. Python: ready. */
MP_API int mp_async_ready(mp_async_t *r);

/* mp_async_successful: 1 if ready and successful, 0 if ready and failed,
 * -EAGAIN if not ready yet (Python raises ValueError). Python: successful. */
MP_API int mp_async_successful(mp_async_t *r);

/* mp_async_failed: for a ready map result, the lowest failing item index in
 * *index; returns 0, or -ENOENT when no item failed, -EAGAIN if not ready. */
MP_API int mp_async_failed(mp_async_t *r, size_t *index);

/* mp_async_free releases the caller's handle. A result still running goes on
 * and is released when done; a map_async with a callback still writes its
 * out buffer before the callback, which must then stay valid until it ran
 * or the pool is freed. NULL is ignored. */
MP_API void mp_async_free(mp_async_t *r);

/* ---- imap ---------------------------------------------------------------------- */

/* mp_pool_imap is map as an iterator, results in input order;
 * mp_pool_imap_unordered yields each item as soon as its chunk is done.
 * The input is copied before the call returns. opts->chunksize 0 means 1;
 * item_rc and async are not used. Returns 0 and *it; errors as map.
 * Python: imap, imap_unordered. */
MP_API int mp_pool_imap(mp_pool_t *p, mp_map_fn fn, const void *in, size_t n,
                        size_t in_size, size_t out_size, const mp_map_opts_t *opts,
                        mp_imap_t **it);
MP_API int mp_pool_imap_unordered(mp_pool_t *p, mp_map_fn fn, const void *in, size_t n,
                                  size_t in_size, size_t out_size,
                                  const mp_map_opts_t *opts, mp_imap_t **it);

/* mp_imap_next (one thread at a time per iterator) waits at most timeout
 * seconds for the next item, copies its
 * result into out (out_size bytes; may be NULL) and its input index into
 * *index (may be NULL). Returns: 0; the item's own code (the item is
 * consumed, iteration goes on); MP_EWORKERDIED; MP_EEOF once every item was
 * returned (StopIteration, again on every later call); -ETIMEDOUT (nothing
 * consumed). Python: next(it), it.next(timeout). */
MP_API int mp_imap_next(mp_imap_t *it, double timeout, void *out, size_t *index);

/* mp_imap_free releases the iterator; items still running finish unseen. */
MP_API void mp_imap_free(mp_imap_t *it);

#endif

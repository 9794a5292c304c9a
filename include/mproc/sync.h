/* mproc/sync.h: Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event,
 * Barrier (Python's threading / multiprocessing synchronization primitives).
 * Included by mproc.h; do not include directly.
 *
 * Every object lives in the shared arena: the same handle (a pointer) works in
 * every thread of the process that made it and in every child process, under
 * fork, spawn and forkserver (pass it in the target's argument). Each object
 * is freed by its creator once nobody uses it any more; mp_*_free called in
 * another process does nothing.
 *
 * Locks are owned (as mutexes): only the thread that holds a Lock or RLock
 * releases it. This is what makes them robust, beyond Python: when the holder
 * dies (its process is killed, or its thread ends) while holding the lock, the
 * next acquirer receives -EOWNERDEAD and holds the lock; the data the lock
 * protected may be half-updated, and the lock keeps working. Python's
 * threading.Lock may be released by another thread; mproc returns -EPERM.
 *
 * Timeouts: seconds as a double; MP_FOREVER waits without limit, 0 tries
 * once; NaN is -EINVAL. Every handle argument is checked: NULL or freed
 * handles return -EINVAL. */
#ifndef MPROC_SYNC_H
#define MPROC_SYNC_H

typedef struct mp_lock mp_lock_t;
typedef struct mp_rlock mp_rlock_t;
typedef struct mp_sem mp_sem_t;
typedef struct mp_cond mp_cond_t;
typedef struct mp_event mp_event_t;
typedef struct mp_barrier mp_barrier_t;

/* ---- Lock ---------------------------------------------------------------- */

/* mp_lock_new makes an unlocked Lock in the shared arena.
 * Returns: 0 and *out; -EINVAL; -ENOMEM. Python: Lock(). */
MP_API int mp_lock_new(mp_lock_t **out);

/* mp_lock_acquire takes the lock.
 * Blocks: while another thread holds it, at most timeout seconds.
 * Returns: 0; -EOWNERDEAD (acquired: the previous holder died holding it);
 *   -ETIMEDOUT (also for timeout 0 when held); -EDEADLK if the calling thread
 *   already holds it (Python would hang forever); -EINVAL.
 * Safe: any thread of any process of the family. Python: Lock.acquire(). */
MP_API int mp_lock_acquire(mp_lock_t *l, double timeout);

/* mp_lock_release releases a lock the calling thread holds.
 * Returns: 0; -EPERM if the lock is not held, or held by another thread;
 *   -EINVAL. Python: Lock.release(). */
MP_API int mp_lock_release(mp_lock_t *l);

/* mp_lock_locked returns 1 if the lock is held, 0 if not, -EINVAL.
 * Python: Lock.locked(). */
MP_API int mp_lock_locked(mp_lock_t *l);

/* mp_lock_free releases the lock's memory (its creator only). Accepts NULL. */
MP_API void mp_lock_free(mp_lock_t *l);

/* ---- RLock ----------------------------------------------------------------- */

/* mp_rlock_new, _acquire, _release, _free: a reentrant lock: the holder may
 * acquire it again; it is free once released as many times.
 * acquire returns 0, -EOWNERDEAD (acquired, count 1, previous holder died),
 * -ETIMEDOUT, -EINVAL; release returns 0, -EPERM if the caller does not hold
 * it, -EINVAL. Python: RLock(). */
MP_API int mp_rlock_new(mp_rlock_t **out);
MP_API int mp_rlock_acquire(mp_rlock_t *l, double timeout);
MP_API int mp_rlock_release(mp_rlock_t *l);
/* mp_rlock_count returns how many times the calling thread holds l (0 if it
 * does not), or -EINVAL. */
MP_API int mp_rlock_count(mp_rlock_t *l);
MP_API void mp_rlock_free(mp_rlock_t *l);

/* ---- Semaphore, BoundedSemaphore ------------------------------------------- */

/* mp_sem_new makes a Semaphore with the initial value (>= 0); with bounded
 * set it is a BoundedSemaphore: releasing above the initial value is an
 * error, and slots held by threads that died are given back to others.
 * A plain Semaphore does not track holders (any thread may release it, as in
 * Python): slots taken by a thread that dies stay taken.
 * Returns: 0 and *out; -EINVAL (negative value, or bounded with value 0 or
 *   above MP_SEM_BOUNDED_MAX); -ENOMEM.
 * Python: Semaphore(value), BoundedSemaphore(value). */
#define MP_SEM_BOUNDED_MAX 4096
MP_API int mp_sem_new(mp_sem_t **out, int value, int bounded);

/* mp_sem_acquire takes one slot.
 * Blocks: while the value is 0, at most timeout seconds.
 * Returns: 0; -ETIMEDOUT; -EINVAL. Python: Semaphore.acquire(). */
MP_API int mp_sem_acquire(mp_sem_t *s, double timeout);

/* mp_sem_release gives back n slots (n >= 1) and wakes as many waiters.
 * Returns: 0; -EOVERFLOW if a BoundedSemaphore would go above its initial
 *   value (nothing is released); -EINVAL. Python: Semaphore.release(n). */
MP_API int mp_sem_release(mp_sem_t *s, int n);

/* mp_sem_value returns the current value (>= 0) or -EINVAL. */
MP_API int mp_sem_value(mp_sem_t *s);
MP_API void mp_sem_free(mp_sem_t *s);

/* ---- Condition ------------------------------------------------------------- */

/* mp_cond_new makes a Condition over a Lock or an RLock (exactly one of the
 * two may be given; both NULL: the Condition makes its own RLock, as Python).
 * Returns: 0 and *out; -EINVAL (both given); -ENOMEM. Python: Condition(lock). */
MP_API int mp_cond_new(mp_cond_t **out, mp_lock_t *lock, mp_rlock_t *rlock);

/* mp_cond_acquire and mp_cond_release act on the underlying lock (same
 * returns as mp_lock_acquire/mp_rlock_acquire and their release).
 * Python: with cond: ... */
MP_API int mp_cond_acquire(mp_cond_t *c, double timeout);
MP_API int mp_cond_release(mp_cond_t *c);

/* mp_cond_wait releases the lock, waits for a notify, and takes the lock back
 * (fully, for an RLock held several times) before it returns.
 * Blocks: at most timeout seconds for the notify; taking the lock back is not
 *   bounded (as Python).
 * Returns: 0 when notified; -ETIMEDOUT; -EPERM if the caller does not hold the
 *   lock; -EOWNERDEAD if the lock's holder died while we waited (we hold it);
 *   -ENOMEM if the arena cannot hold one more waiter; -EINVAL.
 * Waiters are woken in arrival order; notify(n) wakes exactly n of them.
 * Python: Condition.wait(timeout). */
MP_API int mp_cond_wait(mp_cond_t *c, double timeout);

/* mp_cond_pred_fn is a predicate for mp_cond_wait_for: non-zero when true. */
typedef int (*mp_cond_pred_fn)(void *arg);

/* mp_cond_wait_for waits until pred(arg) is true, checking it under the lock
 * first and after every notify, at most timeout seconds in all.
 * Returns: 1 if pred became true, 0 if the timeout passed first (the caller
 *   holds the lock in both cases); -EPERM; -EINVAL.
 * Python: Condition.wait_for(predicate, timeout). */
MP_API int mp_cond_wait_for(mp_cond_t *c, mp_cond_pred_fn pred, void *arg, double timeout);

/* mp_cond_notify wakes up to n waiters (n >= 1); mp_cond_notify_all wakes
 * every waiter. The caller must hold the lock.
 * Returns: 0; -EPERM; -EINVAL. Python: Condition.notify(n), notify_all(). */
MP_API int mp_cond_notify(mp_cond_t *c, int n);
MP_API int mp_cond_notify_all(mp_cond_t *c);

/* mp_cond_free frees the Condition (and the RLock it made for itself). */
MP_API void mp_cond_free(mp_cond_t *c);

/* ---- Event ----------------------------------------------------------------- */

/* mp_event_new makes a cleared Event. Python: Event(). */
MP_API int mp_event_new(mp_event_t **out);

/* mp_event_set sets the flag and wakes every waiter; mp_event_clear clears it.
 * Return 0 or -EINVAL. Python: Event.set(), Event.clear(). */
MP_API int mp_event_set(mp_event_t *e);
MP_API int mp_event_clear(mp_event_t *e);

/* mp_event_is_set returns 1 or 0, or -EINVAL. Python: Event.is_set(). */
MP_API int mp_event_is_set(mp_event_t *e);

/* mp_event_wait waits until the flag is set.
 * Blocks: at most timeout seconds.
 * Returns: 0 once set; -ETIMEDOUT if still clear at the deadline; -EINVAL.
 * Python: Event.wait(timeout) (True/False). */
MP_API int mp_event_wait(mp_event_t *e, double timeout);
MP_API void mp_event_free(mp_event_t *e);

/* ---- Barrier --------------------------------------------------------------- */

/* mp_barrier_action_fn runs once per round, in the last party to arrive,
 * before any party leaves; a non-zero return breaks the barrier. Under spawn
 * and forkserver it must be a function of the program (found by module and
 * offset, as process targets). */
typedef int (*mp_barrier_action_fn)(void *arg);

/* mp_barrier_new makes a Barrier for parties (>= 1) threads or processes,
 * with an optional action (arg is copied: arg_len bytes, at most 4096) and a
 * default timeout used by mp_barrier_wait(b, MP_BARRIER_DEFAULT).
 * Returns: 0 and *out; -EINVAL; -ENOMEM.
 * Python: Barrier(parties, action, timeout). */
MP_API int mp_barrier_new(mp_barrier_t **out, int parties, mp_barrier_action_fn action,
                          const void *arg, size_t arg_len, double timeout);

/* MP_BARRIER_DEFAULT as a timeout means "the barrier's default timeout". */
#define MP_BARRIER_DEFAULT (-2.0)

/* mp_barrier_wait waits until parties callers have arrived.
 * Blocks: at most timeout seconds; on timeout the barrier breaks for every
 *   waiter (as Python).
 * Returns: the arrival index, 0..parties-1, distinct for each party of a
 *   round; MP_EBROKEN if the barrier is or becomes broken (abort, reset while
 *   waiting, timeout, failing action, a party that died inside the barrier's
 *   bookkeeping); -EINVAL. A round that completed is a success for all its
 *   parties, even those that wake only after a later abort (Python raises
 *   BrokenBarrierError in them), and the next round may fill before they
 *   have left. Python: Barrier.wait(timeout). */
MP_API int mp_barrier_wait(mp_barrier_t *b, double timeout);

/* mp_barrier_abort breaks the barrier: current and future waiters get
 * MP_EBROKEN until reset. mp_barrier_reset returns it to the empty state;
 * parties waiting at that moment get MP_EBROKEN. Return 0 or -EINVAL.
 * Python: Barrier.abort(), Barrier.reset(). */
MP_API int mp_barrier_abort(mp_barrier_t *b);
MP_API int mp_barrier_reset(mp_barrier_t *b);

/* mp_barrier_parties, mp_barrier_n_waiting, mp_barrier_broken: the number of
 * parties, how many wait now, whether it is broken (1/0); -EINVAL.
 * Python: Barrier.parties, n_waiting, broken. */
MP_API int mp_barrier_parties(mp_barrier_t *b);
MP_API int mp_barrier_n_waiting(mp_barrier_t *b);
MP_API int mp_barrier_broken(mp_barrier_t *b);
MP_API void mp_barrier_free(mp_barrier_t *b);

#endif

/* mproc/shared.h: Value, Array, RawValue and RawArray (Python's
 * multiprocessing.Value, Array, RawValue, RawArray): typed C data in shared
 * memory, with an optional lock. Included by mproc.h; do not include directly.
 *
 * Each object lives in the shared arena: the same handle (a pointer) works in
 * every thread of the process that made it and in every child process under
 * fork, spawn and forkserver (pass it in the target's argument), and so does
 * the address mp_value_ptr / mp_array_ptr return. Each object is freed by its
 * creator once nobody uses it any more; mp_value_free / mp_array_free called
 * in another process does nothing.
 *
 * The lock: by default a Value or Array makes its own RLock (as Python); a
 * caller may pass its own Lock or RLock instead (Python's lock=<a lock>: several
 * objects can then share one lock), or ask for none (Python's lock=False, and
 * RawValue / RawArray). Every get, set and add takes the lock for the time of
 * one copy, so each of them is atomic with respect to every other locked user.
 * mp_value_add is the one-call correct form of Python's `v.value += 1`; a
 * get followed by a set is not atomic (another process may update the value
 * between them: lost updates), even with a lock, unless the caller holds the
 * lock around both (mp_value_acquire .. mp_value_release).
 *
 * Waiting: get, set and add wait for the lock without a limit, as Python's
 * .value does; the lock is only held for one copy by these calls, and a holder
 * that dies frees it (below). A caller that needs a bound takes the lock with
 * mp_value_acquire(v, timeout) and works through mp_value_ptr.
 *
 * A holder that dies: the locks are robust (see sync.h). When a process or
 * thread died holding the object's lock, the next get, set or add takes the
 * lock over, does its work (the copy is made, *out / *result are written), and
 * returns -EOWNERDEAD instead of 0, once, to say that the data may have been
 * half-written by the dead holder; the lock is released as usual and keeps
 * working, and later calls return 0. mp_value_acquire returns -EOWNERDEAD
 * (acquired) in the same case, as mp_lock_acquire does.
 *
 * A caller's own plain Lock is not reentrant: get, set and add called by the
 * thread that holds it return -EDEADLK (Python would hang). The default RLock
 * is reentrant: they work while the caller holds it.
 *
 * Every handle argument is checked: NULL or freed handles return -EINVAL. */
#ifndef MPROC_SHARED_H
#define MPROC_SHARED_H

#include <stddef.h>
#include <stdint.h>

typedef struct mp_value mp_value_t;
typedef struct mp_array mp_array_t;

/* mp_type_t names the C type of an element, after Python's typecodes. */
typedef enum {
    MP_TYPE_CHAR = 1, /* 'c'  char (Python: a bytes object of length 1) */
    MP_TYPE_SCHAR,    /* 'b'  signed char */
    MP_TYPE_UCHAR,    /* 'B'  unsigned char */
    MP_TYPE_SHORT,    /* 'h'  short */
    MP_TYPE_USHORT,   /* 'H'  unsigned short */
    MP_TYPE_INT,      /* 'i'  int */
    MP_TYPE_UINT,     /* 'I'  unsigned int */
    MP_TYPE_LONG,     /* 'l'  long */
    MP_TYPE_ULONG,    /* 'L'  unsigned long */
    MP_TYPE_LLONG,    /* 'q'  long long */
    MP_TYPE_ULLONG,   /* 'Q'  unsigned long long */
    MP_TYPE_FLOAT,    /* 'f'  float */
    MP_TYPE_DOUBLE,   /* 'd'  double */
    MP_TYPE_STRUCT,   /* a fixed-size struct (Python: a ctypes.Structure);
                       * its size is given at creation */
} mp_type_t;

/* The largest struct_size accepted (1 GiB). */
#define MP_SHARED_STRUCT_MAX ((size_t)1 << 30)

/* mp_type_from_code maps a Python typecode ('c', 'b', 'B', 'h', 'H', 'i',
 * 'I', 'l', 'L', 'q', 'Q', 'f', 'd') to its mp_type_t.
 * Returns: the type (> 0); -EINVAL for any other character.
 * Python: the typecode_or_type argument of Value / Array. */
MP_API int mp_type_from_code(int code);

/* mp_type_size returns the size in bytes of an element of type t (a struct's
 * size is the caller's: -EINVAL for MP_TYPE_STRUCT), or -EINVAL.
 * Python: ctypes.sizeof. */
MP_API int mp_type_size(mp_type_t t);

/* The lock of a Value or Array. */
typedef enum {
    MP_SHARED_LOCK_DEFAULT = 0, /* a new RLock of its own (Python's lock=True) */
    MP_SHARED_LOCK_NONE,        /* no lock: raw (lock=False, RawValue, RawArray) */
    MP_SHARED_LOCK_LOCK,        /* the caller's Lock, in opts.lock */
    MP_SHARED_LOCK_RLOCK,       /* the caller's RLock, in opts.rlock */
} mp_shared_lock_kind_t;

typedef struct {
    mp_shared_lock_kind_t lock_kind; /* 0: a new RLock */
    mp_lock_t *lock;                 /* with MP_SHARED_LOCK_LOCK; else NULL */
    mp_rlock_t *rlock;               /* with MP_SHARED_LOCK_RLOCK; else NULL */
} mp_shared_opts_t;

/* ---- Value ----------------------------------------------------------------- */

/* mp_value_new makes a Value of type type (struct_size bytes for
 * MP_TYPE_STRUCT, 1..MP_SHARED_STRUCT_MAX; 0 for every other type) holding a
 * copy of init (NULL: zero bytes). opts may be NULL (a new RLock).
 * A caller's lock is not freed with the Value and must outlive it.
 * Returns: 0 and *out; -EINVAL (out NULL, unknown type, bad struct_size,
 *   bad opts: an unknown kind, a missing or freed lock, a lock given with
 *   another kind); -ENOMEM (no shared memory). Nothing is made on failure.
 * Python: Value(typecode_or_type, *args, lock=True). */
MP_API int mp_value_new(mp_value_t **out, mp_type_t type, size_t struct_size, const void *init,
                        const mp_shared_opts_t *opts);

/* mp_rawvalue_new is mp_value_new without a lock.
 * Returns: as mp_value_new. Python: RawValue(typecode_or_type, *args). */
MP_API int mp_rawvalue_new(mp_value_t **out, mp_type_t type, size_t struct_size, const void *init);

/* mp_value_get copies the value (its element size, mp_value_size) into out,
 * under the lock. Blocks: while another thread holds the lock.
 * Returns: 0; -EOWNERDEAD (copied; a holder had died, see above); -EDEADLK
 *   (the caller holds the caller's plain Lock); -EINVAL.
 * Python: v.value. */
MP_API int mp_value_get(mp_value_t *v, void *out);

/* mp_value_set copies the value from in, under the lock.
 * Returns: as mp_value_get. Python: v.value = x. */
MP_API int mp_value_set(mp_value_t *v, const void *in);

/* mp_value_get_i64 reads an integer or char value as an int64_t;
 * mp_value_set_i64 stores x into one.
 * Returns: 0; -EOWNERDEAD (done, see above); -ERANGE (the value, or x, does not
 *   fit the other type: nothing is written); -EDEADLK; -EINVAL (also for a
 *   float, double or struct Value). Python: v.value, v.value = x. */
MP_API int mp_value_get_i64(mp_value_t *v, int64_t *out);
MP_API int mp_value_set_i64(mp_value_t *v, int64_t x);

/* mp_value_get_double and mp_value_set_double: the same for float and
 * double Values (set rounds to float for MP_TYPE_FLOAT).
 * Returns: 0; -EOWNERDEAD; -EDEADLK; -EINVAL (not a float or double Value). */
MP_API int mp_value_get_double(mp_value_t *v, double *out);
MP_API int mp_value_set_double(mp_value_t *v, double x);

/* mp_value_add adds delta to an integer or char Value in one step under the
 * lock (atomic with respect to every other locked user) and gives the new
 * value in *result (may be NULL).
 * Returns: 0; -EOWNERDEAD (added, see above); -ERANGE (the sum does not fit
 *   the type: nothing changes; Python's ctypes would wrap silently); -EDEADLK;
 *   -EINVAL (also for float, double and struct Values).
 * Python: with v.get_lock(): v.value += delta. A raw Value has no lock: add is
 *   then a plain read-modify-write, as Python's. */
MP_API int mp_value_add(mp_value_t *v, int64_t delta, int64_t *result);

/* mp_value_add_double is mp_value_add for float and double Values. */
MP_API int mp_value_add_double(mp_value_t *v, double delta, double *result);

/* mp_value_size returns the size of the value in bytes (> 0), or -EINVAL. */
MP_API long mp_value_size(mp_value_t *v);

/* mp_value_get_lock tells which lock v has: it returns MP_SHARED_LOCK_NONE
 * (raw), MP_SHARED_LOCK_LOCK (*lock gets it) or MP_SHARED_LOCK_RLOCK (*rlock
 * gets it; also for the default lock, an RLock); the other out-parameter gets
 * NULL (either may be NULL). Returns -EINVAL for a bad handle.
 * Python: v.get_lock(). */
MP_API int mp_value_get_lock(mp_value_t *v, mp_lock_t **lock, mp_rlock_t **rlock);

/* mp_value_acquire takes v's lock; mp_value_release releases it.
 * Blocks: acquire, at most timeout seconds.
 * Returns: as mp_lock_acquire / mp_rlock_acquire and their release;
 *   -ENOLCK for a raw Value (it has no lock); -EINVAL.
 * Python: with v.get_lock(): ... (v.acquire(), v.release()). */
MP_API int mp_value_acquire(mp_value_t *v, double timeout);
MP_API int mp_value_release(mp_value_t *v);

/* mp_value_ptr returns the address of the value's bytes (16-byte aligned,
 * the same in every process of the family), or NULL for a bad handle. The
 * caller does its own locking. Python: ctypes access to v.get_obj(). */
MP_API void *mp_value_ptr(mp_value_t *v);

/* mp_value_free releases v and the RLock it made for itself (its creator
 * only; nobody may use it afterwards). Accepts NULL. */
MP_API void mp_value_free(mp_value_t *v);

/* ---- Array ----------------------------------------------------------------- */

/* mp_array_new makes an Array of n elements (n may be 0, as Python's) of type
 * type (struct_size as for mp_value_new), holding a copy of init[0..n) (NULL:
 * zero bytes). opts as for mp_value_new.
 * Returns: 0 and *out; -EINVAL (as mp_value_new; n * size overflows);
 *   -ENOMEM (no shared memory for it). Nothing is made on failure.
 * Python: Array(typecode_or_type, size_or_initializer, lock=True). */
MP_API int mp_array_new(mp_array_t **out, mp_type_t type, size_t struct_size, size_t n,
                        const void *init, const mp_shared_opts_t *opts);

/* mp_rawarray_new is mp_array_new without a lock.
 * Python: RawArray(typecode_or_type, size_or_initializer). */
MP_API int mp_rawarray_new(mp_array_t **out, mp_type_t type, size_t struct_size, size_t n,
                           const void *init);

/* mp_array_len returns the number of elements (>= 0), or -EINVAL.
 * Python: len(a). */
MP_API long mp_array_len(mp_array_t *a);

/* mp_array_itemsize returns the size of one element in bytes, or -EINVAL. */
MP_API long mp_array_itemsize(mp_array_t *a);

/* mp_array_get copies element i (0 <= i < len) into out, under the lock;
 * mp_array_set copies it from in.
 * Returns: 0; -EOWNERDEAD (done, see above); -EINVAL (i out of range:
 *   Python's IndexError; nothing is written; NULL arguments); -EDEADLK.
 * Python: a[i], a[i] = x (negative indexes: use len - k). */
MP_API int mp_array_get(mp_array_t *a, size_t i, void *out);
MP_API int mp_array_set(mp_array_t *a, size_t i, const void *in);

/* mp_array_get_slice copies elements [start, stop) into out, under the lock
 * (one copy: atomic with respect to other locked users); mp_array_set_slice
 * copies them from in. start == stop is an empty slice (out/in may be NULL).
 * Returns: 0; -EOWNERDEAD (done); -EINVAL (start > stop or stop > len: nothing
 *   is written; NULL buffer for a non-empty slice); -EDEADLK.
 * Python: a[start:stop], a[start:stop] = seq (same length). */
MP_API int mp_array_get_slice(mp_array_t *a, size_t start, size_t stop, void *out);
MP_API int mp_array_set_slice(mp_array_t *a, size_t start, size_t stop, const void *in);

/* mp_array_ptr returns the address of element 0 (16-byte aligned, the same in
 * every process of the family; valid also for an empty Array), or NULL for a
 * bad handle. The caller does its own locking (mp_array_acquire).
 * Python: a.get_obj(), memoryview. */
MP_API void *mp_array_ptr(mp_array_t *a);

/* mp_array_get_lock, mp_array_acquire, mp_array_release: as the Value calls.
 * Python: a.get_lock(), with a.get_lock(): ... */
MP_API int mp_array_get_lock(mp_array_t *a, mp_lock_t **lock, mp_rlock_t **rlock);
MP_API int mp_array_acquire(mp_array_t *a, double timeout);
MP_API int mp_array_release(mp_array_t *a);

/* mp_array_free releases a and the RLock it made for itself (its creator
 * only). Accepts NULL. */
MP_API void mp_array_free(mp_array_t *a);

#endif

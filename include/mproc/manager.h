/* mproc/manager.h: Manager (Python's multiprocessing.Manager and
 * multiprocessing.managers.BaseManager): a server process that holds shared
 * objects (dict, list, Namespace, Queue, JoinableQueue, Lock, RLock,
 * Semaphore, BoundedSemaphore, Condition, Event, Barrier, Value, Array and
 * types the program registers) which other processes use through proxies,
 * on this machine or across the network behind an authkey.
 * Included by mproc.h; do not include directly.
 *
 * Values are structured values (mproc/value.h): nil, bool, integers,
 * floats, strings, bytes, arrays and maps, nested. A proxy stored in a dict
 * or list is stored as a value (mp_proxy_value) and turned back into a live
 * proxy with mp_proxy_from_value.
 *
 * A proxy is a handle in the shared arena: a child process receives it in its
 * target's argument and uses it under fork, spawn and forkserver; each
 * process (and each thread) talks to the manager over its own connection,
 * opened on first use with the family's authkey. A proxy made by
 * mp_manager_connect in an unrelated program is that program's own.
 *
 * Every call returns 0 or a negative code. Codes of the manager:
 *   MP_EEOF          the manager is gone (shut down, killed): every later call
 *                    says so at once (no hang);
 *   MP_EAUTH         wrong authkey (both ends refuse);
 *   -ENOENT          no such key (dict: KeyError), no such registered name;
 *   -ERANGE          index out of range (list, Array: IndexError);
 *   -EINVAL          bad argument (wrong value type for the object...);
 *   -ENOSYS          no such method for this object (or a private one);
 *   -EMSGSIZE        a request or reply over the limit (max_message);
 *   -EOWNERDEAD      acquired, but the client that held the lock died
 *                    (the server noticed its connection drop and released it);
 *   MP_EEMPTY, MP_EFULL, MP_EBROKEN, -ETIMEDOUT as for the local objects.
 * Blocking calls take a timeout in seconds (MP_FOREVER: no limit); the
 * server enforces it, and a manager that dies while a call waits ends it
 * with MP_EEOF. */
#ifndef MPROC_MANAGER_H
#define MPROC_MANAGER_H

#include <stddef.h>
#include <stdint.h>

typedef struct mp_manager mp_manager_t;
typedef struct mp_proxy mp_proxy_t;
typedef struct mp_mserver mp_mserver_t;

/* ---- custom types (BaseManager.register) --------------------------------- */

/* A method of a registered type runs in the server, under the server's lock
 * (one call at a time per server: it must not block). args are the call's
 * arguments; on success it stores a new value in *result (mp_val_t built by
 * the method and released by the server with free_result, or NULL for nil)
 * and returns 0; otherwise a negative code returned to the caller. */
typedef struct mp_val mp_val_t;
typedef int (*mp_mmethod_fn)(void *self, const mp_val_t *args, size_t nargs,
                             mp_val_t **result);

typedef struct {
    const char *name;          /* method name; names starting with '_' are
                                  never exposed (-ENOSYS) */
    mp_mmethod_fn fn;
} mp_mmethod_t;

typedef struct {
    const char *name;          /* the type id: mp_manager_create(m, name, ...) */
    /* new makes an object from the creation arguments (*self); free
     * releases it; free_result releases a result of a method (NULL: free()
     * of the top value; values from mp_val_unpack use mp_val_free). */
    int (*new_obj)(void **self, const mp_val_t *args, size_t nargs);
    void (*free_obj)(void *self);
    void (*free_result)(mp_val_t *result);
    const mp_mmethod_t *methods;
    size_t nmethods;
} mp_mtype_t;

/* ---- starting, connecting, shutting down ------------------------------------ */

typedef struct {
    const char *address;       /* NULL: a fresh abstract unix address; or any
                                  mp_listener_new address ("host:port"...) */
    const void *authkey;       /* NULL: the current process's authkey */
    size_t authkey_len;
    mp_start_method_t start_method; /* MP_START_DEFAULT: the program's */
    void (*initializer)(const void *arg, size_t len); /* run in the server first */
    const void *initarg;
    size_t initarg_len;
    size_t max_message;        /* largest request/reply in bytes; 0: 64 MiB */
    const mp_mtype_t *const *types; /* custom types, NULL-terminated (or NULL) */
} mp_manager_opts_t;

/* mp_manager_start starts a manager server process and connects to it.
 * The server exits when mp_manager_shutdown is called, when this process
 * exits (shut down at exit, as Python's finalizer does) and when this
 * process dies (it watches its parent: no orphan server).
 * Returns: 0 and *out; -EINVAL; MP_EDAEMON; -EADDRINUSE; the error of
 * starting the process or of connecting. Python: Manager(), BaseManager.start. */
MP_API int mp_manager_start(mp_manager_t **out, const mp_manager_opts_t *opts);

/* mp_manager_connect connects to a running manager (started by another
 * program, or by mp_mserver_serve_forever) at address with authkey (NULL:
 * the process's key). Returns 0 and *out; MP_EAUTH; -ECONNREFUSED/-ENOENT;
 * -ETIMEDOUT. Python: BaseManager(address, authkey).connect(). */
MP_API int mp_manager_connect(mp_manager_t **out, const char *address,
                              const void *authkey, size_t authkey_len, double timeout);

/* mp_manager_address: the address clients connect to. */
MP_API const char *mp_manager_address(const mp_manager_t *m);

/* mp_manager_shutdown stops a manager this process started, and waits for
 * its server to exit (at most timeout seconds; then it is killed). On a
 * manager that was connected to, it asks the server to stop serving
 * (mp_mserver_serve_forever returns; 0 also if it was gone already).
 * Returns 0; -EPERM (started by another process); -EINVAL.
 * Python: shutdown(). */
MP_API int mp_manager_shutdown(mp_manager_t *m, double timeout);

/* mp_manager_exitcode: the server's exit code once shut down (0 after
 * mp_manager_shutdown); MP_ERUNNING while it runs; -EPERM if connected. */
MP_API int mp_manager_exitcode(mp_manager_t *m, int *code);

/* mp_manager_pid: the server's pid (0 if connected to). */
MP_API pid_t mp_manager_pid(const mp_manager_t *m);

/* mp_manager_free shuts down a started manager that still runs, closes the
 * connections and frees the handle. Proxies made from it stay valid
 * handles whose calls return MP_EEOF once the server is gone. */
MP_API void mp_manager_free(mp_manager_t *m);

/* ---- serving in this process (BaseManager.get_server().serve_forever) ------- */

/* mp_mserver_new makes a server listening on opts->address with
 * opts->authkey (clients: mp_manager_connect). Returns 0 and *out, -errno,
 * -EADDRINUSE. */
MP_API int mp_mserver_new(mp_mserver_t **out, const mp_manager_opts_t *opts);

/* mp_mserver_add makes a shared object of type `type` ("dict", "Queue",
 * a registered type...) with the creation arguments, reachable by clients
 * under `name` (mp_manager_get). Python: register(name, callable=lambda: obj). */
MP_API int mp_mserver_add(mp_mserver_t *s, const char *name, const char *type,
                          const mp_val_t *args, size_t nargs);

/* mp_mserver_address: the bound address (the real port when 0 was asked). */
MP_API const char *mp_mserver_address(const mp_mserver_t *s);

/* mp_mserver_serve_forever serves until a client calls mp_manager_shutdown
 * on it or mp_mserver_stop is called (from another thread or a signal
 * handler). Returns 0 or -errno. */
MP_API int mp_mserver_serve_forever(mp_mserver_t *s);
MP_API void mp_mserver_stop(mp_mserver_t *s);
MP_API void mp_mserver_free(mp_mserver_t *s);

/* ---- making objects ------------------------------------------------------------ */

/* mp_manager_create makes a new object of `type` in the server and returns a
 * proxy to it. Built-in types: "dict", "list", "Namespace", "Queue"
 * (args: [maxsize]), "JoinableQueue" ([maxsize]), "Lock", "RLock",
 * "Semaphore" ([value]), "BoundedSemaphore" ([value]), "Condition"
 * ([lock proxy value] or none), "Event", "Barrier" ([parties]), "Value"
 * ([typecode string, value]), "Array" ([typecode string, array]); and the
 * registered ones. The object lives until every proxy to it... is freed by
 * the process that created it (mp_proxy_free there), or the server ends.
 * Python: manager.dict(), manager.list(), ..., manager.<typeid>(). */
MP_API int mp_manager_create(mp_manager_t *m, const char *type, const mp_val_t *args,
                             size_t nargs, mp_proxy_t **out);

/* Shorthands of mp_manager_create. */
MP_API int mp_manager_dict(mp_manager_t *m, mp_proxy_t **out);
MP_API int mp_manager_list(mp_manager_t *m, mp_proxy_t **out);
MP_API int mp_manager_namespace(mp_manager_t *m, mp_proxy_t **out);
MP_API int mp_manager_queue(mp_manager_t *m, size_t maxsize, mp_proxy_t **out);
MP_API int mp_manager_joinable_queue(mp_manager_t *m, size_t maxsize, mp_proxy_t **out);
MP_API int mp_manager_lock(mp_manager_t *m, mp_proxy_t **out);
MP_API int mp_manager_rlock(mp_manager_t *m, mp_proxy_t **out);
MP_API int mp_manager_semaphore(mp_manager_t *m, int64_t value, mp_proxy_t **out);
MP_API int mp_manager_bounded_semaphore(mp_manager_t *m, int64_t value, mp_proxy_t **out);
MP_API int mp_manager_condition(mp_manager_t *m, mp_proxy_t *lock, mp_proxy_t **out);
MP_API int mp_manager_event(mp_manager_t *m, mp_proxy_t **out);
MP_API int mp_manager_barrier(mp_manager_t *m, int64_t parties, mp_proxy_t **out);
MP_API int mp_manager_value(mp_manager_t *m, const char *typecode, const mp_val_t *init,
                            mp_proxy_t **out);
MP_API int mp_manager_array(mp_manager_t *m, const char *typecode, const mp_val_t *items,
                            mp_proxy_t **out);

/* mp_manager_get returns a proxy to the object a server published under
 * name (mp_mserver_add). -ENOENT if there is none. Python: manager.<name>(). */
MP_API int mp_manager_get(mp_manager_t *m, const char *name, mp_proxy_t **out);

/* ---- proxies -------------------------------------------------------------------- */

/* mp_proxy_call calls method with args on the object and stores its result
 * in *result (release with mp_val_free; result may be NULL to drop it).
 * timeout bounds the wait for the reply (MP_FOREVER: none). Every method of
 * every type can be called this way; the functions below are shorthands. */
MP_API int mp_proxy_call(mp_proxy_t *p, const char *method, const mp_val_t *args,
                         size_t nargs, mp_val_t **result, double timeout);

/* mp_proxy_type: the type name ("dict"...). mp_proxy_free releases the
 * handle; in the process that created the object it also deletes the
 * object in the server. NULL is ignored. */
MP_API const char *mp_proxy_type(const mp_proxy_t *p);
MP_API void mp_proxy_free(mp_proxy_t *p);

/* A proxy as a value (to store in a dict, list, queue) and back. The value
 * is a map {"__mproc_proxy__": [address, id, type]}. */
MP_API int mp_proxy_value(const mp_proxy_t *p, mp_val_t **out);
MP_API int mp_proxy_from_value(const mp_val_t *v, mp_proxy_t **out);

/* dict and Namespace (keys of a Namespace are strings). Python: d[k] = v,
 * d[k], del d[k], k in d, len(d), d.keys(), d.items(), d.get(k, default)... */
MP_API int mp_dict_set(mp_proxy_t *d, const mp_val_t *key, const mp_val_t *val);
MP_API int mp_dict_get(mp_proxy_t *d, const mp_val_t *key, mp_val_t **val); /* -ENOENT */
MP_API int mp_dict_del(mp_proxy_t *d, const mp_val_t *key);                 /* -ENOENT */
MP_API int mp_dict_contains(mp_proxy_t *d, const mp_val_t *key);            /* 1 or 0 */
MP_API int mp_dict_len(mp_proxy_t *d, size_t *n);
MP_API int mp_dict_keys(mp_proxy_t *d, mp_val_t **keys);   /* an array, insertion order */
MP_API int mp_dict_items(mp_proxy_t *d, mp_val_t **items); /* a map, insertion order */
/* d[k] += delta for an integer or float value (a missing key counts as 0);
 * the new value in *now (may be NULL). Atomic in the server. */
MP_API int mp_dict_incr(mp_proxy_t *d, const mp_val_t *key, const mp_val_t *delta,
                        mp_val_t **now);

/* list. Negative indexes count from the end, as in Python. */
MP_API int mp_list_append(mp_proxy_t *l, const mp_val_t *v);
MP_API int mp_list_extend(mp_proxy_t *l, const mp_val_t *array);
MP_API int mp_list_insert(mp_proxy_t *l, int64_t index, const mp_val_t *v);
MP_API int mp_list_pop(mp_proxy_t *l, int64_t index, mp_val_t **v);      /* -ERANGE */
MP_API int mp_list_get(mp_proxy_t *l, int64_t index, mp_val_t **v);      /* -ERANGE */
MP_API int mp_list_set(mp_proxy_t *l, int64_t index, const mp_val_t *v); /* -ERANGE */
MP_API int mp_list_del(mp_proxy_t *l, int64_t index);                    /* -ERANGE */
MP_API int mp_list_len(mp_proxy_t *l, size_t *n);
/* l[start:stop] (an array) and l[start:stop] = array, Python's clamping. */
MP_API int mp_list_slice(mp_proxy_t *l, int64_t start, int64_t stop, mp_val_t **array);
MP_API int mp_list_set_slice(mp_proxy_t *l, int64_t start, int64_t stop,
                             const mp_val_t *array);
MP_API int mp_list_incr(mp_proxy_t *l, int64_t index, const mp_val_t *delta, mp_val_t **now);

/* Value (the typecode decides what is accepted). An Array answers the
 * list's calls that keep its length: mp_list_get, _set, _len, _slice,
 * _set_slice (same length only) and _incr. */
MP_API int mp_mvalue_get(mp_proxy_t *v, mp_val_t **val);
MP_API int mp_mvalue_set(mp_proxy_t *v, const mp_val_t *val);
MP_API int mp_mvalue_incr(mp_proxy_t *v, const mp_val_t *delta, mp_val_t **now);

/* Queue and JoinableQueue: the Queue semantics of mproc/queue.h. */
MP_API int mp_mqueue_put(mp_proxy_t *q, const mp_val_t *v, double timeout);  /* MP_EFULL */
MP_API int mp_mqueue_get(mp_proxy_t *q, mp_val_t **v, double timeout);       /* MP_EEMPTY */
MP_API int mp_mqueue_qsize(mp_proxy_t *q, size_t *n);
MP_API int mp_mqueue_task_done(mp_proxy_t *q);                               /* -EINVAL */
MP_API int mp_mqueue_join(mp_proxy_t *q, double timeout);

/* Lock, RLock, Semaphore, BoundedSemaphore (acquire: -ETIMEDOUT; release of
 * a lock not held: -EPERM; a BoundedSemaphore released too often: -EOVERFLOW). */
MP_API int mp_mlock_acquire(mp_proxy_t *l, double timeout);
MP_API int mp_mlock_release(mp_proxy_t *l);

/* Condition: acquire/release as a lock, and wait/notify. */
MP_API int mp_mcond_wait(mp_proxy_t *c, double timeout);
MP_API int mp_mcond_notify(mp_proxy_t *c, int64_t n);
MP_API int mp_mcond_notify_all(mp_proxy_t *c);

/* Event. */
MP_API int mp_mevent_set(mp_proxy_t *e);
MP_API int mp_mevent_clear(mp_proxy_t *e);
MP_API int mp_mevent_is_set(mp_proxy_t *e);               /* 1 or 0 */
MP_API int mp_mevent_wait(mp_proxy_t *e, double timeout); /* 0 or -ETIMEDOUT */

/* Barrier: wait gives the arrival index (0..parties-1) in *index. */
MP_API int mp_mbarrier_wait(mp_proxy_t *b, double timeout, int64_t *index); /* MP_EBROKEN */
MP_API int mp_mbarrier_abort(mp_proxy_t *b);
MP_API int mp_mbarrier_reset(mp_proxy_t *b);

#endif

/* manager_int.h: what the manager's server core (manager.c) and the object
 * kinds (manager_data.c: dict, list, Namespace, Value, Array;
 * manager_sync.c: Lock, RLock, Semaphore, BoundedSemaphore, Condition,
 * Event, Barrier, Queue, JoinableQueue) share.
 *
 * The server serves each client connection in its own thread (a client
 * process uses one connection per thread, as Python's proxies do, so a
 * connection is a client thread: lock ownership is per connection). All
 * object state is guarded by one server mutex, s->mu: a kind's call runs
 * with it held, and a blocking method sleeps in mgr_wait, which releases it
 * while waiting on the object's condition variable.
 *
 * Wire format (msgpack, in Python's connection framing):
 *   request  [id, method, timeout, args]: id an integer (0: the manager
 *            itself), method a string, timeout a float (negative or nil:
 *            no limit), args an array;
 *   reply    an integer code, then (in the same message) one value: the
 *            result on success, nil otherwise.
 * Manager methods (id 0): "create" [type, args] -> [id, type];
 * "get" [name] -> [id, type]; "free" [id]; "shutdown"; "ping". */
#ifndef MP_MANAGER_INT_H
#define MP_MANAGER_INT_H

#include <msgpack.h>
#include <pthread.h>
#include <stdint.h>

#include "internal.h"

typedef struct mgr_server mgr_server_t;
typedef struct mgr_client mgr_client_t;
typedef struct mgr_obj mgr_obj_t;
typedef struct mgr_kind mgr_kind_t;

struct mgr_obj {
    uint64_t id;
    const mgr_kind_t *kind;
    void *state;               /* the kind's */
    pthread_cond_t cv;         /* waiters of this object (with s->mu) */
    uint32_t refs;             /* calls in progress + 1 while published */
    int dead;                  /* freed by its creator: destroyed at refs 0 */
    pid_t creator;
    const mp_mtype_t *custom;  /* registered types: the table */
};

struct mgr_kind {
    const char *name;
    /* create: make o->state from the creation arguments. Returns 0 or a
     * negative code (-EINVAL for bad arguments). */
    int (*create)(mgr_server_t *s, mgr_obj_t *o, const mp_val_t *args, size_t nargs);
    void (*destroy)(mgr_obj_t *o);
    /* call: run method under s->mu. On success packs exactly one value into
     * pk (mgr_pack_*) and returns 0; otherwise returns a negative code and
     * packs nothing. Unknown methods: -ENOSYS. Blocking methods wait with
     * mgr_wait until deadline d. */
    int (*call)(mgr_server_t *s, mgr_obj_t *o, mgr_client_t *cl, const char *method,
                const mp_val_t *args, size_t nargs, mp__deadline_t d, msgpack_packer *pk);
    /* client_gone: cl's connection dropped; release what it held (locks:
     * mark owner-died and wake waiters). May be NULL. Under s->mu. */
    void (*client_gone)(mgr_server_t *s, mgr_obj_t *o, mgr_client_t *cl);
};

/* The kinds (manager_data.c, manager_sync.c). */
MP_HIDDEN extern const mgr_kind_t mgr_kind_dict, mgr_kind_namespace, mgr_kind_list,
    mgr_kind_value, mgr_kind_array;
MP_HIDDEN extern const mgr_kind_t mgr_kind_lock, mgr_kind_rlock, mgr_kind_semaphore,
    mgr_kind_bsemaphore, mgr_kind_condition, mgr_kind_event, mgr_kind_barrier,
    mgr_kind_queue, mgr_kind_jqueue;

/* mgr_destroy_plain: the destroy of kinds whose state is one malloc'd
 * block. */
MP_HIDDEN void mgr_destroy_plain(mgr_obj_t *o);

/* mgr_wait sleeps on o->cv (releasing s->mu) until woken or d passes.
 * Returns 0 (woken: re-check the condition), -ETIMEDOUT, or MP_EEOF when
 * the server is shutting down (the caller returns that code). */
MP_HIDDEN int mgr_wait(mgr_server_t *s, mgr_obj_t *o, mp__deadline_t d);
/* mgr_wake wakes every waiter of o. */
MP_HIDDEN void mgr_wake(mgr_obj_t *o);

/* mgr_lookup finds a live object by id (under s->mu), or NULL. */
MP_HIDDEN mgr_obj_t *mgr_lookup(mgr_server_t *s, uint64_t id);
/* mgr_proxy_id reads a proxy value ({"__mproc_proxy__": [addr, id, type]})
 * and returns its id, or 0 if v is not one. */
MP_HIDDEN uint64_t mgr_proxy_id(const mp_val_t *v);

/* Packing results. mgr_pack_val packs a value tree (any valid mp_val_t);
 * mgr_pack_raw appends bytes that are already one packed value (a stored
 * value). Return 0 or -ENOMEM/-EINVAL. */
MP_HIDDEN int mgr_pack_val(msgpack_packer *pk, const mp_val_t *v);
MP_HIDDEN int mgr_pack_raw(msgpack_packer *pk, const void *buf, size_t len);

/* mgr_store packs v into a new malloc'd buffer (a stored value). */
MP_HIDDEN int mgr_store(const mp_val_t *v, void **buf, size_t *len);

/* value.c: pack a value into a packer (v must be valid: mp__val_check). */
MP_HIDDEN int mp__val_check(const mp_val_t *v);
MP_HIDDEN int mp__val_pack_into(msgpack_packer *pk, const mp_val_t *v);

/* Client shorthands (mp_dict_set, mp_mlock_acquire, ...) are thin calls of
 * mp_proxy_call with the method names of their kind. */

#endif

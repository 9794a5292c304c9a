/* mproc/thread.h: threads with Python's threading interface.
 * Included by mproc.h; do not include directly. */
#ifndef MPROC_THREAD_H
#define MPROC_THREAD_H

#include <sys/types.h>

/* mp_thread_t is a handle on one thread of this process: one this process
 * made with mp_thread_new, the main thread, or a thread mproc did not create
 * (seen through mp_current_thread). Handles are process-local. */
typedef struct mp_thread mp_thread_t;

/* mp_thread_fn is what a thread runs. Unlike a process target, the argument
 * is not copied: threads share memory, and arg is passed as given. The return
 * value is kept (mp_thread_result). */
typedef int (*mp_thread_fn)(void *arg);

/* mp_thread_opts_t: Thread's keyword arguments; zero means default. */
typedef struct {
    const char *name; /* NULL: "Thread-N" */
    int daemon;       /* 0: inherit from the creating thread (Python's
                         daemon=None); > 0: daemonic; < 0: not daemonic */
} mp_thread_opts_t;

/* mp_thread_new makes a thread object (not started).
 * Returns: 0 and *out; -EINVAL (NULL out or target, name empty or longer
 *   than MP_NAME_MAX); -ENOMEM. Python: threading.Thread(target, args, name,
 *   daemon). */
MP_API int mp_thread_new(mp_thread_t **out, mp_thread_fn target, void *arg,
                         const mp_thread_opts_t *opts);

/* mp_thread_start starts the thread; its OS name (/proc/.../comm) is the
 * first 15 bytes of its name.
 * Returns: 0; MP_ESTARTED if started before; -EAGAIN or another -errno of
 *   pthread_create. Python: Thread.start(). */
MP_API int mp_thread_start(mp_thread_t *t);

/* mp_thread_join waits for the thread to end.
 * Blocks: at most timeout seconds.
 * Returns: 0 once it has ended; -ETIMEDOUT; MP_ENOTSTARTED; -EDEADLK when a
 *   thread joins itself; -EINVAL. Python: Thread.join(timeout). */
MP_API int mp_thread_join(mp_thread_t *t, double timeout);

/* mp_thread_is_alive returns 1 between start and the end of the target, else
 * 0; -EINVAL. Python: Thread.is_alive(). */
MP_API int mp_thread_is_alive(mp_thread_t *t);

/* mp_thread_result gives the target's return value once the thread ended.
 * Returns: 0 and *out; MP_ERUNNING; MP_ENOTSTARTED; -EINVAL. */
MP_API int mp_thread_result(mp_thread_t *t, int *out);

/* Attributes. name: "MainThread" for the main thread, "Dummy-N" for threads
 * mproc did not create. ident: pthread_t as an integer (0 before start);
 * native_id: the kernel's thread id (0 before start). daemon: 1/0; settable
 * before start only (MP_ESTARTED after). Python: Thread.name, ident,
 * native_id, daemon. */
MP_API const char *mp_thread_name(const mp_thread_t *t);
MP_API int mp_thread_set_name(mp_thread_t *t, const char *name);
MP_API unsigned long mp_thread_ident(const mp_thread_t *t);
MP_API pid_t mp_thread_native_id(const mp_thread_t *t);
MP_API int mp_thread_daemon(const mp_thread_t *t);
MP_API int mp_thread_set_daemon(mp_thread_t *t, int daemon);

/* mp_thread_free drops the handle; a running thread goes on (it is still
 * counted, and joined at exit if not daemonic). Accepts NULL; the handles of
 * mp_current_thread and mp_main_thread are not freed. */
MP_API void mp_thread_free(mp_thread_t *t);

/* mp_current_thread returns the calling thread's handle, never NULL (a
 * "Dummy-N" handle for a thread mproc did not create, daemonic, as Python).
 * mp_main_thread returns the main thread's. Python: threading.current_thread(),
 * main_thread(). */
MP_API mp_thread_t *mp_current_thread(void);
MP_API mp_thread_t *mp_main_thread(void);

/* mp_get_ident and mp_get_native_id: the calling thread's ident and kernel id.
 * Python: threading.get_ident(), get_native_id(). */
MP_API unsigned long mp_get_ident(void);
MP_API pid_t mp_get_native_id(void);

/* mp_active_count returns the number of live threads mproc knows of: the main
 * thread, started threads that have not ended, and dummy threads.
 * Python: threading.active_count(). */
MP_API int mp_active_count(void);

/* mp_enumerate_threads stores up to cap handles of live threads in out
 * (borrowed: valid while the thread lives or a handle to it is held; do not
 * free them) and returns how many are alive. Python: threading.enumerate(). */
MP_API int mp_enumerate_threads(mp_thread_t **out, size_t cap);

/* ---- Timer ----------------------------------------------------------------- */

typedef struct mp_timer mp_timer_t;

/* mp_timer_new makes a timer that runs fn(arg) in its own thread interval
 * seconds after mp_timer_start, unless cancelled first.
 * Returns: 0 and *out; -EINVAL (NULL fn, negative or NaN interval); -ENOMEM.
 * Python: threading.Timer(interval, function, args). */
MP_API int mp_timer_new(mp_timer_t **out, double interval, mp_thread_fn fn, void *arg);
MP_API int mp_timer_start(mp_timer_t *t);

/* mp_timer_cancel stops the timer if it has not fired yet (0; also after it
 * fired). mp_timer_join waits for its thread (as mp_thread_join).
 * mp_timer_fired returns 1 if fn ran (or runs), 0 otherwise.
 * Python: Timer.cancel(), Timer.join(). */
MP_API int mp_timer_cancel(mp_timer_t *t);
MP_API int mp_timer_join(mp_timer_t *t, double timeout);
MP_API int mp_timer_fired(mp_timer_t *t);
MP_API void mp_timer_free(mp_timer_t *t);

#endif

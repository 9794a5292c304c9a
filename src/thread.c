/* thread.c: threads with Python's threading interface, and Timer.
 *
 * Process-local state: the registry of live threads (the main thread, started
 * threads until their target returns, and "dummy" records for threads mproc did
 * not create), a counter for Thread-N and Dummy-N names, and the calling
 * thread's record in thread-local storage. Threads run detached; join waits
 * on the record's condition variable (CLOCK_MONOTONIC), so it can time out.
 * MT-safe: yes, under R.mu (a leaf) and each record's mu (taken before R.mu
 * never). Fork-safe: yes: in the child only the forking thread exists; it
 * becomes the child's main thread and the registry holds it alone. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
/* A daemonic thread still running at exit keeps its record, on purpose. */
#define KEEP_AT_EXIT(p) __lsan_ignore_object(p)
#else
#define KEEP_AT_EXIT(p) ((void)(p))
#endif

enum { T_USER, T_MAIN, T_DUMMY };
enum { TS_NEW, TS_RUNNING, TS_DONE };

struct mp_thread {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic int refs;
    int kind, state;
    mp_thread_fn target;
    void *arg;
    int result;
    char name[MP_NAME_MAX + 1];
    int daemon;
    pthread_t th;
    pid_t tid;
    struct mp_thread *prev, *next;
};

static struct {
    pthread_mutex_t mu;
    struct mp_thread *head;
    struct mp_thread *main;
    _Atomic int counter, dummies;
    pthread_key_t key;
    int ready;
} R = {.mu = PTHREAD_MUTEX_INITIALIZER, .counter = 1, .dummies = 1};

static __thread __attribute__((tls_model("initial-exec"))) struct mp_thread *self;

static void reg_add_locked(struct mp_thread *t)
{
    t->prev = NULL;
    t->next = R.head;
    if (R.head)
        R.head->prev = t;
    R.head = t;
}

static void reg_remove_locked(struct mp_thread *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else if (R.head == t)
        R.head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
}

static void record_init(struct mp_thread *t, int kind)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&t->mu, NULL);
    t->refs = 1;
    t->kind = kind;
}

static void unref(struct mp_thread *t)
{
    if (atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t);
}

/* A dummy record leaves the registry when its thread exits. */
static void dummy_gone(void *p)
{
    struct mp_thread *t = p;
    pthread_mutex_lock(&R.mu);
    reg_remove_locked(t);
    pthread_mutex_unlock(&R.mu);
    unref(t);
}

static void atfork_child(void)
{
    /* Only the forking thread survives: it is the child's main thread. */
    pthread_mutex_init(&R.mu, NULL);
    R.head = NULL;
    if (self) {
        self->prev = self->next = NULL;
        self->state = TS_RUNNING;
        self->tid = getpid();
        reg_add_locked(self);
        R.main = self;
    } else {
        R.main = NULL;
    }
}

/* Makes the main thread's record (the first thread to call us, if it is the
 * process's initial thread) and the pthread key. With R.mu held. */
static void ensure_ready_locked(void)
{
    if (R.ready)
        return;
    pthread_key_create(&R.key, dummy_gone);
    pthread_atfork(NULL, NULL, atfork_child);
    R.ready = 1;
}

static struct mp_thread *make_main_locked(void)
{
    struct mp_thread *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    record_init(t, T_MAIN);
    t->refs = 2; /* never freed */
    strcpy(t->name, "MainThread");
    t->state = TS_RUNNING;
    t->tid = getpid();
    reg_add_locked(t);
    R.main = t;
    return t;
}

mp_thread_t *mp_current_thread(void)
{
    if (self)
        return self;
    pthread_mutex_lock(&R.mu);
    ensure_ready_locked();
    struct mp_thread *t = NULL;
    if (mp__gettid() == getpid()) {
        t = R.main ? R.main : make_main_locked();
    } else {
        t = calloc(1, sizeof *t);
        if (t) {
            record_init(t, T_DUMMY);
            snprintf(t->name, sizeof t->name, "Dummy-%d", atomic_fetch_add(&R.dummies, 1));
            t->daemon = 1;
            t->state = TS_RUNNING;
            t->th = pthread_self();
            t->tid = mp__gettid();
            reg_add_locked(t);
            pthread_setspecific(R.key, t);
        }
    }
    pthread_mutex_unlock(&R.mu);
    if (t && t->kind == T_MAIN)
        t->th = pthread_self();
    self = t;
    if (!t) { /* out of memory: a static stand-in, never registered */
        static struct mp_thread oom = {.kind = T_DUMMY, .refs = 1 << 30, .name = "Dummy-0",
                                       .daemon = 1, .state = TS_RUNNING};
        return &oom;
    }
    return t;
}

mp_thread_t *mp_main_thread(void)
{
    pthread_mutex_lock(&R.mu);
    ensure_ready_locked();
    struct mp_thread *t = R.main ? R.main : make_main_locked();
    pthread_mutex_unlock(&R.mu);
    return t;
}

unsigned long mp_get_ident(void) { return (unsigned long)pthread_self(); }
pid_t mp_get_native_id(void) { return mp__gettid(); }

int mp_thread_new(mp_thread_t **out, mp_thread_fn target, void *arg,
                  const mp_thread_opts_t *opts)
{
    mp_thread_opts_t none = {0};
    if (!opts)
        opts = &none;
    if (!out || !target || (opts->name && (!opts->name[0] || strlen(opts->name) > MP_NAME_MAX)))
        return -EINVAL;
    mp_thread_t *cur = mp_current_thread();
    struct mp_thread *t = mp__calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    record_init(t, T_USER);
    t->target = target;
    t->arg = arg;
    t->daemon = opts->daemon > 0 ? 1 : opts->daemon < 0 ? 0 : cur->daemon;
    if (opts->name)
        strcpy(t->name, opts->name);
    else
        snprintf(t->name, sizeof t->name, "Thread-%d", atomic_fetch_add(&R.counter, 1));
    *out = t;
    return 0;
}

static void set_os_name(pthread_t th, const char *name)
{
    char shortname[16]; /* the kernel keeps 15 bytes and a NUL */
    size_t n = strlen(name);
    if (n > 15)
        n = 15;
    memcpy(shortname, name, n);
    shortname[n] = 0;
    pthread_setname_np(th, shortname);
}

static void *trampoline(void *p)
{
    struct mp_thread *t = p;
    self = t;
    KEEP_AT_EXIT(t);
    pthread_mutex_lock(&t->mu);
    t->tid = mp__gettid();
    pthread_cond_broadcast(&t->cv); /* start() waits for this, as Python's */
    pthread_mutex_unlock(&t->mu);
    set_os_name(pthread_self(), t->name);
    int r = t->target(t->arg);
    pthread_mutex_lock(&R.mu);
    reg_remove_locked(t);
    pthread_mutex_unlock(&R.mu);
    pthread_mutex_lock(&t->mu);
    t->result = r;
    t->state = TS_DONE;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    unref(t); /* the thread's own reference */
    return NULL;
}

int mp_thread_start(mp_thread_t *t)
{
    if (!t || t->kind != T_USER)
        return t ? MP_ESTARTED : -EINVAL;
    mp_current_thread(); /* the registry knows the main thread first */
    pthread_mutex_lock(&t->mu);
    if (t->state != TS_NEW) {
        pthread_mutex_unlock(&t->mu);
        return MP_ESTARTED;
    }
    mp__exit_register();
    atomic_fetch_add(&t->refs, 1);
    pthread_mutex_lock(&R.mu);
    reg_add_locked(t);
    pthread_mutex_unlock(&R.mu);
    t->state = TS_RUNNING;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    int e = pthread_create(&t->th, &a, trampoline, t);
    pthread_attr_destroy(&a);
    if (e) {
        t->state = TS_NEW;
        pthread_mutex_lock(&R.mu);
        reg_remove_locked(t);
        pthread_mutex_unlock(&R.mu);
        atomic_fetch_sub(&t->refs, 1);
    }
    /* As Python's start(): return once the thread runs, so that its ident
     * and native_id are known. */
    while (!e && t->tid == 0)
        pthread_cond_wait(&t->cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
    return -e;
}

int mp_thread_join(mp_thread_t *t, double timeout)
{
    mp__deadline_t d;
    struct timespec ts;
    if (!t || mp__deadline(timeout, &d) < 0)
        return -EINVAL;
    if (t == mp_current_thread())
        return -EDEADLK;
    int rc = 0;
    pthread_mutex_lock(&t->mu);
    if (t->state == TS_NEW)
        rc = MP_ENOTSTARTED;
    while (rc == 0 && t->state != TS_DONE) {
        int e = d == MP__NEVER ? pthread_cond_wait(&t->cv, &t->mu)
                               : pthread_cond_timedwait(&t->cv, &t->mu, mp__deadline_ts(d, &ts));
        if (e == ETIMEDOUT && t->state != TS_DONE)
            rc = -ETIMEDOUT;
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

int mp_thread_is_alive(mp_thread_t *t)
{
    if (!t)
        return -EINVAL;
    pthread_mutex_lock(&t->mu);
    int alive = t->state == TS_RUNNING;
    pthread_mutex_unlock(&t->mu);
    return alive;
}

int mp_thread_result(mp_thread_t *t, int *out)
{
    if (!t || !out)
        return -EINVAL;
    pthread_mutex_lock(&t->mu);
    int rc = t->state == TS_DONE ? 0 : t->state == TS_NEW ? MP_ENOTSTARTED : MP_ERUNNING;
    if (rc == 0)
        *out = t->result;
    pthread_mutex_unlock(&t->mu);
    return rc;
}

const char *mp_thread_name(const mp_thread_t *t) { return t ? t->name : NULL; }

int mp_thread_set_name(mp_thread_t *t, const char *name)
{
    if (!t || !name || !name[0] || strlen(name) > MP_NAME_MAX)
        return -EINVAL;
    pthread_mutex_lock(&t->mu);
    strcpy(t->name, name);
    if (t->state == TS_RUNNING && t->th)
        set_os_name(t->th, name);
    pthread_mutex_unlock(&t->mu);
    return 0;
}

unsigned long mp_thread_ident(const mp_thread_t *t)
{
    return t && t->state != TS_NEW ? (unsigned long)t->th : 0;
}

pid_t mp_thread_native_id(const mp_thread_t *t)
{
    return t && t->state != TS_NEW ? t->tid : 0;
}

int mp_thread_daemon(const mp_thread_t *t) { return t ? t->daemon : -EINVAL; }

int mp_thread_set_daemon(mp_thread_t *t, int daemon)
{
    if (!t)
        return -EINVAL;
    pthread_mutex_lock(&t->mu);
    int rc = t->state == TS_NEW && t->kind == T_USER ? 0 : MP_ESTARTED;
    if (rc == 0)
        t->daemon = daemon != 0;
    pthread_mutex_unlock(&t->mu);
    return rc;
}

void mp_thread_free(mp_thread_t *t)
{
    if (t && t->kind == T_USER)
        unref(t);
}

int mp_active_count(void)
{
    mp_current_thread();
    int n = 0;
    pthread_mutex_lock(&R.mu);
    for (struct mp_thread *t = R.head; t; t = t->next)
        n++;
    pthread_mutex_unlock(&R.mu);
    return n;
}

int mp_enumerate_threads(mp_thread_t **out, size_t cap)
{
    if (!out && cap)
        return -EINVAL;
    mp_current_thread();
    int n = 0;
    pthread_mutex_lock(&R.mu);
    for (struct mp_thread *t = R.head; t; t = t->next, n++)
        if ((size_t)n < cap)
            out[n] = t;
    pthread_mutex_unlock(&R.mu);
    return n;
}

/* As Python's threading._shutdown: wait for every non-daemonic thread. */
void mp__threads_shutdown(void)
{
    for (;;) {
        struct mp_thread *wait = NULL;
        pthread_mutex_lock(&R.mu);
        for (struct mp_thread *t = R.head; t; t = t->next) {
            if (t->kind == T_USER && !t->daemon && t != self) {
                wait = t;
                atomic_fetch_add(&t->refs, 1);
                break;
            }
        }
        pthread_mutex_unlock(&R.mu);
        if (!wait)
            return;
        mp_thread_join(wait, MP_FOREVER);
        unref(wait);
    }
}

/* ---- Timer ----------------------------------------------------------------- */

struct mp_timer {
    mp_thread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    double interval;
    mp_thread_fn fn;
    void *arg;
    int cancelled, fired;
};

static int timer_body(void *p)
{
    struct mp_timer *t = p;
    mp__deadline_t d;
    struct timespec ts;
    mp__deadline(t->interval, &d);
    pthread_mutex_lock(&t->mu);
    while (!t->cancelled) {
        if (pthread_cond_timedwait(&t->cv, &t->mu, mp__deadline_ts(d, &ts)) == ETIMEDOUT)
            break;
    }
    int go = !t->cancelled;
    t->fired = go;
    pthread_mutex_unlock(&t->mu);
    return go ? t->fn(t->arg) : 0;
}

int mp_timer_new(mp_timer_t **out, double interval, mp_thread_fn fn, void *arg)
{
    if (!out || !fn || !(interval >= 0) || interval > 1e9)
        return -EINVAL;
    struct mp_timer *t = mp__calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    int rc = mp_thread_new(&t->th, timer_body, t, NULL);
    if (rc < 0) {
        free(t);
        return rc;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&t->mu, NULL);
    t->interval = interval;
    t->fn = fn;
    t->arg = arg;
    *out = t;
    return 0;
}

int mp_timer_start(mp_timer_t *t) { return t ? mp_thread_start(t->th) : -EINVAL; }

int mp_timer_cancel(mp_timer_t *t)
{
    if (!t)
        return -EINVAL;
    pthread_mutex_lock(&t->mu);
    t->cancelled = 1;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    return 0;
}

int mp_timer_join(mp_timer_t *t, double timeout)
{
    return t ? mp_thread_join(t->th, timeout) : -EINVAL;
}

int mp_timer_fired(mp_timer_t *t)
{
    if (!t)
        return -EINVAL;
    pthread_mutex_lock(&t->mu);
    int f = t->fired;
    pthread_mutex_unlock(&t->mu);
    return f;
}

void mp_timer_free(mp_timer_t *t)
{
    if (!t)
        return;
    /* A started timer's thread uses t until it ends: cancel and wait. */
    mp_timer_cancel(t);
    if (mp_thread_is_alive(t->th) == 1)
        mp_thread_join(t->th, MP_FOREVER);
    mp_thread_free(t->th);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t);
}

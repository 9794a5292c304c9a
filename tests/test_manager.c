/* test_manager.c: the Manager (Python's multiprocessing.Manager and
 * multiprocessing.managers.BaseManager): a server process holding dict,
 * list, Namespace, Queue, JoinableQueue, Lock, RLock, Semaphore,
 * BoundedSemaphore, Condition, Event, Barrier, Value, Array and registered
 * types, used through proxies from this process, its children (started by
 * fork, spawn and forkserver: argv[1]), other threads and a separately
 * started program; the server's lifecycle; remote servers on TCP behind an
 * authkey; and failure: a killed manager, a killed lock holder, garbage and
 * oversized requests, bad arguments.
 *
 * As in test_queue.c and test_pool.c: proxies live in the shared arena, so a
 * child gets the proxy pointers in its target's argument and uses them under
 * every start method. What parties report lives on a board in the arena
 * (board_t, mp__arena_alloc); a target never calls cmocka: it reports
 * through its exit code and the board. Parties meet through futex words of
 * the board (mp_test_word_*) and "this task is asleep in the call" checks in
 * /proc, never through sleeps; the only timeouts are generous bounds
 * (MP_TEST_LONG, CHILD_LONG), or the behaviour under test (a call with a
 * timeout), measured with margins (tight below, generous above).
 *
 * The manager's own server process is a child of the case (or of the
 * forkserver); the harness checks after every case that no process, zombie,
 * descriptor or /dev/shm entry is left, so every case shuts its managers
 * down (or frees them) and the leak checks see a server that did not go.
 *
 * The "separately started program" of the remote case is this binary run
 * again (fork + exec, `test_manager --helper manager-client ADDR KEY`): it
 * shares nothing with the test but the address and the key. A child process
 * of the start method under test uses the remote manager by address and key
 * too.
 *
 * Where the header leaves a point open, the test takes Python's reading and
 * says so at the case (dict keys keep their place when overwritten; insert
 * and slices clamp as Python's list; a killed server's exit code is
 * -SIGKILL, as a process's).
 * mp-test: per-start-method
 * mp-test: timeout=400 */
#include "mp_test.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"

/* A generous bound for a party's own waits (parties cannot fail a case:
 * they give up and report). */
#define CHILD_LONG (60.0 * mp_test_scale())

/* How long a garbage-sending client waits for the server's answer (a reply
 * or the connection closed) before it calls the server stuck. */
#define ANSWER_WAIT (15.0 * mp_test_scale())

#define KEY_REMOTE "remote-secret-key"
#define KEY_WRONG "not-the-key"

/* ---- the board ---------------------------------------------------------- */

#define SLOTS 128

typedef struct {
    uint32_t go;     /* set by the test to release parties */
    uint32_t ready;  /* parties increment it once running */
    uint32_t held;   /* a party holds what it was asked to take */
    uint32_t done;   /* parties increment it once their call returned */
    uint32_t never;  /* nobody sets it: wait on it to block forever */
    uint32_t sum;    /* tasks' values, summed by the workers */
    uint32_t inits;  /* initializer runs */
    int32_t init_val;
    int32_t init_pid;
    int32_t rc[SLOTS];  /* a party's main code */
    int32_t rc2[SLOTS]; /* a second code */
    int32_t rc3[SLOTS]; /* a third code */
    int64_t idx[SLOTS]; /* an index or a value */
    double at[SLOTS];   /* when the party's call returned */
    pid_t tid[SLOTS];   /* kernel id of the party's thread */
    pid_t pid[SLOTS];   /* a pid the party reports */
    char addr[MP_ADDRESS_MAX];
} board_t;

static board_t *board_new(void)
{
    board_t *b = mp__arena_alloc(sizeof *b);
    assert_non_null(b);
    return b;
}

/* What a party gets (copied into a child: only arena pointers in it). */
typedef struct {
    board_t *b;
    mp_proxy_t *p, *p2, *p3;
    int32_t id;
    int32_t mode;
    int64_t n;
    char addr[160];
    char key[32];
} targ_t;

static void block_forever(board_t *b)
{
    for (;;)
        mp_test_word_wait(&b->never, 1, MP_FOREVER);
}

/* ---- values -------------------------------------------------------------- */

static int is_int(const mp_val_t *v, int64_t i) { return v && v->type == MP_VAL_INT && v->v.i == i; }
static int is_float(const mp_val_t *v, double f)
{
    return v && v->type == MP_VAL_FLOAT && v->v.f == f;
}
static int is_str(const mp_val_t *v, const char *s)
{
    return v && v->type == MP_VAL_STR && v->v.s.len == strlen(s) &&
           memcmp(v->v.s.ptr, s, v->v.s.len) == 0;
}

/* val_fmt renders v into out (for failure messages). */
static void val_fmt_into(const mp_val_t *v, char *out, size_t cap, int depth)
{
    size_t len = strlen(out);
    if (len + 8 >= cap)
        return;
    char *p = out + len;
    size_t left = cap - len;
    if (!v) {
        snprintf(p, left, "(null)");
        return;
    }
    if (depth > 8) {
        snprintf(p, left, "...");
        return;
    }
    switch (v->type) {
    case MP_VAL_NIL: snprintf(p, left, "nil"); break;
    case MP_VAL_BOOL: snprintf(p, left, v->v.b ? "true" : "false"); break;
    case MP_VAL_INT: snprintf(p, left, "%" PRId64, v->v.i); break;
    case MP_VAL_UINT: snprintf(p, left, "%" PRIu64 "u", v->v.u); break;
    case MP_VAL_FLOAT: snprintf(p, left, "%g", v->v.f); break;
    case MP_VAL_STR:
        snprintf(p, left, "\"%.*s\"", (int)(v->v.s.len > 40 ? 40 : v->v.s.len), v->v.s.ptr);
        break;
    case MP_VAL_BYTES: snprintf(p, left, "b<%zu bytes>", v->v.s.len); break;
    case MP_VAL_ARRAY:
        snprintf(p, left, "[");
        for (size_t i = 0; i < v->v.a.n; i++) {
            if (i)
                strncat(out, ", ", cap - strlen(out) - 1);
            val_fmt_into(&v->v.a.items[i], out, cap, depth + 1);
        }
        strncat(out, "]", cap - strlen(out) - 1);
        break;
    case MP_VAL_MAP:
        snprintf(p, left, "{");
        for (size_t i = 0; i < v->v.m.n; i++) {
            if (i)
                strncat(out, ", ", cap - strlen(out) - 1);
            val_fmt_into(&v->v.m.items[i].key, out, cap, depth + 1);
            strncat(out, ": ", cap - strlen(out) - 1);
            val_fmt_into(&v->v.m.items[i].val, out, cap, depth + 1);
        }
        strncat(out, "}", cap - strlen(out) - 1);
        break;
    default: snprintf(p, left, "<type %d>", (int)v->type); break;
    }
}

static const char *val_fmt(const mp_val_t *v, char *out, size_t cap)
{
    out[0] = 0;
    val_fmt_into(v, out, cap, 0);
    return out;
}

/* expect_val fails the case unless got is the value want; it frees got. */
static void expect_val(mp_val_t *got, const mp_val_t *want, const char *what)
{
    if (!got || !mp_val_equal(got, want)) {
        static char a[2048], b[2048];
        val_fmt(got, a, sizeof a);
        val_fmt(want, b, sizeof b);
        mp_val_free(got);
        mp_test_fail("%s: got %s, expected %s\n", what, a, b);
    }
    mp_val_free(got);
}

/* dict_expect: d[key] is want. */
static void dict_expect(mp_proxy_t *d, const mp_val_t *key, const mp_val_t *want,
                        const char *what)
{
    mp_val_t *v = NULL;
    int rc = mp_dict_get(d, key, &v);
    if (rc != 0)
        mp_test_fail("%s: dict get gave %d (%s)\n", what, rc, mp_strerror(rc));
    expect_val(v, want, what);
}

static void dict_expect_int(mp_proxy_t *d, const char *key, int64_t want, const char *what)
{
    mp_val_t k = mp_val_str(key), w = mp_val_int(want);
    dict_expect(d, &k, &w, what);
}

static void dict_set_int(mp_proxy_t *d, const char *key, int64_t v)
{
    mp_val_t k = mp_val_str(key), x = mp_val_int(v);
    mp_assert_int(mp_dict_set(d, &k, &x), 0);
}

/* list_expect: the whole list is the array of want[0..n). */
static void list_expect(mp_proxy_t *l, mp_val_t *want, size_t n, const char *what)
{
    mp_val_t *got = NULL;
    int rc = mp_list_slice(l, 0, INT64_MAX, &got);
    if (rc != 0)
        mp_test_fail("%s: slice of the whole list gave %d (%s)\n", what, rc, mp_strerror(rc));
    mp_val_t w = mp_val_array(want, n);
    expect_val(got, &w, what);
    size_t len = 0;
    mp_assert_int(mp_list_len(l, &len), 0);
    mp_assert_int(len, n);
}

#define expect_quick(call, want, what)                                                     \
    do {                                                                                   \
        double t0_ = mp_test_now();                                                        \
        mp_assert_int((call), (want));                                                     \
        mp_test_check_quick(mp_test_now() - t0_, what);                                    \
    } while (0)

#define expect_timed(call, want, secs, what)                                               \
    do {                                                                                   \
        double t0_ = mp_test_now();                                                        \
        mp_assert_int((call), (want));                                                     \
        mp_test_check_timed(mp_test_now() - t0_, (secs), what);                            \
    } while (0)

/* ---- managers ------------------------------------------------------------- */

static mp_manager_t *mgr_start(const mp_manager_opts_t *o)
{
    mp_manager_opts_t z;
    memset(&z, 0, sizeof z);
    mp_manager_t *m = NULL;
    int rc = mp_manager_start(&m, o ? o : &z);
    if (rc != 0)
        mp_test_fail("mp_manager_start gave %d (%s)\n", rc, mp_strerror(rc));
    assert_non_null(m);
    return m;
}

/* mgr_stop shuts m down (the server exits with 0) and frees it. */
static void mgr_stop(mp_manager_t *m)
{
    mp_assert_int(mp_manager_shutdown(m, MP_TEST_LONG), 0);
    int code = INT_MIN;
    mp_assert_int(mp_manager_exitcode(m, &code), 0);
    mp_assert_int(code, 0);
    mp_manager_free(m);
}

static void still_serving(mp_proxy_t *d, int64_t i, const char *after);

/* ---- a registered type: a counter ------------------------------------------ */

typedef struct {
    int64_t n;
} counter_t;

static int counter_new(void **self, const mp_val_t *args, size_t nargs)
{
    int64_t start = 0;
    if (nargs > 1)
        return -EINVAL;
    if (nargs == 1) {
        if (args[0].type != MP_VAL_INT)
            return -EINVAL;
        start = args[0].v.i;
    }
    counter_t *c = malloc(sizeof *c);
    if (!c)
        return -ENOMEM;
    c->n = start;
    *self = c;
    return 0;
}

static void counter_free(void *self) { free(self); }

static int int_result(mp_val_t **result, int64_t n)
{
    mp_val_t *r = malloc(sizeof *r);
    if (!r)
        return -ENOMEM;
    *r = mp_val_int(n);
    *result = r;
    return 0;
}

/* incr [delta=1] -> the new count; -EINVAL for a delta that is not an
 * integer. */
static int counter_incr(void *self, const mp_val_t *args, size_t nargs, mp_val_t **result)
{
    counter_t *c = self;
    int64_t d = 1;
    if (nargs > 1)
        return -EINVAL;
    if (nargs == 1) {
        if (args[0].type != MP_VAL_INT)
            return -EINVAL;
        d = args[0].v.i;
    }
    c->n += d;
    return int_result(result, c->n);
}

static int counter_get(void *self, const mp_val_t *args, size_t nargs, mp_val_t **result)
{
    counter_t *c = self;
    if (nargs != 0)
        return -EINVAL;
    return int_result(result, c->n);
}

/* A private method: never reachable by clients. If it ever runs, the
 * counter says so (666666). */
static int counter_secret(void *self, const mp_val_t *args, size_t nargs, mp_val_t **result)
{
    counter_t *c = self;
    c->n = 666666;
    return int_result(result, c->n);
}

static const mp_mmethod_t k_counter_methods[] = {
    {"incr", counter_incr},
    {"get", counter_get},
    {"_secret", counter_secret},
};

static const mp_mtype_t k_counter_type = {
    .name = "Counter",
    .new_obj = counter_new,
    .free_obj = counter_free,
    .free_result = NULL,
    .methods = k_counter_methods,
    .nmethods = sizeof k_counter_methods / sizeof k_counter_methods[0],
};

static const mp_mtype_t *const k_types[] = {&k_counter_type, NULL};

/* counter_call calls method on a Counter proxy with an optional integer
 * argument; *now gets the integer result. Returns the call's code, or 99
 * for a result that is not an integer. Safe in targets. */
static int counter_call(mp_proxy_t *p, const char *method, const int64_t *arg, int64_t *now,
                        double timeout)
{
    mp_val_t a = mp_val_int(arg ? *arg : 0), *res = NULL;
    int rc = mp_proxy_call(p, method, arg ? &a : NULL, arg ? 1 : 0, &res, timeout);
    if (rc != 0)
        return rc;
    int ok = res && res->type == MP_VAL_INT;
    if (ok && now)
        *now = res->v.i;
    mp_val_free(res);
    return ok ? 0 : 99;
}

/* ---- warm-up --------------------------------------------------------------- */

/* The arena, and one child of the program's start method (so the forkserver
 * and its connection exist before the snapshot). A manager is not part of
 * it: the library keeps nothing of a manager once it is freed. */
static int warm_manager(void)
{
    void *x = mp__arena_alloc(16);
    if (!x)
        return -ENOMEM;
    mp__arena_free(x);
    return mp_test_warm_child();
}

/* ---- lifecycle ---------------------------------------------------------------- */

/* start gives a running server (an address, a pid, MP_ERUNNING as its exit
 * code) that answers; shutdown ends it with exit code 0 and the server
 * process is gone; a proxy call after that says MP_EEOF at once. */
static void lifecycle_start_shutdown(void **state)
{
    mp_manager_t *m = mgr_start(NULL);
    const char *addr = mp_manager_address(m);
    assert_non_null(addr);
    assert_true(strlen(addr) > 0);
    pid_t pid = mp_manager_pid(m);
    assert_true(pid > 0);
    assert_true(pid != getpid());
    char st = mp_test_proc_state(pid, NULL);
    if (st == 0 || st == 'Z')
        mp_test_fail("the server %d is not running (state %c)\n", (int)pid, st ? st : '-');
    int code = 12345;
    mp_assert_int(mp_manager_exitcode(m, &code), MP_ERUNNING);

    mp_proxy_t *d = NULL;
    mp_assert_int(mp_manager_dict(m, &d), 0);
    assert_non_null(d);
    mp_assert_str(mp_proxy_type(d), "dict");
    dict_set_int(d, "k", 7);
    dict_expect_int(d, "k", 7, "d['k'] after set");

    mp_assert_int(mp_manager_shutdown(m, MP_TEST_LONG), 0);
    mp_assert_int(mp_manager_exitcode(m, &code), 0);
    mp_assert_int(code, 0);
    mp_assert_int(mp_test_wait_gone(pid, MP_TEST_LONG), 0);
    mp_val_t k = mp_val_str("k"), v = mp_val_int(1);
    expect_quick(mp_dict_set(d, &k, &v), MP_EEOF, "a call after shutdown");
    expect_quick(mp_dict_set(d, &k, &v), MP_EEOF, "a second call after shutdown");
    /* Shutting down twice is harmless. */
    mp_assert_int(mp_manager_shutdown(m, MP_TEST_LONG), 0);
    mp_proxy_free(d);
    mp_manager_free(m);
}

/* mp_manager_free of a running manager stops its server (the harness checks
 * that no process or zombie is left); a proxy that outlives it is a valid
 * handle whose calls give MP_EEOF. */
static void lifecycle_free_running(void **state)
{
    mp_manager_t *m = mgr_start(NULL);
    pid_t pid = mp_manager_pid(m);
    assert_true(pid > 0);
    mp_proxy_t *l = NULL;
    mp_assert_int(mp_manager_list(m, &l), 0);
    mp_val_t one = mp_val_int(1);
    mp_assert_int(mp_list_append(l, &one), 0);
    mp_manager_free(m);
    mp_assert_int(mp_test_wait_gone(pid, MP_TEST_LONG), 0);
    size_t n = 0;
    expect_quick(mp_list_len(l, &n), MP_EEOF, "a call after the manager was freed");
    mp_proxy_free(l);
}

typedef struct {
    board_t *b;
    int32_t v;
    int32_t pad;
} iarg_t;

/* i_init runs in the server: it records its argument, its pid and itself
 * on the board (the server maps the arena as every child does). */
static void i_init(const void *arg, size_t len)
{
    iarg_t a;
    if (len != sizeof a || !arg)
        return;
    memcpy(&a, arg, sizeof a);
    a.b->init_val = a.v;
    a.b->init_pid = (int32_t)getpid();
    mp_test_word_inc(&a.b->inits);
}

/* The initializer runs once, in the server, before the server answers. */
static void lifecycle_initializer(void **state)
{
    board_t *b = board_new();
    iarg_t ia = {b, 4242, 0};
    mp_manager_opts_t o;
    memset(&o, 0, sizeof o);
    o.initializer = i_init;
    o.initarg = &ia;
    o.initarg_len = sizeof ia;
    mp_manager_t *m = mgr_start(&o);
    mp_proxy_t *d = NULL;
    mp_assert_int(mp_manager_dict(m, &d), 0);
    dict_set_int(d, "x", 1);
    /* The server answered: its initializer has run, once, there. */
    mp_assert_int(mp_test_word_get(&b->inits), 1);
    mp_assert_int(b->init_val, 4242);
    mp_assert_int(b->init_pid, mp_manager_pid(m));
    mp_proxy_free(d);
    mgr_stop(m);
    mp_assert_int(mp_test_word_get(&b->inits), 1);
    mp__arena_free(b);
}

/* A manager on a TCP address of the caller's choice: the real port in the
 * address, a child uses it through a proxy; an address in use is refused
 * with -EADDRINUSE. */
static int t_dict_bump(void *arg)
{
    targ_t *a = arg;
    mp_val_t k = mp_val_str("n"), d = mp_val_int(a->n), *now = NULL;
    int rc = mp_dict_incr(a->p, &k, &d, &now);
    a->b->rc[a->id] = rc;
    if (rc != 0)
        return 10;
    int ok = now && now->type == MP_VAL_INT;
    mp_val_free(now);
    return ok ? 0 : 11;
}

static void lifecycle_tcp_address(void **state)
{
    board_t *b = board_new();
    mp_manager_opts_t o;
    memset(&o, 0, sizeof o);
    o.address = "127.0.0.1:0";
    mp_manager_t *m = mgr_start(&o);
    const char *addr = mp_manager_address(m);
    assert_non_null(addr);
    if (strncmp(addr, "127.0.0.1:", 10) != 0 || atoi(addr + 10) <= 0)
        mp_test_fail("the address of a manager on 127.0.0.1:0 is \"%s\"\n", addr);
    mp_proxy_t *d = NULL;
    mp_assert_int(mp_manager_dict(m, &d), 0);
    static mp_party_t y;
    targ_t a = {.b = b, .p = d, .id = 0, .n = 5};
    mp_party_start(&y, 1, t_dict_bump, &a, sizeof a);
    int code = mp_party_join(&y);
    if (code != 0)
        mp_test_fail("the child returned %d (10: incr gave %d (%s))\n", code, b->rc[0],
                     mp_strerror(b->rc[0]));
    dict_expect_int(d, "n", 5, "d['n'] after the child's incr");

    /* The same address again, while this manager holds it. */
    mp_manager_opts_t o2;
    memset(&o2, 0, sizeof o2);
    char taken[MP_ADDRESS_MAX];
    snprintf(taken, sizeof taken, "%s", addr);
    o2.address = taken;
    mp_manager_t *m2 = NULL;
    int rc = mp_manager_start(&m2, &o2);
    if (rc == 0) {
        mp_manager_free(m2);
        mp_test_fail("a second manager started on %s, which the first holds\n", taken);
    }
    mp_assert_int(rc, -EADDRINUSE);
    assert_null(m2);
    dict_expect_int(d, "n", 5, "the first manager after the refused start");
    mp_proxy_free(d);
    mgr_stop(m);
    mp__arena_free(b);
}

/* t_own_manager starts a manager in a child, reports its server's pid
 * (pid[id]), uses it, then returns without shutting it down (mode 0: the
 * child exits) or blocks until killed (mode 1). Codes: 10 start failed
 * (rc), 11 a call failed (rc). */
static int t_own_manager(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    mp_manager_opts_t o;
    memset(&o, 0, sizeof o);
    mp_manager_t *m = NULL;
    int rc = mp_manager_start(&m, &o);
    if (rc != 0) {
        b->rc[a->id] = rc;
        return 10;
    }
    b->pid[a->id] = mp_manager_pid(m);
    mp_proxy_t *d = NULL;
    rc = mp_manager_dict(m, &d);
    if (rc == 0) {
        mp_val_t k = mp_val_str("x"), v = mp_val_int(1);
        rc = mp_dict_set(d, &k, &v);
    }
    b->rc[a->id] = rc;
    mp_test_word_inc(&b->ready);
    if (rc != 0)
        return 11;
    if (a->mode == 1)
        block_forever(b);
    return 0; /* the manager is left running: the library ends it at exit */
}

/* A manager whose owner exits without shutting it down ends with it (as
 * Python's finalizer shuts it down at exit); a manager whose owner is
 * SIGKILLed ends too (it watches its owner: no orphan server). */
static void lifecycle_owner_exits_or_dies(void **state)
{
    board_t *b = board_new();
    static mp_party_t y;
    targ_t a = {.b = b, .id = 0, .mode = 0};
    mp_party_start(&y, 1, t_own_manager, &a, sizeof a);
    int code = mp_party_join(&y);
    if (code != 0)
        mp_test_fail("the owner returned %d (10: start gave %d (%s), 11: a call)\n", code,
                     b->rc[0], mp_strerror(b->rc[0]));
    assert_true(b->pid[0] > 0);
    if (mp_test_wait_gone(b->pid[0], MP_TEST_LONG) != 0)
        mp_test_fail("the server %d of an owner that exited is still running\n",
                     (int)b->pid[0]);

    targ_t k = {.b = b, .id = 1, .mode = 1};
    mp_party_start(&y, 1, t_own_manager, &k, sizeof k);
    mp_test_wait_word(&b->ready, 2, "the owner that will be killed");
    if (b->rc[1] != 0) {
        mp_party_kill(&y);
        mp_test_fail("the second owner could not use its manager: %d (%s)\n", b->rc[1],
                     mp_strerror(b->rc[1]));
    }
    assert_true(b->pid[1] > 0);
    mp_party_kill(&y);
    if (mp_test_wait_gone(b->pid[1], MP_TEST_LONG) != 0)
        mp_test_fail("the server %d of a SIGKILLed owner is still running (an orphan)\n",
                     (int)b->pid[1]);
    mp__arena_free(b);
}

/* ---- the seed's count-down ------------------------------------------------------- */

#define NCOUNT 100
#define BATCH 25

enum { CM_LOCK = 0, CM_INCR = 1 };

/* t_count waits until go reaches its batch (n), then takes one off
 * d['count']: under the manager Lock (acquire, get, set, release) or with
 * mp_dict_incr. Codes: 9 go never came, 10 acquire (rc), 11 get (rc),
 * 12 not an integer, 13 set (rc), 14 release (rc), 20 incr (rc), 21 incr's
 * result out of range. */
static int t_count(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    mp_test_word_inc(&b->ready);
    if (mp_test_word_wait(&b->go, (uint32_t)a->n, CHILD_LONG) != 0)
        return 9;
    mp_val_t k = mp_val_str("count");
    if (a->mode == CM_INCR) {
        mp_val_t d = mp_val_int(-1), *now = NULL;
        int rc = mp_dict_incr(a->p, &k, &d, &now);
        b->rc[a->id] = rc;
        if (rc != 0)
            return 20;
        int ok = now && now->type == MP_VAL_INT && now->v.i >= 0 && now->v.i < NCOUNT;
        mp_val_free(now);
        return ok ? 0 : 21;
    }
    int rc = mp_mlock_acquire(a->p2, CHILD_LONG);
    if (rc != 0) {
        b->rc[a->id] = rc;
        return 10;
    }
    mp_val_t *v = NULL;
    rc = mp_dict_get(a->p, &k, &v);
    if (rc != 0) {
        b->rc[a->id] = rc;
        mp_mlock_release(a->p2);
        return 11;
    }
    if (!v || v->type != MP_VAL_INT) {
        mp_val_free(v);
        mp_mlock_release(a->p2);
        return 12;
    }
    mp_val_t nv = mp_val_int(v->v.i - 1);
    mp_val_free(v);
    rc = mp_dict_set(a->p, &k, &nv);
    if (rc != 0) {
        b->rc[a->id] = rc;
        mp_mlock_release(a->p2);
        return 13;
    }
    rc = mp_mlock_release(a->p2);
    if (rc != 0) {
        b->rc[a->id] = rc;
        return 14;
    }
    return 0;
}

/* NCOUNT children, BATCH at a time released together, each take one off
 * d['count'] = NCOUNT: it ends at exactly 0. */
static void countdown(int mode)
{
    board_t *b = board_new();
    mp_manager_t *m = mgr_start(NULL);
    mp_proxy_t *d = NULL, *l = NULL;
    mp_assert_int(mp_manager_dict(m, &d), 0);
    mp_assert_int(mp_manager_lock(m, &l), 0);
    dict_set_int(d, "count", NCOUNT);
    static mp_party_t ys[BATCH];
    for (int batch = 0; batch < NCOUNT / BATCH; batch++) {
        for (int i = 0; i < BATCH; i++) {
            targ_t a = {.b = b, .p = d, .p2 = l, .id = batch * BATCH + i, .mode = mode,
                        .n = batch + 1};
            mp_party_start(&ys[i], 1, t_count, &a, sizeof a);
        }
        mp_test_wait_word(&b->ready, (uint32_t)((batch + 1) * BATCH), "count-down children");
        mp_test_word_store(&b->go, (uint32_t)(batch + 1));
        for (int i = 0; i < BATCH; i++) {
            int code = mp_party_join(&ys[i]);
            int id = batch * BATCH + i;
            if (code != 0)
                mp_test_fail("count-down child %d returned %d (9: no go, 10: acquire, 11: "
                             "get, 12: not an int, 13: set, 14: release, 20: incr, 21: "
                             "incr's result; code %d (%s))\n",
                             id, code, b->rc[id], mp_strerror(b->rc[id]));
        }
    }
    dict_expect_int(d, "count", 0, mode == CM_LOCK ? "the count after 100 locked decrements"
                                                   : "the count after 100 incr(-1)");
    /* Nobody holds the lock any more. */
    mp_assert_int(mp_mlock_acquire(l, 0), 0);
    mp_assert_int(mp_mlock_release(l), 0);
    mp_proxy_free(d);
    mp_proxy_free(l);
    mgr_stop(m);
    mp__arena_free(b);
}

static void countdown_lock_100(void **state) { countdown(CM_LOCK); }
static void countdown_incr_100(void **state) { countdown(CM_INCR); }

/* ---- every proxy type from a child ---------------------------------------------- */

/* t_child_dict: d['a'] is 1 (10), contains 'a' (11), set d['b'] = "from
 * child" (12), incr d['c'] by 2.5 (13), del d['a'] (14), len is 2 (15). */
static int t_child_dict(void *arg)
{
    targ_t *a = arg;
    mp_val_t ka = mp_val_str("a"), kb = mp_val_str("b"), kc = mp_val_str("c");
    mp_val_t *v = NULL;
    int rc = mp_dict_get(a->p, &ka, &v);
    int ok = rc == 0 && is_int(v, 1);
    mp_val_free(v);
    if (!ok)
        return 10;
    if (mp_dict_contains(a->p, &ka) != 1)
        return 11;
    mp_val_t s = mp_val_str("from child");
    if (mp_dict_set(a->p, &kb, &s) != 0)
        return 12;
    mp_val_t f = mp_val_float(2.5);
    if (mp_dict_incr(a->p, &kc, &f, NULL) != 0)
        return 13;
    if (mp_dict_del(a->p, &ka) != 0)
        return 14;
    size_t n = 0;
    if (mp_dict_len(a->p, &n) != 0 || n != 2)
        return 15;
    return 0;
}

static void child_dict(void **state)
{
    mp_manager_t *m = mgr_start(NULL);
    mp_proxy_t *d = NULL;
    mp_assert_int(mp_manager_dict(m, &d), 0);
    dict_set_int(d, "a", 1);
    static mp_party_t y;
    targ_t a = {.p = d};
    mp_party_start(&y, 1, t_child_dict, &a, sizeof a);
    mp_assert_int(mp_party_join(&y), 0);
    mp_val_t ka = mp_val_str("a"), kb = mp_val_str("b"), kc = mp_val_str("c");
    mp_assert_int(mp_dict_contains(d, &ka), 0);
    mp_val_t s = mp_val_str("from child"), f = mp_val_float(2.5);
    dict_expect(d, &kb, &s, "d['b'] set by the child");
    dict_expect(d, &kc, &f, "d['c'] incremented by the child");
    mp_proxy_free(d);
    mgr_stop(m);
}

/* t_child_list: l[-1] is 3 (10), append "x" (11), extend [4, 5] (12),
 * insert(0, 0) (13), pop(1) gives 1 (14), l[-2] = 40 (15), len 6 (16). */
static int t_child_list(void *arg)
{
    targ_t *a = arg;
    mp_val_t *v = NULL;
    int rc = mp_list_get(a->p, -1, &v);
    int ok = rc == 0 && is_int(v, 3);
    mp_val_free(v);
    if (!ok)
        return 10;
    mp_val_t x = mp_val_str("x");
    if (mp_list_append(a->p, &x) != 0)
        return 11;
    mp_val_t items[2] = {mp_val_int(4), mp_val_int(5)};
    mp_val_t arr = mp_val_array(items, 2);
    if (mp_list_extend(a->p, &arr) != 0)
        return 12;
    mp_val_t zero = mp_val_int(0);
    if (mp_list_insert(a->p, 0, &zero) != 0)
        return 13;
    v = NULL;
    rc = mp_list_pop(a->p, 1, &v);
    ok = rc == 0 && is_int(v, 1);
    mp_val_free(v);
    if (!ok)
        return 14;
    mp_val_t forty = mp_val_int(40);
    if (mp_list_set(a->p, -2, &forty) != 0)
        return 15;
    size_t n = 0;
    if (mp_list_len(a->p, &n) != 0 || n != 6)
        return 16;
    return 0;
}

static void child_list(void **state)
{
    mp_manager_t *m = mgr_start(NULL);
    mp_proxy_t *l = NULL;
    mp_assert_int(mp_manager_list(m, &l), 0);
    mp_assert_str(mp_proxy_type(l), "list");
    mp_val_t init[3] = {mp_val_int(1), mp_val_int(2), mp_val_int(3)};
    mp_val_t arr = mp_val_array(init, 3);
    mp_assert_int(mp_list_extend(l, &arr), 0);
    static mp_party_t y;
    targ_t a = {.p = l};
    mp_party_start(&y, 1, t_child_list, &a, sizeof a);
    mp_assert_int(mp_party_join(&y), 0);
    mp_val_t want[6] = {mp_val_int(0), mp_val_int(2), mp_val_int(3),
                        mp_val_str("x"), mp_val_int(40), mp_val_int(5)};
    list_expect(l, want, 6, "the list after the child's changes");
    mp_proxy_free(l);
    mgr_stop(m);
}

/* t_child_ns: ns.x is 1 (10), ns.y = "hi" (11), ns.x += 1 (12). */
static int t_child_ns(void *arg)
{
    targ_t *a = arg;
    mp_val_t kx = mp_val_str("x"), ky = mp_val_str("y"), *v = NULL;
    int rc = mp_dict_get(a->p, &kx, &v);
    int ok = rc == 0 && is_int(v, 1);
    mp_val_free(v);
    if (!ok)
        return 10;
    mp_val_t hi = mp_val_str("hi");
    if (mp_dict_set(a->p, &ky, &hi) != 0)
        return 11;
    mp_val_t one = mp_val_int(1);
    if (mp_dict_incr(a->p, &kx, &one, NULL) != 0)
        return 12;
    return 0;
}

static void child_namespace(void **state)
{
    mp_manager_t *m = mgr_start(NULL);
    mp_proxy_t *ns = NULL;
    mp_assert_int(mp_manager_namespace(m, &ns), 0);
    mp_assert_str(mp_proxy_type(ns), "Namespace");
    dict_set_int(ns, "x", 1);
    static mp_party_t y;
    targ_t a = {.p = ns};
    mp_party_start(&y, 1, t_child_ns, &a, sizeof a);
    mp_assert_int(mp_party_join(&y), 0);
    dict_expect_int(ns, "x", 2, "ns.x after the child's += 1");
    mp_val_t ky = mp_val_str("y"), hi = mp_val_str("hi");
    dict_expect(ns, &ky, &hi, "ns.y set by the child");
    mp_val_t *keys = NULL;
    mp_assert_int(mp_dict_keys(ns, &keys), 0);
    mp_val_t wk[2] = {mp_val_str("x"), mp_val_str("y")};
    mp_val_t want = mp_val_array(wk, 2);
    expect_val(keys, &want, "the namespace's attributes");
    /* Attribute names are strings. */
    mp_val_t k3 = mp_val_int(3), v3 = mp_val_int(3);
    mp_assert_int(mp_dict_set(ns, &k3, &v3), -EINVAL);
    mp_proxy_free(ns);
    mgr_stop(m);
}

/* t_child_queue: gets 1, "two", [3] in order (10: rc2 the item), then
 * reports its tid and blocks in get (MP_FOREVER) until the test puts 99
 * (11), and puts "done" back (12). rc: the blocking get's code. */
static int t_child_queue(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    for (int i = 0; i < 3; i++) {
        mp_val_t *v = NULL;
        int rc = mp_mqueue_get(a->p, &v, CHILD_LONG);
        int ok = rc == 0 && (i == 0   ? is_int(v, 1)
                             : i == 1 ? is_str(v, "two")
                                      : (v && v->type == MP_VAL_ARRAY && v->v.a.n == 1 &&
                                         is_int(&v->v.a.items[0], 3)));
        mp_val_free(v);
        if (!ok) {
            b->rc2[a->id] = i;
            b->rc[a->id] = rc;
            return 10;
        }
    }
    b->tid[a->id] = mp_test_tid();
    mp_test_word_inc(&b->ready);
    mp_val_t *v = NULL;
    int rc = mp_mqueue_get(a->p, &v, MP_FOREVER);
    b->at[a->id] = mp_test_now();
    b->rc[a->id] = rc;
    int ok = rc == 0 && is_int(v, 99);
    mp_val_free(v);
    if (!ok)
        return 11;
    mp_val_t done = mp_val_str("done");
    if (mp_mqueue_put(a->p, &done, CHILD_LONG) != 0)
        return 12;
    return 0;
}

static void child_queue(void **state)
{
    board_t *b = board_new();
    mp_manager_t *m = mgr_start(NULL);
    mp_proxy_t *q = NULL;
    mp_assert_int(mp_manager_queue(m, 0, &q), 0);
    mp_assert_str(mp_proxy_type(q), "Queue");
    mp_val_t one = mp_val_int(1), two = mp_val_str("two"), three = mp_val_int(3);
    mp_val_t arr = mp_val_array(&three, 1);
    mp_assert_int(mp_mqueue_put(q, &one, 0), 0);
    mp_assert_int(mp_mqueue_put(q, &two, 0), 0);
    mp_assert_int(mp_mqueue_put(q, &arr, 0), 0);
    size_t n = 0;
    mp_assert_int(mp_mqueue_qsize(q, &n), 0);
    mp_assert_int(n, 3);
    static mp_party_t y;
    targ_t a = {.b = b, .p = q, .id = 0};
    mp_party_start(&y, 1, t_child_queue, &a, sizeof a);
    mp_test_wait_word(&b->ready, 1, "the child at its blocking get");
    mp_test_wait_asleep(b->tid[0], "the child in get(MP_FOREVER)");
    double t_put = mp_test_now();
    mp_val_t nn = mp_val_int(99);
    mp_assert_int(mp_mqueue_put(q, &nn, 0), 0);
    int code = mp_party_join(&y);
    if (code != 0)
        mp_test_fail("the child returned %d (10: item %d wrong, 11: the blocking get gave "
                     "%d (%s), 12: put)\n",
                     code, b->rc2[0], b->rc[0], mp_strerror(b->rc[0]));
    mp_test_check_prompt(b->at[0], t_put, "a child's get(MP_FOREVER)");
    mp_val_t *v = NULL;
    mp_assert_int(mp_mqueue_get(q, &v, MP_TEST_LONG), 0);
    mp_val_t done = mp_val_str("done");
    expect_val(v, &done, "the child's reply");
    /* Timeouts, enforced by the server. */
    v = NULL;
    expect_timed(mp_mqueue_get(q, &v, 0.2), MP_EEMPTY, 0.2, "get(0.2) on an empty queue");
    assert_null(v);
    expect_quick(mp_mqueue_get(q, &v, 0), MP_EEMPTY, "get(0) on an empty queue");
    mp_proxy_t *q1 = NULL;
    mp_assert_int(mp_manager_queue(m, 1, &q1), 0);
    mp_assert_int(mp_mqueue_put(q1, &one, 0), 0);
    expect_timed(mp_mqueue_put(q1, &two, 0.2), MP_EFULL, 0.2, "put(0.2) on a full queue");
    expect_quick(mp_mqueue_put(q1, &two, 0), MP_EFULL, "put(0) on a full queue");
    mp_assert_int(mp_mqueue_qsize(q1, &n), 0);
    mp_assert_int(n, 1);
    mp_proxy_free(q1);
    mp_proxy_free(q);
    mgr_stop(m);
    mp__arena_free(b);
}

/* t_jq_worker takes n tasks (integers), adds each to sum, counts it in done
 * and calls task_done. Codes: 10 get (rc), 11 not an integer, 12 task_done
 * (rc). */
static int t_jq_worker(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    for (int64_t i = 0; i < a->n; i++) {
        mp_val_t *v = NULL;
        int rc = mp_mqueue_get(a->p, &v, CHILD_LONG);
        if (rc != 0) {
            b->rc[a->id] = rc;
            return 10;
        }
        if (!v || v->type != MP_VAL_INT) {
            mp_val_free(v);
            return 11;
        }
        __atomic_add_fetch(&b->sum, (uint32_t)v->v.i, __ATOMIC_SEQ_CST);
        mp_val_free(v);
        mp_test_word_inc(&b->done);
        rc = mp_mqueue_task_done(a->p);
        if (rc != 0) {
            b->rc[a->id] = rc;
            return 12;
        }
    }
    return 0;
}

/* JoinableQueue: join waits until every task put was marked done by the
 * workers (two children); join with a timeout gives -ETIMEDOUT while tasks
 * are out; one task_done too many is -EINVAL. */
static void child_joinable_queue(void **state)
{
    board_t *b = board_new();
    mp_manager_t *m = mgr_start(NULL);
    mp_proxy_t *q = NULL;
    mp_assert_int(mp_manager_joinable_queue(m, 0, &q), 0);
    mp_assert_str(mp_proxy_type(q), "JoinableQueue");
    mp_assert_int(mp_mqueue_join(q, 0), 0); /* nothing put: nothing to wait for */
    for (int i = 0; i < 6; i++) {
        mp_val_t v = mp_val_int(i + 1);
        mp_assert_int(mp_mqueue_put(q, &v, 0), 0);
    }
    expect_timed(mp_mqueue_join(q, 0.2), -ETIMEDOUT, 0.2, "join(0.2) with 6 tasks out");
    static mp_party_t ys[2];
    for (int i = 0; i < 2; i++) {
        targ_t a = {.b = b, .p = q, .id = i, .n = 3};
        mp_party_start(&ys[i], 1, t_jq_worker, &a, sizeof a);
    }
    mp_assert_int(mp_mqueue_join(q, MP_TEST_LONG), 0);
    /* join returned: every task was marked done (each counted before). */
    mp_assert_int(mp_test_word_get(&b->done), 6);
    for (int i = 0; i < 2; i++) {
        int code = mp_party_join(&ys[i]);
        if (code != 0)
            mp_test_fail("worker %d returned %d (10: get, 11: not an int, 12: task_done; "
                         "code %d (%s))\n",
                         i, code, b->rc[i], mp_strerror(b->rc[i]));
    }
    mp_assert_int(b->sum, 21);
    mp_assert_int(mp_mqueue_task_done(q), -EINVAL);
    mp_assert_int(mp_mqueue_join(q, 0), 0);
    mp_proxy_free(q);
    mgr_stop(m);
    mp__arena_free(b);
}

/* t_child_lock: acquire(0) of the held lock is -ETIMEDOUT (rc2); then it
 * reports its tid and blocks in acquire (rc, at); once it holds the lock it
 * says so (held) and waits for go before releasing (rc3). Codes: 10
 * acquire(0) did not time out, 11 acquire failed, 12 go never came, 13
 * release failed. */
static int t_child_lock(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    int rc = mp_mlock_acquire(a->p, 0);
    b->rc2[a->id] = rc;
    if (rc != -ETIMEDOUT)
        return 10;
    b->tid[a->id] = mp_test_tid();
    mp_test_word_inc(&b->ready);
    rc = mp_mlock_acquire(a->p, CHILD_LONG);
    b->at[a->id] = mp_test_now();
    b->rc[a->id] = rc;
    if (rc != 0)
        return 11;
    mp_test_word_inc(&b->held);
    if (mp_test_word_wait(&b->go, 1, CHILD_LONG) != 0)
        return 12;
    rc = mp_mlock_release(a->p);
    b->rc3[a->id] = rc;
    return rc == 0 ? 0 : 13;
}

/* Lock: a child waits for the lock the test holds and gets it when
 * released; while the child holds it the test's acquire times out; a lock
 * not held cannot be released (-EPERM). */
static void child_lock(void **state)
{
    board_t *b = board_new();
    mp_manager_t *m = mgr_start(NULL);
    mp_proxy_t *l = NULL;
    mp_assert_int(mp_manager_lock(m, &l), 0);
    mp_assert_str(mp_proxy_type(l), "Lock");
    mp_assert_int(mp_mlock_release(l), -EPERM);
    mp_assert_int(mp_mlock_acquire(l, 0), 0);
    static mp_party_t y;
    targ_t a = {.b = b, .p = l, .id = 0};
    mp_party_start(&y, 1, t_child_lock, &a, sizeof a);
    mp_test_wait_word(&b->ready, 1, "the child at acquire");
    mp_test_wait_asleep(b->tid[0], "the child in acquire");
    double t_rel = mp_test_now();
    mp_assert_int(mp_mlock_release(l), 0);
    mp_test_wait_word(&b->held, 1, "the child holding the lock");
    mp_test_check_prompt(b->at[0], t_rel, "the child's acquire");
    expect_timed(mp_mlock_acquire(l, 0.2), -ETIMEDOUT, 0.2, "acquire(0.2) of a lock a child holds");
    mp_test_word_store(&b->go, 1);
    int code = mp_party_join(&y);
    if (code != 0)
        mp_test_fail("the child returned %d (10: acquire(0) gave %d, 11: acquire %d, 13: "
                     "release %d)\n",
                     code, b->rc2[0], b->rc[0], b->rc3[0]);
    mp_assert_int(mp_mlock_acquire(l, 0), 0);
    mp_assert_int(mp_mlock_release(l), 0);
    mp_assert_int(mp_mlock_release(l), -EPERM);
    mp_proxy_free(l);
    mgr_stop(m);
    mp__arena_free(b);
}

/* t_child_rlock acquires the RLock 3 times (it is recursive: rc 10 + i on
 * failure), says so (held), waits for go, releases 3 times (13 + i) and a
 * 4th release is -EPERM (16). */
static int t_child_rlock(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    for (int i = 0; i < 3; i++) {
        int rc = mp_mlock_acquire(a->p, 0);
        if (rc != 0) {
            b->rc[a->id] = rc;
            return 10 + i;
        }
    }
    mp_test_word_inc(&b->held);
    if (mp_test_word_wait(&b->go, 1, CHILD_LONG) != 0)
        return 9;
    for (int i = 0; i < 3; i++) {
        int rc = mp_mlock_release(a->p);
        if (rc != 0) {
            b->rc[a->id] = rc;
            return 13 + i;
        }
    }
    int rc = mp_mlock_release(a->p);
    b->rc[a->id] = rc;
    return rc == -EPERM ? 0 : 16;
}

/* RLock: recursive in its owner (a child), exclusive to others (the test's
 * acquire(0) times out, its release is -EPERM: it does not own it). */
static void child_rlock(void **state)
{
    board_t *b = board_new();
    mp_manager_t *m = mgr_start(NULL);
    mp_proxy_t *r = NULL;
    mp_assert_int(mp_manager_rlock(m, &r), 0);
    mp_assert_str(mp_proxy_type(r), "RLock");
    static mp_party_t y;
    targ_t a = {.b = b, .p = r, .id = 0};
    mp_party_start(&y, 1, t_child_rlock, &a, sizeof a);
    mp_test_wait_word(&b->held, 1, "the child holding the rlock 3 times");
    expect_quick(mp_mlock_acquire(r, 0), -ETIMEDOUT, "acquire(0) of an rlock a child holds");
    mp_assert_int(mp_mlock_release(r), -EPERM);
    mp_test_word_store(&b->go, 1);
    int code = mp_party_join(&y);
    if (code != 0)
        mp_test_fail("the child returned %d (10-12: acquire #n, 13-15: release #n, 16: "
                     "4th release; code %d (%s))\n",
                     code, b->rc[0], mp_strerror(b->rc[0]));
    mp_assert_int(mp_mlock_acquire(r, 0), 0);
    mp_assert_int(mp_mlock_acquire(r, 0), 0);
    mp_assert_int(mp_mlock_release(r), 0);
    mp_assert_int(mp_mlock_release(r), 0);
    mp_assert_int(mp_mlock_release(r), -EPERM);
    mp_proxy_free(r);
    mgr_stop(m);
    mp__arena_free(b);
}

/* t_child_sem: Semaphore(2): two acquire(0) succeed (10, 11), a third is
 * -ETIMEDOUT (12); says so (held) and blocks in acquire (rc, at) until the
 * test releases (13); then waits for go (9) and releases 3 times (14). */
static int t_child_sem(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    for (int i = 0; i < 2; i++) {
        int rc = mp_mlock_acquire(a->p, 0);
        if (rc != 0) {
            b->rc[a->id] = rc;
            return 10 + i;
        }
    }
    int rc = mp_mlock_acquire(a->p, 0);
    b->rc2[a->id] = rc;
    if (rc != -ETIMEDOUT)
        return 12;
    b->tid[a->id] = mp_test_tid();
    mp_test_word_inc(&b->ready);
    rc = mp_mlock_acquire(a->p, CHILD_LONG);
    b->at[a->id] = mp_test_now();
    b->rc[a->id] = rc;
    if (rc != 0)
        return 13;
    mp_test_word_inc(&b->held);
    if (mp_test_word_wait(&b->go, 1, CHILD_LONG) != 0)
        return 9;
    for (int i = 0; i < 3; i++) {
        rc = mp_mlock_release(a->p);
        if (rc != 0) {
            b->rc[a->id] = rc;
            return 14;
        }
    }
    return 0;
}

static void child_semaphore(void **state)
{
    board_t *b = board_new();
    mp_manager_t *m = mgr_start(NULL);
    mp_proxy_t *s = NULL;
    mp_assert_int(mp_manager_semaphore(m, 2, &s), 0);
    mp_assert_str(mp_proxy_type(s), "Semaphore");
    static mp_party_t y;
    targ_t a = {.b = b, .p = s, .id = 0};
    mp_party_start(&y, 1, t_child_sem, &a, sizeof a);
    mp_test_wait_word(&b->ready, 1, "the child at its third acquire");
    mp_test_wait_asleep(b->tid[0], "the child in acquire");
    double t_rel = mp_test_now();
    mp_assert_int(mp_mlock_release(s), 0);
    mp_test_wait_word(&b->held, 1, "the child past its blocking acquire");
    mp_test_check_prompt(b->at[0], t_rel, "the child's acquire");
    /* The child took all: the value is 0. */
    expect_timed(mp_mlock_acquire(s, 0.2), -ETIMEDOUT, 0.2, "acquire(0.2) of a semaphore at 0");
    mp_test_word_store(&b->go, 1);
    int code = mp_party_join(&y);
    if (code != 0)
        mp_test_fail("the child returned %d (10, 11: acquire(0) #n gave %d, 12: the third "
                     "gave %d, 13: the blocking acquire, 14: its releases)\n",
                     code, b->rc[0], b->rc2[0]);
    /* The child released 3 (one more than the initial value: not bounded);
     * then one more here. */
    mp_assert_int(mp_mlock_release(s), 0);
    for (int i = 0; i < 4; i++)
        mp_assert_int(mp_mlock_acquire(s, 0), 0);
    expect_quick(mp_mlock_acquire(s, 0), -ETIMEDOUT, "acquire(0) of a semaphore at 0 again");
    mp_proxy_free(s);
    mgr_stop(m);
    mp__arena_free(b);
}

/* t_child_bsem: BoundedSemaphore(1): acquire(0) (10), release (11), a
 * release above the initial value is -EOVERFLOW (12). */
static int t_child_bsem(void *arg)
{
    targ_t *a = arg;
    int rc = mp_mlock_acquire(a->p, 0);
    a->b->rc[a->id] = rc;
    if (rc != 0)
        return 10;
    rc = mp_mlock_release(a->p);
    a->b->rc[a->id] = rc;
    if (rc != 0)
        return 11;
    rc = mp_mlock_release(a->p);
    a->b->rc[a->id] = rc;
    return rc == -EOVERFLOW ? 0 : 12;
}

static void child_bounded_semaphore(void **state)
{
    board_t *b = board_new();
    mp_manager_t *m = mgr_start(NULL);
    mp_proxy_t *s = NULL;
    mp_assert_int(mp_manager_bounded_semaphore(m, 1, &s), 0);
    mp_assert_str(mp_proxy_type(s), "BoundedSemaphore");
    static mp_party_t y;
    targ_t a = {.b = b, .p = s, .id = 0};
    mp_party_start(&y, 1, t_child_bsem, &a, sizeof a);
    int code = mp_party_join(&y);
    if (code != 0)
        mp_test_fail("the child returned %d (10: acquire, 11: release, 12: the extra "
                     "release gave %d (%s), not -EOVERFLOW)\n",
                     code, b->rc[0], mp_strerror(b->rc[0]));
    mp_assert_int(mp_mlock_release(s), -EOVERFLOW);
    mp_assert_int(mp_mlock_acquire(s, 0), 0);
    expect_quick(mp_mlock_acquire(s, 0), -ETIMEDOUT, "acquire(0) of a bounded semaphore at 0");
    mp_assert_int(mp_mlock_release(s), 0);
    mp_assert_int(mp_mlock_release(s), -EOVERFLOW);
    mp_proxy_free(s);
    mgr_stop(m);
    mp__arena_free(b);
}

/* t_cond_waiter: acquire the condition (10), count itself in ready while
 * holding it, wait (rc, at), release (rc2; 11 if the wait failed, 12 if the
 * release did), count itself in done. */
static int t_cond_waiter(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    int rc = mp_mlock_acquire(a->p, CHILD_LONG);
    if (rc != 0) {
        b->rc[a->id] = rc;
        return 10;
    }
    b->tid[a->id] = mp_test_tid();
    mp_test_word_inc(&b->ready);
    rc = mp_mcond_wait(a->p, CHILD_LONG);
    b->at[a->id] = mp_test_now();
    b->rc[a->id] = rc;
    int rc2 = mp_mlock_release(a->p);
    b->rc2[a->id] = rc2;
    mp_test_word_inc(&b->done);
    if (rc != 0)
        return 11;
    return rc2 == 0 ? 0 : 12;
}

/* Condition: children wait (each counted in ready while holding the
 * condition, so once the test holds it they all wait); notify(1) wakes one,
 * notify_all the rest; wait and notify without the lock are -EPERM; wait
 * with a timeout gives -ETIMEDOUT and holds the lock again; a Condition over
 * a Lock proxy holds that lock. */
static void child_condition(void **state)
{
    board_t *b = board_new();
    mp_manager_t *m = mgr_start(NULL);
    mp_proxy_t *c = NULL;
    mp_assert_int(mp_manager_condition(m, NULL, &c), 0);
    mp_assert_str(mp_proxy_type(c), "Condition");
    mp_assert_int(mp_mcond_wait(c, 0), -EPERM);
    mp_assert_int(mp_mcond_notify(c, 1), -EPERM);
    mp_assert_int(mp_mcond_notify_all(c), -EPERM);

    static mp_party_t ys[2];
    for (int i = 0; i < 2; i++) {
        targ_t a = {.b = b, .p = c, .id = i};
        mp_party_start(&ys[i], 1, t_cond_waiter, &a, sizeof a);
    }
    mp_test_wait_word(&b->ready, 2, "the waiters");
    mp_assert_int(mp_mlock_acquire(c, MP_TEST_LONG), 0);
    /* Both counted themselves holding it, and we hold it: both wait. */
    double t1 = mp_test_now();
    mp_assert_int(mp_mcond_notify(c, 1), 0);
    mp_assert_int(mp_mlock_release(c), 0);
    mp_test_wait_word(&b->done, 1, "the waiter notify(1) woke");
    mp_assert_int(mp_mlock_acquire(c, MP_TEST_LONG), 0);
    mp_assert_int(mp_test_word_get(&b->done), 1);
    double t2 = mp_test_now();
    mp_assert_int(mp_mcond_notify_all(c), 0);
    mp_assert_int(mp_mlock_release(c), 0);
    for (int i = 0; i < 2; i++) {
        int code = mp_party_join(&ys[i]);
        if (code != 0)
            mp_test_fail("waiter %d returned %d (10: acquire, 11: wait gave %d (%s), 12: "
                         "release after wait gave %d)\n",
                         i, code, b->rc[i], mp_strerror(b->rc[i]), b->rc2[i]);
    }
    int first = b->at[0] <= b->at[1] ? 0 : 1;
    mp_test_check_prompt(b->at[first], t1, "the waiter woken by notify(1)");
    mp_test_check_prompt(b->at[1 - first], t2, "the waiter woken by notify_all");

    mp_assert_int(mp_mlock_acquire(c, 0), 0);
    expect_timed(mp_mcond_wait(c, 0.2), -ETIMEDOUT, 0.2, "wait(0.2) with nobody notifying");
    mp_assert_int(mp_mlock_release(c), 0); /* held again after the timeout */
    mp_assert_int(mp_mlock_release(c), -EPERM);

    /* Over a Lock proxy: holding the condition is holding that lock. */
    mp_proxy_t *l = NULL, *c2 = NULL;
    mp_assert_int(mp_manager_lock(m, &l), 0);
    mp_assert_int(mp_manager_condition(m, l, &c2), 0);
    mp_assert_int(mp_mlock_acquire(c2, 0), 0);
    mp_assert_int(mp_mlock_acquire(l, 0), -ETIMEDOUT);
    mp_assert_int(mp_mlock_release(c2), 0);
    mp_assert_int(mp_mlock_acquire(l, 0), 0);
    mp_assert_int(mp_mlock_acquire(c2, 0), -ETIMEDOUT);
    mp_assert_int(mp_mlock_release(l), 0);
    mp_proxy_free(c2);
    mp_proxy_free(l);
    mp_proxy_free(c);
    mgr_stop(m);
    mp__arena_free(b);
}

/* t_child_event: is_set is 0 (10), then it blocks in wait (rc, at) until
 * set (11), and sees is_set 1 (12). */
static int t_child_event(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    if (mp_mevent_is_set(a->p) != 0)
        return 10;
    b->tid[a->id] = mp_test_tid();
    mp_test_word_inc(&b->ready);
    int rc = mp_mevent_wait(a->p, CHILD_LONG);
    b->at[a->id] = mp_test_now();
    b->rc[a->id] = rc;
    if (rc != 0)
        return 11;
    return mp_mevent_is_set(a->p) == 1 ? 0 : 12;
}

static void child_event(void **state)
{
    board_t *b = board_new();
    mp_manager_t *m = mgr_start(NULL);
    mp_proxy_t *e = NULL;
    mp_assert_int(mp_manager_event(m, &e), 0);
    mp_assert_str(mp_proxy_type(e), "Event");
    static mp_party_t y;
    targ_t a = {.b = b, .p = e, .id = 0};
    mp_party_start(&y, 1, t_child_event, &a, sizeof a);
    mp_test_wait_word(&b->ready, 1, "the child at wait");
    mp_test_wait_asleep(b->tid[0], "the child in wait");
    double t_set = mp_test_now();
    mp_assert_int(mp_mevent_set(e), 0);
    int code = mp_party_join(&y);
    if (code != 0)
        mp_test_fail("the child returned %d (10: is_set before, 11: wait gave %d (%s), 12: "
                     "is_set after)\n",
                     code, b->rc[0], mp_strerror(b->rc[0]));
    mp_test_check_prompt(b->at[0], t_set, "the child's wait");
    mp_assert_int(mp_mevent_is_set(e), 1);
    expect_quick(mp_mevent_wait(e, 0), 0, "wait(0) on a set event");
    mp_assert_int(mp_mevent_clear(e), 0);
    mp_assert_int(mp_mevent_is_set(e), 0);
    expect_timed(mp_mevent_wait(e, 0.2), -ETIMEDOUT, 0.2, "wait(0.2) on a clear event");
    mp_proxy_free(e);
    mgr_stop(m);
    mp__arena_free(b);
}

/* t_child_barrier: reports its tid, waits at the barrier (rc, idx, at),
 * counts itself in done. Code 10: the wait failed (rc). */
static int t_child_barrier(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    b->tid[a->id] = mp_test_tid();
    mp_test_word_inc(&b->ready);
    int64_t idx = -1;
    int rc = mp_mbarrier_wait(a->p, CHILD_LONG, &idx);
    b->at[a->id] = mp_test_now();
    b->rc[a->id] = rc;
    b->idx[a->id] = idx;
    mp_test_word_inc(&b->done);
    return rc == 0 ? 0 : 10;
}

/* barrier_round: parties - 1 children and the test pass the barrier; the
 * indices are 0..parties-1, each once. */
static void barrier_round(board_t *b, mp_proxy_t *bar, int parties, int base)
{
    static mp_party_t ys[3];
    for (int i = 0; i < parties - 1; i++) {
        targ_t a = {.b = b, .p = bar, .id = base + i};
        mp_party_start(&ys[i], 1, t_child_barrier, &a, sizeof a);
    }
    int64_t mine = -1;
    mp_assert_int(mp_mbarrier_wait(bar, MP_TEST_LONG, &mine), 0);
    int seen[4] = {0};
    assert_true(mine >= 0 && mine < parties);
    seen[mine]++;
    for (int i = 0; i < parties - 1; i++) {
        int code = mp_party_join(&ys[i]);
        if (code != 0)
            mp_test_fail("barrier child %d returned %d (wait gave %d (%s))\n", i, code,
                         b->rc[base + i], mp_strerror(b->rc[base + i]));
        int64_t x = b->idx[base + i];
        if (x < 0 || x >= parties)
            mp_test_fail("a child's arrival index is %" PRId64 " of %d parties\n", x, parties);
        seen[x]++;
    }
    for (int i = 0; i < parties; i++)
        if (seen[i] != 1)
            mp_test_fail("arrival index %d was given %d times among %d parties\n", i, seen[i],
                         parties);
}

/* Barrier of 2 and of 3 parties across processes (distinct indices, used
 * twice), abort wakes a waiting child with MP_EBROKEN and later waits fail
 * at once until reset. */
static void child_barrier(void **state)
{
    board_t *b = board_new();
    mp_manager_t *m = mgr_start(NULL);
    mp_proxy_t *b2 = NULL, *b3 = NULL;
    mp_assert_int(mp_manager_barrier(m, 2, &b2), 0);
    mp_assert_str(mp_proxy_type(b2), "Barrier");
    mp_assert_int(mp_manager_barrier(m, 3, &b3), 0);
    barrier_round(b, b2, 2, 0);
    barrier_round(b, b3, 3, 4);
    barrier_round(b, b3, 3, 8); /* a barrier is reusable */

    /* abort while a child waits. */
    mp_test_word_store(&b->ready, 0);
    static mp_party_t y;
    targ_t a = {.b = b, .p = b2, .id = 12};
    mp_party_start(&y, 1, t_child_barrier, &a, sizeof a);
    mp_test_wait_word(&b->ready, 1, "the child at the barrier");
    mp_test_wait_asleep(b->tid[12], "the child in the barrier's wait");
    double t_ab = mp_test_now();
    mp_assert_int(mp_mbarrier_abort(b2), 0);
    mp_assert_int(mp_party_join(&y), 10);
    mp_assert_int(b->rc[12], MP_EBROKEN);
    mp_test_check_prompt(b->at[12], t_ab, "a barrier wait ended by abort");
    int64_t idx = -1;
    expect_quick(mp_mbarrier_wait(b2, MP_TEST_LONG, &idx), MP_EBROKEN,
                 "wait on a broken barrier");
    mp_assert_int(mp_mbarrier_reset(b2), 0);
    barrier_round(b, b2, 2, 13);
    mp_proxy_free(b2);
    mp_proxy_free(b3);
    mgr_stop(m);
    mp__arena_free(b);
}

/* t_child_value: Value('i', 5): get is 5 (10), incr 3 gives 8 (11), set 10
 * (12); Value('d', 1.5) (p2): incr 1.0 gives 2.5 (13). */
static int t_child_value(void *arg)
{
    targ_t *a = arg;
    mp_val_t *v = NULL;
    int rc = mp_mvalue_get(a->p, &v);
    int ok = rc == 0 && is_int(v, 5);
    mp_val_free(v);
    if (!ok)
        return 10;
    mp_val_t three = mp_val_int(3), *now = NULL;
    rc = mp_mvalue_incr(a->p, &three, &now);
    ok = rc == 0 && is_int(now, 8);
    mp_val_free(now);
    if (!ok)
        return 11;
    mp_val_t ten = mp_val_int(10);
    if (mp_mvalue_set(a->p, &ten) != 0)
        return 12;
    mp_val_t onef = mp_val_float(1.0);
    now = NULL;
    rc = mp_mvalue_incr(a->p2, &onef, &now);
    ok = rc == 0 && is_float(now, 2.5);
    mp_val_free(now);
    return ok ? 0 : 13;
}

static void child_value(void **state)
{
    mp_manager_t *m = mgr_start(NULL);
    mp_proxy_t *vi = NULL, *vd = NULL;
    mp_val_t five = mp_val_int(5), f15 = mp_val_float(1.5);
    mp_assert_int(mp_manager_value(m, "i", &five, &vi), 0);
    mp_assert_str(mp_proxy_type(vi), "Value");
    mp_assert_int(mp_manager_value(m, "d", &f15, &vd), 0);
    static mp_party_t y;
    targ_t a = {.p = vi, .p2 = vd};
    mp_party_start(&y, 1, t_child_value, &a, sizeof a);
    int code = mp_party_join(&y);
    if (code != 0)
        mp_test_fail("the child returned %d (10: get, 11: incr, 12: set, 13: incr of the "
                     "double)\n", code);
    mp_val_t *v = NULL;
    mp_assert_int(mp_mvalue_get(vi, &v), 0);
    mp_val_t ten = mp_val_int(10);
    expect_val(v, &ten, "the int Value the child set");
    v = NULL;
    mp_assert_int(mp_mvalue_get(vd, &v), 0);
    mp_val_t f25 = mp_val_float(2.5);
    expect_val(v, &f25, "the double Value the child incremented");
    /* The typecode decides what is accepted. */
    mp_val_t s = mp_val_str("x");
    mp_assert_int(mp_mvalue_set(vi, &s), -EINVAL);
    mp_assert_int(mp_mvalue_incr(vi, &s, NULL), -EINVAL);
    v = NULL;
    mp_assert_int(mp_mvalue_get(vi, &v), 0);
    expect_val(v, &ten, "the int Value after refused sets");
    mp_proxy_t *bad = NULL;
    mp_assert_int(mp_manager_value(m, "i", &s, &bad), -EINVAL);
    assert_null(bad);
    mp_assert_int(mp_manager_value(m, "no such typecode", &five, &bad), -EINVAL);
    assert_null(bad);
    mp_proxy_free(vi);
    mp_proxy_free(vd);
    mgr_stop(m);
}

/* t_child_array: Array('i', [1, 2, 3]): len 3 (10), a[-1] is 3 (11),
 * a[0] = 7 (12), a[3] is -ERANGE (13), a[1] = "x" is -EINVAL (14). */
static int t_child_array(void *arg)
{
    targ_t *a = arg;
    size_t n = 0;
    if (mp_list_len(a->p, &n) != 0 || n != 3)
        return 10;
    mp_val_t *v = NULL;
    int rc = mp_list_get(a->p, -1, &v);
    int ok = rc == 0 && is_int(v, 3);
    mp_val_free(v);
    if (!ok)
        return 11;
    mp_val_t seven = mp_val_int(7);
    if (mp_list_set(a->p, 0, &seven) != 0)
        return 12;
    v = NULL;
    if (mp_list_get(a->p, 3, &v) != -ERANGE) {
        mp_val_free(v);
        return 13;
    }
    mp_val_t s = mp_val_str("x");
    if (mp_list_set(a->p, 1, &s) != -EINVAL)
        return 14;
    return 0;
}

/* Array: a child reads and writes items through the list calls (len, get,
 * set, slice: the header names no Array calls of its own; the Array kind
 * answers the list's method names), the typecode refuses other types and
 * the length is fixed (-ERANGE past it). */
static void child_array(void **state)
{
    mp_manager_t *m = mgr_start(NULL);
    mp_proxy_t *arr = NULL;
    mp_val_t init[3] = {mp_val_int(1), mp_val_int(2), mp_val_int(3)};
    mp_val_t ia = mp_val_array(init, 3);
    mp_assert_int(mp_manager_array(m, "i", &ia, &arr), 0);
    mp_assert_str(mp_proxy_type(arr), "Array");
    static mp_party_t y;
    targ_t a = {.p = arr};
    mp_party_start(&y, 1, t_child_array, &a, sizeof a);
    int code = mp_party_join(&y);
    if (code != 0)
        mp_test_fail("the child returned %d (10: len, 11: get(-1), 12: set(0), 13: get(3) "
                     "not -ERANGE, 14: set of a string not -EINVAL)\n", code);
    mp_val_t *v = NULL;
    mp_assert_int(mp_list_slice(arr, 0, INT64_MAX, &v), 0);
    mp_val_t want_items[3] = {mp_val_int(7), mp_val_int(2), mp_val_int(3)};
    mp_val_t want = mp_val_array(want_items, 3);
    expect_val(v, &want, "the array after the child's a[0] = 7");
    mp_val_t nine = mp_val_int(9);
    mp_assert_int(mp_list_set(arr, -4, &nine), -ERANGE);
    mp_val_t s = mp_val_str("x");
    mp_val_t bad_items[2] = {mp_val_int(1), s};
    mp_val_t bad_arr = mp_val_array(bad_items, 2);
    mp_proxy_t *bad = NULL;
    mp_assert_int(mp_manager_array(m, "i", &bad_arr, &bad), -EINVAL);
    assert_null(bad);
    mp_assert_int(mp_manager_array(m, "i", &s, &bad), -EINVAL);
    assert_null(bad);
    mp_proxy_free(arr);
    mgr_stop(m);
}

/* ---- dict and list operations ---------------------------------------------------- */

/* dict: set/get/del/contains/len, keys and items in insertion order (an
 * overwritten key keeps its place, a deleted and re-added one goes last, as
 * in Python), values of every kind, incr of ints and floats (a missing key
 * counts as 0), -ENOENT for missing keys, -EINVAL for incr of a
 * non-number. */
static void dict_ops(void **state)
{
    mp_manager_t *m = mgr_start(NULL);
    mp_proxy_t *d = NULL;
    mp_assert_int(mp_manager_dict(m, &d), 0);
    size_t n = 99;
    mp_assert_int(mp_dict_len(d, &n), 0);
    mp_assert_int(n, 0);
    mp_val_t *v = NULL;
    mp_assert_int(mp_dict_keys(d, &v), 0);
    mp_val_t empty_a = mp_val_array(NULL, 0), empty_m = mp_val_map(NULL, 0);
    expect_val(v, &empty_a, "keys of an empty dict");
    v = NULL;
    mp_assert_int(mp_dict_items(d, &v), 0);
    expect_val(v, &empty_m, "items of an empty dict");

    mp_val_t ka = mp_val_str("a"), kb = mp_val_str("b"), k3 = mp_val_int(3),
             kd = mp_val_str("d"), kz = mp_val_str("zz");
    mp_val_t one = mp_val_int(1), two = mp_val_str("two");
    mp_val_t arr_items[2] = {mp_val_int(1), mp_val_int(2)};
    mp_val_t arr = mp_val_array(arr_items, 2);
    mp_val_kv_t map_items[2] = {{mp_val_str("x"), mp_val_float(1.5)},
                                {mp_val_str("y"), mp_val_bytes("\0\1\2", 3)}};
    mp_val_t map = mp_val_map(map_items, 2);
    mp_assert_int(mp_dict_set(d, &ka, &one), 0);
    mp_assert_int(mp_dict_set(d, &kb, &two), 0);
    mp_assert_int(mp_dict_set(d, &k3, &arr), 0);
    mp_assert_int(mp_dict_set(d, &kd, &map), 0);
    mp_assert_int(mp_dict_len(d, &n), 0);
    mp_assert_int(n, 4);
    dict_expect(d, &ka, &one, "d['a']");
    dict_expect(d, &kb, &two, "d['b']");
    dict_expect(d, &k3, &arr, "d[3]");
    dict_expect(d, &kd, &map, "d['d'] (a map with bytes)");
    mp_assert_int(mp_dict_contains(d, &ka), 1);
    mp_assert_int(mp_dict_contains(d, &k3), 1);
    mp_assert_int(mp_dict_contains(d, &kz), 0);
    v = NULL;
    mp_assert_int(mp_dict_get(d, &kz, &v), -ENOENT);
    assert_null(v);

    mp_val_t ten = mp_val_int(10);
    mp_assert_int(mp_dict_set(d, &ka, &ten), 0); /* keeps its place */
    mp_assert_int(mp_dict_del(d, &kb), 0);
    mp_assert_int(mp_dict_del(d, &kb), -ENOENT);
    mp_assert_int(mp_dict_contains(d, &kb), 0);
    mp_assert_int(mp_dict_get(d, &kb, &v), -ENOENT);
    mp_val_t again = mp_val_str("again");
    mp_assert_int(mp_dict_set(d, &kb, &again), 0); /* goes last */
    v = NULL;
    mp_assert_int(mp_dict_keys(d, &v), 0);
    mp_val_t wk[4] = {ka, k3, kd, kb};
    mp_val_t want_keys = mp_val_array(wk, 4);
    expect_val(v, &want_keys, "keys after overwrite, delete and re-add");
    v = NULL;
    mp_assert_int(mp_dict_items(d, &v), 0);
    mp_val_kv_t wi[4] = {{ka, ten}, {k3, arr}, {kd, map}, {kb, again}};
    mp_val_t want_items = mp_val_map(wi, 4);
    expect_val(v, &want_items, "items after overwrite, delete and re-add");

    /* incr: a missing key counts as 0; int + int is an int, a float makes
     * a float. */
    mp_val_t kn = mp_val_str("n"), kf = mp_val_str("f"), *now = NULL;
    mp_val_t five = mp_val_int(5), m7 = mp_val_int(-7), half = mp_val_float(0.5),
             itwo = mp_val_int(2), f15 = mp_val_float(1.5);
    mp_assert_int(mp_dict_incr(d, &kn, &five, &now), 0);
    expect_val(now, &five, "incr of a missing key by 5");
    now = NULL;
    mp_assert_int(mp_dict_incr(d, &kn, &m7, &now), 0);
    mp_val_t mtwo = mp_val_int(-2);
    expect_val(now, &mtwo, "5 incremented by -7");
    now = NULL;
    mp_assert_int(mp_dict_incr(d, &kf, &half, &now), 0);
    expect_val(now, &half, "incr of a missing key by 0.5");
    now = NULL;
    mp_assert_int(mp_dict_incr(d, &kf, &itwo, &now), 0);
    mp_val_t f25 = mp_val_float(2.5);
    expect_val(now, &f25, "0.5 incremented by 2");
    mp_assert_int(mp_dict_incr(d, &ka, &f15, NULL), 0);
    mp_val_t f115 = mp_val_float(11.5);
    dict_expect(d, &ka, &f115, "10 incremented by 1.5");
    dict_expect(d, &kn, &mtwo, "d['n'] after its incrs");
    /* Not numbers. */
    mp_assert_int(mp_dict_incr(d, &kb, &five, NULL), -EINVAL);
    dict_expect(d, &kb, &again, "a string value after a refused incr");
    mp_val_t s = mp_val_str("x");
    mp_assert_int(mp_dict_incr(d, &kn, &s, NULL), -EINVAL);
    dict_expect(d, &kn, &mtwo, "an int value after an incr by a string");
    mp_assert_int(mp_dict_len(d, &n), 0);
    mp_assert_int(n, 6);
    mp_proxy_free(d);
    mgr_stop(m);
}

/* list: append, extend, insert (clamped as Python's), pop, get, set, del
 * with negative indexes, -ERANGE out of range, slices with Python's
 * clamping, slice assignment of other lengths, incr. */
static void list_ops(void **state)
{
    mp_manager_t *m = mgr_start(NULL);
    mp_proxy_t *l = NULL;
    mp_assert_int(mp_manager_list(m, &l), 0);
    size_t n = 99;
    mp_assert_int(mp_list_len(l, &n), 0);
    mp_assert_int(n, 0);
    mp_val_t *v = NULL;
    mp_val_t x = mp_val_int(1);
    mp_assert_int(mp_list_get(l, 0, &v), -ERANGE);
    mp_assert_int(mp_list_get(l, -1, &v), -ERANGE);
    mp_assert_int(mp_list_pop(l, -1, &v), -ERANGE);
    mp_assert_int(mp_list_set(l, 0, &x), -ERANGE);
    mp_assert_int(mp_list_del(l, 0), -ERANGE);
    assert_null(v);

    mp_val_t one = mp_val_int(1), sb = mp_val_str("b");
    mp_assert_int(mp_list_append(l, &one), 0);
    mp_assert_int(mp_list_append(l, &sb), 0);
    mp_val_t ext[3] = {mp_val_int(3), mp_val_int(4), mp_val_int(5)};
    mp_val_t exta = mp_val_array(ext, 3);
    mp_assert_int(mp_list_extend(l, &exta), 0);
    {
        mp_val_t w[5] = {mp_val_int(1), mp_val_str("b"), mp_val_int(3), mp_val_int(4),
                         mp_val_int(5)};
        list_expect(l, w, 5, "after append 1, \"b\", extend [3, 4, 5]");
    }
    mp_val_t five = mp_val_int(5);
    v = NULL;
    mp_assert_int(mp_list_get(l, -1, &v), 0);
    expect_val(v, &five, "l[-1]");
    v = NULL;
    mp_assert_int(mp_list_get(l, -5, &v), 0);
    expect_val(v, &one, "l[-5]");
    v = NULL;
    mp_assert_int(mp_list_get(l, 5, &v), -ERANGE);
    mp_assert_int(mp_list_get(l, -6, &v), -ERANGE);
    mp_assert_int(mp_list_get(l, INT64_MAX, &v), -ERANGE);
    mp_assert_int(mp_list_get(l, INT64_MIN, &v), -ERANGE);
    assert_null(v);

    mp_val_t zero = mp_val_int(0), sx = mp_val_str("x"), send = mp_val_str("end"),
             sstart = mp_val_str("start");
    mp_assert_int(mp_list_insert(l, 0, &zero), 0);
    mp_assert_int(mp_list_insert(l, -1, &sx), 0);      /* before the last */
    mp_assert_int(mp_list_insert(l, 100, &send), 0);   /* clamped: appended */
    mp_assert_int(mp_list_insert(l, -100, &sstart), 0); /* clamped: first */
    {
        mp_val_t w[9] = {mp_val_str("start"), mp_val_int(0), mp_val_int(1),
                         mp_val_str("b"),     mp_val_int(3), mp_val_int(4),
                         mp_val_str("x"),     mp_val_int(5), mp_val_str("end")};
        list_expect(l, w, 9, "after insert(0), insert(-1), insert(100), insert(-100)");
    }
    v = NULL;
    mp_assert_int(mp_list_pop(l, -1, &v), 0);
    expect_val(v, &send, "pop(-1)");
    v = NULL;
    mp_assert_int(mp_list_pop(l, 0, &v), 0);
    expect_val(v, &sstart, "pop(0)");
    v = NULL;
    mp_assert_int(mp_list_pop(l, 2, &v), 0);
    expect_val(v, &sb, "pop(2)");
    v = NULL;
    mp_assert_int(mp_list_pop(l, 6, &v), -ERANGE);
    mp_assert_int(mp_list_pop(l, -7, &v), -ERANGE);
    assert_null(v);
    mp_val_t forty = mp_val_int(40);
    mp_assert_int(mp_list_set(l, -2, &forty), 0);
    mp_assert_int(mp_list_set(l, 6, &forty), -ERANGE);
    mp_assert_int(mp_list_set(l, -7, &forty), -ERANGE);
    mp_assert_int(mp_list_del(l, -3), 0);
    mp_assert_int(mp_list_del(l, 5), -ERANGE);
    mp_assert_int(mp_list_del(l, -6), -ERANGE);
    {
        mp_val_t w[5] = {mp_val_int(0), mp_val_int(1), mp_val_int(3), mp_val_int(40),
                         mp_val_int(5)};
        list_expect(l, w, 5, "after pops, l[-2] = 40, del l[-3]");
    }

    /* Slices clamp as Python's. */
    struct {
        int64_t start, stop;
        int n;
        int64_t items[5];
    } sl[] = {
        {1, 3, 2, {1, 3}},
        {-2, 100, 2, {40, 5}},
        {-100, 2, 2, {0, 1}},
        {3, 1, 0, {0}},
        {100, 200, 0, {0}},
        {-1, -3, 0, {0}},
        {INT64_MIN, INT64_MAX, 5, {0, 1, 3, 40, 5}},
        {0, -1, 4, {0, 1, 3, 40}},
    };
    for (size_t i = 0; i < sizeof sl / sizeof sl[0]; i++) {
        char what[96];
        snprintf(what, sizeof what, "l[%" PRId64 ":%" PRId64 "]", sl[i].start, sl[i].stop);
        mp_val_t w[5];
        for (int k = 0; k < sl[i].n; k++)
            w[k] = mp_val_int(sl[i].items[k]);
        mp_val_t wa = mp_val_array(w, (size_t)sl[i].n);
        v = NULL;
        mp_assert_int(mp_list_slice(l, sl[i].start, sl[i].stop, &v), 0);
        expect_val(v, &wa, what);
    }

    /* Slice assignment: other lengths, inserting, deleting, clamped. */
    mp_val_t r3[3] = {mp_val_int(10), mp_val_int(11), mp_val_int(12)};
    mp_val_t r3a = mp_val_array(r3, 3);
    mp_assert_int(mp_list_set_slice(l, 1, 3, &r3a), 0);
    {
        mp_val_t w[6] = {mp_val_int(0),  mp_val_int(10), mp_val_int(11),
                         mp_val_int(12), mp_val_int(40), mp_val_int(5)};
        list_expect(l, w, 6, "after l[1:3] = [10, 11, 12]");
    }
    mp_val_t none = mp_val_array(NULL, 0);
    mp_assert_int(mp_list_set_slice(l, -1, 100, &none), 0);
    mp_val_t sa = mp_val_str("a"), sz = mp_val_str("z"), sq = mp_val_str("q");
    mp_val_t aa = mp_val_array(&sa, 1), za = mp_val_array(&sz, 1), qa = mp_val_array(&sq, 1);
    mp_assert_int(mp_list_set_slice(l, 0, 0, &aa), 0);
    mp_assert_int(mp_list_set_slice(l, 100, 100, &za), 0);
    mp_assert_int(mp_list_set_slice(l, 2, 1, &qa), 0); /* an empty slice at 2 */
    {
        mp_val_t w[8] = {mp_val_str("a"), mp_val_int(0),  mp_val_str("q"), mp_val_int(10),
                         mp_val_int(11),  mp_val_int(12), mp_val_int(40),  mp_val_str("z")};
        list_expect(l, w, 8, "after l[-1:100] = [], l[0:0] = [a], l[100:100] = [z], "
                             "l[2:1] = [q]");
    }
    mp_assert_int(mp_list_set_slice(l, -3, -1, &none), 0);
    {
        mp_val_t w[6] = {mp_val_str("a"), mp_val_int(0),  mp_val_str("q"),
                         mp_val_int(10),  mp_val_int(11), mp_val_str("z")};
        list_expect(l, w, 6, "after l[-3:-1] = []");
    }
    /* Not arrays. */
    mp_assert_int(mp_list_set_slice(l, 0, 1, &sa), -EINVAL);
    mp_assert_int(mp_list_extend(l, &sa), -EINVAL);

    /* incr. */
    mp_val_t *now = NULL;
    mp_assert_int(mp_list_incr(l, 1, &five, &now), 0);
    expect_val(now, &five, "l[1] (0) incremented by 5");
    mp_assert_int(mp_list_incr(l, -1, &five, NULL), -EINVAL); /* "z" */
    mp_assert_int(mp_list_incr(l, 6, &five, NULL), -ERANGE);
    mp_assert_int(mp_list_len(l, &n), 0);
    mp_assert_int(n, 6);
    mp_proxy_free(l);
    mgr_stop(m);
}

/* ---- nested proxies ---------------------------------------------------------------- */

/* t_nested: d['inner'] is a proxy value (10: get, 11: not a proxy); it is
 * turned back into a list proxy (12) that takes an append (13). */
static int t_nested(void *arg)
{
    targ_t *a = arg;
    mp_val_t k = mp_val_str("inner"), *v = NULL;
    int rc = mp_dict_get(a->p, &k, &v);
    a->b->rc[a->id] = rc;
    if (rc != 0)
        return 10;
    if (!mp_val_map_get(v, "__mproc_proxy__")) {
        mp_val_free(v);
        return 11;
    }
    mp_proxy_t *l = NULL;
    rc = mp_proxy_from_value(v, &l);
    mp_val_free(v);
    a->b->rc[a->id] = rc;
    if (rc != 0)
        return 12;
    mp_val_t eight = mp_val_int(8);
    rc = mp_list_append(l, &eight);
    a->b->rc[a->id] = rc;
    mp_proxy_free(l);
    return rc == 0 ? 0 : 13;
}

/* A list proxy stored in a dict stays live: read back, turned into a proxy,
 * used here and from a child, and the first proxy sees every change. */
static void nested_proxy(void **state)
{
    board_t *b = board_new();
    mp_manager_t *m = mgr_start(NULL);
    mp_proxy_t *d = NULL, *l = NULL;
    mp_assert_int(mp_manager_dict(m, &d), 0);
    mp_assert_int(mp_manager_list(m, &l), 0);
    mp_val_t *pv = NULL;
    mp_assert_int(mp_proxy_value(l, &pv), 0);
    assert_non_null(pv);
    const mp_val_t *inner = mp_val_map_get(pv, "__mproc_proxy__");
    if (!inner || inner->type != MP_VAL_ARRAY || inner->v.a.n != 3)
        mp_test_fail("a proxy's value is not {\"__mproc_proxy__\": [address, id, type]}\n");
    if (!is_str(&inner->v.a.items[2], "list"))
        mp_test_fail("a list proxy's value does not name its type \"list\"\n");
    mp_val_t k = mp_val_str("inner");
    mp_assert_int(mp_dict_set(d, &k, pv), 0);
    mp_val_free(pv);

    mp_val_t *got = NULL;
    mp_assert_int(mp_dict_get(d, &k, &got), 0);
    mp_proxy_t *l2 = NULL;
    mp_assert_int(mp_proxy_from_value(got, &l2), 0);
    mp_val_free(got);
    assert_non_null(l2);
    mp_assert_str(mp_proxy_type(l2), "list");
    mp_val_t seven = mp_val_int(7);
    mp_assert_int(mp_list_append(l2, &seven), 0);
    size_t n = 0;
    mp_assert_int(mp_list_len(l, &n), 0);
    mp_assert_int(n, 1);

    static mp_party_t y;
    targ_t a = {.b = b, .p = d, .id = 0};
    mp_party_start(&y, 1, t_nested, &a, sizeof a);
    int code = mp_party_join(&y);
    if (code != 0)
        mp_test_fail("the child returned %d (10: get, 11: not a proxy value, 12: "
                     "from_value, 13: append; code %d (%s))\n",
                     code, b->rc[0], mp_strerror(b->rc[0]));
    mp_val_t w[2] = {mp_val_int(7), mp_val_int(8)};
    list_expect(l, w, 2, "the nested list after appends here and in a child");

    /* A list stored in a list too. */
    mp_proxy_t *outer = NULL;
    mp_assert_int(mp_manager_list(m, &outer), 0);
    pv = NULL;
    mp_assert_int(mp_proxy_value(l, &pv), 0);
    mp_assert_int(mp_list_append(outer, pv), 0);
    mp_val_free(pv);
    got = NULL;
    mp_assert_int(mp_list_get(outer, 0, &got), 0);
    mp_proxy_t *l3 = NULL;
    mp_assert_int(mp_proxy_from_value(got, &l3), 0);
    mp_val_free(got);
    mp_assert_int(mp_list_len(l3, &n), 0);
    mp_assert_int(n, 2);

    /* Not proxy values. */
    mp_proxy_t *bad = NULL;
    mp_val_t i5 = mp_val_int(5);
    mp_assert_int(mp_proxy_from_value(&i5, &bad), -EINVAL);
    mp_val_kv_t kv = {mp_val_str("__mproc_proxy__"), mp_val_int(1)};
    mp_val_t fake = mp_val_map(&kv, 1);
    mp_assert_int(mp_proxy_from_value(&fake, &bad), -EINVAL);
    assert_null(bad);

    mp_proxy_free(l3);
    mp_proxy_free(l2);
    mp_proxy_free(outer);
    mp_proxy_free(l);
    mp_proxy_free(d);
    mgr_stop(m);
    mp__arena_free(b);
}

/* mp_proxy_free in the process that created an object deletes it in the
 * server: another proxy to it (made from its value) then gets an error (not
 * success, not MP_EEOF: the manager is alive); a proxy freed by a process
 * that did not create the object deletes nothing (nested_proxy's child). */
static void proxy_free_deletes_object(void **state)
{
    mp_manager_t *m = mgr_start(NULL);
    mp_proxy_t *l = NULL, *l2 = NULL;
    mp_assert_int(mp_manager_list(m, &l), 0);
    mp_val_t one = mp_val_int(1);
    mp_assert_int(mp_list_append(l, &one), 0);
    mp_val_t *pv = NULL;
    mp_assert_int(mp_proxy_value(l, &pv), 0);
    mp_assert_int(mp_proxy_from_value(pv, &l2), 0);
    mp_val_free(pv);
    mp_proxy_free(l2); /* not the creator's handle: the list stays */
    l2 = NULL;
    size_t n = 0;
    mp_assert_int(mp_list_len(l, &n), 0);
    mp_assert_int(n, 1);
    pv = NULL;
    mp_assert_int(mp_proxy_value(l, &pv), 0);
    mp_assert_int(mp_proxy_from_value(pv, &l2), 0);
    mp_val_free(pv);
    mp_proxy_free(l); /* the creator's: the list is deleted */
    int rc = mp_list_len(l2, &n);
    if (rc >= 0 || rc == MP_EEOF)
        mp_test_fail("len of a list its creator freed gave %d%s, expected an error from a "
                     "live manager\n", rc, mp_test_codename(rc));
    mp_proxy_free(l2);
    mp_proxy_t *d = NULL;
    mp_assert_int(mp_manager_dict(m, &d), 0);
    still_serving(d, 1, "a deleted object was called");
    mp_proxy_free(d);
    mgr_stop(m);
}

/* ---- remote managers ---------------------------------------------------------------- */

/* t_mserver serves a Queue ("queue") and a Counter ("counter", from 0) on
 * 127.0.0.1:0 with the key in a->key, publishes its address (addr, ready),
 * and serves until a client shuts it down. Codes: 10 new, 11/12 add,
 * 13 address, 14 serve_forever (rc). */
static int t_mserver(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    mp_manager_opts_t o;
    memset(&o, 0, sizeof o);
    o.address = "127.0.0.1:0";
    o.authkey = a->key;
    o.authkey_len = strlen(a->key);
    o.types = k_types;
    mp_mserver_t *s = NULL;
    int rc = mp_mserver_new(&s, &o);
    b->rc[a->id] = rc;
    if (rc != 0)
        return 10;
    rc = mp_mserver_add(s, "queue", "Queue", NULL, 0);
    b->rc[a->id] = rc;
    if (rc != 0) {
        mp_mserver_free(s);
        return 11;
    }
    mp_val_t zero = mp_val_int(0);
    rc = mp_mserver_add(s, "counter", "Counter", &zero, 1);
    b->rc[a->id] = rc;
    if (rc != 0) {
        mp_mserver_free(s);
        return 12;
    }
    const char *ad = mp_mserver_address(s);
    if (!ad || strlen(ad) >= sizeof b->addr) {
        mp_mserver_free(s);
        return 13;
    }
    memcpy(b->addr, ad, strlen(ad) + 1);
    mp_test_word_inc(&b->ready);
    rc = mp_mserver_serve_forever(s);
    b->rc[a->id] = rc;
    mp_mserver_free(s);
    return rc == 0 ? 0 : 14;
}

/* remote_client is what a client that knows only the address and the key
 * does: a wrong key is MP_EAUTH (3), the right one connects (4), an unknown
 * name is -ENOENT (5), "queue" (6) gives `expect` (7) and takes `reply`
 * (8), "counter" (9) takes an incr (10). Safe in targets; errors go to
 * stderr with the code. */
static int remote_client(const char *who, const char *addr, const char *key, const char *expect,
                         const char *reply)
{
    mp_manager_t *c = NULL;
    int rc = mp_manager_connect(&c, addr, KEY_WRONG, strlen(KEY_WRONG), CHILD_LONG);
    if (rc != MP_EAUTH) {
        fprintf(stderr, "%s: connect with a wrong key gave %d (%s)\n", who, rc, mp_strerror(rc));
        if (rc == 0)
            mp_manager_free(c);
        return 3;
    }
    rc = mp_manager_connect(&c, addr, key, strlen(key), CHILD_LONG);
    if (rc != 0) {
        fprintf(stderr, "%s: connect gave %d (%s)\n", who, rc, mp_strerror(rc));
        return 4;
    }
    int ret = 0;
    mp_proxy_t *q = NULL, *cnt = NULL, *none = NULL;
    rc = mp_manager_get(c, "no such name", &none);
    if (rc != -ENOENT) {
        fprintf(stderr, "%s: get of an unknown name gave %d (%s)\n", who, rc, mp_strerror(rc));
        ret = 5;
        goto out;
    }
    rc = mp_manager_get(c, "queue", &q);
    if (rc != 0) {
        fprintf(stderr, "%s: get \"queue\" gave %d (%s)\n", who, rc, mp_strerror(rc));
        ret = 6;
        goto out;
    }
    if (expect) {
        mp_val_t *v = NULL;
        rc = mp_mqueue_get(q, &v, CHILD_LONG);
        int ok = rc == 0 && is_str(v, expect);
        mp_val_free(v);
        if (!ok) {
            fprintf(stderr, "%s: queue get gave %d (%s) or not \"%s\"\n", who, rc,
                    mp_strerror(rc), expect);
            ret = 7;
            goto out;
        }
    }
    mp_val_t r = mp_val_str(reply);
    rc = mp_mqueue_put(q, &r, CHILD_LONG);
    if (rc != 0) {
        fprintf(stderr, "%s: queue put gave %d (%s)\n", who, rc, mp_strerror(rc));
        ret = 8;
        goto out;
    }
    rc = mp_manager_get(c, "counter", &cnt);
    if (rc != 0) {
        fprintf(stderr, "%s: get \"counter\" gave %d (%s)\n", who, rc, mp_strerror(rc));
        ret = 9;
        goto out;
    }
    int64_t one = 1, now = 0;
    rc = counter_call(cnt, "incr", &one, &now, CHILD_LONG);
    if (rc != 0) {
        fprintf(stderr, "%s: counter incr gave %d (%s)\n", who, rc, mp_strerror(rc));
        ret = 10;
        goto out;
    }
out:
    mp_proxy_free(none);
    mp_proxy_free(cnt);
    mp_proxy_free(q);
    mp_manager_free(c);
    return ret;
}

/* The separately started program: test_manager --helper manager-client
 * ADDR KEY (gets "from-test", puts "from-helper"). */
static int helper_manager_client(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    return remote_client("helper program", argv[1], argv[2], "from-test", "from-helper");
}

/* A child of the start method under test, with only the address and key. */
static int t_remote_client(void *arg)
{
    targ_t *a = arg;
    return remote_client("child process", a->addr, a->key, NULL, "from-child");
}

/* run_helper_client runs the helper program (this binary re-executed) with
 * addr and key, and returns its exit status (-N for signal N). */
static int run_helper_client(const char *addr, const char *key)
{
    fflush(NULL);
    pid_t h = fork();
    assert_true(h >= 0);
    if (h == 0) {
        execl(mp_test_self_exe(), mp_test_self_exe(), "--helper", "manager-client", addr, key,
              (char *)NULL);
        _exit(127);
    }
    int st = 0;
    if (mp_test_waitpid(h, &st, MP_TEST_LONG) != 0) {
        kill(h, SIGKILL);
        waitpid(h, &st, 0);
        mp_test_fail("the helper program did not end within %.0f s\n", MP_TEST_LONG);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

/* A server on 127.0.0.1:0 with a key, serving forever in a child process;
 * a separately started program (this binary re-executed) and a child of the
 * start method under test connect by address and key, get the objects by
 * name and use them; a wrong key is MP_EAUTH and the server keeps serving;
 * an unknown name is -ENOENT; a client shuts the server down, its
 * serve_forever returns 0 (shutting down again gives 0), and the address
 * then refuses connections. */
static void remote_tcp(void **state)
{
    board_t *b = board_new();
    static mp_party_t srv;
    targ_t sa = {.b = b, .id = 0};
    snprintf(sa.key, sizeof sa.key, "%s", KEY_REMOTE);
    mp_party_start(&srv, 1, t_mserver, &sa, sizeof sa);
    if (mp_test_word_wait(&b->ready, 1, MP_TEST_LONG) != 0) {
        int code = mp_party_join(&srv);
        mp_test_fail("the server never published its address (it returned %d: 10 new, 11/12 "
                     "add, 13 address; code %d (%s))\n",
                     code, b->rc[0], mp_strerror(b->rc[0]));
    }
    char addr[MP_ADDRESS_MAX];
    snprintf(addr, sizeof addr, "%s", b->addr);
    if (strncmp(addr, "127.0.0.1:", 10) != 0 || atoi(addr + 10) <= 0)
        mp_test_fail("the server's address is \"%s\", not 127.0.0.1 with a port\n", addr);

    mp_manager_t *c = NULL;
    mp_assert_int(mp_manager_connect(&c, addr, KEY_WRONG, strlen(KEY_WRONG), MP_TEST_LONG),
                  MP_EAUTH);
    assert_null(c);
    mp_assert_int(mp_manager_connect(&c, addr, KEY_REMOTE, strlen(KEY_REMOTE), MP_TEST_LONG), 0);
    assert_non_null(c);
    assert_true(mp_manager_address(c) != NULL);
    mp_assert_int(mp_manager_pid(c), 0);
    int code = 0;
    mp_assert_int(mp_manager_exitcode(c, &code), -EPERM);
    mp_proxy_t *q = NULL, *cnt = NULL, *none = NULL;
    mp_assert_int(mp_manager_get(c, "nope", &none), -ENOENT);
    assert_null(none);
    mp_assert_int(mp_manager_get(c, "queue", &q), 0);
    mp_assert_str(mp_proxy_type(q), "Queue");
    mp_assert_int(mp_manager_get(c, "counter", &cnt), 0);
    mp_assert_str(mp_proxy_type(cnt), "Counter");
    mp_val_t ft = mp_val_str("from-test");
    mp_assert_int(mp_mqueue_put(q, &ft, 0), 0);

    code = run_helper_client(addr, KEY_REMOTE);
    if (code != 0)
        mp_test_fail("the helper program exited with %d (3: wrong key not MP_EAUTH, 4: "
                     "connect, 5: unknown name, 6: get queue, 7: queue get, 8: put, 9: get "
                     "counter, 10: incr; see its stderr)\n", code);
    static mp_party_t cl;
    targ_t ca = {.b = b, .id = 1};
    assert_true(strlen(addr) < sizeof ca.addr);
    memcpy(ca.addr, addr, strlen(addr) + 1);
    snprintf(ca.key, sizeof ca.key, "%s", KEY_REMOTE);
    mp_party_start(&cl, 1, t_remote_client, &ca, sizeof ca);
    code = mp_party_join(&cl);
    if (code != 0)
        mp_test_fail("the client child exited with %d (codes as the helper's; see its "
                     "stderr)\n", code);

    mp_val_t *v = NULL;
    mp_assert_int(mp_mqueue_get(q, &v, MP_TEST_LONG), 0);
    mp_val_t fh = mp_val_str("from-helper"), fc = mp_val_str("from-child");
    expect_val(v, &fh, "the helper program's put");
    v = NULL;
    mp_assert_int(mp_mqueue_get(q, &v, MP_TEST_LONG), 0);
    expect_val(v, &fc, "the child's put");
    int64_t now = -1;
    mp_assert_int(counter_call(cnt, "get", NULL, &now, MP_TEST_LONG), 0);
    mp_assert_int(now, 2);

    /* Shut down through the client (mp_mserver_serve_forever: "serves until
     * a client calls mp_manager_shutdown on it"). */
    int rc = mp_manager_shutdown(c, MP_TEST_LONG);
    if (rc != 0) {
        mp_party_kill(&srv);
        mp_test_fail("mp_manager_shutdown through a connected client gave %d%s: the server "
                     "serving forever did not stop (killed)\n",
                     rc, mp_test_codename(rc));
    }
    code = mp_party_join(&srv);
    if (code != 0)
        mp_test_fail("the server returned %d (14: serve_forever gave %d (%s))\n", code,
                     b->rc[0], mp_strerror(b->rc[0]));
    expect_quick(mp_mqueue_put(q, &ft, 0), MP_EEOF, "a call on a server that was shut down");
    mp_assert_int(mp_manager_shutdown(c, MP_TEST_LONG), 0); /* gone already: 0 */
    mp_proxy_free(q);
    mp_proxy_free(cnt);
    mp_manager_free(c);
    mp_manager_t *c2 = NULL;
    mp_assert_int(mp_manager_connect(&c2, addr, KEY_REMOTE, strlen(KEY_REMOTE), MP_TEST_LONG),
                  -ECONNREFUSED);
    assert_null(c2);
    mp__arena_free(b);
}

typedef struct {
    mp_mserver_t *s;
    int rc;
} serve_arg_t;

static void *serve_thread(void *p)
{
    serve_arg_t *sa = p;
    sa->rc = mp_mserver_serve_forever(sa->s);
    return NULL;
}

/* A server on a fresh unix address (NULL), serving forever in a thread of
 * this process with this process's key: a client here uses its dict;
 * mp_mserver_stop from another thread ends serve_forever with 0; once the
 * server is freed the client's calls say MP_EEOF. */
typedef struct {
    mp_proxy_t *q;
    int rc;
    pid_t tid;
} blocked_arg_t;

/* blocked_get: get from an empty queue without a timeout (on its own
 * connection: a thread of its own). Nothing but the stop can end it: no
 * other client's disconnect touches a queue. */
static void *blocked_get(void *arg)
{
    blocked_arg_t *a = arg;
    __atomic_store_n(&a->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
    mp_val_t *v = NULL;
    a->rc = mp_mqueue_get(a->q, &v, MP_FOREVER);
    mp_val_free(v);
    return NULL;
}

static void remote_thread_stop(void **state)
{
    mp_manager_opts_t o;
    memset(&o, 0, sizeof o);
    mp_mserver_t *s = NULL;
    mp_assert_int(mp_mserver_new(&s, &o), 0);
    mp_val_t one = mp_val_int(1);
    mp_assert_int(mp_mserver_add(s, "d", "dict", NULL, 0), 0);
    mp_assert_int(mp_mserver_add(s, "sem", "Semaphore", &one, 1), 0);
    mp_assert_int(mp_mserver_add(s, "q", "Queue", NULL, 0), 0);
    int arc = mp_mserver_add(s, "x", "NoSuchType", NULL, 0);
    if (arc != -ENOENT && arc != -EINVAL)
        mp_test_fail("publishing an object of an unknown type gave %d%s\n", arc,
                     mp_test_codename(arc));
    const char *addr = mp_mserver_address(s);
    assert_non_null(addr);
    assert_true(strlen(addr) > 0);
    static serve_arg_t sa;
    sa.s = s;
    sa.rc = INT_MIN;
    pthread_t th;
    mp_assert_int(pthread_create(&th, NULL, serve_thread, &sa), 0);
    mp_manager_t *c = NULL;
    mp_assert_int(mp_manager_connect(&c, addr, NULL, 0, MP_TEST_LONG), 0);
    mp_proxy_t *d = NULL, *sem = NULL;
    mp_assert_int(mp_manager_get(c, "d", &d), 0);
    mp_assert_int(mp_manager_get(c, "sem", &sem), 0);
    mp_assert_str(mp_proxy_type(d), "dict");
    dict_set_int(d, "k", 3);
    dict_expect_int(d, "k", 3, "d['k'] on a served dict");
    mp_assert_int(mp_mlock_acquire(sem, 0), 0);
    expect_quick(mp_mlock_acquire(sem, 0), -ETIMEDOUT, "acquire(0) of a served semaphore at 0");
    /* A client blocked without a timeout when the server is stopped: the
     * stop wakes it (MP_EEOF) and serve_forever returns. */
    static blocked_arg_t ba;
    mp_proxy_t *q = NULL;
    mp_assert_int(mp_manager_get(c, "q", &q), 0);
    ba.q = q;
    ba.rc = INT_MIN;
    ba.tid = 0;
    pthread_t bt;
    mp_assert_int(pthread_create(&bt, NULL, blocked_get, &ba), 0);
    while (!__atomic_load_n(&ba.tid, __ATOMIC_ACQUIRE))
        sched_yield();
    mp_test_wait_asleep(ba.tid, "a client in get(MP_FOREVER)");
    mp_mserver_stop(s);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)MP_TEST_LONG;
    int jr = pthread_timedjoin_np(th, NULL, &ts);
    if (jr != 0)
        mp_test_fail("serve_forever did not return within %.0f s of mp_mserver_stop\n",
                     MP_TEST_LONG);
    mp_assert_int(sa.rc, 0);
    mp_assert_int(pthread_join(bt, NULL), 0);
    if (ba.rc != MP_EEOF)
        mp_test_fail("get(MP_FOREVER) blocked when the server stopped gave %d%s\n",
                     ba.rc, mp_test_codename(ba.rc));
    mp_mserver_free(s);
    expect_quick(mp_dict_set(d, &one, &one), MP_EEOF, "a call after the server was freed");
    mp_proxy_free(d);
    mp_proxy_free(sem);
    mp_proxy_free(q);
    mp_manager_free(c);
}

/* ---- registered types ----------------------------------------------------------------- */

/* t_counter_child: 10 x incr from a child (10: rc), then "_secret" is
 * -ENOSYS (11). */
static int t_counter_child(void *arg)
{
    targ_t *a = arg;
    for (int i = 0; i < 10; i++) {
        int64_t one = 1;
        int rc = counter_call(a->p, "incr", &one, NULL, CHILD_LONG);
        if (rc != 0) {
            a->b->rc[a->id] = rc;
            return 10;
        }
    }
    int rc = mp_proxy_call(a->p, "_secret", NULL, 0, NULL, CHILD_LONG);
    a->b->rc[a->id] = rc;
    return rc == -ENOSYS ? 0 : 11;
}

/* A registered C type (BaseManager.register): created with its arguments,
 * its public methods called here and from a child; private ("_secret") and
 * unknown methods are -ENOSYS and never run; a method's own error code and
 * the constructor's reach the caller. */
static void custom_type(void **state)
{
    board_t *b = board_new();
    mp_manager_opts_t o;
    memset(&o, 0, sizeof o);
    o.types = k_types;
    mp_manager_t *m = mgr_start(&o);
    mp_proxy_t *p = NULL;
    mp_val_t ten = mp_val_int(10);
    mp_assert_int(mp_manager_create(m, "Counter", &ten, 1, &p), 0);
    assert_non_null(p);
    mp_assert_str(mp_proxy_type(p), "Counter");
    int64_t five = 5, now = 0;
    mp_assert_int(counter_call(p, "incr", &five, &now, MP_TEST_LONG), 0);
    mp_assert_int(now, 15);
    mp_val_t *res = NULL;
    mp_assert_int(mp_proxy_call(p, "_secret", NULL, 0, &res, MP_TEST_LONG), -ENOSYS);
    assert_null(res);
    mp_assert_int(mp_proxy_call(p, "no_such_method", NULL, 0, &res, MP_TEST_LONG), -ENOSYS);
    mp_assert_int(mp_proxy_call(p, "", NULL, 0, &res, MP_TEST_LONG), -ENOSYS);
    mp_val_t s = mp_val_str("x");
    mp_assert_int(mp_proxy_call(p, "incr", &s, 1, &res, MP_TEST_LONG), -EINVAL);
    assert_null(res);

    static mp_party_t y;
    targ_t a = {.b = b, .p = p, .id = 0};
    mp_party_start(&y, 1, t_counter_child, &a, sizeof a);
    int code = mp_party_join(&y);
    if (code != 0)
        mp_test_fail("the child returned %d (10: incr gave %d (%s), 11: _secret gave it)\n",
                     code, b->rc[0], mp_strerror(b->rc[0]));
    mp_assert_int(counter_call(p, "get", NULL, &now, MP_TEST_LONG), 0);
    mp_assert_int(now, 25); /* and never 666666: _secret never ran */

    /* The constructor's refusal, and a type this manager does not know. */
    mp_proxy_t *bad = NULL;
    mp_assert_int(mp_manager_create(m, "Counter", &s, 1, &bad), -EINVAL);
    assert_null(bad);
    /* Created without arguments: from 0. */
    mp_proxy_t *p0 = NULL;
    mp_assert_int(mp_manager_create(m, "Counter", NULL, 0, &p0), 0);
    mp_assert_int(counter_call(p0, "get", NULL, &now, MP_TEST_LONG), 0);
    mp_assert_int(now, 0);
    mp_proxy_free(p0);
    mp_proxy_free(p);
    mgr_stop(m);

    /* A manager without the registration does not know the type. */
    mp_manager_t *m2 = mgr_start(NULL);
    int rc = mp_manager_create(m2, "Counter", NULL, 0, &bad);
    if (rc != -ENOENT && rc != -EINVAL)
        mp_test_fail("creating an unregistered type gave %d%s, expected -ENOENT or -EINVAL\n",
                     rc, mp_test_codename(rc));
    assert_null(bad);
    mgr_stop(m2);
    mp__arena_free(b);
}

/* ---- failure ------------------------------------------------------------------------ */

/* t_eof_client: what a client of a manager that is killed sees.
 * mode 0: a first call (qsize: its connection is open), then it reports its
 *   tid and blocks in mp_mqueue_get(MP_FOREVER) (rc, at);
 * mode 2: it reports its tid and makes its first call, a dict set (rc, at),
 *   while the server is stopped: it is in the connection's handshake when
 *   the server dies;
 * mode 1: it starts after the kill.
 * Then a dict set (rc2) and a list append (rc3). Code 0 when all three are
 * MP_EEOF, 10 otherwise, 11 the first qsize failed (rc). */
static int t_eof_client(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    int rc = MP_EEOF;
    mp_val_t k = mp_val_str("k"), one = mp_val_int(1);
    if (a->mode == 0) {
        size_t n = 0;
        rc = mp_mqueue_qsize(a->p, &n);
        if (rc != 0) {
            b->rc[a->id] = rc;
            return 11;
        }
        b->tid[a->id] = mp_test_tid();
        mp_test_word_inc(&b->ready);
        mp_val_t *v = NULL;
        rc = mp_mqueue_get(a->p, &v, MP_FOREVER);
        b->at[a->id] = mp_test_now();
        mp_val_free(v);
    } else if (a->mode == 2) {
        b->tid[a->id] = mp_test_tid();
        mp_test_word_inc(&b->ready);
        rc = mp_dict_set(a->p2, &k, &one);
        b->at[a->id] = mp_test_now();
    }
    b->rc[a->id] = rc;
    int rc2 = mp_dict_set(a->p2, &k, &one);
    b->rc2[a->id] = rc2;
    int rc3 = mp_list_append(a->p3, &one);
    b->rc3[a->id] = rc3;
    return rc == MP_EEOF && rc2 == MP_EEOF && rc3 == MP_EEOF ? 0 : 10;
}

/* The manager SIGKILLed under its clients: a child blocked in get
 * (MP_FOREVER) returns MP_EEOF promptly, and so does a child whose first
 * call is in its connection's handshake (the server was SIGSTOPped before
 * it connected, then killed); every later call, here and in a child started
 * afterwards, says MP_EEOF at once (blocking calls included); shutdown
 * still succeeds and gives the server's exit code (-SIGKILL, as a
 * process's). */
static void failure_manager_killed(void **state)
{
    board_t *b = board_new();
    mp_manager_t *m = mgr_start(NULL);
    mp_proxy_t *q = NULL, *d = NULL, *l = NULL, *lk = NULL, *e = NULL;
    mp_assert_int(mp_manager_queue(m, 0, &q), 0);
    mp_assert_int(mp_manager_dict(m, &d), 0);
    mp_assert_int(mp_manager_list(m, &l), 0);
    mp_assert_int(mp_manager_lock(m, &lk), 0);
    mp_assert_int(mp_manager_event(m, &e), 0);
    mp_assert_int(mp_mlock_acquire(lk, 0), 0);
    static mp_party_t y, y2;
    targ_t a = {.b = b, .p = q, .p2 = d, .p3 = l, .id = 0, .mode = 0};
    mp_party_start(&y, 1, t_eof_client, &a, sizeof a);
    mp_test_wait_word(&b->ready, 1, "the child at its get");
    mp_test_wait_asleep(b->tid[0], "the child in get(MP_FOREVER)");
    pid_t pid = mp_manager_pid(m);
    assert_true(pid > 0);
    /* A second child connects while the server is stopped: its first call
     * waits in the handshake. */
    mp_assert_int(kill(pid, SIGSTOP), 0);
    targ_t a3 = {.b = b, .p = q, .p2 = d, .p3 = l, .id = 2, .mode = 2};
    mp_party_start(&y2, 1, t_eof_client, &a3, sizeof a3);
    mp_test_wait_word(&b->ready, 2, "the child making its first call");
    mp_test_wait_asleep(b->tid[2], "the child in its first call (connecting)");
    double t_kill = mp_test_now();
    mp_assert_int(kill(pid, SIGKILL), 0);
    int code = mp_party_join(&y);
    int code2 = mp_party_join(&y2);
    if (code != 0)
        mp_test_fail("the blocked child returned %d: get gave %d (%s), then set %d (%s), "
                     "append %d (%s); all should be MP_EEOF\n",
                     code, b->rc[0], mp_strerror(b->rc[0]), b->rc2[0], mp_strerror(b->rc2[0]),
                     b->rc3[0], mp_strerror(b->rc3[0]));
    mp_test_check_prompt(b->at[0], t_kill, "a get(MP_FOREVER) when the manager died");

    mp_val_t k = mp_val_str("k"), one = mp_val_int(1), *v = NULL;
    size_t n = 0;
    expect_quick(mp_dict_set(d, &k, &one), MP_EEOF, "dict set on a killed manager");
    expect_quick(mp_dict_get(d, &k, &v), MP_EEOF, "dict get on a killed manager");
    expect_quick(mp_dict_set(d, &k, &one), MP_EEOF, "a second call on a killed manager");
    expect_quick(mp_list_len(l, &n), MP_EEOF, "list len on a killed manager");
    expect_quick(mp_mqueue_get(q, &v, MP_FOREVER), MP_EEOF,
                 "get(MP_FOREVER) on a killed manager");
    expect_quick(mp_mlock_release(lk), MP_EEOF, "release on a killed manager");
    expect_quick(mp_mlock_acquire(lk, MP_FOREVER), MP_EEOF,
                 "acquire(MP_FOREVER) on a killed manager");
    expect_quick(mp_mevent_wait(e, MP_FOREVER), MP_EEOF, "event wait on a killed manager");
    assert_null(v);
    mp_proxy_t *x = NULL;
    expect_quick(mp_manager_dict(m, &x), MP_EEOF, "creating an object on a killed manager");
    assert_null(x);

    /* A child that starts afterwards (a fresh connection) hears the same. */
    targ_t a2 = {.b = b, .p = q, .p2 = d, .p3 = l, .id = 1, .mode = 1};
    mp_party_start(&y, 1, t_eof_client, &a2, sizeof a2);
    code = mp_party_join(&y);
    if (code != 0)
        mp_test_fail("a child started after the kill: set gave %d (%s), append %d (%s)\n",
                     b->rc2[1], mp_strerror(b->rc2[1]), b->rc3[1], mp_strerror(b->rc3[1]));

    mp_assert_int(mp_manager_shutdown(m, MP_TEST_LONG), 0);
    code = 0;
    mp_assert_int(mp_manager_exitcode(m, &code), 0);
    mp_assert_int(code, -SIGKILL);
    /* (Checked last, so that a failure here does not hide the rest.) */
    if (code2 != 0)
        mp_test_fail("the child whose first call was connecting when the manager died "
                     "returned %d: that call gave %d (%s), then set %d (%s), append %d (%s); "
                     "all should be MP_EEOF\n",
                     code2, b->rc[2], mp_strerror(b->rc[2]), b->rc2[2],
                     mp_strerror(b->rc2[2]), b->rc3[2], mp_strerror(b->rc3[2]));
    mp_test_check_prompt(b->at[2], t_kill, "a first call connecting when the manager died");
    mp_proxy_free(q);
    mp_proxy_free(d);
    mp_proxy_free(l);
    mp_proxy_free(lk);
    mp_proxy_free(e);
    mp_manager_free(m);
    mp__arena_free(b);
}

/* t_holder acquires the lock (twice for an RLock: mode 1) (10), says so
 * (held) and blocks until killed. */
static int t_holder(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    for (int i = 0; i < (a->mode == 1 ? 2 : 1); i++) {
        int rc = mp_mlock_acquire(a->p, CHILD_LONG);
        b->rc[a->id] = rc;
        if (rc != 0)
            return 10;
    }
    mp_test_word_inc(&b->held);
    block_forever(b);
    return 0;
}

/* t_waiter reports its tid, blocks in acquire (rc, at), counts itself in
 * done, waits for go, releases (rc2). Code 10 when the release failed. */
static int t_waiter(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    b->tid[a->id] = mp_test_tid();
    mp_test_word_inc(&b->ready);
    int rc = mp_mlock_acquire(a->p, CHILD_LONG);
    b->at[a->id] = mp_test_now();
    b->rc[a->id] = rc;
    mp_test_word_inc(&b->done);
    if (mp_test_word_wait(&b->go, 1, CHILD_LONG) != 0)
        return 9;
    int rc2 = mp_mlock_release(a->p);
    b->rc2[a->id] = rc2;
    return rc2 == 0 ? 0 : 10;
}

/* A client killed holding a manager Lock: the server notices its connection
 * drop and releases it; a waiter blocked in acquire gets it with
 * -EOWNERDEAD (and holds it); with nobody waiting, the next acquire gets
 * -EOWNERDEAD; an RLock held twice by a killed child passes to the next
 * owner with -EOWNERDEAD at a count of 1. */
static void failure_lock_owner_dies(void **state)
{
    board_t *b = board_new();
    mp_manager_t *m = mgr_start(NULL);
    mp_proxy_t *l = NULL, *r = NULL;
    mp_assert_int(mp_manager_lock(m, &l), 0);
    mp_assert_int(mp_manager_rlock(m, &r), 0);

    /* A waiter is there when the holder dies. */
    static mp_party_t holder, waiter;
    targ_t ha = {.b = b, .p = l, .id = 0, .mode = 0};
    mp_party_start(&holder, 1, t_holder, &ha, sizeof ha);
    mp_test_wait_word(&b->held, 1, "the holder");
    targ_t wa = {.b = b, .p = l, .id = 1};
    mp_party_start(&waiter, 1, t_waiter, &wa, sizeof wa);
    mp_test_wait_word(&b->ready, 1, "the waiter");
    mp_test_wait_asleep(b->tid[1], "the waiter in acquire");
    mp_assert_int(mp_test_word_get(&b->done), 0);
    double t_kill = mp_test_now();
    mp_party_kill(&holder);
    mp_test_wait_word(&b->done, 1, "the waiter's acquire after the holder died");
    mp_assert_int(b->rc[1], -EOWNERDEAD);
    mp_test_check_prompt(b->at[1], t_kill, "a waiter for the lock of a killed holder");
    expect_quick(mp_mlock_acquire(l, 0), -ETIMEDOUT, "acquire(0) while the waiter holds it");
    mp_test_word_store(&b->go, 1);
    int code = mp_party_join(&waiter);
    if (code != 0)
        mp_test_fail("the waiter returned %d (10: its release gave %d (%s))\n", code,
                     b->rc2[1], mp_strerror(b->rc2[1]));
    mp_assert_int(mp_mlock_acquire(l, 0), 0);
    mp_assert_int(mp_mlock_release(l), 0);

    /* Nobody waits when the holder dies: the next acquire learns it. */
    targ_t hb = {.b = b, .p = l, .id = 2, .mode = 0};
    mp_party_start(&holder, 1, t_holder, &hb, sizeof hb);
    mp_test_wait_word(&b->held, 2, "the second holder");
    mp_party_kill(&holder);
    mp_assert_int(mp_mlock_acquire(l, MP_TEST_LONG), -EOWNERDEAD);
    mp_assert_int(mp_mlock_release(l), 0); /* it was ours */
    mp_assert_int(mp_mlock_release(l), -EPERM);

    /* An RLock held twice. */
    targ_t hr = {.b = b, .p = r, .id = 3, .mode = 1};
    mp_party_start(&holder, 1, t_holder, &hr, sizeof hr);
    mp_test_wait_word(&b->held, 3, "the rlock holder");
    if (b->rc[3] != 0)
        mp_test_fail("the rlock holder's acquire gave %d\n", b->rc[3]);
    mp_party_kill(&holder);
    mp_assert_int(mp_mlock_acquire(r, MP_TEST_LONG), -EOWNERDEAD);
    mp_assert_int(mp_mlock_release(r), 0);
    mp_assert_int(mp_mlock_release(r), -EPERM);
    mp_proxy_free(l);
    mp_proxy_free(r);
    mgr_stop(m);
    mp__arena_free(b);
}

/* lead_int decodes the msgpack integer at the start of a reply. */
static int lead_int(const unsigned char *p, size_t len, long long *out)
{
    if (len < 1)
        return -1;
    unsigned c = p[0];
    if (c <= 0x7f) {
        *out = (long long)c;
        return 0;
    }
    if (c >= 0xe0) {
        *out = (long long)(int8_t)c;
        return 0;
    }
    size_t w;
    int sgn;
    switch (c) {
    case 0xcc: w = 1; sgn = 0; break;
    case 0xcd: w = 2; sgn = 0; break;
    case 0xce: w = 4; sgn = 0; break;
    case 0xcf: w = 8; sgn = 0; break;
    case 0xd0: w = 1; sgn = 1; break;
    case 0xd1: w = 2; sgn = 1; break;
    case 0xd2: w = 4; sgn = 1; break;
    case 0xd3: w = 8; sgn = 1; break;
    default: return -1;
    }
    if (len < 1 + w)
        return -1;
    uint64_t u = 0;
    for (size_t i = 0; i < w; i++)
        u = (u << 8) | p[1 + i];
    if (sgn && w < 8 && (u >> (8 * w - 1)))
        u |= ~(uint64_t)0 << (8 * w);
    *out = (long long)u;
    return 0;
}

/* answer waits for the server's answer on a raw connection: 1 and *code (a
 * reply), 0 (the server closed the connection), or fails the case (no
 * answer in ANSWER_WAIT). */
static int answer(mp_conn_t *c, long long *code, const char *what)
{
    void *buf = NULL;
    size_t len = 0;
    int rc = mp_conn_recv_bytes(c, &buf, &len, 1u << 20, ANSWER_WAIT);
    if (rc == MP_EEOF || rc == -ECONNRESET || rc == -EPROTO)
        return 0;
    if (rc != 0)
        mp_test_fail("%s: the server neither answered nor closed the connection within "
                     "%.0f s (%d%s)\n",
                     what, ANSWER_WAIT, rc, mp_test_codename(rc));
    long long v = 0;
    int ok = lead_int(buf, len, &v);
    free(buf);
    if (ok != 0)
        mp_test_fail("%s: the reply does not start with an integer code\n", what);
    *code = v;
    return 1;
}

/* raw_connect opens an authenticated raw connection to the manager. */
static mp_conn_t *raw_connect(mp_manager_t *m)
{
    unsigned char key[MP_AUTHKEY_MAX];
    int klen = mp_process_authkey(mp_current_process(), key, sizeof key);
    assert_true(klen > 0);
    mp_client_opts_t co = {.authkey = key, .authkey_len = (size_t)klen};
    mp_conn_t *c = NULL;
    mp_assert_int(mp_client(&c, mp_manager_address(m), &co, MP_TEST_LONG), 0);
    return c;
}

/* raw_request sends req and expects a reply with code want (want 1: any
 * negative code). */
static void raw_request(mp_conn_t *c, const mp_val_t *req, long long want, const char *what)
{
    mp_assert_int(mp_conn_send(c, req), 0);
    long long code = 0;
    if (!answer(c, &code, what))
        mp_test_fail("%s: the server closed the connection instead of answering\n", what);
    if (want == 1 ? code >= 0 : code != want)
        mp_test_fail("%s: the reply's code is %lld%s, expected %s\n", what, code,
                     mp_test_codename(code), want == 1 ? "a negative code" : "0");
}

/* still_serving: the manager answers its proper client. */
static void still_serving(mp_proxy_t *d, int64_t i, const char *after)
{
    char what[128];
    snprintf(what, sizeof what, "the dict after %s", after);
    dict_set_int(d, "alive", i);
    dict_expect_int(d, "alive", i, what);
}

/* fake_t is a manager that stops reading: it answers a client's requests
 * (refusing the channel, naming object 1 a Queue for "get") until it has
 * answered "get", then reads nothing more until told to hang up. */
typedef struct {
    mp_listener_t *l;
    uint32_t answered, hang_up;
    int rc;
} fake_t;

/* fake_reply sends Python-side framing of code followed by result. */
static int fake_reply(mp_conn_t *c, int64_t code, const mp_val_t *result)
{
    mp_val_t cv = mp_val_int(code);
    void *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    int rc = mp_val_pack(&cv, &a, &na);
    if (rc == 0)
        rc = mp_val_pack(result, &b, &nb);
    char *m = rc == 0 ? malloc(na + nb) : NULL;
    if (rc == 0 && !m)
        rc = -ENOMEM;
    if (rc == 0) {
        memcpy(m, a, na);
        memcpy(m + na, b, nb);
        rc = mp_conn_send_bytes(c, m, na + nb);
    }
    free(a);
    free(b);
    free(m);
    return rc;
}

static void *fake_server(void *arg)
{
    fake_t *f = arg;
    mp_conn_t *c[4] = {NULL};
    int n = 0, rc = 0;
    /* The connect's own check, then the calls' connection: each opens a
     * connection; the one that asks is served. */
    while (rc == 0 && !f->answered && n < 4) {
        rc = mp_listener_accept(f->l, &c[n], MP_TEST_LONG);
        if (rc < 0)
            break;
        mp_conn_t *k = c[n++];
        for (;;) {
            mp_val_t *req = NULL;
            if (mp_conn_recv(k, &req, 1 << 20, MP_TEST_LONG) < 0)
                break; /* the connect's check hangs up */
            const char *method = req->type == MP_VAL_ARRAY && req->v.a.n >= 2 &&
                                 req->v.a.items[1].type == MP_VAL_STR
                                     ? req->v.a.items[1].v.s.ptr : "";
            int get = !strncmp(method, "get", 3);
            mp_val_t items[2] = {mp_val_int(1), mp_val_str("Queue")};
            mp_val_t idt = mp_val_array(items, 2), nil = mp_val_nil();
            rc = get ? fake_reply(k, 0, &idt) : fake_reply(k, -EXDEV, &nil);
            mp_val_free(req);
            if (rc < 0 || get)
                break;
        }
        if (rc == 0 && n >= 2)
            mp_test_word_store(&f->answered, 1);
    }
    f->rc = rc;
    if (rc == 0)
        rc = mp_test_word_wait(&f->hang_up, 1, MP_TEST_LONG);
    for (int i = 0; i < n; i++)
        mp_conn_free(c[i]);
    return NULL;
}

/* A manager that stops reading while a call sends it a message larger than
 * the socket holds: the call returns -ETIMEDOUT at its deadline (its
 * timeout plus the reply grace of 10 s), not never; later calls open a new
 * connection. (One start method: no child is involved.) */
static void failure_server_stops_reading(void **state)
{
    if (mp_test_method() != MP_START_FORK)
        mp_test_skip("no child: the fork run covers it");
    static fake_t f;
    memset(&f, 0, sizeof f);
    /* The process's key, which a manager client uses when given none. */
    static unsigned char key[MP_AUTHKEY_MAX];
    int klen = mp_process_authkey(mp_current_process(), key, sizeof key);
    assert_true(klen > 0);
    mp_listener_opts_t lo = {.authkey = key, .authkey_len = (size_t)klen};
    mp_assert_int(mp_listener_new(&f.l, NULL, &lo), 0);
    pthread_t th;
    mp_assert_int(pthread_create(&th, NULL, fake_server, &f), 0);
    mp_manager_t *m = NULL;
    mp_proxy_t *q = NULL;
    mp_assert_int(mp_manager_connect(&m, mp_listener_address(f.l), NULL, 0, MP_TEST_LONG), 0);
    mp_assert_int(mp_manager_get(m, "q", &q), 0);
    mp_assert_int(mp_test_word_wait(&f.answered, 1, MP_TEST_LONG), 0);
    mp_assert_str(mp_proxy_type(q), "Queue");

    size_t big = (size_t)8 << 20;
    char *buf = calloc(1, big);
    assert_non_null(buf);
    mp_val_t v = mp_val_bytes(buf, big);
    double t0 = mp_test_now();
    int rc = mp_mqueue_put(q, &v, 0);
    double el = mp_test_now() - t0;
    free(buf);
    mp_test_word_store(&f.hang_up, 1);
    pthread_join(th, NULL);
    if (rc != -ETIMEDOUT)
        mp_test_fail("put of 8 MiB to a manager that stopped reading gave %d%s, "
                     "not -ETIMEDOUT, after %.1f s\n", rc, mp_test_codename(rc), el);
    if (el < 9.5 || el > 10 + MP_TEST_LONG)
        mp_test_fail("put(timeout 0) to a manager that stopped reading returned after "
                     "%.1f s, not at its deadline (10 s)\n", el);
    mp_assert_int(f.rc, 0);
    mp_proxy_free(q);
    mp_manager_free(m);
    mp_listener_free(f.l);
}

/* Clients that send garbage: well-formed requests of the wrong shape get a
 * negative code and the connection goes on; frames that do not decode,
 * nest too deep, or declare huge lengths get a negative code or a closed
 * connection, never a hang; a client that skips the handshake is refused.
 * Meanwhile and afterwards the manager serves its other client, and it
 * exits 0 at shutdown (it did not crash). */
static void failure_garbage_clients(void **state)
{
    mp_manager_t *m = mgr_start(NULL);
    mp_proxy_t *d = NULL;
    mp_assert_int(mp_manager_dict(m, &d), 0);
    still_serving(d, 0, "start");
    mp_conn_t *c = raw_connect(m);

    /* A proper request first: the wire format is as the header says. */
    mp_val_t ping_items[4] = {mp_val_int(0), mp_val_str("ping"), mp_val_nil(),
                              mp_val_array(NULL, 0)};
    mp_val_t ping = mp_val_array(ping_items, 4);
    raw_request(c, &ping, 0, "ping");

    /* Well-formed msgpack, wrong shapes. */
    mp_val_t i5 = mp_val_int(5);
    raw_request(c, &i5, 1, "a request that is an integer");
    mp_val_t one_item = mp_val_array(ping_items, 1);
    raw_request(c, &one_item, 1, "a request of one item");
    mp_val_t bad_id[4] = {mp_val_str("x"), mp_val_str("ping"), mp_val_nil(),
                          mp_val_array(NULL, 0)};
    mp_val_t r1 = mp_val_array(bad_id, 4);
    raw_request(c, &r1, 1, "a request whose id is a string");
    mp_val_t bad_method[4] = {mp_val_int(0), mp_val_int(7), mp_val_nil(), mp_val_array(NULL, 0)};
    mp_val_t r2 = mp_val_array(bad_method, 4);
    raw_request(c, &r2, 1, "a request whose method is an integer");
    mp_val_t bad_args[4] = {mp_val_int(0), mp_val_str("ping"), mp_val_nil(),
                            mp_val_str("not an array")};
    mp_val_t r3 = mp_val_array(bad_args, 4);
    raw_request(c, &r3, 1, "a request whose args are a string");
    mp_val_t bad_to[4] = {mp_val_int(0), mp_val_str("ping"), mp_val_str("soon"),
                          mp_val_array(NULL, 0)};
    mp_val_t r4 = mp_val_array(bad_to, 4);
    raw_request(c, &r4, 1, "a request whose timeout is a string");
    mp_val_t kone = mp_val_int(1);
    mp_val_t unknown_id[4] = {mp_val_int(987654321), mp_val_str("len"), mp_val_nil(),
                              mp_val_array(&kone, 1)};
    mp_val_t r5 = mp_val_array(unknown_id, 4);
    raw_request(c, &r5, 1, "a request to an unknown object id");
    mp_val_t unknown_m[4] = {mp_val_int(0), mp_val_str("no_such_method"), mp_val_nil(),
                             mp_val_array(NULL, 0)};
    mp_val_t r6 = mp_val_array(unknown_m, 4);
    raw_request(c, &r6, -ENOSYS, "an unknown manager method");
    mp_val_t cargs[2] = {mp_val_str("NoSuchType"), mp_val_array(NULL, 0)};
    mp_val_t create_bad[4] = {mp_val_int(0), mp_val_str("create"), mp_val_nil(),
                              mp_val_array(cargs, 2)};
    mp_val_t r7 = mp_val_array(create_bad, 4);
    raw_request(c, &r7, 1, "create of an unknown type");
    mp_val_t create_noargs[4] = {mp_val_int(0), mp_val_str("create"), mp_val_nil(),
                                 mp_val_array(NULL, 0)};
    mp_val_t r8 = mp_val_array(create_noargs, 4);
    raw_request(c, &r8, 1, "create without arguments");
    /* The connection goes on after all of them. */
    raw_request(c, &ping, 0, "ping after requests of wrong shapes");
    still_serving(d, 1, "requests of wrong shapes");

    /* Frames that do not decode. */
    static const unsigned char junk[][8] = {
        {0xc1, 0xc1, 0xc1},             /* never used */
        {0x94, 0x00},                   /* an array cut short */
        {0xd4, 0x01, 0x00},             /* an ext (not carried) */
        {0x00, 0x00},                   /* trailing bytes */
    };
    static const size_t junk_len[] = {3, 2, 3, 2};
    for (size_t i = 0; i < sizeof junk_len / sizeof junk_len[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "undecodable frame #%zu", i);
        mp_assert_int(mp_conn_send_bytes(c, junk[i], junk_len[i]), 0);
        long long code = 0;
        if (answer(c, &code, what)) {
            if (code >= 0)
                mp_test_fail("%s: answered with code %lld\n", what, code);
        } else {
            mp_conn_free(c);
            c = raw_connect(m);
        }
        still_serving(d, 10 + (int64_t)i, what);
    }
    mp_assert_int(mp_conn_send_bytes(c, NULL, 0), 0);
    {
        long long code = 0;
        if (answer(c, &code, "an empty frame")) {
            if (code >= 0)
                mp_test_fail("an empty frame: answered with code %lld\n", code);
        } else {
            mp_conn_free(c);
            c = raw_connect(m);
        }
    }
    still_serving(d, 20, "an empty frame");

    /* Nesting deeper than the decoder takes. */
    unsigned char deep[2001];
    memset(deep, 0x91, 2000);
    deep[2000] = 0xc0;
    mp_assert_int(mp_conn_send_bytes(c, deep, sizeof deep), 0);
    {
        long long code = 0;
        if (answer(c, &code, "a frame nested 2000 deep")) {
            if (code >= 0)
                mp_test_fail("a frame nested 2000 deep: answered with code %lld\n", code);
        } else {
            mp_conn_free(c);
            c = raw_connect(m);
        }
    }
    still_serving(d, 21, "deep nesting");

    /* Huge declared lengths (2 GiB - 1, and 2^62 through the escape): the
     * server does not wait for them; it refuses or hangs up. The
     * connection stays open here while the other client is served. */
    static const unsigned char huge1[] = {0x7f, 0xff, 0xff, 0xff, 'a', 'b', 'c', 'd'};
    static const unsigned char huge2[] = {0xff, 0xff, 0xff, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0,
                                          'a',  'b'};
    const unsigned char *huge[2] = {huge1, huge2};
    size_t huge_len[2] = {sizeof huge1, sizeof huge2};
    for (int i = 0; i < 2; i++) {
        int fd = mp_conn_fileno(c);
        assert_true(fd >= 0);
        mp_assert_int(write(fd, huge[i], huge_len[i]), (long long)huge_len[i]);
        still_serving(d, 30 + i, "a huge declared length");
        long long code = 0;
        const char *what = i ? "a frame declaring 2^62 bytes" : "a frame declaring 2 GiB";
        if (answer(c, &code, what) && code >= 0)
            mp_test_fail("%s: answered with code %lld\n", what, code);
        /* The stream is out of step now: start afresh. */
        mp_conn_free(c);
        c = raw_connect(m);
    }
    raw_request(c, &ping, 0, "ping on a new connection after the garbage");
    mp_conn_free(c);

    /* A client that skips the handshake and sends junk, one that hangs up
     * at once, one that is silent while the other client is served. */
    mp_conn_t *u = NULL;
    mp_assert_int(mp_client(&u, mp_manager_address(m), NULL, MP_TEST_LONG), 0);
    mp_assert_int(mp_conn_send_bytes(u, "junk junk", 9), 0);
    still_serving(d, 40, "a client without the handshake");
    mp_conn_free(u);
    mp_assert_int(mp_client(&u, mp_manager_address(m), NULL, MP_TEST_LONG), 0);
    mp_conn_free(u);
    mp_assert_int(mp_client(&u, mp_manager_address(m), NULL, MP_TEST_LONG), 0);
    still_serving(d, 41, "a client that hung up, with a silent one connected");
    mp_conn_free(u);
    /* A wrong key from a raw client. */
    mp_client_opts_t wk = {.authkey = KEY_WRONG, .authkey_len = strlen(KEY_WRONG)};
    mp_assert_int(mp_client(&u, mp_manager_address(m), &wk, MP_TEST_LONG), MP_EAUTH);
    still_serving(d, 42, "a client with a wrong key");

    mp_proxy_free(d);
    mgr_stop(m);
}

/* t_big_set: a 10000-byte dict set from a child (rc), then a small one
 * (rc2). Code 0 when they gave -EMSGSIZE and 0, else 10. */
static int t_big_set(void *arg)
{
    targ_t *a = arg;
    static unsigned char big[10000];
    mp_test_pat_fill(big, sizeof big, 78);
    mp_val_t k = mp_val_str("child-big"), bv = mp_val_bytes(big, sizeof big);
    int rc = mp_dict_set(a->p, &k, &bv);
    a->b->rc[a->id] = rc;
    mp_val_t ks = mp_val_str("child-small"), one = mp_val_int(1);
    int rc2 = mp_dict_set(a->p, &ks, &one);
    a->b->rc2[a->id] = rc2;
    return rc == -EMSGSIZE && rc2 == 0 ? 0 : 10;
}

/* max_message: a request over the limit is -EMSGSIZE to its caller (here
 * and in a child), a reply over it too; the proxy and the manager go on
 * serving. */
static void failure_oversized(void **state)
{
    mp_manager_opts_t o;
    memset(&o, 0, sizeof o);
    o.max_message = 4096;
    mp_manager_t *m = mgr_start(&o);
    mp_proxy_t *d = NULL;
    mp_assert_int(mp_manager_dict(m, &d), 0);
    static unsigned char big[10000];
    mp_test_pat_fill(big, sizeof big, 77);
    mp_val_t k = mp_val_str("big"), bv = mp_val_bytes(big, sizeof big);
    expect_quick(mp_dict_set(d, &k, &bv), -EMSGSIZE, "a 10000-byte request, limit 4096");
    mp_assert_int(mp_dict_contains(d, &k), 0);
    still_serving(d, 1, "an oversized request");

    /* Two values that fit, whose items together do not. */
    mp_val_t ka = mp_val_str("a"), kb = mp_val_str("b");
    mp_val_t va = mp_val_bytes(big, 3000), vb = mp_val_bytes(big + 3000, 3000);
    mp_assert_int(mp_dict_set(d, &ka, &va), 0);
    mp_assert_int(mp_dict_set(d, &kb, &vb), 0);
    mp_val_t *items = NULL;
    expect_quick(mp_dict_items(d, &items), -EMSGSIZE, "items of 6000 bytes, limit 4096");
    assert_null(items);
    size_t n = 0;
    mp_assert_int(mp_dict_len(d, &n), 0);
    mp_assert_int(n, 3);
    dict_expect(d, &ka, &va, "d['a'] after the oversized reply");
    board_t *b = board_new();
    static mp_party_t y;
    targ_t a = {.b = b, .p = d, .id = 0};
    mp_party_start(&y, 1, t_big_set, &a, sizeof a);
    int code = mp_party_join(&y);
    if (code != 0)
        mp_test_fail("the child's 10000-byte set gave %d%s (expected -EMSGSIZE), its small "
                     "set %d%s\n", b->rc[0], mp_test_codename(b->rc[0]), b->rc2[0],
                     mp_test_codename(b->rc2[0]));
    dict_expect_int(d, "child-small", 1, "the child's small set");
    mp__arena_free(b);
    mp_proxy_free(d);
    mgr_stop(m);
}

/* ---- bad input ---------------------------------------------------------------------- */

/* check_int records a mismatch (printed with its line) and goes on, so
 * that bad_input reports every wrong answer at once; the case fails at its
 * end if there was any. */
static int g_mismatches;
#define check_int(a, b)                                                            \
    do {                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                        \
        if (a_ != b_) {                                                            \
            print_error("line %d: %s is %lld%s, expected %s = %lld%s\n", __LINE__, \
                        #a, a_, mp_test_codename(a_), #b, b_, mp_test_codename(b_)); \
            g_mismatches++;                                                        \
        }                                                                          \
    } while (0)

/* Unknown type names, wrong creation arguments, calls of another type's
 * methods, NULL pointers and invalid values: clear codes, and the manager
 * goes on serving. */
static void bad_input(void **state)
{
    mp_manager_t *m = mgr_start(NULL);
    mp_proxy_t *d = NULL, *l = NULL, *lk = NULL, *q = NULL, *e = NULL, *p = NULL;
    mp_assert_int(mp_manager_dict(m, &d), 0);
    mp_assert_int(mp_manager_list(m, &l), 0);
    mp_assert_int(mp_manager_lock(m, &lk), 0);
    mp_assert_int(mp_manager_queue(m, 0, &q), 0);
    mp_assert_int(mp_manager_event(m, &e), 0);

    /* Unknown types. */
    int rc = mp_manager_create(m, "NoSuchType", NULL, 0, &p);
    if (rc != -ENOENT && rc != -EINVAL) {
        print_error("creating \"NoSuchType\" gave %d%s, expected -ENOENT or -EINVAL\n", rc,
                    mp_test_codename(rc));
        g_mismatches++;
    }
    assert_null(p);
    rc = mp_manager_create(m, "", NULL, 0, &p);
    if (rc != -ENOENT && rc != -EINVAL) {
        print_error("creating \"\" gave %d%s\n", rc, mp_test_codename(rc));
        g_mismatches++;
    }
    check_int(mp_manager_get(m, "nothing published", &p), -ENOENT);
    assert_null(p);

    /* Wrong creation arguments. */
    mp_val_t s = mp_val_str("x"), neg = mp_val_int(-1), zero = mp_val_int(0);
    check_int(mp_manager_create(m, "Semaphore", &s, 1, &p), -EINVAL);
    check_int(mp_manager_create(m, "Semaphore", &neg, 1, &p), -EINVAL);
    check_int(mp_manager_semaphore(m, -1, &p), -EINVAL);
    check_int(mp_manager_create(m, "BoundedSemaphore", &s, 1, &p), -EINVAL);
    check_int(mp_manager_create(m, "Barrier", &s, 1, &p), -EINVAL);
    check_int(mp_manager_barrier(m, 0, &p), -EINVAL);
    check_int(mp_manager_create(m, "Queue", &s, 1, &p), -EINVAL);
    check_int(mp_manager_create(m, "Condition", &s, 1, &p), -EINVAL);
    check_int(mp_manager_create(m, "Value", &s, 1, &p), -EINVAL);
    check_int(mp_manager_create(m, "Array", &zero, 1, &p), -EINVAL);
    assert_null(p);

    /* Another type's methods. */
    mp_val_t one = mp_val_int(1), *v = NULL;
    size_t n = 0;
    check_int(mp_list_append(d, &one), -ENOSYS);
    check_int(mp_mlock_acquire(d, 0), -ENOSYS);
    check_int(mp_mqueue_put(d, &one, 0), -ENOSYS);
    check_int(mp_dict_keys(lk, &v), -ENOSYS);
    check_int(mp_mevent_set(q), -ENOSYS);
    check_int(mp_mqueue_get(e, &v, 0), -ENOSYS);
    check_int(mp_mbarrier_abort(l), -ENOSYS);
    check_int(mp_mvalue_get(lk, &v), -ENOSYS);
    check_int(mp_proxy_call(d, "no_such_method", NULL, 0, &v, MP_TEST_LONG), -ENOSYS);
    check_int(mp_proxy_call(d, "_private", NULL, 0, &v, MP_TEST_LONG), -ENOSYS);
    assert_null(v);
    /* Wrong argument types and counts. */
    check_int(mp_list_extend(l, &one), -EINVAL);
    check_int(mp_mqueue_get(q, &v, NAN), -EINVAL);
    check_int(mp_mlock_acquire(lk, NAN), -EINVAL);

    /* NULL pointers and invalid values. */
    mp_manager_opts_t o;
    memset(&o, 0, sizeof o);
    check_int(mp_manager_start(NULL, &o), -EINVAL);
    check_int(mp_manager_create(NULL, "dict", NULL, 0, &p), -EINVAL);
    check_int(mp_manager_create(m, NULL, NULL, 0, &p), -EINVAL);
    check_int(mp_manager_create(m, "dict", NULL, 0, NULL), -EINVAL);
    check_int(mp_manager_create(m, "Semaphore", NULL, 1, &p), -EINVAL);
    check_int(mp_manager_dict(m, NULL), -EINVAL);
    check_int(mp_manager_dict(NULL, &p), -EINVAL);
    check_int(mp_manager_get(m, NULL, &p), -EINVAL);
    check_int(mp_manager_get(m, "x", NULL), -EINVAL);
    check_int(mp_manager_connect(NULL, "127.0.0.1:1", NULL, 0, 1), -EINVAL);
    mp_manager_t *mc = NULL;
    check_int(mp_manager_connect(&mc, NULL, NULL, 0, 1), -EINVAL);
    check_int(mp_manager_shutdown(NULL, 1), -EINVAL);
    int code = 0;
    check_int(mp_manager_exitcode(NULL, &code), -EINVAL);
    check_int(mp_manager_exitcode(m, NULL), -EINVAL);
    assert_null(mp_manager_address(NULL));
    check_int(mp_manager_pid(NULL), 0);
    check_int(mp_mserver_new(NULL, &o), -EINVAL);
    check_int(mp_mserver_add(NULL, "x", "dict", NULL, 0), -EINVAL);
    check_int(mp_dict_set(NULL, &one, &one), -EINVAL);
    check_int(mp_dict_set(d, NULL, &one), -EINVAL);
    check_int(mp_dict_set(d, &one, NULL), -EINVAL);
    check_int(mp_dict_get(d, &one, NULL), -EINVAL);
    check_int(mp_dict_len(d, NULL), -EINVAL);
    check_int(mp_list_get(l, 0, NULL), -EINVAL);
    check_int(mp_list_append(l, NULL), -EINVAL);
    check_int(mp_mqueue_put(q, NULL, 0), -EINVAL);
    check_int(mp_mlock_acquire(NULL, 0), -EINVAL);
    check_int(mp_proxy_call(d, NULL, NULL, 0, &v, 1), -EINVAL);
    check_int(mp_proxy_call(NULL, "len", NULL, 0, &v, 1), -EINVAL);
    check_int(mp_proxy_call(d, "len", NULL, 2, &v, 1), -EINVAL);
    check_int(mp_proxy_value(NULL, &v), -EINVAL);
    check_int(mp_proxy_value(d, NULL), -EINVAL);
    check_int(mp_proxy_from_value(NULL, &p), -EINVAL);
    assert_null(mp_proxy_type(NULL));
    mp_val_t badv;
    memset(&badv, 0, sizeof badv);
    badv.type = (mp_val_type_t)99;
    check_int(mp_dict_set(d, &one, &badv), -EINVAL);
    mp_val_t nullstr = mp_val_strn(NULL, 5);
    check_int(mp_list_append(l, &nullstr), -EINVAL);
    assert_null(p);
    assert_null(v);
    mp_manager_free(NULL);
    mp_proxy_free(NULL);
    mp_mserver_free(NULL);
    (void)n;

    /* Still serving. */
    still_serving(d, 1, "the bad input");
    mp_proxy_free(d);
    mp_proxy_free(l);
    mp_proxy_free(lk);
    mp_proxy_free(q);
    mp_proxy_free(e);
    mgr_stop(m);
    if (g_mismatches)
        mp_test_fail("%d answers to bad input were not the expected codes (above)\n",
                     g_mismatches);
}

/* ---- threads ----------------------------------------------------------------------- */

/* t_thread_get: in a thread of the test: reports its tid and blocks in get
 * on the proxy the main thread uses too (rc, idx: the value). */
static int t_thread_get(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    b->tid[a->id] = mp_test_tid();
    mp_test_word_inc(&b->ready);
    mp_val_t *v = NULL;
    int rc = mp_mqueue_get(a->p, &v, CHILD_LONG);
    b->at[a->id] = mp_test_now();
    b->rc[a->id] = rc;
    b->idx[a->id] = (rc == 0 && v && v->type == MP_VAL_INT) ? v->v.i : -1;
    mp_val_free(v);
    return 0;
}

/* t_thread_lock: acquire(0) of the lock the main thread holds (rc). */
static int t_thread_lock(void *arg)
{
    targ_t *a = arg;
    a->b->rc[a->id] = mp_mlock_acquire(a->p, 0);
    return 0;
}

/* Each thread has its own connection: a thread blocked in get on a proxy
 * does not stop the main thread's put on the same proxy (which wakes it);
 * a Lock held by the main thread is not held by another thread. */
static void threads_own_connections(void **state)
{
    board_t *b = board_new();
    mp_manager_t *m = mgr_start(NULL);
    mp_proxy_t *q = NULL, *l = NULL;
    mp_assert_int(mp_manager_queue(m, 0, &q), 0);
    mp_assert_int(mp_manager_lock(m, &l), 0);
    static mp_party_t y;
    targ_t a = {.b = b, .p = q, .id = 0};
    mp_party_start(&y, 0, t_thread_get, &a, sizeof a);
    mp_test_wait_word(&b->ready, 1, "the thread at get");
    mp_test_wait_asleep(b->tid[0], "the thread in get");
    double t_put = mp_test_now();
    mp_val_t five = mp_val_int(5);
    mp_assert_int(mp_mqueue_put(q, &five, 0), 0);
    mp_party_join(&y);
    mp_assert_int(b->rc[0], 0);
    mp_assert_int(b->idx[0], 5);
    mp_test_check_prompt(b->at[0], t_put, "the thread's get");

    mp_assert_int(mp_mlock_acquire(l, 0), 0);
    targ_t la = {.b = b, .p = l, .id = 1};
    mp_party_start(&y, 0, t_thread_lock, &la, sizeof la);
    mp_party_join(&y);
    mp_assert_int(b->rc[1], -ETIMEDOUT);
    mp_assert_int(mp_mlock_release(l), 0);
    mp_proxy_free(q);
    mp_proxy_free(l);
    mgr_stop(m);
    mp__arena_free(b);
}

int main(int argc, char **argv)
{
    static const mp_test_case_t cases[] = {
        MP_TEST(lifecycle_start_shutdown),
        MP_TEST(lifecycle_free_running),
        MP_TEST(lifecycle_initializer),
        MP_TEST(lifecycle_tcp_address),
        MP_TEST(lifecycle_owner_exits_or_dies),
        MP_TEST_T(countdown_lock_100, 120),
        MP_TEST_T(countdown_incr_100, 120),
        MP_TEST(child_dict),
        MP_TEST(child_list),
        MP_TEST(child_namespace),
        MP_TEST(child_queue),
        MP_TEST(child_joinable_queue),
        MP_TEST(child_lock),
        MP_TEST(child_rlock),
        MP_TEST(child_semaphore),
        MP_TEST(child_bounded_semaphore),
        MP_TEST(child_condition),
        MP_TEST(child_event),
        MP_TEST(child_barrier),
        MP_TEST(child_value),
        MP_TEST(child_array),
        MP_TEST(dict_ops),
        MP_TEST(list_ops),
        MP_TEST(nested_proxy),
        MP_TEST(proxy_free_deletes_object),
        MP_TEST(remote_tcp),
        MP_TEST(remote_thread_stop),
        MP_TEST(custom_type),
        MP_TEST(failure_manager_killed),
        MP_TEST(failure_lock_owner_dies),
        MP_TEST_T(failure_garbage_clients, 120),
        MP_TEST_T(failure_server_stops_reading, 120),
        MP_TEST(failure_oversized),
        MP_TEST(bad_input),
        MP_TEST(threads_own_connections),
    };
    static const mp_test_helper_t helpers[] = {
        {"manager-client", helper_manager_client},
    };
    static const mp_test_config_t cfg = {
        .per_method = 1,
        .warmup = warm_manager,
        .helpers = helpers,
        .nhelpers = sizeof helpers / sizeof helpers[0],
    };
    return mp_test_main(argc, argv, cases, sizeof cases / sizeof cases[0], &cfg);
}

/* test_pool.c: Pool and ThreadPool (Python's multiprocessing.Pool and
 * multiprocessing.pool.ThreadPool): apply, apply_async and AsyncResult,
 * map, map_async, imap, imap_unordered, close/join/terminate, initializer and
 * maxtasksperchild, and workers that die mid-task; run once per start method
 * (argv[1]), so process workers are started by fork, spawn and forkserver.
 *
 * Tasks and map functions are ordinary functions of this program (a spawn or
 * forkserver worker finds them again in the re-executed binary). What they
 * share with the test lives in the shared arena: the board (board_t, from
 * mp__arena_alloc) and the pointers to it carried in task arguments and map
 * items, so the same pointers work in thread workers and in worker processes
 * under every start method. A task never calls cmocka: it reports through its
 * return code, its result bytes and the board.
 *
 * Tasks meet the test through futex words of the board (mp_test_word_*):
 * a "gated" task counts itself in `started` and then waits until the test
 * opens `gate`, so the test knows that every worker is busy and that the
 * tasks behind are still queued, without sleeping. The only timeouts are
 * generous bounds (MP_TEST_LONG), or the behaviour under test (get, next and
 * join with a timeout), measured with margins (tight below, generous above).
 *
 * Callbacks (callback, error_callback, progress) run in this process; they
 * count themselves in futex words of the test's own memory, which the test
 * waits on, and record the first thing they found wrong.
 *
 * Where the header leaves a point open, the test takes Python's reading and
 * says so at the case (callbacks have all run once join returned; the
 * initializer runs when a worker starts; terminate of a ThreadPool may wait
 * for the tasks its threads hold, and those may end either way).
 * mp-test: per-start-method
 * mp-test: timeout=600 */
#include "mp_test.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "arena.h"

#define NW 2 /* workers of every pool (the machines have 2 cores) */

/* A generous bound for a task's own waits (tasks cannot fail a case: they
 * give up and report). */
#define CHILD_LONG (60.0 * mp_test_scale())

/* ---- the board ------------------------------------------------------------ */

typedef struct {
    uint32_t gate;     /* gated tasks and items wait until it is 1 */
    uint32_t started;  /* gated tasks and items that began waiting */
    uint32_t ran;      /* tasks and items that began (all workers) */
    uint32_t done;     /* map items that finished (all workers) */
    uint32_t inits;    /* initializer runs (all workers) */
    int32_t died_pid;  /* the worker a dying task or item ran in */
} board_t;

static board_t *board_new(void)
{
    board_t *b = mp__arena_alloc(sizeof *b);
    assert_non_null(b);
    return b;
}

/* ---- what runs in the workers ---------------------------------------------- */

/* What a task or an item does. */
enum {
    A_NONE = 0, /* write the result, return the code */
    A_PID,      /* write a pidrep_t (who ran it), return the code */
    A_KILL,     /* SIGKILL its own worker */
    A_SEGV,     /* die of SIGSEGV */
    A_EXIT,     /* _exit(3) */
    A_OUTBAD,   /* mp_out_write(out, NULL, 3) must give -EINVAL */
};

/* Codes a task gives when something inside it went wrong (never expected). */
enum {
    E_ARGLEN = 900,  /* the argument is shorter than a targ_t */
    E_ARGPAT = 901,  /* the argument's payload is not what was passed */
    E_GATE = 902,    /* the gate never opened */
    E_OUTBAD = 903,  /* mp_out_write accepted NULL */
    E_WRITE = 904,   /* mp_out_write failed */
    E_NOMEM = 905,   /* no memory for the result */
    E_NOTZERO = 906, /* a map item's result slot was not zeroed */
};

/* A task's argument: a targ_t, then optionally a payload of
 * pat(key ^ PAYKEY) that the task checks (the argument is copied). */
typedef struct {
    board_t *b;
    int32_t act;     /* A_* */
    int32_t code;    /* what the task returns */
    int32_t gated;   /* 1: count in started, wait for the gate first */
    int32_t pad;
    uint64_t key;    /* the result is out_len bytes of pat(key + 1) */
    uint64_t out_len;
} targ_t;

#define PAYKEY 0xa5a5u

/* What an A_PID task writes. */
typedef struct {
    int32_t pid, tid;   /* the worker process and thread that ran it */
    int32_t init_val;   /* what the initializer left in this worker */
    int32_t init_calls; /* how many times it ran in this worker */
} pidrep_t;

/* Set by the initializer in the worker that runs it (thread-local: the same
 * initializer serves the thread workers of a ThreadPool). */
static _Thread_local int32_t g_init_val;
static _Thread_local int32_t g_init_calls;

typedef struct {
    board_t *b;
    int32_t v;
    int32_t pad;
} iarg_t;

/* i_init is the pools' initializer: it records its argument's value in the
 * worker (-1 for an argument of the wrong length) and counts itself. */
static void i_init(const void *arg, size_t len)
{
    iarg_t a;
    g_init_calls++;
    if (len != sizeof a || !arg) {
        g_init_val = -1;
        return;
    }
    memcpy(&a, arg, sizeof a);
    g_init_val = a.v;
    mp_test_word_inc(&a.b->inits);
}

/* die_now ends the worker it runs in the way act says, after recording its
 * pid (no core file: this is a planned crash). */
static void die_now(board_t *b, int act)
{
    if (b)
        __atomic_store_n(&b->died_pid, (int32_t)getpid(), __ATOMIC_SEQ_CST);
    struct rlimit rl = {0, 0};
    setrlimit(RLIMIT_CORE, &rl);
    if (act == A_KILL)
        raise(SIGKILL);
    if (act == A_SEGV) {
        /* The default action, not cmocka's or a sanitizer's handler: the
         * worker dies of the signal as a crashing program does. */
        signal(SIGSEGV, SIG_DFL);
        raise(SIGSEGV);
    }
    _exit(3);
}

static int wait_gate(board_t *b)
{
    mp_test_word_inc(&b->started);
    return mp_test_word_wait(&b->gate, 1, CHILD_LONG) == 0 ? 0 : E_GATE;
}

/* write_pat writes len bytes of pat(key) in several appends (1 byte, then
 * up to 1000, then pieces of 64 KiB). Returns 0 or an E_ code. */
static int write_pat(mp_out_t *out, size_t len, uint64_t key)
{
    if (len == 0)
        return 0;
    unsigned char *buf = malloc(len);
    if (!buf)
        return E_NOMEM;
    mp_test_pat_fill(buf, len, key);
    size_t off = 0, piece = 1;
    while (off < len) {
        size_t k = len - off < piece ? len - off : piece;
        if (mp_out_write(out, buf + off, k) != 0) {
            free(buf);
            return E_WRITE;
        }
        off += k;
        piece = piece == 1 ? 1000 : 65536;
    }
    free(buf);
    return 0;
}

/* t_task is every apply / apply_async task of this program (see targ_t). */
static int t_task(const void *arg, size_t arg_len, mp_out_t *out)
{
    targ_t a;
    if (arg_len < sizeof a || !arg)
        return E_ARGLEN;
    memcpy(&a, arg, sizeof a);
    size_t plen = arg_len - sizeof a;
    if (plen && mp_test_pat_bad((const char *)arg + sizeof a, plen, a.key ^ PAYKEY) >= 0)
        return E_ARGPAT;
    if (a.b)
        mp_test_word_inc(&a.b->ran);
    if (a.gated) {
        int rc = wait_gate(a.b);
        if (rc != 0)
            return rc;
    }
    switch (a.act) {
    case A_PID: {
        pidrep_t r = {(int32_t)getpid(), (int32_t)mp_test_tid(), g_init_val, g_init_calls};
        return mp_out_write(out, &r, sizeof r) == 0 ? a.code : E_WRITE;
    }
    case A_KILL:
    case A_SEGV:
    case A_EXIT:
        die_now(a.b, a.act);
        break;
    case A_OUTBAD:
        return mp_out_write(out, NULL, 3) == -EINVAL ? a.code : E_OUTBAD;
    default:
        break;
    }
    int rc = write_pat(out, (size_t)a.out_len, a.key + 1);
    return rc ? rc : a.code;
}

/* A map item: the function's input x, what it returns, what it does. */
typedef struct {
    int32_t x;
    int32_t rc;
    int32_t act;   /* A_NONE, A_KILL, A_SEGV, A_EXIT */
    int32_t gated;
    board_t *b;
} item_t;

/* A map item's result. */
typedef struct {
    int64_t y;   /* f_of(x) */
    int32_t tid; /* the thread that computed it */
    int32_t one; /* 1: written by m_item */
} res_t;

static int64_t f_of(int32_t x) { return (int64_t)x * x * 3 + 7 - x; }

/* m_item is the map function of this program (see item_t): it checks that
 * its result slot comes zeroed, computes f_of(x) and returns the item's
 * code. */
static int m_item(const void *in, void *out)
{
    item_t it;
    res_t r;
    static const res_t zero;
    memcpy(&it, in, sizeof it);
    memcpy(&r, out, sizeof r);
    if (it.b)
        mp_test_word_inc(&it.b->ran);
    if (memcmp(&r, &zero, sizeof r) != 0)
        return E_NOTZERO;
    if (it.gated) {
        int rc = wait_gate(it.b);
        if (rc != 0)
            return rc;
    }
    if (it.act == A_KILL || it.act == A_SEGV || it.act == A_EXIT)
        die_now(it.b, it.act);
    r.y = f_of(it.x);
    r.tid = (int32_t)mp_test_tid();
    r.one = 1;
    memcpy(out, &r, sizeof r);
    if (it.b)
        mp_test_word_inc(&it.b->done);
    return it.rc;
}

/* m_odd maps 3 bytes to 5: out[k] = in[k % 3] ^ (k * 37). */
static int m_odd(const void *in, void *out)
{
    const unsigned char *i = in;
    unsigned char *o = out;
    for (int k = 0; k < 5; k++)
        o[k] = (unsigned char)(i[k % 3] ^ (k * 37));
    return 0;
}

/* ---- the test's side -------------------------------------------------------- */

static const char *kind(int th) { return th ? "thread pool" : "process pool"; }

static mp_pool_t *pool_make(int th, int n, const mp_pool_opts_t *o)
{
    mp_pool_t *p = NULL;
    int rc = th ? mp_thread_pool_new(&p, n, o) : mp_pool_new(&p, n, o);
    if (rc != 0)
        mp_test_fail("making a %s of %d gave %d (%s)\n", kind(th), n, rc, mp_strerror(rc));
    assert_non_null(p);
    return p;
}

/* pool_end closes the pool, joins it (the workers exit once the queue is
 * done) and frees it. */
static void pool_end(mp_pool_t *p)
{
    mp_assert_int(mp_pool_close(p), 0);
    mp_assert_int(mp_pool_join(p, MP_TEST_LONG), 0);
    mp_pool_free(p);
}

static targ_t ta(board_t *b, int act, int code, uint64_t key, size_t out_len)
{
    targ_t a;
    memset(&a, 0, sizeof a);
    a.b = b;
    a.act = act;
    a.code = code;
    a.key = key;
    a.out_len = out_len;
    return a;
}

static targ_t ta_gated(board_t *b, int act, uint64_t key, size_t out_len)
{
    targ_t a = ta(b, act, 0, key, out_len);
    a.gated = 1;
    return a;
}

/* check_bytes fails the case unless data[0..len) is want bytes of the
 * result of key (pat(key + 1)). */
static void check_bytes(const void *data, size_t len, size_t want, uint64_t key,
                        const char *what)
{
    if (len != want)
        mp_test_fail("%s: the result has %zu bytes, expected %zu\n", what, len, want);
    if (want && !data)
        mp_test_fail("%s: the result of %zu bytes is NULL\n", what, want);
    long off = mp_test_pat_bad(data, len, key + 1);
    if (off >= 0)
        mp_test_fail("%s: byte %ld of %zu is not what the task wrote\n", what, off, len);
}

/* async_task queues t_task(a) and returns the result handle. */
static mp_async_t *async_task(mp_pool_t *p, const targ_t *a, const mp_async_opts_t *cb)
{
    mp_async_t *r = NULL;
    int rc = mp_pool_apply_async(p, t_task, a, sizeof *a, cb, &r);
    if (rc != 0)
        mp_test_fail("apply_async gave %d (%s)\n", rc, mp_strerror(rc));
    assert_non_null(r);
    return r;
}

/* apply_pid runs an A_PID task (code 0) and returns who ran it. */
static pidrep_t apply_pid(mp_pool_t *p, board_t *b)
{
    targ_t a = ta(b, A_PID, 0, 0, 0);
    pidrep_t r;
    memset(&r, 0, sizeof r);
    size_t len = 0;
    mp_assert_int(mp_pool_apply(p, t_task, &a, sizeof a, &r, sizeof r, &len), 0);
    mp_assert_int(len, sizeof r);
    return r;
}

static item_t *items_new(size_t n, board_t *b)
{
    item_t *it = calloc(n ? n : 1, sizeof *it);
    assert_non_null(it);
    for (size_t i = 0; i < n; i++) {
        it[i].x = (int32_t)i * 5 - 100;
        it[i].b = b;
    }
    return it;
}

/* res_new gives n result slots filled with garbage (the pool must write
 * every one of a successful map). */
static res_t *res_new(size_t n)
{
    res_t *r = malloc((n ? n : 1) * sizeof *r);
    assert_non_null(r);
    memset(r, 0xab, (n ? n : 1) * sizeof *r);
    return r;
}

/* check_res fails the case unless r is item it's correct result. */
static void check_res(const item_t *it, const res_t *r, size_t i, const char *what)
{
    if (r->one != 1 || r->y != f_of(it->x))
        mp_test_fail("%s: item %zu has y = %lld (written: %d), expected %lld\n", what, i,
                     (long long)r->y, r->one, (long long)f_of(it->x));
}

static mp_map_opts_t map_opts(size_t chunksize)
{
    mp_map_opts_t o;
    memset(&o, 0, sizeof o);
    o.chunksize = chunksize;
    return o;
}

/* ---- callbacks (in this process) ------------------------------------------ */

/* What the callbacks of one case share; it lives in the test's memory. */
typedef struct {
    uint32_t ok, err; /* callbacks and error callbacks that ran */
    uint32_t bad;     /* things found wrong (the first one in why) */
    pthread_t main;   /* the case's thread: callbacks must not run in it */
    pid_t pid;        /* the case's process: callbacks must run in it */
    char why[256];
} cbctx_t;

/* One task's expectations: its code, and on success key and length. */
typedef struct {
    cbctx_t *c;
    int i;
    int code;
    uint64_t key;
    size_t len;
} cbuser_t;

static void cbctx_init(cbctx_t *c)
{
    memset(c, 0, sizeof *c);
    c->main = pthread_self();
    c->pid = getpid();
}

static void cb_bad(cbctx_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cb_bad(cbctx_t *c, const char *fmt, ...)
{
    if (__atomic_add_fetch(&c->bad, 1, __ATOMIC_SEQ_CST) != 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof c->why, fmt, ap);
    va_end(ap);
}

static void cb_where(cbctx_t *c, const char *which, int i)
{
    if (getpid() != c->pid)
        cb_bad(c, "the %s of task %d ran in process %d, not in the pool's maker %d", which, i,
               (int)getpid(), (int)c->pid);
    else if (pthread_equal(pthread_self(), c->main))
        cb_bad(c, "the %s of task %d ran in the thread that made the call, not in the "
                  "pool's handler thread", which, i);
}

/* cb_ok: the result is ready and readable with get(0), and is what task
 * u->i wrote; u->code must be 0. */
static void cb_ok(mp_async_t *r, void *user)
{
    cbuser_t *u = user;
    cbctx_t *c = u->c;
    cb_where(c, "callback", u->i);
    const void *data = NULL;
    size_t len = 0;
    int rc = mp_async_get(r, 0, &data, &len);
    if (u->code != 0)
        cb_bad(c, "callback called for task %d, which fails with %d", u->i, u->code);
    else if (rc != 0)
        cb_bad(c, "in the callback of task %d, get(0) gave %d (%s)", u->i, rc, mp_strerror(rc));
    else if (len != u->len || (len && (!data || mp_test_pat_bad(data, len, u->key + 1) >= 0)))
        cb_bad(c, "in the callback of task %d, the result (%zu bytes) is not the task's (%zu)",
               u->i, len, u->len);
    mp_test_word_inc(&c->ok);
}

/* cb_err: err is task u->i's code, and get(0) gives it too. */
static void cb_err(mp_async_t *r, int err, void *user)
{
    cbuser_t *u = user;
    cbctx_t *c = u->c;
    cb_where(c, "error callback", u->i);
    int rc = mp_async_get(r, 0, NULL, NULL);
    if (err != u->code)
        cb_bad(c, "error callback of task %d got %d (%s), expected %d (%s)", u->i, err,
               mp_strerror(err), u->code, mp_strerror(u->code));
    else if (rc != err)
        cb_bad(c, "in the error callback of task %d, get(0) gave %d (%s), not %d", u->i, rc,
               mp_strerror(rc), err);
    mp_test_word_inc(&c->err);
}

static void cb_check(cbctx_t *c)
{
    if (__atomic_load_n(&c->bad, __ATOMIC_SEQ_CST))
        mp_test_fail("callbacks: %u problems; the first: %s\n", c->bad, c->why);
}

static mp_async_opts_t cb_opts(cbuser_t *u)
{
    mp_async_opts_t o = {cb_ok, cb_err, u};
    return o;
}

/* Progress: every call's (done, total), checked as they come. */
typedef struct {
    size_t calls, last, total;
    int strict; /* done must grow at every call (map); else not shrink (imap) */
    uint32_t bad;
    pthread_t main;
    char why[200];
} prog_t;

static void prog_cb(size_t done, size_t total, void *user)
{
    prog_t *g = user;
    char w[200] = "";
    if (!pthread_equal(pthread_self(), g->main))
        snprintf(w, sizeof w, "call %zu ran in another thread than the waiting one", g->calls);
    else if (total != g->total)
        snprintf(w, sizeof w, "call %zu: total %zu, expected %zu", g->calls, total, g->total);
    else if (done > total)
        snprintf(w, sizeof w, "call %zu: done %zu > total %zu", g->calls, done, total);
    else if (g->calls && (g->strict ? done <= g->last : done < g->last))
        snprintf(w, sizeof w, "call %zu: done %zu after %zu", g->calls, done, g->last);
    if (w[0] && g->bad++ == 0)
        memcpy(g->why, w, sizeof w);
    g->calls++;
    g->last = done;
}

static void prog_init(prog_t *g, size_t total, int strict)
{
    memset(g, 0, sizeof *g);
    g->total = total;
    g->strict = strict;
    g->main = pthread_self();
}

/* ---- warm-up ----------------------------------------------------------------- */

/* Warm-up: the arena, one child of the program's start method (the
 * forkserver and its connection), and one pool of each kind made, used and
 * ended, so whatever the library keeps for the life of a process exists
 * before the snapshot. */
static int warm_pool(void)
{
    void *x = mp__arena_alloc(16);
    if (!x)
        return -ENOMEM;
    mp__arena_free(x);
    int rc = mp_test_warm_child();
    if (rc != 0)
        return rc;
    for (int th = 0; th < 2; th++) {
        mp_pool_t *p = NULL;
        rc = th ? mp_thread_pool_new(&p, 1, NULL) : mp_pool_new(&p, 1, NULL);
        if (rc != 0)
            return rc;
        targ_t a = ta(NULL, A_NONE, 0, 1, 8);
        char buf[8];
        rc = mp_pool_apply(p, t_task, &a, sizeof a, buf, sizeof buf, NULL);
        if (rc == 0)
            rc = mp_pool_close(p);
        if (rc == 0)
            rc = mp_pool_join(p, 60.0 * mp_test_scale());
        mp_pool_free(p);
        if (rc != 0)
            return rc;
    }
    return 0;
}

#define BOTH(fn)                                                 \
    static void fn##_processes(void **state) { fn(0); }          \
    static void fn##_threads(void **state) { fn(1); }

/* ---- apply ----------------------------------------------------------------- */

/* apply hands back the task's result bytes: empty, 1 byte, a page, 1 MiB + 3
 * written in many appends; the argument (64 KiB of payload) arrives as it
 * was passed; buf and len may be NULL; a buffer of exactly the result's size
 * is enough. */
static void apply_result_bytes(int th)
{
    mp_pool_t *p = pool_make(th, NW, NULL);
    static const size_t sizes[] = {0, 1, 4096, (1u << 20) + 3};
    size_t cap = (1u << 20) + 3;
    unsigned char *buf = malloc(cap);
    assert_non_null(buf);
    size_t alen = sizeof(targ_t) + 65536;
    unsigned char *arg = malloc(alen);
    assert_non_null(arg);
    char what[80];
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint64_t key = 100 + i;
        targ_t a = ta(NULL, A_NONE, 0, key, sizes[i]);
        memcpy(arg, &a, sizeof a);
        mp_test_pat_fill(arg + sizeof a, alen - sizeof a, key ^ PAYKEY);
        size_t len = (size_t)-1;
        snprintf(what, sizeof what, "apply of a %zu-byte result", sizes[i]);
        mp_assert_int(mp_pool_apply(p, t_task, arg, alen, buf, sizes[i], &len), 0);
        check_bytes(buf, len, sizes[i], key, what);
        len = (size_t)-1;
        mp_assert_int(mp_pool_apply(p, t_task, &a, sizeof a, buf, cap, &len), 0);
        check_bytes(buf, len, sizes[i], key, what);
        /* The result does not matter. */
        mp_assert_int(mp_pool_apply(p, t_task, &a, sizeof a, NULL, 0, NULL), 0);
    }
    free(arg);
    free(buf);
    pool_end(p);
}
BOTH(apply_result_bytes)

/* apply of a task that fails gives the task's own code (a program code and
 * a negative errno), its result is not needed; the pool goes on. A buffer
 * too small (also of 0 bytes) gives MP_ETOOSHORT and the size needed in
 * *len; no buffer (NULL) means the result does not matter: 0, and *len. */
static void apply_task_code(int th)
{
    mp_pool_t *p = pool_make(th, NW, NULL);
    targ_t a = ta(NULL, A_NONE, 1234, 7, 16);
    char buf[64];
    size_t len = 0;
    mp_assert_int(mp_pool_apply(p, t_task, &a, sizeof a, buf, sizeof buf, &len), 1234);
    a.code = -ENOENT;
    mp_assert_int(mp_pool_apply(p, t_task, &a, sizeof a, buf, sizeof buf, &len), -ENOENT);
    mp_assert_int(mp_pool_apply(p, t_task, &a, sizeof a, NULL, 0, NULL), -ENOENT);

    /* MP_ETOOSHORT: 100 bytes into 99, and into nothing. */
    a = ta(NULL, A_NONE, 0, 8, 100);
    len = 0;
    mp_assert_int(mp_pool_apply(p, t_task, &a, sizeof a, buf, 50, &len), MP_ETOOSHORT);
    mp_assert_int(len, 100);
    unsigned char big[100];
    len = 0;
    mp_assert_int(mp_pool_apply(p, t_task, &a, sizeof a, big, 99, &len), MP_ETOOSHORT);
    mp_assert_int(len, 100);
    len = 0;
    mp_assert_int(mp_pool_apply(p, t_task, &a, sizeof a, big, 0, &len), MP_ETOOSHORT);
    mp_assert_int(len, 100);
    /* buf NULL: the result does not matter, its length still comes. */
    len = 0;
    mp_assert_int(mp_pool_apply(p, t_task, &a, sizeof a, NULL, 0, &len), 0);
    mp_assert_int(len, 100);
    len = 0;
    mp_assert_int(mp_pool_apply(p, t_task, &a, sizeof a, big, sizeof big, &len), 0);
    check_bytes(big, len, 100, 8, "apply after MP_ETOOSHORT");

    /* mp_out_write of NULL bytes is refused inside a task. */
    a = ta(NULL, A_OUTBAD, 0, 0, 0);
    mp_assert_int(mp_pool_apply(p, t_task, &a, sizeof a, NULL, 0, NULL), 0);
    pool_end(p);
}
BOTH(apply_task_code)

/* ---- apply_async and AsyncResult ------------------------------------------------ */

#define NASYNC 200

/* 200 apply_async, every fifth failing with its own code: get gives each
 * task's bytes (data and len valid until mp_async_free) or its code; the
 * callback runs once per success, the error callback once per failure with
 * the code, both in the pool's handler thread of this process, where get(0)
 * already reads the result. */
static void apply_async_callbacks(int th)
{
    mp_pool_t *p = pool_make(th, NW, NULL);
    static cbctx_t c;
    static cbuser_t u[NASYNC];
    static mp_async_t *r[NASYNC];
    cbctx_init(&c);
    uint32_t nerr = 0;
    for (int i = 0; i < NASYNC; i++) {
        int code = i % 5 == 3 ? 2000 + i : 0;
        nerr += code != 0;
        u[i] = (cbuser_t){&c, i, code, 5000 + (uint64_t)i, (size_t)(i * 37 % 3000)};
        targ_t a = ta(NULL, A_NONE, code, u[i].key, u[i].len);
        mp_async_opts_t o = cb_opts(&u[i]);
        r[i] = async_task(p, &a, &o);
    }
    char what[64];
    for (int i = 0; i < NASYNC; i++) {
        const void *data = NULL;
        size_t len = (size_t)-1;
        snprintf(what, sizeof what, "apply_async %d", i);
        int rc = mp_async_get(r[i], MP_TEST_LONG, &data, &len);
        if (rc != u[i].code)
            mp_test_fail("%s: get gave %d (%s), expected %d\n", what, rc, mp_strerror(rc),
                         u[i].code);
        if (rc == 0)
            check_bytes(data, len, u[i].len, u[i].key, what);
        mp_assert_int(mp_async_ready(r[i]), 1);
        mp_assert_int(mp_async_successful(r[i]), rc == 0);
    }
    /* The callbacks run in the handler thread: wait until each has run. */
    mp_test_wait_word(&c.ok, NASYNC - nerr, "the callbacks");
    mp_test_wait_word(&c.err, nerr, "the error callbacks");
    cb_check(&c);
    pool_end(p);
    mp_assert_int(c.ok, NASYNC - nerr);
    mp_assert_int(c.err, nerr);
    /* Results stay readable after the pool is gone, until freed. */
    const void *data = NULL;
    size_t len = 0;
    mp_assert_int(mp_async_get(r[1], 0, &data, &len), 0);
    check_bytes(data, len, u[1].len, u[1].key, "a result after mp_pool_free");
    for (int i = 0; i < NASYNC; i++)
        mp_async_free(r[i]);
}
BOTH(apply_async_callbacks)

/* Once close and join returned, every callback has run (Python's reading:
 * join joins the result handler). No waiting on the counts here. */
static void callbacks_all_run_by_join(int th)
{
    mp_pool_t *p = pool_make(th, NW, NULL);
    static cbctx_t c;
    static cbuser_t u[50];
    static mp_async_t *r[50];
    cbctx_init(&c);
    for (int i = 0; i < 50; i++) {
        int code = i % 2 ? -EIO : 0;
        u[i] = (cbuser_t){&c, i, code, 300 + (uint64_t)i, 10};
        targ_t a = ta(NULL, A_NONE, code, u[i].key, u[i].len);
        mp_async_opts_t o = cb_opts(&u[i]);
        r[i] = async_task(p, &a, &o);
    }
    mp_assert_int(mp_pool_close(p), 0);
    mp_assert_int(mp_pool_join(p, MP_TEST_LONG), 0);
    uint32_t ok = __atomic_load_n(&c.ok, __ATOMIC_SEQ_CST);
    uint32_t err = __atomic_load_n(&c.err, __ATOMIC_SEQ_CST);
    if (ok != 25 || err != 25)
        mp_test_fail("after close and join, %u callbacks and %u error callbacks had run, "
                     "expected 25 and 25\n", ok, err);
    cb_check(&c);
    mp_pool_free(p);
    for (int i = 0; i < 50; i++)
        mp_async_free(r[i]);
}
BOTH(callbacks_all_run_by_join)

/* A result not ready: ready is 0, successful is -EAGAIN (Python raises
 * ValueError), get and wait with a timeout give -ETIMEDOUT after about that
 * long (0: at once) and the task goes on; once it is released, get gives
 * its bytes, ready 1, successful 1. A failed task: successful 0. A NaN
 * timeout is -EINVAL. */
static void get_timeout_ready_successful(int th)
{
    board_t *b = board_new();
    mp_pool_t *p = pool_make(th, NW, NULL);
    targ_t a = ta_gated(b, A_NONE, 77, 40);
    mp_async_t *r = async_task(p, &a, NULL);
    mp_test_wait_word(&b->started, 1, "the gated task");
    mp_assert_int(mp_async_ready(r), 0);
    mp_assert_int(mp_async_successful(r), -EAGAIN);
    const void *data = NULL;
    size_t len = 0;
    double t0 = mp_test_now();
    mp_assert_int(mp_async_get(r, 0, &data, &len), -ETIMEDOUT);
    mp_test_check_quick(mp_test_now() - t0, "get(0) of a running task");
    t0 = mp_test_now();
    mp_assert_int(mp_async_get(r, 0.3, &data, &len), -ETIMEDOUT);
    mp_test_check_timed(mp_test_now() - t0, 0.3, "get(0.3) of a running task");
    t0 = mp_test_now();
    mp_assert_int(mp_async_wait(r, 0.3), -ETIMEDOUT);
    mp_test_check_timed(mp_test_now() - t0, 0.3, "wait(0.3) of a running task");
    mp_assert_int(mp_async_get(r, NAN, &data, &len), -EINVAL);
    mp_assert_int(mp_async_wait(r, NAN), -EINVAL);
    mp_assert_int(mp_async_ready(r), 0);

    double t_open = mp_test_now();
    mp_test_word_store(&b->gate, 1);
    mp_assert_int(mp_async_wait(r, MP_TEST_LONG), 0);
    mp_test_check_prompt(mp_test_now(), t_open, "wait of a released task");
    mp_assert_int(mp_async_ready(r), 1);
    mp_assert_int(mp_async_successful(r), 1);
    mp_assert_int(mp_async_wait(r, 0), 0);
    mp_assert_int(mp_async_get(r, 0, &data, &len), 0);
    check_bytes(data, len, 40, 77, "the released task");
    /* get again: the same result. */
    mp_assert_int(mp_async_get(r, MP_TEST_LONG, &data, &len), 0);
    check_bytes(data, len, 40, 77, "the released task, got twice");
    mp_async_free(r);

    a = ta(b, A_NONE, 31, 1, 0);
    r = async_task(p, &a, NULL);
    mp_assert_int(mp_async_get(r, MP_TEST_LONG, NULL, NULL), 31);
    mp_assert_int(mp_async_ready(r), 1);
    mp_assert_int(mp_async_successful(r), 0);
    mp_async_free(r);
    mp_assert_int(mp_async_get(NULL, 0, NULL, NULL), -EINVAL);
    pool_end(p);
    mp__arena_free(b);
}
BOTH(get_timeout_ready_successful)

/* mp_async_free of a result still running: the task goes on and the pool
 * is not disturbed (the next results are right, nothing is touched after
 * the free: ASan builds see it). */
static void free_running_result(int th)
{
    board_t *b = board_new();
    mp_pool_t *p = pool_make(th, NW, NULL);
    targ_t a = ta_gated(b, A_NONE, 5, 1000);
    mp_async_t *r = async_task(p, &a, NULL);
    mp_test_wait_word(&b->started, 1, "the gated task");
    mp_async_free(r);
    mp_test_word_store(&b->gate, 1);
    for (int i = 0; i < 20; i++) {
        a = ta(b, A_NONE, 0, 50 + (uint64_t)i, 64);
        unsigned char buf[64];
        size_t len = 0;
        mp_assert_int(mp_pool_apply(p, t_task, &a, sizeof a, buf, sizeof buf, &len), 0);
        check_bytes(buf, len, 64, 50 + (uint64_t)i, "an apply after freeing a running result");
    }
    pool_end(p);
    mp_assert_int(b->ran, 21);
    mp__arena_free(b);
}
BOTH(free_running_result)

/* ---- map ----------------------------------------------------------------------- */

#define NMAP 100

/* map of 100 items with chunksize 1, the default (0), 20 and more than n:
 * every result in input order, item_rc all 0, *failed untouched; the items
 * of one chunk run one after another in one worker (same thread). */
static void map_chunksizes(int th)
{
    board_t *b = board_new();
    mp_pool_t *p = pool_make(th, NW, NULL);
    item_t *in = items_new(NMAP, b);
    static const size_t chunks[] = {1, 0, 20, 1000};
    char what[80];
    for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
        res_t *out = res_new(NMAP);
        int rc_items[NMAP];
        memset(rc_items, 0x55, sizeof rc_items);
        mp_map_opts_t o = map_opts(chunks[k]);
        o.item_rc = rc_items;
        size_t failed = 12345;
        snprintf(what, sizeof what, "map with chunksize %zu", chunks[k]);
        int rc = mp_pool_map(p, m_item, in, NMAP, sizeof *in, out, sizeof *out, &o, &failed);
        if (rc != 0)
            mp_test_fail("%s gave %d (%s)\n", what, rc, mp_strerror(rc));
        mp_assert_int(failed, 12345);
        for (size_t i = 0; i < NMAP; i++) {
            check_res(&in[i], &out[i], i, what);
            if (rc_items[i] != 0)
                mp_test_fail("%s: item_rc[%zu] is %d\n", what, i, rc_items[i]);
        }
        size_t cs = chunks[k] ? chunks[k] : 1;
        for (size_t i = 0; i < NMAP; i++)
            if (i % cs && out[i].tid != out[i - 1].tid)
                mp_test_fail("%s: items %zu and %zu of one chunk ran in threads %d and %d\n",
                             what, i - 1, i, out[i - 1].tid, out[i].tid);
        free(out);
    }
    /* NULL opts and failed: the defaults. */
    res_t *out = res_new(NMAP);
    mp_assert_int(mp_pool_map(p, m_item, in, NMAP, sizeof *in, out, sizeof *out, NULL, NULL),
                  0);
    for (size_t i = 0; i < NMAP; i++)
        check_res(&in[i], &out[i], i, "map with NULL opts");
    free(out);
    free(in);
    pool_end(p);
    mp__arena_free(b);
}
BOTH(map_chunksizes)

/* Items of sizes that are no multiple of anything: 3 bytes in, 5 out. */
static void map_odd_sizes(int th)
{
    mp_pool_t *p = pool_make(th, NW, NULL);
    enum { N = 1001 };
    unsigned char *in = malloc(N * 3), *out = malloc(N * 5);
    assert_non_null(in);
    assert_non_null(out);
    mp_test_pat_fill(in, N * 3, 99);
    memset(out, 0xee, N * 5);
    mp_map_opts_t o = map_opts(7);
    mp_assert_int(mp_pool_map(p, m_odd, in, N, 3, out, 5, &o, NULL), 0);
    for (size_t i = 0; i < N; i++)
        for (int k = 0; k < 5; k++)
            if (out[i * 5 + k] != (unsigned char)(in[i * 3 + k % 3] ^ (k * 37)))
                mp_test_fail("item %zu, byte %d of its 5-byte result is wrong\n", i, k);
    free(in);
    free(out);
    pool_end(p);
}
BOTH(map_odd_sizes)

/* map of 0 items returns 0 at once (in and out may be NULL), *failed
 * untouched; map_async of 0 items is ready, imap of 0 items ends at once. */
static void map_zero_items(int th)
{
    mp_pool_t *p = pool_make(th, NW, NULL);
    size_t failed = 777;
    double t0 = mp_test_now();
    mp_assert_int(mp_pool_map(p, m_item, NULL, 0, sizeof(item_t), NULL, sizeof(res_t), NULL,
                              &failed),
                  0);
    item_t in[1];
    res_t out[1];
    mp_map_opts_t o = map_opts(20);
    mp_assert_int(mp_pool_map(p, m_item, in, 0, sizeof in[0], out, sizeof out[0], &o, &failed),
                  0);
    mp_test_check_quick(mp_test_now() - t0, "map of 0 items");
    mp_assert_int(failed, 777);
    /* map_async and imap of 0 items: ready at once, the iterator ends. */
    mp_async_t *r = NULL;
    mp_assert_int(mp_pool_map_async(p, m_item, NULL, 0, sizeof(item_t), NULL, sizeof(res_t),
                                    NULL, &r),
                  0);
    mp_assert_int(mp_async_get(r, MP_TEST_LONG, NULL, NULL), 0);
    mp_assert_int(mp_async_failed(r, &failed), -ENOENT);
    mp_async_free(r);
    mp_imap_t *it = NULL;
    mp_assert_int(mp_pool_imap(p, m_item, NULL, 0, sizeof(item_t), sizeof(res_t), NULL, &it), 0);
    mp_assert_int(mp_imap_next(it, MP_TEST_LONG, NULL, NULL), MP_EEOF);
    mp_imap_free(it);
    pool_end(p);
}
BOTH(map_zero_items)

/* A map where items 17, 50 and 151 of 200 fail with their own codes: every
 * other item is computed (also those after a failure in the same chunk),
 * map returns the code of the lowest failing item and its index in
 * *failed, item_rc holds every item's code. Chunksize 1, and 7 (a failing
 * item in the middle of a chunk). */
static void map_failing_items(int th)
{
    board_t *b = board_new();
    mp_pool_t *p = pool_make(th, NW, NULL);
    enum { N = 200 };
    item_t *in = items_new(N, b);
    in[151].rc = 3151;
    in[50].rc = -EDOM;
    in[17].rc = 3017;
    static const size_t chunks[] = {1, 7};
    char what[64];
    for (size_t k = 0; k < 2; k++) {
        snprintf(what, sizeof what, "map with failures, chunksize %zu", chunks[k]);
        res_t *out = res_new(N);
        int rc_items[N];
        memset(rc_items, 0x55, sizeof rc_items);
        mp_map_opts_t o = map_opts(chunks[k]);
        o.item_rc = rc_items;
        size_t failed = 0;
        mp_assert_int(mp_pool_map(p, m_item, in, N, sizeof *in, out, sizeof *out, &o, &failed),
                      3017);
        mp_assert_int(failed, 17);
        for (size_t i = 0; i < N; i++) {
            if (rc_items[i] != in[i].rc)
                mp_test_fail("%s: item_rc[%zu] is %d (%s), expected %d\n", what, i,
                             rc_items[i], mp_strerror(rc_items[i]), in[i].rc);
            if (in[i].rc == 0)
                check_res(&in[i], &out[i], i, what);
        }
        free(out);
    }
    /* Without item_rc and failed. */
    res_t *out = res_new(N);
    mp_assert_int(mp_pool_map(p, m_item, in, N, sizeof *in, out, sizeof *out, NULL, NULL),
                  3017);
    for (size_t i = 0; i < N; i++)
        if (in[i].rc == 0)
            check_res(&in[i], &out[i], i, "map with failures, no item_rc");
    free(out);
    /* The pool goes on. */
    out = res_new(N);
    in[17].rc = in[50].rc = in[151].rc = 0;
    mp_assert_int(mp_pool_map(p, m_item, in, N, sizeof *in, out, sizeof *out, NULL, NULL), 0);
    free(out);
    free(in);
    pool_end(p);
    mp__arena_free(b);
}
BOTH(map_failing_items)

/* map_async: not ready while an item is held (ready 0, successful and
 * failed -EAGAIN); once released, the callback runs in the handler thread
 * with every result already in out, get gives 0 and failed -ENOENT. With
 * failing items, the error callback gets the lowest failing item's code and
 * failed gives its index. */
typedef struct {
    cbctx_t *c;
    const item_t *in;
    const res_t *out;
    size_t n;
    int code;       /* expected: 0, or the error callback's code */
    size_t failidx; /* expected failing index */
} mapcb_t;

static void mcb_ok(mp_async_t *r, void *user)
{
    mapcb_t *m = user;
    cb_where(m->c, "map callback", -1);
    if (m->code != 0)
        cb_bad(m->c, "the map's callback ran, expected its error callback (%d)", m->code);
    else if (mp_async_get(r, 0, NULL, NULL) != 0)
        cb_bad(m->c, "in the map's callback, get(0) did not give 0");
    else
        for (size_t i = 0; i < m->n; i++)
            if (m->out[i].one != 1 || m->out[i].y != f_of(m->in[i].x)) {
                cb_bad(m->c, "when the map's callback ran, result %zu was not in out", i);
                break;
            }
    mp_test_word_inc(&m->c->ok);
}

static void mcb_err(mp_async_t *r, int err, void *user)
{
    mapcb_t *m = user;
    size_t idx = 0;
    cb_where(m->c, "map error callback", -1);
    if (err != m->code)
        cb_bad(m->c, "the map's error callback got %d (%s), expected %d", err, mp_strerror(err),
               m->code);
    else if (mp_async_failed(r, &idx) != 0 || idx != m->failidx)
        cb_bad(m->c, "in the map's error callback, failed did not give index %zu", m->failidx);
    mp_test_word_inc(&m->c->err);
}

static void map_async_callbacks(int th)
{
    board_t *b = board_new();
    mp_pool_t *p = pool_make(th, NW, NULL);
    static cbctx_t c;
    cbctx_init(&c);
    enum { N = 60 };
    item_t *in = items_new(N, b);
    in[0].gated = 1;
    res_t *out = res_new(N);
    mapcb_t m = {&c, in, out, N, 0, 0};
    mp_map_opts_t o = map_opts(0);
    o.async = (mp_async_opts_t){mcb_ok, mcb_err, &m};
    mp_async_t *r = NULL;
    mp_assert_int(mp_pool_map_async(p, m_item, in, N, sizeof *in, out, sizeof *out, &o, &r), 0);
    mp_test_wait_word(&b->started, 1, "the held item");
    size_t idx = 999;
    mp_assert_int(mp_async_ready(r), 0);
    mp_assert_int(mp_async_successful(r), -EAGAIN);
    mp_assert_int(mp_async_failed(r, &idx), -EAGAIN);
    mp_assert_int(mp_async_get(r, 0, NULL, NULL), -ETIMEDOUT);
    mp_assert_int(c.ok + c.err, 0);
    mp_test_word_store(&b->gate, 1);
    mp_test_wait_word(&c.ok, 1, "the map's callback");
    const void *data = (const void *)1;
    size_t len = 99;
    mp_assert_int(mp_async_get(r, MP_TEST_LONG, &data, &len), 0);
    const void *map_data = data; /* checked at the end */
    size_t map_len = len;
    mp_assert_int(mp_async_successful(r), 1);
    mp_assert_int(mp_async_failed(r, &idx), -ENOENT);
    for (size_t i = 0; i < N; i++)
        check_res(&in[i], &out[i], i, "map_async");
    mp_async_free(r);
    cb_check(&c);

    /* Failing items 9 and 33, chunksize 4. */
    in[0].gated = 0;
    in[33].rc = 4033;
    in[9].rc = 4009;
    free(out);
    out = res_new(N);
    m = (mapcb_t){&c, in, out, N, 4009, 9};
    o = map_opts(4);
    o.async = (mp_async_opts_t){mcb_ok, mcb_err, &m};
    mp_assert_int(mp_pool_map_async(p, m_item, in, N, sizeof *in, out, sizeof *out, &o, &r), 0);
    mp_assert_int(mp_async_get(r, MP_TEST_LONG, NULL, NULL), 4009);
    mp_test_wait_word(&c.err, 1, "the map's error callback");
    mp_assert_int(mp_async_successful(r), 0);
    mp_assert_int(mp_async_failed(r, &idx), 0);
    mp_assert_int(idx, 9);
    for (size_t i = 0; i < N; i++)
        if (in[i].rc == 0)
            check_res(&in[i], &out[i], i, "map_async with failures");
    mp_async_free(r);
    cb_check(&c);
    mp_assert_int(c.ok, 1);
    mp_assert_int(c.err, 1);
    free(out);
    free(in);
    pool_end(p);
    mp__arena_free(b);
    /* get of a map result gives no bytes: data NULL and len 0. */
    if (map_data != NULL || map_len != 0)
        mp_test_fail("get of a map result gave data %p and len %zu, expected NULL and 0\n",
                     map_data, map_len);
}
BOTH(map_async_callbacks)

/* The progress callback of map: called in the thread that waits, with the
 * right total, done growing at every call, the last call with done ==
 * total. imap: called in the thread that calls next, done never shrinking,
 * total reached once the iterator ended. */
static void map_progress(int th)
{
    board_t *b = board_new();
    mp_pool_t *p = pool_make(th, NW, NULL);
    enum { N = 100 };
    item_t *in = items_new(N, b);
    in[42].rc = 5042; /* a failure counts as done too */
    res_t *out = res_new(N);
    static prog_t g;
    prog_init(&g, N, 1);
    mp_map_opts_t o = map_opts(5);
    o.progress = prog_cb;
    o.progress_user = &g;
    mp_assert_int(mp_pool_map(p, m_item, in, N, sizeof *in, out, sizeof *out, &o, NULL), 5042);
    if (g.bad)
        mp_test_fail("map's progress: %s\n", g.why);
    if (g.calls == 0 || g.last != N)
        mp_test_fail("map's progress: %zu calls, the last with done %zu, expected done %d\n",
                     g.calls, g.last, N);

    /* imap, chunksize 3. */
    in[42].rc = 0;
    prog_init(&g, N, 0);
    o = map_opts(3);
    o.progress = prog_cb;
    o.progress_user = &g;
    mp_imap_t *it = NULL;
    mp_assert_int(mp_pool_imap(p, m_item, in, N, sizeof *in, sizeof *out, &o, &it), 0);
    res_t r1;
    int rc;
    size_t k = 0;
    while ((rc = mp_imap_next(it, MP_TEST_LONG, &r1, NULL)) == 0)
        k++;
    mp_assert_int(rc, MP_EEOF);
    mp_assert_int(k, N);
    mp_imap_free(it);
    if (g.bad)
        mp_test_fail("imap's progress: %s\n", g.why);
    if (g.calls == 0 || g.last != N)
        mp_test_fail("imap's progress: %zu calls, the last with done %zu, expected done %d\n",
                     g.calls, g.last, N);
    free(out);
    free(in);
    pool_end(p);
    mp__arena_free(b);
}
BOTH(map_progress)

/* ---- imap ------------------------------------------------------------------------ */

/* imap gives the items in input order with their index and result, with
 * chunksize 1 (the default) and 6; past the end MP_EEOF, again at every
 * call (also with timeout 0). out and index may be NULL. The input is
 * copied before the call returns: changing it afterwards changes nothing. */
static void imap_order_eof(int th)
{
    board_t *b = board_new();
    mp_pool_t *p = pool_make(th, NW, NULL);
    enum { N = 150 };
    item_t *in = items_new(N, b);
    item_t *keep = items_new(N, b);
    static const size_t chunks[] = {0, 6};
    char what[64];
    for (size_t k = 0; k < 2; k++) {
        snprintf(what, sizeof what, "imap with chunksize %zu", chunks[k]);
        mp_map_opts_t o = map_opts(chunks[k]);
        mp_imap_t *it = NULL;
        mp_assert_int(mp_pool_imap(p, m_item, in, N, sizeof *in, sizeof(res_t), &o, &it), 0);
        for (size_t i = 0; i < N; i++)
            in[i].x = -7; /* must not be seen */
        for (size_t i = 0; i < N; i++) {
            res_t r;
            memset(&r, 0xcd, sizeof r);
            size_t idx = 9999;
            int rc = mp_imap_next(it, MP_TEST_LONG, &r, &idx);
            if (rc != 0)
                mp_test_fail("%s: next %zu gave %d (%s)\n", what, i, rc, mp_strerror(rc));
            if (idx != i)
                mp_test_fail("%s: next %zu gave index %zu\n", what, i, idx);
            check_res(&keep[i], &r, i, what);
        }
        for (int j = 0; j < 3; j++) {
            res_t r;
            size_t idx = 0;
            mp_assert_int(mp_imap_next(it, MP_TEST_LONG, &r, &idx), MP_EEOF);
            mp_assert_int(mp_imap_next(it, 0, NULL, NULL), MP_EEOF);
        }
        mp_imap_free(it);
        memcpy(in, keep, N * sizeof *in);
    }
    /* out and index NULL. */
    mp_imap_t *it = NULL;
    mp_assert_int(mp_pool_imap(p, m_item, in, N, sizeof *in, sizeof(res_t), NULL, &it), 0);
    for (size_t i = 0; i < N; i++)
        mp_assert_int(mp_imap_next(it, MP_TEST_LONG, NULL, NULL), 0);
    mp_assert_int(mp_imap_next(it, MP_TEST_LONG, NULL, NULL), MP_EEOF);
    mp_imap_free(it);
    free(keep);
    free(in);
    pool_end(p);
    mp__arena_free(b);
}
BOTH(imap_order_eof)

/* imap_unordered yields every index exactly once (as a set), each with its
 * result, chunksizes 1 and 7; then MP_EEOF. */
static void imap_unordered_set(int th)
{
    board_t *b = board_new();
    mp_pool_t *p = pool_make(th, NW, NULL);
    enum { N = 200 };
    item_t *in = items_new(N, b);
    static const size_t chunks[] = {1, 7};
    char what[64];
    for (size_t k = 0; k < 2; k++) {
        snprintf(what, sizeof what, "imap_unordered with chunksize %zu", chunks[k]);
        mp_map_opts_t o = map_opts(chunks[k]);
        mp_imap_t *it = NULL;
        mp_assert_int(
            mp_pool_imap_unordered(p, m_item, in, N, sizeof *in, sizeof(res_t), &o, &it), 0);
        unsigned char seen[N];
        memset(seen, 0, sizeof seen);
        for (size_t i = 0; i < N; i++) {
            res_t r;
            size_t idx = 9999;
            int rc = mp_imap_next(it, MP_TEST_LONG, &r, &idx);
            if (rc != 0)
                mp_test_fail("%s: next %zu gave %d (%s)\n", what, i, rc, mp_strerror(rc));
            if (idx >= N || seen[idx]++)
                mp_test_fail("%s: next %zu gave index %zu (%s)\n", what, i, idx,
                             idx >= N ? "out of range" : "seen before");
            check_res(&in[idx], &r, idx, what);
        }
        mp_assert_int(mp_imap_next(it, MP_TEST_LONG, NULL, NULL), MP_EEOF);
        mp_assert_int(mp_imap_next(it, 0, NULL, NULL), MP_EEOF);
        mp_imap_free(it);
    }
    free(in);
    pool_end(p);
    mp__arena_free(b);
}
BOTH(imap_unordered_set)

/* next with a timeout while item 0 is held: imap gives -ETIMEDOUT after
 * about that long (0: at once) although items 1..9 are done, and consumes
 * nothing; once released, items 0..9 come in order. imap_unordered gives
 * items 1..9 while item 0 is held, then -ETIMEDOUT, then item 0 once
 * released. */
static void imap_next_timeout(int th)
{
    enum { N = 10 };
    for (int unordered = 0; unordered < 2; unordered++) {
        board_t *b = board_new();
        mp_pool_t *p = pool_make(th, NW, NULL);
        item_t *in = items_new(N, b);
        in[0].gated = 1;
        mp_imap_t *it = NULL;
        mp_map_opts_t o = map_opts(1);
        if (unordered)
            mp_assert_int(
                mp_pool_imap_unordered(p, m_item, in, N, sizeof *in, sizeof(res_t), &o, &it), 0);
        else
            mp_assert_int(mp_pool_imap(p, m_item, in, N, sizeof *in, sizeof(res_t), &o, &it), 0);
        mp_test_wait_word(&b->started, 1, "the held item");
        res_t r;
        size_t idx;
        if (unordered) {
            unsigned seen = 0;
            for (int i = 1; i < N; i++) {
                idx = 999;
                mp_assert_int(mp_imap_next(it, MP_TEST_LONG, &r, &idx), 0);
                if (idx < 1 || idx >= N || (seen & (1u << idx)))
                    mp_test_fail("imap_unordered: with item 0 held, next gave index %zu\n", idx);
                seen |= 1u << idx;
                check_res(&in[idx], &r, idx, "imap_unordered");
            }
        } else {
            mp_test_wait_word(&b->done, N - 1, "items 1..9");
        }
        const char *what = unordered ? "imap_unordered's next" : "imap's next";
        double t0 = mp_test_now();
        mp_assert_int(mp_imap_next(it, 0, &r, &idx), -ETIMEDOUT);
        mp_test_check_quick(mp_test_now() - t0, what);
        t0 = mp_test_now();
        mp_assert_int(mp_imap_next(it, 0.3, &r, &idx), -ETIMEDOUT);
        mp_test_check_timed(mp_test_now() - t0, 0.3, what);
        mp_assert_int(mp_imap_next(it, NAN, &r, &idx), -EINVAL);
        double t_open = mp_test_now();
        mp_test_word_store(&b->gate, 1);
        idx = 999;
        mp_assert_int(mp_imap_next(it, MP_TEST_LONG, &r, &idx), 0);
        mp_test_check_prompt(mp_test_now(), t_open, what);
        mp_assert_int(idx, 0);
        check_res(&in[0], &r, 0, what);
        if (!unordered)
            for (size_t i = 1; i < N; i++) {
                idx = 999;
                mp_assert_int(mp_imap_next(it, MP_TEST_LONG, &r, &idx), 0);
                mp_assert_int(idx, i);
                check_res(&in[i], &r, i, what);
            }
        mp_assert_int(mp_imap_next(it, MP_TEST_LONG, &r, &idx), MP_EEOF);
        mp_imap_free(it);
        free(in);
        pool_end(p);
        mp__arena_free(b);
    }
}
BOTH(imap_next_timeout)

/* imap with failing items: next gives the item's own code with its index,
 * the item is consumed and the iteration goes on. mp_imap_free of an
 * iterator whose items still run: they finish unseen. */
static void imap_failing_item(int th)
{
    board_t *b = board_new();
    mp_pool_t *p = pool_make(th, NW, NULL);
    enum { N = 30 };
    item_t *in = items_new(N, b);
    in[4].rc = 6004;
    in[20].rc = -ENOSPC;
    mp_map_opts_t o = map_opts(3);
    mp_imap_t *it = NULL;
    mp_assert_int(mp_pool_imap(p, m_item, in, N, sizeof *in, sizeof(res_t), &o, &it), 0);
    for (size_t i = 0; i < N; i++) {
        res_t r;
        size_t idx = 999;
        int rc = mp_imap_next(it, MP_TEST_LONG, &r, &idx);
        if (rc != in[i].rc)
            mp_test_fail("imap: item %zu gave %d (%s), expected %d\n", i, rc, mp_strerror(rc),
                         in[i].rc);
        mp_assert_int(idx, i);
        if (rc == 0)
            check_res(&in[i], &r, i, "imap with failures");
    }
    mp_assert_int(mp_imap_next(it, MP_TEST_LONG, NULL, NULL), MP_EEOF);
    mp_imap_free(it);

    /* Freed while item 0 is held and the rest queued. */
    in[4].rc = in[20].rc = 0;
    in[0].gated = 1;
    mp_assert_int(mp_pool_imap_unordered(p, m_item, in, N, sizeof *in, sizeof(res_t), &o, &it),
                  0);
    mp_test_wait_word(&b->started, 1, "the held item");
    mp_imap_free(it);
    mp_test_word_store(&b->gate, 1);
    pool_end(p);
    free(in);
    mp__arena_free(b);
}
BOTH(imap_failing_item)

/* ---- bad input, close, join --------------------------------------------------------- */

/* processes <= 0 and maxtasksperchild < 0 are -EINVAL; so are NULL
 * functions, items of 0 bytes and NULL arrays with n > 0, NULL pools and
 * NaN timeouts. The pool is still usable after all of them. */
static void bad_args(int th)
{
    mp_pool_t *p = NULL;
    int (*mk)(mp_pool_t **, int, const mp_pool_opts_t *) =
        th ? mp_thread_pool_new : mp_pool_new;
    mp_assert_int(mk(&p, 0, NULL), -EINVAL);
    mp_assert_int(mk(&p, -1, NULL), -EINVAL);
    mp_assert_int(mk(&p, -1000, NULL), -EINVAL);
    mp_pool_opts_t po;
    memset(&po, 0, sizeof po);
    po.maxtasksperchild = -1;
    mp_assert_int(mk(&p, NW, &po), -EINVAL);
    po.maxtasksperchild = -100;
    mp_assert_int(mk(&p, 1, &po), -EINVAL);

    p = pool_make(th, NW, NULL);
    mp_assert_int(mp_pool_size(p), NW);
    targ_t a = ta(NULL, A_NONE, 0, 1, 4);
    mp_async_t *r = NULL;
    mp_imap_t *it = NULL;
    item_t in[4];
    res_t out[4];
    memset(in, 0, sizeof in);
    mp_assert_int(mp_pool_apply(p, NULL, &a, sizeof a, NULL, 0, NULL), -EINVAL);
    mp_assert_int(mp_pool_apply_async(p, NULL, &a, sizeof a, NULL, &r), -EINVAL);
    mp_assert_int(mp_pool_map(p, NULL, in, 4, sizeof in[0], out, sizeof out[0], NULL, NULL),
                  -EINVAL);
    mp_assert_int(mp_pool_map(p, m_item, in, 4, 0, out, sizeof out[0], NULL, NULL), -EINVAL);
    mp_assert_int(mp_pool_map(p, m_item, NULL, 4, sizeof in[0], out, sizeof out[0], NULL, NULL),
                  -EINVAL);
    mp_assert_int(mp_pool_map(p, m_item, in, 4, sizeof in[0], NULL, sizeof out[0], NULL, NULL),
                  -EINVAL);
    mp_assert_int(mp_pool_map_async(p, NULL, in, 4, sizeof in[0], out, sizeof out[0], NULL, &r),
                  -EINVAL);
    mp_assert_int(mp_pool_map_async(p, m_item, in, 4, 0, out, sizeof out[0], NULL, &r), -EINVAL);
    mp_assert_int(mp_pool_imap(p, NULL, in, 4, sizeof in[0], sizeof out[0], NULL, &it), -EINVAL);
    mp_assert_int(mp_pool_imap(p, m_item, in, 4, 0, sizeof out[0], NULL, &it), -EINVAL);
    mp_assert_int(mp_pool_imap(p, m_item, NULL, 4, sizeof in[0], sizeof out[0], NULL, &it),
                  -EINVAL);
    mp_assert_int(mp_pool_imap_unordered(p, NULL, in, 4, sizeof in[0], sizeof out[0], NULL, &it),
                  -EINVAL);
    mp_assert_int(mp_pool_imap_unordered(p, m_item, in, 4, 0, sizeof out[0], NULL, &it),
                  -EINVAL);
    mp_assert_int(mp_pool_close(NULL), -EINVAL);
    mp_assert_int(mp_pool_terminate(NULL), -EINVAL);
    mp_assert_int(mp_pool_join(NULL, 0), -EINVAL);
    mp_assert_int(mp_pool_apply(NULL, t_task, &a, sizeof a, NULL, 0, NULL), -EINVAL);
    mp_assert_int(mp_pool_apply_async(NULL, t_task, &a, sizeof a, NULL, &r), -EINVAL);
    mp_pool_free(NULL);
    mp_async_free(NULL);
    mp_imap_free(NULL);

    /* Still usable. */
    char buf[4];
    size_t len = 0;
    mp_assert_int(mp_pool_apply(p, t_task, &a, sizeof a, buf, sizeof buf, &len), 0);
    check_bytes(buf, len, 4, 1, "apply after bad calls");
    pool_end(p);
}
BOTH(bad_args)

/* After close, every submission is MP_ECLOSED (apply, apply_async, map,
 * map_async, imap, imap_unordered), before and after join; after
 * terminate too, and close of a terminated pool is MP_ECLOSED. */
static void closed_pool(int th)
{
    targ_t a = ta(NULL, A_NONE, 0, 1, 4);
    item_t in[4];
    res_t out[4];
    memset(in, 0, sizeof in);
    for (int how = 0; how < 2; how++) {
        mp_pool_t *p = pool_make(th, NW, NULL);
        if (how == 0)
            mp_assert_int(mp_pool_close(p), 0);
        else
            mp_assert_int(mp_pool_terminate(p), 0);
        for (int joined = 0; joined < 2; joined++) {
            mp_async_t *r = NULL;
            mp_imap_t *it = NULL;
            mp_assert_int(mp_pool_apply(p, t_task, &a, sizeof a, NULL, 0, NULL), MP_ECLOSED);
            mp_assert_int(mp_pool_apply_async(p, t_task, &a, sizeof a, NULL, &r), MP_ECLOSED);
            mp_assert_int(
                mp_pool_map(p, m_item, in, 4, sizeof in[0], out, sizeof out[0], NULL, NULL),
                MP_ECLOSED);
            mp_assert_int(
                mp_pool_map_async(p, m_item, in, 4, sizeof in[0], out, sizeof out[0], NULL, &r),
                MP_ECLOSED);
            mp_assert_int(mp_pool_imap(p, m_item, in, 4, sizeof in[0], sizeof out[0], NULL, &it),
                          MP_ECLOSED);
            mp_assert_int(
                mp_pool_imap_unordered(p, m_item, in, 4, sizeof in[0], sizeof out[0], NULL, &it),
                MP_ECLOSED);
            if (how == 1)
                mp_assert_int(mp_pool_close(p), MP_ECLOSED);
            if (!joined)
                mp_assert_int(mp_pool_join(p, MP_TEST_LONG), 0);
        }
        mp_pool_free(p);
    }
}
BOTH(closed_pool)

/* join of a running pool is MP_ERUNNING. close lets the queued tasks run:
 * with both workers held and 20 tasks queued, join(0.3) times out after
 * about that long; once released, join returns and every task succeeded. */
static void join_running(int th)
{
    board_t *b = board_new();
    mp_pool_t *p = pool_make(th, NW, NULL);
    mp_assert_int(mp_pool_join(p, 0), MP_ERUNNING);
    mp_assert_int(mp_pool_join(p, MP_TEST_LONG), MP_ERUNNING);
    enum { N = 20 };
    mp_async_t *r[N];
    for (int i = 0; i < N; i++) {
        targ_t a = ta_gated(b, A_NONE, 900 + (uint64_t)i, 32);
        r[i] = async_task(p, &a, NULL);
    }
    mp_test_wait_word(&b->started, NW, "both workers held");
    mp_assert_int(mp_pool_close(p), 0);
    double t0 = mp_test_now();
    mp_assert_int(mp_pool_join(p, 0.3), -ETIMEDOUT);
    mp_test_check_timed(mp_test_now() - t0, 0.3, "join(0.3) of a closed, busy pool");
    mp_assert_int(mp_pool_join(p, 0), -ETIMEDOUT);
    mp_test_word_store(&b->gate, 1);
    mp_assert_int(mp_pool_join(p, MP_TEST_LONG), 0);
    mp_assert_int(mp_pool_join(p, 0), 0);
    for (int i = 0; i < N; i++) {
        const void *data = NULL;
        size_t len = 0;
        mp_assert_int(mp_async_get(r[i], 0, &data, &len), 0);
        check_bytes(data, len, 32, 900 + (uint64_t)i, "a task queued before close");
        mp_async_free(r[i]);
    }
    mp_assert_int(b->started, N);
    mp_pool_free(p);
    mp__arena_free(b);
}
BOTH(join_running)

/* ---- workers: pids, initializer, maxtasksperchild ---------------------------------- */

static int pid_in(const pid_t *v, int n, pid_t x)
{
    for (int i = 0; i < n; i++)
        if (v[i] == x)
            return 1;
    return 0;
}

/* mp_pool_size is the number of workers; mp_pool_worker_pids gives them
 * (processes other than this one; for a ThreadPool the threads of this
 * process), and they are the ones that run the tasks. The initializer ran
 * once in each worker, with a copy of initarg, before its first task. */
static void workers_and_initializer(int th)
{
    board_t *b = board_new();
    iarg_t ia = {b, 4242, 0};
    mp_pool_opts_t po;
    memset(&po, 0, sizeof po);
    po.initializer = i_init;
    po.initarg = &ia;
    po.initarg_len = sizeof ia;
    mp_pool_t *p = pool_make(th, NW, &po);
    ia.v = -5; /* initarg was copied */
    mp_assert_int(mp_pool_size(p), NW);

    /* One held task per worker: both workers are known to be running. */
    mp_async_t *held[NW];
    for (int i = 0; i < NW; i++) {
        targ_t a = ta_gated(b, A_PID, 0, 0);
        held[i] = async_task(p, &a, NULL);
    }
    mp_test_wait_word(&b->started, NW, "both workers held");
    pid_t pids[8];
    memset(pids, 0, sizeof pids);
    mp_assert_int(mp_pool_worker_pids(p, pids, 8), NW);
    pid_t one[1] = {0};
    mp_assert_int(mp_pool_worker_pids(p, one, 1), NW);
    if (!pid_in(pids, NW, one[0]))
        mp_test_fail("worker_pids with cap 1 gave %d, not one of the workers\n", (int)one[0]);
    for (int i = 0; i < NW; i++) {
        if (pids[i] <= 0 || pid_in(pids, i, pids[i]))
            mp_test_fail("worker_pids gave %d at %d (all: %d %d)\n", (int)pids[i], i,
                         (int)pids[0], (int)pids[1]);
        if (!th && pids[i] == getpid())
            mp_test_fail("a worker process has our pid\n");
    }
    mp_test_word_store(&b->gate, 1);
    pid_t seen[NW];
    for (int i = 0; i < NW; i++) {
        const void *data = NULL;
        size_t len = 0;
        mp_assert_int(mp_async_get(held[i], MP_TEST_LONG, &data, &len), 0);
        mp_assert_int(len, sizeof(pidrep_t));
        pidrep_t r;
        memcpy(&r, data, sizeof r);
        seen[i] = th ? r.tid : r.pid;
        mp_async_free(held[i]);
    }
    if (seen[0] == seen[1] || !pid_in(pids, NW, seen[0]) || !pid_in(pids, NW, seen[1]))
        mp_test_fail("the held tasks ran in %d and %d; the workers are %d and %d\n",
                     (int)seen[0], (int)seen[1], (int)pids[0], (int)pids[1]);

    for (int i = 0; i < 40; i++) {
        pidrep_t r = apply_pid(p, b);
        pid_t w = th ? r.tid : r.pid;
        if (!pid_in(pids, NW, w))
            mp_test_fail("task %d ran in %d, not a worker (%d %d)\n", i, (int)w, (int)pids[0],
                         (int)pids[1]);
        if (th ? r.pid != getpid() : r.pid == getpid())
            mp_test_fail("task %d ran in process %d (we are %d)\n", i, r.pid, (int)getpid());
        if (r.init_val != 4242 || r.init_calls != 1)
            mp_test_fail("task %d: the initializer left %d and ran %d times in its worker, "
                         "expected 4242 and once\n", i, r.init_val, r.init_calls);
    }
    pool_end(p);
    mp_assert_int(b->inits, NW);
    mp__arena_free(b);
}
BOTH(workers_and_initializer)

/* maxtasksperchild 1: every task runs in a new worker process (10 tasks,
 * 10 pids, none ours); the initializer ran once in each. */
static void maxtasks_one(void **state)
{
    board_t *b = board_new();
    iarg_t ia = {b, 77, 0};
    mp_pool_opts_t po;
    memset(&po, 0, sizeof po);
    po.maxtasksperchild = 1;
    po.initializer = i_init;
    po.initarg = &ia;
    po.initarg_len = sizeof ia;
    mp_pool_t *p = pool_make(0, NW, &po);
    enum { N = 10 };
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        pidrep_t r = apply_pid(p, b);
        pids[i] = r.pid;
        if (r.pid == getpid() || pid_in(pids, i, r.pid))
            mp_test_fail("with maxtasksperchild 1, task %d ran in %d, a worker seen before "
                         "(or us)\n", i, r.pid);
        if (r.init_val != 77 || r.init_calls != 1)
            mp_test_fail("task %d: the initializer left %d and ran %d times in its worker\n", i,
                         r.init_val, r.init_calls);
    }
    pool_end(p);
    if (b->inits < N)
        mp_test_fail("the initializer ran %u times for %d workers\n", b->inits, N);
    mp__arena_free(b);
}

/* maxtasksperchild 2: 30 tasks at once; no worker runs more than 2, so at
 * least 15 distinct workers; each ran the initializer once. */
static void maxtasks_two(void **state)
{
    board_t *b = board_new();
    iarg_t ia = {b, 78, 0};
    mp_pool_opts_t po;
    memset(&po, 0, sizeof po);
    po.maxtasksperchild = 2;
    po.initializer = i_init;
    po.initarg = &ia;
    po.initarg_len = sizeof ia;
    mp_pool_t *p = pool_make(0, NW, &po);
    enum { N = 30 };
    mp_async_t *r[N];
    for (int i = 0; i < N; i++) {
        targ_t a = ta(b, A_PID, 0, 0, 0);
        r[i] = async_task(p, &a, NULL);
    }
    pid_t pids[N];
    int count[N];
    int distinct = 0;
    for (int i = 0; i < N; i++) {
        const void *data = NULL;
        size_t len = 0;
        mp_assert_int(mp_async_get(r[i], MP_TEST_LONG, &data, &len), 0);
        mp_assert_int(len, sizeof(pidrep_t));
        pidrep_t pr;
        memcpy(&pr, data, sizeof pr);
        mp_async_free(r[i]);
        if (pr.init_val != 78 || pr.init_calls != 1)
            mp_test_fail("task %d: the initializer left %d and ran %d times in its worker\n", i,
                         pr.init_val, pr.init_calls);
        int k = 0;
        while (k < distinct && pids[k] != pr.pid)
            k++;
        if (k == distinct) {
            pids[distinct] = pr.pid;
            count[distinct++] = 0;
        }
        if (++count[k] > 2)
            mp_test_fail("with maxtasksperchild 2, worker %d ran %d tasks\n", pr.pid, count[k]);
    }
    if (distinct < N / 2)
        mp_test_fail("30 tasks ran in %d workers\n", distinct);
    pool_end(p);
    mp__arena_free(b);
}

/* ---- terminate and free -------------------------------------------------------------- */

#define NPEND 10000

/* terminate with both workers held and 10,000 tasks queued (and a map)
 * returns promptly; every result fails with MP_ETERMINATED (those of the
 * killed workers too) and its error callback runs; no queued task starts;
 * join returns and the worker processes are gone. */
static void terminate_pending(void **state)
{
    board_t *b = board_new();
    mp_pool_t *p = pool_make(0, NW, NULL);
    static cbctx_t c;
    static cbuser_t u;
    cbctx_init(&c);
    u = (cbuser_t){&c, -1, MP_ETERMINATED, 0, 0};
    mp_async_opts_t o = cb_opts(&u);
    static mp_async_t *r[NPEND + NW];
    for (int i = 0; i < NPEND + NW; i++) {
        targ_t a = ta_gated(b, A_NONE, (uint64_t)i, 8);
        r[i] = async_task(p, &a, &o);
    }
    enum { N = 50 };
    item_t *in = items_new(N, b);
    res_t *out = res_new(N);
    mp_async_t *mr = NULL;
    mp_assert_int(mp_pool_map_async(p, m_item, in, N, sizeof *in, out, sizeof *out, NULL, &mr), 0);
    mp_test_wait_word(&b->started, NW, "both workers held");
    pid_t pids[NW];
    mp_assert_int(mp_pool_worker_pids(p, pids, NW), NW);

    double t0 = mp_test_now();
    mp_assert_int(mp_pool_terminate(p), 0);
    mp_test_check_quick(mp_test_now() - t0, "terminate with 10,000 tasks queued");
    mp_assert_int(mp_pool_join(p, MP_TEST_LONG), 0);
    for (int i = 0; i < NW; i++)
        if (mp_test_wait_gone(pids[i], 0) != 0)
            mp_test_fail("worker %d still runs after terminate and join\n", (int)pids[i]);
    mp_test_check_quick(mp_test_now() - t0, "terminate and join with 10,000 tasks queued");
    for (int i = 0; i < NPEND + NW; i++) {
        int rc = mp_async_get(r[i], MP_TEST_LONG, NULL, NULL);
        if (rc != MP_ETERMINATED)
            mp_test_fail("task %d: get gave %d (%s) after terminate\n", i, rc, mp_strerror(rc));
        mp_async_free(r[i]);
    }
    mp_assert_int(mp_async_get(mr, MP_TEST_LONG, NULL, NULL), MP_ETERMINATED);
    mp_async_free(mr);
    mp_test_wait_word(&c.err, NPEND + NW, "the error callbacks");
    cb_check(&c);
    mp_assert_int(c.ok, 0);
    mp_assert_int(b->started, NW);
    mp_assert_int(b->ran, NW);
    mp_pool_free(p);
    free(in);
    free(out);
    mp__arena_free(b);
}

/* ThreadPool terminate: threads cannot be killed; they finish the task in
 * hand. With both threads holding a task and 10,000 tasks queued, the
 * queued tasks fail with MP_ETERMINATED at once (their error callbacks run
 * while the tasks in hand are still held: a helper thread opens the gate only
 * then) and none of them starts; terminate returns once the tasks in hand
 * are released, if not before (Python's ThreadPool.terminate waits for its
 * threads: the header allows both); the two in hand end either way (the
 * header does not say; Python never delivers them). */
typedef struct {
    uint32_t ok, err, bad; /* callbacks; bad: an error callback with another code */
    int32_t bad_code;
    board_t *b;
    uint32_t want;         /* error callbacks to wait for before opening */
    int timed_out;         /* they did not all come within MP_TEST_LONG */
    double t_open;
} tterm_t;

static void tt_ok(mp_async_t *r, void *user)
{
    tterm_t *t = user;
    mp_test_word_inc(&t->ok);
}

static void tt_err(mp_async_t *r, int err, void *user)
{
    tterm_t *t = user;
    if (err != MP_ETERMINATED && __atomic_add_fetch(&t->bad, 1, __ATOMIC_SEQ_CST) == 1)
        t->bad_code = err;
    mp_test_word_inc(&t->err);
}

static void *tt_opener(void *arg)
{
    tterm_t *t = arg;
    if (mp_test_word_wait(&t->err, t->want, MP_TEST_LONG) != 0)
        t->timed_out = 1;
    t->t_open = mp_test_now();
    mp_test_word_store(&t->b->gate, 1);
    return NULL;
}

static void terminate_pending_threads(void **state)
{
    board_t *b = board_new();
    mp_pool_t *p = pool_make(1, NW, NULL);
    static tterm_t t;
    memset(&t, 0, sizeof t);
    t.b = b;
    t.want = NPEND;
    mp_async_opts_t o = {tt_ok, tt_err, &t};
    static mp_async_t *r[NPEND + NW];
    for (int i = 0; i < NPEND + NW; i++) {
        targ_t a = ta_gated(b, A_NONE, (uint64_t)i, 8);
        r[i] = async_task(p, &a, &o);
    }
    mp_test_wait_word(&b->started, NW, "both workers held");
    pthread_t opener;
    assert_int_equal(pthread_create(&opener, NULL, tt_opener, &t), 0);
    double t0 = mp_test_now();
    mp_assert_int(mp_pool_terminate(p), 0);
    double t_ret = mp_test_now();
    assert_int_equal(pthread_join(opener, NULL), 0);
    if (t.timed_out)
        mp_test_fail("terminate of a ThreadPool: %u of the %d queued tasks had failed after "
                     "%.0f s while the threads held their tasks; they must fail at once\n",
                     t.err, NPEND, MP_TEST_LONG);
    if (t_ret > t.t_open)
        mp_test_check_prompt(t_ret, t.t_open, "terminate of a ThreadPool");
    else
        mp_test_check_quick(t_ret - t0, "terminate of a ThreadPool");
    mp_assert_int(mp_pool_join(p, MP_TEST_LONG), 0);
    int term = 0, ok = 0;
    for (int i = 0; i < NPEND + NW; i++) {
        int rc = mp_async_get(r[i], MP_TEST_LONG, NULL, NULL);
        if (rc == MP_ETERMINATED)
            term++;
        else if (rc == 0)
            ok++;
        else
            mp_test_fail("task %d: get gave %d (%s) after terminate\n", i, rc, mp_strerror(rc));
        mp_async_free(r[i]);
    }
    if (term < NPEND || ok > NW)
        mp_test_fail("after terminate: %d tasks failed with MP_ETERMINATED, %d succeeded; "
                     "expected every queued one (%d) to fail\n", term, ok, NPEND);
    if (t.bad)
        mp_test_fail("an error callback got %d (%s), not MP_ETERMINATED\n", t.bad_code,
                     mp_strerror(t.bad_code));
    /* Every result's callback has run by join (as callbacks_all_run_by_join). */
    mp_assert_int(t.err, term);
    mp_assert_int(t.ok, ok);
    mp_assert_int(b->started, NW);
    mp_pool_free(p);
    mp__arena_free(b);
}

/* mp_pool_free of a running pool, with both workers held and 500 tasks
 * queued: it terminates the pool (the harness sees no worker left), and
 * the results already handed out stay readable: MP_ETERMINATED. */
static void free_running_pool(void **state)
{
    board_t *b = board_new();
    mp_pool_t *p = pool_make(0, NW, NULL);
    enum { N = 500 };
    mp_async_t *r[N];
    for (int i = 0; i < N; i++) {
        targ_t a = ta_gated(b, A_NONE, (uint64_t)i, 8);
        r[i] = async_task(p, &a, NULL);
    }
    mp_test_wait_word(&b->started, NW, "both workers held");
    pid_t pids[NW];
    mp_assert_int(mp_pool_worker_pids(p, pids, NW), NW);
    double t0 = mp_test_now();
    mp_pool_free(p);
    mp_test_check_quick(mp_test_now() - t0, "mp_pool_free of a busy pool");
    for (int i = 0; i < NW; i++)
        if (mp_test_wait_gone(pids[i], 0) != 0)
            mp_test_fail("worker %d still runs after mp_pool_free\n", (int)pids[i]);
    for (int i = 0; i < N; i++) {
        mp_assert_int(mp_async_get(r[i], 0, NULL, NULL), MP_ETERMINATED);
        mp_async_free(r[i]);
    }
    mp__arena_free(b);
}

/* mp_pool_free of a running ThreadPool with 2,000 quick tasks queued: it
 * returns, and every result handed out is either done or MP_ETERMINATED. */
static void free_running_pool_threads(void **state)
{
    board_t *b = board_new();
    b->gate = 1;
    mp_pool_t *p = pool_make(1, NW, NULL);
    enum { N = 2000 };
    static mp_async_t *r[N];
    for (int i = 0; i < N; i++) {
        targ_t a = ta(b, A_NONE, 0, (uint64_t)i, 8);
        r[i] = async_task(p, &a, NULL);
    }
    mp_pool_free(p);
    for (int i = 0; i < N; i++) {
        const void *data = NULL;
        size_t len = 0;
        int rc = mp_async_get(r[i], 0, &data, &len);
        if (rc == 0)
            check_bytes(data, len, 8, (uint64_t)i, "a task done before mp_pool_free");
        else if (rc != MP_ETERMINATED)
            mp_test_fail("task %d: get gave %d (%s) after mp_pool_free\n", i, rc,
                         mp_strerror(rc));
        mp_async_free(r[i]);
    }
    mp__arena_free(b);
}

/* ---- workers that die ---------------------------------------------------------------- */

#define NDIE 1000
#define DIE_AT 500

/* wait_replaced waits (polling, MP_TEST_LONG) until the pool has NW live
 * workers again, none of them the dead one. */
static void wait_replaced(mp_pool_t *p, pid_t dead)
{
    double end = mp_test_now() + MP_TEST_LONG;
    pid_t pids[NW] = {0};
    for (;;) {
        int n = mp_pool_worker_pids(p, pids, NW);
        int live = 0;
        for (int i = 0; i < n && i < NW; i++)
            live += pids[i] > 0 && pids[i] != dead;
        if (n == NW && live == NW)
            return;
        if (mp_test_now() > end)
            mp_test_fail("the dead worker %d was not replaced (worker_pids gave %d: %d %d)\n",
                         (int)dead, n, (int)pids[0], (int)pids[1]);
        mp_test_sleep(0.01);
    }
}

/* 1,000 tasks, task 500 kills its own worker (act): 999 results are right,
 * exactly task 500 fails with MP_EWORKERDIED; its callback is the error
 * callback; the worker is replaced and the pool goes on (apply and map). */
static void worker_death(int act)
{
    board_t *b = board_new();
    mp_pool_t *p = pool_make(0, NW, NULL);
    static cbctx_t c;
    static cbuser_t u[NDIE];
    static mp_async_t *r[NDIE];
    cbctx_init(&c);
    for (int i = 0; i < NDIE; i++) {
        u[i] = (cbuser_t){&c, i, i == DIE_AT ? MP_EWORKERDIED : 0, 70000 + (uint64_t)i, 24};
        targ_t a = ta(b, i == DIE_AT ? act : A_NONE, 0, u[i].key, u[i].len);
        mp_async_opts_t o = cb_opts(&u[i]);
        r[i] = async_task(p, &a, &o);
    }
    int died = 0;
    for (int i = 0; i < NDIE; i++) {
        const void *data = NULL;
        size_t len = 0;
        int rc = mp_async_get(r[i], MP_TEST_LONG, &data, &len);
        if (rc == MP_EWORKERDIED && i == DIE_AT)
            died++;
        else if (rc != 0 || i == DIE_AT)
            mp_test_fail("task %d of %d (task %d kills its worker): get gave %d (%s)\n", i,
                         NDIE, DIE_AT, rc, mp_strerror(rc));
        else
            check_bytes(data, len, u[i].len, u[i].key, "a task beside the dying one");
    }
    mp_assert_int(died, 1);
    mp_test_wait_word(&c.ok, NDIE - 1, "the callbacks");
    mp_test_wait_word(&c.err, 1, "the error callback of the dead task");
    cb_check(&c);
    pid_t dead = (pid_t)b->died_pid;
    if (dead <= 0 || dead == getpid())
        mp_test_fail("the dying task recorded pid %d\n", (int)dead);
    if (mp_test_wait_gone(dead, MP_TEST_LONG) != 0)
        mp_test_fail("the worker %d that should have died still runs\n", (int)dead);

    /* The pool goes on. */
    targ_t a = ta(b, A_NONE, 0, 11, 16);
    unsigned char buf[16];
    size_t len = 0;
    mp_assert_int(mp_pool_apply(p, t_task, &a, sizeof a, buf, sizeof buf, &len), 0);
    check_bytes(buf, len, 16, 11, "apply after a worker died");
    wait_replaced(p, dead);
    enum { N = 40 };
    item_t *in = items_new(N, b);
    res_t *out = res_new(N);
    mp_assert_int(mp_pool_map(p, m_item, in, N, sizeof *in, out, sizeof *out, NULL, NULL), 0);
    for (size_t i = 0; i < N; i++)
        check_res(&in[i], &out[i], i, "map after a worker died");
    free(in);
    free(out);
    pool_end(p);
    for (int i = 0; i < NDIE; i++)
        mp_async_free(r[i]);
    mp__arena_free(b);
}

static void worker_sigkill(void **state) { worker_death(A_KILL); }
static void worker_segfault(void **state) { worker_death(A_SEGV); }
static void worker_exit(void **state) { worker_death(A_EXIT); }

/* A map of 100 items, chunksize 10, where item 37 kills its worker: the
 * items of its chunk (30..39) fail with MP_EWORKERDIED in item_rc, map
 * returns MP_EWORKERDIED with index 30, every other item is right. The
 * same with the default chunksize and a segfault: only the dying item's
 * chunk fails, which (Python's default chunksize, 13 here) is 26..38. */
static void map_worker_death(void **state)
{
    board_t *b = board_new();
    mp_pool_t *p = pool_make(0, NW, NULL);
    enum { N = 100, DIE = 37 };
    item_t *in = items_new(N, b);
    in[DIE].act = A_KILL;
    res_t *out = res_new(N);
    int rc_items[N];
    memset(rc_items, 0x55, sizeof rc_items);
    mp_map_opts_t o = map_opts(10);
    o.item_rc = rc_items;
    size_t failed = 0;
    mp_assert_int(mp_pool_map(p, m_item, in, N, sizeof *in, out, sizeof *out, &o, &failed),
                  MP_EWORKERDIED);
    mp_assert_int(failed, 30);
    for (size_t i = 0; i < N; i++) {
        int want = i / 10 == DIE / 10 ? MP_EWORKERDIED : 0;
        if (rc_items[i] != want)
            mp_test_fail("map, chunksize 10, item %d kills its worker: item_rc[%zu] is %d "
                         "(%s), expected %d (%s)\n", DIE, i, rc_items[i],
                         mp_strerror(rc_items[i]), want, mp_strerror(want));
        if (want == 0)
            check_res(&in[i], &out[i], i, "map beside the dying chunk");
    }

    /* The default chunksize: the failing items are one run holding 37. */
    in[DIE].act = A_SEGV;
    free(out);
    out = res_new(N);
    memset(rc_items, 0x55, sizeof rc_items);
    o = map_opts(0);
    o.item_rc = rc_items;
    mp_assert_int(mp_pool_map(p, m_item, in, N, sizeof *in, out, sizeof *out, &o, &failed),
                  MP_EWORKERDIED);
    size_t lo = N, hi = 0;
    for (size_t i = 0; i < N; i++) {
        if (rc_items[i] == MP_EWORKERDIED) {
            lo = i < lo ? i : lo;
            hi = i;
        } else if (rc_items[i] != 0) {
            mp_test_fail("map, default chunksize: item_rc[%zu] is %d (%s)\n", i, rc_items[i],
                         mp_strerror(rc_items[i]));
        } else {
            check_res(&in[i], &out[i], i, "map beside the dying chunk (default chunksize)");
        }
    }
    /* Python's default: ceil(100 / (4 * 2)) = 13 items per chunk, so item
     * 37 is in the chunk of items 26..38. */
    if (lo != 26 || hi != 38 || failed != 26)
        mp_test_fail("map, default chunksize: items %zu..%zu died (failed %zu); item %d "
                     "killed its worker, whose chunk is 26..38\n", lo, hi, failed, DIE);
    for (size_t i = lo; i <= hi; i++)
        if (rc_items[i] != MP_EWORKERDIED)
            mp_test_fail("map, default chunksize: the dead items are not one chunk (%zu)\n", i);
    free(out);
    free(in);
    pool_end(p);
    mp__arena_free(b);
}

/* imap (chunksize 1) and imap_unordered where item 13 of 40 segfaults its
 * worker: next gives MP_EWORKERDIED with index 13, every other item its
 * result, then MP_EEOF. */
static void imap_worker_death(void **state)
{
    enum { N = 40, DIE = 13 };
    for (int unordered = 0; unordered < 2; unordered++) {
        board_t *b = board_new();
        mp_pool_t *p = pool_make(0, NW, NULL);
        item_t *in = items_new(N, b);
        in[DIE].act = unordered ? A_EXIT : A_SEGV;
        mp_imap_t *it = NULL;
        if (unordered)
            mp_assert_int(mp_pool_imap_unordered(p, m_item, in, N, sizeof *in, sizeof(res_t),
                                                 NULL, &it),
                          0);
        else
            mp_assert_int(mp_pool_imap(p, m_item, in, N, sizeof *in, sizeof(res_t), NULL, &it),
                          0);
        unsigned char seen[N];
        memset(seen, 0, sizeof seen);
        for (size_t i = 0; i < N; i++) {
            res_t r;
            size_t idx = 999;
            int rc = mp_imap_next(it, MP_TEST_LONG, &r, &idx);
            if (idx >= N || seen[idx]++ || (!unordered && idx != i))
                mp_test_fail("imap%s: next %zu gave index %zu\n", unordered ? "_unordered" : "",
                             i, idx);
            if (rc != (idx == DIE ? MP_EWORKERDIED : 0))
                mp_test_fail("imap%s: item %zu gave %d (%s)\n", unordered ? "_unordered" : "",
                             idx, rc, mp_strerror(rc));
            if (rc == 0)
                check_res(&in[idx], &r, idx, "imap beside the dying item");
        }
        mp_assert_int(mp_imap_next(it, MP_TEST_LONG, NULL, NULL), MP_EEOF);
        mp_imap_free(it);
        free(in);
        pool_end(p);
        mp__arena_free(b);
    }
}

int main(int argc, char **argv)
{
    static const mp_test_case_t cases[] = {
        MP_TEST(apply_result_bytes_processes),
        MP_TEST(apply_result_bytes_threads),
        MP_TEST(apply_task_code_processes),
        MP_TEST(apply_task_code_threads),
        MP_TEST(apply_async_callbacks_processes),
        MP_TEST(apply_async_callbacks_threads),
        MP_TEST(callbacks_all_run_by_join_processes),
        MP_TEST(callbacks_all_run_by_join_threads),
        MP_TEST(get_timeout_ready_successful_processes),
        MP_TEST(get_timeout_ready_successful_threads),
        MP_TEST(free_running_result_processes),
        MP_TEST(free_running_result_threads),
        MP_TEST(map_chunksizes_processes),
        MP_TEST(map_chunksizes_threads),
        MP_TEST(map_odd_sizes_processes),
        MP_TEST(map_odd_sizes_threads),
        MP_TEST(map_zero_items_processes),
        MP_TEST(map_zero_items_threads),
        MP_TEST(map_failing_items_processes),
        MP_TEST(map_failing_items_threads),
        MP_TEST(map_async_callbacks_processes),
        MP_TEST(map_async_callbacks_threads),
        MP_TEST(map_progress_processes),
        MP_TEST(map_progress_threads),
        MP_TEST(imap_order_eof_processes),
        MP_TEST(imap_order_eof_threads),
        MP_TEST(imap_unordered_set_processes),
        MP_TEST(imap_unordered_set_threads),
        MP_TEST(imap_next_timeout_processes),
        MP_TEST(imap_next_timeout_threads),
        MP_TEST(imap_failing_item_processes),
        MP_TEST(imap_failing_item_threads),
        MP_TEST(bad_args_processes),
        MP_TEST(bad_args_threads),
        MP_TEST(closed_pool_processes),
        MP_TEST(closed_pool_threads),
        MP_TEST(join_running_processes),
        MP_TEST(join_running_threads),
        MP_TEST(workers_and_initializer_processes),
        MP_TEST(workers_and_initializer_threads),
        MP_TEST(maxtasks_one),
        MP_TEST(maxtasks_two),
        MP_TEST(terminate_pending),
        MP_TEST(terminate_pending_threads),
        MP_TEST(free_running_pool),
        MP_TEST(free_running_pool_threads),
        MP_TEST(worker_sigkill),
        MP_TEST(worker_segfault),
        MP_TEST(worker_exit),
        MP_TEST(map_worker_death),
        MP_TEST(imap_worker_death),
    };
    static const mp_test_config_t cfg = {
        .per_method = 1,
        .warmup = warm_pool,
    };
    return mp_test_main(argc, argv, cases, sizeof cases / sizeof cases[0], &cfg);
}

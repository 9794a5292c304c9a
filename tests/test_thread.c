/* test_thread.c: threads (Python's threading.Thread, current_thread,
 * main_thread, active_count, enumerate, get_ident, Timer) and the exit
 * semantics of threads.
 *
 * Threads report through a board in process memory (their targets never
 * call cmocka: its assertions only work in the case's own thread) and are
 * held alive or released with futex words of the board. The only timeouts
 * are generous bounds (MP_TEST_LONG) or the behaviour under test, measured
 * with margins. The exit semantics run in a helper program (this binary
 * re-executed with --helper), whose main returns or calls exit while a
 * non-daemon thread still runs.
 * mp-test: timeout=600 */
#include "mp_test.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "sys/platform.h"

#define SLOTS 128
#define NAMECAP (MP_NAME_MAX + 8)

typedef struct {
    uint32_t go, ready, done, never;
    int32_t rc[SLOTS], rc2[SLOTS], rc3[SLOTS];
    unsigned long ident[SLOTS], pself[SLOTS];
    pid_t native[SLOTS], tid[SLOTS];
    mp_thread_t *cur[SLOTS], *cur2[SLOTS];
    int32_t daemon[SLOTS];
    int32_t count[SLOTS];
    char name[SLOTS][NAMECAP];
    char comm[SLOTS][32];
    double at[SLOTS];
    int n;          /* the seed's shared counter */
    mp_lock_t *lock;
} board_t;

typedef struct {
    board_t *b;
    int id;
    int mode;
    int ret;
} targ_t;

static board_t B;
static targ_t A[SLOTS];

/* targ returns the argument block of slot i. */
static targ_t *targ(int i, int ret)
{
    A[i].b = &B;
    A[i].id = i;
    A[i].ret = ret;
    return &A[i];
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "(null)");
}

#define CHILD_LONG (60.0 * mp_test_scale())

/* ---- targets ------------------------------------------------------------ */

static int t_ret(void *arg) { return ((targ_t *)arg)->ret; }

/* t_record notes what the thread sees of itself, reports ready, waits for
 * go (mode 1) and returns its ret. */
static int t_record(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    int i = a->id;
    mp_thread_t *cur = mp_current_thread();
    b->cur[i] = cur;
    b->cur2[i] = mp_current_thread();
    b->ident[i] = mp_get_ident();
    b->pself[i] = (unsigned long)pthread_self();
    b->native[i] = mp_get_native_id();
    b->tid[i] = mp_test_tid();
    b->daemon[i] = cur ? mp_thread_daemon(cur) : -100;
    b->rc[i] = cur ? mp_thread_is_alive(cur) : -100;
    copy_str(b->name[i], sizeof b->name[i], cur ? mp_thread_name(cur) : NULL);
    b->count[i] = mp_active_count();
    mp_test_word_inc(&b->ready);
    if (a->mode == 1 && mp_test_word_wait(&b->go, 1, CHILD_LONG) != 0)
        return -1;
    return a->ret;
}

/* t_join_self: a thread joining itself gets -EDEADLK at once. */
static int t_join_self(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    double t0 = mp_test_now();
    b->rc[a->id] = mp_thread_join(mp_current_thread(), 0);
    b->rc2[a->id] = mp_thread_join(mp_current_thread(), 0.5);
    b->at[a->id] = mp_test_now() - t0;
    return 0;
}

/* t_make_children: a thread that makes threads: their daemon flags by
 * default, with daemon < 0 and with daemon > 0; the default one is started
 * and makes one more (inheritance goes on). */
static int t_grandchild(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    mp_thread_t *g = NULL;
    if (mp_thread_new(&g, t_ret, targ(a->id + 10, 0), NULL) != 0)
        return 61;
    b->daemon[a->id + 10] = mp_thread_daemon(g);
    mp_thread_free(g);
    return 0;
}

static int t_make_children(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    int i = a->id;
    mp_thread_opts_t non = {.daemon = -1}, yes = {.daemon = 1};
    mp_thread_t *c1 = NULL, *c2 = NULL, *c3 = NULL;
    b->rc[i] = -999; /* stays if a thread could not be made */
    if (mp_thread_new(&c1, t_grandchild, targ(i + 1, 0), NULL) != 0 ||
        mp_thread_new(&c2, t_ret, targ(i + 2, 0), &non) != 0 ||
        mp_thread_new(&c3, t_ret, targ(i + 3, 0), &yes) != 0)
        return 60;
    b->daemon[i] = mp_thread_daemon(mp_current_thread());
    b->daemon[i + 1] = mp_thread_daemon(c1);
    b->daemon[i + 2] = mp_thread_daemon(c2);
    b->daemon[i + 3] = mp_thread_daemon(c3);
    int rc = mp_thread_start(c1);
    if (rc == 0)
        rc = mp_thread_join(c1, CHILD_LONG);
    int res = -1;
    if (rc == 0)
        rc = mp_thread_result(c1, &res);
    b->rc[i] = rc;
    b->rc2[i] = res;
    mp_thread_free(c1);
    mp_thread_free(c2);
    mp_thread_free(c3);
    return 0;
}

static void *raw_make_children(void *arg)
{
    t_make_children(arg);
    return NULL;
}

/* raw_dummy: a thread mproc did not create looks at itself. */
static void *raw_dummy(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    int i = a->id;
    mp_thread_t *cur = mp_current_thread();
    b->cur[i] = cur;
    b->cur2[i] = mp_current_thread();
    b->ident[i] = cur ? mp_thread_ident(cur) : 0;
    b->pself[i] = (unsigned long)pthread_self();
    b->native[i] = cur ? mp_thread_native_id(cur) : 0;
    b->tid[i] = mp_test_tid();
    b->daemon[i] = cur ? mp_thread_daemon(cur) : -100;
    b->rc[i] = cur ? mp_thread_is_alive(cur) : -100;
    b->rc2[i] = mp_get_native_id() == mp_test_tid();
    b->rc3[i] = mp_get_ident() == (unsigned long)pthread_self();
    copy_str(b->name[i], sizeof b->name[i], cur ? mp_thread_name(cur) : NULL);
    b->count[i] = mp_active_count();
    mp_thread_t *list[8] = {0};
    int n = mp_enumerate_threads(list, 8);
    int found = 0;
    for (int k = 0; k < n && k < 8; k++)
        found |= list[k] == cur;
    b->at[i] = found;
    mp_thread_free(cur); /* a current_thread handle: not freed */
    copy_str(b->comm[i], sizeof b->comm[i],
             mp_current_thread() == cur ? mp_thread_name(cur) : "(changed)");
    mp_test_word_inc(&b->ready);
    if (a->mode == 1)
        mp_test_word_wait(&b->go, 1, CHILD_LONG);
    return NULL;
}

/* t_seed: the seed's mutex story: read n, pause, write n - 1, under the
 * lock; without the lock the pause loses decrements. */
static int t_seed(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    int rc = mp_lock_acquire(b->lock, CHILD_LONG);
    if (rc != 0)
        return 70;
    int num = b->n;
    mp_test_sleep(0.001);
    b->n = num - 1;
    if (mp_lock_release(b->lock) != 0)
        return 71;
    return 0;
}

/* t_timer_fn: what a Timer runs: notes when, and in which thread. */
static int t_timer_fn(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    b->at[a->id] = mp_test_now();
    b->cur[a->id] = mp_current_thread();
    __atomic_add_fetch(&b->count[a->id], 1, __ATOMIC_SEQ_CST);
    mp_test_word_inc(&b->done);
    return 0;
}

/* ---- helpers for cases -------------------------------------------------- */

static mp_thread_t *th_new(mp_thread_fn fn, void *arg, const mp_thread_opts_t *o)
{
    mp_thread_t *t = NULL;
    int rc = mp_thread_new(&t, fn, arg, o);
    mp_assert_int(rc, 0);
    assert_non_null(t);
    return t;
}

static mp_thread_t *th_start(mp_thread_fn fn, void *arg, const mp_thread_opts_t *o)
{
    mp_thread_t *t = th_new(fn, arg, o);
    mp_assert_int(mp_thread_start(t), 0);
    return t;
}

static void th_join(mp_thread_t *t)
{
    int rc = mp_thread_join(t, MP_TEST_LONG);
    if (rc != 0)
        mp_test_fail("join of %s: %d (%s)\n", mp_thread_name(t), rc,
                     mp_strerror(rc));
}

static int parse_n(const char *name, const char *prefix)
{
    int n = -1, end = 0;
    char fmt[32];
    snprintf(fmt, sizeof fmt, "%s%%d%%n", prefix);
    if (name && sscanf(name, fmt, &n, &end) == 1 && name[end] == 0 && n > 0)
        return n;
    return -1;
}

/* read_comm reads /proc/self/task/<tid>/comm without the newline. */
static void read_comm(pid_t tid, char *out, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/comm", (int)tid);
    FILE *f = fopen(path, "re");
    out[0] = 0;
    if (!f)
        return;
    if (fgets(out, (int)cap, f)) {
        size_t l = strlen(out);
        if (l && out[l - 1] == '\n')
            out[l - 1] = 0;
    }
    fclose(f);
}

/* Task ids of this process, for finding a thread the library starts. */
typedef struct {
    int n;
    pid_t tid[256];
} tasks_t;

static void tasks_snap(tasks_t *t)
{
    t->n = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && t->n < 256)
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9')
            t->tid[t->n++] = (pid_t)atoi(e->d_name);
    closedir(d);
}

/* new_task waits until a task not in before exists and returns its id. */
static pid_t new_task(const tasks_t *before)
{
    static tasks_t now;
    double end = mp_test_now() + MP_TEST_LONG;
    while (mp_test_now() < end) {
        tasks_snap(&now);
        for (int i = 0; i < now.n; i++) {
            int known = 0;
            for (int j = 0; j < before->n; j++)
                known |= now.tid[i] == before->tid[j];
            if (!known)
                return now.tid[i];
        }
        mp_test_sleep(0.001);
    }
    mp_test_fail("no new thread appeared\n");
    return 0;
}

/* Warm-up: the thread module's process-wide state (the main thread's
 * handle, the registry, the exit hook) made by one thread's life, and the
 * shared arena (a Lock lives there; the seed's case uses one). */
static int warm_thread(void)
{
    if (!mp_current_thread() || !mp_main_thread())
        return -EINVAL;
    mp_lock_t *l = NULL;
    int lrc = mp_lock_new(&l);
    if (lrc != 0)
        return lrc;
    mp_lock_free(l);
    mp_thread_t *t = NULL;
    static targ_t wa;
    int rc = mp_thread_new(&t, t_ret, &wa, NULL);
    if (rc == 0)
        rc = mp_thread_start(t);
    if (rc == 0)
        rc = mp_thread_join(t, 60.0 * mp_test_scale());
    mp_thread_free(t);
    return rc;
}

/* ---- cases -------------------------------------------------------------- */

/* Names: Thread-N by default, numbered in creation order (a named thread
 * takes no number, as in Python); given names; renaming; bad names. The
 * thread sees its own name. */
static void names(void **state)
{
    mp_thread_t *t1 = th_new(t_record, targ(0, 0), NULL);
    mp_thread_opts_t o = {.name = "worker"};
    mp_thread_t *t2 = th_new(t_record, targ(1, 0), &o);
    mp_thread_t *t3 = th_new(t_record, targ(2, 0), NULL);
    int n1 = parse_n(mp_thread_name(t1), "Thread-");
    int n3 = parse_n(mp_thread_name(t3), "Thread-");
    if (n1 < 1 || n3 < 1)
        mp_test_fail("default names \"%s\", \"%s\": expected Thread-N\n",
                     mp_thread_name(t1), mp_thread_name(t3));
    if (n3 != n1 + 1)
        mp_test_fail("default names \"%s\" then (named \"worker\") \"%s\": "
                     "expected Thread-%d\n", mp_thread_name(t1),
                     mp_thread_name(t3), n1 + 1);
    mp_assert_str(mp_thread_name(t2), "worker");
    char n1s[NAMECAP];
    copy_str(n1s, sizeof n1s, mp_thread_name(t1));

    mp_assert_int(mp_thread_start(t1), 0);
    mp_assert_int(mp_thread_start(t2), 0);
    th_join(t1);
    th_join(t2);
    mp_assert_str(B.name[0], n1s);
    mp_assert_str(B.name[1], "worker");
    mp_assert_str(mp_thread_name(t1), n1s);

    mp_assert_int(mp_thread_set_name(t3, "renamed"), 0);
    mp_assert_str(mp_thread_name(t3), "renamed");
    mp_assert_int(mp_thread_start(t3), 0);
    th_join(t3);
    mp_assert_str(B.name[2], "renamed");
    mp_assert_int(mp_thread_set_name(t3, "after-end"), 0);
    mp_assert_str(mp_thread_name(t3), "after-end");

    static char longname[MP_NAME_MAX + 2];
    memset(longname, 'x', MP_NAME_MAX + 1);
    longname[MP_NAME_MAX + 1] = 0;
    mp_assert_int(mp_thread_set_name(t3, longname), -EINVAL);
    mp_assert_int(mp_thread_set_name(t3, ""), -EINVAL);
    mp_assert_int(mp_thread_set_name(t3, NULL), -EINVAL);
    mp_assert_int(mp_thread_set_name(NULL, "x"), -EINVAL);
    mp_assert_str(mp_thread_name(t3), "after-end");
    mp_thread_t *bad = NULL;
    o.name = longname;
    mp_assert_int(mp_thread_new(&bad, t_ret, NULL, &o), -EINVAL);
    o.name = "";
    mp_assert_int(mp_thread_new(&bad, t_ret, NULL, &o), -EINVAL);
    longname[MP_NAME_MAX] = 0; /* exactly MP_NAME_MAX: fine */
    o.name = longname;
    mp_thread_t *t4 = th_new(t_ret, NULL, &o);
    mp_assert_str(mp_thread_name(t4), longname);
    mp_thread_free(t4);
    mp_thread_free(t1);
    mp_thread_free(t2);
    mp_thread_free(t3);
}

/* ident and native_id: 0 before start; the thread's pthread_t and kernel id
 * after, as it sees them itself; distinct between threads; the main
 * thread's are this thread's. */
static void identity(void **state)
{
    mp_thread_t *t[2];
    for (int i = 0; i < 2; i++) {
        targ_t *a = targ(i, 0);
        a->mode = 1;
        t[i] = th_new(t_record, a, NULL);
        mp_assert_int(mp_thread_ident(t[i]), 0);
        mp_assert_int(mp_thread_native_id(t[i]), 0);
        mp_assert_int(mp_thread_start(t[i]), 0);
    }
    mp_test_wait_word(&B.ready, 2, "threads");
    for (int i = 0; i < 2; i++) {
        assert_true(B.ident[i] != 0);
        mp_assert_int(B.ident[i], B.pself[i]);
        mp_assert_int(mp_thread_ident(t[i]), B.ident[i]);
        mp_assert_int(B.native[i], B.tid[i]);
        mp_assert_int(mp_thread_native_id(t[i]), B.tid[i]);
        assert_true(B.tid[i] != getpid());
    }
    assert_true(B.ident[0] != B.ident[1]);
    assert_true(B.tid[0] != B.tid[1]);
    mp_assert_int(mp_get_ident(), (unsigned long)pthread_self());
    mp_assert_int(mp_get_native_id(), getpid()); /* the main thread */
    mp_assert_int(mp_thread_ident(mp_main_thread()), (unsigned long)pthread_self());
    mp_assert_int(mp_thread_native_id(mp_main_thread()), getpid());
    mp_test_word_store(&B.go, 1);
    for (int i = 0; i < 2; i++) {
        th_join(t[i]);
        mp_thread_free(t[i]);
    }
}

/* Once start returned, ident and native_id are known (Python's start waits
 * until the thread has started; the header: 0 only before start). */
static void ident_known_after_start(void **state)
{
    enum { K = 20 };
    mp_thread_t *t[K];
    int bad = -1;
    unsigned long id0 = 0;
    pid_t nid0 = 0;
    for (int i = 0; i < K; i++) {
        targ_t *a = targ(i, 0);
        a->mode = 1;
        t[i] = th_new(t_record, a, NULL);
        mp_assert_int(mp_thread_start(t[i]), 0);
        unsigned long id = mp_thread_ident(t[i]);
        pid_t nid = mp_thread_native_id(t[i]);
        if ((id == 0 || nid <= 0) && bad < 0) {
            bad = i;
            id0 = id;
            nid0 = nid;
        }
    }
    mp_test_word_store(&B.go, 1);
    for (int i = 0; i < K; i++) {
        th_join(t[i]);
        mp_thread_free(t[i]);
    }
    if (bad >= 0)
        mp_test_fail("thread %d, right after start returned: ident %lu, "
                     "native_id %d\n", bad, id0, (int)nid0);
}

/* is_alive, join with and without timeout, result, in every state. */
static void lifecycle(void **state)
{
    int res = 12345;
    targ_t *a = targ(0, 42);
    a->mode = 1;
    mp_thread_t *t = th_new(t_record, a, NULL);
    mp_assert_int(mp_thread_is_alive(t), 0);
    mp_assert_int(mp_thread_join(t, 0), MP_ENOTSTARTED);
    mp_assert_int(mp_thread_join(t, 1.0), MP_ENOTSTARTED);
    mp_assert_int(mp_thread_result(t, &res), MP_ENOTSTARTED);
    mp_assert_int(mp_thread_start(t), 0);
    mp_test_wait_word(&B.ready, 1, "thread");
    mp_assert_int(B.rc[0], 1); /* is_alive seen from inside */
    mp_assert_int(mp_thread_is_alive(t), 1);
    double t0 = mp_test_now();
    mp_assert_int(mp_thread_join(t, 0), -ETIMEDOUT);
    mp_test_check_quick(mp_test_now() - t0, "join(0) of a running thread");
    t0 = mp_test_now();
    mp_assert_int(mp_thread_join(t, 0.3), -ETIMEDOUT);
    mp_test_check_timed(mp_test_now() - t0, 0.3, "join(0.3) of a running thread");
    mp_assert_int(mp_thread_result(t, &res), MP_ERUNNING);
    mp_assert_int(res, 12345);
    mp_assert_int(mp_thread_is_alive(t), 1);

    /* Released, it ends: is_alive turns 0 without a join. */
    mp_test_word_store(&B.go, 1);
    double end = mp_test_now() + MP_TEST_LONG;
    while (mp_thread_is_alive(t) == 1 && mp_test_now() < end)
        mp_test_sleep(0.001);
    mp_assert_int(mp_thread_is_alive(t), 0);
    t0 = mp_test_now();
    mp_assert_int(mp_thread_join(t, MP_TEST_LONG), 0);
    mp_test_check_quick(mp_test_now() - t0, "join of an ended thread");
    mp_assert_int(mp_thread_join(t, 0), 0);
    mp_assert_int(mp_thread_join(t, MP_FOREVER), 0);
    mp_assert_int(mp_thread_result(t, &res), 0);
    mp_assert_int(res, 42);
    mp_assert_int(mp_thread_is_alive(t), 0);

    /* Negative results come back as they are. */
    mp_thread_t *u = th_start(t_ret, targ(1, -7), NULL);
    th_join(u);
    mp_assert_int(mp_thread_result(u, &res), 0);
    mp_assert_int(res, -7);
    mp_thread_free(u);

    /* bad input */
    mp_assert_int(mp_thread_join(t, NAN), -EINVAL);
    mp_assert_int(mp_thread_join(NULL, 0), -EINVAL);
    mp_assert_int(mp_thread_is_alive(NULL), -EINVAL);
    mp_assert_int(mp_thread_result(NULL, &res), -EINVAL);
    mp_assert_int(mp_thread_result(t, NULL), -EINVAL);
    mp_assert_int(mp_thread_start(NULL), -EINVAL);
    mp_thread_t *x = NULL;
    mp_assert_int(mp_thread_new(NULL, t_ret, NULL, NULL), -EINVAL);
    mp_assert_int(mp_thread_new(&x, NULL, NULL, NULL), -EINVAL);
    mp_thread_free(NULL);
    mp_thread_free(t);
}

/* Joining oneself is -EDEADLK (Python: RuntimeError), in a thread and in
 * the main thread. */
static void join_self(void **state)
{
    mp_thread_t *t = th_start(t_join_self, targ(0, 0), NULL);
    th_join(t);
    mp_assert_int(B.rc[0], -EDEADLK);
    mp_assert_int(B.rc2[0], -EDEADLK);
    mp_test_check_quick(B.at[0], "a thread joining itself");
    mp_thread_free(t);
    double t0 = mp_test_now();
    mp_assert_int(mp_thread_join(mp_main_thread(), 0), -EDEADLK);
    mp_assert_int(mp_thread_join(mp_current_thread(), 0.5), -EDEADLK);
    mp_test_check_quick(mp_test_now() - t0, "the main thread joining itself");
}

/* start twice: MP_ESTARTED, while running and after the end; the daemon
 * flag is settable before start only. */
static void start_twice(void **state)
{
    targ_t *a = targ(0, 0);
    a->mode = 1;
    mp_thread_t *t = th_new(t_record, a, NULL);
    mp_assert_int(mp_thread_daemon(t), 0);
    mp_assert_int(mp_thread_set_daemon(t, 1), 0);
    mp_assert_int(mp_thread_daemon(t), 1);
    mp_assert_int(mp_thread_set_daemon(t, 0), 0);
    mp_assert_int(mp_thread_daemon(t), 0);
    mp_assert_int(mp_thread_set_daemon(NULL, 1), -EINVAL);
    mp_assert_int(mp_thread_start(t), 0);
    mp_test_wait_word(&B.ready, 1, "thread");
    mp_assert_int(mp_thread_start(t), MP_ESTARTED);
    mp_assert_int(mp_thread_set_daemon(t, 1), MP_ESTARTED);
    mp_assert_int(mp_thread_daemon(t), 0);
    mp_assert_int(B.daemon[0], 0);
    mp_test_word_store(&B.go, 1);
    th_join(t);
    mp_assert_int(mp_thread_start(t), MP_ESTARTED);
    mp_assert_int(mp_thread_set_daemon(t, 1), MP_ESTARTED);
    mp_assert_int(mp_thread_daemon(t), 0);
    mp_assert_int(mp_test_word_get(&B.ready), 1); /* the target ran once */
    mp_thread_free(t);
}

/* daemon: the main thread is not daemonic; a thread inherits the flag of
 * the thread that makes it unless told (daemon > 0 / < 0); so does a
 * thread made by a daemon thread's child, and by a foreign (dummy) thread,
 * which is daemonic. */
static void daemon_inherited(void **state)
{
    mp_assert_int(mp_thread_daemon(mp_main_thread()), 0);
    mp_thread_opts_t yes = {.daemon = 1}, non = {.daemon = -1};
    mp_thread_t *t = th_new(t_ret, targ(100, 0), NULL);
    mp_assert_int(mp_thread_daemon(t), 0);
    mp_thread_free(t);
    t = th_new(t_ret, targ(100, 0), &yes);
    mp_assert_int(mp_thread_daemon(t), 1);
    mp_thread_free(t);
    t = th_new(t_ret, targ(100, 0), &non);
    mp_assert_int(mp_thread_daemon(t), 0);
    mp_thread_free(t);

    /* A daemon thread makes threads. */
    t = th_start(t_make_children, targ(0, 0), &yes);
    th_join(t);
    mp_assert_int(B.daemon[0], 1);
    mp_assert_int(B.rc[0], 0);
    mp_assert_int(B.rc2[0], 0);
    if (B.daemon[1] != 1)
        mp_test_fail("a thread made by a daemon thread is daemon=%d, expected 1 "
                     "(inherited)\n", B.daemon[1]);
    mp_assert_int(B.daemon[2], 0);
    mp_assert_int(B.daemon[3], 1);
    mp_assert_int(B.daemon[11], 1); /* made by the inheriting child */
    mp_thread_free(t);

    /* A non-daemon thread makes threads. */
    t = th_start(t_make_children, targ(20, 0), &non);
    th_join(t);
    mp_assert_int(B.daemon[20], 0);
    mp_assert_int(B.rc[20], 0);
    mp_assert_int(B.daemon[21], 0);
    mp_assert_int(B.daemon[22], 0);
    mp_assert_int(B.daemon[23], 1);
    mp_assert_int(B.daemon[31], 0);
    mp_thread_free(t);

    /* A thread mproc did not create (a dummy, daemonic) makes threads. */
    pthread_t th;
    mp_assert_int(pthread_create(&th, NULL, raw_make_children, targ(40, 0)), 0);
    mp_assert_int(pthread_join(th, NULL), 0);
    mp_assert_int(B.daemon[40], 1);
    mp_assert_int(B.rc[40], 0);
    mp_assert_int(B.daemon[41], 1);
    mp_assert_int(B.daemon[42], 0);
    mp_assert_int(B.daemon[43], 1);
    mp_assert_int(B.daemon[51], 1);
}

/* current_thread inside a thread is its handle (the same pointer, every
 * time); in the main thread it is main_thread, named MainThread, alive,
 * not daemonic, and freeing it does nothing. */
static void current_and_main(void **state)
{
    mp_thread_t *m = mp_main_thread();
    assert_non_null(m);
    assert_true(mp_current_thread() == m);
    assert_true(mp_current_thread() == mp_current_thread());
    mp_assert_str(mp_thread_name(m), "MainThread");
    mp_assert_int(mp_thread_is_alive(m), 1);
    mp_assert_int(mp_thread_daemon(m), 0);
    mp_thread_free(m);
    mp_thread_free(mp_current_thread());
    assert_true(mp_main_thread() == m);
    mp_assert_str(mp_thread_name(mp_main_thread()), "MainThread");
    mp_assert_int(mp_thread_is_alive(mp_main_thread()), 1);

    mp_thread_t *t = th_start(t_record, targ(0, 0), NULL);
    th_join(t);
    assert_true(B.cur[0] == t);
    assert_true(B.cur2[0] == t);
    assert_true(B.cur[0] != m);
    mp_assert_int(B.daemon[0], 0);
    mp_thread_free(t);
}

/* A thread made with pthread_create sees a "Dummy-N" handle: the same on
 * every call, daemonic, alive, with its own ident and kernel id, counted by
 * active_count and listed by enumerate while it lives. */
static void dummy_thread(void **state)
{
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        targ_t *a = targ(i, 0);
        a->mode = 1;
        mp_assert_int(pthread_create(&th[i], NULL, raw_dummy, a), 0);
        mp_test_wait_word(&B.ready, (uint32_t)i + 1, "raw thread");
    }
    for (int i = 0; i < 2; i++) {
        assert_non_null(B.cur[i]);
        assert_true(B.cur[i] == B.cur2[i]);
        assert_true(B.cur[i] != mp_main_thread());
        if (parse_n(B.name[i], "Dummy-") < 1)
            mp_test_fail("a foreign thread's name is \"%s\", expected "
                         "Dummy-N\n", B.name[i]);
        mp_assert_int(B.daemon[i], 1);
        mp_assert_int(B.rc[i], 1);
        mp_assert_int(B.ident[i], B.pself[i]);
        mp_assert_int(B.native[i], B.tid[i]);
        mp_assert_int(B.rc2[i], 1);
        mp_assert_int(B.rc3[i], 1);
        mp_assert_int(B.at[i], 1); /* listed by enumerate */
        mp_assert_str(B.comm[i], B.name[i]); /* free did not free it */
    }
    mp_assert_int(B.count[0], 2); /* main + itself */
    mp_assert_int(B.count[1], 3);
    assert_true(B.cur[0] != B.cur[1]);
    if (strcmp(B.name[0], B.name[1]) == 0)
        mp_test_fail("two foreign threads are both named \"%s\"\n", B.name[0]);
    mp_assert_int(mp_active_count(), 3);
    mp_test_word_store(&B.go, 1);
    for (int i = 0; i < 2; i++)
        mp_assert_int(pthread_join(th[i], NULL), 0);
}

/* active_count and enumerate: the main thread alone, then with 3 live
 * threads (each seen by handle), then alone again once they ended. */
static void active_and_enumerate(void **state)
{
    enum { K = 3 };
    mp_thread_t *m = mp_main_thread();
    mp_thread_t *out[8];
    mp_assert_int(mp_active_count(), 1);
    memset(out, 0, sizeof out);
    mp_assert_int(mp_enumerate_threads(out, 8), 1);
    assert_true(out[0] == m);
    mp_assert_int(mp_enumerate_threads(NULL, 0), 1);

    mp_thread_t *t[K];
    for (int i = 0; i < K; i++) {
        targ_t *a = targ(i, 0);
        a->mode = 1;
        t[i] = th_new(t_record, a, NULL);
    }
    mp_assert_int(mp_active_count(), 1); /* made, not started */
    for (int i = 0; i < K; i++)
        mp_assert_int(mp_thread_start(t[i]), 0);
    mp_test_wait_word(&B.ready, K, "threads");
    mp_assert_int(mp_active_count(), 1 + K);
    memset(out, 0, sizeof out);
    mp_assert_int(mp_enumerate_threads(out, 8), 1 + K);
    int seen = 0;
    for (int j = 0; j < 1 + K; j++) {
        assert_non_null(out[j]);
        if (out[j] == m)
            seen |= 1 << K;
        for (int i = 0; i < K; i++)
            if (out[j] == t[i])
                seen |= 1 << i;
    }
    mp_assert_int(seen, (1 << (K + 1)) - 1);
    memset(out, 0, sizeof out);
    mp_assert_int(mp_enumerate_threads(out, 2), 1 + K);
    assert_non_null(out[0]);
    assert_non_null(out[1]);
    assert_null(out[2]);
    /* Seen from inside too: every thread counted the others started before
     * it and itself. */
    for (int i = 0; i < K; i++)
        if (B.count[i] < 2 || B.count[i] > 1 + K)
            mp_test_fail("thread %d saw active_count %d\n", i, B.count[i]);

    mp_test_word_store(&B.go, 1);
    double end = mp_test_now() + MP_TEST_LONG;
    for (int i = 0; i < K; i++)
        while (mp_thread_is_alive(t[i]) == 1 && mp_test_now() < end)
            mp_test_sleep(0.001);
    mp_assert_int(mp_active_count(), 1); /* ended, not yet joined */
    for (int i = 0; i < K; i++) {
        th_join(t[i]);
        mp_thread_free(t[i]);
    }
    mp_assert_int(mp_active_count(), 1);
    memset(out, 0, sizeof out);
    mp_assert_int(mp_enumerate_threads(out, 8), 1);
    assert_true(out[0] == m);
}

/* Freeing the handle of a running thread: it goes on, still counted. */
static void free_running(void **state)
{
    targ_t *a = targ(0, 0);
    a->mode = 1;
    mp_thread_t *t = th_start(t_record, a, NULL);
    mp_test_wait_word(&B.ready, 1, "thread");
    mp_thread_free(t);
    mp_assert_int(mp_active_count(), 2);
    mp_thread_t *out[4] = {0};
    mp_assert_int(mp_enumerate_threads(out, 4), 2);
    int other = out[0] == mp_main_thread() ? 1 : 0;
    mp_assert_str(mp_thread_name(out[other]), B.name[0]);
    mp_assert_int(mp_thread_is_alive(out[other]), 1);
    mp_test_word_store(&B.go, 1);
    double end = mp_test_now() + MP_TEST_LONG;
    while (mp_active_count() != 1 && mp_test_now() < end)
        mp_test_sleep(0.001);
    mp_assert_int(mp_active_count(), 1);
}

/* The OS thread name (/proc/self/task/TID/comm) is the first 15 bytes of
 * the thread's name. */
static void os_thread_name(void **state)
{
    mp_thread_opts_t o = {.name = "a-very-long-thread-name"};
    targ_t *a0 = targ(0, 0), *a1 = targ(1, 0);
    a0->mode = a1->mode = 1;
    mp_thread_t *t0 = th_start(t_record, a0, &o);
    mp_thread_t *t1 = th_start(t_record, a1, NULL);
    mp_test_wait_word(&B.ready, 2, "threads");
    char comm[32];
    read_comm(B.tid[0], comm, sizeof comm);
    mp_assert_str(comm, "a-very-long-thr");
    read_comm(B.tid[1], comm, sizeof comm);
    char want[16];
    snprintf(want, sizeof want, "%s", mp_thread_name(t1));
    mp_assert_str(comm, want);
    mp_test_word_store(&B.go, 1);
    th_join(t0);
    th_join(t1);
    mp_thread_free(t0);
    mp_thread_free(t1);
}

/* The seed's story: 100 threads each decrement a shared n (read, pause,
 * write) under a Lock: n ends at 0. */
static void seed_hundred_threads(void **state)
{
    enum { N = 100 };
    mp_assert_int(mp_lock_new(&B.lock), 0);
    B.n = N;
    mp_thread_t *t[N];
    for (int i = 0; i < N; i++)
        t[i] = th_start(t_seed, targ(i, 0), NULL);
    for (int i = 0; i < N; i++) {
        th_join(t[i]);
        int res = -1;
        mp_assert_int(mp_thread_result(t[i], &res), 0);
        mp_assert_int(res, 0);
        mp_thread_free(t[i]);
    }
    mp_assert_int(B.n, 0);
    mp_assert_int(mp_active_count(), 1);
    mp_lock_free(B.lock);
}

/* A Timer runs its function once, in another thread, not before its
 * interval; fired tells; cancel after it fired changes nothing. */
static void timer_fires(void **state)
{
    mp_timer_t *tm = NULL;
    mp_assert_int(mp_timer_new(&tm, 0.3, t_timer_fn, targ(0, 0)), 0);
    assert_non_null(tm);
    mp_assert_int(mp_timer_fired(tm), 0);
    mp_assert_int(mp_timer_join(tm, 0), MP_ENOTSTARTED);
    double t0 = mp_test_now();
    mp_assert_int(mp_timer_start(tm), 0);
    int rc = mp_timer_join(tm, MP_TEST_LONG);
    mp_assert_int(rc, 0);
    mp_assert_int(B.count[0], 1);
    mp_test_check_timed(B.at[0] - t0, 0.3, "Timer(0.3) fired");
    mp_assert_int(mp_timer_fired(tm), 1);
    assert_non_null(B.cur[0]);
    assert_true(B.cur[0] != mp_main_thread());
    mp_assert_int(mp_timer_cancel(tm), 0);
    mp_assert_int(mp_timer_fired(tm), 1);
    mp_assert_int(mp_timer_join(tm, 0), 0);
    mp_timer_free(tm);

    /* interval 0: at once. */
    mp_assert_int(mp_timer_new(&tm, 0, t_timer_fn, targ(1, 0)), 0);
    t0 = mp_test_now();
    mp_assert_int(mp_timer_start(tm), 0);
    mp_assert_int(mp_timer_join(tm, MP_TEST_LONG), 0);
    mp_assert_int(B.count[1], 1);
    mp_test_check_quick(B.at[1] - t0, "Timer(0)");
    mp_timer_free(tm);

    /* bad input */
    mp_timer_t *x = NULL;
    mp_assert_int(mp_timer_new(&x, -1.0, t_timer_fn, NULL), -EINVAL);
    mp_assert_int(mp_timer_new(&x, NAN, t_timer_fn, NULL), -EINVAL);
    mp_assert_int(mp_timer_new(&x, 1.0, NULL, NULL), -EINVAL);
    mp_assert_int(mp_timer_new(NULL, 1.0, t_timer_fn, NULL), -EINVAL);
    mp_assert_int(mp_timer_start(NULL), -EINVAL);
    mp_assert_int(mp_timer_cancel(NULL), -EINVAL);
    mp_assert_int(mp_timer_join(NULL, 0), -EINVAL);
    mp_timer_free(NULL);
}

/* A cancelled Timer never fires, and its thread ends at the cancel (not at
 * the interval): cancel wakes the timer's sleeping thread. */
static void timer_cancel(void **state)
{
    double interval = 2 * MP_TEST_LONG;
    mp_timer_t *tm = NULL;
    static tasks_t before;
    mp_assert_int(mp_timer_new(&tm, interval, t_timer_fn, targ(0, 0)), 0);
    tasks_snap(&before);
    mp_assert_int(mp_timer_start(tm), 0);
    mp_test_wait_asleep(new_task(&before), "the Timer's thread");
    double t0 = mp_test_now();
    mp_assert_int(mp_timer_cancel(tm), 0);
    int rc = mp_timer_join(tm, 4 * MP_TEST_LONG);
    double el = mp_test_now() - t0;
    mp_assert_int(rc, 0);
    mp_test_check_quick(el, "join of a cancelled Timer");
    mp_assert_int(mp_timer_fired(tm), 0);
    mp_assert_int(B.count[0], 0);
    mp_assert_int(mp_timer_cancel(tm), 0);
    mp_timer_free(tm);

    /* Cancelled with a short interval: the function still never runs. */
    mp_assert_int(mp_timer_new(&tm, 0.2, t_timer_fn, targ(1, 0)), 0);
    mp_assert_int(mp_timer_start(tm), 0);
    mp_assert_int(mp_timer_cancel(tm), 0);
    mp_assert_int(mp_timer_join(tm, MP_TEST_LONG), 0);
    mp_test_sleep(0.4); /* past the interval: nothing may run now */
    mp_assert_int(B.count[1], 0);
    mp_assert_int(mp_timer_fired(tm), 0);
    mp_timer_free(tm);
}

/* Cancelled before start (Python: Timer.cancel then start): it never
 * fires. */
static void timer_cancel_before_start(void **state)
{
    mp_timer_t *tm = NULL;
    mp_assert_int(mp_timer_new(&tm, 0.05, t_timer_fn, targ(0, 0)), 0);
    mp_assert_int(mp_timer_cancel(tm), 0);
    mp_assert_int(mp_timer_start(tm), 0);
    mp_assert_int(mp_timer_join(tm, MP_TEST_LONG), 0);
    mp_test_sleep(0.2);
    mp_assert_int(B.count[0], 0);
    mp_assert_int(mp_timer_fired(tm), 0);
    mp_timer_free(tm);
}

/* No warm-up: the case's first call into the library. */
static int warm_none(void) { return 0; }

/* The main thread joining itself is -EDEADLK even when nothing asked for
 * its handle before (main_thread is the first call). */
static void join_main_first_call(void **state)
{
    double t0 = mp_test_now();
    mp_assert_int(mp_thread_join(mp_main_thread(), 0.5), -EDEADLK);
    mp_test_check_quick(mp_test_now() - t0, "the main thread joining itself");
    mp_assert_int(mp_thread_join(mp_current_thread(), 0), -EDEADLK);
}

/* ---- a child process waits for its threads ------------------------------ */

typedef struct {
    uint32_t go, ready, done, never;
} pboard_t;

typedef struct {
    pboard_t *b;
    int daemon;
} parg_t;

/* pt_thread: the child's non-daemon thread: waits for go, reports done. */
static int pt_thread(void *arg)
{
    pboard_t *b = arg;
    if (mp_test_word_wait(&b->go, 1, CHILD_LONG) != 0)
        return 1;
    mp_test_word_inc(&b->done);
    return 0;
}

static int pt_daemon_forever(void *arg)
{
    pboard_t *b = arg;
    for (;;)
        mp_test_word_wait(&b->never, 1, MP_FOREVER);
    return 0;
}

/* The child's target starts a thread (daemon or not) and returns 7. */
static int pt_target(void *arg)
{
    parg_t *a = arg;
    mp_thread_opts_t o = {.daemon = a->daemon ? 1 : -1};
    mp_thread_t *t = NULL;
    if (mp_thread_new(&t, a->daemon ? pt_daemon_forever : pt_thread, a->b, &o) != 0 ||
        mp_thread_start(t) != 0)
        return 20;
    mp_thread_free(t);
    mp_test_word_inc(&a->b->ready);
    return 7;
}

static int warm_process(void)
{
    int rc = warm_thread();
    if (rc != 0)
        return rc;
    return mp_test_warm_child();
}

/* A child process whose target returned waits for its non-daemon thread
 * (as Python's Process bootstrap calls threading._shutdown), then exits
 * with the target's code; a daemon thread does not hold it. */
static void process_waits_for_threads(void **state)
{
    pboard_t *b = mp__arena_alloc(sizeof *b);
    assert_non_null(b);
    parg_t a = {b, 0};
    mp_process_t *p = NULL;
    mp_assert_int(mp_process_new(&p, pt_target, &a, sizeof a, NULL), 0);
    mp_assert_int(mp_process_start(p), 0);
    mp_test_wait_word(&b->ready, 1, "the child's target");
    int s = mp_process_sentinel(p);
    assert_true(s >= 0);
    if (mp_test_fd_readable(s, 0.5) != 0)
        mp_test_fail("the child exited without waiting for its non-daemon "
                     "thread\n");
    mp_test_word_store(&b->go, 1);
    mp_assert_int(mp_test_process_join(p), 7);
    mp_assert_int(mp_test_word_get(&b->done), 1);

    memset(b, 0, sizeof *b);
    a.daemon = 1;
    mp_assert_int(mp_process_new(&p, pt_target, &a, sizeof a, NULL), 0);
    mp_assert_int(mp_process_start(p), 0);
    int rc = mp_process_join(p, MP_TEST_LONG);
    if (rc != 0) {
        mp_process_kill(p);
        mp_process_join(p, MP_TEST_LONG);
        mp_process_free(p);
        mp_test_fail("the child waited for its daemon thread at exit\n");
    }
    int code = -1;
    mp_assert_int(mp_process_exitcode(p, &code), 0);
    mp_assert_int(code, 7);
    mp_process_free(p);
    mp__arena_free(b);
}

/* ---- exit semantics ----------------------------------------------------- */

typedef struct {
    int rep, go;
    uint32_t never;
} hx_t;

/* The non-daemon thread: waits for a byte on go, then writes "N". */
static int hx_non_daemon(void *arg)
{
    hx_t *h = arg;
    char c;
    ssize_t n;
    do
        n = read(h->go, &c, 1);
    while (n < 0 && errno == EINTR);
    return write(h->rep, "N", 1) == 1 ? 0 : 1;
}

/* The daemon thread: blocks forever. */
static int hx_daemon(void *arg)
{
    hx_t *h = arg;
    for (;;)
        mp_test_word_wait(&h->never, 1, MP_FOREVER);
    return 0;
}

/* helper "thread-exit" MODE REP GO: starts a daemon thread that blocks
 * forever and a non-daemon thread that waits for GO; writes "RM" to REP,
 * drops the handles and leaves main: MODE "return" returns from main
 * (status 0), "exit" calls exit(5). */
static int helper_thread_exit(int argc, char **argv)
{
    static hx_t h;
    if (argc < 4)
        return 2;
    h.rep = atoi(argv[2]);
    h.go = atoi(argv[3]);
    mp_thread_opts_t od = {.daemon = 1};
    mp_thread_t *d = NULL, *n = NULL;
    if (mp_thread_new(&d, hx_daemon, &h, &od) != 0 || mp_thread_start(d) != 0)
        return 3;
    if (mp_thread_new(&n, hx_non_daemon, &h, NULL) != 0 || mp_thread_start(n) != 0)
        return 4;
    if (write(h.rep, "RM", 2) != 2)
        return 5;
    /* Dropping the handles changes nothing: a running thread goes on and
     * is joined at exit if it is not daemonic. */
    mp_thread_free(n);
    mp_thread_free(d);
    if (strcmp(argv[1], "exit") == 0)
        exit(5);
    return 0;
}

/* The program's exit waits for its non-daemon thread (which then still
 * runs and writes), and not for its daemon thread blocked forever. */
static void exit_semantics(const char *mode, int want_status)
{
    int rep[2], go[2];
    mp_assert_int(pipe2(rep, O_CLOEXEC), 0);
    mp_assert_int(pipe2(go, O_CLOEXEC), 0);
    fflush(NULL);
    pid_t h = fork();
    assert_true(h >= 0);
    if (h == 0) {
        char r[16], g[16];
        fcntl(rep[1], F_SETFD, 0);
        fcntl(go[0], F_SETFD, 0);
        snprintf(r, sizeof r, "%d", rep[1]);
        snprintf(g, sizeof g, "%d", go[0]);
        execl(mp_test_self_exe(), mp_test_self_exe(), "--helper", "thread-exit",
              mode, r, g, (char *)NULL);
        _exit(127);
    }
    close(rep[1]);
    close(go[0]);
    int hfd = mp_test_pidfd(h);
    assert_true(hfd >= 0);
    char buf[4] = {0};
    ssize_t n = mp_test_read_full(rep[0], buf, 2, MP_TEST_LONG);
    const char *err = NULL;
    if (n != 2 || memcmp(buf, "RM", 2) != 0)
        err = "the helper did not start its threads";
    else if (mp_test_fd_readable(hfd, 0.5) != 0)
        err = "the program exited without waiting for its non-daemon thread";
    if (!err) {
        mp_assert_int(write(go[1], "g", 1), 1);
        n = mp_test_read_full(rep[0], buf, 1, MP_TEST_LONG);
        if (n != 1 || buf[0] != 'N')
            err = "the non-daemon thread did not run to its end";
    }
    close(go[1]);
    int st = 0;
    if (mp_test_waitpid(h, &st, MP_TEST_LONG) != 0) {
        kill(h, SIGKILL);
        waitpid(h, &st, 0);
        if (!err)
            err = "the program did not exit (it waits for its daemon thread?)";
    } else if (!err && (!WIFEXITED(st) || WEXITSTATUS(st) != want_status)) {
        print_error("the helper ended with %s %d, expected status %d (helper "
                    "codes: 3/4 thread start failed, 5 write failed)\n",
                    WIFEXITED(st) ? "status" : "signal",
                    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), want_status);
        err = "wrong exit status";
    }
    close(rep[0]);
    close(hfd);
    if (err)
        mp_test_fail("%s (mode %s)\n", err, mode);
}

static void exit_waits_non_daemon_return(void **state) { exit_semantics("return", 0); }
static void exit_waits_non_daemon_exit(void **state) { exit_semantics("exit", 5); }

int main(int argc, char **argv)
{
    static const mp_test_case_t cases[] = {
        MP_TEST(names),
        MP_TEST(identity),
        MP_TEST(ident_known_after_start),
        MP_TEST(lifecycle),
        MP_TEST(join_self),
        MP_TEST(start_twice),
        MP_TEST(daemon_inherited),
        MP_TEST(current_and_main),
        MP_TEST(dummy_thread),
        MP_TEST(active_and_enumerate),
        MP_TEST(free_running),
        MP_TEST(os_thread_name),
        MP_TEST(seed_hundred_threads),
        MP_TEST(timer_fires),
        MP_TEST_T(timer_cancel, 300),
        MP_TEST(timer_cancel_before_start),
        MP_TEST_W(join_main_first_call, 60, warm_none),
        MP_TEST_W(process_waits_for_threads, 60, warm_process),
        MP_TEST(exit_waits_non_daemon_return),
        MP_TEST(exit_waits_non_daemon_exit),
    };
    static const mp_test_helper_t helpers[] = {
        {"thread-exit", helper_thread_exit},
    };
    static const mp_test_config_t cfg = {
        .per_method = 0,
        .warmup = warm_thread,
        .helpers = helpers,
        .nhelpers = sizeof helpers / sizeof helpers[0],
    };
    return mp_test_main(argc, argv, cases, sizeof cases / sizeof cases[0], &cfg);
}

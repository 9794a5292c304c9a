/* test_process.c: processes and start methods (Python's multiprocessing.
 * Process, current_process, parent_process, active_children), run once per
 * start method (argv[1]).
 *
 * Under spawn and forkserver a target runs in a re-executed copy of this
 * program whose main never ran: targets depend on nothing set up in main.
 * They get everything through their argument: a pointer to a board_t in the
 * shared arena (valid at the same address in every process of the family),
 * where they report what they saw, and futex words to wait on. Targets never
 * call cmocka: they report through the board and their exit code.
 * Synchronization is by futex words, pipes, pidfds and joins; the only
 * timeouts are generous bounds, or the behaviour under test (join timeout).
 * mp-test: per-start-method
 * mp-test: timeout=900 */
#include "mp_test.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arena.h"
#include "sys/platform.h"

/* ---- the board: what children report --------------------------------- */

#define NODES 15 /* a binary tree of depth 3 */
#define NAMECAP (MP_NAME_MAX + 8)

typedef struct {
    pid_t pid;        /* mp_process_pid(mp_current_process()) */
    pid_t self_pid;   /* getpid() */
    pid_t parent_pid; /* mp_process_pid(mp_parent_process()), -1 if none */
    int32_t parent_alive;
    int32_t daemon;
    char name[NAMECAP];
    char parent_name[NAMECAP];
} node_t;

typedef struct {
    uint32_t go;    /* set by the test to release children */
    uint32_t ready; /* children increment it once running */
    uint32_t done;
    uint32_t never; /* nobody ever sets it: wait on it to block forever */
    int32_t rc, rc2;
    pid_t pid;
    int32_t money_before, money_after;
    node_t self;
    char sub1[NAMECAP], sub2[NAMECAP];
    int32_t keylen, keylen2;
    uint8_t key[MP_AUTHKEY_MAX], key2[MP_AUTHKEY_MAX];
    node_t nodes[NODES];
} board_t;

typedef struct {
    board_t *b;
    int code;  /* exit code to return, or a mode */
    int idx;   /* node index (tree) */
    int depth; /* tree depth below this node */
} targ_t;

static board_t *board_new(void)
{
    board_t *b = mp__arena_alloc(sizeof *b);
    assert_non_null(b);
    return b;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "(null)");
}

/* record_self fills a node with what the calling process sees of itself. */
static void record_self(node_t *n)
{
    mp_process_t *cur = mp_current_process();
    mp_process_t *par = mp_parent_process();
    n->pid = cur ? mp_process_pid(cur) : -1;
    n->self_pid = getpid();
    n->daemon = cur ? mp_process_daemon(cur) : -1;
    copy_str(n->name, sizeof n->name, cur ? mp_process_name(cur) : NULL);
    copy_str(n->parent_name, sizeof n->parent_name,
             par ? mp_process_name(par) : NULL);
    n->parent_pid = par ? mp_process_pid(par) : -1;
    n->parent_alive = par ? mp_process_is_alive(par) : -1;
}

/* ---- targets ---------------------------------------------------------- */

static int money = 100;

static int t_return(void *arg) { return ((targ_t *)arg)->code; }

/* t_block reports ready, waits for go, returns its code. */
static int t_block(void *arg)
{
    targ_t *a = arg;
    mp_test_word_inc(&a->b->ready);
    mp_test_word_wait(&a->b->go, 1, MP_FOREVER);
    return a->code;
}

static int t_block_forever(void *arg)
{
    targ_t *a = arg;
    mp_test_word_inc(&a->b->ready);
    for (;;)
        mp_test_word_wait(&a->b->never, 1, MP_FOREVER);
    return 0;
}

static int t_segv(void *arg)
{
    /* Default action (no sanitizer or library handler): a real crash. */
    signal(SIGSEGV, SIG_DFL);
    volatile uintptr_t addr = 16;
    *(volatile int *)addr = 1;
    return 0;
}

static int t_money(void *arg)
{
    targ_t *a = arg;
    a->b->money_before = money;
    money = 200;
    a->b->money_after = money;
    return 0;
}

/* t_names reports the child's identity and the names its own children get. */
static int t_names(void *arg)
{
    targ_t *a = arg;
    record_self(&a->b->self);
    mp_process_t *q1 = NULL, *q2 = NULL;
    targ_t qa = {a->b, 0, 0, 0};
    if (mp_process_new(&q1, t_return, &qa, sizeof qa, NULL) != 0 ||
        mp_process_new(&q2, t_return, &qa, sizeof qa, NULL) != 0)
        return 30;
    copy_str(a->b->sub1, sizeof a->b->sub1, mp_process_name(q1));
    copy_str(a->b->sub2, sizeof a->b->sub2, mp_process_name(q2));
    mp_process_free(q1);
    mp_process_free(q2);
    a->b->rc = mp_process_join(mp_parent_process(), 0);
    a->b->rc2 = mp_process_join(mp_current_process(), 0);
    return 0;
}

/* t_tree: a node of a binary tree; it starts its two children at once,
 * joins them, and checks what they reported against its handles. */
static int t_tree(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    record_self(&b->nodes[a->idx]);
    if (a->depth == 0)
        return 0;
    mp_process_t *c[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++) {
        targ_t ca = {b, 0, 2 * a->idx + 1 + k, a->depth - 1};
        if (mp_process_new(&c[k], t_tree, &ca, sizeof ca, NULL) != 0)
            return 40;
    }
    for (int k = 0; k < 2; k++)
        if (mp_process_start(c[k]) != 0)
            return 41;
    int ret = 0;
    for (int k = 0; k < 2; k++) {
        int ci = 2 * a->idx + 1 + k, code = -1;
        if (mp_process_join(c[k], 120.0) != 0) {
            ret = 42;
            continue;
        }
        if (mp_process_exitcode(c[k], &code) != 0 || code != 0)
            ret = ret ? ret : (code > 0 ? code : 43);
        else if (strcmp(mp_process_name(c[k]), b->nodes[ci].name) != 0)
            ret = 44;
        else if (mp_process_pid(c[k]) != b->nodes[ci].pid)
            ret = 45;
    }
    mp_process_free(c[0]);
    mp_process_free(c[1]);
    return ret;
}

/* t_middle starts a daemon that blocks forever, reports its pid, and blocks
 * forever itself (the test SIGKILLs it). */
static int t_middle(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    mp_process_opts_t o = {0};
    o.daemon = 1;
    mp_process_t *x = NULL;
    targ_t xa = {b, 0, 0, 0};
    if (mp_process_new(&x, t_block_forever, &xa, sizeof xa, &o) != 0)
        return 50;
    if (mp_process_start(x) != 0)
        return 51;
    if (mp_test_word_wait(&b->ready, 1, 120.0) != 0)
        return 52;
    b->pid = mp_process_pid(x);
    mp_test_word_inc(&b->done);
    for (;;)
        mp_test_word_wait(&b->never, 1, MP_FOREVER);
    return 0;
}

/* t_daemon_start: a daemon tries to start a child. */
static int t_daemon_start(void *arg)
{
    targ_t *a = arg;
    a->b->rc2 = mp_process_daemon(mp_current_process());
    mp_process_t *q = NULL;
    targ_t qa = {a->b, 0, 0, 0};
    if (mp_process_new(&q, t_return, &qa, sizeof qa, NULL) != 0)
        return 55;
    a->b->rc = mp_process_start(q);
    if (a->b->rc == 0)
        mp_process_join(q, 60.0);
    mp_process_free(q);
    return 0;
}

static int t_wait_sigusr1(void *arg)
{
    targ_t *a = arg;
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    sigprocmask(SIG_BLOCK, &s, NULL);
    mp_test_word_inc(&a->b->ready);
    for (;;) {
        int sig = sigwaitinfo(&s, NULL);
        if (sig == SIGUSR1)
            return 0;
        if (sig < 0 && errno != EINTR)
            return 60;
    }
}

static int t_printf(void *arg)
{
    printf("child-buffered;");
    return 0;
}

/* t_key reports the child's authkey (idx 0: key, 1: key2); with depth > 0
 * it also starts a grandchild that reports into key2. */
static int t_key(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    uint8_t *dst = a->idx ? b->key2 : b->key;
    int32_t *len = a->idx ? &b->keylen2 : &b->keylen;
    *len = mp_process_authkey(mp_current_process(), dst, MP_AUTHKEY_MAX);
    if (a->depth > 0) {
        mp_process_t *g = NULL;
        targ_t ga = {b, 0, 1, 0};
        if (mp_process_new(&g, t_key, &ga, sizeof ga, NULL) != 0 ||
            mp_process_start(g) != 0 || mp_process_join(g, 60.0) != 0)
            return 70;
        mp_process_free(g);
    }
    return 0;
}

/* ---- helpers for cases ------------------------------------------------ */

static mp_process_t *new_child(mp_target_fn fn, const targ_t *a,
                               const mp_process_opts_t *o)
{
    mp_process_t *p = NULL;
    int rc = mp_process_new(&p, fn, a, sizeof *a, o);
    mp_assert_int(rc, 0);
    assert_non_null(p);
    return p;
}

static mp_process_t *start_child(mp_target_fn fn, const targ_t *a,
                                 const mp_process_opts_t *o)
{
    mp_process_t *p = new_child(fn, a, o);
    int rc = mp_process_start(p);
    mp_assert_int(rc, 0);
    return p;
}

static int join_code(mp_process_t *p)
{
    int rc = mp_process_join(p, MP_TEST_LONG);
    mp_assert_int(rc, 0);
    int code = INT_MIN;
    rc = mp_process_exitcode(p, &code);
    mp_assert_int(rc, 0);
    return code;
}

static void wait_ready(board_t *b, uint32_t n)
{
    int rc = mp_test_word_wait(&b->ready, n, MP_TEST_LONG);
    if (rc != 0)
        mp_test_fail("only %u of %u children became ready within %.0f s\n",
                     __atomic_load_n(&b->ready, __ATOMIC_SEQ_CST), n,
                     MP_TEST_LONG);
}

static void release(board_t *b) { mp_test_word_store(&b->go, 1); }

/* not_our_zombie fails if pid is a zombie child of this process. */
static void not_our_zombie(pid_t pid, const char *what)
{
    pid_t pp = 0;
    char st = mp_test_proc_state(pid, &pp);
    if (st == 'Z' && pp == getpid())
        mp_test_fail("%s: child %d is still a zombie of ours\n", what, (int)pid);
}

/* Warm-up: the arena, the process-local state, one child of the program's
 * start method (so the forkserver and its connection exist). */
static int warm_process(void)
{
    void *x = mp__arena_alloc(16);
    if (!x)
        return -ENOMEM;
    mp__arena_free(x);
    if (!mp_current_process())
        return -EINVAL;
    int rc = mp_test_warm_child();
    if (rc == 0)
        rc = mp_active_children(NULL, 0) < 0 ? -EINVAL : 0;
    return rc;
}

/* ---- cases: exit codes and states ------------------------------------- */

/* The target's return value is the exit code; run() runs it in-process. */
static void exit_codes(void **state)
{
    board_t *b = board_new();
    const int codes[] = {0, 7, 255, 1};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        targ_t a = {b, codes[i], 0, 0};
        mp_process_t *p = start_child(t_return, &a, NULL);
        assert_true(mp_process_pid(p) > 0);
        mp_assert_int(join_code(p), codes[i]);
        mp_process_free(p);
    }
    targ_t a = {b, 7, 0, 0};
    mp_process_t *p = new_child(t_return, &a, NULL);
    mp_assert_int(mp_process_run(p), 7);
    mp_assert_int(mp_process_pid(p), 0);
    mp_process_free(p);
    mp__arena_free(b);
}

/* A target without argument (arg NULL, arg_len 0) starts and gets NULL
 * or a valid pointer; the exit code comes back. */
static int t_null_arg(void *arg) { return 9; }

static void null_arg(void **state)
{
    mp_process_t *p = NULL;
    mp_assert_int(mp_process_new(&p, t_null_arg, NULL, 0, NULL), 0);
    mp_assert_int(mp_process_start(p), 0);
    mp_assert_int(join_code(p), 9);
    mp_process_free(p);
}

static int t_exit(void *arg)
{
    targ_t *a = arg;
    printf("exit-flushed;");
    if (a->idx)
        _exit(a->code);
    exit(a->code);
}

/* A target that calls exit() or _exit() itself: that status is the exit
 * code; exit() flushes stdio. */
static void target_calls_exit(void **state)
{
    board_t *b = board_new();
    int pfd[2];
    fflush(stdout);
    int saved = dup(1);
    assert_true(saved >= 0);
    mp_assert_int(pipe2(pfd, O_CLOEXEC), 0);
    mp_assert_int(dup2(pfd[1], 1), 1);
    close(pfd[1]);
    targ_t a = {b, 6, 0, 0};
    mp_process_t *p = NULL;
    int rc = mp_process_new(&p, t_exit, &a, sizeof a, NULL);
    if (rc == 0)
        rc = mp_process_start(p);
    int jrc = rc == 0 ? mp_process_join(p, MP_TEST_LONG) : rc;
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    mp_assert_int(rc, 0);
    mp_assert_int(jrc, 0);
    int code = -1;
    mp_assert_int(mp_process_exitcode(p, &code), 0);
    mp_assert_int(code, 6);
    mp_process_free(p);
    char buf[64];
    ssize_t n = mp_test_read_full(pfd[0], buf, sizeof buf - 1, MP_TEST_LONG);
    close(pfd[0]);
    assert_true(n >= 0);
    buf[n] = 0;
    mp_assert_str(buf, "exit-flushed;");

    targ_t a2 = {b, 5, 1, 0};
    p = start_child(t_exit, &a2, NULL);
    mp_assert_int(join_code(p), 5);
    mp_process_free(p);
    mp__arena_free(b);
}

/* Killed children report -signal: -9 kill, -15 terminate, -11 segfault;
 * signalling one that already exited is not an error. */
static void exit_code_signals(void **state)
{
    board_t *b = board_new();
    targ_t a = {b, 0, 0, 0};
    mp_process_t *p = start_child(t_block, &a, NULL);
    wait_ready(b, 1);
    mp_assert_int(mp_process_kill(p), 0);
    mp_assert_int(join_code(p), -SIGKILL);
    mp_assert_int(mp_process_kill(p), 0);
    mp_assert_int(mp_process_terminate(p), 0);
    mp_process_free(p);

    p = start_child(t_block, &a, NULL);
    wait_ready(b, 2);
    mp_assert_int(mp_process_terminate(p), 0);
    mp_assert_int(join_code(p), -SIGTERM);
    mp_process_free(p);

    p = start_child(t_segv, &a, NULL);
    mp_assert_int(join_code(p), -SIGSEGV);
    mp_process_free(p);

    /* Exited but not yet joined: signalling is still fine. */
    targ_t r = {b, 5, 0, 0};
    p = start_child(t_return, &r, NULL);
    int s = mp_process_sentinel(p);
    assert_true(s >= 0);
    mp_assert_int(mp_test_fd_readable(s, MP_TEST_LONG), 1);
    mp_assert_int(mp_process_terminate(p), 0);
    mp_assert_int(mp_process_kill(p), 0);
    mp_assert_int(join_code(p), 5);
    mp_process_free(p);
    mp__arena_free(b);
}

/* join(timeout) returns -ETIMEDOUT after the timeout while the child lives;
 * join(0) polls; a finished child joins at once, again and again. */
static void join_timeout(void **state)
{
    board_t *b = board_new();
    targ_t a = {b, 3, 0, 0};
    mp_process_t *p = start_child(t_block, &a, NULL);
    wait_ready(b, 1);
    double t0 = mp_test_now();
    mp_assert_int(mp_process_join(p, 0.3), -ETIMEDOUT);
    double el = mp_test_now() - t0;
    if (el < 0.29 || el > MP_TEST_LONG)
        mp_test_fail("join(0.3) returned after %.3f s\n", el);
    t0 = mp_test_now();
    mp_assert_int(mp_process_join(p, 0), -ETIMEDOUT);
    el = mp_test_now() - t0;
    if (el > 5.0 * mp_test_scale())
        mp_test_fail("join(0) took %.3f s\n", el);
    int code = 12345;
    mp_assert_int(mp_process_exitcode(p, &code), MP_ERUNNING);
    mp_assert_int(mp_process_is_alive(p), 1);
    release(b);
    mp_assert_int(mp_process_join(p, MP_FOREVER), 0);
    mp_assert_int(mp_process_join(p, 0), 0);
    mp_assert_int(mp_process_join(p, 1.0), 0);
    mp_assert_int(mp_process_exitcode(p, &code), 0);
    mp_assert_int(code, 3);
    mp_assert_int(mp_process_is_alive(p), 0);
    mp_process_free(p);
    mp__arena_free(b);
}

/* is_alive: 0 before start, 1 while running, 0 after exit; it reaps. */
static void is_alive_reaps(void **state)
{
    board_t *b = board_new();
    targ_t a = {b, 4, 0, 0};
    mp_process_t *p = new_child(t_block, &a, NULL);
    mp_assert_int(mp_process_is_alive(p), 0);
    mp_assert_int(mp_process_pid(p), 0);
    mp_assert_int(mp_process_start(p), 0);
    pid_t pid = mp_process_pid(p);
    assert_true(pid > 0);
    wait_ready(b, 1);
    mp_assert_int(mp_process_is_alive(p), 1);
    release(b);
    int s = mp_process_sentinel(p);
    assert_true(s >= 0);
    mp_assert_int(mp_test_fd_readable(s, MP_TEST_LONG), 1);
    mp_assert_int(mp_process_is_alive(p), 0);
    not_our_zombie(pid, "after is_alive returned 0");
    int code = -1;
    mp_assert_int(mp_process_exitcode(p, &code), 0);
    mp_assert_int(code, 4);
    mp_assert_int(mp_process_pid(p), pid);
    mp_process_free(p);
    mp__arena_free(b);
}

/* Every call in the wrong state returns the documented code. */
static void state_errors(void **state)
{
    board_t *b = board_new();
    targ_t a = {b, 0, 0, 0};
    int code = 0;
    mp_process_t *p = new_child(t_block, &a, NULL);
    /* before start */
    mp_assert_int(mp_process_join(p, 0), MP_ENOTSTARTED);
    mp_assert_int(mp_process_join(p, 1.0), MP_ENOTSTARTED);
    mp_assert_int(mp_process_terminate(p), MP_ENOTSTARTED);
    mp_assert_int(mp_process_kill(p), MP_ENOTSTARTED);
    mp_assert_int(mp_process_exitcode(p, &code), MP_ENOTSTARTED);
    mp_assert_int(mp_process_sentinel(p), MP_ENOTSTARTED);
    mp_assert_int(mp_process_pid(p), 0);
    mp_assert_int(mp_process_set_daemon(p, 1), 0);
    mp_assert_int(mp_process_daemon(p), 1);
    mp_assert_int(mp_process_set_daemon(p, 0), 0);
    mp_assert_int(mp_process_daemon(p), 0);
    /* running */
    mp_assert_int(mp_process_start(p), 0);
    wait_ready(b, 1);
    mp_assert_int(mp_process_start(p), MP_ESTARTED);
    mp_assert_int(mp_process_set_daemon(p, 1), MP_ESTARTED);
    mp_assert_int(mp_process_daemon(p), 0);
    mp_assert_int(mp_process_set_authkey(p, "k", 1), MP_ESTARTED);
    mp_assert_int(mp_process_close(p), MP_ERUNNING);
    mp_assert_int(mp_process_is_alive(p), 1); /* close released nothing */
    assert_true(mp_process_sentinel(p) >= 0);
    release(b);
    mp_assert_int(join_code(p), 0);
    /* finished */
    mp_assert_int(mp_process_start(p), MP_ESTARTED);
    mp_assert_int(mp_process_set_daemon(p, 1), MP_ESTARTED);
    mp_assert_int(mp_process_set_name(p, "still-named"), 0);
    mp_assert_int(mp_process_close(p), 0);
    /* closed */
    mp_assert_int(mp_process_close(p), 0);
    mp_assert_int(mp_process_start(p), MP_ECLOSED);
    mp_assert_int(mp_process_join(p, 0), MP_ECLOSED);
    mp_assert_int(mp_process_is_alive(p), MP_ECLOSED);
    mp_assert_int(mp_process_terminate(p), MP_ECLOSED);
    mp_assert_int(mp_process_kill(p), MP_ECLOSED);
    mp_assert_int(mp_process_sentinel(p), MP_ECLOSED);
    mp_assert_str(mp_process_name(p), "still-named");

    /* closing a never-started process, then starting it */
    mp_process_t *q = new_child(t_return, &a, NULL);
    mp_assert_int(mp_process_close(q), 0);
    mp_assert_int(mp_process_start(q), MP_ECLOSED);
    mp_process_free(q);
    mp__arena_free(b);

    code = 12345;
    int rc = mp_process_exitcode(p, &code);
    mp_process_free(p);
    mp_assert_int(rc, MP_ECLOSED);
}

/* The sentinel becomes readable exactly when the child ends. */
static void sentinel_readable(void **state)
{
    board_t *b = board_new();
    targ_t a = {b, 0, 0, 0};
    mp_process_t *p = start_child(t_block, &a, NULL);
    int s = mp_process_sentinel(p);
    assert_true(s >= 0);
    mp_assert_int(mp_process_sentinel(p), s);
    wait_ready(b, 1);
    struct pollfd pf = {.fd = s, .events = POLLIN};
    mp_assert_int(poll(&pf, 1, 0), 0);
    release(b);
    pf.revents = 0;
    int r = poll(&pf, 1, (int)(MP_TEST_LONG * 1000));
    mp_assert_int(r, 1);
    assert_true(pf.revents & (POLLIN | POLLHUP));
    mp_assert_int(join_code(p), 0);
    mp_assert_int(mp_process_close(p), 0);
    mp_process_free(p);
    mp__arena_free(b);
}

/* Memory is not shared by accident: a global changed in the child is
 * unchanged in the parent. */
static void data_isolation(void **state)
{
    board_t *b = board_new();
    targ_t a = {b, 0, 0, 0};
    mp_assert_int(money, 100);
    mp_process_t *p = start_child(t_money, &a, NULL);
    mp_assert_int(join_code(p), 0);
    mp_assert_int(b->money_before, 100);
    mp_assert_int(b->money_after, 200);
    mp_assert_int(money, 100);
    mp_process_free(p);
    mp__arena_free(b);
}

/* ---- cases: identity -------------------------------------------------- */

static int parse_process_n(const char *name)
{
    int n = -1, end = 0;
    if (name && sscanf(name, "Process-%d%n", &n, &end) == 1 &&
        name[end] == 0)
        return n;
    return -1;
}

/* Names (Process-N, given names, Process-N:M below a child), pids seen from
 * inside the child, parent_process and current_process. */
static void names_and_identity(void **state)
{
    mp_process_t *cur = mp_current_process();
    assert_non_null(cur);
    assert_true(mp_current_process() == cur);
    mp_assert_str(mp_process_name(cur), "MainProcess");
    mp_assert_int(mp_process_pid(cur), getpid());
    mp_assert_int(mp_process_daemon(cur), 0);
    mp_assert_int(mp_process_is_alive(cur), 1);
    assert_null(mp_parent_process());

    board_t *b = board_new();
    targ_t a = {b, 0, 0, 0};
    mp_process_t *p1 = new_child(t_return, &a, NULL);
    mp_process_t *p2 = new_child(t_return, &a, NULL);
    int n1 = parse_process_n(mp_process_name(p1));
    int n2 = parse_process_n(mp_process_name(p2));
    if (n1 < 1 || n2 != n1 + 1)
        mp_test_fail("default names \"%s\", \"%s\": expected Process-N, "
                     "Process-N+1\n", mp_process_name(p1), mp_process_name(p2));
    mp_process_opts_t o = {0};
    o.name = "worker";
    mp_process_t *p3 = new_child(t_return, &a, &o);
    mp_assert_str(mp_process_name(p3), "worker");
    mp_assert_int(mp_process_set_name(p3, "renamed"), 0);
    mp_assert_str(mp_process_name(p3), "renamed");
    mp_process_free(p1);
    mp_process_free(p2);
    mp_process_free(p3);

    /* A default-named child: what it sees of itself and its parent. */
    mp_process_t *p = start_child(t_names, &a, NULL);
    char name[NAMECAP];
    copy_str(name, sizeof name, mp_process_name(p));
    mp_assert_int(join_code(p), 0);
    mp_assert_str(b->self.name, name);
    mp_assert_int(b->self.pid, mp_process_pid(p));
    mp_assert_int(b->self.self_pid, mp_process_pid(p));
    mp_assert_str(b->self.parent_name, "MainProcess");
    mp_assert_int(b->self.parent_pid, getpid());
    mp_assert_int(b->self.parent_alive, 1);
    mp_assert_int(b->self.daemon, 0);
    char want[NAMECAP + 8];
    snprintf(want, sizeof want, "%s:1", name);
    mp_assert_str(b->sub1, want);
    snprintf(want, sizeof want, "%s:2", name);
    mp_assert_str(b->sub2, want);
    mp_assert_int(b->rc, -EINVAL);  /* join(parent_process()) */
    mp_assert_int(b->rc2, -EINVAL); /* join(current_process()) */
    mp_process_free(p);

    /* The parent's name as the child sees it is the name at start. */
    mp_assert_int(mp_process_set_name(cur, "Boss"), 0);
    mp_assert_str(mp_process_name(mp_current_process()), "Boss");
    p = start_child(t_names, &a, NULL);
    mp_assert_int(join_code(p), 0);
    mp_assert_str(b->self.parent_name, "Boss");
    mp_process_free(p);
    mp_assert_int(mp_process_set_name(cur, "MainProcess"), 0);

    /* Freeing the current process's handle does nothing. */
    mp_process_free(cur);
    mp_process_free(mp_current_process());
    assert_true(mp_current_process() == cur);
    mp_assert_str(mp_process_name(cur), "MainProcess");

    /* A named daemon child sees its name and its flag. */
    memset(&b->self, 0, sizeof b->self);
    o.name = "worker";
    o.daemon = 1;
    p = start_child(t_names, &a, &o);
    mp_assert_int(join_code(p), 0);
    mp_assert_str(b->self.name, "worker");
    mp_assert_int(b->self.daemon, 1);
    mp_assert_int(b->self.self_pid, mp_process_pid(p));
    mp_assert_str(b->self.parent_name, "MainProcess");
    mp_process_free(p);
    mp__arena_free(b);
}

/* active_children lists the live children and reaps the dead ones. */
static void active_children(void **state)
{
    board_t *b = board_new();
    targ_t a = {b, 0, 0, 0};
    mp_process_t *p[3];
    for (int i = 0; i < 3; i++)
        p[i] = start_child(t_block, &a, NULL);
    wait_ready(b, 3);
    mp_process_t *out[8] = {0};
    mp_assert_int(mp_active_children(out, 8), 3);
    int seen = 0;
    for (int i = 0; i < 3; i++) {
        assert_non_null(out[i]);
        for (int j = 0; j < 3; j++) {
            if (mp_process_pid(out[i]) == mp_process_pid(p[j])) {
                seen |= 1 << j;
                mp_assert_str(mp_process_name(out[i]), mp_process_name(p[j]));
                mp_assert_int(mp_process_is_alive(out[i]), 1);
            }
        }
        mp_process_free(out[i]);
    }
    mp_assert_int(seen, 7);
    memset(out, 0, sizeof out);
    mp_assert_int(mp_active_children(out, 1), 3);
    assert_non_null(out[0]);
    assert_null(out[1]);
    mp_process_free(out[0]);
    mp_assert_int(mp_active_children(NULL, 0), 3);
    mp_assert_int(mp_active_children(NULL, 5), -EINVAL);

    /* One dies: the next call reaps it and lists the other two. */
    pid_t dead = mp_process_pid(p[0]);
    mp_assert_int(mp_process_kill(p[0]), 0);
    mp_assert_int(mp_test_fd_readable(mp_process_sentinel(p[0]), MP_TEST_LONG), 1);
    mp_assert_int(mp_active_children(out, 8), 2);
    for (int i = 0; i < 2; i++) {
        assert_true(mp_process_pid(out[i]) != dead);
        mp_process_free(out[i]);
    }
    not_our_zombie(dead, "after active_children");
    int code = 0;
    mp_assert_int(mp_process_exitcode(p[0], &code), 0);
    mp_assert_int(code, -SIGKILL);
    release(b);
    for (int i = 0; i < 3; i++) {
        mp_assert_int(mp_process_join(p[i], MP_TEST_LONG), 0);
        mp_process_free(p[i]);
    }
    mp_assert_int(mp_active_children(NULL, 0), 0);
    mp__arena_free(b);
}

/* t_count_children reports how many children the child itself has. */
static int t_count_children(void *arg)
{
    targ_t *a = arg;
    a->b->rc = mp_active_children(NULL, 0);
    return 0;
}

/* A child has no children of its own at start, even under fork where it is
 * a copy of a parent with live children; its exit neither joins nor
 * terminates its siblings. */
static void active_children_in_child(void **state)
{
    board_t *b = board_new();
    targ_t a = {b, 0, 0, 0};
    mp_process_opts_t dopt = {0};
    dopt.daemon = 1;
    mp_process_t *sd = start_child(t_block, &a, &dopt);
    mp_process_t *sn = start_child(t_block, &a, NULL);
    wait_ready(b, 2);
    b->rc = 12345;
    mp_process_t *p = start_child(t_count_children, &a, NULL);
    int rc = mp_process_join(p, MP_TEST_LONG);
    if (rc == -ETIMEDOUT) {
        mp_process_kill(sd);
        mp_process_kill(sn);
        mp_process_kill(p);
        mp_test_fail("a child that returned did not exit: it waits for its "
                     "parent's other children\n");
    }
    mp_assert_int(rc, 0);
    int code = -1;
    mp_assert_int(mp_process_exitcode(p, &code), 0);
    mp_assert_int(code, 0);
    mp_assert_int(b->rc, 0);
    /* "Nothing happens to the siblings": watch them for a while. */
    mp_assert_int(mp_test_fd_readable(mp_process_sentinel(sd), 0.5), 0);
    mp_assert_int(mp_test_fd_readable(mp_process_sentinel(sn), 0), 0);
    mp_assert_int(mp_active_children(NULL, 0), 2);
    release(b);
    mp_assert_int(join_code(sd), 0);
    mp_assert_int(join_code(sn), 0);
    mp_process_free(p);
    mp_process_free(sd);
    mp_process_free(sn);
    mp__arena_free(b);
}

/* Freeing the handle of a running child leaves it running and listed. */
static void free_running_child(void **state)
{
    board_t *b = board_new();
    targ_t a = {b, 0, 0, 0};
    mp_process_t *p = start_child(t_block, &a, NULL);
    pid_t pid = mp_process_pid(p);
    wait_ready(b, 1);
    mp_process_free(p);
    mp_process_t *out[2] = {0};
    mp_assert_int(mp_active_children(out, 2), 1);
    mp_assert_int(mp_process_pid(out[0]), pid);
    mp_assert_int(mp_process_is_alive(out[0]), 1);
    /* Wait for the end as the library sees it (under forkserver the exit
     * status comes from the server, a moment after the pid is gone). */
    int s = mp_process_sentinel(out[0]);
    assert_true(s >= 0);
    release(b);
    mp_assert_int(mp_test_fd_readable(s, MP_TEST_LONG), 1);
    mp_process_free(out[0]);
    mp_assert_int(mp_test_wait_gone(pid, MP_TEST_LONG), 0);
    mp_assert_int(mp_active_children(NULL, 0), 0);
    not_our_zombie(pid, "after active_children");
    mp__arena_free(b);
}

/* 100 children alive at once, each with its own exit code. */
static void hundred_children(void **state)
{
    enum { N = 100 };
    board_t *b = board_new();
    mp_process_t *p[N];
    for (int i = 0; i < N; i++) {
        targ_t a = {b, i, 0, 0};
        p[i] = start_child(t_block, &a, NULL);
    }
    wait_ready(b, N);
    mp_assert_int(mp_active_children(NULL, 0), N);
    release(b);
    for (int i = 0; i < N; i++) {
        mp_assert_int(join_code(p[i]), i);
        mp_process_free(p[i]);
    }
    mp_assert_int(mp_active_children(NULL, 0), 0);
    mp__arena_free(b);
}

/* A tree: every node starts two children and joins them; names nest
 * (Process-N:1, Process-N:1:2...), parent_process is the real parent. */
static void process_tree(void **state)
{
    board_t *b = board_new();
    targ_t a = {b, 0, 0, 3};
    mp_process_t *root = start_child(t_tree, &a, NULL);
    int code = join_code(root);
    if (code != 0)
        mp_test_fail("the tree's root exited with %d (40/41: new/start failed, "
                     "42: join timed out, 44: name mismatch, 45: pid mismatch)"
                     "\n", code);
    mp_assert_str(b->nodes[0].name, mp_process_name(root));
    mp_assert_int(b->nodes[0].pid, mp_process_pid(root));
    mp_assert_str(b->nodes[0].parent_name, "MainProcess");
    mp_assert_int(b->nodes[0].parent_pid, getpid());
    for (int i = 0; i < NODES; i++) {
        node_t *n = &b->nodes[i];
        if (n->pid <= 0)
            mp_test_fail("node %d never ran\n", i);
        mp_assert_int(n->self_pid, n->pid);
        if (i == 0)
            continue;
        node_t *par = &b->nodes[(i - 1) / 2];
        char want[NAMECAP + 8];
        snprintf(want, sizeof want, "%s:%d", par->name, i % 2 ? 1 : 2);
        mp_assert_str(n->name, want);
        mp_assert_str(n->parent_name, par->name);
        mp_assert_int(n->parent_pid, par->pid);
        mp_assert_int(n->parent_alive, 1);
    }
    mp_process_free(root);
    mp__arena_free(b);
}

/* ---- cases: daemons and exit ------------------------------------------ */

/* A daemon dies when its parent is SIGKILLed (Python leaves it running). */
static void daemon_dies_with_killed_parent(void **state)
{
    board_t *b = board_new();
    targ_t a = {b, 0, 0, 0};
    mp_process_t *m = start_child(t_middle, &a, NULL);
    if (mp_test_word_wait(&b->done, 1, MP_TEST_LONG) != 0) {
        int code = 0;
        int rc = mp_process_exitcode(m, &code);
        mp_test_fail("the middle process never reported its daemon (exitcode "
                     "rc %d, code %d; 50/51: new/start failed, 52: daemon not "
                     "ready)\n", rc, code);
    }
    pid_t x = b->pid;
    assert_true(x > 0);
    int fd = mp_test_pidfd(x);
    if (fd < 0)
        mp_test_fail("pidfd_open(daemon %d): %s (the daemon is already gone "
                     "while its parent lives)\n", (int)x, strerror(-fd));
    mp_assert_int(mp_test_fd_readable(fd, 0), 0);
    mp_assert_int(mp_process_kill(m), 0);
    mp_assert_int(join_code(m), -SIGKILL);
    int r = mp_test_fd_readable(fd, MP_TEST_LONG);
    close(fd);
    if (r != 1) {
        kill(x, SIGKILL);
        mp_test_fail("daemon %d still alive %.0f s after its parent was "
                     "SIGKILLed\n", (int)x, MP_TEST_LONG);
    }
    mp_process_free(m);
    mp__arena_free(b);
}

typedef struct {
    board_t *b;
    mp_process_t *p;
    int rc;
} thr_start_t;

static void *thr_start_daemon(void *arg)
{
    thr_start_t *t = arg;
    mp_process_opts_t o = {0};
    o.daemon = 1;
    targ_t a = {t->b, 3, 0, 0};
    t->rc = mp_process_new(&t->p, t_block, &a, sizeof a, &o);
    if (t->rc == 0)
        t->rc = mp_process_start(t->p);
    return NULL;
}

/* The converse: a daemon started from a thread that then exits keeps
 * running while its parent process lives (PR_SET_PDEATHSIG would kill it). */
static void daemon_survives_thread_exit(void **state)
{
    board_t *b = board_new();
    thr_start_t t = {b, NULL, -1};
    pthread_t th;
    mp_assert_int(pthread_create(&th, NULL, thr_start_daemon, &t), 0);
    mp_assert_int(pthread_join(th, NULL), 0);
    mp_assert_int(t.rc, 0);
    wait_ready(b, 1);
    int s = mp_process_sentinel(t.p);
    assert_true(s >= 0);
    /* The behaviour is "nothing happens": watch for a while. */
    if (mp_test_fd_readable(s, 1.0) != 0)
        mp_test_fail("the daemon died after the thread that started it "
                     "exited\n");
    mp_assert_int(mp_process_is_alive(t.p), 1);
    release(b);
    mp_assert_int(join_code(t.p), 3);
    mp_process_free(t.p);
    mp__arena_free(b);
}

/* A daemon may not start children: MP_EDAEMON. */
static void daemon_cannot_start_children(void **state)
{
    board_t *b = board_new();
    b->rc = 12345;
    targ_t a = {b, 0, 0, 0};
    mp_process_opts_t o = {0};
    o.daemon = 1;
    mp_process_t *p = start_child(t_daemon_start, &a, &o);
    mp_assert_int(mp_process_daemon(p), 1);
    mp_assert_int(join_code(p), 0);
    mp_assert_int(b->rc2, 1);
    mp_assert_int(b->rc, MP_EDAEMON);
    mp_process_free(p);
    mp__arena_free(b);
}

/* The helper program of exit_semantics: a main that starts a daemon that
 * blocks forever and a non-daemon that waits for SIGUSR1, tells the test
 * their pids, waits for "go", drops its handles and returns. */
static int helper_exit_semantics(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    mp_start_method_t m;
    if (mp_start_method_parse(argv[1], &m) != 0 || mp_set_start_method(m) != 0)
        return 3;
    int rep = atoi(argv[2]), go = atoi(argv[3]);
    board_t *b = mp__arena_alloc(sizeof *b);
    if (!b)
        return 4;
    targ_t a = {b, 0, 0, 0};
    mp_process_opts_t o = {0};
    o.daemon = 1;
    mp_process_t *d = NULL, *n = NULL;
    if (mp_process_new(&d, t_block_forever, &a, sizeof a, &o) != 0 ||
        mp_process_start(d) != 0)
        return 5;
    if (mp_process_new(&n, t_wait_sigusr1, &a, sizeof a, NULL) != 0 ||
        mp_process_start(n) != 0)
        return 6;
    if (mp_test_word_wait(&b->ready, 2, 120.0) != 0)
        return 7;
    pid_t pids[2] = {mp_process_pid(d), mp_process_pid(n)};
    if (write(rep, pids, sizeof pids) != (ssize_t)sizeof pids)
        return 8;
    close(rep);
    char c;
    if (read(go, &c, 1) != 1)
        return 9;
    close(go);
    mp_process_free(d);
    mp_process_free(n);
    return 0; /* main returns: the library's exit handling runs now */
}

/* When main returns, daemon children are terminated and non-daemon ones
 * joined: the daemon dies first, the program stays until the non-daemon
 * child ends, then exits with main's status. */
static void exit_semantics(void **state)
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
        execl(mp_test_self_exe(), mp_test_self_exe(), "--helper",
              "exit-semantics", mp_test_method_name(), r, g, (char *)NULL);
        _exit(127);
    }
    close(rep[1]);
    close(go[0]);
    int hfd = mp_test_pidfd(h);
    assert_true(hfd >= 0);
    pid_t pids[2] = {0, 0};
    ssize_t n = mp_test_read_full(rep[0], pids, sizeof pids, MP_TEST_LONG);
    close(rep[0]);
    if (n != (ssize_t)sizeof pids) {
        int st = 0;
        close(go[1]);
        close(hfd);
        kill(h, SIGKILL);
        waitpid(h, &st, 0);
        mp_test_fail("the helper did not report its children (read %zd; helper "
                     "status %#x)\n", n, st);
    }
    int dfd = mp_test_pidfd(pids[0]), nfd = mp_test_pidfd(pids[1]);
    assert_true(dfd >= 0);
    assert_true(nfd >= 0);
    char c = 'g';
    mp_assert_int(write(go[1], &c, 1), 1);
    close(go[1]);
    int failed = 0;
    if (mp_test_fd_readable(dfd, MP_TEST_LONG) != 1) {
        print_error("the daemon child was not terminated when main returned\n");
        failed = 1;
    } else if (mp_test_fd_readable(hfd, 2.0) != 0) {
        print_error("the program exited without waiting for its non-daemon "
                    "child\n");
        failed = 1;
    } else if (mp_test_fd_readable(nfd, 0) != 0) {
        print_error("the non-daemon child died when main returned\n");
        failed = 1;
    }
    kill(pids[1], SIGUSR1);
    int st = 0;
    if (mp_test_waitpid(h, &st, MP_TEST_LONG) != 0) {
        print_error("the program did not exit after its non-daemon child "
                    "ended\n");
        kill(pids[0], SIGKILL);
        kill(pids[1], SIGKILL);
        kill(h, SIGKILL);
        waitpid(h, &st, 0);
        failed = 1;
    } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        print_error("the program ended with %s %d (helper codes: 5/6 start "
                    "failed, 7 children not ready)\n",
                    WIFEXITED(st) ? "exit status" : "signal",
                    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        failed = 1;
    }
    if (mp_test_fd_readable(nfd, MP_TEST_LONG) != 1) {
        print_error("the non-daemon child is still alive\n");
        kill(pids[1], SIGKILL);
        failed = 1;
    }
    close(dfd);
    close(nfd);
    close(hfd);
    if (failed)
        fail();
}

/* Output the parent buffered before start is printed once; a child's
 * buffered output is flushed when it ends. */
static void stdio_flush(void **state)
{
    int pfd[2];
    fflush(stdout);
    int saved = dup(1);
    assert_true(saved >= 0);
    mp_assert_int(pipe2(pfd, O_CLOEXEC), 0);
    mp_assert_int(dup2(pfd[1], 1), 1);
    close(pfd[1]);
    printf("parent-buffered;");
    board_t *b = board_new();
    targ_t a = {b, 0, 0, 0};
    mp_process_t *p = new_child(t_printf, &a, NULL);
    int rc = mp_process_start(p);
    int jrc = rc == 0 ? mp_process_join(p, MP_TEST_LONG) : rc;
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    mp_assert_int(rc, 0);
    mp_assert_int(jrc, 0);
    char buf[256];
    ssize_t n = mp_test_read_full(pfd[0], buf, sizeof buf - 1, MP_TEST_LONG);
    close(pfd[0]);
    if (n < 0)
        mp_test_fail("reading the child's output: %zd (%s): a process still "
                     "holds the pipe\n", n, mp_strerror((int)n));
    buf[n] = 0;
    mp_assert_str(buf, "parent-buffered;child-buffered;");
    int code = -1;
    mp_assert_int(mp_process_exitcode(p, &code), 0);
    mp_assert_int(code, 0);
    mp_process_free(p);
    mp__arena_free(b);
}

/* 1,000 short-lived children, half joined, half dropped and reaped by
 * active_children: no zombie is left below this process. */
static void no_zombies_1000(void **state)
{
    board_t *b = board_new();
    targ_t a = {b, 0, 0, 0};
    for (int batch = 0; batch < 50; batch++) {
        for (int i = 0; i < 10; i++) {
            mp_process_t *p = start_child(t_return, &a, NULL);
            mp_assert_int(join_code(p), 0);
            mp_process_free(p);
        }
        for (int i = 0; i < 10; i++)
            mp_process_free(start_child(t_return, &a, NULL));
        double end = mp_test_now() + MP_TEST_LONG;
        int n;
        while ((n = mp_active_children(NULL, 0)) > 0 && mp_test_now() < end) {
            struct timespec ts = {0, 2 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        if (n != 0)
            mp_test_fail("batch %d: %d children still active after %.0f s\n",
                         batch, n, MP_TEST_LONG);
    }
    int z = mp_test_zombies(getpid());
    if (z) {
        static mp_test_proc_t pr[256];
        int np = mp_test_procs(getpid(), pr, 256);
        for (int i = 0; i < np && i < 256; i++)
            if (pr[i].state == 'Z')
                print_error("zombie %d (%s), parent %d\n", (int)pr[i].pid,
                            pr[i].comm, (int)pr[i].ppid);
        mp_test_fail("%d zombies after 1,000 children\n", z);
    }
    mp__arena_free(b);
}

/* ---- cases: descriptors, parents, threads ----------------------------- */

typedef struct {
    int wfd;            /* passed: the child writes its pid here */
    int other_fd;       /* not passed, not close-on-exec */
    uint64_t other_ino; /* what other_fd is in the parent */
    int expect_other;   /* 1: the child must have it (fork), 0: must not */
} fdarg_t;

static int t_fds(void *arg)
{
    fdarg_t *a = arg;
    pid_t me = getpid();
    if (write(a->wfd, &me, sizeof me) != (ssize_t)sizeof me)
        return 80;
    struct stat st;
    int has = fstat(a->other_fd, &st) == 0 && (uint64_t)st.st_ino == a->other_ino;
    if (has != a->expect_other)
        return 81;
    return 0;
}

/* pass_fds: a pipe end handed to the child works there by number; under
 * spawn and forkserver an unlisted descriptor is not inherited (under fork
 * everything is); nobody else keeps the passed end open. */
static void pass_fds_pipe(void **state)
{
    int res[2], other[2];
    mp_assert_int(pipe2(res, O_CLOEXEC), 0);
    mp_assert_int(pipe(other), 0);
    struct stat st;
    mp_assert_int(fstat(other[0], &st), 0);
    fdarg_t a = {res[1], other[0], (uint64_t)st.st_ino,
                 mp_test_method() == MP_START_FORK};
    mp_process_opts_t o = {0};
    o.pass_fds = &res[1];
    o.n_pass_fds = 1;
    mp_process_t *p = NULL;
    mp_assert_int(mp_process_new(&p, t_fds, &a, sizeof a, &o), 0);
    mp_assert_int(mp_process_start(p), 0);
    close(res[1]);
    pid_t got = 0;
    ssize_t n = mp_test_read_full(res[0], &got, sizeof got, MP_TEST_LONG);
    int code = join_code(p);
    if (code == 81)
        mp_test_fail("an unlisted descriptor was %s the child\n",
                     a.expect_other ? "missing in" : "inherited by");
    mp_assert_int(code, 0);
    mp_assert_int(n, sizeof got);
    mp_assert_int(got, mp_process_pid(p));
    char c;
    n = mp_test_read_full(res[0], &c, 1, MP_TEST_LONG);
    if (n != 0)
        mp_test_fail("no EOF on the passed pipe after the child ended (%zd): "
                     "another process keeps its write end\n", n);
    close(res[0]);
    close(other[0]);
    close(other[1]);
    mp_process_free(p);

    /* bad lists */
    int fds[MP_PASS_FDS_MAX + 1];
    for (int i = 0; i <= MP_PASS_FDS_MAX; i++)
        fds[i] = 2;
    o.pass_fds = fds;
    o.n_pass_fds = MP_PASS_FDS_MAX + 1;
    p = NULL;
    mp_assert_int(mp_process_new(&p, t_fds, &a, sizeof a, &o), -EINVAL);
    o.pass_fds = NULL;
    o.n_pass_fds = 1;
    mp_assert_int(mp_process_new(&p, t_fds, &a, sizeof a, &o), -EINVAL);
    fds[0] = -1;
    o.pass_fds = fds;
    mp_assert_int(mp_process_new(&p, t_fds, &a, sizeof a, &o), -EINVAL);
}

/* t_watch_parent: a non-daemon grandchild that watches its parent. */
static int t_watch_parent(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    mp_process_t *par = mp_parent_process();
    b->rc = par ? mp_process_is_alive(par) : -100;
    mp_test_word_inc(&b->ready);
    double end = mp_test_now() + 120.0;
    while (par && mp_process_is_alive(par) == 1 && mp_test_now() < end) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    b->rc2 = par ? mp_process_is_alive(par) : -100;
    mp_test_word_inc(&b->done);
    return 0;
}

static int t_middle_nondaemon(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    mp_process_t *g = NULL;
    targ_t ga = {b, 0, 0, 0};
    if (mp_process_new(&g, t_watch_parent, &ga, sizeof ga, NULL) != 0 ||
        mp_process_start(g) != 0)
        return 50;
    if (mp_test_word_wait(&b->ready, 1, 120.0) != 0)
        return 52;
    b->pid = mp_process_pid(g);
    mp_test_word_inc(&b->ready);
    for (;;)
        mp_test_word_wait(&b->never, 1, MP_FOREVER);
    return 0;
}

/* parent_process().is_alive() turns 0 when the parent dies, even by
 * SIGKILL; a non-daemon child outlives its killed parent. */
static void parent_is_alive_after_kill(void **state)
{
    board_t *b = board_new();
    targ_t a = {b, 0, 0, 0};
    mp_process_t *m = start_child(t_middle_nondaemon, &a, NULL);
    wait_ready(b, 2);
    pid_t g = b->pid;
    assert_true(g > 0);
    mp_assert_int(mp_process_kill(m), 0);
    mp_assert_int(join_code(m), -SIGKILL);
    if (mp_test_word_wait(&b->done, 1, MP_TEST_LONG) != 0) {
        kill(g, SIGKILL);
        mp_test_fail("the grandchild never saw its parent die\n");
    }
    mp_assert_int(b->rc, 1);
    mp_assert_int(b->rc2, 0);
    mp_assert_int(mp_test_wait_gone(g, MP_TEST_LONG), 0);
    mp_process_free(m);
    mp__arena_free(b);
}

typedef struct {
    board_t *b;
    int me, bad;
} starter_t;

static void *thr_starter(void *arg)
{
    starter_t *s = arg;
    for (int i = 0; i < 25 && !s->bad; i++) {
        targ_t a = {s->b, 10 * s->me + i % 10, 0, 0};
        mp_process_t *p = NULL;
        int code = -1;
        if (mp_process_new(&p, t_return, &a, sizeof a, NULL) != 0)
            s->bad = 1;
        else if (mp_process_start(p) != 0)
            s->bad = 2;
        else if (mp_process_join(p, 60.0 * mp_test_scale()) != 0)
            s->bad = 3;
        else if (mp_process_exitcode(p, &code) != 0 || code != a.code)
            s->bad = 4;
        mp_process_free(p);
    }
    return NULL;
}

/* Four threads start and join 25 children each, at once. */
static void start_from_threads(void **state)
{
    board_t *b = board_new();
    pthread_t th[4];
    starter_t s[4];
    for (int i = 0; i < 4; i++) {
        s[i] = (starter_t){b, i, 0};
        mp_assert_int(pthread_create(&th[i], NULL, thr_starter, &s[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        if (s[i].bad)
            mp_test_fail("thread %d: %s\n", i,
                         (const char *[]){"", "new failed", "start failed",
                                          "join timed out",
                                          "wrong exit code"}[s[i].bad]);
    }
    mp_assert_int(mp_active_children(NULL, 0), 0);
    mp__arena_free(b);
}

/* ---- cases: arguments, authkey, API ----------------------------------- */

/* Invalid arguments give -EINVAL and change nothing. */
static void invalid_args(void **state)
{
    board_t *b = board_new();
    targ_t a = {b, 0, 0, 0};
    mp_process_t *p = NULL;
    char longname[1001], name255[256], name257[MP_NAME_MAX + 2];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    memset(name255, 'y', sizeof name255 - 1);
    name255[sizeof name255 - 1] = 0;
    memset(name257, 'z', sizeof name257 - 1);
    name257[sizeof name257 - 1] = 0;
    uint8_t key[MP_AUTHKEY_MAX + 1];
    memset(key, 0x5A, sizeof key);

    mp_assert_int(mp_process_new(NULL, t_return, &a, sizeof a, NULL), -EINVAL);
    mp_assert_int(mp_process_new(&p, NULL, &a, sizeof a, NULL), -EINVAL);
    mp_assert_int(mp_process_new(&p, t_return, NULL, 5, NULL), -EINVAL);
    mp_process_opts_t o = {0};
    o.name = longname;
    mp_assert_int(mp_process_new(&p, t_return, &a, sizeof a, &o), -EINVAL);
    o.name = name257;
    mp_assert_int(mp_process_new(&p, t_return, &a, sizeof a, &o), -EINVAL);
    o.name = name255;
    mp_assert_int(mp_process_new(&p, t_return, &a, sizeof a, &o), 0);
    mp_assert_str(mp_process_name(p), name255);
    mp_process_free(p);
    p = NULL;
    memset(&o, 0, sizeof o);
    o.authkey = key;
    o.authkey_len = 0;
    mp_assert_int(mp_process_new(&p, t_return, &a, sizeof a, &o), -EINVAL);
    o.authkey_len = MP_AUTHKEY_MAX + 1;
    mp_assert_int(mp_process_new(&p, t_return, &a, sizeof a, &o), -EINVAL);
    o.authkey_len = MP_AUTHKEY_MAX;
    mp_assert_int(mp_process_new(&p, t_return, &a, sizeof a, &o), 0);
    mp_process_free(p);
    p = NULL;
    memset(&o, 0, sizeof o);
    o.start_method = (mp_start_method_t)99;
    mp_assert_int(mp_process_new(&p, t_return, &a, sizeof a, &o), -EINVAL);
    p = NULL;
    mp_assert_int(mp_process_new(&p, t_return, NULL, 0, NULL), 0);
    mp_process_free(p);

    /* on a valid handle */
    p = new_child(t_return, &a, NULL);
    mp_assert_int(mp_process_set_name(p, NULL), -EINVAL);
    mp_assert_int(mp_process_set_name(p, ""), -EINVAL);
    mp_assert_int(mp_process_set_name(p, longname), -EINVAL);
    mp_assert_int(mp_process_set_name(p, name257), -EINVAL);
    assert_true(parse_process_n(mp_process_name(p)) > 0);
    mp_assert_int(mp_process_set_authkey(p, NULL, 4), -EINVAL);
    mp_assert_int(mp_process_set_authkey(p, key, 0), -EINVAL);
    mp_assert_int(mp_process_set_authkey(p, key, MP_AUTHKEY_MAX + 1), -EINVAL);
    mp_assert_int(mp_process_authkey(p, NULL, 8), -EINVAL);
    mp_assert_int(mp_process_exitcode(p, NULL), -EINVAL);
    mp_assert_int(mp_process_start(p), 0);
    mp_assert_int(mp_process_join(p, NAN), -EINVAL);
    mp_assert_int(mp_process_join(p, MP_TEST_LONG), 0);
    mp_process_free(p);

    /* NULL handles */
    int code;
    char kb[8];
    mp_assert_int(mp_process_start(NULL), -EINVAL);
    mp_assert_int(mp_process_run(NULL), -EINVAL);
    mp_assert_int(mp_process_join(NULL, 0), -EINVAL);
    assert_true(mp_process_is_alive(NULL) < 0);
    mp_assert_int(mp_process_terminate(NULL), -EINVAL);
    mp_assert_int(mp_process_kill(NULL), -EINVAL);
    mp_assert_int(mp_process_exitcode(NULL, &code), -EINVAL);
    mp_assert_int(mp_process_sentinel(NULL), -EINVAL);
    assert_true(mp_process_daemon(NULL) < 0);
    mp_assert_int(mp_process_set_daemon(NULL, 1), -EINVAL);
    mp_assert_int(mp_process_set_name(NULL, "x"), -EINVAL);
    mp_assert_int(mp_process_authkey(NULL, kb, sizeof kb), -EINVAL);
    mp_assert_int(mp_process_set_authkey(NULL, "k", 1), -EINVAL);
    mp_process_free(NULL);

    /* the current process cannot be joined */
    mp_assert_int(mp_process_join(mp_current_process(), 0), -EINVAL);
    mp_assert_int(mp_active_children(NULL, 3), -EINVAL);

    mp_start_method_t m = MP_START_DEFAULT;
    mp_assert_int(mp_set_start_method(MP_START_DEFAULT), -EINVAL);
    mp_assert_int(mp_set_start_method((mp_start_method_t)99), -EINVAL);
    mp_assert_int(mp_get_start_method(), mp_test_method());
    mp_assert_int(mp_start_method_parse("bogus", &m), -EINVAL);
    mp_assert_int(mp_start_method_parse("", &m), -EINVAL);
    mp_assert_int(mp_start_method_parse(NULL, &m), -EINVAL);
    mp_assert_int(mp_start_method_parse("fork", NULL), -EINVAL);
    assert_null(mp_start_method_name((mp_start_method_t)99));
    mp__arena_free(b);
}

/* The authkey: 32 random bytes in main, inherited by children and their
 * children, settable per child (before start) and on the current process. */
static void authkey(void **state)
{
    uint8_t main_key[MP_AUTHKEY_MAX], buf[MP_AUTHKEY_MAX];
    mp_process_t *cur = mp_current_process();
    mp_assert_int(mp_process_authkey(cur, main_key, sizeof main_key), 32);
    uint8_t small[4];
    mp_assert_int(mp_process_authkey(cur, small, sizeof small), 32);
    assert_memory_equal(small, main_key, 4);

    board_t *b = board_new();
    targ_t a = {b, 0, 0, 1}; /* the child also starts a grandchild */
    mp_process_t *p = new_child(t_key, &a, NULL);
    mp_assert_int(mp_process_authkey(p, buf, sizeof buf), 32);
    assert_memory_equal(buf, main_key, 32);
    mp_assert_int(mp_process_start(p), 0);
    mp_assert_int(join_code(p), 0);
    mp_assert_int(b->keylen, 32);
    assert_memory_equal(b->key, main_key, 32);
    mp_assert_int(b->keylen2, 32);
    assert_memory_equal(b->key2, main_key, 32);
    mp_process_free(p);

    /* set_authkey before start: the child and its child get it */
    memset(b->key, 0, sizeof b->key);
    memset(b->key2, 0, sizeof b->key2);
    p = new_child(t_key, &a, NULL);
    mp_assert_int(mp_process_set_authkey(p, "secret", 6), 0);
    mp_assert_int(mp_process_authkey(p, buf, sizeof buf), 6);
    assert_memory_equal(buf, "secret", 6);
    mp_assert_int(mp_process_start(p), 0);
    mp_assert_int(mp_process_set_authkey(p, "late", 4), MP_ESTARTED);
    mp_assert_int(join_code(p), 0);
    mp_assert_int(b->keylen, 6);
    assert_memory_equal(b->key, "secret", 6);
    mp_assert_int(b->keylen2, 6);
    assert_memory_equal(b->key2, "secret", 6);
    mp_process_free(p);

    /* opts.authkey, the longest allowed */
    uint8_t longkey[MP_AUTHKEY_MAX];
    for (int i = 0; i < MP_AUTHKEY_MAX; i++)
        longkey[i] = (uint8_t)(i * 7 + 1);
    mp_process_opts_t o = {0};
    o.authkey = longkey;
    o.authkey_len = sizeof longkey;
    targ_t a0 = {b, 0, 0, 0};
    p = start_child(t_key, &a0, &o);
    mp_assert_int(join_code(p), 0);
    mp_assert_int(b->keylen, MP_AUTHKEY_MAX);
    assert_memory_equal(b->key, longkey, MP_AUTHKEY_MAX);
    mp_process_free(p);

    /* the current process's key is what new children inherit */
    mp_assert_int(mp_process_set_authkey(cur, "newmain", 7), 0);
    mp_assert_int(mp_process_authkey(cur, buf, sizeof buf), 7);
    p = start_child(t_key, &a0, NULL);
    mp_assert_int(join_code(p), 0);
    mp_assert_int(b->keylen, 7);
    assert_memory_equal(b->key, "newmain", 7);
    mp_process_free(p);
    mp__arena_free(b);
}

/* mp_strerror names every library code (details in test_errors). */
static void strerror_codes(void **state)
{
    const int codes[] = {MP_EEMPTY, MP_EFULL, MP_EEOF, MP_ECLOSED, MP_EBROKEN,
                         MP_EAUTH, MP_ETOOSHORT, MP_EWORKERDIED, MP_ESTARTED,
                         MP_ENOTSTARTED, MP_ERUNNING, MP_EDAEMON, MP_ESPAWN};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *s = mp_strerror(codes[i]);
        assert_non_null(s);
        if (!*s || !strcmp(s, "unknown error"))
            mp_test_fail("mp_strerror(%d) = \"%s\"\n", codes[i], s);
    }
}

/* Start-method names, get/set, explicit per-process method, cpu_count. */
static void start_method_api(void **state)
{
    const struct {
        mp_start_method_t m;
        const char *name;
    } ms[] = {{MP_START_FORK, "fork"},
              {MP_START_SPAWN, "spawn"},
              {MP_START_FORKSERVER, "forkserver"}};
    mp_assert_int(mp_get_start_method(), mp_test_method());
    for (int i = 0; i < 3; i++) {
        mp_assert_str(mp_start_method_name(ms[i].m), ms[i].name);
        mp_start_method_t m = MP_START_DEFAULT;
        mp_assert_int(mp_start_method_parse(ms[i].name, &m), 0);
        mp_assert_int(m, ms[i].m);
        mp_assert_int(mp_set_start_method(ms[i].m), 0);
        mp_assert_int(mp_get_start_method(), ms[i].m);
    }
    mp_assert_int(mp_set_start_method(mp_test_method()), 0);
    int n = mp_cpu_count();
    assert_true(n >= 1 && n <= 65536);

    board_t *b = board_new();
    targ_t a = {b, 5, 0, 0};
    mp_process_opts_t o = {0};
    o.start_method = mp_test_method();
    mp_process_t *p = start_child(t_return, &a, &o);
    mp_assert_int(join_code(p), 5);
    mp_process_free(p);
    mp__arena_free(b);
}

typedef struct {
    mp_process_t *p;
    int rc, code, crc;
} joiner_t;

static void *thr_join(void *arg)
{
    joiner_t *j = arg;
    j->rc = mp_process_join(j->p, 60.0 * mp_test_scale());
    j->crc = mp_process_exitcode(j->p, &j->code);
    return NULL;
}

/* Several threads join one handle at once; all see the same result. */
static void concurrent_join_threads(void **state)
{
    board_t *b = board_new();
    targ_t a = {b, 4, 0, 0};
    mp_process_t *p = start_child(t_block, &a, NULL);
    wait_ready(b, 1);
    pthread_t th[4];
    joiner_t j[4];
    for (int i = 0; i < 4; i++) {
        j[i] = (joiner_t){p, -1, -1, -1};
        mp_assert_int(pthread_create(&th[i], NULL, thr_join, &j[i]), 0);
    }
    mp_assert_int(mp_process_is_alive(p), 1);
    release(b);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        mp_assert_int(j[i].rc, 0);
        mp_assert_int(j[i].crc, 0);
        mp_assert_int(j[i].code, 4);
    }
    mp_assert_int(mp_process_is_alive(p), 0);
    mp_process_free(p);
    mp__arena_free(b);
}

/* ---- cases: fault injection ------------------------------------------- */

static const struct {
    mp__sys_id id;
    int err;
    const char *name;
} faults[] = {
    {MP__SYS_FORK, EAGAIN, "fork"},
    {MP__SYS_PIPE, EMFILE, "pipe"},
    {MP__SYS_SOCKETPAIR, EMFILE, "socketpair"},
    {MP__SYS_PIDFD_OPEN, EMFILE, "pidfd_open"},
    {MP__SYS_MMAP, ENOMEM, "mmap"},
    {MP__SYS_MEMFD, EMFILE, "memfd"},
    {MP__SYS_FTRUNCATE, ENOSPC, "ftruncate"},
    {MP__SYS_MALLOC, ENOMEM, "malloc"},
    {MP__SYS_EXEC, ENOENT, "exec"},
    {MP__SYS_SOCKET, EMFILE, "socket"},
};
#define NFAULTS (sizeof faults / sizeof faults[0])

/* live_set lists the live processes below us. */
static int live_set(pid_t *out, int cap)
{
    static mp_test_proc_t pr[512];
    int n = mp_test_procs(getpid(), pr, 512), k = 0;
    for (int i = 0; i < n && i < 512; i++)
        if (pr[i].state != 'Z' && k < cap)
            out[k++] = pr[i].pid;
    return k;
}

/* no_new_processes fails if a live process appeared below us, or a zombie
 * stays (others' zombies get a moment to be reaped). */
static void no_new_processes(const pid_t *before, int nb, const char *what)
{
    static mp_test_proc_t pr[512];
    double end = mp_test_now() + 5.0 * mp_test_scale();
    for (;;) {
        int n = mp_test_procs(getpid(), pr, 512), bad = -1;
        for (int i = 0; i < n && i < 512 && bad < 0; i++) {
            if (pr[i].state == 'Z') {
                bad = i;
                continue;
            }
            int known = 0;
            for (int j = 0; j < nb; j++)
                known |= before[j] == pr[i].pid;
            if (!known)
                bad = i;
        }
        if (bad < 0)
            return;
        if (pr[bad].state != 'Z' || pr[bad].ppid == getpid() ||
            mp_test_now() >= end)
            mp_test_fail("%s: process %d (%s) state %c parent %d left behind\n",
                         what, (int)pr[bad].pid, pr[bad].comm, pr[bad].state,
                         (int)pr[bad].ppid);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* In a warm process, each system call that start makes fails in turn (the
 * 1st, 2nd... call of each kind): start returns -errno (or MP_ESPAWN),
 * leaks no descriptor and no process, the handle is still unstarted, and a
 * later start succeeds. */
static void fault_start(void **state)
{
    static mp_test_fds_t fa, fb;
    static char msg[4096];
    pid_t before[64];
    board_t *b = board_new();
    targ_t a = {b, 7, 0, 0};
    for (size_t f = 0; f < NFAULTS; f++) {
        int failures = 0, zeros = 0;
        for (int nth = 1; nth <= 8 && zeros < 2; nth++) {
            mp_process_t *p = new_child(t_return, &a, NULL);
            mp_test_fds_snap(&fa);
            int nb = live_set(before, 64);
            mp__fault_arm(faults[f].id, nth, faults[f].err);
            int rc = mp_process_start(p);
            mp__fault_clear();
            if (rc == 0) {
                /* Not reached (or survived): the child may have inherited
                 * the armed fault, so its exit code is not checked. */
                mp_assert_int(mp_process_join(p, MP_TEST_LONG), 0);
                mp_process_free(p);
                zeros++;
                continue;
            }
            zeros = 0;
            failures++;
            if (rc != -faults[f].err && rc != MP_ESPAWN)
                mp_test_fail("%s call %d failing with -%d: start returned %d "
                             "(%s)\n", faults[f].name, nth, faults[f].err, rc,
                             mp_strerror(rc));
            mp_test_fds_snap(&fb);
            if (mp_test_fds_diff(&fa, &fb, msg, sizeof msg))
                mp_test_fail("%s call %d failing: descriptors leaked:%s\n",
                             faults[f].name, nth, msg);
            char what[64];
            snprintf(what, sizeof what, "%s call %d failing", faults[f].name, nth);
            no_new_processes(before, nb, what);
            mp_assert_int(mp_process_join(p, 0), MP_ENOTSTARTED);
            mp_assert_int(mp_process_is_alive(p), 0);
            mp_assert_int(mp_process_pid(p), 0);
            rc = mp_process_start(p);
            if (rc != 0)
                mp_test_fail("start after a failed start (%s call %d): %d (%s)\n",
                             faults[f].name, nth, rc, mp_strerror(rc));
            mp_assert_int(join_code(p), 7);
            mp_process_free(p);
        }
        print_message("fault %-10s: %d failing start(s) @%s\n", faults[f].name,
                      failures, mp_test_method_name());
        if (faults[f].id == MP__SYS_FORK && failures == 0 &&
            mp_test_method() != MP_START_FORKSERVER)
            mp_test_fail("a failing fork never made start fail\n");
        if (faults[f].id == MP__SYS_EXEC && failures == 0 &&
            mp_test_method() == MP_START_SPAWN)
            mp_test_fail("a failing exec never made a spawn start fail\n");
    }
    mp__arena_free(b);
}

/* mp_process_new with each allocation failing in turn: -ENOMEM, nothing
 * leaked (ASan checks memory), and the next new works. */
static void fault_new(void **state)
{
    board_t *b = board_new();
    targ_t a = {b, 0, 0, 0};
    mp_process_opts_t o = {0};
    o.name = "faulty";
    o.authkey = "key";
    o.authkey_len = 3;
    int failures = 0;
    for (int nth = 1; nth <= 10; nth++) {
        mp_process_t *p = NULL;
        mp__fault_arm(MP__SYS_MALLOC, nth, ENOMEM);
        int rc = mp_process_new(&p, t_return, &a, sizeof a, &o);
        mp__fault_clear();
        if (rc == 0) {
            mp_process_free(p);
            break;
        }
        failures++;
        mp_assert_int(rc, -ENOMEM);
    }
    print_message("mp_process_new: %d allocations can fail\n", failures);
    mp_process_t *p = new_child(t_return, &a, &o);
    mp_assert_str(mp_process_name(p), "faulty");
    mp_process_free(p);
    mp__arena_free(b);
}

/* What a cold sub-child reports. */
typedef struct {
    int rc_new, rc1, rc_join_failed, pid_failed, rc2, rc_join, code;
    int nlive, nzomb, nhelp;
    pid_t help[16];
    char kinds[1024];
    char live[512];
} cold_t;

/* cold_sub runs in a raw-forked child of a process that never used the
 * library: arm the fault, start (the first start of the program), then
 * start again cleanly, and report what is left. */
static void cold_sub(cold_t *r, int f, int nth)
{
    static mp_test_fds_t fa, fb;
    static mp_test_proc_t pr[64];
    targ_t a = {NULL, 7, 0, 0};
    mp_process_t *p = NULL;
    mp_test_fds_snap(&fa);
    if (f >= 0)
        mp__fault_arm(faults[f].id, nth, faults[f].err);
    r->rc_new = mp_process_new(&p, t_return, &a, sizeof a, NULL);
    if (r->rc_new != 0) {
        mp__fault_clear();
        if (mp_process_new(&p, t_return, &a, sizeof a, NULL) != 0)
            exit(3);
    }
    r->rc1 = mp_process_start(p);
    mp__fault_clear();
    if (r->rc1 == 0) {
        mp_process_join(p, 60.0);
        mp_process_free(p);
        p = NULL;
        if (mp_process_new(&p, t_return, &a, sizeof a, NULL) != 0)
            exit(4);
    } else {
        r->rc_join_failed = mp_process_join(p, 0);
        r->pid_failed = mp_process_pid(p);
    }
    r->rc2 = mp_process_start(p);
    r->rc_join = r->rc2 == 0 ? mp_process_join(p, 60.0) : r->rc2;
    r->code = -1;
    mp_process_exitcode(p, &r->code);
    mp_process_free(p);
    mp_test_fds_snap(&fb);
    mp_test_fds_kinds(&fa, &fb, r->kinds, sizeof r->kinds);
    int n = mp_test_procs(getpid(), pr, 64);
    for (int i = 0; i < n && i < 64; i++) {
        if (pr[i].state == 'Z') {
            r->nzomb++;
            continue;
        }
        r->nlive++;
        if (r->nhelp < 16)
            r->help[r->nhelp++] = pr[i].pid;
        size_t l = strlen(r->live);
        snprintf(r->live + l, sizeof r->live - l, "%s ", pr[i].comm);
    }
    fflush(NULL);
    exit(0); /* through the library's exit handling */
}

static void run_cold(cold_t *r, int f, int nth)
{
    memset(r, 0, sizeof *r);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        cold_sub(r, f, nth);
    int st;
    if (mp_test_waitpid(pid, &st, 2 * MP_TEST_LONG) != 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        mp_test_fail("cold run (%s call %d) hung\n",
                     f >= 0 ? faults[f].name : "no fault", nth);
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        mp_test_fail("cold run (%s call %d) ended with %s %d\n",
                     f >= 0 ? faults[f].name : "no fault", nth,
                     WIFEXITED(st) ? "status" : "signal",
                     WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    for (int i = 0; i < r->nhelp; i++)
        if (mp_test_wait_gone(r->help[i], MP_TEST_LONG) != 0)
            mp_test_fail("cold run (%s call %d): helper %d did not exit with "
                         "its program\n", f >= 0 ? faults[f].name : "no fault",
                         nth, (int)r->help[i]);
}

/* In a fresh process (nothing initialized: arena, forkserver...), each
 * system call of the first start fails in turn. The program must end up
 * exactly like one where nothing failed: same kinds of descriptors, same
 * number of helper processes, no zombie; the failed handle is unstarted and
 * a later start succeeds. */
static void fault_start_cold(void **state)
{
    cold_t *ref = mmap(NULL, 2 * sizeof(cold_t), PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(ref != MAP_FAILED);
    cold_t *r = ref + 1;
    run_cold(ref, -1, 0);
    mp_assert_int(ref->rc1, 0);
    mp_assert_int(ref->code, 7);
    mp_assert_int(ref->nzomb, 0);
    print_message("cold reference @%s: fds [%s], helpers [%s]\n",
                  mp_test_method_name(), ref->kinds, ref->live);
    for (size_t f = 0; f < NFAULTS; f++) {
        int failures = 0, zeros = 0;
        for (int nth = 1; nth <= 8 && zeros < 2; nth++) {
            run_cold(r, (int)f, nth);
            const char *n = faults[f].name;
            if (r->rc_new != 0) {
                failures++;
                if (r->rc_new != -faults[f].err)
                    mp_test_fail("%s call %d failing: new returned %d (%s)\n", n,
                                 nth, r->rc_new, mp_strerror(r->rc_new));
            }
            if (r->rc1 != 0) {
                failures++;
                if (r->rc1 != -faults[f].err && r->rc1 != MP_ESPAWN)
                    mp_test_fail("%s call %d failing: start returned %d (%s)\n",
                                 n, nth, r->rc1, mp_strerror(r->rc1));
                mp_assert_int(r->rc_join_failed, MP_ENOTSTARTED);
                mp_assert_int(r->pid_failed, 0);
            }
            if (r->rc_new == 0 && r->rc1 == 0)
                zeros++;
            else
                zeros = 0;
            if (r->rc2 != 0 || r->rc_join != 0 || r->code != 7)
                mp_test_fail("%s call %d failing: the next start gave %d (%s), "
                             "join %d, exit code %d\n", n, nth, r->rc2,
                             mp_strerror(r->rc2), r->rc_join, r->code);
            if (strcmp(r->kinds, ref->kinds) != 0)
                mp_test_fail("%s call %d failing: descriptors at the end [%s], "
                             "without the fault [%s]\n", n, nth, r->kinds,
                             ref->kinds);
            if (r->nlive != ref->nlive || r->nzomb != 0)
                mp_test_fail("%s call %d failing: %d live processes [%s] and "
                             "%d zombies at the end; without the fault %d [%s]"
                             "\n", n, nth, r->nlive, r->live, r->nzomb,
                             ref->nlive, ref->live);
        }
        print_message("cold fault %-10s: %d failing call(s) @%s\n",
                      faults[f].name, failures, mp_test_method_name());
    }
    munmap(ref, 2 * sizeof(cold_t));
}

int main(int argc, char **argv)
{
    static const mp_test_case_t cases[] = {
        MP_TEST(exit_codes),
        MP_TEST(null_arg),
        MP_TEST(target_calls_exit),
        MP_TEST(exit_code_signals),
        MP_TEST(join_timeout),
        MP_TEST(is_alive_reaps),
        MP_TEST(state_errors),
        MP_TEST(sentinel_readable),
        MP_TEST(data_isolation),
        MP_TEST(names_and_identity),
        MP_TEST(active_children),
        MP_TEST(active_children_in_child),
        MP_TEST(free_running_child),
        MP_TEST_T(hundred_children, 120),
        MP_TEST_T(process_tree, 120),
        MP_TEST(daemon_dies_with_killed_parent),
        MP_TEST(daemon_survives_thread_exit),
        MP_TEST(daemon_cannot_start_children),
        MP_TEST(exit_semantics),
        MP_TEST(stdio_flush),
        MP_TEST(pass_fds_pipe),
        MP_TEST(parent_is_alive_after_kill),
        MP_TEST_T(start_from_threads, 120),
        MP_TEST_T(no_zombies_1000, 300),
        MP_TEST(invalid_args),
        MP_TEST(authkey),
        MP_TEST(strerror_codes),
        MP_TEST(start_method_api),
        MP_TEST(concurrent_join_threads),
        MP_TEST_T(fault_start, 180),
        MP_TEST(fault_new),
        MP_TEST_COLD_T(fault_start_cold, 300),
    };
    static const mp_test_helper_t helpers[] = {
        {"exit-semantics", helper_exit_semantics},
    };
    static const mp_test_config_t cfg = {
        .per_method = 1,
        .warmup = warm_process,
        .helpers = helpers,
        .nhelpers = sizeof helpers / sizeof helpers[0],
    };
    return mp_test_main(argc, argv, cases, sizeof cases / sizeof cases[0], &cfg);
}

/* test_arena.c: the shared arena (src/arena.h, internal API): sizes, zeroing,
 * alignment, growth, sharing at the same address with children of every
 * start method, heap invariants under random use, crash consistency (an
 * owner SIGKILLed inside the allocator's critical section) and concurrent
 * use by processes and threads.
 * mp-test: timeout=600 */
#include "mp_test.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arena.h"
#include "sys/platform.h"

#define MiB ((size_t)1 << 20)

/* ---- helpers ---------------------------------------------------------- */

static int warm_arena(void)
{
    int rc = mp__arena_init();
    if (rc != 0)
        return rc;
    void *p = mp__arena_alloc(16);
    if (!p)
        return -ENOMEM;
    mp__arena_free(p);
    return 0;
}

static void check_arena(void)
{
    const char *why = NULL;
    int rc = mp__arena_check(&why);
    if (rc != 0)
        mp_test_fail("mp__arena_check: %d (%s): %s\n", rc, mp_strerror(rc),
                     why ? why : "(no reason)");
}

static mp__arena_stats_t stats(void)
{
    mp__arena_stats_t s;
    memset(&s, 0, sizeof s);
    int rc = mp__arena_stats(&s);
    mp_assert_int(rc, 0);
    return s;
}

static int all_zero(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i])
            return 0;
    return 1;
}

static int all_byte(const void *p, size_t n, unsigned char v)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != v)
            return 0;
    return 1;
}

/* xorshift64*: deterministic randomness, seed printed on failure. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t test_seed(void)
{
    const char *e = getenv("MP_TEST_SEED");
    return e && *e ? strtoull(e, NULL, 0) : 0x9E3779B97F4A7C15ULL;
}

/* random_size draws mostly small sizes, some medium, a few large. */
static size_t random_size(uint64_t *s)
{
    uint64_t r = rng_next(s);
    unsigned pick = (unsigned)(r % 100);
    r >>= 8;
    if (pick < 70)
        return 1 + (size_t)(r % 256);
    if (pick < 95)
        return 257 + (size_t)(r % 8000);
    return 8193 + (size_t)(r % (256 * 1024));
}

/* ---- cases ------------------------------------------------------------ */

/* Many sizes at once: non-NULL, 16-byte aligned, zeroed, in the arena, no
 * two blocks overlap (each keeps its own fill), and freeing returns all. */
static void arena_sizes(void **state)
{
    static size_t sizes[400];
    static unsigned char *blk[400];
    size_t n = 0;
    for (size_t s = 0; s <= 80; s++)
        sizes[n++] = s;
    for (size_t p = 128; p <= 4 * MiB; p <<= 1) {
        sizes[n++] = p - 1;
        sizes[n++] = p;
        sizes[n++] = p + 1;
    }
    sizes[n++] = 1000;
    sizes[n++] = 4095;
    sizes[n++] = 65537;
    sizes[n++] = 3 * MiB + 5;

    mp__arena_stats_t s0 = stats();
    for (size_t i = 0; i < n; i++) {
        blk[i] = mp__arena_alloc(sizes[i]);
        if (!blk[i])
            mp_test_fail("mp__arena_alloc(%zu) returned NULL\n", sizes[i]);
        if ((uintptr_t)blk[i] % 16 != 0)
            mp_test_fail("mp__arena_alloc(%zu) = %p is not 16-byte aligned\n",
                         sizes[i], (void *)blk[i]);
        mp_assert_int(mp__arena_contains(blk[i]), 1);
        if (sizes[i] && !mp__arena_contains(blk[i] + sizes[i] - 1))
            mp_test_fail("last byte of a %zu-byte block is outside the arena\n",
                         sizes[i]);
        if (!all_zero(blk[i], sizes[i]))
            mp_test_fail("mp__arena_alloc(%zu) is not zeroed\n", sizes[i]);
        memset(blk[i], (int)(i % 251) + 1, sizes[i]);
    }
    for (size_t i = 0; i < n; i++)
        if (!all_byte(blk[i], sizes[i], (unsigned char)((i % 251) + 1)))
            mp_test_fail("block %zu (%zu bytes) was overwritten: blocks "
                         "overlap\n", i, sizes[i]);
    mp__arena_stats_t s1 = stats();
    assert_true(s1.used > s0.used);
    assert_true(s1.mapped >= s1.used);
    check_arena();
    for (size_t i = 0; i < n; i++)
        mp__arena_free(blk[i]);
    mp__arena_free(NULL);
    check_arena();
    mp_assert_int(stats().used, s0.used);

    /* A freed block comes back zeroed. */
    for (int r = 0; r < 50; r++) {
        unsigned char *p = mp__arena_alloc(100);
        assert_non_null(p);
        if (!all_zero(p, 100))
            mp_test_fail("a reused 100-byte block is not zeroed (round %d)\n", r);
        memset(p, 0xFF, 100);
        mp__arena_free(p);
    }
    int local = 0;
    void *heap = malloc(32);
    mp_assert_int(mp__arena_contains(&local), 0);
    mp_assert_int(mp__arena_contains(heap), 0);
    mp_assert_int(mp__arena_contains(NULL), 0);
    free(heap);
    check_arena();
}

/* The arena grows past its first size: 256 MiB in 1 MiB blocks, then a
 * 64 MiB block; impossible sizes give NULL and leave the heap intact. */
static void arena_growth(void **state)
{
    enum { N = 256 };
    static unsigned char *b[N];
    mp__arena_stats_t s0 = stats();
    for (int i = 0; i < N; i++) {
        b[i] = mp__arena_alloc(MiB);
        if (!b[i])
            mp_test_fail("allocation %d of 1 MiB failed (%zu MiB used)\n", i,
                         stats().used / MiB);
        assert_true((uintptr_t)b[i] % 16 == 0);
        if (b[i][0] || b[i][MiB - 1] || b[i][MiB / 2])
            mp_test_fail("1 MiB block %d is not zeroed\n", i);
        b[i][0] = (unsigned char)i;
        b[i][MiB - 1] = (unsigned char)~i;
    }
    mp__arena_stats_t s1 = stats();
    if (s1.used < s0.used + (size_t)N * MiB)
        mp_test_fail("used %zu after 256 MiB of allocations (was %zu)\n",
                     s1.used, s0.used);
    if (s1.mapped < (size_t)N * MiB)
        mp_test_fail("mapped %zu < 256 MiB\n", s1.mapped);
    for (int i = 0; i < N; i++)
        if (b[i][0] != (unsigned char)i || b[i][MiB - 1] != (unsigned char)~i)
            mp_test_fail("1 MiB block %d was overwritten\n", i);
    check_arena();
    unsigned char *big = mp__arena_alloc(64 * MiB);
    assert_non_null(big);
    big[64 * MiB - 1] = 1;
    mp__arena_free(big);
    for (int i = 0; i < N; i++)
        mp__arena_free(b[i]);
    check_arena();

    /* Impossible requests: NULL, no damage, no overflow. */
    assert_null(mp__arena_alloc(SIZE_MAX));
    assert_null(mp__arena_alloc(SIZE_MAX - 15));
    assert_null(mp__arena_alloc((size_t)1 << 62));
    check_arena();
    mp_assert_int(stats().used, s0.used);
    void *p = mp__arena_alloc(48);
    assert_non_null(p);
    mp__arena_free(p);
}

/* Growth failing (ftruncate fault) gives NULL and a usable arena. */
static void arena_growth_fault(void **state)
{
    mp__arena_stats_t s0 = stats();
    size_t want = s0.mapped + 32 * MiB; /* surely beyond the current size */
    mp__fault_arm(MP__SYS_FTRUNCATE, 1, ENOSPC);
    void *p = mp__arena_alloc(want);
    mp__fault_clear();
    if (p) {
        mp__arena_free(p);
        mp_test_skip("growing the arena did not call ftruncate");
    }
    check_arena();
    mp_assert_int(stats().used, s0.used);
    p = mp__arena_alloc(want);
    assert_non_null(p);
    mp__arena_free(p);
    check_arena();
}

/* A raw fork child sees the parent's blocks at the same address, writes
 * into them, allocates a block of its own that the parent then reads and
 * frees: one heap for the whole family. */
static void arena_shared_fork(void **state)
{
    uint64_t *p = mp__arena_alloc(64);
    assert_non_null(p);
    p[0] = 0x1111;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (p[0] != 0x1111)
            _exit(2);
        char *q = mp__arena_alloc(32);
        if (!q)
            _exit(3);
        strcpy(q, "from the child");
        p[1] = (uint64_t)(uintptr_t)q;
        p[0] = 0x2222;
        _exit(0);
    }
    int st;
    mp_assert_int(mp_test_waitpid(pid, &st, MP_TEST_LONG), 0);
    assert_true(WIFEXITED(st));
    mp_assert_int(WEXITSTATUS(st), 0);
    mp_assert_int(p[0], 0x2222);
    char *q = (char *)(uintptr_t)p[1];
    mp_assert_int(mp__arena_contains(q), 1);
    mp_assert_str(q, "from the child");
    mp__arena_free(q);
    mp__arena_free(p);
    check_arena();
}

typedef struct {
    volatile uint64_t *block;
    uint64_t value;
} share_arg_t;

/* Runs in a child of any start method: the block's address is valid here,
 * holds what the parent wrote, and the child's writes reach the parent. */
static int t_share(void *arg)
{
    share_arg_t *a = arg;
    if (!mp__arena_contains((const void *)a->block))
        return 10;
    if (a->block[0] != a->value)
        return 11;
    char *q = mp__arena_alloc(40);
    if (!q)
        return 12;
    snprintf(q, 40, "child %d", (int)getpid());
    a->block[2] = (uint64_t)(uintptr_t)q;
    a->block[1] = a->value + 1;
    return 0;
}

static int t_nop(void *arg) { return 0; }

static int start_join(mp_start_method_t m, mp_target_fn fn, void *arg,
                      size_t len, int *code)
{
    mp_process_opts_t o = {0};
    o.start_method = m;
    mp_process_t *p = NULL;
    int rc = mp_process_new(&p, fn, arg, len, &o);
    if (rc != 0)
        return rc;
    rc = mp_process_start(p);
    if (rc == 0)
        rc = mp_process_join(p, MP_TEST_LONG);
    if (rc == 0)
        rc = mp_process_exitcode(p, code);
    mp_process_free(p);
    return rc;
}

/* Warm-up for the sharing case: also start the forkserver, so its long-lived
 * descriptors exist before the case's snapshot. */
static int warm_children(void)
{
    int rc = warm_arena(), code = -1, dummy = 0;
    if (rc == 0)
        rc = start_join(MP_START_FORKSERVER, t_nop, &dummy, sizeof dummy, &code);
    if (rc == 0)
        rc = start_join(MP_START_SPAWN, t_nop, &dummy, sizeof dummy, &code);
    return rc;
}

static void arena_shared_children(void **state)
{
    const mp_start_method_t ms[] = {MP_START_FORK, MP_START_SPAWN,
                                    MP_START_FORKSERVER};
    for (int i = 0; i < 3; i++) {
        volatile uint64_t *blk = mp__arena_alloc(3 * sizeof(uint64_t));
        assert_non_null((void *)blk);
        share_arg_t a = {blk, 0xABC0 + (uint64_t)i};
        blk[0] = a.value;
        int code = -1;
        int rc = start_join(ms[i], t_share, &a, sizeof a, &code);
        if (rc != 0)
            mp_test_fail("%s child: %d (%s)\n", mp_start_method_name(ms[i]), rc,
                         mp_strerror(rc));
        if (code != 0)
            mp_test_fail("%s child exited with %d (10: block not in its arena, "
                         "11: wrong content, 12: alloc failed)\n",
                         mp_start_method_name(ms[i]), code);
        mp_assert_int(blk[1], a.value + 1);
        char *q = (char *)(uintptr_t)blk[2];
        mp_assert_int(mp__arena_contains(q), 1);
        assert_true(strncmp(q, "child ", 6) == 0);
        mp__arena_free(q);
        mp__arena_free((void *)blk);
    }
    check_arena();
}

/* Random alloc/free sequences keep every invariant and every block's
 * content; freeing everything gives back every byte. */
static void arena_random(void **state)
{
    enum { LIVE = 512, OPS = 20000 };
    static unsigned char *blk[LIVE];
    static size_t len[LIVE];
    uint64_t seed = test_seed(), rs = seed;
    mp__arena_stats_t s0 = stats();
    memset(blk, 0, sizeof blk);
    for (int op = 1; op <= OPS; op++) {
        int k = (int)(rng_next(&rs) % LIVE);
        if (blk[k]) {
            if (!all_byte(blk[k], len[k], (unsigned char)k))
                mp_test_fail("seed %#llx op %d: block %d (%zu bytes) was "
                             "overwritten\n", (unsigned long long)seed, op, k,
                             len[k]);
            mp__arena_free(blk[k]);
            blk[k] = NULL;
        } else {
            len[k] = random_size(&rs);
            blk[k] = mp__arena_alloc(len[k]);
            if (!blk[k])
                mp_test_fail("seed %#llx op %d: alloc(%zu) failed\n",
                             (unsigned long long)seed, op, len[k]);
            if ((uintptr_t)blk[k] % 16 || !all_zero(blk[k], len[k]))
                mp_test_fail("seed %#llx op %d: block misaligned or not "
                             "zeroed\n", (unsigned long long)seed, op);
            memset(blk[k], k, len[k]);
        }
        if (op % 1000 == 0)
            check_arena();
    }
    for (int k = 0; k < LIVE; k++) {
        if (blk[k] && !all_byte(blk[k], len[k], (unsigned char)k))
            mp_test_fail("block %d was overwritten\n", k);
        mp__arena_free(blk[k]);
    }
    check_arena();
    mp_assert_int(stats().used, s0.used);
}

/* ---- crash consistency ------------------------------------------------ */

static void die_now(void) { raise(SIGKILL); }

/* crash_child forks a child that sets the test hook and allocates (or
 * frees, if victim != NULL): it must die by SIGKILL inside the allocator.
 * Returns 1 if it died in the critical section, 0 if the hook was never
 * called (the operation completed). */
static int crash_child(size_t size, void *victim)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        mp__arena_test_hook = die_now;
        if (victim) {
            mp__arena_free(victim);
            _exit(0);
        }
        void *p = mp__arena_alloc(size);
        _exit(p ? 0 : 1);
    }
    int st;
    mp_assert_int(mp_test_waitpid(pid, &st, MP_TEST_LONG), 0);
    if (WIFSIGNALED(st)) {
        mp_assert_int(WTERMSIG(st), SIGKILL);
        return 1;
    }
    mp_assert_int(WEXITSTATUS(st), 0);
    return 0;
}

/* A process that dies inside the allocator's critical section (by the bump
 * pointer, from a free list, in free) leaves a heap that the next caller
 * recovers: it allocates and frees, the check passes, blocks that were live
 * keep their content, and the recovery is counted. */
static void arena_crash_consistency(void **state)
{
    enum { KEEP = 64 };
    unsigned char *keep[KEEP];
    for (int i = 0; i < KEEP; i++) {
        keep[i] = mp__arena_alloc(24 + (size_t)i * 8);
        assert_non_null(keep[i]);
        memset(keep[i], 0x40 + i, 24 + (size_t)i * 8);
    }
    const size_t sizes[] = {24, 200, 3000, 70000, 1 * MiB + 1};
    size_t before = stats().recoveries;
    int crashes = 0;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        /* 1: fresh memory; 2: from a free list (a block of that size was
         * just freed). */
        for (int path = 0; path < 2; path++) {
            if (path == 1) {
                void *f = mp__arena_alloc(sizes[s]);
                assert_non_null(f);
                mp__arena_free(f);
            }
            size_t r0 = stats().recoveries;
            if (!crash_child(sizes[s], NULL))
                mp_test_fail("alloc(%zu) never called mp__arena_test_hook\n",
                             sizes[s]);
            crashes++;
            /* The parent is the next locker: it recovers and goes on. */
            void *a = mp__arena_alloc(sizes[s]);
            void *b = mp__arena_alloc(16);
            assert_non_null(a);
            assert_non_null(b);
            assert_true(a != b);
            memset(a, 0xEE, sizes[s]);
            memset(b, 0xEF, 16);
            size_t r1 = stats().recoveries;
            if (r1 < r0 + 1)
                mp_test_fail("recoveries %zu after a crash in alloc(%zu) "
                             "(was %zu)\n", r1, sizes[s], r0);
            check_arena();
            mp__arena_free(a);
            mp__arena_free(b);
            check_arena();
        }
    }
    /* A crash in free: either the hook fires there too, or free completes. */
    void *victim = mp__arena_alloc(512);
    assert_non_null(victim);
    int died = crash_child(0, victim);
    void *x = mp__arena_alloc(512);
    assert_non_null(x);
    check_arena();
    mp__arena_free(x);
    if (!died)
        print_message("note: mp__arena_free does not call the test hook\n");
    /* The block may be lost (at most the one in flight), never corrupt:
     * if the child did not die, it freed it; either way, do not free it. */

    for (int i = 0; i < KEEP; i++) {
        if (!all_byte(keep[i], 24 + (size_t)i * 8, (unsigned char)(0x40 + i)))
            mp_test_fail("live block %d was overwritten after the crashes: a "
                         "block was handed out twice\n", i);
        mp__arena_free(keep[i]);
    }
    check_arena();
    mp__arena_stats_t s = stats();
    if (s.recoveries < before + (size_t)crashes)
        mp_test_fail("recoveries = %zu after %d crashes (was %zu)\n",
                     s.recoveries, crashes, before);
    mp_assert_int(s.recoveries >= 1, 1);
}

typedef struct {
    uint32_t in_cs;
} crash_board_t;
static crash_board_t *g_cb;

static void hold_then_die(void)
{
    __atomic_store_n(&g_cb->in_cs, 1, __ATOMIC_SEQ_CST);
    mp__futex_wake(&g_cb->in_cs, INT32_MAX);
    /* Give the parent time to block on the allocator's lock; the result
     * must be right whether or not it got there first. */
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
    raise(SIGKILL);
}

/* The owner dies while another process waits for the allocator's lock:
 * the waiter gets the lock, recovers, and its allocation succeeds. */
static void arena_crash_with_waiter(void **state)
{
    g_cb = mp__arena_alloc(sizeof *g_cb);
    assert_non_null(g_cb);
    size_t r0 = stats().recoveries;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        mp__arena_test_hook = hold_then_die;
        mp__arena_alloc(100);
        _exit(1);
    }
    mp__deadline_t d;
    mp__deadline(MP_TEST_LONG, &d);
    while (__atomic_load_n(&g_cb->in_cs, __ATOMIC_SEQ_CST) == 0) {
        int rc = mp__futex_wait(&g_cb->in_cs, 0, d);
        if (rc == -ETIMEDOUT)
            mp_test_fail("the child never entered the critical section\n");
    }
    void *p = mp__arena_alloc(100); /* blocks until the owner is dead */
    assert_non_null(p);
    int st;
    mp_assert_int(mp_test_waitpid(pid, &st, MP_TEST_LONG), 0);
    assert_true(WIFSIGNALED(st));
    mp_assert_int(WTERMSIG(st), SIGKILL);
    assert_true(stats().recoveries >= r0 + 1);
    check_arena();
    mp__arena_free(p);
    mp__arena_free(g_cb);
    check_arena();
}

/* ---- concurrency ------------------------------------------------------ */

enum { NPROC = 4, PROC_OPS = 10000, SHARED_PER = 1000 };

typedef struct {
    uint32_t go;
    unsigned char *shared[NPROC][SHARED_PER];
} conc_board_t;

/* conc_worker runs PROC_OPS random operations with its own live set, and
 * frees its share of the blocks the parent allocated on the way. Returns 0
 * or a failure code. */
static int conc_worker(conc_board_t *b, int me, uint64_t seed)
{
    enum { LIVE = 128 };
    unsigned char *blk[LIVE] = {0};
    size_t len[LIVE];
    uint64_t rs = seed + (uint64_t)me * 7919;
    int next_shared = 0;
    unsigned char tag = (unsigned char)(0x10 * (me + 1));
    for (int op = 0; op < PROC_OPS; op++) {
        int k = (int)(rng_next(&rs) % LIVE);
        if (blk[k]) {
            if (!all_byte(blk[k], len[k], (unsigned char)(tag + (k & 15))))
                return 20;
            mp__arena_free(blk[k]);
            blk[k] = NULL;
        } else {
            len[k] = 1 + (size_t)(rng_next(&rs) % 2048);
            blk[k] = mp__arena_alloc(len[k]);
            if (!blk[k])
                return 21;
            if (!all_zero(blk[k], len[k]))
                return 22;
            memset(blk[k], tag + (k & 15), len[k]);
        }
        if (op % 10 == 0 && next_shared < SHARED_PER) {
            unsigned char *s = b->shared[me][next_shared++];
            if (!all_byte(s, 64, (unsigned char)me))
                return 23;
            mp__arena_free(s);
        }
    }
    for (int k = 0; k < LIVE; k++) {
        if (blk[k] && !all_byte(blk[k], len[k], (unsigned char)(tag + (k & 15))))
            return 24;
        mp__arena_free(blk[k]);
    }
    while (next_shared < SHARED_PER)
        mp__arena_free(b->shared[me][next_shared++]);
    return 0;
}

/* 4 processes x 10,000 operations at once, freeing each other's blocks;
 * then the heap checks and every byte is back. */
static void arena_concurrent_processes(void **state)
{
    mp__arena_stats_t s0 = stats();
    conc_board_t *b = mp__arena_alloc(sizeof *b);
    assert_non_null(b);
    for (int i = 0; i < NPROC; i++)
        for (int j = 0; j < SHARED_PER; j++) {
            b->shared[i][j] = mp__arena_alloc(64);
            assert_non_null(b->shared[i][j]);
            memset(b->shared[i][j], i, 64);
        }
    pid_t pids[NPROC];
    uint64_t seed = test_seed();
    fflush(NULL);
    for (int i = 0; i < NPROC; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            mp__deadline_t d;
            mp__deadline(60.0, &d);
            while (__atomic_load_n(&b->go, __ATOMIC_SEQ_CST) == 0)
                if (mp__futex_wait(&b->go, 0, d) == -ETIMEDOUT)
                    _exit(30);
            _exit(conc_worker(b, i, seed));
        }
    }
    __atomic_store_n(&b->go, 1, __ATOMIC_SEQ_CST);
    mp__futex_wake(&b->go, INT32_MAX);
    int failed = 0;
    for (int i = 0; i < NPROC; i++) {
        int st;
        int rc = mp_test_waitpid(pids[i], &st, 4 * MP_TEST_LONG);
        if (rc != 0) {
            kill(pids[i], SIGKILL);
            waitpid(pids[i], &st, 0);
            print_error("worker %d did not finish (deadlock?)\n", i);
            failed = 1;
        } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            print_error("worker %d: %s %d (20: block overwritten, 21: alloc "
                        "failed, 22: not zeroed, 23: shared block overwritten, "
                        "24: final check)\n", i,
                        WIFEXITED(st) ? "exit" : "signal",
                        WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
            failed = 1;
        }
    }
    if (failed)
        fail();
    check_arena();
    mp__arena_free(b);
    check_arena();
    mp_assert_int(stats().used, s0.used);
}

typedef struct {
    int me;
    int rc;
} thr_arg_t;

static void *thr_worker(void *arg)
{
    thr_arg_t *a = arg;
    enum { LIVE = 64 };
    unsigned char *blk[LIVE] = {0};
    size_t len[LIVE];
    uint64_t rs = test_seed() ^ (uint64_t)(a->me + 1) * 0x100000001B3ULL;
    for (int op = 0; op < 20000 && a->rc == 0; op++) {
        int k = (int)(rng_next(&rs) % LIVE);
        if (blk[k]) {
            if (!all_byte(blk[k], len[k], (unsigned char)(a->me * 16 + (k & 15))))
                a->rc = 1;
            mp__arena_free(blk[k]);
            blk[k] = NULL;
        } else {
            len[k] = 1 + (size_t)(rng_next(&rs) % 1024);
            blk[k] = mp__arena_alloc(len[k]);
            if (!blk[k] || !all_zero(blk[k], len[k]))
                a->rc = 2;
            else
                memset(blk[k], a->me * 16 + (k & 15), len[k]);
        }
    }
    for (int k = 0; k < LIVE; k++)
        mp__arena_free(blk[k]);
    return NULL;
}

/* 4 threads of one process at once. */
static void arena_concurrent_threads(void **state)
{
    mp__arena_stats_t s0 = stats();
    pthread_t t[4];
    thr_arg_t a[4];
    for (int i = 0; i < 4; i++) {
        a[i].me = i;
        a[i].rc = 0;
        assert_int_equal(pthread_create(&t[i], NULL, thr_worker, &a[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        if (a[i].rc)
            mp_test_fail("thread %d: %s\n", i,
                         a[i].rc == 1 ? "a block was overwritten"
                                      : "alloc failed or not zeroed");
    }
    check_arena();
    mp_assert_int(stats().used, s0.used);
}

/* ---- initialization faults (cold) ------------------------------------- */

typedef struct {
    int rc_fail, rc_ok, fd_diffs, maps_before, maps_after;
    char fds[512];
} init_report_t;

static int count_memfd_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return -1;
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "memfd:"))
            n++;
    fclose(f);
    return n;
}

/* In a fresh process: the nth memfd/mmap/ftruncate call of mp__arena_init
 * fails; the failure returns -err and leaves no descriptor and no mapping;
 * the next init succeeds. Each attempt runs in its own raw-forked child,
 * which starts without an arena. */
static void arena_init_faults(void **state)
{
    static const struct {
        mp__sys_id id;
        int err;
        const char *name;
    } f[] = {{MP__SYS_MEMFD, EMFILE, "memfd"},
             {MP__SYS_MMAP, ENOMEM, "mmap"},
             {MP__SYS_FTRUNCATE, ENOSPC, "ftruncate"},
             {MP__SYS_MALLOC, ENOMEM, "malloc"}};
    init_report_t *r = mmap(NULL, sizeof *r, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(r != MAP_FAILED);
    int reached_any = 0;
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        for (int nth = 1; nth <= 4; nth++) {
            memset(r, 0, sizeof *r);
            fflush(NULL);
            pid_t pid = fork();
            assert_true(pid >= 0);
            if (pid == 0) {
                static mp_test_fds_t a, b;
                mp_test_fds_snap(&a);
                r->maps_before = count_memfd_maps();
                mp__fault_arm(f[i].id, nth, f[i].err);
                r->rc_fail = mp__arena_init();
                mp__fault_clear();
                mp_test_fds_snap(&b);
                r->maps_after = count_memfd_maps();
                if (r->rc_fail != 0)
                    r->fd_diffs = mp_test_fds_diff(&a, &b, r->fds, sizeof r->fds);
                r->rc_ok = mp__arena_init();
                void *p = mp__arena_alloc(64);
                if (!p)
                    r->rc_ok = -ENOMEM;
                mp__arena_free(p);
                _exit(0);
            }
            int st;
            mp_assert_int(mp_test_waitpid(pid, &st, MP_TEST_LONG), 0);
            assert_true(WIFEXITED(st));
            mp_assert_int(WEXITSTATUS(st), 0);
            if (r->rc_fail == 0)
                break; /* fewer than nth such calls: nothing more to fail */
            reached_any = 1;
            if (r->rc_fail != -f[i].err)
                mp_test_fail("%s call %d failing with -%d: mp__arena_init "
                             "returned %d (%s)\n", f[i].name, nth, f[i].err,
                             r->rc_fail, mp_strerror(r->rc_fail));
            if (r->fd_diffs)
                mp_test_fail("%s call %d failing leaked descriptors:%s\n",
                             f[i].name, nth, r->fds);
            if (r->maps_after != r->maps_before)
                mp_test_fail("%s call %d failing left a memfd mapping (%d -> "
                             "%d)\n", f[i].name, nth, r->maps_before,
                             r->maps_after);
            if (r->rc_ok != 0)
                mp_test_fail("after %s call %d failed, init/alloc failed: %d "
                             "(%s)\n", f[i].name, nth, r->rc_ok,
                             mp_strerror(r->rc_ok));
        }
    }
    munmap(r, sizeof *r);
    if (!reached_any)
        mp_test_fail("no fault reached mp__arena_init\n");
}

int main(int argc, char **argv)
{
    static const mp_test_case_t cases[] = {
        MP_TEST(arena_sizes),
        MP_TEST_T(arena_growth, 120),
        MP_TEST(arena_growth_fault),
        MP_TEST(arena_shared_fork),
        MP_TEST_W(arena_shared_children, 60, warm_children),
        MP_TEST_T(arena_random, 120),
        MP_TEST(arena_crash_consistency),
        MP_TEST(arena_crash_with_waiter),
        MP_TEST_T(arena_concurrent_processes, 180),
        MP_TEST_T(arena_concurrent_threads, 120),
        MP_TEST_COLD_T(arena_init_faults, 60),
    };
    static const mp_test_config_t cfg = {.warmup = warm_arena};
    return mp_test_main(argc, argv, cases, sizeof cases / sizeof cases[0], &cfg);
}

/* test_queue.c: Queue, JoinableQueue and SimpleQueue (Python's
 * multiprocessing queues), carrying byte messages between threads and
 * processes, run once per start method (argv[1]).
 *
 * As in test_sync.c: the board where parties report (board_t) lives in the
 * shared arena, as the queues do, so the same pointers work in threads and
 * in children under fork, spawn and forkserver. A party is a target run in a
 * raw pthread or in a child process; it never calls cmocka: it reports
 * through the board and its return value (exit code). Parties meet through
 * futex words of the board (mp_test_word_*) and "this task is asleep in the
 * call" checks in /proc, never through sleeps; the only timeouts are
 * generous bounds (MP_TEST_LONG), or the behaviour under test, measured with
 * margins (tight below, generous above).
 *
 * Every message carries a payload derived from a key (mp_test_pat_fill) and
 * is checked byte by byte where it arrives; the messages of many producers
 * also carry a header (producer, seq), so that loss, duplication, reordering
 * and torn messages are seen.
 *
 * crash_random_kills SIGKILLs producers and consumers at random moments
 * (seeded PRNG; MP_TEST_SEED repeats the choices); its records live in a
 * memfd of the test's own, mapped MAP_SHARED by every party, so that they do
 * not depend on the arena the queue under test lives in.
 * mp-test: per-start-method
 * mp-test: timeout=600 */
#include "mp_test.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "sys/platform.h"

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)

/* ---- payloads ------------------------------------------------------------ */

/* A message with a header: magic, producer, seq, length, then the payload
 * of msg_key(producer, seq). */
#define HDR 16
#define MAGIC 0x4d505155u

static uint64_t msg_key(uint32_t prod, uint32_t seq)
{
    return (((uint64_t)prod << 32) | seq) * 0x2545f4914f6cdd1dULL + 7;
}

static void msg_fill(void *buf, size_t len, uint32_t prod, uint32_t seq)
{
    uint32_t h[4] = {MAGIC, prod, seq, (uint32_t)len};
    memcpy(buf, h, HDR);
    mp_test_pat_fill((char *)buf + HDR, len - HDR, msg_key(prod, seq));
}

/* msg_parse reads a message's header: 0 (and *prod, *seq), -1 if the header
 * is wrong (too short, magic, length), -2 if the payload is (*off: first bad
 * byte of the message). */
static int msg_parse(const void *buf, size_t len, uint32_t *prod, uint32_t *seq, long *off)
{
    uint32_t h[4];
    *off = 0;
    if (len < HDR)
        return -1;
    memcpy(h, buf, HDR);
    *prod = h[1];
    *seq = h[2];
    if (h[0] != MAGIC || h[3] != (uint32_t)len)
        return -1;
    long bad = mp_test_pat_bad((const char *)buf + HDR, len - HDR, msg_key(h[1], h[2]));
    if (bad >= 0) {
        *off = bad + HDR;
        return -2;
    }
    return 0;
}

/* ---- the board -------------------------------------------------------- */

#define SLOTS 16
#define NPROD 6   /* producers of the many-producer cases (0: the test) */
#define NSEQ 2048 /* messages per producer at most */

typedef struct {
    uint32_t go;    /* set by the test to release parties */
    uint32_t ready; /* parties increment it once running */
    uint32_t done;  /* parties increment it once their call returned */
    uint32_t never; /* nobody sets it: wait on it to block forever */
    uint32_t got;   /* messages consumed, all consumers together */
    int32_t rc[SLOTS];  /* a party's main return code */
    int32_t rc2[SLOTS]; /* a second code (payload check, task_done...) */
    int32_t cnt[SLOTS]; /* a count or a length */
    double el[SLOTS];   /* seconds the party's call took */
    double at[SLOTS];   /* when it returned (CLOCK_MONOTONIC, seconds) */
    pid_t tid[SLOTS];   /* kernel id of the party's thread */
    /* t_drain's findings; detail: the first one (producer, seq, len, offset) */
    uint32_t torn, order_bad, phantom, findings;
    uint32_t detail[4];
    uint8_t seen[NPROD][NSEQ]; /* deliveries per (producer, seq) */
} board_t;

enum { M_SIMPLE = 1 }; /* t_get1 / t_put1: the SimpleQueue calls */

/* What a party gets (copied into a child: only arena pointers in it). */
typedef struct {
    board_t *b;
    mp_queue_t *q;
    mp_queue_t *q2;
    int id;     /* the party's slot in the board */
    int n;      /* messages */
    int mode;   /* M_* */
    int prod;   /* producer number */
    size_t size;
    uint64_t key;
    double timeout;
} targ_t;

static board_t *board_new(void)
{
    board_t *b = mp__arena_alloc(sizeof *b);
    assert_non_null(b);
    return b;
}

static void block_forever(board_t *b)
{
    for (;;)
        mp_test_word_wait(&b->never, 1, MP_FOREVER);
}

/* A generous bound for a party's own waits (children cannot fail a case:
 * they give up and report). */
#define CHILD_LONG (60.0 * mp_test_scale())

/* The sizes of the round trips. */
static const size_t k_sizes[] = {0, 1, 64, 4095, 4096, 8192, 65536, 1 << 20};
#define NSIZES ((int)(sizeof k_sizes / sizeof k_sizes[0]))

/* fifo_size: the length of message seq of producer prod in the
 * many-producer cases: mostly small, one in 64 beyond 64 KiB. */
static size_t fifo_size(uint32_t prod, uint32_t seq)
{
    uint64_t h = mp_test_mix64(msg_key(prod, seq) ^ 0x5a5a);
    if (h % 64 == 0)
        return 70000 + (size_t)((h >> 8) % 1000);
    return HDR + (size_t)((h >> 8) % 2000);
}
#define FIFO_CAP 71024

/* note_finding counts a finding of t_drain and keeps the first one. */
static void note_finding(board_t *b, uint32_t *counter, uint32_t prod, uint32_t seq,
                         size_t len, long off)
{
    __atomic_add_fetch(counter, 1, __ATOMIC_SEQ_CST);
    if (__atomic_add_fetch(&b->findings, 1, __ATOMIC_SEQ_CST) == 1) {
        b->detail[0] = prod;
        b->detail[1] = seq;
        b->detail[2] = (uint32_t)len;
        b->detail[3] = (uint32_t)off;
    }
}

/* ---- targets (threads and processes alike) ----------------------------- */

/* t_get1 makes one get_alloc with a->timeout (SimpleQueue's get with
 * M_SIMPLE) and records the code, the length (cnt), the payload check (rc2:
 * 0 a->size bytes of a->key's payload, 1 another length, 2 another payload),
 * the duration and the time it returned. */
static int t_get1(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    b->tid[a->id] = mp_test_tid();
    mp_test_word_inc(&b->ready);
    void *p = NULL;
    size_t len = 0;
    double t0 = mp_test_now();
    int rc = (a->mode & M_SIMPLE) ? mp_simplequeue_get_alloc(a->q, &p, &len)
                                  : mp_queue_get_alloc(a->q, &p, &len, a->timeout);
    b->at[a->id] = mp_test_now();
    b->el[a->id] = b->at[a->id] - t0;
    b->rc[a->id] = rc;
    b->cnt[a->id] = (int32_t)len;
    b->rc2[a->id] = 0;
    if (rc == 0) {
        if (len != a->size)
            b->rc2[a->id] = 1;
        else if (!p || mp_test_pat_bad(p, len, a->key) >= 0)
            b->rc2[a->id] = 2;
        free(p);
    }
    mp_test_word_inc(&b->done);
    return 0;
}

/* t_put1 makes one put of a->size bytes of a->key's payload with
 * a->timeout (SimpleQueue's put with M_SIMPLE) and records the code, the
 * duration and the time it returned. Code 9: no memory for the buffer. */
static int t_put1(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    void *buf = malloc(a->size ? a->size : 1);
    if (!buf)
        return 9;
    mp_test_pat_fill(buf, a->size, a->key);
    b->tid[a->id] = mp_test_tid();
    mp_test_word_inc(&b->ready);
    double t0 = mp_test_now();
    int rc = (a->mode & M_SIMPLE) ? mp_simplequeue_put(a->q, buf, a->size)
                                  : mp_queue_put(a->q, buf, a->size, a->timeout);
    b->at[a->id] = mp_test_now();
    b->el[a->id] = b->at[a->id] - t0;
    b->rc[a->id] = rc;
    free(buf);
    mp_test_word_inc(&b->done);
    return 0;
}

/* t_drain consumes (get, a->timeout each) until the end of the stream,
 * checking every message: its header and payload (torn), its producer and
 * seq (phantom), the order of each producer's messages (order_bad). It
 * counts its messages in cnt and the deliveries in seen. rc: the code that
 * ended it. Codes: 30 ended by something else than MP_EEOF, 39 no memory. */
static int t_drain(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    int32_t last[NPROD];
    for (int i = 0; i < NPROD; i++)
        last[i] = -1;
    unsigned char *buf = malloc(FIFO_CAP);
    if (!buf)
        return 39;
    b->tid[a->id] = mp_test_tid();
    mp_test_word_inc(&b->ready);
    for (;;) {
        size_t len = 0;
        int rc = mp_queue_get(a->q, buf, FIFO_CAP, &len, a->timeout);
        if (rc != 0) {
            b->at[a->id] = mp_test_now();
            b->rc[a->id] = rc;
            free(buf);
            mp_test_word_inc(&b->done);
            return rc == MP_EEOF ? 0 : 30;
        }
        uint32_t prod = 0, seq = 0;
        long off = 0;
        int bad = msg_parse(buf, len, &prod, &seq, &off);
        if (bad == -1 || prod >= NPROD || seq >= NSEQ) {
            note_finding(b, &b->phantom, prod, seq, len, off);
        } else {
            __atomic_add_fetch(&b->seen[prod][seq], 1, __ATOMIC_SEQ_CST);
            if (bad)
                note_finding(b, &b->torn, prod, seq, len, off);
            if ((int32_t)seq <= last[prod])
                note_finding(b, &b->order_bad, prod, seq, len, (long)last[prod]);
            last[prod] = (int32_t)seq;
        }
        b->cnt[a->id]++;
        mp_test_word_inc(&b->got);
    }
}

/* t_produce puts a->n messages of producer a->prod (fifo_size, with
 * headers) once go is set. Codes: 31 put failed (rc = code, cnt = seq),
 * 32 go never came, 39 no memory. */
static int t_produce(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    unsigned char *buf = malloc(FIFO_CAP);
    if (!buf)
        return 39;
    mp_test_word_inc(&b->ready);
    if (mp_test_word_wait(&b->go, 1, CHILD_LONG) != 0) {
        free(buf);
        return 32;
    }
    for (int s = 0; s < a->n; s++) {
        size_t len = fifo_size((uint32_t)a->prod, (uint32_t)s);
        msg_fill(buf, len, (uint32_t)a->prod, (uint32_t)s);
        int rc = mp_queue_put(a->q, buf, len, CHILD_LONG);
        if (rc != 0) {
            b->rc[a->id] = rc;
            b->cnt[a->id] = s;
            free(buf);
            return 31;
        }
    }
    free(buf);
    return 0;
}

/* t_echo_sizes gets the NSIZES messages of k_sizes (payload a->key + i) in
 * order, checking each, then puts them back with the payloads of
 * a->key + 100 + i. Codes: 10 get failed (rc, cnt = index), 11 wrong length
 * (rc2 = the length), 12 wrong payload (rc2 = the offset), 13 put failed,
 * 9 no memory. */
static int t_echo_sizes(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    for (int i = 0; i < NSIZES; i++) {
        void *p = NULL;
        size_t len = 0;
        b->cnt[a->id] = i;
        int rc = mp_queue_get_alloc(a->q, &p, &len, CHILD_LONG);
        if (rc != 0) {
            b->rc[a->id] = rc;
            return 10;
        }
        if (len != k_sizes[i]) {
            b->rc2[a->id] = (int32_t)len;
            free(p);
            return 11;
        }
        long off = mp_test_pat_bad(p, len, a->key + (uint64_t)i);
        free(p);
        if (off >= 0) {
            b->rc2[a->id] = (int32_t)off;
            return 12;
        }
    }
    void *buf = malloc(1 << 20);
    if (!buf)
        return 9;
    for (int i = 0; i < NSIZES; i++) {
        b->cnt[a->id] = i;
        mp_test_pat_fill(buf, k_sizes[i], a->key + 100 + (uint64_t)i);
        int rc = mp_queue_put(a->q, k_sizes[i] ? buf : NULL, k_sizes[i], CHILD_LONG);
        if (rc != 0) {
            b->rc[a->id] = rc;
            free(buf);
            return 13;
        }
    }
    free(buf);
    return 0;
}

/* t_fork_order gets 20 messages, which must be the ints 0..19 in order,
 * then puts the ints 100..109. Codes: 10 get failed (rc, cnt = index), 11
 * wrong message (cnt = index, rc2 = value), 12 put failed (rc). */
static int t_fork_order(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    for (int i = 0; i < 20; i++) {
        int32_t v = -1;
        size_t len = 0;
        b->cnt[a->id] = i;
        int rc = mp_queue_get(a->q, &v, sizeof v, &len, CHILD_LONG);
        if (rc != 0) {
            b->rc[a->id] = rc;
            return 10;
        }
        if (len != sizeof v || v != i) {
            b->rc2[a->id] = len != sizeof v ? -1000 - (int32_t)len : v;
            return 11;
        }
    }
    for (int32_t v = 100; v < 110; v++) {
        int rc = mp_queue_put(a->q, &v, sizeof v, CHILD_LONG);
        if (rc != 0) {
            b->rc[a->id] = rc;
            return 12;
        }
    }
    return 0;
}

/* t_worker: a JoinableQueue worker. Takes tasks (8 bytes: index, ~index),
 * waits for go before the first is processed, counts each in seen[0] and
 * got, then calls task_done; until the end of the stream (rc = MP_EEOF).
 * Codes: 50 get failed (rc), 51 task_done failed (rc2), 52 a wrong task,
 * 53 go never came. */
static int t_worker(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    mp_test_word_inc(&b->ready);
    for (;;) {
        uint32_t task[2];
        size_t len = 0;
        int rc = mp_queue_get(a->q, task, sizeof task, &len, CHILD_LONG);
        if (rc == MP_EEOF) {
            b->rc[a->id] = rc;
            return 0;
        }
        if (rc != 0) {
            b->rc[a->id] = rc;
            return 50;
        }
        if (len != sizeof task || task[0] >= NSEQ || task[1] != ~task[0])
            return 52;
        if (mp_test_word_wait(&b->go, 1, CHILD_LONG) != 0)
            return 53;
        __atomic_add_fetch(&b->seen[0][task[0]], 1, __ATOMIC_SEQ_CST);
        b->cnt[a->id]++;
        mp_test_word_inc(&b->got);
        rc = mp_queue_task_done(a->q);
        if (rc != 0) {
            b->rc2[a->id] = rc;
            return 51;
        }
    }
}

/* t_joiner makes one join with a->timeout and records code and times. */
static int t_joiner(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    b->tid[a->id] = mp_test_tid();
    mp_test_word_inc(&b->ready);
    double t0 = mp_test_now();
    int rc = mp_queue_join(a->q, a->timeout);
    b->at[a->id] = mp_test_now();
    b->el[a->id] = b->at[a->id] - t0;
    b->rc[a->id] = rc;
    mp_test_word_inc(&b->done);
    return 0;
}

/* t_closer closes the queue (rc: the code). */
static int t_closer(void *arg)
{
    targ_t *a = arg;
    a->b->rc[a->id] = mp_queue_close(a->q);
    return 0;
}

/* t_free_q frees q and q2 (a SimpleQueue) in a process that did not make
 * them: nothing happens. */
static int t_free_q(void *arg)
{
    targ_t *a = arg;
    mp_queue_free(a->q);
    mp_simplequeue_free(a->q2);
    return 0;
}

/* t_put_then_block puts a->size bytes of a->key's payload and a 7-byte
 * message (a->key + 1), reports ready and blocks until killed.
 * Codes: 40 a put failed (rc), 9 no memory. */
static int t_put_then_block(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    void *buf = malloc(a->size);
    if (!buf)
        return 9;
    mp_test_pat_fill(buf, a->size, a->key);
    int rc = mp_queue_put(a->q, buf, a->size, CHILD_LONG);
    if (rc == 0) {
        mp_test_pat_fill(buf, 7, a->key + 1);
        rc = mp_queue_put(a->q, buf, 7, CHILD_LONG);
    }
    free(buf);
    b->rc[a->id] = rc;
    if (rc != 0)
        return 40;
    mp_test_word_inc(&b->ready);
    block_forever(b);
    return 0;
}

/* t_put_n_exit puts a->n messages of a->size bytes (payloads a->key + i)
 * and returns at once. Codes: 40 a put failed (rc, cnt = index), 9 no
 * memory. */
static int t_put_n_exit(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    void *buf = malloc(a->size ? a->size : 1);
    if (!buf)
        return 9;
    for (int i = 0; i < a->n; i++) {
        mp_test_pat_fill(buf, a->size, a->key + (uint64_t)i);
        int rc = mp_queue_put(a->q, buf, a->size, CHILD_LONG);
        if (rc != 0) {
            b->rc[a->id] = rc;
            b->cnt[a->id] = i;
            free(buf);
            return 40;
        }
    }
    free(buf);
    return 0;
}

/* ---- parties: a target in a thread or in a child process --------------- */

/* (mp_party_start, mp_party_join and mp_party_kill are in mp_test.h.) */

static const char *kind_name(int proc) { return proc ? "process" : "thread"; }

/* ---- queues and messages ------------------------------------------------ */

static mp_queue_t *queue_new(size_t maxsize, size_t max_msg)
{
    mp_queue_opts_t o = {.maxsize = maxsize, .max_msg = max_msg};
    mp_queue_t *q = NULL;
    mp_assert_int(mp_queue_new(&q, &o), 0);
    assert_non_null(q);
    return q;
}

static mp_queue_t *jqueue_new(size_t maxsize, size_t max_msg)
{
    mp_queue_opts_t o = {.maxsize = maxsize, .max_msg = max_msg};
    mp_queue_t *q = NULL;
    mp_assert_int(mp_joinablequeue_new(&q, &o), 0);
    assert_non_null(q);
    return q;
}

static mp_simplequeue_t *squeue_new(void)
{
    mp_simplequeue_t *q = NULL;
    mp_assert_int(mp_simplequeue_new(&q, NULL), 0);
    assert_non_null(q);
    return q;
}

/* put_pat puts n bytes of key's payload (buf NULL for n = 0). */
static int put_pat(mp_queue_t *q, size_t n, uint64_t key, double timeout)
{
    void *buf = NULL;
    if (n) {
        buf = malloc(n);
        assert_non_null(buf);
        mp_test_pat_fill(buf, n, key);
    }
    int rc = mp_queue_put(q, buf, n, timeout);
    free(buf);
    return rc;
}

/* expect_msg gets a message (get_alloc, timeout) and fails the case unless
 * it is n bytes of key's payload. */
static void expect_msg(mp_queue_t *q, size_t n, uint64_t key, double timeout, const char *what)
{
    void *p = NULL;
    size_t len = (size_t)-1;
    int rc = mp_queue_get_alloc(q, &p, &len, timeout);
    if (rc != 0)
        mp_test_fail("%s: get_alloc gave %d (%s), expected a message of %zu bytes\n", what,
                     rc, mp_strerror(rc), n);
    if (!p)
        mp_test_fail("%s: get_alloc gave 0 and a NULL buffer\n", what);
    if (len != n) {
        free(p);
        mp_test_fail("%s: got %zu bytes, expected %zu\n", what, len, n);
    }
    long off = mp_test_pat_bad(p, len, key);
    free(p);
    if (off >= 0)
        mp_test_fail("%s: byte %ld of %zu is not the payload that was put\n", what, off, n);
}

/* expect_msg_into gets a message into a buffer of exactly n bytes (NULL
 * when n = 0) with get (timeout) and checks it as expect_msg. */
static void expect_msg_into(mp_queue_t *q, size_t n, uint64_t key, double timeout,
                            const char *what)
{
    void *buf = n ? malloc(n) : NULL;
    if (n)
        assert_non_null(buf);
    size_t len = (size_t)-1;
    int rc = mp_queue_get(q, buf, n, &len, timeout);
    if (rc != 0)
        mp_test_fail("%s: get into %zu bytes gave %d (%s)\n", what, n, rc, mp_strerror(rc));
    if (len != n)
        mp_test_fail("%s: got %zu bytes, expected %zu\n", what, len, n);
    long off = mp_test_pat_bad(buf, len, key);
    free(buf);
    if (off >= 0)
        mp_test_fail("%s: byte %ld of %zu is not the payload that was put\n", what, off, n);
}

/* expect_code_quick fails unless rc is want and the call took el <= a few s. */
#define expect_quick(call, want, what)                                                     \
    do {                                                                                   \
        double t0_ = mp_test_now();                                                        \
        mp_assert_int((call), (want));                                                     \
        mp_test_check_quick(mp_test_now() - t0_, what);                                            \
    } while (0)

#define expect_timed(call, want, secs, what)                                               \
    do {                                                                                   \
        double t0_ = mp_test_now();                                                        \
        mp_assert_int((call), (want));                                                     \
        mp_test_check_timed(mp_test_now() - t0_, (secs), what);                                    \
    } while (0)

/* Warm-up: the arena, a queue of each kind used once, and one child of the
 * program's start method (so the forkserver and its connection exist
 * before the snapshot). */
static int warm_queue(void)
{
    void *x = mp__arena_alloc(16);
    if (!x)
        return -ENOMEM;
    mp__arena_free(x);
    mp_queue_t *q = NULL;
    int rc = mp_queue_new(&q, NULL);
    if (rc != 0)
        return rc;
    char c = 'x';
    size_t len = 0;
    rc = mp_queue_put(q, &c, 1, 0);
    if (rc == 0)
        rc = mp_queue_get(q, &c, 1, &len, 0);
    mp_queue_free(q);
    if (rc != 0)
        return rc;
    rc = mp_joinablequeue_new(&q, NULL);
    if (rc != 0)
        return rc;
    mp_queue_free(q);
    rc = mp_simplequeue_new(&q, NULL);
    if (rc != 0)
        return rc;
    mp_simplequeue_free(q);
    return mp_test_warm_child();
}

/* ---- round trips ---------------------------------------------------------- */

/* put/get of 0, 1, 64, 4095, 4096, 8192, 65536 and 1 MiB bytes, one at a
 * time (into a buffer of exactly the message's size; NULL for 0 bytes,
 * put from NULL too), then all queued at once and got in order. */
static void roundtrip_sizes(void **state)
{
    mp_queue_t *q = queue_new(0, 0);
    char what[64];
    for (int i = 0; i < NSIZES; i++) {
        snprintf(what, sizeof what, "a message of %zu bytes", k_sizes[i]);
        mp_assert_int(put_pat(q, k_sizes[i], 1000 + (uint64_t)i, MP_FOREVER), 0);
        mp_assert_int(mp_queue_qsize(q), 1);
        expect_msg_into(q, k_sizes[i], 1000 + (uint64_t)i, 0, what);
        mp_assert_int(mp_queue_qsize(q), 0);
    }
    for (int i = 0; i < NSIZES; i++)
        mp_assert_int(put_pat(q, k_sizes[i], 2000 + (uint64_t)i, 0), 0);
    mp_assert_int(mp_queue_qsize(q), NSIZES);
    for (int i = 0; i < NSIZES; i++) {
        snprintf(what, sizeof what, "queued message %d of %zu bytes", i, k_sizes[i]);
        expect_msg(q, k_sizes[i], 2000 + (uint64_t)i, 0, what);
    }
    mp_assert_int(mp_queue_empty(q), 1);
    mp_queue_free(q);
}

/* The same sizes through another party: it gets them (it may be waiting
 * before they come), checks them and puts them back with other payloads;
 * it has ended before we read them. */
static void roundtrip_sizes_party(int proc)
{
    board_t *b = board_new();
    mp_queue_t *q = queue_new(0, 0);
    static mp_party_t y;
    targ_t a = {.b = b, .q = q, .id = 0, .key = 3000};
    mp_party_start(&y, proc, t_echo_sizes, &a, sizeof a);
    for (int i = 0; i < NSIZES; i++)
        mp_assert_int(put_pat(q, k_sizes[i], 3000 + (uint64_t)i, MP_FOREVER), 0);
    int code = mp_party_join(&y);
    if (code != 0)
        mp_test_fail("the echoing %s returned %d at message %d (10: get gave %d (%s), "
                     "11: length %d, 12: payload differs at byte %d, 13: put gave %d)\n",
                     kind_name(proc), code, b->cnt[0], b->rc[0], mp_strerror(b->rc[0]),
                     b->rc2[0], b->rc2[0], b->rc[0]);
    mp_assert_int(mp_queue_qsize(q), NSIZES);
    char what[64];
    for (int i = 0; i < NSIZES; i++) {
        snprintf(what, sizeof what, "echoed message of %zu bytes", k_sizes[i]);
        expect_msg(q, k_sizes[i], 3100 + (uint64_t)i, 0, what);
    }
    mp_queue_free(q);
    mp__arena_free(b);
}

static void roundtrip_sizes_threads(void **state) { roundtrip_sizes_party(0); }
static void roundtrip_sizes_processes(void **state) { roundtrip_sizes_party(1); }

/* One 64 MiB message each way between processes, checked byte by byte:
 * the child gets ours (get_alloc), then puts its own and ends before we read
 * it; ours is refused with MP_ETOOSHORT into 64 MiB - 1, then got whole. */
static void big_message_64mib(void **state)
{
    const size_t n = 64 * MiB;
    board_t *b = board_new();
    mp_queue_t *q = queue_new(0, 0);
    mp_assert_int(put_pat(q, n, 4000, MP_FOREVER), 0);
    static mp_party_t y;
    targ_t a = {.b = b, .q = q, .id = 0, .size = n, .key = 4000, .timeout = MP_TEST_LONG};
    mp_party_start(&y, 1, t_get1, &a, sizeof a);
    mp_assert_int(mp_party_join(&y), 0);
    mp_assert_int(b->rc[0], 0);
    mp_assert_int(b->cnt[0], (int32_t)n);
    if (b->rc2[0] != 0)
        mp_test_fail("the child got 64 MiB that differ from what was put (%d)\n", b->rc2[0]);
    mp_assert_int(mp_queue_qsize(q), 0);

    targ_t pa = {.b = b, .q = q, .id = 1, .size = n, .key = 4001, .timeout = MP_TEST_LONG};
    mp_party_start(&y, 1, t_put1, &pa, sizeof pa);
    mp_assert_int(mp_party_join(&y), 0);
    mp_assert_int(b->rc[1], 0);
    unsigned char *buf = malloc(n);
    assert_non_null(buf);
    size_t len = 0;
    mp_assert_int(mp_queue_get(q, buf, n - 1, &len, 0), MP_ETOOSHORT);
    mp_assert_int(len, n);
    len = 0;
    mp_assert_int(mp_queue_get(q, buf, n, &len, 0), 0);
    mp_assert_int(len, n);
    long off = mp_test_pat_bad(buf, n, 4001);
    free(buf);
    if (off >= 0)
        mp_test_fail("the 64 MiB from the child differ at byte %ld\n", off);
    mp_assert_int(mp_queue_qsize(q), 0);
    mp_queue_free(q);
    mp__arena_free(b);
}

/* One message of 1 GiB: put by a child that is joined before anybody reads
 * it, then taken whole with get_alloc. */
static void big_message_1gib(void **state)
{
    const size_t n = 1024 * MiB;
    board_t *b = board_new();
    mp_queue_t *q = queue_new(0, 0);
    static mp_party_t y;
    targ_t pa = {.b = b, .q = q, .id = 0, .size = n, .key = 4100, .timeout = MP_TEST_LONG};
    mp_party_start(&y, 1, t_put1, &pa, sizeof pa);
    mp_assert_int(mp_party_join(&y), 0);
    mp_assert_int(b->rc[0], 0);
    mp_assert_int(mp_queue_qsize(q), 1);
    void *buf = NULL;
    size_t len = 0;
    mp_assert_int(mp_queue_get_alloc(q, &buf, &len, 0), 0);
    mp_assert_int(len, n);
    long off = mp_test_pat_bad(buf, n, 4100);
    free(buf);
    if (off >= 0)
        mp_test_fail("the 1 GiB from the child differ at byte %ld\n", off);
    mp_assert_int(mp_queue_qsize(q), 0);
    mp_queue_free(q);
    mp__arena_free(b);
}

/* get into a buffer too short: MP_ETOOSHORT, *len is the message's size,
 * the message stays first (for small and large messages; also cap 0 with
 * buf NULL); a long enough buffer gets it whole afterwards. */
static void get_too_short(void **state)
{
    mp_queue_t *q = queue_new(0, 0);
    mp_assert_int(put_pat(q, 100, 11, 0), 0);
    mp_assert_int(put_pat(q, 5, 12, 0), 0);
    unsigned char buf[200];
    size_t len = 12345;
    mp_assert_int(mp_queue_get(q, buf, 99, &len, 0), MP_ETOOSHORT);
    mp_assert_int(len, 100);
    mp_assert_int(mp_queue_qsize(q), 2);
    len = 12345;
    expect_quick(mp_queue_get(q, NULL, 0, &len, MP_FOREVER), MP_ETOOSHORT,
                 "get(MP_FOREVER) into 0 bytes with a message queued");
    mp_assert_int(len, 100);
    len = 12345;
    mp_assert_int(mp_queue_get_nowait(q, buf, 1, &len), MP_ETOOSHORT);
    mp_assert_int(len, 100);
    mp_assert_int(mp_queue_qsize(q), 2);
    expect_msg_into(q, 100, 11, 0, "the 100-byte message after MP_ETOOSHORT");
    len = 0;
    mp_assert_int(mp_queue_get(q, buf, 4, &len, 0), MP_ETOOSHORT);
    mp_assert_int(len, 5);
    expect_msg(q, 5, 12, 0, "the 5-byte message after MP_ETOOSHORT");

    /* A large message, followed by a small one: order is kept. */
    mp_assert_int(put_pat(q, MiB, 13, 0), 0);
    mp_assert_int(put_pat(q, 3, 14, 0), 0);
    len = 0;
    mp_assert_int(mp_queue_get(q, buf, sizeof buf, &len, 0), MP_ETOOSHORT);
    mp_assert_int(len, MiB);
    unsigned char *big = malloc(MiB);
    assert_non_null(big);
    len = 0;
    mp_assert_int(mp_queue_get(q, big, MiB - 1, &len, 0), MP_ETOOSHORT);
    mp_assert_int(len, MiB);
    free(big);
    mp_assert_int(mp_queue_qsize(q), 2);
    expect_msg(q, MiB, 13, 0, "the 1 MiB message after MP_ETOOSHORT");
    expect_msg(q, 3, 14, 0, "the message after the 1 MiB one");
    /* A 0-byte message fits in 0 bytes. */
    mp_assert_int(mp_queue_put(q, NULL, 0, 0), 0);
    len = 77;
    mp_assert_int(mp_queue_get(q, NULL, 0, &len, 0), 0);
    mp_assert_int(len, 0);
    mp_assert_int(mp_queue_empty(q), 1);
    mp_queue_free(q);
}

/* get_alloc: a malloc'ed copy of the message, non-NULL for 0 bytes too;
 * MP_EEMPTY on an empty queue. */
static void get_alloc_basic(void **state)
{
    mp_queue_t *q = queue_new(0, 0);
    mp_assert_int(mp_queue_put(q, NULL, 0, 0), 0);
    void *p = NULL;
    size_t len = 99;
    mp_assert_int(mp_queue_get_alloc(q, &p, &len, 0), 0);
    assert_non_null(p);
    mp_assert_int(len, 0);
    free(p);
    mp_assert_int(put_pat(q, 1, 21, 0), 0);
    mp_assert_int(put_pat(q, 70000, 22, 0), 0);
    mp_assert_int(put_pat(q, 3 * MiB + 5, 23, 0), 0);
    expect_msg(q, 1, 21, 0, "get_alloc of 1 byte");
    expect_msg(q, 70000, 22, 0, "get_alloc of 70000 bytes");
    expect_msg(q, 3 * MiB + 5, 23, MP_FOREVER, "get_alloc of 3 MiB + 5 bytes");
    p = NULL;
    expect_quick(mp_queue_get_alloc(q, &p, &len, 0), MP_EEMPTY, "get_alloc(0) on empty");
    assert_null(p);
    mp_queue_free(q);
}

/* Many small messages on an unbounded queue: qsize counts them all, they
 * come out in order. */
static void unbounded_many(void **state)
{
    enum { N = 50000 };
    mp_queue_t *q = queue_new(0, 0);
    for (int32_t i = 0; i < N; i++) {
        int rc = mp_queue_put(q, &i, sizeof i, 0);
        if (rc != 0)
            mp_test_fail("put %d of %d on an unbounded queue gave %d (%s)\n", i, N, rc,
                         mp_strerror(rc));
    }
    mp_assert_int(mp_queue_qsize(q), N);
    mp_assert_int(mp_queue_full(q), 0);
    for (int32_t i = 0; i < N; i++) {
        int32_t v = -1;
        size_t len = 0;
        int rc = mp_queue_get(q, &v, sizeof v, &len, 0);
        if (rc != 0 || len != sizeof v || v != i)
            mp_test_fail("get %d gave %d (%s), %zu bytes, value %d\n", i, rc,
                         mp_strerror(rc), len, v);
    }
    mp_assert_int(mp_queue_qsize(q), 0);
    mp_queue_free(q);
}

/* ---- Python's queue cases ------------------------------------------------- */

/* A full bounded queue: put with timeout 0 and put_nowait give MP_EFULL at
 * once, put(0.3) after 0.3 s; the refused messages are not queued. A
 * 0-byte message counts as one message too. */
static void put_full(void **state)
{
    mp_queue_t *q = queue_new(2, 0);
    mp_assert_int(mp_queue_full(q), 0);
    mp_assert_int(put_pat(q, 10, 31, 0), 0);
    mp_assert_int(mp_queue_full(q), 0);
    mp_assert_int(mp_queue_put(q, NULL, 0, 0), 0);
    mp_assert_int(mp_queue_full(q), 1);
    mp_assert_int(mp_queue_qsize(q), 2);
    expect_quick(put_pat(q, 10, 32, 0), MP_EFULL, "put(0) on a full queue");
    expect_quick(mp_queue_put_nowait(q, "x", 1), MP_EFULL, "put_nowait on a full queue");
    expect_quick(mp_queue_put(q, NULL, 0, 0), MP_EFULL, "put(0) of 0 bytes on a full queue");
    expect_timed(put_pat(q, 10, 33, 0.3), MP_EFULL, 0.3, "put(0.3) on a full queue");
    expect_timed(put_pat(q, 200000, 34, 0.2), MP_EFULL, 0.2,
                 "put(0.2) of 200000 bytes on a full queue");
    mp_assert_int(mp_queue_qsize(q), 2);
    expect_msg(q, 10, 31, 0, "the first message of the full queue");
    mp_assert_int(mp_queue_full(q), 0);
    mp_assert_int(put_pat(q, 10, 35, 0), 0);
    mp_assert_int(mp_queue_full(q), 1);
    expect_msg(q, 0, 0, 0, "the 0-byte message of the full queue");
    expect_msg(q, 10, 35, 0, "the message put after room was made");
    mp_assert_int(mp_queue_empty(q), 1);
    mp_queue_free(q);
}

/* get on an empty queue: timeout 0, get_nowait and get_alloc(0) give
 * MP_EEMPTY at once; get(0.3) after 0.3 s, get_alloc(0.2) after 0.2 s. */
static void get_empty(void **state)
{
    mp_queue_t *q = queue_new(0, 0);
    char buf[16];
    size_t len = 0;
    void *p = NULL;
    expect_quick(mp_queue_get(q, buf, sizeof buf, &len, 0), MP_EEMPTY, "get(0) on empty");
    expect_quick(mp_queue_get_nowait(q, buf, sizeof buf, &len), MP_EEMPTY,
                 "get_nowait on empty");
    expect_quick(mp_queue_get_alloc(q, &p, &len, 0), MP_EEMPTY, "get_alloc(0) on empty");
    expect_timed(mp_queue_get(q, buf, sizeof buf, &len, 0.3), MP_EEMPTY, 0.3,
                 "get(0.3) on empty");
    expect_timed(mp_queue_get_alloc(q, &p, &len, 0.2), MP_EEMPTY, 0.2,
                 "get_alloc(0.2) on empty");
    /* Still usable. */
    mp_assert_int(put_pat(q, 9, 41, 0), 0);
    expect_msg(q, 9, 41, 0, "a message after the timeouts");
    mp_queue_free(q);
}

/* qsize, empty and full through put/put/get/get: 0, 1, 2, 1, 0; an
 * unbounded queue is never full, a bounded one of 2 is at 2. */
static void qsize_empty_full(void **state)
{
    for (int bounded = 0; bounded < 2; bounded++) {
        mp_queue_t *q = queue_new(bounded ? 2 : 0, 0);
        mp_assert_int(mp_queue_qsize(q), 0);
        mp_assert_int(mp_queue_empty(q), 1);
        mp_assert_int(mp_queue_full(q), 0);
        mp_assert_int(put_pat(q, 3, 1, 0), 0);
        mp_assert_int(mp_queue_qsize(q), 1);
        mp_assert_int(mp_queue_empty(q), 0);
        mp_assert_int(mp_queue_full(q), 0);
        mp_assert_int(put_pat(q, 300000, 2, 0), 0);
        mp_assert_int(mp_queue_qsize(q), 2);
        mp_assert_int(mp_queue_empty(q), 0);
        mp_assert_int(mp_queue_full(q), bounded);
        expect_msg(q, 3, 1, 0, "the first message");
        mp_assert_int(mp_queue_qsize(q), 1);
        mp_assert_int(mp_queue_empty(q), 0);
        mp_assert_int(mp_queue_full(q), 0);
        expect_msg(q, 300000, 2, 0, "the second message");
        mp_assert_int(mp_queue_qsize(q), 0);
        mp_assert_int(mp_queue_empty(q), 1);
        mp_assert_int(mp_queue_full(q), 0);
        mp_queue_free(q);
    }
}

/* A party blocked in get on an empty queue (asleep) gets a message as soon
 * as it is put, for a small and a 1 MiB message. */
static void get_woken_by_put(int proc)
{
    board_t *b = board_new();
    mp_queue_t *q = queue_new(0, 0);
    static mp_party_t y;
    const size_t sizes[2] = {3000, MiB};
    for (int r = 0; r < 2; r++) {
        targ_t a = {.b = b, .q = q, .id = r, .size = sizes[r], .key = 50 + (uint64_t)r,
                    .timeout = MP_TEST_LONG};
        mp_party_start(&y, proc, t_get1, &a, sizeof a);
        mp_test_wait_word(&b->ready, (uint32_t)r + 1, "the getter");
        mp_test_wait_asleep(b->tid[r], "the getter in get on an empty queue");
        mp_assert_int(mp_test_word_get(&b->done), r);
        double t_rel = mp_test_now();
        mp_assert_int(put_pat(q, sizes[r], 50 + (uint64_t)r, 0), 0);
        mp_assert_int(mp_party_join(&y), 0);
        mp_assert_int(b->rc[r], 0);
        mp_assert_int(b->cnt[r], (int32_t)sizes[r]);
        mp_assert_int(b->rc2[r], 0);
        mp_test_check_prompt(b->at[r], t_rel, "a get waiting for a put");
    }
    mp_assert_int(mp_queue_qsize(q), 0);
    mp_queue_free(q);
    mp__arena_free(b);
}

static void get_woken_by_put_threads(void **state) { get_woken_by_put(0); }
static void get_woken_by_put_processes(void **state) { get_woken_by_put(1); }

/* A party blocked in put on a full queue (asleep) completes as soon as a
 * get makes room; its message then follows. */
static void put_woken_by_get(int proc)
{
    board_t *b = board_new();
    mp_queue_t *q = queue_new(1, 0);
    mp_assert_int(put_pat(q, 10, 61, 0), 0);
    static mp_party_t y;
    targ_t a = {.b = b, .q = q, .id = 0, .size = 100000, .key = 62, .timeout = MP_TEST_LONG};
    mp_party_start(&y, proc, t_put1, &a, sizeof a);
    mp_test_wait_word(&b->ready, 1, "the putter");
    mp_test_wait_asleep(b->tid[0], "the putter in put on a full queue");
    mp_assert_int(mp_test_word_get(&b->done), 0);
    mp_assert_int(mp_queue_qsize(q), 1);
    mp_assert_int(mp_queue_full(q), 1);
    double t_rel = mp_test_now();
    expect_msg(q, 10, 61, 0, "the message that filled the queue");
    mp_assert_int(mp_party_join(&y), 0);
    mp_assert_int(b->rc[0], 0);
    mp_test_check_prompt(b->at[0], t_rel, "a put waiting for room");
    expect_msg(q, 100000, 62, 0, "the message of the put that waited");
    mp_assert_int(mp_queue_empty(q), 1);
    mp_queue_free(q);
    mp__arena_free(b);
}

static void put_woken_by_get_threads(void **state) { put_woken_by_get(0); }
static void put_woken_by_get_processes(void **state) { put_woken_by_get(1); }

/* Items put before and after a child starts arrive in order in the child;
 * the child's own puts arrive in order here, after it has exited, and
 * qsize sees them. */
static void fork_order(void **state)
{
    board_t *b = board_new();
    mp_queue_t *q = queue_new(0, 0);
    for (int32_t i = 0; i < 10; i++)
        mp_assert_int(mp_queue_put(q, &i, sizeof i, 0), 0);
    static mp_party_t y;
    targ_t a = {.b = b, .q = q, .id = 0};
    mp_party_start(&y, 1, t_fork_order, &a, sizeof a);
    for (int32_t i = 10; i < 20; i++)
        mp_assert_int(mp_queue_put(q, &i, sizeof i, 0), 0);
    int code = mp_party_join(&y);
    if (code != 0)
        mp_test_fail("the child returned %d at item %d (10: get gave %d (%s), 11: got %d, "
                     "12: put gave %d)\n",
                     code, b->cnt[0], b->rc[0], mp_strerror(b->rc[0]), b->rc2[0], b->rc[0]);
    mp_assert_int(mp_queue_qsize(q), 10);
    for (int32_t i = 100; i < 110; i++) {
        int32_t v = -1;
        size_t len = 0;
        mp_assert_int(mp_queue_get(q, &v, sizeof v, &len, 0), 0);
        mp_assert_int(len, sizeof v);
        mp_assert_int(v, i);
    }
    mp_assert_int(mp_queue_empty(q), 1);
    mp_queue_free(q);
    mp__arena_free(b);
}

/* Two producers: the order of messages is the order in which their puts
 * completed, whatever the sizes (a 1 MiB message of the party, then a small
 * one of ours; then a large one of ours, then a small one of the party). */
static void two_producers_order(int proc)
{
    board_t *b = board_new();
    mp_queue_t *q = queue_new(0, 0);
    static mp_party_t y;
    targ_t a = {.b = b, .q = q, .id = 0, .size = MiB, .key = 71, .timeout = MP_TEST_LONG};
    mp_party_start(&y, proc, t_put1, &a, sizeof a);
    mp_assert_int(mp_party_join(&y), 0);
    mp_assert_int(b->rc[0], 0);
    mp_assert_int(put_pat(q, 1, 72, 0), 0);
    mp_assert_int(put_pat(q, 2 * MiB, 73, 0), 0);
    targ_t a2 = {.b = b, .q = q, .id = 1, .size = 2, .key = 74, .timeout = MP_TEST_LONG};
    mp_party_start(&y, proc, t_put1, &a2, sizeof a2);
    mp_assert_int(mp_party_join(&y), 0);
    mp_assert_int(b->rc[1], 0);
    expect_msg(q, MiB, 71, 0, "the party's 1 MiB message, put first");
    expect_msg(q, 1, 72, 0, "our 1-byte message, put second");
    expect_msg(q, 2 * MiB, 73, 0, "our 2 MiB message, put third");
    expect_msg(q, 2, 74, 0, "the party's 2-byte message, put last");
    mp_queue_free(q);
    mp__arena_free(b);
}

static void two_producers_order_threads(void **state) { two_producers_order(0); }
static void two_producers_order_processes(void **state) { two_producers_order(1); }

/* ---- JoinableQueue --------------------------------------------------------- */

/* 4 worker processes on a JoinableQueue: join waits while tasks are taken
 * but not done (the workers hold them), returns once every task was
 * processed and marked done (all of them counted by then), and each task
 * was processed exactly once. */
static void joinable_workers(void **state)
{
    enum { WORKERS = 4, TASKS = 100 };
    board_t *b = board_new();
    mp_queue_t *q = jqueue_new(0, 0);
    static mp_party_t y[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        targ_t a = {.b = b, .q = q, .id = i};
        mp_party_start(&y[i], 1, t_worker, &a, sizeof a);
    }
    for (uint32_t t = 0; t < TASKS; t++) {
        uint32_t task[2] = {t, ~t};
        mp_assert_int(mp_queue_put(q, task, sizeof task, 0), 0);
    }
    mp_test_wait_word(&b->ready, WORKERS, "workers");
    /* Nobody can have called task_done yet (they wait for go). */
    expect_timed(mp_queue_join(q, 0.2), -ETIMEDOUT, 0.2, "join(0.2) with unfinished tasks");
    mp_assert_int(mp_test_word_get(&b->got), 0);
    mp_test_word_store(&b->go, 1);
    mp_assert_int(mp_queue_join(q, MP_TEST_LONG), 0);
    uint32_t got = mp_test_word_get(&b->got);
    if (got != TASKS)
        mp_test_fail("join returned when %u of %d tasks were done\n", got, TASKS);
    mp_assert_int(mp_queue_qsize(q), 0);
    expect_quick(mp_queue_join(q, 0), 0, "join(0) once every task is done");
    mp_assert_int(mp_queue_close(q), 0);
    int total = 0;
    for (int i = 0; i < WORKERS; i++) {
        int code = mp_party_join(&y[i]);
        if (code != 0)
            mp_test_fail("worker %d returned %d (50: get gave %d (%s), 51: task_done gave "
                         "%d (%s))\n",
                         i, code, b->rc[i], mp_strerror(b->rc[i]), b->rc2[i],
                         mp_strerror(b->rc2[i]));
        mp_assert_int(b->rc[i], MP_EEOF);
        total += b->cnt[i];
    }
    mp_assert_int(total, TASKS);
    for (int t = 0; t < TASKS; t++)
        if (b->seen[0][t] != 1)
            mp_test_fail("task %d was processed %u times\n", t, b->seen[0][t]);
    mp_queue_free(q);
    mp__arena_free(b);
}

/* join on a fresh JoinableQueue returns 0 at once, whatever the timeout. */
static void join_fresh(void **state)
{
    mp_queue_t *q = jqueue_new(0, 0);
    expect_quick(mp_queue_join(q, 0), 0, "join(0) on a fresh JoinableQueue");
    expect_quick(mp_queue_join(q, 1.0), 0, "join(1.0) on a fresh JoinableQueue");
    expect_quick(mp_queue_join(q, MP_FOREVER), 0, "join(MP_FOREVER) on a fresh JoinableQueue");
    mp_queue_free(q);
}

/* join with a timeout while tasks are unfinished (queued, or taken but not
 * done): -ETIMEDOUT (at once for 0, after 0.3 s for 0.3); a joiner party
 * asleep in join wakes when the last task_done comes. */
static void join_timeout(int proc)
{
    board_t *b = board_new();
    mp_queue_t *q = jqueue_new(0, 0);
    mp_assert_int(put_pat(q, 5, 81, 0), 0);
    mp_assert_int(put_pat(q, 5, 82, 0), 0);
    expect_quick(mp_queue_join(q, 0), -ETIMEDOUT, "join(0) with 2 queued tasks");
    expect_timed(mp_queue_join(q, 0.3), -ETIMEDOUT, 0.3, "join(0.3) with 2 queued tasks");
    expect_msg(q, 5, 81, 0, "task 1");
    mp_assert_int(mp_queue_task_done(q), 0);
    expect_quick(mp_queue_join(q, 0), -ETIMEDOUT, "join(0) with 1 queued task");
    expect_msg(q, 5, 82, 0, "task 2");
    expect_quick(mp_queue_join(q, 0), -ETIMEDOUT, "join(0) with 1 task taken, not done");
    static mp_party_t y;
    targ_t a = {.b = b, .q = q, .id = 0, .timeout = MP_TEST_LONG};
    mp_party_start(&y, proc, t_joiner, &a, sizeof a);
    mp_test_wait_word(&b->ready, 1, "the joiner");
    mp_test_wait_asleep(b->tid[0], "the joiner in join");
    mp_assert_int(mp_test_word_get(&b->done), 0);
    double t_rel = mp_test_now();
    mp_assert_int(mp_queue_task_done(q), 0);
    mp_assert_int(mp_party_join(&y), 0);
    mp_assert_int(b->rc[0], 0);
    mp_test_check_prompt(b->at[0], t_rel, "a join waiting for the last task_done");
    expect_quick(mp_queue_join(q, 0), 0, "join(0) with every task done");
    mp_queue_free(q);
    mp__arena_free(b);
}

static void join_timeout_threads(void **state) { join_timeout(0); }
static void join_timeout_processes(void **state) { join_timeout(1); }

/* task_done more times than messages were put: -EOVERFLOW, and nothing
 * changes (the count does not go below zero: a later put is one task). */
static void task_done_overflow(void **state)
{
    mp_queue_t *q = jqueue_new(0, 0);
    mp_assert_int(mp_queue_task_done(q), -EOVERFLOW);
    mp_assert_int(mp_queue_join(q, 0), 0);
    mp_assert_int(put_pat(q, 4, 91, 0), 0);
    mp_assert_int(put_pat(q, 4, 92, 0), 0);
    expect_msg(q, 4, 91, 0, "task 1");
    expect_msg(q, 4, 92, 0, "task 2");
    mp_assert_int(mp_queue_task_done(q), 0);
    mp_assert_int(mp_queue_task_done(q), 0);
    mp_assert_int(mp_queue_task_done(q), -EOVERFLOW);
    mp_assert_int(mp_queue_task_done(q), -EOVERFLOW);
    mp_assert_int(mp_queue_join(q, 0), 0);
    mp_assert_int(put_pat(q, 4, 93, 0), 0);
    expect_quick(mp_queue_join(q, 0), -ETIMEDOUT, "join(0) with one task after the overflows");
    expect_msg(q, 4, 93, 0, "task 3");
    mp_assert_int(mp_queue_task_done(q), 0);
    mp_assert_int(mp_queue_join(q, 0), 0);
    mp_assert_int(mp_queue_task_done(q), -EOVERFLOW);
    mp_queue_free(q);
}

/* task_done counts puts (Python): a task may be marked done before it is
 * taken; the message stays queued. */
static void task_done_counts_puts(void **state)
{
    mp_queue_t *q = jqueue_new(0, 0);
    mp_assert_int(put_pat(q, 6, 95, 0), 0);
    mp_assert_int(mp_queue_task_done(q), 0);
    mp_assert_int(mp_queue_join(q, 0), 0);
    mp_assert_int(mp_queue_task_done(q), -EOVERFLOW);
    mp_assert_int(mp_queue_qsize(q), 1);
    expect_msg(q, 6, 95, 0, "the message marked done before it was taken");
    mp_queue_free(q);
}

/* A put that fails (full, too large, closed) adds no task. */
static void joinable_failed_put_no_task(void **state)
{
    mp_queue_t *q = jqueue_new(1, 100);
    mp_assert_int(put_pat(q, 10, 96, 0), 0);
    mp_assert_int(put_pat(q, 10, 97, 0), MP_EFULL);
    expect_msg(q, 10, 96, 0, "the one task");
    mp_assert_int(put_pat(q, 101, 98, 0), -EMSGSIZE);
    mp_assert_int(mp_queue_task_done(q), 0);
    expect_quick(mp_queue_join(q, 0), 0, "join(0) after failed puts");
    mp_assert_int(mp_queue_close(q), 0);
    mp_assert_int(put_pat(q, 10, 99, 0), MP_ECLOSED);
    expect_quick(mp_queue_join(q, 0), 0, "join(0) after a put on the closed queue");
    mp_assert_int(mp_queue_task_done(q), -EOVERFLOW);
    mp_queue_free(q);
}

/* task_done and join on a plain Queue or a SimpleQueue: -EINVAL (join does
 * not wait). */
static void task_done_not_joinable(void **state)
{
    mp_queue_t *q = queue_new(0, 0);
    mp_simplequeue_t *s = squeue_new();
    mp_assert_int(mp_queue_task_done(q), -EINVAL);
    expect_quick(mp_queue_join(q, 0), -EINVAL, "join(0) on a Queue");
    expect_quick(mp_queue_join(q, MP_FOREVER), -EINVAL, "join(MP_FOREVER) on a Queue");
    mp_assert_int(put_pat(q, 3, 1, 0), 0);
    mp_assert_int(mp_queue_task_done(q), -EINVAL);
    expect_quick(mp_queue_join(q, 1.0), -EINVAL, "join(1.0) on a Queue with a message");
    mp_assert_int(mp_queue_qsize(q), 1);
    mp_assert_int(mp_queue_task_done(s), -EINVAL);
    expect_quick(mp_queue_join(s, MP_FOREVER), -EINVAL, "join(MP_FOREVER) on a SimpleQueue");
    mp_simplequeue_free(s);
    mp_queue_free(q);
}

/* ---- close ------------------------------------------------------------------- */

/* After close: put fails with MP_ECLOSED (also put_nowait, 0 bytes, a full
 * queue with a timeout: at once), closed is 1, closing again is harmless;
 * the same for a JoinableQueue. */
static void close_put(void **state)
{
    mp_queue_t *q = queue_new(0, 0);
    mp_assert_int(mp_queue_closed(q), 0);
    mp_assert_int(mp_queue_close(q), 0);
    mp_assert_int(mp_queue_closed(q), 1);
    mp_assert_int(put_pat(q, 10, 1, 0), MP_ECLOSED);
    mp_assert_int(put_pat(q, 10, 1, MP_FOREVER), MP_ECLOSED);
    mp_assert_int(mp_queue_put_nowait(q, "x", 1), MP_ECLOSED);
    mp_assert_int(mp_queue_put(q, NULL, 0, 0), MP_ECLOSED);
    mp_assert_int(put_pat(q, 2 * MiB, 1, 0), MP_ECLOSED);
    mp_assert_int(mp_queue_close(q), 0);
    mp_assert_int(mp_queue_closed(q), 1);
    mp_assert_int(mp_queue_qsize(q), 0);
    mp_queue_free(q);

    q = queue_new(1, 0);
    mp_assert_int(put_pat(q, 10, 2, 0), 0);
    mp_assert_int(mp_queue_close(q), 0);
    expect_quick(put_pat(q, 10, 3, 0), MP_ECLOSED, "put(0) on a full closed queue");
    expect_quick(put_pat(q, 10, 3, 2.0), MP_ECLOSED, "put(2.0) on a full closed queue");
    expect_quick(put_pat(q, 10, 3, MP_FOREVER), MP_ECLOSED,
                 "put(MP_FOREVER) on a full closed queue");
    mp_assert_int(mp_queue_qsize(q), 1);
    mp_queue_free(q);

    q = jqueue_new(0, 0);
    mp_assert_int(mp_queue_close(q), 0);
    mp_assert_int(mp_queue_closed(q), 1);
    mp_assert_int(put_pat(q, 10, 4, 0), MP_ECLOSED);
    mp_queue_free(q);
}

/* After close, get returns what is queued, in order, then MP_EEOF to every
 * call (timeout 0, get_nowait, MP_FOREVER: at once; get_alloc too). */
static void close_drain_then_eof(void **state)
{
    mp_queue_t *q = queue_new(0, 0);
    mp_assert_int(put_pat(q, 10, 1, 0), 0);
    mp_assert_int(put_pat(q, 2 * MiB, 2, 0), 0);
    mp_assert_int(mp_queue_put(q, NULL, 0, 0), 0);
    mp_assert_int(mp_queue_close(q), 0);
    mp_assert_int(mp_queue_qsize(q), 3);
    mp_assert_int(mp_queue_empty(q), 0);
    char buf[16];
    size_t len = 0;
    mp_assert_int(mp_queue_get(q, buf, 5, &len, 0), MP_ETOOSHORT);
    mp_assert_int(len, 10);
    expect_msg(q, 10, 1, 0, "message 1 after close");
    expect_msg(q, 2 * MiB, 2, MP_FOREVER, "message 2 after close");
    expect_msg(q, 0, 0, 0, "message 3 after close");
    mp_assert_int(mp_queue_qsize(q), 0);
    mp_assert_int(mp_queue_empty(q), 1);
    void *p = NULL;
    expect_quick(mp_queue_get(q, buf, sizeof buf, &len, 0), MP_EEOF, "get(0) closed, drained");
    expect_quick(mp_queue_get_nowait(q, buf, sizeof buf, &len), MP_EEOF,
                 "get_nowait closed, drained");
    expect_quick(mp_queue_get(q, buf, sizeof buf, &len, MP_FOREVER), MP_EEOF,
                 "get(MP_FOREVER) closed, drained");
    expect_quick(mp_queue_get(q, buf, sizeof buf, &len, 5.0), MP_EEOF,
                 "get(5.0) closed, drained");
    expect_quick(mp_queue_get_alloc(q, &p, &len, MP_FOREVER), MP_EEOF,
                 "get_alloc(MP_FOREVER) closed, drained");
    assert_null(p);
    expect_quick(mp_queue_get(q, NULL, 0, &len, MP_FOREVER), MP_EEOF,
                 "get into 0 bytes closed, drained");
    mp_queue_free(q);
}

/* Several consumers (3 processes and a thread) blocked in get: the queued
 * messages are each delivered once, then close wakes every one of them with
 * MP_EEOF. */
static void close_wakes_consumers(void **state)
{
    enum { CONS = 4, MSGS = 12 };
    board_t *b = board_new();
    mp_queue_t *q = queue_new(0, 0);
    static mp_party_t y[CONS];
    for (int i = 0; i < CONS; i++) {
        targ_t a = {.b = b, .q = q, .id = i, .timeout = MP_TEST_LONG};
        mp_party_start(&y[i], i < 3, t_drain, &a, sizeof a);
    }
    mp_test_wait_word(&b->ready, CONS, "consumers");
    for (uint32_t s = 0; s < MSGS; s++) {
        unsigned char buf[600];
        size_t len = fifo_size(0, s) > sizeof buf ? sizeof buf : fifo_size(0, s);
        msg_fill(buf, len, 0, s);
        mp_assert_int(mp_queue_put(q, buf, len, 0), 0);
    }
    mp_test_wait_word(&b->got, MSGS, "messages consumed");
    for (int i = 0; i < CONS; i++)
        mp_test_wait_asleep(b->tid[i], "a consumer in get on the empty queue");
    mp_assert_int(mp_test_word_get(&b->done), 0);
    double t_rel = mp_test_now();
    mp_assert_int(mp_queue_close(q), 0);
    int total = 0;
    for (int i = 0; i < CONS; i++) {
        int code = mp_party_join(&y[i]);
        if (code != 0)
            mp_test_fail("consumer %d (%s) returned %d: get gave %d (%s)\n", i,
                         kind_name(i < 3), code, b->rc[i], mp_strerror(b->rc[i]));
        mp_assert_int(b->rc[i], MP_EEOF);
        mp_test_check_prompt(b->at[i], t_rel, "a consumer blocked in get when the queue closed");
        total += b->cnt[i];
    }
    mp_assert_int(total, MSGS);
    mp_assert_int(b->torn + b->phantom + b->order_bad, 0);
    for (int s = 0; s < MSGS; s++)
        mp_assert_int(b->seen[0][s], 1);
    mp_queue_free(q);
    mp__arena_free(b);
}

/* A producer blocked in put on a full queue (asleep) is woken by close with
 * MP_ECLOSED; its message is not queued, the queued one still comes, then
 * MP_EEOF. */
static void close_wakes_producer(int proc)
{
    board_t *b = board_new();
    mp_queue_t *q = queue_new(1, 0);
    mp_assert_int(put_pat(q, 20, 1, 0), 0);
    static mp_party_t y;
    targ_t a = {.b = b, .q = q, .id = 0, .size = 300, .key = 2, .timeout = MP_TEST_LONG};
    mp_party_start(&y, proc, t_put1, &a, sizeof a);
    mp_test_wait_word(&b->ready, 1, "the producer");
    mp_test_wait_asleep(b->tid[0], "the producer in put on a full queue");
    mp_assert_int(mp_test_word_get(&b->done), 0);
    double t_rel = mp_test_now();
    mp_assert_int(mp_queue_close(q), 0);
    mp_assert_int(mp_party_join(&y), 0);
    mp_assert_int(b->rc[0], MP_ECLOSED);
    mp_test_check_prompt(b->at[0], t_rel, "a producer blocked in put when the queue closed");
    mp_assert_int(mp_queue_qsize(q), 1);
    expect_msg(q, 20, 1, 0, "the message queued before close");
    char c;
    size_t len;
    mp_assert_int(mp_queue_get(q, &c, 1, &len, 0), MP_EEOF);
    mp_queue_free(q);
    mp__arena_free(b);
}

static void close_wakes_producer_threads(void **state) { close_wakes_producer(0); }
static void close_wakes_producer_processes(void **state) { close_wakes_producer(1); }

/* Another process closes: our thread blocked in get wakes with MP_EEOF, our
 * puts fail, closed is 1 here. */
static void close_by_other_process(void **state)
{
    board_t *b = board_new();
    mp_queue_t *q = queue_new(0, 0);
    static mp_party_t g, c;
    targ_t ga = {.b = b, .q = q, .id = 0, .timeout = MP_TEST_LONG};
    mp_party_start(&g, 0, t_get1, &ga, sizeof ga);
    mp_test_wait_word(&b->ready, 1, "the getter");
    mp_test_wait_asleep(b->tid[0], "the getter in get");
    targ_t ca = {.b = b, .q = q, .id = 1};
    b->rc[1] = 12345;
    double t_rel = mp_test_now();
    mp_party_start(&c, 1, t_closer, &ca, sizeof ca);
    mp_assert_int(mp_party_join(&c), 0);
    mp_assert_int(b->rc[1], 0);
    mp_assert_int(mp_party_join(&g), 0);
    mp_assert_int(b->rc[0], MP_EEOF);
    mp_test_check_prompt(b->at[0], t_rel, "a get when another process closed the queue");
    mp_assert_int(mp_queue_closed(q), 1);
    mp_assert_int(put_pat(q, 1, 1, 0), MP_ECLOSED);
    mp_queue_free(q);
    mp__arena_free(b);
}

/* ---- max_msg, bad input, freeing ---------------------------------------------- */

/* put of more than max_msg bytes: -EMSGSIZE, nothing queued (qsize
 * unchanged); max_msg bytes and 0 bytes are fine; the same for a
 * SimpleQueue. */
static void max_msg_limit(void **state)
{
    mp_queue_t *q = queue_new(0, 100);
    mp_assert_int(put_pat(q, 100, 1, 0), 0);
    mp_assert_int(mp_queue_qsize(q), 1);
    mp_assert_int(put_pat(q, 101, 2, 0), -EMSGSIZE);
    mp_assert_int(mp_queue_qsize(q), 1);
    mp_assert_int(put_pat(q, MiB, 3, MP_FOREVER), -EMSGSIZE);
    mp_assert_int(mp_queue_qsize(q), 1);
    mp_assert_int(mp_queue_put(q, NULL, 0, 0), 0);
    mp_assert_int(mp_queue_qsize(q), 2);
    expect_msg(q, 100, 1, 0, "the message of max_msg bytes");
    expect_msg(q, 0, 0, 0, "the 0-byte message");
    mp_assert_int(mp_queue_empty(q), 1);
    mp_queue_free(q);

    mp_queue_opts_t o = {.maxsize = 0, .max_msg = 10};
    mp_simplequeue_t *s = NULL;
    mp_assert_int(mp_simplequeue_new(&s, &o), 0);
    char buf[11] = {0};
    mp_assert_int(mp_simplequeue_put(s, buf, 11), -EMSGSIZE);
    mp_assert_int(mp_simplequeue_empty(s), 1);
    mp_assert_int(mp_simplequeue_put(s, buf, 10), 0);
    mp_assert_int(mp_simplequeue_empty(s), 0);
    mp_simplequeue_free(s);
}

/* NULL handles, NULL out/len pointers, buf NULL with bytes, NaN timeouts:
 * -EINVAL, and nothing is taken or queued; a negative timeout waits without
 * limit (so it succeeds at once where no wait is needed). */
static void bad_args(void **state)
{
    const double nan = NAN;
    mp_queue_t *q = NULL;
    mp_simplequeue_t *s = NULL;
    mp_assert_int(mp_queue_new(NULL, NULL), -EINVAL);
    mp_assert_int(mp_joinablequeue_new(NULL, NULL), -EINVAL);
    mp_assert_int(mp_simplequeue_new(NULL, NULL), -EINVAL);
    mp_queue_opts_t bounded = {.maxsize = 3, .max_msg = 0};
    mp_assert_int(mp_simplequeue_new(&s, &bounded), -EINVAL);

    /* NULL handles */
    char buf[16];
    size_t len = 0;
    void *p = NULL;
    mp_assert_int(mp_queue_put(NULL, buf, 1, 0), -EINVAL);
    mp_assert_int(mp_queue_put_nowait(NULL, buf, 1), -EINVAL);
    mp_assert_int(mp_queue_get(NULL, buf, sizeof buf, &len, 0), -EINVAL);
    mp_assert_int(mp_queue_get_alloc(NULL, &p, &len, 0), -EINVAL);
    mp_assert_int(mp_queue_get_nowait(NULL, buf, sizeof buf, &len), -EINVAL);
    mp_assert_int(mp_queue_qsize(NULL), -EINVAL);
    mp_assert_int(mp_queue_empty(NULL), -EINVAL);
    mp_assert_int(mp_queue_full(NULL), -EINVAL);
    mp_assert_int(mp_queue_close(NULL), -EINVAL);
    mp_assert_int(mp_queue_closed(NULL), -EINVAL);
    mp_assert_int(mp_queue_task_done(NULL), -EINVAL);
    mp_assert_int(mp_queue_join(NULL, 0), -EINVAL);
    mp_assert_int(mp_simplequeue_put(NULL, buf, 1), -EINVAL);
    mp_assert_int(mp_simplequeue_get(NULL, buf, sizeof buf, &len), -EINVAL);
    mp_assert_int(mp_simplequeue_get_alloc(NULL, &p, &len), -EINVAL);
    mp_assert_int(mp_simplequeue_empty(NULL), -EINVAL);
    mp_assert_int(mp_simplequeue_close(NULL), -EINVAL);
    mp_queue_free(NULL);
    mp_simplequeue_free(NULL);

    /* Bad pointers and NaN on live queues with a message queued. */
    q = queue_new(0, 0);
    mp_queue_t *j = jqueue_new(0, 0);
    s = squeue_new();
    mp_assert_int(put_pat(q, 8, 5, 0), 0);
    mp_assert_int(put_pat(j, 8, 6, 0), 0);
    mp_assert_int(mp_simplequeue_put(s, "abc", 3), 0);
    mp_assert_int(mp_queue_get(q, buf, sizeof buf, NULL, 0), -EINVAL);
    mp_assert_int(mp_queue_get(q, NULL, 8, &len, 0), -EINVAL);
    mp_assert_int(mp_queue_get_nowait(q, buf, sizeof buf, NULL), -EINVAL);
    mp_assert_int(mp_queue_get_alloc(q, NULL, &len, 0), -EINVAL);
    mp_assert_int(mp_queue_get_alloc(q, &p, NULL, 0), -EINVAL);
    mp_assert_int(mp_queue_put(q, NULL, 5, 0), -EINVAL);
    mp_assert_int(mp_simplequeue_get(s, buf, sizeof buf, NULL), -EINVAL);
    mp_assert_int(mp_simplequeue_get(s, NULL, 8, &len), -EINVAL);
    mp_assert_int(mp_simplequeue_get_alloc(s, NULL, &len), -EINVAL);
    mp_assert_int(mp_simplequeue_get_alloc(s, &p, NULL), -EINVAL);
    mp_assert_int(mp_simplequeue_put(s, NULL, 5), -EINVAL);
    mp_assert_int(mp_queue_put(q, buf, 1, nan), -EINVAL);
    mp_assert_int(mp_queue_get(q, buf, sizeof buf, &len, nan), -EINVAL);
    mp_assert_int(mp_queue_get_alloc(q, &p, &len, nan), -EINVAL);
    mp_assert_int(mp_queue_join(j, nan), -EINVAL);
    mp_assert_int(mp_queue_qsize(q), 1);
    mp_assert_int(mp_queue_qsize(j), 1);
    mp_assert_int(mp_simplequeue_empty(s), 0);
    mp_assert_int(mp_queue_closed(q), 0);

    /* Negative timeouts wait without limit: here they need not wait. */
    mp_assert_int(put_pat(q, 8, 7, -5.0), 0);
    expect_msg(q, 8, 5, -2.0, "get_alloc(-2.0) of the first message");
    expect_msg_into(q, 8, 7, MP_FOREVER, "get(MP_FOREVER) of the second message");
    expect_msg(j, 8, 6, 0, "the JoinableQueue's message");
    mp_assert_int(mp_queue_task_done(j), 0);
    mp_assert_int(mp_queue_join(j, -1.0), 0);
    len = 0;
    mp_assert_int(mp_simplequeue_get(s, buf, sizeof buf, &len), 0);
    mp_assert_int(len, 3);
    assert_memory_equal(buf, "abc", 3);
    mp_simplequeue_free(s);
    mp_queue_free(j);
    mp_queue_free(q);
}

/* A freed handle is refused with -EINVAL by every call. */
static void freed_handles(void **state)
{
    mp_queue_t *q = queue_new(2, 0);
    mp_queue_t *j = jqueue_new(0, 0);
    mp_simplequeue_t *s = squeue_new();
    mp_assert_int(put_pat(q, 10, 1, 0), 0);
    mp_assert_int(put_pat(q, MiB, 2, 0), 0);
    mp_assert_int(put_pat(j, 10, 3, 0), 0);
    mp_assert_int(mp_simplequeue_put(s, "x", 1), 0);
    mp_queue_free(q);
    mp_queue_free(j);
    mp_simplequeue_free(s);
    char buf[16];
    size_t len = 0;
    void *p = NULL;
    mp_assert_int(mp_queue_put(q, buf, 1, 0), -EINVAL);
    mp_assert_int(mp_queue_put_nowait(q, buf, 1), -EINVAL);
    mp_assert_int(mp_queue_get(q, buf, sizeof buf, &len, 0), -EINVAL);
    mp_assert_int(mp_queue_get_alloc(q, &p, &len, 0), -EINVAL);
    mp_assert_int(mp_queue_get_nowait(q, buf, sizeof buf, &len), -EINVAL);
    mp_assert_int(mp_queue_qsize(q), -EINVAL);
    mp_assert_int(mp_queue_empty(q), -EINVAL);
    mp_assert_int(mp_queue_full(q), -EINVAL);
    mp_assert_int(mp_queue_close(q), -EINVAL);
    mp_assert_int(mp_queue_closed(q), -EINVAL);
    mp_assert_int(mp_queue_task_done(j), -EINVAL);
    mp_assert_int(mp_queue_join(j, 0), -EINVAL);
    mp_assert_int(mp_queue_qsize(j), -EINVAL);
    mp_assert_int(mp_simplequeue_put(s, buf, 1), -EINVAL);
    mp_assert_int(mp_simplequeue_get(s, buf, sizeof buf, &len), -EINVAL);
    mp_assert_int(mp_simplequeue_get_alloc(s, &p, &len), -EINVAL);
    mp_assert_int(mp_simplequeue_empty(s), -EINVAL);
    mp_assert_int(mp_simplequeue_close(s), -EINVAL);
}

static mp__arena_stats_t arena_stats(void)
{
    mp__arena_stats_t s;
    memset(&s, 0, sizeof s);
    mp_assert_int(mp__arena_stats(&s), 0);
    return s;
}

/* free releases the queue and every message still in it: the arena's bytes
 * in use come back to what they were (after one queue of each kind was made,
 * used and freed, so that anything kept for the life of the family exists). */
static void free_releases_messages(void **state)
{
    const size_t sizes[] = {0, 1, 100, 4096, 70000, MiB, 8 * MiB};
    for (int round = 0; round < 2; round++) {
        mp__arena_stats_t s0 = arena_stats();
        mp_queue_t *q = queue_new(0, 0);
        mp_queue_t *j = jqueue_new(0, 0);
        mp_simplequeue_t *s = squeue_new();
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            mp_assert_int(put_pat(q, sizes[i], i, 0), 0);
            mp_assert_int(put_pat(j, sizes[i], i, 0), 0);
        }
        mp_assert_int(mp_simplequeue_put(s, "abc", 3), 0);
        expect_msg(q, 0, 0, 0, "the first message");
        mp_queue_free(q);
        mp_queue_free(j);
        mp_simplequeue_free(s);
        mp__arena_stats_t s1 = arena_stats();
        if (round == 1 && s1.used != s0.used)
            mp_test_fail("the arena holds %zu bytes after making and freeing queues with "
                         "messages in them, %zu before\n",
                         s1.used, s0.used);
    }
    const char *why = NULL;
    if (mp__arena_check(&why) != 0)
        mp_test_fail("arena check: %s\n", why ? why : "?");
}

/* mp_queue_free in a process that did not make the queue does nothing: the
 * queue and its messages are still there. */
static void free_in_child(void **state)
{
    board_t *b = board_new();
    mp_queue_t *q = queue_new(0, 0);
    mp_simplequeue_t *s = squeue_new();
    mp_assert_int(put_pat(q, 5000, 1, 0), 0);
    mp_assert_int(mp_simplequeue_put(s, "abc", 3), 0);
    static mp_party_t y;
    targ_t a = {.b = b, .q = q, .q2 = s};
    mp_party_start(&y, 1, t_free_q, &a, sizeof a);
    mp_assert_int(mp_party_join(&y), 0);
    mp_assert_int(mp_queue_qsize(q), 1);
    mp_assert_int(put_pat(q, 6, 2, 0), 0);
    expect_msg(q, 5000, 1, 0, "a message of a queue a child freed");
    expect_msg(q, 6, 2, 0, "a message put after a child freed the queue");
    mp_assert_int(mp_simplequeue_empty(s), 0);
    char buf[8];
    size_t len = 0;
    mp_assert_int(mp_simplequeue_get(s, buf, sizeof buf, &len), 0);
    mp_assert_int(len, 3);
    mp_simplequeue_free(s);
    mp_queue_free(q);
    mp__arena_free(b);
}

/* put with no shared memory for the message (growing the arena fails):
 * -ENOMEM, nothing queued, the queue still works. */
static void put_enomem(void **state)
{
    mp_queue_t *q = queue_new(0, 0);
    mp_assert_int(put_pat(q, 10, 1, 0), 0);
    mp__arena_stats_t s0 = arena_stats();
    size_t n = s0.mapped + 64 * MiB;
    unsigned char *buf = malloc(n);
    assert_non_null(buf);
    mp_test_pat_fill(buf, n, 2);
    mp__fault_arm(MP__SYS_FTRUNCATE, 1, ENOSPC);
    int rc = mp_queue_put(q, buf, n, 0);
    mp__fault_clear();
    if (rc == 0) {
        free(buf);
        mp_queue_free(q);
        mp_test_skip("a put of %zu bytes did not need to grow the arena", n);
    }
    mp_assert_int(rc, -ENOMEM);
    mp_assert_int(mp_queue_qsize(q), 1);
    mp_assert_int(mp_queue_put(q, buf, n, 0), 0);
    free(buf);
    expect_msg(q, 10, 1, 0, "the message queued before the failed put");
    expect_msg(q, n, 2, 0, "the large message put after the failure");
    mp_assert_int(mp_queue_empty(q), 1);
    mp_queue_free(q);
}

/* get_alloc when malloc fails: -ENOMEM, the message stays queued. */
static void get_alloc_enomem(void **state)
{
    mp_queue_t *q = queue_new(0, 0);
    mp_assert_int(put_pat(q, 1000, 1, 0), 0);
    void *p = NULL;
    size_t len = 0;
    mp__fault_arm(MP__SYS_MALLOC, 1, ENOMEM);
    int rc = mp_queue_get_alloc(q, &p, &len, 0);
    mp__fault_clear();
    mp_assert_int(rc, -ENOMEM);
    mp_assert_int(mp_queue_qsize(q), 1);
    expect_msg(q, 1000, 1, 0, "the message after get_alloc's -ENOMEM");
    mp_queue_free(q);
}

/* ---- many producers and consumers ------------------------------------------- */

/* 3 producer processes and a producer thread, 2 consumer processes and a
 * consumer thread, on a bounded queue (so both sides block): every message
 * is delivered exactly once and whole, and each consumer sees each
 * producer's messages in increasing order. */
static void fifo_many(void **state)
{
    enum { PRODS = 4, CONS = 3, N = 1500 };
    board_t *b = board_new();
    mp_queue_t *q = queue_new(8, 0);
    static mp_party_t prod[PRODS], cons[CONS];
    for (int i = 0; i < CONS; i++) {
        targ_t a = {.b = b, .q = q, .id = i, .timeout = MP_TEST_LONG};
        mp_party_start(&cons[i], i < 2, t_drain, &a, sizeof a);
    }
    for (int i = 0; i < PRODS; i++) {
        targ_t a = {.b = b, .q = q, .id = CONS + i, .prod = 1 + i, .n = N};
        mp_party_start(&prod[i], i < 3, t_produce, &a, sizeof a);
    }
    mp_test_wait_word(&b->ready, PRODS + CONS, "producers and consumers");
    mp_test_word_store(&b->go, 1);
    for (int i = 0; i < PRODS; i++) {
        int code = mp_party_join(&prod[i]);
        if (code != 0)
            mp_test_fail("producer %d (%s) returned %d: put %d gave %d (%s)\n", i + 1,
                         kind_name(i < 3), code, b->cnt[CONS + i], b->rc[CONS + i],
                         mp_strerror(b->rc[CONS + i]));
    }
    mp_assert_int(mp_queue_close(q), 0);
    int total = 0;
    for (int i = 0; i < CONS; i++) {
        int code = mp_party_join(&cons[i]);
        if (code != 0)
            mp_test_fail("consumer %d (%s) returned %d: get gave %d (%s)\n", i,
                         kind_name(i < 2), code, b->rc[i], mp_strerror(b->rc[i]));
        total += b->cnt[i];
    }
    if (b->findings)
        mp_test_fail("consumers saw %u torn, %u unknown and %u out-of-order messages; the "
                     "first: producer %u seq %u, %u bytes, at %u\n",
                     b->torn, b->phantom, b->order_bad, b->detail[0], b->detail[1],
                     b->detail[2], b->detail[3]);
    for (int p = 1; p <= PRODS; p++)
        for (int s = 0; s < N; s++)
            if (b->seen[p][s] != 1)
                mp_test_fail("message %d of producer %d was delivered %u times\n", s, p,
                             b->seen[p][s]);
    mp_assert_int(total, PRODS * N);
    mp_queue_free(q);
    mp__arena_free(b);
}

/* ---- producers that end or die ------------------------------------------------- */

/* A process that put a 32 MiB message (and another that put 100 messages of
 * 64 KiB) can be joined before anybody reads the queue (Python deadlocks
 * there); the messages are then all here, whole. */
static void join_after_large_put(void **state)
{
    board_t *b = board_new();
    mp_queue_t *q = queue_new(0, 0);
    static mp_party_t y;
    targ_t a = {.b = b, .q = q, .id = 0, .n = 1, .size = 32 * MiB, .key = 500};
    mp_party_start(&y, 1, t_put_n_exit, &a, sizeof a);
    int code = mp_party_join(&y);
    if (code != 0)
        mp_test_fail("the producer returned %d: put gave %d (%s)\n", code, b->rc[0],
                     mp_strerror(b->rc[0]));
    targ_t a2 = {.b = b, .q = q, .id = 1, .n = 100, .size = 64 * KiB, .key = 600};
    mp_party_start(&y, 1, t_put_n_exit, &a2, sizeof a2);
    code = mp_party_join(&y);
    if (code != 0)
        mp_test_fail("the producer returned %d: put %d gave %d (%s)\n", code, b->cnt[1],
                     b->rc[1], mp_strerror(b->rc[1]));
    mp_assert_int(mp_queue_qsize(q), 101);
    expect_msg(q, 32 * MiB, 500, 0, "the 32 MiB message of a joined producer");
    for (int i = 0; i < 100; i++)
        expect_msg(q, 64 * KiB, 600 + (uint64_t)i, 0, "a 64 KiB message of a joined producer");
    mp_queue_free(q);
    mp__arena_free(b);
}

/* A message accepted by put survives its producer, SIGKILLed afterwards. */
static void message_survives_killed_producer(void **state)
{
    board_t *b = board_new();
    mp_queue_t *q = queue_new(0, 0);
    static mp_party_t y;
    targ_t a = {.b = b, .q = q, .id = 0, .size = MiB, .key = 700};
    mp_party_start(&y, 1, t_put_then_block, &a, sizeof a);
    mp_test_wait_word(&b->ready, 1, "the producer");
    mp_party_kill(&y);
    mp_assert_int(mp_queue_qsize(q), 2);
    expect_msg(q, MiB, 700, 0, "the 1 MiB message of a killed producer");
    expect_msg(q, 7, 701, 0, "the small message of a killed producer");
    mp_queue_free(q);
    mp__arena_free(b);
}

/* A consumer process SIGKILLed while asleep in get does not swallow the
 * next message: a consumer thread also waiting gets it, promptly; the
 * queue works on. */
static void kill_blocked_consumer(void **state)
{
    board_t *b = board_new();
    mp_queue_t *q = queue_new(0, 0);
    static mp_party_t dead, live;
    targ_t da = {.b = b, .q = q, .id = 0, .timeout = MP_FOREVER};
    mp_party_start(&dead, 1, t_get1, &da, sizeof da);
    mp_test_wait_word(&b->ready, 1, "the doomed consumer");
    mp_test_wait_asleep(b->tid[0], "the doomed consumer in get");
    targ_t la = {.b = b, .q = q, .id = 1, .size = 4000, .key = 801, .timeout = MP_TEST_LONG};
    mp_party_start(&live, 0, t_get1, &la, sizeof la);
    mp_test_wait_word(&b->ready, 2, "the live consumer");
    mp_test_wait_asleep(b->tid[1], "the live consumer in get");
    mp_party_kill(&dead);
    double t_rel = mp_test_now();
    mp_assert_int(put_pat(q, 4000, 801, 0), 0);
    mp_assert_int(mp_party_join(&live), 0);
    mp_assert_int(b->rc[1], 0);
    mp_assert_int(b->rc2[1], 0);
    mp_test_check_prompt(b->at[1], t_rel, "a get after another waiter was killed");
    mp_assert_int(put_pat(q, 10, 802, 0), 0);
    expect_msg(q, 10, 802, 0, "a message after a consumer was killed in get");
    mp_assert_int(mp_queue_close(q), 0);
    char c;
    size_t len;
    mp_assert_int(mp_queue_get(q, &c, 1, &len, 0), MP_EEOF);
    mp_queue_free(q);
    mp__arena_free(b);
}

/* A producer process SIGKILLed while asleep in put on a full queue: its
 * message never appears, the room made by a get goes to a producer thread
 * also waiting, promptly. */
static void kill_blocked_producer(void **state)
{
    board_t *b = board_new();
    mp_queue_t *q = queue_new(1, 0);
    mp_assert_int(put_pat(q, 10, 900, 0), 0);
    static mp_party_t dead, live;
    targ_t da = {.b = b, .q = q, .id = 0, .size = 200000, .key = 901, .timeout = MP_FOREVER};
    mp_party_start(&dead, 1, t_put1, &da, sizeof da);
    mp_test_wait_word(&b->ready, 1, "the doomed producer");
    mp_test_wait_asleep(b->tid[0], "the doomed producer in put");
    targ_t la = {.b = b, .q = q, .id = 1, .size = 3000, .key = 902, .timeout = MP_TEST_LONG};
    mp_party_start(&live, 0, t_put1, &la, sizeof la);
    mp_test_wait_word(&b->ready, 2, "the live producer");
    mp_test_wait_asleep(b->tid[1], "the live producer in put");
    mp_party_kill(&dead);
    mp_assert_int(mp_queue_qsize(q), 1);
    double t_rel = mp_test_now();
    expect_msg(q, 10, 900, 0, "the message that filled the queue");
    mp_assert_int(mp_party_join(&live), 0);
    mp_assert_int(b->rc[1], 0);
    mp_test_check_prompt(b->at[1], t_rel, "a put after another waiting producer was killed");
    mp_assert_int(mp_queue_qsize(q), 1);
    expect_msg(q, 3000, 902, 0, "the live producer's message");
    char c;
    size_t len;
    mp_assert_int(mp_queue_get(q, &c, 1, &len, 0), MP_EEMPTY);
    mp_queue_free(q);
    mp__arena_free(b);
}

/* ---- SimpleQueue -------------------------------------------------------------- */

/* put, get, get_alloc, empty, MP_ETOOSHORT, close: put then fails with
 * MP_ECLOSED, get drains then gives MP_EEOF (at once). */
static void simplequeue_basic(void **state)
{
    mp_simplequeue_t *s = squeue_new();
    mp_assert_int(mp_simplequeue_empty(s), 1);
    unsigned char *big = malloc(MiB);
    assert_non_null(big);
    mp_test_pat_fill(big, MiB, 1);
    mp_assert_int(mp_simplequeue_put(s, big, MiB), 0);
    mp_assert_int(mp_simplequeue_empty(s), 0);
    mp_assert_int(mp_simplequeue_put(s, NULL, 0), 0);
    mp_assert_int(mp_simplequeue_put(s, "hello", 5), 0);
    char buf[16];
    size_t len = 0;
    mp_assert_int(mp_simplequeue_get(s, buf, sizeof buf, &len), MP_ETOOSHORT);
    mp_assert_int(len, MiB);
    memset(big, 0, MiB);
    len = 0;
    mp_assert_int(mp_simplequeue_get(s, big, MiB, &len), 0);
    mp_assert_int(len, MiB);
    if (mp_test_pat_bad(big, MiB, 1) >= 0)
        mp_test_fail("the 1 MiB message of the SimpleQueue differs\n");
    free(big);
    void *p = NULL;
    len = 9;
    mp_assert_int(mp_simplequeue_get_alloc(s, &p, &len), 0);
    assert_non_null(p);
    mp_assert_int(len, 0);
    free(p);
    mp_assert_int(mp_simplequeue_empty(s), 0);
    mp_assert_int(mp_simplequeue_put(s, "again", 5), 0);
    mp_assert_int(mp_simplequeue_close(s), 0);
    mp_assert_int(mp_simplequeue_put(s, "late", 4), MP_ECLOSED);
    mp_assert_int(mp_simplequeue_close(s), 0);
    len = 0;
    mp_assert_int(mp_simplequeue_get(s, buf, sizeof buf, &len), 0);
    mp_assert_int(len, 5);
    assert_memory_equal(buf, "hello", 5);
    mp_assert_int(mp_simplequeue_get(s, buf, sizeof buf, &len), 0);
    mp_assert_int(len, 5);
    assert_memory_equal(buf, "again", 5);
    mp_assert_int(mp_simplequeue_empty(s), 1);
    expect_quick(mp_simplequeue_get(s, buf, sizeof buf, &len), MP_EEOF,
                 "SimpleQueue get, closed and drained");
    p = NULL;
    expect_quick(mp_simplequeue_get_alloc(s, &p, &len), MP_EEOF,
                 "SimpleQueue get_alloc, closed and drained");
    assert_null(p);
    mp_simplequeue_free(s);
}

/* A party blocked in SimpleQueue get (it always blocks) gets a message put
 * by us; another one blocked is woken by close with MP_EEOF. */
static void simplequeue_party(int proc)
{
    board_t *b = board_new();
    mp_simplequeue_t *s = squeue_new();
    static mp_party_t y;
    targ_t a = {.b = b, .q = s, .id = 0, .mode = M_SIMPLE, .size = 5000, .key = 77};
    mp_party_start(&y, proc, t_get1, &a, sizeof a);
    mp_test_wait_word(&b->ready, 1, "the getter");
    mp_test_wait_asleep(b->tid[0], "the getter in SimpleQueue get");
    mp_assert_int(mp_test_word_get(&b->done), 0);
    unsigned char buf[5000];
    mp_test_pat_fill(buf, sizeof buf, 77);
    double t_rel = mp_test_now();
    mp_assert_int(mp_simplequeue_put(s, buf, sizeof buf), 0);
    mp_assert_int(mp_party_join(&y), 0);
    mp_assert_int(b->rc[0], 0);
    mp_assert_int(b->rc2[0], 0);
    mp_test_check_prompt(b->at[0], t_rel, "a SimpleQueue get waiting for a put");

    targ_t a2 = {.b = b, .q = s, .id = 1, .mode = M_SIMPLE};
    mp_party_start(&y, proc, t_get1, &a2, sizeof a2);
    mp_test_wait_word(&b->ready, 2, "the second getter");
    mp_test_wait_asleep(b->tid[1], "the second getter in SimpleQueue get");
    t_rel = mp_test_now();
    mp_assert_int(mp_simplequeue_close(s), 0);
    mp_assert_int(mp_party_join(&y), 0);
    mp_assert_int(b->rc[1], MP_EEOF);
    mp_test_check_prompt(b->at[1], t_rel, "a SimpleQueue get when the queue closed");
    mp_assert_int(mp_simplequeue_put(s, buf, 1), MP_ECLOSED);
    mp_simplequeue_free(s);
    mp__arena_free(b);
}

static void simplequeue_threads(void **state) { simplequeue_party(0); }
static void simplequeue_processes(void **state) { simplequeue_party(1); }

/* ---- crash safety: random SIGKILLs ------------------------------------------------ */

#define CR_PRODS 2
#define CR_CONS 2
#define CR_SLOTS (CR_PRODS + CR_CONS)
#define CR_IDS 2048   /* producer incarnations; id 0 is the test itself */
#define CR_SEQ 16384  /* messages per incarnation at most */
#define CR_KILLS 1500
#define CR_BIG (100 * KiB)
#define CR_CAP (CR_BIG + 4 * KiB)
#define CR_MAXSIZE 32 /* queue bound */
#define CR_POOL (256 * KiB + CR_CAP)

enum { F_TORN = 1, F_PHANTOM, F_ORDER, F_PUT, F_GET };

typedef struct {
    uint32_t stop;                /* producers return once it is set */
    uint32_t next_id;             /* the next producer incarnation's id */
    uint32_t progress[CR_SLOTS];  /* operations completed in each slot */
    uint32_t inop[CR_SLOTS];      /* odd while the slot's process is inside put/get */
    uint32_t torn, phantom, order_bad, errors;
    uint32_t findings;
    uint32_t detail[6];           /* the first: kind, id, seq, len, offset/last, code */
    uint32_t small_intent, small_accepted, small_got; /* messages < HDR bytes */
    uint32_t nseq[CR_IDS];        /* seqs begun by each incarnation */
    uint8_t state[CR_IDS][CR_SEQ]; /* 1: put called; 2: put returned 0 */
    uint8_t got[CR_IDS][CR_SEQ];   /* deliveries */
} cr_rec_t;

typedef struct {
    mp_queue_t *q;
    int fd;       /* the records' memfd (passed to the child at this number) */
    int slot;     /* progress slot */
    uint32_t id;  /* producer incarnation */
} cr_arg_t;

static uint64_t g_cr_seed;

#define CR_FAIL(...)                                                                       \
    do {                                                                                   \
        print_error("crash_random_kills @%s, seed %" PRIu64 " (MP_TEST_SEED): ",           \
                    mp_test_method_name(), g_cr_seed);                                     \
        mp_test_fail(__VA_ARGS__);                                                         \
    } while (0)

/* cr_size: the length of message seq of incarnation id: one in 16 below
 * HDR bytes (no header: counted in aggregate), one in 16 about 100 KiB, the
 * others HDR..16 KiB. */
static size_t cr_size(uint32_t id, uint32_t seq)
{
    uint64_t h = mp_test_mix64(msg_key(id, seq) ^ 0xc0ffee);
    switch (h % 16) {
    case 0: return (size_t)((h >> 8) % HDR);
    case 1: return CR_BIG + (size_t)((h >> 8) % 4096);
    default: return HDR + (size_t)((h >> 8) % (16 * KiB - HDR + 1));
    }
}

/* A small message's bytes depend on its length only. */
static void small_fill(unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (unsigned char)(0xa5 ^ (len * 7 + i));
}

static int small_ok(const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != (unsigned char)(0xa5 ^ (len * 7 + i)))
            return 0;
    return 1;
}

/* The payloads of the crash case are slices of one pool of pattern bytes
 * (every process makes the same), at offsets derived from (id, seq): filling
 * and checking a message is one memcpy / memcmp, so that the parties spend
 * most of their time inside put and get, where the kills should land. */
static const unsigned char *cr_pool(void)
{
    static unsigned char *pool;
    if (!pool) {
        pool = malloc(CR_POOL);
        if (pool)
            mp_test_pat_fill(pool, CR_POOL, 0xfeedfaceULL);
    }
    return pool;
}

static size_t cr_off(uint32_t id, uint32_t seq, size_t body)
{
    return (size_t)(mp_test_mix64(msg_key(id, seq) ^ 0xabcdef) % (CR_POOL - body + 1));
}

/* cr_fill writes message (id, seq) of len >= HDR bytes: header, then the
 * pool's bytes at cr_off. */
static void cr_fill(unsigned char *buf, size_t len, uint32_t id, uint32_t seq)
{
    uint32_t h[4] = {MAGIC, id, seq, (uint32_t)len};
    memcpy(buf, h, HDR);
    memcpy(buf + HDR, cr_pool() + cr_off(id, seq, len - HDR), len - HDR);
}

/* cr_parse: as msg_parse, for cr_fill's messages. */
static int cr_parse(const unsigned char *buf, size_t len, uint32_t *id, uint32_t *seq, long *off)
{
    uint32_t h[4];
    *off = 0;
    if (len < HDR)
        return -1;
    memcpy(h, buf, HDR);
    *id = h[1];
    *seq = h[2];
    if (h[0] != MAGIC || h[3] != (uint32_t)len)
        return -1;
    const unsigned char *want = cr_pool() + cr_off(h[1], h[2], len - HDR);
    if (memcmp(buf + HDR, want, len - HDR) != 0) {
        size_t i = 0;
        while (buf[HDR + i] == want[i])
            i++;
        *off = (long)(HDR + i);
        return -2;
    }
    return 0;
}

static cr_rec_t *cr_map(int fd)
{
    void *p = mmap(NULL, sizeof(cr_rec_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void cr_note(cr_rec_t *r, uint32_t *counter, uint32_t kind, uint32_t id, uint32_t seq,
                    size_t len, long off, int code)
{
    __atomic_add_fetch(counter, 1, __ATOMIC_SEQ_CST);
    if (__atomic_add_fetch(&r->findings, 1, __ATOMIC_SEQ_CST) == 1) {
        r->detail[0] = kind;
        r->detail[1] = id;
        r->detail[2] = seq;
        r->detail[3] = (uint32_t)len;
        r->detail[4] = (uint32_t)off;
        r->detail[5] = (uint32_t)code;
    }
}

/* cr_giveup: a party that fails wakes the test (which may be waiting for
 * its progress) before it returns its code. */
static int cr_giveup(cr_rec_t *r, int slot, int code)
{
    mp_test_word_store(&r->progress[slot], UINT32_MAX / 2);
    return code;
}

/* cr_producer puts messages of incarnation a->id, seq 0, 1, ..., until
 * stop (past CR_SEQ it goes on as a new incarnation): it marks each put
 * called (state 1) before put, accepted (state 2) once put returned 0.
 * Codes: 60 no memory or mapping, 61 put failed. */
static int cr_producer(void *arg)
{
    const cr_arg_t *a = arg;
    cr_rec_t *r = cr_map(a->fd);
    unsigned char *buf = malloc(CR_CAP);
    if (!r || !buf || !cr_pool())
        return 60;
    uint32_t id = a->id;
    for (uint32_t seq = 0;; seq++) {
        if (mp_test_word_get(&r->stop))
            return 0;
        if (seq >= CR_SEQ) {
            id = __atomic_fetch_add(&r->next_id, 1, __ATOMIC_SEQ_CST);
            seq = 0;
            if (id >= CR_IDS) {
                mp_test_word_wait(&r->stop, 1, CHILD_LONG);
                return 0;
            }
        }
        size_t len = cr_size(id, seq);
        int small = len < HDR;
        if (small)
            small_fill(buf, len);
        else
            cr_fill(buf, len, id, seq);
        __atomic_store_n(&r->nseq[id], seq + 1, __ATOMIC_SEQ_CST);
        __atomic_store_n(&r->state[id][seq], 1, __ATOMIC_SEQ_CST);
        if (small)
            __atomic_add_fetch(&r->small_intent, 1, __ATOMIC_SEQ_CST);
        __atomic_add_fetch(&r->inop[a->slot], 1, __ATOMIC_SEQ_CST);
        int rc = mp_queue_put(a->q, buf, len, CHILD_LONG);
        __atomic_add_fetch(&r->inop[a->slot], 1, __ATOMIC_SEQ_CST);
        if (rc != 0) {
            cr_note(r, &r->errors, F_PUT, id, seq, len, 0, rc);
            return cr_giveup(r, a->slot, 61);
        }
        __atomic_store_n(&r->state[id][seq], 2, __ATOMIC_SEQ_CST);
        if (small)
            __atomic_add_fetch(&r->small_accepted, 1, __ATOMIC_SEQ_CST);
        mp_test_word_inc(&r->progress[a->slot]);
    }
}

/* cr_consumer gets messages until the end of the stream, recording each
 * delivery right after get returned, then checking it whole: header,
 * payload, known (id, seq), per-producer order as seen here. Codes: 60 no
 * memory or mapping, 62 get failed. */
static int cr_consumer(void *arg)
{
    const cr_arg_t *a = arg;
    cr_rec_t *r = cr_map(a->fd);
    unsigned char *buf = malloc(CR_CAP);
    int32_t *last = malloc(CR_IDS * sizeof *last);
    if (!r || !buf || !last || !cr_pool())
        return 60;
    for (int i = 0; i < CR_IDS; i++)
        last[i] = -1;
    for (;;) {
        size_t len = 0;
        __atomic_add_fetch(&r->inop[a->slot], 1, __ATOMIC_SEQ_CST);
        int rc = mp_queue_get(a->q, buf, CR_CAP, &len, CHILD_LONG);
        __atomic_add_fetch(&r->inop[a->slot], 1, __ATOMIC_SEQ_CST);
        if (rc == MP_EEOF)
            return 0;
        if (rc != 0) {
            cr_note(r, &r->errors, F_GET, 0, 0, len, 0, rc);
            return cr_giveup(r, a->slot, 62);
        }
        if (len < HDR) {
            __atomic_add_fetch(&r->small_got, 1, __ATOMIC_SEQ_CST);
            if (!small_ok(buf, len))
                cr_note(r, &r->torn, F_TORN, 0, 0, len, 0, 0);
        } else {
            uint32_t id = 0, seq = 0;
            long off = 0;
            int bad = cr_parse(buf, len, &id, &seq, &off);
            if (bad == -1 || id >= CR_IDS || seq >= CR_SEQ) {
                cr_note(r, &r->torn, F_TORN, id, seq, len, 0, 0);
            } else {
                __atomic_add_fetch(&r->got[id][seq], 1, __ATOMIC_SEQ_CST);
                if (__atomic_load_n(&r->state[id][seq], __ATOMIC_SEQ_CST) == 0)
                    cr_note(r, &r->phantom, F_PHANTOM, id, seq, len, 0, 0);
                if (bad == -2)
                    cr_note(r, &r->torn, F_TORN, id, seq, len, off, 0);
                if ((int32_t)seq <= last[id])
                    cr_note(r, &r->order_bad, F_ORDER, id, seq, len, last[id], 0);
                last[id] = (int32_t)seq;
            }
        }
        mp_test_word_inc(&r->progress[a->slot]);
    }
}

static uint64_t cr_rand(uint64_t *s)
{
    *s += 0x9e3779b97f4a7c15ULL;
    return mp_test_mix64(*s);
}

static mp_process_t *cr_start(cr_arg_t *a, int fd)
{
    mp_process_opts_t o;
    memset(&o, 0, sizeof o);
    o.pass_fds = &a->fd;
    o.n_pass_fds = 1;
    a->fd = fd;
    mp_process_t *p = NULL;
    int rc = mp_process_new(&p, a->slot < CR_PRODS ? cr_producer : cr_consumer, a, sizeof *a,
                            &o);
    if (rc != 0)
        CR_FAIL("mp_process_new: %s\n", mp_strerror(rc));
    rc = mp_process_start(p);
    if (rc != 0)
        CR_FAIL("mp_process_start: %s\n", mp_strerror(rc));
    return p;
}

static const char *cr_kind(uint32_t k)
{
    switch (k) {
    case F_TORN: return "torn message";
    case F_PHANTOM: return "message never put";
    case F_ORDER: return "out-of-order message";
    case F_PUT: return "put failed";
    case F_GET: return "get failed";
    default: return "?";
    }
}

static void cr_report(const cr_rec_t *r, const char *when)
{
    if (r->findings)
        CR_FAIL("%s: %u torn, %u never put, %u out of order, %u failed calls; the first: "
                "%s, producer %u seq %u, %u bytes, offset/last %u, code %d (%s)\n",
                when, r->torn, r->phantom, r->order_bad, r->errors, cr_kind(r->detail[0]),
                r->detail[1], r->detail[2], r->detail[3], r->detail[4], (int)r->detail[5],
                mp_strerror((int)r->detail[5]));
}

/* cr_total: the operations of every slot so far. */
static uint32_t cr_total(const cr_rec_t *r)
{
    uint32_t n = 0;
    for (int s = 0; s < CR_SLOTS; s++)
        n += __atomic_load_n(&r->progress[s], __ATOMIC_SEQ_CST);
    return n;
}

/* cr_wchan reads where a task sleeps in the kernel. */
static void cr_wchan(pid_t pid, char *out, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/wchan", (int)pid);
    FILE *f = fopen(path, "r");
    out[0] = 0;
    if (f) {
        if (!fgets(out, (int)cap, f))
            out[0] = 0;
        fclose(f);
    }
}

/* cr_snapshot prints where every slot is, and what a get and a put of
 * ours (timeout 0) make of the queue now (for a failure). */
static void cr_snapshot(const cr_rec_t *r, mp_queue_t *q, mp_process_t *const *procs)
{
    for (int s = 0; s < CR_SLOTS; s++) {
        pid_t pid = mp_process_pid(procs[s]);
        char st = mp_test_proc_state(pid, NULL), wchan[64];
        cr_wchan(pid, wchan, sizeof wchan);
        /* /proc/PID/syscall: for a task blocked in futex, its first
         * argument is the word it sleeps on (shown relative to q). */
        char path[64], sc[256] = "";
        snprintf(path, sizeof path, "/proc/%d/syscall", (int)pid);
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(sc, sizeof sc, f))
                sc[0] = 0;
            fclose(f);
        }
        long nr = -1;
        unsigned long long a0 = 0;
        char where[64] = "";
        if (sscanf(sc, "%ld %llx", &nr, &a0) == 2 && nr == SYS_futex)
            snprintf(where, sizeof where, ", futex at q%+lld",
                     (long long)(a0 - (unsigned long long)(uintptr_t)q));
        print_error("  slot %d (%s, pid %d, state %c, wchan %s%s): %u operations, %s put/get "
                    "(%u)\n",
                    s, s < CR_PRODS ? "producer" : "consumer", (int)pid, st ? st : '-', wchan,
                    where,
                    __atomic_load_n(&r->progress[s], __ATOMIC_SEQ_CST),
                    (__atomic_load_n(&r->inop[s], __ATOMIC_SEQ_CST) & 1) ? "inside" : "outside",
                    __atomic_load_n(&r->inop[s], __ATOMIC_SEQ_CST));
    }
    print_error("  qsize %ld, empty %d, full %d, findings %u\n", mp_queue_qsize(q),
                mp_queue_empty(q), mp_queue_full(q), r->findings);
    void *p = NULL;
    size_t len = 0;
    double t0 = mp_test_now();
    int rc = mp_queue_get_alloc(q, &p, &len, 0);
    print_error("  our get_alloc(0): %d (%s), %zu bytes, in %.3f s; qsize now %ld\n", rc,
                mp_strerror(rc), len, mp_test_now() - t0, mp_queue_qsize(q));
    free(p);
    t0 = mp_test_now();
    rc = mp_queue_put(q, NULL, 0, 0);
    print_error("  our put(0) of 0 bytes: %d (%s) in %.3f s; qsize now %ld\n", rc,
                mp_strerror(rc), mp_test_now() - t0, mp_queue_qsize(q));
    for (int s = 0; s < CR_SLOTS; s++)
        print_error("  slot %d: %u operations now\n", s,
                    __atomic_load_n(&r->progress[s], __ATOMIC_SEQ_CST));
}

/* Two producer and two consumer processes run hundreds of thousands of
 * operations (messages of 0..16 KiB, one in 16 of 100 KiB) on a bounded
 * queue while the test SIGKILLs them, CR_KILLS times, at random moments
 * (seeded choices: which one, after how many of its operations, at once or
 * once it is inside put/get plus 0..5 or 0..50 microseconds) and starts
 * replacements. The queue must keep going: if no party makes progress for
 * MP_TEST_LONG the case fails with a snapshot (each party's state and the
 * futex word it sleeps on, and what a get and a put of ours do). Then the
 * test puts messages of its own, the producers stop, the queue is closed and
 * the consumers drain it. Every message whose put returned 0 was delivered
 * whole exactly once, except at most one per killed consumer (the one it
 * held); no message was delivered twice, torn or out of its producer's
 * order; a message whose producer died inside put is delivered whole once or
 * not at all; the queue works afterwards (our messages come through, close
 * gives MP_EEOF, qsize is 0) and the arena is sound. */
static void crash_random_kills(void **state)
{
    const char *env = getenv("MP_TEST_SEED");
    g_cr_seed = env && *env ? strtoull(env, NULL, 0)
                            : (uint64_t)time(NULL) * 1000003u ^ (uint64_t)getpid();
    print_message("crash_random_kills @%s: seed %" PRIu64 "\n", mp_test_method_name(),
                  g_cr_seed);
    uint64_t rng = g_cr_seed;

    int fd = memfd_create("mp-test-queue-records", MFD_CLOEXEC);
    if (fd < 0)
        CR_FAIL("memfd_create: %s\n", strerror(errno));
    if (ftruncate(fd, sizeof(cr_rec_t)) != 0)
        CR_FAIL("ftruncate: %s\n", strerror(errno));
    cr_rec_t *r = cr_map(fd);
    if (!r)
        CR_FAIL("mmap: %s\n", strerror(errno));
    if (!cr_pool())
        CR_FAIL("no memory for the pool\n");
    mp_queue_t *q = queue_new(CR_MAXSIZE, 0);

    static cr_arg_t args[CR_SLOTS];
    static mp_process_t *procs[CR_SLOTS];
    r->next_id = 1;
    for (int s = 0; s < CR_SLOTS; s++) {
        args[s] = (cr_arg_t){.q = q, .slot = s};
        if (s < CR_PRODS)
            args[s].id = __atomic_fetch_add(&r->next_id, 1, __ATOMIC_SEQ_CST);
        procs[s] = cr_start(&args[s], fd);
    }
    int kills[2] = {0, 0}; /* producers, consumers */
    int inside = 0, starved = 0, k = 0;
    double t_start = mp_test_now();
    /* On a loaded machine the kills stop after 20 s: the checks hold after
     * any number of them. */
    double t_stop = t_start + 20.0 * mp_test_scale();
    for (; k < CR_KILLS && mp_test_now() < t_stop; k++) {
        int s = (int)(cr_rand(&rng) % CR_SLOTS);
        uint32_t n = 1 + (uint32_t)(cr_rand(&rng) % 40);
        int how = (int)(cr_rand(&rng) % 3);
        double delay = (double)(cr_rand(&rng) % (how == 1 ? 5000 : 50000)) * 1e-9;
        int prod = s < CR_PRODS;
        uint32_t p0 = mp_test_word_get(&r->progress[s]);
        if (mp_test_word_wait(&r->progress[s], p0 + n, 0.25 * mp_test_scale()) != 0) {
            /* The queue promises no fairness: a party may starve while the
             * others go on. Then it is killed where it is, once the others
             * are seen to go on; if nobody does, the queue is stuck. */
            uint32_t sum0 = cr_total(r);
            double end = mp_test_now() + MP_TEST_LONG;
            while (cr_total(r) == sum0 && mp_test_word_get(&r->progress[s]) < p0 + n) {
                if (mp_test_now() > end) {
                    cr_snapshot(r, q, procs);
                    CR_FAIL("before kill %d: no party made progress for %.0f s\n", k,
                            MP_TEST_LONG);
                }
                mp_test_sleep(0.001);
            }
            if (mp_test_word_get(&r->progress[s]) < p0 + n)
                starved++;
        }
        if (how) {
            /* Once it is inside put or get (or about to be)... */
            double end = mp_test_now() + MP_TEST_LONG;
            while (!(__atomic_load_n(&r->inop[s], __ATOMIC_SEQ_CST) & 1)) {
                if (mp_test_now() > end) {
                    cr_snapshot(r, q, procs);
                    CR_FAIL("before kill %d: the %s in slot %d never entered put/get\n", k,
                            prod ? "producer" : "consumer", s);
                }
                mp__cpu_relax();
            }
            inside++;
            /* ...and 0..5 or 0..50 microseconds into it. */
            double until = mp_test_now() + delay;
            while (mp_test_now() < until)
                mp__cpu_relax();
        }
        mp_assert_int(mp_process_kill(procs[s]), 0);
        int code = mp_test_process_join(procs[s]);
        if (code != -SIGKILL) {
            cr_report(r, "a party ended by itself");
            CR_FAIL("the %s in slot %d ended with %d before kill %d\n",
                    prod ? "producer" : "consumer", s, code, k);
        }
        kills[!prod]++;
        /* The next incarnation counts its calls from 0 (the dead one may
         * have been inside a call: odd). */
        __atomic_store_n(&r->inop[s], 0, __ATOMIC_SEQ_CST);
        if (prod) {
            args[s].id = __atomic_fetch_add(&r->next_id, 1, __ATOMIC_SEQ_CST);
            if (args[s].id >= CR_IDS)
                CR_FAIL("out of producer ids\n");
        }
        procs[s] = cr_start(&args[s], fd);
    }
    double t_kills = mp_test_now() - t_start;

    /* The queue works after the crashes: messages of our own (id 0), small
     * and large, go through the surviving consumers. */
    unsigned char *buf = malloc(CR_CAP);
    assert_non_null(buf);
    const uint32_t ours = 24;
    for (uint32_t seq = 0; seq < ours; seq++) {
        size_t len = cr_size(0, seq);
        if (len < HDR)
            len = HDR; /* ours are all tracked one by one */
        cr_fill(buf, len, 0, seq);
        r->nseq[0] = seq + 1;
        __atomic_store_n(&r->state[0][seq], 1, __ATOMIC_SEQ_CST);
        int rc = mp_queue_put(q, buf, len, MP_TEST_LONG);
        if (rc != 0)
            CR_FAIL("after the kills, our put %u gave %d (%s)\n", seq, rc, mp_strerror(rc));
        __atomic_store_n(&r->state[0][seq], 2, __ATOMIC_SEQ_CST);
    }
    free(buf);
    mp_test_word_store(&r->stop, 1);
    for (int s = 0; s < CR_PRODS; s++) {
        int code = mp_test_process_join(procs[s]);
        if (code != 0) {
            cr_report(r, "a producer failed");
            CR_FAIL("producer in slot %d returned %d\n", s, code);
        }
    }
    mp_assert_int(mp_queue_close(q), 0);
    for (int s = CR_PRODS; s < CR_SLOTS; s++) {
        int code = mp_test_process_join(procs[s]);
        if (code != 0) {
            cr_report(r, "a consumer failed");
            CR_FAIL("consumer in slot %d returned %d\n", s, code);
        }
    }
    char c;
    size_t len = 0;
    mp_assert_int(mp_queue_get(q, &c, 1, &len, 0), MP_EEOF);
    mp_assert_int(mp_queue_qsize(q), 0);
    mp_assert_int(mp_queue_empty(q), 1);
    const char *why = NULL;
    if (mp__arena_check(&why) != 0)
        CR_FAIL("the arena is damaged: %s\n", why ? why : "?");

    cr_report(r, "after the run");
    /* Every (id, seq): delivered at most once; accepted ones delivered. */
    uint32_t lost = 0, dup = 0, accepted = 0, unaccepted = 0, unaccepted_got = 0;
    uint32_t first_lost_id = 0, first_lost_seq = 0, first_dup_id = 0, first_dup_seq = 0;
    uint32_t nids = r->next_id < CR_IDS ? r->next_id : CR_IDS;
    for (uint32_t id = 0; id < nids; id++) {
        uint32_t ns = r->nseq[id];
        for (uint32_t seq = 0; seq < ns && seq < CR_SEQ; seq++) {
            uint8_t st = r->state[id][seq], g = r->got[id][seq];
            if (id != 0 && cr_size(id, seq) < HDR)
                continue; /* counted in aggregate below */
            if (g > 1 && dup++ == 0) {
                first_dup_id = id;
                first_dup_seq = seq;
            }
            if (st == 2) {
                accepted++;
                if (g == 0 && lost++ == 0) {
                    first_lost_id = id;
                    first_lost_seq = seq;
                }
            } else {
                unaccepted++;
                unaccepted_got += g > 0;
            }
        }
    }
    for (uint32_t seq = 0; seq < ours; seq++)
        if (r->got[0][seq] != 1)
            CR_FAIL("our message %u, put after the kills, was delivered %u times\n", seq,
                    r->got[0][seq]);
    if (dup)
        CR_FAIL("%u messages were delivered more than once; the first: producer %u seq %u "
                "(%u times)\n",
                dup, first_dup_id, first_dup_seq, r->got[first_dup_id][first_dup_seq]);
    if (r->small_got > r->small_intent)
        CR_FAIL("%u small messages were delivered, only %u were put\n", r->small_got,
                r->small_intent);
    uint32_t small_lost =
        r->small_accepted > r->small_got ? r->small_accepted - r->small_got : 0;
    print_message("crash_random_kills: %d kills (%d producers, %d consumers; %d inside "
                  "put/get, %d starved) in %.2f s; %u producer incarnations; %u messages "
                  "accepted (+%u small), %u delivered from dying puts of %u; lost %u (+%u "
                  "small)\n",
                  k, kills[0], kills[1], inside, starved, t_kills, nids - 1, accepted,
                  r->small_accepted, unaccepted_got, unaccepted, lost, small_lost);
    if (lost + small_lost > (uint32_t)kills[1])
        CR_FAIL("%u accepted messages (and %u small ones) were never delivered, with %d "
                "consumers killed (at most one each may be lost); the first: producer %u "
                "seq %u (%zu bytes)\n",
                lost, small_lost, kills[1], first_lost_id, first_lost_seq,
                cr_size(first_lost_id, first_lost_seq));

    mp_queue_free(q);
    munmap(r, sizeof *r);
    close(fd);
}

int main(int argc, char **argv)
{
    static const mp_test_case_t cases[] = {
        MP_TEST(roundtrip_sizes),
        MP_TEST(roundtrip_sizes_threads),
        MP_TEST(roundtrip_sizes_processes),
        MP_TEST_T(big_message_64mib, 120),
        MP_TEST_T(big_message_1gib, 120),
        MP_TEST(get_too_short),
        MP_TEST(get_alloc_basic),
        MP_TEST(unbounded_many),
        MP_TEST(put_full),
        MP_TEST(get_empty),
        MP_TEST(qsize_empty_full),
        MP_TEST(get_woken_by_put_threads),
        MP_TEST(get_woken_by_put_processes),
        MP_TEST(put_woken_by_get_threads),
        MP_TEST(put_woken_by_get_processes),
        MP_TEST(fork_order),
        MP_TEST(two_producers_order_threads),
        MP_TEST(two_producers_order_processes),
        MP_TEST(joinable_workers),
        MP_TEST(join_fresh),
        MP_TEST(join_timeout_threads),
        MP_TEST(join_timeout_processes),
        MP_TEST(task_done_overflow),
        MP_TEST(task_done_counts_puts),
        MP_TEST(joinable_failed_put_no_task),
        MP_TEST(task_done_not_joinable),
        MP_TEST(close_put),
        MP_TEST(close_drain_then_eof),
        MP_TEST(close_wakes_consumers),
        MP_TEST(close_wakes_producer_threads),
        MP_TEST(close_wakes_producer_processes),
        MP_TEST(close_by_other_process),
        MP_TEST(max_msg_limit),
        MP_TEST(bad_args),
        MP_TEST(freed_handles),
        MP_TEST(free_releases_messages),
        MP_TEST(free_in_child),
        MP_TEST(put_enomem),
        MP_TEST(get_alloc_enomem),
        MP_TEST_T(fifo_many, 120),
        MP_TEST_T(join_after_large_put, 120),
        MP_TEST(message_survives_killed_producer),
        MP_TEST(kill_blocked_consumer),
        MP_TEST(kill_blocked_producer),
        MP_TEST(simplequeue_basic),
        MP_TEST(simplequeue_threads),
        MP_TEST(simplequeue_processes),
        MP_TEST_T(crash_random_kills, 180),
    };
    static const mp_test_config_t cfg = {
        .per_method = 1,
        .warmup = warm_queue,
    };
    return mp_test_main(argc, argv, cases, sizeof cases / sizeof cases[0], &cfg);
}

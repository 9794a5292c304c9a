/* test_conn.c: connections (Python's multiprocessing.connection): Pipe,
 * Connection and wait, written from include/mproc/conn.h and from the
 * behaviour of Python's tests (_TestConnection, TestWait), run once per start
 * method (argv[1]).
 *
 * As in test_queue.c: the board where child processes report (board_t) lives
 * in the shared arena, so the same pointer works in threads and in children
 * under fork, spawn and forkserver; connection handles are passed in the
 * target's argument, as the header promises. A target never calls cmocka: it
 * reports through the board and its exit code. A child closes the ends it
 * does not use (under spawn and forkserver it receives every connection open
 * in its parent, as a forked child inherits every descriptor), so the
 * end-of-file rules can be checked the same way under every method.
 *
 * Parties meet through futex words of the board, the library's Event, pipes
 * and "this task is asleep in its call" checks in /proc, never through
 * sleeps; the only timeouts are generous bounds (MP_TEST_LONG) or the
 * behaviour under test, measured with margins (tight below, generous above).
 *
 * Hostile peers are played by writing raw bytes into the other end of a pipe
 * (a raw pipe whose read end is wrapped with mp_conn_from_fd), in Python's
 * wire format: a 4-byte big-endian length, or 0xffffffff and an 8-byte
 * big-endian length, then the bytes.
 * mp-test: per-start-method
 * mp-test: timeout=600 */
#include "mp_test.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "internal.h"
#include "sys/platform.h"

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)
#define GiB ((size_t)1024 * 1024 * 1024)

/* A generous bound for a child's own waits (children cannot fail a case:
 * they give up and report). */
#define CHILD_LONG (60.0 * mp_test_scale())

/* ---- payloads ------------------------------------------------------------ */

/* zero_bad returns the offset of the first non-zero byte, or -1. */
static long zero_bad(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    for (size_t i = 0; i < len; i++)
        if (p[i])
            return (long)i;
    return -1;
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void put_be64(unsigned char *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

/* ---- the board -------------------------------------------------------- */

#define SLOTS 8

typedef struct {
    uint32_t ready; /* parties increment it once running */
    uint32_t go;    /* set by the test to release parties */
    uint32_t done;  /* parties increment it once their call returned */
    uint32_t never; /* nobody sets it: wait on it to block until killed */
    int32_t rc[SLOTS];    /* a party's main return code */
    int32_t rc2[SLOTS];   /* a second code */
    int64_t cnt[SLOTS];   /* a count, a length or an offset */
    int32_t fd[SLOTS][2]; /* descriptors of the party's in and out ends */
    pid_t tid[SLOTS];     /* kernel id of the party's thread */
    double at[SLOTS];     /* when its call returned (CLOCK_MONOTONIC) */
    double el[SLOTS];     /* how long its call took */
} board_t;

#define NDROP 8

/* What a party gets (copied into a child: only arena pointers and
 * connection handles in it). */
typedef struct {
    board_t *b;
    mp_conn_t *in, *out;      /* the ends the party uses (may be the same) */
    mp_conn_t *drop[NDROP];   /* ends the party closes first (NULL: none) */
    mp_event_t *ev;
    int id;
    int n;                    /* messages; -1: until end of file */
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

static void drop_all(targ_t *a)
{
    for (int i = 0; i < NDROP; i++)
        if (a->drop[i])
            mp_conn_close(a->drop[i]);
}

/* ---- helpers of the cases ---------------------------------------------- */

static void pipe_new(mp_conn_t **a, mp_conn_t **b, int duplex)
{
    *a = *b = NULL;
    mp_assert_int(mp_pipe(a, b, duplex), 0);
    assert_non_null(*a);
    assert_non_null(*b);
}

/* send_pat sends len bytes of key's payload as one message. */
static int send_pat(mp_conn_t *c, size_t len, uint64_t key)
{
    void *buf = malloc(len ? len : 1);
    if (!buf)
        return -ENOMEM;
    mp_test_pat_fill(buf, len, key);
    int rc = mp_conn_send_bytes(c, len ? buf : NULL, len);
    free(buf);
    return rc;
}

/* expect_pat receives one message (recv_bytes) and checks that it is len
 * bytes of key's payload. */
static void expect_pat(mp_conn_t *c, size_t len, uint64_t key, const char *what)
{
    void *p = NULL;
    size_t got = (size_t)-7;
    int rc = mp_conn_recv_bytes(c, &p, &got, 0, MP_TEST_LONG);
    if (rc != 0)
        mp_test_fail("%s: recv_bytes returned %d (%s)\n", what, rc, mp_strerror(rc));
    if (!p)
        mp_test_fail("%s: recv_bytes gave a NULL buffer (%zu bytes)\n", what, got);
    if (got != len) {
        free(p);
        mp_test_fail("%s: %zu bytes arrived, %zu were sent\n", what, got, len);
    }
    long off = mp_test_pat_bad(p, len, key);
    free(p);
    if (off >= 0)
        mp_test_fail("%s: the %zu bytes differ from what was sent at byte %ld\n", what,
                     len, off);
}

/* expect_str receives one message and checks it equals s. */
static void expect_str(mp_conn_t *c, const char *s, const char *what)
{
    void *p = NULL;
    size_t got = 0;
    int rc = mp_conn_recv_bytes(c, &p, &got, 0, MP_TEST_LONG);
    if (rc != 0)
        mp_test_fail("%s: recv_bytes returned %d (%s)\n", what, rc, mp_strerror(rc));
    assert_non_null(p);
    if (got != strlen(s) || memcmp(p, s, got) != 0) {
        mp_test_fail("%s: got %zu bytes \"%.*s\", expected \"%s\"\n", what, got,
                     (int)(got > 64 ? 64 : got), (char *)p, s);
    }
    free(p);
}

/* expect_code receives with timeout and expects the code want. */
static void expect_code(mp_conn_t *c, double timeout, int want, const char *what)
{
    void *p = NULL;
    size_t got = 0;
    int rc = mp_conn_recv_bytes(c, &p, &got, 0, timeout);
    if (rc == 0)
        free(p);
    if (rc != want)
        mp_test_fail("%s: recv_bytes returned %d (%s), expected %d (%s)%s\n", what, rc,
                     mp_strerror(rc), want, mp_strerror(want),
                     rc == 0 ? " (a message arrived)" : "");
}

static void write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            mp_test_fail("write(%d): %s\n", fd, strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

/* raw_reader makes a raw pipe, wraps its read end into *c and returns the
 * write end (the test's to write and close). */
static int raw_reader(mp_conn_t **c)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        mp_test_fail("pipe2: %s\n", strerror(errno));
    *c = NULL;
    mp_assert_int(mp_conn_from_fd(c, p[0], 1, 0), 0);
    assert_non_null(*c);
    return p[1];
}

/* write_header writes a frame header of length len (the escape form when
 * escape is set) to fd. */
static void write_header(int fd, uint64_t len, int escape)
{
    unsigned char h[12];
    if (escape) {
        put_be32(h, 0xffffffffu);
        put_be64(h + 4, len);
        write_all(fd, h, 12);
    } else {
        put_be32(h, (uint32_t)len);
        write_all(fd, h, 4);
    }
}

static int fd_is_open(int fd) { return fcntl(fd, F_GETFD) >= 0; }

/* vm_peak_kib returns the process's peak virtual size (kB). */
static long vm_peak_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    assert_non_null(f);
    char line[256];
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmPeak: %ld kB", &v) == 1)
            break;
    fclose(f);
    assert_true(v > 0);
    return v;
}

/* mem_available returns MemAvailable in bytes (0 if unknown). */
static uint64_t mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return 0;
    char line[256];
    unsigned long long v = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &v) == 1)
            break;
    fclose(f);
    return (uint64_t)v * 1024;
}

static const char *describe_child(int code)
{
    switch (code) {
    case 10: return "a receive failed";
    case 11: return "a send failed";
    case 12: return "a message differed";
    case 13: return "no memory";
    case 20: return "the release never came";
    case 21: return "it was not killed";
    default: return "?";
    }
}

/* check_child fails the case unless a child party returned want. */
static void check_child(int code, int want, const board_t *b, int id, const char *what)
{
    if (code != want)
        mp_test_fail("%s: the child returned %d, expected %d (%s; rc %d (%s), rc2 %d, "
                     "cnt %" PRId64 ")\n",
                     what, code, want, describe_child(code), b->rc[id],
                     mp_strerror(b->rc[id]), b->rc2[id], b->cnt[id]);
}

/* ---- targets ------------------------------------------------------------- */

/* t_echo records the descriptors of its ends, closes the dropped ends, then
 * receives messages on in and sends each back on out: a->n of them, or until
 * end of file when a->n < 0; then closes its ends. Codes: 10 a receive
 * failed (rc, cnt = index), 11 a send failed. */
static int t_echo(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    b->fd[a->id][0] = mp_conn_fileno(a->in);
    b->fd[a->id][1] = mp_conn_fileno(a->out);
    drop_all(a);
    mp_test_word_inc(&b->ready);
    for (int i = 0; a->n < 0 || i < a->n; i++) {
        void *p = NULL;
        size_t len = 0;
        int rc = mp_conn_recv_bytes(a->in, &p, &len, 0, CHILD_LONG);
        if (rc == MP_EEOF && a->n < 0)
            break;
        if (rc != 0) {
            b->rc[a->id] = rc;
            b->cnt[a->id] = i;
            return 10;
        }
        rc = mp_conn_send_bytes(a->out, p, len);
        free(p);
        if (rc != 0) {
            b->rc[a->id] = rc;
            b->cnt[a->id] = i;
            return 11;
        }
        b->cnt[a->id] = i + 1;
    }
    mp_conn_close(a->in);
    mp_conn_close(a->out);
    return 0;
}

/* t_send10 closes the dropped ends, sends ten messages "id:seq" on out and
 * closes it (Python's TestWait child). Code 11: a send failed. */
static int t_send10(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    drop_all(a);
    for (int s = 0; s < 10; s++) {
        char m[32];
        int n = snprintf(m, sizeof m, "%d:%d", a->id, s);
        int rc = mp_conn_send_bytes(a->out, m, (size_t)n);
        if (rc != 0) {
            b->rc[a->id] = rc;
            b->cnt[a->id] = s;
            return 11;
        }
    }
    mp_conn_close(a->out);
    return 0;
}

/* t_hold closes the dropped ends, holds out open until the Event a->ev is
 * set, then sends "last" on it and closes it. Codes: 20 the Event never
 * came, 11 the send failed. */
static int t_hold(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    drop_all(a);
    mp_test_word_inc(&b->ready);
    if (mp_event_wait(a->ev, CHILD_LONG) != 0)
        return 20;
    int rc = mp_conn_send_bytes(a->out, "last", 4);
    if (rc != 0) {
        b->rc[a->id] = rc;
        return 11;
    }
    mp_conn_close(a->out);
    mp_test_word_inc(&b->done);
    return 0;
}

/* t_block closes the dropped ends and blocks, holding the rest, until it is
 * killed. Code 21: it was not killed in time. */
static int t_block(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    drop_all(a);
    b->tid[a->id] = mp_test_tid();
    mp_test_word_inc(&b->ready);
    mp_test_word_wait(&b->never, 1, CHILD_LONG);
    return 21;
}

/* t_send_big closes the dropped ends, then sends a->size bytes of a->key's
 * payload on out (the test kills it while it is blocked). Codes: 13 no
 * memory, 11 the send failed. */
static int t_send_big(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    drop_all(a);
    void *buf = malloc(a->size);
    if (!buf)
        return 13;
    mp_test_pat_fill(buf, a->size, a->key);
    b->tid[a->id] = mp_test_tid();
    mp_test_word_inc(&b->ready);
    double t0 = mp_test_now();
    int rc = mp_conn_send_bytes(a->out, buf, a->size);
    b->at[a->id] = mp_test_now();
    b->el[a->id] = b->at[a->id] - t0;
    b->rc[a->id] = rc;
    free(buf);
    mp_test_word_inc(&b->done);
    return rc == 0 ? 0 : 11;
}

/* t_send_n sends a->n messages of a->size bytes, the i-th of key a->key + i,
 * on out, recording its TID first and the first failure (rc, cnt: how many
 * went). Code 11: a send failed. */
static int t_send_n(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    b->tid[a->id] = mp_test_tid();
    mp_test_word_inc(&b->ready);
    for (int i = 0; i < a->n; i++) {
        int rc = send_pat(a->out, a->size, a->key + (uint64_t)i);
        if (rc != 0) {
            b->rc[a->id] = rc;
            b->cnt[a->id] = i;
            return 11;
        }
    }
    return 0;
}

/* t_recv1 (thread or process) closes the dropped ends, then receives one
 * message on in with a->timeout and records the code, the length (cnt), the
 * payload check (rc2: 0 a->size bytes of a->key's payload, 1 another length,
 * 2 another payload) and the time it returned. */
static int t_recv1(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    drop_all(a);
    b->tid[a->id] = mp_test_tid();
    mp_test_word_inc(&b->ready);
    void *p = NULL;
    size_t len = 0;
    double t0 = mp_test_now();
    int rc = mp_conn_recv_bytes(a->in, &p, &len, 0, a->timeout);
    b->at[a->id] = mp_test_now();
    b->el[a->id] = b->at[a->id] - t0;
    b->rc[a->id] = rc;
    b->cnt[a->id] = (int64_t)len;
    if (rc == 0) {
        b->rc2[a->id] = len != a->size ? 1 : mp_test_pat_bad(p, len, a->key) >= 0 ? 2 : 0;
        free(p);
    }
    mp_test_word_inc(&b->done);
    return 0;
}

/* t_recv_into1 (a thread) is t_recv1 with recv_bytes_into (a 256-byte
 * buffer, at offset 3). */
static int t_recv_into1(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    drop_all(a);
    b->tid[a->id] = mp_test_tid();
    mp_test_word_inc(&b->ready);
    unsigned char buf[256];
    size_t len = 0;
    int rc = mp_conn_recv_bytes_into(a->in, buf, sizeof buf, 3, &len, a->timeout);
    b->rc[a->id] = rc;
    b->cnt[a->id] = (int64_t)len;
    if (rc == 0)
        b->rc2[a->id] = len != a->size ? 1 : mp_test_pat_bad(buf + 3, len, a->key) >= 0 ? 2 : 0;
    mp_test_word_inc(&b->done);
    return 0;
}

/* t_poll1 (a thread) polls in with a->timeout and records the result and
 * the time it returned. */
static int t_poll1(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    b->tid[a->id] = mp_test_tid();
    mp_test_word_inc(&b->ready);
    double t0 = mp_test_now();
    b->rc[a->id] = mp_conn_poll(a->in, a->timeout);
    b->at[a->id] = mp_test_now();
    b->el[a->id] = b->at[a->id] - t0;
    mp_test_word_inc(&b->done);
    return 0;
}

/* t_send_many (a thread) sends a->n messages on out, message i being
 * msg_size(i) bytes of the payload of a->key + i. Code 11: a send failed. */
static size_t msg_size(int i)
{
    uint64_t h = mp_test_mix64((uint64_t)i * 77 + 5);
    return (h % 16 == 0) ? 70000 + (size_t)(h >> 40) % 50000 : (size_t)(h >> 40) % 3000;
}

static int t_send_many(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    for (int i = 0; i < a->n; i++) {
        int rc = send_pat(a->out, msg_size(i), a->key + (uint64_t)i);
        if (rc != 0) {
            b->rc[a->id] = rc;
            b->cnt[a->id] = i;
            return 11;
        }
    }
    return 0;
}

/* t_wait_ev closes the dropped ends, waits for the Event, returns 7. */
static int t_wait_ev(void *arg)
{
    targ_t *a = arg;
    drop_all(a);
    mp_test_word_inc(&a->b->ready);
    if (mp_event_wait(a->ev, CHILD_LONG) != 0)
        return 20;
    return 7;
}

/* t_close_copies records whether its copies of in and out are open, closes
 * both, and records whether they are closed now (rc: bit 0 in open before,
 * bit 1 out open before, bit 2 in closed after, bit 3 out closed after). */
static int t_close_copies(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    int r = 0;
    r |= mp_conn_closed(a->in) == 0 ? 1 : 0;
    r |= mp_conn_closed(a->out) == 0 ? 2 : 0;
    b->fd[a->id][0] = mp_conn_fileno(a->in);
    b->fd[a->id][1] = mp_conn_fileno(a->out);
    drop_all(a);
    mp_conn_close(a->in);
    mp_conn_close(a->out);
    r |= mp_conn_closed(a->in) == 1 ? 4 : 0;
    r |= mp_conn_closed(a->out) == 1 ? 8 : 0;
    b->rc[a->id] = r;
    return 0;
}

/* t_report_closed records what the calls on in give in the child (in was
 * closed, not freed, by the parent before the start): rc closed(), rc2 the
 * send's code, cnt fileno()'s code, fd[.][0] poll()'s code. */
static int t_report_closed(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    drop_all(a);
    b->rc[a->id] = mp_conn_closed(a->in);
    b->rc2[a->id] = mp_conn_send_bytes(a->in, "x", 1);
    b->cnt[a->id] = mp_conn_fileno(a->in);
    b->fd[a->id][0] = mp_conn_poll(a->in, 0);
    return 0;
}

/* t_send_after_ev closes the dropped ends, says it is ready, waits for the
 * Event, then sends 100 KiB on out and records the code (rc). Code 20: the
 * Event never came. */
static int t_send_after_ev(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    drop_all(a);
    mp_test_word_inc(&b->ready);
    if (mp_event_wait(a->ev, CHILD_LONG) != 0)
        return 20;
    b->rc[a->id] = send_pat(a->out, 100 * KiB, 1);
    mp_test_word_inc(&b->done);
    return 0;
}

/* t_wait1 (a thread) waits on in with mp_wait and a->timeout and records the
 * result, the ready flag (rc2) and the time it returned. */
static int t_wait1(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    b->tid[a->id] = mp_test_tid();
    mp_test_word_inc(&b->ready);
    mp_waitable_t w = mp_waitable_conn(a->in);
    double t0 = mp_test_now();
    b->rc[a->id] = mp_wait(&w, 1, a->timeout);
    b->rc2[a->id] = w.ready;
    b->at[a->id] = mp_test_now();
    b->el[a->id] = b->at[a->id] - t0;
    mp_test_word_inc(&b->done);
    return 0;
}

/* The regions of the huge message that carry a payload (the rest is zero):
 * its start, across 2 GiB, across 4 GiB, and its end. */
#define HUGE_LEN (4 * GiB + 17)
typedef struct {
    size_t off, len;
    uint64_t key;
} region_t;
static const region_t k_regions[] = {
    {0, 4096, 9001},
    {2 * GiB - 8, 16, 9002},
    {3 * GiB + 12345, 5000, 9003},
    {4 * GiB - 8, 16, 9004},
    {4 * GiB + 8, 9, 9005}, /* up to the end */
};
#define NREGIONS (sizeof k_regions / sizeof k_regions[0])

/* t_send_sparse closes the dropped ends, maps a->size bytes of zeroes that
 * cost no memory (MAP_NORESERVE, untouched), writes the payload regions that
 * fit (those of k_regions for HUGE_LEN; otherwise the first and last 4 KiB)
 * and sends it on out a->n times, then closes out. Codes: 13 no mapping,
 * 11 the send failed. */
static int t_send_sparse(void *arg)
{
    targ_t *a = arg;
    board_t *b = a->b;
    drop_all(a);
    unsigned char *m = mmap(NULL, a->size, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return 13;
    if (a->size == HUGE_LEN) {
        for (size_t i = 0; i < NREGIONS; i++)
            mp_test_pat_fill(m + k_regions[i].off, k_regions[i].len, k_regions[i].key);
    } else {
        mp_test_pat_fill(m, 4096, a->key);
        mp_test_pat_fill(m + a->size - 4096, 4096, a->key + 1);
    }
    mp_test_word_inc(&b->ready);
    int rc = 0;
    for (int i = 0; i < a->n && rc == 0; i++) {
        size_t len = a->size - (size_t)i; /* the second one is a byte shorter */
        rc = mp_conn_send_bytes(a->out, m, len);
    }
    munmap(m, a->size);
    b->rc[a->id] = rc;
    mp_conn_close(a->out);
    return rc == 0 ? 0 : 11;
}

/* ---- warm-up --------------------------------------------------------------- */

/* warm_conn makes the library create what it keeps for the life of a process
 * (the arena, the SIGPIPE disposition, any table of open connections), and
 * the forkserver or spawn bootstrap. */
static int warm_conn(void)
{
    void *x = mp__arena_alloc(16);
    if (!x)
        return -ENOMEM;
    mp__arena_free(x);
    mp_event_t *ev = NULL;
    int rc = mp_event_new(&ev);
    if (rc != 0)
        return rc;
    mp_event_free(ev);
    for (int duplex = 0; duplex < 2; duplex++) {
        mp_conn_t *a = NULL, *b = NULL;
        rc = mp_pipe(&a, &b, duplex);
        if (rc != 0)
            return rc;
        void *p = NULL;
        size_t len = 0;
        mp_conn_t *s = duplex ? a : b, *r = duplex ? b : a;
        rc = mp_conn_send_bytes(s, "w", 1);
        if (rc == 0)
            rc = mp_conn_recv_bytes(r, &p, &len, 0, 0);
        free(p);
        mp_conn_free(a);
        mp_conn_free(b);
        if (rc != 0)
            return rc;
    }
    return mp_test_warm_child();
}

/* ============================================================================
 * Pipe and Connection in one process
 * ========================================================================== */

/* Pipe(duplex=True): both ends read and write, each way; distinct
 * descriptors, born close-on-exec. */
static void pipe_duplex(void **state)
{
    mp_conn_t *a, *b;
    pipe_new(&a, &b, 1);
    mp_assert_int(mp_conn_readable(a), 1);
    mp_assert_int(mp_conn_writable(a), 1);
    mp_assert_int(mp_conn_readable(b), 1);
    mp_assert_int(mp_conn_writable(b), 1);
    mp_assert_int(mp_conn_closed(a), 0);
    mp_assert_int(mp_conn_closed(b), 0);
    int fa = mp_conn_fileno(a), fb = mp_conn_fileno(b);
    assert_true(fa >= 0);
    assert_true(fb >= 0);
    assert_true(fa != fb);
    mp_assert_int(fcntl(fa, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    mp_assert_int(fcntl(fb, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);

    mp_assert_int(mp_conn_send_bytes(a, "hello world", 11), 0);
    expect_str(b, "hello world", "a -> b");
    mp_assert_int(mp_conn_send_bytes(b, "dlrow olleh", 11), 0);
    expect_str(a, "dlrow olleh", "b -> a");
    /* Both at once, before either reads. */
    mp_assert_int(mp_conn_send_bytes(a, "ping", 4), 0);
    mp_assert_int(mp_conn_send_bytes(b, "pong", 4), 0);
    expect_str(a, "pong", "b -> a crossing");
    expect_str(b, "ping", "a -> b crossing");
    mp_assert_int(mp_conn_poll(a, 0), 0);
    mp_assert_int(mp_conn_poll(b, 0), 0);
    mp_conn_free(a);
    mp_conn_free(b);
}

/* Pipe(duplex=False): c1 only receives, c2 only sends; the wrong direction
 * is -EBADF on both ends, for every call, and sends nothing. */
static void pipe_simplex(void **state)
{
    mp_conn_t *r, *w;
    pipe_new(&r, &w, 0);
    mp_assert_int(mp_conn_readable(r), 1);
    mp_assert_int(mp_conn_writable(r), 0);
    mp_assert_int(mp_conn_readable(w), 0);
    mp_assert_int(mp_conn_writable(w), 1);
    int fr = mp_conn_fileno(r), fw = mp_conn_fileno(w);
    assert_true(fr >= 0 && fw >= 0 && fr != fw);
    mp_assert_int(fcntl(fr, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    mp_assert_int(fcntl(fw, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);

    mp_assert_int(mp_conn_send_bytes(w, "one", 3), 0);
    expect_str(r, "one", "writer -> reader");

    /* The reader cannot send. */
    mp_assert_int(mp_conn_send_bytes(r, "x", 1), -EBADF);
    mp_assert_int(mp_conn_send_bytes_at(r, "xyz", 3, 1, 1), -EBADF);
    mp_val_t v = mp_val_int(1);
    mp_assert_int(mp_conn_send(r, &v), -EBADF);
    /* The writer cannot receive nor poll. */
    void *p = NULL;
    size_t len = 0;
    char buf[8];
    mp_val_t *out = NULL;
    mp_assert_int(mp_conn_recv_bytes(w, &p, &len, 0, 0), -EBADF);
    mp_assert_int(mp_conn_recv_bytes(w, &p, &len, 0, 0.05), -EBADF);
    mp_assert_int(mp_conn_recv_bytes_into(w, buf, sizeof buf, 0, &len, 0), -EBADF);
    mp_assert_int(mp_conn_recv(w, &out, 0, 0), -EBADF);
    assert_null(out);
    mp_assert_int(mp_conn_poll(w, 0), -EBADF);
    mp_assert_int(mp_conn_poll(w, 0.05), -EBADF);
    /* Nothing went anywhere, and both ends still work. */
    mp_assert_int(mp_conn_poll(r, 0), 0);
    mp_assert_int(mp_conn_send_bytes(w, "two", 3), 0);
    expect_str(r, "two", "writer -> reader after the refusals");
    mp_conn_free(r);
    mp_conn_free(w);
}

/* Round trips of many sizes (around the header size and a page), one at a
 * time, each way of a duplex pipe and through a simplex one. */
static const size_t k_small_sizes[] = {0, 1, 2, 3, 4, 5, 7, 8, 127, 128, 255, 256,
                                       4091, 4092, 4095, 4096, 4097, 16383, 16384,
                                       16385, 30000};
#define NSMALL (sizeof k_small_sizes / sizeof k_small_sizes[0])

static void roundtrip_sizes(void **state)
{
    mp_conn_t *a, *b, *r, *w;
    pipe_new(&a, &b, 1);
    pipe_new(&r, &w, 0);
    char what[96];
    for (size_t i = 0; i < NSMALL; i++) {
        size_t n = k_small_sizes[i];
        snprintf(what, sizeof what, "duplex a->b, %zu bytes", n);
        mp_assert_int(send_pat(a, n, 100 + i), 0);
        mp_assert_int(mp_conn_poll(b, MP_TEST_LONG), 1);
        expect_pat(b, n, 100 + i, what);
        snprintf(what, sizeof what, "duplex b->a, %zu bytes", n);
        mp_assert_int(send_pat(b, n, 200 + i), 0);
        expect_pat(a, n, 200 + i, what);
        snprintf(what, sizeof what, "simplex, %zu bytes", n);
        mp_assert_int(send_pat(w, n, 300 + i), 0);
        expect_pat(r, n, 300 + i, what);
    }
    mp_assert_int(mp_conn_poll(a, 0), 0);
    mp_assert_int(mp_conn_poll(b, 0), 0);
    mp_assert_int(mp_conn_poll(r, 0), 0);
    mp_conn_free(a);
    mp_conn_free(b);
    mp_conn_free(r);
    mp_conn_free(w);
}

/* An empty message is a message: poll sees it, recv_bytes gives 0 bytes in
 * a non-NULL buffer, recv_bytes_into gives 0 (also into a 0-byte buffer at
 * its end), and mp_conn_send_bytes takes NULL for it. */
static void empty_message(void **state)
{
    mp_conn_t *r, *w;
    pipe_new(&r, &w, 0);
    mp_assert_int(mp_conn_send_bytes(w, NULL, 0), 0);
    mp_assert_int(mp_conn_poll(r, 0), 1);
    void *p = NULL;
    size_t len = 99;
    mp_assert_int(mp_conn_recv_bytes(r, &p, &len, 0, 0), 0);
    assert_non_null(p);
    mp_assert_int(len, 0);
    free(p);
    mp_assert_int(mp_conn_poll(r, 0), 0);

    char buf[4] = {'a', 'b', 'c', 'd'};
    mp_assert_int(mp_conn_send_bytes(w, "", 0), 0);
    size_t got = 99;
    mp_assert_int(mp_conn_recv_bytes_into(r, buf, sizeof buf, 0, &got, 0), 0);
    mp_assert_int(got, 0);
    assert_memory_equal(buf, "abcd", 4);
    mp_assert_int(mp_conn_send_bytes(w, NULL, 0), 0);
    got = 99;
    mp_assert_int(mp_conn_recv_bytes_into(r, buf, sizeof buf, sizeof buf, &got, 0), 0);
    mp_assert_int(got, 0);
    /* An empty value-less message between two others keeps its place. */
    mp_assert_int(mp_conn_send_bytes(w, "x", 1), 0);
    mp_assert_int(mp_conn_send_bytes(w, NULL, 0), 0);
    mp_assert_int(mp_conn_send_bytes(w, "y", 1), 0);
    expect_str(r, "x", "before the empty one");
    expect_str(r, "", "the empty one");
    expect_str(r, "y", "after the empty one");
    mp_assert_int(mp_conn_poll(r, 0), 0);
    mp_conn_free(r);
    mp_conn_free(w);
}

/* Several sends then several receives: the boundaries are kept (nothing
 * merged, nothing split), on both kinds of pipe. */
static void boundaries_kept(void **state)
{
    static const size_t sizes[] = {3, 0, 1, 4, 1000, 0, 0, 17, 4096, 5};
    const size_t n = sizeof sizes / sizeof sizes[0];
    for (int duplex = 0; duplex < 2; duplex++) {
        mp_conn_t *r, *w;
        pipe_new(&r, &w, duplex);
        for (size_t i = 0; i < n; i++)
            mp_assert_int(send_pat(w, sizes[i], 500 + i), 0);
        char what[64];
        for (size_t i = 0; i < n; i++) {
            snprintf(what, sizeof what, "%s message %zu (%zu bytes)",
                     duplex ? "duplex" : "simplex", i, sizes[i]);
            expect_pat(r, sizes[i], 500 + i, what);
        }
        mp_assert_int(mp_conn_poll(r, 0), 0);
        /* The same with recv_bytes_into into one large buffer each time. */
        for (size_t i = 0; i < n; i++)
            mp_assert_int(send_pat(w, sizes[i], 600 + i), 0);
        unsigned char *buf = malloc(8192);
        assert_non_null(buf);
        for (size_t i = 0; i < n; i++) {
            size_t got = 0;
            mp_assert_int(mp_conn_recv_bytes_into(r, buf, 8192, 0, &got, 0), 0);
            mp_assert_int(got, sizes[i]);
            mp_assert_int(mp_test_pat_bad(buf, got, 600 + i), -1);
        }
        free(buf);
        mp_assert_int(mp_conn_poll(r, 0), 0);
        mp_conn_free(r);
        mp_conn_free(w);
    }
}

/* send_bytes(buf, offset, size) as Python's test_sendbytes: slices, empty
 * slices at the end, and every bad offset/size refused with -EINVAL with
 * nothing sent (also when offset + size wraps around). */
static void send_bytes_at(void **state)
{
    static const char msg[] = "abcdefghijklmnopqrstuvwxyz";
    const size_t n = 26;
    mp_conn_t *a, *b;
    pipe_new(&a, &b, 1);
    mp_assert_int(mp_conn_send_bytes_at(a, msg, n, 0, MP_SIZE_REST), 0);
    expect_str(b, msg, "offset 0, the rest");
    mp_assert_int(mp_conn_send_bytes_at(a, msg, n, 5, MP_SIZE_REST), 0);
    expect_str(b, msg + 5, "offset 5, the rest");
    mp_assert_int(mp_conn_send_bytes_at(a, msg, n, 7, 8), 0);
    expect_str(b, "hijklmno", "offset 7, 8 bytes");
    mp_assert_int(mp_conn_send_bytes_at(a, msg, n, 26, MP_SIZE_REST), 0);
    expect_str(b, "", "offset 26, the rest");
    mp_assert_int(mp_conn_send_bytes_at(a, msg, n, 26, 0), 0);
    expect_str(b, "", "offset 26, 0 bytes");
    mp_assert_int(mp_conn_send_bytes_at(a, msg, n, 0, 26), 0);
    expect_str(b, msg, "offset 0, 26 bytes");
    mp_assert_int(mp_conn_send_bytes_at(a, msg, n, 25, 1), 0);
    expect_str(b, "z", "offset 25, 1 byte");
    mp_assert_int(mp_conn_send_bytes_at(a, NULL, 0, 0, MP_SIZE_REST), 0);
    expect_str(b, "", "an empty buffer");

    mp_assert_int(mp_conn_send_bytes_at(a, msg, n, 27, MP_SIZE_REST), -EINVAL);
    mp_assert_int(mp_conn_send_bytes_at(a, msg, n, 27, 0), -EINVAL);
    mp_assert_int(mp_conn_send_bytes_at(a, msg, n, 22, 5), -EINVAL);
    mp_assert_int(mp_conn_send_bytes_at(a, msg, n, 26, 1), -EINVAL);
    mp_assert_int(mp_conn_send_bytes_at(a, msg, n, 0, 27), -EINVAL);
    mp_assert_int(mp_conn_send_bytes_at(a, msg, n, SIZE_MAX, MP_SIZE_REST), -EINVAL);
    mp_assert_int(mp_conn_send_bytes_at(a, msg, n, SIZE_MAX, 1), -EINVAL);
    /* offset + size wraps around to 1 (<= 26): still out of the buffer. */
    mp_assert_int(mp_conn_send_bytes_at(a, msg, n, 4, SIZE_MAX - 2), -EINVAL);
    mp_assert_int(mp_conn_send_bytes_at(a, msg, n, 4, MP_SIZE_REST - 1), -EINVAL);
    mp_assert_int(mp_conn_send_bytes_at(a, NULL, n, 0, 1), -EINVAL);
    mp_assert_int(mp_conn_send_bytes(a, NULL, 5), -EINVAL);
    mp_assert_int(mp_conn_poll(b, 0), 0);

    /* The connection still works. */
    mp_assert_int(mp_conn_send_bytes_at(a, msg, n, 1, 2), 0);
    expect_str(b, "bc", "after the refusals");
    mp_assert_int(mp_conn_poll(b, 0), 0);
    mp_conn_free(a);
    mp_conn_free(b);
}

/* recv_bytes_into: at offset 0 and at an offset (the bytes before it and
 * after the message untouched); exactly fitting; one byte too small:
 * MP_ETOOSHORT with *got the size, the message not lost (poll and wait still
 * see it, it comes whole into a larger buffer, or through recv_bytes, before
 * the next one); offset > len: -EINVAL. */
static void recv_bytes_into_on(mp_conn_t *a, mp_conn_t *b, double t)
{
    unsigned char buf[64];
    size_t got = 0;

    memset(buf, '.', sizeof buf);
    mp_assert_int(mp_conn_send_bytes(a, "0123456789abcdef", 16), 0);
    mp_assert_int(mp_conn_recv_bytes_into(b, buf, sizeof buf, 0, &got, t), 0);
    mp_assert_int(got, 16);
    assert_memory_equal(buf, "0123456789abcdef", 16);
    assert_true(buf[16] == '.');

    memset(buf, '.', sizeof buf);
    mp_assert_int(mp_conn_send_bytes(a, "0123456789abcdef", 16), 0);
    mp_assert_int(mp_conn_recv_bytes_into(b, buf, sizeof buf, 12, &got, t), 0);
    mp_assert_int(got, 16);
    assert_memory_equal(buf, "............0123456789abcdef....", 32);

    /* Exactly fitting: 16 bytes into buf[48..64). */
    mp_assert_int(mp_conn_send_bytes(a, "ABCDEFGHIJKLMNOP", 16), 0);
    mp_assert_int(mp_conn_recv_bytes_into(b, buf, sizeof buf, 48, &got, t), 0);
    mp_assert_int(got, 16);
    assert_memory_equal(buf + 48, "ABCDEFGHIJKLMNOP", 16);

    /* One byte short, at an offset; then the next message queued behind. */
    mp_assert_int(mp_conn_send_bytes(a, "0123456789abcdefg", 17), 0);
    mp_assert_int(mp_conn_send_bytes(a, "next", 4), 0);
    got = 0;
    mp_assert_int(mp_conn_recv_bytes_into(b, buf, sizeof buf, 48, &got, t),
                  MP_ETOOSHORT);
    mp_assert_int(got, 17);
    got = 0;
    mp_assert_int(mp_conn_recv_bytes_into(b, buf, 10, 0, &got, 0), MP_ETOOSHORT);
    mp_assert_int(got, 17);
    /* Still waiting: poll and wait see it. */
    mp_assert_int(mp_conn_poll(b, 0), 1);
    mp_waitable_t wb = mp_waitable_conn(b);
    mp_assert_int(mp_wait(&wb, 1, 0), 1);
    mp_assert_int(wb.ready, 1);
    got = 0;
    memset(buf, '.', sizeof buf);
    mp_assert_int(mp_conn_recv_bytes_into(b, buf, sizeof buf, 47, &got, 0), 0);
    mp_assert_int(got, 17);
    assert_memory_equal(buf + 47, "0123456789abcdefg", 17);
    expect_str(b, "next", "the message behind the one that did not fit");

    /* Too short, then taken by recv_bytes. */
    mp_assert_int(send_pat(a, 5000, 77), 0);
    got = 0;
    mp_assert_int(mp_conn_recv_bytes_into(b, buf, sizeof buf, 0, &got, t),
                  MP_ETOOSHORT);
    mp_assert_int(got, 5000);
    expect_pat(b, 5000, 77, "a message refused by recv_bytes_into, then recv_bytes");

    /* A large one (over the pipe's buffer is the thread cases' business):
     * too short, then whole. */
    const size_t big = 50000;
    unsigned char *bb = malloc(big);
    assert_non_null(bb);
    mp_assert_int(send_pat(a, big, 78), 0);
    got = 0;
    mp_assert_int(mp_conn_recv_bytes_into(b, bb, big - 1, 0, &got, t),
                  MP_ETOOSHORT);
    mp_assert_int(got, big);
    got = 0;
    mp_assert_int(mp_conn_recv_bytes_into(b, bb, big, 0, &got, t), 0);
    mp_assert_int(got, big);
    mp_assert_int(mp_test_pat_bad(bb, big, 78), -1);
    free(bb);

    /* offset > len: -EINVAL, nothing consumed. offset == len: fits only an
     * empty message. */
    mp_assert_int(mp_conn_send_bytes(a, "zz", 2), 0);
    mp_assert_int(mp_conn_recv_bytes_into(b, buf, 8, 9, &got, 0), -EINVAL);
    got = 0;
    mp_assert_int(mp_conn_recv_bytes_into(b, buf, 8, 8, &got, 0), MP_ETOOSHORT);
    mp_assert_int(got, 2);
    expect_str(b, "zz", "after offset > len and offset == len");

    /* Empty messages: into no buffer at all, and at offset == len. */
    mp_assert_int(mp_conn_send_bytes(a, NULL, 0), 0);
    mp_assert_int(mp_conn_send_bytes(a, "", 0), 0);
    got = 7;
    mp_assert_int(mp_conn_recv_bytes_into(b, NULL, 0, 0, &got, t), 0);
    mp_assert_int(got, 0);
    got = 7;
    mp_assert_int(mp_conn_recv_bytes_into(b, buf, 8, 8, &got, t), 0);
    mp_assert_int(got, 0);
    mp_assert_int(mp_conn_poll(b, 0), 0);
}

/* ... on a duplex Pipe with a deadline (the general path), and on a simplex
 * one without (the short path, where the calls with a deadline of 0 still
 * take the general one). */
static void recv_bytes_into(void **state)
{
    mp_conn_t *a, *b;
    pipe_new(&a, &b, 1);
    recv_bytes_into_on(a, b, MP_TEST_LONG);
    mp_conn_free(a);
    mp_conn_free(b);
    pipe_new(&b, &a, 0);
    recv_bytes_into_on(a, b, MP_FOREVER);
    mp_conn_free(a);
    mp_conn_free(b);
}

/* recv_bytes(maxlength): a message longer than maxlength is -EMSGSIZE and
 * stays first in line (again with the same limit; then whole with a larger
 * limit, with no limit, or through recv_bytes_into); exactly maxlength is
 * accepted. */
static void recv_maxlength(void **state)
{
    mp_conn_t *a, *b;
    pipe_new(&a, &b, 1);
    void *p = NULL;
    size_t len = 0;
    mp_assert_int(send_pat(a, 100, 41), 0);
    mp_assert_int(send_pat(a, 3, 42), 0);
    mp_assert_int(mp_conn_recv_bytes(b, &p, &len, 99, MP_TEST_LONG), -EMSGSIZE);
    mp_assert_int(mp_conn_recv_bytes(b, &p, &len, 1, 0), -EMSGSIZE);
    mp_assert_int(mp_conn_recv_bytes(b, &p, &len, 99, 0), -EMSGSIZE);
    mp_assert_int(mp_conn_poll(b, 0), 1);
    len = 0;
    mp_assert_int(mp_conn_recv_bytes(b, &p, &len, 100, 0), 0);
    mp_assert_int(len, 100);
    mp_assert_int(mp_test_pat_bad(p, len, 41), -1);
    free(p);
    p = NULL;
    mp_assert_int(mp_conn_recv_bytes(b, &p, &len, 3, 0), 0);
    mp_assert_int(len, 3);
    mp_assert_int(mp_test_pat_bad(p, len, 42), -1);
    free(p);
    p = NULL;

    /* Refused, then no limit. */
    mp_assert_int(send_pat(a, 20000, 43), 0);
    mp_assert_int(mp_conn_recv_bytes(b, &p, &len, 19999, MP_TEST_LONG), -EMSGSIZE);
    expect_pat(b, 20000, 43, "no limit after -EMSGSIZE");
    /* Refused, then recv_bytes_into (too short first, then whole). */
    mp_assert_int(send_pat(a, 300, 44), 0);
    mp_assert_int(mp_conn_recv_bytes(b, &p, &len, 10, MP_TEST_LONG), -EMSGSIZE);
    unsigned char buf[512];
    size_t got = 0;
    mp_assert_int(mp_conn_recv_bytes_into(b, buf, 299, 0, &got, 0), MP_ETOOSHORT);
    mp_assert_int(got, 300);
    mp_assert_int(mp_conn_recv_bytes_into(b, buf, sizeof buf, 0, &got, 0), 0);
    mp_assert_int(got, 300);
    mp_assert_int(mp_test_pat_bad(buf, 300, 44), -1);
    /* An empty message is never too long. */
    mp_assert_int(mp_conn_send_bytes(a, NULL, 0), 0);
    mp_assert_int(mp_conn_recv_bytes(b, &p, &len, 1, 0), 0);
    mp_assert_int(len, 0);
    free(p);
    mp_assert_int(mp_conn_poll(b, 0), 0);
    mp_conn_free(a);
    mp_conn_free(b);
}

/* poll: 0 at once on an empty pipe (timeout 0), 0 after about the timeout
 * (0.2 s), 1 at once once a message waits (without taking it, twice), 0 again
 * once it was taken; NaN is -EINVAL. */
static void poll_timing(void **state)
{
    mp_conn_t *a, *b;
    pipe_new(&a, &b, 1);
    double t0 = mp_test_now();
    mp_assert_int(mp_conn_poll(b, 0), 0);
    mp_test_check_quick(mp_test_now() - t0, "poll(0) on an empty pipe");
    t0 = mp_test_now();
    mp_assert_int(mp_conn_poll(b, 0.2), 0);
    mp_test_check_timed(mp_test_now() - t0, 0.2, "poll(0.2) on an empty pipe");
    mp_assert_int(mp_conn_poll(b, NAN), -EINVAL);

    mp_assert_int(mp_conn_send_bytes(a, "m", 1), 0);
    t0 = mp_test_now();
    mp_assert_int(mp_conn_poll(b, MP_TEST_LONG), 1);
    mp_assert_int(mp_conn_poll(b, 0), 1);
    mp_assert_int(mp_conn_poll(b, MP_FOREVER), 1);
    mp_test_check_quick(mp_test_now() - t0, "poll with a message waiting");
    mp_assert_int(mp_conn_poll(a, 0), 0); /* the other direction is empty */
    expect_str(b, "m", "after the polls");
    t0 = mp_test_now();
    mp_assert_int(mp_conn_poll(b, 0.1), 0);
    mp_test_check_timed(mp_test_now() - t0, 0.1, "poll(0.1) after the message was taken");
    mp_conn_free(a);
    mp_conn_free(b);
}

/* A thread asleep in poll(MP_TEST_LONG) is woken by a send, promptly. */
static void poll_woken_by_send(void **state)
{
    board_t *b = board_new();
    mp_conn_t *r, *w;
    pipe_new(&r, &w, 0);
    static mp_party_t y;
    targ_t a = {.b = b, .in = r, .id = 0, .timeout = MP_TEST_LONG};
    mp_party_start(&y, 0, t_poll1, &a, sizeof a);
    mp_test_wait_word(&b->ready, 1, "poller running");
    mp_test_wait_asleep(b->tid[0], "the poller");
    mp_assert_int(mp_test_word_get(&b->done), 0);
    double since = mp_test_now();
    mp_assert_int(mp_conn_send_bytes(w, "wake", 4), 0);
    mp_assert_int(mp_party_join(&y), 0);
    mp_assert_int(b->rc[0], 1);
    mp_test_check_prompt(b->at[0], since, "poll");
    expect_str(r, "wake", "the message that woke the poller");
    mp_conn_free(r);
    mp_conn_free(w);
    mp__arena_free(b);
}

/* recv with a timeout on an empty pipe: -ETIMEDOUT after about the timeout
 * (and at once with 0), for every receive call; the connection is as it was:
 * a message sent afterwards arrives whole. */
static void recv_timeout(void **state)
{
    mp_conn_t *a, *b;
    pipe_new(&a, &b, 1);
    void *p = NULL;
    size_t len = 0;
    char buf[16];
    mp_val_t *v = NULL;
    double t0 = mp_test_now();
    mp_assert_int(mp_conn_recv_bytes(b, &p, &len, 0, 0), -ETIMEDOUT);
    mp_assert_int(mp_conn_recv_bytes_into(b, buf, sizeof buf, 0, &len, 0), -ETIMEDOUT);
    mp_assert_int(mp_conn_recv(b, &v, 0, 0), -ETIMEDOUT);
    mp_test_check_quick(mp_test_now() - t0, "receives with timeout 0");
    t0 = mp_test_now();
    mp_assert_int(mp_conn_recv_bytes(b, &p, &len, 0, 0.3), -ETIMEDOUT);
    mp_test_check_timed(mp_test_now() - t0, 0.3, "recv_bytes(0.3)");
    t0 = mp_test_now();
    mp_assert_int(mp_conn_recv_bytes_into(b, buf, sizeof buf, 0, &len, 0.2), -ETIMEDOUT);
    mp_test_check_timed(mp_test_now() - t0, 0.2, "recv_bytes_into(0.2)");
    t0 = mp_test_now();
    mp_assert_int(mp_conn_recv(b, &v, 0, 0.2), -ETIMEDOUT);
    mp_test_check_timed(mp_test_now() - t0, 0.2, "recv(0.2)");
    assert_null(v);

    mp_assert_int(send_pat(a, 1000, 5), 0);
    expect_pat(b, 1000, 5, "a message after the timeouts");
    mp_assert_int(mp_conn_send_bytes(b, "back", 4), 0);
    expect_str(a, "back", "the other way after the timeouts");
    mp_conn_free(a);
    mp_conn_free(b);
}

/* A thread blocked in recv_bytes is woken by a send and gets the message. */
static void recv_woken_by_send_thread(void **state)
{
    board_t *b = board_new();
    mp_conn_t *r, *w;
    pipe_new(&r, &w, 0);
    static mp_party_t y;
    targ_t a = {.b = b, .in = r, .id = 0, .size = 200, .key = 8,
                .timeout = MP_TEST_LONG};
    mp_party_start(&y, 0, t_recv1, &a, sizeof a);
    mp_test_wait_word(&b->ready, 1, "receiver running");
    mp_test_wait_asleep(b->tid[0], "the receiver");
    double since = mp_test_now();
    mp_assert_int(send_pat(w, 200, 8), 0);
    mp_assert_int(mp_party_join(&y), 0);
    mp_assert_int(b->rc[0], 0);
    mp_assert_int(b->rc2[0], 0);
    mp_test_check_prompt(b->at[0], since, "recv_bytes");
    mp_conn_free(r);
    mp_conn_free(w);
    mp__arena_free(b);
}

/* A send larger than the pipe's buffer blocks until the reader reads, then
 * the message arrives whole; another thread sends while we receive. */
static void send_blocks_until_read(void **state)
{
    board_t *b = board_new();
    mp_conn_t *r, *w;
    pipe_new(&r, &w, 0);
    static mp_party_t y;
    const size_t n = MiB + 3;
    targ_t a = {.b = b, .out = w, .id = 0, .size = n, .key = 12};
    mp_party_start(&y, 0, t_send_big, &a, sizeof a);
    mp_test_wait_word(&b->ready, 1, "sender running");
    mp_test_wait_asleep(b->tid[0], "the sender of 1 MiB");
    mp_assert_int(mp_test_word_get(&b->done), 0);
    expect_pat(r, n, 12, "1 MiB + 3 sent by a thread");
    mp_assert_int(mp_party_join(&y), 0);
    mp_assert_int(b->rc[0], 0);

    /* Many messages of mixed sizes (some over the pipe's buffer) from a
     * thread while this one receives. */
    targ_t m = {.b = b, .out = w, .id = 1, .n = 300, .key = 5000};
    mp_party_start(&y, 0, t_send_many, &m, sizeof m);
    char what[64];
    for (int i = 0; i < 300; i++) {
        snprintf(what, sizeof what, "message %d of the sending thread", i);
        expect_pat(r, msg_size(i), 5000 + (uint64_t)i, what);
    }
    check_child(mp_party_join(&y), 0, b, 1, "the sending thread");
    mp_assert_int(mp_conn_poll(r, 0), 0);
    mp_conn_free(r);
    mp_conn_free(w);
    mp__arena_free(b);
}

/* -EPIPE: sending to a pipe whose reader is closed (small and large
 * messages; the process is not killed by SIGPIPE); a duplex end whose peer is
 * closed: -EPIPE or -ECONNRESET; a sender blocked mid-message when the reader
 * closes returns -EPIPE promptly. */
static void send_epipe(void **state)
{
    mp_conn_t *r, *w;
    pipe_new(&r, &w, 0);
    mp_conn_close(r);
    mp_assert_int(mp_conn_send_bytes(w, "x", 1), -EPIPE);
    mp_assert_int(send_pat(w, 200000, 1), -EPIPE);
    mp_assert_int(mp_conn_send_bytes(w, NULL, 0), -EPIPE);
    mp_conn_free(r);
    mp_conn_free(w);

    mp_conn_t *a, *c;
    pipe_new(&a, &c, 1);
    mp_conn_close(c);
    int rc = mp_conn_send_bytes(a, "x", 1);
    if (rc != -EPIPE && rc != -ECONNRESET)
        mp_test_fail("send to a closed duplex peer returned %d (%s)\n", rc,
                     mp_strerror(rc));
    rc = send_pat(a, 500000, 2);
    if (rc != -EPIPE && rc != -ECONNRESET)
        mp_test_fail("a large send to a closed duplex peer returned %d (%s)\n", rc,
                     mp_strerror(rc));
    mp_conn_free(a);
    mp_conn_free(c);

    board_t *b = board_new();
    pipe_new(&r, &w, 0);
    static mp_party_t y;
    targ_t t = {.b = b, .out = w, .id = 0, .size = 4 * MiB, .key = 3};
    mp_party_start(&y, 0, t_send_big, &t, sizeof t);
    mp_test_wait_word(&b->ready, 1, "sender running");
    mp_test_wait_asleep(b->tid[0], "the sender of 4 MiB");
    double since = mp_test_now();
    mp_conn_close(r);
    mp_assert_int(mp_party_join(&y), 11);
    mp_assert_int(b->rc[0], -EPIPE);
    mp_test_check_prompt(b->at[0], since, "the blocked send");
    mp_conn_free(r);
    mp_conn_free(w);
    mp__arena_free(b);
}

/* ============================================================================
 * End of file
 * ========================================================================== */

/* The peer closes after sending: poll is 1, the queued messages come first
 * (all of them), then MP_EEOF for every receive call, again and again. */
static void eof_after_queued(void **state)
{
    for (int duplex = 0; duplex < 2; duplex++) {
        mp_conn_t *r, *w;
        pipe_new(&r, &w, duplex);
        /* Duplex: the closing end leaves a message of ours unread (a unix
         * socket then reports a reset rather than a plain end of file). */
        if (duplex)
            mp_assert_int(mp_conn_send_bytes(r, "unread", 6), 0);
        mp_assert_int(mp_conn_send_bytes(w, "one", 3), 0);
        mp_assert_int(mp_conn_send_bytes(w, NULL, 0), 0);
        mp_assert_int(send_pat(w, 9000, 4), 0);
        mp_conn_close(w);
        mp_assert_int(mp_conn_poll(r, 0), 1);
        expect_str(r, "one", "first of the queued messages");
        mp_assert_int(mp_conn_poll(r, 0), 1);
        expect_str(r, "", "the queued empty message");
        expect_pat(r, 9000, 4, "last of the queued messages");
        mp_assert_int(mp_conn_poll(r, 0), 1); /* end of file is "ready" */
        mp_waitable_t wr = mp_waitable_conn(r);
        mp_assert_int(mp_wait(&wr, 1, 0), 1);
        expect_code(r, 0, MP_EEOF, "after the queued messages (timeout 0)");
        expect_code(r, MP_TEST_LONG, MP_EEOF, "again");
        char buf[8];
        size_t got = 0;
        mp_assert_int(mp_conn_recv_bytes_into(r, buf, sizeof buf, 0, &got, MP_TEST_LONG),
                      MP_EEOF);
        mp_val_t *v = NULL;
        mp_assert_int(mp_conn_recv(r, &v, 0, MP_TEST_LONG), MP_EEOF);
        assert_null(v);
        mp_conn_free(r);
        mp_conn_free(w);
    }
}

/* EOF waits for every copy of the peer end: a child holds a copy of the
 * write end after we closed ours, so no EOF (poll 0, recv times out) until
 * it sends its last message and closes it. */
static void eof_needs_every_copy(void **state)
{
    board_t *b = board_new();
    mp_event_t *ev = NULL;
    mp_assert_int(mp_event_new(&ev), 0);
    mp_conn_t *r, *w;
    pipe_new(&r, &w, 0);
    static mp_party_t y;
    targ_t a = {.b = b, .out = w, .drop = {r}, .ev = ev, .id = 0};
    mp_party_start(&y, 1, t_hold, &a, sizeof a);
    mp_test_wait_word(&b->ready, 1, "the child holding the write end");
    mp_conn_close(w);
    mp_assert_int(mp_conn_closed(w), 1);
    mp_assert_int(mp_conn_poll(r, 0), 0);
    double t0 = mp_test_now();
    expect_code(r, 0.3, -ETIMEDOUT, "a child still holds the write end");
    mp_test_check_timed(mp_test_now() - t0, 0.3, "recv while the child holds it");
    mp_assert_int(mp_conn_poll(r, 0.1), 0);

    mp_assert_int(mp_event_set(ev), 0);
    expect_str(r, "last", "the child's message");
    expect_code(r, MP_TEST_LONG, MP_EEOF, "after the child closed its copy");
    check_child(mp_party_join(&y), 0, b, 0, "the holder");
    mp_assert_int(mp_test_word_get(&b->done), 1);
    mp_conn_free(r);
    mp_conn_free(w);
    mp_event_free(ev);
    mp__arena_free(b);
}

/* The copy a child holds without being told about it: a child started while
 * we hold both ends, whose argument names neither, still holds the write end
 * (a forked child inherits it; a spawned or forkserver child receives every
 * open connection), so no EOF until it ends. */
static void eof_unpassed_copy(void **state)
{
    board_t *b = board_new();
    mp_event_t *ev = NULL;
    mp_assert_int(mp_event_new(&ev), 0);
    mp_conn_t *r, *w;
    pipe_new(&r, &w, 0);
    static mp_party_t y;
    targ_t a = {.b = b, .ev = ev, .id = 0};
    mp_party_start(&y, 1, t_wait_ev, &a, sizeof a);
    mp_test_wait_word(&b->ready, 1, "the child");
    mp_conn_close(w);
    expect_code(r, 0.2, -ETIMEDOUT, "a child holds a copy of the write end");
    mp_assert_int(mp_event_set(ev), 0);
    mp_assert_int(mp_party_join(&y), 7);
    expect_code(r, MP_TEST_LONG, MP_EEOF, "after the child ended");
    mp_conn_free(r);
    mp_conn_free(w);
    mp_event_free(ev);
    mp__arena_free(b);
}

/* A child holding the only other copy of the write end is killed: EOF. */
static void eof_when_holder_killed(void **state)
{
    board_t *b = board_new();
    mp_conn_t *r, *w;
    pipe_new(&r, &w, 0);
    static mp_party_t y;
    targ_t a = {.b = b, .out = w, .drop = {r}, .id = 0};
    mp_party_start(&y, 1, t_block, &a, sizeof a);
    mp_test_wait_word(&b->ready, 1, "the child holding the write end");
    mp_conn_close(w);
    expect_code(r, 0.2, -ETIMEDOUT, "a child still holds the write end");
    mp_party_kill(&y);
    expect_code(r, MP_TEST_LONG, MP_EEOF, "after the holder was killed");
    mp_conn_free(r);
    mp_conn_free(w);
    mp__arena_free(b);
}

/* A child killed in the middle of sending a message (blocked on the full
 * pipe): the reader gets -EPROTO (end of file inside a message), not
 * MP_EEOF, and the connection stays broken. */
static void eof_inside_message(void **state)
{
    board_t *b = board_new();
    mp_conn_t *r, *w;
    pipe_new(&r, &w, 0);
    static mp_party_t y;
    targ_t a = {.b = b, .out = w, .drop = {r}, .id = 0, .size = 4 * MiB, .key = 21};
    mp_party_start(&y, 1, t_send_big, &a, sizeof a);
    mp_conn_close(w);
    mp_test_wait_word(&b->ready, 1, "the sending child");
    mp_assert_int(mp_test_fd_readable(mp_conn_fileno(r), MP_TEST_LONG), 1);
    mp_test_wait_asleep(b->tid[0], "the child sending 4 MiB");
    mp_assert_int(mp_test_word_get(&b->done), 0);
    mp_party_kill(&y);
    expect_code(r, MP_TEST_LONG, -EPROTO, "the sender died inside the message");
    expect_code(r, MP_TEST_LONG, -EPROTO, "again: the connection is broken");
    mp_conn_free(r);
    mp_conn_free(w);
    mp__arena_free(b);
}

/* A frame that trickles in (two bytes of header, the rest of it, a part of
 * the body, the rest) while a thread waits in recv_bytes, with a deadline and
 * without: the message arrives whole. */
static void recv_waits_for_rest(void **state)
{
    static const double timeouts[] = {60.0, MP_FOREVER};
    for (int k = 0; k < 2; k++) {
        board_t *b = board_new();
        mp_conn_t *r;
        int wfd = raw_reader(&r);
        static mp_party_t y;
        targ_t a = {.b = b, .in = r, .id = 0, .size = 300, .key = 61,
                    .timeout = timeouts[k] * (timeouts[k] > 0 ? mp_test_scale() : 1)};
        mp_party_start(&y, 0, t_recv1, &a, sizeof a);
        mp_test_wait_word(&b->ready, 1, "the receiver");
        unsigned char h[4], body[300];
        put_be32(h, 300);
        mp_test_pat_fill(body, 300, 61);
        mp_test_wait_asleep(b->tid[0], "the receiver, before any byte");
        write_all(wfd, h, 2);
        mp_test_wait_asleep(b->tid[0], "the receiver, after 2 bytes");
        write_all(wfd, h + 2, 2);
        mp_test_wait_asleep(b->tid[0], "the receiver, after the header");
        write_all(wfd, body, 100);
        mp_test_wait_asleep(b->tid[0], "the receiver, after 100 bytes of the body");
        mp_assert_int(mp_test_word_get(&b->done), 0);
        write_all(wfd, body + 100, 200);
        mp_assert_int(mp_party_join(&y), 0);
        mp_assert_int(b->rc[0], 0);
        mp_assert_int(b->cnt[0], 300);
        mp_assert_int(b->rc2[0], 0);
        close(wfd);
        mp_conn_free(r);
        mp__arena_free(b);
    }
}

/* One deadline for the whole receive: a frame that trickles in one byte
 * every 50 ms (for up to 4 s) does not extend a 0.5 s receive, which ends
 * with -ETIMEDOUT at about 0.5 s (and leaves the connection broken). */
static void recv_deadline_shared(void **state)
{
    board_t *b = board_new();
    mp_conn_t *r;
    int wfd = raw_reader(&r);
    write_header(wfd, 1000, 0);
    static mp_party_t y;
    targ_t a = {.b = b, .in = r, .id = 0, .timeout = 0.5};
    mp_party_start(&y, 0, t_recv1, &a, sizeof a);
    mp_test_wait_word(&b->ready, 1, "the receiver");
    double t0 = mp_test_now();
    size_t sent = 0;
    while (!mp_test_word_get(&b->done) && mp_test_now() - t0 < 4.0 * mp_test_scale()) {
        write_all(wfd, "x", 1);
        sent++;
        mp_test_sleep(0.05);
    }
    mp_assert_int(mp_party_join(&y), 0);
    mp_assert_int(b->rc[0], -ETIMEDOUT);
    if (b->el[0] < 0.49 || b->el[0] > 0.5 + 1.5 * mp_test_scale())
        mp_test_fail("a 0.5 s receive fed one byte every 50 ms took %.3f s: the "
                     "deadline is not shared by its reads\n", b->el[0]);
    /* The bytes that came are kept: the rest completes the message. */
    expect_code(r, 0, -ETIMEDOUT, "after a timeout inside the frame");
    static char rest[1000];
    memset(rest, 'x', sizeof rest);
    mp_assert_int(sent < 1000, 1);
    write_all(wfd, rest, 1000 - sent);
    void *p = NULL;
    size_t len = 0;
    mp_assert_int(mp_conn_recv_bytes(r, &p, &len, 0, MP_TEST_LONG), 0);
    mp_assert_int(len, 1000);
    mp_assert_int(memcmp(p, rest, 1000), 0);
    free(p);
    close(wfd);
    mp_conn_free(r);
    mp__arena_free(b);
}

/* poll's 1 means "a receive would not block": after only a part of a frame
 * (2 bytes of a header; a header and half a body), poll says 1 (bytes are
 * waiting) and a receive with timeout 0 times out inside the frame without
 * losing them: once the rest comes, the message arrives whole. */
static void poll_partial_frame(void **state)
{
    for (int kind = 0; kind < 2; kind++) {
        mp_conn_t *r;
        int wfd = raw_reader(&r);
        unsigned char h[4], body[64];
        put_be32(h, sizeof body);
        mp_test_pat_fill(body, sizeof body, 66);
        size_t first = kind == 0 ? 2 : 4 + 32;
        unsigned char frame[4 + sizeof body];
        memcpy(frame, h, 4);
        memcpy(frame + 4, body, sizeof body);
        write_all(wfd, frame, first);
        int pr = mp_conn_poll(r, 0);
        mp_assert_int(pr, 1); /* bytes are waiting */
        void *p = NULL;
        size_t len = 0;
        int rc = mp_conn_recv_bytes(r, &p, &len, 0, 0);
        if (rc == 0)
            free(p);
        if (rc != -ETIMEDOUT)
            mp_test_fail("%s: recv_bytes(timeout 0) returned %d (%s), expected -ETIMEDOUT\n",
                         kind == 0 ? "2 bytes of a header" : "a header and half the body",
                         rc, mp_strerror(rc));
        write_all(wfd, frame + first, sizeof frame - first);
        expect_pat(r, sizeof body, 66, "the message once whole");
        close(wfd);
        mp_conn_free(r);
    }
}

/* Signals (a handler without SA_RESTART) delivered to threads blocked in
 * recv_bytes (with and without a deadline), poll, a full send and mp_wait:
 * none returns early or -EINTR; each completes when its event comes. A timed
 * receive that keeps being interrupted still ends at its deadline (one
 * deadline for all its retries). */
static void on_usr1(int sig) { (void)sig; }

static void signal_thread(pid_t tid, const char *what)
{
    for (int i = 0; i < 3; i++) {
        mp_test_wait_asleep(tid, what);
        if (syscall(SYS_tgkill, getpid(), tid, SIGUSR1) != 0)
            mp_test_fail("tgkill: %s\n", strerror(errno));
    }
    mp_test_wait_asleep(tid, what);
}

static void eintr_resumes(void **state)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    board_t *b = board_new();
    mp_conn_t *r, *w;
    pipe_new(&r, &w, 0);
    static mp_party_t y;

    static const double timeouts[] = {MP_FOREVER, 60.0};
    for (int k = 0; k < 2; k++) {
        memset(b, 0, sizeof *b);
        targ_t a = {.b = b, .in = r, .id = 0, .size = 40, .key = 71,
                    .timeout = timeouts[k]};
        mp_party_start(&y, 0, t_recv1, &a, sizeof a);
        mp_test_wait_word(&b->ready, 1, "the receiver");
        signal_thread(b->tid[0], "the receiver");
        mp_assert_int(mp_test_word_get(&b->done), 0);
        mp_assert_int(send_pat(w, 40, 71), 0);
        mp_assert_int(mp_party_join(&y), 0);
        mp_assert_int(b->rc[0], 0);
        mp_assert_int(b->rc2[0], 0);
    }

    memset(b, 0, sizeof *b);
    targ_t pa = {.b = b, .in = r, .id = 0, .timeout = 60.0};
    mp_party_start(&y, 0, t_poll1, &pa, sizeof pa);
    mp_test_wait_word(&b->ready, 1, "the poller");
    signal_thread(b->tid[0], "the poller");
    mp_assert_int(mp_test_word_get(&b->done), 0);
    mp_assert_int(mp_conn_send_bytes(w, "p", 1), 0);
    mp_assert_int(mp_party_join(&y), 0);
    mp_assert_int(b->rc[0], 1);
    expect_str(r, "p", "the message the poller saw");

    memset(b, 0, sizeof *b);
    targ_t wa = {.b = b, .in = r, .id = 0, .timeout = 60.0};
    mp_party_start(&y, 0, t_wait1, &wa, sizeof wa);
    mp_test_wait_word(&b->ready, 1, "the waiter");
    signal_thread(b->tid[0], "the waiter in mp_wait");
    mp_assert_int(mp_test_word_get(&b->done), 0);
    mp_assert_int(mp_conn_send_bytes(w, "q", 1), 0);
    mp_assert_int(mp_party_join(&y), 0);
    mp_assert_int(b->rc[0], 1);
    mp_assert_int(b->rc2[0], 1);
    expect_str(r, "q", "the message the waiter saw");

    memset(b, 0, sizeof *b);
    targ_t sa2 = {.b = b, .out = w, .id = 0, .size = MiB + 1, .key = 72};
    mp_party_start(&y, 0, t_send_big, &sa2, sizeof sa2);
    mp_test_wait_word(&b->ready, 1, "the sender");
    signal_thread(b->tid[0], "the sender of 1 MiB");
    mp_assert_int(mp_test_word_get(&b->done), 0);
    expect_pat(r, MiB + 1, 72, "1 MiB sent through signals");
    mp_assert_int(mp_party_join(&y), 0);
    mp_assert_int(b->rc[0], 0);

    /* A 0.5 s receive signalled every 50 ms for up to 4 s: it must end at its
     * deadline, not restart its timeout at every signal. */
    memset(b, 0, sizeof *b);
    targ_t ta = {.b = b, .in = r, .id = 0, .timeout = 0.5};
    mp_party_start(&y, 0, t_recv1, &ta, sizeof ta);
    mp_test_wait_word(&b->ready, 1, "the timed receiver");
    double t0 = mp_test_now();
    while (!mp_test_word_get(&b->done) && mp_test_now() - t0 < 4.0 * mp_test_scale()) {
        syscall(SYS_tgkill, getpid(), b->tid[0], SIGUSR1);
        mp_test_sleep(0.05);
    }
    mp_assert_int(mp_party_join(&y), 0);
    mp_assert_int(b->rc[0], -ETIMEDOUT);
    if (b->el[0] < 0.49 || b->el[0] > 0.5 + 1.5 * mp_test_scale())
        mp_test_fail("a 0.5 s receive interrupted every 50 ms took %.3f s\n", b->el[0]);

    assert_int_equal(sigaction(SIGUSR1, &old, NULL), 0);
    mp_conn_free(r);
    mp_conn_free(w);
    mp__arena_free(b);
}

/* ============================================================================
 * Closed handles, wrapping descriptors, bad arguments
 * ========================================================================== */

/* After mp_conn_close: every call returns MP_ECLOSED, the descriptor is
 * closed, closed() is 1, closing again is a no-op; the peer sees EOF; the
 * handle stays valid until mp_conn_free. NULL handles: closed 1, readable
 * and writable 0, close/free accept them. */
static void closed_handle(void **state)
{
    mp_conn_t *a, *b;
    pipe_new(&a, &b, 1);
    int fa = mp_conn_fileno(a);
    assert_true(fa >= 0);
    mp_conn_close(a);
    mp_assert_int(fd_is_open(fa), 0);
    mp_assert_int(mp_conn_closed(a), 1);
    mp_assert_int(mp_conn_closed(b), 0);
    mp_conn_close(a);
    mp_assert_int(mp_conn_closed(a), 1);

    void *p = NULL;
    size_t len = 0;
    char buf[8];
    mp_val_t v = mp_val_int(3), *out = NULL;
    mp_assert_int(mp_conn_fileno(a), MP_ECLOSED);
    mp_assert_int(mp_conn_send_bytes(a, "x", 1), MP_ECLOSED);
    mp_assert_int(mp_conn_send_bytes(a, NULL, 0), MP_ECLOSED);
    mp_assert_int(mp_conn_send_bytes_at(a, "xy", 2, 1, 1), MP_ECLOSED);
    mp_assert_int(mp_conn_recv_bytes(a, &p, &len, 0, 0), MP_ECLOSED);
    mp_assert_int(mp_conn_recv_bytes(a, &p, &len, 0, MP_FOREVER), MP_ECLOSED);
    mp_assert_int(mp_conn_recv_bytes_into(a, buf, sizeof buf, 0, &len, MP_FOREVER),
                  MP_ECLOSED);
    mp_assert_int(mp_conn_poll(a, 0), MP_ECLOSED);
    mp_assert_int(mp_conn_poll(a, MP_FOREVER), MP_ECLOSED);
    mp_assert_int(mp_conn_send(a, &v), MP_ECLOSED);
    mp_assert_int(mp_conn_recv(a, &out, 0, MP_FOREVER), MP_ECLOSED);
    assert_null(out);
    mp_waitable_t wa = mp_waitable_conn(a);
    mp_assert_int(mp_wait(&wa, 1, 0), -EINVAL);

    /* The peer: end of file, and sending to a closed peer fails. */
    mp_assert_int(mp_conn_poll(b, MP_TEST_LONG), 1);
    expect_code(b, MP_TEST_LONG, MP_EEOF, "the peer of a closed end");
    mp_conn_free(a);
    mp_conn_free(b);

    /* Closing both ends of a simplex pipe, freeing without closing. */
    mp_conn_t *r, *w;
    pipe_new(&r, &w, 0);
    int fr = mp_conn_fileno(r), fw = mp_conn_fileno(w);
    mp_conn_free(r); /* free closes */
    mp_assert_int(fd_is_open(fr), 0);
    mp_conn_close(w);
    mp_assert_int(fd_is_open(fw), 0);
    mp_conn_free(w);

    mp_assert_int(mp_conn_closed(NULL), 1);
    mp_assert_int(mp_conn_readable(NULL), 0);
    mp_assert_int(mp_conn_writable(NULL), 0);
    mp_conn_close(NULL);
    mp_conn_free(NULL);
}

/* mp_conn_from_fd: a raw pipe wrapped into two connections works in Python's
 * framing, the connection owns the descriptor (free closes it, fileno is it);
 * a descriptor that is not open is -EBADF, neither direction -EINVAL, NULL
 * out -EINVAL. */
static void from_fd(void **state)
{
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    mp_conn_t *r = NULL, *w = NULL;
    mp_assert_int(mp_conn_from_fd(&r, p[0], 1, 0), 0);
    mp_assert_int(mp_conn_from_fd(&w, p[1], 0, 1), 0);
    mp_assert_int(mp_conn_fileno(r), p[0]);
    mp_assert_int(mp_conn_fileno(w), p[1]);
    mp_assert_int(mp_conn_readable(r), 1);
    mp_assert_int(mp_conn_writable(r), 0);
    mp_assert_int(mp_conn_readable(w), 0);
    mp_assert_int(mp_conn_writable(w), 1);
    mp_assert_int(send_pat(w, 3000, 31), 0);
    expect_pat(r, 3000, 31, "through a wrapped raw pipe");
    mp_assert_int(mp_conn_send_bytes(r, "x", 1), -EBADF);
    mp_assert_int(mp_conn_poll(w, 0), -EBADF);
    mp_conn_free(w);
    mp_assert_int(fd_is_open(p[1]), 0);
    expect_code(r, MP_TEST_LONG, MP_EEOF, "the wrapped writer was freed");
    mp_conn_free(r);
    mp_assert_int(fd_is_open(p[0]), 0);

    /* A duplex one from a socketpair's end (both directions). */
    int s[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0);
    mp_conn_t *x = NULL, *y = NULL;
    mp_assert_int(mp_conn_from_fd(&x, s[0], 1, 1), 0);
    mp_assert_int(mp_conn_from_fd(&y, s[1], 1, 1), 0);
    mp_assert_int(mp_conn_send_bytes(x, "to y", 4), 0);
    mp_assert_int(mp_conn_send_bytes(y, "to x", 4), 0);
    expect_str(y, "to y", "wrapped socketpair x -> y");
    expect_str(x, "to x", "wrapped socketpair y -> x");
    mp_conn_free(x);
    mp_conn_free(y);

    /* Bad descriptors. */
    mp_conn_t *c = NULL;
    int bad = 1000;
    while (fd_is_open(bad))
        bad++;
    mp_assert_int(mp_conn_from_fd(&c, bad, 1, 1), -EBADF);
    mp_assert_int(mp_conn_from_fd(&c, -1, 1, 0), -EBADF);
    mp_assert_int(mp_conn_from_fd(&c, INT_MAX, 0, 1), -EBADF);
    /* Neither direction. */
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    mp_assert_int(mp_conn_from_fd(&c, p[0], 0, 0), -EINVAL);
    mp_assert_int(mp_conn_from_fd(NULL, p[0], 1, 0), -EINVAL);
    assert_null(c);
    /* Whether a refused descriptor was closed is not specified: close it if
     * it is still ours. */
    if (fd_is_open(p[0]))
        close(p[0]);
    close(p[1]);
}

/* A non-blocking raw pipe wrapped: a send larger than its buffer (from a
 * thread) and receives with a deadline, without one, and with timeout 0 all
 * behave as on a blocking one. */
static void from_fd_nonblocking(void **state)
{
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    mp_conn_t *r = NULL, *w = NULL;
    mp_assert_int(mp_conn_from_fd(&r, p[0], 1, 0), 0);
    mp_assert_int(mp_conn_from_fd(&w, p[1], 0, 1), 0);
    board_t *b = board_new();
    static mp_party_t y;
    expect_code(r, 0, -ETIMEDOUT, "an empty non-blocking pipe, timeout 0");
    targ_t a = {.b = b, .out = w, .id = 0, .size = MiB + 5, .key = 81};
    mp_party_start(&y, 0, t_send_big, &a, sizeof a);
    void *m = NULL;
    size_t len = 0;
    mp_assert_int(mp_conn_recv_bytes(r, &m, &len, 0, MP_FOREVER), 0);
    mp_assert_int(len, MiB + 5);
    mp_assert_int(mp_test_pat_bad(m, len, 81), -1);
    free(m);
    mp_assert_int(mp_party_join(&y), 0);
    mp_assert_int(b->rc[0], 0);

    memset(b, 0, sizeof *b);
    targ_t ra = {.b = b, .in = r, .id = 0, .size = 100, .key = 82, .timeout = MP_FOREVER};
    mp_party_start(&y, 0, t_recv1, &ra, sizeof ra);
    mp_test_wait_word(&b->ready, 1, "the receiver");
    mp_test_wait_asleep(b->tid[0], "the receiver on a non-blocking pipe");
    mp_assert_int(send_pat(w, 100, 82), 0);
    mp_assert_int(mp_party_join(&y), 0);
    mp_assert_int(b->rc[0], 0);
    mp_assert_int(b->rc2[0], 0);
    mp_assert_int(send_pat(w, 10, 83), 0);
    expect_pat(r, 10, 83, "a small one with a deadline");

    /* Messages that are sent with one write (header and body copied
     * together: 200 bytes on the send's short path, 12,000 on the general
     * one) into a pipe that fills (more than the 1 MiB the big message grew
     * it to): the writer meets a short write or EAGAIN, sleeps until there
     * is room, and every message arrives whole and in order. */
    static const struct { size_t size; int n; } fills[] = {{200, 6000}, {12000, 120}};
    for (size_t k = 0; k < sizeof fills / sizeof fills[0]; k++) {
        memset(b, 0, sizeof *b);
        targ_t sa = {.b = b, .out = w, .id = 0, .n = fills[k].n, .size = fills[k].size,
                     .key = 90};
        mp_party_start(&y, 0, t_send_n, &sa, sizeof sa);
        mp_test_wait_word(&b->ready, 1, "the sender of small messages");
        mp_test_wait_asleep(b->tid[0], "the sender with the pipe full");
        for (int i = 0; i < fills[k].n; i++)
            expect_pat(r, fills[k].size, 90 + (uint64_t)i,
                       "a small message through a full pipe");
        mp_assert_int(mp_party_join(&y), 0);
        mp_assert_int(b->rc[0], 0);
    }

    /* recv_bytes_into without a deadline while a frame arrives in pieces
     * (the receiver asleep before each): `pre` bytes already there when it
     * starts (a header and part of a body: read at once, then it waits for
     * the rest), then `mid` bytes, then the rest: one whole message. */
    unsigned char msg[4 + 100];
    msg[0] = msg[1] = msg[2] = 0;
    msg[3] = 100;
    mp_test_pat_fill(msg + 4, 100, 84);
    static const size_t cuts[][2] = {{0, 2}, {44, 0}, {2, 42}, {64, 20}, {4, 0}};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        size_t at = cuts[k][0];
        if (at)
            mp_assert_int(write(p[1], msg, at), (ssize_t)at);
        memset(b, 0, sizeof *b);
        targ_t ia = {.b = b, .in = r, .id = 0, .size = 100, .key = 84, .timeout = MP_FOREVER};
        mp_party_start(&y, 0, t_recv_into1, &ia, sizeof ia);
        mp_test_wait_word(&b->ready, 1, "the receiver (into)");
        if (cuts[k][1]) {
            mp_test_wait_asleep(b->tid[0], "the receiver between pieces");
            mp_assert_int(write(p[1], msg + at, cuts[k][1]), (ssize_t)cuts[k][1]);
            at += cuts[k][1];
        }
        mp_test_wait_asleep(b->tid[0], "the receiver before the last piece");
        mp_assert_int(write(p[1], msg + at, sizeof msg - at), (ssize_t)(sizeof msg - at));
        mp_assert_int(mp_party_join(&y), 0);
        if (b->rc[0] != 0 || b->rc2[0] != 0 || b->cnt[0] != 100)
            mp_test_fail("a frame in pieces (case %zu): rc %d, check %d, %lld bytes\n", k,
                         (int)b->rc[0], (int)b->rc2[0], (long long)b->cnt[0]);
    }
    mp_conn_free(r);
    mp_conn_free(w);
    mp__arena_free(b);
}

/* NULL arguments and NaN timeouts: -EINVAL from every call, nothing sent or
 * consumed (a message waiting stays there). */
static void bad_args(void **state)
{
    mp_conn_t *a, *b, *keep = NULL;
    mp_assert_int(mp_pipe(NULL, &keep, 1), -EINVAL);
    mp_assert_int(mp_pipe(&keep, NULL, 0), -EINVAL);
    mp_assert_int(mp_pipe(NULL, NULL, 1), -EINVAL);
    assert_null(keep);
    pipe_new(&a, &b, 1);
    void *p = NULL;
    size_t len = 0;
    char buf[8];
    mp_val_t v = mp_val_int(1), *out = NULL;

    mp_assert_int(mp_conn_send_bytes(NULL, "x", 1), -EINVAL);
    mp_assert_int(mp_conn_send_bytes(a, NULL, 1), -EINVAL);
    mp_assert_int(mp_conn_send_bytes_at(NULL, "x", 1, 0, 1), -EINVAL);
    mp_assert_int(mp_conn_send(NULL, &v), -EINVAL);
    mp_assert_int(mp_conn_send(a, NULL), -EINVAL);
    mp_assert_int(mp_conn_poll(b, 0), 0);

    mp_assert_int(mp_conn_recv_bytes(NULL, &p, &len, 0, 0), -EINVAL);
    mp_assert_int(mp_conn_recv_bytes(b, NULL, &len, 0, 0), -EINVAL);
    mp_assert_int(mp_conn_recv_bytes(b, &p, NULL, 0, 0), -EINVAL);
    mp_assert_int(mp_conn_recv_bytes_into(NULL, buf, sizeof buf, 0, &len, 0), -EINVAL);
    mp_assert_int(mp_conn_recv_bytes_into(b, NULL, sizeof buf, 0, &len, 0), -EINVAL);
    mp_assert_int(mp_conn_recv_bytes_into(b, buf, sizeof buf, 0, NULL, 0), -EINVAL);
    mp_assert_int(mp_conn_recv(NULL, &out, 0, 0), -EINVAL);
    mp_assert_int(mp_conn_recv(b, NULL, 0, 0), -EINVAL);
    mp_assert_int(mp_conn_poll(NULL, 0), -EINVAL);
    mp_assert_int(mp_conn_fileno(NULL), -EINVAL);

    /* Pointers that are not handles, on the fast paths too (a small send,
     * a receive without a deadline): inside a handle, slots never handed
     * out (in the table and past it), below the table, and the caller's
     * memory. */
    char local[64] = {0};
    mp_conn_t *fakes[] = {
        (mp_conn_t *)((char *)a + 1), (mp_conn_t *)((char *)b + 8),
        (mp_conn_t *)((char *)b + (size_t)64 * 400000),
        (mp_conn_t *)((char *)b + (size_t)64 * (1u << 20)),
        (mp_conn_t *)((char *)a - (size_t)64 * 100000),
        (mp_conn_t *)local, (mp_conn_t *)(uintptr_t)64,
    };
    for (size_t k = 0; k < sizeof fakes / sizeof fakes[0]; k++) {
        mp_assert_int(mp_conn_send_bytes(fakes[k], "x", 1), -EINVAL);
        mp_assert_int(mp_conn_recv_bytes_into(fakes[k], buf, sizeof buf, 0, &len,
                                              MP_FOREVER), -EINVAL);
        mp_assert_int(mp_conn_recv_bytes(fakes[k], &p, &len, 0, MP_FOREVER), -EINVAL);
        mp_assert_int(mp_conn_poll(fakes[k], 0), -EINVAL);
        mp_assert_int(mp_conn_fileno(fakes[k]), -EINVAL);
    }
    mp_assert_int(mp_conn_poll(b, 0), 0);

    /* NaN on an empty pipe (must not wait forever nor time out). */
    double t0 = mp_test_now();
    mp_assert_int(mp_conn_recv_bytes(b, &p, &len, 0, NAN), -EINVAL);
    mp_assert_int(mp_conn_recv_bytes_into(b, buf, sizeof buf, 0, &len, NAN), -EINVAL);
    mp_assert_int(mp_conn_recv(b, &out, 0, NAN), -EINVAL);
    mp_assert_int(mp_conn_poll(b, NAN), -EINVAL);
    mp_waitable_t wb = mp_waitable_conn(b);
    mp_assert_int(mp_wait(&wb, 1, NAN), -EINVAL);
    mp_test_check_quick(mp_test_now() - t0, "calls with a NaN timeout");

    /* With a message waiting: still -EINVAL, and the message stays. */
    mp_assert_int(mp_conn_send_bytes(a, "kept", 4), 0);
    mp_assert_int(mp_conn_poll(b, MP_TEST_LONG), 1);
    mp_assert_int(mp_conn_recv_bytes(b, &p, &len, 0, NAN), -EINVAL);
    mp_assert_int(mp_conn_recv_bytes_into(b, buf, sizeof buf, 0, &len, NAN), -EINVAL);
    mp_assert_int(mp_conn_poll(b, NAN), -EINVAL);
    mp_assert_int(mp_conn_recv_bytes(b, NULL, &len, 0, 0), -EINVAL);
    mp_assert_int(mp_conn_recv_bytes_into(b, buf, sizeof buf, 0, NULL, 0), -EINVAL);
    expect_str(b, "kept", "the message waiting during the refused calls");
    mp_assert_int(mp_conn_poll(b, 0), 0);
    assert_null(out);
    mp_conn_free(a);
    mp_conn_free(b);
}

/* The SIGPIPE disposition in a fresh process (cold sub-children): the first
 * connection (mp_pipe, or mp_conn_from_fd) sets SIG_IGN when it was the
 * default, so a send to a closed reader is -EPIPE; a handler the program
 * installed is left alone (it runs, and the send is -EPIPE). */
static volatile sig_atomic_t g_sigpipes;
static void on_sigpipe(int sig) { (void)sig; g_sigpipes++; }

static int cold_sigpipe_sub(int mode)
{
    struct sigaction sa;
    sigaction(SIGPIPE, NULL, &sa);
    if (sa.sa_handler != SIG_DFL)
        return 2;
    if (mode == 2) {
        struct sigaction h;
        memset(&h, 0, sizeof h);
        h.sa_handler = on_sigpipe;
        sigemptyset(&h.sa_mask);
        sigaction(SIGPIPE, &h, NULL);
    }
    mp_conn_t *r = NULL, *w = NULL;
    if (mode == 1) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) != 0)
            return 3;
        if (mp_conn_from_fd(&w, p[1], 0, 1) != 0)
            return 3;
        close(p[0]);
    } else {
        if (mp_pipe(&r, &w, 0) != 0)
            return 3;
        mp_conn_close(r);
    }
    sigaction(SIGPIPE, NULL, &sa);
    if (mode == 2 ? sa.sa_handler != on_sigpipe : sa.sa_handler != SIG_IGN)
        return 4;
    if (mp_conn_send_bytes(w, "x", 1) != -EPIPE)
        return 5;
    if (mode == 2 && g_sigpipes != 1)
        return 6;
    mp_conn_free(r);
    mp_conn_free(w);
    return 0;
}

static void cold_sigpipe(void **state)
{
    static const char *names[] = {"mp_pipe", "mp_conn_from_fd", "a program's handler"};
    for (int mode = 0; mode < 3; mode++) {
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            int code = cold_sigpipe_sub(mode);
            fflush(NULL);
            exit(code);
        }
        int st = 0;
        if (mp_test_waitpid(pid, &st, MP_TEST_LONG) != 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            mp_test_fail("%s: the cold child hung\n", names[mode]);
        }
        if (WIFSIGNALED(st))
            mp_test_fail("%s: the cold child was killed by signal %d%s\n", names[mode],
                         WTERMSIG(st), WTERMSIG(st) == SIGPIPE ? " (SIGPIPE)" : "");
        static const char *why[] = {"ok", "?", "SIGPIPE was not the default at start",
                                    "making the connection failed",
                                    "wrong SIGPIPE disposition after the first connection",
                                    "the send was not -EPIPE",
                                    "the program's handler did not run once"};
        int code = WEXITSTATUS(st);
        if (code != 0)
            mp_test_fail("%s: the cold child exited with %d (%s)\n", names[mode], code,
                         code < 7 ? why[code] : "?");
    }
}

/* Faults in making a pipe: the pipe or socketpair call, or an allocation,
 * failing: the code is returned (-EMFILE, -ENOMEM) and nothing is left
 * behind (descriptors compared after each attempt); a later mp_pipe works. */
static void pipe_faults(void **state)
{
    static const struct {
        mp__sys_id id;
        int err;
        int duplex;
        int must_hit;
        const char *name;
    } f[] = {
        {MP__SYS_PIPE, EMFILE, 0, 1, "pipe (simplex)"},
        {MP__SYS_PIPE, ENFILE, 1, 1, "pipe (duplex: either of its two pipes)"},
        {MP__SYS_MALLOC, ENOMEM, 0, 0, "malloc (simplex)"},
        {MP__SYS_MALLOC, ENOMEM, 1, 0, "malloc (duplex)"},
    };
    static mp_test_fds_t before, after;
    static char msg[4096];
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        int hits = 0;
        for (int nth = 1; nth <= 4; nth++) {
            mp_test_fds_snap(&before);
            mp_conn_t *a = NULL, *b = NULL;
            mp__fault_arm(f[i].id, nth, f[i].err);
            int rc = mp_pipe(&a, &b, f[i].duplex);
            mp__fault_clear();
            if (rc == 0) {
                mp_conn_free(a);
                mp_conn_free(b);
            } else {
                hits++;
                if (rc != -f[i].err)
                    mp_test_fail("%s failing at call %d: mp_pipe returned %d (%s)\n",
                                 f[i].name, nth, rc, mp_strerror(rc));
            }
            mp_test_fds_snap(&after);
            if (mp_test_fds_diff(&before, &after, msg, sizeof msg) > 0)
                mp_test_fail("%s failing at call %d: descriptors differ:%s\n", f[i].name,
                             nth, msg);
        }
        if (f[i].must_hit && hits == 0)
            mp_test_fail("%s: mp_pipe never failed: it does not go through the "
                         "system-call table (mp__sys_*)\n", f[i].name);
    }
    mp_conn_t *a, *b;
    pipe_new(&a, &b, 1);
    mp_assert_int(mp_conn_send_bytes(a, "ok", 2), 0);
    expect_str(b, "ok", "after the faults");
    mp_conn_free(a);
    mp_conn_free(b);
}

/* ============================================================================
 * Hostile peers and the wire format
 * ========================================================================== */

/* A header claiming 2^63 - 1 bytes (escape form) with maxlength 1 MiB:
 * -EMSGSIZE at once, repeatedly (the message stays first in line), with no
 * large allocation; recv_bytes_into says MP_ETOOSHORT with the claimed size;
 * poll says a message waits. */
static void hostile_huge_header(void **state)
{
    mp_conn_t *r;
    int wfd = raw_reader(&r);
    write_header(wfd, 0x7fffffffffffffffULL, 1);
    long pk0 = vm_peak_kib();
    void *p = NULL;
    size_t len = 0;
    mp_assert_int(mp_conn_recv_bytes(r, &p, &len, MiB, MP_TEST_LONG), -EMSGSIZE);
    mp_assert_int(mp_conn_recv_bytes(r, &p, &len, MiB, 0), -EMSGSIZE);
    mp_assert_int(mp_conn_poll(r, 0), 1);
    char small[16];
    size_t got = 0;
    mp_assert_int(mp_conn_recv_bytes_into(r, small, sizeof small, 0, &got, 0),
                  MP_ETOOSHORT);
    mp_assert_int(got == (size_t)0x7fffffffffffffffULL, 1);
    mp_val_t *v = NULL;
    mp_assert_int(mp_conn_recv(r, &v, MiB, 0), -EMSGSIZE);
    long pk1 = vm_peak_kib();
    if (pk1 - pk0 > 64 * 1024)
        mp_test_fail("a 2^63-byte header with maxlength 1 MiB made the peak virtual "
                     "size grow by %ld MiB\n", (pk1 - pk0) / 1024);
    close(wfd);
    mp_conn_free(r);
}

/* Headers claiming 16 GiB (escape form) and 2 GiB - 1 with no maxlength,
 * followed by a few bytes and the writer's close: -EPROTO (end of file inside
 * a message), not -ENOMEM, and memory grew with what arrived, not with what
 * the header claimed. */
static void hostile_claim_no_limit(void **state)
{
    static const struct {
        uint64_t claim;
        int escape;
    } k[] = {{16ULL * GiB, 1}, {0x7fffffff, 0}, {5ULL * GiB, 1}};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        mp_conn_t *r;
        int wfd = raw_reader(&r);
        write_header(wfd, k[i].claim, k[i].escape);
        char junk[1000];
        mp_test_pat_fill(junk, sizeof junk, 3);
        write_all(wfd, junk, sizeof junk);
        close(wfd);
        long pk0 = vm_peak_kib();
        void *p = NULL;
        size_t len = 0;
        int rc = mp_conn_recv_bytes(r, &p, &len, 0, MP_TEST_LONG);
        long pk1 = vm_peak_kib();
        if (rc != -EPROTO)
            mp_test_fail("a header claiming %" PRIu64 " bytes, 1000 sent, then end of "
                         "file: recv_bytes returned %d (%s), expected -EPROTO\n",
                         k[i].claim, rc, mp_strerror(rc));
        if (pk1 - pk0 > 256 * 1024)
            mp_test_fail("a header claiming %" PRIu64 " bytes (1000 sent) made the peak "
                         "virtual size grow by %ld MiB: memory follows the header\n",
                         k[i].claim, (pk1 - pk0) / 1024);
        expect_code(r, 0, -EPROTO, "again: the connection is broken");
        mp_conn_free(r);
    }
}

/* Truncated frames then the writer's close: -EPROTO, and again -EPROTO:
 * a payload cut short, a header cut short, an escaped length cut short. A
 * clean close between frames is MP_EEOF. */
static void hostile_truncated(void **state)
{
    for (int kind = 0; kind < 4; kind++) {
        mp_conn_t *r;
        int wfd = raw_reader(&r);
        unsigned char h[12];
        char pay[50];
        mp_test_pat_fill(pay, sizeof pay, 6);
        /* A whole frame first: it must still arrive. */
        write_header(wfd, 3, 0);
        write_all(wfd, "abc", 3);
        switch (kind) {
        case 0: /* header 100, 50 bytes */
            write_header(wfd, 100, 0);
            write_all(wfd, pay, sizeof pay);
            break;
        case 1: /* 2 bytes of a header */
            put_be32(h, 100);
            write_all(wfd, h, 2);
            break;
        case 2: /* the escape and 3 bytes of the 8-byte length */
            put_be32(h, 0xffffffffu);
            write_all(wfd, h, 4);
            write_all(wfd, "\0\0\0", 3);
            break;
        default: /* clean: nothing more */
            break;
        }
        close(wfd);
        expect_str(r, "abc", "the whole frame before the truncated one");
        int want = kind == 3 ? MP_EEOF : -EPROTO;
        expect_code(r, MP_TEST_LONG, want, kind == 0   ? "a payload cut short"
                                           : kind == 1 ? "a header cut short"
                                           : kind == 2 ? "an escaped length cut short"
                                                       : "a clean end of file");
        expect_code(r, MP_TEST_LONG, want, "the same, again");
        mp_conn_free(r);
    }
}

/* A peer that stalls inside a frame: after the header, after a part of the
 * body (through recv_bytes and recv_bytes_into), after 2 bytes of the
 * header, after the escape and 3 bytes of its length. The receive times out
 * (-ETIMEDOUT, about 0.2 s) and loses nothing: once the rest arrives, the
 * message is received whole, and the good frame after it too. */
static void hostile_stall(void **state)
{
    static const char *names[] = {"a header then silence",
                                  "a header, 10 bytes, then silence",
                                  "a header, 10 bytes, then silence (recv_bytes_into)",
                                  "2 bytes of a header then silence",
                                  "the escape, 3 bytes of its length, then silence"};
    for (int kind = 0; kind < 5; kind++) {
        mp_conn_t *r;
        int wfd = raw_reader(&r);
        unsigned char frame[12 + 100];
        size_t hl;
        if (kind == 4) {
            put_be32(frame, 0xffffffffu);
            put_be64(frame + 4, 100);
            hl = 12;
        } else {
            put_be32(frame, 100);
            hl = 4;
        }
        mp_test_pat_fill(frame + hl, 100, 7);
        size_t total = hl + 100;
        size_t first = kind == 0 ? 4 : kind == 1 || kind == 2 ? 14 : kind == 3 ? 2 : 7;
        write_all(wfd, frame, first);
        double t0 = mp_test_now();
        if (kind == 2) {
            unsigned char buf[200];
            size_t got = 0;
            int rc = mp_conn_recv_bytes_into(r, buf, sizeof buf, 0, &got, 0.2);
            if (rc != -ETIMEDOUT)
                mp_test_fail("%s: %d (%s)\n", names[kind], rc, mp_strerror(rc));
        } else {
            expect_code(r, 0.2, -ETIMEDOUT, names[kind]);
        }
        mp_test_check_timed(mp_test_now() - t0, 0.2, names[kind]);
        write_all(wfd, frame + first, total - first);
        write_header(wfd, 2, 0);
        write_all(wfd, "ok", 2);
        expect_pat(r, 100, 7, names[kind]);
        expect_str(r, "ok", "the frame after it");
        close(wfd);
        mp_conn_free(r);
    }
    /* A timeout before the first byte leaves the connection as it was. */
    mp_conn_t *r;
    int wfd = raw_reader(&r);
    expect_code(r, 0.1, -ETIMEDOUT, "nothing sent");
    write_header(wfd, 2, 0);
    write_all(wfd, "ok", 2);
    expect_str(r, "ok", "after a timeout before any byte");
    close(wfd);
    mp_conn_free(r);
}

/* Negative lengths (0x80000000, 0xfffffffe) are -EPROTO, with or without a
 * maxlength (a negative length is not "longer than maxlength"). */
static void hostile_negative_length(void **state)
{
    static const uint32_t lens[] = {0x80000000u, 0xfffffffeu, 0x80000000u};
    for (int i = 0; i < 3; i++) {
        mp_conn_t *r;
        int wfd = raw_reader(&r);
        write_header(wfd, lens[i], 0);
        char pay[16] = {0};
        write_all(wfd, pay, sizeof pay);
        void *p = NULL;
        size_t len = 0;
        size_t maxlen = i == 2 ? MiB : 0;
        int rc = mp_conn_recv_bytes(r, &p, &len, maxlen, MP_TEST_LONG);
        if (rc == 0)
            free(p);
        if (rc != -EPROTO)
            mp_test_fail("length 0x%08x (maxlength %zu): recv_bytes returned %d (%s), "
                         "expected -EPROTO\n", lens[i], maxlen, rc, mp_strerror(rc));
        close(wfd);
        mp_conn_free(r);
    }
}

/* Frames written by hand in Python's format, several in one write: a short
 * one, an empty one, one in the escape form (legal for any size), one of 256
 * bytes; then a clean end of file. */
static void wire_raw_frames(void **state)
{
    mp_conn_t *r;
    int wfd = raw_reader(&r);
    unsigned char buf[512];
    size_t n = 0;
    put_be32(buf + n, 5);
    memcpy(buf + n + 4, "hello", 5);
    n += 9;
    put_be32(buf + n, 0);
    n += 4;
    put_be32(buf + n, 0xffffffffu);
    put_be64(buf + n + 4, 5);
    memcpy(buf + n + 12, "world", 5);
    n += 17;
    put_be32(buf + n, 256);
    mp_test_pat_fill(buf + n + 4, 256, 99);
    n += 260;
    write_all(wfd, buf, n);
    close(wfd);
    expect_str(r, "hello", "a 4-byte-header frame");
    expect_str(r, "", "an empty frame");
    expect_str(r, "world", "an escaped frame");
    expect_pat(r, 256, 99, "a 256-byte frame");
    expect_code(r, MP_TEST_LONG, MP_EEOF, "end of file after the frames");
    mp_conn_free(r);
}

/* What mp_conn_send_bytes (and _at, and mp_conn_send) writes is exactly a
 * 4-byte big-endian length then the bytes, read raw from the other end, on a
 * wrapped raw pipe and on both kinds of mp_pipe. */
static void expect_raw(int fd, const void *payload, size_t len, const char *what)
{
    unsigned char *got = malloc(len + 4);
    assert_non_null(got);
    ssize_t n = mp_test_read_full(fd, got, len + 4, MP_TEST_LONG);
    if (n != (ssize_t)(len + 4))
        mp_test_fail("%s: read %zd raw bytes, expected %zu\n", what, n, len + 4);
    uint32_t h = (uint32_t)got[0] << 24 | (uint32_t)got[1] << 16 | (uint32_t)got[2] << 8 |
                 got[3];
    if (h != len)
        mp_test_fail("%s: the header says %u (%02x %02x %02x %02x), expected %zu in "
                     "big-endian\n", what, h, got[0], got[1], got[2], got[3], len);
    if (len && memcmp(got + 4, payload, len) != 0)
        mp_test_fail("%s: the bytes after the header are not the message\n", what);
    free(got);
    if (mp_test_fd_readable(fd, 0) != 0)
        mp_test_fail("%s: more bytes follow the frame\n", what);
}

static void wire_send_format(void **state)
{
    for (int kind = 0; kind < 3; kind++) {
        mp_conn_t *r = NULL, *w = NULL;
        int rfd;
        const char *name = kind == 0 ? "wrapped raw pipe" : kind == 1 ? "simplex"
                                                                      : "duplex";
        if (kind == 0) {
            int p[2];
            assert_int_equal(pipe2(p, O_CLOEXEC), 0);
            mp_assert_int(mp_conn_from_fd(&w, p[1], 0, 1), 0);
            rfd = p[0];
        } else {
            pipe_new(&r, &w, kind == 2);
            rfd = mp_conn_fileno(r);
        }
        char what[96];
        snprintf(what, sizeof what, "%s: \"hello\"", name);
        mp_assert_int(mp_conn_send_bytes(w, "hello", 5), 0);
        expect_raw(rfd, "hello", 5, what);
        snprintf(what, sizeof what, "%s: an empty message", name);
        mp_assert_int(mp_conn_send_bytes(w, NULL, 0), 0);
        expect_raw(rfd, "", 0, what);
        snprintf(what, sizeof what, "%s: a slice", name);
        mp_assert_int(mp_conn_send_bytes_at(w, "abcdefgh", 8, 2, 3), 0);
        expect_raw(rfd, "cde", 3, what);
        size_t big = 30000;
        unsigned char *pay = malloc(big);
        assert_non_null(pay);
        mp_test_pat_fill(pay, big, 17);
        snprintf(what, sizeof what, "%s: 30000 bytes", name);
        mp_assert_int(mp_conn_send_bytes(w, pay, big), 0);
        expect_raw(rfd, pay, big, what);
        free(pay);
        /* A value: the frame holds exactly mp_val_pack's bytes. */
        mp_val_t items[3] = {mp_val_int(1), mp_val_str("two"), mp_val_float(3.5)};
        mp_val_t v = mp_val_array(items, 3);
        void *packed = NULL;
        size_t plen = 0;
        mp_assert_int(mp_val_pack(&v, &packed, &plen), 0);
        mp_assert_int(mp_conn_send(w, &v), 0);
        snprintf(what, sizeof what, "%s: a value", name);
        expect_raw(rfd, packed, plen, what);
        free(packed);
        if (kind == 0) {
            mp_conn_free(w);
            close(rfd);
        } else {
            mp_conn_free(r);
            mp_conn_free(w);
        }
    }
}

/* ============================================================================
 * Structured values
 * ========================================================================== */

/* A nested value (arrays, maps, strings, integers at the limits, floats
 * including -0.0, bytes with zeros, nil, booleans, empty containers) sent
 * with mp_conn_send comes back equal from mp_conn_recv; maxlength bounds
 * it as for bytes. */
static void values_roundtrip(void **state)
{
    static const unsigned char raw[] = {0, 1, 2, 0xff, 0, 0x80};
    mp_val_t inner[] = {mp_val_int(1), mp_val_int(-2), mp_val_int(INT64_MIN),
                        mp_val_int(INT64_MAX), mp_val_uint(UINT64_MAX),
                        mp_val_float(2.5), mp_val_float(-0.0), mp_val_float(0.1),
                        mp_val_nil(), mp_val_bool(true), mp_val_bool(false),
                        mp_val_str("str\xc3\xa9"), mp_val_bytes(raw, sizeof raw),
                        mp_val_strn("a\0b", 3), mp_val_array(NULL, 0),
                        mp_val_map(NULL, 0), mp_val_str("")};
    mp_val_kv_t deep_kv[] = {{mp_val_str("x"), mp_val_array(inner, 3)},
                             {mp_val_int(7), mp_val_nil()}};
    mp_val_kv_t kv[] = {{mp_val_str("a"), mp_val_array(inner, sizeof inner / sizeof inner[0])},
                        {mp_val_str("nested"), mp_val_map(deep_kv, 2)},
                        {mp_val_str("empty"), mp_val_str("")},
                        {mp_val_bytes(raw, 2), mp_val_bool(true)}};
    mp_val_t top = mp_val_map(kv, sizeof kv / sizeof kv[0]);
    mp_val_t scalars[] = {mp_val_nil(), mp_val_int(0), mp_val_str("hello"),
                          mp_val_bytes(NULL, 0), mp_val_float(1e300)};

    mp_conn_t *a, *b;
    pipe_new(&a, &b, 1);
    mp_assert_int(mp_conn_send(a, &top), 0);
    mp_val_t *out = NULL;
    mp_assert_int(mp_conn_recv(b, &out, 0, MP_TEST_LONG), 0);
    assert_non_null(out);
    mp_assert_int(mp_val_equal(out, &top), 1);
    mp_val_free(out);
    out = NULL;
    for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++) {
        mp_assert_int(mp_conn_send(b, &scalars[i]), 0);
        mp_assert_int(mp_conn_recv(a, &out, 0, MP_TEST_LONG), 0);
        if (!mp_val_equal(out, &scalars[i]))
            mp_test_fail("scalar %zu did not come back equal\n", i);
        mp_val_free(out);
        out = NULL;
    }
    /* maxlength: too long (-EMSGSIZE, kept), then whole. */
    void *packed = NULL;
    size_t plen = 0;
    mp_assert_int(mp_val_pack(&top, &packed, &plen), 0);
    free(packed);
    mp_assert_int(mp_conn_send(a, &top), 0);
    mp_assert_int(mp_conn_recv(b, &out, plen - 1, MP_TEST_LONG), -EMSGSIZE);
    assert_null(out);
    mp_assert_int(mp_conn_recv(b, &out, plen, MP_TEST_LONG), 0);
    mp_assert_int(mp_val_equal(out, &top), 1);
    mp_val_free(out);
    /* A value and bytes interleave: recv_bytes gets the packed value. */
    mp_assert_int(mp_conn_send(a, &scalars[2]), 0);
    mp_assert_int(mp_conn_send_bytes(a, "raw", 3), 0);
    void *p = NULL;
    size_t len = 0;
    mp_assert_int(mp_conn_recv_bytes(b, &p, &len, 0, MP_TEST_LONG), 0);
    mp_val_t *u = NULL;
    mp_assert_int(mp_val_unpack(p, len, &u), 0);
    mp_assert_int(mp_val_equal(u, &scalars[2]), 1);
    mp_val_free(u);
    free(p);
    expect_str(b, "raw", "bytes after a value");
    mp_assert_int(mp_conn_poll(b, 0), 0);
    mp_conn_free(a);
    mp_conn_free(b);
}

/* A message that is not one valid msgpack value (a reserved byte, trailing
 * bytes, an empty message, a truncated array) is -EBADMSG and consumed: the
 * connection stays usable. A malformed value to send is -EINVAL, nothing
 * sent. */
static void values_bad(void **state)
{
    mp_conn_t *a, *b;
    pipe_new(&a, &b, 1);
    static const unsigned char bad1[] = {0xc1};
    static const unsigned char bad2[] = {0x01, 0x02};        /* 1, then a trailing 2 */
    static const unsigned char bad3[] = {0x93, 0x01, 0x02};  /* array of 3, 2 items */
    static const struct {
        const void *p;
        size_t n;
        const char *name;
    } bad[] = {{bad1, 1, "0xc1"}, {bad2, 2, "trailing bytes"}, {"", 0, "empty"},
               {bad3, 3, "a truncated array"}};
    mp_val_t good = mp_val_str("fine");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mp_assert_int(mp_conn_send_bytes(a, bad[i].p, bad[i].n), 0);
        mp_assert_int(mp_conn_send(a, &good), 0);
        mp_val_t *out = NULL;
        int rc = mp_conn_recv(b, &out, 0, MP_TEST_LONG);
        if (rc != -EBADMSG)
            mp_test_fail("%s: recv returned %d (%s), expected -EBADMSG\n", bad[i].name, rc,
                         mp_strerror(rc));
        assert_null(out);
        mp_assert_int(mp_conn_recv(b, &out, 0, MP_TEST_LONG), 0);
        mp_assert_int(mp_val_equal(out, &good), 1);
        mp_val_free(out);
    }
    mp_val_t broken = mp_val_strn(NULL, 5);
    mp_assert_int(mp_conn_send(a, &broken), -EINVAL);
    mp_val_t odd;
    memset(&odd, 0, sizeof odd);
    odd.type = (mp_val_type_t)99;
    mp_assert_int(mp_conn_send(a, &odd), -EINVAL);
    mp_assert_int(mp_conn_poll(b, 0), 0);
    mp_conn_free(a);
    mp_conn_free(b);
}

/* ============================================================================
 * Across processes (every start method)
 * ========================================================================== */

static const size_t k_echo_sizes[] = {0, 1, 4, 5, 4095, 65535, 65536, 65537,
                                      MiB + 3, 16 * MiB};
#define NECHO (sizeof k_echo_sizes / sizeof k_echo_sizes[0])

/* A child receives on one simplex pipe and replies on another (the handles
 * passed in its argument, at the same descriptor numbers); the parent closes
 * the child's ends at once after start (Python's test_spawn_close). Sizes up
 * to 16 MiB, checked byte by byte; then the parent closes its writer, the
 * child sees EOF and closes its own, and the parent sees EOF. */
static void echo_child_simplex(void **state)
{
    board_t *b = board_new();
    mp_conn_t *r1, *w1, *r2, *w2;
    pipe_new(&r1, &w1, 0);
    pipe_new(&r2, &w2, 0);
    int fin = mp_conn_fileno(r1), fout = mp_conn_fileno(w2);
    static mp_party_t y;
    targ_t a = {.b = b, .in = r1, .out = w2, .drop = {w1, r2}, .id = 0, .n = -1};
    mp_party_start(&y, 1, t_echo, &a, sizeof a);
    mp_conn_close(r1);
    mp_conn_close(w2);
    char what[64];
    for (size_t i = 0; i < NECHO; i++) {
        mp_assert_int(send_pat(w1, k_echo_sizes[i], 700 + i), 0);
        snprintf(what, sizeof what, "echo of %zu bytes", k_echo_sizes[i]);
        expect_pat(r2, k_echo_sizes[i], 700 + i, what);
    }
    mp_conn_close(w1);
    expect_code(r2, MP_TEST_LONG, MP_EEOF, "the child closed its writer");
    check_child(mp_party_join(&y), 0, b, 0, "the echoing child");
    mp_assert_int(b->fd[0][0], fin);
    mp_assert_int(b->fd[0][1], fout);
    mp_conn_free(r1);
    mp_conn_free(w1);
    mp_conn_free(r2);
    mp_conn_free(w2);
    mp__arena_free(b);
}

/* The same through one duplex pipe: the child receives and replies on its
 * end; values too (mp_conn_send/recv through the byte echo). */
static void echo_child_duplex(void **state)
{
    board_t *b = board_new();
    mp_conn_t *p, *c;
    pipe_new(&p, &c, 1);
    int fc = mp_conn_fileno(c);
    static mp_party_t y;
    targ_t a = {.b = b, .in = c, .out = c, .drop = {p}, .id = 0, .n = (int)NECHO + 1};
    mp_party_start(&y, 1, t_echo, &a, sizeof a);
    mp_conn_close(c);
    char what[64];
    for (size_t i = 0; i < NECHO; i++) {
        mp_assert_int(send_pat(p, k_echo_sizes[i], 800 + i), 0);
        snprintf(what, sizeof what, "duplex echo of %zu bytes", k_echo_sizes[i]);
        expect_pat(p, k_echo_sizes[i], 800 + i, what);
    }
    mp_val_t items[] = {mp_val_int(1), mp_val_float(2.25), mp_val_nil()};
    mp_val_t seq = mp_val_array(items, 3);
    mp_assert_int(mp_conn_send(p, &seq), 0);
    mp_val_t *out = NULL;
    mp_assert_int(mp_conn_recv(p, &out, 0, MP_TEST_LONG), 0);
    mp_assert_int(mp_val_equal(out, &seq), 1);
    mp_val_free(out);
    expect_code(p, MP_TEST_LONG, MP_EEOF, "the child closed its end");
    mp_assert_int(mp_conn_readable(p), 1);
    mp_assert_int(mp_conn_writable(p), 1);
    check_child(mp_party_join(&y), 0, b, 0, "the echoing child");
    mp_assert_int(b->fd[0][0], fc);
    mp_conn_free(p);
    mp_conn_free(c);
    mp__arena_free(b);
}

/* A child blocked in recv_bytes is woken by the parent's send. */
static void recv_woken_by_send_process(void **state)
{
    board_t *b = board_new();
    mp_conn_t *r, *w;
    pipe_new(&r, &w, 0);
    static mp_party_t y;
    targ_t a = {.b = b, .in = r, .drop = {w}, .id = 0, .size = 70000, .key = 9,
                .timeout = CHILD_LONG};
    mp_party_start(&y, 1, t_recv1, &a, sizeof a);
    mp_conn_close(r);
    mp_test_wait_word(&b->ready, 1, "the receiving child");
    mp_test_wait_asleep(b->tid[0], "the receiving child");
    mp_assert_int(mp_test_word_get(&b->done), 0);
    double since = mp_test_now();
    mp_assert_int(send_pat(w, 70000, 9), 0);
    check_child(mp_party_join(&y), 0, b, 0, "the receiver");
    mp_assert_int(b->rc[0], 0);
    mp_assert_int(b->cnt[0], 70000);
    mp_assert_int(b->rc2[0], 0);
    mp_test_check_prompt(b->at[0], since, "the child's recv_bytes");
    mp_conn_free(r);
    mp_conn_free(w);
    mp__arena_free(b);
}

/* A child's copies are its own: it finds both ends open, closes them, sees
 * them closed; the parent's ends still work. */
static void child_close_is_local(void **state)
{
    board_t *b = board_new();
    mp_conn_t *p, *c;
    pipe_new(&p, &c, 1);
    static mp_party_t y;
    targ_t a = {.b = b, .in = p, .out = c, .id = 0};
    mp_party_start(&y, 1, t_close_copies, &a, sizeof a);
    mp_assert_int(mp_party_join(&y), 0);
    mp_assert_int(b->rc[0], 15);
    mp_assert_int(b->fd[0][0], mp_conn_fileno(p));
    mp_assert_int(b->fd[0][1], mp_conn_fileno(c));
    mp_assert_int(mp_conn_closed(p), 0);
    mp_assert_int(mp_conn_closed(c), 0);
    mp_assert_int(mp_conn_send_bytes(p, "still", 5), 0);
    expect_str(c, "still", "after the child closed its copies");
    mp_assert_int(mp_conn_send_bytes(c, "open", 4), 0);
    expect_str(p, "open", "the other way");
    mp_conn_free(p);
    mp_conn_free(c);
    mp__arena_free(b);
}

/* A handle the parent closed (not freed) before the start is still a
 * closed handle in the child, as in the parent: closed() 1, MP_ECLOSED from
 * its calls, under every start method. */
static void closed_handle_in_child(void **state)
{
    board_t *b = board_new();
    mp_conn_t *a, *c;
    pipe_new(&a, &c, 1);
    mp_conn_close(a);
    static mp_party_t y;
    targ_t t = {.b = b, .in = a, .drop = {c}, .id = 0};
    mp_party_start(&y, 1, t_report_closed, &t, sizeof t);
    mp_assert_int(mp_party_join(&y), 0);
    mp_assert_int(b->rc[0], 1);
    if (b->rc2[0] != MP_ECLOSED || b->cnt[0] != MP_ECLOSED || b->fd[0][0] != MP_ECLOSED)
        mp_test_fail("in the child (%s), a handle closed in the parent gives send %d (%s), "
                     "fileno %" PRId64 " (%s), poll %d (%s); in the parent: %d, %d, %d "
                     "(MP_ECLOSED)\n", mp_test_method_name(), b->rc2[0],
                     mp_strerror(b->rc2[0]), b->cnt[0], mp_strerror((int)b->cnt[0]),
                     b->fd[0][0], mp_strerror(b->fd[0][0]), mp_conn_send_bytes(a, "x", 1),
                     mp_conn_fileno(a), mp_conn_poll(a, 0));
    mp_conn_free(a);
    mp_conn_free(c);
    mp__arena_free(b);
}

/* The receive state travels with the handle: a message refused in the parent
 * with -EMSGSIZE (its header read) is received whole by a child; a frame
 * of which the parent kept a part (a stall inside its body) cannot be
 * completed in a spawn or forkserver child, whose copy is broken (-EPROTO);
 * a forked child has a copy of the part and completes it. */
static void recv_state_in_child(void **state)
{
    board_t *b = board_new();
    mp_conn_t *r, *w;
    pipe_new(&r, &w, 0);
    mp_assert_int(send_pat(w, 5000, 51), 0);
    void *p = NULL;
    size_t len = 0;
    mp_assert_int(mp_conn_recv_bytes(r, &p, &len, 100, MP_TEST_LONG), -EMSGSIZE);
    static mp_party_t y;
    targ_t a = {.b = b, .in = r, .drop = {w}, .id = 0, .size = 5000, .key = 51,
                .timeout = CHILD_LONG};
    mp_party_start(&y, 1, t_recv1, &a, sizeof a);
    mp_conn_close(r);
    mp_assert_int(mp_party_join(&y), 0);
    if (b->rc[0] != 0 || b->rc2[0] != 0)
        mp_test_fail("the child received the message refused in the parent with %d (%s), "
                     "%" PRId64 " bytes, check %d\n", b->rc[0], mp_strerror(b->rc[0]),
                     b->cnt[0], b->rc2[0]);

    mp_conn_t *r2;
    int wfd = raw_reader(&r2);
    write_header(wfd, 100, 0);
    char pay[100] = {0};
    write_all(wfd, pay, 10);
    expect_code(r2, 0.05, -ETIMEDOUT, "a stall inside a frame");
    write_all(wfd, pay, sizeof pay - 10);
    write_header(wfd, 1, 0);
    write_all(wfd, "k", 1);
    targ_t a2 = {.b = b, .in = r2, .drop = {w}, .id = 1, .timeout = CHILD_LONG};
    mp_party_start(&y, 1, t_recv1, &a2, sizeof a2);
    mp_assert_int(mp_party_join(&y), 0);
    /* A forked child has a copy of the kept part and completes the frame. */
    mp_assert_int(b->rc[1], mp_test_method() == MP_START_FORK ? 0 : -EPROTO);
    close(wfd);
    mp_conn_free(r);
    mp_conn_free(w);
    mp_conn_free(r2);
    mp__arena_free(b);
}

/* In a child (every start method), sending on a simplex pipe whose every
 * reader is closed returns -EPIPE: the child is not killed by SIGPIPE. */
static void child_epipe(void **state)
{
    board_t *b = board_new();
    mp_event_t *ev = NULL;
    mp_assert_int(mp_event_new(&ev), 0);
    mp_conn_t *r, *w;
    pipe_new(&r, &w, 0);
    static mp_party_t y;
    targ_t a = {.b = b, .out = w, .drop = {r}, .ev = ev, .id = 0};
    mp_party_start(&y, 1, t_send_after_ev, &a, sizeof a);
    mp_test_wait_word(&b->ready, 1, "the child dropped its reader");
    mp_conn_close(r);
    mp_conn_close(w);
    mp_assert_int(mp_event_set(ev), 0);
    int code = mp_party_join(&y);
    if (code == -SIGPIPE)
        mp_test_fail("the child (%s) was killed by SIGPIPE\n", mp_test_method_name());
    mp_assert_int(code, 0);
    mp_assert_int(b->rc[0], -EPIPE);
    mp_conn_free(r);
    mp_conn_free(w);
    mp_event_free(ev);
    mp__arena_free(b);
}

/* A parent holding many connections starts one more child, which uses the
 * last pipe: with 90 duplex pipes (180 connections), and with 128 (256, more
 * than one SCM_RIGHTS message carries, so the forkserver sends them in
 * batches), the start works and so does the pipe, under every method. Over
 * MP__MAX_CONNS (when the descriptor limit lets us open that many), a spawn
 * or forkserver start says -E2BIG, while fork has no limit. */
static void many_connections_over(board_t *b)
{
    struct rlimit rl;
    int np = MP__MAX_CONNS / 2 + 8;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < (rlim_t)(2 * np + 256))
        return; /* cannot hold that many descriptors here */
    mp_conn_t **a = calloc((size_t)np, sizeof *a), **c = calloc((size_t)np, sizeof *c);
    assert_non_null(a);
    assert_non_null(c);
    for (int i = 0; i < np; i++)
        pipe_new(&a[i], &c[i], 1);
    mp_process_t *p = NULL;
    targ_t t = {.b = b, .in = c[0], .out = c[0], .id = 1, .n = 0};
    mp_assert_int(mp_process_new(&p, t_echo, &t, sizeof t, NULL), 0);
    int rc = mp_process_start(p);
    int fork_ = mp_test_method() == MP_START_FORK;
    for (int i = 0; i < np; i++) {
        mp_conn_free(a[i]);
        mp_conn_free(c[i]);
    }
    free(a);
    free(c);
    if (rc == 0)
        mp_assert_int(mp_test_process_join(p), 0); /* joins and frees p */
    else
        mp_process_free(p);
    mp_assert_int(rc, fork_ ? 0 : -E2BIG);
}

static void many_connections_with(board_t *b, int np)
{
    static mp_conn_t *a[128], *c[128];
    for (int i = 0; i < np; i++)
        pipe_new(&a[i], &c[i], 1);
    targ_t t = {.b = b, .in = c[np - 1], .out = c[np - 1], .drop = {a[np - 1]}, .id = 0,
                .n = 1};
    mp_process_t *p = NULL;
    mp_assert_int(mp_process_new(&p, t_echo, &t, sizeof t, NULL), 0);
    int rc = mp_process_start(p);
    if (rc != 0) {
        mp_process_free(p);
        mp_test_fail("with %d connections open, mp_process_start (%s) returned %d (%s)\n",
                     2 * np, mp_test_method_name(), rc, mp_strerror(rc));
    }
    mp_conn_close(c[np - 1]);
    mp_assert_int(send_pat(a[np - 1], 1000, 91), 0);
    expect_pat(a[np - 1], 1000, 91, "the echo through the last pipe");
    check_child(mp_test_process_join(p), 0, b, 0, "the echoing child");
    for (int i = 0; i < np; i++) {
        mp_conn_free(a[i]);
        mp_conn_free(c[i]);
    }
}

static void many_connections_child(void **state)
{
    board_t *b = board_new();
    many_connections_with(b, 90);
    b->ready = 0;
    many_connections_with(b, 128);
    many_connections_over(b);
    mp__arena_free(b);
}

/* One message of 4 GiB + 17 bytes from a child (a sparse buffer: a few
 * pages of payload, the rest zero), received whole by recv_bytes: its length,
 * every payload region (across 2 GiB and 4 GiB, at the end) and a sample of
 * the zero pages; then EOF. */
static void huge_message_4gib(void **state)
{
    if (sizeof(size_t) < 8)
        mp_test_skip("32-bit size_t");
    uint64_t avail = mem_available();
    if (avail < 6ULL * GiB)
        mp_test_skip("only %" PRIu64 " MiB available; the receiver needs 4 GiB",
                     avail / MiB);
    board_t *b = board_new();
    mp_conn_t *r, *w;
    pipe_new(&r, &w, 0);
    static mp_party_t y;
    targ_t a = {.b = b, .out = w, .drop = {r}, .id = 0, .n = 1, .size = HUGE_LEN};
    mp_party_start(&y, 1, t_send_sparse, &a, sizeof a);
    mp_conn_close(w);
    void *vp = NULL;
    size_t len = 0;
    double t0 = mp_test_now();
    int rc = mp_conn_recv_bytes(r, &vp, &len, 0, 240.0 * mp_test_scale());
    unsigned char *p = vp;
    double el = mp_test_now() - t0;
    if (rc != 0)
        mp_test_fail("receiving 4 GiB + 17: %d (%s) after %.1f s\n", rc, mp_strerror(rc),
                     el);
    print_message("4 GiB + 17 bytes received in %.1f s\n", el);
    if (len != HUGE_LEN) {
        free(p);
        mp_test_fail("received %zu bytes, %zu were sent\n", len, (size_t)HUGE_LEN);
    }
    for (size_t i = 0; i < NREGIONS; i++) {
        long off = mp_test_pat_bad(p + k_regions[i].off, k_regions[i].len, k_regions[i].key);
        if (off >= 0) {
            free(p);
            mp_test_fail("the payload at %zu differs at byte %ld of %zu\n",
                         k_regions[i].off, off, k_regions[i].len);
        }
    }
    /* Zero pages: 97 samples of 4 KiB spread over the message, avoiding the
     * payload regions, plus the bytes right around them. */
    for (size_t k = 0; k < 97; k++) {
        size_t off = (HUGE_LEN / 97) * k & ~(size_t)4095;
        int clash = 0;
        for (size_t i = 0; i < NREGIONS; i++)
            if (off < k_regions[i].off + k_regions[i].len &&
                k_regions[i].off < off + 4096)
                clash = 1;
        if (clash || off + 4096 > HUGE_LEN)
            continue;
        long z = zero_bad(p + off, 4096);
        if (z >= 0) {
            free(p);
            mp_test_fail("the zero page at %zu has a non-zero byte at %ld\n", off, z);
        }
    }
    for (size_t i = 0; i < NREGIONS; i++) {
        size_t s = k_regions[i].off, e = s + k_regions[i].len;
        size_t lo = s >= 64 ? s - 64 : 0, hi = e + 64 <= HUGE_LEN ? e + 64 : HUGE_LEN;
        for (size_t o = lo; o < hi; o++) {
            int inside = 0;
            for (size_t j = 0; j < NREGIONS; j++)
                if (o >= k_regions[j].off && o < k_regions[j].off + k_regions[j].len)
                    inside = 1;
            if (!inside && p[o] != 0) {
                free(p);
                mp_test_fail("the byte at %zu, near the payload at %zu, is not zero\n",
                             o, s);
            }
        }
    }
    free(p);
    expect_code(r, MP_TEST_LONG, MP_EEOF, "after the huge message");
    check_child(mp_party_join(&y), 0, b, 0, "the sender of 4 GiB");
    mp_conn_free(r);
    mp_conn_free(w);
    mp__arena_free(b);
}

/* read_frame_raw reads one frame of exactly len bytes raw from fd: its
 * header into hdr (hlen bytes), then the payload in 1 MiB chunks, keeping the
 * first and the last 4 KiB. */
static void read_frame_raw(int fd, unsigned char *hdr, size_t hlen, size_t len,
                           unsigned char *head, unsigned char *tail)
{
    ssize_t n = mp_test_read_full(fd, hdr, hlen, MP_TEST_LONG);
    if (n != (ssize_t)hlen)
        mp_test_fail("reading a header of %zu bytes: %zd\n", hlen, n);
    unsigned char *chunk = malloc(MiB);
    assert_non_null(chunk);
    size_t done = 0;
    while (done < len) {
        size_t want = len - done < MiB ? len - done : MiB;
        if (len - done > MiB && len - done - MiB < 4096)
            want = len - done - 4096; /* keep the last 4 KiB in one chunk */
        n = mp_test_read_full(fd, chunk, want, 120.0 * mp_test_scale());
        if (n != (ssize_t)want)
            break;
        if (done == 0)
            memcpy(head, chunk, 4096);
        if (done + want == len)
            memcpy(tail, chunk + want - 4096, 4096);
        done += want;
    }
    free(chunk);
    if (done < len)
        mp_test_fail("reading the payload at %zu of %zu: %zd\n", done, len, n);
}

/* The wire format at the 2 GiB line, read raw: 2^31 - 1 bytes still take a
 * 4-byte header (0x7fffffff), 2^31 bytes take the escape 0xffffffff then an
 * 8-byte big-endian length (what Python's recv_bytes reads; a 4-byte
 * 0x80000000 would be negative for Python). Sent by a child from a sparse
 * buffer. */
static void wire_escape_2gib(void **state)
{
    if (sizeof(size_t) < 8)
        mp_test_skip("32-bit size_t");
    board_t *b = board_new();
    mp_conn_t *r, *w;
    pipe_new(&r, &w, 0);
    static mp_party_t y;
    /* Two messages: 2^31 bytes, then 2^31 - 1 bytes (same buffer). */
    targ_t a = {.b = b, .out = w, .drop = {r}, .id = 0, .n = 2, .size = 2 * GiB,
                .key = 333};
    mp_party_start(&y, 1, t_send_sparse, &a, sizeof a);
    mp_conn_close(w);
    int fd = mp_conn_fileno(r);
    unsigned char hdr[12], head[4096], tail[4096], want_tail[4096];
    mp_test_pat_fill(want_tail, 4096, 334);
    static const unsigned char esc[12] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0,
                                          0x80, 0, 0, 0};
    read_frame_raw(fd, hdr, 12, 2 * GiB, head, tail);
    if (memcmp(hdr, esc, 12) != 0)
        mp_test_fail("a 2^31-byte message's header is %02x%02x%02x%02x %02x%02x%02x%02x"
                     "%02x%02x%02x%02x, expected ffffffff 0000000080000000\n",
                     hdr[0], hdr[1], hdr[2], hdr[3], hdr[4], hdr[5], hdr[6], hdr[7],
                     hdr[8], hdr[9], hdr[10], hdr[11]);
    mp_assert_int(mp_test_pat_bad(head, 4096, 333), -1);
    mp_assert_int(mp_test_pat_bad(tail, 4096, 334), -1);
    /* The second one is one byte shorter: its last 4 KiB are the buffer's
     * [2 GiB - 4097, 2 GiB - 1). */
    read_frame_raw(fd, hdr, 4, 2 * GiB - 1, head, tail);
    static const unsigned char plain[4] = {0x7f, 0xff, 0xff, 0xff};
    if (memcmp(hdr, plain, 4) != 0)
        mp_test_fail("a (2^31 - 1)-byte message's header is %02x%02x%02x%02x, expected "
                     "7fffffff\n", hdr[0], hdr[1], hdr[2], hdr[3]);
    mp_assert_int(mp_test_pat_bad(head, 4096, 333), -1);
    mp_assert_int(zero_bad(tail, 1), -1);
    assert_memory_equal(tail + 1, want_tail, 4095);
    mp_assert_int(mp_test_read_full(fd, hdr, 1, MP_TEST_LONG), 0); /* end of file */
    check_child(mp_party_join(&y), 0, b, 0, "the sender of 2 GiB");
    mp_conn_free(r);
    mp_conn_free(w);
    mp__arena_free(b);
}

/* ---- Python interoperability -------------------------------------------- */

static const char k_py_echo[] =
    "import sys\n"
    "from multiprocessing.connection import Connection\n"
    "r = Connection(int(sys.argv[1]), writable=False)\n"
    "w = Connection(int(sys.argv[2]), readable=False)\n"
    "n = 0\n"
    "while True:\n"
    "    try:\n"
    "        m = r.recv_bytes()\n"
    "    except EOFError:\n"
    "        break\n"
    "    w.send_bytes(b'py:' + m)\n"
    "    n += 1\n"
    "w.send_bytes(b'eof after %d' % n)\n"
    "w.close()\n";


/* A python3 child (fork + exec with two pipe ends inherited) reads what we
 * send with multiprocessing.connection.Connection.recv_bytes and replies with
 * send_bytes: sizes 0..300000 and a slice; then we close, it sees EOFError,
 * says so and exits; we see EOF. */
static void python_interop(void **state)
{
    char py[4096];
    if (!mp_test_find_python(py, sizeof py))
        mp_test_skip("python3 is not on PATH");
    mp_conn_t *r1, *w1, *r2, *w2;
    pipe_new(&r1, &w1, 0); /* we write w1, Python reads r1 */
    pipe_new(&r2, &w2, 0); /* Python writes w2, we read r2 */
    int fin = mp_conn_fileno(r1), fout = mp_conn_fileno(w2);
    assert_true(fin < 200 && fout < 200);
    char *argv[] = {py, "-c", (char *)k_py_echo, "200", "201", NULL};
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* dup2 gives descriptors without close-on-exec: only these two reach
         * Python (every mproc descriptor is close-on-exec). */
        if (dup2(fin, 200) < 0 || dup2(fout, 201) < 0)
            _exit(126);
        execv(py, argv);
        _exit(127);
    }
    mp_conn_close(r1);
    mp_conn_close(w2);
    static const size_t sizes[] = {5, 0, 1, 16384, 16385, 300000};
    char what[64];
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        mp_assert_int(send_pat(w1, n, 1200 + i), 0);
        void *p = NULL;
        size_t len = 0;
        snprintf(what, sizeof what, "Python's echo of %zu bytes", n);
        int rc = mp_conn_recv_bytes(r2, &p, &len, 0, MP_TEST_LONG);
        if (rc != 0)
            mp_test_fail("%s: %d (%s)\n", what, rc, mp_strerror(rc));
        if (len != n + 3 || memcmp(p, "py:", 3) != 0 ||
            mp_test_pat_bad((char *)p + 3, n, 1200 + i) >= 0) {
            free(p);
            mp_test_fail("%s: got %zu bytes, not 'py:' + the message\n", what, len);
        }
        free(p);
    }
    mp_assert_int(mp_conn_send_bytes_at(w1, "0123456789", 10, 3, 4), 0);
    expect_str(r2, "py:3456", "Python's echo of a slice");
    mp_conn_close(w1);
    expect_str(r2, "eof after 7", "Python saw EOF after 7 messages");
    expect_code(r2, MP_TEST_LONG, MP_EEOF, "Python closed its writer");
    int st = 0;
    if (mp_test_waitpid(pid, &st, MP_TEST_LONG) != 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        mp_test_fail("the python3 child did not exit\n");
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        mp_test_fail("the python3 child ended with %s %d\n",
                     WIFEXITED(st) ? "status" : "signal",
                     WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    mp_conn_free(r1);
    mp_conn_free(w1);
    mp_conn_free(r2);
    mp_conn_free(w2);
}

/* ============================================================================
 * wait
 * ========================================================================== */

/* Connections only: 0 after about the timeout (and at once with 0) with
 * every ready field cleared; after a send, exactly the receiving end is
 * ready; end of file is ready too (Python's test_wait_timeout). */
static void wait_conns(void **state)
{
    mp_conn_t *a, *b, *r, *w;
    pipe_new(&a, &b, 1);
    pipe_new(&r, &w, 0);
    mp_waitable_t ws[3] = {mp_waitable_conn(a), mp_waitable_conn(b), mp_waitable_conn(r)};
    mp_assert_int(ws[0].kind, MP_WAIT_CONN);
    assert_ptr_equal(ws[0].u.conn, a);
    for (int i = 0; i < 3; i++)
        ws[i].ready = 1;
    double t0 = mp_test_now();
    mp_assert_int(mp_wait(ws, 3, 0), 0);
    mp_test_check_quick(mp_test_now() - t0, "wait(0)");
    for (int i = 0; i < 3; i++)
        mp_assert_int(ws[i].ready, 0);
    t0 = mp_test_now();
    mp_assert_int(mp_wait(ws, 3, 0.3), 0);
    mp_test_check_timed(mp_test_now() - t0, 0.3, "wait(0.3) with nothing ready");

    mp_assert_int(mp_conn_send_bytes(a, "x", 1), 0);
    t0 = mp_test_now();
    mp_assert_int(mp_wait(ws, 3, MP_TEST_LONG), 1);
    mp_test_check_quick(mp_test_now() - t0, "wait with a message waiting");
    mp_assert_int(ws[0].ready, 0);
    mp_assert_int(ws[1].ready, 1);
    mp_assert_int(ws[2].ready, 0);
    mp_assert_int(mp_conn_send_bytes(w, "y", 1), 0);
    mp_assert_int(mp_conn_send_bytes(b, "z", 1), 0);
    mp_assert_int(mp_wait(ws, 3, MP_FOREVER), 3);
    for (int i = 0; i < 3; i++)
        mp_assert_int(ws[i].ready, 1);
    expect_str(b, "x", "b");
    expect_str(a, "z", "a");
    expect_str(r, "y", "r");
    mp_assert_int(mp_wait(ws, 3, 0), 0);
    mp_conn_close(w);
    mp_assert_int(mp_wait(ws, 3, MP_TEST_LONG), 1);
    mp_assert_int(ws[2].ready, 1);
    mp_conn_free(a);
    mp_conn_free(b);
    mp_conn_free(r);
    mp_conn_free(w);
}

/* More objects than fit a small array (40 connections): exactly the ends
 * with a message are ready. */
static void wait_many(void **state)
{
    enum { NP = 20 };
    mp_conn_t *a[NP], *c[NP];
    mp_waitable_t ws[2 * NP];
    for (int i = 0; i < NP; i++) {
        pipe_new(&a[i], &c[i], 1);
        ws[2 * i] = mp_waitable_conn(a[i]);
        ws[2 * i + 1] = mp_waitable_conn(c[i]);
    }
    mp_assert_int(mp_wait(ws, 2 * NP, 0.05), 0);
    mp_assert_int(mp_conn_send_bytes(a[3], "1", 1), 0);  /* c[3]: ws[7] */
    mp_assert_int(mp_conn_send_bytes(c[17], "2", 1), 0); /* a[17]: ws[34] */
    mp_assert_int(mp_conn_send_bytes(a[19], "3", 1), 0); /* c[19]: ws[39] */
    mp_assert_int(mp_wait(ws, 2 * NP, MP_TEST_LONG), 3);
    for (int i = 0; i < 2 * NP; i++)
        if (ws[i].ready != (i == 7 || i == 34 || i == 39))
            mp_test_fail("object %d: ready %d\n", i, ws[i].ready);
    for (int i = 0; i < NP; i++) {
        mp_conn_free(a[i]);
        mp_conn_free(c[i]);
    }
}

/* Python's test_wait_integer: a process's sentinel among connections is
 * ready once the child ended (not before); then connections join it. */
static void wait_process(void **state)
{
    board_t *b = board_new();
    mp_event_t *ev = NULL;
    mp_assert_int(mp_event_new(&ev), 0);
    mp_conn_t *a, *c;
    pipe_new(&a, &c, 1);
    static mp_party_t y;
    targ_t t = {.b = b, .drop = {a, c}, .ev = ev, .id = 0};
    mp_party_start(&y, 1, t_wait_ev, &t, sizeof t);
    mp_test_wait_word(&b->ready, 1, "the child");
    mp_waitable_t ws[3] = {mp_waitable_conn(a), mp_waitable_process(y.p),
                           mp_waitable_conn(c)};
    mp_assert_int(ws[1].kind, MP_WAIT_PROCESS);
    assert_ptr_equal(ws[1].u.process, y.p);
    double t0 = mp_test_now();
    mp_assert_int(mp_wait(ws, 3, 0.3), 0);
    mp_test_check_timed(mp_test_now() - t0, 0.3, "wait on a live child");
    double since = mp_test_now();
    mp_assert_int(mp_event_set(ev), 0);
    mp_assert_int(mp_wait(ws, 3, MP_TEST_LONG), 1);
    mp_test_check_prompt(mp_test_now(), since, "wait for the child's end");
    mp_assert_int(ws[0].ready, 0);
    mp_assert_int(ws[1].ready, 1);
    mp_assert_int(ws[2].ready, 0);
    mp_assert_int(mp_conn_send_bytes(a, NULL, 0), 0);
    mp_assert_int(mp_wait(ws, 3, MP_TEST_LONG), 2);
    mp_assert_int(ws[0].ready, 0);
    mp_assert_int(ws[1].ready, 1);
    mp_assert_int(ws[2].ready, 1);
    mp_assert_int(mp_conn_send_bytes(c, NULL, 0), 0);
    mp_assert_int(mp_wait(ws, 3, MP_TEST_LONG), 3);
    mp_assert_int(mp_party_join(&y), 7);
    mp_conn_free(a);
    mp_conn_free(c);
    mp_event_free(ev);
    mp__arena_free(b);
}

/* A plain descriptor: not ready, ready with a byte, ready when hung up. */
static void wait_fd(void **state)
{
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    mp_waitable_t w = mp_waitable_fd(p[0]);
    mp_assert_int(w.kind, MP_WAIT_FD);
    mp_assert_int(w.u.fd, p[0]);
    double t0 = mp_test_now();
    mp_assert_int(mp_wait(&w, 1, 0.2), 0);
    mp_test_check_timed(mp_test_now() - t0, 0.2, "wait on an empty descriptor");
    write_all(p[1], "b", 1);
    mp_assert_int(mp_wait(&w, 1, MP_TEST_LONG), 1);
    mp_assert_int(w.ready, 1);
    char c;
    assert_int_equal(read(p[0], &c, 1), 1);
    mp_assert_int(mp_wait(&w, 1, 0), 0);
    mp_assert_int(w.ready, 0);
    close(p[1]);
    mp_assert_int(mp_wait(&w, 1, MP_TEST_LONG), 1);
    mp_assert_int(w.ready, 1);
    close(p[0]);
}

/* Bad waitables: unknown kinds, NULL connection or process, a closed
 * connection, an unstarted process, a negative descriptor, a NULL array: all
 * -EINVAL, also when another one is ready. */
static void wait_bad_args(void **state)
{
    mp_conn_t *a, *b;
    pipe_new(&a, &b, 1);
    mp_assert_int(mp_conn_send_bytes(a, "ready", 5), 0);
    mp_assert_int(mp_conn_poll(b, MP_TEST_LONG), 1);
    mp_waitable_t ws[2];
    ws[0] = mp_waitable_conn(b);
    mp_assert_int(mp_wait(ws, 1, 0), 1);

    memset(&ws[1], 0, sizeof ws[1]);
    ws[1].kind = (mp_wait_kind_t)0;
    ws[1].u.fd = mp_conn_fileno(b);
    mp_assert_int(mp_wait(ws, 2, 0), -EINVAL);
    ws[1].kind = (mp_wait_kind_t)99;
    mp_assert_int(mp_wait(ws, 2, 0), -EINVAL);
    ws[1] = mp_waitable_conn(NULL);
    mp_assert_int(mp_wait(ws, 2, 0), -EINVAL);
    ws[1] = mp_waitable_process(NULL);
    mp_assert_int(mp_wait(ws, 2, 0), -EINVAL);
    ws[1] = mp_waitable_fd(-1);
    mp_assert_int(mp_wait(ws, 2, 0), -EINVAL);
    mp_assert_int(mp_wait(NULL, 1, 0), -EINVAL);
    mp_assert_int(mp_wait(ws, 1, NAN), -EINVAL);

    mp_conn_t *x, *z;
    pipe_new(&x, &z, 0);
    mp_conn_close(x);
    ws[1] = mp_waitable_conn(x);
    mp_assert_int(mp_wait(ws, 2, 0), -EINVAL);

    mp_process_t *p = NULL;
    targ_t t = {0};
    mp_assert_int(mp_process_new(&p, t_wait_ev, &t, sizeof t, NULL), 0);
    ws[1] = mp_waitable_process(p);
    mp_assert_int(mp_wait(ws, 2, 0), -EINVAL);
    mp_process_free(p);

    expect_str(b, "ready", "the message that waited");
    mp_conn_free(x);
    mp_conn_free(z);
    mp_conn_free(a);
    mp_conn_free(b);
}

/* Python's TestWait.test_wait: four children each send ten messages and
 * close; the parent waits on the four read ends and reads until each one is
 * at EOF: all 40 arrive, in order per child. */
static void wait_four_children(void **state)
{
    board_t *b = board_new();
    mp_conn_t *r[4], *w[4];
    for (int i = 0; i < 4; i++)
        pipe_new(&r[i], &w[i], 0);
    static mp_party_t y[4];
    for (int i = 0; i < 4; i++) {
        targ_t a = {.b = b, .out = w[i], .id = i};
        int k = 0;
        for (int j = 0; j < 4; j++) {
            a.drop[k++] = r[j];
            if (j != i)
                a.drop[k++] = w[j];
        }
        mp_party_start(&y[i], 1, t_send10, &a, sizeof a);
        mp_conn_close(w[i]);
    }
    int next[4] = {0}, open_[4] = {1, 1, 1, 1}, live = 4, total = 0;
    while (live > 0) {
        mp_waitable_t ws[4];
        int map[4], n = 0;
        for (int i = 0; i < 4; i++)
            if (open_[i]) {
                map[n] = i;
                ws[n++] = mp_waitable_conn(r[i]);
            }
        int k = mp_wait(ws, (size_t)n, MP_TEST_LONG);
        if (k <= 0)
            mp_test_fail("wait over %d readers returned %d (%s) with %d messages read\n",
                         n, k, mp_strerror(k), total);
        int nready = 0;
        for (int j = 0; j < n; j++) {
            if (!ws[j].ready)
                continue;
            nready++;
            int i = map[j];
            void *p = NULL;
            size_t len = 0;
            int rc = mp_conn_recv_bytes(r[i], &p, &len, 0, MP_TEST_LONG);
            if (rc == MP_EEOF) {
                open_[i] = 0;
                live--;
                mp_conn_close(r[i]);
                continue;
            }
            if (rc != 0)
                mp_test_fail("reader %d: recv_bytes returned %d (%s)\n", i, rc,
                             mp_strerror(rc));
            char m[32], want[32];
            snprintf(m, sizeof m, "%.*s", (int)(len < 31 ? len : 31), (char *)p);
            free(p);
            snprintf(want, sizeof want, "%d:%d", i, next[i]);
            if (strcmp(m, want) != 0)
                mp_test_fail("reader %d: got \"%s\", expected \"%s\"\n", i, m, want);
            next[i]++;
            total++;
        }
        mp_assert_int(nready, k);
    }
    mp_assert_int(total, 40);
    for (int i = 0; i < 4; i++) {
        mp_assert_int(next[i], 10);
        check_child(mp_party_join(&y[i]), 0, b, i, "a sending child");
    }
    for (int i = 0; i < 4; i++) {
        mp_conn_free(r[i]);
        mp_conn_free(w[i]);
    }
    mp__arena_free(b);
}

int main(int argc, char **argv)
{
    static const mp_test_case_t cases[] = {
        MP_TEST(pipe_duplex),
        MP_TEST(pipe_simplex),
        MP_TEST(roundtrip_sizes),
        MP_TEST(empty_message),
        MP_TEST(boundaries_kept),
        MP_TEST(send_bytes_at),
        MP_TEST(recv_bytes_into),
        MP_TEST(recv_maxlength),
        MP_TEST(poll_timing),
        MP_TEST(poll_woken_by_send),
        MP_TEST(recv_timeout),
        MP_TEST(recv_woken_by_send_thread),
        MP_TEST(send_blocks_until_read),
        MP_TEST(send_epipe),
        MP_TEST(recv_waits_for_rest),
        MP_TEST(recv_deadline_shared),
        MP_TEST(poll_partial_frame),
        MP_TEST(eintr_resumes),
        MP_TEST(eof_after_queued),
        MP_TEST(eof_needs_every_copy),
        MP_TEST(eof_unpassed_copy),
        MP_TEST(eof_when_holder_killed),
        MP_TEST(eof_inside_message),
        MP_TEST(closed_handle),
        MP_TEST(from_fd),
        MP_TEST(from_fd_nonblocking),
        MP_TEST(bad_args),
        MP_TEST_COLD_T(cold_sigpipe, 60),
        MP_TEST(pipe_faults),
        MP_TEST(hostile_huge_header),
        MP_TEST(hostile_claim_no_limit),
        MP_TEST(hostile_truncated),
        MP_TEST(hostile_stall),
        MP_TEST(hostile_negative_length),
        MP_TEST(wire_raw_frames),
        MP_TEST(wire_send_format),
        MP_TEST(values_roundtrip),
        MP_TEST(values_bad),
        MP_TEST_T(echo_child_simplex, 120),
        MP_TEST_T(echo_child_duplex, 120),
        MP_TEST(recv_woken_by_send_process),
        MP_TEST(child_close_is_local),
        MP_TEST(closed_handle_in_child),
        MP_TEST(recv_state_in_child),
        MP_TEST(many_connections_child),
        MP_TEST(child_epipe),
        MP_TEST_T(huge_message_4gib, 300),
        MP_TEST_T(wire_escape_2gib, 300),
        MP_TEST(python_interop),
        MP_TEST(wait_conns),
        MP_TEST(wait_many),
        MP_TEST(wait_process),
        MP_TEST(wait_fd),
        MP_TEST(wait_bad_args),
        MP_TEST(wait_four_children),
    };
    static const mp_test_config_t cfg = {
        .per_method = 1,
        .warmup = warm_conn,
    };
    return mp_test_main(argc, argv, cases, sizeof cases / sizeof cases[0], &cfg);
}

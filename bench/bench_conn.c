/* bench_conn.c: round functions of the connection cases (Pipe, Connection,
 * Listener/Client): one-way messages through a pipe, and round trips over a
 * duplex pipe and over a unix-socket Listener/Client.
 *
 * The cases:
 *   pipe_64b  (param mpb_conn_param_t {64, 0}) messages per second, 64-byte
 *       messages one way, from a producer process to a consumer process.
 *   pipe_1m   (param {1 MiB, 1}) the same with 1 MiB messages, in MB/s
 *       (1 MB = 10^6 bytes: messages/s x 1.048576).
 *   pipe_rtt  microseconds per round trip: the benchmark process (A) sends
 *       a 64-byte message over a duplex pipe, a child (B) sends it back.
 *   listener_rtt  the same over a unix-socket Listener (at a path in a
 *       fresh mkdtemp directory, no authkey): A listens and accepts, B
 *       connects with Client and echoes.
 *
 * One-way rounds follow the queue cases (bench_queue.c) exactly: both ends
 * are child processes made with fork (mproc's with mp_process and the fork
 * start method, raw's with fork()); the consumer starts first and says it
 * is ready, then the producer starts, sends one untimed warm-up message and
 * says it is ready; the benchmark process closes its copies of both ends
 * and sets "go". A message is exactly the case's size: a 16-byte header
 * (seq 0, 1, 2, ...; flags LAST or WARM), 0xa5 filler, seq again in the
 * last 8 bytes. The producer reads the clock at go (t0) and sends until its
 * budget has passed (looking at the clock every 16 messages below 4 KiB,
 * every message from 4 KiB), flagging the last message LAST; the consumer
 * reads the clock when LAST arrives (t1). The value is messages / (t1 - t0)
 * (times the size / 10^6 for MB/s): the interval covers the messages
 * actually received. The consumer checks every message's size, header and
 * trailer and that seq is exactly the next one; the producer's count must
 * equal the consumer's. A fault fails the round with -EPROTO; a worker not
 * done 30 s + 20 x the budget after go is killed (-ETIMEDOUT).
 *
 * Round-trip rounds follow event_pingpong (bench_sync.c): A is the
 * benchmark process, B one child made with fork (mproc: mp_process, raw:
 * fork()). B echoes every message until end of file. A makes one untimed
 * round trip (B has started, and under listener_rtt has connected), then
 * sends and receives until the budget has passed; the value is the elapsed
 * time / round trips in microseconds. A checks that each answer is 64
 * bytes and carries the seq it sent. A then closes its end: B sees end of
 * file and exits with 0, which A checks.
 *
 * The implementations, exactly:
 *   mproc=   mp_pipe(&rd, &wr, 0) (a pipe) for one-way, mp_pipe(.., 1) (two
 *            pipes, one per direction; Python's duplex Pipe and raw= are a
 *            socketpair) for pipe_rtt, mp_listener_new(path) +
 *            mp_listener_accept / mp_client(path) for listener_rtt;
 *            mp_conn_send_bytes to send, mp_conn_recv_bytes_into a reused
 *            buffer of the message's size to receive (the C way to receive
 *            fixed-size messages without an allocation each, as raw does;
 *            the bytes and the framing are Python's).
 *   raw=     one pipe(2) (pipe_64b, pipe_1m) or socketpair(AF_UNIX,
 *            SOCK_STREAM) (pipe_rtt), default buffer sizes: the writer puts
 *            a 4-byte length (host order) just before the payload and
 *            writes both with one write(2) (looping on a partial write); the
 *            reader read(2)s exactly 4 bytes, then exactly the length
 *            (looping on partial reads): two reads per message.
 *   python=  bench/py/conn.py, the same protocols with the fork start
 *            method: Pipe(duplex=False) and send_bytes/recv_bytes for
 *            one-way, Pipe() for pipe_rtt, Listener(path, 'AF_UNIX') and
 *            Client(path) for listener_rtt.
 * MT-safe: no. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "mproc.h"
#include "bench.h"

#define HEADROOM 64   /* bytes before a message a raw write may use */
#define RTT_SIZE 64   /* bytes each way in the round-trip cases */

enum { F_LAST = 1, F_WARM = 2 };

typedef struct {
    uint64_t seq;
    uint32_t zero;
    uint32_t flags;
} chdr_t;

/* ---- helpers ------------------------------------------------------------------ */

static void fill(unsigned char *msg, size_t size, uint64_t seq, uint32_t flags)
{
    chdr_t h = {seq, 0, flags};

    memcpy(msg, &h, sizeof h);
    memcpy(msg + size - sizeof seq, &seq, sizeof seq);
}

/* mproc_recv receives one message into buf; MPB_END at end of file. */
static int mproc_recv(mp_conn_t *c, void *buf, size_t cap, size_t *len)
{
    int rc = mp_conn_recv_bytes_into(c, buf, cap, 0, len, MP_FOREVER);

    return rc == MP_EEOF ? MPB_END : rc;
}

/* ---- children: mproc (mp_process, fork) or raw (fork()) ---------------------------- */

typedef int (*cwork_fn)(void *arg);

typedef struct {
    cwork_fn fn;
    void *arg;     /* valid in the child: a fork copy of the parent's memory */
} cstart_t;

static int child_trampoline(void *arg)
{
    const cstart_t *s = arg;

    return s->fn(s->arg);
}

/* child_start runs fn(arg) in a child made with mp_process (fork start
 * method) when use_mproc, else with fork(). */
static int child_start(mpb_child_t *c, int use_mproc, cwork_fn fn, void *arg)
{
    cstart_t s = {fn, arg};

    memset(c, 0, sizeof *c);
    return mpb_child_start(use_mproc, child_trampoline, &s, sizeof s, &c->mp,
                           &c->pid);
}

/* ---- one-way: pipe_64b, pipe_1m ----------------------------------------------------- */

/* sctl_t is a one-way round's shared memory (MAP_SHARED, before the fork). */
typedef struct {
    _Alignas(64) _Atomic int ready;   /* workers at the starting line */
    _Atomic int go;                   /* set by the parent: start */
    _Atomic int failed;               /* a worker's first error code */
    _Alignas(64) double t0;           /* when the producer started */
    long sent;
    _Alignas(64) double t1;           /* when LAST arrived */
    long got;
} sctl_t;

typedef struct {
    const mpb_conn_param_t *p;
    double seconds;
    int use_mproc;
    sctl_t *ctl;
    mp_conn_t *rd, *wr;   /* mproc */
    int fds[2];           /* raw */
} srun_t;

static int sfault(srun_t *s, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    code = mpb_vfault(&s->ctl->failed, "conn", code, fmt, ap);
    va_end(ap);
    return code;
}

static void s_close_end(srun_t *s, int write_end)
{
    if (s->use_mproc) {
        mp_conn_close(write_end ? s->wr : s->rd);
    } else if (s->fds[write_end] >= 0) {
        close(s->fds[write_end]);
        s->fds[write_end] = -1;
    }
}

static int s_send(srun_t *s, void *msg, size_t len)
{
    return s->use_mproc ? mp_conn_send_bytes(s->wr, msg, len)
                        : mpb_raw_send(s->fds[1], msg, len);
}

static int s_recv(srun_t *s, void *buf, size_t cap, size_t *len)
{
    return s->use_mproc ? mproc_recv(s->rd, buf, cap, len)
                        : mpb_raw_recv(s->fds[0], buf, cap, len);
}

static int s_producer(srun_t *s)
{
    size_t size = s->p->size;
    uint64_t every = size >= 4096 ? 1 : 16, seq = 0;
    unsigned char *base = NULL, *msg;
    double t0;
    int rc;

    s_close_end(s, 0);
    if (posix_memalign((void **)&base, 64, HEADROOM + size) != 0)
        return sfault(s, -ENOMEM, "producer: no buffer");
    msg = base + HEADROOM;
    memset(msg, 0xa5, size);
    fill(msg, size, UINT64_MAX, F_WARM);
    if ((rc = s_send(s, msg, size)) < 0)
        return sfault(s, rc, "producer: warm-up send failed");
    atomic_fetch_add(&s->ctl->ready, 1);
    while (!atomic_load(&s->ctl->go))
        mpb_sleep(20e-6);

    t0 = mpb_now();
    s->ctl->t0 = t0;
    for (;;) {
        uint32_t flags = 0;

        if (seq % every == every - 1 && mpb_now() - t0 >= s->seconds)
            flags = F_LAST;
        fill(msg, size, seq, flags);
        if ((rc = s_send(s, msg, size)) < 0)
            return sfault(s, rc, "producer: send of message %llu failed",
                          (unsigned long long)seq);
        seq++;
        if (flags)
            break;
    }
    s->ctl->sent = (long)seq;
    s_close_end(s, 1);
    free(base);
    return 0;
}

static int s_consumer(srun_t *s)
{
    size_t size = s->p->size, len;
    unsigned char *buf = NULL;
    uint64_t next = 0, tail;
    long n = 0;
    chdr_t h;
    int rc;

    s_close_end(s, 1);
    if (posix_memalign((void **)&buf, 64, size) != 0)
        return sfault(s, -ENOMEM, "consumer: no buffer");
    atomic_fetch_add(&s->ctl->ready, 1);
    for (;;) {
        rc = s_recv(s, buf, size, &len);
        if (rc == MPB_END)
            return sfault(s, -EPROTO, "consumer: end of file after %ld "
                          "messages, before the last one", n);
        if (rc < 0)
            return sfault(s, rc, "consumer: recv failed after %ld messages", n);
        if (len != size)
            return sfault(s, -EPROTO, "consumer: message %ld has %zu bytes, "
                          "not %zu", n, len, size);
        memcpy(&h, buf, sizeof h);
        memcpy(&tail, buf + size - sizeof tail, sizeof tail);
        if (h.flags & F_WARM)
            continue;
        if (tail != h.seq || h.seq != next)
            return sfault(s, -EPROTO, "consumer: message %ld: seq %llu, "
                          "trailer %llu, expected %llu", n,
                          (unsigned long long)h.seq, (unsigned long long)tail,
                          (unsigned long long)next);
        next++;
        n++;
        if (h.flags & F_LAST) {
            s->ctl->t1 = mpb_now();
            break;
        }
    }
    s->ctl->got = n;
    s_close_end(s, 0);
    free(buf);
    return 0;
}

static int s_producer_main(void *arg)
{
    return s_producer(arg) < 0 ? 3 : 0;
}

static int s_consumer_main(void *arg)
{
    return s_consumer(arg) < 0 ? 3 : 0;
}

static int stream_round(const mpb_round_t *r, int use_mproc, double *value)
{
    const mpb_conn_param_t *p = r->c->param;
    srun_t s = {.p = p, .seconds = r->seconds, .use_mproc = use_mproc,
                .fds = {-1, -1}};
    mpb_child_t prod = {0}, cons = {0};
    double deadline;
    int rc, jrc;

    if (p->size < 32)
        return -EINVAL;
    s.ctl = mmap(NULL, sizeof *s.ctl, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (s.ctl == MAP_FAILED)
        return -errno;
    rc = use_mproc ? mp_pipe(&s.rd, &s.wr, 0)
                   : (pipe2(s.fds, O_CLOEXEC) < 0 ? -errno : 0);
    if (rc < 0)
        goto out;

    rc = child_start(&cons, use_mproc, s_consumer_main, &s);
    if (rc == 0)
        rc = mpb_wait_ready(&s.ctl->ready, &s.ctl->failed, 1);
    if (rc == 0)
        rc = child_start(&prod, use_mproc, s_producer_main, &s);
    if (rc == 0)
        rc = mpb_wait_ready(&s.ctl->ready, &s.ctl->failed, 2);
    s_close_end(&s, 0);    /* the parent holds neither end during the round */
    s_close_end(&s, 1);
    if (rc < 0)
        goto kill;

    atomic_store(&s.ctl->go, 1);
    deadline = mpb_now() + 30 + 20 * r->seconds;
    if ((jrc = mpb_child_join(&prod, deadline)) < 0 && rc == 0)
        rc = jrc;
    if ((jrc = mpb_child_join(&cons, deadline)) < 0 && rc == 0)
        rc = jrc;
    if (rc == -ETIMEDOUT)
        fprintf(stderr, "mp_bench: conn: a worker had not finished %.0f s "
                "after the start (lost message?); killed\n",
                30 + 20 * r->seconds);

kill:
    mpb_child_kill(&prod);
    mpb_child_kill(&cons);
    if (atomic_load(&s.ctl->failed) && (rc == 0 || rc == -ECHILD))
        rc = atomic_load(&s.ctl->failed);
    if (rc == 0 && s.ctl->got != s.ctl->sent) {
        fprintf(stderr, "mp_bench: conn: %ld messages sent, %ld received\n",
                s.ctl->sent, s.ctl->got);
        rc = -EPROTO;
    }
    if (rc == 0 && !(s.ctl->t1 > s.ctl->t0))
        rc = -EPROTO;
    if (rc == 0) {
        *value = (double)s.ctl->sent / (s.ctl->t1 - s.ctl->t0);
        if (p->mbps)
            *value *= (double)p->size / 1e6;
    }
out:
    if (use_mproc) {
        mp_conn_free(s.rd);
        mp_conn_free(s.wr);
    }
    munmap(s.ctl, sizeof *s.ctl);
    return rc;
}

int mpb_pipe_stream_mproc_round(const mpb_round_t *r, double *value)
{
    return stream_round(r, 1, value);
}

int mpb_pipe_stream_raw_round(const mpb_round_t *r, double *value)
{
    return stream_round(r, 0, value);
}

/* ---- round trips: pipe_rtt, listener_rtt ---------------------------------------------- */

/* rtt_t says how A and B talk: through mproc connections or a raw socket. */
typedef struct {
    int use_mproc;
    mp_conn_t *a, *b;          /* mproc pipe_rtt: A's end, B's end */
    mp_listener_t *l;          /* mproc listener_rtt: A listens */
    char address[128];         /* listener_rtt: where B connects */
    int fds[2];                /* raw: A's end, B's end */
} rtt_t;

/* echo is B: send back every message until end of file. */
static int echo(void *arg)
{
    rtt_t *t = arg;
    unsigned char base[HEADROOM + RTT_SIZE], *buf = base + HEADROOM;
    mp_conn_t *c = t->b;
    size_t len;
    int rc;

    if (t->use_mproc && t->address[0]) {
        if ((rc = mp_client(&c, t->address, NULL, 30.0)) < 0) {
            fprintf(stderr, "mp_bench: conn: Client(%s): %s\n", t->address,
                    mp_strerror(rc));
            return 2;
        }
    } else if (t->use_mproc) {
        mp_conn_close(t->a);
    } else {
        close(t->fds[0]);
    }
    for (;;) {
        rc = t->use_mproc ? mproc_recv(c, buf, RTT_SIZE, &len)
                          : mpb_raw_recv(t->fds[1], buf, RTT_SIZE, &len);
        if (rc == MPB_END)
            return 0;
        if (rc == 0)
            rc = t->use_mproc ? mp_conn_send_bytes(c, buf, len)
                              : mpb_raw_send(t->fds[1], buf, len);
        if (rc < 0) {
            fprintf(stderr, "mp_bench: conn: echo: %s\n", mp_strerror(rc));
            return 3;
        }
    }
}

/* ping is one round trip of A over c (mproc) or fd (raw). */
static int ping(const rtt_t *t, mp_conn_t *c, unsigned char *msg, uint64_t seq)
{
    unsigned char buf[RTT_SIZE];
    uint64_t got, tail;
    size_t len;
    int rc;

    fill(msg, RTT_SIZE, seq, 0);
    rc = t->use_mproc ? mp_conn_send_bytes(c, msg, RTT_SIZE)
                      : mpb_raw_send(t->fds[0], msg, RTT_SIZE);
    if (rc < 0)
        return rc;
    rc = t->use_mproc ? mproc_recv(c, buf, sizeof buf, &len)
                      : mpb_raw_recv(t->fds[0], buf, sizeof buf, &len);
    if (rc == MPB_END)
        return -EPROTO;
    if (rc < 0)
        return rc;
    memcpy(&got, buf, sizeof got);
    memcpy(&tail, buf + RTT_SIZE - sizeof tail, sizeof tail);
    if (len != RTT_SIZE || got != seq || tail != seq) {
        fprintf(stderr, "mp_bench: conn: answer of %zu bytes with seq %llu, "
                "sent %d bytes with seq %llu\n", len, (unsigned long long)got,
                RTT_SIZE, (unsigned long long)seq);
        return -EPROTO;
    }
    return 0;
}

/* rtt_measure runs A's untimed first round trip and the timed ones. */
static int rtt_measure(const mpb_round_t *r, const rtt_t *t, mp_conn_t *c,
                       double *value)
{
    unsigned char base[HEADROOM + RTT_SIZE], *msg = base + HEADROOM;
    uint64_t seq = 0;
    double t0, elapsed;
    long n = 0;
    int rc;

    memset(msg, 0xa5, RTT_SIZE);
    if ((rc = ping(t, c, msg, seq++)) < 0)   /* untimed: B answers */
        return rc;
    t0 = mpb_now();
    for (;;) {
        if ((rc = ping(t, c, msg, seq++)) < 0)
            return rc;
        n++;
        if ((elapsed = mpb_now() - t0) >= r->seconds)
            break;
    }
    *value = elapsed / (double)n * 1e6;
    return 0;
}

static int rtt_finish(mpb_child_t *b, int rc)
{
    int jrc = mpb_child_join(b, mpb_now() + 30);

    if (jrc < 0 && rc == 0)
        rc = jrc;
    mpb_child_kill(b);
    return rc;
}

int mpb_pipe_rtt_mproc_round(const mpb_round_t *r, double *value)
{
    rtt_t t = {.use_mproc = 1, .fds = {-1, -1}};
    mpb_child_t b = {0};
    int rc = mp_pipe(&t.a, &t.b, 1);

    if (rc < 0)
        return rc;
    if ((rc = child_start(&b, 1, echo, &t)) == 0) {
        mp_conn_close(t.b);
        rc = rtt_measure(r, &t, t.a, value);
        mp_conn_close(t.a);        /* B sees end of file */
        rc = rtt_finish(&b, rc);
    }
    mp_conn_free(t.a);
    mp_conn_free(t.b);
    return rc;
}

int mpb_pipe_rtt_raw_round(const mpb_round_t *r, double *value)
{
    rtt_t t = {.use_mproc = 0};
    mpb_child_t b = {0};
    int rc;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, t.fds) < 0)
        return -errno;
    if ((rc = child_start(&b, 0, echo, &t)) == 0) {
        close(t.fds[1]);
        t.fds[1] = -1;
        rc = rtt_measure(r, &t, NULL, value);
        close(t.fds[0]);           /* B sees end of file */
        t.fds[0] = -1;
        rc = rtt_finish(&b, rc);
    }
    if (t.fds[0] >= 0)
        close(t.fds[0]);
    if (t.fds[1] >= 0)
        close(t.fds[1]);
    return rc;
}

int mpb_listener_rtt_mproc_round(const mpb_round_t *r, double *value)
{
    rtt_t t = {.use_mproc = 1, .fds = {-1, -1}};
    char dir[64];
    mpb_child_t b = {0};
    mp_conn_t *c = NULL;
    int rc;

    snprintf(dir, sizeof dir, "/tmp/mp_bench-conn-XXXXXX");
    if (!mkdtemp(dir))
        return -errno;
    snprintf(t.address, sizeof t.address, "%s/s", dir);
    if ((rc = mp_listener_new(&t.l, t.address, NULL)) < 0)
        goto out;
    if ((rc = child_start(&b, 1, echo, &t)) < 0)
        goto out;
    rc = mp_listener_accept(t.l, &c, 30.0);
    if (rc == 0)
        rc = rtt_measure(r, &t, c, value);
    mp_conn_free(c);               /* B sees end of file */
    rc = rtt_finish(&b, rc);
out:
    mp_listener_free(t.l);         /* removes the socket file */
    unlink(t.address);             /* in case it did not */
    rmdir(dir);
    return rc;
}

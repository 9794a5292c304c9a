/* bench_queue.c: round functions of the queue cases (Queue, SimpleQueue,
 * JoinableQueue): messages per second from producer processes to consumer
 * processes.
 *
 * The cases (param: mpb_queue_param_t):
 *   queue_64b, queue_4k, queue_1m  1 producer -> 1 consumer, messages of
 *       64 B, 4 KiB, 1 MiB through an mp_queue_t.
 *   queue_64b_2p2c  2 producers -> 2 consumers, 64 B, one mp_queue_t; the
 *       total of both producers.
 *   simplequeue_64b  1 -> 1 through an mp_simplequeue_t.
 *   joinable_64b  1 -> 1 through a JoinableQueue: the consumer calls
 *       task_done after each get, the producer calls join after every
 *       JOIN_BATCH puts (the last join ends the round).
 * (CASES=queue selects the queue_* cases; simplequeue_64b and joinable_64b
 * are CASES=simplequeue and CASES=joinable.)
 * The unit is messages per second only: the harness has one unit per case.
 * For MB/s multiply by the message size (queue_4k: x 0.004096, queue_1m:
 * x 1.048576).
 *
 * One round. Every implementation runs the same worker code (below) in
 * processes made with fork: mproc's with mp_process (fork start method), the
 * raw peers' with fork(). The consumers start first and say they are ready
 * (a zmq consumer has bound its socket by then); then the producers start,
 * put one untimed warm-up message each and say they are ready; the benchmark
 * process then sets "go". Process start-up is not timed.
 *
 * A message is exactly the case's size: a 16-byte header (seq: 0, 1, 2, ...
 * per producer; the producer's number; flags LAST or WARM), 0xa5 filler, and
 * seq again in the last 8 bytes. A producer reads the clock when it sees go
 * (t0) and puts messages until its time budget has passed (it looks at the
 * clock every 16 messages below 4 KiB, every message from 4 KiB); the last
 * one is flagged LAST. With one consumer, the consumer reads the clock when
 * it receives the LAST message (t1) and ends; with two, it reads the clock
 * after every message and ends at the end of the stream (mproc: the
 * benchmark process calls mp_queue_close once both producers were joined;
 * get returns MP_EEOF; it closes the queue in the 1 -> 1 cases too, so a
 * consumer that runs dry before LAST fails at once). For joinable_64b t1 is when the producer's last join
 * returned. The value is the number of messages / (latest t1 - earliest t0):
 * the interval covers the messages actually crossing, not just the puts.
 *
 * Checks (a broken queue is an error, not a fast number): every message must
 * have the case's size, a valid producer number and the same seq in header
 * and trailer; with one producer the seq must be exactly the next one, with
 * two each consumer must see every producer's seqs strictly increasing, and
 * over both consumers the seqs of each producer must add up to 0 + 1 + ... +
 * (sent - 1); the messages received must equal the messages sent. A worker
 * that finds a fault prints it and the round fails with -EPROTO. A worker
 * that has not finished 30 s + 20 x the budget after go (a lost message or
 * wake-up) is killed and the round fails with -ETIMEDOUT.
 *
 * Queue bounds: unbounded, for mproc and for the Python peer (Python's
 * default). A producer may run ahead of its consumer; what it put is still
 * received, checked and counted, and the interval ends at the last receipt.
 * Measured (2 CPUs, 0.5 s rounds): mproc's backlog at the end of a round is
 * at most about 40 ms of messages 1 -> 1 and 90 ms in queue_64b_2p2c (tens
 * of MB of arena at most), so no bound is needed. Python's producer runs far
 * ahead (its feeder thread's buffer holds the backlog): a Python round lasts
 * 2-3 s instead of 0.5 s, and in queue_1m its producer grows to about 300 MB.
 * The pipe, mq and zmq peers are bounded by their nature: a 64 KiB pipe, 10
 * messages, a high-water mark of 1000 messages on each side.
 *
 * The peers, exactly:
 *   python=  bench/py/queue.py: the same protocol in Python (fork context):
 *            multiprocessing.Queue() (unbounded), SimpleQueue(),
 *            JoinableQueue(); the messages are bytes objects of the case's
 *            size built with struct (header + filler + trailer), put and get
 *            with the blocking defaults; the 2p2c stream ends with one None
 *            per consumer, put by the main process after joining the
 *            producers.
 *   raw=     one pipe(2) (default 64 KiB capacity); the writer puts a 4-byte
 *            length (host order) just before the message and writes length +
 *            payload with one write(2) (looping on a partial write); the
 *            reader read(2)s exactly 4 bytes, then exactly the length
 *            (looping on partial reads): two reads per message.
 *   mq=      (queue_64b) one POSIX message queue: mq_open(O_CREAT|O_EXCL)
 *            with mq_msgsize 64 and mq_maxmsg 10 (the default
 *            /proc/sys/fs/mqueue/msg_max, so it works unprivileged; less if
 *            msg_max is lower), mq_unlink right after the open (nothing is
 *            left in /dev/mqueue; the descriptor is inherited by fork);
 *            mq_send with priority 0, mq_receive.
 *   zmq=     (queue_64b, built when pkg-config finds libzmq) ZeroMQ PUSH ->
 *            PULL over ipc://<mkdtemp dir>/s: each process makes its own
 *            context after fork; the consumer binds PULL, the producer
 *            connects PUSH; zmq_send / zmq_recv of the message as one frame
 *            (default high-water marks). A producer closes its socket only
 *            once the consumer has received everything (after t1, untimed):
 *            libzmq 4.3 drops the last queued messages of a PUSH socket
 *            closed at once, linger notwithstanding (1 round in 10 here).
 *            The directory and socket file are removed after the round.
 * MT-safe: no. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>
#ifdef MPB_HAVE_ZMQ
#include <zmq.h>
#endif

#include "mproc.h"
#include "bench.h"

#define MAXP 2               /* producers at most */
#define MAXC 2               /* consumers at most */
#define JOIN_BATCH 1000      /* joinable_64b: puts between two joins */
#define MQ_DEPTH 10          /* mq=: the default msg_max */
#define HEADROOM 64          /* bytes before a message a put may write */

enum { F_LAST = 1, F_WARM = 2 };

typedef struct {
    uint64_t seq;
    uint32_t prod;
    uint32_t flags;
} qhdr_t;

/* qctl_t is the round's shared memory (MAP_SHARED, made before the fork). */
typedef struct {
    _Alignas(64) _Atomic int ready;   /* workers at the starting line */
    _Atomic int go;                   /* set by the parent: start */
    _Atomic int failed;               /* a worker's first error code */
    _Atomic int cdone;                /* consumers that have finished */
    _Alignas(64) double t0[MAXP];     /* when each producer started */
    double tj[MAXP];                  /* joinable: when the last join returned */
    long sent[MAXP];
    _Alignas(64) double t1[MAXC];     /* last receipt of each consumer */
    long got[MAXC];
    uint64_t seqsum[MAXC][MAXP];
} qctl_t;

typedef struct qrun qrun_t;

/* qops_t is one transport. Every function returns 0 or a negative code;
 * get also returns MPB_END at the end of the stream. put may write up to
 * HEADROOM bytes just before msg. */
typedef struct {
    int (*setup)(qrun_t *q);                  /* parent, before the fork */
    int (*child_init)(qrun_t *q, int producer);
    void (*child_fini)(qrun_t *q, int producer);
    void (*parent_started)(qrun_t *q);        /* parent, children started */
    int (*put)(qrun_t *q, void *msg, size_t len);
    int (*get)(qrun_t *q, void *buf, size_t cap, size_t *len);
    int (*task_done)(qrun_t *q);
    int (*join)(qrun_t *q);
    void (*end_stream)(qrun_t *q);            /* parent, producers joined */
    void (*teardown)(qrun_t *q);              /* parent, after the round */
} qops_t;

struct qrun {
    const mpb_queue_param_t *p;
    const qops_t *ops;
    double seconds;
    int use_mproc;            /* workers are mp_processes, else fork() */
    qctl_t *ctl;
    mp_queue_t *q;            /* mproc */
    int fds[2];               /* raw */
    mqd_t mq;                 /* mq */
    char dir[256];            /* zmq */
    char endpoint[300];
    void *zctx, *zsock;
};

typedef struct {
    qrun_t *q;                /* the parent's qrun_t (a copy under fork) */
    int producer, idx;
} qwork_arg_t;

/* ---- helpers ------------------------------------------------------------------ */

/* fault reports a worker's check failure and remembers the first code. */
static int fault(qrun_t *q, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    code = mpb_vfault(&q->ctl->failed, "queue", code, fmt, ap);
    va_end(ap);
    return code;
}

static int kind_is(const qrun_t *q, mpb_qkind_t k)
{
    return q->p->kind == k;
}

/* ---- the workers ------------------------------------------------------------------ */

static void fill(unsigned char *msg, size_t size, uint64_t seq, uint32_t prod,
                 uint32_t flags)
{
    qhdr_t h = {seq, prod, flags};

    memcpy(msg, &h, sizeof h);
    memcpy(msg + size - sizeof seq, &seq, sizeof seq);
}

static int producer(qrun_t *q, int id)
{
    const qops_t *o = q->ops;
    size_t size = q->p->size;
    int joinable = kind_is(q, MPB_Q_JOINABLE);
    uint64_t every = joinable ? JOIN_BATCH : size >= 4096 ? 1 : 16, seq = 0;
    unsigned char *base = NULL, *msg;
    double t0;
    int rc;

    if (posix_memalign((void **)&base, 64, HEADROOM + size) != 0)
        return fault(q, -ENOMEM, "producer %d: no buffer", id);
    msg = base + HEADROOM;
    memset(msg, 0xa5, size);
    if (o->child_init && (rc = o->child_init(q, 1)) < 0)
        return fault(q, rc, "producer %d: set-up failed", id);
    fill(msg, size, UINT64_MAX, (uint32_t)id, F_WARM);
    if ((rc = o->put(q, msg, size)) < 0)
        return fault(q, rc, "producer %d: warm-up put failed", id);
    atomic_fetch_add(&q->ctl->ready, 1);
    while (!atomic_load(&q->ctl->go))
        mpb_sleep(20e-6);

    t0 = mpb_now();
    q->ctl->t0[id] = t0;
    for (;;) {
        uint32_t flags = 0;

        if (seq % every == every - 1 && mpb_now() - t0 >= q->seconds)
            flags = F_LAST;
        fill(msg, size, seq, (uint32_t)id, flags);
        if ((rc = o->put(q, msg, size)) < 0)
            return fault(q, rc, "producer %d: put of message %llu failed", id,
                         (unsigned long long)seq);
        seq++;
        if (joinable && seq % every == 0 && (rc = o->join(q)) < 0)
            return fault(q, rc, "producer %d: join failed", id);
        if (flags)
            break;
    }
    if (joinable)
        q->ctl->tj[id] = mpb_now();
    q->ctl->sent[id] = (long)seq;
    if (o->child_fini)
        o->child_fini(q, 1);
    free(base);
    return 0;
}

static int consumer(qrun_t *q, int id)
{
    const qops_t *o = q->ops;
    size_t size = q->p->size, len;
    int nprod = q->p->producers, many = q->p->consumers > 1;
    int joinable = kind_is(q, MPB_Q_JOINABLE);
    unsigned char *base = NULL, *buf;
    uint64_t next[MAXP] = {0}, sum[MAXP] = {0}, tail;
    double t1 = 0;
    long n = 0;
    qhdr_t h;
    int rc;

    if (posix_memalign((void **)&base, 64, HEADROOM + size) != 0)
        return fault(q, -ENOMEM, "consumer %d: no buffer", id);
    buf = base + HEADROOM;
    if (o->child_init && (rc = o->child_init(q, 0)) < 0)
        return fault(q, rc, "consumer %d: set-up failed", id);
    atomic_fetch_add(&q->ctl->ready, 1);

    for (;;) {
        rc = o->get(q, buf, size, &len);
        if (rc == MPB_END && many)
            break;
        if (rc == MPB_END)
            return fault(q, -EPROTO, "consumer %d: end of stream after %ld "
                         "messages, before the last one", id, n);
        if (rc < 0)
            return fault(q, rc, "consumer %d: get failed after %ld messages",
                         id, n);
        if (len != size)
            return fault(q, -EPROTO, "consumer %d: message %ld has %zu bytes, "
                         "not %zu", id, n, len, size);
        memcpy(&h, buf, sizeof h);
        memcpy(&tail, buf + size - sizeof tail, sizeof tail);
        if (joinable && (rc = o->task_done(q)) < 0)
            return fault(q, rc, "consumer %d: task_done failed", id);
        if (h.flags & F_WARM)
            continue;
        if (h.prod >= (uint32_t)nprod || tail != h.seq || h.seq < next[h.prod] ||
            (!many && h.seq != next[h.prod]))
            return fault(q, -EPROTO, "consumer %d: message %ld: producer %u "
                         "seq %llu, trailer %llu, expected seq %s%llu", id, n,
                         h.prod, (unsigned long long)h.seq,
                         (unsigned long long)tail, many ? ">= " : "",
                         (unsigned long long)next[h.prod < MAXP ? h.prod : 0]);
        next[h.prod] = h.seq + 1;
        sum[h.prod] += h.seq;
        n++;
        if (many) {
            t1 = mpb_now();
        } else if (h.flags & F_LAST) {
            t1 = mpb_now();
            break;
        }
    }
    q->ctl->t1[id] = t1;
    q->ctl->got[id] = n;
    for (int i = 0; i < nprod; i++)
        q->ctl->seqsum[id][i] = sum[i];
    atomic_fetch_add(&q->ctl->cdone, 1);
    if (o->child_fini)
        o->child_fini(q, 0);
    free(base);
    return 0;
}

static int work(qrun_t *q, int is_producer, int idx)
{
    int rc = is_producer ? producer(q, idx) : consumer(q, idx);

    return rc < 0 ? 3 : 0;
}

static int work_target(void *arg)
{
    const qwork_arg_t *a = arg;

    return work(a->q, a->producer, a->idx);
}

/* ---- children: start, join, kill ---------------------------------------------------- */

static int child_start(qrun_t *q, mpb_child_t *c, int is_producer, int idx)
{
    qwork_arg_t a = {q, is_producer, idx};

    memset(c, 0, sizeof *c);
    return mpb_child_start(q->use_mproc, work_target, &a, sizeof a, &c->mp,
                           &c->pid);
}

/* ---- one round ------------------------------------------------------------------------- */

/* check_result checks the counts and computes the rate. */
static int check_result(const qrun_t *q, double *value)
{
    const mpb_queue_param_t *p = q->p;
    const qctl_t *ctl = q->ctl;
    long sent = 0, got = 0;
    double t0 = ctl->t0[0], t1 = 0;

    for (int i = 0; i < p->producers; i++) {
        uint64_t s = (uint64_t)ctl->sent[i], sum = 0;

        sent += ctl->sent[i];
        if (ctl->t0[i] < t0)
            t0 = ctl->t0[i];
        if (p->kind == MPB_Q_JOINABLE && ctl->tj[i] > t1)
            t1 = ctl->tj[i];
        for (int j = 0; j < p->consumers; j++)
            sum += ctl->seqsum[j][i];
        if (s == 0 || sum != s * (s - 1) / 2) {
            fprintf(stderr, "mp_bench: queue: producer %d sent %llu messages "
                    "but the seqs received add up to %llu, not %llu (lost or "
                    "duplicated messages)\n", i, (unsigned long long)s,
                    (unsigned long long)sum,
                    (unsigned long long)(s ? s * (s - 1) / 2 : 0));
            return -EPROTO;
        }
    }
    for (int j = 0; j < p->consumers; j++) {
        got += ctl->got[j];
        if (p->kind != MPB_Q_JOINABLE && ctl->t1[j] > t1)
            t1 = ctl->t1[j];
    }
    if (got != sent) {
        fprintf(stderr, "mp_bench: queue: %ld messages sent, %ld received\n",
                sent, got);
        return -EPROTO;
    }
    if (!(t1 > t0))
        return -EPROTO;
    *value = (double)sent / (t1 - t0);
    return 0;
}

static int queue_round(const mpb_round_t *r, const qops_t *ops, int use_mproc,
                       double *value)
{
    const mpb_queue_param_t *p = r->c->param;
    mpb_child_t prod[MAXP], cons[MAXC];
    int np = 0, nc = 0, rc, jrc;
    double deadline;
    qrun_t q = {.p = p, .ops = ops, .seconds = r->seconds,
                .use_mproc = use_mproc, .fds = {-1, -1}, .mq = (mqd_t)-1};

    if (p->producers > MAXP || p->consumers > MAXC || p->size < 32)
        return -EINVAL;
    q.ctl = mmap(NULL, sizeof *q.ctl, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (q.ctl == MAP_FAILED)
        return -errno;
    rc = ops->setup ? ops->setup(&q) : 0;
    if (rc < 0)
        goto out;

    /* Consumers first (a zmq consumer binds), then producers. */
    for (; rc == 0 && nc < p->consumers; nc++)
        if ((rc = child_start(&q, &cons[nc], 0, nc)) < 0)
            break;
    if (rc == 0)
        rc = mpb_wait_ready(&q.ctl->ready, &q.ctl->failed, p->consumers);
    for (; rc == 0 && np < p->producers; np++)
        if ((rc = child_start(&q, &prod[np], 1, np)) < 0)
            break;
    if (rc == 0)
        rc = mpb_wait_ready(&q.ctl->ready, &q.ctl->failed,
                            p->consumers + p->producers);
    if (ops->parent_started)
        ops->parent_started(&q);
    if (rc < 0)
        goto kill;

    atomic_store(&q.ctl->go, 1);
    deadline = mpb_now() + 30 + 20 * r->seconds;
    for (int i = 0; i < np; i++)
        if ((jrc = mpb_child_join(&prod[i], deadline)) < 0 && rc == 0)
            rc = jrc;
    if (ops->end_stream)
        ops->end_stream(&q);
    for (int i = 0; i < nc; i++)
        if ((jrc = mpb_child_join(&cons[i], deadline)) < 0 && rc == 0)
            rc = jrc;
    if (rc == -ETIMEDOUT)
        fprintf(stderr, "mp_bench: queue: a worker had not finished %.0f s "
                "after the start (lost message or wake-up?); killed\n",
                30 + 20 * r->seconds);

kill:
    for (int i = 0; i < np; i++)
        mpb_child_kill(&prod[i]);
    for (int i = 0; i < nc; i++)
        mpb_child_kill(&cons[i]);
    if (atomic_load(&q.ctl->failed) && (rc == 0 || rc == -ECHILD))
        rc = atomic_load(&q.ctl->failed);
    if (rc == 0)
        rc = check_result(&q, value);
out:
    if (ops->teardown)
        ops->teardown(&q);
    munmap(q.ctl, sizeof *q.ctl);
    return rc;
}

/* ---- mproc: Queue, JoinableQueue, SimpleQueue -------------------------------------------- */

static int mproc_setup(qrun_t *q)
{
    mp_queue_opts_t o = {.maxsize = q->p->maxsize};

    if (kind_is(q, MPB_Q_SIMPLE))
        return mp_simplequeue_new(&q->q, &o);
    if (kind_is(q, MPB_Q_JOINABLE))
        return mp_joinablequeue_new(&q->q, &o);
    return mp_queue_new(&q->q, &o);
}

static int mproc_put(qrun_t *q, void *msg, size_t len)
{
    return mp_queue_put(q->q, msg, len, MP_FOREVER);
}

static int mproc_get(qrun_t *q, void *buf, size_t cap, size_t *len)
{
    int rc = mp_queue_get(q->q, buf, cap, len, MP_FOREVER);

    return rc == MP_EEOF ? MPB_END : rc;
}

static int mproc_task_done(qrun_t *q)
{
    return mp_queue_task_done(q->q);
}

static int mproc_join(qrun_t *q)
{
    return mp_queue_join(q->q, MP_FOREVER);
}

static void mproc_end_stream(qrun_t *q)
{
    mp_queue_close(q->q);
}

static void mproc_teardown(qrun_t *q)
{
    mp_queue_free(q->q);
}

static int simple_put(qrun_t *q, void *msg, size_t len)
{
    return mp_simplequeue_put(q->q, msg, len);
}

static int simple_get(qrun_t *q, void *buf, size_t cap, size_t *len)
{
    int rc = mp_simplequeue_get(q->q, buf, cap, len);

    return rc == MP_EEOF ? MPB_END : rc;
}

static void simple_end_stream(qrun_t *q)
{
    mp_simplequeue_close(q->q);
}

static void simple_teardown(qrun_t *q)
{
    mp_simplequeue_free(q->q);
}

static const qops_t mproc_queue_ops = {
    .setup = mproc_setup, .put = mproc_put, .get = mproc_get,
    .task_done = mproc_task_done, .join = mproc_join,
    .end_stream = mproc_end_stream, .teardown = mproc_teardown,
};

static const qops_t mproc_simple_ops = {
    .setup = mproc_setup, .put = simple_put, .get = simple_get,
    .end_stream = simple_end_stream, .teardown = simple_teardown,
};

int mpb_queue_mproc_round(const mpb_round_t *r, double *value)
{
    const mpb_queue_param_t *p = r->c->param;

    return queue_round(r, p->kind == MPB_Q_SIMPLE ? &mproc_simple_ops
                       : &mproc_queue_ops, 1, value);
}

/* ---- raw: a pipe, 4-byte length + payload ----------------------------------------------- */

static int raw_setup(qrun_t *q)
{
    if (q->p->producers != 1 || q->p->consumers != 1 ||
        !kind_is(q, MPB_Q_QUEUE))
        return -EINVAL;
    return pipe(q->fds) < 0 ? -errno : 0;
}

static int raw_child_init(qrun_t *q, int is_producer)
{
    close(q->fds[is_producer ? 0 : 1]);
    q->fds[is_producer ? 0 : 1] = -1;
    return 0;
}

static void raw_close(qrun_t *q)
{
    for (int i = 0; i < 2; i++)
        if (q->fds[i] >= 0) {
            close(q->fds[i]);
            q->fds[i] = -1;
        }
}

static int raw_put(qrun_t *q, void *msg, size_t len)
{
    return mpb_raw_send(q->fds[1], msg, len);
}

static int raw_get(qrun_t *q, void *buf, size_t cap, size_t *len)
{
    return mpb_raw_recv(q->fds[0], buf, cap, len);
}

static const qops_t raw_ops = {
    .setup = raw_setup, .child_init = raw_child_init,
    .parent_started = raw_close, .put = raw_put, .get = raw_get,
    .teardown = raw_close,
};

int mpb_queue_raw_round(const mpb_round_t *r, double *value)
{
    return queue_round(r, &raw_ops, 0, value);
}

/* ---- mq: a POSIX message queue ------------------------------------------------------------ */

/* mq_depth returns the queue depth: MQ_DEPTH, or msg_max if that is lower. */
static long mq_depth(void)
{
    FILE *f = fopen("/proc/sys/fs/mqueue/msg_max", "r");
    long n = MQ_DEPTH;

    if (f) {
        if (fscanf(f, "%ld", &n) != 1 || n <= 0 || n > MQ_DEPTH)
            n = MQ_DEPTH;
        fclose(f);
    }
    return n;
}

static int posix_mq_setup(qrun_t *q)
{
    static unsigned serial;
    struct mq_attr a = {.mq_maxmsg = mq_depth(), .mq_msgsize = (long)q->p->size};
    char name[64];

    if (q->p->producers != 1 || q->p->consumers != 1 ||
        !kind_is(q, MPB_Q_QUEUE))
        return -EINVAL;
    snprintf(name, sizeof name, "/mp_bench.%ld.%u", (long)getpid(), serial++);
    q->mq = mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0600, &a);
    if (q->mq == (mqd_t)-1)
        return -errno;
    mq_unlink(name);   /* at once: nothing stays in /dev/mqueue */
    return 0;
}

static int posix_mq_put(qrun_t *q, void *msg, size_t len)
{
    while (mq_send(q->mq, msg, len, 0) < 0)
        if (errno != EINTR)
            return -errno;
    return 0;
}

static int posix_mq_get(qrun_t *q, void *buf, size_t cap, size_t *len)
{
    ssize_t n;

    while ((n = mq_receive(q->mq, buf, cap, NULL)) < 0)
        if (errno != EINTR)
            return -errno;
    *len = (size_t)n;
    return 0;
}

static void posix_mq_teardown(qrun_t *q)
{
    if (q->mq != (mqd_t)-1)
        mq_close(q->mq);
    q->mq = (mqd_t)-1;
}

static const qops_t posix_mq_ops = {
    .setup = posix_mq_setup, .put = posix_mq_put, .get = posix_mq_get,
    .teardown = posix_mq_teardown,
};

int mpb_queue_mq_round(const mpb_round_t *r, double *value)
{
    return queue_round(r, &posix_mq_ops, 0, value);
}

/* ---- zmq: ZeroMQ PUSH/PULL over ipc:// ---------------------------------------------------- */

#ifdef MPB_HAVE_ZMQ
static int zq_setup(qrun_t *q)
{
    const char *tmp = getenv("TMPDIR");

    if (q->p->producers != 1 || q->p->consumers != 1 ||
        !kind_is(q, MPB_Q_QUEUE))
        return -EINVAL;
    if (!tmp || !*tmp || strlen(tmp) > 64)
        tmp = "/tmp";
    snprintf(q->dir, sizeof q->dir, "%s/mp_bench-zmq-XXXXXX", tmp);
    if (!mkdtemp(q->dir)) {
        q->dir[0] = '\0';
        return -errno;
    }
    snprintf(q->endpoint, sizeof q->endpoint, "ipc://%s/s", q->dir);
    return 0;
}

static int zq_child_init(qrun_t *q, int is_producer)
{
    int linger = 5000;

    if (!(q->zctx = zmq_ctx_new()))
        return -errno;
    q->zsock = zmq_socket(q->zctx, is_producer ? ZMQ_PUSH : ZMQ_PULL);
    if (!q->zsock)
        return -errno;
    zmq_setsockopt(q->zsock, ZMQ_LINGER, &linger, sizeof linger);
    if ((is_producer ? zmq_connect : zmq_bind)(q->zsock, q->endpoint) < 0)
        return -errno;
    return 0;
}

/* A producer closes its socket only once the consumer has got everything:
 * libzmq 4.3 can drop the last messages still queued on an ipc:// PUSH
 * socket at zmq_close + zmq_ctx_term, linger notwithstanding (seen here; see
 * libzmq issues #1922, #4660). The wait is after the consumer's t1: untimed. */
static void zq_child_fini(qrun_t *q, int is_producer)
{
    double deadline = mpb_now() + 30;

    while (is_producer && atomic_load(&q->ctl->cdone) < q->p->consumers &&
           !atomic_load(&q->ctl->failed) && mpb_now() < deadline)
        mpb_sleep(50e-6);
    zmq_close(q->zsock);
    zmq_ctx_term(q->zctx);
}

static int zq_put(qrun_t *q, void *msg, size_t len)
{
    while (zmq_send(q->zsock, msg, len, 0) < 0)
        if (errno != EINTR)
            return -errno;
    return 0;
}

static int zq_get(qrun_t *q, void *buf, size_t cap, size_t *len)
{
    int n;

    while ((n = zmq_recv(q->zsock, buf, cap, 0)) < 0)
        if (errno != EINTR)
            return -errno;
    if ((size_t)n > cap)
        return -EMSGSIZE;
    *len = (size_t)n;
    return 0;
}

static void zq_teardown(qrun_t *q)
{
    char path[320];

    if (!q->dir[0])
        return;
    snprintf(path, sizeof path, "%s/s", q->dir);
    unlink(path);
    if (rmdir(q->dir) < 0)
        fprintf(stderr, "mp_bench: queue: cannot remove %s: %s\n", q->dir,
                strerror(errno));
    q->dir[0] = '\0';
}

static const qops_t zq_ops = {
    .setup = zq_setup, .child_init = zq_child_init,
    .child_fini = zq_child_fini, .put = zq_put, .get = zq_get,
    .teardown = zq_teardown,
};

int mpb_queue_zmq_round(const mpb_round_t *r, double *value)
{
    return queue_round(r, &zq_ops, 0, value);
}
#endif

/* queue_baozi.c: producers and consumers (seed 003, "生产者消费者模型"; seed
 * 000, the same model): 生产者(做包子的) + 消息队列(蒸笼) + 消费者(吃包子的).
 *
 * Python (seed 003, the version with three producers and two consumers):
 *     def consumer(q):
 *         while True:
 *             res = q.get()
 *             if res is None: break          # 收到结束信号则结束
 *             time.sleep(random.randint(1, 3))
 *             print('%s 吃 %s' % (os.getpid(), res))
 *     def producer(name, q):
 *         for i in range(2):
 *             time.sleep(random.randint(1, 3))
 *             res = '%s%s' % (name, i)
 *             q.put(res)
 *             print('%s 生产了 %s' % (os.getpid(), res))
 *     q = Queue()
 *     p1 = Process(target=producer, args=('包子', q))   # 生产者们:即厨师们
 *     p2 = Process(target=producer, args=('骨头', q))
 *     p3 = Process(target=producer, args=('泔水', q))
 *     c1 = Process(target=consumer, args=(q,))         # 消费者们:即吃货们
 *     c2 = Process(target=consumer, args=(q,))
 *     p1.start(); p2.start(); p3.start(); c1.start(); c2.start()
 *     p1.join(); p2.join(); p3.join()  # 必须保证生产者全部生产完毕,才应该发送结束信号
 *     q.put(None)                      # 有几个消费者就应该发送几次结束信号None
 *     q.put(None)
 *     print('主')
 * (The seed prints in colour, with \033[45m and \033[44m; the colours are
 * left out here.)
 *
 * The seed's first version has no end signal, and 主进程永远不会结束: once
 * the queue is empty the consumers wait in q.get() for ever. Its cure is
 * one None per consumer (相当low): the main process must know how many
 * consumers there are, a consumer that died leaves its None to another, and
 * None can no longer be a message. mproc's queue can end the stream instead:
 * after mp_queue_close(q), put fails with MP_ECLOSED, and every consumer
 * gets the messages still queued and then MP_EEOF, however many consumers
 * there are:
 *
 *     p1.join(); p2.join(); p3.join()  ->  join the producers, then
 *     q.put(None); q.put(None)         ->  mp_queue_close(q)
 *     if res is None: break            ->  if (rc == MP_EEOF) break;
 *
 * The story checks its claim: each consumer reports every baozi it ate on a
 * pipe, and the main process checks that every baozi made was eaten exactly
 * once, that both consumers ended by themselves (at MP_EEOF), and that the
 * closed queue refuses a seventh. Time runs ten times faster than in the
 * seed (1 to 3 s become 0.1 to 0.3 s); who eats what changes from run to
 * run, the counts do not.
 *
 * Run: build/examples/queue_baozi [fork|spawn|forkserver] */
#include <mproc.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "story.h"

#define PRODUCERS 3
#define CONSUMERS 2
#define EACH 2     /* for i in range(2) */
#define SECOND 0.1 /* one second of the seed */
#define WAIT 30.0  /* a get that waits longer fails the story */

/* producer_arg and consumer_arg: the targets' arguments (copied into each
 * child; the queue pointer stays valid because the queue lives in the
 * arena). */
struct producer_arg {
    mp_queue_t *q;
    char name[16];
};
struct consumer_arg {
    mp_queue_t *q;
    int index;
    int report; /* the pipe's write end */
};

/* eaten is what a consumer reports on the pipe for each baozi. */
struct eaten {
    int consumer;
    char res[60];
};

/* producer makes EACH of its food (Python: def producer(name, q)). */
static int producer(void *arg)
{
    const struct producer_arg *a = arg;
    unsigned seed = (unsigned)getpid() * 2654435761u;
    for (int i = 0; i < EACH; i++) {
        story_sleep(story_randint(&seed, 1, 3) * SECOND);
        char res[60];
        snprintf(res, sizeof res, "%s%d", a->name, i);
        int rc = mp_queue_put(a->q, res, strlen(res), MP_FOREVER); /* q.put(res) */
        if (rc != 0)
            return story_fail("%s: put: %s", res, mp_strerror(rc));
        story_say("%d 生产了 %s\n", (int)getpid(), res);
    }
    return 0;
}

/* consumer eats until the stream ends (Python: def consumer(q)). */
static int consumer(void *arg)
{
    const struct consumer_arg *a = arg;
    unsigned seed = (unsigned)getpid() * 2654435761u + (unsigned)a->index;
    for (;;) {
        struct eaten e = { .consumer = a->index };
        size_t len = 0;
        int rc = mp_queue_get(a->q, e.res, sizeof e.res - 1, &len, WAIT); /* res = q.get() */
        if (rc == MP_EEOF)
            break; /* closed and empty: 结束 */
        if (rc != 0)
            return story_fail("consumer %d: get: %s", a->index, mp_strerror(rc));
        e.res[len] = '\0';
        story_sleep(story_randint(&seed, 1, 3) * SECOND);
        story_say("%d 吃 %s\n", (int)getpid(), e.res);
        if ((rc = story_pipe_send(a->report, &e, sizeof e)) != 0)
            return story_fail("consumer %d: report: %s", a->index, strerror(-rc));
    }
    return 0;
}

/* tally reads the consumers' reports and checks that every baozi made was
 * eaten exactly once. Returns 0 if so. */
static int tally(story_pipe_t *pipe, const char *const *names)
{
    int times[PRODUCERS][EACH] = { { 0 } }, by[CONSUMERS] = { 0 };
    double deadline = story_now() + 60.0;

    for (int n = 0; n < PRODUCERS * EACH; n++) {
        struct eaten e;
        int rc = story_pipe_recv(pipe->rd, &e, sizeof e, deadline);
        if (rc != 0)
            return story_fail("%d eaten, then: %s", n, mp_strerror(rc));
        e.res[sizeof e.res - 1] = '\0';
        int found = 0;
        for (int p = 0; p < PRODUCERS && !found; p++) {
            for (int i = 0; i < EACH && !found; i++) {
                char res[60];
                snprintf(res, sizeof res, "%s%d", names[p], i);
                if (strcmp(res, e.res) == 0) {
                    times[p][i]++;
                    found = 1;
                }
            }
        }
        if (!found || e.consumer < 0 || e.consumer >= CONSUMERS)
            return story_fail("consumer %d ate \"%s\", which nobody made", e.consumer, e.res);
        by[e.consumer]++;
    }
    for (int p = 0; p < PRODUCERS; p++)
        for (int i = 0; i < EACH; i++)
            if (times[p][i] != 1)
                return story_fail("%s%d was eaten %d times", names[p], i, times[p][i]);
    printf("做了%d个, 吃了%d个, 每个都只被吃了一次 (c1吃了%d个, c2吃了%d个)\n",
           PRODUCERS * EACH, by[0] + by[1], by[0], by[1]);
    return 0;
}

int main(int argc, char **argv)
{
    story_begin(argc, argv);
    static const char *const names[PRODUCERS] = { "包子", "骨头", "泔水" };
    mp_queue_t *q = NULL;
    mp_process_t *p[PRODUCERS] = { NULL }, *c[CONSUMERS] = { NULL };
    story_pipe_t pipe;
    int rc;

    if ((rc = mp_queue_new(&q, NULL)) != 0) /* q = Queue() */
        return story_fail("Queue(): %s", mp_strerror(rc));
    if ((rc = story_pipe_open(&pipe)) != 0)
        return story_fail("pipe: %s", strerror(-rc));

    /* 生产者们:即厨师们 */
    for (int i = 0; i < PRODUCERS; i++) {
        struct producer_arg a = { .q = q };
        snprintf(a.name, sizeof a.name, "%s", names[i]);
        if ((rc = mp_process_new(&p[i], producer, &a, sizeof a, NULL)) != 0 ||
            (rc = mp_process_start(p[i])) != 0)
            return story_fail("p%d: %s", i + 1, mp_strerror(rc));
    }
    /* 消费者们:即吃货们 */
    mp_process_opts_t opts = { .pass_fds = &pipe.wr, .n_pass_fds = 1 };
    for (int i = 0; i < CONSUMERS; i++) {
        struct consumer_arg a = { .q = q, .index = i, .report = pipe.wr };
        if ((rc = mp_process_new(&c[i], consumer, &a, sizeof a, &opts)) != 0 ||
            (rc = mp_process_start(c[i])) != 0)
            return story_fail("c%d: %s", i + 1, mp_strerror(rc));
    }
    close(pipe.wr);
    pipe.wr = -1;

    /* 必须保证生产者全部生产完毕, then end the stream: one close for all
     * consumers instead of one None each. */
    int failed = 0;
    for (int i = 0; i < PRODUCERS; i++) {
        char who[8];
        snprintf(who, sizeof who, "p%d", i + 1);
        failed |= story_join_ok(p[i], who);
    }
    if ((rc = mp_queue_close(q)) != 0)
        return story_fail("close: %s", mp_strerror(rc));
    printf("主\n");

    /* The closed queue takes nothing more. */
    if ((rc = mp_queue_put(q, "包子2", strlen("包子2"), MP_FOREVER)) != MP_ECLOSED)
        failed = story_fail("put after close gave %d (%s), want MP_ECLOSED", rc,
                            mp_strerror(rc));

    failed |= tally(&pipe, names);
    for (int i = 0; i < CONSUMERS; i++) {
        char who[8];
        snprintf(who, sizeof who, "c%d", i + 1);
        failed |= story_join_ok(c[i], who); /* ended by itself, at MP_EEOF */
    }

    /* Every consumer is gone; nothing more may have been eaten. */
    struct eaten extra;
    if (!failed && story_pipe_recv(pipe.rd, &extra, sizeof extra, story_now() + 0.05) == 0)
        failed = story_fail("a baozi was eaten twice: \"%.59s\"", extra.res);
    long left = mp_queue_qsize(q);
    if (!failed && left != 0)
        failed = story_fail("%ld baozi left in the queue", left);
    story_pipe_close(&pipe);
    mp_queue_free(q);
    return failed;
}

/* queue_joinable.c: a JoinableQueue, and consumers that are daemons (seed
 * 003, "JoinableQueue"; seed 001, "生产者消费者模型").
 *
 * Python (seed 003):
 *     def consumer(q):
 *         while True:
 *             res = q.get()
 *             time.sleep(random.randint(1, 3))
 *             print('%s 吃 %s' % (os.getpid(), res))
 *             q.task_done()   # 向q.join()发送一次信号,证明一个数据已经被取走了
 *     def producer(name, q):
 *         for i in range(10):
 *             time.sleep(random.randint(1, 3))
 *             res = '%s%s' % (name, i)
 *             q.put(res)
 *             print('%s 生产了 %s' % (os.getpid(), res))
 *         q.join()
 *     q = JoinableQueue()
 *     p1 = Process(target=producer, args=('包子', q))
 *     p2 = Process(target=producer, args=('骨头', q))
 *     p3 = Process(target=producer, args=('泔水', q))
 *     c1 = Process(target=consumer, args=(q,))
 *     c2 = Process(target=consumer, args=(q,))
 *     c1.daemon = True
 *     c2.daemon = True
 *     for p in [p1, p2, p3, c1, c2]: p.start()
 *     p1.join(); p2.join(); p3.join()
 *     print('主')
 *     # 主进程等--->p1,p2,p3等---->c1,c2
 *     # p1,p2,p3结束了,证明c1,c2肯定全都收完了p1,p2,p3发到队列的数据
 *     # 因而c1,c2也没有存在的价值了,应该随着主进程的结束而结束,所以设置成守护进程
 * Seed 001 tells it with two producers, and the main process calls q.join()
 * itself after joining them (等到队列中数据全部取出).
 *
 * Each put adds one unfinished task, each task_done takes one away, and
 * join waits until none is left. The consumers never leave their loop; they
 * are daemons, so when the main process ends mproc terminates them.
 *
 * The story checks its claims. In the seed's program (jq_main): when the
 * producers have ended, every baozi was eaten exactly once (each consumer
 * reports what it ate on a pipe before task_done) and join has nothing
 * left to wait for (seed 001's q.join() returns at once), while both
 * consumers still wait in get; one task_done too many is refused, as
 * Python's ValueError. A program cannot watch its own end, so main runs
 * the seed's program as its child and checks what it prints: 30 made, 30
 * eaten, '主' last, and the end of its output, which comes only when the
 * consumers, who share it, are gone.
 *
 * The queue is freed by its creator once nobody uses it any more: here the
 * daemons use it until the end, so jq_main frees it in an atexit handler,
 * installed before the first process starts: handlers run in reverse
 * order, so it runs after mproc's own (which terminates the daemons), and
 * it checks that they are gone.
 *
 * Time runs faster than in the seed: 1 to 3 s become 30 to 90 ms. Who eats
 * what changes from run to run, the counts do not.
 *
 * Run: build/examples/queue_joinable [fork|spawn|forkserver] */
#include <mproc.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "story.h"

#define PRODUCERS 3
#define CONSUMERS 2
#define EACH 10     /* for i in range(10) */
#define SECOND 0.03 /* one second of the seed */
#define WAIT 60.0   /* a safety limit on the waits that Python makes forever */
#define ROLE "JoinableQueue"

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

/* producer makes EACH of its food, then waits until all is eaten (Python:
 * def producer(name, q)). */
static int producer(void *arg)
{
    const struct producer_arg *a = arg;
    unsigned seed = (unsigned)getpid() * 2654435761u;
    int rc;
    for (int i = 0; i < EACH; i++) {
        story_sleep(story_randint(&seed, 1, 3) * SECOND);
        char res[60];
        snprintf(res, sizeof res, "%s%d", a->name, i);
        if ((rc = mp_queue_put(a->q, res, strlen(res), MP_FOREVER)) != 0) /* q.put(res) */
            return story_fail("%s: put: %s", res, mp_strerror(rc));
        story_say("%d 生产了 %s\n", (int)getpid(), res);
    }
    if ((rc = mp_queue_join(a->q, WAIT)) != 0) /* q.join() */
        return story_fail("%s: join: %s", a->name, mp_strerror(rc));
    return 0;
}

/* consumer eats for ever (Python: def consumer(q)); it is a daemon. */
static int consumer(void *arg)
{
    const struct consumer_arg *a = arg;
    unsigned seed = (unsigned)getpid() * 2654435761u + (unsigned)a->index;
    for (;;) {
        struct eaten e = { .consumer = a->index };
        size_t len = 0;
        int rc = mp_queue_get(a->q, e.res, sizeof e.res - 1, &len, WAIT); /* res = q.get() */
        if (rc != 0)
            return story_fail("consumer %d: get: %s", a->index, mp_strerror(rc));
        e.res[len] = '\0';
        story_sleep(story_randint(&seed, 1, 3) * SECOND);
        story_say("%d 吃 %s\n", (int)getpid(), e.res);
        if ((rc = story_pipe_send(a->report, &e, sizeof e)) != 0)
            return story_fail("consumer %d: report: %s", a->index, strerror(-rc));
        if ((rc = mp_queue_task_done(a->q)) != 0) /* q.task_done() */
            return story_fail("consumer %d: task_done: %s", a->index, mp_strerror(rc));
    }
}

/* ---- the seed's program -------------------------------------------------- */

static mp_queue_t *q;
static mp_process_t *c[CONSUMERS];

/* free_queue runs at exit, after mproc has terminated the daemons. */
static void free_queue(void)
{
    for (int i = 0; i < CONSUMERS; i++) {
        if (c[i] && mp_process_is_alive(c[i]) != 0) {
            story_fail("c%d outlived the main process", i + 1);
            _exit(1); /* and leave the queue to it */
        }
        mp_process_free(c[i]);
    }
    mp_queue_free(q);
}

/* tally reads the consumers' reports, all written by now, and checks that
 * every baozi made was eaten exactly once. Returns 0 if so. */
static int tally(int rd, const char *const *names)
{
    int times[PRODUCERS][EACH] = { { 0 } };
    double deadline = story_now() + 5.0;
    for (int n = 0; n < PRODUCERS * EACH; n++) {
        struct eaten e;
        int rc = story_pipe_recv(rd, &e, sizeof e, deadline);
        if (rc != 0)
            return story_fail("%d eaten when the producers were done, then: %s", n,
                              mp_strerror(rc));
        e.res[sizeof e.res - 1] = '\0';
        int found = 0;
        for (int p = 0; p < PRODUCERS && !found; p++) {
            size_t len = strlen(names[p]);
            if (strncmp(e.res, names[p], len) == 0) {
                int i = atoi(e.res + len);
                if (i >= 0 && i < EACH) {
                    times[p][i]++;
                    found = 1;
                }
            }
        }
        if (!found)
            return story_fail("someone ate \"%s\", which nobody made", e.res);
    }
    for (int p = 0; p < PRODUCERS; p++)
        for (int i = 0; i < EACH; i++)
            if (times[p][i] != 1)
                return story_fail("%s%d was eaten %d times", names[p], i, times[p][i]);
    return 0;
}

static int jq_main(void)
{
    static const char *const names[PRODUCERS] = { "包子", "骨头", "泔水" };
    mp_process_t *p[PRODUCERS] = { NULL };
    story_pipe_t pipe;
    int rc;

    atexit(free_queue); /* before any process starts: see above */
    if ((rc = mp_joinablequeue_new(&q, NULL)) != 0) /* q = JoinableQueue() */
        return story_fail("JoinableQueue(): %s", mp_strerror(rc));
    if ((rc = story_pipe_open(&pipe)) != 0)
        return story_fail("pipe: %s", strerror(-rc));

    for (int i = 0; i < PRODUCERS; i++) {
        struct producer_arg a = { .q = q };
        snprintf(a.name, sizeof a.name, "%s", names[i]);
        if ((rc = mp_process_new(&p[i], producer, &a, sizeof a, NULL)) != 0)
            return story_fail("p%d: %s", i + 1, mp_strerror(rc));
    }
    mp_process_opts_t daemon = { .daemon = 1, .pass_fds = &pipe.wr, .n_pass_fds = 1 };
    for (int i = 0; i < CONSUMERS; i++) { /* c1.daemon = True; c2.daemon = True */
        struct consumer_arg a = { .q = q, .index = i, .report = pipe.wr };
        if ((rc = mp_process_new(&c[i], consumer, &a, sizeof a, &daemon)) != 0)
            return story_fail("c%d: %s", i + 1, mp_strerror(rc));
    }
    for (int i = 0; i < PRODUCERS + CONSUMERS; i++) /* for p in p_l: p.start() */
        if ((rc = mp_process_start(i < PRODUCERS ? p[i] : c[i - PRODUCERS])) != 0)
            return story_fail("start: %s", mp_strerror(rc));

    int failed = 0;
    for (int i = 0; i < PRODUCERS; i++) { /* p1.join(); p2.join(); p3.join() */
        int code = -1;
        if ((rc = mp_process_join(p[i], WAIT)) != 0 ||
            (rc = mp_process_exitcode(p[i], &code)) != 0 || code != 0)
            failed = story_fail("p%d: %s, exit code %d", i + 1, mp_strerror(rc), code);
        mp_process_free(p[i]);
    }
    if (failed)
        return 1;

    /* p1,p2,p3结束了,证明c1,c2肯定全都收完了: */
    if ((rc = mp_queue_join(q, 0)) != 0) /* seed 001's q.join(): nothing to wait for */
        return story_fail("the producers are done, but join says %s", mp_strerror(rc));
    if (tally(pipe.rd, names) != 0)
        return 1;
    if ((rc = mp_queue_task_done(q)) != -EOVERFLOW) /* Python: ValueError */
        return story_fail("a task_done too many gave %d (%s), want -EOVERFLOW", rc,
                          mp_strerror(rc));
    for (int i = 0; i < CONSUMERS; i++)
        if (mp_process_is_alive(c[i]) != 1)
            return story_fail("c%d should still wait in get", i + 1);
    story_pipe_close(&pipe);

    printf("主\n");
    return 0; /* c1 and c2 die with the main process */
}

/* ---- the witness --------------------------------------------------------- */

int main(int argc, char **argv)
{
    story_begin(argc, argv);
    const char *role = story_role();
    if (role && strcmp(role, ROLE) == 0)
        return jq_main();

    char transcript[8192];
    int status = -1;
    double start = story_now();
    int rc = story_witness(argc, argv, ROLE, transcript, sizeof transcript, 30.0, &status);
    double took = story_now() - start;
    if (rc != 0)
        return story_fail("%s", rc == -ETIMEDOUT ? "the program, or a consumer, did not end"
                                                 : strerror(-rc));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return story_fail("the program failed (status 0x%x)", status);
    int made = story_count(transcript, " 生产了 "), eaten = story_count(transcript, " 吃 ");
    static const char last[] = "\n主\n";
    size_t len = strlen(transcript);
    if (made != PRODUCERS * EACH || eaten != PRODUCERS * EACH)
        return story_fail("%d made and %d eaten, want %d of each", made, eaten,
                          PRODUCERS * EACH);
    if (len < sizeof last - 1 || strcmp(transcript + len - (sizeof last - 1), last) != 0)
        return story_fail("'主' is not the last line");
    if (took > 20.0)
        return story_fail("the program took %.1f s to end", took);
    printf("(主进程结束了, 守护进程c1和c2也随之结束了: 做了%d个, 吃了%d个)\n", made, eaten);
    return 0;
}

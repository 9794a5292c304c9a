/* queue_ipc.c: processes talk through a Queue (seed 000, "IPC机制"; seed
 * 001, "进程间通信IPC机制").
 *
 * Python (seed 000):
 *     研究思路
 *         1.主进程跟子进程借助于队列通信
 *         2.子进程跟子进程借助于队列通信
 *     def producer(q):
 *         q.put('我是23号技师 很高兴为您服务')
 *     def consumer(q):
 *         print(q.get())
 *     q = Queue()
 *     p = Process(target=producer, args=(q,))
 *     p1 = Process(target=consumer, args=(q,))
 *     p.start()
 *     p1.start()
 * Seed 001 tells the same with 'hello baby', and names the two cases:
 * 子进程放数据 主进程获取数据; 两个子进程相互放 取数据.
 *
 * Act 1: a child puts, the main process gets. The main process even joins
 * the child before it gets: a message is copied into the queue by put,
 * before put returns, so it outlives the process that put it. (In Python
 * joining a process before its queued messages are taken can deadlock, for
 * large messages; mproc has no feeder thread and no such trap.)
 * Act 2: one child puts, another child gets and prints; each child's exit
 * code says whether it did its part.
 *
 * The queue lives in mproc's shared arena: the pointer travels in the
 * targets' argument and works in every child under fork, spawn and
 * forkserver (Python pickles the Queue instead).
 *
 * Run: build/examples/queue_ipc [fork|spawn|forkserver] */
#include <mproc.h>

#include <stdio.h>
#include <string.h>

#include "story.h"

#define WAIT 30.0 /* how long a get waits before the story fails (Python waits forever) */

/* ipc_arg: the targets' argument, copied into each child. */
struct ipc_arg {
    mp_queue_t *q;
    char msg[64]; /* what the producer puts; what the consumer expects */
};

/* producer puts its message (Python: def producer(q)). */
static int producer(void *arg)
{
    const struct ipc_arg *a = arg;
    int rc = mp_queue_put(a->q, a->msg, strlen(a->msg), MP_FOREVER);
    if (rc != 0)
        return story_fail("producer: put: %s", mp_strerror(rc));
    return 0;
}

/* consumer prints what it gets (Python: def consumer(q)); its exit code
 * says whether that was the producer's message. */
static int consumer(void *arg)
{
    const struct ipc_arg *a = arg;
    char buf[64];
    size_t len = 0;
    int rc = mp_queue_get(a->q, buf, sizeof buf - 1, &len, WAIT);
    if (rc != 0)
        return story_fail("consumer: get: %s", mp_strerror(rc));
    buf[len] = '\0';
    printf("%s\n", buf); /* print(q.get()) */
    if (strcmp(buf, a->msg) != 0)
        return story_fail("consumer got \"%s\", want \"%s\"", buf, a->msg);
    return 0;
}

/* start makes and starts a process running target(a). */
static int start(mp_process_t **p, mp_target_fn target, const struct ipc_arg *a)
{
    int rc = mp_process_new(p, target, a, sizeof *a, NULL);
    if (rc == 0)
        rc = mp_process_start(*p);
    return rc;
}

int main(int argc, char **argv)
{
    story_begin(argc, argv);
    mp_queue_t *q = NULL;
    mp_process_t *p = NULL, *p1 = NULL;
    char buf[64];
    size_t len = 0;
    int rc;

    if ((rc = mp_queue_new(&q, NULL)) != 0) /* q = Queue() */
        return story_fail("Queue(): %s", mp_strerror(rc));

    /* Act 1: 子进程放数据 主进程获取数据. */
    printf("---- 主进程跟子进程借助于队列通信 ----\n");
    struct ipc_arg a = { .q = q, .msg = "我是23号技师 很高兴为您服务" };
    if ((rc = start(&p, producer, &a)) != 0)
        return story_fail("producer: %s", mp_strerror(rc));
    if (story_join_ok(p, "producer") != 0) /* the producer is gone ... */
        return 1;
    if ((rc = mp_queue_get(q, buf, sizeof buf - 1, &len, WAIT)) != 0) /* ... its message is not */
        return story_fail("main: get: %s", mp_strerror(rc));
    buf[len] = '\0';
    printf("%s\n", buf);
    if (strcmp(buf, a.msg) != 0)
        return story_fail("main got \"%s\", want \"%s\"", buf, a.msg);

    /* Act 2: 两个子进程相互放 取数据. */
    printf("---- 子进程跟子进程借助于队列通信 ----\n");
    struct ipc_arg b = { .q = q, .msg = "hello baby" };
    if ((rc = start(&p, producer, &b)) != 0 || (rc = start(&p1, consumer, &b)) != 0)
        return story_fail("start: %s", mp_strerror(rc));
    int failed = story_join_ok(p, "producer") | story_join_ok(p1, "consumer");

    /* Every message put was taken once: nothing is left. */
    long left = mp_queue_qsize(q);
    mp_queue_free(q);
    if (failed)
        return 1;
    if (left != 0)
        return story_fail("%ld messages left in the queue, want 0", left);
    return 0;
}

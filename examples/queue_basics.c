/* queue_basics.c: a Queue, first in first out (seed 000, "队列Queue模块";
 * seed 001, "进程间的通信"; seed 003, "进程间通信").
 *
 * Python (seed 001):
 *     q = Queue(5)       # 括号内可以传参数 表示的是这个队列的最大存储数
 *     q.put(1)
 *     q.put(2)
 *     print(q.full())    # 判断队列是否满了
 *     q.put(3); q.put(4); q.put(5)
 *     print(q.full())
 *     q.put(6)           # 当队列满了之后 再放入数据 不会报错 会原地等待
 *     print(q.get())
 *     print(q.get())
 *     print(q.empty())   # 判断队列是否为空
 *     print(q.get()); print(q.get()); print(q.get())
 *     print(q.empty())
 *     print(q.get_nowait())  # 取值 没有值不等待直接报错
 *     print(q.get())     # 程序会阻塞,直到有人往队列里放入值
 *
 * Python (seed 000), the end of the same story:
 *     q.put(111) ... q.put(555)
 *     v1 = q.get() ... v5 = q.get()
 *     try:
 *         v6 = q.get(timeout=3)  # 没有数据之后原地等待三秒之后再报错 queue.Empty
 *         print(v6)
 *     except Exception as e:
 *         print('一滴都没有了!')
 *
 * As written, seed 001's program never gets past q.put(6), which waits for a
 * free place that nobody makes, and its get_nowait raises queue.Empty. Here
 * put(6) waits 0.3 s and gives up with MP_EFULL (Python's queue.Full),
 * put_nowait gives up at once, get_nowait returns MP_EEMPTY (queue.Empty),
 * and seed 000's get(timeout=3) waits 0.3 s before MP_EEMPTY. Seed 003 adds
 * put_nowait, get_nowait and qsize to the list; full, empty and qsize are
 * snapshots (在多进程的情况下是不精确), exact here because nobody else uses
 * the queue.
 *
 * Messages are bytes: the numbers travel as their decimal text.
 *
 * Run: build/examples/queue_basics [fork|spawn|forkserver] (it starts no
 * process; the start method does not matter). */
#include <mproc.h>

#include <stdio.h>
#include <string.h>

#include "story.h"

#define WAIT 0.3 /* the seed: 3 s */

/* put puts the text s (without its NUL) with the given timeout. */
static int put(mp_queue_t *q, const char *s, double timeout)
{
    return mp_queue_put(q, s, strlen(s), timeout);
}

/* get takes the oldest message as a string into buf (cap bytes, NUL
 * included) with the given timeout. Returns as mp_queue_get. */
static int get(mp_queue_t *q, char *buf, size_t cap, double timeout)
{
    size_t len = 0;
    int rc = mp_queue_get(q, buf, cap - 1, &len, timeout);
    buf[rc == 0 ? len : 0] = '\0';
    return rc;
}

/* seed001 tells seed 001's story; returns 0 if it held. */
static int seed001(void)
{
    mp_queue_t *q = NULL;
    mp_queue_opts_t opts = { .maxsize = 5 };
    char buf[32];
    int rc;

    printf("---- q = Queue(5) ----\n");
    if ((rc = mp_queue_new(&q, &opts)) != 0) /* q = Queue(5) */
        return story_fail("Queue(5): %s", mp_strerror(rc));
    if ((rc = put(q, "1", MP_FOREVER)) != 0 || (rc = put(q, "2", MP_FOREVER)) != 0)
        return story_fail("put: %s", mp_strerror(rc));
    int full2 = mp_queue_full(q);
    printf("%s\n", story_bool(full2)); /* print(q.full()) */
    for (int i = 3; i <= 5; i++) {
        snprintf(buf, sizeof buf, "%d", i);
        if ((rc = put(q, buf, MP_FOREVER)) != 0)
            return story_fail("put(%d): %s", i, mp_strerror(rc));
    }
    int full5 = mp_queue_full(q);
    printf("%s\n", story_bool(full5));
    if (full2 != 0 || full5 != 1)
        return story_fail("full() gave %d with 2 and %d with 5 messages, want 0 and 1",
                          full2, full5);

    /* q.put(6): 原地等待, here for at most WAIT seconds. */
    double t0 = story_now();
    int put6 = put(q, "6", WAIT);
    double waited = story_now() - t0;
    printf("q.put(6): 队列满了, 原地等待%.1f秒: %s\n", WAIT, mp_strerror(put6));
    if (put6 != MP_EFULL || waited < WAIT * 0.9)
        return story_fail("put(6, timeout=%.1f) gave %d (%s) after %.2f s, want MP_EFULL",
                          WAIT, put6, mp_strerror(put6), waited);
    int nowait = mp_queue_put_nowait(q, "6", 1);
    printf("q.put_nowait(6): %s\n", mp_strerror(nowait));
    long size = mp_queue_qsize(q);
    printf("q.qsize(): %ld\n", size);
    if (nowait != MP_EFULL || size != 5)
        return story_fail("put_nowait gave %d, qsize %ld; want MP_EFULL and 5", nowait, size);

    /* First in, first out. */
    int empties[2], e = 0;
    for (int i = 1; i <= 5; i++) {
        if ((rc = get(q, buf, sizeof buf, MP_FOREVER)) != 0)
            return story_fail("get: %s", mp_strerror(rc));
        printf("%s\n", buf); /* print(q.get()) */
        char want[8];
        snprintf(want, sizeof want, "%d", i);
        if (strcmp(buf, want) != 0)
            return story_fail("get gave \"%s\", want \"%s\"", buf, want);
        if (i == 2 || i == 5) {
            empties[e] = mp_queue_empty(q);
            printf("%s\n", story_bool(empties[e++])); /* print(q.empty()) */
        }
    }
    if (empties[0] != 0 || empties[1] != 1)
        return story_fail("empty() gave %d and %d, want 0 and 1", empties[0], empties[1]);

    rc = get(q, buf, sizeof buf, 0); /* q.get_nowait() */
    printf("q.get_nowait(): 没有值不等待直接报错: %s\n", mp_strerror(rc));
    if (rc != MP_EEMPTY)
        return story_fail("get_nowait on an empty queue gave %d (%s)", rc, mp_strerror(rc));
    mp_queue_free(q);
    return 0;
}

/* seed000 tells seed 000's story; returns 0 if it held. */
static int seed000(void)
{
    mp_queue_t *q = NULL;
    mp_queue_opts_t opts = { .maxsize = 5 };
    static const char *const data[] = { "111", "222", "333", "444", "555" };
    char v[5][8], v6[8];
    int rc;

    printf("---- q.get(timeout=%.1f) ----\n", WAIT);
    if ((rc = mp_queue_new(&q, &opts)) != 0)
        return story_fail("Queue(5): %s", mp_strerror(rc));
    for (int i = 0; i < 5; i++) /* 往队列中存数据 */
        if ((rc = mp_queue_put_nowait(q, data[i], strlen(data[i]))) != 0)
            return story_fail("put_nowait(%s): %s", data[i], mp_strerror(rc));
    for (int i = 0; i < 5; i++) /* 去队列中取数据 */
        if ((rc = get(q, v[i], sizeof v[i], MP_FOREVER)) != 0 || strcmp(v[i], data[i]) != 0)
            return story_fail("v%d = \"%s\" (%s), want %s", i + 1, v[i], mp_strerror(rc),
                              data[i]);
    printf("%s %s %s %s %s\n", v[0], v[1], v[2], v[3], v[4]);

    double t0 = story_now();
    rc = get(q, v6, sizeof v6, WAIT); /* v6 = q.get(timeout=3) */
    double waited = story_now() - t0;
    if (rc == 0)
        printf("%s\n", v6);
    else if (rc == MP_EEMPTY)
        printf("一滴都没有了!\n");
    mp_queue_free(q);
    if (rc != MP_EEMPTY || waited < WAIT * 0.9)
        return story_fail("get(timeout=%.1f) gave %d (%s) after %.2f s, want MP_EEMPTY",
                          WAIT, rc, mp_strerror(rc), waited);
    return 0;
}

int main(int argc, char **argv)
{
    story_begin(argc, argv);
    if (seed001() != 0)
        return 1;
    return seed000();
}

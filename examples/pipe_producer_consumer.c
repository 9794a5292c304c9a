/* pipe_producer_consumer.c: a producer and a consumer on a Pipe (seed 003,
 * "基于管道实现进程间通信"), and why each side closes the end it does not use.
 *
 * Python (seed 003):
 *     def consumer(p, name):
 *         left, right = p
 *         left.close()
 *         while True:
 *             try:
 *                 baozi = right.recv()
 *                 print('%s 收到包子:%s' % (name, baozi))
 *             except EOFError:
 *                 right.close()
 *                 break
 *     def producer(seq, p):
 *         left, right = p
 *         right.close()
 *         for i in seq:
 *             left.send(i)
 *         else:
 *             left.close()
 *     left, right = Pipe()
 *     c1 = Process(target=consumer, args=((left, right), 'c1'))
 *     c1.start()
 *     seq = (i for i in range(10))
 *     producer(seq, (left, right))
 *     right.close()
 *     left.close()
 *     c1.join()
 *     print('主进程')
 *
 * The seed's warning: 生产者和消费者都没有使用管道的某个端点,就应该将其关闭.
 * A pipe end is counted by the system in every process that holds it, and
 * the consumer's recv sees end of file (EOFError, here MP_EEOF) only once
 * every copy of left is closed, its own copy included. Forget one, and the
 * consumer hangs in recv after the last baozi.
 *
 * Act 1 is the seed. Act 2 shows the warning: consumer c2 forgets to close
 * its own copy of left; the producer sends ten baozi and closes everything
 * it holds, yet c2's recv after the tenth does not end. (The story gives it
 * a short timeout, and checks that it expired instead of ending, where
 * Python would hang for ever.)
 *
 * The items are numbers: mp_conn_send sends a structured value (an
 * mp_val_t, encoded as msgpack) where Python pickles an int. The connection
 * handles travel in the targets' argument; a child started under spawn or
 * forkserver receives the parent's open connections, as a forked child
 * inherits them, so the same closes are needed under every start method.
 *
 * Run: build/examples/pipe_producer_consumer [fork|spawn|forkserver] */
#include <mproc.h>

#include <stdio.h>

#include "story.h"

#define ITEMS 10    /* seq = (i for i in range(10)) */
#define WAIT 30.0   /* a recv that waits longer fails the story (Python waits forever) */
#define HANG 0.3    /* act 2: how long c2 waits to show that recv hangs */

/* consumer_arg: the target's argument, copied into the child; the handles
 * are valid in the child at the same address. */
struct consumer_arg {
    mp_conn_t *left, *right;
    char name[8];
    int close_left; /* 0 in act 2: the forgotten close */
};

/* consumer prints each baozi until the pipe ends (Python: def consumer). Its
 * exit code says whether it got 0..9 in order and then what the act
 * claims: end of file (act 1) or a recv that does not end (act 2). */
static int consumer(void *arg)
{
    const struct consumer_arg *a = arg;
    if (a->close_left)
        mp_conn_close(a->left); /* left.close() */
    for (int expect = 0;; expect++) {
        mp_val_t *baozi = NULL;
        double timeout = !a->close_left && expect == ITEMS ? HANG : WAIT;
        int rc = mp_conn_recv(a->right, &baozi, 0, timeout); /* baozi = right.recv() */
        if (rc == MP_EEOF && a->close_left && expect == ITEMS) {
            mp_conn_close(a->right); /* except EOFError: right.close() */
            return 0;
        }
        if (rc == -ETIMEDOUT && !a->close_left && expect == ITEMS) {
            story_say("%s 没有关闭left: 收完%d个包子后 recv 挂起 (%.1f秒后放弃)\n",
                      a->name, ITEMS, HANG);
            mp_conn_close(a->right);
            return 0;
        }
        if (rc != 0)
            return story_fail("%s: recv after %d baozi: %s", a->name, expect,
                              mp_strerror(rc));
        if (baozi->type != MP_VAL_INT || baozi->v.i != expect || expect >= ITEMS) {
            mp_val_free(baozi);
            return story_fail("%s: baozi %d is not the number %d", a->name, expect,
                              expect);
        }
        story_say("%s 收到包子:%lld\n", a->name, (long long)baozi->v.i);
        mp_val_free(baozi);
    }
}

/* producer sends 0..ITEMS-1 on left (Python: def producer(seq, p)). */
static int producer(mp_conn_t *left, mp_conn_t *right)
{
    mp_conn_close(right); /* right.close() */
    for (int i = 0; i < ITEMS; i++) {
        mp_val_t item = mp_val_int(i);
        int rc = mp_conn_send(left, &item); /* left.send(i) */
        if (rc != 0)
            return story_fail("producer: send %d: %s", i, mp_strerror(rc));
    }
    mp_conn_close(left); /* else: left.close() */
    return 0;
}

/* act runs the seed's main program with consumer `name`. */
static int act(const char *name, int close_left)
{
    mp_conn_t *left = NULL, *right = NULL;
    mp_process_t *c = NULL;
    int rc;

    if ((rc = mp_pipe(&left, &right, 1)) != 0) /* left, right = Pipe() */
        return story_fail("Pipe(): %s", mp_strerror(rc));
    struct consumer_arg a = { .left = left, .right = right, .close_left = close_left };
    snprintf(a.name, sizeof a.name, "%s", name);
    if ((rc = mp_process_new(&c, consumer, &a, sizeof a, NULL)) != 0 ||
        (rc = mp_process_start(c)) != 0)
        return story_fail("%s: %s", name, mp_strerror(rc));
    int failed = producer(left, right);
    mp_conn_close(right); /* right.close(): closed already, a no-op */
    mp_conn_close(left);  /* left.close(): the same */
    failed |= story_join_ok(c, name);
    mp_conn_free(left);
    mp_conn_free(right);
    return failed;
}

int main(int argc, char **argv)
{
    story_begin(argc, argv);

    printf("---- 生产者和消费者都关闭不用的端点 ----\n");
    if (act("c1", 1) != 0)
        return 1;
    printf("主进程\n");

    printf("---- 消费者忘记关闭left ----\n");
    if (act("c2", 0) != 0)
        return 1;
    printf("主进程\n");
    return 0;
}

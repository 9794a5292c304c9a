/* pipe_adder.c: a server that adds, over a duplex Pipe (seed 003, "管道可以
 * 用于双向通信 ... 请求/响应模型").
 *
 * Python (seed 003):
 *     def adder(p, name):
 *         server, client = p
 *         client.close()
 *         while True:
 *             try:
 *                 x, y = server.recv()
 *             except EOFError:
 *                 server.close()
 *                 break
 *             res = x + y
 *             server.send(res)
 *         print('server done')
 *     server, client = Pipe()
 *     c1 = Process(target=adder, args=((server, client), 'c1'))
 *     c1.start()
 *     server.close()
 *     client.send((10, 20))
 *     print(client.recv())
 *     client.close()
 *     c1.join()
 *     print('主进程')
 *     # 注意:send()和recv()方法使用pickle模块对对象进行序列化。
 *
 * A duplex pipe carries messages both ways: the main process sends a
 * request on client and waits for the reply there; the child receives on
 * server and answers on it. The child closes client and the main process
 * closes server, so that when the main process closes client the child's
 * recv sees end of file (EOFError, here MP_EEOF) and the server ends.
 *
 * Where Python pickles the tuple (10, 20), mproc sends a structured value:
 * an array of two integers, encoded as msgpack (mp_conn_send), and the
 * child decodes it (mp_conn_recv) into a tree it checks and frees. The
 * story checks that the reply is 30 and that the server ended by itself.
 *
 * Run: build/examples/pipe_adder [fork|spawn|forkserver] */
#include <mproc.h>

#include <stdio.h>

#include "story.h"

#define WAIT 30.0 /* a recv that waits longer fails the story (Python waits forever) */

/* adder_arg: the target's argument; the handles are valid in the child. */
struct adder_arg {
    mp_conn_t *server, *client;
    char name[8];
};

/* pair_of_ints gives the two numbers of a request [x, y]; returns 0, or -1
 * if v is not an array of two integers. */
static int pair_of_ints(const mp_val_t *v, int64_t *x, int64_t *y)
{
    if (v->type != MP_VAL_ARRAY || v->v.a.n != 2 || v->v.a.items[0].type != MP_VAL_INT ||
        v->v.a.items[1].type != MP_VAL_INT)
        return -1;
    *x = v->v.a.items[0].v.i;
    *y = v->v.a.items[1].v.i;
    return 0;
}

/* adder answers each request [x, y] with x + y until the client end is
 * closed (Python: def adder(p, name)). */
static int adder(void *arg)
{
    const struct adder_arg *a = arg;
    mp_conn_close(a->client); /* client.close() */
    for (;;) {
        mp_val_t *req = NULL;
        int64_t x, y, sum;
        int rc = mp_conn_recv(a->server, &req, 0, WAIT); /* x, y = server.recv() */
        if (rc == MP_EEOF) {
            mp_conn_close(a->server); /* except EOFError: server.close() */
            break;
        }
        if (rc != 0)
            return story_fail("%s: recv: %s", a->name, mp_strerror(rc));
        rc = pair_of_ints(req, &x, &y);
        mp_val_free(req);
        if (rc != 0)
            return story_fail("%s: a request that is not two numbers", a->name);
        if (__builtin_add_overflow(x, y, &sum))
            return story_fail("%s: %lld + %lld overflows", a->name, (long long)x,
                              (long long)y);
        mp_val_t res = mp_val_int(sum); /* res = x + y */
        if ((rc = mp_conn_send(a->server, &res)) != 0) /* server.send(res) */
            return story_fail("%s: send: %s", a->name, mp_strerror(rc));
    }
    story_say("server done\n");
    return 0;
}

int main(int argc, char **argv)
{
    story_begin(argc, argv);
    mp_conn_t *server = NULL, *client = NULL;
    mp_process_t *c1 = NULL;
    mp_val_t *res = NULL;
    int rc;

    if ((rc = mp_pipe(&server, &client, 1)) != 0) /* server, client = Pipe() */
        return story_fail("Pipe(): %s", mp_strerror(rc));
    struct adder_arg a = { .server = server, .client = client, .name = "c1" };
    if ((rc = mp_process_new(&c1, adder, &a, sizeof a, NULL)) != 0 ||
        (rc = mp_process_start(c1)) != 0)
        return story_fail("c1: %s", mp_strerror(rc));
    mp_conn_close(server); /* server.close() */

    mp_val_t xy[2] = { mp_val_int(10), mp_val_int(20) };
    mp_val_t req = mp_val_array(xy, 2);
    if ((rc = mp_conn_send(client, &req)) != 0) /* client.send((10, 20)) */
        return story_fail("send: %s", mp_strerror(rc));
    if ((rc = mp_conn_recv(client, &res, 0, WAIT)) != 0) /* client.recv() */
        return story_fail("recv: %s", mp_strerror(rc));
    if (res->type != MP_VAL_INT) {
        mp_val_free(res);
        return story_fail("the reply is not a number");
    }
    printf("%lld\n", (long long)res->v.i); /* print(client.recv()) */
    int failed = res->v.i != 30 ? story_fail("10 + 20 gave %lld", (long long)res->v.i) : 0;
    mp_val_free(res);
    mp_conn_close(client); /* client.close(): the server's recv ends */

    failed |= story_join_ok(c1, "c1"); /* it ended by itself, at end of file */
    printf("主进程\n");
    mp_conn_free(server);
    mp_conn_free(client);
    return failed;
}

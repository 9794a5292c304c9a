/* pool_echo_server.c: the TCP echo server rebuilt on a pool (seed 004:
 * 每来一个客户端,都在服务端开启一个进程,如果并发来一个万个客户端,要开启一万个
 * 进程吗 ... 解决方法:进程池; seed 003: 比如httpd的进程模式,规定最小进程数和最大
 * 进程数).
 *
 * tcp_echo_server.c starts one process per client. With a pool, a fixed
 * number of processes holds the conversations. The seeds stop at "进程池,
 * 本篇博客后面会讲到"; the usual Python version (not in the seeds) is:
 *     def talk(conn):
 *         print('进程pid: %s' % os.getpid())
 *         while True:
 *             msg = conn.recv(1024)
 *             if not msg: break
 *             conn.send(msg.upper())
 *     p = Pool(3)
 *     while True:
 *         conn, *_ = server.accept()
 *         p.apply_async(talk, args=(conn,))
 *         # p.apply(talk, args=(conn,))  # 同步的话，则同一时间只有一个客户端能访问
 * with the remark: 开启5个客户端，会发现2个客户端处于等待状态; 在每个
 * 进程内查看pid，会发现pid使用为3个，即多个客户端公用3个进程.
 *
 * Python pickles the accepted socket into the task. A pool's workers are
 * already running when a client comes, so in C the worker accepts the
 * client itself, from the listening socket it shares with the others (the
 * pre-forked server of httpd): the main process binds and listens (a
 * Listener on 127.0.0.1, a free port), wraps a copy of the listening socket
 * in a Connection (mp_conn_from_fd), which mproc hands to every worker it
 * starts under fork, spawn and forkserver, and then submits one talk task
 * per client it expects:
 *     p.apply_async(talk, args=(door,))  # talk: conn = accept(door); then as above
 * A task runs when a worker is free, so at most three clients are served at
 * once and the others wait in the listen backlog, connected but unanswered.
 *
 * The story runs five clients (each says "hello", then "bye") and shows the
 * remark's two claims, without depending on timing:
 * - clients 1-3 get their first answer and wait at a Barrier with the main
 *   process: three conversations are open at once, in three processes;
 * - then clients 4 and 5 connect and say hello, and get no answer within
 *   0.3 s (none can come: every worker is inside a conversation that stays
 *   open until the main process lets clients 1-3 leave);
 * - once they leave, clients 4 and 5 are answered by the same processes:
 *   five conversations, three pids, all of them the pool's.
 * Then the pool is closed and joined, and no child is left. Lines of
 * different clients interleave differently from run to run.
 *
 * Run: build/examples/pool_echo_server [fork|spawn|forkserver] */
#include <mproc.h>

#include <ctype.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "story.h"

#define WORKERS 3    /* Pool(3) */
#define CLIENTS 5    /* 开启5个客户端 */
#define MAXLEN 1024  /* conn.recv(1024) */
#define WAIT 20.0    /* a wait that lasts longer fails the story */
#define NO_ANSWER 0.3 /* how long a waiting client listens for nothing */

/* talk_arg: the task's argument: the shared listening socket. */
struct talk_arg {
    mp_conn_t *door;
};

/* client_arg: a client's argument (the address travels as a string). */
struct client_arg {
    char address[MP_ADDRESS_MAX];
    int index;             /* 1..CLIENTS */
    mp_barrier_t *served;  /* clients 1-3 and main: three conversations at once */
    mp_barrier_t *queued;  /* clients 4-5 and main: both got no answer */
    mp_event_t *leave;     /* main lets clients 1-3 go */
};

/* accept_one takes one client from the listening socket lfd (non-blocking,
 * shared by every worker) within WAIT seconds. Returns the descriptor or a
 * negative errno value. */
static int accept_one(int lfd)
{
    double deadline = story_now() + WAIT;
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            return fd;
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
            return -errno;
        double left = deadline - story_now();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd pfd = { .fd = lfd, .events = POLLIN };
        poll(&pfd, 1, (int)(left * 1000) + 1); /* another worker may win it */
    }
}

/* talk is the task (Python: def talk(conn)): accept one client, answer it
 * until it leaves, and return this worker's pid. */
static int talk(const void *arg, size_t arg_len, mp_out_t *out)
{
    struct talk_arg a;
    mp_conn_t *conn = NULL;
    int failed = 0;

    if (arg_len != sizeof a)
        return -EINVAL;
    memcpy(&a, arg, sizeof a);
    int fd = accept_one(mp_conn_fileno(a.door)); /* conn, *_ = server.accept() */
    if (fd < 0) {
        story_fail("talk: accept: %s", mp_strerror(fd));
        return fd;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int rc = mp_conn_from_fd(&conn, fd, 1, 1);
    if (rc != 0) {
        close(fd);
        return rc;
    }
    story_say("进程pid: %d 接待一个客户端\n", (int)getpid());
    for (;;) {
        char *msg = NULL;
        size_t len = 0;
        rc = mp_conn_recv_bytes(conn, (void **)&msg, &len, MAXLEN, WAIT); /* msg = conn.recv(1024) */
        if (rc == MP_EEOF) /* if not msg: break */
            break;
        if (rc != 0) {
            failed = rc;
            story_fail("talk: recv: %s", mp_strerror(rc));
            break;
        }
        story_say("客户端消息>> b'%.*s' (pid %d)\n", (int)len, msg, (int)getpid());
        for (size_t i = 0; i < len; i++)
            msg[i] = (char)toupper((unsigned char)msg[i]);
        rc = mp_conn_send_bytes(conn, msg, len); /* conn.send(msg.upper()) */
        free(msg);
        if (rc != 0) {
            failed = rc;
            story_fail("talk: send: %s", mp_strerror(rc));
            break;
        }
    }
    mp_conn_free(conn);
    if (failed)
        return failed;
    int pid = (int)getpid();
    return mp_out_write(out, &pid, sizeof pid);
}

/* hear waits for the answer to line and checks it is line in capitals. */
static int hear(mp_conn_t *c, int index, const char *line)
{
    char *answer = NULL, want[64];
    size_t len = 0;
    int rc = mp_conn_recv_bytes(c, (void **)&answer, &len, MAXLEN, WAIT); /* client.recv(1024) */
    if (rc != 0)
        return story_fail("client%d: %s: recv: %s", index, line, mp_strerror(rc));
    story_say("client%d: %.*s\n", index, (int)len, answer); /* print(msg.decode('utf-8')) */
    snprintf(want, sizeof want, "%s", line);
    for (char *p = want; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    rc = len == strlen(want) && memcmp(answer, want, len) == 0 ? 0
         : story_fail("client%d: \"%s\" came back as \"%.*s\"", index, line, (int)len, answer);
    free(answer);
    return rc;
}

/* tell sends one line (Python: client.send(msg.encode('utf-8'))). */
static int tell(mp_conn_t *c, int index, const char *line)
{
    story_say("client%d >>: %s\n", index, line);
    int rc = mp_conn_send_bytes(c, line, strlen(line));
    return rc == 0 ? 0 : story_fail("client%d: send: %s", index, mp_strerror(rc));
}

/* client is the seed's tcp_client.py, typing "hello" and "bye". */
static int client(void *arg)
{
    const struct client_arg *a = arg;
    mp_conn_t *c = NULL;
    char hello[64], bye[64];
    int rc, failed;

    snprintf(hello, sizeof hello, "hello from client%d", a->index);
    snprintf(bye, sizeof bye, "bye from client%d", a->index);
    if ((rc = mp_client(&c, a->address, NULL, WAIT)) != 0) /* client.connect(...) */
        return story_fail("client%d: connect %s: %s", a->index, a->address, mp_strerror(rc));
    failed = tell(c, a->index, hello);

    if (a->index <= WORKERS) {
        /* Served at once; stay until the main process says so. */
        if (!failed)
            failed = hear(c, a->index, hello);
        if (!failed && (rc = mp_barrier_wait(a->served, WAIT)) < 0)
            failed = story_fail("client%d: three clients were not served at once: %s",
                                a->index, mp_strerror(rc));
        if (!failed && (rc = mp_event_wait(a->leave, WAIT)) != 0)
            failed = story_fail("client%d: leave: %s", a->index, mp_strerror(rc));
    } else if (!failed) {
        /* Every worker is busy: connected, but nobody answers. */
        rc = mp_conn_poll(c, NO_ANSWER);
        if (rc != 0)
            failed = story_fail("client%d: answered (%d) while the pool was busy", a->index, rc);
        else
            story_say("client%d: %.1f秒没有回应, 在等待 (池里的%d个进程都在忙)\n", a->index,
                      NO_ANSWER, WORKERS);
        if (!failed && (rc = mp_barrier_wait(a->queued, WAIT)) < 0)
            failed = story_fail("client%d: queued: %s", a->index, mp_strerror(rc));
        if (!failed)
            failed = hear(c, a->index, hello);
    }
    if (!failed)
        failed = tell(c, a->index, bye);
    if (!failed)
        failed = hear(c, a->index, bye);
    mp_conn_free(c); /* the worker's talk sees end of file */
    return failed;
}

/* start_clients starts clients [from, to) (1-based). */
static int start_clients(mp_process_t **clients, int from, int to,
                         const struct client_arg *tmpl)
{
    for (int i = from; i < to; i++) {
        struct client_arg a = *tmpl;
        a.index = i;
        int rc = mp_process_new(&clients[i - 1], client, &a, sizeof a, NULL);
        if (rc == 0)
            rc = mp_process_start(clients[i - 1]);
        if (rc != 0)
            return story_fail("client%d: %s", i, mp_strerror(rc));
    }
    return 0;
}

/* serve runs the story once the pool is up. Returns 0 if the claims held. */
static int serve(mp_pool_t *p, mp_conn_t *door, struct client_arg *tmpl,
                 mp_process_t **clients, const pid_t *pids)
{
    mp_async_t *res[CLIENTS] = { NULL };
    int rc, failed = 0;

    /* One conversation per expected client (Python: apply_async per accept). */
    struct talk_arg t = { .door = door };
    for (int i = 0; i < CLIENTS && !failed; i++)
        if ((rc = mp_pool_apply_async(p, talk, &t, sizeof t, NULL, &res[i])) != 0)
            failed = story_fail("apply_async(talk): %s", mp_strerror(rc));

    if (!failed)
        failed = start_clients(clients, 1, WORKERS + 1, tmpl);
    if (!failed && (rc = mp_barrier_wait(tmpl->served, WAIT)) < 0)
        failed = story_fail("the first three clients were not served at once: %s",
                            mp_strerror(rc));
    if (!failed) {
        printf("服务端: %d个客户端同时在线, 池里的%d个进程都在忙\n", WORKERS, WORKERS);
        failed = start_clients(clients, WORKERS + 1, CLIENTS + 1, tmpl);
    }
    if (!failed && (rc = mp_barrier_wait(tmpl->queued, WAIT)) < 0)
        failed = story_fail("clients 4 and 5: %s", mp_strerror(rc));
    if (!failed) {
        printf("服务端: %d个客户端在等待; 前%d个客户端离开\n", CLIENTS - WORKERS, WORKERS);
        mp_event_set(tmpl->leave);
    }

    /* Every conversation ended in one of the pool's processes. */
    int used[CLIENTS], nused = 0;
    for (int i = 0; i < CLIENTS && !failed; i++) {
        const void *data = NULL;
        size_t len = 0;
        int pid, seen = 0;
        if ((rc = mp_async_get(res[i], WAIT, &data, &len)) != 0 || len != sizeof pid) {
            failed = story_fail("talk #%d: %s", i + 1, mp_strerror(rc));
            break;
        }
        memcpy(&pid, data, sizeof pid);
        int known = 0;
        for (int k = 0; k < WORKERS; k++)
            known |= pids[k] == pid;
        if (!known)
            failed = story_fail("a conversation ran in process %d, not one of the pool's", pid);
        for (int k = 0; k < nused; k++)
            seen |= used[k] == pid;
        if (!seen)
            used[nused++] = pid;
    }
    if (!failed) {
        printf("服务端: %d个客户端, 公用进程池里的%d个进程:", CLIENTS, nused);
        for (int k = 0; k < nused; k++)
            printf(" %d", used[k]);
        printf("\n");
        if (nused != WORKERS)
            failed = story_fail("%d processes held the conversations, want %d", nused, WORKERS);
    }
    for (int i = 0; i < CLIENTS; i++)
        mp_async_free(res[i]);
    return failed;
}

int main(int argc, char **argv)
{
    story_begin(argc, argv);
    mp_listener_t *l = NULL;
    mp_conn_t *door = NULL;
    mp_pool_t *p = NULL;
    mp_process_t *clients[CLIENTS] = { NULL };
    struct client_arg tmpl = { .index = 0 };
    pid_t pids[WORKERS];
    int rc;

    mp_listener_opts_t lo = { .backlog = 5 }; /* server.listen(5) */
    if ((rc = mp_listener_new(&l, "127.0.0.1:0", &lo)) != 0) /* server.bind(('127.0.0.1', 0)) */
        return story_fail("Listener: %s", mp_strerror(rc));
    snprintf(tmpl.address, sizeof tmpl.address, "%s", mp_listener_address(l));

    /* The listening socket, as a Connection, reaches every worker. */
    int lfd = fcntl(mp_listener_fileno(l), F_DUPFD_CLOEXEC, 0);
    if (lfd < 0)
        return story_fail("dup: %s", strerror(errno));
    if ((rc = mp_conn_from_fd(&door, lfd, 1, 0)) != 0)
        return story_fail("Connection(listening socket): %s", mp_strerror(rc));

    if ((rc = mp_barrier_new(&tmpl.served, WORKERS + 1, NULL, NULL, 0, WAIT)) != 0 ||
        (rc = mp_barrier_new(&tmpl.queued, CLIENTS - WORKERS + 1, NULL, NULL, 0, WAIT)) != 0 ||
        (rc = mp_event_new(&tmpl.leave)) != 0)
        return story_fail("Barrier/Event: %s", mp_strerror(rc));

    if ((rc = mp_pool_new(&p, WORKERS, NULL)) != 0) /* p = Pool(3) */
        return story_fail("Pool(3): %s", mp_strerror(rc));
    if (mp_pool_worker_pids(p, pids, WORKERS) != WORKERS)
        return story_fail("Pool(3) has %d workers", mp_pool_size(p));
    printf("服务端启动: %s, 进程池: %d %d %d\n", tmpl.address, (int)pids[0], (int)pids[1],
           (int)pids[2]);

    int failed = serve(p, door, &tmpl, clients, pids);
    if (failed) { /* do not wait for what will not come */
        mp_barrier_abort(tmpl.served);
        mp_barrier_abort(tmpl.queued);
        mp_event_set(tmpl.leave);
        for (int i = 0; i < CLIENTS; i++)
            if (clients[i])
                mp_process_kill(clients[i]);
        mp_pool_terminate(p);
    } else if ((rc = mp_pool_close(p)) != 0 || (rc = mp_pool_join(p, WAIT)) != 0) {
        failed = story_fail("close/join: %s", mp_strerror(rc));
    }
    for (int i = 0; i < CLIENTS; i++) {
        char who[16];
        snprintf(who, sizeof who, "client%d", i + 1);
        if (clients[i])
            failed |= story_join_ok(clients[i], who);
    }
    mp_pool_free(p);
    int alive = mp_active_children(NULL, 0);
    if (alive != 0)
        failed |= story_fail("%d children left behind", alive);
    else if (!failed)
        printf("服务端已关闭, 没有剩下子进程\n");
    mp_conn_free(door);
    mp_listener_free(l);
    mp_barrier_free(tmpl.served);
    mp_barrier_free(tmpl.queued);
    mp_event_free(tmpl.leave);
    return failed;
}

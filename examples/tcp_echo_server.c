/* tcp_echo_server.c: a TCP server with one child process per client (seed
 * 004, "通过多进程来实现一下同时和多个客户端进行连接通信").
 *
 * Python (seed 004, tcp_server.py and tcp_client.py):
 *     def talk(conn, client_addr):
 *         while True:
 *             try:
 *                 msg = conn.recv(1024)
 *                 print('客户端消息>>', msg)
 *                 if not msg: break
 *                 conn.send(msg.upper())
 *             except Exception:
 *                 break
 *     server = socket(AF_INET, SOCK_STREAM)
 *     server.bind(('127.0.0.1', 8080))
 *     server.listen(5)
 *     while True:
 *         conn, client_addr = server.accept()
 *         p = Process(target=talk, args=(conn, client_addr))
 *         p.start()
 *
 *     client = socket(AF_INET, SOCK_STREAM)
 *     client.connect(('127.0.0.1', 8080))
 *     while True:
 *         msg = input('>>: ').strip()
 *         if not msg: continue
 *         client.send(msg.encode('utf-8'))
 *         msg = client.recv(1024)
 *         print(msg.decode('utf-8'))
 *
 * The seed's point: one process holds one conversation at a time (它就是
 * 一个进程, 一个进程里面是只能一个连接的), so the server starts a process per
 * client and many clients are served at once (多进程是可以多连接的).
 *
 * Here the sockets are a Listener and Clients (Python's
 * multiprocessing.connection), which carry whole messages instead of a
 * byte stream: conn.recv(1024) becomes a receive of one message of at most
 * 1024 bytes, and a client that leaves is end of file (MP_EEOF) rather than
 * an empty b''. The server binds 127.0.0.1 port 0 (a free port, so the
 * story never collides with another program; it prints the real one) with
 * the seed's backlog of 5.
 *
 * The story runs the seed's client three times, as child processes; each
 * types two lines (instead of input()) and prints the server's answers. A
 * client says its first line, then waits at a Barrier(3) until all three
 * have had their first answer: all three conversations are open at once,
 * which only a server with a process per client can hold (with the seed's
 * one-process server the barrier would time out). The seed's server runs
 * for ever; this one also watches its clients (mp_wait on the listening
 * socket and the clients' sentinels), and once all three have left it
 * closes the listener, joins the conversation processes (each ended when
 * its client left) and checks that no child is left. The server's parent
 * closes its copy of each accepted connection once a child holds it, so
 * that the child's end of file is not held up by the parent.
 *
 * Lines of different clients interleave differently from run to run; each
 * line names its client.
 *
 * Run: build/examples/tcp_echo_server [fork|spawn|forkserver] */
#include <mproc.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "story.h"

#define CLIENTS 3
#define LINES 2      /* what each client types */
#define MAXLEN 1024  /* conn.recv(1024) */
#define WAIT 30.0    /* a wait that lasts longer fails the story */

/* talk_arg: a conversation's argument; the handle is valid in the child. */
struct talk_arg {
    mp_conn_t *conn;
};

/* client_arg: a client's argument (the address travels as a string). */
struct client_arg {
    char address[MP_ADDRESS_MAX];
    int index;
    mp_barrier_t *together; /* all three conversations open at once */
};

/* talk answers one client until it leaves (Python: def talk). */
static int talk(void *arg)
{
    const struct talk_arg *a = arg;
    int failed = 0;
    for (;;) {
        char *msg = NULL;
        size_t len = 0;
        int rc = mp_conn_recv_bytes(a->conn, (void **)&msg, &len, MAXLEN, WAIT); /* msg = conn.recv(1024) */
        if (rc == MP_EEOF) { /* if not msg: break */
            story_say("客户端消息>> (客户端断开, pid %d 结束)\n", (int)getpid());
            break;
        }
        if (rc != 0) { /* except Exception: break */
            failed = story_fail("talk: recv: %s", mp_strerror(rc));
            break;
        }
        story_say("客户端消息>> b'%.*s' (pid %d)\n", (int)len, msg, (int)getpid());
        for (size_t i = 0; i < len; i++)
            msg[i] = (char)toupper((unsigned char)msg[i]);
        rc = mp_conn_send_bytes(a->conn, msg, len); /* conn.send(msg.upper()) */
        free(msg);
        if (rc != 0) {
            failed = story_fail("talk: send: %s", mp_strerror(rc));
            break;
        }
    }
    mp_conn_close(a->conn);
    return failed;
}

/* say sends one line and prints and checks the answer. Returns 0 if it is
 * the line in capitals. */
static int say(mp_conn_t *c, const char *line)
{
    char *answer = NULL, want[64];
    size_t len = 0;
    int rc;

    story_say(">>: %s\n", line);
    if ((rc = mp_conn_send_bytes(c, line, strlen(line))) != 0) /* client.send(msg.encode('utf-8')) */
        return story_fail("%s: send: %s", line, mp_strerror(rc));
    if ((rc = mp_conn_recv_bytes(c, (void **)&answer, &len, MAXLEN, WAIT)) != 0) /* msg = client.recv(1024) */
        return story_fail("%s: recv: %s", line, mp_strerror(rc));
    story_say("%.*s\n", (int)len, answer); /* print(msg.decode('utf-8')) */
    snprintf(want, sizeof want, "%s", line);
    for (char *p = want; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    rc = len == strlen(want) && memcmp(answer, want, len) == 0 ? 0
         : story_fail("\"%s\" came back as \"%.*s\"", line, (int)len, answer);
    free(answer);
    return rc;
}

/* client is the seed's tcp_client.py, typing LINES lines. */
static int client(void *arg)
{
    const struct client_arg *a = arg;
    mp_conn_t *c = NULL;
    char line[LINES][64];
    int rc;

    snprintf(line[0], sizeof line[0], "hello from client%d", a->index);
    snprintf(line[1], sizeof line[1], "bye from client%d", a->index);
    if ((rc = mp_client(&c, a->address, NULL, WAIT)) != 0) /* client.connect(...) */
        return story_fail("client%d: connect %s: %s", a->index, a->address, mp_strerror(rc));
    int failed = say(c, line[0]);
    /* Every client has its first answer: three conversations at once. */
    if (!failed && (rc = mp_barrier_wait(a->together, WAIT)) < 0)
        failed = story_fail("client%d: the other clients were not served meanwhile: %s",
                            a->index, mp_strerror(rc));
    for (int i = 1; i < LINES && !failed; i++)
        failed = say(c, line[i]);
    mp_conn_free(c); /* the server's talk sees end of file */
    return failed;
}

/* serve accepts one waiting client and hands it to a new process; the
 * parent then closes its copy of the connection. */
static int serve(mp_listener_t *l, mp_process_t **talker)
{
    mp_conn_t *conn = NULL;
    int rc = mp_listener_accept(l, &conn, WAIT); /* conn, client_addr = server.accept() */
    if (rc != 0)
        return story_fail("accept: %s", mp_strerror(rc));
    struct talk_arg a = { .conn = conn };
    if ((rc = mp_process_new(talker, talk, &a, sizeof a, NULL)) == 0) /* p = Process(target=talk, ...) */
        rc = mp_process_start(*talker);                               /* p.start() */
    mp_conn_free(conn); /* the child holds it now */
    if (rc != 0)
        return story_fail("talk: %s", mp_strerror(rc));
    /* client_addr: the client's address, as Listener.last_accepted */
    printf("服务端: 客户端 %s 连上了, 交给子进程 %d\n", mp_listener_last_accepted(l),
           (int)mp_process_pid(*talker));
    return 0;
}

/* serve_until_gone accepts clients until every client process has ended.
 * Returns 0, or 1 if something failed; *ntalk counts the talkers started. */
static int serve_until_gone(mp_listener_t *l, mp_process_t **clients,
                            mp_process_t **talkers, int *ntalk)
{
    int gone[CLIENTS] = { 0 }, left = CLIENTS;
    while (left > 0) {
        mp_waitable_t w[1 + CLIENTS];
        int who[1 + CLIENTS];
        size_t n = 0;
        w[n++] = mp_waitable_fd(mp_listener_fileno(l));
        for (int i = 0; i < CLIENTS; i++)
            if (!gone[i]) {
                who[n] = i;
                w[n++] = mp_waitable_process(clients[i]);
            }
        int rc = mp_wait(w, n, WAIT); /* multiprocessing.connection.wait */
        if (rc <= 0)
            return story_fail("wait: %s", rc == 0 ? "nothing happened" : mp_strerror(rc));
        if (w[0].ready) {
            if (*ntalk == CLIENTS)
                return story_fail("more connections than clients");
            if (serve(l, &talkers[(*ntalk)++]) != 0)
                return 1;
        }
        for (size_t k = 1; k < n; k++)
            if (w[k].ready) {
                gone[who[k]] = 1;
                left--;
            }
    }
    return 0;
}

int main(int argc, char **argv)
{
    story_begin(argc, argv);
    mp_listener_t *l = NULL;
    mp_barrier_t *together = NULL;
    mp_process_t *clients[CLIENTS] = { NULL }, *talkers[CLIENTS] = { NULL };
    int ntalk = 0, rc;

    mp_listener_opts_t lo = { .backlog = 5 }; /* server.listen(5) */
    if ((rc = mp_listener_new(&l, "127.0.0.1:0", &lo)) != 0) /* server.bind(('127.0.0.1', 0)) */
        return story_fail("Listener: %s", mp_strerror(rc));
    printf("服务端启动: %s\n", mp_listener_address(l));
    if ((rc = mp_barrier_new(&together, CLIENTS, NULL, NULL, 0, WAIT)) != 0)
        return story_fail("Barrier: %s", mp_strerror(rc));

    for (int i = 0; i < CLIENTS; i++) {
        struct client_arg a = { .index = i + 1, .together = together };
        snprintf(a.address, sizeof a.address, "%s", mp_listener_address(l));
        if ((rc = mp_process_new(&clients[i], client, &a, sizeof a, NULL)) != 0 ||
            (rc = mp_process_start(clients[i])) != 0)
            return story_fail("client%d: %s", i + 1, mp_strerror(rc));
    }

    int failed = serve_until_gone(l, clients, talkers, &ntalk);
    mp_listener_close(l); /* every client has left: stop listening */
    if (failed) { /* do not wait for a minute for what will not come */
        for (int i = 0; i < CLIENTS; i++)
            mp_process_kill(clients[i]);
        for (int i = 0; i < ntalk; i++)
            mp_process_kill(talkers[i]);
    } else {
        printf("服务端: %d个客户端都走了, 关闭服务\n", CLIENTS);
    }

    for (int i = 0; i < ntalk; i++) /* each ended when its client left */
        failed |= story_join_ok(talkers[i], "talk");
    for (int i = 0; i < CLIENTS; i++) {
        char who[16];
        snprintf(who, sizeof who, "client%d", i + 1);
        failed |= story_join_ok(clients[i], who);
    }
    if (!failed && ntalk != CLIENTS)
        failed = story_fail("%d conversations for %d clients", ntalk, CLIENTS);
    int alive = mp_active_children(NULL, 0);
    if (alive != 0)
        failed |= story_fail("%d children left behind", alive);
    else
        printf("服务端已关闭, 没有剩下子进程\n");
    mp_listener_free(l);
    mp_barrier_free(together);
    return failed;
}

/* manager_queue_server.c: a work queue served over TCP by a manager, the
 * first of three programs (with manager_queue_worker.c and
 * manager_queue_feeder.c). Seed 003: a Manager's server process "holds
 * Python objects and allows other processes to manipulate them using
 * proxies", and p.authkey "的用途是为涉及网络连接的底层进程间通信提供安全性,
 * 这类连接只有在具有相同的身份验证键时才能成功".
 *
 * Python (the remote-manager pattern of multiprocessing.managers):
 *     jobs, results = queue.Queue(), queue.Queue()
 *     class QueueManager(BaseManager): pass
 *     QueueManager.register('jobs', callable=lambda: jobs)
 *     QueueManager.register('results', callable=lambda: results)
 *     m = QueueManager(address=('127.0.0.1', 0), authkey=b'abracadabra')
 *     s = m.get_server()
 *     print(s.address)
 *     s.serve_forever()
 *
 * The server publishes two Queues by name, "jobs" and "results", on
 * 127.0.0.1 with a free port (port 0: never in use by another program) and
 * the authkey b'abracadabra'. It prints its address; given a file name it
 * also writes the address there (for a script that starts the other two
 * programs: examples/run-demo.sh). It serves until a client asks it to stop
 * (mp_manager_shutdown on a connected manager: the feeder does this at the
 * end) or it gets SIGINT or SIGTERM (a second one kills it). The objects
 * live in this process; the server starts no process of its own, so it
 * takes no start method.
 *
 * Run, in three terminals:
 *     build/examples/manager_queue_server [ADDRESS_FILE]
 *     build/examples/manager_queue_worker ADDRESS [fork|spawn|forkserver]
 *     build/examples/manager_queue_feeder ADDRESS */
#include <mproc.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "story.h"

#define AUTHKEY "abracadabra" /* the secret every client must know */

static mp_mserver_t *server;

/* on_signal stops serving (mp_mserver_stop is async-signal-safe). It runs
 * once (SA_RESETHAND): a second SIGINT or SIGTERM ends the server at once,
 * should a clean stop take long. */
static void on_signal(int sig)
{
    (void)sig;
    mp_mserver_stop(server);
}

/* hand_over writes the address to path: to a temporary name first, then
 * renamed, so that a reader never sees half an address. Returns 0 or 1. */
static int hand_over(const char *path, const char *address)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return story_fail("%s: name too long", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return story_fail("%s: %s", tmp, strerror(errno));
    int bad = fprintf(f, "%s\n", address) < 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        unlink(tmp);
        return story_fail("%s: %s", path, strerror(errno));
    }
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
        fprintf(stderr, "usage: %s [ADDRESS_FILE]\n", argv[0]);
        return 2;
    }

    mp_manager_opts_t opts = {
        .address = "127.0.0.1:0",                   /* address=('127.0.0.1', 0) */
        .authkey = AUTHKEY, .authkey_len = strlen(AUTHKEY), /* authkey=b'abracadabra' */
    };
    int rc = mp_mserver_new(&server, &opts); /* s = m.get_server() */
    if (rc != 0)
        return story_fail("server: %s", mp_strerror(rc));
    if ((rc = mp_mserver_add(server, "jobs", "Queue", NULL, 0)) != 0 ||   /* register('jobs', ...) */
        (rc = mp_mserver_add(server, "results", "Queue", NULL, 0)) != 0) { /* register('results', ...) */
        mp_mserver_free(server);
        return story_fail("server: Queue: %s", mp_strerror(rc));
    }

    struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESETHAND };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    const char *address = mp_mserver_address(server); /* s.address */
    printf("[server] 服务端 pid %d 在 %s 上提供 'jobs' 和 'results' 两个队列 "
           "(authkey b'%s')\n", (int)getpid(), address, AUTHKEY);
    if (argc == 2 && hand_over(argv[1], address) != 0) {
        mp_mserver_free(server);
        return 1;
    }

    rc = mp_mserver_serve_forever(server); /* s.serve_forever() */
    mp_mserver_free(server);
    if (rc != 0)
        return story_fail("serve_forever: %s", mp_strerror(rc));
    printf("[server] 服务结束\n");
    return 0;
}

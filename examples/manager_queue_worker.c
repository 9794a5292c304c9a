/* manager_queue_worker.c: the program that drains the work queue served by
 * manager_queue_server.c (see there), with three worker processes.
 *
 * Python:
 *     class QueueManager(BaseManager): pass
 *     QueueManager.register('jobs'); QueueManager.register('results')
 *     m = QueueManager(address=(host, port), authkey=b'abracadabra')
 *     m.connect()
 *     jobs, results = m.jobs(), m.results()
 *     def work(jobs, results):
 *         while True:
 *             n = jobs.get()
 *             if n is None:           # the end: pass it on to the others
 *                 jobs.put(None)
 *                 break
 *             time.sleep(0.05)
 *             results.put({'job': n, 'result': n * n, 'worker': os.getpid()})
 *     ps = [Process(target=work, args=(jobs, results)) for i in range(3)]
 *     for p in ps: p.start()
 *     for p in ps: p.join()
 *     results.put({'bye': 3})
 *
 * The program connects to the server by address with the authkey, gets
 * proxies to the queues it published ("jobs", "results") and hands them to
 * three worker processes in their argument (under fork, spawn or
 * forkserver); each process opens its own connection to the server. A
 * worker takes a job (an integer n), works a little, and puts the result
 * {'job': n, 'result': n*n, 'worker': pid}. The end of the jobs is a None
 * that the feeder puts after the last one; a worker that gets it puts it
 * back for the next worker and ends. When all three have ended the program
 * says so on the results queue ({'bye': 3}): the feeder waits for that
 * before it shuts the server down, so no worker is cut off.
 *
 * Run: build/examples/manager_queue_worker ADDRESS [fork|spawn|forkserver] */
#include <mproc.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "story.h"

#define AUTHKEY "abracadabra" /* the server's secret */
#define NWORKERS 3
#define WORK 0.05   /* seconds a job takes */
#define WAIT 30.0   /* a wait that lasts longer fails the program */

struct work_arg {
    mp_proxy_t *jobs, *results;
};

/* work is a worker process: jobs until the None. */
static int work(void *arg)
{
    const struct work_arg *a = arg;
    int done = 0, rc;
    for (;;) {
        mp_val_t *job = NULL;
        if ((rc = mp_mqueue_get(a->jobs, &job, WAIT)) != 0) /* n = jobs.get() */
            return story_fail("worker %d: jobs.get(): %s", (int)getpid(), mp_strerror(rc));
        if (job->type == MP_VAL_NIL) { /* if n is None: */
            mp_val_free(job);
            story_say("[worker %d] 拿到结束标记 None, 放回去给别的进程; 一共做了 %d 个任务\n",
                      (int)getpid(), done);
            mp_val_t none = mp_val_nil();
            if ((rc = mp_mqueue_put(a->jobs, &none, WAIT)) != 0) /* jobs.put(None) */
                return story_fail("worker %d: jobs.put(None): %s", (int)getpid(),
                                  mp_strerror(rc));
            return 0;
        }
        if (job->type != MP_VAL_INT) {
            mp_val_free(job);
            return story_fail("worker %d: a job that is not an integer", (int)getpid());
        }
        int64_t n = job->v.i;
        mp_val_free(job);
        story_sleep(WORK);
        mp_val_kv_t kv[3] = {
            { mp_val_str("job"), mp_val_int(n) },
            { mp_val_str("result"), mp_val_int(n * n) },
            { mp_val_str("worker"), mp_val_int(getpid()) },
        };
        mp_val_t result = mp_val_map(kv, 3);
        story_say("[worker %d] 任务 %" PRId64 " -> %" PRId64 "\n", (int)getpid(), n, n * n);
        if ((rc = mp_mqueue_put(a->results, &result, WAIT)) != 0) /* results.put({...}) */
            return story_fail("worker %d: results.put(): %s", (int)getpid(), mp_strerror(rc));
        done++;
    }
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    mp_start_method_t method;
    if (argc < 2 || argc > 3 ||
        (argc == 3 && (mp_start_method_parse(argv[2], &method) != 0 ||
                       mp_set_start_method(method) != 0))) {
        fprintf(stderr, "usage: %s ADDRESS [fork|spawn|forkserver]\n", argv[0]);
        return 2;
    }
    const char *address = argv[1];

    mp_manager_t *m = NULL;
    mp_proxy_t *jobs = NULL, *results = NULL;
    mp_process_t *ps[NWORKERS] = { NULL };
    int rc, failed = 0, n = 0;

    rc = mp_manager_connect(&m, address, AUTHKEY, strlen(AUTHKEY), WAIT); /* m.connect() */
    if (rc != 0)
        return story_fail("worker: connect %s: %s", address, mp_strerror(rc));
    if ((rc = mp_manager_get(m, "jobs", &jobs)) != 0 ||        /* m.jobs() */
        (rc = mp_manager_get(m, "results", &results)) != 0) {  /* m.results() */
        failed = story_fail("worker: get the queues: %s", mp_strerror(rc));
        goto out;
    }
    printf("[worker] 连上了 %s, 开 %d 个进程 (%s) 取任务\n", address, NWORKERS,
           mp_start_method_name(mp_get_start_method()));

    struct work_arg a = { .jobs = jobs, .results = results };
    for (; n < NWORKERS; n++)
        if ((rc = mp_process_new(&ps[n], work, &a, sizeof a, NULL)) != 0 || /* Process(target=work, ...) */
            (rc = mp_process_start(ps[n])) != 0) {                        /* p.start() */
            mp_process_free(ps[n]);
            failed = story_fail("worker: process %d: %s", n, mp_strerror(rc));
            break;
        }
    for (int i = 0; i < n; i++) /* p.join() */
        failed |= story_join_ok(ps[i], "worker process");
    if (failed)
        goto out;

    mp_val_kv_t kv[1] = { { mp_val_str("bye"), mp_val_int(NWORKERS) } };
    mp_val_t bye = mp_val_map(kv, 1);
    printf("[worker] %d 个进程都结束了, 告诉 feeder: {'bye': %d}\n", NWORKERS, NWORKERS);
    if ((rc = mp_mqueue_put(results, &bye, WAIT)) != 0) /* results.put({'bye': 3}) */
        failed = story_fail("worker: results.put({'bye': %d}): %s", NWORKERS, mp_strerror(rc));
out:
    mp_proxy_free(jobs);
    mp_proxy_free(results);
    mp_manager_free(m);
    return failed;
}

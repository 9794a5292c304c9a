/* manager_queue_feeder.c: the program that feeds the work queue served by
 * manager_queue_server.c (see there), collects the results, and shuts the
 * server down at the end.
 *
 * Python:
 *     class QueueManager(BaseManager): pass
 *     QueueManager.register('jobs'); QueueManager.register('results')
 *     try:
 *         QueueManager(address=(host, port), authkey=b'wrong-key').connect()
 *     except AuthenticationError:
 *         print('rejected')
 *     m = QueueManager(address=(host, port), authkey=b'abracadabra')
 *     m.connect()
 *     jobs, results = m.jobs(), m.results()
 *     for n in range(1, 11):
 *         jobs.put(n)
 *     jobs.put(None)                  # the end of the jobs
 *     got = {}
 *     while len(got) < 10:
 *         r = results.get()
 *         got[r['job']] = r['result']
 *     results.get()                   # {'bye': 3}: the workers are done
 *     m.shutdown()   # in Python one calls the server's shutdown through a
 *                    # registered callable; here mp_manager_shutdown asks it
 *
 * First it knocks with a wrong authkey: the server refuses it (MP_EAUTH,
 * Python's AuthenticationError), as seed 003 says connections succeed only
 * with the same authentication key. Then it connects with the right key,
 * puts ten jobs (the integers 1..10) and a None that ends them, and takes
 * the results as the worker processes put them, in whatever order they
 * finish; it checks that every job came back exactly once with n*n, and
 * tells how many jobs each worker process did (that depends on timing).
 * After the ten results it waits for the worker program's {'bye': 3},
 * which says that every worker process has ended, and then asks the server
 * to stop (mp_manager_shutdown on a connected manager).
 *
 * Run: build/examples/manager_queue_feeder ADDRESS */
#include <mproc.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "story.h"

#define AUTHKEY "abracadabra" /* the server's secret */
#define WRONG_KEY "wrong-key"
#define NJOBS 10
#define MAXWORKERS 16
#define WAIT 30.0 /* a wait that lasts longer fails the program */

/* int_of gives the integer under key in map v; returns 0 or -1. */
static int int_of(const mp_val_t *v, const char *key, int64_t *out)
{
    const mp_val_t *x = mp_val_map_get(v, key);
    if (!x || x->type != MP_VAL_INT)
        return -1;
    *out = x->v.i;
    return 0;
}

struct tally {
    int64_t pid[MAXWORKERS];
    int jobs[MAXWORKERS];
    int n;
};

/* collect takes the NJOBS results, in the order they come, and checks
 * them. Returns 0 or 1. */
static int collect(mp_proxy_t *results, int64_t got[NJOBS + 1], struct tally *t)
{
    for (int have = 0; have < NJOBS; have++) {
        mp_val_t *r = NULL;
        int64_t job = 0, result = 0, worker = 0;
        int rc = mp_mqueue_get(results, &r, WAIT); /* r = results.get() */
        if (rc != 0)
            return story_fail("feeder: results.get() with %d of %d results: %s", have, NJOBS,
                              mp_strerror(rc));
        rc = int_of(r, "job", &job) || int_of(r, "result", &result) ||
             int_of(r, "worker", &worker);
        mp_val_free(r);
        if (rc != 0)
            return story_fail("feeder: a result that is not {'job', 'result', 'worker'} "
                              "(after %d results)", have);
        if (job < 1 || job > NJOBS || got[job] != 0)
            return story_fail("feeder: job %" PRId64 " came back %s", job,
                              job < 1 || job > NJOBS ? "but was never given" : "twice");
        if (result != job * job)
            return story_fail("feeder: job %" PRId64 " gave %" PRId64, job, result);
        printf("[feeder] 结果: %" PRId64 " * %" PRId64 " = %" PRId64 " (worker %" PRId64 ")\n",
               job, job, result, worker);
        got[job] = result;
        int i = 0;
        while (i < t->n && t->pid[i] != worker)
            i++;
        if (i == t->n) {
            if (t->n == MAXWORKERS)
                return story_fail("feeder: more than %d worker processes", MAXWORKERS);
            t->pid[t->n] = worker;
            t->jobs[t->n++] = 0;
        }
        t->jobs[i]++;
    }
    return 0;
}

/* wait_bye waits for the worker program's {'bye': n}. Returns 0 or 1. */
static int wait_bye(mp_proxy_t *results)
{
    mp_val_t *r = NULL;
    int64_t nbye = 0;
    int rc = mp_mqueue_get(results, &r, WAIT); /* results.get() */
    if (rc != 0)
        return story_fail("feeder: waiting for the workers' bye: %s", mp_strerror(rc));
    rc = int_of(r, "bye", &nbye);
    mp_val_free(r);
    if (rc != 0)
        return story_fail("feeder: something else than {'bye': n} after the results");
    printf("[feeder] worker 程序说 {'bye': %" PRId64 "}: 它的进程都结束了\n", nbye);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 2) {
        fprintf(stderr, "usage: %s ADDRESS\n", argv[0]);
        return 2;
    }
    const char *address = argv[1];
    mp_manager_t *m = NULL;
    mp_proxy_t *jobs = NULL, *results = NULL;
    int rc, failed = 0;

    /* A wrong key: refused. */
    rc = mp_manager_connect(&m, address, WRONG_KEY, strlen(WRONG_KEY), WAIT);
    if (rc == 0) {
        mp_manager_free(m);
        return story_fail("feeder: the server let in authkey b'%s'", WRONG_KEY);
    }
    if (rc != MP_EAUTH)
        return story_fail("feeder: connect with a wrong key: %s, want MP_EAUTH",
                          mp_strerror(rc));
    printf("[feeder] 用 authkey b'%s' 连 %s: 被拒绝 (%s)\n", WRONG_KEY, address,
           mp_strerror(rc));

    rc = mp_manager_connect(&m, address, AUTHKEY, strlen(AUTHKEY), WAIT); /* m.connect() */
    if (rc != 0)
        return story_fail("feeder: connect %s: %s", address, mp_strerror(rc));
    printf("[feeder] 用 authkey b'%s' 连上了 %s\n", AUTHKEY, address);
    if ((rc = mp_manager_get(m, "jobs", &jobs)) != 0 ||        /* m.jobs() */
        (rc = mp_manager_get(m, "results", &results)) != 0) {  /* m.results() */
        failed = story_fail("feeder: get the queues: %s", mp_strerror(rc));
        goto out;
    }

    for (int n = 1; n <= NJOBS; n++) {
        mp_val_t job = mp_val_int(n);
        if ((rc = mp_mqueue_put(jobs, &job, WAIT)) != 0) { /* jobs.put(n) */
            failed = story_fail("feeder: jobs.put(%d): %s", n, mp_strerror(rc));
            goto out;
        }
    }
    mp_val_t none = mp_val_nil();
    if ((rc = mp_mqueue_put(jobs, &none, WAIT)) != 0) { /* jobs.put(None) */
        failed = story_fail("feeder: jobs.put(None): %s", mp_strerror(rc));
        goto out;
    }
    printf("[feeder] 放了 %d 个任务 (1..%d), 最后放一个 None 表示没有了\n", NJOBS, NJOBS);

    int64_t got[NJOBS + 1] = { 0 };
    struct tally t = { .n = 0 };
    if ((failed = collect(results, got, &t)) != 0)
        goto out;
    printf("[feeder] %d 个结果都齐了: [", NJOBS);
    for (int n = 1; n <= NJOBS; n++)
        printf("%s%" PRId64, n > 1 ? ", " : "", got[n]);
    printf("]\n[feeder] 每个 worker 进程做的任务数:");
    for (int i = 0; i < t.n; i++)
        printf(" %" PRId64 ": %d%s", t.pid[i], t.jobs[i], i + 1 < t.n ? "," : "\n");
    failed = wait_bye(results);

out:
    mp_proxy_free(jobs);
    mp_proxy_free(results);
    /* Done (or failed): ask the server to stop, so nobody waits for it. */
    printf("[feeder] 请服务端关闭 (shutdown)\n");
    if ((rc = mp_manager_shutdown(m, WAIT)) != 0)
        failed |= story_fail("feeder: shutdown: %s", mp_strerror(rc));
    mp_manager_free(m);
    return failed;
}

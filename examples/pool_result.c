/* pool_result.c: AsyncResult and terminate (seed 003, "进程池", 其它方法).
 *
 * Seed 003 lists them without a program:
 *
 *     方法apply_async()和map_async()的返回值是AsyncResul的实例obj。实例具有以下方法
 *     obj.get(): 返回结果，如果有必要则等待结果到达。timeout是可选的。如果在指定
 *         时间内还没有到达，将引发一场。如果远程操作中引发了异常，它将在调用此方法
 *         时再次被引发。
 *     obj.ready(): 如果调用完成，返回True
 *     obj.successful(): 如果调用完成且没有引发异常，返回True，如果在结果就绪之前
 *         调用此方法，引发异常
 *     obj.wait([timeout]): 等待结果变为可用。
 *     obj.terminate(): 立即终止所有工作进程，同时不执行任何清理或结束任何挂起工作。
 *         如果p被垃圾回收，将自动调用此函数
 *
 * (terminate is the pool's, p.terminate(), not the result's.) The story, in
 * Python:
 *
 *     p = Pool(0)                      # ValueError: Number of processes must be at least 1
 *     p = Pool(2)
 *     res = p.apply_async(download, args=(go,))   # waits until go is set
 *     res.ready()                      # False
 *     res.successful()                 # ValueError: ... not ready
 *     res.get(timeout=0.3)             # multiprocessing.TimeoutError
 *     res.wait(0.3); res.ready()       # still False
 *     go.set()
 *     res.wait(); res.ready(); res.successful(); res.get()   # True True '下载完成'
 *
 *     res = p.apply_async(broken, error_callback=on_error)
 *     res.get()                        # the task's exception, raised again
 *     res.successful()                 # False
 *
 *     res_l = [p.apply_async(download, args=(never,)) for i in range(10)]
 *     p.terminate()                    # at once: 2 running, 8 queued
 *     [r.get() for r in res_l]         # each fails
 *     p.join()
 *
 * A task that is "not ready" waits for an Event the main process sets, so
 * ready() is False for certain, not by luck of timing. In C an exception is
 * a code: a task returns one (here -ENOENT, 404), get returns it; a
 * terminated task's get returns MP_ETERMINATED. terminate kills the workers
 * in the middle of their tasks and must return at once: the story fails if
 * it takes 5 s (each task would wait 20 s), or if a worker is left.
 *
 * Run: build/examples/pool_result [fork|spawn|forkserver] */
#include <mproc.h>

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "story.h"

#define WORKERS 2
#define DOOMED 10    /* tasks in the pool when it is terminated */
#define WAIT 20.0    /* a wait that lasts longer fails the story */
#define PROMPT 5.0   /* terminate must return before this */

static const char DONE[] = "下载完成";

/* download waits until the Event (the argument) is set, then says it is
 * done; 20 s without it is an error. */
static int download(const void *arg, size_t arg_len, mp_out_t *out)
{
    mp_event_t *go;
    if (arg_len != sizeof go)
        return -EINVAL;
    memcpy(&go, arg, sizeof go);
    int rc = mp_event_wait(go, WAIT);
    if (rc != 0)
        return rc;
    return mp_out_write(out, DONE, sizeof DONE - 1);
}

/* broken is a task that fails: 404, as the error code -ENOENT. */
static int broken(const void *arg, size_t arg_len, mp_out_t *out)
{
    story_say("<进程%d> broken: 404\n", (int)getpid());
    return -ENOENT;
}

/* on_error is broken's error_callback; it runs in the main process. */
static atomic_int error_seen;
static atomic_int error_pid;
static void on_error(mp_async_t *r, int err, void *user)
{
    story_say("error_callback: %s\n", mp_strerror(err));
    atomic_store(&error_pid, (int)getpid());
    atomic_store(&error_seen, err);
}

/* act_result: get, ready, successful, wait on one result. */
static int act_result(mp_pool_t *p, mp_event_t *go)
{
    mp_async_t *res = NULL;
    const void *data = NULL;
    size_t len = 0;
    int rc, failed = 0;

    printf("---- AsyncResult: get, ready, successful, wait ----\n");
    if ((rc = mp_pool_apply_async(p, download, &go, sizeof go, NULL, &res)) != 0)
        return story_fail("apply_async(download): %s", mp_strerror(rc));

    int ready = mp_async_ready(res);
    printf("res.ready(): %s\n", story_bool(ready));
    int ok = mp_async_successful(res);
    printf("res.successful(): %s\n", ok == -EAGAIN ? "ValueError (还没有就绪)" : story_bool(ok));
    double t0 = story_now();
    rc = mp_async_get(res, 0.3, &data, &len);
    printf("res.get(timeout=0.3): %s, 等了%.1f秒\n",
           rc == -ETIMEDOUT ? "TimeoutError" : mp_strerror(rc), story_now() - t0);
    int waited = mp_async_wait(res, 0.3);
    printf("res.wait(0.3); res.ready(): %s\n", story_bool(mp_async_ready(res)));
    if (ready != 0 || ok != -EAGAIN || rc != -ETIMEDOUT || waited != -ETIMEDOUT)
        failed = story_fail("before go.set(): ready %d, successful %d, get %d, wait %d",
                            ready, ok, rc, waited);

    mp_event_set(go); /* go.set() */
    printf("go.set()\n");
    if (!failed) {
        waited = mp_async_wait(res, WAIT);
        ready = mp_async_ready(res);
        ok = mp_async_successful(res);
        rc = mp_async_get(res, WAIT, &data, &len);
        printf("res.wait(); res.ready(): %s; res.successful(): %s; res.get(): '%.*s'\n",
               story_bool(ready), story_bool(ok == 1), (int)len, (const char *)data);
        if (waited != 0 || ready != 1 || ok != 1 || rc != 0 || len != sizeof DONE - 1 ||
            memcmp(data, DONE, len) != 0)
            failed = story_fail("after go.set(): wait %d, ready %d, successful %d, get %d",
                                waited, ready, ok, rc);
    }
    mp_async_free(res);
    return failed;
}

/* act_error: the task's error comes back from get, and to error_callback. */
static int act_error(mp_pool_t *p)
{
    mp_async_t *res = NULL;
    int rc;

    printf("---- 远程操作中引发了异常 ----\n");
    mp_async_opts_t cb = { .error_callback = on_error };
    if ((rc = mp_pool_apply_async(p, broken, NULL, 0, &cb, &res)) != 0)
        return story_fail("apply_async(broken): %s", mp_strerror(rc));
    rc = mp_async_get(res, WAIT, NULL, NULL);
    int ok = mp_async_successful(res);
    printf("res.get(): %s (%d); res.successful(): %s\n", mp_strerror(rc), rc,
           story_bool(ok == 1));
    mp_async_free(res);
    if (rc != -ENOENT || ok != 0)
        return story_fail("broken: get %d, successful %d; want -ENOENT and 0", rc, ok);

    /* The error callback runs in the pool's handler thread: soon, if not yet. */
    double deadline = story_now() + WAIT;
    while (atomic_load(&error_seen) == 0 && story_now() < deadline)
        story_sleep(0.01);
    if (atomic_load(&error_seen) != -ENOENT)
        return story_fail("error_callback got %d, want -ENOENT", atomic_load(&error_seen));
    if (atomic_load(&error_pid) != (int)getpid())
        return story_fail("error_callback ran in process %d, not the main process",
                          atomic_load(&error_pid));
    printf("error_callback 在主进程 %d 里执行\n", (int)getpid());
    return 0;
}

/* act_terminate: terminate with tasks running and queued. */
static int act_terminate(mp_pool_t *p, mp_event_t *never)
{
    mp_async_t *res_l[DOOMED] = { NULL };
    int rc, failed = 0;

    printf("---- p.terminate() ----\n");
    for (int i = 0; i < DOOMED && !failed; i++)
        if ((rc = mp_pool_apply_async(p, download, &never, sizeof never, NULL, &res_l[i])) != 0)
            failed = story_fail("apply_async(download) #%d: %s", i, mp_strerror(rc));
    if (failed)
        return failed;
    /* Both workers take a task (the others stay queued). */
    story_sleep(0.2);

    double t0 = story_now();
    rc = mp_pool_terminate(p); /* p.terminate() */
    double took = story_now() - t0;
    printf("p.terminate(): %s, 用时%.2f秒 (每个任务本来要等%.0f秒)\n",
           rc == 0 ? "立即终止" : mp_strerror(rc), took, WAIT);
    if (rc != 0 || took >= PROMPT)
        return story_fail("terminate: %s after %.2f s", mp_strerror(rc), took);

    int terminated = 0;
    for (int i = 0; i < DOOMED; i++) {
        rc = mp_async_get(res_l[i], WAIT, NULL, NULL);
        if (rc == MP_ETERMINATED)
            terminated++;
        else
            failed = story_fail("task %d after terminate: %s, want MP_ETERMINATED", i,
                                mp_strerror(rc));
        mp_async_free(res_l[i]);
    }
    printf("[r.get() for r in res_l]: %d个都是 %s\n", terminated, mp_strerror(MP_ETERMINATED));

    if (!failed && (rc = mp_pool_join(p, WAIT)) != 0) /* p.join() */
        failed = story_fail("join after terminate: %s", mp_strerror(rc));
    int alive = mp_active_children(NULL, 0);
    if (!failed && alive != 0)
        failed = story_fail("%d workers left after terminate and join", alive);
    if (!failed)
        printf("p.join(): 工作进程都已结束, 没有剩下子进程\n");
    return failed;
}

int main(int argc, char **argv)
{
    story_begin(argc, argv);
    mp_pool_t *p = NULL;
    mp_event_t *go = NULL, *never = NULL;
    int rc, failed;

    rc = mp_pool_new(&p, 0, NULL); /* Pool(0) */
    printf("Pool(0): %s\n", mp_strerror(rc));
    if (rc != -EINVAL)
        return story_fail("Pool(0) gave %d, want -EINVAL", rc);

    if ((rc = mp_event_new(&go)) != 0 || (rc = mp_event_new(&never)) != 0)
        return story_fail("Event(): %s", mp_strerror(rc));
    if ((rc = mp_pool_new(&p, WORKERS, NULL)) != 0) /* p = Pool(2) */
        return story_fail("Pool(2): %s", mp_strerror(rc));

    failed = act_result(p, go);
    if (!failed)
        failed = act_error(p);
    if (!failed)
        failed = act_terminate(p, never);

    mp_pool_free(p);
    mp_event_free(go);
    mp_event_free(never);
    return failed;
}

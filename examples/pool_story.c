/* pool_story.c: the process pool (seed 003, "进程池"): Pool(3), apply
 * against apply_async, callbacks, close and join.
 *
 * Seed 003 explains why a pool (开启进程是需要占用系统资源的, 通常有几个核就开几个
 * 进程) and lists its methods; it prints no program for them. This story
 * runs what the list says:
 *
 *     Pool([numprocess [,initializer [, initargs]]]): 创建进程池
 *         如果指定numprocess为3，则进程池会从无到有创建三个进程，然后自始至终
 *         使用这三个进程去执行所有任务，不会开启其他进程
 *     p.apply(func [, args]): 在一个池工作进程中执行func(*args),然后返回结果
 *         ... 如果要通过不同参数并发地执行func函数，必须从不同线程调用p.apply()
 *         函数或者使用p.apply_async()
 *     p.apply_async(func [, args]): ... 此方法的结果是AsyncResult类的实例，
 *         callback是可调用对象，接收输入参数。当func的结果变为可用时，将理解
 *         传递给callback。callback禁止执行任何阻塞操作
 *     p.close(): 关闭进程池，防止进一步操作。如果所有操作持续挂起，它们将在
 *         工作进程终止前完成
 *     p.join(): 等待所有工作进程退出。此方法只能在close()或terminate()之后调用
 *
 * in three acts, each the C form of this Python:
 *
 * 1. 同步调用 apply:
 *        def work(n):
 *            print('%s run' % os.getpid())
 *            time.sleep(3)
 *            return n**2
 *        p = Pool(3)        # 从无到有创建三个进程, 以后一直是这三个进程在执行任务
 *        res_l = []
 *        for i in range(10):
 *            res = p.apply(work, args=(i,))   # 同步调用: 原地等着拿到结果
 *            res_l.append(res)
 *        print(res_l)
 *    Ten tasks of 0.1 s each take at least 1 s: one after another, on one
 *    worker at a time (the story checks the time: it cannot be less).
 *
 * 2. 异步调用 apply_async, on the same pool:
 *        for i in range(10):
 *            res = p.apply_async(work, args=(i,))  # 每次最多3个子进程在异步执行
 *            res_l.append(res)
 *        p.join()           # ValueError: Pool is still running
 *        p.close()
 *        p.apply_async(work, args=(10,))           # ValueError: Pool not running
 *        p.join()           # 等待进程池内任务都处理完
 *        print([res.get() for res in res_l])
 *    The three workers run three tasks at once: the first three tasks meet
 *    at a Barrier(3), which only three tasks running together can pass (the
 *    seed's time.sleep(3) makes that likely; the barrier makes it certain).
 *    After join every result is ready without waiting (close lets the
 *    queued tasks finish), and every task of both acts ran in one of the
 *    three processes the pool started with.
 *
 * 3. 回调函数 callback (the usual crawler example, not in the seed; the
 *    pages are made up here, nothing is downloaded):
 *        def get_page(url):
 *            print('<进程%s> get %s' % (os.getpid(), url))
 *            return {'url': url, 'text': requests.get(url).text}
 *        def parse_page(res):
 *            print('<进程%s> parse %s' % (os.getpid(), res['url']))
 *            with open('db.txt', 'a') as f:
 *                f.write('url:<%s> size:[%s]\n' % (res['url'], len(res['text'])))
 *        p = Pool(3)
 *        for url in urls:
 *            p.apply_async(get_page, args=(url,), callback=parse_page)
 *        p.close(); p.join()
 *    get_page runs in the workers; parse_page runs in the main process (the
 *    story checks its pid), one result after another, as each page comes.
 *
 * A task is a C function of the program (mp_task_fn); its argument and
 * result are bytes, copied, so the same call works under fork, spawn and
 * forkserver. The order of the "run" and "get" lines, and the pids, change
 * from run to run; the results do not.
 *
 * Run: build/examples/pool_story [fork|spawn|forkserver] */
#include <mproc.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "story.h"

#define WORKERS 3    /* Pool(3) */
#define TASKS 10     /* for i in range(10) */
#define SECOND 0.1   /* the seed's time.sleep(3) becomes 0.1 s */
#define NURLS 5
#define WAIT 20.0    /* a wait that lasts longer fails the story */

/* ---- acts 1 and 2: work ----------------------------------------------------- */

/* work_arg is work's argument (Python: args=(i,)); together, when not NULL,
 * is a Barrier(3) in the shared arena that the first three async tasks
 * meet at. */
struct work_arg {
    int n;
    mp_barrier_t *together;
};

/* work_res is work's result: n**2, and which process computed it. */
struct work_res {
    int square;
    int pid;
};

/* work is the task (Python: def work(n)). */
static int work(const void *arg, size_t arg_len, mp_out_t *out)
{
    struct work_arg a;
    if (arg_len != sizeof a)
        return -EINVAL;
    memcpy(&a, arg, sizeof a);
    story_say("%d run work(%d)\n", (int)getpid(), a.n);
    if (a.together) {
        int rc = mp_barrier_wait(a.together, WAIT);
        if (rc < 0)
            return rc; /* the three did not run at once */
    }
    story_sleep(SECOND);
    struct work_res r = { .square = a.n * a.n, .pid = (int)getpid() };
    return mp_out_write(out, &r, sizeof r); /* return n**2 */
}

/* known says whether pid is one of the pool's first workers. */
static int known(const pid_t *pids, int n, int pid)
{
    for (int i = 0; i < n; i++)
        if (pids[i] == pid)
            return 1;
    return 0;
}

/* print_list prints results as Python prints a list of ints. */
static void print_list(const struct work_res *r, int n)
{
    printf("[");
    for (int i = 0; i < n; i++)
        printf("%s%d", i ? ", " : "", r[i].square);
    printf("]\n");
}

/* check_results checks the squares and that each came from a first worker. */
static int check_results(const char *act, const struct work_res *r, int n,
                         const pid_t *pids)
{
    for (int i = 0; i < n; i++) {
        if (r[i].square != i * i)
            return story_fail("%s: work(%d) gave %d", act, i, r[i].square);
        if (!known(pids, WORKERS, r[i].pid))
            return story_fail("%s: work(%d) ran in process %d, not one of the pool's three",
                              act, i, r[i].pid);
    }
    return 0;
}

/* act_apply: 同步调用. Returns 0 if the claims held. */
static int act_apply(mp_pool_t *p, const pid_t *pids)
{
    struct work_res res_l[TASKS];
    printf("---- 同步调用 apply ----\n");
    double t0 = story_now();
    for (int i = 0; i < TASKS; i++) {
        struct work_arg a = { .n = i };
        size_t len = 0;
        int rc = mp_pool_apply(p, work, &a, sizeof a, &res_l[i], sizeof res_l[i], &len);
        if (rc != 0 || len != sizeof res_l[i])
            return story_fail("apply(work, (%d,)): %s (%zu bytes)", i, mp_strerror(rc), len);
    }
    double took = story_now() - t0;
    print_list(res_l, TASKS); /* print(res_l) */
    printf("%d个任务, 每个%.1f秒, 用时%.2f秒: 一个接一个, 同步调用在原地等着\n", TASKS,
           SECOND, took);
    if (took < TASKS * SECOND)
        return story_fail("ten apply calls of %.1f s took %.2f s: they overlapped", SECOND,
                          took);
    return check_results("apply", res_l, TASKS, pids);
}

/* act_apply_async: 异步调用, then close and join. Returns 0 if the claims
 * held. */
static int act_apply_async(mp_pool_t *p, const pid_t *pids)
{
    mp_async_t *res_l[TASKS] = { NULL };
    struct work_res got[TASKS];
    mp_barrier_t *together = NULL;
    int rc, failed = 0;

    printf("---- 异步调用 apply_async ----\n");
    if ((rc = mp_barrier_new(&together, WORKERS, NULL, NULL, 0, WAIT)) != 0)
        return story_fail("Barrier(3): %s", mp_strerror(rc));
    double t0 = story_now();
    for (int i = 0; i < TASKS; i++) {
        struct work_arg a = { .n = i, .together = i < WORKERS ? together : NULL };
        if ((rc = mp_pool_apply_async(p, work, &a, sizeof a, NULL, &res_l[i])) != 0) {
            failed = story_fail("apply_async(work, (%d,)): %s", i, mp_strerror(rc));
            break;
        }
    }

    /* join before close: Python raises ValueError("Pool is still running"). */
    if (!failed) {
        rc = mp_pool_join(p, 0);
        printf("p.join() 在 p.close() 之前: %s\n", mp_strerror(rc));
        if (rc != MP_ERUNNING)
            failed = story_fail("join before close gave %d, want MP_ERUNNING", rc);
    }
    if (!failed && (rc = mp_pool_close(p)) != 0) /* p.close() */
        failed = story_fail("close: %s", mp_strerror(rc));

    /* 关闭进程池，防止进一步操作 */
    if (!failed) {
        mp_async_t *late = NULL;
        struct work_arg a = { .n = TASKS };
        rc = mp_pool_apply_async(p, work, &a, sizeof a, NULL, &late);
        printf("p.close() 之后再 apply_async: %s\n", mp_strerror(rc));
        if (rc != MP_ECLOSED)
            failed = story_fail("apply_async after close gave %d, want MP_ECLOSED", rc);
        mp_async_free(late);
    }
    if (!failed && (rc = mp_pool_join(p, WAIT)) != 0) /* p.join() */
        failed = story_fail("join: %s", mp_strerror(rc));
    double took = story_now() - t0;

    /* 如果所有操作持续挂起，它们将在工作进程终止前完成: all ready now. */
    for (int i = 0; i < TASKS && !failed; i++) {
        const void *data = NULL;
        size_t len = 0;
        if (!mp_async_ready(res_l[i]))
            failed = story_fail("work(%d) was not done when join returned", i);
        else if ((rc = mp_async_get(res_l[i], 0, &data, &len)) != 0 || len != sizeof got[i])
            failed = story_fail("work(%d).get(): %s (%zu bytes)", i, mp_strerror(rc), len);
        else
            memcpy(&got[i], data, sizeof got[i]);
    }
    if (!failed) {
        print_list(got, TASKS); /* print([res.get() for res in res_l]) */
        printf("%d个任务, 每个%.1f秒, 用时%.2f秒: 池里的%d个进程同时执行\n", TASKS, SECOND,
               took, WORKERS);
        failed = check_results("apply_async", got, TASKS, pids);
    }
    for (int i = 0; i < TASKS; i++)
        mp_async_free(res_l[i]);
    mp_barrier_free(together);
    return failed;
}

/* ---- act 3: the crawler and its callback ------------------------------------ */

#define PAGE_REPEAT 100 /* a made-up page: its url a hundred times */

/* get_page "downloads" url (the argument, NUL-terminated) and returns the
 * url, a newline and the page's text (Python: {'url': url, 'text': ...}). */
static int get_page(const void *arg, size_t arg_len, mp_out_t *out)
{
    const char *url = arg;
    if (arg_len == 0 || url[arg_len - 1] != '\0')
        return -EINVAL;
    story_say("<进程%d> get %s\n", (int)getpid(), url);
    story_sleep(SECOND); /* respone = requests.get(url) */
    int rc = mp_out_write(out, url, strlen(url));
    if (rc == 0)
        rc = mp_out_write(out, "\n", 1);
    for (int i = 0; i < PAGE_REPEAT && rc == 0; i++)
        rc = mp_out_write(out, url, strlen(url));
    return rc;
}

/* crawl is what the callback shares with main; the callback runs in the
 * pool's handler thread, so it holds the mutex. */
struct crawl {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char db[STORY_PATH_MAX]; /* db.txt */
    int parsed;              /* callbacks that ran */
    int bad;                 /* callbacks that saw something wrong */
    int parent_pid;          /* the main process */
};

/* parse_page is the callback (Python: def parse_page(res)): it runs in the
 * main process once a page is there. It does not block on the pool. */
static void parse_page(mp_async_t *r, void *user)
{
    struct crawl *c = user;
    const char *data = NULL;
    size_t len = 0;
    int bad = 0;

    if (mp_async_get(r, 0, (const void **)&data, &len) != 0 || !memchr(data, '\n', len)) {
        bad = 1;
    } else {
        size_t ulen = (size_t)((const char *)memchr(data, '\n', len) - data);
        story_say("<进程%d> parse %.*s\n", (int)getpid(), (int)ulen, data);
        FILE *f = fopen(c->db, "a"); /* with open('db.txt','a') as f */
        if (!f || fprintf(f, "url:<%.*s> size:[%zu]\n", (int)ulen, data, len - ulen - 1) < 0)
            bad = 1;
        if (f && fclose(f) != 0)
            bad = 1;
        if ((int)getpid() != c->parent_pid)
            bad = 1;
    }
    pthread_mutex_lock(&c->mu);
    c->parsed++;
    c->bad += bad;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* wait_parsed waits until n callbacks have run (at most WAIT seconds). */
static int wait_parsed(struct crawl *c, int n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)WAIT;
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    while (c->parsed < n && rc == 0)
        rc = pthread_cond_timedwait(&c->cv, &c->mu, &until);
    int got = c->parsed;
    pthread_mutex_unlock(&c->mu);
    return got >= n ? 0 : -1;
}

/* act_callback: the crawler. Returns 0 if the claims held. */
static int act_callback(const story_fifo_t *dir)
{
    static const char *const urls[NURLS] = {
        "https://www.baidu.com", "https://www.python.org", "https://www.openstack.org",
        "https://help.github.com/", "http://www.sina.com.cn/",
    };
    struct crawl c = { .parent_pid = (int)getpid() };
    mp_async_t *res_l[NURLS] = { NULL };
    mp_pool_t *p = NULL;
    int rc, failed = 0;

    printf("---- 回调函数 callback ----\n");
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    if (story_fifo_path(dir, "db.txt", c.db) != 0)
        return story_fail("path too long");
    if ((rc = mp_pool_new(&p, WORKERS, NULL)) != 0) /* p = Pool(3) */
        return story_fail("Pool(3): %s", mp_strerror(rc));
    printf("主进程 %d\n", c.parent_pid);

    mp_async_opts_t cb = { .callback = parse_page, .user = &c };
    for (int i = 0; i < NURLS && !failed; i++) /* p.apply_async(get_page, args=(url,), callback=parse_page) */
        if ((rc = mp_pool_apply_async(p, get_page, urls[i], strlen(urls[i]) + 1, &cb,
                                      &res_l[i])) != 0)
            failed = story_fail("apply_async(get_page, %s): %s", urls[i], mp_strerror(rc));
    if (!failed && ((rc = mp_pool_close(p)) != 0 || (rc = mp_pool_join(p, WAIT)) != 0))
        failed = story_fail("close/join: %s", mp_strerror(rc));

    /* Every page went through parse_page, in the main process. */
    for (int i = 0; i < NURLS && !failed; i++)
        if ((rc = mp_async_get(res_l[i], WAIT, NULL, NULL)) != 0)
            failed = story_fail("get_page(%s): %s", urls[i], mp_strerror(rc));
    if (!failed && wait_parsed(&c, NURLS) != 0)
        failed = story_fail("only %d of %d callbacks ran", c.parsed, NURLS);
    if (!failed && c.bad != 0)
        failed = story_fail("%d callbacks did not run in the main process or could not "
                            "read their result", c.bad);

    /* db.txt holds one line per page. */
    if (!failed) {
        char line[256];
        int lines = 0;
        FILE *f = fopen(c.db, "r");
        if (!f)
            return story_fail("cannot read db.txt");
        printf("db.txt:\n");
        while (fgets(line, sizeof line, f)) {
            printf("    %s", line);
            lines++;
        }
        fclose(f);
        printf("%d个网页在工作进程里下载, %d个在主进程 %d 里解析 (回调函数)\n", NURLS, c.parsed,
               c.parent_pid);
        if (lines != NURLS)
            failed = story_fail("db.txt has %d lines, want %d", lines, NURLS);
    }
    for (int i = 0; i < NURLS; i++)
        mp_async_free(res_l[i]);
    mp_pool_free(p);
    unlink(c.db);
    pthread_cond_destroy(&c.cv);
    pthread_mutex_destroy(&c.mu);
    return failed;
}

int main(int argc, char **argv)
{
    story_begin(argc, argv);
    mp_pool_t *p = NULL;
    pid_t pids[WORKERS], later[WORKERS];
    story_fifo_t dir;
    int rc, failed = 0;

    if ((rc = story_fifo_dir(&dir)) != 0)
        return story_fail("temporary directory: %s", strerror(-rc));

    /* 进程池中从无到有创建三个进程, 以后一直是这三个进程在执行任务 */
    if ((rc = mp_pool_new(&p, WORKERS, NULL)) != 0) /* p = Pool(3) */
        return story_fail("Pool(3): %s", mp_strerror(rc));
    if (mp_pool_worker_pids(p, pids, WORKERS) != WORKERS)
        return story_fail("Pool(3) has %d workers", mp_pool_size(p));
    printf("Pool(3): 工作进程 %d %d %d\n", (int)pids[0], (int)pids[1], (int)pids[2]);

    failed = act_apply(p, pids);
    if (!failed)
        failed = act_apply_async(p, pids);
    if (!failed) {
        int n = mp_pool_worker_pids(p, later, WORKERS);
        for (int i = 0; i < n; i++)
            if (later[i] != 0 && !known(pids, WORKERS, later[i]))
                failed = story_fail("a new worker %d appeared", (int)later[i]);
        if (!failed)
            printf("20个任务, 自始至终是这%d个进程在执行, 没有开启其他进程\n", WORKERS);
    }
    mp_pool_free(p);

    if (!failed)
        failed = act_callback(&dir);

    story_fifo_remove(&dir, NULL);
    int alive = mp_active_children(NULL, 0);
    if (!failed && alive != 0)
        failed = story_fail("%d children left behind", alive);
    return failed;
}

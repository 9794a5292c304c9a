/* sync_toilet.c: Semaphore, once more: five stalls, thirteen people (seed
 * 003, "信号量（了解）").
 *
 * Python:
 *     def go_wc(sem, user):
 *         sem.acquire()
 *         print('%s 占到一个茅坑' % user)
 *         time.sleep(random.randint(0, 3))  # 0代表有的人蹲下就起来了
 *         sem.release()
 *     sem = Semaphore(5)
 *     p_l = []
 *     for i in range(13):
 *         p = Process(target=go_wc, args=(sem, 'user%s' % i)); p.start()
 *         p_l.append(p)
 *     for i in p_l: i.join()
 *     print('============》')
 *
 * 互斥锁同时只允许一个线程更改数据, 而Semaphore是同时允许一定数量的线程更改
 * 数据: a toilet with five stalls lets five in; the sixth waits until someone
 * comes out. The seed says 信号量Semahpore（同线程一样）: the same with
 * threads. So the story runs twice with the same go_wc and the same kind of
 * semaphore: first thirteen processes (the seed), then thirteen threads.
 *
 * Each person reports on a pipe when they have taken a stall and when they
 * are about to give it back; the main program counts who is inside, and
 * checks that it is never more than five and that all thirteen went. How
 * many were inside at most changes from run to run (some get up at once).
 *
 * Run: build/examples/sync_toilet [fork|spawn|forkserver] */
#include <mproc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "story.h"

#define PEOPLE 13
#define STALLS 5

/* wc_arg: go_wc's arguments (Python: args=(sem, 'user%s' % i)). */
struct wc_arg {
    mp_sem_t *sem;
    char user[16];
    int index;
    int report; /* the pipe's write end */
};

/* report is what a person says on the pipe: +1 in, -1 out. */
struct report {
    int index;
    int delta;
};

/* go_wc is the target of a process and of a thread alike. */
static int go_wc(void *arg)
{
    const struct wc_arg *a = arg;
    unsigned seed = (unsigned)mp_get_native_id() * 2654435761u + (unsigned)a->index;
    struct report in = { a->index, +1 }, out = { a->index, -1 };
    int rc;

    if ((rc = mp_sem_acquire(a->sem, MP_FOREVER)) != 0)
        return story_fail("%s: acquire: %s", a->user, mp_strerror(rc));
    if ((rc = story_pipe_send(a->report, &in, sizeof in)) != 0)
        return story_fail("%s: report: %s", a->user, strerror(-rc));
    printf("%s 占到一个茅坑\n", a->user);
    story_sleep((rand_r(&seed) % 4) * 0.03); /* the seed: 0 to 3 s */
    if ((rc = story_pipe_send(a->report, &out, sizeof out)) != 0)
        return story_fail("%s: report: %s", a->user, strerror(-rc));
    if ((rc = mp_sem_release(a->sem, 1)) != 0)
        return story_fail("%s: release: %s", a->user, mp_strerror(rc));
    return 0;
}

/* tally reads the 2 * PEOPLE reports and returns the largest number inside
 * at once, or -1 (having said why). */
static int tally(int rd)
{
    int inside = 0, most = 0, in[PEOPLE] = { 0 }, out[PEOPLE] = { 0 };
    double deadline = story_now() + 60.0;

    for (int n = 0; n < 2 * PEOPLE; n++) {
        struct report r;
        int rc = story_pipe_recv(rd, &r, sizeof r, deadline);
        if (rc != 0) {
            story_fail("report %d: %s", n, mp_strerror(rc));
            return -1;
        }
        if (r.index < 0 || r.index >= PEOPLE || (r.delta != 1 && r.delta != -1)) {
            story_fail("a bad report");
            return -1;
        }
        inside += r.delta;
        (r.delta > 0 ? in : out)[r.index]++;
        if (inside > most)
            most = inside;
    }
    for (int i = 0; i < PEOPLE; i++) {
        if (in[i] != 1 || out[i] != 1) {
            story_fail("user%d went in %d and came out %d times", i, in[i], out[i]);
            return -1;
        }
    }
    return most;
}

/* with_processes is the seed's program. Returns 0 or 1. */
static int with_processes(mp_sem_t *sem, story_pipe_t *pipe)
{
    mp_process_t *p_l[PEOPLE] = { NULL };
    mp_process_opts_t opts = { .pass_fds = &pipe->wr, .n_pass_fds = 1 };
    int rc, failed = 0;

    for (int i = 0; i < PEOPLE; i++) {
        struct wc_arg a = { .sem = sem, .index = i, .report = pipe->wr };
        snprintf(a.user, sizeof a.user, "user%d", i);
        if ((rc = mp_process_new(&p_l[i], go_wc, &a, sizeof a, &opts)) != 0 ||
            (rc = mp_process_start(p_l[i])) != 0)
            return story_fail("user%d: %s", i, mp_strerror(rc));
    }
    int most = tally(pipe->rd);
    for (int i = 0; i < PEOPLE; i++) {
        int code = -1;
        if ((rc = mp_process_join(p_l[i], 60.0)) != 0 ||
            (rc = mp_process_exitcode(p_l[i], &code)) != 0 || code != 0)
            failed = story_fail("user%d: %s, exit code %d", i, mp_strerror(rc), code);
        mp_process_free(p_l[i]);
    }
    printf("============》\n");
    if (most < 0 || failed)
        return 1;
    printf("(进程: 最多同时有%d个人在厕所里)\n", most);
    return most > STALLS ? story_fail("%d inside at once, with %d stalls", most, STALLS)
                         : 0;
}

/* with_threads is the same story with threads. Their arguments are not
 * copied: each thread gets a pointer to its own element of args. */
static int with_threads(mp_sem_t *sem, story_pipe_t *pipe)
{
    mp_thread_t *t_l[PEOPLE] = { NULL };
    static struct wc_arg args[PEOPLE]; /* outlives every thread */
    int rc, failed = 0;

    for (int i = 0; i < PEOPLE; i++) {
        args[i] = (struct wc_arg){ .sem = sem, .index = i, .report = pipe->wr };
        snprintf(args[i].user, sizeof args[i].user, "user%d", i);
        if ((rc = mp_thread_new(&t_l[i], go_wc, &args[i], NULL)) != 0 ||
            (rc = mp_thread_start(t_l[i])) != 0)
            return story_fail("thread user%d: %s", i, mp_strerror(rc));
    }
    int most = tally(pipe->rd);
    for (int i = 0; i < PEOPLE; i++) {
        int result = -1;
        if ((rc = mp_thread_join(t_l[i], 60.0)) != 0 ||
            (rc = mp_thread_result(t_l[i], &result)) != 0 || result != 0)
            failed = story_fail("thread user%d: %s, result %d", i, mp_strerror(rc),
                                result);
        mp_thread_free(t_l[i]);
    }
    printf("============》\n");
    if (most < 0 || failed)
        return 1;
    printf("(线程: 最多同时有%d个人在厕所里)\n", most);
    return most > STALLS ? story_fail("%d inside at once, with %d stalls", most, STALLS)
                         : 0;
}

int main(int argc, char **argv)
{
    story_begin(argc, argv);
    mp_sem_t *sem = NULL;
    story_pipe_t pipe;
    int rc;

    if ((rc = mp_sem_new(&sem, STALLS, 0)) != 0)
        return story_fail("Semaphore: %s", mp_strerror(rc));
    if ((rc = story_pipe_open(&pipe)) != 0)
        return story_fail("pipe: %s", strerror(-rc));

    printf("---- 进程 ----\n");
    int failed = with_processes(sem, &pipe);
    if (!failed) {
        printf("---- 同线程一样 ----\n");
        failed = with_threads(sem, &pipe);
    }
    if (!failed && (rc = mp_sem_value(sem)) != STALLS)
        failed = story_fail("the semaphore ends at %d, want %d", rc, STALLS);

    story_pipe_close(&pipe);
    mp_sem_free(sem);
    return failed;
}

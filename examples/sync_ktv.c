/* sync_ktv.c: a Semaphore lets a fixed number in at once (seed 003,
 * "Semaphore": the KTV room with four seats).
 *
 * Python:
 *     def ktv(person, sem):
 *         sem.acquire()
 *         print("%s进入了ktv,正在唱歌" % person)
 *         time.sleep(random.randrange(3, 7))
 *         print("%s离开了ktv，唱完了" % person)
 *         sem.release()
 *     sem = Semaphore(4)
 *     lst = ["毛洪磊", "郭凯", "刘子涛", "宋云杰", "马生平", "李亚", "刘彩霞",
 *            "张捷", "王盼盼", "徐艳伟"]
 *     for i in lst:
 *         Process(target=ktv, args=(i, sem)).start()
 *
 * Semaphore 本质上就是锁,只不过可以控制上锁的数量: a Lock lets one in, a
 * Semaphore(4) lets four in; the fifth waits until someone leaves.
 *
 * The story checks its claim: each singer reports on a pipe when it has
 * come in and when it is about to leave, and the parent counts who is
 * inside. Never more than four may be inside, and the room must fill up:
 * the first four wait for the parent to see the room full before they
 * start singing (人齐了才开唱), so that "four at once" is certain, not
 * likely. Which singers come first changes from run to run.
 *
 * The Semaphore lives in mproc's shared arena; its pointer travels in the
 * target's argument and works in every child under fork, spawn and
 * forkserver. The pipe's write end reaches the child by number
 * (mp_process_opts_t.pass_fds), which a forkserver child needs.
 *
 * Run: build/examples/sync_ktv [fork|spawn|forkserver] */
#include <mproc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "story.h"

#define SINGERS 10
#define SEATS 4

/* singer_arg is one singer's copy of ktv's arguments. */
struct singer_arg {
    char person[32];
    int index;
    mp_sem_t *sem;     /* Semaphore(4) */
    mp_event_t *full;  /* set by the parent once the room is full */
    int report;        /* the pipe's write end */
};

/* report is what a singer says on the pipe: +1 in, -1 out. */
struct report {
    int index;
    int delta;
};

/* ktv is the target (Python: def ktv(person, sem)). */
static int ktv(void *arg)
{
    const struct singer_arg *a = arg;
    unsigned seed = (unsigned)getpid() * 2654435761u + (unsigned)a->index;
    int rc;

    if ((rc = mp_sem_acquire(a->sem, MP_FOREVER)) != 0)
        return story_fail("%s: acquire: %s", a->person, mp_strerror(rc));
    struct report in = { a->index, +1 };
    if ((rc = story_pipe_send(a->report, &in, sizeof in)) != 0)
        return story_fail("%s: report: %s", a->person, strerror(-rc));
    printf("%s进入了ktv,正在唱歌\n", a->person);

    /* 人齐了才开唱: the first four wait until all four seats are taken;
     * later singers find the event set and go straight on. */
    if ((rc = mp_event_wait(a->full, 30.0)) != 0)
        return story_fail("%s: the room never filled: %s", a->person, mp_strerror(rc));
    story_sleep((3 + rand_r(&seed) % 4) * 0.02); /* the seed sings 3 to 6 s */

    printf("%s离开了ktv，唱完了\n", a->person);
    struct report out = { a->index, -1 };
    if ((rc = story_pipe_send(a->report, &out, sizeof out)) != 0)
        return story_fail("%s: report: %s", a->person, strerror(-rc));
    if ((rc = mp_sem_release(a->sem, 1)) != 0)
        return story_fail("%s: release: %s", a->person, mp_strerror(rc));
    return 0;
}

/* watch reads the singers' reports and counts who is inside. Once four are
 * inside it checks that no seat is left and opens the show. Returns the
 * largest number inside at once, or -1 (having said why). */
static int watch(story_pipe_t *pipe, mp_sem_t *sem, mp_event_t *full)
{
    int inside = 0, most = 0, in[SINGERS] = { 0 }, out[SINGERS] = { 0 };
    double deadline = story_now() + 60.0;

    for (int n = 0; n < 2 * SINGERS; n++) {
        struct report r;
        int rc = story_pipe_recv(pipe->rd, &r, sizeof r, deadline);
        if (rc != 0) {
            story_fail("report %d: %s", n, mp_strerror(rc));
            return -1;
        }
        if (r.index < 0 || r.index >= SINGERS || (r.delta != 1 && r.delta != -1)) {
            story_fail("a bad report");
            return -1;
        }
        inside += r.delta;
        (r.delta > 0 ? in : out)[r.index]++;
        if (inside > most)
            most = inside;
        if (inside == SEATS && !mp_event_is_set(full)) {
            /* Nobody leaves before the show opens, so the four hold all
             * four seats. */
            int left = mp_sem_value(sem);
            if (left != 0) {
                story_fail("four inside, but the semaphore has %d seats left", left);
                return -1;
            }
            mp_event_set(full);
        }
    }
    for (int i = 0; i < SINGERS; i++) {
        if (in[i] != 1 || out[i] != 1) {
            story_fail("singer %d came in %d and left %d times", i, in[i], out[i]);
            return -1;
        }
    }
    return most;
}

int main(int argc, char **argv)
{
    story_begin(argc, argv);
    static const char *const lst[SINGERS] = { "毛洪磊", "郭凯", "刘子涛", "宋云杰",
                                              "马生平", "李亚", "刘彩霞", "张捷",
                                              "王盼盼", "徐艳伟" };
    mp_sem_t *sem = NULL;
    mp_event_t *full = NULL;
    mp_process_t *p[SINGERS] = { NULL };
    story_pipe_t pipe;
    int rc;

    if ((rc = mp_sem_new(&sem, SEATS, 0)) != 0 || (rc = mp_event_new(&full)) != 0)
        return story_fail("Semaphore/Event: %s", mp_strerror(rc));
    if ((rc = story_pipe_open(&pipe)) != 0)
        return story_fail("pipe: %s", strerror(-rc));

    mp_process_opts_t opts = { .pass_fds = &pipe.wr, .n_pass_fds = 1 };
    for (int i = 0; i < SINGERS; i++) {
        struct singer_arg a = { .index = i, .sem = sem, .full = full, .report = pipe.wr };
        snprintf(a.person, sizeof a.person, "%s", lst[i]);
        if ((rc = mp_process_new(&p[i], ktv, &a, sizeof a, &opts)) != 0 ||
            (rc = mp_process_start(p[i])) != 0)
            return story_fail("%s: %s", lst[i], mp_strerror(rc));
    }

    int most = watch(&pipe, sem, full);
    mp_event_set(full); /* let everyone go if watch gave up */

    int failed = most < 0;
    for (int i = 0; i < SINGERS; i++) {
        int code = -1;
        if ((rc = mp_process_join(p[i], 60.0)) != 0 ||
            (rc = mp_process_exitcode(p[i], &code)) != 0 || code != 0) {
            story_fail("%s: %s, exit code %d", lst[i], mp_strerror(rc), code);
            failed = 1;
        }
        mp_process_free(p[i]);
    }
    story_pipe_close(&pipe);
    if (failed)
        return 1;

    printf("最多同时有%d个人在ktv里唱歌, 其余的人在门口等\n", most);
    if (most != SEATS)
        return story_fail("at most %d were inside at once, want %d", most, SEATS);
    if ((rc = mp_sem_value(sem)) != SEATS)
        return story_fail("the semaphore ends at %d, want %d", rc, SEATS);
    mp_event_free(full);
    mp_sem_free(sem);
    return 0;
}

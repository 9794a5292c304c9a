/* thread_mutex.c: a Lock between threads: n = 100, a hundred threads, each
 * takes one away (seed 001, "互斥锁").
 *
 * Python:
 *     n = 100
 *     def task(mutex):
 *         global n
 *         mutex.acquire()
 *         num = n
 *         time.sleep(0.1)
 *         n = num - 1
 *         mutex.release()
 *     mutex = Lock()
 *     for i in range(100):
 *         t = Thread(target=task, args=(mutex,)); t.start(); t_list.append(t)
 *     for t in t_list: t.join()
 *     print(n)
 * prints 0.
 *
 * Threads share n, so they need the lock as much as processes sharing a
 * file do (sync_tickets.c). The story runs twice:
 *
 * 1. Without the lock: every thread reads n (100), and while it "sleeps"
 *    the others read it too; each then writes 99. The seed's sleep makes
 *    that likely; here a Barrier makes it certain: no thread writes before
 *    all hundred have read. n ends at 99: ninety-nine updates were lost.
 * 2. With the lock (the seed's program): read, sleep and write are one
 *    step that no other thread can cut into, and n ends at 0.
 *
 * n is _Atomic only so that the race in the first half is a race of steps
 * (read, then write) and not undefined behaviour in C; each read and each
 * write is whole, and the lost updates come from the gap between them.
 * The sleep under the lock is 1 ms instead of 0.1 s (a hundred of them in a
 * row).
 *
 * Run: build/examples/thread_mutex (it accepts a start method, like every
 * story, but starts no process). */
#include <mproc.h>

#include <stdatomic.h>
#include <stdio.h>

#include "story.h"

#define THREADS 100

static _Atomic int n = 100;

/* task_arg: Python's args=(mutex,); without a lock, the Barrier. */
struct task_arg {
    mp_lock_t *mutex;
    mp_barrier_t *gap;
};

/* task is the target (Python: def task(mutex)). */
static int task(void *arg)
{
    const struct task_arg *a = arg;
    int rc;
    if (a->mutex && (rc = mp_lock_acquire(a->mutex, MP_FOREVER)) != 0)
        return story_fail("acquire: %s", mp_strerror(rc));
    int num = n;
    if (a->gap) {
        /* time.sleep(0.1), long enough for every other thread to read n */
        if ((rc = mp_barrier_wait(a->gap, 30.0)) < 0)
            return story_fail("barrier: %s", mp_strerror(rc));
    } else {
        story_sleep(0.001);
    }
    n = num - 1;
    if (a->mutex && (rc = mp_lock_release(a->mutex)) != 0)
        return story_fail("release: %s", mp_strerror(rc));
    return 0;
}

/* run starts THREADS threads on task(a), joins them, and returns 0 or 1. */
static int run(struct task_arg *a)
{
    mp_thread_t *t_list[THREADS] = { NULL };
    int rc, failed = 0;
    n = 100;
    for (int i = 0; i < THREADS; i++) {
        if ((rc = mp_thread_new(&t_list[i], task, a, NULL)) != 0 ||
            (rc = mp_thread_start(t_list[i])) != 0)
            return story_fail("thread %d: %s", i, mp_strerror(rc));
    }
    for (int i = 0; i < THREADS; i++) {
        int result = -1;
        if ((rc = mp_thread_join(t_list[i], 60.0)) != 0 ||
            (rc = mp_thread_result(t_list[i], &result)) != 0 || result != 0)
            failed = story_fail("%s: %s, result %d", mp_thread_name(t_list[i]),
                                mp_strerror(rc), result);
        mp_thread_free(t_list[i]);
    }
    return failed;
}

int main(int argc, char **argv)
{
    story_begin(argc, argv);
    static struct task_arg racy, locked;
    int rc;

    if ((rc = mp_barrier_new(&racy.gap, THREADS, NULL, NULL, 0, MP_FOREVER)) != 0 ||
        (rc = mp_lock_new(&locked.mutex)) != 0)
        return story_fail("Barrier/Lock: %s", mp_strerror(rc));

    printf("---- 不加锁 ----\n");
    if (run(&racy))
        return 1;
    printf("%d\n", n);
    if (n != 99)
        return story_fail("without the lock n = %d, want 99 (all read 100 first)", (int)n);

    printf("---- 加锁 ----\n");
    if (run(&locked))
        return 1;
    printf("%d\n", n);
    if (n != 0)
        return story_fail("with the lock n = %d, want 0", (int)n);
    if (mp_lock_locked(locked.mutex) != 0)
        return story_fail("the lock is still held");

    mp_barrier_free(racy.gap);
    mp_lock_free(locked.mutex);
    return 0;
}

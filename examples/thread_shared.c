/* thread_shared.c: threads share their process's memory (seed 001, "内存
 * 数据的共享问题").
 *
 * Python:
 *     money = 666
 *     def task():
 *         global money
 *         money = 100
 *     t = Thread(target=task)
 *     t.start()
 *     print(money)
 * prints
 *     100
 *
 * 同一个进程下的多个线程数据是共享的: the thread changes the one and only
 * money of the process, and the main program sees the change. A process
 * does not: the same task in a child changes the child's own copy
 * (proc_isolation.c), and the parent still has 666. The story shows both.
 *
 * In Python the thread has usually finished by the time print runs; in C
 * nothing says so, so the main program joins the thread first.
 *
 * Run: build/examples/thread_shared [fork|spawn|forkserver] (the start
 * method is that of the process in the second half). */
#include <mproc.h>

#include <stdio.h>

#include "story.h"

static int money = 666;

/* task is the target of the thread and, afterwards, of a process. */
static int task(void *arg)
{
    (void)arg;
    money = 100; /* global money */
    return 0;
}

int main(int argc, char **argv)
{
    story_begin(argc, argv);
    int rc, code = -1;

    /* A thread. */
    mp_thread_t *t = NULL;
    if ((rc = mp_thread_new(&t, task, NULL, NULL)) != 0 ||
        (rc = mp_thread_start(t)) != 0 || (rc = mp_thread_join(t, 30.0)) != 0)
        return story_fail("Thread: %s", mp_strerror(rc));
    mp_thread_free(t);
    printf("%d\n", money);
    if (money != 100)
        return story_fail("after the thread, money = %d, want 100", money);

    /* A process, for comparison. */
    money = 666;
    mp_process_t *p = NULL;
    if ((rc = mp_process_new(&p, task, NULL, 0, NULL)) != 0 ||
        (rc = mp_process_start(p)) != 0 || (rc = mp_process_join(p, 30.0)) != 0 ||
        (rc = mp_process_exitcode(p, &code)) != 0)
        return story_fail("Process: %s", mp_strerror(rc));
    mp_process_free(p);
    printf("换成进程: %d\n", money);
    if (code != 0 || money != 666)
        return story_fail("after the process (exit code %d), money = %d, want 666", code,
                          money);
    return 0;
}

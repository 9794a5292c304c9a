/* proc_isolation.c: processes do not share memory (seed 003,
 * "进程之间数据相互隔离"; seed 004 tells the same story with n = 100).
 *
 * Python:
 *     money = 100
 *     def task():
 *         global money
 *         money = 666
 *         print('子', money)
 *     p = Process(target=task); p.start(); p.join()
 *     print(money)
 * prints
 *     子 666
 *     100
 *
 * The child changes its own copy of the global; the parent's copy stays 100.
 * Under fork the child's copy starts as a copy of the parent's memory; under
 * spawn and forkserver the child is a fresh program whose globals have their
 * initial values. Here both are 100, so the story reads the same under every
 * start method. To share data between processes on purpose, use shared
 * values, queues or a manager.
 *
 * Run: build/examples/proc_isolation [fork|spawn|forkserver] */
#include <mproc.h>

#include <stdio.h>

#include "story.h"

static int money = 100;

/* task changes the global in the child. Its exit code says whether the
 * child started from 100 (0) or not (1). */
static int task(void *arg)
{
    (void)arg;
    int before = money;
    money = 666;
    printf("子 %d\n", money);
    return before == 100 ? 0 : 1;
}

int main(int argc, char **argv)
{
    story_begin(argc, argv);
    mp_process_t *p = NULL;
    int rc, code = -1;

    if ((rc = mp_process_new(&p, task, NULL, 0, NULL)) != 0 ||
        (rc = mp_process_start(p)) != 0 ||
        (rc = mp_process_join(p, MP_FOREVER)) != 0 ||
        (rc = mp_process_exitcode(p, &code)) != 0)
        return story_fail("task: %s", mp_strerror(rc));
    printf("%d\n", money);
    mp_process_free(p);

    if (code != 0)
        return story_fail("the child did not start from money = 100 (exit code %d)",
                          code);
    if (money != 100)
        return story_fail("the parent sees money = %d, want 100", money);
    return 0;
}

/* thread_basics.c: the two ways to start a thread (seed 001, "创建线程的两种
 * 方式").
 *
 * First way, a function as the target:
 *     def task(name):
 *         print('\033[32m%s is running\033[0m' % name)
 *         time.sleep(1)
 *         print('%s is over' % name)
 *     t = Thread(target=task, args=('zmm',))
 *     t.start()     # 告诉操作系统开辟一个线程  线程的开销远远小于进程
 *     print('主')
 *
 * Second way, a subclass of Thread that overrides run:
 *     class MyThread(Thread):
 *         def __init__(self, name):
 *             super().__init__()
 *             self.name = name
 *         def run(self):
 *             print('%s is running' % self.name)
 *             time.sleep(1)
 *             print('%s is over' % self.name)
 *     t = MyThread('zmm'); t.start(); print('主')
 *
 * (The seed's print('') lost its character when the page was copied; the
 * program it came from prints '主', "main".)
 *
 * Starting a thread looks exactly like starting a process (proc_basics.c),
 * with two differences: the argument is not copied (threads share the
 * process's memory, so a pointer to anything in it will do), and nothing is
 * "copied into a child": 开设线程的开销要远远的小于进程的开销.
 *
 * C has no subclasses; as for processes, the natural form is a struct with
 * the subclass's fields, a run function that receives it, and a constructor
 * (my_thread_new below). Here the struct holds the mp_thread_t itself, the
 * part that super().__init__() makes; self.name is that thread's name.
 *
 * The thread and the main program run at the same time, so '主' may come
 * before or after 'zmm is running'. The main program joins the threads to
 * check them; without the joins it would still wait for them at its end,
 * as Python does (see thread_daemon.c).
 *
 * Run: build/examples/thread_basics (it accepts a start method, like every
 * story, but starts no process). */
#include <mproc.h>

#include <stdio.h>
#include <string.h>

#include "story.h"

/* ---- first way: a function target ------------------------------------- */

/* task is the target (Python: def task(name)); arg points at the name in
 * the main program's memory, which the thread shares. */
static int task(void *arg)
{
    const char *name = arg;
    printf("\033[32m%s is running\033[0m\n", name);
    story_sleep(0.1); /* the seed sleeps 1 s */
    printf("%s is over\n", name);
    return 0;
}

/* ---- second way: a "subclass" of Thread ----------------------------------- */

/* my_thread_t is MyThread: the Thread it is, and its own fields (none
 * beyond the name, which is the Thread's). */
typedef struct {
    mp_thread_t *thread;
} my_thread_t;

/* my_thread_run is MyThread.run(self). It returns 0 if the running thread
 * is indeed the one called self.name. */
static int my_thread_run(void *arg)
{
    my_thread_t *self = arg;
    const char *name = mp_thread_name(self->thread); /* self.name */
    printf("%s is running\n", name);
    story_sleep(0.1);
    printf("%s is over\n", name);
    return strcmp(mp_thread_name(mp_current_thread()), name) == 0 ? 0 : 1;
}

/* my_thread_new is MyThread(name): super().__init__(), then self.name. */
static int my_thread_new(my_thread_t *self, const char *name)
{
    mp_thread_opts_t opts = { .name = name };
    return mp_thread_new(&self->thread, my_thread_run, self, &opts);
}

/* joined_ok joins t and checks that its target returned 0. */
static int joined_ok(mp_thread_t *t)
{
    int rc, result = -1;
    if ((rc = mp_thread_join(t, 30.0)) != 0 || (rc = mp_thread_result(t, &result)) != 0)
        return story_fail("%s: %s", mp_thread_name(t), mp_strerror(rc));
    if (result != 0)
        return story_fail("%s returned %d", mp_thread_name(t), result);
    if (mp_thread_is_alive(t) != 0)
        return story_fail("%s is alive after join", mp_thread_name(t));
    return 0;
}

int main(int argc, char **argv)
{
    story_begin(argc, argv);
    int rc;

    /* First way: t = Thread(target=task, args=('zmm',)); t.start() */
    static char zmm[] = "zmm";
    mp_thread_t *t = NULL;
    if ((rc = mp_thread_new(&t, task, zmm, NULL)) != 0 || (rc = mp_thread_start(t)) != 0)
        return story_fail("Thread: %s", mp_strerror(rc));
    printf("主\n");
    if (joined_ok(t))
        return 1;
    mp_thread_free(t);

    /* Second way: t = MyThread('zmm'); t.start() */
    static my_thread_t mine;
    if ((rc = my_thread_new(&mine, "zmm")) != 0 || (rc = mp_thread_start(mine.thread)) != 0)
        return story_fail("MyThread: %s", mp_strerror(rc));
    printf("主\n");
    if (joined_ok(mine.thread))
        return 1;
    if (strcmp(mp_thread_name(mine.thread), "zmm") != 0)
        return story_fail("MyThread's name is %s", mp_thread_name(mine.thread));
    /* As in Python, a thread can only be started once. */
    if ((rc = mp_thread_start(mine.thread)) != MP_ESTARTED)
        return story_fail("a second start gave %d (%s), want MP_ESTARTED", rc,
                          mp_strerror(rc));
    mp_thread_free(mine.thread);
    return 0;
}

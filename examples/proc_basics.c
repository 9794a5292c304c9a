/* proc_basics.c: the two ways to start a process (seeds 002 and 003,
 * "开启进程的两种方式").
 *
 * First way, a function as the target (seed 003):
 *     def task(name):
 *         print('%s is running' % name); time.sleep(3); print('%s is over' % name)
 *     p = Process(target=task, args=('admin',)); p.start(); print('我是主进程')
 *
 * Second way, a subclass of Process that overrides run (seed 002, 3.4):
 *     class MyProcess(Process):
 *         def __init__(self, count): super().__init__(); self.count = count
 *         def run(self): print("这是子进程%s" % self.count)
 *     for i in range(3):
 *         p = MyProcess(i); p.start(); print("这里是父进程%s" % i)
 *
 * C has no subclasses; the natural form is a struct with the subclass's
 * fields, a run function that receives that struct, and a constructor that
 * packs the fields and makes the mp_process_t (my_process_new below). mproc
 * copies the struct into the child, so it works under every start method.
 *
 * Parent and children run at the same time, so the order of the lines of
 * the parent and of the children may change from run to run (as in Python).
 * Python's main waits for its children at exit; here the parent joins them
 * to check their exit codes.
 *
 * Run: build/examples/proc_basics [fork|spawn|forkserver] */
#include <mproc.h>

#include <stdio.h>
#include <unistd.h>

#include "story.h"

/* ---- first way: a function target ------------------------------------- */

/* task's argument: Python's args=('admin',). It holds the characters, not a
 * pointer to them, because the child gets a copy of these bytes. */
struct task_arg {
    char name[32];
};

/* task is the target (Python: def task(name)); its return value is the
 * child's exit code. */
static int task(void *arg)
{
    const struct task_arg *a = arg;
    printf("%s is running\n", a->name);
    story_sleep(0.3); /* the seed sleeps 3 s: the "work" */
    printf("%s is over\n", a->name);
    return 0;
}

/* ---- second way: a "subclass" of Process ------------------------------- */

/* my_process_t holds MyProcess's own fields (self.count). */
typedef struct {
    int count;
} my_process_t;

/* my_process_run is MyProcess.run(self). It runs in the child, on the
 * child's copy of the fields. */
static int my_process_run(void *arg)
{
    const my_process_t *self = arg;
    printf("这是子进程%d\n", self->count);
    /* self.pid inside run is the child's own pid. */
    return mp_process_pid(mp_current_process()) == getpid() ? 0 : 1;
}

/* my_process_new is MyProcess(count): super().__init__() plus the fields. */
static int my_process_new(mp_process_t **out, int count)
{
    my_process_t self = { .count = count };
    return mp_process_new(out, my_process_run, &self, sizeof self, NULL);
}

/* join_ok joins p and checks that it exited with 0. */
static int join_ok(mp_process_t *p)
{
    int rc, code = -1;
    if ((rc = mp_process_join(p, MP_FOREVER)) != 0 ||
        (rc = mp_process_exitcode(p, &code)) != 0)
        return story_fail("%s: %s", mp_process_name(p), mp_strerror(rc));
    if (code != 0)
        return story_fail("%s exited with %d", mp_process_name(p), code);
    return 0;
}

int main(int argc, char **argv)
{
    story_begin(argc, argv);
    int rc;

    /* First way: p = Process(target=task, args=('admin',)); p.start() */
    mp_process_t *p = NULL;
    struct task_arg a = { .name = "admin" };
    if ((rc = mp_process_new(&p, task, &a, sizeof a, NULL)) != 0 ||
        (rc = mp_process_start(p)) != 0)
        return story_fail("task: %s", mp_strerror(rc));
    printf("我是主进程\n");
    if (join_ok(p))
        return 1;
    mp_process_free(p);

    /* Second way: three MyProcess objects. */
    mp_process_t *mine[3] = { NULL, NULL, NULL };
    for (int i = 0; i < 3; i++) {
        if ((rc = my_process_new(&mine[i], i)) != 0 ||
            (rc = mp_process_start(mine[i])) != 0)
            return story_fail("MyProcess(%d): %s", i, mp_strerror(rc));
        printf("这里是父进程%d\n", i);
    }
    for (int i = 0; i < 3; i++) {
        if (join_ok(mine[i]))
            return 1;
        mp_process_free(mine[i]);
    }
    return 0;
}

/* proc_pid.c: every running process has a PID (seeds 000 and 002, "进程对象").
 *
 * Python:
 *     def func(n):
 *         print("执行到我了...我的pid值是:%s,我父进程(主进程)的pid的只是:%s"
 *               % (os.getpid(), os.getppid()))
 *     p = Process(target=func, args=(1,)); p.start(); time.sleep(2)
 *     print("我是主进程...我自己的pid值是:%s,此时我的父进程的pid的值是:%s"
 *           % (os.getpid(), os.getppid()))
 * and then the attributes of a process object seen from the parent:
 *     p.name = "liangxue"; print(p.name, p.pid, p.daemon)
 *
 * The child names its parent with mp_parent_process() (Python's
 * parent_process()): under fork and spawn that is also getppid(), but a
 * forkserver child is forked by the server, so getppid() names the server.
 * The seed waits with time.sleep(2); here the parent joins instead.
 *
 * Run: build/examples/proc_pid [fork|spawn|forkserver] */
#include <mproc.h>

#include <stdio.h>
#include <unistd.h>

#include "story.h"

/* What the child is told: its n and who started it, to check against. */
struct func_arg {
    int n;
    pid_t main_pid;
};

/* func is the child's target (Python: def func(n)). */
static int func(void *arg)
{
    const struct func_arg *a = arg;
    mp_process_t *me = mp_current_process();
    mp_process_t *parent = mp_parent_process();

    printf("执行到我了...我的pid值是:%d,我父进程(主进程)的pid的只是:%d\n",
           (int)getpid(), parent ? (int)mp_process_pid(parent) : -1);
    printf("这里是子进程,我的名字是%s\n", mp_process_name(me));

    /* current_process().pid is os.getpid(); parent_process() is main. */
    if (mp_process_pid(me) != getpid())
        return story_fail("child: current pid %d, getpid %d",
                          (int)mp_process_pid(me), (int)getpid());
    if (!parent || mp_process_pid(parent) != a->main_pid)
        return story_fail("child: parent pid %d, want %d",
                          parent ? (int)mp_process_pid(parent) : -1,
                          (int)a->main_pid);
    return a->n == 1 ? 0 : story_fail("child: n = %d, want 1", a->n);
}

/* quiet does nothing: a process to look at from outside. */
static int quiet(void *arg)
{
    (void)arg;
    return 0;
}

int main(int argc, char **argv)
{
    story_begin(argc, argv);
    mp_process_t *me = mp_current_process();
    mp_process_t *p = NULL, *q = NULL;
    int rc, code = -1;

    /* current_process().pid and os.getpid() are the same number. */
    printf("主进程: %s, pid %d\n", mp_process_name(me), (int)mp_process_pid(me));
    if (mp_process_pid(me) != getpid() || mp_parent_process() != NULL)
        return story_fail("main: current pid %d, getpid %d, parent %p",
                          (int)mp_process_pid(me), (int)getpid(),
                          (void *)mp_parent_process());

    struct func_arg a = { .n = 1, .main_pid = getpid() };
    if ((rc = mp_process_new(&p, func, &a, sizeof a, NULL)) != 0 ||
        (rc = mp_process_start(p)) != 0 ||
        (rc = mp_process_join(p, MP_FOREVER)) != 0 ||
        (rc = mp_process_exitcode(p, &code)) != 0)
        return story_fail("func process: %s", mp_strerror(rc));
    if (code != 0)
        return story_fail("func process exited with %d", code);
    printf("我是主进程...我自己的pid值是:%d,此时我的父进程的pid的值是:%d\n",
           (int)getpid(), (int)getppid());

    /* The process object's attributes, seen from the parent (seed 002, 6.1).
     * Before start a process has its default name and no pid (0). */
    if ((rc = mp_process_new(&q, quiet, NULL, 0, NULL)) != 0)
        return story_fail("quiet process: %s", mp_strerror(rc));
    printf("默认的名字: %s, start 之前的 pid: %d\n", mp_process_name(q),
           (int)mp_process_pid(q));
    if (mp_process_pid(q) != 0)
        return story_fail("pid before start is %d, want 0", (int)mp_process_pid(q));
    if ((rc = mp_process_start(q)) != 0 ||
        (rc = mp_process_set_name(q, "liangxue")) != 0)
        return story_fail("quiet process: %s", mp_strerror(rc));
    printf("子进程的名字时%s\n", mp_process_name(q));
    printf("子进程的pid值是:%d\n", (int)mp_process_pid(q));
    printf("子进程是不是守护进程%s\n", story_bool(mp_process_daemon(q)));
    if (mp_process_pid(q) <= 0 || mp_process_daemon(q) != 0)
        return story_fail("pid %d, daemon %d", (int)mp_process_pid(q),
                          mp_process_daemon(q));
    if ((rc = mp_process_join(q, MP_FOREVER)) != 0)
        return story_fail("join: %s", mp_strerror(rc));

    mp_process_free(p);
    mp_process_free(q);
    return 0;
}

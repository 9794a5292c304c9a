/* thread_info.c: a thread's name, current_thread, active_count and enumerate
 * (seed 001, "线程对象及其他方法").
 *
 * Python:
 *     def task(name, i):
 *         print('%s is running' % name)
 *         print('子current_thread:', current_thread().name)
 *         print('子', os.getpid())
 *         time.sleep(i)
 *         print('%s is over' % name)
 *     t1 = Thread(target=task, args=('zmm', 1))
 *     t2 = Thread(target=task, args=('yzy', 2))
 *     t1.start(); t2.start()
 *     t1.join()
 *     print('当前正在活跃的线程数:', active_count())
 *     print('主')
 *     print('主', os.getpid())
 *     print('主current_thread:', current_thread().name)
 *
 * (The seed's prints of '' lost their characters when the page was copied;
 * '主' and '子', main and child, are what the program it came from prints.)
 *
 * Every thread has a name: Thread-1, Thread-2 ... unless given one, and
 * MainThread for the main program. All threads of a process share its pid.
 * After t1.join(), two threads are alive: the main thread and t2, which
 * sleeps longer; threading.enumerate() lists them. Here t2 "sleeps" until
 * the main program has counted, so the count is always 2; the lines of t1
 * and t2 mix in an order that changes from run to run.
 *
 * Run: build/examples/thread_info (it accepts a start method, like every
 * story, but starts no process). */
#include <mproc.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "story.h"

/* task's arguments (Python: args=('zmm', 1)): the name, and how it sleeps. */
struct task_arg {
    const char *name;
    double seconds;    /* sleep this long ... */
    mp_event_t *until; /* ... or, if set, until this event is set */
};

static pid_t main_pid;

/* task is the target (Python: def task(name, i)). It returns 0 if it runs in
 * the main program's process. */
static int task(void *arg)
{
    const struct task_arg *a = arg;
    int rc = 0;
    printf("%s is running\n", a->name);
    printf("子current_thread: %s\n", mp_thread_name(mp_current_thread()));
    printf("子 %d\n", (int)getpid());
    if (a->until)
        rc = mp_event_wait(a->until, 30.0);
    else
        story_sleep(a->seconds);
    printf("%s is over\n", a->name);
    return rc == 0 && getpid() == main_pid ? 0 : 1;
}

/* joined_ok joins t and checks that its target returned 0. */
static int joined_ok(mp_thread_t *t)
{
    int rc, result = -1;
    if ((rc = mp_thread_join(t, 30.0)) != 0 || (rc = mp_thread_result(t, &result)) != 0)
        return story_fail("%s: %s", mp_thread_name(t), mp_strerror(rc));
    if (result != 0)
        return story_fail("%s: a thread ran in another process, or waited in vain",
                          mp_thread_name(t));
    return 0;
}

int main(int argc, char **argv)
{
    story_begin(argc, argv);
    static mp_event_t *counted;
    static struct task_arg a1 = { "zmm", 0.1, NULL }, a2 = { "yzy", 0, NULL };
    mp_thread_t *t1 = NULL, *t2 = NULL;
    int rc;

    main_pid = getpid();
    if ((rc = mp_event_new(&counted)) != 0)
        return story_fail("Event: %s", mp_strerror(rc));
    a2.until = counted;
    if ((rc = mp_thread_new(&t1, task, &a1, NULL)) != 0 ||
        (rc = mp_thread_new(&t2, task, &a2, NULL)) != 0 ||
        (rc = mp_thread_start(t1)) != 0 || (rc = mp_thread_start(t2)) != 0)
        return story_fail("Thread: %s", mp_strerror(rc));
    if (joined_ok(t1))
        return 1;

    int n = mp_active_count();
    printf("当前正在活跃的线程数: %d\n", n);
    mp_thread_t *live[8];
    int m = mp_enumerate_threads(live, 8);
    printf("threading.enumerate():");
    for (int i = 0; i < m && i < 8; i++)
        printf(" %s", mp_thread_name(live[i]));
    printf("\n");
    printf("主\n");
    printf("主 %d\n", (int)getpid());
    const char *me = mp_thread_name(mp_current_thread());
    printf("主current_thread: %s\n", me);

    /* The claims, before t2 may end. */
    if (n != 2 || m != 2)
        return story_fail("active_count() = %d and enumerate() holds %d, want 2 and 2", n,
                          m);
    int saw_main = 0, saw_t2 = 0;
    for (int i = 0; i < 2; i++) {
        saw_main += live[i] == mp_main_thread() && strcmp(mp_thread_name(live[i]), "MainThread") == 0;
        saw_t2 += strcmp(mp_thread_name(live[i]), "Thread-2") == 0;
    }
    if (saw_main != 1 || saw_t2 != 1)
        return story_fail("enumerate() should list MainThread and Thread-2");
    if (strcmp(me, "MainThread") != 0 || mp_current_thread() != mp_main_thread())
        return story_fail("the main program's thread is %s, want MainThread", me);
    if (strcmp(mp_thread_name(t1), "Thread-1") != 0 || mp_thread_is_alive(t1) != 0 ||
        mp_thread_is_alive(t2) != 1)
        return story_fail("%s should be dead and %s alive", mp_thread_name(t1),
                          mp_thread_name(t2));

    mp_event_set(counted); /* t2's sleep is over */
    if (joined_ok(t2))
        return 1;
    if ((n = mp_active_count()) != 1)
        return story_fail("after both joins, active_count() = %d, want 1", n);
    mp_thread_free(t1);
    mp_thread_free(t2);
    return 0;
}

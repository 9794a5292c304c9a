/* thread_daemon.c: daemon threads, and the end of a program (seed 001,
 * "守护线程" and the "小例子" after it).
 *
 * Python, daemon threads:
 *     def task(i):
 *         print(current_thread().name)
 *         time.sleep(1)
 *         print('GG')
 *     t1 = Thread(target=task, args=(1,))
 *     t2 = Thread(target=task, args=(2,))
 *     t3 = Thread(target=task, args=(3,))
 *     t3.daemon = True
 *     t1.start(); t2.start(); t3.start()
 *     print('zhu')
 * prints
 *     Thread-1
 *     Thread-2
 *     Thread-3
 *     zhu
 *     GG
 *     GG
 * 主线程的结束也就意味着进程的结束; 主线程必须等待其他非守护线程的结束才能结束:
 * when the main program is done, the process waits for its non-daemon
 * threads (two GG), and ends without waiting for the daemon thread (no
 * third GG).
 *
 * The little example:
 *     def foo(): print(123); time.sleep(1); print("end123")
 *     def bar(): print(456); time.sleep(3); print("end456")
 *     t1 = Thread(target=foo); t2 = Thread(target=bar)
 *     t1.daemon = True
 *     t1.start(); t2.start()
 *     print("main-------")
 * prints 123, 456, main-------, end123, end456: the daemon foo does finish,
 * because the process lives on until bar, which works longer, is done.
 *
 * The seed orders the lines with sleeps. Here each sleep becomes a wait for
 * what it was waiting for, so the story always prints the same lines in the
 * same order: the main program waits until a thread has printed its first
 * line before it starts the next one (Python's GIL usually does that), the
 * non-daemon threads print GG only after 'zhu', and the daemon thread t3
 * would print its GG only when something that never happens happens (it
 * gives up after 30 s), so a GG from it means the process waited for it.
 * bar works "longer than foo" by waiting for foo's end.
 *
 * A program cannot watch its own end, so this file holds three programs:
 * the two of the seed, and a witness (main) that runs each of them as its
 * child, shows what it prints, and checks that.
 *
 * Run: build/examples/thread_daemon (it accepts a start method, like every
 * story, but starts no process of mproc's). */
#include <mproc.h>

#include <stdio.h>
#include <string.h>

#include "story.h"

/* said counts the first lines of the threads; the main program takes one
 * for each thread before it goes on (a Semaphore that starts at 0). */
static mp_sem_t *said;

/* ---- the first program: daemon threads ------------------------------------ */

/* task's argument: until what it "sleeps". */
struct task_arg {
    int i;
    mp_event_t *until;
};

/* task is the target (Python: def task(i)). */
static int task(void *arg)
{
    const struct task_arg *a = arg;
    printf("%s\n", mp_thread_name(mp_current_thread()));
    mp_sem_release(said, 1);
    int rc = mp_event_wait(a->until, 30.0); /* time.sleep(1) */
    printf("GG\n");
    return rc == 0 ? 0 : 1;
}

/* daemon_main is the first program of the seed. */
static int daemon_main(void)
{
    static mp_event_t *zhu, *never;
    static struct task_arg args[3];
    mp_thread_t *t[3] = { NULL };
    int rc;

    if ((rc = mp_sem_new(&said, 0, 0)) != 0 || (rc = mp_event_new(&zhu)) != 0 ||
        (rc = mp_event_new(&never)) != 0)
        return story_fail("Semaphore/Event: %s", mp_strerror(rc));
    for (int i = 0; i < 3; i++) {
        /* t1 and t2 "sleep" until the main program has said zhu; t3, the
         * daemon, until something that never happens. */
        args[i] = (struct task_arg){ i + 1, i < 2 ? zhu : never };
        if ((rc = mp_thread_new(&t[i], task, &args[i], NULL)) != 0)
            return story_fail("Thread: %s", mp_strerror(rc));
    }
    if ((rc = mp_thread_set_daemon(t[2], 1)) != 0) /* t3.daemon = True */
        return story_fail("t3.daemon = True: %s", mp_strerror(rc));
    for (int i = 0; i < 3; i++) {
        if ((rc = mp_thread_start(t[i])) != 0 || (rc = mp_sem_acquire(said, 30.0)) != 0)
            return story_fail("t%d: %s", i + 1, mp_strerror(rc));
    }
    printf("zhu\n");

    if (mp_thread_daemon(t[0]) != 0 || mp_thread_daemon(t[1]) != 0 ||
        mp_thread_daemon(t[2]) != 1)
        return story_fail("daemon flags %d %d %d, want 0 0 1", mp_thread_daemon(t[0]),
                          mp_thread_daemon(t[1]), mp_thread_daemon(t[2]));
    if ((rc = mp_thread_set_daemon(t[0], 1)) != MP_ESTARTED)
        return story_fail("daemon = True after start gave %d (%s), want MP_ESTARTED", rc,
                          mp_strerror(rc));
    if ((rc = mp_active_count()) != 4)
        return story_fail("active_count() = %d, want 4", rc);

    /* Let t1 and t2 go on, and end the main program. mproc waits for t1
     * and t2 at exit, not for t3. */
    mp_event_set(zhu);
    for (int i = 0; i < 3; i++)
        mp_thread_free(t[i]);
    return 0;
}

/* ---- the second program: the little example ------------------------------ */

/* main_said is set once the main program has printed its line; foo_done
 * once foo has finished. */
static mp_event_t *main_said, *foo_done;

static int foo(void *arg)
{
    (void)arg;
    printf("123\n");
    mp_sem_release(said, 1);
    int rc = mp_event_wait(main_said, 30.0);
    story_sleep(0.1); /* the seed sleeps 1 s */
    printf("end123\n");
    mp_event_set(foo_done);
    return rc == 0 ? 0 : 1;
}

static int bar(void *arg)
{
    (void)arg;
    printf("456\n");
    mp_sem_release(said, 1);
    int rc = mp_event_wait(foo_done, 30.0); /* the seed sleeps 3 s, longer than foo */
    printf("end456\n");
    return rc == 0 ? 0 : 1;
}

/* example_main is the second program of the seed. */
static int example_main(void)
{
    mp_thread_t *t1 = NULL, *t2 = NULL;
    mp_thread_opts_t daemon = { .daemon = 1 };
    int rc;

    if ((rc = mp_sem_new(&said, 0, 0)) != 0 || (rc = mp_event_new(&main_said)) != 0 ||
        (rc = mp_event_new(&foo_done)) != 0)
        return story_fail("Semaphore/Event: %s", mp_strerror(rc));
    if ((rc = mp_thread_new(&t1, foo, NULL, &daemon)) != 0 || /* t1.daemon = True */
        (rc = mp_thread_new(&t2, bar, NULL, NULL)) != 0)
        return story_fail("Thread: %s", mp_strerror(rc));
    if ((rc = mp_thread_start(t1)) != 0 || (rc = mp_sem_acquire(said, 30.0)) != 0 ||
        (rc = mp_thread_start(t2)) != 0 || (rc = mp_sem_acquire(said, 30.0)) != 0)
        return story_fail("start: %s", mp_strerror(rc));
    printf("main-------\n");
    mp_event_set(main_said);
    mp_thread_free(t1);
    mp_thread_free(t2);
    return 0;
}

/* ---- the witness --------------------------------------------------------- */

/* watch runs this program in the given role and checks that it printed
 * exactly `want` and ended with 0, well before the 30 s a thread that
 * should be gone would have waited. */
static int watch(int argc, char **argv, const char *role, const char *want)
{
    char transcript[1024];
    int status = -1;
    printf("---- %s ----\n", role);
    double start = story_now();
    int rc = story_witness(argc, argv, role, transcript, sizeof transcript, 20.0, &status);
    double took = story_now() - start;
    if (rc != 0)
        return story_fail("%s: %s", role, rc == -ETIMEDOUT ? "it did not end" : strerror(-rc));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return story_fail("%s: the program failed (status 0x%x)", role, status);
    if (strcmp(transcript, want) != 0)
        return story_fail("%s printed\n%swant\n%s", role, transcript, want);
    if (took > 10.0)
        return story_fail("%s: the program took %.1f s to end", role, took);
    return 0;
}

int main(int argc, char **argv)
{
    story_begin(argc, argv);
    const char *role = story_role();
    if (role && strcmp(role, "守护线程") == 0)
        return daemon_main();
    if (role && strcmp(role, "小例子") == 0)
        return example_main();

    if (watch(argc, argv, "守护线程", "Thread-1\nThread-2\nThread-3\nzhu\nGG\nGG\n"))
        return 1;
    return watch(argc, argv, "小例子", "123\n456\nmain-------\nend123\nend456\n");
}

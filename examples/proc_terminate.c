/* proc_terminate.c: terminate, is_alive and the exit code of a killed process
 * (seeds 000 and 004, "进程对象及其他方法").
 *
 * Python (seed 004):
 *     class Piao(Process):
 *         def run(self):
 *             print('%s is running' % self.name); time.sleep(2); ...
 *     p1 = Piao('太白'); p1.start(); time.sleep(5)
 *     p1.terminate()           # asks the system to kill it; takes a moment
 *     print(p1.is_alive())     # may still be True
 *     print('等会。。。。'); time.sleep(1)
 *     print(p1.is_alive())     # False
 *
 * terminate sends SIGTERM and does not wait; right after it, is_alive may
 * still say True, which is why the seed sleeps. Here the parent joins
 * instead: after join, is_alive is False for certain, and the exit code is
 * -15, minus the number of the signal that ended the process (Python's
 * exitcode convention). kill sends SIGKILL, which cannot be caught: -9.
 *
 * Run: build/examples/proc_terminate [fork|spawn|forkserver] */
#include <mproc.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "story.h"

/* A Piao's fields: its name, and where to say that it is running. */
struct piao {
    char name[32];
    char ready[STORY_PATH_MAX];
};

/* piao_run is Piao.run: it would work for a long time. */
static int piao_run(void *arg)
{
    const struct piao *self = arg;
    printf("%s is running\n", self->name);
    fflush(stdout);
    story_fifo_say(self->ready, "ready");
    story_sleep(30);
    printf("%s is over\n", self->name); /* never reached */
    return 0;
}

/* start_running starts a Piao named name and waits until it runs. */
static int start_running(mp_process_t **out, const story_fifo_t *dir,
                         const char *name, const char *fifo)
{
    struct piao self;
    char said[16];
    int rc, fd;

    memset(&self, 0, sizeof self);
    snprintf(self.name, sizeof self.name, "%s", name);
    if ((rc = story_fifo_make(dir, fifo, self.ready)) != 0 ||
        (fd = rc = story_fifo_listen(self.ready)) < 0)
        return story_fail("named pipe: %s", strerror(-rc));
    mp_process_opts_t opts = { .name = name }; /* Process(name=...) */
    if ((rc = mp_process_new(out, piao_run, &self, sizeof self, &opts)) != 0 ||
        (rc = mp_process_start(*out)) != 0)
        return story_fail("%s: %s", name, mp_strerror(rc));
    long n = story_fifo_hear(fd, said, sizeof said, 10.0);
    unlink(self.ready);
    if (n < 0 || strcmp(said, "ready") != 0)
        return story_fail("%s did not start running", name);
    return 0;
}

/* ended_by joins p (at most 5 s) and checks that signal sig ended it. */
static int ended_by(mp_process_t *p, int sig)
{
    int rc, code = 0;
    if ((rc = mp_process_join(p, 5.0)) != 0) {
        mp_process_kill(p);
        mp_process_join(p, MP_FOREVER);
        return story_fail("%s: join: %s", mp_process_name(p), mp_strerror(rc));
    }
    if (mp_process_is_alive(p) != 0)
        return story_fail("%s is alive after join", mp_process_name(p));
    printf("%s\n", story_bool(mp_process_is_alive(p)));
    if ((rc = mp_process_exitcode(p, &code)) != 0)
        return story_fail("%s: exitcode: %s", mp_process_name(p), mp_strerror(rc));
    printf("%s 的 exitcode: %d\n", mp_process_name(p), code);
    if (code != -sig)
        return story_fail("%s: exit code %d, want %d", mp_process_name(p), code, -sig);
    return 0;
}

int main(int argc, char **argv)
{
    story_begin(argc, argv);
    story_fifo_t dir;
    mp_process_t *p1 = NULL, *p2 = NULL;
    int rc;

    if ((rc = story_fifo_dir(&dir)) != 0)
        return story_fail("temporary directory: %s", strerror(-rc));

    /* terminate: SIGTERM */
    if (start_running(&p1, &dir, "太白", "p1"))
        return 1;
    printf("%s\n", story_bool(mp_process_is_alive(p1))); /* True: it sleeps */
    if (mp_process_is_alive(p1) != 1)
        return story_fail("p1 is not alive before terminate");
    if ((rc = mp_process_terminate(p1)) != 0)
        return story_fail("terminate: %s", mp_strerror(rc));
    printf("等会。。。。\n");
    if (ended_by(p1, SIGTERM))
        return 1;

    /* kill: SIGKILL */
    if (start_running(&p2, &dir, "alex", "p2"))
        return 1;
    if ((rc = mp_process_kill(p2)) != 0)
        return story_fail("kill: %s", mp_strerror(rc));
    if (ended_by(p2, SIGKILL))
        return 1;

    /* A process that has ended can be closed; then it is only a name. */
    if ((rc = mp_process_close(p1)) != 0 || (rc = mp_process_close(p2)) != 0)
        return story_fail("close: %s", mp_strerror(rc));
    if ((rc = mp_process_is_alive(p1)) != MP_ECLOSED)
        return story_fail("is_alive after close gave %d, want MP_ECLOSED", rc);
    mp_process_free(p1);
    mp_process_free(p2);
    story_fifo_remove(&dir, NULL);
    return 0;
}

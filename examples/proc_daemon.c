/* proc_daemon.c: a daemon process dies with the main program (seed 003,
 * "守护进程": the housekeeper 总管 who goes with the emperor 皇帝).
 *
 * Python:
 *     def task(name):
 *         print('%s总管正在活着' % name)
 *         time.sleep(3)
 *         print('%s总管正在死亡' % name)
 *     p = Process(target=task, args=('egon',))
 *     p.daemon = True      # before start, or it is an error
 *     p.start()
 *     print('皇帝jason寿终正寝')
 *
 * When the main program ends, mproc terminates its daemon children (and
 * joins the others), so '正在死亡' is never printed. A daemon process may not
 * start children of its own: mproc returns MP_EDAEMON.
 *
 * In Python the emperor often dies before the housekeeper has printed
 * anything; here the emperor waits until the housekeeper says it is alive,
 * so the story always reads the same.
 *
 * A program cannot watch its own end, so this file holds two programs: the
 * seed's (emperor_main) and a witness (main) that runs the seed's program as
 * its child, reads everything it and its housekeeper print, and checks that
 * the housekeeper was gone as soon as the emperor was.
 *
 * Run: build/examples/proc_daemon [fork|spawn|forkserver] */
#include <mproc.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "story.h"

/* ---- the seed's program ------------------------------------------------ */

/* task's argument: the housekeeper's name, and the named pipe on which it
 * tells the emperor that it is alive. */
struct task_arg {
    char name[32];
    char alive[STORY_PATH_MAX];
};

/* nobody is the child a daemon tries (and fails) to start. */
static int nobody(void *arg)
{
    (void)arg;
    return 0;
}

/* task is the housekeeper (Python: def task(name)). */
static int task(void *arg)
{
    const struct task_arg *a = arg;
    printf("%s总管正在活着\n", a->name);

    /* 守护进程内无法再开启子进程: a daemon may not have children. */
    mp_process_t *c = NULL;
    int rc = mp_process_new(&c, nobody, NULL, 0, NULL);
    if (rc == 0)
        rc = mp_process_start(c);
    printf("守护进程内无法再开启子进程: %s\n", mp_strerror(rc));
    if (rc == 0)
        mp_process_join(c, MP_FOREVER);
    mp_process_free(c);

    fflush(stdout);
    story_fifo_say(a->alive, rc == MP_EDAEMON ? "alive" : "daemon had a child");
    story_sleep(3);
    printf("%s总管正在死亡\n", a->name);
    return 0;
}

/* emperor_main is the seed's main program. */
static int emperor_main(int argc, char **argv)
{
    story_fifo_t dir;
    char said[64];
    mp_process_t *p = NULL;
    int rc, fd;

    struct task_arg a = { .name = "egon" };
    if ((rc = story_fifo_dir(&dir)) != 0 ||
        (rc = story_fifo_make(&dir, "alive", a.alive)) != 0 ||
        (fd = rc = story_fifo_listen(a.alive)) < 0)
        return story_fail("named pipe: %s", strerror(-rc));

    if ((rc = mp_process_new(&p, task, &a, sizeof a, NULL)) != 0 ||
        (rc = mp_process_set_daemon(p, 1)) != 0 || /* p.daemon = True */
        (rc = mp_process_start(p)) != 0)
        return story_fail("housekeeper: %s", mp_strerror(rc));
    /* After start the flag can no longer change. */
    if ((rc = mp_process_set_daemon(p, 0)) != MP_ESTARTED)
        return story_fail("set_daemon after start gave %d (%s), want MP_ESTARTED",
                          rc, mp_strerror(rc));

    long n = story_fifo_hear(fd, said, sizeof said, 10.0);
    story_fifo_remove(&dir, a.alive, NULL);
    if (n < 0 || strcmp(said, "alive") != 0)
        return story_fail("the housekeeper said \"%s\" (%s)", said,
                          n < 0 ? strerror((int)-n) : "ok");

    printf("皇帝jason寿终正寝\n");
    /* Dropping the handle does not stop the housekeeper; at exit mproc
     * terminates every daemon child still running. */
    mp_process_free(p);
    return 0;
}

/* ---- the witness ------------------------------------------------------- */

#define ROLE_ENV "MPROC_STORY_EMPEROR"

/* witness runs this program again as the emperor, with its stdout going
 * into a pipe, and relays what comes out. The pipe ends (EOF) only when
 * every process holding it, the emperor and its housekeeper, has ended. */
static int witness(int argc, char **argv)
{
    int fds[2];
    pid_t pid;
    char transcript[4096];
    size_t len = 0;

    if (pipe2(fds, O_CLOEXEC) != 0)
        return story_fail("pipe: %s", strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    char *args[] = { argv[0], argc > 1 ? argv[1] : NULL, NULL };
    setenv(ROLE_ENV, "1", 1);
    int rc = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, args, environ);
    unsetenv(ROLE_ENV);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0)
        return story_fail("posix_spawn: %s", strerror(rc));

    /* Relay until EOF; the housekeeper would print its last words at 3 s. */
    double deadline = story_now() + 8.0;
    int eof = 0;
    while (!eof && story_now() < deadline) {
        struct pollfd pfd = { .fd = fds[0], .events = POLLIN };
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        ssize_t got = read(fds[0], transcript + len, sizeof transcript - 1 - len);
        if (got <= 0) {
            eof = got == 0 || errno != EINTR;
            continue;
        }
        fwrite(transcript + len, 1, (size_t)got, stdout);
        fflush(stdout);
        len += (size_t)got;
        eof = len == sizeof transcript - 1;
    }
    transcript[len] = '\0';
    close(fds[0]);

    /* The pipe ends as the emperor closes its descriptors, a moment before
     * it can be waited for. */
    int status = 0;
    pid_t done = 0;
    deadline = story_now() + 5.0;
    while ((done = waitpid(pid, &status, WNOHANG)) == 0 && story_now() < deadline)
        story_sleep(0.005);
    if (done == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        return story_fail("the emperor did not end");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return story_fail("the emperor's program failed (status 0x%x)", status);
    if (!eof)
        return story_fail("the emperor ended but someone still writes to its "
                          "stdout: the housekeeper (or a server) outlived it");
    if (!strstr(transcript, "egon总管正在活着") || !strstr(transcript, "皇帝jason寿终正寝"))
        return story_fail("a line of the story is missing");
    if (strstr(transcript, "总管正在死亡"))
        return story_fail("the housekeeper outlived the emperor");
    return 0;
}

int main(int argc, char **argv)
{
    story_begin(argc, argv);
    if (getenv(ROLE_ENV))
        return emperor_main(argc, argv);
    return witness(argc, argv);
}

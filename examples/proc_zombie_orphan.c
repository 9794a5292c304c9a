/* proc_zombie_orphan.c: zombies and orphans, seen through /proc (seeds 000,
 * 003 and 004, "僵尸进程与孤儿进程").
 *
 * A zombie (僵尸进程) is "dead but not quite": a child that has exited keeps
 * its pid and its exit status until its parent collects them. Seed 004 shows
 * one with `ps aux | grep Z` while the parent sleeps; join collects it:
 *     def run(): print('子', os.getpid())
 *     p = Process(target=run); p.start(); print('主', os.getpid())
 *     time.sleep(1000)              # meanwhile: ps shows the child as Z
 * Here the parent waits on the child's sentinel (which becomes readable when
 * the child ends, without collecting it), reads the state letter from
 * /proc/<pid>/stat, joins, and looks again.
 *
 * An orphan (孤儿进程) is a child whose parent died first; the system gives it
 * a new parent ("儿童福利院": init, or the nearest subreaper) which collects
 * it in the end. Seed 004:
 *     print('im father', 'pid', os.getpid(), 'ppid', os.getppid())
 *     if os.fork() > 0: print('father died..'); sys.exit(0)
 *     time.sleep(1); print('im child', os.getpid(), os.getppid())
 * Here the father is a process that starts a child and then dies abruptly
 * (SIGKILL, so no exit handler joins its child); the child waits until
 * parent_process().is_alive() is false and prints its new parent.
 *
 * Under fork and spawn the parent of a child is the process that started it.
 * A forkserver child is forked by the server: getppid() names the server,
 * which collects the child itself, so no zombie of ours appears and the
 * orphan keeps the server as its parent. The story says so when it happens.
 *
 * Run: build/examples/proc_zombie_orphan [fork|spawn|forkserver] */
#include <mproc.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "story.h"

/* proc_stat reads the state letter and the parent pid of pid from
 * /proc/<pid>/stat. Returns 1, or 0 if there is no such process. */
static int proc_stat(pid_t pid, char *state, pid_t *ppid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* "pid (comm) S ppid ...": comm may hold spaces and parentheses. */
    char *end = strrchr(buf, ')');
    int pp;
    if (!end || sscanf(end + 1, " %c %d", state, &pp) != 2)
        return 0;
    *ppid = (pid_t)pp;
    return 1;
}

/* ---- zombie ------------------------------------------------------------ */

/* run is the seed's child: it says who it is and ends at once. */
static int run(void *arg)
{
    (void)arg;
    printf("子 %d\n", (int)getpid());
    return 0;
}

/* zombie tells the first half of the story. */
static int zombie(void)
{
    mp_process_t *p = NULL;
    int rc, direct = mp_get_start_method() != MP_START_FORKSERVER;
    char st = '?';
    pid_t pp = 0;

    printf("主 %d\n", (int)getpid()); /* before start, so the order is fixed */
    if ((rc = mp_process_new(&p, run, NULL, 0, NULL)) != 0 ||
        (rc = mp_process_start(p)) != 0 || (rc = mp_process_sentinel(p)) < 0)
        return story_fail("run: %s", mp_strerror(rc));
    pid_t pid = mp_process_pid(p);

    /* Wait until the child has ended, without collecting it. */
    struct pollfd pfd = { .fd = rc, .events = POLLIN };
    if (poll(&pfd, 1, 10000) != 1)
        return story_fail("the child did not end within 10 s");
    /* The sentinel may wake us a moment before the kernel marks it Z. */
    int found = 0;
    for (int i = 0; i < 200; i++) {
        found = proc_stat(pid, &st, &pp);
        if (!found || st == 'Z')
            break;
        story_sleep(0.005);
    }
    if (found && st == 'Z')
        printf("子进程 %d 已经结束, /proc/%d/stat 的状态: %c, 父进程 %d "
               "(僵尸进程: 死了但是没有死透)\n", (int)pid, (int)pid, st, (int)pp);
    else if (!found)
        printf("子进程 %d 已经结束, 已被它真正的父进程 (forkserver) 回收\n", (int)pid);
    else
        return story_fail("the child ended but its state is %c", st);
    if (direct && !(found && st == 'Z' && pp == getpid()))
        return story_fail("want a zombie child of ours, found %d, state %c, ppid %d",
                          found, st, (int)pp);

    /* join collects it: the pid is released. */
    int code = -1;
    if ((rc = mp_process_join(p, MP_FOREVER)) != 0 ||
        (rc = mp_process_exitcode(p, &code)) != 0)
        return story_fail("join: %s", mp_strerror(rc));
    found = proc_stat(pid, &st, &pp);
    if (!found)
        printf("join 之后: /proc/%d 已经不存在, pid 被回收了\n", (int)pid);
    else if (st == 'Z' && pp == getpid())
        return story_fail("still a zombie of ours after join");
    else
        printf("join 之后: pid %d 已被回收 (又被别的进程用了)\n", (int)pid);
    mp_process_free(p);
    return code == 0 ? 0 : story_fail("run exited with %d", code);
}

/* ---- orphan ------------------------------------------------------------ */

/* The named pipes of the family: the child tells the father it is ready,
 * and tells main what it saw. */
struct family {
    char ready[STORY_PATH_MAX];
    char report[STORY_PATH_MAX];
};

/* orphan is the child: it outlives its father. */
static int orphan(void *arg)
{
    const struct family *f = arg;
    mp_process_t *parent = mp_parent_process();
    pid_t father = parent ? mp_process_pid(parent) : -1;
    pid_t before = getppid();
    char msg[96];

    story_fifo_say(f->ready, "ready");
    /* Python: while parent_process().is_alive(): time.sleep(0.01) */
    double deadline = story_now() + 10.0;
    int alive = parent ? 1 : -1;
    while (alive == 1 && story_now() < deadline) {
        story_sleep(0.01);
        alive = mp_process_is_alive(parent);
    }
    /* The kernel hands a dead father's children over as the father exits. */
    while (before == father && getppid() == before && story_now() < deadline)
        story_sleep(0.01);
    pid_t after = getppid();

    printf("im child %d %d\n", (int)getpid(), (int)after);
    snprintf(msg, sizeof msg, "%d %d %d %d", alive, (int)father, (int)before,
             (int)after);
    return story_fifo_say(f->report, msg) == 0 ? 0 : 1;
}

/* father starts the orphan-to-be and dies without waiting for it. */
static int father(void *arg)
{
    const struct family *f = arg;
    mp_process_t *c = NULL;
    char said[16];
    int rc, fd;

    printf("im father pid %d ppid %d\n", (int)getpid(), (int)getppid());
    if ((fd = story_fifo_listen(f->ready)) < 0)
        return story_fail("named pipe: %s", strerror(-fd));
    if ((rc = mp_process_new(&c, orphan, f, sizeof *f, NULL)) != 0 ||
        (rc = mp_process_start(c)) != 0)
        return story_fail("orphan: %s", mp_strerror(rc));
    if (story_fifo_hear(fd, said, sizeof said, 10.0) < 0 || strcmp(said, "ready"))
        return story_fail("the child did not get ready");
    printf("father died..\n");
    fflush(stdout);
    raise(SIGKILL); /* 父进程意外死亡: no exit handler, no join */
    return 1;
}

/* orphanage tells the second half of the story. */
static int orphanage(void)
{
    story_fifo_t dir;
    struct family fam;
    mp_process_t *p = NULL;
    char report[96];
    int rc, fd, code = 0;

    if ((rc = story_fifo_dir(&dir)) != 0 ||
        (rc = story_fifo_make(&dir, "ready", fam.ready)) != 0 ||
        (rc = story_fifo_make(&dir, "report", fam.report)) != 0 ||
        (fd = rc = story_fifo_listen(fam.report)) < 0)
        return story_fail("named pipes: %s", strerror(-rc));

    if ((rc = mp_process_new(&p, father, &fam, sizeof fam, NULL)) != 0 ||
        (rc = mp_process_start(p)) != 0 ||
        (rc = mp_process_join(p, 10.0)) != 0 ||
        (rc = mp_process_exitcode(p, &code)) != 0)
        return story_fail("father: %s", mp_strerror(rc));
    long n = story_fifo_hear(fd, report, sizeof report, 10.0);
    story_fifo_remove(&dir, fam.ready, fam.report, NULL);
    printf("父进程意外死亡, exitcode %d\n", code);

    int alive = -2, father_pid = 0, before = 0, after = 0;
    if (n <= 0 || sscanf(report, "%d %d %d %d", &alive, &father_pid, &before,
                         &after) != 4)
        return story_fail("no word from the orphan (%s)",
                          n < 0 ? strerror((int)-n) : "empty");
    if (code != -SIGKILL)
        return story_fail("the father's exit code is %d, want %d", code, -SIGKILL);
    if (alive != 0 || father_pid != mp_process_pid(p))
        return story_fail("orphan saw father %d (want %d) alive = %d", father_pid,
                          (int)mp_process_pid(p), alive);
    if (before == father_pid && after == father_pid)
        return story_fail("the orphan still has its dead father as parent");
    if (before == father_pid)
        printf("孤儿进程被 %d 号进程收养了 (%s)\n", after,
               after == 1 ? "init" : after == getpid() ? "主进程, subreaper" : "subreaper");
    else
        printf("孤儿进程的父进程一直是 forkserver (%d)\n", after);
    mp_process_free(p);
    return 0;
}

int main(int argc, char **argv)
{
    story_begin(argc, argv);
    if (zombie() != 0)
        return 1;
    return orphanage();
}

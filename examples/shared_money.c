/* shared_money.c: processes do not share memory; sharing takes special
 * means (seed 003, "进程之间数据相互隔离" and "共享数据"; seed 004: "进程没有
 * 任何共享状态,进程修改的数据,改动仅限于该进程内,但是通过一些特殊的方法,可以
 * 实现进程之间数据的共享").
 *
 * Python (seed 003):
 *     money = 100
 *     def task():
 *         global money  # 局部修改全局
 *         money = 666
 *         print('子', money)
 *     p = Process(target=task); p.start(); p.join()
 *     print(money)            # 子 666, then 100
 * and, to share on purpose (seed 003's 共享数据, with a Manager there):
 *     def work(d, lock):
 *         # with lock: #不加锁而操作共享的数据,肯定会出现数据错乱
 *             d['count'] -= 1
 *
 * Act 1 (money): the child changes its own copy of a global; the parent
 *   still sees 100.
 * Act 2 (Value, 加锁): 4 processes add 1 to a shared Value('i') 10,000
 *   times each with mp_value_add, the one-call form of
 *   `with v.get_lock(): v.value += 1`: the count is exactly 40,000.
 * Act 3 (Value, 不加锁): the same with a get followed by a set (Python's
 *   bare `v.value += 1`): another process may write between the two, and
 *   its update is lost. The story prints how many were lost; it does not
 *   fail when, by luck, none were (the race is real all the same).
 * Act 4 (Array): a child fills an Array('i', 10) with squares; the parent
 *   reads them.
 * Act 5 (SharedMemory): the parent creates a named segment and writes a
 *   message in it; a second program (this binary run again with fork+exec
 *   in its "reader" mode: `shared_money reader NAME`) attaches by name,
 *   prints the message and writes an answer; the parent reads the answer
 *   and unlinks the segment. The segment is created with unlink_on_exit,
 *   so even a failing story leaves nothing in /dev/shm.
 *
 * The Value, the Array and the Event live in mproc's shared arena: their
 * handles travel in the targets' argument and work under fork, spawn and
 * forkserver alike; the segment is reached by its name, which works for any
 * program.
 *
 * Run: build/examples/shared_money [fork|spawn|forkserver] */
#include <mproc.h>

#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "story.h"

#define NPROC 4      /* processes that add to the counter */
#define NADD 10000   /* additions per process */
#define NARRAY 10    /* elements of the Array */
#define SHM_SIZE 64  /* bytes of the SharedMemory segment */
#define WAIT 60.0    /* how long the parent waits for a child */

static const char GREETING[] = "hello from the parent: money = 100";
static const char ANSWER[] = "howdy";

/* ---- Act 1: money ---------------------------------------------------------- */

static int money = 100;

/* task changes the global in the child (Python: def task()). Its exit code
 * says whether the child started from 100. */
static int task(void *arg)
{
    (void)arg;
    int before = money;
    money = 666; /* global money: 局部修改全局 */
    story_say("子 %d\n", money);
    return before == 100 ? 0 : 1;
}

/* ---- Acts 2 and 3: a shared counter ---------------------------------------- */

struct count_arg {
    mp_value_t *v;
    mp_event_t *go; /* set by the parent once every worker has started */
    int locked;     /* 1: mp_value_add; 0: get, then set */
};

/* work adds 1 NADD times (Python: def work(d, lock)). */
static int work(void *arg)
{
    const struct count_arg *a = arg;
    int rc = mp_event_wait(a->go, WAIT);
    if (rc != 0)
        return story_fail("work: wait for go: %s", mp_strerror(rc));
    for (int i = 0; i < NADD; i++) {
        if (a->locked) {
            rc = mp_value_add(a->v, 1, NULL); /* with v.get_lock(): v.value += 1 */
        } else {
            int64_t x = 0; /* v.value += 1: a read, then a write */
            rc = mp_value_get_i64(a->v, &x);
            if (rc == 0)
                rc = mp_value_set_i64(a->v, x + 1);
        }
        if (rc != 0)
            return story_fail("work: %s", mp_strerror(rc));
    }
    return 0;
}

/* count runs NPROC workers on a fresh Value('i', 0) and stores the final
 * count in *out. Returns 0 or 1 (the story failed). */
static int count(int locked, int64_t *out)
{
    mp_value_t *v = NULL;
    mp_event_t *go = NULL;
    mp_process_t *p[NPROC] = { NULL };
    int rc, failed = 0, n = 0;

    if ((rc = mp_value_new(&v, MP_TYPE_INT, 0, NULL, NULL)) != 0 ||
        (rc = mp_event_new(&go)) != 0) {
        failed = story_fail("Value('i', 0) / Event(): %s", mp_strerror(rc));
        goto out;
    }
    struct count_arg a = { .v = v, .go = go, .locked = locked };
    for (; n < NPROC; n++) {
        if ((rc = mp_process_new(&p[n], work, &a, sizeof a, NULL)) != 0 ||
            (rc = mp_process_start(p[n])) != 0) {
            mp_process_free(p[n]);
            failed = story_fail("start worker %d: %s", n, mp_strerror(rc));
            break;
        }
    }
    /* Let them all run at once: under spawn, a worker could otherwise be
     * done before the next one has started, and nothing would race. */
    mp_event_set(go);
    for (int i = 0; i < n; i++)
        failed |= story_join_ok(p[i], "worker");
    if (!failed && (rc = mp_value_get_i64(v, out)) != 0)
        failed = story_fail("v.value: %s", mp_strerror(rc));
out:
    mp_event_free(go);
    mp_value_free(v);
    return failed;
}

/* ---- Act 4: Array ------------------------------------------------------------ */

/* fill writes i * i into every element (Python: for i in range(len(a)):
 * a[i] = i * i). */
static int fill(void *arg)
{
    mp_array_t *a = *(mp_array_t *const *)arg;
    long n = mp_array_len(a);
    for (long i = 0; i < n; i++) {
        int x = (int)(i * i);
        int rc = mp_array_set(a, (size_t)i, &x);
        if (rc != 0)
            return story_fail("a[%ld] = %d: %s", i, x, mp_strerror(rc));
    }
    story_say("子进程写入了 %ld 个平方数\n", n);
    return 0;
}

/* ---- Act 5: SharedMemory, read by a second program ------------------------ */

/* reader is the second program (`shared_money reader NAME`): it attaches to
 * the segment by name, prints what it finds and answers in it. It never
 * unlinks: the segment belongs to its creator. Returns the exit code. */
static int reader(const char *name)
{
    mp_shm_t *s = NULL;
    int rc = mp_shm_attach(&s, name); /* SharedMemory(name) */
    if (rc != 0)
        return story_fail("reader: SharedMemory('%s'): %s", name, mp_strerror(rc));
    char *buf = mp_shm_buf(s);
    char got[SHM_SIZE];
    memcpy(got, buf, sizeof got);
    got[sizeof got - 1] = '\0';
    printf("第二个程序 (reader) 按名字打开共享内存, size = %zu, 读到: '%s'\n",
           mp_shm_size(s), got);
    if (strcmp(got, GREETING) != 0) {
        mp_shm_free(s);
        return story_fail("reader read '%s', want '%s'", got, GREETING);
    }
    memset(buf, 0, SHM_SIZE);
    memcpy(buf, ANSWER, sizeof ANSWER); /* shm.buf[:5] = b'howdy' */
    mp_shm_free(s); /* shm.close(); no unlink */
    return 0;
}

/* run_reader runs this program again as the reader of name (fork + exec)
 * and waits for it. Returns 0 if it exited with 0, else 1. */
static int run_reader(const char *argv0, const char *name)
{
    char *args[] = { (char *)argv0, "reader", (char *)name, NULL };
    pid_t pid;
    int status = 0;
    fflush(stdout);
    int err = posix_spawn(&pid, "/proc/self/exe", NULL, NULL, args, environ);
    if (err != 0)
        return story_fail("cannot run the reader: %s", strerror(err));
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return story_fail("waitpid(reader): %s", strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return story_fail("the reader ended with status 0x%x", status);
    return 0;
}

/* act_shm is Act 5. Returns 0 or 1. */
static int act_shm(const char *argv0)
{
    mp_shm_opts_t opts = { .unlink_on_exit = 1 }; /* beyond Python: no leftovers */
    mp_shm_t *s = NULL;
    int rc, failed = 0;

    if ((rc = mp_shm_new(&s, NULL, SHM_SIZE, &opts)) != 0) /* SharedMemory(create=True, size=64) */
        return story_fail("SharedMemory(create=True): %s", mp_strerror(rc));
    char *buf = mp_shm_buf(s);
    memcpy(buf, GREETING, sizeof GREETING);
    printf("主进程创建共享内存 (name = %s, size = %zu), 写入: '%s'\n", mp_shm_name(s),
           mp_shm_size(s), GREETING);

    failed = run_reader(argv0, mp_shm_name(s));
    if (!failed) {
        char got[SHM_SIZE];
        memcpy(got, buf, sizeof got);
        got[sizeof got - 1] = '\0';
        printf("主进程读到第二个程序的回答: '%s'\n", got);
        if (strcmp(got, ANSWER) != 0)
            failed = story_fail("the parent read '%s', want '%s'", got, ANSWER);
    }

    char name[MP_SHM_NAME_MAX + 1];
    snprintf(name, sizeof name, "%s", mp_shm_name(s));
    mp_shm_close(s); /* shm.close() */
    if ((rc = mp_shm_unlink(s)) != 0) /* shm.unlink() */
        failed |= story_fail("unlink: %s", mp_strerror(rc));
    mp_shm_free(s);

    /* After unlink nobody can attach any more (Python: FileNotFoundError). */
    mp_shm_t *again = NULL;
    rc = mp_shm_attach(&again, name);
    printf("unlink 之后再按名字打开: %s\n", rc == -ENOENT ? "FileNotFoundError" : mp_strerror(rc));
    if (rc == 0) {
        mp_shm_free(again);
        failed |= story_fail("'%s' could still be attached after unlink", name);
    } else if (rc != -ENOENT) {
        failed |= story_fail("attach after unlink: %s, want -ENOENT", mp_strerror(rc));
    }
    return failed;
}

/* ---- the story ------------------------------------------------------------------ */

/* act_money is Act 1. Returns 0 or 1. */
static int act_money(void)
{
    mp_process_t *p = NULL;
    int rc, code = -1;

    printf("---- 进程之间数据相互隔离 ----\n");
    if ((rc = mp_process_new(&p, task, NULL, 0, NULL)) != 0 || (rc = mp_process_start(p)) != 0 ||
        (rc = mp_process_join(p, WAIT)) != 0 || (rc = mp_process_exitcode(p, &code)) != 0) {
        mp_process_free(p);
        return story_fail("task: %s", mp_strerror(rc));
    }
    mp_process_free(p);
    printf("%d\n", money);
    if (code != 0)
        return story_fail("the child did not start from money = 100 (exit code %d)", code);
    if (money != 100)
        return story_fail("the parent sees money = %d, want 100", money);
    return 0;
}

/* act_value is Acts 2 and 3. Returns 0 or 1. */
static int act_value(void)
{
    const int64_t want = (int64_t)NPROC * NADD;
    int64_t got = 0;

    printf("---- 共享数据: Value, 加锁 ----\n");
    if (count(1, &got) != 0)
        return 1;
    printf("%d 个进程各加 %d 次 (with v.get_lock(): v.value += 1): count = %lld\n", NPROC,
           NADD, (long long)got);
    if (got != want)
        return story_fail("with the lock the count is %lld, want %lld", (long long)got,
                          (long long)want);

    printf("---- 共享数据: Value, 不加锁 ----\n");
    if (count(0, &got) != 0)
        return 1;
    printf("%d 个进程各加 %d 次 (v.value += 1, 不加锁): count = %lld\n", NPROC, NADD,
           (long long)got);
    /* Unlocked, a process can write back a value it read long ago and undo
     * the others' work: anything from 2 (the known worst case) to want. */
    if (got > want || got < 2)
        return story_fail("without the lock the count is %lld, want 2..%lld", (long long)got,
                          (long long)want);
    if (got < want)
        printf("丢了 %lld 次更新: 不加锁而操作共享的数据,肯定会出现数据错乱\n",
               (long long)(want - got));
    else
        printf("这次运气好, 一次更新也没丢; 但不加锁仍然是错的: 读和写之间别的进程可以插进来\n");
    return 0;
}

/* act_array is Act 4. Returns 0 or 1. */
static int act_array(void)
{
    mp_array_t *a = NULL;
    mp_process_t *p = NULL;
    int x[NARRAY];
    int rc, failed = 0;

    printf("---- 共享数据: Array ----\n");
    if ((rc = mp_array_new(&a, MP_TYPE_INT, 0, NARRAY, NULL, NULL)) != 0) /* Array('i', 10) */
        return story_fail("Array('i', %d): %s", NARRAY, mp_strerror(rc));
    if ((rc = mp_process_new(&p, fill, &a, sizeof a, NULL)) != 0 ||
        (rc = mp_process_start(p)) != 0) {
        mp_process_free(p);
        failed = story_fail("fill: %s", mp_strerror(rc));
    } else {
        failed = story_join_ok(p, "fill");
    }
    if (!failed && (rc = mp_array_get_slice(a, 0, NARRAY, x)) != 0) /* a[:] */
        failed = story_fail("a[:]: %s", mp_strerror(rc));
    if (!failed) {
        printf("主进程读到: [");
        for (int i = 0; i < NARRAY; i++)
            printf("%s%d", i ? ", " : "", x[i]);
        printf("]\n");
        for (int i = 0; i < NARRAY; i++)
            if (x[i] != i * i) {
                failed = story_fail("a[%d] = %d, want %d", i, x[i], i * i);
                break;
            }
    }
    mp_array_free(a);
    return failed;
}

int main(int argc, char **argv)
{
    /* The second program of Act 5: `shared_money reader NAME`. */
    if (argc == 3 && strcmp(argv[1], "reader") == 0) {
        setvbuf(stdout, NULL, _IOLBF, 0);
        return reader(argv[2]);
    }
    story_begin(argc, argv);

    if (act_money() != 0 || act_value() != 0 || act_array() != 0)
        return 1;
    printf("---- 共享内存: SharedMemory ----\n");
    return act_shm(argv[0]);
}

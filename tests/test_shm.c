/* test_shm.c: named shared memory (SharedMemory) and ShareableList.
 * mp-test: per-start-method
 *
 * Segments are named "<mp_test_shm_prefix()><pid>_<tag>" so concurrent runs
 * do not meet. The
 * harness fails a case that leaves a /dev/shm entry, so every case unlinks
 * what it made, and the crash cases prove the watcher's sweep by waiting for
 * the watcher process itself to end (it ends right after sweeping), then
 * checking the name. Python interop uses tests/py/shm_peer.py. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arena.h"
#include "mp_test.h"
#include "sys/platform.h"

/* Internal, in src/shm.c: the pid of this process's exit watcher, or 0. */
pid_t mp__shm_watcher_pid(void);

static void tname(char *out, size_t cap, const char *tag)
{
    snprintf(out, cap, "%s%d_%s", mp_test_shm_prefix(), (int)getpid(), tag);
}

/* exists tells whether /dev/shm/name is there. */
static int exists(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "/dev/shm/%s", name[0] == '/' ? name + 1 : name);
    return access(path, F_OK) == 0;
}

static void unlink_name(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "/dev/shm/%s", name);
    unlink(path);
}

/* run waits (MP_TEST_LONG) for a fork+exec of argv and returns its exit
 * status (-signal if killed); fails the case if it does not end. */
static int run(char *const argv[])
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execv(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    if (mp_test_waitpid(pid, &st, MP_TEST_LONG) != 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        mp_test_fail("%s did not exit\n", argv[0]);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}


/* have_python finds python3 and tests/py/shm_peer.py (beside this source):
 * 1, or 0 with the reason in why. */
static int have_python(char *py, size_t pcap, char *script, size_t scap,
                       char *why, size_t wcap)
{
    if (!mp_test_find_python(py, pcap)) {
        snprintf(why, wcap, "python3 is not on PATH");
        return 0;
    }
    const char *f = __FILE__;
    const char *slash = strrchr(f, '/');
    snprintf(script, scap, "%.*s/py/shm_peer.py",
             slash ? (int)(slash - f) : 1, slash ? f : ".");
    if (access(script, R_OK) != 0) {
        snprintf(why, wcap, "%s is not readable", script);
        return 0;
    }
    return 1;
}

/* python is have_python that skips the case (call it before making
 * anything: a skip leaves the body at once). */
static void python(char *py, size_t pcap, char *script, size_t scap)
{
    char why[4200];
    if (!have_python(py, pcap, script, scap, why, sizeof why))
        mp_test_skip("%s", why);
}

/* ---- SharedMemory ----------------------------------------------------- */

static void create_attach_close_unlink(void **state)
{
    (void)state;
    char name[64], slashed[80];
    tname(name, sizeof name, "basic");
    snprintf(slashed, sizeof slashed, "/%s", name);
    mp_shm_t *a = NULL, *b = NULL;
    mp_assert_int(mp_shm_new(&a, slashed, 5000, NULL), 0);
    mp_assert_str(mp_shm_name(a), name);
    mp_assert_int(mp_shm_size(a), 5000);
    unsigned char *p = mp_shm_buf(a);
    assert_non_null(p);
    for (int i = 0; i < 5000; i++)
        if (p[i])
            mp_test_fail("byte %d of a new segment is %d\n", i, p[i]);
    memcpy(p + 4990, "0123456789", 10);
    mp_assert_int(mp_shm_attach(&b, name), 0);
    mp_assert_str(mp_shm_name(b), name);
    mp_assert_int(mp_shm_size(b), 5000);
    assert_memory_equal((char *)mp_shm_buf(b) + 4990, "0123456789", 10);
    memcpy(mp_shm_buf(b), "howdy", 5);
    assert_memory_equal(p, "howdy", 5);
    mp_assert_int(mp_shm_close(a), 0);
    assert_null(mp_shm_buf(a));
    mp_assert_int(mp_shm_close(a), 0); /* twice: fine, as Python */
    mp_assert_int(mp_shm_size(a), 5000);
    assert_memory_equal(mp_shm_buf(b), "howdy", 5); /* b still maps it */
    mp_assert_int(mp_shm_unlink(a), 0);              /* after close: fine */
    assert_false(exists(name));
    mp_assert_int(mp_shm_unlink(b), -ENOENT); /* unlinking twice */
    mp_shm_free(a);
    mp_assert_int(mp_shm_attach(&a, name), -ENOENT);
    assert_null(a);
    assert_memory_equal(mp_shm_buf(b), "howdy", 5); /* mapping outlives name */
    mp_shm_free(b);
    mp_shm_free(NULL);
    mp_assert_int(mp_shm_close(NULL), -EINVAL);
    mp_assert_int(mp_shm_unlink(NULL), -EINVAL);
    assert_null(mp_shm_name(NULL));
    assert_null(mp_shm_buf(NULL));
}

static void generated_names(void **state)
{
    (void)state;
    mp_shm_t *s[8];
    for (int i = 0; i < 8; i++) {
        mp_assert_int(mp_shm_new(&s[i], NULL, 100, NULL), 0);
        const char *n = mp_shm_name(s[i]);
        mp_assert_int(strlen(n), 12);
        assert_true(strncmp(n, "psm_", 4) == 0);
        assert_true(strspn(n + 4, "0123456789abcdef") == 8);
        assert_true(exists(n));
        for (int j = 0; j < i; j++)
            assert_true(strcmp(n, mp_shm_name(s[j])) != 0);
    }
    for (int i = 0; i < 8; i++) {
        mp_assert_int(mp_shm_unlink(s[i]), 0);
        mp_shm_free(s[i]);
    }
}

static void python_errors(void **state)
{
    (void)state;
    char name[64], longn[300];
    tname(name, sizeof name, "err");
    mp_shm_t *a = NULL, *b = NULL;
    mp_assert_int(mp_shm_new(&a, name, 64, NULL), 0);
    /* FileExistsError, with or without the slash */
    mp_assert_int(mp_shm_new(&b, name, 64, NULL), -EEXIST);
    assert_null(b);
    char slashed[80];
    snprintf(slashed, sizeof slashed, "/%s", name);
    mp_assert_int(mp_shm_new(&b, slashed, 64, NULL), -EEXIST);
    mp_assert_int(mp_shm_unlink(a), 0);
    mp_shm_free(a);
    /* FileNotFoundError */
    mp_assert_int(mp_shm_attach(&b, name), -ENOENT);
    assert_null(b);
    /* ValueError: size 0 */
    mp_assert_int(mp_shm_new(&b, name, 0, NULL), -EINVAL);
    mp_assert_int(mp_shm_new(&b, NULL, 0, NULL), -EINVAL);
    assert_false(exists(name));
    /* names */
    static const char *bad[] = {"", "/", "a/b", "//a", "/a/", ".", ".."};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mp_assert_int(mp_shm_new(&b, bad[i], 64, NULL), -EINVAL);
        mp_assert_int(mp_shm_attach(&b, bad[i]), -EINVAL);
    }
    memset(longn, 'n', sizeof longn);
    snprintf(longn, 20, "%s", mp_test_shm_prefix());
    longn[strlen(longn)] = 'n';
    longn[MP_SHM_NAME_MAX] = 0; /* the longest name */
    mp_assert_int(mp_shm_new(&b, longn, 64, NULL), 0);
    mp_assert_int(mp_shm_unlink(b), 0);
    mp_shm_free(b);
    longn[MP_SHM_NAME_MAX] = 'n';
    longn[MP_SHM_NAME_MAX + 1] = 0;
    mp_assert_int(mp_shm_new(&b, longn, 64, NULL), -ENAMETOOLONG);
    mp_assert_int(mp_shm_attach(&b, longn), -ENAMETOOLONG);
    mp_assert_int(mp_shm_new(NULL, name, 64, NULL), -EINVAL);
    mp_assert_int(mp_shm_attach(NULL, name), -EINVAL);
    mp_assert_int(mp_shm_attach(&b, NULL), -EINVAL);
    /* Attaching an empty segment: Python's "cannot mmap an empty file". */
    char path[128];
    snprintf(path, sizeof path, "/dev/shm/%s", name);
    int fd = open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    close(fd);
    mp_assert_int(mp_shm_attach(&b, name), -EINVAL);
    unlink(path);
}

/* Every failing step of a creation leaves no name behind (the harness also
 * checks /dev/shm after the case). */
static void nothing_created_on_failure(void **state)
{
    (void)state;
    char name[64];
    tname(name, sizeof name, "fault");
    mp_shm_opts_t o = {.unlink_on_exit = 1};
    mp_shm_t *s = NULL;
    mp__fault_arm(MP__SYS_FTRUNCATE, 1, ENOSPC);
    mp_assert_int(mp_shm_new(&s, name, 64, NULL), -ENOSPC);
    assert_false(exists(name));
    mp__fault_arm(MP__SYS_MMAP, 1, ENOMEM);
    mp_assert_int(mp_shm_new(&s, name, 64, &o), -ENOMEM);
    assert_false(exists(name));
    mp_assert_int(mp__shm_watcher_pid(), 0);
    mp__fault_arm(MP__SYS_FORK, 1, EAGAIN);
    mp_assert_int(mp_shm_new(&s, name, 64, &o), -EAGAIN);
    assert_false(exists(name));
    mp__fault_arm(MP__SYS_SOCKETPAIR, 1, EMFILE);
    mp_assert_int(mp_shm_new(&s, NULL, 64, &o), -EMFILE);
    mp__fault_arm(MP__SYS_MALLOC, 1, ENOMEM);
    mp_assert_int(mp_shm_new(&s, name, 64, NULL), -ENOMEM);
    mp__fault_clear();
    assert_false(exists(name));
    assert_null(s);
    /* EEXIST while registered: the watcher must not take the other name. */
    mp_shm_t *a = NULL;
    mp_assert_int(mp_shm_new(&a, name, 64, NULL), 0);
    mp_assert_int(mp_shm_new(&s, name, 64, &o), -EEXIST);
    mp_assert_int(mp__shm_watcher_pid(), 0);
    assert_true(exists(name));
    mp__fault_arm(MP__SYS_MMAP, 1, ENOMEM);
    mp_assert_int(mp_shm_attach(&s, name), -ENOMEM);
    mp__fault_clear();
    mp_assert_int(mp_shm_unlink(a), 0);
    mp_shm_free(a);
}

typedef struct {
    char name[64];
    struct board *b;
} sarg_t;

struct board {
    uint32_t ready;
    uint32_t never;
    pid_t watcher;
    int rc;
};

static int t_howdy(void *arg)
{
    const sarg_t *a = arg;
    mp_shm_t *s;
    int rc = mp_shm_attach(&s, a->name);
    if (rc < 0)
        return 10;
    memcpy(mp_shm_buf(s), "howdy", 5);
    mp_shm_free(s);
    return 0;
}

/* A child (every start method) attaches by name and writes "howdy". */
static void child_writes_howdy(void **state)
{
    (void)state;
    sarg_t a = {0};
    tname(a.name, sizeof a.name, "howdy");
    mp_shm_t *s;
    mp_shm_opts_t o = {.unlink_on_exit = 1};
    mp_assert_int(mp_shm_new(&s, a.name, 4096, &o), 0);
    mp_party_t y;
    mp_party_start(&y, 1, t_howdy, &a, sizeof a);
    mp_assert_int(mp_party_join(&y), 0);
    assert_memory_equal(mp_shm_buf(s), "howdy", 5);
    assert_true(exists(a.name)); /* the attaching child removed nothing */
    mp_assert_int(mp_shm_unlink(s), 0);
    mp_shm_free(s);
    mp_assert_int(mp__shm_watcher_pid(), 0);
}

static int helper_howdy(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    mp_shm_t *s;
    int rc = mp_shm_attach(&s, argv[1]);
    if (rc < 0) {
        fprintf(stderr, "helper: attach %s: %s\n", argv[1], mp_strerror(rc));
        return 3;
    }
    memcpy(mp_shm_buf(s), "howdy", 5);
    mp_shm_free(s);
    return 0;
}

/* Unrelated processes (the test binary re-executed, and python3) attach by
 * name; being attach-only, they never remove the segment when they exit,
 * although the creator asked for unlink_on_exit. */
static void unrelated_processes_attach(void **state)
{
    (void)state;
    char name[64];
    tname(name, sizeof name, "unrel");
    mp_shm_t *s;
    mp_shm_opts_t o = {.unlink_on_exit = 1};
    mp_assert_int(mp_shm_new(&s, name, 100, &o), 0);
    char *argv[] = {(char *)mp_test_self_exe(), "--helper", "shm-howdy", name,
                    NULL};
    mp_assert_int(run(argv), 0);
    assert_memory_equal(mp_shm_buf(s), "howdy", 5);
    assert_true(exists(name));
    memset(mp_shm_buf(s), 0, 5);
    char py[4096], script[4096], why[4200];
    if (!have_python(py, sizeof py, script, sizeof script, why, sizeof why)) {
        mp_assert_int(mp_shm_unlink(s), 0);
        mp_shm_free(s);
        mp_test_skip("python part: %s", why);
    }
    char *pargv[] = {py, script, "attach-shm", name, NULL};
    mp_assert_int(run(pargv), 0);
    assert_memory_equal(mp_shm_buf(s), "howdy", 5);
    assert_true(exists(name));
    mp_assert_int(mp_shm_unlink(s), 0);
    mp_shm_free(s);
}

static int t_attach_and_wait(void *arg)
{
    const sarg_t *a = arg;
    mp_shm_t *s;
    if (mp_shm_attach(&s, a->name) < 0)
        return 10;
    mp_test_word_inc(&a->b->ready);
    mp_test_word_wait(&a->b->never, 1, 3600);
    return 0;
}

/* Attach-only children, one exiting and one SIGKILLed, never remove it. */
static void attach_only_never_removes(void **state)
{
    (void)state;
    sarg_t a = {0};
    tname(a.name, sizeof a.name, "attonly");
    a.b = mp__arena_alloc(sizeof *a.b);
    assert_non_null(a.b);
    mp_shm_t *s;
    mp_shm_opts_t o = {.unlink_on_exit = 1};
    mp_assert_int(mp_shm_new(&s, a.name, 100, &o), 0);
    mp_party_t y;
    mp_party_start(&y, 1, t_howdy, &a, sizeof a);
    mp_assert_int(mp_party_join(&y), 0);
    assert_true(exists(a.name));
    mp_party_start(&y, 1, t_attach_and_wait, &a, sizeof a);
    mp_test_wait_word(&a.b->ready, 1, "the child attached");
    mp_party_kill(&y);
    assert_true(exists(a.name));
    mp_assert_int(mp_shm_unlink(s), 0);
    mp_shm_free(s);
    mp__arena_free(a.b);
}

static int t_create_and_wait(void *arg)
{
    const sarg_t *a = arg;
    mp_shm_t *s;
    mp_shm_opts_t o = {.unlink_on_exit = a->b->rc};
    int rc = mp_shm_new(&s, a->name, 8192, &o);
    if (rc < 0)
        return 10;
    memcpy(mp_shm_buf(s), "alive", 5);
    a->b->watcher = mp__shm_watcher_pid();
    mp_test_word_inc(&a->b->ready);
    mp_test_word_wait(&a->b->never, 1, 3600);
    return 0;
}

static int t_create_and_return(void *arg)
{
    const sarg_t *a = arg;
    mp_shm_t *s;
    mp_shm_opts_t o = {.unlink_on_exit = 1};
    if (mp_shm_new(&s, a->name, 100, &o) < 0)
        return 10;
    a->b->watcher = mp__shm_watcher_pid();
    return 0; /* exits without unlinking (nor freeing) */
}

/* killed_creator runs a creator that is SIGKILLed once its segment exists;
 * returns the watcher's pid (0 without cleanup). */
static pid_t killed_creator(sarg_t *a, int cleanup)
{
    a->b = mp__arena_alloc(sizeof *a->b);
    assert_non_null(a->b);
    a->b->rc = cleanup;
    mp_party_t y;
    mp_party_start(&y, 1, t_create_and_wait, a, sizeof *a);
    mp_test_wait_word(&a->b->ready, 1, "the creator made its segment");
    assert_true(exists(a->name));
    pid_t w = a->b->watcher;
    mp_party_kill(&y);
    mp__arena_free(a->b);
    return w;
}

/* A creator that asked for cleanup and is SIGKILLed leaves nothing: its
 * watcher sweeps and ends; we wait for that end (the bound), then check. */
static void killed_creator_cleanup(void **state)
{
    (void)state;
    sarg_t a = {0};
    tname(a.name, sizeof a.name, "kill1");
    pid_t w = killed_creator(&a, 1);
    assert_true(w > 0);
    if (mp_test_wait_gone(w, MP_TEST_LONG) != 0)
        mp_test_fail("the watcher %d did not end after its creator died\n", (int)w);
    if (exists(a.name)) {
        unlink_name(a.name);
        mp_test_fail("the segment of a killed creator is still there\n");
    }
}

/* Without cleanup the segment stays (Python's behaviour without a tracker);
 * anyone can still attach and unlink it. */
static void killed_creator_no_cleanup(void **state)
{
    (void)state;
    sarg_t a = {0};
    tname(a.name, sizeof a.name, "kill0");
    pid_t w = killed_creator(&a, 0);
    mp_assert_int(w, 0);
    mp_shm_t *s;
    mp_assert_int(mp_shm_attach(&s, a.name), 0);
    assert_memory_equal(mp_shm_buf(s), "alive", 5);
    mp_assert_int(mp_shm_size(s), 8192);
    mp_assert_int(mp_shm_unlink(s), 0);
    mp_shm_free(s);
}

/* A creator that exits normally without unlinking: swept as well. */
static void creator_exit_cleanup(void **state)
{
    (void)state;
    sarg_t a = {0};
    tname(a.name, sizeof a.name, "exit1");
    a.b = mp__arena_alloc(sizeof *a.b);
    assert_non_null(a.b);
    mp_party_t y;
    mp_party_start(&y, 1, t_create_and_return, &a, sizeof a);
    mp_assert_int(mp_party_join(&y), 0);
    pid_t w = a.b->watcher;
    mp__arena_free(a.b);
    assert_true(w > 0);
    if (mp_test_wait_gone(w, MP_TEST_LONG) != 0)
        mp_test_fail("the watcher %d did not end\n", (int)w);
    if (exists(a.name)) {
        unlink_name(a.name);
        mp_test_fail("the segment is still there\n");
    }
}

/* The watcher runs while registered segments exist, ends when they are all
 * unlinked; a segment re-created under the same name by someone else is not
 * swept. */
static void watcher_lifecycle(void **state)
{
    (void)state;
    char n1[64], n2[64];
    tname(n1, sizeof n1, "w1");
    tname(n2, sizeof n2, "w2");
    mp_shm_opts_t o = {.unlink_on_exit = 1};
    mp_shm_t *a, *b, *c;
    mp_assert_int(mp__shm_watcher_pid(), 0);
    mp_assert_int(mp_shm_new(&a, n1, 10, &o), 0);
    pid_t w = mp__shm_watcher_pid();
    assert_true(w > 0);
    mp_assert_int(mp_shm_new(&b, n2, 10, &o), 0);
    mp_assert_int(mp__shm_watcher_pid(), w);
    mp_shm_free(a); /* freeing keeps the segment and its registration */
    mp_assert_int(mp__shm_watcher_pid(), w);
    /* Unlinked through another handle of the creator: deregistered too. */
    mp_assert_int(mp_shm_attach(&c, n1), 0);
    mp_assert_int(mp_shm_unlink(c), 0);
    mp_shm_free(c);
    mp_assert_int(mp__shm_watcher_pid(), w);
    mp_assert_int(mp_shm_unlink(b), 0);
    mp_shm_free(b);
    mp_assert_int(mp__shm_watcher_pid(), 0);
    mp_assert_int(mp_test_wait_gone(w, 0), 0); /* reaped at once */
}

/* The watcher holds nothing of its creator's: only its socket and stdio
 * (/dev/null), no shared mapping; so a pipe the creator closes reads EOF. */
static void watcher_holds_nothing(void **state)
{
    (void)state;
    int p[2];
    assert_true(pipe2(p, O_CLOEXEC) == 0);
    char name[64];
    tname(name, sizeof name, "wfd");
    mp_shm_opts_t o = {.unlink_on_exit = 1};
    mp_shm_t *s;
    mp_assert_int(mp_shm_new(&s, name, 10, &o), 0);
    pid_t w = mp__shm_watcher_pid();
    assert_true(w > 0);
    close(p[1]);
    mp_assert_int(mp_test_fd_readable(p[0], 0), 1);
    char c;
    mp_assert_int(read(p[0], &c, 1), 0); /* EOF: the watcher has no copy */
    close(p[0]);
    char path[64], line[512];
    int nfd = 0;
    for (int fd = 0; fd < 64; fd++) {
        snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)w, fd);
        nfd += access(path, F_OK) == 0;
    }
    mp_assert_int(nfd, 4); /* 0, 1, 2 and its socket */
    snprintf(path, sizeof path, "/proc/%d/maps", (int)w);
    FILE *f = fopen(path, "re");
    assert_non_null(f);
    int shared = 0;
    while (fgets(line, sizeof line, f)) {
        char perms[8] = {0};
        if (sscanf(line, "%*s %7s", perms) == 1 && perms[3] == 's')
            shared++;
    }
    fclose(f);
    mp_assert_int(shared, 0);
    mp_assert_int(mp_shm_unlink(s), 0);
    mp_shm_free(s);
}

static int t_wait_never(void *arg)
{
    struct board *b = *(struct board **)arg;
    mp_test_word_inc(&b->ready);
    mp_test_word_wait(&b->never, 1, 3600);
    return 0;
}

/* The creator's own children hold no copy of its watcher's socket: the
 * creator killed while its child lives is swept all the same. */
static int t_create_fork_wait(void *arg)
{
    const sarg_t *a = arg;
    mp_shm_t *s;
    mp_shm_opts_t o = {.unlink_on_exit = 1};
    if (mp_shm_new(&s, a->name, 100, &o) < 0)
        return 10;
    a->b->watcher = mp__shm_watcher_pid();
    mp_process_t *p;
    if (mp_process_new(&p, t_wait_never, &a->b, sizeof a->b, NULL) < 0 ||
        mp_process_start(p) < 0)
        return 11;
    a->b->rc = (int)mp_process_pid(p);
    mp_test_word_inc(&a->b->ready); /* 2 with the child's */
    mp_test_word_wait(&a->b->never, 1, 3600);
    return 0;
}

static void sweep_while_creators_child_lives(void **state)
{
    (void)state;
    sarg_t a = {0};
    tname(a.name, sizeof a.name, "gchild");
    a.b = mp__arena_alloc(sizeof *a.b);
    assert_non_null(a.b);
    mp_party_t y;
    mp_party_start(&y, 1, t_create_fork_wait, &a, sizeof a);
    mp_test_wait_word(&a.b->ready, 2, "the creator's child runs");
    pid_t w = a.b->watcher, g = (pid_t)a.b->rc;
    assert_true(w > 0 && g > 0);
    mp_party_kill(&y);
    int gone = mp_test_wait_gone(w, MP_TEST_LONG);
    int there = exists(a.name);
    kill(g, SIGKILL);
    mp_assert_int(mp_test_wait_gone(g, MP_TEST_LONG), 0);
    mp__arena_free(a.b);
    if (there)
        unlink_name(a.name);
    mp_assert_int(gone, 0);
    mp_assert_int(there, 0);
}

/* The sweep removes a name only while it still names the creator's inode:
 * a segment that someone else re-created under that name survives. */
static void sweep_spares_recreated_name(void **state)
{
    (void)state;
    sarg_t a = {0};
    tname(a.name, sizeof a.name, "recr");
    a.b = mp__arena_alloc(sizeof *a.b);
    assert_non_null(a.b);
    a.b->rc = 1;
    mp_party_t y;
    mp_party_start(&y, 1, t_create_and_wait, &a, sizeof a);
    mp_test_wait_word(&a.b->ready, 1, "the creator made its segment");
    pid_t w = a.b->watcher;
    assert_true(w > 0);
    mp_shm_t *s, *t;
    mp_assert_int(mp_shm_attach(&s, a.name), 0);
    mp_assert_int(mp_shm_unlink(s), 0);
    mp_shm_free(s);
    mp_assert_int(mp_shm_new(&t, a.name, 10, NULL), 0);
    mp_party_kill(&y);
    mp__arena_free(a.b);
    if (mp_test_wait_gone(w, MP_TEST_LONG) != 0)
        mp_test_fail("the watcher %d did not end\n", (int)w);
    assert_true(exists(a.name));
    mp_assert_int(mp_shm_unlink(t), 0);
    mp_shm_free(t);
}

/* ---- ShareableList ----------------------------------------------------- */

#define NITEMS 8
static mp_val_t *c_items(mp_val_t v[NITEMS])
{
    v[0] = mp_val_int(7);
    v[1] = mp_val_float(2.5);
    v[2] = mp_val_bool(true);
    v[3] = mp_val_nil();
    v[4] = mp_val_str("howdy \xe2\x9c\x93");
    v[5] = mp_val_bytes("by\0tes", 6);
    v[6] = mp_val_int(-9000000000LL);
    v[7] = mp_val_str("");
    return v;
}
static const char k_c_format[] = "qdxxxxxxx?xxxxxx?x16s8sq8s";

static void expect_item(mp_shareable_list_t *l, long i, const mp_val_t *want)
{
    mp_val_t *got = NULL;
    int rc = mp_shareable_list_get(l, i, &got);
    if (rc != 0)
        mp_test_fail("get(%ld): %d (%s)\n", i, rc, mp_strerror(rc));
    int eq = mp_val_equal(got, want);
    int t = got->type;
    mp_val_free(got);
    if (!eq)
        mp_test_fail("item %ld (type %d) is not the expected (type %d)\n", i, t,
                     (int)want->type);
}

static void list_round_trip(void **state)
{
    (void)state;
    char name[64];
    tname(name, sizeof name, "l1");
    mp_val_t v[NITEMS];
    mp_shareable_list_t *l = NULL, *m = NULL;
    mp_assert_int(mp_shareable_list_new(&l, c_items(v), NITEMS, name, NULL), 0);
    mp_assert_int(mp_shareable_list_len(l), NITEMS);
    mp_assert_str(mp_shm_name(mp_shareable_list_shm(l)), name);
    /* CPython's size: 8 + 8 (N + 1) + data + 9 N */
    mp_assert_int(mp_shm_size(mp_shareable_list_shm(l)),
                  8 + 8 * (NITEMS + 1) + (8 * 4 + 16 + 8 + 8 + 8) + 9 * NITEMS);
    char fmt[128];
    mp_assert_int(mp_shareable_list_format(l, fmt, sizeof fmt),
                  strlen(k_c_format));
    mp_assert_str(fmt, k_c_format);
    mp_assert_int(mp_shareable_list_attach(&m, name), 0);
    for (int i = 0; i < NITEMS; i++) {
        expect_item(l, i, &v[i]);
        expect_item(m, i - NITEMS, &v[i]); /* negative: from the end */
        mp_assert_int(mp_shareable_list_type(m, i), v[i].type);
    }
    mp_val_t *got;
    mp_assert_int(mp_shareable_list_get(l, NITEMS, &got), -ERANGE);
    mp_assert_int(mp_shareable_list_get(l, -NITEMS - 1, &got), -ERANGE);
    mp_assert_int(mp_shareable_list_set(l, NITEMS, &v[0]), -ERANGE);
    mp_assert_int(mp_shareable_list_type(l, -100), -ERANGE);
    mp_assert_int(mp_shareable_list_get(l, 4, &got), 0);
    mp_assert_int(got->v.s.ptr[got->v.s.len], 0); /* NUL-terminated copy */
    mp_val_free(got);
    /* A value set through one handle is seen through the other. */
    mp_val_t x = mp_val_float(-0.125);
    mp_assert_int(mp_shareable_list_set(m, 0, &x), 0);
    expect_item(l, 0, &x);
    /* Empty list, generated name. */
    mp_shareable_list_t *e;
    mp_assert_int(mp_shareable_list_new(&e, NULL, 0, NULL, NULL), 0);
    mp_assert_int(mp_shareable_list_len(e), 0);
    mp_assert_int(mp_shm_size(mp_shareable_list_shm(e)), 16);
    mp_assert_int(mp_shareable_list_format(e, fmt, sizeof fmt), 0);
    mp_assert_int(mp_shm_unlink(mp_shareable_list_shm(e)), 0);
    mp_shareable_list_free(e);
    mp_assert_int(mp_shm_unlink(mp_shareable_list_shm(l)), 0);
    mp_shareable_list_free(l);
    mp_shareable_list_free(m);
    mp_shareable_list_free(NULL);
}

/* The largest items: a string of 9,999,990 bytes gets 9,999,992 bytes of
 * room; a new item that long is over the limit (-EMSGSIZE), but setting a
 * string that fills the room is allowed, as in Python, and reads back as a
 * string of that length. */
static void list_item_at_the_limit(void **state)
{
    (void)state;
    size_t n0 = 9999990, n1 = 9999992;
    char *big = malloc(n1);
    assert_non_null(big);
    memset(big, 'a', n1);
    mp_val_t items[] = {mp_val_strn(big, n0)};
    mp_shareable_list_t *l;
    mp_assert_int(mp_shareable_list_new(&l, items, 1, NULL, NULL), 0);
    mp_assert_int(mp_shareable_list_capacity(l, 0), (long)n1);
    mp_val_t full = mp_val_strn(big, n1), fullb = mp_val_bytes(big, n1);
    mp_shareable_list_t *l2 = NULL;
    mp_assert_int(mp_shareable_list_new(&l2, &full, 1, NULL, NULL), -EMSGSIZE);
    mp_assert_int(mp_shareable_list_set(l, 0, &full), 0);
    expect_item(l, 0, &full);
    mp_assert_int(mp_shareable_list_set(l, 0, &fullb), 0);
    expect_item(l, 0, &fullb);
    mp_assert_int(mp_shm_unlink(mp_shareable_list_shm(l)), 0);
    mp_shareable_list_free(l);
    free(big);
}

static void list_type_change_and_limit(void **state)
{
    (void)state;
    mp_val_t items[] = {mp_val_int(1), mp_val_str("0123456789"), mp_val_nil()};
    mp_shareable_list_t *l;
    mp_assert_int(mp_shareable_list_new(&l, items, 3, NULL, NULL), 0);
    mp_assert_int(mp_shareable_list_capacity(l, 0), 8);
    mp_assert_int(mp_shareable_list_capacity(l, 1), 16);
    mp_assert_int(mp_shareable_list_capacity(l, -1), 8);
    /* int -> string of exactly its 8 bytes, -> bytes, -> bool, -> nil */
    mp_val_t s8 = mp_val_str("abcdefgh"), s9 = mp_val_str("abcdefghi");
    mp_assert_int(mp_shareable_list_set(l, 0, &s8), 0);
    expect_item(l, 0, &s8);
    mp_assert_int(mp_shareable_list_type(l, 0), MP_VAL_STR);
    mp_assert_int(mp_shareable_list_set(l, 0, &s9), -EMSGSIZE);
    expect_item(l, 0, &s8); /* unchanged */
    mp_val_t by = mp_val_bytes("\x01\x02", 2), t = mp_val_bool(false);
    mp_val_t nil = mp_val_nil(), f = mp_val_float(1e300);
    mp_assert_int(mp_shareable_list_set(l, 0, &by), 0);
    expect_item(l, 0, &by);
    mp_assert_int(mp_shareable_list_set(l, 0, &t), 0);
    expect_item(l, 0, &t);
    mp_assert_int(mp_shareable_list_set(l, 0, &nil), 0);
    expect_item(l, 0, &nil);
    /* string slot -> float -> longer string up to its 16 bytes */
    mp_assert_int(mp_shareable_list_set(l, 1, &f), 0);
    expect_item(l, 1, &f);
    mp_val_t s16 = mp_val_str("0123456789abcdef"), s17 = mp_val_str("0123456789abcdefg");
    mp_assert_int(mp_shareable_list_set(l, 1, &s16), 0);
    expect_item(l, 1, &s16);
    mp_assert_int(mp_shareable_list_set(l, -2, &s17), -EMSGSIZE);
    char fmt[64];
    mp_shareable_list_format(l, fmt, sizeof fmt);
    mp_assert_str(fmt, "xxxxxx?x16sxxxxxx?x");
    /* Trailing NULs are dropped, as in Python. */
    mp_val_t tn = mp_val_bytes("ab\0\0", 4), ab = mp_val_bytes("ab", 2);
    mp_assert_int(mp_shareable_list_set(l, 2, &tn), 0);
    expect_item(l, 2, &ab);
    /* Bad values. */
    mp_val_t bad_utf8 = mp_val_strn("\xc3\x28", 2), arr = mp_val_array(NULL, 0);
    mp_val_t big = mp_val_uint(UINT64_MAX);
    mp_assert_int(mp_shareable_list_set(l, 2, &bad_utf8), -EILSEQ);
    mp_assert_int(mp_shareable_list_set(l, 2, &arr), -EINVAL);
    mp_assert_int(mp_shareable_list_set(l, 2, &big), -EOVERFLOW);
    mp_assert_int(mp_shareable_list_set(l, 2, NULL), -EINVAL);
    expect_item(l, 2, &ab);
    mp_shareable_list_t *x = NULL;
    mp_assert_int(mp_shareable_list_new(&x, &bad_utf8, 1, NULL, NULL), -EILSEQ);
    mp_assert_int(mp_shareable_list_new(&x, &arr, 1, NULL, NULL), -EINVAL);
    mp_assert_int(mp_shareable_list_new(&x, &big, 1, NULL, NULL), -EOVERFLOW);
    mp_assert_int(mp_shareable_list_new(&x, NULL, 1, NULL, NULL), -EINVAL);
    mp_assert_int(mp_shareable_list_new(NULL, NULL, 0, NULL, NULL), -EINVAL);
    assert_null(x);
    mp_assert_int(mp_shm_unlink(mp_shareable_list_shm(l)), 0);
    mp_shareable_list_free(l);
}

static void list_count_index(void **state)
{
    (void)state;
    mp_val_t items[] = {mp_val_int(1), mp_val_float(1.0), mp_val_bool(true),
                        mp_val_str("1"), mp_val_bytes("1", 1), mp_val_nil(),
                        mp_val_int(2), mp_val_nil()};
    mp_shareable_list_t *l;
    mp_assert_int(mp_shareable_list_new(&l, items, 8, NULL, NULL), 0);
    mp_val_t one = mp_val_int(1), two = mp_val_float(2.0), nil = mp_val_nil();
    mp_val_t s1 = mp_val_str("1"), b1 = mp_val_bytes("1", 1), zz = mp_val_str("zz");
    mp_val_t f = mp_val_bool(false);
    mp_assert_int(mp_shareable_list_count(l, &one), 3); /* 1 == 1.0 == True */
    mp_assert_int(mp_shareable_list_count(l, &two), 1);
    mp_assert_int(mp_shareable_list_count(l, &nil), 2);
    mp_assert_int(mp_shareable_list_count(l, &s1), 1);
    mp_assert_int(mp_shareable_list_count(l, &b1), 1);
    mp_assert_int(mp_shareable_list_count(l, &f), 0);
    mp_assert_int(mp_shareable_list_index(l, &nil), 5);
    mp_assert_int(mp_shareable_list_index(l, &two), 6);
    mp_assert_int(mp_shareable_list_index(l, &b1), 4);
    mp_assert_int(mp_shareable_list_index(l, &zz), -ENOENT);
    mp_assert_int(mp_shareable_list_count(NULL, &zz), -EINVAL);
    mp_assert_int(mp_shm_unlink(mp_shareable_list_shm(l)), 0);
    mp_shareable_list_free(l);
}

static void list_attach_errors(void **state)
{
    (void)state;
    char name[64];
    tname(name, sizeof name, "lbad");
    mp_shareable_list_t *l = NULL;
    mp_assert_int(mp_shareable_list_attach(&l, name), -ENOENT);
    mp_shm_t *s;
    mp_assert_int(mp_shm_new(&s, name, 64, NULL), 0);
    int64_t n = 1000; /* more items than 64 bytes can hold */
    memcpy(mp_shm_buf(s), &n, 8);
    mp_assert_int(mp_shareable_list_attach(&l, name), -EBADMSG);
    n = 1; /* 1 item: offsets 0 and a data size beyond the segment */
    int64_t offs[2] = {0, 4096};
    memcpy(mp_shm_buf(s), &n, 8);
    memcpy((char *)mp_shm_buf(s) + 8, offs, 16);
    mp_assert_int(mp_shareable_list_attach(&l, name), -EBADMSG);
    offs[1] = 8; /* well formed, but a format no ShareableList writes */
    memcpy((char *)mp_shm_buf(s) + 8, offs, 16);
    memcpy((char *)mp_shm_buf(s) + 32, "zz", 3);
    mp_assert_int(mp_shareable_list_attach(&l, name), 0);
    mp_val_t *v;
    mp_assert_int(mp_shareable_list_get(l, 0, &v), -EBADMSG);
    mp_assert_int(mp_shareable_list_type(l, 0), -EBADMSG);
    mp_shareable_list_free(l);
    mp_assert_int(mp_shm_unlink(s), 0);
    mp_shm_free(s);
}

static int t_list_child(void *arg)
{
    const sarg_t *a = arg;
    mp_shareable_list_t *l;
    if (mp_shareable_list_attach(&l, a->name) < 0)
        return 10;
    mp_val_t *v;
    if (mp_shareable_list_get(l, 0, &v) < 0 || v->type != MP_VAL_INT ||
        v->v.i != 7)
        return 11;
    mp_val_free(v);
    mp_val_t s = mp_val_str("child"), b = mp_val_bool(false), i = mp_val_int(99);
    if (mp_shareable_list_set(l, 0, &s) < 0 || mp_shareable_list_set(l, 2, &b) < 0 ||
        mp_shareable_list_set(l, -1, &i) < 0)
        return 12;
    mp_shareable_list_free(l);
    return 0;
}

/* A child (every start method) attaches by name and changes items. */
static void list_child_attach(void **state)
{
    (void)state;
    sarg_t a = {0};
    tname(a.name, sizeof a.name, "lchild");
    mp_val_t v[NITEMS];
    mp_shareable_list_t *l;
    mp_shm_opts_t o = {.unlink_on_exit = 1};
    mp_assert_int(mp_shareable_list_new(&l, c_items(v), NITEMS, a.name, &o), 0);
    mp_party_t y;
    mp_party_start(&y, 1, t_list_child, &a, sizeof a);
    mp_assert_int(mp_party_join(&y), 0);
    mp_val_t s = mp_val_str("child"), b = mp_val_bool(false), i = mp_val_int(99);
    expect_item(l, 0, &s);
    expect_item(l, 2, &b);
    expect_item(l, 7, &i);
    expect_item(l, 1, &v[1]);
    mp_assert_int(mp_shm_unlink(mp_shareable_list_shm(l)), 0);
    mp_shareable_list_free(l);
}

/* Python attaches to a list C made, checks it and changes it in place. */
static void list_python_reads_c(void **state)
{
    (void)state;
    char py[4096], script[4096], name[64];
    python(py, sizeof py, script, sizeof script);
    tname(name, sizeof name, "lpy1");
    mp_val_t v[NITEMS];
    mp_shareable_list_t *l;
    mp_assert_int(mp_shareable_list_new(&l, c_items(v), NITEMS, name, NULL), 0);
    char *argv[] = {py, script, "attach-list", name, (char *)k_c_format, NULL};
    int rc = run(argv);
    if (rc != 0) {
        mp_shm_unlink(mp_shareable_list_shm(l));
        mp_shareable_list_free(l);
        mp_test_fail("shm_peer.py attach-list exited with %d\n", rc);
    }
    mp_val_t changed = mp_val_str("changed"), f = mp_val_float(3.25);
    mp_val_t nil = mp_val_nil(), b7 = mp_val_bytes("1234567", 7);
    mp_val_t t = mp_val_bool(true);
    expect_item(l, 0, &changed);
    expect_item(l, 2, &f);
    expect_item(l, 4, &nil);
    expect_item(l, 7, &b7);
    expect_item(l, 6, &t);
    expect_item(l, 5, &v[5]);
    mp_assert_int(mp_shm_unlink(mp_shareable_list_shm(l)), 0);
    mp_shareable_list_free(l);
}

/* C attaches to a list Python made. */
static void list_c_reads_python(void **state)
{
    (void)state;
    char py[4096], script[4096], name[64];
    python(py, sizeof py, script, sizeof script);
    tname(name, sizeof name, "lpy2");
    char *argv[] = {py, script, "create-list", name, NULL};
    int rc = run(argv);
    if (rc != 0) {
        unlink_name(name);
        mp_test_fail("shm_peer.py create-list exited with %d\n", rc);
    }
    mp_shareable_list_t *l;
    rc = mp_shareable_list_attach(&l, name);
    if (rc != 0) {
        unlink_name(name);
        mp_test_fail("attach: %d (%s)\n", rc, mp_strerror(rc));
    }
    mp_val_t want[] = {mp_val_int(42), mp_val_float(-1.5), mp_val_bool(false),
                       mp_val_nil(), mp_val_str("h\xc3\xa9llo w\xc3\xb6rld"),
                       mp_val_bytes("\0bin\xff", 5),
                       mp_val_str("xxxxxxxxxxxxxxxxxxxx")};
    mp_assert_int(mp_shareable_list_len(l), 7);
    for (int i = 0; i < 7; i++)
        expect_item(l, i, &want[i]);
    char fmt[128];
    mp_shareable_list_format(l, fmt, sizeof fmt);
    mp_assert_str(fmt, "qdxxxxxxx?xxxxxx?x16s8s24s");
    mp_val_t x = mp_val_str("from C");
    mp_assert_int(mp_shareable_list_set(l, 5, &x), 0);
    expect_item(l, 5, &x);
    mp_assert_int(mp_shm_unlink(mp_shareable_list_shm(l)), 0);
    mp_shareable_list_free(l);
}

/* warm makes the arena (the crash cases' boards live there) and what the
 * start method keeps. */
static int warm(void)
{
    void *x = mp__arena_alloc(16);
    if (!x)
        return -ENOMEM;
    mp__arena_free(x);
    return mp_test_warm_child();
}

int main(int argc, char **argv)
{
    static const mp_test_case_t cases[] = {
        MP_TEST(create_attach_close_unlink),
        MP_TEST(generated_names),
        MP_TEST(python_errors),
        MP_TEST(nothing_created_on_failure),
        MP_TEST(child_writes_howdy),
        MP_TEST(unrelated_processes_attach),
        MP_TEST(attach_only_never_removes),
        MP_TEST(killed_creator_cleanup),
        MP_TEST(killed_creator_no_cleanup),
        MP_TEST(creator_exit_cleanup),
        MP_TEST(watcher_lifecycle),
        MP_TEST(watcher_holds_nothing),
        MP_TEST(sweep_spares_recreated_name),
        MP_TEST(sweep_while_creators_child_lives),
        MP_TEST(list_round_trip),
        MP_TEST(list_type_change_and_limit),
        MP_TEST(list_item_at_the_limit),
        MP_TEST(list_count_index),
        MP_TEST(list_attach_errors),
        MP_TEST(list_child_attach),
        MP_TEST(list_python_reads_c),
        MP_TEST(list_c_reads_python),
    };
    static const mp_test_helper_t helpers[] = {
        {"shm-howdy", helper_howdy},
    };
    static const mp_test_config_t cfg = {
        .per_method = 1,
        .warmup = warm,
        .helpers = helpers,
        .nhelpers = sizeof helpers / sizeof helpers[0],
    };
    return mp_test_main(argc, argv, cases, sizeof cases / sizeof cases[0], &cfg);
}

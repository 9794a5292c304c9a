/* sync_tickets.c: the ticket booth, or why processes need a Lock (seed 000,
 * "互斥锁"; seed 003, "模拟12306抢票").
 *
 * Python (seed 000):
 *     def search(i):
 *         with open('data','r',encoding='utf8') as f: dic = json.load(f)
 *         print('用户%s查询余票:%s' % (i, dic.get('ticket_num')))
 *     def buy(i):
 *         with open('data','r',encoding='utf8') as f: dic = json.load(f)
 *         time.sleep(random.randint(1,3))            # 模拟网络延迟
 *         if dic.get('ticket_num') > 0:
 *             dic['ticket_num'] -= 1
 *             with open('data','w',encoding='utf8') as f: json.dump(dic,f)
 *             print('用户%s买票成功' % i)
 *         else:
 *             print('用户%s买票失败' % i)
 *     def run(i, mutex):
 *         search(i)
 *         mutex.acquire(); buy(i); mutex.release()   # 给买票环节加锁处理
 *     mutex = Lock()
 *     for i in range(1,11):
 *         Process(target=run, args=(i, mutex)).start()
 * with a file 'data' holding {"ticket_num": 1}.
 *
 * The story has three acts:
 *
 * 1. Without the lock (多个进程操作同一份数据的时候,会出现数据错乱的问题):
 *    ten buyers each read "one ticket left", and each sells it. The seed
 *    makes that likely with its random network delay; here it is certain:
 *    the delay is a Barrier that lets nobody go on until all ten have read
 *    the file. Ten tickets are sold; there was one.
 * 2. With the lock (将并发变成串行,牺牲效率但是保证了数据的安全): the
 *    queries still run at the same time, but the buyers buy one after
 *    another, and exactly one of them gets the ticket.
 * 3. Seed 003's version: ten named people, the file 'ticket' holding
 *    {"count": 3}; it prints the dict each buyer reads, as Python does. With
 *    the lock, exactly three get a ticket.
 *
 * A Lock made with mp_lock_new lives in mproc's shared arena, so the same
 * pointer, passed inside the target's argument, works in every child under
 * fork, spawn and forkserver (Python pickles the Lock instead).
 *
 * Which buyer wins, and the order of the lines, change from run to run (as
 * in Python); the number of tickets sold does not.
 *
 * Run: build/examples/sync_tickets [fork|spawn|forkserver] */
#include <mproc.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "story.h"

#define BUYERS 10

/* Exit codes of a buyer; anything else is an error in the story itself. */
enum { BOUGHT = 10, NOT_BOUGHT = 11 };

/* buyer_arg is what each buyer process gets (a copy of it). The Lock and the
 * Barrier are pointers into the shared arena, valid in every child. */
struct buyer_arg {
    char who[32];               /* 用户 i, or a person's name */
    char path[STORY_PATH_MAX];  /* the JSON "database" */
    char key[16];               /* "ticket_num" (seed 000) or "count" (seed 003) */
    int seed003;                /* print as seed 003 does */
    mp_lock_t *mutex;           /* NULL: buy without the lock */
    mp_barrier_t *delay;        /* without the lock: the network delay */
};

/* ---- the JSON database ----------------------------------------------------- */

/* db_read reads {"<key>": N} from path (Python: json.load). Returns 0 and *n,
 * or -1 if the file does not hold that. */
static int db_read(const char *path, const char *key, int *n)
{
    char text[128], k[32];
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = '\0';
    if (sscanf(text, " { \"%31[^\"]\" : %d }", k, n) != 2 || strcmp(k, key) != 0)
        return -1;
    return 0;
}

/* db_write writes {"<key>": n} to path as json.dump does. It writes a new
 * file and renames it over the old one, so that a reader (the queries run
 * without the lock) sees the old or the new content, never half of it.
 * Returns 0 or -1. */
static int db_write(const char *path, const char *key, int n)
{
    char tmp[STORY_PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    int ok = fprintf(f, "{\"%s\": %d}", key, n) > 0;
    ok = fclose(f) == 0 && ok;
    return ok && rename(tmp, path) == 0 ? 0 : -1;
}

/* ---- the buyer --------------------------------------------------------- */

/* search is the query (查票): anyone may look at any time. */
static int search(const struct buyer_arg *a)
{
    int n;
    if (db_read(a->path, a->key, &n) != 0)
        return -1;
    if (a->seed003)
        printf("%s 查询票数：%d\n", a->who, n);
    else
        printf("用户%s查询余票:%d\n", a->who, n);
    return 0;
}

/* buy reads the count again, waits for the "network", and sells a ticket
 * if the count it read was above zero. Returns BOUGHT, NOT_BOUGHT or 1. */
static int buy(const struct buyer_arg *a)
{
    int n;
    if (db_read(a->path, a->key, &n) != 0)
        return 1;
    if (a->seed003)
        printf("{'%s': %d}\n", a->key, n); /* print(dic) */

    /* 模拟网络延迟. With the lock, a short pause. Without it, the delay is
     * long enough for every other buyer to read the file too: the Barrier
     * lets nobody go on before all of them have read it. */
    if (a->delay) {
        int rc = mp_barrier_wait(a->delay, 30.0);
        if (rc < 0) {
            story_fail("%s: barrier: %s", a->who, mp_strerror(rc));
            return 1;
        }
    } else {
        story_sleep(0.01); /* the seed sleeps 1 to 3 s */
    }

    if (n > 0) {
        if (db_write(a->path, a->key, n - 1) != 0)
            return 1;
        printf(a->seed003 ? "%s抢到票了\n" : "用户%s买票成功\n", a->who);
        return BOUGHT;
    }
    printf(a->seed003 ? "%s没有抢到这张票\n" : "用户%s买票失败\n", a->who);
    return NOT_BOUGHT;
}

/* run is the target (Python: def run(i, mutex)): query, then buy under the
 * lock. Its exit code is buy's answer. */
static int run(void *arg)
{
    const struct buyer_arg *a = arg;
    if (search(a) != 0)
        return 1;
    if (!a->mutex)
        return buy(a);

    int rc = mp_lock_acquire(a->mutex, MP_FOREVER); /* 抢锁 */
    if (rc != 0) {
        story_fail("%s: acquire: %s", a->who, mp_strerror(rc));
        return 1;
    }
    int result = buy(a);
    rc = mp_lock_release(a->mutex); /* 释放锁 */
    if (rc != 0) {
        story_fail("%s: release: %s", a->who, mp_strerror(rc));
        return 1;
    }
    return result;
}

/* ---- the booth --------------------------------------------------------- */

/* sell starts one buyer per name, with the lock or not, waits for all of
 * them, and returns how many bought a ticket (or -1 on an error). */
static int sell(const char *const *who, int count, const struct buyer_arg *tmpl)
{
    mp_process_t *p[BUYERS] = { NULL };
    int rc, bought = 0, failed = 0;

    for (int i = 0; i < count; i++) {
        struct buyer_arg a = *tmpl;
        snprintf(a.who, sizeof a.who, "%s", who[i]);
        if ((rc = mp_process_new(&p[i], run, &a, sizeof a, NULL)) != 0 ||
            (rc = mp_process_start(p[i])) != 0) {
            story_fail("buyer %s: %s", who[i], mp_strerror(rc));
            return -1;
        }
    }
    for (int i = 0; i < count; i++) {
        int code = -1;
        if ((rc = mp_process_join(p[i], 60.0)) != 0 ||
            (rc = mp_process_exitcode(p[i], &code)) != 0) {
            story_fail("buyer %s: %s", who[i], mp_strerror(rc));
            return -1;
        }
        if (code == BOUGHT)
            bought++;
        else if (code != NOT_BOUGHT)
            failed++;
        mp_process_free(p[i]);
    }
    if (failed) {
        story_fail("%d buyers failed", failed);
        return -1;
    }
    return bought;
}

/* act runs one act: the file holds `tickets`, the buyers `who` come, and
 * afterwards `want` of them must have bought and the file must say `left`. */
static int act(const char *title, const char *const *who, struct buyer_arg *tmpl,
               int tickets, int want, int left)
{
    int n = -1;
    printf("---- %s ----\n", title);
    if (db_write(tmpl->path, tmpl->key, tickets) != 0)
        return story_fail("cannot write %s", tmpl->path);
    int bought = sell(who, BUYERS, tmpl);
    if (bought < 0)
        return 1;
    if (db_read(tmpl->path, tmpl->key, &n) != 0)
        return story_fail("cannot read %s", tmpl->path);
    printf("%d张票, 卖出了%d张, 文件里还剩%d张\n", tickets, bought, n);
    if (bought != want || n != left)
        return story_fail("%s: sold %d and %d left, want %d sold and %d left",
                          title, bought, n, want, left);
    return 0;
}

int main(int argc, char **argv)
{
    story_begin(argc, argv);
    static const char *const users[BUYERS] = { "1", "2", "3", "4", "5",
                                               "6", "7", "8", "9", "10" };
    static const char *const people[BUYERS] = { "李志辉", "宋云杰", "高云峰", "戈隆",
                                                "孙致和", "李虎玲", "袁伟倬", "刘鑫炜",
                                                "马生平", "刘鑫" };
    story_fifo_t dir;
    mp_lock_t *mutex = NULL;
    mp_barrier_t *delay = NULL;
    int rc, failed = 0;

    if ((rc = story_fifo_dir(&dir)) != 0)
        return story_fail("temporary directory: %s", strerror(-rc));
    if ((rc = mp_lock_new(&mutex)) != 0 ||
        (rc = mp_barrier_new(&delay, BUYERS, NULL, NULL, 0, MP_FOREVER)) != 0)
        return story_fail("Lock/Barrier: %s", mp_strerror(rc));

    /* Act 1: no lock; every buyer reads "1" and sells it. */
    struct buyer_arg a = { .key = "ticket_num", .delay = delay };
    if (story_fifo_path(&dir, "data", a.path) != 0)
        return story_fail("path too long");
    failed = act("不加锁: 数据错乱", users, &a, 1, BUYERS, 0);

    /* Act 2: the seed's program: buy under the lock. */
    a.delay = NULL;
    a.mutex = mutex;
    if (!failed)
        failed = act("加锁: 谁先抢到谁先买票", users, &a, 1, 1, 0);
    char data[STORY_PATH_MAX];
    snprintf(data, sizeof data, "%s", a.path);

    /* Act 3: seed 003's 12306, three tickets this time. */
    struct buyer_arg b = { .key = "count", .seed003 = 1, .mutex = mutex };
    if (story_fifo_path(&dir, "ticket", b.path) != 0)
        return story_fail("path too long");
    if (!failed)
        failed = act("模拟12306抢票", people, &b, 3, 3, 0);

    story_fifo_remove(&dir, data, b.path, NULL);
    mp_barrier_free(delay);
    mp_lock_free(mutex);
    return failed;
}

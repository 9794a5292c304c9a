/* manager_countdown.c: 100 processes count down a Manager's dict, without
 * and with a lock (seed 003, "共享数据": "A manager object returned by
 * Manager() controls a server process which holds Python objects and allows
 * other processes to manipulate them using proxies").
 *
 * Python (seed 003):
 *     from multiprocessing import Manager,Process,Lock
 *     def work(d,lock):
 *         # with lock: #不加锁而操作共享的数据,肯定会出现数据错乱
 *             d['count']-=1
 *     if __name__ == '__main__':
 *         lock=Lock()
 *         with Manager() as m:
 *             dic=m.dict({'count':100})
 *             p_l=[]
 *             for i in range(100):
 *                 p=Process(target=work,args=(dic,lock))
 *                 p_l.append(p)
 *                 p.start()
 *             for p in p_l:
 *                 p.join()
 *             print(dic)
 *             #{'count': 94}
 *
 * The dict lives in the manager's server process; the 100 processes hold
 * proxies to it (handles that travel in the target's argument under fork,
 * spawn and forkserver) and each opens its own connection to the server.
 * d['count'] -= 1 is two requests, a read (mp_dict_get) and a write
 * (mp_dict_set): the server answers each one atomically, but another
 * process's read or write can land between the two.
 *
 * Act 1 (不加锁): every process reads the count, works a little (a short
 *   pause standing for the computation between read and write), writes
 *   what it read minus 1. Processes that read the same count write the same
 *   value: all but one of their decrements are lost. (The pause only widens
 *   the window: with all 100 released at once, the count ends in the high
 *   90s even without it.) The story prints the
 *   dict as the seed does and how many decrements were lost; the count is
 *   well above 0 in practice, but if by chance it came out 0 the story says
 *   so rather than fail (the race is real all the same).
 * Act 2 (加锁): the same with a manager Lock held around the read, the pause
 *   and the write (the seed's `with lock:`). The count ends at exactly 0.
 *   The seed's lock is a multiprocessing.Lock; a manager Lock (m.Lock())
 *   works the same here and would also work for processes on other
 *   machines.
 * Act 3 (mp_dict_incr): d['count'] += -1 as one request, atomic in the
 *   server, needs no lock: it ends at 0 as well.
 *
 * So that the race does not depend on how fast processes start (under
 * spawn a process could finish before the next one is started), every
 * process first connects to the manager and then waits for a start signal
 * (an Event) that the parent sets once all 100 are ready; then they all go
 * at once.
 *
 * Run: build/examples/manager_countdown [fork|spawn|forkserver] */
#include <mproc.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "story.h"

#define NPROC 100     /* range(100) */
#define COUNT 100     /* m.dict({'count': 100}) */
#define WORK 0.01     /* seconds between the read and the write */
#define WAIT 60.0     /* a wait that lasts longer fails the story */

enum mode { UNLOCKED, LOCKED, INCR };

struct work_arg {
    mp_proxy_t *d;     /* dic */
    mp_proxy_t *lock;  /* m.Lock() (Act 2) */
    mp_event_t *go;    /* set once every process is ready */
    mp_value_t *ready; /* how many are ready */
    enum mode mode;
};

/* decrement does d['count'] -= 1 as a read and a write. */
static int decrement(mp_proxy_t *d)
{
    mp_val_t key = mp_val_str("count"), *v = NULL;
    int rc = mp_dict_get(d, &key, &v); /* d['count'] */
    if (rc != 0)
        return story_fail("work: d['count']: %s", mp_strerror(rc));
    if (v->type != MP_VAL_INT) {
        mp_val_free(v);
        return story_fail("work: d['count'] is not an integer");
    }
    int64_t x = v->v.i;
    mp_val_free(v);
    story_sleep(WORK); /* the work between the read and the write */
    mp_val_t nv = mp_val_int(x - 1);
    if ((rc = mp_dict_set(d, &key, &nv)) != 0) /* d['count'] = x - 1 */
        return story_fail("work: d['count'] = %" PRId64 ": %s", x - 1, mp_strerror(rc));
    return 0;
}

/* work is the seed's work(d, lock). */
static int work(void *arg)
{
    const struct work_arg *a = arg;
    mp_val_t key = mp_val_str("count");
    /* Connect now (the first call opens this process's connection), then
     * wait for the others. */
    int rc = mp_dict_contains(a->d, &key);
    if (rc < 0)
        return story_fail("work: 'count' in d: %s", mp_strerror(rc));
    if ((rc = mp_value_add(a->ready, 1, NULL)) != 0 || (rc = mp_event_wait(a->go, WAIT)) != 0)
        return story_fail("work: waiting for the start: %s", mp_strerror(rc));

    switch (a->mode) {
    case UNLOCKED: /* d['count'] -= 1 */
        return decrement(a->d);
    case LOCKED: /* with lock: d['count'] -= 1 */
        if ((rc = mp_mlock_acquire(a->lock, WAIT)) != 0)
            return story_fail("work: lock.acquire(): %s", mp_strerror(rc));
        int failed = decrement(a->d);
        if ((rc = mp_mlock_release(a->lock)) != 0)
            failed = story_fail("work: lock.release(): %s", mp_strerror(rc));
        return failed;
    case INCR: { /* one atomic request */
        mp_val_t minus1 = mp_val_int(-1);
        if ((rc = mp_dict_incr(a->d, &key, &minus1, NULL)) != 0)
            return story_fail("work: incr(d, 'count', -1): %s", mp_strerror(rc));
        return 0;
    }
    }
    return 1;
}

/* print_val prints a value as Python prints the object. */
static void print_val(const mp_val_t *v)
{
    switch (v->type) {
    case MP_VAL_NIL: printf("None"); break;
    case MP_VAL_BOOL: printf("%s", story_bool(v->v.b)); break;
    case MP_VAL_INT: printf("%" PRId64, v->v.i); break;
    case MP_VAL_UINT: printf("%" PRIu64, v->v.u); break;
    case MP_VAL_FLOAT: printf("%g", v->v.f); break;
    case MP_VAL_STR: printf("'%.*s'", (int)v->v.s.len, v->v.s.ptr); break;
    case MP_VAL_BYTES: printf("b'...'(%zu)", v->v.s.len); break;
    case MP_VAL_ARRAY:
        printf("[");
        for (size_t i = 0; i < v->v.a.n; i++) {
            printf(i ? ", " : "");
            print_val(&v->v.a.items[i]);
        }
        printf("]");
        break;
    case MP_VAL_MAP:
        printf("{");
        for (size_t i = 0; i < v->v.m.n; i++) {
            printf(i ? ", " : "");
            print_val(&v->v.m.items[i].key);
            printf(": ");
            print_val(&v->v.m.items[i].val);
        }
        printf("}");
        break;
    }
}

/* count_down runs the seed's 100 processes on a fresh dict {'count': 100}
 * in the given mode, prints the dict (print(dic)) and stores the final
 * count in *out. Returns 0 or 1. */
static int count_down(mp_manager_t *m, enum mode mode, int64_t *out)
{
    static mp_process_t *p_l[NPROC];
    mp_proxy_t *dic = NULL, *lock = NULL;
    mp_event_t *go = NULL;
    mp_value_t *ready = NULL;
    mp_val_t key = mp_val_str("count"), init = mp_val_int(COUNT), *items = NULL, *v = NULL;
    int rc, failed = 0, n = 0;

    if ((rc = mp_manager_dict(m, &dic)) != 0 ||        /* dic = m.dict() */
        (rc = mp_dict_set(dic, &key, &init)) != 0 ||   /* {'count': 100} */
        (rc = mp_manager_lock(m, &lock)) != 0 ||       /* lock = m.Lock() */
        (rc = mp_event_new(&go)) != 0 ||
        (rc = mp_value_new(&ready, MP_TYPE_INT, 0, NULL, NULL)) != 0) {
        failed = story_fail("dict / Lock / Event: %s", mp_strerror(rc));
        goto out;
    }
    struct work_arg a = { .d = dic, .lock = lock, .go = go, .ready = ready, .mode = mode };
    for (; n < NPROC; n++) {
        if ((rc = mp_process_new(&p_l[n], work, &a, sizeof a, NULL)) != 0 || /* Process(target=work, args=(dic, lock)) */
            (rc = mp_process_start(p_l[n])) != 0) {                        /* p.start() */
            mp_process_free(p_l[n]);
            failed = story_fail("process %d: %s", n, mp_strerror(rc));
            break;
        }
    }
    /* Every process is connected and waiting: let them all go at once. */
    for (double deadline = story_now() + WAIT; !failed;) {
        int64_t k = 0;
        if ((rc = mp_value_get_i64(ready, &k)) != 0) {
            failed = story_fail("ready: %s", mp_strerror(rc));
        } else if (k == NPROC) {
            break;
        } else if (story_now() > deadline) {
            failed = story_fail("only %" PRId64 " of %d processes got ready", k, NPROC);
        } else {
            story_sleep(0.005);
        }
    }
    mp_event_set(go); /* also on failure: no child waits for nothing */
    for (int i = 0; i < n; i++) /* for p in p_l: p.join() */
        failed |= story_join_ok(p_l[i], "work");
    if (failed)
        goto out;

    if ((rc = mp_dict_items(dic, &items)) != 0) {
        failed = story_fail("dic.items(): %s", mp_strerror(rc));
        goto out;
    }
    print_val(items); /* print(dic) */
    printf("\n");
    if ((rc = mp_dict_get(dic, &key, &v)) != 0 || v->type != MP_VAL_INT) {
        failed = story_fail("dic['count']: %s", rc ? mp_strerror(rc) : "not an integer");
        goto out;
    }
    *out = v->v.i;
out:
    mp_val_free(v);
    mp_val_free(items);
    mp_proxy_free(dic); /* deletes the dict in the server: we created it */
    mp_proxy_free(lock);
    mp_event_free(go);
    mp_value_free(ready);
    return failed;
}

int main(int argc, char **argv)
{
    story_begin(argc, argv);
    mp_manager_t *m = NULL;
    int64_t count = -1;
    int rc, failed = 0, code = -1;

    if ((rc = mp_manager_start(&m, NULL)) != 0) /* with Manager() as m: */
        return story_fail("Manager(): %s", mp_strerror(rc));
    printf("Manager 的服务进程: pid %d, 地址 %s\n", (int)mp_manager_pid(m),
           mp_manager_address(m));

    printf("---- 不加锁: %d 个进程各做一次 d['count'] -= 1 (读, 算, 写) ----\n", NPROC);
    if ((failed = count_down(m, UNLOCKED, &count)) != 0)
        goto out;
    if (count < 0 || count >= COUNT) {
        failed = story_fail("without the lock the count is %" PRId64 ", want 0..%d", count,
                            COUNT - 1);
        goto out;
    }
    if (count > 0)
        printf("丢了 %" PRId64 " 次减法: 不加锁而操作共享的数据,肯定会出现数据错乱\n", count);
    else
        printf("这次运气好, 减到了 0; 但不加锁仍然是错的: 读和写之间别的进程可以插进来\n");

    printf("---- 加锁: with lock: d['count'] -= 1 (m.Lock()) ----\n");
    if ((failed = count_down(m, LOCKED, &count)) != 0)
        goto out;
    if (count != 0) {
        failed = story_fail("with the lock the count is %" PRId64 ", want 0", count);
        goto out;
    }
    printf("加锁之后: 一次也没丢, 正好减到 0\n");

    printf("---- 一次请求: mp_dict_incr(d, 'count', -1), 在服务进程里原子执行 ----\n");
    if ((failed = count_down(m, INCR, &count)) != 0)
        goto out;
    if (count != 0) {
        failed = story_fail("with mp_dict_incr the count is %" PRId64 ", want 0", count);
        goto out;
    }
    printf("不用锁也正好减到 0\n");

out:
    if ((rc = mp_manager_shutdown(m, 10.0)) != 0 || (rc = mp_manager_exitcode(m, &code)) != 0)
        failed |= story_fail("shutdown: %s", mp_strerror(rc));
    else if (code != 0)
        failed |= story_fail("the manager's server exited with %d", code);
    else if (!failed)
        printf("Manager 已关闭 (服务进程退出码 %d)\n", code);
    mp_manager_free(m);
    return failed;
}

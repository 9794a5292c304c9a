/* proc_join_many.c: join waits for a child; join many to wait for all
 * (seed 003, "join方法").
 *
 * Python, one child:
 *     def func(): print("发送第一封邮箱,要求张工资")
 *     p = Process(target=func); p.start(); p.join()
 *     print("发送第二封邮箱,涨到一个月6万")
 * and ten children, started first and joined afterwards:
 *     def func(i): time.sleep(1); print("发送第%s封邮箱,要求升职加薪" % i)
 *     lst = []
 *     for i in range(10):
 *         p = Process(target=func, args=(i,)); p.start(); lst.append(p)
 *     for p in lst: p.join()
 *     print("主进程发最后一封邮件:此致敬礼~")
 *
 * The ten e-mails go out at the same time, so their order changes from run
 * to run; the last e-mail always comes after all of them. Joining inside the
 * loop instead would send them one after another (seed 004 explains why).
 *
 * Run: build/examples/proc_join_many [fork|spawn|forkserver] */
#include <mproc.h>

#include <stdio.h>

#include "story.h"

#define EMAILS 10

/* first_email is the single child of the first half. */
static int first_email(void *arg)
{
    (void)arg;
    printf("发送第一封邮箱,要求张工资\n");
    return 0;
}

/* email is one of the ten (Python: def func(i)). */
static int email(void *arg)
{
    int i = *(const int *)arg;
    story_sleep(0.2); /* the seed sleeps 1 s: writing the e-mail */
    printf("发送第%d封邮箱,要求升职加薪\n", i);
    return 0;
}

/* joined_ok joins p and checks that it is gone and exited with 0. */
static int joined_ok(mp_process_t *p)
{
    int rc, code = -1;
    if ((rc = mp_process_join(p, MP_FOREVER)) != 0 ||
        (rc = mp_process_exitcode(p, &code)) != 0)
        return story_fail("%s: %s", mp_process_name(p), mp_strerror(rc));
    if (code != 0 || mp_process_is_alive(p) != 0)
        return story_fail("%s: exit code %d, alive %d after join",
                          mp_process_name(p), code, mp_process_is_alive(p));
    return 0;
}

int main(int argc, char **argv)
{
    story_begin(argc, argv);
    int rc;

    /* One child: join turns "at the same time" into "one after another". */
    mp_process_t *p = NULL;
    if ((rc = mp_process_new(&p, first_email, NULL, 0, NULL)) != 0 ||
        (rc = mp_process_start(p)) != 0)
        return story_fail("first e-mail: %s", mp_strerror(rc));
    if (joined_ok(p))
        return 1;
    printf("发送第二封邮箱,涨到一个月6万\n");
    mp_process_free(p);

    /* Ten children: start them all, then join them all. */
    mp_process_t *lst[EMAILS] = { NULL };
    for (int i = 0; i < EMAILS; i++) {
        if ((rc = mp_process_new(&lst[i], email, &i, sizeof i, NULL)) != 0 ||
            (rc = mp_process_start(lst[i])) != 0)
            return story_fail("e-mail %d: %s", i, mp_strerror(rc));
    }
    int active = mp_active_children(NULL, 0);
    if (active < 0 || active > EMAILS)
        return story_fail("active_children() = %d while sending", active);
    for (int i = 0; i < EMAILS; i++) {
        if (joined_ok(lst[i]))
            return 1;
    }
    printf("主进程发最后一封邮件:此致敬礼~\n");

    /* After the joins no child is left (Python: active_children() == []). */
    if ((active = mp_active_children(NULL, 0)) != 0)
        return story_fail("active_children() = %d after the joins", active);
    for (int i = 0; i < EMAILS; i++)
        mp_process_free(lst[i]);
    return 0;
}

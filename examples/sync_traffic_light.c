/* sync_traffic_light.c: an Event, and the traffic light (seed 003, "事件":
 * 模拟经典红绿灯效果).
 *
 * Python:
 *     def traffic_light(e):
 *         print("红灯亮~")
 *         while True:
 *             if e.is_set():
 *                 time.sleep(3); print("红灯亮~"); e.clear()
 *             else:
 *                 time.sleep(1); print("绿灯亮~"); e.set()
 *     def car(e, i):
 *         if not e.is_set():
 *             print("car%s 在等待" % i)
 *             e.wait()
 *         print("car%s 通行了" % i)
 *     e = Event()
 *     p1 = Process(target=traffic_light, args=(e,))
 *     p1.daemon = True          # 当所有小车都跑完之后,把红绿灯收拾起来,省电
 *     p1.start()
 *     for i in range(1, 21):
 *         time.sleep(random.randrange(0, 2))
 *         p2 = Process(target=car, args=(e, i)); p2.start(); lst.append(p2)
 *     for i in lst: i.join()
 *     print("程序结束 ... ")
 *
 * An Event is a flag that processes share: is_set() reads it, set() and
 * clear() change it, and wait() blocks while it is clear (green is "set").
 * Time runs ten times faster here: red lasts 0.1 s, green 0.3 s, and a car
 * comes every 0 or 0.1 s. Which cars wait changes from run to run (as in
 * Python); every car passes, and a car that waited passes only once the
 * light has turned green (its wait returned success). The light is a daemon
 * process: it would run forever, and mproc stops it when the program ends.
 *
 * The Event lives in mproc's shared arena; its pointer travels in the
 * targets' arguments and works under fork, spawn and forkserver.
 *
 * Run: build/examples/sync_traffic_light [fork|spawn|forkserver] */
#include <mproc.h>

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "story.h"

#define CARS 20
#define RED 0.1   /* the seed: 1 s */
#define GREEN 0.3 /* the seed: 3 s */

/* Exit codes of a car; anything else is an error in the story. */
enum { PASSED = 10, WAITED_THEN_PASSED = 11 };

/* light_arg and car_arg: the targets' arguments (copied into each child;
 * the Event pointer stays valid because the Event lives in the arena). */
struct light_arg {
    mp_event_t *e;
};
struct car_arg {
    mp_event_t *e;
    int i;
};

/* traffic_light runs until the program ends (it is a daemon); a minute
 * is its own safety limit, should nothing stop it. */
static int traffic_light(void *arg)
{
    mp_event_t *e = ((const struct light_arg *)arg)->e;
    double end = story_now() + 60.0;
    printf("红灯亮~\n");
    while (story_now() < end) {
        if (mp_event_is_set(e)) {
            story_sleep(GREEN); /* 绿灯状态 */
            printf("红灯亮~\n");
            mp_event_clear(e);
        } else {
            story_sleep(RED);
            printf("绿灯亮~\n");
            mp_event_set(e);
        }
    }
    return 1;
}

/* car is a car's target (Python: def car(e, i)). */
static int car(void *arg)
{
    const struct car_arg *a = arg;
    int waited = 0;
    if (!mp_event_is_set(a->e)) {
        printf("car%d 在等待\n", a->i);
        int rc = mp_event_wait(a->e, 30.0);
        if (rc != 0)
            return story_fail("car%d: wait: %s", a->i, mp_strerror(rc));
        waited = 1;
    }
    printf("car%d 通行了\n", a->i);
    return waited ? WAITED_THEN_PASSED : PASSED;
}

int main(int argc, char **argv)
{
    story_begin(argc, argv);
    mp_event_t *e = NULL;
    mp_process_t *p1 = NULL, *lst[CARS] = { NULL };
    int rc, waited = 0, passed = 0;

    srand((unsigned)getpid());
    if ((rc = mp_event_new(&e)) != 0)
        return story_fail("Event: %s", mp_strerror(rc));

    /* The light: a daemon process. */
    struct light_arg la = { e };
    mp_process_opts_t daemon = { .daemon = 1 };
    if ((rc = mp_process_new(&p1, traffic_light, &la, sizeof la, &daemon)) != 0 ||
        (rc = mp_process_start(p1)) != 0)
        return story_fail("traffic_light: %s", mp_strerror(rc));

    /* The cars come one by one. */
    for (int i = 1; i <= CARS; i++) {
        story_sleep((rand() % 2) * 0.1); /* random.randrange(0, 2) seconds */
        struct car_arg ca = { e, i };
        if ((rc = mp_process_new(&lst[i - 1], car, &ca, sizeof ca, NULL)) != 0 ||
            (rc = mp_process_start(lst[i - 1])) != 0)
            return story_fail("car%d: %s", i, mp_strerror(rc));
    }

    /* 让所有的小车都通行之后,在结束交通灯 */
    for (int i = 0; i < CARS; i++) {
        int code = -1;
        if ((rc = mp_process_join(lst[i], 60.0)) != 0 ||
            (rc = mp_process_exitcode(lst[i], &code)) != 0)
            return story_fail("car%d: %s", i + 1, mp_strerror(rc));
        if (code == WAITED_THEN_PASSED)
            waited++;
        else if (code == PASSED)
            passed++;
        else
            return story_fail("car%d exited with %d", i + 1, code);
        mp_process_free(lst[i]);
    }
    if (mp_process_is_alive(p1) != 1 || mp_process_daemon(p1) != 1)
        return story_fail("the light should still be on, as a daemon");
    printf("程序结束 ... \n");
    printf("(%d辆车等了红灯, %d辆车直接通行)\n", waited, passed);

    /* The light is still on; mproc terminates it (a daemon) at exit. The
     * Event is not freed: the light uses it until its end, and the arena
     * goes away with the last process of the program. */
    mp_process_free(p1);
    return 0;
}

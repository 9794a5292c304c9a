/* pool_progress.c: a map on a pool, with a progress bar (seed 003, "进程池":
 * 同时操作多个文件目录 ... 需要并发执行的任务通常要远大于核数).
 *
 * Python has no progress for Pool.map; people write
 *     for i, r in enumerate(p.imap(work, items), 1):
 *         print('\r[%-30s] %d/%d' % ('#' * (30 * i // n), i, n), end='')
 * mproc's map takes a progress callback instead (mp_map_opts_t.progress),
 * called in the thread that waits in map, with the items done so far and
 * the total, each time a chunk of items is finished:
 *
 *     p = Pool(4)
 *     out = p.map(work, range(200), chunksize=5)   # work: 10 ms, then x*x
 *
 * On a terminal the bar is redrawn in place (\r); when stdout is a file or a
 * pipe (make demo's log), only the finished bar is printed, once, so a log
 * holds no half-drawn bars. The story checks what a progress bar relies on:
 * the callback runs in the main thread, its counts never go back, the total
 * is the number of items, it ends at 200/200 when map returns, and every
 * result is in its place (out[i] == i*i). How often the bar moves depends on
 * how chunks finish; the last line does not.
 *
 * Run: build/examples/pool_progress [fork|spawn|forkserver] */
#include <mproc.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "story.h"

#define WORKERS 4
#define ITEMS 200
#define CHUNK 5
#define WIDTH 40     /* characters of the bar */
#define WORK 0.01    /* seconds per item */

/* work is the map function: out = in * in, after a little "work". */
static int work(const void *in, void *out)
{
    int x;
    memcpy(&x, in, sizeof x);
    story_sleep(WORK);
    long y = (long)x * x;
    memcpy(out, &y, sizeof y);
    return 0;
}

/* bar is what the progress callback keeps between calls. */
struct bar {
    int tty;          /* stdout is a terminal: redraw in place */
    pthread_t waiter; /* the thread that called map */
    size_t calls;
    size_t last;      /* done at the previous call */
    int bad;          /* a call broke one of the rules */
};

/* draw prints the bar for done of total, without a newline; on a terminal
 * it first goes back to the start of the line. */
static void draw(int tty, size_t done, size_t total)
{
    char fill[WIDTH + 1];
    size_t k = total ? WIDTH * done / total : WIDTH;
    memset(fill, '#', k);
    memset(fill + k, '.', WIDTH - k);
    fill[WIDTH] = '\0';
    printf("%s[%s] %3zu%% %zu/%zu", tty ? "\r" : "", fill,
           total ? 100 * done / total : 100, done, total);
}

/* progress is the callback: checks the counts and redraws on a terminal. */
static void progress(size_t done, size_t total, void *user)
{
    struct bar *b = user;
    b->calls++;
    if (!pthread_equal(pthread_self(), b->waiter) || total != ITEMS || done > total ||
        done < b->last)
        b->bad++;
    b->last = done;
    if (b->tty) {
        draw(1, done, total);
        fflush(stdout);
    }
}

int main(int argc, char **argv)
{
    story_begin(argc, argv);
    static int in[ITEMS];
    static long out[ITEMS];
    mp_pool_t *p = NULL;
    int rc, failed = 0;

    for (int i = 0; i < ITEMS; i++)
        in[i] = i;
    if ((rc = mp_pool_new(&p, WORKERS, NULL)) != 0) /* p = Pool(4) */
        return story_fail("Pool(4): %s", mp_strerror(rc));
    printf("Pool(%d).map(work, range(%d), chunksize=%d): 每个%.0f毫秒\n", WORKERS, ITEMS, CHUNK,
           WORK * 1000);

    struct bar b = { .tty = isatty(STDOUT_FILENO), .waiter = pthread_self() };
    mp_map_opts_t opts = { .chunksize = CHUNK, .progress = progress, .progress_user = &b };
    size_t bad_item = 0;
    double t0 = story_now();
    rc = mp_pool_map(p, work, in, ITEMS, sizeof in[0], out, sizeof out[0], &opts, &bad_item);
    double took = story_now() - t0;
    if (!b.tty)
        draw(0, b.last, ITEMS); /* the finished bar, once */
    printf("\n");
    if (rc != 0)
        return story_fail("map: item %zu: %s", bad_item, mp_strerror(rc));

    long sum = 0;
    for (int i = 0; i < ITEMS; i++) {
        if (out[i] != (long)i * i && !failed)
            failed = story_fail("out[%d] = %ld, want %ld", i, out[i], (long)i * i);
        sum += out[i];
    }
    printf("sum(out) = %ld; 用时%.2f秒 (一个进程要%.2f秒)\n", sum, took, ITEMS * WORK);
    if (!failed && b.bad)
        failed = story_fail("%d of %zu progress calls broke a rule (thread, total, order)",
                            b.bad, b.calls);
    if (!failed && (b.calls == 0 || b.last != ITEMS))
        failed = story_fail("progress ended at %zu/%d after %zu calls", b.last, ITEMS, b.calls);

    if ((rc = mp_pool_close(p)) != 0 || (rc = mp_pool_join(p, 20.0)) != 0)
        failed |= story_fail("close/join: %s", mp_strerror(rc));
    mp_pool_free(p);
    return failed;
}

/* robust.c: owned lock words that survive their owner's death.
 *
 * The kernel's robust-futex protocol: the lock word holds the owner's TID;
 * each thread registers one list of the locks it holds (set_robust_list);
 * when a thread dies the kernel walks its list and, for every word still
 * holding the dead TID, sets FUTEX_OWNER_DIED, clears the TID and wakes a
 * waiter. glibc registers that list for every thread it starts (its robust
 * pthread mutexes live on it), and a thread has only one, so our locks share
 * it: an entry is a {prev, next} pair placed exactly where glibc places it
 * relative to the lock word (the futex offset read from the list head), and
 * insertion and removal follow glibc's doubly linked discipline, so glibc's
 * own robust mutexes and ours can interleave on the list. The list is only
 * ever touched by its own thread. list_op_pending covers the instants
 * between changing the word and changing the list (musl and glibc do the
 * same).
 *
 * Waiters: a locker that finds the word taken sets FUTEX_WAITERS and sleeps
 * on the word; a locker that slept keeps FUTEX_WAITERS when it wins, so the
 * next unlock wakes the next sleeper.
 * MT-safe: yes. Fork-safe: yes (glibc re-registers the child's list; the
 * cached head address stays valid since the thread's TCB is at the same
 * address in the child). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "platform.h"

/* The thread's TID, and its robust-list head once it is known to be usable
 * (NULL before and when unusable); platform.h's inline fast paths read
 * them. */
MP__TLS pid_t mp__tl_tid;
MP__TLS struct mp__robust_head *mp__tl_head;
static MP__TLS int head_state; /* 0 unknown, 1 usable, -1 unusable */

#define ENTRY(m) MP__ROBUST_ENTRY(m)
#define WORD_OFFSET ((long)offsetof(mp__robust_t, word) - (long)offsetof(mp__robust_t, next))

pid_t mp__gettid(void)
{
    if (!mp__tl_tid)
        mp__tl_tid = (pid_t)syscall(SYS_gettid);
    return mp__tl_tid;
}

int mp__tid_alive(pid_t tid)
{
    if (kill(tid, 0) < 0 && errno == ESRCH)
        return 0;
    /* A zombie (killed, not yet reaped) still answers kill(0). */
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno != ENOENT;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 1;
    buf[n] = 0;
    const char *p = strrchr(buf, ')');
    return !(p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'));
}

static struct mp__robust_head *head_slow(void)
{
    if (head_state == 0) {
        struct mp__robust_head *h = NULL;
        size_t len = 0;
        head_state = -1;
        if (syscall(SYS_get_robust_list, 0, &h, &len) == 0 && h &&
            len == sizeof(struct mp__robust_head) && h->futex_offset == WORD_OFFSET) {
            mp__tl_head = h;
            head_state = 1;
        }
    }
    return head_state > 0 ? mp__tl_head : NULL;
}

static inline __attribute__((always_inline)) struct mp__robust_head *head(void)
{
    if (__builtin_expect(head_state > 0, 1))
        return mp__tl_head;
    return head_slow();
}

/* After fork the child is a new thread with a new TID. */
static void reset_tid(void) { mp__tl_tid = 0; }
__attribute__((constructor)) static void robust_init(void)
{
    pthread_atfork(NULL, NULL, reset_tid);
}

int mp__robust_lock(mp__robust_t *m, mp__deadline_t d)
{
    struct mp__robust_head *h = head();
    if (!h)
        return -ENOTSUP;
    uint32_t tid = (uint32_t)mp__gettid();
    _Atomic uint32_t *w = (_Atomic uint32_t *)&m->word;
    uint32_t keep = 0;

    /* The fast path sets list_op_pending to m before the word changes: if
     * we die between the word and the list, the kernel still finds m.
     * Leaving it set after the enqueue is harmless (the kernel handles an
     * entry that is both listed and pending once, and only while the word
     * holds our TID), and saves a store; unlock clears it. When the fast
     * path fails, pending names m for the loop below as well. */
    if (mp__robust_trylock_fast(m))
        return 0;
    uint32_t v = atomic_load(w);
    for (;;) {
        if ((v & FUTEX_TID_MASK) == 0) {
            uint32_t nv = tid | keep | (v & FUTEX_WAITERS);
            if (atomic_compare_exchange_strong_explicit(w, &v, nv, memory_order_acquire,
                                                        memory_order_relaxed)) {
                mp__robust_enqueue(h, m);
                return (v & FUTEX_OWNER_DIED) ? -EOWNERDEAD : 0;
            }
            continue;
        }
        if ((v & FUTEX_TID_MASK) == tid) {
            h->list_op_pending = NULL;
            return -EDEADLK;
        }
        if (!(v & FUTEX_WAITERS)) {
            uint32_t nv = v | FUTEX_WAITERS;
            if (!atomic_compare_exchange_strong(w, &v, nv))
                continue;
            v = nv;
        }
        /* Sleep in slices of a second at most: a wake-up can be lost when
         * a woken locker is killed before it retakes the word while a
         * newcomer took the free word without FUTEX_WAITERS (glibc's robust
         * mutexes have the same hole); the others then sleep behind an
         * owner whose unlock, or death, sees no waiters bit. Waking up each
         * second, a sleeper sets the bit again (or finds the owner dead),
         * so such a loss costs at most a second, never a hang. */
        mp__deadline_t slice = d;
        if (d != 0) {
            int64_t cap = mp__now_ns() + 1000000000LL;
            if (cap < d)
                slice = cap;
        }
        _Atomic uint32_t *sl = (_Atomic uint32_t *)&m->sleepers;
        atomic_fetch_add(sl, 1);
        int r = mp__futex_wait(&m->word, v, slice);
        atomic_fetch_sub(sl, 1);
        if (r == -ETIMEDOUT && slice == d) {
            h->list_op_pending = NULL;
            return r;
        }
        keep = FUTEX_WAITERS; /* others may sleep too: the next unlock wakes them */
        v = atomic_load(w);
    }
}

int mp__robust_unlock(mp__robust_t *m)
{
    mp__gettid();
    if (!head())
        return -EPERM; /* no list: nothing can be held */
    return mp__robust_unlock_inline(m);
}

/* The rest of an unlock that found FUTEX_WAITERS. FUTEX_WAITERS stays
 * conservative (a locker that slept keeps it, and the kernel needs it to
 * wake someone when an owner dies); the sleeper count says whether anyone
 * is in futex_wait now. Measured: >99% of wakes found nobody before.
 * list_op_pending stays set until after the wake: if we die between freeing
 * the word and waking, the kernel sees the pending entry with no owner and
 * wakes a sleeper for us. */
int mp__robust_unlock_wake(mp__robust_t *m, struct mp__robust_head *h)
{
    if (atomic_load((_Atomic uint32_t *)&m->sleepers))
        mp__futex_wake(&m->word, 1);
    atomic_signal_fence(memory_order_seq_cst);
    h->list_op_pending = NULL;
    return 0;
}

int mp__robust_owned(const mp__robust_t *m)
{
    uint32_t v = __atomic_load_n(&m->word, __ATOMIC_RELAXED);
    return (v & FUTEX_TID_MASK) == (uint32_t)mp__gettid();
}

int mp__robust_held(const mp__robust_t *m)
{
    return (__atomic_load_n(&m->word, __ATOMIC_RELAXED) & FUTEX_TID_MASK) != 0;
}

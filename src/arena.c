/* arena.c: the shared arena: one memfd mapped MAP_SHARED at the same address
 * in every process of the program, and a crash-consistent allocator in it.
 *
 * Layout: [header][block][block]...[top) — every block starts with a 16-byte
 * header holding its size class (block size 1 << class, header included) and
 * its state; free blocks also hold the offset of the next free block of their
 * class. The header keeps one free-list head per class, the bump offset `top`
 * and the memfd's size.
 *
 * Invariants, true between any two instructions of a process that may die:
 *  - blocks tile [data_start, top) with no gap;
 *  - every block on free list c has class c and state FREE;
 *  - a FREE block that no list holds is leaked, never corrupt.
 * Each step of alloc and free is one aligned store that keeps them, so a
 * process killed inside the critical section leaves the heap consistent; the
 * robust lock (src/sys/robust.c) reports EOWNERDEAD to the next locker,
 * which counts a recovery and goes on. (glibc's robust mutex was used
 * before; it loses a wake-up when a woken waiter is killed after another
 * thread took the free lock, see robust.c.)
 *
 * Lock order: the arena mutex is a leaf (nothing else is taken under it).
 * Process-local state: the mapping's base, fd and length, set once (by init or
 * by attach in a spawned child) under `local_mu`. MT-safe: yes. Fork-safe:
 * yes (children inherit the mapping and descriptor). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arena.h"

#define ARENA_MAGIC 0x6d70726f63617231ULL /* "mprocar1" */
#define BLOCK_USED 0x55534544u
#define BLOCK_FREE 0x46524545u
#define MIN_CLASS 5   /* 32-byte blocks: 16 header + 16 data */
#define MAX_CLASS 40  /* 1 TiB: larger than any reserve */
#define NCLASS (MAX_CLASS + 1)
#define ARENA_RESERVE (64ULL << 30)
#define ARENA_INITIAL (1ULL << 20)
#define ARENA_HINT ((uintptr_t)0x200000000000ULL)

typedef struct {
    uint32_t state;
    uint32_t cls;
    uint64_t next; /* offset of the next free block of this class, or 0 */
} block_t;

typedef struct {
    uint64_t magic;
    uint64_t reserve;
    mp__robust_t mu;
    _Atomic uint64_t top;  /* end of the last block, as an offset */
    _Atomic uint64_t size; /* the memfd's size */
    _Atomic uint64_t used;
    _Atomic uint64_t nfree;
    _Atomic uint64_t recoveries;
    uint64_t head[NCLASS]; /* free-list heads, offsets (0: empty) */
    _Atomic uint64_t roots[MP__ARENA_ROOTS]; /* family-wide blocks (offsets) */
} header_t;

#define DATA_START (((sizeof(header_t) + 63) / 64) * 64)

void (*mp__arena_test_hook)(void);

static pthread_mutex_t local_mu = PTHREAD_MUTEX_INITIALIZER;
static header_t *arena;      /* the base; NULL until mapped */
static int arena_fd = -1;
static size_t arena_reserve;

/* STEP keeps the compiler from moving stores across a step boundary: a
 * process may die between any two steps and the heap must be whole then. */
#define STEP() atomic_signal_fence(memory_order_seq_cst)

static void *at(uint64_t off) { return (char *)arena + off; }
static uint64_t off_of(const void *p) { return (uint64_t)((const char *)p - (const char *)arena); }

static void *map_reserve(int fd, uintptr_t hint, size_t len)
{
    /* The whole reservation maps the memfd beyond its size: pages past EOF
     * are unusable until ftruncate grows the file, and then they are valid in
     * every process at once, with no remapping. Shared file mappings are not
     * charged against overcommit. */
    int flags = MAP_SHARED | MAP_NORESERVE;
    if (hint)
        flags |= MAP_FIXED_NOREPLACE;
    void *p = mp__sys_mmap((void *)hint, len, PROT_READ | PROT_WRITE, flags, fd, 0);
    if (p == MAP_FAILED)
        return NULL;
    if (hint && (uintptr_t)p != hint) { /* old kernels ignore NOREPLACE */
        munmap(p, len);
        errno = EEXIST;
        return NULL;
    }
    return p;
}

static int init_locked(void)
{
    int fd = -1, rc;
    void *base = NULL;

    fd = mp__sys_memfd("mproc-arena", MFD_CLOEXEC);
    if (fd < 0)
        return fd;
    rc = mp__sys_ftruncate(fd, (off_t)ARENA_INITIAL);
    if (rc < 0)
        goto fail;
    for (int i = 0; i < 8 && !base; i++)
        base = map_reserve(fd, ARENA_HINT + ((uintptr_t)i << 40), ARENA_RESERVE);
    if (!base)
        base = map_reserve(fd, 0, ARENA_RESERVE);
    if (!base) {
        rc = -errno;
        goto fail;
    }
    header_t *h = base;
    h->reserve = ARENA_RESERVE;
    atomic_store(&h->top, DATA_START);
    atomic_store(&h->size, ARENA_INITIAL);
    h->magic = ARENA_MAGIC;
    arena = h;
    arena_fd = fd;
    arena_reserve = ARENA_RESERVE;
    return 0;
fail:
    close(fd);
    return rc;
}

int mp__arena_init(void)
{
    if (__atomic_load_n(&arena, __ATOMIC_ACQUIRE))
        return 0;
    pthread_mutex_lock(&local_mu);
    int rc = arena ? 0 : init_locked();
    pthread_mutex_unlock(&local_mu);
    return rc;
}

int mp__arena_attach(int fd, uintptr_t base, size_t reserve)
{
    int rc = 0;
    pthread_mutex_lock(&local_mu);
    if (arena) {
        rc = (uintptr_t)arena == base ? 0 : -EEXIST;
        goto out;
    }
    void *p = map_reserve(fd, base, reserve);
    if (!p) {
        rc = -errno;
        goto out;
    }
    if (((header_t *)p)->magic != ARENA_MAGIC) {
        munmap(p, reserve);
        rc = -EINVAL;
        goto out;
    }
    arena = p;
    arena_fd = fd;
    arena_reserve = reserve;
out:
    pthread_mutex_unlock(&local_mu);
    return rc;
}

void mp__arena_describe(int *fd, uintptr_t *base, size_t *reserve)
{
    pthread_mutex_lock(&local_mu);
    *fd = arena ? arena_fd : -1;
    *base = (uintptr_t)arena;
    *reserve = arena_reserve;
    pthread_mutex_unlock(&local_mu);
}

int mp__arena_contains(const void *p)
{
    header_t *h = arena;
    return h && (const char *)p >= (char *)h &&
           (const char *)p < (char *)h + atomic_load(&h->top);
}

static int lock_arena(void)
{
    int r;
    do
        r = mp__robust_lock(&arena->mu, MP__NEVER);
    while (r == -EINTR);
    if (r == -EOWNERDEAD) {
        /* Every state between two stores is consistent (see the top of this
         * file): nothing to repair. */
        atomic_fetch_add(&arena->recoveries, 1);
        r = 0;
    }
    return r;
}

static void unlock_arena(void) { mp__robust_unlock(&arena->mu); }

static int class_for(size_t n)
{
    size_t need = n + sizeof(block_t);
    int c = MIN_CLASS;
    while (c <= MAX_CLASS && ((size_t)1 << c) < need)
        c++;
    return c;
}

/* Grows the memfd so that [0, need) is backed. Called with the lock held. */
static int grow_locked(uint64_t need)
{
    uint64_t size = atomic_load(&arena->size);
    if (need <= size)
        return 0;
    if (need > arena_reserve)
        return -ENOMEM;
    uint64_t want = size * 2 > need ? size * 2 : need;
    if (want > arena_reserve)
        want = arena_reserve;
    int rc = mp__sys_ftruncate(arena_fd, (off_t)want);
    if (rc < 0)
        return rc;
    atomic_store(&arena->size, want);
    return 0;
}

void *mp__arena_alloc(size_t n)
{
    void *p = mp__arena_alloc_raw(n);
    if (p)
        memset(p, 0, n);
    return p;
}

void *mp__arena_alloc_raw(size_t n)
{
    if (mp__arena_init() < 0 || n > arena_reserve)
        return NULL;
    int c = class_for(n);
    if (c > MAX_CLASS)
        return NULL;
    uint64_t bsize = (uint64_t)1 << c;
    block_t *b;

    if (lock_arena() < 0)
        return NULL;
    uint64_t off = arena->head[c];
    if (off) {
        b = at(off);
        arena->head[c] = b->next; /* b leaves the list: leaked if we die */
        STEP();
        atomic_fetch_sub(&arena->nfree, 1);
        if (mp__arena_test_hook)
            mp__arena_test_hook();
        b->next = 0;
        b->state = BLOCK_USED;
    } else {
        uint64_t top = atomic_load(&arena->top);
        /* Blocks are aligned to min(size, 4 KiB) so that large blocks start
         * on a page; the gap becomes free blocks, largest first. top is
         * always a multiple of the smallest block. */
        uint64_t align = bsize < 4096 ? bsize : 4096;
        uint64_t target = (top + align - 1) & ~(align - 1);
        while (top < target) {
            int pc = MIN_CLASS;
            while (top % ((uint64_t)2 << pc) == 0 && top + ((uint64_t)2 << pc) <= target)
                pc++;
            if (grow_locked(top + ((uint64_t)1 << pc)) < 0)
                goto nomem;
            block_t *pad = at(top);
            pad->cls = (uint32_t)pc;
            pad->state = BLOCK_FREE;
            pad->next = arena->head[pc];
            STEP();
            atomic_store(&arena->top, top + ((uint64_t)1 << pc)); /* leaked if we die here */
            STEP();
            arena->head[pc] = top;
            atomic_fetch_add(&arena->nfree, 1);
            top += (uint64_t)1 << pc;
        }
        if (grow_locked(top + bsize) < 0)
            goto nomem;
        b = at(top);
        b->cls = (uint32_t)c;
        b->state = BLOCK_USED;
        b->next = 0;
        STEP();
        atomic_store(&arena->top, top + bsize); /* publishes b */
        if (mp__arena_test_hook)
            mp__arena_test_hook();
    }
    atomic_fetch_add(&arena->used, bsize);
    unlock_arena();
    return b + 1;
nomem:
    unlock_arena();
    return NULL;
}

void mp__arena_free(void *p)
{
    if (!p || !arena)
        return;
    block_t *b = (block_t *)p - 1;
    if (!mp__arena_contains(b) || b->state != BLOCK_USED)
        return; /* not ours, or freed twice: ignore rather than corrupt */
    uint64_t bsize = (uint64_t)1 << b->cls;
    if (bsize >= (1u << 20)) /* give large blocks' pages back */
        madvise(b + 1, bsize - sizeof *b, MADV_REMOVE);
    if (lock_arena() < 0)
        return; /* leaked: no lock to take here */
    b->state = BLOCK_FREE;
    b->next = arena->head[b->cls];
    STEP();
    arena->head[b->cls] = off_of(b); /* publishes: leaked, not torn, if we die before */
    atomic_fetch_add(&arena->nfree, 1);
    atomic_fetch_sub(&arena->used, bsize);
    unlock_arena();
}

int mp__arena_check(const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    *why = NULL;
    if (mp__arena_init() < 0) {
        *why = "no arena";
        return -EUCLEAN;
    }
    int rc = lock_arena();
    if (rc < 0) {
        *why = "cannot take the arena's lock";
        return rc;
    }
    uint64_t top = atomic_load(&arena->top), off = DATA_START;
    if (top > atomic_load(&arena->size)) {
        *why = "top beyond the memfd's size";
        rc = -EUCLEAN;
        goto out;
    }
    while (off < top) { /* blocks tile the heap */
        block_t *b = at(off);
        if ((b->state != BLOCK_USED && b->state != BLOCK_FREE) || b->cls < MIN_CLASS ||
            b->cls > MAX_CLASS || off + ((uint64_t)1 << b->cls) > top) {
            *why = "bad block header";
            rc = -EUCLEAN;
            goto out;
        }
        off += (uint64_t)1 << b->cls;
    }
    for (int c = 0; c < NCLASS; c++) {
        uint64_t steps = 0;
        for (uint64_t o = arena->head[c]; o; o = ((block_t *)at(o))->next) {
            block_t *b = at(o);
            if (o < DATA_START || o >= top || b->state != BLOCK_FREE || b->cls != (uint32_t)c ||
                ++steps > top / 32) {
                *why = "bad free list";
                rc = -EUCLEAN;
                goto out;
            }
        }
    }
out:
    unlock_arena();
    return rc;
}

int mp__arena_stats(mp__arena_stats_t *out)
{
    if (!out)
        return -EINVAL;
    int rc = mp__arena_init();
    if (rc < 0)
        return rc;
    out->used = atomic_load(&arena->used);
    out->mapped = atomic_load(&arena->size);
    out->free_blocks = atomic_load(&arena->nfree);
    out->recoveries = atomic_load(&arena->recoveries);
    return 0;
}

void *mp__arena_root(int slot, size_t size, void (*init)(void *))
{
    if (slot < 0 || slot >= MP__ARENA_ROOTS || mp__arena_init() < 0)
        return NULL;
    uint64_t off = atomic_load(&arena->roots[slot]);
    if (off)
        return at(off);
    void *b = mp__arena_alloc(size);
    if (!b)
        return NULL;
    if (init)
        init(b);
    uint64_t expect = 0;
    if (atomic_compare_exchange_strong(&arena->roots[slot], &expect, off_of(b)))
        return b;
    mp__arena_free(b); /* another process won the race */
    return at(expect);
}

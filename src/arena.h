/* arena.h: the shared arena, internal API.
 *
 * One memfd, mapped MAP_SHARED at the same virtual address in every process
 * of the program (fork children inherit the mapping; spawn and forkserver
 * children map it at the same address before any user code runs). The whole
 * reservation is mapped at once, beyond the memfd's size; growing the arena is
 * one ftruncate, which every process sees at once without remapping. Pointers
 * into the arena are therefore valid in every process of the family.
 *
 * The allocator keeps power-of-two size classes with one free list each and a
 * bump pointer, under one robust process-shared mutex. Every change to the
 * allocator's state is a single aligned store, so a process that dies inside
 * alloc or free leaves a consistent heap; the next locker sees EOWNERDEAD,
 * marks the mutex consistent and goes on (at most the one block that was in
 * flight is lost). MT-safe: yes. Fork-safe: yes. */
#ifndef MP_ARENA_H
#define MP_ARENA_H

#include <stddef.h>
#include <stdint.h>
#include "sys/platform.h"

/* mp__arena_init maps the arena if this process has none yet (idempotent,
 * thread-safe). Returns 0, -ENOMEM, or the -errno of memfd/mmap/ftruncate. */
MP_HIDDEN int mp__arena_init(void);

/* mp__arena_alloc returns zeroed shared memory of at least n bytes, 16-byte
 * aligned, valid at the same address in every process of the family; NULL when
 * the arena cannot grow (n == 0 gives a minimal block). Initializes the arena
 * if needed. */
MP_HIDDEN void *mp__arena_alloc(size_t n);

/* mp__arena_alloc_raw is mp__arena_alloc without the zeroing, for blocks the
 * caller overwrites at once (message payloads). */
MP_HIDDEN void *mp__arena_alloc_raw(size_t n);

/* mp__arena_free returns a block from mp__arena_alloc (NULL is ignored). */
MP_HIDDEN void mp__arena_free(void *p);

/* mp__arena_contains tells whether p points into the arena. */
MP_HIDDEN int mp__arena_contains(const void *p);

/* mp__arena_check walks the heap and verifies its invariants (every block's
 * header, every free list). Returns 0 or -EUCLEAN with a reason in *why. */
MP_HIDDEN int mp__arena_check(const char **why);

/* mp__arena_stats reports the bytes in use (allocated blocks), the size of
 * the memfd, and the number of times a dead allocator owner was recovered. */
typedef struct {
    size_t used, mapped, free_blocks, recoveries;
} mp__arena_stats_t;
MP_HIDDEN int mp__arena_stats(mp__arena_stats_t *out);

/* For the bootstrap of spawn and forkserver children: the descriptor, the base
 * address and the reserved length of this process's arena (fd = -1 if none). */
MP_HIDDEN void mp__arena_describe(int *fd, uintptr_t *base, size_t *reserve);

/* mp__arena_attach maps an arena given by a parent at exactly base (the fd is
 * kept at its number). Returns 0, or -EEXIST if that address range is taken
 * in this process, or -errno. */
MP_HIDDEN int mp__arena_attach(int fd, uintptr_t base, size_t reserve);

/* mp__arena_root returns the family-wide block kept in root slot `slot`
 * (0..MP__ARENA_ROOTS-1): the first caller in any process allocates `size`
 * zeroed bytes, runs init on them and publishes the block; every later caller,
 * in any process of the family, gets the same block. NULL if the arena is
 * unavailable or the slot is out of range. */
#define MP__ARENA_ROOTS 16
#define MP__ROOT_FORKSERVER 0
#define MP__ROOT_MANAGER 1
MP_HIDDEN void *mp__arena_root(int slot, size_t size, void (*init)(void *));

/* Test hook: when set, called inside the allocator's critical section after
 * the free list or bump pointer was updated and before the block is marked;
 * a test makes it kill the process to prove crash consistency. */
MP_HIDDEN extern void (*mp__arena_test_hook)(void);

#endif

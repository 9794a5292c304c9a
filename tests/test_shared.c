/* test_shared.c: Value, Array, RawValue and RawArray (Python's
 * multiprocessing.Value / Array / RawValue / RawArray) between processes,
 * run once per start method (argv[1]).
 *
 * The objects and the board where parties report live in the shared arena,
 * so the same pointers work in children under fork, spawn and forkserver.
 * A party (a child process, or a thread) never calls cmocka: it reports
 * through its exit code and the board. Parties meet through futex words of
 * the board and "this task is asleep" checks, never through sleeps.
 * mp-test: per-start-method
 * mp-test: timeout=600 */
#include "mp_test.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "sys/platform.h"

#define NTYPES 14 /* the 13 typecodes and a struct */
#define ALEN 5    /* elements of each typed array */
#define INCR 10000
#define PSUM 1000

typedef struct {
    int32_t i;
    double d;
    char name[13];
} rec_t;

typedef struct {
    uint32_t ready, held, done, never;
    int32_t rc[4];
    pid_t tid[4];
    mp_value_t *v[NTYPES];
    mp_array_t *a[NTYPES];
    mp_value_t *val;
    mp_array_t *arr;
    mp_lock_t *lock;
} board_t;

static const mp_type_t all_types[NTYPES] = {
    MP_TYPE_CHAR,   MP_TYPE_SCHAR, MP_TYPE_UCHAR,  MP_TYPE_SHORT,  MP_TYPE_USHORT,
    MP_TYPE_INT,    MP_TYPE_UINT,  MP_TYPE_LONG,   MP_TYPE_ULONG,  MP_TYPE_LLONG,
    MP_TYPE_ULLONG, MP_TYPE_FLOAT, MP_TYPE_DOUBLE, MP_TYPE_STRUCT,
};

static board_t *board_new(void)
{
    board_t *b = mp__arena_alloc(sizeof *b);
    assert_non_null(b);
    return b;
}

static size_t type_struct_size(mp_type_t t)
{
    return t == MP_TYPE_STRUCT ? sizeof(rec_t) : 0;
}

static size_t type_bytes(mp_type_t t)
{
    return t == MP_TYPE_STRUCT ? sizeof(rec_t) : (size_t)mp_type_size(t);
}

/* typed_fill writes element k of the pattern `key` of type t into buf: a
 * value of the C type, near the ends of its range, so that a wrong size or a
 * wrong signedness shows. Safe in targets. */
static void typed_fill(mp_type_t t, int key, int k, void *buf)
{
    int m = key * 7 + k;
    switch (t) {
    case MP_TYPE_CHAR: {
        char x = (char)('A' + m % 26);
        memcpy(buf, &x, sizeof x);
        break;
    }
    case MP_TYPE_SCHAR: {
        signed char x = (signed char)(SCHAR_MIN + m);
        memcpy(buf, &x, sizeof x);
        break;
    }
    case MP_TYPE_UCHAR: {
        unsigned char x = (unsigned char)(UCHAR_MAX - m);
        memcpy(buf, &x, sizeof x);
        break;
    }
    case MP_TYPE_SHORT: {
        short x = (short)(SHRT_MIN + m);
        memcpy(buf, &x, sizeof x);
        break;
    }
    case MP_TYPE_USHORT: {
        unsigned short x = (unsigned short)(USHRT_MAX - m);
        memcpy(buf, &x, sizeof x);
        break;
    }
    case MP_TYPE_INT: {
        int x = INT_MIN + m;
        memcpy(buf, &x, sizeof x);
        break;
    }
    case MP_TYPE_UINT: {
        unsigned x = UINT_MAX - (unsigned)m;
        memcpy(buf, &x, sizeof x);
        break;
    }
    case MP_TYPE_LONG: {
        long x = LONG_MIN + m;
        memcpy(buf, &x, sizeof x);
        break;
    }
    case MP_TYPE_ULONG: {
        unsigned long x = ULONG_MAX - (unsigned long)m;
        memcpy(buf, &x, sizeof x);
        break;
    }
    case MP_TYPE_LLONG: {
        long long x = LLONG_MIN + m;
        memcpy(buf, &x, sizeof x);
        break;
    }
    case MP_TYPE_ULLONG: {
        unsigned long long x = ULLONG_MAX - (unsigned long long)m;
        memcpy(buf, &x, sizeof x);
        break;
    }
    case MP_TYPE_FLOAT: {
        float x = -1.5e30f + (float)m * 0.25f;
        memcpy(buf, &x, sizeof x);
        break;
    }
    case MP_TYPE_DOUBLE: {
        double x = 1e300 / (m + 3);
        memcpy(buf, &x, sizeof x);
        break;
    }
    case MP_TYPE_STRUCT: {
        rec_t r;
        memset(&r, 0, sizeof r);
        r.i = -m;
        r.d = m + 0.5;
        snprintf(r.name, sizeof r.name, "rec%d", m % 1000);
        memcpy(buf, &r, sizeof r);
        break;
    }
    }
}

/* ---- every type, set in a child ------------------------------------------- */

/* t_set_all sets every Value and every element of every Array to pattern 1.
 * Codes: 10+i a Value's set failed, 30+i an Array's set_slice failed. */
static int t_set_all(void *arg)
{
    board_t *b = *(board_t **)arg;
    for (int i = 0; i < NTYPES; i++) {
        unsigned char buf[sizeof(rec_t) * ALEN];
        typed_fill(all_types[i], 1, 0, buf);
        if (mp_value_set(b->v[i], buf) != 0)
            return 10 + i;
        size_t sz = type_bytes(all_types[i]);
        for (int k = 0; k < ALEN; k++)
            typed_fill(all_types[i], 1, k, buf + (size_t)k * sz);
        if (mp_array_set_slice(b->a[i], 0, ALEN, buf) != 0)
            return 30 + i;
    }
    return 0;
}

static void every_type(int raw)
{
    board_t *b = board_new();
    for (int i = 0; i < NTYPES; i++) {
        mp_type_t t = all_types[i];
        unsigned char init[sizeof(rec_t) * ALEN];
        size_t sz = type_bytes(t);
        for (int k = 0; k < ALEN; k++)
            typed_fill(t, 0, k, init + (size_t)k * sz);
        if (raw) {
            mp_assert_int(mp_rawvalue_new(&b->v[i], t, type_struct_size(t), init), 0);
            mp_assert_int(mp_rawarray_new(&b->a[i], t, type_struct_size(t), ALEN, init), 0);
        } else {
            mp_assert_int(mp_value_new(&b->v[i], t, type_struct_size(t), init, NULL), 0);
            mp_assert_int(mp_array_new(&b->a[i], t, type_struct_size(t), ALEN, init, NULL), 0);
        }
        mp_assert_int(mp_value_size(b->v[i]), sz);
        mp_assert_int(mp_array_itemsize(b->a[i]), sz);
        mp_assert_int(mp_array_len(b->a[i]), ALEN);
        mp_assert_int(memcmp(mp_value_ptr(b->v[i]), init, sz), 0);
        mp_assert_int(memcmp(mp_array_ptr(b->a[i]), init, sz * ALEN), 0);
        mp_assert_int((uintptr_t)mp_value_ptr(b->v[i]) % 16, 0);
        mp_assert_int((uintptr_t)mp_array_ptr(b->a[i]) % 16, 0);
    }
    static mp_party_t y;
    mp_party_start(&y, 1, t_set_all, &b, sizeof b);
    mp_assert_int(mp_party_join(&y), 0);
    for (int i = 0; i < NTYPES; i++) {
        mp_type_t t = all_types[i];
        size_t sz = type_bytes(t);
        unsigned char want[sizeof(rec_t) * ALEN], got[sizeof(rec_t) * ALEN];
        typed_fill(t, 1, 0, want);
        memset(got, 0xee, sizeof got);
        mp_assert_int(mp_value_get(b->v[i], got), 0);
        if (memcmp(got, want, sz) != 0)
            mp_test_fail("Value of type %d: the child's value is not seen by the parent\n", (int)t);
        for (int k = 0; k < ALEN; k++) {
            typed_fill(t, 1, k, want);
            mp_assert_int(mp_array_get(b->a[i], (size_t)k, got), 0);
            if (memcmp(got, want, sz) != 0)
                mp_test_fail("Array of type %d, element %d: the child's value is not seen\n",
                             (int)t, k);
        }
        mp_value_free(b->v[i]);
        mp_array_free(b->a[i]);
    }
    mp__arena_free(b);
}

static void every_type_value_array(void **state)
{
    every_type(0);
}
static void every_type_raw(void **state)
{
    every_type(1);
}

/* Typecodes map to the types whose sizes are the C types'; anything else is
 * -EINVAL. */
static void typecodes(void **state)
{
    const char *codes = "cbBhHiIlLqQfd";
    const int sizes[] = {
        sizeof(char),           sizeof(signed char), sizeof(unsigned char),      sizeof(short),
        sizeof(unsigned short), sizeof(int),         sizeof(unsigned),           sizeof(long),
        sizeof(unsigned long),  sizeof(long long),   sizeof(unsigned long long), sizeof(float),
        sizeof(double)};
    for (int i = 0; codes[i]; i++) {
        mp_assert_int(mp_type_from_code(codes[i]), all_types[i]);
        mp_assert_int(mp_type_size(all_types[i]), sizes[i]);
    }
    const char *bad = "xuzZ?s";
    for (int i = 0; bad[i]; i++)
        mp_assert_int(mp_type_from_code(bad[i]), -EINVAL);
    mp_assert_int(mp_type_from_code(0), -EINVAL);
    mp_assert_int(mp_type_from_code(-1), -EINVAL);
    mp_assert_int(mp_type_size(MP_TYPE_STRUCT), -EINVAL);
    mp_assert_int(mp_type_size((mp_type_t)0), -EINVAL);
    mp_assert_int(mp_type_size((mp_type_t)99), -EINVAL);
}

/* ---- typed helpers --------------------------------------------------------- */

static void typed_helpers(void **state)
{
    mp_value_t *v = NULL;
    int64_t x = 0;
    double d = 0;
    /* Every integer type, at both ends of its range; one past is -ERANGE. */
    static const struct {
        mp_type_t t;
        int64_t lo, hi;
    } r[] = {
        {MP_TYPE_CHAR, CHAR_MIN, CHAR_MAX},    {MP_TYPE_SCHAR, SCHAR_MIN, SCHAR_MAX},
        {MP_TYPE_UCHAR, 0, UCHAR_MAX},         {MP_TYPE_SHORT, SHRT_MIN, SHRT_MAX},
        {MP_TYPE_USHORT, 0, USHRT_MAX},        {MP_TYPE_INT, INT_MIN, INT_MAX},
        {MP_TYPE_UINT, 0, UINT_MAX},           {MP_TYPE_LONG, LONG_MIN, LONG_MAX},
        {MP_TYPE_LLONG, LLONG_MIN, LLONG_MAX},
    };
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
        mp_assert_int(mp_value_new(&v, r[i].t, 0, NULL, NULL), 0);
        mp_assert_int(mp_value_get_i64(v, &x), 0);
        mp_assert_int(x, 0);
        mp_assert_int(mp_value_set_i64(v, r[i].hi), 0);
        mp_assert_int(mp_value_get_i64(v, &x), 0);
        mp_assert_int(x, r[i].hi);
        mp_assert_int(mp_value_add(v, 1, &x), -ERANGE);
        mp_assert_int(mp_value_get_i64(v, &x), 0);
        mp_assert_int(x, r[i].hi);
        mp_assert_int(mp_value_set_i64(v, r[i].lo), 0);
        mp_assert_int(mp_value_add(v, -1, NULL), -ERANGE);
        mp_assert_int(mp_value_get_i64(v, &x), 0);
        mp_assert_int(x, r[i].lo);
        if (r[i].hi < INT64_MAX)
            mp_assert_int(mp_value_set_i64(v, r[i].hi + 1), -ERANGE);
        if (r[i].lo > INT64_MIN)
            mp_assert_int(mp_value_set_i64(v, r[i].lo - 1), -ERANGE);
        mp_assert_int(mp_value_get_i64(v, &x), 0);
        mp_assert_int(x, r[i].lo);
        mp_assert_int(mp_value_add(v, 5, &x), 0);
        mp_assert_int(x, r[i].lo + 5);
        mp_assert_int(mp_value_get_double(v, &d), -EINVAL);
        mp_assert_int(mp_value_set_double(v, 1.0), -EINVAL);
        mp_assert_int(mp_value_add_double(v, 1.0, &d), -EINVAL);
        mp_value_free(v);
    }
    /* Unsigned 64-bit: values above INT64_MAX do not fit an int64_t. */
    unsigned long long big = ULLONG_MAX;
    mp_assert_int(mp_value_new(&v, MP_TYPE_ULLONG, 0, &big, NULL), 0);
    x = 42;
    mp_assert_int(mp_value_get_i64(v, &x), -ERANGE);
    mp_assert_int(x, 42);
    mp_assert_int(mp_value_add(v, 1, &x), -ERANGE);
    mp_assert_int(mp_value_set_i64(v, -1), -ERANGE);
    mp_assert_int(mp_value_set_i64(v, INT64_MAX), 0);
    mp_assert_int(mp_value_get_i64(v, &x), 0);
    mp_assert_int(x, INT64_MAX);
    mp_value_free(v);
    /* Floats. */
    mp_assert_int(mp_value_new(&v, MP_TYPE_DOUBLE, 0, NULL, NULL), 0);
    mp_assert_int(mp_value_set_double(v, 2.5), 0);
    mp_assert_int(mp_value_add_double(v, 0.25, &d), 0);
    if (d != 2.75)
        mp_test_fail("double add gave %g, expected 2.75\n", d);
    mp_assert_int(mp_value_get_i64(v, &x), -EINVAL);
    mp_assert_int(mp_value_set_i64(v, 1), -EINVAL);
    mp_assert_int(mp_value_add(v, 1, &x), -EINVAL);
    mp_value_free(v);
    mp_assert_int(mp_value_new(&v, MP_TYPE_FLOAT, 0, NULL, NULL), 0);
    mp_assert_int(mp_value_set_double(v, 0.1), 0);
    mp_assert_int(mp_value_get_double(v, &d), 0);
    if (d != (double)0.1f)
        mp_test_fail("float Value gave %.17g, expected %.17g\n", d, (double)0.1f);
    mp_value_free(v);
    /* A struct has no typed helpers. */
    mp_assert_int(mp_value_new(&v, MP_TYPE_STRUCT, sizeof(rec_t), NULL, NULL), 0);
    mp_assert_int(mp_value_get_i64(v, &x), -EINVAL);
    mp_assert_int(mp_value_add_double(v, 1, &d), -EINVAL);
    mp_value_free(v);
}

/* ---- counters --------------------------------------------------------------- */

/* t_add adds 1 INCR times with mp_value_add. Codes: 10 an add failed. */
static int t_add(void *arg)
{
    board_t *b = *(board_t **)arg;
    mp_test_word_inc(&b->ready);
    mp_test_word_wait(&b->held, 1, MP_FOREVER); /* start together */
    for (int i = 0; i < INCR; i++)
        if (mp_value_add(b->val, 1, NULL) != 0)
            return 10;
    return 0;
}

/* t_get_set adds 1 INCR times with a get then a set (Python's `v.value += 1`
 * without the lock): not atomic. Codes: 10 get, 11 set failed. */
static int t_get_set(void *arg)
{
    board_t *b = *(board_t **)arg;
    mp_test_word_inc(&b->ready);
    mp_test_word_wait(&b->held, 1, MP_FOREVER);
    for (int i = 0; i < INCR; i++) {
        int x;
        if (mp_value_get(b->val, &x) != 0)
            return 10;
        x++;
        if (mp_value_set(b->val, &x) != 0)
            return 11;
    }
    return 0;
}

static int64_t count_with(mp_target_fn fn, int raw)
{
    board_t *b = board_new();
    if (raw)
        mp_assert_int(mp_rawvalue_new(&b->val, MP_TYPE_INT, 0, NULL), 0);
    else
        mp_assert_int(mp_value_new(&b->val, MP_TYPE_INT, 0, NULL, NULL), 0);
    static mp_party_t y[2];
    for (int i = 0; i < 2; i++)
        mp_party_start(&y[i], 1, fn, &b, sizeof b);
    mp_test_wait_word(&b->ready, 2, "both counters running");
    mp_test_word_store(&b->held, 1);
    for (int i = 0; i < 2; i++)
        mp_assert_int(mp_party_join(&y[i]), 0);
    int64_t x = -1;
    mp_assert_int(mp_value_get_i64(b->val, &x), 0);
    mp_value_free(b->val);
    mp__arena_free(b);
    return x;
}

/* 2 processes x 10,000 mp_value_add end at exactly 20,000. */
static void counter_add_exact(void **state)
{
    mp_assert_int(count_with(t_add, 0), 2 * INCR);
}

/* The same with get then set is Python's classic race: updates may be lost
 * (with the lock too: the lock is only held inside each call). Whether any
 * is lost depends on scheduling, so only the bounds are asserted. */
static void counter_get_set_race(void **state)
{
    for (int raw = 0; raw < 2; raw++) {
        int64_t x = count_with(t_get_set, raw);
        if (x <= 0 || x > 2 * INCR)
            mp_test_fail("get+set counter (raw %d) ended at %lld, outside 1..%d\n", raw,
                         (long long)x, 2 * INCR);
        printf("# get+set counter (%s): %lld of %d (lost %lld)\n", raw ? "raw" : "locked",
               (long long)x, 2 * INCR, (long long)(2 * INCR - x));
    }
}

/* Holding the lock around get and set (Python's `with v.get_lock():
 * v.value += 1`) makes them atomic. */
static int t_locked_get_set(void *arg)
{
    board_t *b = *(board_t **)arg;
    mp_test_word_inc(&b->ready);
    mp_test_word_wait(&b->held, 1, MP_FOREVER);
    for (int i = 0; i < INCR; i++) {
        int x;
        if (mp_value_acquire(b->val, MP_FOREVER) != 0)
            return 9;
        if (mp_value_get(b->val, &x) != 0) /* the RLock is reentrant */
            return 10;
        x++;
        if (mp_value_set(b->val, &x) != 0)
            return 11;
        if (mp_value_release(b->val) != 0)
            return 12;
    }
    return 0;
}

static void counter_locked_get_set_exact(void **state)
{
    mp_assert_int(count_with(t_locked_get_set, 0), 2 * INCR);
}

/* ---- a caller's lock ---------------------------------------------------------- */

/* t_set_7 reports its tid and that it runs, sets the value to 7 and reports
 * done. Codes: 10 the set failed (rc[0]). */
static int t_set_7(void *arg)
{
    board_t *b = *(board_t **)arg;
    b->tid[0] = mp_test_tid();
    mp_test_word_inc(&b->ready);
    int rc = mp_value_set_i64(b->val, 7);
    b->rc[0] = rc;
    mp_test_word_inc(&b->done);
    return rc == 0 ? 0 : 10;
}

static void callers_lock(void **state)
{
    board_t *b = board_new();
    assert_int_equal(mp_lock_new(&b->lock), 0);
    mp_shared_opts_t o = {.lock_kind = MP_SHARED_LOCK_LOCK, .lock = b->lock};
    mp_assert_int(mp_value_new(&b->val, MP_TYPE_LLONG, 0, NULL, &o), 0);
    mp_lock_t *l = NULL;
    mp_rlock_t *rl = (mp_rlock_t *)1;
    mp_assert_int(mp_value_get_lock(b->val, &l, &rl), MP_SHARED_LOCK_LOCK);
    assert_ptr_equal(l, b->lock);
    assert_null(rl);
    /* The caller holds the lock: the child's set waits for it. */
    mp_assert_int(mp_lock_acquire(b->lock, 0), 0);
    int64_t x = -1;
    mp_assert_int(mp_value_get_i64(b->val, &x), -EDEADLK); /* a Lock is not reentrant */
    static mp_party_t y;
    mp_party_start(&y, 1, t_set_7, &b, sizeof b);
    mp_test_wait_word(&b->ready, 1, "the child started");
    mp_test_wait_asleep(b->tid[0], "the child waiting for the lock in set");
    mp_assert_int(mp_test_word_get(&b->done), 0);
    mp_assert_int(*(long long *)mp_value_ptr(b->val), 0);
    mp_assert_int(mp_value_acquire(b->val, 0), -EDEADLK);
    mp_assert_int(mp_lock_release(b->lock), 0);
    mp_assert_int(mp_party_join(&y), 0);
    mp_assert_int(mp_value_get_i64(b->val, &x), 0);
    mp_assert_int(x, 7);
    /* The same lock shared by an Array; acquire/release through either. */
    mp_assert_int(mp_array_new(&b->arr, MP_TYPE_INT, 0, 3, NULL, &o), 0);
    mp_assert_int(mp_array_acquire(b->arr, 0), 0);
    mp_assert_int(mp_lock_locked(b->lock), 1);
    mp_assert_int(mp_value_acquire(b->val, 0), -EDEADLK);
    mp_assert_int(mp_value_release(b->val), 0);
    mp_assert_int(mp_lock_locked(b->lock), 0);
    mp_array_free(b->arr);
    mp_value_free(b->val);
    /* The caller's lock survives the objects that used it. */
    mp_assert_int(mp_lock_acquire(b->lock, 0), 0);
    mp_assert_int(mp_lock_release(b->lock), 0);
    mp_lock_free(b->lock);
    mp__arena_free(b);
}

/* A caller's RLock, and the default RLock: reentrant, get_lock names it. */
static void rlocks(void **state)
{
    mp_rlock_t *rl = NULL;
    mp_assert_int(mp_rlock_new(&rl), 0);
    mp_shared_opts_t o = {.lock_kind = MP_SHARED_LOCK_RLOCK, .rlock = rl};
    mp_value_t *v = NULL, *d = NULL;
    mp_assert_int(mp_value_new(&v, MP_TYPE_INT, 0, NULL, &o), 0);
    mp_assert_int(mp_value_new(&d, MP_TYPE_INT, 0, NULL, NULL), 0);
    mp_lock_t *l = (mp_lock_t *)1;
    mp_rlock_t *got = NULL;
    mp_assert_int(mp_value_get_lock(v, &l, &got), MP_SHARED_LOCK_RLOCK);
    assert_null(l);
    assert_ptr_equal(got, rl);
    mp_assert_int(mp_value_get_lock(d, NULL, &got), MP_SHARED_LOCK_RLOCK);
    assert_non_null(got);
    assert_ptr_not_equal(got, rl);
    mp_assert_int(mp_value_acquire(d, 0), 0);
    mp_assert_int(mp_rlock_count(got), 1);
    mp_assert_int(mp_value_add(d, 3, NULL), 0);
    mp_assert_int(mp_rlock_count(got), 1);
    mp_assert_int(mp_value_release(d), 0);
    mp_assert_int(mp_rlock_count(got), 0);
    mp_assert_int(mp_value_release(d), -EPERM);
    mp_assert_int(mp_rlock_acquire(rl, 0), 0);
    mp_assert_int(mp_value_set_i64(v, 9), 0);
    mp_assert_int(mp_rlock_release(rl), 0);
    mp_value_free(v);
    mp_value_free(d);
    mp_rlock_free(rl);
}

/* Raw objects have no lock. */
static void raw_has_no_lock(void **state)
{
    mp_value_t *v = NULL;
    mp_array_t *a = NULL;
    mp_assert_int(mp_rawvalue_new(&v, MP_TYPE_INT, 0, NULL), 0);
    mp_assert_int(mp_rawarray_new(&a, MP_TYPE_INT, 0, 4, NULL), 0);
    mp_lock_t *l = (mp_lock_t *)1;
    mp_rlock_t *rl = (mp_rlock_t *)1;
    mp_assert_int(mp_value_get_lock(v, &l, &rl), MP_SHARED_LOCK_NONE);
    assert_null(l);
    assert_null(rl);
    l = (mp_lock_t *)1;
    rl = (mp_rlock_t *)1;
    mp_assert_int(mp_array_get_lock(a, &l, &rl), MP_SHARED_LOCK_NONE);
    assert_null(l);
    assert_null(rl);
    mp_assert_int(mp_value_acquire(v, 0), -ENOLCK);
    mp_assert_int(mp_value_release(v), -ENOLCK);
    mp_assert_int(mp_array_acquire(a, 0), -ENOLCK);
    mp_assert_int(mp_array_release(a), -ENOLCK);
    mp_assert_int(mp_value_add(v, 2, NULL), 0);
    int x = 0;
    mp_assert_int(mp_value_get(v, &x), 0);
    mp_assert_int(x, 2);
    mp_value_free(v);
    mp_array_free(a);
    /* lock_kind NONE through mp_value_new is the same. */
    mp_shared_opts_t o = {.lock_kind = MP_SHARED_LOCK_NONE};
    mp_assert_int(mp_value_new(&v, MP_TYPE_INT, 0, NULL, &o), 0);
    mp_assert_int(mp_value_get_lock(v, NULL, NULL), MP_SHARED_LOCK_NONE);
    mp_value_free(v);
}

/* ---- arrays --------------------------------------------------------------- */

/* t_prefix replaces a->arr (long long) by its prefix sums under the lock,
 * through the pointer, and the double array b->a[0] by its prefix sums
 * through slices. Codes: 10 acquire, 11 release, 12 slice calls failed. */
static int t_prefix(void *arg)
{
    board_t *b = *(board_t **)arg;
    if (mp_array_acquire(b->arr, MP_FOREVER) != 0)
        return 10;
    long long *p = mp_array_ptr(b->arr);
    long n = mp_array_len(b->arr);
    for (long i = 1; i < n; i++)
        p[i] += p[i - 1];
    if (mp_array_release(b->arr) != 0)
        return 11;
    static double d[PSUM];
    if (mp_array_get_slice(b->a[0], 0, PSUM, d) != 0)
        return 12;
    for (int i = 1; i < PSUM; i++)
        d[i] += d[i - 1];
    if (mp_array_set_slice(b->a[0], 0, PSUM, d) != 0)
        return 12;
    return 0;
}

static void array_prefix_sums(void **state)
{
    board_t *b = board_new();
    static long long init[PSUM];
    static double dinit[PSUM];
    for (int i = 0; i < PSUM; i++) {
        init[i] = i + 1;
        dinit[i] = 0.5 * (i + 1);
    }
    mp_assert_int(mp_array_new(&b->arr, MP_TYPE_LLONG, 0, PSUM, init, NULL), 0);
    mp_assert_int(mp_array_new(&b->a[0], MP_TYPE_DOUBLE, 0, PSUM, dinit, NULL), 0);
    static mp_party_t y;
    mp_party_start(&y, 1, t_prefix, &b, sizeof b);
    mp_assert_int(mp_party_join(&y), 0);
    for (int i = 0; i < PSUM; i++) {
        long long x = -1;
        double d = -1;
        mp_assert_int(mp_array_get(b->arr, (size_t)i, &x), 0);
        mp_assert_int(x, (long long)(i + 1) * (i + 2) / 2);
        mp_assert_int(mp_array_get(b->a[0], (size_t)i, &d), 0);
        if (d != 0.25 * (i + 1) * (i + 2))
            mp_test_fail("double prefix sum %d is %g, expected %g\n", i, d,
                         0.25 * (i + 1) * (i + 2));
    }
    mp_array_free(b->arr);
    mp_array_free(b->a[0]);
    mp__arena_free(b);
}

/* Slices in and out; every bad index and bad slice is -EINVAL and writes
 * nothing, neither into the array nor into the caller's buffer. */
static void array_slices_and_bad_indexes(void **state)
{
    int init[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    mp_array_t *a = NULL;
    mp_assert_int(mp_array_new(&a, MP_TYPE_INT, 0, 8, init, NULL), 0);
    int out[8], in[8] = {-1, -2, -3, -4, -5, -6, -7, -8};
    memset(out, 0x5a, sizeof out);
    mp_assert_int(mp_array_get_slice(a, 2, 5, out), 0);
    mp_assert_int(out[0], 2);
    mp_assert_int(out[2], 4);
    mp_assert_int(out[3], 0x5a5a5a5a);
    mp_assert_int(mp_array_set_slice(a, 6, 8, in), 0);
    mp_assert_int(mp_array_get_slice(a, 0, 8, out), 0);
    int want[8] = {0, 1, 2, 3, 4, 5, -1, -2};
    mp_assert_int(memcmp(out, want, sizeof want), 0);
    /* Empty slices are fine, also with NULL buffers. */
    mp_assert_int(mp_array_get_slice(a, 3, 3, NULL), 0);
    mp_assert_int(mp_array_set_slice(a, 8, 8, NULL), 0);
    mp_assert_int(mp_array_get_slice(a, 0, 0, out), 0);
    /* Bad ones. */
    static const size_t bad[][2] = {
        {0, 9},       {8, 9}, {5, 4}, {9, 9}, {9, 10}, {1, SIZE_MAX}, {SIZE_MAX, SIZE_MAX},
        {SIZE_MAX, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(out, 0x5a, sizeof out);
        mp_assert_int(mp_array_get_slice(a, bad[i][0], bad[i][1], out), -EINVAL);
        mp_assert_int(out[0], 0x5a5a5a5a);
        mp_assert_int(mp_array_set_slice(a, bad[i][0], bad[i][1], in), -EINVAL);
    }
    mp_assert_int(mp_array_get_slice(a, 0, 2, NULL), -EINVAL);
    mp_assert_int(mp_array_set_slice(a, 0, 2, NULL), -EINVAL);
    static const size_t badi[] = {8, 9, 1000, SIZE_MAX, SIZE_MAX / 4 + 1};
    for (size_t i = 0; i < sizeof badi / sizeof badi[0]; i++) {
        out[0] = 0x5a5a5a5a;
        mp_assert_int(mp_array_get(a, badi[i], out), -EINVAL);
        mp_assert_int(out[0], 0x5a5a5a5a);
        mp_assert_int(mp_array_set(a, badi[i], in), -EINVAL);
    }
    mp_assert_int(mp_array_get(a, 0, NULL), -EINVAL);
    mp_assert_int(mp_array_set(a, 0, NULL), -EINVAL);
    mp_assert_int(mp_array_get_slice(a, 0, 8, out), 0);
    mp_assert_int(memcmp(out, want, sizeof want), 0); /* nothing was written */
    int last = 0;
    mp_assert_int(mp_array_set(a, 7, &in[4]), 0);
    mp_assert_int(mp_array_get(a, 7, &last), 0);
    mp_assert_int(last, -5);
    mp_array_free(a);
    /* An empty array, as Python's Array('i', 0). */
    mp_assert_int(mp_array_new(&a, MP_TYPE_INT, 0, 0, NULL, NULL), 0);
    mp_assert_int(mp_array_len(a), 0);
    assert_non_null(mp_array_ptr(a));
    mp_assert_int(mp_array_get(a, 0, out), -EINVAL);
    mp_assert_int(mp_array_get_slice(a, 0, 0, out), 0);
    mp_assert_int(mp_array_get_slice(a, 0, 1, out), -EINVAL);
    mp_array_free(a);
}

/* ---- bad input: -EINVAL, nothing made --------------------------------------- */

static mp__arena_stats_t arena_stats(void)
{
    mp__arena_stats_t s;
    memset(&s, 0, sizeof s);
    mp_assert_int(mp__arena_stats(&s), 0);
    return s;
}

static void bad_args(void **state)
{
    mp_lock_t *l = NULL;
    mp_rlock_t *rl = NULL;
    mp_assert_int(mp_lock_new(&l), 0);
    mp_assert_int(mp_rlock_new(&rl), 0);
    mp_value_t *v0 = NULL;
    mp_array_t *a0 = NULL;
    mp_assert_int(mp_value_new(&v0, MP_TYPE_INT, 0, NULL, NULL), 0);
    mp_assert_int(mp_array_new(&a0, MP_TYPE_INT, 0, 2, NULL, NULL), 0);
    mp_value_free(v0);
    mp_array_free(a0);
    mp__arena_stats_t s0 = arena_stats();
    mp_value_t *v = (mp_value_t *)&s0;
    mp_array_t *a = (mp_array_t *)&s0;
    const mp_shared_opts_t bad_opts[] = {
        {.lock_kind = (mp_shared_lock_kind_t)9},
        {.lock_kind = (mp_shared_lock_kind_t)-1},
        {.lock_kind = MP_SHARED_LOCK_LOCK},
        {.lock_kind = MP_SHARED_LOCK_RLOCK},
        {.lock_kind = MP_SHARED_LOCK_LOCK, .rlock = rl},
        {.lock_kind = MP_SHARED_LOCK_RLOCK, .lock = l},
        {.lock_kind = MP_SHARED_LOCK_LOCK, .lock = l, .rlock = rl},
        {.lock_kind = MP_SHARED_LOCK_LOCK, .lock = (mp_lock_t *)rl}, /* wrong kind */
        {.lock_kind = MP_SHARED_LOCK_RLOCK, .rlock = (mp_rlock_t *)l},
        {.lock_kind = MP_SHARED_LOCK_NONE, .lock = l},
        {.lock_kind = MP_SHARED_LOCK_DEFAULT, .rlock = rl},
    };
    for (size_t i = 0; i < sizeof bad_opts / sizeof bad_opts[0]; i++) {
        mp_assert_int(mp_value_new(&v, MP_TYPE_INT, 0, NULL, &bad_opts[i]), -EINVAL);
        mp_assert_int(mp_array_new(&a, MP_TYPE_INT, 0, 3, NULL, &bad_opts[i]), -EINVAL);
    }
    mp_assert_int(mp_value_new(NULL, MP_TYPE_INT, 0, NULL, NULL), -EINVAL);
    mp_assert_int(mp_array_new(NULL, MP_TYPE_INT, 0, 1, NULL, NULL), -EINVAL);
    const int bad_types[] = {0, -1, MP_TYPE_STRUCT + 1, 1000};
    for (size_t i = 0; i < sizeof bad_types / sizeof bad_types[0]; i++) {
        mp_assert_int(mp_value_new(&v, (mp_type_t)bad_types[i], 0, NULL, NULL), -EINVAL);
        mp_assert_int(mp_rawvalue_new(&v, (mp_type_t)bad_types[i], 4, NULL), -EINVAL);
        mp_assert_int(mp_array_new(&a, (mp_type_t)bad_types[i], 0, 1, NULL, NULL), -EINVAL);
        mp_assert_int(mp_rawarray_new(&a, (mp_type_t)bad_types[i], 4, 1, NULL), -EINVAL);
    }
    /* Struct sizes: 0, absurd; a size given for a plain type. */
    mp_assert_int(mp_value_new(&v, MP_TYPE_STRUCT, 0, NULL, NULL), -EINVAL);
    mp_assert_int(mp_value_new(&v, MP_TYPE_STRUCT, MP_SHARED_STRUCT_MAX + 1, NULL, NULL), -EINVAL);
    mp_assert_int(mp_value_new(&v, MP_TYPE_STRUCT, SIZE_MAX, NULL, NULL), -EINVAL);
    mp_assert_int(mp_value_new(&v, MP_TYPE_INT, 4, NULL, NULL), -EINVAL);
    mp_assert_int(mp_array_new(&a, MP_TYPE_STRUCT, 0, 1, NULL, NULL), -EINVAL);
    mp_assert_int(mp_array_new(&a, MP_TYPE_DOUBLE, 8, 1, NULL, NULL), -EINVAL);
    /* n * size overflows: -EINVAL; fits size_t but not the arena: -ENOMEM. */
    mp_assert_int(mp_array_new(&a, MP_TYPE_LLONG, 0, SIZE_MAX / 4, NULL, NULL), -EINVAL);
    mp_assert_int(mp_array_new(&a, MP_TYPE_STRUCT, 1024, SIZE_MAX / 512, NULL, NULL), -EINVAL);
    mp_assert_int(mp_array_new(&a, MP_TYPE_UCHAR, 0, SIZE_MAX, NULL, NULL), -EINVAL);
    mp_assert_int(mp_rawarray_new(&a, MP_TYPE_UCHAR, 0, (size_t)1 << 50, NULL), -ENOMEM);
    mp_assert_int(mp_array_new(&a, MP_TYPE_UCHAR, 0, (size_t)1 << 50, NULL, NULL), -ENOMEM);
    /* Nothing was handed out, nothing was allocated. */
    assert_ptr_equal(v, (mp_value_t *)&s0);
    assert_ptr_equal(a, (mp_array_t *)&s0);
    mp__arena_stats_t s1 = arena_stats();
    mp_assert_int(s1.used, s0.used);
    /* Calls on NULL and on foreign pointers. */
    int x = 0;
    int64_t i64 = 0;
    double d = 0;
    mp_value_t *nv[] = {NULL, (mp_value_t *)&s0};
    mp_array_t *na[] = {NULL, (mp_array_t *)&s0};
    for (int i = 0; i < 2; i++) {
        mp_assert_int(mp_value_get(nv[i], &x), -EINVAL);
        mp_assert_int(mp_value_set(nv[i], &x), -EINVAL);
        mp_assert_int(mp_value_get_i64(nv[i], &i64), -EINVAL);
        mp_assert_int(mp_value_set_i64(nv[i], 1), -EINVAL);
        mp_assert_int(mp_value_get_double(nv[i], &d), -EINVAL);
        mp_assert_int(mp_value_set_double(nv[i], 1), -EINVAL);
        mp_assert_int(mp_value_add(nv[i], 1, &i64), -EINVAL);
        mp_assert_int(mp_value_add_double(nv[i], 1, &d), -EINVAL);
        mp_assert_int(mp_value_size(nv[i]), -EINVAL);
        mp_assert_int(mp_value_get_lock(nv[i], NULL, NULL), -EINVAL);
        mp_assert_int(mp_value_acquire(nv[i], 0), -EINVAL);
        mp_assert_int(mp_value_release(nv[i]), -EINVAL);
        assert_null(mp_value_ptr(nv[i]));
        mp_value_free(nv[i]);
        mp_assert_int(mp_array_len(na[i]), -EINVAL);
        mp_assert_int(mp_array_itemsize(na[i]), -EINVAL);
        mp_assert_int(mp_array_get(na[i], 0, &x), -EINVAL);
        mp_assert_int(mp_array_set(na[i], 0, &x), -EINVAL);
        mp_assert_int(mp_array_get_slice(na[i], 0, 1, &x), -EINVAL);
        mp_assert_int(mp_array_set_slice(na[i], 0, 1, &x), -EINVAL);
        mp_assert_int(mp_array_get_lock(na[i], NULL, NULL), -EINVAL);
        mp_assert_int(mp_array_acquire(na[i], 0), -EINVAL);
        mp_assert_int(mp_array_release(na[i]), -EINVAL);
        assert_null(mp_array_ptr(na[i]));
        mp_array_free(na[i]);
    }
    /* A Value is not an Array and the other way round; freed handles. */
    mp_assert_int(mp_value_new(&v, MP_TYPE_INT, 0, NULL, NULL), 0);
    mp_assert_int(mp_array_new(&a, MP_TYPE_INT, 0, 1, NULL, NULL), 0);
    mp_assert_int(mp_array_len((mp_array_t *)v), -EINVAL);
    mp_assert_int(mp_value_get((mp_value_t *)a, &x), -EINVAL);
    mp_assert_int(mp_value_get(v, NULL), -EINVAL);
    mp_assert_int(mp_value_set(v, NULL), -EINVAL);
    mp_assert_int(mp_value_get_i64(v, NULL), -EINVAL);
    mp_assert_int(mp_value_acquire(v, NAN), -EINVAL);
    mp_value_free(v);
    mp_array_free(a);
    mp_assert_int(mp_value_get(v, &x), -EINVAL);
    mp_assert_int(mp_array_get(a, 0, &x), -EINVAL);
    mp_value_free(v); /* twice: nothing happens */
    mp_array_free(a);
    mp_assert_int(arena_stats().used, s0.used);
    mp_lock_free(l);
    mp_rlock_free(rl);
}

/* ---- free in a child ------------------------------------------------------ */

/* t_free tries to free the parent's objects, then sets them. Codes: 10 the
 * value no longer works in the child, 11 the array. */
static int t_free(void *arg)
{
    board_t *b = *(board_t **)arg;
    mp_value_free(b->val);
    mp_array_free(b->arr);
    if (mp_value_set_i64(b->val, 11) != 0)
        return 10;
    int x = 12;
    if (mp_array_set(b->arr, 1, &x) != 0)
        return 11;
    return 0;
}

static void free_in_child(void **state)
{
    board_t *b = board_new();
    mp_assert_int(mp_value_new(&b->val, MP_TYPE_INT, 0, NULL, NULL), 0);
    mp_assert_int(mp_array_new(&b->arr, MP_TYPE_INT, 0, 2, NULL, NULL), 0);
    mp__arena_stats_t s0 = arena_stats();
    static mp_party_t y;
    mp_party_start(&y, 1, t_free, &b, sizeof b);
    mp_assert_int(mp_party_join(&y), 0);
    int64_t x = 0;
    mp_assert_int(mp_value_get_i64(b->val, &x), 0);
    mp_assert_int(x, 11);
    int e = 0;
    mp_assert_int(mp_array_get(b->arr, 1, &e), 0);
    mp_assert_int(e, 12);
    mp_assert_int(mp_value_add(b->val, 1, &x), 0);
    mp_assert_int(x, 12);
    /* The child allocated nothing either (its start may allocate, so only
     * the parent's objects are checked: they are all still in use). */
    mp__arena_stats_t s1 = arena_stats();
    if (s1.used < s0.used)
        mp_test_fail("the arena holds %zu bytes after a child's free, %zu before\n", s1.used,
                     s0.used);
    mp_value_free(b->val);
    mp_array_free(b->arr);
    mp__arena_free(b);
}

/* ---- a holder killed ------------------------------------------------------- */

/* t_hold takes the object's lock (Value if b->val, else Array), writes half
 * of an update and blocks until killed. Codes: 10 acquire failed. */
static int t_hold(void *arg)
{
    board_t *b = *(board_t **)arg;
    int rc = b->val ? mp_value_acquire(b->val, MP_FOREVER) : mp_array_acquire(b->arr, MP_FOREVER);
    if (rc != 0)
        return 10;
    if (b->val)
        *(int *)mp_value_ptr(b->val) = 100;
    mp_test_word_inc(&b->held);
    for (;;)
        mp_test_word_wait(&b->never, 1, MP_FOREVER);
}

static void holder_killed_value(void **state)
{
    board_t *b = board_new();
    mp_assert_int(mp_value_new(&b->val, MP_TYPE_INT, 0, NULL, NULL), 0);
    static mp_party_t y;
    mp_party_start(&y, 1, t_hold, &b, sizeof b);
    mp_test_wait_word(&b->held, 1, "the child holds the value's lock");
    mp_assert_int(mp_value_acquire(b->val, 0), -ETIMEDOUT);
    mp_party_kill(&y);
    int64_t x = -1;
    mp_assert_int(mp_value_add(b->val, 1, &x), -EOWNERDEAD); /* added, once told */
    mp_assert_int(x, 101);
    mp_assert_int(mp_value_add(b->val, 1, &x), 0);
    mp_assert_int(x, 102);
    mp_assert_int(mp_value_acquire(b->val, 0), 0); /* released after the add */
    mp_assert_int(mp_value_release(b->val), 0);
    mp_value_free(b->val);
    mp__arena_free(b);
}

/* The same for an Array's get_slice, and acquire itself gets -EOWNERDEAD. */
static void holder_killed_array(void **state)
{
    board_t *b = board_new();
    int init[3] = {1, 2, 3};
    mp_assert_int(mp_array_new(&b->arr, MP_TYPE_INT, 0, 3, init, NULL), 0);
    for (int round = 0; round < 2; round++) {
        static mp_party_t y;
        b->held = 0;
        mp_party_start(&y, 1, t_hold, &b, sizeof b);
        mp_test_wait_word(&b->held, 1, "the child holds the array's lock");
        mp_party_kill(&y);
        int out[3] = {0};
        if (round == 0) {
            mp_assert_int(mp_array_get_slice(b->arr, 0, 3, out), -EOWNERDEAD);
            mp_assert_int(out[2], 3);
            mp_assert_int(mp_array_get_slice(b->arr, 0, 3, out), 0);
        } else {
            mp_assert_int(mp_array_acquire(b->arr, MP_TEST_LONG), -EOWNERDEAD);
            mp_assert_int(mp_array_set(b->arr, 0, &init[2]), 0);
            mp_assert_int(mp_array_release(b->arr), 0);
            mp_assert_int(mp_array_get(b->arr, 0, out), 0);
            mp_assert_int(out[0], 3);
        }
    }
    mp_array_free(b->arr);
    mp__arena_free(b);
}

/* ---- no shared memory ---------------------------------------------------- */

/* When the arena cannot grow for the data, new is -ENOMEM and the RLock it
 * had made is released: the arena's bytes in use do not change. */
static void enomem_leaks_nothing(void **state)
{
    for (int lk = 0; lk < 3; lk++) {
        mp_lock_t *l = NULL;
        mp_assert_int(mp_lock_new(&l), 0);
        mp_shared_opts_t o = {.lock_kind = lk == 0   ? MP_SHARED_LOCK_DEFAULT
                                           : lk == 1 ? MP_SHARED_LOCK_NONE
                                                     : MP_SHARED_LOCK_LOCK,
                              .lock = lk == 2 ? l : NULL};
        mp__arena_stats_t s0 = arena_stats();
        size_t n = s0.mapped + ((size_t)64 << 20);
        mp_array_t *a = (mp_array_t *)&s0;
        mp_value_t *v = (mp_value_t *)&s0;
        mp__fault_arm(MP__SYS_FTRUNCATE, 1, ENOSPC);
        int rc = mp_array_new(&a, MP_TYPE_UCHAR, 0, n, NULL, &o);
        mp__fault_clear();
        mp_assert_int(rc, -ENOMEM);
        mp__fault_arm(MP__SYS_FTRUNCATE, 1, ENOSPC);
        rc = mp_value_new(&v, MP_TYPE_STRUCT, n, NULL, &o);
        mp__fault_clear();
        mp_assert_int(rc, -ENOMEM);
        assert_ptr_equal(a, (mp_array_t *)&s0);
        assert_ptr_equal(v, (mp_value_t *)&s0);
        mp__arena_stats_t s1 = arena_stats();
        if (s1.used != s0.used)
            mp_test_fail("lock kind %d: the arena holds %zu bytes after a failed new, %zu "
                         "before\n",
                         lk, s1.used, s0.used);
        if (lk == 0) { /* without the fault the same array is made */
            mp_assert_int(mp_array_new(&a, MP_TYPE_UCHAR, 0, n, NULL, &o), 0);
            unsigned char *p = mp_array_ptr(a);
            p[n - 1] = 1;
            mp_assert_int(mp_array_get(a, n - 1, p), 0);
            mp_assert_int(p[0], 1);
            mp_array_free(a);
            mp_assert_int(arena_stats().used, s0.used);
        }
        mp_lock_free(l);
    }
    const char *why = NULL;
    if (mp__arena_check(&why) != 0)
        mp_test_fail("arena check: %s\n", why ? why : "?");
}

/* ---- threads ----------------------------------------------------------------- */

static void counter_threads_and_processes(void **state)
{
    board_t *b = board_new();
    mp_assert_int(mp_value_new(&b->val, MP_TYPE_INT, 0, NULL, NULL), 0);
    static mp_party_t y[4];
    for (int i = 0; i < 4; i++)
        mp_party_start(&y[i], i % 2, t_add, &b, sizeof b);
    mp_test_wait_word(&b->ready, 4, "four counters running");
    mp_test_word_store(&b->held, 1);
    for (int i = 0; i < 4; i++)
        mp_assert_int(mp_party_join(&y[i]), 0);
    int64_t x = 0;
    mp_assert_int(mp_value_get_i64(b->val, &x), 0);
    mp_assert_int(x, 4 * INCR);
    mp_value_free(b->val);
    mp__arena_free(b);
}

static int warm_shared(void)
{
    mp_value_t *v = NULL;
    int rc = mp_value_new(&v, MP_TYPE_INT, 0, NULL, NULL);
    if (rc != 0)
        return rc;
    rc = mp_value_add(v, 1, NULL);
    mp_value_free(v);
    if (rc != 0)
        return rc;
    return mp_test_warm_child();
}

int main(int argc, char **argv)
{
    static const mp_test_case_t cases[] = {
        MP_TEST(typecodes),
        MP_TEST(every_type_value_array),
        MP_TEST(every_type_raw),
        MP_TEST(typed_helpers),
        MP_TEST_T(counter_add_exact, 120),
        MP_TEST_T(counter_get_set_race, 120),
        MP_TEST_T(counter_locked_get_set_exact, 120),
        MP_TEST_T(counter_threads_and_processes, 120),
        MP_TEST(callers_lock),
        MP_TEST(rlocks),
        MP_TEST(raw_has_no_lock),
        MP_TEST(array_prefix_sums),
        MP_TEST(array_slices_and_bad_indexes),
        MP_TEST(bad_args),
        MP_TEST(free_in_child),
        MP_TEST(holder_killed_value),
        MP_TEST(holder_killed_array),
        MP_TEST(enomem_leaks_nothing),
    };
    static const mp_test_config_t cfg = {
        .per_method = 1,
        .warmup = warm_shared,
    };
    return mp_test_main(argc, argv, cases, sizeof cases / sizeof cases[0], &cfg);
}

/* shared.c: Value, Array, RawValue and RawArray: typed data in the shared
 * arena with an optional robust lock (a Lock or RLock of sync.c).
 *
 * An object is one arena block: a header (magic, kind, creator pid, type,
 * element size, length, the lock) followed, 16-byte aligned, by the data.
 * The lock is a separate sync object (mp_rlock_new, or the caller's), so that
 * mp_value_get_lock hands out a real handle. The header is written once at
 * creation and never changes; the data is changed only under the lock (or by
 * the caller, for raw objects and through the _ptr calls).
 *
 * Lock order: the object's lock is a leaf (nothing else is taken under it).
 * MT-safe: yes. Fork-safe: yes (no process-local state). */
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "internal.h"

#define SH_MAGIC 0x6d707368u /* "mpsh" */
enum { K_VALUE = 1, K_ARRAY = 2 };

typedef struct {
    uint32_t magic;
    uint32_t kind;
    int32_t creator;
    uint32_t type;
    uint32_t lkind;    /* MP_SHARED_LOCK_NONE, _LOCK or _RLOCK */
    uint32_t own_lock; /* 1: the RLock was made by us, freed with us */
    uint64_t itemsize;
    uint64_t n;
    mp_lock_t *lock;
    mp_rlock_t *rlock;
} sh_t;

/* The data starts 16-byte aligned after the header (arena blocks are). */
#define SH_HDR (((sizeof(sh_t)) + 15) & ~(size_t)15)
#define SH_DATA(s) ((unsigned char *)(s) + SH_HDR)

struct mp_value {
    sh_t s;
};
struct mp_array {
    sh_t s;
};

/* ---- types --------------------------------------------------------------- */

static const struct {
    char code;
    unsigned char size;
    unsigned char is_int, is_float;
    int64_t min;
    uint64_t max;
} types[] = {
    [MP_TYPE_CHAR] = {'c', sizeof(char), 1, 0, CHAR_MIN, CHAR_MAX},
    [MP_TYPE_SCHAR] = {'b', sizeof(signed char), 1, 0, SCHAR_MIN, SCHAR_MAX},
    [MP_TYPE_UCHAR] = {'B', sizeof(unsigned char), 1, 0, 0, UCHAR_MAX},
    [MP_TYPE_SHORT] = {'h', sizeof(short), 1, 0, SHRT_MIN, SHRT_MAX},
    [MP_TYPE_USHORT] = {'H', sizeof(unsigned short), 1, 0, 0, USHRT_MAX},
    [MP_TYPE_INT] = {'i', sizeof(int), 1, 0, INT_MIN, INT_MAX},
    [MP_TYPE_UINT] = {'I', sizeof(unsigned), 1, 0, 0, UINT_MAX},
    [MP_TYPE_LONG] = {'l', sizeof(long), 1, 0, LONG_MIN, LONG_MAX},
    [MP_TYPE_ULONG] = {'L', sizeof(unsigned long), 1, 0, 0, ULONG_MAX},
    [MP_TYPE_LLONG] = {'q', sizeof(long long), 1, 0, LLONG_MIN, LLONG_MAX},
    [MP_TYPE_ULLONG] = {'Q', sizeof(unsigned long long), 1, 0, 0, ULLONG_MAX},
    [MP_TYPE_FLOAT] = {'f', sizeof(float), 0, 1, 0, 0},
    [MP_TYPE_DOUBLE] = {'d', sizeof(double), 0, 1, 0, 0},
};

static int type_known(int t)
{
    return t >= MP_TYPE_CHAR && t <= MP_TYPE_STRUCT;
}

int mp_type_from_code(int code)
{
    for (int t = MP_TYPE_CHAR; t < MP_TYPE_STRUCT; t++)
        if (code != 0 && types[t].code == code)
            return t;
    return -EINVAL;
}

int mp_type_size(mp_type_t t)
{
    if (!type_known((int)t) || t == MP_TYPE_STRUCT)
        return -EINVAL;
    return types[t].size;
}

/* The integer types, for load_int and store_int. */
/* clang-format off */
#define INT_TYPES(X)                          \
    X(MP_TYPE_CHAR, char)                     \
    X(MP_TYPE_SCHAR, signed char)             \
    X(MP_TYPE_UCHAR, unsigned char)           \
    X(MP_TYPE_SHORT, short)                   \
    X(MP_TYPE_USHORT, unsigned short)         \
    X(MP_TYPE_INT, int)                       \
    X(MP_TYPE_UINT, unsigned)                 \
    X(MP_TYPE_LONG, long)                     \
    X(MP_TYPE_ULONG, unsigned long)           \
    X(MP_TYPE_LLONG, long long)               \
    X(MP_TYPE_ULLONG, unsigned long long)
/* clang-format on */

/* in_i64 tells whether an unsigned value fits an int64_t (a function, so
 * that the check reads the same for every type). */
static int in_i64(uint64_t u)
{
    return u <= (uint64_t)INT64_MAX;
}

/* load_int reads the integer of type t at p into *v: -ERANGE if it is an
 * unsigned value above INT64_MAX (only unsigned long and long long can be). */
static int load_int(uint32_t t, const void *p, int64_t *v)
{
#define LOAD(K, T)                                                                                 \
    case K: {                                                                                      \
        T x_;                                                                                      \
        memcpy(&x_, p, sizeof x_);                                                                 \
        if ((T)-1 > 0 && !in_i64((uint64_t)x_))                                                    \
            return -ERANGE;                                                                        \
        *v = (int64_t)x_;                                                                          \
        return 0;                                                                                  \
    }
    switch (t) {
        INT_TYPES(LOAD)
    default:
        return -EINVAL;
    }
#undef LOAD
}

/* fits tells whether v is in the range of the integer type t. */
static int fits(uint32_t t, int64_t v)
{
    if (v < types[t].min)
        return 0;
    return v < 0 || (uint64_t)v <= types[t].max;
}

/* store_int writes v (which fits, see fits) as type t at p. */
static void store_int(uint32_t t, void *p, int64_t v)
{
#define STORE(K, T)                                                                                \
    case K: {                                                                                      \
        T x_ = (T)v;                                                                               \
        memcpy(p, &x_, sizeof x_);                                                                 \
        break;                                                                                     \
    }
    switch (t) {
        INT_TYPES(STORE)
    default:
        break;
    }
#undef STORE
}

static double load_fp(uint32_t t, const void *p)
{
    if (t == MP_TYPE_FLOAT) {
        float x;
        memcpy(&x, p, sizeof x);
        return x;
    }
    double x;
    memcpy(&x, p, sizeof x);
    return x;
}

static void store_fp(uint32_t t, void *p, double v)
{
    if (t == MP_TYPE_FLOAT) {
        float x = (float)v;
        memcpy(p, &x, sizeof x);
    } else {
        memcpy(p, &v, sizeof v);
    }
}

/* ---- objects --------------------------------------------------------------- */

static inline sh_t *sh_ok(const void *p, uint32_t kind)
{
    const sh_t *s = p;
    return s && s->magic == SH_MAGIC && s->kind == kind ? (sh_t *)s : NULL;
}

/* opts_check validates opts and tells which lock the object gets. */
static int opts_check(const mp_shared_opts_t *o, uint32_t *lkind)
{
    if (!o || o->lock_kind == MP_SHARED_LOCK_DEFAULT) {
        if (o && (o->lock || o->rlock))
            return -EINVAL;
        *lkind = MP_SHARED_LOCK_RLOCK;
        return 0;
    }
    switch (o->lock_kind) {
    case MP_SHARED_LOCK_NONE:
        if (o->lock || o->rlock)
            return -EINVAL;
        break;
    case MP_SHARED_LOCK_LOCK:
        if (!o->lock || o->rlock || mp_lock_locked(o->lock) < 0)
            return -EINVAL;
        break;
    case MP_SHARED_LOCK_RLOCK:
        if (!o->rlock || o->lock || mp_rlock_count(o->rlock) < 0)
            return -EINVAL;
        break;
    default:
        return -EINVAL;
    }
    *lkind = (uint32_t)o->lock_kind;
    return 0;
}

/* sh_new makes the object: the RLock first (when it is ours), then the
 * block; on failure everything made so far is released. */
static int sh_new(sh_t **out, uint32_t kind, mp_type_t type, size_t struct_size, size_t n,
                  const void *init, const mp_shared_opts_t *opts)
{
    uint32_t lkind;
    if (!out || !type_known((int)type) || opts_check(opts, &lkind) < 0)
        return -EINVAL;
    size_t isz;
    if (type == MP_TYPE_STRUCT) {
        if (struct_size == 0 || struct_size > MP_SHARED_STRUCT_MAX)
            return -EINVAL;
        isz = struct_size;
    } else {
        if (struct_size != 0)
            return -EINVAL;
        isz = types[type].size;
    }
    size_t bytes, total;
    if (__builtin_mul_overflow(isz, n, &bytes) || __builtin_add_overflow(bytes, SH_HDR, &total))
        return -EINVAL;

    mp_rlock_t *own = NULL;
    sh_t *s = NULL;
    int rc = -ENOMEM;
    if (!opts || opts->lock_kind == MP_SHARED_LOCK_DEFAULT) {
        rc = mp_rlock_new(&own);
        if (rc < 0)
            goto fail;
    }
    s = mp__arena_alloc_raw(total);
    if (!s) {
        rc = -ENOMEM;
        goto fail;
    }
    memset(s, 0, SH_HDR);
    if (init)
        memcpy(SH_DATA(s), init, bytes);
    else
        memset(SH_DATA(s), 0, bytes);
    s->kind = kind;
    s->creator = getpid();
    s->type = (uint32_t)type;
    s->lkind = lkind;
    s->own_lock = own != NULL;
    s->itemsize = isz;
    s->n = n;
    s->lock = lkind == MP_SHARED_LOCK_LOCK ? opts->lock : NULL;
    s->rlock = own ? own : lkind == MP_SHARED_LOCK_RLOCK ? opts->rlock : NULL;
    s->magic = SH_MAGIC;
    *out = s;
    return 0;
fail:
    mp_rlock_free(own);
    return rc;
}

static void sh_free(void *p, uint32_t kind)
{
    sh_t *s = sh_ok(p, kind);
    if (!s || !mp__arena_contains(s) || s->creator != getpid())
        return;
    s->magic = 0;
    if (s->own_lock)
        mp_rlock_free(s->rlock);
    mp__arena_free(s);
}

/* sh_lock takes the object's lock: 0 or -EOWNERDEAD (held), or another
 * negative code (not held). */
static int sh_lock(sh_t *s, double timeout)
{
    switch (s->lkind) {
    case MP_SHARED_LOCK_LOCK:
        return mp_lock_acquire(s->lock, timeout);
    case MP_SHARED_LOCK_RLOCK:
        for (;;) {
            int r = mp_rlock_acquire(s->rlock, timeout);
            if (r != -EINTR)
                return r;
        }
    default:
        return 0;
    }
}

static void sh_unlock(sh_t *s)
{
    if (s->lkind == MP_SHARED_LOCK_LOCK)
        mp_lock_release(s->lock);
    else if (s->lkind == MP_SHARED_LOCK_RLOCK)
        mp_rlock_release(s->rlock);
}

/* sh_copy copies len bytes at offset off of the data to (dir 0) or from
 * (dir 1) buf, under the lock. */
static int sh_copy(sh_t *s, size_t off, size_t len, void *buf, int dir)
{
    int rc = sh_lock(s, MP_FOREVER);
    if (rc < 0 && rc != -EOWNERDEAD)
        return rc;
    if (dir)
        memcpy(SH_DATA(s) + off, buf, len);
    else
        memcpy(buf, SH_DATA(s) + off, len);
    sh_unlock(s);
    return rc;
}

static int sh_get_lock(sh_t *s, mp_lock_t **lock, mp_rlock_t **rlock)
{
    if (!s)
        return -EINVAL;
    if (lock)
        *lock = s->lock;
    if (rlock)
        *rlock = s->rlock;
    return (int)s->lkind;
}

static int sh_acquire(sh_t *s, double timeout)
{
    if (!s || isnan(timeout))
        return -EINVAL;
    if (s->lkind == MP_SHARED_LOCK_NONE)
        return -ENOLCK;
    return sh_lock(s, timeout);
}

static int sh_release(sh_t *s)
{
    if (!s)
        return -EINVAL;
    switch (s->lkind) {
    case MP_SHARED_LOCK_LOCK:
        return mp_lock_release(s->lock);
    case MP_SHARED_LOCK_RLOCK:
        return mp_rlock_release(s->rlock);
    default:
        return -ENOLCK;
    }
}

/* ---- Value ----------------------------------------------------------------- */

int mp_value_new(mp_value_t **out, mp_type_t type, size_t struct_size, const void *init,
                 const mp_shared_opts_t *opts)
{
    return sh_new((sh_t **)out, K_VALUE, type, struct_size, 1, init, opts);
}

int mp_rawvalue_new(mp_value_t **out, mp_type_t type, size_t struct_size, const void *init)
{
    const mp_shared_opts_t raw = {.lock_kind = MP_SHARED_LOCK_NONE};
    return mp_value_new(out, type, struct_size, init, &raw);
}

int mp_value_get(mp_value_t *v, void *out)
{
    sh_t *s = sh_ok(v, K_VALUE);
    if (!s || !out)
        return -EINVAL;
    return sh_copy(s, 0, s->itemsize, out, 0);
}

int mp_value_set(mp_value_t *v, const void *in)
{
    sh_t *s = sh_ok(v, K_VALUE);
    if (!s || !in)
        return -EINVAL;
    return sh_copy(s, 0, s->itemsize, (void *)in, 1);
}

int mp_value_get_i64(mp_value_t *v, int64_t *out)
{
    sh_t *s = sh_ok(v, K_VALUE);
    if (!s || !out || s->type == MP_TYPE_STRUCT || !types[s->type].is_int)
        return -EINVAL;
    unsigned char buf[8];
    int rc = sh_copy(s, 0, s->itemsize, buf, 0);
    if (rc < 0 && rc != -EOWNERDEAD)
        return rc;
    int64_t x;
    int lr = load_int(s->type, buf, &x);
    if (lr < 0)
        return lr;
    *out = x;
    return rc;
}

int mp_value_set_i64(mp_value_t *v, int64_t x)
{
    sh_t *s = sh_ok(v, K_VALUE);
    if (!s || s->type == MP_TYPE_STRUCT || !types[s->type].is_int)
        return -EINVAL;
    if (!fits(s->type, x))
        return -ERANGE;
    unsigned char buf[8];
    store_int(s->type, buf, x);
    return sh_copy(s, 0, s->itemsize, buf, 1);
}

int mp_value_get_double(mp_value_t *v, double *out)
{
    sh_t *s = sh_ok(v, K_VALUE);
    if (!s || !out || s->type == MP_TYPE_STRUCT || !types[s->type].is_float)
        return -EINVAL;
    unsigned char buf[8];
    int rc = sh_copy(s, 0, s->itemsize, buf, 0);
    if (rc < 0 && rc != -EOWNERDEAD)
        return rc;
    *out = load_fp(s->type, buf);
    return rc;
}

int mp_value_set_double(mp_value_t *v, double x)
{
    sh_t *s = sh_ok(v, K_VALUE);
    if (!s || s->type == MP_TYPE_STRUCT || !types[s->type].is_float)
        return -EINVAL;
    unsigned char buf[8];
    store_fp(s->type, buf, x);
    return sh_copy(s, 0, s->itemsize, buf, 1);
}

int mp_value_add(mp_value_t *v, int64_t delta, int64_t *result)
{
    sh_t *s = sh_ok(v, K_VALUE);
    if (!s || s->type == MP_TYPE_STRUCT || !types[s->type].is_int)
        return -EINVAL;
    int rc = sh_lock(s, MP_FOREVER);
    if (rc < 0 && rc != -EOWNERDEAD)
        return rc;
    int64_t x = 0, sum = 0;
    int er = load_int(s->type, SH_DATA(s), &x);
    if (er == 0 && (__builtin_add_overflow(x, delta, &sum) || !fits(s->type, sum)))
        er = -ERANGE;
    if (er == 0)
        store_int(s->type, SH_DATA(s), sum);
    sh_unlock(s);
    if (er < 0)
        return er;
    if (result)
        *result = sum;
    return rc;
}

int mp_value_add_double(mp_value_t *v, double delta, double *result)
{
    sh_t *s = sh_ok(v, K_VALUE);
    if (!s || s->type == MP_TYPE_STRUCT || !types[s->type].is_float)
        return -EINVAL;
    int rc = sh_lock(s, MP_FOREVER);
    if (rc < 0 && rc != -EOWNERDEAD)
        return rc;
    double x = load_fp(s->type, SH_DATA(s)) + delta;
    store_fp(s->type, SH_DATA(s), x);
    x = load_fp(s->type, SH_DATA(s)); /* as stored (a float rounds) */
    sh_unlock(s);
    if (result)
        *result = x;
    return rc;
}

long mp_value_size(mp_value_t *v)
{
    sh_t *s = sh_ok(v, K_VALUE);
    return s ? (long)s->itemsize : -EINVAL;
}

int mp_value_get_lock(mp_value_t *v, mp_lock_t **lock, mp_rlock_t **rlock)
{
    return sh_get_lock(sh_ok(v, K_VALUE), lock, rlock);
}

int mp_value_acquire(mp_value_t *v, double timeout)
{
    return sh_acquire(sh_ok(v, K_VALUE), timeout);
}
int mp_value_release(mp_value_t *v)
{
    return sh_release(sh_ok(v, K_VALUE));
}

void *mp_value_ptr(mp_value_t *v)
{
    sh_t *s = sh_ok(v, K_VALUE);
    return s ? SH_DATA(s) : NULL;
}

void mp_value_free(mp_value_t *v)
{
    sh_free(v, K_VALUE);
}

/* ---- Array ----------------------------------------------------------------- */

int mp_array_new(mp_array_t **out, mp_type_t type, size_t struct_size, size_t n, const void *init,
                 const mp_shared_opts_t *opts)
{
    return sh_new((sh_t **)out, K_ARRAY, type, struct_size, n, init, opts);
}

int mp_rawarray_new(mp_array_t **out, mp_type_t type, size_t struct_size, size_t n,
                    const void *init)
{
    const mp_shared_opts_t raw = {.lock_kind = MP_SHARED_LOCK_NONE};
    return mp_array_new(out, type, struct_size, n, init, &raw);
}

long mp_array_len(mp_array_t *a)
{
    sh_t *s = sh_ok(a, K_ARRAY);
    return s ? (long)s->n : -EINVAL;
}

long mp_array_itemsize(mp_array_t *a)
{
    sh_t *s = sh_ok(a, K_ARRAY);
    return s ? (long)s->itemsize : -EINVAL;
}

int mp_array_get(mp_array_t *a, size_t i, void *out)
{
    sh_t *s = sh_ok(a, K_ARRAY);
    if (!s || !out || i >= s->n)
        return -EINVAL;
    return sh_copy(s, i * s->itemsize, s->itemsize, out, 0);
}

int mp_array_set(mp_array_t *a, size_t i, const void *in)
{
    sh_t *s = sh_ok(a, K_ARRAY);
    if (!s || !in || i >= s->n)
        return -EINVAL;
    return sh_copy(s, i * s->itemsize, s->itemsize, (void *)in, 1);
}

/* slice_ok checks [start, stop) and the buffer of a slice call. */
static int slice_ok(const sh_t *s, size_t start, size_t stop, const void *buf)
{
    return s && start <= stop && stop <= s->n && (buf || start == stop);
}

int mp_array_get_slice(mp_array_t *a, size_t start, size_t stop, void *out)
{
    sh_t *s = sh_ok(a, K_ARRAY);
    if (!slice_ok(s, start, stop, out))
        return -EINVAL;
    if (start == stop)
        return 0;
    return sh_copy(s, start * s->itemsize, (stop - start) * s->itemsize, out, 0);
}

int mp_array_set_slice(mp_array_t *a, size_t start, size_t stop, const void *in)
{
    sh_t *s = sh_ok(a, K_ARRAY);
    if (!slice_ok(s, start, stop, in))
        return -EINVAL;
    if (start == stop)
        return 0;
    return sh_copy(s, start * s->itemsize, (stop - start) * s->itemsize, (void *)in, 1);
}

void *mp_array_ptr(mp_array_t *a)
{
    sh_t *s = sh_ok(a, K_ARRAY);
    return s ? SH_DATA(s) : NULL;
}

int mp_array_get_lock(mp_array_t *a, mp_lock_t **lock, mp_rlock_t **rlock)
{
    return sh_get_lock(sh_ok(a, K_ARRAY), lock, rlock);
}

int mp_array_acquire(mp_array_t *a, double timeout)
{
    return sh_acquire(sh_ok(a, K_ARRAY), timeout);
}
int mp_array_release(mp_array_t *a)
{
    return sh_release(sh_ok(a, K_ARRAY));
}

void mp_array_free(mp_array_t *a)
{
    sh_free(a, K_ARRAY);
}

/* manager_data.c: the manager's data kinds (manager_int.h): dict, Namespace,
 * list, Value and Array, and their client shorthands (mp_dict_*, mp_list_*,
 * mp_mvalue_*), which are thin calls of mp_proxy_call.
 *
 * Stored values. dict and list keep every key and value as its packed
 * msgpack bytes (mgr_store): storing copies one buffer, replying appends it
 * (mgr_pack_raw) without decoding anything. Values compare by those bytes;
 * msgpack-c packs every integer in its smallest form, so an integer equals
 * the same integer however the client sent it. Python compares by value, and
 * the differences follow from bytes: 1, 1.0 and True are three different
 * keys (Python: one); 0.0 and -0.0 differ; a NaN equals a NaN with the same
 * bits; maps are equal only with their pairs in the same order; str and
 * bytes differ (as in Python 3). The same equality serves list.index, count,
 * remove and contains.
 *
 * dict. An insertion-ordered hash table in CPython's layout: the entries in
 * insertion order (a deleted one is a hole until the next rebuild) and an
 * open-addressing index of 2^k slots (empty, dummy, or an entry's number)
 * probed as CPython probes (i = 5i + 1 + perturb). Keys hash with SipHash-1-3
 * under a random key per dict, so colliding keys cannot be chosen by a
 * client. Filled slots (live + dummies) stay at most 2/3 of the index; a
 * rebuild compacts the live entries and sizes the table for twice what it
 * must hold, so inserts are amortized O(1) also under delete/insert churn.
 * A Namespace is a dict whose keys must be strings.
 *
 * list. A growable array of stored values. Indexes follow Python: negative
 * ones count from the end; l[i] outside is -ERANGE; slice bounds, insert
 * positions and index()'s start/stop are clamped; nil is an open bound.
 *
 * Value and Array hold typed C numbers (one 8-byte cell per item) for the
 * typecodes of Python's sharedctypes: integers checked against their C
 * type's range (-ERANGE, also for the result of incr), 'f' rounded to a C
 * float as ctypes stores it, 'd', 'c' (bytes of length 1; an Array's slice
 * is an array of such items, not one bytes value) and 'u' (a string of one
 * character). A Value made with the typecode alone starts at zero. Divergences
 * from Python's manager Value/Array (which store any object, and an
 * array.array): the typecode is enforced; an Array keeps its length (slice
 * assignment must match the range, as for ctypes arrays); an out-of-range
 * integer is -ERANGE where ctypes would wrap it; booleans are not numbers;
 * an Array is made from its items, not from a count.
 *
 * Numbers. incr adds integers exactly while the sum fits int64 or uint64
 * (else -EOVERFLOW; Python's ints do not overflow) and floats as doubles; an
 * integer plus a float is a float, as in Python.
 *
 * Failure: every method checks its arguments first and changes nothing when
 * it fails; the ones that store several values (extend, update, set_slice)
 * pack and reserve everything before changing anything. Allocations are
 * sized by what the request carries (items it holds), never by a count it
 * only claims.
 *
 * MT-safe: the kinds run under the server mutex (manager_int.h); the
 * shorthands are as safe as mp_proxy_call. */
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "manager_int.h"

/* ---- packed values ---------------------------------------------------------- */

/* A stored value: packed bytes (malloc'd). */
typedef struct {
    unsigned char *p;
    size_t n;
} blob_t;

/* store packs v into a new blob. */
static int store(const mp_val_t *v, blob_t *out)
{
    void *buf = NULL;
    size_t len = 0;
    int rc = mgr_store(v, &buf, &len);
    if (rc < 0)
        return rc;
    out->p = buf;
    out->n = len;
    return 0;
}

static void blobs_free(blob_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(b[i].p);
}

/* store_all packs n values into a new array of blobs: all or nothing. */
static int store_all(const mp_val_t *items, size_t n, blob_t **out)
{
    *out = NULL;
    if (n == 0)
        return 0;
    if (n > SIZE_MAX / sizeof(blob_t))
        return -ENOMEM;
    blob_t *b = malloc(n * sizeof *b);
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        int rc = store(&items[i], &b[i]);
        if (rc < 0) {
            blobs_free(b, i);
            free(b);
            return rc;
        }
    }
    *out = b;
    return 0;
}

static int blob_is(const blob_t *b, const unsigned char *p, size_t n)
{
    return b->n == n && memcmp(b->p, p, n) == 0;
}

/* A probe: a value packed for comparing or hashing, in a small local buffer
 * when it fits (no allocation for the usual key), else on the heap. */
#define KB_LOCAL 128
typedef struct {
    unsigned char *p; /* local or malloc'd */
    size_t len, cap;
    unsigned char local[KB_LOCAL];
} kbuf_t;

static int kb_write(void *data, const char *buf, size_t n)
{
    kbuf_t *b = data;
    if (n == 0)
        return 0;
    if (n > b->cap - b->len) {
        if (n > SIZE_MAX / 2 - b->len)
            return -1;
        size_t cap = b->cap * 2;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *np = b->p == b->local ? malloc(cap) : realloc(b->p, cap);
        if (!np)
            return -1;
        if (b->p == b->local)
            memcpy(np, b->local, b->len);
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, buf, n);
    b->len += n;
    return 0;
}

static void kb_init(kbuf_t *b)
{
    b->p = b->local;
    b->len = 0;
    b->cap = KB_LOCAL;
}

static void kb_release(kbuf_t *b)
{
    if (b->p != b->local)
        free(b->p);
    kb_init(b);
}

/* kb_pack packs v into b (initialized by the caller). */
static int kb_pack(kbuf_t *b, const mp_val_t *v)
{
    int rc = mp__val_check(v);
    if (rc < 0)
        return rc;
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, kb_write);
    return mp__val_pack_into(&pk, v);
}

/* kb_take hands the packed bytes over as a malloc'd buffer (b is empty after). */
static int kb_take(kbuf_t *b, unsigned char **out)
{
    if (b->p == b->local) {
        unsigned char *p = malloc(b->len);
        if (!p)
            return -ENOMEM;
        memcpy(p, b->local, b->len);
        *out = p;
    } else {
        *out = b->p;
    }
    kb_init(b);
    return 0;
}

/* ---- replies ----------------------------------------------------------------- */

static int pk_rc(int r)
{
    return r ? -ENOMEM : 0;
}

static int pack_nil(msgpack_packer *pk)
{
    return pk_rc(msgpack_pack_nil(pk));
}

static int pack_bool(msgpack_packer *pk, int b)
{
    return pk_rc(b ? msgpack_pack_true(pk) : msgpack_pack_false(pk));
}

static int pack_size(msgpack_packer *pk, size_t n)
{
    return pk_rc(msgpack_pack_uint64(pk, n));
}

static int pack_blob(msgpack_packer *pk, const blob_t *b)
{
    return mgr_pack_raw(pk, b->p, b->n);
}

/* ---- numbers ------------------------------------------------------------------- */

static int is_num(const mp_val_t *v)
{
    return v->type == MP_VAL_INT || v->type == MP_VAL_UINT || v->type == MP_VAL_FLOAT;
}

static double num_f(const mp_val_t *v)
{
    return v->type == MP_VAL_FLOAT  ? v->v.f
           : v->type == MP_VAL_UINT ? (double)v->v.u
                                    : (double)v->v.i;
}

/* raw_num reads a stored value that is exactly one msgpack number.
 * Returns 0, or -EINVAL for anything else. */
static int raw_num(const unsigned char *p, size_t n, mp_val_t *out)
{
    if (n == 0)
        return -EINVAL;
    unsigned char t = p[0];
    if (t <= 0x7f || t >= 0xe0) {
        if (n != 1)
            return -EINVAL;
        *out = mp_val_int(t <= 0x7f ? (int64_t)t : (int64_t)(int8_t)t);
        return 0;
    }
    int w;
    if (t >= 0xcc && t <= 0xcf)
        w = 1 << (t - 0xcc);
    else if (t >= 0xd0 && t <= 0xd3)
        w = 1 << (t - 0xd0);
    else if (t == 0xca)
        w = 4;
    else if (t == 0xcb)
        w = 8;
    else
        return -EINVAL;
    if (n != (size_t)w + 1)
        return -EINVAL;
    uint64_t x = 0;
    for (int i = 1; i <= w; i++)
        x = x << 8 | p[i];
    if (t == 0xca) {
        uint32_t u32 = (uint32_t)x;
        float f;
        memcpy(&f, &u32, sizeof f);
        *out = mp_val_float(f);
    } else if (t == 0xcb) {
        double d;
        memcpy(&d, &x, sizeof d);
        *out = mp_val_float(d);
    } else if (t <= 0xcf) {
        *out = mp_val_uint(x);
    } else {
        *out = mp_val_int(w == 1   ? (int8_t)x
                          : w == 2 ? (int16_t)x
                          : w == 4 ? (int32_t)x
                                   : (int64_t)x);
    }
    return 0;
}

/* num_add: *out = a + b. Integers stay integers while the exact sum fits
 * int64 or uint64 (-EOVERFLOW otherwise); with a float the sum is a double.
 * -EINVAL when either is not a number. */
static int num_add(const mp_val_t *a, const mp_val_t *b, mp_val_t *out)
{
    if (!is_num(a) || !is_num(b))
        return -EINVAL;
    if (a->type == MP_VAL_FLOAT || b->type == MP_VAL_FLOAT) {
        *out = mp_val_float(num_f(a) + num_f(b));
        return 0;
    }
    int64_t ri = 0;
    uint64_t ru = 0;
    int oi, ou;
#define ADD_EXACT(x, y)                                                                            \
    do {                                                                                           \
        oi = __builtin_add_overflow((x), (y), &ri);                                                \
        ou = __builtin_add_overflow((x), (y), &ru);                                                \
    } while (0)
    if (a->type == MP_VAL_INT && b->type == MP_VAL_INT)
        ADD_EXACT(a->v.i, b->v.i);
    else if (a->type == MP_VAL_INT)
        ADD_EXACT(a->v.i, b->v.u);
    else if (b->type == MP_VAL_INT)
        ADD_EXACT(a->v.u, b->v.i);
    else
        ADD_EXACT(a->v.u, b->v.u);
#undef ADD_EXACT
    if (!oi)
        *out = mp_val_int(ri);
    else if (!ou)
        *out = mp_val_uint(ru);
    else
        return -EOVERFLOW;
    return 0;
}

/* incr_blob: the stored number in cur plus delta, stored anew in *out and
 * packed as the reply (nothing changes yet: the caller commits). A missing
 * value (cur NULL) counts as the integer 0. */
static int incr_blob(const blob_t *cur, const mp_val_t *delta, blob_t *out, msgpack_packer *pk)
{
    if (!is_num(delta))
        return -EINVAL;
    mp_val_t now = mp_val_int(0), sum;
    if (cur && raw_num(cur->p, cur->n, &now) < 0)
        return -EINVAL;
    int rc = num_add(&now, delta, &sum);
    if (rc == 0)
        rc = store(&sum, out);
    if (rc == 0 && (rc = pack_blob(pk, out)) < 0) {
        free(out->p);
        out->p = NULL;
    }
    return rc;
}

/* ---- indexes (Python's rules) ----------------------------------------------------- */

/* back_of: for a negative i, how far from the end it counts (-i, without
 * overflow at INT64_MIN). */
static uint64_t back_of(int64_t i)
{
    return (uint64_t)(-(i + 1)) + 1;
}

/* index_of: l[i] of a sequence of n: a negative i counts from the end.
 * -ERANGE outside (also for integers beyond int64), -EINVAL for a
 * non-integer. */
static int index_of(const mp_val_t *v, size_t n, size_t *out)
{
    if (v->type == MP_VAL_UINT)
        return -ERANGE;
    if (v->type != MP_VAL_INT)
        return -EINVAL;
    int64_t i = v->v.i;
    if (i < 0) {
        uint64_t b = back_of(i);
        if (b > n)
            return -ERANGE;
        *out = n - (size_t)b;
    } else {
        if ((uint64_t)i >= n)
            return -ERANGE;
        *out = (size_t)i;
    }
    return 0;
}

/* clamp_of: a slice bound or insert position: negative counts from the end,
 * then clamped to [0, n]. nil is dflt when open bounds are allowed, else
 * -EINVAL (as any non-integer). */
static int clamp_of(const mp_val_t *v, size_t n, int open, size_t dflt, size_t *out)
{
    switch (v->type) {
    case MP_VAL_NIL:
        if (!open)
            return -EINVAL;
        *out = dflt;
        return 0;
    case MP_VAL_UINT:
        *out = n;
        return 0;
    case MP_VAL_INT:
        break;
    default:
        return -EINVAL;
    }
    int64_t i = v->v.i;
    if (i < 0) {
        uint64_t b = back_of(i);
        *out = b >= n ? 0 : n - (size_t)b;
    } else {
        *out = (uint64_t)i >= n ? n : (size_t)i;
    }
    return 0;
}

/* range_of: l[start:stop] with step 1: [*lo, *hi), hi never below lo. */
static int range_of(const mp_val_t *start, const mp_val_t *stop, size_t n, size_t *lo, size_t *hi)
{
    int rc = clamp_of(start, n, 1, 0, lo);
    if (rc == 0)
        rc = clamp_of(stop, n, 1, n, hi);
    if (rc == 0 && *hi < *lo)
        *hi = *lo;
    return rc;
}

/* ---- methods ------------------------------------------------------------------------- */

/* One call: its arguments and the reply's packer. */
typedef struct {
    const mp_val_t *a;
    size_t n;
    msgpack_packer *pk;
} call_t;

typedef struct {
    const char *name;
    int (*fn)(void *self, const call_t *c);
    unsigned char lo, hi; /* argument counts accepted */
} method_t;

/* dispatch runs the method called name: -ENOSYS if there is none (names
 * starting with '_' never are), -EINVAL for a wrong number of arguments. */
static int dispatch(const method_t *m, size_t nm, void *self, const char *name,
                    const mp_val_t *args, size_t nargs, msgpack_packer *pk)
{
    for (size_t i = 0; i < nm; i++) {
        if (strcmp(m[i].name, name) != 0)
            continue;
        if (nargs < m[i].lo || nargs > m[i].hi || (nargs && !args))
            return -EINVAL;
        call_t c = {args, nargs, pk};
        return m[i].fn(self, &c);
    }
    return -ENOSYS;
}

#define NELEMS(t) (sizeof(t) / sizeof((t)[0]))

/* ---- SipHash-1-3 ----------------------------------------------------------------- */

static uint64_t rotl64(uint64_t x, int b)
{
    return x << b | x >> (64 - b);
}

#define SIPROUND(v0, v1, v2, v3)                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = rotl64(v1, 13);                                                                       \
        v1 ^= v0;                                                                                  \
        v0 = rotl64(v0, 32);                                                                       \
        v2 += v3;                                                                                  \
        v3 = rotl64(v3, 16);                                                                       \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = rotl64(v3, 21);                                                                       \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = rotl64(v1, 17);                                                                       \
        v1 ^= v2;                                                                                  \
        v2 = rotl64(v2, 32);                                                                       \
    } while (0)

/* siphash13 hashes in[0..len) under the key (k0, k1). Words are read in
 * host order: the hash only has to agree with itself. */
static uint64_t siphash13(const unsigned char *in, size_t len, uint64_t k0, uint64_t k1)
{
    uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
    uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
    size_t i = 0;
    for (; len - i >= 8; i += 8) {
        uint64_t m;
        memcpy(&m, in + i, sizeof m);
        v3 ^= m;
        SIPROUND(v0, v1, v2, v3);
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t j = 0; j < len - i; j++)
        b |= (uint64_t)in[i + j] << (8 * j);
    v3 ^= b;
    SIPROUND(v0, v1, v2, v3);
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* hash_key: a fresh random key (from the clock, the pid and salt when the
 * kernel has no randomness to give without blocking). */
static void hash_key(uint64_t k[2], const void *salt)
{
    if (getrandom(k, 2 * sizeof k[0], GRND_NONBLOCK) == (ssize_t)(2 * sizeof k[0]))
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t x = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    x ^= (uint64_t)(uintptr_t)salt ^ (uint64_t)getpid() << 40;
    k[0] = splitmix64(&x);
    k[1] = splitmix64(&x);
}

/* ---- dict and Namespace ------------------------------------------------------------ */

typedef struct {
    unsigned char *k, *v; /* packed key and value; k NULL: deleted */
    size_t klen, vlen;
    uint64_t h;
} ent_t;

typedef struct {
    ent_t *ents;  /* insertion order, holes where deleted */
    size_t nents; /* entries used (no hole at the end) */
    size_t cap;   /* entries allocated */
    size_t live;  /* keys in the dict */
    size_t *idx;  /* mask + 1 slots: 0 empty, DUMMY, else entry + 1 */
    size_t mask;
    size_t filled;  /* slots not empty (live + dummies) */
    uint64_t sk[2]; /* the hash key */
    int ns;         /* Namespace: keys are strings */
} dict_t;

#define DUMMY SIZE_MAX
#define NOPE SIZE_MAX

/* The usable slots of an index of n slots: at most 2/3 filled, so that a
 * probe always ends at an empty slot. */
static size_t usable(size_t slots)
{
    return slots / 3 * 2 + (slots % 3) * 2 / 3;
}

/* A key being looked up: packed and hashed. */
typedef struct {
    kbuf_t kb;
    uint64_t h;
} dkey_t;

/* dkey_make packs and hashes key v (a Namespace takes strings only).
 * Release k with dkey_release whatever it returns. */
static int dkey_make(const dict_t *d, dkey_t *k, const mp_val_t *v)
{
    kb_init(&k->kb);
    if (d->ns && v->type != MP_VAL_STR)
        return -EINVAL;
    int rc = kb_pack(&k->kb, v);
    if (rc == 0)
        k->h = siphash13(k->kb.p, k->kb.len, d->sk[0], d->sk[1]);
    return rc;
}

static void dkey_release(dkey_t *k)
{
    kb_release(&k->kb);
}

/* dict_find returns the entry holding key (k, klen, hash h), or NOPE; *slot
 * gets the index slot holding it, or (not found, with an index) the slot a
 * new entry would take: the probe's first dummy, else its empty slot. */
static size_t dict_find(const dict_t *d, const unsigned char *k, size_t klen, uint64_t h,
                        size_t *slot)
{
    if (!d->idx)
        return NOPE;
    size_t i = (size_t)h & d->mask, reuse = NOPE;
    uint64_t perturb = h;
    for (;;) {
        size_t s = d->idx[i];
        if (s == 0) {
            *slot = reuse != NOPE ? reuse : i;
            return NOPE;
        }
        if (s == DUMMY) {
            if (reuse == NOPE)
                reuse = i;
        } else {
            const ent_t *e = &d->ents[s - 1];
            if (e->h == h && e->klen == klen && memcmp(e->k, k, klen) == 0) {
                *slot = i;
                return s - 1;
            }
        }
        perturb >>= 5;
        i = (i * 5 + (size_t)perturb + 1) & d->mask;
    }
}

static size_t dict_lookup(const dict_t *d, const dkey_t *k, size_t *slot)
{
    size_t dummy;
    return dict_find(d, k->kb.p, k->kb.len, k->h, slot ? slot : &dummy);
}

/* dict_reserve makes room for extra new keys, so that inserting them cannot
 * fail: entries to write them in, and index slots under the load limit.
 * When either is short it rebuilds: the live entries compacted in order, an
 * index sized for twice (live + extra). On failure nothing changed. */
static int dict_reserve(dict_t *d, size_t extra)
{
    size_t want, fill;
    if (__builtin_add_overflow(d->nents, extra, &want) ||
        __builtin_add_overflow(d->filled, extra, &fill))
        return -ENOMEM;
    if (d->idx && want <= d->cap && fill <= usable(d->mask + 1))
        return 0;
    size_t need, target;
    if (__builtin_add_overflow(d->live, extra, &need) ||
        __builtin_mul_overflow(need, (size_t)2, &target))
        return -ENOMEM;
    size_t slots = 8;
    while (usable(slots) < target) {
        if (slots > SIZE_MAX / 2 / sizeof(size_t))
            return -ENOMEM;
        slots *= 2;
    }
    size_t ecap = usable(slots);
    if (ecap > SIZE_MAX / sizeof(ent_t))
        return -ENOMEM;
    size_t *idx = calloc(slots, sizeof *idx);
    ent_t *ents = malloc(ecap * sizeof *ents);
    if (!idx || !ents) {
        free(idx);
        free(ents);
        return -ENOMEM;
    }
    size_t n = 0, mask = slots - 1;
    for (size_t j = 0; j < d->nents; j++) {
        if (!d->ents[j].k)
            continue;
        ents[n] = d->ents[j];
        size_t i = (size_t)ents[n].h & mask;
        uint64_t perturb = ents[n].h;
        while (idx[i]) {
            perturb >>= 5;
            i = (i * 5 + (size_t)perturb + 1) & mask;
        }
        idx[i] = ++n;
    }
    free(d->ents);
    free(d->idx);
    d->ents = ents;
    d->idx = idx;
    d->nents = d->live = d->filled = n;
    d->cap = ecap;
    d->mask = mask;
    return 0;
}

/* dict_insert adds a key known to be absent (room reserved), taking k and v. */
static void dict_insert(dict_t *d, unsigned char *k, size_t klen, uint64_t h, blob_t v)
{
    size_t slot = 0;
    dict_find(d, k, klen, h, &slot);
    if (d->idx[slot] == 0)
        d->filled++;
    d->ents[d->nents] = (ent_t){k, v.p, klen, v.n, h};
    d->idx[slot] = ++d->nents;
    d->live++;
}

/* dict_put sets key k to v (taking v): replaces the value in place (the key
 * keeps its position, as in Python), or appends a new key. On failure v is
 * still the caller's. */
static int dict_put(dict_t *d, dkey_t *k, blob_t *v)
{
    size_t e = dict_lookup(d, k, NULL);
    if (e != NOPE) {
        free(d->ents[e].v);
        d->ents[e].v = v->p;
        d->ents[e].vlen = v->n;
        v->p = NULL;
        return 0;
    }
    size_t klen = k->kb.len;
    unsigned char *kp = NULL;
    int rc = dict_reserve(d, 1);
    if (rc == 0)
        rc = kb_take(&k->kb, &kp);
    if (rc < 0)
        return rc;
    dict_insert(d, kp, klen, k->h, *v);
    v->p = NULL;
    return 0;
}

/* dict_remove deletes entry e found at index slot. Trailing holes are
 * trimmed so that popitem stays O(1). */
static void dict_remove(dict_t *d, size_t e, size_t slot)
{
    free(d->ents[e].k);
    free(d->ents[e].v);
    d->ents[e].k = d->ents[e].v = NULL;
    d->idx[slot] = DUMMY;
    d->live--;
    while (d->nents && !d->ents[d->nents - 1].k)
        d->nents--;
}

static void dict_clear(dict_t *d)
{
    for (size_t i = 0; i < d->nents; i++) {
        free(d->ents[i].k);
        free(d->ents[i].v);
    }
    free(d->ents);
    free(d->idx);
    d->ents = NULL;
    d->idx = NULL;
    d->nents = d->cap = d->live = d->mask = d->filled = 0;
}

/* One pair of an update, packed. */
typedef struct {
    blob_t k, v;
    uint64_t h;
} pair_t;

/* dict_update sets every pair of src (a map, or an array of [key, value]
 * arrays): everything is checked and packed first, then room is reserved,
 * so it applies entirely or not at all. Later duplicates win, as in Python. */
static int dict_update(dict_t *d, const mp_val_t *src)
{
    size_t n;
    if (src->type == MP_VAL_MAP) {
        n = src->v.m.n;
    } else if (src->type == MP_VAL_ARRAY) {
        n = src->v.a.n;
        for (size_t i = 0; i < n; i++)
            if (src->v.a.items[i].type != MP_VAL_ARRAY || src->v.a.items[i].v.a.n != 2)
                return -EINVAL;
    } else {
        return -EINVAL;
    }
    if (n == 0)
        return 0;
    if (n > SIZE_MAX / sizeof(pair_t))
        return -ENOMEM;
    pair_t *p = calloc(n, sizeof *p);
    if (!p)
        return -ENOMEM;
    int rc = 0;
    size_t i;
    for (i = 0; rc == 0 && i < n; i++) {
        const mp_val_t *k, *v;
        if (src->type == MP_VAL_MAP) {
            k = &src->v.m.items[i].key;
            v = &src->v.m.items[i].val;
        } else {
            k = &src->v.a.items[i].v.a.items[0];
            v = &src->v.a.items[i].v.a.items[1];
        }
        if (d->ns && k->type != MP_VAL_STR)
            rc = -EINVAL;
        if (rc == 0)
            rc = store(k, &p[i].k);
        if (rc == 0)
            rc = store(v, &p[i].v);
        if (rc == 0)
            p[i].h = siphash13(p[i].k.p, p[i].k.n, d->sk[0], d->sk[1]);
    }
    if (rc == 0)
        rc = dict_reserve(d, n);
    for (i = 0; i < n; i++) {
        if (rc < 0) {
            free(p[i].k.p);
            free(p[i].v.p);
            continue;
        }
        size_t e = dict_find(d, p[i].k.p, p[i].k.n, p[i].h, &(size_t){0});
        if (e == NOPE) {
            dict_insert(d, p[i].k.p, p[i].k.n, p[i].h, p[i].v);
        } else {
            free(p[i].k.p);
            free(d->ents[e].v);
            d->ents[e].v = p[i].v.p;
            d->ents[e].vlen = p[i].v.n;
        }
    }
    free(p);
    return rc;
}

static int d_set(void *self, const call_t *c)
{
    dict_t *d = self;
    dkey_t k;
    blob_t v = {NULL, 0};
    int rc = dkey_make(d, &k, &c->a[0]);
    if (rc == 0)
        rc = store(&c->a[1], &v);
    if (rc == 0)
        rc = pack_nil(c->pk);
    if (rc == 0)
        rc = dict_put(d, &k, &v);
    free(v.p);
    dkey_release(&k);
    return rc;
}

/* get [k]: -ENOENT when missing; get_default [k, default]. */
static int d_get_common(dict_t *d, const call_t *c, const mp_val_t *dflt)
{
    dkey_t k;
    int rc = dkey_make(d, &k, &c->a[0]);
    if (rc == 0) {
        size_t e = dict_lookup(d, &k, NULL);
        if (e != NOPE)
            rc = mgr_pack_raw(c->pk, d->ents[e].v, d->ents[e].vlen);
        else
            rc = dflt ? mgr_pack_val(c->pk, dflt) : -ENOENT;
    }
    dkey_release(&k);
    return rc;
}

static int d_get(void *self, const call_t *c)
{
    return d_get_common(self, c, NULL);
}

static int d_get_default(void *self, const call_t *c)
{
    return d_get_common(self, c, &c->a[1]);
}

/* pop [k] (-ENOENT when missing) or [k, default]; del [k] (-ENOENT). */
static int d_pop_common(dict_t *d, const call_t *c, int reply)
{
    dkey_t k;
    int rc = dkey_make(d, &k, &c->a[0]);
    if (rc == 0) {
        size_t slot, e = dict_lookup(d, &k, &slot);
        if (e == NOPE)
            rc = reply && c->n == 2 ? mgr_pack_val(c->pk, &c->a[1]) : -ENOENT;
        else if ((rc = reply ? mgr_pack_raw(c->pk, d->ents[e].v, d->ents[e].vlen)
                             : pack_nil(c->pk)) == 0)
            dict_remove(d, e, slot);
    }
    dkey_release(&k);
    return rc;
}

static int d_pop(void *self, const call_t *c)
{
    return d_pop_common(self, c, 1);
}

static int d_del(void *self, const call_t *c)
{
    return d_pop_common(self, c, 0);
}

static int d_contains(void *self, const call_t *c)
{
    dict_t *d = self;
    dkey_t k;
    int rc = dkey_make(d, &k, &c->a[0]);
    if (rc == 0)
        rc = pack_bool(c->pk, dict_lookup(d, &k, NULL) != NOPE);
    dkey_release(&k);
    return rc;
}

static int d_len(void *self, const call_t *c)
{
    dict_t *d = self;
    return pack_size(c->pk, d->live);
}

enum { D_KEYS, D_VALUES, D_ITEMS };

/* keys, values (arrays) and items (a map), in insertion order. */
static int d_iter(dict_t *d, const call_t *c, int what)
{
    int rc = pk_rc(what == D_ITEMS ? msgpack_pack_map(c->pk, d->live)
                                   : msgpack_pack_array(c->pk, d->live));
    for (size_t i = 0; rc == 0 && i < d->nents; i++) {
        const ent_t *e = &d->ents[i];
        if (!e->k)
            continue;
        if (what != D_VALUES)
            rc = mgr_pack_raw(c->pk, e->k, e->klen);
        if (rc == 0 && what != D_KEYS)
            rc = mgr_pack_raw(c->pk, e->v, e->vlen);
    }
    return rc;
}

static int d_keys(void *self, const call_t *c)
{
    return d_iter(self, c, D_KEYS);
}

static int d_values(void *self, const call_t *c)
{
    return d_iter(self, c, D_VALUES);
}

static int d_items(void *self, const call_t *c)
{
    return d_iter(self, c, D_ITEMS);
}

/* incr [k, delta]: d[k] += delta, a missing key counting as 0. */
static int d_incr(void *self, const call_t *c)
{
    dict_t *d = self;
    dkey_t k;
    blob_t v = {NULL, 0};
    int rc = dkey_make(d, &k, &c->a[0]);
    if (rc == 0) {
        size_t e = dict_lookup(d, &k, NULL);
        blob_t cur = {NULL, 0};
        if (e != NOPE)
            cur = (blob_t){d->ents[e].v, d->ents[e].vlen};
        rc = incr_blob(e != NOPE ? &cur : NULL, &c->a[1], &v, c->pk);
    }
    if (rc == 0)
        rc = dict_put(d, &k, &v);
    free(v.p);
    dkey_release(&k);
    return rc;
}

/* setdefault [k] or [k, default]: d[k], set to default (nil) when missing. */
static int d_setdefault(void *self, const call_t *c)
{
    dict_t *d = self;
    dkey_t k;
    blob_t v = {NULL, 0};
    mp_val_t nil = mp_val_nil();
    int rc = dkey_make(d, &k, &c->a[0]);
    if (rc == 0) {
        size_t e = dict_lookup(d, &k, NULL);
        if (e != NOPE) {
            rc = mgr_pack_raw(c->pk, d->ents[e].v, d->ents[e].vlen);
        } else {
            rc = store(c->n == 2 ? &c->a[1] : &nil, &v);
            if (rc == 0)
                rc = pack_blob(c->pk, &v);
            if (rc == 0)
                rc = dict_put(d, &k, &v);
        }
    }
    free(v.p);
    dkey_release(&k);
    return rc;
}

/* popitem: the last pair as [k, v], removed (-ENOENT when empty). */
static int d_popitem(void *self, const call_t *c)
{
    dict_t *d = self;
    if (d->live == 0)
        return -ENOENT;
    size_t e = d->nents - 1; /* never a hole: they are trimmed */
    ent_t *en = &d->ents[e];
    size_t slot;
    if (dict_find(d, en->k, en->klen, en->h, &slot) != e)
        return -EINVAL; /* cannot happen */
    int rc = pk_rc(msgpack_pack_array(c->pk, 2));
    if (rc == 0)
        rc = mgr_pack_raw(c->pk, en->k, en->klen);
    if (rc == 0)
        rc = mgr_pack_raw(c->pk, en->v, en->vlen);
    if (rc == 0)
        dict_remove(d, e, slot);
    return rc;
}

static int d_clear(void *self, const call_t *c)
{
    int rc = pack_nil(c->pk);
    if (rc == 0)
        dict_clear(self);
    return rc;
}

static int d_update(void *self, const call_t *c)
{
    int rc = dict_update(self, &c->a[0]);
    return rc < 0 ? rc : pack_nil(c->pk);
}

/* clang-format off */
static const method_t dict_methods[] = {
    {"set", d_set, 2, 2},
    {"get", d_get, 1, 1},
    {"get_default", d_get_default, 2, 2},
    {"contains", d_contains, 1, 1},
    {"incr", d_incr, 2, 2},
    {"del", d_del, 1, 1},
    {"len", d_len, 0, 0},
    {"keys", d_keys, 0, 0},
    {"values", d_values, 0, 0},
    {"items", d_items, 0, 0},
    {"copy", d_items, 0, 0},
    {"pop", d_pop, 1, 2},
    {"popitem", d_popitem, 0, 0},
    {"setdefault", d_setdefault, 1, 2},
    {"clear", d_clear, 0, 0},
    {"update", d_update, 1, 1},
};
/* clang-format on */

static void dict_destroy(mgr_obj_t *o)
{
    dict_t *d = o->state;
    if (d) {
        dict_clear(d);
        free(d);
    }
    o->state = NULL;
}

/* create: [] or [map] (or [array of [k, v]]) for the initial pairs. */
static int dict_create_ns(mgr_obj_t *o, const mp_val_t *args, size_t nargs, int ns)
{
    if (nargs > 1 || (nargs && !args))
        return -EINVAL;
    dict_t *d = calloc(1, sizeof *d);
    if (!d)
        return -ENOMEM;
    d->ns = ns;
    hash_key(d->sk, d);
    int rc = nargs ? dict_update(d, &args[0]) : 0;
    if (rc < 0) {
        dict_clear(d);
        free(d);
        return rc;
    }
    o->state = d;
    return 0;
}

static int dict_create(mgr_server_t *s, mgr_obj_t *o, const mp_val_t *args, size_t nargs)
{
    (void)s;
    return dict_create_ns(o, args, nargs, 0);
}

static int ns_create(mgr_server_t *s, mgr_obj_t *o, const mp_val_t *args, size_t nargs)
{
    (void)s;
    return dict_create_ns(o, args, nargs, 1);
}

static int dict_call(mgr_server_t *s, mgr_obj_t *o, mgr_client_t *cl, const char *method,
                     const mp_val_t *args, size_t nargs, mp__deadline_t d, msgpack_packer *pk)
{
    (void)s;
    (void)cl;
    (void)d;
    return dispatch(dict_methods, NELEMS(dict_methods), o->state, method, args, nargs, pk);
}

const mgr_kind_t mgr_kind_dict = {
    .name = "dict",
    .create = dict_create,
    .destroy = dict_destroy,
    .call = dict_call,
};

const mgr_kind_t mgr_kind_namespace = {
    .name = "Namespace",
    .create = ns_create,
    .destroy = dict_destroy,
    .call = dict_call,
};

/* ---- list ----------------------------------------------------------------------------- */

typedef struct {
    blob_t *it;
    size_t n, cap;
} list_t;

/* list_reserve makes room for extra more items (doubling). */
static int list_reserve(list_t *l, size_t extra)
{
    size_t need;
    if (__builtin_add_overflow(l->n, extra, &need))
        return -ENOMEM;
    if (need <= l->cap)
        return 0;
    size_t cap = l->cap < 8 ? 8 : l->cap;
    while (cap < need) {
        if (cap > SIZE_MAX / 2 / sizeof(blob_t))
            return -ENOMEM;
        cap *= 2;
    }
    if (cap > SIZE_MAX / sizeof(blob_t))
        return -ENOMEM;
    blob_t *it = realloc(l->it, cap * sizeof *it);
    if (!it)
        return -ENOMEM;
    l->it = it;
    l->cap = cap;
    return 0;
}

/* list_splice replaces items [lo, hi) by the m blobs of add (taken);
 * room for the growth must be reserved. */
static void list_splice(list_t *l, size_t lo, size_t hi, blob_t *add, size_t m)
{
    blobs_free(l->it + lo, hi - lo);
    if (m != hi - lo && l->n > hi)
        memmove(l->it + lo + m, l->it + hi, (l->n - hi) * sizeof *l->it);
    if (m)
        memcpy(l->it + lo, add, m * sizeof *add);
    l->n = l->n - (hi - lo) + m;
}

static void list_clear(list_t *l)
{
    blobs_free(l->it, l->n);
    free(l->it);
    l->it = NULL;
    l->n = l->cap = 0;
}

/* list_add_at stores v and inserts it before item at (at <= n). */
static int list_add_at(list_t *l, size_t at, const mp_val_t *v, msgpack_packer *pk)
{
    blob_t b;
    int rc = store(v, &b);
    if (rc < 0)
        return rc;
    if ((rc = list_reserve(l, 1)) == 0 && (rc = pack_nil(pk)) == 0) {
        list_splice(l, at, at, &b, 1);
        return 0;
    }
    free(b.p);
    return rc;
}

/* list_replace_range: l[lo:hi] = items (all or nothing). */
static int list_replace_range(list_t *l, size_t lo, size_t hi, const mp_val_t *items, size_t m,
                              msgpack_packer *pk)
{
    blob_t *add = NULL;
    int rc = store_all(items, m, &add);
    if (rc < 0)
        return rc;
    if (m > hi - lo)
        rc = list_reserve(l, m - (hi - lo));
    if (rc == 0)
        rc = pack_nil(pk);
    if (rc == 0)
        list_splice(l, lo, hi, add, m);
    else
        blobs_free(add, m);
    free(add);
    return rc;
}

static int l_append(void *self, const call_t *c)
{
    list_t *l = self;
    return list_add_at(l, l->n, &c->a[0], c->pk);
}

static int l_extend(void *self, const call_t *c)
{
    list_t *l = self;
    if (c->a[0].type != MP_VAL_ARRAY)
        return -EINVAL;
    return list_replace_range(l, l->n, l->n, c->a[0].v.a.items, c->a[0].v.a.n, c->pk);
}

static int l_insert(void *self, const call_t *c)
{
    list_t *l = self;
    size_t at;
    int rc = clamp_of(&c->a[0], l->n, 0, 0, &at);
    return rc < 0 ? rc : list_add_at(l, at, &c->a[1], c->pk);
}

static int l_pop(void *self, const call_t *c)
{
    list_t *l = self;
    if (l->n == 0)
        return -ERANGE;
    size_t i = l->n - 1;
    int rc = c->n ? index_of(&c->a[0], l->n, &i) : 0;
    if (rc == 0)
        rc = pack_blob(c->pk, &l->it[i]);
    if (rc == 0)
        list_splice(l, i, i + 1, NULL, 0);
    return rc;
}

static int l_get(void *self, const call_t *c)
{
    list_t *l = self;
    size_t i;
    int rc = index_of(&c->a[0], l->n, &i);
    return rc < 0 ? rc : pack_blob(c->pk, &l->it[i]);
}

static int l_set(void *self, const call_t *c)
{
    list_t *l = self;
    size_t i;
    blob_t b;
    int rc = index_of(&c->a[0], l->n, &i);
    if (rc == 0)
        rc = store(&c->a[1], &b);
    if (rc < 0)
        return rc;
    if ((rc = pack_nil(c->pk)) < 0) {
        free(b.p);
        return rc;
    }
    free(l->it[i].p);
    l->it[i] = b;
    return 0;
}

static int l_del(void *self, const call_t *c)
{
    list_t *l = self;
    size_t i;
    int rc = index_of(&c->a[0], l->n, &i);
    if (rc == 0)
        rc = pack_nil(c->pk);
    if (rc == 0)
        list_splice(l, i, i + 1, NULL, 0);
    return rc;
}

static int l_len(void *self, const call_t *c)
{
    list_t *l = self;
    return pack_size(c->pk, l->n);
}

static int l_slice(void *self, const call_t *c)
{
    list_t *l = self;
    size_t lo, hi;
    int rc = range_of(&c->a[0], &c->a[1], l->n, &lo, &hi);
    if (rc == 0)
        rc = pk_rc(msgpack_pack_array(c->pk, hi - lo));
    for (size_t i = lo; rc == 0 && i < hi; i++)
        rc = pack_blob(c->pk, &l->it[i]);
    return rc;
}

static int l_set_slice(void *self, const call_t *c)
{
    list_t *l = self;
    size_t lo, hi;
    int rc = range_of(&c->a[0], &c->a[1], l->n, &lo, &hi);
    if (rc == 0 && c->a[2].type != MP_VAL_ARRAY)
        rc = -EINVAL;
    if (rc < 0)
        return rc;
    return list_replace_range(l, lo, hi, c->a[2].v.a.items, c->a[2].v.a.n, c->pk);
}

static int l_incr(void *self, const call_t *c)
{
    list_t *l = self;
    size_t i;
    blob_t b = {NULL, 0};
    int rc = index_of(&c->a[0], l->n, &i);
    if (rc == 0)
        rc = incr_blob(&l->it[i], &c->a[1], &b, c->pk);
    if (rc < 0)
        return rc;
    free(l->it[i].p);
    l->it[i] = b;
    return 0;
}

enum { L_INDEX, L_COUNT, L_REMOVE, L_CONTAINS };

/* index [v] or [v, start] or [v, start, stop] (-ENOENT: Python's
 * ValueError), count [v], remove [v] (-ENOENT), contains [v]. */
static int l_search(list_t *l, const call_t *c, int what)
{
    size_t lo = 0, hi = l->n;
    int rc = 0;
    if (c->n >= 2)
        rc = clamp_of(&c->a[1], l->n, 0, 0, &lo);
    if (rc == 0 && c->n >= 3)
        rc = clamp_of(&c->a[2], l->n, 0, 0, &hi);
    if (rc < 0)
        return rc;
    kbuf_t kb;
    kb_init(&kb);
    if ((rc = kb_pack(&kb, &c->a[0])) < 0) {
        kb_release(&kb);
        return rc;
    }
    size_t count = 0, at = NOPE;
    for (size_t i = lo; i < hi; i++) {
        if (!blob_is(&l->it[i], kb.p, kb.len))
            continue;
        if (at == NOPE)
            at = i;
        count++;
        if (what != L_COUNT)
            break;
    }
    kb_release(&kb);
    switch (what) {
    case L_COUNT:
        return pack_size(c->pk, count);
    case L_CONTAINS:
        return pack_bool(c->pk, at != NOPE);
    case L_INDEX:
        return at == NOPE ? -ENOENT : pack_size(c->pk, at);
    default:
        if (at == NOPE)
            return -ENOENT;
        if ((rc = pack_nil(c->pk)) == 0)
            list_splice(l, at, at + 1, NULL, 0);
        return rc;
    }
}

static int l_index(void *self, const call_t *c)
{
    return l_search(self, c, L_INDEX);
}

static int l_count(void *self, const call_t *c)
{
    return l_search(self, c, L_COUNT);
}

static int l_remove(void *self, const call_t *c)
{
    return l_search(self, c, L_REMOVE);
}

static int l_contains(void *self, const call_t *c)
{
    return l_search(self, c, L_CONTAINS);
}

static int l_reverse(void *self, const call_t *c)
{
    list_t *l = self;
    int rc = pack_nil(c->pk);
    for (size_t i = 0; rc == 0 && i < l->n / 2; i++) {
        blob_t t = l->it[i];
        l->it[i] = l->it[l->n - 1 - i];
        l->it[l->n - 1 - i] = t;
    }
    return rc;
}

static int l_clear(void *self, const call_t *c)
{
    int rc = pack_nil(c->pk);
    if (rc == 0)
        list_clear(self);
    return rc;
}

/* clang-format off */
static const method_t list_methods[] = {
    {"append", l_append, 1, 1},
    {"get", l_get, 1, 1},
    {"set", l_set, 2, 2},
    {"len", l_len, 0, 0},
    {"pop", l_pop, 0, 1},
    {"extend", l_extend, 1, 1},
    {"insert", l_insert, 2, 2},
    {"del", l_del, 1, 1},
    {"slice", l_slice, 2, 2},
    {"set_slice", l_set_slice, 3, 3},
    {"incr", l_incr, 2, 2},
    {"index", l_index, 1, 3},
    {"count", l_count, 1, 1},
    {"remove", l_remove, 1, 1},
    {"contains", l_contains, 1, 1},
    {"reverse", l_reverse, 0, 0},
    {"clear", l_clear, 0, 0},
};
/* clang-format on */

static void list_destroy(mgr_obj_t *o)
{
    list_t *l = o->state;
    if (l) {
        list_clear(l);
        free(l);
    }
    o->state = NULL;
}

/* create: [] or [array] for the initial items. */
static int list_create(mgr_server_t *s, mgr_obj_t *o, const mp_val_t *args, size_t nargs)
{
    (void)s;
    if (nargs > 1 || (nargs && (!args || args[0].type != MP_VAL_ARRAY)))
        return -EINVAL;
    list_t *l = calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    if (nargs && args[0].v.a.n) {
        blob_t *add = NULL;
        size_t m = args[0].v.a.n;
        int rc = store_all(args[0].v.a.items, m, &add);
        if (rc == 0 && (rc = list_reserve(l, m)) == 0)
            list_splice(l, 0, 0, add, m);
        else if (rc < 0 && add)
            blobs_free(add, m);
        free(add);
        if (rc < 0) {
            free(l->it);
            free(l);
            return rc;
        }
    }
    o->state = l;
    return 0;
}

static int list_call(mgr_server_t *s, mgr_obj_t *o, mgr_client_t *cl, const char *method,
                     const mp_val_t *args, size_t nargs, mp__deadline_t d, msgpack_packer *pk)
{
    (void)s;
    (void)cl;
    (void)d;
    return dispatch(list_methods, NELEMS(list_methods), o->state, method, args, nargs, pk);
}

const mgr_kind_t mgr_kind_list = {
    .name = "list",
    .create = list_create,
    .destroy = list_destroy,
    .call = list_call,
};

/* ---- typecodes (Value, Array) ------------------------------------------------------- */

enum { TC_INT, TC_UINT, TC_FLOAT, TC_CHAR, TC_WCHAR };

typedef struct {
    char code;
    unsigned char kind;
    unsigned char f32; /* 'f': rounded to a C float */
    int64_t min;
    uint64_t max;
} tc_t;

/* Python's sharedctypes typecodes; 'l' and 'L' are 64-bit (Linux LP64). */
/* clang-format off */
static const tc_t tcs[] = {
    {'b', TC_INT, 0, SCHAR_MIN, SCHAR_MAX},
    {'B', TC_UINT, 0, 0, UCHAR_MAX},
    {'h', TC_INT, 0, SHRT_MIN, SHRT_MAX},
    {'H', TC_UINT, 0, 0, USHRT_MAX},
    {'i', TC_INT, 0, INT_MIN, INT_MAX},
    {'I', TC_UINT, 0, 0, UINT_MAX},
    {'l', TC_INT, 0, INT64_MIN, INT64_MAX},
    {'L', TC_UINT, 0, 0, UINT64_MAX},
    {'q', TC_INT, 0, INT64_MIN, INT64_MAX},
    {'Q', TC_UINT, 0, 0, UINT64_MAX},
    {'f', TC_FLOAT, 1, 0, 0},
    {'d', TC_FLOAT, 0, 0, 0},
    {'c', TC_CHAR, 0, 0, 0},
    {'u', TC_WCHAR, 0, 0, 0},
};
/* clang-format on */

/* One item: an integer (i or u by the typecode's sign), a double, a byte
 * ('c') or a code point ('u'), all in u. */
typedef union {
    int64_t i;
    uint64_t u;
    double f;
} cell_t;

/* tc_of reads a typecode argument: a string of one known character. */
static int tc_of(const mp_val_t *v, const tc_t **out)
{
    if (v->type != MP_VAL_STR || v->v.s.len != 1)
        return -EINVAL;
    for (size_t i = 0; i < NELEMS(tcs); i++)
        if (tcs[i].code == v->v.s.ptr[0]) {
            *out = &tcs[i];
            return 0;
        }
    return -EINVAL;
}

/* to_f32 rounds x to a C float as a store into a ctypes c_float does:
 * beyond FLT_MAX (after rounding) it is infinite. */
static double to_f32(double x)
{
    if (isfinite(x) && (x > FLT_MAX || x < -FLT_MAX)) {
        double big = 0x1.ffffffp+127; /* halfway between FLT_MAX and 2^128 */
        if (x > 0)
            return x >= big ? (double)INFINITY : FLT_MAX;
        return x <= -big ? -(double)INFINITY : -FLT_MAX;
    }
    return (float)x;
}

/* utf8_one decodes s[0..n) as exactly one UTF-8 character. */
static int utf8_one(const char *s, size_t n, uint64_t *cp)
{
    const unsigned char *p = (const unsigned char *)s;
    if (n == 0)
        return -EINVAL;
    uint32_t c, min;
    size_t len;
    if (p[0] < 0x80) {
        c = p[0];
        len = 1;
        min = 0;
    } else if ((p[0] & 0xe0) == 0xc0) {
        c = p[0] & 0x1fu;
        len = 2;
        min = 0x80;
    } else if ((p[0] & 0xf0) == 0xe0) {
        c = p[0] & 0x0fu;
        len = 3;
        min = 0x800;
    } else if ((p[0] & 0xf8) == 0xf0) {
        c = p[0] & 0x07u;
        len = 4;
        min = 0x10000;
    } else {
        return -EINVAL;
    }
    if (n != len)
        return -EINVAL;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return -EINVAL;
        c = c << 6 | (p[i] & 0x3fu);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return -EINVAL;
    *cp = c;
    return 0;
}

/* utf8_put encodes code point c (valid) into out; returns its length. */
static size_t utf8_put(uint64_t c, char out[4])
{
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xc0 | c >> 6);
        out[1] = (char)(0x80 | (c & 0x3f));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xe0 | c >> 12);
        out[1] = (char)(0x80 | (c >> 6 & 0x3f));
        out[2] = (char)(0x80 | (c & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | c >> 18);
    out[1] = (char)(0x80 | (c >> 12 & 0x3f));
    out[2] = (char)(0x80 | (c >> 6 & 0x3f));
    out[3] = (char)(0x80 | (c & 0x3f));
    return 4;
}

/* cell_from converts v for typecode t: -EINVAL for the wrong kind of value,
 * -ERANGE for an integer outside the C type. */
static int cell_from(const tc_t *t, const mp_val_t *v, cell_t *out)
{
    switch (t->kind) {
    case TC_INT:
        if (v->type == MP_VAL_UINT)
            return -ERANGE;
        if (v->type != MP_VAL_INT)
            return -EINVAL;
        if (v->v.i < t->min || v->v.i > (int64_t)t->max)
            return -ERANGE;
        out->i = v->v.i;
        return 0;
    case TC_UINT:
        if (v->type == MP_VAL_INT) {
            if (v->v.i < 0 || (uint64_t)v->v.i > t->max)
                return -ERANGE;
            out->u = (uint64_t)v->v.i;
            return 0;
        }
        if (v->type != MP_VAL_UINT)
            return -EINVAL;
        if (v->v.u > t->max)
            return -ERANGE;
        out->u = v->v.u;
        return 0;
    case TC_FLOAT:
        if (!is_num(v))
            return -EINVAL;
        out->f = t->f32 ? to_f32(num_f(v)) : num_f(v);
        return 0;
    case TC_CHAR:
        if (v->type != MP_VAL_BYTES || v->v.s.len != 1)
            return -EINVAL;
        out->u = (unsigned char)v->v.s.ptr[0];
        return 0;
    default:
        if (v->type != MP_VAL_STR)
            return -EINVAL;
        return utf8_one(v->v.s.ptr, v->v.s.len, &out->u);
    }
}

/* cell_zero: the value of a fresh item (0, 0.0, b'\0', '\0'). */
static cell_t cell_zero(const tc_t *t)
{
    cell_t c;
    if (t->kind == TC_FLOAT)
        c.f = 0.0;
    else
        c.u = 0;
    return c;
}

static int cell_pack(msgpack_packer *pk, const tc_t *t, cell_t c)
{
    char u8[4];
    size_t n;
    switch (t->kind) {
    case TC_INT:
        return pk_rc(msgpack_pack_int64(pk, c.i));
    case TC_UINT:
        return pk_rc(msgpack_pack_uint64(pk, c.u));
    case TC_FLOAT:
        return pk_rc(msgpack_pack_double(pk, c.f));
    case TC_CHAR:
        u8[0] = (char)c.u;
        return pk_rc(msgpack_pack_bin(pk, 1) || msgpack_pack_bin_body(pk, u8, 1));
    default:
        n = utf8_put(c.u, u8);
        return pk_rc(msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, u8, n));
    }
}

/* cell_incr: *out = c + delta for a number typecode: an integer delta for
 * integer typecodes (a float one is -EINVAL, as ctypes refuses it), a
 * number for float ones; -ERANGE when the sum leaves the C type. */
static int cell_incr(const tc_t *t, cell_t c, const mp_val_t *delta, cell_t *out)
{
    if (t->kind == TC_CHAR || t->kind == TC_WCHAR || !is_num(delta) ||
        (t->kind != TC_FLOAT && delta->type == MP_VAL_FLOAT))
        return -EINVAL;
    mp_val_t now = t->kind == TC_INT    ? mp_val_int(c.i)
                   : t->kind == TC_UINT ? mp_val_uint(c.u)
                                        : mp_val_float(c.f);
    mp_val_t sum;
    int rc = num_add(&now, delta, &sum);
    if (rc == -EOVERFLOW)
        return -ERANGE;
    return rc < 0 ? rc : cell_from(t, &sum, out);
}

/* ---- Value ------------------------------------------------------------------------------ */

typedef struct {
    const tc_t *t;
    cell_t c;
} mval_t;

static int v_get(void *self, const call_t *c)
{
    mval_t *v = self;
    return cell_pack(c->pk, v->t, v->c);
}

static int v_set(void *self, const call_t *c)
{
    mval_t *v = self;
    cell_t x;
    int rc = cell_from(v->t, &c->a[0], &x);
    if (rc == 0)
        rc = pack_nil(c->pk);
    if (rc == 0)
        v->c = x;
    return rc;
}

static int v_incr(void *self, const call_t *c)
{
    mval_t *v = self;
    cell_t x;
    int rc = cell_incr(v->t, v->c, &c->a[0], &x);
    if (rc == 0)
        rc = cell_pack(c->pk, v->t, x);
    if (rc == 0)
        v->c = x;
    return rc;
}

/* clang-format off */
static const method_t value_methods[] = {
    {"get", v_get, 0, 0},
    {"set", v_set, 1, 1},
    {"incr", v_incr, 1, 1},
};
/* clang-format on */

/* create: [typecode] (a zero value) or [typecode, value]. */
static int value_create(mgr_server_t *s, mgr_obj_t *o, const mp_val_t *args, size_t nargs)
{
    (void)s;
    const tc_t *t;
    if (nargs < 1 || nargs > 2 || !args || tc_of(&args[0], &t) < 0)
        return -EINVAL;
    cell_t c = cell_zero(t);
    int rc = nargs == 2 ? cell_from(t, &args[1], &c) : 0;
    if (rc < 0)
        return rc;
    mval_t *v = malloc(sizeof *v);
    if (!v)
        return -ENOMEM;
    v->t = t;
    v->c = c;
    o->state = v;
    return 0;
}


static int value_call(mgr_server_t *s, mgr_obj_t *o, mgr_client_t *cl, const char *method,
                      const mp_val_t *args, size_t nargs, mp__deadline_t d, msgpack_packer *pk)
{
    (void)s;
    (void)cl;
    (void)d;
    return dispatch(value_methods, NELEMS(value_methods), o->state, method, args, nargs, pk);
}

const mgr_kind_t mgr_kind_value = {
    .name = "Value",
    .create = value_create,
    .destroy = mgr_destroy_plain,
    .call = value_call,
};

/* ---- Array ------------------------------------------------------------------------------ */

typedef struct {
    const tc_t *t;
    size_t n;
    cell_t c[]; /* n items */
} marr_t;

/* cells_check: every item of the array value fits typecode t. */
static int cells_check(const tc_t *t, const mp_val_t *items, size_t n)
{
    cell_t x;
    for (size_t i = 0; i < n; i++) {
        int rc = cell_from(t, &items[i], &x);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* cells_store writes n checked items into c. */
static void cells_store(const tc_t *t, const mp_val_t *items, size_t n, cell_t *c)
{
    for (size_t i = 0; i < n; i++)
        cell_from(t, &items[i], &c[i]);
}

static int a_get(void *self, const call_t *c)
{
    marr_t *a = self;
    size_t i;
    int rc = index_of(&c->a[0], a->n, &i);
    return rc < 0 ? rc : cell_pack(c->pk, a->t, a->c[i]);
}

static int a_set(void *self, const call_t *c)
{
    marr_t *a = self;
    size_t i;
    cell_t x;
    int rc = index_of(&c->a[0], a->n, &i);
    if (rc == 0)
        rc = cell_from(a->t, &c->a[1], &x);
    if (rc == 0)
        rc = pack_nil(c->pk);
    if (rc == 0)
        a->c[i] = x;
    return rc;
}

static int a_len(void *self, const call_t *c)
{
    marr_t *a = self;
    return pack_size(c->pk, a->n);
}

static int a_slice(void *self, const call_t *c)
{
    marr_t *a = self;
    size_t lo, hi;
    int rc = range_of(&c->a[0], &c->a[1], a->n, &lo, &hi);
    if (rc == 0)
        rc = pk_rc(msgpack_pack_array(c->pk, hi - lo));
    for (size_t i = lo; rc == 0 && i < hi; i++)
        rc = cell_pack(c->pk, a->t, a->c[i]);
    return rc;
}

/* set_slice [start, stop, array]: the array must have the range's length
 * (an Array never changes length: -EINVAL, as ctypes arrays). */
static int a_set_slice(void *self, const call_t *c)
{
    marr_t *a = self;
    size_t lo, hi;
    int rc = range_of(&c->a[0], &c->a[1], a->n, &lo, &hi);
    if (rc == 0 && (c->a[2].type != MP_VAL_ARRAY || c->a[2].v.a.n != hi - lo))
        rc = -EINVAL;
    if (rc == 0)
        rc = cells_check(a->t, c->a[2].v.a.items, hi - lo);
    if (rc == 0)
        rc = pack_nil(c->pk);
    if (rc == 0)
        cells_store(a->t, c->a[2].v.a.items, hi - lo, a->c + lo);
    return rc;
}

static int a_incr(void *self, const call_t *c)
{
    marr_t *a = self;
    size_t i;
    cell_t x;
    int rc = index_of(&c->a[0], a->n, &i);
    if (rc == 0)
        rc = cell_incr(a->t, a->c[i], &c->a[1], &x);
    if (rc == 0)
        rc = cell_pack(c->pk, a->t, x);
    if (rc == 0)
        a->c[i] = x;
    return rc;
}

/* clang-format off */
static const method_t array_methods[] = {
    {"get", a_get, 1, 1},
    {"set", a_set, 2, 2},
    {"len", a_len, 0, 0},
    {"slice", a_slice, 2, 2},
    {"set_slice", a_set_slice, 3, 3},
    {"incr", a_incr, 2, 2},
};
/* clang-format on */

/* create: [typecode, array of items] (one cell per item the request holds). */
static int array_create(mgr_server_t *s, mgr_obj_t *o, const mp_val_t *args, size_t nargs)
{
    (void)s;
    const tc_t *t;
    if (nargs != 2 || !args || tc_of(&args[0], &t) < 0 || args[1].type != MP_VAL_ARRAY)
        return -EINVAL;
    size_t n = args[1].v.a.n;
    int rc = cells_check(t, args[1].v.a.items, n);
    if (rc < 0)
        return rc;
    if (n > (SIZE_MAX - sizeof(marr_t)) / sizeof(cell_t))
        return -ENOMEM;
    marr_t *a = malloc(sizeof *a + n * sizeof(cell_t));
    if (!a)
        return -ENOMEM;
    a->t = t;
    a->n = n;
    cells_store(t, args[1].v.a.items, n, a->c);
    o->state = a;
    return 0;
}

static int array_call(mgr_server_t *s, mgr_obj_t *o, mgr_client_t *cl, const char *method,
                      const mp_val_t *args, size_t nargs, mp__deadline_t d, msgpack_packer *pk)
{
    (void)s;
    (void)cl;
    (void)d;
    return dispatch(array_methods, NELEMS(array_methods), o->state, method, args, nargs, pk);
}

const mgr_kind_t mgr_kind_array = {
    .name = "Array",
    .create = array_create,
    .destroy = mgr_destroy_plain,
    .call = array_call,
};

/* ---- client shorthands ---------------------------------------------------------------- */

/* call_out: a call whose result goes to *out (which must not be NULL). */
static int call_out(mp_proxy_t *p, const char *method, const mp_val_t *args, size_t nargs,
                    mp_val_t **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!p)
        return -EINVAL;
    return mp_proxy_call(p, method, args, nargs, out, MP_FOREVER);
}

/* call_size: a call whose result is a non-negative integer, into *n. */
static int call_size(mp_proxy_t *p, const char *method, size_t *n)
{
    if (!p || !n)
        return -EINVAL;
    mp_val_t *r = NULL;
    int rc = mp_proxy_call(p, method, NULL, 0, &r, MP_FOREVER);
    if (rc == 0) {
        if (r && r->type == MP_VAL_INT && r->v.i >= 0)
            *n = (size_t)r->v.i;
        else
            rc = -EPROTO;
    }
    mp_val_free(r);
    return rc;
}

int mp_dict_set(mp_proxy_t *d, const mp_val_t *key, const mp_val_t *val)
{
    if (!d || !key || !val)
        return -EINVAL;
    mp_val_t a[2] = {*key, *val};
    return mp_proxy_call(d, "set", a, 2, NULL, MP_FOREVER);
}

int mp_dict_get(mp_proxy_t *d, const mp_val_t *key, mp_val_t **val)
{
    if (!key) {
        if (val)
            *val = NULL;
        return -EINVAL;
    }
    return call_out(d, "get", key, 1, val);
}

int mp_dict_del(mp_proxy_t *d, const mp_val_t *key)
{
    if (!d || !key)
        return -EINVAL;
    return mp_proxy_call(d, "del", key, 1, NULL, MP_FOREVER);
}

int mp_dict_contains(mp_proxy_t *d, const mp_val_t *key)
{
    if (!d || !key)
        return -EINVAL;
    mp_val_t *r = NULL;
    int rc = mp_proxy_call(d, "contains", key, 1, &r, MP_FOREVER);
    if (rc == 0)
        rc = r && r->type == MP_VAL_BOOL ? (r->v.b ? 1 : 0) : -EPROTO;
    mp_val_free(r);
    return rc;
}

int mp_dict_len(mp_proxy_t *d, size_t *n)
{
    return call_size(d, "len", n);
}

int mp_dict_keys(mp_proxy_t *d, mp_val_t **keys)
{
    return call_out(d, "keys", NULL, 0, keys);
}

int mp_dict_items(mp_proxy_t *d, mp_val_t **items)
{
    return call_out(d, "items", NULL, 0, items);
}

int mp_dict_incr(mp_proxy_t *d, const mp_val_t *key, const mp_val_t *delta, mp_val_t **now)
{
    if (now)
        *now = NULL;
    if (!d || !key || !delta)
        return -EINVAL;
    mp_val_t a[2] = {*key, *delta};
    return mp_proxy_call(d, "incr", a, 2, now, MP_FOREVER);
}

int mp_list_append(mp_proxy_t *l, const mp_val_t *v)
{
    if (!l || !v)
        return -EINVAL;
    return mp_proxy_call(l, "append", v, 1, NULL, MP_FOREVER);
}

int mp_list_extend(mp_proxy_t *l, const mp_val_t *array)
{
    if (!l || !array)
        return -EINVAL;
    return mp_proxy_call(l, "extend", array, 1, NULL, MP_FOREVER);
}

int mp_list_insert(mp_proxy_t *l, int64_t index, const mp_val_t *v)
{
    if (!l || !v)
        return -EINVAL;
    mp_val_t a[2] = {mp_val_int(index), *v};
    return mp_proxy_call(l, "insert", a, 2, NULL, MP_FOREVER);
}

/* v may be NULL to drop the popped item. */
int mp_list_pop(mp_proxy_t *l, int64_t index, mp_val_t **v)
{
    if (v)
        *v = NULL;
    if (!l)
        return -EINVAL;
    mp_val_t a = mp_val_int(index);
    return mp_proxy_call(l, "pop", &a, 1, v, MP_FOREVER);
}

int mp_list_get(mp_proxy_t *l, int64_t index, mp_val_t **v)
{
    mp_val_t a = mp_val_int(index);
    return call_out(l, "get", &a, 1, v);
}

int mp_list_set(mp_proxy_t *l, int64_t index, const mp_val_t *v)
{
    if (!l || !v)
        return -EINVAL;
    mp_val_t a[2] = {mp_val_int(index), *v};
    return mp_proxy_call(l, "set", a, 2, NULL, MP_FOREVER);
}

int mp_list_del(mp_proxy_t *l, int64_t index)
{
    if (!l)
        return -EINVAL;
    mp_val_t a = mp_val_int(index);
    return mp_proxy_call(l, "del", &a, 1, NULL, MP_FOREVER);
}

int mp_list_len(mp_proxy_t *l, size_t *n)
{
    return call_size(l, "len", n);
}

/* Open bounds: INT64_MIN / INT64_MAX, which the server clamps. */
int mp_list_slice(mp_proxy_t *l, int64_t start, int64_t stop, mp_val_t **array)
{
    mp_val_t a[2] = {mp_val_int(start), mp_val_int(stop)};
    return call_out(l, "slice", a, 2, array);
}

int mp_list_set_slice(mp_proxy_t *l, int64_t start, int64_t stop, const mp_val_t *array)
{
    if (!l || !array)
        return -EINVAL;
    mp_val_t a[3] = {mp_val_int(start), mp_val_int(stop), *array};
    return mp_proxy_call(l, "set_slice", a, 3, NULL, MP_FOREVER);
}

int mp_list_incr(mp_proxy_t *l, int64_t index, const mp_val_t *delta, mp_val_t **now)
{
    if (now)
        *now = NULL;
    if (!l || !delta)
        return -EINVAL;
    mp_val_t a[2] = {mp_val_int(index), *delta};
    return mp_proxy_call(l, "incr", a, 2, now, MP_FOREVER);
}

int mp_mvalue_get(mp_proxy_t *v, mp_val_t **val)
{
    return call_out(v, "get", NULL, 0, val);
}

int mp_mvalue_set(mp_proxy_t *v, const mp_val_t *val)
{
    if (!v || !val)
        return -EINVAL;
    return mp_proxy_call(v, "set", val, 1, NULL, MP_FOREVER);
}

int mp_mvalue_incr(mp_proxy_t *v, const mp_val_t *delta, mp_val_t **now)
{
    if (now)
        *now = NULL;
    if (!v || !delta)
        return -EINVAL;
    return mp_proxy_call(v, "incr", delta, 1, now, MP_FOREVER);
}

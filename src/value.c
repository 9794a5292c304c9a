/* value.c: structured values (mproc/value.h): constructors, encoding to one
 * msgpack object, bounded decoding into one allocation, equality, lookup.
 *
 * Encoding goes through msgpack-c's packer (msgpack_pack_*), which picks the
 * smallest integer form and writes str, bin, float64, array and map headers.
 * The packer runs twice over the value with two writers of our own: the first
 * only counts bytes, the second copies into one buffer of exactly that size
 * from mp__malloc (so fault injection reaches it and the caller gets a buffer
 * it can free()). Nothing is written before the whole value was checked
 * (types, NULL pointers, lengths that fit msgpack's 32-bit counts, nesting).
 *
 * Decoding is done here, over the raw bytes, in two passes that share one
 * header reader. msgpack-c's own C unpacker is not used: it keeps a fixed
 * stack of 32 containers compiled into libmsgpackc (MSGPACK_EMBED_STACK_SIZE)
 * and fails deeper input as "out of memory", below MP_VAL_DEPTH_MAX, and it
 * allocates each container's declared count before reading its items.
 *   1. scan: check that buf holds exactly one value in the subset mproc
 *      carries (no ext, no 0xc1), that every container's declared count can
 *      fit in the bytes left (each item takes at least one byte), that
 *      containers nest at most MP_VAL_DEPTH_MAX deep, and that nothing
 *      trails; count the nodes and the string bytes.
 *   2. fill: one mp__malloc'd block holds the root node, then every item
 *      array and key/value array, then the string and bytes payloads, each
 *      followed by a NUL; a second walk fills it.
 * Invariants: every node consumes at least one input byte, so the block is
 * at most (sizeof(mp_val_t) + 2) * len bytes (+1 node); recursion is at most
 * MP_VAL_DEPTH_MAX + 1 frames deep in every walk; mp_val_free is one free().
 *
 * Depth: a container inside k containers is at depth k + 1; a value may hold
 * containers up to depth MP_VAL_DEPTH_MAX (empty ones count), on both sides.
 *
 * MT-safe: yes (no state). Fork-safe: yes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "internal.h"
#include "manager_int.h"

_Static_assert(sizeof(mp_val_kv_t) == 2 * sizeof(mp_val_t),
               "a key/value pair must be two adjacent nodes");

/* ---- constructors ------------------------------------------------------------ */

mp_val_t mp_val_nil(void)
{
    return (mp_val_t){.type = MP_VAL_NIL};
}

mp_val_t mp_val_bool(bool b)
{
    return (mp_val_t){.type = MP_VAL_BOOL, .v.b = b};
}

mp_val_t mp_val_int(int64_t i)
{
    return (mp_val_t){.type = MP_VAL_INT, .v.i = i};
}

mp_val_t mp_val_uint(uint64_t u)
{
    if (u <= (uint64_t)INT64_MAX)
        return mp_val_int((int64_t)u);
    return (mp_val_t){.type = MP_VAL_UINT, .v.u = u};
}

mp_val_t mp_val_float(double f)
{
    return (mp_val_t){.type = MP_VAL_FLOAT, .v.f = f};
}

/* A NULL string becomes an empty one (ptr NULL, len 0), which packs. */
mp_val_t mp_val_str(const char *s)
{
    return mp_val_strn(s, s ? strlen(s) : 0);
}

mp_val_t mp_val_strn(const char *s, size_t len)
{
    return (mp_val_t){.type = MP_VAL_STR, .v.s = {s, len}};
}

mp_val_t mp_val_bytes(const void *p, size_t len)
{
    return (mp_val_t){.type = MP_VAL_BYTES, .v.s = {p, len}};
}

mp_val_t mp_val_array(mp_val_t *items, size_t n)
{
    return (mp_val_t){.type = MP_VAL_ARRAY, .v.a = {items, n}};
}

mp_val_t mp_val_map(mp_val_kv_t *items, size_t n)
{
    return (mp_val_t){.type = MP_VAL_MAP, .v.m = {items, n}};
}

/* ---- encoding ------------------------------------------------------------------ */

static int check_val(const mp_val_t *v, int depth);

/* check_items checks n nodes at depth (NULL only when n is 0). */
static int check_items(const mp_val_t *items, size_t n, int depth)
{
    for (size_t i = 0; i < n; i++) {
        int rc = check_val(&items[i], depth);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* check_val accepts v (inside depth containers) if it can be packed: known
 * types, no NULL with a length, counts msgpack can express, containers at
 * most MP_VAL_DEPTH_MAX deep (which also stops a cycle). */
static int check_val(const mp_val_t *v, int depth)
{
    switch (v->type) {
    case MP_VAL_NIL: case MP_VAL_BOOL: case MP_VAL_INT: case MP_VAL_UINT:
    case MP_VAL_FLOAT:
        return 0;
    case MP_VAL_STR: case MP_VAL_BYTES:
        return (v->v.s.len && !v->v.s.ptr) || v->v.s.len > UINT32_MAX ? -EINVAL : 0;
    case MP_VAL_ARRAY:
        if ((v->v.a.n && !v->v.a.items) || v->v.a.n > UINT32_MAX ||
            depth >= MP_VAL_DEPTH_MAX)
            return -EINVAL;
        return check_items(v->v.a.items, v->v.a.n, depth + 1);
    case MP_VAL_MAP:
        if ((v->v.m.n && !v->v.m.items) || v->v.m.n > UINT32_MAX ||
            depth >= MP_VAL_DEPTH_MAX)
            return -EINVAL;
        for (size_t i = 0; i < v->v.m.n; i++) {
            int rc = check_val(&v->v.m.items[i].key, depth + 1);
            if (rc == 0)
                rc = check_val(&v->v.m.items[i].val, depth + 1);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    return -EINVAL;
}

/* pack_val writes a value check_val accepted; returns the packer's code. */
static int pack_val(msgpack_packer *pk, const mp_val_t *v)
{
    int rc = 0;
    switch (v->type) {
    case MP_VAL_NIL: return msgpack_pack_nil(pk);
    case MP_VAL_BOOL: return v->v.b ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    case MP_VAL_INT: return msgpack_pack_int64(pk, v->v.i);
    case MP_VAL_UINT: return msgpack_pack_uint64(pk, v->v.u);
    case MP_VAL_FLOAT: return msgpack_pack_double(pk, v->v.f);
    case MP_VAL_STR:
        rc = msgpack_pack_str(pk, v->v.s.len);
        return rc ? rc : msgpack_pack_str_body(pk, v->v.s.ptr, v->v.s.len);
    case MP_VAL_BYTES:
        rc = msgpack_pack_bin(pk, v->v.s.len);
        return rc ? rc : msgpack_pack_bin_body(pk, v->v.s.ptr, v->v.s.len);
    case MP_VAL_ARRAY:
        rc = msgpack_pack_array(pk, v->v.a.n);
        for (size_t i = 0; rc == 0 && i < v->v.a.n; i++)
            rc = pack_val(pk, &v->v.a.items[i]);
        return rc;
    case MP_VAL_MAP:
        rc = msgpack_pack_map(pk, v->v.m.n);
        for (size_t i = 0; rc == 0 && i < v->v.m.n; i++) {
            rc = pack_val(pk, &v->v.m.items[i].key);
            if (rc == 0)
                rc = pack_val(pk, &v->v.m.items[i].val);
        }
        return rc;
    }
    return -1;
}

/* The packer's writer: with dst NULL it only counts. It never fails, and
 * never writes past cap (the second pass writes what the first counted). */
typedef struct {
    unsigned char *dst;
    size_t len, cap;
} sink_t;

static int sink_write(void *data, const char *buf, size_t len)
{
    sink_t *s = data;
    if (s->dst && len) {
        if (len > s->cap - s->len)
            return -1;
        memcpy(s->dst + s->len, buf, len);
    }
    s->len += len;
    return 0;
}

int mp__val_check(const mp_val_t *v)
{
    return v ? check_val(v, 0) : -EINVAL;
}

int mp__val_pack_into(msgpack_packer *pk, const mp_val_t *v)
{
    return pack_val(pk, v) ? -ENOMEM : 0;
}

int mp_val_pack(const mp_val_t *v, void **buf, size_t *len)
{
    if (!v || !buf || !len)
        return -EINVAL;
    *buf = NULL;
    *len = 0;
    int rc = check_val(v, 0);
    if (rc < 0)
        return rc;
    sink_t s = {NULL, 0, 0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &s, sink_write);
    if (pack_val(&pk, v) != 0)
        return -EINVAL; /* cannot happen: counting never fails */
    s.dst = mp__malloc(s.len);
    if (!s.dst)
        return -ENOMEM;
    s.cap = s.len;
    s.len = 0;
    if (pack_val(&pk, v) != 0 || s.len != s.cap) {
        free(s.dst); /* cannot happen: the value did not change in between */
        return -EINVAL;
    }
    *buf = s.dst;
    *len = s.len;
    return 0;
}

/* ---- decoding: the header reader --------------------------------------------- */

typedef struct {
    const unsigned char *p, *end;
} rd_t;

/* One header: type; for str/bytes the payload (ptr, n bytes); for arrays
 * and maps n, the count of items or pairs; scalars in sc. */
typedef struct {
    mp_val_type_t type;
    size_t n;
    const unsigned char *ptr;
    mp_val_t sc;
} head_t;

static uint64_t be(const unsigned char *p, int n)
{
    uint64_t x = 0;
    for (int i = 0; i < n; i++)
        x = x << 8 | p[i];
    return x;
}

/* take returns the next n bytes and moves past them, or NULL if fewer are
 * left. */
static const unsigned char *take(rd_t *r, size_t n)
{
    if ((size_t)(r->end - r->p) < n)
        return NULL;
    const unsigned char *q = r->p;
    r->p += n;
    return q;
}

/* read_num reads an n-byte big-endian number after the type byte. */
static int read_num(rd_t *r, int n, uint64_t *x)
{
    const unsigned char *q = take(r, (size_t)n);
    if (!q)
        return -EBADMSG;
    *x = be(q, n);
    return 0;
}

static int head_scalar(rd_t *r, unsigned char t, head_t *h)
{
    uint64_t x = 0;
    int w = t >= 0xcc && t <= 0xcf ? 1 << (t - 0xcc)
          : t >= 0xd0 && t <= 0xd3 ? 1 << (t - 0xd0)
          : t == 0xca ? 4 : 8;
    if (read_num(r, w, &x) < 0)
        return -EBADMSG;
    if (t == 0xca) {
        uint32_t u32 = (uint32_t)x;
        float f;
        memcpy(&f, &u32, sizeof f);
        h->sc = mp_val_float(f);
    } else if (t == 0xcb) {
        double d;
        memcpy(&d, &x, sizeof d);
        h->sc = mp_val_float(d);
    } else if (t <= 0xcf) {
        h->sc = mp_val_uint(x);
    } else {
        h->sc = mp_val_int(w == 1 ? (int8_t)x : w == 2 ? (int16_t)x
                           : w == 4 ? (int32_t)x : (int64_t)x);
    }
    h->type = h->sc.type;
    return 0;
}

/* head_sized reads the length of a str, bin, array or map whose length
 * field is w bytes wide, and the payload of a str or bin. */
static int head_sized(rd_t *r, mp_val_type_t type, int w, uint64_t n, head_t *h)
{
    if (w && read_num(r, w, &n) < 0)
        return -EBADMSG;
    size_t left = (size_t)(r->end - r->p);
    h->type = type;
    h->n = (size_t)n;
    if (type == MP_VAL_STR || type == MP_VAL_BYTES) {
        h->ptr = take(r, h->n);
        return h->ptr || n == 0 ? 0 : -EBADMSG;
    }
    /* Every item takes at least one byte: a count the rest cannot hold is
     * a lie, rejected before anything is sized by it. */
    if (n > left || (type == MP_VAL_MAP && 2 * n > left))
        return -EBADMSG;
    return 0;
}

/* read_head reads one header at r. Returns 0 or -EBADMSG (truncated, ext,
 * the unused byte 0xc1, a count the remaining bytes cannot hold). */
static int read_head(rd_t *r, head_t *h)
{
    const unsigned char *q = take(r, 1);
    if (!q)
        return -EBADMSG;
    unsigned char t = *q;
    h->ptr = NULL;
    h->n = 0;
    if (t <= 0x7f || t >= 0xe0) {
        h->sc = mp_val_int(t <= 0x7f ? t : (int64_t)(int8_t)t);
        h->type = MP_VAL_INT;
        return 0;
    }
    if (t <= 0x8f)
        return head_sized(r, MP_VAL_MAP, 0, t & 0x0f, h);
    if (t <= 0x9f)
        return head_sized(r, MP_VAL_ARRAY, 0, t & 0x0f, h);
    if (t <= 0xbf)
        return head_sized(r, MP_VAL_STR, 0, t & 0x1f, h);
    switch (t) {
    case 0xc0: h->sc = mp_val_nil(); h->type = MP_VAL_NIL; return 0;
    case 0xc2: case 0xc3:
        h->sc = mp_val_bool(t == 0xc3);
        h->type = MP_VAL_BOOL;
        return 0;
    case 0xc4: case 0xc5: case 0xc6:
        return head_sized(r, MP_VAL_BYTES, 1 << (t - 0xc4), 0, h);
    case 0xd9: case 0xda: case 0xdb:
        return head_sized(r, MP_VAL_STR, 1 << (t - 0xd9), 0, h);
    case 0xdc: case 0xdd:
        return head_sized(r, MP_VAL_ARRAY, 2 << (t - 0xdc), 0, h);
    case 0xde: case 0xdf:
        return head_sized(r, MP_VAL_MAP, 2 << (t - 0xde), 0, h);
    }
    if (t >= 0xca && t <= 0xd3)
        return head_scalar(r, t, h);
    return -EBADMSG; /* 0xc1; ext 0xc7-0xc9; fixext 0xd4-0xd8 */
}

/* ---- decoding: the two passes ------------------------------------------------ */

typedef struct {
    size_t nodes; /* item and key/value nodes below the root */
    size_t bytes; /* payload bytes, plus one NUL each */
} count_t;

/* scan reads one value (inside depth containers) and counts what it needs. */
static int scan(rd_t *r, int depth, count_t *c)
{
    head_t h;
    int rc = read_head(r, &h);
    if (rc < 0)
        return rc;
    if (h.type == MP_VAL_STR || h.type == MP_VAL_BYTES) {
        c->bytes += h.n + 1;
        return 0;
    }
    if (h.type != MP_VAL_ARRAY && h.type != MP_VAL_MAP)
        return 0;
    if (depth >= MP_VAL_DEPTH_MAX)
        return -EBADMSG;
    size_t n = h.type == MP_VAL_MAP ? 2 * h.n : h.n;
    c->nodes += n;
    for (size_t i = 0; i < n; i++)
        if ((rc = scan(r, depth + 1, c)) < 0)
            return rc;
    return 0;
}

/* The block being filled: nodes handed out from node, strings from str. */
typedef struct {
    mp_val_t *node;
    char *str;
} fill_t;

static int fill(rd_t *r, mp_val_t *v, fill_t *f);

/* fill_map fills a map of n pairs whose header fill just read. */
static int fill_map(rd_t *r, mp_val_t *v, size_t n, fill_t *f)
{
    mp_val_kv_t *kv = (mp_val_kv_t *)(void *)f->node;
    f->node += 2 * n;
    for (size_t i = 0; i < n; i++) {
        int rc = fill(r, &kv[i].key, f);
        if (rc == 0)
            rc = fill(r, &kv[i].val, f);
        if (rc < 0)
            return rc;
    }
    *v = mp_val_map(kv, n);
    return 0;
}

/* fill reads one value that scan accepted into *v. */
static int fill(rd_t *r, mp_val_t *v, fill_t *f)
{
    head_t h;
    int rc = read_head(r, &h);
    if (rc < 0)
        return rc; /* cannot happen after scan */
    switch (h.type) {
    case MP_VAL_STR: case MP_VAL_BYTES:
        if (h.n)
            memcpy(f->str, h.ptr, h.n);
        f->str[h.n] = 0;
        *v = (mp_val_t){.type = h.type, .v.s = {f->str, h.n}};
        f->str += h.n + 1;
        return 0;
    case MP_VAL_MAP:
        return fill_map(r, v, h.n, f);
    case MP_VAL_ARRAY: {
        mp_val_t *items = f->node;
        f->node += h.n;
        for (size_t i = 0; i < h.n; i++)
            if ((rc = fill(r, &items[i], f)) < 0)
                return rc;
        *v = mp_val_array(items, h.n);
        return 0;
    }
    default:
        *v = h.sc;
        return 0;
    }
}

int mp_val_unpack(const void *buf, size_t len, mp_val_t **out)
{
    if (!out || (!buf && len))
        return -EINVAL;
    *out = NULL;
    if (len == 0)
        return -EBADMSG;
    rd_t r = {buf, (const unsigned char *)buf + len};
    count_t c = {0, 0};
    int rc = scan(&r, 0, &c);
    if (rc < 0)
        return rc;
    if (r.p != r.end)
        return -EBADMSG; /* trailing bytes */
    /* nodes <= len and bytes <= 2 * len: no overflow for any real len. */
    mp_val_t *root = mp__malloc((c.nodes + 1) * sizeof(mp_val_t) + c.bytes);
    if (!root)
        return -ENOMEM;
    fill_t f = {root + 1, (char *)(root + 1 + c.nodes)};
    r.p = buf;
    rc = fill(&r, root, &f);
    if (rc < 0) {
        free(root);
        return rc;
    }
    *out = root;
    return 0;
}

void mp_val_free(mp_val_t *v)
{
    free(v);
}

/* ---- equality and lookup ------------------------------------------------------- */

static int eq(const mp_val_t *a, const mp_val_t *b, int depth);

/* eq_map compares two maps' pairs in order. */
static int eq_map(const mp_val_t *a, const mp_val_t *b, int depth)
{
    if (a->v.m.n != b->v.m.n)
        return 0;
    if (a->v.m.n && (!a->v.m.items || !b->v.m.items))
        return a->v.m.items == b->v.m.items;
    for (size_t i = 0; i < a->v.m.n; i++)
        if (!eq(&a->v.m.items[i].key, &b->v.m.items[i].key, depth) ||
            !eq(&a->v.m.items[i].val, &b->v.m.items[i].val, depth))
            return 0;
    return 1;
}

/* eq_array compares two arrays' items in order. */
static int eq_array(const mp_val_t *a, const mp_val_t *b, int depth)
{
    if (a->v.a.n != b->v.a.n)
        return 0;
    if (a->v.a.n && (!a->v.a.items || !b->v.a.items))
        return a->v.a.items == b->v.a.items;
    for (size_t i = 0; i < a->v.a.n; i++)
        if (!eq(&a->v.a.items[i], &b->v.a.items[i], depth))
            return 0;
    return 1;
}

/* eq compares a and b inside depth containers. Containers deeper than any
 * value may be (a cycle, a corrupt tree) compare unequal rather than
 * recursing on. */
static int eq(const mp_val_t *a, const mp_val_t *b, int depth)
{
    if (a->type != b->type)
        return 0;
    switch (a->type) {
    case MP_VAL_NIL: return 1;
    case MP_VAL_BOOL: return a->v.b == b->v.b;
    case MP_VAL_INT: return a->v.i == b->v.i;
    case MP_VAL_UINT: return a->v.u == b->v.u;
    case MP_VAL_FLOAT: return memcmp(&a->v.f, &b->v.f, sizeof a->v.f) == 0;
    case MP_VAL_STR: case MP_VAL_BYTES:
        if (a->v.s.len != b->v.s.len)
            return 0;
        if (a->v.s.len == 0 || a->v.s.ptr == b->v.s.ptr)
            return 1;
        return a->v.s.ptr && b->v.s.ptr &&
               memcmp(a->v.s.ptr, b->v.s.ptr, a->v.s.len) == 0;
    case MP_VAL_ARRAY:
        return depth < MP_VAL_DEPTH_MAX && eq_array(a, b, depth + 1);
    case MP_VAL_MAP:
        return depth < MP_VAL_DEPTH_MAX && eq_map(a, b, depth + 1);
    }
    return 0;
}

int mp_val_equal(const mp_val_t *a, const mp_val_t *b)
{
    return a && b && eq(a, b, 0);
}

const mp_val_t *mp_val_map_get(const mp_val_t *m, const char *key)
{
    if (!m || !key || m->type != MP_VAL_MAP || (m->v.m.n && !m->v.m.items))
        return NULL;
    size_t klen = strlen(key);
    for (size_t i = 0; i < m->v.m.n; i++) {
        const mp_val_t *k = &m->v.m.items[i].key;
        if (k->type == MP_VAL_STR && k->v.s.len == klen &&
            (klen == 0 || memcmp(k->v.s.ptr, key, klen) == 0))
            return &m->v.m.items[i].val;
    }
    return NULL;
}

/* fuzz_value.c: libFuzzer target for mp_val_unpack (src/value.c), the
 * decoder every received message goes through (mp_conn_recv).
 *
 * For each input: decoding returns 0 or -EBADMSG and nothing else; a decoded
 * tree is one block within the documented allocation bound, its strings are
 * NUL-terminated, it packs again, the packed bytes decode to an equal tree
 * and pack to the same bytes (encoding is canonical); and, as a differential
 * check, msgpack-c's own unpacker (where it applies: no more than 32 nested
 * containers, its fixed limit) accepts the same bytes and yields the same
 * value. Any violation calls abort(), which libFuzzer reports as a crash. */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "mproc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MSGPACK_C_DEPTH 32 /* MSGPACK_EMBED_STACK_SIZE in libmsgpackc */

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_value: %s\n", what);
    abort();
}

/* depth returns how deep containers nest in v (0 for a scalar) and checks
 * that every string and bytes value carries its NUL. */
static int depth(const mp_val_t *v)
{
    int d = 0;
    switch (v->type) {
    case MP_VAL_STR: case MP_VAL_BYTES:
        if (!v->v.s.ptr || v->v.s.ptr[v->v.s.len] != 0)
            fail("decoded string without its NUL");
        return 0;
    case MP_VAL_ARRAY:
        for (size_t i = 0; i < v->v.a.n; i++) {
            int k = depth(&v->v.a.items[i]);
            d = k > d ? k : d;
        }
        return d + 1;
    case MP_VAL_MAP:
        for (size_t i = 0; i < v->v.m.n; i++) {
            int k = depth(&v->v.m.items[i].key);
            d = k > d ? k : d;
            k = depth(&v->v.m.items[i].val);
            d = k > d ? k : d;
        }
        return d + 1;
    default:
        return 0;
    }
}

/* same_as_msgpack_c says whether msgpack-c's object o is the value v. */
static int same_as_msgpack_c(const msgpack_object *o, const mp_val_t *v)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return v->type == MP_VAL_NIL;
    case MSGPACK_OBJECT_BOOLEAN: return v->type == MP_VAL_BOOL && v->v.b == o->via.boolean;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > (uint64_t)INT64_MAX)
            return v->type == MP_VAL_UINT && v->v.u == o->via.u64;
        return v->type == MP_VAL_INT && v->v.i == (int64_t)o->via.u64;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return v->type == MP_VAL_INT && v->v.i == o->via.i64;
    case MSGPACK_OBJECT_FLOAT32: case MSGPACK_OBJECT_FLOAT64:
        return v->type == MP_VAL_FLOAT && memcmp(&v->v.f, &o->via.f64, sizeof v->v.f) == 0;
    case MSGPACK_OBJECT_STR:
        return v->type == MP_VAL_STR && v->v.s.len == o->via.str.size &&
               (!v->v.s.len || !memcmp(v->v.s.ptr, o->via.str.ptr, v->v.s.len));
    case MSGPACK_OBJECT_BIN:
        return v->type == MP_VAL_BYTES && v->v.s.len == o->via.bin.size &&
               (!v->v.s.len || !memcmp(v->v.s.ptr, o->via.bin.ptr, v->v.s.len));
    case MSGPACK_OBJECT_ARRAY:
        if (v->type != MP_VAL_ARRAY || v->v.a.n != o->via.array.size)
            return 0;
        for (size_t i = 0; i < v->v.a.n; i++)
            if (!same_as_msgpack_c(&o->via.array.ptr[i], &v->v.a.items[i]))
                return 0;
        return 1;
    case MSGPACK_OBJECT_MAP:
        if (v->type != MP_VAL_MAP || v->v.m.n != o->via.map.size)
            return 0;
        for (size_t i = 0; i < v->v.m.n; i++)
            if (!same_as_msgpack_c(&o->via.map.ptr[i].key, &v->v.m.items[i].key) ||
                !same_as_msgpack_c(&o->via.map.ptr[i].val, &v->v.m.items[i].val))
                return 0;
        return 1;
    default:
        return 0; /* ext: mproc must have rejected it */
    }
}

/* differential decodes data with msgpack-c (safe here: the counts were
 * proven honest by mp_val_unpack) and compares. */
static void differential(const uint8_t *data, size_t size, const mp_val_t *v)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack_next(&u, (const char *)data, size, &off);
    if (r != MSGPACK_UNPACK_SUCCESS || off != size)
        fail("mproc decoded what msgpack-c rejects");
    if (!same_as_msgpack_c(&u.data, v))
        fail("mproc and msgpack-c decode to different values");
    msgpack_unpacked_destroy(&u);
}

static void repack(const mp_val_t *v)
{
    void *b1 = NULL, *b2 = NULL;
    size_t l1 = 0, l2 = 0;
    mp_val_t *w = NULL;
    if (mp_val_pack(v, &b1, &l1) != 0)
        fail("a decoded value does not pack");
    if (mp_val_unpack(b1, l1, &w) != 0)
        fail("a packed value does not decode");
    if (!mp_val_equal(v, w) || !mp_val_equal(w, v))
        fail("round trip changed the value");
    if (mp_val_pack(w, &b2, &l2) != 0 || l1 != l2 || memcmp(b1, b2, l1) != 0)
        fail("packing is not canonical");
    mp_val_free(w);
    free(b1);
    free(b2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mp_val_t *v = NULL;
    int rc = mp_val_unpack(data, size, &v);
    if (rc == -EBADMSG) {
        if (v)
            fail("-EBADMSG with a tree");
        return 0;
    }
    if (rc != 0 || !v)
        fail("mp_val_unpack returned neither 0 nor -EBADMSG");
    if (malloc_usable_size(v) > (sizeof(mp_val_t) + 2) * size + sizeof(mp_val_t) + 64)
        fail("decoding allocated more than the documented bound");
    int d = depth(v);
    if (d > MP_VAL_DEPTH_MAX)
        fail("decoded a value nested deeper than MP_VAL_DEPTH_MAX");
    if (d <= MSGPACK_C_DEPTH)
        differential(data, size, v);
    repack(v);
    mp_val_free(v);
    return 0;
}

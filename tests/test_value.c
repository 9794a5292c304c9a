/* test_value.c: structured values (mproc/value.h): constructors, round trips
 * of every type and of nested arrays and maps, integer and float edge cases,
 * the exact msgpack bytes of known values (msgpack spec; there is no Python
 * msgpack on the test machines to compare with), argument checks, the depth
 * limit on both sides, hostile input (every truncation, trailing bytes, ext
 * types, counts that lie), the allocation bound, map lookup, and allocation
 * failure through fault injection. */
#include "mp_test.h"

#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sys/platform.h"

/* ---- helpers ---------------------------------------------------------- */

/* dump writes a short description of v into out (for failure messages). */
static void dump_to(const mp_val_t *v, char *out, size_t cap, int depth);

static void dump_items(const mp_val_t *v, char *out, size_t cap, int depth)
{
    int map = v->type == MP_VAL_MAP;
    size_t n = map ? v->v.m.n : v->v.a.n;
    snprintf(out, cap, "%s", map ? "{" : "[");
    for (size_t i = 0; i < n && strlen(out) + 8 < cap; i++) {
        size_t k = strlen(out);
        if (map) {
            dump_to(&v->v.m.items[i].key, out + k, cap - k, depth + 1);
            k = strlen(out);
            snprintf(out + k, cap - k, ": ");
            k = strlen(out);
            dump_to(&v->v.m.items[i].val, out + k, cap - k, depth + 1);
        } else {
            dump_to(&v->v.a.items[i], out + k, cap - k, depth + 1);
        }
        k = strlen(out);
        snprintf(out + k, cap - k, "%s", i + 1 < n ? ", " : "");
    }
    size_t k = strlen(out);
    snprintf(out + k, cap - k, "%s", map ? "}" : "]");
}

static void dump_to(const mp_val_t *v, char *out, size_t cap, int depth)
{
    uint64_t bits;
    if (cap == 0)
        return;
    if (depth > MP_VAL_DEPTH_MAX) {
        snprintf(out, cap, "...");
        return;
    }
    switch (v->type) {
    case MP_VAL_NIL: snprintf(out, cap, "nil"); return;
    case MP_VAL_BOOL: snprintf(out, cap, "%s", v->v.b ? "true" : "false"); return;
    case MP_VAL_INT: snprintf(out, cap, "%lld", (long long)v->v.i); return;
    case MP_VAL_UINT: snprintf(out, cap, "%lluu", (unsigned long long)v->v.u); return;
    case MP_VAL_FLOAT:
        memcpy(&bits, &v->v.f, sizeof bits);
        snprintf(out, cap, "%g(0x%016llx)", v->v.f, (unsigned long long)bits);
        return;
    case MP_VAL_STR:
        snprintf(out, cap, "\"%.*s\"", (int)(v->v.s.len > 40 ? 40 : v->v.s.len),
                 v->v.s.ptr ? v->v.s.ptr : "");
        return;
    case MP_VAL_BYTES: snprintf(out, cap, "b<%zu bytes>", v->v.s.len); return;
    case MP_VAL_ARRAY: case MP_VAL_MAP: dump_items(v, out, cap, depth); return;
    }
    snprintf(out, cap, "<type %d>", (int)v->type);
}

static const char *dump(const mp_val_t *v, char *out, size_t cap)
{
    out[0] = 0;
    dump_to(v, out, cap, 0);
    return out;
}

/* pack packs v, failing the case unless it works; the caller frees. */
static unsigned char *pack(const mp_val_t *v, size_t *len)
{
    void *buf = NULL;
    int rc = mp_val_pack(v, &buf, len);
    if (rc != 0) {
        char d[512];
        mp_test_fail("mp_val_pack(%s) = %d (%s)\n", dump(v, d, sizeof d), rc,
                     mp_strerror(rc));
    }
    assert_non_null(buf);
    assert_true(*len > 0);
    return buf;
}

/* roundtrip packs v, unpacks the bytes and checks the result equals v;
 * returns the decoded tree (the caller frees it). */
static mp_val_t *roundtrip(const mp_val_t *v)
{
    size_t len = 0;
    unsigned char *buf = pack(v, &len);
    mp_val_t *out = NULL;
    int rc = mp_val_unpack(buf, len, &out);
    free(buf);
    char d1[512], d2[512];
    if (rc != 0)
        mp_test_fail("mp_val_unpack(pack(%s)) = %d (%s)\n", dump(v, d1, sizeof d1),
                     rc, mp_strerror(rc));
    assert_non_null(out);
    if (!mp_val_equal(v, out))
        mp_test_fail("round trip changed %s into %s\n", dump(v, d1, sizeof d1),
                     dump(out, d2, sizeof d2));
    assert_true(mp_val_equal(out, v));
    return out;
}

static void roundtrip_free(const mp_val_t *v)
{
    mp_val_free(roundtrip(v));
}

/* unpack_rc decodes len bytes and returns the code (freeing any tree). */
static int unpack_rc(const void *buf, size_t len)
{
    mp_val_t *out = (mp_val_t *)&out; /* must become NULL on failure */
    int rc = mp_val_unpack(buf, len, &out);
    if (rc == 0)
        assert_non_null(out);
    else
        assert_null(out);
    mp_val_free(out);
    return rc;
}

/* expect_bytes checks that v packs to exactly want[0..n). */
static void expect_bytes(const mp_val_t *v, const void *want, size_t n)
{
    size_t len = 0;
    unsigned char *buf = pack(v, &len);
    char d[512];
    if (len != n || memcmp(buf, want, n) != 0) {
        char hex[256] = "";
        for (size_t i = 0; i < len && i < 60; i++)
            snprintf(hex + 3 * i, sizeof hex - 3 * i, "%02x ", buf[i]);
        free(buf);
        mp_test_fail("%s packs to %zu bytes [%s], expected %zu\n",
                     dump(v, d, sizeof d), len, hex, n);
    }
    free(buf);
}

static double dbl_bits(uint64_t bits)
{
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

/* nest builds depth nested arrays in chain[0..depth) around inner. */
static mp_val_t nest(mp_val_t *chain, int depth, mp_val_t inner)
{
    mp_val_t cur = inner;
    for (int i = depth - 1; i >= 0; i--) {
        chain[i] = cur;
        cur = mp_val_array(&chain[i], 1);
    }
    return cur;
}

/* xorshift64*: deterministic randomness. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* A rich value used by several cases: every type, nested. */
typedef struct {
    mp_val_t inner[4], items[12], root;
    mp_val_kv_t kv[4], kv2[2];
    unsigned char blob[3];
} rich_t;

static void rich_make(rich_t *r)
{
    r->blob[0] = 0;
    r->blob[1] = 0xff;
    r->blob[2] = 7;
    r->inner[0] = mp_val_int(-1);
    r->inner[1] = mp_val_str("deep");
    r->inner[2] = mp_val_nil();
    r->inner[3] = mp_val_array(NULL, 0);
    r->kv2[0] = (mp_val_kv_t){mp_val_int(7), mp_val_float(0.25)};
    r->kv2[1] = (mp_val_kv_t){mp_val_str(""), mp_val_bytes(r->blob, 3)};
    r->kv[0] = (mp_val_kv_t){mp_val_str("name"), mp_val_str("worker-1")};
    r->kv[1] = (mp_val_kv_t){mp_val_str("list"), mp_val_array(r->inner, 4)};
    r->kv[2] = (mp_val_kv_t){mp_val_str("map"), mp_val_map(r->kv2, 2)};
    r->kv[3] = (mp_val_kv_t){mp_val_nil(), mp_val_bool(false)};
    r->items[0] = mp_val_nil();
    r->items[1] = mp_val_bool(true);
    r->items[2] = mp_val_int(INT64_MIN);
    r->items[3] = mp_val_uint(UINT64_MAX);
    r->items[4] = mp_val_float(-1.5e300);
    r->items[5] = mp_val_strn("a\0b", 3);
    r->items[6] = mp_val_bytes(r->blob, 3);
    r->items[7] = mp_val_map(r->kv, 4);
    r->items[8] = mp_val_array(r->inner, 4);
    r->items[9] = mp_val_map(NULL, 0);
    r->items[10] = mp_val_int(300);
    r->items[11] = mp_val_str("x");
    r->root = mp_val_array(r->items, 12);
}

/* ---- cases ------------------------------------------------------------ */

/* The constructors set the type and point at the caller's memory. */
static void value_constructors(void **state)
{
    const char *s = "abc";
    mp_val_t v = mp_val_str(s);
    mp_assert_int(v.type, MP_VAL_STR);
    assert_ptr_equal(v.v.s.ptr, s);
    mp_assert_int(v.v.s.len, 3);
    v = mp_val_strn(s, 2);
    mp_assert_int(v.v.s.len, 2);
    v = mp_val_str(NULL);
    mp_assert_int(v.type, MP_VAL_STR);
    mp_assert_int(v.v.s.len, 0);
    v = mp_val_bytes(s, 1);
    mp_assert_int(v.type, MP_VAL_BYTES);
    assert_ptr_equal(v.v.s.ptr, s);
    mp_assert_int(mp_val_nil().type, MP_VAL_NIL);
    mp_assert_int(mp_val_bool(true).v.b, 1);
    mp_assert_int(mp_val_bool(false).type, MP_VAL_BOOL);
    mp_assert_int(mp_val_int(-5).v.i, -5);
    mp_assert_int(mp_val_uint(5).type, MP_VAL_INT);
    mp_assert_int(mp_val_uint(5).v.i, 5);
    mp_assert_int(mp_val_uint((uint64_t)INT64_MAX).type, MP_VAL_INT);
    mp_assert_int(mp_val_uint((uint64_t)INT64_MAX + 1).type, MP_VAL_UINT);
    assert_true(mp_val_uint(UINT64_MAX).v.u == UINT64_MAX);
    assert_true(mp_val_float(2.5).v.f == 2.5);
    mp_val_t items[2];
    mp_val_kv_t kv[1];
    v = mp_val_array(items, 2);
    mp_assert_int(v.type, MP_VAL_ARRAY);
    assert_ptr_equal(v.v.a.items, items);
    mp_assert_int(v.v.a.n, 2);
    v = mp_val_map(kv, 1);
    mp_assert_int(v.type, MP_VAL_MAP);
    assert_ptr_equal(v.v.m.items, kv);
    mp_assert_int(v.v.m.n, 1);
}

/* Every scalar type survives pack and unpack with its type. */
static void value_roundtrip_scalars(void **state)
{
    const unsigned char raw[] = {0, 1, 2, 0xff, 0x80};
    mp_val_t vals[] = {
        mp_val_nil(), mp_val_bool(true), mp_val_bool(false), mp_val_int(0),
        mp_val_int(-7), mp_val_int(123456789), mp_val_float(3.25),
        mp_val_str("hello, world"), mp_val_strn("nul\0inside", 10),
        mp_val_bytes(raw, sizeof raw),
    };
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        mp_val_t *out = roundtrip(&vals[i]);
        mp_assert_int(out->type, vals[i].type);
        mp_val_free(out);
    }
}

/* Nested arrays and maps of every type come back equal, in order. */
static void value_roundtrip_nested(void **state)
{
    rich_t r;
    rich_make(&r);
    mp_val_t *out = roundtrip(&r.root);
    mp_assert_int(out->type, MP_VAL_ARRAY);
    mp_assert_int(out->v.a.n, 12);
    const mp_val_t *m = &out->v.a.items[7];
    mp_assert_int(m->type, MP_VAL_MAP);
    mp_assert_int(m->v.m.n, 4);
    mp_assert_str(m->v.m.items[0].key.v.s.ptr, "name");
    mp_assert_int(m->v.m.items[3].key.type, MP_VAL_NIL);
    const mp_val_t *lst = mp_val_map_get(m, "list");
    assert_non_null(lst);
    mp_assert_int(lst->type, MP_VAL_ARRAY);
    mp_assert_int(lst->v.a.items[0].v.i, -1);
    mp_assert_str(lst->v.a.items[1].v.s.ptr, "deep");
    mp_val_free(out);

    /* A map keyed by non-strings, and a map inside a map inside an array. */
    mp_val_kv_t kv[3] = {
        {mp_val_int(1), mp_val_str("one")},
        {mp_val_array(r.inner, 2), mp_val_map(r.kv2, 2)},
        {mp_val_float(-0.0), mp_val_nil()},
    };
    mp_val_t m2 = mp_val_map(kv, 3);
    mp_val_t arr = mp_val_array(&m2, 1);
    roundtrip_free(&arr);
}

/* Integers: the boundaries of every msgpack form, signed and unsigned, each
 * packed in its smallest form and decoded as INT unless above INT64_MAX. */
static void value_int_boundaries(void **state)
{
    static const int64_t ints[] = {
        0, 1, -1, 31, 32, 127, 128, 255, 256, -32, -33, -128, -129,
        32767, 32768, 65535, 65536, -32768, -32769, INT32_MAX,
        (int64_t)INT32_MAX + 1, UINT32_MAX, (int64_t)UINT32_MAX + 1,
        INT32_MIN, (int64_t)INT32_MIN - 1, INT64_MAX, INT64_MIN, INT64_MIN + 1,
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        mp_val_t v = mp_val_int(ints[i]);
        mp_val_t *out = roundtrip(&v);
        mp_assert_int(out->type, MP_VAL_INT);
        assert_true(out->v.i == ints[i]);
        mp_val_free(out);
    }
    static const uint64_t uints[] = {(uint64_t)INT64_MAX + 1, UINT64_MAX - 1,
                                     UINT64_MAX};
    for (size_t i = 0; i < sizeof uints / sizeof uints[0]; i++) {
        mp_val_t v = mp_val_uint(uints[i]);
        mp_assert_int(v.type, MP_VAL_UINT);
        mp_val_t *out = roundtrip(&v);
        mp_assert_int(out->type, MP_VAL_UINT);
        assert_true(out->v.u == uints[i]);
        mp_val_free(out);
    }
    /* Smallest forms (msgpack spec). */
    mp_val_t v = mp_val_int(0);
    expect_bytes(&v, "\x00", 1);
    v = mp_val_int(127);
    expect_bytes(&v, "\x7f", 1);
    v = mp_val_int(-32);
    expect_bytes(&v, "\xe0", 1);
    v = mp_val_int(128);
    expect_bytes(&v, "\xcc\x80", 2);
    v = mp_val_int(-33);
    expect_bytes(&v, "\xd0\xdf", 2);
    v = mp_val_int(65536);
    expect_bytes(&v, "\xce\x00\x01\x00\x00", 5);
    v = mp_val_int(INT64_MIN);
    expect_bytes(&v, "\xd3\x80\x00\x00\x00\x00\x00\x00\x00", 9);
    v = mp_val_uint(UINT64_MAX);
    expect_bytes(&v, "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9);
    /* Wider forms than needed are accepted, and a uint64 that fits is INT. */
    mp_val_t *out = NULL;
    mp_assert_int(mp_val_unpack("\xcf\x00\x00\x00\x00\x00\x00\x00\x05", 9, &out), 0);
    mp_assert_int(out->type, MP_VAL_INT);
    mp_assert_int(out->v.i, 5);
    mp_val_free(out);
    mp_assert_int(mp_val_unpack("\xd3\xff\xff\xff\xff\xff\xff\xff\xfe", 9, &out), 0);
    mp_assert_int(out->type, MP_VAL_INT);
    mp_assert_int(out->v.i, -2);
    mp_val_free(out);
    mp_assert_int(mp_val_unpack("\xd1\x80\x00", 3, &out), 0);
    mp_assert_int(out->v.i, -32768);
    mp_val_free(out);
    mp_assert_int(mp_val_unpack("\xcd\xff\xff", 3, &out), 0);
    mp_assert_int(out->v.i, 65535);
    mp_val_free(out);
}

/* Floats keep their exact bits: -0.0, infinities, NaN payloads; always
 * float64 on the wire; float32 input decodes to the same double. */
static void value_floats(void **state)
{
    static const uint64_t bits[] = {
        0x0000000000000000ULL, 0x8000000000000000ULL, /* +0.0, -0.0 */
        0x7ff0000000000000ULL, 0xfff0000000000000ULL, /* +inf, -inf */
        0x7ff8000000000000ULL, 0xfff8000000000001ULL, /* NaNs */
        0x7ff0000000000123ULL,                        /* signalling NaN */
        0x0000000000000001ULL, 0x7fefffffffffffffULL, /* min subnormal, max */
        0x3ff0000000000000ULL,                        /* 1.0 */
    };
    for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++) {
        mp_val_t v = mp_val_float(dbl_bits(bits[i]));
        mp_val_t *out = roundtrip(&v);
        uint64_t got;
        memcpy(&got, &out->v.f, sizeof got);
        if (got != bits[i])
            mp_test_fail("float 0x%016llx came back as 0x%016llx\n",
                         (unsigned long long)bits[i], (unsigned long long)got);
        mp_val_free(out);
    }
    mp_val_t v = mp_val_float(1.5);
    expect_bytes(&v, "\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00", 9);
    /* -0.0 and 0.0 are different values; NaN equals the same NaN. */
    mp_val_t pz = mp_val_float(0.0), nz = mp_val_float(-0.0);
    mp_assert_int(mp_val_equal(&pz, &nz), 0);
    mp_val_t n1 = mp_val_float(NAN), n2 = mp_val_float(NAN);
    mp_assert_int(mp_val_equal(&n1, &n2), 1);
    mp_val_t *out = NULL;
    mp_assert_int(mp_val_unpack("\xca\x3f\xc0\x00\x00", 5, &out), 0); /* 1.5f */
    mp_assert_int(out->type, MP_VAL_FLOAT);
    assert_true(out->v.f == 1.5);
    mp_val_free(out);
    mp_assert_int(mp_val_unpack("\xca\xff\x80\x00\x00", 5, &out), 0); /* -inf */
    assert_true(isinf(out->v.f) && out->v.f < 0);
    mp_val_free(out);
}

/* Known encodings (msgpack spec): maps, arrays, str and bin forms. */
static void value_known_bytes(void **state)
{
    mp_val_t arr[4] = {mp_val_int(1), mp_val_int(-1), mp_val_bool(true),
                       mp_val_nil()};
    mp_val_kv_t kv = {mp_val_str("a"), mp_val_array(arr, 4)};
    mp_val_t m = mp_val_map(&kv, 1);
    expect_bytes(&m, "\x81\xa1\x61\x94\x01\xff\xc3\xc0", 8);
    mp_val_t b = mp_val_bytes("\x01", 1);
    expect_bytes(&b, "\xc4\x01\x01", 3);
    char s32[33];
    memset(s32, 'z', 32);
    s32[32] = 0;
    mp_val_t s = mp_val_str(s32);
    size_t len = 0;
    unsigned char *buf = pack(&s, &len);
    mp_assert_int(len, 34);
    mp_assert_int(buf[0], 0xd9);
    mp_assert_int(buf[1], 32);
    free(buf);
    mp_val_t e = mp_val_str("");
    expect_bytes(&e, "\xa0", 1);
    mp_val_t eb = mp_val_bytes(NULL, 0);
    expect_bytes(&eb, "\xc4\x00", 2);
    mp_val_t ea = mp_val_array(NULL, 0);
    expect_bytes(&ea, "\x90", 1);
    mp_val_t em = mp_val_map(NULL, 0);
    expect_bytes(&em, "\x80", 1);
    mp_val_t f = mp_val_bool(false);
    expect_bytes(&f, "\xc2", 1);
    /* 16 items: array16. */
    mp_val_t many[16];
    for (int i = 0; i < 16; i++)
        many[i] = mp_val_nil();
    mp_val_t a16 = mp_val_array(many, 16);
    buf = pack(&a16, &len);
    mp_assert_int(len, 19);
    mp_assert_int(buf[0], 0xdc);
    free(buf);
}

/* Empty str, bytes, array and map round trip (NULL pointers allowed with
 * length 0); decoded empty strings are "" with a non-NULL pointer. */
static void value_empty(void **state)
{
    mp_val_t vals[] = {mp_val_strn(NULL, 0), mp_val_str(""), mp_val_bytes(NULL, 0),
                       mp_val_bytes("", 0), mp_val_array(NULL, 0), mp_val_map(NULL, 0)};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        mp_val_t *out = roundtrip(&vals[i]);
        mp_assert_int(out->type, vals[i].type);
        if (out->type == MP_VAL_STR || out->type == MP_VAL_BYTES) {
            mp_assert_int(out->v.s.len, 0);
            assert_non_null(out->v.s.ptr);
            mp_assert_int(out->v.s.ptr[0], 0);
        } else {
            mp_assert_int(out->v.a.n, 0);
        }
        mp_val_free(out);
    }
    mp_val_t in[3] = {mp_val_array(NULL, 0), mp_val_map(NULL, 0), mp_val_str("")};
    mp_val_t a = mp_val_array(in, 3);
    roundtrip_free(&a);
}

/* Decoded strings carry a NUL after len bytes (also with NULs inside). */
static void value_strings_nul_terminated(void **state)
{
    mp_val_t items[3] = {mp_val_str("abc"), mp_val_strn("x\0y", 3),
                         mp_val_strn("abcdef", 2)};
    mp_val_t a = mp_val_array(items, 3);
    mp_val_t *out = roundtrip(&a);
    mp_assert_str(out->v.a.items[0].v.s.ptr, "abc");
    mp_assert_int(out->v.a.items[1].v.s.len, 3);
    mp_assert_int(out->v.a.items[1].v.s.ptr[3], 0);
    mp_assert_int(memcmp(out->v.a.items[1].v.s.ptr, "x\0y", 3), 0);
    mp_assert_str(out->v.a.items[2].v.s.ptr, "ab");
    mp_val_free(out);
    /* A str8 straight from bytes, at the very end of the input. */
    mp_assert_int(mp_val_unpack("\xd9\x02hi", 4, &out), 0);
    mp_assert_str(out->v.s.ptr, "hi");
    mp_val_free(out);
}

/* Arguments: NULLs, unknown types, NULL pointers with lengths, counts
 * msgpack cannot express; an error deep inside leaves nothing allocated. */
static void value_bad_args(void **state)
{
    void *buf = (void *)&buf;
    size_t len = 99;
    mp_val_t ok = mp_val_nil();
    mp_assert_int(mp_val_pack(NULL, &buf, &len), -EINVAL);
    mp_assert_int(mp_val_pack(&ok, NULL, &len), -EINVAL);
    mp_assert_int(mp_val_pack(&ok, &buf, NULL), -EINVAL);
    mp_val_t bad[] = {
        {.type = (mp_val_type_t)99},
        {.type = (mp_val_type_t)-1},
        mp_val_strn(NULL, 3),
        mp_val_bytes(NULL, 1),
        mp_val_array(NULL, 2),
        mp_val_map(NULL, 1),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        buf = (void *)&buf;
        mp_assert_int(mp_val_pack(&bad[i], &buf, &len), -EINVAL);
        assert_null(buf);
        /* The same inside an array and as a map value. */
        mp_val_t items[2] = {mp_val_int(1), bad[i]};
        mp_val_t a = mp_val_array(items, 2);
        mp_assert_int(mp_val_pack(&a, &buf, &len), -EINVAL);
        mp_val_kv_t kv = {mp_val_str("k"), bad[i]};
        mp_val_t m = mp_val_map(&kv, 1);
        mp_assert_int(mp_val_pack(&m, &buf, &len), -EINVAL);
        mp_val_kv_t kv2 = {bad[i], mp_val_nil()};
        m = mp_val_map(&kv2, 1);
        mp_assert_int(mp_val_pack(&m, &buf, &len), -EINVAL);
    }
    /* Counts over msgpack's 32 bits are rejected before anything is read
     * (the pointers point at one node only). */
    mp_val_t one = mp_val_nil();
    mp_val_t huge = mp_val_array(&one, (size_t)UINT32_MAX + 1);
    mp_assert_int(mp_val_pack(&huge, &buf, &len), -EINVAL);
    huge = mp_val_strn("x", (size_t)UINT32_MAX + 1);
    mp_assert_int(mp_val_pack(&huge, &buf, &len), -EINVAL);

    mp_val_t *out = NULL;
    mp_assert_int(mp_val_unpack("\xc0", 1, NULL), -EINVAL);
    mp_assert_int(mp_val_unpack(NULL, 1, &out), -EINVAL);
    mp_assert_int(unpack_rc("\xc0", 0), -EBADMSG);  /* 0 bytes: no value */
    mp_assert_int(unpack_rc(NULL, 0), -EBADMSG);
    mp_val_free(NULL);
}

/* Depth: containers may nest MP_VAL_DEPTH_MAX deep (msgpack-c's own
 * unpacker stops at 32), not one more, on both sides. */
static void value_depth_limit(void **state)
{
    static mp_val_t chain[MP_VAL_DEPTH_MAX + 2];
    for (int d = 1; d <= MP_VAL_DEPTH_MAX; d += d < 30 ? 7 : 1) {
        mp_val_t top = nest(chain, d - 1, mp_val_array(NULL, 0));
        roundtrip_free(&top);
        top = nest(chain, d, mp_val_int(d));
        roundtrip_free(&top);
    }
    void *buf = NULL;
    size_t len = 0;
    mp_val_t top = nest(chain, MP_VAL_DEPTH_MAX + 1, mp_val_nil());
    mp_assert_int(mp_val_pack(&top, &buf, &len), -EINVAL);
    top = nest(chain, MP_VAL_DEPTH_MAX, mp_val_array(NULL, 0));
    mp_assert_int(mp_val_pack(&top, &buf, &len), -EINVAL);
    /* Maps count too. */
    static mp_val_kv_t kvs[MP_VAL_DEPTH_MAX + 1];
    mp_val_t cur = mp_val_nil();
    for (int i = MP_VAL_DEPTH_MAX; i >= 0; i--) {
        kvs[i] = (mp_val_kv_t){mp_val_int(i), cur};
        cur = mp_val_map(&kvs[i], 1);
    }
    mp_assert_int(mp_val_pack(&cur, &buf, &len), -EINVAL);
    roundtrip_free(&kvs[0].val); /* MP_VAL_DEPTH_MAX maps */

    /* Raw input: n times 0x91 (array of 1) then nil / an empty array. */
    unsigned char raw[MP_VAL_DEPTH_MAX + 3];
    memset(raw, 0x91, sizeof raw);
    raw[MP_VAL_DEPTH_MAX] = 0xc0;
    mp_assert_int(unpack_rc(raw, MP_VAL_DEPTH_MAX + 1), 0);
    raw[MP_VAL_DEPTH_MAX - 1] = 0x90;
    mp_assert_int(unpack_rc(raw, MP_VAL_DEPTH_MAX), 0);
    raw[MP_VAL_DEPTH_MAX - 1] = 0x91;
    raw[MP_VAL_DEPTH_MAX] = 0x90;
    mp_assert_int(unpack_rc(raw, MP_VAL_DEPTH_MAX + 1), -EBADMSG);
    raw[MP_VAL_DEPTH_MAX] = 0x91;
    raw[MP_VAL_DEPTH_MAX + 1] = 0xc0;
    mp_assert_int(unpack_rc(raw, MP_VAL_DEPTH_MAX + 2), -EBADMSG);
    /* A long run of nesting fails early and fast, whatever its length. */
    size_t n = 1 << 20;
    unsigned char *deep = malloc(n);
    assert_non_null(deep);
    memset(deep, 0x91, n);
    mp_assert_int(unpack_rc(deep, n), -EBADMSG);
    memset(deep, 0x81, n); /* maps whose keys are maps */
    mp_assert_int(unpack_rc(deep, n), -EBADMSG);
    free(deep);

    /* A cycle a caller built by mistake: pack refuses it, equal says no. */
    mp_val_t self;
    self = mp_val_array(&self, 1);
    mp_assert_int(mp_val_pack(&self, &buf, &len), -EINVAL);
    mp_assert_int(mp_val_equal(&self, &self), 0);
}

/* Every proper prefix of a valid encoding is -EBADMSG, and so is the whole
 * with a byte more, or two values back to back. */
static void value_truncated_and_trailing(void **state)
{
    rich_t r;
    rich_make(&r);
    size_t len = 0;
    unsigned char *buf = pack(&r.root, &len);
    unsigned char *copy = malloc(len + 1);
    assert_non_null(copy);
    for (size_t k = 0; k < len; k++) {
        /* A copy of exactly k bytes, so ASan sees any read past the end. */
        unsigned char *pre = malloc(k ? k : 1);
        assert_non_null(pre);
        memcpy(pre, buf, k);
        int rc = unpack_rc(pre, k);
        free(pre);
        if (rc != -EBADMSG)
            mp_test_fail("a %zu-byte prefix of a %zu-byte value gave %d (%s), "
                         "expected -EBADMSG\n", k, len, rc, mp_strerror(rc));
    }
    memcpy(copy, buf, len);
    mp_assert_int(unpack_rc(copy, len), 0);
    copy[len] = 0xc0;
    mp_assert_int(unpack_rc(copy, len + 1), -EBADMSG);
    copy[len] = 0x00;
    mp_assert_int(unpack_rc(copy, len + 1), -EBADMSG);
    free(copy);
    free(buf);
    mp_assert_int(unpack_rc("\x01\x02", 2), -EBADMSG);
    mp_assert_int(unpack_rc("\x90\x90", 2), -EBADMSG);
}

/* Types msgpack has and mproc does not carry: every ext form, anywhere; and
 * the byte 0xc1 msgpack never uses. */
static void value_ext_rejected(void **state)
{
    static const struct {
        const char *b;
        size_t n;
    } bad[] = {
        {"\xd4\x01\x00", 3},                                    /* fixext 1 */
        {"\xd5\x01\x00\x00", 4},                                /* fixext 2 */
        {"\xd6\xff\x00\x00\x00\x00", 6},                        /* timestamp 32 */
        {"\xd7\x01\x00\x00\x00\x00\x00\x00\x00\x00", 10},       /* fixext 8 */
        {"\xd8\x01" "0123456789abcdef", 18},                    /* fixext 16 */
        {"\xc7\x01\x05\xaa", 4},                                /* ext 8 */
        {"\xc8\x00\x01\x05\xaa", 5},                            /* ext 16 */
        {"\xc9\x00\x00\x00\x01\x05\xaa", 7},                    /* ext 32 */
        {"\xc7\x00\x05", 3},                                    /* empty ext 8 */
        {"\x92\x01\xd4\x01\x00", 5},                            /* inside an array */
        {"\x81\xa1k\xc7\x01\x05\xaa", 7},                       /* as a map value */
        {"\xc1", 1},                                            /* never used */
        {"\x91\xc1", 2},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = unpack_rc(bad[i].b, bad[i].n);
        if (rc != -EBADMSG)
            mp_test_fail("input %zu (type byte 0x%02x) gave %d (%s), expected "
                         "-EBADMSG\n", i, (unsigned char)bad[i].b[0], rc,
                         mp_strerror(rc));
    }
}

/* Headers that claim more than the input holds are rejected before any
 * allocation: a malloc fault armed for the next allocation is still armed
 * afterwards. */
static void value_lying_counts(void **state)
{
    static const struct {
        const char *b;
        size_t n;
    } lies[] = {
        {"\xdd\xff\xff\xff\xff", 5},                /* array of 2^32-1 */
        {"\xdf\xff\xff\xff\xff", 5},                /* map of 2^32-1 */
        {"\xdb\xff\xff\xff\xff", 5},                /* str of 2^32-1 bytes */
        {"\xc6\xff\xff\xff\xff", 5},                /* bin of 2^32-1 bytes */
        {"\xdc\xff\xff\x01", 4},                    /* array16 */
        {"\x93\x01\x02", 3},                        /* fixarray of 3, 2 bytes */
        {"\x82\x01\x02\x03", 4},                    /* fixmap of 2, 3 bytes */
        {"\x91\xdd\x00\x01\x00\x00\xc0", 7},        /* nested array of 65536 */
        {"\xa5""abcd", 5},                          /* fixstr short by one */
    };
    for (size_t i = 0; i < sizeof lies / sizeof lies[0]; i++) {
        mp__fault_arm(MP__SYS_MALLOC, 1, ENOMEM);
        double t0 = mp_test_now();
        int rc = unpack_rc(lies[i].b, lies[i].n);
        double el = mp_test_now() - t0;
        int still_armed = mp__fault_hit(MP__SYS_MALLOC) == ENOMEM;
        mp__fault_clear();
        if (rc != -EBADMSG)
            mp_test_fail("lie %zu gave %d (%s), expected -EBADMSG\n", i, rc,
                         mp_strerror(rc));
        if (!still_armed)
            mp_test_fail("lie %zu made the decoder allocate\n", i);
        mp_test_check_quick(el, "rejecting a lying header");
    }
    /* The same counts are fine when the bytes are there. */
    mp_assert_int(unpack_rc("\x93\x01\x02\x03", 4), 0);
    mp_assert_int(unpack_rc("\xdc\x00\x03\x01\x02\x03", 6), 0);
    mp_assert_int(unpack_rc("\x82\x01\x02\x03\x04", 5), 0);
}

/* What decoding allocates is one block of at most (node + 2 bytes) per
 * input byte plus one node: many tiny items, long strings, deep nests. */
static void value_allocation_bound(void **state)
{
    size_t n = 65535, len = 3 + n;
    unsigned char *buf = malloc(len);
    assert_non_null(buf);
    buf[0] = 0xdc;
    buf[1] = 0xff;
    buf[2] = 0xff;
    memset(buf + 3, 0xc0, n); /* nils: the densest nodes */
    for (int pass = 0; pass < 3; pass++) {
        if (pass == 1)
            memset(buf + 3, 0xa0, n); /* empty strings: a node and a NUL each */
        if (pass == 2)
            memset(buf + 3, 0x90, n); /* empty arrays */
        mp_val_t *out = NULL;
        mp_assert_int(mp_val_unpack(buf, len, &out), 0);
        mp_assert_int(out->v.a.n, n);
        size_t got = malloc_usable_size(out);
        size_t bound = (sizeof(mp_val_t) + 2) * len + sizeof(mp_val_t) + 64;
        if (got > bound)
            mp_test_fail("decoding %zu bytes allocated %zu > %zu\n", len, got,
                         bound);
        mp_val_free(out);
    }
    free(buf);
}

/* map_get returns the first value under a string key, NULL otherwise. */
static void value_map_get(void **state)
{
    mp_val_kv_t kv[6] = {
        {mp_val_int(1), mp_val_str("int key")},
        {mp_val_str("a"), mp_val_int(1)},
        {mp_val_str("ab"), mp_val_int(2)},
        {mp_val_str("a"), mp_val_int(3)},
        {mp_val_str(""), mp_val_int(4)},
        {mp_val_bytes("b", 1), mp_val_int(5)},
    };
    mp_val_t m = mp_val_map(kv, 6);
    mp_val_t *dec = roundtrip(&m);
    const mp_val_t *maps[2] = {&m, dec};
    for (int i = 0; i < 2; i++) {
        const mp_val_t *v = mp_val_map_get(maps[i], "a");
        assert_non_null(v);
        mp_assert_int(v->v.i, 1);
        mp_assert_int(mp_val_map_get(maps[i], "ab")->v.i, 2);
        mp_assert_int(mp_val_map_get(maps[i], "")->v.i, 4);
        assert_null(mp_val_map_get(maps[i], "b")); /* bytes key is not a str */
        assert_null(mp_val_map_get(maps[i], "abc"));
        assert_null(mp_val_map_get(maps[i], "A"));
        assert_null(mp_val_map_get(maps[i], NULL));
    }
    mp_val_free(dec);
    mp_val_t arr = mp_val_array(NULL, 0), s = mp_val_str("a");
    assert_null(mp_val_map_get(NULL, "a"));
    assert_null(mp_val_map_get(&arr, "a"));
    assert_null(mp_val_map_get(&s, "a"));
    mp_val_t empty = mp_val_map(NULL, 0);
    assert_null(mp_val_map_get(&empty, "a"));
}

/* Equality: types, contents, order; NULL is never equal. */
static void value_equal_rules(void **state)
{
    mp_val_t i1 = mp_val_int(1), f1 = mp_val_float(1.0), b1 = mp_val_bool(true);
    mp_assert_int(mp_val_equal(&i1, &f1), 0);
    mp_assert_int(mp_val_equal(&i1, &b1), 0);
    mp_val_t s = mp_val_str("ab"), b = mp_val_bytes("ab", 2), s2 = mp_val_strn("abc", 2);
    mp_assert_int(mp_val_equal(&s, &b), 0);
    mp_assert_int(mp_val_equal(&s, &s2), 1);
    mp_val_t u = {.type = MP_VAL_UINT, .v.u = 1};
    mp_assert_int(mp_val_equal(&u, &i1), 0);
    mp_val_kv_t kv1[2] = {{mp_val_str("a"), mp_val_int(1)}, {mp_val_str("b"), mp_val_int(2)}};
    mp_val_kv_t kv2[2] = {{mp_val_str("b"), mp_val_int(2)}, {mp_val_str("a"), mp_val_int(1)}};
    mp_val_t m1 = mp_val_map(kv1, 2), m2 = mp_val_map(kv2, 2), m3 = mp_val_map(kv1, 1);
    mp_assert_int(mp_val_equal(&m1, &m2), 0);
    mp_assert_int(mp_val_equal(&m1, &m3), 0);
    mp_assert_int(mp_val_equal(&m1, &m1), 1);
    mp_val_t a1[2] = {mp_val_int(1), mp_val_int(2)}, a2[2] = {mp_val_int(1), mp_val_int(3)};
    mp_val_t x = mp_val_array(a1, 2), y = mp_val_array(a2, 2), z = mp_val_array(a1, 1);
    mp_assert_int(mp_val_equal(&x, &y), 0);
    mp_assert_int(mp_val_equal(&x, &z), 0);
    mp_assert_int(mp_val_equal(&x, &m1), 0);
    mp_assert_int(mp_val_equal(NULL, &x), 0);
    mp_assert_int(mp_val_equal(&x, NULL), 0);
    mp_assert_int(mp_val_equal(NULL, NULL), 0);
    mp_val_t t = mp_val_bool(true), f = mp_val_bool(false);
    mp_assert_int(mp_val_equal(&t, &f), 0);
}

/* Allocation failure: pack and unpack fail every allocation in turn with
 * -ENOMEM, leave the outputs NULL and the heap as it was, then succeed. */
static void value_enomem(void **state)
{
    rich_t r;
    rich_make(&r);
    int failed = 0;
    for (int nth = 1; nth < 100; nth++) {
        void *buf = (void *)&buf;
        size_t len = 1;
        struct mallinfo2 m0 = mallinfo2();
        mp__fault_arm(MP__SYS_MALLOC, nth, ENOMEM);
        int rc = mp_val_pack(&r.root, &buf, &len);
        mp__fault_clear();
        if (rc == 0) {
            free(buf);
            break;
        }
        struct mallinfo2 m1 = mallinfo2();
        mp_assert_int(rc, -ENOMEM);
        assert_null(buf);
        mp_assert_int(m1.uordblks, m0.uordblks);
        failed++;
    }
    assert_true(failed >= 1);

    size_t len = 0;
    unsigned char *enc = pack(&r.root, &len);
    failed = 0;
    for (int nth = 1; nth < 100; nth++) {
        mp_val_t *out = (mp_val_t *)&out;
        struct mallinfo2 m0 = mallinfo2();
        mp__fault_arm(MP__SYS_MALLOC, nth, ENOMEM);
        int rc = mp_val_unpack(enc, len, &out);
        mp__fault_clear();
        if (rc == 0) {
            assert_true(mp_val_equal(out, &r.root));
            mp_val_free(out);
            break;
        }
        struct mallinfo2 m1 = mallinfo2();
        mp_assert_int(rc, -ENOMEM);
        assert_null(out);
        mp_assert_int(m1.uordblks, m0.uordblks);
        failed++;
    }
    free(enc);
    assert_true(failed >= 1);
}

/* random_val builds a random tree of at most *budget nodes in pool. */
static mp_val_t random_val(uint64_t *s, mp_val_t *pool, size_t *used, size_t cap,
                           char *text, int depth)
{
    uint64_t x = rng_next(s);
    unsigned kind = (unsigned)(x % 10);
    if (depth >= 6 && kind >= 8)
        kind = 3;
    switch (kind) {
    case 0: return mp_val_nil();
    case 1: return mp_val_bool(x >> 8 & 1);
    case 2: return mp_val_int((int64_t)rng_next(s) >> (x >> 8 & 63));
    case 3: return mp_val_uint(rng_next(s));
    case 4: return mp_val_float(dbl_bits(rng_next(s)));
    case 5: return mp_val_strn(text, (size_t)(x >> 8) % 300);
    case 6: return mp_val_bytes(text + 1, (size_t)(x >> 8) % 70000);
    case 7: return mp_val_strn(text + 2, (size_t)(x >> 8) % 40);
    }
    size_t n = (size_t)(x >> 8) % 6;
    if (kind == 9)
        n *= 2; /* a map takes two nodes per pair */
    if (*used + n > cap)
        return mp_val_nil();
    mp_val_t *items = pool + *used;
    *used += n;
    for (size_t i = 0; i < n; i++)
        items[i] = random_val(s, pool, used, cap, text, depth + 1);
    return kind == 8 ? mp_val_array(items, n)
                     : mp_val_map((mp_val_kv_t *)(void *)items, n / 2);
}

/* Random trees round trip; random corruptions of their encodings decode to
 * -EBADMSG or to a value that itself round trips, never to anything else. */
static void value_random(void **state)
{
    uint64_t seed = 0x243F6A8885A308D3ULL;
    const char *e = getenv("MP_TEST_SEED");
    if (e && *e)
        seed = strtoull(e, NULL, 0);
    static mp_val_t pool[4096];
    static char text[70100];
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = (char)(' ' + i % 90);
    uint64_t s = seed;
    int decoded = 0, rejected = 0;
    size_t nodes = 0;
    for (int round = 0; round < 300; round++) {
        size_t used = 0;
        mp_val_t v = random_val(&s, pool, &used, sizeof pool / sizeof pool[0],
                                text, 0);
        nodes += used;
        size_t len = 0;
        unsigned char *buf = pack(&v, &len);
        mp_val_free(roundtrip(&v));
        for (int k = 0; k < 20; k++) {
            size_t at = (size_t)(rng_next(&s) % len);
            unsigned char old = buf[at];
            buf[at] = (unsigned char)rng_next(&s);
            size_t cut = rng_next(&s) % 4 == 0 ? (size_t)(rng_next(&s) % len) : len;
            mp_val_t *out = NULL;
            int rc = mp_val_unpack(buf, cut, &out);
            if (rc == 0) {
                decoded++;
                mp_val_free(roundtrip(out));
                mp_val_free(out);
            } else if (rc == -EBADMSG) {
                rejected++;
            } else {
                mp_test_fail("seed 0x%llx round %d: corrupt input gave %d (%s)\n",
                             (unsigned long long)seed, round, rc, mp_strerror(rc));
            }
            buf[at] = old;
        }
        free(buf);
    }
    /* The generator made real trees, and corruption hit both outcomes. */
    if (nodes < 300 || decoded < 100 || rejected < 100)
        mp_test_fail("seed 0x%llx: %zu nodes, %d corruptions decoded, %d "
                     "rejected: the generator is too weak\n",
                     (unsigned long long)seed, nodes, decoded, rejected);
}

int main(int argc, char **argv)
{
    static const mp_test_case_t cases[] = {
        MP_TEST(value_constructors),
        MP_TEST(value_roundtrip_scalars),
        MP_TEST(value_roundtrip_nested),
        MP_TEST(value_int_boundaries),
        MP_TEST(value_floats),
        MP_TEST(value_known_bytes),
        MP_TEST(value_empty),
        MP_TEST(value_strings_nul_terminated),
        MP_TEST(value_bad_args),
        MP_TEST(value_depth_limit),
        MP_TEST(value_truncated_and_trailing),
        MP_TEST(value_ext_rejected),
        MP_TEST(value_lying_counts),
        MP_TEST(value_allocation_bound),
        MP_TEST(value_map_get),
        MP_TEST(value_equal_rules),
        MP_TEST(value_enomem),
        MP_TEST_T(value_random, 120),
    };
    static const mp_test_config_t cfg = {0};
    return mp_test_main(argc, argv, cases, sizeof cases / sizeof cases[0], &cfg);
}

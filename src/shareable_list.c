/* shareable_list.c: Python's ShareableList in a named segment, with
 * CPython's binary layout so that C and Python attach to each other's lists.
 *
 * Layout (all integers native little-endian int64, as struct's "q"):
 *   [0]                    N, the number of items
 *   [8 .. 8+8(N+1))        offsets of each item's storage from the data
 *                          start, offs[0] = 0, offs[N] = the data size
 *   [(N+2)*8 ..)           the data: item i at data + offs[i], its storage
 *                          offs[i+1] - offs[i] bytes (8, or 8*(len/8+1) for
 *                          strings and bytes)
 *   then N * 8 bytes       each item's struct format, NUL-padded: "q", "d",
 *                          "xxxxxxx?" (bool), "xxxxxx?x" (None), "<n>s"
 *   then N bytes           each item's back-transform code: 0 plain value,
 *                          1 str, 2 bytes, 3 None
 * The segment is struct.calcsize of all that, which adds no padding since
 * every part is a multiple of 8 before the formats.
 *
 * Invariants: N and the offsets are fixed at creation; a handle validates
 * them at attach and keeps its own copy, so a writer that scribbles on the
 * header cannot make this process read or write outside the segment. The
 * formats and codes change with each set and are checked at each read.
 * MT-safe: as Python's: reads and writes of one item may race (no lock);
 * the handle itself has no mutable state after creation. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mproc.h"
#include "sys/platform.h"

struct mp_shareable_list {
    mp_shm_t *shm;
    size_t n;
    uint64_t *offs; /* n + 1 offsets, validated */
    unsigned char *data, *fmts, *codes;
};

enum { CODE_PLAIN = 0, CODE_STR = 1, CODE_BYTES = 2, CODE_NONE = 3 };

#define FMT_BOOL "xxxxxxx?"
#define FMT_NONE "xxxxxx?x"

static int64_t rd64(const unsigned char *p)
{
    int64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void wr64(unsigned char *p, int64_t v) { memcpy(p, &v, 8); }

/* utf8_ok tells whether p[0..n) is well-formed UTF-8 (what Python's str
 * holds: no overlongs, no surrogates, nothing above U+10FFFF). */
static int utf8_ok(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        size_t k;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            k = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (n - i <= k)
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += k + 1;
    }
    return 1;
}

/* plan works out how v is stored: its struct format, code and the storage
 * a new item needs. Checks the value. */
static int plan(const mp_val_t *v, char fmt[9], int *code, size_t *alloc)
{
    switch (v->type) {
    case MP_VAL_NIL:
        memcpy(fmt, FMT_NONE, 9), *code = CODE_NONE, *alloc = 8;
        return 0;
    case MP_VAL_BOOL:
        memcpy(fmt, FMT_BOOL, 9), *code = CODE_PLAIN, *alloc = 8;
        return 0;
    case MP_VAL_UINT:
        if (v->v.u > (uint64_t)INT64_MAX)
            return -EOVERFLOW;
        /* fall through */
    case MP_VAL_INT:
        strcpy(fmt, "q"), *code = CODE_PLAIN, *alloc = 8;
        return 0;
    case MP_VAL_FLOAT:
        strcpy(fmt, "d"), *code = CODE_PLAIN, *alloc = 8;
        return 0;
    case MP_VAL_STR:
    case MP_VAL_BYTES:
        /* The code first: set stores a string that fits the item's room
         * even when plan says it is too long for a new item. */
        *code = v->type == MP_VAL_STR ? CODE_STR : CODE_BYTES;
        if (!v->v.s.ptr && v->v.s.len)
            return -EINVAL;
        if (v->type == MP_VAL_STR &&
            !utf8_ok((const unsigned char *)v->v.s.ptr, v->v.s.len))
            return -EILSEQ;
        if (v->v.s.len >= MP_SHAREABLE_LIST_ITEM_MAX)
            return -EMSGSIZE;
        *alloc = 8 * (v->v.s.len / 8 + 1);
        if (*alloc > MP_SHAREABLE_LIST_ITEM_MAX)
            return -EMSGSIZE;
        snprintf(fmt, 9, "%zus", *alloc);
        *code = v->type == MP_VAL_STR ? CODE_STR : CODE_BYTES;
        return 0;
    default:
        return -EINVAL;
    }
}

/* store writes v (checked by plan) as item i with format fmt. */
static void store(mp_shareable_list_t *l, size_t i, const mp_val_t *v,
                  const char *fmt, int code)
{
    unsigned char *p = l->data + l->offs[i];
    size_t room = (size_t)(l->offs[i + 1] - l->offs[i]);
    memset(l->fmts + 8 * i, 0, 8);
    memcpy(l->fmts + 8 * i, fmt, strlen(fmt));
    l->codes[i] = (unsigned char)(signed char)code;
    switch (v->type) {
    case MP_VAL_NIL:
    case MP_VAL_BOOL:
        memset(p, 0, 8);
        if (v->type == MP_VAL_BOOL)
            p[7] = v->v.b ? 1 : 0;
        break;
    case MP_VAL_INT:
        wr64(p, v->v.i);
        break;
    case MP_VAL_UINT:
        wr64(p, (int64_t)v->v.u);
        break;
    case MP_VAL_FLOAT:
        memcpy(p, &v->v.f, 8);
        break;
    default: /* STR, BYTES: the whole storage, NUL-padded as struct does */
        if (v->v.s.len)
            memcpy(p, v->v.s.ptr, v->v.s.len);
        memset(p + v->v.s.len, 0, room - v->v.s.len);
        break;
    }
}

/* position turns a Python index into a position, or -ERANGE. */
static long position(const mp_shareable_list_t *l, long i)
{
    long n = (long)l->n;
    if (i < 0)
        i += n;
    return i < 0 || i >= n ? -ERANGE : i;
}

/* peek reads item i into *v, strings and bytes pointing into the segment. */
static int peek(const mp_shareable_list_t *l, size_t i, mp_val_t *v)
{
    char fmt[9] = {0};
    memcpy(fmt, l->fmts + 8 * i, 8);
    int code = (signed char)l->codes[i];
    const unsigned char *p = l->data + l->offs[i];
    size_t room = (size_t)(l->offs[i + 1] - l->offs[i]);
    if (code == CODE_NONE) {
        *v = mp_val_nil();
    } else if (code == CODE_STR || code == CODE_BYTES) {
        char *end;
        unsigned long long len = strtoull(fmt, &end, 10);
        if (end == fmt || strcmp(end, "s") != 0 || len > room)
            return -EBADMSG;
        while (len > 0 && p[len - 1] == 0)
            len--; /* Python's rstrip(b'\x00') */
        if (code == CODE_STR && !utf8_ok(p, (size_t)len))
            return -EBADMSG; /* Python: UnicodeDecodeError */
        *v = code == CODE_STR ? mp_val_strn((const char *)p, (size_t)len)
                              : mp_val_bytes(p, (size_t)len);
    } else if (code != CODE_PLAIN || room < 8) {
        return -EBADMSG;
    } else if (!strcmp(fmt, "q")) {
        *v = mp_val_int(rd64(p));
    } else if (!strcmp(fmt, "d")) {
        double d;
        memcpy(&d, p, 8);
        *v = mp_val_float(d);
    } else if (!strcmp(fmt, FMT_BOOL)) {
        *v = mp_val_bool(p[7] != 0);
    } else if (!strcmp(fmt, FMT_NONE)) {
        *v = mp_val_bool(p[6] != 0); /* what struct unpacks with code 0 */
    } else {
        return -EBADMSG;
    }
    return 0;
}

/* bind points l's parts into its mapped segment after checking the header
 * (a segment made by anyone: every offset is bounded by its size). */
static int bind(mp_shareable_list_t *l)
{
    unsigned char *b = mp_shm_buf(l->shm);
    size_t size = mp_shm_size(l->shm);
    if (size < 16)
        return -EBADMSG;
    int64_t n = rd64(b);
    if (n < 0 || (uint64_t)n > size / 8 - 2)
        return -EBADMSG;
    size_t data = ((size_t)n + 2) * 8;
    l->offs = malloc(((size_t)n + 1) * sizeof *l->offs);
    if (!l->offs)
        return -ENOMEM;
    for (size_t i = 0; i <= (size_t)n; i++) {
        int64_t o = rd64(b + 8 + 8 * i);
        if (o < 0 || (i == 0 && o != 0) || (i > 0 && (uint64_t)o < l->offs[i - 1]))
            return -EBADMSG;
        l->offs[i] = (uint64_t)o;
    }
    uint64_t dsize = l->offs[n];
    if (dsize > size || data + dsize + 9 * (uint64_t)n > size)
        return -EBADMSG;
    l->n = (size_t)n;
    l->data = b + data;
    l->fmts = l->data + dsize;
    l->codes = l->fmts + 8 * (size_t)n;
    return 0;
}

int mp_shareable_list_new(mp_shareable_list_t **out, const mp_val_t *items,
                          size_t n, const char *name, const mp_shm_opts_t *opts)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if ((!items && n) || n > (SIZE_MAX / 64))
        return -EINVAL;
    char fmt[9];
    int code, rc;
    size_t alloc, dsize = 0;
    for (size_t i = 0; i < n; i++) {
        if ((rc = plan(&items[i], fmt, &code, &alloc)) < 0)
            return rc;
        dsize += alloc;
    }
    mp_shareable_list_t *l = mp__calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    size_t total = 8 + 8 * (n + 1) + dsize + 9 * n;
    if ((rc = mp_shm_new(&l->shm, name, total, opts)) < 0)
        goto fail;
    unsigned char *b = mp_shm_buf(l->shm);
    wr64(b, (int64_t)n);
    size_t off = 0;
    wr64(b + 8, 0);
    for (size_t i = 0; i < n; i++) {
        plan(&items[i], fmt, &code, &alloc);
        off += alloc;
        wr64(b + 16 + 8 * i, (int64_t)off);
    }
    if ((rc = bind(l)) < 0) {
        mp_shm_unlink(l->shm);
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        plan(&items[i], fmt, &code, &alloc);
        store(l, i, &items[i], fmt, code);
    }
    *out = l;
    return 0;
fail:
    mp_shareable_list_free(l);
    return rc;
}

int mp_shareable_list_attach(mp_shareable_list_t **out, const char *name)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    mp_shareable_list_t *l = mp__calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    int rc = mp_shm_attach(&l->shm, name);
    if (rc == 0)
        rc = bind(l);
    if (rc < 0) {
        mp_shareable_list_free(l);
        return rc;
    }
    *out = l;
    return 0;
}

mp_shm_t *mp_shareable_list_shm(const mp_shareable_list_t *l)
{
    return l ? l->shm : NULL;
}

size_t mp_shareable_list_len(const mp_shareable_list_t *l)
{
    return l ? l->n : 0;
}

int mp_shareable_list_get(const mp_shareable_list_t *l, long i, mp_val_t **out)
{
    if (!l || !out)
        return -EINVAL;
    *out = NULL;
    long pos = position(l, i);
    if (pos < 0)
        return (int)pos;
    mp_val_t v;
    int rc = peek(l, (size_t)pos, &v);
    if (rc < 0)
        return rc;
    int s = v.type == MP_VAL_STR || v.type == MP_VAL_BYTES;
    size_t extra = s ? v.v.s.len + 1 : 0;
    mp_val_t *c = malloc(sizeof *c + extra);
    if (!c)
        return -ENOMEM;
    *c = v;
    if (s) {
        char *p = (char *)(c + 1);
        memcpy(p, v.v.s.ptr, v.v.s.len);
        p[v.v.s.len] = 0;
        c->v.s.ptr = p;
    }
    *out = c;
    return 0;
}

int mp_shareable_list_set(mp_shareable_list_t *l, long i, const mp_val_t *v)
{
    if (!l || !v)
        return -EINVAL;
    long pos = position(l, i);
    if (pos < 0)
        return (int)pos;
    char fmt[9];
    int code;
    size_t alloc;
    int rc = plan(v, fmt, &code, &alloc);
    if (rc < 0 && rc != -EMSGSIZE)
        return rc;
    size_t room = (size_t)(l->offs[pos + 1] - l->offs[pos]);
    if (v->type == MP_VAL_STR || v->type == MP_VAL_BYTES) {
        /* Python: "bytes/str item exceeds available storage". */
        if (v->v.s.len > room)
            return -EMSGSIZE;
        snprintf(fmt, sizeof fmt, "%zus", room);
    } else if (rc < 0) {
        return rc;
    } else if (room < 8) {
        return -EBADMSG; /* a crafted layout: no room for an 8-byte item */
    }
    store(l, (size_t)pos, v, fmt, code);
    return 0;
}

int mp_shareable_list_type(const mp_shareable_list_t *l, long i)
{
    if (!l)
        return -EINVAL;
    long pos = position(l, i);
    if (pos < 0)
        return (int)pos;
    mp_val_t v;
    int rc = peek(l, (size_t)pos, &v);
    return rc < 0 ? rc : (int)v.type;
}

long mp_shareable_list_capacity(const mp_shareable_list_t *l, long i)
{
    if (!l)
        return -EINVAL;
    long pos = position(l, i);
    if (pos < 0)
        return pos;
    return (long)(l->offs[pos + 1] - l->offs[pos]);
}

long mp_shareable_list_format(const mp_shareable_list_t *l, char *buf,
                              size_t cap)
{
    if (!l || (!buf && cap))
        return -EINVAL;
    size_t len = 0;
    for (size_t i = 0; i < l->n; i++) {
        char fmt[9] = {0};
        memcpy(fmt, l->fmts + 8 * i, 8);
        size_t k = strlen(fmt);
        for (size_t j = 0; j < k && len + j + 1 < cap; j++)
            buf[len + j] = fmt[j];
        len += k;
    }
    if (cap)
        buf[len < cap ? len : cap - 1] = 0;
    return (long)len;
}

/* num reads a number value as Python compares them; 0 if v is no number. */
static int num(const mp_val_t *v, int *isf, double *f, int64_t *i, int *big)
{
    *isf = 0, *big = 0;
    switch (v->type) {
    case MP_VAL_BOOL: *i = v->v.b; return 1;
    case MP_VAL_INT: *i = v->v.i; return 1;
    case MP_VAL_UINT:
        if (v->v.u > (uint64_t)INT64_MAX) {
            *big = 1;
            *f = (double)v->v.u;
        } else {
            *i = (int64_t)v->v.u;
        }
        return 1;
    case MP_VAL_FLOAT: *isf = 1, *f = v->v.f; return 1;
    default: return 0;
    }
}

/* int_eq_float: Python's exact int == float. */
static int int_eq_float(int64_t i, double f)
{
    return f >= -9223372036854775808.0 && f < 9223372036854775808.0 &&
           (int64_t)f == i && (double)(int64_t)f == f;
}

/* py_eq is Python's == between a stored item and v. */
static int py_eq(const mp_val_t *a, const mp_val_t *b)
{
    int af, bf, abig, bbig;
    double fa = 0, fb = 0;
    int64_t ia = 0, ib = 0;
    if (num(a, &af, &fa, &ia, &abig) && num(b, &bf, &fb, &ib, &bbig)) {
        if (abig || bbig) /* only a uint above INT64_MAX equals itself */
            return abig && bbig ? a->v.u == b->v.u
                   : (abig && bf) ? fb == fa && fb >= 9223372036854775808.0 &&
                                        fb < 18446744073709551616.0 &&
                                        (uint64_t)fb == a->v.u
                   : (bbig && af) ? fa == fb && fa >= 9223372036854775808.0 &&
                                        fa < 18446744073709551616.0 &&
                                        (uint64_t)fa == b->v.u
                                  : 0;
        if (af && bf)
            return fa == fb;
        if (af)
            return int_eq_float(ib, fa);
        if (bf)
            return int_eq_float(ia, fb);
        return ia == ib;
    }
    if (a->type != b->type)
        return 0;
    if (a->type == MP_VAL_NIL)
        return 1;
    if (a->type == MP_VAL_STR || a->type == MP_VAL_BYTES)
        return a->v.s.len == b->v.s.len &&
               (a->v.s.len == 0 || memcmp(a->v.s.ptr, b->v.s.ptr, a->v.s.len) == 0);
    return 0;
}

/* scan counts the items equal to v, and gives the first position. */
static long scan(const mp_shareable_list_t *l, const mp_val_t *v, long *first)
{
    if (!l || !v)
        return -EINVAL;
    long count = 0;
    *first = -1;
    for (size_t i = 0; i < l->n; i++) {
        mp_val_t x;
        int rc = peek(l, i, &x);
        if (rc < 0)
            return rc;
        if (py_eq(&x, v)) {
            if (*first < 0)
                *first = (long)i;
            count++;
        }
    }
    return count;
}

long mp_shareable_list_count(const mp_shareable_list_t *l, const mp_val_t *v)
{
    long first;
    return scan(l, v, &first);
}

long mp_shareable_list_index(const mp_shareable_list_t *l, const mp_val_t *v)
{
    long first;
    long rc = scan(l, v, &first);
    if (rc < 0)
        return rc;
    return first < 0 ? -ENOENT : first;
}

void mp_shareable_list_free(mp_shareable_list_t *l)
{
    if (!l)
        return;
    mp_shm_free(l->shm);
    free(l->offs);
    free(l);
}

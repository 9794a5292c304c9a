/* mproc/value.h: structured values (nil, booleans, integers, floats, strings,
 * bytes, arrays, maps, nested), the C counterpart of the Python objects that
 * Connection.send/recv and the manager carry. Included by mproc.h; do not
 * include directly.
 *
 * A value is a plain tree of mp_val_t nodes that the caller may build on the
 * stack with the mp_val_* constructors (they copy nothing: strings, bytes and
 * item arrays stay the caller's). On the wire a value is one msgpack object
 * (encoded and decoded with msgpack-c): str for strings, bin for bytes,
 * float64 for floats, the smallest integer form for integers.
 *
 * Decoding is bounded: it allocates at most a fixed multiple of the input's
 * size (every node needs at least one input byte), nests at most
 * MP_VAL_DEPTH_MAX levels, and rejects trailing bytes, so a hostile message
 * cannot make it allocate more than the receiver's maxlength allows.
 *
 * Threads: values are plain data; the functions keep no state. */
#ifndef MPROC_VALUE_H
#define MPROC_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    MP_VAL_NIL = 0,
    MP_VAL_BOOL,
    MP_VAL_INT,    /* i: any int64 */
    MP_VAL_UINT,   /* u: only for integers above INT64_MAX (decode gives
                    * MP_VAL_INT for everything that fits) */
    MP_VAL_FLOAT,  /* f: a double */
    MP_VAL_STR,    /* s: UTF-8 bytes, not NUL-terminated on the wire; decoded
                    * strings carry a terminating NUL after len bytes */
    MP_VAL_BYTES,  /* s: raw bytes */
    MP_VAL_ARRAY,  /* a: n items */
    MP_VAL_MAP,    /* m: n key/value pairs, in order */
} mp_val_type_t;

#define MP_VAL_DEPTH_MAX 64

typedef struct mp_val mp_val_t;
typedef struct mp_val_kv mp_val_kv_t;

struct mp_val {
    mp_val_type_t type;
    union {
        bool b;
        int64_t i;
        uint64_t u;
        double f;
        struct { const char *ptr; size_t len; } s;
        struct { mp_val_t *items; size_t n; } a;
        struct { mp_val_kv_t *items; size_t n; } m;
    } v;
};

struct mp_val_kv {
    mp_val_t key;
    mp_val_t val;
};

/* Constructors: values that point at the caller's memory (nothing copied).
 * mp_val_str takes a NUL-terminated string; mp_val_strn a length. */
MP_API mp_val_t mp_val_nil(void);
MP_API mp_val_t mp_val_bool(bool b);
MP_API mp_val_t mp_val_int(int64_t i);
MP_API mp_val_t mp_val_uint(uint64_t u); /* MP_VAL_INT when u <= INT64_MAX */
MP_API mp_val_t mp_val_float(double f);
MP_API mp_val_t mp_val_str(const char *s);
MP_API mp_val_t mp_val_strn(const char *s, size_t len);
MP_API mp_val_t mp_val_bytes(const void *p, size_t len);
MP_API mp_val_t mp_val_array(mp_val_t *items, size_t n);
MP_API mp_val_t mp_val_map(mp_val_kv_t *items, size_t n);

/* mp_val_pack encodes v into a new buffer (*buf, *len; release with free()).
 * Returns: 0; -EINVAL (NULL, an unknown type, a NULL pointer with a non-zero
 * length, nesting deeper than MP_VAL_DEPTH_MAX); -ENOMEM. */
MP_API int mp_val_pack(const mp_val_t *v, void **buf, size_t *len);

/* mp_val_unpack decodes exactly one value filling buf[0..len) into a new
 * tree (*out, one allocation; release with mp_val_free).
 * Returns: 0; -EBADMSG (not one valid msgpack value, trailing bytes, a type
 * msgpack has but mproc does not carry (ext), nesting deeper than
 * MP_VAL_DEPTH_MAX); -ENOMEM; -EINVAL. */
MP_API int mp_val_unpack(const void *buf, size_t len, mp_val_t **out);

/* mp_val_free releases a tree made by mp_val_unpack or mp_conn_recv.
 * Accepts NULL. */
MP_API void mp_val_free(mp_val_t *v);

/* mp_val_equal returns 1 when a and b are the same value (same types, same
 * contents, maps in the same order; floats compared bit for bit), else 0. */
MP_API int mp_val_equal(const mp_val_t *a, const mp_val_t *b);

/* mp_val_map_get returns the value of the first key of map m equal to the
 * string key, or NULL (also when m is not a map). */
MP_API const mp_val_t *mp_val_map_get(const mp_val_t *m, const char *key);

#endif

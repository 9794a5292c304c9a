/* fuzz_manager.c: libFuzzer target for the manager's request handling
 * (src/manager.c: decoding a request, dispatching it to an object of each
 * built-in kind, building the reply), the code a hostile client reaches.
 *
 * For each input: serving it never crashes, never blocks (the entry makes
 * every deadline "now"), and always produces a well-formed reply: the
 * 9-byte int64 code first, a code that is 0 or negative, then exactly one
 * value that our decoder accepts (nil when the code is not 0). Any
 * violation calls abort(), which libFuzzer reports as a crash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mproc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int mgr_fuzz_request(const void *req, size_t len, void **reply, size_t *rlen);

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_manager: %s\n", what);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    void *reply = NULL;
    size_t rlen = 0;
    int rc = mgr_fuzz_request(data, size, &reply, &rlen);
    if (rc < 0)
        return 0; /* out of memory in the reply: nothing to check */
    const unsigned char *r = reply;
    if (rlen < 10 || r[0] != 0xd3)
        fail("reply does not start with a 9-byte int64 code");
    int64_t code = 0;
    for (int i = 1; i < 9; i++)
        code = (int64_t)((uint64_t)code << 8 | r[i]);
    if (code > 0)
        fail("positive reply code");
    mp_val_t *v = NULL;
    if (mp_val_unpack(r + 9, rlen - 9, &v) != 0)
        fail("reply value does not decode");
    if (code != 0 && v->type != MP_VAL_NIL)
        fail("an error reply carries a value");
    mp_val_free(v);
    free(reply);
    return 0;
}

/* fuzz_handshake.c: libFuzzer target for the authkey handshake
 * (src/auth.c: mp_conn_deliver_challenge, mp_conn_answer_challenge) facing
 * a peer that sends anything.
 *
 * Input: byte 0 picks the call (bit 0: 0 answer, 1 deliver) and the key
 * (bit 1: 0 "fuzz key", 1 the empty key); the rest is everything the peer
 * sends before it shuts its writing side. The bytes go into one end of a
 * unix socketpair (whose other end we wrap with mp_conn_from_fd), the peer
 * shuts down writing, and the call runs with timeout 0: every byte and the
 * end of file are already there, so it may never time out, and it must
 * return at once.
 *
 * Every outcome is checked against a reference reading of the same bytes
 * (Python's framing; Python 3.12's rules for challenges and responses):
 * - answer: MP_EEOF if the stream ends cleanly before the challenge or the
 *   verdict; 0 only for a valid challenge followed by exactly "#WELCOME#";
 *   MP_EAUTH otherwise. What we sent must be exactly Python's response to a
 *   valid challenge (computed here with OpenSSL), and nothing for an
 *   invalid one.
 * - deliver: the peer cannot know our random challenge, so 0 never; MP_EEOF
 *   for a clean end, MP_EAUTH otherwise. What we sent must be
 *   "#CHALLENGE#{sha256}" + 40 bytes, then "#FAILURE#" exactly when the
 *   peer's answer was a well-formed frame of at most 256 bytes.
 * While the call runs, a malloc hook aborts on any allocation over
 * ALLOC_MAX: memory follows the 256-byte limit, never a header's claim.
 * Any violation calls abort(), which libFuzzer reports as a crash. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sanitizer/allocator_interface.h>

#include "mproc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define RECV_MAX 256
#define ALLOC_MAX                                                                                  \
    16384 /* a handshake message is <= 256 bytes; OpenSSL's                                        \
           * steady-state contexts are a few hundred */

static const char KEY[] = "fuzz key";

static volatile int watching;

static void fail(const char *what, int rc)
{
    watching = 0;
    fprintf(stderr, "fuzz_handshake: %s (rc %d: %s)\n", what, rc, mp_strerror(rc));
    abort();
}

static void malloc_hook(const volatile void *p, size_t n)
{
    (void)p;
    if (watching && n > ALLOC_MAX) {
        watching = 0;
        fprintf(stderr, "fuzz_handshake: an allocation of %zu bytes\n", n);
        abort();
    }
}

static void free_hook(const volatile void *p)
{
    (void)p;
}

/* ---- the reference ---------------------------------------------------------- */

enum { FR_OK, FR_EOF, FR_BAD }; /* FR_BAD: cut, negative, or over RECV_MAX */

typedef struct {
    const uint8_t *s;
    size_t n, pos;
} stream_t;

static uint64_t be(const uint8_t *p, int k)
{
    uint64_t x = 0;
    for (int i = 0; i < k; i++)
        x = x << 8 | p[i];
    return x;
}

/* next_frame reads the next frame as a receive limited to RECV_MAX would. */
static int next_frame(stream_t *st, const uint8_t **body, size_t *len)
{
    size_t left = st->n - st->pos;
    const uint8_t *p = st->s + st->pos;
    if (left == 0)
        return FR_EOF;
    if (left < 4)
        return FR_BAD;
    int32_t s32 = (int32_t)(uint32_t)be(p, 4);
    uint64_t size = (uint64_t)s32;
    size_t hdr = 4;
    if (s32 == -1) {
        if (left < 12)
            return FR_BAD;
        size = be(p + 4, 8);
        hdr = 12;
    } else if (s32 < 0) {
        return FR_BAD;
    }
    if (size > RECV_MAX || size > left - hdr)
        return FR_BAD;
    *body = p + hdr;
    *len = (size_t)size;
    st->pos += hdr + (size_t)size;
    return FR_OK;
}

static const EVP_MD *digest(const uint8_t *name, size_t n)
{
    static const char *const names[] = {"md5", "sha256", "sha384", "sha3_256", "sha3_384"};
    const EVP_MD *mds[] = {EVP_md5(), EVP_sha256(), EVP_sha384(), EVP_sha3_256(), EVP_sha3_384()};
    for (int i = 0; i < 5; i++)
        if (strlen(names[i]) == n && memcmp(names[i], name, n) == 0)
            return mds[i];
    return NULL;
}

/* ref_response computes Python 3.12's response to the challenge frame f
 * into out; returns its length, or 0 if the challenge must be refused. */
static size_t ref_response(const uint8_t *f, size_t len, const void *key, size_t keylen,
                           uint8_t *out)
{
    static const uint8_t zero[1];
    unsigned hl = 0;
    if (len < 11 || memcmp(f, "#CHALLENGE#", 11) != 0)
        return 0;
    const uint8_t *m = f + 11;
    size_t mlen = len - 11;
    if (mlen < 20)
        return 0;
    if (mlen == 20) {
        HMAC(EVP_md5(), keylen ? key : zero, (int)keylen, m, mlen, out, &hl);
        return hl;
    }
    if (m[0] != '{')
        return 0;
    const uint8_t *curly = memchr(m + 1, '}', mlen - 1 < 9 ? mlen - 1 : 9);
    if (!curly)
        return 0;
    size_t nl = (size_t)(curly - m - 1);
    const EVP_MD *md = digest(m + 1, nl);
    if (!md)
        return 0;
    memcpy(out, m, nl + 2);
    HMAC(md, keylen ? key : zero, (int)keylen, m, mlen, out + nl + 2, &hl);
    return nl + 2 + hl;
}

/* ---- what we sent --------------------------------------------------------------- */

/* sent_bytes reads what our side wrote (all of it is in the socket) into
 * buf; returns its length. */
static size_t sent_bytes(int fd, uint8_t *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = recv(fd, buf + n, cap - n, MSG_DONTWAIT);
        if (r <= 0)
            return n;
        n += (size_t)r;
        if (n == cap)
            fail("we sent too much", 0);
    }
}

static int frame_is(const uint8_t *p, size_t n, const void *want, size_t wlen)
{
    return n == 4 + wlen && be(p, 4) == wlen && memcmp(p + 4, want, wlen) == 0;
}

static void check_answer(const uint8_t *in, size_t n, const void *key, size_t keylen, int rc,
                         const uint8_t *out, size_t outlen)
{
    stream_t st = {in, n, 0};
    const uint8_t *f = NULL;
    size_t flen = 0;
    uint8_t resp[128];
    size_t rlen = 0;
    int want;
    int fr = next_frame(&st, &f, &flen);
    if (fr != FR_OK) {
        want = fr == FR_EOF ? MP_EEOF : MP_EAUTH;
    } else if ((rlen = ref_response(f, flen, key, keylen, resp)) == 0) {
        want = MP_EAUTH;
    } else {
        fr = next_frame(&st, &f, &flen);
        want = fr == FR_EOF                                  ? MP_EEOF
               : fr == FR_BAD                                ? MP_EAUTH
               : flen == 9 && memcmp(f, "#WELCOME#", 9) == 0 ? 0
                                                             : MP_EAUTH;
    }
    if (rc != want)
        fail(want == 0 ? "answer refused a valid challenge and welcome"
                       : "answer's result differs from the reference",
             rc);
    if (rlen == 0 ? outlen != 0 : !frame_is(out, outlen, resp, rlen))
        fail("answer sent something else than Python's response", rc);
}

static void check_deliver(const uint8_t *in, size_t n, int rc, const uint8_t *out, size_t outlen)
{
    stream_t st = {in, n, 0};
    const uint8_t *f = NULL;
    size_t flen = 0;
    int fr = next_frame(&st, &f, &flen);
    int want = fr == FR_EOF ? MP_EEOF : MP_EAUTH;
    if (rc != want)
        fail(rc == 0 ? "deliver accepted a made-up answer"
                     : "deliver's result differs from the reference",
             rc);
    if (outlen < 4 + 59 || be(out, 4) != 59 || memcmp(out + 4, "#CHALLENGE#{sha256}", 19) != 0)
        fail("deliver's challenge is not Python 3.12's", rc);
    const uint8_t *rest = out + 63;
    size_t restlen = outlen - 63;
    if (fr == FR_OK ? !frame_is(rest, restlen, "#FAILURE#", 9) : restlen != 0)
        fail("deliver's verdict is wrong", rc);
}

/* ---- the target ---------------------------------------------------------------- */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* OpenSSL's first use of each digest builds its tables: do it before
     * the hook watches, so that what it watches is the handshake's own. */
    uint8_t out[EVP_MAX_MD_SIZE];
    unsigned n;
    const EVP_MD *mds[] = {EVP_md5(), EVP_sha256(), EVP_sha384(), EVP_sha3_256(), EVP_sha3_384()};
    for (int i = 0; i < 5; i++)
        HMAC(mds[i], KEY, (int)sizeof KEY - 1, (const uint8_t *)"x", 1, out, &n);
    __sanitizer_install_malloc_and_free_hooks(malloc_hook, free_hook);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int deliver = data[0] & 1;
    const void *key = (data[0] & 2) ? "" : KEY;
    size_t keylen = (data[0] & 2) ? 0 : sizeof KEY - 1;
    const uint8_t *in = data + 1;
    size_t n = size - 1;

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        fail("socketpair", -errno);
    int big = 1 << 20;
    (void)setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    (void)setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    size_t done = 0;
    while (done < n) {
        ssize_t w = send(sv[1], in + done, n - done, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w <= 0)
            break; /* full: the stream is what fitted */
        done += (size_t)w;
    }
    n = done;
    shutdown(sv[1], SHUT_WR);

    mp_conn_t *c = NULL;
    int rc = mp_conn_from_fd(&c, sv[0], 1, 1);
    if (rc != 0)
        fail("mp_conn_from_fd", rc);
    double t0 = now();
    watching = 1;
    rc = deliver ? mp_conn_deliver_challenge(c, key, keylen, 0)
                 : mp_conn_answer_challenge(c, key, keylen, 0);
    watching = 0;
    if (now() - t0 > 2.0)
        fail("the handshake took seconds with every byte already there", rc);
    if (rc == -ETIMEDOUT)
        fail("timed out with every byte and the end of file already there", rc);

    static uint8_t out[4096];
    size_t outlen = sent_bytes(sv[1], out, sizeof out);
    if (deliver)
        check_deliver(in, n, rc, out, outlen);
    else
        check_answer(in, n, key, keylen, rc, out, outlen);
    mp_conn_free(c);
    close(sv[1]);
    return 0;
}

/* auth.c: the authkey handshake of Python's multiprocessing.connection
 * (deliver_challenge, answer_challenge), byte for byte, over any connection.
 *
 * The protocol (CPython Lib/multiprocessing/connection.py):
 *   challenger -> "#CHALLENGE#" MESSAGE
 *       Python >= 3.12: MESSAGE = "{sha256}" + 40 random bytes;
 *       Python <= 3.11: MESSAGE = 20 random bytes (no prefix).
 *   answerer   -> RESPONSE = "{name}" HMAC-name(key, MESSAGE) when MESSAGE
 *       names a digest ("{name}..."), or the raw 16-byte HMAC-MD5 of MESSAGE
 *       when MESSAGE is 20 bytes long (the legacy form). The MAC covers the
 *       whole MESSAGE, prefix included, so a man in the middle cannot
 *       downgrade the digest.
 *   challenger -> "#WELCOME#" or "#FAILURE#".
 * A 3.12+ challenger accepts a response with any allowed digest prefix, or
 * an unprefixed 16-byte HMAC-MD5 (a 3.11 answerer hashes the whole prefixed
 * message with MD5). Every receive is limited to 256 bytes.
 *
 * We speak the 3.12+ form: challenges carry "{sha256}", answers follow what
 * the challenger asked. Everything the peer sends is untrusted: at most 256
 * bytes are ever received per step (mp_conn_recv_bytes grows its buffer with
 * the bytes that arrive, never with what a header claims), and every parse
 * below is bounded by the received length.
 *
 * Both calls take one timeout that becomes one absolute deadline; each
 * receive gets the time left. Sends are a few dozen bytes and do not block
 * on a healthy socket.
 * MT-safe: yes (no state; a connection is used by one thread at a time).
 * Fork-safe: yes. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "mproc.h"
#include "sys/platform.h"

#define CHALLENGE "#CHALLENGE#"
#define CHALLENGE_LEN (sizeof CHALLENGE - 1)
#define WELCOME "#WELCOME#"
#define WELCOME_LEN (sizeof WELCOME - 1)
#define FAILURE "#FAILURE#"
#define FAILURE_LEN (sizeof FAILURE - 1)
#define OUR_DIGEST "{sha256}"
#define OUR_DIGEST_LEN (sizeof OUR_DIGEST - 1)

#define RECV_MAX 256      /* Python: recv_bytes(256) at every step */
#define MESSAGE_RANDOM 40 /* Python 3.12+: MESSAGE_LENGTH */
#define LEGACY_MESSAGE 20 /* Python <= 3.11 challenge length (no prefix) */
#define MD5_LEN 16        /* a legacy, unprefixed HMAC-MD5 response */
#define DIGEST_NAME_MAX 8 /* the longest allowed name: "sha3_256" */

/* remaining returns the seconds left before d, for the next call (never
 * negative; MP_FOREVER for MP__NEVER). */
static double remaining(mp__deadline_t d)
{
    if (d == MP__NEVER)
        return MP_FOREVER;
    int64_t left = d - mp__now_ns();
    return left > 0 ? (double)left / 1e9 : 0.0;
}

/* recv_step receives one handshake message of at most RECV_MAX bytes.
 * What the peer did wrong at the framing level (too long, broken framing)
 * is an authentication failure; time-outs and a clean end of file keep
 * their codes. */
static int recv_step(mp_conn_t *c, void **buf, size_t *len, mp__deadline_t d)
{
    int rc = mp_conn_recv_bytes(c, buf, len, RECV_MAX, remaining(d));
    if (rc == -EMSGSIZE || rc == -EPROTO)
        return MP_EAUTH;
    return rc;
}

/* digest_by_name maps a digest name Python allows to OpenSSL's, or NULL. */
static const EVP_MD *digest_by_name(const unsigned char *name, size_t n)
{
    static const struct {
        const char *name;
        const EVP_MD *(*md)(void);
    } allowed[] = {
        {"md5", EVP_md5},           {"sha256", EVP_sha256},     {"sha384", EVP_sha384},
        {"sha3_256", EVP_sha3_256}, {"sha3_384", EVP_sha3_384},
    };
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
        if (strlen(allowed[i].name) == n && memcmp(allowed[i].name, name, n) == 0)
            return allowed[i].md();
    return NULL;
}

/* parse_digest splits a message or a response into its digest and payload,
 * as Python's _get_digest_name_and_payload: a 16- or 20-byte message is the
 * legacy form (*md NULL: MD5, no prefix, the payload is all of it);
 * otherwise it must begin with "{name}" where name is an allowed digest of
 * at most DIGEST_NAME_MAX bytes. Returns 0, or MP_EAUTH. *name_len gets the
 * length of "{name}" (0 for the legacy form). */
static int parse_digest(const unsigned char *m, size_t len, const EVP_MD **md, size_t *name_len)
{
    *md = NULL;
    *name_len = 0;
    if (len == LEGACY_MESSAGE || len == MD5_LEN)
        return 0;
    if (len < 2 || m[0] != '{')
        return MP_EAUTH;
    /* Python looks for the first '}' at indexes 1 .. DIGEST_NAME_MAX + 1. */
    size_t end = len < DIGEST_NAME_MAX + 2 ? len : DIGEST_NAME_MAX + 2;
    const unsigned char *curly = memchr(m + 1, '}', end - 1);
    if (!curly)
        return MP_EAUTH;
    size_t n = (size_t)(curly - (m + 1));
    *md = digest_by_name(m + 1, n);
    if (!*md)
        return MP_EAUTH;
    *name_len = n + 2;
    return 0;
}

/* mac computes HMAC-md(key, data) into out (EVP_MAX_MD_SIZE bytes); returns
 * its length, or 0 if the digest is unavailable (MD5 under FIPS). */
static unsigned mac(const EVP_MD *md, const void *key, size_t keylen, const unsigned char *data,
                    size_t len, unsigned char *out)
{
    static const unsigned char empty_key[1] = {0};
    unsigned outlen = 0;
    if (!HMAC(md, keylen ? key : empty_key, (int)keylen, data, len, out, &outlen))
        return 0;
    return outlen;
}

/* check_args validates the arguments shared by both calls and sets *d. */
static int check_args(const mp_conn_t *c, const void *key, size_t keylen, double timeout,
                      mp__deadline_t *d)
{
    if (!c || (!key && keylen) || keylen > INT_MAX)
        return -EINVAL;
    return mp__deadline(timeout, d);
}

/* verify checks the peer's response to our message, as Python's
 * _verify_challenge: 0 if right, MP_EAUTH otherwise. */
static int verify(const void *key, size_t keylen, const unsigned char *msg, size_t msglen,
                  const unsigned char *resp, size_t resplen)
{
    const EVP_MD *md;
    size_t skip;
    unsigned char want[EVP_MAX_MD_SIZE];
    if (parse_digest(resp, resplen, &md, &skip) != 0)
        return MP_EAUTH;
    unsigned n = mac(md ? md : EVP_md5(), key, keylen, msg, msglen, want);
    int rc = MP_EAUTH;
    if (n != 0 && resplen - skip == n && CRYPTO_memcmp(want, resp + skip, n) == 0)
        rc = 0;
    OPENSSL_cleanse(want, sizeof want);
    return rc;
}

/* fill_random fills buf with len bytes from the kernel's generator. */
static int fill_random(unsigned char *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = getrandom(buf + got, len - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)n;
    }
    return 0;
}

int mp_conn_deliver_challenge(mp_conn_t *c, const void *key, size_t keylen, double timeout)
{
    unsigned char out[CHALLENGE_LEN + OUR_DIGEST_LEN + MESSAGE_RANDOM];
    const unsigned char *msg = out + CHALLENGE_LEN;
    const size_t msglen = sizeof out - CHALLENGE_LEN;
    void *resp = NULL;
    size_t resplen = 0;
    mp__deadline_t d;
    int rc = check_args(c, key, keylen, timeout, &d);
    if (rc != 0)
        return rc;

    memcpy(out, CHALLENGE OUR_DIGEST, CHALLENGE_LEN + OUR_DIGEST_LEN);
    rc = fill_random(out + CHALLENGE_LEN + OUR_DIGEST_LEN, MESSAGE_RANDOM);
    if (rc != 0)
        goto done;
    rc = mp_conn_send_bytes(c, out, sizeof out);
    if (rc != 0)
        goto done;
    rc = recv_step(c, &resp, &resplen, d);
    if (rc != 0)
        goto done;
    rc = verify(key, keylen, msg, msglen, resp, resplen);
    if (rc == 0) {
        rc = mp_conn_send_bytes(c, WELCOME, WELCOME_LEN);
    } else {
        /* The verdict is the failure, whether or not the peer hears it. */
        (void)mp_conn_send_bytes(c, FAILURE, FAILURE_LEN);
        rc = MP_EAUTH;
    }
done:
    free(resp);
    OPENSSL_cleanse(out, sizeof out);
    return rc;
}

/* make_response builds our answer to the challenge message m (prefix and
 * random part, without "#CHALLENGE#") into out (room for the longest
 * "{name}" and digest) and sets *outlen; MP_EAUTH for a challenge we may not
 * answer. As Python's _create_response: a legacy challenge gets the raw
 * HMAC-MD5, or "{sha256}"-prefixed HMAC-SHA256 where MD5 is unavailable. */
static int make_response(const void *key, size_t keylen, const unsigned char *m, size_t len,
                         unsigned char *out, size_t *outlen)
{
    const EVP_MD *md;
    size_t name_len;
    if (len < LEGACY_MESSAGE || parse_digest(m, len, &md, &name_len) != 0)
        return MP_EAUTH;
    if (!md) {
        unsigned n = mac(EVP_md5(), key, keylen, m, len, out);
        if (n != 0) {
            *outlen = n;
            return 0;
        }
        md = EVP_sha256();
        memcpy(out, OUR_DIGEST, OUR_DIGEST_LEN);
        name_len = OUR_DIGEST_LEN;
    } else {
        memcpy(out, m, name_len); /* the challenger's "{name}" */
    }
    unsigned n = mac(md, key, keylen, m, len, out + name_len);
    if (n == 0)
        return MP_EAUTH;
    *outlen = name_len + n;
    return 0;
}

int mp_conn_answer_challenge(mp_conn_t *c, const void *key, size_t keylen, double timeout)
{
    unsigned char out[DIGEST_NAME_MAX + 2 + EVP_MAX_MD_SIZE];
    size_t outlen = 0;
    void *msg = NULL, *reply = NULL;
    size_t len = 0, replylen = 0;
    mp__deadline_t d;
    int rc = check_args(c, key, keylen, timeout, &d);
    if (rc != 0)
        return rc;

    rc = recv_step(c, &msg, &len, d);
    if (rc != 0)
        goto done;
    if (len < CHALLENGE_LEN || memcmp(msg, CHALLENGE, CHALLENGE_LEN) != 0) {
        rc = MP_EAUTH;
        goto done;
    }
    rc = make_response(key, keylen, (unsigned char *)msg + CHALLENGE_LEN, len - CHALLENGE_LEN, out,
                       &outlen);
    if (rc != 0)
        goto done;
    rc = mp_conn_send_bytes(c, out, outlen);
    if (rc != 0)
        goto done;
    rc = recv_step(c, &reply, &replylen, d);
    if (rc != 0)
        goto done;
    if (replylen != WELCOME_LEN || memcmp(reply, WELCOME, WELCOME_LEN) != 0)
        rc = MP_EAUTH;
done:
    free(msg);
    free(reply);
    OPENSSL_cleanse(out, sizeof out);
    return rc;
}

/* fuzz_frame.c: libFuzzer target for the connection frame reader
 * (src/conn.c: mp_conn_recv_bytes, mp_conn_recv_bytes_into).
 *
 * Input: byte 0 is a script of receive calls, the rest is the stream a peer
 * wrote before closing its end. The stream goes into a pipe (made 1 MiB
 * large; an input longer than the pipe holds is cut to what fits) whose
 * write end is then closed, and the read end is wrapped with
 * mp_conn_from_fd. Receives follow, alternately with timeout 0 and with
 * MP_FOREVER (which takes the receive's short path for a pipe with nothing
 * pending; it cannot block, since the end of file is in the pipe), each
 * chosen by two bits of the script (cycling):
 *   0: mp_conn_recv_bytes, maxlength 4096
 *   1: mp_conn_recv_bytes_into a 64-byte buffer
 *   2: mp_conn_recv_bytes_into a 4096-byte buffer at offset 100
 *   3: mp_conn_recv_bytes without a limit (memory must grow only with the
 *      bytes that arrive; libFuzzer's -malloc_limit_mb catches a receiver
 *      that trusts a header's 2^63; a claim of 2^64 - 1 bytes, which no
 *      buffer can hold, may be refused with -EMSGSIZE)
 * until end of file or a broken stream, or until four calls in a row (one
 * of each op position) were refused, or a bounded number of calls.
 *
 * Every result is checked against a reference parse of the same stream
 * (Python's framing: a 4-byte big-endian signed length, -1 escaping to an
 * 8-byte unsigned one): a message must be the next frame, byte for byte; a
 * too-long one must be refused with its size (-EMSGSIZE, MP_ETOOSHORT) and
 * stay first in line; MP_EEOF only at the end of the stream, between frames;
 * -EPROTO only for a cut or negative frame. Since every byte and the end of
 * file are already in the pipe, no call may time out. Any violation calls
 * abort(), which libFuzzer reports as a crash. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mproc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SMALL 64
#define LARGE 4096
#define OFFSET 100

static void fail(const char *what, int rc)
{
    fprintf(stderr, "fuzz_frame: %s (rc %d: %s)\n", what, rc, mp_strerror(rc));
    abort();
}

/* The reference reader: where the next frame's body starts and how long it
 * claims to be. */
typedef struct {
    const uint8_t *s;
    size_t n, pos;  /* stream and the offset of the next frame */
    int state;      /* FR_OK, FR_END (clean end), FR_BAD (cut or negative) */
    uint64_t size;  /* FR_OK: the frame's claimed size */
    size_t body;    /* FR_OK: the offset of its body */
} ref_t;

enum { FR_OK, FR_END, FR_BAD };

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t x = 0;
    for (int i = 0; i < n; i++)
        x = x << 8 | p[i];
    return x;
}

/* ref_peek parses the frame at r->pos without consuming it. */
static void ref_peek(ref_t *r)
{
    size_t left = r->n - r->pos;
    const uint8_t *p = r->s + r->pos;
    if (left == 0) {
        r->state = FR_END;
        return;
    }
    if (left < 4) {
        r->state = FR_BAD;
        return;
    }
    int32_t s = (int32_t)(uint32_t)be(p, 4);
    r->body = r->pos + 4;
    r->size = (uint64_t)s;
    if (s == -1) {
        if (left < 12) {
            r->state = FR_BAD;
            return;
        }
        r->size = be(p + 4, 8);
        r->body = r->pos + 12;
    } else if (s < 0) {
        r->state = FR_BAD;
        return;
    }
    r->state = FR_OK;
}

/* ref_complete says whether the peeked frame's body is all there. */
static int ref_complete(const ref_t *r)
{
    return r->state == FR_OK && r->size <= r->n - r->body;
}

/* check_msg checks a received message against the next frame, and moves
 * the reference past it. */
static void check_msg(ref_t *r, const void *buf, size_t len)
{
    if (!ref_complete(r) || len != r->size)
        fail("received a message the stream does not hold", 0);
    if (len && memcmp(buf, r->s + r->body, len) != 0)
        fail("received bytes differ from the frame's", 0);
    r->pos = r->body + len;
    ref_peek(r);
}

/* check_error checks a failed receive against the reference; returns 1 if
 * the connection is finished (end of file, broken stream). */
static int check_error(const ref_t *r, int rc, uint64_t limit)
{
    switch (rc) {
    case MP_EEOF:
        if (r->state != FR_END)
            fail("end of file before the stream's end", rc);
        return 1;
    case -EPROTO:
        if (r->state == FR_END || ref_complete(r))
            fail("-EPROTO for an intact frame", rc);
        return 1;
    case -EMSGSIZE: case MP_ETOOSHORT:
        if (r->state != FR_OK || r->size <= limit)
            fail("refused a frame within the limit", rc);
        return 0;
    default:
        fail("unexpected code", rc);
    }
    return 1;
}

/* recv_one runs the receive op picks; returns 1 when the connection is done. */
static int recv_one(mp_conn_t *c, ref_t *r, int op, double t)
{
    static unsigned char buf[LARGE];
    void *p = NULL;
    size_t len = 0, got = SIZE_MAX;
    int rc;
    switch (op) {
    case 0: case 3:
        rc = mp_conn_recv_bytes(c, &p, &len, op == 0 ? LARGE : 0, t);
        if (rc != 0)
            return check_error(r, rc, op == 0 ? LARGE : SIZE_MAX - 1);
        if (!p || (op == 0 && len > LARGE))
            fail("recv_bytes broke its contract", rc);
        check_msg(r, p, len);
        free(p);
        return 0;
    case 1:
        rc = mp_conn_recv_bytes_into(c, buf, SMALL, 0, &got, t);
        if (rc == MP_ETOOSHORT && got != r->size)
            fail("MP_ETOOSHORT did not give the message's size", rc);
        if (rc != 0)
            return check_error(r, rc, SMALL);
        if (got > SMALL)
            fail("recv_bytes_into took more than its buffer", rc);
        check_msg(r, buf, got);
        return 0;
    default:
        rc = mp_conn_recv_bytes_into(c, buf, LARGE, OFFSET, &got, t);
        if (rc == MP_ETOOSHORT && got != r->size)
            fail("MP_ETOOSHORT did not give the message's size", rc);
        if (rc != 0)
            return check_error(r, rc, LARGE - OFFSET);
        if (got > LARGE - OFFSET)
            fail("recv_bytes_into took more than its buffer", rc);
        check_msg(r, buf + OFFSET, got);
        return 0;
    }
}

/* fill_pipe writes as much of s as the pipe holds and closes the writer;
 * returns the read end and the number of bytes written. */
static int fill_pipe(const uint8_t *s, size_t n, size_t *written)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0)
        fail("pipe2", -errno);
    (void)fcntl(fds[1], F_SETPIPE_SZ, 1 << 20); /* best effort */
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fds[1], s + done, n - done);
        if (w <= 0)
            break; /* full (EAGAIN): the stream is what fitted */
        done += (size_t)w;
    }
    close(fds[1]);
    /* The reader blocks like any connection's descriptor would. */
    fcntl(fds[0], F_SETFL, 0);
    *written = done;
    return fds[0];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    unsigned script = data[0];
    ref_t r = {data + 1, 0, 0, FR_END, 0, 0};
    int fd = fill_pipe(data + 1, size - 1, &r.n);
    mp_conn_t *c = NULL;
    int rc = mp_conn_from_fd(&c, fd, 1, 0);
    if (rc != 0)
        fail("mp_conn_from_fd", rc);
    ref_peek(&r);
    /* Each call consumes a frame, ends the stream or is refused; four
     * refusals in a row are every op of the script: nothing will change. */
    size_t refused = 0;
    for (size_t i = 0; i < 16 + 4 * size && refused < 4; i++) {
        size_t before = r.pos;
        if (recv_one(c, &r, (int)(script >> (2 * (i % 4)) & 3), i % 2 ? MP_FOREVER : 0))
            break;
        refused = r.pos == before && r.state == FR_OK ? refused + 1 : 0;
    }
    mp_conn_free(c);
    return 0;
}

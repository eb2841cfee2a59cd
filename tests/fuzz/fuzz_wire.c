/*
 * Fuzz harness for the wire codec (transport-ucx/src/wire.c), the code every
 * byte from the network goes through before a handler sees it.  One input
 * goes to genie_wire_check_hdr (as a header, with a data length taken from
 * the input) and then, as a payload, through a parse of every message shape
 * the executor and the driver read: the same sequence of reader calls as the
 * handlers in launcher/executor_serve.c, transport-ucx/src/ucx.c (HELLO) and
 * transport-ucx/src/client.c (replies), including their own range checks.
 *
 * Invariants checked on every parse: the reader's position never passes the
 * end; it either succeeds with pos == len or fails with a negative status and
 * a recorded reason; every pointer it hands out (byte strings, tensor data)
 * lies inside the payload, tensor data 8-byte aligned relative to its start
 * and nbytes == numel * element size; a count it accepts fits in what
 * remained.  Inputs are copied into buffers of exactly their size, so in the
 * ASan+UBSan build (build-asan/) any over-read is reported.
 *
 *   - libFuzzer: build with -DGENIE_LIBFUZZER -fsanitize=fuzzer,address,undefined;
 *   - CTest (label fuzz): main() mutates valid payloads of every shape (and
 *     random bytes) with a seeded xorshift for 200,000 iterations or 20
 *     seconds, whichever comes first.  fuzz_wire [iterations] [seconds] [seed].
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "genie/wire.h"

static uint64_t n_ok, n_refused, n_hdr_ok;

static void die(const char *shape, const char *what)
{
    fprintf(stderr, "fuzz_wire: %s: %s (last error: '%s')\n", shape, what, genie_last_error());
    abort();
}

/* ---- invariants ------------------------------------------------------------- */

static void check_ptr(const genie_wire_reader_t *r, const void *p, uint64_t n, const char *shape)
{
    const uint8_t *b = p;
    if (r->pos > r->len) {
        die(shape, "reader position past the end");
    }
    if (r->st != GENIE_OK) {
        return;
    }
    if (b == NULL || b < r->buf || (uint64_t)(r->buf + r->len - b) < n) {
        die(shape, "a pointer handed out lies outside the payload");
    }
}

static void check_tensor(const genie_wire_reader_t *r, const genie_wire_tensor_t *t,
                         const char *shape)
{
    uint64_t numel = 1;

    if (r->st != GENIE_OK) {
        if (t->data != NULL || t->ndim != 0) {
            die(shape, "a refused tensor was filled in");
        }
        return;
    }
    if ((unsigned)t->dtype >= GENIE_DTYPE_COUNT || t->ndim < 0 || t->ndim > GENIE_MAX_DIMS) {
        die(shape, "accepted a tensor with a bad dtype or rank");
    }
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 0) {
            die(shape, "accepted a negative extent");
        }
        if (t->shape[d] != 0 && numel > UINT64_MAX / (uint64_t)t->shape[d]) {
            die(shape, "accepted a shape whose element count overflows");
        }
        numel *= (uint64_t)t->shape[d];
    }
    if (numel > UINT64_MAX / 8 || t->nbytes != numel * genie_dtype_size(t->dtype)) {
        die(shape, "accepted nbytes that disagree with the shape");
    }
    if (((const uint8_t *)t->data - r->buf) % 8 != 0) {
        die(shape, "tensor data is not 8-byte aligned");
    }
    check_ptr(r, t->data, t->nbytes, shape);
}

static void check_count(const genie_wire_reader_t *r, uint32_t n, size_t min_item,
                        const char *shape)
{
    if (r->st == GENIE_OK && (uint64_t)n * min_item > r->len - r->pos) {
        die(shape, "accepted a count that cannot fit");
    }
    if (r->st != GENIE_OK && n != 0) {
        die(shape, "a failed count is not 0");
    }
}

static void finish(genie_wire_reader_t *r, const char *shape)
{
    genie_status_t st = genie_wire_r_done(r);

    if (r->pos > r->len) {
        die(shape, "reader position past the end");
    }
    if (st == GENIE_OK) {
        if (r->pos != r->len) {
            die(shape, "accepted with bytes left over");
        }
        n_ok++;
    } else {
        if (st >= 0 || genie_last_error()[0] == '\0') {
            die(shape, "refusal without a status or a reason");
        }
        if (st != GENIE_ERR_TRUNCATED && st != GENIE_ERR_CORRUPT) {
            die(shape, "refusal with a status other than TRUNCATED or CORRUPT");
        }
        n_refused++;
    }
}

/* ---- the handlers' parse sequences ----------------------------------------- */

static void r_bytes(genie_wire_reader_t *r, const char *shape)
{
    uint32_t    n;
    const void *p = genie_wire_r_bytes(r, &n);
    check_ptr(r, p, n, shape);
    if (r->st != GENIE_OK && (p != NULL || n != 0)) {
        die(shape, "a failed byte string is not NULL, 0");
    }
}

static void r_tensor(genie_wire_reader_t *r, const char *shape)
{
    genie_wire_tensor_t t;
    genie_wire_r_tensor(r, &t);
    check_tensor(r, &t, shape);
}

/* | n u32 | u64[n] | read one by one (executor_serve.c read_ids) */
static void r_ids(genie_wire_reader_t *r, const char *shape)
{
    uint32_t n = genie_wire_r_count(r, 8);
    check_count(r, n, 8, shape);
    for (uint32_t i = 0; i < n; i++) {
        (void)genie_wire_r_u64(r);
    }
}

/* HELLO (ucx.c handle_hello): | secret bytes | rank u32 | pid u32 | */
static void p_hello(genie_wire_reader_t *r)
{
    r_bytes(r, "HELLO");
    (void)genie_wire_r_u32(r);
    (void)genie_wire_r_u32(r);
}

/* WEIGHT: | fp u64 | name bytes | tensor | */
static void p_weight(genie_wire_reader_t *r)
{
    (void)genie_wire_r_u64(r);
    r_bytes(r, "WEIGHT");
    r_tensor(r, "WEIGHT");
}

/* RUN: | srg bytes | pad to 8 | n u32 (count 16) | tensor x n | */
static void p_run(genie_wire_reader_t *r)
{
    uint32_t n;
    r_bytes(r, "RUN");
    genie_wire_r_align8(r);
    n = genie_wire_r_count(r, 16);
    check_count(r, n, 16, "RUN");
    for (uint32_t i = 0; i < n && r->st == GENIE_OK; i++) {
        r_tensor(r, "RUN");
    }
}

/* RUN reply (client.c genie_client_wait): | compute_s f64 | n u32 | tensor x n |, the count
 * checked with the client's min_item of 24 (the protocol's bound is 16: docs/wire-protocol.md 4.3) */
static void p_run_reply(genie_wire_reader_t *r)
{
    uint32_t n;
    (void)genie_wire_r_f64(r);
    n = genie_wire_r_count(r, 24);
    check_count(r, n, 24, "RUN reply");
    for (uint32_t i = 0; i < n && r->st == GENIE_OK; i++) {
        r_tensor(r, "RUN reply");
    }
}

/* FREE: | n u32 | ids u64[n] |, skipped in one step as do_free does */
static void p_free(genie_wire_reader_t *r)
{
    uint32_t n = genie_wire_r_count(r, 8);
    check_count(r, n, 8, "FREE");
    if (r->st == GENIE_OK) {
        r->pos += (size_t)n * 8;
    }
}

/* FETCH: | id u64 |;  FETCH reply: | tensor | */
static void p_fetch(genie_wire_reader_t *r)       { (void)genie_wire_r_u64(r); }
static void p_fetch_reply(genie_wire_reader_t *r) { r_tensor(r, "FETCH reply"); }

/* BIND: | session u64 | n u32 | ids u64[n] |;  KV_RESERVE: the same with sizes */
static void p_bind(genie_wire_reader_t *r)
{
    (void)genie_wire_r_u64(r);
    r_ids(r, "BIND/KV_RESERVE");
}

/* KV_RESERVE reply: | n u32 | offsets u64[n] | */
static void p_kv_reserve_reply(genie_wire_reader_t *r) { r_ids(r, "KV_RESERVE reply"); }

/* END_SESSION, SESSION_INFO: | session u64 |; replies | n u32 | and | n u32 | bytes u64 | */
static void p_session(genie_wire_reader_t *r)      { (void)genie_wire_r_u64(r); }
static void p_end_reply(genie_wire_reader_t *r)    { (void)genie_wire_r_u32(r); }
static void p_info_reply(genie_wire_reader_t *r)
{
    (void)genie_wire_r_u32(r);
    (void)genie_wire_r_u64(r);
}

/* HANDOFF: | session u64 | dst u32 | n u32 | ids u64[n] |;  reply | bytes u64 | seconds f64 | */
static void p_handoff(genie_wire_reader_t *r)
{
    (void)genie_wire_r_u64(r);
    (void)genie_wire_r_u32(r);
    r_ids(r, "HANDOFF");
}

static void p_handoff_reply(genie_wire_reader_t *r)
{
    (void)genie_wire_r_u64(r);
    (void)genie_wire_r_f64(r);
}

/* KV_COMMIT (do_kv_commit): | session u64 | n u32 (count 24) |
 *   n x (id u64 | offset u64 | dtype u32 | ndim u32 | shape i64[ndim]) |
 * with the handler's own checks of dtype, ndim and extents. */
static void p_kv_commit(genie_wire_reader_t *r)
{
    uint32_t n;
    int      bad = 0;

    (void)genie_wire_r_u64(r);
    n = genie_wire_r_count(r, 24);
    check_count(r, n, 24, "KV_COMMIT");
    for (uint32_t i = 0; i < n && r->st == GENIE_OK && !bad; i++) {
        uint64_t numel = 1;
        uint32_t dt, nd;
        (void)genie_wire_r_u64(r);
        (void)genie_wire_r_u64(r);
        dt = genie_wire_r_u32(r);
        nd = genie_wire_r_u32(r);
        if (r->st != GENIE_OK) {
            break;
        }
        if (dt >= GENIE_DTYPE_COUNT || nd > GENIE_MAX_DIMS) {
            bad = 1;
            break;
        }
        for (uint32_t d = 0; d < nd; d++) {
            int64_t e = (int64_t)genie_wire_r_u64(r);
            if (e < 0 || (e > 0 && numel > (UINT64_MAX / 16) / (uint64_t)e)) {
                bad = 1;
                break;
            }
            numel *= (uint64_t)e;
        }
        if (numel > UINT64_MAX / 8) {
            die("KV_COMMIT", "object size overflows");
        }
    }
    if (bad) {
        /* the handler refuses the request here, with its own reason */
        if (r->pos > r->len) {
            die("KV_COMMIT", "reader position past the end");
        }
        r->st = genie_set_error(GENIE_ERR_CORRUPT, "KV_COMMIT: bad object");
    }
}

/* STATS reply (client.c genie_client_stats): | n u32 (count 12) | n x (name bytes | value f64) |
 * m u32 (count 8) | m x (name bytes | text bytes) | */
static void p_stats_reply(genie_wire_reader_t *r)
{
    uint32_t n = genie_wire_r_count(r, 12);
    check_count(r, n, 12, "STATS reply");
    for (uint32_t i = 0; i < n && r->st == GENIE_OK; i++) {
        r_bytes(r, "STATS reply");
        (void)genie_wire_r_f64(r);
    }
    n = genie_wire_r_count(r, 8);
    check_count(r, n, 8, "STATS reply");
    for (uint32_t i = 0; i < n && r->st == GENIE_OK; i++) {
        r_bytes(r, "STATS reply");
        r_bytes(r, "STATS reply");
    }
}

typedef struct shape {
    const char *name;
    void      (*parse)(genie_wire_reader_t *r);
} shape_t;

static const shape_t shapes[] = {
    { "HELLO", p_hello },
    { "WEIGHT", p_weight },
    { "RUN", p_run },
    { "RUN reply", p_run_reply },
    { "FREE", p_free },
    { "FETCH", p_fetch },
    { "FETCH reply", p_fetch_reply },
    { "BIND", p_bind },
    { "KV_RESERVE reply", p_kv_reserve_reply },
    { "SESSION", p_session },
    { "END_SESSION reply", p_end_reply },
    { "SESSION_INFO reply", p_info_reply },
    { "HANDOFF", p_handoff },
    { "HANDOFF reply", p_handoff_reply },
    { "KV_COMMIT", p_kv_commit },
    { "STATS reply", p_stats_reply },
};
#define N_SHAPES (sizeof(shapes) / sizeof(shapes[0]))

/* One payload through one shape's parse. */
static void parse_one(const uint8_t *data, size_t size, const shape_t *s)
{
    genie_wire_reader_t r;

    genie_clear_error();
    genie_wire_r_init(&r, data, size, s->name);
    s->parse(&r);
    finish(&r, s->name);
}

/* The first 32 bytes (zero-padded) as a header, with a header length and a
 * data length drawn from the input. */
static void hdr_one(const uint8_t *data, size_t size)
{
    enum { HL = sizeof(genie_wire_hdr_t) };
    uint8_t          h[HL + 8] = { 0 };
    genie_wire_hdr_t out;
    size_t           hlen = HL, dlen = size;
    genie_status_t   st;

    memcpy(h, data, size < sizeof(h) ? size : sizeof(h));
    if (size > HL) {
        hlen = data[HL] % 5 == 0 ? data[HL] % (HL + 8) : HL;   /* mostly the right length */
        dlen = data[HL] % 3 == 0 ? (size_t)(h[16] | h[17] << 8) : size - HL;
    }
    genie_clear_error();
    memset(&out, 0xA5, sizeof(out));
    st = genie_wire_check_hdr(h, hlen, dlen, &out);
    if (st == GENIE_OK) {
        uint16_t base = out.type & (uint16_t)~GENIE_MSG_REPLY;
        if (hlen != HL || out.magic != GENIE_WIRE_MAGIC || out.version != GENIE_WIRE_VERSION ||
            base == 0 || base >= GENIE_MSG_TYPE_COUNT || out.payload_len != dlen ||
            memcmp(&out, h, HL) != 0) {
            die("header", "accepted a bad header");
        }
        n_hdr_ok++;
    } else if ((st != GENIE_ERR_CORRUPT && st != GENIE_ERR_VERSION) ||
               genie_last_error()[0] == '\0') {
        die("header", "refusal without a status or a reason");
    } else {
        for (size_t i = 0; i < sizeof(out); i++) {
            if (((const uint8_t *)&out)[i] != 0xA5) {
                die("header", "a refused header was written out");
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hdr_one(data, size);
    for (size_t s = 0; s < N_SHAPES; s++) {
        parse_one(data, size, &shapes[s]);
    }
    return 0;
}

#ifndef GENIE_LIBFUZZER

/* ---- seeds: one valid payload per message shape ----------------------------- */

enum { N_SEEDS = 18 };

static void seed(int which, genie_wire_writer_t *w, int *shape_p)
{
    static const int64_t s23[2] = { 2, 3 }, s0[1] = { 0 }, s8[8] = { 1, 2, 1, 1, 2, 1, 1, 3 };
    static const uint8_t data[256] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
    static const char    secret[65] =
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    genie_wire_w_init(w);
    switch (which) {
    case 0:                                     /* HELLO */
        genie_wire_w_bytes(w, secret, 64);
        genie_wire_w_u32(w, 3);
        genie_wire_w_u32(w, 4242);
        *shape_p = 0;
        break;
    case 1:                                     /* WEIGHT */
        genie_wire_w_u64(w, 0xfeedfacecafebeefull);
        genie_wire_w_bytes(w, "h.0.attn.c_attn.weight", 22);
        genie_wire_w_tensor(w, GENIE_F32, 2, s23, data);
        *shape_p = 1;
        break;
    case 2:                                     /* RUN with a plan and three inputs */
    case 3:                                     /* RUN by hash, no inputs */
        genie_wire_w_bytes(w, which == 2 ? "GSRG-plan-bytes" : NULL, which == 2 ? 15 : 0);
        genie_wire_w_align8(w);
        genie_wire_w_u32(w, which == 2 ? 3 : 0);
        if (which == 2) {
            genie_wire_w_tensor(w, GENIE_I64, 2, s23, data);
            genie_wire_w_tensor(w, GENIE_BOOL, 0, NULL, data);
            genie_wire_w_tensor(w, GENIE_F16, 8, s8, data);
        }
        *shape_p = 2;
        break;
    case 4:                                     /* RUN reply */
        genie_wire_w_f64(w, 0.00125);
        genie_wire_w_u32(w, 2);
        genie_wire_w_tensor(w, GENIE_F32, 2, s23, data);
        genie_wire_w_tensor(w, GENIE_F32, 1, s0, NULL);
        *shape_p = 3;
        break;
    case 5:                                     /* FREE */
    case 6:                                     /* KV_RESERVE reply */
        genie_wire_w_u32(w, 3);
        genie_wire_w_u64(w, 11);
        genie_wire_w_u64(w, 12);
        genie_wire_w_u64(w, 13);
        *shape_p = which == 5 ? 4 : 8;
        break;
    case 7:                                     /* FETCH */
        genie_wire_w_u64(w, 99);
        *shape_p = 5;
        break;
    case 8:                                     /* FETCH reply */
        genie_wire_w_tensor(w, GENIE_BF16, 8, s8, data);
        *shape_p = 6;
        break;
    case 9:                                     /* BIND / KV_RESERVE */
        genie_wire_w_u64(w, 5);
        genie_wire_w_u32(w, 2);
        genie_wire_w_u64(w, 64);
        genie_wire_w_u64(w, 4096);
        *shape_p = 7;
        break;
    case 10:                                    /* END_SESSION, SESSION_INFO */
        genie_wire_w_u64(w, 5);
        *shape_p = 9;
        break;
    case 11:
        genie_wire_w_u32(w, 4);
        *shape_p = 10;
        break;
    case 12:
        genie_wire_w_u32(w, 4);
        genie_wire_w_u64(w, 1 << 20);
        *shape_p = 11;
        break;
    case 13:                                    /* HANDOFF */
        genie_wire_w_u64(w, 5);
        genie_wire_w_u32(w, 3);
        genie_wire_w_u32(w, 2);
        genie_wire_w_u64(w, 100);
        genie_wire_w_u64(w, 101);
        *shape_p = 12;
        break;
    case 14:
        genie_wire_w_u64(w, 1 << 20);
        genie_wire_w_f64(w, 0.004);
        *shape_p = 13;
        break;
    case 15:                                    /* KV_COMMIT: two objects */
        genie_wire_w_u64(w, 5);
        genie_wire_w_u32(w, 2);
        for (int i = 0; i < 2; i++) {
            genie_wire_w_u64(w, 100 + (uint64_t)i);
            genie_wire_w_u64(w, 4096 * (uint64_t)i);
            genie_wire_w_u32(w, GENIE_F32);
            genie_wire_w_u32(w, i == 0 ? 2 : 8);
            genie_wire_w_raw(w, i == 0 ? s23 : s8, 8 * (size_t)(i == 0 ? 2 : 8));
        }
        *shape_p = 14;
        break;
    case 16:                                    /* STATS reply */
        genie_wire_w_u32(w, 3);
        genie_wire_w_bytes(w, "requests", 8);
        genie_wire_w_f64(w, 12);
        genie_wire_w_bytes(w, "", 0);
        genie_wire_w_f64(w, -1);
        genie_wire_w_bytes(w, "phase_s.llm_decode", 18);
        genie_wire_w_f64(w, 0.5);
        genie_wire_w_u32(w, 1);
        genie_wire_w_bytes(w, "cuda_visible_devices", 20);
        genie_wire_w_bytes(w, "2", 1);
        *shape_p = 15;
        break;
    default: {                                  /* a valid header and a PING payload */
        genie_wire_hdr_t h;
        genie_wire_hdr_init(&h, GENIE_MSG_PING | GENIE_MSG_REPLY, 9, 0, 8, 0);
        genie_wire_w_raw(w, &h, sizeof(h));
        genie_wire_w_u64(w, 0x0807060504030201ull);
        *shape_p = -1;
        break;
    }
    }
    if (genie_wire_w_status(w) != GENIE_OK) {
        fprintf(stderr, "fuzz_wire: out of memory building seeds\n");
        exit(2);
    }
}

/* ---- the mutation loop --------------------------------------------------------- */

static uint64_t rng;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static uint64_t below(uint64_t n)
{
    return n ? next() % n : 0;
}

/* Values at which length, count and range checks tend to break. */
static const uint64_t interesting[] = {
    0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 24, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff,
    0x7fffffff, 0x80000000u, 0xfffffff8u, 0xfffffffeu, 0xffffffffu, 0x100000000ull,
    0x1000000000000000ull, 0x4000000000000000ull, 0x7fffffffffffffffull,
    0x8000000000000000ull, 0xfffffffffffffff8ull, 0xffffffffffffffffull,
};

static void mutate(uint8_t *buf, size_t *len, size_t cap)
{
    size_t n = *len, pos, k;

    switch (below(8)) {
    case 0:   /* flip a bit */
        if (n > 0) {
            buf[below(n)] ^= (uint8_t)(1u << below(8));
        }
        break;
    case 1:   /* truncate */
        *len = (size_t)below(n + 1);
        break;
    case 2:   /* insert 1..8 bytes */
        k = 1 + (size_t)below(8);
        if (n + k <= cap) {
            pos = (size_t)below(n + 1);
            memmove(buf + pos + k, buf + pos, n - pos);
            for (size_t i = 0; i < k; i++) {
                buf[pos + i] = (uint8_t)next();
            }
            *len = n + k;
        }
        break;
    case 3:   /* delete 1..16 bytes */
        if (n > 0) {
            pos = (size_t)below(n);
            k = 1 + (size_t)below(16);
            if (k > n - pos) {
                k = n - pos;
            }
            memmove(buf + pos, buf + pos + k, n - pos - k);
            *len = n - k;
        }
        break;
    case 4:   /* an interesting value, 1/2/4/8 bytes LE, at a 4-aligned spot (where fields are) */
    case 5: {
        int      width = 1 << below(4);
        uint64_t v = interesting[below(sizeof(interesting) / sizeof(interesting[0]))];
        if (n >= (size_t)width) {
            pos = (size_t)below(n - (size_t)width + 1);
            if (below(2) == 0) {
                pos &= ~(size_t)3;
            }
            for (int i = 0; i < width; i++) {
                buf[pos + (size_t)i] = (uint8_t)(v >> (8 * i));
            }
        }
        break;
    }
    case 6:   /* append 1..32 random bytes */
        k = 1 + (size_t)below(32);
        if (n + k <= cap) {
            for (size_t i = 0; i < k; i++) {
                buf[n + i] = (uint8_t)next();
            }
            *len = n + k;
        }
        break;
    default:  /* copy a chunk over another spot */
        if (n > 1) {
            size_t from = (size_t)below(n), to = (size_t)below(n);
            k = 1 + (size_t)below(32);
            if (k > n - from) {
                k = n - from;
            }
            if (k > n - to) {
                k = n - to;
            }
            memmove(buf + to, buf + from, k);
        }
        break;
    }
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    enum { SLACK = 256 };
    uint64_t            max_iters = argc > 1 ? strtoull(argv[1], NULL, 0) : 200000;
    double              max_s = argc > 2 ? strtod(argv[2], NULL) : 20.0;
    genie_wire_writer_t seeds[N_SEEDS];
    int                 seed_shape[N_SEEDS];
    uint8_t            *work, *exact;
    size_t              cap = 0, len;
    uint64_t            it;
    double              t0 = now_s();

    rng = argc > 3 ? strtoull(argv[3], NULL, 0) : 0x13198A2E03707344ull;
    if (rng == 0) {
        rng = 1;
    }
    /* An empty payload arrives as (NULL, 0): every parse must refuse or
     * accept it without touching memory. */
    for (size_t k = 0; k < N_SHAPES; k++) {
        parse_one(NULL, 0, &shapes[k]);
    }
    /* Every seed must be accepted by its own shape's parse. */
    for (int s = 0; s < N_SEEDS; s++) {
        seed(s, &seeds[s], &seed_shape[s]);
        cap = seeds[s].len + SLACK > cap ? seeds[s].len + SLACK : cap;
        exact = malloc(seeds[s].len ? seeds[s].len : 1);
        if (exact == NULL) {
            return 2;
        }
        memcpy(exact, seeds[s].buf, seeds[s].len);
        if (seed_shape[s] >= 0) {
            uint64_t ok = n_ok;
            parse_one(exact, seeds[s].len, &shapes[seed_shape[s]]);
            if (n_ok != ok + 1) {
                fprintf(stderr, "fuzz_wire: seed %d refused by %s: %s\n", s,
                        shapes[seed_shape[s]].name, genie_last_error());
                return 1;
            }
        } else {
            uint64_t ok = n_hdr_ok;
            hdr_one(exact, seeds[s].len);
            if (n_hdr_ok != ok + 1) {
                fprintf(stderr, "fuzz_wire: header seed refused: %s\n", genie_last_error());
                return 1;
            }
        }
        LLVMFuzzerTestOneInput(exact, seeds[s].len);
        free(exact);
    }
    work = malloc(cap);
    if (work == NULL) {
        return 2;
    }
    for (it = 0; it < max_iters; it++) {
        int s = (int)below(N_SEEDS), rounds = 1 + (int)below(4);

        if ((it & 1023) == 0 && now_s() - t0 > max_s) {
            break;
        }
        if (below(16) == 0) {                  /* random bytes */
            len = (size_t)below(cap);
            for (size_t i = 0; i < len; i++) {
                work[i] = (uint8_t)next();
            }
        } else {
            memcpy(work, seeds[s].buf, seeds[s].len);
            len = seeds[s].len;
            for (int r = 0; r < rounds; r++) {
                mutate(work, &len, cap);
            }
        }
        exact = malloc(len ? len : 1);         /* exact size: over-reads hit ASan's redzone */
        if (exact == NULL) {
            return 2;
        }
        memcpy(exact, work, len);
        if (s < N_SEEDS - 1 && seed_shape[s] >= 0 && below(2) == 0) {
            parse_one(exact, len, &shapes[seed_shape[s]]);   /* its own shape, most often */
            hdr_one(exact, len);
        } else {
            LLVMFuzzerTestOneInput(exact, len);
        }
        free(exact);
    }
    printf("fuzz_wire: %llu iterations in %.1f s: %llu parses accepted, %llu refused with a "
           "reason, %llu headers accepted\n", (unsigned long long)it, now_s() - t0,
           (unsigned long long)n_ok, (unsigned long long)n_refused, (unsigned long long)n_hdr_ok);
    free(work);
    for (int s = 0; s < N_SEEDS; s++) {
        genie_wire_w_free(&seeds[s]);
    }
    return 0;
}

#endif /* GENIE_LIBFUZZER */

/*
 * Unit tests of the wire codec (transport-ucx/src/wire.c, docs/wire-protocol.md):
 * the byte layout of the header and of every primitive; writer/reader round
 * trips of u32, u64, f64, byte strings and tensors (0-dim, 0-size, 8-dim,
 * every dtype) with the data 8-byte aligned however the payload before it
 * ends; every reader error (truncation at every prefix of a valid payload,
 * bad dtype, too many dims, negative extents, nbytes that disagree with the
 * shape, numel * element size overflowing, counts that cannot fit, trailing
 * bytes), each failing with a status and a reason and leaving later reads at
 * zero; genie_wire_check_hdr's refusals; and genie_wire_hash: its documented
 * test vectors and its sensitivity to every single-bit change.
 *
 * Payloads under test are copied into buffers of exactly their length, so in
 * the ASan build any read past the end is reported.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "genie/wire.h"

/* ---- helpers ---------------------------------------------------------------- */

/* A malloc'd copy of exactly n bytes (at least 1 allocated byte). */
static uint8_t *exact_copy(const void *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    assert_non_null(c);
    if (n > 0) {
        memcpy(c, p, n);
    }
    return c;
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

/* Assert the reader failed with `st` and a recorded reason, and that later
 * reads return zeros without moving. */
static void assert_failed(genie_wire_reader_t *r, genie_status_t st)
{
    size_t              pos = r->pos;
    uint32_t            n = 99;
    genie_wire_tensor_t t;

    assert_int_equal(r->st, st);
    assert_int_equal(genie_wire_r_done(r), st);
    assert_true(genie_last_error()[0] != '\0');
    assert_int_equal(genie_wire_r_u32(r), 0);
    assert_int_equal(genie_wire_r_u64(r), 0);
    assert_true(genie_wire_r_f64(r) == 0.0);
    assert_null(genie_wire_r_bytes(r, &n));
    assert_int_equal(n, 0);
    assert_int_equal(genie_wire_r_count(r, 0), 0);
    genie_wire_r_tensor(r, &t);
    assert_null(t.data);
    assert_int_equal(t.ndim, 0);
    genie_wire_r_align8(r);
    assert_int_equal(r->pos, pos);
    assert_int_equal(r->st, st);
}

/* ---- header ------------------------------------------------------------------ */

static void test_header_layout(void **state)
{
    genie_wire_hdr_t h;
    uint8_t          b[40];

    (void)state;
    assert_int_equal(sizeof(h), 40);
    assert_int_equal(offsetof(genie_wire_hdr_t, magic), 0);
    assert_int_equal(offsetof(genie_wire_hdr_t, version), 4);
    assert_int_equal(offsetof(genie_wire_hdr_t, type), 6);
    assert_int_equal(offsetof(genie_wire_hdr_t, seq), 8);
    assert_int_equal(offsetof(genie_wire_hdr_t, status), 12);
    assert_int_equal(offsetof(genie_wire_hdr_t, payload_len), 16);
    assert_int_equal(offsetof(genie_wire_hdr_t, aux), 24);
    assert_int_equal(offsetof(genie_wire_hdr_t, conn), 32);

    genie_wire_hdr_init(&h, GENIE_MSG_RUN | GENIE_MSG_REPLY, 0x01020304u, GENIE_ERR_NO_PLAN,
                        0x1122334455667788ull, 0xa1a2a3a4a5a6a7a8ull);
    memcpy(b, &h, sizeof(b));
    assert_memory_equal(b, "GNIE", 4);                 /* magic, in memory order */
    assert_int_equal(b[4], GENIE_WIRE_VERSION);
    assert_int_equal(b[5], 0);
    assert_int_equal(b[6], 3);                         /* RUN | REPLY = 0x8003 */
    assert_int_equal(b[7], 0x80);
    assert_int_equal(get_u32(b + 8), 0x01020304u);
    assert_int_equal((int32_t)get_u32(b + 12), GENIE_ERR_NO_PLAN);
    assert_true(get_u64(b + 16) == 0x1122334455667788ull);
    assert_true(get_u64(b + 24) == 0xa1a2a3a4a5a6a7a8ull);
    assert_true(get_u64(b + 32) == 0);                /* conn: set by the transport */
}

static void test_check_hdr_accepts(void **state)
{
    (void)state;
    for (uint32_t type = 1; type < GENIE_MSG_TYPE_COUNT; type++) {
        if (type == GENIE_MSG_KV_RESERVE || type == GENIE_MSG_KV_COMMIT) {
            continue;                           /* version 1 only: refused below */
        }
        for (int reply = 0; reply < 2; reply++) {
            genie_wire_hdr_t h, out;
            uint16_t         t = (uint16_t)(type | (reply ? GENIE_MSG_REPLY : 0));
            genie_wire_hdr_init(&h, t, 7 + type, reply ? -3 : 0, 100 * type, 42);
            assert_int_equal(genie_wire_check_hdr(&h, sizeof(h), 100 * type, &out), GENIE_OK);
            assert_int_equal(out.type, t);
            assert_int_equal(out.seq, 7 + type);
            assert_int_equal(out.status, reply ? -3 : 0);
            assert_true(out.payload_len == 100 * type);
            assert_true(out.aux == 42);
        }
    }
}

/* A header failing the check leaves *out_p alone. */
static void expect_bad_hdr(const void *hdr, size_t hdr_len, size_t data_len, genie_status_t st)
{
    genie_wire_hdr_t out;
    memset(&out, 0xA5, sizeof(out));
    genie_clear_error();
    assert_int_equal(genie_wire_check_hdr(hdr, hdr_len, data_len, &out), st);
    assert_true(genie_last_error()[0] != '\0');
    for (size_t i = 0; i < sizeof(out); i++) {
        assert_int_equal(((const uint8_t *)&out)[i], 0xA5);
    }
}

static void test_check_hdr_refuses(void **state)
{
    static const uint16_t bad_types[] = {
        0, GENIE_MSG_TYPE_COUNT, 0x00ff, 0x0100 | GENIE_MSG_HELLO, 0x4000 | GENIE_MSG_RUN,
        0x7fff, GENIE_MSG_REPLY, GENIE_MSG_REPLY | GENIE_MSG_TYPE_COUNT, 0xffff,
        GENIE_MSG_KV_RESERVE, GENIE_MSG_KV_COMMIT | GENIE_MSG_REPLY,   /* retired in version 2 */
    };
    genie_wire_hdr_t h, bad;
    uint8_t          big[48];

    (void)state;
    genie_wire_hdr_init(&h, GENIE_MSG_PING, 1, 0, 10, 0);
    memset(big, 0, sizeof(big));
    memcpy(big, &h, sizeof(h));

    /* header length other than 40 (version 1's 32 included), or no header */
    expect_bad_hdr(&h, 39, 10, GENIE_ERR_CORRUPT);
    expect_bad_hdr(&h, 32, 10, GENIE_ERR_CORRUPT);
    expect_bad_hdr(big, 41, 10, GENIE_ERR_CORRUPT);
    expect_bad_hdr(big, 48, 10, GENIE_ERR_CORRUPT);
    expect_bad_hdr(&h, 0, 10, GENIE_ERR_CORRUPT);
    expect_bad_hdr(NULL, 40, 10, GENIE_ERR_CORRUPT);

    /* magic: any single-bit change */
    for (int bit = 0; bit < 32; bit++) {
        bad = h;
        bad.magic ^= 1u << bit;
        expect_bad_hdr(&bad, sizeof(bad), 10, GENIE_ERR_CORRUPT);
    }
    /* another version */
    for (uint32_t v = 0; v < 4; v++) {
        if (v != GENIE_WIRE_VERSION) {
            bad = h;
            bad.version = (uint16_t)v;
            expect_bad_hdr(&bad, sizeof(bad), 10, GENIE_ERR_VERSION);
        }
    }
    bad = h;
    bad.version = 0xffff;
    expect_bad_hdr(&bad, sizeof(bad), 10, GENIE_ERR_VERSION);

    /* unknown types, with and without the reply bit; bits 8..14 set */
    for (size_t i = 0; i < sizeof(bad_types) / sizeof(bad_types[0]); i++) {
        bad = h;
        bad.type = bad_types[i];
        expect_bad_hdr(&bad, sizeof(bad), 10, GENIE_ERR_CORRUPT);
    }

    /* payload_len must equal the AM data length */
    expect_bad_hdr(&h, sizeof(h), 9, GENIE_ERR_CORRUPT);
    expect_bad_hdr(&h, sizeof(h), 11, GENIE_ERR_CORRUPT);
    expect_bad_hdr(&h, sizeof(h), 0, GENIE_ERR_CORRUPT);
    bad = h;
    bad.payload_len = UINT64_MAX;
    expect_bad_hdr(&bad, sizeof(bad), 10, GENIE_ERR_CORRUPT);

    /* a header that is not aligned in memory is read correctly */
    {
        genie_wire_hdr_t out;
        uint8_t          odd[41];
        memcpy(odd + 1, &h, sizeof(h));
        assert_int_equal(genie_wire_check_hdr(odd + 1, sizeof(h), 10, &out), GENIE_OK);
        assert_int_equal(out.type, GENIE_MSG_PING);
    }
}

static void test_msg_names(void **state)
{
    static const char *const names[GENIE_MSG_TYPE_COUNT] = {
        "?", "HELLO", "WEIGHT", "RUN", "FREE", "FETCH", "BIND", "END_SESSION", "SESSION_INFO",
        "HANDOFF", "STATS", "SHUTDOWN", "KV_RESERVE", "KV_COMMIT", "PING",
        "CHECKPOINT", "RESTORE", "KV_OFFER", "FENCE",
    };

    (void)state;
    /* The numbering is part of the protocol (docs/wire-protocol.md). */
    assert_int_equal(GENIE_MSG_HELLO, 1);
    assert_int_equal(GENIE_MSG_PING, 14);
    assert_int_equal(GENIE_MSG_RESTORE, 16);
    assert_int_equal(GENIE_MSG_KV_OFFER, 17);
    assert_int_equal(GENIE_MSG_FENCE, 18);
    assert_int_equal(GENIE_MSG_REPLY, 0x8000);
    assert_int_equal(GENIE_WIRE_AM_ID, 7);
    for (uint32_t t = 0; t < GENIE_MSG_TYPE_COUNT; t++) {
        assert_string_equal(genie_msg_name(t), names[t]);
        assert_string_equal(genie_msg_name(t | GENIE_MSG_REPLY), names[t]);
    }
    assert_string_equal(genie_msg_name(GENIE_MSG_TYPE_COUNT), "?");
    assert_string_equal(genie_msg_name(0xffffffffu), "?");
}

/* ---- primitives ---------------------------------------------------------------- */

static void test_primitive_layout(void **state)
{
    genie_wire_writer_t w;
    double              d = -2.5;
    uint64_t            dbits;

    (void)state;
    genie_wire_w_init(&w);
    genie_wire_w_u32(&w, 0x04030201u);
    genie_wire_w_u64(&w, 0x0c0b0a0908070605ull);
    genie_wire_w_f64(&w, d);
    genie_wire_w_bytes(&w, "xyz", 3);
    genie_wire_w_raw(&w, "\x01\x02", 2);
    assert_int_equal(genie_wire_w_status(&w), GENIE_OK);
    assert_int_equal(w.len, 4 + 8 + 8 + 4 + 3 + 2);
    for (int i = 0; i < 12; i++) {
        assert_int_equal(w.buf[i], i + 1);             /* little-endian, no padding */
    }
    memcpy(&dbits, &d, 8);
    assert_true(get_u64(w.buf + 12) == dbits);         /* f64: the IEEE bits as a u64 */
    assert_int_equal(get_u32(w.buf + 20), 3);
    assert_memory_equal(w.buf + 24, "xyz\x01\x02", 5);
    genie_wire_w_free(&w);
    assert_null(w.buf);
    assert_int_equal(w.len, 0);
}

static void test_primitive_round_trip(void **state)
{
    static const uint32_t u32s[] = { 0, 1, 0x7fffffffu, 0x80000000u, 0xffffffffu, 0xdeadbeefu };
    static const uint64_t u64s[] = { 0, 1, 0xffffffffull, 0x100000000ull, 0x8000000000000000ull,
                                     UINT64_MAX, 0x0123456789abcdefull };
    static const uint64_t f64bits[] = { 0x0000000000000000ull, 0x8000000000000000ull, /* +-0 */
                                        0x3ff0000000000000ull, 0x7ff0000000000000ull, /* 1, inf */
                                        0xfff8000000000001ull, 0x0000000000000001ull, /* nan, denormal */
                                        0x7fefffffffffffffull };
    uint8_t             big[1000];
    genie_wire_writer_t w;
    genie_wire_reader_t r;
    uint8_t            *copy;
    const uint8_t      *p;
    uint32_t            n;

    (void)state;
    for (size_t i = 0; i < sizeof(big); i++) {
        big[i] = (uint8_t)(i * 7 + 3);
    }
    genie_wire_w_init(&w);
    for (size_t i = 0; i < sizeof(u32s) / sizeof(u32s[0]); i++) {
        genie_wire_w_u32(&w, u32s[i]);
    }
    for (size_t i = 0; i < sizeof(u64s) / sizeof(u64s[0]); i++) {
        genie_wire_w_u64(&w, u64s[i]);
    }
    for (size_t i = 0; i < sizeof(f64bits) / sizeof(f64bits[0]); i++) {
        double d;
        memcpy(&d, &f64bits[i], 8);
        genie_wire_w_f64(&w, d);
    }
    genie_wire_w_bytes(&w, NULL, 0);                   /* empty string */
    genie_wire_w_bytes(&w, "a", 1);
    genie_wire_w_bytes(&w, big, sizeof(big));
    genie_wire_w_raw(&w, NULL, 0);
    assert_int_equal(genie_wire_w_status(&w), GENIE_OK);

    copy = exact_copy(w.buf, w.len);
    genie_wire_r_init(&r, copy, w.len, "round trip");
    for (size_t i = 0; i < sizeof(u32s) / sizeof(u32s[0]); i++) {
        assert_int_equal(genie_wire_r_u32(&r), u32s[i]);
    }
    for (size_t i = 0; i < sizeof(u64s) / sizeof(u64s[0]); i++) {
        assert_true(genie_wire_r_u64(&r) == u64s[i]);
    }
    for (size_t i = 0; i < sizeof(f64bits) / sizeof(f64bits[0]); i++) {
        double   d = genie_wire_r_f64(&r);
        uint64_t bits;
        memcpy(&bits, &d, 8);
        assert_true(bits == f64bits[i]);               /* bit-exact, NaN payload included */
    }
    p = genie_wire_r_bytes(&r, &n);
    assert_non_null(p);
    assert_int_equal(n, 0);
    p = genie_wire_r_bytes(&r, &n);
    assert_int_equal(n, 1);
    assert_memory_equal(p, "a", 1);
    p = genie_wire_r_bytes(&r, &n);
    assert_int_equal(n, sizeof(big));
    assert_memory_equal(p, big, sizeof(big));
    assert_ptr_equal(p + n, copy + w.len);             /* borrowed from the buffer */
    assert_int_equal(genie_wire_r_done(&r), GENIE_OK);
    assert_int_equal(r.pos, w.len);
    free(copy);
    genie_wire_w_free(&w);
}

static void test_align8(void **state)
{
    static const uint8_t ones[16] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 };

    (void)state;
    for (size_t k = 0; k <= 16; k++) {
        genie_wire_writer_t w;
        genie_wire_reader_t r;
        uint8_t            *copy;
        size_t              padded = (k + 7) / 8 * 8;

        genie_wire_w_init(&w);
        genie_wire_w_raw(&w, ones, k);
        genie_wire_w_align8(&w);
        assert_int_equal(w.len, padded);
        for (size_t i = k; i < padded; i++) {
            assert_int_equal(w.buf[i], 0);             /* padding is zeros */
        }
        genie_wire_w_align8(&w);                       /* aligned: adds nothing */
        assert_int_equal(w.len, padded);
        genie_wire_w_u32(&w, 0xabcdef01u);

        copy = exact_copy(w.buf, w.len);
        genie_wire_r_init(&r, copy, w.len, "align");
        r.pos = k;                                     /* as if k bytes had been read */
        genie_wire_r_align8(&r);
        assert_int_equal(r.pos, padded);
        genie_wire_r_align8(&r);
        assert_int_equal(r.pos, padded);
        assert_int_equal(genie_wire_r_u32(&r), 0xabcdef01u);
        assert_int_equal(genie_wire_r_done(&r), GENIE_OK);
        free(copy);

        /* padding that the payload does not carry is truncation */
        if (padded > k) {
            copy = exact_copy(ones, k);
            genie_wire_r_init(&r, copy, k, "align");
            r.pos = k;
            genie_clear_error();
            genie_wire_r_align8(&r);
            assert_failed(&r, GENIE_ERR_TRUNCATED);
            free(copy);
        }
        genie_wire_w_free(&w);
    }
}

/* ---- tensors ------------------------------------------------------------------- */

typedef struct shape_case {
    int     ndim;
    int64_t shape[GENIE_MAX_DIMS];
} shape_case_t;

static const shape_case_t shapes[] = {
    { 0, { 0 } },                                      /* scalar: one element */
    { 1, { 0 } },                                      /* empty */
    { 3, { 3, 0, 5 } },                                /* empty in the middle */
    { 1, { 1 } },
    { 1, { 7 } },
    { 2, { 3, 5 } },
    { 4, { 1, 2, 3, 1 } },
    { 8, { 1, 2, 1, 2, 1, 2, 1, 3 } },                 /* GENIE_MAX_DIMS */
    { 8, { 2, 2, 2, 2, 2, 2, 2, 0 } },
};

static uint64_t numel_of(const shape_case_t *s)
{
    uint64_t n = 1;
    for (int d = 0; d < s->ndim; d++) {
        n *= (uint64_t)s->shape[d];
    }
    return n;
}

/* Every dtype x every shape, each tensor preceded by 0..7 bytes so the data
 * padding takes every value; all in one payload, read back in order. */
static void test_tensor_round_trip(void **state)
{
    enum { N_SHAPES = sizeof(shapes) / sizeof(shapes[0]) };
    genie_wire_writer_t w;
    genie_wire_reader_t r;
    uint8_t             data[8 * 256];
    uint8_t            *copy;
    size_t              lead = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = (uint8_t)(i * 13 + 1);
    }
    genie_wire_w_init(&w);
    for (int dt = 0; dt < GENIE_DTYPE_COUNT; dt++) {
        for (size_t s = 0; s < N_SHAPES; s++, lead = (lead + 1) % 8) {
            genie_wire_w_raw(&w, data, lead);
            genie_wire_w_tensor(&w, (genie_dtype_t)dt, shapes[s].ndim, shapes[s].shape, data);
        }
    }
    assert_int_equal(genie_wire_w_status(&w), GENIE_OK);

    copy = exact_copy(w.buf, w.len);
    genie_wire_r_init(&r, copy, w.len, "tensors");
    lead = 0;
    for (int dt = 0; dt < GENIE_DTYPE_COUNT; dt++) {
        for (size_t s = 0; s < N_SHAPES; s++, lead = (lead + 1) % 8) {
            genie_wire_tensor_t t;
            genie_storage_t     ws;
            genie_tensor_t      view;
            uint64_t            nbytes = numel_of(&shapes[s]) * genie_dtype_size((genie_dtype_t)dt);

            r.pos += lead;
            genie_wire_r_tensor(&r, &t);
            assert_int_equal(r.st, GENIE_OK);
            assert_int_equal(t.dtype, dt);
            assert_int_equal(t.ndim, shapes[s].ndim);
            assert_memory_equal(t.shape, shapes[s].shape, sizeof(int64_t) * (size_t)t.ndim);
            assert_true(t.nbytes == nbytes);
            assert_non_null(t.data);
            assert_int_equal(((const uint8_t *)t.data - copy) % 8, 0);
            assert_memory_equal(t.data, data, nbytes);

            genie_wire_tensor_view(&t, &ws, &view);
            assert_ptr_equal(genie_tensor_data(&view), t.data);
            assert_int_equal(genie_tensor_nbytes(&view), nbytes);
            assert_true(genie_tensor_is_contiguous(&view));
        }
    }
    assert_int_equal(genie_wire_r_done(&r), GENIE_OK);
    free(copy);
    genie_wire_w_free(&w);
}

/* The encoding byte by byte: after a u32, an f32 (2, 3) tensor has dtype at
 * 4, ndim at 8, shape at 12 and 20, nbytes at 28, 4 bytes of padding, and
 * data at 40; w_tensor_hdr + w_raw writes the same bytes as w_tensor. */
static void test_tensor_layout(void **state)
{
    static const int64_t shape[2] = { 2, 3 };
    static const float   x[6] = { 1, 2, 3, 4, 5, 6 };
    genie_wire_writer_t  w, w2;
    size_t               nb;

    (void)state;
    genie_wire_w_init(&w);
    genie_wire_w_u32(&w, 9);
    genie_wire_w_tensor(&w, GENIE_F32, 2, shape, x);
    assert_int_equal(w.len, 40 + 24);
    assert_int_equal(get_u32(w.buf + 4), GENIE_F32);
    assert_int_equal(get_u32(w.buf + 8), 2);
    assert_true(get_u64(w.buf + 12) == 2);
    assert_true(get_u64(w.buf + 20) == 3);
    assert_true(get_u64(w.buf + 28) == 24);
    assert_int_equal(get_u32(w.buf + 36), 0);
    assert_memory_equal(w.buf + 40, x, 24);

    genie_wire_w_init(&w2);
    genie_wire_w_u32(&w2, 9);
    nb = genie_wire_w_tensor_hdr(&w2, GENIE_F32, 2, shape);
    assert_int_equal(nb, 24);
    assert_int_equal(w2.len, 40);
    genie_wire_w_raw(&w2, x, nb);
    assert_int_equal(w2.len, w.len);
    assert_memory_equal(w2.buf, w.buf, w.len);
    genie_wire_w_free(&w2);

    /* data == NULL: the header only */
    genie_wire_w_init(&w2);
    genie_wire_w_u32(&w2, 9);
    genie_wire_w_tensor(&w2, GENIE_F32, 2, shape, NULL);
    assert_int_equal(w2.len, 40);
    assert_memory_equal(w2.buf, w.buf, 40);
    genie_wire_w_free(&w2);

    /* a 0-dim bool: 16 header bytes, no padding at offset 0, one data byte */
    genie_wire_w_free(&w);
    genie_wire_w_init(&w);
    genie_wire_w_tensor(&w, GENIE_BOOL, 0, NULL, "\x01");
    assert_int_equal(w.len, 17);
    assert_true(get_u64(w.buf + 8) == 1);
    genie_wire_w_free(&w);
}

/* ---- reader errors --------------------------------------------------------------- */

/* A tensor encoding built by hand: u32 dtype, u32 ndim, shape, nbytes,
 * padding, then `data_len` bytes of data.  Returns the length. */
static size_t hand_tensor(uint8_t *b, uint32_t dtype, uint32_t ndim, const int64_t *shape,
                          uint64_t nbytes, size_t data_len)
{
    size_t n = 0;
    put_u32(b + n, dtype);
    n += 4;
    put_u32(b + n, ndim);
    n += 4;
    for (uint32_t d = 0; d < ndim; d++) {
        put_u64(b + n, (uint64_t)shape[d]);
        n += 8;
    }
    put_u64(b + n, nbytes);
    n += 8;
    while (n % 8 != 0) {
        b[n++] = 0;
    }
    memset(b + n, 0x5a, data_len);
    return n + data_len;
}

/* Read one tensor from b[0..n) and expect failure with `st`. */
static void expect_bad_tensor(const uint8_t *b, size_t n, genie_status_t st)
{
    genie_wire_reader_t r;
    genie_wire_tensor_t t;
    uint8_t            *copy = exact_copy(b, n);

    genie_clear_error();
    genie_wire_r_init(&r, copy, n, "bad tensor");
    genie_wire_r_tensor(&r, &t);
    assert_null(t.data);
    assert_int_equal(t.ndim, 0);
    assert_int_equal(t.dtype, 0);
    assert_true(t.nbytes == 0);
    assert_failed(&r, st);
    free(copy);
}

static void test_tensor_refusals(void **state)
{
    uint8_t b[256];
    int64_t sh[GENIE_MAX_DIMS + 2] = { 2, 3, 1, 1, 1, 1, 1, 1, 1, 1 };
    size_t  n;

    (void)state;
    /* the hand encoder agrees with the library on a valid tensor */
    n = hand_tensor(b, GENIE_F32, 2, sh, 24, 24);
    {
        genie_wire_reader_t r;
        genie_wire_tensor_t t;
        genie_wire_r_init(&r, b, n, "ok");
        genie_wire_r_tensor(&r, &t);
        assert_int_equal(genie_wire_r_done(&r), GENIE_OK);
        assert_true(t.nbytes == 24);
    }
    /* dtype out of range */
    n = hand_tensor(b, GENIE_DTYPE_COUNT, 2, sh, 24, 24);
    expect_bad_tensor(b, n, GENIE_ERR_CORRUPT);
    n = hand_tensor(b, 0xffffffffu, 2, sh, 24, 24);
    expect_bad_tensor(b, n, GENIE_ERR_CORRUPT);
    n = hand_tensor(b, GENIE_DTYPE_COUNT, 2, sh, 0, 0);   /* size 0 would make nbytes agree */
    expect_bad_tensor(b, n, GENIE_ERR_CORRUPT);
    /* more than GENIE_MAX_DIMS dims */
    n = hand_tensor(b, GENIE_F32, GENIE_MAX_DIMS + 1, sh, 24, 24);
    expect_bad_tensor(b, n, GENIE_ERR_CORRUPT);
    put_u32(b + 4, 0xffffffffu);
    expect_bad_tensor(b, n, GENIE_ERR_CORRUPT);
    /* negative extents */
    sh[1] = -1;
    n = hand_tensor(b, GENIE_F32, 2, sh, 24, 24);
    expect_bad_tensor(b, n, GENIE_ERR_CORRUPT);
    sh[1] = INT64_MIN;
    n = hand_tensor(b, GENIE_F32, 2, sh, 0, 0);
    expect_bad_tensor(b, n, GENIE_ERR_CORRUPT);
    sh[1] = 3;
    /* nbytes disagreeing with the shape */
    n = hand_tensor(b, GENIE_F32, 2, sh, 23, 23);
    expect_bad_tensor(b, n, GENIE_ERR_CORRUPT);
    n = hand_tensor(b, GENIE_F32, 2, sh, 25, 25);
    expect_bad_tensor(b, n, GENIE_ERR_CORRUPT);
    n = hand_tensor(b, GENIE_F32, 2, sh, 0, 0);
    expect_bad_tensor(b, n, GENIE_ERR_CORRUPT);
    n = hand_tensor(b, GENIE_I64, 2, sh, 24, 24);      /* right for f32, not for i64 */
    expect_bad_tensor(b, n, GENIE_ERR_CORRUPT);
    n = hand_tensor(b, GENIE_F32, 0, sh, 0, 0);        /* a scalar has one element */
    expect_bad_tensor(b, n, GENIE_ERR_CORRUPT);
    /* numel * element size overflowing 64 bits, with nbytes set to the
     * wrapped value so that only the overflow check can catch it */
    {
        int64_t big2[2] = { INT64_C(1) << 32, INT64_C(1) << 32 };     /* numel 2^64 -> 0 */
        int64_t big1[1] = { INT64_C(1) << 62 };                       /* 2^62 * 4 -> 0   */
        int64_t big3[3] = { INT64_C(1) << 20, INT64_C(1) << 20, INT64_C(1) << 22 };
        int64_t max1[1] = { INT64_MAX };
        n = hand_tensor(b, GENIE_F32, 2, big2, 0, 0);
        expect_bad_tensor(b, n, GENIE_ERR_CORRUPT);
        n = hand_tensor(b, GENIE_F32, 1, big1, 0, 0);
        expect_bad_tensor(b, n, GENIE_ERR_CORRUPT);
        n = hand_tensor(b, GENIE_I64, 3, big3, 0, 0);                /* 2^62 * 8 -> 0 */
        expect_bad_tensor(b, n, GENIE_ERR_CORRUPT);
        n = hand_tensor(b, GENIE_BOOL, 1, max1, (uint64_t)INT64_MAX, 0);
        expect_bad_tensor(b, n, GENIE_ERR_CORRUPT);
        /* a zero extent anywhere makes the tensor empty, whatever the others */
        big3[1] = 0;
        n = hand_tensor(b, GENIE_I64, 3, big3, 0, 0);
        {
            genie_wire_reader_t r;
            genie_wire_tensor_t t;
            genie_wire_r_init(&r, b, n, "empty");
            genie_wire_r_tensor(&r, &t);
            assert_int_equal(genie_wire_r_done(&r), GENIE_OK);
            assert_true(t.nbytes == 0);
        }
    }
    /* data shorter than nbytes, and a huge nbytes that agrees with a huge shape */
    n = hand_tensor(b, GENIE_F32, 2, sh, 24, 23);
    expect_bad_tensor(b, n, GENIE_ERR_TRUNCATED);
    {
        int64_t huge[1] = { INT64_C(1) << 40 };
        n = hand_tensor(b, GENIE_F32, 1, huge, (uint64_t)1 << 42, 8);
        expect_bad_tensor(b, n, GENIE_ERR_TRUNCATED);
    }
}

/* A payload shaped like a RUN request followed by a few other fields, and
 * the parse of it; returns the reader's final status. */
static void build_sample(genie_wire_writer_t *w)
{
    static const int64_t s1[2] = { 2, 3 }, s2[1] = { 0 };
    static const float   x[6] = { 1, 2, 3, 4, 5, 6 };

    genie_wire_w_init(w);
    genie_wire_w_bytes(w, "plan!", 5);
    genie_wire_w_align8(w);
    genie_wire_w_u32(w, 3);
    genie_wire_w_tensor(w, GENIE_F32, 2, s1, x);
    genie_wire_w_tensor(w, GENIE_I64, 1, s2, NULL);
    genie_wire_w_tensor(w, GENIE_F16, 0, NULL, "\x00\x3c");
    genie_wire_w_u64(w, 77);
    genie_wire_w_f64(w, 0.25);
    genie_wire_w_bytes(w, "tail", 4);
    assert_int_equal(genie_wire_w_status(w), GENIE_OK);
}

static genie_status_t parse_sample(const uint8_t *buf, size_t len, genie_wire_reader_t *r)
{
    genie_wire_tensor_t t;
    uint32_t            n, blen;

    genie_wire_r_init(r, buf, len, "sample");
    (void)genie_wire_r_bytes(r, &blen);
    genie_wire_r_align8(r);
    n = genie_wire_r_count(r, 16);
    for (uint32_t i = 0; i < n; i++) {
        genie_wire_r_tensor(r, &t);
    }
    (void)genie_wire_r_u64(r);
    (void)genie_wire_r_f64(r);
    (void)genie_wire_r_bytes(r, &blen);
    return genie_wire_r_done(r);
}

/* Every proper prefix of a valid payload is refused (truncated, or a count
 * that no longer fits); the whole payload is accepted; one more byte is
 * trailing garbage. */
static void test_truncation_every_prefix(void **state)
{
    genie_wire_writer_t w;
    genie_wire_reader_t r;
    uint8_t            *copy;

    (void)state;
    build_sample(&w);
    copy = exact_copy(w.buf, w.len);
    assert_int_equal(parse_sample(copy, w.len, &r), GENIE_OK);
    assert_int_equal(r.pos, w.len);
    free(copy);
    for (size_t k = 0; k < w.len; k++) {
        genie_status_t st;
        copy = exact_copy(w.buf, k);
        genie_clear_error();
        st = parse_sample(copy, k, &r);
        assert_true(st == GENIE_ERR_TRUNCATED || st == GENIE_ERR_CORRUPT);
        assert_true(r.pos <= k);
        assert_failed(&r, st);
        free(copy);
    }
    {
        uint8_t *longer = malloc(w.len + 1);
        assert_non_null(longer);
        memcpy(longer, w.buf, w.len);
        longer[w.len] = 0;
        genie_clear_error();
        assert_int_equal(parse_sample(longer, w.len + 1, &r), GENIE_ERR_CORRUPT);
        assert_non_null(strstr(genie_last_error(), "trailing"));
        free(longer);
    }
    genie_wire_w_free(&w);
}

static void test_count(void **state)
{
    uint8_t             b[4 + 16];
    genie_wire_reader_t r;

    (void)state;
    memset(b, 0, sizeof(b));
    /* 16 bytes after the count: two 8-byte items fit, three do not */
    put_u32(b, 2);
    genie_wire_r_init(&r, b, sizeof(b), "count");
    assert_int_equal(genie_wire_r_count(&r, 8), 2);
    assert_int_equal(r.st, GENIE_OK);
    put_u32(b, 3);
    genie_wire_r_init(&r, b, sizeof(b), "count");
    genie_clear_error();
    assert_int_equal(genie_wire_r_count(&r, 8), 0);
    assert_failed(&r, GENIE_ERR_CORRUPT);
    put_u32(b, 0xffffffffu);
    genie_wire_r_init(&r, b, sizeof(b), "count");
    assert_int_equal(genie_wire_r_count(&r, 1), 0);
    assert_failed(&r, GENIE_ERR_CORRUPT);
    /* 16 one-byte items fit exactly; zero items always fit */
    put_u32(b, 16);
    genie_wire_r_init(&r, b, sizeof(b), "count");
    assert_int_equal(genie_wire_r_count(&r, 1), 16);
    put_u32(b, 0);
    genie_wire_r_init(&r, b, 4, "count");
    assert_int_equal(genie_wire_r_count(&r, 24), 0);
    assert_int_equal(genie_wire_r_done(&r), GENIE_OK);
    /* min_item 0: the count is not bounded by what remains */
    put_u32(b, 0xffffffffu);
    genie_wire_r_init(&r, b, 4, "count");
    assert_int_equal(genie_wire_r_count(&r, 0), 0xffffffffu);
    assert_int_equal(genie_wire_r_done(&r), GENIE_OK);
    /* a count that is itself cut short */
    genie_wire_r_init(&r, b, 3, "count");
    assert_int_equal(genie_wire_r_count(&r, 8), 0);
    assert_failed(&r, GENIE_ERR_TRUNCATED);
}

static void test_bytes_refusals(void **state)
{
    uint8_t             b[12];
    genie_wire_reader_t r;
    uint32_t            n = 5;

    (void)state;
    memset(b, 'q', sizeof(b));
    put_u32(b, 9);                                     /* 8 bytes follow */
    genie_wire_r_init(&r, b, sizeof(b), "bytes");
    genie_clear_error();
    assert_null(genie_wire_r_bytes(&r, &n));
    assert_int_equal(n, 0);
    assert_failed(&r, GENIE_ERR_TRUNCATED);
    put_u32(b, 0xffffffffu);
    genie_wire_r_init(&r, b, sizeof(b), "bytes");
    assert_null(genie_wire_r_bytes(&r, &n));
    assert_failed(&r, GENIE_ERR_TRUNCATED);
    put_u32(b, 8);
    genie_wire_r_init(&r, b, sizeof(b), "bytes");
    assert_non_null(genie_wire_r_bytes(&r, &n));
    assert_int_equal(n, 8);
    assert_int_equal(genie_wire_r_done(&r), GENIE_OK);
}

static void test_empty_payload(void **state)
{
    genie_wire_reader_t r;

    (void)state;
    genie_wire_r_init(&r, NULL, 0, "empty");
    assert_int_equal(genie_wire_r_done(&r), GENIE_OK);
    genie_wire_r_init(&r, NULL, 0, "empty");
    genie_clear_error();
    (void)genie_wire_r_u64(&r);
    assert_failed(&r, GENIE_ERR_TRUNCATED);
}

/* ---- hash ------------------------------------------------------------------------ */

static void test_hash(void **state)
{
    enum { N = 100 * 1024 };
    uint8_t *a = malloc(N), *b = malloc(N + 1);
    uint64_t base, rng = 0x9E3779B97F4A7C15ull;
    int      flips = 0;

    (void)state;
    assert_non_null(a);
    assert_non_null(b);
    for (size_t i = 0; i < N; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        a[i] = (uint8_t)rng;
    }
    base = genie_wire_hash(a, N);
    assert_true(base != 0);
    assert_true(genie_wire_hash(a, N) == base);        /* deterministic */
    memcpy(b + 1, a, N);                               /* independent of alignment */
    assert_true(genie_wire_hash(b + 1, N) == base);
    assert_true(genie_wire_hash(a, N - 1) != base);    /* length matters */

    /* one flipped bit anywhere changes the hash: every bit of the first and
     * last 16 bytes, and one bit every 61 bytes in between */
    for (size_t i = 0; i < N; i++) {
        int edge = i < 16 || i >= N - 16;
        if (!edge && (i - 16) % 61 != 0) {
            continue;
        }
        for (int bit = 0; bit < 8; bit++) {
            if (!edge && bit != (int)(i % 8)) {
                continue;
            }
            a[i] ^= (uint8_t)(1u << bit);
            assert_true(genie_wire_hash(a, N) != base);
            a[i] ^= (uint8_t)(1u << bit);
            flips++;
        }
    }
    assert_true(flips > 1500);
    assert_true(genie_wire_hash(a, N) == base);

    /* short inputs, tail bytes included (lengths not a multiple of 8) */
    for (size_t n = 0; n < 24; n++) {
        uint64_t h = genie_wire_hash(a, n);
        assert_true(h != 0);
        if (n > 0) {
            assert_true(genie_wire_hash(a, n - 1) != h);
        }
        for (size_t i = 0; i < n; i++) {
            for (int bit = 0; bit < 8; bit++) {
                a[i] ^= (uint8_t)(1u << bit);
                assert_true(genie_wire_hash(a, n) != h);
                a[i] ^= (uint8_t)(1u << bit);
            }
        }
    }
    assert_true(genie_wire_hash(NULL, 0) == genie_wire_hash(a, 0));
    /* The vectors of docs/wire-protocol.md (a second implementation must
     * produce them: the hash names cached plans across processes). */
    {
        static const struct { const char *s; uint64_t h; } vec[] = {
            { "", 0xf52a15e9a9b5e89bull },
            { "a", 0x270aeb36a95726cfull },
            { "genie", 0x14a0bbe4b1c11213ull },
            { "0123456789abcdef", 0xb0e07ed9071e6e81ull },
            { "The quick brown fox jumps over the lazy dog", 0x63cb69fbc6d141a1ull },
        };
        for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
            assert_true(genie_wire_hash(vec[i].s, strlen(vec[i].s)) == vec[i].h);
        }
    }
    {
        static const uint8_t zero[8] = { 0 };
        assert_true(genie_wire_hash(zero, 1) != genie_wire_hash(zero, 0));
        assert_true(genie_wire_hash(zero, 8) != genie_wire_hash(zero, 7));
    }
    free(a);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_layout),
        cmocka_unit_test(test_check_hdr_accepts),
        cmocka_unit_test(test_check_hdr_refuses),
        cmocka_unit_test(test_msg_names),
        cmocka_unit_test(test_primitive_layout),
        cmocka_unit_test(test_primitive_round_trip),
        cmocka_unit_test(test_align8),
        cmocka_unit_test(test_tensor_round_trip),
        cmocka_unit_test(test_tensor_layout),
        cmocka_unit_test(test_tensor_refusals),
        cmocka_unit_test(test_truncation_every_prefix),
        cmocka_unit_test(test_count),
        cmocka_unit_test(test_bytes_refusals),
        cmocka_unit_test(test_empty_payload),
        cmocka_unit_test(test_hash),
    };
    return cmocka_run_group_tests_name("wire", tests, NULL, NULL);
}

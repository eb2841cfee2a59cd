/*
 * The wire protocol between the driver and the executors, and between
 * executors: fixed 40-byte headers, typed payloads, every length checked
 * before use.  docs/wire-protocol.md is the spec; this header is its C form.
 *
 * Every message is one UCX active message (id GENIE_WIRE_AM_ID): the header
 * travels as the AM header, the payload as the AM data.  A message is valid
 * only if the AM header is exactly sizeof(genie_wire_hdr_t) bytes, magic and
 * version match, the type is known and payload_len equals the AM data length.
 *
 *   | magic u32 | version u16 | type u16 | seq u32 | status i32 | payload_len u64 | aux u64 |
 *   | conn u64 |
 *
 * conn is the connection's token, chosen by the dialer (64 random bits, never
 * 0): its HELLO carries it, and so does every later message on that
 * connection, in both directions (docs/wire-protocol.md).
 *
 * All integers are little-endian (the only byte order Genie runs on; checked
 * at compile time below).  Payloads are built from the primitives below:
 * u32, u64, f64, byte strings (u32 length + bytes) and tensors:
 *
 *   tensor := | dtype u32 | ndim u32 | shape i64[ndim] | nbytes u64 | pad to 8 | data[nbytes] |
 *
 * where nbytes must equal numel * dtype size.  The reader hands out pointers
 * into the message buffer (no copies); data is 8-byte aligned relative to the
 * payload start.
 */
#ifndef GENIE_WIRE_H
#define GENIE_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "genie/status.h"
#include "genie/tensor.h"

#define GENIE_WIRE_MAGIC    0x45494e47u   /* "GNIE" in memory order */
#define GENIE_WIRE_VERSION  2
#define GENIE_WIRE_AM_ID    7
#define GENIE_WIRE_SECRET_LEN 64          /* hex characters of the job secret */

/* Message types.  Numbering is part of the protocol: append only, and bump
 * GENIE_WIRE_VERSION when a payload changes.  A reply carries the request's
 * type | GENIE_MSG_REPLY and the request's seq. */
typedef enum genie_msg_type {
    GENIE_MSG_HELLO        = 1,   /* secret, rank             -> ok | DENIED     */
    GENIE_MSG_WEIGHT       = 2,   /* fp, name, tensor         -> ok              */
    GENIE_MSG_RUN          = 3,   /* plan, srg?, inputs       -> compute_s, outs */
    GENIE_MSG_FREE         = 4,   /* ids                      (no reply)         */
    GENIE_MSG_FETCH        = 5,   /* id                       -> tensor          */
    GENIE_MSG_BIND         = 6,   /* session, ids             -> ok              */
    GENIE_MSG_END_SESSION  = 7,   /* session                  -> n freed         */
    GENIE_MSG_SESSION_INFO = 8,   /* session                  -> n, bytes        */
    GENIE_MSG_HANDOFF      = 9,   /* session, dst, ids        -> bytes, seconds  */
    GENIE_MSG_STATS        = 10,  /*                          -> name/value list */
    GENIE_MSG_SHUTDOWN     = 11,  /*                          -> ok, then exit   */
    GENIE_MSG_KV_RESERVE   = 12,  /* version 1 only: refused since version 2     */
    GENIE_MSG_KV_COMMIT    = 13,  /* version 1 only: refused since version 2     */
    GENIE_MSG_PING         = 14,  /* bytes (echoed)           -> the same bytes  */
    GENIE_MSG_CHECKPOINT   = 15,  /* epoch, path, sessions    -> bytes, seconds  */
    GENIE_MSG_RESTORE      = 16,  /* path, session, objects   -> bytes, seconds  */
    GENIE_MSG_KV_OFFER     = 17,  /* session, objects + rkeys -> bytes got       */
    GENIE_MSG_FENCE        = 18,  /* rank, reason             (no reply)         */
    GENIE_MSG_TYPE_COUNT
} genie_msg_type_t;

#define GENIE_MSG_REPLY 0x8000u

typedef struct genie_wire_hdr {
    uint32_t magic;
    uint16_t version;
    uint16_t type;          /* genie_msg_type_t, | GENIE_MSG_REPLY on replies */
    uint32_t seq;           /* request number chosen by the sender; echoed    */
    int32_t  status;        /* replies: genie_status_t of the request         */
    uint64_t payload_len;   /* bytes of AM data that follow                   */
    uint64_t aux;           /* type-specific (RUN: plan hash)                 */
    uint64_t conn;          /* connection token (the dialer's, never 0)       */
} genie_wire_hdr_t;

_Static_assert(sizeof(genie_wire_hdr_t) == 40, "wire header is 40 bytes: bump GENIE_WIRE_VERSION");
_Static_assert(GENIE_MSG_TYPE_COUNT == 19, "new message type: update docs/wire-protocol.md");
_Static_assert(GENIE_DTYPE_COUNT == 6, "dtype numbering is on the wire: bump GENIE_WIRE_VERSION");
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the Genie wire protocol is little-endian"
#endif

/* Check a received header against the AM header and data lengths.  On error
 * records a one-line reason and returns GENIE_ERR_CORRUPT / _VERSION. */
genie_status_t genie_wire_check_hdr(const void *hdr, size_t hdr_len, size_t data_len,
                                    genie_wire_hdr_t *out_p);
void genie_wire_hdr_init(genie_wire_hdr_t *h, uint16_t type, uint32_t seq, int32_t status,
                         uint64_t payload_len, uint64_t aux);
const char *genie_msg_name(uint32_t type);
/* 64-bit hash of a byte string (plan cache keys; not cryptographic). */
uint64_t    genie_wire_hash(const void *p, size_t n);

/* ---- writer: grows a malloc'd buffer; errors stick (checked at the end) ---- */
typedef struct genie_wire_writer {
    uint8_t *buf;
    size_t   len;
    size_t   cap;
    int      failed;       /* out of memory at some point */
} genie_wire_writer_t;

void genie_wire_w_init(genie_wire_writer_t *w);
void genie_wire_w_free(genie_wire_writer_t *w);
void genie_wire_w_u32(genie_wire_writer_t *w, uint32_t v);
void genie_wire_w_u64(genie_wire_writer_t *w, uint64_t v);
void genie_wire_w_f64(genie_wire_writer_t *w, double v);
void genie_wire_w_bytes(genie_wire_writer_t *w, const void *p, uint32_t n);  /* u32 len + bytes */
void genie_wire_w_raw(genie_wire_writer_t *w, const void *p, size_t n);      /* bytes only */
/* Tensor header and, unless data == NULL, its contiguous data (nbytes). */
void genie_wire_w_tensor(genie_wire_writer_t *w, genie_dtype_t dt, int ndim,
                         const int64_t *shape, const void *data);
/* Tensor header only; the caller appends nbytes of data itself (w_raw). */
size_t genie_wire_w_tensor_hdr(genie_wire_writer_t *w, genie_dtype_t dt, int ndim,
                               const int64_t *shape);
/* Zero bytes up to the next multiple of 8 (the reader skips them with
 * genie_wire_r_align8): a part encoded on its own can then be appended with
 * its tensors' alignment intact. */
void genie_wire_w_align8(genie_wire_writer_t *w);
genie_status_t genie_wire_w_status(const genie_wire_writer_t *w);

/* ---- reader: bounds-checked cursor over a received payload ---------------- */
typedef struct genie_wire_reader {
    const uint8_t *buf;
    size_t         len;
    size_t         pos;
    genie_status_t st;       /* first error; later reads return zeros */
    const char    *what;     /* message being read, for error text    */
} genie_wire_reader_t;

/* A tensor inside a payload: a view with borrowed data. */
typedef struct genie_wire_tensor {
    genie_dtype_t dtype;
    int           ndim;
    int64_t       shape[GENIE_MAX_DIMS];
    uint64_t      nbytes;
    const void   *data;
} genie_wire_tensor_t;

void     genie_wire_r_init(genie_wire_reader_t *r, const void *buf, size_t len, const char *what);
uint32_t genie_wire_r_u32(genie_wire_reader_t *r);
uint64_t genie_wire_r_u64(genie_wire_reader_t *r);
double   genie_wire_r_f64(genie_wire_reader_t *r);
/* Byte string: *len_p bytes at the returned pointer (NULL on error). */
const void *genie_wire_r_bytes(genie_wire_reader_t *r, uint32_t *len_p);
/* A count of items each at least `min_item` bytes: rejects counts that cannot
 * fit in what remains (so a garbage count cannot drive a huge allocation). */
uint32_t genie_wire_r_count(genie_wire_reader_t *r, size_t min_item);
void     genie_wire_r_tensor(genie_wire_reader_t *r, genie_wire_tensor_t *t);
void     genie_wire_r_align8(genie_wire_reader_t *r);
/* GENIE_OK if every read so far was in bounds and the payload is used up. */
genie_status_t genie_wire_r_done(genie_wire_reader_t *r);

/* A host tensor view of a wire tensor (storage borrowed from `ws`, which must
 * outlive the view; refcount 1 so releasing the view frees nothing). */
void genie_wire_tensor_view(const genie_wire_tensor_t *wt, genie_storage_t *ws,
                            genie_tensor_t *t);

#endif

/*
 * Encoding and bounds-checked decoding of wire payloads (see genie/wire.h
 * for the framing).  Nothing here touches UCX, so the fuzz tests drive it
 * directly.  A reader never reads past its buffer: the first failed check
 * records an error, and every later read returns zero.
 */
#include "genie/wire.h"

#include <stdlib.h>
#include <string.h>

static const char *const msg_names[GENIE_MSG_TYPE_COUNT] = {
    [0]                      = "?",
    [GENIE_MSG_HELLO]        = "HELLO",
    [GENIE_MSG_WEIGHT]       = "WEIGHT",
    [GENIE_MSG_RUN]          = "RUN",
    [GENIE_MSG_FREE]         = "FREE",
    [GENIE_MSG_FETCH]        = "FETCH",
    [GENIE_MSG_BIND]         = "BIND",
    [GENIE_MSG_END_SESSION]  = "END_SESSION",
    [GENIE_MSG_SESSION_INFO] = "SESSION_INFO",
    [GENIE_MSG_HANDOFF]      = "HANDOFF",
    [GENIE_MSG_STATS]        = "STATS",
    [GENIE_MSG_SHUTDOWN]     = "SHUTDOWN",
    [GENIE_MSG_KV_RESERVE]   = "KV_RESERVE",
    [GENIE_MSG_KV_COMMIT]    = "KV_COMMIT",
    [GENIE_MSG_PING]         = "PING",
    [GENIE_MSG_CHECKPOINT]   = "CHECKPOINT",
    [GENIE_MSG_RESTORE]      = "RESTORE",
    [GENIE_MSG_KV_OFFER]     = "KV_OFFER",
    [GENIE_MSG_FENCE]        = "FENCE",
};

const char *genie_msg_name(uint32_t type)
{
    type &= ~GENIE_MSG_REPLY;
    return type < GENIE_MSG_TYPE_COUNT ? msg_names[type] : "?";
}

uint64_t genie_wire_hash(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t       h = 0xcbf29ce484222325ULL ^ (uint64_t)n;
    size_t         i = 0;

    /* Multiply-rotate over 8-byte words (the rotate carries high bits back
     * down), bytes for the tail, then a final avalanche (splitmix64). */
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        h ^= w;
        h = ((h << 29) | (h >> 35)) * 0x9e3779b97f4a7c15ULL;
    }
    for (; i < n; i++) {
        h = (h ^ b[i]) * 0x100000001b3ULL;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h == 0 ? 1 : h;
}

void genie_wire_hdr_init(genie_wire_hdr_t *h, uint16_t type, uint32_t seq, int32_t status,
                         uint64_t payload_len, uint64_t aux)
{
    h->magic       = GENIE_WIRE_MAGIC;
    h->version     = GENIE_WIRE_VERSION;
    h->type        = type;
    h->seq         = seq;
    h->status      = status;
    h->payload_len = payload_len;
    h->aux         = aux;
    h->conn        = 0;
}

genie_status_t genie_wire_check_hdr(const void *hdr, size_t hdr_len, size_t data_len,
                                    genie_wire_hdr_t *out_p)
{
    genie_wire_hdr_t h;
    uint32_t         base;

    if (hdr == NULL || hdr_len != sizeof(h)) {
        return genie_set_error(GENIE_ERR_CORRUPT, "wire: header of %zu bytes (expected %zu)",
                               hdr_len, sizeof(h));
    }
    memcpy(&h, hdr, sizeof(h));
    if (h.magic != GENIE_WIRE_MAGIC) {
        return genie_set_error(GENIE_ERR_CORRUPT, "wire: bad magic 0x%08x", h.magic);
    }
    if (h.version != GENIE_WIRE_VERSION) {
        return genie_set_error(GENIE_ERR_VERSION, "wire: protocol version %u (this build speaks %u)",
                               h.version, GENIE_WIRE_VERSION);
    }
    base = h.type & ~GENIE_MSG_REPLY;
    if (base == 0 || base >= GENIE_MSG_TYPE_COUNT || (h.type & 0x7f00u) != 0 ||
        base == GENIE_MSG_KV_RESERVE || base == GENIE_MSG_KV_COMMIT) {
        return genie_set_error(GENIE_ERR_CORRUPT, "wire: unknown message type %u", h.type);
    }
    if (h.payload_len != data_len) {
        return genie_set_error(GENIE_ERR_CORRUPT,
                               "wire: %s declares %llu payload bytes but carries %zu",
                               genie_msg_name(h.type), (unsigned long long)h.payload_len, data_len);
    }
    *out_p = h;
    return GENIE_OK;
}

/* ---- writer ---------------------------------------------------------------- */

void genie_wire_w_init(genie_wire_writer_t *w)
{
    memset(w, 0, sizeof(*w));
}

void genie_wire_w_free(genie_wire_writer_t *w)
{
    free(w->buf);
    memset(w, 0, sizeof(*w));
}

static uint8_t *w_grow(genie_wire_writer_t *w, size_t n)
{
    if (w->failed) {
        return NULL;
    }
    if (w->len + n > w->cap) {
        size_t   cap = w->cap ? w->cap : 256;
        uint8_t *nb;
        while (cap < w->len + n) {
            cap *= 2;
        }
        if ((nb = realloc(w->buf, cap)) == NULL) {
            w->failed = 1;
            return NULL;
        }
        w->buf = nb;
        w->cap = cap;
    }
    w->len += n;
    return w->buf + w->len - n;
}

void genie_wire_w_raw(genie_wire_writer_t *w, const void *p, size_t n)
{
    uint8_t *d = w_grow(w, n);
    if (d != NULL && n > 0) {
        memcpy(d, p, n);
    }
}

void genie_wire_w_u32(genie_wire_writer_t *w, uint32_t v) { genie_wire_w_raw(w, &v, sizeof(v)); }
void genie_wire_w_u64(genie_wire_writer_t *w, uint64_t v) { genie_wire_w_raw(w, &v, sizeof(v)); }
void genie_wire_w_f64(genie_wire_writer_t *w, double v)   { genie_wire_w_raw(w, &v, sizeof(v)); }

void genie_wire_w_bytes(genie_wire_writer_t *w, const void *p, uint32_t n)
{
    genie_wire_w_u32(w, n);
    genie_wire_w_raw(w, p, n);
}

static uint64_t numel_of(int ndim, const int64_t *shape)
{
    uint64_t n = 1;
    for (int d = 0; d < ndim; d++) {
        n *= (uint64_t)shape[d];
    }
    return n;
}

size_t genie_wire_w_tensor_hdr(genie_wire_writer_t *w, genie_dtype_t dt, int ndim,
                               const int64_t *shape)
{
    uint64_t nbytes = numel_of(ndim, shape) * genie_dtype_size(dt);

    genie_wire_w_u32(w, (uint32_t)dt);
    genie_wire_w_u32(w, (uint32_t)ndim);
    genie_wire_w_raw(w, shape, sizeof(int64_t) * (size_t)ndim);
    genie_wire_w_u64(w, nbytes);
    genie_wire_w_align8(w);
    return (size_t)nbytes;
}

void genie_wire_w_tensor(genie_wire_writer_t *w, genie_dtype_t dt, int ndim,
                         const int64_t *shape, const void *data)
{
    size_t nbytes = genie_wire_w_tensor_hdr(w, dt, ndim, shape);
    if (data != NULL) {
        genie_wire_w_raw(w, data, nbytes);
    }
}

void genie_wire_w_align8(genie_wire_writer_t *w)
{
    static const uint8_t zeros[8];
    genie_wire_w_raw(w, zeros, (8 - w->len % 8) % 8);
}

genie_status_t genie_wire_w_status(const genie_wire_writer_t *w)
{
    return w->failed ? genie_set_error(GENIE_ERR_NOMEM, "wire: out of memory building a message")
                     : GENIE_OK;
}

/* ---- reader ---------------------------------------------------------------- */

void genie_wire_r_init(genie_wire_reader_t *r, const void *buf, size_t len, const char *what)
{
    r->buf  = buf;
    r->len  = len;
    r->pos  = 0;
    r->st   = GENIE_OK;
    r->what = what;
}

static const uint8_t *r_take(genie_wire_reader_t *r, size_t n, const char *field)
{
    const uint8_t *p;
    if (r->st != GENIE_OK) {
        return NULL;
    }
    if (n > r->len - r->pos) {
        r->st = genie_set_error(GENIE_ERR_TRUNCATED,
                                "wire: %s: %s needs %zu bytes at offset %zu, payload has %zu",
                                r->what, field, n, r->pos, r->len);
        return NULL;
    }
    p = r->buf + r->pos;
    r->pos += n;
    return p;
}

uint32_t genie_wire_r_u32(genie_wire_reader_t *r)
{
    uint32_t v = 0;
    const uint8_t *p = r_take(r, sizeof(v), "u32");
    if (p != NULL) {
        memcpy(&v, p, sizeof(v));
    }
    return v;
}

uint64_t genie_wire_r_u64(genie_wire_reader_t *r)
{
    uint64_t v = 0;
    const uint8_t *p = r_take(r, sizeof(v), "u64");
    if (p != NULL) {
        memcpy(&v, p, sizeof(v));
    }
    return v;
}

double genie_wire_r_f64(genie_wire_reader_t *r)
{
    double v = 0;
    const uint8_t *p = r_take(r, sizeof(v), "f64");
    if (p != NULL) {
        memcpy(&v, p, sizeof(v));
    }
    return v;
}

const void *genie_wire_r_bytes(genie_wire_reader_t *r, uint32_t *len_p)
{
    uint32_t n = genie_wire_r_u32(r);
    const uint8_t *p = r_take(r, n, "byte string");
    *len_p = p != NULL ? n : 0;
    return p;
}

uint32_t genie_wire_r_count(genie_wire_reader_t *r, size_t min_item)
{
    uint32_t n = genie_wire_r_u32(r);
    if (r->st == GENIE_OK && min_item > 0 && n > (r->len - r->pos) / min_item) {
        r->st = genie_set_error(GENIE_ERR_CORRUPT,
                                "wire: %s: count %u cannot fit in the %zu bytes left",
                                r->what, n, r->len - r->pos);
        return 0;
    }
    return r->st == GENIE_OK ? n : 0;
}

void genie_wire_r_tensor(genie_wire_reader_t *r, genie_wire_tensor_t *t)
{
    uint32_t       dt, ndim;
    uint64_t       numel = 1, nbytes;
    const uint8_t *p;

    memset(t, 0, sizeof(*t));
    dt   = genie_wire_r_u32(r);
    ndim = genie_wire_r_u32(r);
    if (r->st != GENIE_OK) {
        return;
    }
    if (dt >= GENIE_DTYPE_COUNT || ndim > GENIE_MAX_DIMS) {
        r->st = genie_set_error(GENIE_ERR_CORRUPT, "wire: %s: tensor with dtype %u and %u dims",
                                r->what, dt, ndim);
        return;
    }
    p = r_take(r, sizeof(int64_t) * ndim, "tensor shape");
    if (p == NULL) {
        return;
    }
    memcpy(t->shape, p, sizeof(int64_t) * ndim);
    for (uint32_t d = 0; d < ndim; d++) {
        if (t->shape[d] < 0 ||
            (t->shape[d] > 0 && numel > (UINT64_MAX / 16) / (uint64_t)t->shape[d])) {
            r->st = genie_set_error(GENIE_ERR_CORRUPT, "wire: %s: tensor extent %lld in dim %u",
                                    r->what, (long long)t->shape[d], d);
            return;
        }
        numel *= (uint64_t)t->shape[d];
    }
    nbytes = genie_wire_r_u64(r);
    if (r->st != GENIE_OK) {
        return;
    }
    if (nbytes != numel * genie_dtype_size((genie_dtype_t)dt)) {
        r->st = genie_set_error(GENIE_ERR_CORRUPT,
                                "wire: %s: tensor declares %llu bytes for %llu %s elements",
                                r->what, (unsigned long long)nbytes, (unsigned long long)numel,
                                genie_dtype_name((genie_dtype_t)dt));
        return;
    }
    if (r_take(r, (8 - r->pos % 8) % 8, "tensor padding") == NULL) {
        return;
    }
    if (nbytes > r->len - r->pos) {
        r->st = genie_set_error(GENIE_ERR_TRUNCATED,
                                "wire: %s: tensor data of %llu bytes, %zu left", r->what,
                                (unsigned long long)nbytes, r->len - r->pos);
        return;
    }
    t->data   = r->buf + r->pos;
    r->pos   += nbytes;
    t->dtype  = (genie_dtype_t)dt;
    t->ndim   = (int)ndim;
    t->nbytes = nbytes;
}

void genie_wire_r_align8(genie_wire_reader_t *r)
{
    (void)r_take(r, (8 - r->pos % 8) % 8, "padding");
}

genie_status_t genie_wire_r_done(genie_wire_reader_t *r)
{
    if (r->st == GENIE_OK && r->pos != r->len) {
        r->st = genie_set_error(GENIE_ERR_CORRUPT, "wire: %s: %zu trailing bytes", r->what,
                                r->len - r->pos);
    }
    return r->st;
}

void genie_wire_tensor_view(const genie_wire_tensor_t *wt, genie_storage_t *ws,
                            genie_tensor_t *t)
{
    memset(ws, 0, sizeof(*ws));
    ws->data     = (void *)wt->data;
    ws->nbytes   = wt->nbytes;
    ws->refcount = 1;
    memset(t, 0, sizeof(*t));
    t->dtype = wt->dtype;
    t->ndim  = wt->ndim;
    memcpy(t->shape, wt->shape, sizeof(int64_t) * (size_t)wt->ndim);
    genie_tensor_set_contiguous_strides(t);
    t->storage = ws;
}

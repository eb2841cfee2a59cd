/*
 * The SRG binary format (docs/srg-format.md is the normative spec): encoding a
 * graph into one malloc'd buffer, and decoding untrusted bytes back into a
 * graph with every rule checked against the end of the buffer.  Executors
 * decode graphs that arrive over the network, so the decoder is written for
 * hostile input: all multi-byte fields are read byte by byte as little-endian
 * through a cursor whose single bounds check (rd_take) every read goes
 * through; every declared count is multiplied by its element's minimum
 * encoded size and compared with the bytes that remain *before* anything is
 * allocated, so memory stays proportional to the buffer; and the topology
 * (ids in range, producers, inputs produced earlier) is verified so that the
 * executor may index its value array with any id it finds.
 */
#include "srg_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Everything below is frozen into format version 2: changing an enum means a
 * new version (or, for ops.def, a new ops revision) and an updated spec. */
_Static_assert(GENIE_PHASE_COUNT == 8,
               "genie_phase_t changed: bump GENIE_SRG_VERSION and docs/srg-format.md");
_Static_assert(GENIE_RES_COUNT == 4,
               "genie_residency_t changed: bump GENIE_SRG_VERSION and docs/srg-format.md");
_Static_assert(GENIE_MOD_COUNT == 5,
               "genie_modality_t changed: bump GENIE_SRG_VERSION and docs/srg-format.md");
_Static_assert(GENIE_BLOCK_COUNT == 7,
               "genie_block_t changed: bump GENIE_SRG_VERSION and docs/srg-format.md");
_Static_assert(GENIE_VAL_KIND_COUNT == 4,
               "genie_value_kind_t changed: bump GENIE_SRG_VERSION and docs/srg-format.md");
_Static_assert(GENIE_ATTR_TAG_COUNT == 7,
               "genie_attr_tag_t changed: bump GENIE_SRG_VERSION and docs/srg-format.md");
_Static_assert(GENIE_DTYPE_COUNT == 6,
               "genie_dtype_t changed: bump GENIE_SRG_VERSION and docs/srg-format.md");
_Static_assert(GENIE_OP_COUNT == 98,
               "ops.def changed: bump GENIE_SRG_OPS_REVISION and the op table in docs/srg-format.md");
_Static_assert(GENIE_SRG_VERSION == 2 && GENIE_SRG_OPS_REVISION == 3,
               "format changed: update the record layouts below and docs/srg-format.md");
_Static_assert(GENIE_MAX_DIMS == 8, "ndim limit is part of the format: bump GENIE_SRG_VERSION");
_Static_assert(sizeof(double) == 8, "FLOAT attrs are IEEE-754 binary64");

/* Header flag bits. */
#define FLAG_COST  0x1u   /* every node record ends with its cost block */
#define FLAGS_KNOWN FLAG_COST

/* Value record flag bits. */
#define VFLAG_IS_OUTPUT  0x1u

/* Encoded sizes (bytes) of the fixed parts, see the framing comments below. */
#define HDR_SIZE        (4 + 2 + 2 + 4 + 4 + 4 + 8)
#define VALUE_FIXED     (1 + 1 + 1 + 1 + 1 + 4 + 4 + 8 + 8)
#define NODE_FIXED      (2 + 1 + 1 + 1 + 1 + 4 + 4 + 4)
#define STR_LEN_SIZE    4
#define COST_SIZE       (8 + 8 + 8)
/* Smallest possible records: a value with ndim 0 and an empty name; a node
 * with an empty module path, no inputs or attrs, and its one required output. */
#define VALUE_MIN       (VALUE_FIXED + STR_LEN_SIZE)
#define NODE_MIN        (NODE_FIXED + STR_LEN_SIZE + 4)

_Static_assert(HDR_SIZE == 28 && VALUE_MIN == 33 && NODE_MIN == 26,
               "record sizes are part of the format: update docs/srg-format.md");

/* ---- little-endian stores (encoder) --------------------------------------- */

typedef struct wr {
    uint8_t *p;   /* next byte to write; the buffer was sized exactly beforehand */
} wr_t;

static void put_u8(wr_t *w, uint8_t v)
{
    *w->p++ = v;
}

static void put_u16(wr_t *w, uint16_t v)
{
    w->p[0] = (uint8_t)v;
    w->p[1] = (uint8_t)(v >> 8);
    w->p += 2;
}

static void put_u32(wr_t *w, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        w->p[i] = (uint8_t)(v >> (8 * i));
    }
    w->p += 4;
}

static void put_u64(wr_t *w, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        w->p[i] = (uint8_t)(v >> (8 * i));
    }
    w->p += 8;
}

static void put_f64(wr_t *w, double v)
{
    uint64_t bits;

    memcpy(&bits, &v, sizeof(bits));   /* the IEEE-754 bit pattern, then LE like any u64 */
    put_u64(w, bits);
}

static void put_bytes(wr_t *w, const void *s, size_t n)
{
    if (n > 0) {
        memcpy(w->p, s, n);
        w->p += n;
    }
}

/* ---- little-endian loads from bytes already bounds-checked by rd_take ----- */

static uint16_t ld_u16(const uint8_t *b)
{
    return (uint16_t)(b[0] | (b[1] << 8));
}

static uint32_t ld_u32(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t ld_u64(const uint8_t *b)
{
    return (uint64_t)ld_u32(b) | (uint64_t)ld_u32(b + 4) << 32;
}

static double ld_f64(const uint8_t *b)
{
    uint64_t bits = ld_u64(b);
    double v;

    memcpy(&v, &bits, sizeof(v));
    return v;
}

/* ---- encoder -------------------------------------------------------------- */

static size_t attr_size(const genie_srg_attr_t *a)
{
    switch (a->tag) {
    case GENIE_ATTR_INT:
    case GENIE_ATTR_FLOAT: return 1 + 8;
    case GENIE_ATTR_BOOL:
    case GENIE_ATTR_DTYPE: return 1 + 1;
    case GENIE_ATTR_INTS:  return 1 + 4 + 8 * (size_t)a->n;
    case GENIE_ATTR_STR:   return 1 + STR_LEN_SIZE + (size_t)a->n;
    default:               return 1;
    }
}

static void put_str(wr_t *w, const char *s, size_t len)
{
    put_u32(w, (uint32_t)len);
    put_bytes(w, s, len);
}

static void put_attr(wr_t *w, const genie_srg_attr_t *a)
{
    put_u8(w, (uint8_t)a->tag);
    switch (a->tag) {
    case GENIE_ATTR_INT:   put_u64(w, (uint64_t)a->i); break;
    case GENIE_ATTR_FLOAT: put_f64(w, a->f); break;
    case GENIE_ATTR_BOOL:  put_u8(w, a->i != 0); break;
    case GENIE_ATTR_DTYPE: put_u8(w, (uint8_t)a->i); break;
    case GENIE_ATTR_INTS:
        put_u32(w, a->n);
        for (uint32_t k = 0; k < a->n; k++) {
            put_u64(w, (uint64_t)a->ints[k]);
        }
        break;
    case GENIE_ATTR_STR:   put_str(w, a->s, a->n); break;
    default:               break;
    }
}

genie_status_t genie_srg_encode(const genie_srg_t *srg, uint8_t **buf_p, size_t *len_p)
{
    uint32_t flags = 0;
    size_t size = HDR_SIZE;
    uint8_t *buf;
    wr_t w;

    if (srg == NULL || buf_p == NULL || len_p == NULL) {
        return genie_set_error(GENIE_ERR_INVALID, "srg: encode: NULL argument");
    }
    /* Pass 1: the exact size, so the buffer is allocated once.  Graphs come from
     * the builder or the decoder, which bound every count, so with a 64-bit
     * size_t these sums cannot overflow. */
    for (uint32_t i = 0; i < srg->n_values; i++) {
        const genie_srg_value_t *v = srg->values[i];
        size += VALUE_FIXED + 8 * (size_t)v->ndim + STR_LEN_SIZE + strlen(v->name);
    }
    for (uint32_t i = 0; i < srg->n_nodes; i++) {
        const genie_srg_node_t *n = srg->nodes[i];
        size += NODE_FIXED + STR_LEN_SIZE + strlen(n->module_path) + 4 * (size_t)n->n_in +
                4 * (size_t)n->n_out;
        for (uint32_t k = 0; k < n->n_attr; k++) {
            size += attr_size(&n->attrs[k]);
        }
        if (n->flops != 0 || n->bytes != 0 || n->intensity != 0.0) {
            flags |= FLAG_COST;
        }
    }
    if (flags & FLAG_COST) {
        size += COST_SIZE * (size_t)srg->n_nodes;
    }
    buf = malloc(size);
    if (buf == NULL) {
        return genie_set_error(GENIE_ERR_NOMEM, "srg: out of memory encoding %zu bytes", size);
    }
    w.p = buf;

    /* Pass 2: the bytes, in the order of docs/srg-format.md. */
    put_bytes(&w, GENIE_SRG_MAGIC, 4);
    put_u16(&w, GENIE_SRG_VERSION);
    put_u16(&w, GENIE_SRG_OPS_REVISION);
    put_u32(&w, flags);
    put_u32(&w, srg->n_values);
    put_u32(&w, srg->n_nodes);
    put_u64(&w, size);
    for (uint32_t i = 0; i < srg->n_values; i++) {
        const genie_srg_value_t *v = srg->values[i];
        put_u8(&w, (uint8_t)v->kind);
        put_u8(&w, (uint8_t)v->dtype);
        put_u8(&w, (uint8_t)v->residency);
        put_u8(&w, (uint8_t)v->ndim);
        put_u8(&w, v->is_output ? VFLAG_IS_OUTPUT : 0);
        put_u32(&w, v->producer);
        put_u32(&w, v->producer_out);
        put_u64(&w, v->ref);
        put_u64(&w, v->keep_id);
        for (int d = 0; d < v->ndim; d++) {
            put_u64(&w, (uint64_t)v->shape[d]);
        }
        put_str(&w, v->name, strlen(v->name));
    }
    for (uint32_t i = 0; i < srg->n_nodes; i++) {
        const genie_srg_node_t *n = srg->nodes[i];
        put_u16(&w, (uint16_t)n->op);
        put_u8(&w, (uint8_t)n->phase);
        put_u8(&w, (uint8_t)n->modality);
        put_u8(&w, (uint8_t)n->residency);
        put_u8(&w, (uint8_t)n->block);
        put_u32(&w, n->n_in);
        put_u32(&w, n->n_out);
        put_u32(&w, n->n_attr);
        put_str(&w, n->module_path, strlen(n->module_path));
        for (uint32_t k = 0; k < n->n_in; k++) {
            put_u32(&w, n->in[k]);
        }
        for (uint32_t k = 0; k < n->n_out; k++) {
            put_u32(&w, n->out[k]);
        }
        for (uint32_t k = 0; k < n->n_attr; k++) {
            put_attr(&w, &n->attrs[k]);
        }
        if (flags & FLAG_COST) {
            put_u64(&w, n->flops);
            put_u64(&w, n->bytes);
            put_f64(&w, n->intensity);
        }
    }
    if ((size_t)(w.p - buf) != size) {
        /* Pass 1 and pass 2 disagree: a bug here, never the caller's fault. */
        size_t wrote = (size_t)(w.p - buf);
        free(buf);
        return genie_set_error(GENIE_ERR_CORRUPT, "srg: encode: wrote %zu bytes, sized %zu",
                               wrote, size);
    }
    *buf_p = buf;
    *len_p = size;
    return GENIE_OK;
}

/* ---- decoder -------------------------------------------------------------- */

typedef struct rd {
    const uint8_t *p;      /* next unread byte                                  */
    size_t         left;   /* bytes from p to the end of the graph              */
    const char    *rec;    /* record being read, for messages: "value", "node"  */
    uint32_t       idx;    /* its index                                         */
    uint32_t       attr;   /* attribute being read, GENIE_SRG_NONE outside one  */
    uint32_t       n_ops;  /* ops that exist in the graph's ops revision         */
} rd_t;

/* "value 3", "node 7" or "node 7 attr 2": where the cursor is, for messages. */
static const char *rd_where(const rd_t *r, char *buf, size_t size)
{
    if (r->attr != GENIE_SRG_NONE) {
        snprintf(buf, size, "%s %u attr %u", r->rec, r->idx, r->attr);
    } else {
        snprintf(buf, size, "%s %u", r->rec, r->idx);
    }
    return buf;
}

static genie_status_t rd_short(const rd_t *r, uint64_t n, const char *field)
{
    char where[64];

    return genie_set_error(GENIE_ERR_TRUNCATED, "srg: truncated: %s %s needs %llu bytes, %zu left",
                           rd_where(r, where, sizeof(where)), field, (unsigned long long)n,
                           r->left);
}

/* The one bounds check: hand out the next n bytes, or fail naming `field`. */
static genie_status_t rd_take(rd_t *r, uint64_t n, const char *field, const uint8_t **bytes_p)
{
    if (n > r->left) {
        return rd_short(r, n, field);
    }
    *bytes_p = r->p;
    r->p    += n;
    r->left -= n;
    return GENIE_OK;
}

/* Like rd_take without consuming: used to bound a count before allocating
 * `n` bytes' worth of elements. */
static genie_status_t rd_need(const rd_t *r, uint64_t n, const char *field)
{
    return n > r->left ? rd_short(r, n, field) : GENIE_OK;
}

static genie_status_t rd_u8(rd_t *r, const char *field, uint8_t *v_p)
{
    const uint8_t *b = NULL;
    genie_status_t st = rd_take(r, 1, field, &b);

    if (st == GENIE_OK) {
        *v_p = b[0];
    }
    return st;
}

static genie_status_t rd_u32(rd_t *r, const char *field, uint32_t *v_p)
{
    const uint8_t *b = NULL;
    genie_status_t st = rd_take(r, 4, field, &b);

    if (st == GENIE_OK) {
        *v_p = ld_u32(b);
    }
    return st;
}

static genie_status_t rd_u64(rd_t *r, const char *field, uint64_t *v_p)
{
    const uint8_t *b = NULL;
    genie_status_t st = rd_take(r, 8, field, &b);

    if (st == GENIE_OK) {
        *v_p = ld_u64(b);
    }
    return st;
}

/* A string: | len (u32) | bytes (len) |, len <= GENIE_SRG_MAX_NAME, no NUL byte
 * inside (so the NUL-terminated copy means the same thing).  Copied into the
 * arena; empty strings all point at one static "". */
static genie_status_t rd_str(rd_t *r, genie_srg_t *srg, const char *field, const char **s_p,
                             uint32_t *len_p)
{
    const uint8_t *b = NULL;
    uint32_t len = 0;
    char where[64], *s;
    genie_status_t st;

    st = rd_u32(r, field, &len);
    if (st != GENIE_OK) {
        return st;
    }
    if (len > GENIE_SRG_MAX_NAME) {
        return genie_set_error(GENIE_ERR_CORRUPT, "srg: %s %s is %u bytes (max %u)",
                               rd_where(r, where, sizeof(where)), field, len, GENIE_SRG_MAX_NAME);
    }
    st = rd_take(r, len, field, &b);
    if (st != GENIE_OK) {
        return st;
    }
    if (len > 0 && memchr(b, '\0', len) != NULL) {
        return genie_set_error(GENIE_ERR_CORRUPT, "srg: %s %s contains a NUL byte",
                               rd_where(r, where, sizeof(where)), field);
    }
    s = genie_srg_strdup(srg, (const char *)b, len);
    if (s == NULL) {
        return genie_set_error(GENIE_ERR_NOMEM, "srg: out of memory decoding %s %s",
                               rd_where(r, where, sizeof(where)), field);
    }
    *s_p = s;
    if (len_p != NULL) {
        *len_p = len;
    }
    return GENIE_OK;
}

/*
 * Header (28 bytes):
 * | magic "GSRG" (4) | version (u16) | ops_revision (u16) | flags (u32) |
 * | n_values (u32) | n_nodes (u32) | total_len (u64) |
 * total_len must equal the buffer's length: shorter is truncation, longer is
 * trailing garbage.  Both counts are bounded by the remaining bytes here.
 */
static genie_status_t read_header(const uint8_t *buf, size_t len, uint32_t *flags_p,
                                  uint32_t *n_values_p, uint32_t *n_nodes_p, uint32_t *n_ops_p)
{
    uint16_t version, ops_rev;
    uint32_t flags, n_values, n_nodes;
    uint64_t total, need;

    if (len < 4) {
        return genie_set_error(GENIE_ERR_TRUNCATED, "srg: truncated: %zu bytes, not even a magic "
                               "number", len);
    }
    if (memcmp(buf, GENIE_SRG_MAGIC, 4) != 0) {
        return genie_set_error(GENIE_ERR_CORRUPT, "srg: bad magic %02x %02x %02x %02x (expected "
                               "\"GSRG\"): not an encoded graph", buf[0], buf[1], buf[2], buf[3]);
    }
    if (len < HDR_SIZE) {
        return genie_set_error(GENIE_ERR_TRUNCATED, "srg: truncated: header needs %d bytes, %zu "
                               "given", HDR_SIZE, len);
    }
    version  = ld_u16(buf + 4);
    ops_rev  = ld_u16(buf + 6);
    flags    = ld_u32(buf + 8);
    n_values = ld_u32(buf + 12);
    n_nodes  = ld_u32(buf + 16);
    total    = ld_u64(buf + 20);
    if (version != GENIE_SRG_VERSION) {
        return genie_set_error(GENIE_ERR_VERSION, "srg: format version %u, this build reads "
                               "version %u only", version, GENIE_SRG_VERSION);
    }
    /* ops.def is append-only, so older revisions are subsets of ours. */
    if (ops_rev == 0 || ops_rev > GENIE_SRG_OPS_REVISION) {
        return genie_set_error(GENIE_ERR_VERSION, "srg: ops revision %u, this build knows "
                               "revisions 1..%u", ops_rev, GENIE_SRG_OPS_REVISION);
    }
    if (flags & ~FLAGS_KNOWN) {
        return genie_set_error(GENIE_ERR_VERSION, "srg: unknown header flags 0x%x", flags);
    }
    if (total != len) {
        if (total > len) {
            return genie_set_error(GENIE_ERR_TRUNCATED, "srg: truncated: header declares %llu "
                                   "bytes, buffer holds %zu", (unsigned long long)total, len);
        }
        return genie_set_error(GENIE_ERR_CORRUPT, "srg: %llu trailing bytes after the %llu the "
                               "header declares", (unsigned long long)(len - total),
                               (unsigned long long)total);
    }
    if (n_values == GENIE_SRG_NONE || n_nodes == GENIE_SRG_NONE) {
        return genie_set_error(GENIE_ERR_CORRUPT, "srg: header counts %u values, %u nodes: "
                               "0xffffffff is reserved", n_values, n_nodes);
    }
    need = (uint64_t)n_values * VALUE_MIN +
           (uint64_t)n_nodes * (uint64_t)(NODE_MIN + ((flags & FLAG_COST) ? COST_SIZE : 0));
    if (need > len - HDR_SIZE) {
        return genie_set_error(GENIE_ERR_TRUNCATED, "srg: truncated: header declares %u values "
                               "and %u nodes, which need at least %llu bytes, %zu left", n_values,
                               n_nodes, (unsigned long long)need, len - (size_t)HDR_SIZE);
    }
    *flags_p    = flags;
    *n_values_p = n_values;
    *n_nodes_p  = n_nodes;
    *n_ops_p    = genie_op_count_in_revision(ops_rev);
    return GENIE_OK;
}

/*
 * Value record (33 bytes + 8 * ndim + name length):
 * | kind (u8) | dtype (u8) | residency (u8) | ndim (u8) | flags (u8) |
 * | producer (u32) | producer_out (u32) | ref (u64) | keep_id (u64) |
 * | shape (ndim x i64) | name (u32 len + bytes) |
 * flags bit 0 = is_output, other bits 0.  NODE values name a producer node
 * index < n_nodes (checked against the node table later); sources carry NONE
 * in both producer fields.
 */
static genie_status_t read_value(rd_t *r, genie_srg_t *srg, uint32_t n_nodes,
                                 genie_srg_value_t *v)
{
    const uint8_t *b = NULL;
    const char *why;
    genie_status_t st;

    st = rd_take(r, VALUE_FIXED, "fields", &b);
    if (st != GENIE_OK) {
        return st;
    }
    if (b[0] >= GENIE_VAL_KIND_COUNT) {
        return genie_set_error(GENIE_ERR_CORRUPT, "srg: value %u: kind %u out of range (< %d)",
                               r->idx, b[0], GENIE_VAL_KIND_COUNT);
    }
    if (b[1] >= GENIE_DTYPE_COUNT) {
        return genie_set_error(GENIE_ERR_CORRUPT, "srg: value %u: dtype %u out of range (< %d)",
                               r->idx, b[1], GENIE_DTYPE_COUNT);
    }
    if (b[2] >= GENIE_RES_COUNT) {
        return genie_set_error(GENIE_ERR_CORRUPT, "srg: value %u: residency %u out of range "
                               "(< %d)", r->idx, b[2], GENIE_RES_COUNT);
    }
    if (b[3] > GENIE_MAX_DIMS) {
        return genie_set_error(GENIE_ERR_CORRUPT, "srg: value %u: ndim %u exceeds %d", r->idx,
                               b[3], GENIE_MAX_DIMS);
    }
    if (b[4] & ~VFLAG_IS_OUTPUT) {
        return genie_set_error(GENIE_ERR_CORRUPT, "srg: value %u: unknown flags 0x%x (only bit 0, "
                               "is_output, is defined)", r->idx, b[4]);
    }
    v->kind         = (genie_value_kind_t)b[0];
    v->dtype        = (genie_dtype_t)b[1];
    v->residency    = (genie_residency_t)b[2];
    v->ndim         = b[3];
    v->is_output    = b[4] & VFLAG_IS_OUTPUT;
    v->producer     = ld_u32(b + 5);
    v->producer_out = ld_u32(b + 9);
    v->ref          = ld_u64(b + 13);
    v->keep_id      = ld_u64(b + 21);
    if (v->kind == GENIE_VAL_NODE && v->producer >= n_nodes) {
        return genie_set_error(GENIE_ERR_CORRUPT, "srg: value %u: producer node %u out of range "
                               "(%u nodes)", r->idx, v->producer, n_nodes);
    }
    if (v->kind != GENIE_VAL_NODE &&
        (v->producer != GENIE_SRG_NONE || v->producer_out != GENIE_SRG_NONE)) {
        return genie_set_error(GENIE_ERR_CORRUPT, "srg: value %u: %s value names producer %u "
                               "output %u (sources have none)", r->idx,
                               genie_srg_kind_name(v->kind), v->producer, v->producer_out);
    }
    st = rd_take(r, 8 * (uint64_t)v->ndim, "shape", &b);
    if (st != GENIE_OK) {
        return st;
    }
    for (int d = 0; d < v->ndim; d++) {
        v->shape[d] = (int64_t)ld_u64(b + 8 * d);
    }
    why = genie_srg_shape_problem(v->dtype, v->ndim, v->shape);
    if (why != NULL) {
        return genie_set_error(GENIE_ERR_CORRUPT, "srg: value %u: %s shape %s", r->idx,
                               genie_dtype_name(v->dtype), why);
    }
    return rd_str(r, srg, "name", &v->name, NULL);
}

/*
 * Attribute: | tag (u8) | payload |, payload by tag:
 *   NONE: -   INT: i64   FLOAT: f64 (IEEE-754 bits)   BOOL: u8 (0/1)
 *   INTS: | count (u32) | count x i64 |   STR: | len (u32) | bytes |
 *   DTYPE: u8 (< GENIE_DTYPE_COUNT)
 */
static genie_status_t read_attr(rd_t *r, genie_srg_t *srg, genie_srg_attr_t *a)
{
    const uint8_t *b = NULL;
    uint8_t tag = 0, u8 = 0;
    uint32_t count = 0;
    int64_t *ints;
    genie_status_t st;

    st = rd_u8(r, "tag", &tag);
    if (st != GENIE_OK) {
        return st;
    }
    if (tag >= GENIE_ATTR_TAG_COUNT) {
        return genie_set_error(GENIE_ERR_CORRUPT, "srg: node %u attr %u: tag %u out of range "
                               "(< %d)", r->idx, r->attr, tag, GENIE_ATTR_TAG_COUNT);
    }
    a->tag = (genie_attr_tag_t)tag;
    switch (a->tag) {
    case GENIE_ATTR_INT:
        return rd_u64(r, "int", (uint64_t *)&a->i);
    case GENIE_ATTR_FLOAT:
        st = rd_take(r, 8, "float", &b);
        if (st == GENIE_OK) {
            a->f = ld_f64(b);
        }
        return st;
    case GENIE_ATTR_BOOL:
    case GENIE_ATTR_DTYPE:
        st = rd_u8(r, a->tag == GENIE_ATTR_BOOL ? "bool" : "dtype", &u8);
        if (st != GENIE_OK) {
            return st;
        }
        if (u8 >= (a->tag == GENIE_ATTR_BOOL ? 2 : GENIE_DTYPE_COUNT)) {
            return genie_set_error(GENIE_ERR_CORRUPT, "srg: node %u attr %u: %s %u out of range",
                                   r->idx, r->attr, genie_srg_attr_tag_name(a->tag), u8);
        }
        a->i = u8;
        return GENIE_OK;
    case GENIE_ATTR_INTS:
        st = rd_u32(r, "ints count", &count);
        if (st != GENIE_OK) {
            return st;
        }
        st = rd_take(r, 8 * (uint64_t)count, "ints", &b);   /* bounds count before the alloc */
        if (st != GENIE_OK) {
            return st;
        }
        ints = genie_srg_alloc(srg, count, sizeof(int64_t));
        if (ints == NULL) {
            return genie_set_error(GENIE_ERR_NOMEM, "srg: out of memory decoding node %u attr %u",
                                   r->idx, r->attr);
        }
        for (uint32_t k = 0; k < count; k++) {
            ints[k] = (int64_t)ld_u64(b + 8 * (size_t)k);
        }
        a->ints = ints;
        a->n    = count;
        return GENIE_OK;
    case GENIE_ATTR_STR:
        return rd_str(r, srg, "string", &a->s, &a->n);
    default:
        return GENIE_OK;   /* NONE: no payload */
    }
}

/*
 * Node record (26 bytes at least):
 * | op (u16) | phase (u8) | modality (u8) | residency (u8) | block (u8) |
 * | n_in (u32) | n_out (u32) | n_attr (u32) | module_path (u32 len + bytes) |
 * | in (n_in x u32) | out (n_out x u32) | attrs (n_attr records) |
 * | [flops (u64) | bytes (u64) | intensity (f64)]  if header flag COST |
 * `produced[v]` is set once node `producer` has emitted value v, so "v is
 * produced" at node i means "by an earlier node".
 */
static genie_status_t read_node(rd_t *r, genie_srg_t *srg, uint32_t flags, uint8_t *produced,
                                genie_srg_node_t *n)
{
    const uint32_t idx = r->idx, n_values = srg->n_values;
    const uint8_t *b = NULL;
    uint32_t *ids;
    genie_srg_attr_t *attrs;
    genie_status_t st;

    st = rd_take(r, NODE_FIXED, "fields", &b);
    if (st != GENIE_OK) {
        return st;
    }
    n->op        = ld_u16(b);
    n->n_in      = ld_u32(b + 6);
    n->n_out     = ld_u32(b + 10);
    n->n_attr    = ld_u32(b + 14);
    if (n->op >= r->n_ops) {
        return genie_set_error(GENIE_ERR_CORRUPT, "srg: node %u: op %u not in ops revision of "
                               "this graph (%u ops)", idx, n->op, r->n_ops);
    }
    if (b[2] >= GENIE_PHASE_COUNT) {
        return genie_set_error(GENIE_ERR_CORRUPT, "srg: node %u (%s): phase %u out of range (< %d)",
                               idx, genie_op_name(n->op), b[2], GENIE_PHASE_COUNT);
    }
    if (b[3] >= GENIE_MOD_COUNT) {
        return genie_set_error(GENIE_ERR_CORRUPT, "srg: node %u (%s): modality %u out of range "
                               "(< %d)", idx, genie_op_name(n->op), b[3], GENIE_MOD_COUNT);
    }
    if (b[4] >= GENIE_RES_COUNT) {
        return genie_set_error(GENIE_ERR_CORRUPT, "srg: node %u (%s): residency %u out of range "
                               "(< %d)", idx, genie_op_name(n->op), b[4], GENIE_RES_COUNT);
    }
    if (b[5] >= GENIE_BLOCK_COUNT) {
        return genie_set_error(GENIE_ERR_CORRUPT, "srg: node %u (%s): block %u out of range (< %d)",
                               idx, genie_op_name(n->op), b[5], GENIE_BLOCK_COUNT);
    }
    n->phase     = (genie_phase_t)b[2];
    n->modality  = (genie_modality_t)b[3];
    n->residency = (genie_residency_t)b[4];
    n->block     = (genie_block_t)b[5];
    if (n->n_out == 0) {
        return genie_set_error(GENIE_ERR_CORRUPT, "srg: node %u (%s) has no outputs", idx,
                               genie_op_name(n->op));
    }
    st = rd_str(r, srg, "module path", &n->module_path, NULL);
    if (st != GENIE_OK) {
        return st;
    }

    /* Inputs: NONE, a source, or a value an earlier node produced. */
    st = rd_take(r, 4 * (uint64_t)n->n_in, "input list", &b);
    if (st != GENIE_OK) {
        return st;
    }
    ids = genie_srg_alloc(srg, n->n_in, sizeof(*ids));
    if (ids == NULL) {
        goto err_nomem;
    }
    for (uint32_t k = 0; k < n->n_in; k++) {
        uint32_t v = ld_u32(b + 4 * (size_t)k);
        ids[k] = v;
        if (v == GENIE_SRG_NONE) {
            continue;
        }
        if (v >= n_values) {
            return genie_set_error(GENIE_ERR_CORRUPT, "srg: node %u input %u: value %u out of "
                                   "range (%u values)", idx, k, v, n_values);
        }
        if (srg->values[v]->kind == GENIE_VAL_NODE && !produced[v]) {
            return genie_set_error(GENIE_ERR_CORRUPT, "srg: node %u uses value %u before it is "
                                   "produced", idx, v);
        }
    }
    n->in = ids;

    /* Outputs: NODE values naming this node and slot, consecutive ids (the
     * executor relies on that), each produced exactly once. */
    st = rd_take(r, 4 * (uint64_t)n->n_out, "output list", &b);
    if (st != GENIE_OK) {
        return st;
    }
    ids = genie_srg_alloc(srg, n->n_out, sizeof(*ids));
    if (ids == NULL) {
        goto err_nomem;
    }
    for (uint32_t k = 0; k < n->n_out; k++) {
        uint32_t v = ld_u32(b + 4 * (size_t)k);
        const genie_srg_value_t *val;
        ids[k] = v;
        if (v >= n_values) {
            return genie_set_error(GENIE_ERR_CORRUPT, "srg: node %u output %u: value %u out of "
                                   "range (%u values)", idx, k, v, n_values);
        }
        val = srg->values[v];
        if (val->kind != GENIE_VAL_NODE) {
            return genie_set_error(GENIE_ERR_CORRUPT, "srg: node %u output %u: value %u is a "
                                   "source (%s), not a node output", idx, k, v,
                                   genie_srg_kind_name(val->kind));
        }
        if (val->producer != idx || val->producer_out != k) {
            return genie_set_error(GENIE_ERR_CORRUPT, "srg: node %u output %u: value %u names "
                                   "producer node %u output %u", idx, k, v, val->producer,
                                   val->producer_out);
        }
        if (produced[v]) {
            return genie_set_error(GENIE_ERR_CORRUPT, "srg: value %u is produced twice (again "
                                   "by node %u)", v, idx);
        }
        if (k > 0 && v != ids[0] + k) {
            return genie_set_error(GENIE_ERR_CORRUPT, "srg: node %u outputs are not consecutive "
                                   "value ids (output %u is value %u, expected %u)", idx, k, v,
                                   ids[0] + k);
        }
        produced[v] = 1;
    }
    n->out = ids;

    /* Attributes: at least one byte (the tag) each. */
    st = rd_need(r, n->n_attr, "attr list");
    if (st != GENIE_OK) {
        return st;
    }
    attrs = genie_srg_alloc(srg, n->n_attr, sizeof(*attrs));
    if (attrs == NULL) {
        goto err_nomem;
    }
    memset(attrs, 0, sizeof(*attrs) * n->n_attr);
    for (uint32_t k = 0; k < n->n_attr; k++) {
        r->attr = k;
        st = read_attr(r, srg, &attrs[k]);
        if (st != GENIE_OK) {
            return st;
        }
    }
    r->attr  = GENIE_SRG_NONE;
    n->attrs = attrs;

    if (flags & FLAG_COST) {
        st = rd_take(r, COST_SIZE, "cost", &b);
        if (st != GENIE_OK) {
            return st;
        }
        n->flops     = ld_u64(b);
        n->bytes     = ld_u64(b + 8);
        n->intensity = ld_f64(b + 16);
        if (!isfinite(n->intensity) || n->intensity < 0.0) {
            return genie_set_error(GENIE_ERR_CORRUPT, "srg: node %u: intensity %g is not a finite "
                                   "non-negative number", idx, n->intensity);
        }
    }
    return GENIE_OK;

err_nomem:
    return genie_set_error(GENIE_ERR_NOMEM, "srg: out of memory decoding node %u", idx);
}

genie_status_t genie_srg_decode(const uint8_t *buf, size_t len, genie_srg_t **srg_p)
{
    genie_srg_t *srg = NULL;
    genie_srg_value_t *vals;
    genie_srg_node_t *nodes;
    uint8_t *produced;
    uint32_t flags = 0, n_values = 0, n_nodes = 0, n_ops = 0;
    rd_t r;
    genie_status_t st;

    if ((buf == NULL && len > 0) || srg_p == NULL) {
        return genie_set_error(GENIE_ERR_INVALID, "srg: decode: NULL argument");
    }
    st = read_header(buf, len, &flags, &n_values, &n_nodes, &n_ops);
    if (st != GENIE_OK) {
        return st;
    }
    /* From here every allocation is bounded: the counts fit in the buffer. */
    st = genie_srg_create(&srg);
    if (st != GENIE_OK) {
        return st;
    }
    st = genie_srg_reserve(srg, n_values, n_nodes);
    if (st != GENIE_OK) {
        goto err_destroy;
    }
    produced = calloc(n_values ? n_values : 1, 1);
    vals     = genie_srg_alloc(srg, n_values, sizeof(*vals));
    nodes    = genie_srg_alloc(srg, n_nodes, sizeof(*nodes));
    if (produced == NULL || vals == NULL || nodes == NULL) {
        st = genie_set_error(GENIE_ERR_NOMEM, "srg: out of memory decoding %u values, %u nodes",
                             n_values, n_nodes);
        goto err_free_produced;
    }
    memset(vals, 0, sizeof(*vals) * n_values);
    memset(nodes, 0, sizeof(*nodes) * n_nodes);

    r = (rd_t){ .p = buf + HDR_SIZE, .left = len - HDR_SIZE, .rec = "value",
                .attr = GENIE_SRG_NONE, .n_ops = n_ops };
    for (uint32_t i = 0; i < n_values; i++) {
        r.idx = i;
        st = read_value(&r, srg, n_nodes, &vals[i]);
        if (st != GENIE_OK) {
            goto err_free_produced;
        }
        srg->values[i] = &vals[i];
    }
    srg->n_values = n_values;

    r.rec = "node";
    for (uint32_t i = 0; i < n_nodes; i++) {
        r.idx = i;
        st = read_node(&r, srg, flags, produced, &nodes[i]);
        if (st != GENIE_OK) {
            goto err_free_produced;
        }
        srg->nodes[i] = &nodes[i];
    }
    srg->n_nodes = n_nodes;

    for (uint32_t v = 0; v < n_values; v++) {
        if (vals[v].kind == GENIE_VAL_NODE && !produced[v]) {
            st = genie_set_error(GENIE_ERR_CORRUPT, "srg: value %u names producer node %u output "
                                 "%u, which does not list it", v, vals[v].producer,
                                 vals[v].producer_out);
            goto err_free_produced;
        }
    }
    if (r.left != 0) {
        st = genie_set_error(GENIE_ERR_CORRUPT, "srg: %zu unused bytes after the last node "
                             "(header total_len %zu)", r.left, len);
        goto err_free_produced;
    }
    free(produced);
    *srg_p = srg;
    return GENIE_OK;

err_free_produced:
    free(produced);
err_destroy:
    genie_srg_destroy(srg);
    return st;
}

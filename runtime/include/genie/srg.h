/*
 * The Semantically Rich Graph (SRG): the unit of work that crosses from the
 * frontend to executors.  A graph is a list of *values* (tensors) and a list of
 * *nodes* (operations from the closed set in ops.def) in topological order.
 *
 * Values are either produced by a node, or are sources:
 *   INPUT     host data supplied with the request (slot = `ref`),
 *   WEIGHT    a persistent weight registered once, named by its fingerprint,
 *   RESIDENT  an object already living on the executor (object id = `ref`),
 *             e.g. a session's KV cache or the result of an earlier request.
 * An edge is a (value -> consuming node) pair and carries the value's byte size.
 * Any value with `keep_id != 0` stays resident on the executor after the run
 * under that object id; values with `is_output` are returned to the caller.
 *
 * Every node carries its annotations: phase, modality, residency of its outputs,
 * the kind of model block it belongs to (attention, MLP, ...), module path, and
 * cost hints (FLOPs, bytes, arithmetic intensity) filled by
 * genie_srg_annotate_cost().  The binary encoding is specified in
 * docs/srg-format.md; decode validates everything against the buffer's end.
 *
 * Memory: a graph owns all its arrays and strings (one arena); pointers returned
 * by accessors stay valid until genie_srg_destroy().
 */
#ifndef GENIE_SRG_H
#define GENIE_SRG_H

#include <stddef.h>
#include <stdint.h>

#include "genie/ops.h"
#include "genie/status.h"
#include "genie/tensor.h"

#define GENIE_SRG_MAGIC         "GSRG"       /* first 4 bytes of an encoded graph */
#define GENIE_SRG_VERSION       2u           /* 2: node records carry `block` */
#define GENIE_SRG_OPS_REVISION  3u           /* bump when ops.def grows (ops.c table) */
#define GENIE_SRG_NONE          0xFFFFFFFFu  /* absent optional tensor input */
#define GENIE_SRG_MAX_NAME      4096u        /* longest module path / value name */

/* All enum numberings below are part of the binary format: append only. */
typedef enum genie_phase {
    GENIE_PHASE_UNKNOWN = 0,
    GENIE_PHASE_FORWARD,
    GENIE_PHASE_LLM_PREFILL,
    GENIE_PHASE_LLM_DECODE,
    GENIE_PHASE_VISION_ENCODING,
    GENIE_PHASE_VISION_DECODING,
    GENIE_PHASE_MULTIMODAL_FUSION,
    GENIE_PHASE_TRAINING,
    GENIE_PHASE_COUNT
} genie_phase_t;

typedef enum genie_residency {
    GENIE_RES_EPHEMERAL_ACTIVATION = 0,
    GENIE_RES_PERSISTENT_WEIGHT,
    GENIE_RES_STATEFUL_KV_CACHE,
    GENIE_RES_GRADIENT,
    GENIE_RES_COUNT
} genie_residency_t;

typedef enum genie_modality {
    GENIE_MOD_NONE = 0,
    GENIE_MOD_VISION,
    GENIE_MOD_TEXT,
    GENIE_MOD_AUDIO,
    GENIE_MOD_FUSION,
    GENIE_MOD_COUNT
} genie_modality_t;

/* The kind of model block a node belongs to, so that schedulers can tell
 * attention work from MLP work from convolutions. */
typedef enum genie_block {
    GENIE_BLOCK_NONE = 0,
    GENIE_BLOCK_ATTENTION,
    GENIE_BLOCK_MLP,
    GENIE_BLOCK_CONV,
    GENIE_BLOCK_NORM,
    GENIE_BLOCK_EMBEDDING,
    GENIE_BLOCK_HEAD,
    GENIE_BLOCK_COUNT
} genie_block_t;

typedef enum genie_value_kind {
    GENIE_VAL_NODE = 0,
    GENIE_VAL_INPUT,
    GENIE_VAL_WEIGHT,
    GENIE_VAL_RESIDENT,
    GENIE_VAL_KIND_COUNT
} genie_value_kind_t;

typedef enum genie_attr_tag {
    GENIE_ATTR_NONE = 0,
    GENIE_ATTR_INT,     /* i64                  */
    GENIE_ATTR_FLOAT,   /* f64                  */
    GENIE_ATTR_BOOL,    /* stored in `i` (0/1)  */
    GENIE_ATTR_INTS,    /* list of i64          */
    GENIE_ATTR_STR,     /* UTF-8, no NUL inside */
    GENIE_ATTR_DTYPE,   /* genie_dtype_t in `i` */
    GENIE_ATTR_TAG_COUNT
} genie_attr_tag_t;

typedef struct genie_srg_attr {
    genie_attr_tag_t tag;
    int64_t          i;      /* INT, BOOL, DTYPE */
    double           f;      /* FLOAT */
    const int64_t   *ints;   /* INTS: (n) */
    uint32_t         n;      /* INTS: element count; STR: byte length */
    const char      *s;      /* STR: NUL-terminated copy */
} genie_srg_attr_t;

typedef struct genie_srg_value {
    genie_value_kind_t kind;
    genie_dtype_t      dtype;
    int                ndim;
    int64_t            shape[GENIE_MAX_DIMS];  /* (ndim) */
    genie_residency_t  residency;
    uint32_t           producer;     /* node index for NODE values, else GENIE_SRG_NONE */
    uint32_t           producer_out; /* which output of the producer */
    uint64_t           ref;          /* INPUT: slot; WEIGHT: fingerprint; RESIDENT: object id */
    uint64_t           keep_id;      /* != 0: keep resident under this object id */
    uint8_t            is_output;    /* return to the caller */
    const char        *name;         /* optional ("" if none), e.g. weight name */
} genie_srg_value_t;

typedef struct genie_srg_node {
    uint32_t           op;           /* genie_op_t */
    genie_phase_t      phase;
    genie_modality_t   modality;
    genie_residency_t  residency;    /* of its outputs */
    genie_block_t      block;        /* model block it belongs to; NONE if unknown */
    const char        *module_path;  /* "" if unknown, e.g. "transformer.h.0.attn" */
    uint32_t           n_in;
    const uint32_t    *in;           /* (n_in) value ids or GENIE_SRG_NONE */
    uint32_t           n_out;
    const uint32_t    *out;          /* (n_out) value ids */
    uint32_t           n_attr;
    const genie_srg_attr_t *attrs;   /* (n_attr) */
    /* cost hints, filled by genie_srg_annotate_cost() */
    uint64_t           flops;
    uint64_t           bytes;        /* bytes read + written */
    double             intensity;    /* flops / bytes */
} genie_srg_node_t;

typedef struct genie_srg genie_srg_t;

/* ---- building ---------------------------------------------------------- */
genie_status_t genie_srg_create(genie_srg_t **srg_p);
void           genie_srg_destroy(genie_srg_t *srg);

/* Add a source value (kind != NODE).  `name` may be NULL. */
genie_status_t genie_srg_add_source(genie_srg_t *srg, genie_value_kind_t kind,
                                    genie_dtype_t dtype, int ndim, const int64_t *shape,
                                    genie_residency_t residency, uint64_t ref,
                                    const char *name, uint32_t *id_p);

/* Add a node; its outputs become new values with the given metadata
 * (out_dtypes/out_ndims/out_shapes: (n_out), out_shapes[i]: (out_ndims[i])).
 * The new output value ids are written to out_ids_p (n_out entries). */
genie_status_t genie_srg_add_node(genie_srg_t *srg, uint32_t op,
                                  const uint32_t *in, uint32_t n_in,
                                  const genie_srg_attr_t *attrs, uint32_t n_attr,
                                  uint32_t n_out, const genie_dtype_t *out_dtypes,
                                  const int *out_ndims, const int64_t *const *out_shapes,
                                  genie_phase_t phase, genie_modality_t modality,
                                  genie_residency_t residency, const char *module_path,
                                  uint32_t *out_ids_p);

/* Annotate node `node` with the model block it belongs to (nodes start as
 * GENIE_BLOCK_NONE).  A separate call rather than an argument of add_node so
 * that the builders that do not know blocks stay as they are.
 * GENIE_ERR_INVALID with a message for a bad node index or block value. */
genie_status_t genie_srg_set_node_block(genie_srg_t *srg, uint32_t node, genie_block_t block);

/* Mark a value: returned to the caller and/or kept resident under keep_id. */
genie_status_t genie_srg_mark_output(genie_srg_t *srg, uint32_t value, int is_output,
                                     uint64_t keep_id);

/* ---- reading ----------------------------------------------------------- */
uint32_t                 genie_srg_n_values(const genie_srg_t *srg);
uint32_t                 genie_srg_n_nodes(const genie_srg_t *srg);
const genie_srg_value_t *genie_srg_value(const genie_srg_t *srg, uint32_t id);
const genie_srg_node_t  *genie_srg_node(const genie_srg_t *srg, uint32_t idx);

/* Byte size of a value's tensor (numel * dtype size) = the size its edges carry. */
uint64_t genie_srg_value_nbytes(const genie_srg_value_t *v);

/* Typed access to node attributes; GENIE_ERR_INVALID (with a message naming the
 * op and attribute index) when the index is out of range or the tag differs.
 * `_opt` variants accept NONE and leave *v_p untouched, setting *present_p = 0. */
genie_status_t genie_srg_attr_int(const genie_srg_node_t *n, uint32_t idx, int64_t *v_p);
genie_status_t genie_srg_attr_float(const genie_srg_node_t *n, uint32_t idx, double *v_p);
genie_status_t genie_srg_attr_bool(const genie_srg_node_t *n, uint32_t idx, int *v_p);
/* Scalar argument given as INT, FLOAT or BOOL, read as double. */
genie_status_t genie_srg_attr_scalar(const genie_srg_node_t *n, uint32_t idx, double *v_p);
genie_status_t genie_srg_attr_ints(const genie_srg_node_t *n, uint32_t idx,
                                   const int64_t **v_p, uint32_t *n_p);
genie_status_t genie_srg_attr_str(const genie_srg_node_t *n, uint32_t idx, const char **v_p);
genie_status_t genie_srg_attr_dtype(const genie_srg_node_t *n, uint32_t idx, genie_dtype_t *v_p);
genie_status_t genie_srg_attr_int_opt(const genie_srg_node_t *n, uint32_t idx,
                                      int64_t *v_p, int *present_p);
genie_status_t genie_srg_attr_dtype_opt(const genie_srg_node_t *n, uint32_t idx,
                                        genie_dtype_t *v_p, int *present_p);
genie_status_t genie_srg_attr_ints_opt(const genie_srg_node_t *n, uint32_t idx,
                                       const int64_t **v_p, uint32_t *n_p, int *present_p);

/* ---- analysis ---------------------------------------------------------- */
/* Fill flops/bytes/intensity of every node from shapes. */
void genie_srg_annotate_cost(genie_srg_t *srg);

/* ---- binary encoding (docs/srg-format.md) ------------------------------ */
/* Encode into a malloc'd buffer; caller frees *buf_p. */
genie_status_t genie_srg_encode(const genie_srg_t *srg, uint8_t **buf_p, size_t *len_p);
/* Decode and fully validate (ids, topological order, enums, lengths, shapes). */
genie_status_t genie_srg_decode(const uint8_t *buf, size_t len, genie_srg_t **srg_p);

/* Human-readable JSON dump (malloc'd, NUL-terminated). */
genie_status_t genie_srg_to_json(const genie_srg_t *srg, char **json_p);

const char *genie_phase_name(genie_phase_t p);       /* "llm_prefill", ... */
const char *genie_residency_name(genie_residency_t r);
const char *genie_modality_name(genie_modality_t m);
const char *genie_block_name(genie_block_t b);       /* "attention", "mlp", ... */
int         genie_phase_from_name(const char *s);    /* -1 if unknown */
int         genie_block_from_name(const char *s);    /* -1 if unknown */

#endif

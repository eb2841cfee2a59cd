/*
 * Building and reading an SRG in memory: the arena every graph allocates from,
 * the builder the frontend calls once per captured op (so genie_srg_add_node
 * is O(1) amortised: a bump allocation per array plus, now and then, a doubling
 * of the pointer tables), the accessors and typed attribute getters kernels
 * use, and the name tables of the annotation enums.  The builder validates its
 * arguments with the same rules the decoder applies to bytes (srg_internal.h),
 * and changes nothing in the graph when it refuses a call.
 */
#include "srg_internal.h"

#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena --------------------------------------------------------------- */

#define ARENA_FIRST_BLOCK  4096u          /* small graphs (tests, decode of tiny requests) */
#define ARENA_MAX_BLOCK    (1u << 20)     /* past this, blocks stop doubling */
#define ARENA_ALIGN        alignof(max_align_t)

struct genie_srg_arena_block {
    genie_srg_arena_block_t *next;
    size_t                   size;   /* payload bytes */
    size_t                   used;
    max_align_t              data[]; /* (size) bytes */
};

/* What zero-length arrays point to: a real address, so that consumers may pass
 * it to memcpy/memcmp, but never written to (there are no elements). */
static max_align_t empty_array;

static void arena_free(genie_srg_arena_t *a)
{
    genie_srg_arena_block_t *b = a->head;

    while (b != NULL) {
        genie_srg_arena_block_t *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
}

void *genie_srg_alloc(genie_srg_t *srg, size_t n, size_t size)
{
    genie_srg_arena_t *a = &srg->arena;
    genie_srg_arena_block_t *b = a->head;
    size_t bytes, block;

    if (n == 0 || size == 0) {
        return &empty_array;
    }
    if (n > (SIZE_MAX - ARENA_ALIGN) / size) {
        return NULL;
    }
    bytes = (n * size + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
    if (b != NULL && b->size - b->used >= bytes) {
        void *p = (char *)b->data + b->used;
        b->used += bytes;
        return p;
    }
    /* A request bigger than the next shared block gets a block of its own,
     * linked behind the head so the head's free room is not abandoned. */
    block = bytes > a->next_size ? bytes : a->next_size;
    if (block > SIZE_MAX - sizeof(*b)) {
        return NULL;
    }
    b = malloc(sizeof(*b) + block);
    if (b == NULL) {
        return NULL;
    }
    b->size = block;
    b->used = bytes;
    if (bytes > a->next_size && a->head != NULL) {
        b->next       = a->head->next;
        a->head->next = b;
    } else {
        b->next = a->head;
        a->head = b;
        if (a->next_size < ARENA_MAX_BLOCK) {
            a->next_size *= 2;
        }
    }
    return b->data;
}

char *genie_srg_strdup(genie_srg_t *srg, const char *s, size_t len)
{
    char *p;

    if (len == 0) {
        return (char *)"";   /* never written through: values and nodes hold const char * */
    }
    p = genie_srg_alloc(srg, len + 1, 1);
    if (p != NULL) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

/* ---- graph --------------------------------------------------------------- */

genie_status_t genie_srg_create(genie_srg_t **srg_p)
{
    genie_srg_t *srg;

    if (srg_p == NULL) {
        return genie_set_error(GENIE_ERR_INVALID, "srg: create: NULL result pointer");
    }
    srg = calloc(1, sizeof(*srg));
    if (srg == NULL) {
        return genie_set_error(GENIE_ERR_NOMEM, "srg: out of memory creating a graph");
    }
    srg->arena.next_size = ARENA_FIRST_BLOCK;
    *srg_p = srg;
    return GENIE_OK;
}

void genie_srg_destroy(genie_srg_t *srg)
{
    if (srg == NULL) {
        return;
    }
    arena_free(&srg->arena);
    free(srg->values);
    free(srg->nodes);
    free(srg);
}

/* Grow one pointer table so that `count + more` entries fit. */
static genie_status_t grow_table(void ***table, uint32_t *cap, uint32_t count, uint32_t more,
                                 const char *what)
{
    uint64_t need = (uint64_t)count + more;
    uint64_t new_cap;
    void **t;

    if (need > GENIE_SRG_MAX_IDS) {
        return genie_set_error(GENIE_ERR_INVALID, "srg: more than %u %s (ids would reach NONE)",
                               GENIE_SRG_MAX_IDS - 1u, what);
    }
    if (need <= *cap) {
        return GENIE_OK;
    }
    new_cap = *cap ? (uint64_t)*cap * 2 : 64;
    if (new_cap < need) {
        new_cap = need;
    }
    if (new_cap > GENIE_SRG_MAX_IDS) {
        new_cap = GENIE_SRG_MAX_IDS;
    }
    if (new_cap > SIZE_MAX / sizeof(void *)) {
        return genie_set_error(GENIE_ERR_NOMEM, "srg: table of %llu %s does not fit in memory",
                               (unsigned long long)new_cap, what);
    }
    t = realloc(*table, (size_t)new_cap * sizeof(void *));
    if (t == NULL) {
        return genie_set_error(GENIE_ERR_NOMEM, "srg: out of memory growing the %s table to %llu",
                               what, (unsigned long long)new_cap);
    }
    *table = t;
    *cap   = (uint32_t)new_cap;
    return GENIE_OK;
}

genie_status_t genie_srg_reserve(genie_srg_t *srg, uint32_t more_values, uint32_t more_nodes)
{
    genie_status_t st;

    st = grow_table((void ***)&srg->values, &srg->cap_values, srg->n_values, more_values,
                    "values");
    if (st != GENIE_OK) {
        return st;
    }
    return grow_table((void ***)&srg->nodes, &srg->cap_nodes, srg->n_nodes, more_nodes, "nodes");
}

const char *genie_srg_shape_problem(genie_dtype_t dtype, int ndim, const int64_t *shape)
{
    /* One rule for every tensor that crosses a process boundary (tensor.h):
     * an empty tensor's other extents are bounded too, so that strides and
     * partial products computed from them cannot overflow. */
    return genie_shape_problem(dtype, ndim, shape, NULL);
}

/* Name check shared by value names and module paths. */
static genie_status_t check_name(const char *s, size_t *len_p, const char *what)
{
    size_t len = s == NULL ? 0 : strlen(s);

    if (len > GENIE_SRG_MAX_NAME) {
        return genie_set_error(GENIE_ERR_INVALID, "srg: %s is %zu bytes (max %u)", what, len,
                               GENIE_SRG_MAX_NAME);
    }
    *len_p = len;
    return GENIE_OK;
}

genie_status_t genie_srg_add_source(genie_srg_t *srg, genie_value_kind_t kind,
                                    genie_dtype_t dtype, int ndim, const int64_t *shape,
                                    genie_residency_t residency, uint64_t ref,
                                    const char *name, uint32_t *id_p)
{
    genie_srg_value_t *v;
    const char *why;
    size_t name_len = 0;
    genie_status_t st;

    if (srg == NULL) {
        return genie_set_error(GENIE_ERR_INVALID, "srg: add_source: NULL graph");
    }
    if (kind == GENIE_VAL_NODE || (unsigned)kind >= GENIE_VAL_KIND_COUNT) {
        return genie_set_error(GENIE_ERR_INVALID,
                               "srg: add_source: kind %d is not input, weight or resident",
                               (int)kind);
    }
    if ((unsigned)residency >= GENIE_RES_COUNT) {
        return genie_set_error(GENIE_ERR_INVALID, "srg: add_source: residency %d out of range",
                               (int)residency);
    }
    why = genie_srg_shape_problem(dtype, ndim, shape);
    if (why != NULL) {
        return genie_set_error(GENIE_ERR_INVALID, "srg: add_source: %s tensor %s",
                               genie_dtype_name(dtype), why);
    }
    st = check_name(name, &name_len, "value name");
    if (st != GENIE_OK) {
        return st;
    }
    st = genie_srg_reserve(srg, 1, 0);
    if (st != GENIE_OK) {
        return st;
    }
    v = genie_srg_alloc(srg, 1, sizeof(*v));
    if (v == NULL) {
        goto err_nomem;
    }
    memset(v, 0, sizeof(*v));
    v->name = genie_srg_strdup(srg, name, name_len);
    if (v->name == NULL) {
        goto err_nomem;
    }
    v->kind         = kind;
    v->dtype        = dtype;
    v->ndim         = ndim;
    if (ndim > 0) {
        memcpy(v->shape, shape, sizeof(int64_t) * (size_t)ndim);
    }
    v->residency    = residency;
    v->producer     = GENIE_SRG_NONE;
    v->producer_out = GENIE_SRG_NONE;
    v->ref          = ref;
    srg->values[srg->n_values] = v;
    if (id_p != NULL) {
        *id_p = srg->n_values;
    }
    srg->n_values++;
    return GENIE_OK;

err_nomem:
    return genie_set_error(GENIE_ERR_NOMEM, "srg: out of memory adding a source value");
}

/* Validate one attribute given to the builder (the decoder checks the same
 * rules on bytes in srg_codec.c). */
static genie_status_t check_attr(const genie_srg_attr_t *a, uint32_t op, uint32_t idx)
{
    size_t len;

    switch (a->tag) {
    case GENIE_ATTR_NONE:
    case GENIE_ATTR_INT:
    case GENIE_ATTR_FLOAT:
    case GENIE_ATTR_BOOL:
        return GENIE_OK;
    case GENIE_ATTR_INTS:
        if (a->n > 0 && a->ints == NULL) {
            return genie_set_error(GENIE_ERR_INVALID, "srg: add_node(%s): attr %u: %u ints at NULL",
                                   genie_op_name(op), idx, a->n);
        }
        return GENIE_OK;
    case GENIE_ATTR_STR:
        if (a->s == NULL) {
            return genie_set_error(GENIE_ERR_INVALID, "srg: add_node(%s): attr %u: NULL string",
                                   genie_op_name(op), idx);
        }
        len = strlen(a->s);
        if (a->n != 0 && a->n != len) {
            return genie_set_error(GENIE_ERR_INVALID,
                                   "srg: add_node(%s): attr %u: string length %u but strlen %zu "
                                   "(embedded NUL?)", genie_op_name(op), idx, a->n, len);
        }
        if (len > GENIE_SRG_MAX_NAME) {
            return genie_set_error(GENIE_ERR_INVALID, "srg: add_node(%s): attr %u: string of %zu "
                                   "bytes (max %u)", genie_op_name(op), idx, len,
                                   GENIE_SRG_MAX_NAME);
        }
        return GENIE_OK;
    case GENIE_ATTR_DTYPE:
        if (a->i < 0 || a->i >= GENIE_DTYPE_COUNT) {
            return genie_set_error(GENIE_ERR_INVALID, "srg: add_node(%s): attr %u: dtype %lld out "
                                   "of range", genie_op_name(op), idx, (long long)a->i);
        }
        return GENIE_OK;
    default:
        return genie_set_error(GENIE_ERR_INVALID, "srg: add_node(%s): attr %u: tag %d out of range",
                               genie_op_name(op), idx, (int)a->tag);
    }
}

/* Copy a checked attribute into the arena, zeroing the fields its tag does
 * not use so that built and decoded graphs compare equal field by field. */
static genie_status_t copy_attr(genie_srg_t *srg, const genie_srg_attr_t *a, genie_srg_attr_t *dst)
{
    int64_t *ints;

    memset(dst, 0, sizeof(*dst));
    dst->tag = a->tag;
    switch (a->tag) {
    case GENIE_ATTR_INT:
    case GENIE_ATTR_DTYPE:
        dst->i = a->i;
        break;
    case GENIE_ATTR_BOOL:
        dst->i = a->i != 0;
        break;
    case GENIE_ATTR_FLOAT:
        dst->f = a->f;
        break;
    case GENIE_ATTR_INTS:
        ints = genie_srg_alloc(srg, a->n, sizeof(int64_t));
        if (ints == NULL) {
            return GENIE_ERR_NOMEM;
        }
        if (a->n > 0) {
            memcpy(ints, a->ints, sizeof(int64_t) * a->n);
        }
        dst->ints = ints;
        dst->n    = a->n;
        break;
    case GENIE_ATTR_STR:
        dst->n = (uint32_t)strlen(a->s);
        dst->s = genie_srg_strdup(srg, a->s, dst->n);
        if (dst->s == NULL) {
            return GENIE_ERR_NOMEM;
        }
        break;
    default:
        break;
    }
    return GENIE_OK;
}

genie_status_t genie_srg_add_node(genie_srg_t *srg, uint32_t op,
                                  const uint32_t *in, uint32_t n_in,
                                  const genie_srg_attr_t *attrs, uint32_t n_attr,
                                  uint32_t n_out, const genie_dtype_t *out_dtypes,
                                  const int *out_ndims, const int64_t *const *out_shapes,
                                  genie_phase_t phase, genie_modality_t modality,
                                  genie_residency_t residency, const char *module_path,
                                  uint32_t *out_ids_p)
{
    genie_srg_node_t *node;
    genie_srg_value_t *vals;
    genie_srg_attr_t *ad;
    uint32_t *ins, *outs;
    size_t path_len = 0;
    genie_status_t st;

    /* -- check everything before touching the graph -- */
    if (srg == NULL) {
        return genie_set_error(GENIE_ERR_INVALID, "srg: add_node: NULL graph");
    }
    if (op >= GENIE_OP_COUNT) {
        return genie_set_error(GENIE_ERR_INVALID, "srg: add_node: op %u not in ops.def (%d ops)",
                               op, GENIE_OP_COUNT);
    }
    if ((unsigned)phase >= GENIE_PHASE_COUNT || (unsigned)modality >= GENIE_MOD_COUNT ||
        (unsigned)residency >= GENIE_RES_COUNT) {
        return genie_set_error(GENIE_ERR_INVALID, "srg: add_node(%s): phase %d, modality %d or "
                               "residency %d out of range", genie_op_name(op), (int)phase,
                               (int)modality, (int)residency);
    }
    if ((n_in > 0 && in == NULL) || (n_attr > 0 && attrs == NULL)) {
        return genie_set_error(GENIE_ERR_INVALID, "srg: add_node(%s): NULL input or attr list",
                               genie_op_name(op));
    }
    for (uint32_t i = 0; i < n_in; i++) {
        if (in[i] != GENIE_SRG_NONE && in[i] >= srg->n_values) {
            return genie_set_error(GENIE_ERR_INVALID, "srg: add_node(%s): input %u: value %u out "
                                   "of range (graph has %u values)", genie_op_name(op), i, in[i],
                                   srg->n_values);
        }
    }
    for (uint32_t i = 0; i < n_attr; i++) {
        st = check_attr(&attrs[i], op, i);
        if (st != GENIE_OK) {
            return st;
        }
    }
    if (n_out == 0) {
        return genie_set_error(GENIE_ERR_INVALID, "srg: add_node(%s): a node needs at least one "
                               "output", genie_op_name(op));
    }
    if (out_dtypes == NULL || out_ndims == NULL || out_shapes == NULL) {
        return genie_set_error(GENIE_ERR_INVALID, "srg: add_node(%s): NULL output metadata",
                               genie_op_name(op));
    }
    for (uint32_t o = 0; o < n_out; o++) {
        const char *why = genie_srg_shape_problem(out_dtypes[o], out_ndims[o], out_shapes[o]);
        if (why != NULL) {
            return genie_set_error(GENIE_ERR_INVALID, "srg: add_node(%s): output %u (%s) %s",
                                   genie_op_name(op), o, genie_dtype_name(out_dtypes[o]), why);
        }
    }
    st = check_name(module_path, &path_len, "module path");
    if (st != GENIE_OK) {
        return st;
    }
    st = genie_srg_reserve(srg, n_out, 1);
    if (st != GENIE_OK) {
        return st;
    }

    /* -- allocate; on failure the arena keeps the scraps, the graph is unchanged -- */
    node = genie_srg_alloc(srg, 1, sizeof(*node));
    vals = genie_srg_alloc(srg, n_out, sizeof(*vals));
    ins  = genie_srg_alloc(srg, n_in, sizeof(*ins));
    outs = genie_srg_alloc(srg, n_out, sizeof(*outs));
    ad   = genie_srg_alloc(srg, n_attr, sizeof(*ad));
    if (node == NULL || vals == NULL || ins == NULL || outs == NULL || ad == NULL) {
        goto err_nomem;
    }
    memset(node, 0, sizeof(*node));
    node->module_path = genie_srg_strdup(srg, module_path, path_len);
    if (node->module_path == NULL) {
        goto err_nomem;
    }
    for (uint32_t i = 0; i < n_attr; i++) {
        if (copy_attr(srg, &attrs[i], &ad[i]) != GENIE_OK) {
            goto err_nomem;
        }
    }
    if (n_in > 0) {
        memcpy(ins, in, sizeof(*ins) * n_in);
    }
    memset(vals, 0, sizeof(*vals) * n_out);
    for (uint32_t o = 0; o < n_out; o++) {
        genie_srg_value_t *v = &vals[o];
        v->kind         = GENIE_VAL_NODE;
        v->dtype        = out_dtypes[o];
        v->ndim         = out_ndims[o];
        if (v->ndim > 0) {
            memcpy(v->shape, out_shapes[o], sizeof(int64_t) * (size_t)v->ndim);
        }
        v->residency    = residency;
        v->producer     = srg->n_nodes;
        v->producer_out = o;
        v->name         = "";
        outs[o]         = srg->n_values + o;
    }
    node->op        = op;
    node->phase     = phase;
    node->modality  = modality;
    node->residency = residency;
    node->block     = GENIE_BLOCK_NONE;   /* genie_srg_set_node_block() sets it */
    node->n_in      = n_in;
    node->in        = ins;
    node->n_out     = n_out;
    node->out       = outs;
    node->n_attr    = n_attr;
    node->attrs     = ad;

    /* -- commit -- */
    for (uint32_t o = 0; o < n_out; o++) {
        srg->values[srg->n_values + o] = &vals[o];
    }
    srg->nodes[srg->n_nodes++] = node;
    srg->n_values += n_out;
    if (out_ids_p != NULL) {
        memcpy(out_ids_p, outs, sizeof(*outs) * n_out);
    }
    return GENIE_OK;

err_nomem:
    return genie_set_error(GENIE_ERR_NOMEM, "srg: out of memory adding a %s node",
                           genie_op_name(op));
}

/* Sets both marks: is_output (0/1) and keep_id (0 = not kept), so a second
 * call can also clear them. */
genie_status_t genie_srg_mark_output(genie_srg_t *srg, uint32_t value, int is_output,
                                     uint64_t keep_id)
{
    if (srg == NULL || value >= srg->n_values) {
        return genie_set_error(GENIE_ERR_INVALID, "srg: mark_output: value %u out of range "
                               "(%u values)", value, srg == NULL ? 0u : srg->n_values);
    }
    srg->values[value]->is_output = is_output != 0;
    srg->values[value]->keep_id   = keep_id;
    return GENIE_OK;
}

/* Set after add_node (which leaves it NONE), so a refusal here never leaves a
 * half-built node behind: the node is already complete and only this field
 * changes. */
genie_status_t genie_srg_set_node_block(genie_srg_t *srg, uint32_t node, genie_block_t block)
{
    if (srg == NULL || node >= srg->n_nodes) {
        return genie_set_error(GENIE_ERR_INVALID, "srg: set_node_block: node %u out of range "
                               "(%u nodes)", node, srg == NULL ? 0u : srg->n_nodes);
    }
    if ((unsigned)block >= GENIE_BLOCK_COUNT) {
        return genie_set_error(GENIE_ERR_INVALID, "srg: set_node_block: node %u (%s): block %d "
                               "out of range (< %d)", node, genie_op_name(srg->nodes[node]->op),
                               (int)block, GENIE_BLOCK_COUNT);
    }
    srg->nodes[node]->block = block;
    return GENIE_OK;
}

/* ---- reading ------------------------------------------------------------- */

uint32_t genie_srg_n_values(const genie_srg_t *srg)
{
    return srg == NULL ? 0 : srg->n_values;
}

uint32_t genie_srg_n_nodes(const genie_srg_t *srg)
{
    return srg == NULL ? 0 : srg->n_nodes;
}

const genie_srg_value_t *genie_srg_value(const genie_srg_t *srg, uint32_t id)
{
    return srg != NULL && id < srg->n_values ? srg->values[id] : NULL;
}

const genie_srg_node_t *genie_srg_node(const genie_srg_t *srg, uint32_t idx)
{
    return srg != NULL && idx < srg->n_nodes ? srg->nodes[idx] : NULL;
}

/* Values come from the builder or the decoder, which both bound numel * elsize
 * by 2^62, so the product below cannot overflow. */
uint64_t genie_srg_value_nbytes(const genie_srg_value_t *v)
{
    uint64_t n;

    if (v == NULL) {
        return 0;
    }
    n = genie_dtype_size(v->dtype);
    for (int d = 0; d < v->ndim && d < GENIE_MAX_DIMS; d++) {
        n *= (uint64_t)v->shape[d];
    }
    return n;
}

/* ---- typed attribute access ---------------------------------------------- */

/* Attribute idx of n if it has tag `want`; else NULL, with the reason recorded. */
static const genie_srg_attr_t *attr_get(const genie_srg_node_t *n, uint32_t idx,
                                        genie_attr_tag_t want)
{
    if (n == NULL) {
        genie_set_error(GENIE_ERR_INVALID, "srg: attribute %u of a NULL node", idx);
        return NULL;
    }
    if (idx >= n->n_attr) {
        genie_set_error(GENIE_ERR_INVALID, "srg: %s (module '%s') has %u attrs, attr %u asked for",
                        genie_op_name(n->op), n->module_path, n->n_attr, idx);
        return NULL;
    }
    if (n->attrs[idx].tag != want) {
        genie_set_error(GENIE_ERR_INVALID, "srg: %s (module '%s') attr %u is %s, expected %s",
                        genie_op_name(n->op), n->module_path, idx,
                        genie_srg_attr_tag_name(n->attrs[idx].tag), genie_srg_attr_tag_name(want));
        return NULL;
    }
    return &n->attrs[idx];
}

/* For the _opt getters: 1 if attr idx exists and is NONE. */
static int attr_is_none(const genie_srg_node_t *n, uint32_t idx)
{
    return n != NULL && idx < n->n_attr && n->attrs[idx].tag == GENIE_ATTR_NONE;
}

genie_status_t genie_srg_attr_int(const genie_srg_node_t *n, uint32_t idx, int64_t *v_p)
{
    const genie_srg_attr_t *a = attr_get(n, idx, GENIE_ATTR_INT);

    if (a == NULL) {
        return GENIE_ERR_INVALID;
    }
    *v_p = a->i;
    return GENIE_OK;
}

genie_status_t genie_srg_attr_float(const genie_srg_node_t *n, uint32_t idx, double *v_p)
{
    const genie_srg_attr_t *a = attr_get(n, idx, GENIE_ATTR_FLOAT);

    if (a == NULL) {
        return GENIE_ERR_INVALID;
    }
    *v_p = a->f;
    return GENIE_OK;
}

genie_status_t genie_srg_attr_bool(const genie_srg_node_t *n, uint32_t idx, int *v_p)
{
    const genie_srg_attr_t *a = attr_get(n, idx, GENIE_ATTR_BOOL);

    if (a == NULL) {
        return GENIE_ERR_INVALID;
    }
    *v_p = a->i != 0;
    return GENIE_OK;
}

genie_status_t genie_srg_attr_scalar(const genie_srg_node_t *n, uint32_t idx, double *v_p)
{
    const genie_srg_attr_t *a;

    if (n != NULL && idx < n->n_attr) {
        a = &n->attrs[idx];
        switch (a->tag) {
        case GENIE_ATTR_INT:
        case GENIE_ATTR_BOOL:
            *v_p = (double)a->i;
            return GENIE_OK;
        case GENIE_ATTR_FLOAT:
            *v_p = a->f;
            return GENIE_OK;
        default:
            return genie_set_error(GENIE_ERR_INVALID, "srg: %s (module '%s') attr %u is %s, "
                                   "expected a scalar (int, float or bool)", genie_op_name(n->op),
                                   n->module_path, idx, genie_srg_attr_tag_name(a->tag));
        }
    }
    attr_get(n, idx, GENIE_ATTR_FLOAT);   /* records the NULL / out-of-range error */
    return GENIE_ERR_INVALID;
}

genie_status_t genie_srg_attr_ints(const genie_srg_node_t *n, uint32_t idx, const int64_t **v_p, uint32_t *n_p)
{
    const genie_srg_attr_t *a = attr_get(n, idx, GENIE_ATTR_INTS);

    if (a == NULL) {
        return GENIE_ERR_INVALID;
    }
    *v_p = a->ints;
    *n_p = a->n;
    return GENIE_OK;
}

genie_status_t genie_srg_attr_str(const genie_srg_node_t *n, uint32_t idx, const char **v_p)
{
    const genie_srg_attr_t *a = attr_get(n, idx, GENIE_ATTR_STR);

    if (a == NULL) {
        return GENIE_ERR_INVALID;
    }
    *v_p = a->s;
    return GENIE_OK;
}

genie_status_t genie_srg_attr_dtype(const genie_srg_node_t *n, uint32_t idx, genie_dtype_t *v_p)
{
    const genie_srg_attr_t *a = attr_get(n, idx, GENIE_ATTR_DTYPE);

    if (a == NULL) {
        return GENIE_ERR_INVALID;
    }
    *v_p = (genie_dtype_t)a->i;
    return GENIE_OK;
}

genie_status_t genie_srg_attr_int_opt(const genie_srg_node_t *n, uint32_t idx,
                                      int64_t *v_p, int *present_p)
{
    genie_status_t st;

    if (attr_is_none(n, idx)) {
        *present_p = 0;
        return GENIE_OK;
    }
    st = genie_srg_attr_int(n, idx, v_p);
    if (st == GENIE_OK) {
        *present_p = 1;
    }
    return st;
}

genie_status_t genie_srg_attr_dtype_opt(const genie_srg_node_t *n, uint32_t idx,
                                        genie_dtype_t *v_p, int *present_p)
{
    genie_status_t st;

    if (attr_is_none(n, idx)) {
        *present_p = 0;
        return GENIE_OK;
    }
    st = genie_srg_attr_dtype(n, idx, v_p);
    if (st == GENIE_OK) {
        *present_p = 1;
    }
    return st;
}

genie_status_t genie_srg_attr_ints_opt(const genie_srg_node_t *n, uint32_t idx,
                                       const int64_t **v_p, uint32_t *n_p, int *present_p)
{
    genie_status_t st;

    if (attr_is_none(n, idx)) {
        *present_p = 0;
        return GENIE_OK;
    }
    st = genie_srg_attr_ints(n, idx, v_p, n_p);
    if (st == GENIE_OK) {
        *present_p = 1;
    }
    return st;
}

/* ---- names --------------------------------------------------------------- */

/* Spelled exactly as the frontend, the JSON dump and genie.conf write them. */
static const char *const phase_names[GENIE_PHASE_COUNT] = {
    [GENIE_PHASE_UNKNOWN]           = "unknown",
    [GENIE_PHASE_FORWARD]           = "forward",
    [GENIE_PHASE_LLM_PREFILL]       = "llm_prefill",
    [GENIE_PHASE_LLM_DECODE]        = "llm_decode",
    [GENIE_PHASE_VISION_ENCODING]   = "vision_encoding",
    [GENIE_PHASE_VISION_DECODING]   = "vision_decoding",
    [GENIE_PHASE_MULTIMODAL_FUSION] = "multimodal_fusion",
    [GENIE_PHASE_TRAINING]          = "training",
};

static const char *const residency_names[GENIE_RES_COUNT] = {
    [GENIE_RES_EPHEMERAL_ACTIVATION] = "ephemeral_activation",
    [GENIE_RES_PERSISTENT_WEIGHT]    = "persistent_weight",
    [GENIE_RES_STATEFUL_KV_CACHE]    = "stateful_kv_cache",
    [GENIE_RES_GRADIENT]             = "gradient",
};

static const char *const modality_names[GENIE_MOD_COUNT] = {
    [GENIE_MOD_NONE]   = "none",
    [GENIE_MOD_VISION] = "vision",
    [GENIE_MOD_TEXT]   = "text",
    [GENIE_MOD_AUDIO]  = "audio",
    [GENIE_MOD_FUSION] = "fusion",
};

static const char *const block_names[GENIE_BLOCK_COUNT] = {
    [GENIE_BLOCK_NONE]      = "none",
    [GENIE_BLOCK_ATTENTION] = "attention",
    [GENIE_BLOCK_MLP]       = "mlp",
    [GENIE_BLOCK_CONV]      = "conv",
    [GENIE_BLOCK_NORM]      = "norm",
    [GENIE_BLOCK_EMBEDDING] = "embedding",
    [GENIE_BLOCK_HEAD]      = "head",
};

static const char *const kind_names[GENIE_VAL_KIND_COUNT] = {
    [GENIE_VAL_NODE]     = "node",
    [GENIE_VAL_INPUT]    = "input",
    [GENIE_VAL_WEIGHT]   = "weight",
    [GENIE_VAL_RESIDENT] = "resident",
};

static const char *const attr_tag_names[GENIE_ATTR_TAG_COUNT] = {
    [GENIE_ATTR_NONE]  = "none",
    [GENIE_ATTR_INT]   = "int",
    [GENIE_ATTR_FLOAT] = "float",
    [GENIE_ATTR_BOOL]  = "bool",
    [GENIE_ATTR_INTS]  = "ints",
    [GENIE_ATTR_STR]   = "str",
    [GENIE_ATTR_DTYPE] = "dtype",
};

const char *genie_phase_name(genie_phase_t p)
{
    return (unsigned)p < GENIE_PHASE_COUNT ? phase_names[p] : "invalid";
}

const char *genie_residency_name(genie_residency_t r)
{
    return (unsigned)r < GENIE_RES_COUNT ? residency_names[r] : "invalid";
}

const char *genie_modality_name(genie_modality_t m)
{
    return (unsigned)m < GENIE_MOD_COUNT ? modality_names[m] : "invalid";
}

const char *genie_block_name(genie_block_t b)
{
    return (unsigned)b < GENIE_BLOCK_COUNT ? block_names[b] : "invalid";
}

const char *genie_srg_kind_name(genie_value_kind_t k)
{
    return (unsigned)k < GENIE_VAL_KIND_COUNT ? kind_names[k] : "invalid";
}

const char *genie_srg_attr_tag_name(genie_attr_tag_t t)
{
    return (unsigned)t < GENIE_ATTR_TAG_COUNT ? attr_tag_names[t] : "invalid";
}

int genie_phase_from_name(const char *s)
{
    if (s == NULL) {
        return -1;
    }
    for (int p = 0; p < GENIE_PHASE_COUNT; p++) {
        if (strcmp(phase_names[p], s) == 0) {
            return p;
        }
    }
    return -1;
}

int genie_block_from_name(const char *s)
{
    if (s == NULL) {
        return -1;
    }
    for (int b = 0; b < GENIE_BLOCK_COUNT; b++) {
        if (strcmp(block_names[b], s) == 0) {
            return b;
        }
    }
    return -1;
}

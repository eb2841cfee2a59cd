/*
 * Cost hints for the scheduler: per node, an estimate of floating-point work
 * (FLOPs), of memory traffic (bytes read + written) and their ratio, the
 * arithmetic intensity that tells compute-bound prefill from memory-bound
 * decode.  The estimates come from shapes alone and are deliberately coarse:
 *   matrix products  2*M*N*K (batch dims included: 2 * numel(out) * K)
 *   SDPA             4*B*H*Tq*Tk*D (2*..*Tk*D for Q.K^T, 2*..*Tk*Dv for P.V)
 *   layer_norm       ~8 per input element, softmax family ~5 per element,
 *   elementwise      1 per output element, reductions 1 per input element,
 *   data movement    0 (gathers, copies, cat, factories: bytes only),
 *   views            0 FLOPs and 0 bytes (they move nothing).
 * bytes counts whole tensors, so an embedding lookup is charged its full
 * table; that overstates gathers but keeps the rule simple and monotone.
 * Graphs may be hostile (decoded) and ops carry no arity checks here, so every
 * operand is looked up defensively and every product saturates at UINT64_MAX.
 */
#include "srg_internal.h"

/* ---- saturating arithmetic ------------------------------------------------- */

static uint64_t sat_mul(uint64_t a, uint64_t b)
{
    if (a != 0 && b > UINT64_MAX / a) {
        return UINT64_MAX;
    }
    return a * b;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* ---- operand helpers --------------------------------------------------------- */

/* Input k of node n as a value, or NULL if absent / out of range. */
static const genie_srg_value_t *input(const genie_srg_t *srg, const genie_srg_node_t *n,
                                      uint32_t k)
{
    return k < n->n_in ? genie_srg_value(srg, n->in[k]) : NULL;
}

static uint64_t numel(const genie_srg_value_t *v)
{
    uint64_t n = 1;

    if (v == NULL) {
        return 0;
    }
    for (int d = 0; d < v->ndim; d++) {
        n = sat_mul(n, (uint64_t)v->shape[d]);
    }
    return n;
}

/* Extent of dimension -back (1 = last) of v, or 0 if v has too few dims. */
static uint64_t dim_from_end(const genie_srg_value_t *v, int back)
{
    if (v == NULL || v->ndim < back) {
        return 0;
    }
    return (uint64_t)v->shape[v->ndim - back];
}

/* 2 * numel(out) * K, K being the contraction extent: last dim of `a`. */
static uint64_t matmul_flops(const genie_srg_value_t *a, const genie_srg_value_t *out)
{
    return sat_mul(2, sat_mul(numel(out), dim_from_end(a, 1)));
}

/* q: (..., Tq, D)  k: (..., Tk, D)  v: (..., Tk, Dv)
 * 2 * rows(q) * Tk * D  +  2 * rows(q) * Tk * Dv,  rows(q) = numel(q) / D. */
static uint64_t sdpa_flops(const genie_srg_value_t *q, const genie_srg_value_t *k,
                           const genie_srg_value_t *v)
{
    uint64_t d = dim_from_end(q, 1), tk = dim_from_end(k, 2), dv = dim_from_end(v, 1);
    uint64_t rows = 1;

    if (q == NULL || q->ndim < 2) {
        return 0;
    }
    for (int i = 0; i < q->ndim - 1; i++) {
        rows = sat_mul(rows, (uint64_t)q->shape[i]);
    }
    return sat_mul(sat_mul(2, sat_mul(rows, tk)), sat_add(d, dv));
}

static uint64_t node_flops(const genie_srg_t *srg, const genie_srg_node_t *n)
{
    const genie_srg_value_t *out0 = n->n_out > 0 ? genie_srg_value(srg, n->out[0]) : NULL;

    switch (n->op) {
    /* matrix products: self/input first for the addmm family */
    case GENIE_OP_MM:
    case GENIE_OP_BMM:
        return matmul_flops(input(srg, n, 0), out0);
    case GENIE_OP_ADDMM:
    case GENIE_OP_BADDBMM:
        return matmul_flops(input(srg, n, 1), out0);
    case GENIE_OP_SDPA:
        return sdpa_flops(input(srg, n, 0), input(srg, n, 1), input(srg, n, 2));
    case GENIE_OP_LAYER_NORM:
        return sat_mul(8, numel(input(srg, n, 0)));
    case GENIE_OP_SOFTMAX:
    case GENIE_OP_SAFE_SOFTMAX:
    case GENIE_OP_LOG_SOFTMAX:
        return sat_mul(5, numel(out0));
    /* reductions: one operation per element read */
    case GENIE_OP_ARGMAX:
    case GENIE_OP_MAX_DIM:
    case GENIE_OP_SUM_DIM:
    case GENIE_OP_MEAN_DIM:
    case GENIE_OP_SUM:
    case GENIE_OP_MEAN:
    case GENIE_OP_ALL:
    case GENIE_OP_ANY:
    case GENIE_OP_CUMSUM:
    case GENIE_OP_TOPK:
        return numel(input(srg, n, 0));
    /* data movement: bytes but no arithmetic */
    case GENIE_OP_CLONE:
    case GENIE_OP_TO_COPY:
    case GENIE_OP_COPY:
    case GENIE_OP_EMBEDDING:
    case GENIE_OP_GATHER:
    case GENIE_OP_INDEX_SELECT:
    case GENIE_OP_INDEX:
    case GENIE_OP_CAT:
    case GENIE_OP_FILL:
    case GENIE_OP_ARANGE:
    case GENIE_OP_FULL:
        return 0;
    /* everything else in ops.def is elementwise (arithmetic, comparisons,
     * where/masked_fill, tril/triu) */
    default:
        return numel(out0);
    }
}

void genie_srg_annotate_cost(genie_srg_t *srg)
{
    if (srg == NULL) {
        return;
    }
    for (uint32_t i = 0; i < srg->n_nodes; i++) {
        genie_srg_node_t *n = srg->nodes[i];
        uint64_t bytes = 0;

        if (genie_op_flags(n->op) & GENIE_OPF_VIEW) {
            n->flops     = 0;
            n->bytes     = 0;
            n->intensity = 0.0;
            continue;
        }
        for (uint32_t k = 0; k < n->n_in; k++) {
            bytes = sat_add(bytes, genie_srg_value_nbytes(genie_srg_value(srg, n->in[k])));
        }
        for (uint32_t k = 0; k < n->n_out; k++) {
            bytes = sat_add(bytes, genie_srg_value_nbytes(genie_srg_value(srg, n->out[k])));
        }
        n->flops     = node_flops(srg, n);
        n->bytes     = bytes;
        n->intensity = bytes != 0 ? (double)n->flops / (double)bytes : 0.0;
    }
}

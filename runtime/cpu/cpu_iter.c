/*
 * The broadcasting iterator behind every elementwise kernel and strided copy.
 *
 * An iterator describes the output and its inputs as one multi-dimensional
 * loop: each input is broadcast to the output's shape (stride 0 along expanded
 * dims), size-1 dims are dropped, and neighbouring dims that are contiguous for
 * every operand are merged.  The loop is then cut into rows of at most
 * CPU_CHUNK elements along the innermost dim; rows are independent, so they are
 * spread over OpenMP threads when the op is large enough to pay for it.  A
 * row callback sees plain pointers and inner strides, which lets kernels pick
 * a vectorised path when every stride is 1 (or 0 for a broadcast scalar).
 */
#include "cpu_internal.h"

#include <string.h>

genie_status_t genie_cpu_broadcast_strides(const genie_op_call_t *c, const genie_tensor_t *t,
                                           int ndim, const int64_t *shape,
                                           int64_t *strides_p)
{
    int64_t st[GENIE_MAX_DIMS];
    int lead = ndim - t->ndim;
    char s1[160], s2[160];

    if (lead < 0) {
        goto err_shape;
    }
    for (int d = 0; d < ndim; d++) {
        int td = d - lead;
        if (td < 0) {
            st[d] = 0;
        } else if (t->shape[td] == shape[d]) {
            st[d] = shape[d] == 1 ? 0 : t->strides[td];
        } else if (t->shape[td] == 1) {
            st[d] = 0;
        } else {
            goto err_shape;
        }
    }
    memcpy(strides_p, st, sizeof(int64_t) * (size_t)ndim);
    return GENIE_OK;

err_shape:
    return genie_set_error(GENIE_ERR_SHAPE, "%s: shape %s does not broadcast to %s",
                           genie_cpu_opname(c),
                           genie_cpu_shape_str(t->ndim, t->shape, s1, sizeof(s1)),
                           genie_cpu_shape_str(ndim, shape, s2, sizeof(s2)));
}

genie_status_t genie_cpu_iter_init(const genie_op_call_t *c, genie_tensor_t *out,
                                   const genie_tensor_t *const *in, int n_in,
                                   cpu_iter_t *it_p)
{
    cpu_iter_t it;
    int64_t full[CPU_ITER_MAX_OPS][GENIE_MAX_DIMS];
    int nd = 0;
    genie_status_t st;

    if (n_in + 1 > CPU_ITER_MAX_OPS) {
        return genie_set_error(GENIE_ERR_INVALID, "%s: too many iterator operands",
                               genie_cpu_opname(c));
    }
    memset(&it, 0, sizeof(it));
    it.n_ops = n_in + 1;
    it.numel = genie_tensor_numel(out);
    it.base[0] = genie_tensor_data(out);
    it.dtype[0] = out->dtype;
    memcpy(full[0], out->strides, sizeof(int64_t) * (size_t)out->ndim);
    for (int k = 0; k < n_in; k++) {
        st = genie_cpu_broadcast_strides(c, in[k], out->ndim, out->shape, full[k + 1]);
        if (st != GENIE_OK) {
            return st;
        }
        it.base[k + 1] = genie_tensor_data(in[k]);
        it.dtype[k + 1] = in[k]->dtype;
    }
    for (int k = 0; k < it.n_ops; k++) {
        it.elsize[k] = genie_dtype_size(it.dtype[k]);
    }

    /* Drop size-1 dims, then merge dim d into the (already kept) inner one
     * when every operand steps through them as one contiguous run. */
    for (int d = out->ndim - 1; d >= 0; d--) {
        int mergeable = nd > 0;
        if (out->shape[d] == 1) {
            continue;
        }
        for (int k = 0; mergeable && k < it.n_ops; k++) {
            int in_d = nd - 1;       /* position of the current outermost kept dim */
            mergeable = full[k][d] == it.strides[k][in_d] * it.shape[in_d];
        }
        if (mergeable) {
            it.shape[nd - 1] *= out->shape[d];
            continue;
        }
        it.shape[nd] = out->shape[d];
        for (int k = 0; k < it.n_ops; k++) {
            it.strides[k][nd] = full[k][d];
        }
        nd++;
    }
    if (nd == 0) {
        it.shape[0] = 1;
        for (int k = 0; k < it.n_ops; k++) {
            it.strides[k][0] = 1;
        }
        nd = 1;
    }
    /* Kept dims were collected innermost first: reverse to row-major order. */
    for (int i = 0, j = nd - 1; i < j; i++, j--) {
        int64_t t = it.shape[i];
        it.shape[i] = it.shape[j];
        it.shape[j] = t;
        for (int k = 0; k < it.n_ops; k++) {
            t = it.strides[k][i];
            it.strides[k][i] = it.strides[k][j];
            it.strides[k][j] = t;
        }
    }
    it.ndim = nd;
    *it_p = it;
    return GENIE_OK;
}

/* Run one unit: outer row `row`, chunk `ch` of the inner dim. */
static void run_unit(const cpu_iter_t *it, int64_t row, int64_t ch, cpu_row_fn fn, void *ctx)
{
    char *ptrs[CPU_ITER_MAX_OPS];
    int64_t inner_st[CPU_ITER_MAX_OPS];
    int64_t inner = it->shape[it->ndim - 1];
    int64_t start = ch * CPU_CHUNK;
    int64_t n = inner - start < CPU_CHUNK ? inner - start : CPU_CHUNK;
    int64_t off[CPU_ITER_MAX_OPS] = { 0 };
    int64_t r = row;

    for (int d = it->ndim - 2; d >= 0; d--) {
        int64_t idx = r % it->shape[d];
        r /= it->shape[d];
        for (int k = 0; k < it->n_ops; k++) {
            off[k] += idx * it->strides[k][d];
        }
    }
    for (int k = 0; k < it->n_ops; k++) {
        inner_st[k] = it->strides[k][it->ndim - 1];
        off[k] += start * inner_st[k];
        ptrs[k] = it->base[k] + off[k] * (int64_t)it->elsize[k];
    }
    fn(ctx, n, ptrs, inner_st);
}

void genie_cpu_iter_run(const cpu_iter_t *it, int n_threads, cpu_row_fn fn, void *ctx)
{
    int64_t inner, chunks, units;

    if (it->numel == 0) {
        return;
    }
    inner = it->shape[it->ndim - 1];
    chunks = (inner + CPU_CHUNK - 1) / CPU_CHUNK;
    units = (it->numel / inner) * chunks;
#ifdef _OPENMP
    if (n_threads > 1 && it->numel >= CPU_PAR_GRAIN && units > 1) {
#pragma omp parallel for num_threads(n_threads) schedule(static)
        for (int64_t u = 0; u < units; u++) {
            run_unit(it, u / chunks, u % chunks, fn, ctx);
        }
        return;
    }
#else
    (void)n_threads;
#endif
    for (int64_t u = 0; u < units; u++) {
        run_unit(it, u / chunks, u % chunks, fn, ctx);
    }
}

/*
 * View ops: outputs share the first input's storage; only shape, strides and
 * offset change.  Strides are always derived from the input's own strides, as
 * ATen does, so views of views (BERT's t(weight), a slice of a transposed KV
 * cache) stay free.  The executor hands each output with dtype/ndim/shape
 * filled from the SRG; we recompute the shape from the attributes and refuse a
 * disagreement rather than trust either silently.
 *
 * view/_unsafe_view of a layout that cannot be reshaped without copying (e.g.
 * a transposed matrix flattened) gets reshape semantics: a contiguous copy is
 * viewed instead; values are identical, only aliasing is lost, which no op in
 * the closed set can observe (there are no in-place ops).
 */
#include "cpu_internal.h"

#include <string.h>

/* Make out[k] a view of src with the given geometry, after checking it agrees
 * with what the node declared. */
static genie_status_t view_finish(const genie_op_call_t *c, uint32_t k,
                                  const genie_tensor_t *src, int ndim, const int64_t *shape,
                                  const int64_t *strides, int64_t offset)
{
    genie_tensor_t *o = &c->out[k];
    genie_tensor_t v;
    char s1[160], s2[160];
    int same = o->ndim == ndim;

    for (int d = 0; same && d < ndim; d++) {
        same = o->shape[d] == shape[d];
    }
    if (!same) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: computed shape %s but node declares %s",
                               genie_cpu_opname(c),
                               genie_cpu_shape_str(ndim, shape, s1, sizeof(s1)),
                               genie_cpu_shape_str(o->ndim, o->shape, s2, sizeof(s2)));
    }
    if (o->dtype != src->dtype) {
        return genie_set_error(GENIE_ERR_DTYPE, "%s: input is %s but node declares %s",
                               genie_cpu_opname(c), genie_dtype_name(src->dtype),
                               genie_dtype_name(o->dtype));
    }
    genie_tensor_share(src, &v);
    v.ndim = ndim;
    memcpy(v.shape, shape, sizeof(int64_t) * (size_t)ndim);
    memcpy(v.strides, strides, sizeof(int64_t) * (size_t)ndim);
    v.offset = offset;
    genie_tensor_release(o);
    *o = v;
    return GENIE_OK;
}

/* ATen's computeStride: strides that let `oshape/ostride` be seen as `nshape`
 * without copying, or 0 if the layout does not allow it. */
static int compute_view_strides(int ondim, const int64_t *oshape, const int64_t *ostride,
                                int nndim, const int64_t *nshape, int64_t *nstride_p)
{
    int64_t numel = 1;
    int64_t chunk_base_stride, tensor_numel = 1, view_numel = 1;
    int view_d = nndim - 1;

    if (ondim == 0) {
        for (int d = 0; d < nndim; d++) {
            nstride_p[d] = 1;
        }
        return 1;
    }
    for (int d = 0; d < ondim; d++) {
        numel *= oshape[d];
    }
    if (numel == 0) {
        for (int d = nndim - 1; d >= 0; d--) {
            nstride_p[d] = d == nndim - 1 ? 1 : (nshape[d + 1] > 1 ? nshape[d + 1] : 1) * nstride_p[d + 1];
        }
        return 1;
    }
    chunk_base_stride = ostride[ondim - 1];
    for (int td = ondim - 1; td >= 0; td--) {
        tensor_numel *= oshape[td];
        if (td == 0 ||
            (oshape[td - 1] != 1 && ostride[td - 1] != tensor_numel * chunk_base_stride)) {
            while (view_d >= 0 && (view_numel < tensor_numel || nshape[view_d] == 1)) {
                nstride_p[view_d] = view_numel * chunk_base_stride;
                view_numel *= nshape[view_d];
                view_d--;
            }
            if (view_numel != tensor_numel) {
                return 0;
            }
            if (td > 0) {
                chunk_base_stride = ostride[td - 1];
                tensor_numel = 1;
                view_numel = 1;
            }
        }
    }
    return view_d == -1;
}

/* view(self, size[]) and _unsafe_view(self, size[]); one size may be -1. */
genie_status_t genie_cpu_op_view(const genie_op_call_t *c)
{
    const genie_tensor_t *x = c->in[0];
    const int64_t *size;
    uint32_t n;
    int64_t shape[GENIE_MAX_DIMS], strides[GENIE_MAX_DIMS], known = 1, bound = 1, numel;
    int infer = -1;
    genie_tensor_t tmp;
    genie_status_t st;

    st = genie_cpu_check_call(c, 1, 1, 1);
    if (st == GENIE_OK) {
        st = genie_srg_attr_ints(c->node, 0, &size, &n);
    }
    if (st != GENIE_OK) {
        return st;
    }
    if (n > GENIE_MAX_DIMS) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: %u dims exceed the limit of %d",
                               genie_cpu_opname(c), n, GENIE_MAX_DIMS);
    }
    numel = genie_tensor_numel(x);
    for (uint32_t d = 0; d < n; d++) {
        if (size[d] == -1 && infer < 0) {
            infer = (int)d;
        } else if (size[d] < 0) {
            return genie_set_error(GENIE_ERR_SHAPE, "%s: invalid extent %lld",
                                   genie_cpu_opname(c), (long long)size[d]);
        } else {
            /* The extents come from the graph: their product, a zero
             * counted as 1 (the strides of an empty view are built from
             * the other extents), must not overflow. */
            int64_t e = size[d] != 0 ? size[d] : 1;
            if (bound > INT64_MAX / e) {
                return genie_set_error(GENIE_ERR_SHAPE,
                                       "%s: shape's extents multiply past 2^63, input has %lld elements",
                                       genie_cpu_opname(c), (long long)numel);
            }
            bound *= e;
            known *= size[d];
        }
        shape[d] = size[d];
    }
    if (infer >= 0) {
        if (known == 0 || numel % known != 0) {
            return genie_set_error(GENIE_ERR_SHAPE, "%s: cannot infer -1 for %lld elements",
                                   genie_cpu_opname(c), (long long)numel);
        }
        shape[infer] = numel / known;
        known = numel;
    }
    if (known != numel) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: shape has %lld elements, input %lld",
                               genie_cpu_opname(c), (long long)known, (long long)numel);
    }
    if (compute_view_strides(x->ndim, x->shape, x->strides, (int)n, shape, strides)) {
        return view_finish(c, 0, x, (int)n, shape, strides, x->offset);
    }
    /* Not viewable: reshape semantics through a contiguous copy. */
    st = genie_cpu_contiguous(c, x, genie_cpu_threads(c), &tmp);
    if (st != GENIE_OK) {
        return st;
    }
    compute_view_strides(tmp.ndim, tmp.shape, tmp.strides, (int)n, shape, strides);
    st = view_finish(c, 0, &tmp, (int)n, shape, strides, tmp.offset);
    genie_tensor_release(&tmp);
    return st;
}

/* alias(self), detach(self): the same geometry. */
genie_status_t genie_cpu_op_alias(const genie_op_call_t *c)
{
    genie_status_t st = genie_cpu_check_call(c, 1, 1, 1);
    const genie_tensor_t *x = c->in[0];

    if (st != GENIE_OK) {
        return st;
    }
    return view_finish(c, 0, x, x->ndim, x->shape, x->strides, x->offset);
}

/* expand(self, size[], *, implicit): new leading dims and size-1 dims get
 * stride 0; -1 keeps the extent. */
genie_status_t genie_cpu_op_expand(const genie_op_call_t *c)
{
    const genie_tensor_t *x = c->in[0];
    const int64_t *size;
    uint32_t n;
    int64_t shape[GENIE_MAX_DIMS], strides[GENIE_MAX_DIMS];
    int lead;
    genie_status_t st;

    st = genie_cpu_check_call(c, 1, 1, 1);
    if (st == GENIE_OK) {
        st = genie_srg_attr_ints(c->node, 0, &size, &n);
    }
    if (st != GENIE_OK) {
        return st;
    }
    if (n > GENIE_MAX_DIMS || (int)n < x->ndim) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: %u sizes for a %d-d tensor",
                               genie_cpu_opname(c), n, x->ndim);
    }
    lead = (int)n - x->ndim;
    for (int d = 0; d < (int)n; d++) {
        int td = d - lead;
        if (td < 0) {
            if (size[d] < 0) {
                return genie_set_error(GENIE_ERR_SHAPE, "%s: -1 not allowed in new dim %d",
                                       genie_cpu_opname(c), d);
            }
            shape[d] = size[d];
            strides[d] = 0;
        } else if (size[d] == -1 || size[d] == x->shape[td]) {
            shape[d] = x->shape[td];
            strides[d] = x->strides[td];
        } else if (x->shape[td] == 1 && size[d] >= 0) {
            shape[d] = size[d];
            strides[d] = 0;
        } else {
            return genie_set_error(GENIE_ERR_SHAPE, "%s: cannot expand extent %lld to %lld "
                                   "in dim %d", genie_cpu_opname(c), (long long)x->shape[td],
                                   (long long)size[d], d);
        }
    }
    return view_finish(c, 0, x, (int)n, shape, strides, x->offset);
}

static genie_status_t swap_dims(const genie_op_call_t *c, int d0, int d1)
{
    const genie_tensor_t *x = c->in[0];
    int64_t shape[GENIE_MAX_DIMS], strides[GENIE_MAX_DIMS], t;

    memcpy(shape, x->shape, sizeof(shape));
    memcpy(strides, x->strides, sizeof(strides));
    if (x->ndim > 0) {
        t = shape[d0]; shape[d0] = shape[d1]; shape[d1] = t;
        t = strides[d0]; strides[d0] = strides[d1]; strides[d1] = t;
    }
    return view_finish(c, 0, x, x->ndim, shape, strides, x->offset);
}

/* transpose.int(self, dim0, dim1) */
genie_status_t genie_cpu_op_transpose(const genie_op_call_t *c)
{
    int64_t a0, a1;
    int d0, d1;
    genie_status_t st;

    st = genie_cpu_check_call(c, 1, 1, 1);
    if (st == GENIE_OK) {
        st = genie_srg_attr_int(c->node, 0, &a0);
    }
    if (st == GENIE_OK) {
        st = genie_srg_attr_int(c->node, 1, &a1);
    }
    if (st == GENIE_OK) {
        st = genie_cpu_wrap_dim(c, a0, c->in[0]->ndim, &d0);
    }
    if (st == GENIE_OK) {
        st = genie_cpu_wrap_dim(c, a1, c->in[0]->ndim, &d1);
    }
    if (st != GENIE_OK) {
        return st;
    }
    return swap_dims(c, d0, d1);
}

/* t(self): self is at most 2-d. */
genie_status_t genie_cpu_op_t(const genie_op_call_t *c)
{
    genie_status_t st = genie_cpu_check_call(c, 1, 1, 1);

    if (st != GENIE_OK) {
        return st;
    }
    if (c->in[0]->ndim > 2) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: expects a tensor of at most 2 dims, "
                               "got %d", genie_cpu_opname(c), c->in[0]->ndim);
    }
    return swap_dims(c, 0, c->in[0]->ndim == 2 ? 1 : 0);
}

/* permute(self, dims[]) */
genie_status_t genie_cpu_op_permute(const genie_op_call_t *c)
{
    const genie_tensor_t *x = c->in[0];
    const int64_t *dims;
    uint32_t n;
    int64_t shape[GENIE_MAX_DIMS], strides[GENIE_MAX_DIMS];
    int seen[GENIE_MAX_DIMS] = { 0 };
    genie_status_t st;

    st = genie_cpu_check_call(c, 1, 1, 1);
    if (st == GENIE_OK) {
        st = genie_srg_attr_ints(c->node, 0, &dims, &n);
    }
    if (st != GENIE_OK) {
        return st;
    }
    if ((int)n != x->ndim) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: %u dims for a %d-d tensor",
                               genie_cpu_opname(c), n, x->ndim);
    }
    for (int d = 0; d < (int)n; d++) {
        int src;
        st = genie_cpu_wrap_dim(c, dims[d], x->ndim, &src);
        if (st != GENIE_OK) {
            return st;
        }
        if (seen[src]++) {
            return genie_set_error(GENIE_ERR_INVALID, "%s: dim %d repeated",
                                   genie_cpu_opname(c), src);
        }
        shape[d] = x->shape[src];
        strides[d] = x->strides[src];
    }
    return view_finish(c, 0, x, x->ndim, shape, strides, x->offset);
}

/* unsqueeze(self, dim): dim wraps against ndim + 1. */
genie_status_t genie_cpu_op_unsqueeze(const genie_op_call_t *c)
{
    const genie_tensor_t *x;
    int64_t dim, shape[GENIE_MAX_DIMS], strides[GENIE_MAX_DIMS];
    int d;
    genie_status_t st;

    st = genie_cpu_check_call(c, 1, 1, 1);
    if (st == GENIE_OK) {
        st = genie_srg_attr_int(c->node, 0, &dim);
    }
    if (st != GENIE_OK) {
        return st;
    }
    x = c->in[0];
    if (x->ndim >= GENIE_MAX_DIMS) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: rank limit %d reached",
                               genie_cpu_opname(c), GENIE_MAX_DIMS);
    }
    st = genie_cpu_wrap_dim(c, dim, x->ndim + 1, &d);
    if (st != GENIE_OK) {
        return st;
    }
    for (int i = 0, j = 0; i <= x->ndim; i++) {
        if (i == d) {
            shape[i] = 1;
            strides[i] = d >= x->ndim ? 1 : x->shape[d] * x->strides[d];
        } else {
            shape[i] = x->shape[j];
            strides[i] = x->strides[j];
            j++;
        }
    }
    return view_finish(c, 0, x, x->ndim + 1, shape, strides, x->offset);
}

/* squeeze.dim(self, dim): drops dim only if its extent is 1. */
genie_status_t genie_cpu_op_squeeze_dim(const genie_op_call_t *c)
{
    const genie_tensor_t *x;
    int64_t dim, shape[GENIE_MAX_DIMS], strides[GENIE_MAX_DIMS];
    int d, nd = 0;
    genie_status_t st;

    st = genie_cpu_check_call(c, 1, 1, 1);
    if (st == GENIE_OK) {
        st = genie_srg_attr_int(c->node, 0, &dim);
    }
    if (st == GENIE_OK) {
        st = genie_cpu_wrap_dim(c, dim, c->in[0]->ndim, &d);
    }
    if (st != GENIE_OK) {
        return st;
    }
    x = c->in[0];
    for (int i = 0; i < x->ndim; i++) {
        if (i == d && x->shape[i] == 1) {
            continue;
        }
        shape[nd] = x->shape[i];
        strides[nd] = x->strides[i];
        nd++;
    }
    return view_finish(c, 0, x, nd, shape, strides, x->offset);
}

/* select.int(self, dim, index) */
genie_status_t genie_cpu_op_select(const genie_op_call_t *c)
{
    const genie_tensor_t *x;
    int64_t dim, index, shape[GENIE_MAX_DIMS], strides[GENIE_MAX_DIMS];
    int d, nd = 0;
    genie_status_t st;

    st = genie_cpu_check_call(c, 1, 1, 1);
    if (st == GENIE_OK) {
        st = genie_srg_attr_int(c->node, 0, &dim);
    }
    if (st == GENIE_OK) {
        st = genie_srg_attr_int(c->node, 1, &index);
    }
    if (st != GENIE_OK) {
        return st;
    }
    x = c->in[0];
    if (x->ndim == 0) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: cannot select from a 0-d tensor",
                               genie_cpu_opname(c));
    }
    st = genie_cpu_wrap_dim(c, dim, x->ndim, &d);
    if (st != GENIE_OK) {
        return st;
    }
    if (index < -x->shape[d] || index >= x->shape[d]) {
        return genie_set_error(GENIE_ERR_INVALID, "%s: index %lld out of range for extent "
                               "%lld in dim %d", genie_cpu_opname(c), (long long)index,
                               (long long)x->shape[d], d);
    }
    if (index < 0) {
        index += x->shape[d];
    }
    for (int i = 0; i < x->ndim; i++) {
        if (i != d) {
            shape[nd] = x->shape[i];
            strides[nd] = x->strides[i];
            nd++;
        }
    }
    return view_finish(c, 0, x, nd, shape, strides, x->offset + index * x->strides[d]);
}

/* slice.Tensor(self, dim, start?, end?, step): ATen clamping rules. */
genie_status_t genie_cpu_op_slice(const genie_op_call_t *c)
{
    const genie_tensor_t *x;
    int64_t dim, start = 0, end = INT64_MAX, step, size, shape[GENIE_MAX_DIMS];
    int64_t strides[GENIE_MAX_DIMS];
    int d, has;
    genie_status_t st;

    st = genie_cpu_check_call(c, 1, 1, 1);
    if (st == GENIE_OK) {
        st = genie_srg_attr_int(c->node, 0, &dim);
    }
    if (st == GENIE_OK) {
        st = genie_srg_attr_int_opt(c->node, 1, &start, &has);
    }
    if (st == GENIE_OK) {
        st = genie_srg_attr_int_opt(c->node, 2, &end, &has);
    }
    if (st == GENIE_OK) {
        st = genie_srg_attr_int(c->node, 3, &step);
    }
    if (st != GENIE_OK) {
        return st;
    }
    x = c->in[0];
    if (x->ndim == 0) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: cannot slice a 0-d tensor",
                               genie_cpu_opname(c));
    }
    st = genie_cpu_wrap_dim(c, dim, x->ndim, &d);
    if (st != GENIE_OK) {
        return st;
    }
    if (step <= 0) {
        return genie_set_error(GENIE_ERR_INVALID, "%s: step must be positive, got %lld",
                               genie_cpu_opname(c), (long long)step);
    }
    size = x->shape[d];
    if (start < 0) {
        start = start < -size ? 0 : start + size;
    }
    if (end < 0) {
        end = end < -size ? 0 : end + size;
    }
    start = start > size ? size : start;
    end = end < start ? start : (end > size ? size : end);
    memcpy(shape, x->shape, sizeof(shape));
    memcpy(strides, x->strides, sizeof(strides));
    shape[d] = (end - start + step - 1) / step;
    strides[d] = x->strides[d] * step;
    return view_finish(c, 0, x, x->ndim, shape, strides, x->offset + start * x->strides[d]);
}

/* split.Tensor(self, split_size, dim): one output per chunk, the last one
 * possibly shorter. */
genie_status_t genie_cpu_op_split(const genie_op_call_t *c)
{
    const genie_tensor_t *x;
    int64_t split, dim, size, n_chunks, shape[GENIE_MAX_DIMS];
    int d;
    genie_status_t st;

    st = genie_cpu_check_call(c, 1, 1, UINT32_MAX);
    if (st == GENIE_OK) {
        st = genie_srg_attr_int(c->node, 0, &split);
    }
    if (st == GENIE_OK) {
        st = genie_srg_attr_int(c->node, 1, &dim);
    }
    if (st != GENIE_OK) {
        return st;
    }
    x = c->in[0];
    if (x->ndim == 0) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: cannot split a 0-d tensor",
                               genie_cpu_opname(c));
    }
    st = genie_cpu_wrap_dim(c, dim, x->ndim, &d);
    if (st != GENIE_OK) {
        return st;
    }
    size = x->shape[d];
    if (split < 0 || (split == 0 && size != 0)) {
        return genie_set_error(GENIE_ERR_INVALID, "%s: split size %lld for extent %lld",
                               genie_cpu_opname(c), (long long)split, (long long)size);
    }
    n_chunks = split == 0 ? 1 : (size + split - 1) / split;
    if (n_chunks < 1) {
        n_chunks = 1;
    }
    if (n_chunks != (int64_t)c->n_out) {
        return genie_set_error(GENIE_ERR_INVALID, "%s: %lld chunks but node has %u outputs",
                               genie_cpu_opname(c), (long long)n_chunks, c->n_out);
    }
    memcpy(shape, x->shape, sizeof(shape));
    for (int64_t i = 0; i < n_chunks; i++) {
        int64_t len = size - i * split < split ? size - i * split : split;
        shape[d] = len;
        st = view_finish(c, (uint32_t)i, x, x->ndim, shape, x->strides,
                         x->offset + i * split * x->strides[d]);
        if (st != GENIE_OK) {
            for (int64_t j = 0; j < i; j++) {
                genie_tensor_release(&c->out[j]);
            }
            return st;
        }
    }
    return GENIE_OK;
}

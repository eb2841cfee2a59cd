/*
 * Copies: the strided, dtype-converting copy every other file uses to
 * materialise views, and the ops that are nothing but a copy (clone,
 * _to_copy, copy, cat).  A copy goes through the broadcasting iterator, so a
 * transposed or expanded source costs one pass; same-dtype rows with unit
 * strides become memcpy, other same-dtype rows a typed strided loop, and dtype
 * changes go through f32 (any float involved) or i64 (integers and bools, so
 * large int64 values survive exactly).
 */
#include "cpu_internal.h"

#include <string.h>

typedef struct copy_ctx {
    genie_dtype_t sdt, ddt;
    size_t        elsize;      /* same-dtype copies */
    int           via_f32;     /* dtype change through f32, else through i64 */
} copy_ctx_t;

static void copy_same_row(void *vctx, int64_t n, char *const *p, const int64_t *s)
{
    const copy_ctx_t *cx = vctx;

    if (s[0] == 1 && s[1] == 1) {
        memcpy(p[0], p[1], (size_t)n * cx->elsize);
        return;
    }
    switch (cx->elsize) {
    case 1:
        for (int64_t i = 0; i < n; i++) {
            ((uint8_t *)p[0])[i * s[0]] = ((const uint8_t *)p[1])[i * s[1]];
        }
        break;
    case 2:
        for (int64_t i = 0; i < n; i++) {
            ((uint16_t *)p[0])[i * s[0]] = ((const uint16_t *)p[1])[i * s[1]];
        }
        break;
    case 4:
        for (int64_t i = 0; i < n; i++) {
            ((uint32_t *)p[0])[i * s[0]] = ((const uint32_t *)p[1])[i * s[1]];
        }
        break;
    default:
        for (int64_t i = 0; i < n; i++) {
            ((uint64_t *)p[0])[i * s[0]] = ((const uint64_t *)p[1])[i * s[1]];
        }
        break;
    }
}

static void copy_convert_row(void *vctx, int64_t n, char *const *p, const int64_t *s)
{
    const copy_ctx_t *cx = vctx;

    if (cx->via_f32) {
        float buf[CPU_CHUNK];
        genie_cpu_load_f32(p[1], cx->sdt, s[1], n, buf);
        genie_cpu_store_f32(buf, n, p[0], cx->ddt, s[0]);
    } else {
        int64_t buf[CPU_CHUNK];
        genie_cpu_load_i64(p[1], cx->sdt, s[1], n, buf);
        genie_cpu_store_i64(buf, n, p[0], cx->ddt, s[0]);
    }
}

genie_status_t genie_cpu_copy(const genie_op_call_t *c, int n_threads,
                              const genie_tensor_t *src, genie_tensor_t *dst)
{
    cpu_iter_t it;
    copy_ctx_t cx;
    genie_status_t st;

    st = genie_cpu_iter_init(c, dst, &src, 1, &it);
    if (st != GENIE_OK) {
        return st;
    }
    cx.sdt = src->dtype;
    cx.ddt = dst->dtype;
    cx.elsize = genie_dtype_size(dst->dtype);
    cx.via_f32 = genie_dtype_is_float(src->dtype) || genie_dtype_is_float(dst->dtype);
    genie_cpu_iter_run(&it, n_threads, src->dtype == dst->dtype ? copy_same_row
                                                                : copy_convert_row, &cx);
    return GENIE_OK;
}

genie_status_t genie_cpu_contiguous(const genie_op_call_t *c, const genie_tensor_t *src,
                                    int n_threads, genie_tensor_t *out_p)
{
    genie_tensor_t t;
    genie_status_t st;

    if (genie_tensor_is_contiguous(src)) {
        genie_tensor_share(src, out_p);
        return GENIE_OK;
    }
    st = genie_tensor_alloc(src->dtype, src->ndim, src->shape, &t);
    if (st != GENIE_OK) {
        return st;
    }
    st = genie_cpu_copy(c, n_threads, src, &t);
    if (st != GENIE_OK) {
        genie_tensor_release(&t);
        return st;
    }
    *out_p = t;
    return GENIE_OK;
}

/* ---- clone / _to_copy / copy ---------------------------------------------- */

/* clone(self, *, memory_format): out (same shape and dtype as self). */
genie_status_t genie_cpu_op_clone(const genie_op_call_t *c)
{
    genie_status_t st = genie_cpu_check_call(c, 1, 1, 1);

    if (st == GENIE_OK) {
        st = genie_cpu_check_same_shape(c, "input/output", c->in[0], &c->out[0]);
    }
    if (st != GENIE_OK) {
        return st;
    }
    return genie_cpu_copy(c, genie_cpu_threads(c), c->in[0], &c->out[0]);
}

/* _to_copy(self, *, dtype, layout, device, pin_memory, non_blocking,
 * memory_format): the output dtype already carries the requested conversion. */
genie_status_t genie_cpu_op_to_copy(const genie_op_call_t *c)
{
    return genie_cpu_op_clone(c);
}

/* copy(self, src, non_blocking): src broadcast to self's shape, in self's
 * dtype.  out: self's shape. */
genie_status_t genie_cpu_op_copy(const genie_op_call_t *c)
{
    genie_status_t st = genie_cpu_check_call(c, 2, 2, 1);

    if (st == GENIE_OK) {
        st = genie_cpu_check_same_shape(c, "self/output", c->in[0], &c->out[0]);
    }
    if (st != GENIE_OK) {
        return st;
    }
    return genie_cpu_copy(c, genie_cpu_threads(c), c->in[1], &c->out[0]);
}

/* ---- cat -------------------------------------------------------------------- */

/* PyTorch's legacy rule: a 1-d tensor of shape (0,) may be concatenated with
 * anything and is skipped. */
static int cat_skipped(const genie_tensor_t *t)
{
    return t->ndim == 1 && t->shape[0] == 0;
}

/* cat(tensors[], dim): inputs are the list, flattened; out has the inputs'
 * shape except along dim, where the extents add up.  Inputs may differ in
 * dtype (the output dtype is the promoted one). */
genie_status_t genie_cpu_op_cat(const genie_op_call_t *c)
{
    genie_tensor_t *out = &c->out[0];
    int64_t dim, pos = 0;
    int d;
    genie_status_t st;

    st = genie_cpu_check_call(c, 1, UINT32_MAX - 1, 1);
    if (st != GENIE_OK) {
        return st;
    }
    st = genie_srg_attr_int(c->node, 0, &dim);
    if (st != GENIE_OK) {
        return st;
    }
    for (uint32_t i = 0; i < c->n_in; i++) {
        if (c->in[i] == NULL) {
            return genie_set_error(GENIE_ERR_INVALID, "%s: input %u is missing",
                                   genie_cpu_opname(c), i);
        }
    }
    st = genie_cpu_wrap_dim(c, dim, out->ndim, &d);
    if (st != GENIE_OK) {
        return st;
    }
    if (out->ndim == 0) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: zero-dimensional output",
                               genie_cpu_opname(c));
    }
    /* Validate every input before writing anything. */
    for (uint32_t i = 0; i < c->n_in; i++) {
        const genie_tensor_t *t = c->in[i];
        if (cat_skipped(t) && out->ndim != 1) {
            continue;
        }
        if (t->ndim != out->ndim) {
            return genie_set_error(GENIE_ERR_SHAPE, "%s: input %u has rank %d, output %d",
                                   genie_cpu_opname(c), i, t->ndim, out->ndim);
        }
        for (int k = 0; k < out->ndim; k++) {
            if (k != d && t->shape[k] != out->shape[k]) {
                return genie_set_error(GENIE_ERR_SHAPE,
                                       "%s: input %u has extent %lld in dim %d, expected %lld",
                                       genie_cpu_opname(c), i, (long long)t->shape[k], k,
                                       (long long)out->shape[k]);
            }
        }
        pos += t->shape[d];
    }
    if (pos != out->shape[d]) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: inputs add up to %lld along dim %d, "
                               "output has %lld", genie_cpu_opname(c), (long long)pos, d,
                               (long long)out->shape[d]);
    }
    pos = 0;
    for (uint32_t i = 0; i < c->n_in; i++) {
        const genie_tensor_t *t = c->in[i];
        genie_tensor_t part = *out;
        if (cat_skipped(t) && out->ndim != 1) {
            continue;
        }
        part.shape[d] = t->shape[d];
        part.offset = out->offset + pos * out->strides[d];
        st = genie_cpu_copy(c, genie_cpu_threads(c), t, &part);
        if (st != GENIE_OK) {
            return st;
        }
        pos += t->shape[d];
    }
    return GENIE_OK;
}

/* ---- repeat ------------------------------------------------------------------ */

/* repeat(self, repeats[]): out (repeats[d] * padded_self.shape[d]) where self
 * is padded with leading 1-extents to len(repeats) dims.  The output seen as
 * the interleaved shape (r0, s0, r1, s1, ...) is self broadcast along every
 * r dim, so one strided copy does it; dims with r == 1 or s == 1 need one
 * entry, not two.  When the interleaved shape has more than GENIE_MAX_DIMS
 * dims, the copy is done one tile (one index of the repeated dims) at a time. */
genie_status_t genie_cpu_op_repeat(const genie_op_call_t *c)
{
    const genie_tensor_t *x;
    genie_tensor_t *out = &c->out[0];
    const int64_t *rep;
    uint32_t nr;
    int64_t xs[GENIE_MAX_DIMS], xst[GENIE_MAX_DIMS];     /* padded self (nr) */
    genie_tensor_t src, dst;
    int n = 0, lead;
    genie_status_t st;

    st = genie_cpu_check_call(c, 1, 1, 1);
    if (st == GENIE_OK) {
        st = genie_srg_attr_ints(c->node, 0, &rep, &nr);
    }
    if (st != GENIE_OK) {
        return st;
    }
    x = c->in[0];
    if (nr < (uint32_t)x->ndim || nr > GENIE_MAX_DIMS) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: %u repeats for a %d-d tensor (need %d..%d)",
                               genie_cpu_opname(c), nr, x->ndim, x->ndim, GENIE_MAX_DIMS);
    }
    if (out->dtype != x->dtype) {
        return genie_set_error(GENIE_ERR_DTYPE, "%s: output is %s but self is %s",
                               genie_cpu_opname(c), genie_dtype_name(out->dtype),
                               genie_dtype_name(x->dtype));
    }
    lead = (int)nr - x->ndim;
    for (int d = 0; d < (int)nr; d++) {
        xs[d] = d < lead ? 1 : x->shape[d - lead];
        xst[d] = d < lead ? 0 : x->strides[d - lead];
        if (rep[d] < 0) {
            return genie_set_error(GENIE_ERR_INVALID, "%s: repeat %lld in dim %d is negative",
                                   genie_cpu_opname(c), (long long)rep[d], d);
        }
        if (out->ndim != (int)nr || out->shape[d] != rep[d] * xs[d]) {
            return genie_set_error(GENIE_ERR_SHAPE, "%s: output extent of dim %d must be %lld",
                                   genie_cpu_opname(c), d, (long long)(rep[d] * xs[d]));
        }
    }
    if (genie_tensor_numel(out) == 0) {
        return GENIE_OK;
    }
    /* Interleaved view: (r_d, s_d) per dim, trivial entries left out. */
    src = *x;
    dst = *out;
    for (int d = 0; d < (int)nr; d++) {
        n += (rep[d] > 1) + (xs[d] > 1);
    }
    if (n <= GENIE_MAX_DIMS) {
        int k = 0;
        for (int d = 0; d < (int)nr; d++) {
            if (rep[d] > 1) {
                src.shape[k] = dst.shape[k] = rep[d];
                src.strides[k] = 0;
                dst.strides[k] = out->strides[d] * xs[d];
                k++;
            }
            if (xs[d] > 1) {
                src.shape[k] = dst.shape[k] = xs[d];
                src.strides[k] = xst[d];
                dst.strides[k] = out->strides[d];
                k++;
            }
        }
        src.ndim = dst.ndim = k;
        return genie_cpu_copy(c, genie_cpu_threads(c), &src, &dst);
    }
    /* Too many dims: one copy of self per tile. */
    {
        int64_t tiles = 1, t[GENIE_MAX_DIMS] = { 0 };
        src.ndim = dst.ndim = (int)nr;
        for (int d = 0; d < (int)nr; d++) {
            src.shape[d] = dst.shape[d] = xs[d];
            src.strides[d] = xst[d];
            dst.strides[d] = out->strides[d];
            tiles *= rep[d];
        }
        for (int64_t i = 0; i < tiles && st == GENIE_OK; i++) {
            dst.offset = out->offset;
            for (int d = 0; d < (int)nr; d++) {
                dst.offset += t[d] * xs[d] * out->strides[d];
            }
            st = genie_cpu_copy(c, genie_cpu_threads(c), &src, &dst);
            for (int d = (int)nr - 1; d >= 0; d--) {
                if (++t[d] < rep[d]) {
                    break;
                }
                t[d] = 0;
            }
        }
    }
    return st;
}

/*
 * Ops that write constants or index patterns: fill.Scalar, full, arange
 * (start_step), and the triangle masks tril/triu.  All write the contiguous
 * output directly; values are converted once to the output dtype and then
 * replicated, with an INT Scalar kept exact for int64 outputs.
 */
#include "cpu_internal.h"

#include <math.h>
#include <string.h>

/* out[:] = the Scalar attribute idx, in out's dtype. */
static genie_status_t fill_with_attr(const genie_op_call_t *c, uint32_t idx,
                                     genie_tensor_t *out)
{
    int64_t n = genie_tensor_numel(out), vi;
    size_t es = genie_dtype_size(out->dtype);
    unsigned char one[8];
    char *dst = genie_tensor_data(out);
    double v;
    genie_status_t st;

    st = genie_cpu_attr_scalar(c, idx, &v, &vi, NULL);
    if (st != GENIE_OK) {
        return st;
    }
    if (out->dtype == GENIE_I64) {
        memcpy(one, &vi, sizeof(vi));
    } else if (genie_dtype_is_float(out->dtype)) {
        genie_store_from_f64(one, out->dtype, 0, v);
    } else {
        int64_t t = out->dtype == GENIE_BOOL ? (v != 0.0) : vi;
        genie_cpu_store_i64(&t, 1, one, out->dtype, 1);
    }
    switch (es) {
    case 1: memset(dst, one[0], (size_t)n); break;
    case 2: {
        uint16_t w;
        memcpy(&w, one, 2);
        for (int64_t i = 0; i < n; i++) {
            ((uint16_t *)dst)[i] = w;
        }
        break;
    }
    case 4: {
        uint32_t w;
        memcpy(&w, one, 4);
        for (int64_t i = 0; i < n; i++) {
            ((uint32_t *)dst)[i] = w;
        }
        break;
    }
    default: {
        uint64_t w;
        memcpy(&w, one, 8);
        for (int64_t i = 0; i < n; i++) {
            ((uint64_t *)dst)[i] = w;
        }
        break;
    }
    }
    return GENIE_OK;
}

/* fill.Scalar(self, value): out has self's shape. */
genie_status_t genie_cpu_op_fill(const genie_op_call_t *c)
{
    genie_status_t st = genie_cpu_check_call(c, 1, 1, 1);

    if (st == GENIE_OK) {
        st = genie_cpu_check_same_shape(c, "self/output", c->in[0], &c->out[0]);
    }
    if (st != GENIE_OK) {
        return st;
    }
    return fill_with_attr(c, 0, &c->out[0]);
}

/* full(size[], fill_value, *, dtype, layout, device, pin_memory) */
genie_status_t genie_cpu_op_full(const genie_op_call_t *c)
{
    const int64_t *size;
    uint32_t n;
    genie_tensor_t *out = &c->out[0];
    genie_status_t st = genie_cpu_check_call(c, 0, 0, 1);

    if (st == GENIE_OK) {
        st = genie_srg_attr_ints(c->node, 0, &size, &n);
    }
    if (st != GENIE_OK) {
        return st;
    }
    if ((int)n != out->ndim) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: size has %u dims, output %d",
                               genie_cpu_opname(c), n, out->ndim);
    }
    for (uint32_t d = 0; d < n; d++) {
        if (size[d] != out->shape[d]) {
            return genie_set_error(GENIE_ERR_SHAPE, "%s: size[%u] = %lld, output has %lld",
                                   genie_cpu_opname(c), d, (long long)size[d],
                                   (long long)out->shape[d]);
        }
    }
    return fill_with_attr(c, 1, out);
}

/* arange.start_step(start, end, step, *, dtype, layout, device, pin_memory):
 * out (n) with n = ceil((end - start) / step); value i = start + i * step,
 * computed in double for floating outputs (ATen's accumulate type) and exactly
 * in i64 when all three numbers are integers. */
genie_status_t genie_cpu_op_arange(const genie_op_call_t *c)
{
    genie_tensor_t *out = &c->out[0];
    double s, e, step, want;
    int64_t si, ei, stepi, n;
    int fs, fe, fstep;
    char *dst;
    genie_status_t st;

    st = genie_cpu_check_call(c, 0, 0, 1);
    if (st == GENIE_OK) {
        st = genie_cpu_attr_scalar(c, 0, &s, &si, &fs);
    }
    if (st == GENIE_OK) {
        st = genie_cpu_attr_scalar(c, 1, &e, &ei, &fe);
    }
    if (st == GENIE_OK) {
        st = genie_cpu_attr_scalar(c, 2, &step, &stepi, &fstep);
    }
    if (st != GENIE_OK) {
        return st;
    }
    if (step == 0.0 || !isfinite(s) || !isfinite(e) || !isfinite(step)) {
        return genie_set_error(GENIE_ERR_INVALID, "%s: step must be nonzero and bounds finite",
                               genie_cpu_opname(c));
    }
    if ((step > 0 && e < s) || (step < 0 && e > s)) {
        return genie_set_error(GENIE_ERR_INVALID, "%s: upper bound and step sign disagree",
                               genie_cpu_opname(c));
    }
    want = ceil((e - s) / step);
    n = genie_tensor_numel(out);
    if (out->ndim != 1 || (double)n != want) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: expected %.0f elements, output has %lld",
                               genie_cpu_opname(c), want, (long long)n);
    }
    dst = genie_tensor_data(out);
    if (!fs && !fe && !fstep) {
        for (int64_t i = 0; i < n; i++) {
            int64_t v = (int64_t)((uint64_t)si + (uint64_t)i * (uint64_t)stepi);
            genie_cpu_store_i64(&v, 1, dst + (size_t)i * genie_dtype_size(out->dtype),
                                out->dtype, 1);
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            genie_store_from_f64(dst, out->dtype, i, s + (double)i * step);
        }
    }
    return GENIE_OK;
}

/* tril/triu(self, diagonal): self (..., R, C); keeps element (i, j) when
 * j - i <= diagonal (tril) or j - i >= diagonal (triu), zero elsewhere. */
static genie_status_t tri_run(const genie_op_call_t *c, int lower)
{
    genie_tensor_t *out = &c->out[0];
    int64_t k, rows, cols, batch;
    size_t es;
    char *base;
    genie_status_t st;

    st = genie_cpu_check_call(c, 1, 1, 1);
    if (st == GENIE_OK) {
        st = genie_srg_attr_int(c->node, 0, &k);
    }
    if (st == GENIE_OK) {
        st = genie_cpu_check_same_shape(c, "self/output", c->in[0], out);
    }
    if (st != GENIE_OK) {
        return st;
    }
    if (out->ndim < 2) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: needs at least 2 dims, got %d",
                               genie_cpu_opname(c), out->ndim);
    }
    if (out->dtype != c->in[0]->dtype) {
        return genie_set_error(GENIE_ERR_DTYPE, "%s: output dtype %s differs from input %s",
                               genie_cpu_opname(c), genie_dtype_name(out->dtype),
                               genie_dtype_name(c->in[0]->dtype));
    }
    st = genie_cpu_copy(c, genie_cpu_threads(c), c->in[0], out);
    if (st != GENIE_OK) {
        return st;
    }
    rows = out->shape[out->ndim - 2];
    cols = out->shape[out->ndim - 1];
    /* Beyond +-(rows + cols) every diagonal gives the same mask; clamping
     * keeps i + k from overflowing. */
    k = k > rows + cols ? rows + cols : (k < -(rows + cols) ? -(rows + cols) : k);
    batch = rows * cols == 0 ? 0 : genie_tensor_numel(out) / (rows * cols);
    es = genie_dtype_size(out->dtype);
    base = genie_tensor_data(out);
    /* Zero bits are 0 / 0.0 / false in every dtype we have. */
    for (int64_t b = 0; b < batch; b++) {
        for (int64_t i = 0; i < rows; i++) {
            char *row = base + (size_t)((b * rows + i) * cols) * es;
            int64_t lo, hi;        /* zero columns [lo, hi) */
            if (lower) {
                lo = i + k + 1;
                lo = lo < 0 ? 0 : lo;
                hi = cols;
            } else {
                lo = 0;
                hi = i + k;
                hi = hi > cols ? cols : hi;
            }
            if (lo < hi) {
                memset(row + (size_t)lo * es, 0, (size_t)(hi - lo) * es);
            }
        }
    }
    return GENIE_OK;
}

genie_status_t genie_cpu_op_tril(const genie_op_call_t *c) { return tri_run(c, 1); }
genie_status_t genie_cpu_op_triu(const genie_op_call_t *c) { return tri_run(c, 0); }

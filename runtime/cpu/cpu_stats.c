/*
 * Statistics over whole tensors: histc.
 *
 * histc(self, bins, min, max) counts the elements of a floating tensor into
 * `bins` equal-width bins over [min, max] (the last bin closed on the right);
 * elements outside the range are ignored.  min == max means "use the data's
 * own extremes", and a range that is still empty is widened by one on each
 * side, as ATen does.  The bin of an element is computed in the input's own
 * precision with ATen's formula, (x - min) * bins / (max - min) truncated,
 * so an element near a bin edge lands in the same bin as in PyTorch.  Mixtral's
 * router uses it to count tokens per expert.
 *
 * Integer inputs (i32, i64) follow PyTorch's CUDA kernel, since the CPU one
 * refuses them and transformers passes integer expert ids on every device but
 * the CPU: min and max are truncated to integers and the bin is
 * (x - min) * bins / (max - min) in integer arithmetic.
 *
 * Legend: N = numel of the input, B = bins.
 */
#include "cpu_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Value rounded to dtype dt (the precision ATen computes bins in). */
static double in_dtype(double v, genie_dtype_t dt)
{
    switch (dt) {
    case GENIE_F16:  return genie_f16_to_f32(genie_f32_to_f16((float)v));
    case GENIE_BF16: return genie_bf16_to_f32(genie_f32_to_bf16((float)v));
    default:         return (float)v;
    }
}

/* histc of an i32/i64 tensor (the CUDA kernel's rule, see the top of the
 * file): out (bins) of x's dtype; lo/hi already checked finite, lo <= hi. */
static genie_status_t histc_int(const genie_op_call_t *c, const genie_tensor_t *x,
                                int64_t bins, double lo_f, double hi_f)
{
    genie_tensor_t *out = &c->out[0], xc = { 0 };
    int64_t lo = genie_cpu_f64_to_i64(lo_f), hi = genie_cpu_f64_to_i64(hi_f), n, *counts;
    const void *xb;
    genie_status_t st = genie_cpu_contiguous(c, x, genie_cpu_threads(c), &xc);

    if (st != GENIE_OK) {
        return st;
    }
    n = genie_tensor_numel(&xc);
    xb = genie_tensor_data(&xc);
    if (lo == hi && n > 0) {
        lo = INT64_MAX;
        hi = INT64_MIN;
        for (int64_t i = 0; i < n; i++) {
            int64_t v = genie_cpu_get_i64(xb, xc.dtype, i);
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
    }
    if (lo == hi) {
        lo = lo > INT64_MIN ? lo - 1 : lo;
        hi = hi < INT64_MAX ? hi + 1 : hi;
    }
    counts = calloc((size_t)bins, sizeof(int64_t));
    if (counts == NULL) {
        genie_tensor_release(&xc);
        return genie_set_error(GENIE_ERR_NOMEM, "%s: out of memory for %lld bins",
                               genie_cpu_opname(c), (long long)bins);
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t v = genie_cpu_get_i64(xb, xc.dtype, i), pos;
        if (v < lo || v > hi) {
            continue;
        }
        /* In unsigned 128-bit-free form: (v - lo) and (hi - lo) fit in u64;
         * the product is done in long double to keep huge ranges from
         * wrapping (exact for the small ranges bins are used with). */
        pos = (int64_t)((long double)((uint64_t)v - (uint64_t)lo) * (long double)bins /
                        (long double)((uint64_t)hi - (uint64_t)lo));
        counts[pos >= bins ? bins - 1 : pos]++;
    }
    for (int64_t b = 0; b < bins; b++) {
        genie_store_from_f64(genie_tensor_data(out), out->dtype, b, (double)counts[b]);
    }
    free(counts);
    genie_tensor_release(&xc);
    return GENIE_OK;
}

/* histc(self, bins=100, min=0, max=0): out (bins) of self's dtype. */
genie_status_t genie_cpu_op_histc(const genie_op_call_t *c)
{
    const genie_tensor_t *x;
    genie_tensor_t *out = &c->out[0], xc = { 0 };
    int64_t bins, n, *counts;
    double lo, hi;
    genie_status_t st;

    st = genie_cpu_check_call(c, 1, 1, 1);
    if (st == GENIE_OK) {
        st = genie_srg_attr_int(c->node, 0, &bins);
    }
    if (st == GENIE_OK) {
        st = genie_srg_attr_scalar(c->node, 1, &lo);
    }
    if (st == GENIE_OK) {
        st = genie_srg_attr_scalar(c->node, 2, &hi);
    }
    if (st != GENIE_OK) {
        return st;
    }
    x = c->in[0];
    int is_int = x->dtype == GENIE_I64 || x->dtype == GENIE_I32;
    if (!(genie_dtype_is_float(x->dtype) || is_int) || out->dtype != x->dtype) {
        return genie_set_error(GENIE_ERR_DTYPE, "%s: needs a floating or i32/i64 input and an "
                               "output of the same dtype, got %s -> %s", genie_cpu_opname(c),
                               genie_dtype_name(x->dtype), genie_dtype_name(out->dtype));
    }
    if (bins <= 0) {
        return genie_set_error(GENIE_ERR_INVALID, "%s: bins must be > 0, got %lld",
                               genie_cpu_opname(c), (long long)bins);
    }
    if (out->ndim != 1 || out->shape[0] != bins) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: output must be (%lld)",
                               genie_cpu_opname(c), (long long)bins);
    }
    if (!isfinite(lo) || !isfinite(hi)) {
        return genie_set_error(GENIE_ERR_INVALID, "%s: range of [%g, %g] is not finite",
                               genie_cpu_opname(c), lo, hi);
    }
    if (lo > hi) {
        return genie_set_error(GENIE_ERR_INVALID, "%s: max %g must be larger than min %g",
                               genie_cpu_opname(c), hi, lo);
    }
    if (is_int) {
        return histc_int(c, x, bins, lo, hi);
    }
    st = genie_cpu_contiguous(c, x, genie_cpu_threads(c), &xc);
    if (st != GENIE_OK) {
        return st;
    }
    n = genie_tensor_numel(&xc);
    {
        const void *xb = genie_tensor_data(&xc);
        if (lo == hi && n > 0) {
            /* The data's own range; NaN makes it undefined, as in ATen. */
            lo = INFINITY;
            hi = -INFINITY;
            for (int64_t i = 0; i < n; i++) {
                double v = genie_load_as_f64(xb, xc.dtype, i);
                if (v != v) {
                    genie_tensor_release(&xc);
                    return genie_set_error(GENIE_ERR_INVALID, "%s: range of [nan, nan] is not "
                                           "finite", genie_cpu_opname(c));
                }
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
            }
            if (!isfinite(lo) || !isfinite(hi)) {
                genie_tensor_release(&xc);
                return genie_set_error(GENIE_ERR_INVALID, "%s: range of [%g, %g] is not "
                                       "finite", genie_cpu_opname(c), lo, hi);
            }
        }
        if (lo == hi) {
            lo -= 1;
            hi += 1;
        }
        lo = in_dtype(lo, x->dtype);
        hi = in_dtype(hi, x->dtype);
        counts = calloc((size_t)bins, sizeof(int64_t));
        if (counts == NULL) {
            genie_tensor_release(&xc);
            return genie_set_error(GENIE_ERR_NOMEM, "%s: out of memory for %lld bins",
                                   genie_cpu_opname(c), (long long)bins);
        }
        for (int64_t i = 0; i < n; i++) {
            double v = genie_load_as_f64(xb, xc.dtype, i);
            int64_t pos;
            if (!(v >= lo && v <= hi)) {
                continue;          /* outside the range, or NaN */
            }
            /* ATen: pos = (elt - left) * bins / (right - left), each step in
             * the input's type (f16/bf16 computed in float and rounded). */
            if (xc.dtype == GENIE_F32) {
                float num = ((float)v - (float)lo) * (float)bins;
                pos = (int64_t)(num / ((float)hi - (float)lo));
            } else {
                double num = in_dtype(in_dtype(v - lo, xc.dtype) * (double)bins, xc.dtype);
                pos = (int64_t)in_dtype(num / in_dtype(hi - lo, xc.dtype), xc.dtype);
            }
            if (pos >= bins) {
                pos = bins - 1;    /* the last bin is closed on the right */
            }
            if (pos < 0) {
                pos = 0;
            }
            counts[pos]++;
        }
    }
    for (int64_t b = 0; b < bins; b++) {
        genie_store_from_f64(genie_tensor_data(out), out->dtype, b, (double)counts[b]);
    }
    free(counts);
    genie_tensor_release(&xc);
    return GENIE_OK;
}

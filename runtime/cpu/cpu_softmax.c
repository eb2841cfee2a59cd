/*
 * _softmax, _safe_softmax and _log_softmax along one dim.
 *
 * Stable form: subtract the row maximum, exponentiate with the vectorised
 * cpu_expf, normalise by the sum.  Semantics at the edges follow ATen: a row
 * that is entirely -inf gives NaN for _softmax/_log_softmax and zeros for
 * _safe_softmax (what SDPA's math path relies on for fully masked rows); a
 * NaN anywhere makes its row NaN.  The input is viewed as (outer, L, inner):
 * the common inner == 1 case streams contiguous rows, other dims are gathered
 * into a row buffer.
 *
 * Legend: L = length along dim, outer/inner = products of the dims before and
 * after it.
 */
#include "cpu_internal.h"
#include "cpu_vmath.h"

#include <math.h>
#include <stdlib.h>

typedef enum sm_kind { SM_SOFTMAX, SM_SAFE, SM_LOG } sm_kind_t;

/* y (L) = softmax-family of x (L); y may alias x. */
CPU_MULTIVERSION
static void sm_row(sm_kind_t kind, int64_t L, const float *x, float *y)
{
    float m = -INFINITY, sum = 0.0f;

#ifdef _OPENMP
#pragma omp simd reduction(max:m)
#endif
    for (int64_t i = 0; i < L; i++) {
        m = x[i] > m ? x[i] : m;
    }
    if (m == -INFINITY && kind == SM_SAFE) {
        for (int64_t i = 0; i < L; i++) {
            y[i] = 0.0f;
        }
        return;
    }
    if (kind == SM_LOG) {
        CPU_SIMD_SUM(sum)
        for (int64_t i = 0; i < L; i++) {
            sum += cpu_expf(x[i] - m);
        }
        float lse = m + logf(sum);
        CPU_SIMD
        for (int64_t i = 0; i < L; i++) {
            y[i] = x[i] - lse;
        }
        return;
    }
    CPU_SIMD_SUM(sum)
    for (int64_t i = 0; i < L; i++) {
        float e = cpu_expf(x[i] - m);
        y[i] = e;
        sum += e;
    }
    float inv = 1.0f / sum;
    CPU_SIMD
    for (int64_t i = 0; i < L; i++) {
        y[i] *= inv;
    }
}

static genie_status_t sm_run(const genie_op_call_t *c, sm_kind_t kind)
{
    const genie_tensor_t *x;
    genie_tensor_t *out = &c->out[0], xc = { 0 };
    int64_t dim, outer = 1, L, inner = 1;
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
    st = genie_cpu_wrap_dim(c, dim, x->ndim, &d);
    if (st == GENIE_OK) {
        st = genie_cpu_check_same_shape(c, "input/output", x, out);
    }
    if (st != GENIE_OK) {
        return st;
    }
    if (!genie_dtype_is_float(x->dtype) || !genie_dtype_is_float(out->dtype)) {
        return genie_set_error(GENIE_ERR_DTYPE, "%s: needs floating tensors, got %s -> %s",
                               genie_cpu_opname(c), genie_dtype_name(x->dtype),
                               genie_dtype_name(out->dtype));
    }
    if (genie_tensor_numel(x) == 0) {
        return GENIE_OK;
    }
    L = x->ndim > 0 ? x->shape[d] : 1;
    for (int k = 0; k < x->ndim; k++) {
        if (k < d) {
            outer *= x->shape[k];
        } else if (k > d) {
            inner *= x->shape[k];
        }
    }
    st = genie_cpu_contiguous(c, x, genie_cpu_threads(c), &xc);
    if (st != GENIE_OK) {
        return st;
    }
    {
        const char *xb = genie_tensor_data(&xc);
        char *yb = genie_tensor_data(out);
        size_t xes = genie_dtype_size(x->dtype), yes = genie_dtype_size(out->dtype);
        int64_t rows = outer * inner;
        int direct = inner == 1 && x->dtype == GENIE_F32 && out->dtype == GENIE_F32;
        int fail = 0;

#ifdef _OPENMP
#pragma omp parallel num_threads(genie_cpu_threads(c)) if (rows * L >= CPU_PAR_GRAIN && rows > 1)
#endif
        {
            float *buf = direct ? NULL : malloc((size_t)L * sizeof(float));
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (int64_t r = 0; r < rows; r++) {
                int64_t o = r / inner, i = r % inner;
                size_t base = (size_t)(o * L * inner + i);
                if (direct) {
                    sm_row(kind, L, (const float *)xb + base, (float *)yb + base);
                } else if (buf == NULL) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
                    fail = 1;
                } else {
                    genie_cpu_load_f32(xb + base * xes, x->dtype, inner, L, buf);
                    sm_row(kind, L, buf, buf);
                    genie_cpu_store_f32(buf, L, yb + base * yes, out->dtype, inner);
                }
            }
            free(buf);
        }
        if (fail) {
            st = genie_set_error(GENIE_ERR_NOMEM, "%s: out of memory for row buffers",
                                 genie_cpu_opname(c));
        }
    }
    genie_tensor_release(&xc);
    return st;
}

/* _softmax(self, dim, half_to_float) */
genie_status_t genie_cpu_op_softmax(const genie_op_call_t *c) { return sm_run(c, SM_SOFTMAX); }
/* _safe_softmax(self, dim, dtype?) */
genie_status_t genie_cpu_op_safe_softmax(const genie_op_call_t *c) { return sm_run(c, SM_SAFE); }
/* _log_softmax(self, dim, half_to_float) */
genie_status_t genie_cpu_op_log_softmax(const genie_op_call_t *c) { return sm_run(c, SM_LOG); }

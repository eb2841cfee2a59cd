/*
 * native_layer_norm: normalise over the trailing `normalized_shape` dims,
 * returning (out, mean, rstd) like ATen, with mean and rstd shaped
 * input.shape[:axis] + [1] * len(normalized_shape).
 *
 * Each row is processed in two passes in f32 (mean, then the variance of the
 * centred values: more accurate than E[x^2] - E[x]^2 and vectorisable with an
 * `omp simd` reduction), rows spread over threads.  Non-f32 or strided inputs
 * are converted one row at a time into a per-thread buffer.
 *
 * Legend: M = rows (product of the leading dims), N = row length (product of
 * normalized_shape).
 */
#include "cpu_internal.h"

#include <math.h>
#include <stdlib.h>

/* y (N) = (x - mean) * rstd * w + b; w, b may be NULL. */
CPU_MULTIVERSION
static void ln_row(int64_t N, const float *restrict x, const float *restrict w,
                   const float *restrict b, float eps, float *restrict y, float *mean_p,
                   float *rstd_p)
{
    float sum = 0.0f, var = 0.0f, mean, rstd;

    CPU_SIMD_SUM(sum)
    for (int64_t i = 0; i < N; i++) {
        sum += x[i];
    }
    mean = sum / (float)N;
    CPU_SIMD_SUM(var)
    for (int64_t i = 0; i < N; i++) {
        float d = x[i] - mean;
        var += d * d;
    }
    rstd = 1.0f / sqrtf(var / (float)N + eps);
    if (w != NULL && b != NULL) {
        CPU_SIMD
        for (int64_t i = 0; i < N; i++) {
            y[i] = (x[i] - mean) * rstd * w[i] + b[i];
        }
    } else if (w != NULL) {
        CPU_SIMD
        for (int64_t i = 0; i < N; i++) {
            y[i] = (x[i] - mean) * rstd * w[i];
        }
    } else if (b != NULL) {
        CPU_SIMD
        for (int64_t i = 0; i < N; i++) {
            y[i] = (x[i] - mean) * rstd + b[i];
        }
    } else {
        CPU_SIMD
        for (int64_t i = 0; i < N; i++) {
            y[i] = (x[i] - mean) * rstd;
        }
    }
    *mean_p = mean;
    *rstd_p = rstd;
}

/* f32 contiguous copy of an optional affine parameter (N), or an empty tensor. */
static genie_status_t affine_f32(const genie_op_call_t *c, const genie_tensor_t *p,
                                 int n_ns, const int64_t *ns, genie_tensor_t *out_p)
{
    genie_tensor_t t = { 0 };
    genie_status_t st;

    if (p == NULL) {
        *out_p = t;
        return GENIE_OK;
    }
    if (p->ndim != n_ns) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: weight/bias must have normalized_shape",
                               genie_cpu_opname(c));
    }
    for (int d = 0; d < n_ns; d++) {
        if (p->shape[d] != ns[d]) {
            return genie_set_error(GENIE_ERR_SHAPE, "%s: weight/bias must have "
                                   "normalized_shape", genie_cpu_opname(c));
        }
    }
    st = genie_tensor_alloc(GENIE_F32, p->ndim, p->shape, &t);
    if (st != GENIE_OK) {
        return st;
    }
    st = genie_cpu_copy(c, 1, p, &t);
    if (st != GENIE_OK) {
        genie_tensor_release(&t);
        return st;
    }
    *out_p = t;
    return GENIE_OK;
}

/* native_layer_norm(input (*, ns...), normalized_shape[], weight?, bias?, eps)
 * -> out (input.shape), mean (*, 1...), rstd (*, 1...). */
genie_status_t genie_cpu_op_layer_norm(const genie_op_call_t *c)
{
    const genie_tensor_t *x;
    genie_tensor_t xc = { 0 }, wt = { 0 }, bt = { 0 };
    const int64_t *ns;
    uint32_t n_ns;
    double eps;
    int64_t M = 1, N = 1;
    int axis;
    genie_status_t st;

    st = genie_cpu_check_call(c, 1, 3, 3);
    if (st == GENIE_OK) {
        st = genie_srg_attr_ints(c->node, 0, &ns, &n_ns);
    }
    if (st == GENIE_OK) {
        st = genie_srg_attr_float(c->node, 1, &eps);
    }
    if (st != GENIE_OK) {
        return st;
    }
    x = c->in[0];
    axis = x->ndim - (int)n_ns;
    if (n_ns == 0 || axis < 0) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: normalized_shape of %u dims for a %d-d "
                               "input", genie_cpu_opname(c), n_ns, x->ndim);
    }
    for (int d = 0; d < x->ndim; d++) {
        if (d >= axis && x->shape[d] != ns[d - axis]) {
            return genie_set_error(GENIE_ERR_SHAPE, "%s: input dim %d is %lld, "
                                   "normalized_shape says %lld", genie_cpu_opname(c), d,
                                   (long long)x->shape[d], (long long)ns[d - axis]);
        }
        *(d < axis ? &M : &N) *= x->shape[d];
    }
    if (!genie_dtype_is_float(x->dtype) || !genie_dtype_is_float(c->out[0].dtype)) {
        return genie_set_error(GENIE_ERR_DTYPE, "%s: needs a floating input, got %s",
                               genie_cpu_opname(c), genie_dtype_name(x->dtype));
    }
    st = genie_cpu_check_same_shape(c, "input/output", x, &c->out[0]);
    if (st != GENIE_OK) {
        return st;
    }
    if (genie_tensor_numel(&c->out[1]) != M || genie_tensor_numel(&c->out[2]) != M) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: mean/rstd must hold %lld values",
                               genie_cpu_opname(c), (long long)M);
    }
    if (M == 0 || N == 0) {
        return GENIE_OK;
    }
    st = genie_cpu_contiguous(c, x, genie_cpu_threads(c), &xc);
    if (st != GENIE_OK) {
        goto out;
    }
    st = affine_f32(c, c->n_in > 1 ? c->in[1] : NULL, (int)n_ns, ns, &wt);
    if (st != GENIE_OK) {
        goto out;
    }
    st = affine_f32(c, c->n_in > 2 ? c->in[2] : NULL, (int)n_ns, ns, &bt);
    if (st != GENIE_OK) {
        goto out;
    }
    {
        const char *xb = genie_tensor_data(&xc);
        const float *w = wt.storage != NULL ? genie_tensor_data(&wt) : NULL;
        const float *b = bt.storage != NULL ? genie_tensor_data(&bt) : NULL;
        genie_tensor_t *out = &c->out[0], *om = &c->out[1], *orr = &c->out[2];
        char *yb = genie_tensor_data(out);
        size_t xes = genie_dtype_size(x->dtype), yes = genie_dtype_size(out->dtype);
        int direct = x->dtype == GENIE_F32 && out->dtype == GENIE_F32;
        int fail = 0;

#ifdef _OPENMP
#pragma omp parallel num_threads(genie_cpu_threads(c)) if (M * N >= CPU_PAR_GRAIN && M > 1)
#endif
        {
            float *xbuf = NULL, *ybuf = NULL;
            if (!direct) {
                xbuf = malloc((size_t)N * sizeof(float));
                ybuf = malloc((size_t)N * sizeof(float));
            }
            /* Every thread must reach the worksharing loop, so a failed
             * allocation only marks the rows it would have done. */
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (int64_t r = 0; r < M; r++) {
                const float *xr;
                float *yr, mean, rstd;
                if (direct) {
                    xr = (const float *)xb + r * N;
                    yr = (float *)yb + r * N;
                } else if (xbuf == NULL || ybuf == NULL) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
                    fail = 1;
                    continue;
                } else {
                    genie_cpu_load_f32(xb + (size_t)(r * N) * xes, x->dtype, 1, N, xbuf);
                    xr = xbuf;
                    yr = ybuf;
                }
                ln_row(N, xr, w, b, (float)eps, yr, &mean, &rstd);
                if (!direct) {
                    genie_cpu_store_f32(ybuf, N, yb + (size_t)(r * N) * yes, out->dtype, 1);
                }
                genie_cpu_store_f32(&mean, 1, (char *)genie_tensor_data(om) +
                                    (size_t)r * genie_dtype_size(om->dtype), om->dtype, 1);
                genie_cpu_store_f32(&rstd, 1, (char *)genie_tensor_data(orr) +
                                    (size_t)r * genie_dtype_size(orr->dtype), orr->dtype, 1);
            }
            free(xbuf);
            free(ybuf);
        }
        if (fail) {
            st = genie_set_error(GENIE_ERR_NOMEM, "%s: out of memory for row buffers",
                                 genie_cpu_opname(c));
        }
    }
out:
    genie_tensor_release(&bt);
    genie_tensor_release(&wt);
    genie_tensor_release(&xc);
    return st;
}

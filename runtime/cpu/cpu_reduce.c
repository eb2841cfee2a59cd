/*
 * Reductions: sum.dim_IntList, mean.dim, argmax, max.dim, all, any, and the
 * scan cumsum.
 *
 * A reduction is planned once: the input's dims are split into kept dims (one
 * output element per index, in order, which is exactly the contiguous output's
 * layout with or without keepdim) and reduced dims, which are merged where
 * contiguous so that reducing the last dim of a contiguous tensor is a single
 * unit-stride row.  Sums accumulate chunks of f32 in vectorised f32 and the
 * chunks in f64 (ATen accumulates floats in double on CPU for cumsum, and its
 * cascade sum is similarly accurate); integer sums are exact i64.  argmax and
 * max.dim return the first index of the maximum, and NaN counts as the
 * maximum (first NaN wins), as in ATen.
 *
 * Legend: n_out = output elements, rows/len = the reduced elements of one
 * output seen as rows of `len` with stride `rstride`.
 */
#include "cpu_internal.h"

#include <math.h>
#include <string.h>

typedef struct red_plan {
    int     nk, nr;
    int64_t kshape[GENIE_MAX_DIMS], kstride[GENIE_MAX_DIMS];   /* (nk) */
    int64_t rshape[GENIE_MAX_DIMS], rstride[GENIE_MAX_DIMS];   /* (nr), merged */
    int64_t n_out;         /* product of kshape */
    int64_t n_red;         /* product of rshape */
    int64_t len, rows;     /* rshape[nr-1], n_red / len */
} red_plan_t;

static void plan_build(const genie_tensor_t *x, const uint8_t *reduce, red_plan_t *p)
{
    memset(p, 0, sizeof(*p));
    p->n_out = 1;
    p->n_red = 1;
    for (int d = 0; d < x->ndim; d++) {
        if (!reduce[d]) {
            p->kshape[p->nk] = x->shape[d];
            p->kstride[p->nk] = x->strides[d];
            p->nk++;
            p->n_out *= x->shape[d];
            continue;
        }
        p->n_red *= x->shape[d];
        if (x->shape[d] == 1) {
            continue;
        }
        if (p->nr > 0 && p->rstride[p->nr - 1] == x->strides[d] * x->shape[d]) {
            p->rshape[p->nr - 1] *= x->shape[d];
            p->rstride[p->nr - 1] = x->strides[d];
            continue;
        }
        p->rshape[p->nr] = x->shape[d];
        p->rstride[p->nr] = x->strides[d];
        p->nr++;
    }
    if (p->nr == 0) {
        p->rshape[0] = 1;
        p->rstride[0] = 1;
        p->nr = 1;
    }
    p->len = p->rshape[p->nr - 1];
    p->rows = p->len > 0 ? p->n_red / p->len : 0;
}

/* Element offset of output o's first reduced element. */
static int64_t plan_base(const red_plan_t *p, const genie_tensor_t *x, int64_t o)
{
    int64_t off = x->offset;

    for (int k = p->nk - 1; k >= 0; k--) {
        off += (o % p->kshape[k]) * p->kstride[k];
        o /= p->kshape[k];
    }
    return off;
}

/* Element offset of reduced row r relative to the output's base. */
static int64_t plan_row(const red_plan_t *p, int64_t r)
{
    int64_t off = 0;

    for (int k = p->nr - 2; k >= 0; k--) {
        off += (r % p->rshape[k]) * p->rstride[k];
        r /= p->rshape[k];
    }
    return off;
}

/* Parse the `dim` attribute list (NONE or [] = all dims) into a mask. */
static genie_status_t parse_dims(const genie_op_call_t *c, uint32_t idx, int ndim,
                                 uint8_t *reduce)
{
    const int64_t *dims;
    uint32_t n = 0;
    int present, d;
    genie_status_t st;

    memset(reduce, 0, GENIE_MAX_DIMS);
    st = genie_srg_attr_ints_opt(c->node, idx, &dims, &n, &present);
    if (st != GENIE_OK) {
        return st;
    }
    if (!present || n == 0) {
        memset(reduce, 1, (size_t)ndim);
        return GENIE_OK;
    }
    for (uint32_t i = 0; i < n; i++) {
        st = genie_cpu_wrap_dim(c, dims[i], ndim, &d);
        if (st != GENIE_OK) {
            return st;
        }
        if (ndim == 0) {
            continue;
        }
        if (reduce[d]) {
            return genie_set_error(GENIE_ERR_INVALID, "%s: dim %d appears twice",
                                   genie_cpu_opname(c), d);
        }
        reduce[d] = 1;
    }
    return GENIE_OK;
}

static genie_status_t check_out_numel(const genie_op_call_t *c, uint32_t k, int64_t n)
{
    if (genie_tensor_numel(&c->out[k]) != n) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: output %u has %lld elements, "
                               "expected %lld", genie_cpu_opname(c), k,
                               (long long)genie_tensor_numel(&c->out[k]), (long long)n);
    }
    return GENIE_OK;
}

/* ---- sum / mean ---------------------------------------------------------------- */

CPU_MULTIVERSION
static float sum_f32(const float *x, int64_t n)
{
    float s = 0.0f;

    CPU_SIMD_SUM(s)
    for (int64_t i = 0; i < n; i++) {
        s += x[i];
    }
    return s;
}

/* Sum of output o's reduced elements, float inputs. */
static double reduce_sum_f(const red_plan_t *p, const genie_tensor_t *x, const char *xb,
                           size_t es, int64_t o)
{
    int64_t base = plan_base(p, x, o), st = p->rstride[p->nr - 1];
    double acc = 0.0;
    float buf[CPU_CHUNK];

    for (int64_t r = 0; r < p->rows; r++) {
        int64_t roff = base + plan_row(p, r);
        for (int64_t j = 0; j < p->len; j += CPU_CHUNK) {
            int64_t n = p->len - j < CPU_CHUNK ? p->len - j : CPU_CHUNK;
            const char *src = xb + (size_t)(roff + j * st) * es;
            if (x->dtype == GENIE_F32 && st == 1) {
                acc += sum_f32((const float *)src, n);
            } else {
                genie_cpu_load_f32(src, x->dtype, st, n, buf);
                acc += sum_f32(buf, n);
            }
        }
    }
    return acc;
}

static int64_t reduce_sum_i(const red_plan_t *p, const genie_tensor_t *x, const char *xb,
                            int64_t o)
{
    int64_t base = plan_base(p, x, o), st = p->rstride[p->nr - 1];
    uint64_t acc = 0;

    for (int64_t r = 0; r < p->rows; r++) {
        int64_t roff = base + plan_row(p, r);
        for (int64_t j = 0; j < p->len; j++) {
            acc += (uint64_t)genie_cpu_get_i64(xb, x->dtype, roff + j * st);
        }
    }
    return (int64_t)acc;
}

/* dims_attr: index of the `dim` attribute, or -1 for the overloads without
 * one (sum.default, mean.default), which reduce every dimension. */
static genie_status_t sum_run(const genie_op_call_t *c, int mean, int dims_attr)
{
    const genie_tensor_t *x;
    genie_tensor_t *out = &c->out[0];
    uint8_t reduce[GENIE_MAX_DIMS];
    red_plan_t p;
    int as_float;
    genie_status_t st;

    st = genie_cpu_check_call(c, 1, 1, 1);
    if (st == GENIE_OK && dims_attr >= 0) {
        st = parse_dims(c, (uint32_t)dims_attr, c->in[0]->ndim, reduce);
    } else if (st == GENIE_OK) {
        memset(reduce, 1, GENIE_MAX_DIMS);
    }
    if (st != GENIE_OK) {
        return st;
    }
    x = c->in[0];
    plan_build(x, reduce, &p);
    st = check_out_numel(c, 0, p.n_out);
    if (st != GENIE_OK) {
        return st;
    }
    as_float = genie_dtype_is_float(out->dtype);
    if (mean && !as_float) {
        return genie_set_error(GENIE_ERR_DTYPE, "%s: mean needs a floating output, got %s",
                               genie_cpu_opname(c), genie_dtype_name(out->dtype));
    }
    {
        const char *xb = x->storage->data;
        char *ob = genie_tensor_data(out);
        size_t es = genie_dtype_size(x->dtype);
        int in_float = genie_dtype_is_float(x->dtype);
#ifdef _OPENMP
#pragma omp parallel for num_threads(genie_cpu_threads(c)) \
        if (p.n_out > 1 && p.n_out * p.n_red >= CPU_PAR_GRAIN)
#endif
        for (int64_t o = 0; o < p.n_out; o++) {
            if (as_float) {
                double v = in_float ? reduce_sum_f(&p, x, xb, es, o)
                                    : (double)reduce_sum_i(&p, x, xb, o);
                float f = (float)(mean ? v / (double)p.n_red : v);
                genie_cpu_store_f32(&f, 1, ob + (size_t)o * genie_dtype_size(out->dtype),
                                    out->dtype, 1);
            } else {
                int64_t v = reduce_sum_i(&p, x, xb, o);
                genie_cpu_store_i64(&v, 1, ob + (size_t)o * genie_dtype_size(out->dtype),
                                    out->dtype, 1);
            }
        }
    }
    return GENIE_OK;
}

/* sum.dim_IntList(self, dim[]?, keepdim, *, dtype?) */
genie_status_t genie_cpu_op_sum_dim(const genie_op_call_t *c) { return sum_run(c, 0, 0); }
/* mean.dim(self, dim[]?, keepdim, *, dtype?) */
genie_status_t genie_cpu_op_mean_dim(const genie_op_call_t *c) { return sum_run(c, 1, 0); }
/* sum.default(self, *, dtype?) and mean.default(self, *, dtype?): all dims */
genie_status_t genie_cpu_op_sum(const genie_op_call_t *c) { return sum_run(c, 0, -1); }
genie_status_t genie_cpu_op_mean(const genie_op_call_t *c) { return sum_run(c, 1, -1); }

/* ---- argmax / max.dim ---------------------------------------------------------------- */

/* Index (in reduced row-major order) and value of output o's maximum. */
static void reduce_argmax(const red_plan_t *p, const genie_tensor_t *x, const char *xb,
                          int64_t o, int64_t *idx_p, double *val_p, int64_t *ival_p)
{
    int64_t base = plan_base(p, x, o), st = p->rstride[p->nr - 1], best = 0;

    if (genie_dtype_is_float(x->dtype)) {
        float bv = 0.0f;
        int first = 1;
        for (int64_t r = 0; r < p->rows; r++) {
            int64_t roff = base + plan_row(p, r);
            for (int64_t j = 0; j < p->len; j++) {
                float v = genie_cpu_get_f32(xb, x->dtype, roff + j * st);
                /* Once a NaN is chosen it stays: the first NaN is the answer. */
                if (first || (bv == bv && (v != v || v > bv))) {
                    bv = v;
                    best = r * p->len + j;
                    first = 0;
                }
            }
        }
        *val_p = bv;
        *ival_p = 0;
    } else {
        int64_t bv = INT64_MIN;
        int first = 1;
        for (int64_t r = 0; r < p->rows; r++) {
            int64_t roff = base + plan_row(p, r);
            for (int64_t j = 0; j < p->len; j++) {
                int64_t v = genie_cpu_get_i64(xb, x->dtype, roff + j * st);
                if (first || v > bv) {
                    bv = v;
                    best = r * p->len + j;
                    first = 0;
                }
            }
        }
        *val_p = (double)bv;
        *ival_p = bv;
    }
    *idx_p = best;
}

/* Shared by argmax (dim? , keepdim) and max.dim (dim, keepdim). */
static genie_status_t argmax_run(const genie_op_call_t *c, int with_values)
{
    const genie_tensor_t *x;
    uint8_t reduce[GENIE_MAX_DIMS] = { 0 };
    red_plan_t p;
    int64_t dim;
    int present = 1, d;
    genie_status_t st;

    st = genie_cpu_check_call(c, 1, 1, with_values ? 2 : 1);
    if (st != GENIE_OK) {
        return st;
    }
    x = c->in[0];
    st = with_values ? genie_srg_attr_int(c->node, 0, &dim)
                     : genie_srg_attr_int_opt(c->node, 0, &dim, &present);
    if (st != GENIE_OK) {
        return st;
    }
    if (present) {
        st = genie_cpu_wrap_dim(c, dim, x->ndim, &d);
        if (st != GENIE_OK) {
            return st;
        }
        if (x->ndim > 0) {
            reduce[d] = 1;
        }
    } else {
        memset(reduce, 1, (size_t)x->ndim);
    }
    plan_build(x, reduce, &p);
    if (p.n_red == 0) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: cannot reduce over zero elements",
                               genie_cpu_opname(c));
    }
    st = check_out_numel(c, 0, p.n_out);
    if (st == GENIE_OK && with_values) {
        st = check_out_numel(c, 1, p.n_out);
    }
    if (st != GENIE_OK) {
        return st;
    }
    {
        genie_tensor_t *oi = &c->out[with_values ? 1 : 0];
        genie_tensor_t *ov = with_values ? &c->out[0] : NULL;
        const char *xb = x->storage->data;

        if (oi->dtype != GENIE_I64) {
            return genie_set_error(GENIE_ERR_DTYPE, "%s: indices output must be int64",
                                   genie_cpu_opname(c));
        }
        if (ov != NULL && ov->dtype != x->dtype) {
            return genie_set_error(GENIE_ERR_DTYPE, "%s: values output must be %s",
                                   genie_cpu_opname(c), genie_dtype_name(x->dtype));
        }
#ifdef _OPENMP
#pragma omp parallel for num_threads(genie_cpu_threads(c)) \
        if (p.n_out > 1 && p.n_out * p.n_red >= CPU_PAR_GRAIN)
#endif
        for (int64_t o = 0; o < p.n_out; o++) {
            int64_t idx, iv;
            double v;
            reduce_argmax(&p, x, xb, o, &idx, &v, &iv);
            ((int64_t *)genie_tensor_data(oi))[o] = idx;
            if (ov != NULL) {
                char *vb = genie_tensor_data(ov);
                if (genie_dtype_is_float(ov->dtype)) {
                    genie_store_from_f64(vb, ov->dtype, o, v);
                } else {
                    genie_cpu_store_i64(&iv, 1, vb + (size_t)o * genie_dtype_size(ov->dtype),
                                        ov->dtype, 1);
                }
            }
        }
    }
    return GENIE_OK;
}

/* argmax(self, dim?, keepdim): dim NONE = index into the flattened tensor. */
genie_status_t genie_cpu_op_argmax(const genie_op_call_t *c) { return argmax_run(c, 0); }
/* max.dim(self, dim, keepdim) -> (values, indices) */
genie_status_t genie_cpu_op_max_dim(const genie_op_call_t *c) { return argmax_run(c, 1); }

/* ---- all / any ------------------------------------------------------------------- */

static genie_status_t allany_run(const genie_op_call_t *c, int want_all)
{
    const genie_tensor_t *x;
    uint8_t reduce[GENIE_MAX_DIMS];
    red_plan_t p;
    int result = want_all;
    genie_status_t st;

    st = genie_cpu_check_call(c, 1, 1, 1);
    if (st == GENIE_OK) {
        st = check_out_numel(c, 0, 1);
    }
    if (st != GENIE_OK) {
        return st;
    }
    x = c->in[0];
    memset(reduce, 1, sizeof(reduce));
    plan_build(x, reduce, &p);
    {
        const char *xb = x->storage->data;
        int64_t st_in = p.rstride[p.nr - 1];
        int is_float = genie_dtype_is_float(x->dtype);
        for (int64_t r = 0; r < p.rows && result == want_all; r++) {
            int64_t roff = x->offset + plan_row(&p, r);
            for (int64_t j = 0; j < p.len; j++) {
                int nz = is_float ? genie_cpu_get_f32(xb, x->dtype, roff + j * st_in) != 0.0f
                                  : genie_cpu_get_i64(xb, x->dtype, roff + j * st_in) != 0;
                if (nz != want_all) {
                    result = !want_all;
                    break;
                }
            }
        }
    }
    {
        int64_t v = result;
        genie_cpu_store_i64(&v, 1, genie_tensor_data(&c->out[0]), c->out[0].dtype, 1);
    }
    return GENIE_OK;
}

genie_status_t genie_cpu_op_all(const genie_op_call_t *c) { return allany_run(c, 1); }
genie_status_t genie_cpu_op_any(const genie_op_call_t *c) { return allany_run(c, 0); }

/* ---- cumsum ------------------------------------------------------------------------ */

/* cumsum(self, dim, *, dtype?): out (self.shape) in the output dtype; floats
 * accumulate in f64, integers in i64. */
genie_status_t genie_cpu_op_cumsum(const genie_op_call_t *c)
{
    const genie_tensor_t *x;
    genie_tensor_t *out = &c->out[0];
    uint8_t reduce[GENIE_MAX_DIMS] = { 0 };
    red_plan_t p;
    int64_t dim;
    int d;
    genie_status_t st;

    st = genie_cpu_check_call(c, 1, 1, 1);
    if (st == GENIE_OK) {
        st = genie_srg_attr_int(c->node, 0, &dim);
    }
    if (st == GENIE_OK) {
        st = genie_cpu_wrap_dim(c, dim, c->in[0]->ndim, &d);
    }
    if (st == GENIE_OK) {
        st = genie_cpu_check_same_shape(c, "input/output", c->in[0], out);
    }
    if (st != GENIE_OK) {
        return st;
    }
    x = c->in[0];
    if (x->ndim > 0) {
        reduce[d] = 1;
    }
    plan_build(x, reduce, &p);
    {
        const char *xb = x->storage->data;
        char *ob = genie_tensor_data(out);
        int64_t L = x->ndim > 0 ? x->shape[d] : 1, inner = 1;
        int64_t xst = x->ndim > 0 ? x->strides[d] : 0;
        int as_float = genie_dtype_is_float(out->dtype);
        size_t oes = genie_dtype_size(out->dtype);

        for (int k = d + 1; k < x->ndim; k++) {
            inner *= x->shape[k];
        }
        /* Output o of the plan is the line with kept index o; in the
         * contiguous output it starts at (o / inner) * L * inner + o % inner. */
        for (int64_t o = 0; o < p.n_out; o++) {
            int64_t xoff = plan_base(&p, x, o);
            int64_t ooff = (o / inner) * L * inner + o % inner;
            double facc = 0.0;
            uint64_t iacc = 0;
            for (int64_t j = 0; j < L; j++) {
                size_t oe = (size_t)(ooff + j * inner);
                if (as_float) {
                    float f;
                    facc += genie_load_as_f64(xb, x->dtype, xoff + j * xst);
                    f = (float)facc;
                    genie_cpu_store_f32(&f, 1, ob + oe * oes, out->dtype, 1);
                } else {
                    int64_t v;
                    iacc += (uint64_t)genie_cpu_get_i64(xb, x->dtype, xoff + j * xst);
                    v = (int64_t)iacc;
                    genie_cpu_store_i64(&v, 1, ob + oe * oes, out->dtype, 1);
                }
            }
        }
    }
    return GENIE_OK;
}

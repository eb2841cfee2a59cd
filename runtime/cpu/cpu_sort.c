/*
 * sort.default(self, dim, descending) and sort.stable(self, *, stable, dim,
 * descending) -> (values, indices).
 *
 * Every line along dim is sorted with a bottom-up merge sort on (value,
 * position) items, so the result is always the stable order: equal values
 * keep their original order, ascending or descending.  That is what ATen's CPU
 * kernel produces for both overloads (its "unstable" sort is stable too), and
 * a single order keeps the two overloads and every thread count identical.
 * NaN ranks above every number (last ascending, first descending) and -0.0
 * equals 0.0, as in ATen.  Values are copied as raw elements, so every dtype
 * comes back bit-exact.  Lines are independent and run in parallel.
 *
 * Legend: L = line length along dim, outer/inner = products of the dims
 * before/after it.
 */
#include "cpu_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct sort_item {
    double  f;       /* value of a floating input (exact for f32/f16/bf16) */
    int64_t i;       /* value of an integer or bool input */
    int64_t idx;     /* position along dim */
} sort_item_t;

/* Does a go strictly before b (ignoring position)?  NaN is the largest. */
static int sort_before(int is_float, int descending, const sort_item_t *a,
                       const sort_item_t *b)
{
    if (is_float) {
        int an = a->f != a->f, bn = b->f != b->f;
        if (an || bn) {
            return descending ? an && !bn : bn && !an;
        }
        return descending ? a->f > b->f : a->f < b->f;
    }
    return descending ? a->i > b->i : a->i < b->i;
}

/* Stable bottom-up merge sort of v (n items) using tmp (n items); the result
 * ends in v. */
static void sort_items(int is_float, int descending, sort_item_t *v, sort_item_t *tmp,
                       int64_t n)
{
    sort_item_t *src = v, *dst = tmp;

    for (int64_t w = 1; w < n; w *= 2) {
        for (int64_t lo = 0; lo < n; lo += 2 * w) {
            int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            int64_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                /* Take from the right run only when strictly before: stable. */
                if (sort_before(is_float, descending, &src[j], &src[i])) {
                    dst[k++] = src[j++];
                } else {
                    dst[k++] = src[i++];
                }
            }
            while (i < mid) {
                dst[k++] = src[i++];
            }
            while (j < hi) {
                dst[k++] = src[j++];
            }
        }
        sort_item_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != v) {
        memcpy(v, src, (size_t)n * sizeof(*v));
    }
}

/* attrs: dim at dim_attr, descending at dim_attr + 1. */
static genie_status_t sort_run(const genie_op_call_t *c, uint32_t dim_attr)
{
    const genie_tensor_t *x;
    genie_tensor_t *ov = &c->out[0], *oi = &c->out[1];
    int64_t dim, L, outer = 1, inner = 1, lines;
    int descending, d, fail = 0, is_float;
    size_t es;
    genie_status_t st;

    st = genie_cpu_check_call(c, 1, 1, 2);
    if (st == GENIE_OK) {
        st = genie_srg_attr_int(c->node, dim_attr, &dim);
    }
    if (st == GENIE_OK) {
        st = genie_srg_attr_bool(c->node, dim_attr + 1, &descending);
    }
    if (st == GENIE_OK) {
        st = genie_cpu_wrap_dim(c, dim, c->in[0]->ndim, &d);
    }
    if (st == GENIE_OK) {
        st = genie_cpu_check_same_shape(c, "input/values", c->in[0], ov);
    }
    if (st == GENIE_OK) {
        st = genie_cpu_check_same_shape(c, "input/indices", c->in[0], oi);
    }
    if (st != GENIE_OK) {
        return st;
    }
    x = c->in[0];
    if (ov->dtype != x->dtype || oi->dtype != GENIE_I64) {
        return genie_set_error(GENIE_ERR_DTYPE, "%s: outputs must be (%s, int64)",
                               genie_cpu_opname(c), genie_dtype_name(x->dtype));
    }
    L = x->ndim > 0 ? x->shape[d] : 1;
    for (int q = 0; q < x->ndim; q++) {
        if (q < d) {
            outer *= x->shape[q];
        } else if (q > d) {
            inner *= x->shape[q];
        }
    }
    lines = outer * inner;
    if (lines * L == 0) {
        return GENIE_OK;
    }
    is_float = genie_dtype_is_float(x->dtype);
    es = genie_dtype_size(x->dtype);
    {
        const char *xb = x->storage->data;
        char *vb = genie_tensor_data(ov);
        int64_t *ib = genie_tensor_data(oi);
        int64_t xs = x->ndim > 0 ? x->strides[d] : 0;

#ifdef _OPENMP
#pragma omp parallel num_threads(genie_cpu_threads(c)) if (lines > 1 && lines * L >= CPU_PAR_GRAIN)
#endif
        {
            sort_item_t *v = malloc((size_t)L * 2 * sizeof(*v));
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (int64_t line = 0; line < lines; line++) {
                int64_t o = line / inner, in = line % inner, xoff = x->offset;
                int64_t obase = o * L * inner + in, rest = line;
                if (v == NULL) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
                    fail = 1;
                    continue;
                }
                /* Offset of the line's first element in the (strided) input. */
                for (int q = x->ndim - 1; q >= 0; q--) {
                    if (q == d) {
                        continue;
                    }
                    xoff += (rest % x->shape[q]) * x->strides[q];
                    rest /= x->shape[q];
                }
                for (int64_t j = 0; j < L; j++) {
                    v[j].idx = j;
                    if (is_float) {
                        v[j].f = genie_load_as_f64(xb, x->dtype, xoff + j * xs);
                    } else {
                        v[j].i = genie_cpu_get_i64(xb, x->dtype, xoff + j * xs);
                    }
                }
                sort_items(is_float, descending, v, v + L, L);
                for (int64_t j = 0; j < L; j++) {
                    size_t oe = (size_t)(obase + j * inner);
                    ib[oe] = v[j].idx;
                    memcpy(vb + oe * es, xb + (size_t)(xoff + v[j].idx * xs) * es, es);
                }
            }
            free(v);
        }
    }
    if (fail) {
        return genie_set_error(GENIE_ERR_NOMEM, "%s: out of memory for a line of %lld",
                               genie_cpu_opname(c), (long long)L);
    }
    return GENIE_OK;
}

/* sort.default(self, dim=-1, descending=False) */
genie_status_t genie_cpu_op_sort(const genie_op_call_t *c) { return sort_run(c, 0); }

/* sort.stable(self, *, stable, dim=-1, descending=False): attr 0 is `stable`
 * (NONE, true or false); the order is stable either way. */
genie_status_t genie_cpu_op_sort_stable(const genie_op_call_t *c) { return sort_run(c, 1); }

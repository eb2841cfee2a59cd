/*
 * topk(self, k, dim, largest, sorted) -> (values, indices).
 *
 * Each line along dim keeps its k best elements in a binary heap whose root
 * is the worst of them (O(L log k), which matters for top-k sampling over a
 * 50k vocabulary), then sorts those k.  The order is total and deterministic:
 * NaN ranks above every number (as in ATen), and equal values are ordered by
 * lower index first, which is what PyTorch's CPU kernel produces for the
 * sorted case.  Results are always returned sorted, also for sorted=False
 * (ATen leaves that order unspecified).
 *
 * Legend: L = line length along dim, outer/inner = products of the dims
 * before/after it.
 */
#include "cpu_internal.h"

#include <stdlib.h>

typedef struct tk_item {
    double  f;       /* value of a floating input (exact for f32/f16/bf16) */
    int64_t i;       /* value of an integer input */
    int64_t idx;     /* position along dim */
} tk_item_t;

typedef struct tk_order {
    int is_float;
    int largest;
} tk_order_t;

/* Does a rank before b? */
static int tk_better(const tk_order_t *o, const tk_item_t *a, const tk_item_t *b)
{
    if (o->is_float) {
        int an = a->f != a->f, bn = b->f != b->f;
        if (an != bn) {
            return o->largest ? an : bn;       /* NaN is the largest value */
        }
        if (!an && a->f != b->f) {
            return o->largest ? a->f > b->f : a->f < b->f;
        }
    } else if (a->i != b->i) {
        return o->largest ? a->i > b->i : a->i < b->i;
    }
    return a->idx < b->idx;
}

/* Min-heap on "better": the root is the worst kept item. */
static void tk_sift_down(const tk_order_t *o, tk_item_t *h, int64_t n, int64_t i)
{
    for (;;) {
        int64_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && tk_better(o, &h[w], &h[l])) {
            w = l;
        }
        if (r < n && tk_better(o, &h[w], &h[r])) {
            w = r;
        }
        if (w == i) {
            return;
        }
        tk_item_t t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

static void tk_sift_up(const tk_order_t *o, tk_item_t *h, int64_t i)
{
    while (i > 0) {
        int64_t p = (i - 1) / 2;
        if (!tk_better(o, &h[p], &h[i])) {
            return;
        }
        tk_item_t t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

/* genie_op_call_t -> line loop.  h has room for k items. */
static void tk_line(const tk_order_t *o, const char *xb, genie_dtype_t dt, int64_t L,
                    int64_t stride, int64_t k, tk_item_t *h)
{
    int64_t n = 0;

    for (int64_t j = 0; j < L; j++) {
        tk_item_t it = { .idx = j };
        if (o->is_float) {
            it.f = genie_cpu_get_f32(xb, dt, j * stride);
        } else {
            it.i = genie_cpu_get_i64(xb, dt, j * stride);
        }
        if (n < k) {
            h[n] = it;
            tk_sift_up(o, h, n++);
        } else if (k > 0 && tk_better(o, &it, &h[0])) {
            h[0] = it;
            tk_sift_down(o, h, k, 0);
        }
    }
    /* Heap sort: repeatedly move the worst to the end -> best first. */
    for (int64_t end = n - 1; end > 0; end--) {
        tk_item_t t = h[0];
        h[0] = h[end];
        h[end] = t;
        tk_sift_down(o, h, end, 0);
    }
}

genie_status_t genie_cpu_op_topk(const genie_op_call_t *c)
{
    const genie_tensor_t *x;
    genie_tensor_t xc = { 0 }, *ov = &c->out[0], *oi = &c->out[1];
    int64_t k, dim, L, outer = 1, inner = 1;
    int largest, sorted, d, fail = 0;
    tk_order_t ord;
    genie_status_t st;

    st = genie_cpu_check_call(c, 1, 1, 2);
    if (st == GENIE_OK) {
        st = genie_srg_attr_int(c->node, 0, &k);
    }
    if (st == GENIE_OK) {
        st = genie_srg_attr_int(c->node, 1, &dim);
    }
    if (st == GENIE_OK) {
        st = genie_srg_attr_bool(c->node, 2, &largest);
    }
    if (st == GENIE_OK) {
        st = genie_srg_attr_bool(c->node, 3, &sorted);
    }
    if (st == GENIE_OK) {
        st = genie_cpu_wrap_dim(c, dim, c->in[0]->ndim, &d);
    }
    if (st != GENIE_OK) {
        return st;
    }
    (void)sorted;      /* results are always sorted: a valid order for sorted=False too */
    x = c->in[0];
    L = x->ndim > 0 ? x->shape[d] : 1;
    if (k < 0 || k > L) {
        return genie_set_error(GENIE_ERR_INVALID, "%s: k = %lld out of range for extent %lld",
                               genie_cpu_opname(c), (long long)k, (long long)L);
    }
    for (int q = 0; q < x->ndim; q++) {
        if (q < d) {
            outer *= x->shape[q];
        } else if (q > d) {
            inner *= x->shape[q];
        }
    }
    if (genie_tensor_numel(ov) != outer * k * inner || genie_tensor_numel(oi) != outer * k * inner) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: outputs must have %lld elements",
                               genie_cpu_opname(c), (long long)(outer * k * inner));
    }
    if (oi->dtype != GENIE_I64 || ov->dtype != x->dtype) {
        return genie_set_error(GENIE_ERR_DTYPE, "%s: outputs must be (%s, int64)",
                               genie_cpu_opname(c), genie_dtype_name(x->dtype));
    }
    if (outer * k * inner == 0) {
        return GENIE_OK;
    }
    st = genie_cpu_contiguous(c, x, genie_cpu_threads(c), &xc);
    if (st != GENIE_OK) {
        return st;
    }
    ord.is_float = genie_dtype_is_float(x->dtype);
    ord.largest = largest;
    {
        const char *xb = genie_tensor_data(&xc);
        char *vb = genie_tensor_data(ov);
        int64_t *ib = genie_tensor_data(oi);
        size_t es = genie_dtype_size(x->dtype);
        int64_t lines = outer * inner;

#ifdef _OPENMP
#pragma omp parallel num_threads(genie_cpu_threads(c)) if (lines > 1 && lines * L >= CPU_PAR_GRAIN)
#endif
        {
            tk_item_t *h = malloc((size_t)k * sizeof(*h));
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (int64_t line = 0; line < lines; line++) {
                int64_t o = line / inner, i = line % inner;
                int64_t obase = o * k * inner + i;
                if (h == NULL) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
                    fail = 1;
                    continue;
                }
                tk_line(&ord, xb + (size_t)(o * L * inner + i) * es, x->dtype, L, inner, k, h);
                for (int64_t j = 0; j < k; j++) {
                    size_t oe = (size_t)(obase + j * inner);
                    ib[oe] = h[j].idx;
                    /* Copy the element itself: exact for every dtype. */
                    for (size_t b = 0; b < es; b++) {
                        vb[oe * es + b] = xb[(size_t)(o * L * inner + i + h[j].idx * inner) * es + b];
                    }
                }
            }
            free(h);
        }
    }
    genie_tensor_release(&xc);
    if (fail) {
        return genie_set_error(GENIE_ERR_NOMEM, "%s: out of memory for the heap",
                               genie_cpu_opname(c));
    }
    return GENIE_OK;
}

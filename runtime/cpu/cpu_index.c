/*
 * Indexing ops: embedding, gather, index_select, advanced indexing
 * (index.Tensor) and its scatter twin index_put.  Every index value is bounds-checked before any element is
 * read, and a bad one is reported with its value and the extent it exceeds;
 * the checks are what stand between a wrong token id in a request and a read
 * outside the weight.  Copies move whole rows with memcpy where the source row
 * is contiguous (embedding, index_select along dim 0 of a KV cache).
 *
 * Legend: V = vocabulary rows, C = embedding width, N = number of indices.
 */
#include "cpu_internal.h"

#include <stdlib.h>
#include <string.h>

static genie_status_t check_index_dtype(const genie_op_call_t *c, const genie_tensor_t *t)
{
    if (t->dtype != GENIE_I64 && t->dtype != GENIE_I32) {
        return genie_set_error(GENIE_ERR_DTYPE, "%s: indices must be int64 or int32, got %s",
                               genie_cpu_opname(c), genie_dtype_name(t->dtype));
    }
    return GENIE_OK;
}

static genie_status_t check_out_dtype(const genie_op_call_t *c, const genie_tensor_t *src)
{
    if (c->out[0].dtype != src->dtype) {
        return genie_set_error(GENIE_ERR_DTYPE, "%s: output is %s but source is %s",
                               genie_cpu_opname(c), genie_dtype_name(c->out[0].dtype),
                               genie_dtype_name(src->dtype));
    }
    return GENIE_OK;
}

/* Contiguous copy of an index tensor, read back as int64 values (N). */
static genie_status_t load_indices(const genie_op_call_t *c, const genie_tensor_t *idx,
                                   int64_t **vals_p, int64_t *n_p)
{
    genie_tensor_t tmp;
    int64_t n = genie_tensor_numel(idx);
    int64_t *vals;
    genie_status_t st;

    vals = malloc((size_t)(n > 0 ? n : 1) * sizeof(int64_t));
    if (vals == NULL) {
        return genie_set_error(GENIE_ERR_NOMEM, "%s: out of memory for %lld indices",
                               genie_cpu_opname(c), (long long)n);
    }
    st = genie_cpu_contiguous(c, idx, 1, &tmp);
    if (st != GENIE_OK) {
        free(vals);
        return st;
    }
    genie_cpu_load_i64(genie_tensor_data(&tmp), tmp.dtype, 1, n, vals);
    genie_tensor_release(&tmp);
    *vals_p = vals;
    *n_p = n;
    return GENIE_OK;
}

/* Every value in [lo, size) (lo = -size when negative indices wrap, else 0);
 * negative ones are wrapped in place. */
static genie_status_t check_bounds(const genie_op_call_t *c, int64_t *vals, int64_t n,
                                   int64_t size, int allow_negative, int dim)
{
    for (int64_t i = 0; i < n; i++) {
        int64_t v = vals[i];
        if (v >= size || v < (allow_negative ? -size : 0)) {
            return genie_set_error(GENIE_ERR_INVALID, "%s: index %lld is out of bounds for "
                                   "dim %d with size %lld", genie_cpu_opname(c),
                                   (long long)v, dim, (long long)size);
        }
        if (v < 0) {
            vals[i] = v + size;
        }
    }
    return GENIE_OK;
}

/* Copy `n` elements of size es from src (stride ss elements) to dst (stride 1). */
static void copy_row(char *dst, const char *src, int64_t n, int64_t ss, size_t es)
{
    if (ss == 1) {
        memcpy(dst, src, (size_t)n * es);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        memcpy(dst + (size_t)i * es, src + (size_t)(i * ss) * es, es);
    }
}

/* ---- embedding ---------------------------------------------------------------- */

/* embedding(weight (V, C), indices (*), padding_idx, scale_grad_by_freq,
 * sparse): out (*, C) = weight[indices]. */
genie_status_t genie_cpu_op_embedding(const genie_op_call_t *c)
{
    const genie_tensor_t *w, *idx;
    genie_tensor_t *out = &c->out[0];
    int64_t *vals = NULL, n, C;
    size_t es;
    const char *wbase;
    char *obase;
    genie_status_t st;

    st = genie_cpu_check_call(c, 2, 2, 1);
    if (st != GENIE_OK) {
        return st;
    }
    w = c->in[0];
    idx = c->in[1];
    if (w->ndim != 2) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: weight must be 2-d, got %d dims",
                               genie_cpu_opname(c), w->ndim);
    }
    st = check_index_dtype(c, idx);
    if (st == GENIE_OK) {
        st = check_out_dtype(c, w);
    }
    if (st != GENIE_OK) {
        return st;
    }
    C = w->shape[1];
    if (out->ndim != idx->ndim + 1 || out->shape[idx->ndim] != C) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: output must be indices.shape + (%lld)",
                               genie_cpu_opname(c), (long long)C);
    }
    for (int d = 0; d < idx->ndim; d++) {
        if (out->shape[d] != idx->shape[d]) {
            return genie_set_error(GENIE_ERR_SHAPE, "%s: output must be indices.shape + (%lld)",
                                   genie_cpu_opname(c), (long long)C);
        }
    }
    st = load_indices(c, idx, &vals, &n);
    if (st != GENIE_OK) {
        return st;
    }
    st = check_bounds(c, vals, n, w->shape[0], 0, 0);
    if (st != GENIE_OK) {
        goto out_free;
    }
    es = genie_dtype_size(w->dtype);
    wbase = genie_tensor_data(w);
    obase = genie_tensor_data(out);
#ifdef _OPENMP
#pragma omp parallel for num_threads(genie_cpu_threads(c)) if (n * C >= CPU_PAR_GRAIN)
#endif
    for (int64_t i = 0; i < n; i++) {
        copy_row(obase + (size_t)(i * C) * es, wbase + (size_t)(vals[i] * w->strides[0]) * es,
                 C, w->strides[1], es);
    }
out_free:
    free(vals);
    return st;
}

/* ---- index_select --------------------------------------------------------------- */

/* Arguments shared by index_select(self, dim, index) and
 * gather(self, dim, index, ...): two inputs, the dim attribute (wrapped), an
 * integer index tensor and an output of self's dtype. */
static genie_status_t dim_index_args(const genie_op_call_t *c, const genie_tensor_t **x_p,
                                     const genie_tensor_t **idx_p, int *d_p)
{
    int64_t dim;
    genie_status_t st;

    st = genie_cpu_check_call(c, 2, 2, 1);
    if (st == GENIE_OK) {
        st = genie_srg_attr_int(c->node, 0, &dim);
    }
    if (st == GENIE_OK) {
        st = genie_cpu_wrap_dim(c, dim, c->in[0]->ndim, d_p);
    }
    if (st == GENIE_OK) {
        st = check_index_dtype(c, c->in[1]);
    }
    if (st == GENIE_OK) {
        st = check_out_dtype(c, c->in[0]);
    }
    if (st == GENIE_OK) {
        *x_p = c->in[0];
        *idx_p = c->in[1];
    }
    return st;
}

/* index_select(self, dim, index (N) or scalar): out = self with dim replaced
 * by N, slice j of out along dim = slice index[j] of self. */
genie_status_t genie_cpu_op_index_select(const genie_op_call_t *c)
{
    const genie_tensor_t *x, *idx;
    genie_tensor_t *out = &c->out[0];
    int64_t *vals = NULL, n;
    int d;
    genie_status_t st;

    st = dim_index_args(c, &x, &idx, &d);
    if (st != GENIE_OK) {
        return st;
    }
    if (idx->ndim > 1) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: index must be 0-d or 1-d, got %d dims",
                               genie_cpu_opname(c), idx->ndim);
    }
    st = load_indices(c, idx, &vals, &n);
    if (st != GENIE_OK) {
        return st;
    }
    if (x->ndim == 0) {
        /* A 0-d source behaves as a 1-element vector. */
        st = check_bounds(c, vals, n, 1, 0, 0);
        if (st == GENIE_OK && genie_tensor_numel(out) != n) {
            st = genie_set_error(GENIE_ERR_SHAPE, "%s: output must have %lld elements",
                                 genie_cpu_opname(c), (long long)n);
        }
        for (int64_t j = 0; st == GENIE_OK && j < n; j++) {
            memcpy((char *)genie_tensor_data(out) + (size_t)j * genie_dtype_size(x->dtype),
                   genie_tensor_data(x), genie_dtype_size(x->dtype));
        }
        goto out_free;
    }
    st = check_bounds(c, vals, n, x->shape[d], 0, d);
    if (st != GENIE_OK) {
        goto out_free;
    }
    {
        genie_tensor_t want = *x;
        want.shape[d] = n;
        st = genie_cpu_check_same_shape(c, "expected/output", &want, out);
    }
    for (int64_t j = 0; st == GENIE_OK && j < n; j++) {
        genie_tensor_t src = *x, dst = *out;
        src.shape[d] = 1;
        src.offset = x->offset + vals[j] * x->strides[d];
        dst.shape[d] = 1;
        dst.offset = out->offset + j * out->strides[d];
        st = genie_cpu_copy(c, genie_cpu_threads(c), &src, &dst);
    }
out_free:
    free(vals);
    return st;
}

/* ---- gather -------------------------------------------------------------------- */

/* gather(self, dim, index, *, sparse_grad): out (index.shape);
 * out[i..][j][k..] = self[i..][index[i..][j][k..]][k..] along dim. */
genie_status_t genie_cpu_op_gather(const genie_op_call_t *c)
{
    const genie_tensor_t *x, *idx;
    genie_tensor_t *out = &c->out[0];
    int64_t *vals = NULL, n, pos[GENIE_MAX_DIMS] = { 0 };
    size_t es;
    int d, nd;
    const char *xb;
    char *ob;
    genie_status_t st;

    st = dim_index_args(c, &x, &idx, &d);
    if (st == GENIE_OK) {
        st = genie_cpu_check_same_shape(c, "index/output", idx, out);
    }
    if (st != GENIE_OK) {
        return st;
    }
    nd = x->ndim > 0 ? x->ndim : 1;
    if ((idx->ndim > 0 ? idx->ndim : 1) != nd) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: index has %d dims, self %d",
                               genie_cpu_opname(c), idx->ndim, x->ndim);
    }
    for (int k = 0; k < idx->ndim && x->ndim > 0; k++) {
        if (k != d && idx->shape[k] > x->shape[k]) {
            return genie_set_error(GENIE_ERR_SHAPE, "%s: index extent %lld exceeds self's %lld "
                                   "in dim %d", genie_cpu_opname(c), (long long)idx->shape[k],
                                   (long long)x->shape[k], k);
        }
    }
    st = load_indices(c, idx, &vals, &n);
    if (st != GENIE_OK) {
        return st;
    }
    st = check_bounds(c, vals, n, x->ndim > 0 ? x->shape[d] : 1, 0, d);
    if (st != GENIE_OK) {
        goto out_free;
    }
    es = genie_dtype_size(x->dtype);
    xb = genie_tensor_data(x);
    ob = genie_tensor_data(out);
    for (int64_t i = 0; i < n; i++) {
        int64_t off = 0;
        for (int k = 0; k < x->ndim; k++) {
            off += (k == d ? vals[i] : pos[k]) * x->strides[k];
        }
        memcpy(ob + (size_t)i * es, xb + (size_t)off * es, es);
        for (int k = idx->ndim - 1; k >= 0; k--) {
            if (++pos[k] < idx->shape[k]) {
                break;
            }
            pos[k] = 0;
        }
    }
out_free:
    free(vals);
    return st;
}

/* ---- index.Tensor ----------------------------------------------------------------- */

/* One self dim: either kept whole (idx == NULL) or indexed by an int64 tensor
 * broadcast to the common index shape B. */
typedef struct adv_dim {
    int64_t *vals;                        /* (numel of the index, contiguous) */
    int64_t  bstrides[GENIE_MAX_DIMS];    /* strides over B, 0 where broadcast */
    int      indexed;
} adv_dim_t;

/* Advanced indexing of x by idx[0..n_idx) (one slot per leading dim, NULL =
 * take the whole dim); a bool index covering k dims stands for its k
 * nonzero-coordinate vectors.  Index tensors broadcast to a shape B; the
 * result is B placed where the indexed dims were when they are adjacent, and
 * in front otherwise (NumPy rules).  Writes the result's shape (on_p dims,
 * oshape_p) and, for each result element in row-major order, the element
 * offset it names in a tensor of x's shape with strides `xstrides`
 * (*offs_p, malloc'd, *n_p entries).  Shared by index.Tensor (a gather) and
 * index_put (a scatter). */
static genie_status_t adv_offsets(const genie_op_call_t *c, const genie_tensor_t *x,
                                  const genie_tensor_t *const *idx, uint32_t n_idx,
                                  const int64_t *xstrides, int *on_p, int64_t *oshape_p,
                                  int64_t **offs_p, int64_t *n_p)
{
    adv_dim_t dims[GENIE_MAX_DIMS];
    genie_tensor_t vecs[GENIE_MAX_DIMS];      /* int64 index tensors, one per indexed dim */
    int n_vec = 0, xd = 0, nb = 0, first = -1, last = -1, adjacent = 1;
    int64_t bshape[GENIE_MAX_DIMS], oshape[GENIE_MAX_DIMS];
    int on = 0, bpos;
    genie_status_t st;

    memset(dims, 0, sizeof(dims));
    /* 1. Turn every index slot into int64 tensors, one per self dim. */
    for (uint32_t k = 0; k < n_idx; k++) {
        const genie_tensor_t *t = idx[k];
        if (t == NULL) {
            xd++;
            continue;
        }
        if (t->dtype == GENIE_BOOL) {
            int64_t nnz = 0, cnt = genie_tensor_numel(t), *pos;
            genie_tensor_t mask;
            const uint8_t *m;
            if (xd + t->ndim > x->ndim) {
                st = genie_set_error(GENIE_ERR_SHAPE, "%s: too many indices for a %d-d tensor",
                                     genie_cpu_opname(c), x->ndim);
                goto out_release;
            }
            for (int q = 0; q < t->ndim; q++) {
                if (t->shape[q] != x->shape[xd + q]) {
                    st = genie_set_error(GENIE_ERR_SHAPE, "%s: bool index extent %lld does not "
                                         "match self's %lld in dim %d", genie_cpu_opname(c),
                                         (long long)t->shape[q], (long long)x->shape[xd + q],
                                         xd + q);
                    goto out_release;
                }
            }
            st = genie_cpu_contiguous(c, t, 1, &mask);
            if (st != GENIE_OK) {
                goto out_release;
            }
            m = genie_tensor_data(&mask);
            for (int64_t i = 0; i < cnt; i++) {
                nnz += m[i] != 0;
            }
            for (int q = 0; q < t->ndim; q++) {
                st = genie_tensor_alloc(GENIE_I64, 1, &nnz, &vecs[n_vec]);
                if (st != GENIE_OK) {
                    genie_tensor_release(&mask);
                    goto out_release;
                }
                dims[xd + q].indexed = 1;
                n_vec++;
            }
            /* Coordinates of the nonzeros, in row-major order (torch.nonzero). */
            pos = calloc((size_t)(t->ndim > 0 ? t->ndim : 1), sizeof(int64_t));
            if (pos == NULL) {
                genie_tensor_release(&mask);
                st = genie_set_error(GENIE_ERR_NOMEM, "%s: out of memory", genie_cpu_opname(c));
                goto out_release;
            }
            for (int64_t i = 0, j = 0; i < cnt; i++) {
                if (m[i]) {
                    for (int q = 0; q < t->ndim; q++) {
                        ((int64_t *)genie_tensor_data(&vecs[n_vec - t->ndim + q]))[j] = pos[q];
                    }
                    j++;
                }
                for (int q = t->ndim - 1; q >= 0; q--) {
                    if (++pos[q] < t->shape[q]) {
                        break;
                    }
                    pos[q] = 0;
                }
            }
            free(pos);
            genie_tensor_release(&mask);
            xd += t->ndim;
        } else {
            st = check_index_dtype(c, t);
            if (st != GENIE_OK) {
                goto out_release;
            }
            if (xd >= x->ndim) {
                st = genie_set_error(GENIE_ERR_SHAPE, "%s: too many indices for a %d-d tensor",
                                     genie_cpu_opname(c), x->ndim);
                goto out_release;
            }
            genie_tensor_share(t, &vecs[n_vec++]);
            dims[xd++].indexed = 1;
        }
    }
    if (n_vec == 0) {
        st = genie_set_error(GENIE_ERR_INVALID, "%s: needs at least one index tensor",
                             genie_cpu_opname(c));
        goto out_release;
    }
    /* 2. Broadcast shape B of all index tensors. */
    for (int v = 0; v < n_vec; v++) {
        if (vecs[v].ndim > nb) {
            nb = vecs[v].ndim;
        }
    }
    for (int q = 0; q < nb; q++) {
        bshape[q] = 1;
    }
    for (int v = 0; v < n_vec; v++) {
        for (int q = 0; q < vecs[v].ndim; q++) {
            int bq = nb - vecs[v].ndim + q;
            int64_t e = vecs[v].shape[q];
            if (bshape[bq] == 1) {
                bshape[bq] = e;
            } else if (e != 1 && e != bshape[bq]) {
                st = genie_set_error(GENIE_ERR_SHAPE, "%s: index shapes do not broadcast",
                                     genie_cpu_opname(c));
                goto out_release;
            }
        }
    }
    /* 3. Load and bounds-check each index; record its strides over B. */
    for (int d = 0, v = 0; d < x->ndim; d++) {
        int64_t n;
        genie_tensor_t tmp;
        if (!dims[d].indexed) {
            continue;
        }
        if (first < 0) {
            first = d;
        } else if (last != d - 1) {
            adjacent = 0;
        }
        last = d;
        st = load_indices(c, &vecs[v], &dims[d].vals, &n);
        if (st == GENIE_OK) {
            st = check_bounds(c, dims[d].vals, n, x->shape[d], 1, d);
        }
        if (st != GENIE_OK) {
            goto out_release;
        }
        /* Strides of the contiguous copy, broadcast over B. */
        tmp = vecs[v];
        genie_tensor_set_contiguous_strides(&tmp);
        st = genie_cpu_broadcast_strides(c, &tmp, nb, bshape, dims[d].bstrides);
        if (st != GENIE_OK) {
            goto out_release;
        }
        v++;
    }
    /* 4. Output shape. */
    bpos = adjacent ? first : 0;
    for (int d = 0; d < x->ndim && adjacent && d < first; d++) {
        oshape[on++] = x->shape[d];
    }
    for (int q = 0; q < nb; q++) {
        if (on >= GENIE_MAX_DIMS) {
            st = genie_set_error(GENIE_ERR_SHAPE, "%s: result exceeds %d dims",
                                 genie_cpu_opname(c), GENIE_MAX_DIMS);
            goto out_release;
        }
        oshape[on++] = bshape[q];
    }
    for (int d = adjacent ? first : 0; d < x->ndim; d++) {
        if (!dims[d].indexed) {
            if (on >= GENIE_MAX_DIMS) {
                st = genie_set_error(GENIE_ERR_SHAPE, "%s: result exceeds %d dims",
                                     genie_cpu_opname(c), GENIE_MAX_DIMS);
                goto out_release;
            }
            oshape[on++] = x->shape[d];
        }
    }
    /* 5. Offset of every result element. */
    {
        int64_t n = 1, oi[GENIE_MAX_DIMS] = { 0 }, *offs;
        for (int q = 0; q < on; q++) {
            n *= oshape[q];
        }
        offs = malloc((size_t)(n > 0 ? n : 1) * sizeof(int64_t));
        if (offs == NULL) {
            st = genie_set_error(GENIE_ERR_NOMEM, "%s: out of memory for %lld offsets",
                                 genie_cpu_opname(c), (long long)n);
            goto out_release;
        }
        for (int64_t i = 0; i < n; i++) {
            int64_t off = 0;
            int od = 0;
            for (int d = 0; d < x->ndim; d++) {
                if (dims[d].indexed) {
                    int64_t bo = 0;
                    for (int q = 0; q < nb; q++) {
                        bo += oi[bpos + q] * dims[d].bstrides[q];
                    }
                    off += dims[d].vals[bo] * xstrides[d];
                } else {
                    /* Output position of this kept dim. */
                    int p = (adjacent && d < first) ? od : nb + od;
                    off += oi[p] * xstrides[d];
                    od++;
                }
            }
            offs[i] = off;
            for (int q = on - 1; q >= 0; q--) {
                if (++oi[q] < oshape[q]) {
                    break;
                }
                oi[q] = 0;
            }
        }
        *on_p = on;
        memcpy(oshape_p, oshape, sizeof(int64_t) * (size_t)on);
        *offs_p = offs;
        *n_p = n;
    }
out_release:
    for (int d = 0; d < GENIE_MAX_DIMS; d++) {
        free(dims[d].vals);
    }
    for (int v = 0; v < n_vec; v++) {
        genie_tensor_release(&vecs[v]);
    }
    return st;
}

/* index.Tensor(self, indices[]): inputs are self then one slot per leading
 * dim (NULL = take the whole dim); see adv_offsets for the rules. */
genie_status_t genie_cpu_op_index(const genie_op_call_t *c)
{
    const genie_tensor_t *x;
    genie_tensor_t *out = &c->out[0], want = { 0 };
    int64_t *offs = NULL, n;
    genie_status_t st;

    st = genie_cpu_check_call(c, 1, 1 + GENIE_MAX_DIMS, 1);
    if (st != GENIE_OK) {
        return st;
    }
    x = c->in[0];
    st = check_out_dtype(c, x);
    if (st == GENIE_OK) {
        st = adv_offsets(c, x, c->in + 1, c->n_in - 1, x->strides, &want.ndim, want.shape,
                         &offs, &n);
    }
    if (st != GENIE_OK) {
        return st;
    }
    st = genie_cpu_check_same_shape(c, "expected/output", &want, out);
    if (st == GENIE_OK) {
        size_t es = genie_dtype_size(x->dtype);
        const char *xb = genie_tensor_data(x);
        char *ob = genie_tensor_data(out);
#ifdef _OPENMP
#pragma omp parallel for num_threads(genie_cpu_threads(c)) if (n >= CPU_PAR_GRAIN)
#endif
        for (int64_t i = 0; i < n; i++) {
            memcpy(ob + (size_t)i * es, xb + (size_t)offs[i] * es, es);
        }
    }
    free(offs);
    return st;
}

/* ---- index_put ------------------------------------------------------------------- */

/* index_put(self, indices[], values, accumulate): out = copy of self, then
 * out[indices] = values (or += with accumulate), values broadcast to the
 * shape that self[indices] has.  Inputs: self, one slot per indexed dim (NULL
 * = whole dim), values last.  Accumulation runs in index order on one thread,
 * so repeated indices add up exactly as in ATen's serial CPU loop; without
 * accumulate a repeated index keeps the last value written. */
genie_status_t genie_cpu_op_index_put(const genie_op_call_t *c)
{
    const genie_tensor_t *x, *v;
    genie_tensor_t *out = &c->out[0];
    int64_t oshape[GENIE_MAX_DIMS], vstr[GENIE_MAX_DIMS], *offs = NULL, n;
    int on = 0, acc;
    genie_status_t st;

    /* Only self is checked as present: index slots may be NULL. */
    st = genie_cpu_check_call(c, 1, 2 + GENIE_MAX_DIMS, 1);
    if (st == GENIE_OK) {
        st = genie_srg_attr_bool(c->node, 0, &acc);
    }
    if (st != GENIE_OK) {
        return st;
    }
    x = c->in[0];
    v = c->n_in >= 2 ? c->in[c->n_in - 1] : NULL;
    if (v == NULL) {
        return genie_set_error(GENIE_ERR_INVALID, "%s: values tensor is missing",
                               genie_cpu_opname(c));
    }
    st = check_out_dtype(c, x);
    if (st == GENIE_OK && v->dtype != x->dtype) {
        st = genie_set_error(GENIE_ERR_DTYPE, "%s: values are %s but self is %s",
                             genie_cpu_opname(c), genie_dtype_name(v->dtype),
                             genie_dtype_name(x->dtype));
    }
    if (st == GENIE_OK) {
        st = genie_cpu_check_same_shape(c, "self/output", x, out);
    }
    if (st == GENIE_OK) {
        st = adv_offsets(c, out, c->in + 1, c->n_in - 2, out->strides, &on, oshape, &offs, &n);
    }
    if (st != GENIE_OK) {
        return st;
    }
    st = genie_cpu_broadcast_strides(c, v, on, oshape, vstr);
    if (st == GENIE_OK) {
        st = genie_cpu_copy(c, genie_cpu_threads(c), x, out);
    }
    if (st == GENIE_OK) {
        size_t es = genie_dtype_size(x->dtype);
        const char *vb = v->storage->data;
        char *ob = genie_tensor_data(out);
        int is_float = genie_dtype_is_float(x->dtype);
        int64_t pos[GENIE_MAX_DIMS] = { 0 };
        for (int64_t i = 0; i < n; i++) {
            int64_t voff = v->offset;
            for (int q = 0; q < on; q++) {
                voff += pos[q] * vstr[q];
            }
            if (!acc) {
                memcpy(ob + (size_t)offs[i] * es, vb + (size_t)voff * es, es);
            } else if (is_float) {
                /* One rounding per addition, as ATen's a += b in the dtype. */
                double s = genie_load_as_f64(ob, out->dtype, offs[i]) +
                           genie_load_as_f64(vb, v->dtype, voff);
                genie_store_from_f64(ob, out->dtype, offs[i], s);
            } else if (x->dtype == GENIE_BOOL) {
                ob[offs[i]] = (char)(ob[offs[i]] || vb[voff]);
            } else {
                int64_t s = (int64_t)((uint64_t)genie_cpu_get_i64(ob, out->dtype, offs[i]) +
                                      (uint64_t)genie_cpu_get_i64(vb, v->dtype, voff));
                genie_cpu_store_i64(&s, 1, ob + (size_t)offs[i] * es, out->dtype, 1);
            }
            for (int q = on - 1; q >= 0; q--) {
                if (++pos[q] < oshape[q]) {
                    break;
                }
                pos[q] = 0;
            }
        }
    }
    free(offs);
    return st;
}

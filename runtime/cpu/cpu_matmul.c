/*
 * Matrix products on OpenBLAS: mm, addmm, bmm, baddbmm, and the grouped
 * product _grouped_mm of mixture-of-experts layers.
 *
 * Operands are handed to sgemm (genie_cpu_sgemm: OpenBLAS on our own OpenMP
 * threads) in place whenever their strides describe
 * a row-major or a column-major matrix (NoTrans / Trans with the matching
 * leading dimension), so BERT's t(weight) and a transposed K cache cost no
 * copy.  Only an operand that is neither (e.g. an expanded or doubly-strided
 * view), or one stored as f16/bf16, is first copied into a contiguous f32
 * buffer.  Results are accumulated in f32; a f16/bf16 output is computed into
 * an f32 buffer and rounded once at the end.  The bias of addmm/baddbmm is
 * broadcast into the output first and then folded in with sgemm's beta, which
 * keeps it a single pass over C.
 *
 * Legend: M, K, N = rows of A, inner dimension, columns of B; Bt = batch.
 */
#include "cpu_internal.h"

#include <cblas.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* A (rows, cols) operand as cblas sees it. */
typedef struct mat_desc {
    const float    *data;     /* element [0,0] of batch 0 */
    int64_t         bstride;  /* elements between batches (0 = shared) */
    CBLAS_TRANSPOSE trans;
    int64_t         ld;
} mat_desc_t;

/* Can a (rows, cols) matrix with strides (s0, s1) go to sgemm as is?  Size-1
 * dims have meaningless strides, so they never block a layout. */
static int blas_layout(int64_t rows, int64_t cols, int64_t s0, int64_t s1,
                       CBLAS_TRANSPOSE *trans_p, int64_t *ld_p)
{
    int64_t mr = rows > 1 ? rows : 1, mc = cols > 1 ? cols : 1;

    if ((cols <= 1 || s1 == 1) && (rows <= 1 || s0 >= mc)) {
        *trans_p = CblasNoTrans;
        *ld_p = rows <= 1 ? mc : s0;
        return *ld_p <= INT_MAX;
    }
    if ((rows <= 1 || s0 == 1) && (cols <= 1 || s1 >= mr)) {
        *trans_p = CblasTrans;
        *ld_p = cols <= 1 ? mr : s1;
        return *ld_p <= INT_MAX;
    }
    return 0;
}

/* Describe operand t of shape (Bt, rows, cols) (or (rows, cols) when
 * batched == 0) for sgemm, copying it into *tmp_p (f32, contiguous) when its
 * dtype or layout is not usable directly.  *tmp_p stays empty otherwise. */
static genie_status_t prepare_operand(const genie_op_call_t *c, const genie_tensor_t *t,
                                      int batched, genie_tensor_t *tmp_p, mat_desc_t *d_p)
{
    int r = batched, q = batched + 1;
    int64_t rows = t->shape[r], cols = t->shape[q];
    genie_status_t st;

    memset(tmp_p, 0, sizeof(*tmp_p));
    if (t->dtype == GENIE_F32 &&
        blas_layout(rows, cols, t->strides[r], t->strides[q], &d_p->trans, &d_p->ld)) {
        d_p->data = genie_tensor_data(t);
        d_p->bstride = batched ? t->strides[0] : 0;
        return GENIE_OK;
    }
    st = genie_tensor_alloc(GENIE_F32, t->ndim, t->shape, tmp_p);
    if (st != GENIE_OK) {
        return st;
    }
    st = genie_cpu_copy(c, genie_cpu_threads(c), t, tmp_p);
    if (st != GENIE_OK) {
        genie_tensor_release(tmp_p);
        return st;
    }
    d_p->data = genie_tensor_data(tmp_p);
    d_p->bstride = batched ? rows * cols : 0;
    d_p->trans = CblasNoTrans;
    d_p->ld = cols > 1 ? cols : 1;
    return GENIE_OK;
}

/* out = beta * bias + alpha * (A @ B), batched or not.
 * a: (Bt, M, K) or (M, K); b: (Bt, K, N) or (K, N); bias broadcastable to
 * out's shape or NULL; out: (Bt, M, N) or (M, N), contiguous. */
static genie_status_t gemm_run(const genie_op_call_t *c, const genie_tensor_t *bias,
                               const genie_tensor_t *a, const genie_tensor_t *b,
                               double beta, double alpha, int batched)
{
    genie_tensor_t *out = &c->out[0];
    genie_tensor_t ta, tb, tc = { 0 }, *acc;
    mat_desc_t da, db;
    int64_t bt = batched ? a->shape[0] : 1;
    int64_t M = a->shape[batched], K = a->shape[batched + 1], N = b->shape[batched + 1];
    char s1[160], s2[160];
    genie_status_t st;

    /* ---- validation ---- */
    if (a->ndim != 2 + batched || b->ndim != 2 + batched || out->ndim != 2 + batched) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: operands must be %d-d",
                               genie_cpu_opname(c), 2 + batched);
    }
    if (b->shape[batched] != K || (batched && b->shape[0] != bt)) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: mat1 is %s but mat2 is %s",
                               genie_cpu_opname(c),
                               genie_cpu_shape_str(a->ndim, a->shape, s1, sizeof(s1)),
                               genie_cpu_shape_str(b->ndim, b->shape, s2, sizeof(s2)));
    }
    if (out->shape[batched] != M || out->shape[batched + 1] != N ||
        (batched && out->shape[0] != bt)) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: output is %s, expected (%s%lld,%lld)",
                               genie_cpu_opname(c),
                               genie_cpu_shape_str(out->ndim, out->shape, s1, sizeof(s1)),
                               batched ? "Bt," : "", (long long)M, (long long)N);
    }
    if (!genie_dtype_is_float(a->dtype) || a->dtype != b->dtype ||
        !genie_dtype_is_float(out->dtype) ||
        (bias != NULL && !genie_dtype_is_float(bias->dtype))) {
        return genie_set_error(GENIE_ERR_DTYPE, "%s: needs matching floating operands, got "
                               "%s and %s", genie_cpu_opname(c), genie_dtype_name(a->dtype),
                               genie_dtype_name(b->dtype));
    }
    if (M > INT_MAX || N > INT_MAX || K > INT_MAX) {
        return genie_set_error(GENIE_ERR_UNSUPPORTED, "%s: extents beyond BLAS int range",
                               genie_cpu_opname(c));
    }
    if (genie_tensor_numel(out) == 0) {
        return GENIE_OK;
    }

    /* ---- accumulator: out itself when f32, else an f32 buffer ---- */
    if (out->dtype == GENIE_F32) {
        acc = out;
    } else {
        st = genie_tensor_alloc(GENIE_F32, out->ndim, out->shape, &tc);
        if (st != GENIE_OK) {
            return st;
        }
        acc = &tc;
    }
    if (bias != NULL && beta != 0.0) {
        st = genie_cpu_copy(c, genie_cpu_threads(c), bias, acc);
        if (st != GENIE_OK) {
            goto err_acc;
        }
    } else {
        beta = 0.0;
    }
    if (K == 0) {
        /* A @ B is all zeros: out = beta * bias. */
        float *p = genie_tensor_data(acc);
        int64_t n = genie_tensor_numel(acc);
        for (int64_t i = 0; i < n; i++) {
            p[i] = beta == 0.0 ? 0.0f : (float)beta * p[i];
        }
        goto finish;
    }

    st = prepare_operand(c, a, batched, &ta, &da);
    if (st != GENIE_OK) {
        goto err_acc;
    }
    st = prepare_operand(c, b, batched, &tb, &db);
    if (st != GENIE_OK) {
        goto err_a;
    }
    {
        float *cbase = genie_tensor_data(acc);
        int nt = genie_cpu_threads(c);
        int trans_a = da.trans == CblasTrans, trans_b = db.trans == CblasTrans;
        /* Many small products (attention's per-head bmm): one per thread;
         * few large ones: each one split over the threads. */
        if (bt >= nt && nt > 1) {
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) if (bt * M * N * K >= CPU_PAR_GRAIN)
#endif
            for (int64_t i = 0; i < bt; i++) {
                genie_cpu_sgemm(1, trans_a, trans_b, M, N, K, (float)alpha, da.data + i * da.bstride,
                                da.ld, db.data + i * db.bstride, db.ld, (float)beta,
                                cbase + i * M * N, N);
            }
        } else {
            for (int64_t i = 0; i < bt; i++) {
                genie_cpu_sgemm(nt, trans_a, trans_b, M, N, K, (float)alpha, da.data + i * da.bstride,
                                da.ld, db.data + i * db.bstride, db.ld, (float)beta,
                                cbase + i * M * N, N);
            }
        }
    }
    genie_tensor_release(&tb);
    genie_tensor_release(&ta);

finish:
    if (acc != out) {
        st = genie_cpu_copy(c, genie_cpu_threads(c), acc, out);
        genie_tensor_release(&tc);
    }
    return st;

err_a:
    genie_tensor_release(&ta);
err_acc:
    genie_tensor_release(&tc);
    return st;
}

/* mm(self (M, K), mat2 (K, N)): out (M, N) */
genie_status_t genie_cpu_op_mm(const genie_op_call_t *c)
{
    genie_status_t st = genie_cpu_check_call(c, 2, 2, 1);

    return st != GENIE_OK ? st : gemm_run(c, NULL, c->in[0], c->in[1], 0.0, 1.0, 0);
}

/* bmm(self (Bt, M, K), mat2 (Bt, K, N)): out (Bt, M, N) */
genie_status_t genie_cpu_op_bmm(const genie_op_call_t *c)
{
    genie_status_t st = genie_cpu_check_call(c, 2, 2, 1);

    return st != GENIE_OK ? st : gemm_run(c, NULL, c->in[0], c->in[1], 0.0, 1.0, 1);
}

/* addmm(self (bias), mat1, mat2, *, beta, alpha) and the batched baddbmm. */
static genie_status_t addmm_run(const genie_op_call_t *c, int batched)
{
    double beta, alpha;
    genie_status_t st = genie_cpu_check_call(c, 3, 3, 1);

    if (st == GENIE_OK) {
        st = genie_srg_attr_scalar(c->node, 0, &beta);
    }
    if (st == GENIE_OK) {
        st = genie_srg_attr_scalar(c->node, 1, &alpha);
    }
    if (st != GENIE_OK) {
        return st;
    }
    return gemm_run(c, c->in[0], c->in[1], c->in[2], beta, alpha, batched);
}

genie_status_t genie_cpu_op_addmm(const genie_op_call_t *c) { return addmm_run(c, 0); }
genie_status_t genie_cpu_op_baddbmm(const genie_op_call_t *c) { return addmm_run(c, 1); }

/* ---- _grouped_mm ----------------------------------------------------------------- */

/* Group g's [lo, hi) range from offs (E, int32 cumulative ends): every range
 * must lie in [0, total] and the ends must not decrease.  ATen's CPU kernel
 * reads past the operand for a bad offs; here it is an error naming it. */
static genie_status_t grouped_offs(const genie_op_call_t *c, const genie_tensor_t *offs,
                                   int64_t E, int64_t total, const char *what,
                                   int64_t **ends_p)
{
    int64_t *ends, prev = 0;

    if (offs->dtype != GENIE_I32 || offs->ndim != 1 || offs->shape[0] != E) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: offs must be int32 of shape (%lld)",
                               genie_cpu_opname(c), (long long)E);
    }
    ends = malloc((size_t)(E > 0 ? E : 1) * sizeof(int64_t));
    if (ends == NULL) {
        return genie_set_error(GENIE_ERR_NOMEM, "%s: out of memory", genie_cpu_opname(c));
    }
    for (int64_t g = 0; g < E; g++) {
        ends[g] = genie_cpu_get_i64(offs->storage->data, GENIE_I32,
                                    offs->offset + g * offs->strides[0]);
        if (ends[g] < prev || ends[g] > total) {
            int64_t bad = ends[g];
            free(ends);
            return genie_set_error(GENIE_ERR_INVALID, "%s: offs[%lld] = %lld, expected "
                                   "non-decreasing ends in [%lld, %lld] along %s",
                                   genie_cpu_opname(c), (long long)g, (long long)bad,
                                   (long long)prev, (long long)total, what);
        }
        prev = ends[g];
    }
    *ends_p = ends;
    return GENIE_OK;
}

/* _grouped_mm(self, mat2, offs?, bias?, out_dtype?) -- the four layouts of
 * ATen's grouped GEMM, E = groups:
 *   self (T, K),    mat2 (E, K, N), offs (E): out (T, N), rows [o_{g-1}, o_g) use mat2[g]
 *                                             (transformers' MoE experts; rows past
 *                                             o_{E-1} are left unspecified by ATen,
 *                                             written as zeros here)
 *   self (E, M, K), mat2 (E, K, N), no offs:  out (E, M, N), a bmm
 *   self (M, Ktot), mat2 (Ktot, N), offs (E): out (E, M, N), group g over K range g
 *   self (E, M, K), mat2 (K, Ntot), offs (E): out (M, Ntot), columns of group g use self[g]
 * Operands go to sgemm in place when their layout allows (a transposed weight
 * view included); bias is refused as in ATen ("not supported yet"). */
genie_status_t genie_cpu_op_grouped_mm(const genie_op_call_t *c)
{
    const genie_tensor_t *a, *b, *offs;
    genie_tensor_t *out = &c->out[0], ta, tb, tc = { 0 }, *acc;
    mat_desc_t da, db;
    int64_t *ends = NULL, E, M, N, K;
    int ba, bb, nt;
    char s1[160], s2[160];
    genie_status_t st;

    st = genie_cpu_check_call(c, 2, 4, 1);
    if (st != GENIE_OK) {
        return st;
    }
    a = c->in[0];
    b = c->in[1];
    offs = c->n_in > 2 ? c->in[2] : NULL;
    if (c->n_in > 3 && c->in[3] != NULL) {
        return genie_set_error(GENIE_ERR_UNSUPPORTED, "%s: bias is not supported (nor is it "
                               "by ATen)", genie_cpu_opname(c));
    }
    if (!genie_dtype_is_float(a->dtype) || a->dtype != b->dtype || out->dtype != a->dtype) {
        return genie_set_error(GENIE_ERR_DTYPE, "%s: needs matching floating operands and "
                               "output, got %s, %s -> %s", genie_cpu_opname(c),
                               genie_dtype_name(a->dtype), genie_dtype_name(b->dtype),
                               genie_dtype_name(out->dtype));
    }
    ba = a->ndim == 3;
    bb = b->ndim == 3;
    if ((a->ndim != 2 && !ba) || (b->ndim != 2 && !bb) || (ba && bb) == (offs != NULL)) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: self %s and mat2 %s %s offs: expected "
                               "2-d/3-d operands with offs unless both are 3-d",
                               genie_cpu_opname(c),
                               genie_cpu_shape_str(a->ndim, a->shape, s1, sizeof(s1)),
                               genie_cpu_shape_str(b->ndim, b->shape, s2, sizeof(s2)),
                               offs != NULL ? "with" : "without");
    }
    K = a->shape[a->ndim - 1];
    if (b->shape[b->ndim - 2] != K || (ba && bb && a->shape[0] != b->shape[0])) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: self %s does not match mat2 %s",
                               genie_cpu_opname(c),
                               genie_cpu_shape_str(a->ndim, a->shape, s1, sizeof(s1)),
                               genie_cpu_shape_str(b->ndim, b->shape, s2, sizeof(s2)));
    }
    M = a->shape[a->ndim - 2];
    N = b->shape[b->ndim - 1];
    E = ba ? a->shape[0] : bb ? b->shape[0] : (offs != NULL ? offs->shape[0] : 0);
    {
        /* Expected output shape of each layout. */
        int64_t want[3];
        int wn = 2;
        if (ba && bb) {
            want[0] = E; want[1] = M; want[2] = N; wn = 3;
        } else if (!ba && bb) {
            want[0] = M; want[1] = N;
        } else if (!ba && !bb) {
            want[0] = E; want[1] = M; want[2] = N; wn = 3;
        } else {
            want[0] = M; want[1] = N;
        }
        if (out->ndim != wn || memcmp(out->shape, want, sizeof(int64_t) * (size_t)wn) != 0) {
            return genie_set_error(GENIE_ERR_SHAPE, "%s: output is %s, expected %s",
                                   genie_cpu_opname(c),
                                   genie_cpu_shape_str(out->ndim, out->shape, s1, sizeof(s1)),
                                   genie_cpu_shape_str(wn, want, s2, sizeof(s2)));
        }
    }
    if (M > INT_MAX || N > INT_MAX || K > INT_MAX) {
        return genie_set_error(GENIE_ERR_UNSUPPORTED, "%s: extents beyond BLAS int range",
                               genie_cpu_opname(c));
    }
    if (offs != NULL) {
        int64_t total = ba ? N : bb ? M : K;
        st = grouped_offs(c, offs, E, total, ba ? "N" : bb ? "M" : "K", &ends);
        if (st != GENIE_OK) {
            return st;
        }
    }
    if (out->dtype == GENIE_F32) {
        acc = out;
    } else {
        st = genie_tensor_alloc(GENIE_F32, out->ndim, out->shape, &tc);
        if (st != GENIE_OK) {
            goto err_ends;
        }
        acc = &tc;
    }
    /* Zeros first: empty groups and rows past the last group stay zero. */
    memset(genie_tensor_data(acc), 0, genie_tensor_numel(acc) * sizeof(float));
    if (genie_tensor_numel(acc) == 0 || K == 0) {
        goto finish;
    }
    st = prepare_operand(c, a, ba, &ta, &da);
    if (st != GENIE_OK) {
        goto err_acc;
    }
    st = prepare_operand(c, b, bb, &tb, &db);
    if (st != GENIE_OK) {
        goto err_a;
    }
    nt = genie_cpu_threads(c);
    {
        float *cb = genie_tensor_data(acc);
        int tra = da.trans == CblasTrans, trb = db.trans == CblasTrans;
        /* Element (i, j) of a described operand is at i * rs + j * cs. */
        int64_t ars = tra ? 1 : da.ld, acs = tra ? da.ld : 1;
        int64_t brs = trb ? 1 : db.ld, bcs = trb ? db.ld : 1;
        for (int64_t g = 0; g < E; g++) {
            int64_t lo = ends != NULL && g > 0 ? ends[g - 1] : 0;
            int64_t hi = ends != NULL ? ends[g] : 0;
            if (ba && bb) {
                genie_cpu_sgemm(nt, tra, trb, M, N, K, 1.0f, da.data + g * da.bstride, da.ld,
                                db.data + g * db.bstride, db.ld, 0.0f, cb + g * M * N, N);
            } else if (!ba && bb) {
                if (hi > lo) {
                    genie_cpu_sgemm(nt, tra, trb, hi - lo, N, K, 1.0f, da.data + lo * ars,
                                    da.ld, db.data + g * db.bstride, db.ld, 0.0f, cb + lo * N,
                                    N);
                }
            } else if (!ba && !bb) {
                if (hi > lo) {
                    genie_cpu_sgemm(nt, tra, trb, M, N, hi - lo, 1.0f, da.data + lo * acs,
                                    da.ld, db.data + lo * brs, db.ld, 0.0f, cb + g * M * N, N);
                }
            } else if (hi > lo) {
                genie_cpu_sgemm(nt, tra, trb, M, hi - lo, K, 1.0f, da.data + g * da.bstride,
                                da.ld, db.data + lo * bcs, db.ld, 0.0f, cb + lo, N);
            }
        }
    }
    genie_tensor_release(&tb);
    genie_tensor_release(&ta);
finish:
    if (acc != out) {
        st = genie_cpu_copy(c, genie_cpu_threads(c), acc, out);
    }
    goto err_acc;          /* the common unwind, taken on success too */

err_a:
    genie_tensor_release(&ta);
err_acc:
    genie_tensor_release(&tc);
err_ends:
    free(ends);
    return st;
}

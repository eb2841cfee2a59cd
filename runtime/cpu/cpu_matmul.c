/*
 * Matrix products on OpenBLAS: mm, addmm, bmm, baddbmm.
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

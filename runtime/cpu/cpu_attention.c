/*
 * scaled_dot_product_attention, fused: for every (batch..., head) pair,
 * O = softmax(scale * Q K^T + mask) V without materialising the full score
 * tensor for all heads.
 *
 * Two schedules, chosen by the size of one head's problem:
 *  - large (prefill): (head, block of 64 query rows) units are spread over
 *    OpenMP threads; each computes S = QK^T with one single-threaded sgemm
 *    (Q and K/V passed with their own row strides, so a transposed or sliced
 *    KV cache is not copied), the masked, numerically stable softmax in place,
 *    and O = PV with a second sgemm, keeping S (64 x Tk) in cache.  With
 *    is_causal a block only multiplies the keys its rows can see (top-left
 *    aligned, like torch: row i sees keys 0..i).
 *  - small (decode, short prompts): (head, query row) pairs are spread over
 *    OpenMP threads and each computes its scores and the weighted sum of V with
 *    vectorised dot/axpy loops: sgemm's fixed cost dominates at one query row.
 * Fully masked rows produce zeros, as PyTorch's math and flash CPU paths do.
 *
 * Shapes: q (N..., H, Tq, D), k (N..., Hk, Tk, D), v (N..., Hk, Tk, Dv),
 * attn_mask broadcastable to (N..., H, Tq, Tk) (bool: True = attend; float:
 * added to the scores), out (N..., H, Tq, Dv).  Any number of leading dims
 * (q may be 3-d); a leading dim of k/v may be 1 (broadcast); with enable_gqa
 * the head dim may have Hk dividing H (query head h uses kv head h / (H/Hk)).
 *
 * Legend: B = number of (batch..., head) problems, D/Dv = head widths.
 */
#include "cpu_internal.h"
#include "cpu_vmath.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SDPA_BLOCK_Q   64           /* query rows per sgemm block (large schedule) */
#define SDPA_BLAS_MIN  (1 << 20)    /* Tq * Tk * D at which one head uses sgemm */

typedef struct sdpa_geom {
    int       nb;                                /* batch dims (q->ndim - 2) */
    int64_t   bshape[GENIE_MAX_DIMS];            /* (nb) q's batch shape */
    int64_t   nbatch;                            /* B */
    int64_t   Tq, Tk, D, Dv;
    int64_t   qbs[GENIE_MAX_DIMS], kbs[GENIE_MAX_DIMS], vbs[GENIE_MAX_DIMS];
    int64_t   kdiv[GENIE_MAX_DIMS];              /* k/v index = q index / kdiv */
    int64_t   mbs[GENIE_MAX_DIMS + 2];           /* mask strides over (N..., Tq, Tk) */
    int64_t   qrs, krs, vrs;                     /* row strides (elements) */
    const float *q, *k, *v;                      /* element [0,...,0] */
    const char  *mask;                           /* NULL if none */
    genie_dtype_t mdt;
    int       causal;
    float     scale;
    float    *o;                                 /* (B, Tq, Dv) f32 output */
} sdpa_geom_t;

/* Element offsets of problem b in q, k/v and the mask. */
static void batch_offsets(const sdpa_geom_t *g, int64_t b, int64_t *qo_p, int64_t *ko_p,
                          int64_t *vo_p, int64_t *mo_p)
{
    int64_t qo = 0, ko = 0, vo = 0, mo = 0;

    for (int d = g->nb - 1; d >= 0; d--) {
        int64_t i = b % g->bshape[d];
        b /= g->bshape[d];
        qo += i * g->qbs[d];
        ko += (i / g->kdiv[d]) * g->kbs[d];
        vo += (i / g->kdiv[d]) * g->vbs[d];
        mo += i * g->mbs[d];
    }
    *qo_p = qo;
    *ko_p = ko;
    *vo_p = vo;
    *mo_p = mo;
}

/* s (n) = scale * q . K[j] for the first n key rows. */
CPU_MULTIVERSION
static void scores_row(const float *restrict q, const float *restrict K, int64_t krs,
                       int64_t D, int64_t n, float scale, float *restrict s)
{
    for (int64_t j = 0; j < n; j++) {
        const float *kr = K + j * krs;
        float acc = 0.0f;
        CPU_SIMD_SUM(acc)
        for (int64_t d = 0; d < D; d++) {
            acc += q[d] * kr[d];
        }
        s[j] = acc * scale;
    }
}

/* o (Dv) += p * V[j] for the first n value rows. */
CPU_MULTIVERSION
static void pv_row(const float *restrict p, const float *restrict V, int64_t vrs, int64_t Dv,
                   int64_t n, float *restrict o)
{
    for (int64_t j = 0; j < n; j++) {
        const float *vr = V + j * vrs;
        const float pj = p[j];
        CPU_SIMD
        for (int64_t d = 0; d < Dv; d++) {
            o[d] += pj * vr[d];
        }
    }
}

/* Apply the explicit mask to s[0..n) of query row i (mask offset mo). */
static void apply_mask(const sdpa_geom_t *g, int64_t mo, int64_t i, int64_t n, float *s)
{
    int64_t rs = g->mbs[g->nb], cs = g->mbs[g->nb + 1];
    const char *row;

    if (g->mask == NULL) {
        return;
    }
    row = g->mask + (size_t)(mo + i * rs) * genie_dtype_size(g->mdt);
    if (g->mdt == GENIE_BOOL) {
        for (int64_t j = 0; j < n; j++) {
            if (!((const uint8_t *)row)[j * cs]) {
                s[j] = -INFINITY;
            }
        }
    } else {
        for (int64_t j = 0; j < n; j++) {
            s[j] += genie_cpu_get_f32(row, g->mdt, j * cs);
        }
    }
}

/* In place: s[0..n) -> probabilities (zeros for a fully masked row).
 * Returns 1 / sum so the caller may defer normalisation, or 0 for a fully
 * masked row. */
CPU_MULTIVERSION
static float softmax_unnorm(float *s, int64_t n)
{
    float m = -INFINITY, sum = 0.0f;

#ifdef _OPENMP
#pragma omp simd reduction(max:m)
#endif
    for (int64_t j = 0; j < n; j++) {
        m = s[j] > m ? s[j] : m;
    }
    if (m == -INFINITY) {
        for (int64_t j = 0; j < n; j++) {
            s[j] = 0.0f;
        }
        return 0.0f;
    }
    CPU_SIMD_SUM(sum)
    for (int64_t j = 0; j < n; j++) {
        float e = cpu_expf(s[j] - m);
        s[j] = e;
        sum += e;
    }
    return 1.0f / sum;
}

/* ---- small schedule: one (problem, query row) per iteration ---------------------- */

static genie_status_t sdpa_rows(const genie_op_call_t *c, const sdpa_geom_t *g)
{
    int64_t units = g->nbatch * g->Tq;
    int fail = 0;

#ifdef _OPENMP
#pragma omp parallel num_threads(genie_cpu_threads(c)) \
        if (units > 1 && units * g->Tk * (g->D + g->Dv) >= CPU_PAR_GRAIN)
#endif
    {
        float *s = malloc((size_t)(g->Tk > 0 ? g->Tk : 1) * sizeof(float));
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t u = 0; u < units; u++) {
            int64_t b = u / g->Tq, i = u % g->Tq, qo, ko, vo, mo;
            int64_t n = g->causal ? (i + 1 < g->Tk ? i + 1 : g->Tk) : g->Tk;
            float *o = g->o + u * g->Dv, inv;
            if (s == NULL) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
                fail = 1;
                continue;
            }
            batch_offsets(g, b, &qo, &ko, &vo, &mo);
            memset(o, 0, (size_t)g->Dv * sizeof(float));
            scores_row(g->q + qo + i * g->qrs, g->k + ko, g->krs, g->D, n, g->scale, s);
            apply_mask(g, mo, i, n, s);
            inv = softmax_unnorm(s, n);
            if (inv == 0.0f) {
                continue;
            }
            pv_row(s, g->v + vo, g->vrs, g->Dv, n, o);
            for (int64_t d = 0; d < g->Dv; d++) {
                o[d] *= inv;
            }
        }
        free(s);
    }
    if (fail) {
        return genie_set_error(GENIE_ERR_NOMEM, "%s: out of memory for score rows",
                               genie_cpu_opname(c));
    }
    return GENIE_OK;
}

/* ---- large schedule: sgemm per block of query rows ---------------------------------- */

/* One (problem b, query rows i0..i0+nq) unit; S has room for nq * Tk. */
static void sdpa_block(const sdpa_geom_t *g, int64_t b, int64_t i0, int64_t nq, float *S)
{
    int64_t qo, ko, vo, mo;
    int64_t kn = g->causal ? (i0 + nq < g->Tk ? i0 + nq : g->Tk) : g->Tk;
    float *O = g->o + (b * g->Tq + i0) * g->Dv;

    batch_offsets(g, b, &qo, &ko, &vo, &mo);
    if (kn == 0) {
        memset(O, 0, (size_t)(nq * g->Dv) * sizeof(float));
        return;
    }
    /* S (nq, kn) = scale * Q_blk K^T, only the keys this block can see. */
    genie_cpu_sgemm(1, 0, 1, nq, kn, g->D, g->scale, g->q + qo + i0 * g->qrs, g->qrs,
                    g->k + ko, g->krs, 0.0f, S, kn);
    for (int64_t r = 0; r < nq; r++) {
        int64_t i = i0 + r;
        int64_t n = g->causal ? (i + 1 < g->Tk ? i + 1 : g->Tk) : g->Tk;
        float *s = S + r * kn, inv;
        apply_mask(g, mo, i, n, s);
        inv = softmax_unnorm(s, n);
        for (int64_t j = 0; j < n; j++) {
            s[j] *= inv;
        }
        for (int64_t j = n; j < kn; j++) {
            s[j] = 0.0f;         /* keys beyond the causal limit */
        }
    }
    /* O_blk (nq, Dv) = P V */
    genie_cpu_sgemm(1, 0, 0, nq, g->Dv, kn, 1.0f, S, kn, g->v + vo, g->vrs, 0.0f, O, g->Dv);
}

static genie_status_t sdpa_blas(const genie_op_call_t *c, const sdpa_geom_t *g)
{
    int64_t qb = g->Tq < SDPA_BLOCK_Q ? g->Tq : SDPA_BLOCK_Q;
    int64_t nblk = (g->Tq + qb - 1) / qb, units = g->nbatch * nblk;
    int fail = 0;

    /* Units are independent (each writes its own rows of O); causal units
     * differ in size, hence the dynamic schedule. */
#ifdef _OPENMP
#pragma omp parallel num_threads(genie_cpu_threads(c)) if (units > 1)
#endif
    {
        float *S = malloc((size_t)(qb * (g->Tk > 0 ? g->Tk : 1)) * sizeof(float));
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t u = 0; u < units; u++) {
            int64_t b = u / nblk, i0 = (u % nblk) * qb;
            if (S == NULL) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
                fail = 1;
                continue;
            }
            sdpa_block(g, b, i0, g->Tq - i0 < qb ? g->Tq - i0 : qb, S);
        }
        free(S);
    }
    if (fail) {
        return genie_set_error(GENIE_ERR_NOMEM, "%s: out of memory for a %lldx%lld score block",
                               genie_cpu_opname(c), (long long)qb, (long long)g->Tk);
    }
    return GENIE_OK;
}

/* ---- entry ------------------------------------------------------------------------ */

/* t as an f32 tensor whose rows (last dim) are unit-stride with a row stride
 * of at least the row length: the form both schedules read.  Shares t when
 * it already is; copies otherwise. */
static genie_status_t as_rows_f32(const genie_op_call_t *c, const genie_tensor_t *t,
                                  genie_tensor_t *out_p)
{
    int n = t->ndim;
    int ok = t->dtype == GENIE_F32 &&
             (t->shape[n - 1] <= 1 || t->strides[n - 1] == 1) &&
             (t->shape[n - 2] <= 1 ||
              (t->strides[n - 2] >= t->shape[n - 1] && t->strides[n - 2] <= INT_MAX));
    genie_status_t st;

    if (ok) {
        genie_tensor_share(t, out_p);
        return GENIE_OK;
    }
    st = genie_tensor_alloc(GENIE_F32, t->ndim, t->shape, out_p);
    if (st != GENIE_OK) {
        return st;
    }
    st = genie_cpu_copy(c, genie_cpu_threads(c), t, out_p);
    if (st != GENIE_OK) {
        genie_tensor_release(out_p);
    }
    return st;
}

static int64_t row_stride(const genie_tensor_t *t)
{
    int64_t len = t->shape[t->ndim - 1] > 1 ? t->shape[t->ndim - 1] : 1;

    return t->shape[t->ndim - 2] > 1 ? t->strides[t->ndim - 2] : len;
}

/* scaled_dot_product_attention(query, key, value, attn_mask?, dropout_p,
 * is_causal, *, scale?, enable_gqa) */
genie_status_t genie_cpu_op_sdpa(const genie_op_call_t *c)
{
    const genie_tensor_t *q, *k, *v, *m;
    genie_tensor_t *out = &c->out[0];
    genie_tensor_t qf = { 0 }, kf = { 0 }, vf = { 0 }, of = { 0 };
    sdpa_geom_t g;
    double dropout, scale = 0.0;
    int causal, gqa, has_scale;
    int64_t full[GENIE_MAX_DIMS + 2];
    char s1[160], s2[160];
    genie_status_t st;

    st = genie_cpu_check_call(c, 3, 4, 1);
    if (st == GENIE_OK) {
        st = genie_srg_attr_float(c->node, 0, &dropout);
    }
    if (st == GENIE_OK) {
        st = genie_srg_attr_bool(c->node, 1, &causal);
    }
    if (st == GENIE_OK) {
        has_scale = c->node->n_attr > 2 && c->node->attrs[2].tag != GENIE_ATTR_NONE;
        if (has_scale) {
            st = genie_srg_attr_float(c->node, 2, &scale);
        }
    }
    if (st == GENIE_OK) {
        st = genie_srg_attr_bool(c->node, 3, &gqa);
    }
    if (st != GENIE_OK) {
        return st;
    }
    q = c->in[0];
    k = c->in[1];
    v = c->in[2];
    m = c->n_in > 3 ? c->in[3] : NULL;

    /* ---- validation ---- */
    if (dropout != 0.0) {
        return genie_set_error(GENIE_ERR_UNSUPPORTED, "%s: dropout_p = %g; only 0 is supported "
                               "for inference", genie_cpu_opname(c), dropout);
    }
    if (causal && m != NULL) {
        return genie_set_error(GENIE_ERR_INVALID, "%s: attn_mask and is_causal are exclusive",
                               genie_cpu_opname(c));
    }
    if (q->ndim < 2 || k->ndim != q->ndim || v->ndim != q->ndim) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: q, k, v must have the same rank >= 2 "
                               "(got %d, %d, %d)", genie_cpu_opname(c), q->ndim, k->ndim,
                               v->ndim);
    }
    if (!genie_dtype_is_float(q->dtype) || k->dtype != q->dtype || v->dtype != q->dtype ||
        out->dtype != q->dtype) {
        return genie_set_error(GENIE_ERR_DTYPE, "%s: q, k, v and output must share one "
                               "floating dtype", genie_cpu_opname(c));
    }
    if (m != NULL && m->dtype != GENIE_BOOL && !genie_dtype_is_float(m->dtype)) {
        return genie_set_error(GENIE_ERR_DTYPE, "%s: attn_mask must be bool or floating, got %s",
                               genie_cpu_opname(c), genie_dtype_name(m->dtype));
    }
    memset(&g, 0, sizeof(g));
    g.nb = q->ndim - 2;
    g.Tq = q->shape[g.nb];
    g.D = q->shape[g.nb + 1];
    g.Tk = k->shape[g.nb];
    g.Dv = v->shape[g.nb + 1];
    if (k->shape[g.nb + 1] != g.D || v->shape[g.nb] != g.Tk) {
        return genie_set_error(GENIE_ERR_SHAPE, "%s: k is %s, v is %s for head width %lld",
                               genie_cpu_opname(c),
                               genie_cpu_shape_str(k->ndim, k->shape, s1, sizeof(s1)),
                               genie_cpu_shape_str(v->ndim, v->shape, s2, sizeof(s2)),
                               (long long)g.D);
    }
    if (g.Tq > INT_MAX || g.Tk > INT_MAX || g.D > INT_MAX || g.Dv > INT_MAX) {
        return genie_set_error(GENIE_ERR_UNSUPPORTED, "%s: extents beyond BLAS int range",
                               genie_cpu_opname(c));
    }
    g.nbatch = 1;
    for (int d = 0; d < g.nb; d++) {
        int64_t qs = q->shape[d];
        g.bshape[d] = qs;
        g.nbatch *= qs;
        g.kdiv[d] = 1;
        if (k->shape[d] != v->shape[d]) {
            return genie_set_error(GENIE_ERR_SHAPE, "%s: k and v differ in dim %d",
                                   genie_cpu_opname(c), d);
        }
        if (k->shape[d] == qs) {
            continue;
        }
        if (k->shape[d] == 1) {
            g.kdiv[d] = qs > 0 ? qs : 1;          /* index / qs == 0: broadcast */
        } else if (gqa && d == g.nb - 1 && k->shape[d] > 0 && qs % k->shape[d] == 0) {
            g.kdiv[d] = qs / k->shape[d];
        } else {
            return genie_set_error(GENIE_ERR_SHAPE, "%s: q has %lld in dim %d but k/v have "
                                   "%lld%s", genie_cpu_opname(c), (long long)qs, d,
                                   (long long)k->shape[d],
                                   d == g.nb - 1 && !gqa ? " (enable_gqa is false)" : "");
        }
    }
    {
        int same = out->ndim == q->ndim && out->shape[g.nb] == g.Tq &&
                   out->shape[g.nb + 1] == g.Dv;
        for (int d = 0; same && d < g.nb; d++) {
            same = out->shape[d] == q->shape[d];
        }
        if (!same) {
            return genie_set_error(GENIE_ERR_SHAPE, "%s: output is %s, expected q's batch "
                                   "dims + (%lld,%lld)", genie_cpu_opname(c),
                                   genie_cpu_shape_str(out->ndim, out->shape, s1, sizeof(s1)),
                                   (long long)g.Tq, (long long)g.Dv);
        }
    }
    if (m != NULL) {
        memcpy(full, q->shape, sizeof(int64_t) * (size_t)g.nb);
        full[g.nb] = g.Tq;
        full[g.nb + 1] = g.Tk;
        st = genie_cpu_broadcast_strides(c, m, g.nb + 2, full, g.mbs);
        if (st != GENIE_OK) {
            return st;
        }
        g.mask = genie_tensor_data(m);
        g.mdt = m->dtype;
    }
    if (genie_tensor_numel(out) == 0) {
        return GENIE_OK;
    }

    /* ---- operands as f32 rows ---- */
    st = as_rows_f32(c, q, &qf);
    if (st != GENIE_OK) {
        goto out;
    }
    st = as_rows_f32(c, k, &kf);
    if (st != GENIE_OK) {
        goto out;
    }
    st = as_rows_f32(c, v, &vf);
    if (st != GENIE_OK) {
        goto out;
    }
    if (out->dtype == GENIE_F32) {
        genie_tensor_share(out, &of);
    } else {
        st = genie_tensor_alloc(GENIE_F32, out->ndim, out->shape, &of);
        if (st != GENIE_OK) {
            goto out;
        }
    }
    for (int d = 0; d < g.nb; d++) {
        g.qbs[d] = qf.strides[d];
        g.kbs[d] = kf.strides[d];
        g.vbs[d] = vf.strides[d];
    }
    g.q = genie_tensor_data(&qf);
    g.k = genie_tensor_data(&kf);
    g.v = genie_tensor_data(&vf);
    g.o = genie_tensor_data(&of);
    g.qrs = row_stride(&qf);
    g.krs = row_stride(&kf);
    g.vrs = row_stride(&vf);
    g.causal = causal;
    g.scale = (float)(has_scale ? scale : 1.0 / sqrt((double)g.D));

    if (g.Tq >= 32 && g.Tq * g.Tk * g.D >= SDPA_BLAS_MIN) {
        st = sdpa_blas(c, &g);
    } else {
        st = sdpa_rows(c, &g);
    }
    if (st == GENIE_OK && of.storage != out->storage) {
        st = genie_cpu_copy(c, genie_cpu_threads(c), &of, out);
    }
out:
    genie_tensor_release(&of);
    genie_tensor_release(&vf);
    genie_tensor_release(&kf);
    genie_tensor_release(&qf);
    return st;
}

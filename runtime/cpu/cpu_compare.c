/*
 * Comparisons and selection: eq/ne/lt/gt/le/ge (.Tensor and .Scalar), where.self,
 * masked_fill.Scalar.
 *
 * Comparisons follow PyTorch's promotion: if either side is floating the values
 * are compared as f32 (a Python-number Scalar is first rounded to the tensor's
 * floating dtype, so `x_f16 == 0.1` compares against the f16 nearest to 0.1),
 * otherwise exactly as i64.  Results are written through the i64 row storer,
 * so the output may be bool (the normal case) or any other dtype.
 */
#include "cpu_internal.h"

typedef enum cmp_kind { CMP_EQ, CMP_NE, CMP_LT, CMP_GT, CMP_LE, CMP_GE } cmp_kind_t;

typedef struct cmp_ctx {
    cmp_kind_t    kind;
    genie_dtype_t dt[3];     /* out, a, b */
    int           b_scalar;
    float         bs_f;
    int64_t       bs_i;
} cmp_ctx_t;

#define CMP_LOOP(op)                                               \
    for (int64_t i = 0; i < n; i++) {                              \
        bo[i] = a[sa ? i : 0] op b[sb ? i : 0];                    \
    }

#define CMP_SWITCH()                                               \
    switch (cx->kind) {                                            \
    case CMP_EQ: CMP_LOOP(==); break;                              \
    case CMP_NE: CMP_LOOP(!=); break;                              \
    case CMP_LT: CMP_LOOP(<);  break;                              \
    case CMP_GT: CMP_LOOP(>);  break;                              \
    case CMP_LE: CMP_LOOP(<=); break;                              \
    case CMP_GE: CMP_LOOP(>=); break;                              \
    }

static void cmp_row_f32(void *vctx, int64_t n, char *const *p, const int64_t *s)
{
    const cmp_ctx_t *cx = vctx;
    float ba[CPU_CHUNK], bb[CPU_CHUNK];
    int64_t bo[CPU_CHUNK];
    int sa, sb = 0;
    const float *a = genie_cpu_row_f32(p[1], cx->dt[1], s[1], n, ba, &sa);
    const float *b = cx->b_scalar ? &cx->bs_f
                                  : genie_cpu_row_f32(p[2], cx->dt[2], s[2], n, bb, &sb);

    CMP_SWITCH();
    genie_cpu_store_i64(bo, n, p[0], cx->dt[0], s[0]);
}

static void cmp_row_i64(void *vctx, int64_t n, char *const *p, const int64_t *s)
{
    const cmp_ctx_t *cx = vctx;
    int64_t ba[CPU_CHUNK], bb[CPU_CHUNK], bo[CPU_CHUNK];
    int sa, sb = 0;
    const int64_t *a = genie_cpu_row_i64(p[1], cx->dt[1], s[1], n, ba, &sa);
    const int64_t *b = cx->b_scalar ? &cx->bs_i
                                    : genie_cpu_row_i64(p[2], cx->dt[2], s[2], n, bb, &sb);

    CMP_SWITCH();
    genie_cpu_store_i64(bo, n, p[0], cx->dt[0], s[0]);
}

static genie_status_t cmp_run(const genie_op_call_t *c, cmp_kind_t kind, int scalar_form)
{
    genie_tensor_t *out = &c->out[0];
    const genie_tensor_t *ins[2];
    uint32_t n_in = scalar_form ? 1 : 2;
    cmp_ctx_t cx = { .kind = kind, .b_scalar = scalar_form };
    int as_float;
    cpu_iter_t it;
    genie_status_t st;

    st = genie_cpu_check_call(c, n_in, n_in, 1);
    if (st != GENIE_OK) {
        return st;
    }
    ins[0] = c->in[0];
    cx.dt[0] = out->dtype;
    cx.dt[1] = c->in[0]->dtype;
    as_float = genie_dtype_is_float(c->in[0]->dtype);
    if (scalar_form) {
        double v;
        int64_t vi;
        int v_float;
        st = genie_cpu_attr_scalar(c, 0, &v, &vi, &v_float);
        if (st != GENIE_OK) {
            return st;
        }
        if (as_float) {
            v = genie_cpu_round_to(v, c->in[0]->dtype);
        } else if (v_float) {
            as_float = 1;      /* int tensor vs float number: promoted to f32 */
        }
        cx.bs_f = (float)v;
        cx.bs_i = vi;
        cx.dt[2] = cx.dt[1];
    } else {
        ins[1] = c->in[1];
        cx.dt[2] = c->in[1]->dtype;
        as_float = as_float || genie_dtype_is_float(c->in[1]->dtype);
    }
    st = genie_cpu_iter_init(c, out, ins, (int)n_in, &it);
    if (st != GENIE_OK) {
        return st;
    }
    genie_cpu_iter_run(&it, genie_cpu_threads(c), as_float ? cmp_row_f32 : cmp_row_i64, &cx);
    return GENIE_OK;
}

genie_status_t genie_cpu_op_eq(const genie_op_call_t *c)        { return cmp_run(c, CMP_EQ, 0); }
genie_status_t genie_cpu_op_eq_scalar(const genie_op_call_t *c) { return cmp_run(c, CMP_EQ, 1); }
genie_status_t genie_cpu_op_ne_scalar(const genie_op_call_t *c) { return cmp_run(c, CMP_NE, 1); }
genie_status_t genie_cpu_op_lt_scalar(const genie_op_call_t *c) { return cmp_run(c, CMP_LT, 1); }
genie_status_t genie_cpu_op_gt_scalar(const genie_op_call_t *c) { return cmp_run(c, CMP_GT, 1); }
genie_status_t genie_cpu_op_le_scalar(const genie_op_call_t *c) { return cmp_run(c, CMP_LE, 1); }
genie_status_t genie_cpu_op_ge_scalar(const genie_op_call_t *c) { return cmp_run(c, CMP_GE, 1); }
genie_status_t genie_cpu_op_ne(const genie_op_call_t *c)        { return cmp_run(c, CMP_NE, 0); }
genie_status_t genie_cpu_op_lt(const genie_op_call_t *c)        { return cmp_run(c, CMP_LT, 0); }
genie_status_t genie_cpu_op_gt(const genie_op_call_t *c)        { return cmp_run(c, CMP_GT, 0); }
genie_status_t genie_cpu_op_le(const genie_op_call_t *c)        { return cmp_run(c, CMP_LE, 0); }
genie_status_t genie_cpu_op_ge(const genie_op_call_t *c)        { return cmp_run(c, CMP_GE, 0); }

/* ---- where / masked_fill ----------------------------------------------------- */

typedef struct sel_ctx {
    genie_dtype_t dt[4];     /* out, cond, x, y (y unused when fill) */
    int           fill;      /* masked_fill: cond selects the scalar */
    float         fill_f;
    int64_t       fill_i;
} sel_ctx_t;

/* where: operands (out, cond, x, y); masked_fill: (out, x, mask). */
static void sel_row_f32(void *vctx, int64_t n, char *const *p, const int64_t *s)
{
    const sel_ctx_t *cx = vctx;
    int64_t bc[CPU_CHUNK];
    float bx[CPU_CHUNK], by[CPU_CHUNK], bo[CPU_CHUNK];
    int sc, sx, sy = 0;
    const int64_t *cond;
    const float *x, *y;

    if (cx->fill) {
        x = genie_cpu_row_f32(p[1], cx->dt[2], s[1], n, bx, &sx);
        cond = genie_cpu_row_i64(p[2], cx->dt[1], s[2], n, bc, &sc);
        y = &cx->fill_f;
        for (int64_t i = 0; i < n; i++) {
            bo[i] = cond[sc ? i : 0] ? y[0] : x[sx ? i : 0];
        }
    } else {
        cond = genie_cpu_row_i64(p[1], cx->dt[1], s[1], n, bc, &sc);
        x = genie_cpu_row_f32(p[2], cx->dt[2], s[2], n, bx, &sx);
        y = genie_cpu_row_f32(p[3], cx->dt[3], s[3], n, by, &sy);
        for (int64_t i = 0; i < n; i++) {
            bo[i] = cond[sc ? i : 0] ? x[sx ? i : 0] : y[sy ? i : 0];
        }
    }
    genie_cpu_store_f32(bo, n, p[0], cx->dt[0], s[0]);
}

static void sel_row_i64(void *vctx, int64_t n, char *const *p, const int64_t *s)
{
    const sel_ctx_t *cx = vctx;
    int64_t bc[CPU_CHUNK], bx[CPU_CHUNK], by[CPU_CHUNK], bo[CPU_CHUNK];
    int sc, sx, sy = 0;
    const int64_t *cond, *x, *y;

    if (cx->fill) {
        x = genie_cpu_row_i64(p[1], cx->dt[2], s[1], n, bx, &sx);
        cond = genie_cpu_row_i64(p[2], cx->dt[1], s[2], n, bc, &sc);
        y = &cx->fill_i;
        for (int64_t i = 0; i < n; i++) {
            bo[i] = cond[sc ? i : 0] ? y[0] : x[sx ? i : 0];
        }
    } else {
        cond = genie_cpu_row_i64(p[1], cx->dt[1], s[1], n, bc, &sc);
        x = genie_cpu_row_i64(p[2], cx->dt[2], s[2], n, bx, &sx);
        y = genie_cpu_row_i64(p[3], cx->dt[3], s[3], n, by, &sy);
        for (int64_t i = 0; i < n; i++) {
            bo[i] = cond[sc ? i : 0] ? x[sx ? i : 0] : y[sy ? i : 0];
        }
    }
    genie_cpu_store_i64(bo, n, p[0], cx->dt[0], s[0]);
}

/* where.self(condition, self, other): out = condition ? self : other, all
 * three broadcast to out's shape; condition must be bool. */
genie_status_t genie_cpu_op_where(const genie_op_call_t *c)
{
    genie_tensor_t *out = &c->out[0];
    sel_ctx_t cx = { .fill = 0 };
    int is_float = genie_dtype_is_float(out->dtype);
    cpu_iter_t it;
    genie_status_t st;

    st = genie_cpu_check_call(c, 3, 3, 1);
    if (st != GENIE_OK) {
        return st;
    }
    if (c->in[0]->dtype != GENIE_BOOL) {
        return genie_set_error(GENIE_ERR_DTYPE, "%s: condition must be bool, got %s",
                               genie_cpu_opname(c), genie_dtype_name(c->in[0]->dtype));
    }
    if (!is_float && (genie_dtype_is_float(c->in[1]->dtype) ||
                      genie_dtype_is_float(c->in[2]->dtype))) {
        return genie_set_error(GENIE_ERR_DTYPE, "%s: floating inputs cannot produce %s",
                               genie_cpu_opname(c), genie_dtype_name(out->dtype));
    }
    st = genie_cpu_iter_init(c, out, c->in, 3, &it);
    if (st != GENIE_OK) {
        return st;
    }
    cx.dt[0] = out->dtype;
    for (int k = 0; k < 3; k++) {
        cx.dt[k + 1] = c->in[k]->dtype;
    }
    genie_cpu_iter_run(&it, genie_cpu_threads(c), is_float ? sel_row_f32 : sel_row_i64, &cx);
    return GENIE_OK;
}

/* masked_fill.Scalar(self, mask, value): out = mask ? value : self, mask bool
 * and broadcast to self's shape. */
genie_status_t genie_cpu_op_masked_fill(const genie_op_call_t *c)
{
    genie_tensor_t *out = &c->out[0];
    sel_ctx_t cx = { .fill = 1 };
    double v;
    int64_t vi;
    cpu_iter_t it;
    genie_status_t st;

    st = genie_cpu_check_call(c, 2, 2, 1);
    if (st == GENIE_OK) {
        st = genie_cpu_attr_scalar(c, 0, &v, &vi, NULL);
    }
    if (st == GENIE_OK) {
        st = genie_cpu_check_same_shape(c, "self/output", c->in[0], out);
    }
    if (st != GENIE_OK) {
        return st;
    }
    if (c->in[1]->dtype != GENIE_BOOL) {
        return genie_set_error(GENIE_ERR_DTYPE, "%s: mask must be bool, got %s",
                               genie_cpu_opname(c), genie_dtype_name(c->in[1]->dtype));
    }
    st = genie_cpu_iter_init(c, out, c->in, 2, &it);
    if (st != GENIE_OK) {
        return st;
    }
    cx.dt[0] = out->dtype;
    cx.dt[1] = c->in[1]->dtype;     /* mask */
    cx.dt[2] = c->in[0]->dtype;     /* self */
    cx.fill_f = (float)v;
    cx.fill_i = vi;
    genie_cpu_iter_run(&it, genie_cpu_threads(c),
                       genie_dtype_is_float(out->dtype) ? sel_row_f32 : sel_row_i64, &cx);
    return GENIE_OK;
}

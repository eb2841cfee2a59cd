/*
 * Division with rounding and its remainders: floor_divide (.default and
 * .Scalar), div.Tensor_mode / div.Scalar_mode (rounding_mode "floor",
 * "trunc" or None), remainder (Python's sign: the divisor's) and fmod (C's
 * sign: the dividend's), in Tensor and Scalar forms.  Mixtral's router and
 * transformers' position arithmetic use floor_divide on integer tensors.
 *
 * The output dtype PyTorch's meta kernel chose picks the arithmetic: floating
 * outputs are computed in f32 with ATen's own formulas (div_floor_floating:
 * fmod, then correct the quotient towards -inf and round half-way errors;
 * remainder: fmod plus the divisor when the signs differ), so results match
 * bit for bit, signed zeros and inf/NaN included; integer outputs in i64 with
 * C's truncating / and % corrected the same way.  Integer division by zero is
 * PyTorch's "ZeroDivisionError" (GENIE_ERR_INVALID here); the row loop only
 * flags it and the op reports it after the loop.  INT64_MIN / -1, undefined
 * in C, wraps (quotient INT64_MIN, remainder 0).
 *
 * Scalars: for f16/bf16 outputs ATen keeps the divisor of floor/trunc/true
 * division in f32 (its reduced-float scalar path) but rounds the divisor of
 * remainder/fmod to the output dtype; a 0-d f32 tensor operand of a half
 * remainder is rounded the same way.  Both are reproduced.
 */
#include "cpu_internal.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

typedef enum dm_kind {
    DM_FLOOR_DIV,   /* floor(a / b) */
    DM_TRUNC_DIV,   /* trunc(a / b) */
    DM_TRUE_DIV,    /* a / b (rounding_mode None; floating outputs only) */
    DM_REMAINDER,   /* a - floor(a / b) * b */
    DM_FMOD,        /* a - trunc(a / b) * b */
} dm_kind_t;

typedef struct dm_ctx {
    dm_kind_t     kind;
    genie_dtype_t dt[3];      /* out, a, b */
    int           b_scalar;   /* b comes from bs_* instead of operand 2 */
    int           round_in[3];/* operand k is rounded through the f16/bf16 output dtype */
    float         bs_f;
    int64_t       bs_i;
    atomic_int    div_by_zero;
} dm_ctx_t;

/* ---- f32 ---------------------------------------------------------------------- */

/* ATen's div_floor_floating (c10/util/generic_math.h), in the same float steps. */
static float floor_div_f32(float a, float b)
{
    float mod, div, fl;

    if (b == 0.0f) {
        return a / b;
    }
    mod = fmodf(a, b);
    div = (a - mod) / b;
    if (mod != 0.0f && (b < 0.0f) != (mod < 0.0f)) {
        div -= 1.0f;
    }
    if (div == 0.0f) {
        return copysignf(0.0f, a / b);
    }
    fl = floorf(div);
    if (div - fl > 0.5f) {
        fl += 1.0f;
    }
    return fl;
}

static float dm_one_f32(dm_kind_t kind, float a, float b)
{
    float m;

    switch (kind) {
    case DM_FLOOR_DIV: return floor_div_f32(a, b);
    case DM_TRUNC_DIV: return truncf(a / b);
    case DM_TRUE_DIV:  return a / b;
    case DM_REMAINDER:
        m = fmodf(a, b);
        if (m != 0.0f && (b < 0.0f) != (m < 0.0f)) {
            m += b;
        }
        return m;
    case DM_FMOD:      return fmodf(a, b);
    }
    return 0.0f;
}

/* Round n values through dt (f16/bf16) into buf; returns buf. */
static const float *round_row(const float *src, int vec, int64_t n, genie_dtype_t dt,
                              float *buf)
{
    int64_t m = vec ? n : 1;

    for (int64_t i = 0; i < m; i++) {
        buf[i] = (float)genie_cpu_round_to(src[i], dt);
    }
    return buf;
}

static void dm_row_f32(void *vctx, int64_t n, char *const *p, const int64_t *s)
{
    dm_ctx_t *cx = vctx;
    float ba[CPU_CHUNK], bb[CPU_CHUNK], bo[CPU_CHUNK];
    int sa, sb = 0;
    const float *a = genie_cpu_row_f32(p[1], cx->dt[1], s[1], n, ba, &sa);
    const float *b = cx->b_scalar ? &cx->bs_f
                                  : genie_cpu_row_f32(p[2], cx->dt[2], s[2], n, bb, &sb);
    float *o = cx->dt[0] == GENIE_F32 && s[0] == 1 ? (float *)p[0] : bo;

    if (cx->round_in[1]) {
        a = round_row(a, sa, n, cx->dt[0], ba);
    }
    if (cx->round_in[2]) {
        b = round_row(b, sb, n, cx->dt[0], bb);
    }
    for (int64_t i = 0; i < n; i++) {
        o[i] = dm_one_f32(cx->kind, a[sa ? i : 0], b[sb ? i : 0]);
    }
    if (o == bo) {
        genie_cpu_store_f32(bo, n, p[0], cx->dt[0], s[0]);
    }
}

/* ---- i64 ---------------------------------------------------------------------- */

static int64_t dm_one_i64(dm_kind_t kind, int64_t a, int64_t b)
{
    int64_t q, r;

    if (b == -1) {                 /* INT64_MIN / -1 overflows: wrap like the hardware */
        q = (int64_t)(0u - (uint64_t)a);
        r = 0;
    } else {
        q = a / b;
        r = a % b;
    }
    switch (kind) {
    case DM_FLOOR_DIV: return r != 0 && (r < 0) != (b < 0) ? q - 1 : q;
    case DM_TRUNC_DIV: return q;
    case DM_REMAINDER: return r != 0 && (r < 0) != (b < 0) ? r + b : r;
    case DM_FMOD:      return r;
    case DM_TRUE_DIV:  break;      /* rejected before the loop */
    }
    return 0;
}

static void dm_row_i64(void *vctx, int64_t n, char *const *p, const int64_t *s)
{
    dm_ctx_t *cx = vctx;
    int64_t ba[CPU_CHUNK], bb[CPU_CHUNK], bo[CPU_CHUNK];
    int sa, sb = 0;
    const int64_t *a = genie_cpu_row_i64(p[1], cx->dt[1], s[1], n, ba, &sa);
    const int64_t *b = cx->b_scalar ? &cx->bs_i
                                    : genie_cpu_row_i64(p[2], cx->dt[2], s[2], n, bb, &sb);
    int zero = 0;

    for (int64_t i = 0; i < n; i++) {
        int64_t y = b[sb ? i : 0];
        if (y == 0) {
            zero = 1;
            bo[i] = 0;
            continue;
        }
        bo[i] = dm_one_i64(cx->kind, a[sa ? i : 0], y);
    }
    if (zero) {
        atomic_store_explicit(&cx->div_by_zero, 1, memory_order_relaxed);
    }
    genie_cpu_store_i64(bo, n, p[0], cx->dt[0], s[0]);
}

/* ---- entry -------------------------------------------------------------------- */

/* Tensor form: inputs (a, b).  Scalar form: input (a), attr 0 = b.
 * mode_attr: index of the rounding_mode attr (div.*_mode), or -1. */
static genie_status_t dm_run(const genie_op_call_t *c, dm_kind_t kind, int scalar_form,
                             int mode_attr)
{
    genie_tensor_t *out = &c->out[0];
    const genie_tensor_t *ins[2];
    uint32_t n_in = scalar_form ? 1 : 2;
    int is_float = genie_dtype_is_float(out->dtype);
    int half_out = out->dtype == GENIE_F16 || out->dtype == GENIE_BF16;
    double other = 0.0;
    int64_t other_i = 0;
    dm_ctx_t cx;
    cpu_iter_t it;
    genie_status_t st;

    memset(&cx, 0, sizeof(cx));
    cx.kind = kind;
    st = genie_cpu_check_call(c, n_in, n_in, 1);
    if (st == GENIE_OK && scalar_form) {
        st = genie_cpu_attr_scalar(c, 0, &other, &other_i, NULL);
    }
    if (st == GENIE_OK && mode_attr >= 0) {
        /* rounding_mode: str? -- None means true division */
        if (mode_attr < (int)c->node->n_attr &&
            c->node->attrs[mode_attr].tag == GENIE_ATTR_NONE) {
            cx.kind = kind = DM_TRUE_DIV;
        } else {
            const char *mode;
            st = genie_srg_attr_str(c->node, (uint32_t)mode_attr, &mode);
            if (st == GENIE_OK && strcmp(mode, "floor") == 0) {
                cx.kind = kind = DM_FLOOR_DIV;
            } else if (st == GENIE_OK && strcmp(mode, "trunc") == 0) {
                cx.kind = kind = DM_TRUNC_DIV;
            } else if (st == GENIE_OK) {
                return genie_set_error(GENIE_ERR_INVALID, "%s: rounding_mode must be None, "
                                       "'trunc' or 'floor', got '%s'", genie_cpu_opname(c), mode);
            }
        }
    }
    if (st != GENIE_OK) {
        return st;
    }
    for (uint32_t i = 0; i < n_in; i++) {
        ins[i] = c->in[i];
        if (!is_float && genie_dtype_is_float(c->in[i]->dtype)) {
            return genie_set_error(GENIE_ERR_DTYPE, "%s: %s input cannot produce a %s output",
                                   genie_cpu_opname(c), genie_dtype_name(c->in[i]->dtype),
                                   genie_dtype_name(out->dtype));
        }
    }
    if (out->dtype == GENIE_BOOL || (!is_float && kind == DM_TRUE_DIV)) {
        return genie_set_error(GENIE_ERR_DTYPE, "%s: not implemented for a %s output",
                               genie_cpu_opname(c), genie_dtype_name(out->dtype));
    }
    st = genie_cpu_iter_init(c, out, ins, (int)n_in, &it);
    if (st != GENIE_OK) {
        return st;
    }
    cx.dt[0] = out->dtype;
    cx.dt[1] = c->in[0]->dtype;
    cx.dt[2] = scalar_form ? out->dtype : c->in[1]->dtype;
    cx.b_scalar = scalar_form;
    cx.bs_f = (float)other;
    if (half_out && (kind == DM_REMAINDER || kind == DM_FMOD)) {
        cx.round_in[1] = cx.dt[1] != out->dtype;
        cx.round_in[2] = !scalar_form && cx.dt[2] != out->dtype;
        cx.bs_f = (float)genie_cpu_round_to(other, out->dtype);
    }
    cx.bs_i = other_i;
    atomic_init(&cx.div_by_zero, 0);
    genie_cpu_iter_run(&it, genie_cpu_threads(c), is_float ? dm_row_f32 : dm_row_i64, &cx);
    if (atomic_load(&cx.div_by_zero)) {
        return genie_set_error(GENIE_ERR_INVALID, "%s: ZeroDivisionError (integer division "
                               "by zero)", genie_cpu_opname(c));
    }
    return GENIE_OK;
}

/* floor_divide(self, other) */
genie_status_t genie_cpu_op_floor_divide(const genie_op_call_t *c)
{
    return dm_run(c, DM_FLOOR_DIV, 0, -1);
}

/*
 * Binary arithmetic, tensor-tensor and tensor-Scalar: add, sub, mul, div,
 * maximum, minimum, pow.Tensor_Scalar, rsub.Scalar.
 *
 * Every op runs through the broadcasting iterator.  The output dtype (chosen by
 * PyTorch's type promotion) picks the compute type: f32 for floating outputs,
 * i64 for integer/bool outputs (wrapping arithmetic, like ATen).  A row of a
 * non-f32 operand is converted into a stack buffer first, so each op has one
 * f32 and one i64 loop, with variants for a broadcast (stride-0) operand: the
 * same-shape case and the bias-row case (x + b with b of shape (C)) both reach
 * a unit-stride vectorised loop.  Scalar ops are the tensor op with a stride-0
 * second operand held in the context.
 */
#include "cpu_internal.h"

#include <math.h>

typedef enum bin_kind {
    BIN_ADD,    /* a + alpha * b */
    BIN_SUB,    /* a - alpha * b */
    BIN_MUL,
    BIN_DIV,    /* true division (outputs are always floating) */
    BIN_MAX,    /* NaN-propagating */
    BIN_MIN,
    BIN_POW,    /* a ^ b, b a Scalar */
    BIN_RSUB,   /* b - alpha * a */
} bin_kind_t;

typedef struct bin_ctx {
    bin_kind_t    kind;
    genie_dtype_t dt[3];       /* out, a, b */
    int           b_scalar;    /* b comes from bs_* instead of operand 2 */
    float         alpha_f, bs_f;
    int64_t       alpha_i, bs_i;
} bin_ctx_t;

/* ---- f32 loops ------------------------------------------------------------ */

/* Expand `expr` (in x = a element, y = b element) for the four stride cases
 * (sa, sb are 1 for a vector operand, 0 for a broadcast scalar). */
#define BIN_LOOPS(expr)                                                          \
    do {                                                                         \
        if (sa && sb) {                                                          \
            CPU_SIMD                                                             \
            for (int64_t i = 0; i < n; i++) {                                    \
                float x = a[i], y = b[i];                                        \
                (void)x, (void)y;                                                \
                o[i] = (expr);                                                   \
            }                                                                    \
        } else if (sa) {                                                         \
            const float y = b[0];                                                \
            CPU_SIMD                                                             \
            for (int64_t i = 0; i < n; i++) {                                    \
                float x = a[i];                                                  \
                (void)x, (void)y;                                                \
                o[i] = (expr);                                                   \
            }                                                                    \
        } else if (sb) {                                                         \
            const float x = a[0];                                                \
            CPU_SIMD                                                             \
            for (int64_t i = 0; i < n; i++) {                                    \
                float y = b[i];                                                  \
                (void)x, (void)y;                                                \
                o[i] = (expr);                                                   \
            }                                                                    \
        } else {                                                                 \
            const float x = a[0], y = b[0];                                      \
            (void)x, (void)y;                                                    \
            for (int64_t i = 0; i < n; i++) {                                    \
                o[i] = (expr);                                                   \
            }                                                                    \
        }                                                                        \
    } while (0)

CPU_MULTIVERSION
static void bin_f32(bin_kind_t kind, int64_t n, float *restrict o, const float *a, int sa,
                    const float *b, int sb, float alpha)
{
    switch (kind) {
    case BIN_ADD:
        if (alpha == 1.0f) {
            BIN_LOOPS(x + y);
        } else {
            BIN_LOOPS(x + alpha * y);
        }
        break;
    case BIN_SUB:
        if (alpha == 1.0f) {
            BIN_LOOPS(x - y);
        } else {
            BIN_LOOPS(x - alpha * y);
        }
        break;
    case BIN_RSUB:
        BIN_LOOPS(y - alpha * x);
        break;
    case BIN_MUL:
        BIN_LOOPS(x * y);
        break;
    case BIN_DIV:
        BIN_LOOPS(x / y);
        break;
    case BIN_MAX:
        BIN_LOOPS((x > y || x != x) ? x : y);
        break;
    case BIN_MIN:
        BIN_LOOPS((x < y || x != x) ? x : y);
        break;
    case BIN_POW: {
        /* Exponents PyTorch special-cases (pow_tensor_scalar_optimized). */
        float e = b[0];
        if (e == 2.0f) {
            BIN_LOOPS(x * x);
        } else if (e == 3.0f) {
            BIN_LOOPS(x * x * x);
        } else if (e == 0.5f) {
            for (int64_t i = 0; i < n; i++) {
                o[i] = sqrtf(a[sa ? i : 0]);
            }
        } else if (e == -1.0f) {
            BIN_LOOPS(1.0f / x);
        } else if (e == -2.0f) {
            BIN_LOOPS(1.0f / (x * x));
        } else {
            for (int64_t i = 0; i < n; i++) {
                o[i] = powf(a[sa ? i : 0], e);
            }
        }
        break;
    }
    }
}

/* ---- i64 path ----------------------------------------------------------------- */

/* Integer exponentiation by squaring with wrapping products (ATen's powi). */
static int64_t ipow(int64_t base, int64_t exp)
{
    uint64_t result = 1, b = (uint64_t)base;

    while (exp > 0) {
        if (exp & 1) {
            result *= b;
        }
        b *= b;
        exp >>= 1;
    }
    return (int64_t)result;
}

/* Wrapping arithmetic through uint64_t: signed overflow is undefined in C but
 * wraps in ATen. */
static int64_t bin_i64_one(bin_kind_t kind, int64_t x, int64_t y, int64_t alpha)
{
    switch (kind) {
    case BIN_ADD:  return (int64_t)((uint64_t)x + (uint64_t)alpha * (uint64_t)y);
    case BIN_SUB:  return (int64_t)((uint64_t)x - (uint64_t)alpha * (uint64_t)y);
    case BIN_RSUB: return (int64_t)((uint64_t)y - (uint64_t)alpha * (uint64_t)x);
    case BIN_MUL:  return (int64_t)((uint64_t)x * (uint64_t)y);
    case BIN_MAX:  return x > y ? x : y;
    case BIN_MIN:  return x < y ? x : y;
    case BIN_POW:  return ipow(x, y);
    case BIN_DIV:  break;      /* rejected before the loop: true division is float */
    }
    return 0;
}

/* ---- rows ----------------------------------------------------------------- */

static void bin_row_f32(void *vctx, int64_t n, char *const *p, const int64_t *s)
{
    const bin_ctx_t *cx = vctx;
    float ba[CPU_CHUNK], bb[CPU_CHUNK], bo[CPU_CHUNK];
    int sa, sb = 0;
    const float *a = genie_cpu_row_f32(p[1], cx->dt[1], s[1], n, ba, &sa);
    const float *b = cx->b_scalar ? &cx->bs_f
                                  : genie_cpu_row_f32(p[2], cx->dt[2], s[2], n, bb, &sb);
    float *o = cx->dt[0] == GENIE_F32 && s[0] == 1 ? (float *)p[0] : bo;

    bin_f32(cx->kind, n, o, a, sa, b, sb, cx->alpha_f);
    if (o == bo) {
        genie_cpu_store_f32(bo, n, p[0], cx->dt[0], s[0]);
    }
}

static void bin_row_i64(void *vctx, int64_t n, char *const *p, const int64_t *s)
{
    const bin_ctx_t *cx = vctx;
    int64_t ba[CPU_CHUNK], bb[CPU_CHUNK], bo[CPU_CHUNK];
    int sa, sb = 0;
    const int64_t *a = genie_cpu_row_i64(p[1], cx->dt[1], s[1], n, ba, &sa);
    const int64_t *b = cx->b_scalar ? &cx->bs_i
                                    : genie_cpu_row_i64(p[2], cx->dt[2], s[2], n, bb, &sb);

    for (int64_t i = 0; i < n; i++) {
        bo[i] = bin_i64_one(cx->kind, a[sa ? i : 0], b[sb ? i : 0], cx->alpha_i);
    }
    genie_cpu_store_i64(bo, n, p[0], cx->dt[0], s[0]);
}

/* ---- entry ---------------------------------------------------------------- */

/* Tensor form: inputs (a, b), attrs [alpha] when has_alpha.
 * Scalar form: input (a), attrs (other[, alpha]). */
static genie_status_t bin_run(const genie_op_call_t *c, bin_kind_t kind, int scalar_form,
                              int has_alpha)
{
    genie_tensor_t *out = &c->out[0];
    const genie_tensor_t *ins[2];
    uint32_t n_in = scalar_form ? 1 : 2;
    double alpha = 1.0, other = 0.0;
    int64_t alpha_i = 1, other_i = 0;
    int is_float = genie_dtype_is_float(out->dtype);
    bin_ctx_t cx = { .kind = kind };
    cpu_iter_t it;
    genie_status_t st;

    st = genie_cpu_check_call(c, n_in, n_in, 1);
    if (st == GENIE_OK && scalar_form) {
        st = genie_cpu_attr_scalar(c, 0, &other, &other_i, NULL);
    }
    if (st == GENIE_OK && has_alpha) {
        st = genie_cpu_attr_scalar(c, scalar_form ? 1 : 0, &alpha, &alpha_i, NULL);
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
    if (!is_float && kind == BIN_DIV) {
        return genie_set_error(GENIE_ERR_DTYPE, "%s: true division needs a floating output, "
                               "got %s", genie_cpu_opname(c), genie_dtype_name(out->dtype));
    }
    if (!is_float && kind == BIN_POW && other_i < 0) {
        return genie_set_error(GENIE_ERR_INVALID, "%s: integers to negative integer powers "
                               "are not allowed", genie_cpu_opname(c));
    }
    st = genie_cpu_iter_init(c, out, ins, (int)n_in, &it);
    if (st != GENIE_OK) {
        return st;
    }
    cx.dt[0] = out->dtype;
    cx.dt[1] = c->in[0]->dtype;
    cx.dt[2] = scalar_form ? out->dtype : c->in[1]->dtype;
    cx.b_scalar = scalar_form;
    cx.alpha_f = (float)alpha;
    cx.alpha_i = alpha_i;
    cx.bs_f = (float)other;
    cx.bs_i = other_i;
    genie_cpu_iter_run(&it, genie_cpu_threads(c), is_float ? bin_row_f32 : bin_row_i64, &cx);
    return GENIE_OK;
}

/* add.Tensor(self, other, *, alpha): out = self + alpha * other */
genie_status_t genie_cpu_op_add(const genie_op_call_t *c) { return bin_run(c, BIN_ADD, 0, 1); }
/* sub.Tensor(self, other, *, alpha): out = self - alpha * other */
genie_status_t genie_cpu_op_sub(const genie_op_call_t *c) { return bin_run(c, BIN_SUB, 0, 1); }
genie_status_t genie_cpu_op_mul(const genie_op_call_t *c) { return bin_run(c, BIN_MUL, 0, 0); }
genie_status_t genie_cpu_op_div(const genie_op_call_t *c) { return bin_run(c, BIN_DIV, 0, 0); }
genie_status_t genie_cpu_op_maximum(const genie_op_call_t *c) { return bin_run(c, BIN_MAX, 0, 0); }
genie_status_t genie_cpu_op_minimum(const genie_op_call_t *c) { return bin_run(c, BIN_MIN, 0, 0); }
/* add.Scalar(self, other, alpha) ... */
genie_status_t genie_cpu_op_add_scalar(const genie_op_call_t *c) { return bin_run(c, BIN_ADD, 1, 1); }
genie_status_t genie_cpu_op_sub_scalar(const genie_op_call_t *c) { return bin_run(c, BIN_SUB, 1, 1); }
genie_status_t genie_cpu_op_mul_scalar(const genie_op_call_t *c) { return bin_run(c, BIN_MUL, 1, 0); }
genie_status_t genie_cpu_op_div_scalar(const genie_op_call_t *c) { return bin_run(c, BIN_DIV, 1, 0); }
/* pow.Tensor_Scalar(self, exponent) */
genie_status_t genie_cpu_op_pow_scalar(const genie_op_call_t *c) { return bin_run(c, BIN_POW, 1, 0); }
/* rsub.Scalar(self, other, alpha): out = other - alpha * self */
genie_status_t genie_cpu_op_rsub_scalar(const genie_op_call_t *c) { return bin_run(c, BIN_RSUB, 1, 1); }

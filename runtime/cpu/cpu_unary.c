/*
 * Unary elementwise ops: neg, exp, log, sqrt, rsqrt, tanh, sigmoid, relu,
 * gelu (exact and tanh), silu, erf, abs, logical_not, bitwise_not.
 *
 * Floating outputs are computed in f32 with the vectorisable functions of
 * cpu_vmath.h (GELU, softmax-style exp and tanh dominate transformer
 * activations, so these loops matter); integer outputs (neg/abs/relu of an
 * int tensor, bitwise_not) in i64.  logical_not reads any dtype and writes
 * x == 0.  Rows come from the broadcasting iterator, so strided and expanded
 * inputs work without a copy.
 */
#include "cpu_internal.h"
#include "cpu_vmath.h"

#include <math.h>
#include <string.h>

typedef enum un_kind {
    UN_NEG, UN_EXP, UN_LOG, UN_SQRT, UN_RSQRT, UN_TANH, UN_SIGMOID, UN_RELU,
    UN_GELU, UN_GELU_TANH, UN_SILU, UN_ERF, UN_ABS, UN_LOGICAL_NOT, UN_BITWISE_NOT,
} un_kind_t;

typedef struct un_ctx {
    un_kind_t     kind;
    genie_dtype_t dt[2];     /* out, in */
} un_ctx_t;

#define UN_LOOP(expr)                                    \
    do {                                                 \
        CPU_SIMD                                         \
        for (int64_t i = 0; i < n; i++) {                \
            float x = a[i];                              \
            o[i] = (expr);                               \
        }                                                \
    } while (0)

CPU_MULTIVERSION
static void un_f32(un_kind_t kind, int64_t n, float *restrict o, const float *restrict a)
{
    switch (kind) {
    case UN_NEG:     UN_LOOP(-x); break;
    case UN_EXP:     UN_LOOP(cpu_expf(x)); break;
    case UN_TANH:    UN_LOOP(cpu_tanhf(x)); break;
    case UN_SIGMOID: UN_LOOP(cpu_sigmoidf(x)); break;
    case UN_RELU:    UN_LOOP(x < 0.0f ? 0.0f : x); break;      /* NaN stays NaN */
    case UN_SILU:    UN_LOOP(x * cpu_sigmoidf(x)); break;
    case UN_ERF:     UN_LOOP(cpu_erff(x)); break;
    case UN_ABS:     UN_LOOP(fabsf(x)); break;
    case UN_GELU:    UN_LOOP(0.5f * x * (1.0f + cpu_erff(x * 0.70710678118654752f))); break;
    case UN_GELU_TANH:
        UN_LOOP(0.5f * x * (1.0f + cpu_tanhf(0.79788456080286536f *
                                             (x + 0.044715f * (x * x * x)))));
        break;
    case UN_SQRT:
        for (int64_t i = 0; i < n; i++) {
            o[i] = sqrtf(a[i]);
        }
        break;
    case UN_RSQRT:
        for (int64_t i = 0; i < n; i++) {
            o[i] = 1.0f / sqrtf(a[i]);
        }
        break;
    case UN_LOG:
        for (int64_t i = 0; i < n; i++) {
            o[i] = logf(a[i]);
        }
        break;
    case UN_LOGICAL_NOT:
        UN_LOOP(x == 0.0f ? 1.0f : 0.0f);
        break;
    case UN_BITWISE_NOT:
        break;  /* integer only, rejected before the loop */
    }
}

static void un_row_f32(void *vctx, int64_t n, char *const *p, const int64_t *s)
{
    const un_ctx_t *cx = vctx;
    float ba[CPU_CHUNK], bo[CPU_CHUNK];
    int vec;
    const float *a = genie_cpu_row_f32(p[1], cx->dt[1], s[1], n, ba, &vec);
    float *o = cx->dt[0] == GENIE_F32 && s[0] == 1 ? (float *)p[0] : bo;

    if (!vec) {                 /* expanded input: materialise the row */
        for (int64_t i = 1; i < n; i++) {
            ba[i] = ba[0];
        }
    }
    un_f32(cx->kind, n, o, a);
    if (o == bo) {
        genie_cpu_store_f32(bo, n, p[0], cx->dt[0], s[0]);
    }
}

static void un_row_i64(void *vctx, int64_t n, char *const *p, const int64_t *s)
{
    const un_ctx_t *cx = vctx;
    int64_t ba[CPU_CHUNK], bo[CPU_CHUNK];
    int vec;
    const int64_t *a = genie_cpu_row_i64(p[1], cx->dt[1], s[1], n, ba, &vec);

    for (int64_t i = 0; i < n; i++) {
        int64_t x = a[vec ? i : 0];
        switch (cx->kind) {
        case UN_NEG:         bo[i] = (int64_t)(0u - (uint64_t)x); break;
        case UN_ABS:         bo[i] = x < 0 ? (int64_t)(0u - (uint64_t)x) : x; break;
        case UN_RELU:        bo[i] = x < 0 ? 0 : x; break;
        case UN_LOGICAL_NOT: bo[i] = x == 0; break;
        case UN_BITWISE_NOT: bo[i] = cx->dt[1] == GENIE_BOOL ? !x : ~x; break;
        default:             bo[i] = 0; break;   /* rejected before the loop */
        }
    }
    genie_cpu_store_i64(bo, n, p[0], cx->dt[0], s[0]);
}

/* logical_not of a float input into an integer/bool output: x == 0. */
static void lnot_row_f32in(void *vctx, int64_t n, char *const *p, const int64_t *s)
{
    const un_ctx_t *cx = vctx;
    float ba[CPU_CHUNK];
    int64_t bo[CPU_CHUNK];
    int vec;
    const float *a = genie_cpu_row_f32(p[1], cx->dt[1], s[1], n, ba, &vec);

    for (int64_t i = 0; i < n; i++) {
        bo[i] = a[vec ? i : 0] == 0.0f;
    }
    genie_cpu_store_i64(bo, n, p[0], cx->dt[0], s[0]);
}

static genie_status_t un_run(const genie_op_call_t *c, un_kind_t kind)
{
    genie_tensor_t *out = &c->out[0];
    const genie_tensor_t *x;
    un_ctx_t cx = { .kind = kind };
    cpu_iter_t it;
    cpu_row_fn fn;
    genie_status_t st;

    st = genie_cpu_check_call(c, 1, 1, 1);
    if (st != GENIE_OK) {
        return st;
    }
    x = c->in[0];
    if (kind == UN_GELU) {
        const char *approx;
        st = genie_srg_attr_str(c->node, 0, &approx);
        if (st != GENIE_OK) {
            return st;
        }
        if (strcmp(approx, "tanh") == 0) {
            cx.kind = kind = UN_GELU_TANH;
        } else if (strcmp(approx, "none") != 0) {
            return genie_set_error(GENIE_ERR_INVALID, "%s: unknown approximate='%s'",
                                   genie_cpu_opname(c), approx);
        }
    }
    cx.dt[0] = out->dtype;
    cx.dt[1] = x->dtype;
    if (kind == UN_LOGICAL_NOT) {
        fn = genie_dtype_is_float(out->dtype) ? un_row_f32
           : genie_dtype_is_float(x->dtype) ? lnot_row_f32in : un_row_i64;
    } else if (kind == UN_BITWISE_NOT) {
        if (genie_dtype_is_float(x->dtype) || genie_dtype_is_float(out->dtype)) {
            return genie_set_error(GENIE_ERR_DTYPE, "%s: needs an integer or bool tensor, "
                                   "got %s", genie_cpu_opname(c), genie_dtype_name(x->dtype));
        }
        fn = un_row_i64;
    } else if (genie_dtype_is_float(out->dtype)) {
        fn = un_row_f32;
    } else if ((kind == UN_NEG || kind == UN_ABS || kind == UN_RELU) &&
               !genie_dtype_is_float(x->dtype)) {
        fn = un_row_i64;
    } else {
        return genie_set_error(GENIE_ERR_DTYPE, "%s: unsupported dtypes %s -> %s",
                               genie_cpu_opname(c), genie_dtype_name(x->dtype),
                               genie_dtype_name(out->dtype));
    }
    st = genie_cpu_iter_init(c, out, &x, 1, &it);
    if (st != GENIE_OK) {
        return st;
    }
    genie_cpu_iter_run(&it, genie_cpu_threads(c), fn, &cx);
    return GENIE_OK;
}

genie_status_t genie_cpu_op_neg(const genie_op_call_t *c)     { return un_run(c, UN_NEG); }
genie_status_t genie_cpu_op_exp(const genie_op_call_t *c)     { return un_run(c, UN_EXP); }
genie_status_t genie_cpu_op_log(const genie_op_call_t *c)     { return un_run(c, UN_LOG); }
genie_status_t genie_cpu_op_sqrt(const genie_op_call_t *c)    { return un_run(c, UN_SQRT); }
genie_status_t genie_cpu_op_rsqrt(const genie_op_call_t *c)   { return un_run(c, UN_RSQRT); }
genie_status_t genie_cpu_op_tanh(const genie_op_call_t *c)    { return un_run(c, UN_TANH); }
genie_status_t genie_cpu_op_sigmoid(const genie_op_call_t *c) { return un_run(c, UN_SIGMOID); }
genie_status_t genie_cpu_op_relu(const genie_op_call_t *c)    { return un_run(c, UN_RELU); }
/* gelu(self, *, approximate: "none" | "tanh") */
genie_status_t genie_cpu_op_gelu(const genie_op_call_t *c)    { return un_run(c, UN_GELU); }
genie_status_t genie_cpu_op_silu(const genie_op_call_t *c)    { return un_run(c, UN_SILU); }
genie_status_t genie_cpu_op_erf(const genie_op_call_t *c)     { return un_run(c, UN_ERF); }
genie_status_t genie_cpu_op_abs(const genie_op_call_t *c)     { return un_run(c, UN_ABS); }
genie_status_t genie_cpu_op_logical_not(const genie_op_call_t *c)
{
    return un_run(c, UN_LOGICAL_NOT);
}
genie_status_t genie_cpu_op_bitwise_not(const genie_op_call_t *c)
{
    return un_run(c, UN_BITWISE_NOT);
}

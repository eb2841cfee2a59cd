/*
 * Unary float math outside the activation hot path: sin, cos (rotary
 * embeddings), and the other trigonometric, hyperbolic, logarithmic and
 * exponential functions PyTorch models reach.  cpu_unary.c keeps the
 * vectorised activations (exp, tanh, GELU, ...) that dominate transformer
 * time; these run once per forward on small tensors (a Llama's rotary table is
 * (T, head_dim)), so they favour accuracy over speed: each element is evaluated
 * in double with libm and rounded once to f32.  PyTorch's own kernels (SLEEF,
 * 1 ulp) then agree with ours to within an ulp everywhere, near tan's poles and
 * for large sin/cos arguments included, without a polynomial of our own per
 * function.  The output is always floating (PyTorch's meta kernel promotes
 * integer and bool inputs to the default float dtype); such inputs are read as
 * f32 first, as ATen casts them before computing.  f16/bf16 are computed in
 * f32 and rounded on store, as ATen does.
 */
#include "cpu_internal.h"

#include <math.h>

typedef enum um_kind {
    UM_SIN, UM_COS,
} um_kind_t;

typedef struct um_ctx {
    um_kind_t     kind;
    genie_dtype_t dt[2];     /* out, in */
} um_ctx_t;

#define UM_LOOP(expr)                                    \
    do {                                                 \
        for (int64_t i = 0; i < n; i++) {                \
            double x = a[vec ? i : 0];                   \
            o[i] = (float)(expr);                        \
        }                                                \
    } while (0)

static void um_row(void *vctx, int64_t n, char *const *p, const int64_t *s)
{
    const um_ctx_t *cx = vctx;
    float ba[CPU_CHUNK], bo[CPU_CHUNK];
    int vec;
    const float *a = genie_cpu_row_f32(p[1], cx->dt[1], s[1], n, ba, &vec);
    float *o = cx->dt[0] == GENIE_F32 && s[0] == 1 ? (float *)p[0] : bo;

    switch (cx->kind) {
    case UM_SIN: UM_LOOP(sin(x)); break;
    case UM_COS: UM_LOOP(cos(x)); break;
    }
    if (o == bo) {
        genie_cpu_store_f32(bo, n, p[0], cx->dt[0], s[0]);
    }
}

static genie_status_t um_run(const genie_op_call_t *c, um_kind_t kind)
{
    genie_tensor_t *out = &c->out[0];
    const genie_tensor_t *x;
    um_ctx_t cx = { .kind = kind };
    cpu_iter_t it;
    genie_status_t st;

    st = genie_cpu_check_call(c, 1, 1, 1);
    if (st != GENIE_OK) {
        return st;
    }
    x = c->in[0];
    if (!genie_dtype_is_float(out->dtype)) {
        return genie_set_error(GENIE_ERR_DTYPE, "%s: needs a floating output, got %s",
                               genie_cpu_opname(c), genie_dtype_name(out->dtype));
    }
    cx.dt[0] = out->dtype;
    cx.dt[1] = x->dtype;
    st = genie_cpu_iter_init(c, out, &x, 1, &it);
    if (st != GENIE_OK) {
        return st;
    }
    genie_cpu_iter_run(&it, genie_cpu_threads(c), um_row, &cx);
    return GENIE_OK;
}

genie_status_t genie_cpu_op_sin(const genie_op_call_t *c) { return um_run(c, UM_SIN); }
genie_status_t genie_cpu_op_cos(const genie_op_call_t *c) { return um_run(c, UM_COS); }

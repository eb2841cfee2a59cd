/*
 * Two-operand logical and bitwise ops: bitwise_and/or.Tensor (integer or bool
 * operands, bitwise on the i64 values) and logical_and/or (any dtypes: an
 * operand is true when non-zero).  transformers builds attention masks with
 * these (`mask_a & mask_b`).  Results go through the i64 row storer, so the
 * output dtype PyTorch chose (bool, or the promoted integer type) is honoured.
 */
#include "cpu_internal.h"

typedef enum logic_kind { LOG_BIT_AND, LOG_BIT_OR, LOG_AND, LOG_OR } logic_kind_t;

typedef struct logic_ctx {
    logic_kind_t  kind;
    genie_dtype_t dt[3];     /* out, a, b */
} logic_ctx_t;

static void logic_row(void *vctx, int64_t n, char *const *p, const int64_t *s)
{
    const logic_ctx_t *cx = vctx;
    int64_t ba[CPU_CHUNK], bb[CPU_CHUNK], bo[CPU_CHUNK];
    float fa[CPU_CHUNK], fb[CPU_CHUNK];
    int va, vb;

    if (cx->kind == LOG_AND || cx->kind == LOG_OR) {
        /* Read as f32 so that float operands (0.5 is true) are judged right. */
        const float *a = genie_cpu_row_f32(p[1], cx->dt[1], s[1], n, fa, &va);
        const float *b = genie_cpu_row_f32(p[2], cx->dt[2], s[2], n, fb, &vb);
        for (int64_t i = 0; i < n; i++) {
            int x = a[va ? i : 0] != 0.0f, y = b[vb ? i : 0] != 0.0f;
            bo[i] = cx->kind == LOG_AND ? (x && y) : (x || y);
        }
    } else {
        const int64_t *a = genie_cpu_row_i64(p[1], cx->dt[1], s[1], n, ba, &va);
        const int64_t *b = genie_cpu_row_i64(p[2], cx->dt[2], s[2], n, bb, &vb);
        for (int64_t i = 0; i < n; i++) {
            int64_t x = a[va ? i : 0], y = b[vb ? i : 0];
            bo[i] = cx->kind == LOG_BIT_AND ? (x & y) : (x | y);
        }
    }
    genie_cpu_store_i64(bo, n, p[0], cx->dt[0], s[0]);
}

static genie_status_t logic_run(const genie_op_call_t *c, logic_kind_t kind)
{
    genie_tensor_t *out = &c->out[0];
    const genie_tensor_t *ins[2];
    logic_ctx_t cx = { .kind = kind };
    cpu_iter_t it;
    genie_status_t st;

    st = genie_cpu_check_call(c, 2, 2, 1);
    if (st != GENIE_OK) {
        return st;
    }
    ins[0] = c->in[0];
    ins[1] = c->in[1];
    if ((kind == LOG_BIT_AND || kind == LOG_BIT_OR) &&
        (genie_dtype_is_float(ins[0]->dtype) || genie_dtype_is_float(ins[1]->dtype) ||
         genie_dtype_is_float(out->dtype))) {
        return genie_set_error(GENIE_ERR_DTYPE, "%s: needs integer or bool tensors, got %s and %s",
                               genie_cpu_opname(c), genie_dtype_name(ins[0]->dtype),
                               genie_dtype_name(ins[1]->dtype));
    }
    cx.dt[0] = out->dtype;
    cx.dt[1] = ins[0]->dtype;
    cx.dt[2] = ins[1]->dtype;
    st = genie_cpu_iter_init(c, out, ins, 2, &it);
    if (st != GENIE_OK) {
        return st;
    }
    genie_cpu_iter_run(&it, genie_cpu_threads(c), logic_row, &cx);
    return GENIE_OK;
}

genie_status_t genie_cpu_op_bitwise_and(const genie_op_call_t *c) { return logic_run(c, LOG_BIT_AND); }
genie_status_t genie_cpu_op_bitwise_or(const genie_op_call_t *c)  { return logic_run(c, LOG_BIT_OR); }
genie_status_t genie_cpu_op_logical_and(const genie_op_call_t *c) { return logic_run(c, LOG_AND); }
genie_status_t genie_cpu_op_logical_or(const genie_op_call_t *c)  { return logic_run(c, LOG_OR); }

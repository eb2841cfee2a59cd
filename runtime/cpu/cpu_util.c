/*
 * Helpers shared by the CPU kernels: thread count, argument checks, dimension
 * wrapping, and the row loaders/storers that convert between any tensor dtype
 * and the two compute types (f32 for floating outputs, i64 for integer and
 * bool outputs).  Keeping all dtype decoding here means each kernel is written
 * once, against contiguous f32 or i64 rows.
 */
#include "cpu_internal.h"

#include <stdio.h>
#include <string.h>

int genie_cpu_threads(const genie_op_call_t *c)
{
    if (c->backend == NULL || c->backend->n_threads < 1) {
        return 1;
    }
    return c->backend->n_threads;
}

const char *genie_cpu_opname(const genie_op_call_t *c)
{
    const char *name = c->node != NULL ? genie_op_name(c->node->op) : NULL;

    return name != NULL ? name : "cpu";
}

const char *genie_cpu_shape_str(int ndim, const int64_t *shape, char *buf, size_t len)
{
    size_t used = 0;

    buf[0] = '\0';
    used += (size_t)snprintf(buf + used, len - used, "(");
    for (int d = 0; d < ndim && used < len; d++) {
        used += (size_t)snprintf(buf + used, len - used, d ? ",%lld" : "%lld",
                                 (long long)shape[d]);
    }
    if (used < len) {
        snprintf(buf + used, len - used, ")");
    }
    return buf;
}

genie_status_t genie_cpu_check_call(const genie_op_call_t *c, uint32_t min_in,
                                    uint32_t max_in, uint32_t n_out)
{
    const char *op = genie_cpu_opname(c);
    int is_view = c->node != NULL && (genie_op_flags(c->node->op) & GENIE_OPF_VIEW);

    if (c->n_in < min_in || c->n_in > max_in) {
        return genie_set_error(GENIE_ERR_INVALID, "%s: expected %u..%u inputs, got %u", op,
                               min_in, max_in, c->n_in);
    }
    if (n_out != UINT32_MAX && c->n_out != n_out) {
        return genie_set_error(GENIE_ERR_INVALID, "%s: expected %u outputs, got %u", op,
                               n_out, c->n_out);
    }
    for (uint32_t i = 0; i < min_in; i++) {
        if (c->in[i] == NULL || c->in[i]->storage == NULL) {
            return genie_set_error(GENIE_ERR_INVALID, "%s: input %u is missing", op, i);
        }
    }
    for (uint32_t i = min_in; i < c->n_in; i++) {
        if (c->in[i] != NULL && c->in[i]->storage == NULL) {
            return genie_set_error(GENIE_ERR_INVALID, "%s: input %u has no storage", op, i);
        }
    }
    for (uint32_t i = 0; i < c->n_in; i++) {
        if (c->in[i] != NULL &&
            ((unsigned)c->in[i]->dtype >= GENIE_DTYPE_COUNT || c->in[i]->ndim < 0 ||
             c->in[i]->ndim > GENIE_MAX_DIMS)) {
            return genie_set_error(GENIE_ERR_INVALID, "%s: input %u has a bad dtype or rank",
                                   op, i);
        }
    }
    for (uint32_t i = 0; i < c->n_out; i++) {
        const genie_tensor_t *o = &c->out[i];
        if ((unsigned)o->dtype >= GENIE_DTYPE_COUNT || o->ndim < 0 ||
            o->ndim > GENIE_MAX_DIMS) {
            return genie_set_error(GENIE_ERR_INVALID, "%s: output %u has a bad dtype or rank",
                                   op, i);
        }
        if (!is_view && (o->storage == NULL ||
                         (genie_tensor_numel(o) > 0 && !genie_tensor_is_contiguous(o)))) {
            return genie_set_error(GENIE_ERR_INVALID,
                                   "%s: output %u must arrive allocated and contiguous", op, i);
        }
    }
    return GENIE_OK;
}

genie_status_t genie_cpu_wrap_dim(const genie_op_call_t *c, int64_t dim, int ndim, int *d_p)
{
    int64_t n = ndim > 0 ? ndim : 1;

    if (dim < -n || dim >= n) {
        return genie_set_error(GENIE_ERR_INVALID,
                               "%s: dim %lld out of range for a %d-d tensor",
                               genie_cpu_opname(c), (long long)dim, ndim);
    }
    *d_p = (int)(dim < 0 ? dim + n : dim);
    return GENIE_OK;
}

genie_status_t genie_cpu_check_same_shape(const genie_op_call_t *c, const char *what,
                                          const genie_tensor_t *a, const genie_tensor_t *b)
{
    char sa[160], sb[160];
    int same = a->ndim == b->ndim;

    for (int d = 0; same && d < a->ndim; d++) {
        same = a->shape[d] == b->shape[d];
    }
    if (same) {
        return GENIE_OK;
    }
    return genie_set_error(GENIE_ERR_SHAPE, "%s: %s shapes differ: %s vs %s",
                           genie_cpu_opname(c), what,
                           genie_cpu_shape_str(a->ndim, a->shape, sa, sizeof(sa)),
                           genie_cpu_shape_str(b->ndim, b->shape, sb, sizeof(sb)));
}

/* ---- element access ------------------------------------------------------ */

float genie_cpu_get_f32(const void *base, genie_dtype_t dt, int64_t i)
{
    switch (dt) {
    case GENIE_F32:  return ((const float *)base)[i];
    case GENIE_F16:  return genie_f16_to_f32(((const uint16_t *)base)[i]);
    case GENIE_BF16: return genie_bf16_to_f32(((const uint16_t *)base)[i]);
    case GENIE_I64:  return (float)((const int64_t *)base)[i];
    case GENIE_I32:  return (float)((const int32_t *)base)[i];
    case GENIE_BOOL: return ((const uint8_t *)base)[i] ? 1.0f : 0.0f;
    default:         return 0.0f;
    }
}

int64_t genie_cpu_get_i64(const void *base, genie_dtype_t dt, int64_t i)
{
    switch (dt) {
    case GENIE_F32:  return (int64_t)((const float *)base)[i];
    case GENIE_F16:  return (int64_t)genie_f16_to_f32(((const uint16_t *)base)[i]);
    case GENIE_BF16: return (int64_t)genie_bf16_to_f32(((const uint16_t *)base)[i]);
    case GENIE_I64:  return ((const int64_t *)base)[i];
    case GENIE_I32:  return ((const int32_t *)base)[i];
    case GENIE_BOOL: return ((const uint8_t *)base)[i] != 0;
    default:         return 0;
    }
}

double genie_cpu_round_to(double v, genie_dtype_t dt)
{
    switch (dt) {
    case GENIE_F32:  return (float)v;
    case GENIE_F16:  return genie_f16_to_f32(genie_f32_to_f16((float)v));
    case GENIE_BF16: return genie_bf16_to_f32(genie_f32_to_bf16((float)v));
    case GENIE_I64:  return (double)(int64_t)v;
    case GENIE_I32:  return (double)(int32_t)v;
    case GENIE_BOOL: return v != 0.0;
    default:         return v;
    }
}

int64_t genie_cpu_f64_to_i64(double v)
{
    if (v != v) {
        return 0;
    }
    if (v >= 9223372036854775807.0) {
        return INT64_MAX;
    }
    if (v <= -9223372036854775808.0) {
        return INT64_MIN;
    }
    return (int64_t)v;
}

genie_status_t genie_cpu_attr_scalar(const genie_op_call_t *c, uint32_t idx, double *f_p,
                                     int64_t *i_p, int *is_float_p)
{
    double f;
    genie_status_t st = genie_srg_attr_scalar(c->node, idx, &f);
    int is_float;

    if (st != GENIE_OK) {
        return st;
    }
    is_float = c->node->attrs[idx].tag == GENIE_ATTR_FLOAT;
    *f_p = f;
    *i_p = is_float ? genie_cpu_f64_to_i64(f) : c->node->attrs[idx].i;
    if (is_float_p != NULL) {
        *is_float_p = is_float;
    }
    return GENIE_OK;
}

/* ---- row conversion ------------------------------------------------------ */

void genie_cpu_load_f32(const void *src, genie_dtype_t dt, int64_t stride, int64_t n,
                        float *dst)
{
    switch (dt) {
    case GENIE_F32: {
        const float *s = src;
        if (stride == 1) {
            memcpy(dst, s, (size_t)n * sizeof(float));
        } else {
            for (int64_t i = 0; i < n; i++) {
                dst[i] = s[i * stride];
            }
        }
        break;
    }
    case GENIE_F16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++) {
            dst[i] = genie_f16_to_f32(s[i * stride]);
        }
        break;
    }
    case GENIE_BF16: {
        const uint16_t *s = src;
        CPU_SIMD
        for (int64_t i = 0; i < n; i++) {
            uint32_t bits = (uint32_t)s[i * stride] << 16;
            memcpy(&dst[i], &bits, sizeof(float));
        }
        break;
    }
    case GENIE_I64: {
        const int64_t *s = src;
        for (int64_t i = 0; i < n; i++) {
            dst[i] = (float)s[i * stride];
        }
        break;
    }
    case GENIE_I32: {
        const int32_t *s = src;
        for (int64_t i = 0; i < n; i++) {
            dst[i] = (float)s[i * stride];
        }
        break;
    }
    case GENIE_BOOL: {
        const uint8_t *s = src;
        for (int64_t i = 0; i < n; i++) {
            dst[i] = s[i * stride] ? 1.0f : 0.0f;
        }
        break;
    }
    default:
        break;
    }
}

void genie_cpu_store_f32(const float *src, int64_t n, void *dst, genie_dtype_t dt,
                         int64_t stride)
{
    switch (dt) {
    case GENIE_F32: {
        float *d = dst;
        if (stride == 1) {
            memcpy(d, src, (size_t)n * sizeof(float));
        } else {
            for (int64_t i = 0; i < n; i++) {
                d[i * stride] = src[i];
            }
        }
        break;
    }
    case GENIE_F16: {
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++) {
            d[i * stride] = genie_f32_to_f16(src[i]);
        }
        break;
    }
    case GENIE_BF16: {
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++) {
            d[i * stride] = genie_f32_to_bf16(src[i]);
        }
        break;
    }
    case GENIE_I64: {
        int64_t *d = dst;
        for (int64_t i = 0; i < n; i++) {
            d[i * stride] = (int64_t)src[i];
        }
        break;
    }
    case GENIE_I32: {
        int32_t *d = dst;
        for (int64_t i = 0; i < n; i++) {
            d[i * stride] = (int32_t)src[i];
        }
        break;
    }
    case GENIE_BOOL: {
        uint8_t *d = dst;
        for (int64_t i = 0; i < n; i++) {
            d[i * stride] = src[i] != 0.0f;
        }
        break;
    }
    default:
        break;
    }
}

void genie_cpu_load_i64(const void *src, genie_dtype_t dt, int64_t stride, int64_t n,
                        int64_t *dst)
{
    switch (dt) {
    case GENIE_I64: {
        const int64_t *s = src;
        if (stride == 1) {
            memcpy(dst, s, (size_t)n * sizeof(int64_t));
        } else {
            for (int64_t i = 0; i < n; i++) {
                dst[i] = s[i * stride];
            }
        }
        break;
    }
    case GENIE_I32: {
        const int32_t *s = src;
        for (int64_t i = 0; i < n; i++) {
            dst[i] = s[i * stride];
        }
        break;
    }
    case GENIE_BOOL: {
        const uint8_t *s = src;
        for (int64_t i = 0; i < n; i++) {
            dst[i] = s[i * stride] != 0;
        }
        break;
    }
    default:
        for (int64_t i = 0; i < n; i++) {
            dst[i] = genie_cpu_get_i64(src, dt, i * stride);
        }
        break;
    }
}

void genie_cpu_store_i64(const int64_t *src, int64_t n, void *dst, genie_dtype_t dt,
                         int64_t stride)
{
    switch (dt) {
    case GENIE_I64: {
        int64_t *d = dst;
        if (stride == 1) {
            memcpy(d, src, (size_t)n * sizeof(int64_t));
        } else {
            for (int64_t i = 0; i < n; i++) {
                d[i * stride] = src[i];
            }
        }
        break;
    }
    case GENIE_I32: {
        int32_t *d = dst;
        for (int64_t i = 0; i < n; i++) {
            d[i * stride] = (int32_t)src[i];
        }
        break;
    }
    case GENIE_BOOL: {
        uint8_t *d = dst;
        for (int64_t i = 0; i < n; i++) {
            d[i * stride] = src[i] != 0;
        }
        break;
    }
    default:
        for (int64_t i = 0; i < n; i++) {
            genie_store_from_f64(dst, dt, i * stride, (double)src[i]);
        }
        break;
    }
}

const float *genie_cpu_row_f32(const char *src, genie_dtype_t dt, int64_t stride, int64_t n,
                               float *buf, int *vec_p)
{
    if (stride == 0) {
        buf[0] = genie_cpu_get_f32(src, dt, 0);
        *vec_p = 0;
        return buf;
    }
    *vec_p = 1;
    if (dt == GENIE_F32 && stride == 1) {
        return (const float *)src;
    }
    genie_cpu_load_f32(src, dt, stride, n, buf);
    return buf;
}

const int64_t *genie_cpu_row_i64(const char *src, genie_dtype_t dt, int64_t stride, int64_t n,
                                 int64_t *buf, int *vec_p)
{
    if (stride == 0) {
        buf[0] = genie_cpu_get_i64(src, dt, 0);
        *vec_p = 0;
        return buf;
    }
    *vec_p = 1;
    if (dt == GENIE_I64 && stride == 1) {
        return (const int64_t *)src;
    }
    genie_cpu_load_i64(src, dt, stride, n, buf);
    return buf;
}

/*
 * Host-side tensor helpers: dtype tables, refcounted storage, strided copy with
 * dtype conversion, and the f16/bf16 <-> f32 conversions kernels rely on.
 * The strided copy walks the destination in row-major order with an index
 * vector so that any pair of layouts (transposed, expanded, sliced) works.
 */
#include "genie/tensor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const size_t dtype_sizes[GENIE_DTYPE_COUNT] = {
    [GENIE_F32] = 4, [GENIE_F16] = 2, [GENIE_BF16] = 2,
    [GENIE_I64] = 8, [GENIE_I32] = 4, [GENIE_BOOL] = 1,
};

static const char *const dtype_names[GENIE_DTYPE_COUNT] = {
    [GENIE_F32] = "float32", [GENIE_F16] = "float16", [GENIE_BF16] = "bfloat16",
    [GENIE_I64] = "int64",   [GENIE_I32] = "int32",   [GENIE_BOOL] = "bool",
};

size_t genie_dtype_size(genie_dtype_t dt)
{
    return (unsigned)dt < GENIE_DTYPE_COUNT ? dtype_sizes[dt] : 0;
}

const char *genie_dtype_name(genie_dtype_t dt)
{
    return (unsigned)dt < GENIE_DTYPE_COUNT ? dtype_names[dt] : "invalid";
}

bool genie_dtype_is_float(genie_dtype_t dt)
{
    return dt == GENIE_F32 || dt == GENIE_F16 || dt == GENIE_BF16;
}

const char *genie_shape_problem(genie_dtype_t dtype, int ndim, const int64_t *shape,
                                uint64_t *nbytes_p)
{
    uint64_t limit, bound = 1;
    int      empty = 0;

    if ((unsigned)dtype >= GENIE_DTYPE_COUNT) {
        return "has an invalid dtype";
    }
    if (ndim < 0 || ndim > GENIE_MAX_DIMS) {
        return "has ndim outside 0..8";
    }
    if (ndim > 0 && shape == NULL) {
        return "has ndim > 0 but no extents";
    }
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) {
            return "has a negative extent";
        }
        empty |= shape[d] == 0;
    }
    /* bound * elsize <= 2^62, checked one factor at a time so nothing
     * overflows: bound * e <= limit  <=>  bound <= floor(limit / e). */
    limit = GENIE_MAX_TENSOR_BYTES / dtype_sizes[dtype];
    for (int d = 0; d < ndim; d++) {
        uint64_t e = shape[d] == 0 ? 1 : (uint64_t)shape[d];

        if (bound > limit / e) {
            return empty ? "has extents whose product (zeros counted as 1) is more than 2^62 bytes"
                         : "describes more than 2^62 bytes";
        }
        bound *= e;
    }
    if (nbytes_p != NULL) {
        *nbytes_p = empty ? 0 : bound * dtype_sizes[dtype];
    }
    return NULL;
}

int64_t genie_tensor_numel(const genie_tensor_t *t)
{
    int64_t n = 1;

    for (int d = 0; d < t->ndim; d++) {
        n *= t->shape[d];
    }
    return n;
}

size_t genie_tensor_nbytes(const genie_tensor_t *t)
{
    return (size_t)genie_tensor_numel(t) * genie_dtype_size(t->dtype);
}

bool genie_tensor_is_contiguous(const genie_tensor_t *t)
{
    int64_t expect = 1;

    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->strides[d] != expect) {
            return false;
        }
        expect *= t->shape[d];
    }
    return true;
}

void *genie_tensor_data(const genie_tensor_t *t)
{
    if (t->storage == NULL) {
        return NULL;
    }
    return (char *)t->storage->data + t->offset * (int64_t)genie_dtype_size(t->dtype);
}

void genie_tensor_set_contiguous_strides(genie_tensor_t *t)
{
    int64_t s = 1;

    for (int d = t->ndim - 1; d >= 0; d--) {
        t->strides[d] = s;
        s *= t->shape[d];
    }
    t->offset = 0;
}

static void host_release(genie_storage_t *s)
{
    free(s->data);
    free(s);
}

genie_status_t genie_storage_alloc_host(size_t nbytes, genie_storage_t **storage_p)
{
    genie_storage_t *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        goto err_nomem;
    }
    /* 64 bytes: a cache line and an AVX-512 vector, what BLAS and vector
     * loads like. */
    if (posix_memalign(&s->data, 64, nbytes ? nbytes : 64) != 0) {
        goto err_free_struct;
    }
    s->nbytes   = nbytes;
    s->refcount = 1;
    s->release  = host_release;
    *storage_p  = s;
    return GENIE_OK;

err_free_struct:
    free(s);
err_nomem:
    return genie_set_error(GENIE_ERR_NOMEM, "out of memory for %zu bytes", nbytes);
}

genie_status_t genie_tensor_alloc(genie_dtype_t dt, int ndim, const int64_t *shape,
                                  genie_tensor_t *out_p)
{
    genie_tensor_t t = { .dtype = dt, .ndim = ndim };
    genie_status_t st;

    if ((unsigned)dt >= GENIE_DTYPE_COUNT || ndim < 0 || ndim > GENIE_MAX_DIMS) {
        return genie_set_error(GENIE_ERR_INVALID, "tensor alloc: bad dtype %d or ndim %d",
                               (int)dt, ndim);
    }
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) {
            return genie_set_error(GENIE_ERR_INVALID, "tensor alloc: negative extent");
        }
        t.shape[d] = shape[d];
    }
    genie_tensor_set_contiguous_strides(&t);
    st = genie_storage_alloc_host(genie_tensor_nbytes(&t), &t.storage);
    if (st != GENIE_OK) {
        return st;
    }
    *out_p = t;
    return GENIE_OK;
}

void genie_tensor_share(const genie_tensor_t *src, genie_tensor_t *out_p)
{
    *out_p = *src;
    if (src->storage != NULL) {
        src->storage->refcount++;
    }
}

void genie_tensor_release(genie_tensor_t *t)
{
    if (t->storage != NULL && --t->storage->refcount == 0) {
        t->storage->release(t->storage);
    }
    t->storage = NULL;
}

/* ---- scalar conversions ------------------------------------------------ */

float genie_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp  = (h >> 10) & 0x1fu;
    uint32_t man  = h & 0x3ffu;
    uint32_t bits;
    float f;

    if (exp == 0) {
        /* zero or subnormal: value = man * 2^-24 */
        f = (float)man * 0x1p-24f;
        return sign ? -f : f;
    }
    if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    }
    memcpy(&f, &bits, sizeof(f));
    return f;
}

uint16_t genie_f32_to_f16(float f)
{
    uint32_t x;
    uint32_t sign, man;
    int32_t exp;

    memcpy(&x, &f, sizeof(x));
    sign = (x >> 16) & 0x8000u;
    exp  = (int32_t)((x >> 23) & 0xffu) - 127 + 15;
    man  = x & 0x7fffffu;

    if (((x >> 23) & 0xffu) == 0xffu) {            /* inf / nan */
        return (uint16_t)(sign | 0x7c00u | (man ? 0x200u : 0));
    }
    if (exp >= 31) {                               /* overflow -> inf */
        return (uint16_t)(sign | 0x7c00u);
    }
    if (exp <= 0) {                                /* subnormal or zero */
        if (exp < -10) {
            return (uint16_t)sign;
        }
        man |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half  = 1u << (shift - 1);
        uint32_t rem   = man & ((1u << shift) - 1);
        uint32_t out   = man >> shift;
        if (rem > half || (rem == half && (out & 1u))) {
            out++;
        }
        return (uint16_t)(sign | out);
    }
    uint32_t out = sign | ((uint32_t)exp << 10) | (man >> 13);
    uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (out & 1u))) {
        out++;                                     /* may carry into exp: correct */
    }
    return (uint16_t)out;
}

float genie_bf16_to_f32(uint16_t b)
{
    uint32_t bits = (uint32_t)b << 16;
    float f;

    memcpy(&f, &bits, sizeof(f));
    return f;
}

uint16_t genie_f32_to_bf16(float f)
{
    uint32_t x;

    memcpy(&x, &f, sizeof(x));
    if ((x & 0x7fffffffu) > 0x7f800000u) {
        return (uint16_t)((x >> 16) | 0x40u);      /* quiet nan */
    }
    x += 0x7fffu + ((x >> 16) & 1u);               /* round to nearest even */
    return (uint16_t)(x >> 16);
}

double genie_load_as_f64(const void *base, genie_dtype_t dt, int64_t i)
{
    switch (dt) {
    case GENIE_F32:  return ((const float *)base)[i];
    case GENIE_F16:  return genie_f16_to_f32(((const uint16_t *)base)[i]);
    case GENIE_BF16: return genie_bf16_to_f32(((const uint16_t *)base)[i]);
    case GENIE_I64:  return (double)((const int64_t *)base)[i];
    case GENIE_I32:  return ((const int32_t *)base)[i];
    case GENIE_BOOL: return ((const uint8_t *)base)[i] ? 1.0 : 0.0;
    default:         return 0.0;
    }
}

void genie_store_from_f64(void *base, genie_dtype_t dt, int64_t i, double v)
{
    switch (dt) {
    case GENIE_F32:  ((float *)base)[i] = (float)v; break;
    case GENIE_F16:  ((uint16_t *)base)[i] = genie_f32_to_f16((float)v); break;
    case GENIE_BF16: ((uint16_t *)base)[i] = genie_f32_to_bf16((float)v); break;
    case GENIE_I64:  ((int64_t *)base)[i] = (int64_t)v; break;
    case GENIE_I32:  ((int32_t *)base)[i] = (int32_t)v; break;
    case GENIE_BOOL: ((uint8_t *)base)[i] = v != 0.0; break;
    default:         break;
    }
}

/* ---- strided copy ------------------------------------------------------ */

/* Copy one element between possibly different dtypes.  Integer <-> integer
 * copies go through int64 so that large i64 values survive exactly. */
static void copy_elem(const char *src, genie_dtype_t sdt, char *dst, genie_dtype_t ddt)
{
    if (sdt == ddt) {
        memcpy(dst, src, genie_dtype_size(sdt));
        return;
    }
    if (!genie_dtype_is_float(sdt) && !genie_dtype_is_float(ddt)) {
        int64_t v = sdt == GENIE_I64 ? *(const int64_t *)src
                  : sdt == GENIE_I32 ? *(const int32_t *)src
                  : (int64_t)(*(const uint8_t *)src != 0);
        if (ddt == GENIE_I64) {
            *(int64_t *)dst = v;
        } else if (ddt == GENIE_I32) {
            *(int32_t *)dst = (int32_t)v;
        } else {
            *(uint8_t *)dst = v != 0;
        }
        return;
    }
    genie_store_from_f64(dst, ddt, 0, genie_load_as_f64(src, sdt, 0));
}

genie_status_t genie_tensor_copy(const genie_tensor_t *src, genie_tensor_t *dst)
{
    int64_t idx[GENIE_MAX_DIMS] = { 0 };
    size_t ses = genie_dtype_size(src->dtype), des = genie_dtype_size(dst->dtype);
    int64_t n = genie_tensor_numel(dst);
    const char *sbase;
    char *dbase;

    if (src->ndim != dst->ndim) {
        return genie_set_error(GENIE_ERR_SHAPE, "copy: rank %d vs %d", src->ndim, dst->ndim);
    }
    for (int d = 0; d < dst->ndim; d++) {
        if (src->shape[d] != dst->shape[d]) {
            return genie_set_error(GENIE_ERR_SHAPE, "copy: extent mismatch in dim %d", d);
        }
    }
    if (n == 0) {
        return GENIE_OK;
    }
    sbase = genie_tensor_data(src);
    dbase = genie_tensor_data(dst);
    if (src->dtype == dst->dtype && genie_tensor_is_contiguous(src) &&
        genie_tensor_is_contiguous(dst)) {
        memmove(dbase, sbase, (size_t)n * ses);
        return GENIE_OK;
    }
    for (int64_t k = 0; k < n; k++) {
        int64_t so = 0, dof = 0;
        for (int d = 0; d < dst->ndim; d++) {
            so  += idx[d] * src->strides[d];
            dof += idx[d] * dst->strides[d];
        }
        copy_elem(sbase + so * (int64_t)ses, src->dtype, dbase + dof * (int64_t)des, dst->dtype);
        for (int d = dst->ndim - 1; d >= 0; d--) {
            if (++idx[d] < dst->shape[d]) {
                break;
            }
            idx[d] = 0;
        }
    }
    return GENIE_OK;
}

genie_status_t genie_tensor_contiguous(const genie_tensor_t *src, genie_tensor_t *out_p)
{
    genie_tensor_t t;
    genie_status_t st;

    if (genie_tensor_is_contiguous(src)) {
        genie_tensor_share(src, out_p);
        return GENIE_OK;
    }
    st = genie_tensor_alloc(src->dtype, src->ndim, src->shape, &t);
    if (st != GENIE_OK) {
        return st;
    }
    st = genie_tensor_copy(src, &t);
    if (st != GENIE_OK) {
        genie_tensor_release(&t);
        return st;
    }
    *out_p = t;
    return GENIE_OK;
}

/*
 * Tensors of the executor: a refcounted storage buffer plus a strided view.
 *
 * Legend: shape[d] is the extent of dimension d, strides[d] the distance in
 * *elements* between neighbours along d, offset the element index of [0,...,0]
 * inside the storage.  A tensor with ndim == 0 is a scalar holding one element.
 * Views (transpose, slice, expand, ...) share the storage and bump its refcount;
 * compute ops always produce fresh contiguous tensors.
 */
#ifndef GENIE_TENSOR_H
#define GENIE_TENSOR_H

#include <stdbool.h>
#include <stdint.h>

#include "genie/status.h"

#define GENIE_MAX_DIMS 8

/* Numbering is part of the SRG and wire formats: append only. */
typedef enum genie_dtype {
    GENIE_F32  = 0,
    GENIE_F16  = 1,
    GENIE_BF16 = 2,
    GENIE_I64  = 3,
    GENIE_I32  = 4,
    GENIE_BOOL = 5,
    GENIE_DTYPE_COUNT
} genie_dtype_t;

typedef struct genie_storage genie_storage_t;

struct genie_storage {
    void   *data;     /* backend memory (host memory for the CPU backend) */
    size_t  nbytes;
    int     refcount;
    /* Frees `data` and the struct itself; set by whoever allocated it. */
    void  (*release)(genie_storage_t *s);
    void   *owner;    /* backend-private (device id, registered handle, ...) */
};

typedef struct genie_tensor {
    genie_dtype_t    dtype;
    int              ndim;
    int64_t          shape[GENIE_MAX_DIMS];   /* (ndim) */
    int64_t          strides[GENIE_MAX_DIMS]; /* (ndim), in elements */
    int64_t          offset;                  /* in elements */
    genie_storage_t *storage;                 /* NULL only for an empty slot */
} genie_tensor_t;

size_t      genie_dtype_size(genie_dtype_t dt);
const char *genie_dtype_name(genie_dtype_t dt);
bool        genie_dtype_is_float(genie_dtype_t dt);

/* The bound every tensor that crosses a process boundary must keep (SRG
 * values, wire tensors, weights, objects): a valid dtype, 0 <= ndim <= 8,
 * every extent >= 0, and the product of the extents -- a zero extent counted
 * as 1 -- times the element size at most GENIE_MAX_TENSOR_BYTES.  Counting
 * zeros as 1 bounds every partial product too, so contiguous strides, numel
 * and any loop bound over a subset of the dims fit in int64 even for an
 * empty tensor, whose other extents could otherwise be anything.  NULL when
 * the shape is fine, else a static phrase for the caller's message ("has a
 * negative extent", ...); *nbytes_p (may be NULL) gets numel * elsize. */
#define GENIE_MAX_TENSOR_BYTES (UINT64_C(1) << 62)
const char *genie_shape_problem(genie_dtype_t dtype, int ndim, const int64_t *shape,
                                uint64_t *nbytes_p);

int64_t genie_tensor_numel(const genie_tensor_t *t);
size_t  genie_tensor_nbytes(const genie_tensor_t *t);      /* numel * elsize */
bool    genie_tensor_is_contiguous(const genie_tensor_t *t);
void   *genie_tensor_data(const genie_tensor_t *t);        /* &element[0,...,0] */

/* Fill strides for a row-major (contiguous) layout of t->shape. */
void genie_tensor_set_contiguous_strides(genie_tensor_t *t);

/* New host storage of nbytes (64-byte aligned, refcount 1, release frees it).
 * Shared by genie_tensor_alloc and the CPU backend's allocator. */
genie_status_t genie_storage_alloc_host(size_t nbytes, genie_storage_t **storage_p);

/* New contiguous host tensor (malloc'd storage, refcount 1). */
genie_status_t genie_tensor_alloc(genie_dtype_t dt, int ndim, const int64_t *shape,
                                  genie_tensor_t *out_p);

/* out_p becomes a view sharing src's storage (refcount + 1). */
void genie_tensor_share(const genie_tensor_t *src, genie_tensor_t *out_p);

/* Drop the reference held by t and clear it. Safe on an empty tensor. */
void genie_tensor_release(genie_tensor_t *t);

/* Copy src (any strides) into dst (any strides, same shape), converting dtype. */
genie_status_t genie_tensor_copy(const genie_tensor_t *src, genie_tensor_t *dst);

/* New contiguous copy of src (or a shared view if already contiguous). */
genie_status_t genie_tensor_contiguous(const genie_tensor_t *src, genie_tensor_t *out_p);

/* Scalar conversions used by kernels that compute in f32. */
float    genie_f16_to_f32(uint16_t h);
uint16_t genie_f32_to_f16(float f);
float    genie_bf16_to_f32(uint16_t b);
uint16_t genie_f32_to_bf16(float f);   /* round to nearest even, like PyTorch */

/* Read element i of a contiguous buffer of dtype dt as double / write it. */
double genie_load_as_f64(const void *base, genie_dtype_t dt, int64_t i);
void   genie_store_from_f64(void *base, genie_dtype_t dt, int64_t i, double v);

#endif

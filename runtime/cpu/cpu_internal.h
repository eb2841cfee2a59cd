/*
 * Private header of the CPU backend (runtime/cpu): the op entry points that
 * cpu_backend.c puts into the function table, and the small helpers the kernel
 * files share (argument checks, dimension wrapping, row conversion between any
 * dtype and the f32/i64 compute types, the broadcasting iterator, the strided
 * copy and the parallel-loop macros).  Nothing here is visible outside
 * runtime/cpu.
 *
 * Conventions every kernel follows (see backend.h and ops.def):
 *  - inputs are read in their own dtype and strides (never assumed contiguous);
 *  - non-view outputs arrive allocated and contiguous in the dtype PyTorch's meta
 *    kernel chose, so type promotion is already decided: float outputs are
 *    computed in f32 (f64 where accumulation error matters), integer and bool
 *    outputs in i64;
 *  - the kernel that detects a problem records it with genie_set_error() naming
 *    the op, and returns the negative status.
 *
 * Legend for shapes in comments: n = element count of a row, N = numel.
 */
#ifndef GENIE_CPU_INTERNAL_H
#define GENIE_CPU_INTERNAL_H

#include <stdint.h>

#include "genie/backend.h"

/* ---- parallel loops --------------------------------------------------- */

/* `#pragma omp simd` forces vectorisation of a loop even when the build's
 * optimisation level would not (GCC's -O2 "very cheap" cost model skips most
 * loops with a remainder); it also allows vectorised float reductions. */
#ifdef _OPENMP
#define CPU_PRAGMA(x)       _Pragma(#x)
#define CPU_SIMD            _Pragma("omp simd")
#define CPU_SIMD_SUM(var)   CPU_PRAGMA(omp simd reduction(+:var))
#else
#define CPU_SIMD
#define CPU_SIMD_SUM(var)
#endif

/* Work below this many elements (or multiply-adds) runs on the calling thread:
 * waking the pool costs a few microseconds, more than such loops take. */
#define CPU_PAR_GRAIN 32768

/* Hot element loops are compiled for three ISA levels and picked at load time
 * (GCC function multi-versioning), so the library keeps running on any x86-64
 * while using AVX2/AVX-512 where the machine has it, as PyTorch does. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define CPU_MULTIVERSION \
    __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define CPU_MULTIVERSION
#endif

/* Number of threads for an op call (the backend's setting, at least 1). */
int genie_cpu_threads(const genie_op_call_t *c);

/* ---- argument checks ---------------------------------------------------- */

/* ATen overload name of the call's op, for error messages. */
const char *genie_cpu_opname(const genie_op_call_t *c);

/* Check the call has between min_in and max_in inputs, the first min_in of
 * them present, and exactly n_out outputs.  For non-view ops also checks that
 * every output is allocated and contiguous (the executor's promise). */
genie_status_t genie_cpu_check_call(const genie_op_call_t *c, uint32_t min_in,
                                    uint32_t max_in, uint32_t n_out);

/* Wrap a possibly negative dim into [0, ndim) like ATen's maybe_wrap_dim
 * (a 0-d tensor accepts -1 and 0 and maps them to 0). */
genie_status_t genie_cpu_wrap_dim(const genie_op_call_t *c, int64_t dim, int ndim,
                                  int *d_p);

/* GENIE_ERR_SHAPE unless a and b have the same ndim and extents; `what`
 * names the pair in the message. */
genie_status_t genie_cpu_check_same_shape(const genie_op_call_t *c, const char *what,
                                          const genie_tensor_t *a, const genie_tensor_t *b);

/* Format "(2,3,4)" into buf (for messages). Returns buf. */
const char *genie_cpu_shape_str(int ndim, const int64_t *shape, char *buf, size_t len);

/* double -> i64 without undefined behaviour: NaN -> 0, out-of-range values
 * saturate (used for Scalar attributes applied to integer tensors). */
int64_t genie_cpu_f64_to_i64(double v);

/* Read Scalar attribute idx both as double and as exact i64 (an INT attribute
 * keeps all 64 bits; a FLOAT one saturates).  is_float_p (may be NULL) tells
 * whether the number was given as a float. */
genie_status_t genie_cpu_attr_scalar(const genie_op_call_t *c, uint32_t idx, double *f_p,
                                     int64_t *i_p, int *is_float_p);

/* ---- row conversion ----------------------------------------------------- */

/* Read n elements of dtype dt starting at src with stride `stride` (elements)
 * into dst as f32 / i64, and the reverse.  These are the only places kernels
 * touch f16/bf16/int bits. */
void genie_cpu_load_f32(const void *src, genie_dtype_t dt, int64_t stride, int64_t n,
                        float *dst);
void genie_cpu_store_f32(const float *src, int64_t n, void *dst, genie_dtype_t dt,
                         int64_t stride);
void genie_cpu_load_i64(const void *src, genie_dtype_t dt, int64_t stride, int64_t n,
                        int64_t *dst);
void genie_cpu_store_i64(const int64_t *src, int64_t n, void *dst, genie_dtype_t dt,
                         int64_t stride);

/* Element i (stride-free index) of a buffer of dtype dt, as float / i64. */
float   genie_cpu_get_f32(const void *base, genie_dtype_t dt, int64_t i);
int64_t genie_cpu_get_i64(const void *base, genie_dtype_t dt, int64_t i);

/* A Scalar attribute rounded through dtype dt (what PyTorch does when it wraps a
 * Python number into the op's compute type), returned as double. */
double genie_cpu_round_to(double v, genie_dtype_t dt);

/* One row operand for a kernel computing in f32 / i64: returns src itself
 * when it already is the compute type with unit stride, a single converted
 * element with *vec_p = 0 when stride is 0 (broadcast), otherwise the row
 * converted into buf (n entries).  *vec_p is 1 for a full row. */
const float   *genie_cpu_row_f32(const char *src, genie_dtype_t dt, int64_t stride, int64_t n,
                                 float *buf, int *vec_p);
const int64_t *genie_cpu_row_i64(const char *src, genie_dtype_t dt, int64_t stride, int64_t n,
                                 int64_t *buf, int *vec_p);

/* ---- broadcasting iterator ---------------------------------------------- */

#define CPU_ITER_MAX_OPS 4    /* output + up to 3 inputs (where.self) */
#define CPU_CHUNK        1024 /* elements per row call: fits conversion buffers on the stack */

/* Operand 0 is the output, operands 1.. the inputs broadcast to its shape.
 * Dimensions that are contiguous for every operand are merged, so a same-shape
 * contiguous op becomes 1-D and a bias add stays 2-D with an inner stride 1. */
typedef struct cpu_iter {
    int           n_ops;
    int           ndim;                                   /* >= 1 after merging */
    int64_t       numel;
    int64_t       shape[GENIE_MAX_DIMS];                  /* (ndim) */
    int64_t       strides[CPU_ITER_MAX_OPS][GENIE_MAX_DIMS]; /* (n_ops, ndim), elements */
    char         *base[CPU_ITER_MAX_OPS];                 /* &element[0,...,0] */
    genie_dtype_t dtype[CPU_ITER_MAX_OPS];
    size_t        elsize[CPU_ITER_MAX_OPS];
} cpu_iter_t;

/* Called with at most CPU_CHUNK elements: ptrs[k] points at operand k's first
 * element of the row, strides[k] is its inner stride in elements (0 for a
 * broadcast operand). */
typedef void (*cpu_row_fn)(void *ctx, int64_t n, char *const *ptrs, const int64_t *strides);

/* Build an iterator over `out` and `n_in` inputs (each broadcastable to out's
 * shape: GENIE_ERR_SHAPE otherwise).  A NULL input slot is not allowed. */
genie_status_t genie_cpu_iter_init(const genie_op_call_t *c, genie_tensor_t *out,
                                   const genie_tensor_t *const *in, int n_in,
                                   cpu_iter_t *it_p);

/* Run fn over every row chunk, in parallel when the iterator is large. */
void genie_cpu_iter_run(const cpu_iter_t *it, int n_threads, cpu_row_fn fn, void *ctx);

/* Strides of `t` broadcast to an ndim-dimensional shape (right-aligned; 0 for
 * broadcast dims).  GENIE_ERR_SHAPE names the op when not broadcastable. */
genie_status_t genie_cpu_broadcast_strides(const genie_op_call_t *c, const genie_tensor_t *t,
                                           int ndim, const int64_t *shape,
                                           int64_t *strides_p);

/* ---- copies --------------------------------------------------------------- */

/* dst = src converted to dst's dtype; both strided, same shape (src may carry
 * zero strides from broadcasting).  Fast paths for same-dtype row copies. */
genie_status_t genie_cpu_copy(const genie_op_call_t *c, int n_threads,
                              const genie_tensor_t *src, genie_tensor_t *dst);

/* out_p = contiguous copy of src made with genie_cpu_copy (or a shared view if
 * src is already contiguous). */
genie_status_t genie_cpu_contiguous(const genie_op_call_t *c, const genie_tensor_t *src,
                                    int n_threads, genie_tensor_t *out_p);

/* ---- matrix products --------------------------------------------------- */

/* Row-major C (M, N, row stride ldc) = alpha * op(A) op(B) + beta * C with
 * op(A) (M, K), op(B) (K, N); trans_* select the transposed storage (lda/ldb
 * are the storage row strides, as in cblas).  Split over n_threads OpenMP
 * threads around single-threaded OpenBLAS calls (see cpu_gemm.c).  Must not
 * be called from inside an OpenMP parallel region with n_threads > 1; inside
 * one, pass n_threads = 1. */
void genie_cpu_sgemm(int n_threads, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                     float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                     float beta, float *C, int64_t ldc);

/* ---- op entry points (one per ops.def entry, grouped by file) ----------- */
#define CPU_OP(name) genie_status_t genie_cpu_op_##name(const genie_op_call_t *c)

/* cpu_views.c */
CPU_OP(view);  CPU_OP(alias); CPU_OP(expand); CPU_OP(transpose); CPU_OP(t);
CPU_OP(permute); CPU_OP(unsqueeze); CPU_OP(squeeze_dim); CPU_OP(select);
CPU_OP(slice); CPU_OP(split);
/* cpu_copy.c */
CPU_OP(clone); CPU_OP(to_copy); CPU_OP(copy); CPU_OP(cat);
/* cpu_index.c */
CPU_OP(embedding); CPU_OP(gather); CPU_OP(index_select); CPU_OP(index);
/* cpu_binary.c */
CPU_OP(add); CPU_OP(sub); CPU_OP(mul); CPU_OP(div); CPU_OP(maximum); CPU_OP(minimum);
CPU_OP(add_scalar); CPU_OP(sub_scalar); CPU_OP(mul_scalar); CPU_OP(div_scalar);
CPU_OP(pow_scalar); CPU_OP(rsub_scalar);
/* cpu_unary.c */
CPU_OP(neg); CPU_OP(exp); CPU_OP(log); CPU_OP(sqrt); CPU_OP(rsqrt); CPU_OP(tanh);
CPU_OP(sigmoid); CPU_OP(relu); CPU_OP(gelu); CPU_OP(silu); CPU_OP(erf); CPU_OP(abs);
CPU_OP(logical_not); CPU_OP(bitwise_not);
/* cpu_compare.c */
CPU_OP(eq); CPU_OP(eq_scalar); CPU_OP(ne_scalar); CPU_OP(lt_scalar); CPU_OP(gt_scalar);
CPU_OP(le_scalar); CPU_OP(ge_scalar); CPU_OP(where); CPU_OP(masked_fill);
/* cpu_fill.c */
CPU_OP(tril); CPU_OP(triu); CPU_OP(fill); CPU_OP(arange); CPU_OP(full);
/* cpu_norm.c */
CPU_OP(layer_norm);
/* cpu_matmul.c */
CPU_OP(addmm); CPU_OP(mm); CPU_OP(bmm); CPU_OP(baddbmm);
/* cpu_softmax.c */
CPU_OP(softmax); CPU_OP(safe_softmax); CPU_OP(log_softmax);
/* cpu_reduce.c */
CPU_OP(argmax); CPU_OP(max_dim); CPU_OP(sum_dim); CPU_OP(mean_dim); CPU_OP(all);
CPU_OP(any); CPU_OP(cumsum); CPU_OP(sum); CPU_OP(mean);
/* cpu_topk.c */
CPU_OP(topk);
/* cpu_attention.c */
CPU_OP(sdpa);
/* cpu_compare.c (ops revision 2) */
CPU_OP(ne); CPU_OP(lt); CPU_OP(gt); CPU_OP(le); CPU_OP(ge);
/* cpu_logical.c */
CPU_OP(bitwise_and); CPU_OP(bitwise_or); CPU_OP(logical_and); CPU_OP(logical_or);
/* ops revision 3 -- cpu_unary_math.c */
CPU_OP(sin); CPU_OP(cos);
/* cpu_divmod.c */
CPU_OP(floor_divide);
/* ops revision 3: cpu_sort.c, cpu_stats.c, cpu_index.c, cpu_copy.c, cpu_matmul.c */
CPU_OP(sort); CPU_OP(sort_stable); CPU_OP(histc); CPU_OP(index_put); CPU_OP(repeat);
CPU_OP(grouped_mm);

#undef CPU_OP

#endif

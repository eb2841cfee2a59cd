/*
 * The CPU backend's function table: host memory management (64-byte aligned
 * storage, uploads as memcpy, downloads that gather any strided view into a
 * contiguous host buffer) and the op table mapping every entry of ops.def to
 * its kernel.  Kernels live in one file per family (cpu_views.c, cpu_binary.c,
 * cpu_matmul.c, ...); this file only wires them up.
 *
 * Threads: one setting, n_threads, sizes the OpenMP loops of our kernels,
 * GEMMs included: OpenBLAS itself is set to one thread and each product is
 * split over our OpenMP threads (cpu_gemm.c explains why: a second busy-wait
 * pool halved throughput).  A benchmark "on N threads" therefore means N
 * threads for us as for PyTorch.  openblas_set_num_threads is process-wide.
 */
#include "cpu_internal.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static genie_status_t cpu_alloc(genie_backend_t *b, size_t nbytes, genie_storage_t **storage_p)
{
    (void)b;
    return genie_storage_alloc_host(nbytes, storage_p);
}

static genie_status_t cpu_upload(genie_backend_t *b, const void *host, size_t nbytes,
                                 genie_storage_t *dst)
{
    (void)b;
    if (dst == NULL || nbytes > dst->nbytes) {
        return genie_set_error(GENIE_ERR_INVALID, "cpu: upload of %zu bytes into a %zu-byte "
                               "storage", nbytes, dst != NULL ? dst->nbytes : (size_t)0);
    }
    if (nbytes > 0) {
        memcpy(dst->data, host, nbytes);
    }
    return GENIE_OK;
}

static genie_status_t cpu_download(genie_backend_t *b, const genie_tensor_t *src,
                                   void *host_contiguous)
{
    genie_storage_t host = { .data = host_contiguous, .refcount = 1 };
    genie_tensor_t dst = *src;
    genie_op_call_t call = { .backend = b };

    if (src->storage == NULL) {
        return genie_set_error(GENIE_ERR_INVALID, "cpu: download of a tensor without storage");
    }
    host.nbytes = genie_tensor_nbytes(src);
    dst.storage = &host;
    genie_tensor_set_contiguous_strides(&dst);
    return genie_cpu_copy(&call, genie_cpu_threads(&call), src, &dst);
}

static void cpu_destroy(genie_backend_t *b)
{
    free(b);
}

static const genie_backend_i cpu_iface = {
    .name     = "cpu",
    .alloc    = cpu_alloc,
    .upload   = cpu_upload,
    .download = cpu_download,
    .sync     = NULL,
    .destroy  = cpu_destroy,
    .host_memory = true,
    .ops      = {
        [GENIE_OP_VIEW]         = genie_cpu_op_view,
        [GENIE_OP_UNSAFE_VIEW]  = genie_cpu_op_view,
        [GENIE_OP_ALIAS]        = genie_cpu_op_alias,
        [GENIE_OP_DETACH]       = genie_cpu_op_alias,
        [GENIE_OP_EXPAND]       = genie_cpu_op_expand,
        [GENIE_OP_TRANSPOSE]    = genie_cpu_op_transpose,
        [GENIE_OP_T]            = genie_cpu_op_t,
        [GENIE_OP_PERMUTE]      = genie_cpu_op_permute,
        [GENIE_OP_UNSQUEEZE]    = genie_cpu_op_unsqueeze,
        [GENIE_OP_SQUEEZE_DIM]  = genie_cpu_op_squeeze_dim,
        [GENIE_OP_SELECT]       = genie_cpu_op_select,
        [GENIE_OP_SLICE]        = genie_cpu_op_slice,
        [GENIE_OP_SPLIT]        = genie_cpu_op_split,
        [GENIE_OP_CLONE]        = genie_cpu_op_clone,
        [GENIE_OP_TO_COPY]      = genie_cpu_op_to_copy,
        [GENIE_OP_COPY]         = genie_cpu_op_copy,
        [GENIE_OP_EMBEDDING]    = genie_cpu_op_embedding,
        [GENIE_OP_GATHER]       = genie_cpu_op_gather,
        [GENIE_OP_INDEX_SELECT] = genie_cpu_op_index_select,
        [GENIE_OP_INDEX]        = genie_cpu_op_index,
        [GENIE_OP_ADD]          = genie_cpu_op_add,
        [GENIE_OP_SUB]          = genie_cpu_op_sub,
        [GENIE_OP_MUL]          = genie_cpu_op_mul,
        [GENIE_OP_DIV]          = genie_cpu_op_div,
        [GENIE_OP_ADD_SCALAR]   = genie_cpu_op_add_scalar,
        [GENIE_OP_SUB_SCALAR]   = genie_cpu_op_sub_scalar,
        [GENIE_OP_MUL_SCALAR]   = genie_cpu_op_mul_scalar,
        [GENIE_OP_DIV_SCALAR]   = genie_cpu_op_div_scalar,
        [GENIE_OP_POW_SCALAR]   = genie_cpu_op_pow_scalar,
        [GENIE_OP_RSUB_SCALAR]  = genie_cpu_op_rsub_scalar,
        [GENIE_OP_NEG]          = genie_cpu_op_neg,
        [GENIE_OP_EXP]          = genie_cpu_op_exp,
        [GENIE_OP_LOG]          = genie_cpu_op_log,
        [GENIE_OP_SQRT]         = genie_cpu_op_sqrt,
        [GENIE_OP_RSQRT]        = genie_cpu_op_rsqrt,
        [GENIE_OP_TANH]         = genie_cpu_op_tanh,
        [GENIE_OP_SIGMOID]      = genie_cpu_op_sigmoid,
        [GENIE_OP_RELU]         = genie_cpu_op_relu,
        [GENIE_OP_GELU]         = genie_cpu_op_gelu,
        [GENIE_OP_SILU]         = genie_cpu_op_silu,
        [GENIE_OP_ERF]          = genie_cpu_op_erf,
        [GENIE_OP_ABS]          = genie_cpu_op_abs,
        [GENIE_OP_WHERE]        = genie_cpu_op_where,
        [GENIE_OP_EQ_SCALAR]    = genie_cpu_op_eq_scalar,
        [GENIE_OP_EQ]           = genie_cpu_op_eq,
        [GENIE_OP_NE_SCALAR]    = genie_cpu_op_ne_scalar,
        [GENIE_OP_LT_SCALAR]    = genie_cpu_op_lt_scalar,
        [GENIE_OP_GT_SCALAR]    = genie_cpu_op_gt_scalar,
        [GENIE_OP_LE_SCALAR]    = genie_cpu_op_le_scalar,
        [GENIE_OP_GE_SCALAR]    = genie_cpu_op_ge_scalar,
        [GENIE_OP_LOGICAL_NOT]  = genie_cpu_op_logical_not,
        [GENIE_OP_BITWISE_NOT]  = genie_cpu_op_bitwise_not,
        [GENIE_OP_MASKED_FILL]  = genie_cpu_op_masked_fill,
        [GENIE_OP_MAXIMUM]      = genie_cpu_op_maximum,
        [GENIE_OP_MINIMUM]      = genie_cpu_op_minimum,
        [GENIE_OP_TRIL]         = genie_cpu_op_tril,
        [GENIE_OP_TRIU]         = genie_cpu_op_triu,
        [GENIE_OP_FILL]         = genie_cpu_op_fill,
        [GENIE_OP_ARANGE]       = genie_cpu_op_arange,
        [GENIE_OP_FULL]         = genie_cpu_op_full,
        [GENIE_OP_LAYER_NORM]   = genie_cpu_op_layer_norm,
        [GENIE_OP_ADDMM]        = genie_cpu_op_addmm,
        [GENIE_OP_MM]           = genie_cpu_op_mm,
        [GENIE_OP_BMM]          = genie_cpu_op_bmm,
        [GENIE_OP_BADDBMM]      = genie_cpu_op_baddbmm,
        [GENIE_OP_SOFTMAX]      = genie_cpu_op_softmax,
        [GENIE_OP_SAFE_SOFTMAX] = genie_cpu_op_safe_softmax,
        [GENIE_OP_LOG_SOFTMAX]  = genie_cpu_op_log_softmax,
        [GENIE_OP_ARGMAX]       = genie_cpu_op_argmax,
        [GENIE_OP_MAX_DIM]      = genie_cpu_op_max_dim,
        [GENIE_OP_SUM_DIM]      = genie_cpu_op_sum_dim,
        [GENIE_OP_MEAN_DIM]     = genie_cpu_op_mean_dim,
        [GENIE_OP_ALL]          = genie_cpu_op_all,
        [GENIE_OP_ANY]          = genie_cpu_op_any,
        [GENIE_OP_CUMSUM]       = genie_cpu_op_cumsum,
        [GENIE_OP_TOPK]         = genie_cpu_op_topk,
        [GENIE_OP_CAT]          = genie_cpu_op_cat,
        [GENIE_OP_SDPA]         = genie_cpu_op_sdpa,
        /* ops revision 2 */
        [GENIE_OP_SUM]          = genie_cpu_op_sum,
        [GENIE_OP_MEAN]         = genie_cpu_op_mean,
        [GENIE_OP_NE]           = genie_cpu_op_ne,
        [GENIE_OP_LT]           = genie_cpu_op_lt,
        [GENIE_OP_GT]           = genie_cpu_op_gt,
        [GENIE_OP_LE]           = genie_cpu_op_le,
        [GENIE_OP_GE]           = genie_cpu_op_ge,
        [GENIE_OP_BITWISE_AND]  = genie_cpu_op_bitwise_and,
        [GENIE_OP_BITWISE_OR]   = genie_cpu_op_bitwise_or,
        [GENIE_OP_LOGICAL_AND]  = genie_cpu_op_logical_and,
        [GENIE_OP_LOGICAL_OR]   = genie_cpu_op_logical_or,
        /* ops revision 3: elementwise math */
        [GENIE_OP_SIN]          = genie_cpu_op_sin,
        [GENIE_OP_COS]          = genie_cpu_op_cos,
        [GENIE_OP_FLOOR_DIVIDE] = genie_cpu_op_floor_divide,
        /* ops revision 3: indexing, sorting, reductions, grouped GEMM */
        [GENIE_OP_SORT]         = genie_cpu_op_sort,
        [GENIE_OP_SORT_STABLE]  = genie_cpu_op_sort_stable,
        [GENIE_OP_HISTC]        = genie_cpu_op_histc,
        [GENIE_OP_INDEX_PUT]    = genie_cpu_op_index_put,
        [GENIE_OP_REPEAT]       = genie_cpu_op_repeat,
        [GENIE_OP_GROUPED_MM]   = genie_cpu_op_grouped_mm,
    },
};

/* The table above is written by hand; when ops.def grows this fails until
 * the new op gets a kernel here (and the count below is updated). */
_Static_assert(GENIE_OP_COUNT == 98, "ops.def changed: add the new ops to cpu_iface");

genie_status_t genie_backend_cpu_create(int n_threads, genie_backend_t **backend_p)
{
    genie_backend_t *b;

    for (int i = 0; i < GENIE_OP_COUNT; i++) {
        if (cpu_iface.ops[i] == NULL) {
            return genie_set_error(GENIE_ERR_UNSUPPORTED, "cpu: no kernel for %s",
                                   genie_op_name((uint32_t)i));
        }
    }
    if (n_threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 0 ? (int)n : 1;
    }
    b = calloc(1, sizeof(*b));
    if (b == NULL) {
        return genie_set_error(GENIE_ERR_NOMEM, "cpu: out of memory for the backend");
    }
    b->iface = &cpu_iface;
    b->ctx = NULL;
    b->n_threads = n_threads;
    openblas_set_num_threads(1);
    *backend_p = b;
    return GENIE_OK;
}

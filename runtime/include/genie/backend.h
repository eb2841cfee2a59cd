/*
 * A backend is a table of functions behind an opaque handle (the ggml-backend
 * pattern).  The executor never #ifdefs on the backend: it allocates through
 * the table and calls ops[op] for each node.  A NULL entry in `ops` means the op
 * is not implemented on that backend, which the executor reports as an error
 * naming the op and the node's module path (never a silent fallback).
 */
#ifndef GENIE_BACKEND_H
#define GENIE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "genie/ops.h"
#include "genie/srg.h"
#include "genie/status.h"
#include "genie/tensor.h"

typedef struct genie_backend genie_backend_t;

/* One node's call.  Inputs are the node's inputs in order (NULL for an absent
 * optional tensor).  Outputs arrive with dtype/ndim/shape taken from the SRG;
 * for ops without GENIE_OPF_VIEW the executor has already allocated them
 * contiguous (strides set, storage owned); view ops set storage/strides/offset
 * themselves (sharing in[0]'s storage via genie_tensor_share). */
typedef struct genie_op_call {
    genie_backend_t         *backend;
    const genie_srg_node_t  *node;      /* op, attrs, module_path */
    const genie_tensor_t   **in;        /* (n_in) */
    uint32_t                 n_in;
    genie_tensor_t          *out;       /* (n_out) */
    uint32_t                 n_out;
} genie_op_call_t;

typedef genie_status_t (*genie_op_fn)(const genie_op_call_t *call);

typedef struct genie_backend_i {
    const char *name;                                   /* "cpu", "cuda" */
    /* .alloc   = */ genie_status_t (*alloc)(genie_backend_t *b, size_t nbytes,
                                             genie_storage_t **storage_p);
    /* .upload  = */ genie_status_t (*upload)(genie_backend_t *b, const void *host,
                                              size_t nbytes, genie_storage_t *dst);
    /* .download= */ genie_status_t (*download)(genie_backend_t *b, const genie_tensor_t *src,
                                                void *host_contiguous);
    /* .sync    = optional, NULL if synchronous */
    genie_status_t (*sync)(genie_backend_t *b);
    /* .destroy = */ void (*destroy)(genie_backend_t *b);
    /* .ops     = */ genie_op_fn ops[GENIE_OP_COUNT];
    /* .host_memory = true when storages are plain host memory the process can
     * read and write (the CPU backend): the transport then sends from and
     * receives into them directly instead of staging a copy. */
    bool host_memory;
} genie_backend_i;

struct genie_backend {
    const genie_backend_i *iface;
    void                  *ctx;      /* backend-private */
    int                    n_threads;
};

/* The CPU backend (runtime/cpu).  n_threads <= 0: use all online cores. */
genie_status_t genie_backend_cpu_create(int n_threads, genie_backend_t **backend_p);

#endif

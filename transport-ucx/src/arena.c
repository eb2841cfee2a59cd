/*
 * The registered arena: one region per process, mapped with ucp_mem_map
 * (allocated by UCX so that shared-memory transports can expose it), whose
 * packed rkey every other rank receives once at bootstrap.  A KV-cache
 * handoff reserves ranges in the destination's arena and puts the tensors
 * straight into them; the destination then adopts the ranges as its resident
 * objects without copying.  Ranges are managed first-fit with coalescing: the
 * arena holds few, large, long-lived blocks.
 */
#include <stdlib.h>
#include <string.h>

#include "ucx_internal.h"

#define ARENA_ALIGN 64

genie_status_t genie_ucx_arena_init(genie_ucx_t *u, size_t bytes)
{
    ucp_mem_map_params_t mp = {0};
    ucp_mem_attr_t       attr = {0};
    ucs_status_t         s;

    mp.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH |
                    UCP_MEM_MAP_PARAM_FIELD_FLAGS;
    mp.address = NULL;
    mp.length  = bytes;
    mp.flags   = UCP_MEM_MAP_ALLOCATE;
    s = ucp_mem_map(u->ctx, &mp, &u->arena_memh);
    if (s != UCS_OK) {
        return genie_set_error(GENIE_ERR_TRANSPORT, "ucx: mapping a %zu MiB arena: %s "
                               "(lower arena_mb in genie.conf)", bytes >> 20, ucs_status_string(s));
    }
    attr.field_mask = UCP_MEM_ATTR_FIELD_ADDRESS | UCP_MEM_ATTR_FIELD_LENGTH;
    s = ucp_mem_query(u->arena_memh, &attr);
    if (s == UCS_OK) {
        s = ucp_rkey_pack(u->ctx, u->arena_memh, &u->arena_rkey, &u->arena_rkey_len);
    }
    if (s != UCS_OK || (u->blocks = calloc(16, sizeof(*u->blocks))) == NULL) {
        if (u->arena_rkey != NULL) {
            ucp_rkey_buffer_release(u->arena_rkey);
            u->arena_rkey = NULL;
        }
        ucp_mem_unmap(u->ctx, u->arena_memh);
        u->arena_memh = NULL;
        return genie_set_error(GENIE_ERR_TRANSPORT, "ucx: preparing the arena: %s",
                               s != UCS_OK ? ucs_status_string(s) : "out of memory");
    }
    u->arena      = attr.address;
    u->arena_size = attr.length;
    u->cap_blocks = 16;
    u->n_blocks   = 1;
    u->blocks[0]  = (genie_ucx_block_t){ .off = 0, .len = attr.length, .used = 0 };
    return GENIE_OK;
}

void genie_ucx_arena_fini(genie_ucx_t *u)
{
    if (u->arena_rkey != NULL) {
        ucp_rkey_buffer_release(u->arena_rkey);
    }
    if (u->arena_memh != NULL) {
        ucp_mem_unmap(u->ctx, u->arena_memh);
    }
    free(u->blocks);
    u->arena = NULL;
    u->arena_memh = NULL;
    u->arena_rkey = NULL;
    u->blocks = NULL;
}

void *genie_ucx_arena_base(const genie_ucx_t *u)
{
    return u->arena;
}

genie_status_t genie_ucx_arena_alloc(genie_ucx_t *u, size_t nbytes, uint64_t *offset_p)
{
    uint64_t need = (nbytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;

    if (need == 0) {
        need = ARENA_ALIGN;
    }
    for (size_t i = 0; i < u->n_blocks; i++) {
        genie_ucx_block_t *b = &u->blocks[i];
        if (b->used || b->len < need) {
            continue;
        }
        if (b->len > need) {                    /* split: the rest stays free */
            if (u->n_blocks == u->cap_blocks) {
                genie_ucx_block_t *nb = realloc(u->blocks, 2 * u->cap_blocks * sizeof(*nb));
                if (nb == NULL) {
                    return genie_set_error(GENIE_ERR_NOMEM, "out of memory");
                }
                u->blocks = nb;
                u->cap_blocks *= 2;
                b = &u->blocks[i];
            }
            memmove(&u->blocks[i + 2], &u->blocks[i + 1], (u->n_blocks - i - 1) * sizeof(*b));
            u->blocks[i + 1] = (genie_ucx_block_t){ .off = b->off + need, .len = b->len - need };
            u->n_blocks++;
            b->len = need;
        }
        b->used = 1;
        *offset_p = b->off;
        return GENIE_OK;
    }
    return genie_set_error(GENIE_ERR_NOMEM,
                           "the %zu MiB receive arena has no free range of %zu bytes "
                           "(raise arena_mb in genie.conf)", u->arena_size >> 20, nbytes);
}

void genie_ucx_arena_free(genie_ucx_t *u, uint64_t offset)
{
    for (size_t i = 0; i < u->n_blocks; i++) {
        if (u->blocks[i].off != offset || !u->blocks[i].used) {
            continue;
        }
        u->blocks[i].used = 0;
        if (i + 1 < u->n_blocks && !u->blocks[i + 1].used) {          /* merge right */
            u->blocks[i].len += u->blocks[i + 1].len;
            memmove(&u->blocks[i + 1], &u->blocks[i + 2], (u->n_blocks - i - 2) * sizeof(u->blocks[0]));
            u->n_blocks--;
        }
        if (i > 0 && !u->blocks[i - 1].used) {                         /* merge left */
            u->blocks[i - 1].len += u->blocks[i].len;
            memmove(&u->blocks[i], &u->blocks[i + 1], (u->n_blocks - i - 1) * sizeof(u->blocks[0]));
            u->n_blocks--;
        }
        return;
    }
}

/* ---- RMA ------------------------------------------------------------------ */

typedef struct rma_ctx {
    int          done;
    ucs_status_t status;
} rma_ctx_t;

static void rma_done(void *request, ucs_status_t status, void *user_data)
{
    rma_ctx_t *rc = user_data;
    rc->status = status;
    rc->done   = 1;
    ucp_request_free(request);
}

genie_status_t genie_ucx_put(genie_ucx_t *u, int32_t rank, uint64_t offset, const void *src,
                             size_t len)
{
    genie_ucx_peer_t   *p;
    ucp_request_param_t rp = {0};
    void               *req;
    genie_status_t      st;

    if ((st = genie_ucx_connect(u, rank, NULL)) != GENIE_OK) {
        return st;
    }
    p = &u->peers[rank];
    if (p->rkey == NULL || offset > p->arena_size || len > p->arena_size - offset) {
        return genie_set_error(GENIE_ERR_INVALID,
                               "put of %zu bytes at offset %llu is outside rank %d's arena",
                               len, (unsigned long long)offset, (int)rank);
    }
    /* No callback: completion is observed by the flush that follows. */
    rp.op_attr_mask = 0;
    req = ucp_put_nbx(p->conn->ep, src, len, p->arena_base + offset, p->rkey, &rp);
    if (UCS_PTR_IS_ERR(req)) {
        return genie_set_error(GENIE_ERR_TRANSPORT, "ucx: put to rank %d: %s", (int)rank,
                               ucs_status_string(UCS_PTR_STATUS(req)));
    }
    if (req != NULL) {
        ucp_request_free(req);
    }
    p->stats.rma_bytes_put += len;
    p->stats.bytes_sent    += len;
    return GENIE_OK;
}

genie_status_t genie_ucx_flush(genie_ucx_t *u, int32_t rank)
{
    genie_ucx_peer_t   *p;
    ucp_request_param_t rp = {0};
    rma_ctx_t           rc = {0};
    void               *req;

    if (rank < 0 || rank >= u->size || u->peers[rank].conn == NULL) {
        return genie_set_error(GENIE_ERR_INVALID, "flush: no connection to rank %d", (int)rank);
    }
    p = &u->peers[rank];
    rp.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
    rp.cb.send      = rma_done;
    rp.user_data    = &rc;
    req = ucp_ep_flush_nbx(p->conn->ep, &rp);
    if (UCS_PTR_IS_ERR(req)) {
        return genie_set_error(GENIE_ERR_TRANSPORT, "ucx: flush to rank %d: %s", (int)rank,
                               ucs_status_string(UCS_PTR_STATUS(req)));
    }
    if (req == NULL) {
        return GENIE_OK;
    }
    while (!rc.done) {
        ucp_worker_progress(u->worker);
        if (genie_ucx_peer_status(u, rank) != GENIE_OK) {
            ucp_request_cancel(u->worker, req);
            while (!rc.done) {
                ucp_worker_progress(u->worker);
            }
            return GENIE_ERR_PEER_LOST;
        }
    }
    if (rc.status != UCS_OK) {
        return genie_set_error(GENIE_ERR_TRANSPORT, "ucx: flush to rank %d: %s", (int)rank,
                               ucs_status_string(rc.status));
    }
    return GENIE_OK;
}

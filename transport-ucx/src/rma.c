/*
 * Memory for the KV-cache handoff, which its destination pulls.
 *
 * The arena: one region per process, mapped with ucp_mem_map (allocated by
 * UCX, so that every transport can reach it fast) and never exposed to other
 * processes: a destination reads the objects it receives into ranges of its
 * own arena and adopts them as resident objects without copying.  Ranges
 * are managed first-fit with coalescing (few, large, long-lived blocks).
 *
 * Regions: the source of a handoff registers the memory of each object it
 * hands off and packs an rkey for it; that rkey goes to the destination
 * alone, in the KV_OFFER, and the region is unregistered when the handoff
 * ends.  Nobody writes into another process's memory: a peer can read only
 * what was exposed to it, for as long as the handoff lasts.
 *
 * Gets: a batch of ucp_get_nbx into local memory, each with a completion
 * callback that counts the bytes the transport delivered (the handoff's
 * byte count comes from here, not from shapes).
 */
#include <stdint.h>
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
    if (s != UCS_OK || (u->blocks = calloc(16, sizeof(*u->blocks))) == NULL) {
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
    if (u->arena_memh != NULL) {
        ucp_mem_unmap(u->ctx, u->arena_memh);
    }
    free(u->blocks);
    u->arena = NULL;
    u->arena_memh = NULL;
    u->blocks = NULL;
}

void *genie_ucx_arena_base(const genie_ucx_t *u)
{
    return u->arena;
}

size_t genie_ucx_arena_used(const genie_ucx_t *u)
{
    size_t used = 0;
    for (size_t i = 0; i < u->n_blocks; i++) {
        used += u->blocks[i].used ? u->blocks[i].len : 0;
    }
    return used;
}

genie_status_t genie_ucx_arena_alloc(genie_ucx_t *u, size_t nbytes, uint64_t *offset_p)
{
    uint64_t need;

    /* Round up without wrapping: a size within ARENA_ALIGN of SIZE_MAX
     * would otherwise become a tiny block while its owner believes in the
     * size it asked for. */
    if (nbytes > u->arena_size || nbytes > UINT64_MAX - (ARENA_ALIGN - 1)) {
        return genie_set_error(GENIE_ERR_NOMEM, "%zu bytes do not fit in the %zu MiB receive "
                               "arena (raise arena_mb in genie.conf)", nbytes, u->arena_size >> 20);
    }
    need = ((uint64_t)nbytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
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

/* ---- exposed regions ----------------------------------------------------------- */

struct genie_ucx_region {
    ucp_mem_h memh;
    void     *rkey;         /* packed (rkey_len) */
    size_t    rkey_len;
    int32_t   rank;
    size_t    len;
};

genie_status_t genie_ucx_expose(genie_ucx_t *u, int32_t for_rank, void *addr, size_t len,
                                genie_ucx_region_t **region_p)
{
    ucp_mem_map_params_t mp = {0};
    genie_ucx_region_t  *r;
    ucs_status_t         s;

    if (len == 0 || for_rank < 0 || for_rank >= u->size) {
        return genie_set_error(GENIE_ERR_INVALID, "ucx: exposing %zu bytes to rank %d", len,
                               (int)for_rank);
    }
    if ((r = calloc(1, sizeof(*r))) == NULL) {
        return genie_set_error(GENIE_ERR_NOMEM, "out of memory");
    }
    mp.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH;
    mp.address    = addr;
    mp.length     = len;
    s = ucp_mem_map(u->ctx, &mp, &r->memh);
    if (s != UCS_OK) {
        free(r);
        return genie_ucx_ucs_error(s, "registering memory for a handoff");
    }
    s = ucp_rkey_pack(u->ctx, r->memh, &r->rkey, &r->rkey_len);
    if (s != UCS_OK) {
        ucp_mem_unmap(u->ctx, r->memh);
        free(r);
        return genie_ucx_ucs_error(s, "packing a handoff's rkey");
    }
    r->rank = for_rank;
    r->len  = len;
    u->peers[for_rank].stats.rma_bytes_exposed += len;
    *region_p = r;
    return GENIE_OK;
}

const void *genie_ucx_region_rkey(const genie_ucx_region_t *r, size_t *len_p)
{
    *len_p = r->rkey_len;
    return r->rkey;
}

void genie_ucx_unexpose(genie_ucx_t *u, genie_ucx_region_t *r)
{
    if (r == NULL) {
        return;
    }
    ucp_rkey_buffer_release(r->rkey);
    ucp_mem_unmap(u->ctx, r->memh);
    free(r);
}

/* ---- gets ------------------------------------------------------------------------ */

struct genie_ucx_gets {
    genie_ucx_t      *u;
    int32_t           rank;
    genie_ucx_conn_t *c;
    uint32_t          posted, done;
    uint64_t          bytes;        /* delivered by completed gets */
    ucs_status_t      failed;       /* first error */
    ucp_rkey_h       *rkeys;        /* (n_rkeys) unpacked, destroyed at the end */
    uint32_t          n_rkeys, cap_rkeys;
    int               shortened;    /* test hook applied */
    double            t0;
};

typedef struct get_ctx {
    genie_ucx_gets_t *g;
    size_t            len;
} get_ctx_t;

static void get_done(void *request, ucs_status_t status, void *user_data)
{
    get_ctx_t *gc = user_data;

    gc->g->done++;
    if (status == UCS_OK) {
        gc->g->bytes += gc->len;
    } else if (gc->g->failed == UCS_OK) {
        gc->g->failed = status;
    }
    free(gc);
    ucp_request_free(request);
}

genie_status_t genie_ucx_gets_begin(genie_ucx_t *u, int32_t rank, genie_ucx_gets_t **g_p)
{
    genie_ucx_gets_t *g;
    genie_status_t    st;

    /* An endpoint without HELLO is enough: gets send no messages. */
    if ((st = genie_ucx_watch(u, rank)) != GENIE_OK) {
        return st;
    }
    if ((g = calloc(1, sizeof(*g))) == NULL) {
        return genie_set_error(GENIE_ERR_NOMEM, "out of memory");
    }
    g->u    = u;
    g->rank = rank;
    g->c    = u->peers[rank].conn;
    g->t0   = genie_ucx_now();
    *g_p    = g;
    return GENIE_OK;
}

genie_status_t genie_ucx_get(genie_ucx_gets_t *g, const void *rkey, size_t rkey_len,
                             uint64_t remote_addr, void *dst, size_t len)
{
    genie_ucx_t        *u = g->u;
    ucp_request_param_t rp = {0};
    ucp_rkey_h          rk;
    get_ctx_t          *gc;
    ucs_status_t        s;
    void               *req;

    if (g->c->closed || g->c->failed) {
        return genie_set_error(GENIE_ERR_PEER_LOST, "rank %d: the connection is closed", (int)g->rank);
    }
    if (g->n_rkeys == g->cap_rkeys) {
        uint32_t    cap = g->cap_rkeys ? 2 * g->cap_rkeys : 16;
        ucp_rkey_h *nr  = realloc(g->rkeys, cap * sizeof(*nr));
        if (nr == NULL) {
            return genie_set_error(GENIE_ERR_NOMEM, "out of memory");
        }
        g->rkeys     = nr;
        g->cap_rkeys = cap;
    }
    (void)rkey_len;     /* the packed format carries its own length; checked by UCX */
    s = ucp_ep_rkey_unpack(g->c->ep, rkey, &rk);
    if (s != UCS_OK) {
        return genie_set_error(GENIE_ERR_CORRUPT, "ucx: rank %d sent an rkey UCX cannot unpack: %s",
                               (int)g->rank, ucs_status_string(s));
    }
    g->rkeys[g->n_rkeys++] = rk;
    if (u->test_short_get > 0 && !g->shortened) {
        /* GENIE_TEST_SHORT_GET (tests only): the first get of a batch reads
         * that many bytes less, so that a short transfer can be seen to be
         * detected by the byte count. */
        g->shortened = 1;
        len = len > u->test_short_get ? len - u->test_short_get : 0;
        if (len == 0) {
            return GENIE_OK;
        }
    }
    if ((gc = calloc(1, sizeof(*gc))) == NULL) {
        return genie_set_error(GENIE_ERR_NOMEM, "out of memory");
    }
    gc->g   = g;
    gc->len = len;
    rp.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
    rp.cb.send      = get_done;
    rp.user_data    = gc;
    req = ucp_get_nbx(g->c->ep, dst, len, remote_addr, rk, &rp);
    if (UCS_PTR_IS_ERR(req)) {
        free(gc);
        return genie_set_error(GENIE_ERR_TRANSPORT, "ucx: get from rank %d: %s", (int)g->rank,
                               ucs_status_string(UCS_PTR_STATUS(req)));
    }
    g->posted++;
    if (req == NULL) {                          /* completed in place */
        g->done++;
        g->bytes += len;
        free(gc);
    }
    return GENIE_OK;
}

genie_status_t genie_ucx_gets_end(genie_ucx_gets_t *g, double limit_s, uint64_t *bytes_p)
{
    genie_ucx_t   *u = g->u;
    genie_status_t st = GENIE_OK;

    while (g->done < g->posted) {
        genie_ucx_progress(u);
        if (g->done == g->posted) {
            break;
        }
        if ((st = genie_ucx_live(u, g->rank, g->t0, limit_s, "the KV handoff's RMA reads")) != GENIE_OK) {
            break;
        }
        if (g->c->failed) {
            st = genie_set_error(GENIE_ERR_PEER_LOST, "rank %d: the connection failed during the "
                                 "KV handoff's RMA reads", (int)g->rank);
            break;
        }
    }
    if (st != GENIE_OK) {
        /* Gets cannot be cancelled: closing the endpoint completes them, so
         * none writes into the caller's memory after we return. */
        genie_ucx_conn_close_force(u, g->c);
        genie_ucx_drain(u, NULL, &g->done, g->posted);
        genie_ucx_mark_lost(u, g->rank, "its connection was closed after a KV handoff from it "
                            "failed");
    } else if (g->failed != UCS_OK) {
        st = genie_set_error(GENIE_ERR_TRANSPORT, "ucx: get from rank %d: %s", (int)g->rank,
                             ucs_status_string(g->failed));
    }
    for (uint32_t i = 0; i < g->n_rkeys; i++) {
        ucp_rkey_destroy(g->rkeys[i]);
    }
    if (st == GENIE_OK) {
        u->peers[g->rank].stats.rma_bytes_got += g->bytes;
        *bytes_p = g->bytes;
    }
    free(g->rkeys);
    free(g);
    return st;
}

/*
 * The KV-cache handoff between two executors, pulled by its destination
 * (payloads: docs/wire-protocol.md, 4.8 and 4.17):
 *
 *   driver -> src  HANDOFF(session, dst, ids)
 *   src            exposes each object's memory to dst alone (an rkey each)
 *   src -> dst     KV_OFFER(session, per object: id, dtype, shape, nbytes,
 *                  address, rkey)
 *   dst            reserves ranges of its own arena, reads the objects into
 *                  them with RMA gets, checks that the transport delivered
 *                  every byte, adopts the ranges as its objects (no copy)
 *   dst -> src     reply: bytes the transport delivered, seconds
 *   src            unexposes, frees its copies, answers the driver
 *
 * Nobody writes into another process's memory, and the cache never passes
 * through the driver.  The source does not wait: the handoff is a state kept
 * beside the request loop (genie_handoff_t), polled between requests, so a
 * slow or stopped destination delays only this handoff, which fails after
 * handoff_timeout_s (or when the destination stops answering) with the
 * objects still on the source.  The destination's reads are bounded the
 * same way; when they fail, the endpoint is closed before the arena ranges
 * are freed, so no late read can write into them.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "executor.h"

#define MAX_OBJECTS  65536   /* a KV cache is tens of tensors, not millions */
#define MAX_RKEY     4096    /* packed rkeys are tens to hundreds of bytes */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static genie_status_t reply_bytes_seconds(genie_server_t *srv, const genie_ucx_msg_t *m,
                                          uint64_t bytes, double seconds)
{
    genie_wire_writer_t w;
    genie_status_t      st;

    genie_wire_w_init(&w);
    genie_wire_w_u64(&w, bytes);
    genie_wire_w_f64(&w, seconds);
    st = genie_wire_w_status(&w);
    st = genie_ucx_reply(srv->ucx, m, st, st == GENIE_OK ? w.buf : NULL, st == GENIE_OK ? w.len : 0);
    genie_wire_w_free(&w);
    return st;
}

/* ---- source ------------------------------------------------------------------ */

static void handoff_free(genie_server_t *srv, genie_handoff_t *h)
{
    for (uint32_t i = 0; i < h->n; i++) {
        if (h->regions != NULL) {
            genie_ucx_unexpose(srv->ucx, h->regions[i]);
        }
        if (h->objs != NULL) {
            genie_tensor_release(&h->objs[i]);
        }
    }
    genie_ucx_msg_free(h->req);
    free(h->regions);
    free(h->objs);
    free(h->ids);
    free(h);
}

/* End a handoff: answer the driver (error: the objects stay here), unlink. */
static void handoff_finish(genie_server_t *srv, genie_handoff_t *h, genie_status_t st, uint64_t got)
{
    for (genie_handoff_t **pp = &srv->handoffs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == h) {
            *pp = h->next;
            break;
        }
    }
    if (st == GENIE_OK) {
        genie_exec_free_objects(srv->exec, h->ids, h->n);
        srv->kv_bytes_out += got;
        srv->handoffs_out++;
        srv->handoff_s += now_s() - h->t0;
        st = reply_bytes_seconds(srv, h->req, got, now_s() - h->t0);
    } else {
        char why[400];
        snprintf(why, sizeof(why), "%s", genie_last_error());
        srv->handoffs_failed++;
        genie_ucx_log(srv->ucx, "the KV handoff of session %llu to rank %d failed: %s",
                      (unsigned long long)h->session, (int)h->dst, why);
        (void)genie_set_error(st, "executor rank %d: the KV handoff of session %llu to rank %d "
                              "failed: %s", (int)srv->rank, (unsigned long long)h->session,
                              (int)h->dst, why);
        (void)genie_ucx_reply(srv->ucx, h->req, st, NULL, 0);
    }
    handoff_free(srv, h);
}

/* KV_OFFER: | session u64 | n u32 | n x object | , object :=
 *   | id u64 | dtype u32 | ndim u32 | shape i64[ndim] | nbytes u64 | addr u64 | rkey bytes | pad to 8 |
 * (nbytes 0: no address and an empty rkey). */
static genie_status_t send_offer(genie_server_t *srv, genie_handoff_t *h)
{
    genie_wire_writer_t w;
    genie_status_t      st;

    genie_wire_w_init(&w);
    genie_wire_w_u64(&w, h->session);
    genie_wire_w_u32(&w, h->n);
    for (uint32_t i = 0; i < h->n; i++) {
        const genie_tensor_t *t = &h->objs[i];
        size_t                rlen = 0;
        const void           *rkey = h->regions[i] != NULL ? genie_ucx_region_rkey(h->regions[i], &rlen)
                                                           : NULL;
        genie_wire_w_u64(&w, h->ids[i]);
        genie_wire_w_u32(&w, (uint32_t)t->dtype);
        genie_wire_w_u32(&w, (uint32_t)t->ndim);
        genie_wire_w_raw(&w, t->shape, 8 * (size_t)t->ndim);
        genie_wire_w_u64(&w, genie_tensor_nbytes(t));
        genie_wire_w_u64(&w, (uint64_t)(uintptr_t)genie_tensor_data(t));
        genie_wire_w_bytes(&w, rkey, (uint32_t)rlen);
        genie_wire_w_align8(&w);
    }
    if ((st = genie_wire_w_status(&w)) == GENIE_OK) {
        st = genie_ucx_send(srv->ucx, h->dst, GENIE_MSG_KV_OFFER, 0, w.buf, w.len, GENIE_UCX_COPY,
                            &h->seq);
    }
    genie_wire_w_free(&w);
    if (st == GENIE_OK) {
        h->offered = 1;
    }
    return st;
}

/* HANDOFF: | session u64 | dst u32 | n u32 | ids u64[n] |  -> | bytes u64 | seconds f64 |,
 * answered when the destination has the objects (genie_server_poll_handoffs). */
genie_status_t genie_server_handoff(genie_server_t *srv, genie_ucx_msg_t *m)
{
    genie_wire_reader_t          r;
    genie_handoff_t             *h;
    const genie_ucx_peer_info_t *peer;
    uint64_t                     session;
    uint32_t                     dst, n;
    genie_status_t               st;

    genie_wire_r_init(&r, m->payload, m->len, "HANDOFF");
    session = genie_wire_r_u64(&r);
    dst     = genie_wire_r_u32(&r);
    n       = genie_wire_r_count(&r, 8);
    if (r.st != GENIE_OK) {
        return r.st;
    }
    peer = genie_ucx_peer(srv->ucx, (int32_t)dst);
    if (peer == NULL || (int32_t)dst == srv->rank || peer->role != GENIE_ROLE_EXECUTOR) {
        return genie_set_error(GENIE_ERR_INVALID, "executor: HANDOFF to rank %u, which is not "
                               "another executor", dst);
    }
    if (n > MAX_OBJECTS) {
        return genie_set_error(GENIE_ERR_INVALID, "executor: HANDOFF of %u objects", n);
    }
    if ((h = calloc(1, sizeof(*h))) == NULL || (h->ids = calloc(n + 1, 8)) == NULL ||
        (h->objs = calloc(n + 1, sizeof(*h->objs))) == NULL ||
        (h->regions = calloc(n + 1, sizeof(*h->regions))) == NULL) {
        if (h != NULL) {
            free(h->ids);
            free(h->objs);
            free(h);
        }
        return genie_set_error(GENIE_ERR_NOMEM, "executor: out of memory");
    }
    h->session = session;
    h->dst     = (int32_t)dst;
    h->n       = n;
    h->t0      = now_s();
    for (uint32_t i = 0; i < n; i++) {
        h->ids[i] = genie_wire_r_u64(&r);
    }
    if ((st = genie_wire_r_done(&r)) != GENIE_OK) {
        goto err;
    }
    /* Sources: a reference to each object itself on a host-memory backend
     * (contiguous), otherwise a host copy staged for the transfer.  The
     * reference keeps the memory alive even if the object is freed or
     * replaced while the destination reads it. */
    for (uint32_t i = 0; i < n; i++) {
        const genie_tensor_t *t;
        uint64_t              owner;

        if ((st = genie_exec_object(srv->exec, h->ids[i], &t, &owner)) != GENIE_OK) {
            goto err;
        }
        if (genie_exec_host_memory(srv->exec) && genie_tensor_is_contiguous(t)) {
            genie_tensor_share(t, &h->objs[i]);
        } else if ((st = genie_exec_fetch(srv->exec, h->ids[i], &h->objs[i])) != GENIE_OK) {
            goto err;
        }
        h->bytes += genie_tensor_nbytes(&h->objs[i]);
        if (genie_tensor_nbytes(&h->objs[i]) > 0 &&
            (st = genie_ucx_expose(srv->ucx, h->dst, genie_tensor_data(&h->objs[i]),
                                   genie_tensor_nbytes(&h->objs[i]), &h->regions[i])) != GENIE_OK) {
            goto err;
        }
    }
    if ((st = genie_ucx_connect_start(srv->ucx, h->dst)) != GENIE_OK) {
        goto err;
    }
    h->req   = m;
    h->next  = srv->handoffs;
    srv->handoffs = h;
    genie_server_poll_handoffs(srv);     /* offers at once when already connected */
    return GENIE_SERVER_KEPT;

err:
    h->req = NULL;
    handoff_free(srv, h);
    return st;
}

void genie_server_poll_handoffs(genie_server_t *srv)
{
    genie_handoff_t *h, *next;

    for (h = srv->handoffs; h != NULL; h = next) {
        genie_ucx_msg_t *reply = NULL;
        genie_status_t   st;

        next = h->next;
        genie_clear_error();
        if (!h->offered) {
            st = genie_ucx_connected(srv->ucx, h->dst);
            if (st == GENIE_OK) {
                st = send_offer(srv, h);
                if (st == GENIE_OK) {
                    continue;
                }
            } else if (st == GENIE_UCX_PENDING) {
                st = genie_ucx_alive(srv->ucx, h->dst, h->t0, srv->handoff_limit_s,
                                     "the KV handoff (connecting)");
                if (st == GENIE_OK) {
                    continue;
                }
            }
            handoff_finish(srv, h, st, 0);
            continue;
        }
        st = genie_ucx_poll_reply(srv->ucx, h->seq, h->dst, &reply);
        if (st == GENIE_UCX_PENDING) {
            st = genie_ucx_alive(srv->ucx, h->dst, h->t0, srv->handoff_limit_s,
                                 "the reply to KV_OFFER");
            if (st == GENIE_OK) {
                continue;
            }
            genie_ucx_forget(srv->ucx, h->seq);
            if (st == GENIE_ERR_TIMEOUT) {
                st = GENIE_ERR_PEER_LOST;       /* the destination: see client.c */
            }
            handoff_finish(srv, h, st, 0);
            continue;
        }
        if (st == GENIE_OK) {
            genie_wire_reader_t r;
            uint64_t            got;

            genie_wire_r_init(&r, reply->payload, reply->len, "KV_OFFER reply");
            got = genie_wire_r_u64(&r);
            (void)genie_wire_r_f64(&r);
            st = genie_wire_r_done(&r);
            if (st == GENIE_OK && got != h->bytes) {
                st = genie_set_error(GENIE_ERR_CORRUPT, "rank %d reports %llu bytes received by "
                                     "RMA, but %llu were offered", (int)h->dst,
                                     (unsigned long long)got, (unsigned long long)h->bytes);
            }
            genie_ucx_msg_free(reply);
            handoff_finish(srv, h, st, got);
            continue;
        }
        handoff_finish(srv, h, st, 0);
    }
}

void genie_server_end_handoffs(genie_server_t *srv, const char *why)
{
    while (srv->handoffs != NULL) {
        genie_handoff_t *h = srv->handoffs;
        if (h->offered) {
            genie_ucx_forget(srv->ucx, h->seq);
        }
        handoff_finish(srv, h, genie_set_error(GENIE_ERR_INVALID, "%s", why), 0);
    }
}

/* ---- destination ------------------------------------------------------------ */

typedef struct arena_storage {
    genie_storage_t s;
    genie_ucx_t    *ucx;
    uint64_t        offset;
} arena_storage_t;

static void arena_release(genie_storage_t *s)
{
    arena_storage_t *as = (arena_storage_t *)s;
    genie_ucx_arena_free(as->ucx, as->offset);
    free(as);
}

typedef struct offered {
    uint64_t       id, nbytes, addr;
    genie_tensor_t t;             /* dtype, shape; storage once placed */
    const void    *rkey;
    uint32_t       rkey_len;
    uint64_t       offset;
    int            placed;        /* arena range taken (offset valid) */
} offered_t;

/* Parse and check one object of a KV_OFFER. */
static genie_status_t read_offered(genie_wire_reader_t *r, offered_t *o)
{
    uint32_t dt, nd;
    uint64_t numel = 1;

    o->id = genie_wire_r_u64(r);
    dt    = genie_wire_r_u32(r);
    nd    = genie_wire_r_u32(r);
    if (r->st != GENIE_OK) {
        return r->st;
    }
    if (dt >= GENIE_DTYPE_COUNT || nd > GENIE_MAX_DIMS) {
        return genie_set_error(GENIE_ERR_CORRUPT, "executor: KV_OFFER object %llu: dtype %u, %u dims",
                               (unsigned long long)o->id, dt, nd);
    }
    o->t.dtype = (genie_dtype_t)dt;
    o->t.ndim  = (int)nd;
    for (uint32_t d = 0; d < nd; d++) {
        o->t.shape[d] = (int64_t)genie_wire_r_u64(r);
        /* Every extent is checked, zero ones included: a later extent must
         * not overflow the product just because an earlier one is 0. */
        if (o->t.shape[d] < 0 || (uint64_t)o->t.shape[d] > (UINT64_MAX / 16)) {
            return genie_set_error(GENIE_ERR_CORRUPT, "executor: KV_OFFER object %llu: bad shape",
                                   (unsigned long long)o->id);
        }
        if (numel != 0 && (uint64_t)o->t.shape[d] > (UINT64_MAX / 16) / numel) {
            return genie_set_error(GENIE_ERR_CORRUPT, "executor: KV_OFFER object %llu: shape "
                                   "overflows", (unsigned long long)o->id);
        }
        numel *= (uint64_t)o->t.shape[d];
    }
    o->nbytes = genie_wire_r_u64(r);
    o->addr   = genie_wire_r_u64(r);
    o->rkey   = genie_wire_r_bytes(r, &o->rkey_len);
    genie_wire_r_align8(r);
    if (r->st != GENIE_OK) {
        return r->st;
    }
    if (o->nbytes != numel * genie_dtype_size(o->t.dtype) || o->rkey_len > MAX_RKEY ||
        (o->nbytes > 0) != (o->rkey_len > 0)) {
        return genie_set_error(GENIE_ERR_CORRUPT, "executor: KV_OFFER object %llu: %llu bytes for "
                               "its shape, an rkey of %u bytes", (unsigned long long)o->id,
                               (unsigned long long)o->nbytes, o->rkey_len);
    }
    genie_tensor_set_contiguous_strides(&o->t);
    return GENIE_OK;
}

/* KV_OFFER (see send_offer)  -> | bytes u64 | seconds f64 |: the bytes are
 * those the transport delivered, all of them or the offer is refused. */
genie_status_t genie_server_kv_offer(genie_server_t *srv, genie_ucx_msg_t *m)
{
    genie_wire_reader_t r;
    genie_ucx_gets_t   *g = NULL;
    offered_t          *objs = NULL;
    uint64_t            session, total = 0, got = 0;
    uint32_t            n, put = 0;
    double              t0 = now_s();
    genie_status_t      st;

    genie_wire_r_init(&r, m->payload, m->len, "KV_OFFER");
    session = genie_wire_r_u64(&r);
    n       = genie_wire_r_count(&r, 40);
    if (r.st != GENIE_OK) {
        return r.st;
    }
    if (n > MAX_OBJECTS) {
        return genie_set_error(GENIE_ERR_INVALID, "executor: KV_OFFER of %u objects", n);
    }
    if ((objs = calloc(n + 1, sizeof(*objs))) == NULL) {
        return genie_set_error(GENIE_ERR_NOMEM, "executor: out of memory");
    }
    for (uint32_t i = 0; i < n; i++) {
        if ((st = read_offered(&r, &objs[i])) != GENIE_OK) {
            goto out;
        }
        if (objs[i].nbytes > UINT64_MAX - total) {
            st = genie_set_error(GENIE_ERR_CORRUPT, "executor: KV_OFFER sizes overflow");
            goto out;
        }
        total += objs[i].nbytes;
    }
    if ((st = genie_wire_r_done(&r)) != GENIE_OK ||
        (st = genie_ucx_gets_begin(srv->ucx, m->from, &g)) != GENIE_OK) {
        goto out;
    }
    for (uint32_t i = 0; i < n && st == GENIE_OK; i++) {
        offered_t *o = &objs[i];
        if (o->nbytes == 0) {
            continue;
        }
        if ((st = genie_ucx_arena_alloc(srv->ucx, o->nbytes, &o->offset)) != GENIE_OK) {
            break;
        }
        o->placed = 1;
        st = genie_ucx_get(g, o->rkey, o->rkey_len, o->addr,
                           (uint8_t *)genie_ucx_arena_base(srv->ucx) + o->offset, o->nbytes);
    }
    /* Always end the batch: it waits for (or, on failure, stops) every get
     * before the ranges may be freed. */
    {
        genie_status_t end = genie_ucx_gets_end(g, srv->handoff_limit_s, &got);
        g = NULL;
        if (st == GENIE_OK) {
            st = end;
        }
    }
    if (st == GENIE_OK && got != total) {
        st = genie_set_error(GENIE_ERR_CORRUPT, "executor: the transport delivered %llu of the "
                             "%llu bytes offered by rank %d: the handoff is refused",
                             (unsigned long long)got, (unsigned long long)total, (int)m->from);
    }
    /* Adopt: each range becomes the storage of its object (no copy). */
    for (; st == GENIE_OK && put < n; put++) {
        offered_t *o = &objs[put];

        if (o->nbytes == 0) {
            genie_tensor_t empty;
            if ((st = genie_tensor_alloc(o->t.dtype, o->t.ndim, o->t.shape, &empty)) != GENIE_OK) {
                break;
            }
            o->t = empty;
        } else {
            arena_storage_t *as = calloc(1, sizeof(*as));
            if (as == NULL) {
                st = genie_set_error(GENIE_ERR_NOMEM, "executor: out of memory");
                break;
            }
            as->s.data     = (uint8_t *)genie_ucx_arena_base(srv->ucx) + o->offset;
            as->s.nbytes   = o->nbytes;
            as->s.refcount = 1;
            as->s.release  = arena_release;
            as->ucx        = srv->ucx;
            as->offset     = o->offset;
            o->t.storage   = &as->s;
            o->placed      = 0;              /* the storage owns the range now */
        }
        if ((st = genie_exec_put_object(srv->exec, o->id, session, &o->t)) != GENIE_OK) {
            genie_tensor_release(&o->t);
            break;
        }
    }
    if (st != GENIE_OK) {
        for (uint32_t i = 0; i < put; i++) {     /* all or nothing */
            genie_exec_free_objects(srv->exec, &objs[i].id, 1);
        }
    }
out:
    for (uint32_t i = 0; i < n; i++) {
        if (objs[i].placed) {
            genie_ucx_arena_free(srv->ucx, objs[i].offset);
        }
    }
    free(objs);
    if (st != GENIE_OK) {
        return st;
    }
    srv->kv_bytes_in += got;
    srv->handoffs_in++;
    st = reply_bytes_seconds(srv, m, got, now_s() - t0);
    return st == GENIE_OK ? GENIE_SERVER_REPLIED : st;
}

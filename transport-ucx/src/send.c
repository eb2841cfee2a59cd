/*
 * Sending, and every wait of the transport.
 *
 * A request of ours is remembered by seq in a small open-addressing table
 * (the "pending" table) until its reply is taken or we give up on it; the
 * receive handler accepts only replies found there.
 *
 * Liveness (genie_ucx_live): while we wait for a peer, it counts as alive as
 * long as we have heard from it within the liveness timeout, counting from
 * the start of the wait.  When it has been silent for a quarter of the
 * timeout we send it a PING, which any progressing transport answers (the
 * executor progresses between the nodes of a long request, and its
 * checkpoint writer between chunks).  A peer silent for the whole timeout is
 * reported as unresponsive: GENIE_ERR_TIMEOUT, with a line naming it and
 * the operation.  Deciding what to do then (end it, recover its work) is the
 * caller's business (client.c for the driver).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ucx_internal.h"

uint32_t genie_ucx_seq(genie_ucx_t *u)
{
    uint32_t seq = u->next_seq++;
    if (u->next_seq == 0) {
        u->next_seq = 1;
    }
    return seq;
}

/* ---- the pending table -------------------------------------------------------- */

static uint32_t slot_of(const genie_ucx_t *u, uint32_t seq)
{
    return (seq * 2654435761u) & (u->pend_cap - 1);
}

genie_ucx_pend_t *genie_ucx_pend_find(genie_ucx_t *u, uint32_t seq)
{
    if (seq == 0) {
        return NULL;
    }
    for (uint32_t i = slot_of(u, seq);; i = (i + 1) & (u->pend_cap - 1)) {
        if (u->pend[i].seq == seq) {
            return &u->pend[i];
        }
        if (u->pend[i].seq == 0) {
            return NULL;
        }
    }
}

static void pend_put(genie_ucx_pend_t *tab, uint32_t cap, const genie_ucx_pend_t *e)
{
    for (uint32_t i = (e->seq * 2654435761u) & (cap - 1);; i = (i + 1) & (cap - 1)) {
        if (tab[i].seq == 0) {
            tab[i] = *e;
            return;
        }
    }
}

genie_status_t genie_ucx_pend_add(genie_ucx_t *u, uint32_t seq, int32_t rank, uint16_t type,
                                  int probe)
{
    genie_ucx_pend_t e = { .seq = seq, .rank = rank, .type = type, .probe = (uint8_t)probe };

    if (genie_ucx_pend_find(u, seq) != NULL) {
        /* Only after 2^32 requests with one still waiting. */
        return genie_set_error(GENIE_ERR_INVALID, "request number %u is still waiting", seq);
    }
    if (2 * (u->n_pend + 1) > u->pend_cap) {           /* keep the load under 1/2 */
        uint32_t          cap = u->pend_cap * 2;
        genie_ucx_pend_t *tab = calloc(cap, sizeof(*tab));
        if (tab == NULL || cap == 0) {
            free(tab);
            return genie_set_error(GENIE_ERR_NOMEM, "out of memory");
        }
        for (uint32_t i = 0; i < u->pend_cap; i++) {
            if (u->pend[i].seq != 0) {
                pend_put(tab, cap, &u->pend[i]);
            }
        }
        free(u->pend);
        u->pend     = tab;
        u->pend_cap = cap;
    }
    pend_put(u->pend, u->pend_cap, &e);
    u->n_pend++;
    return GENIE_OK;
}

/* Linear probing: delete by shifting the entries after it back into place. */
void genie_ucx_pend_del(genie_ucx_t *u, uint32_t seq)
{
    genie_ucx_pend_t *e = genie_ucx_pend_find(u, seq);
    uint32_t          mask = u->pend_cap - 1, i, j;

    if (e == NULL) {
        return;
    }
    i = (uint32_t)(e - u->pend);
    u->pend[i].seq = 0;
    u->n_pend--;
    for (j = (i + 1) & mask; u->pend[j].seq != 0; j = (j + 1) & mask) {
        uint32_t home = slot_of(u, u->pend[j].seq);
        /* Move j back to i if its home is not in (i, j] (cyclically). */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            u->pend[i] = u->pend[j];
            u->pend[j].seq = 0;
            i = j;
        }
    }
}

/* The reply to seq, taken out of the reply list (NULL if not there yet). */
static genie_ucx_msg_t *take_reply(genie_ucx_t *u, uint32_t seq, int any_state)
{
    genie_ucx_msg_t *prev = NULL;

    for (genie_ucx_msg_t *m = u->rep_head; m != NULL; prev = m, m = m->next) {
        if (m->hdr.seq == seq && (any_state || m->ready != 0)) {
            if (prev != NULL) {
                prev->next = m->next;
            } else {
                u->rep_head = m->next;
            }
            if (u->rep_tail == m) {
                u->rep_tail = prev;
            }
            m->next = NULL;
            return m;
        }
    }
    return NULL;
}

void genie_ucx_forget(genie_ucx_t *u, uint32_t seq)
{
    genie_ucx_pend_t *e = genie_ucx_pend_find(u, seq);
    genie_ucx_msg_t  *m;

    if (e == NULL) {
        return;
    }
    if (!e->probe && e->rank >= 0 && e->rank < u->size && u->peers[e->rank].outstanding > 0) {
        u->peers[e->rank].outstanding--;
    }
    if (e->arrived && (m = take_reply(u, seq, 1)) != NULL) {
        /* A rendezvous still writing into it: wait for it (bounded). */
        for (double t0 = genie_ucx_now(); m->ready == 0 && genie_ucx_now() - t0 < 1.0;) {
            ucp_worker_progress(u->worker);
        }
        if (m->ready == 0) {
            /* UCX still owns the buffer: leave the message to the queue's
             * cleanup at destroy rather than free memory UCX writes into. */
            m->next = NULL;
            if (u->rep_tail != NULL) {
                u->rep_tail->next = m;
            } else {
                u->rep_head = m;
            }
            u->rep_tail = m;
            m->hdr.seq = 0;                    /* nobody takes it */
        } else {
            genie_ucx_msg_free(m);
        }
    }
    genie_ucx_pend_del(u, seq);
}

/* ---- posting ------------------------------------------------------------------ */

typedef struct send_ctx {
    int          done;
    ucs_status_t status;
    void        *owned;    /* GENIE_UCX_COPY: header + payload copy */
    int          detached; /* nobody waits: the callback frees everything */
} send_ctx_t;

static void send_done(void *request, ucs_status_t status, void *user_data)
{
    send_ctx_t *sc = user_data;
    sc->status = status;
    sc->done   = 1;
    if (sc->detached) {
        free(sc->owned);
        free(sc);
    }
    ucp_request_free(request);
}

/* Wait for a send of ours to complete: liveness of `rank` (or, for a rank
 * we do not know, the timeout alone). */
static genie_status_t wait_send(genie_ucx_t *u, send_ctx_t *sc, int32_t rank, const char *what)
{
    double t0 = genie_ucx_now(), spin_until = t0 + u->spin_s;

    for (;;) {
        genie_status_t st;

        genie_ucx_progress(u);
        if (sc->done) {
            return GENIE_OK;
        }
        if ((st = genie_ucx_live(u, rank, t0, 0, what)) != GENIE_OK) {
            return st;
        }
        if (genie_ucx_now() > spin_until) {
            genie_ucx_progress_block(u, 20);
        }
    }
}

/* Post one AM on c, its header carrying c's token.  copy: header and payload
 * are copied and the call returns at once; otherwise it returns when UCX no
 * longer needs them.  If that wait fails, the endpoint is closed by force
 * before returning (UCX cannot cancel a send), so the caller may free
 * `payload` whatever this returns. */
genie_status_t genie_ucx_post(genie_ucx_t *u, genie_ucx_conn_t *c, int32_t rank,
                              const genie_wire_hdr_t *h0, const void *payload, size_t len, int copy)
{
    ucp_request_param_t rp = {0};
    genie_wire_hdr_t    h = *h0;
    send_ctx_t         *sc;
    const void         *hp = &h, *pp = payload;
    void               *req;
    genie_status_t      st;

    if (c->ep == NULL || c->closed) {
        return genie_set_error(GENIE_ERR_PEER_LOST, "rank %d: the connection is closed", (int)rank);
    }
    h.conn = c->token;
    if ((sc = calloc(1, sizeof(*sc))) == NULL) {
        return genie_set_error(GENIE_ERR_NOMEM, "out of memory sending %s", genie_msg_name(h.type));
    }
    if (copy) {
        uint8_t *blk = malloc(sizeof(h) + len);
        if (blk == NULL) {
            free(sc);
            return genie_set_error(GENIE_ERR_NOMEM, "out of memory sending %s", genie_msg_name(h.type));
        }
        memcpy(blk, &h, sizeof(h));
        if (len > 0) {
            memcpy(blk + sizeof(h), payload, len);
        }
        sc->owned    = blk;
        sc->detached = 1;
        hp = blk;
        pp = blk + sizeof(h);
    }
    rp.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA |
                      UCP_OP_ATTR_FIELD_FLAGS | UCP_OP_ATTR_FIELD_DATATYPE;
    rp.cb.send   = send_done;
    rp.user_data = sc;
    rp.flags     = UCP_AM_SEND_FLAG_REPLY;
    rp.datatype  = ucp_dt_make_contig(1);
    req = ucp_am_send_nbx(c->ep, GENIE_WIRE_AM_ID, hp, sizeof(h), pp, len, &rp);
    if (rank >= 0 && rank < u->size && u->peers != NULL) {
        u->peers[rank].stats.bytes_sent += sizeof(h) + len;
        u->peers[rank].stats.messages_sent++;
    }
    if (req == NULL || UCS_PTR_IS_ERR(req)) {          /* done in place, or failed */
        free(sc->owned);
        free(sc);
        return req == NULL ? GENIE_OK : genie_ucx_ucs_error(UCS_PTR_STATUS(req), "sending a message");
    }
    if (copy) {
        return GENIE_OK;                                /* send_done frees it all */
    }
    st = wait_send(u, sc, rank, genie_msg_name(h.type));
    if (st != GENIE_OK) {
        /* The request still references `payload`: end it by closing the
         * endpoint, so that UCX calls send_done before we return. */
        genie_ucx_conn_close_force(u, c);
        genie_ucx_drain(u, &sc->done, NULL, 0);  /* close_force guarantees it */
        if (rank >= 0) {
            genie_ucx_mark_lost(u, rank, "its connection was closed after a send to it failed");
        }
    } else if (sc->status != UCS_OK) {
        st = genie_ucx_ucs_error(sc->status, "sending a message");
    }
    free(sc);
    return st;
}

/* ---- liveness ------------------------------------------------------------------ */

static void probe(genie_ucx_t *u, int32_t rank)
{
    genie_ucx_peer_t *p = &u->peers[rank];
    genie_wire_hdr_t  h;
    uint32_t          seq;
    uint64_t          now_ns;

    if (p->conn == NULL || !p->conn->auth || p->conn->blocked || p->conn->closed) {
        return;
    }
    seq = genie_ucx_seq(u);
    if (genie_ucx_pend_add(u, seq, rank, GENIE_MSG_PING, 1) != GENIE_OK) {
        return;
    }
    now_ns = (uint64_t)(genie_ucx_now() * 1e9);
    genie_wire_hdr_init(&h, GENIE_MSG_PING, seq, 0, sizeof(now_ns), 0);
    if (genie_ucx_post(u, p->conn, rank, &h, &now_ns, sizeof(now_ns), 1) != GENIE_OK) {
        genie_ucx_pend_del(u, seq);
        return;
    }
    u->probes_sent++;
}

genie_status_t genie_ucx_live(genie_ucx_t *u, int32_t rank, double t0, double limit_s,
                              const char *what)
{
    double            now = genie_ucx_now(), tmo = u->params.timeout_s, ref;
    genie_ucx_peer_t *p;
    genie_status_t    st;
    char              who[160];

    if (rank < 0 || rank >= u->size || u->peers == NULL) {
        if (now - t0 > tmo) {
            return genie_set_error(GENIE_ERR_TIMEOUT, "%s: no answer within %.1f s", what, tmo);
        }
        return GENIE_OK;
    }
    if ((st = genie_ucx_peer_status(u, rank)) != GENIE_OK) {
        return st;
    }
    p   = &u->peers[rank];
    ref = p->last_heard > t0 ? p->last_heard : t0;
    if (limit_s > 0 && now - t0 > limit_s) {
        genie_ucx_describe(u, rank, who, sizeof(who));
        return genie_set_error(GENIE_ERR_TIMEOUT, "%s did not finish %s within %.1f s", who, what,
                               limit_s);
    }
    if (now - ref > tmo) {
        genie_ucx_describe(u, rank, who, sizeof(who));
        return genie_set_error(GENIE_ERR_TIMEOUT, "%s did not answer for %.1f s (waiting for %s)",
                               who, now - ref, what);
    }
    if (now - ref > tmo / 4 && now - p->last_probe > tmo / 4) {
        p->last_probe = now;
        probe(u, rank);
    }
    return GENIE_OK;
}

genie_status_t genie_ucx_alive(genie_ucx_t *u, int32_t rank, double since, double limit_s,
                               const char *what)
{
    return genie_ucx_live(u, rank, since, limit_s, what);
}

/* ---- requests and replies -------------------------------------------------------- */

genie_status_t genie_ucx_send(genie_ucx_t *u, int32_t rank, uint16_t type, uint64_t aux,
                              const void *payload, size_t len, int flags, uint32_t *seq_p)
{
    genie_wire_hdr_t h;
    genie_status_t   st;
    uint32_t         seq;

    if ((st = genie_ucx_peer_status(u, rank)) != GENIE_OK) {
        return st;
    }
    if ((st = genie_ucx_connected(u, rank)) != GENIE_OK &&
        (st = genie_ucx_connect(u, rank, NULL)) != GENIE_OK) {
        return st;
    }
    seq = genie_ucx_seq(u);
    if (!(flags & GENIE_UCX_NO_REPLY) && (st = genie_ucx_pend_add(u, seq, rank, type, 0)) != GENIE_OK) {
        return st;
    }
    genie_wire_hdr_init(&h, type, seq, 0, len, aux);
    st = genie_ucx_post(u, u->peers[rank].conn, rank, &h, payload, len, flags & GENIE_UCX_COPY);
    if (st != GENIE_OK) {
        genie_ucx_pend_del(u, seq);
        return st;
    }
    if (!(flags & GENIE_UCX_NO_REPLY)) {
        u->peers[rank].outstanding++;
    }
    if (seq_p != NULL) {
        *seq_p = seq;
    }
    return GENIE_OK;
}

genie_status_t genie_ucx_poll_reply(genie_ucx_t *u, uint32_t seq, int32_t rank,
                                    genie_ucx_msg_t **reply_p)
{
    genie_ucx_pend_t *e = genie_ucx_pend_find(u, seq);
    genie_ucx_msg_t  *m;

    if (e == NULL || e->probe || (rank >= 0 && e->rank != rank)) {
        return genie_set_error(GENIE_ERR_INVALID, "no request %u to rank %d is waiting for a reply",
                               seq, (int)rank);
    }
    if (!e->arrived || (m = take_reply(u, seq, 0)) == NULL) {
        return GENIE_UCX_PENDING;
    }
    if (e->rank >= 0 && e->rank < u->size && u->peers[e->rank].outstanding > 0) {
        u->peers[e->rank].outstanding--;
    }
    genie_ucx_pend_del(u, seq);
    if (m->ready < 0) {
        genie_ucx_msg_free(m);
        return genie_set_error(GENIE_ERR_TRANSPORT, "the reply from rank %d was lost in transfer",
                               (int)rank);
    }
    if (m->hdr.status < 0) {
        /* GENIE_ERR_TIMEOUT means "our own wait expired" to every caller:
         * a peer that reports one of its waits expiring reports a lost
         * peer of its own. */
        genie_status_t st = m->hdr.status == GENIE_ERR_TIMEOUT ? GENIE_ERR_PEER_LOST : m->hdr.status;
        if (m->len > 0 && m->len < 1024) {
            genie_set_error(st, "%.*s", (int)m->len, (const char *)m->payload);
        } else {
            genie_set_error(st, "rank %d: %s", (int)m->from, genie_status_str(st));
        }
        genie_ucx_msg_free(m);
        return st;
    }
    *reply_p = m;
    return GENIE_OK;
}

genie_status_t genie_ucx_wait_for(genie_ucx_t *u, uint32_t seq, int32_t rank, double limit_s,
                                  const char *what, genie_ucx_msg_t **reply_p)
{
    genie_ucx_pend_t *e = genie_ucx_pend_find(u, seq);
    double            t0 = genie_ucx_now(), spin_until = t0 + u->spin_s;
    char              op[64];

    if (e == NULL) {
        return genie_set_error(GENIE_ERR_INVALID, "no request %u is waiting for a reply", seq);
    }
    if (rank < 0) {
        rank = e->rank;
    }
    snprintf(op, sizeof(op), "the reply to %s", what != NULL ? what : genie_msg_name(e->type));
    for (;;) {
        genie_status_t st;

        genie_ucx_progress(u);
        st = genie_ucx_poll_reply(u, seq, rank, reply_p);
        if (st != GENIE_UCX_PENDING) {
            return st;
        }
        if ((st = genie_ucx_live(u, rank, t0, limit_s, op)) != GENIE_OK) {
            genie_ucx_forget(u, seq);
            return st;
        }
        if (genie_ucx_now() > spin_until) {
            genie_ucx_progress_block(u, 50);
        }
    }
}

genie_status_t genie_ucx_wait_from(genie_ucx_t *u, uint32_t seq, int32_t rank,
                                   genie_ucx_msg_t **reply_p)
{
    return genie_ucx_wait_for(u, seq, rank, 0, NULL, reply_p);
}

genie_status_t genie_ucx_call(genie_ucx_t *u, int32_t rank, uint16_t type, uint64_t aux,
                              const void *payload, size_t len, genie_ucx_msg_t **reply_p)
{
    uint32_t       seq;
    genie_status_t st = genie_ucx_send(u, rank, type, aux, payload, len, GENIE_UCX_COPY, &seq);
    if (st != GENIE_OK) {
        return st;
    }
    return genie_ucx_wait_from(u, seq, rank, reply_p);
}

/* ---- serving ---------------------------------------------------------------------- */

genie_status_t genie_ucx_next(genie_ucx_t *u, int timeout_ms, genie_ucx_msg_t **msg_p)
{
    double t0 = genie_ucx_now(), spin_until = t0 + u->spin_s;

    for (;;) {
        genie_ucx_msg_t *m;

        genie_ucx_progress(u);
        m = u->req_head;
        if (m != NULL && m->ready != 0) {
            genie_ucx_conn_t *c = genie_ucx_conn_find(u, m->token, m->ep);

            u->req_head = m->next;
            if (u->req_head == NULL) {
                u->req_tail = NULL;
            }
            m->next = NULL;
            if (c != NULL && c->queued > 0) {
                c->queued--;
            }
            if (c == NULL || c->blocked) {
                /* Its connection was dropped after it arrived. */
                u->dropped++;
                genie_ucx_msg_free(m);
                continue;
            }
            if (m->ready < 0) {
                genie_set_error(GENIE_ERR_TRANSPORT, "the data of a %s from rank %d was lost in "
                                "transfer", genie_msg_name(m->hdr.type), (int)m->from);
                genie_ucx_log(u, "%s", genie_last_error());
                if (m->hdr.type != GENIE_MSG_FREE) {
                    (void)genie_ucx_reply(u, m, GENIE_ERR_TRANSPORT, NULL, 0);
                }
                genie_ucx_msg_free(m);
                continue;
            }
            *msg_p = m;
            return GENIE_OK;
        }
        if (timeout_ms >= 0 && (genie_ucx_now() - t0) * 1e3 >= timeout_ms) {
            return GENIE_ERR_TIMEOUT;
        }
        if (genie_ucx_now() > spin_until) {
            genie_ucx_progress_block(u, timeout_ms < 0 ? 1000 : (timeout_ms < 100 ? timeout_ms : 100));
        }
    }
}

genie_status_t genie_ucx_reply(genie_ucx_t *u, const genie_ucx_msg_t *req, genie_status_t status,
                               const void *payload, size_t len)
{
    genie_ucx_conn_t *c = genie_ucx_conn_find(u, req->token, req->ep);
    genie_wire_hdr_t  h;
    const char       *why;

    if (c == NULL || c->blocked || c->failed) {
        return genie_set_error(GENIE_ERR_PEER_LOST, "the requester's connection is gone");
    }
    if (status < 0) {
        why = genie_last_error();
        payload = why;
        len = strlen(why);
    }
    genie_wire_hdr_init(&h, (uint16_t)(req->hdr.type | GENIE_MSG_REPLY), req->hdr.seq, status, len, 0);
    /* Small replies are copied (returns at once); large ones (fetched
     * tensors, outputs) are sent from the caller's buffer. */
    return genie_ucx_post(u, c, c->rank, &h, payload, len, len <= 65536);
}

genie_status_t genie_ucx_send_raw(genie_ucx_t *u, void *conn, const void *hdr, size_t hdr_len,
                                  const void *payload, size_t len)
{
    genie_ucx_conn_t   *c = conn;
    ucp_request_param_t rp = {0};
    send_ctx_t         *sc = calloc(1, sizeof(*sc));
    void               *req;
    genie_status_t      st = GENIE_OK;

    if (sc == NULL) {
        return genie_set_error(GENIE_ERR_NOMEM, "out of memory");
    }
    rp.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA |
                      UCP_OP_ATTR_FIELD_FLAGS;
    rp.cb.send   = send_done;
    rp.user_data = sc;
    rp.flags     = UCP_AM_SEND_FLAG_REPLY;
    req = ucp_am_send_nbx(c->ep, GENIE_WIRE_AM_ID, hdr, hdr_len, payload, len, &rp);
    if (UCS_PTR_IS_ERR(req)) {
        st = genie_ucx_ucs_error(UCS_PTR_STATUS(req), "sending raw bytes");
    } else if (req != NULL && (st = wait_send(u, sc, c->rank, "a raw send")) != GENIE_OK) {
        genie_ucx_conn_close_force(u, c);
        genie_ucx_drain(u, &sc->done, NULL, 0);
    }
    free(sc);
    return st;
}

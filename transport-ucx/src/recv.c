/*
 * Receiving: the one active-message handler, and the queues it fills.
 *
 * genie_ucx_am_recv validates the framing and the connection *before* taking
 * any data, so a peer that sends garbage costs a counter and, at most once
 * a second, a log line.  Then:
 *   - HELLO on an unknown connection: handled (conn.c), verdict queued;
 *   - PING on an authenticated incoming connection: answered by the
 *     transport (queued, sent after the progress pass), never queued as a
 *     request: liveness must not wait behind a long request;
 *   - other requests: the request FIFO that genie_ucx_next() pops in arrival
 *     order (a payload still arriving by rendezvous holds back those behind
 *     it), at most GENIE_UCX_MAX_QUEUED per connection;
 *   - replies: accepted only on our own connections and only for a request
 *     we are still waiting for (the pending table); anything else is
 *     discarded, so a peer cannot fill our memory with replies nobody reads.
 * A request that cannot be queued (no memory, queue full, payload lost in
 * transfer) is answered with an error: no request is dropped without a reply
 * unless its connection itself was dropped.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ucx_internal.h"

void genie_ucx_free_queue(genie_ucx_msg_t *m)
{
    while (m != NULL) {
        genie_ucx_msg_t *n = m->next;
        genie_ucx_msg_free(m);
        m = n;
    }
}

void genie_ucx_msg_free(genie_ucx_msg_t *m)
{
    if (m != NULL) {
        free(m->payload);
        free(m);
    }
}

static void queue_push(genie_ucx_msg_t **head, genie_ucx_msg_t **tail, genie_ucx_msg_t *m)
{
    m->next = NULL;
    if (*tail != NULL) {
        (*tail)->next = m;
    } else {
        *head = m;
    }
    *tail = m;
}

/* ---- control replies (HELLO verdicts, PING answers, refusals) ----------- */

/* 1 if queued.  Takes ownership of c->payload either way. */
int genie_ucx_ctrl_push(genie_ucx_t *u, const genie_ucx_ctrl_t *c)
{
    if (u->n_ctrl >= GENIE_UCX_MAX_CTRL) {
        free(c->payload);
        u->dropped++;
        genie_ucx_drop_log(u, "too many HELLO/PING answers waiting; one was not sent");
        return 0;
    }
    u->ctrl[u->n_ctrl++] = *c;
    return 1;
}

/* A refusal of a request that could not even be queued: its reason as the
 * payload, like any error reply. */
static void refuse(genie_ucx_t *u, ucp_ep_h ep, const genie_wire_hdr_t *h, int32_t rank,
                   genie_status_t st, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void refuse(genie_ucx_t *u, ucp_ep_h ep, const genie_wire_hdr_t *h, int32_t rank,
                   genie_status_t st, const char *fmt, ...)
{
    genie_ucx_ctrl_t c = { .ep = ep, .token = h->conn, .rank = rank, .type = h->type,
                           .seq = h->seq, .status = st };
    char             why[300];
    va_list          ap;
    int              n;

    va_start(ap, fmt);
    n = vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    u->dropped++;
    genie_ucx_drop_log(u, "%s", why);
    if (h->type == GENIE_MSG_FREE) {
        return;                                 /* FREE has no reply */
    }
    c.len     = n < 0 ? 0 : (size_t)n < sizeof(why) ? (size_t)n : sizeof(why) - 1;
    c.payload = malloc(c.len + 1);
    if (c.payload == NULL) {
        c.len = 0;
    } else {
        memcpy(c.payload, why, c.len);
    }
    (void)genie_ucx_ctrl_push(u, &c);
}

void genie_ucx_ctrl_flush(genie_ucx_t *u)
{
    int n = u->n_ctrl;

    u->n_ctrl = 0;
    for (int i = 0; i < n; i++) {
        genie_ucx_ctrl_t *v = &u->ctrl[i];
        genie_ucx_conn_t  tmp = { .ep = v->ep, .owner = u, .token = v->token, .rank = v->rank };
        genie_wire_hdr_t  h;

        genie_wire_hdr_init(&h, (uint16_t)(v->type | GENIE_MSG_REPLY), v->seq, v->status, v->len, 0);
        /* A stack connection: the verdict goes on the endpoint it came from
         * even when no connection was created for it.  Copied sends only. */
        (void)genie_ucx_post(u, &tmp, v->rank, &h, v->payload, v->len, 1);
        free(v->payload);
    }
}

/* ---- the handler ------------------------------------------------------------ */

static void rndv_done(void *request, ucs_status_t status, size_t length, void *user_data)
{
    genie_ucx_msg_t *m = user_data;
    (void)length;
    m->ready = status == UCS_OK ? 1 : -1;
    ucp_request_free(request);
}

/* Take the data of a message into m->payload (eager: copied now; rendezvous:
 * a receive is started).  GENIE_OK or an error with the reason recorded. */
static genie_status_t take_data(genie_ucx_t *u, genie_ucx_msg_t *m, void *data, size_t length,
                                const ucp_am_recv_param_t *param)
{
    if (length > 0 && (m->payload = malloc(length)) == NULL) {
        return genie_set_error(GENIE_ERR_NOMEM, "out of memory receiving a %s of %zu bytes",
                               genie_msg_name(m->hdr.type), length);
    }
    if (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) {
        ucp_request_param_t rp = {0};
        void               *req;

        rp.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA |
                          UCP_OP_ATTR_FIELD_DATATYPE;
        rp.cb.recv_am   = rndv_done;
        rp.user_data    = m;
        rp.datatype     = ucp_dt_make_contig(1);
        req = ucp_am_recv_data_nbx(u->worker, data, m->payload, length, &rp);
        if (UCS_PTR_IS_ERR(req)) {
            return genie_set_error(GENIE_ERR_TRANSPORT, "receiving a %s: %s",
                                   genie_msg_name(m->hdr.type), ucs_status_string(UCS_PTR_STATUS(req)));
        }
        m->ready = req == NULL ? 1 : 0;
    } else {
        if (length > 0) {
            memcpy(m->payload, data, length);
        }
        m->ready = 1;
    }
    return GENIE_OK;
}

static void on_reply(genie_ucx_t *u, genie_ucx_conn_t *c, const genie_wire_hdr_t *h, void *data,
                     size_t length, const ucp_am_recv_param_t *param)
{
    genie_ucx_pend_t *pe = genie_ucx_pend_find(u, h->seq);
    genie_ucx_msg_t  *m;

    if (pe == NULL || pe->rank != c->rank || pe->arrived) {
        /* Late (we gave up on it), duplicated or never asked for. */
        u->dropped++;
        genie_ucx_drop_log(u, "discarded a %s from rank %d that no request is waiting for",
                           genie_msg_name(h->type), (int)c->rank);
        return;
    }
    if (pe->probe) {                    /* liveness answer: seen, nothing to keep */
        genie_ucx_pend_del(u, h->seq);
        return;
    }
    pe->arrived = 1;
    if ((m = calloc(1, sizeof(*m))) == NULL) {
        genie_ucx_log(u, "out of memory receiving a %s", genie_msg_name(h->type));
        pe->arrived = 0;
        return;
    }
    m->hdr   = *h;
    m->len   = length;
    m->from  = c->rank;
    m->ep    = c->ep;
    m->token = c->token;
    if (take_data(u, m, data, length, param) != GENIE_OK) {
        /* The waiter learns that the reply was lost, and why. */
        genie_ucx_log(u, "%s", genie_last_error());
        free(m->payload);
        m->payload = NULL;
        m->len     = 0;
        m->ready   = -1;
    }
    queue_push(&u->rep_head, &u->rep_tail, m);
}

static void on_request(genie_ucx_t *u, genie_ucx_conn_t *c, ucp_ep_h ep, const genie_wire_hdr_t *h,
                       void *data, size_t length, const ucp_am_recv_param_t *param)
{
    genie_ucx_msg_t *m;
    genie_status_t   st;

    if (h->type == GENIE_MSG_PING) {
        genie_ucx_ctrl_t v = { .ep = ep, .token = c->token, .rank = c->rank,
                               .type = GENIE_MSG_PING, .seq = h->seq };
        if (length > GENIE_UCX_MAX_PING || (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV)) {
            refuse(u, ep, h, c->rank, GENIE_ERR_INVALID, "refused a PING of %zu bytes from rank %d "
                   "(at most %d)", length, (int)c->rank, GENIE_UCX_MAX_PING);
            return;
        }
        if (length > 0 && (v.payload = malloc(length)) == NULL) {
            refuse(u, ep, h, c->rank, GENIE_ERR_NOMEM, "out of memory answering a PING");
            return;
        }
        if (length > 0) {
            memcpy(v.payload, data, length);
        }
        v.len = length;
        (void)genie_ucx_ctrl_push(u, &v);
        return;
    }
    if (c->queued >= GENIE_UCX_MAX_QUEUED) {
        refuse(u, ep, h, c->rank, GENIE_ERR_NOMEM, "refused a %s from rank %d: %d requests from "
               "it are already waiting", genie_msg_name(h->type), (int)c->rank, GENIE_UCX_MAX_QUEUED);
        return;
    }
    if ((m = calloc(1, sizeof(*m))) == NULL) {
        refuse(u, ep, h, c->rank, GENIE_ERR_NOMEM, "out of memory receiving a %s from rank %d",
               genie_msg_name(h->type), (int)c->rank);
        return;
    }
    m->hdr   = *h;
    m->len   = length;
    m->from  = c->rank;
    m->ep    = ep;
    m->token = c->token;
    if ((st = take_data(u, m, data, length, param)) != GENIE_OK) {
        refuse(u, ep, h, c->rank, st, "%s (from rank %d)", genie_last_error(), (int)c->rank);
        genie_ucx_msg_free(m);
        return;
    }
    c->queued++;
    queue_push(&u->req_head, &u->req_tail, m);
}

ucs_status_t genie_ucx_am_recv(void *arg, const void *header, size_t header_length, void *data,
                               size_t length, const ucp_am_recv_param_t *param)
{
    genie_ucx_t      *u = arg;
    genie_ucx_conn_t *c;
    genie_wire_hdr_t  h;
    ucp_ep_h          ep;
    int               is_reply;

    if (!(param->recv_attr & UCP_AM_RECV_ATTR_FIELD_REPLY_EP) || param->reply_ep == NULL) {
        u->dropped++;
        genie_ucx_drop_log(u, "discarded a message without a reply endpoint");
        return UCS_OK;
    }
    ep = param->reply_ep;
    if (genie_wire_check_hdr(header, header_length, length, &h) != GENIE_OK) {
        /* The connection it claims (if the header is long enough to say) is
         * dropped: a peer that sends broken frames is not trusted further. */
        uint64_t token = 0;
        if (header != NULL && header_length == sizeof(h)) {
            memcpy(&token, (const uint8_t *)header + offsetof(genie_wire_hdr_t, conn), sizeof(token));
        }
        if ((c = genie_ucx_conn_find(u, token, ep)) != NULL && !c->blocked) {
            genie_ucx_conn_drop(u, c, genie_last_error());
        } else {
            u->dropped++;
            genie_ucx_drop_log(u, "discarded a message: %s", genie_last_error());
        }
        return UCS_OK;
    }
    is_reply = (h.type & GENIE_MSG_REPLY) != 0;
    c = genie_ucx_conn_find(u, h.conn, ep);
    if (c == NULL) {
        if (h.type == GENIE_MSG_HELLO) {
            if (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) {
                u->dropped++;
                genie_ucx_drop_log(u, "refused a connection: oversized HELLO");
                return UCS_OK;
            }
            genie_ucx_handle_hello(u, NULL, &h, ep, data, length);
            return UCS_OK;
        }
        u->dropped++;
        genie_ucx_drop_log(u, "discarded a %s on no known connection (a connection starts with "
                           "HELLO)", genie_msg_name(h.type));
        return UCS_OK;
    }
    if (c->blocked) {
        u->dropped++;
        return UCS_OK;
    }
    if (h.type == (GENIE_MSG_HELLO | GENIE_MSG_REPLY) && c->outgoing) {
        genie_ucx_hello_verdict(u, c, &h);
        return UCS_OK;
    }
    if ((h.type & ~GENIE_MSG_REPLY) == GENIE_MSG_HELLO) {
        genie_ucx_conn_drop(u, c, "second HELLO on a connection");
        return UCS_OK;
    }
    if (is_reply != (c->outgoing != 0)) {
        genie_ucx_conn_drop(u, c, is_reply ? "a reply on a connection we did not ask on"
                                           : "a request on our own connection");
        return UCS_OK;
    }
    if (!c->auth) {
        genie_ucx_conn_drop(u, c, "a message before HELLO");
        return UCS_OK;
    }
    if (length > GENIE_UCX_MAX_PAYLOAD) {
        genie_ucx_conn_drop(u, c, "payload over the size limit");
        return UCS_OK;
    }
    if (c->rank >= 0 && c->rank < u->size) {
        genie_ucx_peer_t *p = &u->peers[c->rank];
        p->stats.bytes_received += length + header_length;
        p->stats.messages_received++;
        p->last_heard = genie_ucx_now();
    }
    if (is_reply) {
        on_reply(u, c, &h, data, length, param);
    } else {
        on_request(u, c, ep, &h, data, length, param);
    }
    return UCS_OK;
}

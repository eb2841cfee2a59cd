/*
 * Connections: who is on the other end of an endpoint, and what we still
 * accept from it.
 *
 * A connection is known by (token, endpoint).  The dialer draws the token
 * (64 random bits) and puts it in every header it sends on the connection,
 * HELLO included; the acceptor answers on the same connection with the same
 * token.  A message whose (token, endpoint) is unknown is accepted only if
 * it is a HELLO, which creates a new connection.  So an endpoint that UCX
 * frees and later reuses for another peer starts from nothing, and a
 * connection that was dropped (its state freed at once) cannot be resumed.
 *
 * Incoming connections are freed when dropped; outgoing ones (our own
 * endpoints, with our error callback) live until the transport is destroyed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "ucx_internal.h"

static uint64_t new_token(genie_ucx_t *u)
{
    uint64_t t = 0;

    while (t == 0) {
        if (getrandom(&t, sizeof(t), 0) != (ssize_t)sizeof(t)) {
            /* No entropy source: still unique per process, which is all the
             * token must be (authentication is the HELLO's secret). */
            static uint64_t counter;
            t = ((uint64_t)getpid() << 32) ^ (uint64_t)(genie_ucx_now() * 1e9) ^ ++counter;
        }
        if (genie_ucx_conn_find(u, t, NULL) != NULL) {
            t = 0;
        }
    }
    return t;
}

/* ep NULL: any endpoint (token uniqueness). */
genie_ucx_conn_t *genie_ucx_conn_find(genie_ucx_t *u, uint64_t token, ucp_ep_h ep)
{
    if (token == 0) {
        return NULL;
    }
    for (genie_ucx_conn_t *c = u->conns; c != NULL; c = c->next) {
        if (c->token == token && (ep == NULL || c->ep == ep)) {
            return c;
        }
    }
    return NULL;
}

static void conn_link(genie_ucx_t *u, genie_ucx_conn_t *c)
{
    c->next  = u->conns;
    u->conns = c;
}

static void conn_unlink_free(genie_ucx_t *u, genie_ucx_conn_t *c)
{
    for (genie_ucx_conn_t **pp = &u->conns; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    if (!c->outgoing && u->n_incoming > 0) {
        u->n_incoming--;
    }
    if (c->owns_ep && c->ep != NULL && !c->closed) {
        /* Its endpoint is ours to close, which may not happen inside a UCX
         * callback (this may be one): genie_ucx_conns_reap does it. */
        c->blocked = 1;
        c->next    = u->retired;
        u->retired = c;
        return;
    }
    free(c);
}

genie_ucx_conn_t *genie_ucx_conn_accept(genie_ucx_t *u, ucp_ep_h ep, uint64_t token)
{
    genie_ucx_conn_t *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        return NULL;
    }
    c->ep    = ep;
    c->owner = u;
    c->token = token;
    c->rank  = -1;
    conn_link(u, c);
    u->n_incoming++;
    return c;
}

/* At most one line per second about dropped connections and discarded
 * messages: a flood of garbage must not become a flood of log lines. */
void genie_ucx_drop_log(genie_ucx_t *u, const char *fmt, ...)
{
    char    line[400];
    va_list ap;
    double  now = genie_ucx_now();

    if (now - u->drop_log_t < 1.0) {
        u->drop_log_quiet++;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (u->drop_log_quiet > 0) {
        genie_ucx_log(u, "%s (and %llu more such events in the last second)", line,
                      (unsigned long long)u->drop_log_quiet);
    } else {
        genie_ucx_log(u, "%s", line);
    }
    u->drop_log_t     = now;
    u->drop_log_quiet = 0;
}

void genie_ucx_conn_drop(genie_ucx_t *u, genie_ucx_conn_t *c, const char *why)
{
    u->dropped++;
    if (c->rank >= 0) {
        genie_ucx_drop_log(u, "dropped the connection from rank %d: %s", (int)c->rank, why);
    } else {
        genie_ucx_drop_log(u, "dropped a connection: %s", why);
    }
    if (c->outgoing) {
        c->blocked = 1;
    } else {
        conn_unlink_free(u, c);
    }
}

/* Close our endpoint by force: UCX completes every request still on it (with
 * an error), so after this returns no send, get or rendezvous of ours can
 * touch a buffer again.  UCX guarantees that; if it did not happen within
 * GENIE_UCX_CLOSE_LIMIT_S the process could not free any buffer safely, so it
 * stops with one line rather than risk writing into freed memory. */
void genie_ucx_conn_close_force(genie_ucx_t *u, genie_ucx_conn_t *c)
{
    ucp_request_param_t rp = {0};
    void               *req;
    double              t0 = genie_ucx_now();

    if (c->closed || c->ep == NULL || !(c->outgoing || c->owns_ep)) {
        return;
    }
    c->closed  = 1;
    c->blocked = 1;
    rp.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    rp.flags        = UCP_EP_CLOSE_FLAG_FORCE;
    req = ucp_ep_close_nbx(c->ep, &rp);
    while (UCS_PTR_IS_PTR(req) && ucp_request_check_status(req) == UCS_INPROGRESS) {
        ucp_worker_progress(u->worker);
        if (genie_ucx_now() - t0 > GENIE_UCX_CLOSE_LIMIT_S) {
            genie_ucx_log(u, "UCX did not close an endpoint within %.0f s; stopping, since its "
                          "requests may still use freed buffers", GENIE_UCX_CLOSE_LIMIT_S);
            abort();
        }
    }
    if (UCS_PTR_IS_PTR(req)) {
        ucp_request_free(req);
    }
    c->ep = NULL;
}

/* After close_force: progress until the flag is set (or the count reaches
 * `want`), which UCX guarantees; stop with one line if it does not. */
void genie_ucx_drain(genie_ucx_t *u, const int *flag, const uint32_t *count, uint32_t want)
{
    double t0 = genie_ucx_now();

    while (flag != NULL ? *(const volatile int *)flag == 0 : *(const volatile uint32_t *)count < want) {
        ucp_worker_progress(u->worker);
        if (genie_ucx_now() - t0 > GENIE_UCX_CLOSE_LIMIT_S) {
            genie_ucx_log(u, "UCX did not complete a request of a closed endpoint within %.0f s; "
                          "stopping, since it may still use a freed buffer", GENIE_UCX_CLOSE_LIMIT_S);
            abort();
        }
    }
}

/* Close the pinned endpoints of dropped incoming connections (outside any
 * UCX callback: genie_ucx_progress calls this after the worker's). */
void genie_ucx_conns_reap(genie_ucx_t *u)
{
    while (u->retired != NULL) {
        genie_ucx_conn_t *c = u->retired;

        u->retired = c->next;
        genie_ucx_conn_close_force(u, c);
        free(c);
    }
}

void genie_ucx_conns_free(genie_ucx_t *u)
{
    genie_ucx_conns_reap(u);
    for (genie_ucx_conn_t *c = u->conns; c != NULL; c = c->next) {
        if ((c->outgoing || c->owns_ep) && c->ep != NULL && !c->closed) {
            /* Bounded: a dead peer cannot acknowledge. */
            ucp_request_param_t rp = {0};
            void *req;
            rp.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
            rp.flags        = UCP_EP_CLOSE_FLAG_FORCE;
            req = ucp_ep_close_nbx(c->ep, &rp);
            for (double t0 = genie_ucx_now(); UCS_PTR_IS_PTR(req) && genie_ucx_now() - t0 < 1.0;) {
                ucp_worker_progress(u->worker);
                if (ucp_request_check_status(req) != UCS_INPROGRESS) {
                    break;
                }
            }
            if (UCS_PTR_IS_PTR(req)) {
                ucp_request_free(req);
            }
        }
    }
    while (u->conns != NULL) {
        genie_ucx_conn_t *n = u->conns->next;
        free(u->conns);
        u->conns = n;
    }
    u->n_incoming = 0;
}

/* ---- peers ---------------------------------------------------------------- */

void genie_ucx_peer_lost(genie_ucx_t *u, int32_t rank, const char *why)
{
    genie_ucx_peer_t *p;

    if (rank < 0 || rank >= u->size || u->peers == NULL) {
        return;
    }
    p = &u->peers[rank];
    if (p->lost == GENIE_OK) {
        p->lost = GENIE_ERR_PEER_LOST;
        snprintf(p->lost_reason, sizeof(p->lost_reason), "%s", why);
    }
}

void genie_ucx_mark_lost(genie_ucx_t *u, int32_t rank, const char *why)
{
    genie_ucx_conn_t *c, *next;

    if (rank < 0 || rank >= u->size || u->peers == NULL || rank == u->params.self.rank) {
        return;
    }
    genie_ucx_peer_lost(u, rank, why);
    for (c = u->conns; c != NULL; c = next) {
        next = c->next;
        if (c->rank != rank) {
            continue;
        }
        if (c->outgoing) {
            genie_ucx_conn_close_force(u, c);
        } else {
            conn_unlink_free(u, c);
        }
    }
}

int genie_ucx_end_peer(genie_ucx_t *u, int32_t rank, const char *why)
{
    const genie_ucx_peer_info_t *p = genie_ucx_peer(u, rank);
    int                          killed = 0;

    if (p == NULL || rank == u->params.self.rank) {
        return 0;
    }
    if (p->pid != 0 && strcmp(p->host, u->params.self.host) == 0) {
        killed = kill((pid_t)p->pid, SIGKILL) == 0 || errno == ESRCH;
    }
    genie_ucx_mark_lost(u, rank, why);
    return killed;
}

static void ep_error(void *arg, ucp_ep_h ep, ucs_status_t status)
{
    genie_ucx_conn_t *c = arg;
    genie_ucx_t      *u = c->owner;
    char              why[160];

    (void)ep;
    c->failed = 1;
    if (c->rank >= 0 && c->outgoing == 1 && c->rank < u->size) {
        snprintf(why, sizeof(why), "UCX reported its endpoint failed (%s)",
                 ucs_status_string(status));
        genie_ucx_peer_lost(u, c->rank, why);
    }
}

/* An endpoint to a worker address with peer-failure handling: UCX calls
 * ep_error(c) when it fails. */
static ucs_status_t ep_to(genie_ucx_t *u, const void *addr, genie_ucx_conn_t *c, ucp_ep_h *ep_p)
{
    ucp_ep_params_t ep = {0};

    ep.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                    UCP_EP_PARAM_FIELD_ERR_HANDLER;
    ep.address         = addr;
    ep.err_mode        = UCP_ERR_HANDLING_MODE_PEER;
    ep.err_handler.cb  = ep_error;
    ep.err_handler.arg = c;
    return ucp_ep_create(u->worker, &ep, ep_p);
}

genie_status_t genie_ucx_ep_create(genie_ucx_t *u, genie_ucx_peer_t *p, int outgoing,
                                   genie_ucx_conn_t **conn_p)
{
    genie_ucx_conn_t *c = calloc(1, sizeof(*c));
    ucs_status_t      s;

    if (c == NULL) {
        return genie_set_error(GENIE_ERR_NOMEM, "out of memory");
    }
    c->owner    = u;
    c->rank     = p->info.rank;
    c->outgoing = outgoing;
    c->token    = new_token(u);
    s = ep_to(u, p->addr, c, &c->ep);
    if (s != UCS_OK) {
        free(c);
        return genie_ucx_ucs_error(s, "ucp_ep_create");
    }
    conn_link(u, c);
    *conn_p = c;
    return GENIE_OK;
}

/* An incoming connection's endpoint is the one UCX made when the dialer
 * connected.  UCX destroys such an endpoint, without telling anyone, when it
 * sees the peer fail or close, so holding it across progress calls (a reply
 * sent after the request ran) could use freed memory.  Pinning: we create our
 * own endpoint to the dialer's worker address, which UCX pairs with that very
 * endpoint (endpoints between two workers pair in creation order); from then
 * on it is ours, with our error callback, until we close it.  If our main
 * endpoint to that rank is already the pair, nothing needs doing.  Called
 * outside UCX callbacks, before the HELLO verdict goes out. */
genie_status_t genie_ucx_conn_pin(genie_ucx_t *u, genie_ucx_conn_t *c)
{
    genie_ucx_peer_t *p;
    ucp_ep_h          mine = NULL;
    ucs_status_t      s;

    if (c->outgoing || c->owns_ep || c->rank < 0 || c->rank >= u->size || u->peers == NULL) {
        return GENIE_OK;
    }
    for (genie_ucx_conn_t *o = u->conns; o != NULL; o = o->next) {
        if (o != c && o->outgoing && o->ep == c->ep) {
            return GENIE_OK;
        }
    }
    p = &u->peers[c->rank];
    if (p->addr == NULL) {
        return genie_set_error(GENIE_ERR_TRANSPORT, "no worker address for rank %d", (int)c->rank);
    }
    if ((s = ep_to(u, p->addr, c, &mine)) != UCS_OK) {
        return genie_ucx_ucs_error(s, "ucp_ep_create (pinning an incoming connection)");
    }
    if (mine != c->ep) {
        /* Not its pair: close ours and refuse rather than keep an endpoint
         * UCX may free under us. */
        genie_ucx_conn_t tmp = { .ep = mine, .owner = u, .owns_ep = 1 };
        genie_ucx_conn_close_force(u, &tmp);
        return genie_set_error(GENIE_ERR_TRANSPORT, "UCX did not pair our endpoint with rank %d's "
                               "connection", (int)c->rank);
    }
    c->owns_ep = 1;
    return GENIE_OK;
}

/* ---- HELLO ------------------------------------------------------------------ */

/* HELLO: | secret (u32 len + 64 chars) | rank u32 | pid u32 |, header conn =
 * the dialer's token.  Constant-time comparison; the verdict is queued and
 * sent outside the callback.  A connection is created only when accepted. */
void genie_ucx_handle_hello(genie_ucx_t *u, genie_ucx_conn_t *unused, const genie_wire_hdr_t *h,
                            ucp_ep_h ep, const void *data, size_t len)
{
    genie_wire_reader_t r;
    genie_ucx_ctrl_t    v = { .ep = ep, .token = h->conn, .rank = -1, .type = GENIE_MSG_HELLO,
                              .seq = h->seq, .status = GENIE_ERR_DENIED };
    const uint8_t      *secret;
    uint32_t            slen, rank, pid;
    unsigned            diff = 0;
    const char         *why = NULL;
    char                whybuf[96];

    (void)unused;
    genie_wire_r_init(&r, data, len, "HELLO");
    secret = genie_wire_r_bytes(&r, &slen);
    rank   = genie_wire_r_u32(&r);
    pid    = genie_wire_r_u32(&r);
    if (genie_wire_r_done(&r) != GENIE_OK || slen != GENIE_WIRE_SECRET_LEN) {
        why = "malformed HELLO";
    } else {
        for (uint32_t i = 0; i < slen; i++) {
            diff |= (unsigned)(secret[i] ^ (uint8_t)u->params.secret[i]);
        }
        if (diff != 0) {
            snprintf(whybuf, sizeof(whybuf), "wrong job secret (claims rank %u, pid %u)", rank, pid);
            why = whybuf;
        } else if (rank >= (uint32_t)u->size || (int32_t)rank == u->params.self.rank) {
            why = "HELLO from a rank outside the job";
        } else if (h->conn == 0 || genie_ucx_conn_find(u, h->conn, NULL) != NULL) {
            why = "HELLO without a fresh connection token";
        } else if (u->peers != NULL && u->peers[rank].lost != GENIE_OK) {
            why = "HELLO from a rank that was lost or fenced off";
        } else if (u->n_incoming >= GENIE_UCX_MAX_CONNS) {
            why = "too many connections at once";
        }
    }
    if (why == NULL) {
        genie_ucx_conn_t *c = genie_ucx_conn_accept(u, ep, h->conn);
        if (c == NULL) {
            why = "out of memory";
        } else {
            c->auth  = 1;
            c->rank  = (int32_t)rank;
            v.rank   = (int32_t)rank;
            v.status = GENIE_OK;
        }
    }
    if (why != NULL) {
        u->dropped++;
        genie_ucx_drop_log(u, "refused a connection: %s", why);
    }
    if (!genie_ucx_ctrl_push(u, &v) && v.status == GENIE_OK) {
        /* No room to answer: take the acceptance back rather than leave a
         * connection the dialer does not know is accepted. */
        genie_ucx_conn_t *c = genie_ucx_conn_find(u, h->conn, ep);
        if (c != NULL) {
            conn_unlink_free(u, c);
        }
    }
}

void genie_ucx_hello_verdict(genie_ucx_t *u, genie_ucx_conn_t *c, const genie_wire_hdr_t *h)
{
    genie_ucx_pend_t *pe = genie_ucx_pend_find(u, h->seq);

    if (pe == NULL || h->seq != c->hello_seq) {
        u->dropped++;
        return;
    }
    genie_ucx_pend_del(u, h->seq);
    if (h->status == GENIE_OK) {
        c->verified = 1;
    } else {
        c->denied  = 1;
        c->blocked = 1;
    }
    if (c->rank >= 0 && c->rank < u->size) {
        u->peers[c->rank].last_heard = genie_ucx_now();
    }
}

static genie_status_t hello_send(genie_ucx_t *u, genie_ucx_conn_t *c, const char *secret)
{
    genie_wire_writer_t w;
    genie_wire_hdr_t    h;
    genie_status_t      st;
    uint32_t            seq = genie_ucx_seq(u);

    genie_wire_w_init(&w);
    genie_wire_w_bytes(&w, secret, (uint32_t)strlen(secret));
    genie_wire_w_u32(&w, (uint32_t)u->params.self.rank);
    genie_wire_w_u32(&w, u->params.self.pid);
    if ((st = genie_wire_w_status(&w)) == GENIE_OK &&
        (st = genie_ucx_pend_add(u, seq, c->rank, GENIE_MSG_HELLO, 0)) == GENIE_OK) {
        genie_wire_hdr_init(&h, GENIE_MSG_HELLO, seq, 0, w.len, 0);
        c->hello_seq = seq;
        st = genie_ucx_post(u, c, c->rank, &h, w.buf, w.len, 1);
        if (st == GENIE_OK) {
            c->auth = 1;
        } else {
            genie_ucx_pend_del(u, seq);
        }
    }
    genie_wire_w_free(&w);
    return st;
}

/* Wait (bounded by liveness) for the verdict on c. */
static genie_status_t hello_wait(genie_ucx_t *u, genie_ucx_conn_t *c)
{
    double t0 = genie_ucx_now();

    for (;;) {
        genie_status_t st;

        genie_ucx_progress(u);
        if (c->verified) {
            return GENIE_OK;
        }
        if (c->denied) {
            return genie_set_error(GENIE_ERR_DENIED, "rank %d refused the connection: wrong job "
                                   "secret", (int)c->rank);
        }
        if (c->failed) {
            return genie_set_error(GENIE_ERR_PEER_LOST, "rank %d: the connection failed",
                                   (int)c->rank);
        }
        if ((st = genie_ucx_live(u, c->rank, t0, 0, "HELLO")) != GENIE_OK) {
            genie_ucx_forget(u, c->hello_seq);
            return st;
        }
        genie_ucx_progress_block(u, 50);
    }
}

static genie_status_t main_conn(genie_ucx_t *u, int32_t rank, genie_ucx_conn_t **c_p)
{
    genie_ucx_peer_t *p;
    genie_status_t    st;

    if (rank < 0 || rank >= u->size || u->peers == NULL || rank == u->params.self.rank) {
        return genie_set_error(GENIE_ERR_INVALID, "cannot connect to rank %d", (int)rank);
    }
    if ((st = genie_ucx_peer_status(u, rank)) != GENIE_OK) {
        return st;
    }
    p = &u->peers[rank];
    if (p->conn == NULL && (st = genie_ucx_ep_create(u, p, 1, &p->conn)) != GENIE_OK) {
        return st;
    }
    *c_p = p->conn;
    return GENIE_OK;
}

genie_status_t genie_ucx_connect_start(genie_ucx_t *u, int32_t rank)
{
    genie_ucx_conn_t *c;
    genie_status_t    st = main_conn(u, rank, &c);

    if (st == GENIE_OK && !c->auth) {
        st = hello_send(u, c, u->params.secret);
    }
    return st;
}

genie_status_t genie_ucx_connected(genie_ucx_t *u, int32_t rank)
{
    genie_ucx_conn_t *c;
    genie_status_t    st = main_conn(u, rank, &c);

    if (st != GENIE_OK) {
        return st;
    }
    if (c->verified) {
        return GENIE_OK;
    }
    if (c->denied) {
        return genie_set_error(GENIE_ERR_DENIED, "rank %d refused the connection", (int)rank);
    }
    return c->auth ? GENIE_UCX_PENDING : genie_set_error(GENIE_ERR_INVALID, "no HELLO sent to "
                                                         "rank %d", (int)rank);
}

genie_status_t genie_ucx_connect(genie_ucx_t *u, int32_t rank, const char *secret)
{
    genie_ucx_conn_t *c;
    genie_status_t    st = main_conn(u, rank, &c);

    if (st != GENIE_OK || c->verified) {
        return st;
    }
    if (!c->auth && (st = hello_send(u, c, secret != NULL ? secret : u->params.secret)) != GENIE_OK) {
        return st;
    }
    return hello_wait(u, c);
}

genie_status_t genie_ucx_watch(genie_ucx_t *u, int32_t rank)
{
    genie_ucx_conn_t *c;
    return main_conn(u, rank, &c);
}

genie_status_t genie_ucx_connect_extra(genie_ucx_t *u, int32_t rank, const char *secret,
                                       void **conn_p)
{
    genie_ucx_conn_t *c;
    genie_status_t    st;

    if (rank < 0 || rank >= u->size || u->peers == NULL) {
        return genie_set_error(GENIE_ERR_INVALID, "cannot connect to rank %d", (int)rank);
    }
    if ((st = genie_ucx_ep_create(u, &u->peers[rank], 2, &c)) != GENIE_OK) {
        return st;
    }
    *conn_p = c;
    if (secret == NULL) {
        return GENIE_OK;
    }
    if ((st = hello_send(u, c, secret)) != GENIE_OK) {
        return st;
    }
    return hello_wait(u, c);
}

uint64_t genie_ucx_conn_token(const void *conn)
{
    return conn != NULL ? ((const genie_ucx_conn_t *)conn)->token : 0;
}

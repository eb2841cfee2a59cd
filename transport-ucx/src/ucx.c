/*
 * UCP context, worker, connections and messages (see genie/ucx.h).
 *
 * Every message arrives through one active-message handler, am_recv.  It
 * validates the framing and the connection's authentication *before* taking
 * any data, so a peer that sends garbage costs one log line and nothing else.
 * Requests go to a FIFO that genie_ucx_next() pops in arrival order (a weight
 * still arriving by rendezvous holds back the RUN behind it); replies go to a
 * list that genie_ucx_wait() searches by sequence number.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "genie/ucx.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ucx_internal.h"

/* ---- small helpers -------------------------------------------------------- */

double genie_ucx_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void genie_ucx_log(const genie_ucx_t *u, const char *fmt, ...)
{
    char    line[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "genie: rank %d (%s%s%s): %s\n", (int)u->params.self.rank,
            u->params.self.role == GENIE_ROLE_DRIVER ? "driver" : u->params.self.phase,
            u->params.self.role == GENIE_ROLE_DRIVER ? "" : " slice ",
            u->params.self.role == GENIE_ROLE_DRIVER ? "" : u->slice_text, line);
}

static genie_status_t ucs_error(ucs_status_t s, const char *what)
{
    return genie_set_error(GENIE_ERR_TRANSPORT, "ucx: %s: %s", what, ucs_status_string(s));
}

/* Defaults that make same-node traffic stay on shared memory with peer
 * failure detection; a value the user exported wins.  UCX's shared-memory
 * transports advertise peer error handling only with *_ERROR_HANDLING=y, and
 * an endpoint that asks for it would otherwise silently move to tcp. */
/* UCX_TLS is a list of names, or "^" and the names to leave out; "sm",
 * "shm" and "all" are aliases that include sysv. */
static int tls_has_sysv(const char *tls)
{
    int         negate = tls[0] == '^';
    const char *p      = negate ? tls + 1 : tls;
    int         named  = 0;

    while (*p != '\0' && !named) {
        size_t n = strcspn(p, ",");

        named = (n == 4 && strncmp(p, "sysv", 4) == 0) || (n == 2 && strncmp(p, "sm", 2) == 0) ||
                (n == 3 && strncmp(p, "shm", 3) == 0) ||
                (!negate && n == 3 && strncmp(p, "all", 3) == 0);
        p += n + (p[n] == ',');
    }
    return negate ? !named : named;
}

/* SYSV only where UCX_TLS may select sysv (unset means all): UCX warns
 * about a variable nothing reads. */
static void set_ucx_defaults(void)
{
    const char *tls = getenv("UCX_TLS");

    setenv("UCX_POSIX_ERROR_HANDLING", "y", 0);
    if (tls == NULL || tls_has_sysv(tls)) {
        setenv("UCX_SYSV_ERROR_HANDLING", "y", 0);
    }
    setenv("UCX_KEEPALIVE_INTERVAL", "1s", 0);
}

genie_status_t genie_ucx_read_secret(genie_ucx_params_t *params)
{
    const char *path = getenv("GENIE_SECRET_FILE");
    char        buf[GENIE_WIRE_SECRET_LEN + 2];
    struct stat sb;
    ssize_t     n;
    int         fd;

    if (path == NULL || path[0] == '\0') {
        return genie_set_error(GENIE_ERR_DENIED,
                               "no job secret: GENIE_SECRET_FILE is not set (start the job with "
                               "genie-launch or srun --genie-phases)");
    }
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        return genie_set_error(GENIE_ERR_DENIED, "cannot open the job secret %s: %s", path,
                               strerror(errno));
    }
    if (fstat(fd, &sb) != 0 || (sb.st_mode & 077) != 0) {
        close(fd);
        return genie_set_error(GENIE_ERR_DENIED,
                               "job secret %s is readable by others (mode %o); it must be 0600",
                               path, (unsigned)(sb.st_mode & 0777));
    }
    n = read(fd, buf, sizeof(buf));
    close(fd);
    if (n < GENIE_WIRE_SECRET_LEN) {
        return genie_set_error(GENIE_ERR_DENIED, "job secret %s is shorter than %d characters",
                               path, GENIE_WIRE_SECRET_LEN);
    }
    memcpy(params->secret, buf, GENIE_WIRE_SECRET_LEN);
    params->secret[GENIE_WIRE_SECRET_LEN] = '\0';
    return GENIE_OK;
}

/* ---- connections ---------------------------------------------------------- */

static genie_ucx_conn_t *conn_find(genie_ucx_t *u, ucp_ep_h ep)
{
    for (genie_ucx_conn_t *c = u->conns; c != NULL; c = c->next) {
        if (c->ep == ep) {
            return c;
        }
    }
    return NULL;
}

static genie_ucx_conn_t *conn_new(genie_ucx_t *u, ucp_ep_h ep)
{
    genie_ucx_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->ep   = ep;
    c->rank = -1;
    c->next = u->conns;
    u->conns = c;
    return c;
}

static void conn_drop(genie_ucx_t *u, genie_ucx_conn_t *c, const char *why)
{
    u->dropped++;
    if (!c->blocked) {
        c->blocked = 1;
        if (c->rank >= 0) {
            genie_ucx_log(u, "dropped the connection from rank %d: %s", (int)c->rank, why);
        } else {
            genie_ucx_log(u, "dropped a connection: %s", why);
        }
    }
}

static void peer_lost(genie_ucx_t *u, genie_ucx_peer_t *p, const char *why)
{
    if (p->lost == GENIE_OK) {
        p->lost = GENIE_ERR_PEER_LOST;
        snprintf(p->lost_reason, sizeof(p->lost_reason), "%s", why);
    }
    (void)u;
}

static void ep_error(void *arg, ucp_ep_h ep, ucs_status_t status)
{
    genie_ucx_conn_t *c = arg;
    genie_ucx_t      *u = c->owner;
    char              why[160];

    (void)ep;
    c->failed = 1;
    if (c->rank >= 0 && c->outgoing && c->rank < u->size) {
        snprintf(why, sizeof(why), "UCX reported its endpoint failed (%s)",
                 ucs_status_string(status));
        peer_lost(u, &u->peers[c->rank], why);
    }
}

static genie_status_t ep_create(genie_ucx_t *u, genie_ucx_peer_t *p, genie_ucx_conn_t **conn_p)
{
    genie_ucx_conn_t *c = calloc(1, sizeof(*c));
    ucp_ep_params_t   ep = {0};
    ucs_status_t      s;

    if (c == NULL) {
        return genie_set_error(GENIE_ERR_NOMEM, "out of memory");
    }
    c->owner    = u;
    c->rank     = p->info.rank;
    c->outgoing = 1;
    ep.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                    UCP_EP_PARAM_FIELD_ERR_HANDLER;
    ep.address         = p->addr;
    ep.err_mode        = UCP_ERR_HANDLING_MODE_PEER;
    ep.err_handler.cb  = ep_error;
    ep.err_handler.arg = c;
    s = ucp_ep_create(u->worker, &ep, &c->ep);
    if (s != UCS_OK) {
        free(c);
        return ucs_error(s, "ucp_ep_create");
    }
    c->next  = u->conns;
    u->conns = c;
    *conn_p  = c;
    return GENIE_OK;
}

/* ---- receiving ------------------------------------------------------------ */

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

static void rndv_done(void *request, ucs_status_t status, size_t length, void *user_data)
{
    genie_ucx_msg_t *m = user_data;
    (void)length;
    m->ready = status == UCS_OK ? 1 : -1;
    ucp_request_free(request);
}

/* HELLO: | secret (u32 len + 64 chars) | rank u32 | pid u32 |.  Constant-time
 * comparison; the verdict is queued and sent outside the callback. */
static void handle_hello(genie_ucx_t *u, genie_ucx_conn_t *c, const genie_wire_hdr_t *h,
                         const void *data, size_t len)
{
    genie_wire_reader_t r;
    const uint8_t      *secret;
    uint32_t            slen, rank, pid;
    unsigned            diff = 0;

    genie_wire_r_init(&r, data, len, "HELLO");
    secret = genie_wire_r_bytes(&r, &slen);
    rank   = genie_wire_r_u32(&r);
    pid    = genie_wire_r_u32(&r);
    if (genie_wire_r_done(&r) != GENIE_OK || slen != GENIE_WIRE_SECRET_LEN) {
        conn_drop(u, c, "malformed HELLO");
        diff = 1;
    } else {
        for (uint32_t i = 0; i < slen; i++) {
            diff |= (unsigned)(secret[i] ^ (uint8_t)u->params.secret[i]);
        }
        if (diff != 0) {
            char why[96];
            snprintf(why, sizeof(why), "wrong job secret (claims rank %u, pid %u)", rank, pid);
            conn_drop(u, c, why);
        } else if (rank >= (uint32_t)u->size) {
            conn_drop(u, c, "HELLO from a rank outside the job");
            diff = 1;
        } else {
            c->auth = 1;
            c->rank = (int32_t)rank;
        }
    }
    if (u->n_hello >= GENIE_UCX_MAX_HELLO) {
        /* No room to answer: refuse rather than leave the dialer waiting. */
        c->auth = 0;
        conn_drop(u, c, "too many connections at once");
        return;
    }
    {
        u->hello[u->n_hello].conn   = c;
        u->hello[u->n_hello].seq    = h->seq;
        u->hello[u->n_hello].status = diff == 0 ? GENIE_OK : GENIE_ERR_DENIED;
        u->n_hello++;
    }
}

static ucs_status_t am_recv(void *arg, const void *header, size_t header_length, void *data,
                            size_t length, const ucp_am_recv_param_t *param)
{
    genie_ucx_t      *u = arg;
    genie_ucx_conn_t *c = NULL;
    genie_ucx_msg_t  *m;
    genie_wire_hdr_t  h;
    int               is_reply;

    if (param->recv_attr & UCP_AM_RECV_ATTR_FIELD_REPLY_EP) {
        c = conn_find(u, param->reply_ep);
        if (c == NULL && (c = conn_new(u, param->reply_ep)) != NULL) {
            c->owner = u;
        }
    }
    if (c == NULL) {
        u->dropped++;
        genie_ucx_log(u, "discarded a message without a reply endpoint");
        return UCS_OK;
    }
    if (c->blocked) {
        u->dropped++;
        return UCS_OK;
    }
    if (genie_wire_check_hdr(header, header_length, length, &h) != GENIE_OK) {
        conn_drop(u, c, genie_last_error());
        return UCS_OK;
    }
    is_reply = (h.type & GENIE_MSG_REPLY) != 0;
    if (!c->auth && !(c->outgoing && is_reply)) {
        if (h.type != GENIE_MSG_HELLO) {
            conn_drop(u, c, "first message is not HELLO");
            return UCS_OK;
        }
        if (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) {
            conn_drop(u, c, "oversized HELLO");
            return UCS_OK;
        }
        handle_hello(u, c, &h, data, length);
        return UCS_OK;
    }
    if (h.type == GENIE_MSG_HELLO) {
        conn_drop(u, c, "second HELLO on a connection");
        return UCS_OK;
    }
    if (length > GENIE_UCX_MAX_PAYLOAD) {
        conn_drop(u, c, "payload over the size limit");
        return UCS_OK;
    }
    if ((m = calloc(1, sizeof(*m))) == NULL || (length > 0 && (m->payload = malloc(length)) == NULL)) {
        free(m);
        genie_ucx_log(u, "out of memory receiving a %s of %zu bytes", genie_msg_name(h.type), length);
        u->dropped++;
        return UCS_OK;
    }
    m->hdr  = h;
    m->len  = length;
    m->from = c->rank;
    m->conn = c;
    if (c->rank >= 0 && c->rank < u->size) {
        u->peers[c->rank].stats.bytes_received += length + header_length;
        u->peers[c->rank].stats.messages_received++;
    }
    if (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) {
        ucp_request_param_t rp = {0};
        void *req;
        rp.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA |
                          UCP_OP_ATTR_FIELD_DATATYPE;
        rp.cb.recv_am   = rndv_done;
        rp.user_data    = m;
        rp.datatype     = ucp_dt_make_contig(1);
        req = ucp_am_recv_data_nbx(u->worker, data, m->payload, length, &rp);
        if (UCS_PTR_IS_ERR(req)) {
            genie_ucx_log(u, "receiving a %s: %s", genie_msg_name(h.type),
                          ucs_status_string(UCS_PTR_STATUS(req)));
            genie_ucx_msg_free(m);
            u->dropped++;
            return UCS_OK;
        }
        m->ready = req == NULL ? 1 : 0;
    } else {
        if (length > 0) {
            memcpy(m->payload, data, length);
        }
        m->ready = 1;
    }
    if (is_reply) {
        queue_push(&u->rep_head, &u->rep_tail, m);
    } else {
        queue_push(&u->req_head, &u->req_tail, m);
    }
    return UCS_OK;
}

/* ---- create / destroy ----------------------------------------------------- */

genie_status_t genie_ucx_create(const genie_ucx_params_t *params, genie_ucx_t **u_p)
{
    genie_ucx_t          *u;
    ucp_config_t         *cfg;
    ucp_params_t          pp = {0};
    ucp_worker_params_t   wp = {0};
    ucp_am_handler_param_t ap = {0};
    ucs_status_t          s;
    genie_status_t        st;

    if (params->size < 1 || params->self.rank < 0 || params->self.rank >= params->size) {
        return genie_set_error(GENIE_ERR_INVALID, "ucx: rank %d of %d", (int)params->self.rank,
                               (int)params->size);
    }
    if ((u = calloc(1, sizeof(*u))) == NULL) {
        return genie_set_error(GENIE_ERR_NOMEM, "out of memory");
    }
    u->params = *params;
    u->size   = params->size;
    u->next_seq = 1;
    snprintf(u->slice_text, sizeof(u->slice_text), "%u", params->self.slice);
    {
        const char *spin = getenv("GENIE_SPIN_US");
        u->spin_s = (spin != NULL ? atof(spin) : 100.0) * 1e-6;
    }
    set_ucx_defaults();
    s = ucp_config_read(NULL, NULL, &cfg);
    if (s != UCS_OK) {
        st = ucs_error(s, "ucp_config_read");
        goto err_free;
    }
    pp.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED;
    pp.features   = UCP_FEATURE_AM | UCP_FEATURE_RMA | UCP_FEATURE_WAKEUP;
    pp.mt_workers_shared = 0;
    s = ucp_init(&pp, cfg, &u->ctx);
    ucp_config_release(cfg);
    if (s != UCS_OK) {
        st = ucs_error(s, "ucp_init");
        goto err_free;
    }
    wp.field_mask  = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
    wp.thread_mode = UCS_THREAD_MODE_SINGLE;
    s = ucp_worker_create(u->ctx, &wp, &u->worker);
    if (s != UCS_OK) {
        st = ucs_error(s, "ucp_worker_create");
        goto err_cleanup;
    }
    s = ucp_worker_get_efd(u->worker, &u->efd);
    if (s != UCS_OK) {
        st = ucs_error(s, "ucp_worker_get_efd");
        goto err_worker;
    }
    s = ucp_worker_get_address(u->worker, (ucp_address_t **)&u->addr, &u->addr_len);
    if (s != UCS_OK) {
        st = ucs_error(s, "ucp_worker_get_address");
        goto err_worker;
    }
    ap.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_CB |
                    UCP_AM_HANDLER_PARAM_FIELD_ARG | UCP_AM_HANDLER_PARAM_FIELD_FLAGS;
    ap.id    = GENIE_WIRE_AM_ID;
    ap.cb    = am_recv;
    ap.arg   = u;
    ap.flags = UCP_AM_FLAG_WHOLE_MSG;
    s = ucp_worker_set_am_recv_handler(u->worker, &ap);
    if (s != UCS_OK) {
        st = ucs_error(s, "ucp_worker_set_am_recv_handler");
        goto err_addr;
    }
    if (params->arena_bytes > 0) {
        st = genie_ucx_arena_init(u, params->arena_bytes);
        if (st != GENIE_OK) {
            goto err_addr;
        }
    }
    *u_p = u;
    return GENIE_OK;

err_addr:
    ucp_worker_release_address(u->worker, u->addr);
err_worker:
    ucp_worker_destroy(u->worker);
err_cleanup:
    ucp_cleanup(u->ctx);
err_free:
    free(u);
    return st;
}

static void free_queue(genie_ucx_msg_t *m)
{
    while (m != NULL) {
        genie_ucx_msg_t *n = m->next;
        genie_ucx_msg_free(m);
        m = n;
    }
}

void genie_ucx_destroy(genie_ucx_t *u)
{
    if (u == NULL) {
        return;
    }
    /* Wait for a rendezvous in flight so UCX does not write into freed
     * buffers, then close our endpoints (forced: a dead peer cannot ack). */
    for (genie_ucx_msg_t *m = u->req_head; m != NULL; m = m->next) {
        for (double t0 = genie_ucx_now(); m->ready == 0 && genie_ucx_now() - t0 < 1.0;) {
            ucp_worker_progress(u->worker);
        }
    }
    for (genie_ucx_conn_t *c = u->conns; c != NULL; c = c->next) {
        if (c->outgoing && c->ep != NULL) {
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
    free_queue(u->req_head);
    free_queue(u->rep_head);
    for (int32_t r = 0; u->peers != NULL && r < u->size; r++) {
        if (u->peers[r].rkey != NULL) {
            ucp_rkey_destroy(u->peers[r].rkey);
        }
        free(u->peers[r].addr);
        free(u->peers[r].rkey_buf);
    }
    free(u->peers);
    genie_ucx_arena_fini(u);
    ucp_worker_release_address(u->worker, u->addr);
    ucp_worker_destroy(u->worker);
    ucp_cleanup(u->ctx);
    free(u);
}

int32_t genie_ucx_rank(const genie_ucx_t *u) { return u->params.self.rank; }
int32_t genie_ucx_size(const genie_ucx_t *u) { return u->size; }

const genie_ucx_peer_info_t *genie_ucx_peer(const genie_ucx_t *u, int32_t rank)
{
    return rank >= 0 && rank < u->size && u->peers != NULL ? &u->peers[rank].info : NULL;
}

uint64_t genie_ucx_dropped(const genie_ucx_t *u) { return u->dropped; }

void genie_ucx_link_stats(const genie_ucx_t *u, int32_t rank, genie_ucx_link_stats_t *stats_p)
{
    if (rank >= 0 && rank < u->size && u->peers != NULL) {
        *stats_p = u->peers[rank].stats;
    } else {
        memset(stats_p, 0, sizeof(*stats_p));
    }
}

/* ---- progress and waiting ------------------------------------------------- */

static void send_hello_verdicts(genie_ucx_t *u);

/* Progress until idle, then answer queued HELLOs. */
static void progress(genie_ucx_t *u)
{
    while (ucp_worker_progress(u->worker) != 0) {
    }
    if (u->n_hello > 0) {
        send_hello_verdicts(u);
    }
}

/* Progress; if nothing is ready, sleep on the worker's fd for up to ms. */
static void progress_block(genie_ucx_t *u, int ms)
{
    ucs_status_t  s;
    struct pollfd pfd = { .fd = u->efd, .events = POLLIN };

    progress(u);
    s = ucp_worker_arm(u->worker);
    if (s == UCS_ERR_BUSY) {
        return;
    }
    if (s == UCS_OK) {
        (void)poll(&pfd, 1, ms);
    }
    progress(u);
}

/* Is the peer's process gone?  Only answerable for peers on this host; the
 * UCX error callback (and keepalive) covers the others. */
static void check_pid(genie_ucx_t *u, genie_ucx_peer_t *p)
{
    char path[64], state = 0, buf[256];
    FILE *f;

    if (p->lost != GENIE_OK || p->info.pid == 0 ||
        strcmp(p->info.host, u->params.self.host) != 0) {
        return;
    }
    if (kill((pid_t)p->info.pid, 0) != 0 && errno == ESRCH) {
        peer_lost(u, p, "its process is gone");
        return;
    }
    snprintf(path, sizeof(path), "/proc/%u/stat", p->info.pid);
    if ((f = fopen(path, "r")) != NULL) {
        /* "pid (comm) S ...": the state follows the last ')'. */
        if (fgets(buf, sizeof(buf), f) != NULL) {
            char *rp = strrchr(buf, ')');
            if (rp != NULL && rp[1] == ' ') {
                state = rp[2];
            }
        }
        fclose(f);
        if (state == 'Z' || state == 'X') {
            peer_lost(u, p, "its process exited");
        }
    }
}

genie_status_t genie_ucx_peer_status(genie_ucx_t *u, int32_t rank)
{
    genie_ucx_peer_t *p;

    if (rank < 0 || rank >= u->size || u->peers == NULL) {
        return genie_set_error(GENIE_ERR_INVALID, "no rank %d in this job", (int)rank);
    }
    p = &u->peers[rank];
    if (p->lost == GENIE_OK) {
        double now = genie_ucx_now();
        if (now - p->last_check > 0.2) {
            p->last_check = now;
            check_pid(u, p);
        }
    }
    if (p->lost != GENIE_OK) {
        return genie_set_error(GENIE_ERR_PEER_LOST, "rank %d (%s%s%u, pid %u on %s) was lost: %s",
                               (int)rank, p->info.role == GENIE_ROLE_DRIVER ? "driver" : p->info.phase,
                               p->info.role == GENIE_ROLE_DRIVER ? " " : " slice ", p->info.slice,
                               p->info.pid, p->info.host, p->lost_reason);
    }
    return GENIE_OK;
}

/* Wait until *flag != 0 or the peer fails / the timeout passes. */
static genie_status_t wait_flag(genie_ucx_t *u, volatile int *flag, int32_t rank, const char *what)
{
    double t0 = genie_ucx_now(), spin_until = t0 + u->spin_s;

    for (;;) {
        progress(u);
        if (*flag != 0) {
            return GENIE_OK;
        }
        if (rank >= 0 && genie_ucx_peer_status(u, rank) != GENIE_OK) {
            return GENIE_ERR_PEER_LOST;
        }
        if (u->params.timeout_s > 0 && genie_ucx_now() - t0 > u->params.timeout_s) {
            return genie_set_error(GENIE_ERR_TIMEOUT, "%s: rank %d did not answer within %.1f s",
                                   what, (int)rank, u->params.timeout_s);
        }
        if (genie_ucx_now() > spin_until) {
            progress_block(u, 100);
        }
    }
}

/* ---- sending -------------------------------------------------------------- */

typedef struct send_ctx {
    int          done;
    ucs_status_t status;
    void        *owned;    /* GENIE_UCX_COPY: header + payload copy, freed at completion */
} send_ctx_t;

static void send_done(void *request, ucs_status_t status, void *user_data)
{
    send_ctx_t *sc = user_data;
    sc->status = status;
    sc->done   = 1;
    if (sc->owned != NULL) {
        free(sc->owned);
        free(sc);
    }
    ucp_request_free(request);
}

/* Post one AM.  copy: header and payload are copied and the call returns at
 * once; otherwise it returns when UCX no longer needs them. */
static genie_status_t post_am(genie_ucx_t *u, genie_ucx_conn_t *c, int32_t rank,
                              const genie_wire_hdr_t *h, const void *payload, size_t len, int copy)
{
    ucp_request_param_t rp = {0};
    send_ctx_t          local = {0}, *sc = &local;
    const void         *hp = h, *pp = payload;
    void               *req;

    if (copy) {
        uint8_t *blk = malloc(sizeof(*h) + len);
        if (blk == NULL || (sc = calloc(1, sizeof(*sc))) == NULL) {
            free(blk);
            return genie_set_error(GENIE_ERR_NOMEM, "out of memory sending %s", genie_msg_name(h->type));
        }
        memcpy(blk, h, sizeof(*h));
        if (len > 0) {
            memcpy(blk + sizeof(*h), payload, len);
        }
        sc->owned = blk;
        hp = blk;
        pp = blk + sizeof(*h);
    }
    rp.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA |
                      UCP_OP_ATTR_FIELD_FLAGS | UCP_OP_ATTR_FIELD_DATATYPE;
    rp.cb.send   = send_done;
    rp.user_data = sc;
    rp.flags     = UCP_AM_SEND_FLAG_REPLY;
    rp.datatype  = ucp_dt_make_contig(1);
    req = ucp_am_send_nbx(c->ep, GENIE_WIRE_AM_ID, hp, sizeof(*h), pp, len, &rp);
    if (rank >= 0 && rank < u->size) {
        u->peers[rank].stats.bytes_sent += sizeof(*h) + len;
        u->peers[rank].stats.messages_sent++;
    }
    if (req == NULL) {                       /* completed in place */
        if (copy) {
            free(sc->owned);
            free(sc);
        }
        return GENIE_OK;
    }
    if (UCS_PTR_IS_ERR(req)) {
        if (copy) {
            free(sc->owned);
            free(sc);
        }
        return ucs_error(UCS_PTR_STATUS(req), "sending a message");
    }
    if (copy) {
        return GENIE_OK;                     /* send_done frees the copy */
    }
    if (wait_flag(u, &local.done, rank, genie_msg_name(h->type)) != GENIE_OK) {
        /* The request still references our buffers: cancel it and wait for
         * the callback before returning them to the caller. */
        ucp_request_cancel(u->worker, req);
        for (double t0 = genie_ucx_now(); !local.done && genie_ucx_now() - t0 < 2.0;) {
            ucp_worker_progress(u->worker);
        }
        return GENIE_ERR_PEER_LOST;
    }
    if (local.status != UCS_OK) {
        return ucs_error(local.status, "sending a message");
    }
    return GENIE_OK;
}

static void send_hello_verdicts(genie_ucx_t *u)
{
    int n = u->n_hello;
    u->n_hello = 0;
    for (int i = 0; i < n; i++) {
        genie_wire_hdr_t h;
        genie_ucx_conn_t *c = u->hello[i].conn;
        genie_wire_hdr_init(&h, GENIE_MSG_HELLO | GENIE_MSG_REPLY, u->hello[i].seq,
                            u->hello[i].status, 0, 0);
        (void)post_am(u, c, c->auth ? c->rank : -1, &h, NULL, 0, 1);
    }
}

static genie_status_t hello(genie_ucx_t *u, genie_ucx_conn_t *c, int32_t rank, const char *secret)
{
    genie_wire_writer_t w;
    genie_wire_hdr_t    h;
    genie_ucx_msg_t    *reply = NULL;
    genie_status_t      st;
    uint32_t            seq = u->next_seq++;

    genie_wire_w_init(&w);
    genie_wire_w_bytes(&w, secret, (uint32_t)strlen(secret));
    genie_wire_w_u32(&w, (uint32_t)u->params.self.rank);
    genie_wire_w_u32(&w, u->params.self.pid);
    if ((st = genie_wire_w_status(&w)) != GENIE_OK) {
        goto out;
    }
    genie_wire_hdr_init(&h, GENIE_MSG_HELLO, seq, 0, w.len, 0);
    st = post_am(u, c, rank, &h, w.buf, w.len, 1);
    if (st == GENIE_OK) {
        st = genie_ucx_wait(u, seq, &reply);
        if (st == GENIE_ERR_DENIED) {
            st = genie_set_error(GENIE_ERR_DENIED, "rank %d refused the connection: wrong job secret",
                                 (int)rank);
        }
        genie_ucx_msg_free(reply);
    }
out:
    genie_wire_w_free(&w);
    return st;
}

genie_status_t genie_ucx_connect(genie_ucx_t *u, int32_t rank, const char *secret)
{
    genie_ucx_peer_t *p;
    genie_status_t    st;

    if (rank < 0 || rank >= u->size || u->peers == NULL || rank == u->params.self.rank) {
        return genie_set_error(GENIE_ERR_INVALID, "cannot connect to rank %d", (int)rank);
    }
    p = &u->peers[rank];
    if (p->conn != NULL && p->conn->auth) {
        return GENIE_OK;
    }
    if (p->conn == NULL) {
        if ((st = ep_create(u, p, &p->conn)) != GENIE_OK) {
            return st;
        }
        if (p->rkey_len > 0) {
            ucs_status_t s = ucp_ep_rkey_unpack(p->conn->ep, p->rkey_buf, &p->rkey);
            if (s != UCS_OK) {
                return ucs_error(s, "unpacking a peer's arena key");
            }
        }
    }
    st = hello(u, p->conn, rank, secret != NULL ? secret : u->params.secret);
    if (st == GENIE_OK) {
        p->conn->auth = 1;
    }
    return st;
}

genie_status_t genie_ucx_connect_extra(genie_ucx_t *u, int32_t rank, const char *secret,
                                       void **conn_p)
{
    genie_ucx_conn_t *c;
    genie_status_t    st;

    if (rank < 0 || rank >= u->size || u->peers == NULL) {
        return genie_set_error(GENIE_ERR_INVALID, "cannot connect to rank %d", (int)rank);
    }
    if ((st = ep_create(u, &u->peers[rank], &c)) != GENIE_OK) {
        return st;
    }
    c->outgoing = 2;                 /* extra: not the peer's main connection */
    *conn_p = c;
    if (secret == NULL) {
        return GENIE_OK;
    }
    return hello(u, c, rank, secret);
}

genie_status_t genie_ucx_send_raw(genie_ucx_t *u, void *conn, const void *hdr, size_t hdr_len,
                                  const void *payload, size_t len)
{
    genie_ucx_conn_t   *c = conn;
    ucp_request_param_t rp = {0};
    send_ctx_t          local = {0};
    void               *req;

    rp.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA |
                      UCP_OP_ATTR_FIELD_FLAGS;
    rp.cb.send   = send_done;
    rp.user_data = &local;
    rp.flags     = UCP_AM_SEND_FLAG_REPLY;
    req = ucp_am_send_nbx(c->ep, GENIE_WIRE_AM_ID, hdr, hdr_len, payload, len, &rp);
    if (UCS_PTR_IS_ERR(req)) {
        return ucs_error(UCS_PTR_STATUS(req), "sending raw bytes");
    }
    if (req != NULL) {
        return wait_flag(u, &local.done, c->rank, "raw send");
    }
    return GENIE_OK;
}

genie_status_t genie_ucx_send(genie_ucx_t *u, int32_t rank, uint16_t type, uint64_t aux,
                              const void *payload, size_t len, int flags, uint32_t *seq_p)
{
    genie_wire_hdr_t h;
    genie_status_t   st;
    uint32_t         seq;

    if ((st = genie_ucx_peer_status(u, rank)) != GENIE_OK) {
        return st;
    }
    if ((st = genie_ucx_connect(u, rank, NULL)) != GENIE_OK) {
        return st;
    }
    seq = u->next_seq++;
    if (u->next_seq == 0) {
        u->next_seq = 1;
    }
    genie_wire_hdr_init(&h, type, seq, 0, len, aux);
    st = post_am(u, u->peers[rank].conn, rank, &h, payload, len, flags & GENIE_UCX_COPY);
    if (st == GENIE_OK && seq_p != NULL) {
        *seq_p = seq;
    }
    if (st == GENIE_OK) {
        u->peers[rank].outstanding++;
    }
    return st;
}

/* The reply to seq; from `rank` only when rank >= 0 (a peer cannot answer
 * another peer's request). */
static genie_ucx_msg_t *take_reply(genie_ucx_t *u, uint32_t seq, int32_t rank)
{
    genie_ucx_msg_t *prev = NULL;
    for (genie_ucx_msg_t *m = u->rep_head; m != NULL; prev = m, m = m->next) {
        if (m->hdr.seq == seq && m->ready != 0 && (rank < 0 || m->from == rank)) {
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

/* Which rank a reply to `seq` comes from is not recorded per seq; the
 * caller's rank is known from the connection of the reply.  For failure
 * detection we watch every peer we have a request outstanding with. */
static genie_status_t check_outstanding(genie_ucx_t *u, int32_t rank_hint)
{
    if (rank_hint >= 0) {
        return genie_ucx_peer_status(u, rank_hint);
    }
    for (int32_t r = 0; r < u->size; r++) {
        if (u->peers[r].outstanding > 0 && genie_ucx_peer_status(u, r) != GENIE_OK) {
            return GENIE_ERR_PEER_LOST;
        }
    }
    return GENIE_OK;
}

genie_status_t genie_ucx_wait_from(genie_ucx_t *u, uint32_t seq, int32_t rank,
                                   genie_ucx_msg_t **reply_p)
{
    double           t0 = genie_ucx_now(), spin_until = t0 + u->spin_s;
    genie_ucx_msg_t *m;

    for (;;) {
        progress(u);
        if ((m = take_reply(u, seq, rank)) != NULL) {
            break;
        }
        if (check_outstanding(u, rank) != GENIE_OK) {
            return GENIE_ERR_PEER_LOST;
        }
        if (u->params.timeout_s > 0 && genie_ucx_now() - t0 > u->params.timeout_s) {
            return genie_set_error(GENIE_ERR_TIMEOUT, "no reply within %.1f s (request %u)",
                                   u->params.timeout_s, seq);
        }
        if (genie_ucx_now() > spin_until) {
            progress_block(u, 100);
        }
    }
    if (m->from >= 0 && m->from < u->size && u->peers[m->from].outstanding > 0) {
        u->peers[m->from].outstanding--;
    }
    if (m->ready < 0) {
        genie_ucx_msg_free(m);
        return genie_set_error(GENIE_ERR_TRANSPORT, "a reply's data was lost in transfer");
    }
    if (m->hdr.status < 0) {
        genie_status_t st = m->hdr.status;
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

genie_status_t genie_ucx_wait(genie_ucx_t *u, uint32_t seq, genie_ucx_msg_t **reply_p)
{
    return genie_ucx_wait_from(u, seq, -1, reply_p);
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

genie_status_t genie_ucx_next(genie_ucx_t *u, int timeout_ms, genie_ucx_msg_t **msg_p)
{
    double t0 = genie_ucx_now(), spin_until = t0 + u->spin_s;

    for (;;) {
        genie_ucx_msg_t *m;
        progress(u);
        m = u->req_head;
        if (m != NULL && m->ready != 0) {
            u->req_head = m->next;
            if (u->req_head == NULL) {
                u->req_tail = NULL;
            }
            m->next = NULL;
            if (m->ready < 0) {
                genie_ucx_log(u, "lost the data of a %s from rank %d", genie_msg_name(m->hdr.type),
                              (int)m->from);
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
            progress_block(u, timeout_ms < 0 ? 1000 : (timeout_ms < 100 ? timeout_ms : 100));
        }
    }
}

genie_status_t genie_ucx_reply(genie_ucx_t *u, const genie_ucx_msg_t *req, genie_status_t status,
                               const void *payload, size_t len)
{
    genie_ucx_conn_t *c = req->conn;
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
    return post_am(u, c, c->rank, &h, payload, len, len <= 65536);
}

void genie_ucx_msg_free(genie_ucx_msg_t *m)
{
    if (m != NULL) {
        free(m->payload);
        free(m);
    }
}

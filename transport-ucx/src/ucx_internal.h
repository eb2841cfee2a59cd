/*
 * Private state of the UCX transport, shared by its files:
 *   ucx.c        context, worker, secret, logging, peer status, destroy
 *   conn.c       connections: tokens, HELLO, dropping, fencing, ending peers
 *   recv.c       the active-message handler and the request/reply queues
 *   send.c       posting messages, waiting for replies (liveness probes)
 *   rma.c        the receive arena, exposed regions and RMA gets
 *   bootstrap_mpi.c / bootstrap_local.c   filling the peer table
 *
 * Connections are identified by (token, endpoint), never by the endpoint
 * alone: UCX may free an endpoint after a peer failure and hand out the same
 * address again, and a new connection must not inherit the old one's
 * authentication.  The dialer chooses the token and sends it in every
 * header of the connection (HELLO included).
 */
#ifndef GENIE_UCX_INTERNAL_H
#define GENIE_UCX_INTERNAL_H

#include <stdarg.h>
#include <ucp/api/ucp.h>

#include "genie/ucx.h"

/* HELLO verdicts and PING answers waiting to be sent (sent after each
 * progress pass, never from inside a UCX callback). */
#define GENIE_UCX_MAX_CTRL     1024
/* Incoming connections alive at once (authenticated or waiting). */
#define GENIE_UCX_MAX_CONNS    4096
/* Requests queued from one connection and not yet served. */
#define GENIE_UCX_MAX_QUEUED   16384
/* Largest payload accepted (a weight or a KV tensor); bigger is refused. */
#define GENIE_UCX_MAX_PAYLOAD  ((size_t)16 << 30)
/* PING payloads answered by the transport itself. */
#define GENIE_UCX_MAX_PING     4096
/* Worker progress calls per progress() pass: a flood of messages cannot
 * keep a waiter from looking at what already arrived. */
#define GENIE_UCX_PROGRESS_BUDGET 256
/* Seconds UCX gets to complete a request after its endpoint was closed by
 * force (it must; see close_conn_force). */
#define GENIE_UCX_CLOSE_LIMIT_S 10.0

typedef struct genie_ucx_conn {
    ucp_ep_h               ep;
    struct genie_ucx      *owner;
    uint64_t               token;     /* chosen by the dialer, in every header    */
    int32_t                rank;      /* authenticated (or dialled) rank, -1 unknown */
    int                    auth;      /* may carry requests (HELLO accepted / sent) */
    int                    verified;  /* outgoing: the peer accepted our HELLO    */
    int                    denied;    /* outgoing: the peer refused our HELLO     */
    int                    blocked;   /* dropped or fenced: messages discarded    */
    int                    outgoing;  /* 0 incoming, 1 our main ep to rank, 2 extra */
    int                    failed;    /* UCX reported an error on it              */
    int                    closed;    /* ep closed (by force)                     */
    uint32_t               hello_seq; /* outgoing: our HELLO                      */
    uint32_t               queued;    /* its requests in the queue                */
    struct genie_ucx_conn *next;
} genie_ucx_conn_t;

typedef struct genie_ucx_peer {
    genie_ucx_peer_info_t  info;
    void                  *addr;        /* worker address (addr_len) */
    size_t                 addr_len;
    genie_ucx_conn_t      *conn;        /* our main connection */
    genie_status_t         lost;
    char                   lost_reason[200];
    double                 last_check;  /* pid check */
    double                 last_heard;  /* any authenticated message from it */
    double                 last_probe;  /* liveness PING sent */
    uint32_t               outstanding; /* requests sent, reply not yet taken */
    genie_ucx_link_stats_t stats;
} genie_ucx_peer_t;

typedef struct genie_ucx_block {        /* arena range */
    uint64_t off;
    uint64_t len;
    int      used;
} genie_ucx_block_t;

/* A request of ours waiting for its reply, by seq (open addressing). */
typedef struct genie_ucx_pend {
    uint32_t seq;         /* 0 = empty slot */
    int32_t  rank;
    uint16_t type;        /* of the request, for messages */
    uint8_t  probe;       /* a liveness PING: its reply is consumed on arrival */
    uint8_t  arrived;     /* the reply is in the reply list */
} genie_ucx_pend_t;

/* A HELLO verdict or PING answer to send. */
typedef struct genie_ucx_ctrl {
    ucp_ep_h  ep;
    uint64_t  token;
    int32_t   rank;       /* -1: not authenticated */
    uint16_t  type;       /* HELLO or PING (| REPLY added when sent) */
    uint32_t  seq;
    int32_t   status;
    uint8_t  *payload;    /* PING echo (owned) */
    size_t    len;
} genie_ucx_ctrl_t;

struct genie_ucx {
    genie_ucx_params_t  params;
    int32_t             size;
    char                slice_text[16];
    double              spin_s;          /* busy-poll before sleeping on the fd */
    ucp_context_h       ctx;
    ucp_worker_h        worker;
    int                 efd;
    void               *addr;
    size_t              addr_len;
    /* arena */
    ucp_mem_h           arena_memh;
    void               *arena;
    size_t              arena_size;
    genie_ucx_block_t  *blocks;
    size_t              n_blocks;
    size_t              cap_blocks;
    /* peers and connections */
    genie_ucx_peer_t   *peers;           /* (size) */
    genie_ucx_conn_t   *conns;
    uint32_t            n_incoming;
    /* queues */
    genie_ucx_msg_t    *req_head, *req_tail;
    genie_ucx_msg_t    *rep_head, *rep_tail;
    genie_ucx_pend_t   *pend;            /* (pend_cap), power of two */
    uint32_t            pend_cap, n_pend;
    genie_ucx_ctrl_t    ctrl[GENIE_UCX_MAX_CTRL];
    int                 n_ctrl;
    uint32_t            next_seq;
    uint64_t            dropped;
    uint64_t            probes_sent;
    /* rate-limited logging of dropped connections */
    double              drop_log_t;
    uint64_t            drop_log_quiet;
    /* test hook: bytes to leave out of the last get of a batch */
    uint64_t            test_short_get;
};

double         genie_ucx_now(void);
void           genie_ucx_progress(genie_ucx_t *u);
void           genie_ucx_progress_block(genie_ucx_t *u, int ms);
genie_status_t genie_ucx_arena_init(genie_ucx_t *u, size_t bytes);
void           genie_ucx_arena_fini(genie_ucx_t *u);
genie_status_t genie_ucx_ucs_error(ucs_status_t s, const char *what);

/* conn.c */
genie_ucx_conn_t *genie_ucx_conn_find(genie_ucx_t *u, uint64_t token, ucp_ep_h ep);
genie_ucx_conn_t *genie_ucx_conn_accept(genie_ucx_t *u, ucp_ep_h ep, uint64_t token);
void              genie_ucx_conn_drop(genie_ucx_t *u, genie_ucx_conn_t *c, const char *why);
void              genie_ucx_conn_close_force(genie_ucx_t *u, genie_ucx_conn_t *c);
void              genie_ucx_conns_free(genie_ucx_t *u);
void              genie_ucx_drain(genie_ucx_t *u, const int *flag, const uint32_t *count,
                                  uint32_t want);
genie_status_t    genie_ucx_ep_create(genie_ucx_t *u, genie_ucx_peer_t *p, int outgoing,
                                      genie_ucx_conn_t **conn_p);
void              genie_ucx_peer_lost(genie_ucx_t *u, int32_t rank, const char *why);
void              genie_ucx_handle_hello(genie_ucx_t *u, genie_ucx_conn_t *c, const genie_wire_hdr_t *h,
                                         ucp_ep_h ep, const void *data, size_t len);
void              genie_ucx_hello_verdict(genie_ucx_t *u, genie_ucx_conn_t *c, const genie_wire_hdr_t *h);
void              genie_ucx_drop_log(genie_ucx_t *u, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* recv.c */
ucs_status_t genie_ucx_am_recv(void *arg, const void *header, size_t header_length, void *data,
                               size_t length, const ucp_am_recv_param_t *param);
void         genie_ucx_free_queue(genie_ucx_msg_t *m);
int          genie_ucx_ctrl_push(genie_ucx_t *u, const genie_ucx_ctrl_t *c);
void         genie_ucx_ctrl_flush(genie_ucx_t *u);

/* send.c */
genie_status_t genie_ucx_post(genie_ucx_t *u, genie_ucx_conn_t *c, int32_t rank,
                              const genie_wire_hdr_t *h, const void *payload, size_t len, int copy);
uint32_t       genie_ucx_seq(genie_ucx_t *u);
genie_ucx_pend_t *genie_ucx_pend_find(genie_ucx_t *u, uint32_t seq);
genie_status_t    genie_ucx_pend_add(genie_ucx_t *u, uint32_t seq, int32_t rank, uint16_t type,
                                     int probe);
void              genie_ucx_pend_del(genie_ucx_t *u, uint32_t seq);
/* OK while `rank` may still answer a wait that began at t0: not lost, heard
 * from within the liveness timeout (probing it when quiet), and, if limit_s
 * > 0, the wait not older than that.  Otherwise the error, with its line. */
genie_status_t    genie_ucx_live(genie_ucx_t *u, int32_t rank, double t0, double limit_s,
                                 const char *what);

#endif

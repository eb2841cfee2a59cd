/*
 * Private state of the UCX transport, shared by ucx.c (connections and
 * messages), arena.c (the registered arena and RMA) and bootstrap_mpi.c.
 */
#ifndef GENIE_UCX_INTERNAL_H
#define GENIE_UCX_INTERNAL_H

#include <stdarg.h>
#include <ucp/api/ucp.h>

#include "genie/ucx.h"

#define GENIE_UCX_MAX_HELLO   1024
/* Largest payload accepted (a weight or a KV tensor); bigger is refused. */
#define GENIE_UCX_MAX_PAYLOAD ((size_t)16 << 30)

typedef struct genie_ucx_conn {
    ucp_ep_h               ep;
    struct genie_ucx      *owner;
    int32_t                rank;      /* authenticated (or dialled) rank, -1 unknown */
    int                    auth;      /* HELLO accepted                              */
    int                    blocked;   /* dropped: later messages are discarded       */
    int                    outgoing;  /* 1: our main ep to rank, 2: an extra one     */
    int                    failed;    /* UCX reported an error on it                 */
    struct genie_ucx_conn *next;
} genie_ucx_conn_t;

typedef struct genie_ucx_peer {
    genie_ucx_peer_info_t  info;
    void                  *addr;        /* worker address (addr_len) */
    size_t                 addr_len;
    uint64_t               arena_base;  /* peer's arena: remote address and size */
    uint64_t               arena_size;
    void                  *rkey_buf;    /* packed rkey (rkey_len) */
    size_t                 rkey_len;
    ucp_rkey_h             rkey;        /* unpacked on connect */
    genie_ucx_conn_t      *conn;        /* our main connection */
    genie_status_t         lost;
    char                   lost_reason[160];
    double                 last_check;
    uint32_t               outstanding; /* requests sent, reply not yet taken */
    genie_ucx_link_stats_t stats;
} genie_ucx_peer_t;

typedef struct genie_ucx_block {        /* arena range */
    uint64_t off;
    uint64_t len;
    int      used;
} genie_ucx_block_t;

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
    void               *arena_rkey;
    size_t              arena_rkey_len;
    genie_ucx_block_t  *blocks;
    size_t              n_blocks;
    size_t              cap_blocks;
    /* peers and connections */
    genie_ucx_peer_t   *peers;           /* (size) */
    genie_ucx_conn_t   *conns;
    /* queues */
    genie_ucx_msg_t    *req_head, *req_tail;
    genie_ucx_msg_t    *rep_head, *rep_tail;
    struct { genie_ucx_conn_t *conn; uint32_t seq; genie_status_t status; } hello[GENIE_UCX_MAX_HELLO];
    int                 n_hello;
    uint32_t            next_seq;
    uint64_t            dropped;
};

double         genie_ucx_now(void);
genie_status_t genie_ucx_arena_init(genie_ucx_t *u, size_t bytes);
void           genie_ucx_arena_fini(genie_ucx_t *u);

#endif

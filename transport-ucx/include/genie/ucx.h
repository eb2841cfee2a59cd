/*
 * The UCX transport: one UCP context and worker per process, endpoints to the
 * other ranks of the job, active messages for control (framed as in
 * genie/wire.h), RMA gets for large tensors (the KV-cache handoff, pulled by
 * its destination), job-secret authentication of every connection, peer
 * failure detection and liveness.
 *
 * Threading: a genie_ucx_t is used by one thread.  Blocking calls progress the
 * worker while they wait, spinning briefly and then sleeping on the worker's
 * event fd, so an idle rank costs no CPU.
 *
 * Connections.  A sender always asks UCX for a reply endpoint, so the
 * receiver knows which endpoint each message came from, and stamps the
 * connection's token in every header.  The first message on a connection
 * must be HELLO carrying the job secret; anything else, a bad secret, or a
 * malformed message gets the connection dropped (logged, rate-limited; its
 * state freed; later messages discarded) while every other connection keeps
 * being served.
 *
 * Waiting.  Every wait is bounded.  A peer we wait for is probed with PING
 * when it has been silent for a quarter of the liveness timeout; the
 * transport answers PINGs whenever it progresses (also inside long
 * computations that call genie_ucx_poll), so a busy peer stays alive and a
 * stopped or hung one is reported after the timeout.
 */
#ifndef GENIE_UCX_H
#define GENIE_UCX_H

#include <stddef.h>
#include <stdint.h>

#include "genie/status.h"
#include "genie/wire.h"

typedef struct genie_ucx genie_ucx_t;

enum { GENIE_ROLE_DRIVER = 0, GENIE_ROLE_EXECUTOR = 1 };

/* What every rank tells the others at bootstrap. */
typedef struct genie_ucx_peer_info {
    int32_t  rank;
    int32_t  role;           /* GENIE_ROLE_*                            */
    char     phase[16];      /* slice group ("prefill"), "" for driver  */
    uint32_t slice;          /* index inside the group                  */
    uint32_t pid;
    char     host[64];
    char     backend[16];    /* executor's backend name                 */
    uint32_t threads;        /* executor's compute threads              */
} genie_ucx_peer_info_t;

typedef struct genie_ucx_params {
    genie_ucx_peer_info_t self;         /* rank/role/phase/... of this process */
    int32_t               size;         /* ranks in the job                    */
    char                  secret[GENIE_WIRE_SECRET_LEN + 1];
    size_t                arena_bytes;  /* receive arena for KV handoffs (0: none) */
    double                timeout_s;    /* liveness: a peer silent this long while
                                           we wait for it is unresponsive (> 0) */
} genie_ucx_params_t;

/* Per link counters (bytes counted at the transport: headers included). */
typedef struct genie_ucx_link_stats {
    uint64_t bytes_sent;
    uint64_t bytes_received;
    uint64_t messages_sent;
    uint64_t messages_received;
    uint64_t rma_bytes_got;      /* bytes this process read from the peer by RMA */
    uint64_t rma_bytes_exposed;  /* bytes this process exposed for the peer to read */
} genie_ucx_link_stats_t;

/* A received message: header, payload (owned), and who sent it. */
typedef struct genie_ucx_msg {
    genie_wire_hdr_t hdr;
    uint8_t         *payload;    /* (len), NULL when len == 0 */
    size_t           len;
    int32_t          from;       /* rank the connection authenticated as */
    void            *ep;         /* internal: the connection a reply goes to ... */
    uint64_t         token;      /* internal: ... identified by its token too */
    int              ready;      /* internal: rendezvous data arrived (1), failed (-1) */
    struct genie_ucx_msg *next;  /* internal queue link */
} genie_ucx_msg_t;

/* The waits' bounds come from the environment (docs/user-guide.md,
 * "Timeouts"): a positive number of seconds, or dflt (with one line when the
 * value is not a number in (0, 1e6]).  genie-launch and the Slurm plugin
 * always set them from genie.conf. */
double genie_ucx_env_seconds(const char *name, double dflt);
#define GENIE_DEFAULT_REQUEST_TIMEOUT_S    30.0
#define GENIE_DEFAULT_HANDOFF_TIMEOUT_S    60.0
#define GENIE_DEFAULT_CHECKPOINT_TIMEOUT_S 600.0
#define GENIE_DEFAULT_BOOTSTRAP_TIMEOUT_S  120.0

/* Read the job secret (64 hex characters) from $GENIE_SECRET_FILE, refusing a
 * file others can read.  Writes params->secret. */
genie_status_t genie_ucx_read_secret(genie_ucx_params_t *params);

/* Context, worker and arena.  Applies Genie's UCX defaults unless the user
 * set them (see docs/wire-protocol.md, "UCX settings"). */
genie_status_t genie_ucx_create(const genie_ucx_params_t *params, genie_ucx_t **u_p);
void           genie_ucx_destroy(genie_ucx_t *u);

/* Collective over MPI_COMM_WORLD: exchange peer infos and worker addresses
 * (bootstrap_mpi.c).  MPI must be initialised.  Bounded: a rank that does not
 * arrive within limit_s ends this process with one line (the collective
 * cannot be left otherwise). */
genie_status_t genie_ucx_bootstrap_mpi(genie_ucx_t *u, double limit_s);
/* In-process bootstrap of n transports created in this process (tests and
 * fuzzing: real workers and endpoints, no MPI).  us[i] must have rank i. */
genie_status_t genie_ucx_bootstrap_local(genie_ucx_t *const *us, int n);

/* The layout of the bootstrap's second collective: rank r's blob of
 * addr_len[r] bytes starts at displs[r]; refuses lengths that overflow or
 * exceed what one rank may announce (1 MiB) or an int in total. */
genie_status_t genie_ucx_boot_layout(const uint64_t *addr_len, int n, int *counts, int *displs,
                                     int *total_p);

int32_t                      genie_ucx_rank(const genie_ucx_t *u);
int32_t                      genie_ucx_size(const genie_ucx_t *u);
const genie_ucx_peer_info_t *genie_ucx_peer(const genie_ucx_t *u, int32_t rank);
double                       genie_ucx_timeout(const genie_ucx_t *u);

/* Open the endpoint to `rank` (once) and present the secret; blocks until the
 * peer accepts (bounded by liveness).  `secret` NULL means the job secret
 * (tests pass a wrong one). */
genie_status_t genie_ucx_connect(genie_ucx_t *u, int32_t rank, const char *secret);
/* Non-blocking form: post the HELLO (once).  genie_ucx_connected() then says
 * GENIE_OK once the peer accepted, GENIE_UCX_PENDING while waiting, or the
 * error (DENIED, PEER_LOST). */
enum { GENIE_UCX_PENDING = 1 };   /* "not yet": not an error, not done */
genie_status_t genie_ucx_connect_start(genie_ucx_t *u, int32_t rank);
genie_status_t genie_ucx_connected(genie_ucx_t *u, int32_t rank);
/* An endpoint to `rank` without HELLO, so that UCX reports the peer's failure
 * (keepalive) even though we never send it requests (an executor watching
 * the driver), and RMA can reach it. */
genie_status_t genie_ucx_watch(genie_ucx_t *u, int32_t rank);
/* Same, but always on a new connection (tests: a second, rogue connection). */
genie_status_t genie_ucx_connect_extra(genie_ucx_t *u, int32_t rank, const char *secret,
                                       void **conn_p);
/* Raw bytes on an extra connection: header bytes and payload as given (tests,
 * fuzzing).  The connection's token is NOT filled in. */
genie_status_t genie_ucx_send_raw(genie_ucx_t *u, void *conn, const void *hdr, size_t hdr_len,
                                  const void *payload, size_t len);
/* The token of an extra connection (tests forge headers with it). */
uint64_t       genie_ucx_conn_token(const void *conn);

/* Send a request.  flags: GENIE_UCX_COPY copies the payload and returns at
 * once (small requests; the driver never blocks on a busy executor);
 * otherwise the call returns when UCX is done with `payload` (bounded by
 * liveness; on failure the connection is closed, so UCX never touches
 * `payload` after the call returns).  *seq_p (may be NULL) is the number the
 * reply will carry. */
enum { GENIE_UCX_COPY = 1, GENIE_UCX_NO_REPLY = 2 };
genie_status_t genie_ucx_send(genie_ucx_t *u, int32_t rank, uint16_t type, uint64_t aux,
                              const void *payload, size_t len, int flags, uint32_t *seq_p);
/* Wait for the reply to `seq` from `rank`.  A reply's status < 0 is returned
 * as is with the peer's reason (the payload's error string) recorded.
 * While waiting, a silent peer is probed with PING; one silent for the
 * liveness timeout gives GENIE_ERR_TIMEOUT with a line naming the rank, its
 * slice, pid, host and `what` ("RUN" when NULL: the request's type).  The
 * caller frees *reply_p. */
genie_status_t genie_ucx_wait_from(genie_ucx_t *u, uint32_t seq, int32_t rank,
                                   genie_ucx_msg_t **reply_p);
/* Same, also giving up after limit_s seconds in all (0: liveness only). */
genie_status_t genie_ucx_wait_for(genie_ucx_t *u, uint32_t seq, int32_t rank, double limit_s,
                                  const char *what, genie_ucx_msg_t **reply_p);
/* Without waiting: GENIE_OK and *reply_p, GENIE_UCX_PENDING, or the error. */
genie_status_t genie_ucx_poll_reply(genie_ucx_t *u, uint32_t seq, int32_t rank,
                                    genie_ucx_msg_t **reply_p);
/* For a caller that polls: GENIE_OK while `rank` may still answer a wait
 * that began at `since` (alive, heard from within the liveness timeout,
 * probed when quiet, and not past limit_s in all when limit_s > 0), else the
 * error naming it and `what`. */
genie_status_t genie_ucx_alive(genie_ucx_t *u, int32_t rank, double since, double limit_s,
                               const char *what);
/* Give up on the reply to `seq` (a late reply is then dropped). */
void           genie_ucx_forget(genie_ucx_t *u, uint32_t seq);
/* send + wait. */
genie_status_t genie_ucx_call(genie_ucx_t *u, int32_t rank, uint16_t type, uint64_t aux,
                              const void *payload, size_t len, genie_ucx_msg_t **reply_p);

/* Next request for this process (replies are never returned here), waiting up
 * to timeout_ms (< 0: until one arrives).  GENIE_ERR_TIMEOUT when none
 * arrived.  PINGs are answered by the transport itself and never returned. */
genie_status_t genie_ucx_next(genie_ucx_t *u, int timeout_ms, genie_ucx_msg_t **msg_p);
/* Reply to a request: status, then either payload (status >= 0) or, for an
 * error, the reason string as the payload. */
genie_status_t genie_ucx_reply(genie_ucx_t *u, const genie_ucx_msg_t *req, genie_status_t status,
                               const void *payload, size_t len);
void           genie_ucx_msg_free(genie_ucx_msg_t *m);
/* Progress the worker once (answers HELLOs and PINGs): long computations call
 * it now and then so that the process stays visibly alive. */
void           genie_ucx_poll(genie_ucx_t *u);

/* ---- RMA: the KV handoff is pulled by its destination ---------------------
 * The source exposes the memory of the objects it hands off (a region per
 * object, its packed rkey sent to the destination only); the destination
 * reads them with gets into its own arena.  Nobody ever writes into another
 * process's memory. */
typedef struct genie_ucx_region genie_ucx_region_t;
genie_status_t genie_ucx_expose(genie_ucx_t *u, int32_t for_rank, void *addr, size_t len,
                                genie_ucx_region_t **region_p);
/* The packed rkey to send to the reader. */
const void    *genie_ucx_region_rkey(const genie_ucx_region_t *r, size_t *len_p);
void           genie_ucx_unexpose(genie_ucx_t *u, genie_ucx_region_t *r);

typedef struct genie_ucx_gets genie_ucx_gets_t;
genie_status_t genie_ucx_gets_begin(genie_ucx_t *u, int32_t rank, genie_ucx_gets_t **g_p);
/* Read len bytes at the peer's remote_addr (memory exposed with rkey) into dst. */
genie_status_t genie_ucx_get(genie_ucx_gets_t *g, const void *rkey, size_t rkey_len,
                             uint64_t remote_addr, void *dst, size_t len);
/* Wait until every get of the batch completed (limit_s in all, and the
 * peer's liveness), then free the batch.  *bytes_p: bytes the transport
 * completed.  On failure the endpoint is closed first, so that no get can
 * write into dst after this returns. */
genie_status_t genie_ucx_gets_end(genie_ucx_gets_t *g, double limit_s, uint64_t *bytes_p);

/* This process's arena: allocate / free ranges (64-byte aligned). */
void          *genie_ucx_arena_base(const genie_ucx_t *u);
genie_status_t genie_ucx_arena_alloc(genie_ucx_t *u, size_t nbytes, uint64_t *offset_p);
void           genie_ucx_arena_free(genie_ucx_t *u, uint64_t offset);
size_t         genie_ucx_arena_used(const genie_ucx_t *u);

/* GENIE_OK while `rank` is alive; GENIE_ERR_PEER_LOST (reason recorded) once
 * UCX reported its endpoint failed, its process is gone, or it was marked
 * lost. */
genie_status_t genie_ucx_peer_status(genie_ucx_t *u, int32_t rank);
/* Treat `rank` as lost from now on: its connections are dropped (whatever
 * it sends later is discarded) and waits on it fail at once. */
void           genie_ucx_mark_lost(genie_ucx_t *u, int32_t rank, const char *why);
/* mark_lost, and end its process: SIGKILL when it runs on this host.  Returns
 * 1 if it was killed, 0 if it runs elsewhere (then it is only fenced off). */
int            genie_ucx_end_peer(genie_ucx_t *u, int32_t rank, const char *why);
void           genie_ucx_link_stats(const genie_ucx_t *u, int32_t rank,
                                    genie_ucx_link_stats_t *stats_p);
/* One line on stderr: "genie: rank R (phase slice S): <message>". */
void           genie_ucx_log(const genie_ucx_t *u, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "rank 3 (decode slice 0, pid 123 on host)" for messages. */
void           genie_ucx_describe(const genie_ucx_t *u, int32_t rank, char *buf, size_t cap);
/* Messages dropped because of bad framing or authentication. */
uint64_t       genie_ucx_dropped(const genie_ucx_t *u);
/* Connections alive (tests: dropped ones are freed). */
uint32_t       genie_ucx_n_conns(const genie_ucx_t *u);

#endif

/*
 * The UCX transport: one UCP context and worker per process, endpoints to the
 * other ranks of the job, active messages for control (framed as in
 * genie/wire.h), RMA puts into a peer's registered arena for large tensors
 * (the KV-cache handoff), job-secret authentication of every connection, and
 * peer-failure detection.
 *
 * Threading: a genie_ucx_t is used by one thread.  Blocking calls progress the
 * worker while they wait, spinning briefly and then sleeping on the worker's
 * event fd, so an idle rank costs no CPU.
 *
 * Connections.  A sender always asks UCX for a reply endpoint, so the
 * receiver knows which connection each message came from.  The first message
 * on a connection must be HELLO carrying the job secret; anything else, a bad
 * secret, or a malformed message gets the connection dropped (logged once,
 * later messages discarded) while every other connection keeps being served.
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
    size_t                arena_bytes;  /* registered receive arena (0: none)  */
    double                timeout_s;    /* request timeout, 0 = none           */
} genie_ucx_params_t;

/* Per link counters (bytes counted at the transport: headers included). */
typedef struct genie_ucx_link_stats {
    uint64_t bytes_sent;
    uint64_t bytes_received;
    uint64_t messages_sent;
    uint64_t messages_received;
    uint64_t rma_bytes_put;
} genie_ucx_link_stats_t;

/* A received message: header, payload (owned), and who sent it. */
typedef struct genie_ucx_msg {
    genie_wire_hdr_t hdr;
    uint8_t         *payload;    /* (len), NULL when len == 0 */
    size_t           len;
    int32_t          from;       /* rank the connection authenticated as */
    void            *conn;       /* internal: where a reply goes */
    int              ready;      /* internal: rendezvous data arrived */
    struct genie_ucx_msg *next;  /* internal queue link */
} genie_ucx_msg_t;

/* Read the job secret (64 hex characters) from $GENIE_SECRET_FILE, refusing a
 * file others can read.  Writes params->secret. */
genie_status_t genie_ucx_read_secret(genie_ucx_params_t *params);

/* Context, worker and arena.  Applies Genie's UCX defaults unless the user
 * set them (see docs/wire-protocol.md, "UCX settings"). */
genie_status_t genie_ucx_create(const genie_ucx_params_t *params, genie_ucx_t **u_p);
void           genie_ucx_destroy(genie_ucx_t *u);

/* Collective over MPI_COMM_WORLD: exchange peer infos, worker addresses and
 * arena rkeys (bootstrap_mpi.c).  MPI must be initialised. */
genie_status_t genie_ucx_bootstrap_mpi(genie_ucx_t *u);

int32_t                      genie_ucx_rank(const genie_ucx_t *u);
int32_t                      genie_ucx_size(const genie_ucx_t *u);
const genie_ucx_peer_info_t *genie_ucx_peer(const genie_ucx_t *u, int32_t rank);

/* Open the endpoint to `rank` (once) and present the secret; blocks until the
 * peer accepts.  `secret` NULL means the job secret (tests pass a wrong one). */
genie_status_t genie_ucx_connect(genie_ucx_t *u, int32_t rank, const char *secret);
/* Same, but always on a new connection (tests: a second, rogue connection). */
genie_status_t genie_ucx_connect_extra(genie_ucx_t *u, int32_t rank, const char *secret,
                                       void **conn_p);
/* Raw bytes on an extra connection: header bytes and payload as given (tests). */
genie_status_t genie_ucx_send_raw(genie_ucx_t *u, void *conn, const void *hdr, size_t hdr_len,
                                  const void *payload, size_t len);

/* Send a request.  flags: GENIE_UCX_COPY copies the payload and returns at
 * once (small requests; the driver never blocks on a busy executor);
 * otherwise the call returns when UCX is done with `payload`.  *seq_p (may be
 * NULL) is the number the reply will carry. */
enum { GENIE_UCX_COPY = 1 };
genie_status_t genie_ucx_send(genie_ucx_t *u, int32_t rank, uint16_t type, uint64_t aux,
                              const void *payload, size_t len, int flags, uint32_t *seq_p);
/* Wait for the reply to `seq`; a reply's status < 0 is returned as is with
 * the peer's reason (the payload's error string) recorded.  The caller frees
 * *reply_p. */
genie_status_t genie_ucx_wait(genie_ucx_t *u, uint32_t seq, genie_ucx_msg_t **reply_p);
/* Same, watching only `rank` for failure (genie_ucx_wait watches every rank
 * with a request outstanding). */
genie_status_t genie_ucx_wait_from(genie_ucx_t *u, uint32_t seq, int32_t rank,
                                   genie_ucx_msg_t **reply_p);
/* send + wait. */
genie_status_t genie_ucx_call(genie_ucx_t *u, int32_t rank, uint16_t type, uint64_t aux,
                              const void *payload, size_t len, genie_ucx_msg_t **reply_p);

/* Next request for this process (replies are never returned here), waiting up
 * to timeout_ms (< 0: forever).  GENIE_ERR_TIMEOUT when none arrived. */
genie_status_t genie_ucx_next(genie_ucx_t *u, int timeout_ms, genie_ucx_msg_t **msg_p);
/* Reply to a request: status, then either payload (status >= 0) or, for an
 * error, the reason string as the payload. */
genie_status_t genie_ucx_reply(genie_ucx_t *u, const genie_ucx_msg_t *req, genie_status_t status,
                               const void *payload, size_t len);
void           genie_ucx_msg_free(genie_ucx_msg_t *m);

/* RMA into `rank`'s arena at `offset` (bounds-checked against the arena size
 * it announced); complete after genie_ucx_flush(rank). */
genie_status_t genie_ucx_put(genie_ucx_t *u, int32_t rank, uint64_t offset, const void *src,
                             size_t len);
genie_status_t genie_ucx_flush(genie_ucx_t *u, int32_t rank);

/* This process's arena: allocate / free ranges (64-byte aligned). */
void          *genie_ucx_arena_base(const genie_ucx_t *u);
genie_status_t genie_ucx_arena_alloc(genie_ucx_t *u, size_t nbytes, uint64_t *offset_p);
void           genie_ucx_arena_free(genie_ucx_t *u, uint64_t offset);

/* GENIE_OK while `rank` is alive; GENIE_ERR_PEER_LOST (reason recorded) once
 * UCX reported its endpoint failed or its process is gone. */
genie_status_t genie_ucx_peer_status(genie_ucx_t *u, int32_t rank);
void           genie_ucx_link_stats(const genie_ucx_t *u, int32_t rank,
                                    genie_ucx_link_stats_t *stats_p);
/* One line on stderr: "genie: rank R (phase slice S): <message>". */
void           genie_ucx_log(const genie_ucx_t *u, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Messages dropped because of bad framing or authentication. */
uint64_t       genie_ucx_dropped(const genie_ucx_t *u);

#endif

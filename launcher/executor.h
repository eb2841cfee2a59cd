/*
 * genie-executor's serving loop: one rank, one runtime executor, one UCX
 * transport.  executor_main.c sets them up from the environment and MPI;
 * executor_serve.c answers the wire protocol's requests until SHUTDOWN.
 *
 * Requests are served one at a time in arrival order, except that a KV
 * handoff runs beside them: its source answers the driver once the
 * destination has pulled the objects.  A decode slice that holds many
 * sessions interleaves their steps: sessions join (by a handoff) and leave
 * (END_SESSION) between steps, and each step is one request of one session;
 * steps of different sessions are not fused into one batched kernel.
 */
#ifndef GENIE_EXECUTOR_H
#define GENIE_EXECUTOR_H

#include <stdint.h>

#include "genie/exec.h"
#include "genie/ucx.h"

#define GENIE_PLAN_CACHE 64   /* decoded SRGs kept by hash (LRU) */

/* What a request handler did besides returning an error (< 0) or GENIE_OK
 * (= "send an empty success reply"). */
enum {
    GENIE_SERVER_REPLIED = 1,   /* it sent the reply itself */
    GENIE_SERVER_KEPT    = 2,   /* it kept the message and replies later (HANDOFF) */
};

typedef struct genie_plan {
    uint64_t     hash;
    genie_srg_t *srg;
    uint64_t     last_use;
} genie_plan_t;

/* A HANDOFF in progress on its source: the objects' memory is exposed to
 * the destination, which pulls it (KV_OFFER); the driver's request is
 * answered when the destination's reply arrives or the handoff's time is up.
 * Meanwhile the source serves its other requests. */
typedef struct genie_handoff {
    genie_ucx_msg_t     *req;         /* the driver's HANDOFF (kept) */
    uint64_t             session;
    int32_t              dst;
    int                  offered;     /* KV_OFFER sent (else: connecting) */
    uint32_t             seq;         /* of the KV_OFFER */
    uint32_t             n;
    uint64_t            *ids;         /* (n) */
    genie_tensor_t      *objs;        /* (n) references held for the handoff */
    genie_ucx_region_t **regions;     /* (n) NULL for empty objects */
    uint64_t             bytes;       /* sum of the objects' bytes */
    double               t0;
    struct genie_handoff *next;
} genie_handoff_t;

typedef struct genie_server {
    genie_ucx_t         *ucx;
    genie_exec_t        *exec;
    int32_t              rank;
    genie_plan_t         plans[GENIE_PLAN_CACHE];
    uint64_t             plan_clock;
    genie_handoff_t     *handoffs;       /* in progress, as source */
    double               handoff_limit_s;
    int                  shutdown;
    int                  skip_finalize;  /* SHUTDOWN said a rank was lost */
    int                  driver_gone;    /* the driver died: exit without MPI_Finalize */
    /* counters reported by STATS */
    uint64_t             plan_cache_hits;
    uint64_t             kv_bytes_in, kv_bytes_out;   /* by the transport's RMA counts */
    uint64_t             handoffs_in, handoffs_out, handoffs_failed;
    double               handoff_s;
    uint64_t             bad_requests;
    uint64_t             checkpoints, checkpoint_bytes, restores, restore_bytes;
    double               checkpoint_s;
    char                 backend_note[200];  /* e.g. "GPUs allocated but CPU backend" */
} genie_server_t;

/* Serve requests until SHUTDOWN (or until the driver is gone). */
genie_status_t genie_server_run(genie_server_t *srv);
void           genie_server_fini(genie_server_t *srv);
/* CHECKPOINT and RESTORE (executor_ckpt.c): GENIE_SERVER_REPLIED, or an error. */
genie_status_t genie_server_checkpoint(genie_server_t *srv, genie_ucx_msg_t *m);
genie_status_t genie_server_restore(genie_server_t *srv, genie_ucx_msg_t *m);
/* One request (executor_serve.c): dispatch and reply.  The fuzz target
 * drives the server through it. */
void           genie_server_handle(genie_server_t *srv, genie_ucx_msg_t *m);
/* The KV handoff (executor_handoff.c): HANDOFF on the source (returns
 * GENIE_SERVER_KEPT: answered by poll_handoffs later), KV_OFFER on the
 * destination; poll answers the handoffs that finished, failed or ran out of
 * time; end fails every one still in progress. */
genie_status_t genie_server_handoff(genie_server_t *srv, genie_ucx_msg_t *m);
genie_status_t genie_server_kv_offer(genie_server_t *srv, genie_ucx_msg_t *m);
void           genie_server_poll_handoffs(genie_server_t *srv);
void           genie_server_end_handoffs(genie_server_t *srv, const char *why);

#endif

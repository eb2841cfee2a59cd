/*
 * genie-executor's serving loop: one rank, one runtime executor, one UCX
 * transport.  executor_main.c sets them up from the environment and MPI;
 * executor_serve.c answers the wire protocol's requests until SHUTDOWN.
 *
 * Requests are served one at a time in arrival order.  A decode slice that
 * holds many sessions therefore interleaves their steps: sessions join (by a
 * handoff) and leave (END_SESSION) between steps, and each step is one
 * request of one session; steps of different sessions are not fused into
 * one batched kernel.
 */
#ifndef GENIE_EXECUTOR_H
#define GENIE_EXECUTOR_H

#include <stdint.h>

#include "genie/exec.h"
#include "genie/ucx.h"

#define GENIE_PLAN_CACHE 64   /* decoded SRGs kept by hash (LRU) */

typedef struct genie_plan {
    uint64_t     hash;
    genie_srg_t *srg;
    uint64_t     last_use;
} genie_plan_t;

/* A range of our arena reserved by a peer for a handoff, until committed. */
typedef struct genie_reservation {
    uint64_t session;
    uint64_t offset;
    uint64_t len;
    int32_t  peer;
} genie_reservation_t;

typedef struct genie_server {
    genie_ucx_t         *ucx;
    genie_exec_t        *exec;
    int32_t              rank;
    genie_plan_t         plans[GENIE_PLAN_CACHE];
    uint64_t             plan_clock;
    genie_reservation_t *resv;
    uint32_t             n_resv, cap_resv;
    int                  shutdown;
    int                  skip_finalize;  /* SHUTDOWN said a rank was lost */
    /* counters reported by STATS */
    uint64_t             plan_cache_hits;
    uint64_t             kv_bytes_in, kv_bytes_out;
    uint64_t             handoffs_in, handoffs_out;
    double               handoff_s;
    uint64_t             bad_requests;
    uint64_t             checkpoints, checkpoint_bytes, restores, restore_bytes;
    double               checkpoint_s;
} genie_server_t;

/* Serve requests until SHUTDOWN. */
genie_status_t genie_server_run(genie_server_t *srv);
void           genie_server_fini(genie_server_t *srv);
/* CHECKPOINT and RESTORE (executor_ckpt.c): 1 when replied, else an error. */
genie_status_t genie_server_checkpoint(genie_server_t *srv, genie_ucx_msg_t *m);
genie_status_t genie_server_restore(genie_server_t *srv, genie_ucx_msg_t *m);

#endif

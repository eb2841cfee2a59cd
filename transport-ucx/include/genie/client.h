/*
 * The driver's side of the wire protocol: typed requests to executor ranks
 * over the UCX transport.  Used by the CPython extension (genie._C.Cluster),
 * the MPI tests and the benchmarks.  One client per process, one thread.
 *
 * A client is rank 0 of the job's MPI world.  genie_client_open() joins the
 * world (MPI_Init unless already initialised), bootstraps the transport and
 * authenticates to every executor; genie_client_close() shuts the executors
 * down and finalises MPI.
 */
#ifndef GENIE_CLIENT_H
#define GENIE_CLIENT_H

#include <stdint.h>

#include "genie/status.h"
#include "genie/tensor.h"
#include "genie/ucx.h"

typedef struct genie_client genie_client_t;

/* Environment: GENIE_SECRET_FILE (required); the waits' bounds
 * GENIE_REQUEST_TIMEOUT_S (liveness, default 30), GENIE_HANDOFF_TIMEOUT_S
 * (60), GENIE_CHECKPOINT_TIMEOUT_S (600), GENIE_BOOTSTRAP_TIMEOUT_S (120).
 *
 * Every wait of the client is bounded.  An executor that stops answering
 * (no reply and no answer to liveness probes for GENIE_REQUEST_TIMEOUT_S)
 * is ended: SIGKILL when it runs on this host, and in any case fenced off
 * (every other executor is told to drop its connections), with one line
 * naming it and the operation; the call then fails with
 * GENIE_ERR_PEER_LOST, exactly as if the executor had died. */
genie_status_t genie_client_open(genie_client_t **c_p);
/* The rank of the last GENIE_ERR_PEER_LOST a call returned (-1: none). */
int32_t        genie_client_last_lost(const genie_client_t *c);
/* SHUTDOWN to every executor still alive (bounded wait), then MPI_Finalize
 * unless `keep_mpi`. */
void           genie_client_close(genie_client_t *c, int keep_mpi);
genie_ucx_t   *genie_client_ucx(genie_client_t *c);

genie_status_t genie_client_weight(genie_client_t *c, int32_t rank, uint64_t fingerprint,
                                   const char *name, const genie_tensor_t *host);

/* RUN.  Plans are cached by the executors under their hash: the client sends
 * only the hash for a plan it already sent to that rank, and resends the
 * bytes if the executor evicted it.  inputs are contiguous host tensors; the
 * data is copied before submit returns. */
genie_status_t genie_client_submit(genie_client_t *c, int32_t rank, const uint8_t *srg,
                                   size_t srg_len, const genie_tensor_t *inputs, uint32_t n_inputs,
                                   uint32_t *ticket_p);
/* Outputs are host tensors whose storage is the reply buffer (released with
 * genie_tensor_release, array freed by the caller); compute_s is the
 * executor's own time inside backend ops. */
genie_status_t genie_client_wait(genie_client_t *c, uint32_t ticket, genie_tensor_t **outs_p,
                                 uint32_t *n_outs_p, double *compute_s_p);

genie_status_t genie_client_free(genie_client_t *c, int32_t rank, const uint64_t *ids, uint32_t n);
genie_status_t genie_client_fetch(genie_client_t *c, int32_t rank, uint64_t id, genie_tensor_t *out_p);
genie_status_t genie_client_bind(genie_client_t *c, int32_t rank, uint64_t session,
                                 const uint64_t *ids, uint32_t n);
genie_status_t genie_client_end_session(genie_client_t *c, int32_t rank, uint64_t session,
                                        uint32_t *n_freed_p);
genie_status_t genie_client_session_info(genie_client_t *c, int32_t rank, uint64_t session,
                                         uint32_t *n_p, uint64_t *bytes_p);
/* Move objects `ids` of `session` from executor src to executor dst (RMA
 * between them; nothing passes through this process). */
genie_status_t genie_client_handoff(genie_client_t *c, int32_t src, int32_t dst, uint64_t session,
                                    const uint64_t *ids, uint32_t n, uint64_t *bytes_p,
                                    double *seconds_p);
/* Executor counters: calls fn(name, value, arg) for each number, then
 * fn_text(name, text, arg) (if not NULL) for each text, e.g.
 * "cuda_visible_devices". */
genie_status_t genie_client_stats(genie_client_t *c, int32_t rank,
                                  void (*fn)(const char *name, double value, void *arg),
                                  void (*fn_text)(const char *name, const char *text, void *arg),
                                  void *arg);
/* CHECKPOINT: the executor writes one rank file of a checkpoint epoch
 * (docs/checkpoint-format.md) at `path`, committing it by rename, from the
 * session objects it holds and the metadata given here.  _send returns once
 * the request is out, so several ranks write at the same time; _wait
 * collects one (bytes written, seconds the executor spent). */
typedef struct genie_client_ckpt_session {
    uint64_t           id, key, model_fp, step, prompt_len;
    uint32_t           batch;        /* B */
    uint64_t           n_tokens;     /* L */
    const int64_t     *tokens;       /* (B, L) */
    const uint8_t     *rng;          /* (rng_len) sampler state, may be empty */
    uint32_t           rng_len;
    uint32_t           n_lineage;    /* R */
    const int64_t     *lineage;      /* (R, 6) docs/checkpoint-format.md */
    uint32_t           n_kv;
    const uint64_t    *kv_ids;       /* (n_kv) objects the session owns */
    const char *const *kv_names;     /* (n_kv) "layer_00/key" */
} genie_client_ckpt_session_t;

genie_status_t genie_client_checkpoint_send(genie_client_t *c, int32_t rank, uint64_t epoch,
                                            const char *path, const char *job,
                                            const genie_client_ckpt_session_t *sessions,
                                            uint32_t n, uint32_t *seq_p);
genie_status_t genie_client_checkpoint_wait(genie_client_t *c, int32_t rank, uint32_t seq,
                                            uint64_t *bytes_p, double *seconds_p);

/* RESTORE: the executor reads session `file_session`'s KV tensors from the
 * rank file `path` (checksums verified) and makes them its objects `ids`,
 * owned by `session`.  Nothing is created unless every tensor read. */
typedef struct genie_client_kv_desc {
    uint64_t      id;
    const char   *name;
    genie_dtype_t dtype;
    int           ndim;
    int64_t       shape[GENIE_MAX_DIMS];
} genie_client_kv_desc_t;

genie_status_t genie_client_restore(genie_client_t *c, int32_t rank, const char *path,
                                    uint64_t file_session, uint64_t session,
                                    const genie_client_kv_desc_t *kv, uint32_t n,
                                    uint64_t *bytes_p, double *seconds_p);
genie_status_t genie_client_ping(genie_client_t *c, int32_t rank, const void *data, size_t len);

#endif

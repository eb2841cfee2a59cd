/*
 * The executor: runs decoded SRGs on a backend, owns the weight store (by
 * fingerprint) and the resident objects (by object id: KV caches, results kept
 * for later requests).  Each activation is freed right after its last consumer
 * unless the graph keeps it.  One executor serves one process (embedded mode)
 * or one MPI rank (launcher/genie-executor); it is not thread-safe.
 */
#ifndef GENIE_EXEC_H
#define GENIE_EXEC_H

#include <stdint.h>

#include "genie/backend.h"
#include "genie/srg.h"
#include "genie/status.h"
#include "genie/tensor.h"

typedef struct genie_exec genie_exec_t;

typedef struct genie_exec_stats {
    uint64_t requests;          /* execute() calls                   */
    uint64_t nodes_run;         /* nodes executed                    */
    uint64_t weights;           /* registered weights                */
    uint64_t weight_bytes;      /* bytes of registered weights       */
    uint64_t residents;         /* live resident objects             */
    uint64_t resident_bytes;    /* their bytes                       */
    uint64_t input_bytes;       /* host bytes received as inputs     */
    uint64_t output_bytes;      /* host bytes returned as outputs    */
    uint64_t peak_bytes;        /* peak of the bytes a request held  */
    uint64_t sessions;          /* live sessions (owning >= 1 object) */
    uint64_t session_bytes;     /* bytes of objects owned by sessions */
    double   compute_s;         /* time inside backend ops           */
    double   phase_s[GENIE_PHASE_COUNT]; /* compute time per phase   */
    uint64_t memory_budget_bytes; /* genie_exec_set_memory_budget; 0 = none */
    uint64_t memory_in_use_bytes; /* weights + residents (+ a run's bytes)  */
} genie_exec_stats_t;

genie_status_t genie_exec_create(genie_backend_t *backend, genie_exec_t **exec_p);
void           genie_exec_destroy(genie_exec_t *exec);

/* Memory budget (genie.conf memory_mb, GENIE_MEMORY_MB): the most bytes the
 * executor may hold at once, counted as weights + resident objects + what
 * the request in progress holds (its uploaded inputs, live activations and
 * the host copies of its outputs).  0 = no budget (the default).
 *
 * Every allocation the executor makes for a request is checked before it is
 * made: a weight, a node's outputs, an input upload, an object put on the
 * executor (a received KV cache) and a fetch copy.  A node one of whose
 * inputs is a broadcast view (more elements than its storage holds, as
 * expand makes) is also charged an f32 copy of that input, which a backend
 * may need to stage.  Over budget, the call fails with GENIE_ERR_NOMEM and one
 * line, e.g. "executor: request needs 2.0 GiB more for node 17 (mm.default)
 * but the memory budget is 1.0 GiB (memory_mb in genie.conf), 0.6 GiB in
 * use", and changes nothing: a failed run frees what it allocated, objects
 * and sessions from before are intact.  A budget below what is in use now is
 * accepted; it refuses every new allocation until enough is freed.
 * Backend-internal scratch (softmax rows, attention score blocks) is bounded
 * by the sizes above and not counted. */
genie_status_t genie_exec_set_memory_budget(genie_exec_t *exec, uint64_t bytes);

/* A hook the executor calls between the nodes of a run, at most every 20 ms
 * (an executor serving requests keeps answering its transport's liveness
 * probes while it computes).  fn NULL: none.  The hook must not run
 * requests on this executor. */
typedef void (*genie_exec_tick_fn)(void *arg);
void genie_exec_set_tick(genie_exec_t *exec, genie_exec_tick_fn fn, void *arg);

/* Register a weight once; a second registration of the same fingerprint is a
 * no-op returning GENIE_OK.  `host` is contiguous data of dtype/shape. */
genie_status_t genie_exec_register_weight(genie_exec_t *exec, uint64_t fingerprint,
                                          genie_dtype_t dtype, int ndim,
                                          const int64_t *shape, const void *host,
                                          const char *name);
int            genie_exec_has_weight(const genie_exec_t *exec, uint64_t fingerprint);

/* Run a graph.  inputs: (n_inputs) host tensors for the INPUT slots (slot i is
 * inputs[i]); outputs_p receives one host tensor per value with is_output, in
 * value-id order (count in *n_outputs_p); caller releases each and frees the
 * array. */
genie_status_t genie_exec_run(genie_exec_t *exec, const genie_srg_t *srg,
                              const genie_tensor_t *inputs, uint32_t n_inputs,
                              genie_tensor_t **outputs_p, uint32_t *n_outputs_p);

/* Drop resident objects (unknown ids are ignored: frees may race with GC). */
void genie_exec_free_objects(genie_exec_t *exec, const uint64_t *ids, uint32_t n);

/* Sessions.  A generation's state (its KV cache, the last token) lives in
 * resident objects owned by a session: binding moves objects under a session
 * (an object belongs to at most one; rebinding moves it), ending the session
 * frees everything it owns at once.  Session ids are chosen by the driver and
 * are never 0. */
genie_status_t genie_exec_session_bind(genie_exec_t *exec, uint64_t session,
                                       const uint64_t *ids, uint32_t n);
/* Free every object of `session`; returns how many were freed (0 if none). */
uint32_t       genie_exec_session_end(genie_exec_t *exec, uint64_t session);
/* Objects and bytes a session owns now. */
void           genie_exec_session_info(const genie_exec_t *exec, uint64_t session,
                                       uint32_t *n_objects_p, uint64_t *bytes_p);

/* Copy of a resident object to host (contiguous). */
genie_status_t genie_exec_fetch(genie_exec_t *exec, uint64_t object_id, genie_tensor_t *out_p);

/* Objects that cross the wire (the KV-cache handoff between executors).
 *
 * genie_exec_object: the resident object `object_id` as the backend holds it
 * and its owning session (0 = none), borrowed (valid until the object is freed
 * or replaced).  On a host_memory backend the transport sends from it directly.
 *
 * genie_exec_put_object: make `t` the resident object `object_id`, owned by
 * `session` (0 = none), replacing any object with that id.  Takes ownership of
 * the reference in *t (cleared on success).  A host_memory backend adopts the
 * storage as is (no copy: a receive buffer becomes the object); another
 * backend uploads it and releases the host copy. */
genie_status_t genie_exec_object(const genie_exec_t *exec, uint64_t object_id,
                                 const genie_tensor_t **t_p, uint64_t *session_p);
genie_status_t genie_exec_put_object(genie_exec_t *exec, uint64_t object_id, uint64_t session,
                                     genie_tensor_t *t);
/* True when the backend's storages are host memory (see genie_backend_i). */
int            genie_exec_host_memory(const genie_exec_t *exec);

void genie_exec_get_stats(const genie_exec_t *exec, genie_exec_stats_t *stats_p);
const char *genie_exec_backend_name(const genie_exec_t *exec);

#endif

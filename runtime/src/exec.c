/*
 * The executor: runs a decoded SRG on one backend.
 *
 * A run walks the nodes in their (validated) topological order.  Before it
 * starts we compute, for every value, the index of its last consuming node, so
 * that an activation is released the moment nothing else needs it; values the
 * graph returns or keeps resident are exempt.  Kept values are inserted into
 * the resident-object table only after the whole run succeeded, so a failed
 * request leaves the executor exactly as it was.
 *
 * The memory budget (exec.h) is checked before each allocation a request
 * makes.  In use = weight bytes + resident bytes + run_bytes, where run_bytes
 * counts the storages the run in progress allocated (uploaded inputs, node
 * outputs, output copies) and drops a storage's bytes when its last
 * reference goes; it is 0 between requests.
 */
#include "genie/exec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "u64map.h"

struct genie_exec {
    genie_backend_t    *backend;
    genie_u64map_t      weights;   /* fingerprint -> weight      */
    genie_u64map_t      objects;   /* object id   -> resident    */
    genie_exec_stats_t  stats;
    uint64_t            budget;    /* bytes; 0 = none                        */
    uint64_t            run_bytes; /* held by the run in progress (see top)  */
    genie_exec_tick_fn  tick;      /* between nodes (genie_exec_set_tick)    */
    void               *tick_arg;
    double              tick_t;    /* when it last ran                       */
};

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t mul_sat(uint64_t a, uint64_t b)
{
    return b != 0 && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

static uint64_t sub_floor(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

static uint64_t in_use(const genie_exec_t *e)
{
    return add_sat(add_sat(e->stats.weight_bytes, e->stats.resident_bytes), e->run_bytes);
}

/* "2.0 GiB", "0.6 GiB", "512 B": the largest binary unit of which b is at
 * least a tenth, one decimal. */
static void format_bytes(char *buf, size_t len, uint64_t b)
{
    static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
    int u = -1;

    while (u + 1 < 6 && (double)b >= 0.1 * (double)(UINT64_C(1) << (10 * (u + 2)))) {
        u++;
    }
    if (u < 0) {
        snprintf(buf, len, "%llu B", (unsigned long long)b);
    } else {
        snprintf(buf, len, "%.1f %s", (double)b / (double)(UINT64_C(1) << (10 * (u + 1))), units[u]);
    }
}

/* May the executor allocate `more` bytes now, given that the operation also
 * frees `freed` bytes it holds (an object being replaced)?  If not, one line
 * naming what the bytes are for (what_fmt: "node 17 (mm.default)") and
 * GENIE_ERR_NOMEM.  Overflow-safe whatever the sizes. */
static genie_status_t budget_check(const genie_exec_t *e, uint64_t more, uint64_t freed,
                                   const char *what_fmt, ...)
    __attribute__((format(printf, 4, 5)));

static genie_status_t budget_check(const genie_exec_t *e, uint64_t more, uint64_t freed,
                                   const char *what_fmt, ...)
{
    uint64_t use = sub_floor(in_use(e), freed);
    char what[256], need[32], budget[32], used[32];
    va_list ap;

    if (e->budget == 0 || (more <= e->budget && use <= e->budget - more)) {
        return GENIE_OK;
    }
    va_start(ap, what_fmt);
    vsnprintf(what, sizeof(what), what_fmt, ap);
    va_end(ap);
    format_bytes(need, sizeof(need), more);
    format_bytes(budget, sizeof(budget), e->budget);
    format_bytes(used, sizeof(used), use);
    return genie_set_error(GENIE_ERR_NOMEM,
                           "executor: request needs %s more for %s but the memory budget is %s "
                           "(memory_mb in genie.conf), %s in use", need, what, budget, used);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

genie_status_t genie_exec_create(genie_backend_t *backend, genie_exec_t **exec_p)
{
    genie_exec_t *e = calloc(1, sizeof(*e));

    if (e == NULL) {
        return genie_set_error(GENIE_ERR_NOMEM, "executor: out of memory");
    }
    e->backend = backend;
    genie_u64map_init(&e->weights);
    genie_u64map_init(&e->objects);
    *exec_p = e;
    return GENIE_OK;
}

void genie_exec_destroy(genie_exec_t *exec)
{
    if (exec == NULL) {
        return;
    }
    genie_u64map_clear(&exec->weights);
    genie_u64map_clear(&exec->objects);
    free(exec);
}

genie_status_t genie_exec_set_memory_budget(genie_exec_t *exec, uint64_t bytes)
{
    exec->budget = bytes;
    exec->stats.memory_budget_bytes = bytes;
    return GENIE_OK;
}

void genie_exec_set_tick(genie_exec_t *exec, genie_exec_tick_fn fn, void *arg)
{
    exec->tick     = fn;
    exec->tick_arg = arg;
    exec->tick_t   = 0;
}

const char *genie_exec_backend_name(const genie_exec_t *exec)
{
    return exec->backend->iface->name;
}

/* Allocate a contiguous backend tensor of the given metadata. */
static genie_status_t backend_alloc(genie_exec_t *exec, genie_dtype_t dt, int ndim,
                                    const int64_t *shape, genie_tensor_t *t_p)
{
    genie_tensor_t t = { .dtype = dt, .ndim = ndim };
    genie_status_t st;

    memcpy(t.shape, shape, sizeof(int64_t) * (size_t)ndim);
    genie_tensor_set_contiguous_strides(&t);
    st = exec->backend->iface->alloc(exec->backend, genie_tensor_nbytes(&t), &t.storage);
    if (st != GENIE_OK) {
        return st;
    }
    *t_p = t;
    return GENIE_OK;
}

/* Upload a host tensor (any strides) into a new contiguous backend tensor. */
static genie_status_t upload(genie_exec_t *exec, const genie_tensor_t *host,
                             genie_tensor_t *t_p)
{
    genie_tensor_t contig, t;
    genie_status_t st;

    st = genie_tensor_contiguous(host, &contig);
    if (st != GENIE_OK) {
        return st;
    }
    st = backend_alloc(exec, host->dtype, host->ndim, host->shape, &t);
    if (st != GENIE_OK) {
        goto err_release_contig;
    }
    st = exec->backend->iface->upload(exec->backend, genie_tensor_data(&contig),
                                      genie_tensor_nbytes(&contig), t.storage);
    if (st != GENIE_OK) {
        goto err_release_t;
    }
    genie_tensor_release(&contig);
    *t_p = t;
    return GENIE_OK;

err_release_t:
    genie_tensor_release(&t);
err_release_contig:
    genie_tensor_release(&contig);
    return st;
}

static int same_meta(const genie_tensor_t *t, genie_dtype_t dt, int ndim, const int64_t *shape)
{
    if (t->dtype != dt || t->ndim != ndim) {
        return 0;
    }
    for (int d = 0; d < ndim; d++) {
        if (t->shape[d] != shape[d]) {
            return 0;
        }
    }
    return 1;
}

static void format_shape(char *buf, size_t len, int ndim, const int64_t *shape)
{
    /* 8 dims of at most 20 digits plus separators always fit in 256 bytes. */
    size_t o = (size_t)snprintf(buf, len, "(");

    for (int d = 0; d < ndim && o < len; d++) {
        o += (size_t)snprintf(buf + o, len - o, d ? ",%lld" : "%lld", (long long)shape[d]);
    }
    if (o < len) {
        snprintf(buf + o, len - o, ")");
    }
}

genie_status_t genie_exec_register_weight(genie_exec_t *exec, uint64_t fingerprint,
                                          genie_dtype_t dtype, int ndim,
                                          const int64_t *shape, const void *host,
                                          const char *name)
{
    genie_tensor_t h = { .dtype = dtype, .ndim = ndim };
    genie_storage_t hs = { .data = (void *)host, .refcount = 1 };
    genie_tensor_t t;
    genie_status_t st;
    const char *why;
    uint64_t nbytes;

    if (genie_u64map_get(&exec->weights, fingerprint) != NULL) {
        return GENIE_OK;
    }
    if ((why = genie_shape_problem(dtype, ndim, shape, &nbytes)) != NULL) {
        return genie_set_error(GENIE_ERR_INVALID, "executor: weight %s %s",
                               name ? name : "?", why);
    }
    st = budget_check(exec, nbytes, 0, "weight %s", name ? name : "?");
    if (st != GENIE_OK) {
        return st;
    }
    memcpy(h.shape, shape, sizeof(int64_t) * (size_t)ndim);
    genie_tensor_set_contiguous_strides(&h);
    hs.nbytes = genie_tensor_nbytes(&h);
    h.storage = &hs;
    st = upload(exec, &h, &t);
    if (st != GENIE_OK) {
        return st;
    }
    st = genie_u64map_put(&exec->weights, fingerprint, &t, name);
    if (st != GENIE_OK) {
        genie_tensor_release(&t);
        return st;
    }
    exec->stats.weights++;
    exec->stats.weight_bytes += hs.nbytes;
    return GENIE_OK;
}

int genie_exec_has_weight(const genie_exec_t *exec, uint64_t fingerprint)
{
    return genie_u64map_get(&exec->weights, fingerprint) != NULL;
}

void genie_exec_free_objects(genie_exec_t *exec, const uint64_t *ids, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        genie_u64map_entry_t *e = genie_u64map_get(&exec->objects, ids[i]);
        if (e != NULL) {
            exec->stats.resident_bytes -= genie_tensor_nbytes(&e->tensor);
            genie_u64map_del(&exec->objects, ids[i]);
        }
    }
    exec->stats.residents = exec->objects.count;
}

static genie_status_t download(genie_exec_t *exec, const genie_tensor_t *src,
                               genie_tensor_t *out_p)
{
    genie_tensor_t h;
    genie_status_t st;

    st = genie_tensor_alloc(src->dtype, src->ndim, src->shape, &h);
    if (st != GENIE_OK) {
        return st;
    }
    st = exec->backend->iface->download(exec->backend, src, genie_tensor_data(&h));
    if (st != GENIE_OK) {
        genie_tensor_release(&h);
        return st;
    }
    *out_p = h;
    return GENIE_OK;
}

genie_status_t genie_exec_fetch(genie_exec_t *exec, uint64_t object_id, genie_tensor_t *out_p)
{
    genie_u64map_entry_t *e = genie_u64map_get(&exec->objects, object_id);
    genie_status_t st;

    if (e == NULL) {
        return genie_set_error(GENIE_ERR_NOT_FOUND, "executor: no resident object %llu",
                               (unsigned long long)object_id);
    }
    st = budget_check(exec, genie_tensor_nbytes(&e->tensor), 0, "a copy of object %llu",
                      (unsigned long long)object_id);
    if (st != GENIE_OK) {
        return st;
    }
    return download(exec, &e->tensor, out_p);
}

genie_status_t genie_exec_object(const genie_exec_t *exec, uint64_t object_id,
                                 const genie_tensor_t **t_p, uint64_t *session_p)
{
    genie_u64map_entry_t *e = genie_u64map_get(&exec->objects, object_id);

    if (e == NULL) {
        return genie_set_error(GENIE_ERR_NOT_FOUND, "executor: no resident object %llu",
                               (unsigned long long)object_id);
    }
    *t_p       = &e->tensor;
    *session_p = e->session;
    return GENIE_OK;
}

int genie_exec_host_memory(const genie_exec_t *exec)
{
    return exec->backend->iface->host_memory;
}

genie_status_t genie_exec_put_object(genie_exec_t *exec, uint64_t object_id, uint64_t session,
                                     genie_tensor_t *t)
{
    genie_u64map_entry_t *old;
    genie_tensor_t        obj;
    genie_status_t        st;
    const char           *why;
    uint64_t              nbytes;

    if (object_id == 0 || object_id == UINT64_MAX) {
        return genie_set_error(GENIE_ERR_INVALID, "executor: object id %llu is reserved",
                               (unsigned long long)object_id);
    }
    if (t->storage == NULL) {
        return genie_set_error(GENIE_ERR_INVALID, "executor: object %llu has no data",
                               (unsigned long long)object_id);
    }
    if ((why = genie_shape_problem(t->dtype, t->ndim, t->shape, &nbytes)) != NULL) {
        return genie_set_error(GENIE_ERR_INVALID, "executor: object %llu %s",
                               (unsigned long long)object_id, why);
    }
    old = genie_u64map_get(&exec->objects, object_id);
    /* A host_memory backend adopts the received storage rather than copying
     * it, but the object is resident all the same: it counts either way. */
    st = budget_check(exec, nbytes, old != NULL ? genie_tensor_nbytes(&old->tensor) : 0,
                      "object %llu", (unsigned long long)object_id);
    if (st != GENIE_OK) {
        return st;
    }
    if (exec->backend->iface->host_memory) {
        obj = *t;
    } else {
        st = upload(exec, t, &obj);
        if (st != GENIE_OK) {
            return st;
        }
    }
    old = genie_u64map_get(&exec->objects, object_id);
    if (old != NULL) {
        exec->stats.resident_bytes -= genie_tensor_nbytes(&old->tensor);
    }
    st = genie_u64map_put(&exec->objects, object_id, &obj, NULL);
    if (st != GENIE_OK) {
        if (!exec->backend->iface->host_memory) {
            genie_tensor_release(&obj);
        }
        if (old != NULL) {
            exec->stats.resident_bytes += genie_tensor_nbytes(&old->tensor);
        }
        return st;
    }
    genie_u64map_get(&exec->objects, object_id)->session = session;
    exec->stats.resident_bytes += genie_tensor_nbytes(&obj);
    exec->stats.residents = exec->objects.count;
    if (!exec->backend->iface->host_memory) {
        genie_tensor_release(t);
    }
    memset(t, 0, sizeof(*t));
    return GENIE_OK;
}

/* Bind a source value (INPUT / WEIGHT / RESIDENT) to a backend tensor. */
static genie_status_t bind_source(genie_exec_t *exec, const genie_srg_value_t *v, uint32_t id,
                                  const genie_tensor_t *inputs, uint32_t n_inputs,
                                  genie_tensor_t *t_p)
{
    genie_u64map_entry_t *e;
    char want[256], have[256];
    genie_status_t st;

    switch (v->kind) {
    case GENIE_VAL_INPUT:
        if (v->ref >= n_inputs) {
            return genie_set_error(GENIE_ERR_INVALID,
                                   "executor: value %u reads input slot %llu but only %u inputs were sent",
                                   id, (unsigned long long)v->ref, n_inputs);
        }
        if (!same_meta(&inputs[v->ref], v->dtype, v->ndim, v->shape)) {
            format_shape(want, sizeof(want), v->ndim, v->shape);
            format_shape(have, sizeof(have), inputs[v->ref].ndim, inputs[v->ref].shape);
            return genie_set_error(GENIE_ERR_SHAPE,
                                   "executor: input slot %llu is %s %s, graph expects %s %s",
                                   (unsigned long long)v->ref,
                                   genie_dtype_name(inputs[v->ref].dtype), have,
                                   genie_dtype_name(v->dtype), want);
        }
        st = budget_check(exec, genie_tensor_nbytes(&inputs[v->ref]), 0, "input slot %llu",
                          (unsigned long long)v->ref);
        if (st == GENIE_OK) {
            st = upload(exec, &inputs[v->ref], t_p);
        }
        if (st != GENIE_OK) {
            return st;
        }
        exec->stats.input_bytes += genie_tensor_nbytes(&inputs[v->ref]);
        exec->run_bytes = add_sat(exec->run_bytes, t_p->storage->nbytes);
        return GENIE_OK;
    case GENIE_VAL_WEIGHT:
    case GENIE_VAL_RESIDENT:
        e = genie_u64map_get(v->kind == GENIE_VAL_WEIGHT ? &exec->weights : &exec->objects,
                             v->ref);
        if (e == NULL) {
            return genie_set_error(GENIE_ERR_NOT_FOUND, "executor: %s %016llx (%s) is not on this executor",
                                   v->kind == GENIE_VAL_WEIGHT ? "weight" : "object",
                                   (unsigned long long)v->ref, v->name[0] ? v->name : "unnamed");
        }
        if (!same_meta(&e->tensor, v->dtype, v->ndim, v->shape)) {
            format_shape(want, sizeof(want), v->ndim, v->shape);
            format_shape(have, sizeof(have), e->tensor.ndim, e->tensor.shape);
            return genie_set_error(GENIE_ERR_SHAPE,
                                   "executor: %s %016llx is %s %s, graph expects %s %s",
                                   v->kind == GENIE_VAL_WEIGHT ? "weight" : "object",
                                   (unsigned long long)v->ref, genie_dtype_name(e->tensor.dtype),
                                   have, genie_dtype_name(v->dtype), want);
        }
        genie_tensor_share(&e->tensor, t_p);
        return GENIE_OK;
    default:
        return genie_set_error(GENIE_ERR_INVALID, "executor: value %u has kind %d", id, (int)v->kind);
    }
}

static int value_pinned(const genie_srg_value_t *v)
{
    return v->is_output || v->keep_id != 0;
}

/* Release a value the run holds; when that frees a storage the run made
 * (an input upload, a node output, or a view of one), its bytes leave
 * run_bytes.  Weights and objects keep a reference of their own, so their
 * storages never reach refcount 1 here. */
static void run_release(genie_exec_t *exec, genie_tensor_t *t)
{
    if (t->storage != NULL && t->storage->refcount == 1) {
        exec->run_bytes = sub_floor(exec->run_bytes, t->storage->nbytes);
    }
    genie_tensor_release(t);
}

/* What node n needs before it runs: its outputs (unless it is a view), and
 * an f32 copy of each input that is a broadcast view (more elements than its
 * storage holds), which a backend may stage: expand((1,1) -> (2^15,2^15))
 * costs nothing as a view but 4 GiB as a copy. */
static uint64_t node_need(const genie_srg_t *srg, const genie_srg_node_t *n, int is_view,
                          const genie_tensor_t *vals)
{
    uint64_t need = 0;

    for (uint32_t o = 0; o < n->n_out && !is_view; o++) {
        need = add_sat(need, genie_srg_value_nbytes(genie_srg_value(srg, n->out[o])));
    }
    for (uint32_t i = 0; i < n->n_in; i++) {
        const genie_tensor_t *t = n->in[i] == GENIE_SRG_NONE ? NULL : &vals[n->in[i]];
        uint64_t numel, es;

        if (t == NULL || t->storage == NULL) {
            continue;
        }
        numel = (uint64_t)genie_tensor_numel(t);
        es = genie_dtype_size(t->dtype);
        if (mul_sat(numel, es) > t->storage->nbytes) {
            need = add_sat(need, mul_sat(numel, es > 4 ? es : 4));
        }
    }
    return need;
}

/* Run one node: allocate its outputs (unless it is a view), call the backend. */
static genie_status_t run_node(genie_exec_t *exec, const genie_srg_t *srg,
                               const genie_srg_node_t *n, uint32_t idx, genie_tensor_t *vals)
{
    const genie_tensor_t *in_stack[16];
    const genie_tensor_t **in = in_stack;
    genie_op_fn fn = exec->backend->iface->ops[n->op];
    int is_view = (genie_op_flags(n->op) & GENIE_OPF_VIEW) != 0;
    genie_op_call_t call;
    genie_status_t st = GENIE_OK;
    double t0;

    if (fn == NULL) {
        return genie_set_error(GENIE_ERR_UNSUPPORTED,
                               "executor: op %s (node %u, module '%s') is not implemented on the %s backend",
                               genie_op_name(n->op), idx, n->module_path,
                               exec->backend->iface->name);
    }
    st = budget_check(exec, node_need(srg, n, is_view, vals), 0, "node %u (%s)", idx,
                      genie_op_name(n->op));
    if (st != GENIE_OK) {
        return st;
    }
    if (n->n_in > 16 && (in = malloc(sizeof(*in) * n->n_in)) == NULL) {
        return genie_set_error(GENIE_ERR_NOMEM, "executor: out of memory");
    }
    for (uint32_t i = 0; i < n->n_in; i++) {
        in[i] = n->in[i] == GENIE_SRG_NONE ? NULL : &vals[n->in[i]];
    }
    for (uint32_t o = 0; o < n->n_out; o++) {
        const genie_srg_value_t *v = genie_srg_value(srg, n->out[o]);
        genie_tensor_t *t = &vals[n->out[o]];
        if (is_view) {
            memset(t, 0, sizeof(*t));
            t->dtype = v->dtype;
            t->ndim  = v->ndim;
            memcpy(t->shape, v->shape, sizeof(int64_t) * (size_t)v->ndim);
        } else {
            st = backend_alloc(exec, v->dtype, v->ndim, v->shape, t);
            if (st != GENIE_OK) {
                goto out;
            }
            exec->run_bytes = add_sat(exec->run_bytes, t->storage->nbytes);
        }
    }
    call = (genie_op_call_t){ .backend = exec->backend, .node = n, .in = in, .n_in = n->n_in,
                              .out = &vals[n->out[0]], .n_out = n->n_out };
    /* Node outputs are consecutive value ids (the builder and the decoder both
     * guarantee it), so out[] can point straight into the value array. */
    t0 = now_s();
    st = fn(&call);
    t0 = now_s() - t0;
    exec->stats.compute_s += t0;
    exec->stats.phase_s[n->phase] += t0;
    exec->stats.nodes_run++;
    if (st != GENIE_OK) {
        goto out;
    }
    for (uint32_t o = 0; o < n->n_out; o++) {
        const genie_srg_value_t *v = genie_srg_value(srg, n->out[o]);
        if (vals[n->out[o]].storage == NULL ||
            !same_meta(&vals[n->out[o]], v->dtype, v->ndim, v->shape)) {
            st = genie_set_error(GENIE_ERR_BACKEND,
                                 "executor: op %s (module '%s') produced output %u with the wrong shape or dtype",
                                 genie_op_name(n->op), n->module_path, o);
            goto out;
        }
    }
out:
    if (in != in_stack) {
        free(in);
    }
    return st;
}

/* Check the invariant run_node relies on: a node's outputs are consecutive. */
/* What the run relies on beyond the decoder's rules: each node's outputs
 * are consecutive values, and no value is kept under a reserved id. */
static genie_status_t check_outputs_consecutive(const genie_srg_t *srg)
{
    for (uint32_t i = 0; i < genie_srg_n_nodes(srg); i++) {
        const genie_srg_node_t *n = genie_srg_node(srg, i);
        for (uint32_t o = 1; o < n->n_out; o++) {
            if (n->out[o] != n->out[0] + o) {
                return genie_set_error(GENIE_ERR_CORRUPT,
                                       "executor: node %u outputs are not consecutive values", i);
            }
        }
        if (n->n_out == 0) {
            return genie_set_error(GENIE_ERR_CORRUPT, "executor: node %u has no outputs", i);
        }
    }
    /* Refused here, before anything runs, rather than at the commit, where
     * kept values before it would already be in the object table. */
    for (uint32_t v = 0; v < genie_srg_n_values(srg); v++) {
        if (genie_srg_value(srg, v)->keep_id == UINT64_MAX) {
            return genie_set_error(GENIE_ERR_INVALID,
                                   "executor: value %u is kept under object id %llu, which is reserved",
                                   v, (unsigned long long)UINT64_MAX);
        }
    }
    return GENIE_OK;
}

genie_status_t genie_exec_run(genie_exec_t *exec, const genie_srg_t *srg,
                              const genie_tensor_t *inputs, uint32_t n_inputs,
                              genie_tensor_t **outputs_p, uint32_t *n_outputs_p)
{
    uint32_t nv = genie_srg_n_values(srg), nn = genie_srg_n_nodes(srg);
    genie_tensor_t *vals = NULL, *outs = NULL;
    int64_t *last_use = NULL;
    uint32_t n_out = 0, k = 0;
    genie_status_t st;

    st = check_outputs_consecutive(srg);
    if (st != GENIE_OK) {
        return st;
    }
    exec->run_bytes = 0;
    vals     = calloc(nv ? nv : 1, sizeof(*vals));
    last_use = malloc(sizeof(*last_use) * (nv ? nv : 1));
    if (vals == NULL || last_use == NULL) {
        st = genie_set_error(GENIE_ERR_NOMEM, "executor: out of memory");
        goto err_free;
    }
    for (uint32_t v = 0; v < nv; v++) {
        last_use[v] = -1;
        n_out += genie_srg_value(srg, v)->is_output ? 1 : 0;
    }
    for (uint32_t i = 0; i < nn; i++) {
        const genie_srg_node_t *n = genie_srg_node(srg, i);
        for (uint32_t j = 0; j < n->n_in; j++) {
            if (n->in[j] != GENIE_SRG_NONE) {
                last_use[n->in[j]] = i;
            }
        }
    }
    for (uint32_t v = 0; v < nv; v++) {
        const genie_srg_value_t *val = genie_srg_value(srg, v);
        if (val->kind != GENIE_VAL_NODE) {
            st = bind_source(exec, val, v, inputs, n_inputs, &vals[v]);
            if (st != GENIE_OK) {
                goto err_release;
            }
        }
    }
    for (uint32_t i = 0; i < nn; i++) {
        const genie_srg_node_t *n = genie_srg_node(srg, i);
        st = run_node(exec, srg, n, i, vals);
        if (st != GENIE_OK) {
            goto err_release;
        }
        if (exec->tick != NULL) {
            double t = now_s();
            if (t - exec->tick_t >= 0.02) {
                exec->tick_t = t;
                exec->tick(exec->tick_arg);
            }
        }
        if (exec->run_bytes > exec->stats.peak_bytes) {
            exec->stats.peak_bytes = exec->run_bytes;
        }
        /* Release what this node was the last consumer of, and outputs that
         * nobody consumes (e.g. layer_norm's mean/rstd). */
        for (uint32_t j = 0; j < n->n_in; j++) {
            uint32_t v = n->in[j];
            if (v != GENIE_SRG_NONE && last_use[v] == (int64_t)i &&
                !value_pinned(genie_srg_value(srg, v)) && vals[v].storage != NULL) {
                run_release(exec, &vals[v]);
            }
        }
        for (uint32_t o = 0; o < n->n_out; o++) {
            uint32_t v = n->out[o];
            if (last_use[v] < 0 && !value_pinned(genie_srg_value(srg, v))) {
                run_release(exec, &vals[v]);
            }
        }
    }
    if (n_out > 0 && (outs = calloc(n_out, sizeof(*outs))) == NULL) {
        st = genie_set_error(GENIE_ERR_NOMEM, "executor: out of memory");
        goto err_release;
    }
    for (uint32_t v = 0; v < nv; v++) {
        if (genie_srg_value(srg, v)->is_output) {
            st = budget_check(exec, genie_tensor_nbytes(&vals[v]), 0, "output value %u", v);
            if (st == GENIE_OK) {
                st = download(exec, &vals[v], &outs[k]);
            }
            if (st != GENIE_OK) {
                goto err_release;
            }
            exec->run_bytes = add_sat(exec->run_bytes, genie_tensor_nbytes(&outs[k]));
            if (exec->run_bytes > exec->stats.peak_bytes) {
                exec->stats.peak_bytes = exec->run_bytes;
            }
            exec->stats.output_bytes += genie_tensor_nbytes(&outs[k]);
            k++;
        }
    }
    /* Commit: from here on nothing can fail except the table insert itself. */
    for (uint32_t v = 0; v < nv; v++) {
        const genie_srg_value_t *val = genie_srg_value(srg, v);
        if (val->keep_id != 0) {
            genie_u64map_entry_t *old = genie_u64map_get(&exec->objects, val->keep_id);
            genie_tensor_t kept;
            if (old != NULL) {
                exec->stats.resident_bytes -= genie_tensor_nbytes(&old->tensor);
            }
            genie_tensor_share(&vals[v], &kept);
            st = genie_u64map_put(&exec->objects, val->keep_id, &kept, NULL);
            if (st != GENIE_OK) {
                genie_tensor_release(&kept);
                goto err_release;
            }
            exec->stats.resident_bytes += genie_tensor_nbytes(&vals[v]);
        }
    }
    exec->stats.residents = exec->objects.count;
    exec->stats.requests++;
    for (uint32_t v = 0; v < nv; v++) {
        genie_tensor_release(&vals[v]);
    }
    exec->run_bytes = 0;
    free(vals);
    free(last_use);
    *outputs_p   = outs;
    *n_outputs_p = n_out;
    return GENIE_OK;

err_release:
    for (uint32_t v = 0; v < nv; v++) {
        genie_tensor_release(&vals[v]);
    }
    for (uint32_t i = 0; i < k; i++) {
        genie_tensor_release(&outs[i]);
    }
    free(outs);
err_free:
    exec->run_bytes = 0;
    free(vals);
    free(last_use);
    return st;
}

genie_status_t genie_exec_session_bind(genie_exec_t *exec, uint64_t session,
                                       const uint64_t *ids, uint32_t n)
{
    if (session == 0) {
        return genie_set_error(GENIE_ERR_INVALID, "executor: session id 0 is reserved");
    }
    /* Check every id first so that a bad request binds nothing. */
    for (uint32_t i = 0; i < n; i++) {
        if (genie_u64map_get(&exec->objects, ids[i]) == NULL) {
            return genie_set_error(GENIE_ERR_NOT_FOUND,
                                   "executor: session %llu: no resident object %llu to bind",
                                   (unsigned long long)session, (unsigned long long)ids[i]);
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        genie_u64map_get(&exec->objects, ids[i])->session = session;
    }
    return GENIE_OK;
}

uint32_t genie_exec_session_end(genie_exec_t *exec, uint64_t session)
{
    genie_u64map_t *m = &exec->objects;
    uint32_t freed = 0;

    if (session == 0) {
        return 0;
    }
    for (uint64_t i = 0; i < m->cap; i++) {
        genie_u64map_entry_t *e = &m->slots[i];
        if (e->key != 0 && e->key != UINT64_MAX && e->session == session) {
            exec->stats.resident_bytes -= genie_tensor_nbytes(&e->tensor);
            genie_u64map_del(m, e->key);
            freed++;
        }
    }
    exec->stats.residents = m->count;
    return freed;
}

void genie_exec_session_info(const genie_exec_t *exec, uint64_t session,
                             uint32_t *n_objects_p, uint64_t *bytes_p)
{
    const genie_u64map_t *m = &exec->objects;
    uint32_t n = 0;
    uint64_t bytes = 0;

    for (uint64_t i = 0; session != 0 && i < m->cap; i++) {
        const genie_u64map_entry_t *e = &m->slots[i];
        if (e->key != 0 && e->key != UINT64_MAX && e->session == session) {
            n++;
            bytes += genie_tensor_nbytes(&e->tensor);
        }
    }
    *n_objects_p = n;
    *bytes_p = bytes;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return (x > y) - (x < y);
}

void genie_exec_get_stats(const genie_exec_t *exec, genie_exec_stats_t *stats_p)
{
    const genie_u64map_t *m = &exec->objects;
    genie_exec_stats_t s = exec->stats;
    uint64_t *owners = malloc(sizeof(*owners) * (size_t)(m->count ? m->count : 1));
    uint64_t k = 0;

    s.memory_in_use_bytes = in_use(exec);
    /* Sessions are derived from the object table (no second structure to
     * keep consistent); stats are not on a hot path. */
    s.sessions = 0;
    s.session_bytes = 0;
    for (uint64_t i = 0; i < m->cap; i++) {
        const genie_u64map_entry_t *e = &m->slots[i];
        if (e->key != 0 && e->key != UINT64_MAX && e->session != 0) {
            s.session_bytes += genie_tensor_nbytes(&e->tensor);
            if (owners != NULL) {
                owners[k++] = e->session;
            }
        }
    }
    if (owners != NULL) {
        qsort(owners, k, sizeof(*owners), cmp_u64);
        for (uint64_t i = 0; i < k; i++) {
            s.sessions += i == 0 || owners[i] != owners[i - 1];
        }
        free(owners);
    }
    *stats_p = s;
}

/*
 * genie._C.Cluster: the driver's connection to the executor ranks of a job
 * started by genie-launch (or srun --genie-phases).  A thin layer over
 * genie/client.h: Python passes tensors as (dtype, shape, data_ptr) triples
 * and gets results as (dtype, shape, HostBuffer) without copies.
 *
 * The Python process is MPI rank 0.  The extension module is loaded with
 * RTLD_LOCAL, which hides libmpi's symbols from the MCA components Open MPI
 * dlopens during MPI_Init; the module therefore re-opens libmpi with
 * RTLD_GLOBAL before initialising MPI (mpi4py does the same).
 *
 * Errors: a failed request raises GenieError with the executor's reason; a
 * lost executor (dead, or ended because it stopped answering) raises
 * ExecutorLostError (a GenieError) naming the rank, its slice, pid and host,
 * with the lost rank as its `rank` attribute (a handoff can lose the
 * destination, not the rank it was sent to).
 *
 * Threads: the client (and UCX below it) is used by one thread at a time.
 * Every call into it holds the cluster's lock; calls that wait release the
 * GIL first, so other Python threads run meanwhile but never enter UCX.
 */
#include "pygenie.h"

#ifdef GENIE_HAVE_CLUSTER

#include <dlfcn.h>
#include <errno.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "genie/client.h"

PyObject *GeniePy_ExecutorLostError;

typedef struct {
    PyObject_HEAD
    genie_client_t    *client;
    PyThread_type_lock lock;      /* serialises every call into client */
} GeniePyCluster;

/* Around a client call that waits: the GIL is released, the lock held.  The
 * lock is released before the GIL is taken back, so a thread holding the GIL
 * while it waits for the lock (LOCK_HELD below) cannot deadlock with us. */
static genie_status_t closed_status(void)
{
    return genie_set_error(GENIE_ERR_INVALID, "the cluster connection is closed");
}

/* st = call, under the lock, with the GIL released; the client may have been
 * closed by another thread while we waited for the lock. */
#define CLIENT_CALL(self, st, call)                                            \
    do {                                                                       \
        Py_BEGIN_ALLOW_THREADS                                                 \
        PyThread_acquire_lock((self)->lock, WAIT_LOCK);                        \
        (st) = (self)->client != NULL ? (call) : closed_status();             \
        PyThread_release_lock((self)->lock);                                   \
        Py_END_ALLOW_THREADS                                                   \
    } while (0)

/* For the short calls that build Python objects (callbacks) or that touch
 * Python buffers: the GIL stays held, the lock is taken without it. */
static void lock_held(GeniePyCluster *self)
{
    if (!PyThread_acquire_lock(self->lock, NOWAIT_LOCK)) {
        Py_BEGIN_ALLOW_THREADS
        PyThread_acquire_lock(self->lock, WAIT_LOCK);
        Py_END_ALLOW_THREADS
    }
}

static void unlock_held(GeniePyCluster *self)
{
    PyThread_release_lock(self->lock);
}

static PyObject *raise_lost(GeniePyCluster *self, const char *msg)
{
    PyObject *e = PyObject_CallFunction(GeniePy_ExecutorLostError, "s", msg);
    int32_t   r = self->client != NULL ? genie_client_last_lost(self->client) : -1;

    if (e != NULL) {
        PyObject *rank = r >= 0 ? PyLong_FromLong(r) : (Py_INCREF(Py_None), Py_None);
        if (rank != NULL) {
            (void)PyObject_SetAttrString(e, "rank", rank);
            Py_DECREF(rank);
        }
        PyErr_SetObject(GeniePy_ExecutorLostError, e);
        Py_DECREF(e);
    }
    return NULL;
}

static PyObject *raise_st(GeniePyCluster *self, const char *what, genie_status_t st)
{
    if (st == GENIE_ERR_PEER_LOST) {
        char msg[1200];
        snprintf(msg, sizeof(msg), "genie: %s: %s", what, genie_last_error());
        return raise_lost(self, msg);
    }
    PyErr_Format(GeniePy_Error, "genie: %s: %s", what, genie_last_error());
    return NULL;
}

static int open_ok(GeniePyCluster *self)
{
    if (self->client == NULL) {
        PyErr_SetString(GeniePy_Error, "genie: the cluster connection is closed");
        return 0;
    }
    return 1;
}

static int cluster_init(GeniePyCluster *self, PyObject *args, PyObject *kw)
{
    genie_status_t st;
    int            inited = 0;

    if (!PyArg_ParseTuple(args, "") || (kw != NULL && PyDict_Size(kw) > 0)) {
        PyErr_SetString(PyExc_TypeError, "genie: Cluster() takes no arguments");
        return -1;
    }
    if (self->client != NULL) {
        PyErr_SetString(GeniePy_Error, "genie: Cluster is already open");
        return -1;
    }
    MPI_Initialized(&inited);
    if (!inited) {
        /* Promote libmpi to global scope for Open MPI's components. */
        (void)dlopen("libmpi.so.40", RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
    }
    if (self->lock == NULL && (self->lock = PyThread_allocate_lock()) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_BEGIN_ALLOW_THREADS
    PyThread_acquire_lock(self->lock, WAIT_LOCK);
    st = genie_client_open(&self->client);
    PyThread_release_lock(self->lock);
    Py_END_ALLOW_THREADS
    if (st != GENIE_OK) {
        raise_st(self, "cannot join the job's executors", st);
        return -1;
    }
    return 0;
}

static void cluster_dealloc(GeniePyCluster *self)
{
    if (self->client != NULL) {
        genie_client_close(self->client, 0);
        self->client = NULL;
    }
    if (self->lock != NULL) {
        PyThread_free_lock(self->lock);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* close(): SHUTDOWN to every live executor, then MPI_Finalize.  Idempotent. */
static PyObject *cluster_close(GeniePyCluster *self, PyObject *noargs)
{
    (void)noargs;
    if (self->client != NULL) {
        Py_BEGIN_ALLOW_THREADS
        PyThread_acquire_lock(self->lock, WAIT_LOCK);
        if (self->client != NULL) {
            genie_client_close(self->client, 0);
            self->client = NULL;
        }
        PyThread_release_lock(self->lock);
        Py_END_ALLOW_THREADS
    }
    Py_RETURN_NONE;
}

/* executors() -> [dict(rank, phase, slice, host, pid, backend, threads)] */
static PyObject *cluster_executors(GeniePyCluster *self, PyObject *noargs)
{
    genie_ucx_t *u;
    PyObject    *list;

    (void)noargs;
    if (!open_ok(self)) {
        return NULL;
    }
    u = genie_client_ucx(self->client);
    if ((list = PyList_New(0)) == NULL) {
        return NULL;
    }
    for (int32_t r = 1; r < genie_ucx_size(u); r++) {
        const genie_ucx_peer_info_t *p = genie_ucx_peer(u, r);
        PyObject *d = Py_BuildValue("{s:i,s:s,s:I,s:s,s:I,s:s,s:I}", "rank", (int)r, "phase", p->phase,
                                    "slice", p->slice, "host", p->host, "pid", p->pid,
                                    "backend", p->backend, "threads", p->threads);
        if (d == NULL || PyList_Append(list, d) < 0) {
            Py_XDECREF(d);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(d);
    }
    return list;
}

/* register_weight(rank, fp, dtype, shape, data_ptr, name) */
static PyObject *cluster_register_weight(GeniePyCluster *self, PyObject *args)
{
    int                rank, dtype;
    unsigned long long fp, ptr;
    PyObject          *shape, *triple;
    const char        *name;
    genie_tensor_t     t;
    genie_storage_t    s;
    genie_status_t     st;

    if (!open_ok(self) || !PyArg_ParseTuple(args, "iKiOKs", &rank, &fp, &dtype, &shape, &ptr, &name)) {
        return NULL;
    }
    if ((triple = Py_BuildValue("(iOK)", dtype, shape, ptr)) == NULL) {
        return NULL;
    }
    if (geniepy_parse_host(triple, &t, &s) != 0) {
        Py_DECREF(triple);
        return NULL;
    }
    Py_DECREF(triple);
    CLIENT_CALL(self, st, genie_client_weight(self->client, rank, fp, name, &t));
    if (st != GENIE_OK) {
        return raise_st(self, "register weight", st);
    }
    Py_RETURN_NONE;
}

/* submit(rank, srg_bytes, [(dtype, shape, ptr), ...]) -> ticket */
static PyObject *cluster_submit(GeniePyCluster *self, PyObject *args)
{
    int              rank;
    Py_buffer        srg;
    PyObject        *in_list;
    genie_tensor_t  *inputs = NULL;
    genie_storage_t *stores = NULL;
    Py_ssize_t       n = 0;
    uint32_t         ticket = 0;
    genie_status_t   st;

    if (!open_ok(self) || !PyArg_ParseTuple(args, "iy*O!", &rank, &srg, &PyList_Type, &in_list)) {
        return NULL;
    }
    n = PyList_GET_SIZE(in_list);
    inputs = calloc((size_t)n + 1, sizeof(*inputs));
    stores = calloc((size_t)n + 1, sizeof(*stores));
    if (inputs == NULL || stores == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (geniepy_parse_host(PyList_GET_ITEM(in_list, i), &inputs[i], &stores[i]) != 0) {
            goto out;
        }
    }
    lock_held(self);
    st = self->client != NULL ? genie_client_submit(self->client, rank, srg.buf, (size_t)srg.len,
                                                    inputs, (uint32_t)n, &ticket) : closed_status();
    unlock_held(self);
    if (st != GENIE_OK) {
        raise_st(self, "submit", st);
        ticket = 0;
    }
out:
    free(inputs);
    free(stores);
    PyBuffer_Release(&srg);
    if (ticket == 0) {
        return NULL;
    }
    return PyLong_FromUnsignedLong(ticket);
}

static PyObject *outputs_to_list(genie_tensor_t *outs, uint32_t n)
{
    PyObject *list = PyList_New(n);
    for (uint32_t i = 0; i < n; i++) {
        PyObject *o = list != NULL ? geniepy_host_to_py(&outs[i]) : NULL;
        if (o == NULL) {
            for (uint32_t j = i; j < n; j++) {
                genie_tensor_release(&outs[j]);
            }
            Py_XDECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, o);
    }
    return list;
}

/* wait(ticket) -> [(dtype, shape, HostBuffer), ...] */
static PyObject *cluster_wait(GeniePyCluster *self, PyObject *arg)
{
    unsigned long   ticket;
    genie_tensor_t *outs = NULL;
    uint32_t        n = 0;
    double          compute = 0;
    genie_status_t  st;
    PyObject       *list;

    if (!open_ok(self)) {
        return NULL;
    }
    ticket = PyLong_AsUnsignedLong(arg);
    if (PyErr_Occurred()) {
        return NULL;
    }
    CLIENT_CALL(self, st, genie_client_wait(self->client, (uint32_t)ticket, &outs, &n, &compute));
    if (st != GENIE_OK) {
        return raise_st(self, "request failed", st);
    }
    list = outputs_to_list(outs, n);
    free(outs);
    return list;
}

/* run(rank, srg, inputs) == wait(submit(...)) */
static PyObject *cluster_run(GeniePyCluster *self, PyObject *args)
{
    PyObject *ticket = cluster_submit(self, args), *res;
    if (ticket == NULL) {
        return NULL;
    }
    res = cluster_wait(self, ticket);
    Py_DECREF(ticket);
    return res;
}

/* free(rank, ids): fire-and-forget */
static PyObject *cluster_free(GeniePyCluster *self, PyObject *args)
{
    int            rank;
    PyObject      *list;
    Py_ssize_t     n = 0;
    uint64_t      *ids;
    genie_status_t st;

    if (!open_ok(self) || !PyArg_ParseTuple(args, "iO", &rank, &list) ||
        (ids = geniepy_parse_ids(list, &n)) == NULL) {
        return NULL;
    }
    lock_held(self);
    st = self->client == NULL ? closed_status()
         : n > 0 ? genie_client_free(self->client, rank, ids, (uint32_t)n) : GENIE_OK;
    unlock_held(self);
    free(ids);
    if (st != GENIE_OK) {
        return raise_st(self, "free", st);
    }
    Py_RETURN_NONE;
}

/* fetch(rank, id) -> (dtype, shape, HostBuffer) */
static PyObject *cluster_fetch(GeniePyCluster *self, PyObject *args)
{
    int                rank;
    unsigned long long id;
    genie_tensor_t     t;
    genie_status_t     st;

    if (!open_ok(self) || !PyArg_ParseTuple(args, "iK", &rank, &id)) {
        return NULL;
    }
    CLIENT_CALL(self, st, genie_client_fetch(self->client, rank, id, &t));
    if (st != GENIE_OK) {
        return raise_st(self, "fetch", st);
    }
    return geniepy_host_to_py(&t);
}

/* bind_session(rank, session, ids) */
static PyObject *cluster_bind_session(GeniePyCluster *self, PyObject *args)
{
    int                rank;
    unsigned long long session;
    PyObject          *list;
    Py_ssize_t         n = 0;
    uint64_t          *ids;
    genie_status_t     st;

    if (!open_ok(self) || !PyArg_ParseTuple(args, "iKO", &rank, &session, &list) ||
        (ids = geniepy_parse_ids(list, &n)) == NULL) {
        return NULL;
    }
    CLIENT_CALL(self, st, genie_client_bind(self->client, rank, session, ids, (uint32_t)n));
    free(ids);
    if (st != GENIE_OK) {
        return raise_st(self, "bind session", st);
    }
    Py_RETURN_NONE;
}

/* end_session(rank, session) -> objects freed */
static PyObject *cluster_end_session(GeniePyCluster *self, PyObject *args)
{
    int                rank;
    unsigned long long session;
    uint32_t           n = 0;
    genie_status_t     st;

    if (!open_ok(self) || !PyArg_ParseTuple(args, "iK", &rank, &session)) {
        return NULL;
    }
    CLIENT_CALL(self, st, genie_client_end_session(self->client, rank, session, &n));
    if (st != GENIE_OK) {
        return raise_st(self, "end session", st);
    }
    return PyLong_FromUnsignedLong(n);
}

/* session_info(rank, session) -> (objects, bytes) */
static PyObject *cluster_session_info(GeniePyCluster *self, PyObject *args)
{
    int                rank;
    unsigned long long session;
    uint32_t           n = 0;
    uint64_t           bytes = 0;
    genie_status_t     st;

    if (!open_ok(self) || !PyArg_ParseTuple(args, "iK", &rank, &session)) {
        return NULL;
    }
    CLIENT_CALL(self, st, genie_client_session_info(self->client, rank, session, &n, &bytes));
    if (st != GENIE_OK) {
        return raise_st(self, "session info", st);
    }
    return Py_BuildValue("(IK)", n, (unsigned long long)bytes);
}

/* handoff(src, dst, session, ids) -> dict(bytes, seconds) */
static PyObject *cluster_handoff(GeniePyCluster *self, PyObject *args)
{
    int                src, dst;
    unsigned long long session;
    PyObject          *list;
    Py_ssize_t         n = 0;
    uint64_t          *ids, bytes = 0;
    double             secs = 0;
    genie_status_t     st;

    if (!open_ok(self) || !PyArg_ParseTuple(args, "iiKO", &src, &dst, &session, &list) ||
        (ids = geniepy_parse_ids(list, &n)) == NULL) {
        return NULL;
    }
    CLIENT_CALL(self, st, genie_client_handoff(self->client, src, dst, session, ids, (uint32_t)n, &bytes, &secs));
    free(ids);
    if (st != GENIE_OK) {
        return raise_st(self, "KV handoff", st);
    }
    return Py_BuildValue("{s:K,s:d}", "bytes", (unsigned long long)bytes, "seconds", secs);
}

/* One session tuple of checkpoint():
 *   (id, key, model_fp, step, prompt_len, tokens, rng, lineage, kv_ids, kv_names)
 * tokens: bytes-like int64 (B, L) given as (buffer, B, L); lineage: bytes-like
 * int64 (R, 6); rng: bytes.  Buffers stay held in `views` until sent. */
typedef struct {
    genie_client_ckpt_session_t s;
    Py_buffer                   tok, rng, lin;
    uint64_t                   *ids;
    const char                **names;
    int                         held;   /* buffers acquired */
} ckpt_arg_t;

static void ckpt_arg_release(ckpt_arg_t *a)
{
    if (a->held) {
        PyBuffer_Release(&a->tok);
        PyBuffer_Release(&a->rng);
        PyBuffer_Release(&a->lin);
    }
    free(a->ids);
    free((void *)a->names);
}

static int ckpt_arg_parse(PyObject *t, ckpt_arg_t *a)
{
    unsigned long long id, key, fp, step, plen;
    unsigned int       batch;
    unsigned long long ntok;
    PyObject          *ids, *names;
    Py_ssize_t         n = 0;

    if (!PyArg_ParseTuple(t, "KKKKK(y*IK)y*y*OO", &id, &key, &fp, &step, &plen, &a->tok, &batch,
                          &ntok, &a->rng, &a->lin, &ids, &names)) {
        return -1;
    }
    a->held = 1;
    if ((uint64_t)a->tok.len != (uint64_t)batch * ntok * 8 || a->lin.len % 48 != 0 ||
        a->rng.len > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "genie: checkpoint: tokens/lineage sizes do not match");
        return -1;
    }
    if ((a->ids = geniepy_parse_ids(ids, &n)) == NULL) {
        return -1;
    }
    if (!PyList_Check(names) || PyList_GET_SIZE(names) != n ||
        (a->names = calloc((size_t)n + 1, sizeof(*a->names))) == NULL) {
        PyErr_SetString(PyExc_ValueError, "genie: checkpoint: one name per KV object");
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if ((a->names[i] = PyUnicode_AsUTF8(PyList_GET_ITEM(names, i))) == NULL) {
            return -1;
        }
    }
    a->s = (genie_client_ckpt_session_t){
        .id = id, .key = key, .model_fp = fp, .step = step, .prompt_len = plen,
        .batch = batch, .n_tokens = ntok, .tokens = a->tok.buf,
        .rng = a->rng.buf, .rng_len = (uint32_t)a->rng.len,
        .n_lineage = (uint32_t)(a->lin.len / 48), .lineage = a->lin.buf,
        .n_kv = (uint32_t)n, .kv_ids = a->ids, .kv_names = a->names,
    };
    return 0;
}

/* checkpoint([(rank, epoch, path, job, [session tuple, ...]), ...]) ->
 * [dict(rank, bytes, seconds)]: every rank's request goes out before the
 * first reply is awaited, so the ranks write their files in parallel. */
static PyObject *cluster_checkpoint(GeniePyCluster *self, PyObject *jobs)
{
    Py_ssize_t      nj;
    int32_t        *ranks = NULL;
    uint32_t       *seqs = NULL;
    genie_status_t  first = GENIE_OK;
    char            first_msg[512] = "";
    int32_t         first_rank = 0;
    PyObject       *result = NULL;

    if (!open_ok(self)) {
        return NULL;
    }
    if (!PyList_Check(jobs)) {
        PyErr_SetString(PyExc_TypeError, "genie: checkpoint(jobs): a list of per-rank tuples");
        return NULL;
    }
    nj    = PyList_GET_SIZE(jobs);
    ranks = calloc((size_t)nj + 1, sizeof(*ranks));
    seqs  = calloc((size_t)nj + 1, sizeof(*seqs));
    if (ranks == NULL || seqs == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    for (Py_ssize_t j = 0; j < nj; j++) {
        unsigned long long epoch;
        const char        *path, *job;
        PyObject          *sess;
        ckpt_arg_t        *args;
        genie_client_ckpt_session_t *ss;
        Py_ssize_t         ns, parsed = 0;
        genie_status_t     st;
        int                rank;

        if (!PyArg_ParseTuple(PyList_GET_ITEM(jobs, j), "iKssO!", &rank, &epoch, &path, &job,
                              &PyList_Type, &sess)) {
            break;                  /* requests already sent are collected below */
        }
        ns   = PyList_GET_SIZE(sess);
        args = calloc((size_t)ns + 1, sizeof(*args));
        ss   = calloc((size_t)ns + 1, sizeof(*ss));
        if (args == NULL || ss == NULL) {
            free(args);
            free(ss);
            PyErr_NoMemory();
            break;
        }
        for (; parsed < ns; parsed++) {
            if (ckpt_arg_parse(PyList_GET_ITEM(sess, parsed), &args[parsed]) < 0) {
                parsed++;
                break;
            }
            ss[parsed] = args[parsed].s;
        }
        st = GENIE_OK;
        if (!PyErr_Occurred()) {
            lock_held(self);
            st = self->client != NULL ? genie_client_checkpoint_send(self->client, rank, epoch, path,
                                                                     job, ss, (uint32_t)ns, &seqs[j])
                                      : closed_status();
            unlock_held(self);
        }
        for (Py_ssize_t i = 0; i < parsed; i++) {
            ckpt_arg_release(&args[i]);
        }
        free(args);
        free(ss);
        if (PyErr_Occurred()) {
            break;
        }
        ranks[j] = rank;
        if (st != GENIE_OK && first == GENIE_OK) {
            first = st;
            first_rank = rank;
            snprintf(first_msg, sizeof(first_msg), "%s", genie_last_error());
        }
    }
    result = PyErr_Occurred() ? NULL : PyList_New(0);
    for (Py_ssize_t j = 0; j < nj; j++) {
        uint64_t       bytes = 0;
        double         secs = 0;
        genie_status_t st;

        if (seqs[j] == 0) {
            continue;
        }
        CLIENT_CALL(self, st, genie_client_checkpoint_wait(self->client, ranks[j], seqs[j], &bytes, &secs));
        if (st != GENIE_OK) {
            if (first == GENIE_OK) {
                first = st;
                first_rank = ranks[j];
                snprintf(first_msg, sizeof(first_msg), "%s", genie_last_error());
            }
            continue;
        }
        if (result != NULL) {
            PyObject *d = Py_BuildValue("{s:i,s:K,s:d}", "rank", ranks[j], "bytes",
                                        (unsigned long long)bytes, "seconds", secs);
            if (d == NULL || PyList_Append(result, d) < 0) {
                Py_CLEAR(result);
            }
            Py_XDECREF(d);
        }
    }
    if (first != GENIE_OK && !PyErr_Occurred()) {
        Py_CLEAR(result);
        char msg[700];
        snprintf(msg, sizeof(msg), "genie: checkpoint on executor rank %d: %s", (int)first_rank,
                 first_msg);
        if (first == GENIE_ERR_PEER_LOST) {
            raise_lost(self, msg);
        } else {
            PyErr_SetString(GeniePy_Error, msg);
        }
    }
    if (PyErr_Occurred()) {
        Py_CLEAR(result);
    }
out:
    free(ranks);
    free(seqs);
    return result;
}

/* restore(rank, path, file_session, session, [(id, name, dtype, shape), ...])
 * -> dict(bytes, seconds) */
static PyObject *cluster_restore(GeniePyCluster *self, PyObject *args)
{
    int                     rank;
    const char             *path;
    unsigned long long      fsess, sess;
    PyObject               *list, *result = NULL;
    genie_client_kv_desc_t *kv = NULL;
    Py_ssize_t              n;
    uint64_t                bytes = 0;
    double                  secs = 0;
    genie_status_t          st;

    if (!open_ok(self) || !PyArg_ParseTuple(args, "isKKO!", &rank, &path, &fsess, &sess,
                                            &PyList_Type, &list)) {
        return NULL;
    }
    n = PyList_GET_SIZE(list);
    if ((kv = calloc((size_t)n + 1, sizeof(*kv))) == NULL) {
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned long long id;
        int                dtype;
        PyObject          *shape;

        if (!PyArg_ParseTuple(PyList_GET_ITEM(list, i), "KsiO", &id, &kv[i].name, &dtype, &shape) ||
            geniepy_parse_shape(shape, &kv[i].ndim, kv[i].shape) < 0) {
            goto out;
        }
        if (dtype < 0 || dtype >= GENIE_DTYPE_COUNT) {
            PyErr_Format(PyExc_ValueError, "genie: restore: dtype code %d", dtype);
            goto out;
        }
        kv[i].id    = id;
        kv[i].dtype = (genie_dtype_t)dtype;
    }
    CLIENT_CALL(self, st, genie_client_restore(self->client, rank, path, fsess, sess, kv, (uint32_t)n, &bytes, &secs));
    if (st != GENIE_OK) {
        raise_st(self, "restore", st);
        goto out;
    }
    result = Py_BuildValue("{s:K,s:d}", "bytes", (unsigned long long)bytes, "seconds", secs);
out:
    free(kv);
    return result;
}

typedef struct { PyObject *d; PyObject *phase; int failed; } stats_acc_t;

static void stats_one(const char *name, double value, void *arg)
{
    stats_acc_t *a = arg;
    PyObject    *v;
    size_t       len = strlen(name);
    int          is_int = !(len > 2 && strcmp(name + len - 2, "_s") == 0) &&   /* seconds */
                          strncmp(name, "phase_s.", 8) != 0;

    if (a->failed) {
        return;
    }
    v = is_int ? PyLong_FromUnsignedLongLong((unsigned long long)value) : PyFloat_FromDouble(value);
    if (v == NULL) {
        a->failed = 1;
        return;
    }
    if (strncmp(name, "phase_s.", 8) == 0) {
        a->failed = PyDict_SetItemString(a->phase, name + 8, v) < 0;
    } else {
        a->failed = PyDict_SetItemString(a->d, name, v) < 0;
    }
    Py_DECREF(v);
}

static void stats_text(const char *name, const char *text, void *arg)
{
    stats_acc_t *a = arg;
    PyObject    *v;

    if (a->failed) {
        return;
    }
    v = PyUnicode_DecodeUTF8(text, (Py_ssize_t)strlen(text), "replace");
    a->failed = v == NULL || PyDict_SetItemString(a->d, name, v) < 0;
    Py_XDECREF(v);
}

/* stats(rank) -> dict (Executor.stats() keys + transport/handoff counters) */
static PyObject *cluster_stats(GeniePyCluster *self, PyObject *arg)
{
    stats_acc_t    a = {0};
    genie_status_t st;
    long           rank;
    const genie_ucx_peer_info_t *p;

    if (!open_ok(self)) {
        return NULL;
    }
    rank = PyLong_AsLong(arg);
    if (PyErr_Occurred()) {
        return NULL;
    }
    a.d = PyDict_New();
    a.phase = PyDict_New();
    if (a.d == NULL || a.phase == NULL) {
        goto err;
    }
    lock_held(self);
    st = self->client != NULL ? genie_client_stats(self->client, (int32_t)rank, stats_one, stats_text, &a)
                              : closed_status();
    unlock_held(self);
    if (st != GENIE_OK) {
        raise_st(self, "stats", st);
        goto err;
    }
    p = genie_ucx_peer(genie_client_ucx(self->client), (int32_t)rank);
    if (a.failed || PyDict_SetItemString(a.d, "phase_compute_s", a.phase) < 0) {
        goto err;
    }
    {
        PyObject *b = PyUnicode_FromString(p->backend), *t = PyLong_FromUnsignedLong(p->threads);
        int bad = b == NULL || t == NULL || PyDict_SetItemString(a.d, "backend", b) < 0 ||
                  PyDict_SetItemString(a.d, "threads", t) < 0;
        Py_XDECREF(b);
        Py_XDECREF(t);
        if (bad) {
            goto err;
        }
    }
    Py_DECREF(a.phase);
    return a.d;
err:
    Py_XDECREF(a.d);
    Py_XDECREF(a.phase);
    return NULL;
}

/* link_stats() -> {rank: dict(bytes_sent, bytes_received, messages, rma_bytes)} */
static PyObject *cluster_link_stats(GeniePyCluster *self, PyObject *noargs)
{
    genie_ucx_t *u;
    PyObject    *d;

    (void)noargs;
    if (!open_ok(self) || (d = PyDict_New()) == NULL) {
        return NULL;
    }
    u = genie_client_ucx(self->client);
    for (int32_t r = 1; r < genie_ucx_size(u); r++) {
        genie_ucx_link_stats_t s;
        PyObject *k, *v;
        genie_ucx_link_stats(u, r, &s);
        k = PyLong_FromLong(r);
        v = Py_BuildValue("{s:K,s:K,s:K,s:K}", "bytes_sent", (unsigned long long)s.bytes_sent,
                          "bytes_received", (unsigned long long)s.bytes_received,
                          "messages", (unsigned long long)(s.messages_sent + s.messages_received),
                          "rma_bytes", (unsigned long long)s.rma_bytes_got);
        if (k == NULL || v == NULL || PyDict_SetItem(d, k, v) < 0) {
            Py_XDECREF(k);
            Py_XDECREF(v);
            Py_DECREF(d);
            return NULL;
        }
        Py_DECREF(k);
        Py_DECREF(v);
    }
    return d;
}

/* ping(rank, payload_bytes) -> None: one round trip (latency benchmark) */
static PyObject *cluster_ping(GeniePyCluster *self, PyObject *args)
{
    int            rank;
    Py_buffer      b;
    genie_status_t st;

    if (!open_ok(self) || !PyArg_ParseTuple(args, "iy*", &rank, &b)) {
        return NULL;
    }
    CLIENT_CALL(self, st, genie_client_ping(self->client, rank, b.buf, (size_t)b.len));
    PyBuffer_Release(&b);
    if (st != GENIE_OK) {
        return raise_st(self, "ping", st);
    }
    Py_RETURN_NONE;
}

static PyMethodDef cluster_methods[] = {
    { "executors", (PyCFunction)cluster_executors, METH_NOARGS,
      "executors() -> [dict(rank, phase, slice, host, pid, backend, threads)]" },
    { "register_weight", (PyCFunction)cluster_register_weight, METH_VARARGS,
      "register_weight(rank, fingerprint, dtype, shape, data_ptr, name)" },
    { "submit", (PyCFunction)cluster_submit, METH_VARARGS,
      "submit(rank, srg_bytes, [(dtype, shape, data_ptr), ...]) -> ticket (inputs copied)" },
    { "wait", (PyCFunction)cluster_wait, METH_O,
      "wait(ticket) -> [(dtype, shape, HostBuffer), ...]" },
    { "run", (PyCFunction)cluster_run, METH_VARARGS, "run(rank, srg_bytes, inputs) = wait(submit(...))" },
    { "free", (PyCFunction)cluster_free, METH_VARARGS, "free(rank, ids): drop resident objects" },
    { "fetch", (PyCFunction)cluster_fetch, METH_VARARGS, "fetch(rank, id) -> (dtype, shape, HostBuffer)" },
    { "bind_session", (PyCFunction)cluster_bind_session, METH_VARARGS, "bind_session(rank, session, ids)" },
    { "end_session", (PyCFunction)cluster_end_session, METH_VARARGS, "end_session(rank, session) -> n freed" },
    { "session_info", (PyCFunction)cluster_session_info, METH_VARARGS,
      "session_info(rank, session) -> (objects, bytes)" },
    { "handoff", (PyCFunction)cluster_handoff, METH_VARARGS,
      "handoff(src, dst, session, ids) -> dict(bytes, seconds): executor to executor by RMA" },
    { "stats", (PyCFunction)cluster_stats, METH_O, "stats(rank) -> dict of executor counters" },
    { "link_stats", (PyCFunction)cluster_link_stats, METH_NOARGS,
      "link_stats() -> {rank: dict(bytes_sent, bytes_received, messages, rma_bytes)}" },
    { "checkpoint", (PyCFunction)cluster_checkpoint, METH_O,
      "checkpoint([(rank, epoch, path, job, sessions)]) -> [dict(rank, bytes, seconds)]: "
      "each rank writes its file of the epoch, all at once" },
    { "restore", (PyCFunction)cluster_restore, METH_VARARGS,
      "restore(rank, path, file_session, session, [(id, name, dtype, shape)]) -> dict(bytes, seconds)" },
    { "ping", (PyCFunction)cluster_ping, METH_VARARGS, "ping(rank, bytes): one round trip" },
    { "close", (PyCFunction)cluster_close, METH_NOARGS, "close(): shut the executors down (idempotent)" },
    { NULL, NULL, 0, NULL },
};

PyTypeObject GeniePyCluster_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name      = "genie._C.Cluster",
    .tp_basicsize = sizeof(GeniePyCluster),
    .tp_flags     = Py_TPFLAGS_DEFAULT,
    .tp_doc       = "Connection to the executor ranks of a genie-launch / srun job (this process is rank 0)",
    .tp_new       = PyType_GenericNew,
    .tp_init      = (initproc)cluster_init,
    .tp_dealloc   = (destructor)cluster_dealloc,
    .tp_methods   = cluster_methods,
};

/* executor_main(): this task is an executor (srun gave every task the same
 * command line); replace the Python process by genie-executor, keeping the
 * environment MPI needs.  Returns only on failure. */
PyObject *geniepy_executor_main(PyObject *self, PyObject *noargs)
{
    const char *path = getenv("GENIE_EXECUTOR");
    char *const argv[] = { (char *)"genie-executor", NULL };

    (void)self;
    (void)noargs;
    if (path == NULL || path[0] == '\0') {
        path = GENIE_EXECUTOR_PATH;
    }
    execv(path, argv);
    PyErr_Format(GeniePy_Error, "genie: cannot start the executor %s (set GENIE_EXECUTOR): %s", path,
                 strerror(errno));
    return NULL;
}

int geniepy_cluster_register(PyObject *m)
{
    if (PyType_Ready(&GeniePyCluster_Type) < 0) {
        return -1;
    }
    GeniePy_ExecutorLostError = PyErr_NewException("genie._C.ExecutorLostError", GeniePy_Error, NULL);
    if (GeniePy_ExecutorLostError == NULL ||
        PyModule_AddObjectRef(m, "ExecutorLostError", GeniePy_ExecutorLostError) < 0 ||
        PyModule_AddObjectRef(m, "Cluster", (PyObject *)&GeniePyCluster_Type) < 0) {
        return -1;
    }
    return 0;
}

#else  /* built without MPI/UCX: no Cluster type */

int geniepy_cluster_register(PyObject *m)
{
    (void)m;
    return 0;
}

#endif

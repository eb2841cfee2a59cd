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
 * lost executor raises ExecutorLostError (a GenieError) naming the rank, its
 * slice, pid and host.
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
    genie_client_t *client;
} GeniePyCluster;

static PyObject *raise_st(const char *what, genie_status_t st)
{
    PyErr_Format(st == GENIE_ERR_PEER_LOST ? GeniePy_ExecutorLostError : GeniePy_Error,
                 "genie: %s: %s", what, genie_last_error());
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
    Py_BEGIN_ALLOW_THREADS
    st = genie_client_open(&self->client);
    Py_END_ALLOW_THREADS
    if (st != GENIE_OK) {
        raise_st("cannot join the job's executors", st);
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
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* close(): SHUTDOWN to every live executor, then MPI_Finalize.  Idempotent. */
static PyObject *cluster_close(GeniePyCluster *self, PyObject *noargs)
{
    (void)noargs;
    if (self->client != NULL) {
        genie_client_t *c = self->client;
        self->client = NULL;
        Py_BEGIN_ALLOW_THREADS
        genie_client_close(c, 0);
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
    Py_BEGIN_ALLOW_THREADS
    st = genie_client_weight(self->client, rank, fp, name, &t);
    Py_END_ALLOW_THREADS
    if (st != GENIE_OK) {
        return raise_st("register weight", st);
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
    st = genie_client_submit(self->client, rank, srg.buf, (size_t)srg.len, inputs, (uint32_t)n, &ticket);
    if (st != GENIE_OK) {
        raise_st("submit", st);
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
    Py_BEGIN_ALLOW_THREADS
    st = genie_client_wait(self->client, (uint32_t)ticket, &outs, &n, &compute);
    Py_END_ALLOW_THREADS
    if (st != GENIE_OK) {
        return raise_st("request failed", st);
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
    st = n > 0 ? genie_client_free(self->client, rank, ids, (uint32_t)n) : GENIE_OK;
    free(ids);
    if (st != GENIE_OK) {
        return raise_st("free", st);
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
    Py_BEGIN_ALLOW_THREADS
    st = genie_client_fetch(self->client, rank, id, &t);
    Py_END_ALLOW_THREADS
    if (st != GENIE_OK) {
        return raise_st("fetch", st);
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
    Py_BEGIN_ALLOW_THREADS
    st = genie_client_bind(self->client, rank, session, ids, (uint32_t)n);
    Py_END_ALLOW_THREADS
    free(ids);
    if (st != GENIE_OK) {
        return raise_st("bind session", st);
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
    Py_BEGIN_ALLOW_THREADS
    st = genie_client_end_session(self->client, rank, session, &n);
    Py_END_ALLOW_THREADS
    if (st != GENIE_OK) {
        return raise_st("end session", st);
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
    Py_BEGIN_ALLOW_THREADS
    st = genie_client_session_info(self->client, rank, session, &n, &bytes);
    Py_END_ALLOW_THREADS
    if (st != GENIE_OK) {
        return raise_st("session info", st);
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
    Py_BEGIN_ALLOW_THREADS
    st = genie_client_handoff(self->client, src, dst, session, ids, (uint32_t)n, &bytes, &secs);
    Py_END_ALLOW_THREADS
    free(ids);
    if (st != GENIE_OK) {
        return raise_st("KV handoff", st);
    }
    return Py_BuildValue("{s:K,s:d}", "bytes", (unsigned long long)bytes, "seconds", secs);
}

typedef struct { PyObject *d; PyObject *phase; int failed; } stats_acc_t;

static void stats_one(const char *name, double value, void *arg)
{
    stats_acc_t *a = arg;
    PyObject    *v;
    int          is_int = strcmp(name, "compute_s") != 0 && strcmp(name, "handoff_s") != 0 &&
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
    st = genie_client_stats(self->client, (int32_t)rank, stats_one, stats_text, &a);
    if (st != GENIE_OK) {
        raise_st("stats", st);
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
                          "rma_bytes", (unsigned long long)s.rma_bytes_put);
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
    Py_BEGIN_ALLOW_THREADS
    st = genie_client_ping(self->client, rank, b.buf, (size_t)b.len);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&b);
    if (st != GENIE_OK) {
        return raise_st("ping", st);
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

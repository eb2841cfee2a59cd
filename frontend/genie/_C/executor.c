/*
 * genie._C.Executor: the embedded executor (CPU backend, in this process).
 * Requests take the same path as remote ones: the SRG arrives as encoded
 * bytes and is decoded and validated before it runs, so the embedded mode
 * exercises exactly the format executors in other processes receive.
 * Host tensors cross as (dtype, shape, data_ptr) triples; the Python caller
 * keeps the memory alive for the duration of the call.
 */
#include "pygenie.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    PyObject_HEAD
    genie_backend_t *backend;
    genie_exec_t    *exec;
} GeniePyExecutor;


static void no_release(genie_storage_t *s)
{
    (void)s;
}

static int executor_init(GeniePyExecutor *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "backend", "threads", NULL };
    const char *backend = "cpu";
    int threads = 0;
    genie_status_t st;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "|si", kwlist, &backend, &threads)) {
        return -1;
    }
    if (strcmp(backend, "cpu") != 0) {
        PyErr_Format(PyExc_ValueError,
                     "genie: backend '%s' is not available in this build (available: cpu)", backend);
        return -1;
    }
    if (self->exec != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "genie: executor already initialised");
        return -1;
    }
    st = genie_backend_cpu_create(threads, &self->backend);
    if (st != GENIE_OK) {
        geniepy_raise("cpu backend", st);
        return -1;
    }
    st = genie_exec_create(self->backend, &self->exec);
    if (st != GENIE_OK) {
        self->backend->iface->destroy(self->backend);
        self->backend = NULL;
        geniepy_raise("executor", st);
        return -1;
    }
    return 0;
}

static void executor_dealloc(GeniePyExecutor *self)
{
    genie_exec_destroy(self->exec);
    if (self->backend != NULL) {
        self->backend->iface->destroy(self->backend);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int ready(GeniePyExecutor *self)
{
    if (self->exec == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "genie: executor is not initialised");
        return 0;
    }
    return 1;
}

/* Parse (dtype, shape, data_ptr) into a host tensor over caller memory. */
int geniepy_parse_host(PyObject *o, genie_tensor_t *t, genie_storage_t *s)
{
    int dtype;
    PyObject *shape;
    unsigned long long ptr;

    memset(t, 0, sizeof(*t));
    memset(s, 0, sizeof(*s));
    if (!PyArg_ParseTuple(o, "iOK", &dtype, &shape, &ptr) ||
        geniepy_parse_shape(shape, &t->ndim, t->shape) != 0) {
        return -1;
    }
    if (dtype < 0 || dtype >= GENIE_DTYPE_COUNT) {
        PyErr_Format(PyExc_ValueError, "genie: bad dtype code %d", dtype);
        return -1;
    }
    t->dtype = (genie_dtype_t)dtype;
    genie_tensor_set_contiguous_strides(t);
    s->data = (void *)(uintptr_t)ptr;
    s->nbytes = genie_tensor_nbytes(t);
    s->refcount = 1;
    s->release = no_release;
    if (s->data == NULL && s->nbytes != 0) {
        PyErr_SetString(PyExc_ValueError, "genie: null data pointer");
        return -1;
    }
    t->storage = s;
    return 0;
}

/*
 * HostBuffer: a read-write buffer-protocol view of an executor output's host
 * memory.  It takes over the tensor's reference, so results reach Python
 * (torch.frombuffer) without a second copy; the memory is released when the
 * last Python reference goes.
 */
typedef struct {
    PyObject_HEAD
    genie_tensor_t t;     /* contiguous host tensor, owned */
    Py_ssize_t     exports;
} GeniePyHostBuffer;

static int hostbuf_getbuffer(GeniePyHostBuffer *self, Py_buffer *view, int flags)
{
    int rc = PyBuffer_FillInfo(view, (PyObject *)self, genie_tensor_data(&self->t),
                               (Py_ssize_t)genie_tensor_nbytes(&self->t), 0, flags);
    if (rc == 0) {
        self->exports++;
    }
    return rc;
}

static void hostbuf_releasebuffer(GeniePyHostBuffer *self, Py_buffer *view)
{
    (void)view;
    self->exports--;
}

static void hostbuf_dealloc(GeniePyHostBuffer *self)
{
    genie_tensor_release(&self->t);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static Py_ssize_t hostbuf_len(GeniePyHostBuffer *self)
{
    return (Py_ssize_t)genie_tensor_nbytes(&self->t);
}

static PyBufferProcs hostbuf_as_buffer = {
    .bf_getbuffer     = (getbufferproc)hostbuf_getbuffer,
    .bf_releasebuffer = (releasebufferproc)hostbuf_releasebuffer,
};

static PySequenceMethods hostbuf_as_sequence = {
    .sq_length = (lenfunc)hostbuf_len,
};

PyTypeObject GeniePyHostBuffer_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name        = "genie._C.HostBuffer",
    .tp_basicsize   = sizeof(GeniePyHostBuffer),
    .tp_flags       = Py_TPFLAGS_DEFAULT,
    .tp_doc         = "Host memory of an executor result (buffer protocol)",
    .tp_dealloc     = (destructor)hostbuf_dealloc,
    .tp_as_buffer   = &hostbuf_as_buffer,
    .tp_as_sequence = &hostbuf_as_sequence,
};

/* (dtype, shape, HostBuffer) for a host tensor; takes over t's reference. */
PyObject *geniepy_host_to_py(genie_tensor_t *t)
{
    PyObject *shape = geniepy_shape_tuple(t->ndim, t->shape);
    GeniePyHostBuffer *data = PyObject_New(GeniePyHostBuffer, &GeniePyHostBuffer_Type);
    PyObject *res = NULL;

    if (data != NULL) {
        data->t = *t;
        data->exports = 0;
        t->storage = NULL;
    }

    if (shape != NULL && data != NULL) {
        res = Py_BuildValue("(iOO)", (int)t->dtype, shape, data);
    }
    Py_XDECREF(shape);
    Py_XDECREF(data);
    return res;
}

/* register_weight(fingerprint, dtype, shape, data_ptr, name) */
static PyObject *executor_register_weight(GeniePyExecutor *self, PyObject *args)
{
    unsigned long long fp, ptr;
    int dtype, ndim;
    PyObject *shape_obj;
    const char *name;
    int64_t shape[GENIE_MAX_DIMS];
    genie_status_t st;

    if (!ready(self) ||
        !PyArg_ParseTuple(args, "KiOKs", &fp, &dtype, &shape_obj, &ptr, &name) ||
        geniepy_parse_shape(shape_obj, &ndim, shape) != 0) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    st = genie_exec_register_weight(self->exec, fp, (genie_dtype_t)dtype, ndim, shape,
                                    (const void *)(uintptr_t)ptr, name);
    Py_END_ALLOW_THREADS
    if (st != GENIE_OK) {
        return geniepy_raise("register weight", st);
    }
    Py_RETURN_NONE;
}

static PyObject *executor_has_weight(GeniePyExecutor *self, PyObject *arg)
{
    unsigned long long fp = PyLong_AsUnsignedLongLong(arg);

    if (!ready(self) || (fp == (unsigned long long)-1 && PyErr_Occurred())) {
        return NULL;
    }
    return PyBool_FromLong(genie_exec_has_weight(self->exec, fp));
}

/* run(srg_bytes, inputs) -> list of (dtype, shape, HostBuffer) */
static PyObject *executor_run(GeniePyExecutor *self, PyObject *args)
{
    Py_buffer view;
    PyObject *in_list, *res = NULL;
    genie_tensor_t *inputs = NULL, *outs = NULL;
    genie_storage_t *stores = NULL;
    genie_srg_t *srg = NULL;
    uint32_t n_out = 0;
    Py_ssize_t n_in;
    genie_status_t st;

    if (!ready(self) || !PyArg_ParseTuple(args, "y*O!", &view, &PyList_Type, &in_list)) {
        return NULL;
    }
    n_in = PyList_GET_SIZE(in_list);
    inputs = calloc((size_t)(n_in ? n_in : 1), sizeof(*inputs));
    stores = calloc((size_t)(n_in ? n_in : 1), sizeof(*stores));
    if (inputs == NULL || stores == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    for (Py_ssize_t i = 0; i < n_in; i++) {
        if (geniepy_parse_host(PyList_GET_ITEM(in_list, i), &inputs[i], &stores[i]) != 0) {
            goto out;
        }
    }
    Py_BEGIN_ALLOW_THREADS
    genie_clear_error();
    st = genie_srg_decode(view.buf, (size_t)view.len, &srg);
    if (st == GENIE_OK) {
        st = genie_exec_run(self->exec, srg, inputs, (uint32_t)n_in, &outs, &n_out);
    }
    Py_END_ALLOW_THREADS
    if (st != GENIE_OK) {
        geniepy_raise(srg == NULL ? "bad SRG bytes" : "execution failed", st);
        goto out;
    }
    res = PyList_New(n_out);
    for (uint32_t i = 0; res != NULL && i < n_out; i++) {
        PyObject *o = geniepy_host_to_py(&outs[i]);
        if (o == NULL) {
            Py_CLEAR(res);
            break;
        }
        PyList_SET_ITEM(res, i, o);
    }
out:
    for (uint32_t i = 0; i < n_out; i++) {
        genie_tensor_release(&outs[i]);
    }
    free(outs);
    genie_srg_destroy(srg);
    free(inputs);
    free(stores);
    PyBuffer_Release(&view);
    return res;
}

/* free(ids): drop resident objects */
static PyObject *executor_free(GeniePyExecutor *self, PyObject *arg)
{
    Py_ssize_t n = 0;
    uint64_t *ids;

    if (!ready(self) || (ids = geniepy_parse_ids(arg, &n)) == NULL) {
        return NULL;
    }
    genie_exec_free_objects(self->exec, ids, (uint32_t)n);
    free(ids);
    Py_RETURN_NONE;
}

/* fetch(object_id) -> (dtype, shape, HostBuffer) */
static PyObject *executor_fetch(GeniePyExecutor *self, PyObject *arg)
{
    unsigned long long id = PyLong_AsUnsignedLongLong(arg);
    genie_tensor_t t;
    genie_status_t st;
    PyObject *res;

    if (!ready(self) || (id == (unsigned long long)-1 && PyErr_Occurred())) {
        return NULL;
    }
    st = genie_exec_fetch(self->exec, id, &t);
    if (st != GENIE_OK) {
        return geniepy_raise("fetch", st);
    }
    res = geniepy_host_to_py(&t);
    genie_tensor_release(&t);
    return res;
}

/*
 * put_object(object_id, session, dtype, shape, data_ptr): a copy of the host
 * data becomes the resident object `object_id`, owned by `session` (0 =
 * none), replacing any object with that id.  It is the receiving half of a
 * handoff between executors; the Python tests' fake cluster moves objects
 * between embedded executors with fetch + put_object + free.
 */
static PyObject *executor_put_object(GeniePyExecutor *self, PyObject *args)
{
    unsigned long long id, session, ptr;
    int dtype, ndim;
    PyObject *shape_obj;
    int64_t shape[GENIE_MAX_DIMS];
    genie_tensor_t t;
    size_t nbytes;
    genie_status_t st;

    if (!ready(self) ||
        !PyArg_ParseTuple(args, "KKiOK", &id, &session, &dtype, &shape_obj, &ptr) ||
        geniepy_parse_shape(shape_obj, &ndim, shape) != 0) {
        return NULL;
    }
    if (dtype < 0 || dtype >= GENIE_DTYPE_COUNT) {
        PyErr_Format(PyExc_ValueError, "genie: bad dtype code %d", dtype);
        return NULL;
    }
    genie_clear_error();
    st = genie_tensor_alloc((genie_dtype_t)dtype, ndim, shape, &t);
    if (st != GENIE_OK) {
        return geniepy_raise("put object", st);
    }
    nbytes = genie_tensor_nbytes(&t);
    if (ptr == 0 && nbytes != 0) {
        genie_tensor_release(&t);
        PyErr_SetString(PyExc_ValueError, "genie: null data pointer");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    if (nbytes != 0) {
        memcpy(genie_tensor_data(&t), (const void *)(uintptr_t)ptr, nbytes);
    }
    /* Takes over t's reference on success; on failure it is still ours. */
    st = genie_exec_put_object(self->exec, id, session, &t);
    Py_END_ALLOW_THREADS
    if (st != GENIE_OK) {
        genie_tensor_release(&t);
        return geniepy_raise("put object", st);
    }
    Py_RETURN_NONE;
}

/* parse a sequence of object ids; returns a malloc'd array or NULL with an exception */
uint64_t *geniepy_parse_ids(PyObject *arg, Py_ssize_t *n_p)
{
    PyObject *seq = PySequence_Fast(arg, "genie: expected a list of object ids");
    Py_ssize_t n;
    uint64_t *ids;

    if (seq == NULL) {
        return NULL;
    }
    n = PySequence_Fast_GET_SIZE(seq);
    ids = malloc(sizeof(*ids) * (size_t)(n ? n : 1));
    if (ids == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        ids[i] = PyLong_AsUnsignedLongLong(PySequence_Fast_GET_ITEM(seq, i));
    }
    Py_DECREF(seq);
    if (PyErr_Occurred()) {
        free(ids);
        return NULL;
    }
    *n_p = n;
    return ids;
}

/* bind_session(session, ids): the objects become owned by the session */
static PyObject *executor_bind_session(GeniePyExecutor *self, PyObject *args)
{
    unsigned long long session;
    PyObject *list;
    Py_ssize_t n = 0;
    uint64_t *ids;
    genie_status_t st;

    if (!ready(self) || !PyArg_ParseTuple(args, "KO", &session, &list) ||
        (ids = geniepy_parse_ids(list, &n)) == NULL) {
        return NULL;
    }
    st = genie_exec_session_bind(self->exec, session, ids, (uint32_t)n);
    free(ids);
    if (st != GENIE_OK) {
        return geniepy_raise("bind session", st);
    }
    Py_RETURN_NONE;
}

/* end_session(session) -> number of objects freed */
static PyObject *executor_end_session(GeniePyExecutor *self, PyObject *arg)
{
    unsigned long long session = PyLong_AsUnsignedLongLong(arg);

    if (!ready(self) || (session == (unsigned long long)-1 && PyErr_Occurred())) {
        return NULL;
    }
    return PyLong_FromUnsignedLong(genie_exec_session_end(self->exec, session));
}

/* session_info(session) -> (objects, bytes) */
static PyObject *executor_session_info(GeniePyExecutor *self, PyObject *arg)
{
    unsigned long long session = PyLong_AsUnsignedLongLong(arg);
    uint32_t n;
    uint64_t bytes;

    if (!ready(self) || (session == (unsigned long long)-1 && PyErr_Occurred())) {
        return NULL;
    }
    genie_exec_session_info(self->exec, session, &n, &bytes);
    return Py_BuildValue("(IK)", n, (unsigned long long)bytes);
}

static PyObject *executor_stats(GeniePyExecutor *self, PyObject *noargs)
{
    genie_exec_stats_t s;
    PyObject *phase, *res;

    (void)noargs;
    if (!ready(self)) {
        return NULL;
    }
    genie_exec_get_stats(self->exec, &s);
    phase = PyDict_New();
    if (phase == NULL) {
        return NULL;
    }
    for (int p = 0; p < GENIE_PHASE_COUNT; p++) {
        PyObject *v = PyFloat_FromDouble(s.phase_s[p]);
        if (v == NULL || PyDict_SetItemString(phase, genie_phase_name((genie_phase_t)p), v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(phase);
            return NULL;
        }
        Py_DECREF(v);
    }
    res = Py_BuildValue("{s:s,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:d,s:N}",
                        "backend", genie_exec_backend_name(self->exec),
                        "requests", (unsigned long long)s.requests,
                        "nodes_run", (unsigned long long)s.nodes_run,
                        "weights", (unsigned long long)s.weights,
                        "weight_bytes", (unsigned long long)s.weight_bytes,
                        "residents", (unsigned long long)s.residents,
                        "resident_bytes", (unsigned long long)s.resident_bytes,
                        "input_bytes", (unsigned long long)s.input_bytes,
                        "output_bytes", (unsigned long long)s.output_bytes,
                        "peak_activation_bytes", (unsigned long long)s.peak_bytes,
                        "sessions", (unsigned long long)s.sessions,
                        "session_bytes", (unsigned long long)s.session_bytes,
                        "compute_s", s.compute_s,
                        "phase_compute_s", phase);
    return res;
}

static PyMethodDef executor_methods[] = {
    { "register_weight", (PyCFunction)executor_register_weight, METH_VARARGS,
      "register_weight(fingerprint, dtype, shape, data_ptr, name)" },
    { "has_weight", (PyCFunction)executor_has_weight, METH_O, "has_weight(fingerprint) -> bool" },
    { "run", (PyCFunction)executor_run, METH_VARARGS,
      "run(srg_bytes, [(dtype, shape, data_ptr), ...]) -> [(dtype, shape, HostBuffer), ...]" },
    { "free", (PyCFunction)executor_free, METH_O, "free([object ids])" },
    { "fetch", (PyCFunction)executor_fetch, METH_O, "fetch(object id) -> (dtype, shape, HostBuffer)" },
    { "put_object", (PyCFunction)executor_put_object, METH_VARARGS,
      "put_object(object id, session, dtype, shape, data_ptr): copy host data in as a resident object" },
    { "bind_session", (PyCFunction)executor_bind_session, METH_VARARGS,
      "bind_session(session, [object ids]): the objects become owned by the session" },
    { "end_session", (PyCFunction)executor_end_session, METH_O,
      "end_session(session) -> objects freed" },
    { "session_info", (PyCFunction)executor_session_info, METH_O,
      "session_info(session) -> (objects, bytes)" },
    { "stats", (PyCFunction)executor_stats, METH_NOARGS, "stats() -> dict" },
    { NULL, NULL, 0, NULL },
};

PyTypeObject GeniePyExecutor_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name      = "genie._C.Executor",
    .tp_basicsize = sizeof(GeniePyExecutor),
    .tp_flags     = Py_TPFLAGS_DEFAULT,
    .tp_doc       = "Embedded executor: Executor(backend='cpu', threads=0)",
    .tp_new       = PyType_GenericNew,
    .tp_init      = (initproc)executor_init,
    .tp_dealloc   = (destructor)executor_dealloc,
    .tp_methods   = executor_methods,
};

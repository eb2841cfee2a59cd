/*
 * genie._C module: registers the Graph and Executor types and exposes the op
 * table, the SRG decoder (for dumps and for rejecting bad bytes), a fast
 * content hash used to fingerprint weights and the shared phase-spec parser.
 */
#include "pygenie.h"

#include <stdint.h>
#include <string.h>

#include "genie/phase_spec.h"

PyObject *GeniePy_Error;

PyObject *geniepy_raise(const char *what, genie_status_t st)
{
    const char *why = genie_last_error();

    PyErr_Format(GeniePy_Error, "genie: %s: %s", what, why[0] ? why : genie_status_str(st));
    return NULL;
}

int geniepy_parse_shape(PyObject *obj, int *ndim_p, int64_t *shape)
{
    PyObject *seq = PySequence_Fast(obj, "genie: shape must be a sequence of ints");
    Py_ssize_t n;

    if (seq == NULL) {
        return -1;
    }
    n = PySequence_Fast_GET_SIZE(seq);
    if (n > GENIE_MAX_DIMS) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "genie: tensors have at most %d dimensions, got %zd",
                     GENIE_MAX_DIMS, n);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        long long v = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, i));
        if (v == -1 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return -1;
        }
        if (v < 0) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError, "genie: negative extent in shape");
            return -1;
        }
        shape[i] = v;
    }
    *ndim_p = (int)n;
    Py_DECREF(seq);
    return 0;
}

PyObject *geniepy_shape_tuple(int ndim, const int64_t *shape)
{
    PyObject *t = PyTuple_New(ndim);

    if (t == NULL) {
        return NULL;
    }
    for (int d = 0; d < ndim; d++) {
        PyObject *v = PyLong_FromLongLong(shape[d]);
        if (v == NULL) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, d, v);
    }
    return t;
}

static PyObject *py_op_id(PyObject *self, PyObject *arg)
{
    const char *name = PyUnicode_AsUTF8(arg);

    (void)self;
    if (name == NULL) {
        return NULL;
    }
    return PyLong_FromLong(genie_op_from_name(name));
}

static PyObject *py_op_name(PyObject *self, PyObject *arg)
{
    long op = PyLong_AsLong(arg);
    const char *name;

    (void)self;
    if (op == -1 && PyErr_Occurred()) {
        return NULL;
    }
    name = op >= 0 ? genie_op_name((uint32_t)op) : NULL;
    if (name == NULL) {
        PyErr_Format(PyExc_ValueError, "genie: no op %ld", op);
        return NULL;
    }
    return PyUnicode_FromString(name);
}

static PyObject *py_op_is_view(PyObject *self, PyObject *arg)
{
    long op = PyLong_AsLong(arg);

    (void)self;
    if (op == -1 && PyErr_Occurred()) {
        return NULL;
    }
    return PyBool_FromLong(op >= 0 && (genie_op_flags((uint32_t)op) & GENIE_OPF_VIEW));
}

/* decode_json(bytes) -> str: decode and validate an SRG, return its JSON dump. */
static PyObject *py_decode_json(PyObject *self, PyObject *arg)
{
    Py_buffer view;
    genie_srg_t *srg = NULL;
    char *json = NULL;
    genie_status_t st;
    PyObject *res;

    (void)self;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) != 0) {
        return NULL;
    }
    genie_clear_error();
    st = genie_srg_decode(view.buf, (size_t)view.len, &srg);
    PyBuffer_Release(&view);
    if (st != GENIE_OK) {
        return geniepy_raise("bad SRG bytes", st);
    }
    st = genie_srg_to_json(srg, &json);
    genie_srg_destroy(srg);
    if (st != GENIE_OK) {
        return geniepy_raise("SRG JSON dump", st);
    }
    res = PyUnicode_FromString(json);
    free(json);
    return res;
}

/*
 * hash64(data_ptr, nbytes, seed) -> int.  A 4-lane multiply-rotate hash over
 * 8-byte words; not cryptographic, only needs to tell weights apart and to be
 * fast enough (several GB/s) to fingerprint a model at first use.
 */
static inline uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static uint64_t hash_bytes(const uint8_t *p, size_t n, uint64_t seed)
{
    const uint64_t k1 = 0x9e3779b97f4a7c15ULL, k2 = 0xc2b2ae3d27d4eb4fULL;
    uint64_t h[4] = { seed ^ k1, seed ^ k2, seed + k1, seed - k2 };
    size_t i = 0;
    uint64_t acc;

    for (; i + 32 <= n; i += 32) {
        for (int l = 0; l < 4; l++) {
            uint64_t w;
            memcpy(&w, p + i + 8 * l, 8);
            h[l] = rotl64(h[l] ^ (w * k2), 31) * k1;
        }
    }
    acc = rotl64(h[0], 1) + rotl64(h[1], 7) + rotl64(h[2], 12) + rotl64(h[3], 18) + n;
    for (; i < n; i++) {
        acc = rotl64(acc ^ (p[i] * k1), 11) * k2;
    }
    acc ^= acc >> 29;
    acc *= k1;
    acc ^= acc >> 32;
    return acc;
}

static PyObject *py_hash64(PyObject *self, PyObject *args)
{
    unsigned long long ptr, nbytes, seed;
    uint64_t h;

    (void)self;
    if (!PyArg_ParseTuple(args, "KKK", &ptr, &nbytes, &seed)) {
        return NULL;
    }
    if (ptr == 0 && nbytes != 0) {
        PyErr_SetString(PyExc_ValueError, "genie: hash64 of a null pointer");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    h = hash_bytes((const uint8_t *)(uintptr_t)ptr, (size_t)nbytes, seed);
    Py_END_ALLOW_THREADS
    return PyLong_FromUnsignedLongLong(h);
}

/* parse_phases(spec, allowed=None, max_slices=0, spares=False) -> [(name, slices), ...]
 * (slices counts spare slices too; with spares=True: [(name, slices, spares)]).
 * The runtime's parser, so that Python accepts and refuses exactly what srun
 * and genie-launch do; a bad spec raises ValueError with its one-line message. */
static PyObject *py_parse_phases(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = { "spec", "allowed", "max_slices", "spares", NULL };
    int with_spares = 0;
    PyObject *spec_obj, *allowed_obj = Py_None, *seq = NULL, *result = NULL;
    Py_ssize_t max_slices = 0, spec_len, n_allowed = 0;
    const char *spec, **allowed = NULL;
    genie_phase_limits_t limits = { NULL, 0 };
    genie_phase_spec_t parsed;
    char err[512];
    genie_status_t st;

    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "U|Onp:parse_phases", kwlist, &spec_obj,
                                     &allowed_obj, &max_slices, &with_spares)) {
        return NULL;
    }
    spec = PyUnicode_AsUTF8AndSize(spec_obj, &spec_len);
    if (spec == NULL) {
        return NULL;
    }
    /* The C parser stops at a NUL; refuse rather than silently ignore the rest. */
    if ((size_t)spec_len != strlen(spec)) {
        PyErr_SetString(PyExc_ValueError, "genie: phase spec contains a NUL character");
        return NULL;
    }
    if (max_slices < 0 || (uint64_t)max_slices > UINT32_MAX) {
        PyErr_Format(PyExc_ValueError, "genie: max_slices must be in 0..%lu (0 = no limit), got %zd",
                     (unsigned long)UINT32_MAX, max_slices);
        return NULL;
    }
    limits.max_slices = (uint32_t)max_slices;
    if (allowed_obj != Py_None) {
        seq = PySequence_Fast(allowed_obj, "genie: allowed must be a list of str or None");
        if (seq == NULL) {
            return NULL;
        }
        n_allowed = PySequence_Fast_GET_SIZE(seq);
        allowed = PyMem_Calloc((size_t)n_allowed + 1, sizeof(*allowed));
        if (allowed == NULL) {
            PyErr_NoMemory();
            goto err_seq;
        }
        for (Py_ssize_t i = 0; i < n_allowed; i++) {
            PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
            if (!PyUnicode_Check(item)) {
                PyErr_Format(PyExc_TypeError, "genie: allowed[%zd] must be str, not %.100s", i,
                             Py_TYPE(item)->tp_name);
                goto err_allowed;
            }
            /* Valid while seq holds item. */
            allowed[i] = PyUnicode_AsUTF8(item);
            if (allowed[i] == NULL) {
                goto err_allowed;
            }
        }
        limits.allowed = allowed;
    }

    st = genie_phase_spec_parse(spec, &limits, &parsed, err, sizeof(err));
    if (st != GENIE_OK) {
        PyErr_SetString(PyExc_ValueError, err);
        goto err_allowed;
    }
    result = PyList_New((Py_ssize_t)parsed.n);
    if (result == NULL) {
        goto err_allowed;
    }
    for (uint32_t i = 0; i < parsed.n; i++) {
        PyObject *t = with_spares
            ? Py_BuildValue("(sII)", parsed.entry[i].name, (unsigned)parsed.entry[i].slices,
                            (unsigned)parsed.entry[i].spares)
            : Py_BuildValue("(sI)", parsed.entry[i].name, (unsigned)parsed.entry[i].slices);
        if (t == NULL) {
            Py_CLEAR(result);
            goto err_allowed;
        }
        PyList_SET_ITEM(result, (Py_ssize_t)i, t);
    }

    /* The success path runs the same cleanup. */
err_allowed:
    PyMem_Free(allowed);
err_seq:
    Py_XDECREF(seq);
    return result;
}

static PyMethodDef module_methods[] = {
    { "op_id", py_op_id, METH_O, "op_id(aten_name) -> int (-1 if not in the closed op set)" },
    { "op_name", py_op_name, METH_O, "op_name(op) -> aten overload name" },
    { "op_is_view", py_op_is_view, METH_O, "op_is_view(op) -> bool (output aliases input 0)" },
    { "decode_json", py_decode_json, METH_O, "decode_json(srg_bytes) -> JSON dump (validates)" },
    { "hash64", py_hash64, METH_VARARGS, "hash64(data_ptr, nbytes, seed) -> int" },
    { "parse_phases", (PyCFunction)(void (*)(void))py_parse_phases, METH_VARARGS | METH_KEYWORDS,
      "parse_phases(spec, allowed=None, max_slices=0, spares=False) -> [(name, slices), ...] "
      "(with spares=True: [(name, slices, spares)]; slices counts the spares); "
      "ValueError with a 'genie: ' message on a bad spec" },
#ifdef GENIE_HAVE_CLUSTER
    { "executor_main", geniepy_executor_main, METH_NOARGS,
      "executor_main(): replace this process by genie-executor (a task whose role is executor)" },
#endif
    { NULL, NULL, 0, NULL },
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "genie._C", "Genie runtime bindings (SRG builder, embedded executor).",
    -1, module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__C(void)
{
    PyObject *m;

    if (PyType_Ready(&GeniePyGraph_Type) < 0 || PyType_Ready(&GeniePyExecutor_Type) < 0 ||
        PyType_Ready(&GeniePyHostBuffer_Type) < 0) {
        return NULL;
    }
    m = PyModule_Create(&module_def);
    if (m == NULL) {
        return NULL;
    }
    GeniePy_Error = PyErr_NewException("genie._C.GenieError", PyExc_RuntimeError, NULL);
    if (GeniePy_Error == NULL ||
        PyModule_AddObjectRef(m, "GenieError", GeniePy_Error) < 0 ||
        PyModule_AddObjectRef(m, "Graph", (PyObject *)&GeniePyGraph_Type) < 0 ||
        PyModule_AddObjectRef(m, "Executor", (PyObject *)&GeniePyExecutor_Type) < 0 ||
        PyModule_AddIntConstant(m, "OP_COUNT", GENIE_OP_COUNT) < 0 ||
        PyModule_AddIntConstant(m, "SRG_VERSION", GENIE_SRG_VERSION) < 0 ||
        PyModule_AddIntConstant(m, "MAX_DIMS", GENIE_MAX_DIMS) < 0 ||
        geniepy_cluster_register(m) < 0 || geniepy_checkpoint_register(m) < 0) {
        Py_XDECREF(m);
        return NULL;
    }
    return m;
}

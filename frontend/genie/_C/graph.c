/*
 * genie._C.Graph: the SRG builder the frontend fills op by op at flush time,
 * then encodes.  Attribute values map from Python as: None -> NONE,
 * bool -> BOOL, int -> INT, float -> FLOAT, str -> STR, ("d", code) -> DTYPE,
 * list/tuple of ints -> INTS (see ops.def for which argument becomes which).
 */
#include "pygenie.h"

#include <stdlib.h>

#define MAX_ATTRS 16
#define MAX_OUTS  64

static PyObject *graph_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    GeniePyGraph *self = (GeniePyGraph *)type->tp_alloc(type, 0);
    genie_status_t st;

    (void)args;
    (void)kw;
    if (self == NULL) {
        return NULL;
    }
    st = genie_srg_create(&self->srg);
    if (st != GENIE_OK) {
        Py_DECREF(self);
        return geniepy_raise("graph create", st);
    }
    return (PyObject *)self;
}

static void graph_dealloc(GeniePyGraph *self)
{
    genie_srg_destroy(self->srg);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* add_source(kind, dtype, shape, residency, ref, name) -> value id */
static PyObject *graph_add_source(GeniePyGraph *self, PyObject *args)
{
    int kind, dtype, residency, ndim;
    unsigned long long ref;
    PyObject *shape_obj;
    const char *name;
    int64_t shape[GENIE_MAX_DIMS];
    uint32_t id;
    genie_status_t st;

    if (!PyArg_ParseTuple(args, "iiOiKs", &kind, &dtype, &shape_obj, &residency, &ref, &name) ||
        geniepy_parse_shape(shape_obj, &ndim, shape) != 0) {
        return NULL;
    }
    st = genie_srg_add_source(self->srg, (genie_value_kind_t)kind, (genie_dtype_t)dtype, ndim,
                              shape, (genie_residency_t)residency, ref, name, &id);
    if (st != GENIE_OK) {
        return geniepy_raise("graph add_source", st);
    }
    return PyLong_FromUnsignedLong(id);
}

/* Convert one Python attribute value; list storage goes into ints_buf. */
static int parse_attr(PyObject *o, genie_srg_attr_t *a, int64_t **ints_buf_p)
{
    *a = (genie_srg_attr_t){ .tag = GENIE_ATTR_NONE };
    if (o == Py_None) {
        return 0;
    }
    if (PyBool_Check(o)) {
        a->tag = GENIE_ATTR_BOOL;
        a->i   = o == Py_True;
        return 0;
    }
    if (PyLong_Check(o)) {
        a->tag = GENIE_ATTR_INT;
        a->i   = PyLong_AsLongLong(o);
        return a->i == -1 && PyErr_Occurred() ? -1 : 0;
    }
    if (PyFloat_Check(o)) {
        a->tag = GENIE_ATTR_FLOAT;
        a->f   = PyFloat_AsDouble(o);
        return 0;
    }
    if (PyUnicode_Check(o)) {
        Py_ssize_t len;
        a->tag = GENIE_ATTR_STR;
        a->s   = PyUnicode_AsUTF8AndSize(o, &len);
        a->n   = (uint32_t)len;
        return a->s == NULL ? -1 : 0;
    }
    if (PyTuple_Check(o) && PyTuple_GET_SIZE(o) == 2 && PyUnicode_Check(PyTuple_GET_ITEM(o, 0))) {
        a->tag = GENIE_ATTR_DTYPE;
        a->i   = PyLong_AsLongLong(PyTuple_GET_ITEM(o, 1));
        return a->i == -1 && PyErr_Occurred() ? -1 : 0;
    }
    if (PyList_Check(o) || PyTuple_Check(o)) {
        Py_ssize_t n = PySequence_Size(o);
        int64_t *v = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
        if (v == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *item = PySequence_GetItem(o, i);
            v[i] = item ? PyLong_AsLongLong(item) : -1;
            Py_XDECREF(item);
            if (v[i] == -1 && PyErr_Occurred()) {
                free(v);
                return -1;
            }
        }
        a->tag = GENIE_ATTR_INTS;
        a->ints = v;
        a->n = (uint32_t)n;
        *ints_buf_p = v;
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "genie: cannot encode attribute of type %s",
                 Py_TYPE(o)->tp_name);
    return -1;
}

/* add_node(op, inputs, attrs, outs, phase, modality, residency, module_path[, block])
 *   inputs: list of value ids or None; attrs: list; outs: list of (dtype, shape);
 *   block: genie_block_t, 0 (none) if omitted -> tuple of output value ids */
static PyObject *graph_add_node(GeniePyGraph *self, PyObject *args)
{
    unsigned int op;
    int phase, modality, residency, block = GENIE_BLOCK_NONE;
    PyObject *in_obj, *attr_obj, *out_obj, *res = NULL;
    const char *module_path;
    genie_srg_attr_t attrs[MAX_ATTRS];
    int64_t *ints_bufs[MAX_ATTRS] = { 0 };
    uint32_t *in = NULL, out_ids[MAX_OUTS];
    genie_dtype_t out_dtypes[MAX_OUTS];
    int out_ndims[MAX_OUTS];
    int64_t out_shape_store[MAX_OUTS][GENIE_MAX_DIMS];
    const int64_t *out_shapes[MAX_OUTS];
    Py_ssize_t n_in, n_attr, n_out;
    genie_status_t st;

    if (!PyArg_ParseTuple(args, "IO!O!O!iiis|i", &op, &PyList_Type, &in_obj, &PyList_Type,
                          &attr_obj, &PyList_Type, &out_obj, &phase, &modality, &residency,
                          &module_path, &block)) {
        return NULL;
    }
    /* Checked before the node is added, so that a bad block refuses the whole
     * call and leaves the graph unchanged, like every other bad argument. */
    if (block < 0 || block >= GENIE_BLOCK_COUNT) {
        return geniepy_raise("graph add_node",
                             genie_set_error(GENIE_ERR_INVALID, "srg: add_node: block %d out of "
                                             "range (< %d)", block, GENIE_BLOCK_COUNT));
    }
    n_in = PyList_GET_SIZE(in_obj);
    n_attr = PyList_GET_SIZE(attr_obj);
    n_out = PyList_GET_SIZE(out_obj);
    if (n_attr > MAX_ATTRS || n_out > MAX_OUTS || n_out == 0) {
        PyErr_Format(PyExc_ValueError, "genie: node with %zd attrs / %zd outputs", n_attr, n_out);
        return NULL;
    }
    in = malloc(sizeof(*in) * (size_t)(n_in ? n_in : 1));
    if (in == NULL) {
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n_in; i++) {
        PyObject *o = PyList_GET_ITEM(in_obj, i);
        in[i] = o == Py_None ? GENIE_SRG_NONE : (uint32_t)PyLong_AsUnsignedLong(o);
        if (PyErr_Occurred()) {
            goto out;
        }
    }
    for (Py_ssize_t i = 0; i < n_attr; i++) {
        if (parse_attr(PyList_GET_ITEM(attr_obj, i), &attrs[i], &ints_bufs[i]) != 0) {
            goto out;
        }
    }
    for (Py_ssize_t i = 0; i < n_out; i++) {
        int dt;
        PyObject *shape_obj;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(out_obj, i), "iO", &dt, &shape_obj) ||
            geniepy_parse_shape(shape_obj, &out_ndims[i], out_shape_store[i]) != 0) {
            goto out;
        }
        out_dtypes[i] = (genie_dtype_t)dt;
        out_shapes[i] = out_shape_store[i];
    }
    st = genie_srg_add_node(self->srg, op, in, (uint32_t)n_in, attrs, (uint32_t)n_attr,
                            (uint32_t)n_out, out_dtypes, out_ndims, out_shapes,
                            (genie_phase_t)phase, (genie_modality_t)modality,
                            (genie_residency_t)residency, module_path, out_ids);
    if (st != GENIE_OK) {
        geniepy_raise("graph add_node", st);
        goto out;
    }
    if (block != GENIE_BLOCK_NONE) {
        st = genie_srg_set_node_block(self->srg, genie_srg_n_nodes(self->srg) - 1,
                                      (genie_block_t)block);
        if (st != GENIE_OK) {
            geniepy_raise("graph add_node", st);
            goto out;
        }
    }
    res = PyTuple_New(n_out);
    for (Py_ssize_t i = 0; res != NULL && i < n_out; i++) {
        PyTuple_SET_ITEM(res, i, PyLong_FromUnsignedLong(out_ids[i]));
    }
out:
    for (Py_ssize_t i = 0; i < MAX_ATTRS; i++) {
        free(ints_bufs[i]);
    }
    free(in);
    return res;
}

/* set_block(node_index, block): annotate an existing node with its model block */
static PyObject *graph_set_block(GeniePyGraph *self, PyObject *args)
{
    unsigned int node;
    int block;
    genie_status_t st;

    if (!PyArg_ParseTuple(args, "Ii", &node, &block)) {
        return NULL;
    }
    st = genie_srg_set_node_block(self->srg, node, (genie_block_t)block);
    if (st != GENIE_OK) {
        return geniepy_raise("graph set_block", st);
    }
    Py_RETURN_NONE;
}

/* mark_output(value, is_output, keep_id) */
static PyObject *graph_mark_output(GeniePyGraph *self, PyObject *args)
{
    unsigned int value;
    int is_output;
    unsigned long long keep_id;
    genie_status_t st;

    if (!PyArg_ParseTuple(args, "IpK", &value, &is_output, &keep_id)) {
        return NULL;
    }
    st = genie_srg_mark_output(self->srg, value, is_output, keep_id);
    if (st != GENIE_OK) {
        return geniepy_raise("graph mark_output", st);
    }
    Py_RETURN_NONE;
}

static PyObject *graph_encode(GeniePyGraph *self, PyObject *noargs)
{
    uint8_t *buf;
    size_t len;
    genie_status_t st;
    PyObject *res;

    (void)noargs;
    genie_srg_annotate_cost(self->srg);
    st = genie_srg_encode(self->srg, &buf, &len);
    if (st != GENIE_OK) {
        return geniepy_raise("graph encode", st);
    }
    res = PyBytes_FromStringAndSize((const char *)buf, (Py_ssize_t)len);
    free(buf);
    return res;
}

static PyObject *graph_to_json(GeniePyGraph *self, PyObject *noargs)
{
    char *json;
    genie_status_t st;
    PyObject *res;

    (void)noargs;
    genie_srg_annotate_cost(self->srg);
    st = genie_srg_to_json(self->srg, &json);
    if (st != GENIE_OK) {
        return geniepy_raise("graph to_json", st);
    }
    res = PyUnicode_FromString(json);
    free(json);
    return res;
}

static PyObject *graph_n_nodes(GeniePyGraph *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLong(genie_srg_n_nodes(self->srg));
}

static PyObject *graph_n_values(GeniePyGraph *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLong(genie_srg_n_values(self->srg));
}

static PyMethodDef graph_methods[] = {
    { "add_source", (PyCFunction)graph_add_source, METH_VARARGS,
      "add_source(kind, dtype, shape, residency, ref, name) -> value id" },
    { "add_node", (PyCFunction)graph_add_node, METH_VARARGS,
      "add_node(op, inputs, attrs, outs, phase, modality, residency, module_path[, block]) "
      "-> ids" },
    { "set_block", (PyCFunction)graph_set_block, METH_VARARGS,
      "set_block(node_index, block): the node's model block (genie_block_t)" },
    { "mark_output", (PyCFunction)graph_mark_output, METH_VARARGS,
      "mark_output(value, is_output, keep_id)" },
    { "encode", (PyCFunction)graph_encode, METH_NOARGS, "encode() -> bytes (annotates cost)" },
    { "to_json", (PyCFunction)graph_to_json, METH_NOARGS, "to_json() -> str" },
    { NULL, NULL, 0, NULL },
};

static PyGetSetDef graph_getset[] = {
    { "n_nodes", (getter)graph_n_nodes, NULL, "number of nodes", NULL },
    { "n_values", (getter)graph_n_values, NULL, "number of values", NULL },
    { NULL, NULL, NULL, NULL, NULL },
};

PyTypeObject GeniePyGraph_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name      = "genie._C.Graph",
    .tp_basicsize = sizeof(GeniePyGraph),
    .tp_flags     = Py_TPFLAGS_DEFAULT,
    .tp_doc       = "SRG builder",
    .tp_new       = graph_new,
    .tp_dealloc   = (destructor)graph_dealloc,
    .tp_methods   = graph_methods,
    .tp_getset    = graph_getset,
};

/*
 * Shared declarations of the genie._C extension: the Graph builder type, the
 * embedded Executor type and small conversion helpers between Python objects
 * and runtime types.  Python only describes tensors as (dtype code, shape
 * tuple, data pointer); the extension never imports torch.
 */
#ifndef GENIE_PY_H
#define GENIE_PY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "genie/exec.h"
#include "genie/srg.h"

extern PyTypeObject GeniePyGraph_Type;
extern PyTypeObject GeniePyExecutor_Type;
extern PyTypeObject GeniePyHostBuffer_Type;
extern PyObject    *GeniePy_Error;          /* genie._C.GenieError */

typedef struct {
    PyObject_HEAD
    genie_srg_t *srg;
} GeniePyGraph;

/* Raise GenieError with "genie: <what>: <last runtime error>". */
PyObject *geniepy_raise(const char *what, genie_status_t st);

/* Parse a shape tuple/list into (ndim, shape); 0 on success, -1 with an
 * exception set. */
int geniepy_parse_shape(PyObject *obj, int *ndim_p, int64_t *shape);

/* Parse (dtype, shape, data_ptr) into a host tensor over caller memory
 * (storage s borrowed); 0 on success, -1 with an exception set. */
int geniepy_parse_host(PyObject *o, genie_tensor_t *t, genie_storage_t *s);

/* (dtype, shape, HostBuffer) for a contiguous host tensor; takes over t's
 * reference (no copy). */
PyObject *geniepy_host_to_py(genie_tensor_t *t);

/* A list of object ids as a malloc'd array (count in *n_p); NULL with an
 * exception set. */
uint64_t *geniepy_parse_ids(PyObject *arg, Py_ssize_t *n_p);

/* genie._C.Cluster and ExecutorLostError (cluster.c); a no-op in a build
 * without MPI and UCX. */
int geniepy_cluster_register(PyObject *m);
#ifdef GENIE_HAVE_CLUSTER
PyObject *geniepy_executor_main(PyObject *self, PyObject *noargs);
#endif

/* genie._C.ckpt_* (checkpoint.c); a no-op in a build without HDF5. */
int geniepy_checkpoint_register(PyObject *m);

/* Build a Python tuple from a shape. */
PyObject *geniepy_shape_tuple(int ndim, const int64_t *shape);

#endif

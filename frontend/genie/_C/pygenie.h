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

/* Build a Python tuple from a shape. */
PyObject *geniepy_shape_tuple(int ndim, const int64_t *shape);

#endif

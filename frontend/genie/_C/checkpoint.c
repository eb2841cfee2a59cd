/*
 * genie._C checkpoint functions: the driver's side of checkpoints
 * (checkpoint/include/genie/ckpt.h, docs/checkpoint-format.md).  Executors
 * write and read the rank files themselves (CHECKPOINT / RESTORE requests);
 * the driver holds the job's checkpoint directory (checked and locked),
 * creates an epoch's directory, writes its manifest once every rank file is
 * committed, prunes its old epochs, and opens an epoch's metadata
 * to know which sessions it can resume.  Built only with HDF5.
 */
#include "pygenie.h"

#ifdef GENIE_HAVE_CHECKPOINT

#include <stdlib.h>
#include <string.h>

#include "genie/ckpt.h"

static PyObject *raise_ckpt(genie_status_t st)
{
    const char *msg = genie_last_error();

    (void)st;
    PyErr_Format(GeniePy_Error, "%s%s", strncmp(msg, "genie", 5) == 0 ? "" : "genie: checkpoint: ", msg);
    return NULL;
}

/* ---- the job's checkpoint directory (genie_ckpt_root_*) ---------------------
 * A capsule holding a box, so that ckpt_root_close can end the hold before
 * the capsule goes (a capsule's pointer cannot be set to NULL). */

#define ROOT_CAPSULE "genie.ckpt_root"

typedef struct root_box {
    genie_ckpt_root_t *r;
} root_box_t;

static void root_capsule_free(PyObject *cap)
{
    root_box_t *b = PyCapsule_GetPointer(cap, ROOT_CAPSULE);

    if (b != NULL) {
        genie_ckpt_root_close(b->r);
        free(b);
    }
}

static genie_ckpt_root_t *root_of(PyObject *cap)
{
    root_box_t *b = PyCapsule_GetPointer(cap, ROOT_CAPSULE);

    if (b == NULL) {
        return NULL;
    }
    if (b->r == NULL) {
        PyErr_SetString(GeniePy_Error, "genie: checkpoint directory already closed");
        return NULL;
    }
    return b->r;
}

/* ckpt_root_open(dir, job) -> handle: the directory checked, created and
 * locked for this job (genie_ckpt_root_open) */
static PyObject *py_root_open(PyObject *self, PyObject *args)
{
    const char        *dir, *job;
    genie_ckpt_root_t *r = NULL;
    root_box_t        *b;
    PyObject          *cap;
    genie_status_t     st;

    (void)self;
    if (!PyArg_ParseTuple(args, "ss", &dir, &job)) {
        return NULL;
    }
    if ((st = genie_ckpt_root_open(dir, job, &r)) != GENIE_OK) {
        return raise_ckpt(st);
    }
    if ((b = calloc(1, sizeof(*b))) == NULL) {
        genie_ckpt_root_close(r);
        return PyErr_NoMemory();
    }
    b->r = r;
    if ((cap = PyCapsule_New(b, ROOT_CAPSULE, root_capsule_free)) == NULL) {
        genie_ckpt_root_close(r);
        free(b);
    }
    return cap;
}

/* ckpt_root_info(handle) -> dict(dir, shared, first_epoch) */
static PyObject *py_root_info(PyObject *self, PyObject *cap)
{
    genie_ckpt_root_t *r = root_of(cap);

    (void)self;
    if (r == NULL) {
        return NULL;
    }
    return Py_BuildValue("{s:s,s:O,s:K}", "dir", genie_ckpt_root_dir(r), "shared",
                         genie_ckpt_root_shared(r) ? Py_True : Py_False, "first_epoch",
                         (unsigned long long)genie_ckpt_root_first_epoch(r));
}

/* ckpt_root_new_epoch(handle) -> (epoch, its directory, created) */
static PyObject *py_root_new_epoch(PyObject *self, PyObject *cap)
{
    genie_ckpt_root_t *r = root_of(cap);
    uint64_t           epoch = 0;
    char               dir[4096];
    genie_status_t     st;

    (void)self;
    if (r == NULL) {
        return NULL;
    }
    if ((st = genie_ckpt_root_new_epoch(r, &epoch, dir, sizeof(dir))) != GENIE_OK) {
        return raise_ckpt(st);
    }
    return Py_BuildValue("(Ks)", (unsigned long long)epoch, dir);
}

/* ckpt_root_drop(handle, epoch): remove an epoch of this job that failed */
static PyObject *py_root_drop(PyObject *self, PyObject *args)
{
    PyObject          *cap;
    unsigned long long epoch;
    genie_ckpt_root_t *r;
    genie_status_t     st;

    (void)self;
    if (!PyArg_ParseTuple(args, "OK", &cap, &epoch) || (r = root_of(cap)) == NULL) {
        return NULL;
    }
    if ((st = genie_ckpt_root_drop(r, epoch)) != GENIE_OK) {
        return raise_ckpt(st);
    }
    Py_RETURN_NONE;
}

/* ckpt_root_prune(handle, keep) -> epochs removed (this job's only) */
static PyObject *py_root_prune(PyObject *self, PyObject *args)
{
    PyObject          *cap;
    unsigned int       keep;
    uint32_t           removed = 0;
    genie_ckpt_root_t *r;
    genie_status_t     st;

    (void)self;
    if (!PyArg_ParseTuple(args, "OI", &cap, &keep) || (r = root_of(cap)) == NULL) {
        return NULL;
    }
    if ((st = genie_ckpt_root_prune(r, keep, &removed)) != GENIE_OK) {
        return raise_ckpt(st);
    }
    return PyLong_FromUnsignedLong(removed);
}

/* ckpt_root_close(handle): unlock now (the capsule's end does it too) */
static PyObject *py_root_close(PyObject *self, PyObject *cap)
{
    root_box_t *b = PyCapsule_GetPointer(cap, ROOT_CAPSULE);

    (void)self;
    if (b == NULL) {
        return NULL;
    }
    genie_ckpt_root_close(b->r);
    b->r = NULL;
    Py_RETURN_NONE;
}

/* ckpt_rank_file(rank) -> "rank-0002.h5" */
static PyObject *py_rank_file(PyObject *self, PyObject *arg)
{
    char name[GENIE_CKPT_NAME_MAX];
    long rank = PyLong_AsLong(arg);

    (void)self;
    if (rank == -1 && PyErr_Occurred()) {
        return NULL;
    }
    genie_ckpt_rank_file_name((int32_t)rank, name, sizeof(name));
    return PyUnicode_FromString(name);
}

static int copy_text(PyObject *d, const char *key, char *out, size_t cap)
{
    PyObject   *v = PyDict_GetItemString(d, key);
    const char *s;

    if (v == NULL) {
        out[0] = '\0';
        return 0;
    }
    if ((s = PyUnicode_AsUTF8(v)) == NULL) {
        return -1;
    }
    snprintf(out, cap, "%s", s);
    return 0;
}

/* ckpt_write_manifest(root, dict(epoch, job, phases, reason, created,
 *                     model_fps=[int], files=[(name, rank, bytes, sessions)])) */
static PyObject *py_write_manifest(PyObject *self, PyObject *args)
{
    const char           *root;
    PyObject             *d, *fps, *files, *v;
    genie_ckpt_manifest_t m = {0};
    genie_status_t        st;
    PyObject             *result = NULL;

    (void)self;
    if (!PyArg_ParseTuple(args, "sO!", &root, &PyDict_Type, &d)) {
        return NULL;
    }
    fps   = PyDict_GetItemString(d, "model_fps");
    files = PyDict_GetItemString(d, "files");
    if (fps == NULL || files == NULL || !PyList_Check(fps) || !PyList_Check(files)) {
        PyErr_SetString(PyExc_TypeError, "genie: manifest needs model_fps and files lists");
        return NULL;
    }
    if ((v = PyDict_GetItemString(d, "epoch")) == NULL ||
        (m.epoch = PyLong_AsUnsignedLongLong(v), PyErr_Occurred())) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "genie: manifest needs an epoch");
        }
        return NULL;
    }
    v = PyDict_GetItemString(d, "created");
    m.created = v != NULL ? PyFloat_AsDouble(v) : 0.0;
    if (PyErr_Occurred() || copy_text(d, "job", m.job, sizeof(m.job)) < 0 ||
        copy_text(d, "phases", m.phases, sizeof(m.phases)) < 0 ||
        copy_text(d, "reason", m.reason, sizeof(m.reason)) < 0) {
        return NULL;
    }
    m.n_model_fps = (uint32_t)PyList_GET_SIZE(fps);
    m.n_files     = (uint32_t)PyList_GET_SIZE(files);
    m.model_fps   = calloc(m.n_model_fps + 1, sizeof(*m.model_fps));
    m.files       = calloc(m.n_files + 1, sizeof(*m.files));
    if (m.model_fps == NULL || m.files == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    for (uint32_t i = 0; i < m.n_model_fps; i++) {
        m.model_fps[i] = PyLong_AsUnsignedLongLongMask(PyList_GET_ITEM(fps, i));
    }
    for (uint32_t i = 0; i < m.n_files; i++) {
        const char        *name;
        int                rank;
        unsigned long long bytes;
        unsigned int       sessions;

        if (!PyArg_ParseTuple(PyList_GET_ITEM(files, i), "siKI", &name, &rank, &bytes, &sessions)) {
            goto out;
        }
        snprintf(m.files[i].name, sizeof(m.files[i].name), "%s", name);
        m.files[i].rank     = rank;
        m.files[i].bytes    = bytes;
        m.files[i].sessions = sessions;
    }
    if (PyErr_Occurred()) {
        goto out;
    }
    Py_BEGIN_ALLOW_THREADS
    st = genie_ckpt_write_manifest(root, &m);
    Py_END_ALLOW_THREADS
    if (st != GENIE_OK) {
        raise_ckpt(st);
        goto out;
    }
    result = Py_NewRef(Py_None);
out:
    free(m.model_fps);
    free(m.files);
    return result;
}

static void note_skipped(uint64_t epoch, const char *why, void *arg)
{
    PyObject *t = Py_BuildValue("(Ks)", (unsigned long long)epoch, why);

    if (t != NULL) {
        PyList_Append((PyObject *)arg, t);
        Py_DECREF(t);
    }
}

static PyObject *session_dict(const genie_ckpt_session_t *s)
{
    PyObject *kv = PyList_New(s->n_kv), *d;

    if (kv == NULL) {
        return NULL;
    }
    for (uint32_t k = 0; k < s->n_kv; k++) {
        PyObject *t = Py_BuildValue("(siN)", s->kv[k].name, (int)s->kv[k].dtype,
                                    geniepy_shape_tuple(s->kv[k].ndim, s->kv[k].shape));
        if (t == NULL) {
            Py_DECREF(kv);
            return NULL;
        }
        PyList_SET_ITEM(kv, k, t);
    }
    d = Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:I,s:K,s:y#,s:y#,s:y#,s:I,s:s,s:i,s:N}",
                      "id", (unsigned long long)s->id, "key", (unsigned long long)s->key,
                      "model_fp", (unsigned long long)s->model_fp,
                      "step", (unsigned long long)s->step,
                      "prompt_len", (unsigned long long)s->prompt_len, "batch", s->batch,
                      "n_tokens", (unsigned long long)s->n_tokens,
                      "tokens", (const char *)s->tokens, (Py_ssize_t)(s->batch * s->n_tokens * 8),
                      "rng", (const char *)s->rng, (Py_ssize_t)s->rng_len,
                      "lineage", (const char *)s->lineage,
                      (Py_ssize_t)s->n_lineage * 8 * GENIE_CKPT_LINEAGE_COLS,
                      "n_lineage", s->n_lineage, "file", s->file, "rank", (int)s->rank, "kv", kv);
    return d;
}

/* ckpt_open(root, epoch=0) -> dict: the epoch's manifest and sessions, and
 * the newer epochs skipped as incomplete ("skipped": [(epoch, why)]). */
static PyObject *py_open(PyObject *self, PyObject *args)
{
    const char        *root;
    unsigned long long epoch = 0;
    genie_ckpt_t      *ck = NULL;
    PyObject          *skipped, *sessions = NULL, *fps = NULL, *files = NULL, *d = NULL;
    genie_status_t     st;

    (void)self;
    if (!PyArg_ParseTuple(args, "s|K", &root, &epoch) || (skipped = PyList_New(0)) == NULL) {
        return NULL;
    }
    st = genie_ckpt_open(root, epoch, note_skipped, skipped, &ck);
    if (st != GENIE_OK) {
        Py_DECREF(skipped);
        if (st == GENIE_ERR_NOT_FOUND) {
            PyErr_Format(PyExc_FileNotFoundError, "%s", genie_last_error());
            return NULL;
        }
        return raise_ckpt(st);
    }
    sessions = PyList_New(ck->n_sessions);
    fps      = PyList_New(ck->manifest.n_model_fps);
    files    = PyList_New(ck->manifest.n_files);
    if (sessions == NULL || fps == NULL || files == NULL) {
        goto out;
    }
    for (uint32_t i = 0; i < ck->n_sessions; i++) {
        PyObject *s = session_dict(&ck->sessions[i]);
        if (s == NULL) {
            goto out;
        }
        PyList_SET_ITEM(sessions, i, s);
    }
    for (uint32_t i = 0; i < ck->manifest.n_model_fps; i++) {
        PyList_SET_ITEM(fps, i, PyLong_FromUnsignedLongLong(ck->manifest.model_fps[i]));
    }
    for (uint32_t i = 0; i < ck->manifest.n_files; i++) {
        const genie_ckpt_file_entry_t *f = &ck->manifest.files[i];
        PyList_SET_ITEM(files, i, Py_BuildValue("(siKI)", f->name, (int)f->rank,
                                                (unsigned long long)f->bytes, f->sessions));
    }
    d = Py_BuildValue("{s:s,s:K,s:s,s:s,s:s,s:d,s:O,s:O,s:O,s:O}", "dir", ck->dir,
                      "epoch", (unsigned long long)ck->manifest.epoch, "job", ck->manifest.job,
                      "phases", ck->manifest.phases, "reason", ck->manifest.reason,
                      "created", ck->manifest.created, "model_fps", fps, "files", files,
                      "sessions", sessions, "skipped", skipped);
out:
    Py_XDECREF(sessions);
    Py_XDECREF(fps);
    Py_XDECREF(files);
    Py_DECREF(skipped);
    genie_ckpt_close(ck);
    return d;
}

static PyMethodDef ckpt_methods[] = {
    { "ckpt_root_open", py_root_open, METH_VARARGS,
      "ckpt_root_open(dir, job) -> handle: the job's checkpoint directory, checked and locked" },
    { "ckpt_root_info", py_root_info, METH_O,
      "ckpt_root_info(handle) -> dict(dir, shared, first_epoch)" },
    { "ckpt_root_new_epoch", py_root_new_epoch, METH_O,
      "ckpt_root_new_epoch(handle) -> (epoch, directory): the job's next epoch, created" },
    { "ckpt_root_drop", py_root_drop, METH_VARARGS,
      "ckpt_root_drop(handle, epoch): remove an epoch of this job whose commit failed" },
    { "ckpt_root_prune", py_root_prune, METH_VARARGS,
      "ckpt_root_prune(handle, keep) -> epochs removed (this job's only)" },
    { "ckpt_root_close", py_root_close, METH_O, "ckpt_root_close(handle): release the lock now" },
    { "ckpt_rank_file", py_rank_file, METH_O, "ckpt_rank_file(rank) -> file name in an epoch" },
    { "ckpt_write_manifest", py_write_manifest, METH_VARARGS,
      "ckpt_write_manifest(root, dict): commit an epoch (all its rank files must be written)" },
    { "ckpt_open", py_open, METH_VARARGS,
      "ckpt_open(root, epoch=0) -> dict (newest complete epoch by default); "
      "FileNotFoundError when there is none" },
    { NULL, NULL, 0, NULL },
};

int geniepy_checkpoint_register(PyObject *m)
{
    return PyModule_AddFunctions(m, ckpt_methods);
}

#else

int geniepy_checkpoint_register(PyObject *m)
{
    (void)m;
    return 0;
}

#endif

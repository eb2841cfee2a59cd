/*
 * Small checked wrappers over the HDF5 C API shared by the checkpoint
 * writer, reader and verifier.  Every helper records a one-line error
 * (genie_set_error) naming the file and object on failure; HDF5's own error
 * stack is never printed (genie_ckpt_h5_init turns it off).
 */
#ifndef GENIE_CKPT_H5_H
#define GENIE_CKPT_H5_H

#include <hdf5.h>
#include <stdint.h>

#include "genie/ckpt.h"

#define CKPT_FORMAT_RANK     "genie-checkpoint-rank"
#define CKPT_FORMAT_MANIFEST "genie-checkpoint-manifest"
#define CKPT_MANIFEST        "manifest.h5"
#define CKPT_MAX_SESSIONS    65536
#define CKPT_MAX_KV          4096
#define CKPT_MAX_TOKENS      (1LL << 24)
#define CKPT_MAX_BATCH       65536
#define CKPT_MAX_RNG         (1u << 20)
#define CKPT_MAX_LINEAGE     (1LL << 24)
#define CKPT_CHUNK_BYTES     (4u << 20)

void genie_ckpt_h5_init(void);

/* Attributes on `obj` (a file, group or dataset). */
int ckpt_attr_put(hid_t obj, const char *name, hid_t type, const void *v);
int ckpt_attr_put_str(hid_t obj, const char *name, const char *v);
int ckpt_attr_get(hid_t obj, const char *name, hid_t type, void *v);
/* Fixed- or variable-length string attribute into out (cap); -1 if absent,
 * not a string or too long. */
int ckpt_attr_get_str(hid_t obj, const char *name, char *out, size_t cap);

/* A chunked, Fletcher32-checksummed dataset of `type` with dims (ndim),
 * written in one call.  Zero-sized dim 0 allowed when data is NULL. */
int ckpt_dset_write(hid_t loc, const char *path, hid_t type, int ndim, const hsize_t *dims,
                    const void *data, size_t elsize);
/* Read a whole dataset into buf (nbytes); the error names `file` and path
 * and says when a Fletcher32 checksum failed (GENIE_ERR_CORRUPT). */
genie_status_t ckpt_dset_read(hid_t loc, const char *file, const char *path, hid_t memtype,
                              void *buf, uint64_t nbytes);

/* HDF5 file type of a genie dtype; name check for KV tensors. */
hid_t ckpt_h5_type(genie_dtype_t dt);
int   ckpt_name_ok(const char *name);
int   ckpt_dtype_from_name(const char *name, genie_dtype_t *dt_p);

/* fsync of a file / directory by path. */
genie_status_t ckpt_fsync_path(const char *path, int is_dir);

#endif

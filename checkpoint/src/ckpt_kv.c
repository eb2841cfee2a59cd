/*
 * Reading KV tensors back (a restore): one rank file open, one dataset
 * read per tensor into the caller's buffer, after checking that the
 * dataset is what the caller expects (the `dtype` attribute, the shape,
 * the byte count) and that all of its chunks are there.  Each chunk is
 * read as stored, past the page cache (ckpt_vfd.c), and its Fletcher32
 * checked before its bytes are copied out (ckpt_dset_read_direct); a
 * failure names the dataset (GENIE_ERR_CORRUPT).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
/* Messages and paths are cut at their buffer's size on purpose: a long
 * path must not turn a one-line report into an error of its own. */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_h5.h"

struct genie_ckpt_file {
    hid_t        f;
    ckpt_stage_t stage;          /* one chunk as stored, reused across reads */
    char         path[4200];
};

genie_status_t genie_ckpt_file_open(const char *path, genie_ckpt_file_t **f_p)
{
    genie_ckpt_file_t *f;
    char               fmt[64], why[256];
    int32_t            version = 0;
    int                sys = 0;

    ckpt_h5_init();
    if (path == NULL || f_p == NULL) {
        return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint: open of no file");
    }
    if ((f = calloc(1, sizeof(*f))) == NULL) {
        return genie_set_error(GENIE_ERR_NOMEM, "genie: checkpoint: out of memory");
    }
    snprintf(f->path, sizeof(f->path), "%s", path);
    if ((f->f = ckpt_open_ro_direct(path)) < 0) {
        ckpt_h5_reason(why, sizeof(why), &sys);
        free(f);
        return genie_set_error(sys ? GENIE_ERR_IO : GENIE_ERR_CORRUPT, "genie: checkpoint %s: cannot open "
                               "it: %s", path, why);
    }
    if (ckpt_attr_get_str(f->f, "format", fmt, sizeof(fmt)) < 0 || strcmp(fmt, CKPT_FORMAT_RANK) != 0 ||
        ckpt_attr_get_i32(f->f, "version", &version) < 0 || version != GENIE_CKPT_VERSION) {
        H5Fclose(f->f);
        free(f);
        return genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: not a version %d rank file", path,
                               GENIE_CKPT_VERSION);
    }
    *f_p = f;
    return GENIE_OK;
}

/* "(2, 12, 63, 64)" */
static void shape_text(int nd, const int64_t *shape, char *out, size_t cap)
{
    size_t n = 0;

    out[0] = '\0';
    for (int i = 0; i < nd && n < cap; i++) {
        n += (size_t)snprintf(out + n, cap - n, "%s%lld", i ? ", " : "(", (long long)shape[i]);
    }
    if (n < cap) {
        snprintf(out + n, cap - n, ")");
    }
}

genie_status_t genie_ckpt_file_read_kv(genie_ckpt_file_t *f, uint64_t session_id, const char *name,
                                       genie_dtype_t dtype, int ndim, const int64_t *shape,
                                       void *buf, uint64_t nbytes)
{
    char           dpath[GENIE_CKPT_NAME_MAX + 48], dt[16], want[160], got[160];
    hid_t          d;
    hsize_t        dims[GENIE_MAX_DIMS];
    int64_t        file_shape[GENIE_MAX_DIMS];
    genie_dtype_t  file_dt = dtype;
    uint64_t       numel = 1;
    int            nd = 0, same;
    genie_status_t st;

    ckpt_h5_init();
    if (f == NULL || name == NULL || !ckpt_terminated(name, GENIE_CKPT_NAME_MAX) || !ckpt_name_ok(name) ||
        ckpt_h5_type(dtype) < 0 || ndim < 1 || ndim > GENIE_MAX_DIMS || shape == NULL ||
        (buf == NULL && nbytes > 0)) {
        return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint: bad KV read request (tensor '%.64s', "
                               "dtype %d, %d dims)", name != NULL ? name : "", (int)dtype, ndim);
    }
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1 || (uint64_t)shape[i] > CKPT_MAX_KV_BYTES / numel) {
            return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint: bad KV read request (tensor %s, "
                                   "dim %d is %lld)", name, i, (long long)shape[i]);
        }
        numel *= (uint64_t)shape[i];
    }
    snprintf(dpath, sizeof(dpath), "/sessions/%llu/kv/%s", (unsigned long long)session_id, name);
    if (!ckpt_hard_path(f->f, dpath) || (d = H5Dopen2(f->f, dpath, H5P_DEFAULT)) < 0) {
        H5Eclear2(H5E_DEFAULT);
        return genie_set_error(GENIE_ERR_NOT_FOUND, "genie: checkpoint %s: no dataset %s", f->path, dpath);
    }
    if (ckpt_attr_get_str(d, "dtype", dt, sizeof(dt)) < 0 || !ckpt_dtype_from_name(dt, &file_dt)) {
        H5Dclose(d);
        return genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: dataset %s has no known 'dtype' "
                               "attribute", f->path, dpath);
    }
    /* the file type must be the one of its dtype attribute: checked with
     * the attribute's dtype so that a mismatch below says what the file has */
    if ((st = ckpt_dset_check(d, f->path, dpath, ckpt_h5_type(file_dt), 1, GENIE_MAX_DIMS, 1, dims, &nd)) !=
        GENIE_OK) {
        H5Dclose(d);
        return st;
    }
    same = file_dt == dtype && nd == ndim && numel * genie_dtype_size(dtype) == nbytes;
    for (int i = 0; i < nd; i++) {
        file_shape[i] = (int64_t)dims[i];
        same &= i < ndim && dims[i] == (hsize_t)shape[i];
    }
    if (!same) {
        H5Dclose(d);
        shape_text(nd, file_shape, got, sizeof(got));
        shape_text(ndim, shape, want, sizeof(want));
        return genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: dataset %s is %s %s, not the "
                               "expected %s %s (%llu bytes)", f->path, dpath, genie_dtype_name(file_dt), got,
                               genie_dtype_name(dtype), want, (unsigned long long)nbytes);
    }
    /* file type = memory type (little-endian, as the file types are) */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    st = ckpt_dset_read_direct(d, f->path, dpath, nd, dims, genie_dtype_size(dtype), buf, &f->stage);
#else
    st = ckpt_dset_read(d, f->path, dpath, ckpt_h5_type(dtype), buf, nbytes);
#endif
    H5Dclose(d);
    return st;
}

void genie_ckpt_file_close(genie_ckpt_file_t *f)
{
    if (f != NULL) {
        H5Fclose(f->f);
        H5Eclear2(H5E_DEFAULT);
        ckpt_stage_free(&f->stage);
        free(f);
    }
}

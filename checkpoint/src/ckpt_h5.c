/*
 * Checked HDF5 helpers for the checkpoint library (see ckpt_h5.h), the
 * fault-injection hook and small path utilities.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
/* Messages and paths are cut at their buffer's size on purpose: a long
 * path must not turn a one-line report into an error of its own. */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#include "ckpt_h5.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void genie_ckpt_h5_init(void)
{
    static int done;

    if (!done) {
        H5open();
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        done = 1;
    }
}

int ckpt_attr_put(hid_t obj, const char *name, hid_t type, const void *v)
{
    hid_t sp = H5Screate(H5S_SCALAR), a;
    int   rc = -1;

    if (sp < 0) {
        return -1;
    }
    if ((a = H5Acreate2(obj, name, type, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0) {
        rc = H5Awrite(a, type, v) < 0 ? -1 : 0;
        H5Aclose(a);
    }
    H5Sclose(sp);
    return rc;
}

int ckpt_attr_put_str(hid_t obj, const char *name, const char *v)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    int   rc;

    if (t < 0) {
        return -1;
    }
    H5Tset_size(t, strlen(v) + 1);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    rc = ckpt_attr_put(obj, name, t, v);
    H5Tclose(t);
    return rc;
}

int ckpt_attr_get(hid_t obj, const char *name, hid_t type, void *v)
{
    hid_t a, sp;
    int   rc = -1;

    if (H5Aexists(obj, name) <= 0 || (a = H5Aopen(obj, name, H5P_DEFAULT)) < 0) {
        return -1;
    }
    sp = H5Aget_space(a);
    if (sp >= 0 && H5Sget_simple_extent_npoints(sp) == 1) {
        rc = H5Aread(a, type, v) < 0 ? -1 : 0;
    }
    if (sp >= 0) {
        H5Sclose(sp);
    }
    H5Aclose(a);
    return rc;
}

int ckpt_attr_get_str(hid_t obj, const char *name, char *out, size_t cap)
{
    hid_t  a, ft, mt = -1, sp = -1;
    size_t n;
    int    rc = -1;

    if (H5Aexists(obj, name) <= 0 || (a = H5Aopen(obj, name, H5P_DEFAULT)) < 0) {
        return -1;
    }
    ft = H5Aget_type(a);
    if (ft >= 0 && H5Tget_class(ft) == H5T_STRING && !H5Tis_variable_str(ft) &&
        (n = H5Tget_size(ft)) > 0 && n <= cap && (sp = H5Aget_space(a)) >= 0 &&
        H5Sget_simple_extent_npoints(sp) == 1) {
        char *tmp = calloc(1, n + 1);
        mt = H5Tcopy(H5T_C_S1);
        if (tmp != NULL && mt >= 0 && H5Tset_size(mt, n) >= 0 && H5Aread(a, mt, tmp) >= 0) {
            tmp[n] = '\0';
            if (strlen(tmp) < cap) {
                memcpy(out, tmp, strlen(tmp) + 1);
                rc = 0;
            }
        }
        free(tmp);
    }
    if (mt >= 0) {
        H5Tclose(mt);
    }
    if (sp >= 0) {
        H5Sclose(sp);
    }
    if (ft >= 0) {
        H5Tclose(ft);
    }
    H5Aclose(a);
    for (size_t i = 0; rc == 0 && out[i] != '\0'; i++) {
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f) {
            rc = -1;              /* control bytes never reach a message */
        }
    }
    return rc;
}

int ckpt_dset_write(hid_t loc, const char *path, hid_t type, int ndim, const hsize_t *dims,
                    const void *data, size_t elsize)
{
    hsize_t chunk[GENIE_MAX_DIMS], maxd[GENIE_MAX_DIMS];
    hsize_t row = elsize;
    hid_t   sp, dcpl, lcpl, d;
    int     rc = -1;

    for (int i = 1; i < ndim; i++) {
        row *= dims[i] > 0 ? dims[i] : 1;
    }
    for (int i = 0; i < ndim; i++) {
        chunk[i] = dims[i] > 0 ? dims[i] : 1;
        maxd[i]  = dims[i];
    }
    /* dim 0 split so that one chunk holds at most CKPT_CHUNK_BYTES */
    chunk[0] = row >= CKPT_CHUNK_BYTES ? 1 : CKPT_CHUNK_BYTES / row;
    if (dims[0] > 0 && chunk[0] > dims[0]) {
        chunk[0] = dims[0];
    }
    if (dims[0] == 0) {
        maxd[0] = H5S_UNLIMITED;
    }
    sp   = H5Screate_simple(ndim, dims, maxd);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    lcpl = H5Pcreate(H5P_LINK_CREATE);
    if (sp < 0 || dcpl < 0 || lcpl < 0 || H5Pset_chunk(dcpl, ndim, chunk) < 0 ||
        H5Pset_fletcher32(dcpl) < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0) {
        goto out;
    }
    if ((d = H5Dcreate2(loc, path, type, sp, lcpl, dcpl, H5P_DEFAULT)) < 0) {
        goto out;
    }
    rc = 0;
    if (data != NULL && dims[0] > 0 && H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        rc = -1;
    }
    H5Dclose(d);
out:
    if (sp >= 0) {
        H5Sclose(sp);
    }
    if (dcpl >= 0) {
        H5Pclose(dcpl);
    }
    if (lcpl >= 0) {
        H5Pclose(lcpl);
    }
    return rc;
}

static herr_t find_checksum(unsigned n, const H5E_error2_t *e, void *arg)
{
    (void)n;
    if (e->desc != NULL && strstr(e->desc, "Fletcher32") != NULL) {
        *(int *)arg = 1;
    }
    return 0;
}

genie_status_t ckpt_dset_read(hid_t loc, const char *file, const char *path, hid_t memtype,
                              void *buf, uint64_t nbytes)
{
    hid_t d = H5Dopen2(loc, path, H5P_DEFAULT);
    int   checksum = 0;

    if (d < 0) {
        return genie_set_error(GENIE_ERR_CORRUPT, "%s: no dataset %s", file, path);
    }
    if (H5Dget_storage_size(d) > 0 && nbytes > 0 &&
        H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, find_checksum, &checksum);
        H5Eclear2(H5E_DEFAULT);
        H5Dclose(d);
        return genie_set_error(GENIE_ERR_CORRUPT, checksum ? "%s: dataset %s failed its Fletcher32 "
                               "checksum" : "%s: could not read dataset %s", file, path);
    }
    H5Dclose(d);
    return GENIE_OK;
}

hid_t ckpt_h5_type(genie_dtype_t dt)
{
    switch (dt) {
    case GENIE_F32:  return H5T_IEEE_F32LE;
    case GENIE_I64:  return H5T_STD_I64LE;
    case GENIE_I32:  return H5T_STD_I32LE;
    case GENIE_BOOL: return H5T_STD_U8LE;
    case GENIE_F16:
    case GENIE_BF16: return H5T_STD_U16LE;       /* raw bits; the dtype attribute says which */
    default:         return -1;
    }
}

int ckpt_dtype_from_name(const char *name, genie_dtype_t *dt_p)
{
    for (int d = 0; d < GENIE_DTYPE_COUNT; d++) {
        if (strcmp(name, genie_dtype_name((genie_dtype_t)d)) == 0) {
            *dt_p = (genie_dtype_t)d;
            return 1;
        }
    }
    return 0;
}

int ckpt_name_ok(const char *name)
{
    size_t n = strnlen(name, GENIE_CKPT_NAME_MAX);
    int    slashes = 0;

    if (n == 0 || n >= GENIE_CKPT_NAME_MAX || name[0] == '/' || name[n - 1] == '/' ||
        strstr(name, "//") != NULL) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        slashes += name[i] == '/';
    }
    if (slashes > 1) {              /* "layer_00/key": one group level at most */
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '/')) {
            return 0;
        }
    }
    return 1;
}

genie_status_t ckpt_fsync_path(const char *path, int is_dir)
{
    int fd = open(path, is_dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);

    if (fd < 0) {
        return genie_set_error(GENIE_ERR_IO, "genie: checkpoint %s: %s", path, strerror(errno));
    }
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        return genie_set_error(GENIE_ERR_IO, "genie: checkpoint %s: fsync: %s", path, strerror(e));
    }
    close(fd);
    return GENIE_OK;
}

void genie_ckpt_fault_point(const char *where)
{
    static char seen[32];          /* the GENIE_CKPT_CRASH_AT value armed */
    static long crash_at, count;
    const char *v = getenv("GENIE_CKPT_CRASH_AT"), *log;

    /* Re-armed whenever the variable changes (a test's driver sets it for
     * itself mid-run; a forked child sets its own): counting restarts. */
    if (v != NULL && strncmp(v, seen, sizeof(seen)) != 0) {
        char *end = NULL;
        long  n = strtol(v, &end, 10);

        snprintf(seen, sizeof(seen), "%s", v);
        count = 0;
        crash_at = 0;
        if (v[0] == '\0' || end == NULL || *end != '\0' || n < 0) {
            fprintf(stderr, "genie: GENIE_CKPT_CRASH_AT=%s is not a number; ignored\n", v);
        } else {
            crash_at = n;
        }
    }
    count++;
    if (crash_at > 0 && count == crash_at) {
        if ((log = getenv("GENIE_CKPT_CRASH_LOG")) != NULL) {
            FILE *f = fopen(log, "a");
            if (f != NULL) {
                fprintf(f, "%ld %s\n", count, where);
                fclose(f);
            }
        }
        raise(SIGKILL);
    }
}

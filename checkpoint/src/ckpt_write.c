/*
 * Writing checkpoints: rank files (by executors) and manifests (by the
 * driver), each committed by rename: <name>.tmp written, flushed, closed,
 * fsync'd, renamed, then the directory fsync'd.  A fault point sits between
 * every two steps so a test can kill the writer anywhere
 * (genie_ckpt_fault_point).  Layout: docs/checkpoint-format.md.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
/* Messages and paths are cut at their buffer's size on purpose: a long
 * path must not turn a one-line report into an error of its own. */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ckpt_h5.h"

genie_status_t genie_ckpt_epoch_path(const char *root, uint64_t epoch, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/epoch-%08llu", root, (unsigned long long)epoch);

    if (n < 0 || (size_t)n >= cap) {
        return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint directory name too long: %s", root);
    }
    return GENIE_OK;
}

genie_status_t genie_ckpt_epoch_create(const char *root, uint64_t epoch)
{
    char dir[4096];
    genie_status_t st;

    if (mkdir(root, 0700) != 0 && errno != EEXIST) {
        return genie_set_error(GENIE_ERR_IO, "genie: checkpoint directory %s: %s", root, strerror(errno));
    }
    if ((st = genie_ckpt_epoch_path(root, epoch, dir, sizeof(dir))) != GENIE_OK) {
        return st;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        return genie_set_error(GENIE_ERR_IO, "genie: checkpoint directory %s: %s", dir, strerror(errno));
    }
    return GENIE_OK;
}

void genie_ckpt_rank_file_name(int32_t rank, char *out, size_t cap)
{
    snprintf(out, cap, "rank-%04d.h5", (int)rank);
}

/* Create <path>.tmp for writing. */
static hid_t create_tmp(const char *tmp)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), f;

    if (fapl < 0) {
        return -1;
    }
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST);
    H5Pset_alignment(fapl, 1 << 16, 1 << 12);    /* large datasets page-aligned */
#if H5_VERSION_GE(1, 10, 7)
    H5Pset_file_locking(fapl, 0, 1);
#endif
    f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    return f;
}

/* Close the open tmp file f and commit it as `path`. */
static genie_status_t commit(hid_t f, const char *tmp, const char *path)
{
    char           dir[4096];
    genie_status_t st;

    if (H5Fflush(f, H5F_SCOPE_GLOBAL) < 0) {
        H5Fclose(f);
        return genie_set_error(GENIE_ERR_IO, "genie: checkpoint %s: flush failed", tmp);
    }
    genie_ckpt_fault_point("flushed");
    if (H5Fclose(f) < 0) {
        return genie_set_error(GENIE_ERR_IO, "genie: checkpoint %s: close failed", tmp);
    }
    genie_ckpt_fault_point("closed");
    if ((st = ckpt_fsync_path(tmp, 0)) != GENIE_OK) {
        return st;
    }
    genie_ckpt_fault_point("fsynced");
    if (rename(tmp, path) != 0) {
        return genie_set_error(GENIE_ERR_IO, "genie: checkpoint %s: rename: %s", path, strerror(errno));
    }
    genie_ckpt_fault_point("renamed");
    snprintf(dir, sizeof(dir), "%s", path);
    if ((st = ckpt_fsync_path(dirname(dir), 1)) != GENIE_OK) {
        return st;
    }
    genie_ckpt_fault_point("directory fsynced");
    return GENIE_OK;
}

static int write_session(hid_t sessions, const genie_ckpt_session_t *s)
{
    char    name[32];
    hid_t   g;
    hsize_t dims[GENIE_MAX_DIMS];
    int     rc = -1;

    snprintf(name, sizeof(name), "%llu", (unsigned long long)s->id);
    if ((g = H5Gcreate2(sessions, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0) {
        return -1;
    }
    if (ckpt_attr_put(g, "id", H5T_STD_U64LE, &s->id) < 0 ||
        ckpt_attr_put(g, "key", H5T_STD_U64LE, &s->key) < 0 ||
        ckpt_attr_put(g, "model_fp", H5T_STD_U64LE, &s->model_fp) < 0 ||
        ckpt_attr_put(g, "step", H5T_STD_U64LE, &s->step) < 0 ||
        ckpt_attr_put(g, "prompt_len", H5T_STD_U64LE, &s->prompt_len) < 0 ||
        ckpt_attr_put(g, "batch", H5T_STD_U32LE, &s->batch) < 0 ||
        ckpt_attr_put(g, "n_kv", H5T_STD_U32LE, &s->n_kv) < 0) {
        goto out;
    }
    dims[0] = s->batch;
    dims[1] = s->n_tokens;
    if (ckpt_dset_write(g, "tokens", H5T_STD_I64LE, 2, dims, s->tokens, 8) < 0) {
        goto out;
    }
    dims[0] = s->n_lineage;
    dims[1] = GENIE_CKPT_LINEAGE_COLS;
    if (ckpt_dset_write(g, "lineage", H5T_STD_I64LE, 2, dims, s->lineage, 8) < 0) {
        goto out;
    }
    {
        hid_t l = H5Dopen2(g, "lineage", H5P_DEFAULT);
        int   bad = l < 0 || ckpt_attr_put_str(l, "columns",
                                               "step,phase,input_start,input_len,srg_nodes,epoch") < 0;
        if (l >= 0) {
            H5Dclose(l);
        }
        if (bad) {
            goto out;
        }
    }
    if (s->rng_len > 0) {
        dims[0] = s->rng_len;
        if (ckpt_dset_write(g, "rng", H5T_STD_U8LE, 1, dims, s->rng, 1) < 0) {
            goto out;
        }
    }
    genie_ckpt_fault_point("session metadata");
    for (uint32_t k = 0; k < s->n_kv; k++) {
        const genie_ckpt_kv_t *kv = &s->kv[k];
        char                   path[GENIE_CKPT_NAME_MAX + 8];
        hid_t                  d;

        for (int i = 0; i < kv->ndim; i++) {
            dims[i] = (hsize_t)kv->shape[i];
        }
        snprintf(path, sizeof(path), "kv/%s", kv->name);
        if (ckpt_dset_write(g, path, ckpt_h5_type(kv->dtype), kv->ndim, dims, kv->data,
                            genie_dtype_size(kv->dtype)) < 0) {
            goto out;
        }
        if ((d = H5Dopen2(g, path, H5P_DEFAULT)) < 0) {
            goto out;
        }
        if (ckpt_attr_put_str(d, "dtype", genie_dtype_name(kv->dtype)) < 0) {
            H5Dclose(d);
            goto out;
        }
        H5Dclose(d);
        genie_ckpt_fault_point("kv dataset");
    }
    rc = 0;
out:
    H5Gclose(g);
    return rc;
}

static genie_status_t check_session(const char *path, const genie_ckpt_session_t *s)
{
    if (s->id == 0 || s->batch < 1 || s->batch > CKPT_MAX_BATCH || s->n_tokens < 1 ||
        s->n_tokens > (uint64_t)CKPT_MAX_TOKENS || s->tokens == NULL ||
        s->prompt_len < 1 || s->prompt_len > s->n_tokens || s->n_kv > CKPT_MAX_KV ||
        s->rng_len > CKPT_MAX_RNG || (s->n_lineage > 0 && s->lineage == NULL)) {
        return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint %s: session %llu is malformed",
                               path, (unsigned long long)s->id);
    }
    for (uint32_t k = 0; k < s->n_kv; k++) {
        const genie_ckpt_kv_t *kv = &s->kv[k];
        if (!ckpt_name_ok(kv->name) || kv->ndim < 1 || kv->ndim > GENIE_MAX_DIMS ||
            ckpt_h5_type(kv->dtype) < 0 || kv->data == NULL) {
            return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint %s: session %llu: bad KV "
                                   "tensor '%.64s'", path, (unsigned long long)s->id, kv->name);
        }
        for (int i = 0; i < kv->ndim; i++) {
            if (kv->shape[i] < 1) {
                return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint %s: KV tensor %s has "
                                       "an empty dimension", path, kv->name);
            }
        }
    }
    return GENIE_OK;
}

genie_status_t genie_ckpt_write_rank(const char *path, const genie_ckpt_rank_info_t *info,
                                     const genie_ckpt_session_t *sessions, uint32_t n,
                                     uint64_t *bytes_p)
{
    char           tmp[4200];
    hid_t          f, g;
    int32_t        version = GENIE_CKPT_VERSION;
    double         created = (double)time(NULL);
    struct stat    sb;
    genie_status_t st;

    genie_ckpt_h5_init();
    if (n > CKPT_MAX_SESSIONS) {
        return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint %s: %u sessions", path, n);
    }
    for (uint32_t i = 0; i < n; i++) {
        if ((st = check_session(path, &sessions[i])) != GENIE_OK) {
            return st;
        }
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if ((f = create_tmp(tmp)) < 0) {
        return genie_set_error(GENIE_ERR_IO, "genie: checkpoint %s: cannot create it", tmp);
    }
    genie_ckpt_fault_point("created");
    if (ckpt_attr_put_str(f, "format", CKPT_FORMAT_RANK) < 0 ||
        ckpt_attr_put(f, "version", H5T_STD_I32LE, &version) < 0 ||
        ckpt_attr_put(f, "epoch", H5T_STD_U64LE, &info->epoch) < 0 ||
        ckpt_attr_put(f, "rank", H5T_STD_I32LE, &info->rank) < 0 ||
        ckpt_attr_put(f, "slice", H5T_STD_U32LE, &info->slice) < 0 ||
        ckpt_attr_put_str(f, "phase", info->phase) < 0 ||
        ckpt_attr_put_str(f, "job", info->job) < 0 ||
        ckpt_attr_put(f, "created", H5T_IEEE_F64LE, &created) < 0 ||
        ckpt_attr_put(f, "n_sessions", H5T_STD_U32LE, &n) < 0 ||
        (g = H5Gcreate2(f, "sessions", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0) {
        H5Fclose(f);
        unlink(tmp);
        return genie_set_error(GENIE_ERR_IO, "genie: checkpoint %s: cannot write its header", tmp);
    }
    for (uint32_t i = 0; i < n; i++) {
        if (write_session(g, &sessions[i]) < 0) {
            H5Gclose(g);
            H5Fclose(f);
            unlink(tmp);
            return genie_set_error(GENIE_ERR_IO, "genie: checkpoint %s: cannot write session %llu "
                                   "(disk full?)", tmp, (unsigned long long)sessions[i].id);
        }
    }
    H5Gclose(g);
    if ((st = commit(f, tmp, path)) != GENIE_OK) {
        unlink(tmp);
        return st;
    }
    if (bytes_p != NULL) {
        *bytes_p = stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    }
    return GENIE_OK;
}

genie_status_t genie_ckpt_write_manifest(const char *root, const genie_ckpt_manifest_t *m)
{
    char           dir[4096], path[4200], tmp[4300], fpath[4400];
    hid_t          f, g;
    int32_t        version = GENIE_CKPT_VERSION;
    uint32_t       n_sessions = 0;
    struct stat    sb;
    genie_status_t st;

    genie_ckpt_h5_init();
    if ((st = genie_ckpt_epoch_path(root, m->epoch, dir, sizeof(dir))) != GENIE_OK) {
        return st;
    }
    for (uint32_t i = 0; i < m->n_files; i++) {
        const genie_ckpt_file_entry_t *e = &m->files[i];
        if (strchr(e->name, '/') != NULL || e->name[0] == '.' || e->name[0] == '\0') {
            return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint manifest: bad file name '%s'",
                                   e->name);
        }
        snprintf(fpath, sizeof(fpath), "%s/%s", dir, e->name);
        if (stat(fpath, &sb) != 0 || (uint64_t)sb.st_size != e->bytes) {
            return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint manifest: %s %s", fpath,
                                   stat(fpath, &sb) != 0 ? "does not exist" : "has another size");
        }
        n_sessions += e->sessions;
    }
    snprintf(path, sizeof(path), "%s/%s", dir, CKPT_MANIFEST);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if ((f = create_tmp(tmp)) < 0) {
        return genie_set_error(GENIE_ERR_IO, "genie: checkpoint %s: cannot create it", tmp);
    }
    genie_ckpt_fault_point("manifest created");
    if (ckpt_attr_put_str(f, "format", CKPT_FORMAT_MANIFEST) < 0 ||
        ckpt_attr_put(f, "version", H5T_STD_I32LE, &version) < 0 ||
        ckpt_attr_put(f, "epoch", H5T_STD_U64LE, &m->epoch) < 0 ||
        ckpt_attr_put_str(f, "job", m->job) < 0 ||
        ckpt_attr_put_str(f, "phases", m->phases) < 0 ||
        ckpt_attr_put_str(f, "reason", m->reason) < 0 ||
        ckpt_attr_put(f, "created", H5T_IEEE_F64LE, &m->created) < 0 ||
        ckpt_attr_put(f, "n_files", H5T_STD_U32LE, &m->n_files) < 0 ||
        ckpt_attr_put(f, "n_sessions", H5T_STD_U32LE, &n_sessions) < 0 ||
        (g = H5Gcreate2(f, "files", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0) {
        goto err;
    }
    for (uint32_t i = 0; i < m->n_files; i++) {
        const genie_ckpt_file_entry_t *e = &m->files[i];
        hid_t fg = H5Gcreate2(g, e->name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        int   bad = fg < 0 || ckpt_attr_put(fg, "rank", H5T_STD_I32LE, &e->rank) < 0 ||
                    ckpt_attr_put(fg, "bytes", H5T_STD_U64LE, &e->bytes) < 0 ||
                    ckpt_attr_put(fg, "sessions", H5T_STD_U32LE, &e->sessions) < 0;
        if (fg >= 0) {
            H5Gclose(fg);
        }
        if (bad) {
            H5Gclose(g);
            goto err;
        }
    }
    H5Gclose(g);
    {
        hsize_t dims[1] = { m->n_model_fps };
        if (ckpt_dset_write(f, "model_fps", H5T_STD_U64LE, 1, dims, m->model_fps, 8) < 0) {
            goto err;
        }
    }
    if ((st = commit(f, tmp, path)) != GENIE_OK) {
        unlink(tmp);
        return st;
    }
    return GENIE_OK;
err:
    H5Fclose(f);
    unlink(tmp);
    return genie_set_error(GENIE_ERR_IO, "genie: checkpoint %s: cannot write it", tmp);
}

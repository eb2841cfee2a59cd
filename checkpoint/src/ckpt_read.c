/*
 * Reading checkpoints: which epochs are complete, an epoch's manifest and
 * session metadata, KV tensors (checksums verified), full verification and
 * pruning.  Everything read from a file is bounded and checked before use;
 * a file that fails a check is reported in one line naming it and the
 * object, never trusted.  Layout: docs/checkpoint-format.md.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
/* Messages and paths are cut at their buffer's size on purpose: a long
 * path must not turn a one-line report into an error of its own. */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt_h5.h"

struct genie_ckpt_file {
    hid_t f;
    char  path[4200];
};

static hid_t open_ro(const char *path)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), f;

    if (fapl < 0) {
        return -1;
    }
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
#if H5_VERSION_GE(1, 10, 7)
    H5Pset_file_locking(fapl, 0, 1);
#endif
    f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    return f;
}

/* Epoch numbers under root, ascending (caller frees). */
static genie_status_t scan_epochs(const char *root, uint64_t **ep_p, uint32_t *n_p)
{
    DIR           *d = opendir(root);
    struct dirent *e;
    uint64_t      *ep = NULL;
    uint32_t       n = 0, cap = 0;

    if (d == NULL) {
        return genie_set_error(GENIE_ERR_NOT_FOUND, "genie: checkpoint directory %s: %s", root,
                               strerror(errno));
    }
    while ((e = readdir(d)) != NULL) {
        char    *end;
        uint64_t v;

        if (strncmp(e->d_name, "epoch-", 6) != 0 || e->d_name[6] == '\0') {
            continue;
        }
        v = strtoull(e->d_name + 6, &end, 10);
        if (*end != '\0' || v == 0) {
            continue;
        }
        if (n == cap) {
            uint64_t *nep = realloc(ep, (cap = cap * 2 + 16) * sizeof(*ep));
            if (nep == NULL) {
                free(ep);
                closedir(d);
                return genie_set_error(GENIE_ERR_NOMEM, "out of memory");
            }
            ep = nep;
        }
        ep[n++] = v;
    }
    closedir(d);
    for (uint32_t i = 1; i < n; i++) {          /* insertion sort: few epochs */
        for (uint32_t j = i; j > 0 && ep[j - 1] > ep[j]; j--) {
            uint64_t t = ep[j];
            ep[j] = ep[j - 1];
            ep[j - 1] = t;
        }
    }
    *ep_p = ep;
    *n_p  = n;
    return GENIE_OK;
}

static void free_manifest(genie_ckpt_manifest_t *m)
{
    free(m->model_fps);
    free(m->files);
    m->model_fps = NULL;
    m->files = NULL;
}

typedef struct file_iter {
    genie_ckpt_manifest_t *m;
    const char            *path;
    uint32_t               i;
    int                    bad;
} file_iter_t;

static herr_t read_file_entry(hid_t g, const char *name, const H5L_info_t *info, void *arg)
{
    file_iter_t            *it = arg;
    genie_ckpt_file_entry_t *e;
    hid_t                   fg;

    (void)info;
    if (it->i >= it->m->n_files || strlen(name) >= GENIE_CKPT_NAME_MAX ||
        strncmp(name, "rank-", 5) != 0 || strchr(name, '/') != NULL) {
        it->bad = 1;
        return 1;
    }
    e = &it->m->files[it->i];
    snprintf(e->name, sizeof(e->name), "%s", name);
    if ((fg = H5Gopen2(g, name, H5P_DEFAULT)) < 0) {
        it->bad = 1;
        return 1;
    }
    if (ckpt_attr_get(fg, "rank", H5T_NATIVE_INT32, &e->rank) < 0 ||
        ckpt_attr_get(fg, "bytes", H5T_NATIVE_UINT64, &e->bytes) < 0 ||
        ckpt_attr_get(fg, "sessions", H5T_NATIVE_UINT32, &e->sessions) < 0 ||
        e->sessions > CKPT_MAX_SESSIONS) {
        it->bad = 1;
    }
    H5Gclose(fg);
    it->i++;
    return it->bad ? 1 : 0;
}

/* Read and check <dir>/manifest.h5 and the files it lists (size).  On
 * failure why (cap) says why in one line. */
static int read_manifest(const char *dir, genie_ckpt_manifest_t *m, char *why, size_t cap)
{
    char        path[4200], fpath[4400], fmt[64];
    hid_t       f, g = -1;
    int32_t     version = 0;
    struct stat sb;
    file_iter_t it = { m, path, 0, 0 };
    int         ok = 0;

    memset(m, 0, sizeof(*m));
    snprintf(path, sizeof(path), "%s/%s", dir, CKPT_MANIFEST);
    if (stat(path, &sb) != 0) {
        snprintf(why, cap, "no manifest (the checkpoint was not committed)");
        return 0;
    }
    if ((f = open_ro(path)) < 0) {
        snprintf(why, cap, "%s is not a readable HDF5 file", path);
        return 0;
    }
    if (ckpt_attr_get_str(f, "format", fmt, sizeof(fmt)) < 0 || strcmp(fmt, CKPT_FORMAT_MANIFEST) != 0 ||
        ckpt_attr_get(f, "version", H5T_NATIVE_INT32, &version) < 0) {
        snprintf(why, cap, "%s is not a Genie checkpoint manifest", path);
        goto out;
    }
    if (version != GENIE_CKPT_VERSION) {
        snprintf(why, cap, "%s has format version %d, this build reads %d", path, (int)version,
                 GENIE_CKPT_VERSION);
        goto out;
    }
    if (ckpt_attr_get(f, "epoch", H5T_NATIVE_UINT64, &m->epoch) < 0 ||
        ckpt_attr_get_str(f, "job", m->job, sizeof(m->job)) < 0 ||
        ckpt_attr_get_str(f, "phases", m->phases, sizeof(m->phases)) < 0 ||
        ckpt_attr_get_str(f, "reason", m->reason, sizeof(m->reason)) < 0 ||
        ckpt_attr_get(f, "created", H5T_NATIVE_DOUBLE, &m->created) < 0 ||
        ckpt_attr_get(f, "n_files", H5T_NATIVE_UINT32, &m->n_files) < 0 ||
        m->n_files > CKPT_MAX_SESSIONS) {
        snprintf(why, cap, "%s: missing or bad attributes", path);
        goto out;
    }
    {
        hid_t   d = H5Dopen2(f, "model_fps", H5P_DEFAULT), sp;
        hsize_t n = 0;
        if (d < 0 || (sp = H5Dget_space(d)) < 0 || H5Sget_simple_extent_ndims(sp) != 1) {
            if (d >= 0) {
                H5Dclose(d);
            }
            snprintf(why, cap, "%s: no model_fps dataset", path);
            goto out;
        }
        H5Sget_simple_extent_dims(sp, &n, NULL);
        H5Sclose(sp);
        H5Dclose(d);
        if (n > 4096 || (m->model_fps = calloc(n + 1, 8)) == NULL) {
            snprintf(why, cap, "%s: %llu model fingerprints", path, (unsigned long long)n);
            goto out;
        }
        m->n_model_fps = (uint32_t)n;
        if (ckpt_dset_read(f, path, "model_fps", H5T_NATIVE_UINT64, m->model_fps, n * 8) != GENIE_OK) {
            snprintf(why, cap, "%s", genie_last_error());
            goto out;
        }
    }
    if ((m->files = calloc(m->n_files + 1, sizeof(*m->files))) == NULL ||
        (g = H5Gopen2(f, "files", H5P_DEFAULT)) < 0 ||
        H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, read_file_entry, &it) < 0 || it.bad ||
        it.i != m->n_files) {
        snprintf(why, cap, "%s: bad file list", path);
        goto out;
    }
    for (uint32_t i = 0; i < m->n_files; i++) {
        snprintf(fpath, sizeof(fpath), "%s/%s", dir, m->files[i].name);
        if (stat(fpath, &sb) != 0) {
            snprintf(why, cap, "%s is missing", fpath);
            goto out;
        }
        if ((uint64_t)sb.st_size != m->files[i].bytes) {
            snprintf(why, cap, "%s has %lld bytes, the manifest says %llu", fpath,
                     (long long)sb.st_size, (unsigned long long)m->files[i].bytes);
            goto out;
        }
    }
    ok = 1;
out:
    if (g >= 0) {
        H5Gclose(g);
    }
    H5Fclose(f);
    H5Eclear2(H5E_DEFAULT);
    if (!ok) {
        free_manifest(m);
    }
    return ok;
}

genie_status_t genie_ckpt_list(const char *root, genie_ckpt_epoch_info_t **epochs_p, uint32_t *n_p)
{
    uint64_t                *ep = NULL;
    uint32_t                 n = 0;
    genie_ckpt_epoch_info_t *out;
    genie_status_t           st;

    genie_ckpt_h5_init();
    if ((st = scan_epochs(root, &ep, &n)) != GENIE_OK) {
        return st;
    }
    if ((out = calloc(n + 1, sizeof(*out))) == NULL) {
        free(ep);
        return genie_set_error(GENIE_ERR_NOMEM, "out of memory");
    }
    for (uint32_t i = 0; i < n; i++) {
        genie_ckpt_manifest_t m;
        char                  dir[4096];

        out[i].epoch = ep[i];
        genie_ckpt_epoch_path(root, ep[i], dir, sizeof(dir));
        out[i].complete = read_manifest(dir, &m, out[i].why, sizeof(out[i].why));
        if (out[i].complete) {
            out[i].n_files = m.n_files;
            out[i].created = m.created;
            snprintf(out[i].reason, sizeof(out[i].reason), "%s", m.reason);
            for (uint32_t k = 0; k < m.n_files; k++) {
                out[i].n_sessions += m.files[k].sessions;
                out[i].bytes += m.files[k].bytes;
            }
            free_manifest(&m);
        }
    }
    free(ep);
    *epochs_p = out;
    *n_p = n;
    return GENIE_OK;
}

/* ---- session metadata ----------------------------------------------------- */

typedef struct sess_iter {
    genie_ckpt_t *ck;
    const char   *path;
    const char   *file;
    int32_t       rank;
    uint32_t      limit;
    genie_status_t st;
} sess_iter_t;

typedef struct kv_iter {
    genie_ckpt_session_t *s;
    const char           *path;
    char                  prefix[GENIE_CKPT_NAME_MAX];
    genie_status_t        st;
} kv_iter_t;

static herr_t read_kv_entry(hid_t g, const char *name, const H5L_info_t *info, void *arg);

/* One KV dataset or one layer group under kv/. */
static herr_t read_kv_entry(hid_t g, const char *name, const H5L_info_t *info, void *arg)
{
    kv_iter_t  *it = arg;
    H5O_info_t  oi;
    char        full[GENIE_CKPT_NAME_MAX * 2];
    (void)info;

    snprintf(full, sizeof(full), "%s%s", it->prefix, name);
    if (strlen(full) >= GENIE_CKPT_NAME_MAX || !ckpt_name_ok(full) ||
        H5Oget_info_by_name2(g, name, &oi, H5O_INFO_BASIC, H5P_DEFAULT) < 0) {
        it->st = genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: session %llu: bad KV "
                                 "name '%.64s'", it->path, (unsigned long long)it->s->id, full);
        return 1;
    }
    if (oi.type == H5O_TYPE_GROUP) {
        kv_iter_t sub = *it;
        hid_t     sg;
        if (it->prefix[0] != '\0' || (sg = H5Gopen2(g, name, H5P_DEFAULT)) < 0) {
            it->st = genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: KV groups nest too deep",
                                     it->path);
            return 1;
        }
        snprintf(sub.prefix, sizeof(sub.prefix), "%s/", name);
        H5Literate(sg, H5_INDEX_NAME, H5_ITER_INC, NULL, read_kv_entry, &sub);
        H5Gclose(sg);
        it->st = sub.st;
        return it->st != GENIE_OK;
    }
    if (it->s->n_kv >= CKPT_MAX_KV) {
        it->st = genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: too many KV tensors", it->path);
        return 1;
    }
    {
        genie_ckpt_kv_t *kv = &it->s->kv[it->s->n_kv];
        hid_t            d = H5Dopen2(g, name, H5P_DEFAULT), sp = -1;
        hsize_t          dims[GENIE_MAX_DIMS + 1];
        char             dt[16];
        int              nd = -1;

        if (d >= 0 && (sp = H5Dget_space(d)) >= 0) {
            nd = H5Sget_simple_extent_ndims(sp);
        }
        if (d < 0 || sp < 0 || nd < 1 || nd > GENIE_MAX_DIMS ||
            ckpt_attr_get_str(d, "dtype", dt, sizeof(dt)) < 0 || !ckpt_dtype_from_name(dt, &kv->dtype)) {
            it->st = genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: dataset /sessions/%llu/kv/%s "
                                     "has a bad shape or dtype", it->path,
                                     (unsigned long long)it->s->id, full);
        } else {
            H5Sget_simple_extent_dims(sp, dims, NULL);
            kv->ndim = nd;
            for (int i = 0; i < nd; i++) {
                if (dims[i] < 1 || dims[i] > (1ULL << 40)) {
                    it->st = genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: dataset "
                                             "/sessions/%llu/kv/%s has a bad shape", it->path,
                                             (unsigned long long)it->s->id, full);
                }
                kv->shape[i] = (int64_t)dims[i];
            }
            snprintf(kv->name, sizeof(kv->name), "%s", full);
            it->s->n_kv++;
        }
        if (sp >= 0) {
            H5Sclose(sp);
        }
        if (d >= 0) {
            H5Dclose(d);
        }
    }
    return it->st != GENIE_OK;
}

/* A 2-D int64 dataset (rows, cols) with `cols` fixed (0: any). */
static genie_status_t read_i64_2d(hid_t g, const char *path, const char *name, uint64_t sid,
                                  uint64_t cols, uint64_t max_rows, int64_t **data_p, uint64_t *rows_p,
                                  uint64_t *cols_p)
{
    hid_t   d = H5Dopen2(g, name, H5P_DEFAULT), sp = -1;
    hsize_t dims[2] = {0, 0};
    char    dpath[96];
    int     nd = -1;

    snprintf(dpath, sizeof(dpath), "/sessions/%llu/%s", (unsigned long long)sid, name);
    if (d >= 0 && (sp = H5Dget_space(d)) >= 0) {
        nd = H5Sget_simple_extent_ndims(sp);
    }
    if (nd == 2) {
        H5Sget_simple_extent_dims(sp, dims, NULL);
    }
    if (sp >= 0) {
        H5Sclose(sp);
    }
    if (d >= 0) {
        H5Dclose(d);
    }
    if (nd != 2 || dims[0] > max_rows || (cols != 0 && dims[1] != cols) || dims[1] > (1ULL << 24)) {
        return genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: dataset %s has a bad shape",
                               path, dpath);
    }
    if ((*data_p = calloc(dims[0] * dims[1] + 1, 8)) == NULL) {
        return genie_set_error(GENIE_ERR_NOMEM, "out of memory");
    }
    *rows_p = dims[0];
    *cols_p = dims[1];
    return ckpt_dset_read(g, path, name, H5T_NATIVE_INT64, *data_p, dims[0] * dims[1] * 8) == GENIE_OK
               ? GENIE_OK
               : genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: dataset %s %s", path, dpath,
                                 strstr(genie_last_error(), "Fletcher32") ? "failed its Fletcher32 checksum"
                                                                          : "could not be read");
}

static void free_session(genie_ckpt_session_t *s)
{
    free(s->tokens);
    free(s->rng);
    free(s->lineage);
    free(s->kv);
}

static herr_t read_session(hid_t sessions, const char *name, const H5L_info_t *info, void *arg)
{
    sess_iter_t          *it = arg;
    genie_ckpt_t         *ck = it->ck;
    genie_ckpt_session_t *s;
    hid_t                 g;
    uint64_t              rows, cols;
    kv_iter_t             kvi;
    (void)info;

    if (ck->n_sessions >= it->limit) {
        it->st = genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: more sessions than it says",
                                 it->path);
        return 1;
    }
    s = &ck->sessions[ck->n_sessions];
    memset(s, 0, sizeof(*s));
    if ((g = H5Gopen2(sessions, name, H5P_DEFAULT)) < 0) {
        it->st = genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: bad session %.32s", it->path, name);
        return 1;
    }
    if (ckpt_attr_get(g, "id", H5T_NATIVE_UINT64, &s->id) < 0 ||
        ckpt_attr_get(g, "key", H5T_NATIVE_UINT64, &s->key) < 0 ||
        ckpt_attr_get(g, "model_fp", H5T_NATIVE_UINT64, &s->model_fp) < 0 ||
        ckpt_attr_get(g, "step", H5T_NATIVE_UINT64, &s->step) < 0 ||
        ckpt_attr_get(g, "prompt_len", H5T_NATIVE_UINT64, &s->prompt_len) < 0 ||
        ckpt_attr_get(g, "batch", H5T_NATIVE_UINT32, &s->batch) < 0 || s->id == 0 ||
        s->batch < 1 || s->batch > CKPT_MAX_BATCH) {
        it->st = genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: session %.32s has missing or "
                                 "bad attributes", it->path, name);
        goto out;
    }
    if ((it->st = read_i64_2d(g, it->path, "tokens", s->id, 0, s->batch, &s->tokens, &rows,
                              &s->n_tokens)) != GENIE_OK) {
        goto out;
    }
    if (rows != s->batch || s->prompt_len < 1 || s->prompt_len > s->n_tokens ||
        s->step != s->n_tokens - s->prompt_len) {
        it->st = genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: session %llu: tokens do not "
                                 "match its batch, prompt and step", it->path, (unsigned long long)s->id);
        goto out;
    }
    if ((it->st = read_i64_2d(g, it->path, "lineage", s->id, GENIE_CKPT_LINEAGE_COLS, CKPT_MAX_LINEAGE,
                              &s->lineage, &rows, &cols)) != GENIE_OK) {
        goto out;
    }
    s->n_lineage = (uint32_t)rows;
    if (H5Lexists(g, "rng", H5P_DEFAULT) > 0) {
        hid_t   d = H5Dopen2(g, "rng", H5P_DEFAULT), sp = d >= 0 ? H5Dget_space(d) : -1;
        hsize_t n = 0;
        if (sp >= 0 && H5Sget_simple_extent_ndims(sp) == 1) {
            H5Sget_simple_extent_dims(sp, &n, NULL);
        }
        if (sp >= 0) {
            H5Sclose(sp);
        }
        if (d >= 0) {
            H5Dclose(d);
        }
        if (n < 1 || n > CKPT_MAX_RNG || (s->rng = malloc(n)) == NULL) {
            it->st = genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: dataset /sessions/%llu/rng "
                                     "has a bad shape", it->path, (unsigned long long)s->id);
            goto out;
        }
        s->rng_len = (uint32_t)n;
        if ((it->st = ckpt_dset_read(g, it->path, "rng", H5T_NATIVE_UINT8, s->rng, n)) != GENIE_OK) {
            genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: dataset /sessions/%llu/rng failed "
                            "its checksum or could not be read", it->path, (unsigned long long)s->id);
            goto out;
        }
    }
    if ((s->kv = calloc(CKPT_MAX_KV, sizeof(*s->kv))) == NULL) {
        it->st = genie_set_error(GENIE_ERR_NOMEM, "out of memory");
        goto out;
    }
    memset(&kvi, 0, sizeof(kvi));
    kvi.s = s;
    kvi.path = it->path;
    {
        hid_t kg = H5Gopen2(g, "kv", H5P_DEFAULT);
        if (kg < 0) {
            it->st = genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: session %llu has no kv group",
                                     it->path, (unsigned long long)s->id);
            goto out;
        }
        H5Literate(kg, H5_INDEX_NAME, H5_ITER_INC, NULL, read_kv_entry, &kvi);
        H5Gclose(kg);
        if ((it->st = kvi.st) != GENIE_OK) {
            goto out;
        }
    }
    snprintf(s->file, sizeof(s->file), "%s", it->file);
    s->rank = it->rank;
    ck->n_sessions++;
out:
    H5Gclose(g);
    if (it->st != GENIE_OK) {
        free_session(s);
        memset(s, 0, sizeof(*s));
        return 1;
    }
    return 0;
}

static int cmp_sessions(const void *a, const void *b)
{
    const genie_ckpt_session_t *x = a, *y = b;
    if (x->rank != y->rank) {
        return x->rank < y->rank ? -1 : 1;
    }
    return x->id < y->id ? -1 : x->id > y->id;
}

void genie_ckpt_close(genie_ckpt_t *ck)
{
    if (ck == NULL) {
        return;
    }
    for (uint32_t i = 0; i < ck->n_sessions; i++) {
        free_session(&ck->sessions[i]);
    }
    free(ck->sessions);
    free_manifest(&ck->manifest);
    free(ck);
}

/* Open one epoch directory whose manifest is complete. */
static genie_status_t open_epoch(const char *dir, genie_ckpt_t **ck_p, char *why, size_t cap)
{
    genie_ckpt_t *ck = calloc(1, sizeof(*ck));
    uint32_t      total = 0;

    if (ck == NULL) {
        return genie_set_error(GENIE_ERR_NOMEM, "out of memory");
    }
    snprintf(ck->dir, sizeof(ck->dir), "%s", dir);
    if (!read_manifest(dir, &ck->manifest, why, cap)) {
        free(ck);
        return genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: %s", dir, why);
    }
    for (uint32_t i = 0; i < ck->manifest.n_files; i++) {
        total += ck->manifest.files[i].sessions;
    }
    if ((ck->sessions = calloc(total + 1, sizeof(*ck->sessions))) == NULL) {
        genie_ckpt_close(ck);
        return genie_set_error(GENIE_ERR_NOMEM, "out of memory");
    }
    for (uint32_t i = 0; i < ck->manifest.n_files; i++) {
        const genie_ckpt_file_entry_t *e = &ck->manifest.files[i];
        char        path[4400], fmt[64];
        sess_iter_t it = { ck, path, e->name, e->rank, ck->n_sessions + e->sessions, GENIE_OK };
        uint32_t    before = ck->n_sessions;
        hid_t       f, g;

        snprintf(path, sizeof(path), "%s/%s", dir, e->name);
        if ((f = open_ro(path)) < 0) {
            snprintf(why, cap, "%s is not a readable HDF5 file", path);
            genie_ckpt_close(ck);
            return genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s", why);
        }
        if (ckpt_attr_get_str(f, "format", fmt, sizeof(fmt)) < 0 || strcmp(fmt, CKPT_FORMAT_RANK) != 0 ||
            (g = H5Gopen2(f, "sessions", H5P_DEFAULT)) < 0) {
            H5Fclose(f);
            snprintf(why, cap, "%s is not a Genie checkpoint rank file", path);
            genie_ckpt_close(ck);
            return genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s", why);
        }
        H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, read_session, &it);
        H5Gclose(g);
        H5Fclose(f);
        H5Eclear2(H5E_DEFAULT);
        if (it.st == GENIE_OK && ck->n_sessions - before != e->sessions) {
            it.st = genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s holds %u sessions, the "
                                    "manifest says %u", path, ck->n_sessions - before, e->sessions);
        }
        if (it.st != GENIE_OK) {
            snprintf(why, cap, "%s", genie_last_error());
            genie_ckpt_close(ck);
            return it.st;
        }
    }
    qsort(ck->sessions, ck->n_sessions, sizeof(*ck->sessions), cmp_sessions);
    *ck_p = ck;
    return GENIE_OK;
}

genie_status_t genie_ckpt_open(const char *root, uint64_t epoch,
                               void (*skipped)(uint64_t epoch, const char *why, void *arg),
                               void *arg, genie_ckpt_t **ck_p)
{
    uint64_t      *ep = NULL;
    uint32_t       n = 0;
    char           dir[4096], why[GENIE_CKPT_TEXT_MAX * 2];
    genie_status_t st;

    genie_ckpt_h5_init();
    if (epoch != 0) {
        if ((st = genie_ckpt_epoch_path(root, epoch, dir, sizeof(dir))) != GENIE_OK) {
            return st;
        }
        return open_epoch(dir, ck_p, why, sizeof(why));
    }
    if ((st = scan_epochs(root, &ep, &n)) != GENIE_OK) {
        return st;
    }
    for (uint32_t i = n; i-- > 0;) {
        genie_ckpt_epoch_path(root, ep[i], dir, sizeof(dir));
        if (open_epoch(dir, ck_p, why, sizeof(why)) == GENIE_OK) {
            free(ep);
            return GENIE_OK;
        }
        if (skipped != NULL) {
            skipped(ep[i], why, arg);
        }
    }
    free(ep);
    return genie_set_error(GENIE_ERR_NOT_FOUND, "genie: no complete checkpoint in %s", root);
}

/* ---- KV data ------------------------------------------------------------------- */

genie_status_t genie_ckpt_file_open(const char *path, genie_ckpt_file_t **f_p)
{
    genie_ckpt_file_t *f = calloc(1, sizeof(*f));
    char               fmt[64];

    genie_ckpt_h5_init();
    if (f == NULL) {
        return genie_set_error(GENIE_ERR_NOMEM, "out of memory");
    }
    snprintf(f->path, sizeof(f->path), "%s", path);
    if ((f->f = open_ro(path)) < 0) {
        free(f);
        H5Eclear2(H5E_DEFAULT);
        return genie_set_error(GENIE_ERR_IO, "genie: checkpoint %s: cannot open it", path);
    }
    if (ckpt_attr_get_str(f->f, "format", fmt, sizeof(fmt)) < 0 || strcmp(fmt, CKPT_FORMAT_RANK) != 0) {
        H5Fclose(f->f);
        free(f);
        return genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s is not a rank file", path);
    }
    *f_p = f;
    return GENIE_OK;
}

genie_status_t genie_ckpt_file_read_kv(genie_ckpt_file_t *f, uint64_t session_id, const char *name,
                                       genie_dtype_t dtype, int ndim, const int64_t *shape,
                                       void *buf, uint64_t nbytes)
{
    char           path[GENIE_CKPT_NAME_MAX + 48], dt[16];
    hid_t          d, sp = -1;
    hsize_t        dims[GENIE_MAX_DIMS];
    uint64_t       numel = 1;
    int            nd = -1, ok;
    genie_status_t st;

    if (!ckpt_name_ok(name) || ckpt_h5_type(dtype) < 0 || ndim < 1 || ndim > GENIE_MAX_DIMS) {
        return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint: bad KV request '%.64s'", name);
    }
    snprintf(path, sizeof(path), "/sessions/%llu/kv/%s", (unsigned long long)session_id, name);
    if ((d = H5Dopen2(f->f, path, H5P_DEFAULT)) < 0) {
        H5Eclear2(H5E_DEFAULT);
        return genie_set_error(GENIE_ERR_NOT_FOUND, "%s: no dataset %s", f->path, path);
    }
    if ((sp = H5Dget_space(d)) >= 0) {
        nd = H5Sget_simple_extent_ndims(sp);
    }
    ok = nd == ndim && ckpt_attr_get_str(d, "dtype", dt, sizeof(dt)) == 0 &&
         strcmp(dt, genie_dtype_name(dtype)) == 0;
    if (ok) {
        H5Sget_simple_extent_dims(sp, dims, NULL);
        for (int i = 0; i < ndim; i++) {
            ok &= dims[i] == (hsize_t)shape[i];
            numel *= (uint64_t)shape[i];
        }
        ok &= numel * genie_dtype_size(dtype) == nbytes;
    }
    if (sp >= 0) {
        H5Sclose(sp);
    }
    H5Dclose(d);
    if (!ok) {
        return genie_set_error(GENIE_ERR_CORRUPT, "%s: dataset %s does not have the expected dtype "
                               "and shape", f->path, path);
    }
    st = ckpt_dset_read(f->f, f->path, path, ckpt_h5_type(dtype), buf, nbytes);
    return st;
}

void genie_ckpt_file_close(genie_ckpt_file_t *f)
{
    if (f != NULL) {
        H5Fclose(f->f);
        free(f);
    }
}

/* ---- verify ---------------------------------------------------------------------- */

typedef struct verify_ctx {
    hid_t        f;
    const char  *file;
    void       (*report)(const char *, const char *, genie_status_t, const char *, void *);
    void        *arg;
    uint32_t     bad, total;
} verify_ctx_t;

static herr_t verify_one(hid_t obj, const char *name, const H5O_info_t *info, void *arg)
{
    verify_ctx_t  *v = arg;
    hid_t          d, sp, t;
    char           path[512];
    uint64_t       n = 0;
    size_t         sz;
    void          *buf;
    genie_status_t st = GENIE_OK;

    (void)obj;
    if (info->type != H5O_TYPE_DATASET) {
        return 0;
    }
    snprintf(path, sizeof(path), "/%s", name);
    if ((d = H5Dopen2(v->f, path, H5P_DEFAULT)) < 0) {
        return 0;
    }
    sp = H5Dget_space(d);
    t  = H5Dget_type(d);
    n  = sp >= 0 ? (uint64_t)H5Sget_simple_extent_npoints(sp) : 0;
    sz = t >= 0 ? H5Tget_size(t) : 0;
    if (sz == 0 || sz > 16 || n > (1ULL << 36) || (buf = malloc(n * sz + 1)) == NULL) {
        st = genie_set_error(GENIE_ERR_CORRUPT, "%s: dataset %s has a bad type or size", v->file, path);
    } else {
        st = ckpt_dset_read(v->f, v->file, path, t, buf, n * sz);
        free(buf);
    }
    if (t >= 0) {
        H5Tclose(t);
    }
    if (sp >= 0) {
        H5Sclose(sp);
    }
    H5Dclose(d);
    v->total++;
    v->bad += st != GENIE_OK;
    if (v->report != NULL) {
        v->report(v->file, path, st, st == GENIE_OK ? "ok" : genie_last_error(), v->arg);
    }
    return 0;
}

genie_status_t genie_ckpt_verify(const char *epoch_dir,
                                 void (*report)(const char *file, const char *dataset,
                                                genie_status_t st, const char *msg, void *arg),
                                 void *arg, uint32_t *n_bad_p)
{
    genie_ckpt_manifest_t m;
    char                  why[GENIE_CKPT_TEXT_MAX * 2], path[4400];
    verify_ctx_t          v = { -1, NULL, report, arg, 0, 0 };
    DIR                  *dd;
    struct dirent        *e;

    genie_ckpt_h5_init();
    if (!read_manifest(epoch_dir, &m, why, sizeof(why))) {
        if (report != NULL) {
            report(epoch_dir, CKPT_MANIFEST, GENIE_ERR_CORRUPT, why, arg);
        }
        v.bad++;
    } else {
        free_manifest(&m);
    }
    if ((dd = opendir(epoch_dir)) == NULL) {
        return genie_set_error(GENIE_ERR_NOT_FOUND, "genie: %s: %s", epoch_dir, strerror(errno));
    }
    while ((e = readdir(dd)) != NULL) {
        size_t l = strlen(e->d_name);
        if (strncmp(e->d_name, "rank-", 5) != 0 || l < 4 || strcmp(e->d_name + l - 3, ".h5") != 0) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", epoch_dir, e->d_name);
        if ((v.f = open_ro(path)) < 0) {
            H5Eclear2(H5E_DEFAULT);
            v.bad++;
            if (report != NULL) {
                report(path, "/", GENIE_ERR_CORRUPT, "not a readable HDF5 file", arg);
            }
            continue;
        }
        v.file = path;
        H5Ovisit2(v.f, H5_INDEX_NAME, H5_ITER_INC, verify_one, &v, H5O_INFO_BASIC);
        H5Fclose(v.f);
        H5Eclear2(H5E_DEFAULT);
    }
    closedir(dd);
    if (n_bad_p != NULL) {
        *n_bad_p = v.bad;
    }
    return GENIE_OK;
}

/* ---- prune ------------------------------------------------------------------------- */

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

genie_status_t genie_ckpt_prune(const char *root, uint32_t keep, uint32_t *removed_p)
{
    genie_ckpt_epoch_info_t *eps = NULL;
    uint32_t                 n = 0, removed = 0, kept = 0;
    uint64_t                 newest_complete = 0;
    genie_status_t           st;

    if ((st = genie_ckpt_list(root, &eps, &n)) != GENIE_OK) {
        return st;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (eps[i].complete) {
            newest_complete = eps[i].epoch;
        }
    }
    for (uint32_t i = n; i-- > 0;) {
        char dir[4096];
        int  drop;

        if (eps[i].complete) {
            drop = ++kept > keep;
        } else {
            drop = eps[i].epoch < newest_complete;   /* a later one may be being written */
        }
        if (drop && genie_ckpt_epoch_path(root, eps[i].epoch, dir, sizeof(dir)) == GENIE_OK &&
            nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0) {
            removed++;
        }
    }
    free(eps);
    if (removed_p != NULL) {
        *removed_p = removed;
    }
    return GENIE_OK;
}

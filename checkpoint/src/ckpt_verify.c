/*
 * Verifying an epoch: every dataset of every file is read, chunk by chunk
 * (HDF5 checks each chunk's Fletcher32 checksum as it reads), and each rank
 * file's metadata is checked the way genie_ckpt_open checks it.  The files
 * are those the manifest lists, plus the manifest itself; without a usable
 * manifest, every committed rank-*.h5 file in the directory (and the
 * report says so).  One report per dataset, and one per file whose
 * structure fails (dataset "/"); a dataset already reported bad is not
 * reported again through its file's structure.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
/* Messages and paths are cut at their buffer's size on purpose: a long
 * path must not turn a one-line report into an error of its own. */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ckpt_h5.h"
#include "ckpt_int.h"

typedef void (*report_fn)(const char *file, const char *dataset, genie_status_t st, const char *msg,
                          void *arg);

typedef struct verify_ctx {
    hid_t       f;
    const char *file;
    report_fn   report;
    void       *arg;
    uint32_t    bad;              /* in all files        */
    uint32_t    bad_here;         /* in the current file */
    void       *buf;              /* one chunk            */
    size_t      buf_cap;
} verify_ctx_t;

static void say(verify_ctx_t *v, const char *file, const char *dataset, genie_status_t st)
{
    if (st != GENIE_OK) {
        v->bad++;
        v->bad_here++;
    }
    if (v->report != NULL) {
        v->report(file, dataset, st, st == GENIE_OK ? "ok" : genie_last_error(), v->arg);
    }
}

/* Read dataset d chunk by chunk into one chunk-sized buffer. */
static genie_status_t read_chunks(verify_ctx_t *v, hid_t d, const char *dpath)
{
    hid_t          t = H5Dget_type(d), fs = H5Dget_space(d), dcpl = H5Dget_create_plist(d), ms = -1;
    hsize_t        dims[H5S_MAX_RANK], chunk[H5S_MAX_RANK], pos[H5S_MAX_RANK], count[H5S_MAX_RANK];
    size_t         bytes;
    int            nd, sys = 0;
    char           why[256];
    genie_status_t st = GENIE_OK;

    if (t < 0 || fs < 0 || dcpl < 0 || (nd = H5Sget_simple_extent_ndims(fs)) < 1 || nd > GENIE_MAX_DIMS ||
        H5Pget_chunk(dcpl, nd, chunk) != nd) {
        st = genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: dataset %s cannot be inspected",
                             v->file, dpath);
        goto out;
    }
    H5Sget_simple_extent_dims(fs, dims, NULL);
    bytes = H5Tget_size(t);
    for (int i = 0; i < nd; i++) {
        bytes *= chunk[i];                 /* bounded by ckpt_dset_check */
        pos[i] = 0;
        if (dims[i] == 0) {
            goto out;                      /* nothing stored */
        }
    }
    if (bytes > v->buf_cap) {
        void *nb = realloc(v->buf, bytes);
        if (nb == NULL) {
            st = genie_set_error(GENIE_ERR_NOMEM, "genie: checkpoint: out of memory");
            goto out;
        }
        v->buf = nb;
        v->buf_cap = bytes;
    }
    for (;;) {
        for (int i = 0; i < nd; i++) {
            count[i] = dims[i] - pos[i] < chunk[i] ? dims[i] - pos[i] : chunk[i];
        }
        if ((ms = H5Screate_simple(nd, count, NULL)) < 0 ||
            H5Sselect_hyperslab(fs, H5S_SELECT_SET, pos, NULL, count, NULL) < 0 ||
            H5Dread(d, t, ms, fs, H5P_DEFAULT, v->buf) < 0) {
            if (ckpt_h5_is_checksum_error()) {
                H5Eclear2(H5E_DEFAULT);
                st = genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: dataset %s failed its "
                                     "Fletcher32 checksum", v->file, dpath);
            } else {
                ckpt_h5_reason(why, sizeof(why), &sys);
                st = genie_set_error(sys ? GENIE_ERR_IO : GENIE_ERR_CORRUPT, "genie: checkpoint %s: could "
                                     "not read dataset %s: %s", v->file, dpath, why);
            }
            goto out;
        }
        H5Sclose(ms);
        ms = -1;
        if (!ckpt_next_chunk(nd, dims, chunk, pos)) {
            break;
        }
    }
out:
    if (ms >= 0) {
        H5Sclose(ms);
    }
    if (dcpl >= 0) {
        H5Pclose(dcpl);
    }
    if (fs >= 0) {
        H5Sclose(fs);
    }
    if (t >= 0) {
        H5Tclose(t);
    }
    H5Eclear2(H5E_DEFAULT);
    return st;
}

static herr_t verify_one(hid_t obj, const char *name, const H5O_info_t *info, void *arg)
{
    verify_ctx_t  *v = arg;
    char           dpath[600];
    hsize_t        dims[GENIE_MAX_DIMS];
    int            nd;
    hid_t          d;
    genie_status_t st;

    (void)obj;
    if (info->type != H5O_TYPE_DATASET) {
        return 0;
    }
    snprintf(dpath, sizeof(dpath), "/%s", name);
    genie_one_line(dpath);
    if ((d = H5Dopen2(v->f, dpath, H5P_DEFAULT)) < 0) {
        H5Eclear2(H5E_DEFAULT);
        st = genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: dataset %s cannot be opened", v->file,
                             dpath);
    } else {
        if ((st = ckpt_dset_check(d, v->file, dpath, -1, 1, GENIE_MAX_DIMS, 1, dims, &nd)) == GENIE_OK) {
            st = read_chunks(v, d, dpath);
        }
        H5Dclose(d);
    }
    say(v, v->file, dpath, st);
    return 0;
}

/* Every dataset of one file, then (rank files) its structure. */
static void verify_file(verify_ctx_t *v, const char *path, const char *name, const genie_ckpt_file_entry_t *e,
                        uint64_t epoch, const char *job, int is_rank)
{
    char           why[256];
    int            sys = 0;
    genie_status_t st;

    v->file = path;
    v->bad_here = 0;
    if ((v->f = ckpt_open_ro(path)) < 0) {
        ckpt_h5_reason(why, sizeof(why), &sys);
        genie_set_error(sys ? GENIE_ERR_IO : GENIE_ERR_CORRUPT, "genie: checkpoint %s: not a readable HDF5 "
                        "file: %s", path, why);
        say(v, path, "/", sys ? GENIE_ERR_IO : GENIE_ERR_CORRUPT);
        return;
    }
    if (H5Ovisit2(v->f, H5_INDEX_NAME, H5_ITER_INC, verify_one, v, H5O_INFO_BASIC) < 0) {
        H5Eclear2(H5E_DEFAULT);
        genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: its objects cannot all be visited", path);
        say(v, path, "/", GENIE_ERR_CORRUPT);
    }
    H5Fclose(v->f);
    H5Eclear2(H5E_DEFAULT);
    v->f = -1;
    if (is_rank && v->bad_here == 0) {
        genie_ckpt_session_t *ss = NULL;
        uint32_t              n = 0;

        st = ckpt_read_rank(path, name, e, epoch, job, &ss, &n);
        ckpt_free_sessions(ss, n);
        if (st != GENIE_OK) {
            say(v, path, "/", st);
        }
    }
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Committed rank files present in dir, sorted (caller frees each and the array). */
static uint32_t scan_rank_files(const char *dir, char ***names_p)
{
    DIR           *d = opendir(dir);
    struct dirent *e;
    char         **names = NULL;
    uint32_t       n = 0, cap = 0;

    *names_p = NULL;
    if (d == NULL) {
        return 0;
    }
    while ((e = readdir(d)) != NULL) {
        if (!ckpt_file_name_ok(e->d_name)) {
            continue;
        }
        if (n == cap) {
            char **nn = cap < (1u << 20) ? realloc(names, (size_t)(cap = cap * 2 + 16) * sizeof(*names)) : NULL;
            if (nn == NULL) {
                break;
            }
            names = nn;
        }
        if ((names[n] = strdup(e->d_name)) != NULL) {
            n++;
        }
    }
    closedir(d);
    if (n > 1) {
        qsort(names, n, sizeof(*names), cmp_names);
    }
    *names_p = names;
    return n;
}

genie_status_t genie_ckpt_verify(const char *epoch_dir,
                                 void (*report)(const char *file, const char *dataset,
                                                genie_status_t st, const char *msg, void *arg),
                                 void *arg, uint32_t *n_bad_p)
{
    genie_ckpt_manifest_t m;
    verify_ctx_t          v;
    char                  why[GENIE_CKPT_TEXT_MAX], path[4400], mpath[4400];
    uint64_t              epoch;
    struct stat           sb;
    genie_status_t        st;

    ckpt_h5_init();
    if (epoch_dir == NULL || stat(epoch_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        return genie_set_error(GENIE_ERR_NOT_FOUND, "genie: checkpoint %s: no such epoch directory",
                               epoch_dir != NULL ? epoch_dir : "(null)");
    }
    memset(&v, 0, sizeof(v));
    v.f = -1;
    v.report = report;
    v.arg = arg;
    epoch = ckpt_dir_epoch(epoch_dir);
    snprintf(mpath, sizeof(mpath), "%s/%s", epoch_dir, CKPT_MANIFEST);
    if ((st = ckpt_read_manifest(epoch_dir, epoch, &m, why, sizeof(why))) == GENIE_OK) {
        verify_file(&v, mpath, CKPT_MANIFEST, NULL, epoch, NULL, 0);
        for (uint32_t i = 0; i < m.n_files; i++) {
            snprintf(path, sizeof(path), "%s/%s", epoch_dir, m.files[i].name);
            verify_file(&v, path, m.files[i].name, &m.files[i], epoch, m.job, 1);
        }
        ckpt_free_manifest(&m);
    } else {
        char   **names;
        uint32_t n = scan_rank_files(epoch_dir, &names);

        genie_set_error(st, "genie: checkpoint %s: %s; verifying every rank-*.h5 file of the directory "
                        "instead (%u)", epoch_dir, why, n);
        say(&v, mpath, "/", st);
        for (uint32_t i = 0; i < n; i++) {
            snprintf(path, sizeof(path), "%s/%s", epoch_dir, names[i]);
            verify_file(&v, path, names[i], NULL, epoch, NULL, 1);
            free(names[i]);
        }
        free(names);
    }
    free(v.buf);
    if (n_bad_p != NULL) {
        *n_bad_p = v.bad;
    }
    genie_clear_error();
    return GENIE_OK;
}

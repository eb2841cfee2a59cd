/*
 * Writing checkpoints: rank files (by executors) and manifests (by the
 * driver), each committed by rename: <name>.tmp created (O_EXCL |
 * O_NOFOLLOW, after removing a stale one), written, flushed,
 * closed, fsync'd, renamed to <name>, then the directory fsync'd, so that
 * <name> either does not exist or is complete on disk.  A fault point sits
 * after every step (genie_ckpt_fault_point, named "<name>: <step>") so a
 * test can kill the writer anywhere.  On any error the .tmp file is
 * removed and the error says which file and object, and why.
 *
 * Everything is checked before the first byte is written: a writer refuses
 * (GENIE_ERR_INVALID) what a reader would refuse.  Each dataset is written
 * by one H5Dwrite of the caller's buffer, in chunks of up to 4 MiB.
 * Layout: docs/checkpoint-format.md.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
/* Messages and paths are cut at their buffer's size on purpose: a long
 * path must not turn a one-line report into an error of its own. */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ckpt_h5.h"

#define PATH_CAP 4200
/* Metadata (object headers, chunk indexes) is gathered into blocks of this
 * size rather than written as many small pieces between the chunks. */
#define META_BLOCK (16 << 10)

/* One file being committed. */
typedef struct commit {
    const char *path;             /* final name                       */
    const char *label;            /* its base name, for fault points  */
    char        tmp[PATH_CAP];    /* <path>.tmp                       */
    hid_t       f;                /* the open .tmp, or -1             */
    ckpt_stage_t stage;           /* one chunk, for KV datasets       */
} commit_t;

static void fault(const commit_t *c, const char *step)
{
    char where[192];

    snprintf(where, sizeof(where), "%s: %s", c->label, step);
    genie_ckpt_fault_point(where);
}

static double now_unix(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Create <path>.tmp.  The access properties are chosen for one large
 * sequential write: the 1.10 file format (fixed-array chunk indexes, compact
 * attribute storage), allocations of 64 KiB or more (the chunks) aligned to
 * 4 KiB pages, metadata gathered in META_BLOCK blocks. */
static genie_status_t commit_begin(commit_t *c, const char *path)
{
    const char *slash = strrchr(path, '/');
    hid_t       fapl;
    char        why[256];
    int         sys = 0;

    memset(c, 0, sizeof(*c));
    c->path  = path;
    c->label = slash != NULL ? slash + 1 : path;
    c->f     = -1;
    if (snprintf(c->tmp, sizeof(c->tmp), "%s.tmp", path) >= (int)sizeof(c->tmp)) {
        return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint path too long: %.200s...", path);
    }
    if ((fapl = H5Pcreate(H5P_FILE_ACCESS)) < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0 ||
        H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_LATEST) < 0 ||
        H5Pset_alignment(fapl, 64 << 10, CKPT_DIRECT_ALIGN) < 0 || H5Pset_meta_block_size(fapl, META_BLOCK) < 0 ||
        ckpt_vfd_set(fapl) < 0
#if H5_VERSION_GE(1, 10, 7)
        || H5Pset_file_locking(fapl, 0, 1) < 0
#endif
    ) {
        if (fapl >= 0) {
            H5Pclose(fapl);
        }
        return genie_set_error(GENIE_ERR_IO, "genie: checkpoint %s: file access properties: %s", c->tmp,
                               ckpt_h5_reason(why, sizeof(why), NULL));
    }
    /* A .tmp left by an earlier attempt is removed: unlink removes a link
     * itself, never the file it points to.  The new one is created with
     * O_EXCL | O_NOFOLLOW (ckpt_vfd.c): if anything appears under the name
     * in between, the create fails instead of writing through it. */
    if (unlink(c->tmp) != 0 && errno != ENOENT) {
        int e = errno;
        H5Pclose(fapl);
        return genie_set_error(GENIE_ERR_IO, "genie: checkpoint %s: cannot remove the old one: %s", c->tmp,
                               strerror(e));
    }
    c->f = H5Fcreate(c->tmp, H5F_ACC_EXCL, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (c->f < 0) {
        char refusal[512];

        ckpt_h5_reason(why, sizeof(why), &sys);
        if (ckpt_vfd_why(refusal, sizeof(refusal)) != NULL) {
            snprintf(why, sizeof(why), "%s", refusal);
        }
        unlink(c->tmp);             /* the name only: never what a link points to */
        return genie_set_error(GENIE_ERR_IO, "genie: checkpoint %s: cannot create it: %s", c->tmp, why);
    }
    fault(c, "created");
    return GENIE_OK;
}

/* Give up: close and remove the .tmp; returns st (already recorded). */
static genie_status_t commit_abort(commit_t *c, genie_status_t st)
{
    ckpt_stage_free(&c->stage);
    if (c->f >= 0) {
        ckpt_vfd_discard(c->f);
        H5Fclose(c->f);
        H5Eclear2(H5E_DEFAULT);
        c->f = -1;
    }
    unlink(c->tmp);
    return st;
}

/* A write into the .tmp failed: record why, naming the object. */
static genie_status_t write_failed(commit_t *c, const char *what)
{
    char why[512];

    ckpt_h5_reason(why, sizeof(why), NULL);
    ckpt_vfd_why(why, sizeof(why));             /* the system's reason, when the driver had one */
    return commit_abort(c, genie_set_error(GENIE_ERR_IO, "genie: checkpoint %s: cannot write %s: %s",
                                           c->tmp, what, why));
}

/* flush, close, fsync, rename, fsync the directory. */
static genie_status_t commit_end(commit_t *c)
{
    char           dir[PATH_CAP], why[512];
    char          *slash;
    hid_t          f = c->f;
    genie_status_t st;

    ckpt_stage_free(&c->stage);
    if (H5Fflush(f, H5F_SCOPE_GLOBAL) < 0) {
        return write_failed(c, "it (flush)");
    }
    fault(c, "flushed");
    c->f = -1;
    if (H5Fclose(f) < 0) {
        ckpt_h5_reason(why, sizeof(why), NULL);
        ckpt_vfd_why(why, sizeof(why));
        /* HDF5 may keep a file whose close failed: drop its writes and close
         * it for good, or the library's exit handler trips over it */
        if (ckpt_vfd_discard(f) == 0) {
            H5Fclose(f);
            H5Eclear2(H5E_DEFAULT);
        }
        return commit_abort(c, genie_set_error(GENIE_ERR_IO, "genie: checkpoint %s: close: %s", c->tmp,
                                               why));
    }
    fault(c, "closed");
    if ((st = ckpt_fsync_path(c->tmp, 0)) != GENIE_OK) {
        return commit_abort(c, st);
    }
    fault(c, "fsynced");
    if (rename(c->tmp, c->path) != 0) {
        return commit_abort(c, genie_set_error(GENIE_ERR_IO, "genie: checkpoint %s: rename: %s", c->path,
                                               strerror(errno)));
    }
    fault(c, "renamed");
    snprintf(dir, sizeof(dir), "%s", c->path);
    slash = strrchr(dir, '/');
    if (slash == dir) {
        dir[1] = '\0';
    } else if (slash != NULL) {
        *slash = '\0';
    } else {
        snprintf(dir, sizeof(dir), ".");
    }
    if ((st = ckpt_fsync_path(dir, 1)) != GENIE_OK) {
        return st;                  /* renamed: the file is there, its entry maybe not durable */
    }
    fault(c, "directory fsynced");
    return GENIE_OK;
}

/* ---- rank files ---------------------------------------------------------------- */

static genie_status_t bad_session(const char *path, const genie_ckpt_session_t *s, const char *what)
{
    return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint %s: session %llu: %s", path,
                           (unsigned long long)s->id, what);
}

static genie_status_t check_kv(const char *path, const genie_ckpt_session_t *s, const genie_ckpt_kv_t *kv)
{
    uint64_t bytes;

    if (!ckpt_terminated(kv->name, sizeof(kv->name)) || !ckpt_name_ok(kv->name)) {
        return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint %s: session %llu: bad KV tensor name "
                               "'%.*s' (want [a-z0-9_] with at most one '/', under %d bytes)", path,
                               (unsigned long long)s->id, GENIE_CKPT_NAME_MAX - 1, kv->name,
                               GENIE_CKPT_NAME_MAX);
    }
    if (kv->ndim < 1 || kv->ndim > GENIE_MAX_DIMS || ckpt_h5_type(kv->dtype) < 0 || kv->data == NULL) {
        return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint %s: session %llu: KV tensor %s: "
                               "%d dims, dtype %d%s (want 1 to %d dims, a known dtype, data)", path,
                               (unsigned long long)s->id, kv->name, kv->ndim, (int)kv->dtype,
                               kv->data == NULL ? ", no data" : "", GENIE_MAX_DIMS);
    }
    bytes = genie_dtype_size(kv->dtype);
    for (int i = 0; i < kv->ndim; i++) {
        if (kv->shape[i] < 1 || (uint64_t)kv->shape[i] > CKPT_MAX_KV_BYTES / bytes) {
            return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint %s: session %llu: KV tensor %s: "
                                   "dim %d is %lld (want 1 or more, at most %llu bytes in all)", path,
                                   (unsigned long long)s->id, kv->name, i, (long long)kv->shape[i],
                                   (unsigned long long)CKPT_MAX_KV_BYTES);
        }
        bytes *= (uint64_t)kv->shape[i];
    }
    return GENIE_OK;
}

/* "a" and "a/b" cannot both be names (a is a dataset or a group). */
static int names_clash(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);

    return strcmp(a, b) == 0 || (la < lb && strncmp(a, b, la) == 0 && b[la] == '/') ||
           (lb < la && strncmp(a, b, lb) == 0 && a[lb] == '/');
}

static genie_status_t check_session(const char *path, const genie_ckpt_session_t *s)
{
    genie_status_t st;

    if (s->id == 0) {
        return bad_session(path, s, "id 0 (ids start at 1)");
    }
    if (s->batch < 1 || s->batch > CKPT_MAX_BATCH || s->n_tokens < 1 || s->n_tokens > CKPT_MAX_TOKENS ||
        (uint64_t)s->batch * s->n_tokens > CKPT_MAX_TOKEN_ELEMS || s->tokens == NULL) {
        return bad_session(path, s, "tokens must be (batch, length) with 1 <= batch <= 65536, "
                                    "1 <= length <= 2^24, batch * length <= 2^28");
    }
    if (s->prompt_len < 1 || s->prompt_len > s->n_tokens || s->step != s->n_tokens - s->prompt_len) {
        return bad_session(path, s, "prompt_len and step must satisfy 1 <= prompt_len <= length and "
                                    "length = prompt_len + step");
    }
    if (s->rng_len > CKPT_MAX_RNG || (s->rng_len > 0 && s->rng == NULL)) {
        return bad_session(path, s, "sampler state over 1 MiB or without data");
    }
    if (s->n_lineage > CKPT_MAX_LINEAGE || (s->n_lineage > 0 && s->lineage == NULL)) {
        return bad_session(path, s, "lineage over 2^24 records or without data");
    }
    if (s->n_kv > CKPT_MAX_KV || (s->n_kv > 0 && s->kv == NULL)) {
        return bad_session(path, s, "more than 4096 KV tensors, or none given");
    }
    for (uint32_t k = 0; k < s->n_kv; k++) {
        if ((st = check_kv(path, s, &s->kv[k])) != GENIE_OK) {
            return st;
        }
        for (uint32_t j = 0; j < k; j++) {
            if (names_clash(s->kv[j].name, s->kv[k].name)) {
                return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint %s: session %llu: KV tensor "
                                       "names %s and %s clash", path, (unsigned long long)s->id,
                                       s->kv[j].name, s->kv[k].name);
            }
        }
    }
    return GENIE_OK;
}

static genie_status_t check_rank(const char *path, const genie_ckpt_rank_info_t *info,
                                 const genie_ckpt_session_t *sessions, uint32_t n)
{
    genie_status_t st;

    if (info == NULL || (n > 0 && sessions == NULL) || n > CKPT_MAX_SESSIONS) {
        return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint %s: %u sessions (at most %u), %s", path,
                               n, CKPT_MAX_SESSIONS, info == NULL ? "no rank info" : "or none given");
    }
    if (!ckpt_terminated(info->phase, sizeof(info->phase)) || !ckpt_terminated(info->job, sizeof(info->job))) {
        return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint %s: phase or job not NUL-terminated",
                               path);
    }
    for (uint32_t i = 0; i < n; i++) {
        if ((st = check_session(path, &sessions[i])) != GENIE_OK) {
            return st;
        }
        for (uint32_t j = 0; j < i; j++) {
            if (sessions[j].id == sessions[i].id) {
                return bad_session(path, &sessions[i], "listed twice");
            }
        }
    }
    return GENIE_OK;
}

/* Write one dataset and its fault point; what = its path for messages.
 * direct: KV data, written chunk by chunk (ckpt_dset_create_direct). */
static genie_status_t put_dset(commit_t *c, hid_t g, const char *name, const char *what, hid_t type,
                               int nd, const hsize_t *dims, const void *data, int direct, hid_t *d_p)
{
    char  step[160];
    hid_t d = direct ? ckpt_dset_create_direct(g, name, type, nd, dims, data, &c->stage)
                     : ckpt_dset_create(g, name, type, nd, dims, data);

    if (d < 0) {
        snprintf(step, sizeof(step), "dataset %s", what);
        return write_failed(c, step);
    }
    if (d_p != NULL) {
        *d_p = d;
    } else if (H5Dclose(d) < 0) {
        snprintf(step, sizeof(step), "dataset %s", what);
        return write_failed(c, step);
    }
    snprintf(step, sizeof(step), "%s written", what);
    fault(c, step);
    return GENIE_OK;
}

static genie_status_t write_session(commit_t *c, hid_t sessions, const genie_ckpt_session_t *s)
{
    char           name[24], what[160];
    hid_t          g, kg = -1, d = -1;
    hsize_t        dims[GENIE_MAX_DIMS];
    genie_status_t st = GENIE_OK;
    int            bad;

    snprintf(name, sizeof(name), "%llu", (unsigned long long)s->id);
    snprintf(what, sizeof(what), "session /sessions/%s", name);
    if ((g = H5Gcreate2(sessions, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0) {
        return write_failed(c, what);
    }
    if (ckpt_attr_put(g, "id", H5T_STD_U64LE, &s->id) < 0 ||
        ckpt_attr_put(g, "key", H5T_STD_U64LE, &s->key) < 0 ||
        ckpt_attr_put(g, "model_fp", H5T_STD_U64LE, &s->model_fp) < 0 ||
        ckpt_attr_put(g, "step", H5T_STD_U64LE, &s->step) < 0 ||
        ckpt_attr_put(g, "prompt_len", H5T_STD_U64LE, &s->prompt_len) < 0 ||
        ckpt_attr_put(g, "batch", H5T_STD_U32LE, &s->batch) < 0 ||
        ckpt_attr_put(g, "n_kv", H5T_STD_U32LE, &s->n_kv) < 0) {
        st = write_failed(c, what);
        goto out;
    }
    dims[0] = s->batch;
    dims[1] = s->n_tokens;
    snprintf(what, sizeof(what), "/sessions/%s/tokens", name);
    if ((st = put_dset(c, g, "tokens", what, H5T_STD_I64LE, 2, dims, s->tokens, 0, NULL)) != GENIE_OK) {
        goto out;
    }
    dims[0] = s->n_lineage;
    dims[1] = GENIE_CKPT_LINEAGE_COLS;
    snprintf(what, sizeof(what), "/sessions/%s/lineage", name);
    if ((st = put_dset(c, g, "lineage", what, H5T_STD_I64LE, 2, dims, s->lineage, 0, &d)) != GENIE_OK) {
        goto out;
    }
    bad = ckpt_attr_put_str(d, "columns", CKPT_LINEAGE_COLUMNS, sizeof(CKPT_LINEAGE_COLUMNS)) < 0;
    bad |= H5Dclose(d) < 0;
    if (bad) {
        st = write_failed(c, what);
        goto out;
    }
    if (s->rng_len > 0) {
        dims[0] = s->rng_len;
        snprintf(what, sizeof(what), "/sessions/%s/rng", name);
        if ((st = put_dset(c, g, "rng", what, H5T_STD_U8LE, 1, dims, s->rng, 0, NULL)) != GENIE_OK) {
            goto out;
        }
    }
    /* kv/ exists even with no tensors, so that a reader can require it */
    if ((kg = H5Gcreate2(g, "kv", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0) {
        snprintf(what, sizeof(what), "group /sessions/%s/kv", name);
        st = write_failed(c, what);
        goto out;
    }
    for (uint32_t k = 0; k < s->n_kv; k++) {
        const genie_ckpt_kv_t *kv = &s->kv[k];

        for (int i = 0; i < kv->ndim; i++) {
            dims[i] = (hsize_t)kv->shape[i];
        }
        snprintf(what, sizeof(what), "/sessions/%s/kv/%s", name, kv->name);
        /* one '/' at most (ckpt_name_ok): "layer_00/key" creates group layer_00 */
        if ((st = put_dset(c, kg, kv->name, what, ckpt_h5_type(kv->dtype), kv->ndim, dims, kv->data, 1, &d)) !=
            GENIE_OK) {
            goto out;
        }
        bad = ckpt_attr_put_str(d, "dtype", genie_dtype_name(kv->dtype), 16) < 0;
        bad |= H5Dclose(d) < 0;
        if (bad) {
            st = write_failed(c, what);
            goto out;
        }
    }
out:
    /* after a failure c->f is closed (STRONG), and with it these ids */
    if (st == GENIE_OK) {
        if (kg >= 0 && H5Gclose(kg) < 0) {
            st = write_failed(c, "a group");
        }
        if (st == GENIE_OK && H5Gclose(g) < 0) {
            st = write_failed(c, "a group");
        }
    }
    return st;
}

genie_status_t genie_ckpt_write_rank(const char *path, const genie_ckpt_rank_info_t *info,
                                     const genie_ckpt_session_t *sessions, uint32_t n,
                                     uint64_t *bytes_p)
{
    commit_t       c;
    hid_t          g;
    int32_t        version = GENIE_CKPT_VERSION;
    double         created = now_unix();
    struct stat    sb;
    genie_status_t st;

    ckpt_h5_init();
    if (path == NULL) {
        return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint: no rank file path");
    }
    if ((st = check_rank(path, info, sessions, n)) != GENIE_OK || (st = commit_begin(&c, path)) != GENIE_OK) {
        return st;
    }
    if (ckpt_attr_put_str(c.f, "format", CKPT_FORMAT_RANK, sizeof(CKPT_FORMAT_RANK)) < 0 ||
        ckpt_attr_put(c.f, "version", H5T_STD_I32LE, &version) < 0 ||
        ckpt_attr_put(c.f, "epoch", H5T_STD_U64LE, &info->epoch) < 0 ||
        ckpt_attr_put(c.f, "rank", H5T_STD_I32LE, &info->rank) < 0 ||
        ckpt_attr_put(c.f, "slice", H5T_STD_U32LE, &info->slice) < 0 ||
        ckpt_attr_put_str(c.f, "phase", info->phase, sizeof(info->phase)) < 0 ||
        ckpt_attr_put_str(c.f, "job", info->job, sizeof(info->job)) < 0 ||
        ckpt_attr_put(c.f, "created", H5T_IEEE_F64LE, &created) < 0 ||
        ckpt_attr_put(c.f, "n_sessions", H5T_STD_U32LE, &n) < 0) {
        return write_failed(&c, "the root attributes");
    }
    if ((g = H5Gcreate2(c.f, "sessions", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0) {
        return write_failed(&c, "group /sessions");
    }
    for (uint32_t i = 0; i < n; i++) {
        if ((st = write_session(&c, g, &sessions[i])) != GENIE_OK) {
            return st;
        }
    }
    if (H5Gclose(g) < 0) {
        return write_failed(&c, "group /sessions");
    }
    if ((st = commit_end(&c)) != GENIE_OK) {
        return st;
    }
    if (stat(path, &sb) != 0) {
        return genie_set_error(GENIE_ERR_IO, "genie: checkpoint %s: %s", path, strerror(errno));
    }
    if (bytes_p != NULL) {
        *bytes_p = (uint64_t)sb.st_size;
    }
    return GENIE_OK;
}

/* ---- manifests ----------------------------------------------------------------- */

static genie_status_t check_manifest(const char *dir, const genie_ckpt_manifest_t *m)
{
    char        fpath[PATH_CAP + 80];
    struct stat sb;
    uint64_t    sessions = 0;

    if (m->epoch < 1 || !ckpt_terminated(m->job, sizeof(m->job)) ||
        !ckpt_terminated(m->phases, sizeof(m->phases)) || !ckpt_terminated(m->reason, sizeof(m->reason))) {
        return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint %s: manifest: epoch 0, or job, phases "
                               "or reason not NUL-terminated", dir);
    }
    if (m->n_files > CKPT_MAX_FILES || (m->n_files > 0 && m->files == NULL) ||
        m->n_model_fps > CKPT_MAX_MODEL_FPS || (m->n_model_fps > 0 && m->model_fps == NULL)) {
        return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint %s: manifest: %u files, %u model "
                               "fingerprints (at most %u and %u, with their arrays)", dir, m->n_files,
                               m->n_model_fps, CKPT_MAX_FILES, CKPT_MAX_MODEL_FPS);
    }
    for (uint32_t i = 0; i < m->n_files; i++) {
        const genie_ckpt_file_entry_t *e = &m->files[i];

        if (!ckpt_terminated(e->name, sizeof(e->name)) || !ckpt_file_name_ok(e->name) ||
            e->sessions > CKPT_MAX_SESSIONS) {
            return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint %s: manifest: bad file entry "
                                   "'%.*s' (want rank-NNNN.h5, at most %u sessions)", dir,
                                   GENIE_CKPT_NAME_MAX - 1, e->name, CKPT_MAX_SESSIONS);
        }
        for (uint32_t j = 0; j < i; j++) {
            if (strcmp(m->files[j].name, e->name) == 0) {
                return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint %s: manifest: %s listed twice",
                                       dir, e->name);
            }
        }
        snprintf(fpath, sizeof(fpath), "%s/%s", dir, e->name);
        if (stat(fpath, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint %s: manifest: %s is listed but "
                                   "is not there (%s)", dir, e->name, strerror(errno));
        }
        if ((uint64_t)sb.st_size != e->bytes) {
            return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint %s: manifest: %s has %llu bytes, "
                                   "the entry says %llu", dir, e->name, (unsigned long long)sb.st_size,
                                   (unsigned long long)e->bytes);
        }
        sessions += e->sessions;
    }
    if (sessions > UINT32_MAX) {
        return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint %s: manifest: %llu sessions", dir,
                               (unsigned long long)sessions);
    }
    return GENIE_OK;
}

genie_status_t genie_ckpt_write_manifest(const char *root, const genie_ckpt_manifest_t *m)
{
    char           dir[4096], path[PATH_CAP];
    commit_t       c;
    hid_t          g, fg;
    int32_t        version = GENIE_CKPT_VERSION;
    uint32_t       n_sessions = 0;
    double         created;
    hsize_t        dims[1];
    genie_status_t st;

    ckpt_h5_init();
    if (root == NULL || m == NULL) {
        return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint: no directory or manifest");
    }
    if ((st = genie_ckpt_epoch_path(root, m->epoch, dir, sizeof(dir))) != GENIE_OK ||
        (st = check_manifest(dir, m)) != GENIE_OK) {
        return st;
    }
    for (uint32_t i = 0; i < m->n_files; i++) {
        n_sessions += m->files[i].sessions;
    }
    created = m->created > 0 ? m->created : now_unix();
    snprintf(path, sizeof(path), "%s/%s", dir, CKPT_MANIFEST);
    if ((st = commit_begin(&c, path)) != GENIE_OK) {
        return st;
    }
    if (ckpt_attr_put_str(c.f, "format", CKPT_FORMAT_MANIFEST, sizeof(CKPT_FORMAT_MANIFEST)) < 0 ||
        ckpt_attr_put(c.f, "version", H5T_STD_I32LE, &version) < 0 ||
        ckpt_attr_put(c.f, "epoch", H5T_STD_U64LE, &m->epoch) < 0 ||
        ckpt_attr_put_str(c.f, "job", m->job, sizeof(m->job)) < 0 ||
        ckpt_attr_put_str(c.f, "phases", m->phases, sizeof(m->phases)) < 0 ||
        ckpt_attr_put_str(c.f, "reason", m->reason, sizeof(m->reason)) < 0 ||
        ckpt_attr_put(c.f, "created", H5T_IEEE_F64LE, &created) < 0 ||
        ckpt_attr_put(c.f, "n_files", H5T_STD_U32LE, &m->n_files) < 0 ||
        ckpt_attr_put(c.f, "n_sessions", H5T_STD_U32LE, &n_sessions) < 0) {
        return write_failed(&c, "the root attributes");
    }
    dims[0] = m->n_model_fps;
    if ((st = put_dset(&c, c.f, "model_fps", "/model_fps", H5T_STD_U64LE, 1, dims, m->model_fps, 0, NULL)) !=
        GENIE_OK) {
        return st;
    }
    if ((g = H5Gcreate2(c.f, "files", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0) {
        return write_failed(&c, "group /files");
    }
    for (uint32_t i = 0; i < m->n_files; i++) {
        const genie_ckpt_file_entry_t *e = &m->files[i];

        if ((fg = H5Gcreate2(g, e->name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
            ckpt_attr_put(fg, "rank", H5T_STD_I32LE, &e->rank) < 0 ||
            ckpt_attr_put(fg, "bytes", H5T_STD_U64LE, &e->bytes) < 0 ||
            ckpt_attr_put(fg, "sessions", H5T_STD_U32LE, &e->sessions) < 0 || H5Gclose(fg) < 0) {
            return write_failed(&c, "group /files/<name>");
        }
    }
    if (H5Gclose(g) < 0) {
        return write_failed(&c, "group /files");
    }
    return commit_end(&c);
}

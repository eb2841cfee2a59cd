/*
 * Reading an epoch's metadata: the manifest, every rank file's sessions
 * (attributes, tokens, lineage, sampler state and the KV datasets' names,
 * dtypes and shapes, but not their data), and opening the newest complete
 * epoch.  Nothing read from a file is trusted: every number is bounded and
 * cross-checked (against the manifest, the session's attributes and the
 * dataset's shape) before it sizes an allocation, links must be hard links,
 * names must follow the format's rules, and a failure is one line naming
 * the file and the object (GENIE_ERR_CORRUPT).  Layout:
 * docs/checkpoint-format.md.
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

#include "ckpt_h5.h"
#include "ckpt_int.h"

/* Read attributes in order, remembering the first that is missing or bad:
 *   const char *bad = NULL;  NEED(ckpt_attr_get_u64(g, "id", &id), "id"); ... */
#define NEED(call, name)                       \
    do {                                       \
        if (bad == NULL && (call) < 0) {       \
            bad = (name);                      \
        }                                      \
    } while (0)

/* Open a dataset reached through hard links only. */
static hid_t open_dset(hid_t loc, const char *name)
{
    hid_t d = -1;

    if (ckpt_hard_path(loc, name)) {
        d = H5Dopen2(loc, name, H5P_DEFAULT);
    }
    H5Eclear2(H5E_DEFAULT);
    return d;
}

static hid_t open_group(hid_t loc, const char *name)
{
    hid_t g = -1;

    if (ckpt_hard_path(loc, name)) {
        g = H5Gopen2(loc, name, H5P_DEFAULT);
    }
    H5Eclear2(H5E_DEFAULT);
    return g;
}

/* Open `path` read-only and check its format and version attributes; on
 * failure `problem` (cap) says what is wrong, without the path. */
static genie_status_t open_checked(const char *path, const char *format, hid_t *f_p, char *problem,
                                   size_t cap)
{
    char           fmt[64], why[256];
    int            sys = 0;
    int32_t        version = 0;
    hid_t          f = ckpt_open_ro(path);
    genie_status_t st = GENIE_ERR_CORRUPT;

    if (f < 0) {
        ckpt_h5_reason(why, sizeof(why), &sys);
        st = sys ? GENIE_ERR_IO : GENIE_ERR_CORRUPT;
        snprintf(problem, cap, "not a readable HDF5 file: %s", why);
    } else if (ckpt_attr_get_str(f, "format", fmt, sizeof(fmt)) < 0 || strcmp(fmt, format) != 0) {
        snprintf(problem, cap, "not a %s file (its 'format' attribute)", format);
    } else if (ckpt_attr_get_i32(f, "version", &version) < 0 || version != GENIE_CKPT_VERSION) {
        st = GENIE_ERR_VERSION;
        snprintf(problem, cap, "format version %d, this build reads version %d", (int)version,
                 GENIE_CKPT_VERSION);
    } else {
        *f_p = f;
        return GENIE_OK;
    }
    if (f >= 0) {
        H5Fclose(f);
    }
    H5Eclear2(H5E_DEFAULT);
    return genie_set_error(st, "genie: checkpoint %s: %s", path, problem);
}

/* The recorded error without its "genie: checkpoint <path>: " head. */
static const char *after_path(const char *path)
{
    const char *e = genie_last_error(), *head = "genie: checkpoint ";
    size_t      h = strlen(head), n = strlen(path);

    if (strncmp(e, head, h) == 0 && strncmp(e + h, path, n) == 0 && strncmp(e + h + n, ": ", 2) == 0) {
        return e + h + n + 2;
    }
    return e;
}

/* ---- manifest --------------------------------------------------------------------- */

void ckpt_free_manifest(genie_ckpt_manifest_t *m)
{
    free(m->model_fps);
    free(m->files);
    m->model_fps = NULL;
    m->files = NULL;
}

typedef struct files_iter {
    genie_ckpt_manifest_t *m;
    uint32_t               n;
    char                   bad[160];
} files_iter_t;

/* One /files/<name> group. */
static herr_t read_file_entry(hid_t g, const char *name, const H5L_info_t *info, void *arg)
{
    files_iter_t            *it = arg;
    genie_ckpt_file_entry_t *e;
    hid_t                    fg;
    const char              *bad = NULL;

    if (it->n >= it->m->n_files) {
        snprintf(it->bad, sizeof(it->bad), "/files has more entries than n_files (%u)", it->m->n_files);
        return 1;
    }
    if (info->type != H5L_TYPE_HARD || !ckpt_file_name_ok(name)) {
        snprintf(it->bad, sizeof(it->bad), "/files holds a bad entry '%.64s'", name);
        genie_one_line(it->bad);
        return 1;
    }
    e = &it->m->files[it->n];
    snprintf(e->name, sizeof(e->name), "%s", name);
    if ((fg = H5Gopen2(g, name, H5P_DEFAULT)) < 0) {
        bad = "(the group)";
    }
    NEED(ckpt_attr_get_i32(fg, "rank", &e->rank), "rank");
    NEED(ckpt_attr_get_u64(fg, "bytes", &e->bytes), "bytes");
    NEED(ckpt_attr_get_u32(fg, "sessions", &e->sessions), "sessions");
    if (bad == NULL && e->sessions > CKPT_MAX_SESSIONS) {
        bad = "sessions";
    }
    if (bad != NULL) {
        snprintf(it->bad, sizeof(it->bad), "/files/%s: missing or bad attribute %s", name, bad);
    }
    if (fg >= 0) {
        H5Gclose(fg);
    }
    H5Eclear2(H5E_DEFAULT);
    it->n++;
    return it->bad[0] != '\0';
}

static genie_status_t read_model_fps(hid_t f, const char *path, genie_ckpt_manifest_t *m)
{
    hid_t          d = open_dset(f, "model_fps");
    hsize_t        dims[1] = { 0 };
    int            nd;
    genie_status_t st;

    if (d < 0) {
        return genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: no dataset /model_fps", path);
    }
    if ((st = ckpt_dset_check(d, path, "/model_fps", H5T_STD_U64LE, 1, 1, 1, dims, &nd)) == GENIE_OK) {
        if (dims[0] > CKPT_MAX_MODEL_FPS) {
            st = genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: dataset /model_fps has %llu "
                                 "entries (at most %u)", path, (unsigned long long)dims[0], CKPT_MAX_MODEL_FPS);
        } else if ((m->model_fps = calloc(dims[0] + 1, sizeof(uint64_t))) == NULL) {
            st = genie_set_error(GENIE_ERR_NOMEM, "genie: checkpoint: out of memory");
        } else {
            m->n_model_fps = (uint32_t)dims[0];
            st = ckpt_dset_read(d, path, "/model_fps", H5T_NATIVE_UINT64, m->model_fps, dims[0] * 8);
        }
    }
    H5Dclose(d);
    return st;
}

genie_status_t ckpt_read_manifest(const char *dir, uint64_t epoch, genie_ckpt_manifest_t *m, char *why,
                                  size_t cap)
{
    char           path[4200], fpath[4400], msg[400], problem[300];
    hid_t          f = -1, g = -1;
    uint32_t       n_sessions = 0;
    uint64_t       sum = 0;
    struct stat    sb;
    files_iter_t   it;
    const char    *bad = NULL;
    genie_status_t st = GENIE_ERR_CORRUPT;

    memset(m, 0, sizeof(*m));
    msg[0] = '\0';
    snprintf(path, sizeof(path), "%s/%s", dir, CKPT_MANIFEST);
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        st = GENIE_ERR_NOT_FOUND;
        snprintf(msg, sizeof(msg), "no such epoch directory");
        goto out;
    }
    if (lstat(path, &sb) != 0) {
        st = GENIE_ERR_NOT_FOUND;
        snprintf(msg, sizeof(msg), "no %s (the epoch's commit did not finish)", CKPT_MANIFEST);
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        snprintf(msg, sizeof(msg), "%s is not a regular file", CKPT_MANIFEST);
        goto out;
    }
    if ((st = open_checked(path, CKPT_FORMAT_MANIFEST, &f, problem, sizeof(problem))) != GENIE_OK) {
        f = -1;
        snprintf(msg, sizeof(msg), "%s: %s", CKPT_MANIFEST, problem);
        goto out;
    }
    st = GENIE_ERR_CORRUPT;
    NEED(ckpt_attr_get_u64(f, "epoch", &m->epoch), "epoch");
    NEED(ckpt_attr_get_str(f, "job", m->job, sizeof(m->job)), "job");
    NEED(ckpt_attr_get_str(f, "phases", m->phases, sizeof(m->phases)), "phases");
    NEED(ckpt_attr_get_str(f, "reason", m->reason, sizeof(m->reason)), "reason");
    NEED(ckpt_attr_get_f64(f, "created", &m->created), "created");
    NEED(ckpt_attr_get_u32(f, "n_files", &m->n_files), "n_files");
    NEED(ckpt_attr_get_u32(f, "n_sessions", &n_sessions), "n_sessions");
    if (bad != NULL) {
        snprintf(msg, sizeof(msg), "%s: missing or bad root attribute %s", CKPT_MANIFEST, bad);
        goto out;
    }
    if (m->n_files > CKPT_MAX_FILES || (epoch != 0 && m->epoch != epoch)) {
        snprintf(msg, sizeof(msg), "%s: epoch %llu, %u files (want epoch %llu, at most %u files)",
                 CKPT_MANIFEST, (unsigned long long)m->epoch, m->n_files, (unsigned long long)epoch,
                 CKPT_MAX_FILES);
        goto out;
    }
    if ((st = read_model_fps(f, path, m)) != GENIE_OK) {
        snprintf(msg, sizeof(msg), "%s: %s", CKPT_MANIFEST, after_path(path));
        goto out;
    }
    st = GENIE_ERR_CORRUPT;
    memset(&it, 0, sizeof(it));
    it.m = m;
    if ((m->files = calloc((size_t)m->n_files + 1, sizeof(*m->files))) == NULL) {
        st = genie_set_error(GENIE_ERR_NOMEM, "genie: checkpoint: out of memory");
        snprintf(msg, sizeof(msg), "out of memory");
        goto out;
    }
    if ((g = open_group(f, "files")) < 0 ||
        (H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, read_file_entry, &it) < 0 && it.bad[0] == '\0')) {
        snprintf(msg, sizeof(msg), "%s: no readable /files group", CKPT_MANIFEST);
        goto out;
    }
    if (it.bad[0] != '\0' || it.n != m->n_files) {
        snprintf(msg, sizeof(msg), "%s: %s", CKPT_MANIFEST,
                 it.bad[0] != '\0' ? it.bad : "/files has fewer entries than n_files");
        goto out;
    }
    for (uint32_t i = 0; i < m->n_files; i++) {
        sum += m->files[i].sessions;
    }
    if (sum != n_sessions) {
        snprintf(msg, sizeof(msg), "%s: n_sessions is %u, its files hold %llu", CKPT_MANIFEST, n_sessions,
                 (unsigned long long)sum);
        goto out;
    }
    for (uint32_t i = 0; i < m->n_files; i++) {
        snprintf(fpath, sizeof(fpath), "%s/%s", dir, m->files[i].name);
        if (lstat(fpath, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            snprintf(msg, sizeof(msg), "%s is listed in %s but is not there", m->files[i].name, CKPT_MANIFEST);
            goto out;
        }
        if ((uint64_t)sb.st_size != m->files[i].bytes) {
            snprintf(msg, sizeof(msg), "%s has %llu bytes, %s says %llu", m->files[i].name,
                     (unsigned long long)sb.st_size, CKPT_MANIFEST, (unsigned long long)m->files[i].bytes);
            goto out;
        }
    }
    st = GENIE_OK;
out:
    if (g >= 0) {
        H5Gclose(g);
    }
    if (f >= 0) {
        H5Fclose(f);
    }
    H5Eclear2(H5E_DEFAULT);
    if (st != GENIE_OK) {
        ckpt_free_manifest(m);
        genie_one_line(msg);
        snprintf(why, cap, "%s", msg);
        genie_set_error(st, "genie: checkpoint %s: %s", dir, msg);
    }
    return st;
}

/* ---- rank files ------------------------------------------------------------------- */

void ckpt_free_sessions(genie_ckpt_session_t *ss, uint32_t n)
{
    for (uint32_t i = 0; ss != NULL && i < n; i++) {
        free(ss[i].tokens);
        free(ss[i].rng);
        free(ss[i].lineage);
        free(ss[i].kv);
    }
    free(ss);
}

typedef struct rank_ctx {
    const char            *path;           /* for messages       */
    const char            *name;           /* its base name      */
    int32_t                rank;
    uint32_t               n_sessions;     /* its attribute      */
    uint32_t               seen;
    genie_ckpt_session_t **ss_p;
    uint32_t              *n_p;
    genie_status_t         st;
} rank_ctx_t;

typedef struct kv_ctx {
    rank_ctx_t           *r;
    genie_ckpt_session_t *s;
    char                  prefix[GENIE_CKPT_NAME_MAX];   /* "layer_00/" inside a group */
    uint32_t              want;                          /* the session's n_kv        */
    genie_status_t        st;
} kv_ctx_t;

static herr_t read_kv_entry(hid_t g, const char *name, const H5L_info_t *info, void *arg);

static genie_status_t kv_bad(kv_ctx_t *k, const char *name, const char *what)
{
    char shown[GENIE_CKPT_NAME_MAX * 2];

    snprintf(shown, sizeof(shown), "%s%s", k->prefix, name);
    genie_one_line(shown);
    return genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: dataset /sessions/%llu/kv/%.70s %s",
                           k->r->path, (unsigned long long)k->s->id, shown, what);
}

/* One KV dataset: its descriptor (name, dtype, shape), no data. */
static genie_status_t read_kv_dataset(kv_ctx_t *k, hid_t g, const char *name, const char *full)
{
    genie_ckpt_kv_t *kv = &k->s->kv[k->s->n_kv];
    char             dpath[GENIE_CKPT_NAME_MAX + 48], dt[16];
    hid_t            d = H5Dopen2(g, name, H5P_DEFAULT);
    hsize_t          dims[GENIE_MAX_DIMS];
    uint64_t         bytes;
    int              nd = 0;
    genie_status_t   st;

    snprintf(dpath, sizeof(dpath), "/sessions/%llu/kv/%s", (unsigned long long)k->s->id, full);
    if (d < 0) {
        H5Eclear2(H5E_DEFAULT);
        return kv_bad(k, name, "cannot be opened");
    }
    if (ckpt_attr_get_str(d, "dtype", dt, sizeof(dt)) < 0 || !ckpt_dtype_from_name(dt, &kv->dtype)) {
        H5Dclose(d);
        return kv_bad(k, name, "has no known 'dtype' attribute");
    }
    st = ckpt_dset_check(d, k->r->path, dpath, ckpt_h5_type(kv->dtype), 1, GENIE_MAX_DIMS, 0, dims, &nd);
    H5Dclose(d);
    if (st != GENIE_OK) {
        return st;
    }
    bytes = genie_dtype_size(kv->dtype);
    for (int i = 0; i < nd; i++) {
        if (dims[i] < 1 || dims[i] > CKPT_MAX_KV_BYTES / bytes) {
            return kv_bad(k, name, "has an empty or oversized dimension");
        }
        bytes *= dims[i];
        kv->shape[i] = (int64_t)dims[i];
    }
    kv->ndim = nd;
    snprintf(kv->name, sizeof(kv->name), "%s", full);
    k->s->n_kv++;
    return GENIE_OK;
}

/* One link under kv/ (or under kv/<group>/): a dataset, or at the top a
 * group of datasets. */
static herr_t read_kv_entry(hid_t g, const char *name, const H5L_info_t *info, void *arg)
{
    kv_ctx_t   *k = arg;
    H5O_info_t  oi;
    char        full[GENIE_CKPT_NAME_MAX * 2];

    snprintf(full, sizeof(full), "%s%s", k->prefix, name);
    if (info->type != H5L_TYPE_HARD || strlen(full) >= GENIE_CKPT_NAME_MAX || !ckpt_name_ok(full) ||
        H5Oget_info_by_name2(g, name, &oi, H5O_INFO_BASIC, H5P_DEFAULT) < 0) {
        H5Eclear2(H5E_DEFAULT);
        k->st = kv_bad(k, name, "has a bad name or is not a hard link");
        return 1;
    }
    if (oi.type == H5O_TYPE_GROUP && k->prefix[0] == '\0') {
        kv_ctx_t sub = *k;
        hid_t    sg = H5Gopen2(g, name, H5P_DEFAULT);

        snprintf(sub.prefix, sizeof(sub.prefix), "%s/", name);
        if (sg < 0 || (H5Literate(sg, H5_INDEX_NAME, H5_ITER_INC, NULL, read_kv_entry, &sub) < 0 &&
                       sub.st == GENIE_OK)) {
            sub.st = kv_bad(k, name, "is an unreadable group");
        }
        if (sg >= 0) {
            H5Gclose(sg);
        }
        H5Eclear2(H5E_DEFAULT);
        k->st = sub.st;
        return k->st != GENIE_OK;
    }
    if (oi.type != H5O_TYPE_DATASET) {
        k->st = kv_bad(k, name, "is neither a dataset nor a group of datasets");
        return 1;
    }
    if (k->s->n_kv >= k->want) {
        k->st = kv_bad(k, name, "is one more KV tensor than the session's n_kv");
        return 1;
    }
    k->st = read_kv_dataset(k, g, name, full);
    return k->st != GENIE_OK;
}

/* tokens (B, L), lineage (R, 6) or rng (n): checked, allocated, read. */
static genie_status_t read_small(rank_ctx_t *r, hid_t g, uint64_t sid, const char *name, hid_t type, int nd,
                                 uint32_t batch, hsize_t *dims, void **buf_p)
{
    char           dpath[80];
    hid_t          d = open_dset(g, name);
    uint64_t       n = H5Tget_size(type);
    int            got = 0;
    genie_status_t st;

    *buf_p = NULL;                 /* on every path: the caller frees it */
    snprintf(dpath, sizeof(dpath), "/sessions/%llu/%s", (unsigned long long)sid, name);
    if (d < 0) {
        return genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: no dataset %s", r->path, dpath);
    }
    if ((st = ckpt_dset_check(d, r->path, dpath, type, nd, nd, 1, dims, &got)) != GENIE_OK) {
        H5Dclose(d);
        return st;
    }
    /* the caller's bounds come first: dims[0] is checked against the
     * session's attributes before anything is allocated */
    if (strcmp(name, "tokens") == 0) {
        if (dims[0] != batch || dims[1] < 1 || dims[1] > CKPT_MAX_TOKENS || dims[0] * dims[1] > CKPT_MAX_TOKEN_ELEMS) {
            H5Dclose(d);
            return genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: dataset %s is (%llu, %llu), "
                                   "the session's batch is %u", r->path, dpath, (unsigned long long)dims[0],
                                   (unsigned long long)dims[1], batch);
        }
    } else if (strcmp(name, "lineage") == 0) {
        if (dims[0] > CKPT_MAX_LINEAGE || dims[1] != GENIE_CKPT_LINEAGE_COLS) {
            H5Dclose(d);
            return genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: dataset %s is not (R, %d) with "
                                   "R <= 2^24", r->path, dpath, GENIE_CKPT_LINEAGE_COLS);
        }
    } else if (dims[0] < 1 || dims[0] > CKPT_MAX_RNG) {
        H5Dclose(d);
        return genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: dataset %s has %llu bytes (1 to "
                               "%u)", r->path, dpath, (unsigned long long)dims[0], CKPT_MAX_RNG);
    }
    for (int i = 0; i < nd; i++) {
        n *= dims[i];
    }
    if (n > 0 && (*buf_p = malloc(n)) == NULL) {
        H5Dclose(d);
        return genie_set_error(GENIE_ERR_NOMEM, "genie: checkpoint: out of memory");
    }
    st = ckpt_dset_read(d, r->path, dpath, type, *buf_p, n);
    H5Dclose(d);
    return st;
}

static genie_status_t read_session_group(rank_ctx_t *r, hid_t g, uint64_t id, genie_ckpt_session_t *s)
{
    hsize_t        dims[2];
    void          *buf;
    char           cols[64];
    hid_t          d, kg;
    kv_ctx_t       k;
    const char    *bad = NULL;
    genie_status_t st;

    NEED(ckpt_attr_get_u64(g, "id", &s->id), "id");
    if (bad == NULL && s->id != id) {
        bad = "id";
    }
    NEED(ckpt_attr_get_u64(g, "key", &s->key), "key");
    NEED(ckpt_attr_get_u64(g, "model_fp", &s->model_fp), "model_fp");
    NEED(ckpt_attr_get_u64(g, "step", &s->step), "step");
    NEED(ckpt_attr_get_u64(g, "prompt_len", &s->prompt_len), "prompt_len");
    NEED(ckpt_attr_get_u32(g, "batch", &s->batch), "batch");
    if (bad == NULL && (s->batch < 1 || s->batch > CKPT_MAX_BATCH)) {
        bad = "batch (1 to 65536)";
    }
    NEED(ckpt_attr_get_u32(g, "n_kv", &s->n_kv), "n_kv");
    if (bad == NULL && s->n_kv > CKPT_MAX_KV) {
        bad = "n_kv (at most 4096)";
    }
    if (bad != NULL) {
        s->id = id;
        s->n_kv = 0;
        return genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: group /sessions/%llu: missing or "
                               "bad attribute %s", r->path, (unsigned long long)id, bad);
    }
    /* tokens: (batch, L) with L = prompt_len + step */
    st = read_small(r, g, id, "tokens", H5T_STD_I64LE, 2, s->batch, dims, &buf);
    s->tokens = buf;
    if (st != GENIE_OK) {
        return st;
    }
    s->n_tokens = dims[1];
    if (s->prompt_len < 1 || s->prompt_len > s->n_tokens || s->step != s->n_tokens - s->prompt_len) {
        return genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: session %llu: tokens have %llu "
                               "columns, prompt_len %llu and step %llu do not add up to it", r->path,
                               (unsigned long long)id, (unsigned long long)s->n_tokens,
                               (unsigned long long)s->prompt_len, (unsigned long long)s->step);
    }
    /* lineage: (R, 6) and its column names */
    if ((st = read_small(r, g, id, "lineage", H5T_STD_I64LE, 2, 0, dims, &buf)) != GENIE_OK) {
        s->lineage = buf;
        return st;
    }
    s->lineage = buf;
    s->n_lineage = (uint32_t)dims[0];
    d = open_dset(g, "lineage");
    if (d < 0 || ckpt_attr_get_str(d, "columns", cols, sizeof(cols)) < 0 || strcmp(cols, CKPT_LINEAGE_COLUMNS) != 0) {
        if (d >= 0) {
            H5Dclose(d);
        }
        return genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: dataset /sessions/%llu/lineage: its "
                               "'columns' attribute is not \"%s\"", r->path, (unsigned long long)id,
                               CKPT_LINEAGE_COLUMNS);
    }
    H5Dclose(d);
    /* rng: optional */
    if (H5Lexists(g, "rng", H5P_DEFAULT) > 0) {
        st = read_small(r, g, id, "rng", H5T_STD_U8LE, 1, 0, dims, &buf);
        s->rng = buf;
        if (st != GENIE_OK) {
            return st;
        }
        s->rng_len = (uint32_t)dims[0];
    }
    H5Eclear2(H5E_DEFAULT);
    /* kv/: exactly n_kv datasets */
    if ((kg = open_group(g, "kv")) < 0) {
        return genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: session %llu has no kv group", r->path,
                               (unsigned long long)id);
    }
    if ((s->kv = calloc((size_t)s->n_kv + 1, sizeof(*s->kv))) == NULL) {
        H5Gclose(kg);
        return genie_set_error(GENIE_ERR_NOMEM, "genie: checkpoint: out of memory");
    }
    memset(&k, 0, sizeof(k));
    k.r = r;
    k.s = s;
    k.want = s->n_kv;
    {
        uint32_t want = s->n_kv;
        s->n_kv = 0;                      /* counts the datasets read */
        if (H5Literate(kg, H5_INDEX_NAME, H5_ITER_INC, NULL, read_kv_entry, &k) < 0 && k.st == GENIE_OK) {
            k.st = genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: group /sessions/%llu/kv cannot "
                                   "be read", r->path, (unsigned long long)id);
        }
        if (k.st == GENIE_OK && s->n_kv != want) {
            k.st = genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: session %llu has %u KV datasets, "
                                   "its n_kv says %u", r->path, (unsigned long long)id, s->n_kv, want);
        }
    }
    H5Gclose(kg);
    H5Eclear2(H5E_DEFAULT);
    if (k.st != GENIE_OK) {
        return k.st;
    }
    snprintf(s->file, sizeof(s->file), "%s", r->name);
    s->rank = r->rank;
    return GENIE_OK;
}

/* Decimal session id, canonical (no sign, no leading zero), not 0. */
static uint64_t session_id(const char *name)
{
    uint64_t v = 0;

    if (name[0] < '1' || name[0] > '9' || strlen(name) > 20) {
        return 0;
    }
    for (const char *p = name; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10) {
            return 0;
        }
        v = v * 10 + (uint64_t)(*p - '0');
    }
    return v;
}

static herr_t read_session(hid_t sessions, const char *name, const H5L_info_t *info, void *arg)
{
    rank_ctx_t           *r = arg;
    genie_ckpt_session_t *s;
    uint64_t              id = session_id(name);
    char                  shown[32];
    hid_t                 g;

    snprintf(shown, sizeof(shown), "%s", name);
    genie_one_line(shown);
    if (++r->seen > r->n_sessions) {
        r->st = genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: /sessions holds more groups than "
                                "its n_sessions (%u)", r->path, r->n_sessions);
        return 1;
    }
    if (info->type != H5L_TYPE_HARD || id == 0 || (g = H5Gopen2(sessions, name, H5P_DEFAULT)) < 0) {
        H5Eclear2(H5E_DEFAULT);
        r->st = genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: /sessions/%s is not a session group "
                                "(a decimal id, a hard link)", r->path, shown);
        return 1;
    }
    if ((*r->n_p & (*r->n_p + 1)) == 0) {        /* grow at 0, 1, 3, 7, ...: doubling */
        genie_ckpt_session_t *ns = realloc(*r->ss_p, ((size_t)*r->n_p * 2 + 2) * sizeof(*ns));
        if (ns == NULL) {
            H5Gclose(g);
            r->st = genie_set_error(GENIE_ERR_NOMEM, "genie: checkpoint: out of memory");
            return 1;
        }
        *r->ss_p = ns;
    }
    s = &(*r->ss_p)[*r->n_p];
    memset(s, 0, sizeof(*s));
    (*r->n_p)++;                      /* counted even on failure: its buffers are freed with the rest */
    r->st = read_session_group(r, g, id, s);
    H5Gclose(g);
    H5Eclear2(H5E_DEFAULT);
    return r->st != GENIE_OK;
}

genie_status_t ckpt_read_rank(const char *path, const char *name, const genie_ckpt_file_entry_t *expect,
                              uint64_t epoch, const char *job, genie_ckpt_session_t **ss_p, uint32_t *n_p)
{
    rank_ctx_t     r;
    hid_t          f, g;
    uint64_t       file_epoch = 0;
    uint32_t       slice = 0, before = *n_p;
    double         created;
    char           phase[32], file_job[GENIE_CKPT_TEXT_MAX], problem[300];
    const char    *bad = NULL;
    genie_status_t st;

    memset(&r, 0, sizeof(r));
    r.path = path;
    r.name = name;
    r.ss_p = ss_p;
    r.n_p  = n_p;
    if ((st = open_checked(path, CKPT_FORMAT_RANK, &f, problem, sizeof(problem))) != GENIE_OK) {
        return st;
    }
    NEED(ckpt_attr_get_u64(f, "epoch", &file_epoch), "epoch");
    NEED(ckpt_attr_get_i32(f, "rank", &r.rank), "rank");
    NEED(ckpt_attr_get_u32(f, "slice", &slice), "slice");
    NEED(ckpt_attr_get_str(f, "phase", phase, sizeof(phase)), "phase");
    NEED(ckpt_attr_get_str(f, "job", file_job, sizeof(file_job)), "job");
    NEED(ckpt_attr_get_f64(f, "created", &created), "created");
    NEED(ckpt_attr_get_u32(f, "n_sessions", &r.n_sessions), "n_sessions");
    if (bad == NULL && r.n_sessions > CKPT_MAX_SESSIONS) {
        bad = "n_sessions (at most 65536)";
    }
    if (bad != NULL) {
        st = genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: missing or bad root attribute %s", path,
                             bad);
        goto out;
    }
    if ((epoch != 0 && file_epoch != epoch) ||
        (expect != NULL && (r.rank != expect->rank || r.n_sessions != expect->sessions))) {
        st = genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: says epoch %llu, rank %d, %u sessions; "
                             "the manifest says epoch %llu, rank %d, %u sessions", path,
                             (unsigned long long)file_epoch, (int)r.rank, r.n_sessions,
                             (unsigned long long)epoch, expect != NULL ? (int)expect->rank : (int)r.rank,
                             expect != NULL ? expect->sessions : r.n_sessions);
        goto out;
    }
    if (job != NULL && strcmp(job, file_job) != 0) {
        /* a file of another job's epoch, copied or written into this one */
        st = genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: written by job '%s', but the "
                             "manifest's job is '%s'", path, file_job, job);
        goto out;
    }
    if ((g = open_group(f, "sessions")) < 0) {
        st = genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: no /sessions group", path);
        goto out;
    }
    if (H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, read_session, &r) < 0 && r.st == GENIE_OK) {
        r.st = genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: /sessions cannot be read", path);
    }
    H5Gclose(g);
    if ((st = r.st) == GENIE_OK && r.seen != r.n_sessions) {
        st = genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: /sessions holds %u groups, its "
                             "n_sessions says %u", path, r.seen, r.n_sessions);
    }
out:
    H5Fclose(f);
    H5Eclear2(H5E_DEFAULT);
    if (st != GENIE_OK) {
        /* drop what this file added; the caller keeps the rest */
        for (uint32_t i = before; i < *n_p; i++) {
            free((*ss_p)[i].tokens);
            free((*ss_p)[i].rng);
            free((*ss_p)[i].lineage);
            free((*ss_p)[i].kv);
        }
        *n_p = before;
    }
    return st;
}

/* ---- opening an epoch ---------------------------------------------------------------- */

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
    ckpt_free_sessions(ck->sessions, ck->n_sessions);
    ckpt_free_manifest(&ck->manifest);
    free(ck);
}

/* Open one epoch directory: its manifest, then every rank file it lists. */
static genie_status_t open_epoch(const char *dir, uint64_t epoch, genie_ckpt_t **ck_p)
{
    genie_ckpt_t  *ck = calloc(1, sizeof(*ck));
    char           why[GENIE_CKPT_TEXT_MAX], path[4400];
    genie_status_t st;

    if (ck == NULL) {
        return genie_set_error(GENIE_ERR_NOMEM, "genie: checkpoint: out of memory");
    }
    snprintf(ck->dir, sizeof(ck->dir), "%s", dir);
    if ((st = ckpt_read_manifest(dir, epoch, &ck->manifest, why, sizeof(why))) != GENIE_OK) {
        free(ck);
        return st;
    }
    for (uint32_t i = 0; i < ck->manifest.n_files; i++) {
        const genie_ckpt_file_entry_t *e = &ck->manifest.files[i];

        snprintf(path, sizeof(path), "%s/%s", dir, e->name);
        if ((st = ckpt_read_rank(path, e->name, e, epoch, ck->manifest.job, &ck->sessions,
                                 &ck->n_sessions)) != GENIE_OK) {
            genie_ckpt_close(ck);
            return st;
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
    char           dir[4096], why[1024];
    genie_status_t st;

    ckpt_h5_init();
    if (root == NULL || ck_p == NULL) {
        return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint: open of nothing");
    }
    if (epoch != 0) {
        if ((st = genie_ckpt_epoch_path(root, epoch, dir, sizeof(dir))) != GENIE_OK) {
            return st;
        }
        return open_epoch(dir, epoch, ck_p);
    }
    if ((st = ckpt_scan_epochs(root, &ep, &n)) != GENIE_OK) {
        return st;
    }
    for (uint32_t i = n; i-- > 0;) {
        genie_ckpt_epoch_path(root, ep[i], dir, sizeof(dir));
        if (open_epoch(dir, ep[i], ck_p) == GENIE_OK) {
            free(ep);
            genie_clear_error();
            return GENIE_OK;
        }
        if (skipped != NULL) {
            skipped(ep[i], ckpt_why(why, sizeof(why)), arg);
        }
    }
    free(ep);
    return genie_set_error(GENIE_ERR_NOT_FOUND, "genie: checkpoint %s: no complete epoch (%u epoch "
                           "directories, none complete and readable)", root, n);
}

/*
 * The checkpoint directory: epoch paths and their creation, the scan of
 * epoch directories, listing (complete or why not, sizes).  Pruning, the
 * lock and the directory checks: ckpt_root.c.
 * Only canonical epoch names ("epoch-%08llu") that are real directories
 * are ever considered, so that pruning can remove nothing else.
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
#include <unistd.h>

#include "ckpt_h5.h"
#include "ckpt_int.h"

/* ---- paths ------------------------------------------------------------------- */

genie_status_t genie_ckpt_epoch_path(const char *root, uint64_t epoch, char *out, size_t cap)
{
    int n;

    if (root == NULL || root[0] == '\0' || out == NULL || cap == 0) {
        return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint: no directory given");
    }
    n = snprintf(out, cap, "%s/epoch-%08llu", root, (unsigned long long)epoch);
    if (n < 0 || (size_t)n >= cap) {
        return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint directory name too long: %.200s...",
                               root);
    }
    return GENIE_OK;
}

/* Is this directory, just made by us (or found where we were making one),
 * fit to hold checkpoints: a real directory of ours that neither group nor
 * others may write?  NULL if so, else why not. */
static const char *created_dir_problem(const struct stat *sb)
{
    if (!S_ISDIR(sb->st_mode)) {
        return "is not a directory";
    }
    if (sb->st_uid != geteuid()) {
        return "belongs to another user";
    }
    if ((sb->st_mode & 022) != 0) {
        return "is writable by group or others";
    }
    return NULL;
}

genie_status_t ckpt_mkdirs(const char *path)
{
    char        buf[4096];
    size_t      n = strlen(path);
    struct stat sb;

    if (n >= sizeof(buf)) {
        return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint directory name too long");
    }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        const char *bad;

        if (buf[i] != '/' && buf[i] != '\0') {
            continue;
        }
        buf[i] = '\0';
        if (lstat(buf, &sb) == 0) {
            /* there before us: path resolution goes through it; the last
             * component is judged by its user (genie_ckpt_root_open) */
        } else if (errno != ENOENT) {
            return genie_set_error(GENIE_ERR_IO, "genie: checkpoint directory %s: %s", buf, strerror(errno));
        } else {
            if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
                return genie_set_error(GENIE_ERR_IO, "genie: checkpoint directory %s: %s", buf,
                                       strerror(errno));
            }
            /* ours now, unless someone made it in between: check what is there */
            if (lstat(buf, &sb) != 0) {
                return genie_set_error(GENIE_ERR_IO, "genie: checkpoint directory %s: %s", buf,
                                       strerror(errno));
            }
            if ((bad = created_dir_problem(&sb)) != NULL) {
                return genie_set_error(GENIE_ERR_DENIED, "genie: checkpoint directory %s appeared while Genie "
                                       "was creating it and %s (mode %04o, uid %u); refusing to write into it",
                                       buf, bad, (unsigned)(sb.st_mode & 07777), (unsigned)sb.st_uid);
            }
        }
        if (i < n) {
            buf[i] = '/';
        }
    }
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        return genie_set_error(GENIE_ERR_IO, "genie: checkpoint directory %s: not a directory", path);
    }
    return GENIE_OK;
}

genie_status_t genie_ckpt_epoch_create(const char *root, uint64_t epoch)
{
    char           dir[4096];
    genie_status_t st;

    if (epoch < 1) {
        return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint: epochs start at 1");
    }
    if ((st = genie_ckpt_epoch_path(root, epoch, dir, sizeof(dir))) != GENIE_OK) {
        return st;
    }
    return ckpt_mkdirs(dir);
}

void genie_ckpt_rank_file_name(int32_t rank, char *out, size_t cap)
{
    snprintf(out, cap, "rank-%04d.h5", (int)rank);
}

const char *ckpt_why(char *out, size_t cap)
{
    const char *e = genie_last_error();
    const char *p = "genie: checkpoint ";

    snprintf(out, cap, "%s", strncmp(e, p, strlen(p)) == 0 ? e + strlen(p) : e);
    return out;
}

/* ---- the epoch scan ---------------------------------------------------------------- */

/* The epoch of a canonical name "epoch-%08llu", or 0. */
static uint64_t name_epoch(const char *name)
{
    char     canon[40];
    uint64_t v = 0;

    if (strncmp(name, "epoch-", 6) != 0 || strlen(name) > 6 + 20) {
        return 0;
    }
    for (const char *p = name + 6; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10) {
            return 0;
        }
        v = v * 10 + (uint64_t)(*p - '0');
    }
    snprintf(canon, sizeof(canon), "epoch-%08llu", (unsigned long long)v);
    return strcmp(canon, name) == 0 ? v : 0;
}

uint64_t ckpt_dir_epoch(const char *dir)
{
    char   buf[4096];
    size_t n = strnlen(dir, sizeof(buf) - 1);
    char  *base;

    memcpy(buf, dir, n);
    buf[n] = '\0';
    while (n > 1 && buf[n - 1] == '/') {
        buf[--n] = '\0';
    }
    base = strrchr(buf, '/');
    return name_epoch(base != NULL ? base + 1 : buf);
}

genie_status_t ckpt_scan_epochs(const char *root, uint64_t **ep_p, uint32_t *n_p)
{
    DIR           *d = opendir(root);
    struct dirent *e;
    uint64_t      *ep = NULL;
    uint32_t       n = 0, cap = 0;
    char           path[4400];
    struct stat    sb;

    if (d == NULL) {
        return genie_set_error(errno == ENOENT ? GENIE_ERR_NOT_FOUND : GENIE_ERR_IO,
                               "genie: checkpoint directory %s: %s", root, strerror(errno));
    }
    while ((e = readdir(d)) != NULL) {
        uint64_t v = name_epoch(e->d_name);

        snprintf(path, sizeof(path), "%s/%s", root, e->d_name);
        if (v == 0 || lstat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            continue;
        }
        if (n == cap) {
            uint64_t *nep = cap < (1u << 30) ? realloc(ep, (size_t)(cap = cap * 2 + 16) * sizeof(*ep)) : NULL;
            if (nep == NULL) {
                free(ep);
                closedir(d);
                return genie_set_error(GENIE_ERR_NOMEM, "genie: checkpoint: out of memory");
            }
            ep = nep;
        }
        ep[n++] = v;
    }
    closedir(d);
    for (uint32_t i = 1; i < n; i++) {          /* insertion sort: a few epochs */
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

/* ---- listing ------------------------------------------------------------------------ */

/* Bytes of every regular file in dir, and how many are committed rank files. */
static void dir_sizes(const char *dir, uint64_t *bytes_p, uint32_t *rank_files_p)
{
    DIR           *d = opendir(dir);
    struct dirent *e;
    char           path[4400];
    struct stat    sb;

    *bytes_p = 0;
    *rank_files_p = 0;
    if (d == NULL) {
        return;
    }
    while ((e = readdir(d)) != NULL) {
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (lstat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
            *bytes_p += (uint64_t)sb.st_size;
            *rank_files_p += ckpt_file_name_ok(e->d_name);
        }
    }
    closedir(d);
}

genie_status_t genie_ckpt_list(const char *root, genie_ckpt_epoch_info_t **epochs_p, uint32_t *n_p)
{
    uint64_t                *ep = NULL;
    uint32_t                 n = 0;
    genie_ckpt_epoch_info_t *out;
    genie_status_t           st;

    ckpt_h5_init();
    if (root == NULL || epochs_p == NULL || n_p == NULL) {
        return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint: list of nothing");
    }
    if ((st = ckpt_scan_epochs(root, &ep, &n)) != GENIE_OK) {
        return st;
    }
    if ((out = calloc(n + 1, sizeof(*out))) == NULL) {
        free(ep);
        return genie_set_error(GENIE_ERR_NOMEM, "genie: checkpoint: out of memory");
    }
    for (uint32_t i = 0; i < n; i++) {
        genie_ckpt_manifest_t m;
        char                  dir[4096];
        uint32_t              rank_files;

        out[i].epoch = ep[i];
        genie_ckpt_epoch_path(root, ep[i], dir, sizeof(dir));
        dir_sizes(dir, &out[i].bytes, &rank_files);
        out[i].complete = ckpt_read_manifest(dir, ep[i], &m, out[i].why, sizeof(out[i].why)) == GENIE_OK;
        if (out[i].complete) {
            out[i].n_files = m.n_files;
            out[i].created = m.created;
            snprintf(out[i].reason, sizeof(out[i].reason), "%s", m.reason);
            snprintf(out[i].job, sizeof(out[i].job), "%s", m.job);
            for (uint32_t k = 0; k < m.n_files; k++) {
                out[i].n_sessions += m.files[k].sessions;
            }
            ckpt_free_manifest(&m);
        } else {
            out[i].n_files = rank_files;    /* committed rank files present */
        }
    }
    free(ep);
    genie_clear_error();
    *epochs_p = out;
    *n_p = n;
    return GENIE_OK;
}

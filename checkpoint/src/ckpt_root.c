/*
 * A job's checkpoint directory (docs/checkpoint-format.md section 1, "Who
 * may write a directory"): the checks that decide whether Genie may write
 * into it, the job's own subdirectory in a shared sticky root, the lock
 * that keeps a second job out for the first one's life, this job's epoch
 * numbers, and pruning that removes only this job's epochs.
 *
 * Why these rules: `checkpoint_root` is meant to be a site-wide directory.
 * Anyone who may write a directory may replace the files in it (rename a
 * rank file away, plant a symbolic link where a .tmp file will be
 * created); a sticky directory lets only a file's owner (and the
 * directory's) do that, so there each job works in a 0700 subdirectory of
 * its own.  Two jobs in one directory would pick the same epoch numbers
 * and prune each other's epochs; the lock makes the second one stop at
 * its start with a line naming the first.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
/* Messages and paths are cut at their buffer's size on purpose: a long
 * path must not turn a one-line report into an error of its own. */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt_h5.h"
#include "ckpt_int.h"

#define LOCK_NAME "genie.lock"
#define DIR_CAP   4096

struct genie_ckpt_root {
    char     dir[DIR_CAP];               /* where this job's epochs go             */
    char     job[GENIE_CKPT_TEXT_MAX];
    int      lock_fd;                    /* genie.lock, flock'd (LOCK_EX)          */
    int      shared;                     /* dir is our subdirectory of a shared root */
    uint64_t first_epoch;                /* newest epoch at the start + 1          */
    uint64_t next_epoch;
    uint64_t *mine;                      /* (n_mine) epochs this job created, ascending */
    uint32_t  n_mine, cap_mine;
};

static int is_mine(const genie_ckpt_root_t *r, uint64_t epoch)
{
    for (uint32_t i = 0; i < r->n_mine; i++) {
        if (r->mine[i] == epoch) {
            return 1;
        }
    }
    return 0;
}

/* "a user": the name of uid, or "uid N". */
static const char *user_name(uid_t uid, char *out, size_t cap)
{
    struct passwd pw, *res = NULL;
    char          buf[1024];

    if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res != NULL && res->pw_name[0] != '\0') {
        snprintf(out, cap, "%s", res->pw_name);
    } else {
        snprintf(out, cap, "uid %u", (unsigned)uid);
    }
    return out;
}

/* "genie-<user>-<job>", every byte outside [A-Za-z0-9._-] as '_'. */
static void job_dir_name(const char *job, char *out, size_t cap)
{
    char   user[64], raw[200];
    size_t n;

    user_name(geteuid(), user, sizeof(user));
    snprintf(raw, sizeof(raw), "genie-%s-%s", user, job[0] != '\0' ? job : "job");
    n = strlen(raw);
    for (size_t i = 0; i < n; i++) {
        char c = raw[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-')) {
            raw[i] = '_';
        }
    }
    snprintf(out, cap, "%s", raw);
}

/* ---- may we write into it? ---------------------------------------------------------- */

enum { DIR_OURS, DIR_SHARED };

/* Judge the directory `path` (sb: fstat of it, lsb: lstat of its name).
 * DIR_OURS: the user's, not writable by group or others; DIR_SHARED: a
 * sticky directory others may write, owned by root or the user; else an
 * error (GENIE_ERR_DENIED) saying why and what to do. */
static genie_status_t judge(const char *path, const struct stat *sb, const struct stat *lsb, int *kind_p)
{
    uid_t    me = geteuid();
    unsigned mode = (unsigned)(sb->st_mode & 07777);
    char     owner[64];

    if (S_ISLNK(lsb->st_mode) && lsb->st_uid != me && lsb->st_uid != 0) {
        return genie_set_error(GENIE_ERR_DENIED, "genie: checkpoint directory %s is a symbolic link of %s, "
                               "who could point it elsewhere at any time; give the directory itself", path,
                               user_name(lsb->st_uid, owner, sizeof(owner)));
    }
    if ((sb->st_mode & S_ISVTX) && (sb->st_mode & 022)) {
        if (sb->st_uid != me && sb->st_uid != 0) {
            return genie_set_error(GENIE_ERR_DENIED, "genie: checkpoint directory %s is a shared sticky "
                                   "directory (mode %04o) of %s, who may remove or replace anything in it; "
                                   "use a directory of your own, or a shared root owned by root", path, mode,
                                   user_name(sb->st_uid, owner, sizeof(owner)));
        }
        *kind_p = DIR_SHARED;
        return GENIE_OK;
    }
    if (sb->st_uid != me) {
        char mine[64];
        return genie_set_error(GENIE_ERR_DENIED, "genie: checkpoint directory %s belongs to %s, not to you "
                               "(%s): Genie writes checkpoints only into a directory of your own (or its own "
                               "subdirectory of a sticky shared root such as /tmp)", path,
                               user_name(sb->st_uid, owner, sizeof(owner)), user_name(me, mine, sizeof(mine)));
    }
    if (sb->st_mode & 022) {
        return genie_set_error(GENIE_ERR_DENIED, "genie: checkpoint directory %s is writable by %s (mode "
                               "%04o) and not sticky, so others could replace its files; chmod go-w %s, or "
                               "use another directory", path,
                               (sb->st_mode & 002) ? "others" : "its group", mode, path);
    }
    *kind_p = DIR_OURS;
    return GENIE_OK;
}

/* Every directory above `dir` (its real path, up to /): none may be
 * writable by others without the sticky bit, or anyone could rename `dir`
 * away and put a directory of theirs in its place while the job writes.
 * (A group-writable one is left to the group's members.) */
static genie_status_t check_above(const char *dir)
{
    char        real[PATH_MAX], *slash;
    struct stat sb;

    if (realpath(dir, real) == NULL) {
        return genie_set_error(GENIE_ERR_IO, "genie: checkpoint directory %s: %s", dir, strerror(errno));
    }
    while ((slash = strrchr(real, '/')) != NULL && real[1] != '\0') {
        slash[slash == real ? 1 : 0] = '\0';
        if (stat(real, &sb) != 0) {
            return genie_set_error(GENIE_ERR_IO, "genie: checkpoint directory %s: %s: %s", dir, real,
                                   strerror(errno));
        }
        if ((sb.st_mode & S_IWOTH) && !(sb.st_mode & S_ISVTX)) {
            return genie_set_error(GENIE_ERR_DENIED, "genie: checkpoint directory %s is inside %s, which "
                                   "is writable by others (mode %04o) and not sticky, so anyone could move "
                                   "the directory away and put another in its place; use a directory "
                                   "whose parents others cannot write", dir, real,
                                   (unsigned)(sb.st_mode & 07777));
        }
    }
    return GENIE_OK;
}

/* The job's subdirectory `name` of the shared root open as dfd: created
 * 0700, or found as a real directory of ours that nobody else may write. */
static genie_status_t job_subdir(const char *root, int dfd, const char *name)
{
    struct stat sb;
    char        owner[64];

    if (mkdirat(dfd, name, 0700) != 0 && errno != EEXIST) {
        return genie_set_error(GENIE_ERR_IO, "genie: checkpoint directory %s/%s: %s", root, name,
                               strerror(errno));
    }
    if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
        return genie_set_error(GENIE_ERR_IO, "genie: checkpoint directory %s/%s: %s", root, name,
                               strerror(errno));
    }
    if (!S_ISDIR(sb.st_mode) || sb.st_uid != geteuid() || (sb.st_mode & 022) != 0) {
        return genie_set_error(GENIE_ERR_DENIED, "genie: checkpoint directory %s/%s exists and is not this "
                               "job's (%s of %s, mode %04o); refusing to write into it", root, name,
                               S_ISLNK(sb.st_mode) ? "a symbolic link" : S_ISDIR(sb.st_mode) ? "a directory"
                                                                                           : "a file",
                               user_name(sb.st_uid, owner, sizeof(owner)), (unsigned)(sb.st_mode & 07777));
    }
    return GENIE_OK;
}

/* ---- the lock ------------------------------------------------------------------------ */

/* Who holds the lock, from the lock file's "job=", "pid=", "host=" lines. */
static void holder(int fd, char *out, size_t cap)
{
    char    buf[768], job[300] = "", pid[32] = "?", host[300] = "?", *save = NULL;
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

    if (n <= 0) {
        snprintf(out, cap, "another job (its %s names none yet)", LOCK_NAME);
        return;
    }
    buf[n] = '\0';
    for (char *line = strtok_r(buf, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "job=", 4) == 0) {
            snprintf(job, sizeof(job), "%s", line + 4);
        } else if (strncmp(line, "pid=", 4) == 0) {
            snprintf(pid, sizeof(pid), "%s", line + 4);
        } else if (strncmp(line, "host=", 5) == 0) {
            snprintf(host, sizeof(host), "%s", line + 5);
        }
    }
    snprintf(out, cap, "job %s (pid %s on %s)", job[0] != '\0' ? job : "?", pid, host);
    genie_one_line(out);
}

static genie_status_t take_lock(genie_ckpt_root_t *r)
{
    char        path[DIR_CAP + 32], text[700], host[256] = "?", who[800];
    struct stat sb;
    int         fd, n, written;

    snprintf(path, sizeof(path), "%s/%s", r->dir, LOCK_NAME);
    fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        return genie_set_error(GENIE_ERR_IO, "genie: checkpoint directory %s: cannot open its %s: %s", r->dir,
                               LOCK_NAME, strerror(errno));
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_uid != geteuid()) {
        close(fd);
        return genie_set_error(GENIE_ERR_DENIED, "genie: checkpoint directory %s: its %s is not a file of "
                               "yours; remove it", r->dir, LOCK_NAME);
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;

        if (e == EWOULDBLOCK) {
            holder(fd, who, sizeof(who));
            close(fd);
            return genie_set_error(GENIE_ERR_DENIED, "genie: checkpoint directory %s is in use by %s: two "
                                   "jobs must not write one checkpoint directory; give this job a directory "
                                   "of its own (--checkpoint-dir, --genie-checkpoint-dir), or end that "
                                   "one first", r->dir, who);
        }
        close(fd);
        return genie_set_error(GENIE_ERR_IO, "genie: checkpoint directory %s: cannot lock its %s (%s): "
                               "checkpoints need a file system with file locks", r->dir, LOCK_NAME,
                               strerror(e));
    }
    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    n = snprintf(text, sizeof(text), "job=%s\npid=%ld\nhost=%s\n", r->job, (long)getpid(), host);
    /* A failed write leaves the lock ours all the same; only the name that
     * a refused job would print is missing. */
    written = ftruncate(fd, 0) == 0 && pwrite(fd, text, (size_t)n, 0) == n;
    (void)written;
    r->lock_fd = fd;
    return GENIE_OK;
}

/* ---- opening ------------------------------------------------------------------------- */

static uint64_t newest_epoch(const char *dir)
{
    uint64_t *ep = NULL, newest = 0;
    uint32_t  n = 0;

    if (ckpt_scan_epochs(dir, &ep, &n) == GENIE_OK && n > 0) {
        newest = ep[n - 1];
    }
    free(ep);
    return newest;
}

genie_status_t genie_ckpt_root_open(const char *dir, const char *job, genie_ckpt_root_t **root_p)
{
    genie_ckpt_root_t *r;
    struct stat        sb, lsb;
    int                dfd = -1, kind = DIR_OURS;
    genie_status_t     st;

    if (dir == NULL || dir[0] != '/' || job == NULL || root_p == NULL) {
        return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint directory '%s': an absolute path is "
                               "required", dir != NULL ? dir : "(null)");
    }
    if (strlen(dir) >= DIR_CAP - 300 || strlen(job) >= GENIE_CKPT_TEXT_MAX) {
        return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint directory name or job id too long: "
                               "%.200s...", dir);
    }
    if ((r = calloc(1, sizeof(*r))) == NULL) {
        return genie_set_error(GENIE_ERR_NOMEM, "genie: checkpoint: out of memory");
    }
    r->lock_fd = -1;
    snprintf(r->job, sizeof(r->job), "%s", job);
    if ((st = ckpt_mkdirs(dir)) != GENIE_OK) {
        goto err;
    }
    if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 || fstat(dfd, &sb) != 0 ||
        lstat(dir, &lsb) != 0) {
        st = genie_set_error(GENIE_ERR_IO, "genie: checkpoint directory %s: %s", dir, strerror(errno));
        goto err;
    }
    if ((st = judge(dir, &sb, &lsb, &kind)) != GENIE_OK || (st = check_above(dir)) != GENIE_OK) {
        goto err;
    }
    if (kind == DIR_SHARED) {
        char name[256];

        job_dir_name(job, name, sizeof(name));
        if ((st = job_subdir(dir, dfd, name)) != GENIE_OK) {
            goto err;
        }
        snprintf(r->dir, sizeof(r->dir), "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", name);
        r->shared = 1;
    } else {
        snprintf(r->dir, sizeof(r->dir), "%s", dir);
    }
    close(dfd);
    dfd = -1;
    if ((st = take_lock(r)) != GENIE_OK) {
        goto err;
    }
    /* under the lock: no other job adds epochs from now on */
    r->first_epoch = r->next_epoch = newest_epoch(r->dir) + 1;
    *root_p = r;
    return GENIE_OK;
err:
    if (dfd >= 0) {
        close(dfd);
    }
    free(r);
    return st;
}

const char *genie_ckpt_root_dir(const genie_ckpt_root_t *r)
{
    return r->dir;
}

int genie_ckpt_root_shared(const genie_ckpt_root_t *r)
{
    return r->shared;
}

uint64_t genie_ckpt_root_first_epoch(const genie_ckpt_root_t *r)
{
    return r->first_epoch;
}

void genie_ckpt_root_close(genie_ckpt_root_t *r)
{
    if (r == NULL) {
        return;
    }
    if (r->lock_fd >= 0) {
        close(r->lock_fd);           /* releases the flock */
    }
    free(r->mine);
    free(r);
}

/* ---- the job's epochs ------------------------------------------------------------------ */

genie_status_t genie_ckpt_root_new_epoch(genie_ckpt_root_t *r, uint64_t *epoch_p, char *dir, size_t cap)
{
    uint64_t       epoch = r->next_epoch, newest = newest_epoch(r->dir);
    char           path[DIR_CAP];
    genie_status_t st;

    if (newest >= epoch) {              /* someone wrote here without the lock */
        epoch = newest + 1;
    }
    if ((st = genie_ckpt_epoch_path(r->dir, epoch, path, sizeof(path))) != GENIE_OK) {
        return st;
    }
    if (r->n_mine == r->cap_mine) {
        uint32_t  cap = r->cap_mine * 2 + 16;
        uint64_t *m = cap > r->cap_mine ? realloc(r->mine, (size_t)cap * sizeof(*m)) : NULL;

        if (m == NULL) {
            return genie_set_error(GENIE_ERR_NOMEM, "genie: checkpoint: out of memory");
        }
        r->mine = m;
        r->cap_mine = cap;
    }
    if (mkdir(path, 0700) != 0) {
        return genie_set_error(GENIE_ERR_IO, "genie: checkpoint %s: cannot create it: %s", path,
                               strerror(errno));
    }
    r->next_epoch = epoch + 1;
    r->mine[r->n_mine++] = epoch;
    if (snprintf(dir, cap, "%s", path) >= (int)cap) {
        return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint %s: path too long", path);
    }
    *epoch_p = epoch;
    return GENIE_OK;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p) == 0 ? 0 : -1;
}

/* Remove an epoch directory, depth first, not following symbolic links. */
static int remove_epoch(const genie_ckpt_root_t *r, uint64_t epoch, char *failed, size_t cap)
{
    char dir[DIR_CAP];

    if (genie_ckpt_epoch_path(r->dir, epoch, dir, sizeof(dir)) != GENIE_OK) {
        return -1;
    }
    if (nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0) {
        if (failed != NULL && failed[0] == '\0') {
            snprintf(failed, cap, "%s: %s", dir, strerror(errno));
        }
        return -1;
    }
    return 0;
}

genie_status_t genie_ckpt_root_drop(genie_ckpt_root_t *r, uint64_t epoch)
{
    char failed[512] = "";

    if (!is_mine(r, epoch)) {
        return genie_set_error(GENIE_ERR_INVALID, "genie: checkpoint %s: epoch %llu is not one this job "
                               "created", r->dir, (unsigned long long)epoch);
    }
    if (remove_epoch(r, epoch, failed, sizeof(failed)) != 0) {
        return genie_set_error(GENIE_ERR_IO, "genie: checkpoint: could not remove %s", failed);
    }
    return GENIE_OK;
}

genie_status_t genie_ckpt_root_prune(genie_ckpt_root_t *r, uint32_t keep, uint32_t *removed_p)
{
    genie_ckpt_epoch_info_t *eps = NULL;
    uint8_t                 *ours;
    uint32_t                 n = 0, removed = 0, kept = 0;
    uint64_t                 newest_complete = 0;
    char                     failed[512] = "";
    genie_status_t           st;

    if ((st = genie_ckpt_list(r->dir, &eps, &n)) != GENIE_OK) {
        return st;
    }
    if ((ours = calloc(n + 1, 1)) == NULL) {
        free(eps);
        return genie_set_error(GENIE_ERR_NOMEM, "genie: checkpoint: out of memory");
    }
    /* This job's epochs: those it created, and, when complete, committed by
     * it (another job's manifest there means someone wrote here without the
     * lock: leave it). */
    for (uint32_t i = 0; i < n; i++) {
        ours[i] = is_mine(r, eps[i].epoch) && (!eps[i].complete || strcmp(eps[i].job, r->job) == 0);
        if (ours[i] && eps[i].complete) {
            newest_complete = eps[i].epoch;
        }
    }
    for (uint32_t i = n; i-- > 0;) {
        int drop;

        if (!ours[i]) {
            continue;
        }
        if (eps[i].complete) {
            drop = ++kept > keep;
        } else {
            /* a newer incomplete epoch may be being written right now */
            drop = eps[i].epoch < newest_complete;
        }
        if (drop) {
            removed += remove_epoch(r, eps[i].epoch, failed, sizeof(failed)) == 0;
        }
    }
    free(ours);
    free(eps);
    if (removed_p != NULL) {
        *removed_p = removed;
    }
    if (failed[0] != '\0') {
        return genie_set_error(GENIE_ERR_IO, "genie: checkpoint: could not remove %s", failed);
    }
    return GENIE_OK;
}

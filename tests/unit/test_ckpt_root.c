/*
 * A job's checkpoint directory (genie_ckpt_root_*, docs/checkpoint-format.md
 * section 1) and the library's I/O guards, on real directories and HDF5
 * files:
 *   - which directories are used, which refused (another user's, writable
 *     by group or others, a symbolic link of another user, a sticky root of
 *     another user) and the job's own 0700 subdirectory of a sticky shared
 *     root (and a planted one refused);
 *   - the lock: a second holder is refused naming the first (in this
 *     process and from another one), and the directory is free once the
 *     first lets go;
 *   - epoch numbers from the newest present + 1, drop and prune of this
 *     job's epochs only (another job's complete epochs, and an incomplete
 *     one from before, are never touched);
 *   - the O_DIRECT descriptor must be the file just created: a name swapped
 *     between the two opens fails the write and leaves the other file as it
 *     was;
 *   - the progress hook is called during a multi-chunk write and read, and
 *     not once it is removed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "genie/ckpt.h"
#include "ckpt_h5.h"          /* ckpt_vfd_between_opens (the swap test) */
#include "ckpt_int.h"         /* ckpt_progress, ckpt_progress_piece (the slow-disk test) */

#define OTHER_UID 12345       /* a user that is not us (root only tests) */

static char base[256];

static int setup(void **state)
{
    (void)state;
    snprintf(base, sizeof(base), "/tmp/genie-test-ckpt-root-XXXXXX");
    assert_non_null(mkdtemp(base));
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
    return system(cmd) == 0 ? 0 : -1;
}

static void path_in(const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", base, name);
}

static unsigned mode_of(const char *path)
{
    struct stat sb;

    assert_int_equal(lstat(path, &sb), 0);
    return (unsigned)(sb.st_mode & 07777);
}

static void refused(const char *dir, const char *job, const char *needle)
{
    genie_ckpt_root_t *r = NULL;
    const char        *e;

    assert_int_equal(genie_ckpt_root_open(dir, job, &r), GENIE_ERR_DENIED);
    assert_null(r);
    e = genie_last_error();
    if (strstr(e, needle) == NULL) {
        fail_msg("want '%s' in: %s", needle, e);
    }
    assert_true(strncmp(e, "genie: checkpoint directory ", 28) == 0);
    assert_null(strchr(e, '\n'));
    print_message("%s\n", e);
}

/* ---- which directories ------------------------------------------------------------ */

static void test_own_and_created(void **state)
{
    genie_ckpt_root_t *r = NULL;
    char               d[400], p[500], text[300];
    int                fd;
    ssize_t            n;

    (void)state;
    path_in("x/y/ck", d, sizeof(d));
    assert_int_equal(genie_ckpt_root_open(d, "job-1", &r), GENIE_OK);
    assert_string_equal(genie_ckpt_root_dir(r), d);
    assert_int_equal(genie_ckpt_root_shared(r), 0);
    assert_int_equal(genie_ckpt_root_first_epoch(r), 1);
    path_in("x", p, sizeof(p));
    assert_int_equal(mode_of(p), 0700);
    path_in("x/y", p, sizeof(p));
    assert_int_equal(mode_of(p), 0700);
    assert_int_equal(mode_of(d), 0700);
    snprintf(p, sizeof(p), "%s/genie.lock", d);
    assert_int_equal(mode_of(p), 0600);
    fd = open(p, O_RDONLY);
    assert_true(fd >= 0);
    n = read(fd, text, sizeof(text) - 1);
    close(fd);
    assert_true(n > 0);
    text[n] = '\0';
    assert_non_null(strstr(text, "job=job-1\n"));
    genie_ckpt_root_close(r);
    /* a relative path is refused (the executors are elsewhere) */
    assert_int_equal(genie_ckpt_root_open("ck", "job-1", &r), GENIE_ERR_INVALID);
}

static void test_writable_by_others(void **state)
{
    char d[400];

    (void)state;
    path_in("open", d, sizeof(d));
    assert_int_equal(mkdir(d, 0700), 0);
    assert_int_equal(chmod(d, 0777), 0);
    refused(d, "job-1", "is writable by others (mode 0777) and not sticky");
    assert_int_equal(chmod(d, 0770), 0);
    refused(d, "job-1", "is writable by its group (mode 0770) and not sticky");
}

/* A directory of ours inside one that others may write (not sticky): they
 * could rename it away and put theirs in its place.  Inside a sticky one
 * (only its owner may rename it) it is fine. */
static void test_parent_writable_by_others(void **state)
{
    genie_ckpt_root_t *r = NULL;
    char               open_dir[400], d[500], want[600];

    (void)state;
    path_in("open", open_dir, sizeof(open_dir));
    assert_int_equal(mkdir(open_dir, 0700), 0);
    assert_int_equal(chmod(open_dir, 0777), 0);
    snprintf(d, sizeof(d), "%s/mine/ck", open_dir);
    snprintf(want, sizeof(want), "is inside %s, which is writable by others (mode 0777) and not sticky",
             open_dir);
    refused(d, "job-1", want);
    assert_int_equal(chmod(open_dir, 01777), 0);
    if (genie_ckpt_root_open(d, "job-1", &r) != GENIE_OK) {
        fail_msg("%s", genie_last_error());
    }
    assert_string_equal(genie_ckpt_root_dir(r), d);
    genie_ckpt_root_close(r);
}

static void test_other_users(void **state)
{
    char d[400], link[400], mine[400];

    (void)state;
    if (geteuid() != 0) {
        /* a directory of root's: the same refusal without chown */
        refused("/usr", "job-1", "belongs to root, not to you");
        return;
    }
    path_in("theirs", d, sizeof(d));
    assert_int_equal(mkdir(d, 0700), 0);
    assert_int_equal(chown(d, OTHER_UID, OTHER_UID), 0);
    refused(d, "job-1", "belongs to uid 12345, not to you");
    /* a sticky shared root owned by another user: its owner may replace anything */
    assert_int_equal(chmod(d, 01777), 0);
    refused(d, "job-1", "is a shared sticky directory (mode 1777) of uid 12345");
    /* a symbolic link of another user to a directory of ours */
    path_in("mine", mine, sizeof(mine));
    assert_int_equal(mkdir(mine, 0700), 0);
    path_in("link", link, sizeof(link));
    assert_int_equal(symlink(mine, link), 0);
    assert_int_equal(lchown(link, OTHER_UID, OTHER_UID), 0);
    refused(link, "job-1", "is a symbolic link of uid 12345");
    /* our own link to our own directory is fine */
    assert_int_equal(lchown(link, 0, 0), 0);
    {
        genie_ckpt_root_t *r = NULL;
        assert_int_equal(genie_ckpt_root_open(link, "job-1", &r), GENIE_OK);
        genie_ckpt_root_close(r);
    }
}

static void test_sticky_shared_root(void **state)
{
    genie_ckpt_root_t *r = NULL;
    char               d[400], want[1200], user[200], p[1200];
    struct passwd     *pw = getpwuid(geteuid());

    (void)state;
    snprintf(user, sizeof(user), "%s", pw != NULL ? pw->pw_name : "user");
    path_in("tmp", d, sizeof(d));
    assert_int_equal(mkdir(d, 0700), 0);
    assert_int_equal(chmod(d, 01777), 0);
    assert_int_equal(genie_ckpt_root_open(d, "123.0", &r), GENIE_OK);
    snprintf(want, sizeof(want), "%s/genie-%s-123.0", d, user);
    assert_string_equal(genie_ckpt_root_dir(r), want);
    assert_int_equal(genie_ckpt_root_shared(r), 1);
    assert_int_equal(mode_of(want), 0700);
    snprintf(p, sizeof(p), "%s/genie.lock", d);
    assert_int_equal(access(p, F_OK), -1);          /* nothing of ours in the shared root itself */
    genie_ckpt_root_close(r);
    /* the same job again (a second driver start): its subdirectory is reused */
    assert_int_equal(genie_ckpt_root_open(d, "123.0", &r), GENIE_OK);
    assert_string_equal(genie_ckpt_root_dir(r), want);
    genie_ckpt_root_close(r);
    /* bytes outside [A-Za-z0-9._-] of a job id become '_' */
    assert_int_equal(genie_ckpt_root_open(d, "node1:4242", &r), GENIE_OK);
    snprintf(want, sizeof(want), "%s/genie-%s-node1_4242", d, user);
    assert_string_equal(genie_ckpt_root_dir(r), want);
    genie_ckpt_root_close(r);
    /* a name planted by someone else where the job's subdirectory goes */
    snprintf(p, sizeof(p), "%s/genie-%s-planted", d, user);
    assert_int_equal(symlink("/", p), 0);
    refused(d, "planted", "exists and is not this job's (a symbolic link");
    if (geteuid() == 0) {
        snprintf(p, sizeof(p), "%s/genie-%s-theirs", d, user);
        assert_int_equal(mkdir(p, 0777), 0);
        assert_int_equal(chown(p, OTHER_UID, OTHER_UID), 0);
        refused(d, "theirs", "exists and is not this job's (a directory of uid 12345");
    }
}

/* ---- the lock ------------------------------------------------------------------------- */

static void test_lock(void **state)
{
    genie_ckpt_root_t *a = NULL, *b = NULL;
    char               d[400], needle[200];
    int                to_child[2], from_child[2], status;
    pid_t              pid;
    char               c;

    (void)state;
    path_in("ck", d, sizeof(d));
    assert_int_equal(genie_ckpt_root_open(d, "job-A", &a), GENIE_OK);
    snprintf(needle, sizeof(needle), "is in use by job job-A (pid %ld on ", (long)getpid());
    refused(d, "job-B", needle);
    genie_ckpt_root_close(a);
    assert_int_equal(genie_ckpt_root_open(d, "job-B", &b), GENIE_OK);
    genie_ckpt_root_close(b);

    /* held by another process */
    assert_int_equal(pipe(to_child), 0);
    assert_int_equal(pipe(from_child), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        genie_ckpt_root_t *r = NULL;
        char               x = genie_ckpt_root_open(d, "job-C.0", &r) == GENIE_OK ? 'y' : 'n';

        close(to_child[1]);                     /* so that the parent's close ends the read */

        if (write(from_child[1], &x, 1) != 1 || read(to_child[0], &x, 1) < 0) {
            _exit(2);
        }
        _exit(0);                               /* ends without closing: the kernel lets go */
    }
    assert_int_equal(read(from_child[0], &c, 1), 1);
    assert_int_equal(c, 'y');
    snprintf(needle, sizeof(needle), "is in use by job job-C.0 (pid %ld on ", (long)pid);
    refused(d, "job-D", needle);
    close(to_child[1]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(genie_ckpt_root_open(d, "job-D", &b), GENIE_OK);
    genie_ckpt_root_close(b);
    close(to_child[0]);
    close(from_child[0]);
    close(from_child[1]);
}

/* ---- epochs: numbers, drop, prune ------------------------------------------------------ */

/* A complete epoch without files (a manifest listing none), of `job`. */
static void commit_empty(const char *dir, uint64_t epoch, const char *job)
{
    genie_ckpt_manifest_t m = { .epoch = epoch };

    snprintf(m.job, sizeof(m.job), "%s", job);
    snprintf(m.reason, sizeof(m.reason), "steps");
    if (genie_ckpt_write_manifest(dir, &m) != GENIE_OK) {
        fail_msg("manifest: %s", genie_last_error());
    }
}

static int epoch_exists(const char *dir, uint64_t epoch)
{
    char p[700];

    genie_ckpt_epoch_path(dir, epoch, p, sizeof(p));
    return access(p, F_OK) == 0;
}

static void test_epochs_of_this_job_only(void **state)
{
    genie_ckpt_root_t *a = NULL, *b = NULL;
    char               d[400], edir[700];
    uint64_t           e = 0;
    uint32_t           removed = 0;

    (void)state;
    path_in("ck", d, sizeof(d));
    /* job A: epochs 1, 2 complete, 3 cut short */
    assert_int_equal(genie_ckpt_root_open(d, "job-A", &a), GENIE_OK);
    for (uint64_t want = 1; want <= 3; want++) {
        assert_int_equal(genie_ckpt_root_new_epoch(a, &e, edir, sizeof(edir)), GENIE_OK);
        assert_int_equal(e, want);
        assert_int_equal(mode_of(edir), 0700);
        if (want < 3) {
            commit_empty(d, e, "job-A");
        }
    }
    genie_ckpt_root_close(a);

    /* job B restores from A's epochs and goes on in the same directory */
    assert_int_equal(genie_ckpt_root_open(d, "job-B", &b), GENIE_OK);
    assert_int_equal(genie_ckpt_root_first_epoch(b), 4);
    assert_int_equal(genie_ckpt_root_drop(b, 2), GENIE_ERR_INVALID);      /* not B's */
    assert_true(epoch_exists(d, 2));
    for (uint64_t want = 4; want <= 7; want++) {
        assert_int_equal(genie_ckpt_root_new_epoch(b, &e, edir, sizeof(edir)), GENIE_OK);
        assert_int_equal(e, want);
        if (want != 5) {
            commit_empty(d, e, "job-B");
        }
    }
    /* B's 5 failed: dropped */
    assert_int_equal(genie_ckpt_root_drop(b, 5), GENIE_OK);
    assert_false(epoch_exists(d, 5));
    /* an epoch that appeared without the lock is not reused */
    assert_int_equal(genie_ckpt_epoch_create(d, 9), GENIE_OK);
    assert_int_equal(genie_ckpt_root_new_epoch(b, &e, edir, sizeof(edir)), GENIE_OK);
    assert_int_equal(e, 10);
    commit_empty(d, 10, "job-B");
    /* keep 1: B's 4, 6, 7 go and its newest (10) stays; A's 1, 2 (complete)
     * and 3 (incomplete, older than B's newest) stay, and so does 9, which
     * B did not create */
    assert_int_equal(genie_ckpt_root_prune(b, 1, &removed), GENIE_OK);
    assert_int_equal(removed, 3);
    for (uint64_t k = 1; k <= 10; k++) {
        int want = k <= 3 || k == 9 || k == 10;
        if (epoch_exists(d, k) != want) {
            fail_msg("epoch %llu %s", (unsigned long long)k, want ? "was removed" : "is still there");
        }
    }
    print_message("pruned %u epochs of job-B; job-A's 1, 2, 3 kept\n", removed);
    genie_ckpt_root_close(b);
}

/* ---- the O_DIRECT descriptor is the file just created ------------------------------------ */

static char swap_from[600];
static int  swaps;

/* Between the writer's two opens: put another file where the .tmp is. */
static void swap_in(const char *path)
{
    if (strstr(path, ".tmp") != NULL && swap_from[0] != '\0') {
        assert_int_equal(rename(swap_from, path), 0);
        swap_from[0] = '\0';
        swaps++;
    }
}

static void one_session(genie_ckpt_session_t *s, genie_ckpt_kv_t *kv, void *data, int64_t cols)
{
    static int64_t tokens[3] = { 1, 2, 3 };

    memset(s, 0, sizeof(*s));
    memset(kv, 0, sizeof(*kv));
    snprintf(kv->name, sizeof(kv->name), "layer_00/key");
    kv->dtype = GENIE_F32;
    kv->ndim = 2;
    kv->shape[0] = 6;
    kv->shape[1] = cols;
    kv->data = data;
    s->id = 1;
    s->key = 1;
    s->step = 1;
    s->prompt_len = 2;
    s->batch = 1;
    s->n_tokens = 3;
    s->tokens = tokens;
    s->n_kv = 1;
    s->kv = kv;
}

static void test_direct_descriptor_same_file(void **state)
{
    genie_ckpt_session_t   s;
    genie_ckpt_kv_t        kv;
    genie_ckpt_rank_info_t info = { .epoch = 1, .rank = 2 };
    static float           data[6 * 65536];
    char                   d[400], path[700], got[64];
    uint64_t               bytes = 0;
    FILE                  *f;
    const char            *e;

    (void)state;
    if (getenv("GENIE_CKPT_DIRECT") != NULL && strcmp(getenv("GENIE_CKPT_DIRECT"), "0") == 0) {
        fail_msg("this test checks the O_DIRECT descriptor: run it without GENIE_CKPT_DIRECT=0");
    }
    path_in("ck", d, sizeof(d));
    assert_int_equal(genie_ckpt_epoch_create(d, 1), GENIE_OK);
    genie_ckpt_epoch_path(d, 1, path, sizeof(path));
    strcat(path, "/rank-0002.h5");
    path_in("other", swap_from, sizeof(swap_from));
    f = fopen(swap_from, "w");
    assert_non_null(f);
    fputs("another file\n", f);
    fclose(f);
    one_session(&s, &kv, data, 65536);
    snprintf(info.job, sizeof(info.job), "job-1");
    ckpt_vfd_between_opens = swap_in;
    assert_int_equal(genie_ckpt_write_rank(path, &info, &s, 1, &bytes), GENIE_ERR_IO);
    ckpt_vfd_between_opens = NULL;
    assert_int_equal(swaps, 1);
    e = genie_last_error();
    if (strstr(e, "rank-0002.h5.tmp: cannot create it: it was replaced between two opens") == NULL) {
        fail_msg("%s", e);
    }
    print_message("%s\n", e);
    assert_int_equal(access(path, F_OK), -1);
    /* the swapped-in file got none of the writer's bytes (it is gone with
     * the .tmp name, which the writer removes: check through a copy) */
    path_in("other2", swap_from, sizeof(swap_from));
    f = fopen(swap_from, "w");
    fputs("another file\n", f);
    fclose(f);
    {
        char keep[700];
        path_in("other2.keep", keep, sizeof(keep));
        assert_int_equal(link(swap_from, keep), 0);
        ckpt_vfd_between_opens = swap_in;
        assert_int_equal(genie_ckpt_write_rank(path, &info, &s, 1, &bytes), GENIE_ERR_IO);
        ckpt_vfd_between_opens = NULL;
        f = fopen(keep, "r");
        assert_non_null(f);
        assert_non_null(fgets(got, sizeof(got), f));
        fclose(f);
        assert_string_equal(got, "another file\n");
    }
    /* without the swap the same write commits */
    if (genie_ckpt_write_rank(path, &info, &s, 1, &bytes) != GENIE_OK) {
        fail_msg("%s", genie_last_error());
    }
}

/* ---- the progress hook ----------------------------------------------------------------- */

typedef struct progress {
    int      calls;
    uint64_t first_bytes, last_bytes;    /* io bytes seen at the first and last call */
    double   max_gap_s, last_s;
} progress_t;

static double mono_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t io_bytes(void)
{
    genie_ckpt_io_stats_t st;

    genie_ckpt_io_stats(&st);
    return st.written_direct + st.written_cached + st.read_direct;
}

static void on_progress(void *arg)
{
    progress_t *p = arg;
    double      t = mono_s();

    if (p->calls++ == 0) {
        p->first_bytes = io_bytes();
    }
    if (t - p->last_s > p->max_gap_s) {          /* from genie_ckpt_set_progress on */
        p->max_gap_s = t - p->last_s;
    }
    p->last_s = t;
    p->last_bytes = io_bytes();
}

static void test_progress_hook(void **state)
{
    genie_ckpt_session_t   s;
    genie_ckpt_kv_t        kv;
    genie_ckpt_rank_info_t info = { .epoch = 1, .rank = 2 };
    genie_ckpt_file_t     *f = NULL;
    progress_t             w = { 0 }, r = { 0 };
    const int64_t          cols = 1048576;                   /* (6, 2^20) float32: 24 MiB, 6 chunks */
    float                 *data = malloc(6 * (size_t)cols * 4), *back = malloc(6 * (size_t)cols * 4);
    char                   d[400], path[700];
    uint64_t               bytes = 0, before;

    (void)state;
    assert_non_null(data);
    assert_non_null(back);
    for (size_t i = 0; i < 6 * (size_t)cols; i++) {
        data[i] = (float)(i % 1000);
    }
    path_in("ck", d, sizeof(d));
    assert_int_equal(genie_ckpt_epoch_create(d, 1), GENIE_OK);
    genie_ckpt_epoch_path(d, 1, path, sizeof(path));
    strcat(path, "/rank-0002.h5");
    one_session(&s, &kv, data, cols);
    snprintf(info.job, sizeof(info.job), "job-1");

    before = io_bytes();
    w.last_s = mono_s();
    genie_ckpt_set_progress(on_progress, &w);
    if (genie_ckpt_write_rank(path, &info, &s, 1, &bytes) != GENIE_OK) {
        fail_msg("%s", genie_last_error());
    }
    genie_ckpt_set_progress(NULL, NULL);
    /* at least once per 4 MiB, and between chunks: some calls saw part of
     * the data written, not all of it */
    print_message("write of %llu bytes: %d progress calls, largest gap %.1f ms\n",
                  (unsigned long long)bytes, w.calls, w.max_gap_s * 1e3);
    assert_true(w.calls >= 5);
    assert_true(w.max_gap_s < 0.1);                  /* the contract: every 100 ms of I/O */
    assert_true(w.first_bytes - before < (uint64_t)6 * cols * 4);
    assert_true(w.first_bytes > before);

    assert_int_equal(genie_ckpt_file_open(path, &f), GENIE_OK);
    r.last_s = mono_s();
    genie_ckpt_set_progress(on_progress, &r);
    if (genie_ckpt_file_read_kv(f, 1, "layer_00/key", GENIE_F32, 2, kv.shape, back, 6 * (uint64_t)cols * 4) !=
        GENIE_OK) {
        fail_msg("%s", genie_last_error());
    }
    genie_ckpt_set_progress(NULL, NULL);
    print_message("read of 24 MiB: %d progress calls, largest gap %.1f ms\n", r.calls, r.max_gap_s * 1e3);
    assert_true(r.calls >= 5);
    assert_true(r.max_gap_s < 0.1);
    assert_memory_equal(back, data, 6 * (size_t)cols * 4);

    /* the hook removed: no more calls */
    before = (uint64_t)r.calls;
    assert_int_equal(genie_ckpt_file_read_kv(f, 1, "layer_00/key", GENIE_F32, 2, kv.shape, back,
                                             6 * (uint64_t)cols * 4), GENIE_OK);
    assert_int_equal((uint64_t)r.calls, before);
    genie_ckpt_file_close(f);
    free(data);
    free(back);
}

/* The piece size follows the disk: the I/O loops' own calls
 * (ckpt_progress_piece, then ckpt_progress after the piece) against a mock
 * disk of 10 MB/s (each piece sleeps its time): pieces shrink to 256 KiB and
 * the hook is never more than 100 ms apart; on a fast one they grow back
 * to 4 MiB; without a hook they are 4 MiB. */
static void mock_pieces(int n, double bytes_per_s, size_t *last_piece)
{
    for (int i = 0; i < n; i++) {
        size_t          piece = ckpt_progress_piece();
        uint64_t        t0 = ckpt_now_ns();
        double          s = (double)piece / bytes_per_s;
        struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };

        assert_true(piece >= CKPT_PIECE_MIN && piece <= CKPT_PIECE_MAX && piece % 4096 == 0);
        if (bytes_per_s > 0 && s > 1e-6) {
            nanosleep(&ts, NULL);
        }
        ckpt_progress(piece, piece, ckpt_now_ns() - t0);
        *last_piece = piece;
    }
}

static void test_progress_on_a_slow_disk(void **state)
{
    progress_t w = { 0 };
    size_t     last = 0;

    (void)state;
    assert_int_equal(ckpt_progress_piece(), CKPT_PIECE_MAX);          /* no hook */
    w.last_s = mono_s();
    genie_ckpt_set_progress(on_progress, &w);
    assert_int_equal(ckpt_progress_piece(), CKPT_PIECE_MIN);          /* a hook: start small */
    mock_pieces(12, 10e6, &last);                                     /* 10 MB/s: 26 ms a piece */
    print_message("10 MB/s: %d progress calls, largest gap %.1f ms, piece %zu KiB\n", w.calls,
                  w.max_gap_s * 1e3, last >> 10);
    assert_int_equal(last, CKPT_PIECE_MIN);
    assert_int_equal(w.calls, 12);                                    /* after every piece (> 10 ms) */
    assert_true(w.max_gap_s < 0.1);
    mock_pieces(8, 0, &last);                                         /* fast: doubles per piece */
    assert_int_equal(last, CKPT_PIECE_MAX);
    /* a 4 MiB piece that took 105 ms (40 MB/s): the largest power of two
     * that moves in 25 ms, 512 KiB (1 MiB would take 26 ms) */
    ckpt_progress(CKPT_PIECE_MAX, CKPT_PIECE_MAX, 105 * 1000 * 1000ull);
    assert_int_equal(ckpt_progress_piece(), (size_t)512 << 10);
    ckpt_progress(0, (size_t)512 << 10, 20 * 1000 * 1000ull);         /* 20 ms: neither */
    assert_int_equal(ckpt_progress_piece(), (size_t)512 << 10);
    genie_ckpt_set_progress(NULL, NULL);
    assert_int_equal(ckpt_progress_piece(), CKPT_PIECE_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_own_and_created, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writable_by_others, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parent_writable_by_others, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_users, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sticky_shared_root, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_epochs_of_this_job_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_descriptor_same_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_progress_hook, setup, teardown),
        cmocka_unit_test_setup_teardown(test_progress_on_a_slow_disk, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Checkpoint files in a directory others may have touched
 * (docs/checkpoint-format.md sections 1, 2 and 5), through the writer and
 * reader API alone:
 *   - a symbolic link planted where a rank file's or manifest's .tmp will be
 *     created (pointing to another file, or to a name that does not exist
 *     yet): the commit replaces the link and never writes through it;
 *   - a rank file of another job inside an epoch (its `job` attribute is
 *     not the manifest's): opening that epoch fails naming both jobs, the
 *     newest-complete open skips it for the previous epoch, verify fails it;
 *   - a write that fails in the middle of a file (a file size limit, as a
 *     full disk does): one line naming the .tmp and the system's reason,
 *     no .tmp left, and the process still exits cleanly (HDF5's exit
 *     handler finds no half-closed file).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "genie/ckpt.h"

static char root[256], outside[256];

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof(root), "/tmp/genie-test-ckpt-shared-XXXXXX");
    snprintf(outside, sizeof(outside), "/tmp/genie-test-ckpt-victim-XXXXXX");
    assert_non_null(mkdtemp(root));
    assert_non_null(mkdtemp(outside));
    return 0;
}

static int teardown(void **state)
{
    char cmd[600];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", root, outside);
    return system(cmd) == 0 ? 0 : -1;
}

/* One session (id 7, batch 1, 3 tokens, one float32 KV tensor (1, 4, 8)). */
static int64_t tokens[3] = { 5, 6, 7 };
static float   kvdata[32];

static void one_session(genie_ckpt_session_t *s, genie_ckpt_kv_t *kv)
{
    memset(s, 0, sizeof(*s));
    memset(kv, 0, sizeof(*kv));
    for (int i = 0; i < 32; i++) {
        kvdata[i] = (float)i * 0.5f;
    }
    snprintf(kv->name, sizeof(kv->name), "layer_00/key");
    kv->dtype = GENIE_F32;
    kv->ndim = 3;
    kv->shape[0] = 1;
    kv->shape[1] = 4;
    kv->shape[2] = 8;
    kv->data = kvdata;
    s->id = 7;
    s->key = 77;
    s->step = 1;
    s->prompt_len = 2;
    s->batch = 1;
    s->n_tokens = 3;
    s->tokens = tokens;
    s->n_kv = 1;
    s->kv = kv;
}

/* rank-0002.h5 of `epoch` written by `rank_job`, then (if manifest_job)
 * its manifest written by manifest_job. */
static void write_epoch(uint64_t epoch, const char *rank_job, const char *manifest_job)
{
    genie_ckpt_session_t    s;
    genie_ckpt_kv_t         kv;
    genie_ckpt_rank_info_t  info = { .epoch = epoch, .rank = 2 };
    genie_ckpt_file_entry_t fe = { .rank = 2, .sessions = 1 };
    genie_ckpt_manifest_t   m = { .epoch = epoch, .n_files = 1, .files = &fe };
    char                    dir[512], path[700];

    one_session(&s, &kv);
    snprintf(info.phase, sizeof(info.phase), "decode");
    snprintf(info.job, sizeof(info.job), "%s", rank_job);
    assert_int_equal(genie_ckpt_epoch_create(root, epoch), GENIE_OK);
    genie_ckpt_epoch_path(root, epoch, dir, sizeof(dir));
    genie_ckpt_rank_file_name(2, fe.name, sizeof(fe.name));
    snprintf(path, sizeof(path), "%s/%s", dir, fe.name);
    if (genie_ckpt_write_rank(path, &info, &s, 1, &fe.bytes) != GENIE_OK) {
        fail_msg("write_rank: %s", genie_last_error());
    }
    if (manifest_job != NULL) {
        snprintf(m.job, sizeof(m.job), "%s", manifest_job);
        snprintf(m.reason, sizeof(m.reason), "steps");
        if (genie_ckpt_write_manifest(root, &m) != GENIE_OK) {
            fail_msg("write_manifest: %s", genie_last_error());
        }
    }
}

static void read_file(const char *path, char *out, size_t cap)
{
    FILE  *f = fopen(path, "rb");
    size_t n;

    assert_non_null(f);
    n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    fclose(f);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* ---- planted links ------------------------------------------------------------- */

static void test_planted_symlink_at_tmp(void **state)
{
    char dir[512], victim[600], missing[600], tmp[700], got[64];
    struct stat sb;

    (void)state;
    /* a link to an existing file, for the rank file's .tmp and the manifest's */
    snprintf(victim, sizeof(victim), "%s/precious", outside);
    write_text(victim, "precious bytes\n");
    assert_int_equal(genie_ckpt_epoch_create(root, 1), GENIE_OK);
    genie_ckpt_epoch_path(root, 1, dir, sizeof(dir));
    snprintf(tmp, sizeof(tmp), "%s/rank-0002.h5.tmp", dir);
    assert_int_equal(symlink(victim, tmp), 0);
    snprintf(tmp, sizeof(tmp), "%s/manifest.h5.tmp", dir);
    assert_int_equal(symlink(victim, tmp), 0);
    write_epoch(1, "job-1", "job-1");
    read_file(victim, got, sizeof(got));
    assert_string_equal(got, "precious bytes\n");
    snprintf(tmp, sizeof(tmp), "%s/rank-0002.h5", dir);
    assert_int_equal(lstat(tmp, &sb), 0);
    assert_true(S_ISREG(sb.st_mode));
    {
        genie_ckpt_t *ck = NULL;
        if (genie_ckpt_open(root, 1, NULL, NULL, &ck) != GENIE_OK) {
            fail_msg("open: %s", genie_last_error());
        }
        assert_int_equal(ck->n_sessions, 1);
        genie_ckpt_close(ck);
    }

    /* a link to a name that does not exist: nothing may be created there */
    snprintf(missing, sizeof(missing), "%s/created-through-a-link", outside);
    assert_int_equal(genie_ckpt_epoch_create(root, 2), GENIE_OK);
    genie_ckpt_epoch_path(root, 2, dir, sizeof(dir));
    snprintf(tmp, sizeof(tmp), "%s/rank-0002.h5.tmp", dir);
    assert_int_equal(symlink(missing, tmp), 0);
    write_epoch(2, "job-1", "job-1");
    assert_int_not_equal(lstat(missing, &sb), 0);

    /* a link planted at the final name is replaced by the committed file */
    assert_int_equal(genie_ckpt_epoch_create(root, 3), GENIE_OK);
    genie_ckpt_epoch_path(root, 3, dir, sizeof(dir));
    snprintf(tmp, sizeof(tmp), "%s/rank-0002.h5", dir);
    assert_int_equal(symlink(victim, tmp), 0);
    write_epoch(3, "job-1", "job-1");
    read_file(victim, got, sizeof(got));
    assert_string_equal(got, "precious bytes\n");
    assert_int_equal(lstat(tmp, &sb), 0);
    assert_true(S_ISREG(sb.st_mode));
}

/* ---- a rank file of another job --------------------------------------------------- */

typedef struct skips {
    int  n;
    char why[600];
} skips_t;

static void on_skip(uint64_t epoch, const char *why, void *arg)
{
    skips_t *s = arg;

    (void)epoch;
    if (s->n++ == 0) {
        snprintf(s->why, sizeof(s->why), "%s", why);
    }
}

static void count_bad(const char *file, const char *dataset, genie_status_t st, const char *msg, void *arg)
{
    (void)file, (void)dataset, (void)msg;
    *(int *)arg += st != GENIE_OK;
}

static void test_rank_file_of_another_job(void **state)
{
    genie_ckpt_t  *ck = NULL;
    skips_t        sk = { 0 };
    char           dir[512];
    const char    *e;
    uint32_t       n_bad = 0;
    int            bad = 0;

    (void)state;
    write_epoch(1, "job-A", "job-A");
    write_epoch(2, "job-B", "job-A");        /* job-B's rank file in job-A's epoch */
    assert_int_equal(genie_ckpt_open(root, 2, NULL, NULL, &ck), GENIE_ERR_CORRUPT);
    e = genie_last_error();
    assert_non_null(strstr(e, "rank-0002.h5"));
    assert_non_null(strstr(e, "'job-B'"));
    assert_non_null(strstr(e, "'job-A'"));
    assert_null(strchr(e, '\n'));
    print_message("%s\n", e);
    /* the newest complete epoch is then the previous one */
    assert_int_equal(genie_ckpt_open(root, 0, on_skip, &sk, &ck), GENIE_OK);
    assert_int_equal(ck->manifest.epoch, 1);
    assert_int_equal(sk.n, 1);
    assert_non_null(strstr(sk.why, "'job-B'"));
    genie_ckpt_close(ck);
    /* and verify fails that file */
    genie_ckpt_epoch_path(root, 2, dir, sizeof(dir));
    assert_int_equal(genie_ckpt_verify(dir, count_bad, &bad, &n_bad), GENIE_OK);
    assert_true(n_bad >= 1);
    assert_true(bad >= 1);
}

/* ---- a write that fails midway ------------------------------------------------------- */

/* In a child (exit codes, not cmocka asserts: a failed assert must not run
 * the rest of the suite in the child): 1 MiB file size limit, a rank file
 * of 8 MiB. */
static int write_past_the_limit(const char *path)
{
    static float           big[2 * 1048576];
    genie_ckpt_session_t   s;
    genie_ckpt_kv_t        kv;
    genie_ckpt_rank_info_t info = { .epoch = 1, .rank = 2 };
    struct rlimit          lim = { 1 << 20, 1 << 20 };
    char                   tmp[800];
    const char            *e;
    uint64_t               bytes = 0;

    one_session(&s, &kv);
    kv.shape[0] = 2;
    kv.shape[1] = 1024;
    kv.shape[2] = 1024;
    kv.data = big;
    snprintf(info.job, sizeof(info.job), "job-1");
    signal(SIGXFSZ, SIG_IGN);
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0) {
        return 10;
    }
    if (genie_ckpt_write_rank(path, &info, &s, 1, &bytes) != GENIE_ERR_IO) {
        return 11;
    }
    e = genie_last_error();
    fprintf(stderr, "%s\n", e);
    if (strstr(e, "rank-0002.h5.tmp") == NULL || strstr(e, "File too large") == NULL || strchr(e, '\n')) {
        return 12;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (access(tmp, F_OK) == 0 || access(path, F_OK) == 0) {
        return 13;
    }
    return 0;
}

static void test_write_fails_midway(void **state)
{
    char  dir[512], path[700];
    int   status;
    pid_t pid;

    (void)state;
    assert_int_equal(genie_ckpt_epoch_create(root, 1), GENIE_OK);
    genie_ckpt_epoch_path(root, 1, dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/rank-0002.h5", dir);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        exit(write_past_the_limit(path));       /* exit, not _exit: HDF5's atexit handler runs */
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status)) {
        fail_msg("the writer died of signal %d after its failed write", WTERMSIG(status));
    }
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_planted_symlink_at_tmp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rank_file_of_another_job, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_fails_midway, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * genie-ckpt, the tool users type (checkpoint/genie_ckpt.c), run as a
 * program on a checkpoint directory written through the library: list,
 * show and verify, their output and exit status (0 ok, 1 a check failed,
 * 2 usage); verify after a flipped byte names the dataset and exits 1;
 * every usage error is one line on stderr and exit 2; HDF5's own error
 * stack never appears.  Argument: the path of genie-ckpt (from CMake).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <hdf5.h>

#include "genie/ckpt.h"

static const char *tool;
static char        root[256];
static char        out[1 << 16];

/* Run `genie-ckpt <args>`, stdout and stderr into out; returns the exit status. */
static int run(const char *args)
{
    char  cmd[2048];
    FILE *p;
    size_t n = 0, r;
    int   st;

    snprintf(cmd, sizeof(cmd), "'%s' %s 2>&1", tool, args);
    p = popen(cmd, "r");
    assert_non_null(p);
    while (n < sizeof(out) - 1 && (r = fread(out + n, 1, sizeof(out) - 1 - n, p)) > 0) {
        n += r;
    }
    out[n] = '\0';
    st = pclose(p);
    assert_true(WIFEXITED(st));
    assert_null(strstr(out, "HDF5-DIAG"));
    return WEXITSTATUS(st);
}

static int lines(const char *s)
{
    int n = 0;

    for (; *s != '\0'; s++) {
        n += *s == '\n';
    }
    return n;
}

static float   kvdata[4][3 * 5 * 4];
static int64_t tokens[2 * 5];
static int64_t lineage[3 * GENIE_CKPT_LINEAGE_COLS];

/* Epoch `epoch`: rank 2 with sessions 11 and 12; with_manifest 0 leaves it
 * incomplete. */
static void write_epoch(uint64_t epoch, int with_manifest)
{
    static const char      *names[4] = { "layer_00/key", "layer_00/value", "layer_01/key", "layer_01/value" };
    genie_ckpt_session_t    s[2];
    genie_ckpt_kv_t         kv[4];
    genie_ckpt_rank_info_t  info = { .epoch = epoch, .rank = 2 };
    genie_ckpt_file_entry_t fe = { .rank = 2, .sessions = 2 };
    uint64_t                fp = 0xdeadbeef;
    genie_ckpt_manifest_t   m = { .epoch = epoch, .n_files = 1, .files = &fe, .n_model_fps = 1,
                                  .model_fps = &fp, .created = 1700000000 };
    char                    dir[512], path[700];

    for (int t = 0; t < 4; t++) {
        memset(&kv[t], 0, sizeof(kv[t]));
        snprintf(kv[t].name, sizeof(kv[t].name), "%s", names[t]);
        kv[t].dtype = t == 1 ? GENIE_F16 : GENIE_F32;
        kv[t].ndim = 3;
        kv[t].shape[0] = 3;
        kv[t].shape[1] = 5;
        kv[t].shape[2] = t == 1 ? 8 : 4;
        kv[t].data = kvdata[t];
    }
    for (int i = 0; i < 2; i++) {
        memset(&s[i], 0, sizeof(s[i]));
        s[i].id = 11 + (uint64_t)i;
        s[i].key = 0x0123456789abcdefull + (uint64_t)i;
        s[i].step = 2;
        s[i].prompt_len = 3;
        s[i].batch = 2;
        s[i].n_tokens = 5;
        s[i].tokens = tokens;
        s[i].lineage = lineage;
        s[i].n_lineage = i == 0 ? 3 : 0;
        s[i].n_kv = 4;
        s[i].kv = kv;
    }
    snprintf(info.phase, sizeof(info.phase), "decode");
    snprintf(info.job, sizeof(info.job), "job-7");
    snprintf(m.job, sizeof(m.job), "job-7");
    snprintf(m.phases, sizeof(m.phases), "prefill:1,decode:1");
    snprintf(m.reason, sizeof(m.reason), "SIGUSR1");
    assert_int_equal(genie_ckpt_epoch_create(root, epoch), GENIE_OK);
    genie_ckpt_epoch_path(root, epoch, dir, sizeof(dir));
    genie_ckpt_rank_file_name(2, fe.name, sizeof(fe.name));
    snprintf(path, sizeof(path), "%s/%s", dir, fe.name);
    assert_int_equal(genie_ckpt_write_rank(path, &info, s, 2, &fe.bytes), GENIE_OK);
    if (with_manifest) {
        assert_int_equal(genie_ckpt_write_manifest(root, &m), GENIE_OK);
    }
}

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof(root), "/tmp/genie-test-ckpt-tool-XXXXXX");
    assert_non_null(mkdtemp(root));
    for (int i = 0; i < 60; i++) {
        for (int t = 0; t < 4; t++) {
            kvdata[t][i] = (float)(t * 1000 + i) * 0.25f;
        }
    }
    for (int i = 0; i < 10; i++) {
        tokens[i] = 100 + i;
    }
    write_epoch(1, 1);
    write_epoch(2, 1);
    write_epoch(3, 0);
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_help_and_usage(void **state)
{
    static const char *bad[] = {
        "", "frob /tmp", "list", "show", "verify", "show DIR abc", "show DIR 0", "show DIR -3",
        "verify DIR 1 --all", "list DIR 2", "show DIR --all", "verify DIR -v", "list DIR --bogus",
        "show DIR 1 2", "show DIR 99999999999999999999999",
    };
    char args[512];

    (void)state;
    assert_int_equal(run("--help"), 0);
    assert_non_null(strstr(out, "usage: genie-ckpt list DIR"));
    assert_non_null(strstr(out, "verify DIR"));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *dir = strstr(bad[i], "DIR");
        if (dir != NULL) {
            snprintf(args, sizeof(args), "%.*s'%s'%s", (int)(dir - bad[i]), bad[i], root, dir + 3);
        } else {
            snprintf(args, sizeof(args), "%s", bad[i]);
        }
        if (run(args) != 2 || lines(out) != 1 || strncmp(out, "genie-ckpt: ", 12) != 0 ||
            strstr(out, "--help") == NULL) {
            fail_msg("genie-ckpt %s: want exit 2 and one line, got: %s", args, out);
        }
    }
}

static void test_list(void **state)
{
    char args[512];

    (void)state;
    snprintf(args, sizeof(args), "list '%s'", root);
    assert_int_equal(run(args), 0);
    assert_int_equal(lines(out), 5);                    /* header, 3 epochs, summary */
    assert_non_null(strstr(out, "epoch"));
    assert_non_null(strstr(out, "SIGUSR1"));
    assert_non_null(strstr(out, "3 epochs, 2 complete"));
    {
        char *l1 = strchr(out, '\n') + 1, *l3 = strchr(strchr(l1, '\n') + 1, '\n') + 1;
        assert_true(strncmp(l1, "1 ", 2) == 0 && strstr(l1, "complete") != NULL);
        assert_true(strncmp(l3, "3 ", 2) == 0);
        assert_non_null(strstr(l3, "INCOMPLETE"));
        assert_non_null(strstr(l3, "(no manifest.h5"));
        assert_non_null(strstr(l3, "KiB"));
    }
    snprintf(args, sizeof(args), "list '%s/nothing'", root);
    assert_int_equal(run(args), 1);
    assert_int_equal(lines(out), 1);
    assert_true(strncmp(out, "genie-ckpt: ", 12) == 0);
}

static void test_show(void **state)
{
    char args[512];

    (void)state;
    snprintf(args, sizeof(args), "show '%s'", root);
    assert_int_equal(run(args), 0);
    assert_non_null(strstr(out, "epoch 3 skipped: "));
    assert_non_null(strstr(out, "epoch 2 ("));
    assert_non_null(strstr(out, "job job-7, phases prefill:1,decode:1, reason SIGUSR1"));
    assert_non_null(strstr(out, "model fingerprint 00000000deadbeef"));
    assert_non_null(strstr(out, "file rank-0002.h5: rank 2, 2 sessions"));
    assert_non_null(strstr(out, "0123456789abcdef"));
    assert_non_null(strstr(out, "0123456789abcdf0"));
    assert_non_null(strstr(out, "5 (3)"));
    assert_null(strstr(out, "kv layer_00/key"));
    snprintf(args, sizeof(args), "show '%s' 1 -v", root);
    assert_int_equal(run(args), 0);
    assert_non_null(strstr(out, "epoch 1 ("));
    assert_null(strstr(out, "skipped"));
    assert_non_null(strstr(out, "kv layer_00/value"));
    assert_non_null(strstr(out, "float16"));
    assert_non_null(strstr(out, "(3, 5, 8)"));
    snprintf(args, sizeof(args), "show '%s' 3", root);          /* incomplete */
    assert_int_equal(run(args), 1);
    assert_int_equal(lines(out), 1);
    assert_non_null(strstr(out, "no manifest.h5"));
    snprintf(args, sizeof(args), "show '%s' 9", root);
    assert_int_equal(run(args), 1);
    assert_int_equal(lines(out), 1);
}

static void test_verify(void **state)
{
    char     args[512], path[700], want[900];
    hid_t    f, d, sp;
    haddr_t  addr = 0;
    hsize_t  size = 0, off[3] = { 0 };
    unsigned mask = 0;
    uint8_t  b[4];
    int      fd;

    (void)state;
    snprintf(args, sizeof(args), "verify '%s'", root);
    assert_int_equal(run(args), 0);
    /* manifest: model_fps; rank file: 2 x (tokens, lineage, 4 KV) */
    assert_string_equal(out, "verified 13 datasets in 2 files: OK\n");
    snprintf(args, sizeof(args), "verify '%s' --all", root);
    assert_int_equal(run(args), 0);
    assert_string_equal(out, "verified 26 datasets in 4 files: OK\n");
    snprintf(args, sizeof(args), "verify '%s' 3", root);         /* no manifest: says so, exit 1 */
    assert_int_equal(run(args), 1);
    assert_non_null(strstr(out, "no manifest.h5"));
    assert_non_null(strstr(out, "verifying every rank-*.h5 file"));
    assert_non_null(strstr(out, "verified 12 datasets in 1 files: 1 FAILED"));

    /* flip bytes in a KV chunk of epoch 2 */
    snprintf(path, sizeof(path), "%s/epoch-00000002/rank-0002.h5", root);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    d = H5Dopen2(f, "/sessions/12/kv/layer_01/value", H5P_DEFAULT);
    sp = H5Dget_space(d);
    assert_true(H5Dget_chunk_info(d, sp, 0, off, &mask, &addr, &size) >= 0);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, b, 4, (off_t)(addr + size / 2)), 4);
    b[0] ^= 0x01;
    b[3] ^= 0x80;
    assert_int_equal(pwrite(fd, b, 4, (off_t)(addr + size / 2)), 4);
    close(fd);

    snprintf(args, sizeof(args), "verify '%s'", root);
    assert_int_equal(run(args), 1);
    snprintf(want, sizeof(want), "genie-ckpt: FAILED %s: dataset /sessions/12/kv/layer_01/value failed its "
             "Fletcher32 checksum\nverified 13 datasets in 2 files: 1 FAILED\n", path);
    assert_string_equal(out, want);
    snprintf(args, sizeof(args), "verify '%s' 1", root);         /* the other epoch is fine */
    assert_int_equal(run(args), 0);
    /* show still works: metadata only */
    snprintf(args, sizeof(args), "show '%s'", root);
    assert_int_equal(run(args), 0);
    snprintf(args, sizeof(args), "verify '%s/nothing'", root);
    assert_int_equal(run(args), 1);
    assert_int_equal(lines(out), 1);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_and_usage),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_show),
        cmocka_unit_test(test_verify),
    };

    if (argc < 2) {
        fprintf(stderr, "usage: %s PATH-OF-genie-ckpt\n", argv[0]);
        return 2;
    }
    tool = argv[1];
    return cmocka_run_group_tests(tests, setup, teardown);
}

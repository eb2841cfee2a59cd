/*
 * The checkpoint library (checkpoint/, docs/checkpoint-format.md) on real
 * HDF5 files in a temporary directory:
 *   - round trip of two rank files and a manifest (every field, every byte);
 *   - a writer killed (SIGKILL, in a forked child) at every fault point of an
 *     epoch's commit: the newest complete epoch opens, every KV tensor reads
 *     back with the right bytes, never a corrupt read;
 *   - flipped bytes in a KV dataset: reading it fails naming the dataset,
 *     the other datasets still read, verify reports exactly that dataset;
 *   - refusals: bad names, empty dims, a manifest naming a missing file or a
 *     file of another size, a truncated rank file (the epoch is skipped).
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <hdf5.h>

#include "genie/ckpt.h"

#define B 2
#define L 7
#define NKV 4

typedef struct fixture {
    char     root[256];
    float    k[NKV][3 * 5 * 4];         /* (3, 5, 4) per tensor */
    int64_t  tokens[B * L];
    int64_t  lineage[3 * GENIE_CKPT_LINEAGE_COLS];
    uint8_t  rng[40];
} fixture_t;

static fixture_t fx;

static void fill(uint64_t epoch)
{
    for (int t = 0; t < NKV; t++) {
        for (int i = 0; i < 60; i++) {
            fx.k[t][i] = (float)(epoch * 1000 + t * 100 + i) * 0.5f;
        }
    }
    for (int i = 0; i < B * L; i++) {
        fx.tokens[i] = (int64_t)(i * 7 + epoch);
    }
    for (int i = 0; i < 3 * GENIE_CKPT_LINEAGE_COLS; i++) {
        fx.lineage[i] = i;
    }
    for (int i = 0; i < 40; i++) {
        fx.rng[i] = (uint8_t)(i + epoch);
    }
}

static void make_session(genie_ckpt_session_t *s, genie_ckpt_kv_t *kv, uint64_t id, int with_rng)
{
    static const char *names[NKV] = { "layer_00/key", "layer_00/value", "layer_01/key", "layer_01/value" };

    memset(s, 0, sizeof(*s));
    for (int t = 0; t < NKV; t++) {
        memset(&kv[t], 0, sizeof(kv[t]));
        snprintf(kv[t].name, sizeof(kv[t].name), "%s", names[t]);
        kv[t].dtype = GENIE_F32;
        kv[t].ndim = 3;
        kv[t].shape[0] = 3;
        kv[t].shape[1] = 5;
        kv[t].shape[2] = 4;
        kv[t].data = fx.k[t];
    }
    s->id = id;
    s->key = 0x1234 + id;
    s->model_fp = 0xabcdef;
    s->prompt_len = 3;
    s->step = L - 3;
    s->batch = B;
    s->n_tokens = L;
    s->tokens = fx.tokens;
    s->rng = with_rng ? fx.rng : NULL;
    s->rng_len = with_rng ? 40 : 0;
    s->lineage = fx.lineage;
    s->n_lineage = id % 2 ? 3 : 0;
    s->n_kv = NKV;
    s->kv = kv;
}

/* A whole epoch: ranks 2 and 3 (two sessions each), then the manifest. */
static void write_epoch(uint64_t epoch)
{
    genie_ckpt_session_t   s[2];
    genie_ckpt_kv_t        kv[2][NKV];
    genie_ckpt_file_entry_t files[2];
    genie_ckpt_manifest_t  m = {0};
    uint64_t               fp = 0xabcdef;
    char                   dir[512], path[800];

    fill(epoch);
    assert_int_equal(genie_ckpt_epoch_create(fx.root, epoch), GENIE_OK);
    assert_int_equal(genie_ckpt_epoch_path(fx.root, epoch, dir, sizeof(dir)), GENIE_OK);
    for (int r = 0; r < 2; r++) {
        genie_ckpt_rank_info_t info = { .epoch = epoch, .rank = 2 + r, .slice = (uint32_t)r };
        snprintf(info.phase, sizeof(info.phase), "decode");
        snprintf(info.job, sizeof(info.job), "test");
        make_session(&s[0], kv[0], 10 * (uint64_t)(r + 1) + 1, 1);
        make_session(&s[1], kv[1], 10 * (uint64_t)(r + 1) + 2, 0);
        genie_ckpt_rank_file_name(2 + r, files[r].name, sizeof(files[r].name));
        snprintf(path, sizeof(path), "%s/%s", dir, files[r].name);
        assert_int_equal(genie_ckpt_write_rank(path, &info, s, 2, &files[r].bytes), GENIE_OK);
        files[r].rank = 2 + r;
        files[r].sessions = 2;
    }
    m.epoch = epoch;
    snprintf(m.job, sizeof(m.job), "test");
    snprintf(m.phases, sizeof(m.phases), "prefill:1,decode:2");
    snprintf(m.reason, sizeof(m.reason), "steps");
    m.n_model_fps = 1;
    m.model_fps = &fp;
    m.n_files = 2;
    m.files = files;
    assert_int_equal(genie_ckpt_write_manifest(fx.root, &m), GENIE_OK);
}

/* Every KV tensor of the opened epoch reads back as written for `epoch`. */
static void check_epoch(genie_ckpt_t *ck, uint64_t epoch)
{
    fill(epoch);
    assert_int_equal(ck->manifest.epoch, epoch);
    assert_int_equal(ck->n_sessions, 4);
    for (uint32_t i = 0; i < ck->n_sessions; i++) {
        genie_ckpt_session_t *s = &ck->sessions[i];
        genie_ckpt_file_t    *f;
        char                  path[5000];
        float                 buf[60];

        assert_int_equal(s->n_kv, NKV);
        assert_int_equal(s->batch, B);
        assert_int_equal(s->n_tokens, L);
        assert_memory_equal(s->tokens, fx.tokens, sizeof(fx.tokens));
        assert_int_equal(s->n_lineage, s->id % 2 ? 3 : 0);
        assert_int_equal(s->rng_len, s->id % 10 == 1 ? 40 : 0);
        snprintf(path, sizeof(path), "%s/%s", ck->dir, s->file);
        assert_int_equal(genie_ckpt_file_open(path, &f), GENIE_OK);
        for (uint32_t k = 0; k < s->n_kv; k++) {
            int t = (int)k;   /* names sort as written: layer_00/key, layer_00/value, ... */
            assert_int_equal(genie_ckpt_file_read_kv(f, s->id, s->kv[k].name, GENIE_F32, 3,
                                                     s->kv[k].shape, buf, sizeof(buf)), GENIE_OK);
            assert_memory_equal(buf, fx.k[t], sizeof(buf));
        }
        genie_ckpt_file_close(f);
    }
}

static int setup(void **state)
{
    (void)state;
    snprintf(fx.root, sizeof(fx.root), "/tmp/genie-test-ckpt-XXXXXX");
    assert_non_null(mkdtemp(fx.root));
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx.root);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_round_trip(void **state)
{
    genie_ckpt_t *ck = NULL;
    uint32_t      bad = 99;
    char          dir[512];

    (void)state;
    write_epoch(1);
    assert_int_equal(genie_ckpt_open(fx.root, 0, NULL, NULL, &ck), GENIE_OK);
    check_epoch(ck, 1);
    assert_int_equal(ck->sessions[0].rank, 2);
    assert_string_equal(ck->sessions[0].file, "rank-0002.h5");
    assert_string_equal(ck->manifest.phases, "prefill:1,decode:2");
    assert_int_equal(ck->manifest.n_model_fps, 1);
    genie_ckpt_close(ck);
    genie_ckpt_epoch_path(fx.root, 1, dir, sizeof(dir));
    assert_int_equal(genie_ckpt_verify(dir, NULL, NULL, &bad), GENIE_OK);
    assert_int_equal(bad, 0);
    if (system("command -v h5dump >/dev/null 2>&1") == 0) {
        char cmd[700];
        snprintf(cmd, sizeof(cmd), "h5dump -H '%s/rank-0002.h5' >/dev/null", dir);
        assert_int_equal(system(cmd), 0);
    }
}

static void test_crash_at_every_point(void **state)
{
    char     log[300], line[128];
    long     points = 0;
    FILE    *f;

    (void)state;
    write_epoch(1);
    /* Count the fault points of one epoch's commit (epoch 2, all of it). */
    snprintf(log, sizeof(log), "%s/points.log", fx.root);
    {
        pid_t pid = fork();
        if (pid == 0) {
            setenv("GENIE_CKPT_CRASH_AT", "1000000", 1);
            write_epoch(2);
            /* count by running once more with a log of every point */
            _exit(0);
        }
        int status;
        waitpid(pid, &status, 0);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    /* Kill at point k = 1, 2, ... until a write survives: each run kills
     * the child at its k-th point of writing epoch 3. */
    for (long k = 1; k < 10000; k++) {
        genie_ckpt_t *ck = NULL;
        int           status;
        pid_t         pid = fork();

        if (pid == 0) {
            char v[32];
            snprintf(v, sizeof(v), "%ld", k);
            setenv("GENIE_CKPT_CRASH_AT", v, 1);
            setenv("GENIE_CKPT_CRASH_LOG", log, 1);
            write_epoch(3);
            _exit(0);
        }
        waitpid(pid, &status, 0);
        if (WIFEXITED(status)) {
            assert_int_equal(WEXITSTATUS(status), 0);
            points = k - 1;
            break;
        }
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        /* Never a corrupt read: the newest complete epoch opens and reads. */
        assert_int_equal(genie_ckpt_open(fx.root, 0, NULL, NULL, &ck), GENIE_OK);
        assert_true(ck->manifest.epoch == 2 || ck->manifest.epoch == 3);
        check_epoch(ck, ck->manifest.epoch);
        genie_ckpt_close(ck);
        {
            char dir[512], cmd[700];
            genie_ckpt_epoch_path(fx.root, 3, dir, sizeof(dir));
            snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
            assert_int_equal(system(cmd), 0);
        }
    }
    assert_true(points >= 10);
    /* Every point was logged once, in order. */
    f = fopen(log, "r");
    assert_non_null(f);
    for (long k = 1; k <= points; k++) {
        long n;
        assert_non_null(fgets(line, sizeof(line), f));
        assert_int_equal(sscanf(line, "%ld", &n), 1);
        assert_int_equal(n, k);
    }
    fclose(f);
    print_message("checkpoint commit killed at each of its %ld fault points: always a complete epoch\n",
                  points);
}

static void flip(const char *path, haddr_t off)
{
    FILE   *f = fopen(path, "r+b");
    uint8_t b[4];

    assert_non_null(f);
    assert_int_equal(fseek(f, (long)off, SEEK_SET), 0);
    assert_int_equal(fread(b, 1, 4, f), 4);
    for (int i = 0; i < 4; i++) {
        b[i] ^= 0x5a;
    }
    assert_int_equal(fseek(f, (long)off, SEEK_SET), 0);
    assert_int_equal(fwrite(b, 1, 4, f), 4);
    fclose(f);
}

static haddr_t chunk_offset(const char *path, const char *dset)
{
    hid_t   f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), d, sp;
    haddr_t addr = 0;
    hsize_t size = 0, off[GENIE_MAX_DIMS] = {0};
    unsigned mask;

    assert_true(f >= 0);
    d = H5Dopen2(f, dset, H5P_DEFAULT);
    assert_true(d >= 0);
    sp = H5Dget_space(d);
    assert_true(H5Dget_chunk_info(d, sp, 0, off, &mask, &addr, &size) >= 0);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    return addr + size / 2;
}

typedef struct { int bad; char first[512]; } report_t;

static void report(const char *file, const char *dataset, genie_status_t st, const char *msg, void *arg)
{
    report_t *r = arg;
    (void)file;
    (void)dataset;
    if (st != GENIE_OK) {
        if (r->bad++ == 0) {
            snprintf(r->first, sizeof(r->first), "%s", msg);
        }
    }
}

static void test_flipped_bytes(void **state)
{
    char              dir[512], path[600];
    genie_ckpt_file_t *f;
    float             buf[60];
    int64_t           shape[3] = { 3, 5, 4 };
    uint32_t          bad = 0;
    report_t          r = {0};
    genie_ckpt_t     *ck = NULL;

    (void)state;
    write_epoch(1);
    write_epoch(2);
    genie_ckpt_epoch_path(fx.root, 2, dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/rank-0002.h5", dir);
    flip(path, chunk_offset(path, "/sessions/11/kv/layer_01/value"));
    assert_int_equal(genie_ckpt_file_open(path, &f), GENIE_OK);
    assert_int_equal(genie_ckpt_file_read_kv(f, 11, "layer_01/value", GENIE_F32, 3, shape, buf,
                                             sizeof(buf)), GENIE_ERR_CORRUPT);
    assert_non_null(strstr(genie_last_error(), "/sessions/11/kv/layer_01/value"));
    assert_non_null(strstr(genie_last_error(), "Fletcher32"));
    assert_int_equal(genie_ckpt_file_read_kv(f, 11, "layer_01/key", GENIE_F32, 3, shape, buf,
                                             sizeof(buf)), GENIE_OK);
    genie_ckpt_file_close(f);
    assert_int_equal(genie_ckpt_verify(dir, report, &r, &bad), GENIE_OK);
    assert_int_equal(bad, 1);
    assert_non_null(strstr(r.first, "/sessions/11/kv/layer_01/value"));
    /* Flipped token bytes: the epoch no longer opens (its metadata is read
     * whole) and the newest complete one is the previous. */
    flip(path, chunk_offset(path, "/sessions/12/tokens"));
    assert_int_equal(genie_ckpt_open(fx.root, 0, NULL, NULL, &ck), GENIE_OK);
    assert_int_equal(ck->manifest.epoch, 1);
    genie_ckpt_close(ck);
    assert_int_not_equal(genie_ckpt_open(fx.root, 2, NULL, NULL, &ck), GENIE_OK);
    assert_non_null(strstr(genie_last_error(), "/sessions/12/tokens"));
}

static void test_refusals(void **state)
{
    genie_ckpt_session_t   s;
    genie_ckpt_kv_t        kv[NKV];
    genie_ckpt_rank_info_t info = { .epoch = 5, .rank = 2 };
    genie_ckpt_file_entry_t fe = { .rank = 2, .bytes = 1, .sessions = 1 };
    genie_ckpt_manifest_t  m = { .epoch = 5, .n_files = 1, .files = &fe };
    genie_ckpt_t          *ck = NULL;
    char                   dir[512], path[600], cmd[800];
    static const char     *bad_names[] = { "", "/a", "a/", "a//b", "A", "a..b", "x y",
        "layer_00/key/extra/0123456789012345678901234567890123456789012345678901234567" };

    (void)state;
    fill(5);
    genie_ckpt_epoch_create(fx.root, 5);
    genie_ckpt_epoch_path(fx.root, 5, dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/rank-0002.h5", dir);
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        make_session(&s, kv, 1, 0);
        snprintf(kv[1].name, sizeof(kv[1].name), "%s", bad_names[i]);
        assert_int_equal(genie_ckpt_write_rank(path, &info, &s, 1, NULL), GENIE_ERR_INVALID);
    }
    make_session(&s, kv, 1, 0);
    kv[2].shape[1] = 0;
    assert_int_equal(genie_ckpt_write_rank(path, &info, &s, 1, NULL), GENIE_ERR_INVALID);
    make_session(&s, kv, 1, 0);
    kv[2].ndim = 0;
    assert_int_equal(genie_ckpt_write_rank(path, &info, &s, 1, NULL), GENIE_ERR_INVALID);
    /* a manifest naming a missing file, then one of another size */
    snprintf(fe.name, sizeof(fe.name), "rank-0002.h5");
    assert_int_equal(genie_ckpt_write_manifest(fx.root, &m), GENIE_ERR_INVALID);
    make_session(&s, kv, 1, 0);
    assert_int_equal(genie_ckpt_write_rank(path, &info, &s, 1, &fe.bytes), GENIE_OK);
    fe.bytes++;
    assert_int_equal(genie_ckpt_write_manifest(fx.root, &m), GENIE_ERR_INVALID);
    fe.bytes--;
    assert_int_equal(genie_ckpt_write_manifest(fx.root, &m), GENIE_OK);
    assert_int_equal(genie_ckpt_open(fx.root, 5, NULL, NULL, &ck), GENIE_OK);
    genie_ckpt_close(ck);
    /* truncated to half: the epoch is skipped, and there is no other */
    snprintf(cmd, sizeof(cmd), "truncate -s %llu '%s'", (unsigned long long)fe.bytes / 2, path);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(genie_ckpt_open(fx.root, 0, NULL, NULL, &ck), GENIE_ERR_NOT_FOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_at_every_point, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flipped_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

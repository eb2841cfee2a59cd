/*
 * The checkpoint library (checkpoint/, docs/checkpoint-format.md) on real
 * HDF5 files in a temporary directory:
 *   - round trip of two rank files (sessions with float32, float16,
 *     bfloat16, int64, int32 and bool KV tensors, batch 2, with and without
 *     sampler state, 0 and N lineage records, a session without KV tensors,
 *     tensors of several chunks split along dim 0 and along an inner dim
 *     with a partial edge chunk) and a manifest: every field and every byte
 *     reads back, verify passes, h5dump reads the files;
 *   - the Fletcher32 used for direct chunk writes against HDF5's own
 *     algorithm, and the chunk shapes;
 *   - a writer killed (SIGKILL, in a forked child) at every fault point of
 *     an epoch's commit: the newest complete epoch opens and reads with the
 *     right bytes, the new epoch only once its manifest is renamed; prune;
 *   - flipped bytes in a KV dataset's chunk: reading it fails naming the
 *     dataset, the others still read, verify reports exactly that dataset;
 *     flipped bytes in tokens: the epoch no longer opens (naming it) and
 *     the previous one is used;
 *   - refusals: bad names and shapes, clashing names, inconsistent
 *     sessions, manifests naming missing files or files of another size,
 *     truncated files (the epoch is skipped with a reason), read requests
 *     that do not match the dataset, bad GENIE_CKPT_CRASH_AT values.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
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
#include <unistd.h>

#include <cmocka.h>
#include <hdf5.h>

#include "genie/ckpt.h"
#include "ckpt_h5.h"          /* ckpt_fletcher32, ckpt_chunk_dims */

/* ---- a deterministic epoch ---------------------------------------------------- */

#define MAX_KV   8
#define MAX_SESS 4

typedef struct kv_spec {
    const char   *name;
    genie_dtype_t dtype;
    int           ndim;
    int64_t       shape[4];
} kv_spec_t;

typedef struct sess_spec {
    uint64_t  id;
    uint32_t  batch;
    uint64_t  prompt_len, step;
    uint32_t  rng_len, n_lineage, n_kv;
    kv_spec_t kv[MAX_KV];
} sess_spec_t;

typedef struct rank_spec {
    int32_t     rank;
    uint32_t    n;
    sess_spec_t s[MAX_SESS];
} rank_spec_t;

/* The full epoch of the round trip: rank 2 small and varied, rank 3 with
 * tensors of several chunks. */
static const rank_spec_t FULL[2] = {
    { 2, 3, {
        { 11, 2, 5, 4, 40, 4, 6, {
            { "layer_00/key", GENIE_F32, 4, { 2, 3, 8, 4 } },
            { "layer_00/value", GENIE_F16, 4, { 2, 3, 8, 4 } },
            { "layer_01/key", GENIE_BF16, 4, { 2, 3, 8, 4 } },
            { "layer_01/value", GENIE_I64, 4, { 2, 3, 8, 4 } },
            { "pos", GENIE_I32, 2, { 2, 8 } },
            { "mask", GENIE_BOOL, 3, { 3, 5, 7 } } } },
        { 12, 1, 3, 0, 0, 0, 2, {
            { "layer_00/key", GENIE_F32, 3, { 1, 2, 2 } },
            { "layer_00/value", GENIE_F32, 3, { 1, 2, 2 } } } },
        { 17, 1, 1, 0, 3, 1, 0, { { 0 } } } } },
    { 3, 1, {
        { 21, 2, 6, 2, 16, 2, 3, {
            { "layer_00/key", GENIE_F32, 4, { 2, 16, 40, 1024 } },   /* 5 MiB: 2 chunks along dim 0 */
            { "layer_00/value", GENIE_F32, 3, { 1, 1, 1200000 } },   /* 4.6 MiB rows: split dim 2 */
            { "layer_01/value", GENIE_F16, 2, { 3, 2200001 } } } } } },  /* partial edge chunk, dim 1 */
};

/* The small epoch of the crash and flip tests: two ranks, two sessions each. */
static const rank_spec_t SMALL[2] = {
    { 2, 2, {
        { 11, 2, 3, 2, 40, 3, 4, {
            { "layer_00/key", GENIE_F32, 3, { 3, 5, 4 } },
            { "layer_00/value", GENIE_F16, 3, { 3, 5, 4 } },
            { "layer_01/key", GENIE_BF16, 3, { 3, 5, 4 } },
            { "layer_01/value", GENIE_F32, 3, { 3, 5, 4 } } } },
        { 12, 2, 3, 2, 0, 0, 2, {
            { "layer_00/key", GENIE_I64, 2, { 2, 5 } },
            { "layer_01/value", GENIE_F32, 3, { 3, 5, 4 } } } } } },
    { 3, 2, {
        { 21, 1, 4, 0, 8, 0, 1, { { "layer_00/key", GENIE_F32, 2, { 4, 4 } } } },
        { 22, 2, 2, 5, 0, 2, 2, {
            { "layer_00/key", GENIE_F32, 2, { 4, 4 } },
            { "layer_01/value", GENIE_F32, 3, { 3, 5, 4 } } } } } },
};

static char root[256];
/* The job the rank files and the manifest name (equal unless a test wants
 * a rank file of another job in an epoch). */
static const char *rank_job = "job-42", *manifest_job = "job-42";

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Bytes of an object identified by (epoch, session, what): reproducible. */
static void fill_bytes(void *p, size_t n, uint64_t epoch, uint64_t sid, uint64_t what, int is_bool)
{
    uint64_t s = 0x9E3779B97F4A7C15ull ^ (epoch << 40) ^ (sid << 16) ^ what, v = 0;
    uint8_t *b = p;

    for (size_t i = 0; i < n; i++) {
        if (i % 8 == 0) {
            v = xorshift(&s);
        }
        b[i] = is_bool ? (uint8_t)(v & 1) : (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t kv_bytes(const kv_spec_t *k)
{
    uint64_t n = genie_dtype_size(k->dtype);

    for (int i = 0; i < k->ndim; i++) {
        n *= (uint64_t)k->shape[i];
    }
    return n;
}

/* A session with its buffers allocated and filled for `epoch`. */
static void build_session(const sess_spec_t *sp, uint64_t epoch, genie_ckpt_session_t *s)
{
    uint64_t L = sp->prompt_len + sp->step;

    memset(s, 0, sizeof(*s));
    s->id = sp->id;
    s->key = 0x1234000000000000ull + sp->id * 7 + epoch;
    s->model_fp = 0xabcdef0000000000ull + sp->id;
    s->step = sp->step;
    s->prompt_len = sp->prompt_len;
    s->batch = sp->batch;
    s->n_tokens = L;
    s->tokens = malloc(sp->batch * L * 8);
    assert_non_null(s->tokens);
    fill_bytes(s->tokens, sp->batch * L * 8, epoch, sp->id, 1, 0);
    s->rng_len = sp->rng_len;
    if (sp->rng_len > 0) {
        s->rng = malloc(sp->rng_len);
        fill_bytes(s->rng, sp->rng_len, epoch, sp->id, 2, 0);
    }
    s->n_lineage = sp->n_lineage;
    s->lineage = malloc((size_t)sp->n_lineage * GENIE_CKPT_LINEAGE_COLS * 8 + 8);
    fill_bytes(s->lineage, (size_t)sp->n_lineage * GENIE_CKPT_LINEAGE_COLS * 8, epoch, sp->id, 3, 0);
    s->n_kv = sp->n_kv;
    s->kv = calloc(MAX_KV, sizeof(*s->kv));
    for (uint32_t k = 0; k < sp->n_kv; k++) {
        genie_ckpt_kv_t *kv = &s->kv[k];
        uint64_t         n = kv_bytes(&sp->kv[k]);
        void            *data = malloc(n);

        assert_non_null(data);
        snprintf(kv->name, sizeof(kv->name), "%s", sp->kv[k].name);
        kv->dtype = sp->kv[k].dtype;
        kv->ndim = sp->kv[k].ndim;
        memcpy(kv->shape, sp->kv[k].shape, sizeof(sp->kv[k].shape));
        fill_bytes(data, n, epoch, sp->id, 100 + k, kv->dtype == GENIE_BOOL);
        kv->data = data;
    }
}

static void free_session(genie_ckpt_session_t *s)
{
    for (uint32_t k = 0; k < s->n_kv; k++) {
        free((void *)s->kv[k].data);
    }
    free(s->kv);
    free(s->tokens);
    free(s->rng);
    free(s->lineage);
}

static const sess_spec_t *find_spec(const rank_spec_t *spec, uint64_t id, int32_t *rank_p)
{
    for (int r = 0; r < 2; r++) {
        for (uint32_t i = 0; i < spec[r].n; i++) {
            if (spec[r].s[i].id == id) {
                *rank_p = spec[r].rank;
                return &spec[r].s[i];
            }
        }
    }
    fail_msg("no session %llu in the spec", (unsigned long long)id);
    return NULL;
}

/* Write one rank file of the spec; returns its size. */
static uint64_t write_rank_file(const rank_spec_t *rs, uint64_t epoch)
{
    genie_ckpt_session_t   s[MAX_SESS];
    genie_ckpt_rank_info_t info = { .epoch = epoch, .rank = rs->rank, .slice = (uint32_t)rs->rank - 2 };
    char                   dir[512], name[64], path[700];
    uint64_t               bytes = 0;

    snprintf(info.phase, sizeof(info.phase), "decode");
    snprintf(info.job, sizeof(info.job), "%s", rank_job);
    genie_ckpt_epoch_path(root, epoch, dir, sizeof(dir));
    genie_ckpt_rank_file_name(rs->rank, name, sizeof(name));
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    for (uint32_t i = 0; i < rs->n; i++) {
        build_session(&rs->s[i], epoch, &s[i]);
    }
    if (genie_ckpt_write_rank(path, &info, s, rs->n, &bytes) != GENIE_OK) {
        fail_msg("write_rank: %s", genie_last_error());
    }
    for (uint32_t i = 0; i < rs->n; i++) {
        free_session(&s[i]);
    }
    return bytes;
}

static const uint64_t FPS[2] = { 0x00000000deadbeefull, 0xabcdef0000000011ull };

static void fill_manifest(genie_ckpt_manifest_t *m, genie_ckpt_file_entry_t *files, const rank_spec_t *spec,
                          uint64_t epoch, const uint64_t *bytes)
{
    memset(m, 0, sizeof(*m));
    m->epoch = epoch;
    snprintf(m->job, sizeof(m->job), "%s", manifest_job);
    snprintf(m->phases, sizeof(m->phases), "prefill:1,decode:2");
    snprintf(m->reason, sizeof(m->reason), "steps");
    m->created = 1700000000.5 + (double)epoch;
    m->n_model_fps = 2;
    m->model_fps = (uint64_t *)FPS;
    m->n_files = 2;
    m->files = files;
    for (int r = 0; r < 2; r++) {
        memset(&files[r], 0, sizeof(files[r]));
        genie_ckpt_rank_file_name(spec[r].rank, files[r].name, sizeof(files[r].name));
        files[r].rank = spec[r].rank;
        files[r].bytes = bytes[r];
        files[r].sessions = spec[r].n;
    }
}

/* The rank files and the manifest of `epoch`, whose directory exists. */
static void write_epoch_files(const rank_spec_t *spec, uint64_t epoch)
{
    genie_ckpt_manifest_t   m;
    genie_ckpt_file_entry_t files[2];
    uint64_t                bytes[2];

    for (int r = 0; r < 2; r++) {
        bytes[r] = write_rank_file(&spec[r], epoch);
    }
    fill_manifest(&m, files, spec, epoch, bytes);
    if (genie_ckpt_write_manifest(root, &m) != GENIE_OK) {
        fail_msg("write_manifest: %s", genie_last_error());
    }
}

static void write_epoch(const rank_spec_t *spec, uint64_t epoch)
{
    assert_int_equal(genie_ckpt_epoch_create(root, epoch), GENIE_OK);
    write_epoch_files(spec, epoch);
}

/* The job's next epoch (genie_ckpt_root_new_epoch), written; its number. */
static uint64_t write_new_epoch(genie_ckpt_root_t *r, const rank_spec_t *spec)
{
    uint64_t epoch = 0;
    char     dir[512];

    if (genie_ckpt_root_new_epoch(r, &epoch, dir, sizeof(dir)) != GENIE_OK) {
        fail_msg("root_new_epoch: %s", genie_last_error());
    }
    write_epoch_files(spec, epoch);
    return epoch;
}

/* Every session of the opened epoch equals the spec's for `epoch`, and
 * every KV tensor reads back byte for byte. */
static void check_epoch(const genie_ckpt_t *ck, const rank_spec_t *spec, uint64_t epoch)
{
    uint32_t total = spec[0].n + spec[1].n;

    assert_int_equal(ck->manifest.epoch, epoch);
    assert_int_equal(ck->n_sessions, total);
    for (uint32_t i = 0; i < ck->n_sessions; i++) {
        const genie_ckpt_session_t *s = &ck->sessions[i];
        genie_ckpt_session_t        want;
        genie_ckpt_file_t          *f;
        int32_t                     rank = -1;
        const sess_spec_t          *sp = find_spec(spec, s->id, &rank);
        char                        path[5000], name[64];

        if (i > 0) {                        /* ordered by (rank, id) */
            const genie_ckpt_session_t *p = &ck->sessions[i - 1];
            assert_true(p->rank < s->rank || (p->rank == s->rank && p->id < s->id));
        }
        build_session(sp, epoch, &want);
        assert_int_equal(s->rank, rank);
        genie_ckpt_rank_file_name(rank, name, sizeof(name));
        assert_string_equal(s->file, name);
        assert_int_equal(s->key, want.key);
        assert_int_equal(s->model_fp, want.model_fp);
        assert_int_equal(s->step, want.step);
        assert_int_equal(s->prompt_len, want.prompt_len);
        assert_int_equal(s->batch, want.batch);
        assert_int_equal(s->n_tokens, want.n_tokens);
        assert_memory_equal(s->tokens, want.tokens, want.batch * want.n_tokens * 8);
        assert_int_equal(s->rng_len, want.rng_len);
        if (want.rng_len > 0) {
            assert_memory_equal(s->rng, want.rng, want.rng_len);
        }
        assert_int_equal(s->n_lineage, want.n_lineage);
        if (want.n_lineage > 0) {
            assert_memory_equal(s->lineage, want.lineage, (size_t)want.n_lineage * GENIE_CKPT_LINEAGE_COLS * 8);
        }
        assert_int_equal(s->n_kv, want.n_kv);
        snprintf(path, sizeof(path), "%s/%s", ck->dir, s->file);
        assert_int_equal(genie_ckpt_file_open(path, &f), GENIE_OK);
        for (uint32_t k = 0; k < want.n_kv; k++) {
            const genie_ckpt_kv_t *w = &want.kv[k], *g = NULL;
            uint64_t               n = kv_bytes(&sp->kv[k]);
            void                  *buf = malloc(n);

            for (uint32_t j = 0; j < s->n_kv; j++) {
                if (strcmp(s->kv[j].name, w->name) == 0) {
                    g = &s->kv[j];
                }
            }
            assert_non_null(g);
            assert_null(g->data);
            assert_int_equal(g->dtype, w->dtype);
            assert_int_equal(g->ndim, w->ndim);
            assert_memory_equal(g->shape, w->shape, (size_t)w->ndim * sizeof(int64_t));
            if (genie_ckpt_file_read_kv(f, s->id, w->name, w->dtype, w->ndim, w->shape, buf, n) != GENIE_OK) {
                fail_msg("read_kv %s: %s", w->name, genie_last_error());
            }
            assert_memory_equal(buf, w->data, n);
            free(buf);
        }
        genie_ckpt_file_close(f);
        free_session(&want);
    }
}

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof(root), "/tmp/genie-test-ckpt-XXXXXX");
    assert_non_null(mkdtemp(root));
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

static void epoch_file(uint64_t epoch, const char *name, char *out, size_t cap)
{
    char dir[512];

    genie_ckpt_epoch_path(root, epoch, dir, sizeof(dir));
    snprintf(out, cap, "%s/%s", dir, name);
}

static int exists(const char *path)
{
    struct stat sb;

    return stat(path, &sb) == 0;
}

/* ---- round trip ------------------------------------------------------------------ */

typedef struct tally {
    int  ok, bad;
    char first_bad[600], bad_dataset[300];
} tally_t;

static void tally(const char *file, const char *dataset, genie_status_t st, const char *msg, void *arg)
{
    tally_t *t = arg;

    (void)file;
    if (st == GENIE_OK) {
        t->ok++;
    } else if (t->bad++ == 0) {
        snprintf(t->first_bad, sizeof(t->first_bad), "%s", msg);
        snprintf(t->bad_dataset, sizeof(t->bad_dataset), "%s", dataset);
    }
}

static void test_round_trip(void **state)
{
    genie_ckpt_t            *ck = NULL;
    genie_ckpt_epoch_info_t *eps = NULL;
    uint32_t                 bad = 99, n = 0;
    tally_t                  t = { 0 };
    char                     dir[512], path[700], cmd[1600];
    struct stat              sb;

    (void)state;
    write_epoch(FULL, 1);
    assert_int_equal(genie_ckpt_open(root, 0, NULL, NULL, &ck), GENIE_OK);
    genie_ckpt_epoch_path(root, 1, dir, sizeof(dir));
    assert_string_equal(ck->dir, dir);
    assert_string_equal(ck->manifest.job, "job-42");
    assert_string_equal(ck->manifest.phases, "prefill:1,decode:2");
    assert_string_equal(ck->manifest.reason, "steps");
    assert_true(ck->manifest.created == 1700000001.5);
    assert_int_equal(ck->manifest.n_model_fps, 2);
    assert_memory_equal(ck->manifest.model_fps, FPS, sizeof(FPS));
    assert_int_equal(ck->manifest.n_files, 2);
    for (int r = 0; r < 2; r++) {
        char name[64];
        genie_ckpt_rank_file_name(FULL[r].rank, name, sizeof(name));
        assert_string_equal(ck->manifest.files[r].name, name);
        assert_int_equal(ck->manifest.files[r].rank, FULL[r].rank);
        assert_int_equal(ck->manifest.files[r].sessions, FULL[r].n);
        epoch_file(1, name, path, sizeof(path));
        assert_int_equal(stat(path, &sb), 0);
        assert_int_equal(ck->manifest.files[r].bytes, (uint64_t)sb.st_size);
    }
    check_epoch(ck, FULL, 1);
    genie_ckpt_close(ck);
    /* explicit epoch, the same */
    assert_int_equal(genie_ckpt_open(root, 1, NULL, NULL, &ck), GENIE_OK);
    assert_int_equal(ck->n_sessions, 4);
    genie_ckpt_close(ck);
    /* no .tmp left; list says complete */
    epoch_file(1, "rank-0002.h5.tmp", path, sizeof(path));
    assert_false(exists(path));
    assert_int_equal(genie_ckpt_list(root, &eps, &n), GENIE_OK);
    assert_int_equal(n, 1);
    assert_true(eps[0].complete);
    assert_int_equal(eps[0].n_files, 2);
    assert_int_equal(eps[0].n_sessions, 4);
    assert_true(eps[0].bytes > 20u << 20);       /* rank 3 holds 23 MB of KV data */
    assert_string_equal(eps[0].reason, "steps");
    free(eps);
    /* verify: every dataset of the manifest and both rank files */
    assert_int_equal(genie_ckpt_verify(dir, tally, &t, &bad), GENIE_OK);
    assert_int_equal(bad, 0);
    assert_int_equal(t.bad, 0);
    /* manifest: model_fps; rank 2: 3 sessions x (tokens, lineage) + 1 rng
     * (session 11) + 1 rng (17) + 8 KV; rank 3: tokens, lineage, rng, 3 KV */
    assert_int_equal(t.ok, 1 + (3 * 2 + 2 + 8) + (3 + 3));
    /* h5dump reads headers and data (HDF5's own Fletcher32 on the chunks
     * written directly) */
    if (system("command -v h5dump >/dev/null 2>&1") == 0) {
        const char *names[] = { "rank-0002.h5", "rank-0003.h5", "manifest.h5" };
        for (int i = 0; i < 3; i++) {
            epoch_file(1, names[i], path, sizeof(path));
            snprintf(cmd, sizeof(cmd), "h5dump -H '%s' >/dev/null 2>&1", path);
            assert_int_equal(system(cmd), 0);
        }
        epoch_file(1, "rank-0002.h5", path, sizeof(path));
        snprintf(cmd, sizeof(cmd), "h5dump '%s' >/dev/null 2>&1", path);
        assert_int_equal(system(cmd), 0);
        snprintf(cmd, sizeof(cmd), "h5dump -a /sessions/11/kv/layer_00/value/dtype '%s' | grep -q float16",
                 path);
        assert_int_equal(system(cmd), 0);
    } else {
        print_message("h5dump not installed: not run on the files\n");
    }
}

/* ---- O_DIRECT and the page cache ---------------------------------------------------- */

static int takes_o_direct(const char *dir)
{
    char path[400];
    int  fd;

    snprintf(path, sizeof(path), "%s/o-direct-probe", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_DIRECT, 0600);
    if (fd >= 0) {
        close(fd);
    }
    unlink(path);
    return fd >= 0;
}

/* The same epoch written with O_DIRECT (the default) and through the page
 * cache (GENIE_CKPT_DIRECT=0): each path is the one taken, and both files
 * read back exactly and pass verify (HDF5's own Fletcher32 on every chunk). */
static void test_direct_io(void **state)
{
    genie_ckpt_io_stats_t a, b, c;
    genie_ckpt_t         *ck = NULL;
    uint32_t              bad = 99;
    tally_t               t = { 0 };
    char                  dir[512];

    (void)state;
    genie_ckpt_io_stats(&a);
    write_epoch(FULL, 1);
    genie_ckpt_io_stats(&b);
    if (takes_o_direct(root)) {
        /* rank 3 holds 23 MB of KV chunks; all but each chunk's last page goes direct */
        assert_true(b.written_direct - a.written_direct > 20u << 20);
        assert_int_equal(b.fallbacks, a.fallbacks);
    } else {
        print_message("%s refuses O_DIRECT: the writer must say it fell back\n", root);
        assert_true(b.fallbacks > a.fallbacks);
    }
    assert_int_equal(setenv("GENIE_CKPT_DIRECT", "0", 1), 0);
    write_epoch(FULL, 2);
    unsetenv("GENIE_CKPT_DIRECT");
    genie_ckpt_io_stats(&c);
    assert_true(c.written_direct == b.written_direct);
    assert_true(c.written_cached - b.written_cached > 20u << 20);
    assert_true(c.fallbacks == b.fallbacks);     /* turned off, not refused: no line */
    for (uint64_t e = 1; e <= 2; e++) {
        genie_ckpt_io_stats_t r0, r1;

        genie_ckpt_io_stats(&r0);
        assert_int_equal(genie_ckpt_open(root, e, NULL, NULL, &ck), GENIE_OK);
        check_epoch(ck, FULL, e);
        genie_ckpt_io_stats(&r1);
        /* the KV data is read back past the page cache too (both files) */
        assert_true(!takes_o_direct(root) || r1.read_direct - r0.read_direct > 20u << 20);
        genie_ckpt_close(ck);
        genie_ckpt_epoch_path(root, e, dir, sizeof(dir));
        assert_int_equal(genie_ckpt_verify(dir, tally, &t, &bad), GENIE_OK);
        assert_int_equal(bad, 0);
    }
    assert_int_equal(t.bad, 0);
}

/* ---- Fletcher32 and chunks ------------------------------------------------------- */

/* HDF5 1.10's H5_checksum_fletcher32, transcribed: the reference. */
static uint32_t fletcher32_ref(const void *_data, size_t _len)
{
    const uint8_t *data = _data;
    size_t         len = _len / 2;
    uint32_t       sum1 = 0, sum2 = 0;

    while (len) {
        size_t tlen = len > 360 ? 360 : len;
        len -= tlen;
        do {
            sum1 += (uint32_t)(((uint16_t)data[0]) << 8) | ((uint16_t)data[1]);
            data += 2;
            sum2 += sum1;
        } while (--tlen);
        sum1 = (sum1 & 0xffff) + (sum1 >> 16);
        sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    }
    if (_len % 2) {
        sum1 += (uint32_t)(((uint16_t)*data) << 8);
        sum2 += sum1;
        sum1 = (sum1 & 0xffff) + (sum1 >> 16);
        sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    }
    sum1 = (sum1 & 0xffff) + (sum1 >> 16);
    sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    return (sum2 << 16) | sum1;
}

static void test_fletcher32(void **state)
{
    size_t   cap = (5u << 20) + 9;
    uint8_t *b = malloc(cap + 3);
    uint64_t s = 12345;

    (void)state;
    assert_non_null(b);
    for (int it = 0; it < 600; it++) {
        size_t n = it < 300 ? (size_t)(xorshift(&s) % 1500) : it < 590 ? (size_t)(xorshift(&s) % 70000)
                                                                      : cap - (size_t)(xorshift(&s) % 9);
        size_t off = (size_t)(xorshift(&s) % 3);       /* unaligned starts too */
        int    mode = (int)(xorshift(&s) % 5);

        for (size_t i = 0; i < n; i++) {
            uint8_t r = (uint8_t)xorshift(&s);
            /* zeros, 0xff (sums that are multiples of 65535), sparse, pairs, random */
            b[off + i] = mode == 0 ? 0 : mode == 1 ? 0xff : mode == 2 ? (r % 50 == 0 ? r : 0)
                       : mode == 3 ? (i % 2 ? 0xff : 0xfe) : r;
        }
        if (ckpt_fletcher32(b + off, n) != fletcher32_ref(b + off, n)) {
            fail_msg("fletcher32 of %zu bytes (mode %d): %08x, HDF5 says %08x", n, mode,
                     ckpt_fletcher32(b + off, n), fletcher32_ref(b + off, n));
        }
    }
    free(b);
}

static void test_chunk_dims(void **state)
{
    static const struct { int nd; hsize_t dims[4]; size_t el; hsize_t want[4]; } cases[] = {
        { 3, { 3, 5, 4 }, 4, { 3, 5, 4 } },                      /* small: one chunk      */
        { 4, { 2, 16, 40, 1024 }, 4, { 1, 16, 40, 1024 } },      /* 5 MiB: halves         */
        { 2, { 5, 262144 }, 4, { 3, 262144 } },                  /* 5 x 1 MiB: 3 + 2 rows */
        { 3, { 1, 1, 1200000 }, 4, { 1, 1, 600000 } },           /* one 4.6 MiB row       */
        { 2, { 3, 2200001 }, 2, { 1, 1100001 } },
        { 2, { 0, 6 }, 8, { 1, 6 } },                            /* empty: one row        */
        { 1, { 100000000 }, 1, { 4166667 } },
    };

    (void)state;
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        hsize_t  chunk[4];
        uint64_t bytes = cases[c].el;

        ckpt_chunk_dims(cases[c].nd, cases[c].dims, cases[c].el, chunk);
        for (int i = 0; i < cases[c].nd; i++) {
            assert_int_equal(chunk[i], cases[c].want[i]);
            bytes *= chunk[i];
        }
        assert_true(bytes <= CKPT_CHUNK_BYTES);
    }
}

/* ---- crashes --------------------------------------------------------------------- */

/* The k-th line of the crash log: "k where". */
static void log_line(const char *log, long k, char *where, size_t cap)
{
    FILE *f = fopen(log, "r");
    char  line[256];
    long  n = 0;

    assert_non_null(f);
    where[0] = '\0';
    while (fgets(line, sizeof(line), f) != NULL) {
        char *sp = strchr(line, ' ');
        assert_non_null(sp);
        n = strtol(line, NULL, 10);
        if (n == k) {
            snprintf(where, cap, "%s", sp + 1);
            where[strcspn(where, "\n")] = '\0';
        }
    }
    fclose(f);
    assert_true(where[0] != '\0');
}

static void test_crash_at_every_point(void **state)
{
    char  log[300], where[200], dir[512], cmd[700];
    long  points = -1, first_new = -1;
    uint32_t removed = 0;

    (void)state;
    write_epoch(SMALL, 1);
    snprintf(log, sizeof(log), "%s/crash.log", root);
    /* Kill the writer of epoch 2 at its point k = 1, 2, ... until a child
     * passes every point: then the previous k was the last one. */
    for (long k = 1; k < 1000; k++) {
        genie_ckpt_t *ck = NULL;
        int           status;
        pid_t         pid = fork();

        assert_true(pid >= 0);
        if (pid == 0) {
            char v[32];
            snprintf(v, sizeof(v), "%ld", k);
            setenv("GENIE_CKPT_CRASH_AT", v, 1);
            setenv("GENIE_CKPT_CRASH_LOG", log, 1);
            write_epoch(SMALL, 2);
            _exit(0);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (WIFEXITED(status)) {
            assert_int_equal(WEXITSTATUS(status), 0);
            points = k - 1;
            break;
        }
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        log_line(log, k, where, sizeof(where));
        /* Never a corrupt read: the newest complete epoch opens and every
         * byte is right; epoch 2 only once its manifest is renamed. */
        if (genie_ckpt_open(root, 0, NULL, NULL, &ck) != GENIE_OK) {
            fail_msg("killed at %ld (%s): %s", k, where, genie_last_error());
        }
        if (strcmp(where, "manifest.h5: renamed") == 0 || strcmp(where, "manifest.h5: directory fsynced") == 0) {
            assert_int_equal(ck->manifest.epoch, 2);
            if (first_new < 0) {
                first_new = k;
            }
        } else {
            if (ck->manifest.epoch != 1) {
                fail_msg("killed at %ld (%s): epoch %llu opened", k, where,
                         (unsigned long long)ck->manifest.epoch);
            }
            assert_true(first_new < 0);
        }
        check_epoch(ck, SMALL, ck->manifest.epoch);
        genie_ckpt_close(ck);
        genie_ckpt_epoch_path(root, 2, dir, sizeof(dir));
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
    }
    /* 2 rank files (created, tokens, lineage, rng, KV datasets, flushed,
     * closed, fsynced, renamed, directory fsynced) and the manifest */
    assert_true(points >= 30);
    assert_int_equal(first_new, points - 1);
    log_line(log, 1, where, sizeof(where));
    assert_string_equal(where, "rank-0002.h5: created");
    log_line(log, points, where, sizeof(where));
    assert_string_equal(where, "manifest.h5: directory fsynced");
    print_message("epoch commit killed at each of its %ld fault points: always a complete epoch\n", points);

    /* prune (of this job's epochs: all of these are) keeps the newest
     * complete epochs and an incomplete newer one */
    {
        genie_ckpt_root_t *r = NULL;
        uint64_t           e3 = 0;

        assert_int_equal(genie_ckpt_root_open(root, "job-42", &r), GENIE_OK);
        assert_int_equal(genie_ckpt_root_first_epoch(r), 3);    /* 1 and 2 were there before */
        assert_int_equal(genie_ckpt_root_new_epoch(r, &e3, dir, sizeof(dir)), GENIE_OK);
        assert_int_equal(e3, 3);
        {
            pid_t pid = fork();
            int   status;
            if (pid == 0) {
                setenv("GENIE_CKPT_CRASH_AT", "5", 1);       /* inside rank-0002.h5 of epoch 3 */
                write_epoch_files(SMALL, 3);
                _exit(0);
            }
            waitpid(pid, &status, 0);
            assert_true(WIFSIGNALED(status));
        }
        assert_int_equal(write_new_epoch(r, SMALL), 4);
        assert_int_equal(write_new_epoch(r, SMALL), 5);
        genie_ckpt_epoch_path(root, 3, dir, sizeof(dir));
        assert_true(exists(dir));
        assert_int_equal(genie_ckpt_root_prune(r, 1, &removed), GENIE_OK);
        assert_int_equal(removed, 2);                        /* epoch 4 and the incomplete 3 */
        assert_false(exists(dir));
        for (uint64_t e = 1; e <= 2; e++) {                  /* from before this job's hold */
            genie_ckpt_epoch_path(root, e, dir, sizeof(dir));
            assert_true(exists(dir));
        }
        genie_ckpt_root_close(r);
    }
    {
        genie_ckpt_t *ck = NULL;
        assert_int_equal(genie_ckpt_open(root, 0, NULL, NULL, &ck), GENIE_OK);
        check_epoch(ck, SMALL, 5);
        genie_ckpt_close(ck);
    }
}

/* GENIE_CKPT_CRASH_AT that is not a plain number is ignored (the writer
 * survives); 0 never fires. */
static void test_crash_at_parsing(void **state)
{
    static const char *values[] = { "abc", "12x", " 3", "-1", "+2", "", "0", "99999999999999999999999" };

    (void)state;
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        pid_t pid = fork();
        int   status;

        if (pid == 0) {
            int fd = open("/dev/null", O_WRONLY);
            dup2(fd, 2);                                    /* its one stderr line */
            setenv("GENIE_CKPT_CRASH_AT", values[i], 1);
            for (int k = 0; k < 200; k++) {
                genie_ckpt_fault_point("test");
            }
            _exit(0);
        }
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fail_msg("GENIE_CKPT_CRASH_AT='%s' killed the process", values[i]);
        }
    }
}

/* ---- flipped bytes ----------------------------------------------------------------- */

/* Offset of the middle of chunk `idx` of a dataset (its file offset and size
 * from H5Dget_chunk_info). */
static haddr_t chunk_middle(const char *path, const char *dset, hsize_t idx)
{
    hid_t    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), d, sp;
    haddr_t  addr = 0;
    hsize_t  size = 0, off[8] = { 0 };
    unsigned mask = 0;

    assert_true(f >= 0);
    d = H5Dopen2(f, dset, H5P_DEFAULT);
    assert_true(d >= 0);
    sp = H5Dget_space(d);
    assert_true(H5Dget_chunk_info(d, sp, idx, off, &mask, &addr, &size) >= 0);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    return addr + size / 2;
}

static void flip(const char *path, haddr_t off)
{
    int     fd = open(path, O_RDWR);
    uint8_t b[4];

    assert_true(fd >= 0);
    assert_int_equal(pread(fd, b, 4, (off_t)off), 4);
    for (int i = 0; i < 4; i++) {
        b[i] ^= 0x5a;
    }
    assert_int_equal(pwrite(fd, b, 4, (off_t)off), 4);
    close(fd);
}

typedef struct skips {
    int  n;
    char why[1024];
    uint64_t epoch;
} skips_t;

static void on_skip(uint64_t epoch, const char *why, void *arg)
{
    skips_t *s = arg;

    if (s->n++ == 0) {
        s->epoch = epoch;
        snprintf(s->why, sizeof(s->why), "%s", why);
    }
}

static void test_flipped_bytes(void **state)
{
    char               dir[512], path[700];
    genie_ckpt_file_t *f;
    float              buf[60];
    int64_t            shape[3] = { 3, 5, 4 };
    uint32_t           bad = 0;
    tally_t            t = { 0 };
    skips_t            sk = { 0 };
    genie_ckpt_t      *ck = NULL;

    (void)state;
    (void)H5open();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    write_epoch(SMALL, 1);
    write_epoch(SMALL, 2);
    genie_ckpt_epoch_path(root, 2, dir, sizeof(dir));
    epoch_file(2, "rank-0002.h5", path, sizeof(path));
    flip(path, chunk_middle(path, "/sessions/11/kv/layer_01/value", 0));
    assert_int_equal(genie_ckpt_file_open(path, &f), GENIE_OK);
    assert_int_equal(genie_ckpt_file_read_kv(f, 11, "layer_01/value", GENIE_F32, 3, shape, buf, sizeof(buf)),
                     GENIE_ERR_CORRUPT);
    assert_non_null(strstr(genie_last_error(), path));
    assert_non_null(strstr(genie_last_error(), ": dataset /sessions/11/kv/layer_01/value failed its Fletcher32 "
                                              "checksum"));
    /* the others still read: same file, same session, other sessions */
    assert_int_equal(genie_ckpt_file_read_kv(f, 11, "layer_00/key", GENIE_F32, 3, shape, buf, sizeof(buf)),
                     GENIE_OK);
    assert_int_equal(genie_ckpt_file_read_kv(f, 12, "layer_01/value", GENIE_F32, 3, shape, buf, sizeof(buf)),
                     GENIE_OK);
    genie_ckpt_file_close(f);
    /* the metadata does not hold KV data: the epoch still opens */
    assert_int_equal(genie_ckpt_open(root, 0, NULL, NULL, &ck), GENIE_OK);
    assert_int_equal(ck->manifest.epoch, 2);
    genie_ckpt_close(ck);
    /* verify reports exactly that dataset */
    assert_int_equal(genie_ckpt_verify(dir, tally, &t, &bad), GENIE_OK);
    assert_int_equal(bad, 1);
    assert_int_equal(t.bad, 1);
    assert_string_equal(t.bad_dataset, "/sessions/11/kv/layer_01/value");
    assert_non_null(strstr(t.first_bad, "dataset /sessions/11/kv/layer_01/value failed its Fletcher32 checksum"));

    /* flipped token bytes: open reads tokens, so epoch 2 fails naming them
     * and the newest complete epoch is the previous one */
    flip(path, chunk_middle(path, "/sessions/12/tokens", 0));
    assert_int_equal(genie_ckpt_open(root, 2, NULL, NULL, &ck), GENIE_ERR_CORRUPT);
    assert_non_null(strstr(genie_last_error(), "dataset /sessions/12/tokens failed its Fletcher32 checksum"));
    assert_int_equal(genie_ckpt_open(root, 0, on_skip, &sk, &ck), GENIE_OK);
    assert_int_equal(ck->manifest.epoch, 1);
    check_epoch(ck, SMALL, 1);
    genie_ckpt_close(ck);
    assert_int_equal(sk.n, 1);
    assert_int_equal(sk.epoch, 2);
    assert_non_null(strstr(sk.why, "/sessions/12/tokens"));
    assert_null(strstr(sk.why, "genie: checkpoint"));
}

/* ---- refusals ------------------------------------------------------------------------ */

/* A flipped byte in a chunk that a restore reads with O_DIRECT (rank 3's
 * 2.6 MB chunks) fails its checksum with the same line; the other chunk
 * and tensors still read. */
static void test_flipped_bytes_direct(void **state)
{
    char               path[700];
    genie_ckpt_file_t *f;
    int64_t            shape[4] = { 2, 16, 40, 1024 };
    size_t             n = 2 * 16 * 40 * 1024 * sizeof(float);
    float             *buf = malloc(n);

    (void)state;
    assert_non_null(buf);
    (void)H5open();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    write_epoch(FULL, 1);
    epoch_file(1, "rank-0003.h5", path, sizeof(path));
    assert_int_equal(genie_ckpt_file_open(path, &f), GENIE_OK);
    assert_int_equal(genie_ckpt_file_read_kv(f, 21, "layer_00/key", GENIE_F32, 4, shape, buf, n), GENIE_OK);
    genie_ckpt_file_close(f);
    flip(path, chunk_middle(path, "/sessions/21/kv/layer_00/key", 1));
    assert_int_equal(genie_ckpt_file_open(path, &f), GENIE_OK);
    assert_int_equal(genie_ckpt_file_read_kv(f, 21, "layer_00/key", GENIE_F32, 4, shape, buf, n),
                     GENIE_ERR_CORRUPT);
    assert_non_null(strstr(genie_last_error(), ": dataset /sessions/21/kv/layer_00/key failed its Fletcher32 "
                                              "checksum"));
    shape[0] = 1, shape[1] = 1, shape[2] = 1200000;
    assert_int_equal(genie_ckpt_file_read_kv(f, 21, "layer_00/value", GENIE_F32, 3, shape, buf, 4800000),
                     GENIE_OK);
    genie_ckpt_file_close(f);
    free(buf);
}

static void expect_refused(const char *path, genie_ckpt_session_t *s, uint32_t n, const char *what)
{
    genie_ckpt_rank_info_t info = { .epoch = 5, .rank = 2 };
    char                   tmp[800];

    if (genie_ckpt_write_rank(path, &info, s, n, NULL) != GENIE_ERR_INVALID) {
        fail_msg("%s: not refused (%s)", what, genie_last_error());
    }
    assert_non_null(strstr(genie_last_error(), "genie: checkpoint "));
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    assert_false(exists(path));
    assert_false(exists(tmp));
}

static void test_refusals(void **state)
{
    genie_ckpt_session_t    s[2];
    genie_ckpt_file_entry_t fe = { .rank = 2, .bytes = 1, .sessions = 1 };
    genie_ckpt_manifest_t   m = { .epoch = 5, .n_files = 1, .files = &fe };
    genie_ckpt_rank_info_t  info = { .epoch = 5, .rank = 2 };
    genie_ckpt_t           *ck = NULL;
    genie_ckpt_file_t      *f;
    char                    path[700], cmd[900];
    float                   buf[60];
    int64_t                 shape[3] = { 3, 5, 4 }, bad_shape[3] = { 3, 5, 5 };
    static const char      *bad_names[] = { "", "/a", "a/", "a//b", "A", "a..b", "x y", "a/b/c", "../x",
        "layer_00/key.", "Layer_00/key", "layer-00" };

    (void)state;
    genie_ckpt_epoch_create(root, 5);
    epoch_file(5, "rank-0002.h5", path, sizeof(path));
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        build_session(&SMALL[0].s[0], 5, &s[0]);
        snprintf(s[0].kv[1].name, sizeof(s[0].kv[1].name), "%s", bad_names[i]);
        expect_refused(path, s, 1, bad_names[i]);
        free_session(&s[0]);
    }
    build_session(&SMALL[0].s[0], 5, &s[0]);
    memset(s[0].kv[1].name, 'a', sizeof(s[0].kv[1].name));      /* no terminator */
    expect_refused(path, s, 1, "unterminated name");
    snprintf(s[0].kv[1].name, sizeof(s[0].kv[1].name), "layer_00/key");
    expect_refused(path, s, 1, "a name twice");
    snprintf(s[0].kv[1].name, sizeof(s[0].kv[1].name), "layer_00");
    expect_refused(path, s, 1, "a dataset where a group must be");
    snprintf(s[0].kv[1].name, sizeof(s[0].kv[1].name), "layer_00/value");
    s[0].kv[2].ndim = 0;
    expect_refused(path, s, 1, "ndim 0");
    s[0].kv[2].ndim = GENIE_MAX_DIMS + 1;
    expect_refused(path, s, 1, "ndim 9");
    s[0].kv[2].ndim = 3;
    s[0].kv[2].shape[1] = 0;
    expect_refused(path, s, 1, "a zero-sized dim");
    s[0].kv[2].shape[1] = -5;
    expect_refused(path, s, 1, "a negative dim");
    s[0].kv[2].shape[1] = 5;
    s[0].kv[2].dtype = (genie_dtype_t)99;
    expect_refused(path, s, 1, "an unknown dtype");
    s[0].kv[2].dtype = GENIE_F32;
    s[0].step++;
    expect_refused(path, s, 1, "step != L - prompt_len");
    s[0].step--;
    s[0].batch = 0;
    expect_refused(path, s, 1, "batch 0");
    s[0].batch = 2;
    s[0].id = 0;
    expect_refused(path, s, 1, "id 0");
    s[0].id = 11;
    s[1] = s[0];
    expect_refused(path, s, 2, "a session twice");
    free_session(&s[0]);
    /* a directory that does not exist: an I/O error, nothing left */
    build_session(&SMALL[0].s[0], 5, &s[0]);
    {
        char nodir[800];
        snprintf(nodir, sizeof(nodir), "%s/no-such-dir/rank-0002.h5", root);
        assert_int_equal(genie_ckpt_write_rank(nodir, &info, s, 1, NULL), GENIE_ERR_IO);
        assert_non_null(strstr(genie_last_error(), "no-such-dir"));
    }

    /* a manifest naming a missing file, one of another size, a bad name */
    snprintf(fe.name, sizeof(fe.name), "rank-0002.h5");
    assert_int_equal(genie_ckpt_write_manifest(root, &m), GENIE_ERR_INVALID);
    assert_non_null(strstr(genie_last_error(), "rank-0002.h5"));
    assert_int_equal(genie_ckpt_write_rank(path, &info, s, 1, &fe.bytes), GENIE_OK);
    free_session(&s[0]);
    fe.bytes++;
    assert_int_equal(genie_ckpt_write_manifest(root, &m), GENIE_ERR_INVALID);
    assert_non_null(strstr(genie_last_error(), "rank-0002.h5"));
    fe.bytes--;
    snprintf(fe.name, sizeof(fe.name), "../rank-0002.h5");
    assert_int_equal(genie_ckpt_write_manifest(root, &m), GENIE_ERR_INVALID);
    snprintf(fe.name, sizeof(fe.name), "rank-0002.h5");
    fe.sessions = 2;
    assert_int_equal(genie_ckpt_write_manifest(root, &m), GENIE_OK);
    /* ... but the manifest's count disagrees with the file's */
    assert_int_equal(genie_ckpt_open(root, 5, NULL, NULL, &ck), GENIE_ERR_CORRUPT);
    assert_non_null(strstr(genie_last_error(), "rank-0002.h5"));
    fe.sessions = 1;
    assert_int_equal(genie_ckpt_write_manifest(root, &m), GENIE_OK);
    assert_int_equal(genie_ckpt_open(root, 5, NULL, NULL, &ck), GENIE_OK);
    genie_ckpt_close(ck);

    /* read requests that do not match the dataset */
    assert_int_equal(genie_ckpt_file_open(path, &f), GENIE_OK);
    assert_int_equal(genie_ckpt_file_read_kv(f, 11, "layer_00/value", GENIE_F32, 3, shape, buf, sizeof(buf)),
                     GENIE_ERR_CORRUPT);                                 /* it is float16 */
    assert_non_null(strstr(genie_last_error(), "dataset /sessions/11/kv/layer_00/value is float16"));
    assert_int_equal(genie_ckpt_file_read_kv(f, 11, "layer_00/key", GENIE_F32, 3, bad_shape, buf, sizeof(buf)),
                     GENIE_ERR_CORRUPT);
    assert_non_null(strstr(genie_last_error(), "/sessions/11/kv/layer_00/key"));
    assert_int_equal(genie_ckpt_file_read_kv(f, 11, "layer_00/key", GENIE_F32, 2, shape, buf, sizeof(buf)),
                     GENIE_ERR_CORRUPT);
    assert_int_equal(genie_ckpt_file_read_kv(f, 11, "layer_00/key", GENIE_F32, 3, shape, buf, sizeof(buf) - 4),
                     GENIE_ERR_CORRUPT);
    assert_int_equal(genie_ckpt_file_read_kv(f, 11, "layer_09/key", GENIE_F32, 3, shape, buf, sizeof(buf)),
                     GENIE_ERR_NOT_FOUND);
    assert_int_equal(genie_ckpt_file_read_kv(f, 99, "layer_00/key", GENIE_F32, 3, shape, buf, sizeof(buf)),
                     GENIE_ERR_NOT_FOUND);
    assert_int_equal(genie_ckpt_file_read_kv(f, 11, "../key", GENIE_F32, 3, shape, buf, sizeof(buf)),
                     GENIE_ERR_INVALID);
    assert_int_equal(genie_ckpt_file_read_kv(f, 11, "layer_00/key", GENIE_F32, 0, shape, buf, sizeof(buf)),
                     GENIE_ERR_INVALID);
    assert_int_equal(genie_ckpt_file_read_kv(f, 11, "layer_00/key", GENIE_F32, 3, shape, buf, sizeof(buf)),
                     GENIE_OK);
    genie_ckpt_file_close(f);
    {
        char mpath[700];
        epoch_file(5, "manifest.h5", mpath, sizeof(mpath));
        assert_int_equal(genie_ckpt_file_open(mpath, &f), GENIE_ERR_CORRUPT);   /* not a rank file */
    }

    /* truncated to half: the epoch is skipped with a reason, and the
     * previous one is used */
    write_epoch(SMALL, 4);
    {
        skips_t                  sk = { 0 };
        genie_ckpt_epoch_info_t *eps = NULL;
        uint32_t                 n = 0;

        snprintf(cmd, sizeof(cmd), "truncate -s %llu '%s'", (unsigned long long)fe.bytes / 2, path);
        assert_int_equal(system(cmd), 0);
        assert_int_equal(genie_ckpt_open(root, 0, on_skip, &sk, &ck), GENIE_OK);
        assert_int_equal(ck->manifest.epoch, 4);
        genie_ckpt_close(ck);
        assert_int_equal(genie_ckpt_list(root, &eps, &n), GENIE_OK);
        assert_int_equal(n, 2);
        assert_int_equal(eps[1].epoch, 5);
        assert_false(eps[1].complete);
        assert_non_null(strstr(eps[1].why, "rank-0002.h5 has"));
        free(eps);
        /* the reader does not rely on the size check: the same truncated
         * file, with a manifest that records its new size */
        struct stat sb;
        assert_int_equal(stat(path, &sb), 0);
        fe.bytes = (uint64_t)sb.st_size;
        assert_int_equal(genie_ckpt_write_manifest(root, &m), GENIE_OK);
        assert_int_not_equal(genie_ckpt_open(root, 5, NULL, NULL, &ck), GENIE_OK);
        assert_non_null(strstr(genie_last_error(), "rank-0002.h5"));
        assert_int_equal(genie_ckpt_open(root, 0, on_skip, &sk, &ck), GENIE_OK);
        assert_int_equal(ck->manifest.epoch, 4);
        genie_ckpt_close(ck);
        assert_int_equal(sk.n, 2);
        assert_int_equal(sk.epoch, 5);
        assert_non_null(strstr(sk.why, "rank-0002.h5 has"));
        /* a truncated manifest */
        epoch_file(4, "manifest.h5", path, sizeof(path));
        snprintf(cmd, sizeof(cmd), "truncate -s 100 '%s'", path);
        assert_int_equal(system(cmd), 0);
        assert_int_equal(genie_ckpt_open(root, 0, NULL, NULL, &ck), GENIE_ERR_NOT_FOUND);
        assert_int_equal(genie_ckpt_open(root, 4, NULL, NULL, &ck), GENIE_ERR_CORRUPT);
        assert_non_null(strstr(genie_last_error(), "manifest.h5: not a readable HDF5 file"));
    }
    /* an epoch that does not exist; a root that does not exist */
    assert_int_equal(genie_ckpt_open(root, 77, NULL, NULL, &ck), GENIE_ERR_NOT_FOUND);
    snprintf(path, sizeof(path), "%s/nothing-here", root);
    assert_int_equal(genie_ckpt_open(path, 0, NULL, NULL, &ck), GENIE_ERR_NOT_FOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fletcher32),
        cmocka_unit_test(test_chunk_dims),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_io, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_at_every_point, setup, teardown),
        cmocka_unit_test(test_crash_at_parsing),
        cmocka_unit_test_setup_teardown(test_flipped_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flipped_bytes_direct, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

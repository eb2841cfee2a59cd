/*
 * libFuzzer target: the checkpoint readers (checkpoint/src/ckpt_read.c,
 * ckpt_kv.c, ckpt_verify.c) on the fuzz bytes written to a file.
 *
 * Each input is tried in two places of a private temporary checkpoint root:
 *   - as a rank file, A/epoch-00000001/rank-0000.h5 (no manifest):
 *     genie_ckpt_file_open (+ close) and genie_ckpt_verify of the epoch,
 *     which reads every dataset of it with its checksum;
 *   - as the manifest, B/epoch-00000001/manifest.h5, beside a valid rank file
 *     written by the real writer (gen/ckpt_seed.h): genie_ckpt_list and
 *     genie_ckpt_open of root B, then, when it opens, every KV tensor of
 *     every session through genie_ckpt_file_read_kv.
 * Invariants (an abort is what libFuzzer reports): every refusal is a
 * negative status with a non-empty genie_last_error() line holding no
 * newline; an opened epoch's sessions have bounded, consistent metadata;
 * ASan/UBSan/LSan find nothing.
 *
 * GENIE_LF_VERBOSE=1 prints what each input reached.
 * Seeds (tests/fuzz/corpus/lf_ckpt_read/) are a real rank file and a real
 * manifest (gen/make_corpus.c).  libhdf5 itself is not hardened against
 * crafted metadata (see fuzz_ckpt.c): a crash whose stack is inside libhdf5
 * alone is HDF5's, one through Genie's reader is Genie's.
 */
#include <ftw.h>
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gen/ckpt_seed.h"
#include "genie/ckpt.h"

static char root_a[4200], root_b[4200], rank_path[8400], manifest_path[8400];
static char tmp_root[4096];

static void die(const char *what)
{
    fprintf(stderr, "lf_ckpt_read: %s (last error: '%s')\n", what, genie_last_error());
    abort();
}

static void check_refusal(genie_status_t st, const char *what)
{
    const char *e = genie_last_error();

    if (st >= 0) {
        return;
    }
    if (e[0] == '\0' || strchr(e, '\n') != NULL) {
        fprintf(stderr, "lf_ckpt_read: %s refused (%d) with message '%s'\n", what, (int)st, e);
        abort();
    }
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void cleanup(void)
{
    if (tmp_root[0] != '\0') {
        nftw(tmp_root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    }
}

static void init(void)
{
    const char *tmp = getenv("TMPDIR");
    char dir[4096];

    /* libhdf5 keeps freed objects on free lists that LeakSanitizer cannot
     * see through (every HDF5 allocation then reads as a leak); with no
     * list kept, what is freed is freed, and a leak is a leak. */
    if (H5set_free_list_limits(0, 0, 0, 0, 0, 0) < 0) {
        die("H5set_free_list_limits");
    }
    /* Small files on any file system: the page-cache path, no fallback line. */
    setenv("GENIE_CKPT_DIRECT", "0", 1);
    snprintf(tmp_root, sizeof(tmp_root), "%s/lf_ckpt_read.XXXXXX", tmp != NULL ? tmp : "/tmp");
    if (mkdtemp(tmp_root) == NULL) {
        die("mkdtemp");
    }
    atexit(cleanup);
    snprintf(root_a, sizeof(root_a), "%s/a", tmp_root);
    snprintf(root_b, sizeof(root_b), "%s/b", tmp_root);
    if (genie_ckpt_epoch_create(root_a, 1) != GENIE_OK ||
        ckpt_seed_write_epoch(root_b, 1, 0) != GENIE_OK) {
        die("temporary checkpoint roots not made");
    }
    genie_ckpt_epoch_path(root_a, 1, dir, sizeof(dir));
    snprintf(rank_path, sizeof(rank_path), "%s/rank-0000.h5", dir);
    genie_ckpt_epoch_path(root_b, 1, dir, sizeof(dir));
    snprintf(manifest_path, sizeof(manifest_path), "%s/manifest.h5", dir);
}

static void put_file(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");

    if (f == NULL || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
        die("cannot write the input file");
    }
}

static void report_nothing(const char *file, const char *dataset, genie_status_t st,
                           const char *msg, void *arg)
{
    (void)file;
    (void)dataset;
    (void)arg;
    if (st < 0 && (msg == NULL || msg[0] == '\0' || strchr(msg, '\n') != NULL)) {
        die("verify reported a failure without a one-line message");
    }
}

static void skipped(uint64_t epoch, const char *why, void *arg)
{
    (void)epoch;
    (void)arg;
    if (why == NULL || why[0] == '\0' || strchr(why, '\n') != NULL) {
        die("an epoch was skipped without a one-line reason");
    }
}

static void as_rank_file(const uint8_t *data, size_t size)
{
    genie_ckpt_file_t *f = NULL;
    genie_status_t st;
    char dir[4096];
    uint32_t bad = 0;

    put_file(rank_path, data, size);
    genie_clear_error();
    st = genie_ckpt_file_open(rank_path, &f);
    check_refusal(st, "genie_ckpt_file_open");
    if (st == GENIE_OK) {
        genie_ckpt_file_close(f);
    }
    genie_ckpt_epoch_path(root_a, 1, dir, sizeof(dir));
    genie_clear_error();
    st = genie_ckpt_verify(dir, report_nothing, NULL, &bad);
    check_refusal(st, "genie_ckpt_verify");
    if (getenv("GENIE_LF_VERBOSE") != NULL) {
        fprintf(stderr, "lf_ckpt_read: as a rank file: verify %d, %u bad datasets\n", (int)st, bad);
    }
}

static void read_all_kv(const genie_ckpt_t *ck)
{
    for (uint32_t i = 0; i < ck->n_sessions; i++) {
        const genie_ckpt_session_t *s = &ck->sessions[i];
        genie_ckpt_file_t *f = NULL;
        char path[8300];
        genie_status_t st;

        if (s->n_tokens > 0 && s->tokens == NULL) {
            die("an opened session has tokens but no array");
        }
        snprintf(path, sizeof(path), "%s/%s", ck->dir, s->file);
        genie_clear_error();
        st = genie_ckpt_file_open(path, &f);
        check_refusal(st, "genie_ckpt_file_open of an opened epoch's file");
        if (st != GENIE_OK) {
            continue;
        }
        for (uint32_t k = 0; k < s->n_kv; k++) {
            const genie_ckpt_kv_t *kv = &s->kv[k];
            uint64_t nbytes;
            const char *why = genie_shape_problem(kv->dtype, kv->ndim, kv->shape, &nbytes);
            void *buf;

            if (why != NULL) {
                fprintf(stderr, "lf_ckpt_read: opened KV %s %s\n", kv->name, why);
                abort();
            }
            if (nbytes > (UINT64_C(64) << 20)) {
                continue;   /* the file cannot hold it; not worth the memory */
            }
            buf = malloc(nbytes ? nbytes : 1);
            if (buf == NULL) {
                die("malloc");
            }
            genie_clear_error();
            st = genie_ckpt_file_read_kv(f, s->id, kv->name, kv->dtype, kv->ndim, kv->shape,
                                         buf, nbytes);
            check_refusal(st, "genie_ckpt_file_read_kv");
            free(buf);
        }
        genie_ckpt_file_close(f);
    }
}

static void as_manifest(const uint8_t *data, size_t size)
{
    genie_ckpt_epoch_info_t *epochs = NULL;
    genie_ckpt_t *ck = NULL;
    genie_status_t st;
    uint32_t n = 0;

    put_file(manifest_path, data, size);
    genie_clear_error();
    st = genie_ckpt_list(root_b, &epochs, &n);
    check_refusal(st, "genie_ckpt_list");
    if (st == GENIE_OK) {
        for (uint32_t i = 0; i < n; i++) {
            if (!epochs[i].complete && (epochs[i].why[0] == '\0' ||
                                        strchr(epochs[i].why, '\n') != NULL)) {
                die("an incomplete epoch listed without a one-line reason");
            }
        }
        free(epochs);
    }
    genie_clear_error();
    st = genie_ckpt_open(root_b, 0, skipped, NULL, &ck);
    check_refusal(st, "genie_ckpt_open");
    if (getenv("GENIE_LF_VERBOSE") != NULL) {   /* to check what a seed reaches */
        fprintf(stderr, "lf_ckpt_read: as a manifest: %d %s\n", (int)st,
                st == GENIE_OK ? "opened" : genie_last_error());
    }
    if (st == GENIE_OK) {
        read_all_kv(ck);
        genie_ckpt_close(ck);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (tmp_root[0] == '\0') {
        init();
    }
    as_rank_file(data, size);
    as_manifest(data, size);
    return 0;
}

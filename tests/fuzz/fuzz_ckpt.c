/*
 * Fuzz harness for the checkpoint reader (checkpoint/src/ckpt_read.c,
 * ckpt_kv.c, ckpt_verify.c) on damaged and hostile files, seeded and bounded:
 *
 *   (a) bytes changed inside the stored chunks (data or checksum) of a KV,
 *       tokens, lineage or rng dataset: the read of that dataset fails with
 *       GENIE_ERR_CORRUPT naming it (a KV read, or genie_ckpt_open for the
 *       metadata datasets, which then falls back to the previous epoch), or
 *       succeeds with the original bytes when the change was a no-op;
 *       verify reports exactly that dataset; every other KV tensor still
 *       reads.  The changes are one byte, or a run within two adjacent
 *       16-bit words that does not turn 0x0000 into 0xffff or back: the
 *       changes Fletcher32 always detects (it cannot tell those two words
 *       apart, and larger changes can cancel out), so a success with other
 *       bytes is a bug, not bad luck;
 *   (b) rank files and manifests truncated at random lengths, with and
 *       without a manifest that records the new size: the epoch never
 *       opens, the previous one does, list/verify/read refuse cleanly;
 *   (c) rank files and manifests written through the HDF5 API directly
 *       with hostile metadata: huge counts, 9 and 32 dimensions, dims near
 *       2^62, tokens that do not match batch or step, unknown or
 *       variable-length dtype strings, names with "..", nested and linked
 *       groups, unterminated, oversized and control-byte strings, wrong
 *       attribute types, datasets without Fletcher32 or without chunks, and
 *       random edge values in every numeric attribute: GENIE_ERR_CORRUPT (or
 *       VERSION) with one line naming the file, never a crash, and whatever
 *       is accepted reads back exactly as written.
 *
 * Not fuzzed: random bytes in HDF5's own metadata (superblock, object
 * headers, B-trees, heaps).  libhdf5 is not hardened against that (it can
 * crash or loop on crafted metadata), so it is outside what Genie can
 * promise; the checksums cover the data, and the reader checks every value
 * the metadata carries.
 *
 * Run by CTest (label fuzz) and in the ASan+UBSan build:
 *   fuzz_ckpt [iterations] [seconds] [seed]   (default 3000, 15 s, fixed)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "genie/ckpt.h"

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static char     root[256];
static uint64_t n_detected, n_noop, n_trunc, n_hostile, n_accepted;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static uint64_t below(uint64_t n)
{
    return n ? next() % n : 0;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_ckpt: %s (%s) (last error: '%s')\n", what, detail, genie_last_error());
    abort();
}

/* A failure: negative, one printable line, the library's prefix. */
static void check_refusal(genie_status_t st, const char *ctx)
{
    const char *e = genie_last_error();

    if (st >= 0) {
        die("expected a refusal", ctx);
    }
    if (strncmp(e, "genie: checkpoint", 17) != 0) {
        die("a refusal without the library's one-line message", ctx);
    }
    for (const char *p = e; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            die("a message with control bytes", ctx);
        }
    }
}

static void epoch_dir(uint64_t epoch, char *out, size_t cap)
{
    genie_ckpt_epoch_path(root, epoch, out, cap);
}

/* ---- the valid epochs ------------------------------------------------------------ */

#define NKV 5
static const char *kv_names[NKV] = { "layer_00/key", "layer_00/value", "layer_01/key", "layer_01/value", "mask" };
static const genie_dtype_t kv_dt[NKV] = { GENIE_F32, GENIE_F16, GENIE_I64, GENIE_BF16, GENIE_BOOL };
static uint8_t kv_data[2][NKV][2 * 3 * 7 * 8];      /* (2, 3, 7, elsize) */
static int64_t tokens[2][2 * 8];
static int64_t lineage[2][3 * GENIE_CKPT_LINEAGE_COLS];
static uint8_t rngstate[2][24];

static void build(genie_ckpt_session_t *s, genie_ckpt_kv_t kv[NKV], int i)
{
    memset(s, 0, sizeof(*s));
    for (int t = 0; t < NKV; t++) {
        memset(&kv[t], 0, sizeof(kv[t]));
        snprintf(kv[t].name, sizeof(kv[t].name), "%s", kv_names[t]);
        kv[t].dtype = kv_dt[t];
        kv[t].ndim = 3;
        kv[t].shape[0] = 2;
        kv[t].shape[1] = 3;
        kv[t].shape[2] = 7;
        kv[t].data = kv_data[i][t];
    }
    s->id = 5 + (uint64_t)i;
    s->key = 99 + (uint64_t)i;
    s->model_fp = 7;
    s->prompt_len = 5;
    s->step = 3;
    s->batch = 2;
    s->n_tokens = 8;
    s->tokens = tokens[i];
    s->rng = i == 0 ? rngstate[i] : NULL;
    s->rng_len = i == 0 ? sizeof(rngstate[i]) : 0;
    s->lineage = lineage[i];
    s->n_lineage = i == 0 ? 3 : 2;
    s->n_kv = NKV;
    s->kv = kv;
}

/* The job every file here names (a rank file's job must be its manifest's). */
#define FUZZ_JOB "fuzz"

/* Epoch `epoch`: rank-0002.h5 with sessions 5 and 6, and its manifest. */
static uint64_t write_epoch(uint64_t epoch)
{
    genie_ckpt_session_t    s[2];
    genie_ckpt_kv_t         kv[2][NKV];
    genie_ckpt_rank_info_t  info = { .epoch = epoch, .rank = 2, .job = FUZZ_JOB };
    genie_ckpt_file_entry_t fe = { .rank = 2, .sessions = 2 };
    genie_ckpt_manifest_t   m = { .epoch = epoch, .job = FUZZ_JOB, .n_files = 1, .files = &fe };
    char                    dir[512], path[700];

    build(&s[0], kv[0], 0);
    build(&s[1], kv[1], 1);
    if (genie_ckpt_epoch_create(root, epoch) != GENIE_OK) {
        die("epoch_create", root);
    }
    epoch_dir(epoch, dir, sizeof(dir));
    genie_ckpt_rank_file_name(2, fe.name, sizeof(fe.name));
    snprintf(path, sizeof(path), "%s/%s", dir, fe.name);
    if (genie_ckpt_write_rank(path, &info, s, 2, &fe.bytes) != GENIE_OK ||
        genie_ckpt_write_manifest(root, &m) != GENIE_OK) {
        die("write a valid epoch", path);
    }
    return fe.bytes;
}

static void rewrite_manifest(uint64_t epoch, uint64_t bytes, uint32_t sessions)
{
    genie_ckpt_file_entry_t fe = { .rank = 2, .sessions = sessions, .bytes = bytes };
    genie_ckpt_manifest_t   m = { .epoch = epoch, .job = FUZZ_JOB, .n_files = 1, .files = &fe };

    snprintf(fe.name, sizeof(fe.name), "rank-0002.h5");
    if (genie_ckpt_write_manifest(root, &m) != GENIE_OK) {
        die("re-commit a manifest", genie_last_error());
    }
}

/* Every KV tensor of session i of the file reads back as written, except
 * `skip` (a name, or NULL). */
static void read_all_kv(const char *path, int i, const char *skip)
{
    genie_ckpt_file_t *f;
    int64_t            shape[3] = { 2, 3, 7 };
    uint8_t            buf[sizeof(kv_data[0][0])];

    if (genie_ckpt_file_open(path, &f) != GENIE_OK) {
        die("file_open of an intact file", path);
    }
    for (int t = 0; t < NKV; t++) {
        uint64_t n = 42 * genie_dtype_size(kv_dt[t]);
        if (skip != NULL && strcmp(skip, kv_names[t]) == 0) {
            continue;
        }
        if (genie_ckpt_file_read_kv(f, 5 + (uint64_t)i, kv_names[t], kv_dt[t], 3, shape, buf, n) != GENIE_OK ||
            memcmp(buf, kv_data[i][t], n) != 0) {
            die("an intact KV tensor did not read back", kv_names[t]);
        }
    }
    genie_ckpt_file_close(f);
}

/* ---- (a) changed chunk bytes -------------------------------------------------------- */

typedef struct chunk {
    char     dpath[96];        /* /sessions/5/kv/layer_00/key */
    int      session;          /* 0 or 1 */
    int      kv;               /* KV index, or -1 for tokens/lineage/rng */
    uint64_t addr, size;       /* stored chunk: data + 4 checksum bytes */
} chunk_t;

static chunk_t chunks[64];
static int     n_chunks;

static void find_chunks(const char *path)
{
    static const char *meta[3] = { "tokens", "lineage", "rng" };
    hid_t              f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);

    if (f < 0) {
        die("open the template", path);
    }
    n_chunks = 0;
    for (int i = 0; i < 2; i++) {
        for (int k = -3; k < NKV; k++) {
            chunk_t *c = &chunks[n_chunks];
            hid_t    d, sp;
            hsize_t  off[8], size = 0;
            haddr_t  addr = 0;
            unsigned mask;

            if (k < 0) {
                snprintf(c->dpath, sizeof(c->dpath), "/sessions/%d/%s", 5 + i, meta[k + 3]);
            } else {
                snprintf(c->dpath, sizeof(c->dpath), "/sessions/%d/kv/%s", 5 + i, kv_names[k]);
            }
            if ((d = H5Dopen2(f, c->dpath, H5P_DEFAULT)) < 0) {
                continue;                          /* session 6 has no rng */
            }
            sp = H5Dget_space(d);
            if (H5Dget_chunk_info(d, sp, 0, off, &mask, &addr, &size) < 0 || size < 5) {
                die("chunk info", c->dpath);
            }
            H5Sclose(sp);
            H5Dclose(d);
            c->session = i;
            c->kv = k < 0 ? -1 : k;
            c->addr = addr;
            c->size = size;
            n_chunks++;
        }
    }
    H5Fclose(f);
}

/* Change bytes of one chunk in place; returns 1 if any byte changed, with
 * the original bytes in orig[0..*len) at *off.  -1: skipped (the change
 * would alias 0x0000 and 0xffff). */
static int mutate(int fd, const chunk_t *c, uint64_t *off, uint8_t *orig, size_t *len)
{
    uint8_t  now[4];
    uint64_t rel;
    size_t   n;

    if (below(8) == 0) {
        rel = c->size - 4 + below(4);             /* the stored checksum */
        n = 1 + (size_t)below(c->size - rel);
    } else {
        rel = below(c->size - 4);                 /* the data */
        n = below(2) ? 1 : 1 + (size_t)below(rel % 2 ? 3 : 4);   /* within two adjacent words */
        if (rel + n > c->size - 4) {
            n = (size_t)(c->size - 4 - rel);
        }
    }
    *off = c->addr + rel;
    *len = n;
    if (pread(fd, orig, n, (off_t)*off) != (ssize_t)n) {
        die("pread", c->dpath);
    }
    memcpy(now, orig, n);
    if (rel >= c->size - 4) {
        /* HDF5 also accepts the checksum with each 16-bit half's bytes
         * swapped (what HDF5 before 1.6.3 wrote): never change it into that */
        uint8_t old[4], swapped[4], nw[4];
        if (pread(fd, old, 4, (off_t)(c->addr + c->size - 4)) != 4) {
            die("pread", c->dpath);
        }
        for (size_t i = 0; i < n; i++) {
            now[i] = (uint8_t)(orig[i] ^ (1 + below(255)));
        }
        memcpy(nw, old, 4);
        memcpy(nw + (rel - (c->size - 4)), now, n);
        swapped[0] = old[1];
        swapped[1] = old[0];
        swapped[2] = old[3];
        swapped[3] = old[2];
        if (memcmp(nw, swapped, 4) == 0) {
            return -1;
        }
    } else if (n == 1 && below(2)) {
        now[0] ^= (uint8_t)(1 + below(255));      /* always a change */
    } else {
        for (size_t i = 0; i < n; i++) {
            now[i] = below(4) == 0 ? orig[i] : (uint8_t)next();
        }
    }
    if (rel < c->size - 4) {
        /* the 16-bit words touched (offsets relative to the chunk) */
        for (uint64_t w = rel / 2; w <= (rel + n - 1) / 2; w++) {
            uint8_t ob[2], nb[2];
            for (int j = 0; j < 2; j++) {
                uint64_t b = 2 * w + (uint64_t)j;
                ob[j] = nb[j] = 0;
                if (b < c->size - 4) {
                    if (pread(fd, &ob[j], 1, (off_t)(c->addr + b)) != 1) {
                        die("pread", c->dpath);
                    }
                    nb[j] = b >= rel && b < rel + n ? now[b - rel] : ob[j];
                }
            }
            int o = ob[0] << 8 | ob[1], v = nb[0] << 8 | nb[1];
            if ((o == 0 && v == 0xffff) || (o == 0xffff && v == 0)) {
                return -1;
            }
        }
    }
    if (pwrite(fd, now, n, (off_t)*off) != (ssize_t)n) {
        die("pwrite", c->dpath);
    }
    return memcmp(now, orig, n) != 0;
}

typedef struct verdict {
    int  bad;
    char dataset[128];
} verdict_t;

static void on_report(const char *file, const char *dataset, genie_status_t st, const char *msg, void *arg)
{
    verdict_t *v = arg;

    (void)file;
    (void)msg;
    if (st != GENIE_OK && v->bad++ == 0) {
        snprintf(v->dataset, sizeof(v->dataset), "%s", dataset);
    }
}

static void fuzz_chunk_bytes(const char *path)
{
    const chunk_t *c = &chunks[below((uint64_t)n_chunks)];
    uint64_t       off;
    uint8_t        orig[8];
    size_t         len;
    int            fd = open(path, O_RDWR), changed;
    genie_ckpt_t  *ck = NULL;
    genie_status_t st;
    char           dir[512];

    if (fd < 0) {
        die("open", path);
    }
    if ((changed = mutate(fd, c, &off, orig, &len)) < 0) {
        close(fd);
        return;
    }
    close(fd);
    epoch_dir(2, dir, sizeof(dir));
    if (c->kv >= 0) {
        genie_ckpt_file_t *f;
        int64_t            shape[3] = { 2, 3, 7 };
        uint8_t            buf[sizeof(kv_data[0][0])];
        uint64_t           n = 42 * genie_dtype_size(kv_dt[c->kv]);

        if (genie_ckpt_file_open(path, &f) != GENIE_OK) {
            die("file_open after a data change", path);
        }
        st = genie_ckpt_file_read_kv(f, 5 + (uint64_t)c->session, kv_names[c->kv], kv_dt[c->kv], 3, shape, buf, n);
        genie_ckpt_file_close(f);
        if (changed) {
            check_refusal(st, c->dpath);
            if (st != GENIE_ERR_CORRUPT || strstr(genie_last_error(), c->dpath) == NULL) {
                die("a changed chunk was not reported naming its dataset", c->dpath);
            }
        } else if (st != GENIE_OK || memcmp(buf, kv_data[c->session][c->kv], n) != 0) {
            die("an unchanged chunk did not read back", c->dpath);
        }
        read_all_kv(path, 1 - c->session, NULL);
        read_all_kv(path, c->session, kv_names[c->kv]);
    } else {
        st = genie_ckpt_open(root, 2, NULL, NULL, &ck);
        if (changed) {
            check_refusal(st, c->dpath);
            if (st != GENIE_ERR_CORRUPT || strstr(genie_last_error(), c->dpath) == NULL) {
                die("a changed metadata chunk was not reported naming its dataset", c->dpath);
            }
            if (genie_ckpt_open(root, 0, NULL, NULL, &ck) != GENIE_OK || ck->manifest.epoch != 1) {
                die("no fallback to the previous epoch", c->dpath);
            }
        } else if (st != GENIE_OK) {
            die("an unchanged epoch did not open", c->dpath);
        }
        genie_ckpt_close(ck);
    }
    if (below(4) == 0) {
        verdict_t v = { 0, "" };
        uint32_t  bad = 0;

        if (genie_ckpt_verify(dir, on_report, &v, &bad) != GENIE_OK || (uint32_t)v.bad != bad ||
            (changed ? bad != 1 || strcmp(v.dataset, c->dpath) != 0 : bad != 0)) {
            die("verify did not report exactly the changed dataset", c->dpath);
        }
    }
    n_detected += changed;
    n_noop += !changed;
    fd = open(path, O_RDWR);
    if (fd < 0 || pwrite(fd, orig, len, (off_t)off) != (ssize_t)len) {
        die("restore", path);
    }
    close(fd);
}

/* ---- (b) truncations ---------------------------------------------------------------- */

static uint8_t *slurp(const char *path, size_t *n_p)
{
    struct stat sb;
    uint8_t    *b;
    int         fd = open(path, O_RDONLY);

    if (fd < 0 || fstat(fd, &sb) != 0 || (b = malloc((size_t)sb.st_size + 1)) == NULL ||
        pread(fd, b, (size_t)sb.st_size, 0) != sb.st_size) {
        die("read a file", path);
    }
    close(fd);
    *n_p = (size_t)sb.st_size;
    return b;
}

static void put_file(const char *path, const uint8_t *b, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    if (fd < 0 || pwrite(fd, b, n, 0) != (ssize_t)n || close(fd) != 0) {
        die("write a file", path);
    }
}

static void fuzz_truncate(const char *rank_path, const uint8_t *rank_b, size_t rank_n, const char *man_path,
                          const uint8_t *man_b, size_t man_n)
{
    int                      rank = below(2) == 0;
    const char              *path = rank ? rank_path : man_path;
    size_t                   n = rank ? rank_n : man_n, cut = (size_t)below(n);
    genie_ckpt_t            *ck = NULL;
    genie_ckpt_epoch_info_t *eps = NULL;
    genie_ckpt_file_t       *f = NULL;
    uint32_t                 ne = 0, bad = 0;
    char                     dir[512];

    if (truncate(path, (off_t)cut) != 0) {
        die("truncate", path);
    }
    if (rank && below(2)) {
        rewrite_manifest(2, cut, 2);      /* the size check passes: the file itself must be refused */
    }
    check_refusal(genie_ckpt_open(root, 2, NULL, NULL, &ck), path);
    if (genie_ckpt_open(root, 0, NULL, NULL, &ck) != GENIE_OK || ck->manifest.epoch != 1) {
        die("no fallback past a truncated file", path);
    }
    genie_ckpt_close(ck);
    if (genie_ckpt_list(root, &eps, &ne) != GENIE_OK || ne != 2 || !eps[0].complete ||
        (!rank && eps[1].complete)) {
        die("list after a truncation", path);
    }
    free(eps);
    epoch_dir(2, dir, sizeof(dir));
    if (genie_ckpt_verify(dir, NULL, NULL, &bad) != GENIE_OK || bad == 0) {
        die("verify passed a truncated epoch", path);
    }
    if (rank) {
        genie_status_t st = genie_ckpt_file_open(rank_path, &f);
        if (st == GENIE_OK) {
            die("a truncated rank file opened", rank_path);
        }
        check_refusal(st, rank_path);
    }
    put_file(rank_path, rank_b, rank_n);
    put_file(man_path, man_b, man_n);
    n_trunc++;
}

/* ---- (c) hostile files ----------------------------------------------------------------- */

/* What a hostile rank file changes from the valid one (kind H_NONE). */
enum hostile {
    H_NONE, H_N_SESSIONS_HUGE, H_N_SESSIONS_MORE, H_NDIM_9, H_NDIM_32, H_DIMS_HUGE, H_TOKENS_BATCH,
    H_TOKENS_STEP, H_DTYPE_UNKNOWN, H_DTYPE_VLEN, H_DTYPE_OVERSIZED, H_FORMAT_UNTERMINATED, H_JOB_OVERSIZED,
    H_PHASE_CONTROL, H_NAME_DOTS, H_NAME_UPPER, H_NESTED, H_SESSION_NAME, H_ID_MISMATCH, H_SOFT_LINK,
    H_EXTERNAL_LINK, H_CONTIGUOUS, H_NO_FLETCHER, H_DEFLATE, H_TYPE_MISMATCH, H_N_KV_MORE, H_N_KV_HUGE,
    H_NO_KV_GROUP, H_BATCH_STRING, H_STEP_FLOAT, H_ID_ARRAY, H_RNG_EMPTY, H_LINEAGE_COLS, H_TOKENS_UNWRITTEN,
    H_KV_UNWRITTEN, H_VERSION, H_EPOCH, H_TOKENS_SCALAR, H_KV_DATASET, H_COLUMNS, H_BATCH_ZERO, H_PROMPT_ZERO,
    H_CREATED_NAN, H_NEGATIVE_RANK, H_CHUNK_UNFILTERED, H_CHUNK_SHORT, H_RANDOM, H_COUNT
};

/* Random edge values for H_RANDOM. */
static uint64_t edge(void)
{
    static const uint64_t v[] = { 0, 1, 2, 3, 5, 6, 7, 8, 0x7fffffff, 0x80000000ull, 0xffffffffull,
                                  1ull << 32, 1ull << 62, 0x7fffffffffffffffull, UINT64_MAX };
    return below(4) == 0 ? next() : v[below(sizeof(v) / sizeof(v[0]))];
}

static void a_put(hid_t obj, const char *name, hid_t type, const void *v)
{
    hid_t sp = H5Screate(H5S_SCALAR), a = H5Acreate2(obj, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);

    if (a < 0 || H5Awrite(a, type, v) < 0) {
        die("hostile attribute", name);
    }
    H5Aclose(a);
    H5Sclose(sp);
}

/* A fixed string attribute of `size` bytes holding v (not terminated when
 * size == strlen(v) and pad is NULLPAD). */
static void a_str(hid_t obj, const char *name, const char *v, size_t size, H5T_str_t pad)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    char *buf = calloc(1, size + 1);

    memcpy(buf, v, strlen(v) < size ? strlen(v) : size);
    H5Tset_size(t, size);
    H5Tset_strpad(t, pad);
    a_put(obj, name, t, buf);
    H5Tclose(t);
    free(buf);
}

static void a_text(hid_t obj, const char *name, const char *v)
{
    a_str(obj, name, v, strlen(v) + 1, H5T_STR_NULLTERM);
}

static void a_u64(hid_t obj, const char *name, uint64_t v)
{
    a_put(obj, name, H5T_STD_U64LE, &v);
}

static void a_u32(hid_t obj, const char *name, uint32_t v)
{
    a_put(obj, name, H5T_STD_U32LE, &v);
}

static void a_i32(hid_t obj, const char *name, int32_t v)
{
    a_put(obj, name, H5T_STD_I32LE, &v);
}

/* layout: 0 chunked + Fletcher32, 1 contiguous, 2 chunked without filter,
 * 3 chunked + deflate; data NULL: not written. */
static hid_t d_make(hid_t loc, const char *name, hid_t type, int nd, const hsize_t *dims, const void *data,
                    int layout)
{
    hsize_t chunk[32], maxd[32];
    hid_t   sp, dcpl = H5Pcreate(H5P_DATASET_CREATE), lcpl = H5Pcreate(H5P_LINK_CREATE), d;
    int     zero = 0;

    for (int i = 0; i < nd; i++) {
        chunk[i] = dims[i] == 0 ? 1 : dims[i] > 4096 ? 1 : dims[i];
        maxd[i] = dims[i] == 0 || dims[i] > (1ull << 32) ? H5S_UNLIMITED : dims[i];
        zero |= dims[i] == 0;
    }
    sp = nd == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(nd, dims, maxd);
    H5Pset_create_intermediate_group(lcpl, 1);
    if (nd > 0 && (layout != 1 || zero)) {
        H5Pset_chunk(dcpl, nd, chunk);
        if (layout == 0) {
            H5Pset_fletcher32(dcpl);
        } else if (layout == 3) {
            H5Pset_deflate(dcpl, 1);
        }
    }
    if ((d = H5Dcreate2(loc, name, type, sp, lcpl, dcpl, H5P_DEFAULT)) < 0) {
        die("hostile dataset", name);
    }
    if (data != NULL && !zero && H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        die("hostile dataset write", name);
    }
    H5Sclose(sp);
    H5Pclose(dcpl);
    H5Pclose(lcpl);
    return d;
}

static void d_put(hid_t loc, const char *name, hid_t type, int nd, const hsize_t *dims, const void *data, int layout)
{
    H5Dclose(d_make(loc, name, type, nd, dims, data, layout));
}

static hid_t kv_type(genie_dtype_t dt)
{
    switch (dt) {
    case GENIE_F32:  return H5T_IEEE_F32LE;
    case GENIE_I64:  return H5T_STD_I64LE;
    case GENIE_BOOL: return H5T_STD_U8LE;
    default:         return H5T_STD_U16LE;
    }
}

/* A rank file of epoch 3 written with the raw HDF5 API, valid but for
 * `kind`; returns how many sessions it says it holds (for the manifest). */
static uint32_t write_hostile(const char *path, int kind)
{
    hid_t    f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), g, s, kg, d;
    uint32_t n_sessions = 2;
    double   created = kind == H_CREATED_NAN ? NAN : 1700000000.0;
    int      r = kind == H_RANDOM ? (int)below(12) : -1;       /* which value H_RANDOM changes */

    if (f < 0) {
        die("create a hostile file", path);
    }
    if (kind == H_FORMAT_UNTERMINATED) {
        a_str(f, "format", "genie-checkpoint-rank", strlen("genie-checkpoint-rank"), H5T_STR_NULLPAD);
    } else {
        a_text(f, "format", "genie-checkpoint-rank");
    }
    a_i32(f, "version", kind == H_VERSION ? 2 : r == 0 ? (int32_t)edge() : 1);
    a_u64(f, "epoch", kind == H_EPOCH ? 4 : r == 1 ? edge() : 3);
    a_i32(f, "rank", kind == H_NEGATIVE_RANK ? -2 : 2);
    a_u32(f, "slice", 0);
    if (kind == H_PHASE_CONTROL) {
        a_text(f, "phase", "dec\node");
    } else {
        a_text(f, "phase", "decode");
    }
    if (kind == H_JOB_OVERSIZED) {
        char job[301];
        memset(job, 'j', 300);
        job[300] = '\0';
        a_text(f, "job", job);
    } else {
        a_text(f, "job", FUZZ_JOB);
    }
    a_put(f, "created", H5T_IEEE_F64LE, &created);
    a_u32(f, "n_sessions", kind == H_N_SESSIONS_HUGE ? 0xffffffffu : kind == H_N_SESSIONS_MORE ? 3
                           : r == 2 ? (uint32_t)edge() : 2);
    g = H5Gcreate2(f, "sessions", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    for (int i = 0; i < 2; i++) {
        char     name[40];
        uint64_t id = 5 + (uint64_t)i, L = 8;
        uint32_t batch = 2;
        hsize_t  dims[32];

        if (kind == H_SESSION_NAME && i == 1) {
            static const char *bad[] = { "0", "007", "-6", "abc", "18446744073709551616", "..", "6 " };
            snprintf(name, sizeof(name), "%s", bad[below(sizeof(bad) / sizeof(bad[0]))]);
        } else {
            snprintf(name, sizeof(name), "%llu", (unsigned long long)id);
        }
        if ((s = H5Gcreate2(g, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0) {
            die("a hostile session group", name);
        }
        if (kind == H_ID_ARRAY && i == 0) {
            hsize_t two = 2;
            uint64_t ids[2] = { id, id };
            hid_t    sp = H5Screate_simple(1, &two, NULL), a = H5Acreate2(s, "id", H5T_STD_U64LE, sp, H5P_DEFAULT,
                                                                          H5P_DEFAULT);
            H5Awrite(a, H5T_STD_U64LE, ids);
            H5Aclose(a);
            H5Sclose(sp);
        } else {
            a_u64(s, "id", kind == H_ID_MISMATCH && i == 1 ? 77 : r == 3 && i == 0 ? edge() : id);
        }
        a_u64(s, "key", 99 + id);
        a_u64(s, "model_fp", 7);
        if (kind == H_STEP_FLOAT && i == 0) {
            double st = 3.0;
            a_put(s, "step", H5T_IEEE_F64LE, &st);
        } else {
            a_u64(s, "step", kind == H_TOKENS_STEP && i == 0 ? 4 : r == 4 && i == 0 ? edge() : 3);
        }
        a_u64(s, "prompt_len", kind == H_PROMPT_ZERO && i == 0 ? 0 : r == 5 && i == 0 ? edge() : 5);
        if (kind == H_BATCH_STRING && i == 0) {
            a_text(s, "batch", "2");
        } else {
            a_u32(s, "batch", kind == H_BATCH_ZERO && i == 0 ? 0 : r == 6 && i == 0 ? (uint32_t)edge() : batch);
        }
        a_u32(s, "n_kv", kind == H_N_KV_MORE && i == 0 ? NKV + 1 : kind == H_N_KV_HUGE && i == 0 ? 0xffffffffu
                         : r == 7 && i == 0 ? (uint32_t)edge() : NKV);
        /* tokens */
        dims[0] = kind == H_TOKENS_BATCH && i == 0 ? 3 : batch;
        dims[1] = r == 8 && i == 0 ? (hsize_t)(edge() % (1ull << 40)) : L;
        if (kind == H_TOKENS_SCALAR && i == 0) {
            d_put(s, "tokens", H5T_STD_I64LE, 0, dims, tokens[i], 0);
        } else {
            int64_t big[3 * 8] = { 0 };
            memcpy(big, tokens[i], sizeof(tokens[i]));
            d_put(s, "tokens", H5T_STD_I64LE, 2, dims,
                  kind == H_TOKENS_UNWRITTEN && i == 0 ? NULL : dims[1] == L ? (const void *)big : NULL, 0);
        }
        /* lineage */
        dims[0] = i == 0 ? 3 : 2;
        dims[1] = kind == H_LINEAGE_COLS && i == 0 ? 7 : GENIE_CKPT_LINEAGE_COLS;
        if (r == 9 && i == 0) {
            dims[0] = (hsize_t)(edge() % (1ull << 40));
        }
        {
            int64_t buf[3 * 7] = { 0 };
            memcpy(buf, lineage[i], sizeof(lineage[i]));
            d = d_make(s, "lineage", H5T_STD_I64LE, 2, dims, dims[0] <= 3 ? (const void *)buf : NULL, 0);
            a_text(d, "columns", kind == H_COLUMNS && i == 0 ? "a,b,c,d,e,f" : "step,phase,input_start,input_len,srg_nodes,epoch");
            H5Dclose(d);
        }
        /* rng */
        if (i == 0) {
            dims[0] = kind == H_RNG_EMPTY ? 0 : r == 10 ? (hsize_t)(edge() % (1ull << 40)) : sizeof(rngstate[i]);
            d_put(s, "rng", H5T_STD_U8LE, 1, dims, dims[0] == sizeof(rngstate[i]) ? rngstate[i] : NULL, 0);
        }
        /* kv */
        if (kind == H_NO_KV_GROUP && i == 0) {
            H5Gclose(s);
            continue;
        }
        if (kind == H_KV_DATASET && i == 0) {
            dims[0] = 4;
            d_put(s, "kv", H5T_STD_I64LE, 1, dims, tokens[i], 0);
            H5Gclose(s);
            continue;
        }
        kg = H5Gcreate2(s, "kv", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        for (int t = 0; t < NKV; t++) {
            char        kname[80];
            hid_t       type = kv_type(kv_dt[t]);
            int         nd = 3, layout = 0;
            const void *data = kv_data[i][t];
            const char *dt = genie_dtype_name(kv_dt[t]);

            snprintf(kname, sizeof(kname), "%s", kv_names[t]);
            dims[0] = 2;
            dims[1] = 3;
            dims[2] = 7;
            if (i == 0 && t == 1) {                 /* the tensor a kind changes */
                switch (kind) {
                case H_NDIM_9:
                case H_NDIM_32:
                    nd = kind == H_NDIM_9 ? 9 : 32;
                    for (int j = 0; j < nd; j++) {
                        dims[j] = j < 3 ? dims[j] : 1;
                    }
                    break;
                case H_DIMS_HUGE:
                    dims[0] = 1ull << 62;
                    data = NULL;
                    break;
                case H_NAME_DOTS:
                    snprintf(kname, sizeof(kname), "la..er_00/value");
                    break;
                case H_NAME_UPPER:
                    snprintf(kname, sizeof(kname), "layer_00/Value");
                    break;
                case H_NESTED:
                    snprintf(kname, sizeof(kname), "layer_00/value/deeper");
                    break;
                case H_CONTIGUOUS:
                    layout = 1;
                    break;
                case H_NO_FLETCHER:
                    layout = 2;
                    break;
                case H_DEFLATE:
                    layout = 3;
                    break;
                case H_TYPE_MISMATCH:
                    type = H5T_IEEE_F32LE;          /* float16's data under a float32 type */
                    dims[2] = 7;
                    data = kv_data[i][0];
                    break;
                case H_KV_UNWRITTEN:
                case H_CHUNK_UNFILTERED:        /* written below, raw */
                case H_CHUNK_SHORT:
                    data = NULL;
                    break;
                default:
                    if (r == 11) {
                        dims[below(3)] = (hsize_t)(edge() % (1ull << 40));
                        data = dims[0] == 2 && dims[1] == 3 && dims[2] == 7 ? data : NULL;
                    }
                    break;
                }
            }
            if (kind == H_SOFT_LINK && i == 0 && t == 1) {
                H5Lcreate_soft("/sessions/5/kv/layer_00/key", kg, kname, H5P_DEFAULT, H5P_DEFAULT);
                continue;
            }
            if (kind == H_EXTERNAL_LINK && i == 0 && t == 1) {
                H5Lcreate_external("/etc/passwd", "/", kg, kname, H5P_DEFAULT, H5P_DEFAULT);
                continue;
            }
            d = d_make(kg, kname, type, nd, dims, data, layout);
            if (i == 0 && t == 1 && (kind == H_CHUNK_UNFILTERED || kind == H_CHUNK_SHORT)) {
                /* the one chunk stored as is: with the Fletcher32 marked as
                 * skipped, or without the 4 checksum bytes it should end in */
                hsize_t off[3] = { 0, 0, 0 };
                if (H5Dwrite_chunk(d, H5P_DEFAULT, kind == H_CHUNK_UNFILTERED ? 1u : 0u, off,
                                   sizeof(kv_data[i][t]), kv_data[i][t]) < 0) {
                    die("hostile raw chunk", kname);
                }
            }
            if (i == 0 && t == 1 && kind == H_DTYPE_UNKNOWN) {
                static const char *bad[] = { "float64", "", "FLOAT16", "float16 ", "invalid" };
                a_text(d, "dtype", bad[below(sizeof(bad) / sizeof(bad[0]))]);
            } else if (i == 0 && t == 1 && kind == H_DTYPE_VLEN) {
                hid_t       vt = H5Tcopy(H5T_C_S1);
                const char *v = "float16";
                H5Tset_size(vt, H5T_VARIABLE);
                a_put(d, "dtype", vt, &v);
                H5Tclose(vt);
            } else if (i == 0 && t == 1 && kind == H_DTYPE_OVERSIZED) {
                a_str(d, "dtype", "float16", 10000, H5T_STR_NULLTERM);
            } else {
                a_text(d, "dtype", dt);
            }
            H5Dclose(d);
        }
        H5Gclose(kg);
        H5Gclose(s);
    }
    H5Gclose(g);
    if (H5Fclose(f) < 0) {
        die("close a hostile file", path);
    }
    return n_sessions;
}

/* Hostile manifests of epoch 3 (rank-0002.h5 valid, written by write_hostile). */
enum hman {
    M_N_FILES_HUGE, M_FILE_DOTS, M_FILE_NAME, M_BYTES, M_SESSIONS_HUGE, M_FPS_HUGE, M_FPS_TYPE, M_NO_FILES,
    M_FORMAT, M_EPOCH, M_N_SESSIONS, M_FPS_CONTIGUOUS, M_REASON_OVERSIZED, M_COUNT
};

static void write_hostile_manifest(const char *path, int kind, uint64_t rank_bytes)
{
    hid_t   f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), g, e;
    double  created = 1700000000.0;
    hsize_t n = kind == M_FPS_HUGE ? 5000 : 1;
    uint64_t *fps = calloc(n, 8);

    a_text(f, "format", kind == M_FORMAT ? "genie-checkpoint-rank" : "genie-checkpoint-manifest");
    a_i32(f, "version", 1);
    a_u64(f, "epoch", kind == M_EPOCH ? 2 : 3);
    a_text(f, "job", FUZZ_JOB);
    a_text(f, "phases", "decode:1");
    if (kind == M_REASON_OVERSIZED) {
        a_text(f, "reason", "a reason much longer than the thirty-two bytes it may have");
    } else {
        a_text(f, "reason", "steps");
    }
    a_put(f, "created", H5T_IEEE_F64LE, &created);
    a_u32(f, "n_files", kind == M_N_FILES_HUGE ? 0xffffffffu : 1);
    a_u32(f, "n_sessions", kind == M_N_SESSIONS ? 3 : kind == M_SESSIONS_HUGE ? 0xffffffffu : 2);
    d_put(f, "model_fps", kind == M_FPS_TYPE ? H5T_IEEE_F64LE : H5T_STD_U64LE, 1, &n, fps,
          kind == M_FPS_CONTIGUOUS ? 1 : 0);
    free(fps);
    if (kind != M_NO_FILES) {
        g = H5Gcreate2(f, "files", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        e = H5Gcreate2(g, kind == M_FILE_DOTS ? ".." : kind == M_FILE_NAME ? "rank-00\n2.h5" : "rank-0002.h5",
                       H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        a_i32(e, "rank", 2);
        a_u64(e, "bytes", kind == M_BYTES ? rank_bytes + 1 : rank_bytes);
        a_u32(e, "sessions", kind == M_SESSIONS_HUGE ? 0xffffffffu : 2);
        H5Gclose(e);
        H5Gclose(g);
    }
    H5Fclose(f);
}

static void fuzz_hostile(int kind, int man_kind)
{
    char          dir[512], path[700], mpath[700];
    genie_ckpt_t *ck = NULL;
    genie_status_t st;
    struct stat   sb;
    uint32_t      bad = 0, n;

    if (genie_ckpt_epoch_create(root, 3) != GENIE_OK) {
        die("epoch 3", root);
    }
    epoch_dir(3, dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/rank-0002.h5", dir);
    snprintf(mpath, sizeof(mpath), "%s/manifest.h5", dir);
    n = write_hostile(path, man_kind >= 0 ? H_NONE : kind);
    if (stat(path, &sb) != 0) {
        die("stat", path);
    }
    if (man_kind >= 0) {
        write_hostile_manifest(mpath, man_kind, (uint64_t)sb.st_size);
    } else {
        rewrite_manifest(3, (uint64_t)sb.st_size, n);
    }
    st = genie_ckpt_open(root, 3, NULL, NULL, &ck);
    if (kind == H_NONE && man_kind < 0) {
        /* the generator's valid file: accepted, and reads back as written */
        if (st != GENIE_OK) {
            die("the valid raw-API file was refused", genie_last_error());
        }
        read_all_kv(path, 0, NULL);
        read_all_kv(path, 1, NULL);
    } else if ((kind == H_KV_UNWRITTEN || kind == H_CHUNK_UNFILTERED || kind == H_CHUNK_SHORT) && man_kind < 0) {
        /* the metadata is fine; the tensor without data (or without its
         * checksum) is refused when read */
        genie_ckpt_file_t *f;
        int64_t            shape[3] = { 2, 3, 7 };
        uint8_t            buf[sizeof(kv_data[0][0])];

        if (st != GENIE_OK || genie_ckpt_file_open(path, &f) != GENIE_OK) {
            die("a file with an unwritten tensor did not open", genie_last_error());
        }
        st = genie_ckpt_file_read_kv(f, 5, kv_names[1], kv_dt[1], 3, shape, buf, 42 * 2);
        genie_ckpt_file_close(f);
        check_refusal(st, "unwritten tensor");
        if (strstr(genie_last_error(), "/sessions/5/kv/layer_00/value") == NULL) {
            die("the unwritten tensor was not named", genie_last_error());
        }
        read_all_kv(path, 1, NULL);
    } else if (kind == H_RANDOM) {
        /* edge values that happen to be valid may be accepted: then the
         * epoch must read back exactly as written */
        if (st == GENIE_OK) {
            if (ck->n_sessions != 2 || ck->sessions[0].batch != 2 || ck->sessions[0].n_tokens != 8 ||
                memcmp(ck->sessions[0].tokens, tokens[0], sizeof(tokens[0])) != 0) {
                die("an accepted file does not read back as written", "H_RANDOM");
            }
            read_all_kv(path, 1, NULL);
            n_accepted++;
        } else {
            check_refusal(st, "H_RANDOM");
        }
    } else {
        char ctx[64];
        snprintf(ctx, sizeof(ctx), "hostile kind %d, manifest kind %d", kind, man_kind);
        check_refusal(st, ctx);
        if (strstr(genie_last_error(), man_kind >= 0 ? "manifest" : "rank-0002.h5") == NULL &&
            strstr(genie_last_error(), dir) == NULL) {
            die("a refusal that does not name the file", ctx);
        }
        if (st != GENIE_ERR_CORRUPT && st != GENIE_ERR_VERSION && st != GENIE_ERR_NOT_FOUND) {
            die("a refusal with an unexpected status", ctx);
        }
    }
    genie_ckpt_close(ck);
    ck = NULL;
    /* the newest complete epoch is 3 when it was accepted, else 1 or 2 */
    if (genie_ckpt_open(root, 0, NULL, NULL, &ck) != GENIE_OK) {
        die("no epoch opens next to a hostile one", genie_last_error());
    }
    genie_ckpt_close(ck);
    /* verify and list never crash; verify flags what open refused */
    if (genie_ckpt_verify(dir, NULL, NULL, &bad) != GENIE_OK) {
        die("verify failed outright", genie_last_error());
    }
    if (st != GENIE_OK && bad == 0) {
        die("verify passed what open refused", dir);
    }
    {
        genie_ckpt_epoch_info_t *eps = NULL;
        uint32_t                 ne = 0;
        if (genie_ckpt_list(root, &eps, &ne) != GENIE_OK) {
            die("list", root);
        }
        free(eps);
    }
    {
        genie_ckpt_file_t *f = NULL;
        if (genie_ckpt_file_open(path, &f) == GENIE_OK) {
            int64_t shape[3] = { 2, 3, 7 };
            uint8_t buf[sizeof(kv_data[0][0])];
            for (int t = 0; t < NKV; t++) {
                genie_ckpt_file_read_kv(f, 5, kv_names[t], kv_dt[t], 3, shape, buf, 42 * genie_dtype_size(kv_dt[t]));
            }
            genie_ckpt_file_close(f);
        }
    }
    unlink(path);
    unlink(mpath);
    rmdir(dir);
    n_hostile++;
}

int main(int argc, char **argv)
{
    uint64_t max_iters = argc > 1 ? strtoull(argv[1], NULL, 0) : 3000;
    double   max_s = argc > 2 ? strtod(argv[2], NULL) : 15.0, t0 = now_s();
    char     dir[512], rank_path[700], man_path[700], cmd[600];
    uint8_t *rank_b, *man_b;
    size_t   rank_n, man_n;
    uint64_t it;

    rng = argc > 3 ? strtoull(argv[3], NULL, 0) : rng;
    if (rng == 0) {
        rng = 1;
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    for (int i = 0; i < 2; i++) {
        for (int t = 0; t < NKV; t++) {
            for (size_t b = 0; b < sizeof(kv_data[i][t]); b++) {
                /* some zero words and 0xffff words, so that aliasing is exercised */
                kv_data[i][t][b] = kv_dt[t] == GENIE_BOOL ? (uint8_t)(next() & 1)
                                   : b % 16 < 4 ? 0 : b % 16 < 6 ? 0xff : (uint8_t)next();
            }
        }
        for (int k = 0; k < 16; k++) {
            tokens[i][k] = (int64_t)(next() % 50257);
        }
        for (int k = 0; k < 3 * GENIE_CKPT_LINEAGE_COLS; k++) {
            lineage[i][k] = k;
        }
        for (int k = 0; k < 24; k++) {
            rngstate[i][k] = (uint8_t)next();
        }
    }
    snprintf(root, sizeof(root), "/tmp/genie-fuzz-ckpt-XXXXXX");
    if (mkdtemp(root) == NULL) {
        die("mkdtemp", root);
    }
    write_epoch(1);
    write_epoch(2);
    epoch_dir(2, dir, sizeof(dir));
    snprintf(rank_path, sizeof(rank_path), "%s/rank-0002.h5", dir);
    snprintf(man_path, sizeof(man_path), "%s/manifest.h5", dir);
    find_chunks(rank_path);
    rank_b = slurp(rank_path, &rank_n);
    man_b = slurp(man_path, &man_n);

    /* (c) every hostile kind once, then at random below */
    for (int k = 0; k < H_COUNT; k++) {
        fuzz_hostile(k, -1);
    }
    for (int k = 0; k < M_COUNT; k++) {
        fuzz_hostile(H_NONE, k);
    }
    for (it = 0; it < max_iters && now_s() - t0 < max_s; it++) {
        uint64_t what = below(10);

        if (what < 6) {
            fuzz_chunk_bytes(rank_path);
        } else if (what < 8) {
            fuzz_truncate(rank_path, rank_b, rank_n, man_path, man_b, man_n);
        } else if (what < 9) {
            fuzz_hostile(H_RANDOM, -1);
        } else {
            fuzz_hostile((int)below(H_COUNT), below(4) == 0 ? (int)below(M_COUNT) : -1);
        }
    }
    free(rank_b);
    free(man_b);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    if (system(cmd) != 0) {
        die("cleanup", root);
    }
    printf("fuzz_ckpt: %llu iterations in %.1f s: %llu chunk changes detected, %llu no-ops read back, "
           "%llu truncations refused, %llu hostile files (%llu random ones accepted and read back); no crash, "
           "every refusal one line\n", (unsigned long long)it, now_s() - t0, (unsigned long long)n_detected,
           (unsigned long long)n_noop, (unsigned long long)n_trunc, (unsigned long long)n_hostile,
           (unsigned long long)n_accepted);
    return 0;
}

/*
 * Checked HDF5 helpers for the checkpoint library (ckpt_h5.h): library
 * set-up, error-stack reading, attributes, chunked Fletcher32 datasets and
 * their checks, name rules and fsync.  Nothing here records an error about
 * a file except the dataset check and read, which know the dataset's path;
 * the rest returns -1 and leaves the message to the caller.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
/* Messages and paths are cut at their buffer's size on purpose: a long
 * path must not turn a one-line report into an error of its own. */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#include "ckpt_h5.h"
#include "ckpt_int.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- library set-up and errors ---------------------------------------------- */

static pthread_once_t     h5_once = PTHREAD_ONCE_INIT;
static _Thread_local int  h5_quiet;

static void h5_open_once(void)
{
    H5open();
}

void ckpt_h5_init(void)
{
    pthread_once(&h5_once, h5_open_once);
    /* The library is built thread-safe on Debian/Ubuntu: each thread has
     * its own error stack, printing by default, so each thread turns its
     * own printing off once. */
    if (!h5_quiet) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        h5_quiet = 1;
    }
}

typedef struct reason_walk {
    char innermost[256];
    char sys[160];
    int  checksum;
} reason_walk_t;

static herr_t walk_reason(unsigned n, const H5E_error2_t *e, void *arg)
{
    reason_walk_t *w = arg;
    const char    *m;

    (void)n;
    if (e->desc == NULL) {
        return 0;
    }
    /* H5E_WALK_DOWNWARD: the API call first, the innermost function last */
    snprintf(w->innermost, sizeof(w->innermost), "%s", e->desc);
    /* The sec2 driver's messages carry strerror as "error message = '...'" */
    if (w->sys[0] == '\0' && (m = strstr(e->desc, "error message = '")) != NULL) {
        const char *s = m + strlen("error message = '"), *end = strchr(s, '\'');
        size_t      len = end != NULL ? (size_t)(end - s) : strlen(s);
        snprintf(w->sys, sizeof(w->sys), "%.*s", (int)(len < 150 ? len : 150), s);
    }
    if ((e->maj_num == H5E_STORAGE && e->min_num == H5E_READERROR &&
         strstr(e->desc, "Fletcher32") != NULL) ||
        strstr(e->desc, "Fletcher32 checksum") != NULL) {
        w->checksum = 1;
    }
    return 0;
}

const char *ckpt_h5_reason(char *out, size_t cap, int *sys_p)
{
    reason_walk_t w;

    memset(&w, 0, sizeof(w));
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk_reason, &w);
    H5Eclear2(H5E_DEFAULT);
    if (sys_p != NULL) {
        *sys_p = w.sys[0] != '\0';
    }
    snprintf(out, cap, "%s", w.sys[0] != '\0' ? w.sys : w.innermost[0] != '\0' ? w.innermost
                                                                              : "HDF5 call failed");
    genie_one_line(out);
    return out;
}

int ckpt_h5_is_checksum_error(void)
{
    reason_walk_t w;

    memset(&w, 0, sizeof(w));
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk_reason, &w);
    return w.checksum;
}

/* ---- attributes -------------------------------------------------------------------- */

int ckpt_attr_put(hid_t obj, const char *name, hid_t type, const void *v)
{
    hid_t sp = H5Screate(H5S_SCALAR), a = -1;
    int   rc = -1;

    if (sp >= 0 && (a = H5Acreate2(obj, name, type, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0) {
        rc = H5Awrite(a, type, v) < 0 ? -1 : 0;
    }
    if (a >= 0 && H5Aclose(a) < 0) {
        rc = -1;
    }
    if (sp >= 0) {
        H5Sclose(sp);
    }
    return rc;
}

int ckpt_attr_put_str(hid_t obj, const char *name, const char *v, size_t cap)
{
    size_t n = strnlen(v, cap);
    char  *tmp = malloc(n + 1);
    hid_t  t = -1;
    int    rc = -1;

    if (tmp == NULL) {
        return -1;
    }
    memcpy(tmp, v, n);
    tmp[n] = '\0';
    if ((t = H5Tcopy(H5T_C_S1)) >= 0 && H5Tset_size(t, n + 1) >= 0 &&
        H5Tset_strpad(t, H5T_STR_NULLTERM) >= 0) {
        rc = ckpt_attr_put(obj, name, t, tmp);
    }
    if (t >= 0) {
        H5Tclose(t);
    }
    free(tmp);
    return rc;
}

/* Open attribute `name` if it exists and holds one value. */
static hid_t attr_open_scalar(hid_t obj, const char *name, hid_t *type_p)
{
    hid_t a, sp = -1, t = -1;
    int   ok = 0;

    if (H5Aexists(obj, name) <= 0 || (a = H5Aopen(obj, name, H5P_DEFAULT)) < 0) {
        H5Eclear2(H5E_DEFAULT);
        return -1;
    }
    if ((sp = H5Aget_space(a)) >= 0 && (t = H5Aget_type(a)) >= 0) {
        H5S_class_t c = H5Sget_simple_extent_type(sp);
        ok = c == H5S_SCALAR || (c == H5S_SIMPLE && H5Sget_simple_extent_npoints(sp) == 1);
    }
    if (sp >= 0) {
        H5Sclose(sp);
    }
    if (!ok) {
        if (t >= 0) {
            H5Tclose(t);
        }
        H5Aclose(a);
        H5Eclear2(H5E_DEFAULT);
        return -1;
    }
    *type_p = t;
    return a;
}

/* Any integer attribute as a signed or unsigned 64-bit value (exact). */
static int attr_get_wide(hid_t obj, const char *name, int *neg_p, uint64_t *u_p)
{
    hid_t t, a = attr_open_scalar(obj, name, &t);
    int   rc = -1;

    if (a < 0) {
        return -1;
    }
    if (H5Tget_class(t) == H5T_INTEGER && H5Tget_size(t) >= 1 && H5Tget_size(t) <= 8) {
        if (H5Tget_sign(t) == H5T_SGN_2) {
            int64_t s;
            if (H5Aread(a, H5T_NATIVE_INT64, &s) >= 0) {
                *neg_p = s < 0;
                *u_p   = s < 0 ? (uint64_t)(-(s + 1)) + 1 : (uint64_t)s;
                rc = 0;
            }
        } else if (H5Aread(a, H5T_NATIVE_UINT64, u_p) >= 0) {
            *neg_p = 0;
            rc = 0;
        }
    }
    H5Tclose(t);
    H5Aclose(a);
    H5Eclear2(H5E_DEFAULT);
    return rc;
}

int ckpt_attr_get_u64(hid_t obj, const char *name, uint64_t *v)
{
    uint64_t u;
    int      neg;

    if (attr_get_wide(obj, name, &neg, &u) < 0 || neg) {
        return -1;
    }
    *v = u;
    return 0;
}

int ckpt_attr_get_u32(hid_t obj, const char *name, uint32_t *v)
{
    uint64_t u;
    int      neg;

    if (attr_get_wide(obj, name, &neg, &u) < 0 || neg || u > UINT32_MAX) {
        return -1;
    }
    *v = (uint32_t)u;
    return 0;
}

int ckpt_attr_get_i32(hid_t obj, const char *name, int32_t *v)
{
    uint64_t u;
    int      neg;

    if (attr_get_wide(obj, name, &neg, &u) < 0 || u > (neg ? (uint64_t)INT32_MAX + 1 : INT32_MAX)) {
        return -1;
    }
    *v = neg ? (int32_t)(-(int64_t)u) : (int32_t)u;
    return 0;
}

int ckpt_attr_get_f64(hid_t obj, const char *name, double *v)
{
    hid_t  t, a = attr_open_scalar(obj, name, &t);
    double d = 0;
    int    rc = -1;

    if (a < 0) {
        return -1;
    }
    if (H5Tget_class(t) == H5T_FLOAT && H5Tget_size(t) <= 8 && H5Aread(a, H5T_NATIVE_DOUBLE, &d) >= 0 &&
        isfinite(d)) {
        *v = d;
        rc = 0;
    }
    H5Tclose(t);
    H5Aclose(a);
    H5Eclear2(H5E_DEFAULT);
    return rc;
}

int ckpt_attr_get_str(hid_t obj, const char *name, char *out, size_t cap)
{
    hid_t  t, a = attr_open_scalar(obj, name, &t);
    size_t n = 0;
    char  *tmp = NULL;
    int    rc = -1;

    if (a < 0) {
        return -1;
    }
    /* The file's own type is the memory type: the bytes come as stored,
     * and the terminator is checked here rather than added by a conversion. */
    if (H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) == 0 && (n = H5Tget_size(t)) >= 1 &&
        n <= cap && (tmp = calloc(1, n + 1)) != NULL && H5Aread(a, t, tmp) >= 0 &&
        memchr(tmp, '\0', n) != NULL) {
        rc = 0;
        for (size_t i = 0; tmp[i] != '\0'; i++) {
            if ((unsigned char)tmp[i] < 0x20 || tmp[i] == 0x7f) {
                rc = -1;                  /* control bytes never reach a message */
            }
        }
        if (rc == 0) {
            memcpy(out, tmp, strlen(tmp) + 1);
        }
    }
    free(tmp);
    H5Tclose(t);
    H5Aclose(a);
    H5Eclear2(H5E_DEFAULT);
    return rc;
}

/* ---- datasets ---------------------------------------------------------------------- */

void ckpt_chunk_dims(int nd, const hsize_t *dims, size_t elsize, hsize_t *chunk)
{
    uint64_t bytes = elsize;

    for (int i = 0; i < nd; i++) {
        chunk[i] = dims[i] > 0 ? dims[i] : 1;
        bytes *= chunk[i];
    }
    /* Walk the dims from the outermost: split the first one whose slices
     * (everything inside it) fit a chunk into equal pieces; a dim whose
     * single slice is still too big is cut to 1 and the walk goes on. */
    for (int i = 0; i < nd && bytes > CKPT_CHUNK_BYTES; i++) {
        uint64_t inner = bytes / chunk[i], n;

        if (inner > CKPT_CHUNK_BYTES) {
            chunk[i] = 1;
            bytes = inner;
            continue;
        }
        n = (chunk[i] * inner + CKPT_CHUNK_BYTES - 1) / CKPT_CHUNK_BYTES;
        while ((chunk[i] + n - 1) / n * inner > CKPT_CHUNK_BYTES) {
            n++;
        }
        chunk[i] = (chunk[i] + n - 1) / n;
        bytes = chunk[i] * inner;
    }
}

hid_t ckpt_dset_create(hid_t loc, const char *name, hid_t type, int nd, const hsize_t *dims,
                       const void *data)
{
    hsize_t chunk[GENIE_MAX_DIMS], maxd[GENIE_MAX_DIMS];
    hid_t   sp = -1, dcpl = -1, lcpl = -1, d = -1;
    size_t  elsize = H5Tget_size(type);
    int     empty = 0;

    if (nd < 1 || nd > GENIE_MAX_DIMS || elsize == 0) {
        return -1;
    }
    for (int i = 0; i < nd; i++) {
        /* a zero extent needs an extendible dim (HDF5 refuses a chunked
         * dataset whose fixed extent is 0) */
        maxd[i] = dims[i] > 0 ? dims[i] : H5S_UNLIMITED;
        empty |= dims[i] == 0;
    }
    ckpt_chunk_dims(nd, dims, elsize, chunk);
    if ((sp = H5Screate_simple(nd, dims, maxd)) < 0 || (dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0 ||
        (lcpl = H5Pcreate(H5P_LINK_CREATE)) < 0 || H5Pset_chunk(dcpl, nd, chunk) < 0 ||
        H5Pset_fletcher32(dcpl) < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0) {
        goto out;
    }
    if ((d = H5Dcreate2(loc, name, type, sp, lcpl, dcpl, H5P_DEFAULT)) < 0) {
        goto out;
    }
    /* One call for the whole buffer: HDF5 cuts it into chunks itself, the
     * memory type is the file type (no conversion buffer). */
    if (!empty && (data == NULL || H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)) {
        H5Dclose(d);
        d = -1;
    }
out:
    if (sp >= 0) {
        H5Sclose(sp);
    }
    if (dcpl >= 0) {
        H5Pclose(dcpl);
    }
    if (lcpl >= 0) {
        H5Pclose(lcpl);
    }
    return d;
}

/* ---- direct chunk writes -------------------------------------------------------- */

void ckpt_stage_free(ckpt_stage_t *st)
{
    free(st->buf);
    st->buf = NULL;
    st->cap = 0;
}

/* Fletcher32 over blocks of F32_BLK words: per block s = sum of the words
 * and t = sum of (F32_BLK - k) * word k, so that the running sums (a, b)
 * advance as b += F32_BLK * a + t, a += s.  With F32_BLK = 256 both fit 32
 * bits (t < 256 * 256 * 2^16), and the loop has no carried dependency, so
 * the compiler vectorizes it; with GCC on x86-64 an AVX2 clone is chosen at
 * load time where the CPU has it (about 20 GB/s against HDF5's 2-3). */
#define F32_BLK 256

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
__attribute__((target_clones("avx2", "default"), optimize("O3")))
#endif
static void f32_block(const uint8_t *p, uint32_t *s_p, uint32_t *t_p)
{
    uint32_t s = 0, t = 0;

    for (int k = 0; k < F32_BLK; k++) {
        uint16_t v;
        memcpy(&v, p + 2 * k, 2);
        uint32_t w = (uint32_t)(uint16_t)(v << 8 | v >> 8);    /* big-endian word */
        s += w;
        t += (uint32_t)(F32_BLK - k) * w;
    }
    *s_p = s;
    *t_p = t;
}

uint32_t ckpt_fletcher32(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t       words = len / 2, nb = words / F32_BLK, A = 0, B = 0, a = 0, b = 0, n = 0;
    int            nonzero = 0;

    /* (a, b): exact sums over the last n words, folded into (A, B) mod 65535
     * every 2^20 words, before b could pass 2^64: (A, B) then (a, b) over n
     * words is (A + a, B + n * A + b). */
    for (uint64_t i = 0; i < nb; i++) {
        uint32_t s, t;

        f32_block(p, &s, &t);
        b += (uint64_t)F32_BLK * a + t;
        a += s;
        n += F32_BLK;
        p += 2 * F32_BLK;
        if (n >= (1u << 20)) {
            nonzero |= a != 0;
            B = (B + (n % 65535) * A + b % 65535) % 65535;
            A = (A + a % 65535) % 65535;
            a = b = n = 0;
        }
    }
    for (uint64_t i = nb * F32_BLK; i < words; i++, p += 2) {
        a += (uint64_t)p[0] << 8 | p[1];
        b += a;
        n++;
    }
    if (len % 2) {                   /* an odd last byte is the high byte of a word */
        a += (uint64_t)p[0] << 8;
        b += a;
        n++;
    }
    nonzero |= a != 0;
    B = (B + (n % 65535) * A + b % 65535) % 65535;
    A = (A + a % 65535) % 65535;
    /* HDF5 keeps a non-zero sum that is a multiple of 65535 as 0xffff, and
     * the sums of nothing but zero words as 0 */
    if (!nonzero) {
        return 0;
    }
    return (uint32_t)((B == 0 ? 0xffff : B) << 16 | (A == 0 ? 0xffff : A));
}

/* Copy between a dataset's data (dims, row-major) and the chunk at `pos`
 * (element offsets, chunk dims `chunk`) laid out as a full chunk: into the
 * chunk (into_chunk = 1; what lies past the dataset's end is zeroed, as
 * HDF5 stores an edge chunk whole) or back out of it (0; only the part
 * inside the dataset is copied). */
static void chunk_copy(int nd, const hsize_t *dims, const hsize_t *chunk, const hsize_t *pos, size_t elsize,
                       uint8_t *data, uint8_t *cbuf, int into_chunk)
{
    hsize_t count[GENIE_MAX_DIMS] = { 0 }, idx[GENIE_MAX_DIMS] = { 0 }, cbytes = elsize;
    int     whole = 1, inner_full = 1;

    for (int i = 0; i < nd; i++) {
        count[i] = dims[i] - pos[i] < chunk[i] ? dims[i] - pos[i] : chunk[i];
        whole &= count[i] == chunk[i];
        inner_full &= i == 0 || chunk[i] == dims[i];
        cbytes *= chunk[i];
    }
    if (inner_full) {
        /* split along dim 0 only: the chunk is one contiguous run */
        size_t row = elsize;
        for (int i = 1; i < nd; i++) {
            row *= dims[i];
        }
        if (!into_chunk) {
            memcpy(data + pos[0] * row, cbuf, count[0] * row);
            return;
        }
        memcpy(cbuf, data + pos[0] * row, count[0] * row);
        if (!whole) {
            memset(cbuf + count[0] * row, 0, cbytes - count[0] * row);
        }
        return;
    }
    if (into_chunk && !whole) {
        memset(cbuf, 0, cbytes);
    }
    for (;;) {
        /* one run along the last dim, at chunk-local index idx[0..nd-2] */
        hsize_t src = 0, dst = 0;
        int     i;

        for (i = 0; i < nd; i++) {
            src = src * dims[i] + pos[i] + (i < nd - 1 ? idx[i] : 0);
            dst = dst * chunk[i] + (i < nd - 1 ? idx[i] : 0);
        }
        if (into_chunk) {
            memcpy(cbuf + dst * elsize, data + src * elsize, count[nd - 1] * elsize);
        } else {
            memcpy(data + src * elsize, cbuf + dst * elsize, count[nd - 1] * elsize);
        }
        for (i = nd - 2; i >= 0; i--) {
            if (++idx[i] < count[i]) {
                break;
            }
            idx[i] = 0;
        }
        if (i < 0) {
            break;
        }
    }
}

/* Grow the stage to hold `bytes` (CKPT_DIRECT_ALIGN-aligned). */
static int stage_reserve(ckpt_stage_t *stage, size_t bytes)
{
    void *nb = NULL;

    if (stage->cap >= bytes) {
        return 0;
    }
    if (posix_memalign(&nb, CKPT_DIRECT_ALIGN, bytes) != 0) {
        return -1;
    }
    free(stage->buf);
    stage->buf = nb;
    stage->cap = bytes;
    return 0;
}

hid_t ckpt_dset_create_direct(hid_t loc, const char *name, hid_t type, int nd, const hsize_t *dims,
                              const void *data, ckpt_stage_t *stage)
{
    hsize_t chunk[GENIE_MAX_DIMS], pos[GENIE_MAX_DIMS] = { 0 };
    hid_t   sp = -1, dcpl = -1, lcpl = -1, d = -1;
    size_t  elsize = H5Tget_size(type), cbytes;

    if (nd < 1 || nd > GENIE_MAX_DIMS || elsize == 0 || data == NULL) {
        return -1;
    }
    for (int i = 0; i < nd; i++) {
        if (dims[i] == 0) {
            return -1;
        }
    }
    ckpt_chunk_dims(nd, dims, elsize, chunk);
    cbytes = elsize;
    for (int i = 0; i < nd; i++) {
        cbytes *= chunk[i];
    }
    if (stage_reserve(stage, cbytes + 4) != 0) {
        return -1;
    }
    if ((sp = H5Screate_simple(nd, dims, NULL)) < 0 || (dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0 ||
        (lcpl = H5Pcreate(H5P_LINK_CREATE)) < 0 || H5Pset_chunk(dcpl, nd, chunk) < 0 ||
        H5Pset_fletcher32(dcpl) < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0) {
        goto out;
    }
    if ((d = H5Dcreate2(loc, name, type, sp, lcpl, dcpl, H5P_DEFAULT)) < 0) {
        goto out;
    }
    for (;;) {
        uint32_t sum;

        chunk_copy(nd, dims, chunk, pos, elsize, (uint8_t *)data, stage->buf, 1);
        sum = ckpt_fletcher32(stage->buf, cbytes);
        for (int b = 0; b < 4; b++) {
            stage->buf[cbytes + b] = (uint8_t)(sum >> (8 * b));     /* little-endian, as HDF5 stores it */
        }
        if (H5Dwrite_chunk(d, H5P_DEFAULT, 0, pos, cbytes + 4, stage->buf) < 0) {
            H5Dclose(d);
            d = -1;
            break;
        }
        if (!ckpt_next_chunk(nd, dims, chunk, pos)) {
            break;
        }
    }
out:
    if (sp >= 0) {
        H5Sclose(sp);
    }
    if (dcpl >= 0) {
        H5Pclose(dcpl);
    }
    if (lcpl >= 0) {
        H5Pclose(lcpl);
    }
    return d;
}

/* Layout and filter checks of ckpt_dset_check; NULL when they pass. */
/* Every chunk stored with its checksum: a writer may mark a filter as
 * skipped for one chunk (H5Dwrite_chunk's filter mask), and HDF5 then reads
 * that chunk unchecked; the format does not allow it.  Stored size =
 * cbytes + 4 (the chunk and its Fletcher32). */
static const char *check_chunks(hid_t d, int nd, const hsize_t *dims, const hsize_t *chunk, uint64_t cbytes)
{
    hsize_t pos[H5S_MAX_RANK] = { 0 };

    do {
        unsigned mask = 0;
        haddr_t  addr = HADDR_UNDEF;
        hsize_t  size = 0;

        if (H5Dget_chunk_info_by_coord(d, pos, &mask, &addr, &size) < 0 || addr == HADDR_UNDEF) {
            return "is missing chunks of its data";
        }
        if (mask != 0) {
            return "has a chunk stored without its Fletcher32 checksum";
        }
        if (size != cbytes + 4) {
            return "has a chunk whose stored size is not its data and a Fletcher32 checksum";
        }
    } while (ckpt_next_chunk(nd, dims, chunk, pos));
    return NULL;
}

static const char *check_layout(hid_t d, int nd, const hsize_t *dims, size_t elsize, int data)
{
    hid_t        dcpl = H5Dget_create_plist(d), sp;
    hsize_t      chunk[H5S_MAX_RANK];
    unsigned     flags = 0, cd[8];
    size_t       ncd = 8;
    uint64_t     bytes = elsize, total = elsize, expect = 1;
    hsize_t      nchunks = 0;
    const char  *bad = NULL;

    if (dcpl < 0) {
        return "has no creation properties";
    }
    if (H5Pget_layout(dcpl) != H5D_CHUNKED || H5Pget_chunk(dcpl, H5S_MAX_RANK, chunk) != nd) {
        bad = "is not chunked (every dataset carries a Fletcher32 checksum per chunk)";
    } else if (H5Pget_nfilters(dcpl) != 1 ||
               H5Pget_filter2(dcpl, 0, &flags, &ncd, cd, 0, NULL, NULL) != H5Z_FILTER_FLETCHER32) {
        bad = "does not have exactly the Fletcher32 filter";
    }
    for (int i = 0; bad == NULL && i < nd; i++) {
        if (chunk[i] < 1 || chunk[i] > CKPT_MAX_CHUNK_BYTES || (bytes *= chunk[i]) > CKPT_MAX_CHUNK_BYTES) {
            bad = "has a bad chunk size";
        }
    }
    for (int i = 0; bad == NULL && data && i < nd; i++) {
        if (total > 0 && dims[i] > (1ULL << 62) / total) {
            bad = "is too large";
        } else {
            total *= dims[i];
            expect *= (dims[i] + chunk[i] - 1) / chunk[i];
        }
    }
    if (bad == NULL && data && total > 0) {
        if ((sp = H5Dget_space(d)) < 0 || H5Dget_num_chunks(d, sp, &nchunks) < 0 || nchunks != expect) {
            bad = "is missing chunks of its data";
        } else if (H5Dget_storage_size(d) < total) {
            bad = "stores fewer bytes than its shape needs";
        } else {
            bad = check_chunks(d, nd, dims, chunk, bytes);
        }
        if (sp >= 0) {
            H5Sclose(sp);
        }
    }
    H5Pclose(dcpl);
    H5Eclear2(H5E_DEFAULT);
    return bad;
}

genie_status_t ckpt_dset_check(hid_t d, const char *file, const char *dpath, hid_t type, int min_nd,
                               int max_nd, int data, hsize_t *dims, int *nd_p)
{
    hid_t       t = H5Dget_type(d), sp = H5Dget_space(d);
    const char *bad = NULL;
    size_t      elsize = 0;
    int         nd = -1;

    if (t < 0 || sp < 0) {
        bad = "cannot be inspected";
    } else if (type >= 0 ? H5Tequal(t, type) <= 0
                         : !((H5Tget_class(t) == H5T_INTEGER || H5Tget_class(t) == H5T_FLOAT) &&
                             H5Tget_size(t) >= 1 && H5Tget_size(t) <= 8)) {
        bad = "has an unexpected element type";
    } else if (H5Sget_simple_extent_type(sp) != H5S_SIMPLE ||
               (nd = H5Sget_simple_extent_ndims(sp)) < min_nd || nd > max_nd) {
        bad = "has an unexpected number of dimensions";
    } else {
        elsize = H5Tget_size(t);
        H5Sget_simple_extent_dims(sp, dims, NULL);
        bad = check_layout(d, nd, dims, elsize, data);
    }
    if (t >= 0) {
        H5Tclose(t);
    }
    if (sp >= 0) {
        H5Sclose(sp);
    }
    H5Eclear2(H5E_DEFAULT);
    if (bad != NULL) {
        return genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: dataset %s %s", file, dpath, bad);
    }
    *nd_p = nd;
    return GENIE_OK;
}

genie_status_t ckpt_dset_read(hid_t d, const char *file, const char *dpath, hid_t memtype, void *buf,
                              uint64_t nbytes)
{
    hid_t    sp = H5Dget_space(d);
    hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    char     why[256];
    int      sys = 0;

    if (sp >= 0) {
        H5Sclose(sp);
    }
    if (n < 0 || (uint64_t)n * H5Tget_size(memtype) != nbytes) {
        H5Eclear2(H5E_DEFAULT);
        return genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: dataset %s does not have the "
                               "expected size", file, dpath);
    }
    if (nbytes == 0) {
        return GENIE_OK;
    }
    if (H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        if (ckpt_h5_is_checksum_error()) {
            H5Eclear2(H5E_DEFAULT);
            return genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: dataset %s failed its "
                                   "Fletcher32 checksum", file, dpath);
        }
        ckpt_h5_reason(why, sizeof(why), &sys);
        return genie_set_error(sys ? GENIE_ERR_IO : GENIE_ERR_CORRUPT, "genie: checkpoint %s: could not "
                               "read dataset %s: %s", file, dpath, why);
    }
    return GENIE_OK;
}

/* HDF5's reader also accepts a Fletcher32 whose 16-bit halves have their
 * two bytes swapped (what HDF5 wrote before 1.6.3); so does this one. */
static int fletcher_matches(uint32_t stored, uint32_t sum)
{
    return stored == sum || stored == ((sum & 0x00ff00ffu) << 8 | (sum & 0xff00ff00u) >> 8);
}

genie_status_t ckpt_dset_read_direct(hid_t d, const char *file, const char *dpath, int nd, const hsize_t *dims,
                                     size_t elsize, void *buf, ckpt_stage_t *stage)
{
    hsize_t        chunk[GENIE_MAX_DIMS], pos[GENIE_MAX_DIMS] = { 0 }, stored = 0;
    hid_t          dcpl = H5Dget_create_plist(d);
    size_t         cbytes = elsize;
    char           why[256];
    int            sys = 0;
    genie_status_t st = GENIE_OK;

    if (dcpl < 0 || H5Pget_chunk(dcpl, nd, chunk) != nd) {
        st = genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: dataset %s cannot be inspected", file,
                             dpath);
        goto out;
    }
    for (int i = 0; i < nd; i++) {
        cbytes *= chunk[i];             /* at most CKPT_MAX_CHUNK_BYTES: ckpt_dset_check */
    }
    if (stage_reserve(stage, cbytes + 4) != 0) {
        st = genie_set_error(GENIE_ERR_NOMEM, "genie: checkpoint: out of memory");
        goto out;
    }
    for (;;) {
        uint32_t mask = 0, want;

        if (H5Dget_chunk_storage_size(d, pos, &stored) < 0 || stored != cbytes + 4) {
            st = genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: dataset %s has a chunk of %llu "
                                 "bytes stored, not %zu (its data and a Fletcher32 checksum)", file, dpath,
                                 (unsigned long long)stored, cbytes + 4);
            goto out;
        }
        if (H5Dread_chunk(d, H5P_DEFAULT, pos, &mask, stage->buf) < 0) {
            ckpt_h5_reason(why, sizeof(why), &sys);
            st = genie_set_error(sys ? GENIE_ERR_IO : GENIE_ERR_CORRUPT, "genie: checkpoint %s: could not "
                                 "read dataset %s: %s", file, dpath, why);
            goto out;
        }
        want = (uint32_t)stage->buf[cbytes] | (uint32_t)stage->buf[cbytes + 1] << 8 |
               (uint32_t)stage->buf[cbytes + 2] << 16 | (uint32_t)stage->buf[cbytes + 3] << 24;
        if (mask != 0 || !fletcher_matches(want, ckpt_fletcher32(stage->buf, cbytes))) {
            st = genie_set_error(GENIE_ERR_CORRUPT, "genie: checkpoint %s: dataset %s failed its Fletcher32 "
                                 "checksum", file, dpath);
            goto out;
        }
        chunk_copy(nd, dims, chunk, pos, elsize, buf, stage->buf, 0);
        if (!ckpt_next_chunk(nd, dims, chunk, pos)) {
            break;
        }
    }
out:
    if (dcpl >= 0) {
        H5Pclose(dcpl);
    }
    H5Eclear2(H5E_DEFAULT);
    return st;
}

int ckpt_hard_path(hid_t loc, const char *path)
{
    char       prefix[512];
    size_t     n = strlen(path);
    H5L_info_t li;

    if (n == 0 || n >= sizeof(prefix)) {
        return 0;
    }
    for (size_t i = 1; i <= n; i++) {
        if (i < n && path[i] != '/') {
            continue;
        }
        memcpy(prefix, path, i);
        prefix[i] = '\0';
        if (i == 1 && prefix[0] == '/') {
            continue;                              /* the root group */
        }
        if (H5Lexists(loc, prefix, H5P_DEFAULT) <= 0 || H5Lget_info(loc, prefix, &li, H5P_DEFAULT) < 0 ||
            li.type != H5L_TYPE_HARD) {
            H5Eclear2(H5E_DEFAULT);
            return 0;
        }
    }
    return 1;
}

/* ---- names and types --------------------------------------------------------------- */

hid_t ckpt_h5_type(genie_dtype_t dt)
{
    switch (dt) {
    case GENIE_F32:  return H5T_IEEE_F32LE;
    case GENIE_I64:  return H5T_STD_I64LE;
    case GENIE_I32:  return H5T_STD_I32LE;
    case GENIE_BOOL: return H5T_STD_U8LE;
    case GENIE_F16:
    case GENIE_BF16: return H5T_STD_U16LE;       /* raw bits; the dtype attribute says which */
    default:         return -1;
    }
}

int ckpt_dtype_from_name(const char *name, genie_dtype_t *dt_p)
{
    for (int d = 0; d < GENIE_DTYPE_COUNT; d++) {
        if (strcmp(name, genie_dtype_name((genie_dtype_t)d)) == 0 && ckpt_h5_type((genie_dtype_t)d) >= 0) {
            *dt_p = (genie_dtype_t)d;
            return 1;
        }
    }
    return 0;
}

int ckpt_name_ok(const char *name)
{
    size_t n = strnlen(name, GENIE_CKPT_NAME_MAX);
    int    slashes = 0;

    if (n == 0 || n >= GENIE_CKPT_NAME_MAX || name[0] == '/' || name[n - 1] == '/') {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '/')) {
            return 0;
        }
        slashes += c == '/';
    }
    return slashes <= 1;          /* "layer_00/key": one group level at most (so no "//") */
}

int ckpt_file_name_ok(const char *name)
{
    size_t n = strnlen(name, GENIE_CKPT_NAME_MAX);

    if (n >= GENIE_CKPT_NAME_MAX || n < strlen("rank-x.h5") || strncmp(name, "rank-", 5) != 0 ||
        strcmp(name + n - 3, ".h5") != 0) {
        return 0;
    }
    for (size_t i = 5; i < n - 3; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) {
            return 0;
        }
    }
    return 1;
}

int ckpt_terminated(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

/* ---- files ------------------------------------------------------------------------- */

static hid_t open_ro(const char *path, int direct)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), f = -1;

    if (fapl >= 0 && H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) >= 0
#if H5_VERSION_GE(1, 10, 7)
        && H5Pset_file_locking(fapl, 0, 1) >= 0
#endif
        && (!direct || ckpt_vfd_set(fapl) >= 0)) {
        f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    }
    if (fapl >= 0) {
        H5Pclose(fapl);
    }
    return f;
}

hid_t ckpt_open_ro(const char *path)
{
    return open_ro(path, 0);
}

hid_t ckpt_open_ro_direct(const char *path)
{
    return open_ro(path, 1);
}

genie_status_t ckpt_fsync_path(const char *path, int is_dir)
{
    int         fd = open(path, (is_dir ? O_RDONLY | O_DIRECTORY : O_RDONLY | O_NOFOLLOW) | O_CLOEXEC);
    struct stat sb;

    if (fd < 0) {
        return genie_set_error(GENIE_ERR_IO, "genie: checkpoint %s: %s", path, strerror(errno));
    }
    /* What the page cache still holds of a file goes out piece by piece, so
     * that the progress hook is called while it does (the fsync below then
     * has little left); a failure here shows again in fsync's answer. */
    if (!is_dir && fstat(fd, &sb) == 0) {
        for (off_t off = 0, n; off < sb.st_size; off += n) {
            uint64_t t0 = ckpt_now_ns();

            n = (off_t)ckpt_progress_piece();
            (void)sync_file_range(fd, off, n, SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                  SYNC_FILE_RANGE_WAIT_AFTER);
            /* the range's length counts for the piece size (a clean range is
             * fast and lets it grow), not for the hook's 4 MiB */
            ckpt_progress(0, (uint64_t)n, ckpt_now_ns() - t0);
        }
    }
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        return genie_set_error(GENIE_ERR_IO, "genie: checkpoint %s: fsync: %s", path, strerror(e));
    }
    if (close(fd) != 0) {
        return genie_set_error(GENIE_ERR_IO, "genie: checkpoint %s: close: %s", path, strerror(errno));
    }
    return GENIE_OK;
}

int ckpt_next_chunk(int nd, const hsize_t *dims, const hsize_t *chunk, hsize_t *pos)
{
    for (int i = nd - 1; i >= 0; i--) {      /* the last dimension moves fastest */
        pos[i] += chunk[i];
        if (pos[i] < dims[i]) {
            return 1;
        }
        pos[i] = 0;
    }
    return 0;
}

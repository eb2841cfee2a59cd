/*
 * The rank files' HDF5 file driver: HDF5's "sec2" (one POSIX file,
 * pread/pwrite) plus a second descriptor on the same file opened with
 * O_DIRECT, through which the KV chunks go, when written and when read
 * back by a restore (ckpt_dset_read_direct).
 *
 * Why: a checkpoint is hundreds of MB written once and not read back in
 * this job.  Through the page cache every byte is copied once more and
 * needs a fresh page (on a VM whose free memory is handed back to the host,
 * a fresh page is a host page fault: writes then crawl at a fifth of the
 * disk's speed), and the file evicts what the node had cached.  A direct
 * write moves the chunk from the writer's staging buffer to the device.
 *
 * A restore reads a file once, often on another node than the one that
 * wrote it: read past the page cache too, the chunk lands in the reader's
 * staging buffer without a fresh page per 4 KiB on the way.
 *
 * What goes direct: raw-data reads and writes (H5FD_MEM_DRAW) of at least
 * DIRECT_MIN bytes, the part of them that covers whole CKPT_DIRECT_ALIGN
 * pages of the file and starts at an equally aligned place in the caller's
 * buffer.  The rest (metadata, the chunk's 4-byte checksum tail, small
 * datasets) is written through the page cache.  No page of the file is
 * written both ways: HDF5 never gives two objects the same bytes, and a
 * direct write only covers pages lying wholly inside one chunk.  The
 * kernel keeps the two descriptors coherent (a direct write flushes and
 * drops cached pages of its own range).  The bytes on disk are exactly
 * those sec2 would write.
 *
 * Where O_DIRECT is refused (tmpfs before Linux 6.6, some FUSE or network
 * file systems: open or the first write fails with EINVAL), or with
 * GENIE_CKPT_DIRECT=0, everything goes through the page cache and the
 * writer starts the disk writeback every CKPT_WRITEBACK_BYTES
 * (sync_file_range) so that the final fsync does not wait for it all.
 * The first time a process falls back it says so on stderr in one line.
 *
 * Opening: a writer's descriptor never follows a symbolic link (O_NOFOLLOW)
 * and a new file is created with O_EXCL (ckpt_write.c removes a stale .tmp
 * first), so a link planted where the .tmp goes cannot make the writer
 * overwrite another file.  The O_DIRECT descriptor is a second open of the
 * same name; it must be the same file (device and inode) as the first, or
 * the open fails: a name swapped between the two opens would otherwise get
 * the KV chunks.
 *
 * Every request is done in pieces (ckpt_progress_piece(): 4 MiB, or less
 * on a slow disk while a progress hook is set) with ckpt_progress() after
 * each (genie_ckpt_set_progress).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "ckpt_h5.h"
#include "ckpt_int.h"

#if H5_VERSION_GE(1, 13, 2)
#include <H5FDdevelop.h>
/* An id from the range HDF5 leaves to drivers that are not registered with it. */
#define CKPT_VFD_VALUE 590
#endif

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIRECT_MIN           (64u << 10)
#define CKPT_WRITEBACK_BYTES (16u << 20)
/* Largest file address: off_t is signed 64-bit. */
#define VFD_MAXADDR          ((haddr_t)INT64_MAX)

typedef struct vfd_file {
    H5FD_t   pub;          /* HDF5's part; must be first */
    int      fd;           /* O_RDWR: metadata, unaligned pieces, reads */
    int      dfd;          /* the same file with O_DIRECT (same access), or -1 */
    haddr_t  eoa;          /* end of HDF5's allocated space */
    haddr_t  eof;          /* end of what this driver wrote or found */
    size_t   unkicked;     /* raw bytes written through the cache since the last writeback kick */
    int      discard;      /* the file is being given up: writes are dropped (ckpt_vfd_discard) */
    dev_t    dev;
    ino_t    ino;
} vfd_file_t;

static hid_t            vfd_id = -1;
static __thread char    vfd_why[512];        /* why the last open, read or write failed */
void                  (*ckpt_vfd_between_opens)(const char *path);
static pthread_once_t   vfd_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t  vfd_lock = PTHREAD_MUTEX_INITIALIZER;
static int              vfd_warned;
static genie_ckpt_io_stats_t vfd_totals;

static void count(uint64_t *total, uint64_t n)
{
    pthread_mutex_lock(&vfd_lock);
    *total += n;
    pthread_mutex_unlock(&vfd_lock);
}

/* The one line a process prints when it first writes without O_DIRECT. */
static void fall_back(vfd_file_t *f, const char *why, int err)
{
    int say;

    if (f->dfd >= 0) {
        close(f->dfd);
        f->dfd = -1;
    }
    pthread_mutex_lock(&vfd_lock);
    say = !vfd_warned;
    vfd_warned = 1;
    vfd_totals.fallbacks++;
    pthread_mutex_unlock(&vfd_lock);
    if (say) {
        fprintf(stderr, "genie: checkpoint: %s (%s): checkpoint files go through the page cache\n", why,
                strerror(err));
    }
}

static int direct_wanted(void)
{
    const char *v = getenv("GENIE_CKPT_DIRECT");

    return v == NULL || strcmp(v, "0") != 0;
}

const char *ckpt_vfd_why(char *out, size_t cap)
{
    if (vfd_why[0] == '\0') {
        return NULL;
    }
    snprintf(out, cap, "%s", vfd_why);
    vfd_why[0] = '\0';
    return out;
}

static H5FD_t *vfd_open(const char *name, unsigned flags, hid_t fapl, haddr_t maxaddr)
{
    vfd_file_t *f;
    struct stat sb, dsb;
    int         oflags = O_RDWR | O_NOFOLLOW | O_CLOEXEC;   /* a writer's; a reader's below */

    (void)fapl;
    vfd_why[0] = '\0';
    if (name == NULL || *name == '\0' || maxaddr == 0 || maxaddr == HADDR_UNDEF || maxaddr > VFD_MAXADDR) {
        return NULL;
    }
    if (flags & H5F_ACC_RDWR) {
        oflags |= (flags & H5F_ACC_TRUNC) ? O_TRUNC : 0;
        oflags |= (flags & H5F_ACC_CREAT) ? O_CREAT : 0;
        oflags |= (flags & H5F_ACC_EXCL) ? O_EXCL : 0;
    } else {
        oflags = O_RDONLY | O_CLOEXEC;
    }
    if ((f = calloc(1, sizeof(*f))) == NULL) {
        return NULL;
    }
    if ((f->fd = open(name, oflags, 0666)) < 0) {
        /* HDF5 reports its own "unable to open file"; errno says why */
        free(f);
        return NULL;
    }
    if (fstat(f->fd, &sb) != 0) {
        close(f->fd);
        free(f);
        return NULL;
    }
    f->eof = (haddr_t)sb.st_size;
    f->dev = sb.st_dev;
    f->ino = sb.st_ino;
    f->dfd = -1;
    if (ckpt_vfd_between_opens != NULL) {
        ckpt_vfd_between_opens(name);
    }
    if (direct_wanted()) {
        int dflags = (flags & H5F_ACC_RDWR) ? O_WRONLY | O_NOFOLLOW : O_RDONLY;

        if ((f->dfd = open(name, dflags | O_DIRECT | O_CLOEXEC)) < 0) {
            if (errno != ELOOP && errno != ENOENT) {
                fall_back(f, "the file system refuses O_DIRECT", errno);
            } else {                /* the name is no longer the file just opened */
                snprintf(vfd_why, sizeof(vfd_why), "its second (O_DIRECT) open failed: %s",
                         strerror(errno));
                close(f->fd);
                free(f);
                return NULL;
            }
        } else if (fstat(f->dfd, &dsb) != 0 || dsb.st_dev != sb.st_dev || dsb.st_ino != sb.st_ino) {
            snprintf(vfd_why, sizeof(vfd_why), "it was replaced between two opens (its O_DIRECT "
                     "descriptor is another file): someone else is writing into this directory");
            close(f->dfd);
            close(f->fd);
            free(f);
            return NULL;
        }
    }
    return &f->pub;
}

static herr_t vfd_close(H5FD_t *file)
{
    vfd_file_t *f = (vfd_file_t *)file;
    int         bad = 0;

    if (f->dfd >= 0) {
        bad |= close(f->dfd) != 0;
    }
    bad |= close(f->fd) != 0;
    free(f);
    return bad ? -1 : 0;
}

static int vfd_cmp(const H5FD_t *a, const H5FD_t *b)
{
    const vfd_file_t *x = (const vfd_file_t *)a, *y = (const vfd_file_t *)b;

    if (x->dev != y->dev) {
        return x->dev < y->dev ? -1 : 1;
    }
    if (x->ino != y->ino) {
        return x->ino < y->ino ? -1 : 1;
    }
    return 0;
}

/* The features sec2 announces: metadata is gathered into blocks and
 * accumulated, small raw data aggregated (META_BLOCK in ckpt_write.c). */
static herr_t vfd_query(const H5FD_t *file, unsigned long *flags)
{
    (void)file;
    *flags = H5FD_FEAT_AGGREGATE_METADATA | H5FD_FEAT_ACCUMULATE_METADATA | H5FD_FEAT_DATA_SIEVE |
             H5FD_FEAT_AGGREGATE_SMALLDATA | H5FD_FEAT_POSIX_COMPAT_HANDLE |
             H5FD_FEAT_DEFAULT_VFD_COMPATIBLE;
    return 0;
}

static haddr_t vfd_get_eoa(const H5FD_t *file, H5FD_mem_t type)
{
    (void)type;
    return ((const vfd_file_t *)file)->eoa;
}

static herr_t vfd_set_eoa(H5FD_t *file, H5FD_mem_t type, haddr_t addr)
{
    (void)type;
    ((vfd_file_t *)file)->eoa = addr;
    return 0;
}

static haddr_t vfd_get_eof(const H5FD_t *file, H5FD_mem_t type)
{
    (void)type;
    return ((const vfd_file_t *)file)->eof;
}

static herr_t vfd_get_handle(H5FD_t *file, hid_t fapl, void **handle)
{
    (void)fapl;
    *handle = &((vfd_file_t *)file)->fd;
    return 0;
}

static int read_all(int fd, uint8_t *p, size_t size, haddr_t addr)
{
    while (size > 0) {
        ssize_t n = pread(fd, p, size, (off_t)addr);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -1;
        }
        if (n == 0) {                   /* past the end of the file: zeros, as sec2 */
            memset(p, 0, size);
            break;
        }
        p += n, addr += (haddr_t)n, size -= (size_t)n;
    }
    return 0;
}

/* The part of a raw-data request [addr, addr + size) that may go direct:
 * *head bytes before it, *mid bytes of whole aligned pages from an aligned
 * place in the caller's buffer p; 0 if none (then all of it is cached). */
static int direct_part(const vfd_file_t *f, H5FD_mem_t type, const uint8_t *p, haddr_t addr, size_t size,
                       size_t *head, size_t *mid)
{
    *head = (size_t)((CKPT_DIRECT_ALIGN - addr % CKPT_DIRECT_ALIGN) % CKPT_DIRECT_ALIGN);
    if (type != H5FD_MEM_DRAW || f->dfd < 0 || size < DIRECT_MIN || *head >= size ||
        (uintptr_t)(p + *head) % CKPT_DIRECT_ALIGN != 0) {
        return 0;
    }
    *mid = (size - *head) / CKPT_DIRECT_ALIGN * CKPT_DIRECT_ALIGN;
    return 1;
}

/* The direct part of a raw read, as write_direct below.  A read that
 * ends early (the end of the file, or off the page grid) finishes through
 * the cache, which gives zeros past the end as sec2 does. */
static int read_direct(vfd_file_t *f, uint8_t *p, size_t size, haddr_t addr)
{
    while (size > 0) {
        ssize_t n = pread(f->dfd, p, size, (off_t)addr);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EINVAL) {
            fall_back(f, "an O_DIRECT read was refused", errno);
            return read_all(f->fd, p, size, addr);
        }
        if (n < 0) {
            return -1;
        }
        count(&vfd_totals.read_direct, (uint64_t)n);
        p += n, addr += (haddr_t)n, size -= (size_t)n;
        if (n == 0 || size % CKPT_DIRECT_ALIGN != 0) {
            return read_all(f->fd, p, size, addr);
        }
    }
    return 0;
}

/* One piece of a read (at most ckpt_progress_piece() bytes). */
static int read_piece(vfd_file_t *f, H5FD_mem_t type, uint8_t *p, size_t size, haddr_t addr)
{
    size_t head, mid;
    int    rc;

    if (!direct_part(f, type, p, addr, size, &head, &mid)) {
        rc = read_all(f->fd, p, size, addr);
    } else {
        rc = read_all(f->fd, p, head, addr);
        if (rc == 0) {
            rc = read_direct(f, p + head, mid, addr + head);
        }
        if (rc == 0) {
            rc = read_all(f->fd, p + head + mid, size - head - mid, addr + head + mid);
        }
    }
    return rc;
}

/* Pieces are multiples of 4096 bytes (but the last), so that each keeps
 * the request's alignment to the page grid. */
static herr_t vfd_read(H5FD_t *file, H5FD_mem_t type, hid_t dxpl, haddr_t addr, size_t size, void *buf)
{
    vfd_file_t *f = (vfd_file_t *)file;
    uint8_t    *p = buf;

    (void)dxpl;
    if (addr == HADDR_UNDEF || addr + size < addr || addr + size > f->eoa) {
        return -1;
    }
    do {
        size_t   piece = ckpt_progress_piece(), n = size < piece ? size : piece;
        uint64_t t0 = ckpt_now_ns();

        if (read_piece(f, type, p, n, addr) != 0) {
            snprintf(vfd_why, sizeof(vfd_why), "read of %zu bytes at %llu: %s", n, (unsigned long long)addr,
                     strerror(errno));
            return -1;
        }
        ckpt_progress(n, n, ckpt_now_ns() - t0);
        p += n, addr += n, size -= n;
    } while (size > 0);
    return 0;
}

static int write_all(int fd, const uint8_t *p, size_t size, haddr_t addr)
{
    while (size > 0) {
        ssize_t n = pwrite(fd, p, size, (off_t)addr);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        p += n, addr += (haddr_t)n, size -= (size_t)n;
    }
    return 0;
}

/* Through the page cache; raw data starts its writeback every
 * CKPT_WRITEBACK_BYTES. */
static int write_cached(vfd_file_t *f, H5FD_mem_t type, const uint8_t *p, size_t size, haddr_t addr)
{
    if (write_all(f->fd, p, size, addr) != 0) {
        return -1;
    }
    if (type == H5FD_MEM_DRAW) {
        count(&vfd_totals.written_cached, size);
        f->unkicked += size;
        if (f->unkicked >= CKPT_WRITEBACK_BYTES) {
            (void)sync_file_range(f->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
            f->unkicked = 0;
        }
    }
    return 0;
}

/* The direct part of a raw write: [head, head + mid) of the request.  On
 * EINVAL (an alignment this file system does not accept) the file falls
 * back to the page cache for this and every later write. */
static int write_direct(vfd_file_t *f, const uint8_t *p, size_t size, haddr_t addr)
{
    while (size > 0) {
        ssize_t n = pwrite(f->dfd, p, size, (off_t)addr);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EINVAL) {
            fall_back(f, "an O_DIRECT write was refused", errno);
            return write_cached(f, H5FD_MEM_DRAW, p, size, addr);
        }
        if (n <= 0) {
            return -1;
        }
        count(&vfd_totals.written_direct, (uint64_t)n);
        p += n, addr += (haddr_t)n, size -= (size_t)n;
        if (size % CKPT_DIRECT_ALIGN != 0) {     /* a short write left the grid: finish cached */
            return write_cached(f, H5FD_MEM_DRAW, p, size, addr);
        }
    }
    return 0;
}

/* One piece of a write (at most ckpt_progress_piece() bytes). */
static int write_piece(vfd_file_t *f, H5FD_mem_t type, const uint8_t *p, size_t size, haddr_t addr)
{
    size_t head, mid;
    int    rc = 0;

    if (!direct_part(f, type, p, addr, size, &head, &mid)) {
        rc = write_cached(f, type, p, size, addr);
    } else {
        if (head > 0) {
            rc = write_cached(f, type, p, head, addr);
        }
        if (rc == 0) {
            rc = write_direct(f, p + head, mid, addr + head);
        }
        if (rc == 0 && head + mid < size) {
            rc = write_cached(f, type, p + head + mid, size - head - mid, addr + head + mid);
        }
    }
    return rc;
}

static herr_t vfd_write(H5FD_t *file, H5FD_mem_t type, hid_t dxpl, haddr_t addr, size_t size, const void *buf)
{
    vfd_file_t    *f = (vfd_file_t *)file;
    const uint8_t *p = buf;
    haddr_t        end = addr + size;

    (void)dxpl;
    if (addr == HADDR_UNDEF || end < addr || end > f->eoa) {
        return -1;
    }
    if (f->discard) {
        return 0;
    }
    do {
        size_t   piece = ckpt_progress_piece(), n = size < piece ? size : piece;
        uint64_t t0 = ckpt_now_ns();

        if (write_piece(f, type, p, n, addr) != 0) {
            snprintf(vfd_why, sizeof(vfd_why), "write of %zu bytes at %llu: %s", n,
                     (unsigned long long)addr, strerror(errno));
            return -1;
        }
        ckpt_progress(n, n, ckpt_now_ns() - t0);
        p += n, addr += n, size -= n;
    } while (size > 0);
    if (end > f->eof) {
        f->eof = end;
    }
    return 0;
}

/* The file ends where HDF5's allocations end (as sec2). */
static herr_t vfd_truncate(H5FD_t *file, hid_t dxpl, hbool_t closing)
{
    vfd_file_t *f = (vfd_file_t *)file;

    (void)dxpl, (void)closing;
    if (f->eoa == f->eof || f->discard) {
        return 0;
    }
    if (ftruncate(f->fd, (off_t)f->eoa) != 0) {
        return -1;
    }
    f->eof = f->eoa;
    return 0;
}

/* Entries left out are NULL: HDF5's defaults (no superblock driver info,
 * no properties, its own allocator, no locking: ckpt_write.c turns file
 * locking off). */
static const H5FD_class_t vfd_class = {
#if H5_VERSION_GE(1, 13, 2)
    .version    = H5FD_CLASS_VERSION,
    .value      = (H5FD_class_value_t)CKPT_VFD_VALUE,
#endif
    .name       = "genie_ckpt_direct",
    .maxaddr    = VFD_MAXADDR,
    .fc_degree  = H5F_CLOSE_WEAK,
    .open       = vfd_open,
    .close      = vfd_close,
    .cmp        = vfd_cmp,
    .query      = vfd_query,
    .get_eoa    = vfd_get_eoa,
    .set_eoa    = vfd_set_eoa,
    .get_eof    = vfd_get_eof,
    .get_handle = vfd_get_handle,
    .read       = vfd_read,
    .write      = vfd_write,
    .truncate   = vfd_truncate,
    .fl_map     = H5FD_FLMAP_DICHOTOMY,
};

static void vfd_register(void)
{
    vfd_id = H5FDregister(&vfd_class);
}

int ckpt_vfd_set(hid_t fapl)
{
    ckpt_h5_init();
    pthread_once(&vfd_once, vfd_register);
    if (vfd_id < 0) {
        return -1;
    }
    return H5Pset_driver(fapl, vfd_id, NULL) < 0 ? -1 : 0;
}

int ckpt_vfd_discard(hid_t file)
{
    void *handle = NULL;

    if (H5Fget_vfd_handle(file, H5P_DEFAULT, &handle) < 0 || handle == NULL) {
        H5Eclear2(H5E_DEFAULT);
        return -1;
    }
    /* vfd_get_handle gives &f->fd */
    ((vfd_file_t *)((char *)handle - offsetof(vfd_file_t, fd)))->discard = 1;
    return 0;
}

void genie_ckpt_io_stats(genie_ckpt_io_stats_t *stats_p)
{
    pthread_mutex_lock(&vfd_lock);
    *stats_p = vfd_totals;
    pthread_mutex_unlock(&vfd_lock);
}

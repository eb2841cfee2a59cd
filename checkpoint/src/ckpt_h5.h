/*
 * Checked wrappers over the HDF5 C API shared by the checkpoint writer,
 * reader and verifier, and the format's constants and limits
 * (docs/checkpoint-format.md).  The helpers do not record errors
 * themselves: they return -1 (or a negative status) and the caller, which
 * knows the file and the object, records one line with ckpt_h5_reason()
 * telling what HDF5 said.  HDF5's own error stack is never printed
 * (ckpt_h5_init turns automatic printing off in every thread that calls
 * into the library).
 *
 * Legend: nd = number of dimensions, dims = (nd) extents.
 */
#ifndef GENIE_CKPT_H5_H
#define GENIE_CKPT_H5_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "genie/ckpt.h"

#define CKPT_FORMAT_RANK     "genie-checkpoint-rank"
#define CKPT_FORMAT_MANIFEST "genie-checkpoint-manifest"
#define CKPT_MANIFEST        "manifest.h5"
#define CKPT_LINEAGE_COLUMNS "step,phase,input_start,input_len,srg_nodes,epoch"

/* Limits a reader enforces before trusting a number read from a file (and a
 * writer before writing one).  Sessions per file match the executor's
 * CHECKPOINT limit (launcher/executor_ckpt.c). */
#define CKPT_MAX_SESSIONS    65536u          /* per rank file                  */
#define CKPT_MAX_FILES       65536u          /* per manifest                   */
#define CKPT_MAX_KV          4096u           /* per session                    */
#define CKPT_MAX_BATCH       65536u          /* B                              */
#define CKPT_MAX_TOKENS      (1ULL << 24)    /* L                              */
#define CKPT_MAX_TOKEN_ELEMS (1ULL << 28)    /* B * L                          */
#define CKPT_MAX_LINEAGE     (1ULL << 24)    /* R                              */
#define CKPT_MAX_RNG         (1u << 20)      /* sampler state bytes            */
#define CKPT_MAX_MODEL_FPS   4096u
#define CKPT_MAX_KV_BYTES    (1ULL << 40)    /* one KV tensor                  */
#define CKPT_CHUNK_BYTES     (4u << 20)      /* a writer's chunks are at most this */
#define CKPT_MAX_CHUNK_BYTES (64u << 20)     /* a reader accepts chunks up to this */
#define CKPT_DIRECT_ALIGN    4096u           /* O_DIRECT: file offsets, lengths, buffers */

/* Once per process: H5open; once per thread: no automatic error printing. */
void ckpt_h5_init(void);

/* One line saying why the last HDF5 call failed (the innermost message of
 * the error stack, or the system error it carries: then *sys_p = 1 when
 * sys_p is set), then the stack is cleared.  Returns out. */
const char *ckpt_h5_reason(char *out, size_t cap, int *sys_p);
/* 1 if the error stack holds a Fletcher32 checksum failure; the stack is
 * left as it is. */
int ckpt_h5_is_checksum_error(void);

/* ---- attributes (scalar, on a file, group or dataset) ------------------------- */

int ckpt_attr_put(hid_t obj, const char *name, hid_t type, const void *v);
/* A fixed-length, NUL-terminated string of strnlen(v, cap) + 1 bytes. */
int ckpt_attr_put_str(hid_t obj, const char *name, const char *v, size_t cap);
/* An integer attribute of any HDF5 integer type, range-checked into the
 * result's type; -1 if absent, not an integer, not a single value, or out
 * of range. */
int ckpt_attr_get_u64(hid_t obj, const char *name, uint64_t *v);
int ckpt_attr_get_u32(hid_t obj, const char *name, uint32_t *v);
int ckpt_attr_get_i32(hid_t obj, const char *name, int32_t *v);
/* A finite float attribute. */
int ckpt_attr_get_f64(hid_t obj, const char *name, double *v);
/* A fixed-length string attribute into out (cap bytes, NUL-terminated);
 * -1 if absent, variable-length, longer than cap - 1, not terminated
 * within its size, or holding control bytes. */
int ckpt_attr_get_str(hid_t obj, const char *name, char *out, size_t cap);

/* ---- datasets ------------------------------------------------------------------- */

/* Chunk dims for a dataset of dims (nd) with elements of `elsize` bytes: as
 * few chunks as keep each at most CKPT_CHUNK_BYTES, split along dim 0 first
 * into pieces of equal size (a partial last chunk still takes a whole
 * chunk's space on disk). */
void ckpt_chunk_dims(int nd, const hsize_t *dims, size_t elsize, hsize_t *chunk);

/* Create dataset `name` under loc (intermediate groups created) of file
 * type `type` and dims (nd), chunked with Fletcher32, and write `data` (the
 * same type in memory; NULL only when a dim is 0) in one H5Dwrite.  Returns
 * the open dataset, or -1. */
hid_t ckpt_dset_create(hid_t loc, const char *name, hid_t type, int nd, const hsize_t *dims,
                       const void *data);

/* A staging buffer for ckpt_dset_create_direct, reused across datasets
 * (allocated on first use, CKPT_DIRECT_ALIGN-aligned so that the chunk can
 * go to the disk without the page cache (ckpt_vfd.c); freed by
 * ckpt_stage_free). */
typedef struct ckpt_stage {
    uint8_t *buf;
    size_t   cap;
} ckpt_stage_t;

void ckpt_stage_free(ckpt_stage_t *st);

/* As ckpt_dset_create, but each chunk is filtered here and written with
 * H5Dwrite_chunk: one copy into `stage`, the Fletcher32 checksum appended
 * (ckpt_fletcher32), one write.  The file is the same as HDF5's own filter
 * pipeline would write; HDF5's pipeline costs two more copies, a fresh
 * buffer per chunk and a slower checksum, which keeps it at a third of the
 * disk's speed (docs/checkpoint-format.md, "Dataset storage").  data must not
 * be NULL; no dim may be 0. */
hid_t ckpt_dset_create_direct(hid_t loc, const char *name, hid_t type, int nd, const hsize_t *dims,
                              const void *data, ckpt_stage_t *stage);

/* ---- the writer's file driver (ckpt_vfd.c) ------------------------------------ */

/* Make fapl use the writer's driver: sec2's file, with large raw-data
 * writes sent with O_DIRECT (GENIE_CKPT_DIRECT=0: never); its totals are
 * genie_ckpt_io_stats().  0 or -1. */
int ckpt_vfd_set(hid_t fapl);
/* Why the driver's last open, read or write in this thread failed (the
 * system's error, which HDF5's own message leaves out, or "the O_DIRECT
 * descriptor was another file"), into out; NULL if none did.  Clears it. */
const char *ckpt_vfd_why(char *out, size_t cap);
/* A file opened through the driver that is being given up (it will be
 * removed): from now on its writes are dropped, so that closing it cannot
 * fail on the error that made us give up (HDF5 1.10 leaves a file whose
 * close failed half open, and crashes at exit closing it again).  0 or -1. */
int ckpt_vfd_discard(hid_t file);
/* Tests only: called between the driver's two opens of a file (NULL: not). */
extern void (*ckpt_vfd_between_opens)(const char *path);

/* HDF5's Fletcher32 (H5_checksum_fletcher32: 16-bit big-endian words, an
 * odd last byte as the high byte of a word, sums mod 65535 kept as
 * 1..65535 once non-zero), computed four streams at a time. */
uint32_t ckpt_fletcher32(const void *data, size_t len);

/* Check an open dataset against the format before reading it: file type
 * equal to `type` (or, with type -1, any integer or float of 1 to 8 bytes),
 * a simple dataspace of min_nd..max_nd dims, chunked with exactly the
 * Fletcher32 filter, chunks of at most CKPT_MAX_CHUNK_BYTES, and, with
 * `data` set, every chunk present and at least as many bytes stored as the
 * data needs.  dims (max_nd) and *nd_p are filled.  Errors name `file` and
 * `dpath` (GENIE_ERR_CORRUPT). */
genie_status_t ckpt_dset_check(hid_t d, const char *file, const char *dpath, hid_t type, int min_nd,
                               int max_nd, int data, hsize_t *dims, int *nd_p);
/* Read all of an open dataset into buf (nbytes, which must be its size in
 * memtype).  A Fletcher32 failure is GENIE_ERR_CORRUPT "genie: checkpoint
 * <file>: dataset <dpath> failed its Fletcher32 checksum". */
genie_status_t ckpt_dset_read(hid_t d, const char *file, const char *dpath, hid_t memtype, void *buf,
                              uint64_t nbytes);
/* As ckpt_dset_read for a dataset that passed ckpt_dset_check with data
 * (all chunks there, each at most CKPT_MAX_CHUNK_BYTES) whose file type is
 * the memory type (elsize bytes, the host's byte order: little-endian):
 * each chunk is read as stored (H5Dread_chunk, into `stage`: with a file
 * opened by ckpt_open_ro_direct the read bypasses the page cache), its
 * Fletcher32 checked here, and its part of the data copied into buf
 * (dims, row-major).  A chunk stored without its checksum, or of the wrong
 * size, is refused. */
genie_status_t ckpt_dset_read_direct(hid_t d, const char *file, const char *dpath, int nd, const hsize_t *dims,
                                     size_t elsize, void *buf, ckpt_stage_t *stage);

/* 1 if every component of `path` under loc is a hard link (a file cannot
 * send a reader into another file through an external or soft link). */
int ckpt_hard_path(hid_t loc, const char *path);

/* ---- names and types ------------------------------------------------------------ */

/* HDF5 file type of a genie dtype (-1 for none). */
hid_t ckpt_h5_type(genie_dtype_t dt);
int   ckpt_dtype_from_name(const char *name, genie_dtype_t *dt_p);
/* KV tensor names: [a-z0-9_], at most one '/' not at either end, < 64 bytes. */
int   ckpt_name_ok(const char *name);
/* Rank file names in a manifest: "rank-" [0-9a-z_-]* ".h5", < 64 bytes. */
int   ckpt_file_name_ok(const char *name);
/* 1 if s holds a NUL within cap bytes. */
int   ckpt_terminated(const char *s, size_t cap);

/* ---- files ---------------------------------------------------------------------- */

/* Open read-only (no file locking: checkpoints live on shared filesystems
 * where locks may be unsupported; writers never modify a committed file). */
hid_t ckpt_open_ro(const char *path);
/* The same through the writer's driver (ckpt_vfd.c), for reading KV data
 * with ckpt_dset_read_direct past the page cache. */
hid_t ckpt_open_ro_direct(const char *path);
/* open(2) + fsync + close of a file or directory; a file's dirty pages are
 * first written back in pieces with ckpt_progress() between them. */
genie_status_t ckpt_fsync_path(const char *path, int is_dir);

/* Advance pos (the first element of a chunk) to the next chunk of a dataset
 * with dims and chunk dims, in row-major order; 0 after the last one. */
int ckpt_next_chunk(int nd, const hsize_t *dims, const hsize_t *chunk, hsize_t *pos);

#endif

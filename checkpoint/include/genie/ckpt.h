/*
 * HDF5 checkpoints of decode sessions (layout: docs/checkpoint-format.md).
 *
 * A checkpoint directory holds epochs; an epoch is complete when its
 * manifest exists, and only complete epochs are ever read:
 *
 *   DIR/epoch-00000003/rank-0002.h5   one file per executor rank: its sessions'
 *   DIR/epoch-00000003/rank-0003.h5   KV tensors (chunked, Fletcher32), session
 *   DIR/epoch-00000003/manifest.h5    metadata and lineage; the manifest last
 *
 * Every file is committed by rename: written as <name>.tmp, flushed, closed,
 * fsync'd, renamed, and the directory fsync'd.  Executors write rank files
 * (genie_ckpt_write_rank); the driver writes the manifest once every rank
 * file of the epoch is committed (genie_ckpt_write_manifest).  A crash at
 * any point leaves either a complete epoch or one without a manifest, which
 * readers skip in favour of the previous complete one.
 *
 * Errors are one line (genie_last_error) naming the file and, for data, the
 * dataset; HDF5's own error stack is never printed.
 *
 * Legend: B = batch rows of a session, L = tokens so far (prompt + generated),
 * R = lineage records.
 */
#ifndef GENIE_CKPT_H
#define GENIE_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "genie/status.h"
#include "genie/tensor.h"

#define GENIE_CKPT_VERSION      1
#define GENIE_CKPT_NAME_MAX     64    /* KV tensor names: "layer_00/key"         */
#define GENIE_CKPT_TEXT_MAX     256   /* job ids, phase specs, reasons            */
/* One lineage record per step that produced the session's state:
 *   | step | phase (srg.h genie_phase_t) | input_start | input_len | srg_nodes | epoch |
 * input_start/input_len: the columns of `tokens` the step consumed. */
#define GENIE_CKPT_LINEAGE_COLS 6

/* One KV tensor of a session. */
typedef struct genie_ckpt_kv {
    char          name[GENIE_CKPT_NAME_MAX];   /* "layer_00/key": [a-z0-9_/] */
    genie_dtype_t dtype;
    int           ndim;
    int64_t       shape[GENIE_MAX_DIMS];
    const void   *data;        /* writer: contiguous bytes (borrowed); reader: NULL */
} genie_ckpt_kv_t;

/* One session: what the driver needs to continue it, and its KV cache. */
typedef struct genie_ckpt_session {
    uint64_t         id;            /* the driver's session id in the writing job */
    uint64_t         key;           /* matches it to a prompt in a later job       */
    uint64_t         model_fp;      /* fingerprint of the model's weights          */
    uint64_t         step;          /* the next step to run (1 = first decode)     */
    uint64_t         prompt_len;    /* columns of `tokens` that are the prompt     */
    uint32_t         batch;         /* B                                           */
    uint64_t         n_tokens;      /* L                                           */
    int64_t         *tokens;        /* (B, L) prompt then the tokens generated     */
    uint8_t         *rng;           /* sampler state (NULL, 0: greedy)             */
    uint32_t         rng_len;
    int64_t         *lineage;       /* (R, GENIE_CKPT_LINEAGE_COLS)                */
    uint32_t         n_lineage;     /* R                                           */
    uint32_t         n_kv;
    genie_ckpt_kv_t *kv;            /* (n_kv)                                      */
    /* reader only */
    char             file[GENIE_CKPT_NAME_MAX];  /* rank file holding it ("rank-0002.h5") */
    int32_t          rank;          /* the executor rank that wrote it             */
} genie_ckpt_session_t;

/* Identity written into a rank file's root attributes. */
typedef struct genie_ckpt_rank_info {
    uint64_t epoch;
    int32_t  rank;
    uint32_t slice;
    char     phase[32];                     /* slice group: "decode"  */
    char     job[GENIE_CKPT_TEXT_MAX];      /* Slurm job id or a launch id */
} genie_ckpt_rank_info_t;

typedef struct genie_ckpt_file_entry {
    char     name[GENIE_CKPT_NAME_MAX];     /* "rank-0002.h5" */
    int32_t  rank;
    uint64_t bytes;                         /* its size when committed */
    uint32_t sessions;
} genie_ckpt_file_entry_t;

typedef struct genie_ckpt_manifest {
    uint64_t                 epoch;
    char                     job[GENIE_CKPT_TEXT_MAX];
    char                     phases[GENIE_CKPT_TEXT_MAX];   /* "prefill:1,decode:2" */
    char                     reason[32];                    /* steps|seconds|SIGUSR1|SIGTERM|request */
    double                   created;                       /* unix time */
    uint32_t                 n_model_fps;
    uint64_t                *model_fps;                     /* (n_model_fps) */
    uint32_t                 n_files;
    genie_ckpt_file_entry_t *files;                         /* (n_files) */
} genie_ckpt_manifest_t;

/* ---- paths ------------------------------------------------------------------ */

/* "<root>/epoch-%08llu" into out (cap bytes). */
genie_status_t genie_ckpt_epoch_path(const char *root, uint64_t epoch, char *out, size_t cap);
/* mkdir -p of the epoch's directory (mode 0700 for new directories; each
 * one created is checked: a real directory, the user's, not writable by
 * group or others).  A job's driver uses genie_ckpt_root_new_epoch. */
genie_status_t genie_ckpt_epoch_create(const char *root, uint64_t epoch);
/* "rank-%04d.h5" */
void           genie_ckpt_rank_file_name(int32_t rank, char *out, size_t cap);

/* ---- a job's checkpoint directory ---------------------------------------------- */

/* A checkpoint directory held by one job for writing (docs/checkpoint-format.md
 * section 1, "Who may write a directory").  Opening it:
 *   - creates what is missing of `dir` (mode 0700), checking every directory
 *     it creates;
 *   - uses `dir` itself if it is a directory of the user (effective uid)
 *     that neither group nor others may write;
 *   - in a sticky directory that others may write (a shared root like /tmp,
 *     mode 1777, owned by root or the user), creates and uses the job's own
 *     subdirectory "genie-<user>-<job>" (mode 0700) instead;
 *   - refuses anything else (GENIE_ERR_DENIED, one line saying why and what
 *     to do), and `dir` inside a directory others may write that is not
 *     sticky (they could move `dir` away and put theirs in its place);
 *   - locks the directory used for the job's life (flock on its genie.lock,
 *     which records the job, pid and host); a directory another job holds is
 *     refused (GENIE_ERR_DENIED) naming that job.
 * The job's epochs (those genie_ckpt_root_new_epoch created) are numbered
 * from the newest epoch present + 1, and only they are ever pruned or
 * dropped.  `job` is the writing job's id (the manifests' and rank files'
 * `job`). */
typedef struct genie_ckpt_root genie_ckpt_root_t;

genie_status_t genie_ckpt_root_open(const char *dir, const char *job, genie_ckpt_root_t **root_p);
/* The directory the job's epochs go to (`dir`, or the job's subdirectory of
 * a shared root). */
const char    *genie_ckpt_root_dir(const genie_ckpt_root_t *r);
/* 1 when genie_ckpt_root_dir is the job's subdirectory of a shared root. */
int            genie_ckpt_root_shared(const genie_ckpt_root_t *r);
/* The job's first epoch number (epochs below it were there before). */
uint64_t       genie_ckpt_root_first_epoch(const genie_ckpt_root_t *r);
/* Create the directory of the job's next epoch (mode 0700; it must not
 * exist): *epoch_p, and its path in dir (cap). */
genie_status_t genie_ckpt_root_new_epoch(genie_ckpt_root_t *r, uint64_t *epoch_p, char *dir, size_t cap);
/* Remove an epoch of this job whose commit failed (all its files);
 * GENIE_ERR_INVALID for an epoch this job did not create. */
genie_status_t genie_ckpt_root_drop(genie_ckpt_root_t *r, uint64_t epoch);
/* Of this job's epochs, remove all complete ones but the newest `keep`, and
 * every incomplete one older than its newest complete one; epochs of other
 * jobs are never touched.  *removed_p (may be NULL). */
genie_status_t genie_ckpt_root_prune(genie_ckpt_root_t *r, uint32_t keep, uint32_t *removed_p);
/* Unlock and forget (NULL: nothing). */
void           genie_ckpt_root_close(genie_ckpt_root_t *r);

/* ---- writing (commit by rename) -------------------------------------------- */

/* Write `path` (a rank file) atomically; *bytes_p = its size.  A stale
 * <path>.tmp is removed (the link itself, never what it points to) and the
 * new one created with O_EXCL | O_NOFOLLOW. */
genie_status_t genie_ckpt_write_rank(const char *path, const genie_ckpt_rank_info_t *info,
                                     const genie_ckpt_session_t *sessions, uint32_t n,
                                     uint64_t *bytes_p);
/* Write <epoch dir>/manifest.h5 atomically.  Refuses unless every file it
 * lists exists in the epoch directory with the recorded size. */
genie_status_t genie_ckpt_write_manifest(const char *root, const genie_ckpt_manifest_t *m);

/* ---- listing and opening ----------------------------------------------------- */

typedef struct genie_ckpt_epoch_info {
    uint64_t epoch;
    int      complete;                      /* manifest present and consistent */
    char     why[GENIE_CKPT_TEXT_MAX];      /* if not: one line saying why */
    uint32_t n_files;
    uint32_t n_sessions;
    uint64_t bytes;                         /* all files of the epoch */
    double   created;
    char     reason[32];
    char     job[GENIE_CKPT_TEXT_MAX];      /* the manifest's job (complete epochs) */
} genie_ckpt_epoch_info_t;

/* Every epoch directory under root, oldest first (caller frees *epochs_p). */
genie_status_t genie_ckpt_list(const char *root, genie_ckpt_epoch_info_t **epochs_p, uint32_t *n_p);

/* An opened epoch: the manifest and every session's metadata (no KV data). */
typedef struct genie_ckpt {
    char                  dir[4096];        /* the epoch directory */
    genie_ckpt_manifest_t manifest;
    uint32_t              n_sessions;
    genie_ckpt_session_t *sessions;         /* (n_sessions), ordered by (rank, id) */
} genie_ckpt_t;

/* Open epoch `epoch` of root, or with epoch 0 the newest complete one
 * (incomplete ones are skipped; `skipped(epoch, why, arg)` is told about
 * each, may be NULL).  GENIE_ERR_NOT_FOUND: no complete epoch. */
genie_status_t genie_ckpt_open(const char *root, uint64_t epoch,
                               void (*skipped)(uint64_t epoch, const char *why, void *arg),
                               void *arg, genie_ckpt_t **ck_p);
void           genie_ckpt_close(genie_ckpt_t *ck);

/* ---- reading KV data (checksums verified) ----------------------------------- */

typedef struct genie_ckpt_file genie_ckpt_file_t;

genie_status_t genie_ckpt_file_open(const char *path, genie_ckpt_file_t **f_p);
/* Read KV tensor `name` of session `session_id` into buf (nbytes = its size).
 * dtype/ndim/shape must match the dataset's.  A Fletcher32 failure is
 * GENIE_ERR_CORRUPT: "<path>: dataset /sessions/<id>/kv/<name> failed its
 * Fletcher32 checksum". */
genie_status_t genie_ckpt_file_read_kv(genie_ckpt_file_t *f, uint64_t session_id, const char *name,
                                       genie_dtype_t dtype, int ndim, const int64_t *shape,
                                       void *buf, uint64_t nbytes);
void           genie_ckpt_file_close(genie_ckpt_file_t *f);

/* Read every dataset of every file of an epoch directory, checking
 * checksums; report(file, dataset, st, message, arg) per dataset (st
 * GENIE_OK or the error).  *n_bad_p = datasets that failed. */
genie_status_t genie_ckpt_verify(const char *epoch_dir,
                                 void (*report)(const char *file, const char *dataset,
                                                genie_status_t st, const char *msg, void *arg),
                                 void *arg, uint32_t *n_bad_p);

/* ---- how the writes reached the disk ------------------------------------------- */

/* Rank files send their large KV chunks to the disk with O_DIRECT, not
 * through the page cache, and a restore reads them back the same way
 * (GENIE_CKPT_DIRECT=0 turns this off; a file system that refuses O_DIRECT
 * turns it off with one line on stderr).  Totals for this process so far: */
typedef struct genie_ckpt_io_stats {
    uint64_t written_direct;   /* KV bytes written with O_DIRECT                   */
    uint64_t written_cached;   /* raw-data bytes written through the page cache    */
    uint64_t read_direct;      /* KV bytes read with O_DIRECT                      */
    uint64_t fallbacks;        /* files that started or went on without O_DIRECT   */
} genie_ckpt_io_stats_t;

void genie_ckpt_io_stats(genie_ckpt_io_stats_t *stats_p);

/* ---- progress while a file is read or written ------------------------------- */

/* A process-wide hook the rank-file writer and the KV reader call between
 * pieces of their I/O (every read or write, and the writeback before the
 * final fsync, goes in pieces of 256 KiB to 4 MiB, sized to take about
 * 25 ms on the disk at hand): once 10 ms or 4 MiB have passed since the
 * last call, so at least every 100 ms of I/O on disks down to about
 * 3.5 MB/s, and an executor busy with a large file still answers liveness
 * probes.  fn runs in the thread doing the I/O, in the middle of an HDF5
 * call: it must not call into this library or HDF5.  NULL fn: no hook
 * (and 4 MiB pieces). */
void genie_ckpt_set_progress(void (*fn)(void *arg), void *arg);

/* ---- fault injection (tests) -------------------------------------------------- */

/* With GENIE_CKPT_CRASH_AT=N in the environment, the N-th call in this
 * process (counting from 1) kills the process with SIGKILL.  The writers call
 * it between every step of a commit; `where` names the step for the test's
 * log (GENIE_CKPT_CRASH_LOG=path appends "N where" before dying). */
void genie_ckpt_fault_point(const char *where);

#endif

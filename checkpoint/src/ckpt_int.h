/*
 * Internal interfaces between the checkpoint library's files: the epoch
 * scan and directory creation (ckpt_dir.c), the progress hook
 * (ckpt_progress.c), and the manifest and rank-file readers (ckpt_read.c)
 * that listing, opening and verifying share.  Every reader checks what it
 * reads against docs/checkpoint-format.md and records one line
 * (genie_set_error) naming the file and object on failure.
 */
#ifndef GENIE_CKPT_INT_H
#define GENIE_CKPT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "genie/ckpt.h"

/* Epoch numbers of the epoch directories under root (canonical names
 * "epoch-%08llu", real directories), ascending; caller frees *ep_p. */
genie_status_t ckpt_scan_epochs(const char *root, uint64_t **ep_p, uint32_t *n_p);
/* mkdir -p (mode 0700): every directory created is checked to be a real
 * directory of the user that neither group nor others may write
 * (GENIE_ERR_DENIED otherwise); existing ones are left to the caller. */
genie_status_t ckpt_mkdirs(const char *path);
/* The epoch of a directory named like an epoch (its last component), or 0. */
uint64_t       ckpt_dir_epoch(const char *dir);

/* Read and check <dir>/manifest.h5 and the files it lists (present, with
 * the recorded sizes).  epoch: the one the manifest must name (0: any).  On
 * failure why (cap) says why, relative to dir ("no manifest.h5 ...",
 * "rank-0002.h5 has ..."), and the recorded error names dir.  Missing
 * manifest or directory: GENIE_ERR_NOT_FOUND; another version:
 * GENIE_ERR_VERSION; anything else wrong: GENIE_ERR_CORRUPT. */
genie_status_t ckpt_read_manifest(const char *dir, uint64_t epoch, genie_ckpt_manifest_t *m, char *why,
                                  size_t cap);
void           ckpt_free_manifest(genie_ckpt_manifest_t *m);

/* Read and check the session metadata of the rank file `path` (everything
 * but KV data; tokens, lineage and rng are read and their checksums
 * verified).  expect (may be NULL): the manifest's entry the file must
 * match (rank, sessions), epoch (0: any) the epoch it must name, job (may
 * be NULL) the manifest's job, which must be the file's.  Appends the
 * sessions to *ss_p / *n_p (grown with realloc). */
genie_status_t ckpt_read_rank(const char *path, const char *name, const genie_ckpt_file_entry_t *expect,
                              uint64_t epoch, const char *job, genie_ckpt_session_t **ss_p, uint32_t *n_p);
void           ckpt_free_sessions(genie_ckpt_session_t *ss, uint32_t n);

/* Called after each piece of I/O: `bytes` moved (they count for the
 * hook's 4 MiB), a piece of `len` bytes that took io_ns (for the piece
 * size; len 0: no measure).  Calls the hook of genie_ckpt_set_progress
 * when 10 ms or 4 MiB have passed since its last call. */
void           ckpt_progress(uint64_t bytes, uint64_t len, uint64_t io_ns);
/* The size of the next piece of I/O: CKPT_PIECE_MAX without a hook; with
 * one, a power of two from CKPT_PIECE_MIN to CKPT_PIECE_MAX that the last
 * pieces' speed moves in about 25 ms (starting from CKPT_PIECE_MIN when the
 * hook is set), so that the hook is called at least every 100 ms of I/O on
 * disks down to about 3.5 MB/s.  A multiple of 4096: pieces keep a
 * request's alignment to the page grid. */
size_t         ckpt_progress_piece(void);
uint64_t       ckpt_now_ns(void);
#define CKPT_PIECE_MAX ((size_t)4 << 20)
#define CKPT_PIECE_MIN ((size_t)256 << 10)

/* genie_last_error() without its "genie: checkpoint " prefix, into out. */
const char    *ckpt_why(char *out, size_t cap);

#endif

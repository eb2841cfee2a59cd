/*
 * genie.conf: the settings of genie-launch and of the SPANK plugin, and the
 * libconfig file they come from (configs/genie.conf documents every key).
 * Precedence: command-line flags over the file over the defaults below.
 * Every value is checked here, when it is read, so that a bad file is refused
 * with its name, line and key before anything is created or started.
 *
 * One reader for both programs (the library genie_config, config/, linked
 * into genie-launch and into genie_spank.so), so that a file one of them
 * accepts the other accepts too.
 * The `slurm` group is the admin's policy for srun --genie-phases; genie-launch
 * checks it and otherwise ignores it.
 */
#ifndef GENIE_CONFIG_H
#define GENIE_CONFIG_H

#include <stdint.h>

#include "genie/phase_spec.h"
#include "genie/status.h"

#define GENIE_LAUNCH_DEFAULT_BACKEND      "auto"
#define GENIE_LAUNCH_DEFAULT_KV_MODE      "colocated"
#define GENIE_LAUNCH_DEFAULT_ARENA_MB     1024
#define GENIE_LAUNCH_DEFAULT_TLS          "self,posix,cma,tcp"
#define GENIE_LAUNCH_DEFAULT_KEEPALIVE_MS 1000

/* Ranges, also quoted in the error messages and in configs/genie.conf. */
#define GENIE_LAUNCH_MAX_THREADS      4096
#define GENIE_LAUNCH_MAX_ARENA_MB     (1 << 20)        /* 1 TiB per executor */
#define GENIE_LAUNCH_MAX_TIMEOUT_S    1e9
#define GENIE_LAUNCH_MAX_KEEPALIVE_MS 86400000         /* one day */
#define GENIE_LAUNCH_MAX_TLS_LEN      255
#define GENIE_LAUNCH_MAX_SLICES_PER_GPU 64

#define GENIE_LAUNCH_DEFAULT_RENDEZVOUS "/tmp"

/* The waits of a job.  Every one is finite: a value of 0 or below is refused
 * (there is no "wait forever"), and on expiry the waiting rank prints one
 * "genie:" line naming the rank, its phase/slice, host/pid and the
 * operation.  genie-launch and the SPANK plugin give every rank each value as
 * the variable `env`, always (the default too), so that all ranks of a job
 * wait the same.  genie_launch_waits[] is the one list of key, variable and
 * default; the ranks read the variables (transport-ucx, launcher). */
#define GENIE_LAUNCH_MIN_WAIT_S 0.001
#define GENIE_LAUNCH_MAX_WAIT_S 1e6
enum {
    GENIE_LAUNCH_WAIT_REQUEST,      /* no sign of life from a busy or waited-for rank */
    GENIE_LAUNCH_WAIT_HANDOFF,      /* one KV-cache handoff between two executors     */
    GENIE_LAUNCH_WAIT_CHECKPOINT,   /* one executor writing or reading its rank file  */
    GENIE_LAUNCH_WAIT_BOOTSTRAP,    /* job start: address exchange, first connections */
    GENIE_LAUNCH_N_WAITS
};
typedef struct genie_launch_wait_info {
    const char *key;        /* genie.conf key, e.g. "request_timeout_s" */
    const char *env;        /* e.g. "GENIE_REQUEST_TIMEOUT_S"            */
    double      default_s;
} genie_launch_wait_info_t;
extern const genie_launch_wait_info_t genie_launch_waits[GENIE_LAUNCH_N_WAITS];

/* memory_mb: each executor's memory budget in MiB (GENIE_MEMORY_MB); 0 = the
 * node's physical memory (the executor reads MemTotal). */
#define GENIE_LAUNCH_MAX_MEMORY_MB 1073741824   /* 1 PiB */

/* slurm = { ... }: what srun --genie-phases may ask for and how slices map to
 * GPUs.  Strings are owned (NULL = not set). */
typedef struct genie_launch_slurm {
    uint32_t slices_per_gpu;            /* default for every phase, 1..MAX_SLICES_PER_GPU */
    uint32_t n_phase_spg;               /* per-phase overrides:                        */
    struct {
        char     name[GENIE_PHASE_NAME_MAX + 1];
        uint32_t slices_per_gpu;
    } phase_spg[GENIE_PHASE_SPEC_MAX_ENTRIES];
    int      driver_gpu;                /* the driver task gets a GPU of its own       */
    int      cpu_fallback;              /* a step without GPUs runs on the CPU backend  */
    char    *rendezvous_dir;            /* where each step's 0700 directory goes       */
    char    *checkpoint_root;           /* default checkpoint dir root; NULL = none    */
    char    *allowed_phases;            /* "prefill,decode"; NULL = any valid name     */
    int64_t  max_slices;                /* 0 = no limit on the sum of slices           */
} genie_launch_slurm_t;

/* checkpoint = { ... }: the driver's checkpoint policy, passed to every task
 * as GENIE_CHECKPOINT_* / GENIE_TERM_GRACE_S.  Negative (NULL) = not set: the
 * driver's and executors' own defaults apply. */
#define GENIE_LAUNCH_MAX_CKPT_STEPS 1000000000
#define GENIE_LAUNCH_MAX_CKPT_KEEP  1000
#define GENIE_LAUNCH_MAX_GRACE_S    86400
#define GENIE_LAUNCH_MAX_CKPT_DIR   4095             /* bytes, without the NUL */
typedef struct genie_launch_checkpoint {
    char   *dir;                /* where epochs go (as given: launch.c makes it absolute) */
    int64_t every_steps;        /* 0..MAX_CKPT_STEPS, 0 = not by steps     */
    double  every_s;            /* 0..MAX_TIMEOUT_S, 0 = not by time       */
    int64_t keep;               /* 1..MAX_CKPT_KEEP complete epochs kept    */
    int64_t term_grace_s;       /* 1..MAX_GRACE_S executors serve after SIGTERM */
} genie_launch_checkpoint_t;

/* spares = { decode = 1; }: spare slices genie-launch adds to the phases of
 * its spec (--phases or phases), where the spec does not give its own "+S".
 * Only genie-launch uses it; the Slurm plugin reads the key (so that one
 * file serves both) and ignores it: srun users write decode:2+1.  A later
 * file's group replaces an earlier one's. */
typedef struct genie_launch_spares {
    uint32_t n;                         /* entries in phase[]                      */
    char    *file;                      /* the file the group came from (owned)    */
    struct {
        char     name[GENIE_PHASE_NAME_MAX + 1];
        uint32_t spares;                /* 0..GENIE_PHASE_MAX_SLICES               */
        int      line;                  /* in `file`, for messages                 */
    } phase[GENIE_PHASE_SPEC_MAX_ENTRIES];
} genie_launch_spares_t;

typedef struct genie_launch_config {
    char   *phases;            /* NULL: not given; else a spec the parser accepted */
    char   *backend;           /* "cpu" | "cuda" | "auto"                          */
    int64_t threads;           /* 0..MAX_THREADS, 0 = one share of the cores       */
    char   *kv_mode;           /* "colocated" | "blind"                            */
    int64_t arena_mb;          /* 1..MAX_ARENA_MB                                  */
    int64_t memory_mb;         /* 0..MAX_MEMORY_MB, 0 = the node's physical memory */
    double  wait_s[GENIE_LAUNCH_N_WAITS]; /* MIN_WAIT_S..MAX_WAIT_S, genie_launch_waits[] */
    char   *ucx_tls;           /* UCX_TLS value                                    */
    int64_t ucx_keepalive_ms;  /* 1..MAX_KEEPALIVE_MS                              */
    genie_launch_slurm_t slurm;
    genie_launch_checkpoint_t ckpt;
    genie_launch_spares_t spares;
    int     slurm_allowed;     /* 0: a `slurm` group is refused (a user's file)     */
} genie_launch_config_t;

/* Where the reader's one-line messages go (default: stderr with a
 * "genie-launch: " prefix); the SPANK plugin routes them to slurm_error. */
typedef void (*genie_launch_config_report_fn)(const char *msg);
void genie_launch_config_set_report(genie_launch_config_report_fn fn);

/* Defaults into *cfg (strings are owned by cfg; free with _fini). */
genie_status_t genie_launch_config_init(genie_launch_config_t *cfg);
void           genie_launch_config_fini(genie_launch_config_t *cfg);

/* Read the libconfig file `path` over the values in *cfg.  On error prints one
 * "genie-launch: FILE:LINE: ..." line and returns a negative status; *cfg then
 * holds a mix of old and new values and should only be freed. */
genie_status_t genie_launch_config_load(genie_launch_config_t *cfg, const char *path);

/* Replace a string setting (strdup); GENIE_ERR_NOMEM, printed, on failure. */
genie_status_t genie_launch_config_set(char **field_p, const char *value);

/* Value checks shared by the file and the command line: 1 if acceptable. */
int genie_launch_backend_ok(const char *v);
int genie_launch_kv_mode_ok(const char *v);
/* checkpoint.dir / --checkpoint-dir: 1..MAX_CKPT_DIR bytes, no control bytes
 * (the value travels in the environment and in one-line messages). */
int genie_launch_ckpt_dir_ok(const char *v);

/* Add the spares group's spare slices to spec (parsed from spec_text, whose
 * entries are kept as they are where they give "+S" themselves: the command
 * line over the file) and recompute its total.  A phase of the group that is
 * not in the spec, or a phase that would exceed GENIE_PHASE_MAX_SLICES, is
 * refused with one "FILE:LINE: spares.NAME: ..." line; spec is then left as
 * it was. */
genie_status_t genie_launch_config_apply_spares(const genie_launch_config_t *cfg,
                                                const char *spec_text, genie_phase_spec_t *spec);

/* Slices of `phase` that share one GPU under the slurm group. */
uint32_t genie_launch_slices_per_gpu(const genie_launch_config_t *cfg, const char *phase);

/* Whole decimal number in [lo, hi] with nothing else around it. */
int genie_launch_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *value_p);

#endif

/*
 * genie-launch's internal interface, shared by its files:
 *   launch.c         main, command line, settings, --dry-run
 *   launch_mpirun.c  the Open MPI MPMD command line
 *   launch_srun.c    the srun --multi-prog command line and file
 *   launch_run.c     job directory, secret, running the launcher, cleanup
 *   launch_shim.c    --driver-shim: rank 0's wrapper around the user's command
 *   launch_util.c    messages, argument vectors, quoting, PATH lookup
 * and genie.conf through the library genie_config (config/, genie/config.h).
 *
 * Rank layout (the contract with genie-executor and the driver): world rank 0
 * is the driver (the user's command), ranks 1..N are the executors, one per
 * slice, in spec order ("prefill:2,decode:1": ranks 1 and 2 are prefill
 * slices 0 and 1, rank 3 is decode slice 0).  Every rank gets the same
 * environment; executors derive phase and slice from GENIE_PHASES and their
 * rank.
 */
#ifndef GENIE_LAUNCH_H
#define GENIE_LAUNCH_H

#include <limits.h>
#include <stdint.h>
#include <stdio.h>

#include "genie/phase_spec.h"
#include "genie/status.h"
#include "genie/config.h"

#define GENIE_LAUNCH_EXIT_USAGE 2   /* refused or failed before anything started */

/* After the driver has exited, the executors get this long to shut down on
 * their own before the job is terminated (a driver that crashed, or a command
 * that never ran the frontend, leaves them waiting for it forever). */
#define GENIE_LAUNCH_DRIVER_GRACE_S 5
/* After SIGTERM, this long before SIGKILL. */
#define GENIE_LAUNCH_KILL_AFTER_S   5

#define GENIE_LAUNCH_STATUS_FILE    "driver.status"
#define GENIE_LAUNCH_SECRET_FILE    "secret"
#define GENIE_LAUNCH_MULTIPROG_FILE "multi-prog.conf"
#define GENIE_LAUNCH_SECRET_BYTES   32

/* The variables every rank gets, in the order --dry-run prints them. */
enum {
    GENIE_LAUNCH_VAR_PHASES,
    GENIE_LAUNCH_VAR_BACKEND,
    GENIE_LAUNCH_VAR_THREADS,
    GENIE_LAUNCH_VAR_KV_MODE,
    GENIE_LAUNCH_VAR_ARENA_MB,
    GENIE_LAUNCH_VAR_MEMORY_MB,
    GENIE_LAUNCH_VAR_WAITS,     /* GENIE_LAUNCH_N_WAITS of them, genie_launch_waits[] order */
    GENIE_LAUNCH_VAR_SECRET_FILE = GENIE_LAUNCH_VAR_WAITS + GENIE_LAUNCH_N_WAITS,
    GENIE_LAUNCH_VAR_LAUNCHER,
    GENIE_LAUNCH_VAR_JOB_DIR,
    GENIE_LAUNCH_VAR_UCX_TLS,
    GENIE_LAUNCH_VAR_UCX_KEEPALIVE,
    GENIE_LAUNCH_VAR_UCX_POSIX_EH,
    /* optional: left out (name NULL) when not set */
    GENIE_LAUNCH_VAR_CKPT_DIR,
    GENIE_LAUNCH_VAR_CKPT_EVERY_STEPS,
    GENIE_LAUNCH_VAR_CKPT_EVERY_S,
    GENIE_LAUNCH_VAR_CKPT_KEEP,
    GENIE_LAUNCH_VAR_TERM_GRACE,
    GENIE_LAUNCH_VAR_RESTORE_DIR,
    GENIE_LAUNCH_N_VARS
};

typedef struct genie_launch_var {
    const char *name;   /* NULL: not passed at all */
    char        value[PATH_MAX + 64];
    int         kept;   /* 1: the caller had set it already; left as it was */
} genie_launch_var_t;

/* A growing, NULL-terminated argument vector of owned strings. */
typedef struct genie_launch_argv {
    char  **v;          /* (n + 1) */
    size_t  n, cap;
} genie_launch_argv_t;

typedef struct genie_launch {
    genie_launch_config_t cfg;
    genie_phase_spec_t    spec;
    char                  phases[1024];   /* normalised spec text */
    int64_t               threads;        /* per executor, resolved (>= 1) */
    int                   use_srun;
    int                   dry_run;
    int                   verbose;
    char *const          *cmd;            /* (cmd_argc), the user's command */
    int                   cmd_argc;
    char                  self_path[PATH_MAX];
    char                  executor_path[PATH_MAX];
    char                  runner_path[PATH_MAX];   /* mpirun or srun */
    char                  job_dir[PATH_MAX];       /* real, or the template in --dry-run */
    char                  restore_dir[PATH_MAX];   /* --restore, absolute; "" = none */
    char                  ckpt_dir[PATH_MAX];      /* checkpoint.dir, absolute; "" = none */
    genie_launch_var_t    var[GENIE_LAUNCH_N_VARS];
} genie_launch_t;

/* One line "genie-launch: ...\n" on stderr; control bytes become '?' so
 * that user text (paths, specs, file contents) cannot break the line. */
void genie_launch_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

genie_status_t genie_launch_argv_push(genie_launch_argv_t *a, const char *s);
genie_status_t genie_launch_argv_pushf(genie_launch_argv_t *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void           genie_launch_argv_free(genie_launch_argv_t *a);

/* s as one POSIX shell word (bash's $'...' for control bytes). */
void genie_launch_shell_quote(FILE *out, const char *s);

/* Absolute path of an executable `name` on $PATH into out (size PATH_MAX);
 * GENIE_ERR_NOT_FOUND, silently, if there is none. */
genie_status_t genie_launch_find_in_path(const char *name, char *out);

/* 1 if path is an executable regular file. */
int genie_launch_is_executable(const char *path);

/* "<job_dir>/<name>" into out (size PATH_MAX). */
genie_status_t genie_launch_job_path(const genie_launch_t *L, const char *name, char *out);

/* The runner's command line, ready for execv. */
genie_status_t genie_launch_mpirun_argv(const genie_launch_t *L, genie_launch_argv_t *a);
genie_status_t genie_launch_srun_argv(const genie_launch_t *L, genie_launch_argv_t *a);

/* The --multi-prog file's text, each line prefixed with `prefix`. */
genie_status_t genie_launch_srun_multiprog(const genie_launch_t *L, FILE *out, const char *prefix);

/* The mkdtemp template "${TMPDIR:-/tmp}/genie-<pid>-XXXXXX" into L->job_dir. */
genie_status_t genie_launch_job_template(genie_launch_t *L);

/* Fill L->var for L->job_dir (the real directory, or the template). */
void genie_launch_fill_vars(genie_launch_t *L);

/* Create the job directory and secret, export L->var, run the runner and
 * wait for it; the job directory is gone when this returns.  Returns the
 * exit status for genie-launch. */
int genie_launch_run(genie_launch_t *L);

/* genie-launch --driver-shim STATUSFILE -- CMD... (argv as given to main). */
int genie_launch_shim_main(int argc, char **argv);

#endif

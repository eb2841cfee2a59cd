/*
 * genie_spank.so's internal interface, one file per Slurm context (as pyxis
 * does) behind one dispatcher:
 *   genie_spank.c     the SPANK entry points and the option table
 *   spank_settings.c  plugstack.conf arguments, the admin's genie.conf and
 *                     the user's --genie-config, option values
 *   spank_srun.c      srun/sbatch/salloc side: refuse bad requests before
 *                     anything launches, make the step's secret
 *   spank_stepd.c     slurmstepd side: the step's rendezvous directory and
 *                     each task's environment and GPU
 *   spank_gpus.c      task roles and the slice-to-GPU mapping (no Slurm)
 *
 * Every message a user sees is one line that starts "genie: " and says what
 * to do.
 */
#ifndef GENIE_SPANK_H
#define GENIE_SPANK_H

#include <slurm/spank.h>
#include <stdint.h>

#include "genie/phase_spec.h"
#include "genie/config.h"
#include "spank_gpus.h"

/* The step's secret travels from srun to each node's slurmstepd in the
 * step's environment; slurmstepd writes it to a 0600 file and removes the
 * variable before any task starts, so tasks only ever see the file. */
#define GENIE_SPANK_SECRET_ENV   "GENIE_SPANK_STEP_SECRET"
#define GENIE_SPANK_SECRET_BYTES 32
#define GENIE_SPANK_SECRET_FILE  "secret"

enum { GENIE_SPANK_OPT_PHASES, GENIE_SPANK_OPT_RESTORE, GENIE_SPANK_OPT_CKPT,
       GENIE_SPANK_OPT_CONFIG, GENIE_SPANK_N_OPTS };

typedef struct genie_spank_state {
    /* plugstack.conf arguments (override the admin's genie.conf) */
    char              *admin_config;    /* config=          */
    char              *checkpoint_root; /* checkpoint_root= */
    char              *allowed_phases;  /* allowed_phases=  */
    int64_t            max_slices;      /* max_slices=, -1 = not given */

    /* option values as srun/sbatch got them; NULL = not given */
    char              *opt[GENIE_SPANK_N_OPTS];

    /* after genie_spank_settings_load */
    int                loaded;
    genie_launch_config_t cfg;
    genie_phase_spec_t spec;
    char               phases[1024];    /* canonical text of spec */
    genie_spank_layout_t layout;

    /* the last message, so that a task can repeat why the node's setup
     * failed (user_init's own messages reach only slurmd's log) */
    char               last_err[1024];

    /* slurmstepd: the rendezvous directory this step created */
    char               job_dir[1024];
    int                job_dir_made;
} genie_spank_state_t;

extern genie_spank_state_t genie_spank;

/* Print one "genie: ..." line where the user sees it (srun's stderr on the
 * submit side, the task's stderr and slurmd's log on the node side). */
void genie_spank_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* spank_settings.c */
int genie_spank_parse_args(int ac, char **av);
int genie_spank_check_phases(const char *text);          /* option callback's check */
int genie_spank_settings_load(void);                     /* configs + spec + layout */
void genie_spank_settings_free(void);

/* spank_srun.c (S_CTX_LOCAL / S_CTX_ALLOCATOR) */
int genie_spank_srun_post_opt(spank_t sp);
int genie_spank_srun_local_user_init(spank_t sp);

/* spank_stepd.c (S_CTX_REMOTE) */
int genie_spank_stepd_user_init(spank_t sp);
int genie_spank_stepd_task_init(spank_t sp);
int genie_spank_stepd_exit(spank_t sp);

#endif

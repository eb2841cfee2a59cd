/*
 * genie_spank.so: the SPANK plugin that lets Slurm run Genie jobs,
 *   srun --genie-phases=prefill:8,decode:1 python app.py
 * This file is the dispatcher: the option table srun/sbatch/salloc show in
 * --help, and the SPANK entry points, each handing off to the file for its
 * context (genie_spank.h lists them).  A step without --genie-phases is left
 * exactly as it was: every entry point returns at once.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "genie_spank.h"

SPANK_PLUGIN(genie, 1);

genie_spank_state_t genie_spank = { .max_slices = -1 };

void genie_spank_err(const char *fmt, ...)
{
    char    msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    genie_one_line(msg);
    snprintf(genie_spank.last_err, sizeof(genie_spank.last_err), "%s", msg);
    /* srun, sbatch and salloc print to the user's terminal: the line goes
     * there as is, without Slurm's "srun: error: " in front.  On the node,
     * slurm_error reaches slurmd's log and, in a task, the task's stderr,
     * which srun shows ("slurmstepd-NODE: error: genie: ..."). */
    switch (spank_context()) {
    case S_CTX_LOCAL:
    case S_CTX_ALLOCATOR:
        fprintf(stderr, "genie: %s\n", msg);
        break;
    default:
        slurm_error("genie: %s", msg);
        break;
    }
}

static int opt_cb(int val, const char *optarg, int remote);

/* Registered from slurm_spank_init with spank_option_register rather than
 * exported as the spank_options table: Slurm 22.05's sbatch and salloc only
 * know options registered that way. */
static struct spank_option options[] = {
    { "genie-phases", "NAME:N[+S][,...]",
      "Run this step as a Genie job: task 0 runs the program (the driver), then one executor "
      "task per slice, e.g. prefill:8,decode:1 (9 executors, 1 GPU each by default); "
      "decode:2+1 adds a spare decode slice. "
      "Needs -n 1+slices and the GPUs unless the site's cli_filter sets them.",
      1, GENIE_SPANK_OPT_PHASES, opt_cb },
    { "genie-restore", "DIR",
      "Resume the sessions of an earlier Genie job from its checkpoint directory DIR.",
      1, GENIE_SPANK_OPT_RESTORE, opt_cb },
    { "genie-checkpoint-dir", "DIR",
      "Write this job's Genie checkpoints to DIR (default: checkpoint.dir of genie.conf, else "
      "the site's checkpoint_root/JOBID, if set).",
      1, GENIE_SPANK_OPT_CKPT, opt_cb },
    { "genie-config", "FILE",
      "Read Genie settings (backend, threads, UCX, ...) from FILE, a genie.conf without the "
      "slurm group, over the site's.",
      1, GENIE_SPANK_OPT_CONFIG, opt_cb },
    SPANK_OPTIONS_TABLE_END
};

/* Values are only stored here: in slurmstepd the callbacks may run before
 * slurm_spank_init has read the plugstack arguments, so checks that need
 * them wait for init_post_opt (submit side) or user_init (node side).  The
 * phase spec alone is checked at once on the submit side, so that a bad one
 * is refused while the command line is read, before any allocation. */
static int opt_cb(int val, const char *optarg, int remote)
{
    if (val < 0 || val >= GENIE_SPANK_N_OPTS) {
        return -1;
    }
    if (optarg == NULL || strlen(optarg) > 4000 ||
        (val != GENIE_SPANK_OPT_PHASES && optarg[0] == '\0')) {
        genie_spank_err("--%s needs a value of 1..4000 bytes", options[val].name);
        return -1;
    }
    if (!remote && val == GENIE_SPANK_OPT_PHASES && genie_spank_check_phases(optarg) != 0) {
        return -1;
    }
    free(genie_spank.opt[val]);
    genie_spank.opt[val] = strdup(optarg);
    return genie_spank.opt[val] != NULL ? 0 : -1;
}

int slurm_spank_init(spank_t sp, int ac, char **av)
{
    if (genie_spank_parse_args(ac, av) != 0) {
        return -1;
    }
    for (int i = 0; i < GENIE_SPANK_N_OPTS; i++) {
        if (spank_option_register(sp, &options[i]) != ESPANK_SUCCESS) {
            genie_spank_err("cannot register --%s with Slurm", options[i].name);
            return -1;
        }
    }
    return 0;
}

int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
    (void)ac;
    (void)av;
    if (genie_spank.opt[GENIE_SPANK_OPT_PHASES] == NULL) {
        return 0;
    }
    switch (spank_context()) {
    case S_CTX_LOCAL:
    case S_CTX_ALLOCATOR:
        return genie_spank_srun_post_opt(sp);
    default:
        return 0;
    }
}

int slurm_spank_local_user_init(spank_t sp, int ac, char **av)
{
    (void)ac;
    (void)av;
    if (genie_spank.opt[GENIE_SPANK_OPT_PHASES] == NULL) {
        return 0;
    }
    return genie_spank_srun_local_user_init(sp);
}

int slurm_spank_user_init(spank_t sp, int ac, char **av)
{
    (void)ac;
    (void)av;
    if (genie_spank.opt[GENIE_SPANK_OPT_PHASES] == NULL || !spank_remote(sp)) {
        return 0;
    }
    return genie_spank_stepd_user_init(sp);
}

int slurm_spank_task_init(spank_t sp, int ac, char **av)
{
    (void)ac;
    (void)av;
    if (genie_spank.opt[GENIE_SPANK_OPT_PHASES] == NULL || !spank_remote(sp)) {
        return 0;
    }
    return genie_spank_stepd_task_init(sp);
}

int slurm_spank_exit(spank_t sp, int ac, char **av)
{
    int rc = 0;

    (void)ac;
    (void)av;
    if (genie_spank.opt[GENIE_SPANK_OPT_PHASES] != NULL && spank_remote(sp)) {
        rc = genie_spank_stepd_exit(sp);
    }
    genie_spank_settings_free();
    return rc;
}

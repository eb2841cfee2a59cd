/*
 * The Open MPI command line of a job outside Slurm, one MPMD launch:
 *
 *   mpirun [--allow-run-as-root] --oversubscribe -q --enable-recovery --bind-to none
 *          -x VAR ... -np 1 genie-launch --driver-shim JOBDIR/driver.status -- CMD ARGS
 *                   : -np N genie-executor
 *
 * --enable-recovery keeps mpirun from killing the driver when an executor
 * dies: the driver must see the loss and report it itself.  The price is
 * that mpirun's exit status no longer says how rank 0 ended, hence the shim,
 * which writes the driver's status to a file that launch_run.c reads.
 * --oversubscribe: a laptop has fewer cores than driver + executors.
 * --bind-to none: executors size their own thread pools (GENIE_THREADS);
 * Open MPI's default binding to one core each would squeeze them together.
 */
#include <unistd.h>

#include "launch.h"

genie_status_t genie_launch_mpirun_argv(const genie_launch_t *L, genie_launch_argv_t *a)
{
    char status_path[PATH_MAX];

#define PUSH(s)                                             \
    do {                                                    \
        if (genie_launch_argv_push(a, (s)) != GENIE_OK) {   \
            goto err;                                       \
        }                                                   \
    } while (0)

    /* mpirun reads a lone ":" anywhere as the start of the next program. */
    for (int i = 0; i < L->cmd_argc; i++) {
        if (L->cmd[i][0] == ':' && L->cmd[i][1] == '\0') {
            genie_launch_err("argument %d of the command is ':', which mpirun would take as the "
                             "start of another program; pass it another way (e.g. a file)", i + 1);
            return GENIE_ERR_INVALID;
        }
    }
    if (genie_launch_job_path(L, GENIE_LAUNCH_STATUS_FILE, status_path) != GENIE_OK) {
        return GENIE_ERR_INVALID;
    }
    PUSH(L->runner_path);
    if (geteuid() == 0) {
        PUSH("--allow-run-as-root");
    }
    PUSH("--oversubscribe");
    PUSH("-q");
    PUSH("--enable-recovery");
    PUSH("--bind-to");
    PUSH("none");
    for (int i = 0; i < GENIE_LAUNCH_N_VARS; i++) {
        if (L->var[i].name == NULL) {
            continue;
        }
        PUSH("-x");
        PUSH(L->var[i].name);
    }
    PUSH("-np");
    PUSH("1");
    PUSH(L->self_path);
    PUSH("--driver-shim");
    PUSH(status_path);
    PUSH("--");
    for (int i = 0; i < L->cmd_argc; i++) {
        PUSH(L->cmd[i]);
    }
    PUSH(":");
    PUSH("-np");
    if (genie_launch_argv_pushf(a, "%u", (unsigned)L->spec.total_slices) != GENIE_OK) {
        goto err;
    }
    PUSH(L->executor_path);
    return GENIE_OK;
#undef PUSH

err:
    genie_launch_argv_free(a);
    return GENIE_ERR_NOMEM;
}

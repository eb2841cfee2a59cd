/*
 * Inside a Slurm allocation genie-launch starts the same ranks with srun:
 *
 *   srun --mpi=pmix -n N+1 --kill-on-bad-exit=0 --export=ALL --multi-prog JOBDIR/multi-prog.conf
 *
 * with the file
 *
 *   0 'genie-launch' '--driver-shim' 'JOBDIR/driver.status' '--' 'CMD' 'ARGS'...
 *   1-N 'genie-executor'
 *
 * --kill-on-bad-exit=0 plays the part of mpirun's --enable-recovery: the
 * driver outlives a lost executor and reports it.  --export=ALL carries the
 * GENIE_* and UCX_* variables that launch_run.c has set in our environment.
 *
 * Quoting follows slurmstepd's multi-prog reader: inside single quotes every
 * byte is literal (which also keeps it from expanding %t and %o); outside, a
 * backslash makes the next byte literal.  Each word is written as '...' with
 * an embedded ' as '\''.  The reader splits the file at newlines first, so an
 * argument holding a newline cannot be passed and is refused.
 *
 * NOT YET TESTED against a real Slurm: the one-node test cluster arrives with
 * the Slurm issue.  Older Slurm releases also limit a multi-prog line's length
 * and argument count; those limits are to be pinned by that tests.
 * The job directory (secret, status file) is made on the node that runs
 * genie-launch, so a job spanning several nodes needs TMPDIR on a file system
 * they share.
 */
#include <string.h>

#include "launch.h"

static void put_word(FILE *out, const char *s)
{
    fputc('\'', out);
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '\'') {
            fputs("'\\''", out);
        } else {
            fputc(*p, out);
        }
    }
    fputc('\'', out);
}

genie_status_t genie_launch_srun_multiprog(const genie_launch_t *L, FILE *out, const char *prefix)
{
    char status_path[PATH_MAX];

    for (int i = 0; i < L->cmd_argc; i++) {
        if (strchr(L->cmd[i], '\n') != NULL) {
            genie_launch_err("argument %d of the command holds a newline, which srun --multi-prog "
                             "cannot pass; pass it another way (e.g. a file)", i + 1);
            return GENIE_ERR_INVALID;
        }
    }
    if (strchr(L->self_path, '\n') != NULL || strchr(L->executor_path, '\n') != NULL ||
        strchr(L->job_dir, '\n') != NULL) {
        genie_launch_err("a path of genie-launch, genie-executor or TMPDIR holds a newline, which "
                         "srun --multi-prog cannot pass");
        return GENIE_ERR_INVALID;
    }
    if (genie_launch_job_path(L, GENIE_LAUNCH_STATUS_FILE, status_path) != GENIE_OK) {
        return GENIE_ERR_INVALID;
    }
    fprintf(out, "%s# genie-launch: rank 0 is the driver, ranks 1-%u the executors (%s)\n", prefix,
            (unsigned)L->spec.total_slices, L->phases);
    fprintf(out, "%s0 ", prefix);
    put_word(out, L->self_path);
    fputs(" '--driver-shim' ", out);
    put_word(out, status_path);
    fputs(" '--'", out);
    for (int i = 0; i < L->cmd_argc; i++) {
        fputc(' ', out);
        put_word(out, L->cmd[i]);
    }
    fprintf(out, "\n%s1-%u ", prefix, (unsigned)L->spec.total_slices);
    put_word(out, L->executor_path);
    fputc('\n', out);
    return ferror(out) ? GENIE_ERR_IO : GENIE_OK;
}

genie_status_t genie_launch_srun_argv(const genie_launch_t *L, genie_launch_argv_t *a)
{
    char conf_path[PATH_MAX];

    if (genie_launch_job_path(L, GENIE_LAUNCH_MULTIPROG_FILE, conf_path) != GENIE_OK) {
        return GENIE_ERR_INVALID;
    }
    if (genie_launch_argv_push(a, L->runner_path) != GENIE_OK ||
        genie_launch_argv_push(a, "--mpi=pmix") != GENIE_OK ||
        genie_launch_argv_push(a, "-n") != GENIE_OK ||
        genie_launch_argv_pushf(a, "%u", (unsigned)L->spec.total_slices + 1) != GENIE_OK ||
        genie_launch_argv_push(a, "--kill-on-bad-exit=0") != GENIE_OK ||
        genie_launch_argv_push(a, "--export=ALL") != GENIE_OK ||
        genie_launch_argv_push(a, "--multi-prog") != GENIE_OK ||
        genie_launch_argv_push(a, conf_path) != GENIE_OK) {
        genie_launch_argv_free(a);
        return GENIE_ERR_NOMEM;
    }
    return GENIE_OK;
}

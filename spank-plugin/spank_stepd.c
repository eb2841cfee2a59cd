/*
 * The node side of a --genie-phases step (slurmstepd, S_CTX_REMOTE).
 *   user_init  once per node, as the user: the step's rendezvous directory
 *              (0700) with the secret (0600) that srun passed on
 *   task_init  per task, as the user, just before exec: the task's role,
 *              phase and slice, its one GPU, and Genie's settings
 *   exit       once per node, as root: remove the directory again
 * The batch and extern steps of a job submitted with sbatch --genie-phases
 * are left alone: only the srun steps inside run Genie.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "genie_spank.h"

/* Step ids at and above this are Slurm's special steps (batch, extern,
 * interactive, pending). */
#define SPECIAL_STEPS 0xfffffff0u

typedef struct step_ids {
    uint32_t job, step;
    uid_t    uid;
} step_ids_t;

static int get_ids(spank_t sp, step_ids_t *ids_p)
{
    if (spank_get_item(sp, S_JOB_ID, &ids_p->job) != ESPANK_SUCCESS ||
        spank_get_item(sp, S_JOB_STEPID, &ids_p->step) != ESPANK_SUCCESS ||
        spank_get_item(sp, S_JOB_UID, &ids_p->uid) != ESPANK_SUCCESS) {
        genie_spank_err("cannot read the job and step ids from Slurm");
        return -1;
    }
    return 0;
}

static int hex_secret_ok(const char *s)
{
    size_t n = strlen(s);

    if (n != 2 * GENIE_SPANK_SECRET_BYTES) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

/* mkdir 0700, or take over a directory of an earlier try of this very step
 * only if it is plainly ours (a directory, owned by the user, mode 0700). */
static int make_job_dir(const char *dir, uid_t uid)
{
    struct stat st;

    if (mkdir(dir, 0700) == 0) {
        return 0;
    }
    if (errno != EEXIST) {
        genie_spank_err("cannot create the step's directory %s: %s (slurm.rendezvous_dir in "
                        "genie.conf)", dir, strerror(errno));
        return -1;
    }
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != uid ||
        (st.st_mode & 0777) != 0700) {
        genie_spank_err("%s exists and is not this user's 0700 directory; remove it or set "
                        "slurm.rendezvous_dir in genie.conf", dir);
        return -1;
    }
    return 0;
}

static int write_secret(const char *dir, const char *hex)
{
    char    path[1100];
    int     fd;
    ssize_t n;
    size_t  len = strlen(hex);

    snprintf(path, sizeof(path), "%s/%s", dir, GENIE_SPANK_SECRET_FILE);
    (void)unlink(path);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        genie_spank_err("cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    n = write(fd, hex, len);
    if (n != (ssize_t)len || write(fd, "\n", 1) != 1 || fsync(fd) != 0) {
        genie_spank_err("cannot write %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return close(fd) == 0 ? 0 : -1;
}

int genie_spank_stepd_user_init(spank_t sp)
{
    step_ids_t ids;
    char       secret[2 * GENIE_SPANK_SECRET_BYTES + 8];
    char      *dir = genie_spank.job_dir;

    if (get_ids(sp, &ids) != 0) {
        return -1;
    }
    if (ids.step >= SPECIAL_STEPS) {
        return 0;
    }
    if (genie_spank_settings_load() != 0) {
        return -1;
    }
    if (spank_getenv(sp, GENIE_SPANK_SECRET_ENV, secret, (int)sizeof(secret)) != ESPANK_SUCCESS ||
        !hex_secret_ok(secret)) {
        genie_spank_err("the step came without a valid secret from srun; genie_spank.so must be "
                        "in plugstack.conf on the submit host as well as on the nodes");
        return -1;
    }
    (void)spank_unsetenv(sp, GENIE_SPANK_SECRET_ENV);
    if ((size_t)snprintf(dir, sizeof(genie_spank.job_dir), "%s/genie-%u-%u.%u",
                         genie_spank.cfg.slurm.rendezvous_dir, (unsigned)ids.uid, ids.job,
                         ids.step) >= sizeof(genie_spank.job_dir)) {
        genie_spank_err("slurm.rendezvous_dir is too long");
        return -1;
    }
    if (make_job_dir(dir, ids.uid) != 0) {
        return -1;
    }
    genie_spank.job_dir_made = 1;
    return write_secret(dir, secret);
}

static int set(spank_t sp, const char *name, const char *value)
{
    if (spank_setenv(sp, name, value, 1) != ESPANK_SUCCESS) {
        genie_spank_err("cannot set %s for the task", name);
        return -1;
    }
    return 0;
}

/* UCX settings from genie.conf, unless the user's environment has them. */
static int set_default(spank_t sp, const char *name, const char *value)
{
    char        have[8];
    spank_err_t e = spank_getenv(sp, name, have, (int)sizeof(have));

    if (e == ESPANK_SUCCESS || e == ESPANK_NOSPACE) {
        return 0;
    }
    return set(sp, name, value);
}

/* This node's tasks (global ids) and how many of them are executors. */
static int local_tasks(spank_t sp, uint32_t **ids_p, uint32_t *n_p, uint32_t *executors_p)
{
    uint32_t  n = 0, execs = 0;
    uint32_t *ids;

    if (spank_get_item(sp, S_JOB_LOCAL_TASK_COUNT, &n) != ESPANK_SUCCESS || n == 0 ||
        (ids = calloc(n, sizeof(*ids))) == NULL) {
        genie_spank_err("cannot read this node's tasks from Slurm");
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (spank_get_item(sp, S_JOB_LOCAL_TO_GLOBAL_ID, i, &ids[i]) != ESPANK_SUCCESS) {
            genie_spank_err("cannot read the global id of local task %u from Slurm", i);
            free(ids);
            return -1;
        }
        execs += ids[i] != 0;
    }
    *ids_p       = ids;
    *n_p         = n;
    *executors_p = execs;
    return 0;
}

/* The step's GPUs on this node, as CUDA will number them. */
static void node_gpus(spank_t sp, char *buf, int len)
{
    if (spank_getenv(sp, "CUDA_VISIBLE_DEVICES", buf, len) != ESPANK_SUCCESS &&
        spank_getenv(sp, "SLURM_STEP_GPUS", buf, len) != ESPANK_SUCCESS) {
        buf[0] = '\0';
    }
}

/* CUDA_VISIBLE_DEVICES and GENIE_BACKEND for task t. */
static int set_gpu(spank_t sp, const genie_spank_task_t *t, uint32_t id, const uint32_t *local,
                   uint32_t n_local)
{
    const genie_launch_config_t *cfg = &genie_spank.cfg;
    char                         gpus[4096], mine[GENIE_SPANK_MAX_GPU_NAME + 1], err[600];
    genie_status_t               rc;

    node_gpus(sp, gpus, (int)sizeof(gpus));
    if (genie_spank_count_gpus(gpus) == 0) {
        if (t->driver) {
            return 0;
        }
        if (!cfg->slurm.cpu_fallback || strcmp(cfg->backend, "cuda") == 0) {
            genie_spank_err("the step has no GPUs on this node and %s; add --gpus=%u",
                            strcmp(cfg->backend, "cuda") == 0 ? "backend is \"cuda\""
                                                              : "slurm.cpu_fallback is false",
                            genie_spank_gpus_needed(&genie_spank.layout));
            return -1;
        }
        /* Asked for by the config, but never silent: the node's first
         * executor says so on its stderr, which srun shows the user (and
         * get_stats() reports backend "cpu").  The hint does not promise
         * GPUs: with no CUDA backend in this build, an "auto" step given
         * GPUs runs on the CPU too (and its executors say so themselves). */
        {
            uint32_t first = UINT32_MAX;

            for (uint32_t i = 0; i < n_local; i++) {
                first = local[i] != 0 && local[i] < first ? local[i] : first;
            }
            if (id == first) {
                fprintf(stderr, "genie: the step has no GPUs on this node: its executors run on "
                        "the CPU backend (slurm.cpu_fallback in genie.conf; this build has no "
                        "CUDA backend, so --gpus=%u would not change that)\n",
                        genie_spank_gpus_needed(&genie_spank.layout));
            }
        }
        return set(sp, "GENIE_BACKEND", "cpu");
    }
    rc = genie_spank_pick_gpu(&genie_spank.layout, local, n_local, id, gpus, mine, sizeof(mine),
                              err, sizeof(err));
    if (rc == GENIE_ERR_NOT_FOUND) {
        return set(sp, "CUDA_VISIBLE_DEVICES", "");   /* the driver: no GPU unless configured */
    }
    if (rc != GENIE_OK) {
        genie_spank_err("%s", strncmp(err, "genie: ", 7) == 0 ? err + 7 : err);
        return -1;
    }
    return set(sp, "CUDA_VISIBLE_DEVICES", mine);
}

static int set_settings(spank_t sp, uint32_t executors_here)
{
    const genie_launch_config_t *cfg = &genie_spank.cfg;
    char                         v[64];
    long                         cores = sysconf(_SC_NPROCESSORS_ONLN);
    int64_t                      threads = cfg->threads;

    if (threads == 0) {
        /* one share of this node's cores, as genie-launch does */
        threads = cores > 0 && executors_here > 0 ? cores / (long)executors_here : 1;
        threads = threads > 0 ? threads : 1;
    }
    snprintf(v, sizeof(v), "%lld", (long long)threads);
    if (set(sp, "GENIE_BACKEND", cfg->backend) != 0 || set(sp, "GENIE_THREADS", v) != 0 ||
        set(sp, "GENIE_KV_MODE", cfg->kv_mode) != 0) {
        return -1;
    }
    snprintf(v, sizeof(v), "%lld", (long long)cfg->arena_mb);
    if (set(sp, "GENIE_ARENA_MB", v) != 0) {
        return -1;
    }
    snprintf(v, sizeof(v), "%lld", (long long)cfg->memory_mb);
    if (set(sp, "GENIE_MEMORY_MB", v) != 0) {
        return -1;
    }
    /* Every wait, always (the default too), as genie-launch does: all tasks
     * of the step see the same numbers whatever their environment says. */
    for (int i = 0; i < GENIE_LAUNCH_N_WAITS; i++) {
        snprintf(v, sizeof(v), "%.9g", cfg->wait_s[i]);
        if (set(sp, genie_launch_waits[i].env, v) != 0) {
            return -1;
        }
    }
    snprintf(v, sizeof(v), "%lldms", (long long)cfg->ucx_keepalive_ms);
    /* Shared-memory transports advertise peer error handling only with
     * this (docs/wire-protocol.md); the transport adds the SysV one itself
     * where UCX_TLS may select sysv. */
    if (set_default(sp, "UCX_TLS", cfg->ucx_tls) != 0 ||
        set_default(sp, "UCX_KEEPALIVE_INTERVAL", v) != 0 ||
        set_default(sp, "UCX_POSIX_ERROR_HANDLING", "y") != 0) {
        return -1;
    }
    return 0;
}

/* Checkpoint, restore and user-config paths the runtime reads. */
static int set_paths(spank_t sp, uint32_t job)
{
    const genie_spank_state_t *s = &genie_spank;
    char                       v[4200];

    if (s->opt[GENIE_SPANK_OPT_CKPT] != NULL) {
        if (set(sp, "GENIE_CHECKPOINT_DIR", s->opt[GENIE_SPANK_OPT_CKPT]) != 0) {
            return -1;
        }
    } else if (s->cfg.ckpt.dir != NULL) {
        if (set(sp, "GENIE_CHECKPOINT_DIR", s->cfg.ckpt.dir) != 0) {
            return -1;
        }
    } else if (s->cfg.slurm.checkpoint_root != NULL) {
        snprintf(v, sizeof(v), "%s/%u", s->cfg.slurm.checkpoint_root, job);
        if (set(sp, "GENIE_CHECKPOINT_DIR", v) != 0) {
            return -1;
        }
    }
    /* The checkpoint policy of genie.conf's checkpoint group, where set. */
    if (s->cfg.ckpt.every_steps >= 0) {
        snprintf(v, sizeof(v), "%lld", (long long)s->cfg.ckpt.every_steps);
        if (set(sp, "GENIE_CHECKPOINT_EVERY_STEPS", v) != 0) {
            return -1;
        }
    }
    if (s->cfg.ckpt.every_s >= 0) {
        snprintf(v, sizeof(v), "%.9g", s->cfg.ckpt.every_s);
        if (set(sp, "GENIE_CHECKPOINT_EVERY_S", v) != 0) {
            return -1;
        }
    }
    if (s->cfg.ckpt.keep >= 0) {
        snprintf(v, sizeof(v), "%lld", (long long)s->cfg.ckpt.keep);
        if (set(sp, "GENIE_CHECKPOINT_KEEP", v) != 0) {
            return -1;
        }
    }
    if (s->cfg.ckpt.term_grace_s >= 0) {
        snprintf(v, sizeof(v), "%lld", (long long)s->cfg.ckpt.term_grace_s);
        if (set(sp, "GENIE_TERM_GRACE_S", v) != 0) {
            return -1;
        }
    }
    if (s->opt[GENIE_SPANK_OPT_RESTORE] != NULL &&
        set(sp, "GENIE_RESTORE_DIR", s->opt[GENIE_SPANK_OPT_RESTORE]) != 0) {
        return -1;
    }
    if (s->opt[GENIE_SPANK_OPT_CONFIG] != NULL &&
        set(sp, "GENIE_CONFIG", s->opt[GENIE_SPANK_OPT_CONFIG]) != 0) {
        return -1;
    }
    return 0;
}

/* Genie's ranks bootstrap through MPI: the step must start them with PMIx. */
static int check_mpi(spank_t sp)
{
    char mpi[64];

    if (spank_getenv(sp, "SLURM_MPI_TYPE", mpi, (int)sizeof(mpi)) == ESPANK_SUCCESS &&
        strncmp(mpi, "pmix", 4) != 0) {
        genie_spank_err("this step starts its tasks with --mpi=%s, but Genie's ranks need PMIx: "
                        "add --mpi=pmix (or set MpiDefault=pmix in slurm.conf)", mpi);
        return -1;
    }
    return 0;
}

int genie_spank_stepd_task_init(spank_t sp)
{
    step_ids_t         ids;
    genie_spank_task_t t;
    uint32_t           id = 0, n_local = 0, execs = 0, *local = NULL;
    char               v[1200];
    int                rc = -1;

    if (get_ids(sp, &ids) != 0) {
        return -1;
    }
    if (ids.step >= SPECIAL_STEPS) {
        return 0;
    }
    if (!genie_spank.loaded || !genie_spank.job_dir_made) {
        char why[sizeof(genie_spank.last_err)];

        snprintf(why, sizeof(why), "%s", genie_spank.last_err[0] != '\0' ?
                 genie_spank.last_err : "no reason recorded");
        genie_spank_err("the step's setup on this node failed: %s", why);
        return -1;
    }
    if (spank_get_item(sp, S_TASK_GLOBAL_ID, &id) != ESPANK_SUCCESS ||
        genie_spank_task(&genie_spank.layout, id, &t) != GENIE_OK) {
        genie_spank_err("task %u is not part of a %u-task --genie-phases=%s step", id,
                        genie_spank_tasks_needed(&genie_spank.layout), genie_spank.phases);
        return -1;
    }
    if (check_mpi(sp) != 0 || local_tasks(sp, &local, &n_local, &execs) != 0) {
        return -1;
    }
    snprintf(v, sizeof(v), "%s/%s", genie_spank.job_dir, GENIE_SPANK_SECRET_FILE);
    if (set(sp, "GENIE_ROLE", t.driver ? "driver" : "executor") != 0 ||
        set(sp, "GENIE_PHASES", genie_spank.phases) != 0 ||
        set(sp, "GENIE_SECRET_FILE", v) != 0 ||
        set(sp, "GENIE_JOB_DIR", genie_spank.job_dir) != 0 ||
        set(sp, "GENIE_LAUNCHER", "srun") != 0 ||
        set_settings(sp, execs) != 0 || set_paths(sp, ids.job) != 0) {
        goto out;
    }
    if (t.driver) {
        (void)spank_unsetenv(sp, "GENIE_PHASE");
        (void)spank_unsetenv(sp, "GENIE_PHASE_RANK");
    } else {
        snprintf(v, sizeof(v), "%u", t.phase_rank);
        if (set(sp, "GENIE_PHASE", genie_spank.spec.entry[t.entry].name) != 0 ||
            set(sp, "GENIE_PHASE_RANK", v) != 0) {
            goto out;
        }
    }
    rc = set_gpu(sp, &t, id, local, n_local);
out:
    free(local);
    return rc;
}

int genie_spank_stepd_exit(spank_t sp)
{
    int dfd;

    (void)sp;
    if (!genie_spank.job_dir_made) {
        return 0;
    }
    genie_spank.job_dir_made = 0;
    /* As root, in a directory the user owns: only the names this plugin
     * made, relative to a descriptor of the directory itself. */
    dfd = open(genie_spank.job_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd >= 0) {
        (void)unlinkat(dfd, GENIE_SPANK_SECRET_FILE, 0);
        close(dfd);
    }
    if (rmdir(genie_spank.job_dir) != 0 && errno != ENOENT) {
        slurm_info("genie: could not remove %s: %s", genie_spank.job_dir, strerror(errno));
    }
    return 0;
}

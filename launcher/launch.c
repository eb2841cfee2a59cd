/*
 * genie-launch: starts a Genie job on one machine or inside a Slurm
 * allocation.  World rank 0 is the driver (the user's command, wrapped in
 * --driver-shim), ranks 1..N the executors, one per slice of --phases (the
 * layout is spelled out in launch.h).  This file reads the command line and
 * the config file, resolves every setting, and either prints what it would do
 * (--dry-run) or hands over to launch_run.c.
 *
 * Anything wrong with what the user gave us is refused here, before anything
 * is created or started: one line on stderr starting "genie-launch: ", exit
 * status 2.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include "launch.h"

#define EXAMPLE_CMD "genie-launch --phases prefill:1,decode:1 -- python app.py"

static void usage(FILE *out)
{
    fprintf(out,
"usage: genie-launch --phases SPEC [options] -- CMD [ARGS...]\n"
"\n"
"Runs CMD as the driver (world rank 0) of a Genie job and one genie-executor\n"
"per slice of SPEC as ranks 1..N, in spec order, through Open MPI (mpirun), or\n"
"through srun when run inside a Slurm allocation.\n"
"\n"
"options:\n"
"  --phases SPEC        slices per phase, e.g. prefill:2,decode:1 (3 executors);\n"
"                       decode:2+1 adds 1 spare decode slice (4 executors)\n"
"  --config FILE        libconfig settings file (default: $GENIE_CONFIG if set;\n"
"                       keys documented in configs/genie.conf)\n"
"  --backend B          cpu, cuda or auto (default auto: the executor decides)\n"
"  --threads N          threads per executor; 0 = cores / executors (default)\n"
"  --kv-mode M          colocated (default) or blind (KV cache shipped every\n"
"                       step; for the benchmark)\n"
"  --checkpoint-dir DIR checkpoint generation sessions into DIR (HDF5 epochs;\n"
"                       made absolute, created by the driver)\n"
"  --checkpoint-every N checkpoint every N decode steps (0 = only on SIGUSR1 and\n"
"                       SIGTERM; default 32)\n"
"  --restore DIR        resume the sessions checkpointed in DIR (an earlier job's\n"
"                       --checkpoint-dir, which must exist) instead of starting\n"
"                       them over\n"
"  --no-srun            use mpirun even inside a Slurm allocation\n"
"  --dry-run            print the environment and command line; start nothing\n"
"  -v, --verbose        one line on stderr saying what is started\n"
"  -h, --help           this text\n"
"  --driver-shim FILE   internal: rank 0's wrapper around CMD (writes its\n"
"                       exit status to FILE); not for use by hand\n"
"\n"
"Command-line flags override the config file, which overrides the defaults.\n"
"Every rank gets GENIE_PHASES and the settings (GENIE_CHECKPOINT_DIR,\n"
"GENIE_CHECKPOINT_EVERY_STEPS, GENIE_CHECKPOINT_EVERY_S, GENIE_CHECKPOINT_KEEP,\n"
"GENIE_TERM_GRACE_S, GENIE_RESTORE_DIR only where set); --dry-run lists them.\n"
"Exit status: the driver's, or 2 if genie-launch refused to start.\n"
"Environment: GENIE_CONFIG, GENIE_EXECUTOR (genie-executor to run; default:\n"
"next to genie-launch), GENIE_MPIRUN (default: mpirun on PATH), TMPDIR.\n");
}

/* What the command line said, before it is merged with the config file. */
typedef struct cli {
    const char *phases, *config, *backend, *threads, *kv_mode;
    const char *ckpt_dir, *ckpt_every, *restore;
    int         no_srun, dry_run, verbose;
    int         cmd_index;   /* argv index of CMD */
} cli_t;

/* 1: run, 0: --help was printed, -1: error printed. */
static int parse_cli(int argc, char **argv, cli_t *cli)
{
    static const struct {
        const char *name;
        size_t      offset;
        const char *example;
    } valued[] = {
        {"--phases", offsetof(cli_t, phases), "--phases prefill:1,decode:1"},
        {"--config", offsetof(cli_t, config), "--config configs/genie.conf"},
        {"--backend", offsetof(cli_t, backend), "--backend cpu"},
        {"--threads", offsetof(cli_t, threads), "--threads 4"},
        {"--kv-mode", offsetof(cli_t, kv_mode), "--kv-mode colocated"},
        {"--checkpoint-dir", offsetof(cli_t, ckpt_dir), "--checkpoint-dir /scratch/ckpt"},
        {"--checkpoint-every", offsetof(cli_t, ckpt_every), "--checkpoint-every 32"},
        {"--restore", offsetof(cli_t, restore), "--restore /scratch/ckpt"},
    };

    memset(cli, 0, sizeof(*cli));
    for (int i = 1; i < argc; i++) {
        const char *a     = argv[i];
        int         known = 0;

        if (strcmp(a, "--") == 0) {
            if (i + 1 >= argc) {
                genie_launch_err("no command after --; e.g. " EXAMPLE_CMD);
                return -1;
            }
            if (argv[i + 1][0] == '\0') {
                genie_launch_err("the command after -- is an empty string; e.g. " EXAMPLE_CMD);
                return -1;
            }
            cli->cmd_index = i + 1;
            return 1;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            cli->verbose = 1;
            continue;
        }
        if (strcmp(a, "--dry-run") == 0) {
            cli->dry_run = 1;
            continue;
        }
        if (strcmp(a, "--no-srun") == 0) {
            cli->no_srun = 1;
            continue;
        }
        if (strcmp(a, "--driver-shim") == 0) {
            genie_launch_err("--driver-shim is internal and must be the first argument");
            return -1;
        }
        for (size_t k = 0; k < sizeof(valued) / sizeof(valued[0]); k++) {
            size_t      n = strlen(valued[k].name);
            const char *value;

            if (strncmp(a, valued[k].name, n) != 0 || (a[n] != '\0' && a[n] != '=')) {
                continue;
            }
            if (a[n] == '=') {
                value = a + n + 1;
            } else if (i + 1 < argc && strcmp(argv[i + 1], "--") != 0) {
                value = argv[++i];
            } else {
                genie_launch_err("%s needs a value, e.g. %s", valued[k].name, valued[k].example);
                return -1;
            }
            *(const char **)((char *)cli + valued[k].offset) = value;
            known = 1;
            break;
        }
        if (known) {
            continue;
        }
        if (a[0] == '-') {
            genie_launch_err("unknown option '%s'; see genie-launch --help", a);
        } else {
            genie_launch_err("'%s' is not an option; put the command after --, e.g. " EXAMPLE_CMD, a);
        }
        return -1;
    }
    genie_launch_err("no command given; put it after --, e.g. " EXAMPLE_CMD);
    return -1;
}

/* Command-line values, checked, over the config file's. */
static genie_status_t apply_cli(const cli_t *cli, genie_launch_config_t *cfg)
{
    if (cli->backend != NULL) {
        if (!genie_launch_backend_ok(cli->backend)) {
            genie_launch_err("--backend '%s' is not one of cpu, cuda, auto", cli->backend);
            return GENIE_ERR_INVALID;
        }
        if (genie_launch_config_set(&cfg->backend, cli->backend) != GENIE_OK) {
            return GENIE_ERR_NOMEM;
        }
    }
    if (cli->kv_mode != NULL) {
        if (!genie_launch_kv_mode_ok(cli->kv_mode)) {
            genie_launch_err("--kv-mode '%s' is not one of colocated, blind", cli->kv_mode);
            return GENIE_ERR_INVALID;
        }
        if (genie_launch_config_set(&cfg->kv_mode, cli->kv_mode) != GENIE_OK) {
            return GENIE_ERR_NOMEM;
        }
    }
    if (cli->ckpt_every != NULL &&
        !genie_launch_parse_int(cli->ckpt_every, 0, GENIE_LAUNCH_MAX_CKPT_STEPS,
                                &cfg->ckpt.every_steps)) {
        genie_launch_err("--checkpoint-every '%s' is not a whole number in 0..%d (0 = only on "
                         "signals)", cli->ckpt_every, GENIE_LAUNCH_MAX_CKPT_STEPS);
        return GENIE_ERR_INVALID;
    }
    if (cli->ckpt_dir != NULL) {
        if (cli->ckpt_dir[0] == '\0') {
            genie_launch_err("--checkpoint-dir needs a directory, e.g. --checkpoint-dir /scratch/ckpt");
            return GENIE_ERR_INVALID;
        }
        if (!genie_launch_ckpt_dir_ok(cli->ckpt_dir)) {
            genie_launch_err("--checkpoint-dir must be a directory name of 1..%d bytes without "
                             "control characters", GENIE_LAUNCH_MAX_CKPT_DIR);
            return GENIE_ERR_INVALID;
        }
        if (genie_launch_config_set(&cfg->ckpt.dir, cli->ckpt_dir) != GENIE_OK) {
            return GENIE_ERR_NOMEM;
        }
    }
    if (cli->threads != NULL &&
        !genie_launch_parse_int(cli->threads, 0, GENIE_LAUNCH_MAX_THREADS, &cfg->threads)) {
        genie_launch_err("--threads '%s' is not a whole number in 0..%d (0 = cores / executors)",
                         cli->threads, GENIE_LAUNCH_MAX_THREADS);
        return GENIE_ERR_INVALID;
    }
    return GENIE_OK;
}

/* --restore DIR: an existing directory, passed on as an absolute path. */
static genie_status_t resolve_restore(genie_launch_t *L, const char *dir)
{
    struct stat sb;

    if (dir == NULL) {
        return GENIE_OK;
    }
    if (dir[0] == '\0' || stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode) ||
        realpath(dir, L->restore_dir) == NULL) {
        genie_launch_err("--restore %s: no such directory (give the --checkpoint-dir of the job "
                         "to resume)", dir);
        L->restore_dir[0] = '\0';
        return GENIE_ERR_INVALID;
    }
    return GENIE_OK;
}

/* checkpoint.dir or --checkpoint-dir as an absolute path: the ranks may run
 * elsewhere than genie-launch (srun on other nodes, a wrapper that changes
 * directory), and messages that name the directory should say where it is.
 * A relative one is taken from the current directory; it need not exist
 * (the driver creates it). */
static genie_status_t resolve_ckpt_dir(genie_launch_t *L)
{
    const char *d = L->cfg.ckpt.dir;
    char        cwd[PATH_MAX];
    int         n;

    L->ckpt_dir[0] = '\0';
    if (d == NULL) {
        return GENIE_OK;
    }
    if (d[0] == '/') {
        n = snprintf(L->ckpt_dir, sizeof(L->ckpt_dir), "%s", d);
    } else {
        if (getcwd(cwd, sizeof(cwd)) == NULL) {
            genie_launch_err("cannot make the checkpoint directory '%s' absolute: getcwd: %s; "
                             "give an absolute path", d, strerror(errno));
            return GENIE_ERR_IO;
        }
        while (d[0] == '.' && d[1] == '/') {   /* "./ck" is "ck" */
            d += 2;
            while (*d == '/') {
                d++;
            }
        }
        if (d[0] == '\0' || strcmp(d, ".") == 0) {
            n = snprintf(L->ckpt_dir, sizeof(L->ckpt_dir), "%s", cwd);
        } else {
            n = snprintf(L->ckpt_dir, sizeof(L->ckpt_dir), "%s%s%s", cwd,
                         strcmp(cwd, "/") == 0 ? "" : "/", d);
        }
    }
    if (n < 0 || (size_t)n >= sizeof(L->ckpt_dir)) {
        genie_launch_err("the checkpoint directory '%s' is longer than %zu bytes as an absolute "
                         "path; give a shorter one", L->cfg.ckpt.dir, sizeof(L->ckpt_dir) - 1);
        L->ckpt_dir[0] = '\0';
        return GENIE_ERR_INVALID;
    }
    return GENIE_OK;
}

static genie_status_t resolve_phases(genie_launch_t *L, const char *cli_phases)
{
    const char *text = cli_phases != NULL ? cli_phases : L->cfg.phases;
    char        err[512];

    if (text == NULL) {
        genie_launch_err("no phase spec; give --phases NAME:N[,NAME:N...], e.g. --phases "
                         "prefill:1,decode:1 (or phases in the config file)");
        return GENIE_ERR_INVALID;
    }
    if (text[0] == '\0') {
        /* The shared parser's message names --genie-phases; say --phases. */
        genie_launch_err("empty --phases spec; expected NAME:N[,NAME:N...], e.g. prefill:8,decode:1");
        return GENIE_ERR_INVALID;
    }
    if (genie_phase_spec_parse(text, NULL, &L->spec, err, sizeof(err)) != GENIE_OK) {
        genie_launch_err("%s", strncmp(err, "genie: ", 7) == 0 ? err + 7 : err);
        return GENIE_ERR_INVALID;
    }
    /* The config's spares group, where the spec gives no "+S" of its own;
     * GENIE_PHASES then carries them ("decode:2+1"). */
    if (genie_launch_config_apply_spares(&L->cfg, text, &L->spec) != GENIE_OK) {
        return GENIE_ERR_INVALID;
    }
    /* The parser already requires at least one slice per phase; the check
     * stays so that a future parser change cannot start a job without
     * executors. */
    if (L->spec.total_slices < 1) {
        genie_launch_err("the phase spec describes no executors; give at least one slice, e.g. "
                         "prefill:1");
        return GENIE_ERR_INVALID;
    }
    if (genie_phase_spec_format(&L->spec, L->phases, sizeof(L->phases)) != GENIE_OK) {
        genie_launch_err("cannot format the phase spec");
        return GENIE_ERR_INVALID;
    }
    return GENIE_OK;
}

static genie_status_t resolve_programs(genie_launch_t *L, int no_srun)
{
    const char *env_exec = getenv("GENIE_EXECUTOR");
    const char *env_mpirun = getenv("GENIE_MPIRUN");
    const char *job = getenv("SLURM_JOB_ID");
    ssize_t     n;
    char       *slash;

    n = readlink("/proc/self/exe", L->self_path, sizeof(L->self_path) - 1);
    if (n <= 0 || (size_t)n >= sizeof(L->self_path) - 1) {
        genie_launch_err("cannot find my own program through /proc/self/exe: %s",
                         n < 0 ? strerror(errno) : "path too long");
        return GENIE_ERR_NOT_FOUND;
    }
    L->self_path[n] = '\0';

    if (env_exec != NULL && env_exec[0] != '\0') {
        if (strlen(env_exec) >= sizeof(L->executor_path) || !genie_launch_is_executable(env_exec)) {
            genie_launch_err("GENIE_EXECUTOR=%s is not an executable file; point it at "
                             "genie-executor or unset it", env_exec);
            return GENIE_ERR_NOT_FOUND;
        }
        strcpy(L->executor_path, env_exec);
    } else {
        slash = strrchr(L->self_path, '/');
        snprintf(L->executor_path, sizeof(L->executor_path), "%.*s/genie-executor",
                 slash != NULL ? (int)(slash - L->self_path) : 1,
                 slash != NULL ? L->self_path : ".");
        if (!genie_launch_is_executable(L->executor_path)) {
            genie_launch_err("genie-executor not found at %s; build it (cmake --build build) or set "
                             "GENIE_EXECUTOR to its path", L->executor_path);
            return GENIE_ERR_NOT_FOUND;
        }
    }

    L->use_srun = !no_srun && job != NULL && job[0] != '\0' &&
                  genie_launch_find_in_path("srun", L->runner_path) == GENIE_OK;
    if (L->use_srun) {
        return GENIE_OK;
    }
    if (env_mpirun != NULL && env_mpirun[0] != '\0') {
        if (genie_launch_find_in_path(env_mpirun, L->runner_path) != GENIE_OK) {
            genie_launch_err("GENIE_MPIRUN=%s is not an executable file; point it at Open MPI's "
                             "mpirun or unset it", env_mpirun);
            return GENIE_ERR_NOT_FOUND;
        }
    } else if (genie_launch_find_in_path("mpirun", L->runner_path) != GENIE_OK) {
        genie_launch_err("mpirun not found on PATH; install Open MPI (apt-get install openmpi-bin) "
                         "or set GENIE_MPIRUN");
        return GENIE_ERR_NOT_FOUND;
    }
    return GENIE_OK;
}

static void set_var(genie_launch_t *L, int i, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_var(genie_launch_t *L, int i, const char *name, const char *fmt, ...)
{
    va_list ap;

    L->var[i].name = name;
    L->var[i].kept = 0;
    va_start(ap, fmt);
    vsnprintf(L->var[i].value, sizeof(L->var[i].value), fmt, ap);
    va_end(ap);
}

/* A UCX_* variable the user has set is left alone (shown, not overridden). */
static void set_ucx_var(genie_launch_t *L, int i, const char *name, const char *value)
{
    const char *have = getenv(name);

    set_var(L, i, name, "%s", have != NULL ? have : value);
    L->var[i].kept = have != NULL;
}

void genie_launch_fill_vars(genie_launch_t *L)
{
    const genie_launch_config_t *c = &L->cfg;
    char                         ka[32];

    set_var(L, GENIE_LAUNCH_VAR_PHASES, "GENIE_PHASES", "%s", L->phases);
    set_var(L, GENIE_LAUNCH_VAR_BACKEND, "GENIE_BACKEND", "%s", c->backend);
    set_var(L, GENIE_LAUNCH_VAR_THREADS, "GENIE_THREADS", "%lld", (long long)L->threads);
    set_var(L, GENIE_LAUNCH_VAR_KV_MODE, "GENIE_KV_MODE", "%s", c->kv_mode);
    set_var(L, GENIE_LAUNCH_VAR_ARENA_MB, "GENIE_ARENA_MB", "%lld", (long long)c->arena_mb);
    set_var(L, GENIE_LAUNCH_VAR_MEMORY_MB, "GENIE_MEMORY_MB", "%lld", (long long)c->memory_mb);
    /* Every wait, always (the default too): all ranks see the same numbers. */
    for (int i = 0; i < GENIE_LAUNCH_N_WAITS; i++) {
        set_var(L, GENIE_LAUNCH_VAR_WAITS + i, genie_launch_waits[i].env, "%.9g", c->wait_s[i]);
    }
    set_var(L, GENIE_LAUNCH_VAR_SECRET_FILE, "GENIE_SECRET_FILE", "%s/%s", L->job_dir,
            GENIE_LAUNCH_SECRET_FILE);
    set_var(L, GENIE_LAUNCH_VAR_LAUNCHER, "GENIE_LAUNCHER", "genie-launch");
    set_var(L, GENIE_LAUNCH_VAR_JOB_DIR, "GENIE_JOB_DIR", "%s", L->job_dir);
    snprintf(ka, sizeof(ka), "%lldms", (long long)c->ucx_keepalive_ms);
    set_ucx_var(L, GENIE_LAUNCH_VAR_UCX_TLS, "UCX_TLS", c->ucx_tls);
    set_ucx_var(L, GENIE_LAUNCH_VAR_UCX_KEEPALIVE, "UCX_KEEPALIVE_INTERVAL", ka);
    /* UCX's shared-memory transports (posix, sysv) advertise peer error
     * handling only when *_ERROR_HANDLING is "y".  Genie's endpoints ask for
     * UCP_ERR_HANDLING_MODE_PEER so that a lost executor is detected; without
     * it, UCX silently leaves shared memory out of such endpoints and
     * intra-node traffic goes over tcp.  The SysV one is set by the
     * transport itself, only where UCX_TLS may select sysv (UCX warns about
     * a variable nothing reads). */
    set_ucx_var(L, GENIE_LAUNCH_VAR_UCX_POSIX_EH, "UCX_POSIX_ERROR_HANDLING", "y");
    /* The checkpoint policy (read by the driver; the grace by executors). */
    if (L->ckpt_dir[0] != '\0') {
        set_var(L, GENIE_LAUNCH_VAR_CKPT_DIR, "GENIE_CHECKPOINT_DIR", "%s", L->ckpt_dir);
    }
    if (c->ckpt.every_steps >= 0) {
        set_var(L, GENIE_LAUNCH_VAR_CKPT_EVERY_STEPS, "GENIE_CHECKPOINT_EVERY_STEPS", "%lld",
                (long long)c->ckpt.every_steps);
    }
    if (c->ckpt.every_s >= 0) {
        set_var(L, GENIE_LAUNCH_VAR_CKPT_EVERY_S, "GENIE_CHECKPOINT_EVERY_S", "%.9g", c->ckpt.every_s);
    }
    if (c->ckpt.keep >= 0) {
        set_var(L, GENIE_LAUNCH_VAR_CKPT_KEEP, "GENIE_CHECKPOINT_KEEP", "%lld", (long long)c->ckpt.keep);
    }
    if (c->ckpt.term_grace_s >= 0) {
        set_var(L, GENIE_LAUNCH_VAR_TERM_GRACE, "GENIE_TERM_GRACE_S", "%lld",
                (long long)c->ckpt.term_grace_s);
    }
    if (L->restore_dir[0] != '\0') {
        set_var(L, GENIE_LAUNCH_VAR_RESTORE_DIR, "GENIE_RESTORE_DIR", "%s", L->restore_dir);
    }
}

static int dry_run(genie_launch_t *L)
{
    genie_launch_argv_t a = {0};
    genie_status_t      rc;

    rc = L->use_srun ? genie_launch_srun_argv(L, &a) : genie_launch_mpirun_argv(L, &a);
    if (rc != GENIE_OK) {
        return GENIE_LAUNCH_EXIT_USAGE;
    }
    printf("# genie-launch --dry-run: nothing was created or started; the X's of the job "
           "directory are filled in at launch\n");
    for (int i = 0; i < GENIE_LAUNCH_N_VARS; i++) {
        if (L->var[i].name == NULL) {
            continue;
        }
        printf("export %s=", L->var[i].name);
        genie_launch_shell_quote(stdout, L->var[i].value);
        printf("%s\n", L->var[i].kept ? "   # already set in the environment; kept" : "");
    }
    for (size_t i = 0; i < a.n; i++) {
        if (i > 0) {
            putchar(' ');
        }
        genie_launch_shell_quote(stdout, a.v[i]);
    }
    putchar('\n');
    if (L->use_srun) {
        char path[PATH_MAX];

        if (genie_launch_job_path(L, GENIE_LAUNCH_MULTIPROG_FILE, path) != GENIE_OK) {
            genie_launch_argv_free(&a);
            return GENIE_LAUNCH_EXIT_USAGE;
        }
        printf("# %s would hold:\n", path);
        rc = genie_launch_srun_multiprog(L, stdout, "#   ");
    }
    genie_launch_argv_free(&a);
    if (fflush(stdout) != 0 || rc != GENIE_OK) {
        return GENIE_LAUNCH_EXIT_USAGE;
    }
    return 0;
}

int main(int argc, char **argv)
{
    genie_launch_t *L;
    cli_t           cli;
    const char     *config;
    long            cpus;
    int             code = GENIE_LAUNCH_EXIT_USAGE, r;

    if (argc >= 2 && strcmp(argv[1], "--driver-shim") == 0) {
        return genie_launch_shim_main(argc, argv);
    }
    r = parse_cli(argc, argv, &cli);
    if (r <= 0) {
        return r == 0 ? 0 : GENIE_LAUNCH_EXIT_USAGE;
    }
    /* ~70 KiB of paths and values: on the heap, not the stack. */
    L = calloc(1, sizeof(*L));
    if (L == NULL || genie_launch_config_init(&L->cfg) != GENIE_OK) {
        genie_launch_err("out of memory");
        free(L);
        return GENIE_LAUNCH_EXIT_USAGE;
    }
    L->dry_run  = cli.dry_run;
    L->verbose  = cli.verbose;
    L->cmd      = argv + cli.cmd_index;
    L->cmd_argc = argc - cli.cmd_index;

    config = cli.config;
    if (config == NULL && getenv("GENIE_CONFIG") != NULL && getenv("GENIE_CONFIG")[0] != '\0') {
        config = getenv("GENIE_CONFIG");
    }
    if (cli.config != NULL && cli.config[0] == '\0') {
        genie_launch_err("--config needs a file name, e.g. --config configs/genie.conf");
        goto out;
    }
    if (apply_cli(&cli, &L->cfg) != GENIE_OK) {   /* checks the flags before the file is read */
        goto out;
    }
    if (config != NULL &&
        (genie_launch_config_load(&L->cfg, config) != GENIE_OK || apply_cli(&cli, &L->cfg) != GENIE_OK)) {
        goto out;
    }
    if (resolve_phases(L, cli.phases) != GENIE_OK || resolve_restore(L, cli.restore) != GENIE_OK ||
        resolve_ckpt_dir(L) != GENIE_OK ||
        resolve_programs(L, cli.no_srun) != GENIE_OK || genie_launch_job_template(L) != GENIE_OK) {
        goto out;
    }
    cpus       = sysconf(_SC_NPROCESSORS_ONLN);
    L->threads = L->cfg.threads;
    if (L->threads == 0) {
        L->threads = cpus > 0 ? cpus / (long)L->spec.total_slices : 1;
        if (L->threads < 1) {
            L->threads = 1;
        }
    }
    genie_launch_fill_vars(L);

    if (L->verbose) {
        genie_launch_err("driver + %u executor%s (%s), backend %s, threads %lld per executor, via %s",
                         (unsigned)L->spec.total_slices, L->spec.total_slices == 1 ? "" : "s",
                         L->phases, L->cfg.backend, (long long)L->threads,
                         L->use_srun ? "srun" : "mpirun");
    }
    code = L->dry_run ? dry_run(L) : genie_launch_run(L);
out:
    genie_launch_config_fini(&L->cfg);
    free(L);
    return code;
}

/*
 * genie-executor: the main of every executor rank.
 *
 * Started by genie-launch (Open MPI, MPMD) or by srun with the SPANK plugin;
 * world rank 0 is the driver, ranks 1..N are executors, one per slice, in the
 * order of GENIE_PHASES ("prefill:2,decode:1": ranks 1 and 2 are prefill
 * slices 0 and 1, rank 3 is decode slice 0).  GENIE_PHASE/GENIE_PHASE_RANK, when
 * set, override that derivation.  Environment read here:
 *   GENIE_PHASES, GENIE_SECRET_FILE (required), GENIE_BACKEND (cpu|auto),
 *   GENIE_THREADS, GENIE_ARENA_MB (default 1024), GENIE_REQUEST_TIMEOUT_S,
 *   GENIE_HANDOFF_TIMEOUT_S, GENIE_BOOTSTRAP_TIMEOUT_S.
 * MPI is used for the bootstrap (address exchange) and the final barrier of
 * MPI_Finalize only.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "executor.h"
#ifdef GENIE_HAVE_CHECKPOINT
#include "genie/ckpt.h"
#endif
#include "genie/phase_spec.h"

static unsigned term_grace_s = 60;

/* SIGTERM (srun at the time limit, scancel, mpirun passing one on) reaches
 * the driver too, which answers it by writing a checkpoint: the executors
 * must stay to write it.  They leave when the driver shuts them down, or at
 * the latest GENIE_TERM_GRACE_S seconds later (SIGALRM's default action). */
static void on_sigterm(int sig)
{
    (void)sig;
    alarm(term_grace_s);
}

static void install_signals(void)
{
    const char      *g = getenv("GENIE_TERM_GRACE_S");
    struct sigaction sa;

    if (g != NULL && atoi(g) > 0) {
        term_grace_s = (unsigned)atoi(g);
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigterm;
    sa.sa_flags   = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    /* sbatch --signal=USR1@60 signals every task: for the driver it means
     * "checkpoint now"; an executor has nothing to do but must not die. */
    signal(SIGUSR1, SIG_IGN);
}

static void die(int rank, const char *what)
{
    fprintf(stderr, "genie: executor rank %d: %s: %s\n", rank, what, genie_last_error());
}

/* Phase and slice of `rank` from the environment. */
static genie_status_t my_slice(int rank, genie_ucx_peer_info_t *self)
{
    const char        *phase = getenv("GENIE_PHASE"), *slice = getenv("GENIE_PHASE_RANK");
    const char        *spec_text = getenv("GENIE_PHASES");
    genie_phase_spec_t spec;
    char               err[200];
    uint32_t           k = (uint32_t)rank - 1;

    if (phase != NULL && phase[0] != '\0') {
        snprintf(self->phase, sizeof(self->phase), "%s", phase);
        self->slice = slice != NULL ? (uint32_t)strtoul(slice, NULL, 10) : 0;
        return GENIE_OK;
    }
    if (spec_text == NULL || spec_text[0] == '\0') {
        return genie_set_error(GENIE_ERR_INVALID, "GENIE_PHASES is not set (start executors with "
                               "genie-launch or srun --genie-phases)");
    }
    if (genie_phase_spec_parse(spec_text, NULL, &spec, err, sizeof(err)) != GENIE_OK) {
        return genie_set_error(GENIE_ERR_INVALID, "GENIE_PHASES: %s", err);
    }
    if (rank < 1 || k >= spec.total_slices) {
        return genie_set_error(GENIE_ERR_INVALID,
                               "rank %d has no slice: GENIE_PHASES=%s describes %u executors",
                               rank, spec_text, spec.total_slices);
    }
    for (uint32_t e = 0; e < spec.n; e++) {
        if (k < spec.entry[e].slices) {
            snprintf(self->phase, sizeof(self->phase), "%s", spec.entry[e].name);
            self->slice = k;
            return GENIE_OK;
        }
        k -= spec.entry[e].slices;
    }
    return genie_set_error(GENIE_ERR_INVALID, "rank %d has no slice", rank);
}

/* Until a CUDA backend exists, "auto" means the CPU backend.  A task that
 * was given GPUs must not run on the CPU without a word: the note goes to
 * get_stats() (STATS text "backend_note") and, once per node, to stderr. */
static void backend_note(genie_server_t *srv, const char *backend)
{
    const char *cvd = getenv("CUDA_VISIBLE_DEVICES");

    if (cvd == NULL || cvd[0] == '\0' || strcmp(cvd, "-1") == 0) {
        return;
    }
    snprintf(srv->backend_note, sizeof(srv->backend_note),
             "GPUs were allocated (CUDA_VISIBLE_DEVICES=%.40s) but this build has no CUDA backend: "
             "backend '%s' runs on the CPU", cvd, backend);
    genie_one_line(srv->backend_note);
}

/* The first executor rank of each host says it for the host. */
static int first_on_host(genie_ucx_t *ucx, int rank)
{
    const genie_ucx_peer_info_t *me = genie_ucx_peer(ucx, rank);

    for (int32_t r = 1; r < rank; r++) {
        const genie_ucx_peer_info_t *p = genie_ucx_peer(ucx, r);
        if (p != NULL && p->role == GENIE_ROLE_EXECUTOR && strcmp(p->host, me->host) == 0) {
            return 0;
        }
    }
    return 1;
}

/* GENIE_MEMORY_MB (genie.conf memory_mb): the executor's memory budget;
 * 0 or unset = this node's physical memory (MemTotal).  A value that is not
 * an integer in 0..1073741824 is refused: the launcher checked it already. */
static genie_status_t memory_budget(uint64_t *bytes_p)
{
    const char        *v = getenv("GENIE_MEMORY_MB");
    char              *end = NULL;
    unsigned long long mb = 0;

    if (v != NULL && v[0] != '\0') {
        errno = 0;
        mb = strtoull(v, &end, 10);
        if (errno != 0 || end == v || *end != '\0' || v[0] == '-' || mb > 1073741824ull) {
            return genie_set_error(GENIE_ERR_INVALID, "GENIE_MEMORY_MB=%s is not a whole number of "
                                   "MiB in 0..1073741824", v);
        }
    }
    if (mb == 0) {
        long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        *bytes_p = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    } else {
        *bytes_p = (uint64_t)mb << 20;
    }
    return GENIE_OK;
}

/* Between the nodes of a long run: progress the transport, so that liveness
 * probes are answered while the executor computes. */
static void exec_tick(void *arg)
{
    genie_ucx_poll(arg);
}

static genie_status_t make_backend(genie_backend_t **backend_p, int *threads_p)
{
    const char *b = getenv("GENIE_BACKEND");
    const char *t = getenv("GENIE_THREADS");
    int         threads = t != NULL ? atoi(t) : 0;

    if (b != NULL && b[0] != '\0' && strcmp(b, "cpu") != 0 && strcmp(b, "auto") != 0) {
        return genie_set_error(GENIE_ERR_UNSUPPORTED,
                               "backend '%s' is not available in this executor build (available: cpu, auto)", b);
    }
    *threads_p = threads;
    return genie_backend_cpu_create(threads, backend_p);
}

int main(int argc, char **argv)
{
    genie_ucx_params_t params = {0};
    genie_server_t     srv = {0};
    genie_backend_t   *backend = NULL;
    genie_exec_t      *exec = NULL;
    genie_ucx_t       *ucx = NULL;
    int                rank = -1, size = 0, provided, threads = 0, rc = 1;
    const char        *arena = getenv("GENIE_ARENA_MB");

    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: genie-executor   (an MPI rank started by genie-launch or srun --genie-phases;\n"
               "                         it is not meant to be run by hand)\n");
        return 0;
    }
    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_SINGLE, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "genie: executor: MPI_Init failed\n");
        return 1;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);

    params.self.rank = rank;
    params.self.role = GENIE_ROLE_EXECUTOR;
    params.self.pid  = (uint32_t)getpid();
    params.size      = size;
    params.arena_bytes = (size_t)(arena != NULL && atol(arena) > 0 ? atol(arena) : 1024) << 20;
    params.timeout_s = genie_ucx_env_seconds("GENIE_REQUEST_TIMEOUT_S",
                                             GENIE_DEFAULT_REQUEST_TIMEOUT_S);
    gethostname(params.self.host, sizeof(params.self.host) - 1);
    if (my_slice(rank, &params.self) != GENIE_OK) {
        die(rank, "cannot tell this rank's slice");
        goto out_mpi;
    }
    if (genie_ucx_read_secret(&params) != GENIE_OK) {
        die(rank, "no job secret");
        goto out_mpi;
    }
    if (make_backend(&backend, &threads) != GENIE_OK) {
        die(rank, "backend");
        goto out_mpi;
    }
    snprintf(params.self.backend, sizeof(params.self.backend), "%s", backend->iface->name);
    params.self.threads = (uint32_t)backend->n_threads;
    if (genie_exec_create(backend, &exec) != GENIE_OK) {
        die(rank, "executor");
        backend->iface->destroy(backend);
        goto out_mpi;
    }
    if (genie_ucx_create(&params, &ucx) != GENIE_OK) {
        die(rank, "UCX");
        genie_exec_destroy(exec);
        backend->iface->destroy(backend);
        goto out_mpi;
    }
    /* Collective: every rank must reach it, even one that failed above
     * would leave the others waiting, so failures before it exit quickly
     * and mpirun/srun tear the job down. */
    if (genie_ucx_bootstrap_mpi(ucx, genie_ucx_env_seconds("GENIE_BOOTSTRAP_TIMEOUT_S",
                                                           GENIE_DEFAULT_BOOTSTRAP_TIMEOUT_S)) != GENIE_OK) {
        die(rank, "bootstrap");
        genie_ucx_destroy(ucx);
        genie_exec_destroy(exec);
        backend->iface->destroy(backend);
        goto out_mpi;
    }
    {
        uint64_t budget = 0;
        if (memory_budget(&budget) != GENIE_OK ||
            genie_exec_set_memory_budget(exec, budget) != GENIE_OK) {
            die(rank, "memory budget");
            genie_ucx_destroy(ucx);
            genie_exec_destroy(exec);
            backend->iface->destroy(backend);
            goto out_mpi;
        }
    }
    genie_exec_set_tick(exec, exec_tick, ucx);
#ifdef GENIE_HAVE_CHECKPOINT
    /* The same while a rank file is written or read. */
    genie_ckpt_set_progress(exec_tick, ucx);
#endif
    install_signals();
    srv.ucx  = ucx;
    srv.exec = exec;
    srv.rank = rank;
    srv.handoff_limit_s = genie_ucx_env_seconds("GENIE_HANDOFF_TIMEOUT_S",
                                                GENIE_DEFAULT_HANDOFF_TIMEOUT_S);
    backend_note(&srv, backend->iface->name);
    if (srv.backend_note[0] != '\0' && first_on_host(ucx, rank)) {
        genie_ucx_log(ucx, "%s (every executor on %s)", srv.backend_note, params.self.host);
    }
    if (genie_server_run(&srv) != GENIE_OK) {
        die(rank, "serving");
    } else {
        rc = srv.driver_gone ? 1 : 0;
    }
    genie_server_fini(&srv);
    genie_exec_destroy(exec);      /* before the arena its KV objects live in */
    genie_ucx_destroy(ucx);
    backend->iface->destroy(backend);
    if (!srv.skip_finalize && !srv.driver_gone) {   /* see genie_client_close: a rank was lost */
        MPI_Finalize();
    }
    return rc;

out_mpi:
    /* Before the bootstrap the driver is blocked in the collective this rank
     * will never join: end the whole job, after the line saying why. */
    MPI_Abort(MPI_COMM_WORLD, 1);
    return 1;
}

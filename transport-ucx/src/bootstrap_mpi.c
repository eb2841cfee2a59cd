/*
 * Bootstrap over MPI: every rank learns every other rank's role, phase,
 * slice, pid and host and its UCX worker address.  Two collectives: a
 * fixed-size record per rank (MPI_Allgather), then the variable-length
 * addresses (MPI_Allgatherv).  MPI is used for nothing else until teardown;
 * all traffic after this is UCX.
 *
 * A collective cannot be abandoned: if a rank never arrives (it failed
 * before its bootstrap, or hangs), the others would wait forever.  A
 * watchdog thread therefore ends this process with one line when the
 * bootstrap has not finished within its limit (bootstrap_timeout_s).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <limits.h>
#include <mpi.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ucx_internal.h"

typedef struct boot_rec {
    genie_ucx_peer_info_t info;
    uint64_t              addr_len;
} boot_rec_t;

/* Sent as raw bytes between ranks of one job (same build on every rank). */
_Static_assert(sizeof(genie_ucx_peer_info_t) == 116, "peer record layout changed: update docs/wire-protocol.md");
_Static_assert(sizeof(boot_rec_t) == 128, "bootstrap record layout changed: update docs/wire-protocol.md");

#define BOOT_MAX_ADDR (1u << 20)     /* one rank's worker address, at most */

static genie_status_t mpi_error(int rc, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING];
    int  len = 0;
    MPI_Error_string(rc, msg, &len);
    return genie_set_error(GENIE_ERR_TRANSPORT, "mpi: %s: %.*s", what, len, msg);
}

genie_status_t genie_ucx_boot_layout(const uint64_t *addr_len, int n, int *counts, int *displs,
                                     int *total_p)
{
    int total = 0;

    for (int r = 0; r < n; r++) {
        /* Each length on its own first: a sum of two huge values wraps. */
        if (addr_len[r] == 0 || addr_len[r] > BOOT_MAX_ADDR) {
            return genie_set_error(GENIE_ERR_CORRUPT, "bootstrap: rank %d announced a %llu-byte "
                                   "worker address (1..%u)", r, (unsigned long long)addr_len[r],
                                   BOOT_MAX_ADDR);
        }
        if ((int)addr_len[r] > INT_MAX - total) {
            return genie_set_error(GENIE_ERR_CORRUPT, "bootstrap: the worker addresses of %d ranks "
                                   "exceed %d bytes", n, INT_MAX);
        }
        counts[r] = (int)addr_len[r];
        displs[r] = total;
        total    += counts[r];
    }
    *total_p = total;
    return GENIE_OK;
}

/* ---- the watchdog ---------------------------------------------------------------- */

typedef struct watchdog {
    pthread_t       thread;
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    int             done;
    double          limit_s;
    char            line[320];
} watchdog_t;

static void *watchdog_main(void *arg)
{
    watchdog_t     *w = arg;
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec  += (time_t)w->limit_s;
    until.tv_nsec += (long)((w->limit_s - (double)(time_t)w->limit_s) * 1e9);
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->mu);
    while (!w->done) {
        if (pthread_cond_timedwait(&w->cv, &w->mu, &until) == ETIMEDOUT && !w->done) {
            /* Only async-signal-safe calls from here on: the main thread is
             * inside MPI. */
            ssize_t n = write(STDERR_FILENO, w->line, strlen(w->line));
            (void)n;
            _exit(1);
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static int watchdog_start(watchdog_t *w, genie_ucx_t *u, double limit_s)
{
    memset(w, 0, sizeof(*w));
    w->limit_s = limit_s;
    snprintf(w->line, sizeof(w->line), "genie: rank %d (%s): bootstrap: not every rank of the job "
             "arrived within %.0f s (bootstrap_timeout_s); ending this process\n",
             (int)u->params.self.rank,
             u->params.self.role == GENIE_ROLE_DRIVER ? "driver" : u->params.self.phase, limit_s);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    return pthread_create(&w->thread, NULL, watchdog_main, w) == 0;
}

static void watchdog_stop(watchdog_t *w)
{
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
}

/* ---- the exchange ------------------------------------------------------------------- */

static genie_status_t exchange(genie_ucx_t *u, int size)
{
    boot_rec_t     mine = {0}, *all = NULL;
    uint64_t      *lens = NULL;
    int           *counts = NULL, *displs = NULL, rc, total = 0;
    uint8_t       *blobs = NULL;
    genie_status_t st = GENIE_OK;

    mine.info     = u->params.self;
    mine.addr_len = u->addr_len;
    all    = calloc((size_t)size, sizeof(*all));
    lens   = calloc((size_t)size, sizeof(*lens));
    counts = calloc((size_t)size, sizeof(int));
    displs = calloc((size_t)size, sizeof(int));
    u->peers = calloc((size_t)size, sizeof(*u->peers));
    if (all == NULL || lens == NULL || counts == NULL || displs == NULL || u->peers == NULL) {
        st = genie_set_error(GENIE_ERR_NOMEM, "out of memory");
        goto out;
    }
    rc = MPI_Allgather(&mine, sizeof(mine), MPI_BYTE, all, sizeof(mine), MPI_BYTE, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
        st = mpi_error(rc, "MPI_Allgather of peer records");
        goto out;
    }
    for (int r = 0; r < size; r++) {
        lens[r] = all[r].addr_len;
    }
    if ((st = genie_ucx_boot_layout(lens, size, counts, displs, &total)) != GENIE_OK) {
        goto out;
    }
    if ((blobs = malloc((size_t)total + 1)) == NULL) {
        st = genie_set_error(GENIE_ERR_NOMEM, "out of memory");
        goto out;
    }
    rc = MPI_Allgatherv(u->addr, counts[u->params.self.rank], MPI_BYTE, blobs, counts, displs,
                        MPI_BYTE, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
        st = mpi_error(rc, "MPI_Allgatherv of worker addresses");
        goto out;
    }
    for (int r = 0; r < size; r++) {
        genie_ucx_peer_t *p = &u->peers[r];
        p->info       = all[r].info;
        p->info.rank  = r;
        p->info.phase[sizeof(p->info.phase) - 1]     = '\0';
        p->info.host[sizeof(p->info.host) - 1]       = '\0';
        p->info.backend[sizeof(p->info.backend) - 1] = '\0';
        p->addr_len   = (size_t)counts[r];
        if ((p->addr = malloc(p->addr_len)) == NULL) {
            st = genie_set_error(GENIE_ERR_NOMEM, "out of memory");
            goto out;
        }
        memcpy(p->addr, blobs + displs[r], p->addr_len);
    }
out:
    free(all);
    free(lens);
    free(counts);
    free(displs);
    free(blobs);
    return st;
}

genie_status_t genie_ucx_bootstrap_mpi(genie_ucx_t *u, double limit_s)
{
    watchdog_t     w;
    genie_status_t st;
    int            size, armed;

    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size != u->size) {
        return genie_set_error(GENIE_ERR_INVALID, "mpi world has %d ranks, transport expected %d",
                               size, (int)u->size);
    }
    if (!(limit_s > 0)) {
        return genie_set_error(GENIE_ERR_INVALID, "bootstrap: the limit must be > 0 s, got %g",
                               limit_s);
    }
    armed = watchdog_start(&w, u, limit_s);
    if (!armed) {
        return genie_set_error(GENIE_ERR_TRANSPORT, "bootstrap: cannot start its watchdog thread");
    }
    st = exchange(u, size);
    watchdog_stop(&w);
    return st;
}

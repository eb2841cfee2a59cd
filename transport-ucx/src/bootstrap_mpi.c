/*
 * Bootstrap over MPI: every rank learns every other rank's role, phase,
 * slice, pid and host, its UCX worker address, and the base, size and packed
 * rkey of its arena.  Two collectives: a fixed-size record per rank
 * (MPI_Allgather), then the variable-length blobs (MPI_Allgatherv).  MPI is
 * used for nothing else until teardown; all traffic after this is UCX.
 */
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "ucx_internal.h"

typedef struct boot_rec {
    genie_ucx_peer_info_t info;
    uint64_t              addr_len;
    uint64_t              rkey_len;
    uint64_t              arena_base;
    uint64_t              arena_size;
} boot_rec_t;

/* Sent as raw bytes between ranks of one job (same build on every rank). */
_Static_assert(sizeof(genie_ucx_peer_info_t) == 116, "peer record layout changed: update docs/wire-protocol.md");
_Static_assert(sizeof(boot_rec_t) == 152, "bootstrap record layout changed: update docs/wire-protocol.md");

static genie_status_t mpi_error(int rc, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING];
    int  len = 0;
    MPI_Error_string(rc, msg, &len);
    return genie_set_error(GENIE_ERR_TRANSPORT, "mpi: %s: %.*s", what, len, msg);
}

genie_status_t genie_ucx_bootstrap_mpi(genie_ucx_t *u)
{
    boot_rec_t     mine = {0}, *all = NULL;
    int           *counts = NULL, *displs = NULL, size, rc, total = 0;
    uint8_t       *blob = NULL, *blobs = NULL;
    genie_status_t st = GENIE_OK;

    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size != u->size) {
        return genie_set_error(GENIE_ERR_INVALID, "mpi world has %d ranks, transport expected %d",
                               size, (int)u->size);
    }
    mine.info       = u->params.self;
    mine.addr_len   = u->addr_len;
    mine.rkey_len   = u->arena_rkey_len;
    mine.arena_base = (uint64_t)(uintptr_t)u->arena;
    mine.arena_size = u->arena_size;
    all    = calloc((size_t)size, sizeof(*all));
    counts = calloc((size_t)size, sizeof(int));
    displs = calloc((size_t)size, sizeof(int));
    blob   = malloc(u->addr_len + u->arena_rkey_len + 1);
    u->peers = calloc((size_t)size, sizeof(*u->peers));
    if (all == NULL || counts == NULL || displs == NULL || blob == NULL || u->peers == NULL) {
        st = genie_set_error(GENIE_ERR_NOMEM, "out of memory");
        goto out;
    }
    rc = MPI_Allgather(&mine, sizeof(mine), MPI_BYTE, all, sizeof(mine), MPI_BYTE, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
        st = mpi_error(rc, "MPI_Allgather of peer records");
        goto out;
    }
    for (int r = 0; r < size; r++) {
        if (all[r].addr_len + all[r].rkey_len > (1u << 20)) {
            st = genie_set_error(GENIE_ERR_CORRUPT, "rank %d announced a %llu-byte address", r,
                                 (unsigned long long)all[r].addr_len);
            goto out;
        }
        counts[r] = (int)(all[r].addr_len + all[r].rkey_len);
        displs[r] = total;
        total    += counts[r];
    }
    memcpy(blob, u->addr, u->addr_len);
    if (u->arena_rkey_len > 0) {
        memcpy(blob + u->addr_len, u->arena_rkey, u->arena_rkey_len);
    }
    if ((blobs = malloc((size_t)total + 1)) == NULL) {
        st = genie_set_error(GENIE_ERR_NOMEM, "out of memory");
        goto out;
    }
    rc = MPI_Allgatherv(blob, counts[u->params.self.rank], MPI_BYTE, blobs, counts, displs,
                        MPI_BYTE, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
        st = mpi_error(rc, "MPI_Allgatherv of worker addresses");
        goto out;
    }
    for (int r = 0; r < size; r++) {
        genie_ucx_peer_t *p = &u->peers[r];
        p->info       = all[r].info;
        p->info.rank  = r;
        p->info.phase[sizeof(p->info.phase) - 1] = '\0';
        p->info.host[sizeof(p->info.host) - 1]   = '\0';
        p->info.backend[sizeof(p->info.backend) - 1] = '\0';
        p->addr_len   = all[r].addr_len;
        p->rkey_len   = all[r].rkey_len;
        p->arena_base = all[r].arena_base;
        p->arena_size = all[r].arena_size;
        p->addr       = malloc(p->addr_len + 1);
        p->rkey_buf   = malloc(p->rkey_len + 1);
        if (p->addr == NULL || p->rkey_buf == NULL) {
            st = genie_set_error(GENIE_ERR_NOMEM, "out of memory");
            goto out;
        }
        memcpy(p->addr, blobs + displs[r], p->addr_len);
        memcpy(p->rkey_buf, blobs + displs[r] + p->addr_len, p->rkey_len);
    }
out:
    free(all);
    free(counts);
    free(displs);
    free(blob);
    free(blobs);
    return st;
}

/*
 * In-process bootstrap: n transports created by one process learn each
 * other's worker addresses directly.  Tests and fuzzing use it to run real
 * UCX workers, endpoints and active messages (and the executor's handlers)
 * without MPI.  The peer records are the ones each transport was created
 * with, as the MPI bootstrap would deliver them.
 */
#include <stdlib.h>
#include <string.h>

#include "ucx_internal.h"

genie_status_t genie_ucx_bootstrap_local(genie_ucx_t *const *us, int n)
{
    for (int i = 0; i < n; i++) {
        genie_ucx_t *u = us[i];

        if (u->size != n || u->params.self.rank != i || u->peers != NULL) {
            return genie_set_error(GENIE_ERR_INVALID, "local bootstrap: transport %d has rank %d "
                                   "of %d", i, (int)u->params.self.rank, (int)u->size);
        }
    }
    for (int i = 0; i < n; i++) {
        genie_ucx_t *u = us[i];

        if ((u->peers = calloc((size_t)n, sizeof(*u->peers))) == NULL) {
            return genie_set_error(GENIE_ERR_NOMEM, "out of memory");
        }
        for (int r = 0; r < n; r++) {
            genie_ucx_peer_t *p = &u->peers[r];
            p->info      = us[r]->params.self;
            p->info.rank = r;
            p->addr_len  = us[r]->addr_len;
            if ((p->addr = malloc(p->addr_len)) == NULL) {
                return genie_set_error(GENIE_ERR_NOMEM, "out of memory");
            }
            memcpy(p->addr, us[r]->addr, p->addr_len);
        }
    }
    return GENIE_OK;
}

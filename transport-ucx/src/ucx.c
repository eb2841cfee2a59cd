/*
 * UCP context and worker, the job secret, logging, progress and peer status
 * (see genie/ucx.h; connections are in conn.c, receiving in recv.c, sending
 * and waiting in send.c, RMA in rma.c).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "genie/ucx.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ucx_internal.h"

/* ---- small helpers -------------------------------------------------------- */

double genie_ucx_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void genie_ucx_log(const genie_ucx_t *u, const char *fmt, ...)
{
    char    line[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    genie_one_line(line);
    fprintf(stderr, "genie: rank %d (%s%s%s): %s\n", (int)u->params.self.rank,
            u->params.self.role == GENIE_ROLE_DRIVER ? "driver" : u->params.self.phase,
            u->params.self.role == GENIE_ROLE_DRIVER ? "" : " slice ",
            u->params.self.role == GENIE_ROLE_DRIVER ? "" : u->slice_text, line);
}

void genie_ucx_describe(const genie_ucx_t *u, int32_t rank, char *buf, size_t cap)
{
    const genie_ucx_peer_info_t *p = genie_ucx_peer(u, rank);

    if (p == NULL) {
        snprintf(buf, cap, "rank %d", (int)rank);
    } else if (p->role == GENIE_ROLE_DRIVER) {
        snprintf(buf, cap, "rank %d (the driver, pid %u on %s)", (int)rank, p->pid, p->host);
    } else {
        snprintf(buf, cap, "rank %d (%s slice %u, pid %u on %s)", (int)rank, p->phase, p->slice,
                 p->pid, p->host);
    }
}

double genie_ucx_env_seconds(const char *name, double dflt)
{
    const char *v = getenv(name);
    char       *end = NULL;
    double      d;

    if (v == NULL || v[0] == '\0') {
        return dflt;
    }
    d = strtod(v, &end);
    if (end == v || *end != '\0' || !(d > 0) || d > 1e6) {
        fprintf(stderr, "genie: %s=%s is not a number of seconds in (0, 1e6]; using %g\n", name, v,
                dflt);
        return dflt;
    }
    return d;
}

genie_status_t genie_ucx_ucs_error(ucs_status_t s, const char *what)
{
    return genie_set_error(GENIE_ERR_TRANSPORT, "ucx: %s: %s", what, ucs_status_string(s));
}

/* Defaults that make same-node traffic stay on shared memory with peer
 * failure detection; a value the user exported wins.  UCX's shared-memory
 * transports advertise peer error handling only with *_ERROR_HANDLING=y, and
 * an endpoint that asks for it would otherwise silently move to tcp. */
/* UCX_TLS is a list of names, or "^" and the names to leave out; "sm",
 * "shm" and "all" are aliases that include sysv. */
static int tls_has_sysv(const char *tls)
{
    int         negate = tls[0] == '^';
    const char *p      = negate ? tls + 1 : tls;
    int         named  = 0;

    while (*p != '\0' && !named) {
        size_t n = strcspn(p, ",");

        named = (n == 4 && strncmp(p, "sysv", 4) == 0) || (n == 2 && strncmp(p, "sm", 2) == 0) ||
                (n == 3 && strncmp(p, "shm", 3) == 0) ||
                (!negate && n == 3 && strncmp(p, "all", 3) == 0);
        p += n + (p[n] == ',');
    }
    return negate ? !named : named;
}

/* SYSV only where UCX_TLS may select sysv (unset means all): UCX warns
 * about a variable nothing reads. */
static void set_ucx_defaults(void)
{
    const char *tls = getenv("UCX_TLS");

    setenv("UCX_POSIX_ERROR_HANDLING", "y", 0);
    if (tls == NULL || tls_has_sysv(tls)) {
        setenv("UCX_SYSV_ERROR_HANDLING", "y", 0);
    }
    setenv("UCX_KEEPALIVE_INTERVAL", "1s", 0);
}

genie_status_t genie_ucx_read_secret(genie_ucx_params_t *params)
{
    const char *path = getenv("GENIE_SECRET_FILE");
    char        buf[GENIE_WIRE_SECRET_LEN + 2];
    struct stat sb;
    ssize_t     n;
    int         fd;

    if (path == NULL || path[0] == '\0') {
        return genie_set_error(GENIE_ERR_DENIED,
                               "no job secret: GENIE_SECRET_FILE is not set (start the job with "
                               "genie-launch or srun --genie-phases)");
    }
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        return genie_set_error(GENIE_ERR_DENIED, "cannot open the job secret %s: %s", path,
                               strerror(errno));
    }
    if (fstat(fd, &sb) != 0 || (sb.st_mode & 077) != 0) {
        close(fd);
        return genie_set_error(GENIE_ERR_DENIED,
                               "job secret %s is readable by others (mode %o); it must be 0600",
                               path, (unsigned)(sb.st_mode & 0777));
    }
    n = read(fd, buf, sizeof(buf));
    close(fd);
    if (n < GENIE_WIRE_SECRET_LEN) {
        return genie_set_error(GENIE_ERR_DENIED, "job secret %s is shorter than %d characters",
                               path, GENIE_WIRE_SECRET_LEN);
    }
    memcpy(params->secret, buf, GENIE_WIRE_SECRET_LEN);
    params->secret[GENIE_WIRE_SECRET_LEN] = '\0';
    return GENIE_OK;
}

/* ---- create / destroy ----------------------------------------------------- */

genie_status_t genie_ucx_create(const genie_ucx_params_t *params, genie_ucx_t **u_p)
{
    genie_ucx_t           *u;
    ucp_config_t          *cfg;
    ucp_params_t           pp = {0};
    ucp_worker_params_t    wp = {0};
    ucp_am_handler_param_t ap = {0};
    ucs_status_t           s;
    genie_status_t         st;

    if (params->size < 1 || params->self.rank < 0 || params->self.rank >= params->size) {
        return genie_set_error(GENIE_ERR_INVALID, "ucx: rank %d of %d", (int)params->self.rank,
                               (int)params->size);
    }
    if (!(params->timeout_s > 0)) {
        return genie_set_error(GENIE_ERR_INVALID, "ucx: the liveness timeout must be > 0 s "
                               "(waits are always bounded), got %g", params->timeout_s);
    }
    if ((u = calloc(1, sizeof(*u))) == NULL) {
        return genie_set_error(GENIE_ERR_NOMEM, "out of memory");
    }
    u->params   = *params;
    u->size     = params->size;
    u->next_seq = 1;
    snprintf(u->slice_text, sizeof(u->slice_text), "%u", params->self.slice);
    {
        const char *spin  = getenv("GENIE_SPIN_US");
        const char *short_get = getenv("GENIE_TEST_SHORT_GET");
        u->spin_s = (spin != NULL ? atof(spin) : 100.0) * 1e-6;
        u->test_short_get = short_get != NULL ? strtoull(short_get, NULL, 10) : 0;
    }
    u->pend_cap = 256;
    if ((u->pend = calloc(u->pend_cap, sizeof(*u->pend))) == NULL) {
        free(u);
        return genie_set_error(GENIE_ERR_NOMEM, "out of memory");
    }
    set_ucx_defaults();
    s = ucp_config_read(NULL, NULL, &cfg);
    if (s != UCS_OK) {
        st = genie_ucx_ucs_error(s, "ucp_config_read");
        goto err_free;
    }
    pp.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED;
    pp.features   = UCP_FEATURE_AM | UCP_FEATURE_RMA | UCP_FEATURE_WAKEUP;
    pp.mt_workers_shared = 0;
    s = ucp_init(&pp, cfg, &u->ctx);
    ucp_config_release(cfg);
    if (s != UCS_OK) {
        st = genie_ucx_ucs_error(s, "ucp_init");
        goto err_free;
    }
    wp.field_mask  = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
    wp.thread_mode = UCS_THREAD_MODE_SINGLE;
    s = ucp_worker_create(u->ctx, &wp, &u->worker);
    if (s != UCS_OK) {
        st = genie_ucx_ucs_error(s, "ucp_worker_create");
        goto err_cleanup;
    }
    s = ucp_worker_get_efd(u->worker, &u->efd);
    if (s != UCS_OK) {
        st = genie_ucx_ucs_error(s, "ucp_worker_get_efd");
        goto err_worker;
    }
    s = ucp_worker_get_address(u->worker, (ucp_address_t **)&u->addr, &u->addr_len);
    if (s != UCS_OK) {
        st = genie_ucx_ucs_error(s, "ucp_worker_get_address");
        goto err_worker;
    }
    ap.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_CB |
                    UCP_AM_HANDLER_PARAM_FIELD_ARG | UCP_AM_HANDLER_PARAM_FIELD_FLAGS;
    ap.id    = GENIE_WIRE_AM_ID;
    ap.cb    = genie_ucx_am_recv;
    ap.arg   = u;
    ap.flags = UCP_AM_FLAG_WHOLE_MSG;
    s = ucp_worker_set_am_recv_handler(u->worker, &ap);
    if (s != UCS_OK) {
        st = genie_ucx_ucs_error(s, "ucp_worker_set_am_recv_handler");
        goto err_addr;
    }
    if (params->arena_bytes > 0) {
        st = genie_ucx_arena_init(u, params->arena_bytes);
        if (st != GENIE_OK) {
            goto err_addr;
        }
    }
    *u_p = u;
    return GENIE_OK;

err_addr:
    ucp_worker_release_address(u->worker, u->addr);
err_worker:
    ucp_worker_destroy(u->worker);
err_cleanup:
    ucp_cleanup(u->ctx);
err_free:
    free(u->pend);
    free(u);
    return st;
}

void genie_ucx_destroy(genie_ucx_t *u)
{
    if (u == NULL) {
        return;
    }
    /* Wait (bounded) for a rendezvous in flight so UCX does not write into
     * freed buffers; closing the endpoints by force then completes whatever
     * is left. */
    for (genie_ucx_msg_t *m = u->req_head; m != NULL; m = m->next) {
        for (double t0 = genie_ucx_now(); m->ready == 0 && genie_ucx_now() - t0 < 1.0;) {
            ucp_worker_progress(u->worker);
        }
    }
    genie_ucx_conns_free(u);
    genie_ucx_free_queue(u->req_head);
    genie_ucx_free_queue(u->rep_head);
    for (int i = 0; i < u->n_ctrl; i++) {
        free(u->ctrl[i].payload);
    }
    for (int32_t r = 0; u->peers != NULL && r < u->size; r++) {
        free(u->peers[r].addr);
    }
    free(u->peers);
    free(u->pend);
    genie_ucx_arena_fini(u);
    ucp_worker_release_address(u->worker, u->addr);
    ucp_worker_destroy(u->worker);
    ucp_cleanup(u->ctx);
    free(u);
}

int32_t genie_ucx_rank(const genie_ucx_t *u) { return u->params.self.rank; }
int32_t genie_ucx_size(const genie_ucx_t *u) { return u->size; }
double  genie_ucx_timeout(const genie_ucx_t *u) { return u->params.timeout_s; }

const genie_ucx_peer_info_t *genie_ucx_peer(const genie_ucx_t *u, int32_t rank)
{
    return rank >= 0 && rank < u->size && u->peers != NULL ? &u->peers[rank].info : NULL;
}

uint64_t genie_ucx_dropped(const genie_ucx_t *u) { return u->dropped; }

uint32_t genie_ucx_n_conns(const genie_ucx_t *u)
{
    uint32_t n = 0;
    for (const genie_ucx_conn_t *c = u->conns; c != NULL; c = c->next) {
        n++;
    }
    return n;
}

void genie_ucx_link_stats(const genie_ucx_t *u, int32_t rank, genie_ucx_link_stats_t *stats_p)
{
    if (rank >= 0 && rank < u->size && u->peers != NULL) {
        *stats_p = u->peers[rank].stats;
    } else {
        memset(stats_p, 0, sizeof(*stats_p));
    }
}

/* ---- progress ------------------------------------------------------------- */

/* Progress a bounded number of times, then send the queued HELLO verdicts
 * and PING answers. */
void genie_ucx_progress(genie_ucx_t *u)
{
    for (int i = 0; i < GENIE_UCX_PROGRESS_BUDGET && ucp_worker_progress(u->worker) != 0; i++) {
    }
    if (u->n_ctrl > 0) {
        genie_ucx_ctrl_flush(u);
    }
}

void genie_ucx_poll(genie_ucx_t *u)
{
    genie_ucx_progress(u);
}

/* Progress; if nothing is ready, sleep on the worker's fd for up to ms. */
void genie_ucx_progress_block(genie_ucx_t *u, int ms)
{
    ucs_status_t  s;
    struct pollfd pfd = { .fd = u->efd, .events = POLLIN };

    genie_ucx_progress(u);
    s = ucp_worker_arm(u->worker);
    if (s == UCS_ERR_BUSY) {
        return;
    }
    if (s == UCS_OK) {
        (void)poll(&pfd, 1, ms);
    }
    genie_ucx_progress(u);
}

/* ---- peer status ---------------------------------------------------------- */

/* Is the peer's process gone?  Only answerable for peers on this host; the
 * UCX error callback (and keepalive) covers the others.  A stopped process
 * (SIGSTOP) is not gone: liveness probes find it. */
static void check_pid(genie_ucx_t *u, int32_t rank)
{
    genie_ucx_peer_t *p = &u->peers[rank];
    char              path[64], state = 0, buf[256];
    FILE             *f;

    if (p->lost != GENIE_OK || p->info.pid == 0 ||
        strcmp(p->info.host, u->params.self.host) != 0) {
        return;
    }
    if (kill((pid_t)p->info.pid, 0) != 0 && errno == ESRCH) {
        genie_ucx_peer_lost(u, rank, "its process is gone");
        return;
    }
    snprintf(path, sizeof(path), "/proc/%u/stat", p->info.pid);
    if ((f = fopen(path, "r")) != NULL) {
        /* "pid (comm) S ...": the state follows the last ')'. */
        if (fgets(buf, sizeof(buf), f) != NULL) {
            char *rp = strrchr(buf, ')');
            if (rp != NULL && rp[1] == ' ') {
                state = rp[2];
            }
        }
        fclose(f);
        if (state == 'Z' || state == 'X') {
            genie_ucx_peer_lost(u, rank, "its process exited");
        }
    }
}

genie_status_t genie_ucx_peer_status(genie_ucx_t *u, int32_t rank)
{
    genie_ucx_peer_t *p;
    char              who[160];

    if (rank < 0 || rank >= u->size || u->peers == NULL) {
        return genie_set_error(GENIE_ERR_INVALID, "no rank %d in this job", (int)rank);
    }
    p = &u->peers[rank];
    if (p->lost == GENIE_OK) {
        double now = genie_ucx_now();
        if (now - p->last_check > 0.2) {
            p->last_check = now;
            check_pid(u, rank);
        }
    }
    if (p->lost != GENIE_OK) {
        genie_ucx_describe(u, rank, who, sizeof(who));
        return genie_set_error(GENIE_ERR_PEER_LOST, "%s was lost: %s", who, p->lost_reason);
    }
    return GENIE_OK;
}

/*
 * Driver-side requests (see genie/client.h).  Each call builds its payload
 * with the wire writer, sends it, and parses the reply with the bounds-checked
 * reader: a reply is as untrusted as a request.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "genie/client.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PLAN_MEMORY 64     /* plan hashes remembered per rank (executor keeps 64) */
#define MAX_TICKETS 4096

typedef struct ticket {
    uint32_t seq;          /* 0 = free slot */
    int32_t  rank;
    uint64_t hash;
    uint8_t *srg;          /* hash-only requests: a copy of the plan, to resend on a miss */
    size_t   srg_len;
    uint8_t *inputs;       /* ... and of the encoded inputs */
    size_t   inputs_len;
} ticket_t;

struct genie_client {
    genie_ucx_t *ucx;
    int          own_mpi;
    double       handoff_s;             /* GENIE_HANDOFF_TIMEOUT_S */
    double       checkpoint_s;          /* GENIE_CHECKPOINT_TIMEOUT_S */
    int32_t      last_lost;             /* rank of the last GENIE_ERR_PEER_LOST */
    uint64_t   (*plans)[PLAN_MEMORY];   /* (size) x PLAN_MEMORY, FIFO */
    uint32_t    *plan_next;             /* (size) */
    ticket_t     tickets[MAX_TICKETS];
};

genie_ucx_t *genie_client_ucx(genie_client_t *c)
{
    return c->ucx;
}

int32_t genie_client_last_lost(const genie_client_t *c)
{
    return c->last_lost;
}

/* ---- a rank that stopped answering ------------------------------------------ */

/* FENCE: | rank u32 | reason bytes |  (no reply).  Every other executor drops
 * the ended rank's connections, so that it cannot come back and hand off,
 * read or write anything even where it could not be killed. */
static void fence(genie_client_t *c, int32_t lost, const char *why)
{
    genie_wire_writer_t w;

    genie_wire_w_init(&w);
    genie_wire_w_u32(&w, (uint32_t)lost);
    genie_wire_w_bytes(&w, why, (uint32_t)strnlen(why, 512));
    if (genie_wire_w_status(&w) == GENIE_OK) {
        for (int32_t r = 1; r < genie_ucx_size(c->ucx); r++) {
            if (r != lost && genie_ucx_peer_status(c->ucx, r) == GENIE_OK) {
                (void)genie_ucx_send(c->ucx, r, GENIE_MSG_FENCE, 0, w.buf, w.len,
                                     GENIE_UCX_COPY | GENIE_UCX_NO_REPLY, NULL);
            }
        }
    }
    genie_wire_w_free(&w);
    genie_clear_error();
}

/* The outcome of a wait: an unresponsive rank (GENIE_ERR_TIMEOUT) is ended,
 * as a lost one, with one line, and reported as GENIE_ERR_PEER_LOST, so the
 * runtime recovers its work exactly as after a SIGKILL.  A rank another
 * executor found unresponsive or lost (PEER_LOST in a reply) is ended too. */
static genie_status_t outcome(genie_client_t *c, int32_t rank, genie_status_t st)
{
    char why[600], who[160];
    int  killed;

    if (st == GENIE_ERR_PEER_LOST) {
        char keep[600];
        if (genie_ucx_peer_status(c->ucx, rank) != GENIE_OK) {
            c->last_lost = rank;
            return st;
        }
        /* A live executor answered that some peer of its own was lost: an
         * error of this request, not the loss of `rank`. */
        snprintf(keep, sizeof(keep), "%s", genie_last_error());
        return genie_set_error(GENIE_ERR_TRANSPORT, "%s", keep);
    }
    if (st != GENIE_ERR_TIMEOUT) {
        return st;
    }
    /* The line names the rank once: the transport's reason starts with it. */
    genie_ucx_describe(c->ucx, rank, who, sizeof(who));
    {
        const char *msg = genie_last_error();
        size_t      wl  = strlen(who);
        snprintf(why, sizeof(why), "%s", strncmp(msg, who, wl) == 0 && msg[wl] == ' ' ? msg + wl + 1
                                                                                    : msg);
    }
    killed = genie_ucx_end_peer(c->ucx, rank, why);
    fence(c, rank, why);
    c->last_lost = rank;
    /* No line here: the caller decides (the runtime says it recovers, or
     * the program ends with this error). */
    return genie_set_error(GENIE_ERR_PEER_LOST, "%s was lost: %s; it was %s", who, why,
                           killed ? "ended (SIGKILL)"
                                  : "fenced off (it runs on another host, where the driver cannot "
                                    "end it)");
}

static genie_status_t client_wait(genie_client_t *c, uint32_t seq, int32_t rank, double limit_s,
                                  genie_ucx_msg_t **m_p)
{
    genie_status_t st = genie_ucx_wait_for(c->ucx, seq, rank, limit_s, NULL, m_p);
    return st == GENIE_OK ? st : outcome(c, rank, st);
}

static genie_status_t client_send(genie_client_t *c, int32_t rank, uint16_t type, uint64_t aux,
                                  const void *payload, size_t len, int flags, uint32_t *seq_p)
{
    genie_status_t st = genie_ucx_send(c->ucx, rank, type, aux, payload, len, flags, seq_p);
    return st == GENIE_OK ? st : outcome(c, rank, st);
}

genie_status_t genie_client_open(genie_client_t **c_p)
{
    genie_ucx_params_t params = {0};
    genie_client_t    *c;
    genie_status_t     st;
    int                inited = 0, rank, size, provided;

    if ((c = calloc(1, sizeof(*c))) == NULL) {
        return genie_set_error(GENIE_ERR_NOMEM, "out of memory");
    }
    if ((st = genie_ucx_read_secret(&params)) != GENIE_OK) {
        free(c);
        return st;
    }
    MPI_Initialized(&inited);
    if (!inited) {
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_SINGLE, &provided) != MPI_SUCCESS) {
            free(c);
            return genie_set_error(GENIE_ERR_TRANSPORT, "MPI_Init failed");
        }
        c->own_mpi = 1;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (rank != 0) {
        st = genie_set_error(GENIE_ERR_INVALID, "the driver must be MPI rank 0, this is rank %d", rank);
        goto err_mpi;
    }
    if (size < 2) {
        st = genie_set_error(GENIE_ERR_INVALID, "the MPI world has no executor ranks (size %d)", size);
        goto err_mpi;
    }
    params.self.rank = 0;
    params.self.role = GENIE_ROLE_DRIVER;
    params.self.pid  = (uint32_t)getpid();
    gethostname(params.self.host, sizeof(params.self.host) - 1);
    params.size      = size;
    params.timeout_s = genie_ucx_env_seconds("GENIE_REQUEST_TIMEOUT_S", GENIE_DEFAULT_REQUEST_TIMEOUT_S);
    c->handoff_s     = genie_ucx_env_seconds("GENIE_HANDOFF_TIMEOUT_S", GENIE_DEFAULT_HANDOFF_TIMEOUT_S);
    c->checkpoint_s  = genie_ucx_env_seconds("GENIE_CHECKPOINT_TIMEOUT_S",
                                         GENIE_DEFAULT_CHECKPOINT_TIMEOUT_S);
    c->last_lost     = -1;
    c->plans     = calloc((size_t)size, sizeof(*c->plans));
    c->plan_next = calloc((size_t)size, sizeof(*c->plan_next));
    if (c->plans == NULL || c->plan_next == NULL) {
        st = genie_set_error(GENIE_ERR_NOMEM, "out of memory");
        goto err_mpi;
    }
    if ((st = genie_ucx_create(&params, &c->ucx)) != GENIE_OK) {
        goto err_mpi;
    }
    if ((st = genie_ucx_bootstrap_mpi(c->ucx, genie_ucx_env_seconds("GENIE_BOOTSTRAP_TIMEOUT_S",
                                                              GENIE_DEFAULT_BOOTSTRAP_TIMEOUT_S))) !=
        GENIE_OK) {
        goto err_ucx;
    }
    /* Every HELLO first, then the verdicts: one round trip for all ranks. */
    for (int32_t r = 1; r < size; r++) {
        if (genie_ucx_peer(c->ucx, r)->role != GENIE_ROLE_EXECUTOR) {
            st = genie_set_error(GENIE_ERR_INVALID, "rank %d is not an executor", (int)r);
            goto err_ucx;
        }
        if ((st = genie_ucx_connect_start(c->ucx, r)) != GENIE_OK) {
            goto err_ucx;
        }
    }
    for (int32_t r = 1; r < size; r++) {
        if ((st = genie_ucx_connect(c->ucx, r, NULL)) != GENIE_OK) {
            goto err_ucx;
        }
    }
    *c_p = c;
    return GENIE_OK;

err_ucx:
    genie_ucx_destroy(c->ucx);
err_mpi:
    /* A half-joined world cannot be left cleanly; MPI_Abort would kill the
     * executors and the user's program without a word, so we only report. */
    free(c->plans);
    free(c->plan_next);
    free(c);
    return st;
}

void genie_client_close(genie_client_t *c, int keep_mpi)
{
    if (c == NULL) {
        return;
    }
    /* SHUTDOWN to the living executors; all sent first, then collected, so
     * teardown takes one round trip however many ranks there are. */
    /* A job that lost a rank cannot finalise reliably (MPI_Finalize's
     * fence may wait for the dead rank): then nobody calls it, and the
     * SHUTDOWN's aux = 1 tells the executors so. */
    int lost = 0;
    {
        int32_t   size = genie_ucx_size(c->ucx);
        uint32_t *seqs = calloc((size_t)size, sizeof(*seqs));
        for (int32_t r = 1; r < size; r++) {
            lost |= genie_ucx_peer_status(c->ucx, r) != GENIE_OK;
        }
        for (int32_t r = 1; seqs != NULL && r < size; r++) {
            if (genie_ucx_peer_status(c->ucx, r) == GENIE_OK) {
                (void)genie_ucx_send(c->ucx, r, GENIE_MSG_SHUTDOWN, (uint64_t)lost, NULL, 0,
                                     GENIE_UCX_COPY, &seqs[r]);
                genie_clear_error();
            }
        }
        for (int32_t r = 1; seqs != NULL && r < size; r++) {
            genie_ucx_msg_t *m = NULL;
            /* Bounded: an executor that does not take its SHUTDOWN within
             * 5 s (stopped, hung) is ended so that it cannot outlive us. */
            genie_status_t st = seqs[r] != 0 ? genie_ucx_wait_for(c->ucx, seqs[r], r, 5.0,
                                                                  "SHUTDOWN", &m) : GENIE_OK;
            if (st == GENIE_OK) {
                genie_ucx_msg_free(m);
            } else if (st == GENIE_ERR_TIMEOUT) {
                char why[400];
                snprintf(why, sizeof(why), "%s", genie_last_error());
                if (genie_ucx_end_peer(c->ucx, r, why)) {
                    genie_ucx_log(c->ucx, "%s; ended it (SIGKILL)", why);
                } else {
                    genie_ucx_log(c->ucx, "%s; it runs on another host and was left to its "
                                  "launcher", why);
                }
            }
        }
        free(seqs);
    }
    for (int i = 0; i < MAX_TICKETS; i++) {
        free(c->tickets[i].srg);
        free(c->tickets[i].inputs);
    }
    genie_ucx_destroy(c->ucx);
    if (!keep_mpi && !lost) {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized) {
            MPI_Finalize();
        }
    }
    free(c->plans);
    free(c->plan_next);
    free(c);
}

/* ---- plan memory ---------------------------------------------------------- */

static int plan_known(genie_client_t *c, int32_t rank, uint64_t hash)
{
    for (int i = 0; i < PLAN_MEMORY; i++) {
        if (c->plans[rank][i] == hash) {
            return 1;
        }
    }
    return 0;
}

static void plan_remember(genie_client_t *c, int32_t rank, uint64_t hash)
{
    if (!plan_known(c, rank, hash)) {
        c->plans[rank][c->plan_next[rank]++ % PLAN_MEMORY] = hash;
    }
}

static void plan_forget(genie_client_t *c, int32_t rank, uint64_t hash)
{
    for (int i = 0; i < PLAN_MEMORY; i++) {
        if (c->plans[rank][i] == hash) {
            c->plans[rank][i] = 0;
        }
    }
}

/* ---- RUN ------------------------------------------------------------------ */

static genie_status_t check_rank(genie_client_t *c, int32_t rank)
{
    if (rank < 1 || rank >= genie_ucx_size(c->ucx)) {
        return genie_set_error(GENIE_ERR_INVALID, "no executor rank %d (ranks 1..%d)", (int)rank,
                               (int)genie_ucx_size(c->ucx) - 1);
    }
    return GENIE_OK;
}

/* Encode | srg bytes | n u32 | tensors | with srg given or empty. */
static genie_status_t encode_run(genie_wire_writer_t *w, const uint8_t *srg, size_t srg_len,
                                 const uint8_t *inputs, size_t inputs_len)
{
    genie_wire_w_init(w);
    genie_wire_w_bytes(w, srg, (uint32_t)srg_len);
    genie_wire_w_align8(w);
    genie_wire_w_raw(w, inputs, inputs_len);
    return genie_wire_w_status(w);
}

static genie_status_t send_run(genie_client_t *c, ticket_t *t, int with_plan)
{
    genie_wire_writer_t w;
    genie_status_t      st;

    st = encode_run(&w, with_plan ? t->srg : NULL, with_plan ? t->srg_len : 0, t->inputs, t->inputs_len);
    if (st == GENIE_OK) {
        st = client_send(c, t->rank, GENIE_MSG_RUN, t->hash, w.buf, w.len, GENIE_UCX_COPY, &t->seq);
    }
    genie_wire_w_free(&w);
    return st;
}

genie_status_t genie_client_submit(genie_client_t *c, int32_t rank, const uint8_t *srg,
                                   size_t srg_len, const genie_tensor_t *inputs, uint32_t n_inputs,
                                   uint32_t *ticket_p)
{
    genie_wire_writer_t in;
    ticket_t           *t = NULL;
    genie_status_t      st;
    int                 known;

    if ((st = check_rank(c, rank)) != GENIE_OK) {
        return st;
    }
    if (srg_len > UINT32_MAX) {
        return genie_set_error(GENIE_ERR_INVALID, "SRG of %zu bytes is too large", srg_len);
    }
    for (uint32_t i = 0; i < MAX_TICKETS; i++) {
        if (c->tickets[i].seq == 0) {
            t = &c->tickets[i];
            *ticket_p = i + 1;
            break;
        }
    }
    if (t == NULL) {
        return genie_set_error(GENIE_ERR_INVALID, "more than %d requests in flight", MAX_TICKETS);
    }
    genie_wire_w_init(&in);
    genie_wire_w_u32(&in, n_inputs);
    for (uint32_t i = 0; i < n_inputs; i++) {
        genie_wire_w_tensor(&in, inputs[i].dtype, inputs[i].ndim, inputs[i].shape,
                            genie_tensor_data(&inputs[i]));
    }
    if ((st = genie_wire_w_status(&in)) != GENIE_OK) {
        genie_wire_w_free(&in);
        return st;
    }
    memset(t, 0, sizeof(*t));
    t->rank       = rank;
    t->hash       = genie_wire_hash(srg, srg_len);
    t->inputs     = in.buf;            /* keeps the encoded inputs */
    t->inputs_len = in.len;
    known = plan_known(c, rank, t->hash);
    if (known) {
        /* Keep the plan until the reply: the executor may have evicted it. */
        if ((t->srg = malloc(srg_len + 1)) == NULL) {
            free(t->inputs);
            memset(t, 0, sizeof(*t));
            return genie_set_error(GENIE_ERR_NOMEM, "out of memory");
        }
        memcpy(t->srg, srg, srg_len);
        t->srg_len = srg_len;
        st = send_run(c, t, 0);
    } else {
        t->srg     = (uint8_t *)srg;       /* borrowed for the send (copied by it) */
        t->srg_len = srg_len;
        st = send_run(c, t, 1);
        t->srg     = NULL;
        t->srg_len = 0;
        plan_remember(c, rank, t->hash);
        free(t->inputs);
        t->inputs = NULL;
    }
    if (st != GENIE_OK) {
        free(t->srg);
        free(t->inputs);
        memset(t, 0, sizeof(*t));
    }
    return st;
}

/* Reply buffers shared by the outputs of one RUN. */
typedef struct reply_storage {
    genie_storage_t  s;
    genie_ucx_msg_t *msg;
    int             *shared;     /* outputs still referencing msg */
} reply_storage_t;

static void reply_release(genie_storage_t *s)
{
    reply_storage_t *rs = (reply_storage_t *)s;
    if (--*rs->shared == 0) {
        genie_ucx_msg_free(rs->msg);
        free(rs->shared);
    }
    free(rs);
}

/* Tensors of a reply payload, each a view of the reply buffer. */
static genie_status_t reply_tensors(genie_wire_reader_t *r, genie_ucx_msg_t *m, uint32_t n,
                                    genie_tensor_t **outs_p)
{
    genie_tensor_t *outs = calloc(n + 1, sizeof(*outs));
    int            *shared = malloc(sizeof(int));
    uint32_t        k = 0;
    genie_status_t  st = GENIE_OK;

    if (outs == NULL || shared == NULL) {
        free(outs);
        free(shared);
        return genie_set_error(GENIE_ERR_NOMEM, "out of memory");
    }
    *shared = 1;                        /* our own reference until the end */
    for (; k < n; k++) {
        genie_wire_tensor_t wt;
        reply_storage_t    *rs;
        genie_wire_r_tensor(r, &wt);
        if (r->st != GENIE_OK) {
            st = r->st;
            break;
        }
        if ((rs = calloc(1, sizeof(*rs))) == NULL) {
            st = genie_set_error(GENIE_ERR_NOMEM, "out of memory");
            break;
        }
        genie_wire_tensor_view(&wt, &rs->s, &outs[k]);
        rs->s.release = reply_release;
        rs->msg       = m;
        rs->shared    = shared;
        (*shared)++;
    }
    if (st == GENIE_OK) {
        st = genie_wire_r_done(r);
    }
    if (st != GENIE_OK) {
        for (uint32_t i = 0; i < k; i++) {
            genie_tensor_release(&outs[i]);
        }
        free(outs);
        if (--*shared == 0) {
            free(shared);
        }
        return st;
    }
    if (--*shared == 0) {               /* no outputs: nobody else holds msg */
        free(shared);
        genie_ucx_msg_free(m);
    }
    *outs_p = outs;
    return GENIE_OK;
}

genie_status_t genie_client_wait(genie_client_t *c, uint32_t ticket, genie_tensor_t **outs_p,
                                 uint32_t *n_outs_p, double *compute_s_p)
{
    genie_wire_reader_t r;
    genie_ucx_msg_t    *m = NULL;
    ticket_t           *t;
    genie_status_t      st;
    uint32_t            n;
    double              compute;

    if (ticket == 0 || ticket > MAX_TICKETS || c->tickets[ticket - 1].seq == 0) {
        return genie_set_error(GENIE_ERR_INVALID, "no request with ticket %u in flight", ticket);
    }
    t  = &c->tickets[ticket - 1];
    st = client_wait(c, t->seq, t->rank, 0, &m);
    if (st == GENIE_ERR_NO_PLAN && t->srg != NULL) {
        /* Evicted on the executor: send the plan itself this time. */
        plan_forget(c, t->rank, t->hash);
        st = send_run(c, t, 1);
        if (st == GENIE_OK) {
            plan_remember(c, t->rank, t->hash);
            st = client_wait(c, t->seq, t->rank, 0, &m);
        }
    }
    free(t->srg);
    free(t->inputs);
    memset(t, 0, sizeof(*t));
    if (st != GENIE_OK) {
        return st;
    }
    genie_wire_r_init(&r, m->payload, m->len, "RUN reply");
    compute = genie_wire_r_f64(&r);
    n       = genie_wire_r_count(&r, 16);    /* smallest tensor: a 0-dim header + data */
    if (r.st != GENIE_OK) {
        genie_ucx_msg_free(m);
        return r.st;
    }
    if ((st = reply_tensors(&r, m, n, outs_p)) != GENIE_OK) {
        genie_ucx_msg_free(m);
        return st;
    }
    *n_outs_p = n;
    if (compute_s_p != NULL) {
        *compute_s_p = compute;
    }
    return GENIE_OK;
}

/* ---- the other requests --------------------------------------------------- */

static genie_status_t call_w_for(genie_client_t *c, int32_t rank, uint16_t type,
                                 genie_wire_writer_t *w, double limit_s, genie_ucx_msg_t **reply_p)
{
    genie_status_t st = genie_wire_w_status(w);
    genie_ucx_msg_t *m = NULL;

    if (st == GENIE_OK) {
        st = check_rank(c, rank);
    }
    if (st == GENIE_OK) {
        uint32_t seq;
        st = client_send(c, rank, type, 0, w->buf, w->len, GENIE_UCX_COPY, &seq);
        if (st == GENIE_OK) {
            st = client_wait(c, seq, rank, limit_s, &m);
        }
    }
    genie_wire_w_free(w);
    if (st == GENIE_OK) {
        if (reply_p != NULL) {
            *reply_p = m;
        } else {
            genie_ucx_msg_free(m);
        }
    }
    return st;
}

static genie_status_t call_w(genie_client_t *c, int32_t rank, uint16_t type, genie_wire_writer_t *w,
                             genie_ucx_msg_t **reply_p)
{
    return call_w_for(c, rank, type, w, 0, reply_p);
}

genie_status_t genie_client_weight(genie_client_t *c, int32_t rank, uint64_t fingerprint,
                                   const char *name, const genie_tensor_t *host)
{
    genie_wire_writer_t w;
    genie_wire_hdr_t    h;
    genie_ucx_msg_t    *m = NULL;
    genie_status_t      st;
    uint32_t            seq;

    (void)h;
    if ((st = check_rank(c, rank)) != GENIE_OK) {
        return st;
    }
    /* Large: the tensor data is sent from the caller's buffer (no copy). */
    genie_wire_w_init(&w);
    genie_wire_w_u64(&w, fingerprint);
    genie_wire_w_bytes(&w, name, (uint32_t)strlen(name));
    genie_wire_w_tensor(&w, host->dtype, host->ndim, host->shape, genie_tensor_data(host));
    if ((st = genie_wire_w_status(&w)) == GENIE_OK) {
        st = client_send(c, rank, GENIE_MSG_WEIGHT, 0, w.buf, w.len, 0, &seq);
    }
    genie_wire_w_free(&w);
    if (st == GENIE_OK) {
        st = client_wait(c, seq, rank, 0, &m);
        genie_ucx_msg_free(m);
    }
    return st;
}

genie_status_t genie_client_free(genie_client_t *c, int32_t rank, const uint64_t *ids, uint32_t n)
{
    genie_wire_writer_t w;
    genie_status_t      st;

    if ((st = check_rank(c, rank)) != GENIE_OK) {
        return st;
    }
    genie_wire_w_init(&w);
    genie_wire_w_u32(&w, n);
    genie_wire_w_raw(&w, ids, 8 * (size_t)n);
    if ((st = genie_wire_w_status(&w)) == GENIE_OK) {
        st = client_send(c, rank, GENIE_MSG_FREE, 0, w.buf, w.len,
                         GENIE_UCX_COPY | GENIE_UCX_NO_REPLY, NULL);
    }
    genie_wire_w_free(&w);
    return st;
}

genie_status_t genie_client_fetch(genie_client_t *c, int32_t rank, uint64_t id, genie_tensor_t *out_p)
{
    genie_wire_writer_t w;
    genie_wire_reader_t r;
    genie_ucx_msg_t    *m = NULL;
    genie_tensor_t     *outs = NULL;
    genie_status_t      st;

    genie_wire_w_init(&w);
    genie_wire_w_u64(&w, id);
    if ((st = call_w(c, rank, GENIE_MSG_FETCH, &w, &m)) != GENIE_OK) {
        return st;
    }
    genie_wire_r_init(&r, m->payload, m->len, "FETCH reply");
    if ((st = reply_tensors(&r, m, 1, &outs)) != GENIE_OK) {
        genie_ucx_msg_free(m);
        return st;
    }
    *out_p = outs[0];
    free(outs);
    return GENIE_OK;
}

genie_status_t genie_client_bind(genie_client_t *c, int32_t rank, uint64_t session,
                                 const uint64_t *ids, uint32_t n)
{
    genie_wire_writer_t w;

    genie_wire_w_init(&w);
    genie_wire_w_u64(&w, session);
    genie_wire_w_u32(&w, n);
    genie_wire_w_raw(&w, ids, 8 * (size_t)n);
    return call_w(c, rank, GENIE_MSG_BIND, &w, NULL);
}

static genie_status_t session_call(genie_client_t *c, int32_t rank, uint16_t type, uint64_t session,
                                   uint32_t *n_p, uint64_t *bytes_p)
{
    genie_wire_writer_t w;
    genie_wire_reader_t r;
    genie_ucx_msg_t    *m = NULL;
    genie_status_t      st;
    uint32_t            n;
    uint64_t            bytes = 0;

    genie_wire_w_init(&w);
    genie_wire_w_u64(&w, session);
    if ((st = call_w(c, rank, type, &w, &m)) != GENIE_OK) {
        return st;
    }
    genie_wire_r_init(&r, m->payload, m->len, genie_msg_name(type));
    n = genie_wire_r_u32(&r);
    if (type == GENIE_MSG_SESSION_INFO) {
        bytes = genie_wire_r_u64(&r);
    }
    st = genie_wire_r_done(&r);
    genie_ucx_msg_free(m);
    if (st == GENIE_OK) {
        *n_p = n;
        if (bytes_p != NULL) {
            *bytes_p = bytes;
        }
    }
    return st;
}

genie_status_t genie_client_end_session(genie_client_t *c, int32_t rank, uint64_t session,
                                        uint32_t *n_freed_p)
{
    return session_call(c, rank, GENIE_MSG_END_SESSION, session, n_freed_p, NULL);
}

genie_status_t genie_client_session_info(genie_client_t *c, int32_t rank, uint64_t session,
                                         uint32_t *n_p, uint64_t *bytes_p)
{
    return session_call(c, rank, GENIE_MSG_SESSION_INFO, session, n_p, bytes_p);
}

/* | bytes u64 | seconds f64 | : the reply of HANDOFF, CHECKPOINT and RESTORE. */
static genie_status_t bytes_seconds_reply(genie_ucx_msg_t *m, const char *what, uint64_t *bytes_p,
                                          double *seconds_p)
{
    genie_wire_reader_t r;
    uint64_t            bytes;
    double              secs;
    genie_status_t      st;

    genie_wire_r_init(&r, m->payload, m->len, what);
    bytes = genie_wire_r_u64(&r);
    secs  = genie_wire_r_f64(&r);
    st    = genie_wire_r_done(&r);
    genie_ucx_msg_free(m);
    if (st == GENIE_OK) {
        *bytes_p   = bytes;
        *seconds_p = secs;
    }
    return st;
}

genie_status_t genie_client_handoff(genie_client_t *c, int32_t src, int32_t dst, uint64_t session,
                                    const uint64_t *ids, uint32_t n, uint64_t *bytes_p,
                                    double *seconds_p)
{
    genie_wire_writer_t w;
    genie_ucx_msg_t    *m = NULL;
    genie_status_t      st;

    if ((st = check_rank(c, dst)) != GENIE_OK) {
        return st;
    }
    genie_wire_w_init(&w);
    genie_wire_w_u64(&w, session);
    genie_wire_w_u32(&w, (uint32_t)dst);
    genie_wire_w_u32(&w, n);
    genie_wire_w_raw(&w, ids, 8 * (size_t)n);
    if ((st = check_rank(c, src)) == GENIE_OK && (st = genie_wire_w_status(&w)) == GENIE_OK) {
        uint32_t seq;
        st = client_send(c, src, GENIE_MSG_HANDOFF, 0, w.buf, w.len, GENIE_UCX_COPY, &seq);
        /* The source gives up after handoff_timeout_s itself; waiting a
         * liveness timeout longer lets its answer arrive first. */
        if (st == GENIE_OK) {
            st = genie_ucx_wait_for(c->ucx, seq, src, c->handoff_s + genie_ucx_timeout(c->ucx),
                                    NULL, &m);
        }
        if (st == GENIE_ERR_PEER_LOST) {
            char why[600];
            snprintf(why, sizeof(why), "%s", genie_last_error());
            if (genie_ucx_peer_status(c->ucx, src) != GENIE_OK) {
                c->last_lost = src;
            } else if (genie_ucx_peer_status(c->ucx, dst) != GENIE_OK) {
                c->last_lost = dst;               /* peer_status named it */
            } else {
                /* The source is alive and reports that the destination did
                 * not answer or was lost: end it as the driver would. */
                (void)genie_set_error(GENIE_ERR_TIMEOUT, "in a KV handoff to it, rank %d "
                                      "reported: %s", (int)src, why);
                st = outcome(c, dst, GENIE_ERR_TIMEOUT);
            }
        } else if (st != GENIE_OK) {
            st = outcome(c, src, st);
        }
    }
    genie_wire_w_free(&w);
    if (st != GENIE_OK) {
        return st;
    }
    return bytes_seconds_reply(m, "HANDOFF reply", bytes_p, seconds_p);
}

genie_status_t genie_client_stats(genie_client_t *c, int32_t rank,
                                  void (*fn)(const char *name, double value, void *arg),
                                  void (*fn_text)(const char *name, const char *text, void *arg),
                                  void *arg)
{
    genie_wire_writer_t w;
    genie_wire_reader_t r;
    genie_ucx_msg_t    *m = NULL;
    genie_status_t      st;
    uint32_t            n;

    genie_wire_w_init(&w);
    if ((st = call_w(c, rank, GENIE_MSG_STATS, &w, &m)) != GENIE_OK) {
        return st;
    }
    genie_wire_r_init(&r, m->payload, m->len, "STATS reply");
    n = genie_wire_r_count(&r, 12);
    for (uint32_t i = 0; i < n && r.st == GENIE_OK; i++) {
        char        name[64];
        uint32_t    len;
        const char *p = genie_wire_r_bytes(&r, &len);
        double      v = genie_wire_r_f64(&r);
        if (r.st == GENIE_OK) {
            snprintf(name, sizeof(name), "%.*s", (int)len, p);
            fn(name, v, arg);
        }
    }
    n = genie_wire_r_count(&r, 8);
    for (uint32_t i = 0; i < n && r.st == GENIE_OK; i++) {
        char        name[64], text[4097];
        uint32_t    nlen, tlen;
        const char *np = genie_wire_r_bytes(&r, &nlen);
        const char *tp = genie_wire_r_bytes(&r, &tlen);

        if (r.st == GENIE_OK && fn_text != NULL) {
            snprintf(name, sizeof(name), "%.*s", (int)nlen, np);
            snprintf(text, sizeof(text), "%.*s", (int)(tlen < 4096 ? tlen : 4096), tp);
            fn_text(name, text, arg);
        }
    }
    st = genie_wire_r_done(&r);
    genie_ucx_msg_free(m);
    return st;
}

/* CHECKPOINT (docs/wire-protocol.md):
 *   | epoch u64 | path bytes | job bytes | n u32 | n x session |
 *   session: | id u64 | key u64 | model_fp u64 | step u64 | prompt_len u64 |
 *            | tokens tensor (i64, (B, L)) | rng bytes | lineage tensor (i64, (R, 6)) |
 *            | n_kv u32 | n_kv x (id u64 | name bytes) | */
genie_status_t genie_client_checkpoint_send(genie_client_t *c, int32_t rank, uint64_t epoch,
                                            const char *path, const char *job,
                                            const genie_client_ckpt_session_t *sessions,
                                            uint32_t n, uint32_t *seq_p)
{
    genie_wire_writer_t w;
    genie_status_t      st;

    if ((st = check_rank(c, rank)) != GENIE_OK) {
        return st;
    }
    genie_wire_w_init(&w);
    genie_wire_w_u64(&w, epoch);
    genie_wire_w_bytes(&w, path, (uint32_t)strlen(path));
    genie_wire_w_bytes(&w, job, (uint32_t)strlen(job));
    genie_wire_w_u32(&w, n);
    for (uint32_t i = 0; i < n; i++) {
        const genie_client_ckpt_session_t *s = &sessions[i];
        int64_t tshape[2] = { s->batch, (int64_t)s->n_tokens }, lshape[2] = { s->n_lineage, 6 };

        genie_wire_w_u64(&w, s->id);
        genie_wire_w_u64(&w, s->key);
        genie_wire_w_u64(&w, s->model_fp);
        genie_wire_w_u64(&w, s->step);
        genie_wire_w_u64(&w, s->prompt_len);
        genie_wire_w_tensor(&w, GENIE_I64, 2, tshape, s->tokens);
        genie_wire_w_bytes(&w, s->rng, s->rng_len);
        genie_wire_w_align8(&w);
        genie_wire_w_tensor(&w, GENIE_I64, 2, lshape, s->lineage);
        genie_wire_w_u32(&w, s->n_kv);
        for (uint32_t k = 0; k < s->n_kv; k++) {
            genie_wire_w_u64(&w, s->kv_ids[k]);
            genie_wire_w_bytes(&w, s->kv_names[k], (uint32_t)strlen(s->kv_names[k]));
        }
        genie_wire_w_align8(&w);
    }
    if ((st = genie_wire_w_status(&w)) == GENIE_OK) {
        st = client_send(c, rank, GENIE_MSG_CHECKPOINT, 0, w.buf, w.len, GENIE_UCX_COPY, seq_p);
    }
    genie_wire_w_free(&w);
    return st;
}

genie_status_t genie_client_checkpoint_wait(genie_client_t *c, int32_t rank, uint32_t seq,
                                            uint64_t *bytes_p, double *seconds_p)
{
    genie_ucx_msg_t *m = NULL;
    genie_status_t   st = client_wait(c, seq, rank, c->checkpoint_s, &m);

    if (st != GENIE_OK) {
        return st;
    }
    return bytes_seconds_reply(m, "CHECKPOINT reply", bytes_p, seconds_p);
}

/* RESTORE: | path bytes | file_session u64 | session u64 | n u32 |
 *          n x (id u64 | name bytes | dtype u32 | ndim u32 | shape i64[ndim]) | */
genie_status_t genie_client_restore(genie_client_t *c, int32_t rank, const char *path,
                                    uint64_t file_session, uint64_t session,
                                    const genie_client_kv_desc_t *kv, uint32_t n,
                                    uint64_t *bytes_p, double *seconds_p)
{
    genie_wire_writer_t w;
    genie_ucx_msg_t    *m = NULL;
    genie_status_t      st;

    genie_wire_w_init(&w);
    genie_wire_w_bytes(&w, path, (uint32_t)strlen(path));
    genie_wire_w_align8(&w);
    genie_wire_w_u64(&w, file_session);
    genie_wire_w_u64(&w, session);
    genie_wire_w_u32(&w, n);
    for (uint32_t i = 0; i < n; i++) {
        genie_wire_w_u64(&w, kv[i].id);
        genie_wire_w_bytes(&w, kv[i].name, (uint32_t)strlen(kv[i].name));
        genie_wire_w_u32(&w, (uint32_t)kv[i].dtype);
        genie_wire_w_u32(&w, (uint32_t)kv[i].ndim);
        genie_wire_w_raw(&w, kv[i].shape, 8 * (size_t)kv[i].ndim);
    }
    if ((st = call_w_for(c, rank, GENIE_MSG_RESTORE, &w, c->checkpoint_s, &m)) != GENIE_OK) {
        return st;
    }
    return bytes_seconds_reply(m, "RESTORE reply", bytes_p, seconds_p);
}

genie_status_t genie_client_ping(genie_client_t *c, int32_t rank, const void *data, size_t len)
{
    genie_ucx_msg_t *m = NULL;
    genie_status_t   st = check_rank(c, rank);

    if (st == GENIE_OK) {
        uint32_t seq;
        st = client_send(c, rank, GENIE_MSG_PING, 0, data, len, GENIE_UCX_COPY, &seq);
        if (st == GENIE_OK) {
            st = client_wait(c, seq, rank, 0, &m);
        }
    }
    if (st == GENIE_OK && (m->len != len || (len > 0 && memcmp(m->payload, data, len) != 0))) {
        st = genie_set_error(GENIE_ERR_CORRUPT, "PING reply differs from the request");
    }
    genie_ucx_msg_free(m);
    return st;
}

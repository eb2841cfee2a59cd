/*
 * The executor's request handlers (payload layouts: docs/wire-protocol.md).
 * Each handler parses its payload with the bounds-checked reader first and
 * touches the runtime only when the whole payload was valid; a malformed
 * request gets an error reply and changes nothing.
 *
 * The KV-cache handoff is in executor_handoff.c.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "executor.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- plan cache ------------------------------------------------------------ */

static genie_plan_t *plan_find(genie_server_t *srv, uint64_t hash)
{
    for (int i = 0; hash != 0 && i < GENIE_PLAN_CACHE; i++) {
        if (srv->plans[i].srg != NULL && srv->plans[i].hash == hash) {
            srv->plans[i].last_use = ++srv->plan_clock;
            return &srv->plans[i];
        }
    }
    return NULL;
}

/* Keep `srg` under `hash`, evicting the least recently used plan. */
static void plan_insert(genie_server_t *srv, uint64_t hash, genie_srg_t *srg)
{
    genie_plan_t *victim = &srv->plans[0];
    for (int i = 0; i < GENIE_PLAN_CACHE; i++) {
        if (srv->plans[i].srg == NULL) {
            victim = &srv->plans[i];
            break;
        }
        if (srv->plans[i].last_use < victim->last_use) {
            victim = &srv->plans[i];
        }
    }
    genie_srg_destroy(victim->srg);
    victim->hash     = hash;
    victim->srg      = srg;
    victim->last_use = ++srv->plan_clock;
}

/* ---- handlers ------------------------------------------------------------- */

static genie_status_t reply_writer(genie_server_t *srv, genie_ucx_msg_t *m, genie_wire_writer_t *w)
{
    genie_status_t st = genie_wire_w_status(w);
    if (st == GENIE_OK) {
        st = genie_ucx_reply(srv->ucx, m, GENIE_OK, w->buf, w->len);
    } else {
        st = genie_ucx_reply(srv->ucx, m, st, NULL, 0);
    }
    genie_wire_w_free(w);
    return st;
}

/* WEIGHT: | fp u64 | name bytes | tensor | */
static genie_status_t do_weight(genie_server_t *srv, genie_ucx_msg_t *m)
{
    genie_wire_reader_t r;
    genie_wire_tensor_t wt;
    const char         *name;
    char                namebuf[256];
    uint32_t            nlen;
    uint64_t            fp;
    genie_status_t      st;

    genie_wire_r_init(&r, m->payload, m->len, "WEIGHT");
    fp   = genie_wire_r_u64(&r);
    name = genie_wire_r_bytes(&r, &nlen);
    genie_wire_r_tensor(&r, &wt);
    if ((st = genie_wire_r_done(&r)) != GENIE_OK) {
        return st;
    }
    snprintf(namebuf, sizeof(namebuf), "%.*s", (int)nlen, name);
    return genie_exec_register_weight(srv->exec, fp, wt.dtype, wt.ndim, wt.shape, wt.data, namebuf);
}

/* RUN (aux = plan hash, 0 = do not cache):
 *   | srg bytes (length 0: the cached plan `aux`) | pad to 8 | n_inputs u32 | tensor x n |
 * reply: | compute_s f64 | n_outputs u32 | tensor x n | */
static genie_status_t do_run(genie_server_t *srv, genie_ucx_msg_t *m)
{
    genie_wire_reader_t r;
    genie_wire_tensor_t wt;
    genie_wire_writer_t w;
    genie_tensor_t     *inputs = NULL, *outs = NULL;
    genie_storage_t    *stor = NULL;
    genie_srg_t        *fresh = NULL;
    const genie_srg_t  *srg;
    genie_plan_t       *plan;
    genie_exec_stats_t  before, after;
    const uint8_t      *bytes;
    uint32_t            blen, n_in, n_out = 0;
    uint64_t            hash = m->hdr.aux;
    genie_status_t      st;

    genie_wire_r_init(&r, m->payload, m->len, "RUN");
    bytes = genie_wire_r_bytes(&r, &blen);
    genie_wire_r_align8(&r);
    n_in  = genie_wire_r_count(&r, 16);
    if (r.st == GENIE_OK && n_in > 0) {
        inputs = calloc(n_in, sizeof(*inputs));
        stor   = calloc(n_in, sizeof(*stor));
        if (inputs == NULL || stor == NULL) {
            st = genie_set_error(GENIE_ERR_NOMEM, "executor: out of memory");
            goto out;
        }
    }
    for (uint32_t i = 0; i < n_in && r.st == GENIE_OK; i++) {
        genie_wire_r_tensor(&r, &wt);
        if (r.st == GENIE_OK) {
            genie_wire_tensor_view(&wt, &stor[i], &inputs[i]);
        }
    }
    if ((st = genie_wire_r_done(&r)) != GENIE_OK) {
        goto out;
    }
    if (blen == 0) {
        if ((plan = plan_find(srv, hash)) == NULL) {
            st = genie_set_error(GENIE_ERR_NO_PLAN, "executor: plan %016llx is not cached",
                                 (unsigned long long)hash);
            goto out;
        }
        srv->plan_cache_hits++;
        srg = plan->srg;
    } else {
        if (hash != 0 && genie_wire_hash(bytes, blen) != hash) {
            st = genie_set_error(GENIE_ERR_CORRUPT, "executor: RUN plan hash does not match its bytes");
            goto out;
        }
        if ((st = genie_srg_decode(bytes, blen, &fresh)) != GENIE_OK) {
            goto out;
        }
        srg = fresh;
    }
    genie_exec_get_stats(srv->exec, &before);
    st = genie_exec_run(srv->exec, srg, inputs, n_in, &outs, &n_out);
    genie_exec_get_stats(srv->exec, &after);
    if (st != GENIE_OK) {
        goto out;
    }
    if (fresh != NULL && hash != 0) {
        plan_insert(srv, hash, fresh);
        fresh = NULL;
    }
    genie_wire_w_init(&w);
    genie_wire_w_f64(&w, after.compute_s - before.compute_s);
    genie_wire_w_u32(&w, n_out);
    for (uint32_t i = 0; i < n_out; i++) {
        genie_wire_w_tensor(&w, outs[i].dtype, outs[i].ndim, outs[i].shape,
                            genie_tensor_data(&outs[i]));
    }
    st = reply_writer(srv, m, &w);
    st = st == GENIE_OK ? GENIE_SERVER_REPLIED : st;
out:
    for (uint32_t i = 0; i < n_out; i++) {
        genie_tensor_release(&outs[i]);
    }
    free(outs);
    free(inputs);
    free(stor);
    genie_srg_destroy(fresh);
    return st;
}

/* FREE: | n u32 | ids u64[n] |  (no reply) */
static void do_free(genie_server_t *srv, genie_ucx_msg_t *m)
{
    genie_wire_reader_t r;
    uint32_t            n;

    genie_wire_r_init(&r, m->payload, m->len, "FREE");
    n = genie_wire_r_count(&r, 8);
    if (r.st == GENIE_OK) {
        const uint8_t *ids = r.buf + r.pos;
        r.pos += (size_t)n * 8;
        if (genie_wire_r_done(&r) == GENIE_OK) {
            for (uint32_t i = 0; i < n; i++) {
                uint64_t id;
                memcpy(&id, ids + 8 * i, 8);
                genie_exec_free_objects(srv->exec, &id, 1);
            }
            return;
        }
    }
    srv->bad_requests++;
    genie_ucx_log(srv->ucx, "ignored a malformed FREE from rank %d: %s", (int)m->from,
                  genie_last_error());
}

/* Read | n u32 | ids u64[n] | into a malloc'd array. */
static genie_status_t read_ids(genie_wire_reader_t *r, uint64_t **ids_p, uint32_t *n_p)
{
    uint32_t  n = genie_wire_r_count(r, 8);
    uint64_t *ids;

    if (r->st != GENIE_OK) {
        return r->st;
    }
    if ((ids = malloc((size_t)n * 8 + 8)) == NULL) {
        return genie_set_error(GENIE_ERR_NOMEM, "executor: out of memory");
    }
    for (uint32_t i = 0; i < n; i++) {
        ids[i] = genie_wire_r_u64(r);
    }
    *ids_p = ids;
    *n_p   = n;
    return GENIE_OK;
}

/* FETCH: | id u64 |  -> | tensor | */
static genie_status_t do_fetch(genie_server_t *srv, genie_ucx_msg_t *m)
{
    genie_wire_reader_t r;
    genie_wire_writer_t w;
    genie_tensor_t      t;
    uint64_t            id;
    genie_status_t      st;

    genie_wire_r_init(&r, m->payload, m->len, "FETCH");
    id = genie_wire_r_u64(&r);
    if ((st = genie_wire_r_done(&r)) != GENIE_OK ||
        (st = genie_exec_fetch(srv->exec, id, &t)) != GENIE_OK) {
        return st;
    }
    genie_wire_w_init(&w);
    genie_wire_w_tensor(&w, t.dtype, t.ndim, t.shape, genie_tensor_data(&t));
    genie_tensor_release(&t);
    st = reply_writer(srv, m, &w);
    return st == GENIE_OK ? GENIE_SERVER_REPLIED : st;
}

/* BIND: | session u64 | n u32 | ids u64[n] | */
static genie_status_t do_bind(genie_server_t *srv, genie_ucx_msg_t *m)
{
    genie_wire_reader_t r;
    uint64_t           *ids = NULL, session;
    uint32_t            n = 0;
    genie_status_t      st;

    genie_wire_r_init(&r, m->payload, m->len, "BIND");
    session = genie_wire_r_u64(&r);
    if ((st = read_ids(&r, &ids, &n)) == GENIE_OK && (st = genie_wire_r_done(&r)) == GENIE_OK) {
        st = genie_exec_session_bind(srv->exec, session, ids, n);
    }
    free(ids);
    return st;
}

/* END_SESSION: | session u64 | -> | n u32 |;  SESSION_INFO: | session u64 | -> | n u32 | bytes u64 | */
static genie_status_t do_session(genie_server_t *srv, genie_ucx_msg_t *m, int end)
{
    genie_wire_reader_t r;
    genie_wire_writer_t w;
    uint64_t            session, bytes = 0;
    uint32_t            n = 0;
    genie_status_t      st;

    genie_wire_r_init(&r, m->payload, m->len, end ? "END_SESSION" : "SESSION_INFO");
    session = genie_wire_r_u64(&r);
    if ((st = genie_wire_r_done(&r)) != GENIE_OK) {
        return st;
    }
    genie_wire_w_init(&w);
    if (end) {
        genie_wire_w_u32(&w, genie_exec_session_end(srv->exec, session));
    } else {
        genie_exec_session_info(srv->exec, session, &n, &bytes);
        genie_wire_w_u32(&w, n);
        genie_wire_w_u64(&w, bytes);
    }
    st = reply_writer(srv, m, &w);
    return st == GENIE_OK ? GENIE_SERVER_REPLIED : st;
}

static uint32_t n_handoffs(const genie_server_t *srv)
{
    uint32_t n = 0;
    for (const genie_handoff_t *h = srv->handoffs; h != NULL; h = h->next) {
        n++;
    }
    return n;
}

/* STATS: -> | n u32 | n x (name bytes | value f64) | m u32 | m x (name bytes | text bytes) |
 * The texts say where the executor runs: CUDA_VISIBLE_DEVICES as the rank
 * saw it (srun --genie-phases narrows it to the rank's slice). */
static genie_status_t do_stats(genie_server_t *srv, genie_ucx_msg_t *m)
{
    genie_wire_writer_t w;
    genie_exec_stats_t  s;
    genie_status_t      st;
    struct { const char *name; double v; } kv[64];
    uint32_t            n = 0;
    char                names[GENIE_PHASE_COUNT][40];

    genie_exec_get_stats(srv->exec, &s);
#define KV(k, val) kv[n].name = (k), kv[n].v = (double)(val), n++
    KV("requests", s.requests);
    KV("nodes_run", s.nodes_run);
    KV("weights", s.weights);
    KV("weight_bytes", s.weight_bytes);
    KV("residents", s.residents);
    KV("resident_bytes", s.resident_bytes);
    KV("input_bytes", s.input_bytes);
    KV("output_bytes", s.output_bytes);
    KV("peak_activation_bytes", s.peak_bytes);
    KV("sessions", s.sessions);
    KV("session_bytes", s.session_bytes);
    KV("compute_s", s.compute_s);
    KV("plan_cache_hits", srv->plan_cache_hits);
    KV("kv_bytes_in", srv->kv_bytes_in);
    KV("kv_bytes_out", srv->kv_bytes_out);
    KV("handoffs_in", srv->handoffs_in);
    KV("handoffs_out", srv->handoffs_out);
    KV("handoffs_failed", srv->handoffs_failed);
    KV("handoffs_in_progress", n_handoffs(srv));
    KV("handoff_s", srv->handoff_s);
    KV("bad_requests", srv->bad_requests);
    KV("checkpoints", srv->checkpoints);
    KV("checkpoint_bytes", srv->checkpoint_bytes);
    KV("checkpoint_s", srv->checkpoint_s);
    KV("restores", srv->restores);
    KV("restore_bytes", srv->restore_bytes);
    KV("dropped_messages", genie_ucx_dropped(srv->ucx));
    for (int p = 0; p < GENIE_PHASE_COUNT; p++) {
        snprintf(names[p], sizeof(names[p]), "phase_s.%s", genie_phase_name((genie_phase_t)p));
        KV(names[p], s.phase_s[p]);
    }
#undef KV
    genie_wire_w_init(&w);
    genie_wire_w_u32(&w, n);
    for (uint32_t i = 0; i < n; i++) {
        genie_wire_w_bytes(&w, kv[i].name, (uint32_t)strlen(kv[i].name));
        genie_wire_w_f64(&w, kv[i].v);
    }
    {
        const char *cvd = getenv("CUDA_VISIBLE_DEVICES");

        genie_wire_w_u32(&w, (cvd != NULL ? 1 : 0) + (srv->backend_note[0] != '\0' ? 1 : 0));
        if (cvd != NULL) {
            genie_wire_w_bytes(&w, "cuda_visible_devices", 20);
            genie_wire_w_bytes(&w, cvd, (uint32_t)strnlen(cvd, 4096));
        }
        if (srv->backend_note[0] != '\0') {
            genie_wire_w_bytes(&w, "backend_note", 12);
            genie_wire_w_bytes(&w, srv->backend_note, (uint32_t)strlen(srv->backend_note));
        }
    }
    st = reply_writer(srv, m, &w);
    return st == GENIE_OK ? GENIE_SERVER_REPLIED : st;
}

/* FENCE: | rank u32 | reason bytes |  (no reply; from the driver only).  The
 * driver ended `rank` (it stopped answering): drop its connections so that
 * whatever it sends later is discarded, and fail our handoffs with it. */
static void do_fence(genie_server_t *srv, genie_ucx_msg_t *m)
{
    genie_wire_reader_t r;
    const char         *why;
    uint32_t            rank, wlen;
    char                line[600];

    genie_wire_r_init(&r, m->payload, m->len, "FENCE");
    rank = genie_wire_r_u32(&r);
    why  = genie_wire_r_bytes(&r, &wlen);
    if (genie_wire_r_done(&r) != GENIE_OK || m->from != 0 || rank == 0 ||
        (int32_t)rank == srv->rank || genie_ucx_peer(srv->ucx, (int32_t)rank) == NULL) {
        srv->bad_requests++;
        genie_ucx_log(srv->ucx, "ignored a malformed FENCE from rank %d", (int)m->from);
        return;
    }
    snprintf(line, sizeof(line), "the driver fenced it off: %.*s", (int)(wlen < 400 ? wlen : 400), why);
    genie_ucx_mark_lost(srv->ucx, (int32_t)rank, line);
    genie_server_poll_handoffs(srv);
}

/* ---- the loop --------------------------------------------------------------- */

/* Returns GENIE_SERVER_REPLIED / _KEPT, GENIE_OK for an empty success reply,
 * or an error to report to the requester. */
static genie_status_t dispatch(genie_server_t *srv, genie_ucx_msg_t *m)
{
    switch (m->hdr.type) {
    case GENIE_MSG_WEIGHT:       return do_weight(srv, m);
    case GENIE_MSG_RUN:          return do_run(srv, m);
    case GENIE_MSG_FETCH:        return do_fetch(srv, m);
    case GENIE_MSG_BIND:         return do_bind(srv, m);
    case GENIE_MSG_END_SESSION:  return do_session(srv, m, 1);
    case GENIE_MSG_SESSION_INFO: return do_session(srv, m, 0);
    case GENIE_MSG_HANDOFF:      return genie_server_handoff(srv, m);
    case GENIE_MSG_KV_OFFER:     return genie_server_kv_offer(srv, m);
    case GENIE_MSG_STATS:        return do_stats(srv, m);
    case GENIE_MSG_CHECKPOINT:   return genie_server_checkpoint(srv, m);
    case GENIE_MSG_RESTORE:      return genie_server_restore(srv, m);
    case GENIE_MSG_SHUTDOWN:
        srv->shutdown = 1;
        srv->skip_finalize = m->hdr.aux != 0;
        return GENIE_OK;
    default:
        return genie_set_error(GENIE_ERR_INVALID, "executor: %s is not a request an executor serves",
                               genie_msg_name(m->hdr.type));
    }
}

void genie_server_handle(genie_server_t *srv, genie_ucx_msg_t *m)
{
    genie_status_t st;

    genie_clear_error();
    if (m->hdr.type == GENIE_MSG_FREE) {
        do_free(srv, m);
        genie_ucx_msg_free(m);
        return;
    }
    if (m->hdr.type == GENIE_MSG_FENCE) {
        do_fence(srv, m);
        genie_ucx_msg_free(m);
        return;
    }
    st = dispatch(srv, m);
    if (st == GENIE_SERVER_KEPT) {
        return;                                 /* the handler owns m now */
    }
    if (st < 0) {
        srv->bad_requests += st == GENIE_ERR_CORRUPT || st == GENIE_ERR_TRUNCATED;
        (void)genie_ucx_reply(srv->ucx, m, st, NULL, 0);
    } else if (st == GENIE_OK) {
        (void)genie_ucx_reply(srv->ucx, m, GENIE_OK, NULL, 0);
    }
    genie_ucx_msg_free(m);
}

genie_status_t genie_server_run(genie_server_t *srv)
{
    double last_watch = 0;

    /* An endpoint to the driver that we never send on: UCX's keepalive
     * reports the driver's loss through it even on another host. */
    (void)genie_ucx_watch(srv->ucx, 0);
    genie_clear_error();
    while (!srv->shutdown) {
        genie_ucx_msg_t *m = NULL;
        genie_status_t   st = genie_ucx_next(srv->ucx, srv->handoffs != NULL ? 10 : 500, &m);
        double           now;

        if (st == GENIE_OK) {
            genie_server_handle(srv, m);
        } else if (st != GENIE_ERR_TIMEOUT) {
            return st;
        }
        if (srv->handoffs != NULL) {
            genie_server_poll_handoffs(srv);
        }
        /* Executors never outlive their driver, whoever started them. */
        now = now_s();
        if (now - last_watch > 0.5) {
            last_watch = now;
            if (genie_ucx_peer_status(srv->ucx, 0) != GENIE_OK) {
                genie_ucx_log(srv->ucx, "%s: exiting", genie_last_error());
                srv->driver_gone = 1;
                return GENIE_OK;
            }
        }
    }
    return GENIE_OK;
}

void genie_server_fini(genie_server_t *srv)
{
    genie_server_end_handoffs(srv, "the executor is shutting down");
    for (int i = 0; i < GENIE_PLAN_CACHE; i++) {
        genie_srg_destroy(srv->plans[i].srg);
        srv->plans[i].srg = NULL;
    }
}

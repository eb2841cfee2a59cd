/*
 * The executor's side of checkpoints (docs/checkpoint-format.md,
 * docs/wire-protocol.md): CHECKPOINT writes this rank's file of an epoch
 * from the session objects it holds, RESTORE makes a session's KV tensors
 * objects again from a rank file (any rank's: recovery reads the file of a
 * rank that is gone).  The driver decides when and what; the executor only
 * checks that what it is asked to write belongs to the session named, and
 * that what it reads matches what the driver expects, with every checksum.
 *
 * Legend: B = batch rows, L = tokens so far, R = lineage records.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "executor.h"

#define MAX_PATH     4096
#define MAX_SESSIONS 65536
#define MAX_KV       4096
#define MAX_RNG      (1u << 20)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A length-prefixed string of the payload as a C string in out (cap). */
static void read_text(genie_wire_reader_t *r, const char *what, char *out, size_t cap)
{
    uint32_t    n;
    const char *p = genie_wire_r_bytes(r, &n);

    if (r->st != GENIE_OK) {
        return;
    }
    if (n >= cap || memchr(p, '\0', n) != NULL) {
        r->st = genie_set_error(GENIE_ERR_CORRUPT, "executor: %s: %s is not a string of < %zu bytes",
                                r->what, what, cap);
        return;
    }
    memcpy(out, p, n);
    out[n] = '\0';
}

static genie_status_t reply_bytes_seconds(genie_server_t *srv, genie_ucx_msg_t *m, uint64_t bytes,
                                          double seconds)
{
    genie_wire_writer_t w;
    genie_status_t      st;

    genie_wire_w_init(&w);
    genie_wire_w_u64(&w, bytes);
    genie_wire_w_f64(&w, seconds);
    st = genie_wire_w_status(&w);
    st = genie_ucx_reply(srv->ucx, m, st, st == GENIE_OK ? w.buf : NULL, st == GENIE_OK ? w.len : 0);
    genie_wire_w_free(&w);
    return st == GENIE_OK ? 1 : st;
}

#ifdef GENIE_HAVE_CHECKPOINT
#include "genie/ckpt.h"

/* One session of a CHECKPOINT request, parsed; its KV data staged. */
typedef struct ckpt_parsed {
    genie_ckpt_session_t s;
    genie_tensor_t      *staged;     /* (n_kv) host copies where needed */
} ckpt_parsed_t;

static void free_parsed(ckpt_parsed_t *ps, uint32_t n)
{
    for (uint32_t i = 0; ps != NULL && i < n; i++) {
        for (uint32_t k = 0; ps[i].staged != NULL && k < ps[i].s.n_kv; k++) {
            genie_tensor_release(&ps[i].staged[k]);
        }
        free(ps[i].staged);
        free(ps[i].s.kv);
    }
    free(ps);
}

/* Parse one session and find its objects (borrowed from the executor, or
 * staged on the host when the backend's memory is not host memory). */
static genie_status_t parse_session(genie_server_t *srv, genie_wire_reader_t *r, ckpt_parsed_t *p)
{
    genie_ckpt_session_t *s = &p->s;
    genie_wire_tensor_t   tok, lin;
    const uint8_t        *rng;
    uint32_t              rng_len;

    s->id         = genie_wire_r_u64(r);
    s->key        = genie_wire_r_u64(r);
    s->model_fp   = genie_wire_r_u64(r);
    s->step       = genie_wire_r_u64(r);
    s->prompt_len = genie_wire_r_u64(r);
    genie_wire_r_tensor(r, &tok);
    rng = genie_wire_r_bytes(r, &rng_len);
    genie_wire_r_align8(r);
    genie_wire_r_tensor(r, &lin);
    s->n_kv = genie_wire_r_count(r, 12);
    if (r->st != GENIE_OK) {
        return r->st;
    }
    if (tok.dtype != GENIE_I64 || tok.ndim != 2 || tok.shape[0] < 1 || tok.shape[0] > 65536 ||
        tok.shape[1] < 1 || s->prompt_len < 1 || s->prompt_len > (uint64_t)tok.shape[1]) {
        return genie_set_error(GENIE_ERR_CORRUPT, "executor: CHECKPOINT session %llu: tokens must be "
                               "int64 (batch, length) holding the prompt", (unsigned long long)s->id);
    }
    if (lin.dtype != GENIE_I64 || lin.ndim != 2 || lin.shape[1] != GENIE_CKPT_LINEAGE_COLS ||
        lin.shape[0] > (1 << 24)) {
        return genie_set_error(GENIE_ERR_CORRUPT, "executor: CHECKPOINT session %llu: lineage must be "
                               "int64 (records, %d)", (unsigned long long)s->id, GENIE_CKPT_LINEAGE_COLS);
    }
    if (rng_len > MAX_RNG || s->n_kv > MAX_KV || s->id == 0) {
        return genie_set_error(GENIE_ERR_CORRUPT, "executor: CHECKPOINT session %llu: %u KV tensors, "
                               "%u bytes of sampler state", (unsigned long long)s->id, s->n_kv, rng_len);
    }
    s->batch     = (uint32_t)tok.shape[0];
    s->n_tokens  = (uint64_t)tok.shape[1];
    s->tokens    = (int64_t *)tok.data;      /* 8-byte aligned in the payload */
    s->rng       = (uint8_t *)rng;
    s->rng_len   = rng_len;
    s->n_lineage = (uint32_t)lin.shape[0];
    s->lineage   = (int64_t *)lin.data;
    s->kv        = calloc(s->n_kv + 1, sizeof(*s->kv));
    p->staged    = calloc(s->n_kv + 1, sizeof(*p->staged));
    if (s->kv == NULL || p->staged == NULL) {
        return genie_set_error(GENIE_ERR_NOMEM, "executor: out of memory");
    }
    for (uint32_t k = 0; k < s->n_kv; k++) {
        genie_ckpt_kv_t      *kv = &s->kv[k];
        const genie_tensor_t *t;
        uint64_t              id = genie_wire_r_u64(r), owner = 0;
        genie_status_t        st;

        read_text(r, "a KV name", kv->name, sizeof(kv->name));
        if (r->st != GENIE_OK) {
            return r->st;
        }
        if ((st = genie_exec_object(srv->exec, id, &t, &owner)) != GENIE_OK) {
            return st;
        }
        if (owner != s->id) {
            return genie_set_error(GENIE_ERR_INVALID, "executor: CHECKPOINT: object %llu belongs to "
                                   "session %llu, not %llu", (unsigned long long)id,
                                   (unsigned long long)owner, (unsigned long long)s->id);
        }
        if (!genie_exec_host_memory(srv->exec) || !genie_tensor_is_contiguous(t)) {
            if ((st = genie_exec_fetch(srv->exec, id, &p->staged[k])) != GENIE_OK) {
                return st;
            }
            t = &p->staged[k];
        }
        kv->dtype = t->dtype;
        kv->ndim  = t->ndim;
        memcpy(kv->shape, t->shape, sizeof(kv->shape));
        kv->data  = genie_tensor_data(t);
    }
    genie_wire_r_align8(r);
    return r->st;
}

/* CHECKPOINT: | epoch u64 | path bytes | job bytes | n u32 | n x session |
 *   session: | id u64 | key u64 | model_fp u64 | step u64 | prompt_len u64 |
 *            | tokens tensor (i64, (B, L)) | rng bytes | pad to 8 |
 *            | lineage tensor (i64, (R, 6)) | n_kv u32 | n_kv x (id u64 | name bytes) | pad to 8 |
 * -> | bytes u64 | seconds f64 |  The file is written only if every session
 * parsed and every object belongs to its session. */
genie_status_t genie_server_checkpoint(genie_server_t *srv, genie_ucx_msg_t *m)
{
    genie_wire_reader_t    r;
    genie_ckpt_rank_info_t info = {0};
    genie_ckpt_session_t  *flat = NULL;
    ckpt_parsed_t         *ps = NULL;
    const genie_ucx_peer_info_t *self = genie_ucx_peer(srv->ucx, srv->rank);
    char                   path[MAX_PATH];
    uint64_t               bytes = 0;
    uint32_t               n = 0, parsed = 0;
    double                 t0 = now_s();
    genie_status_t         st;

    genie_wire_r_init(&r, m->payload, m->len, "CHECKPOINT");
    info.epoch = genie_wire_r_u64(&r);
    read_text(&r, "the path", path, sizeof(path));
    read_text(&r, "the job", info.job, sizeof(info.job));
    n = genie_wire_r_count(&r, 64);
    if (r.st != GENIE_OK) {
        return r.st;
    }
    if (n > MAX_SESSIONS || path[0] != '/') {
        return genie_set_error(GENIE_ERR_INVALID, "executor: CHECKPOINT of %u sessions to '%s' "
                               "(an absolute path is required)", n, path);
    }
    if ((ps = calloc(n + 1, sizeof(*ps))) == NULL || (flat = calloc(n + 1, sizeof(*flat))) == NULL) {
        free(ps);
        return genie_set_error(GENIE_ERR_NOMEM, "executor: out of memory");
    }
    for (st = GENIE_OK; parsed < n && st == GENIE_OK; parsed++) {
        st = parse_session(srv, &r, &ps[parsed]);
        flat[parsed] = ps[parsed].s;
    }
    if (st == GENIE_OK) {
        st = genie_wire_r_done(&r);
    }
    if (st == GENIE_OK) {
        info.rank  = srv->rank;
        info.slice = self != NULL ? self->slice : 0;
        snprintf(info.phase, sizeof(info.phase), "%s", self != NULL ? self->phase : "");
        st = genie_ckpt_write_rank(path, &info, flat, n, &bytes);
    }
    free_parsed(ps, parsed);
    free(flat);
    if (st != GENIE_OK) {
        return st;
    }
    srv->checkpoints++;
    srv->checkpoint_bytes += bytes;
    srv->checkpoint_s += now_s() - t0;
    return reply_bytes_seconds(srv, m, bytes, now_s() - t0);
}

/* RESTORE: | path bytes | pad to 8 | file_session u64 | session u64 | n u32 |
 *          n x (id u64 | name bytes | dtype u32 | ndim u32 | shape i64[ndim]) |
 * -> | bytes u64 | seconds f64 |  All tensors are read (checksums verified)
 * before any becomes an object. */
genie_status_t genie_server_restore(genie_server_t *srv, genie_ucx_msg_t *m)
{
    genie_wire_reader_t r;
    genie_ckpt_file_t  *f = NULL;
    genie_tensor_t     *ts = NULL;
    uint64_t           *ids = NULL, file_session, session, bytes = 0;
    char                path[MAX_PATH], name[GENIE_CKPT_NAME_MAX];
    uint32_t            n, done = 0, put = 0;
    double              t0 = now_s();
    genie_status_t      st;

    genie_wire_r_init(&r, m->payload, m->len, "RESTORE");
    read_text(&r, "the path", path, sizeof(path));
    genie_wire_r_align8(&r);
    file_session = genie_wire_r_u64(&r);
    session      = genie_wire_r_u64(&r);
    n            = genie_wire_r_count(&r, 20);
    if (r.st != GENIE_OK) {
        return r.st;
    }
    if (n > MAX_KV || session == 0) {
        return genie_set_error(GENIE_ERR_INVALID, "executor: RESTORE of %u tensors into session %llu",
                               n, (unsigned long long)session);
    }
    ts  = calloc(n + 1, sizeof(*ts));
    ids = calloc(n + 1, sizeof(*ids));
    if (ts == NULL || ids == NULL) {
        st = genie_set_error(GENIE_ERR_NOMEM, "executor: out of memory");
        goto out;
    }
    if ((st = genie_ckpt_file_open(path, &f)) != GENIE_OK) {
        goto out;
    }
    for (st = GENIE_OK; done < n && st == GENIE_OK; done++) {
        int64_t  shape[GENIE_MAX_DIMS];
        uint32_t dt, nd;

        ids[done] = genie_wire_r_u64(&r);
        read_text(&r, "a KV name", name, sizeof(name));
        dt = genie_wire_r_u32(&r);
        nd = genie_wire_r_u32(&r);
        if (r.st != GENIE_OK) {
            st = r.st;
            break;
        }
        if (dt >= GENIE_DTYPE_COUNT || nd < 1 || nd > GENIE_MAX_DIMS) {
            st = genie_set_error(GENIE_ERR_CORRUPT, "executor: RESTORE %s: dtype %u, %u dims", name, dt, nd);
            break;
        }
        for (uint32_t d = 0; d < nd; d++) {
            shape[d] = (int64_t)genie_wire_r_u64(&r);
            if (shape[d] < 1 || shape[d] > (1LL << 40)) {
                r.st = genie_set_error(GENIE_ERR_CORRUPT, "executor: RESTORE %s: bad shape", name);
            }
        }
        if (r.st != GENIE_OK) {
            st = r.st;
            break;
        }
        if ((st = genie_tensor_alloc((genie_dtype_t)dt, (int)nd, shape, &ts[done])) != GENIE_OK) {
            break;
        }
        st = genie_ckpt_file_read_kv(f, file_session, name, (genie_dtype_t)dt, (int)nd, shape,
                                     genie_tensor_data(&ts[done]), genie_tensor_nbytes(&ts[done]));
        bytes += genie_tensor_nbytes(&ts[done]);
    }
    if (st == GENIE_OK) {
        st = genie_wire_r_done(&r);
    }
    for (; st == GENIE_OK && put < n; put++) {
        st = genie_exec_put_object(srv->exec, ids[put], session, &ts[put]);
    }
    if (st != GENIE_OK && put > 0) {          /* all or nothing */
        genie_exec_free_objects(srv->exec, ids, put);
    }
out:
    for (uint32_t i = 0; ts != NULL && i < n; i++) {
        genie_tensor_release(&ts[i]);
    }
    genie_ckpt_file_close(f);
    free(ts);
    free(ids);
    if (st != GENIE_OK) {
        return st;
    }
    srv->restores++;
    srv->restore_bytes += bytes;
    return reply_bytes_seconds(srv, m, bytes, now_s() - t0);
}

#else /* !GENIE_HAVE_CHECKPOINT */

static genie_status_t no_hdf5(void)
{
    return genie_set_error(GENIE_ERR_UNSUPPORTED, "executor: this genie-executor was built without "
                           "HDF5, so it cannot write or read checkpoints (apt-get install "
                           "libhdf5-dev and rebuild)");
}

genie_status_t genie_server_checkpoint(genie_server_t *srv, genie_ucx_msg_t *m)
{
    (void)srv, (void)m, (void)reply_bytes_seconds, (void)read_text, (void)now_s;
    return no_hdf5();
}

genie_status_t genie_server_restore(genie_server_t *srv, genie_ucx_msg_t *m)
{
    (void)srv, (void)m;
    return no_hdf5();
}

#endif

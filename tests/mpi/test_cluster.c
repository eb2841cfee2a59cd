/*
 * MPI test driver: rank 0 of a real job whose other ranks are real
 * genie-executor processes (driver + prefill:2,decode:1, started through
 * FindMPI's MPIEXEC_* variables, see CMakeLists.txt).  Everything goes over
 * real UCX endpoints.
 *
 *   test_cluster basic   requests, results against a local reference, the
 *                        plan cache, the KV handoff (RMA between executors),
 *                        a connection with a wrong secret, garbage on the wire
 *   test_cluster stall   a HANDOFF to a stopped (SIGSTOP) executor: the
 *                        source serves meanwhile and fails the handoff
 *                        after its limit; nothing is left half-moved
 *   test_cluster kill    SIGKILL an executor and expect a clear error within
 *                        5 s, then a clean shutdown of the others; the pids
 *                        go to argv[2] for the orphan check that follows
 *
 * Prints "mpi-test: all checks passed" at the end; under mpirun
 * --enable-recovery the exit code of rank 0 is not propagated, so CTest
 * matches that line.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "genie/client.h"
#include "genie/srg.h"
#include "genie/ucx.h"
#include "genie/wire.h"

static int failures;

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "mpi-test: FAIL %s:%d: ", __FILE__, __LINE__);        \
            fprintf(stderr, __VA_ARGS__);                                         \
            fprintf(stderr, " [%s]\n", genie_last_error());                       \
            failures++;                                                           \
        }                                                                         \
    } while (0)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* out = a (M,K) @ b (K,N) with a an INPUT and b a RESIDENT object or an
 * INPUT; keep_id != 0 keeps the result resident. */
static genie_status_t mm_graph(int64_t m, int64_t k, int64_t n, uint64_t b_object, uint64_t keep_id,
                               int is_output, uint8_t **bytes_p, size_t *len_p)
{
    genie_srg_t   *g;
    uint32_t       a, b, out;
    int64_t        sa[2] = { m, k }, sb[2] = { k, n }, so[2] = { m, n };
    const int64_t *shapes[1] = { so };
    genie_dtype_t  dt = GENIE_F32;
    int            nd = 2;
    genie_status_t st;

    if ((st = genie_srg_create(&g)) != GENIE_OK) {
        return st;
    }
    st = genie_srg_add_source(g, GENIE_VAL_INPUT, GENIE_F32, 2, sa, GENIE_RES_EPHEMERAL_ACTIVATION, 0, NULL, &a);
    if (st == GENIE_OK) {
        st = b_object != 0
                 ? genie_srg_add_source(g, GENIE_VAL_RESIDENT, GENIE_F32, 2, sb,
                                        GENIE_RES_STATEFUL_KV_CACHE, b_object, NULL, &b)
                 : genie_srg_add_source(g, GENIE_VAL_INPUT, GENIE_F32, 2, sb,
                                        GENIE_RES_EPHEMERAL_ACTIVATION, 1, NULL, &b);
    }
    if (st == GENIE_OK) {
        uint32_t in[2] = { a, b };
        st = genie_srg_add_node(g, GENIE_OP_MM, in, 2, NULL, 0, 1, &dt, &nd, shapes,
                                GENIE_PHASE_LLM_PREFILL, GENIE_MOD_TEXT,
                                GENIE_RES_EPHEMERAL_ACTIVATION, "test.mm", &out);
    }
    if (st == GENIE_OK) {
        st = genie_srg_mark_output(g, out, is_output, keep_id);
    }
    if (st == GENIE_OK) {
        st = genie_srg_encode(g, bytes_p, len_p);
    }
    genie_srg_destroy(g);
    return st;
}

static void fill(genie_tensor_t *t, float seed)
{
    float *p = genie_tensor_data(t);
    for (int64_t i = 0; i < genie_tensor_numel(t); i++) {
        p[i] = sinf(seed + 0.37f * (float)i);
    }
}

static double max_rel_err_mm(const genie_tensor_t *a, const genie_tensor_t *b, const genie_tensor_t *out)
{
    int64_t M = a->shape[0], K = a->shape[1], N = b->shape[1];
    const float *pa = genie_tensor_data(a), *pb = genie_tensor_data(b), *po = genie_tensor_data(out);
    double worst = 0, scale = 0;
    /* normalised error: max |diff| over max |ref| (ggml test-backend-ops style) */
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            double ref = 0;
            for (int64_t q = 0; q < K; q++) {
                ref += (double)pa[i * K + q] * pb[q * N + j];
            }
            double err = fabs(ref - po[i * N + j]);
            worst = err > worst ? err : worst;
            scale = fabs(ref) > scale ? fabs(ref) : scale;
        }
    }
    return worst / (scale + 1e-30);
}

static genie_status_t run_sync(genie_client_t *c, int32_t rank, const uint8_t *srg, size_t len,
                               const genie_tensor_t *in, uint32_t n_in, genie_tensor_t **outs,
                               uint32_t *n_out)
{
    uint32_t       ticket;
    genie_status_t st = genie_client_submit(c, rank, srg, len, in, n_in, &ticket);
    return st != GENIE_OK ? st : genie_client_wait(c, ticket, outs, n_out, NULL);
}

static void count_stat(const char *name, double value, void *arg)
{
    struct { const char *want; double v; } *q = arg;
    if (strcmp(name, q->want) == 0) {
        q->v = value;
    }
}

static double stat_of(genie_client_t *c, int32_t rank, const char *name)
{
    struct { const char *want; double v; } q = { name, -1 };
    CHECK(genie_client_stats(c, rank, count_stat, NULL, &q) == GENIE_OK, "stats of rank %d", (int)rank);
    return q.v;
}

static void test_basic(genie_client_t *c)
{
    genie_ucx_t    *u = genie_client_ucx(c);
    genie_tensor_t  in[2], *outs = NULL, fetched;
    uint32_t        n_out = 0, nobj = 0;
    uint8_t        *srg = NULL;
    size_t          len = 0;
    int64_t         sa[2] = { 8, 16 }, sb[2] = { 16, 4096 };
    uint64_t        bytes = 0, kv_id = 1001;
    double          secs = 0;
    genie_status_t  st;

    /* 1. the layout: prefill:2,decode:1 */
    CHECK(genie_ucx_size(u) == 4, "world size %d", (int)genie_ucx_size(u));
    CHECK(strcmp(genie_ucx_peer(u, 1)->phase, "prefill") == 0 && genie_ucx_peer(u, 1)->slice == 0, "rank 1");
    CHECK(strcmp(genie_ucx_peer(u, 2)->phase, "prefill") == 0 && genie_ucx_peer(u, 2)->slice == 1, "rank 2");
    CHECK(strcmp(genie_ucx_peer(u, 3)->phase, "decode") == 0 && genie_ucx_peer(u, 3)->slice == 0, "rank 3");
    for (int32_t r = 1; r < 4; r++) {
        CHECK(genie_client_ping(c, r, "hello", 5) == GENIE_OK, "ping rank %d", (int)r);
    }

    /* 2. a request on each prefill rank, against a local reference */
    genie_tensor_alloc(GENIE_F32, 2, sa, &in[0]);
    genie_tensor_alloc(GENIE_F32, 2, sb, &in[1]);
    fill(&in[0], 0.1f);
    fill(&in[1], 0.7f);
    CHECK(mm_graph(8, 16, 4096, 0, 0, 1, &srg, &len) == GENIE_OK, "build graph");
    for (int32_t r = 1; r <= 2; r++) {
        for (int rep = 0; rep < 2; rep++) {       /* the second run hits the plan cache */
            st = run_sync(c, r, srg, len, in, 2, &outs, &n_out);
            CHECK(st == GENIE_OK && n_out == 1, "run on rank %d", (int)r);
            if (st == GENIE_OK && n_out == 1) {
                double err = max_rel_err_mm(&in[0], &in[1], &outs[0]);
                CHECK(err < 1e-5, "rank %d result error %g", (int)r, err);
                genie_tensor_release(&outs[0]);
            }
            free(outs);
            outs = NULL;
        }
        CHECK(stat_of(c, r, "plan_cache_hits") >= 1, "rank %d plan cache", (int)r);
    }
    free(srg);

    /* 3. KV handoff: rank 1 keeps a 8x4096 f32 result (128 KiB) as object
     * kv_id of session 7, hands it to rank 3 by RMA, rank 3 serves it. */
    CHECK(mm_graph(8, 16, 4096, 0, kv_id, 0, &srg, &len) == GENIE_OK, "build keep graph");
    st = run_sync(c, 1, srg, len, in, 2, &outs, &n_out);
    CHECK(st == GENIE_OK && n_out == 0, "keep run");
    free(outs);
    outs = NULL;
    free(srg);
    CHECK(genie_client_bind(c, 1, 7, &kv_id, 1) == GENIE_OK, "bind on rank 1");
    st = genie_client_handoff(c, 1, 3, 7, &kv_id, 1, &bytes, &secs);
    CHECK(st == GENIE_OK && bytes == 8 * 4096 * 4, "handoff moved %llu bytes", (unsigned long long)bytes);
    CHECK(genie_client_fetch(c, 1, kv_id, &fetched) == GENIE_ERR_NOT_FOUND, "object left rank 1");
    st = genie_client_fetch(c, 3, kv_id, &fetched);
    CHECK(st == GENIE_OK, "fetch from rank 3");
    genie_clear_error();
    if (st == GENIE_OK) {
        CHECK(max_rel_err_mm(&in[0], &in[1], &fetched) < 1e-5, "handed-off data");
        genie_tensor_release(&fetched);
    }
    CHECK(genie_client_session_info(c, 3, 7, &nobj, &bytes) == GENIE_OK && nobj == 1 &&
          bytes == 8 * 4096 * 4, "session 7 on rank 3: %u objects, %llu bytes", nobj,
          (unsigned long long)bytes);
    CHECK(stat_of(c, 3, "kv_bytes_in") == 8 * 4096 * 4, "rank 3 kv_bytes_in");
    CHECK(stat_of(c, 1, "kv_bytes_out") == 8 * 4096 * 4, "rank 1 kv_bytes_out");
    /* a decode-step-like request reads the object on rank 3: (8,8)@(8,4096)... use
     * the kept (8,4096) as b of a (2,8) @ (8,4096) product */
    {
        int64_t sx[2] = { 2, 8 };
        genie_tensor_t x;
        genie_tensor_alloc(GENIE_F32, 2, sx, &x);
        fill(&x, 0.3f);
        CHECK(mm_graph(2, 8, 4096, kv_id, 0, 1, &srg, &len) == GENIE_OK, "build resident graph");
        st = run_sync(c, 3, srg, len, &x, 1, &outs, &n_out);
        CHECK(st == GENIE_OK && n_out == 1, "run on the decode rank with the handed-off object");
        if (st == GENIE_OK && n_out == 1) {
            genie_tensor_release(&outs[0]);
        }
        free(outs);
        outs = NULL;
        free(srg);
        genie_tensor_release(&x);
    }
    CHECK(genie_client_end_session(c, 3, 7, &nobj) == GENIE_OK && nobj == 1, "end session");

    /* 4. an error leaves the executor serving */
    CHECK(genie_client_fetch(c, 2, 424242, &fetched) == GENIE_ERR_NOT_FOUND, "unknown object");
    CHECK(genie_client_ping(c, 2, "x", 1) == GENIE_OK, "rank 2 after an error");

    /* 5. a connection with the wrong secret is refused; the others go on */
    {
        void *rogue = NULL;
        char  wrong[GENIE_WIRE_SECRET_LEN + 1];
        memset(wrong, 'f', GENIE_WIRE_SECRET_LEN);
        wrong[GENIE_WIRE_SECRET_LEN] = '\0';
        st = genie_ucx_connect_extra(u, 1, wrong, &rogue);
        CHECK(st == GENIE_ERR_DENIED, "wrong secret gave %d", st);
        CHECK(genie_client_ping(c, 1, "ok", 2) == GENIE_OK, "rank 1 after a refused connection");
    }

    /* 6. garbage on the wire: on a fresh connection, then after a valid
     * HELLO (bad magic, lying length, unknown type, random bytes) */
    {
        void            *conn = NULL;
        genie_wire_hdr_t h;
        uint8_t          junk[256];
        for (size_t i = 0; i < sizeof(junk); i++) {
            junk[i] = (uint8_t)(i * 131 + 7);
        }
        CHECK(genie_ucx_connect_extra(u, 2, NULL, &conn) == GENIE_OK, "extra connection");
        CHECK(genie_ucx_send_raw(u, conn, junk, 32, junk + 32, 100) == GENIE_OK, "send junk");
        CHECK(genie_ucx_connect_extra(u, 2, NULL, &conn) == GENIE_OK, "extra connection 2");
        genie_wire_hdr_init(&h, GENIE_MSG_RUN, 1, 0, 5, 0);
        CHECK(genie_ucx_send_raw(u, conn, &h, sizeof(h), junk, 100) == GENIE_OK, "lying length before HELLO");
        {
            char secret[GENIE_WIRE_SECRET_LEN + 1];
            genie_ucx_params_t p = {0};
            genie_ucx_read_secret(&p);
            memcpy(secret, p.secret, sizeof(secret));
            CHECK(genie_ucx_connect_extra(u, 3, secret, &conn) == GENIE_OK, "authenticated extra");
        }
        genie_wire_hdr_init(&h, 77, 1, 0, 100, 0);
        CHECK(genie_ucx_send_raw(u, conn, &h, sizeof(h), junk, 100) == GENIE_OK, "unknown type");
        CHECK(genie_ucx_send_raw(u, conn, junk, 7, junk, 3) == GENIE_OK, "short header");
        for (int32_t r = 1; r < 4; r++) {
            CHECK(genie_client_ping(c, r, "still", 5) == GENIE_OK, "rank %d after garbage", (int)r);
        }
        /* a malformed RUN payload on the real connection: an error reply */
        {
            uint32_t         seq;
            genie_ucx_msg_t *m = NULL;
            CHECK(genie_ucx_send(u, 2, GENIE_MSG_RUN, 0, junk, 64, GENIE_UCX_COPY, &seq) == GENIE_OK, "bad RUN");
            st = genie_ucx_wait_from(u, seq, 2, &m);
            CHECK(st == GENIE_ERR_TRUNCATED || st == GENIE_ERR_CORRUPT, "bad RUN answered %d", st);
            genie_ucx_msg_free(m);
        }
        CHECK(genie_client_ping(c, 2, "alive", 5) == GENIE_OK, "rank 2 after a bad RUN");
        CHECK(stat_of(c, 2, "dropped_messages") >= 2, "rank 2 counted the dropped messages");
    }
    genie_tensor_release(&in[0]);
    genie_tensor_release(&in[1]);
}

static void test_kill(genie_client_t *c, const char *pid_file)
{
    genie_ucx_t   *u = genie_client_ucx(c);
    FILE          *f = fopen(pid_file, "w");
    pid_t          victim = (pid_t)genie_ucx_peer(u, 2)->pid;
    genie_status_t st;
    double         t0, dt;

    CHECK(f != NULL, "open %s", pid_file);
    for (int32_t r = 1; f != NULL && r < genie_ucx_size(u); r++) {
        fprintf(f, "%u\n", genie_ucx_peer(u, r)->pid);
    }
    if (f != NULL) {
        fclose(f);
    }
    CHECK(genie_client_ping(c, 2, "before", 6) == GENIE_OK, "ping before the kill");
    t0 = now_s();
    kill(victim, SIGKILL);
    /* A request to the dead rank fails with a clear error, not a hang. */
    do {
        st = genie_client_ping(c, 2, "after", 5);
    } while (st == GENIE_OK && now_s() - t0 < 10);
    dt = now_s() - t0;
    CHECK(st == GENIE_ERR_PEER_LOST, "request to a killed executor gave %d", st);
    CHECK(dt < 5.0, "the loss took %.2f s to detect", dt);
    fprintf(stderr, "mpi-test: kill detected in %.3f s: %s\n", dt, genie_last_error());
    CHECK(strstr(genie_last_error(), "rank 2") != NULL, "the error names the rank: %s", genie_last_error());
    /* The others keep serving. */
    CHECK(genie_client_ping(c, 1, "alive", 5) == GENIE_OK, "rank 1 after the kill");
    CHECK(genie_client_ping(c, 3, "alive", 5) == GENIE_OK, "rank 3 after the kill");
}

/* A HANDOFF whose destination is stopped (SIGSTOP): the source keeps
 * serving while it waits (a PING and a RUN answered at once), answers the
 * driver with an error once GENIE_HANDOFF_TIMEOUT_S (3 s here) is up, ends
 * the exposure and keeps the objects; the stopped rank, let go again, holds
 * nothing of the failed handoff (its ranges were never committed). */
static void test_stall(genie_client_t *c, const char *pid_file)
{
    genie_ucx_t       *u = genie_client_ucx(c);
    pid_t              dst = (pid_t)genie_ucx_peer(u, 3)->pid;
    genie_tensor_t     in[2], *outs = NULL, fetched;
    genie_wire_writer_t w;
    genie_ucx_msg_t   *reply = NULL;
    uint8_t           *srg = NULL;
    size_t             len = 0;
    int64_t            sa[2] = { 8, 16 }, sb[2] = { 16, 4096 };
    uint64_t           kv_id = 2001, session = 9, bytes = 0;
    uint32_t           n_out = 0, seq = 0, nobj = 0;
    genie_status_t     st;
    double             t0, dt;
    FILE              *f = fopen(pid_file, "w");

    for (int32_t r = 1; f != NULL && r < genie_ucx_size(u); r++) {
        fprintf(f, "%u\n", genie_ucx_peer(u, r)->pid);
    }
    if (f != NULL) {
        fclose(f);
    }
    genie_tensor_alloc(GENIE_F32, 2, sa, &in[0]);
    genie_tensor_alloc(GENIE_F32, 2, sb, &in[1]);
    fill(&in[0], 0.1f);
    fill(&in[1], 0.7f);
    CHECK(mm_graph(8, 16, 4096, 0, kv_id, 0, &srg, &len) == GENIE_OK, "build keep graph");
    CHECK(run_sync(c, 1, srg, len, in, 2, &outs, &n_out) == GENIE_OK, "keep run");
    free(outs);
    outs = NULL;
    free(srg);
    CHECK(genie_client_bind(c, 1, session, &kv_id, 1) == GENIE_OK, "bind on rank 1");
    CHECK(genie_client_ping(c, 3, "before", 6) == GENIE_OK, "ping rank 3 before");
    kill(dst, SIGSTOP);
    genie_wire_w_init(&w);
    genie_wire_w_u64(&w, session);
    genie_wire_w_u32(&w, 3);
    genie_wire_w_u32(&w, 1);
    genie_wire_w_u64(&w, kv_id);
    t0 = now_s();
    st = genie_ucx_send(u, 1, GENIE_MSG_HANDOFF, 0, w.buf, w.len, GENIE_UCX_COPY, &seq);
    genie_wire_w_free(&w);
    CHECK(st == GENIE_OK, "send HANDOFF");
    /* The source is not blocked by its handoff. */
    CHECK(genie_client_ping(c, 1, "busy?", 5) == GENIE_OK, "rank 1 answers a PING during its handoff");
    CHECK(mm_graph(8, 16, 4096, 0, 0, 1, &srg, &len) == GENIE_OK, "build graph");
    st = run_sync(c, 1, srg, len, in, 2, &outs, &n_out);
    CHECK(st == GENIE_OK && n_out == 1, "rank 1 runs a request during its handoff");
    dt = now_s() - t0;
    CHECK(dt < 2.5, "rank 1 served both within %.2f s of the handoff's start", dt);
    if (st == GENIE_OK && n_out == 1) {
        genie_tensor_release(&outs[0]);
    }
    free(outs);
    free(srg);
    /* The handoff ends with an error after its limit, not a hang. */
    st = genie_ucx_wait_for(u, seq, 1, 30.0, "HANDOFF", &reply);
    dt = now_s() - t0;
    genie_ucx_msg_free(reply);
    CHECK(st < 0, "the handoff to a stopped rank gave %d", st);
    CHECK(dt >= 2.5 && dt < 10.0, "the handoff failed after %.2f s (limit 3 s)", dt);
    fprintf(stderr, "mpi-test: handoff to a stopped rank failed in %.3f s: %s\n", dt, genie_last_error());
    CHECK(strstr(genie_last_error(), "rank 3") != NULL, "the error names the destination: %s",
          genie_last_error());
    /* The source still has the objects; the destination (let go) has none. */
    CHECK(genie_client_session_info(c, 1, session, &nobj, &bytes) == GENIE_OK && nobj == 1 &&
          bytes == 8 * 4096 * 4, "rank 1 keeps the session's object (%u, %llu bytes)", nobj,
          (unsigned long long)bytes);
    kill(dst, SIGCONT);
    st = genie_client_fetch(c, 3, kv_id, &fetched);
    if (st == GENIE_OK) {
        genie_tensor_release(&fetched);
    }
    CHECK(st == GENIE_ERR_NOT_FOUND || st == GENIE_ERR_PEER_LOST,
          "rank 3 holds nothing of the failed handoff (fetch gave %d)", st);
    CHECK(stat_of(c, 1, "handoffs_failed") == 1, "rank 1 counted the failed handoff");
    genie_tensor_release(&in[0]);
    genie_tensor_release(&in[1]);
}

int main(int argc, char **argv)
{
    genie_client_t *c = NULL;
    const char     *mode = argc > 1 ? argv[1] : "basic";

    if (genie_client_open(&c) != GENIE_OK) {
        fprintf(stderr, "mpi-test: FAIL cannot open the client: %s\n", genie_last_error());
        return 1;
    }
    if (strcmp(mode, "kill") == 0) {
        test_kill(c, argc > 2 ? argv[2] : "kill.pids");
    } else if (strcmp(mode, "stall") == 0) {
        test_stall(c, argc > 2 ? argv[2] : "stall.pids");
    } else {
        test_basic(c);
    }
    genie_client_close(c, 0);
    if (failures == 0) {
        printf("mpi-test: all checks passed (%s)\n", mode);
        return 0;
    }
    fprintf(stderr, "mpi-test: %d checks failed (%s)\n", failures, mode);
    return 1;
}

/*
 * libFuzzer target: the executor's message dispatch, from the UCX receive
 * callback down to every request handler and the arena, with real workers
 * and endpoints.  Three transports live in this process: rank 0 is the
 * driver (this thread), ranks 1 and 2 are executors, each served by its own
 * thread running the real serving loop (genie_server_run, launcher/
 * executor_serve.c) over a CPU executor under a 64 MiB memory budget.  A
 * HANDOFF from rank 1 to rank 2 is a real pulled transfer (KV_OFFER, RMA).
 *
 * The input is a list of messages the driver sends, each on an
 * authenticated connection of its own to its executor, through
 * genie_ucx_send_raw: the bytes reach the executor's receive callback
 * exactly as a peer holding the job secret could send them.
 *
 *   record: | ctl u8 | type u8 | len u16 | [aux u64 if ctl & 4]
 *           | [header 40 bytes if ctl & 8] | payload (len, clipped) |
 *   ctl & 1: to rank 2 (else rank 1)     ctl & 2: seq 0 (else a fresh one)
 *   ctl & 8: the 40 header bytes are taken as given (magic, version,
 *            lengths, everything), with our connection token unless ctl & 16
 *
 * CHECKPOINT and RESTORE are sent as STATS: their handlers write and read
 * files at paths the message names (lf_ckpt_read fuzzes the readers).
 * After the messages, the driver asks each executor for STATS (answered in
 * order, so every message has been handled), then ends both serving loops
 * (SHUTDOWN) and starts them again on fresh executors: each input starts
 * from the same state.  The transports are rebuilt when an input made a
 * rank lose another (FENCE) and every 64 inputs (connections pile up).
 *
 * Invariants (an abort is what libFuzzer reports): the executors answer the
 * STATS after any input (no hang, no lost request); an executor's bytes in
 * use never exceed its budget; ASan/UBSan: no overflow, overread, leak or
 * undefined behaviour in the transport, the handlers or the runtime.
 * GENIE_LF_VERBOSE=1 prints what each executor logged.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "genie/backend.h"
#include "genie/exec.h"
#include "genie/ucx.h"
#include "genie/wire.h"
#include "executor.h"

#define N_RANKS     3
#define BUDGET      (UINT64_C(64) << 20)
#define ARENA       ((size_t)16 << 20)
#define MAX_RECORDS 64
#define REBUILD_AT  64
#define SECRET      "f00dfacef00dfacef00dfacef00dfacef00dfacef00dfacef00dfacef00dface"

typedef struct rank_state {
    genie_server_t   srv;
    genie_backend_t *backend;
    genie_exec_t    *exec;
    pthread_t        thread;
    atomic_int       quit;
    atomic_int       running;
    genie_status_t   last;      /* what genie_server_run returned */
} rank_state_t;

static genie_ucx_t *ucx[N_RANKS];
static rank_state_t ranks[N_RANKS];      /* [1], [2] used */
static unsigned     inputs_since_build;
static uint32_t     next_seq = 1u << 30;

static void die(const char *what)
{
    fprintf(stderr, "lf_wire_dispatch: %s (last error: '%s')\n", what, genie_last_error());
    abort();
}

static void *serve(void *arg)
{
    rank_state_t *r = arg;

    while (!atomic_load(&r->quit)) {
        r->srv.shutdown = 0;
        r->last = genie_server_run(&r->srv);
        if (r->last != GENIE_OK || r->srv.driver_gone) {
            break;
        }
    }
    atomic_store(&r->running, 0);
    return NULL;
}

static void rank_start(int i)
{
    rank_state_t *r = &ranks[i];

    memset(&r->srv, 0, sizeof(r->srv));
    if (genie_backend_cpu_create(1, &r->backend) != GENIE_OK ||
        genie_exec_create(r->backend, &r->exec) != GENIE_OK ||
        genie_exec_set_memory_budget(r->exec, BUDGET) != GENIE_OK) {
        die("cannot create an executor");
    }
    r->srv.ucx  = ucx[i];
    r->srv.exec = r->exec;
    r->srv.rank = i;
    r->srv.handoff_limit_s = 2.0;
    atomic_store(&r->quit, 0);
    atomic_store(&r->running, 1);
    if (pthread_create(&r->thread, NULL, serve, r) != 0) {
        die("cannot start a serving thread");
    }
}

/* End rank i's serving loop (a real SHUTDOWN on the driver's main
 * connection) and free its executor. */
static void rank_stop(int i)
{
    rank_state_t     *r = &ranks[i];
    genie_ucx_msg_t  *m = NULL;
    genie_exec_stats_t st;

    atomic_store(&r->quit, 1);
    if (atomic_load(&r->running)) {
        if (genie_ucx_call(ucx[0], i, GENIE_MSG_SHUTDOWN, 0, NULL, 0, &m) == GENIE_OK) {
            genie_ucx_msg_free(m);
        } else {
            /* The driver lost it (the input fenced or broke the link): end
             * the loop from here; it looks at the flag every 500 ms. */
            *(volatile int *)&r->srv.shutdown = 1;
        }
    }
    pthread_join(r->thread, NULL);
    genie_exec_get_stats(r->exec, &st);
    if (st.memory_in_use_bytes > BUDGET) {
        die("an executor's bytes in use exceed its memory budget");
    }
    if (getenv("GENIE_LF_VERBOSE") != NULL) {
        fprintf(stderr, "lf_wire_dispatch: rank %d: %llu runs (%llu plan hits), %llu weights, "
                "%llu residents, %llu sessions, handoffs out %llu in %llu failed %llu, "
                "kv bytes in %llu, bad requests %llu\n", i,
                (unsigned long long)st.requests, (unsigned long long)r->srv.plan_cache_hits,
                (unsigned long long)st.weights, (unsigned long long)st.residents,
                (unsigned long long)st.sessions, (unsigned long long)r->srv.handoffs_out,
                (unsigned long long)r->srv.handoffs_in, (unsigned long long)r->srv.handoffs_failed,
                (unsigned long long)r->srv.kv_bytes_in, (unsigned long long)r->srv.bad_requests);
    }
    genie_server_fini(&r->srv);
    genie_exec_destroy(r->exec);
    r->backend->iface->destroy(r->backend);
    r->exec    = NULL;
    r->backend = NULL;
}

static void build(void)
{
    for (int i = 0; i < N_RANKS; i++) {
        genie_ucx_params_t p = {0};

        p.self.rank = i;
        p.self.role = i == 0 ? GENIE_ROLE_DRIVER : GENIE_ROLE_EXECUTOR;
        snprintf(p.self.phase, sizeof(p.self.phase), "%s", i == 0 ? "" : i == 1 ? "prefill" : "decode");
        p.self.pid = (uint32_t)getpid();
        snprintf(p.self.host, sizeof(p.self.host), "lf-wire-host");
        p.size        = N_RANKS;
        p.arena_bytes = i == 0 ? 0 : ARENA;
        p.timeout_s   = 5.0;
        memcpy(p.secret, SECRET, sizeof(p.secret));
        if (genie_ucx_create(&p, &ucx[i]) != GENIE_OK) {
            die("cannot create a transport");
        }
    }
    if (genie_ucx_bootstrap_local(ucx, N_RANKS) != GENIE_OK) {
        die("in-process bootstrap failed");
    }
    for (int i = 1; i < N_RANKS; i++) {
        rank_start(i);
    }
    for (int i = 1; i < N_RANKS; i++) {
        if (genie_ucx_connect(ucx[0], i, NULL) != GENIE_OK) {
            die("the driver cannot connect to an executor");
        }
    }
    inputs_since_build = 0;
}

static void destroy_transports(void)
{
    for (int i = 0; i < N_RANKS; i++) {
        genie_ucx_destroy(ucx[i]);
        ucx[i] = NULL;
    }
}

static int someone_lost(void)
{
    for (int i = 0; i < N_RANKS; i++) {
        for (int j = 0; j < N_RANKS; j++) {
            if (i != j && genie_ucx_peer_status(ucx[i], j) != GENIE_OK) {
                return 1;
            }
        }
    }
    return 0;
}

static uint16_t map_type(uint8_t t)
{
    if (t == GENIE_MSG_CHECKPOINT || t == GENIE_MSG_RESTORE) {
        return GENIE_MSG_STATS;
    }
    return t;
}

static void send_records(const uint8_t *data, size_t size)
{
    void  *conn[N_RANKS] = {0};
    size_t pos = 0;

    for (int n = 0; n < MAX_RECORDS && size - pos >= 4; n++) {
        uint8_t          ctl  = data[pos];
        uint16_t         type = map_type(data[pos + 1]);
        size_t           len  = (size_t)data[pos + 2] | (size_t)data[pos + 3] << 8;
        uint64_t         aux  = 0;
        genie_wire_hdr_t h;
        int              to   = 1 + (ctl & 1);

        pos += 4;
        if (ctl & 4) {
            if (size - pos < 8) {
                break;
            }
            memcpy(&aux, data + pos, 8);
            pos += 8;
        }
        genie_wire_hdr_init(&h, type, (ctl & 2) ? 0 : next_seq++, 0, 0, aux);
        if (ctl & 8) {
            if (size - pos < sizeof(h)) {
                break;
            }
            memcpy(&h, data + pos, sizeof(h));
            pos += sizeof(h);
        }
        if (len > size - pos) {
            len = size - pos;
        }
        if (!(ctl & 8)) {
            h.payload_len = len;
        }
        if (conn[to] == NULL &&
            genie_ucx_connect_extra(ucx[0], to, SECRET, &conn[to]) != GENIE_OK) {
            die("the driver cannot open a connection to an executor");
        }
        if (!(ctl & 8) || !(ctl & 16)) {
            h.conn = genie_ucx_conn_token(conn[to]);
        }
        /* A failed send (the executor dropped this connection) is what a
         * misbehaving peer gets: later records use a new connection. */
        if (genie_ucx_send_raw(ucx[0], conn[to], &h, sizeof(h), data + pos, len) != GENIE_OK) {
            conn[to] = NULL;
        }
        pos += len;
        genie_ucx_poll(ucx[0]);
    }
}

/* Every executor answers a STATS after the input: all of it was handled. */
static void sync_all(void)
{
    for (int i = 1; i < N_RANKS; i++) {
        genie_ucx_msg_t *m = NULL;

        if (genie_ucx_peer_status(ucx[0], i) != GENIE_OK) {
            continue;                  /* fenced by the input: rebuilt below */
        }
        if (genie_ucx_call(ucx[0], i, GENIE_MSG_STATS, 0, NULL, 0, &m) != GENIE_OK) {
            die("an executor did not answer STATS after the input");
        }
        genie_ucx_msg_free(m);
    }
}

/* At exit everything is torn down, so that the leak check at exit (replay
 * builds) sees only what Genie failed to free. */
static void at_exit(void)
{
    for (int i = 1; i < N_RANKS; i++) {
        rank_stop(i);
    }
    destroy_transports();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;

    if (!ready) {
        setenv("UCX_LOG_LEVEL", "error", 0);
        build();
        atexit(at_exit);
        ready = 1;
    }
    send_records(data, size);
    sync_all();
    for (int i = 1; i < N_RANKS; i++) {
        rank_stop(i);
    }
    if (someone_lost() || ++inputs_since_build >= REBUILD_AT) {
        destroy_transports();
        build();
    } else {
        for (int i = 1; i < N_RANKS; i++) {
            rank_start(i);
        }
    }
    return 0;
}

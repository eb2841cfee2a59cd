/*
 * The UCX transport with real workers and endpoints, in one process: rank 0
 * (the "driver") is driven by the test, rank 1 (an "executor") is served by
 * a thread that can be told to stop progressing (as SIGSTOP would), to be
 * busy (computing while calling genie_ucx_poll), or to misbehave.  Each test
 * pins down one finding of the hardening review (issue 13): connection
 * identity and cleanup, bounded waits with liveness, replies only for
 * pending requests, sends that never outlive their buffers, overflow-safe
 * arena and bootstrap arithmetic, and the pulled KV transfer's byte count.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "genie/ucx.h"

#define SECRET  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define TIMEOUT 0.5        /* liveness timeout of both ranks, seconds */

enum { MODE_SERVE, MODE_STOPPED, MODE_BUSY, MODE_QUIT };

typedef struct pair {
    genie_ucx_t *u[2];
    pthread_t    thread;
    atomic_int   mode;
    atomic_int   served;        /* requests rank 1 answered */
    atomic_int   poisoned;      /* messages rank 1 got carrying 0xEE bytes */
    atomic_int   parked;        /* the thread saw MODE_STOPPED */
} pair_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static genie_ucx_t *make(int rank, size_t arena)
{
    genie_ucx_params_t p = {0};
    genie_ucx_t       *u = NULL;

    p.self.rank = rank;
    p.self.role = rank == 0 ? GENIE_ROLE_DRIVER : GENIE_ROLE_EXECUTOR;
    snprintf(p.self.phase, sizeof(p.self.phase), "%s", rank == 0 ? "" : "decode");
    p.self.pid  = (uint32_t)getpid();
    snprintf(p.self.host, sizeof(p.self.host), "unit-test-host");
    p.size        = 2;
    p.arena_bytes = arena;
    p.timeout_s   = TIMEOUT;
    memcpy(p.secret, SECRET, sizeof(p.secret));
    assert_int_equal(genie_ucx_create(&p, &u), GENIE_OK);
    return u;
}

/* Rank 1's serving loop.  RUN: echo; STATS: answered three times (a peer
 * sending replies nobody asks for); FETCH: busy for 4 liveness timeouts,
 * polling, then answered; anything else: an empty OK. */
static void *serve(void *arg)
{
    pair_t *pr = arg;

    while (atomic_load(&pr->mode) != MODE_QUIT) {
        genie_ucx_msg_t *m = NULL;

        if (atomic_load(&pr->mode) == MODE_STOPPED) {
            atomic_store(&pr->parked, 1);
            usleep(1000);
            continue;
        }
        if (atomic_load(&pr->mode) == MODE_BUSY) {
            atomic_store(&pr->parked, 1);       /* receives, serves nothing */
            genie_ucx_poll(pr->u[1]);
            continue;
        }
        if (genie_ucx_next(pr->u[1], 20, &m) != GENIE_OK) {
            continue;
        }
        for (size_t i = 0; i < m->len; i++) {
            if (m->payload[i] == 0xEE) {
                atomic_fetch_add(&pr->poisoned, 1);
                break;
            }
        }
        atomic_fetch_add(&pr->served, 1);        /* before the reply: callers check it */
        if (m->hdr.type == GENIE_MSG_STATS) {
            for (int k = 0; k < 3; k++) {
                (void)genie_ucx_reply(pr->u[1], m, GENIE_OK, "s", 1);
            }
        } else if (m->hdr.type == GENIE_MSG_FETCH) {
            for (double t0 = now_s(); now_s() - t0 < 4 * TIMEOUT;) {
                usleep(20000);                  /* "computing" */
                genie_ucx_poll(pr->u[1]);
            }
            (void)genie_ucx_reply(pr->u[1], m, GENIE_OK, NULL, 0);
        } else if (m->hdr.type != GENIE_MSG_FREE) {
            (void)genie_ucx_reply(pr->u[1], m, GENIE_OK, m->payload, m->hdr.type == GENIE_MSG_RUN ?
                                  m->len : 0);
        }
        genie_ucx_msg_free(m);
    }
    return NULL;
}

static int pair_setup(void **state)
{
    pair_t *pr = calloc(1, sizeof(*pr));

    pr->u[0] = make(0, 0);
    pr->u[1] = make(1, 16 << 20);
    assert_int_equal(genie_ucx_bootstrap_local(pr->u, 2), GENIE_OK);
    atomic_store(&pr->mode, MODE_SERVE);
    assert_int_equal(pthread_create(&pr->thread, NULL, serve, pr), 0);
    assert_int_equal(genie_ucx_connect(pr->u[0], 1, NULL), GENIE_OK);
    *state = pr;
    return 0;
}

static int pair_teardown(void **state)
{
    pair_t *pr = *state;

    atomic_store(&pr->mode, MODE_QUIT);
    pthread_join(pr->thread, NULL);
    genie_ucx_destroy(pr->u[0]);
    genie_ucx_destroy(pr->u[1]);
    free(pr);
    return 0;
}

static void set_mode(pair_t *pr, int mode)
{
    atomic_store(&pr->parked, 0);
    atomic_store(&pr->mode, mode);
    if (mode == MODE_STOPPED || mode == MODE_BUSY) {
        while (!atomic_load(&pr->parked)) {
            usleep(1000);
        }
    }
}

/* ---- arithmetic ------------------------------------------------------------ */

/* Finding: (nbytes + 63) / 64 * 64 wrapped for sizes near 2^64, giving a
 * 64-byte block to a reservation of "2^64 - 1" bytes. */
static void test_arena_rounding_cannot_wrap(void **state)
{
    genie_ucx_t *u = make(1, 1 << 20);
    uint64_t     off = 7;
    (void)state;

    assert_int_equal(genie_ucx_arena_alloc(u, SIZE_MAX, &off), GENIE_ERR_NOMEM);
    assert_int_equal(genie_ucx_arena_alloc(u, SIZE_MAX - 62, &off), GENIE_ERR_NOMEM);
    assert_int_equal(genie_ucx_arena_alloc(u, (1 << 20) + 1, &off), GENIE_ERR_NOMEM);
    assert_true(off == 7);                              /* untouched on failure */
    assert_int_equal(genie_ucx_arena_used(u), 0);
    assert_int_equal(genie_ucx_arena_alloc(u, 1 << 20, &off), GENIE_OK);
    assert_int_equal(genie_ucx_arena_used(u), 1 << 20);
    genie_ucx_arena_free(u, off);
    assert_int_equal(genie_ucx_arena_alloc(u, 0, &off), GENIE_OK);   /* one aligned unit */
    assert_int_equal(genie_ucx_arena_used(u), 64);
    genie_ucx_destroy(u);
}

/* Finding: the bootstrap added peer lengths without an overflow check. */
static void test_boot_layout_refuses_overflow(void **state)
{
    enum { N = 2100 };
    uint64_t *lens = calloc(N, sizeof(*lens));
    int      *counts = calloc(N, sizeof(int)), *displs = calloc(N, sizeof(int)), total = -1;
    (void)state;

    lens[0] = 100;
    lens[1] = UINT64_MAX;
    assert_int_equal(genie_ucx_boot_layout(lens, 2, counts, displs, &total), GENIE_ERR_CORRUPT);
    lens[0] = UINT64_MAX;
    lens[1] = 1;                                         /* wraps to 0 if summed first */
    assert_int_equal(genie_ucx_boot_layout(lens, 2, counts, displs, &total), GENIE_ERR_CORRUPT);
    lens[0] = 0;
    assert_int_equal(genie_ucx_boot_layout(lens, 1, counts, displs, &total), GENIE_ERR_CORRUPT);
    for (int r = 0; r < N; r++) {
        lens[r] = 1 << 20;                               /* 2100 MiB in all: > INT_MAX */
    }
    assert_int_equal(genie_ucx_boot_layout(lens, N, counts, displs, &total), GENIE_ERR_CORRUPT);
    assert_int_equal(total, -1);
    lens[0] = 10;
    lens[1] = 20;
    lens[2] = 5;
    assert_int_equal(genie_ucx_boot_layout(lens, 3, counts, displs, &total), GENIE_OK);
    assert_int_equal(total, 35);
    assert_int_equal(displs[2], 30);
    assert_int_equal(counts[1], 20);
    free(lens);
    free(counts);
    free(displs);
}

/* ---- connections ------------------------------------------------------------ */

/* Finding: every dropped connection's state was kept until shutdown, and a
 * stream of bad HELLOs kept progress() looping ahead of real requests. */
static void test_bad_hellos_cost_nothing(void **state)
{
    pair_t        *pr = *state;
    char           wrong[sizeof(SECRET)];
    uint32_t       before = genie_ucx_n_conns(pr->u[1]);
    uint64_t       dropped = genie_ucx_dropped(pr->u[1]);
    double         t0;

    memcpy(wrong, SECRET, sizeof(wrong));
    wrong[0] = 'x';
    for (int i = 0; i < 300; i++) {
        void *conn = NULL;
        assert_int_equal(genie_ucx_connect_extra(pr->u[0], 1, wrong, &conn), GENIE_ERR_DENIED);
    }
    /* A flood of garbage (no HELLO at all) on fresh connections. */
    for (int i = 0; i < 300; i++) {
        void    *conn = NULL;
        uint8_t  junk[64];
        memset(junk, i, sizeof(junk));
        assert_int_equal(genie_ucx_connect_extra(pr->u[0], 1, NULL, &conn), GENIE_OK);
        assert_int_equal(genie_ucx_send_raw(pr->u[0], conn, junk, 40, junk, 24), GENIE_OK);
    }
    t0 = now_s();
    {
        genie_ucx_msg_t *m = NULL;
        assert_int_equal(genie_ucx_call(pr->u[0], 1, GENIE_MSG_RUN, 0, "ok", 2, &m), GENIE_OK);
        assert_int_equal(m->len, 2);
        genie_ucx_msg_free(m);
    }
    assert_true(now_s() - t0 < 1.0);
    assert_true(genie_ucx_dropped(pr->u[1]) >= dropped + 600);
    /* None of the 600 refused connections is remembered. */
    assert_true(genie_ucx_n_conns(pr->u[1]) <= before);
}

/* Finding: connections were looked up by the raw endpoint, so one that UCX
 * frees and reuses inherits the old one's authentication.  A message must
 * carry the token of an authenticated connection on that same endpoint. */
static void test_message_needs_its_connection_token(void **state)
{
    pair_t          *pr = *state;
    void            *conn = NULL;
    genie_wire_hdr_t h;
    int              served;
    uint64_t         dropped;

    assert_int_equal(genie_ucx_connect_extra(pr->u[0], 1, SECRET, &conn), GENIE_OK);
    /* A well-formed request on the authenticated connection's endpoint,
     * but with no token, or another one: discarded, never served. */
    served  = atomic_load(&pr->served);
    dropped = genie_ucx_dropped(pr->u[1]);
    genie_wire_hdr_init(&h, GENIE_MSG_SESSION_INFO, 77, 0, 0, 0);
    assert_int_equal(genie_ucx_send_raw(pr->u[0], conn, &h, sizeof(h), NULL, 0), GENIE_OK);
    h.conn = genie_ucx_conn_token(conn) + 1;
    assert_int_equal(genie_ucx_send_raw(pr->u[0], conn, &h, sizeof(h), NULL, 0), GENIE_OK);
    /* The real token on another endpoint (our main connection): discarded. */
    {
        genie_ucx_msg_t *m = NULL;
        assert_int_equal(genie_ucx_call(pr->u[0], 1, GENIE_MSG_RUN, 0, "x", 1, &m), GENIE_OK);
        genie_ucx_msg_free(m);
    }
    assert_int_equal(atomic_load(&pr->served), served + 1);     /* only the call */
    assert_true(genie_ucx_dropped(pr->u[1]) >= dropped + 2);
    /* With its own token it is a request like any other. */
    h.conn = genie_ucx_conn_token(conn);
    assert_int_equal(genie_ucx_send_raw(pr->u[0], conn, &h, sizeof(h), NULL, 0), GENIE_OK);
    for (double t0 = now_s(); atomic_load(&pr->served) < served + 2 && now_s() - t0 < 2;) {
        genie_ucx_poll(pr->u[0]);
    }
    assert_int_equal(atomic_load(&pr->served), served + 2);
}

/* Finding: a peer could queue requests without bound (each one's payload
 * held until served).  One connection may have 16384 requests waiting
 * (GENIE_UCX_MAX_QUEUED); the rest are refused, counted, and the queued
 * ones are all served afterwards. */
static void test_queue_per_connection_is_capped(void **state)
{
    pair_t          *pr = *state;
    void            *conn = NULL;
    genie_wire_hdr_t h;
    const int        cap = 16384, extra = 200;
    int              served;
    uint64_t         dropped;

    assert_int_equal(genie_ucx_connect_extra(pr->u[0], 1, SECRET, &conn), GENIE_OK);
    set_mode(pr, MODE_BUSY);
    served  = atomic_load(&pr->served);
    dropped = genie_ucx_dropped(pr->u[1]);
    for (int i = 0; i < cap + extra; i++) {
        genie_wire_hdr_init(&h, GENIE_MSG_SESSION_INFO, (uint32_t)(1000 + i), 0, 8, 0);
        h.conn = genie_ucx_conn_token(conn);
        assert_int_equal(genie_ucx_send_raw(pr->u[0], conn, &h, sizeof(h), "12345678", 8), GENIE_OK);
        if (i % 256 == 0) {
            genie_ucx_poll(pr->u[0]);
        }
    }
    for (double t0 = now_s(); genie_ucx_dropped(pr->u[1]) < dropped + extra && now_s() - t0 < 10;) {
        genie_ucx_poll(pr->u[0]);
        usleep(1000);
    }
    assert_true(genie_ucx_dropped(pr->u[1]) >= dropped + extra);
    set_mode(pr, MODE_SERVE);
    for (double t0 = now_s(); atomic_load(&pr->served) < served + cap && now_s() - t0 < 20;) {
        genie_ucx_poll(pr->u[0]);
        usleep(1000);
    }
    for (double t0 = now_s(); now_s() - t0 < 0.2;) {
        genie_ucx_poll(pr->u[0]);
    }
    assert_int_equal(atomic_load(&pr->served), served + cap);
}

/* Finding: any reply was queued, so a peer could fill the driver's memory
 * with replies nobody waits for.  Only the first reply to a pending
 * request is kept. */
static void test_unsolicited_replies_are_dropped(void **state)
{
    pair_t          *pr = *state;
    genie_ucx_msg_t *m = NULL;
    uint64_t         dropped = genie_ucx_dropped(pr->u[0]);

    assert_int_equal(genie_ucx_call(pr->u[0], 1, GENIE_MSG_STATS, 0, NULL, 0, &m), GENIE_OK);
    genie_ucx_msg_free(m);
    for (double t0 = now_s(); genie_ucx_dropped(pr->u[0]) < dropped + 2 && now_s() - t0 < 2;) {
        genie_ucx_poll(pr->u[0]);
    }
    assert_int_equal(genie_ucx_dropped(pr->u[0]), dropped + 2);
    /* And nothing stays queued: the next call gets its own reply. */
    assert_int_equal(genie_ucx_call(pr->u[0], 1, GENIE_MSG_RUN, 0, "y", 1, &m), GENIE_OK);
    assert_int_equal(m->payload[0], 'y');
    genie_ucx_msg_free(m);
}

/* ---- waits --------------------------------------------------------------------- */

/* A busy peer that keeps progressing answers the liveness probes and is not
 * treated as lost however long it works; a stopped one is reported after
 * the liveness timeout, with a line naming it and the operation. */
static void test_liveness(void **state)
{
    pair_t          *pr = *state;
    genie_ucx_msg_t *m = NULL;
    uint32_t         seq;
    double           t0 = now_s(), took;
    genie_status_t   st;

    assert_int_equal(genie_ucx_call(pr->u[0], 1, GENIE_MSG_FETCH, 0, NULL, 0, &m), GENIE_OK);
    genie_ucx_msg_free(m);
    assert_true(now_s() - t0 >= 4 * TIMEOUT);            /* it really was busy that long */

    set_mode(pr, MODE_STOPPED);
    assert_int_equal(genie_ucx_send(pr->u[0], 1, GENIE_MSG_RUN, 0, "z", 1, GENIE_UCX_COPY, &seq),
                     GENIE_OK);
    t0 = now_s();
    st = genie_ucx_wait_from(pr->u[0], seq, 1, &m);
    took = now_s() - t0;
    assert_int_equal(st, GENIE_ERR_TIMEOUT);
    assert_true(took >= TIMEOUT && took < TIMEOUT + 1.0);
    assert_non_null(strstr(genie_last_error(), "rank 1 (decode slice 0, pid"));
    assert_non_null(strstr(genie_last_error(), "did not answer"));
    assert_non_null(strstr(genie_last_error(), "RUN"));
    /* Its late reply, when it wakes up, is dropped: nobody waits for it. */
    set_mode(pr, MODE_SERVE);
    for (double t1 = now_s(); now_s() - t1 < 0.3;) {
        genie_ucx_poll(pr->u[0]);
    }
    assert_int_equal(genie_ucx_call(pr->u[0], 1, GENIE_MSG_RUN, 0, "w", 1, &m), GENIE_OK);
    assert_int_equal(m->payload[0], 'w');
    genie_ucx_msg_free(m);
}

/* Finding: when the wait for a send failed, ucp_request_cancel was called,
 * which UCX does not do for sends: the request went on using the caller's
 * buffer after the call had returned.  Now the endpoint is closed first, so
 * the peer never receives bytes written into the buffer after the return. */
static void test_failed_send_never_uses_the_buffer_later(void **state)
{
    pair_t        *pr = *state;
    size_t         n = 8 << 20;                 /* rendezvous, not eager */
    uint8_t       *buf = malloc(n);
    genie_status_t st;

    memset(buf, 0x11, n);
    set_mode(pr, MODE_STOPPED);
    st = genie_ucx_send(pr->u[0], 1, GENIE_MSG_WEIGHT, 0, buf, n, 0, NULL);
    assert_true(st == GENIE_ERR_TIMEOUT || st == GENIE_ERR_PEER_LOST);
    memset(buf, 0xEE, n);                      /* the caller reuses its buffer */
    set_mode(pr, MODE_SERVE);
    for (double t0 = now_s(); now_s() - t0 < 1.0;) {
        genie_ucx_poll(pr->u[0]);
        usleep(1000);
    }
    assert_int_equal(atomic_load(&pr->poisoned), 0);
    /* The driver's side gave the peer up: its connection was closed. */
    assert_int_equal(genie_ucx_peer_status(pr->u[0], 1), GENIE_ERR_PEER_LOST);
    free(buf);
}

/* ---- RMA ------------------------------------------------------------------------ */

/* The pulled transfer: rank 1 exposes memory to rank 0 only for as long as
 * it wants; rank 0 reads it, and the byte count comes from the completed
 * gets (so a short transfer shows: GENIE_TEST_SHORT_GET). */
static void test_gets_count_what_arrived(void **state)
{
    pair_t             *pr = *state;
    size_t              n = 3 << 20;
    uint8_t            *src = malloc(n), *dst = calloc(1, n);
    genie_ucx_region_t *r = NULL;
    genie_ucx_gets_t   *g = NULL;
    genie_ucx_link_stats_t ls;
    const void         *rkey;
    size_t              rlen;
    uint64_t            got = 0;

    for (size_t i = 0; i < n; i++) {
        src[i] = (uint8_t)(i * 7 + 1);
    }
    /* Exposing memory and reading it are local operations on each side. */
    set_mode(pr, MODE_STOPPED);
    assert_int_equal(genie_ucx_expose(pr->u[1], 0, src, n, &r), GENIE_OK);
    rkey = genie_ucx_region_rkey(r, &rlen);
    assert_true(rlen > 0);
    assert_int_equal(genie_ucx_gets_begin(pr->u[0], 1, &g), GENIE_OK);
    assert_int_equal(genie_ucx_get(g, rkey, rlen, (uint64_t)(uintptr_t)src, dst, n / 2), GENIE_OK);
    assert_int_equal(genie_ucx_get(g, rkey, rlen, (uint64_t)(uintptr_t)(src + n / 2), dst + n / 2,
                                   n - n / 2), GENIE_OK);
    set_mode(pr, MODE_SERVE);
    assert_int_equal(genie_ucx_gets_end(g, 10.0, &got), GENIE_OK);
    assert_true(got == n);
    assert_memory_equal(src, dst, n);
    genie_ucx_link_stats(pr->u[0], 1, &ls);
    assert_true(ls.rma_bytes_got == n);
    genie_ucx_link_stats(pr->u[1], 0, &ls);
    assert_true(ls.rma_bytes_exposed == n);
    genie_ucx_unexpose(pr->u[1], r);
    free(src);
    free(dst);
}

/* GENIE_TEST_SHORT_GET=64 makes the first get of a batch read 64 bytes
 * less: the count the transport reports must show it. */
static int short_pair_setup(void **state)
{
    setenv("GENIE_TEST_SHORT_GET", "64", 1);
    pair_setup(state);
    unsetenv("GENIE_TEST_SHORT_GET");
    return 0;
}

static void test_short_get_is_counted(void **state)
{
    pair_t             *pr = *state;
    genie_ucx_region_t *r = NULL;
    genie_ucx_gets_t   *g = NULL;
    size_t              n = 1 << 16, rlen;
    uint8_t            *src = calloc(1, n), *dst = calloc(1, n);
    const void         *rkey;
    uint64_t            got = 0;

    set_mode(pr, MODE_STOPPED);
    assert_int_equal(genie_ucx_expose(pr->u[1], 0, src, n, &r), GENIE_OK);
    rkey = genie_ucx_region_rkey(r, &rlen);
    assert_int_equal(genie_ucx_gets_begin(pr->u[0], 1, &g), GENIE_OK);
    assert_int_equal(genie_ucx_get(g, rkey, rlen, (uint64_t)(uintptr_t)src, dst, n), GENIE_OK);
    set_mode(pr, MODE_SERVE);
    assert_int_equal(genie_ucx_gets_end(g, 10.0, &got), GENIE_OK);
    assert_true(got == n - 64);
    set_mode(pr, MODE_STOPPED);
    genie_ucx_unexpose(pr->u[1], r);
    set_mode(pr, MODE_SERVE);
    free(src);
    free(dst);
}

/* Marking a rank lost (the driver's FENCE) drops its connections at once:
 * what it sends afterwards is discarded, and it cannot connect again. */
static void test_fenced_rank_is_shut_out(void **state)
{
    pair_t *pr = *state;
    void   *conn = NULL;

    genie_ucx_mark_lost(pr->u[1], 0, "fenced off by the test");
    assert_int_equal(genie_ucx_peer_status(pr->u[1], 0), GENIE_ERR_PEER_LOST);
    assert_non_null(strstr(genie_last_error(), "fenced off by the test"));
    assert_int_equal(genie_ucx_connect_extra(pr->u[0], 1, SECRET, &conn), GENIE_ERR_DENIED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena_rounding_cannot_wrap),
        cmocka_unit_test(test_boot_layout_refuses_overflow),
        cmocka_unit_test_setup_teardown(test_bad_hellos_cost_nothing, pair_setup, pair_teardown),
        cmocka_unit_test_setup_teardown(test_message_needs_its_connection_token, pair_setup,
                                        pair_teardown),
        cmocka_unit_test_setup_teardown(test_unsolicited_replies_are_dropped, pair_setup,
                                        pair_teardown),
        cmocka_unit_test_setup_teardown(test_liveness, pair_setup, pair_teardown),
        cmocka_unit_test_setup_teardown(test_queue_per_connection_is_capped, pair_setup,
                                        pair_teardown),
        cmocka_unit_test_setup_teardown(test_failed_send_never_uses_the_buffer_later, pair_setup,
                                        pair_teardown),
        cmocka_unit_test_setup_teardown(test_gets_count_what_arrived, pair_setup, pair_teardown),
        cmocka_unit_test_setup_teardown(test_short_get_is_counted, short_pair_setup, pair_teardown),
        cmocka_unit_test_setup_teardown(test_fenced_rank_is_shut_out, pair_setup, pair_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

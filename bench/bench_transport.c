/*
 * Transport benchmark, run as the driver of a prefill:1,decode:1 job:
 *
 *   genie-launch --phases prefill:1,decode:1 -- build/bin/bench_transport [--repeats N]
 *
 * (a) KV handoff throughput: a GPT-2-small-shaped KV cache (24 tensors of
 *     (1, 12, T, 64) f32 at T = 1024, 72 MiB) handed from the prefill rank to
 *     the decode rank (reserve, RMA puts, flush, commit), against
 *     `ucx_perftest -t ucp_put_bw -e` at the same message size with the same
 *     UCX environment, run by this program right after.  Ratio of medians.
 * (c) Added latency of a warm request: a one-node plan already cached on the
 *     executor, sent again with a fresh input; end-to-end time at the driver
 *     minus the executor's compute time, median and spread over many
 *     requests; a PING round trip is shown as the floor.
 *
 * Prints a table; results are written up in docs/benchmarks.md.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "genie/client.h"
#include "genie/srg.h"

#define KV_TENSORS 24
#define KV_T       1024

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(double *v, int n, double p)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_d);
    return v[(int)floor(p * (n - 1) + 0.5)];
}

static void die(const char *what)
{
    fprintf(stderr, "bench_transport: %s: %s\n", what, genie_last_error());
    exit(1);
}

/* A graph whose INPUT 0 (shape) is kept as object `keep` (no compute), or,
 * with keep == 0, returned: out = in @ I-like (1x8 @ 8x8). */
static void graph_keep(const int64_t *shape, int ndim, uint64_t keep, uint8_t **b, size_t *n)
{
    genie_srg_t *g;
    uint32_t     v;
    if (genie_srg_create(&g) != GENIE_OK ||
        genie_srg_add_source(g, GENIE_VAL_INPUT, GENIE_F32, ndim, shape,
                             GENIE_RES_STATEFUL_KV_CACHE, 0, NULL, &v) != GENIE_OK ||
        genie_srg_mark_output(g, v, 0, keep) != GENIE_OK || genie_srg_encode(g, b, n) != GENIE_OK) {
        die("building the keep graph");
    }
    genie_srg_destroy(g);
}

static void graph_tiny(uint8_t **b, size_t *n)
{
    genie_srg_t   *g;
    uint32_t       a, w, out;
    int64_t        sa[2] = { 1, 8 }, sw[2] = { 8, 8 };
    const int64_t *shapes[1] = { sa };
    genie_dtype_t  dt = GENIE_F32;
    int            nd = 2;
    if (genie_srg_create(&g) != GENIE_OK ||
        genie_srg_add_source(g, GENIE_VAL_INPUT, GENIE_F32, 2, sa, GENIE_RES_EPHEMERAL_ACTIVATION, 0, NULL, &a) ||
        genie_srg_add_source(g, GENIE_VAL_INPUT, GENIE_F32, 2, sw, GENIE_RES_EPHEMERAL_ACTIVATION, 1, NULL, &w)) {
        die("building the tiny graph");
    }
    {
        uint32_t in[2] = { a, w };
        if (genie_srg_add_node(g, GENIE_OP_MM, in, 2, NULL, 0, 1, &dt, &nd, shapes, GENIE_PHASE_LLM_DECODE,
                               GENIE_MOD_TEXT, GENIE_RES_EPHEMERAL_ACTIVATION, "bench.mm", &out) ||
            genie_srg_mark_output(g, out, 1, 0) || genie_srg_encode(g, b, n)) {
            die("building the tiny graph");
        }
    }
    genie_srg_destroy(g);
}

/* ucx_perftest put bandwidth (MB/s, overall) at `size` bytes, same env. */
static double perftest_put_bw(size_t size, int iters)
{
    char  cmd[512], line[512];
    FILE *f;
    pid_t server;
    double bw = -1;
    int   port = 13500 + (int)(getpid() % 400);

    server = fork();
    if (server == 0) {
        char p[16];
        snprintf(p, sizeof(p), "%d", port);
        freopen("/dev/null", "w", stdout);
        freopen("/dev/null", "w", stderr);
        execlp("ucx_perftest", "ucx_perftest", "-p", p, "-e", (char *)NULL);
        _exit(127);
    }
    usleep(500000);
    snprintf(cmd, sizeof(cmd), "ucx_perftest 127.0.0.1 -p %d -e -t ucp_put_bw -s %zu -n %d -w %d 2>&1",
             port, size, iters, iters / 10 + 1);
    if ((f = popen(cmd, "r")) != NULL) {
        while (fgets(line, sizeof(line), f) != NULL) {
            double it, lat50, lat_avg, lat_all, bw_avg, bw_all;
            if (sscanf(line, "Final: %lf %lf %lf %lf %lf %lf", &it, &lat50, &lat_avg, &lat_all,
                       &bw_avg, &bw_all) == 6) {
                bw = bw_all;
            }
        }
        pclose(f);
    }
    kill(server, SIGTERM);
    waitpid(server, NULL, 0);
    return bw;   /* MB/s as ucx_perftest prints it (2^20 bytes) */
}

int main(int argc, char **argv)
{
    genie_client_t *c;
    int             repeats = 10, lat_n = 2000;
    int64_t         shape[4] = { 1, 12, KV_T, 64 };
    size_t          tbytes = 12 * KV_T * 64 * sizeof(float);
    double          mbps[64], drv[64], lat[4096], ping[4096];
    uint64_t        ids[KV_TENSORS];
    genie_tensor_t  host;
    uint8_t        *srg;
    size_t          srg_len;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc) {
            repeats = atoi(argv[++i]);
        }
    }
    if (repeats < 1 || repeats > 64) {
        repeats = 10;
    }
    if (genie_client_open(&c) != GENIE_OK) {
        die("joining the job (run me under genie-launch --phases prefill:1,decode:1)");
    }
    if (genie_ucx_size(genie_client_ucx(c)) != 3) {
        fprintf(stderr, "bench_transport: needs exactly prefill:1,decode:1\n");
        genie_client_close(c, 0);
        return 2;
    }
    genie_tensor_alloc(GENIE_F32, 4, shape, &host);
    for (int64_t i = 0; i < genie_tensor_numel(&host); i++) {
        ((float *)genie_tensor_data(&host))[i] = (float)(i % 977) * 0.001f;
    }
    graph_keep(shape, 4, 0, &srg, &srg_len);
    free(srg);

    /* (a) KV handoff, prefill rank 1 -> decode rank 2 */
    for (int r = 0; r <= repeats; r++) {
        uint64_t session = 100 + (uint64_t)r, bytes = 0;
        double   secs = 0, t0;
        for (int k = 0; k < KV_TENSORS; k++) {
            uint32_t ticket, n_out;
            genie_tensor_t *outs = NULL;
            ids[k] = 1000000 * (uint64_t)(r + 1) + (uint64_t)k;
            graph_keep(shape, 4, ids[k], &srg, &srg_len);
            if (genie_client_submit(c, 1, srg, srg_len, &host, 1, &ticket) != GENIE_OK ||
                genie_client_wait(c, ticket, &outs, &n_out, NULL) != GENIE_OK) {
                die("placing the KV tensors on the prefill rank");
            }
            free(outs);
            free(srg);
        }
        if (genie_client_bind(c, 1, session, ids, KV_TENSORS) != GENIE_OK) {
            die("bind");
        }
        t0 = now_s();
        if (genie_client_handoff(c, 1, 2, session, ids, KV_TENSORS, &bytes, &secs) != GENIE_OK) {
            die("handoff");
        }
        if (r > 0) {                      /* the first one warms up */
            mbps[r - 1] = (double)bytes / secs / (1 << 20);
            drv[r - 1]  = (double)bytes / (now_s() - t0) / (1 << 20);
        }
        uint32_t freed;
        genie_client_end_session(c, 2, session, &freed);
    }

    /* (c) warm request latency */
    {
        int64_t        sa[2] = { 1, 8 }, sw[2] = { 8, 8 };
        genie_tensor_t in[2];
        genie_tensor_alloc(GENIE_F32, 2, sa, &in[0]);
        genie_tensor_alloc(GENIE_F32, 2, sw, &in[1]);
        memset(genie_tensor_data(&in[0]), 0, 32);
        memset(genie_tensor_data(&in[1]), 0, 256);
        graph_tiny(&srg, &srg_len);
        for (int i = 0; i < lat_n + 100; i++) {
            uint32_t ticket, n_out;
            genie_tensor_t *outs = NULL;
            double compute = 0, t0 = now_s(), e2e;
            ((float *)genie_tensor_data(&in[0]))[0] = (float)i;
            if (genie_client_submit(c, 2, srg, srg_len, in, 2, &ticket) != GENIE_OK ||
                genie_client_wait(c, ticket, &outs, &n_out, &compute) != GENIE_OK) {
                die("warm request");
            }
            e2e = now_s() - t0;
            for (uint32_t k = 0; k < n_out; k++) {
                genie_tensor_release(&outs[k]);
            }
            free(outs);
            if (i >= 100) {
                lat[i - 100] = (e2e - compute) * 1e6;
            }
            t0 = now_s();
            genie_client_ping(c, 2, "p", 1);
            if (i >= 100) {
                ping[i - 100] = (now_s() - t0) * 1e6;
            }
        }
        free(srg);
        genie_tensor_release(&in[0]);
        genie_tensor_release(&in[1]);
    }
    genie_tensor_release(&host);
    genie_client_close(c, 0);

    {
        double base = perftest_put_bw(tbytes, 200);
        /* ucx_perftest reuses one buffer, so at 3 MiB its data stays in the
         * CPU cache while a 72 MiB KV cache cannot: the whole cache as one
         * message is the cache-cold comparison. */
        double base_all = perftest_put_bw(tbytes * KV_TENSORS, 30);
        double h50 = pct(mbps, repeats, 0.5), hlo = pct(mbps, repeats, 0.0), hhi = pct(mbps, repeats, 1.0);
        double d50 = pct(drv, repeats, 0.5);
        double l50 = pct(lat, lat_n, 0.5), l10 = pct(lat, lat_n, 0.1), l90 = pct(lat, lat_n, 0.9);
        double p50 = pct(ping, lat_n, 0.5);
        const char *tls = getenv("UCX_TLS");
        printf("bench_transport: UCX_TLS=%s, %d repeats, KV = %d x (1,12,%d,64) f32 = %.1f MiB\n",
               tls ? tls : "(default)", repeats, KV_TENSORS, KV_T, KV_TENSORS * (double)tbytes / (1 << 20));
        printf("| measurement | Genie | baseline | ratio |\n|---|---|---|---|\n");
        printf("| (a) KV handoff throughput, MiB/s (median [min-max]) | %.0f [%.0f-%.0f] | ucx_perftest ucp_put_bw -e at %zu B: %.0f | %.2f |\n",
               h50, hlo, hhi, tbytes, base, base > 0 ? h50 / base : 0.0);
        printf("| (a') KV handoff vs ucx_perftest ucp_put_bw -e at the whole cache, %zu B (cache-cold) | %.0f | %.0f | %.2f |\n",
               tbytes * KV_TENSORS, h50, base_all, base_all > 0 ? h50 / base_all : 0.0);
        printf("| (a'') KV handoff timed at the driver (HANDOFF round trip), MiB/s | %.0f | | |\n", d50);
        printf("| (c) warm request: end-to-end minus executor compute, us (median [p10-p90]) | %.1f [%.1f-%.1f] | target 200 | %.2f of target |\n",
               l50, l10, l90, l50 / 200.0);
        printf("| (c') PING round trip (floor), us (median) | %.1f | | |\n", p50);
    }
    return 0;
}

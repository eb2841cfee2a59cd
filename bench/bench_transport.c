/*
 * Transport benchmark, run as the driver of a prefill:1,decode:1 job:
 *
 *   genie-launch --phases prefill:1,decode:1 -- build/bin/bench_transport [--runs N] [--repeats N]
 *
 * Each of the N runs (default 3) measures, in this order, so that ours and
 * the baselines alternate:
 * (a) KV handoff throughput: a GPT-2-small-shaped KV cache (24 tensors of
 *     (1, 12, T, 64) f32 at T = 1024, 72 MiB) handed from the prefill rank to
 *     the decode rank (reserve, RMA puts, flush, commit), --repeats times
 *     after one warm-up, timed by the source executor (its HANDOFF reply)
 *     and at the driver (the HANDOFF round trip);
 *     baselines, with the same UCX environment: `ucx_perftest -t ucp_put_bw
 *     -e` with the whole cache as one 72 MiB message (same total size, and,
 *     like the handoff, too large for the CPU caches: the design target's
 *     baseline), and at one tensor's 3 MiB (which ucx_perftest puts from
 *     the same buffer again and again, so it stays in the CPU cache); and
 *     memcpy of 72 MiB between two buffers of this process (the memory
 *     bandwidth both are bounded by).
 * (c) Added latency of a warm request on a cached toy plan: a one-node plan
 *     (a 1x8 @ 8x8 matmul) already in the executor's plan cache, sent again
 *     with a fresh input; end-to-end time at the driver minus the executor's
 *     compute time.  Real decode steps do not hit the plan cache (their
 *     object ids change every step), so this is the transport's and the
 *     request path's floor, not a decode step's added latency.  A PING round
 *     trip is shown as the floor of the floor.
 *
 * Every sample of every run is pooled: median and min-max (p10-p90 for the
 * latencies).  Prints a markdown table that can be pasted into
 * docs/benchmarks.md as it is, with the time of day and the load.
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

/* The p-quantile of v[0..n-1] (sorts v); p = 0.5 is the median, the mean
 * of the two middle values when n is even, as Python's statistics.median. */
static double pct(double *v, int n, double p)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_d);
    if (p == 0.5 && n % 2 == 0) {
        return 0.5 * (v[n / 2 - 1] + v[n / 2]);
    }
    return v[(int)floor(p * (n - 1) + 0.5)];
}

/* "2026-12-04 13:24 UTC, load average 0.19 0.54 0.70" */
static void stamp(char *buf, size_t len)
{
    time_t    t = time(NULL);
    struct tm tm;
    double    la[3] = { -1, -1, -1 };
    size_t    n;
    gmtime_r(&t, &tm);
    n = strftime(buf, len, "%Y-%m-%d %H:%M UTC", &tm);
    getloadavg(la, 3);
    snprintf(buf + n, len - n, ", load average %.2f %.2f %.2f", la[0], la[1], la[2]);
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

/* The memory bandwidth a 72 MiB move is bounded by: memcpy of `bytes`
 * between two buffers whose pages are already in, MiB/s, median of `n`. */
static double memcpy_mibps(size_t bytes, int n)
{
    char  *a = malloc(bytes), *b = malloc(bytes);
    double rate[16], t0;
    if (a == NULL || b == NULL || n > 16) {
        free(a);
        free(b);
        return -1;
    }
    memset(a, 1, bytes);
    memset(b, 2, bytes);
    for (int i = 0; i < n; i++) {
        t0 = now_s();
        memcpy(i % 2 ? a : b, i % 2 ? b : a, bytes);
        rate[i] = (double)bytes / (now_s() - t0) / (1 << 20);
    }
    free(a);
    free(b);
    return pct(rate, n, 0.5);
}

int main(int argc, char **argv)
{
    genie_client_t *c;
    int             repeats = 10, runs = 3, lat_n = 2000, nh = 0, nl = 0;
    int64_t         shape[4] = { 1, 12, KV_T, 64 };
    size_t          tbytes = 12 * KV_T * 64 * sizeof(float);
    double         *mbps, *drv, *lat, *ping, base_all[16], base[16], mcp[16];
    uint64_t        ids[KV_TENSORS];
    genie_tensor_t  host;
    uint8_t        *srg;
    size_t          srg_len;
    char            started[96], ended[96];

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc) {
            repeats = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: bench_transport [--runs 1..16] [--repeats 1..64]\n");
            return 2;
        }
    }
    if (repeats < 1 || repeats > 64 || runs < 1 || runs > 16) {
        fprintf(stderr, "bench_transport: --runs is 1..16, --repeats 1..64\n");
        return 2;
    }
    stamp(started, sizeof(started));
    mbps = calloc((size_t)(runs * repeats), sizeof(double));
    drv  = calloc((size_t)(runs * repeats), sizeof(double));
    lat  = calloc((size_t)(runs * lat_n), sizeof(double));
    ping = calloc((size_t)(runs * lat_n), sizeof(double));
    if (mbps == NULL || drv == NULL || lat == NULL || ping == NULL) {
        fprintf(stderr, "bench_transport: out of memory\n");
        return 1;
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

    for (int run = 0; run < runs; run++) {
        /* (a) KV handoff, prefill rank 1 -> decode rank 2 */
        for (int r = 0; r <= repeats; r++) {
            uint64_t session = 100 + (uint64_t)(run * 100 + r), bytes = 0;
            double   secs = 0, t0;
            for (int k = 0; k < KV_TENSORS; k++) {
                uint32_t        ticket, n_out;
                genie_tensor_t *outs = NULL;
                ids[k] = 1000000 * (uint64_t)(run * 100 + r + 1) + (uint64_t)k;
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
            if (r > 0) {                      /* the first one of a run warms up */
                mbps[nh] = (double)bytes / secs / (1 << 20);
                drv[nh]  = (double)bytes / (now_s() - t0) / (1 << 20);
                nh++;
            }
            uint32_t freed;
            genie_client_end_session(c, 2, session, &freed);
        }
        /* the baselines, right after: the same total size, then one tensor's size */
        base_all[run] = perftest_put_bw(tbytes * KV_TENSORS, 30);
        base[run]     = perftest_put_bw(tbytes, 200);
        mcp[run]      = memcpy_mibps(tbytes * KV_TENSORS, 9);

        /* (c) warm request on a cached toy plan */
        {
            int64_t        sa[2] = { 1, 8 }, sw[2] = { 8, 8 };
            genie_tensor_t in[2];
            genie_tensor_alloc(GENIE_F32, 2, sa, &in[0]);
            genie_tensor_alloc(GENIE_F32, 2, sw, &in[1]);
            memset(genie_tensor_data(&in[0]), 0, 32);
            memset(genie_tensor_data(&in[1]), 0, 256);
            graph_tiny(&srg, &srg_len);
            for (int i = 0; i < lat_n + 100; i++) {
                uint32_t        ticket, n_out;
                genie_tensor_t *outs = NULL;
                double          compute = 0, t0 = now_s(), e2e;
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
                t0 = now_s();
                genie_client_ping(c, 2, "p", 1);
                if (i >= 100) {              /* the first 100 warm up */
                    lat[nl]  = (e2e - compute) * 1e6;
                    ping[nl] = (now_s() - t0) * 1e6;
                    nl++;
                }
            }
            free(srg);
            genie_tensor_release(&in[0]);
            genie_tensor_release(&in[1]);
        }
    }
    genie_tensor_release(&host);
    genie_client_close(c, 0);
    stamp(ended, sizeof(ended));

    {
        double      h50 = pct(mbps, nh, 0.5), hlo = pct(mbps, nh, 0.0), hhi = pct(mbps, nh, 1.0);
        double      d50 = pct(drv, nh, 0.5), dlo = pct(drv, nh, 0.0), dhi = pct(drv, nh, 1.0);
        double      ba50 = pct(base_all, runs, 0.5), balo = pct(base_all, runs, 0.0),
                    bahi = pct(base_all, runs, 1.0);
        double      b50 = pct(base, runs, 0.5), blo = pct(base, runs, 0.0), bhi = pct(base, runs, 1.0);
        double      m50 = pct(mcp, runs, 0.5), mlo = pct(mcp, runs, 0.0), mhi = pct(mcp, runs, 1.0);
        double      l50 = pct(lat, nl, 0.5), l10 = pct(lat, nl, 0.1), l90 = pct(lat, nl, 0.9);
        double      p50 = pct(ping, nl, 0.5), p10 = pct(ping, nl, 0.1), p90 = pct(ping, nl, 0.9);
        const char *tls = getenv("UCX_TLS");
        printf("bench_transport: started %s, ended %s\n", started, ended);
        printf("UCX_TLS=%s; %d runs x %d handoffs of KV = %d x (1,12,%d,64) f32 = %.1f MiB; "
               "%d x %d warm requests\n\n",
               tls ? tls : "(default)", runs, repeats, KV_TENSORS, KV_T,
               KV_TENSORS * (double)tbytes / (1 << 20), runs, lat_n);
        printf("| measurement | Genie, median [min-max] | baseline, median [min-max] | ratio of medians |\n"
               "|---|---|---|---|\n");
        printf("| (a) KV handoff, MiB/s, vs `ucx_perftest -t ucp_put_bw -e` with the whole cache "
               "as one %zu B message (same total size; target >= 0.9) | %.0f [%.0f-%.0f] | "
               "%.0f [%.0f-%.0f] | **%.2f** |\n",
               tbytes * KV_TENSORS, h50, hlo, hhi, ba50, balo, bahi, ba50 > 0 ? h50 / ba50 : 0.0);
        printf("| (a') the same handoffs vs `ucx_perftest` at one tensor's %zu B (its buffer stays "
               "in the CPU cache) | %.0f | %.0f [%.0f-%.0f] | %.2f |\n",
               tbytes, h50, b50, blo, bhi, b50 > 0 ? h50 / b50 : 0.0);
        printf("| (a'') KV handoff timed at the driver (HANDOFF round trip), MiB/s | %.0f [%.0f-%.0f] "
               "| | |\n", d50, dlo, dhi);
        printf("| for reference: memcpy of %zu B in one process, MiB/s | | %.0f [%.0f-%.0f] | %.2f |\n",
               tbytes * KV_TENSORS, m50, mlo, mhi, m50 > 0 ? h50 / m50 : 0.0);
        printf("| (c) warm request on a cached toy plan (not a decode step): end-to-end minus "
               "executor compute, us, median [p10-p90] | %.1f [%.1f-%.1f] | | |\n", l50, l10, l90);
        printf("| (c') PING round trip, us, median [p10-p90] | %.1f [%.1f-%.1f] | | |\n", p50, p10, p90);
    }
    free(mbps);
    free(drv);
    free(lat);
    free(ping);
    return 0;
}

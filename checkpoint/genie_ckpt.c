/*
 * genie-ckpt: look into a checkpoint directory (docs/checkpoint-format.md).
 *
 *   genie-ckpt list DIR              every epoch: complete or why not, size
 *   genie-ckpt show DIR [EPOCH] [-v] the manifest and every session
 *   genie-ckpt verify DIR [EPOCH]    read every dataset, check its checksum
 *
 * Exit: 0 ok, 1 a checkpoint failed a check (or none is complete), 2 usage.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
/* Messages and paths are cut at their buffer's size on purpose: a long
 * path must not turn a one-line report into an error of its own. */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "genie/ckpt.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: genie-ckpt list DIR\n"
                 "       genie-ckpt show DIR [EPOCH] [-v]\n"
                 "       genie-ckpt verify DIR [EPOCH]\n"
                 "DIR is a checkpoint directory (genie-launch --checkpoint-dir, srun\n"
                 "--genie-checkpoint-dir); EPOCH defaults to the newest complete one.\n"
                 "Exit status: 0 ok, 1 a checkpoint failed a check, 2 usage error.\n");
}

static int bad_usage(const char *msg)
{
    fprintf(stderr, "genie-ckpt: %s (genie-ckpt --help for usage)\n", msg);
    return 2;
}

static void human(uint64_t b, char *out, size_t cap)
{
    const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    double      v = (double)b;
    int         i = 0;

    while (v >= 1024 && i < 4) {
        v /= 1024;
        i++;
    }
    snprintf(out, cap, i == 0 ? "%.0f %s" : "%.1f %s", v, u[i]);
}

static void when(double t, char *out, size_t cap)
{
    time_t    s = (time_t)t;
    struct tm tm;

    if (localtime_r(&s, &tm) == NULL || strftime(out, cap, "%Y-%m-%d %H:%M:%S", &tm) == 0) {
        snprintf(out, cap, "?");
    }
}

static int cmd_list(const char *root)
{
    genie_ckpt_epoch_info_t *eps;
    uint32_t                 n, complete = 0;

    if (genie_ckpt_list(root, &eps, &n) != GENIE_OK) {
        fprintf(stderr, "genie-ckpt: %s\n", genie_last_error());
        return 1;
    }
    printf("%-8s %-10s %5s %8s %10s  %-19s  %s\n", "epoch", "state", "files", "sessions", "size",
           "created", "reason");
    for (uint32_t i = 0; i < n; i++) {
        char sz[32], ts[32];
        if (eps[i].complete) {
            complete++;
            human(eps[i].bytes, sz, sizeof(sz));
            when(eps[i].created, ts, sizeof(ts));
            printf("%-8llu %-10s %5u %8u %10s  %-19s  %s\n", (unsigned long long)eps[i].epoch,
                   "complete", eps[i].n_files, eps[i].n_sessions, sz, ts, eps[i].reason);
        } else {
            printf("%-8llu %-10s %s\n", (unsigned long long)eps[i].epoch, "INCOMPLETE", eps[i].why);
        }
    }
    printf("%u epochs, %u complete\n", n, complete);
    free(eps);
    return complete > 0 ? 0 : 1;
}

static int parse_epoch(const char *s, uint64_t *e)
{
    char *end;

    if (s == NULL) {
        *e = 0;
        return 1;
    }
    *e = strtoull(s, &end, 10);
    return s[0] >= '0' && s[0] <= '9' && *end == '\0' && *e > 0;
}

static void skipped(uint64_t epoch, const char *why, void *arg)
{
    (void)arg;
    printf("epoch %llu skipped: %s\n", (unsigned long long)epoch, why);
}

static int cmd_show(const char *root, uint64_t epoch, int verbose)
{
    genie_ckpt_t *ck;
    char          ts[32];

    if (genie_ckpt_open(root, epoch, skipped, NULL, &ck) != GENIE_OK) {
        fprintf(stderr, "genie-ckpt: %s\n", genie_last_error());
        return 1;
    }
    when(ck->manifest.created, ts, sizeof(ts));
    printf("epoch %llu: %s\n  job %s, phases %s, written on %s at %s, %u files\n",
           (unsigned long long)ck->manifest.epoch, ck->dir, ck->manifest.job, ck->manifest.phases,
           ck->manifest.reason, ts, ck->manifest.n_files);
    for (uint32_t i = 0; i < ck->manifest.n_model_fps; i++) {
        printf("  model fingerprint %016llx\n", (unsigned long long)ck->manifest.model_fps[i]);
    }
    printf("  %-8s %-14s %-16s %6s %5s %12s %8s %4s %10s\n", "session", "file", "key", "step", "batch",
           "tokens", "lineage", "kv", "kv size");
    for (uint32_t i = 0; i < ck->n_sessions; i++) {
        const genie_ckpt_session_t *s = &ck->sessions[i];
        uint64_t bytes = 0;
        char     sz[32], tok[32];

        for (uint32_t k = 0; k < s->n_kv; k++) {
            uint64_t numel = 1;
            for (int d = 0; d < s->kv[k].ndim; d++) {
                numel *= (uint64_t)s->kv[k].shape[d];
            }
            bytes += numel * genie_dtype_size(s->kv[k].dtype);
        }
        human(bytes, sz, sizeof(sz));
        snprintf(tok, sizeof(tok), "%llu (%llu)", (unsigned long long)s->n_tokens,
                 (unsigned long long)s->prompt_len);
        printf("  %-8llu %-14s %016llx %6llu %5u %12s %8u %4u %10s\n", (unsigned long long)s->id, s->file,
               (unsigned long long)s->key, (unsigned long long)s->step, s->batch, tok, s->n_lineage,
               s->n_kv, sz);
        for (uint32_t k = 0; verbose && k < s->n_kv; k++) {
            printf("      kv %-20s %-8s (", s->kv[k].name, genie_dtype_name(s->kv[k].dtype));
            for (int d = 0; d < s->kv[k].ndim; d++) {
                printf("%s%lld", d ? ", " : "", (long long)s->kv[k].shape[d]);
            }
            printf(")\n");
        }
    }
    printf("  tokens: total (prompt); step: the next step a restore runs\n");
    genie_ckpt_close(ck);
    return 0;
}

static void report(const char *file, const char *dataset, genie_status_t st, const char *msg, void *arg)
{
    (void)arg;
    (void)dataset;
    if (st != GENIE_OK) {
        if (strstr(msg, file) != NULL) {
            printf("genie-ckpt: FAILED %s\n", msg);           /* the message names the file */
        } else {
            printf("genie-ckpt: FAILED %s: %s\n", file, msg);
        }
    }
}

static int verify_epoch(const char *dir, uint32_t *bad, uint32_t *n)
{
    uint32_t b = 0;

    if (genie_ckpt_verify(dir, report, NULL, &b) != GENIE_OK) {
        printf("genie-ckpt: FAILED %s\n", genie_last_error());
        b++;
    }
    *bad += b;
    (*n)++;
    return 0;
}

static int cmd_verify(const char *root, uint64_t epoch, int all)
{
    genie_ckpt_epoch_info_t *eps;
    uint32_t                 n, bad = 0, checked = 0;
    char                     dir[4096];

    if (genie_ckpt_list(root, &eps, &n) != GENIE_OK) {
        fprintf(stderr, "genie-ckpt: %s\n", genie_last_error());
        return 1;
    }
    for (uint32_t i = n; i-- > 0;) {
        if ((epoch != 0 && eps[i].epoch != epoch) || (epoch == 0 && !eps[i].complete)) {
            continue;
        }
        genie_ckpt_epoch_path(root, eps[i].epoch, dir, sizeof(dir));
        printf("verifying epoch %llu (%s)\n", (unsigned long long)eps[i].epoch, dir);
        verify_epoch(dir, &bad, &checked);
        if (!all) {
            break;
        }
    }
    free(eps);
    if (checked == 0) {
        printf("genie-ckpt: no %s epoch to verify in %s\n", epoch ? "such" : "complete", root);
        return 1;
    }
    printf("verified %u epochs: %s", checked, bad ? "" : "OK\n");
    if (bad) {
        printf("%u FAILED\n", bad);
    }
    return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
    const char *cmd, *root, *ep_text = NULL;
    uint64_t    epoch = 0;
    int         verbose = 0, all = 0;

    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc < 3) {
        return bad_usage("needs a command (list, show, verify) and a directory");
    }
    cmd  = argv[1];
    root = argv[2];
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "-v") == 0) {
            verbose = 1;
        } else if (strcmp(argv[i], "--all") == 0) {
            all = 1;
        } else if (ep_text == NULL) {
            ep_text = argv[i];
        } else {
            return bad_usage("too many arguments");
        }
    }
    if (!parse_epoch(ep_text, &epoch)) {
        return bad_usage("EPOCH must be a positive number");
    }
    if (strcmp(cmd, "list") == 0 && ep_text == NULL && !verbose && !all) {
        return cmd_list(root);
    }
    if (strcmp(cmd, "show") == 0 && !all) {
        return cmd_show(root, epoch, verbose);
    }
    if (strcmp(cmd, "verify") == 0 && !verbose) {
        return cmd_verify(root, epoch, all);
    }
    return bad_usage("unknown command or option");
}

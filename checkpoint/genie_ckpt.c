/*
 * genie-ckpt: look into a checkpoint directory (docs/checkpoint-format.md).
 *
 *   genie-ckpt list DIR                 every epoch: complete or why not, size
 *   genie-ckpt show DIR [EPOCH] [-v]    the manifest and every session
 *   genie-ckpt verify DIR [EPOCH|--all] read every dataset, check its checksum
 *
 * EPOCH defaults to the newest complete epoch.  Exit status: 0 ok, 1 a
 * checkpoint failed a check (or there is none to show), 2 usage error.
 * Errors are one line each, prefixed "genie-ckpt: "; HDF5's own messages are
 * never printed (the library turns them off).
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
                 "       genie-ckpt verify DIR [EPOCH | --all]\n"
                 "\n"
                 "DIR is a checkpoint directory (genie-launch --checkpoint-dir, srun\n"
                 "--genie-checkpoint-dir); EPOCH defaults to the newest complete one.\n"
                 "  list    every epoch: complete or INCOMPLETE (why), files, sessions, size\n"
                 "  show    the manifest and each session; -v lists each KV tensor\n"
                 "  verify  reads every dataset and checks its Fletcher32 checksums;\n"
                 "          --all verifies every complete epoch\n"
                 "Exit status: 0 ok, 1 a checkpoint failed a check, 2 usage error.\n");
}

static int bad_usage(const char *msg, const char *arg)
{
    char shown[128] = "";

    if (arg != NULL) {
        snprintf(shown, sizeof(shown), ": %s", arg);
        genie_one_line(shown);             /* an argument cannot forge a second line */
    }
    fprintf(stderr, "genie-ckpt: %s%s (genie-ckpt --help for usage)\n", msg, shown);
    return 2;
}

/* The library's message without its own "genie: checkpoint " head. */
static const char *bare(const char *msg)
{
    const char *head = "genie: checkpoint ";

    return strncmp(msg, head, strlen(head)) == 0 ? msg + strlen(head) : msg;
}

static int failed(void)
{
    fprintf(stderr, "genie-ckpt: %s\n", bare(genie_last_error()));
    return 1;
}

static void human(uint64_t b, char *out, size_t cap)
{
    const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
    double      v = (double)b;
    int         i = 0;

    while (v >= 1024 && i < 5) {
        v /= 1024;
        i++;
    }
    snprintf(out, cap, i == 0 ? "%.0f %s" : "%.1f %s", v, u[i]);
}

static void when(double t, char *out, size_t cap)
{
    time_t    s = (time_t)t;
    struct tm tm;

    if (t <= 0 || localtime_r(&s, &tm) == NULL || strftime(out, cap, "%Y-%m-%d %H:%M:%S", &tm) == 0) {
        snprintf(out, cap, "-");
    }
}

/* ---- list ------------------------------------------------------------------------ */

static int cmd_list(const char *root)
{
    genie_ckpt_epoch_info_t *eps;
    uint32_t                 n, complete = 0;

    if (genie_ckpt_list(root, &eps, &n) != GENIE_OK) {
        return failed();
    }
    printf("%-8s %-10s %5s %8s %10s  %-19s  %s\n", "epoch", "state", "files", "sessions", "size", "created",
           "reason");
    for (uint32_t i = 0; i < n; i++) {
        char sz[32], ts[32];

        human(eps[i].bytes, sz, sizeof(sz));
        if (eps[i].complete) {
            complete++;
            when(eps[i].created, ts, sizeof(ts));
            printf("%-8llu %-10s %5u %8u %10s  %-19s  %s\n", (unsigned long long)eps[i].epoch, "complete",
                   eps[i].n_files, eps[i].n_sessions, sz, ts, eps[i].reason[0] ? eps[i].reason : "-");
        } else {
            printf("%-8llu %-10s %5u %8s %10s  %-19s  - (%s)\n", (unsigned long long)eps[i].epoch,
                   "INCOMPLETE", eps[i].n_files, "-", sz, "-", eps[i].why);
        }
    }
    printf("%u epochs, %u complete, in %s\n", n, complete, root);
    free(eps);
    return 0;
}

/* ---- show ------------------------------------------------------------------------ */

static void skipped(uint64_t epoch, const char *why, void *arg)
{
    (void)arg;
    printf("epoch %llu skipped: %s\n", (unsigned long long)epoch, why);
}

static int cmd_show(const char *root, uint64_t epoch, int verbose)
{
    genie_ckpt_t *ck;
    char          ts[32], sz[32];

    if (genie_ckpt_open(root, epoch, epoch == 0 ? skipped : NULL, NULL, &ck) != GENIE_OK) {
        return failed();
    }
    when(ck->manifest.created, ts, sizeof(ts));
    printf("epoch %llu (%s)\n", (unsigned long long)ck->manifest.epoch, ck->dir);
    printf("  job %s, phases %s, reason %s, created %s\n", ck->manifest.job[0] ? ck->manifest.job : "-",
           ck->manifest.phases[0] ? ck->manifest.phases : "-",
           ck->manifest.reason[0] ? ck->manifest.reason : "-", ts);
    for (uint32_t i = 0; i < ck->manifest.n_model_fps; i++) {
        printf("  model fingerprint %016llx\n", (unsigned long long)ck->manifest.model_fps[i]);
    }
    for (uint32_t i = 0; i < ck->manifest.n_files; i++) {
        const genie_ckpt_file_entry_t *e = &ck->manifest.files[i];
        human(e->bytes, sz, sizeof(sz));
        printf("  file %s: rank %d, %u sessions, %s\n", e->name, (int)e->rank, e->sessions, sz);
    }
    printf("  %-8s %5s %-14s %-16s %6s %5s %14s %7s %4s %10s\n", "session", "rank", "file", "key", "step",
           "batch", "tokens (prompt)", "lineage", "kv", "kv bytes");
    for (uint32_t i = 0; i < ck->n_sessions; i++) {
        const genie_ckpt_session_t *s = &ck->sessions[i];
        uint64_t                    bytes = 0;
        char                        tok[48];

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
        printf("  %-8llu %5d %-14s %016llx %6llu %5u %14s %7u %4u %10s\n", (unsigned long long)s->id,
               (int)s->rank, s->file, (unsigned long long)s->key, (unsigned long long)s->step, s->batch, tok,
               s->n_lineage, s->n_kv, sz);
        for (uint32_t k = 0; verbose && k < s->n_kv; k++) {
            printf("      kv %-24s %-8s (", s->kv[k].name, genie_dtype_name(s->kv[k].dtype));
            for (int d = 0; d < s->kv[k].ndim; d++) {
                printf("%s%lld", d ? ", " : "", (long long)s->kv[k].shape[d]);
            }
            printf(")\n");
        }
    }
    printf("  %u sessions; tokens: all columns (the prompt's); step: the next step a restore runs\n",
           ck->n_sessions);
    genie_ckpt_close(ck);
    return 0;
}

/* ---- verify ------------------------------------------------------------------------ */

typedef struct tally {
    uint32_t datasets, files, bad;
    char     last_file[4400];
} tally_t;

static void report(const char *file, const char *dataset, genie_status_t st, const char *msg, void *arg)
{
    tally_t *t = arg;

    /* files: those whose datasets were read (a file that does not open is
     * a FAILED line of its own) */
    if (strcmp(dataset, "/") != 0) {
        t->datasets++;
        if (strcmp(file, t->last_file) != 0) {
            snprintf(t->last_file, sizeof(t->last_file), "%s", file);
            t->files++;
        }
    }
    if (st != GENIE_OK) {
        t->bad++;
        printf("genie-ckpt: FAILED %s\n", bare(msg));
    }
}

static int cmd_verify(const char *root, uint64_t epoch, int all)
{
    genie_ckpt_epoch_info_t *eps;
    uint32_t                 n, checked = 0, bad;
    tally_t                  t;
    char                     dir[4096];

    if (genie_ckpt_list(root, &eps, &n) != GENIE_OK) {
        return failed();
    }
    memset(&t, 0, sizeof(t));
    for (uint32_t i = n; i-- > 0;) {
        if (epoch != 0 ? eps[i].epoch != epoch : !eps[i].complete) {
            continue;
        }
        genie_ckpt_epoch_path(root, eps[i].epoch, dir, sizeof(dir));
        if (genie_ckpt_verify(dir, report, &t, &bad) != GENIE_OK) {
            printf("genie-ckpt: FAILED %s\n", bare(genie_last_error()));
            t.bad++;
        }
        checked++;
        if (!all) {
            break;
        }
    }
    free(eps);
    if (checked == 0) {
        if (epoch != 0) {
            fprintf(stderr, "genie-ckpt: %s has no epoch %llu\n", root, (unsigned long long)epoch);
        } else {
            fprintf(stderr, "genie-ckpt: %s has no complete epoch to verify\n", root);
        }
        return 1;
    }
    if (t.bad == 0) {
        printf("verified %u datasets in %u files: OK\n", t.datasets, t.files);
    } else {
        printf("verified %u datasets in %u files: %u FAILED\n", t.datasets, t.files, t.bad);
    }
    return t.bad == 0 ? 0 : 1;
}

/* ---- arguments ------------------------------------------------------------------------ */

/* A positive decimal epoch number, strictly. */
static int parse_epoch(const char *s, uint64_t *e)
{
    uint64_t v = 0;

    if (s[0] == '\0' || strlen(s) > 20) {
        return 0;
    }
    for (const char *p = s; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10) {
            return 0;
        }
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *e = v;
    return v > 0;
}

int main(int argc, char **argv)
{
    const char *cmd = NULL, *root = NULL, *ep_text = NULL;
    uint64_t    epoch = 0;
    int         verbose = 0, all = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            verbose = 1;
        } else if (strcmp(a, "--all") == 0) {
            all = 1;
        } else if (a[0] == '-' && a[1] != '\0') {
            return bad_usage("unknown option", a);
        } else if (cmd == NULL) {
            cmd = a;
        } else if (root == NULL) {
            root = a;
        } else if (ep_text == NULL) {
            ep_text = a;
        } else {
            return bad_usage("too many arguments", a);
        }
    }
    if (cmd == NULL) {
        return bad_usage("needs a command (list, show or verify) and a directory", NULL);
    }
    if (strcmp(cmd, "list") != 0 && strcmp(cmd, "show") != 0 && strcmp(cmd, "verify") != 0) {
        return bad_usage("unknown command", cmd);
    }
    if (root == NULL || root[0] == '\0') {
        return bad_usage("needs a checkpoint directory", NULL);
    }
    if (ep_text != NULL && !parse_epoch(ep_text, &epoch)) {
        return bad_usage("EPOCH must be a positive number", ep_text);
    }
    if (strcmp(cmd, "list") == 0) {
        if (ep_text != NULL || verbose || all) {
            return bad_usage("list takes only a directory", NULL);
        }
        return cmd_list(root);
    }
    if (strcmp(cmd, "show") == 0) {
        if (all) {
            return bad_usage("show takes one epoch (no --all)", NULL);
        }
        return cmd_show(root, epoch, verbose);
    }
    if (verbose || (all && ep_text != NULL)) {
        return bad_usage(verbose ? "verify has no -v" : "verify takes EPOCH or --all, not both", NULL);
    }
    return cmd_verify(root, epoch, all);
}

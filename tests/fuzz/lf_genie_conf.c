/*
 * libFuzzer target: the genie.conf reader shared by genie-launch and the
 * SPANK plugin (genie_config), on the fuzz bytes written to a file.  Each
 * input is loaded twice over the defaults: as a user's file (a `slurm` group
 * refused) and as the admin's (slurm_allowed).  Invariants (an abort is what
 * libFuzzer reports):
 *   - a refusal is a negative status and exactly one reported line, non-empty
 *     and without a newline; an acceptance reports nothing;
 *   - an accepted file leaves every value in its documented range
 *     (genie/config.h) and the string settings valid;
 *   - a file accepted as a user's is accepted as the admin's too;
 *   - with phases and a spares group, genie_launch_config_apply_spares
 *     either refuses with one line or yields a spec within the parser's
 *     limits;
 *   - ASan/UBSan/LSan find nothing (init + load + fini).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "genie/config.h"

static char path[4096];
static int  n_reports;
static char last_report[1024];

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "lf_genie_conf: %s (%s)\n", what, detail);
    abort();
}

static void report(const char *msg)
{
    n_reports++;
    snprintf(last_report, sizeof(last_report), "%s", msg != NULL ? msg : "(null)");
    if (msg == NULL || msg[0] == '\0' || strchr(msg, '\n') != NULL) {
        die("a report that is not one line", last_report);
    }
}

static void cleanup(void)
{
    if (path[0] != '\0') {
        unlink(path);
    }
}

static void init(void)
{
    const char *tmp = getenv("TMPDIR");
    int fd;

    snprintf(path, sizeof(path), "%s/lf_genie_conf.XXXXXX", tmp != NULL ? tmp : "/tmp");
    fd = mkstemp(path);
    if (fd < 0) {
        die("mkstemp", path);
    }
    close(fd);
    atexit(cleanup);
    genie_launch_config_set_report(report);
}

static void check_accepted(const genie_launch_config_t *c)
{
    if (c->backend == NULL || !genie_launch_backend_ok(c->backend)) {
        die("accepted backend out of range", c->backend ? c->backend : "(null)");
    }
    if (c->kv_mode == NULL || !genie_launch_kv_mode_ok(c->kv_mode)) {
        die("accepted kv_mode out of range", c->kv_mode ? c->kv_mode : "(null)");
    }
    if (c->threads < 0 || c->threads > GENIE_LAUNCH_MAX_THREADS) {
        die("accepted threads out of range", "threads");
    }
    if (c->arena_mb < 1 || c->arena_mb > GENIE_LAUNCH_MAX_ARENA_MB) {
        die("accepted arena_mb out of range", "arena_mb");
    }
    for (int i = 0; i < GENIE_LAUNCH_N_WAITS; i++) {
        if (!(c->wait_s[i] >= GENIE_LAUNCH_MIN_WAIT_S && c->wait_s[i] <= GENIE_LAUNCH_MAX_WAIT_S)) {
            die("accepted wait out of range", genie_launch_waits[i].key);
        }
    }
    if (c->memory_mb < 0 || c->memory_mb > GENIE_LAUNCH_MAX_MEMORY_MB) {
        die("accepted memory_mb out of range", "memory_mb");
    }
    if (c->ucx_keepalive_ms < 1 || c->ucx_keepalive_ms > GENIE_LAUNCH_MAX_KEEPALIVE_MS) {
        die("accepted ucx_keepalive_ms out of range", "ucx_keepalive_ms");
    }
    if (c->ucx_tls == NULL || strlen(c->ucx_tls) > GENIE_LAUNCH_MAX_TLS_LEN) {
        die("accepted ucx_tls out of range", "ucx_tls");
    }
    if (c->ckpt.dir != NULL && !genie_launch_ckpt_dir_ok(c->ckpt.dir)) {
        die("accepted checkpoint.dir out of range", c->ckpt.dir);
    }
    if (c->ckpt.keep > GENIE_LAUNCH_MAX_CKPT_KEEP || c->ckpt.every_steps > GENIE_LAUNCH_MAX_CKPT_STEPS ||
        c->ckpt.term_grace_s > GENIE_LAUNCH_MAX_GRACE_S ||
        !(c->ckpt.every_s <= GENIE_LAUNCH_MAX_TIMEOUT_S)) {
        die("accepted checkpoint policy out of range", "checkpoint");
    }
    if (c->spares.n > GENIE_PHASE_SPEC_MAX_ENTRIES || c->slurm.n_phase_spg > GENIE_PHASE_SPEC_MAX_ENTRIES) {
        die("accepted group with too many entries", "spares/slurm");
    }
    if (c->slurm.slices_per_gpu > GENIE_LAUNCH_MAX_SLICES_PER_GPU) {
        die("accepted slurm.slices_per_gpu out of range", "slurm");
    }
    if (c->phases != NULL) {
        genie_phase_spec_t spec;
        char err[512];

        if (genie_phase_spec_parse(c->phases, NULL, &spec, err, sizeof(err)) != GENIE_OK) {
            die("accepted phases the parser refuses", c->phases);
        }
        n_reports = 0;
        if (genie_launch_config_apply_spares(c, c->phases, &spec) == GENIE_OK) {
            if (n_reports != 0) {
                die("apply_spares succeeded but reported", last_report);
            }
            if (spec.n < 1 || spec.n > GENIE_PHASE_SPEC_MAX_ENTRIES) {
                die("spares gave a spec with a bad entry count", c->phases);
            }
            for (uint32_t i = 0; i < spec.n; i++) {
                if (spec.entry[i].slices < 1 || spec.entry[i].slices > GENIE_PHASE_MAX_SLICES ||
                    spec.entry[i].spares >= spec.entry[i].slices) {
                    die("spares gave a phase out of range", c->phases);
                }
            }
        } else if (n_reports != 1) {
            die("apply_spares refused without exactly one line", c->phases);
        }
    }
}

/* 1 if accepted. */
static int load_one(int slurm_allowed)
{
    genie_launch_config_t cfg;
    genie_status_t st;

    if (genie_launch_config_init(&cfg) != GENIE_OK) {
        die("config_init", "defaults");
    }
    cfg.slurm_allowed = slurm_allowed;
    n_reports = 0;
    st = genie_launch_config_load(&cfg, path);
    if (st == GENIE_OK) {
        if (n_reports != 0) {
            die("an accepted file reported", last_report);
        }
        check_accepted(&cfg);
    } else if (st > 0 || n_reports != 1) {
        fprintf(stderr, "lf_genie_conf: status %d with %d reported lines (last '%s')\n", (int)st,
                n_reports, last_report);
        abort();
    }
    genie_launch_config_fini(&cfg);
    return st == GENIE_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f;

    if (path[0] == '\0') {
        init();
    }
    f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
        die("cannot write the input file", path);
    }
    if (load_one(0) && !load_one(1)) {
        die("accepted as a user's file but refused as the admin's", "slurm_allowed");
    }
    return 0;
}

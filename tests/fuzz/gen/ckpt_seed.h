/*
 * One small, valid checkpoint epoch written by the real writers
 * (genie_ckpt_write_rank, genie_ckpt_write_manifest): shared by the corpus
 * generator (make_corpus.c, which copies the files into
 * tests/fuzz/corpus/lf_ckpt_read/) and by lf_ckpt_read, which needs a valid
 * rank file beside the fuzzed manifest.  Rank 0 holds one session: batch 1,
 * 6 tokens (prompt 4), one lineage record, 8 rng bytes, and two f32 KV
 * tensors layer_00/key and layer_00/value of shape (1, 2, 6, 4).
 */
#ifndef GENIE_FUZZ_CKPT_SEED_H
#define GENIE_FUZZ_CKPT_SEED_H

#include <stdio.h>
#include <string.h>

#include "genie/ckpt.h"

#define CKPT_SEED_JOB "job-7.0"

/* Writes ROOT/epoch-<epoch>/rank-0000.h5 and, when with_manifest, its
 * manifest.  GENIE_OK or the writer's status (genie_last_error says why). */
static genie_status_t ckpt_seed_write_epoch(const char *root, uint64_t epoch, int with_manifest)
{
    static int64_t tokens[6] = { 11, 12, 13, 14, 15, 16 };
    static int64_t lineage[GENIE_CKPT_LINEAGE_COLS] = { 1, 3, 0, 6, 40, 0 };
    static uint8_t rng[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    static float   key[48], value[48];
    static const uint64_t fps[1] = { 0x5eedull };
    genie_ckpt_kv_t kv[2];
    genie_ckpt_session_t s;
    genie_ckpt_rank_info_t info = { .epoch = epoch, .rank = 0, .slice = 0 };
    genie_ckpt_file_entry_t file;
    genie_ckpt_manifest_t m;
    char dir[4096], path[4200];
    uint64_t bytes = 0;
    genie_status_t st;

    for (int i = 0; i < 48; i++) {
        key[i] = 0.5f * (float)i;
        value[i] = -0.25f * (float)i;
    }
    memset(kv, 0, sizeof(kv));
    for (int k = 0; k < 2; k++) {
        snprintf(kv[k].name, sizeof(kv[k].name), k == 0 ? "layer_00/key" : "layer_00/value");
        kv[k].dtype = GENIE_F32;
        kv[k].ndim = 4;
        kv[k].shape[0] = 1;
        kv[k].shape[1] = 2;
        kv[k].shape[2] = 6;
        kv[k].shape[3] = 4;
        kv[k].data = k == 0 ? (const void *)key : (const void *)value;
    }
    memset(&s, 0, sizeof(s));
    s.id = 3;
    s.key = 0xabcull;
    s.model_fp = fps[0];
    s.step = 2;
    s.prompt_len = 4;
    s.batch = 1;
    s.n_tokens = 6;
    s.tokens = tokens;
    s.rng = rng;
    s.rng_len = sizeof(rng);
    s.lineage = lineage;
    s.n_lineage = 1;
    s.n_kv = 2;
    s.kv = kv;
    snprintf(info.phase, sizeof(info.phase), "decode");
    snprintf(info.job, sizeof(info.job), CKPT_SEED_JOB);

    if ((st = genie_ckpt_epoch_create(root, epoch)) != GENIE_OK ||
        (st = genie_ckpt_epoch_path(root, epoch, dir, sizeof(dir))) != GENIE_OK) {
        return st;
    }
    snprintf(path, sizeof(path), "%s/rank-0000.h5", dir);
    if ((st = genie_ckpt_write_rank(path, &info, &s, 1, &bytes)) != GENIE_OK || !with_manifest) {
        return st;
    }
    memset(&file, 0, sizeof(file));
    genie_ckpt_rank_file_name(0, file.name, sizeof(file.name));
    file.rank = 0;
    file.bytes = bytes;
    file.sessions = 1;
    memset(&m, 0, sizeof(m));
    m.epoch = epoch;
    snprintf(m.job, sizeof(m.job), CKPT_SEED_JOB);
    snprintf(m.phases, sizeof(m.phases), "prefill:1,decode:1");
    snprintf(m.reason, sizeof(m.reason), "steps");
    m.created = 1700000000.0;
    m.n_model_fps = 1;
    m.model_fps = (uint64_t *)fps;
    m.n_files = 1;
    m.files = &file;
    return genie_ckpt_write_manifest(root, &m);
}

#endif

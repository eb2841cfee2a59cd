/*
 * Task roles and the slice-to-GPU mapping of a --genie-phases step (the rules
 * are in spank_gpus.h).  No Slurm here: the plugin feeds in what
 * slurmstepd knows about the node, and unit tests feed in made-up nodes.
 */
#include <stdio.h>
#include <string.h>

#include "spank_gpus.h"

/* One line into err: the GPU list comes from the environment and may hold
 * anything, so control bytes are replaced. */
static void fail(char *err, size_t errlen, const char *msg)
{
    if (err != NULL && errlen > 0) {
        snprintf(err, errlen, "%s", msg);
        genie_one_line(err);
    }
}

uint32_t genie_spank_tasks_needed(const genie_spank_layout_t *lay)
{
    return 1 + lay->spec->total_slices;
}

uint32_t genie_spank_gpus_needed(const genie_spank_layout_t *lay)
{
    uint32_t n = lay->driver_gpu ? 1 : 0;

    for (uint32_t e = 0; e < lay->spec->n; e++) {
        n += (lay->spec->entry[e].slices + lay->spg[e] - 1) / lay->spg[e];
    }
    return n;
}

genie_status_t genie_spank_task(const genie_spank_layout_t *lay, uint32_t id,
                                genie_spank_task_t *task_p)
{
    genie_spank_task_t t    = { 0, 0, 0, -1 };
    int64_t            base = lay->driver_gpu ? 1 : 0;
    uint32_t           k;

    if (id == 0) {
        t.driver = 1;
        t.slot   = lay->driver_gpu ? 0 : -1;
        *task_p  = t;
        return GENIE_OK;
    }
    k = id - 1;
    for (uint32_t e = 0; e < lay->spec->n; e++) {
        uint32_t n = lay->spec->entry[e].slices;

        if (k < n) {
            t.entry      = e;
            t.phase_rank = k;
            t.slot       = base + k / lay->spg[e];
            *task_p      = t;
            return GENIE_OK;
        }
        k -= n;
        base += (n + lay->spg[e] - 1) / lay->spg[e];
    }
    return GENIE_ERR_INVALID;
}

int genie_spank_count_gpus(const char *gpus)
{
    int         n = 0;
    const char *p = gpus;

    if (gpus == NULL || gpus[0] == '\0') {
        return 0;
    }
    for (;;) {
        size_t len = strcspn(p, ",");

        if (len == 0 || len > GENIE_SPANK_MAX_GPU_NAME) {
            return -1;
        }
        for (size_t i = 0; i < len; i++) {
            char c = p[i];

            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  c == '-' || c == '_' || c == ':')) {
                return -1;
            }
        }
        n++;
        if (p[len] == '\0') {
            return n;
        }
        p += len + 1;
    }
}

/* Entry i (0-based) of the list into buf. */
static void nth_gpu(const char *gpus, int i, char *buf, size_t len)
{
    const char *p = gpus;

    while (i-- > 0) {
        p += strcspn(p, ",") + 1;
    }
    snprintf(buf, len, "%.*s", (int)strcspn(p, ","), p);
}

genie_status_t genie_spank_pick_gpu(const genie_spank_layout_t *lay, const uint32_t *local,
                                    uint32_t n_local, uint32_t me, const char *gpus, char *buf,
                                    size_t len, char *err, size_t errlen)
{
    genie_spank_task_t mine, other;
    int                have = genie_spank_count_gpus(gpus);
    uint32_t           below = 0, distinct = 0;
    char               msg[512];

    if (genie_spank_task(lay, me, &mine) != GENIE_OK) {
        snprintf(msg, sizeof(msg), "genie: task %u is not part of a %u-task Genie step", me,
                 genie_spank_tasks_needed(lay));
        fail(err, errlen, msg);
        return GENIE_ERR_INVALID;
    }
    if (have < 0) {
        snprintf(msg, sizeof(msg), "genie: cannot read this node's GPU list '%.200s' "
                 "(CUDA_VISIBLE_DEVICES/SLURM_STEP_GPUS)", gpus);
        fail(err, errlen, msg);
        return GENIE_ERR_INVALID;
    }
    /* Distinct slots on this node, and how many of them come before mine.
     * O(n_local^2), and n_local is the tasks of one node.  Checked for
     * every task, the driver too, so that a node short of GPUs starts none
     * of them. */
    for (uint32_t i = 0; i < n_local; i++) {
        int seen = 0;

        if (genie_spank_task(lay, local[i], &other) != GENIE_OK || other.slot < 0) {
            continue;
        }
        for (uint32_t j = 0; j < i && !seen; j++) {
            genie_spank_task_t prev;

            seen = genie_spank_task(lay, local[j], &prev) == GENIE_OK && prev.slot == other.slot;
        }
        if (!seen) {
            distinct++;
            below += other.slot < mine.slot;
        }
    }
    if ((uint32_t)have < distinct) {
        snprintf(msg, sizeof(msg), "genie: this node's part of the step has %d GPU%s "
                 "('%.100s') but its Genie tasks need %u; ask for --gpus=%u (for the whole "
                 "step) or more GPUs per node", have, have == 1 ? "" : "s", gpus, distinct,
                 genie_spank_gpus_needed(lay));
        fail(err, errlen, msg);
        return GENIE_ERR_INVALID;
    }
    if (mine.slot < 0) {
        return GENIE_ERR_NOT_FOUND;
    }
    nth_gpu(gpus, (int)below, buf, len);
    return GENIE_OK;
}

/*
 * The submit side of a --genie-phases step (srun: S_CTX_LOCAL; sbatch and
 * salloc: S_CTX_ALLOCATOR).  Everything a user can get wrong is refused here,
 * before a task starts: the spec against the site's limits (init_post_opt,
 * before the allocation exists), then the step's size once srun knows it
 * (local_user_init).  srun also makes the step's secret here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "genie_spank.h"

static int make_secret(void)
{
    unsigned char raw[GENIE_SPANK_SECRET_BYTES];
    char          hex[2 * GENIE_SPANK_SECRET_BYTES + 1];
    size_t        got = 0;

    while (got < sizeof(raw)) {
        ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);

        if (n < 0 && errno != EINTR) {
            genie_spank_err("cannot make the step's secret: getrandom: %s", strerror(errno));
            return -1;
        }
        got += n > 0 ? (size_t)n : 0;
    }
    for (size_t i = 0; i < sizeof(raw); i++) {
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    }
    /* srun copies its environment into the step it launches (and only the
     * step: this srun process ends with it). */
    if (setenv(GENIE_SPANK_SECRET_ENV, hex, 1) != 0) {
        genie_spank_err("cannot pass the step's secret on: %s", strerror(errno));
        return -1;
    }
    return 0;
}

int genie_spank_srun_post_opt(spank_t sp)
{
    const char *restore = genie_spank.opt[GENIE_SPANK_OPT_RESTORE];
    struct stat st;

    (void)sp;
    if (genie_spank_settings_load() != 0) {
        return -1;
    }
    if (restore != NULL) {
        const char *why = stat(restore, &st) != 0 ? strerror(errno)
                          : !S_ISDIR(st.st_mode)  ? "not a directory"
                                                  : NULL;
        if (why != NULL) {
            genie_spank_err("--genie-restore=%s: %s; give the checkpoint directory of the job "
                            "to resume", restore, why);
            return -1;
        }
    }
    return spank_context() == S_CTX_LOCAL ? make_secret() : 0;
}

int genie_spank_srun_local_user_init(spank_t sp)
{
    const genie_spank_layout_t *lay = &genie_spank.layout;
    uint32_t                    tasks = 0, need, gpus;

    if (!genie_spank.loaded && genie_spank_settings_load() != 0) {
        return -1;
    }
    need = genie_spank_tasks_needed(lay);
    gpus = genie_spank_gpus_needed(lay);
    if (spank_get_item(sp, S_JOB_TOTAL_TASK_COUNT, &tasks) != ESPANK_SUCCESS) {
        genie_spank_err("cannot read the step's task count from Slurm");
        return -1;
    }
    if (tasks != need) {
        genie_spank_err("--genie-phases=%s needs %u tasks (1 driver + %u executors) and %u GPU%s, "
                        "but this step has %u task%s: add -n %u --gpus=%u (sites that install "
                        "Genie's cli_filter.lua size the step for you)", genie_spank.phases, need,
                        need - 1, gpus, gpus == 1 ? "" : "s", tasks, tasks == 1 ? "" : "s", need,
                        gpus);
        return -1;
    }
    return 0;
}

/*
 * Fuzz loop for genie_spank.so's GPU mapping (spank-plugin/spank_gpus.c),
 * whose GPU list comes from the step's environment (CUDA_VISIBLE_DEVICES /
 * SLURM_STEP_GPUS) on each node.  Each iteration takes a random spec (1..4
 * phases, 1..9 slices), random slices per GPU and driver GPU, a random split
 * of the tasks over nodes, and a GPU list that is either well formed with a
 * random length or random bytes, NUL-terminated in a buffer of exactly its
 * size so that ASan sees any overread.  Invariants: a malformed list is
 * refused with one "genie: " line and the output left alone; with enough
 * GPUs every executor gets one name from the list, tasks of the same slot
 * the same name and different slots different names; with too few, every
 * task of the node is refused.  Bounded and deterministic (seeded xorshift):
 * fuzz_spank_gpus [iterations] [seed].
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spank_gpus.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void die(const char *what, const char *gpus)
{
    fprintf(stderr, "fuzz_spank_gpus: %s (gpus '%s')\n", what, gpus != NULL ? gpus : "");
    abort();
}

/* Is name one of the list's entries? */
static int listed(const char *list, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = list; *p != '\0'; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ',')) {
        if (strcspn(p, ",") == n && strncmp(p, name, n) == 0) {
            return 1;
        }
    }
    return 0;
}

static void one(void)
{
    static const char *names[] = { "prefill", "decode", "vision", "embed" };
    genie_phase_spec_t   spec;
    genie_spank_layout_t lay;
    char                 text[128] = "", *gpus;
    uint32_t             n_phases = 1 + (uint32_t)(next() % 4), total, first, n_local;
    uint32_t             ids[64];
    size_t               glen;
    int                  malformed = (next() % 4) == 0;

    for (uint32_t i = 0; i < n_phases; i++) {
        char e[32];

        snprintf(e, sizeof(e), "%s%s:%u", i ? "," : "", names[i], 1 + (unsigned)(next() % 9));
        strcat(text, e);
    }
    if (genie_phase_spec_parse(text, NULL, &spec, NULL, 0) != GENIE_OK) {
        die("spec refused", text);
    }
    memset(&lay, 0, sizeof(lay));
    lay.spec       = &spec;
    lay.driver_gpu = (int)(next() % 2);
    for (uint32_t e = 0; e < spec.n; e++) {
        lay.spg[e] = 1 + (uint32_t)(next() % 3);
    }
    total   = genie_spank_tasks_needed(&lay);
    first   = (uint32_t)(next() % total);
    n_local = 1 + (uint32_t)(next() % (total - first));
    for (uint32_t i = 0; i < n_local; i++) {
        ids[i] = first + i;
    }
    /* the GPU list */
    if (malformed) {
        glen = (size_t)(next() % 24);
        gpus = malloc(glen + 1);
        for (size_t i = 0; i < glen; i++) {
            gpus[i] = (char)(1 + next() % 255);
        }
    } else {
        uint32_t n = (uint32_t)(next() % 12);
        char     tmp[256] = "";

        for (uint32_t i = 0; i < n; i++) {
            char e[16];

            snprintf(e, sizeof(e), "%s%u", i ? "," : "", (unsigned)(i * 3 + 1));
            strcat(tmp, e);
        }
        glen = strlen(tmp);
        gpus = malloc(glen + 1);
        memcpy(gpus, tmp, glen);
    }
    gpus[glen] = '\0';

    {
        int      have = genie_spank_count_gpus(gpus);
        char     got[64][GENIE_SPANK_MAX_GPU_NAME + 1];
        int      rc[64], refused = 0;

        for (uint32_t i = 0; i < n_local; i++) {
            char err[512] = "";

            strcpy(got[i], "-");
            rc[i] = genie_spank_pick_gpu(&lay, ids, n_local, ids[i], gpus, got[i],
                                         sizeof(got[i]), err, sizeof(err));
            if (rc[i] == GENIE_ERR_INVALID) {
                refused++;
                if (strncmp(err, "genie: ", 7) != 0 || strchr(err, '\n') != NULL) {
                    die("refusal without one genie: line", gpus);
                }
                if (strcmp(got[i], "-") != 0) {
                    die("output written on refusal", gpus);
                }
            } else if (rc[i] == GENIE_OK) {
                if (have <= 0 || !listed(gpus, got[i])) {
                    die("a GPU that is not in the list", gpus);
                }
            } else if (rc[i] != GENIE_ERR_NOT_FOUND || have < 0) {
                die("unexpected status", gpus);
            }
        }
        if (have < 0 && refused != (int)n_local) {
            die("a malformed list was accepted", gpus);
        }
        if (refused != 0 && refused != (int)n_local) {
            die("some tasks of a node refused, others not", gpus);
        }
        /* same slot <-> same GPU */
        for (uint32_t i = 0; i < n_local && refused == 0; i++) {
            for (uint32_t j = 0; j < i; j++) {
                genie_spank_task_t a, b;

                if (rc[i] != GENIE_OK || rc[j] != GENIE_OK) {
                    continue;
                }
                genie_spank_task(&lay, ids[i], &a);
                genie_spank_task(&lay, ids[j], &b);
                if ((a.slot == b.slot) != (strcmp(got[i], got[j]) == 0)) {
                    die("slots and GPUs disagree", gpus);
                }
            }
        }
    }
    free(gpus);
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 200000;

    if (argc > 2) {
        rng = strtoull(argv[2], NULL, 0) | 1;
    }
    for (long i = 0; i < iters; i++) {
        one();
    }
    printf("fuzz_spank_gpus: %ld iterations, all invariants held\n", iters);
    return 0;
}

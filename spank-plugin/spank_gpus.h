/*
 * Which task of a --genie-phases step is what, and which GPU it gets: pure
 * functions of the phase spec, the slices-per-GPU policy and the step's GPUs
 * on one node, kept apart from Slurm so that unit tests can drive them.
 *
 * Task layout (the contract with genie-executor and the driver): task 0 is
 * the driver, tasks 1..N are the executors, one per slice, in spec order
 * ("prefill:2,decode:1": tasks 1, 2 are prefill ranks 0, 1; task 3 is decode
 * rank 0) -- the same as genie-launch's MPI ranks.
 *
 * GPU slots: slice r of phase entry e sits in slot base(e) + r / spg(e),
 * where spg(e) is how many slices of that phase share one GPU and base(e)
 * counts the slots of the entries before it; the driver has slot 0 of its own
 * when driver_gpu is set.  Phases never share a GPU.  On each node the
 * distinct slots of that node's tasks, in increasing order, take the node's
 * GPUs in the order the step lists them (CUDA_VISIBLE_DEVICES), so a step
 * spread over several nodes uses each node's own GPUs.
 */
#ifndef GENIE_SPANK_GPUS_H
#define GENIE_SPANK_GPUS_H

#include <stddef.h>
#include <stdint.h>

#include "genie/phase_spec.h"
#include "genie/status.h"

#define GENIE_SPANK_MAX_GPU_NAME 63    /* one entry of CUDA_VISIBLE_DEVICES */

typedef struct genie_spank_layout {
    const genie_phase_spec_t *spec;
    uint32_t                  spg[GENIE_PHASE_SPEC_MAX_ENTRIES]; /* (spec->n) slices per GPU, >= 1 */
    int                       driver_gpu;
} genie_spank_layout_t;

typedef struct genie_spank_task {
    int      driver;       /* 1 for task 0                                  */
    uint32_t entry;        /* executors: index into spec->entry             */
    uint32_t phase_rank;   /* executors: 0 .. spec->entry[entry].slices - 1 */
    int64_t  slot;         /* GPU slot, -1: none (the driver by default)    */
} genie_spank_task_t;

/* Tasks in the step: 1 + the sum of the slices. */
uint32_t genie_spank_tasks_needed(const genie_spank_layout_t *lay);

/* GPUs the step needs when all its tasks share one node. */
uint32_t genie_spank_gpus_needed(const genie_spank_layout_t *lay);

/* What global task `id` is; GENIE_ERR_INVALID if the step has no such task. */
genie_status_t genie_spank_task(const genie_spank_layout_t *lay, uint32_t id,
                                genie_spank_task_t *task_p);

/* The GPU of task `me` among this node's tasks `local` (n_local global ids,
 * me among them) given the node's GPUs `gpus` ("0,1,2").  Writes the one GPU
 * name into buf (size len); GENIE_ERR_NOT_FOUND when the task has no slot
 * (buf untouched).  GENIE_ERR_INVALID, for every task of the node, when the
 * node has fewer GPUs than its tasks need.  On error writes one "genie: ..." line into err. */
genie_status_t genie_spank_pick_gpu(const genie_spank_layout_t *lay, const uint32_t *local,
                                    uint32_t n_local, uint32_t me, const char *gpus, char *buf,
                                    size_t len, char *err, size_t errlen);

/* Entries of a CUDA_VISIBLE_DEVICES-style list; -1 if malformed. */
int genie_spank_count_gpus(const char *gpus);

#endif

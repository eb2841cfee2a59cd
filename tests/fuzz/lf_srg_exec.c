/*
 * libFuzzer target: the SRG decoder, then execution of what decodes, as an
 * executor does with a graph from the network.  The input is SRG bytes
 * (docs/srg-format.md).  When they decode, a fresh executor on the CPU
 * backend under a 64 MiB memory budget (genie_exec_set_memory_budget) gets
 * every weight and resident object the graph names, and host inputs for its
 * input slots, all filled with small deterministic values (integers 0..2, so
 * that indices are mostly in range and index paths are reached); then
 * genie_exec_run.
 *
 * Invariants (an abort is what libFuzzer reports):
 *   - a refused decode or run leaves a non-empty genie_last_error() line;
 *   - a refused decode leaves the output pointer alone;
 *   - a failed run keeps no object (residents as before the run);
 *   - bytes in use never exceed the budget, before or after a run;
 *   - ASan/UBSan: no overflow, overread, leak or undefined behaviour.
 * Sources larger than 8 MiB, or input slots >= 64, are not filled (the
 * graph then fails to bind, which is a refusal like any other).
 * GENIE_LF_VERBOSE=1 prints each run's status and message (to check that a
 * seed runs to the end).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "genie/backend.h"
#include "genie/exec.h"
#include "genie/srg.h"

#define BUDGET      (UINT64_C(64) << 20)
#define MAX_SOURCE  (UINT64_C(8) << 20)
#define MAX_SLOTS   64u

static genie_backend_t *backend;

static void die(const char *what)
{
    fprintf(stderr, "lf_srg_exec: %s (last error: '%s')\n", what, genie_last_error());
    abort();
}

static void fill(genie_tensor_t *t)
{
    int64_t n = genie_tensor_numel(t);
    void *d = genie_tensor_data(t);

    for (int64_t i = 0; i < n; i++) {
        int v = (int)(i % 3);
        switch (t->dtype) {
        case GENIE_F32:  ((float *)d)[i] = 0.25f * (float)(v - 1); break;
        case GENIE_F16:  ((uint16_t *)d)[i] = v == 0 ? 0xb400 : v == 1 ? 0 : 0x3400; break;
        case GENIE_BF16: ((uint16_t *)d)[i] = v == 0 ? 0xbe80 : v == 1 ? 0 : 0x3e80; break;
        case GENIE_I64:  ((int64_t *)d)[i] = v; break;
        case GENIE_I32:  ((int32_t *)d)[i] = v; break;
        default:         ((uint8_t *)d)[i] = (uint8_t)(v & 1); break;
        }
    }
}

/* A filled host tensor of v's dtype and shape, or 0 when it is too large. */
static int make_source(const genie_srg_value_t *v, genie_tensor_t *t)
{
    if (genie_srg_value_nbytes(v) > MAX_SOURCE) {
        return 0;
    }
    if (genie_tensor_alloc(v->dtype, v->ndim, v->shape, t) != GENIE_OK) {
        die("host tensor of a decoded value refused");
    }
    fill(t);
    return 1;
}

static void check_budget(genie_exec_t *exec, const char *when)
{
    genie_exec_stats_t st;

    genie_exec_get_stats(exec, &st);
    if (st.memory_budget_bytes != BUDGET || st.memory_in_use_bytes > BUDGET) {
        fprintf(stderr, "lf_srg_exec: %s: %llu bytes in use, budget %llu\n", when,
                (unsigned long long)st.memory_in_use_bytes,
                (unsigned long long)st.memory_budget_bytes);
        abort();
    }
}

static void run_graph(const genie_srg_t *g)
{
    genie_tensor_t inputs[MAX_SLOTS], *outs = NULL;
    genie_exec_stats_t before, after;
    uint32_t n_in = 0, n_out = 0, nv = genie_srg_n_values(g);
    genie_exec_t *exec;
    genie_status_t st;
    int runnable = 1;

    memset(inputs, 0, sizeof(inputs));
    if (genie_exec_create(backend, &exec) != GENIE_OK ||
        genie_exec_set_memory_budget(exec, BUDGET) != GENIE_OK) {
        die("executor not created");
    }
    for (uint32_t id = 0; id < nv; id++) {
        const genie_srg_value_t *v = genie_srg_value(g, id);
        genie_tensor_t t;

        switch (v->kind) {
        case GENIE_VAL_INPUT:
            if (v->ref >= MAX_SLOTS) {
                runnable = 0;
            } else if (inputs[v->ref].storage == NULL) {
                if (!make_source(v, &inputs[v->ref])) {
                    runnable = 0;
                } else if (v->ref + 1 > n_in) {
                    n_in = (uint32_t)v->ref + 1;
                }
            }
            break;
        case GENIE_VAL_WEIGHT:
            if (make_source(v, &t)) {
                /* May be refused (budget, a second fingerprint of another
                 * shape is a no-op): the run then says what is missing. */
                genie_exec_register_weight(exec, v->ref, v->dtype, v->ndim, v->shape,
                                           genie_tensor_data(&t), v->name);
                genie_tensor_release(&t);
            }
            break;
        case GENIE_VAL_RESIDENT:
            if (make_source(v, &t) && genie_exec_put_object(exec, v->ref, 0, &t) != GENIE_OK) {
                genie_tensor_release(&t);   /* refused: still ours */
            }
            break;
        default:
            break;
        }
    }
    /* Slots no value reads stay empty; one below n_in that is empty but read
     * cannot occur (each read slot was filled or the graph is not run). */
    for (uint32_t s = 0; s < n_in && runnable; s++) {
        if (inputs[s].storage == NULL) {
            /* A gap: give it a scalar so the array holds no empty tensor. */
            const int64_t none[1] = { 0 };
            if (genie_tensor_alloc(GENIE_F32, 0, none, &inputs[s]) != GENIE_OK) {
                die("scalar input refused");
            }
            fill(&inputs[s]);
        }
    }
    check_budget(exec, "before the run");
    if (runnable) {
        genie_exec_get_stats(exec, &before);
        genie_clear_error();
        st = genie_exec_run(exec, g, inputs, n_in, &outs, &n_out);
        if (getenv("GENIE_LF_VERBOSE") != NULL) {   /* to check what a seed reaches */
            fprintf(stderr, "lf_srg_exec: run: %d %s\n", (int)st, genie_last_error());
        }
        genie_exec_get_stats(exec, &after);
        if (st == GENIE_OK) {
            for (uint32_t i = 0; i < n_out; i++) {
                genie_tensor_release(&outs[i]);
            }
            free(outs);
        } else {
            if (genie_last_error()[0] == '\0') {
                die("run refused without a message");
            }
            if (after.residents != before.residents ||
                after.resident_bytes != before.resident_bytes) {
                die("a failed run changed the resident objects");
            }
        }
        check_budget(exec, "after the run");
    }
    for (uint32_t s = 0; s < MAX_SLOTS; s++) {
        genie_tensor_release(&inputs[s]);
    }
    genie_exec_destroy(exec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    genie_srg_t *g = (genie_srg_t *)&backend;   /* must stay untouched on refusal */

    if (backend == NULL && genie_backend_cpu_create(1, &backend) != GENIE_OK) {
        die("CPU backend not created");
    }
    genie_clear_error();
    if (genie_srg_decode(data, size, &g) != GENIE_OK) {
        if (g != (genie_srg_t *)&backend) {
            die("refused decode wrote the output pointer");
        }
        if (genie_last_error()[0] == '\0') {
            die("decode refused without a message");
        }
        return 0;
    }
    run_graph(g);
    genie_srg_destroy(g);
    return 0;
}

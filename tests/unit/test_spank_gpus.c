/*
 * genie_spank.so's task roles and slice-to-GPU mapping (spank-plugin/
 * spank_gpus.c), driven with made-up steps and nodes: one node, several
 * slices per GPU, a driver GPU, multi-node splits, nodes short of GPUs and
 * malformed GPU lists.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "genie/phase_spec.h"
#include "spank_gpus.h"

static genie_phase_spec_t spec;

static genie_spank_layout_t layout(const char *text, uint32_t spg_prefill, uint32_t spg_decode,
                                   int driver_gpu)
{
    genie_spank_layout_t lay;

    assert_int_equal(genie_phase_spec_parse(text, NULL, &spec, NULL, 0), GENIE_OK);
    memset(&lay, 0, sizeof(lay));
    lay.spec       = &spec;
    lay.driver_gpu = driver_gpu;
    for (uint32_t e = 0; e < spec.n; e++) {
        lay.spg[e] = strcmp(spec.entry[e].name, "decode") == 0 ? spg_decode : spg_prefill;
    }
    return lay;
}

/* GPU of task `me` on a node holding tasks [first, first + n) */
static genie_status_t gpu_of(const genie_spank_layout_t *lay, uint32_t first, uint32_t n,
                             uint32_t me, const char *gpus, char *out)
{
    uint32_t ids[64];
    char     err[512] = "";
    genie_status_t rc;

    for (uint32_t i = 0; i < n; i++) {
        ids[i] = first + i;
    }
    strcpy(out, "untouched");
    rc = genie_spank_pick_gpu(lay, ids, n, me, gpus, out, 64, err, sizeof(err));
    if (rc == GENIE_ERR_INVALID) {
        assert_true(strncmp(err, "genie: ", 7) == 0);
        assert_null(strchr(err, '\n'));
    }
    return rc;
}

static void test_roles(void **state)
{
    genie_spank_layout_t lay = layout("prefill:2,decode:1", 1, 1, 0);
    genie_spank_task_t   t;

    (void)state;
    assert_int_equal(genie_spank_tasks_needed(&lay), 4);
    assert_int_equal(genie_spank_gpus_needed(&lay), 3);
    assert_int_equal(genie_spank_task(&lay, 0, &t), GENIE_OK);
    assert_true(t.driver);
    assert_int_equal(t.slot, -1);
    assert_int_equal(genie_spank_task(&lay, 2, &t), GENIE_OK);
    assert_false(t.driver);
    assert_string_equal(spec.entry[t.entry].name, "prefill");
    assert_int_equal(t.phase_rank, 1);
    assert_int_equal(genie_spank_task(&lay, 3, &t), GENIE_OK);
    assert_string_equal(spec.entry[t.entry].name, "decode");
    assert_int_equal(t.phase_rank, 0);
    assert_int_equal(t.slot, 2);
    assert_int_equal(genie_spank_task(&lay, 4, &t), GENIE_ERR_INVALID);
}

static void test_one_node(void **state)
{
    genie_spank_layout_t lay = layout("prefill:2,decode:1", 1, 1, 0);
    char                 g[64];

    (void)state;
    assert_int_equal(gpu_of(&lay, 0, 4, 0, "0,1,2", g), GENIE_ERR_NOT_FOUND);
    assert_string_equal(g, "untouched");
    assert_int_equal(gpu_of(&lay, 0, 4, 1, "0,1,2", g), GENIE_OK);
    assert_string_equal(g, "0");
    assert_int_equal(gpu_of(&lay, 0, 4, 2, "0,1,2", g), GENIE_OK);
    assert_string_equal(g, "1");
    assert_int_equal(gpu_of(&lay, 0, 4, 3, "0,1,2", g), GENIE_OK);
    assert_string_equal(g, "2");
    /* the node's own numbering, whatever it is */
    assert_int_equal(gpu_of(&lay, 0, 4, 3, "5,7,11", g), GENIE_OK);
    assert_string_equal(g, "11");
    /* more GPUs than needed: the first ones */
    assert_int_equal(gpu_of(&lay, 0, 4, 2, "4,5,6,7", g), GENIE_OK);
    assert_string_equal(g, "5");
}

static void test_shared_gpus(void **state)
{
    /* 4 decode slices, 2 per GPU: decode ranks 0,1 on one GPU, 2,3 on the next */
    genie_spank_layout_t lay = layout("prefill:1,decode:4", 1, 2, 0);
    char                 g[64];
    const char          *want[] = { NULL, "0", "1", "1", "2", "2" };

    (void)state;
    assert_int_equal(genie_spank_gpus_needed(&lay), 3);
    for (uint32_t id = 1; id <= 5; id++) {
        assert_int_equal(gpu_of(&lay, 0, 6, id, "0,1,2", g), GENIE_OK);
        assert_string_equal(g, want[id]);
    }
    /* odd count rounds up: decode:3 at 2 per GPU needs 2 */
    lay = layout("decode:3", 1, 2, 0);
    assert_int_equal(genie_spank_gpus_needed(&lay), 2);
}

static void test_driver_gpu(void **state)
{
    genie_spank_layout_t lay = layout("prefill:1,decode:1", 1, 1, 1);
    char                 g[64];

    (void)state;
    assert_int_equal(genie_spank_gpus_needed(&lay), 3);
    assert_int_equal(gpu_of(&lay, 0, 3, 0, "0,1,2", g), GENIE_OK);
    assert_string_equal(g, "0");
    assert_int_equal(gpu_of(&lay, 0, 3, 2, "0,1,2", g), GENIE_OK);
    assert_string_equal(g, "2");
}

static void test_multi_node(void **state)
{
    /* prefill:4,decode:2 over two nodes: tasks 0-3 on node A, 4-6 on node B;
     * each node numbers its own GPUs from 0 */
    genie_spank_layout_t lay = layout("prefill:4,decode:2", 1, 1, 0);
    char                 g[64];

    (void)state;
    assert_int_equal(gpu_of(&lay, 0, 4, 1, "0,1,2", g), GENIE_OK);
    assert_string_equal(g, "0");
    assert_int_equal(gpu_of(&lay, 0, 4, 3, "0,1,2", g), GENIE_OK);
    assert_string_equal(g, "2");
    assert_int_equal(gpu_of(&lay, 4, 3, 4, "0,1,2", g), GENIE_OK);
    assert_string_equal(g, "0");
    assert_int_equal(gpu_of(&lay, 4, 3, 6, "0,1,2", g), GENIE_OK);
    assert_string_equal(g, "2");
    /* node B with only two GPUs for its three slices: refused */
    assert_int_equal(gpu_of(&lay, 4, 3, 5, "0,1", g), GENIE_ERR_INVALID);
}

static void test_short_and_bad(void **state)
{
    genie_spank_layout_t lay = layout("prefill:2,decode:1", 1, 1, 0);
    char                 g[64];

    (void)state;
    /* short of GPUs: every task of the node is refused, the driver too */
    for (uint32_t id = 0; id < 4; id++) {
        assert_int_equal(gpu_of(&lay, 0, 4, id, "0", g), GENIE_ERR_INVALID);
    }
    assert_int_equal(genie_spank_count_gpus(""), 0);
    assert_int_equal(genie_spank_count_gpus(NULL), 0);
    assert_int_equal(genie_spank_count_gpus("0,1,2"), 3);
    assert_int_equal(genie_spank_count_gpus("GPU-8a1b-22"), 1);
    assert_int_equal(genie_spank_count_gpus("0,,1"), -1);
    assert_int_equal(genie_spank_count_gpus("0,1,"), -1);
    assert_int_equal(genie_spank_count_gpus(",0"), -1);
    assert_int_equal(genie_spank_count_gpus("0;rm -rf"), -1);
    assert_int_equal(gpu_of(&lay, 0, 4, 1, "0,,1", g), GENIE_ERR_INVALID);
    /* a task the step does not have */
    assert_int_equal(gpu_of(&lay, 0, 4, 9, "0,1,2", g), GENIE_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_one_node),
        cmocka_unit_test(test_shared_gpus),
        cmocka_unit_test(test_driver_gpu),
        cmocka_unit_test(test_multi_node),
        cmocka_unit_test(test_short_and_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

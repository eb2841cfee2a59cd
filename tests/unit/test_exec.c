/*
 * The executor on the CPU backend, driven through encoded SRG bytes as every
 * real request is: weights registered once by fingerprint, results kept as
 * resident objects and read back by id, a failed request leaving the executor
 * exactly as it was, clear errors for a missing object, a mismatched input
 * and an op the backend lacks, and sessions that own objects and free them
 * together.
 *
 * Shapes: X (2,3) input, W (3,4) weight, Y = X @ W (2,4).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "genie/exec.h"

#define FP_W   0x5eedf00dull
#define KEEP_Y 100u

static genie_backend_t *be;
static genie_exec_t    *ex;

static const float x_data[6]  = { 1, -2, 3, 0.5f, 4, -1 };                /* (2,3) */
static const float w_data[12] = { 1, 0, -1, 2, 0.5f, 1, 1, -1, 2, -2, 0, 1 }; /* (3,4) */

static void ref_y(float y[8])
{
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 4; j++) {
            y[i * 4 + j] = 0;
            for (int k = 0; k < 3; k++) {
                y[i * 4 + j] += x_data[i * 3 + k] * w_data[k * 4 + j];
            }
        }
    }
}

static int setup(void **state)
{
    (void)state;
    if (genie_backend_cpu_create(1, &be) != GENIE_OK || genie_exec_create(be, &ex) != GENIE_OK) {
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    genie_exec_destroy(ex);
    be->iface->destroy(be);
    return 0;
}

/* Encode then decode, so the run sees exactly what a remote executor would. */
static genie_srg_t *roundtrip(genie_srg_t *g)
{
    uint8_t *buf;
    size_t len;
    genie_srg_t *d = NULL;

    assert_int_equal(genie_srg_encode(g, &buf, &len), GENIE_OK);
    assert_int_equal(genie_srg_decode(buf, len, &d), GENIE_OK);
    free(buf);
    genie_srg_destroy(g);
    return d;
}

static genie_tensor_t host_x(void)
{
    static genie_storage_t s = { .data = (void *)x_data, .nbytes = sizeof(x_data), .refcount = 1 };
    genie_tensor_t t = { .dtype = GENIE_F32, .ndim = 2, .shape = { 2, 3 }, .storage = &s };

    genie_tensor_set_contiguous_strides(&t);
    return t;
}

/* Y = mm(input X, weight W); marked output and kept under keep_id. */
static genie_srg_t *graph_mm(uint64_t keep_id, const int64_t *x_shape)
{
    genie_srg_t *g;
    uint32_t in[2], y;
    const int64_t w_shape[2] = { 3, 4 }, y_shape[2] = { 2, 4 };
    const int64_t *shapes[1] = { y_shape };
    genie_dtype_t dt = GENIE_F32;
    int nd = 2;

    assert_int_equal(genie_srg_create(&g), GENIE_OK);
    assert_int_equal(genie_srg_add_source(g, GENIE_VAL_INPUT, GENIE_F32, 2, x_shape,
                                          GENIE_RES_EPHEMERAL_ACTIVATION, 0, "x", &in[0]), GENIE_OK);
    assert_int_equal(genie_srg_add_source(g, GENIE_VAL_WEIGHT, GENIE_F32, 2, w_shape,
                                          GENIE_RES_PERSISTENT_WEIGHT, FP_W, "w", &in[1]), GENIE_OK);
    assert_int_equal(genie_srg_add_node(g, GENIE_OP_MM, in, 2, NULL, 0, 1, &dt, &nd, shapes,
                                        GENIE_PHASE_FORWARD, GENIE_MOD_NONE,
                                        GENIE_RES_EPHEMERAL_ACTIVATION, "fc", &y), GENIE_OK);
    assert_int_equal(genie_srg_mark_output(g, y, 1, keep_id), GENIE_OK);
    return roundtrip(g);
}

/* relu(resident object `id`) as output. */
static genie_srg_t *graph_relu_of(uint64_t id)
{
    genie_srg_t *g;
    uint32_t src, y;
    const int64_t shape[2] = { 2, 4 };
    const int64_t *shapes[1] = { shape };
    genie_dtype_t dt = GENIE_F32;
    int nd = 2;

    assert_int_equal(genie_srg_create(&g), GENIE_OK);
    assert_int_equal(genie_srg_add_source(g, GENIE_VAL_RESIDENT, GENIE_F32, 2, shape,
                                          GENIE_RES_STATEFUL_KV_CACHE, id, "", &src), GENIE_OK);
    assert_int_equal(genie_srg_add_node(g, GENIE_OP_RELU, &src, 1, NULL, 0, 1, &dt, &nd, shapes,
                                        GENIE_PHASE_LLM_DECODE, GENIE_MOD_TEXT,
                                        GENIE_RES_EPHEMERAL_ACTIVATION, "act", &y), GENIE_OK);
    assert_int_equal(genie_srg_mark_output(g, y, 1, 0), GENIE_OK);
    return roundtrip(g);
}

static void release_outs(genie_tensor_t *outs, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        genie_tensor_release(&outs[i]);
    }
    free(outs);
}

static void test_weights_and_residents(void **state)
{
    const int64_t w_shape[2] = { 3, 4 }, x_shape[2] = { 2, 3 };
    genie_tensor_t x = host_x(), *outs;
    genie_exec_stats_t st;
    uint32_t n;
    float want[8];
    genie_srg_t *g;

    (void)state;
    ref_y(want);
    assert_int_equal(genie_exec_register_weight(ex, FP_W, GENIE_F32, 2, w_shape, w_data, "w"), GENIE_OK);
    /* A second registration of the same fingerprint is a no-op. */
    assert_int_equal(genie_exec_register_weight(ex, FP_W, GENIE_F32, 2, w_shape, w_data, "w"), GENIE_OK);
    genie_exec_get_stats(ex, &st);
    assert_int_equal(st.weights, 1);
    assert_int_equal(st.weight_bytes, sizeof(w_data));

    g = graph_mm(KEEP_Y, x_shape);
    assert_int_equal(genie_exec_run(ex, g, &x, 1, &outs, &n), GENIE_OK);
    genie_srg_destroy(g);
    assert_int_equal(n, 1);
    assert_int_equal(outs[0].ndim, 2);
    for (int i = 0; i < 8; i++) {
        assert_float_equal(((float *)genie_tensor_data(&outs[0]))[i], want[i], 1e-5);
    }
    release_outs(outs, n);

    /* The kept result is read back by object id by a later request. */
    g = graph_relu_of(KEEP_Y);
    assert_int_equal(genie_exec_run(ex, g, NULL, 0, &outs, &n), GENIE_OK);
    genie_srg_destroy(g);
    for (int i = 0; i < 8; i++) {
        float r = want[i] > 0 ? want[i] : 0;
        assert_float_equal(((float *)genie_tensor_data(&outs[0]))[i], r, 1e-5);
    }
    release_outs(outs, n);
    genie_exec_get_stats(ex, &st);
    assert_int_equal(st.residents, 1);
    assert_int_equal(st.resident_bytes, 8 * sizeof(float));
    assert_int_equal(st.requests, 2);
    assert_true(st.phase_s[GENIE_PHASE_LLM_DECODE] >= 0.0);
}

static void test_failures_leave_state(void **state)
{
    const int64_t bad_shape[2] = { 3, 3 }, x_shape[2] = { 2, 3 };
    genie_tensor_t x = host_x(), *outs = NULL;
    genie_exec_stats_t before, after;
    genie_backend_i crippled;
    genie_backend_t crippled_be;
    genie_exec_t *ex2;
    uint32_t n = 0;
    genie_srg_t *g;

    (void)state;
    genie_exec_get_stats(ex, &before);

    /* Unknown object id. */
    genie_clear_error();
    g = graph_relu_of(999);
    assert_int_equal(genie_exec_run(ex, g, NULL, 0, &outs, &n), GENIE_ERR_NOT_FOUND);
    genie_srg_destroy(g);
    assert_non_null(strstr(genie_last_error(), "not on this executor"));

    /* Input of the wrong shape: the graph says (3,3), the caller sends (2,3). */
    genie_clear_error();
    g = graph_mm(555, bad_shape);
    assert_int_not_equal(genie_exec_run(ex, g, &x, 1, &outs, &n), GENIE_OK);
    genie_srg_destroy(g);
    assert_non_null(strstr(genie_last_error(), "input slot 0"));

    /* Missing input slot. */
    genie_clear_error();
    g = graph_mm(556, x_shape);
    assert_int_equal(genie_exec_run(ex, g, NULL, 0, &outs, &n), GENIE_ERR_INVALID);
    genie_srg_destroy(g);

    genie_exec_get_stats(ex, &after);
    assert_int_equal(after.residents, before.residents);      /* 555/556 not kept */
    assert_int_equal(after.requests, before.requests);

    /* A backend without the op: the error names op and module path. */
    crippled = *be->iface;
    crippled.ops[GENIE_OP_MM] = NULL;
    crippled_be = *be;
    crippled_be.iface = &crippled;
    assert_int_equal(genie_exec_create(&crippled_be, &ex2), GENIE_OK);
    {
        const int64_t w_shape[2] = { 3, 4 };
        assert_int_equal(genie_exec_register_weight(ex2, FP_W, GENIE_F32, 2, w_shape, w_data, "w"),
                         GENIE_OK);
    }
    genie_clear_error();
    g = graph_mm(0, x_shape);
    assert_int_equal(genie_exec_run(ex2, g, &x, 1, &outs, &n), GENIE_ERR_UNSUPPORTED);
    genie_srg_destroy(g);
    assert_non_null(strstr(genie_last_error(), "mm.default"));
    assert_non_null(strstr(genie_last_error(), "module 'fc'"));
    genie_exec_destroy(ex2);
}

static void test_sessions(void **state)
{
    const int64_t x_shape[2] = { 2, 3 };
    genie_tensor_t x = host_x(), *outs;
    genie_exec_stats_t st;
    uint64_t ids[2] = { 201, 202 }, bad[2] = { 201, 9999 };
    uint32_t n, objs;
    uint64_t bytes;
    genie_srg_t *g;

    (void)state;
    for (int i = 0; i < 2; i++) {
        g = graph_mm(ids[i], x_shape);
        assert_int_equal(genie_exec_run(ex, g, &x, 1, &outs, &n), GENIE_OK);
        genie_srg_destroy(g);
        release_outs(outs, n);
    }
    assert_int_equal(genie_exec_session_bind(ex, 0, ids, 2), GENIE_ERR_INVALID);
    /* One unknown id: nothing is bound. */
    assert_int_equal(genie_exec_session_bind(ex, 7, bad, 2), GENIE_ERR_NOT_FOUND);
    genie_exec_session_info(ex, 7, &objs, &bytes);
    assert_int_equal(objs, 0);

    assert_int_equal(genie_exec_session_bind(ex, 7, ids, 2), GENIE_OK);
    genie_exec_session_info(ex, 7, &objs, &bytes);
    assert_int_equal(objs, 2);
    assert_int_equal(bytes, 2 * 8 * sizeof(float));
    genie_exec_get_stats(ex, &st);
    assert_int_equal(st.sessions, 1);
    assert_int_equal(st.session_bytes, bytes);

    /* Rebinding moves an object to another session. */
    assert_int_equal(genie_exec_session_bind(ex, 8, &ids[1], 1), GENIE_OK);
    genie_exec_get_stats(ex, &st);
    assert_int_equal(st.sessions, 2);

    assert_int_equal(genie_exec_session_end(ex, 7), 1);
    assert_int_equal(genie_exec_session_end(ex, 7), 0);
    assert_int_equal(genie_exec_session_end(ex, 8), 1);
    genie_exec_get_stats(ex, &st);
    assert_int_equal(st.sessions, 0);
    assert_int_equal(st.session_bytes, 0);
    /* Freeing ids that are already gone is harmless (frees race with GC). */
    genie_exec_free_objects(ex, ids, 2);
}

/* relu(input X) declared with an output of `y_shape` (the decoder does not
 * infer shapes: a peer may claim any size within 2^62 bytes). */
static genie_srg_t *graph_relu_claims(const int64_t *y_shape)
{
    genie_srg_t *g;
    uint32_t src, y;
    const int64_t x_shape[2] = { 2, 3 };
    const int64_t *shapes[1] = { y_shape };
    genie_dtype_t dt = GENIE_F32;
    int nd = 2;

    assert_int_equal(genie_srg_create(&g), GENIE_OK);
    assert_int_equal(genie_srg_add_source(g, GENIE_VAL_INPUT, GENIE_F32, 2, x_shape,
                                          GENIE_RES_EPHEMERAL_ACTIVATION, 0, "x", &src), GENIE_OK);
    assert_int_equal(genie_srg_add_node(g, GENIE_OP_RELU, &src, 1, NULL, 0, 1, &dt, &nd, shapes,
                                        GENIE_PHASE_FORWARD, GENIE_MOD_NONE,
                                        GENIE_RES_EPHEMERAL_ACTIVATION, "act", &y), GENIE_OK);
    assert_int_equal(genie_srg_mark_output(g, y, 1, 0), GENIE_OK);
    return roundtrip(g);
}

/* The memory budget (issue 13, "an authenticated peer can make an executor
 * allocate SRG outputs of up to 2^62 bytes"): weights, runs and objects are
 * refused with GENIE_ERR_NOMEM and one line before anything is allocated,
 * and a refusal changes nothing.  Bytes: W 48, X 24, Y 32 and the host copy
 * of Y 32; X is freed once mm has run, so the peak in use is 48 + 32 + 32. */
static void test_memory_budget(void **state)
{
    const int64_t w_shape[2] = { 3, 4 }, x_shape[2] = { 2, 3 };
    const int64_t huge[2] = { INT64_C(1) << 20, INT64_C(1) << 20 };   /* 4 TiB of f32 */
    const int64_t obj_shape[1] = { 1024 };   /* 4 KiB */
    genie_tensor_t x = host_x(), *outs = NULL, obj;
    genie_exec_stats_t st;
    genie_exec_t *e;
    uint32_t n = 0;
    genie_srg_t *g;

    (void)state;
    assert_int_equal(genie_exec_create(be, &e), GENIE_OK);

    /* A weight over the budget is refused and not registered. */
    assert_int_equal(genie_exec_set_memory_budget(e, 40), GENIE_OK);
    genie_clear_error();
    assert_int_equal(genie_exec_register_weight(e, FP_W, GENIE_F32, 2, w_shape, w_data, "w"),
                     GENIE_ERR_NOMEM);
    assert_non_null(strstr(genie_last_error(), "weight w"));
    assert_non_null(strstr(genie_last_error(), "memory_mb"));
    genie_exec_get_stats(e, &st);
    assert_int_equal(st.weights, 0);
    assert_int_equal(st.memory_budget_bytes, 40);
    assert_int_equal(st.memory_in_use_bytes, 0);

    /* 112 bytes needed at the peak (the output copy); one byte less fails
     * there, keeps nothing and leaves in-use at the weight's 48 bytes. */
    assert_int_equal(genie_exec_set_memory_budget(e, 111), GENIE_OK);
    assert_int_equal(genie_exec_register_weight(e, FP_W, GENIE_F32, 2, w_shape, w_data, "w"),
                     GENIE_OK);
    genie_clear_error();
    g = graph_mm(KEEP_Y, x_shape);
    assert_int_equal(genie_exec_run(e, g, &x, 1, &outs, &n), GENIE_ERR_NOMEM);
    assert_non_null(strstr(genie_last_error(), "32 B more for output value"));
    assert_non_null(strstr(genie_last_error(), "memory budget is 0.1 KiB (memory_mb in genie.conf), 80 B in use"));
    genie_exec_get_stats(e, &st);
    assert_int_equal(st.residents, 0);
    assert_int_equal(st.requests, 0);
    assert_int_equal(st.memory_in_use_bytes, 48);

    /* Exactly enough: it runs, and the kept Y (32 bytes) stays in use. */
    assert_int_equal(genie_exec_set_memory_budget(e, 112), GENIE_OK);
    assert_int_equal(genie_exec_run(e, g, &x, 1, &outs, &n), GENIE_OK);
    genie_srg_destroy(g);
    release_outs(outs, n);
    genie_exec_get_stats(e, &st);
    assert_int_equal(st.residents, 1);
    assert_int_equal(st.memory_in_use_bytes, 48 + 32);
    assert_int_equal(st.peak_bytes, 32 + 32);   /* Y and its copy */

    /* A graph that claims a 4 TiB output is refused before allocating,
     * naming the node. */
    assert_int_equal(genie_exec_set_memory_budget(e, UINT64_C(64) << 20), GENIE_OK);
    genie_clear_error();
    g = graph_relu_claims(huge);
    assert_int_equal(genie_exec_run(e, g, &x, 1, &outs, &n), GENIE_ERR_NOMEM);
    genie_srg_destroy(g);
    assert_non_null(strstr(genie_last_error(), "4.0 TiB more for node 0 (relu"));
    assert_non_null(strstr(genie_last_error(), "memory budget is 64.0 MiB"));
    genie_exec_get_stats(e, &st);
    assert_int_equal(st.memory_in_use_bytes, 48 + 32);

    /* An object put on the executor (a received KV cache) counts too; a
     * replacement is charged only its difference. */
    assert_int_equal(genie_exec_set_memory_budget(e, 48 + 32 + 4095), GENIE_OK);
    assert_int_equal(genie_tensor_alloc(GENIE_F32, 1, obj_shape, &obj), GENIE_OK);
    genie_clear_error();
    assert_int_equal(genie_exec_put_object(e, 300, 0, &obj), GENIE_ERR_NOMEM);
    assert_non_null(strstr(genie_last_error(), "object 300"));
    assert_non_null(obj.storage);                  /* refused: still the caller's */
    assert_int_equal(genie_exec_set_memory_budget(e, 48 + 32 + 4096), GENIE_OK);
    assert_int_equal(genie_exec_put_object(e, 300, 0, &obj), GENIE_OK);
    assert_int_equal(genie_tensor_alloc(GENIE_F32, 1, obj_shape, &obj), GENIE_OK);
    assert_int_equal(genie_exec_put_object(e, 300, 0, &obj), GENIE_OK);   /* replaces */
    genie_exec_get_stats(e, &st);
    assert_int_equal(st.residents, 2);
    assert_int_equal(st.memory_in_use_bytes, 48 + 32 + 4096);

    /* A fetch copy is an allocation as well: nothing is left for it now. */
    genie_clear_error();
    {
        genie_tensor_t copy;
        assert_int_equal(genie_exec_fetch(e, KEEP_Y, &copy), GENIE_ERR_NOMEM);
        assert_non_null(strstr(genie_last_error(), "a copy of object 100"));
        assert_int_equal(genie_exec_set_memory_budget(e, 0), GENIE_OK);   /* 0 = none */
        assert_int_equal(genie_exec_fetch(e, KEEP_Y, &copy), GENIE_OK);
        genie_tensor_release(&copy);
    }
    genie_exec_destroy(e);
}

/* x (2,3) -> one node `op` with an INTS attribute `size` (n extents), its
 * output declared as (2,3); the decoder does not check attributes against
 * shapes, so a peer may send any extents. */
static genie_srg_t *graph_sized(uint32_t op, const int64_t *size, uint32_t n)
{
    genie_srg_t *g;
    uint32_t src, y;
    const int64_t x_shape[2] = { 2, 3 };
    const int64_t *shapes[1] = { x_shape };
    genie_srg_attr_t a[1] = { { .tag = GENIE_ATTR_INTS, .ints = size, .n = n } };
    genie_dtype_t dt = GENIE_F32;
    int nd = 2;

    assert_int_equal(genie_srg_create(&g), GENIE_OK);
    assert_int_equal(genie_srg_add_source(g, GENIE_VAL_INPUT, GENIE_F32, 2, x_shape,
                                          GENIE_RES_EPHEMERAL_ACTIVATION, 0, "x", &src), GENIE_OK);
    assert_int_equal(genie_srg_add_node(g, op, &src, 1, a, 1, 1, &dt, &nd, shapes,
                                        GENIE_PHASE_FORWARD, GENIE_MOD_NONE,
                                        GENIE_RES_EPHEMERAL_ACTIVATION, "v", &y), GENIE_OK);
    assert_int_equal(genie_srg_mark_output(g, y, 1, 0), GENIE_OK);
    return roundtrip(g);
}

/* Findings of lf_srg_exec (tests/fuzz/corpus/lf_srg_exec/regress-*): each
 * graph is refused with one line, under UBSan too (build-asan). */
static void test_fuzz_regressions(void **state)
{
    /* view.default with extents whose product overflows int64
     * (cpu_views.c multiplied them unchecked: UBSan signed overflow). */
    static const int64_t view_big[2] = { INT64_C(21474836484), INT64_C(34359738368) };
    genie_tensor_t x = host_x(), *outs = NULL;
    uint32_t n = 0;
    genie_srg_t *g;

    (void)state;
    genie_clear_error();
    g = graph_sized(GENIE_OP_VIEW, view_big, 2);
    assert_int_equal(genie_exec_run(ex, g, &x, 1, &outs, &n), GENIE_ERR_SHAPE);
    genie_srg_destroy(g);
    assert_non_null(strstr(genie_last_error(), "multiply past 2^63"));

    /* Two kept values, the second under the reserved id UINT64_MAX: the
     * run failed at the commit after the first was already resident, so a
     * failed request changed the executor. */
    {
        const int64_t shape[2] = { 2, 3 };
        const int64_t *shapes[1] = { shape };
        genie_dtype_t dt = GENIE_F32;
        genie_exec_stats_t before, after;
        uint32_t src, a, b;
        int nd = 2;

        assert_int_equal(genie_srg_create(&g), GENIE_OK);
        assert_int_equal(genie_srg_add_source(g, GENIE_VAL_INPUT, GENIE_F32, 2, shape,
                                              GENIE_RES_EPHEMERAL_ACTIVATION, 0, "x", &src),
                         GENIE_OK);
        assert_int_equal(genie_srg_add_node(g, GENIE_OP_RELU, &src, 1, NULL, 0, 1, &dt, &nd,
                                            shapes, GENIE_PHASE_FORWARD, GENIE_MOD_NONE,
                                            GENIE_RES_EPHEMERAL_ACTIVATION, "a", &a), GENIE_OK);
        assert_int_equal(genie_srg_add_node(g, GENIE_OP_RELU, &src, 1, NULL, 0, 1, &dt, &nd,
                                            shapes, GENIE_PHASE_FORWARD, GENIE_MOD_NONE,
                                            GENIE_RES_EPHEMERAL_ACTIVATION, "b", &b), GENIE_OK);
        assert_int_equal(genie_srg_mark_output(g, a, 0, 5), GENIE_OK);
        assert_int_equal(genie_srg_mark_output(g, b, 0, UINT64_MAX), GENIE_OK);
        g = roundtrip(g);
        genie_exec_get_stats(ex, &before);
        genie_clear_error();
        assert_int_equal(genie_exec_run(ex, g, &x, 1, &outs, &n), GENIE_ERR_INVALID);
        genie_srg_destroy(g);
        assert_non_null(strstr(genie_last_error(), "reserved"));
        genie_exec_get_stats(ex, &after);
        assert_int_equal(after.residents, before.residents);
        assert_int_equal(after.resident_bytes, before.resident_bytes);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weights_and_residents),
        cmocka_unit_test(test_failures_leave_state),
        cmocka_unit_test(test_sessions),
        cmocka_unit_test(test_memory_budget),
        cmocka_unit_test(test_fuzz_regressions),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

/*
 * Hand-written checks of the CPU backend that need no PyTorch: the table is
 * complete, memory entry points round-trip (including a strided download),
 * view ops share storage and derive strides from the input's strides, a view
 * of a non-viewable layout falls back to a copy with the right values, and
 * bad requests are refused with the right status and a non-empty one-line
 * reason naming the op (index out of range, dropout in SDPA, mismatched
 * matmul shapes, unsupported dtypes, wrong arity, a declared shape that
 * disagrees).  The numerical coverage of every op lives in
 * tests/golden/test_ops_golden.c.
 *
 * Shapes in this file: M, K, N = matmul extents, V = vocabulary, C = width.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "genie/backend.h"

/* ---- helpers ---------------------------------------------------------------------- */

static genie_backend_t *be;

static int setup(void **state)
{
    (void)state;
    return genie_backend_cpu_create(2, &be) == GENIE_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    be->iface->destroy(be);
    return 0;
}

/* Contiguous f32 tensor of the given shape holding 0, 1, 2, ... */
static genie_tensor_t iota_f32(int ndim, const int64_t *shape)
{
    genie_tensor_t t;
    float *p;

    assert_int_equal(genie_tensor_alloc(GENIE_F32, ndim, shape, &t), GENIE_OK);
    p = genie_tensor_data(&t);
    for (int64_t i = 0; i < genie_tensor_numel(&t); i++) {
        p[i] = (float)i;
    }
    return t;
}

static genie_srg_attr_t a_int(int64_t v) { return (genie_srg_attr_t){ .tag = GENIE_ATTR_INT, .i = v }; }
static genie_srg_attr_t a_float(double v) { return (genie_srg_attr_t){ .tag = GENIE_ATTR_FLOAT, .f = v }; }
static genie_srg_attr_t a_bool(int v) { return (genie_srg_attr_t){ .tag = GENIE_ATTR_BOOL, .i = v }; }
static genie_srg_attr_t a_none(void) { return (genie_srg_attr_t){ .tag = GENIE_ATTR_NONE }; }
static genie_srg_attr_t a_ints(const int64_t *v, uint32_t n)
{
    return (genie_srg_attr_t){ .tag = GENIE_ATTR_INTS, .ints = v, .n = n };
}

/* Run op on the CPU backend with the given inputs/outputs and attributes. */
static genie_status_t run(genie_op_t op, const genie_tensor_t **in, uint32_t n_in,
                          genie_tensor_t *out, uint32_t n_out, const genie_srg_attr_t *attrs,
                          uint32_t n_attr)
{
    genie_srg_node_t node = { .op = op, .module_path = "test", .attrs = attrs,
                              .n_attr = n_attr, .n_in = n_in, .n_out = n_out };
    genie_op_call_t call = { .backend = be, .node = &node, .in = in, .n_in = n_in,
                             .out = out, .n_out = n_out };

    genie_clear_error();
    return be->iface->ops[op](&call);
}

/* A failure with status `want` and a message mentioning `needle`. */
static void expect_error(genie_status_t st, genie_status_t want, const char *needle)
{
    const char *msg = genie_last_error();

    if (st != want || msg[0] == '\0' || strchr(msg, '\n') != NULL ||
        (needle != NULL && strstr(msg, needle) == NULL)) {
        fail_msg("expected status %d mentioning '%s', got %d: '%s'", want,
                 needle ? needle : "", st, msg);
    }
}

/* Output slot for a view op: shape declared, no storage. */
static genie_tensor_t view_slot(genie_dtype_t dt, int ndim, const int64_t *shape)
{
    genie_tensor_t t = { .dtype = dt, .ndim = ndim };

    memcpy(t.shape, shape, sizeof(int64_t) * (size_t)ndim);
    return t;
}

/* ---- tests ----------------------------------------------------------------------------- */

static void test_table_complete(void **state)
{
    (void)state;
    assert_string_equal(be->iface->name, "cpu");
    assert_null(be->iface->sync);
    for (int op = 0; op < GENIE_OP_COUNT; op++) {
        if (be->iface->ops[op] == NULL) {
            fail_msg("no CPU kernel for %s", genie_op_name((uint32_t)op));
        }
    }
}

static void test_alloc_upload_download(void **state)
{
    const float host[6] = { 1, 2, 3, 4, 5, 6 };
    float back[6];
    genie_storage_t *s;
    genie_tensor_t t = { .dtype = GENIE_F32, .ndim = 2, .shape = { 3, 2 },
                         .strides = { 1, 3 } };       /* transpose of a (2, 3) */

    (void)state;
    assert_int_equal(be->iface->alloc(be, sizeof(host), &s), GENIE_OK);
    assert_int_equal((uintptr_t)s->data % 64, 0);
    assert_int_equal(be->iface->upload(be, host, sizeof(host), s), GENIE_OK);
    t.storage = s;
    assert_int_equal(be->iface->download(be, &t, back), GENIE_OK);
    assert_true(back[0] == 1 && back[1] == 4 && back[2] == 2 && back[3] == 5 &&
                back[4] == 3 && back[5] == 6);
    genie_clear_error();
    expect_error(be->iface->upload(be, host, sizeof(host) + 4, s), GENIE_ERR_INVALID,
                 "upload");
    genie_tensor_release(&t);
}

static void test_views_share_storage(void **state)
{
    int64_t shape[3] = { 2, 3, 4 }, tshape[3] = { 4, 3, 2 };
    genie_tensor_t x = iota_f32(3, shape);
    genie_tensor_t out = view_slot(GENIE_F32, 3, tshape), out2;
    const genie_tensor_t *in[1] = { &x };
    genie_srg_attr_t attrs[2] = { a_int(0), a_int(-1) };
    int64_t sshape[2] = { 4, 3 };

    (void)state;
    assert_int_equal(run(GENIE_OP_TRANSPOSE, in, 1, &out, 1, attrs, 2), GENIE_OK);
    assert_ptr_equal(out.storage, x.storage);
    assert_int_equal(x.storage->refcount, 2);
    assert_int_equal(out.strides[0], 1);
    assert_int_equal(out.strides[2], 12);

    /* select on the transposed view: strides come from the view, not from a
     * contiguous layout. */
    in[0] = &out;
    attrs[0] = a_int(2);           /* dim */
    attrs[1] = a_int(1);           /* index */
    out2 = view_slot(GENIE_F32, 2, sshape);
    assert_int_equal(run(GENIE_OP_SELECT, in, 1, &out2, 1, attrs, 2), GENIE_OK);
    assert_ptr_equal(out2.storage, x.storage);
    /* out2[i][j] = x[1][j][i] = 12 + 4 j + i */
    assert_true(((float *)genie_tensor_data(&out2))[out2.strides[0] * 3 + out2.strides[1] * 2]
                == 12 + 8 + 3);
    genie_tensor_release(&out2);
    genie_tensor_release(&out);
    assert_int_equal(x.storage->refcount, 1);
    genie_tensor_release(&x);
}

static void test_view_of_nonviewable_copies(void **state)
{
    int64_t shape[2] = { 3, 4 }, flat[1] = { 12 }, size[1] = { -1 };
    genie_tensor_t x = iota_f32(2, shape), xt, out = view_slot(GENIE_F32, 1, flat);
    const genie_tensor_t *in[1] = { &xt };
    genie_srg_attr_t attrs[1] = { a_ints(size, 1) };
    const float *p;

    (void)state;
    genie_tensor_share(&x, &xt);               /* (4, 3) transpose */
    xt.shape[0] = 4;
    xt.shape[1] = 3;
    xt.strides[0] = 1;
    xt.strides[1] = 4;
    assert_int_equal(run(GENIE_OP_VIEW, in, 1, &out, 1, attrs, 1), GENIE_OK);
    p = genie_tensor_data(&out);
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < 3; j++) {
            assert_true(p[i * 3 + j] == (float)(j * 4 + i));
        }
    }
    genie_tensor_release(&out);
    genie_tensor_release(&xt);
    genie_tensor_release(&x);
}

static void test_view_declared_shape_mismatch(void **state)
{
    int64_t shape[2] = { 2, 6 }, wrong[2] = { 4, 3 }, size[2] = { 3, 4 };
    genie_tensor_t x = iota_f32(2, shape), out = view_slot(GENIE_F32, 2, wrong);
    const genie_tensor_t *in[1] = { &x };
    genie_srg_attr_t attrs[1] = { a_ints(size, 2) };

    (void)state;
    expect_error(run(GENIE_OP_VIEW, in, 1, &out, 1, attrs, 1), GENIE_ERR_SHAPE, "view");
    assert_null(out.storage);
    genie_tensor_release(&x);
}

static void test_embedding_index_out_of_range(void **state)
{
    int64_t wshape[2] = { 5, 3 }, ishape[1] = { 3 }, oshape[2] = { 3, 3 };
    genie_tensor_t w = iota_f32(2, wshape), ids, out;
    const genie_tensor_t *in[2] = { &w, &ids };
    genie_srg_attr_t attrs[3] = { a_int(-1), a_bool(0), a_bool(0) };

    (void)state;
    assert_int_equal(genie_tensor_alloc(GENIE_I64, 1, ishape, &ids), GENIE_OK);
    assert_int_equal(genie_tensor_alloc(GENIE_F32, 2, oshape, &out), GENIE_OK);
    ((int64_t *)genie_tensor_data(&ids))[0] = 1;
    ((int64_t *)genie_tensor_data(&ids))[1] = 5;      /* V = 5: out of range */
    ((int64_t *)genie_tensor_data(&ids))[2] = 0;
    expect_error(run(GENIE_OP_EMBEDDING, in, 2, &out, 1, attrs, 3), GENIE_ERR_INVALID,
                 "embedding");
    ((int64_t *)genie_tensor_data(&ids))[1] = -1;
    expect_error(run(GENIE_OP_EMBEDDING, in, 2, &out, 1, attrs, 3), GENIE_ERR_INVALID,
                 "out of bounds");
    ((int64_t *)genie_tensor_data(&ids))[1] = 4;
    assert_int_equal(run(GENIE_OP_EMBEDDING, in, 2, &out, 1, attrs, 3), GENIE_OK);
    assert_true(((float *)genie_tensor_data(&out))[3] == 12.0f);
    genie_tensor_release(&out);
    genie_tensor_release(&ids);
    genie_tensor_release(&w);
}

static void test_gather_and_index_select_bounds(void **state)
{
    int64_t xshape[2] = { 2, 3 }, ishape[2] = { 2, 1 }, one[1] = { 1 }, oshape[2] = { 1, 3 };
    genie_tensor_t x = iota_f32(2, xshape), idx, idx1, out, out1;
    const genie_tensor_t *in[2] = { &x, &idx };
    genie_srg_attr_t attrs[2] = { a_int(1), a_bool(0) };

    (void)state;
    assert_int_equal(genie_tensor_alloc(GENIE_I64, 2, ishape, &idx), GENIE_OK);
    assert_int_equal(genie_tensor_alloc(GENIE_F32, 2, ishape, &out), GENIE_OK);
    ((int64_t *)genie_tensor_data(&idx))[0] = 2;
    ((int64_t *)genie_tensor_data(&idx))[1] = 3;
    expect_error(run(GENIE_OP_GATHER, in, 2, &out, 1, attrs, 2), GENIE_ERR_INVALID, "gather");

    assert_int_equal(genie_tensor_alloc(GENIE_I64, 1, one, &idx1), GENIE_OK);
    assert_int_equal(genie_tensor_alloc(GENIE_F32, 2, oshape, &out1), GENIE_OK);
    ((int64_t *)genie_tensor_data(&idx1))[0] = -1;
    in[1] = &idx1;
    attrs[0] = a_int(0);
    expect_error(run(GENIE_OP_INDEX_SELECT, in, 2, &out1, 1, attrs, 1), GENIE_ERR_INVALID,
                 "index_select");
    genie_tensor_release(&out1);
    genie_tensor_release(&idx1);
    genie_tensor_release(&out);
    genie_tensor_release(&idx);
    genie_tensor_release(&x);
}

static void test_sdpa_refusals(void **state)
{
    int64_t shape[4] = { 1, 2, 3, 4 }, kshape[4] = { 1, 3, 3, 4 };
    genie_tensor_t q = iota_f32(4, shape), k = iota_f32(4, shape), v = iota_f32(4, shape);
    genie_tensor_t k3 = iota_f32(4, kshape), out;
    const genie_tensor_t *in[4] = { &q, &k, &v, NULL };
    genie_srg_attr_t attrs[4] = { a_float(0.1), a_bool(0), a_none(), a_bool(0) };

    (void)state;
    assert_int_equal(genie_tensor_alloc(GENIE_F32, 4, shape, &out), GENIE_OK);
    expect_error(run(GENIE_OP_SDPA, in, 4, &out, 1, attrs, 4), GENIE_ERR_UNSUPPORTED,
                 "dropout");
    attrs[0] = a_float(0.0);
    assert_int_equal(run(GENIE_OP_SDPA, in, 4, &out, 1, attrs, 4), GENIE_OK);
    /* 2 query heads cannot use 3 kv heads, with or without gqa. */
    in[1] = &k3;
    in[2] = &k3;
    expect_error(run(GENIE_OP_SDPA, in, 4, &out, 1, attrs, 4), GENIE_ERR_SHAPE,
                 "enable_gqa");
    attrs[3] = a_bool(1);
    expect_error(run(GENIE_OP_SDPA, in, 4, &out, 1, attrs, 4), GENIE_ERR_SHAPE,
                 "scaled_dot_product_attention");
    genie_tensor_release(&out);
    genie_tensor_release(&k3);
    genie_tensor_release(&v);
    genie_tensor_release(&k);
    genie_tensor_release(&q);
}

static void test_addmm_shape_mismatch(void **state)
{
    int64_t bshape[1] = { 4 }, ashape[2] = { 2, 3 }, wshape[2] = { 5, 4 }, oshape[2] = { 2, 4 };
    genie_tensor_t bias = iota_f32(1, bshape), a = iota_f32(2, ashape), w = iota_f32(2, wshape);
    genie_tensor_t out;
    const genie_tensor_t *in[3] = { &bias, &a, &w };
    genie_srg_attr_t attrs[2] = { a_int(1), a_int(1) };

    (void)state;
    assert_int_equal(genie_tensor_alloc(GENIE_F32, 2, oshape, &out), GENIE_OK);
    expect_error(run(GENIE_OP_ADDMM, in, 3, &out, 1, attrs, 2), GENIE_ERR_SHAPE,
                 "addmm.default: mat1 is (2,3) but mat2 is (5,4)");
    /* Wrong arity is refused before anything is read. */
    expect_error(run(GENIE_OP_ADDMM, in, 2, &out, 1, attrs, 2), GENIE_ERR_INVALID, "inputs");
    /* A missing attribute is reported, not read out of bounds. */
    expect_error(run(GENIE_OP_ADDMM, in, 3, &out, 1, attrs, 0), GENIE_ERR_INVALID, NULL);
    genie_tensor_release(&out);
    genie_tensor_release(&w);
    genie_tensor_release(&a);
    genie_tensor_release(&bias);
}

static void test_unsupported_dtypes(void **state)
{
    int64_t shape[2] = { 2, 2 };
    genie_tensor_t f = iota_f32(2, shape), i, out_i, out_f;
    const genie_tensor_t *in[2] = { &f, &f };
    genie_srg_attr_t attrs[2] = { a_int(-1), a_bool(0) };

    (void)state;
    assert_int_equal(genie_tensor_alloc(GENIE_I64, 2, shape, &i), GENIE_OK);
    assert_int_equal(genie_tensor_alloc(GENIE_I64, 2, shape, &out_i), GENIE_OK);
    assert_int_equal(genie_tensor_alloc(GENIE_F32, 2, shape, &out_f), GENIE_OK);
    memset(genie_tensor_data(&i), 0, 32);
    /* bitwise_not of a float tensor */
    expect_error(run(GENIE_OP_BITWISE_NOT, in, 1, &out_f, 1, NULL, 0), GENIE_ERR_DTYPE,
                 "bitwise_not");
    /* integer matmul */
    in[0] = &i;
    in[1] = &i;
    expect_error(run(GENIE_OP_MM, in, 2, &out_i, 1, NULL, 0), GENIE_ERR_DTYPE, "mm");
    /* softmax of integers */
    expect_error(run(GENIE_OP_SOFTMAX, in, 1, &out_i, 1, attrs, 2), GENIE_ERR_DTYPE,
                 "_softmax");
    /* float inputs cannot produce an integer sum */
    in[0] = &f;
    in[1] = &f;
    expect_error(run(GENIE_OP_ADD, in, 2, &out_i, 1, attrs, 1), GENIE_ERR_DTYPE, "add");
    /* embedding with float indices */
    expect_error(run(GENIE_OP_EMBEDDING, in, 2, &out_f, 1, attrs, 2), GENIE_ERR_DTYPE,
                 "indices");
    genie_tensor_release(&out_f);
    genie_tensor_release(&out_i);
    genie_tensor_release(&i);
    genie_tensor_release(&f);
}

static void test_split_output_count(void **state)
{
    int64_t shape[1] = { 5 }, part[1] = { 2 };
    genie_tensor_t x = iota_f32(1, shape);
    genie_tensor_t outs[2] = { view_slot(GENIE_F32, 1, part), view_slot(GENIE_F32, 1, part) };
    const genie_tensor_t *in[1] = { &x };
    genie_srg_attr_t attrs[2] = { a_int(2), a_int(0) };

    (void)state;
    /* 5 split by 2 is three chunks, the node declares two. */
    expect_error(run(GENIE_OP_SPLIT, in, 1, outs, 2, attrs, 2), GENIE_ERR_INVALID, "split");
    assert_null(outs[0].storage);
    genie_tensor_release(&x);
}

static void test_broadcast_mismatch(void **state)
{
    int64_t s1[2] = { 3, 4 }, s2[1] = { 3 };
    genie_tensor_t a = iota_f32(2, s1), b = iota_f32(1, s2), out;
    const genie_tensor_t *in[2] = { &a, &b };
    genie_srg_attr_t attrs[1] = { a_int(1) };

    (void)state;
    assert_int_equal(genie_tensor_alloc(GENIE_F32, 2, s1, &out), GENIE_OK);
    expect_error(run(GENIE_OP_ADD, in, 2, &out, 1, attrs, 1), GENIE_ERR_SHAPE,
                 "add.Tensor: shape (3) does not broadcast to (3,4)");
    genie_tensor_release(&out);
    genie_tensor_release(&b);
    genie_tensor_release(&a);
}

/* Integer division by zero is PyTorch's ZeroDivisionError, not a garbage value
 * (floor_divide of a MoE router's integer indices). */
static void test_integer_division_by_zero(void **state)
{
    int64_t shape[1] = { 4 };
    genie_tensor_t a, b, out;
    const genie_tensor_t *in[2] = { &a, &b };
    int64_t *pa, *pb;

    (void)state;
    assert_int_equal(genie_tensor_alloc(GENIE_I64, 1, shape, &a), GENIE_OK);
    assert_int_equal(genie_tensor_alloc(GENIE_I64, 1, shape, &b), GENIE_OK);
    assert_int_equal(genie_tensor_alloc(GENIE_I64, 1, shape, &out), GENIE_OK);
    pa = genie_tensor_data(&a);
    pb = genie_tensor_data(&b);
    for (int i = 0; i < 4; i++) {
        pa[i] = 10 + i;
        pb[i] = i == 2 ? 0 : 3;
    }
    expect_error(run(GENIE_OP_FLOOR_DIVIDE, in, 2, &out, 1, NULL, 0), GENIE_ERR_INVALID,
                 "floor_divide.default: ZeroDivisionError");
    pb[2] = -3;
    assert_int_equal(run(GENIE_OP_FLOOR_DIVIDE, in, 2, &out, 1, NULL, 0), GENIE_OK);
    assert_int_equal(((int64_t *)genie_tensor_data(&out))[2], -4);      /* 12 // -3 */
    genie_tensor_release(&out);
    genie_tensor_release(&b);
    genie_tensor_release(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_complete),
        cmocka_unit_test(test_alloc_upload_download),
        cmocka_unit_test(test_views_share_storage),
        cmocka_unit_test(test_view_of_nonviewable_copies),
        cmocka_unit_test(test_view_declared_shape_mismatch),
        cmocka_unit_test(test_embedding_index_out_of_range),
        cmocka_unit_test(test_gather_and_index_select_bounds),
        cmocka_unit_test(test_sdpa_refusals),
        cmocka_unit_test(test_addmm_shape_mismatch),
        cmocka_unit_test(test_unsupported_dtypes),
        cmocka_unit_test(test_split_output_count),
        cmocka_unit_test(test_broadcast_mismatch),
        cmocka_unit_test(test_integer_division_by_zero),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}

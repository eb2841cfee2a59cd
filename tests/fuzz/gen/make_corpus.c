/*
 * Writes the seed corpora of the libFuzzer targets (tests/fuzz/corpus/lf_*)
 * with the real encoders and writers, so that no seed is pasted by hand:
 *
 *   build/tests/fuzz/fuzz_make_corpus tests/fuzz/corpus
 *
 * Each seed file is named after what it holds; running it again rewrites the
 * same bytes.  Regression inputs for bugs the fuzzers found are written here
 * too (named regress-*), so that they stay reproducible from the code.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "genie/srg.h"

static const char *root;

static void fail(const char *what)
{
    fprintf(stderr, "genie: make_corpus: %s (%s)\n", what, genie_last_error());
    exit(1);
}

static void check(genie_status_t st, const char *what)
{
    if (st != GENIE_OK) {
        fail(what);
    }
}

static void write_seed(const char *target, const char *name, const void *data, size_t len)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", root, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        fail(path);
    }
    snprintf(path, sizeof(path), "%s/%s/%s", root, target, name);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        fail(path);
    }
}

/* ---- lf_srg_exec: graphs the CPU executor runs -------------------------- */

static uint32_t source(genie_srg_t *g, genie_value_kind_t kind, genie_dtype_t dt, int nd,
                       const int64_t *shape, uint64_t ref, const char *name)
{
    uint32_t id;
    genie_residency_t res = kind == GENIE_VAL_WEIGHT ? GENIE_RES_PERSISTENT_WEIGHT
                          : kind == GENIE_VAL_RESIDENT ? GENIE_RES_STATEFUL_KV_CACHE
                          : GENIE_RES_EPHEMERAL_ACTIVATION;

    check(genie_srg_add_source(g, kind, dt, nd, shape, res, ref, name, &id), "add_source");
    return id;
}

static uint32_t node(genie_srg_t *g, uint32_t op, const uint32_t *in, uint32_t n_in,
                     const genie_srg_attr_t *attrs, uint32_t n_attr, genie_dtype_t dt, int nd,
                     const int64_t *shape)
{
    const int64_t *shapes[1] = { shape };
    uint32_t id;

    check(genie_srg_add_node(g, op, in, n_in, attrs, n_attr, 1, &dt, &nd, shapes,
                             GENIE_PHASE_LLM_DECODE, GENIE_MOD_TEXT,
                             GENIE_RES_EPHEMERAL_ACTIVATION, "m", &id), "add_node");
    return id;
}

static void emit_srg(genie_srg_t *g, const char *name)
{
    uint8_t *buf;
    size_t len;

    check(genie_srg_encode(g, &buf, &len), "encode");
    write_seed("lf_srg_exec", name, buf, len);
    free(buf);
    genie_srg_destroy(g);
}

static void srg_seeds(void)
{
    static const int64_t s23[] = { 2, 3 }, s34[] = { 3, 4 }, s24[] = { 2, 4 }, s14[] = { 1, 4 };
    static const int64_t s108[] = { 10, 8 }, s8[] = { 8 }, s148[] = { 1, 4, 8 }, s810[] = { 8, 10 };
    static const int64_t s4_8[] = { 4, 8 }, s410[] = { 4, 10 }, view48[] = { 4, 8 };
    static const int64_t huge[] = { INT64_C(1) << 20, INT64_C(1) << 20 }, s34e[] = { 3, 4 };
    genie_srg_t *g;
    uint32_t in[3], a, b;

    /* mm(input, weight) -> relu, output and kept */
    check(genie_srg_create(&g), "create");
    in[0] = source(g, GENIE_VAL_INPUT, GENIE_F32, 2, s23, 0, "x");
    in[1] = source(g, GENIE_VAL_WEIGHT, GENIE_F32, 2, s34, 0x11, "w");
    a = node(g, GENIE_OP_MM, in, 2, NULL, 0, GENIE_F32, 2, s24);
    b = node(g, GENIE_OP_RELU, &a, 1, NULL, 0, GENIE_F32, 2, s24);
    check(genie_srg_mark_output(g, b, 1, 7), "mark_output");
    emit_srg(g, "mm-relu-keep");

    /* embedding -> layer_norm -> gelu(tanh) -> view -> mm -> softmax */
    check(genie_srg_create(&g), "create");
    {
        genie_srg_attr_t ln[2] = { { .tag = GENIE_ATTR_INTS, .ints = s8, .n = 1 },
                                   { .tag = GENIE_ATTR_FLOAT, .f = 1e-5 } };
        genie_srg_attr_t ge[1] = { { .tag = GENIE_ATTR_STR, .s = "tanh" } };
        genie_srg_attr_t vw[1] = { { .tag = GENIE_ATTR_INTS, .ints = view48, .n = 2 } };
        genie_srg_attr_t sm[2] = { { .tag = GENIE_ATTR_INT, .i = -1 },
                                   { .tag = GENIE_ATTR_BOOL, .i = 0 } };
        const int64_t stat[] = { 1, 4, 1 };
        const int64_t *shp3[3] = { s148, stat, stat };
        genie_dtype_t f3[3] = { GENIE_F32, GENIE_F32, GENIE_F32 };
        int nd3[3] = { 3, 3, 3 };
        uint32_t outs[3];

        in[0] = source(g, GENIE_VAL_WEIGHT, GENIE_F32, 2, s108, 0x21, "wte");
        in[1] = source(g, GENIE_VAL_INPUT, GENIE_I64, 2, s14, 0, "ids");
        a = node(g, GENIE_OP_EMBEDDING, in, 2, NULL, 0, GENIE_F32, 3, s148);
        in[0] = a;
        in[1] = source(g, GENIE_VAL_WEIGHT, GENIE_F32, 1, s8, 0x22, "ln.w");
        in[2] = source(g, GENIE_VAL_WEIGHT, GENIE_F32, 1, s8, 0x23, "ln.b");
        check(genie_srg_add_node(g, GENIE_OP_LAYER_NORM, in, 3, ln, 2, 3, f3, nd3, shp3,
                                 GENIE_PHASE_LLM_DECODE, GENIE_MOD_TEXT,
                                 GENIE_RES_EPHEMERAL_ACTIVATION, "ln", outs), "add_node ln");
        a = node(g, GENIE_OP_GELU, &outs[0], 1, ge, 1, GENIE_F32, 3, s148);
        a = node(g, GENIE_OP_VIEW, &a, 1, vw, 1, GENIE_F32, 2, s4_8);
        in[0] = a;
        in[1] = source(g, GENIE_VAL_WEIGHT, GENIE_F32, 2, s810, 0x24, "head");
        a = node(g, GENIE_OP_MM, in, 2, NULL, 0, GENIE_F32, 2, s410);
        a = node(g, GENIE_OP_SOFTMAX, &a, 1, sm, 2, GENIE_F32, 2, s410);
        check(genie_srg_mark_output(g, a, 1, 0), "mark_output");
    }
    emit_srg(g, "embed-ln-gelu-mm-softmax");

    /* relu of a resident object (a KV cache read back by id) */
    check(genie_srg_create(&g), "create");
    in[0] = source(g, GENIE_VAL_RESIDENT, GENIE_F32, 2, s24, 7, "");
    a = node(g, GENIE_OP_RELU, in, 1, NULL, 0, GENIE_F32, 2, s24);
    check(genie_srg_mark_output(g, a, 1, 0), "mark_output");
    emit_srg(g, "resident-relu");

    /* expand (a broadcast view, charged as a copy) + add */
    check(genie_srg_create(&g), "create");
    {
        genie_srg_attr_t ex[1] = { { .tag = GENIE_ATTR_INTS, .ints = s34e, .n = 2 } };
        genie_srg_attr_t alpha[1] = { { .tag = GENIE_ATTR_FLOAT, .f = 1.0 } };
        const int64_t s1_4[] = { 1, 4 };
        in[0] = source(g, GENIE_VAL_INPUT, GENIE_F32, 2, s1_4, 0, "b");
        in[1] = source(g, GENIE_VAL_INPUT, GENIE_F32, 2, s34, 1, "y");
        a = node(g, GENIE_OP_EXPAND, in, 1, ex, 1, GENIE_F32, 2, s34);
        in[0] = a;
        a = node(g, GENIE_OP_ADD, in, 2, alpha, 1, GENIE_F32, 2, s34);
        check(genie_srg_mark_output(g, a, 1, 0), "mark_output");
    }
    emit_srg(g, "expand-add");

    /* edge: a graph with no nodes; a node that claims a 4 TiB output
     * (refused by the memory budget before anything is allocated) */
    check(genie_srg_create(&g), "create");
    a = source(g, GENIE_VAL_INPUT, GENIE_F32, 2, s23, 0, "x");
    check(genie_srg_mark_output(g, a, 1, 0), "mark_output");
    emit_srg(g, "edge-no-nodes");
    check(genie_srg_create(&g), "create");
    in[0] = source(g, GENIE_VAL_INPUT, GENIE_F32, 2, s23, 0, "x");
    a = node(g, GENIE_OP_RELU, in, 1, NULL, 0, GENIE_F32, 2, huge);
    check(genie_srg_mark_output(g, a, 1, 0), "mark_output");
    emit_srg(g, "edge-claims-4TiB-output");

    /* regressions (found by lf_srg_exec; unit_test_exec test_fuzz_regressions) */
    check(genie_srg_create(&g), "create");
    {
        static const int64_t big[2] = { INT64_C(21474836484), INT64_C(34359738368) };
        genie_srg_attr_t vw[1] = { { .tag = GENIE_ATTR_INTS, .ints = big, .n = 2 } };
        in[0] = source(g, GENIE_VAL_INPUT, GENIE_F32, 2, s23, 0, "x");
        a = node(g, GENIE_OP_VIEW, in, 1, vw, 1, GENIE_F32, 2, s23);
        check(genie_srg_mark_output(g, a, 1, 0), "mark_output");
    }
    emit_srg(g, "regress-view-extents-overflow");
    check(genie_srg_create(&g), "create");
    in[0] = source(g, GENIE_VAL_INPUT, GENIE_F32, 2, s23, 0, "x");
    a = node(g, GENIE_OP_RELU, in, 1, NULL, 0, GENIE_F32, 2, s23);
    b = node(g, GENIE_OP_RELU, in, 1, NULL, 0, GENIE_F32, 2, s23);
    check(genie_srg_mark_output(g, a, 0, 5), "mark_output");
    check(genie_srg_mark_output(g, b, 0, UINT64_MAX), "mark_output");
    emit_srg(g, "regress-keep-reserved-id");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_make_corpus CORPUS_ROOT (tests/fuzz/corpus)\n");
        return 2;
    }
    root = argv[1];
    if (mkdir(root, 0755) != 0 && errno != EEXIST) {
        fail(root);
    }
    srg_seeds();
    return 0;
}

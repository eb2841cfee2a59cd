/*
 * Writes the seed corpora of the libFuzzer targets (tests/fuzz/corpus/lf_*)
 * with the real encoders and writers, so that no seed is pasted by hand:
 *
 *   build/tests/fuzz/fuzz_make_corpus tests/fuzz/corpus .
 *
 * Each seed file is named after what it holds; running it again rewrites the
 * same bytes (the HDF5 files but for their timestamps).  Regression inputs
 * for bugs the fuzzers found are written here too (named regress-*), so that
 * they stay reproducible from the code.  Text seeds (genie.conf, SPANK
 * arguments) are the inputs as a user or an admin writes them; phase specs
 * are the parser's canonical form (genie_phase_spec_format) of each.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "genie/phase_spec.h"
#include "genie/srg.h"
#ifdef GENIE_FUZZ_HAVE_CKPT
#include "ckpt_seed.h"
#endif

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

/* ---- lf_phase_spec: canonical specs, and texts the parser refuses ------- */

static void phase_seeds(void)
{
    static const char *const valid[] = {
        "prefill:8,decode:1", "vision:3,prefill:2,decode:1", "llm_prefill:4096",
        "prefill:1,decode:2+1", "a:4095+1,b:1+0,c:02+003",
        "a:1,b:1,c:1,d:1,e:1,f:1,g:1,h:1,i:1,j:1,k:1,l:1,m:1,n:1,o:1,p:1",
    };
    static const char *const refused[] = {
        "", "prefill:0", "prefill:99999999999", "decode:+1", "prefill:1,prefill:1",
        "a:1,b:1,c:1,d:1,e:1,f:1,g:1,h:1,i:1,j:1,k:1,l:1,m:1,n:1,o:1,p:1,q:1",
    };
    char name[64], text[1024];

    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        genie_phase_spec_t spec;
        check(genie_phase_spec_parse(valid[i], NULL, &spec, NULL, 0), valid[i]);
        check(genie_phase_spec_format(&spec, text, sizeof(text)), "phase_spec_format");
        snprintf(name, sizeof(name), "valid-%02zu", i);
        write_seed("lf_phase_spec", name, text, strlen(text));
    }
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        if (genie_phase_spec_parse(refused[i], NULL, &(genie_phase_spec_t){ 0 }, NULL, 0) == GENIE_OK) {
            fail(refused[i]);
        }
        snprintf(name, sizeof(name), "refused-%02zu", i);
        write_seed("lf_phase_spec", name, refused[i], strlen(refused[i]));
    }
}

/* ---- lf_genie_conf: the shipped file and small ones ----------------------- */

static void copy_file(const char *src, const char *target, const char *name)
{
    FILE *f = fopen(src, "rb");
    static char buf[1 << 16];
    size_t n;

    if (f == NULL) {
        fail(src);
    }
    n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    write_seed(target, name, buf, n);
}

static void conf_seeds(const char *src_dir)
{
    static const struct { const char *name, *text; } seeds[] = {
        { "small", "backend = \"cpu\";\nthreads = 2;\narena_mb = 64;\nrequest_timeout_s = 5.5;\n" },
        { "phases-spares", "phases = \"prefill:2,decode:2\";\nspares = { decode = 1; };\n" },
        { "checkpoint", "checkpoint = {\n  dir = \"/scratch/ck\";\n  every_steps = 32;\n"
                        "  every_s = 60.0;\n  keep = 2;\n  term_grace_s = 60;\n};\n" },
        { "slurm", "slurm = {\n  slices_per_gpu = 2;\n  driver_gpu = true;\n  cpu_fallback = false;\n"
                   "  rendezvous_dir = \"/run/genie\";\n  checkpoint_root = \"/scratch\";\n"
                   "  allowed_phases = \"prefill,decode\";\n  max_slices = 16;\n};\n" },
        { "ucx", "ucx = { tls = \"tcp\"; keepalive_ms = 250; };\nkv_mode = \"blind\";\n" },
        { "refused-type", "threads = \"two\";\n" },
        { "refused-syntax", "backend = ;\n" },
        { "empty", "" },
    };
    char path[4096];

    snprintf(path, sizeof(path), "%s/configs/genie.conf", src_dir);
    copy_file(path, "lf_genie_conf", "shipped-genie.conf");
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        write_seed("lf_genie_conf", seeds[i].name, seeds[i].text, strlen(seeds[i].text));
    }
}

/* ---- lf_spank_opts: plugstack arguments, then the --genie-phases value --- */

static void spank_seeds(void)
{
    static const struct { const char *name, *text; } seeds[] = {
        { "phases-only", "prefill:1,decode:2" },
        { "all-args", "config=/etc/slurm/genie.conf\ncheckpoint_root=/scratch\nmax_slices=8\n"
                      "allowed_phases=prefill,decode\nprefill:2,decode:2+1" },
        { "over-max-slices", "max_slices=2\nprefill:2,decode:1" },
        { "not-allowed", "allowed_phases=decode\nprefill:1" },
        { "relative-config", "config=genie.conf\ndecode:1" },
        { "unknown-arg", "colour=blue\ndecode:1" },
    };

    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        write_seed("lf_spank_opts", seeds[i].name, seeds[i].text, strlen(seeds[i].text));
    }
}

/* ---- lf_ckpt_read: a real rank file and a real manifest ------------------ */

#ifdef GENIE_FUZZ_HAVE_CKPT
static void ckpt_seeds(void)
{
    char tmp[] = "/tmp/fuzz_make_corpus.XXXXXX", dir[4096], path[4200], cmd[4300];

    if (mkdtemp(tmp) == NULL) {
        fail("mkdtemp");
    }
    setenv("GENIE_CKPT_DIRECT", "0", 1);
    check(ckpt_seed_write_epoch(tmp, 1, 1), "checkpoint epoch");
    check(genie_ckpt_epoch_path(tmp, 1, dir, sizeof(dir)), "epoch path");
    snprintf(path, sizeof(path), "%s/rank-0000.h5", dir);
    copy_file(path, "lf_ckpt_read", "rank-file.h5");
    snprintf(path, sizeof(path), "%s/manifest.h5", dir);
    copy_file(path, "lf_ckpt_read", "manifest.h5");
    write_seed("lf_ckpt_read", "edge-empty", "", 0);
    write_seed("lf_ckpt_read", "edge-not-hdf5", "genie checkpoint?\n", 18);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    if (system(cmd) != 0) {
        fail(cmd);
    }
}
#endif

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: fuzz_make_corpus CORPUS_ROOT SOURCE_DIR "
                        "(tests/fuzz/corpus and the repository root)\n");
        return 2;
    }
    root = argv[1];
    if (mkdir(root, 0755) != 0 && errno != EEXIST) {
        fail(root);
    }
    srg_seeds();
    phase_seeds();
    conf_seeds(argv[2]);
    spank_seeds();
#ifdef GENIE_FUZZ_HAVE_CKPT
    ckpt_seeds();
#else
    fprintf(stderr, "fuzz_make_corpus: built without HDF5: tests/fuzz/corpus/lf_ckpt_read not written\n");
#endif
    return 0;
}

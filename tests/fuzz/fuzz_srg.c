/*
 * Fuzz harness for the SRG decoder, the door through which every executor
 * takes graphs from the network.  One input goes through decode and, when it
 * is accepted, through everything a decoded graph meets next: encode (which
 * must reproduce a graph that decodes and re-encodes to the same bytes), the
 * JSON dump and the cost annotation.  A refusal must carry a non-empty
 * genie_last_error() line and leave the output pointer alone; anything else
 * aborts, which is what a fuzzer reports.
 *
 * Two ways to run it:
 *   - libFuzzer: build with -DGENIE_LIBFUZZER -fsanitize=fuzzer,address,undefined
 *     and the entry point LLVMFuzzerTestOneInput is all there is;
 *   - CTest (label fuzz): main() below runs a bounded, deterministic mutation
 *     loop from a few valid graphs (seeded xorshift; bit flips, truncation,
 *     byte insertion and deletion, splices, "interesting" values such as 0,
 *     0xff.., 0x7fffffff) for 200,000 iterations or 20 seconds, whichever comes
 *     first, and exits 0 when nothing crashed.  Optional arguments:
 *     fuzz_srg [iterations] [seconds] [seed].
 * Since a mutation rarely keeps the header's total_len equal to the new
 * length, every input is also tried with total_len patched to match, so that
 * mutations reach the value and node tables instead of dying at the header.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "genie/srg.h"

#define HDR_SIZE   28   /* docs/srg-format.md: header length */
#define HDR_TOTAL  20   /* offset of total_len (u64) in the header */

static uint64_t n_accepted, n_refused;

static void die(const char *what)
{
    fprintf(stderr, "fuzz_srg: %s (last error: '%s')\n", what, genie_last_error());
    abort();
}

/* Decode, and on success encode / re-decode / re-encode / dump / annotate. */
static void run_one(const uint8_t *data, size_t size)
{
    genie_srg_t *g = NULL, *g2 = NULL, *sentinel = (genie_srg_t *)&n_accepted;
    uint8_t *b1 = NULL, *b2 = NULL;
    size_t l1 = 0, l2 = 0;
    char *json = NULL;
    genie_status_t st;

    genie_clear_error();
    g = sentinel;
    st = genie_srg_decode(data, size, &g);
    if (st != GENIE_OK) {
        if (st > 0 || genie_last_error()[0] == '\0') {
            die("refusal without a status or a message");
        }
        if (g != sentinel) {
            die("decode wrote its output on failure");
        }
        n_refused++;
        return;
    }
    n_accepted++;
    if (genie_srg_encode(g, &b1, &l1) != GENIE_OK) {
        die("a decoded graph does not encode");
    }
    if (genie_srg_decode(b1, l1, &g2) != GENIE_OK) {
        die("an encoded graph does not decode");
    }
    if (genie_srg_encode(g2, &b2, &l2) != GENIE_OK || l1 != l2 || memcmp(b1, b2, l1) != 0) {
        die("encode(decode(encode(g))) differs from encode(g)");
    }
    if (genie_srg_to_json(g, &json) != GENIE_OK || json[0] != '{') {
        die("JSON dump failed");
    }
    genie_srg_annotate_cost(g);
    for (uint32_t i = 0; i < genie_srg_n_nodes(g); i++) {
        double x = genie_srg_node(g, i)->intensity;
        if (!(x >= 0.0) || x > 1e300) {
            die("cost annotation produced a non-finite or negative intensity");
        }
        if ((unsigned)genie_srg_node(g, i)->block >= GENIE_BLOCK_COUNT) {
            die("decode accepted a node block out of range");
        }
    }
    free(json);
    free(b2);
    free(b1);
    genie_srg_destroy(g2);
    genie_srg_destroy(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy;

    run_one(data, size);
    if (size >= HDR_SIZE) {
        copy = malloc(size);   /* exact size, so ASan sees any over-read */
        if (copy == NULL) {
            return 0;
        }
        memcpy(copy, data, size);
        for (int k = 0; k < 8; k++) {
            copy[HDR_TOTAL + k] = (uint8_t)((uint64_t)size >> (8 * k));
        }
        run_one(copy, size);
        free(copy);
    }
    return 0;
}

#ifndef GENIE_LIBFUZZER

/* ---- seeds: a few valid graphs built with the builder ---------------------- */

static void check(genie_status_t st, const char *what)
{
    if (st != GENIE_OK) {
        fprintf(stderr, "fuzz_srg: building seed: %s: %s\n", what, genie_last_error());
        exit(2);
    }
}

static uint32_t node1(genie_srg_t *g, uint32_t op, const uint32_t *in, uint32_t n_in,
                      const genie_srg_attr_t *attrs, uint32_t n_attr, genie_dtype_t dt, int ndim,
                      const int64_t *shape, genie_phase_t phase, const char *path)
{
    const int64_t *shapes[1] = { shape };
    uint32_t id = 0;

    check(genie_srg_add_node(g, op, in, n_in, attrs, n_attr, 1, &dt, &ndim, shapes, phase,
                             GENIE_MOD_TEXT, GENIE_RES_EPHEMERAL_ACTIVATION, path, &id),
          genie_op_name(op));
    return id;
}

/* Annotate the node just added with its model block. */
static void last_block(genie_srg_t *g, genie_block_t block)
{
    check(genie_srg_set_node_block(g, genie_srg_n_nodes(g) - 1, block), genie_block_name(block));
}

/* Seed 0: attention-ish block with every attribute tag, a 3-output node, a
 * resident KV cache and nodes of several model blocks (some left NONE).
 * Seed 1: the same with cost.  Seed 2: a longer chain cycling through every
 * block value.  Seed 3: the empty graph. */
static genie_srg_t *seed_graph(int which)
{
    static const int64_t sh_x[] = { 2, 4, 8 }, sh_w[] = { 8, 8 }, sh_2d[] = { 8, 8 };
    static const int64_t sh_stat[] = { 2, 4, 1 }, sh_q[] = { 1, 2, 4, 4 };
    static const int64_t norm[] = { 8 }, view[] = { -1, 8 };
    genie_dtype_t f3[3] = { GENIE_F32, GENIE_F32, GENIE_F32 };
    int nd3[3] = { 3, 3, 3 };
    const int64_t *shp3[3] = { sh_x, sh_stat, sh_stat };
    genie_srg_t *g = NULL;
    uint32_t x, w, kv, ln[3], v, in[4];

    check(genie_srg_create(&g), "create");
    if (which == 3) {
        return g;
    }
    check(genie_srg_add_source(g, GENIE_VAL_INPUT, GENIE_F32, 3, sh_x,
                               GENIE_RES_EPHEMERAL_ACTIVATION, 0, "x", &x), "x");
    check(genie_srg_add_source(g, GENIE_VAL_WEIGHT, GENIE_F32, 2, sh_w,
                               GENIE_RES_PERSISTENT_WEIGHT, 0xfeedfacecafebeefull, "w", &w), "w");
    if (which == 2) {
        for (int i = 0; i < 40; i++) {
            genie_srg_attr_t a[1] = { { .tag = GENIE_ATTR_FLOAT, .f = 0.5 * i } };
            in[0] = x;
            in[1] = x;
            x = node1(g, i % 2 ? GENIE_OP_ADD : GENIE_OP_MUL_SCALAR, in, i % 2 ? 2 : 1, a,
                      i % 2 ? 0 : 1, GENIE_F32, 3, sh_x, GENIE_PHASE_FORWARD, "layers.mlp");
            last_block(g, (genie_block_t)(i % GENIE_BLOCK_COUNT));
        }
        check(genie_srg_mark_output(g, x, 1, 0), "mark");
        return g;
    }
    {
        genie_srg_attr_t a[2] = { { .tag = GENIE_ATTR_INTS, .ints = norm, .n = 1 },
                                  { .tag = GENIE_ATTR_FLOAT, .f = 1e-5 } };
        in[0] = x;
        in[1] = GENIE_SRG_NONE;
        in[2] = GENIE_SRG_NONE;
        check(genie_srg_add_node(g, GENIE_OP_LAYER_NORM, in, 3, a, 2, 3, f3, nd3, shp3,
                                 GENIE_PHASE_LLM_PREFILL, GENIE_MOD_TEXT,
                                 GENIE_RES_EPHEMERAL_ACTIVATION, "h.0.ln_1", ln), "layer_norm");
        last_block(g, GENIE_BLOCK_NORM);
    }
    {
        genie_srg_attr_t a[1] = { { .tag = GENIE_ATTR_INTS, .ints = view, .n = 2 } };
        in[0] = ln[0];
        v = node1(g, GENIE_OP_VIEW, in, 1, a, 1, GENIE_F32, 2, sh_2d, GENIE_PHASE_LLM_PREFILL,
                  "h.0.attn");
    }
    {
        genie_srg_attr_t a[1] = { { .tag = GENIE_ATTR_STR, .s = "tanh" } };
        in[0] = v;
        in[1] = w;
        v = node1(g, GENIE_OP_MM, in, 2, NULL, 0, GENIE_F32, 2, sh_2d, GENIE_PHASE_LLM_PREFILL,
                  "h.0.attn.c_attn");
        last_block(g, GENIE_BLOCK_ATTENTION);
        in[0] = v;
        v = node1(g, GENIE_OP_GELU, in, 1, a, 1, GENIE_F32, 2, sh_2d, GENIE_PHASE_LLM_DECODE,
                  "h.0.mlp.act \"q\"\n");
        last_block(g, GENIE_BLOCK_MLP);
    }
    check(genie_srg_add_source(g, GENIE_VAL_RESIDENT, GENIE_F32, 4, sh_q,
                               GENIE_RES_STATEFUL_KV_CACHE, 42, "kv", &kv), "kv");
    {
        genie_srg_attr_t a[4] = { { .tag = GENIE_ATTR_FLOAT, .f = 0.0 },
                                  { .tag = GENIE_ATTR_BOOL, .i = 1 },
                                  { .tag = GENIE_ATTR_NONE },
                                  { .tag = GENIE_ATTR_DTYPE, .i = GENIE_BF16 } };
        in[0] = kv;
        in[1] = kv;
        in[2] = kv;
        in[3] = GENIE_SRG_NONE;
        v = node1(g, GENIE_OP_SDPA, in, 4, a, 4, GENIE_F32, 4, sh_q, GENIE_PHASE_LLM_DECODE,
                  "h.0.attn");
        last_block(g, GENIE_BLOCK_ATTENTION);
    }
    {
        genie_srg_attr_t a[2] = { { .tag = GENIE_ATTR_INT, .i = -1 },
                                  { .tag = GENIE_ATTR_BOOL, .i = 0 } };
        in[0] = v;
        v = node1(g, GENIE_OP_SOFTMAX, in, 1, a, 2, GENIE_F32, 4, sh_q, GENIE_PHASE_LLM_DECODE, "");
        last_block(g, GENIE_BLOCK_HEAD);
    }
    check(genie_srg_mark_output(g, v, 1, 0), "mark");
    check(genie_srg_mark_output(g, ln[0], 0, 99), "mark");
    if (which == 1) {
        genie_srg_annotate_cost(g);
    }
    return g;
}

/* ---- the mutation loop ------------------------------------------------------ */

static uint64_t rng;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static uint64_t below(uint64_t n)
{
    return n ? next() % n : 0;
}

/* Values at which length and range checks tend to break. */
static const uint64_t interesting[] = {
    0, 1, 2, 7, 8, 9, 0x7f, 0x80, 0xff, 0x100, 0x1000, 0x1001, 0x7fff, 0x8000, 0xffff,
    0x7fffffff, 0x80000000u, 0xfffffffeu, 0xffffffffu, 0x100000000ull, 0x4000000000000000ull,
    0x7fffffffffffffffull, 0x8000000000000000ull, 0xffffffffffffffffull,
};

/* Apply one mutation to buf[0..*len) (capacity cap). */
static void mutate(uint8_t *buf, size_t *len, size_t cap)
{
    size_t n = *len, pos, k;

    switch (below(7)) {
    case 0:   /* flip a bit */
        if (n > 0) {
            buf[below(n)] ^= (uint8_t)(1u << below(8));
        }
        break;
    case 1:   /* truncate */
        *len = (size_t)below(n + 1);
        break;
    case 2:   /* insert 1..8 bytes */
        k = 1 + (size_t)below(8);
        if (n + k <= cap) {
            pos = (size_t)below(n + 1);
            memmove(buf + pos + k, buf + pos, n - pos);
            for (size_t i = 0; i < k; i++) {
                buf[pos + i] = (uint8_t)next();
            }
            *len = n + k;
        }
        break;
    case 3:   /* delete 1..16 bytes */
        if (n > 0) {
            pos = (size_t)below(n);
            k = 1 + (size_t)below(16);
            if (k > n - pos) {
                k = n - pos;
            }
            memmove(buf + pos, buf + pos + k, n - pos - k);
            *len = n - k;
        }
        break;
    case 4:   /* overwrite 1, 2, 4 or 8 bytes with an interesting value, LE */
    case 5: {
        int width = 1 << below(4);
        uint64_t v = interesting[below(sizeof(interesting) / sizeof(interesting[0]))];
        if (n >= (size_t)width) {
            pos = (size_t)below(n - (size_t)width + 1);
            for (int i = 0; i < width; i++) {
                buf[pos + (size_t)i] = (uint8_t)(v >> (8 * i));
            }
        }
        break;
    }
    default:  /* copy a chunk from elsewhere in the buffer over another spot */
        if (n > 1) {
            size_t from = (size_t)below(n), to = (size_t)below(n);
            k = 1 + (size_t)below(32);
            if (k > n - from) {
                k = n - from;
            }
            if (k > n - to) {
                k = n - to;
            }
            memmove(buf + to, buf + from, k);
        }
        break;
    }
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    enum { N_SEEDS = 4, SLACK = 256 };
    uint64_t max_iters = argc > 1 ? strtoull(argv[1], NULL, 0) : 200000;
    double max_s = argc > 2 ? strtod(argv[2], NULL) : 20.0;
    uint8_t *seeds[N_SEEDS], *work, *exact;
    size_t seed_len[N_SEEDS], cap = 0, len;
    uint64_t it;
    double t0 = now_s();

    rng = argc > 3 ? strtoull(argv[3], NULL, 0) : 0x243F6A8885A308D3ull;
    if (rng == 0) {
        rng = 1;
    }
    for (int s = 0; s < N_SEEDS; s++) {
        genie_srg_t *g = seed_graph(s);
        check(genie_srg_encode(g, &seeds[s], &seed_len[s]), "encode seed");
        genie_srg_destroy(g);
        LLVMFuzzerTestOneInput(seeds[s], seed_len[s]);   /* seeds themselves must pass */
        cap = seed_len[s] + SLACK > cap ? seed_len[s] + SLACK : cap;
    }
    if (n_accepted != 2 * N_SEEDS) {
        fprintf(stderr, "fuzz_srg: a seed graph was refused: %s\n", genie_last_error());
        return 1;
    }
    work = malloc(cap);
    if (work == NULL) {
        return 2;
    }
    for (it = 0; it < max_iters; it++) {
        int s = (int)below(N_SEEDS), rounds = 1 + (int)below(4);

        if ((it & 1023) == 0 && now_s() - t0 > max_s) {
            break;
        }
        memcpy(work, seeds[s], seed_len[s]);
        len = seed_len[s];
        for (int r = 0; r < rounds; r++) {
            mutate(work, &len, cap);
        }
        exact = malloc(len ? len : 1);   /* exact size: over-reads hit ASan's redzone */
        if (exact == NULL) {
            return 2;
        }
        memcpy(exact, work, len);
        LLVMFuzzerTestOneInput(exact, len);
        free(exact);
    }
    printf("fuzz_srg: %llu iterations in %.1f s: %llu decodes accepted (each round-tripped, "
           "dumped, annotated), %llu refused with a reason\n", (unsigned long long)it,
           now_s() - t0, (unsigned long long)n_accepted, (unsigned long long)n_refused);
    free(work);
    for (int s = 0; s < N_SEEDS; s++) {
        free(seeds[s]);
    }
    return 0;
}

#endif /* GENIE_LIBFUZZER */

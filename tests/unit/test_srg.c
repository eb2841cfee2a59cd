/*
 * Unit tests of the SRG: the builder and its refusals, accessors and typed
 * attribute getters, cost annotation, the JSON dump (checked to be valid JSON
 * by a small parser here), and above all the binary decoder against hostile
 * bytes.  The decoder tests do not use genie_srg_encode to make their inputs:
 * this file carries its own writer of the format, written from
 * docs/srg-format.md, so that the spec and the implementation are checked
 * against each other (a hand-written graph must decode, and re-encode to the
 * very same bytes), and so that each rejection test can write exactly one
 * wrong field.  Every refusal must come with GENIE_ERR_* and a non-empty
 * genie_last_error() line; nothing may crash, leak or read out of bounds
 * (the suite also runs under ASan/UBSan).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "genie/srg.h"

/* ---- helpers -------------------------------------------------------------- */

/* Shapes in this file: B = batch, H = heads, T = tokens, D = head dim,
 * C = channels, V = vocabulary. */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t xorshift64(void)
{
    uint64_t x = rng_state;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return x;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Assert that st is a failure with a message (containing `needle` if given). */
static void expect_error(genie_status_t st, genie_status_t want, const char *needle)
{
    const char *msg = genie_last_error();

    if (st == GENIE_OK || (want != 0 && st != want) || msg[0] == '\0' ||
        (needle != NULL && strstr(msg, needle) == NULL)) {
        print_error("status %d (want %d), message '%s' (want '%s')\n", st, want, msg,
                    needle ? needle : "<any>");
        fail();
    }
    assert_null(strchr(msg, '\n'));   /* one line */
}

/* Decode buf and expect a refusal. */
static void expect_reject(const uint8_t *buf, size_t len, genie_status_t want, const char *needle)
{
    genie_srg_t *srg = NULL;
    genie_status_t st;

    genie_clear_error();
    st = genie_srg_decode(buf, len, &srg);
    expect_error(st, want, needle);
    assert_null(srg);   /* output written only on success */
}

/* ---- a minimal JSON validator (RFC 8259 grammar, no semantics) ------------ */

typedef struct jp {
    const char *p;
    int depth;
} jp_t;

static int jp_value(jp_t *j);

static void jp_ws(jp_t *j)
{
    while (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r') {
        j->p++;
    }
}

static int jp_string(jp_t *j)
{
    if (*j->p++ != '"') {
        return 0;
    }
    for (;;) {
        unsigned char c = (unsigned char)*j->p++;
        if (c == '"') {
            return 1;
        }
        if (c < 0x20) {
            return 0;   /* includes the terminating NUL */
        }
        if (c == '\\') {
            c = (unsigned char)*j->p++;
            if (c == 'u') {
                for (int k = 0; k < 4; k++) {
                    if (!strchr("0123456789abcdefABCDEF", *j->p) || *j->p == '\0') {
                        return 0;
                    }
                    j->p++;
                }
            } else if (!strchr("\"\\/bfnrt", c) || c == '\0') {
                return 0;
            }
        }
    }
}

static int jp_number(jp_t *j)
{
    const char *start = j->p;

    if (*j->p == '-') {
        j->p++;
    }
    if (*j->p == '0') {
        j->p++;
    } else if (*j->p >= '1' && *j->p <= '9') {
        while (*j->p >= '0' && *j->p <= '9') {
            j->p++;
        }
    } else {
        return 0;
    }
    if (*j->p == '.') {
        j->p++;
        if (!(*j->p >= '0' && *j->p <= '9')) {
            return 0;
        }
        while (*j->p >= '0' && *j->p <= '9') {
            j->p++;
        }
    }
    if (*j->p == 'e' || *j->p == 'E') {
        j->p++;
        if (*j->p == '+' || *j->p == '-') {
            j->p++;
        }
        if (!(*j->p >= '0' && *j->p <= '9')) {
            return 0;
        }
        while (*j->p >= '0' && *j->p <= '9') {
            j->p++;
        }
    }
    return j->p > start;
}

static int jp_list(jp_t *j, char close, int is_object)
{
    j->p++;
    jp_ws(j);
    if (*j->p == close) {
        j->p++;
        return 1;
    }
    for (;;) {
        if (is_object) {
            if (!jp_string(j)) {
                return 0;
            }
            jp_ws(j);
            if (*j->p++ != ':') {
                return 0;
            }
        }
        if (!jp_value(j)) {
            return 0;
        }
        jp_ws(j);
        if (*j->p == ',') {
            j->p++;
            jp_ws(j);
            continue;
        }
        return *j->p++ == close;
    }
}

static int jp_value(jp_t *j)
{
    int ok;

    jp_ws(j);
    if (++j->depth > 64) {
        return 0;
    }
    switch (*j->p) {
    case '{': ok = jp_list(j, '}', 1); break;
    case '[': ok = jp_list(j, ']', 0); break;
    case '"': ok = jp_string(j); break;
    case 't': ok = strncmp(j->p, "true", 4) == 0 && (j->p += 4); break;
    case 'f': ok = strncmp(j->p, "false", 5) == 0 && (j->p += 5); break;
    case 'n': ok = strncmp(j->p, "null", 4) == 0 && (j->p += 4); break;
    default:  ok = jp_number(j); break;
    }
    j->depth--;
    return ok;
}

static int json_valid(const char *s)
{
    jp_t j = { s, 0 };

    if (!jp_value(&j)) {
        return 0;
    }
    jp_ws(&j);
    return *j.p == '\0';
}

/* ---- graph comparison and invariants ------------------------------------- */

static void assert_attr_equal(const genie_srg_attr_t *a, const genie_srg_attr_t *b)
{
    assert_int_equal(a->tag, b->tag);
    assert_int_equal(a->i, b->i);
    assert_memory_equal(&a->f, &b->f, sizeof(double));   /* bitwise: -0.0, NaN */
    assert_int_equal(a->n, b->n);
    if (a->tag == GENIE_ATTR_INTS) {
        assert_memory_equal(a->ints, b->ints, sizeof(int64_t) * a->n);
    }
    if (a->tag == GENIE_ATTR_STR) {
        assert_string_equal(a->s, b->s);
    } else {
        assert_null(a->s);
        assert_null(b->s);
    }
}

/* Every field of every value and node. */
static void assert_graph_equal(const genie_srg_t *a, const genie_srg_t *b)
{
    assert_int_equal(genie_srg_n_values(a), genie_srg_n_values(b));
    assert_int_equal(genie_srg_n_nodes(a), genie_srg_n_nodes(b));
    for (uint32_t i = 0; i < genie_srg_n_values(a); i++) {
        const genie_srg_value_t *x = genie_srg_value(a, i), *y = genie_srg_value(b, i);
        assert_int_equal(x->kind, y->kind);
        assert_int_equal(x->dtype, y->dtype);
        assert_int_equal(x->ndim, y->ndim);
        assert_memory_equal(x->shape, y->shape, sizeof(int64_t) * (size_t)x->ndim);
        assert_int_equal(x->residency, y->residency);
        assert_int_equal(x->producer, y->producer);
        assert_int_equal(x->producer_out, y->producer_out);
        assert_int_equal(x->ref, y->ref);
        assert_int_equal(x->keep_id, y->keep_id);
        assert_int_equal(x->is_output, y->is_output);
        assert_string_equal(x->name, y->name);
        assert_int_equal(genie_srg_value_nbytes(x), genie_srg_value_nbytes(y));
    }
    for (uint32_t i = 0; i < genie_srg_n_nodes(a); i++) {
        const genie_srg_node_t *x = genie_srg_node(a, i), *y = genie_srg_node(b, i);
        assert_int_equal(x->op, y->op);
        assert_int_equal(x->phase, y->phase);
        assert_int_equal(x->modality, y->modality);
        assert_int_equal(x->residency, y->residency);
        assert_int_equal(x->block, y->block);
        assert_string_equal(x->module_path, y->module_path);
        assert_int_equal(x->n_in, y->n_in);
        assert_memory_equal(x->in, y->in, sizeof(uint32_t) * x->n_in);
        assert_int_equal(x->n_out, y->n_out);
        assert_memory_equal(x->out, y->out, sizeof(uint32_t) * x->n_out);
        assert_int_equal(x->n_attr, y->n_attr);
        for (uint32_t k = 0; k < x->n_attr; k++) {
            assert_attr_equal(&x->attrs[k], &y->attrs[k]);
        }
        assert_int_equal(x->flops, y->flops);
        assert_int_equal(x->bytes, y->bytes);
        assert_memory_equal(&x->intensity, &y->intensity, sizeof(double));
    }
}

/* What the executor relies on after a successful decode. */
static void assert_graph_valid(const genie_srg_t *g)
{
    uint32_t nv = genie_srg_n_values(g), nn = genie_srg_n_nodes(g);
    uint8_t *seen = calloc(nv ? nv : 1, 1);

    assert_non_null(seen);
    for (uint32_t i = 0; i < nn; i++) {
        const genie_srg_node_t *n = genie_srg_node(g, i);
        assert_true(n->op < GENIE_OP_COUNT);
        assert_true((unsigned)n->phase < GENIE_PHASE_COUNT);
        assert_true((unsigned)n->modality < GENIE_MOD_COUNT);
        assert_true((unsigned)n->residency < GENIE_RES_COUNT);
        assert_true((unsigned)n->block < GENIE_BLOCK_COUNT);
        assert_true(strlen(n->module_path) <= GENIE_SRG_MAX_NAME);
        for (uint32_t k = 0; k < n->n_in; k++) {
            uint32_t v = n->in[k];
            if (v != GENIE_SRG_NONE) {
                assert_true(v < nv);
                assert_true(genie_srg_value(g, v)->kind != GENIE_VAL_NODE || seen[v]);
            }
        }
        assert_true(n->n_out >= 1);
        for (uint32_t k = 0; k < n->n_out; k++) {
            uint32_t v = n->out[k];
            assert_true(v < nv);
            assert_int_equal(v, n->out[0] + k);
            assert_int_equal(genie_srg_value(g, v)->kind, GENIE_VAL_NODE);
            assert_int_equal(genie_srg_value(g, v)->producer, i);
            assert_int_equal(genie_srg_value(g, v)->producer_out, k);
            assert_false(seen[v]);
            seen[v] = 1;
        }
        for (uint32_t k = 0; k < n->n_attr; k++) {
            assert_true((unsigned)n->attrs[k].tag < GENIE_ATTR_TAG_COUNT);
        }
    }
    for (uint32_t v = 0; v < nv; v++) {
        const genie_srg_value_t *x = genie_srg_value(g, v);
        assert_true((unsigned)x->kind < GENIE_VAL_KIND_COUNT);
        assert_true((unsigned)x->dtype < GENIE_DTYPE_COUNT);
        assert_true(x->ndim >= 0 && x->ndim <= GENIE_MAX_DIMS);
        assert_true(genie_srg_value_nbytes(x) <= (UINT64_C(1) << 62));
        assert_int_equal(x->kind == GENIE_VAL_NODE, seen[v]);
        if (x->kind != GENIE_VAL_NODE) {
            assert_int_equal(x->producer, GENIE_SRG_NONE);
        }
    }
    free(seen);
}

/* Full trip for a decoded or built graph: encode, decode, compare, re-encode
 * to the same bytes, dump valid JSON, annotate. */
static void check_round_trip(genie_srg_t *g)
{
    uint8_t *buf = NULL, *buf2 = NULL;
    size_t len = 0, len2 = 0;
    genie_srg_t *back = NULL;
    char *json = NULL;

    assert_int_equal(genie_srg_encode(g, &buf, &len), GENIE_OK);
    assert_int_equal(genie_srg_decode(buf, len, &back), GENIE_OK);
    assert_graph_valid(back);
    assert_graph_equal(g, back);
    assert_int_equal(genie_srg_encode(back, &buf2, &len2), GENIE_OK);
    assert_int_equal(len, len2);
    assert_memory_equal(buf, buf2, len);
    assert_int_equal(genie_srg_to_json(back, &json), GENIE_OK);
    assert_true(json_valid(json));
    genie_srg_annotate_cost(back);
    free(json);
    free(buf2);
    free(buf);
    genie_srg_destroy(back);
}

/* ---- a sample graph built with the builder -------------------------------- */

/* A slice of a GPT-2 block at T tokens, plus a few nodes that exercise every
 * attribute tag, a resident KV cache, escapes and UTF-8 in names. */
enum { S_T = 8, S_C = 16, S_V = 50, S_H = 2, S_D = 8 };

typedef struct sample {
    genie_srg_t *g;
    uint32_t ids, wte, w_attn, b_attn, kv;        /* sources */
    uint32_t emb, ln[3], x2d, qkv, split[3], q4, att, sm, mf, cast, out;
    uint32_t n_mm;                                /* node index of the addmm */
    uint32_t n_sdpa, n_ln, n_view, n_sm, n_mf;
} sample_t;

static uint32_t add1(genie_srg_t *g, uint32_t op, const uint32_t *in, uint32_t n_in,
                     const genie_srg_attr_t *attrs, uint32_t n_attr, genie_dtype_t dt, int ndim,
                     const int64_t *shape, genie_phase_t phase, const char *path)
{
    const int64_t *shapes[1] = { shape };
    uint32_t id = 0;

    assert_int_equal(genie_srg_add_node(g, op, in, n_in, attrs, n_attr, 1, &dt, &ndim, shapes,
                                        phase, GENIE_MOD_TEXT, GENIE_RES_EPHEMERAL_ACTIVATION,
                                        path, &id), GENIE_OK);
    return id;
}

static void build_sample(sample_t *s)
{
    static const int64_t sh_ids[] = { 1, S_T }, sh_wte[] = { S_V, S_C };
    static const int64_t sh_wattn[] = { S_C, 3 * S_C }, sh_battn[] = { 3 * S_C };
    static const int64_t sh_kv[] = { 1, S_H, S_T, S_D };
    static const int64_t sh_emb[] = { 1, S_T, S_C }, sh_stat[] = { 1, S_T, 1 };
    static const int64_t sh_2d[] = { S_T, S_C }, sh_qkv[] = { S_T, 3 * S_C };
    static const int64_t sh_q4[] = { 1, S_H, S_T, S_D };
    static const int64_t norm_shape[] = { S_C }, view_shape[] = { -1, S_C };
    static const int64_t split_sizes[] = { S_C };
    genie_dtype_t f32x3[3] = { GENIE_F32, GENIE_F32, GENIE_F32 };
    int nd_ln[3] = { 3, 3, 3 }, nd_split[3] = { 2, 2, 2 };
    const int64_t *shp_ln[3] = { sh_emb, sh_stat, sh_stat };
    const int64_t *shp_split[3] = { sh_2d, sh_2d, sh_2d };
    uint32_t in[6], outs[3];
    genie_srg_t *g;

    memset(s, 0, sizeof(*s));
    assert_int_equal(genie_srg_create(&s->g), GENIE_OK);
    g = s->g;
    assert_int_equal(genie_srg_add_source(g, GENIE_VAL_INPUT, GENIE_I64, 2, sh_ids,
                                          GENIE_RES_EPHEMERAL_ACTIVATION, 0, NULL, &s->ids),
                     GENIE_OK);
    assert_int_equal(genie_srg_add_source(g, GENIE_VAL_WEIGHT, GENIE_F32, 2, sh_wte,
                                          GENIE_RES_PERSISTENT_WEIGHT, 0xdeadbeefcafef00dull,
                                          "transformer.wte.weight", &s->wte), GENIE_OK);

    /* embedding(weight, indices) */
    in[0] = s->wte;
    in[1] = s->ids;
    {
        genie_srg_attr_t a[3] = { { .tag = GENIE_ATTR_INT, .i = -1 },
                                  { .tag = GENIE_ATTR_BOOL, .i = 0 },
                                  { .tag = GENIE_ATTR_BOOL, .i = 0 } };
        s->emb = add1(g, GENIE_OP_EMBEDDING, in, 2, a, 3, GENIE_F32, 3, sh_emb,
                      GENIE_PHASE_LLM_PREFILL, "transformer.wte");
    }
    /* native_layer_norm(input, normalized_shape, weight?, bias?, eps) -> 3 outputs */
    {
        genie_srg_attr_t a[2] = { { .tag = GENIE_ATTR_INTS, .ints = norm_shape, .n = 1 },
                                  { .tag = GENIE_ATTR_FLOAT, .f = 1e-5 } };
        in[0] = s->emb;
        in[1] = GENIE_SRG_NONE;
        in[2] = GENIE_SRG_NONE;
        assert_int_equal(genie_srg_add_node(g, GENIE_OP_LAYER_NORM, in, 3, a, 2, 3, f32x3, nd_ln,
                                            shp_ln, GENIE_PHASE_LLM_PREFILL, GENIE_MOD_TEXT,
                                            GENIE_RES_EPHEMERAL_ACTIVATION,
                                            "transformer.h.0.ln_1", outs), GENIE_OK);
        memcpy(s->ln, outs, sizeof(s->ln));
        s->n_ln = genie_srg_n_nodes(g) - 1;
    }
    /* view(x, [-1, C]) */
    {
        genie_srg_attr_t a[1] = { { .tag = GENIE_ATTR_INTS, .ints = view_shape, .n = 2 } };
        in[0] = s->ln[0];
        s->x2d = add1(g, GENIE_OP_VIEW, in, 1, a, 1, GENIE_F32, 2, sh_2d,
                      GENIE_PHASE_LLM_PREFILL, "transformer.h.0.attn.c_attn");
        s->n_view = genie_srg_n_nodes(g) - 1;
    }
    /* weights added after nodes: ids need not be grouped */
    assert_int_equal(genie_srg_add_source(g, GENIE_VAL_WEIGHT, GENIE_F32, 2, sh_wattn,
                                          GENIE_RES_PERSISTENT_WEIGHT, 0x1111, "c_attn.weight",
                                          &s->w_attn), GENIE_OK);
    assert_int_equal(genie_srg_add_source(g, GENIE_VAL_WEIGHT, GENIE_F32, 1, sh_battn,
                                          GENIE_RES_PERSISTENT_WEIGHT, 0x2222, "c_attn.bias",
                                          &s->b_attn), GENIE_OK);
    /* addmm(bias, x, W, beta=1, alpha=1) */
    {
        genie_srg_attr_t a[2] = { { .tag = GENIE_ATTR_INT, .i = 1 },
                                  { .tag = GENIE_ATTR_FLOAT, .f = 1.0 } };
        in[0] = s->b_attn;
        in[1] = s->x2d;
        in[2] = s->w_attn;
        s->qkv = add1(g, GENIE_OP_ADDMM, in, 3, a, 2, GENIE_F32, 2, sh_qkv,
                      GENIE_PHASE_LLM_PREFILL, "transformer.h.0.attn.c_attn");
        s->n_mm = genie_srg_n_nodes(g) - 1;
    }
    /* split(qkv, [C], dim=1) -> 3 views */
    {
        genie_srg_attr_t a[2] = { { .tag = GENIE_ATTR_INTS, .ints = split_sizes, .n = 1 },
                                  { .tag = GENIE_ATTR_INT, .i = 1 } };
        in[0] = s->qkv;
        assert_int_equal(genie_srg_add_node(g, GENIE_OP_SPLIT, in, 1, a, 2, 3, f32x3, nd_split,
                                            shp_split, GENIE_PHASE_LLM_PREFILL, GENIE_MOD_TEXT,
                                            GENIE_RES_EPHEMERAL_ACTIVATION,
                                            "transformer.h.0.attn", outs), GENIE_OK);
        memcpy(s->split, outs, sizeof(s->split));
    }
    /* view q as (B, H, T, D): the same for k and v in a real graph */
    {
        static const int64_t q4[] = { 1, S_H, S_T, S_D };
        genie_srg_attr_t a[1] = { { .tag = GENIE_ATTR_INTS, .ints = q4, .n = 4 } };
        in[0] = s->split[0];
        s->q4 = add1(g, GENIE_OP_VIEW, in, 1, a, 1, GENIE_F32, 4, sh_q4,
                     GENIE_PHASE_LLM_PREFILL, "transformer.h.0.attn");
    }
    /* a KV cache already resident on the executor */
    assert_int_equal(genie_srg_add_source(g, GENIE_VAL_RESIDENT, GENIE_F32, 4, sh_kv,
                                          GENIE_RES_STATEFUL_KV_CACHE, 42, "kv.0", &s->kv),
                     GENIE_OK);
    /* sdpa(q, k, v, attn_mask=None, dropout_p=0, is_causal=True, scale=None) */
    {
        genie_srg_attr_t a[3] = { { .tag = GENIE_ATTR_FLOAT, .f = 0.0 },
                                  { .tag = GENIE_ATTR_BOOL, .i = 1 },
                                  { .tag = GENIE_ATTR_NONE } };
        in[0] = s->q4;
        in[1] = s->kv;
        in[2] = s->kv;
        in[3] = GENIE_SRG_NONE;
        s->att = add1(g, GENIE_OP_SDPA, in, 4, a, 3, GENIE_F32, 4, sh_q4,
                      GENIE_PHASE_LLM_PREFILL, "transformer.h.0.attn");
        s->n_sdpa = genie_srg_n_nodes(g) - 1;
    }
    /* _softmax(x, dim=-1, half_to_float=False) */
    {
        genie_srg_attr_t a[2] = { { .tag = GENIE_ATTR_INT, .i = -1 },
                                  { .tag = GENIE_ATTR_BOOL, .i = 0 } };
        in[0] = s->att;
        s->sm = add1(g, GENIE_OP_SOFTMAX, in, 1, a, 2, GENIE_F32, 4, sh_q4,
                     GENIE_PHASE_LLM_DECODE, "h.0.attn \"quoted\" \\ back\nslash\ttab\x01 caf\xc3\xa9 \xff");
        s->n_sm = genie_srg_n_nodes(g) - 1;
    }
    /* masked_fill(x, mask, -inf): a non-finite FLOAT */
    {
        genie_srg_attr_t a[1] = { { .tag = GENIE_ATTR_FLOAT, .f = -INFINITY } };
        in[0] = s->sm;
        in[1] = s->sm;
        s->mf = add1(g, GENIE_OP_MASKED_FILL, in, 2, a, 1, GENIE_F32, 4, sh_q4,
                     GENIE_PHASE_LLM_DECODE, "");
        s->n_mf = genie_srg_n_nodes(g) - 1;
    }
    /* _to_copy(x, dtype=f16, layout=None, device=None, pin_memory=None,
     *          non_blocking=False, memory_format=None) */
    {
        genie_srg_attr_t a[6] = { { .tag = GENIE_ATTR_DTYPE, .i = GENIE_F16 },
                                  { .tag = GENIE_ATTR_NONE }, { .tag = GENIE_ATTR_NONE },
                                  { .tag = GENIE_ATTR_NONE },
                                  { .tag = GENIE_ATTR_BOOL, .i = 0 },
                                  { .tag = GENIE_ATTR_NONE } };
        in[0] = s->mf;
        s->cast = add1(g, GENIE_OP_TO_COPY, in, 1, a, 6, GENIE_F16, 4, sh_q4,
                       GENIE_PHASE_LLM_DECODE, "lm_head");
    }
    /* gelu(x, approximate="tanh"): a STR attr */
    {
        genie_srg_attr_t a[1] = { { .tag = GENIE_ATTR_STR, .s = "tanh" } };
        in[0] = s->cast;
        s->out = add1(g, GENIE_OP_GELU, in, 1, a, 1, GENIE_F16, 4, sh_q4,
                      GENIE_PHASE_LLM_DECODE, "transformer.h.0.mlp.act");
    }
    /* model blocks; the views, the split and masked_fill stay NONE */
    assert_int_equal(genie_srg_set_node_block(g, 0, GENIE_BLOCK_EMBEDDING), GENIE_OK);
    assert_int_equal(genie_srg_set_node_block(g, s->n_ln, GENIE_BLOCK_NORM), GENIE_OK);
    assert_int_equal(genie_srg_set_node_block(g, s->n_mm, GENIE_BLOCK_ATTENTION), GENIE_OK);
    assert_int_equal(genie_srg_set_node_block(g, s->n_sdpa, GENIE_BLOCK_ATTENTION), GENIE_OK);
    assert_int_equal(genie_srg_set_node_block(g, s->n_sm, GENIE_BLOCK_ATTENTION), GENIE_OK);
    assert_int_equal(genie_srg_set_node_block(g, s->n_mf + 1, GENIE_BLOCK_HEAD), GENIE_OK);
    assert_int_equal(genie_srg_set_node_block(g, s->n_mf + 2, GENIE_BLOCK_MLP), GENIE_OK);
    assert_int_equal(genie_srg_mark_output(g, s->out, 1, 0), GENIE_OK);
    assert_int_equal(genie_srg_mark_output(g, s->att, 0, 0xabcdef), GENIE_OK);
    assert_int_equal(genie_srg_mark_output(g, s->ln[0], 1, 77), GENIE_OK);
}

/* A chain of n nodes alternating matmul / elementwise / view, the shape of a
 * captured transformer of about that size. */
static genie_srg_t *build_chain(uint32_t n_nodes)
{
    static const int64_t sh_x[] = { 16, 64 }, sh_w[] = { 64, 64 };
    genie_srg_t *g = NULL;
    uint32_t x, w, in[3];
    char path[64];

    assert_int_equal(genie_srg_create(&g), GENIE_OK);
    assert_int_equal(genie_srg_add_source(g, GENIE_VAL_INPUT, GENIE_F32, 2, sh_x,
                                          GENIE_RES_EPHEMERAL_ACTIVATION, 0, "x", &x), GENIE_OK);
    assert_int_equal(genie_srg_add_source(g, GENIE_VAL_WEIGHT, GENIE_F32, 2, sh_w,
                                          GENIE_RES_PERSISTENT_WEIGHT, 1234, "w", &w), GENIE_OK);
    for (uint32_t i = 0; i < n_nodes; i++) {
        genie_srg_attr_t a[2] = { { .tag = GENIE_ATTR_INT, .i = 1 },
                                  { .tag = GENIE_ATTR_FLOAT, .f = 0.5 } };
        snprintf(path, sizeof(path), "model.layers.%u.mlp.fc%u", i / 3, i % 3);
        in[0] = x;
        in[1] = w;
        in[2] = x;
        x = add1(g, i % 3 == 0 ? GENIE_OP_MM : i % 3 == 1 ? GENIE_OP_ADD : GENIE_OP_VIEW, in,
                 i % 3 == 2 ? 1 : 2, a, i % 3 == 1 ? 2 : 0, GENIE_F32, 2, sh_x,
                 GENIE_PHASE_LLM_PREFILL, path);
    }
    assert_int_equal(genie_srg_mark_output(g, x, 1, 0), GENIE_OK);
    return g;
}

/* ---- builder, accessors, getters ------------------------------------------ */

static void test_build_and_read(void **state)
{
    sample_t s;
    const genie_srg_value_t *v;
    const genie_srg_node_t *n;
    const int64_t *ints;
    const char *str;
    uint32_t n_ints;
    int64_t i64 = 0;
    double f64 = 0;
    int b = -1, present = -1;
    genie_dtype_t dt = GENIE_BOOL;

    (void)state;
    build_sample(&s);
    assert_int_equal(genie_srg_n_nodes(s.g), 11);
    assert_int_equal(genie_srg_n_values(s.g), 20);

    v = genie_srg_value(s.g, s.wte);
    assert_int_equal(v->kind, GENIE_VAL_WEIGHT);
    assert_int_equal(v->producer, GENIE_SRG_NONE);
    assert_int_equal(v->producer_out, GENIE_SRG_NONE);
    assert_int_equal(v->ref, 0xdeadbeefcafef00dull);
    assert_string_equal(v->name, "transformer.wte.weight");
    assert_int_equal(genie_srg_value_nbytes(v), S_V * S_C * 4);
    assert_string_equal(genie_srg_value(s.g, s.ids)->name, "");

    v = genie_srg_value(s.g, s.ln[2]);
    assert_int_equal(v->kind, GENIE_VAL_NODE);
    assert_int_equal(v->producer, s.n_ln);
    assert_int_equal(v->producer_out, 2);
    assert_int_equal(v->ndim, 3);
    assert_int_equal(v->shape[2], 1);
    assert_int_equal(genie_srg_value(s.g, s.ln[0])->keep_id, 77);
    assert_int_equal(genie_srg_value(s.g, s.ln[0])->is_output, 1);
    assert_int_equal(genie_srg_value(s.g, s.att)->keep_id, 0xabcdef);
    assert_int_equal(genie_srg_value(s.g, s.att)->is_output, 0);
    assert_int_equal(s.ln[1], s.ln[0] + 1);
    assert_null(genie_srg_value(s.g, 20));
    assert_null(genie_srg_node(s.g, 11));
    assert_null(genie_srg_value(NULL, 0));
    assert_int_equal(genie_srg_value_nbytes(NULL), 0);

    n = genie_srg_node(s.g, s.n_ln);
    assert_int_equal(n->op, GENIE_OP_LAYER_NORM);
    assert_int_equal(n->phase, GENIE_PHASE_LLM_PREFILL);
    assert_int_equal(n->modality, GENIE_MOD_TEXT);
    assert_int_equal(n->block, GENIE_BLOCK_NORM);
    assert_string_equal(n->module_path, "transformer.h.0.ln_1");
    assert_int_equal(n->n_in, 3);
    assert_int_equal(n->in[1], GENIE_SRG_NONE);
    assert_int_equal(n->n_out, 3);
    assert_int_equal(genie_srg_attr_ints(n, 0, &ints, &n_ints), GENIE_OK);
    assert_int_equal(n_ints, 1);
    assert_int_equal(ints[0], S_C);
    assert_int_equal(genie_srg_attr_float(n, 1, &f64), GENIE_OK);
    assert_true(f64 == 1e-5);
    assert_int_equal(genie_srg_attr_scalar(n, 1, &f64), GENIE_OK);

    /* wrong tag / out of range: error naming op and index, output untouched */
    genie_clear_error();
    i64 = 12345;
    expect_error(genie_srg_attr_int(n, 1, &i64), GENIE_ERR_INVALID, "native_layer_norm.default");
    assert_int_equal(i64, 12345);
    expect_error(genie_srg_attr_int(n, 1, &i64), GENIE_ERR_INVALID, "attr 1 is float, expected int");
    expect_error(genie_srg_attr_float(n, 9, &f64), GENIE_ERR_INVALID, "attr 9");
    expect_error(genie_srg_attr_scalar(n, 0, &f64), GENIE_ERR_INVALID, "scalar");
    expect_error(genie_srg_attr_scalar(n, 5, &f64), GENIE_ERR_INVALID, "attr 5");
    expect_error(genie_srg_attr_str(NULL, 0, &str), GENIE_ERR_INVALID, "NULL node");
    expect_error(genie_srg_attr_ints_opt(n, 1, &ints, &n_ints, &present), GENIE_ERR_INVALID,
                 "expected ints");
    assert_int_equal(present, -1);

    /* blocks: set where build_sample set them, NONE elsewhere */
    assert_int_equal(genie_srg_node(s.g, 0)->block, GENIE_BLOCK_EMBEDDING);
    assert_int_equal(genie_srg_node(s.g, s.n_view)->block, GENIE_BLOCK_NONE);
    assert_int_equal(genie_srg_node(s.g, s.n_sdpa)->block, GENIE_BLOCK_ATTENTION);
    assert_int_equal(genie_srg_node(s.g, s.n_mf)->block, GENIE_BLOCK_NONE);
    assert_int_equal(genie_srg_node(s.g, s.n_mf + 1)->block, GENIE_BLOCK_HEAD);
    assert_int_equal(genie_srg_node(s.g, s.n_mf + 2)->block, GENIE_BLOCK_MLP);
    /* a block can be changed, and set back to NONE */
    assert_int_equal(genie_srg_set_node_block(s.g, s.n_view, GENIE_BLOCK_CONV), GENIE_OK);
    assert_int_equal(genie_srg_node(s.g, s.n_view)->block, GENIE_BLOCK_CONV);
    assert_int_equal(genie_srg_set_node_block(s.g, s.n_view, GENIE_BLOCK_NONE), GENIE_OK);
    assert_int_equal(genie_srg_node(s.g, s.n_view)->block, GENIE_BLOCK_NONE);

    /* addmm: scalar args given as INT and FLOAT */
    n = genie_srg_node(s.g, s.n_mm);
    assert_int_equal(genie_srg_attr_int(n, 0, &i64), GENIE_OK);
    assert_int_equal(i64, 1);
    assert_int_equal(genie_srg_attr_scalar(n, 0, &f64), GENIE_OK);
    assert_true(f64 == 1.0);
    assert_int_equal(genie_srg_attr_int_opt(n, 0, &i64, &present), GENIE_OK);
    assert_int_equal(present, 1);

    /* sdpa: bool and an absent optional */
    n = genie_srg_node(s.g, s.n_sdpa);
    assert_int_equal(genie_srg_attr_bool(n, 1, &b), GENIE_OK);
    assert_int_equal(b, 1);
    assert_int_equal(genie_srg_attr_scalar(n, 1, &f64), GENIE_OK);
    assert_true(f64 == 1.0);
    i64 = 5;
    assert_int_equal(genie_srg_attr_int_opt(n, 2, &i64, &present), GENIE_OK);
    assert_int_equal(present, 0);
    assert_int_equal(i64, 5);
    assert_int_equal(genie_srg_attr_ints_opt(n, 2, &ints, &n_ints, &present), GENIE_OK);
    assert_int_equal(present, 0);
    assert_int_equal(genie_srg_attr_dtype_opt(n, 2, &dt, &present), GENIE_OK);
    assert_int_equal(present, 0);
    assert_int_equal(dt, GENIE_BOOL);

    /* to_copy: dtype; gelu: str */
    n = genie_srg_node(s.g, s.n_mf + 1);
    assert_int_equal(genie_srg_attr_dtype(n, 0, &dt), GENIE_OK);
    assert_int_equal(dt, GENIE_F16);
    assert_int_equal(genie_srg_attr_dtype_opt(n, 0, &dt, &present), GENIE_OK);
    assert_int_equal(present, 1);
    n = genie_srg_node(s.g, s.n_mf + 2);
    assert_int_equal(genie_srg_attr_str(n, 0, &str), GENIE_OK);
    assert_string_equal(str, "tanh");
    assert_int_equal(n->attrs[0].n, 4);
    n = genie_srg_node(s.g, s.n_mf);
    assert_int_equal(genie_srg_attr_float(n, 0, &f64), GENIE_OK);
    assert_true(isinf(f64) && f64 < 0);

    genie_srg_destroy(s.g);
}

/* Pointers handed out stay valid while the graph keeps growing. */
static void test_pointers_stable(void **state)
{
    genie_srg_t *g = build_chain(3);
    const genie_srg_value_t *v0 = genie_srg_value(g, 0);
    const genie_srg_node_t *n0 = genie_srg_node(g, 0);
    static const int64_t sh[] = { 4 };
    uint32_t in = 0, id;

    (void)state;
    for (int i = 0; i < 5000; i++) {
        id = add1(g, GENIE_OP_RELU, &in, 1, NULL, 0, GENIE_F32, 1, sh, GENIE_PHASE_FORWARD, "r");
        assert_int_equal(id, genie_srg_n_values(g) - 1);
    }
    assert_ptr_equal(v0, genie_srg_value(g, 0));
    assert_ptr_equal(n0, genie_srg_node(g, 0));
    assert_int_equal(n0->op, GENIE_OP_MM);
    assert_string_equal(v0->name, "x");
    genie_srg_destroy(g);
}

/* Every refusal leaves the graph as it was and says why. */
static void test_builder_rejects(void **state)
{
    static const int64_t sh2[] = { 2, 3 }, neg[] = { 2, -1 }, huge[] = { INT64_C(1) << 31,
                                                                         INT64_C(1) << 31 };
    static const int64_t nine[9] = { 1, 1, 1, 1, 1, 1, 1, 1, 1 };
    genie_srg_t *g = build_chain(2);
    uint32_t nv = genie_srg_n_values(g), nn = genie_srg_n_nodes(g);
    uint32_t in[2] = { 0, 1 }, id = 999, ids[2] = { 999, 999 };
    genie_dtype_t dt = GENIE_F32, bad_dt = GENIE_DTYPE_COUNT;
    int nd = 2, nd9 = 9;
    const int64_t *shp = sh2, *shp_neg = neg, *shp_huge = huge, *shp9 = nine, *shp_null = NULL;
    char *long_name = malloc(GENIE_SRG_MAX_NAME + 2);
    genie_srg_attr_t bad_attr;

    (void)state;
    assert_non_null(long_name);
    memset(long_name, 'a', GENIE_SRG_MAX_NAME + 1);
    long_name[GENIE_SRG_MAX_NAME + 1] = '\0';

#define NODE_CALL(op_, in_, n_in_, attrs_, n_attr_, n_out_, dts_, nds_, shps_, ph_, path_) \
    genie_srg_add_node(g, (op_), (in_), (n_in_), (attrs_), (n_attr_), (n_out_), (dts_), (nds_), \
                       (shps_), (ph_), GENIE_MOD_NONE, GENIE_RES_EPHEMERAL_ACTIVATION, (path_), \
                       ids)
    genie_clear_error();
    {
        char want[32];   /* the first op number past the table, whatever ops.def holds */
        snprintf(want, sizeof(want), "op %d", (int)GENIE_OP_COUNT);
        expect_error(NODE_CALL(GENIE_OP_COUNT, in, 2, NULL, 0, 1, &dt, &nd, &shp,
                               GENIE_PHASE_FORWARD, ""), GENIE_ERR_INVALID, want);
    }
    expect_error(NODE_CALL(GENIE_OP_MM, in, 2, NULL, 0, 1, &dt, &nd, &shp,
                           GENIE_PHASE_COUNT, ""), GENIE_ERR_INVALID, "phase 8");
    expect_error(genie_srg_add_node(g, GENIE_OP_MM, in, 2, NULL, 0, 1, &dt, &nd, &shp,
                                    GENIE_PHASE_FORWARD, GENIE_MOD_COUNT,
                                    GENIE_RES_EPHEMERAL_ACTIVATION, "", ids),
                 GENIE_ERR_INVALID, "modality 5");
    in[1] = nv;
    expect_error(NODE_CALL(GENIE_OP_MM, in, 2, NULL, 0, 1, &dt, &nd, &shp,
                           GENIE_PHASE_FORWARD, ""), GENIE_ERR_INVALID, "out of range");
    in[1] = 1;
    expect_error(NODE_CALL(GENIE_OP_MM, NULL, 2, NULL, 0, 1, &dt, &nd, &shp,
                           GENIE_PHASE_FORWARD, ""), GENIE_ERR_INVALID, "NULL");
    expect_error(NODE_CALL(GENIE_OP_MM, in, 2, NULL, 0, 0, &dt, &nd, &shp,
                           GENIE_PHASE_FORWARD, ""), GENIE_ERR_INVALID, "at least one output");
    expect_error(NODE_CALL(GENIE_OP_MM, in, 2, NULL, 0, 1, &bad_dt, &nd, &shp,
                           GENIE_PHASE_FORWARD, ""), GENIE_ERR_INVALID, "invalid dtype");
    expect_error(NODE_CALL(GENIE_OP_MM, in, 2, NULL, 0, 1, &dt, &nd, &shp_neg,
                           GENIE_PHASE_FORWARD, ""), GENIE_ERR_INVALID, "negative extent");
    expect_error(NODE_CALL(GENIE_OP_MM, in, 2, NULL, 0, 1, &dt, &nd, &shp_huge,
                           GENIE_PHASE_FORWARD, ""), GENIE_ERR_INVALID, "2^62");
    expect_error(NODE_CALL(GENIE_OP_MM, in, 2, NULL, 0, 1, &dt, &nd9, &shp9,
                           GENIE_PHASE_FORWARD, ""), GENIE_ERR_INVALID, "ndim");
    expect_error(NODE_CALL(GENIE_OP_MM, in, 2, NULL, 0, 1, &dt, &nd, &shp_null,
                           GENIE_PHASE_FORWARD, ""), GENIE_ERR_INVALID, "no extents");
    expect_error(NODE_CALL(GENIE_OP_MM, in, 2, NULL, 0, 1, &dt, &nd, &shp,
                           GENIE_PHASE_FORWARD, long_name), GENIE_ERR_INVALID, "module path");
    bad_attr = (genie_srg_attr_t){ .tag = GENIE_ATTR_TAG_COUNT };
    expect_error(NODE_CALL(GENIE_OP_MM, in, 2, &bad_attr, 1, 1, &dt, &nd, &shp,
                           GENIE_PHASE_FORWARD, ""), GENIE_ERR_INVALID, "tag 7");
    bad_attr = (genie_srg_attr_t){ .tag = GENIE_ATTR_DTYPE, .i = GENIE_DTYPE_COUNT };
    expect_error(NODE_CALL(GENIE_OP_MM, in, 2, &bad_attr, 1, 1, &dt, &nd, &shp,
                           GENIE_PHASE_FORWARD, ""), GENIE_ERR_INVALID, "dtype 6");
    bad_attr = (genie_srg_attr_t){ .tag = GENIE_ATTR_STR, .s = "ab", .n = 5 };   /* "ab\0cd" */
    expect_error(NODE_CALL(GENIE_OP_MM, in, 2, &bad_attr, 1, 1, &dt, &nd, &shp,
                           GENIE_PHASE_FORWARD, ""), GENIE_ERR_INVALID, "embedded NUL");
    bad_attr = (genie_srg_attr_t){ .tag = GENIE_ATTR_STR, .s = long_name };
    expect_error(NODE_CALL(GENIE_OP_MM, in, 2, &bad_attr, 1, 1, &dt, &nd, &shp,
                           GENIE_PHASE_FORWARD, ""), GENIE_ERR_INVALID, "max 4096");
    bad_attr = (genie_srg_attr_t){ .tag = GENIE_ATTR_INTS, .n = 3 };
    expect_error(NODE_CALL(GENIE_OP_MM, in, 2, &bad_attr, 1, 1, &dt, &nd, &shp,
                           GENIE_PHASE_FORWARD, ""), GENIE_ERR_INVALID, "NULL");
    expect_error(genie_srg_add_node(NULL, GENIE_OP_MM, in, 2, NULL, 0, 1, &dt, &nd, &shp,
                                    GENIE_PHASE_FORWARD, GENIE_MOD_NONE,
                                    GENIE_RES_EPHEMERAL_ACTIVATION, "", ids),
                 GENIE_ERR_INVALID, "NULL graph");
#undef NODE_CALL
    assert_int_equal(ids[0], 999);

    expect_error(genie_srg_add_source(g, GENIE_VAL_NODE, GENIE_F32, 2, sh2,
                                      GENIE_RES_EPHEMERAL_ACTIVATION, 0, NULL, &id),
                 GENIE_ERR_INVALID, "kind 0");
    expect_error(genie_srg_add_source(g, GENIE_VAL_KIND_COUNT, GENIE_F32, 2, sh2,
                                      GENIE_RES_EPHEMERAL_ACTIVATION, 0, NULL, &id),
                 GENIE_ERR_INVALID, "kind 4");
    expect_error(genie_srg_add_source(g, GENIE_VAL_INPUT, GENIE_F32, 2, sh2, GENIE_RES_COUNT, 0,
                                      NULL, &id), GENIE_ERR_INVALID, "residency 4");
    expect_error(genie_srg_add_source(g, GENIE_VAL_INPUT, GENIE_F32, -1, sh2,
                                      GENIE_RES_EPHEMERAL_ACTIVATION, 0, NULL, &id),
                 GENIE_ERR_INVALID, "ndim");
    expect_error(genie_srg_add_source(g, GENIE_VAL_INPUT, GENIE_F32, 2, neg,
                                      GENIE_RES_EPHEMERAL_ACTIVATION, 0, NULL, &id),
                 GENIE_ERR_INVALID, "negative");
    expect_error(genie_srg_add_source(g, GENIE_VAL_INPUT, GENIE_F32, 2, sh2,
                                      GENIE_RES_EPHEMERAL_ACTIVATION, 0, long_name, &id),
                 GENIE_ERR_INVALID, "value name");
    assert_int_equal(id, 999);
    expect_error(genie_srg_mark_output(g, nv, 1, 0), GENIE_ERR_INVALID, "out of range");
    expect_error(genie_srg_create(NULL), GENIE_ERR_INVALID, NULL);

    /* the block setter: a node that does not exist, a block that does not */
    assert_int_equal(genie_srg_set_node_block(g, 1, GENIE_BLOCK_MLP), GENIE_OK);
    expect_error(genie_srg_set_node_block(g, nn, GENIE_BLOCK_MLP), GENIE_ERR_INVALID,
                 "set_node_block: node 2 out of range (2 nodes)");
    expect_error(genie_srg_set_node_block(g, GENIE_SRG_NONE, GENIE_BLOCK_MLP), GENIE_ERR_INVALID,
                 "node 4294967295 out of range");
    expect_error(genie_srg_set_node_block(g, 1, GENIE_BLOCK_COUNT), GENIE_ERR_INVALID,
                 "node 1 (add.Tensor): block 7 out of range (< 7)");
    expect_error(genie_srg_set_node_block(g, 0, (genie_block_t)-1), GENIE_ERR_INVALID,
                 "node 0 (mm.default): block -1 out of range");
    expect_error(genie_srg_set_node_block(NULL, 0, GENIE_BLOCK_MLP), GENIE_ERR_INVALID,
                 "out of range (0 nodes)");
    assert_int_equal(genie_srg_node(g, 0)->block, GENIE_BLOCK_NONE);   /* refusals change nothing */
    assert_int_equal(genie_srg_node(g, 1)->block, GENIE_BLOCK_MLP);

    assert_int_equal(genie_srg_n_values(g), nv);
    assert_int_equal(genie_srg_n_nodes(g), nn);
    check_round_trip(g);   /* still a sound graph */

    /* Edge cases: exactly 2^62 bytes is accepted; so is an empty tensor whose
     * other extents stay within the bound (zeros counted as 1), while one
     * with huge extents is refused: its strides (INT64_MAX * INT64_MAX)
     * would overflow (issue 13, "zero extents skip the stride bound"). */
    {
        static const int64_t max_ok[] = { INT64_C(1) << 60 }, too_big[] = { (INT64_C(1) << 60) + 1 };
        static const int64_t empty[] = { INT64_C(1) << 31, 0, INT64_C(1) << 31 };
        static const int64_t empty_huge[] = { INT64_MAX, 0, INT64_MAX };
        assert_int_equal(genie_srg_add_source(g, GENIE_VAL_INPUT, GENIE_F32, 1, max_ok,
                                              GENIE_RES_EPHEMERAL_ACTIVATION, 0, NULL, &id),
                         GENIE_OK);
        assert_int_equal(genie_srg_value_nbytes(genie_srg_value(g, id)), UINT64_C(1) << 62);
        expect_error(genie_srg_add_source(g, GENIE_VAL_INPUT, GENIE_F32, 1, too_big,
                                          GENIE_RES_EPHEMERAL_ACTIVATION, 0, NULL, &id),
                     GENIE_ERR_INVALID, "2^62");
        assert_int_equal(genie_srg_add_source(g, GENIE_VAL_INPUT, GENIE_BOOL, 3, empty,
                                              GENIE_RES_EPHEMERAL_ACTIVATION, 0, NULL, &id),
                         GENIE_OK);
        assert_int_equal(genie_srg_value_nbytes(genie_srg_value(g, id)), 0);
        expect_error(genie_srg_add_source(g, GENIE_VAL_INPUT, GENIE_BOOL, 3, empty_huge,
                                          GENIE_RES_EPHEMERAL_ACTIVATION, 0, NULL, &id),
                     GENIE_ERR_INVALID, "zeros counted as 1");
        assert_int_equal(genie_srg_add_source(g, GENIE_VAL_INPUT, GENIE_F32, 2, sh2,
                                              GENIE_RES_EPHEMERAL_ACTIVATION, 0, long_name + 1,
                                              &id), GENIE_OK);   /* exactly 4096 bytes */
        check_round_trip(g);
    }
    free(long_name);
    genie_srg_destroy(g);
}

static void test_names(void **state)
{
    static const char *const phases[] = { "unknown", "forward", "llm_prefill", "llm_decode",
                                          "vision_encoding", "vision_decoding",
                                          "multimodal_fusion", "training" };
    static const char *const res[] = { "ephemeral_activation", "persistent_weight",
                                       "stateful_kv_cache", "gradient" };
    static const char *const mods[] = { "none", "vision", "text", "audio", "fusion" };
    static const char *const blocks[] = { "none", "attention", "mlp", "conv", "norm",
                                          "embedding", "head" };

    (void)state;
    for (int p = 0; p < GENIE_PHASE_COUNT; p++) {
        assert_string_equal(genie_phase_name((genie_phase_t)p), phases[p]);
        assert_int_equal(genie_phase_from_name(phases[p]), p);
    }
    for (int r = 0; r < GENIE_RES_COUNT; r++) {
        assert_string_equal(genie_residency_name((genie_residency_t)r), res[r]);
    }
    for (int m = 0; m < GENIE_MOD_COUNT; m++) {
        assert_string_equal(genie_modality_name((genie_modality_t)m), mods[m]);
    }
    assert_int_equal(sizeof(blocks) / sizeof(blocks[0]), GENIE_BLOCK_COUNT);
    for (int b = 0; b < GENIE_BLOCK_COUNT; b++) {
        assert_string_equal(genie_block_name((genie_block_t)b), blocks[b]);
        assert_int_equal(genie_block_from_name(blocks[b]), b);
    }
    assert_int_equal(GENIE_BLOCK_ATTENTION, 1);   /* numbering is the wire format */
    assert_int_equal(GENIE_BLOCK_HEAD, 6);
    assert_string_equal(genie_block_name(GENIE_BLOCK_COUNT), "invalid");
    assert_string_equal(genie_block_name((genie_block_t)-1), "invalid");
    assert_int_equal(genie_block_from_name("Attention"), -1);
    assert_int_equal(genie_block_from_name("invalid"), -1);
    assert_int_equal(genie_block_from_name(""), -1);
    assert_int_equal(genie_block_from_name(NULL), -1);
    assert_string_equal(genie_phase_name(GENIE_PHASE_COUNT), "invalid");
    assert_string_equal(genie_residency_name((genie_residency_t)-1), "invalid");
    assert_string_equal(genie_modality_name(GENIE_MOD_COUNT), "invalid");
    assert_int_equal(genie_phase_from_name("prefill"), -1);
    assert_int_equal(genie_phase_from_name(""), -1);
    assert_int_equal(genie_phase_from_name(NULL), -1);
}

/* ---- cost ------------------------------------------------------------------- */

static void test_cost(void **state)
{
    sample_t s;
    const genie_srg_node_t *n;
    const uint64_t q = 1 * S_H * S_T * S_D;   /* elements of a (B, H, T, D) tensor */

    (void)state;
    build_sample(&s);
    genie_srg_annotate_cost(s.g);

    /* addmm: bias (3C) + x (T, C) + W (C, 3C) in, (T, 3C) out; 2 * T * 3C * C */
    n = genie_srg_node(s.g, s.n_mm);
    assert_int_equal(n->flops, 2ull * S_T * 3 * S_C * S_C);
    assert_int_equal(n->bytes, 4ull * (3 * S_C + S_T * S_C + S_C * 3 * S_C + S_T * 3 * S_C));
    assert_true(fabs(n->intensity - (double)n->flops / (double)n->bytes) < 1e-12);

    /* sdpa: 4 * B * H * Tq * Tk * D; inputs q, k, v (NONE mask skipped) and out */
    n = genie_srg_node(s.g, s.n_sdpa);
    assert_int_equal(n->flops, 4ull * 1 * S_H * S_T * S_T * S_D);
    assert_int_equal(n->bytes, 4ull * 4 * q);

    /* layer_norm ~8 per input element; bytes: input + 3 outputs */
    n = genie_srg_node(s.g, s.n_ln);
    assert_int_equal(n->flops, 8ull * S_T * S_C);
    assert_int_equal(n->bytes, 4ull * (2 * S_T * S_C + 2 * S_T));

    /* softmax ~5 per element; elementwise 1 per element */
    assert_int_equal(genie_srg_node(s.g, s.n_sm)->flops, 5 * q);
    assert_int_equal(genie_srg_node(s.g, s.n_mf)->flops, q);
    assert_int_equal(genie_srg_node(s.g, s.n_mf)->bytes, 4 * 3 * q);

    /* views move nothing */
    n = genie_srg_node(s.g, s.n_view);
    assert_int_equal(n->flops, 0);
    assert_int_equal(n->bytes, 0);
    assert_true(n->intensity == 0.0);

    /* data movement: bytes, no flops (embedding: table + ids + out) */
    n = genie_srg_node(s.g, 0);
    assert_int_equal(n->op, GENIE_OP_EMBEDDING);
    assert_int_equal(n->flops, 0);
    assert_int_equal(n->bytes, 4ull * S_V * S_C + 8ull * S_T + 4ull * S_T * S_C);

    /* cost survives the round trip (header flag COST) */
    check_round_trip(s.g);
    genie_srg_annotate_cost(NULL);
    genie_srg_destroy(s.g);
}

/* Malformed operands (wrong arity or rank) must not crash the estimator. */
static void test_cost_malformed(void **state)
{
    static const int64_t sh1[] = { 5 };
    genie_srg_t *g = NULL;
    uint32_t x, none = GENIE_SRG_NONE;

    (void)state;
    assert_int_equal(genie_srg_create(&g), GENIE_OK);
    assert_int_equal(genie_srg_add_source(g, GENIE_VAL_INPUT, GENIE_F32, 0, NULL,
                                          GENIE_RES_EPHEMERAL_ACTIVATION, 0, NULL, &x), GENIE_OK);
    for (uint32_t op = 0; op < GENIE_OP_COUNT; op++) {
        add1(g, op, NULL, 0, NULL, 0, GENIE_F32, 1, sh1, GENIE_PHASE_FORWARD, "");
        add1(g, op, &x, 1, NULL, 0, GENIE_F32, 0, NULL, GENIE_PHASE_FORWARD, "");
        add1(g, op, &none, 1, NULL, 0, GENIE_F32, 1, sh1, GENIE_PHASE_FORWARD, "");
    }
    genie_srg_annotate_cost(g);
    for (uint32_t i = 0; i < genie_srg_n_nodes(g); i++) {
        const genie_srg_node_t *n = genie_srg_node(g, i);
        assert_true(isfinite(n->intensity) && n->intensity >= 0.0);
    }
    check_round_trip(g);
    genie_srg_destroy(g);
}

/* ---- JSON --------------------------------------------------------------------- */

static void test_json(void **state)
{
    sample_t s;
    char *json = NULL;

    (void)state;
    build_sample(&s);
    genie_srg_annotate_cost(s.g);
    assert_int_equal(genie_srg_to_json(s.g, &json), GENIE_OK);
    assert_true(json_valid(json));
    /* keys */
    static const char *const keys[] = {
        "\"format\": \"genie-srg\"", "\"version\": 2", "\"ops_revision\": 3", "\"values\": [",
        "\"nodes\": [", "\"edges\": [", "\"from_node\": ", "\"to_node\": ", "\"value\": ",
        "\"bytes\": ", "\"kind\": \"weight\"", "\"dtype\": \"float32\"", "\"shape\": [1, 8, 16]",
        "\"residency\": \"persistent_weight\"", "\"residency\": \"stateful_kv_cache\"",
        "\"producer\": null", "\"ref\": 16045690984503111693", "\"keep_id\": 11259375",
        "\"is_output\": true", "\"name\": \"transformer.wte.weight\"",
        "\"op\": \"addmm.default\"", "\"op_id\": 61", "\"phase\": \"llm_prefill\"",
        "\"phase\": \"llm_decode\"", "\"modality\": \"text\"",
        /* block follows residency on every node */
        "\"residency\": \"ephemeral_activation\", \"block\": \"attention\", "
        "\"module_path\": \"transformer.h.0.attn.c_attn\"",
        "\"block\": \"embedding\", \"module_path\": \"transformer.wte\"",
        "\"block\": \"norm\"", "\"block\": \"none\"", "\"block\": \"head\"",
        "\"block\": \"mlp\", \"module_path\": \"transformer.h.0.mlp.act\"",
        "\"module_path\": \"transformer.h.0.attn.c_attn\"", "\"inputs\": [", "\"outputs\": [",
        "\"attrs\": [", "\"cost\": {\"flops\": ", "\"intensity\": ",
        "{\"type\": \"ints\", \"value\": [16]}", "{\"type\": \"float\", \"value\": 1.0000000000000001e-05}",
        "{\"type\": \"bool\", \"value\": true}", "{\"type\": \"none\", \"value\": null}",
        "{\"type\": \"dtype\", \"value\": \"float16\"}", "{\"type\": \"str\", \"value\": \"tanh\"}",
        "{\"type\": \"int\", \"value\": -1}", "{\"type\": \"float\", \"value\": \"-inf\"}",
        /* escapes: quote, backslash, newline, tab, control char, UTF-8 kept, bad byte replaced */
        "h.0.attn \\\"quoted\\\" \\\\ back\\nslash\\ttab\\u0001 caf\xc3\xa9 \\ufffd\"",
        /* an absent optional input is null in "inputs" and makes no edge */
        "\"inputs\": [13, 14, 14, null]",
        "{\"from_node\": null, \"to_node\": 0, \"value\": 1, \"bytes\": 3200}",
        "{\"from_node\": 3, \"to_node\": 4, \"value\": 9, \"bytes\": 1536}",
    };
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        if (strstr(json, keys[k]) == NULL) {
            print_error("JSON lacks %s\n%s\n", keys[k], json);
            fail();
        }
    }
    {
        uint32_t n_block = 0;
        for (const char *p = json; (p = strstr(p, "\"block\": ")) != NULL; p++) {
            n_block++;
        }
        assert_int_equal(n_block, genie_srg_n_nodes(s.g));   /* on every node, once */
    }
    free(json);
    expect_error(genie_srg_to_json(NULL, &json), GENIE_ERR_INVALID, NULL);
    genie_srg_destroy(s.g);
}

static void test_json_empty(void **state)
{
    genie_srg_t *g = NULL;
    char *json = NULL;

    (void)state;
    assert_int_equal(genie_srg_create(&g), GENIE_OK);
    assert_int_equal(genie_srg_to_json(g, &json), GENIE_OK);
    assert_true(json_valid(json));
    assert_non_null(strstr(json, "\"edges\": [\n  ]"));
    free(json);
    check_round_trip(g);
    genie_srg_destroy(g);
}

/* ---- round trips through the builder's graphs --------------------------------- */

static void test_round_trip(void **state)
{
    sample_t s;

    (void)state;
    build_sample(&s);
    check_round_trip(s.g);            /* without cost: header flag clear */
    genie_srg_annotate_cost(s.g);
    check_round_trip(s.g);            /* with cost */
    genie_srg_destroy(s.g);
}

/* Every block value survives encode/decode, at the byte the spec gives it
 * (offset 5 of the node record), and the default is NONE. */
static void test_block_round_trip(void **state)
{
    genie_srg_t *g = build_chain(GENIE_BLOCK_COUNT + 1), *back = NULL;
    uint8_t *buf = NULL;
    size_t len = 0, off;

    (void)state;
    assert_int_equal(genie_srg_node(g, GENIE_BLOCK_COUNT)->block, GENIE_BLOCK_NONE);
    for (uint32_t i = 0; i < GENIE_BLOCK_COUNT; i++) {
        /* node i gets block (i + 1) % COUNT: every value, NONE last */
        genie_block_t b = (genie_block_t)((i + 1) % GENIE_BLOCK_COUNT);
        assert_int_equal(genie_srg_set_node_block(g, i, b), GENIE_OK);
    }
    assert_int_equal(genie_srg_encode(g, &buf, &len), GENIE_OK);
    assert_int_equal(genie_srg_decode(buf, len, &back), GENIE_OK);
    assert_graph_equal(g, back);
    for (uint32_t i = 0; i < GENIE_BLOCK_COUNT; i++) {
        assert_int_equal(genie_srg_node(back, i)->block, (i + 1) % GENIE_BLOCK_COUNT);
    }
    assert_int_equal(genie_srg_node(back, GENIE_BLOCK_COUNT)->block, GENIE_BLOCK_NONE);
    /* node 0 starts right after the value table: the header, the sources x and
     * w (2 dims, 1-byte names) and the COUNT + 1 node outputs (2 dims, no name) */
    off = 28 + 2 * (33 + 16 + 1) + (GENIE_BLOCK_COUNT + 1) * (33 + 16);
    assert_true(off + 6 <= len);
    assert_int_equal(buf[off + 5], GENIE_BLOCK_ATTENTION);
    check_round_trip(back);
    free(buf);
    genie_srg_destroy(back);
    genie_srg_destroy(g);
}

/* Encoding a 2,000-node graph must stay far below a millisecond (it is on the
 * path of every request); the bound asserted here is loose so that sanitizer
 * and loaded CI builds pass, the measured time is printed. */
static void test_encode_speed(void **state)
{
    genie_srg_t *g = build_chain(2000), *back = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    double best_enc = 1e9, best_dec = 1e9, t0;

    (void)state;
    genie_srg_annotate_cost(g);
    for (int rep = 0; rep < 20; rep++) {
        t0 = now_s();
        assert_int_equal(genie_srg_encode(g, &buf, &len), GENIE_OK);
        t0 = now_s() - t0;
        best_enc = t0 < best_enc ? t0 : best_enc;
        t0 = now_s();
        assert_int_equal(genie_srg_decode(buf, len, &back), GENIE_OK);
        t0 = now_s() - t0;
        best_dec = t0 < best_dec ? t0 : best_dec;
        genie_srg_destroy(back);
        free(buf);
    }
    printf("[ info     ] 2000-node graph: %zu bytes, encode %.1f us, decode %.1f us (best of 20)\n",
           len, best_enc * 1e6, best_dec * 1e6);
    assert_true(best_enc < 20e-3);
    genie_srg_destroy(g);
}

/* The worked example of docs/srg-format.md (sections 9 and 10), byte for
 * byte and character for character, so the document cannot drift. */
static void test_doc_example(void **state)
{
    static const uint8_t want[] = {
        0x47, 0x53, 0x52, 0x47, 0x02, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00,
        0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0xde, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        /* value 0 */
        0x01, 0x00, 0x00, 0x02, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0x02, 0, 0, 0, 0, 0, 0, 0, 0x03, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0, 0, 'x',
        /* value 1 */
        0x02, 0x00, 0x01, 0x02, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0, 0, 0, 0, 0, 0, 0, 0,
        0x03, 0, 0, 0, 0, 0, 0, 0, 0x04, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0, 0, 'w',
        /* value 2 */
        0x00, 0x00, 0x00, 0x02, 0x01, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0x02, 0, 0, 0, 0, 0, 0, 0, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        /* node 0 */
        0x3e, 0x00, 0x02, 0x02, 0x00, 0x02, 0x02, 0, 0, 0, 0x01, 0, 0, 0, 0x01, 0, 0, 0,
        0x02, 0, 0, 0, 'f', 'c', 0, 0, 0, 0, 0x01, 0, 0, 0, 0x02, 0, 0, 0,
        0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    };
    static const char want_json[] =
        "{\n"
        "  \"format\": \"genie-srg\", \"version\": 2, \"ops_revision\": 3,\n"
        "  \"values\": [\n"
        "    {\"id\": 0, \"kind\": \"input\", \"dtype\": \"float32\", \"shape\": [2, 3], \"bytes\": 24, \"residency\": \"ephemeral_activation\", \"producer\": null, \"producer_out\": null, \"ref\": 0, \"keep_id\": 0, \"is_output\": false, \"name\": \"x\"},\n"
        "    {\"id\": 1, \"kind\": \"weight\", \"dtype\": \"float32\", \"shape\": [3, 4], \"bytes\": 48, \"residency\": \"persistent_weight\", \"producer\": null, \"producer_out\": null, \"ref\": 1234605616436508552, \"keep_id\": 0, \"is_output\": false, \"name\": \"w\"},\n"
        "    {\"id\": 2, \"kind\": \"node\", \"dtype\": \"float32\", \"shape\": [2, 4], \"bytes\": 32, \"residency\": \"ephemeral_activation\", \"producer\": 0, \"producer_out\": 0, \"ref\": 0, \"keep_id\": 0, \"is_output\": true, \"name\": \"\"}\n"
        "  ],\n"
        "  \"nodes\": [\n"
        "    {\"id\": 0, \"op\": \"mm.default\", \"op_id\": 62, \"phase\": \"llm_prefill\", \"modality\": \"text\", \"residency\": \"ephemeral_activation\", \"block\": \"mlp\", \"module_path\": \"fc\",\n"
        "     \"inputs\": [0, 1], \"outputs\": [2],\n"
        "     \"attrs\": [{\"type\": \"int\", \"value\": -1}],\n"
        "     \"cost\": {\"flops\": 48, \"bytes\": 104, \"intensity\": 0.46153846153846156}}\n"
        "  ],\n"
        "  \"edges\": [\n"
        "    {\"from_node\": null, \"to_node\": 0, \"value\": 0, \"bytes\": 24},\n"
        "    {\"from_node\": null, \"to_node\": 0, \"value\": 1, \"bytes\": 48}\n"
        "  ]\n"
        "}\n";
    static const int64_t sx[] = { 2, 3 }, sw[] = { 3, 4 }, sy[] = { 2, 4 };
    genie_srg_attr_t a[1] = { { .tag = GENIE_ATTR_INT, .i = -1 } };
    genie_srg_t *g = NULL;
    uint32_t in[2], y;
    uint8_t *buf = NULL;
    size_t len = 0;
    char *json = NULL;

    (void)state;
    assert_int_equal(genie_srg_create(&g), GENIE_OK);
    assert_int_equal(genie_srg_add_source(g, GENIE_VAL_INPUT, GENIE_F32, 2, sx,
                                          GENIE_RES_EPHEMERAL_ACTIVATION, 0, "x", &in[0]),
                     GENIE_OK);
    assert_int_equal(genie_srg_add_source(g, GENIE_VAL_WEIGHT, GENIE_F32, 2, sw,
                                          GENIE_RES_PERSISTENT_WEIGHT, 0x1122334455667788ull,
                                          "w", &in[1]), GENIE_OK);
    y = add1(g, GENIE_OP_MM, in, 2, a, 1, GENIE_F32, 2, sy, GENIE_PHASE_LLM_PREFILL, "fc");
    assert_int_equal(genie_srg_set_node_block(g, 0, GENIE_BLOCK_MLP), GENIE_OK);
    assert_int_equal(genie_srg_mark_output(g, y, 1, 0), GENIE_OK);
    assert_int_equal(genie_srg_encode(g, &buf, &len), GENIE_OK);
    assert_int_equal(len, sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));
    genie_srg_annotate_cost(g);
    assert_int_equal(genie_srg_to_json(g, &json), GENIE_OK);
    if (strcmp(json, want_json) != 0) {
        print_error("JSON differs from docs/srg-format.md:\n%s\n", json);
        fail();
    }
    free(json);
    free(buf);
    genie_srg_destroy(g);
}

/* ---- an independent writer of the format (docs/srg-format.md) ---------------- */

typedef struct tattr {
    uint8_t        tag;
    int64_t        i;      /* INT, BOOL, DTYPE */
    double         f;
    uint32_t       n;      /* INTS count */
    const int64_t *ints;
    const char    *s;
} tattr_t;

typedef struct tval {
    uint8_t     kind, dtype, res, ndim, flags;
    uint32_t    producer, pout;
    uint64_t    ref, keep;
    int64_t     shape[GENIE_MAX_DIMS + 2];
    const char *name;
} tval_t;

typedef struct tnode {
    uint16_t    op;
    uint8_t     phase, mod, res, block;
    uint32_t    n_in, n_out, n_attr;
    const char *path;
    uint32_t    in[4], out[4];
    tattr_t     attr[6];
    uint64_t    flops, bytes;
    double      intensity;
} tnode_t;

typedef struct tgraph {
    char     magic[4];
    uint16_t version, ops_rev;
    uint32_t flags;
    uint32_t n_values, n_nodes;
    tval_t   v[12];
    tnode_t  n[6];
    /* written by tg_encode */
    uint8_t  buf[12288];
    size_t   len;
    size_t   off_value[12], off_node[6];   /* where each record starts */
} tgraph_t;

static void w8(tgraph_t *g, uint8_t x)
{
    assert_true(g->len < sizeof(g->buf));
    g->buf[g->len++] = x;
}

static void wle(tgraph_t *g, uint64_t x, int bytes)
{
    for (int k = 0; k < bytes; k++) {
        w8(g, (uint8_t)(x >> (8 * k)));
    }
}

static void wstr(tgraph_t *g, const char *s)
{
    size_t n = strlen(s);

    wle(g, n, 4);
    for (size_t k = 0; k < n; k++) {
        w8(g, (uint8_t)s[k]);
    }
}

static void put_le_at(uint8_t *buf, size_t off, uint64_t x, int bytes)
{
    for (int k = 0; k < bytes; k++) {
        buf[off + (size_t)k] = (uint8_t)(x >> (8 * k));
    }
}

static void tg_encode(tgraph_t *g)
{
    g->len = 0;
    for (int k = 0; k < 4; k++) {
        w8(g, (uint8_t)g->magic[k]);
    }
    wle(g, g->version, 2);
    wle(g, g->ops_rev, 2);
    wle(g, g->flags, 4);
    wle(g, g->n_values, 4);
    wle(g, g->n_nodes, 4);
    wle(g, 0, 8);                       /* total_len, patched below */
    for (uint32_t i = 0; i < g->n_values; i++) {
        const tval_t *v = &g->v[i];
        g->off_value[i] = g->len;
        w8(g, v->kind);
        w8(g, v->dtype);
        w8(g, v->res);
        w8(g, v->ndim);
        w8(g, v->flags);
        wle(g, v->producer, 4);
        wle(g, v->pout, 4);
        wle(g, v->ref, 8);
        wle(g, v->keep, 8);
        for (int d = 0; d < v->ndim && d < GENIE_MAX_DIMS + 2; d++) {
            wle(g, (uint64_t)v->shape[d], 8);
        }
        wstr(g, v->name ? v->name : "");
    }
    for (uint32_t i = 0; i < g->n_nodes; i++) {
        const tnode_t *n = &g->n[i];
        g->off_node[i] = g->len;
        wle(g, n->op, 2);
        w8(g, n->phase);
        w8(g, n->mod);
        w8(g, n->res);
        w8(g, n->block);
        wle(g, n->n_in, 4);
        wle(g, n->n_out, 4);
        wle(g, n->n_attr, 4);
        wstr(g, n->path ? n->path : "");
        for (uint32_t k = 0; k < n->n_in; k++) {
            wle(g, n->in[k], 4);
        }
        for (uint32_t k = 0; k < n->n_out; k++) {
            wle(g, n->out[k], 4);
        }
        for (uint32_t k = 0; k < n->n_attr; k++) {
            const tattr_t *a = &n->attr[k];
            uint64_t bits;
            w8(g, a->tag);
            switch (a->tag) {
            case GENIE_ATTR_INT:   wle(g, (uint64_t)a->i, 8); break;
            case GENIE_ATTR_FLOAT: memcpy(&bits, &a->f, 8); wle(g, bits, 8); break;
            case GENIE_ATTR_BOOL:
            case GENIE_ATTR_DTYPE: w8(g, (uint8_t)a->i); break;
            case GENIE_ATTR_INTS:
                wle(g, a->n, 4);
                for (uint32_t e = 0; e < a->n; e++) {
                    wle(g, (uint64_t)a->ints[e], 8);
                }
                break;
            case GENIE_ATTR_STR:   wstr(g, a->s); break;
            default:               break;
            }
        }
        if (g->flags & 1u) {
            uint64_t bits;
            wle(g, n->flops, 8);
            wle(g, n->bytes, 8);
            memcpy(&bits, &n->intensity, 8);
            wle(g, bits, 8);
        }
    }
    put_le_at(g->buf, 20, g->len, 8);
}

/* Offsets inside records (the framing of docs/srg-format.md). */
enum {
    HDR_VERSION = 4, HDR_OPS_REV = 6, HDR_FLAGS = 8, HDR_N_VALUES = 12, HDR_N_NODES = 16,
    HDR_TOTAL = 20, HDR_SIZE = 28,
    V_KIND = 0, V_DTYPE = 1, V_RES = 2, V_NDIM = 3, V_FLAGS = 4, V_PRODUCER = 5, V_POUT = 9,
    V_SHAPE = 29,
    N_OP = 0, N_PHASE = 2, N_MOD = 3, N_RES = 4, N_BLOCK = 5, N_N_IN = 6, N_N_OUT = 10,
    N_N_ATTR = 14, N_PATH = 18,
};

static const int64_t t_ints[] = { 4, -1, INT64_MIN, INT64_MAX };

/*
 * values: 0 x INPUT f32 (2, 3)      1 w WEIGHT f32 (3, 4)
 *         2 mm  (2, 4)  out, keep   3 relu (2, 4)
 *         4..6 layer_norm outputs   7 kv RESIDENT f32 (2, 4)
 *         8 add (2, 4)              9 to_copy f16 (2, 4)
 * nodes:  0 mm(0, 1)  1 relu(2)  2 layer_norm(3, NONE, NONE)
 *         3 add(3, 7)  4 to_copy(8) with one attr of every tag
 */
static void tg_base(tgraph_t *g, int with_cost)
{
    static const struct { uint8_t kind, res; uint32_t producer, pout; int64_t s0, s1;
                          const char *name; } vs[10] = {
        { GENIE_VAL_INPUT, 0, GENIE_SRG_NONE, GENIE_SRG_NONE, 2, 3, "x" },
        { GENIE_VAL_WEIGHT, 1, GENIE_SRG_NONE, GENIE_SRG_NONE, 3, 4, "w" },
        { GENIE_VAL_NODE, 0, 0, 0, 2, 4, "" },
        { GENIE_VAL_NODE, 0, 1, 0, 2, 4, "" },
        { GENIE_VAL_NODE, 0, 2, 0, 2, 4, "" },
        { GENIE_VAL_NODE, 0, 2, 1, 2, 1, "" },
        { GENIE_VAL_NODE, 0, 2, 2, 2, 1, "" },
        { GENIE_VAL_RESIDENT, 2, GENIE_SRG_NONE, GENIE_SRG_NONE, 2, 4, "kv" },
        { GENIE_VAL_NODE, 0, 3, 0, 2, 4, "" },
        { GENIE_VAL_NODE, 0, 4, 0, 2, 4, "" },
    };

    memset(g, 0, sizeof(*g));
    memcpy(g->magic, "GSRG", 4);
    g->version  = 2;
    g->ops_rev  = GENIE_SRG_OPS_REVISION;
    g->flags    = with_cost ? 1u : 0u;
    g->n_values = 10;
    g->n_nodes  = 5;
    for (int i = 0; i < 10; i++) {
        g->v[i] = (tval_t){ .kind = vs[i].kind, .dtype = GENIE_F32, .res = vs[i].res, .ndim = 2,
                            .producer = vs[i].producer, .pout = vs[i].pout,
                            .shape = { vs[i].s0, vs[i].s1 }, .name = vs[i].name };
    }
    g->v[1].ref   = 0x1122334455667788ull;
    g->v[2].flags = 1;
    g->v[2].keep  = 7;
    g->v[7].ref   = 99;
    g->v[9].dtype = GENIE_F16;
    g->n[0] = (tnode_t){ .op = GENIE_OP_MM, .phase = GENIE_PHASE_LLM_PREFILL,
                         .mod = GENIE_MOD_TEXT, .block = GENIE_BLOCK_MLP, .n_in = 2, .n_out = 1,
                         .path = "l0.mm", .in = { 0, 1 }, .out = { 2 } };
    g->n[1] = (tnode_t){ .op = GENIE_OP_RELU, .n_in = 1, .n_out = 1, .in = { 2 }, .out = { 3 } };
    g->n[2] = (tnode_t){ .op = GENIE_OP_LAYER_NORM, .phase = GENIE_PHASE_LLM_DECODE,
                         .res = GENIE_RES_STATEFUL_KV_CACHE, .block = GENIE_BLOCK_NORM, .n_in = 3,
                         .n_out = 3, .n_attr = 2, .path = "l0.ln",
                         .in = { 3, GENIE_SRG_NONE, GENIE_SRG_NONE },
                         .out = { 4, 5, 6 },
                         .attr = { { .tag = GENIE_ATTR_INTS, .n = 1, .ints = t_ints },
                                   { .tag = GENIE_ATTR_FLOAT, .f = 1e-5 } } };
    g->n[3] = (tnode_t){ .op = GENIE_OP_ADD, .mod = GENIE_MOD_FUSION, .n_in = 2, .n_out = 1,
                         .in = { 3, 7 }, .out = { 8 } };
    g->n[4] = (tnode_t){ .op = GENIE_OP_TO_COPY, .phase = GENIE_PHASE_TRAINING,
                         .res = GENIE_RES_GRADIENT, .block = GENIE_BLOCK_HEAD, .n_in = 1, .n_out = 1,
                         .n_attr = 6, .path = "head", .in = { 8 }, .out = { 9 },
                         .attr = { { .tag = GENIE_ATTR_DTYPE, .i = GENIE_F16 },
                                   { .tag = GENIE_ATTR_NONE },
                                   { .tag = GENIE_ATTR_BOOL, .i = 1 },
                                   { .tag = GENIE_ATTR_INT, .i = -3 },
                                   { .tag = GENIE_ATTR_STR, .s = "tanh" },
                                   { .tag = GENIE_ATTR_INTS, .n = 4, .ints = t_ints } } };
    if (with_cost) {
        for (int i = 0; i < 5; i++) {
            g->n[i].flops     = 100u * (unsigned)i;
            g->n[i].bytes     = 64;
            g->n[i].intensity = 100.0 * i / 64.0;
        }
    }
    tg_encode(g);
}

/* The hand-written bytes decode to the graph they describe, and the library
 * re-encodes them byte for byte: spec and implementation agree. */
static void test_spec_conformance(void **state)
{
    (void)state;
    for (int with_cost = 0; with_cost < 2; with_cost++) {
        tgraph_t *t = malloc(sizeof(*t));
        genie_srg_t *g = NULL;
        uint8_t *buf = NULL;
        size_t len = 0;
        const genie_srg_node_t *n;
        const genie_srg_value_t *v;

        assert_non_null(t);
        tg_base(t, with_cost);
        genie_clear_error();
        if (genie_srg_decode(t->buf, t->len, &g) != GENIE_OK) {
            print_error("%s\n", genie_last_error());
            fail();
        }
        assert_graph_valid(g);
        assert_int_equal(genie_srg_n_values(g), 10);
        assert_int_equal(genie_srg_n_nodes(g), 5);
        v = genie_srg_value(g, 1);
        assert_int_equal(v->kind, GENIE_VAL_WEIGHT);
        assert_int_equal(v->ref, 0x1122334455667788ull);
        assert_string_equal(v->name, "w");
        assert_int_equal(genie_srg_value(g, 2)->is_output, 1);
        assert_int_equal(genie_srg_value(g, 2)->keep_id, 7);
        assert_int_equal(genie_srg_value(g, 7)->residency, GENIE_RES_STATEFUL_KV_CACHE);
        n = genie_srg_node(g, 4);
        assert_int_equal(n->op, GENIE_OP_TO_COPY);
        assert_int_equal(n->phase, GENIE_PHASE_TRAINING);
        assert_int_equal(n->residency, GENIE_RES_GRADIENT);
        assert_int_equal(n->block, GENIE_BLOCK_HEAD);
        assert_int_equal(genie_srg_node(g, 0)->block, GENIE_BLOCK_MLP);
        assert_int_equal(genie_srg_node(g, 1)->block, GENIE_BLOCK_NONE);
        assert_int_equal(genie_srg_node(g, 2)->block, GENIE_BLOCK_NORM);
        assert_int_equal(n->attrs[5].n, 4);
        assert_int_equal(n->attrs[5].ints[2], INT64_MIN);
        assert_string_equal(n->attrs[4].s, "tanh");
        assert_int_equal(n->flops, with_cost ? 400 : 0);
        assert_int_equal(genie_srg_encode(g, &buf, &len), GENIE_OK);
        assert_int_equal(len, t->len);
        assert_memory_equal(buf, t->buf, len);
        check_round_trip(g);
        free(buf);
        genie_srg_destroy(g);
        free(t);
    }
}

/* Truncated at every length: with the header's total_len as written (caught at
 * the header), and with total_len patched to the new length so that each
 * record's own bounds check is reached.  Every one must be TRUNCATED. */
static void test_truncation(void **state)
{
    tgraph_t *t = malloc(sizeof(*t));
    uint8_t *cut;
    size_t checked = 0;

    (void)state;
    assert_non_null(t);
    for (int with_cost = 0; with_cost < 2; with_cost++) {
        tg_base(t, with_cost);
        for (size_t len = 0; len < t->len; len++) {
            cut = malloc(len ? len : 1);   /* exact size: ASan sees any over-read */
            assert_non_null(cut);
            memcpy(cut, t->buf, len);
            expect_reject(cut, len, GENIE_ERR_TRUNCATED, "truncated");
            if (len >= HDR_SIZE) {
                put_le_at(cut, HDR_TOTAL, len, 8);
                expect_reject(cut, len, GENIE_ERR_TRUNCATED, "truncated");
            }
            free(cut);
            checked++;
        }
    }
    /* and the builder's larger graph, prefix lengths with patched total_len */
    {
        sample_t s;
        uint8_t *buf = NULL;
        size_t len = 0;
        build_sample(&s);
        genie_srg_annotate_cost(s.g);
        assert_int_equal(genie_srg_encode(s.g, &buf, &len), GENIE_OK);
        for (size_t l = HDR_SIZE; l < len; l++) {
            cut = malloc(l);
            assert_non_null(cut);
            memcpy(cut, buf, l);
            put_le_at(cut, HDR_TOTAL, l, 8);
            expect_reject(cut, l, GENIE_ERR_TRUNCATED, "truncated");
            free(cut);
            checked++;
        }
        free(buf);
        genie_srg_destroy(s.g);
    }
    printf("[ info     ] %zu truncated buffers refused\n", checked);
    free(t);
}

/* One wrong field at a time.  Each case edits the description (or patches
 * the bytes), re-encodes, and names the status and a phrase of the message. */
typedef void (*tg_edit_fn)(tgraph_t *g);

typedef struct reject_case {
    const char     *what;
    tg_edit_fn      edit;
    genie_status_t  want;
    const char     *needle;
} reject_case_t;

/* header */
static void e_magic(tgraph_t *g)        { g->magic[0] = 'X'; tg_encode(g); }
static void e_version1(tgraph_t *g)     { g->version = 1; tg_encode(g); }
static void e_version3(tgraph_t *g)     { g->version = 3; tg_encode(g); }
static void e_version0(tgraph_t *g)     { g->version = 0; tg_encode(g); }
static void e_opsrev0(tgraph_t *g)      { g->ops_rev = 0; tg_encode(g); }
static void e_opsrev_next(tgraph_t *g)  { g->ops_rev = GENIE_SRG_OPS_REVISION + 1; tg_encode(g); }
static void e_hdr_flags(tgraph_t *g)    { g->flags = 0x4; tg_encode(g); }
static void e_total_big(tgraph_t *g)    { put_le_at(g->buf, HDR_TOTAL, g->len + 1, 8); }
static void e_total_huge(tgraph_t *g)   { put_le_at(g->buf, HDR_TOTAL, UINT64_MAX, 8); }
static void e_trailing(tgraph_t *g)     { g->buf[g->len++] = 0; }   /* total_len unchanged */
static void e_trailing_in(tgraph_t *g)  { g->buf[g->len++] = 0; put_le_at(g->buf, HDR_TOTAL, g->len, 8); }
static void e_nodes_max(tgraph_t *g)    { put_le_at(g->buf, HDR_N_NODES, 0xFFFFFFFFu, 4); }
static void e_nodes_huge(tgraph_t *g)   { put_le_at(g->buf, HDR_N_NODES, 0xFFFFFFFEu, 4); }
static void e_values_huge(tgraph_t *g)  { put_le_at(g->buf, HDR_N_VALUES, 0x7FFFFFFFu, 4); }
static void e_values_max(tgraph_t *g)   { put_le_at(g->buf, HDR_N_VALUES, 0xFFFFFFFFu, 4); }
static void e_nodes_plus1(tgraph_t *g)  { put_le_at(g->buf, HDR_N_NODES, g->n_nodes + 1, 4); }
static void e_values_less(tgraph_t *g)  { put_le_at(g->buf, HDR_N_VALUES, g->n_values - 1, 4); }
/* values */
static void e_kind(tgraph_t *g)         { g->v[0].kind = GENIE_VAL_KIND_COUNT; tg_encode(g); }
static void e_dtype(tgraph_t *g)        { g->v[3].dtype = GENIE_DTYPE_COUNT; tg_encode(g); }
static void e_dtype_ff(tgraph_t *g)     { g->v[3].dtype = 0xff; tg_encode(g); }
static void e_vres(tgraph_t *g)         { g->v[1].res = GENIE_RES_COUNT; tg_encode(g); }
static void e_vflags(tgraph_t *g)       { g->v[2].flags = 0x3; tg_encode(g); }
static void e_ndim9(tgraph_t *g)        { g->v[0].ndim = 9; tg_encode(g); }
static void e_ndim_ff(tgraph_t *g)      { put_le_at(g->buf, g->off_value[0] + V_NDIM, 0xff, 1); }
static void e_neg_extent(tgraph_t *g)   { g->v[4].shape[1] = -1; tg_encode(g); }
static void e_neg_min(tgraph_t *g)      { g->v[4].shape[0] = INT64_MIN; tg_encode(g); }
static void e_overflow(tgraph_t *g)
{
    g->v[0].ndim = 3;
    g->v[0].shape[0] = INT64_C(1) << 31;
    g->v[0].shape[1] = INT64_C(1) << 31;
    g->v[0].shape[2] = 1;
    tg_encode(g);
}
static void e_overflow_wrap(tgraph_t *g)   /* product wraps to 0 mod 2^64 */
{
    g->v[0].ndim = 2;
    g->v[0].shape[0] = INT64_C(1) << 32;
    g->v[0].shape[1] = INT64_C(1) << 32;
    tg_encode(g);
}
static void e_empty_huge(tgraph_t *g)      /* an empty tensor whose strides would overflow */
{
    g->v[0].ndim = 4;
    g->v[0].shape[0] = 0;
    g->v[0].shape[1] = INT64_C(1) << 32;
    g->v[0].shape[2] = INT64_C(1) << 32;
    g->v[0].shape[3] = INT64_C(1) << 32;
    tg_encode(g);
}
static void e_negative_after_zero(tgraph_t *g)
{
    g->v[0].ndim = 2;
    g->v[0].shape[0] = 0;
    g->v[0].shape[1] = -5;
    tg_encode(g);
}
static void e_src_producer(tgraph_t *g) { g->v[1].producer = 0; tg_encode(g); }
static void e_src_pout(tgraph_t *g)     { g->v[7].pout = 0; tg_encode(g); }
static void e_producer_oob(tgraph_t *g) { g->v[3].producer = 5; tg_encode(g); }
static void e_producer_none(tgraph_t *g){ g->v[3].producer = GENIE_SRG_NONE; tg_encode(g); }
static void e_name_len(tgraph_t *g)     { put_le_at(g->buf, g->off_value[0] + V_SHAPE + 16, 1000, 4); }
static void e_name_len_max(tgraph_t *g) { put_le_at(g->buf, g->off_value[0] + V_SHAPE + 16, 0xFFFFFFFFu, 4); }
static void e_name_long(tgraph_t *g)    { put_le_at(g->buf, g->off_value[0] + V_SHAPE + 16, GENIE_SRG_MAX_NAME + 1, 4); }
static void e_name_nul(tgraph_t *g)     { g->v[7].name = "kv"; tg_encode(g); g->buf[g->off_value[7] + V_SHAPE + 16 + 4 + 1] = 0; }
/* nodes */
static void e_op(tgraph_t *g)           { g->n[1].op = GENIE_OP_COUNT; tg_encode(g); }
static void e_op_rev1(tgraph_t *g)      { g->ops_rev = 1; g->n[1].op = 78; tg_encode(g); }
static void e_op_ffff(tgraph_t *g)      { g->n[1].op = 0xffff; tg_encode(g); }
static void e_phase(tgraph_t *g)        { g->n[0].phase = GENIE_PHASE_COUNT; tg_encode(g); }
static void e_mod(tgraph_t *g)          { g->n[0].mod = GENIE_MOD_COUNT; tg_encode(g); }
static void e_nres(tgraph_t *g)         { g->n[0].res = 0xff; tg_encode(g); }
static void e_block(tgraph_t *g)        { g->n[3].block = GENIE_BLOCK_COUNT; tg_encode(g); }
static void e_block9(tgraph_t *g)       { g->n[3].block = 9; tg_encode(g); }
static void e_block_ff(tgraph_t *g)     { put_le_at(g->buf, g->off_node[0] + N_BLOCK, 0xff, 1); }
static void e_in_oob(tgraph_t *g)       { g->n[1].in[0] = 10; tg_encode(g); }
static void e_in_oob2(tgraph_t *g)      { g->n[1].in[0] = 0xFFFFFFFEu; tg_encode(g); }
static void e_forward_ref(tgraph_t *g)  { g->n[1].in[0] = 8; tg_encode(g); }    /* made by node 3 */
static void e_self_ref(tgraph_t *g)     { g->n[1].in[0] = 3; tg_encode(g); }    /* its own output */
static void e_out_source(tgraph_t *g)   { g->n[3].out[0] = 7; tg_encode(g); }
static void e_out_oob(tgraph_t *g)      { g->n[3].out[0] = 10; tg_encode(g); }
static void e_out_none(tgraph_t *g)     { g->n[3].out[0] = GENIE_SRG_NONE; tg_encode(g); }
static void e_out_other(tgraph_t *g)    { g->n[3].out[0] = 9; tg_encode(g); }   /* node 4's */
static void e_pout(tgraph_t *g)         { g->v[5].pout = 2; g->v[6].pout = 1; tg_encode(g); }
static void e_not_consec(tgraph_t *g)
{
    /* outputs 4, 6, 5 with matching producer_out: still not consecutive */
    g->n[2].out[1] = 6;
    g->n[2].out[2] = 5;
    g->v[6].pout = 1;
    g->v[5].pout = 2;
    tg_encode(g);
}
static void e_out_twice(tgraph_t *g)    { g->n[2].out[2] = 4; tg_encode(g); }
static void e_unproduced(tgraph_t *g)
{
    g->n[2].n_out = 2;   /* value 6 still claims node 2 output 2 */
    tg_encode(g);
}
static void e_no_outputs(tgraph_t *g)   { g->n[3].n_out = 0; g->v[8].kind = GENIE_VAL_INPUT;
                                          g->v[8].producer = g->v[8].pout = GENIE_SRG_NONE;
                                          g->n[4].in[0] = 7; tg_encode(g); }
static void e_n_in_huge(tgraph_t *g)    { put_le_at(g->buf, g->off_node[1] + N_N_IN, 0xFFFFFFFFu, 4); }
static void e_n_out_huge(tgraph_t *g)   { put_le_at(g->buf, g->off_node[1] + N_N_OUT, 0x40000000u, 4); }
static void e_n_attr_huge(tgraph_t *g)  { put_le_at(g->buf, g->off_node[4] + N_N_ATTR, 0xFFFFFFFFu, 4); }
static void e_path_len(tgraph_t *g)     { put_le_at(g->buf, g->off_node[4] + N_PATH, 0x10000u, 4); }
static void e_path_past(tgraph_t *g)    { put_le_at(g->buf, g->off_node[4] + N_PATH, 4000, 4); }
static void e_path_nul(tgraph_t *g)     { g->buf[g->off_node[0] + N_PATH + 4 + 2] = 0; }
static void e_attr_tag(tgraph_t *g)     { g->n[4].attr[1].tag = GENIE_ATTR_TAG_COUNT; tg_encode(g); }
static void e_attr_tag_ff(tgraph_t *g)  { g->n[4].attr[1].tag = 0xff; tg_encode(g); }
static void e_attr_bool(tgraph_t *g)    { g->n[4].attr[2].i = 2; tg_encode(g); }
static void e_attr_dtype(tgraph_t *g)   { g->n[4].attr[0].i = GENIE_DTYPE_COUNT; tg_encode(g); }
static void e_attr_ints_huge(tgraph_t *g)
{
    /* node 2 attr 0: | tag | count | ... | after the path "l0.ln", 3 ins, 3 outs */
    put_le_at(g->buf, g->off_node[2] + N_PATH + 4 + 5 + 12 + 12 + 1, 0xFFFFFFFFu, 4);
}
static void e_cost_nan(tgraph_t *g)     { g->flags = 1; g->n[2].intensity = NAN; tg_encode(g); }
static void e_cost_neg(tgraph_t *g)     { g->flags = 1; g->n[2].intensity = -1.0; tg_encode(g); }
static void e_cost_missing(tgraph_t *g) { g->flags = 0; tg_encode(g); put_le_at(g->buf, HDR_FLAGS, 1, 4); }

static void test_rejects(void **state)
{
    static const reject_case_t cases[] = {
        { "bad magic", e_magic, GENIE_ERR_CORRUPT, "bad magic" },
        { "version 1 (nodes without block)", e_version1, GENIE_ERR_VERSION,
          "format version 1, this build reads version 2 only" },
        { "version 3", e_version3, GENIE_ERR_VERSION, "format version 3" },
        { "version 0", e_version0, GENIE_ERR_VERSION, "format version 0" },
        { "ops revision 0", e_opsrev0, GENIE_ERR_VERSION, "ops revision 0" },
        { "ops revision from the future", e_opsrev_next, GENIE_ERR_VERSION, "ops revision 4" },
        { "unknown header flag", e_hdr_flags, GENIE_ERR_VERSION, "header flags 0x4" },
        { "total_len one too big", e_total_big, GENIE_ERR_TRUNCATED, "header declares" },
        { "total_len huge", e_total_huge, GENIE_ERR_TRUNCATED, "header declares" },
        { "trailing garbage", e_trailing, GENIE_ERR_CORRUPT, "1 trailing bytes" },
        { "garbage inside total_len", e_trailing_in, GENIE_ERR_CORRUPT, "1 unused bytes" },
        { "n_nodes = 2^32-1", e_nodes_max, GENIE_ERR_CORRUPT, "reserved" },
        { "n_nodes = 2^32-2", e_nodes_huge, GENIE_ERR_TRUNCATED, "4294967294 nodes" },
        { "n_values = 2^31-1", e_values_huge, GENIE_ERR_TRUNCATED, "2147483647 values" },
        { "n_values = 2^32-1", e_values_max, GENIE_ERR_CORRUPT, "reserved" },
        { "one node more than present", e_nodes_plus1, GENIE_ERR_TRUNCATED, "truncated" },
        { "one value fewer", e_values_less, GENIE_ERR_CORRUPT, NULL },
        { "value kind 4", e_kind, GENIE_ERR_CORRUPT, "value 0: kind 4" },
        { "dtype 6", e_dtype, GENIE_ERR_CORRUPT, "value 3: dtype 6" },
        { "dtype 255", e_dtype_ff, GENIE_ERR_CORRUPT, "dtype 255" },
        { "value residency 4", e_vres, GENIE_ERR_CORRUPT, "value 1: residency 4" },
        { "value flags", e_vflags, GENIE_ERR_CORRUPT, "flags 0x3" },
        { "ndim 9", e_ndim9, GENIE_ERR_CORRUPT, "ndim 9 exceeds 8" },
        { "ndim 255", e_ndim_ff, GENIE_ERR_CORRUPT, "ndim 255" },
        { "negative extent", e_neg_extent, GENIE_ERR_CORRUPT, "value 4: float32 shape has a negative extent" },
        { "INT64_MIN extent", e_neg_min, GENIE_ERR_CORRUPT, "negative extent" },
        { "numel overflow", e_overflow, GENIE_ERR_CORRUPT, "2^62" },
        { "numel wraps to 0", e_overflow_wrap, GENIE_ERR_CORRUPT, "2^62" },
        { "empty, strides overflow", e_empty_huge, GENIE_ERR_CORRUPT, "zeros counted as 1" },
        { "negative extent after a zero", e_negative_after_zero, GENIE_ERR_CORRUPT, "negative extent" },
        { "source with producer", e_src_producer, GENIE_ERR_CORRUPT, "value 1: weight value names producer 0" },
        { "source with producer_out", e_src_pout, GENIE_ERR_CORRUPT, "value 7: resident" },
        { "producer out of range", e_producer_oob, GENIE_ERR_CORRUPT, "producer node 5 out of range" },
        { "producer NONE on a node value", e_producer_none, GENIE_ERR_CORRUPT, "out of range" },
        { "name past end", e_name_len, GENIE_ERR_TRUNCATED, "value 0 name needs 1000 bytes" },
        { "name length 2^32-1", e_name_len_max, GENIE_ERR_CORRUPT, "max 4096" },
        { "name too long", e_name_long, GENIE_ERR_CORRUPT, "max 4096" },
        { "NUL in name", e_name_nul, GENIE_ERR_CORRUPT, "value 7 name contains a NUL" },
        { "op count", e_op, GENIE_ERR_CORRUPT, "not in ops revision of this graph" },
        { "op 78 in revision 1", e_op_rev1, GENIE_ERR_CORRUPT, "op 78 not in ops revision of this graph (78 ops)" },
        { "op 65535", e_op_ffff, GENIE_ERR_CORRUPT, "op 65535" },
        { "phase 8", e_phase, GENIE_ERR_CORRUPT, "phase 8" },
        { "modality 5", e_mod, GENIE_ERR_CORRUPT, "modality 5" },
        { "node residency 255", e_nres, GENIE_ERR_CORRUPT, "residency 255" },
        { "block 7", e_block, GENIE_ERR_CORRUPT, "srg: node 3 (add.Tensor): block 7 out of range (< 7)" },
        { "block 9", e_block9, GENIE_ERR_CORRUPT, "node 3 (add.Tensor): block 9 out of range (< 7)" },
        { "block 255", e_block_ff, GENIE_ERR_CORRUPT, "node 0 (mm.default): block 255" },
        { "input id out of range", e_in_oob, GENIE_ERR_CORRUPT, "node 1 input 0: value 10 out of range" },
        { "input id 2^32-2", e_in_oob2, GENIE_ERR_CORRUPT, "out of range" },
        { "forward reference", e_forward_ref, GENIE_ERR_CORRUPT, "node 1 uses value 8 before it is produced" },
        { "own output as input", e_self_ref, GENIE_ERR_CORRUPT, "node 1 uses value 3 before" },
        { "output is a source", e_out_source, GENIE_ERR_CORRUPT, "value 7 is a source" },
        { "output out of range", e_out_oob, GENIE_ERR_CORRUPT, "output 0: value 10 out of range" },
        { "output NONE", e_out_none, GENIE_ERR_CORRUPT, "out of range" },
        { "output of another node", e_out_other, GENIE_ERR_CORRUPT, "names producer node 4" },
        { "producer_out mismatch", e_pout, GENIE_ERR_CORRUPT, "value 5 names producer node 2 output 2" },
        { "outputs not consecutive", e_not_consec, GENIE_ERR_CORRUPT, "not consecutive" },
        { "output listed twice", e_out_twice, GENIE_ERR_CORRUPT, "value 4" },
        { "node value never produced", e_unproduced, GENIE_ERR_CORRUPT, "value 6 names producer node 2 output 2, which does not list it" },
        { "node without outputs", e_no_outputs, GENIE_ERR_CORRUPT, "node 3 (add.Tensor) has no outputs" },
        { "n_in = 2^32-1", e_n_in_huge, GENIE_ERR_TRUNCATED, "node 1 input list needs 17179869180 bytes" },
        { "n_out = 2^30", e_n_out_huge, GENIE_ERR_TRUNCATED, "node 1 output list" },
        { "n_attr = 2^32-1", e_n_attr_huge, GENIE_ERR_TRUNCATED, "node 4 attr list needs 4294967295 bytes" },
        { "module path 64 KiB", e_path_len, GENIE_ERR_CORRUPT, "node 4 module path is 65536 bytes" },
        { "module path past end", e_path_past, GENIE_ERR_TRUNCATED, "node 4 module path needs 4000 bytes" },
        { "NUL in module path", e_path_nul, GENIE_ERR_CORRUPT, "module path contains a NUL" },
        { "attr tag 7", e_attr_tag, GENIE_ERR_CORRUPT, "node 4 attr 1: tag 7" },
        { "attr tag 255", e_attr_tag_ff, GENIE_ERR_CORRUPT, "tag 255" },
        { "bool 2", e_attr_bool, GENIE_ERR_CORRUPT, "node 4 attr 2: bool 2" },
        { "dtype attr 6", e_attr_dtype, GENIE_ERR_CORRUPT, "node 4 attr 0: dtype 6" },
        { "ints count 2^32-1", e_attr_ints_huge, GENIE_ERR_TRUNCATED, "node 2 attr 0 ints needs 34359738360 bytes" },
        { "intensity NaN", e_cost_nan, GENIE_ERR_CORRUPT, "node 2: intensity" },
        { "intensity < 0", e_cost_neg, GENIE_ERR_CORRUPT, "node 2: intensity -1" },
        { "cost flag without cost", e_cost_missing, 0, NULL },   /* any refusal */
    };
    tgraph_t *t = malloc(sizeof(*t));
    uint8_t *exact;

    (void)state;
    assert_non_null(t);
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        double t0;
        tg_base(t, 0);
        cases[k].edit(t);
        exact = malloc(t->len);   /* exact size: ASan sees any over-read */
        assert_non_null(exact);
        memcpy(exact, t->buf, t->len);
        t0 = now_s();
        genie_clear_error();
        {
            genie_srg_t *g = NULL;
            genie_status_t st = genie_srg_decode(exact, t->len, &g);
            const char *msg = genie_last_error();
            if (st == GENIE_OK || (cases[k].want != 0 && st != cases[k].want) || msg[0] == '\0' ||
                (cases[k].needle && strstr(msg, cases[k].needle) == NULL)) {
                print_error("case '%s': status %d (want %d), message '%s' (want '%s')\n",
                            cases[k].what, st, cases[k].want, msg,
                            cases[k].needle ? cases[k].needle : "<any>");
                genie_srg_destroy(g);
                fail();
            }
            assert_null(g);
        }
        /* refused before allocating for the declared counts: no time spent */
        assert_true(now_s() - t0 < 0.05);
        free(exact);
    }
    printf("[ info     ] %zu malformed graphs refused with the expected reason\n",
           sizeof(cases) / sizeof(cases[0]));

    /* A STR attribute of more than GENIE_SRG_MAX_NAME bytes, written by hand. */
    {
        tgraph_t *t2 = malloc(sizeof(*t2));
        assert_non_null(t2);
        tg_base(t2, 0);
        t2->n[4].attr[4].s = "";
        tg_encode(t2);
        /* patch node 4 attr 4 (after DTYPE 2, NONE 1, BOOL 2, INT 9 bytes) to length 4097 */
        put_le_at(t2->buf, t2->off_node[4] + N_PATH + 4 + 4 + 4 + 4 + 2 + 1 + 2 + 9 + 1,
                  GENIE_SRG_MAX_NAME + 1, 4);
        expect_reject(t2->buf, t2->len, GENIE_ERR_CORRUPT, "node 4 attr 4 string is 4097 bytes");
        free(t2);
    }
    /* Null arguments. */
    genie_clear_error();
    {
        genie_srg_t *g = NULL;
        expect_error(genie_srg_decode(NULL, 10, &g), GENIE_ERR_INVALID, NULL);
        expect_error(genie_srg_decode(t->buf, t->len, NULL), GENIE_ERR_INVALID, NULL);
        expect_error(genie_srg_encode(NULL, NULL, NULL), GENIE_ERR_INVALID, NULL);
        expect_reject(NULL, 0, GENIE_ERR_TRUNCATED, NULL);
    }
    free(t);
}

/* Graphs at the edges of what is valid are accepted. */
static void test_accepts_edges(void **state)
{
    tgraph_t *t = malloc(sizeof(*t));
    genie_srg_t *g = NULL;

    (void)state;
    assert_non_null(t);
    /* empty graph: header only */
    tg_base(t, 0);
    t->n_values = 0;
    t->n_nodes = 0;
    tg_encode(t);
    assert_int_equal(t->len, HDR_SIZE);
    assert_int_equal(genie_srg_decode(t->buf, t->len, &g), GENIE_OK);
    assert_int_equal(genie_srg_n_values(g), 0);
    check_round_trip(g);
    genie_srg_destroy(g);

    /* exactly 2^62 bytes, an empty tensor with large extents (their product,
     * the zero counted as 1, (2^7)^7 = 2^49 f32 elements: within the bound),
     * ndim 8, ids not in node order (sources after node outputs), a node
     * without inputs */
    tg_base(t, 0);
    t->v[0].ndim = 1;
    t->v[0].shape[0] = INT64_C(1) << 60;   /* f32: 2^62 bytes */
    t->v[1].ndim = 8;
    for (int d = 0; d < 8; d++) {
        t->v[1].shape[d] = d == 3 ? 0 : 128;
    }
    tg_encode(t);
    genie_clear_error();
    if (genie_srg_decode(t->buf, t->len, &g) != GENIE_OK) {
        print_error("%s\n", genie_last_error());
        fail();
    }
    assert_int_equal(genie_srg_value_nbytes(genie_srg_value(g, 0)), UINT64_C(1) << 62);
    assert_int_equal(genie_srg_value_nbytes(genie_srg_value(g, 1)), 0);
    genie_srg_annotate_cost(g);   /* saturating, no overflow traps */
    check_round_trip(g);
    genie_srg_destroy(g);

    /* older ops revision accepted (ops.def is append-only) is revision 1 itself;
     * names of maximum length are accepted */
    {
        char *name = malloc(GENIE_SRG_MAX_NAME + 1);
        assert_non_null(name);
        memset(name, 'n', GENIE_SRG_MAX_NAME);
        name[GENIE_SRG_MAX_NAME] = '\0';
        tg_base(t, 0);
        t->v[0].name = name;
        tg_encode(t);
        assert_true(t->len < sizeof(t->buf));
        assert_int_equal(genie_srg_decode(t->buf, t->len, &g), GENIE_OK);
        assert_int_equal(strlen(genie_srg_value(g, 0)->name), GENIE_SRG_MAX_NAME);
        genie_srg_destroy(g);
        free(name);
    }
    free(t);
}

/* Random corruption of valid buffers: decode either refuses with a reason or
 * yields a graph that satisfies every invariant and survives a full trip. */
static void test_random_flips(void **state)
{
    enum { ITERS = 30000 };
    uint8_t *bufs[3], *work;
    size_t lens[3];
    size_t accepted = 0, refused = 0;
    sample_t s;
    tgraph_t *t = malloc(sizeof(*t));
    genie_srg_t *chain = build_chain(30);

    (void)state;
    assert_non_null(t);
    build_sample(&s);
    assert_int_equal(genie_srg_encode(s.g, &bufs[0], &lens[0]), GENIE_OK);
    genie_srg_annotate_cost(chain);
    assert_int_equal(genie_srg_encode(chain, &bufs[1], &lens[1]), GENIE_OK);
    tg_base(t, 1);
    bufs[2] = malloc(t->len);
    assert_non_null(bufs[2]);
    memcpy(bufs[2], t->buf, t->len);
    lens[2] = t->len;

    rng_state = 0x5EED5EED12345678ull;
    for (int it = 0; it < ITERS; it++) {
        int which = it % 3;
        size_t len = lens[which];
        int flips = 1 + (int)(xorshift64() % 4);
        genie_srg_t *g = NULL;
        genie_status_t st;

        work = malloc(len);
        assert_non_null(work);
        memcpy(work, bufs[which], len);
        for (int f = 0; f < flips; f++) {
            size_t pos = (size_t)(xorshift64() % len);
            if (pos < 24 && pos >= 20) {
                pos += 4;   /* leave total_len alone most of the time: reach deeper */
            }
            work[pos] ^= (uint8_t)(1u << (xorshift64() % 8));
        }
        genie_clear_error();
        st = genie_srg_decode(work, len, &g);
        if (st == GENIE_OK) {
            assert_graph_valid(g);
            check_round_trip(g);
            genie_srg_destroy(g);
            accepted++;
        } else {
            assert_true(st < 0 && st >= GENIE_ERR_BACKEND);
            assert_true(genie_last_error()[0] != '\0');
            assert_null(g);
            refused++;
        }
        free(work);
    }
    printf("[ info     ] %d flipped buffers: %zu decoded and round-tripped, %zu refused\n", ITERS,
           accepted, refused);
    assert_true(accepted > 0 && refused > 0);
    for (int k = 0; k < 3; k++) {
        free(bufs[k]);
    }
    free(t);
    genie_srg_destroy(chain);
    genie_srg_destroy(s.g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_and_read),
        cmocka_unit_test(test_pointers_stable),
        cmocka_unit_test(test_builder_rejects),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_cost),
        cmocka_unit_test(test_cost_malformed),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_json_empty),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_block_round_trip),
        cmocka_unit_test(test_encode_speed),
        cmocka_unit_test(test_doc_example),
        cmocka_unit_test(test_spec_conformance),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_accepts_edges),
        cmocka_unit_test(test_random_flips),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Seed corpus of lf_wire_dispatch (tests/fuzz/corpus/lf_wire_dispatch/):
 * message lists in that target's record format, each payload written with
 * the wire writer (genie/wire.h) in the layout the driver's client uses
 * (transport-ucx/src/client.c) and the SRGs built and encoded by the real
 * builder.  Regenerate with
 *   build/tests/fuzz/fuzz_make_wire_corpus tests/fuzz/corpus/lf_wire_dispatch
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "genie/srg.h"
#include "genie/wire.h"

typedef struct rec_buf {
    uint8_t *b;
    size_t   len, cap;
} rec_buf_t;

static void put(rec_buf_t *r, const void *p, size_t n)
{
    if (r->len + n > r->cap) {
        r->cap = (r->len + n) * 2 + 64;
        if ((r->b = realloc(r->b, r->cap)) == NULL) {
            fprintf(stderr, "out of memory\n");
            exit(2);
        }
    }
    memcpy(r->b + r->len, p, n);
    r->len += n;
}

/* One record: to rank `to` (1 or 2), type, aux (0: none), payload. */
static void rec(rec_buf_t *r, int to, uint8_t type, uint64_t aux, const genie_wire_writer_t *w)
{
    uint8_t  ctl = (uint8_t)((to == 2 ? 1 : 0) | (aux != 0 ? 4 : 0));
    size_t   n = w != NULL ? w->len : 0;
    uint8_t  head[4] = { ctl, type, (uint8_t)(n & 0xff), (uint8_t)(n >> 8) };

    if (n > 0xffff) {
        fprintf(stderr, "payload too large for a record\n");
        exit(2);
    }
    put(r, head, 4);
    if (aux != 0) {
        put(r, &aux, 8);
    }
    if (n > 0) {
        put(r, w->buf, n);
    }
}

static void check(genie_status_t st, const char *what)
{
    if (st != GENIE_OK) {
        fprintf(stderr, "make_wire_corpus: %s: %s\n", what, genie_last_error());
        exit(2);
    }
}

/* x (input, f32 [1,4]) @ w (weight fp, f32 [4,4]) kept resident as `keep`
 * and returned; rows*4 elements when `rows` is large: an oversized output. */
static void srg_mm(uint64_t fp, uint64_t keep, int64_t rows, uint8_t **buf, size_t *len)
{
    const int64_t sx[2] = { rows, 4 }, sw[2] = { 4, 4 };
    const int64_t *shapes[1] = { sx };
    genie_dtype_t dt = GENIE_F32;
    int           nd = 2;
    genie_srg_t  *g = NULL;
    uint32_t      x, w, in[2], y;

    check(genie_srg_create(&g), "srg");
    check(genie_srg_add_source(g, GENIE_VAL_INPUT, GENIE_F32, 2, sx, GENIE_RES_EPHEMERAL_ACTIVATION,
                               0, "x", &x), "x");
    check(genie_srg_add_source(g, GENIE_VAL_WEIGHT, GENIE_F32, 2, sw, GENIE_RES_PERSISTENT_WEIGHT,
                               fp, "w", &w), "w");
    in[0] = x;
    in[1] = w;
    check(genie_srg_add_node(g, GENIE_OP_MM, in, 2, NULL, 0, 1, &dt, &nd, shapes,
                             GENIE_PHASE_LLM_PREFILL, GENIE_MOD_TEXT, GENIE_RES_STATEFUL_KV_CACHE,
                             "h.0.attn.c_attn", &y), "mm");
    check(genie_srg_mark_output(g, y, 1, keep), "mark");
    check(genie_srg_encode(g, buf, len), "encode");
    genie_srg_destroy(g);
}

static void weight(rec_buf_t *r, int to, uint64_t fp)
{
    static const int64_t sh[2] = { 4, 4 };
    float               d[16];
    genie_wire_writer_t w;

    for (int i = 0; i < 16; i++) {
        d[i] = (float)(i % 5) * 0.25f;
    }
    genie_wire_w_init(&w);
    genie_wire_w_u64(&w, fp);
    genie_wire_w_bytes(&w, "h.0.attn.c_attn.weight", 22);
    genie_wire_w_tensor(&w, GENIE_F32, 2, sh, d);
    rec(r, to, GENIE_MSG_WEIGHT, 0, &w);
    genie_wire_w_free(&w);
}

/* RUN: | srg bytes | align8 | n u32 | tensors |, aux = the plan's hash;
 * with_plan 0: the plan-cache form (no SRG bytes). */
static void run(rec_buf_t *r, int to, const uint8_t *srg, size_t srg_len, int with_plan, int64_t rows)
{
    const int64_t       sx[2] = { rows, 4 };
    float               x[4] = { 1, 2, 3, 4 };
    genie_wire_writer_t w;

    genie_wire_w_init(&w);
    genie_wire_w_bytes(&w, with_plan ? srg : NULL, with_plan ? (uint32_t)srg_len : 0);
    genie_wire_w_align8(&w);
    genie_wire_w_u32(&w, 1);
    if (rows == 1) {
        genie_wire_w_tensor(&w, GENIE_F32, 2, sx, x);
    } else {
        genie_wire_w_tensor_hdr(&w, GENIE_F32, 2, sx);    /* claims far more than it carries */
    }
    rec(r, to, GENIE_MSG_RUN, genie_wire_hash(srg, srg_len), &w);
    genie_wire_w_free(&w);
}

static void ids_msg(rec_buf_t *r, int to, uint8_t type, int with_session, uint64_t session,
                    const uint64_t *ids, uint32_t n)
{
    genie_wire_writer_t w;

    genie_wire_w_init(&w);
    if (with_session) {
        genie_wire_w_u64(&w, session);
    }
    genie_wire_w_u32(&w, n);
    genie_wire_w_raw(&w, ids, 8 * (size_t)n);
    rec(r, to, type, 0, &w);
    genie_wire_w_free(&w);
}

static void u64_msg(rec_buf_t *r, int to, uint8_t type, uint64_t v)
{
    genie_wire_writer_t w;

    genie_wire_w_init(&w);
    genie_wire_w_u64(&w, v);
    rec(r, to, type, 0, &w);
    genie_wire_w_free(&w);
}

static void handoff(rec_buf_t *r, int to, uint64_t session, uint32_t dst, uint64_t id)
{
    genie_wire_writer_t w;

    genie_wire_w_init(&w);
    genie_wire_w_u64(&w, session);
    genie_wire_w_u32(&w, dst);
    genie_wire_w_u32(&w, 1);
    genie_wire_w_u64(&w, id);
    rec(r, to, GENIE_MSG_HANDOFF, 0, &w);
    genie_wire_w_free(&w);
}

static void fence(rec_buf_t *r, int to, uint32_t rank)
{
    genie_wire_writer_t w;

    genie_wire_w_init(&w);
    genie_wire_w_u32(&w, rank);
    genie_wire_w_bytes(&w, "lost by the test", 16);
    rec(r, to, GENIE_MSG_FENCE, 0, &w);
    genie_wire_w_free(&w);
}

static void save(const char *dir, const char *name, rec_buf_t *r)
{
    char  path[1024];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if ((f = fopen(path, "wb")) == NULL || (r->len > 0 && fwrite(r->b, 1, r->len, f) != r->len) ||
        fclose(f) != 0) {
        fprintf(stderr, "make_wire_corpus: cannot write %s\n", path);
        exit(2);
    }
    free(r->b);
    memset(r, 0, sizeof(*r));
}

int main(int argc, char **argv)
{
    const uint64_t fp = 0x7700aa55cc33ee11ull, keep = 1001, session = 5;
    rec_buf_t      r = {0};
    uint8_t       *srg, *big;
    size_t         srg_len, big_len;

    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    srg_mm(fp, keep, 1, &srg, &srg_len);
    srg_mm(fp, keep, INT64_C(1) << 40, &big, &big_len);

    /* A prefill's life on one executor: weight, a run keeping its output,
     * the cached plan, fetch, session binding, stats, free. */
    weight(&r, 1, fp);
    run(&r, 1, srg, srg_len, 1, 1);
    run(&r, 1, srg, srg_len, 0, 1);
    u64_msg(&r, 1, GENIE_MSG_FETCH, keep);
    ids_msg(&r, 1, GENIE_MSG_BIND, 1, session, &keep, 1);
    u64_msg(&r, 1, GENIE_MSG_SESSION_INFO, session);
    rec(&r, 1, GENIE_MSG_STATS, 0, NULL);
    ids_msg(&r, 1, GENIE_MSG_FREE, 0, 0, &keep, 1);
    save(argv[1], "prefill_life", &r);

    /* The KV handoff: rank 1 offers, rank 2 pulls (RMA) and owns it. */
    weight(&r, 1, fp);
    run(&r, 1, srg, srg_len, 1, 1);
    ids_msg(&r, 1, GENIE_MSG_BIND, 1, session, &keep, 1);
    handoff(&r, 1, session, 2, keep);
    rec(&r, 1, GENIE_MSG_STATS, 0, NULL);
    u64_msg(&r, 2, GENIE_MSG_SESSION_INFO, session);
    u64_msg(&r, 2, GENIE_MSG_FETCH, keep);
    u64_msg(&r, 2, GENIE_MSG_END_SESSION, session);
    save(argv[1], "handoff", &r);

    /* A handoff to a rank that is not another executor, and to itself. */
    weight(&r, 1, fp);
    run(&r, 1, srg, srg_len, 1, 1);
    handoff(&r, 1, session, 0, keep);
    handoff(&r, 1, session, 1, keep);
    handoff(&r, 1, session, 7, keep);
    save(argv[1], "handoff_bad_dst", &r);

    /* FENCE: rank 1 gives rank 2 up; a handoff to it then fails. */
    weight(&r, 1, fp);
    run(&r, 1, srg, srg_len, 1, 1);
    fence(&r, 1, 2);
    handoff(&r, 1, session, 2, keep);
    save(argv[1], "fence", &r);

    /* An output of 2^42 elements: refused by the memory budget. */
    weight(&r, 2, fp);
    run(&r, 2, big, big_len, 1, INT64_C(1) << 40);
    save(argv[1], "over_budget", &r);

    /* Types an executor does not serve, old ones, PING, SHUTDOWN mid-input. */
    rec(&r, 1, GENIE_MSG_KV_RESERVE, 0, NULL);
    rec(&r, 1, GENIE_MSG_KV_COMMIT, 0, NULL);
    rec(&r, 2, 99, 0, NULL);
    rec(&r, 2, GENIE_MSG_PING, 0, NULL);
    rec(&r, 1, GENIE_MSG_SHUTDOWN, 0, NULL);
    rec(&r, 1, GENIE_MSG_STATS, 0, NULL);
    save(argv[1], "odd_types", &r);

    /* A KV_OFFER from the driver (only an executor may offer). */
    {
        static const int64_t sh[1] = { 4 };
        genie_wire_writer_t  w;
        genie_wire_w_init(&w);
        genie_wire_w_u64(&w, session);
        genie_wire_w_u32(&w, 1);
        genie_wire_w_u64(&w, keep);
        genie_wire_w_u32(&w, GENIE_F32);
        genie_wire_w_u32(&w, 1);
        genie_wire_w_raw(&w, sh, 8);
        genie_wire_w_u64(&w, 16);
        genie_wire_w_u64(&w, 0x1000);
        genie_wire_w_bytes(&w, "not an rkey", 11);
        genie_wire_w_align8(&w);
        rec(&r, 2, GENIE_MSG_KV_OFFER, 0, &w);
        genie_wire_w_free(&w);
        save(argv[1], "kv_offer_from_driver", &r);
    }

    /* Raw headers: a wrong magic, and a payload length that lies. */
    {
        genie_wire_hdr_t h;
        uint8_t          ctl = 8, head[4] = { 0, GENIE_MSG_STATS, 4, 0 };
        genie_wire_hdr_init(&h, GENIE_MSG_STATS, 3, 0, 0, 0);
        h.magic ^= 1;
        head[0] = ctl;
        put(&r, head, 4);
        put(&r, &h, sizeof(h));
        put(&r, "abcd", 4);
        genie_wire_hdr_init(&h, GENIE_MSG_FETCH, 4, 0, 1u << 20, 0);
        put(&r, head, 4);
        put(&r, &h, sizeof(h));
        put(&r, "abcd", 4);
        rec(&r, 1, GENIE_MSG_STATS, 0, NULL);
        save(argv[1], "raw_headers", &r);
    }
    save(argv[1], "empty", &r);
    free(srg);
    free(big);
    return 0;
}

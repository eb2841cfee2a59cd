/*
 * Human-readable JSON dump of an SRG, for `genie` debugging tools, logs and
 * tests (format in docs/srg-format.md, "JSON dump").  The output is always
 * valid JSON whatever the graph holds: strings are escaped (quotes, backslash,
 * control characters) and bytes that are not valid UTF-8 become U+FFFD;
 * non-finite floats, which JSON cannot spell, are written as the strings
 * "inf", "-inf" and "nan"; 64-bit integers are written exactly.  It is built
 * in one growable buffer with hand-rolled integer formatting, because graphs of
 * thousands of nodes are dumped on every debug run.
 */
#include "srg_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct jb {
    char  *s;     /* (cap) bytes, s[len] kept free for the final NUL */
    size_t len;
    size_t cap;
    int    oom;   /* set once an allocation failed; later appends do nothing */
} jb_t;

static int jb_reserve(jb_t *b, size_t more)
{
    size_t cap;
    char *s;

    if (b->oom) {
        return 0;
    }
    if (more < b->cap - b->len) {
        return 1;
    }
    cap = b->cap ? b->cap : 4096;
    while (more >= cap - b->len) {
        if (cap > SIZE_MAX / 2) {
            b->oom = 1;
            return 0;
        }
        cap *= 2;
    }
    s = realloc(b->s, cap);
    if (s == NULL) {
        b->oom = 1;
        return 0;
    }
    b->s   = s;
    b->cap = cap;
    return 1;
}

static void jb_raw(jb_t *b, const char *s, size_t n)
{
    if (jb_reserve(b, n)) {
        memcpy(b->s + b->len, s, n);
        b->len += n;
    }
}

#define jb_lit(b, lit) jb_raw((b), (lit), sizeof(lit) - 1)

static void jb_u64(jb_t *b, uint64_t v)
{
    char tmp[20];
    size_t n = 0;

    do {
        tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    jb_raw(b, tmp + sizeof(tmp) - n, n);
}

static void jb_i64(jb_t *b, int64_t v)
{
    if (v < 0) {
        jb_lit(b, "-");
        jb_u64(b, (uint64_t)0 - (uint64_t)v);   /* exact for INT64_MIN too */
    } else {
        jb_u64(b, (uint64_t)v);
    }
}

static void jb_f64(jb_t *b, double v)
{
    char tmp[32];
    int n;

    if (isnan(v)) {
        jb_lit(b, "\"nan\"");
    } else if (isinf(v)) {
        if (v > 0) {
            jb_lit(b, "\"inf\"");
        } else {
            jb_lit(b, "\"-inf\"");
        }
    } else {
        n = snprintf(tmp, sizeof(tmp), "%.17g", v);   /* round-trips every double */
        jb_raw(b, tmp, (size_t)n);
    }
}

/* Length of the valid UTF-8 sequence at s (at most `left` bytes), or 0 if the
 * bytes there are not one (overlong forms, surrogates and > U+10FFFF rejected). */
static size_t utf8_len(const unsigned char *s, size_t left)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t n;

    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (left < n || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t k = 2; k < n; k++) {
        if (s[k] < 0x80 || s[k] > 0xBF) {
            return 0;
        }
    }
    return n;
}

static void jb_str(jb_t *b, const char *str)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t left = strlen(str);
    size_t run  = 0;   /* bytes at s that need no escaping, not copied yet */

    jb_lit(b, "\"");
    while (run < left) {
        unsigned char c = s[run];
        size_t n = utf8_len(s + run, left - run);

        if (n > 0 && c >= 0x20 && c != '"' && c != '\\') {
            run += n;
            continue;
        }
        /* Flush the clean run, then write this character escaped. */
        jb_raw(b, (const char *)s, run);
        s    += run;
        left -= run;
        run   = 0;
        if (n == 0) {
            jb_lit(b, "\\ufffd");     /* not UTF-8: one replacement per bad byte */
            n = 1;
        } else if (c == '"') {
            jb_lit(b, "\\\"");
        } else if (c == '\\') {
            jb_lit(b, "\\\\");
        } else if (c == '\n') {
            jb_lit(b, "\\n");
        } else if (c == '\t') {
            jb_lit(b, "\\t");
        } else if (c == '\r') {
            jb_lit(b, "\\r");
        } else {
            char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf] };
            jb_raw(b, u, sizeof(u));
        }
        s    += n;
        left -= n;
    }
    jb_raw(b, (const char *)s, run);
    jb_lit(b, "\"");
}

/* Before element k of an array: the comma after the previous one, a newline. */
static void jb_sep(jb_t *b, uint64_t k)
{
    if (k > 0) {
        jb_lit(b, ",\n");
    } else {
        jb_lit(b, "\n");
    }
}

/* An id field: the number, or null for GENIE_SRG_NONE. */
static void jb_id(jb_t *b, uint32_t id)
{
    if (id == GENIE_SRG_NONE) {
        jb_lit(b, "null");
    } else {
        jb_u64(b, id);
    }
}

static void jb_attr(jb_t *b, const genie_srg_attr_t *a)
{
    jb_lit(b, "{\"type\": ");
    jb_str(b, genie_srg_attr_tag_name(a->tag));
    jb_lit(b, ", \"value\": ");
    switch (a->tag) {
    case GENIE_ATTR_INT:
        jb_i64(b, a->i);
        break;
    case GENIE_ATTR_FLOAT:
        jb_f64(b, a->f);
        break;
    case GENIE_ATTR_BOOL:
        if (a->i) {
            jb_lit(b, "true");
        } else {
            jb_lit(b, "false");
        }
        break;
    case GENIE_ATTR_INTS:
        jb_lit(b, "[");
        for (uint32_t k = 0; k < a->n; k++) {
            if (k > 0) {
                jb_lit(b, ", ");
            }
            jb_i64(b, a->ints[k]);
        }
        jb_lit(b, "]");
        break;
    case GENIE_ATTR_STR:
        jb_str(b, a->s);
        break;
    case GENIE_ATTR_DTYPE:
        jb_str(b, genie_dtype_name((genie_dtype_t)a->i));
        break;
    default:
        jb_lit(b, "null");
        break;
    }
    jb_lit(b, "}");
}

static void jb_value(jb_t *b, uint32_t id, const genie_srg_value_t *v)
{
    jb_lit(b, "    {\"id\": ");
    jb_u64(b, id);
    jb_lit(b, ", \"kind\": ");
    jb_str(b, genie_srg_kind_name(v->kind));
    jb_lit(b, ", \"dtype\": ");
    jb_str(b, genie_dtype_name(v->dtype));
    jb_lit(b, ", \"shape\": [");
    for (int d = 0; d < v->ndim; d++) {
        if (d > 0) {
            jb_lit(b, ", ");
        }
        jb_i64(b, v->shape[d]);
    }
    jb_lit(b, "], \"bytes\": ");
    jb_u64(b, genie_srg_value_nbytes(v));
    jb_lit(b, ", \"residency\": ");
    jb_str(b, genie_residency_name(v->residency));
    jb_lit(b, ", \"producer\": ");
    jb_id(b, v->producer);
    jb_lit(b, ", \"producer_out\": ");
    jb_id(b, v->producer_out);
    jb_lit(b, ", \"ref\": ");
    jb_u64(b, v->ref);
    jb_lit(b, ", \"keep_id\": ");
    jb_u64(b, v->keep_id);
    if (v->is_output) {
        jb_lit(b, ", \"is_output\": true");
    } else {
        jb_lit(b, ", \"is_output\": false");
    }
    jb_lit(b, ", \"name\": ");
    jb_str(b, v->name);
    jb_lit(b, "}");
}

static void jb_node(jb_t *b, uint32_t idx, const genie_srg_node_t *n)
{
    jb_lit(b, "    {\"id\": ");
    jb_u64(b, idx);
    jb_lit(b, ", \"op\": ");
    jb_str(b, genie_op_name(n->op));
    jb_lit(b, ", \"op_id\": ");
    jb_u64(b, n->op);
    jb_lit(b, ", \"phase\": ");
    jb_str(b, genie_phase_name(n->phase));
    jb_lit(b, ", \"modality\": ");
    jb_str(b, genie_modality_name(n->modality));
    jb_lit(b, ", \"residency\": ");
    jb_str(b, genie_residency_name(n->residency));
    jb_lit(b, ", \"block\": ");
    jb_str(b, genie_block_name(n->block));
    jb_lit(b, ", \"module_path\": ");
    jb_str(b, n->module_path);
    jb_lit(b, ",\n     \"inputs\": [");
    for (uint32_t k = 0; k < n->n_in; k++) {
        if (k > 0) {
            jb_lit(b, ", ");
        }
        jb_id(b, n->in[k]);
    }
    jb_lit(b, "], \"outputs\": [");
    for (uint32_t k = 0; k < n->n_out; k++) {
        if (k > 0) {
            jb_lit(b, ", ");
        }
        jb_id(b, n->out[k]);
    }
    jb_lit(b, "],\n     \"attrs\": [");
    for (uint32_t k = 0; k < n->n_attr; k++) {
        if (k > 0) {
            jb_lit(b, ", ");
        }
        jb_attr(b, &n->attrs[k]);
    }
    jb_lit(b, "],\n     \"cost\": {\"flops\": ");
    jb_u64(b, n->flops);
    jb_lit(b, ", \"bytes\": ");
    jb_u64(b, n->bytes);
    jb_lit(b, ", \"intensity\": ");
    jb_f64(b, n->intensity);
    jb_lit(b, "}}");
}

genie_status_t genie_srg_to_json(const genie_srg_t *srg, char **json_p)
{
    jb_t b = { 0 };
    uint64_t n_edges = 0;

    if (srg == NULL || json_p == NULL) {
        return genie_set_error(GENIE_ERR_INVALID, "srg: to_json: NULL argument");
    }
    jb_lit(&b, "{\n  \"format\": \"genie-srg\", \"version\": ");
    jb_u64(&b, GENIE_SRG_VERSION);
    jb_lit(&b, ", \"ops_revision\": ");
    jb_u64(&b, GENIE_SRG_OPS_REVISION);
    jb_lit(&b, ",\n  \"values\": [");
    for (uint32_t i = 0; i < srg->n_values; i++) {
        jb_sep(&b, i);
        jb_value(&b, i, srg->values[i]);
    }
    jb_lit(&b, "\n  ],\n  \"nodes\": [");
    for (uint32_t i = 0; i < srg->n_nodes; i++) {
        jb_sep(&b, i);
        jb_node(&b, i, srg->nodes[i]);
    }
    /* One edge per (value, consuming node) pair, in node order; sources have
     * no producing node (from_node null). */
    jb_lit(&b, "\n  ],\n  \"edges\": [");
    for (uint32_t i = 0; i < srg->n_nodes; i++) {
        const genie_srg_node_t *n = srg->nodes[i];
        for (uint32_t k = 0; k < n->n_in; k++) {
            const genie_srg_value_t *v = genie_srg_value(srg, n->in[k]);
            if (v == NULL) {
                continue;   /* absent optional input: no edge */
            }
            jb_sep(&b, n_edges++);
            jb_lit(&b, "    {\"from_node\": ");
            jb_id(&b, v->producer);
            jb_lit(&b, ", \"to_node\": ");
            jb_u64(&b, i);
            jb_lit(&b, ", \"value\": ");
            jb_u64(&b, n->in[k]);
            jb_lit(&b, ", \"bytes\": ");
            jb_u64(&b, genie_srg_value_nbytes(v));
            jb_lit(&b, "}");
        }
    }
    jb_lit(&b, "\n  ]\n}\n");
    if (b.oom || !jb_reserve(&b, 1)) {
        free(b.s);
        return genie_set_error(GENIE_ERR_NOMEM, "srg: out of memory writing JSON (%zu bytes so far)",
                               b.len);
    }
    b.s[b.len] = '\0';
    *json_p = b.s;
    return GENIE_OK;
}

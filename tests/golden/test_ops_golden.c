/*
 * Every CPU kernel against PyTorch: reads DIR/ops.golden (written by
 * tests/golden/gen_golden.py, whose docstring specifies the format), builds
 * each case's node by hand, runs the CPU backend's kernel and compares its
 * outputs with what ATen returned for the same inputs (same strides, same
 * offsets).  Floats are compared by relative L2 error against the case's
 * tolerance with NaN/inf required at the same positions; integers and bools
 * exactly; shapes and dtypes exactly.  View ops must also share the input's
 * storage.
 *
 * Prints one line per failure and a final "N passed, M failed"; exits 1 if any
 * case failed or an op of ops.def has no case, 2 if the file is missing,
 * truncated or corrupt.
 *
 *   usage: test_ops_golden DIR
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "genie/backend.h"
#include "genie/ops.h"
#include "genie/status.h"
#include "genie/tensor.h"

#define GOLDEN_VERSION 1u
#define MAX_SLOTS      64u          /* inputs or outputs of one case */
#define MAX_ATTRS      32u
#define MAX_NAME       4096u

/* ---- bounded reader ------------------------------------------------------------ */

typedef struct reader {
    const uint8_t *p;
    size_t         left;
} reader_t;

static int rd_bytes(reader_t *r, void *dst, size_t n)
{
    if (n > r->left) {
        return -1;
    }
    memcpy(dst, r->p, n);
    r->p += n;
    r->left -= n;
    return 0;
}

static int rd_u8(reader_t *r, uint8_t *v) { return rd_bytes(r, v, 1); }
static int rd_u32(reader_t *r, uint32_t *v) { return rd_bytes(r, v, 4); }
static int rd_i64(reader_t *r, int64_t *v) { return rd_bytes(r, v, 8); }
static int rd_f64(reader_t *r, double *v) { return rd_bytes(r, v, 8); }

/* u32 length + bytes -> malloc'd NUL-terminated string. */
static int rd_str(reader_t *r, char **s_p)
{
    uint32_t n;
    char *s;

    if (rd_u32(r, &n) != 0 || n > MAX_NAME || n > r->left) {
        return -1;
    }
    s = malloc((size_t)n + 1);
    if (s == NULL) {
        return -1;
    }
    memcpy(s, r->p, n);
    s[n] = '\0';
    r->p += n;
    r->left -= n;
    *s_p = s;
    return 0;
}

/* ---- one case ---------------------------------------------------------------------- */

typedef struct slot {
    uint8_t        present;    /* 0 absent, 1 compare, 2 shape/dtype only */
    genie_tensor_t t;          /* as stored in the file (owns its storage) */
} slot_t;

typedef struct golden_case {
    char             *op_name;
    char             *label;
    uint32_t          n_attr, n_in, n_out;
    genie_srg_attr_t  attrs[MAX_ATTRS];
    slot_t            in[MAX_SLOTS];
    slot_t            out[MAX_SLOTS];
    double            tol;
} golden_case_t;

static void case_free(golden_case_t *gc)
{
    free(gc->op_name);
    free(gc->label);
    for (uint32_t i = 0; i < gc->n_attr; i++) {
        free((void *)gc->attrs[i].ints);
        free((void *)gc->attrs[i].s);
    }
    for (uint32_t i = 0; i < gc->n_in; i++) {
        genie_tensor_release(&gc->in[i].t);
    }
    for (uint32_t i = 0; i < gc->n_out; i++) {
        genie_tensor_release(&gc->out[i].t);
    }
    memset(gc, 0, sizeof(*gc));
}

static int rd_attr(reader_t *r, genie_srg_attr_t *a)
{
    uint8_t tag;

    memset(a, 0, sizeof(*a));
    if (rd_u8(r, &tag) != 0 || tag >= GENIE_ATTR_TAG_COUNT) {
        return -1;
    }
    a->tag = (genie_attr_tag_t)tag;
    switch (a->tag) {
    case GENIE_ATTR_INT:
    case GENIE_ATTR_BOOL:
    case GENIE_ATTR_DTYPE:
        return rd_i64(r, &a->i);
    case GENIE_ATTR_FLOAT:
        return rd_f64(r, &a->f);
    case GENIE_ATTR_INTS: {
        int64_t *v;
        if (rd_u32(r, &a->n) != 0 || a->n > GENIE_MAX_DIMS * 4u) {
            return -1;
        }
        v = malloc(sizeof(int64_t) * (a->n ? a->n : 1));
        if (v == NULL) {
            return -1;
        }
        a->ints = v;
        return rd_bytes(r, v, sizeof(int64_t) * a->n);
    }
    case GENIE_ATTR_STR: {
        char *s;
        if (rd_str(r, &s) != 0) {
            return -1;
        }
        a->s = s;
        a->n = (uint32_t)strlen(s);
        return 0;
    }
    default:
        return 0;
    }
}

/* Checked a * b + c for non-negative operands; -1 on overflow. */
static int64_t mul_add(int64_t a, int64_t b, int64_t c)
{
    int64_t m, s;

    if (__builtin_mul_overflow(a, b, &m) || __builtin_add_overflow(m, c, &s)) {
        return -1;
    }
    return s;
}

/*
 * slot := u8 present | u8 dtype | u8 ndim | i64 shape[ndim] | i64 strides[ndim]
 *         | i64 offset | i64 storage_numel | storage bytes
 * Every element's position is checked against storage_numel before use.
 */
static int rd_slot(reader_t *r, slot_t *s, int is_output)
{
    uint8_t dt, nd;
    int64_t shape[GENIE_MAX_DIMS], strides[GENIE_MAX_DIMS], offset, sn, last = 0, numel = 1;
    size_t es, nbytes;
    genie_tensor_t t;

    memset(s, 0, sizeof(*s));
    if (rd_u8(r, &s->present) != 0 || s->present > 2) {
        return -1;
    }
    if (s->present == 0) {
        return is_output ? -1 : 0;
    }
    if (rd_u8(r, &dt) != 0 || rd_u8(r, &nd) != 0 || dt >= GENIE_DTYPE_COUNT ||
        nd > GENIE_MAX_DIMS) {
        return -1;
    }
    for (int d = 0; d < nd; d++) {
        if (rd_i64(r, &shape[d]) != 0 || shape[d] < 0) {
            return -1;
        }
    }
    for (int d = 0; d < nd; d++) {
        if (rd_i64(r, &strides[d]) != 0 || strides[d] < 0) {
            return -1;
        }
    }
    if (rd_i64(r, &offset) != 0 || rd_i64(r, &sn) != 0 || offset < 0 || sn < 0) {
        return -1;
    }
    for (int d = 0; d < nd; d++) {
        numel = mul_add(numel, shape[d], 0);
        if (numel < 0) {
            return -1;
        }
        if (shape[d] > 0) {
            last = mul_add(shape[d] - 1, strides[d], last);
            if (last < 0) {
                return -1;
            }
        }
    }
    if (numel > 0 && (mul_add(1, offset, last) < 0 || offset + last >= sn)) {
        return -1;
    }
    es = genie_dtype_size((genie_dtype_t)dt);
    if ((uint64_t)sn > SIZE_MAX / es) {
        return -1;
    }
    nbytes = (size_t)sn * es;
    if (nbytes > r->left) {
        return -1;
    }
    if (genie_tensor_alloc((genie_dtype_t)dt, 1, &sn, &t) != GENIE_OK) {
        return -1;
    }
    rd_bytes(r, t.storage->data, nbytes);
    t.ndim = nd;
    memcpy(t.shape, shape, sizeof(int64_t) * nd);
    memcpy(t.strides, strides, sizeof(int64_t) * nd);
    t.offset = offset;
    if (is_output && (offset != 0 || sn != numel ||
                      (numel > 0 && !genie_tensor_is_contiguous(&t)))) {
        genie_tensor_release(&t);
        return -1;          /* outputs are written contiguous by the generator */
    }
    s->t = t;
    return 0;
}

/* case := str op | str label | u32 n_attr attr* | u32 n_in slot* | u32 n_out slot*
 *         | f64 tol */
static int rd_case(reader_t *r, golden_case_t *gc)
{
    memset(gc, 0, sizeof(*gc));
    if (rd_str(r, &gc->op_name) != 0 || rd_str(r, &gc->label) != 0) {
        return -1;
    }
    if (rd_u32(r, &gc->n_attr) != 0 || gc->n_attr > MAX_ATTRS) {
        gc->n_attr = 0;
        return -1;
    }
    for (uint32_t i = 0; i < gc->n_attr; i++) {
        if (rd_attr(r, &gc->attrs[i]) != 0) {
            gc->n_attr = i + 1;
            return -1;
        }
    }
    if (rd_u32(r, &gc->n_in) != 0 || gc->n_in > MAX_SLOTS) {
        gc->n_in = 0;
        return -1;
    }
    for (uint32_t i = 0; i < gc->n_in; i++) {
        if (rd_slot(r, &gc->in[i], 0) != 0) {
            gc->n_in = i;
            return -1;
        }
    }
    if (rd_u32(r, &gc->n_out) != 0 || gc->n_out > MAX_SLOTS) {
        gc->n_out = 0;
        return -1;
    }
    for (uint32_t i = 0; i < gc->n_out; i++) {
        if (rd_slot(r, &gc->out[i], 1) != 0) {
            gc->n_out = i;
            return -1;
        }
    }
    return rd_f64(r, &gc->tol);
}

/* ---- comparison --------------------------------------------------------------------- */

/* Value of logical element k (row-major) of a strided tensor. */
static double elem(const genie_tensor_t *t, int64_t k)
{
    int64_t off = t->offset;

    for (int d = t->ndim - 1; d >= 0; d--) {
        off += (k % t->shape[d]) * t->strides[d];
        k /= t->shape[d];
    }
    return genie_load_as_f64(t->storage->data, t->dtype, off);
}

static int64_t elem_i64(const genie_tensor_t *t, int64_t k)
{
    int64_t off = t->offset;
    const char *b = t->storage->data;

    for (int d = t->ndim - 1; d >= 0; d--) {
        off += (k % t->shape[d]) * t->strides[d];
        k /= t->shape[d];
    }
    switch (t->dtype) {
    case GENIE_I64:  return ((const int64_t *)b)[off];
    case GENIE_I32:  return ((const int32_t *)b)[off];
    case GENIE_BOOL: return ((const uint8_t *)b)[off] != 0;
    default:         return 0;
    }
}

/* 0 if out matches ref; else writes a reason into why. */
static int compare(const genie_tensor_t *out, const slot_t *ref, double tol, char *why,
                   size_t len)
{
    const genie_tensor_t *e = &ref->t;
    int64_t n;
    double dd = 0.0, rr = 0.0, rel;

    if (out->dtype != e->dtype) {
        snprintf(why, len, "dtype %s, expected %s", genie_dtype_name(out->dtype),
                 genie_dtype_name(e->dtype));
        return -1;
    }
    if (out->ndim != e->ndim || memcmp(out->shape, e->shape, sizeof(int64_t) * e->ndim) != 0) {
        snprintf(why, len, "shape differs (ndim %d vs %d)", out->ndim, e->ndim);
        return -1;
    }
    if (out->storage == NULL) {
        snprintf(why, len, "no storage");
        return -1;
    }
    if (ref->present != 1) {
        return 0;
    }
    n = genie_tensor_numel(e);
    if (!genie_dtype_is_float(e->dtype)) {
        for (int64_t k = 0; k < n; k++) {
            int64_t a = elem_i64(out, k), b = elem_i64(e, k);
            if (a != b) {
                snprintf(why, len, "element %lld is %lld, expected %lld", (long long)k,
                         (long long)a, (long long)b);
                return -1;
            }
        }
        return 0;
    }
    for (int64_t k = 0; k < n; k++) {
        double a = elem(out, k), b = elem(e, k);
        if (!isfinite(b) || !isfinite(a)) {
            int same = (isnan(a) && isnan(b)) || (isinf(a) && isinf(b) && (a > 0) == (b > 0));
            if (!same) {
                snprintf(why, len, "element %lld is %g, expected %g", (long long)k, a, b);
                return -1;
            }
            continue;
        }
        dd += (a - b) * (a - b);
        rr += b * b;
    }
    rel = rr > 0.0 ? sqrt(dd / rr) : sqrt(dd);
    if (!(rel <= tol)) {
        snprintf(why, len, "relative error %.3g > tolerance %.3g", rel, tol);
        return -1;
    }
    return 0;
}

/* ---- running a case ------------------------------------------------------------------- */

static int run_case(genie_backend_t *be, golden_case_t *gc, int op, uint32_t idx)
{
    genie_srg_node_t node;
    const genie_tensor_t *in[MAX_SLOTS];
    genie_tensor_t out[MAX_SLOTS];
    genie_op_call_t call;
    int is_view = (genie_op_flags((uint32_t)op) & GENIE_OPF_VIEW) != 0;
    int failed = 0;
    char why[256];
    genie_status_t st;

    memset(&node, 0, sizeof(node));
    node.op = (uint32_t)op;
    node.module_path = "";
    node.n_attr = gc->n_attr;
    node.attrs = gc->attrs;
    node.n_in = gc->n_in;
    node.n_out = gc->n_out;
    for (uint32_t i = 0; i < gc->n_in; i++) {
        in[i] = gc->in[i].present ? &gc->in[i].t : NULL;
    }
    memset(out, 0, sizeof(out));
    for (uint32_t i = 0; i < gc->n_out; i++) {
        const genie_tensor_t *e = &gc->out[i].t;
        if (is_view) {
            out[i].dtype = e->dtype;
            out[i].ndim = e->ndim;
            memcpy(out[i].shape, e->shape, sizeof(out[i].shape));
            continue;
        }
        if (genie_tensor_alloc(e->dtype, e->ndim, e->shape, &out[i]) != GENIE_OK) {
            printf("FAIL [%u] %s (%s): cannot allocate output %u\n", idx, gc->op_name,
                   gc->label, i);
            failed = 1;
            goto out_release;
        }
        /* Poison: a kernel that skips elements must not pass by luck. */
        memset(out[i].storage->data, 0xA5, out[i].storage->nbytes);
    }
    call.backend = be;
    call.node = &node;
    call.in = in;
    call.n_in = gc->n_in;
    call.out = out;
    call.n_out = gc->n_out;
    genie_clear_error();
    st = be->iface->ops[op](&call);
    if (st != GENIE_OK) {
        printf("FAIL [%u] %s (%s): kernel returned %d (%s): %s\n", idx, gc->op_name, gc->label,
               st, genie_status_str(st), genie_last_error());
        failed = 1;
        goto out_release;
    }
    for (uint32_t i = 0; i < gc->n_out; i++) {
        if (compare(&out[i], &gc->out[i], gc->tol, why, sizeof(why)) != 0) {
            printf("FAIL [%u] %s (%s): output %u: %s\n", idx, gc->op_name, gc->label, i, why);
            failed = 1;
        } else if (is_view && out[i].storage != gc->in[0].t.storage) {
            printf("FAIL [%u] %s (%s): output %u does not share the input's storage\n", idx,
                   gc->op_name, gc->label, i);
            failed = 1;
        }
    }
out_release:
    for (uint32_t i = 0; i < gc->n_out; i++) {
        genie_tensor_release(&out[i]);
    }
    return failed;
}

static uint8_t *read_file(const char *path, size_t *len_p)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long n;

    if (f == NULL) {
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        goto err_close;
    }
    buf = malloc((size_t)n + 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        goto err_free;
    }
    fclose(f);
    *len_p = (size_t)n;
    return buf;

err_free:
    free(buf);
err_close:
    fclose(f);
    return NULL;
}

int main(int argc, char **argv)
{
    char path[4096];
    uint8_t *buf;
    size_t len;
    reader_t r;
    uint32_t version, n_cases, passed = 0, failed = 0;
    int seen[GENIE_OP_COUNT] = { 0 };
    genie_backend_t *be;
    int rc = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR   (DIR/ops.golden from tests/golden/gen_golden.py)\n",
                argv[0]);
        return 2;
    }
    snprintf(path, sizeof(path), "%s/ops.golden", argv[1]);
    buf = read_file(path, &len);
    if (buf == NULL) {
        fprintf(stderr, "test_ops_golden: cannot read %s: run tests/golden/gen_golden.py "
                "--out %s first\n", path, argv[1]);
        return 2;
    }
    r.p = buf;
    r.left = len;
    /* header := "GGLD" | u32 version | u32 case_count */
    if (len < 4 || memcmp(buf, "GGLD", 4) != 0) {
        fprintf(stderr, "test_ops_golden: %s is not a golden file (bad magic)\n", path);
        free(buf);
        return 2;
    }
    r.p += 4;
    r.left -= 4;
    if (rd_u32(&r, &version) != 0 || rd_u32(&r, &n_cases) != 0) {
        fprintf(stderr, "test_ops_golden: %s: truncated header\n", path);
        free(buf);
        return 2;
    }
    if (version != GOLDEN_VERSION) {
        fprintf(stderr, "test_ops_golden: %s: version %u, this reader knows %u; regenerate "
                "it with tests/golden/gen_golden.py\n", path, version, GOLDEN_VERSION);
        free(buf);
        return 2;
    }
    /* Two threads even on one core, so the parallel paths run too. */
    if (genie_backend_cpu_create(2, &be) != GENIE_OK) {
        fprintf(stderr, "test_ops_golden: cannot create the CPU backend: %s\n",
                genie_last_error());
        free(buf);
        return 2;
    }
    for (uint32_t c = 0; c < n_cases; c++) {
        golden_case_t gc;
        int op;
        if (rd_case(&r, &gc) != 0) {
            fprintf(stderr, "test_ops_golden: %s: case %u is truncated or corrupt\n", path, c);
            case_free(&gc);
            rc = 2;
            break;
        }
        op = genie_op_from_name(gc.op_name);
        if (op < 0) {
            printf("FAIL [%u] %s (%s): op is not in ops.def\n", c, gc.op_name, gc.label);
            failed++;
        } else if (be->iface->ops[op] == NULL) {
            printf("FAIL [%u] %s (%s): the CPU backend has no kernel\n", c, gc.op_name,
                   gc.label);
            seen[op] = 1;
            failed++;
        } else {
            seen[op] = 1;
            if (run_case(be, &gc, op, c) != 0) {
                failed++;
            } else {
                passed++;
            }
        }
        case_free(&gc);
    }
    if (rc == 0 && r.left != 0) {
        fprintf(stderr, "test_ops_golden: %s: %zu trailing bytes after %u cases\n", path,
                r.left, n_cases);
        rc = 2;
    }
    for (int op = 0; rc == 0 && op < GENIE_OP_COUNT; op++) {
        if (!seen[op]) {
            printf("FAIL: no golden case for op %s\n", genie_op_name((uint32_t)op));
            failed++;
        }
    }
    printf("%u passed, %u failed\n", passed, failed);
    be->iface->destroy(be);
    free(buf);
    if (rc != 0) {
        return rc;
    }
    return failed ? 1 : 0;
}

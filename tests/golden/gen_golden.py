#!/usr/bin/env python3
"""Golden data for the CPU op kernels, produced by the real ATen ops.

Usage:  gen_golden.py --out DIR        (writes DIR/ops.golden)

Every case is one call of an ATen overload from runtime/include/genie/ops.def,
written down as the ATen call itself (positional args + kwargs).  The script
walks the overload's schema to turn that call into what a Genie node carries
(the convention at the top of ops.def): Tensor / Tensor? / Tensor[] /
Tensor?[] arguments become node inputs in schema order (lists flattened, an
absent optional = an absent slot), every other argument becomes an attribute
with its default filled in.  The expected outputs are what
``torch.ops.aten.<name>.<overload>(*args, **kwargs)`` returns for those very
tensors, so inputs that are views (transposed, sliced, expanded) reach the C
side with the same strides and offset PyTorch saw.  The generator fails if an
op of ops.def has no case.  A fixed seed makes the file reproducible.

File format (all integers little-endian; `str` = u32 byte length + bytes):

    "GGLD" | u32 version (= 1) | u32 case_count | case * case_count

    case   := str op_name            ATen overload name, e.g. "addmm.default"
              str label              human-readable case name for messages
              u32 n_attr  | attr * n_attr
              u32 n_in    | slot * n_in
              u32 n_out   | slot * n_out
              f64 tolerance          max relative L2 error for float outputs

    attr   := u8 tag (genie_attr_tag_t: NONE 0, INT 1, FLOAT 2, BOOL 3, INTS 4,
                      STR 5, DTYPE 6)
              payload: INT/BOOL/DTYPE: i64 | FLOAT: f64 | INTS: u32 n + i64[n]
                       | STR: u32 len + bytes | NONE: nothing

    slot   := u8 present             0: absent (optional input not given)
                                     1: tensor follows, compare its values
                                     2: tensor follows, check dtype and shape
                                        only (implementation-defined values)
              if present:
              u8 dtype               genie numbering: f32 0, f16 1, bf16 2,
                                     i64 3, i32 4, bool 5
              u8 ndim
              i64 shape[ndim]
              i64 strides[ndim]      in elements, as torch's t.stride()
              i64 offset             in elements, t.storage_offset()
              i64 storage_numel      elements in the storage that follows
              bytes storage          storage_numel * element size, raw

    Outputs are always written contiguous (strides row-major, offset 0,
    storage_numel = numel).  Element (i0, ..., ik) of a tensor lives at
    storage[offset + sum(i_d * strides[d])]; a reader must check that this
    stays inside storage_numel for every element before using it.

Comparison rule (tests/golden/test_ops_golden.c): shapes and dtypes exactly;
integer and bool outputs exactly; float outputs by ||out - ref|| / ||ref|| over
the finite reference elements (absolute norm when ||ref|| = 0), with NaN and
+-inf required at exactly the same positions.
"""

import argparse
import math
import os
import re
import struct
import sys

import torch

MAGIC = b"GGLD"
VERSION = 1

ATTR_NONE, ATTR_INT, ATTR_FLOAT, ATTR_BOOL, ATTR_INTS, ATTR_STR, ATTR_DTYPE = range(7)

GENIE_DTYPE = {
    torch.float32: 0,
    torch.float16: 1,
    torch.bfloat16: 2,
    torch.int64: 3,
    torch.int32: 4,
    torch.bool: 5,
}

TOL_F32 = 1e-5
TOL_HALF = 1e-2

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OPS_DEF = os.path.join(REPO, "runtime", "include", "genie", "ops.def")


# ---- schema walking -----------------------------------------------------------


def overload(name):
    base, ov = name.rsplit(".", 1)
    return getattr(getattr(torch.ops.aten, base), ov)


def split_top(s):
    """Split a schema argument list on commas outside brackets."""
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def schema_types(op):
    """Type strings of the schema's arguments ('Tensor?', 'int[]', 'ScalarType?')."""
    text = str(op._schema)
    inner = text[text.index("(") + 1: text.rindex(") ->")]
    types = []
    for part in split_top(inner):
        if part == "*":
            continue
        decl = part.split("=", 1)[0].strip()
        ty = decl.rsplit(" ", 1)[0].strip()
        ty = re.sub(r"\([^)]*\)", "", ty)            # drop alias annotations
        types.append(ty.replace(" ", ""))
    return types


def encode_attr(ty, val, where):
    base = ty.rstrip("?")
    if base in ("Layout", "Device", "MemoryFormat") or val is None:
        return (ATTR_NONE, None)
    if base == "ScalarType":
        return (ATTR_DTYPE, GENIE_DTYPE[val])
    if base in ("int", "SymInt"):
        return (ATTR_INT, int(val))
    if re.match(r"^(int|SymInt)\[\d*\]$", base):
        vals = [int(v) for v in (val if isinstance(val, (list, tuple)) else [val])]
        return (ATTR_INTS, vals)
    if base == "float":
        return (ATTR_FLOAT, float(val))
    if base == "bool":
        return (ATTR_BOOL, int(bool(val)))
    if base == "Scalar":
        if isinstance(val, bool):
            return (ATTR_BOOL, int(val))
        if isinstance(val, int):
            return (ATTR_INT, val)
        return (ATTR_FLOAT, float(val))
    if base == "str":
        return (ATTR_STR, val)
    raise SystemExit(f"gen_golden: {where}: unhandled argument type {ty}")


def to_node(name, args, kwargs):
    """(inputs, attrs) of a Genie node for the ATen call name(*args, **kwargs)."""
    op = overload(name)
    schema_args = op._schema.arguments
    types = schema_types(op)
    assert len(types) == len(schema_args), name
    inputs, attrs = [], []
    for i, (a, ty) in enumerate(zip(schema_args, types)):
        if i < len(args):
            val = args[i]
        elif a.name in kwargs:
            val = kwargs[a.name]
        elif a.has_default_value():
            val = a.default_value
        else:
            raise SystemExit(f"gen_golden: {name}: missing argument {a.name}")
        if ty.startswith("Tensor"):
            if ty.endswith("[]"):
                inputs.extend(val)
            else:
                inputs.append(val)
        else:
            attrs.append(encode_attr(ty, val, f"{name}:{a.name}"))
    return inputs, attrs


# ---- encoding ---------------------------------------------------------------------


def enc_str(s):
    b = s.encode()
    return struct.pack("<I", len(b)) + b


def enc_attr(attr):
    tag, val = attr
    out = struct.pack("<B", tag)
    if tag in (ATTR_INT, ATTR_BOOL, ATTR_DTYPE):
        out += struct.pack("<q", val)
    elif tag == ATTR_FLOAT:
        out += struct.pack("<d", val)
    elif tag == ATTR_INTS:
        out += struct.pack("<I", len(val)) + struct.pack(f"<{len(val)}q", *val)
    elif tag == ATTR_STR:
        out += enc_str(val)
    return out


def storage_bytes(t):
    """Raw bytes of t's whole storage and its element count."""
    st = t.untyped_storage()
    n = st.nbytes() // t.element_size()
    raw = torch.empty(0, dtype=torch.uint8).set_(st, 0, (st.nbytes(),), (1,))
    return raw.numpy().tobytes(), n


def enc_slot(t, present=1):
    if t is None:
        return struct.pack("<B", 0)
    if t.dtype not in GENIE_DTYPE:
        raise SystemExit(f"gen_golden: dtype {t.dtype} has no genie number")
    raw, n = storage_bytes(t)
    out = struct.pack("<BBB", present, GENIE_DTYPE[t.dtype], t.dim())
    out += struct.pack(f"<{t.dim()}q", *t.shape)
    out += struct.pack(f"<{t.dim()}q", *t.stride())
    out += struct.pack("<qq", t.storage_offset(), n)
    return out + raw


# ---- cases ------------------------------------------------------------------------

CASES = []


def case(name, args, kwargs=None, label="", tol=None, skip_outputs=(), expect=None):
    """One call of ATen overload `name`.  The expected outputs are what the
    real op returns, except where `expect` gives them: only for a dtype that
    PyTorch's CPU kernel refuses but the op accepts on another device (the
    case then says which kernel's rule `expect` computes)."""
    kwargs = kwargs or {}
    inputs, attrs = to_node(name, args, kwargs)
    result = expect if expect is not None else overload(name)(*args, **kwargs)
    outs = list(result) if isinstance(result, (tuple, list)) else [result]
    outs = [o.detach().contiguous().clone() for o in outs]
    if tol is None:
        half = any(t is not None and t.dtype in (torch.float16, torch.bfloat16)
                   for t in inputs + outs)
        tol = TOL_HALF if half else TOL_F32
    CASES.append((name, label, attrs, inputs, outs, tol, set(skip_outputs)))


def rn(*shape, dtype=torch.float32):
    return torch.randn(*shape).to(dtype)


def ri(lo, hi, *shape):
    return torch.randint(lo, hi, shape, dtype=torch.int64)


def tr(*shape, dtype=torch.float32):
    """A (shape) tensor that is the transpose of a contiguous one (strides swapped)."""
    base = rn(*shape[:-2], shape[-1], shape[-2], dtype=dtype)
    return base.transpose(-1, -2)


def sl(*shape, dtype=torch.float32):
    """A (shape) tensor that is every second column of a wider one, offset 1."""
    base = rn(*shape[:-1], 2 * shape[-1] + 1, dtype=dtype)
    return base[..., 1::2]


def bools(*shape, p=0.5):
    return torch.rand(*shape) < p


I64_MAX = 2**63 - 1


def views():
    x = rn(2, 3, 4)
    case("view.default", [x, [6, 4]], label="merge")
    case("view.default", [x, [-1]], label="flatten -1")
    case("view.default", [x.permute(1, 0, 2), [3, 2, 2, 2]], label="split dim of permuted")
    case("view.default", [rn(4, 6)[1:3], [3, 4]], label="row slice")
    case("view.default", [rn(0, 3), [3, 0]], label="empty")
    case("view.default", [rn(1, 5, dtype=torch.bfloat16), [5]], label="bf16 drop dim")
    case("_unsafe_view.default", [x, [4, 6]], label="contiguous")
    case("_unsafe_view.default", [ri(0, 9, 3, 4), [12]], label="i64")
    for name in ("alias.default", "detach.default"):
        case(name, [x], label="contiguous")
        case(name, [tr(3, 5)], label="transposed")
    case("expand.default", [rn(3, 1), [2, 3, 4]], label="new and size-1 dims")
    case("expand.default", [rn(1, 4), [3, -1]], label="-1 keeps")
    case("expand.default", [tr(1, 3), [2, 5, 3]], label="transposed source")
    case("expand.default", [bools(4), [2, 4]], label="bool")
    case("transpose.int", [x, 0, 2], label="0,2")
    case("transpose.int", [tr(3, 4), -1, -2], label="negative dims of transposed")
    case("transpose.int", [x, 1, 1], label="same dim")
    case("t.default", [rn(3, 5)], label="2-d")
    case("t.default", [rn(4)], label="1-d")
    case("t.default", [sl(3, 4)], label="strided")
    case("permute.default", [rn(2, 3, 4, 5), [3, 1, 0, 2]], label="4-d")
    case("permute.default", [tr(3, 4), [-1, 0]], label="negative dims")
    case("unsqueeze.default", [x, 0], label="front")
    case("unsqueeze.default", [x, -1], label="back")
    case("unsqueeze.default", [tr(3, 4), 1], label="middle of transposed")
    case("unsqueeze.default", [torch.tensor(2.5), 0], label="0-d")
    case("squeeze.dim", [rn(3, 1, 4), 1], label="size-1")
    case("squeeze.dim", [rn(3, 2), 1], label="not size-1 (no-op)")
    case("squeeze.dim", [rn(3, 4, 1).transpose(0, 1), -1], label="negative dim, strided")
    case("select.int", [x, 1, -1], label="last in dim 1")
    case("select.int", [tr(4, 5), 0, 2], label="row of transposed")
    case("select.int", [ri(0, 5, 6), 0, 3], label="1-d i64 -> 0-d")
    case("slice.Tensor", [rn(4, 7), 1, 1, 5, 1], label="middle")
    case("slice.Tensor", [rn(9, 3), 0, None, None, 2], label="step 2, open ends")
    case("slice.Tensor", [rn(3, 8), -1, -3, I64_MAX, 1], label="negative start, huge end")
    case("slice.Tensor", [rn(5, 4), 0, 4, 2, 1], label="empty (end < start)")
    case("slice.Tensor", [tr(6, 4), 0, 1, 100, 3], label="transposed, end beyond")
    case("split.Tensor", [rn(10, 3), 3], label="uneven chunks")
    case("split.Tensor", [tr(4, 6), 2, -1], label="last dim of transposed")
    case("split.Tensor", [rn(3, 5), 8, 1], label="one chunk")


def copies():
    case("clone.default", [tr(4, 5)], label="transposed f32")
    case("clone.default", [sl(3, 4, dtype=torch.bfloat16)], label="strided bf16")
    case("clone.default", [bools(3, 7)], label="bool")
    case("clone.default", [rn(3, 1).expand(3, 4)], label="expanded")
    f = rn(5, 6) * 4
    case("_to_copy.default", [f], {"dtype": torch.float16}, label="f32 -> f16")
    case("_to_copy.default", [f], {"dtype": torch.bfloat16}, label="f32 -> bf16")
    case("_to_copy.default", [f], {"dtype": torch.int64}, label="f32 -> i64 (truncate)")
    case("_to_copy.default", [f.round()], {"dtype": torch.bool}, label="f32 -> bool")
    case("_to_copy.default", [ri(-50, 50, 4, 4)], {"dtype": torch.float32}, label="i64 -> f32")
    case("_to_copy.default", [bools(9)], {"dtype": torch.float32}, label="bool -> f32")
    case("_to_copy.default", [tr(3, 6, dtype=torch.float16)], {"dtype": torch.float32},
         label="transposed f16 -> f32")
    case("_to_copy.default", [ri(-3, 3, 8)], {"dtype": torch.int32}, label="i64 -> i32")
    case("_to_copy.default", [rn(4, 3)], label="no dtype (plain copy)")
    case("copy.default", [rn(3, 4), rn(4)], label="broadcast src")
    case("copy.default", [rn(3, 4), rn(3, 4, dtype=torch.float16)], label="f16 src -> f32")
    case("copy.default", [ri(0, 4, 2, 5), tr(2, 5) * 10], label="transposed f32 src -> i64")
    case("copy.default", [rn(2, 3, dtype=torch.bfloat16), rn(1, 3)], label="bf16 self")


def indexing():
    w = rn(10, 8)
    case("embedding.default", [w, ri(0, 10, 2, 5)], label="2-d ids")
    case("embedding.default", [w, ri(0, 10, 7)], label="1-d ids")
    case("embedding.default", [tr(10, 8), ri(0, 10, 3)], label="transposed weight")
    case("embedding.default", [rn(6, 4, dtype=torch.bfloat16), ri(0, 6, 2, 2)], label="bf16")
    case("embedding.default", [w, ri(0, 10, 5)[::2]], label="strided ids")
    case("embedding.default", [w, torch.tensor(3)], label="0-d id")
    x = rn(3, 5)
    case("gather.default", [x, 1, ri(0, 5, 3, 4)], label="dim 1")
    case("gather.default", [x, 0, ri(0, 3, 2, 5)], label="dim 0")
    case("gather.default", [rn(2, 3, 4), -1, ri(0, 4, 2, 3, 2)], label="3-d, dim -1")
    case("gather.default", [tr(4, 3), 0, ri(0, 4, 4, 2)], label="transposed self")
    case("gather.default", [ri(0, 100, 3, 5), 1, ri(0, 5, 3, 5)], label="i64 self")
    case("index_select.default", [rn(5, 3), 0, torch.tensor([2, 0, 2, 4])], label="dim 0")
    case("index_select.default", [tr(4, 6), 1, torch.tensor([3, 1])], label="dim 1 transposed")
    case("index_select.default", [rn(2, 3, 4, dtype=torch.float16), -1, torch.tensor([0, 3])],
         label="f16 last dim")
    case("index_select.default", [ri(0, 9, 6), 0, torch.tensor([5, 5, 0])], label="i64 1-d")
    y = rn(5, 6, 7)
    case("index.Tensor", [y, [torch.tensor([4, 0, -1])]], label="dim 0, negative")
    case("index.Tensor", [y, [None, torch.tensor([[1, 2], [3, 5]])]], label="dim 1, 2-d index")
    case("index.Tensor", [y, [torch.tensor([[0], [3]]), torch.tensor([1, 2, 5])]],
         label="broadcast pair")
    case("index.Tensor", [y, [torch.tensor([1, 3]), None, torch.tensor([0, 6])]],
         label="non-adjacent -> front")
    case("index.Tensor", [y, [None, None, torch.tensor([6, 0])]], label="last dim")
    case("index.Tensor", [rn(4, 5), [bools(4, 5)]], label="bool mask 2-d")
    case("index.Tensor", [rn(4, 5), [torch.tensor([True, False, True, True])]],
         label="bool mask rows")
    case("index.Tensor", [tr(4, 5), [ri(0, 4, 3)]], label="transposed self")


def binary():
    names = ["add.Tensor", "sub.Tensor", "mul.Tensor", "div.Tensor",
             "maximum.default", "minimum.default"]
    for n in names:
        case(n, [rn(256, 130), rn(256, 130)], label="same shape (parallel)")
        case(n, [rn(64, 48), rn(48)], label="bias row")
        case(n, [rn(5, 1), rn(1, 7)], label="outer broadcast")
        case(n, [tr(6, 5), rn(6, 5)], label="transposed")
        case(n, [rn(3, 4), torch.tensor(1.5)], label="0-d other")
        case(n, [rn(4, 6, dtype=torch.float16), rn(4, 6, dtype=torch.float16)], label="f16")
        case(n, [rn(4, 6, dtype=torch.bfloat16), sl(4, 6, dtype=torch.bfloat16)], label="bf16")
        case(n, [ri(-20, 20, 4, 5), ri(1, 9, 5)], label="i64")
        case(n, [ri(-5, 5, 3, 4), rn(3, 4)], label="i64 with f32")
        case(n, [rn(2, 3, 4), rn(3, 4)], label="3-d broadcast")
    nan = rn(4, 4)
    nan[1, 2] = float("nan")
    case("maximum.default", [nan, rn(4, 4)], label="NaN propagates")
    case("minimum.default", [rn(4, 4), nan], label="NaN propagates")
    case("add.Tensor", [rn(5, 4), rn(5, 4)], {"alpha": 2}, label="alpha 2")
    case("sub.Tensor", [rn(5, 4), rn(4)], {"alpha": 0.5}, label="alpha 0.5")
    case("add.Tensor", [ri(-9, 9, 6), ri(-9, 9, 6)], {"alpha": 3}, label="i64 alpha 3")
    case("add.Tensor", [bools(8), bools(8)], label="bool")
    case("mul.Tensor", [bools(8), bools(8)], label="bool")
    case("add.Tensor", [rn(0, 4), rn(4)], label="empty")
    x = rn(40, 30)
    case("add.Scalar", [x, 2.5], label="f32 + float")
    case("add.Scalar", [x, 2, 3], label="f32 + int, alpha")
    case("add.Scalar", [ri(-9, 9, 7), 3], label="i64 + int")
    case("add.Scalar", [rn(3, 5, dtype=torch.bfloat16), -1.25], label="bf16")
    case("sub.Scalar", [x, 0.75], label="f32")
    case("sub.Scalar", [ri(0, 9, 4, 2), 4, 2], label="i64 alpha")
    case("mul.Scalar", [x, -3.0], label="f32")
    case("mul.Scalar", [tr(5, 6, dtype=torch.float16), 0.125], label="f16 transposed")
    case("mul.Scalar", [ri(-9, 9, 5), 7], label="i64")
    case("mul.Scalar", [bools(6), 2], label="bool * int -> i64")
    case("div.Scalar", [x, 8.0], label="f32")
    case("div.Scalar", [ri(-9, 9, 6), 4], label="i64 -> f32")
    pos = rn(30, 20).abs() + 0.1
    for e in (2, 3.0, 0.5, -1, -2.0, 1.7):
        case("pow.Tensor_Scalar", [pos, e], label=f"exponent {e}")
    case("pow.Tensor_Scalar", [rn(6, 5), 3], label="negative base cubed")
    case("pow.Tensor_Scalar", [ri(-4, 5, 7), 2], label="i64 squared")
    case("pow.Tensor_Scalar", [rn(4, dtype=torch.bfloat16).abs(), 2.0], label="bf16")
    case("rsub.Scalar", [x, 1.0], label="1 - x")
    case("rsub.Scalar", [x, 2, 0.5], label="alpha")
    case("rsub.Scalar", [ri(0, 9, 5), 10], label="i64")


def unary():
    big = rn(256, 130)
    for n in ("neg", "exp", "tanh", "sigmoid", "relu", "silu", "erf", "abs"):
        name = n + ".default"
        case(name, [big], label="f32 (parallel)")
        case(name, [tr(7, 9)], label="transposed")
        case(name, [rn(5, 6, dtype=torch.float16)], label="f16")
        case(name, [rn(5, 6, dtype=torch.bfloat16)], label="bf16")
        case(name, [rn(2, 1).expand(2, 5)], label="expanded")
    spread = torch.linspace(-30, 30, 1201)
    for n in ("exp", "tanh", "sigmoid", "silu", "erf"):
        case(n + ".default", [spread], label="range -30..30")
    special = torch.tensor([float("-inf"), float("inf"), float("nan"), 0.0, -0.0, 88.0, -100.0,
                            1e-6, -1e-4])
    for n in ("exp", "tanh", "sigmoid", "erf", "relu", "abs", "neg"):
        case(n + ".default", [special], label="special values")
    tiny = torch.linspace(-0.7, 0.7, 141)
    case("tanh.default", [tiny], label="small arguments")
    case("erf.default", [tiny], label="small arguments")
    pos = rn(200, 100).abs() + 1e-3
    for n in ("log", "sqrt", "rsqrt"):
        case(n + ".default", [pos], label="positive f32")
        case(n + ".default", [(rn(4, 5, dtype=torch.float16).abs() + 0.01)], label="f16")
        case(n + ".default", [torch.tensor([0.0, 1.0, 4.0, float("inf")])], label="edges")
    case("log.default", [torch.tensor([-1.0, 0.0])], label="domain edges")
    case("sqrt.default", [ri(0, 50, 6)], label="i64 -> f32")
    case("exp.default", [ri(-5, 5, 6)], label="i64 -> f32")
    case("gelu.default", [big], label="exact")
    case("gelu.default", [big], {"approximate": "tanh"}, label="tanh")
    case("gelu.default", [spread], label="exact range")
    case("gelu.default", [spread], {"approximate": "tanh"}, label="tanh range")
    case("gelu.default", [tr(6, 7, dtype=torch.bfloat16)], label="bf16 transposed")
    case("neg.default", [ri(-9, 9, 6)], label="i64")
    case("abs.default", [ri(-9, 9, 6)], label="i64")
    case("relu.default", [ri(-9, 9, 6)], label="i64")
    z = rn(6, 7)
    z[z.abs() < 0.5] = 0
    case("logical_not.default", [z], label="f32")
    case("logical_not.default", [bools(9)], label="bool")
    case("logical_not.default", [ri(-2, 3, 8)], label="i64")
    case("logical_not.default", [tr(3, 4, dtype=torch.bfloat16).round()], label="bf16 transposed")
    case("bitwise_not.default", [bools(3, 5)], label="bool")
    case("bitwise_not.default", [ri(-100, 100, 9)], label="i64")


def compare():
    a = ri(-3, 3, 6, 7).float()
    b = ri(-3, 3, 7).float()
    case("eq.Tensor", [a, b], label="f32 broadcast")
    case("eq.Tensor", [ri(0, 3, 5, 4), ri(0, 3, 5, 4)], label="i64")
    case("eq.Tensor", [ri(0, 3, 5), ri(0, 3, 5).float()], label="i64 vs f32")
    case("eq.Tensor", [bools(6), bools(6)], label="bool")
    case("eq.Tensor", [a.t(), a.t().contiguous()], label="transposed")
    for n in ("eq", "ne", "lt", "gt", "le", "ge"):
        name = n + ".Scalar"
        case(name, [a, 1], label="f32 vs int")
        case(name, [rn(8, 9), 0.25], label="f32 vs float")
        case(name, [ri(-3, 3, 10), 0], label="i64 vs int")
        case(name, [ri(-3, 3, 10), 0.5], label="i64 vs float")
        case(name, [tr(4, 5, dtype=torch.float16), 0.1], label="f16 transposed")
    case("eq.Scalar", [bools(7), True], label="bool vs bool")
    cond = bools(4, 5)
    case("where.self", [cond, rn(4, 5), rn(4, 5)], label="f32")
    case("where.self", [bools(4, 1), rn(1, 5), rn(4, 5)], label="broadcast")
    case("where.self", [cond, ri(0, 9, 4, 5), rn(5)], label="i64 and f32 -> f32")
    case("where.self", [cond, ri(0, 9, 4, 5), ri(-9, 0, 4, 5)], label="i64")
    case("where.self", [cond, rn(4, 5), torch.tensor(float("-inf"))], label="0-d -inf")
    case("where.self", [cond.t(), tr(5, 4, dtype=torch.bfloat16), rn(5, 4, dtype=torch.bfloat16)],
         label="bf16 transposed")
    scores = rn(2, 3, 6, 6)
    causal = torch.ones(6, 6, dtype=torch.bool).triu(1).view(1, 1, 6, 6)
    case("masked_fill.Scalar", [scores, causal, float("-inf")], label="causal -inf")
    case("masked_fill.Scalar", [rn(4, 5), bools(5), 0.0], label="row mask")
    case("masked_fill.Scalar", [ri(0, 9, 3, 3), bools(3, 3), -1], label="i64")
    case("masked_fill.Scalar", [tr(3, 4, dtype=torch.float16), bools(3, 4), 2.5], label="f16")


def fills():
    for n in ("tril.default", "triu.default"):
        case(n, [rn(5, 7)], label="diag 0")
        case(n, [rn(5, 7), 1], label="diag 1")
        case(n, [rn(6, 4), -2], label="diag -2")
        case(n, [rn(2, 4, 4)], label="batched")
        case(n, [torch.ones(4, 4, dtype=torch.bool)], label="bool")
        case(n, [tr(5, 6)], label="transposed")
        case(n, [rn(3, 3), 100], label="huge diagonal")
        case(n, [ri(0, 9, 3, 5), -100], label="huge negative diagonal")
    case("fill.Scalar", [rn(3, 4), 3.5], label="f32")
    case("fill.Scalar", [ri(0, 5, 6), 7], label="i64")
    case("fill.Scalar", [bools(5), True], label="bool")
    case("fill.Scalar", [tr(2, 3, dtype=torch.bfloat16), -0.75], label="bf16")
    case("arange.start_step", [0, 10, 1], label="int")
    case("arange.start_step", [0.0, 1.0, 0.1], label="float")
    case("arange.start_step", [5, -5, -2], label="negative step")
    case("arange.start_step", [2, 9, 3], {"dtype": torch.float32}, label="int -> f32")
    case("arange.start_step", [3, 3, 1], label="empty")
    case("arange.start_step", [-1.5, 2.25, 0.25], {"dtype": torch.bfloat16}, label="bf16")
    case("full.default", [[2, 3], 1.5], label="f32")
    case("full.default", [[4], 7], {"dtype": torch.int64}, label="i64")
    case("full.default", [[2, 2], True], label="bool")
    case("full.default", [[3, 1, 2], -2.0], {"dtype": torch.float16}, label="f16")
    case("full.default", [[1, 1, 3], float("-inf")], label="-inf")


def norms():
    ln = "native_layer_norm.default"
    case(ln, [rn(4, 32), [32], rn(32), rn(32), 1e-5], label="affine")
    case(ln, [rn(2, 3, 16), [3, 16], rn(3, 16), rn(3, 16), 1e-6], label="2-d normalized")
    case(ln, [rn(5, 12) * 3 + 1, [12], None, None, 1e-5], label="no affine")
    case(ln, [rn(5, 12), [12], rn(12), None, 1e-5], label="weight only")
    case(ln, [rn(64, 768), [768], rn(768), rn(768), 1e-5], label="gpt2 width (parallel)")
    case(ln, [tr(12, 6), [6], rn(6), rn(6), 1e-5], label="transposed input")
    case(ln, [rn(3, 20, dtype=torch.float16), [20], rn(20, dtype=torch.float16),
              rn(20, dtype=torch.float16), 1e-5], label="f16")
    case(ln, [rn(3, 20, dtype=torch.bfloat16), [20], rn(20, dtype=torch.bfloat16),
              rn(20, dtype=torch.bfloat16), 1e-5], label="bf16")


def matmuls():
    case("mm.default", [rn(7, 5), rn(5, 9)], label="plain")
    case("mm.default", [tr(7, 5), tr(5, 9)], label="both transposed")
    case("mm.default", [rn(1, 64), rn(64, 50)], label="one row")
    case("mm.default", [sl(4, 6), rn(6, 3)], label="column-strided lhs (copied)")
    case("mm.default", [rn(6, 4, dtype=torch.float16), rn(4, 5, dtype=torch.float16)], label="f16")
    case("mm.default", [rn(6, 4, dtype=torch.bfloat16), tr(4, 5, dtype=torch.bfloat16)],
         label="bf16")
    case("mm.default", [rn(1, 768), rn(768, 256)], label="decode row (threaded gemv)")
    case("mm.default", [sl(1, 768), tr(768, 256)], label="strided row, transposed weight (gemv)")
    case("mm.default", [rn(256, 128), rn(128, 64)], label="narrow output (row split)")
    case("mm.default", [rn(3, 0), rn(0, 4)], label="K = 0")
    case("mm.default", [rn(0, 3), rn(3, 4)], label="M = 0")
    w = rn(48, 32)                              # nn.Linear weight (out, in)
    case("addmm.default", [rn(48), rn(10, 32), w.t()], label="linear: bias + x @ t(W)")
    case("addmm.default", [rn(10, 48), rn(10, 32), rn(32, 48)], label="full bias")
    case("addmm.default", [rn(1, 48), rn(10, 32), w.t()], {"beta": 0.5, "alpha": 2.0},
         label="beta/alpha")
    nanb = torch.full((48,), float("nan"))
    case("addmm.default", [nanb, rn(4, 32), w.t()], {"beta": 0}, label="beta 0 ignores NaN bias")
    case("addmm.default", [rn(5), tr(3, 4), sl(4, 5)], label="strided operands")
    case("addmm.default", [rn(5, dtype=torch.bfloat16), rn(3, 4, dtype=torch.bfloat16),
                           rn(4, 5, dtype=torch.bfloat16)], label="bf16")
    case("addmm.default", [rn(5, dtype=torch.float16), rn(3, 4, dtype=torch.float16),
                           rn(4, 5, dtype=torch.float16)], label="f16")
    case("addmm.default", [rn(256), rn(128, 192), rn(192, 256)], label="large (threaded BLAS)")
    case("addmm.default", [rn(4), rn(3, 0), rn(0, 4)], label="K = 0")
    case("bmm.default", [rn(3, 4, 5), rn(3, 5, 6)], label="plain")
    case("bmm.default", [rn(4, 64, 32), tr(4, 32, 48)], label="batches over threads")
    case("bmm.default", [rn(3, 4, 5), tr(3, 5, 6)], label="transposed rhs (K cache)")
    case("bmm.default", [rn(1, 4, 5).expand(3, 4, 5), rn(3, 5, 2)], label="expanded lhs")
    case("bmm.default", [rn(2, 6, 8).transpose(0, 1)[:2], rn(2, 8, 3)], label="batch-strided lhs")
    case("bmm.default", [rn(2, 3, 4, dtype=torch.bfloat16), rn(2, 4, 3, dtype=torch.bfloat16)],
         label="bf16")
    case("baddbmm.default", [rn(3, 4, 6), rn(3, 4, 5), rn(3, 5, 6)], label="full self")
    case("baddbmm.default", [rn(6), rn(3, 4, 5), rn(3, 5, 6)], {"beta": 2.0, "alpha": -0.5},
         label="broadcast self, beta/alpha")
    case("baddbmm.default", [rn(3, 1, 6), tr(3, 4, 5), rn(3, 5, 6)], {"beta": 0.0},
         label="beta 0")


def softmaxes():
    masked = rn(4, 10)
    masked[:, 7:] = float("-inf")
    allinf = rn(3, 6)
    allinf[1] = float("-inf")
    for n in ("_softmax.default", "_log_softmax.default"):
        case(n, [rn(4, 10), -1, False], label="last dim")
        case(n, [rn(4, 10), 0, False], label="dim 0")
        case(n, [rn(2, 3, 4), 1, False], label="middle dim")
        case(n, [masked, 1, False], label="-inf entries")
        case(n, [rn(64, 1024) * 4, -1, False], label="wide rows (parallel)")
        case(n, [tr(6, 5), -1, False], label="transposed")
        case(n, [rn(3, 7, dtype=torch.float16), -1, False], label="f16")
        case(n, [rn(3, 7, dtype=torch.bfloat16), 0, False], label="bf16")
        case(n, [allinf, 1, False], label="all -inf row -> NaN")
        case(n, [torch.tensor(1.5), 0, False], label="0-d")
    s = "_safe_softmax.default"
    case(s, [allinf, 1], label="all -inf row -> zeros")
    case(s, [rn(2, 3, 8), -1], label="plain")
    case(s, [masked.t(), 0], label="transposed, -inf")
    case(s, [rn(3, 5, dtype=torch.float16), -1], label="f16")
    case(s, [rn(3, 5, dtype=torch.float16), -1, torch.float32], label="f16 -> f32 dtype")


def reductions():
    x = rn(4, 7)
    case("argmax.default", [x], label="flattened")
    case("argmax.default", [x, 1], label="dim 1")
    case("argmax.default", [x, 0, True], label="dim 0 keepdim")
    case("argmax.default", [rn(2, 3, 50), -1], label="3-d last dim")
    case("argmax.default", [tr(5, 6)], label="transposed flattened")
    case("argmax.default", [torch.tensor([[1, 3, 3], [2, 2, 0]]), 1], label="i64 ties -> first")
    nanx = rn(3, 5)
    nanx[1, 3] = float("nan")
    case("argmax.default", [nanx, 1], label="NaN wins")
    case("argmax.default", [rn(3, 40, dtype=torch.bfloat16), -1], label="bf16")
    case("max.dim", [x, 1], label="dim 1")
    case("max.dim", [x, 0, True], label="dim 0 keepdim")
    case("max.dim", [tr(5, 6), -1], label="transposed")
    case("max.dim", [ri(-99, 99, 4, 9), 1], label="i64")
    case("max.dim", [rn(3, 6, dtype=torch.float16), 1], label="f16")
    case("max.dim", [nanx, 1], label="NaN")
    case("sum.dim_IntList", [rn(300, 200), [1]], label="rows (parallel)")
    case("sum.dim_IntList", [rn(3, 4, 5), [0, 2], True], label="two dims keepdim")
    case("sum.dim_IntList", [rn(3, 4, 5), None], label="all (None)")
    case("sum.dim_IntList", [rn(3, 4, 5), []], label="all ([])")
    case("sum.dim_IntList", [tr(6, 5), [0]], label="transposed dim 0")
    case("sum.dim_IntList", [ri(-9, 9, 4, 6), [1]], label="i64")
    case("sum.dim_IntList", [bools(5, 6), [-1]], label="bool -> i64")
    case("sum.dim_IntList", [rn(4, 8, dtype=torch.float16), [1]], label="f16")
    case("sum.dim_IntList", [rn(4, 8, dtype=torch.bfloat16), [0]], {"dtype": torch.float32},
         label="bf16 -> f32 dtype")
    case("sum.dim_IntList", [rn(3, 0), [1]], label="empty reduction")
    case("sum.dim_IntList", [rn(2, 3, 4).permute(2, 0, 1), [1, 2]], label="permuted")
    case("mean.dim", [rn(4, 9), [-1], True], label="last keepdim")
    case("mean.dim", [rn(3, 4, 5), [0, 1]], label="two dims")
    case("mean.dim", [rn(6, 768), [-1], True], label="rms-norm style")
    case("mean.dim", [tr(5, 7, dtype=torch.float16), [0]], label="f16 transposed")
    case("mean.dim", [rn(2, 3), None], label="all")
    for n, want in (("all.default", True), ("any.default", False)):
        case(n, [torch.ones(4, 5, dtype=torch.bool)], label="all true")
        case(n, [bools(4, 5)], label="random bool")
        case(n, [torch.zeros(6, dtype=torch.bool)], label="all false")
        zf = rn(5, 6)
        zf[2, 3] = 0
        case(n, [zf], label="f32 with a zero")
        case(n, [ri(0, 2, 8)], label="i64")
        case(n, [rn(0, 3)], label="empty")
        case(n, [tr(3, 4).round()], label="transposed")
    case("cumsum.default", [rn(5, 7), 1], label="dim 1")
    case("cumsum.default", [rn(5, 7), 0], label="dim 0")
    case("cumsum.default", [rn(2, 3, 4), -2], label="middle dim")
    case("cumsum.default", [tr(6, 4), 1], label="transposed")
    case("cumsum.default", [ri(-9, 9, 3, 6), 1], label="i64")
    case("cumsum.default", [bools(10), 0], label="bool -> i64")
    case("cumsum.default", [ri(0, 5, 4, 3), 0], {"dtype": torch.float32}, label="i64 -> f32")
    case("cumsum.default", [rn(3, 9, dtype=torch.bfloat16), 1], label="bf16")
    case("cumsum.default", [torch.ones(4, 5, dtype=torch.int64).cumsum(1), 0],
         label="int position ids")
    v = torch.randperm(200).float().view(10, 20) / 7.0
    case("topk.default", [v, 5], label="largest")
    case("topk.default", [v, 4, -1, False], label="smallest")
    case("topk.default", [v, 3, 0], label="dim 0")
    case("topk.default", [v.t(), 2, 1], label="transposed")
    case("topk.default", [torch.randperm(50).view(5, 10), 10], label="i64, k = L")
    case("topk.default", [v, 0], label="k = 0")
    wide = torch.randperm(5000).float().view(2, 2500) - 100
    case("topk.default", [wide, 50], label="vocab-like k 50")
    case("topk.default", [(torch.randperm(64).view(4, 16).float() / 8).to(torch.bfloat16), 3],
         label="bf16")
    case("topk.default", [torch.tensor([1.0, float("nan"), 3.0, 2.0]), 2], label="NaN first")


def structure():
    case("cat.default", [[rn(2, 3), rn(4, 3)]], label="dim 0")
    case("cat.default", [[rn(2, 3), tr(2, 5), rn(2, 1)], 1], label="dim 1, transposed part")
    case("cat.default", [[rn(2, 3), ri(0, 5, 1, 3)], 0], label="f32 + i64 -> f32")
    case("cat.default", [[rn(2, 3), torch.empty(0)], 0], label="legacy empty skipped")
    case("cat.default", [[rn(1, 2, 4), rn(1, 3, 4)], -2], label="KV-cache append (dim -2)")
    case("cat.default", [[bools(3), bools(2)]], label="bool")
    case("cat.default", [[rn(2, 2, dtype=torch.float16), rn(2, 2, dtype=torch.float16)], 1],
         label="f16")
    case("cat.default", [[rn(0, 4), rn(2, 4)]], label="empty part")


def attention():
    sdpa = "scaled_dot_product_attention.default"
    q, k, v = rn(2, 3, 5, 8), rn(2, 3, 7, 8), rn(2, 3, 7, 8)
    case(sdpa, [q, k, v], label="plain")
    case(sdpa, [rn(1, 2, 6, 8), rn(1, 2, 6, 8), rn(1, 2, 6, 8), None, 0.0, True], label="causal")
    case(sdpa, [q, k, v, None, 0.0, True], label="causal Tq < Tk (top-left)")
    case(sdpa, [rn(1, 2, 7, 8), rn(1, 2, 4, 8), rn(1, 2, 4, 8), None, 0.0, True],
         label="causal Tq > Tk")
    case(sdpa, [q, k, v, bools(5, 7, p=0.7)], label="bool mask (Tq, Tk)")
    case(sdpa, [q, k, v, rn(2, 1, 5, 7)], label="float mask (B, 1, Tq, Tk)")
    full = torch.ones(5, 7, dtype=torch.bool)
    full[2] = False
    case(sdpa, [q, k, v, full], label="fully masked row -> zeros")
    case(sdpa, [rn(2, 4, 3, 8), rn(2, 2, 6, 8), rn(2, 2, 6, 8)], {"enable_gqa": True},
         label="gqa H=4 Hk=2")
    case(sdpa, [rn(3, 5, 8), rn(3, 6, 8), rn(3, 6, 4)], label="3-d, Dv != D")
    case(sdpa, [q, k, v], {"scale": 0.3}, label="explicit scale")
    case(sdpa, [rn(2, 3, 1, 16), rn(2, 3, 9, 16), rn(2, 3, 9, 16)], label="decode (Tq = 1)")
    kt = rn(2, 7, 3, 8).transpose(1, 2)          # (B, T, H, D) -> (B, H, T, D)
    vt = rn(2, 7, 3, 8).transpose(1, 2)
    case(sdpa, [rn(2, 5, 3, 8).transpose(1, 2), kt, vt], label="head-transposed q/k/v")
    case(sdpa, [rn(1, 2, 4, 8), rn(1, 1, 6, 8), rn(1, 1, 6, 8)], label="broadcast k/v heads")
    case(sdpa, [rn(1, 2, 4, 8, dtype=torch.float16), rn(1, 2, 6, 8, dtype=torch.float16),
                rn(1, 2, 6, 8, dtype=torch.float16)], label="f16")
    case(sdpa, [rn(1, 2, 4, 8, dtype=torch.bfloat16), rn(1, 2, 6, 8, dtype=torch.bfloat16),
                rn(1, 2, 6, 8, dtype=torch.bfloat16), None, 0.0, True], label="bf16 causal")
    # Large enough for the sgemm schedule (Tq >= 32, Tq * Tk * D >= 2^20).
    bq, bk, bv = rn(1, 2, 160, 64), rn(1, 2, 160, 64), rn(1, 2, 160, 64)
    case(sdpa, [bq, bk, bv], label="large (sgemm)")
    case(sdpa, [bq, bk, bv, None, 0.0, True], label="large causal (sgemm)")
    case(sdpa, [bq, bk, bv, bools(160, 160, p=0.8)], label="large bool mask (sgemm)")
    case(sdpa, [rn(1, 2, 300, 64), rn(1, 2, 64, 300).transpose(-1, -2), rn(1, 2, 300, 64),
                None, 0.0, True], label="large causal, transposed K, 3 blocks")


def ops_def_names():
    names = []
    with open(OPS_DEF) as f:
        for line in f:
            m = re.match(r'\s*GENIE_OP\(\s*\w+\s*,\s*"([^"]+)"', line)
            if m:
                names.append(m.group(1))
    return names


def revision2():
    """Ops appended in SRG ops revision 2 (transformers' mask building, sums)."""
    a = ri(-3, 3, 6, 7).float()
    b = ri(-3, 3, 7).float()
    for n in ("ne", "lt", "gt", "le", "ge"):
        name = n + ".Tensor"
        case(name, [a, b], label="f32 broadcast")
        case(name, [ri(0, 3, 5, 4), ri(0, 3, 5, 4)], label="i64")
        case(name, [ri(0, 3, 5), ri(0, 3, 5).float()], label="i64 vs f32")
        case(name, [a.t(), a.t().contiguous()], label="transposed")
    case("le.Tensor", [torch.arange(6)[:, None], torch.arange(6)[None, :]], label="causal mask")
    for n in ("bitwise_and", "bitwise_or"):
        name = n + ".Tensor"
        case(name, [bools(4, 5), bools(4, 5)], label="bool")
        case(name, [bools(4, 1), bools(1, 5)], label="bool broadcast")
        case(name, [ri(-100, 100, 9), ri(-100, 100, 9)], label="i64")
        case(name, [bools(5, 4).t(), bools(4, 5)], label="transposed")
    for n in ("logical_and", "logical_or"):
        name = n + ".default"
        case(name, [bools(4, 5), bools(4, 5)], label="bool")
        case(name, [rn(3, 4).round(), ri(-1, 2, 3, 4)], label="f32 and i64")
        case(name, [bools(4, 1), bools(1, 5)], label="broadcast")
    case("sum.default", [rn(30, 20)], label="f32")
    case("sum.default", [ri(-9, 9, 4, 6)], label="i64")
    case("sum.default", [bools(5, 6)], label="bool -> i64")
    case("sum.default", [tr(6, 5)], label="transposed")
    case("sum.default", [rn(4, 8, dtype=torch.bfloat16)], {"dtype": torch.float32}, label="bf16 -> f32")
    case("sum.default", [rn(0, 3)], label="empty")
    case("mean.default", [rn(30, 20)], label="f32")
    case("mean.default", [tr(6, 5)], label="transposed")
    case("mean.default", [rn(4, 8, dtype=torch.float16)], label="f16")


def math3():
    """Ops appended in SRG ops revision 3: elementwise math (rotary sin/cos, rounding,
    clamps, divisions with rounding modes, pow overloads)."""
    inf, nan = float("inf"), float("nan")
    special = torch.tensor([-inf, inf, nan, 0.0, -0.0, 1e-6, -1e-4, 0.5, -3.0, 1e30])
    # ---- sin / cos (rotary embeddings: cos(position * inv_freq)) ----
    pos = torch.arange(64, dtype=torch.float32)
    inv_freq = 1.0 / (10000 ** (torch.arange(0, 32, 2, dtype=torch.float32) / 32))
    freqs = pos[:, None] * inv_freq[None, :]
    emb = torch.cat([freqs, freqs], dim=-1)[None]
    for n in ("sin", "cos"):
        name = n + ".default"
        case(name, [rn(256, 130) * 3], label="f32 (parallel)")
        case(name, [emb], label="rotary table")
        case(name, [torch.linspace(-2048, 2048, 4001)], label="range -2048..2048")
        case(name, [special], label="special values")
        case(name, [tr(7, 9)], label="transposed")
        case(name, [rn(2, 1).expand(2, 5)], label="expanded")
        case(name, [rn(5, 6, dtype=torch.float16)], label="f16")
        case(name, [emb.to(torch.bfloat16)], label="bf16 rotary")
        case(name, [ri(-50, 50, 9)], label="i64 -> f32")
        case(name, [bools(6)], label="bool -> f32")
    # ---- floor_divide ----
    fd = "floor_divide.default"
    num = torch.tensor([-7.0, 7.0, 0.0, -0.0, inf, -inf, 5.0, -5.0, nan, 1.0, 7.5, -7.5])
    den = torch.tensor([2.0, -2.0, -3.0, 3.0, 2.0, 2.0, inf, inf, 1.0, nan, 0.5, 0.25])
    case(fd, [num, den], label="f32 signs, zeros, inf, nan")
    case(fd, [torch.tensor([-7.0, 7.0, 0.0, -0.0]), torch.tensor(0.0)], label="f32 by zero")
    case(fd, [rn(64, 48) * 10, rn(48)], label="f32 bias row")
    case(fd, [tr(6, 5) * 10, rn(6, 5)], label="f32 transposed")
    case(fd, [rn(5, 1) * 10, rn(1, 7)], label="f32 outer broadcast")
    case(fd, [ri(-20, 20, 4, 5), ri(1, 9, 5) * torch.tensor([1, -1, 1, -1, 1])],
         label="i64 signs")
    case(fd, [ri(-100, 100, 30), torch.tensor(7)], label="i64 by 0-d int")
    case(fd, [ri(-100, 100, 30).to(torch.int32), torch.tensor(-3)], label="i32 by 0-d int")
    case(fd, [torch.tensor([-2**63, 2**63 - 1, -9, 9]), torch.tensor([-1, -1, 4, -4])],
         label="i64 extremes")
    case(fd, [ri(-100, 100, 6, 5).t(), ri(1, 9, 6, 5).t()], label="i64 transposed")
    case(fd, [ri(-100, 100, 12), torch.tensor(2.5)], label="i64 by 0-d f32 -> f32")
    case(fd, [ri(-5, 5, 3, 4), rn(3, 4)], label="i64 with f32")
    case(fd, [rn(4, 6, dtype=torch.float16) * 8, rn(4, 6, dtype=torch.float16)], label="f16")
    case(fd, [rn(4, 6, dtype=torch.bfloat16) * 8, sl(4, 6, dtype=torch.bfloat16)], label="bf16")
    case(fd, [rn(40, dtype=torch.float16) * 8, torch.tensor(0.7)],
         label="f16 by 0-d f32 (kept f32)")
    case(fd, [(torch.arange(24) * 7).view(4, 6), torch.tensor(4)],
         label="MoE expert index")
def index3():
    """Ops appended in SRG ops revision 3 by the indexing/sorting group: MoE routing
    (sort, histc, index_put, _grouped_mm), repeat."""
    # ---- sort ----
    ties = torch.tensor([[3., 1., 2., 1., 3., 2., 1.], [0., 0., -1., 5., 0., -1., 5.]])
    special = torch.tensor([3., 1., float("nan"), 1., 3., -0.0, 0.0, float("-inf"),
                            float("inf"), float("nan")])
    # sort.default is ATen's unstable sort: the order of equal values is
    # implementation-defined, so its tie cases compare values and only the
    # indices' shape; sort.stable checks the tie order on the same inputs.
    for name, kw in (("sort.default", {}), ("sort.stable", {"stable": True})):
        st = "stable " if kw else ""
        tie_skip = () if kw else (1,)
        case(name, [rn(5, 9)], {**kw}, label=st + "last dim")
        case(name, [rn(5, 9)], {**kw, "dim": 0}, label=st + "dim 0")
        case(name, [rn(2, 3, 40)], {**kw, "dim": -2, "descending": True}, label=st + "dim -2 desc")
        case(name, [tr(6, 7)], {**kw, "descending": True}, label=st + "transposed desc")
        case(name, [sl(4, 9)], {**kw}, label=st + "strided")
        case(name, [ties], {**kw}, label=st + "ties asc", skip_outputs=tie_skip)
        case(name, [ties], {**kw, "descending": True}, label=st + "ties desc",
             skip_outputs=tie_skip)
        case(name, [special], {**kw}, label=st + "NaN/inf/-0 asc", skip_outputs=tie_skip)
        case(name, [special], {**kw, "descending": True}, label=st + "NaN/inf/-0 desc",
             skip_outputs=tie_skip)
        case(name, [ri(0, 4, 3, 50)], {**kw}, label=st + "i64 many ties", skip_outputs=tie_skip)
        case(name, [ri(-5, 5, 30).to(torch.int32)], {**kw, "descending": True}, label=st + "i32 desc",
             skip_outputs=tie_skip)
        case(name, [bools(12)], {**kw}, label=st + "bool", skip_outputs=tie_skip)
        case(name, [rn(3, 20, dtype=torch.bfloat16)], {**kw}, label=st + "bf16",
             skip_outputs=tie_skip)
        case(name, [rn(3, 20, dtype=torch.float16)], {**kw, "dim": 0}, label=st + "f16 dim 0",
             skip_outputs=tie_skip)
        case(name, [rn(0, 5)], {**kw}, label=st + "empty")
        case(name, [torch.tensor(2.5)], {**kw}, label=st + "0-d")
        case(name, [rn(64, 600)], {**kw}, label=st + "large (parallel)")
    case("sort.default", [ri(0, 8, 2, 6).flatten()], label="MoE expert ids")
    case("sort.stable", [ties], {"stable": False}, label="stable=False")
    case("sort.stable", [ties], {"stable": None, "dim": 0}, label="stable=None dim 0")
    # ---- histc ----
    case("histc.default", [rn(1000)], label="default 100 bins, data range")
    case("histc.default", [rn(10, 20), 7, -1.0, 1.0], label="range, out-of-range ignored")
    case("histc.default", [tr(8, 9), 5, -2, 2], label="transposed, int range")
    eid = ri(0, 8, 40).float()
    case("histc.default", [eid, 8, 0, 7], label="MoE expert counts")
    edges = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 0.1, 0.3, 0.7, 0.9999])
    case("histc.default", [edges, 4, 0, 1], label="bin edges, max closed")
    case("histc.default", [torch.full((6,), 3.0), 4], label="constant data -> [2, 4]")
    case("histc.default", [rn(0), 3], label="empty")
    case("histc.default", [rn(50, dtype=torch.bfloat16), 6, -2, 2], label="bf16")
    case("histc.default", [rn(50, dtype=torch.float16), 6], label="f16 data range")
    nanx = rn(20)
    nanx[3] = float("nan")
    case("histc.default", [nanx, 4, -1, 1], label="NaN ignored in a given range")
    # Integer input: the CPU kernel refuses it; PyTorch's CUDA kernel (and
    # transformers' Mixtral on any non-CPU device) takes it, with min/max
    # truncated to the input type and the bin computed in integer arithmetic:
    # (x - min) * bins / (max - min), the top edge folded into the last bin.
    for dt in (torch.int32, torch.int64):
        x = ri(-3, 12, 60).to(dt)
        for bins, lo, hi in ((8, 0, 7), (5, -2, 9), (3, 0, 0)):
            lo_i, hi_i = (int(x.min()), int(x.max())) if lo == hi else (lo, hi)
            want = torch.zeros(bins, dtype=dt)
            for v in x.tolist():
                if lo_i <= v <= hi_i:
                    want[min((v - lo_i) * bins // (hi_i - lo_i), bins - 1)] += 1
            case("histc.default", [x, bins, lo, hi], label=f"{dt} (CUDA kernel's rule)",
                 expect=want)
    # ---- index_put ----
    ip = "index_put.default"
    y = rn(5, 6, 7)
    case(ip, [y, [torch.tensor([4, 0, -1])], rn(3, 6, 7)], label="dim 0, negative")
    case(ip, [y, [torch.tensor([4, 0, 2])], rn(7)], label="values broadcast")
    case(ip, [y, [None, torch.tensor([[1, 2], [3, 5]])], rn(5, 2, 2, 7)], label="dim 1, 2-d index")
    case(ip, [y, [torch.tensor([[0], [3]]), torch.tensor([1, 2, 5])], torch.tensor(9.0)],
         label="broadcast pair, 0-d value")
    case(ip, [y, [torch.tensor([1, 3]), None, torch.tensor([0, 6])], rn(2, 6)],
         label="non-adjacent -> front")
    case(ip, [y, [None, None, torch.tensor([6, 0])], rn(5, 6, 2)], label="last dim")
    case(ip, [rn(4, 5), [bools(4, 5)], torch.tensor(-1.0)], label="bool mask fill")
    case(ip, [rn(4, 5), [torch.tensor([True, False, True, True])], rn(5)],
         label="bool mask rows")
    case(ip, [tr(4, 5), [ri(0, 4, 3).unique()], rn(5)], label="transposed self")
    case(ip, [rn(6, 3), [torch.tensor([1, 4, 1, 1])], rn(4, 3)], {"accumulate": True},
         label="accumulate with repeats")
    case(ip, [rn(6, 3), [None, torch.tensor([2, 2, 0])], tr(6, 3)], {"accumulate": True},
         label="accumulate dim 1, transposed values")
    case(ip, [ri(-9, 9, 5, 4), [torch.tensor([0, 0, 3])], ri(-9, 9, 3, 4)], {"accumulate": True},
         label="i64 accumulate")
    case(ip, [ri(-9, 9, 5, 4).to(torch.int32), [torch.tensor([2, 4])], ri(-9, 9, 4).to(torch.int32)],
         label="i32")
    case(ip, [bools(4, 4), [torch.tensor([1, 3])], torch.tensor(True)], label="bool")
    case(ip, [rn(4, 6, dtype=torch.bfloat16), [torch.tensor([0, 0])], rn(6, dtype=torch.bfloat16)],
         {"accumulate": True}, label="bf16 accumulate")
    case(ip, [rn(4, 6, dtype=torch.float16), [None, torch.tensor([5, 1])], rn(4, 2, dtype=torch.float16)],
         label="f16")
    case(ip, [rn(4, 3), [torch.tensor([], dtype=torch.int64)], rn(0, 3)], label="empty index")
    case(ip, [rn(8, 5), [torch.tensor([1, 6]).int()], rn(2, 5)], label="int32 index")
    case(ip, [rn(400, 100), [ri(0, 400, 300).unique()], rn(100)], label="large")
    # ---- repeat ----
    case("repeat.default", [rn(2, 3), [2, 2]], label="2-d")
    case("repeat.default", [rn(3), [4, 2]], label="new leading dim")
    case("repeat.default", [tr(3, 4), [1, 3, 1]], label="transposed, 3 repeats")
    case("repeat.default", [rn(1, 5, 1), [3, 1, 4]], label="size-1 dims")
    case("repeat.default", [ri(0, 9, 2, 2), [1, 1]], label="i64 identity")
    case("repeat.default", [bools(2, 3), [2, 1]], label="bool")
    case("repeat.default", [rn(2, 3, dtype=torch.bfloat16), [0, 2]], label="bf16 zero repeat")
    case("repeat.default", [rn(2, 2, 2, 2), [2, 2, 2, 2, 2]], label="tiled (interleaved > 8 dims)")
    case("repeat.default", [torch.tensor(1.5), [3]], label="0-d")
    case("repeat.default", [rn(1, 80, 64), [16, 1, 4]], label="large")
    # ---- _grouped_mm (transformers' MoE experts: input (S, K), weight (E, K, N)) ----
    g = "_grouped_mm.default"
    i32 = lambda *v: torch.tensor(v, dtype=torch.int32)
    case(g, [rn(7, 8), rn(3, 16, 8).transpose(-2, -1), i32(2, 2, 7)],
         label="2d x 3d, transposed weight view, empty group")
    case(g, [rn(9, 8), rn(4, 8, 16), i32(1, 4, 8, 9)], label="2d x 3d, contiguous weight")
    case(g, [rn(6, 12)[:, 4:], rn(2, 16, 8).transpose(-2, -1), i32(3, 6)], label="2d x 3d, row-strided input")
    case(g, [rn(8, 8).t()[:6], rn(2, 8, 16), i32(3, 6)], label="2d x 3d, transposed input")
    case(g, [rn(64, 32), rn(8, 48, 32).transpose(-2, -1), i32(5, 13, 20, 32, 40, 41, 60, 64)],
         label="2d x 3d, Mixtral-like")
    case(g, [rn(6, 8, dtype=torch.bfloat16), rn(3, 16, 8, dtype=torch.bfloat16).transpose(-2, -1),
             i32(1, 5, 6)], label="2d x 3d bf16")
    case(g, [rn(6, 8, dtype=torch.float16), rn(3, 8, 16, dtype=torch.float16), i32(0, 3, 6)],
         label="2d x 3d f16")
    case(g, [rn(3, 8, 8), rn(3, 8, 16)], label="3d x 3d (bmm)")
    case(g, [rn(8, 16), rn(16, 8), i32(4, 16)], label="2d x 2d, groups over K")
    case(g, [rn(3, 8, 8), rn(8, 16), i32(4, 8, 16)], label="3d x 2d, groups over N")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="directory for ops.golden")
    opts = ap.parse_args()

    torch.manual_seed(20240611)
    torch.set_num_threads(1)
    for group in (views, copies, indexing, binary, unary, compare, fills, norms, matmuls,
                  softmaxes, reductions, structure, attention, revision2, math3, index3):
        group()

    names = ops_def_names()
    covered = {c[0] for c in CASES}
    missing = [n for n in names if n not in covered]
    unknown = sorted(covered - set(names))
    if missing or unknown:
        sys.exit(f"gen_golden: ops without cases: {missing}; cases for unknown ops: {unknown}")

    blob = bytearray(MAGIC + struct.pack("<II", VERSION, len(CASES)))
    for name, label, attrs, inputs, outs, tol, skip in CASES:
        blob += enc_str(name) + enc_str(label)
        blob += struct.pack("<I", len(attrs)) + b"".join(enc_attr(a) for a in attrs)
        blob += struct.pack("<I", len(inputs)) + b"".join(enc_slot(t) for t in inputs)
        blob += struct.pack("<I", len(outs))
        blob += b"".join(enc_slot(t, 2 if i in skip else 1) for i, t in enumerate(outs))
        blob += struct.pack("<d", tol)

    os.makedirs(opts.out, exist_ok=True)
    path = os.path.join(opts.out, "ops.golden")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    print(f"gen_golden: {len(CASES)} cases for {len(names)} ops -> {path} "
          f"({len(blob)} bytes)")


if __name__ == "__main__":
    main()

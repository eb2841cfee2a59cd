"""Capture of ATen operations into the pending program.

``RemoteTensor`` is a wrapper tensor subclass on the ``remote_accelerator``
device: it carries shape, strides and dtype (from a meta tensor) and a pointer
to a lazy ``Value``.  Its ``__torch_dispatch__`` sees every ATen op after
autograd and decompositions, normalises the arguments against the op's schema
(ops.def explains the convention), computes output metadata by running the op
on meta tensors, and appends a node to the pending program.  Ops outside the
executor's closed op set raise ``UnsupportedOperationError`` naming the op and
the module path: there is no silent local fallback.

Host interactions (``.cpu()``, ``.item()``, ``.tolist()``, ``.numpy()``,
printing) materialise: they flush the pending program through the runtime.
"""

import time
import weakref

import torch
import torch.nn.functional as F
from torch.utils.weak import WeakIdKeyDictionary
from torch.utils._pytree import tree_flatten, tree_map, tree_unflatten
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes

from . import _C
from ._annotate import current_block, current_module_path, current_phase_modality
from ._device import DEVICE, DEVICE_TYPE
from ._dtypes import code_of
from ._errors import GenieError, UnsupportedOperationError
from ._graph import HOST, RES_KV, Node, Value
from ._runtime import RUNTIME

aten = torch.ops.aten
_SMALL_HOST_BYTES = 1 << 20       # CPU tensors up to this size are copied at capture


class RemoteTensor(torch.Tensor):
    """A tensor whose data lives on a Genie executor (or will, once computed)."""

    @staticmethod
    def __new__(cls, value):
        m = value.meta
        r = torch.Tensor._make_wrapper_subclass(
            cls, m.shape, strides=m.stride(), storage_offset=m.storage_offset(),
            dtype=m.dtype, device=DEVICE, requires_grad=False)
        r._value = value
        return r

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return dispatch(func, args, kwargs or {}, lift_cpu=False)

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            return _capture_sdpa(args, kwargs, lift_cpu=capturing())
        with torch._C.DisableTorchFunctionSubclass():
            return func(*args, **kwargs)

    # ---- host interactions ------------------------------------------------
    def _host(self):
        return RUNTIME.materialize(self._value)

    def __repr__(self, *, tensor_contents=None):
        text = repr(self._host())
        if text.endswith(")"):
            text = text[:-1] + f", device='{DEVICE}')"
        return text

    def tolist(self):
        return self._host().tolist()

    def numpy(self, *, force=False):
        return self._host().numpy()

    def __format__(self, spec):
        return self._host().__format__(spec)


# ---- capture mode -------------------------------------------------------------

# Keyed by identity: a WeakKeyDictionary compares live keys with ==, which for
# tensors is elementwise (a second lookup of one weight raised).
_lifted = WeakIdKeyDictionary()     # CPU tensor -> Value (capture mode)
_capture_depth = [0]


def capturing():
    return _capture_depth[0] > 0


def lifted_value(t):
    return _lifted.get(t) if isinstance(t, torch.Tensor) else None


class capture(TorchDispatchMode):
    """``with genie.capture(): y = model(x)`` captures ops on ordinary CPU tensors.

    Inside the block every op that takes a tensor is captured (its CPU tensor
    arguments are moved to the executor; a module's weights once, by
    fingerprint) and returns a ``RemoteTensor``; nothing runs until a result is
    materialised.  Factory ops without tensor inputs run on the CPU as usual.
    """

    def __enter__(self):
        _capture_depth[0] += 1
        return super().__enter__()

    def __exit__(self, *exc):
        _capture_depth[0] -= 1
        return super().__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        flat, _ = tree_flatten((args, kwargs))
        remote_dev = any(isinstance(a, torch.device) and a.type == DEVICE_TYPE for a in flat)
        if not remote_dev and not any(isinstance(a, torch.Tensor) for a in flat):
            return func(*args, **kwargs)
        return dispatch(func, args, kwargs, lift_cpu=True)


# ---- values <-> tensors ---------------------------------------------------------

def _wrap(v):
    return RemoteTensor(v)


def host_value(t, name=""):
    """A HOST Value holding CPU tensor `t` (copied if small, else referenced and
    checked for in-place modification before upload)."""
    t = t.detach()
    code_of(t.dtype, name or "tensor moved to remote_accelerator")
    nbytes = t.numel() * t.element_size()
    if nbytes <= _SMALL_HOST_BYTES or not t.is_contiguous():
        t = t.contiguous().clone() if t.is_contiguous() else t.contiguous()
    v = Value(torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="meta"), HOST)
    Value.host_epoch += 1
    v.host = t
    v.host_version = t._version
    v.name = name
    return v


def _as_value(x, lift_cpu, what):
    if isinstance(x, RemoteTensor):
        return x._value
    if isinstance(x, torch.Tensor):
        if x.device.type != "cpu":
            raise GenieError(f"genie: {what} mixes remote_accelerator tensors with a tensor on "
                             f"{x.device}; move it to remote_accelerator first")
        if lift_cpu:
            v = _lifted.get(x)
            if v is None:
                v = host_value(x)
                _lifted[x] = v
            return v
        return host_value(x)
    if isinstance(x, (bool, int, float)):
        # A Python number where the schema wants a Tensor (add.Tensor(x, 1)):
        # PyTorch treats it as a wrapped 0-dim tensor; the output dtype the meta
        # kernel computed already reflects its promotion rules.
        dtype = torch.bool if isinstance(x, bool) else torch.int64 if isinstance(x, int) \
            else torch.float32
        return host_value(torch.tensor(x, dtype=dtype))
    raise TypeError(f"genie: expected a tensor in {what}, got {type(x).__name__}")


def _to_meta(x):
    if isinstance(x, RemoteTensor):
        return x._value.meta
    if isinstance(x, torch.Tensor):
        return torch.empty_strided(x.shape, x.stride(), dtype=x.dtype, device="meta")
    if isinstance(x, torch.device) and x.type == DEVICE_TYPE:
        return torch.device("meta")
    return x


# ---- schema normalisation -------------------------------------------------------

_T_TENSOR, _T_OPT_TENSOR, _T_TENSOR_LIST, _T_OPT_TENSOR_LIST, _T_OTHER = range(5)
_schema_cache = {}


def _schema_plan(func):
    plan = _schema_cache.get(func)
    if plan is None:
        plan = []
        for i, a in enumerate(func._schema.arguments):
            ty = str(a.type)
            kind = {"Tensor": _T_TENSOR, "Optional[Tensor]": _T_OPT_TENSOR,
                    "List[Tensor]": _T_TENSOR_LIST,
                    "List[Optional[Tensor]]": _T_OPT_TENSOR_LIST}.get(ty, _T_OTHER)
            default = a.default_value if a.has_default_value() else None
            plan.append((i, a.name, a.kwarg_only, kind, default))
        _schema_cache[func] = plan
    return plan


def _attr(x):
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    if isinstance(x, torch.dtype):
        return ("d", code_of(x, "dtype argument"))
    if isinstance(x, (torch.device, torch.layout, torch.memory_format)):
        return None
    if isinstance(x, (list, tuple)) and all(isinstance(e, int) and not isinstance(e, bool) for e in x):
        return list(x)
    if isinstance(x, torch.Tensor):
        raise UnsupportedOperationError("genie: tensor passed where the op expects a scalar")
    raise UnsupportedOperationError(f"genie: cannot send argument of type {type(x).__name__}")


def _normalise(func, args, kwargs, lift_cpu, what):
    inputs, attrs = [], []
    for i, name, kwonly, kind, default in _schema_plan(func):
        if not kwonly and i < len(args):
            x = args[i]
        else:
            x = kwargs.get(name, default)
        if kind == _T_OTHER:
            attrs.append(_attr(x))
        elif kind in (_T_TENSOR, _T_OPT_TENSOR):
            inputs.append(None if x is None else _as_value(x, lift_cpu, what))
        else:
            inputs.extend(None if t is None else _as_value(t, lift_cpu, what) for t in x)
    return inputs, attrs


# Output metadata of an op depends only on the op, its tensors' metadata and
# its other arguments.  PyTorch computes it for meta tensors through Python
# reference implementations (about half a millisecond an op), and a model
# repeats the same calls layer after layer and step after step, so the results
# are memoised.  Meta tensors are never mutated, so sharing them is safe.
_META_CACHE_MAX = 8192
_meta_cache = {}


def _sig(x):
    if isinstance(x, torch.Tensor):
        return (x.dtype, tuple(x.shape), x.stride(), x.storage_offset(), x.device.type)
    if isinstance(x, (list, tuple)):
        return tuple(_sig(e) for e in x)
    if isinstance(x, torch.device):
        return ("device", x.type)
    return (type(x), x)     # type first: True and 1 promote differently


def _grouped_mm_meta(mat_a, mat_b, offs=None, bias=None, out_dtype=None):
    """Output metadata of aten._grouped_mm.  PyTorch's meta kernel enforces the
    CUDA kernel's rule (bf16 operands only); the CPU kernel, whose semantics
    the executor follows, takes any float dtype and returns out_dtype or the
    operands' dtype.  The shape rule is the same: computed on bf16 metas."""
    bf = [None if t is None else t.to(torch.bfloat16) for t in (mat_a, mat_b, bias)]
    out = aten._grouped_mm.default(bf[0], bf[1], offs, bf[2])
    return out.to(out_dtype or mat_a.dtype)


# Ops whose meta kernel describes another device's constraints, not the
# executor's (which follows PyTorch's CPU kernels).
_META_RULES = {aten._grouped_mm.default: _grouped_mm_meta}


def _meta_outputs(func, args, kwargs):
    try:
        key = (func, _sig(args), tuple((k, _sig(v)) for k, v in kwargs.items()))
        hit = _meta_cache.get(key)
    except TypeError:        # an unhashable argument: compute without the memo
        key, hit = None, None
    if hit is not None:
        return hit
    # Not through genie.capture()'s mode: an op captured outside the mode's own
    # handler (SDPA, at torch-function level) would otherwise see its meta
    # decomposition captured op by op.
    with _disable_current_modes():
        meta_out = _META_RULES.get(func, func)(*tree_map(_to_meta, args),
                                               **tree_map(_to_meta, kwargs))
    leaves, spec = tree_flatten(meta_out)
    res = (leaves, spec, [m for m in leaves if isinstance(m, torch.Tensor)])
    if key is not None:
        if len(_meta_cache) >= _META_CACHE_MAX:
            _meta_cache.clear()
        _meta_cache[key] = res
    return res


def _key(func):
    return f"{func._schema.name.split('::', 1)[1]}.{func._overloadname}"


def _emit(key, inputs, attrs, metas):
    """Append a node for op `key` and return its output Values."""
    path = current_module_path()
    op = _C.op_id(key)
    if op < 0:
        raise UnsupportedOperationError(
            f"genie: aten.{key} is not supported by the Genie executor "
            f"(module '{path or '<top level>'}'); no local fallback is used")
    phase, modality = current_phase_modality()
    node = Node(op, inputs, attrs, phase, modality, path, current_block())
    outs = RUNTIME.program.add(node, metas)
    if _C.op_is_view(op) and inputs and inputs[0] is not None:
        base = inputs[0]
        for v in outs:
            v.view_of = base
        if base.views is None:
            base.views = []
        base.views.extend(weakref.ref(v) for v in outs)
    return outs


# Binary ops whose second operand is a Python number are captured as their
# Scalar twin, so the number travels as an attribute instead of as a 0-dim
# tensor uploaded with every request.
_SCALAR_TWIN = {f"{n}.Tensor": (f"{n}.Scalar", getattr(aten, n).Scalar)
                for n in ("add", "sub", "mul", "div", "eq", "ne", "lt", "gt", "le", "ge")}


def _capture_op(func, args, kwargs, lift_cpu, key=None):
    key = key or _key(func)
    twin = _SCALAR_TWIN.get(key)
    if twin is not None and len(args) > 1 and isinstance(args[1], (bool, int, float)) \
            and isinstance(args[0], torch.Tensor):
        key, func = twin
    what = f"aten.{key}"
    if _C.op_id(key) < 0:
        _emit(key, [], [], [])          # raises the unsupported-op error
    inputs, attrs = _normalise(func, args, kwargs, lift_cpu, what)
    leaves, spec, metas = _meta_outputs(func, args, kwargs)
    outs = iter(_emit(key, inputs, attrs, metas))
    return tree_unflatten([_wrap(next(outs)) if isinstance(m, torch.Tensor) else m
                           for m in leaves], spec)


# ---- special cases --------------------------------------------------------------

def _materialize_to_cpu(args, kwargs):
    src = args[0]
    # The caller owns the result and may modify it, so the runtime hands over
    # its copy and forgets it instead of cloning it.
    out = RUNTIME.materialize(src._value, take=True)
    dtype = kwargs.get("dtype")
    return out.to(dtype) if dtype is not None else out


def _h_to_copy(func, args, kwargs, lift_cpu):
    dev = kwargs.get("device")
    if dev is not None and torch.device(dev).type == "cpu" and isinstance(args[0], RemoteTensor):
        return _materialize_to_cpu(args, kwargs)
    return _capture_op(func, args, kwargs, lift_cpu)


def _check_rebind(target, what):
    if not isinstance(target, RemoteTensor):
        raise UnsupportedOperationError(
            f"genie: in-place {what} on a CPU tensor with remote operands; use the out-of-place form")
    v = target._value
    live_views = v.views is not None and any(w() is not None for w in v.views)
    if v.view_of is not None or live_views:
        raise UnsupportedOperationError(
            f"genie: in-place {what} on a remote tensor that shares memory with a view "
            f"(module '{current_module_path() or '<top level>'}') is not supported; "
            "use the out-of-place form")


def _rebind(target, value):
    if tuple(value.meta.shape) != tuple(target.shape) or value.meta.dtype != target.dtype:
        raise GenieError("genie: in-place update would change shape or dtype")
    target._value = value
    return target


def _h_copy_(func, args, kwargs, lift_cpu):
    dst, src = args[0], args[1]
    if not isinstance(dst, RemoteTensor):
        # CPU destination, remote source: materialise into it.
        return dst.copy_(RUNTIME.materialize(src._value))
    _check_rebind(dst, "copy_")
    if not isinstance(src, RemoteTensor) and isinstance(src, torch.Tensor) and src.device.type == "cpu":
        data = src.detach()
        if data.dtype != dst.dtype:
            data = data.to(dst.dtype)
        if tuple(data.shape) != tuple(dst.shape):
            data = data.expand(dst.shape)
        return _rebind(dst, host_value(data))
    out = _capture_op(aten.copy.default, (dst, src), {}, lift_cpu)
    return _rebind(dst, out._value)


def _h_scalar(func, args, kwargs, lift_cpu):
    return RUNTIME.materialize(args[0]._value).item()


def _h_alias(func, args, kwargs, lift_cpu):
    x = args[0]
    if isinstance(x, RemoteTensor):
        return RemoteTensor(x._value)
    return _wrap(_as_value(x, lift_cpu, _key(func)))


def _full_node(size, fill, dtype, like_meta=None):
    meta = torch.empty(size, dtype=dtype, device="meta") if like_meta is None else like_meta
    attrs = [list(size), fill, ("d", code_of(dtype, "factory")), None, None, None]
    return _wrap(_emit("full.default", [], attrs, [meta])[0])


def _h_like(fill):
    def h(func, args, kwargs, lift_cpu):
        x = args[0]
        dtype = kwargs.get("dtype") or x.dtype
        value = args[1] if fill == "arg" else fill
        return _full_node(tuple(x.shape), value, dtype)
    return h


def _h_new(fill):
    def h(func, args, kwargs, lift_cpu):
        x, size = args[0], tuple(args[1])
        dtype = kwargs.get("dtype") or x.dtype
        value = args[2] if fill == "arg" else fill
        return _full_node(size, value, dtype)
    return h


def _h_arange_out(func, args, kwargs, lift_cpu):
    out = kwargs["out"]
    if func == aten.arange.out:
        start, end, step = 0, args[0], 1
    else:
        start, end, step = args[0], args[1], args[2] if len(args) > 2 else 1
    meta = aten.arange.start_step(start, end, step, dtype=out.dtype, device="meta")
    attrs = [start, end, step, ("d", code_of(out.dtype, "arange")), None, None, None]
    v = _emit("arange.start_step", [], attrs, [meta])[0]
    # The caller returns `out` itself, so it must take the new shape: a shallow
    # copy of the fresh wrapper's metadata (sizes, strides) into it.
    if tuple(out.shape) != tuple(meta.shape):
        out.data = _wrap(v)
    out._value = v
    return out


def _h_zero_(func, args, kwargs, lift_cpu):
    _check_rebind(args[0], "zero_")
    out = _capture_op(aten.fill.Scalar, (args[0], 0), {}, lift_cpu)
    return _rebind(args[0], out._value)


def _h_shallow_compat(func, args, kwargs, lift_cpu):
    # Metadata query (used by `t.data = ...`), answered without the executor.
    return all(isinstance(a, RemoteTensor) for a in args[:2])


def _h_same_size(func, args, kwargs, lift_cpu):
    return tuple(args[0].shape) == tuple(args[1].shape)


# ---- factories and random numbers ---------------------------------------------
#
# Factories with device=remote_accelerator reach dispatch as themselves under
# genie.capture() (a dispatch mode sees them before their decomposition), and
# as empty + fill (or + an in-place random fill) outside it.  Constant ones land
# on the executor's full/arange ops.  Random values are never drawn on the
# executor: they are drawn on the driver by PyTorch's own CPU kernels with the
# generator the program gave (the default CPU generator when none), so they are
# exactly the values CPU PyTorch gives and the generator advances exactly as it
# would on CPU; the drawn tensor travels as a HOST input of the program.

def _factory_fill(func, args, kwargs):
    name = func._schema.name.split("::", 1)[1]
    if name == "ones":
        return 1
    if name == "full":
        return args[1] if len(args) > 1 else kwargs["fill_value"]
    if name == "scalar_tensor":
        return args[0] if args else kwargs["s"]
    return 0                    # zeros, empty, empty_strided


def _h_factory(func, args, kwargs, lift_cpu):
    meta = _meta_outputs(func, args, kwargs)[2][0]
    fill = _factory_fill(func, args, kwargs)
    if isinstance(fill, torch.Tensor):
        fill = fill.item()
    return _full_node(tuple(meta.shape), fill, meta.dtype)


def _h_arange(func, args, kwargs, lift_cpu):
    names = [a.name for a in func._schema.arguments]
    given = dict(zip(names, args))
    given.update(kwargs)
    start, end, step = given.get("start", 0), given["end"], given.get("step", 1)
    meta = _meta_outputs(func, args, kwargs)[2][0]
    attrs = [start, end, step, ("d", code_of(meta.dtype, "arange")), None, None, None]
    return _wrap(_emit("arange.start_step", [], attrs, [meta])[0])


def _cpu_empty(x):
    m = x._value.meta if isinstance(x, RemoteTensor) else x
    return torch.empty_strided(m.shape, m.stride(), dtype=m.dtype)


def _on_cpu(x, read):
    """Argument `x` of a random op, as the CPU kernel takes it: the remote
    device becomes the CPU; a remote tensor becomes its data when the op reads
    it (bernoulli's p, normal's mean, multinomial's weights: one round trip),
    else an empty CPU tensor of its metadata (randn_like's `self`)."""
    if isinstance(x, torch.device) and x.type == DEVICE_TYPE:
        return torch.device("cpu")
    if isinstance(x, RemoteTensor):
        return RUNTIME.materialize(x._value) if read else _cpu_empty(x)
    return x


def _draw(func, args, kwargs, read):
    return func(*tree_map(lambda x: _on_cpu(x, read), args),
                **tree_map(lambda x: _on_cpu(x, read), kwargs))


def _h_random_fill(func, args, kwargs, lift_cpu):
    """normal_, uniform_, random_, ... on a tensor: fill a CPU tensor of the
    target's shape, dtype and strides with the same call, then rebind the
    target to it."""
    target = args[0]
    if not isinstance(target, RemoteTensor):
        # A CPU tensor under genie.capture(): the fill is CPU work, as without
        # Genie; the tensor is lifted afresh at its next captured use.
        _lifted.pop(target, None)
        return func(*args, **kwargs)
    _check_rebind(target, f"aten.{_key(func)}")
    data = _cpu_empty(target)
    _draw(func, (data,) + tuple(args[1:]), kwargs, read=True)
    return _rebind(target, host_value(data, f"values drawn by aten.{_key(func)}"))


def _h_random_factory(func, args, kwargs, lift_cpu):
    """randn, rand, randint, randperm, normal, bernoulli, multinomial, the
    *_like forms and their out= forms: the same call on the CPU, its result
    sent as a HOST input."""
    name = func._schema.name.split("::", 1)[1]
    read = not name.endswith("_like")
    out = kwargs.get("out")
    if isinstance(out, RemoteTensor):
        _check_rebind(out, f"aten.{_key(func)}")
        kw = dict(kwargs)
        kw["out"] = torch.empty(0, dtype=out.dtype)
        data = _draw(func, args, kw, read)
        v = host_value(data, f"values drawn by aten.{_key(func)}")
        if tuple(out.shape) != tuple(data.shape):
            out.data = _wrap(v)          # out= resizes, as on CPU (see _h_arange_out)
        out._value = v
        return out
    data = _draw(func, args, kwargs, read)
    return _wrap(host_value(data, f"values drawn by aten.{_key(func)}"))


_RANDOM_FILLS = [aten.normal_.default, aten.uniform_.default, aten.random_.default,
                 aten.random_.to, getattr(aten.random_, "from"), aten.exponential_.default,
                 aten.bernoulli_.float, aten.bernoulli_.Tensor, aten.cauchy_.default,
                 aten.log_normal_.default, aten.geometric_.default]
_RANDOM_FACTORIES = [getattr(getattr(aten, n), o)
                     for n in ("randn", "rand", "randint", "randn_like", "rand_like",
                               "randint_like", "randperm", "normal", "bernoulli", "multinomial")
                     for o in getattr(aten, n).overloads()]
_CONST_FACTORIES = [aten.zeros.default, aten.ones.default, aten.full.default,
                    aten.scalar_tensor.default, aten.empty.memory_format,
                    aten.empty_strided.default]
_ARANGES = [aten.arange.default, aten.arange.start, aten.arange.start_step]


_SPECIAL = {
    aten._has_compatible_shallow_copy_type.default: _h_shallow_compat,
    aten.is_same_size.default: _h_same_size,
    aten._to_copy.default: _h_to_copy,
    aten.copy_.default: _h_copy_,
    aten._local_scalar_dense.default: _h_scalar,
    aten.lift_fresh.default: _h_alias,
    aten.detach.default: _h_alias,
    aten.alias.default: _h_alias,
    aten.empty_like.default: _h_like(0),
    aten.zeros_like.default: _h_like(0),
    aten.ones_like.default: _h_like(1),
    aten.full_like.default: _h_like("arg"),
    aten.new_empty.default: _h_new(0),
    aten.new_zeros.default: _h_new(0),
    aten.new_ones.default: _h_new(1),
    aten.new_full.default: _h_new("arg"),
    aten.arange.start_out: _h_arange_out,
    aten.arange.out: _h_arange_out,
    aten.zero_.default: _h_zero_,
}
_SPECIAL.update({f: _h_random_fill for f in _RANDOM_FILLS})
_SPECIAL.update({f: _h_random_factory for f in _RANDOM_FACTORIES})
_SPECIAL.update({f: _h_factory for f in _CONST_FACTORIES})
_SPECIAL.update({f: _h_arange for f in _ARANGES})


def _inplace_functional(func):
    """Functional twin of an in-place op (``add_.Tensor`` -> ``add.Tensor``)."""
    s = func._schema
    name = s.name.split("::", 1)[1]
    if not name.endswith("_") or not s.arguments or s.arguments[0].alias_info is None \
            or not s.arguments[0].alias_info.is_write:
        return None
    packet = getattr(aten, name[:-1], None)
    return getattr(packet, func._overloadname, None) if packet is not None else None


def dispatch(func, args, kwargs, lift_cpu):
    t0 = time.perf_counter()
    try:
        h = _SPECIAL.get(func)
        if h is not None:
            return h(func, args, kwargs, lift_cpu)
        functional = _inplace_functional(func)
        if functional is not None:
            target = args[0]
            _check_rebind(target, f"aten.{_key(func)}")
            out = _capture_op(functional, args, kwargs, lift_cpu)
            return _rebind(target, out._value)
        return _capture_op(func, args, kwargs, lift_cpu)
    finally:
        RUNTIME.counters["capture_s"] += time.perf_counter() - t0


def _capture_sdpa(args, kwargs, lift_cpu):
    func = aten.scaled_dot_product_attention.default
    names = ["query", "key", "value", "attn_mask", "dropout_p", "is_causal"]
    kw = dict(kwargs)
    for n, a in zip(names, args):
        kw[n] = a
    if float(kw.get("dropout_p", 0.0) or 0.0) != 0.0:
        raise UnsupportedOperationError(
            f"genie: scaled_dot_product_attention with dropout_p > 0 (module "
            f"'{current_module_path() or '<top level>'}') is not supported in inference")
    return _capture_op(func, (), kw, lift_cpu)


def output_cache(output):
    """The cache of a model output: ``cache`` in transformers 5.x (reading
    the old name, ``past_key_values``, prints a deprecation warning there),
    ``past_key_values`` before."""
    if output is None:
        return None
    fields = getattr(output, "__dataclass_fields__", {})
    if "cache" in fields:
        return getattr(output, "cache", None)
    return getattr(output, "past_key_values", None)


def mark_kv_outputs(output):
    """Tag the KV tensors of a model output's cache as stateful KV cache."""
    for t in cache_tensors(output_cache(output)):
        t._value.residency = RES_KV


def cache_tensors(cache):
    """The RemoteTensors of a transformers cache, two per layer (keys, values)
    in layer order: a DynamicCache's layers (DynamicLayer, and the
    DynamicSlidingWindowLayer of sliding-window models, whose tensors hold the
    last window - 1 positions), or legacy tuples.  Shapes are
    (B, num_key_value_heads, S, head_dim): grouped-query models cache fewer
    heads than they attend with."""
    if cache is None:
        return []
    layers = getattr(cache, "layers", None)
    tensors = []
    if layers is not None:
        for layer in layers:
            tensors += [getattr(layer, "keys", None), getattr(layer, "values", None)]
    elif isinstance(cache, (tuple, list)):
        for layer in cache:
            if isinstance(layer, (tuple, list)):
                tensors += list(layer)
    return [t for t in tensors if isinstance(t, RemoteTensor)]


# SDPA is captured at torch-function level; the ATen-level dispatch of a
# RemoteTensor never reaches the math decomposition.
__all__ = ["RemoteTensor", "capture", "capturing", "dispatch", "host_value", "lifted_value",
           "mark_kv_outputs", "output_cache"]

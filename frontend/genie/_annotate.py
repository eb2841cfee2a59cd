"""Semantic annotation from the module hierarchy.

Global forward hooks keep a stack of module paths while a model that lives on
``remote_accelerator`` (or runs under ``genie.capture()``) executes, so every
captured op knows which module issued it.  The root module's first call also
fingerprints its weights (model id, tensor name, version), so they are
registered on an executor once and referenced by fingerprint afterwards.

Phase and modality come from an explicit ``genie.phase(...)`` context when one
is active (``genie.generate`` sets prefill/decode), otherwise from the model:
causal LMs run ``llm_prefill``, text encoders ``forward`` with modality text,
models with convolutions ``vision_encoding``.
"""

import contextlib
import json
import threading
import weakref

import torch

from . import _C
from ._graph import HOST, MODALITIES, PHASES, RES_WEIGHT, WEIGHT

_state = threading.local()
_root_names = weakref.WeakKeyDictionary()     # root module -> {id(module): path}
_root_info = weakref.WeakKeyDictionary()      # root module -> (phase, modality)


def _stack():
    s = getattr(_state, "stack", None)
    if s is None:
        s = _state.stack = []
    return s


def current_module_path():
    s = _stack()
    return s[-1][0] if s and s[-1] is not None else ""


def current_block():
    """Block code (srg.h genie_block_t) of the innermost classified module."""
    s = _stack()
    return s[-1][1] if s and s[-1] is not None else 0


# genie_block_t numbering (runtime/include/genie/srg.h)
BLOCK_NONE, BLOCK_ATTENTION, BLOCK_MLP, BLOCK_CONV, BLOCK_NORM, BLOCK_EMBEDDING, BLOCK_HEAD = range(7)
_block_cache = {}


def classify_block(module, path):
    """The kind of block `module` is (0 if it is not one by itself).

    Decided from the module's type, so it works for any model: convolutions,
    normalisations and embeddings by class; attention, MLP/feed-forward and
    output heads by the class-name conventions transformers and timm follow.
    (transformers' GPT-2 `Conv1D` is a linear layer, not a convolution.)
    """
    leaf = path.rsplit(".", 1)[-1]
    key = (type(module), leaf)
    b = _block_cache.get(key)
    if b is not None:
        return b
    name = type(module).__name__.lower()
    nn = torch.nn
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d,
                           nn.ConvTranspose2d, nn.ConvTranspose3d)):
        b = BLOCK_CONV
    elif isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d,
                             nn.BatchNorm3d)) or name.endswith(("rmsnorm", "layernorm")):
        b = BLOCK_NORM
    elif isinstance(module, nn.Embedding) or name.endswith("embeddings"):
        b = BLOCK_EMBEDDING
    elif "attention" in name or name.endswith(("attn", "selfattn")):
        b = BLOCK_ATTENTION
    elif any(k in name for k in ("mlp", "intermediate", "feedforward", "ffn")) or \
            (name.endswith("output") and not name.endswith("selfoutput")):
        b = BLOCK_MLP          # BERT's BertOutput is the second half of its FFN
    elif "pooler" in name or name.endswith("head") or leaf in ("lm_head", "classifier", "score"):
        b = BLOCK_HEAD
    else:
        b = BLOCK_NONE
    _block_cache[key] = b
    return b


def current_phase_modality():
    explicit = getattr(_state, "phase", None)
    root = getattr(_state, "root_info", None) or getattr(_state, "model_info", None)
    phase, modality = root if root is not None else ("unknown", "none")
    if explicit is not None:
        phase = explicit
    return PHASES.index(phase), MODALITIES.index(modality)


@contextlib.contextmanager
def model_context(model):
    """Annotate ops issued around `model`'s calls (e.g. by genie.generate picking
    the next token) with the model's phase/modality, as if inside it."""
    prev = getattr(_state, "model_info", None)
    _state.model_info = _root_info.get(model) or _classify(model)
    try:
        yield
    finally:
        _state.model_info = prev


@contextlib.contextmanager
def phase(name):
    """Annotate everything captured inside with phase `name` (e.g. "llm_decode")."""
    if name not in PHASES:
        raise ValueError(f"genie: unknown phase '{name}' (known: {', '.join(PHASES)})")
    prev = getattr(_state, "phase", None)
    _state.phase = name
    try:
        yield
    finally:
        _state.phase = prev


def _classify(root):
    cfg = getattr(root, "config", None)
    is_conv = any(isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d))
                  for m in root.modules())
    if cfg is not None:
        text = getattr(cfg, "vocab_size", None) is not None
        causal = bool(getattr(cfg, "is_decoder", False)) or any(
            a.endswith(("LMHeadModel", "ForCausalLM")) for a in (getattr(cfg, "architectures", None) or []))
        causal = causal or type(root).__name__.endswith(("LMHeadModel", "ForCausalLM"))
        if causal:
            return "llm_prefill", "text"
        if text:
            return "forward", "text"
    if is_conv:
        return "vision_encoding", "vision"
    return "forward", "none"


def _root_is_remote(root, capturing):
    """Whether `root` runs on remote_accelerator now.  Asked at every root
    call, never remembered: a model run eagerly and then moved with
    ``.to("remote_accelerator:0")`` (or back) changes its answer, and a stale
    answer left every op of the moved model at the top level."""
    if capturing:
        return True
    from ._capture import RemoteTensor
    p = next(iter(root.parameters()), None)
    if p is None:
        p = next(iter(root.buffers()), None)
    return isinstance(p, RemoteTensor)


_fingerprinted_at = weakref.WeakKeyDictionary()   # root module -> Value.host_epoch


def _fingerprint_weights(root):
    """Turn the root's not-yet-sent parameters/buffers into WEIGHT values.

    Only new host data can need it (moving the model, loading a state dict),
    so the walk over the parameters is skipped while no HOST value has been
    created since the root's last call."""
    from ._capture import RemoteTensor, lifted_value
    from ._graph import Value

    if _fingerprinted_at.get(root) == Value.host_epoch:
        return
    _fingerprinted_at[root] = Value.host_epoch

    named = list(root.named_parameters()) + list(root.named_buffers())
    vals = []
    for name, t in named:
        v = t._value if isinstance(t, RemoteTensor) else lifted_value(t)
        if v is not None and v.state == HOST:
            vals.append((name, v))
    if not vals:
        return
    content = []
    for name, v in vals:
        h = v.host
        content.append((name, str(h.dtype), tuple(h.shape),
                        _C.hash64(h.data_ptr(), h.numel() * h.element_size(), 0)))
    cfg = getattr(root, "config", None)
    try:
        cfg_text = cfg.to_json_string() if cfg is not None else ""
    except Exception:  # a config that cannot serialise only weakens the model id
        cfg_text = repr(cfg)
    model_blob = json.dumps([type(root).__name__, cfg_text, content]).encode()
    buf = torch.frombuffer(bytearray(model_blob), dtype=torch.uint8)
    model_id = _C.hash64(buf.data_ptr(), buf.numel(), 0)
    for (name, v), (_, _, _, ch) in zip(vals, content):
        tag = torch.frombuffer(bytearray(f"{name}\0{v.host._version}".encode()), dtype=torch.uint8)
        v.fp = _C.hash64(tag.data_ptr(), tag.numel(), model_id ^ ch) or 1
        v.name = name
        v.state = WEIGHT
        v.residency = RES_WEIGHT


def _pre_hook(module, args):
    s = _stack()
    if not s:
        from ._capture import capturing
        cap = capturing()
        if not _root_is_remote(module, cap):
            s.append(None)
            return
        names = _root_names.get(module)
        if names is None:
            names = {id(m): n for n, m in module.named_modules()}
            _root_names[module] = names
            _root_info[module] = _classify(module)
        _fingerprint_weights(module)
        _state.root_names = names
        _state.root_info = _root_info[module]
        s.append(("", classify_block(module, "")))
        return
    names = getattr(_state, "root_names", None)
    if names is None or s[-1] is None:
        s.append(None)
        return
    parent_path, parent_block = s[-1]
    path = names.get(id(module), parent_path)
    s.append((path, classify_block(module, path) or parent_block))


def _post_hook(module, args, output):
    s = _stack()
    if s:
        s.pop()
    if not s:
        _state.root_names = None
        _state.root_info = None
        from ._capture import mark_kv_outputs
        mark_kv_outputs(output)


torch.nn.modules.module.register_module_forward_pre_hook(_pre_hook)
# always_call: the stack must unwind even when a forward raises.
torch.nn.modules.module.register_module_forward_hook(_post_hook, always_call=True)

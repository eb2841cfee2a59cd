"""Capture of factories, random numbers and module paths.

Random factories and in-place random fills on remote_accelerator must give
exactly the values CPU PyTorch gives for the same generator state, and leave
the generator where CPU PyTorch leaves it (Genie draws them on the driver with
PyTorch's CPU kernels and sends them as inputs).  Constant factories that reach
the capture as themselves (under genie.capture()) land on full/arange.  Every
captured node names the innermost module that issued it, also for a model that
ran eagerly before it was moved (Llama's rotary embedding said '<top level>').
"""

import copy

import pytest
import torch
import torch.nn as nn

import genie
from genie import _C
from genie._runtime import RUNTIME
from conftest import DEV, rel_err

FLOATS = [torch.float32, torch.float16, torch.bfloat16]


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# name -> (call(device, dtype, **gen), dtypes); `gen` is {} or {"generator": g}
FACTORIES = {
    "randn": (lambda d, t, **g: torch.randn(3, 5, device=d, dtype=t, **g), FLOATS),
    "rand": (lambda d, t, **g: torch.rand(2, 7, device=d, dtype=t, **g), FLOATS),
    "randint": (lambda d, t, **g: torch.randint(-4, 9, (4, 3), device=d, dtype=t, **g),
                [torch.int64, torch.float32]),
    "randint_high": (lambda d, t, **g: torch.randint(1000, (17,), device=d, dtype=t, **g),
                     [torch.int64]),
    "normal": (lambda d, t, **g: torch.normal(2.0, 0.5, (3, 4), device=d, dtype=t, **g), FLOATS),
    "randperm": (lambda d, t, **g: torch.randperm(13, device=d, dtype=t, **g), [torch.int64]),
}

# name -> (fill(tensor, **gen), dtypes)
FILLS = {
    "normal_": (lambda x, **g: x.normal_(1.5, 3.0, **g), FLOATS),
    "uniform_": (lambda x, **g: x.uniform_(-2.0, 5.0, **g), FLOATS),
    "random_": (lambda x, **g: x.random_(**g), [torch.int64, torch.float32]),
    "random_to": (lambda x, **g: x.random_(100, **g), [torch.int64, torch.float16]),
    "random_from": (lambda x, **g: x.random_(-50, 50, **g), [torch.int64, torch.bfloat16]),
    "exponential_": (lambda x, **g: x.exponential_(2.0, **g), FLOATS),
    "bernoulli_": (lambda x, **g: x.bernoulli_(0.3, **g), [torch.float32, torch.int64]),
}

# name -> call(x_like, **gen): x_like is the tensor whose metadata is taken
LIKES = {
    "randn_like": lambda x, **g: torch.randn_like(x, **g),
    "rand_like": lambda x, **g: torch.rand_like(x, **g),
    "randint_like": lambda x, **g: torch.randint_like(x, 3, 40, **g),
}


def _cases(table):
    return [(n, t) for n, (_, dts) in table.items() for t in dts]


def _same(remote, want):
    got = remote.cpu()
    assert got.dtype == want.dtype and got.shape == want.shape
    assert torch.equal(got, want), (got, want)


@pytest.mark.parametrize("with_gen", [False, True], ids=["default_gen", "generator"])
@pytest.mark.parametrize("name,dtype", _cases(FACTORIES))
def test_random_factory_matches_cpu(name, dtype, with_gen):
    call = FACTORIES[name][0]
    if with_gen:
        g_cpu, g_rem = _gen(7), _gen(7)
        want = call("cpu", dtype, generator=g_cpu)
        got = call(DEV, dtype, generator=g_rem)
        assert torch.equal(g_cpu.get_state(), g_rem.get_state())
    else:
        torch.manual_seed(7)
        want = call("cpu", dtype)
        after_cpu = torch.get_rng_state()
        torch.manual_seed(7)
        got = call(DEV, dtype)
        assert torch.equal(torch.get_rng_state(), after_cpu), "the generator must advance as on CPU"
    assert isinstance(got, genie.RemoteTensor)
    _same(got, want)


@pytest.mark.parametrize("with_gen", [False, True], ids=["default_gen", "generator"])
@pytest.mark.parametrize("name,dtype", _cases(FILLS))
def test_random_fill_matches_cpu(name, dtype, with_gen):
    fill = FILLS[name][0]
    g_cpu, g_rem = (_gen(11), _gen(11)) if with_gen else (None, None)
    kw_cpu = {"generator": g_cpu} if with_gen else {}
    kw_rem = {"generator": g_rem} if with_gen else {}
    torch.manual_seed(11)
    want = fill(torch.zeros(6, 5, dtype=dtype), **kw_cpu)
    after_cpu = torch.get_rng_state()
    torch.manual_seed(11)
    x = torch.zeros(6, 5, dtype=dtype).to(DEV)
    y = fill(x, **kw_rem)
    assert y is x, "an in-place fill returns its target"
    _same(x, want)
    if with_gen:
        assert torch.equal(g_cpu.get_state(), g_rem.get_state())
    else:
        assert torch.equal(torch.get_rng_state(), after_cpu)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", sorted(LIKES))
def test_random_like_matches_cpu(name, dtype):
    call = LIKES[name]
    base = torch.ones(4, 6, dtype=dtype)
    want = call(base, generator=_gen(3))
    remote = (base.to(DEV) * 2)            # a pending tensor: its values are not needed
    n0 = genie.get_stats()["requests"]
    got = call(remote, generator=_gen(3))
    assert genie.get_stats()["requests"] == n0, "drawing *_like values must not run the program"
    _same(got, want)
    torch.manual_seed(5)
    want = call(base)
    torch.manual_seed(5)
    _same(call(remote), want)


def test_interleaved_cpu_and_remote_draws_keep_one_sequence():
    torch.manual_seed(123)
    want = [torch.randn(4), torch.rand(3), torch.randint(0, 10, (5,)),
            torch.empty(2, 3).normal_(), torch.randn(2)]
    torch.manual_seed(123)
    got = [torch.randn(4), torch.rand(3, device=DEV), torch.randint(0, 10, (5,)),
           torch.empty(2, 3, device=DEV).normal_(), torch.randn(2)]
    for g, w in zip(got, want):
        assert torch.equal(g.cpu(), w)


def test_random_draws_under_capture_context():
    torch.manual_seed(9)
    want = (torch.randn(3, 4), torch.randint(5, (2, 2)), torch.rand(3, 4))
    torch.manual_seed(9)
    with genie.capture():
        a = torch.randn(3, 4, device=DEV)
        b = torch.randint(5, (2, 2), device=DEV)
        c = torch.rand_like(a)
        s = a + c                       # the drawn values feed captured ops
    assert isinstance(a, genie.RemoteTensor) and isinstance(s, genie.RemoteTensor)
    for g, w in zip((a, b, c), want):
        assert torch.equal(g.cpu(), w)
    assert torch.equal(s.cpu(), want[0] + want[2])


def test_random_draws_with_remote_parameters():
    """bernoulli(p), normal(mean, std) and multinomial read a remote tensor:
    its values are fetched first, then drawn as on CPU."""
    p = torch.rand(5, 6, generator=_gen(0))
    mean = torch.randn(4, generator=_gen(1))
    w = torch.rand(3, 8, generator=_gen(2))
    calls = [lambda p, m, w, g: torch.bernoulli(p, generator=g),
             lambda p, m, w, g: torch.normal(m, 0.5, generator=g),
             lambda p, m, w, g: torch.normal(m, m.abs() + 0.1, generator=g),
             lambda p, m, w, g: torch.multinomial(w, 4, generator=g),
             lambda p, m, w, g: torch.multinomial(w, 5, replacement=True, generator=g)]
    for call in calls:
        want = call(p, mean, w, _gen(4))
        got = call(p.to(DEV), mean.to(DEV), w.to(DEV), _gen(4))
        assert isinstance(got, genie.RemoteTensor)
        _same(got, want)


# ---- constant factories -------------------------------------------------------

CONST = [
    lambda d: torch.zeros(2, 3, device=d),
    lambda d: torch.zeros(4, dtype=torch.int64, device=d),
    lambda d: torch.ones(3, dtype=torch.bfloat16, device=d),
    lambda d: torch.full((2, 2), 7, device=d),
    lambda d: torch.full((3,), 2.5, dtype=torch.float16, device=d),
    lambda d: torch.full((2,), True, device=d),
    lambda d: torch.scalar_tensor(3.5, device=d),
    lambda d: torch.scalar_tensor(4, dtype=torch.int64, device=d),
    lambda d: torch.arange(6, device=d),
    lambda d: torch.arange(2.5, device=d),
    lambda d: torch.arange(3, 11, device=d),
    lambda d: torch.arange(1, 10, 3, dtype=torch.float32, device=d),
    lambda d: torch.arange(0.0, 1.0, 0.25, device=d),
    lambda d: torch.arange(10, 0, -2, device=d),
]


@pytest.mark.parametrize("ctx", ["capture", "plain"])
@pytest.mark.parametrize("i", range(len(CONST)))
def test_constant_factories(i, ctx):
    want = CONST[i]("cpu")
    if ctx == "capture":
        with genie.capture():
            got = CONST[i](DEV)
    else:
        got = CONST[i](DEV)
    assert isinstance(got, genie.RemoteTensor)
    _same(got, want)


def test_empty_under_capture_has_the_right_metadata():
    with genie.capture():
        e = torch.empty(2, 5, dtype=torch.float16, device=DEV)
        s = torch.empty_strided((3, 2), (2, 1), device=DEV)
        z = e * 0
    assert e.shape == (2, 5) and e.dtype == torch.float16 and s.shape == (3, 2)
    assert torch.equal(z.cpu(), torch.zeros(2, 5, dtype=torch.float16))


FACTORY_OPS = ("arange.", "zeros.", "ones.", "full.", "scalar_tensor.", "empty.", "empty_strided.",
               "randn", "rand.", "randint", "normal", "uniform", "random")


def _capture_model(model, kwargs, how):
    """Run `model` under genie.capture() (CPU model) or as a remote model;
    return (output or None, the unsupported-op message or None, nodes)."""
    RUNTIME.program.nodes.clear()   # only this model's nodes below
    try:
        if how == "capture":
            with genie.capture():
                out = model(**kwargs)
        else:
            out = model(**{k: v.to(DEV) for k, v in kwargs.items()})
        return out, None, list(RUNTIME.program.nodes)
    except genie.UnsupportedOperationError as e:
        return None, str(e), list(RUNTIME.program.nodes)


@pytest.mark.parametrize("how", ["capture", "remote"])
def test_t5_captures_its_factories_and_matches(how):
    from families import FAMILIES
    build, inputs, output = FAMILIES["t5"]
    model = build(0)
    kw = inputs(1, _gen(0))
    with torch.no_grad():
        want = output(model(**kw))
        m = model if how == "capture" else copy.deepcopy(model).to(DEV)
        out, err, nodes = _capture_model(m, kw, how)
        assert err is None, err
        assert rel_err(output(out).cpu(), want) < 1e-4
    # T5's relative position buckets start from torch.arange(..., device=...)
    assert any(n.op == _C.op_id("arange.start_step") for n in nodes)


@pytest.mark.parametrize("how", ["capture", "remote"])
def test_llama_capture_does_not_fail_on_a_factory(how):
    from families import FAMILIES
    build, inputs, output = FAMILIES["llama"]
    model = build(0)
    kw = inputs(1, _gen(0))
    with torch.no_grad():
        m = model if how == "capture" else copy.deepcopy(model).to(DEV)
        out, err, nodes = _capture_model(m, kw, how)
    if err is not None:
        # cos/sin (the rotary embedding) may still be missing from the executor
        assert not any(f"aten.{f}" in err for f in FACTORY_OPS), err
    # cache_position / position_ids come from torch.arange(..., device=...)
    arange = [n for n in nodes if n.op == _C.op_id("arange.start_step")]
    assert arange and all(n.module_path == "model" for n in arange), \
        [n.module_path for n in arange]


# ---- module paths ---------------------------------------------------------------

class Odd(nn.Module):
    def forward(self, x):
        return torch.lgamma(x)          # outside Genie's op set


class Block(nn.Module):
    def __init__(self, odd):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.odd = Odd() if odd else nn.Identity()

    def forward(self, x):
        return self.odd(self.lin(x).relu() + 1)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([Block(False), Block(True)])

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return x


@pytest.mark.parametrize("eager_first", [False, True], ids=["fresh", "ran_eagerly_first"])
def test_unsupported_op_names_op_and_innermost_module(eager_first):
    torch.manual_seed(0)
    net = Net().eval()
    x = torch.rand(2, 4)
    if eager_first:
        net(x)                          # the model ran on CPU before it was moved
    net.to(DEV)
    with pytest.raises(genie.UnsupportedOperationError) as e:
        net(x.to(DEV))
    msg = str(e.value)
    assert msg.startswith("genie: aten.lgamma.default ") and "(module 'blocks.1.odd')" in msg, msg
    assert "\n" not in msg


def test_unsupported_op_under_capture_names_the_module():
    net = Net().eval()
    with pytest.raises(genie.UnsupportedOperationError) as e:
        with genie.capture():
            net(torch.rand(2, 4))
    assert "aten.lgamma.default" in str(e.value) and "'blocks.1.odd'" in str(e.value)


@pytest.mark.parametrize("eager_first", [False, True], ids=["fresh", "ran_eagerly_first"])
def test_llama_rotary_nodes_carry_their_module_path(eager_first):
    """Every node captured while model.rotary_emb runs names it (checked on the
    pending program, without executing: cos/sin may not be in the op set)."""
    from families import FAMILIES
    build, inputs, _ = FAMILIES["llama"]
    model = build(0)
    kw = inputs(1, _gen(0))
    with torch.no_grad():
        if eager_first:
            model(**kw)
        model.to(DEV)
        spans = []
        rotary = model.model.rotary_emb
        pre = rotary.register_forward_pre_hook(
            lambda m, a: spans.append(len(RUNTIME.program.nodes)))
        post = rotary.register_forward_hook(
            lambda m, a, o: spans.append(len(RUNTIME.program.nodes)), always_call=True)
        try:
            RUNTIME.program.nodes.clear()
            try:
                model(**{k: v.to(DEV) for k, v in kw.items()})
            except genie.UnsupportedOperationError as e:
                assert "(module 'model.rotary_emb')" in str(e) or "aten.cos" not in str(e), e
            nodes = list(RUNTIME.program.nodes)
        finally:
            pre.remove()
            post.remove()
    assert len(spans) == 2, spans
    inside = nodes[spans[0]:spans[1]]
    assert inside, "the rotary embedding captured no node"
    assert {n.module_path for n in inside} == {"model.rotary_emb"}
    # From the token embedding to the rotary embedding, LlamaModel's own ops
    # (the placeholder of ids.to(DEV) before them is issued at the top level).
    first = next(i for i, n in enumerate(nodes) if n.op == _C.op_id("embedding.default"))
    assert nodes[first].module_path == "model.embed_tokens"
    assert {n.module_path for n in nodes[first + 1:spans[0]]} == {"model"}

"""Frontend behaviour: lazy capture, materialisation points, the context form,
weights registered once, annotations in the SRG, and clear errors for bad
input (unsupported ops, unsupported dtypes, garbage SRG bytes)."""

import json

import pytest
import torch
import torch.nn as nn

import genie
from genie import _C
from conftest import DEV, gpt2, rel_err


def requests():
    return genie.get_stats()["requests"]


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 32)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(32, 8)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x))).softmax(-1)


def test_embedded_mode_is_reported():
    info = genie.init()
    assert info["mode"] == "embedded" and info["backend"] == "cpu"
    s = genie.get_stats()
    assert s["mode"] == "embedded"
    assert s["executors"][0]["backend"] == "cpu"


def test_nothing_runs_until_materialised():
    torch.manual_seed(0)
    m = MLP().eval()
    x = torch.randn(4, 16)
    want = m(x)
    r = MLP().eval()
    r.load_state_dict(m.state_dict())
    r.to(DEV)
    n0 = requests()
    y = r(x.to(DEV))
    assert isinstance(y, genie.RemoteTensor)
    assert y.shape == (4, 8) and y.dtype == torch.float32 and y.device.type == "remote_accelerator"
    assert requests() == n0, "capture must not execute"
    got = y.cpu()
    assert requests() == n0 + 1
    assert rel_err(got, want) < 1e-5


@pytest.mark.parametrize("how", ["item", "tolist", "numpy", "print"])
def test_materialisation_points(how, capsys):
    a = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    r = (a.to(DEV) * 2 + 1).sum()
    n0 = requests()
    if how == "item":
        assert r.item() == float((a * 2 + 1).sum())
    elif how == "tolist":
        assert r.tolist() == float((a * 2 + 1).sum())
    elif how == "numpy":
        assert float(r.numpy()) == float((a * 2 + 1).sum())
    else:
        print(r)
        out = capsys.readouterr().out
        assert "36." in out and "remote_accelerator" in out
    assert requests() == n0 + 1


def test_capture_context_form():
    torch.manual_seed(1)
    m = MLP().eval()
    x = torch.randn(3, 16)
    want = m(x)
    n0 = requests()
    with genie.capture():
        y = m(x)
    assert isinstance(y, genie.RemoteTensor)
    assert requests() == n0
    assert rel_err(y.cpu(), want) < 1e-5


def test_weights_registered_once():
    ref = gpt2(seed=11)
    remote = gpt2(seed=11).to(DEV)
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        remote(ids.to(DEV)).logits.cpu()
        s1 = genie.get_stats()
        out = remote(ids.to(DEV)).logits.cpu()
        s2 = genie.get_stats()
    assert s2["bytes"]["weights"] == s1["bytes"]["weights"], "weights re-sent"
    assert s2["weights"]["registered"] == s1["weights"]["registered"]
    assert rel_err(out, ref(ids).logits) < 1e-4
    # A second model object with the same weights reuses the registration.
    again = gpt2(seed=11).to(DEV)
    with torch.no_grad():
        again(ids.to(DEV)).logits.cpu()
    s3 = genie.get_stats()
    assert s3["bytes"]["weights"] == s2["bytes"]["weights"]
    assert s3["weights"]["cache_hits"] > s2["weights"]["cache_hits"]


def test_srg_annotations():
    remote = gpt2(seed=2).to(DEV)
    with torch.no_grad():
        genie.generate(remote, torch.tensor([[1, 2, 3, 4]]), max_new_tokens=2)
    doc = json.loads(genie.last_srg_json())
    phases = {n["phase"] for n in doc["nodes"]}
    assert "llm_decode" in phases
    paths = {n["module_path"] for n in doc["nodes"]}
    assert any(p.startswith("transformer.h.0.attn") for p in paths), sorted(paths)[:10]
    residencies = {n["residency"] for n in doc["nodes"]}
    assert "stateful_kv_cache" in residencies
    assert any(v["residency"] == "persistent_weight" for v in doc["values"])
    assert {n["modality"] for n in doc["nodes"]} == {"text"}
    assert all({"flops", "bytes", "intensity"} <= set(n["cost"]) for n in doc["nodes"])
    assert any(n["op"] == "addmm.default" and n["cost"]["flops"] > 0 for n in doc["nodes"])
    assert doc["edges"] and all(e["bytes"] > 0 for e in doc["edges"])
    block_of = {}
    for n in doc["nodes"]:
        block_of.setdefault(n["module_path"], set()).add(n["block"])
    assert block_of["transformer.h.0.attn.c_attn"] == {"attention"}
    assert block_of["transformer.h.0.attn"] >= {"attention"}
    assert block_of["transformer.h.1.mlp.c_fc"] == {"mlp"}
    assert block_of["transformer.h.0.ln_1"] == {"norm"}
    assert block_of["transformer.wte"] == {"embedding"}
    assert block_of["lm_head"] == {"head"}


def test_bert_blocks():
    from transformers import BertConfig, BertModel
    torch.manual_seed(0)
    m = BertModel(BertConfig(hidden_size=64, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=128)).eval().to(DEV)
    with torch.no_grad():
        out = m(torch.tensor([[1, 2, 3]]).to(DEV))
        out.last_hidden_state.cpu()     # `out` keeps pooler_output alive: its nodes run too
    doc = json.loads(genie.last_srg_json())
    block_of = {n["module_path"]: n["block"] for n in doc["nodes"]}
    assert block_of["encoder.layer.0.attention.self.query"] == "attention"
    assert block_of["encoder.layer.0.intermediate.dense"] == "mlp"
    assert block_of["encoder.layer.0.output.LayerNorm"] == "norm"
    assert block_of["pooler.dense"] == "head"
    assert {n["phase"] for n in doc["nodes"]} == {"forward"}
    assert {n["modality"] for n in doc["nodes"]} == {"text"}


class Weird(nn.Module):
    # An op outside the executor's set (sort was one until ops revision 3).
    def forward(self, x):
        return torch.special.bessel_j0(x)


class Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.inner = Weird()

    def forward(self, x):
        return self.inner(self.lin(x))


def test_unsupported_op_names_op_and_module():
    m = Outer().to(DEV)
    with pytest.raises(genie.UnsupportedOperationError) as e:
        m(torch.randn(2, 4).to(DEV))
    msg = str(e.value)
    assert msg.startswith("genie:") and "aten.special_bessel_j0" in msg and "'inner'" in msg
    assert "\n" not in msg


def test_unsupported_dtype_is_clear():
    with pytest.raises(genie.UnsupportedOperationError) as e:
        torch.ones(3, dtype=torch.float64).to(DEV)
    assert "float64" in str(e.value) and str(e.value).startswith("genie:")


def test_generate_rejects_bad_arguments(tiny_pair):
    _, remote = tiny_pair
    with pytest.raises(TypeError, match="int64"):
        genie.generate(remote, torch.ones(1, 3), max_new_tokens=2)
    with pytest.raises(ValueError, match="max_new_tokens"):
        genie.generate(remote, torch.tensor([[1]]), max_new_tokens=-1)
    with pytest.raises(genie.GenieError, match="remote_accelerator"):
        genie.generate(gpt2(), torch.tensor([[1]]), max_new_tokens=1)


@pytest.mark.parametrize("blob", [b"", b"garbage", b"GSRG" + b"\xff" * 40, b"\x00" * 100])
def test_garbage_srg_is_rejected_and_executor_survives(blob):
    with pytest.raises(genie.GenieError) as e:
        _C.decode_json(blob)
    assert str(e.value).startswith("genie: bad SRG bytes:")
    genie.init()
    from genie._runtime import RUNTIME
    with pytest.raises(genie.GenieError):
        RUNTIME.executor.run(blob, [])
    # Still serves good requests afterwards.
    x = torch.arange(4.0).to(DEV)
    assert (x + 1).tolist() == [1.0, 2.0, 3.0, 4.0]


def test_corrupted_real_srg_never_crashes():
    x = torch.arange(8.0).reshape(2, 4).to(DEV)
    y = (x @ x.t()).relu()
    y.cpu()
    from genie._runtime import RUNTIME
    good = RUNTIME.last_srg
    rng = torch.Generator().manual_seed(0)
    for i in range(300):
        b = bytearray(good)
        pos = int(torch.randint(0, len(b), (1,), generator=rng))
        b[pos] ^= 1 << int(torch.randint(0, 8, (1,), generator=rng))
        try:
            _C.decode_json(bytes(b))
        except genie.GenieError as e:
            assert str(e).startswith("genie: bad SRG bytes:")

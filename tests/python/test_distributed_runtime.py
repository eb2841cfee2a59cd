"""The driver side of the distributed mode, against a fake cluster whose ranks
are embedded executors (fake_cluster.py): placement by phase group and by
where resident objects live, the KV cache handed once per session from a
prefill rank to a decode rank, asynchronous submission, blind mode, lost
executors, and the example app's distributed checks.  Tokens are compared
with plain PyTorch greedy decoding."""

import copy
import json
import os
import sys

import pytest
import torch

import genie
from genie import _C
from genie._graph import INFLIGHT, RESIDENT
from genie._runtime import RUNTIME, Runtime
from conftest import DEV, gpt2
from fake_cluster import distributed

NEW = 6          # tokens per prompt


def reference_greedy(model, ids, n):
    from transformers import DynamicCache
    cache = DynamicCache(config=model.config)
    out, step = [], ids
    with torch.no_grad():
        for _ in range(n):
            o = model(input_ids=step, past_key_values=cache, use_cache=True)
            cache = o.past_key_values
            nxt = o.logits[:, -1, :].argmax(-1)
            out.append(int(nxt[0]))
            step = nxt[:, None]
    return out


@pytest.fixture(scope="module")
def tiny():
    """GPT-2 tiny (reference and remote copies), 8 prompts of different
    lengths, and PyTorch's greedy tokens for each."""
    ref = gpt2()
    remote = copy.deepcopy(ref).to(DEV)
    g = torch.Generator().manual_seed(42)
    prompts = [torch.randint(0, ref.config.vocab_size, (1, 3 + 2 * i), generator=g)
               for i in range(8)]
    want = [reference_greedy(ref, p, NEW) for p in prompts]
    return ref, remote, prompts, want


def new_tokens(outs, prompts):
    return [o[0, p.shape[1]:].tolist() for o, p in zip(outs, prompts)]


def kv_bytes(cfg, length):
    return cfg.n_layer * 2 * cfg.n_embd * length * 4       # K and V, fp32, batch 1


def test_generate_many_disaggregated(tiny):
    """prefill:2,decode:1: identical tokens; the 8 prefill requests spread over
    both prefill ranks; each session's KV cache moves once, executor to
    executor, exactly its size; decode runs only on the decode rank; nothing
    stays resident afterwards."""
    ref, remote, prompts, want = tiny
    with distributed("prefill:2,decode:1") as fake:
        outs = genie.generate_many(remote, prompts, max_new_tokens=NEW)
        assert new_tokens(outs, prompts) == want
        for o, p in zip(outs, prompts):
            assert torch.equal(o[:, :p.shape[1]], p)
        s = genie.get_stats()
    assert s["mode"] == "distributed"
    ex = {e["rank"]: e for e in s["executors"]}
    assert [(r, ex[r]["phase"]) for r in sorted(ex)] == [(1, "prefill"), (2, "prefill"),
                                                          (3, "decode")]
    # Prefill: 4 requests on each prefill rank, measured by the executors too.
    for r in (1, 2):
        assert ex[r]["driver_requests"] == {"llm_prefill": 4}
        assert ex[r]["phase_compute_s"].get("llm_prefill", 0) > 0
        assert "llm_decode" not in ex[r]["phase_compute_s"]
    # Decode: every step of every session on rank 3, and nothing else there.
    assert ex[3]["driver_requests"] == {"llm_decode": 8 * (NEW - 1)}
    assert ex[3]["phase_compute_s"].get("llm_decode", 0) > 0
    assert "llm_prefill" not in ex[3]["phase_compute_s"]
    assert s["requests_per_executor"] == {1: 4, 2: 4, 3: 8 * (NEW - 1)}
    # One handoff per session carrying exactly the KV cache.
    sessions = s["sessions"]
    assert len(sessions) == 8
    for (sid, st), p in zip(sorted(sessions.items()), prompts):
        assert st["handoffs"] == 1, st
        assert st["prefill_rank"] in (1, 2) and st["decode_rank"] == 3
        assert st["kv_cache_bytes"] == kv_bytes(ref.config, p.shape[1])
        assert st["kv_bytes_moved"] == st["kv_cache_bytes"], st
        assert st["ended"]
    assert sorted(h[0] for h in fake.handoffs) == [1, 1, 1, 1, 2, 2, 2, 2]
    assert all(h[1] == 3 for h in fake.handoffs)
    assert ex[1]["kv_bytes_out"] + ex[2]["kv_bytes_out"] == ex[3]["kv_bytes_in"] == \
        sum(st["kv_cache_bytes"] for st in sessions.values())
    # The KV cache never crossed the driver's links: what the prefill ranks
    # sent back is far less than one cache.
    assert s["links"][1]["bytes_received"] < kv_bytes(ref.config, 3)
    # Sessions ended: no executor holds anything of them.
    for e in ex.values():
        assert e["sessions"] == 0 and e["resident_objects"] == 0, e
    assert s["placement"]["by_group"] == {"prefill": 8, "decode": 8 * (NEW - 1)}
    assert s["placement"]["phase_fallback_placements"] == 0
    assert set(s["time_per_phase"]) == {"llm_prefill", "llm_decode"}
    assert s["bytes_per_phase"]["decode"]["bytes_sent"] > 0
    json.dumps(s)      # the stats stay JSON-serialisable


def test_decode_rank_with_fewest_sessions(tiny):
    _, remote, prompts, want = tiny
    with distributed("prefill:1,decode:2"):
        outs = genie.generate_many(remote, prompts[:4], max_new_tokens=3)
        s = genie.get_stats()
    assert new_tokens(outs, prompts[:4]) == [w[:3] for w in want[:4]]
    assert [st["decode_rank"] for _, st in sorted(s["sessions"].items())] == [2, 3, 2, 3]


def test_generate_and_generate_many_embedded(tiny):
    """The embedded mode runs generate_many on its one executor."""
    _, remote, prompts, want = tiny
    RUNTIME.close()
    outs = genie.generate_many(remote, prompts, max_new_tokens=NEW)
    assert genie.get_stats()["mode"] == "embedded"
    assert new_tokens(outs, prompts) == want
    assert new_tokens([genie.generate(remote, prompts[3], max_new_tokens=NEW)],
                      [prompts[3]]) == [want[3]]
    s = genie.get_stats()
    assert s["executors"][0]["resident_objects"] == 0
    assert all(st["handoffs"] == 0 for st in s["sessions"].values())


def test_generate_many_sessions_join_and_leave(tiny):
    """At most 3 sessions at once; eos ends a session early (later positions
    repeat eos) while the others go on."""
    _, remote, prompts, want = tiny
    eos = want[5][2]
    with distributed("prefill:2,decode:1"):
        outs = genie.generate_many(remote, prompts, max_new_tokens=NEW, eos_token_id=eos,
                                   max_sessions=3)
        live = genie.get_stats()["executors"]
    for got, w in zip(new_tokens(outs, prompts), want):
        cut = w.index(eos) + 1 if eos in w else len(w)
        assert got[:cut] == w[:cut]
        assert all(t == eos for t in got[cut:])
    assert all(e["sessions"] == 0 for e in live)


def test_blind_mode_same_tokens_no_handoff(tiny):
    ref, remote, prompts, want = tiny
    with distributed("prefill:2,decode:1", kv_mode="blind") as fake:
        outs = genie.generate_many(remote, prompts, max_new_tokens=NEW)
        s = genie.get_stats()
    assert new_tokens(outs, prompts) == want
    assert s["kv_mode"] == "blind" and not fake.handoffs
    ex = {e["rank"]: e for e in s["executors"]}
    assert ex[3]["driver_requests"] == {"llm_decode": 8 * (NEW - 1)}
    for st in s["sessions"].values():
        assert st["handoffs"] == 0 and st["kv_bytes_moved"] > st["kv_cache_bytes"]


def test_blind_mode_moves_100x_more_per_decode_step():
    """Bytes on the driver's links during the decode step at 128 tokens of
    context: blind mode (KV cache down and up again) against colocated (the
    SRG and a token).  A request's SRG is about 8 KiB per layer whatever the
    width, so the model is GPT-2-small wide (768) with 2 layers: at 128
    tokens its KV cache (1.5 MiB) is what a real model's is per 2 layers."""
    cfg = dict(n_layer=2, n_embd=768, n_head=12, vocab_size=1024, seed=7)
    ref = gpt2(**cfg)
    prompt = torch.randint(0, 1024, (1, 120), generator=torch.Generator().manual_seed(8))
    want = reference_greedy(ref, prompt, 10)
    per_step = {}
    for mode in ("colocated", "blind"):
        remote = gpt2(**cfg).to(DEV)
        with distributed("prefill:1,decode:1", kv_mode=mode) as fake:
            marks = []
            out = genie.generate_many(remote, [prompt], max_new_tokens=10,
                                      on_token=lambda i, step, t, s: marks.append(fake.totals()))
        assert out[0][0, 120:].tolist() == want
        # Step k reads a context of 120 + k tokens; step 8's is 128.
        per_step[mode] = marks[8] - marks[7]
    ratio = per_step["blind"] / per_step["colocated"]
    assert ratio >= 100, f"{per_step}: blind moves only {ratio:.1f}x more per decode step"


def test_requests_are_submitted_without_waiting():
    """Two independent prefill requests are both in flight at once, on
    different prefill ranks; materialising collects them."""
    w = torch.randn(16, 16)
    x1, x2 = torch.randn(4, 16), torch.randn(4, 16)
    with distributed("prefill:2,decode:1") as fake:
        with genie.phase("llm_prefill"):
            y1 = (x1.to(DEV) @ w.to(DEV)).relu()
            r1 = RUNTIME.submit([y1._value])
            y2 = (x2.to(DEV) @ w.to(DEV)).relu()
            r2 = RUNTIME.submit([y2._value])
        assert y1._value.state == INFLIGHT and y2._value.state == INFLIGHT
        assert {r1.rank, r2.rank} == {1, 2}
        assert RUNTIME.ranks[1].outstanding == 1 and RUNTIME.ranks[2].outstanding == 1
        assert torch.allclose(y2.cpu(), (x2 @ w).relu(), atol=1e-5)
        assert torch.allclose(y1.cpu(), (x1 @ w).relu(), atol=1e-5)
        assert y1._value.state == RESIDENT and not RUNTIME.inflight
        assert fake.accepted == {1: 1, 2: 1, 3: 0}


def test_values_on_two_ranks_are_gathered():
    """A request reading resident objects of two ranks runs where most of
    their bytes are; the others are handed over executor to executor."""
    x = torch.arange(8.0)
    with distributed("prefill:1,decode:1") as fake:
        with genie.phase("llm_prefill"):
            a = torch.cat([x, x]).to(DEV) * 2         # 64 bytes, on rank 1
        genie.synchronize()
        with genie.phase("llm_decode"):
            b = x.to(DEV) + 1                          # 32 bytes, on rank 2
        genie.synchronize()
        assert RUNTIME.uid_rank[a._value.uid] == 1 and RUNTIME.uid_rank[b._value.uid] == 2
        c = a[:8] + b
        assert c.tolist() == (x * 2 + x + 1).tolist()
        assert RUNTIME.uid_rank[b._value.uid] == 1
        assert [(h[0], h[1], h[3]) for h in fake.handoffs] == [(2, 1, [b._value.uid])]
        p = genie.get_stats()["placement"]
        assert p["straggler_handoffs"] == 1 and p["straggler_bytes"] == 32


def test_phase_without_group_goes_to_first_group():
    x = torch.arange(4.0)
    with distributed("decode:1,prefill:1"):
        with genie.phase("vision_encoding"):
            assert (x.to(DEV) * 3).tolist() == (x * 3).tolist()
        p = genie.get_stats()["placement"]
        assert p["by_group"] == {"decode": 1} and p["phase_fallback_placements"] == 1


def test_executor_lost_propagates(tiny):
    """A decode rank that dies while a request is in flight: generate_many
    raises genie.ExecutorLostError (a GenieError), the prefill ranks keep
    serving, and decode requests fail clearly afterwards."""
    _, remote, prompts, _ = tiny
    assert issubclass(genie.ExecutorLostError, genie.GenieError)
    with distributed("prefill:2,decode:1", lose_after={3: 2}):
        with pytest.raises(genie.ExecutorLostError, match="rank 3"):
            genie.generate_many(remote, prompts[:2], max_new_tokens=4)
        s = genie.get_stats()
        assert {e["rank"]: e["lost"] is not None for e in s["executors"]} == \
            {1: False, 2: False, 3: True}
        x = torch.arange(4.0)
        with genie.phase("llm_prefill"):
            assert (x.to(DEV) + 1).tolist() == (x + 1).tolist()
        with genie.phase("llm_decode"):
            y = x.to(DEV) + 2
            with pytest.raises(genie.ExecutorLostError, match="no executor of group 'decode'"):
                y.cpu()


def test_failed_request_leaves_a_clear_error():
    """A request the executor refuses (a GenieError from wait) fails its
    values; the runtime keeps serving."""
    with distributed("prefill:1,decode:1") as fake:
        x = torch.arange(4.0)
        y = x.to(DEV) * 2
        real_wait = fake.wait

        def refuse(ticket):
            real_wait(ticket)
            raise genie.GenieError("genie: execution failed: refused by the test")
        fake.wait = refuse
        with pytest.raises(genie.GenieError, match="refused by the test"):
            y.cpu()
        fake.wait = real_wait
        with pytest.raises(genie.GenieError, match="refused by the test"):
            (y + 1).cpu()
        assert (x.to(DEV) * 3).tolist() == (x * 3).tolist()


def test_driver_role_needs_a_distributed_build(monkeypatch):
    monkeypatch.delattr(_C, "Cluster", raising=False)      # as built without MPI/UCX
    monkeypatch.setenv("GENIE_ROLE", "driver")
    with pytest.raises(genie.GenieError) as e:
        Runtime().init()
    msg = str(e.value)
    assert msg.startswith("genie:") and "MPI/UCX" in msg and "\n" not in msg


def test_bad_kv_mode_is_refused(monkeypatch):
    monkeypatch.setenv("GENIE_KV_MODE", "teleport")
    with pytest.raises(genie.GenieError, match="GENIE_KV_MODE must be one of colocated, blind"):
        Runtime().init()


def test_example_app_checks_distributed_runs(capsys):
    """jobs/examples/generate.py --check --stats on the fake cluster: tokens
    match PyTorch, the summary shows prefill work on both prefill ranks and
    every session's KV cache moved once; exit status 0."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "jobs", "examples"))
    try:
        import generate as app
    finally:
        sys.path.pop(0)
    with distributed("prefill:2,decode:1"):
        rc = app.main(["--prompts", "4", "--new-tokens", "4", "--check", "--stats"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "mode=distributed" in out and "all 4 prompts match" in out
    assert "prefill rank 1: 2 requests" in out and "prefill rank 2: 2 requests" in out
    assert out.count("(once)") == 4


def test_example_app_summary_fails_on_a_bad_handoff(capsys):
    """The example's distributed check can fail: a session whose KV moved
    twice, or a prefill rank without prefill work."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "jobs", "examples"))
    try:
        import generate as app
    finally:
        sys.path.pop(0)

    def execs(compute2):
        e = dict(host="h", pid=1, driver_requests={"llm_prefill": 1})
        return [dict(e, rank=1, phase="prefill", phase_compute_s={"llm_prefill": 0.1}),
                dict(e, rank=2, phase="prefill", phase_compute_s={"llm_prefill": compute2}),
                dict(e, rank=3, phase="decode", driver_requests={}, phase_compute_s={})]
    good = dict(prefill_rank=1, decode_rank=3, kv_bytes_moved=64, kv_cache_bytes=64, handoffs=1)
    stats = {"kv_mode": "colocated", "executors": execs(0.1), "sessions": {1: good, 2: good}}
    assert app.distributed_summary(stats, 2) == []
    stats["sessions"][2] = dict(good, kv_bytes_moved=128, handoffs=2)
    assert len(app.distributed_summary(stats, 2)) == 1
    stats = {"kv_mode": "colocated", "executors": execs(0.0), "sessions": {1: good}}
    assert app.distributed_summary(stats, 2) == ["prefill rank 2 did no prefill work"]
    assert app.distributed_summary(stats, 1) == []     # fewer prompts than prefill ranks
    capsys.readouterr()

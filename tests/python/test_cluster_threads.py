"""Real clusters (genie-launch, Open MPI, UCX) used the way issue 13 found
unsafe: two Python threads calling genie.generate at once (the runtime and
the extension serialise their calls), and a KV handoff whose RMA transfer
comes up short (GENIE_TEST_SHORT_GET: the transport's byte count must show
it and the generation must fail with a clear error, not go on)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import genie
from fake_cluster import distributed, FakeCluster

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "build" / "bin" / "genie-launch"
EXECUTOR = ROOT / "build" / "bin" / "genie-executor"
APPS = Path(__file__).resolve().parent / "apps"

needs_cluster = pytest.mark.skipif(
    not LAUNCH.exists() or not EXECUTOR.exists() or shutil.which("mpirun") is None,
    reason="real runs need build/bin/genie-launch, build/bin/genie-executor and mpirun")


def launch(args, extra_env=None, timeout=240, launch_args=()):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GENIE_", "SLURM_"))}
    env.update(extra_env or {})
    return subprocess.run([str(LAUNCH), "--phases", "prefill:1,decode:1"] + list(launch_args) +
                          ["--", sys.executable] + list(args),
                          env=env, capture_output=True, text=True, timeout=timeout)


@needs_cluster
def test_two_threads_calling_generate():
    """Before the runtime lock both threads started the cluster at once
    (MPI_Init_thread twice: the job aborted)."""
    p = launch([str(APPS / "two_threads.py")])
    assert p.returncode == 0, p.stderr[-3000:]
    assert "two threads: all 6 results match (distributed)" in p.stdout, p.stdout


@needs_cluster
def test_short_kv_transfer_is_detected():
    """The destination's transport counts the bytes its gets delivered: 64
    bytes short is refused, and the driver ends with that reason and a
    non-zero status instead of decoding from a partial cache."""
    p = launch([str(ROOT / "jobs" / "examples" / "generate.py"), "--model", "gpt2-tiny",
                "--prompts", "1", "--new-tokens", "4", "--check"],
               {"GENIE_TEST_SHORT_GET": "64"})
    assert p.returncode != 0, p.stdout
    assert "the transport delivered 8128 of the 8192 bytes" in p.stderr, p.stderr[-3000:]
    assert "prompts match" not in p.stdout


def test_driver_checks_the_handoff_count(monkeypatch):
    """A handoff reply whose byte count differs from the cache's size is an
    error on the driver too (kv_bytes_moved comes from the transport)."""
    real = FakeCluster.handoff

    def short(self, *a):
        res = real(self, *a)
        return dict(res, bytes=int(res["bytes"]) - 64)

    monkeypatch.setattr(FakeCluster, "handoff", short)
    import copy
    import torch
    from conftest import DEV, gpt2
    remote = copy.deepcopy(gpt2()).to(DEV)
    with distributed("prefill:1,decode:1"):
        with pytest.raises(genie.GenieError, match=r"moved \d+ bytes, the cache is \d+ bytes"):
            genie.generate(remote, torch.tensor([[1, 2, 3]]), max_new_tokens=3)


@needs_cluster
def test_memory_budget_refuses_with_one_line(tmp_path):
    """genie.conf memory_mb reaches the executors (GENIE_MEMORY_MB): a weight
    over the budget is refused with the sizes, before anything is allocated,
    and the job ends with that line and a non-zero status."""
    conf = tmp_path / "genie.conf"
    conf.write_text("memory_mb = 1;\n")
    p = launch([str(ROOT / "jobs" / "examples" / "generate.py"), "--model", "gpt2-tiny",
                "--prompts", "1", "--new-tokens", "4"], launch_args=("--config", str(conf)))
    assert p.returncode != 0, p.stdout
    lines = [l for l in p.stderr.splitlines() if "memory budget is 1.0 MiB" in l]
    assert len(lines) == 1 and lines[0].startswith("genie: "), p.stderr[-3000:]

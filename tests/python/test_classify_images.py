"""The vision-pipeline example (jobs/examples/classify_images.py) end to end.

It runs the example as a user would, in a subprocess: embedded with --check
(a small ViT whose patch-embedding conv is replaced by a patch-wise Linear,
classified through Genie and compared with PyTorch eager on the original
conv model), and, when genie-launch is built, disaggregated under
``genie-launch --phases vision:2`` with --check --stats, where the requests
must run on the two vision executors.  The example exits non-zero on any
mismatch; these tests also read its output lines.
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "jobs" / "examples" / "classify_images.py"
LAUNCH = ROOT / "build" / "bin" / "genie-launch"
EXECUTOR = ROOT / "build" / "bin" / "genie-executor"

MATCH = re.compile(r"^all (\d+) images match \(max rel err ([0-9.e+-]+)\)$", re.M)
EXEC_LINE = re.compile(r"^executor rank (\d+) \((\S+) slice (\d+)\): (\d+) vision_encoding "
                       r"requests, ([0-9.]+) s compute", re.M)
BATCHES, BATCH_SIZE = 2, 4


def _env(tmp_path):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("GENIE_", "SLURM_"))}
    e.update(PYTHONPATH=str(ROOT / "frontend"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
             TMPDIR=str(tmp_path))
    return e


def _run(cmd, tmp_path, timeout):
    p = subprocess.run(cmd, cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True,
                       timeout=timeout)
    assert p.returncode == 0, f"exit {p.returncode}\n--- stdout\n{p.stdout}\n--- stderr\n{p.stderr}"
    return p.stdout


def _assert_match(out):
    m = MATCH.search(out)
    assert m, out
    assert int(m.group(1)) == BATCHES * BATCH_SIZE
    assert float(m.group(2)) <= 1e-4


def _args(*extra):
    return [str(EXAMPLE), "--batches", str(BATCHES), "--batch-size", str(BATCH_SIZE),
            "--check", *extra]


def test_embedded_check(tmp_path):
    out = _run([sys.executable] + _args(), tmp_path, timeout=120)
    assert "genie: mode=embedded" in out
    _assert_match(out)


@pytest.mark.skipif(not LAUNCH.exists() or not EXECUTOR.exists()
                    or shutil.which("mpirun") is None,
                    reason="needs build/bin/genie-launch, build/bin/genie-executor and "
                           "Open MPI's mpirun")
def test_launch_vision_executors(tmp_path):
    out = _run([str(LAUNCH), "--phases", "vision:2", "--", sys.executable]
               + _args("--stats"), tmp_path, timeout=180)
    assert "genie: mode=distributed" in out
    _assert_match(out)
    execs = [(int(r), g, int(n), float(c)) for r, g, _, n, c in EXEC_LINE.findall(out)]
    assert [g for _, g, _, _ in execs] == ["vision", "vision"], out
    # One request per batch, on the least-loaded vision executor: both work.
    assert sum(n for _, _, n, _ in execs) == BATCHES, out
    for rank, _, n, compute in execs:
        assert n > 0 and compute > 0, f"vision rank {rank} did no work\n{out}"
    # genie-launch removed its job directory (and the secret in it); torch
    # may leave its own caches in TMPDIR.
    assert not list(tmp_path.glob("genie-*")), os.listdir(tmp_path)

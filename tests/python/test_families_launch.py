"""Model families on a real cluster (genie-launch, Open MPI, UCX): decoders
(Llama, Mixtral) and an encoder (BERT) run on the executors of
`--phases prefill:1,vision:1` and match eager PyTorch
(tests/python/apps/families_check.py does the comparison)."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "build" / "bin" / "genie-launch"
EXECUTOR = ROOT / "build" / "bin" / "genie-executor"
APP = Path(__file__).resolve().parent / "apps" / "families_check.py"
FAMILIES = ["llama", "mixtral", "bert"]   # vision models: once convolution exists


@pytest.mark.skipif(not LAUNCH.exists() or not EXECUTOR.exists() or shutil.which("mpirun") is None,
                    reason="needs build/bin/genie-launch, build/bin/genie-executor and mpirun")
def test_families_on_executors():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GENIE_", "SLURM_"))}
    p = subprocess.run([str(LAUNCH), "--phases", "prefill:1,vision:1", "--", sys.executable,
                        str(APP)] + FAMILIES, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr[-3000:]
    for name in FAMILIES:
        assert re.search(rf"^family {name}: match .*mode distributed\)$", p.stdout, re.M), p.stdout

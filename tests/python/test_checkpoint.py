"""The driver's checkpoint policy, keys and refusals, without executors.

The checkpoints themselves (HDF5 files written by executor ranks, restore,
in-job recovery) are tested with real jobs in tests/fault (label fault) and
tests/unit/test_ckpt.c.
"""

import os
import subprocess
import sys

import pytest
import torch

from genie import _C
from genie._checkpoint import Checkpoints, kv_names, stream_key
from genie._errors import GenieError

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def test_kv_names_follow_the_cache_order():
    assert kv_names(4) == ["layer_00/key", "layer_00/value", "layer_01/key", "layer_01/value"]


def test_stream_key_depends_on_model_prompt_and_sampling():
    p = torch.tensor([[1, 2, 3]])
    k = stream_key(7, p, False, None, 1.0, 50, None)
    assert k == stream_key(7, p.clone(), False, None, 1.0, 50, None)
    assert k != stream_key(8, p, False, None, 1.0, 50, None)           # other weights
    assert k != stream_key(7, torch.tensor([[1, 2, 4]]), False, None, 1.0, 50, None)
    assert k != stream_key(7, p, True, 0, 1.0, 50, None)                # sampling
    assert stream_key(7, p, True, 0, 1.0, 50, None) != stream_key(7, p, True, 1, 1.0, 50, None)


@pytest.mark.parametrize("var,value", [
    ("GENIE_CHECKPOINT_EVERY_STEPS", "x"), ("GENIE_CHECKPOINT_EVERY_STEPS", "-1"),
    ("GENIE_CHECKPOINT_KEEP", "0"), ("GENIE_CHECKPOINT_EVERY_S", "soon"),
    ("GENIE_CHECKPOINT_EVERY_S", "-2"), ("GENIE_CHECKPOINT_EVERY_S", "inf"),
])
def test_bad_policy_is_one_clear_error(monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    with pytest.raises(GenieError, match=rf"^genie: {var} must be"):
        Checkpoints().configure()


def test_policy_from_environment(monkeypatch, tmp_path):
    if not hasattr(_C, "ckpt_open"):
        pytest.skip("built without HDF5")
    monkeypatch.setenv("GENIE_CHECKPOINT_DIR", str(tmp_path / "ck"))
    monkeypatch.setenv("GENIE_CHECKPOINT_EVERY_STEPS", "5")
    monkeypatch.setenv("GENIE_CHECKPOINT_KEEP", "3")
    c = Checkpoints()
    c.install_handlers = lambda: None
    c.configure()
    assert (c.root, c.every_steps, c.keep) == (str(tmp_path / "ck"), 5, 3)
    assert os.path.isdir(c.root)
    assert c.due() is None
    c.steps_since = 5
    assert c.due() == "steps"
    c.pending = "SIGUSR1"
    assert c.due() == "SIGUSR1"


def test_restore_dir_must_exist_and_hold_a_checkpoint(tmp_path):
    if not hasattr(_C, "ckpt_open"):
        pytest.skip("built without HDF5")
    c = Checkpoints()
    with pytest.raises(GenieError, match="does not exist"):
        c.set_restore(str(tmp_path / "nope"))
    with pytest.raises(GenieError, match="no complete checkpoint"):
        c.set_restore(str(tmp_path))


def run_py(code, **env):
    e = dict(os.environ, PYTHONPATH=os.path.join(REPO, "frontend"), **env)
    e.pop("GENIE_ROLE", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e,
                          timeout=120)


def test_embedded_mode_refuses_restore(tmp_path):
    r = run_py("import genie; genie.init()", GENIE_RESTORE_DIR=str(tmp_path))
    assert r.returncode != 0
    assert "GENIE_RESTORE_DIR is set, but checkpoints are restored by executor ranks" in r.stderr
    r = run_py("import genie\ntry:\n    genie.restore('.')\nexcept genie.GenieError as e:\n"
               "    print(e)")
    assert "restore() needs executor ranks" in r.stdout


def test_embedded_mode_says_checkpoints_are_not_written(tmp_path):
    r = run_py("import genie; genie.init()", GENIE_CHECKPOINT_DIR=str(tmp_path))
    assert r.returncode == 0
    assert "GENIE_CHECKPOINT_DIR is ignored in the embedded mode" in r.stderr

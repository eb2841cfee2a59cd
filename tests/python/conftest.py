"""Shared fixtures for the Python tests: models built from configs with fixed
seeds (nothing is downloaded) and a relative-error helper; and the hook that
makes a run in which every test skipped exit with SKIP_EXIT (77), which CTest
counts as a skip (tests/CMakeLists.txt), not as a pass."""

import copy

import pytest
import torch

import genie  # noqa: F401  (registers remote_accelerator)

# CTest's SKIP_RETURN_CODE for the python tests (cmake/GenieTesting.cmake).
SKIP_EXIT = 77


def pytest_sessionfinish(session, exitstatus):
    """All collected tests skipped (none passed, failed, errored or xfailed):
    exit SKIP_EXIT and say why on one line per reason, so that a file whose
    prerequisites are missing is reported as skipped, never as passed.
    A module-level skip makes pytest exit 5 ("no tests collected") with the
    skip recorded: a skip too.  Anything that ran keeps pytest's own status,
    and so does a file with nothing in it at all (5: a failure for CTest)."""
    if exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    stats = reporter.stats if reporter is not None else {}
    ran = sum(len(stats.get(k, [])) for k in ("passed", "failed", "error", "xfailed", "xpassed"))
    skipped = stats.get("skipped", [])
    if ran or not skipped:
        return
    reasons = []
    for rep in skipped:
        lr = rep.longrepr
        why = lr[2] if isinstance(lr, tuple) and len(lr) == 3 else str(lr)
        why = why.removeprefix("Skipped: ")
        if why not in reasons:
            reasons.append(why)
    line = f"skipped: all {len(skipped)} tests skipped: {'; '.join(reasons)}"
    if reporter is not None:
        reporter.write("\n" + line + "\n")   # after the progress line, on a line of its own
    else:
        print(line)
    session.exitstatus = SKIP_EXIT

DEV = "remote_accelerator:0"


def rel_err(ours, ref):
    ours = ours.double()
    ref = ref.double()
    denom = ref.norm()
    return float((ours - ref).norm() / (denom if denom > 0 else 1.0))


def gpt2(n_layer=2, n_embd=128, n_head=4, seed=0, initializer_range=0.2, **kw):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(n_layer=n_layer, n_embd=n_embd, n_head=n_head,
                                      initializer_range=initializer_range, **kw)).eval()


@pytest.fixture(scope="module")
def tiny_pair():
    """(reference CPU model, same weights on remote_accelerator)."""
    ref = gpt2()
    remote = copy.deepcopy(ref).to(DEV)
    return ref, remote

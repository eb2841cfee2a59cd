"""Every model family Genie supports, through model.to("remote_accelerator:0"),
against eager PyTorch on the same weights and inputs: logits (or the last
hidden state) within a relative error of 1e-4 at batch 1 and 4.  The models
are the unchanged transformers classes (tests/python/families.py builds them
from tiny configs); nothing is replaced before capture.  The vision and audio
families wait for the convolution kernel (families.NEEDS_CONVOLUTION); they
are not run, and not counted, until it exists."""

import copy

import pytest
import torch

import genie
from conftest import DEV, rel_err
from families import FAMILIES, NEEDS_CONVOLUTION


def _to(inputs, dev):
    return {k: v.to(dev) for k, v in inputs.items()}


@pytest.fixture(scope="module", params=sorted(set(FAMILIES) - set(NEEDS_CONVOLUTION)))
def family(request):
    build, inputs, output = FAMILIES[request.param]
    ref = build(seed=7)
    remote = copy.deepcopy(ref).to(DEV)
    return request.param, ref, remote, inputs, output


@pytest.mark.parametrize("batch", [1, 4])
def test_matches_eager(family, batch):
    name, ref, remote, inputs, output = family
    x = inputs(batch, torch.Generator().manual_seed(batch))
    with torch.no_grad():
        want = output(ref(**x))
        got = output(remote(**_to(x, DEV)))
    assert isinstance(got, genie.RemoteTensor)
    got = got.cpu()
    assert got.shape == want.shape
    err = rel_err(got, want)
    assert err < 1e-4, f"{name} batch {batch}: relative error {err:.3e}"

"""Shared fixtures for the Python tests: models built from configs with fixed
seeds (nothing is downloaded) and a relative-error helper."""

import copy

import pytest
import torch

import genie  # noqa: F401  (registers remote_accelerator)

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

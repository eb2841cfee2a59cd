"""``genie.generate``: prefill once, then decode steps that move only a token.

The model's KV cache is an ordinary transformers ``DynamicCache`` whose tensors
are ``RemoteTensor``s: after the prefill request they are resident objects on
the executor, marked ``stateful_kv_cache``.  Each decode step captures the
model on the new token only; the graph reads the cache by object id and the
chosen token stays on the executor as the next step's input, so the host only
receives the token ids it asked for.
"""

import torch

from ._annotate import model_context, phase
from ._capture import RemoteTensor, cache_tensors
from ._device import DEVICE
from ._errors import GenieError
from ._runtime import RUNTIME


def _select(logits, do_sample, temperature, top_k, generator):
    """Next token ids (B,) from last-position logits (B, V) on the executor."""
    if not do_sample:
        return logits.argmax(dim=-1)
    k = min(top_k or logits.shape[-1], logits.shape[-1])
    vals, idx = torch.topk(logits / temperature, k, dim=-1)
    # Only the k candidates per row come back; the draw happens on the host
    # with a seeded generator, so a run is reproducible and its tokens can be
    # recorded (never re-sampled) by lineage.
    probs = torch.softmax(vals.cpu().double(), dim=-1)
    choice = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    return idx.cpu().gather(-1, choice[:, None]).squeeze(-1).to(DEVICE)


def _validate(model, input_ids, max_new_tokens, temperature):
    if not isinstance(input_ids, torch.Tensor):
        raise TypeError(f"genie.generate: input_ids must be a tensor, got {type(input_ids).__name__}")
    if input_ids.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"genie.generate: input_ids must be int64 token ids, got {input_ids.dtype}")
    if input_ids.dim() not in (1, 2) or input_ids.shape[-1] == 0:
        raise ValueError(f"genie.generate: input_ids must be (batch, seq) with seq >= 1, "
                         f"got shape {tuple(input_ids.shape)}")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"genie.generate: max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    if temperature <= 0:
        raise ValueError("genie.generate: temperature must be > 0")
    if not hasattr(model, "config"):
        raise TypeError("genie.generate: model must be a transformers causal LM")
    p = next(iter(model.parameters()), None)
    if not isinstance(p, RemoteTensor):
        raise GenieError("genie: generate() needs the model on remote_accelerator "
                         "(model.to('remote_accelerator:0'))")


def generate(model, input_ids, max_new_tokens=32, do_sample=False, seed=None,
             temperature=1.0, top_k=50, eos_token_id=None, on_token=None):
    """Generate tokens with prefill/decode disaggregation.

    model: a transformers causal LM on remote_accelerator; input_ids: (B, T)
    int64 (CPU or remote; rows must have equal length - no padding).
    Greedy by default; do_sample=True draws from the top_k candidates at
    `temperature` with a torch.Generator seeded by `seed`.  Returns a CPU
    int64 tensor (B, T + n) with the prompt followed by the new tokens; rows
    that emit eos_token_id stop there (later positions repeat eos).
    """
    from transformers import DynamicCache

    _validate(model, input_ids, max_new_tokens, temperature)
    ids = input_ids if input_ids.dim() == 2 else input_ids[None]
    prompt = ids.cpu() if isinstance(ids, RemoteTensor) else ids.detach().clone()
    ids = ids if isinstance(ids, RemoteTensor) else ids.to(torch.int64).to(DEVICE)
    gen = None
    if do_sample:
        gen = torch.Generator().manual_seed(seed if seed is not None else 0)
    try:
        cache = DynamicCache(config=model.config)
    except TypeError:
        cache = DynamicCache()
    tokens = []
    done = torch.zeros(prompt.shape[0], dtype=torch.bool)
    session = RUNTIME.new_session()
    try:
        with torch.no_grad(), model_context(model):
            step_input = ids
            for step in range(max_new_tokens):
                with phase("llm_prefill" if step == 0 else "llm_decode"):
                    out = model(input_ids=step_input, past_key_values=cache, use_cache=True)
                    nxt = _select(out.logits[:, -1, :], do_sample, temperature, top_k, gen)
                cache = out.past_key_values
                host = torch.tensor(nxt.tolist(), dtype=torch.int64)   # runs this step
                # The next input is a view of the new token; replacing the old
                # one first lets the previous token go before the session is
                # rebound to its current state.
                step_input = nxt[:, None]
                RUNTIME.bind_session(session, [t._value for t in cache_tensors(cache)] +
                                     ([nxt._value] if isinstance(nxt, RemoteTensor) else []))
                if eos_token_id is not None:
                    host = torch.where(done, torch.full_like(host, eos_token_id), host)
                    done |= host == eos_token_id
                tokens.append(host)
                if on_token is not None:
                    on_token(step, host.tolist(), session)
                if eos_token_id is not None and bool(done.all()):
                    break
    finally:
        RUNTIME.end_session(session)
    if not tokens:
        return prompt
    return torch.cat([prompt, torch.stack(tokens, dim=1)], dim=1)

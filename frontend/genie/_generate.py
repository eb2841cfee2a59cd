"""``genie.generate`` and ``genie.generate_many``: prefill once, then decode
steps that move only a token.

The model's KV cache is an ordinary transformers ``DynamicCache`` whose tensors
are ``RemoteTensor``s: after the prefill request they are resident objects on
an executor, marked ``stateful_kv_cache`` and owned by the generation's
session.  Each decode step captures the model on the new token only; the graph
reads the cache by object id and the chosen token stays on the executor as the
next step's input, so the host only receives the token ids it asked for.  In
the distributed mode the session's first bind hands the cache once from the
prefill rank to a decode rank (``Runtime.bind_session``), where every later
step runs.

``generate_many`` runs several prompts at once: every step it captures each
active session's forward and submits it without waiting, then collects the
tokens, so independent sessions run on different executors concurrently.
Sessions start and stop independently (prompts of different lengths, eos).
"""

from collections import deque

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


def _validate_ids(input_ids, what="input_ids"):
    if not isinstance(input_ids, torch.Tensor):
        raise TypeError(f"genie.generate: {what} must be a tensor, got {type(input_ids).__name__}")
    if input_ids.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"genie.generate: {what} must be int64 token ids, got {input_ids.dtype}")
    if input_ids.dim() not in (1, 2) or input_ids.shape[-1] == 0:
        raise ValueError(f"genie.generate: {what} must be (batch, seq) with seq >= 1, "
                         f"got shape {tuple(input_ids.shape)}")


def _validate(model, max_new_tokens, temperature):
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


class _Stream:
    """One prompt's generation."""

    def __init__(self, index, input_ids, config, do_sample, seed):
        ids = input_ids if input_ids.dim() == 2 else input_ids[None]
        self.index = index
        self.prompt = ids.cpu() if isinstance(ids, RemoteTensor) else ids.detach().clone()
        self.ids = ids if isinstance(ids, RemoteTensor) else ids.to(torch.int64).to(DEVICE)
        self.gen = torch.Generator().manual_seed(seed if seed is not None else 0) \
            if do_sample else None
        self.cache = _new_cache(config)
        self.step = 0
        self.nxt = None            # this step's token ids (B,), on the executor
        self.host = None           # the same on the host
        self.tokens = []
        self.done = torch.zeros(self.prompt.shape[0], dtype=torch.bool)
        self.session = None

    def result(self):
        if not self.tokens:
            return self.prompt
        return torch.cat([self.prompt, torch.stack(self.tokens, dim=1)], dim=1)


def _new_cache(config):
    from transformers import DynamicCache
    try:
        return DynamicCache(config=config)
    except TypeError:
        return DynamicCache()


def generate(model, input_ids, max_new_tokens=32, do_sample=False, seed=None,
             temperature=1.0, top_k=50, eos_token_id=None, on_token=None):
    """Generate tokens with prefill/decode disaggregation.

    model: a transformers causal LM on remote_accelerator; input_ids: (B, T)
    int64 (CPU or remote; rows must have equal length - no padding).
    Greedy by default; do_sample=True draws from the top_k candidates at
    `temperature` with a torch.Generator seeded by `seed`.  Returns a CPU
    int64 tensor (B, T + n) with the prompt followed by the new tokens; rows
    that emit eos_token_id stop there (later positions repeat eos).
    on_token(step, tokens, session) is called after every step.
    """
    _validate_ids(input_ids)
    cb = None if on_token is None else (lambda i, step, toks, session: on_token(step, toks, session))
    return _run(model, [input_ids], max_new_tokens, do_sample, seed, temperature, top_k,
                eos_token_id, cb, None)[0]


def generate_many(model, prompts, max_new_tokens=32, do_sample=False, seed=None,
                  temperature=1.0, top_k=50, eos_token_id=None, on_token=None,
                  max_sessions=None):
    """Generate for several prompts concurrently; returns one CPU tensor per
    prompt, each exactly what ``generate`` returns for that prompt alone.

    prompts: a list of token-id tensors, (T,) or (B, T), lengths may differ.
    Every step, each active prompt's forward is captured and submitted
    without waiting; then the tokens are collected.  In the distributed mode
    prefill requests spread over the prefill ranks (least loaded first) and
    each session's KV cache is handed once to a decode rank.
    max_sessions: at most this many prompts generate at once (None: all); a
    waiting prompt starts when another finishes.
    on_token(index, step, tokens, session) is called after every step of
    prompt `index`.  With do_sample, every prompt draws from its own
    generator seeded with `seed`.
    """
    prompts = list(prompts)
    for i, p in enumerate(prompts):
        _validate_ids(p, f"prompts[{i}]")
    if max_sessions is not None and (not isinstance(max_sessions, int) or max_sessions < 1):
        raise ValueError(f"genie.generate_many: max_sessions must be an int >= 1, got {max_sessions!r}")
    return _run(model, prompts, max_new_tokens, do_sample, seed, temperature, top_k,
                eos_token_id, on_token, max_sessions)


def _run(model, prompts, max_new_tokens, do_sample, seed, temperature, top_k, eos_token_id,
         on_token, max_sessions):
    _validate(model, max_new_tokens, temperature)
    streams = [_Stream(i, p, model.config, do_sample, seed) for i, p in enumerate(prompts)]
    if max_new_tokens == 0:
        return [s.prompt for s in streams]
    waiting, active = deque(streams), []
    try:
        with torch.no_grad(), model_context(model):
            while waiting or active:
                while waiting and (max_sessions is None or len(active) < max_sessions):
                    s = waiting.popleft()
                    s.session = RUNTIME.new_session()
                    active.append(s)
                # Work the program left pending is not part of any session's
                # request: it goes first, on its own.
                RUNTIME.submit()
                for s in active:
                    _capture_step(model, s, do_sample, temperature, top_k)
                # Collect every token first: binding needs the executors idle
                # (frees of the previous step's cache go out first).
                for s in active:
                    s.host = torch.tensor(s.nxt.tolist(), dtype=torch.int64)
                for s in active:
                    _finish_step(s, on_token, eos_token_id)
                still = []
                for s in active:
                    if s.step == max_new_tokens or (eos_token_id is not None and bool(s.done.all())):
                        RUNTIME.end_session(s.session)
                        s.session = None
                        s.cache = s.nxt = None
                    else:
                        still.append(s)
                active = still
    finally:
        # On an error, free what the unfinished sessions hold; an executor
        # that is gone cannot be asked, and the original error matters more.
        for s in active:
            if s.session is not None:
                try:
                    RUNTIME.end_session(s.session)
                except GenieError:
                    pass
    return [s.result() for s in streams]


def _capture_step(model, s, do_sample, temperature, top_k):
    """Capture one step of session `s` and submit it (one request)."""
    name = "llm_prefill" if s.step == 0 else "llm_decode"
    with phase(name):
        # The next input is a view of the previous token, captured here so it
        # belongs to this session's request.
        step_input = s.ids if s.step == 0 else s.nxt[:, None]
        s.ids = None
        out = model(input_ids=step_input, past_key_values=s.cache, use_cache=True)
        s.nxt = _select(out.logits[:, -1, :], do_sample, temperature, top_k, s.gen)
    s.cache = out.past_key_values
    # Only the cache and the token outlive the step; dropping the rest before
    # the request is built keeps the logits off the executor's object table.
    del out, step_input
    if isinstance(s.nxt, RemoteTensor):
        RUNTIME.submit([s.nxt._value])


def _finish_step(s, on_token, eos_token_id):
    RUNTIME.bind_session(s.session, [t._value for t in cache_tensors(s.cache)],
                         [s.nxt._value] if isinstance(s.nxt, RemoteTensor) else [])
    host = s.host
    if eos_token_id is not None:
        host = torch.where(s.done, torch.full_like(host, eos_token_id), host)
        s.done |= host == eos_token_id
    s.tokens.append(host)
    if on_token is not None:
        on_token(s.index, s.step, host.tolist(), s.session)
    s.step += 1

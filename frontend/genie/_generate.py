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

Each step calls the model the way transformers' own ``generate`` does
(``prepare_inputs_for_generation``): the cache under its 5.x name ``cache``
(``past_key_values`` before), ``logits_to_keep=1`` where the model takes it,
and for a batch with padding (an ``attention_mask`` with zeros: prompts of
unequal length, left-padded) the mask, grown by one column a step, and
position ids ``cumsum(mask) - 1`` (0 on padding), the last one + 1 a step.
Rows that emitted an eos token are fed and filled with ``pad_token_id``.
Sampling follows transformers' order (temperature, top-k, top-p, softmax,
``torch.multinomial``) on the host from the executor's top-k candidates, so
a seeded run gives the tokens transformers gives on the CPU with the same
generator state (``_Sampler``).
"""

import inspect
import os
import sys
import time
from collections import deque

import torch

from ._annotate import model_context, phase
from ._capture import RemoteTensor, cache_tensors, output_cache
from ._device import DEVICE
from ._checkpoint import (CHECKPOINTS, LINEAGE_COLS, PHASE_CODE, CheckpointRecord,
                          model_fingerprint, stream_key)
from ._errors import ExecutorLostError, GenieError
from ._graph import INFLIGHT, RESIDENT
from ._runtime import RUNTIME


def _say(msg):
    print(msg, file=sys.stderr, flush=True)


class _Sampler:
    """How the next token is chosen from the last position's logits (B, V).

    Greedy: argmax on the executor; only the token ids come back.
    Sampling: the executor returns the top-k candidates per row (values and
    ids; the whole row when there is no top-k), the host puts them back in a
    (B, V) float32 row of -inf and applies the warpers in transformers' order
    (temperature, top-k, top-p: transformers' own warper classes, so the
    arithmetic is theirs), then softmax and ``torch.multinomial`` with the
    stream's generator.  Outside the top-k every probability is 0 in both, so
    the draw is the one transformers makes on the CPU from the same logits and
    generator state.  Sampled tokens are recorded by lineage, never redrawn.
    (Ties at the k-th value, which transformers keeps, are not kept here.)
    """

    def __init__(self, do_sample, warpers=(), top_k=None, args=(1.0, 50, 1.0)):
        self.do_sample = bool(do_sample)
        self.warpers = list(warpers)
        self.top_k = top_k                 # candidates fetched (None: the whole row)
        self.args = args                   # (temperature, top_k, top_p) as asked

    @classmethod
    def from_args(cls, do_sample, temperature, top_k, top_p):
        args = (float(temperature), top_k, 1.0 if top_p is None else float(top_p))
        if not do_sample:
            return cls(False, args=args)
        from transformers.generation.logits_process import (TemperatureLogitsWarper,
                                                            TopKLogitsWarper, TopPLogitsWarper)
        warpers = []
        if temperature != 1.0:
            warpers.append(TemperatureLogitsWarper(float(temperature)))
        if top_k:
            warpers.append(TopKLogitsWarper(int(top_k)))
        if top_p is not None and top_p < 1.0:
            warpers.append(TopPLogitsWarper(float(top_p)))
        return cls(True, warpers, int(top_k) if top_k else None, args)

    def candidates(self, logits):
        """Executor side: what the host needs to choose (tensors on remote)."""
        if not self.do_sample:
            return (logits.argmax(dim=-1),)
        v = logits.shape[-1]
        if self.top_k is None or self.top_k >= v:
            return (logits,)
        vals, idx = torch.topk(logits, self.top_k, dim=-1)
        return (vals, idx)

    def choose(self, cands, generator, vocab):
        """Host side: next token ids (B,) int64 from candidates() on the host
        (vocab: the logits' last dimension)."""
        if not self.do_sample:
            return cands[0].to(torch.int64)
        if len(cands) == 1:
            scores = cands[0].to(torch.float32).clone()
        else:
            vals, idx = cands
            scores = torch.full((vals.shape[0], vocab), float("-inf"), dtype=torch.float32)
            scores.scatter_(1, idx.to(torch.int64), vals.to(torch.float32))
        for w in self.warpers:
            scores = w(None, scores)
        probs = torch.softmax(scores, dim=-1)
        return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(1)


def _eos_list(eos_token_id):
    if eos_token_id is None:
        return None
    if isinstance(eos_token_id, torch.Tensor):
        eos_token_id = eos_token_id.flatten().tolist()
    if isinstance(eos_token_id, int):
        eos_token_id = [eos_token_id]
    eos = [int(e) for e in eos_token_id]
    return eos or None


class _Stop:
    """eos and pad handling, as transformers' generate does it: a row that
    emits one of the eos ids is finished; from then on its tokens (and the
    tokens it is fed) are pad_token_id (default: the first eos id)."""

    def __init__(self, eos_token_id, pad_token_id):
        self.eos = _eos_list(eos_token_id)
        if pad_token_id is None and self.eos is not None:
            pad_token_id = self.eos[0]
        self.pad = None if pad_token_id is None else int(pad_token_id)
        self.eos_t = None if self.eos is None else torch.tensor(self.eos, dtype=torch.int64)

    def apply(self, done, host):
        """(tokens with finished rows padded, new done)."""
        if self.eos is None:
            return host, done
        host = torch.where(done, torch.full_like(host, self.pad), host)
        return host, done | torch.isin(host, self.eos_t)

    def key(self):
        return None if self.eos is None else (self.eos if len(self.eos) > 1 else self.eos[0])


def _validate_ids(input_ids, what="input_ids"):
    if not isinstance(input_ids, torch.Tensor):
        raise TypeError(f"genie.generate: {what} must be a tensor, got {type(input_ids).__name__}")
    if input_ids.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"genie.generate: {what} must be int64 token ids, got {input_ids.dtype}")
    if input_ids.dim() not in (1, 2) or input_ids.shape[-1] == 0:
        raise ValueError(f"genie.generate: {what} must be (batch, seq) with seq >= 1, "
                         f"got shape {tuple(input_ids.shape)}")


def _validate_mask(mask, ids, what):
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"genie.generate: {what} must be a tensor, got {type(mask).__name__}")
    mask = mask.cpu() if isinstance(mask, RemoteTensor) else mask
    mask = mask if mask.dim() == 2 else mask[None]
    shape = tuple(ids.shape) if ids.dim() == 2 else (1, ids.shape[0])
    if tuple(mask.shape) != shape:
        raise ValueError(f"genie.generate: {what} has shape {tuple(mask.shape)}, its prompt {shape}")
    return mask.to(torch.int64)


def _validate(model, max_new_tokens, temperature, top_p):
    if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"genie.generate: max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    if temperature <= 0:
        raise ValueError("genie.generate: temperature must be > 0")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"genie.generate: top_p must be in (0, 1], got {top_p!r}")
    if not hasattr(model, "config"):
        raise TypeError("genie.generate: model must be a transformers causal LM")
    p = next(iter(model.parameters()), None)
    if not isinstance(p, RemoteTensor):
        raise GenieError("genie: generate() needs the model on remote_accelerator "
                         "(model.to('remote_accelerator:0'))")


class _Forward:
    """How this model's forward is called each step, as transformers'
    generate calls it: the name of its cache argument (``cache`` in 5.x;
    ``past_key_values`` is deprecated there and warns), whether it takes
    position ids and ``logits_to_keep``."""

    _memo = {}

    def __init__(self, model):
        params = inspect.signature(model.forward).parameters
        self.cache_kw = "cache" if "cache" in params else "past_key_values"
        self.position_ids = "position_ids" in params
        self.logits_to_keep = "logits_to_keep" in params
        self.attention_mask = "attention_mask" in params

    @classmethod
    def of(cls, model):
        f = cls._memo.get(type(model))
        if f is None:
            f = cls._memo[type(model)] = cls(model)
        return f


class _Gen:
    """One generate call's settings, shared by its streams."""

    def __init__(self, model, max_new_tokens, sampler, stop, on_token):
        self.model = model
        self.max_new_tokens = max_new_tokens
        self.sampler = sampler
        self.stop = stop
        self.on_token = on_token
        self.fwd = _Forward.of(model)
        self.vocab = None


class _Stream:
    """One prompt's generation: its state on the executors (session, cache,
    next token) and its lineage on the host (prompt, tokens, step records)."""

    def __init__(self, index, input_ids, config, do_sample, seed, mask=None, generator=None):
        ids = input_ids if input_ids.dim() == 2 else input_ids[None]
        self.index = index
        self.prompt = ids.cpu() if isinstance(ids, RemoteTensor) else ids.detach().clone()
        self.ids = ids if isinstance(ids, RemoteTensor) else ids.to(torch.int64).to(DEVICE)
        if generator is not None:
            self.gen = generator if do_sample else None
        else:
            self.gen = torch.Generator().manual_seed(seed if seed is not None else 0) \
                if do_sample else None
        # Padding (zeros in the mask) changes what the model is given; a mask
        # of ones is the same as none (transformers drops it too).
        self.mask = mask if mask is not None and not bool(mask.all()) else None
        self.config = config
        self.cache = _new_cache(config)
        self.step = 0
        self.nxt = None            # this step's token ids (B,), on the executor
        self.cands = None          # this step's sampling candidates, on the executor
        self.host = None           # the same on the host
        self.tokens = []
        self.done = torch.zeros(self.prompt.shape[0], dtype=torch.bool)
        self.session = None
        self.key = 0               # matches a checkpointed session (_checkpoint.stream_key)
        self.model_fp = 0
        self.lineage = []          # one record per committed step (_checkpoint.LINEAGE_COLS)
        self.ckpt = None           # newest CheckpointRecord holding this stream
        self.snap = None           # state before the step in progress (for a rollback)
        self.committed = False     # this round's step is done
        self.nodes_before = 0
        self.restored_from = None  # CheckpointRecord it was restored from (another job)

    def result(self):
        if not self.tokens:
            return self.prompt
        return torch.cat([self.prompt, torch.stack(self.tokens, dim=1)], dim=1)

    def step_inputs(self, j, fwd):
        """Keyword arguments of step j besides input_ids and the cache: with
        padding, the mask over the prompt and the j tokens fed since, and
        the position ids of step j's input (transformers'
        ``cumsum(mask) - 1``, 0 on padding; + 1 a step)."""
        kw = {}
        if fwd.logits_to_keep:
            kw["logits_to_keep"] = 1
        if self.mask is None:
            return kw
        b = self.mask.shape[0]
        mask = self.mask if j == 0 else torch.cat(
            [self.mask, torch.ones(b, j, dtype=self.mask.dtype)], dim=1)
        if fwd.attention_mask:
            kw["attention_mask"] = mask
        if fwd.position_ids:
            pos = (self.mask.cumsum(-1) - 1).masked_fill(self.mask == 0, 0)
            kw["position_ids"] = pos if j == 0 else pos[:, -1:] + j
        return kw


def _new_cache(config):
    from transformers import DynamicCache
    try:
        return DynamicCache(config=config.get_text_config(decoder=True)
                            if hasattr(config, "get_text_config") else config)
    except TypeError:
        return DynamicCache()


def generate(model, input_ids, max_new_tokens=32, do_sample=False, seed=None,
             temperature=1.0, top_k=50, eos_token_id=None, on_token=None, top_p=1.0,
             attention_mask=None, pad_token_id=None):
    """Generate tokens with prefill/decode disaggregation.

    model: a transformers causal LM on remote_accelerator; input_ids: (B, T)
    int64 (CPU or remote).  Rows of unequal length are left-padded, with
    ``attention_mask`` (B, T) marking the real tokens (1) and the padding (0),
    as for transformers' generate.  Greedy by default; do_sample=True draws
    with a torch.Generator seeded by `seed`, after temperature, top_k and
    top_p in transformers' order (the tokens are those of
    ``torch.manual_seed(seed); model.generate(..., do_sample=True)`` on the
    CPU).  eos_token_id: an id or a list of ids; a row that emits one stops,
    its later positions hold pad_token_id (default: the first eos id), and
    generation ends when every row has stopped.  Returns a CPU int64 tensor
    (B, T + n) with the prompt followed by the new tokens.
    on_token(step, tokens, session) is called after every step.
    """
    _validate_ids(input_ids)
    mask = _validate_mask(attention_mask, input_ids, "attention_mask")
    cb = None if on_token is None else (lambda i, step, toks, session: on_token(step, toks, session))
    sampler = _Sampler.from_args(do_sample, temperature, top_k, top_p)
    return _run(model, [input_ids], [mask], max_new_tokens, sampler, seed, temperature,
                _Stop(eos_token_id, pad_token_id), cb, None)[0]


def generate_many(model, prompts, max_new_tokens=32, do_sample=False, seed=None,
                  temperature=1.0, top_k=50, eos_token_id=None, on_token=None,
                  max_sessions=None, top_p=1.0, attention_masks=None, pad_token_id=None):
    """Generate for several prompts concurrently; returns one CPU tensor per
    prompt, each exactly what ``generate`` returns for that prompt alone.

    prompts: a list of token-id tensors, (T,) or (B, T), lengths may differ;
    attention_masks: None or one mask (or None) per prompt, as for generate.
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
    masks = list(attention_masks) if attention_masks is not None else [None] * len(prompts)
    if len(masks) != len(prompts):
        raise ValueError(f"genie.generate_many: {len(masks)} attention masks for "
                         f"{len(prompts)} prompts")
    masks = [_validate_mask(m, p, f"attention_masks[{i}]")
             for i, (m, p) in enumerate(zip(masks, prompts))]
    if max_sessions is not None and (not isinstance(max_sessions, int) or max_sessions < 1):
        raise ValueError(f"genie.generate_many: max_sessions must be an int >= 1, got {max_sessions!r}")
    sampler = _Sampler.from_args(do_sample, temperature, top_k, top_p)
    return _run(model, prompts, masks, max_new_tokens, sampler, seed, temperature,
                _Stop(eos_token_id, pad_token_id), on_token, max_sessions)


def _run(model, prompts, masks, max_new_tokens, sampler, seed, temperature, stop, on_token,
         max_sessions, generator=None):
    # One generation captures and runs at a time (see Runtime.lock).
    with RUNTIME.lock:
        return _run_locked(model, prompts, masks, max_new_tokens, sampler, seed, temperature,
                           stop, on_token, max_sessions, generator)


def _run_locked(model, prompts, masks, max_new_tokens, sampler, seed, temperature, stop,
                on_token, max_sessions, generator):
    _validate(model, max_new_tokens, temperature, sampler.args[2])
    g = _Gen(model, max_new_tokens, sampler, stop, on_token)
    streams = [_Stream(i, p, model.config, sampler.do_sample, seed, m, generator)
               for i, (p, m) in enumerate(zip(prompts, masks))]
    if max_new_tokens == 0:
        return [s.prompt for s in streams]
    if RUNTIME.cluster is None:
        RUNTIME.init()
    model_fp = model_fingerprint(model)
    for s in streams:
        s.model_fp = model_fp
        s.key = _key(s, model_fp, g, seed, temperature)
    waiting, active = deque(streams), []
    ckpt = CHECKPOINTS
    try:
        with torch.no_grad(), model_context(model), _generating(ckpt):
            while waiting or active:
                admitted = []
                while waiting and (max_sessions is None or len(active) < max_sessions):
                    s = waiting.popleft()
                    s.session = RUNTIME.new_session()
                    _restore_stream(s, g)
                    active.append(s)
                    admitted.append(s)
                _report_restored(admitted)
                live = _unfinished(active, g)
                try:
                    _round(g, live)
                except ExecutorLostError as e:
                    _recover_round(g, live, e)
                running = _unfinished(active, g)
                ckpt.steps_since += 1
                reason = ckpt.due()
                if reason is not None:
                    _checkpoint_now(g, running, reason)
                    if reason == "SIGTERM":
                        raise SystemExit(143)
                still = []
                for s in active:
                    if s in running:
                        still.append(s)
                    else:
                        RUNTIME.end_session(s.session)
                        s.session = None
                        s.cache = s.nxt = s.cands = None
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


def _key(s, model_fp, g, seed, temperature):
    """The stream's checkpoint key.  Settings at their defaults add nothing,
    so that checkpoints written before they existed keep their keys."""
    _, top_k, top_p = g.sampler.args
    extra = {}
    if top_p != 1.0:
        extra["top_p"] = top_p
    if g.stop.eos is not None and g.stop.pad != g.stop.eos[0]:
        extra["pad"] = g.stop.pad
    if s.mask is not None:
        extra["mask"] = s.mask.flatten().tolist()
    if s.gen is torch.default_generator:
        extra["rng"] = "global"
    return stream_key(model_fp, s.prompt, g.sampler.do_sample, seed, temperature, top_k,
                      g.stop.key(), extra)


def _unfinished(active, g):
    return [s for s in active if s.step < g.max_new_tokens and
            not (g.stop.eos is not None and bool(s.done.all()))]


class _generating:
    """Marks a generation in progress: signals wait for a step boundary."""

    def __init__(self, ckpt):
        self.ckpt = ckpt

    def __enter__(self):
        self.ckpt.generating += 1

    def __exit__(self, *exc):
        self.ckpt.generating -= 1


def _round(g, streams):
    """One step of every stream: capture and submit all, then collect the
    tokens, then commit.  A stream's step is committed (token recorded,
    state bound to its session) only at the end; until then its snapshot
    allows it to be rolled back."""
    for s in streams:
        s.committed = False
        s.snap = _snapshot(s)
    # Work the program left pending is not part of any session's request:
    # it goes first, on its own.
    RUNTIME.submit()
    for s in streams:
        s.nodes_before = RUNTIME.counters["nodes_sent"]
        _capture_step(g, s)
        s.nodes_before = RUNTIME.counters["nodes_sent"] - s.nodes_before
    # Collect every token first: binding needs the executors idle (frees of
    # the previous step's cache go out first).
    for s in streams:
        _collect(g, s)
    for s in streams:
        _finish_step(g, s)


def _collect(g, s):
    """The step's token ids on the host: the executor's argmax, or a draw
    from the candidates it returned."""
    cands = tuple(torch.tensor(c.tolist(), dtype=c.dtype) for c in s.cands)
    s.host = g.sampler.choose(cands, s.gen, g.vocab)


def _snapshot(s):
    """The stream's state between steps: each cache layer's attributes (the
    layers are updated in place by a step), the next token, the prompt (step
    0) and the sampler state."""
    layers = getattr(s.cache, "layers", None) or []
    return ([(layer, dict(vars(layer))) for layer in layers], s.nxt, s.ids,
            s.gen.get_state() if s.gen is not None else None)


def _rollback(s):
    """Back to the state before the uncommitted step."""
    if s.snap is None:
        return
    layers, s.nxt, s.ids, gen = s.snap
    for layer, saved in layers:
        vars(layer).clear()
        vars(layer).update(saved)
    if gen is not None:
        s.gen.set_state(gen)
    s.cands = None
    s.snap = None


def _forward(g, s, j, step_input):
    """Run (capture) step j of stream s on `step_input`; returns the last
    position's logits (B, V) and updates the stream's cache."""
    name = "llm_prefill" if j == 0 else "llm_decode"
    with phase(name):
        kw = s.step_inputs(j, g.fwd)
        kw[g.fwd.cache_kw] = s.cache
        out = g.model(input_ids=step_input, use_cache=True, **kw)
        logits = out.logits[:, -1, :]
    s.cache = output_cache(out)
    return logits


def _capture_step(g, s):
    """Capture one step of session `s` and submit it (one request)."""
    # The next input is a view of the previous token, captured here so it
    # belongs to this session's request, and inside the step's phase so the
    # view is a decode node (outside, the causal LM's own phase, prefill,
    # would annotate it and a decode slice would run prefill work).
    with phase("llm_prefill" if s.step == 0 else "llm_decode"):
        step_input = s.ids if s.step == 0 else s.nxt[:, None]
    s.ids = None
    logits = _forward(g, s, s.step, step_input)
    g.vocab = logits.shape[-1]
    with phase("llm_prefill" if s.step == 0 else "llm_decode"):
        s.cands = g.sampler.candidates(logits)
    # Only the cache and the candidates outlive the step; dropping the rest
    # before the request is built keeps the logits off the executor's object
    # table.
    del logits, step_input
    RUNTIME.submit([c._value for c in s.cands if isinstance(c, RemoteTensor)])


def _finish_step(g, s):
    # The previous state is dropped before the bind, so that the session
    # owns exactly the new cache (the old objects are freed by the bind).
    # A bind that fails leaves the step uncommitted: the next round finds
    # the stream's state on a lost rank and rebuilds it to its last step.
    s.snap = None
    host, s.done = g.stop.apply(s.done, s.host)
    # The next step's input: the argmax stays on the executor; a drawn token,
    # or a batch with finished rows (fed pad_token_id, as transformers
    # does), goes up from the host (a few bytes).
    if g.sampler.do_sample or not torch.equal(host, s.host):
        s.nxt = host.to(DEVICE)
    else:
        s.nxt = s.cands[0]
    s.cands = None
    RUNTIME.bind_session(s.session, [t._value for t in cache_tensors(s.cache)],
                         [s.nxt._value] if isinstance(s.nxt, RemoteTensor) else [])
    plen = s.prompt.shape[1]
    start, length = (0, plen) if s.step == 0 else (plen + s.step - 1, 1)
    s.lineage.append((s.step, PHASE_CODE["llm_prefill" if s.step == 0 else "llm_decode"],
                      start, length, s.nodes_before,
                      CHECKPOINTS.stats["last_epoch"] or 0))
    s.tokens.append(host)
    s.committed = True
    if g.on_token is not None:
        g.on_token(s.index, s.step, host.tolist(), s.session)
    s.step += 1


# ---- in-job recovery -----------------------------------------------------------

def _on_lost_rank(s):
    """True when state the stream's step depends on was on a lost executor."""
    layers, nxt, _, _ = s.snap if s.snap is not None else _snapshot(s)
    vals = [t._value for _, saved in layers for t in (saved.get("keys"), saved.get("values"))
            if isinstance(t, RemoteTensor)]
    if isinstance(nxt, RemoteTensor):
        vals.append(nxt._value)
    sess = RUNTIME.sessions.get(s.session)
    if sess is not None and sess.rank is not None and RUNTIME.ranks[sess.rank].lost:
        return True
    return any(v.uid in RUNTIME.lost_uids or
               (v.uid in RUNTIME.uid_rank and RUNTIME.ranks[RUNTIME.uid_rank[v.uid]].lost)
               for v in vals)


def _recover_round(g, active, err):
    """After an executor was lost mid-round: streams that committed keep
    their step; a stream whose state is intact finishes its step (or is
    rolled back to redo it next round); a stream whose state was on the lost
    executor is rebuilt on a live one from its last checkpoint and lineage."""
    RUNTIME.discard_pending(err)
    if not _can_recover():
        raise err
    _say(f"{err}; recovering its sessions")
    pending = [s for s in active if not s.committed and
               (s.snap is not None or _on_lost_rank(s))]
    while pending:
        s = pending.pop(0)
        try:
            if s.snap is None or _on_lost_rank(s):      # (None: a recovery cut short)
                _recover_stream(g, s)
            elif s.cands is not None and all(
                    not isinstance(c, RemoteTensor) or c._value.state in (INFLIGHT, RESIDENT)
                    for c in s.cands):
                _collect(g, s)
                _finish_step(g, s)
            else:
                _rollback(s)
        except ExecutorLostError as e:     # another loss while recovering: again
            RUNTIME.discard_pending(e)
            if not _can_recover():
                raise
            _say(f"{e}; recovering its sessions")
            pending.insert(0, s)


def _can_recover():
    """A live executor (a spare included) is left in the group sessions are
    recovered to."""
    group = RUNTIME._served_group("llm_decode") or next(iter(RUNTIME.groups))
    return any(RUNTIME.ranks[r].lost is None for r in RUNTIME.groups[group])


def _recover_stream(g, s):
    """Rebuild the stream's KV cache at its last committed step on a live
    executor: load its last checkpoint (if any), then replay the lineage
    records after it with the recorded tokens."""
    CHECKPOINTS.stats["recoveries"] += 1
    s.snap = None
    old = s.session
    RUNTIME.end_session(old)           # its executor is gone: forgets, asks nobody
    s.session = RUNTIME.new_session()
    s.cache = _new_cache(s.config)
    s.nxt = s.ids = s.cands = None
    start = 0
    rec = s.ckpt
    if rec is not None and rec.step <= s.step:
        try:
            _load_cache(s, rec)
            start = rec.step
            CHECKPOINTS.stats["recovered_from_checkpoint"] += 1
        except ExecutorLostError:
            raise
        except GenieError as e:
            _say(f"genie: recovery of session {old}: cannot load its checkpoint ({e}); "
                 "replaying it from the prompt")
            RUNTIME.end_session(s.session)
            s.session = RUNTIME.new_session()
            s.cache = _new_cache(s.config)
    for j in range(start, s.step):
        _replay_step(g, s, j, verify=not g.sampler.do_sample)
    s.nxt = s.tokens[s.step - 1].to(DEVICE) if s.step > 0 else None
    if s.step == 0:
        s.ids = s.prompt.to(DEVICE)
    _say(f"genie: session {old} resumed as session {s.session} on executor rank "
         f"{RUNTIME.sessions[s.session].rank} at step {s.step}"
         + (f" (checkpoint epoch {rec.epoch}, {s.step - start} steps replayed)"
            if start > 0 else f" ({s.step} steps replayed from the prompt)"))


def _replay_step(g, s, j, verify):
    """Re-run step j with its recorded input; its output token is the one
    recorded (checked against the recomputed one when decoding is greedy,
    on the rows that had not finished: the others record padding)."""
    if j == 0:
        step_input = s.prompt.to(DEVICE)
        CHECKPOINTS.stats["replayed_prefills"] += 1
    else:
        step_input = s.tokens[j - 1][:, None].to(DEVICE)
    CHECKPOINTS.stats["replayed_steps"] += 1
    logits = _forward(g, s, j, step_input)
    with phase("llm_prefill" if j == 0 else "llm_decode"):
        tok = logits.argmax(dim=-1) if verify else None
    del logits, step_input
    if tok is not None:
        got = torch.tensor(tok.tolist(), dtype=torch.int64)
        want = s.tokens[j]
        live = ~_done_before(s, j, g.stop)
        if not torch.equal(got[live], want[live]):
            raise GenieError(f"genie: lineage replay of session {s.session} diverged at step {j}: "
                             f"recorded {want.tolist()}, recomputed {got.tolist()}")
    else:
        RUNTIME.submit()
    RUNTIME.bind_session(s.session, [t._value for t in cache_tensors(s.cache)], [])


def _done_before(s, j, stop):
    """Rows that had finished before step j (their step-j token is padding)."""
    done = torch.zeros(s.prompt.shape[0], dtype=torch.bool)
    if stop.eos is None:
        return done
    for t in s.tokens[:j]:
        done |= torch.isin(t, stop.eos_t)
    return done


_RESTORABLE_LAYERS = ("DynamicLayer", "DynamicSlidingWindowLayer")


def _load_cache(s, rec):
    """Read a checkpointed KV cache into objects on a live executor and make
    them the stream's cache."""
    rank = RUNTIME.restore_rank()
    t0 = time.perf_counter()
    vals, res = RUNTIME.restore_objects(s.session, rank, rec.path, rec.file_session, rec.kv)
    st = CHECKPOINTS.stats
    st["restore_s"] += time.perf_counter() - t0
    st["restore_bytes"] += int(res["bytes"])
    cache = _new_cache(s.config)
    layers = getattr(cache, "layers", None)
    if layers is None or len(layers) * 2 != len(vals):
        raise GenieError(f"genie: the checkpoint holds {len(vals) // 2} cache layers, the model "
                         f"has {len(layers or [])}")
    # Positions the cache has consumed at step `rec.step`: the prompt, then
    # one token per decode step.  A sliding-window layer holds only the last
    # window - 1 of them, and counts them all.
    consumed = s.prompt.shape[1] + max(rec.step - 1, 0)
    for i, layer in enumerate(layers):
        kind = type(layer).__name__
        if kind not in _RESTORABLE_LAYERS:
            raise GenieError(f"genie: cannot restore a {kind} cache layer "
                             f"(only {' and '.join(_RESTORABLE_LAYERS)})")
        k, v = RemoteTensor(vals[2 * i]), RemoteTensor(vals[2 * i + 1])
        if kind == "DynamicSlidingWindowLayer":
            want = min(consumed, layer.sliding_window - 1)
            if k.shape[-2] != want:
                raise GenieError(f"genie: checkpointed cache layer {i} holds {k.shape[-2]} "
                                 f"positions, its sliding window keeps {want}")
            layer.cumulative_length = consumed
        elif k.shape[-2] != consumed:
            raise GenieError(f"genie: checkpointed cache layer {i} holds {k.shape[-2]} "
                             f"positions, the session has consumed {consumed}")
        layer.dtype, layer.device = k.dtype, k.device
        layer.keys, layer.values = k, v
        layer.is_initialized = True
    s.cache = cache
    s.ckpt = rec


# ---- checkpoints and restore across jobs ----------------------------------------

def _checkpoint_now(g, running, reason):
    """Write a checkpoint of the running streams; an executor lost while
    writing is recovered from and the checkpoint tried once more."""
    for attempt in (0, 1):
        try:
            CHECKPOINTS.write(RUNTIME, running, reason)
            return
        except ExecutorLostError as e:
            for s in running:
                s.committed = False
                s.snap = _snapshot(s)
            _recover_round(g, running, e)
            if attempt == 1:
                raise


def _restore_stream(s, g):
    """If the restore directory has this stream's session, continue it from
    there: tokens, sampler state, lineage and the KV cache (read by a live
    executor).  A session whose data fails to load is taken from an older
    epoch; with none left the stream starts from its prompt, saying so."""
    max_new_tokens = g.max_new_tokens
    for ep, sd in CHECKPOINTS.restore_candidates(s.key):
        CHECKPOINTS.restore_taken.add((ep["epoch"], sd["id"]))
        b, n = sd["batch"], sd["n_tokens"]
        toks = torch.frombuffer(bytearray(sd["tokens"]), dtype=torch.int64).reshape(b, n)
        plen, step = sd["prompt_len"], sd["step"]
        if plen != s.prompt.shape[1] or not torch.equal(toks[:, :plen], s.prompt.to(torch.int64)) \
                or n - plen != step:
            continue                   # a key collision, not this prompt
        rec = CheckpointRecord(os.path.join(ep["dir"], sd["file"]), sd["id"], step, sd["kv"],
                               ep["epoch"])
        if step < max_new_tokens:
            try:
                _load_cache(s, rec)
            except ExecutorLostError:
                raise
            except GenieError as e:
                CHECKPOINTS.stats["restore_fallbacks"] += 1
                _say(f"{e}; trying an older checkpoint for prompt {s.index}")
                RUNTIME.end_session(s.session)
                s.session = RUNTIME.new_session()
                s.cache = _new_cache(s.config)
                continue
        s.tokens = [toks[:, plen + j].clone() for j in range(min(step, max_new_tokens))]
        s.step = len(s.tokens)
        lin = sd["lineage"] or b""
        s.lineage = [tuple(r) for r in torch.frombuffer(bytearray(lin), dtype=torch.int64)
                     .reshape(-1, LINEAGE_COLS).tolist()] if lin else []
        if s.gen is not None and sd["rng"]:
            s.gen.set_state(torch.frombuffer(bytearray(sd["rng"]), dtype=torch.uint8))
        if g.stop.eos is not None:
            for t in s.tokens:
                s.done |= torch.isin(t, g.stop.eos_t)
        s.ids = None
        s.nxt = s.tokens[-1].to(DEVICE) if s.step < max_new_tokens else None
        s.restored_from = rec
        CHECKPOINTS.stats["restored_sessions"] += 1
        return True
    if CHECKPOINTS.restore_root is not None and CHECKPOINTS.restore_epochs and \
            any(sd["key"] == s.key for ep in CHECKPOINTS.restore_epochs for sd in ep["sessions"]):
        _say(f"genie: restore: no usable checkpoint of prompt {s.index}; generating it from "
             "the prompt")
    return False


def _report_restored(admitted):
    done = [s for s in admitted if s.restored_from is not None]
    if not done:
        return
    st = CHECKPOINTS.stats
    steps = sorted(s.step for s in done)
    _say(f"genie: restore: {len(done)} sessions continue at steps {steps[0]}..{steps[-1]} "
         f"({st['restore_bytes'] / 1e6:.2f} MB of KV cache read in {st['restore_s']:.3f} s)")

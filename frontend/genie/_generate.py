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

import os
import sys
import time
from collections import deque

import torch

from ._annotate import model_context, phase
from ._capture import RemoteTensor, cache_tensors
from ._device import DEVICE
from ._checkpoint import (CHECKPOINTS, LINEAGE_COLS, PHASE_CODE, CheckpointRecord,
                          model_fingerprint, stream_key)
from ._errors import ExecutorLostError, GenieError
from ._graph import INFLIGHT, RESIDENT
from ._runtime import RUNTIME


def _say(msg):
    print(msg, file=sys.stderr, flush=True)


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
    """One prompt's generation: its state on the executors (session, cache,
    next token) and its lineage on the host (prompt, tokens, step records)."""

    def __init__(self, index, input_ids, config, do_sample, seed):
        ids = input_ids if input_ids.dim() == 2 else input_ids[None]
        self.index = index
        self.prompt = ids.cpu() if isinstance(ids, RemoteTensor) else ids.detach().clone()
        self.ids = ids if isinstance(ids, RemoteTensor) else ids.to(torch.int64).to(DEVICE)
        self.gen = torch.Generator().manual_seed(seed if seed is not None else 0) \
            if do_sample else None
        self.config = config
        self.cache = _new_cache(config)
        self.step = 0
        self.nxt = None            # this step's token ids (B,), on the executor
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
    # One generation captures and runs at a time (see Runtime.lock).
    with RUNTIME.lock:
        return _run_locked(model, prompts, max_new_tokens, do_sample, seed, temperature, top_k,
                           eos_token_id, on_token, max_sessions)


def _run_locked(model, prompts, max_new_tokens, do_sample, seed, temperature, top_k,
                eos_token_id, on_token, max_sessions):
    _validate(model, max_new_tokens, temperature)
    streams = [_Stream(i, p, model.config, do_sample, seed) for i, p in enumerate(prompts)]
    if max_new_tokens == 0:
        return [s.prompt for s in streams]
    if RUNTIME.cluster is None:
        RUNTIME.init()
    model_fp = model_fingerprint(model)
    for s in streams:
        s.model_fp = model_fp
        s.key = stream_key(model_fp, s.prompt, do_sample, seed, temperature, top_k, eos_token_id)
    sampling = (do_sample, temperature, top_k)
    waiting, active = deque(streams), []
    ckpt = CHECKPOINTS
    try:
        with torch.no_grad(), model_context(model), _generating(ckpt):
            while waiting or active:
                admitted = []
                while waiting and (max_sessions is None or len(active) < max_sessions):
                    s = waiting.popleft()
                    s.session = RUNTIME.new_session()
                    _restore_stream(s, max_new_tokens, eos_token_id)
                    active.append(s)
                    admitted.append(s)
                _report_restored(admitted)
                live = _unfinished(active, max_new_tokens, eos_token_id)
                try:
                    _round(model, live, sampling, on_token, eos_token_id)
                except ExecutorLostError as e:
                    _recover_round(model, live, e, sampling, on_token, eos_token_id)
                running = _unfinished(active, max_new_tokens, eos_token_id)
                ckpt.steps_since += 1
                reason = ckpt.due()
                if reason is not None:
                    _checkpoint_now(model, running, reason, sampling, on_token, eos_token_id)
                    if reason == "SIGTERM":
                        raise SystemExit(143)
                still = []
                for s in active:
                    if s in running:
                        still.append(s)
                    else:
                        RUNTIME.end_session(s.session)
                        s.session = None
                        s.cache = s.nxt = None
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


def _unfinished(active, max_new_tokens, eos_token_id):
    return [s for s in active if s.step < max_new_tokens and
            not (eos_token_id is not None and bool(s.done.all()))]


class _generating:
    """Marks a generation in progress: signals wait for a step boundary."""

    def __init__(self, ckpt):
        self.ckpt = ckpt

    def __enter__(self):
        self.ckpt.generating += 1

    def __exit__(self, *exc):
        self.ckpt.generating -= 1


def _round(model, streams, sampling, on_token, eos_token_id):
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
        _capture_step(model, s, *sampling)
        s.nodes_before = RUNTIME.counters["nodes_sent"] - s.nodes_before
    # Collect every token first: binding needs the executors idle (frees of
    # the previous step's cache go out first).
    for s in streams:
        s.host = torch.tensor(s.nxt.tolist(), dtype=torch.int64)
    for s in streams:
        _finish_step(s, on_token, eos_token_id)


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
    s.snap = None


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
    # The previous state is dropped before the bind, so that the session
    # owns exactly the new cache (the old objects are freed by the bind).
    # A bind that fails leaves the step uncommitted: the next round finds
    # the stream's state on a lost rank and rebuilds it to its last step.
    s.snap = None
    RUNTIME.bind_session(s.session, [t._value for t in cache_tensors(s.cache)],
                         [s.nxt._value] if isinstance(s.nxt, RemoteTensor) else [])
    host = s.host
    if eos_token_id is not None:
        host = torch.where(s.done, torch.full_like(host, eos_token_id), host)
        s.done |= host == eos_token_id
    plen = s.prompt.shape[1]
    start, length = (0, plen) if s.step == 0 else (plen + s.step - 1, 1)
    s.lineage.append((s.step, PHASE_CODE["llm_prefill" if s.step == 0 else "llm_decode"],
                      start, length, s.nodes_before,
                      CHECKPOINTS.stats["last_epoch"] or 0))
    s.tokens.append(host)
    s.committed = True
    if on_token is not None:
        on_token(s.index, s.step, host.tolist(), s.session)
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


def _recover_round(model, active, err, sampling, on_token, eos_token_id):
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
                _recover_stream(model, s, sampling)
            elif isinstance(s.nxt, RemoteTensor) and s.nxt._value.state in (INFLIGHT, RESIDENT) \
                    and s.nxt is not s.snap[1]:
                s.host = torch.tensor(s.nxt.tolist(), dtype=torch.int64)
                _finish_step(s, on_token, eos_token_id)
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


def _recover_stream(model, s, sampling):
    """Rebuild the stream's KV cache at its last committed step on a live
    executor: load its last checkpoint (if any), then replay the lineage
    records after it with the recorded tokens."""
    CHECKPOINTS.stats["recoveries"] += 1
    s.snap = None
    old = s.session
    RUNTIME.end_session(old)           # its executor is gone: forgets, asks nobody
    s.session = RUNTIME.new_session()
    s.cache = _new_cache(s.config)
    s.nxt = s.ids = None
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
    do_sample = sampling[0]
    for j in range(start, s.step):
        _replay_step(model, s, j, verify=not do_sample)
    s.nxt = s.tokens[s.step - 1].to(DEVICE) if s.step > 0 else None
    if s.step == 0:
        s.ids = s.prompt.to(DEVICE)
    _say(f"genie: session {old} resumed as session {s.session} on executor rank "
         f"{RUNTIME.sessions[s.session].rank} at step {s.step}"
         + (f" (checkpoint epoch {rec.epoch}, {s.step - start} steps replayed)"
            if start > 0 else f" ({s.step} steps replayed from the prompt)"))


def _replay_step(model, s, j, verify):
    """Re-run step j with its recorded input; its output token is the one
    recorded (checked against the recomputed one when decoding is greedy)."""
    if j == 0:
        name, step_input = "llm_prefill", s.prompt.to(DEVICE)
        CHECKPOINTS.stats["replayed_prefills"] += 1
    else:
        name, step_input = "llm_decode", s.tokens[j - 1][:, None].to(DEVICE)
    CHECKPOINTS.stats["replayed_steps"] += 1
    with phase(name):
        out = model(input_ids=step_input, past_key_values=s.cache, use_cache=True)
        tok = out.logits[:, -1, :].argmax(dim=-1) if verify else None
    s.cache = out.past_key_values
    del out, step_input
    if tok is not None:
        got = tok.tolist()
        want = s.tokens[j].tolist()
        if got != want:
            raise GenieError(f"genie: lineage replay of session {s.session} diverged at step {j}: "
                             f"recorded {want}, recomputed {got}")
    else:
        RUNTIME.submit()
    RUNTIME.bind_session(s.session, [t._value for t in cache_tensors(s.cache)], [])


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
    for i, layer in enumerate(layers):
        if type(layer).__name__ != "DynamicLayer":
            raise GenieError(f"genie: cannot restore a {type(layer).__name__} cache layer "
                             "(only DynamicLayer)")
        k, v = RemoteTensor(vals[2 * i]), RemoteTensor(vals[2 * i + 1])
        layer.dtype, layer.device = k.dtype, k.device
        layer.keys, layer.values = k, v
        layer.is_initialized = True
    s.cache = cache
    s.ckpt = rec


# ---- checkpoints and restore across jobs ----------------------------------------

def _checkpoint_now(model, running, reason, sampling, on_token, eos_token_id):
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
            _recover_round(model, running, e, sampling, on_token, eos_token_id)
            if attempt == 1:
                raise


def _restore_stream(s, max_new_tokens, eos_token_id):
    """If the restore directory has this stream's session, continue it from
    there: tokens, sampler state, lineage and the KV cache (read by a live
    executor).  A session whose data fails to load is taken from an older
    epoch; with none left the stream starts from its prompt, saying so."""
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
        if eos_token_id is not None:
            for t in s.tokens:
                s.done |= t == eos_token_id
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

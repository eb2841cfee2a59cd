#!/usr/bin/env python3
"""Example app: greedy (or sampled) generation with a GPT-2 model through Genie.

The program is ordinary PyTorch + transformers code; the only Genie-specific
lines are ``import genie``, ``model.to("remote_accelerator:0")`` and
``genie.generate_many(...)``, which generates for all prompts concurrently.
Models are built from transformers configs with random weights from a fixed
seed (nothing is downloaded).  Run it as is (embedded mode) or under a
launcher (``genie-launch --phases prefill:2,decode:1 -- python generate.py``).

  --check   also run plain PyTorch on the same weights and exit 1 unless the
            tokens are identical for every prompt
  --stats   print genie.get_stats() as JSON at the end; in the distributed
            mode also a summary: prefill requests per prefill rank, each
            executor's CUDA_VISIBLE_DEVICES and, per session, the KV bytes handed to the decode rank against the KV
            cache's size.  With --check, exit 1 unless every session's KV
            cache moved exactly once, with exactly its size, and every
            prefill rank did prefill work (given as many prompts as ranks).
"""

import argparse
import copy
import json
import sys
import time

import torch

import genie  # first import: adds the remote_accelerator device

MODELS = {
    # initializer_range 0.2: random weights that give varied tokens, not one
    # token repeated, so --check compares something meaningful.
    "gpt2-tiny": dict(n_layer=2, n_embd=128, n_head=4, initializer_range=0.2),
    "gpt2-small": dict(initializer_range=0.1),   # the 124M configuration
}


def build_model(name, seed):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(**MODELS[name])
    return GPT2LMHeadModel(cfg).eval()


def make_prompts(n, vocab, seed):
    g = torch.Generator().manual_seed(seed + 1)
    prompts = []
    for i in range(n):
        length = 4 + (i * 5) % 13           # 4..16 tokens, varied
        prompts.append(torch.randint(0, vocab, (1, length), generator=g))
    return prompts


def reference_greedy(model, ids, new_tokens):
    """Plain PyTorch greedy decoding with a KV cache (the baseline)."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    out_tokens, step_input = [], ids
    with torch.no_grad():
        for _ in range(new_tokens):
            out = model(input_ids=step_input, past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            nxt = out.logits[:, -1, :].argmax(dim=-1)
            out_tokens.append(int(nxt[0]))
            step_input = nxt[:, None]
    return out_tokens


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(MODELS), default="gpt2-tiny")
    ap.add_argument("--prompts", type=int, default=2, help="number of prompts (>= 1)")
    ap.add_argument("--new-tokens", type=int, default=32, help="tokens to generate per prompt")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check", action="store_true", help="compare with plain PyTorch")
    ap.add_argument("--stats", action="store_true", help="print genie.get_stats() as JSON")
    args = ap.parse_args(argv)
    if args.prompts < 1 or args.new_tokens < 1:
        ap.error("--prompts and --new-tokens must be >= 1")

    model = build_model(args.model, args.seed)
    reference = copy.deepcopy(model) if args.check else None
    prompts = make_prompts(args.prompts, model.config.vocab_size, args.seed)

    info = genie.init()
    print(f"genie: mode={info['mode']} backend={info['backend']} model={args.model} "
          f"prompts={args.prompts} new_tokens={args.new_tokens}", flush=True)
    model.to("remote_accelerator:0")

    failures = 0
    t_torch = 0.0
    t0 = time.perf_counter()
    try:
        outs = genie.generate_many(model, prompts, max_new_tokens=args.new_tokens)
    except genie.GenieError as e:          # one line, no stack: the message says it all
        print(e, file=sys.stderr)
        return 1
    t_genie = time.perf_counter() - t0
    for i, (ids, out) in enumerate(zip(prompts, outs)):
        ours = out[0, ids.shape[1]:].tolist()
        print(f"prompt {i} genie:   {ours}", flush=True)
        if reference is not None:
            t0 = time.perf_counter()
            theirs = reference_greedy(reference, ids, args.new_tokens)
            t_torch += time.perf_counter() - t0
            print(f"prompt {i} pytorch: {theirs}")
            ok = ours == theirs
            failures += not ok
            print(f"prompt {i}: {'match' if ok else 'MISMATCH'}", flush=True)
    print(f"genie: {args.prompts} prompts x {args.new_tokens} tokens in {t_genie:.2f} s"
          + (f" (pytorch {t_torch:.2f} s)" if reference is not None else ""))
    problems = []
    if args.stats:
        stats = genie.get_stats()
        print(json.dumps(stats, indent=2))
        if stats["mode"] == "distributed":
            problems = distributed_summary(stats, args.prompts)
    if reference is not None:
        if failures:
            print(f"genie: {failures} of {args.prompts} prompts differ from PyTorch", file=sys.stderr)
            return 1
        print(f"all {args.prompts} prompts match")
        for p in problems:
            print(f"genie: {p}", file=sys.stderr)
        if problems:
            return 1
    return 0


PREFILL_GROUPS = ("prefill", "llm_prefill")
DECODE_GROUPS = ("decode", "llm_decode")


def distributed_summary(stats, n_prompts):
    """Print where prefill ran and what each session's KV handoff moved;
    return the problems found (empty when the run was disaggregated as the
    spec asks)."""
    problems = []
    execs = stats["executors"]
    prefill = [e for e in execs if e["phase"] in PREFILL_GROUPS]
    # Sessions restored from a checkpoint (--genie-restore) were not prefilled
    # here and their KV cache was read from a file, not handed over.
    restored = {sid for sid, s in stats["sessions"].items() if s.get("restored")}
    n_prompts -= len(restored)
    has_decode = any(e["phase"] in DECODE_GROUPS for e in execs)
    for e in prefill:
        n = e["driver_requests"].get("llm_prefill", 0)
        compute = e.get("phase_compute_s", {}).get("llm_prefill", 0.0)
        print(f"prefill rank {e['rank']}: {n} requests, {compute:.4f} s prefill compute "
              f"({e['host']} pid {e['pid']})")
        if n_prompts > 0 and n_prompts >= len(prefill) and not (n > 0 and compute > 0):
            problems.append(f"prefill rank {e['rank']} did no prefill work")
    for e in execs:
        # Under srun --genie-phases each executor sees only its own slice's GPU.
        cvd = e.get("cuda_visible_devices")
        print(f"executor rank {e['rank']} ({e['phase']} slice {e.get('slice')}): "
              f"cuda_visible_devices={'(unset)' if cvd is None else cvd}")
    colocated = stats.get("kv_mode", "colocated") == "colocated"
    for sid, s in sorted(stats["sessions"].items()):
        moved, cache, n = s["kv_bytes_moved"], s["kv_cache_bytes"], s["handoffs"]
        where = f"rank {s['prefill_rank']} -> rank {s['decode_rank']}"
        if sid in restored:
            print(f"session {sid}: restored from a checkpoint onto rank {s['decode_rank']} "
                  f"(kv cache {cache} bytes read from the file)")
            continue
        if not colocated:
            print(f"session {sid}: blind mode, {moved} KV bytes through the driver "
                  f"(kv cache {cache} at the end)")
            continue
        if moved == cache and n == 1:
            print(f"session {sid}: {where}: kv bytes moved {moved} == kv cache {cache} (once)")
        else:
            print(f"session {sid}: {where}: kv bytes moved {moved}, kv cache {cache}, "
                  f"{n} handoffs")
            if has_decode:
                problems.append(f"session {sid} moved {moved} KV bytes in {n} handoffs; "
                                f"its KV cache is {cache} bytes and should move once")
    return problems


if __name__ == "__main__":
    sys.exit(main())

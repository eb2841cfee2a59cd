#!/usr/bin/env python3
"""Bytes on the wire per decode token: co-located KV cache vs "blind" mode.

  .venv/bin/python bench/bench_kv_bytes.py [--model gpt2-small] [--tokens 8]

Runs one genie-launch job per mode (prefill:1,decode:1, kv_mode colocated,
then blind).  In each job the driver generates greedily from prompts of 128,
512 and 1024 tokens and counts, at the transport, the bytes on every link of
the driver between the first token (after prefill and the one KV handoff) and
the last one, divided by the number of decode steps.  Blind mode ships the
KV cache from the decode slice to the driver and back every step; co-located
mode moves the step's plan, the token and the logits' argmax.

Prints a table with the ratio blind / co-located per context length (target:
>= 500x at 1024).  The tokens of both modes are compared with each other.
"""

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker(args):
    import torch

    import genie
    from genie._runtime import RUNTIME

    sys.path.insert(0, os.path.join(ROOT, "jobs", "examples"))
    from generate import build_model

    model = build_model(args.model, 0).to("remote_accelerator:0")
    # Warm-up: registers the weights on both ranks (lazily, at first use),
    # so the counted steps carry only per-token traffic.
    genie.generate(model, torch.tensor([[1, 2, 3]]), max_new_tokens=2)
    results = {}
    for ctx in args.ctx:
        g = torch.Generator().manual_seed(ctx)
        # The decode steps run with KV lengths ctx - tokens .. ctx - 1 (GPT-2
        # has 1024 positions, so the prompt leaves room for the new tokens).
        plen = ctx - args.tokens
        prompt = torch.randint(0, model.config.vocab_size, (1, plen), generator=g)
        marks = {}

        def on_token(step, toks, session):
            if step == 0:
                marks["start"] = _link_bytes(RUNTIME)

        out = genie.generate(model, prompt, max_new_tokens=args.tokens, on_token=on_token)
        end = _link_bytes(RUNTIME)
        steps = args.tokens - 1
        results[ctx] = {"bytes_per_token": (end - marks["start"]) / steps,
                        "tokens": out[0, plen:].tolist()}
    print("BENCH-RESULT " + json.dumps({"mode": RUNTIME.kv_mode, "results": results}), flush=True)


def _link_bytes(runtime):
    links = runtime.cluster.link_stats()
    return sum(l["bytes_sent"] + l["bytes_received"] for l in links.values())


def launch(mode, args):
    launcher = os.path.join(ROOT, "build", "bin", "genie-launch")
    cmd = [launcher, "--phases", "prefill:1,decode:1", "--kv-mode", mode, "--",
           sys.executable, os.path.abspath(__file__), "--worker", "--model", args.model,
           "--tokens", str(args.tokens), "--ctx", *map(str, args.ctx)]
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "frontend"), HF_HUB_OFFLINE="1")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH-RESULT "):
            return json.loads(line[len("BENCH-RESULT "):])
    sys.stderr.write(proc.stdout + proc.stderr)
    raise SystemExit(f"bench_kv_bytes: the {mode} job failed (exit {proc.returncode})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gpt2-small")
    ap.add_argument("--tokens", type=int, default=6, help="tokens generated per prompt (>= 2)")
    ap.add_argument("--ctx", type=int, nargs="+", default=[128, 512, 1024])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.tokens < 2:
        ap.error("--tokens must be >= 2")
    if args.worker:
        return worker(args)
    co = launch("colocated", args)["results"]
    bl = launch("blind", args)["results"]
    print(f"bench_kv_bytes: {args.model}, prefill:1,decode:1, {args.tokens - 1} decode steps per prompt")
    print("| KV length | co-located B/token | blind B/token | blind / co-located | same tokens |")
    print("|---|---|---|---|---|")
    for ctx in args.ctx:
        c, b = co[str(ctx)], bl[str(ctx)]
        print(f"| {ctx} | {c['bytes_per_token']:.0f} | {b['bytes_per_token']:.0f} | "
              f"{b['bytes_per_token'] / c['bytes_per_token']:.0f}x | "
              f"{'yes' if c['tokens'] == b['tokens'] else 'NO'} |")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Bytes on the wire per decode token: co-located KV cache vs "blind" mode.

  .venv/bin/python bench/bench_kv_bytes.py [--model gpt2-small] [--tokens 6] [--ctx 128 512 1024]

Runs one genie-launch job per mode (prefill:1,decode:1, kv_mode colocated,
then blind).  In each job the driver generates --tokens tokens greedily
from prompts of --ctx minus --tokens tokens (the decode steps run at KV
lengths just under --ctx; GPT-2 has 1024 positions) and counts, at the
transport, the bytes on every link of the driver (get_stats()["links"])
between the first token (after prefill and the one KV handoff) and the last
one, divided by the number of decode steps.  Blind mode ships the KV cache
from the decode slice to the driver and back every step; co-located mode
moves the step's plan, the token and the logits' argmax.  The tokens of
both modes are compared with each other.

The co-located job also reports each prompt's KV handoff from its session
stats: `kv_bytes_moved`, the bytes the destination's transport received by
RMA for the handoff, next to `kv_cache_bytes`, the cache's size computed
from its tensors' shapes; they must be equal, and a short transfer shows as
a difference.

Prints a markdown table (paste it into docs/benchmarks.md as it is) with
the ratio blind / co-located per context length, and the design target's
verdict: at most 256 B on the driver's wire per co-located decode token.
The byte counts do not depend on timing.
"""

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchinfo import stamp, table  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_B_PER_TOKEN = 256      # design target, co-located


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
                marks["session"] = session

        out = genie.generate(model, prompt, max_new_tokens=args.tokens, on_token=on_token)
        end = _link_bytes(RUNTIME)
        steps = args.tokens - 1
        sess = genie.get_stats()["sessions"][marks["session"]]
        results[ctx] = {"bytes_per_token": (end - marks["start"]) / steps,
                        "tokens": out[0, plen:].tolist(),
                        "kv_bytes_moved": sess["kv_bytes_moved"],
                        "kv_cache_bytes": sess["kv_cache_bytes"], "handoffs": sess["handoffs"]}
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
    print(f"bench_kv_bytes: started {stamp()}", flush=True)
    co = launch("colocated", args)["results"]
    bl = launch("blind", args)["results"]
    rows = []
    for ctx in args.ctx:
        c, b = co[str(ctx)], bl[str(ctx)]
        moved, cache = c["kv_bytes_moved"], c["kv_cache_bytes"]
        rows.append((ctx, f"{c['bytes_per_token']:.0f}", f"{b['bytes_per_token']:.0f}",
                     f"{b['bytes_per_token'] / c['bytes_per_token']:.0f}x",
                     "yes" if c["tokens"] == b["tokens"] else "NO", c["handoffs"], moved, cache,
                     "yes" if moved == cache else f"NO ({moved - cache:+d})"))
    print(f"\n{args.model}, prefill:1,decode:1, {args.tokens - 1} decode steps per prompt; bytes "
          "on the driver's links per decode step, counted at the transport\n")
    print(table(("KV length", "co-located B/token", "blind B/token", "blind / co-located",
                 "same tokens", "handoffs", "handoff: bytes received by RMA (kv_bytes_moved)",
                 "KV cache from shapes (kv_cache_bytes)", "equal"), rows))
    worst = max(co[str(ctx)]["bytes_per_token"] for ctx in args.ctx)
    print(f"\ntarget <= {TARGET_B_PER_TOKEN} B per co-located decode token: "
          f"{'met' if worst <= TARGET_B_PER_TOKEN else 'NOT MET'} ({worst:.0f} B)")
    print(f"bench_kv_bytes: ended {stamp()}")
    # Different tokens, or a handoff that moved other than the cache's bytes,
    # is a fault, not a slow result.
    return 0 if all(r[4] == "yes" and r[8] == "yes" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

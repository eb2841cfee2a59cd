#!/usr/bin/env python3
"""Executor compute vs PyTorch eager, on the same cores, same threads.

    bench_executor.py [--runs N] [--repeats N] [--threads N] [--model gpt2-small|gpt2-tiny]

Workloads (GPT-2 small, the 124M configuration, random weights from seed 0,
fp32, batch 1):
  prefill   one forward over T=128 prompt tokens, last-position logits
  decode    one step on a single token with a KV cache of length 128

Each run is two fresh processes, one after the other:
  1. "pytorch eager, own process": PyTorch alone (genie never imported), the
     same model and inputs under torch.no_grad(), torch.set_num_threads equal
     to the executor's threads, --repeats timed calls after --warmup;
  2. the Genie process (embedded executor, CPU backend), which interleaves
     (ours, theirs, ours, ...):
     "genie executor"  one request inside the C executor alone: the SRG bytes
                       decoded and validated, inputs uploaded, every node run,
                       the output copied back; Python capture not included;
     "pytorch eager, same process"  as in 1, but sharing the process (and
                       its cores) with the executor's thread pool;
     "genie end-to-end"  what a user sees per call: Python capture of the
                       model, the request and the result (decode: one step on
                       a resident KV cache, then the cache cropped back).
The table pools every timed call of every run: median and min-max, and the
ratio of the medians (< 1: Genie is faster); "end-to-end / executor" is the
ratio of those two medians (what capture and the request add).  rel err = |ours - PyTorch| /
|PyTorch| of the logits (the largest over the runs).  Prints a markdown
table that can be pasted into docs/benchmarks.md as it is.
"""

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchinfo import stamp, table  # noqa: E402

DEV = "remote_accelerator:0"
SHAPES = {"gpt2-small": dict(n_layer=12, n_embd=768, n_head=12),
          "gpt2-tiny": dict(n_layer=2, n_embd=128, n_head=4)}


def build(model, seed=0):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(**SHAPES[model])).eval()


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ---- PyTorch eager: the same work in both processes --------------------------------

def prefill_inputs(ref, T):
    import torch
    return torch.randint(0, ref.config.vocab_size, (1, T), generator=torch.Generator().manual_seed(1))


def decode_inputs(ref, kv_len):
    import torch
    ids = torch.randint(0, ref.config.vocab_size, (1, kv_len), generator=torch.Generator().manual_seed(2))
    return ids, torch.tensor([[42]])


def torch_prefill(ref, T):
    import torch
    ids = prefill_inputs(ref, T)

    def theirs():
        with torch.no_grad():
            return ref(ids, use_cache=False).logits[:, -1].clone()
    return theirs


def torch_decode(ref, kv_len):
    import torch
    from transformers import DynamicCache
    ids, tok = decode_inputs(ref, kv_len)
    pcache = DynamicCache(config=ref.config)
    with torch.no_grad():
        pcache = ref(input_ids=ids, past_key_values=pcache, use_cache=True).past_key_values

    def theirs():
        with torch.no_grad():
            out = ref(input_ids=tok, past_key_values=pcache, use_cache=True).logits[:, -1].clone()
        pcache.crop(-1)                                  # back to KV length kv_len (cheap view)
        return out
    return theirs


# ---- Genie ------------------------------------------------------------------------

def genie_prefill(ref, remote, T):
    import torch
    from genie._runtime import RUNTIME
    ids = prefill_inputs(ref, T)
    with torch.no_grad():
        remote(ids.to(DEV)).logits[:, -1].cpu()          # warm: weights registered
        out = remote(ids.to(DEV), use_cache=False).logits[:, -1]
    srg, inputs, keep = RUNTIME.compile_request([out._value])

    def ours():
        RUNTIME.executor.run(srg, inputs)

    def end_to_end():
        with torch.no_grad():
            remote(ids.to(DEV), use_cache=False).logits[:, -1].cpu()

    got = torch.frombuffer(RUNTIME.executor.run(srg, inputs)[0][2], dtype=torch.float32)
    return ours, end_to_end, got, keep


def genie_decode(ref, remote, kv_len):
    import torch
    from transformers import DynamicCache

    from genie._runtime import RUNTIME
    ids, tok = decode_inputs(ref, kv_len)
    with torch.no_grad():
        # A second resident cache for the end-to-end timing (capture + request),
        # cropped back to kv_len after every step like the PyTorch baseline's.
        ecache = DynamicCache(config=remote.config)
        eout = remote(input_ids=ids.to(DEV), past_key_values=ecache, use_cache=True)
        ecache = eout.past_key_values
        eout.logits[:, -1].cpu()
        rcache = DynamicCache(config=remote.config)
        rout = remote(input_ids=ids.to(DEV), past_key_values=rcache, use_cache=True)
        rcache = rout.past_key_values
        rout.logits[:, -1].cpu()                         # cache now resident on the executor
        step = remote(input_ids=tok.to(DEV), past_key_values=rcache, use_cache=True).logits[:, -1]
    srg, inputs, keep = RUNTIME.compile_request([step._value])

    def ours():
        RUNTIME.executor.run(srg, inputs)

    tok_remote = tok.to(DEV)

    def end_to_end():
        with torch.no_grad():
            remote(input_ids=tok_remote, past_key_values=ecache, use_cache=True).logits[:, -1].cpu()
        ecache.crop(-1)

    got = torch.frombuffer(RUNTIME.executor.run(srg, inputs)[0][2], dtype=torch.float32)
    return ours, end_to_end, got, keep


# ---- one process of a run -------------------------------------------------------

def workloads(args):
    return (("prefill T=%d" % args.prefill_len, "prefill", args.prefill_len),
            ("decode KV=%d" % args.kv_len, "decode", args.kv_len))


def child_pytorch(args):
    """PyTorch alone in this process: {workload: [seconds]}."""
    import torch
    torch.set_num_threads(args.threads)
    ref = build(args.model)
    out = {}
    for name, kind, n in workloads(args):
        theirs = (torch_prefill if kind == "prefill" else torch_decode)(ref, n)
        for _ in range(args.warmup):
            theirs()
        out[name] = [timed(theirs) for _ in range(args.repeats)]
    return out


def child_genie(args):
    """The executor, PyTorch in the same process and end-to-end, interleaved:
    {workload: {"ours": [...], "theirs": [...], "e2e": [...], "err": e}}."""
    import torch

    import genie
    torch.set_num_threads(args.threads)
    genie.init(threads=args.threads)
    ref = build(args.model)
    remote = copy.deepcopy(ref).to(DEV)
    out = {}
    for name, kind, n in workloads(args):
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        ours, e2e, got, keep = (genie_prefill if kind == "prefill" else genie_decode)(ref, remote, n)
        theirs = (torch_prefill if kind == "prefill" else torch_decode)(ref, n)
        want = theirs()[0]
        err = float((got - want).norm() / want.norm())
        for _ in range(args.warmup):
            ours(), theirs()
        a, b, c = [], [], []
        for _ in range(args.repeats):
            a.append(timed(ours))
            b.append(timed(theirs))
            c.append(timed(e2e))
        out[name] = {"ours": a, "theirs": b, "e2e": c, "err": err}
        del keep
    return out


def run_child(args, which):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", which, "--model", args.model,
           "--threads", str(args.threads), "--repeats", str(args.repeats),
           "--warmup", str(args.warmup), "--prefill-len", str(args.prefill_len),
           "--kv-len", str(args.kv_len)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    for line in r.stdout.splitlines():
        if line.startswith("BENCH-RESULT "):
            return json.loads(line[len("BENCH-RESULT "):])
    sys.stderr.write(r.stdout[-3000:] + r.stderr[-3000:])
    raise SystemExit(f"bench_executor: the {which} process failed (exit {r.returncode})")


def fmt(xs):
    ms = [x * 1e3 for x in xs]
    return f"{statistics.median(ms):.2f} [{min(ms):.2f}-{max(ms):.2f}]"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(SHAPES), default="gpt2-small")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--runs", type=int, default=3, help="runs (each: both processes)")
    ap.add_argument("--repeats", type=int, default=15, help="timed calls per process")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--prefill-len", type=int, default=128)
    ap.add_argument("--kv-len", type=int, default=128)
    ap.add_argument("--child", choices=["pytorch", "genie"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        res = child_pytorch(args) if args.child == "pytorch" else child_genie(args)
        print("BENCH-RESULT " + json.dumps(res), flush=True)
        return 0
    if args.runs < 1 or args.repeats < 1:
        ap.error("--runs and --repeats must be >= 1")

    print(f"bench_executor: started {stamp()}", flush=True)
    alone, together = [], []
    for _ in range(args.runs):
        alone.append(run_child(args, "pytorch"))
        together.append(run_child(args, "genie"))
    rows = []
    for name, _, _ in workloads(args):
        ours = [x for r in together for x in r[name]["ours"]]
        theirs = [x for r in together for x in r[name]["theirs"]]
        own = [x for r in alone for x in r[name]]
        e2e = [x for r in together for x in r[name]["e2e"]]
        err = max(r[name]["err"] for r in together)
        m = statistics.median
        rows.append((name, fmt(ours), fmt(theirs), f"**{m(ours) / m(theirs):.2f}**", fmt(own),
                     f"**{m(ours) / m(own):.2f}**", fmt(e2e), f"{m(e2e) / m(ours):.2f}",
                     f"{err:.1e}"))
    print(f"\nGPT-2 ({args.model}) fp32, batch 1, {args.threads} thread(s), {args.runs} runs x "
          f"{args.repeats} timed calls; ms, median [min-max] of all calls\n")
    print(table(("workload", "genie executor", "pytorch eager, same process", "ratio",
                 "pytorch eager, own process", "ratio", "genie end-to-end",
                 "end-to-end / executor", "rel err"), rows))
    print("\nratio = genie executor median / pytorch eager median (< 1: Genie is faster); "
          "end-to-end / executor = what Python capture and the request add (design target for "
          "a decode token: <= 1.05)")
    print(f"bench_executor: ended {stamp()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

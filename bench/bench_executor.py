#!/usr/bin/env python3
"""Executor compute vs PyTorch eager, side by side on the same cores.

Workloads (GPT-2 small, the 124M configuration, fp32, batch 1):
  prefill   one forward over T=128 prompt tokens, last-position logits
  decode    one step on a single token with a KV cache of length 128

"genie executor" times one request inside the C executor alone: the SRG bytes
are decoded and validated, inputs uploaded, every node run on the CPU
backend, and the output copied back.  Capture in Python is not included here;
it is reported separately as "genie end-to-end" (Python capture + request +
result) so the overhead is visible.  "pytorch eager" is the same model and inputs under
torch.no_grad() with torch.set_num_threads equal to the executor's threads.
Repeats are interleaved (ours, theirs, ours, ...) so drift hits both; the table
shows the median and the min-max spread, and the ratio of medians.
"""

import argparse
import copy
import statistics
import sys
import time

import torch

import genie
from genie._runtime import RUNTIME

DEV = "remote_accelerator:0"


def build(n_layer, n_embd, n_head, seed=0):
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(n_layer=n_layer, n_embd=n_embd, n_head=n_head)).eval()


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def prefill_case(ref, remote, T):
    ids = torch.randint(0, ref.config.vocab_size, (1, T), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        remote(ids.to(DEV)).logits[:, -1].cpu()          # warm: weights registered
        out = remote(ids.to(DEV), use_cache=False).logits[:, -1]
    srg, inputs, keep = RUNTIME.compile_request([out._value])

    def ours():
        RUNTIME.executor.run(srg, inputs)

    def theirs():
        with torch.no_grad():
            ref(ids, use_cache=False).logits[:, -1].clone()

    def end_to_end():
        with torch.no_grad():
            remote(ids.to(DEV), use_cache=False).logits[:, -1].cpu()

    check = torch.frombuffer(RUNTIME.executor.run(srg, inputs)[0][2], dtype=torch.float32)
    with torch.no_grad():
        want = ref(ids, use_cache=False).logits[0, -1]
    err = float((check - want).norm() / want.norm())
    return ours, theirs, end_to_end, err, keep


def decode_case(ref, remote, kv_len):
    from transformers import DynamicCache
    ids = torch.randint(0, ref.config.vocab_size, (1, kv_len), generator=torch.Generator().manual_seed(2))
    tok = torch.tensor([[42]])
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

    pcache = DynamicCache(config=ref.config)
    with torch.no_grad():
        pcache = ref(input_ids=ids, past_key_values=pcache, use_cache=True).past_key_values

    def ours():
        RUNTIME.executor.run(srg, inputs)

    def theirs():
        with torch.no_grad():
            ref(input_ids=tok, past_key_values=pcache, use_cache=True).logits[:, -1].clone()
        pcache.crop(-1)                                  # back to KV length kv_len (cheap view)

    tok_remote = tok.to(DEV)

    def end_to_end():
        with torch.no_grad():
            remote(input_ids=tok_remote, past_key_values=ecache, use_cache=True).logits[:, -1].cpu()
        ecache.crop(-1)

    check = torch.frombuffer(RUNTIME.executor.run(srg, inputs)[0][2], dtype=torch.float32)
    with torch.no_grad():
        want = ref(input_ids=tok, past_key_values=pcache, use_cache=True).logits[0, -1]
    pcache.crop(-1)
    err = float((check - want).norm() / want.norm())
    return ours, theirs, end_to_end, err, keep


def measure(ours, theirs, e2e, repeats, warmup):
    for _ in range(warmup):
        ours(), theirs()
    a, b, c = [], [], []
    for _ in range(repeats):
        a.append(timed(ours))
        b.append(timed(theirs))
        if e2e is not None:
            c.append(timed(e2e))
    return a, b, c


def fmt(xs):
    ms = [x * 1e3 for x in xs]
    return f"{statistics.median(ms):8.2f} [{min(ms):.2f}-{max(ms):.2f}]"


def main(argv=None):
    ap = argparse.ArgumentParser(description="Genie executor vs PyTorch eager (GPT-2)")
    ap.add_argument("--model", choices=["gpt2-small", "gpt2-tiny"], default="gpt2-small")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--prefill-len", type=int, default=128)
    ap.add_argument("--kv-len", type=int, default=128)
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    genie.init(threads=args.threads)
    shape = dict(n_layer=12, n_embd=768, n_head=12) if args.model == "gpt2-small" \
        else dict(n_layer=2, n_embd=128, n_head=4)
    ref = build(**shape)
    remote = copy.deepcopy(ref).to(DEV)

    rows = []
    for name, case, arg in (("prefill T=%d" % args.prefill_len, prefill_case, args.prefill_len),
                            ("decode KV=%d" % args.kv_len, decode_case, args.kv_len)):
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        ours, theirs, e2e, err, keep = case(ref, remote, arg)
        a, b, c = measure(ours, theirs, e2e, args.repeats, args.warmup)
        ratio = statistics.median(a) / statistics.median(b)
        rows.append((name, fmt(a), fmt(b), f"{ratio:6.2f}", fmt(c) if c else "-", f"{err:.1e}"))
        del keep

    print(f"\nGPT-2 ({args.model}) fp32, batch 1, {args.threads} thread(s), "
          f"{args.repeats} interleaved repeats; times in ms, median [min-max]\n")
    head = ("workload", "genie executor", "pytorch eager", "ratio", "genie end-to-end", "rel err")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print("\nratio = genie executor median / pytorch eager median (< 1 means Genie is faster)")


if __name__ == "__main__":
    main()

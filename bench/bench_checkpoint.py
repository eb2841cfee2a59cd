#!/usr/bin/env python3
"""Checkpoint benchmarks, each ratio measured side by side in one run.

(a) Checkpoint write throughput vs ``dd conv=fsync``.  A genie-launch job
    (prefill:1,decode:1, GPT-2 small from its config, seed 0) prefills a few
    long prompts and then checkpoints after every decode step.  After each
    epoch the driver runs ``dd if=/dev/zero of=<same dir>/dd.bin bs=4M
    count=<same size> conv=fsync``: same size, same filesystem, right after.
    Throughput = the rank file's bytes / the executor's own time writing it
    (HDF5 create, write, flush, fsync, rename, directory fsync; the
    CHECKPOINT request's time on the executor) vs bytes / dd's wall time.
    Target ratio >= 0.8.  The executor sends KV chunks with O_DIRECT;
    --page-cache-too runs the job a second time with GENIE_CKPT_DIRECT=0
    (everything through the page cache, as dd) for comparison.

(b) Restore + resume vs re-prefill at 1024 and 2048 tokens of context.  Job 1
    prefills the same prompt three times and checkpoints the three sessions.
    Job 2 (GENIE_RESTORE_DIR) times genie.generate(prompt, 2 new tokens)
    three times: each restores one checkpointed session and decodes one
    token; then three more times, with every checkpointed session taken, so
    each prefills the whole context again and decodes one token.  The tokens
    of both paths must be identical.  Target ratio >= 10x at 2048.

    bench_checkpoint.py [--repeats N] [--dir DIR] [--quick] [--only write|restore]
                        [--page-cache-too] [-v]

Prints tables (median and min-max over the repeats).  A benchmark, not a
test: it exits 0 below target and says so.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
# GPT-2 small; positions for 2048 tokens of context plus the ones generated.
MODEL = dict(n_layer=12, n_embd=768, n_head=12, n_positions=2176, initializer_range=0.1)


def build_model():
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(**MODEL)).eval()


def prompt(length, k=0):
    import torch
    g = torch.Generator().manual_seed(1000 + length + k)
    return torch.randint(0, 50257, (1, length), generator=g)


# ---- the apps (run as the driver of a genie-launch job) ---------------------

def app_write(args):
    import genie
    from genie._checkpoint import CHECKPOINTS

    model = build_model()
    genie.init()
    model.to("remote_accelerator:0")
    rows = []
    last = dict(CHECKPOINTS.stats)

    def on_token(index, step, tokens, session):
        nonlocal last
        if index != 0:
            return
        st = dict(CHECKPOINTS.stats)
        if st["epochs_written"] > last["epochs_written"]:
            nbytes = st["bytes"] - last["bytes"]
            ex = st["executor_write_s"] - last["executor_write_s"]
            count = max(1, round(nbytes / (4 << 20)))
            dd = os.path.join(CHECKPOINTS.root, "dd.bin")
            t0 = time.perf_counter()
            subprocess.run(["dd", "if=/dev/zero", f"of={dd}", "bs=4M", f"count={count}",
                            "conv=fsync"], check=True, capture_output=True)
            dd_s = time.perf_counter() - t0
            os.unlink(dd)
            rows.append({"bytes": nbytes, "executor_s": ex, "dd_bytes": count * (4 << 20),
                         "dd_s": dd_s})
        last = st

    prompts = [prompt(args.context, k) for k in range(args.sessions)]
    genie.generate_many(model, prompts, max_new_tokens=args.repeats + 2, on_token=on_token)
    with open(args.out, "w") as f:
        json.dump(rows, f)


def app_make(args):
    import genie

    model = build_model()
    genie.init()
    model.to("remote_accelerator:0")
    p = prompt(args.context)
    # 2 tokens: the checkpoint after the prefill round holds the sessions at step 1
    genie.generate_many(model, [p] * args.repeats, max_new_tokens=2)


def app_restore(args):
    import genie
    from genie._checkpoint import CHECKPOINTS

    model = build_model()
    genie.init()
    model.to("remote_accelerator:0")
    p = prompt(args.context)
    # Warm-up (not timed): registers the weights on the executors; its
    # prompt has no checkpointed session.
    genie.generate(model, prompt(16, 99), max_new_tokens=2)
    out = {"restore": [], "prefill": [], "tokens": []}
    for path in ["restore"] * args.repeats + ["prefill"] * args.repeats:
        before = CHECKPOINTS.stats["restored_sessions"]
        t0 = time.perf_counter()
        toks = genie.generate(model, p, max_new_tokens=2)
        dt = time.perf_counter() - t0
        restored = CHECKPOINTS.stats["restored_sessions"] - before
        if restored != (1 if path == "restore" else 0):
            raise SystemExit(f"bench: the {path} path restored {restored} sessions")
        out[path].append(dt)
        out["tokens"].append(toks[0, -2:].tolist())
    with open(args.out, "w") as f:
        json.dump(out, f)


# ---- the benchmark --------------------------------------------------------------

def launch(app, extra_env, app_args, threads):
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "frontend"), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", GENIE_THREADS=str(threads), GENIE_ARENA_MB="4096")
    env.update(extra_env)
    cmd = [os.path.join(REPO, "build", "bin", "genie-launch"), "--phases", "prefill:1,decode:1",
           "--", sys.executable, os.path.abspath(__file__), "--app", app, *app_args]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        print(r.stdout[-3000:], r.stderr[-3000:])
        raise SystemExit(f"bench: {app} job failed (exit {r.returncode})")
    return r.stdout + r.stderr


def med(xs):
    return statistics.median(xs), min(xs), max(xs)


# The executor's write paths (docs/checkpoint-format.md, "How rank files are
# written"): the default sends KV chunks with O_DIRECT; GENIE_CKPT_DIRECT=0
# writes everything through the page cache.
WRITE_PATHS = (("O_DIRECT (default)", "1"), ("page cache (GENIE_CKPT_DIRECT=0)", "0"))
FELL_BACK = "checkpoint files go through the page cache"


def write_job(args, work, direct):
    ck = os.path.join(work, f"write-{direct}")
    out = os.path.join(work, f"write-{direct}.json")
    log = launch("write", {"GENIE_CHECKPOINT_DIR": ck, "GENIE_CHECKPOINT_EVERY_STEPS": "1",
                           "GENIE_CHECKPOINT_KEEP": "1", "GENIE_CKPT_DIRECT": direct},
                 ["--context", str(args.write_context), "--sessions", str(args.sessions),
                  "--repeats", str(args.repeats), "--out", out], args.threads)
    rows = json.load(open(out))[-args.repeats:]
    ours = [r["bytes"] / r["executor_s"] / 1e6 for r in rows]
    dd = [r["dd_bytes"] / r["dd_s"] / 1e6 for r in rows]
    return rows, ours, dd, FELL_BACK in log


def bench_write(args, work):
    fs = subprocess.run(["df", "-T", work], capture_output=True, text=True).stdout.splitlines()[-1]
    paths = WRITE_PATHS if args.page_cache_too else WRITE_PATHS[:1]
    result = None
    for label, direct in paths:
        rows, ours, dd, fell_back = write_job(args, work, direct)
        ratio = [o / d for o, d in zip(ours, dd)]
        print(f"\n(a) checkpoint write vs dd conv=fsync, {len(rows)} epochs of "
              f"{rows[0]['bytes'] / 1e6:.0f} MB ({args.sessions} sessions x {args.write_context} "
              f"tokens, GPT-2 small), filesystem: {fs.split()[1]} ({fs.split()[-1]})")
        print(f"executor write path: {label}"
              + (" -- the file system refused O_DIRECT: page cache used" if fell_back else ""))
        # The rank file's time is the executor's own (its CHECKPOINT reply, as the
        # driver sums it in get_stats()["checkpoint"]["executor_write_s"]); dd's is
        # the wall time of the dd process, which includes its start (a few ms).
        print(f"{'':44}{'median':>10}{'min':>10}{'max':>10}")
        for name, xs in (("rank file MB/s (executor's CHECKPOINT time)", ours),
                         ("dd conv=fsync MB/s (wall)", dd), ("ratio (per epoch)", ratio)):
            m, lo, hi = med(xs)
            print(f"{name:44}{m:10.2f}{lo:10.2f}{hi:10.2f}")
        if args.verbose:
            print("per epoch (rank file MB/s, dd MB/s, ratio):",
                  ", ".join(f"{o:.0f}/{d:.0f}/{o / d:.2f}" for o, d in zip(ours, dd)))
        m = med(ratio)[0]
        if result is None:
            print(f"target >= 0.8: {'PASS' if m >= 0.8 else 'BELOW TARGET'} ({m:.2f})")
            result = m
        else:
            print(f"(for comparison, not the target: ratio {m:.2f})")
    return result


def bench_restore(args, work, context):
    ck = os.path.join(work, f"restore-{context}")
    out = os.path.join(work, f"restore-{context}.json")
    launch("make", {"GENIE_CHECKPOINT_DIR": ck, "GENIE_CHECKPOINT_EVERY_STEPS": "1"},
           ["--context", str(context), "--repeats", str(args.repeats)], args.threads)
    launch("restore", {"GENIE_RESTORE_DIR": ck},
           ["--context", str(context), "--repeats", str(args.repeats), "--out", out], args.threads)
    r = json.load(open(out))
    same = all(t == r["tokens"][0] for t in r["tokens"])
    rs, pf = med(r["restore"]), med(r["prefill"])
    ratio = [p / q for p, q in zip(r["prefill"], r["restore"])]
    print(f"\n(b) context {context}: restore + 1 decode step vs re-prefill + 1 decode step "
          f"({args.repeats} each); tokens identical: {same}")
    print(f"{'':24}{'median':>10}{'min':>10}{'max':>10}")
    print(f"{'restore + resume s':24}{rs[0]:10.3f}{rs[1]:10.3f}{rs[2]:10.3f}")
    print(f"{'re-prefill s':24}{pf[0]:10.3f}{pf[1]:10.3f}{pf[2]:10.3f}")
    m, lo, hi = med(ratio)
    print(f"{'ratio (x faster)':24}{m:10.1f}{lo:10.1f}{hi:10.1f}")
    if context >= 2048:
        print(f"target >= 10x at 2048: {'PASS' if m >= 10 else 'BELOW TARGET'} ({m:.1f}x)")
    if not same:
        raise SystemExit("bench: the restored and re-prefilled tokens differ")
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--app", choices=["write", "make", "restore"], help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--context", type=int, default=1024, help=argparse.SUPPRESS)
    ap.add_argument("--sessions", type=int, default=4, help="sessions in the write benchmark")
    ap.add_argument("--write-context", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2, help="GENIE_THREADS of every executor")
    ap.add_argument("--dir", default=os.path.join(REPO, "build", "bench-checkpoint"),
                    help="where checkpoints and dd's file go")
    ap.add_argument("--quick", action="store_true", help="small sizes, 2 repeats (a smoke run)")
    ap.add_argument("--page-cache-too", action="store_true",
                    help="also time the executor writing through the page cache (GENIE_CKPT_DIRECT=0)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every epoch's write numbers")
    ap.add_argument("--only", choices=["write", "restore"], help="run one of the two benchmarks")
    args = ap.parse_args()
    if args.app:
        return {"write": app_write, "make": app_make, "restore": app_restore}[args.app](args)
    if args.quick:
        args.repeats, args.sessions, args.write_context = 2, 1, 128
    os.makedirs(args.dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="run-", dir=args.dir)
    try:
        print(f"bench_checkpoint: repeats {args.repeats}, GENIE_THREADS={args.threads}, "
              f"{os.cpu_count()} cores, dir {work}")
        if args.only != "restore":
            bench_write(args, work)
        for context in (() if args.only == "write" else (128, 256) if args.quick else (1024, 2048)):
            args.repeats = min(args.repeats, 3) if not args.quick else args.repeats
            bench_restore(args, work, context)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

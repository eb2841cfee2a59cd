#!/usr/bin/env python3
"""Checkpoint benchmarks: what a checkpoint and a restore cost the user,
against baselines run alternately in the same job.

    bench_checkpoint.py [--runs N] [--epochs N] [--restore-repeats N]
                        [--only write|restore] [--quick] [--dir DIR] [-v]

(a) Checkpoint write.  Each run is one genie-launch job (prefill:1,decode:1,
    GPT-2 small built from its config with seed 0) that prefills
    --sessions prompts of --write-context tokens and checkpoints after every
    step (GENIE_CHECKPOINT_EVERY_STEPS=1), --epochs epochs in all.  Ours: the
    driver's wall time from the start of the checkpoint (the CHECKPOINT
    requests go out to every executor holding sessions) to the committed
    epoch manifest -- the time the generation stands still, as the driver
    reports it in genie.get_stats()["checkpoint"]["write_s"].  The epoch's
    bytes are the rank files' ("bytes").  GENIE_CHECKPOINT_KEEP is set above
    the number of epochs, so no old epoch is deleted inside the timed write.
    After each epoch, at the next step boundary (the executors idle), the
    driver runs `dd if=/dev/zero bs=4M iflag=count_bytes count=<the epoch's
    bytes, rounded up to 4 KiB>` into the checkpoint directory, first with
    oflag=direct, then with conv=fsync, each timed as a whole process and its
    file removed after it: ours, dd direct, dd fsync, ours, ...  The ratios
    are taken per epoch (our MB/s / dd's MB/s); the tables give the median
    of every epoch of every run and the min-max.  Design target: >= 0.8 of
    dd oflag=direct.  The executors' own time for their rank files (the
    slowest rank's, "executor_write_s") is shown for reference.

(b) Restore + resume vs re-prefill at --contexts tokens.  Per run and
    context, job 1 prefills prompt A --restore-repeats times and checkpoints
    those sessions after the prefill.  Job 2 (GENIE_RESTORE_DIR = job 1's
    directory), after an untimed warm-up on another prompt, alternates:
    genie.generate(A, 2 new tokens), which restores one checkpointed session
    (its KV cache read from the rank file by the decode executor, checksums
    verified) and runs one decode step, then genie.generate(B, 2 new tokens)
    with B a prompt of the same length that has no checkpoint (prefill of
    the whole context, then one decode step).  get_stats() must show one
    session restored for each A call and none for each B call.  Once every
    checkpointed session is taken, one more (untimed) generate(A) prefills A
    and its tokens must equal every restored call's.  Ratio per pair
    (re-prefill s / restore s); design target >= 10x at 2048 tokens.

Every run is a fresh job with fresh directories (under --dir, removed at
the end).  The environment is passed to the jobs as it is, so for example
GENIE_CKPT_DIRECT=0 times the page-cache write path.  A benchmark, not a
test: it prints markdown tables (paste them into docs/benchmarks.md as they
are) and exits 0 also below target, saying so.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchinfo import spread, stamp, table  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
# GPT-2 small; positions for 2048 tokens of context plus the ones generated.
MODEL = dict(n_layer=12, n_embd=768, n_head=12, n_positions=2176, initializer_range=0.1)
FELL_BACK = "checkpoint files go through the page cache"   # the writer's one line


def build_model():
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(**MODEL)).eval()


def prompt(length, k=0):
    import torch
    g = torch.Generator().manual_seed(1000 + length + k)
    return torch.randint(0, 50257, (1, length), generator=g)


def ckpt_stats():
    import genie
    return genie.get_stats()["checkpoint"]


def dd(directory, nbytes, flag):
    """Write nbytes (rounded up to 4 KiB, for oflag=direct) of zeros into
    `directory` with dd and `flag`; the process's wall time, its file removed."""
    n = -(-nbytes // 4096) * 4096
    path = os.path.join(directory, "dd.bin")
    t0 = time.perf_counter()
    subprocess.run(["dd", "if=/dev/zero", f"of={path}", "bs=4M", f"count={n}",
                    "iflag=count_bytes", flag], check=True, capture_output=True)
    secs = time.perf_counter() - t0
    os.unlink(path)
    return n, secs


# ---- the apps (each run as the driver of a genie-launch job) -------------------

def app_write(args):
    import genie

    model = build_model()
    genie.init()
    model.to("remote_accelerator:0")
    rows = []
    last = ckpt_stats()

    def on_token(index, step, tokens, session):
        # All of the round's tokens are collected before the first on_token
        # call, so the executors are idle while dd runs.
        nonlocal last
        if index != 0:
            return
        st = ckpt_stats()
        if st["epochs_written"] == last["epochs_written"]:
            return
        if st["epochs_written"] != last["epochs_written"] + 1:
            raise SystemExit("bench: more than one epoch between two steps")
        nbytes = st["bytes"] - last["bytes"]
        row = {"bytes": nbytes, "driver_s": st["write_s"] - last["write_s"],
               "executor_s": st["executor_write_s"] - last["executor_write_s"]}
        row["direct_bytes"], row["direct_s"] = dd(args.ckdir, nbytes, "oflag=direct")
        row["fsync_bytes"], row["fsync_s"] = dd(args.ckdir, nbytes, "conv=fsync")
        rows.append(row)
        last = ckpt_stats()

    prompts = [prompt(args.context, k) for k in range(args.sessions)]
    # A checkpoint after each of the first `epochs` rounds; the round after
    # the last one runs its dd pair.
    genie.generate_many(model, prompts, max_new_tokens=args.epochs + 1, on_token=on_token)
    if len(rows) != args.epochs:
        raise SystemExit(f"bench: {len(rows)} epochs written, {args.epochs} expected")
    with open(args.out, "w") as f:
        json.dump(rows, f)


def app_make(args):
    import genie

    model = build_model()
    genie.init()
    model.to("remote_accelerator:0")
    # 2 tokens: the checkpoint after the prefill round holds the sessions at step 1
    genie.generate_many(model, [prompt(args.context)] * args.repeats, max_new_tokens=2)
    if ckpt_stats()["sessions_written"] != args.repeats:
        raise SystemExit("bench: the checkpoint does not hold every session")


def app_restore(args):
    import genie

    model = build_model()
    genie.init()
    model.to("remote_accelerator:0")
    a, b = prompt(args.context), prompt(args.context, 1)
    # Warm-up (not timed): registers the weights on both executors; its
    # prompt has no checkpointed session.
    genie.generate(model, prompt(16, 99), max_new_tokens=2)
    out = {"restore": [], "prefill": [], "tokens": []}
    for path, p in [("restore", a), ("prefill", b)] * args.repeats:
        before = ckpt_stats()["restored_sessions"]
        t0 = time.perf_counter()
        toks = genie.generate(model, p, max_new_tokens=2)
        dt = time.perf_counter() - t0
        restored = ckpt_stats()["restored_sessions"] - before
        if restored != (1 if path == "restore" else 0):
            raise SystemExit(f"bench: a {path} call restored {restored} sessions")
        out[path].append(dt)
        if path == "restore":
            out["tokens"].append(toks[0, -2:].tolist())
    toks = genie.generate(model, a, max_new_tokens=2)     # every session taken: a prefill
    out["prefilled_tokens"] = toks[0, -2:].tolist()
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


def write_run(args, work, run):
    ck = os.path.join(work, f"write-{run}")
    out = os.path.join(work, f"write-{run}.json")
    log = launch("write", {"GENIE_CHECKPOINT_DIR": ck, "GENIE_CHECKPOINT_EVERY_STEPS": "1",
                           "GENIE_CHECKPOINT_KEEP": str(args.epochs + 2)},
                 ["--context", str(args.write_context), "--sessions", str(args.sessions),
                  "--epochs", str(args.epochs), "--ckdir", ck, "--out", out], args.threads)
    rows = json.load(open(out))
    shutil.rmtree(ck, ignore_errors=True)
    return rows, FELL_BACK in log


def restore_run(args, work, context, run):
    ck = os.path.join(work, f"restore-{context}-{run}")
    out = os.path.join(work, f"restore-{context}-{run}.json")
    common = ["--context", str(context), "--repeats", str(args.restore_repeats)]
    launch("make", {"GENIE_CHECKPOINT_DIR": ck, "GENIE_CHECKPOINT_EVERY_STEPS": "1"},
           common, args.threads)
    launch("restore", {"GENIE_RESTORE_DIR": ck}, common + ["--out", out], args.threads)
    r = json.load(open(out))
    shutil.rmtree(ck, ignore_errors=True)
    return r


def report_write(args, runs, fell_back):
    rows = [r for run in runs for r in run]
    mbps = lambda b, s: b / s / 1e6  # noqa: E731
    ours = [mbps(r["bytes"], r["driver_s"]) for r in rows]
    exe = [mbps(r["bytes"], r["executor_s"]) for r in rows]
    direct = [mbps(r["direct_bytes"], r["direct_s"]) for r in rows]
    fsync = [mbps(r["fsync_bytes"], r["fsync_s"]) for r in rows]
    vs_direct = [o / d for o, d in zip(ours, direct)]
    vs_fsync = [o / d for o, d in zip(ours, fsync)]
    size = statistics.median(r["bytes"] for r in rows) / 1e6
    print(f"\n(a) checkpoint write: {len(runs)} runs x {args.epochs} epochs of {size:.0f} MB "
          f"({args.sessions} sessions x {args.write_context} tokens, GPT-2 small, one rank file "
          f"per epoch); median (min-max) of all {len(rows)} epochs")
    if fell_back:
        print("the file system refused O_DIRECT: the executors wrote through the page cache")
    med = lambda xs: spread(xs, "{:.0f}")  # noqa: E731
    print(table(("measurement", "median (min-max)"), [
        ("Genie checkpoint, driver wall time to the committed manifest, MB/s", med(ours)),
        ("`dd oflag=direct`, same size, same directory, MB/s", med(direct)),
        ("`dd conv=fsync`, same size, same directory, MB/s", med(fsync)),
        ("**ratio Genie / `dd oflag=direct`** (per epoch; target >= 0.8)", spread(vs_direct)),
        ("ratio Genie / `dd conv=fsync` (per epoch)", spread(vs_fsync)),
        ("for reference: the executor's own time for its rank file, MB/s", med(exe)),
    ]))
    per_run = [statistics.median(mbps(r["bytes"], r["driver_s"]) /
                                 mbps(r["direct_bytes"], r["direct_s"]) for r in run)
               for run in runs]
    print("each run's median ratio vs dd oflag=direct: " + ", ".join(f"{m:.2f}" for m in per_run))
    if args.verbose:
        print("every epoch (Genie / dd direct / dd fsync MB/s):",
              ", ".join(f"{o:.0f}/{d:.0f}/{f:.0f}" for o, d, f in zip(ours, direct, fsync)))
    m = statistics.median(vs_direct)
    print(f"target >= 0.8 of dd oflag=direct: {'met' if m >= 0.8 else 'NOT MET'} ({m:.2f})")


def report_restore(args, results):
    rows, verdicts = [], []
    for context, runs in results.items():
        rs = [x for r in runs for x in r["restore"]]
        pf = [x for r in runs for x in r["prefill"]]
        ratio = [p / q for r in runs for p, q in zip(r["prefill"], r["restore"])]
        same = all(t == r["prefilled_tokens"] for r in runs for t in r["tokens"])
        rows.append((context, spread(rs, "{:.3f}"), spread(pf, "{:.3f}"),
                     "**" + spread(ratio, "{:.1f}") + "**", "yes" if same else "NO"))
        if not same:
            verdicts.append(f"the restored and re-prefilled tokens differ at {context}")
        if context == 2048:
            m = statistics.median(ratio)
            verdicts.append(f"target >= 10x at 2048: {'met' if m >= 10 else 'NOT MET'} ({m:.1f}x)")
    print(f"\n(b) restore + 1 decode step vs re-prefill + 1 decode step, alternated: "
          f"{len(next(iter(results.values())))} runs x {args.restore_repeats} pairs per context; "
          f"median (min-max) of all pairs")
    print(table(("context (tokens)", "restore + resume, s", "re-prefill, s",
                 "ratio (per pair, x faster)", "same tokens"), rows))
    for v in verdicts:
        print(v)
    return all("differ" not in v for v in verdicts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--app", choices=["write", "make", "restore"], help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--ckdir", help=argparse.SUPPRESS)
    ap.add_argument("--context", type=int, default=1024, help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=3, help=argparse.SUPPRESS)
    ap.add_argument("--runs", type=int, default=3, help="jobs per measurement (default 3)")
    ap.add_argument("--epochs", type=int, default=5, help="checkpoints timed per write job")
    ap.add_argument("--sessions", type=int, default=4, help="sessions in the write benchmark")
    ap.add_argument("--write-context", type=int, default=1024)
    ap.add_argument("--restore-repeats", type=int, default=3,
                    help="restore/re-prefill pairs per restore job")
    ap.add_argument("--contexts", type=int, nargs="+", default=[1024, 2048])
    ap.add_argument("--threads", type=int, default=2, help="GENIE_THREADS of every executor")
    ap.add_argument("--dir", default=os.path.join(REPO, "build", "bench-checkpoint"),
                    help="where checkpoints and dd's files go")
    ap.add_argument("--quick", action="store_true", help="small sizes, 1 run (a smoke run)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every epoch's numbers")
    ap.add_argument("--only", choices=["write", "restore"], help="run one of the two benchmarks")
    args = ap.parse_args()
    if args.app:
        return {"write": app_write, "make": app_make, "restore": app_restore}[args.app](args)
    if args.quick:
        args.runs, args.epochs, args.sessions, args.write_context = 1, 2, 1, 128
        args.restore_repeats, args.contexts = 2, [128, 256]
    if min(args.runs, args.epochs, args.sessions, args.restore_repeats) < 1:
        ap.error("--runs, --epochs, --sessions and --restore-repeats must be >= 1")
    os.makedirs(args.dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="run-", dir=args.dir)
    ok = True
    try:
        fs = subprocess.run(["df", "-T", work], capture_output=True, text=True).stdout
        fs = fs.splitlines()[-1].split()
        print(f"bench_checkpoint: started {stamp()}; GENIE_THREADS={args.threads}; "
              f"dir {args.dir}, {fs[1]} on {fs[0]}")
        writes, fell_back, restores = [], False, {c: [] for c in args.contexts}
        for run in range(args.runs):
            if args.only != "restore":
                rows, fb = write_run(args, work, run)
                writes.append(rows)
                fell_back |= fb
            if args.only != "write":
                for context in args.contexts:
                    restores[context].append(restore_run(args, work, context, run))
        if writes:
            report_write(args, writes, fell_back)
        if args.only != "write":
            ok = report_restore(args, restores)
        print(f"\nbench_checkpoint: ended {stamp()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

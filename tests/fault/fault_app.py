#!/usr/bin/env python3
"""The fault tests' application: jobs/examples/generate.py's model and
prompts (so that its sessions and the example's are the same sessions, and
a checkpoint written here can be restored by the example and the sbatch
template), generated with genie.generate_many, with a fault injected from
inside at a chosen step:

  --kill-executor GROUP --kill-index I --kill-at STEP
        SIGKILL executor I of slice group GROUP when prompt 0 finishes STEP
  --kill-all-at STEP
        SIGKILL every executor, then this process (the whole job dies)
  --signal-at STEP --signal NAME
        send SIGUSR1 or SIGTERM to this process (the driver) at STEP
  --crash-ckpt-at N
        GENIE_CKPT_CRASH_AT=N for this process only: the driver dies at the
        N-th step of its checkpoint commits (writing a manifest)

--out FILE gets the tokens and get_stats() as JSON; the test compares the
tokens of different runs byte for byte.
"""

import argparse
import json
import os
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "jobs", "examples"))

import genie  # noqa: E402
import generate as example  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--model", default="gpt2-tiny")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kill-executor")
    ap.add_argument("--kill-index", type=int, default=0)
    ap.add_argument("--kill-at", type=int, default=-1)
    ap.add_argument("--kill-all-at", type=int, default=-1)
    ap.add_argument("--crash-ckpt-at", type=int, default=0)
    ap.add_argument("--signal-at", type=int, default=-1)
    ap.add_argument("--signal", choices=["SIGUSR1", "SIGTERM"], default="SIGUSR1")
    ap.add_argument("--restore-dir", help="call genie.restore(DIR) before generating")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    model = example.build_model(args.model, args.seed)
    prompts = example.make_prompts(args.prompts, model.config.vocab_size, args.seed)
    genie.init()
    if args.restore_dir:
        print(f"fault-app: genie.restore() -> {genie.restore(args.restore_dir)}", flush=True)
    model.to("remote_accelerator:0")
    execs = genie.get_stats()["executors"]
    if args.crash_ckpt_at:
        os.environ["GENIE_CKPT_CRASH_AT"] = str(args.crash_ckpt_at)
    killed = []

    def on_token(index, step, tokens, session):
        if index != 0:
            return
        if step == args.kill_at and args.kill_executor and not killed:
            group = [e for e in execs if e["phase"] == args.kill_executor]
            victim = group[args.kill_index]
            print(f"fault-app: step {step}: SIGKILL executor rank {victim['rank']} "
                  f"({victim['phase']}) pid {victim['pid']}", flush=True)
            os.kill(victim["pid"], signal.SIGKILL)
            killed.append(victim["rank"])
        if step == args.signal_at:
            print(f"fault-app: step {step}: {args.signal} to the driver", flush=True)
            os.kill(os.getpid(), getattr(signal, args.signal))
        if step == args.kill_all_at:
            print(f"fault-app: step {step}: SIGKILL every rank", flush=True)
            for e in execs:
                os.kill(e["pid"], signal.SIGKILL)
            os.kill(os.getpid(), signal.SIGKILL)

    outs = genie.generate_many(model, prompts, max_new_tokens=args.new_tokens,
                               on_token=on_token)
    stats = genie.get_stats()
    tokens = [o[0, p.shape[1]:].tolist() for p, o in zip(prompts, outs)]
    with open(args.out + ".tmp", "w") as f:
        json.dump({"tokens": tokens, "killed": killed, "checkpoint": stats["checkpoint"],
                   "time_per_phase": stats["time_per_phase"],
                   "lost": [e["rank"] for e in stats["executors"] if e["lost"]]}, f)
    os.replace(args.out + ".tmp", args.out)
    print(f"fault-app: done, {len(tokens)} prompts, checkpoint stats "
          f"{json.dumps(stats['checkpoint'])}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

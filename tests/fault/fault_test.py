#!/usr/bin/env python3
"""Fault-injection tests of checkpoints, restore and in-job recovery (CTest
label fault; stress for the long version).  Every case runs real jobs
through genie-launch (Open MPI ranks, UCX, HDF5 files) with
tests/fault/fault_app.py and compares tokens byte for byte with an
uninterrupted run of the same app.

  fault_test.py CASE --build BUILD [--trials N] [--seed S] [--work DIR]

Cases:
  reference        the uninterrupted run (checked against PyTorch once) whose
                   tokens every other case must reproduce
  kill_decode      SIGKILL one decode executor at a seeded step, prefill:1,decode:2;
                   generation recovers (checkpoint + lineage replay) in the job
  kill_spare       the same with decode:1+1: the spare slice takes over
  restore          SIGKILL every rank mid-generation, restore in a new genie-launch
  crash_manifest   the driver dies at a seeded point of a checkpoint commit;
                   the restore uses the newest complete epoch
  signals          SIGUSR1 checkpoints at the next step; SIGTERM checkpoints and
                   ends the job; both restore to identical tokens
  flipped_bytes    flip bytes of a KV dataset in the newest epoch: genie-ckpt
                   verify and the restore both name the dataset; the restore
                   takes that session from the previous epoch
  stop_decode      SIGSTOP one decode executor of the README's example (4 prompts x
                   600 tokens, --check) under the default timeouts: with a second
                   decode slice the driver ends the stopped one and recovers its
                   sessions ("all 4 prompts match", exit 0); with one decode slice
                   the job ends non-zero with one genie: line naming the rank; both
                   within the liveness timeout plus recovery time
Prints "fault-test: PASS <case>" or "fault-test: FAIL <case>: why".
"""

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
APP = os.path.join(REPO, "tests", "fault", "fault_app.py")
PROMPTS, TOKENS = 8, 64


class Fail(Exception):
    pass


def ckpt_flags(args, ck, every=None, restore=None):
    """genie-launch options for a checkpoint directory (and a restore)."""
    extra = ["--checkpoint-dir", ck]
    if every is not None:
        extra += ["--checkpoint-every", str(every)]
    if restore:
        extra += ["--restore", restore]
    return extra, {}


def run_job(args, phases, app_args, extra=(), env=None, timeout=300, expect_ok=True):
    """genie-launch ... -- python fault_app.py; returns (rc, output)."""
    cmd = [os.path.join(args.build, "bin", "genie-launch"), "--phases", phases, *extra, "--",
           sys.executable, APP, "--prompts", str(PROMPTS), "--new-tokens", str(TOKENS), *app_args]
    e = dict(os.environ, PYTHONPATH=os.path.join(REPO, "frontend"), HF_HUB_OFFLINE="1",
             TRANSFORMERS_OFFLINE="1", GENIE_THREADS="1", GENIE_TERM_GRACE_S="10")
    e.update(env or {})
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=e, start_new_session=True)
    return finish_job(p, cmd, ' '.join(cmd[1:3] + list(extra) + app_args), t0, timeout)


def finish_job(p, cmd, label, t0, timeout=300):
    """Wait for the job `p` (its own session) up to `timeout` s, then end
    whatever of it is left; prints its output under `label`.  Returns
    (rc, output).  Also used by ckpt_disk_test.py."""
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        print(out)
        raise Fail(f"job did not finish in {timeout} s: {' '.join(cmd)}")
    finally:
        try:                                  # nothing of the job may outlive it
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    print(f"--- {label} ({time.monotonic() - t0:.1f} s, exit {p.returncode})")
    print(out.rstrip())
    return p.returncode, out


def load(path):
    if not os.path.exists(path):
        raise Fail(f"the app wrote no result ({path}): it did not finish")
    with open(path) as f:
        return json.load(f)


def reference(args):
    path = os.path.join(args.work, "reference.json")
    if os.path.exists(path):
        return load(path)
    tmp = os.path.join(args.work, f"reference.{os.getpid()}.json")
    run_job(args, "prefill:1,decode:2", ["--out", tmp])
    ref = load(tmp)
    # The uninterrupted run must equal plain PyTorch: then "identical to the
    # uninterrupted run" means identical to PyTorch too.
    sys.path.insert(0, os.path.join(REPO, "jobs", "examples"))
    import generate as example
    model = example.build_model("gpt2-tiny", 0)
    prompts = example.make_prompts(PROMPTS, model.config.vocab_size, 0)
    for i, p in enumerate(prompts):
        want = example.reference_greedy(model, p, TOKENS)
        if ref["tokens"][i] != want:
            raise Fail(f"the uninterrupted Genie run differs from PyTorch at prompt {i}")
    os.replace(tmp, path)
    return ref


def same_tokens(got, ref, what):
    for i, (a, b) in enumerate(zip(got["tokens"], ref["tokens"])):
        if a != b:
            raise Fail(f"{what}: prompt {i} differs from the uninterrupted run:\n  got  {a}\n"
                       f"  want {b}")
    if len(got["tokens"]) != len(ref["tokens"]):
        raise Fail(f"{what}: {len(got['tokens'])} prompts, want {len(ref['tokens'])}")


def case_kill(args, spare=False):
    ref = reference(args)
    rng = random.Random(args.seed)
    for trial in range(args.trials):
        step = rng.randint(2, TOKENS - 4)
        every = rng.choice([0, 8, 16])
        index = 0 if spare else rng.randint(0, 1)
        ck = os.path.join(args.work, f"ckpt-kill-{args.seed}-{trial}")
        shutil.rmtree(ck, ignore_errors=True)
        out = os.path.join(args.work, f"kill-{args.seed}-{trial}.json")
        phases = "prefill:1,decode:1+1" if spare else "prefill:1,decode:2"
        print(f"fault-test: trial {trial}: kill decode executor {index} at step {step}, "
              f"checkpoint every {every or 'never'} steps")
        extra, env = ckpt_flags(args, ck, every)
        run_job(args, phases, ["--kill-executor", "decode", "--kill-index", str(index),
                               "--kill-at", str(step), "--out", out], extra, env)
        got = load(out)
        if not got["killed"] or not got["lost"]:
            raise Fail(f"trial {trial}: no executor was killed/lost ({got['killed']}, {got['lost']})")
        if got["checkpoint"]["recoveries"] < 1:
            raise Fail(f"trial {trial}: the loss was not recovered from: {got['checkpoint']}")
        if every and step > every and got["checkpoint"]["recovered_from_checkpoint"] < 1:
            raise Fail(f"trial {trial}: a checkpoint existed but recovery did not use it")
        same_tokens(got, ref, f"trial {trial}")
        print(f"fault-test: trial {trial}: identical after {got['checkpoint']['recoveries']} "
              f"session recoveries, {got['checkpoint']['replayed_steps']} steps replayed")


def kill_all_then_restore(args, tag, app_args, every=8):
    ck = os.path.join(args.work, f"ckpt-{tag}")
    shutil.rmtree(ck, ignore_errors=True)
    first = os.path.join(args.work, f"{tag}-first.json")
    extra, env = ckpt_flags(args, ck, every)
    run_job(args, "prefill:1,decode:2", app_args + ["--out", first], extra, env, timeout=120)
    if os.path.exists(first):
        raise Fail(f"{tag}: the first job finished; it should have died mid-generation")
    return ck


def restore_job(args, ck, tag, phases="prefill:1,decode:2", api=False):
    """A new job restoring from ck: genie-launch --restore, or with api=True
    the program's own genie.restore(ck)."""
    out = os.path.join(args.work, f"{tag}-restored.json")
    extra, env = ckpt_flags(args, ck, restore=None if api else ck)
    rc, text = run_job(args, phases, ["--out", out] + (["--restore-dir", ck] if api else []),
                       extra, env)
    return load(out), text


def case_restore(args):
    ref = reference(args)
    rng = random.Random(args.seed)
    step = rng.randint(12, TOKENS - 8)
    print(f"fault-test: SIGKILL every rank at step {step}")
    ck = kill_all_then_restore(args, "restore", ["--kill-all-at", str(step)])
    # A different number of decode slices in the new job.
    got, _ = restore_job(args, ck, "restore", phases="prefill:1,decode:3")
    st = got["checkpoint"]
    if st["restored_sessions"] < 1:
        raise Fail(f"restore: no session was restored: {st}")
    same_tokens(got, ref, "restore")
    prefill = ref["time_per_phase"].get("llm_prefill", {})
    print(f"fault-test: restore: {st['restored_sessions']} sessions restored in "
          f"{st['restore_s']:.4f} s ({st['restore_bytes']} KV bytes); re-prefill of the same "
          f"prompts took {prefill.get('driver_wall_s')} s (driver wall, {prefill.get('requests')} requests) in the uninterrupted run")


def case_crash_manifest(args):
    ref = reference(args)
    rng = random.Random(args.seed)
    points = 7                              # fault points per manifest commit (ckpt_write.c)
    k = rng.randint(points + 1, 3 * points)  # during the 2nd or 3rd epoch's commit
    print(f"fault-test: the driver dies at checkpoint fault point {k}")
    ck = kill_all_then_restore(args, "crash", ["--crash-ckpt-at", str(k)], every=4)
    got, text = restore_job(args, ck, "crash", api=True)     # genie.restore(DIR)
    if got["checkpoint"]["restored_sessions"] < 1:
        raise Fail(f"crash: nothing was restored: {got['checkpoint']}")
    same_tokens(got, ref, "crash during a checkpoint commit")


def case_flipped(args):
    import h5py

    ref = reference(args)
    ck = os.path.join(args.work, "ckpt-flip")
    shutil.rmtree(ck, ignore_errors=True)
    first = os.path.join(args.work, "flip-first.json")
    extra, env = ckpt_flags(args, ck, 8)
    run_job(args, "prefill:1,decode:2", ["--out", first], extra, env)
    same_tokens(load(first), ref, "checkpointed run")
    epochs = sorted(d for d in os.listdir(ck) if d.startswith("epoch-"))
    newest = os.path.join(ck, epochs[-1])
    rank_file = sorted(f for f in os.listdir(newest) if f.startswith("rank-"))[0]
    path = os.path.join(newest, rank_file)
    with h5py.File(path, "r") as f:
        sid = sorted(f["sessions"].keys(), key=int)[0]
        dset = f"/sessions/{sid}/kv/layer_01/value"
        info = f[dset].id.get_chunk_info(0)
        offset, size = info.byte_offset, info.size
    with open(path, "r+b") as f:
        f.seek(offset + size // 2)
        b = f.read(4)
        f.seek(offset + size // 2)
        f.write(bytes(x ^ 0x5A for x in b))
    print(f"fault-test: flipped 4 bytes of {dset} in {path}")
    v = subprocess.run([os.path.join(args.build, "bin", "genie-ckpt"), "verify", ck],
                       capture_output=True, text=True)
    print(v.stdout + v.stderr)
    if v.returncode != 1 or dset not in v.stdout + v.stderr:
        raise Fail(f"genie-ckpt verify: exit {v.returncode}, want 1 naming {dset}")
    got, text = restore_job(args, ck, "flip")
    if dset not in text:
        raise Fail(f"the restore did not name {dset}")
    if got["checkpoint"]["restore_fallbacks"] < 1:
        raise Fail("the restore did not fall back to the previous epoch")
    same_tokens(got, ref, "restore with a corrupt dataset")


def case_signals(args):
    """No periodic checkpoints: SIGUSR1 at one step writes one (then the job
    is killed and restored from it); SIGTERM writes one and ends the job
    with status 143 (then it is restored from that)."""
    ref = reference(args)
    rng = random.Random(args.seed)
    usr1 = rng.randint(5, 30)
    ck = kill_all_then_restore(args, "usr1", ["--signal-at", str(usr1), "--kill-all-at",
                                              str(usr1 + 10)], every=0)
    got, text = restore_job(args, ck, "usr1")
    st = got["checkpoint"]
    if st["restored_sessions"] != PROMPTS:
        raise Fail(f"SIGUSR1: {st['restored_sessions']} sessions restored, want {PROMPTS}")
    if f"continue at steps {usr1 + 1}..{usr1 + 1}" not in text:
        raise Fail(f"SIGUSR1 at step {usr1}: the restore did not continue at step {usr1 + 1}")
    same_tokens(got, ref, "restore after SIGUSR1")
    term = rng.randint(5, 30)
    ck = os.path.join(args.work, "ckpt-term")
    shutil.rmtree(ck, ignore_errors=True)
    extra, env = ckpt_flags(args, ck, 0)
    first = os.path.join(args.work, "term-first.json")
    rc, text = run_job(args, "prefill:1,decode:2", ["--signal-at", str(term), "--signal",
                                                    "SIGTERM", "--out", first], extra, env)
    if os.path.exists(first) or "genie: SIGTERM: checkpointed 8 sessions" not in text:
        raise Fail(f"SIGTERM at step {term}: the job did not checkpoint and stop")
    got, text = restore_job(args, ck, "term")
    if f"continue at steps {term + 1}..{term + 1}" not in text:
        raise Fail(f"SIGTERM at step {term}: the restore did not continue at step {term + 1}")
    same_tokens(got, ref, "restore after SIGTERM")


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def executor_pids(sid):
    """{MPI rank: pid} of the genie-executor processes of a job (its session)."""
    found = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if os.getsid(int(d)) != sid:
                continue
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if not f.read().split(b"\0")[0].endswith(b"genie-executor"):
                    continue
            with open(f"/proc/{d}/environ", "rb") as f:
                env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
            found[int(env[b"OMPI_COMM_WORLD_RANK"])] = int(d)
        except (OSError, KeyError, ValueError):
            continue
    return found


DEFAULT_LIVENESS_S = 30       # genie.conf request_timeout_s, as shipped


def stop_run(args, phases, victim_rank, tag):
    """The README's example with --check, its executor `victim_rank` stopped
    (SIGSTOP) once generation is under way.  Returns (rc, output, seconds
    from the stop to the driver's line about it, pid of the victim)."""
    ck = os.path.join(args.work, f"ckpt-stop-{tag}")
    shutil.rmtree(ck, ignore_errors=True)
    cmd = [os.path.join(args.build, "bin", "genie-launch"), "--phases", phases,
           "--checkpoint-dir", ck, "--", sys.executable,
           os.path.join(REPO, "jobs", "examples", "generate.py"), "--model", "gpt2-tiny",
           "--prompts", "4", "--new-tokens", "600", "--check"]
    e = dict(os.environ, PYTHONPATH=os.path.join(REPO, "frontend"), HF_HUB_OFFLINE="1",
             TRANSFORMERS_OFFLINE="1", GENIE_THREADS="1")
    for k in ("GENIE_REQUEST_TIMEOUT_S", "GENIE_CONFIG"):      # the shipped defaults
        e.pop(k, None)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=e, start_new_session=True)
    lines, victim, t_stop, t_seen, left = [], None, None, None, False
    deadline = time.monotonic() + 600
    try:
        for line in p.stdout:
            lines.append(line)
            if victim is not None and t_seen is None and f"pid {victim}" in line:
                t_seen = time.monotonic()
            if victim is None and line.startswith("genie: mode=distributed"):
                time.sleep(4)                       # well into the decode steps
                pids = executor_pids(p.pid)
                if victim_rank not in pids:
                    raise Fail(f"{tag}: no executor rank {victim_rank} among {pids}")
                victim = pids[victim_rank]
                os.kill(victim, signal.SIGSTOP)
                t_stop = time.monotonic()
                print(f"fault-test: {tag}: SIGSTOP executor rank {victim_rank} (pid {victim})",
                      flush=True)
            if time.monotonic() > deadline:
                raise Fail(f"{tag}: the job did not end within 600 s")
        p.wait(timeout=60)
        if victim is not None:                  # before the cleanup below kills it
            time.sleep(1)
            left = alive(victim)
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if victim is not None:
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                pass
    out = "".join(lines)
    print(f"--- {' '.join(cmd[1:])} (exit {p.returncode})")
    print("\n".join(l for l in out.splitlines() if not l.startswith("prompt ")))
    if victim is None:
        raise Fail(f"{tag}: the job ended before the executor could be stopped")
    if left:
        raise Fail(f"{tag}: the stopped executor (pid {victim}) outlived the job")
    if t_seen is None:
        raise Fail(f"{tag}: no line named the stopped executor (pid {victim})")
    return p.returncode, out, t_seen - t_stop, victim


def case_stop(args):
    # A second decode slice: recovery, identical tokens.
    rc, out, took, victim = stop_run(args, "prefill:1,decode:2", 2, "recover")
    if rc != 0 or "all 4 prompts match" not in out:
        raise Fail(f"recover: exit {rc}; want 0 and 'all 4 prompts match'")
    if f"pid {victim}" not in out or "did not answer" not in out:
        raise Fail("recover: no line says that the stopped executor did not answer")
    if "recovering its sessions" not in out:
        raise Fail("recover: the driver did not say that it recovers the sessions")
    if took > DEFAULT_LIVENESS_S + 15:
        raise Fail(f"recover: the driver noticed the stop only {took:.0f} s later (liveness "
                   f"timeout {DEFAULT_LIVENESS_S} s)")
    print(f"fault-test: stop_decode: recovered; the driver ended the stopped executor "
          f"{took:.1f} s after the stop")
    # One decode slice: one line naming the rank, a non-zero exit.
    rc, out, took, victim = stop_run(args, "prefill:1,decode:1", 2, "alone")
    named = [l for l in out.splitlines() if l.startswith("genie: ") and f"pid {victim}" in l]
    if rc == 0 or len(named) != 1 or "rank 2 (decode slice 0" not in named[0]:
        raise Fail(f"alone: exit {rc}, lines naming the stopped executor {named}; want a "
                   "non-zero exit and exactly one line naming rank 2 (decode slice 0)")
    if "Traceback" in out:
        raise Fail("alone: the program ended with a Python traceback, not one line")
    if took > DEFAULT_LIVENESS_S + 15:
        raise Fail(f"alone: the line came {took:.0f} s after the stop (liveness timeout "
                   f"{DEFAULT_LIVENESS_S} s)")
    print(f"fault-test: stop_decode: alone: '{named[0]}', exit {rc}, {took:.1f} s after the stop")


CASES = {"reference": lambda a: reference(a), "stop_decode": case_stop, "kill_decode": case_kill,
         "kill_spare": lambda a: case_kill(a, spare=True), "restore": case_restore,
         "crash_manifest": case_crash_manifest, "flipped_bytes": case_flipped,
         "signals": case_signals}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--build", required=True)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", default=None)
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    args.work = os.path.abspath(args.work or os.path.join(args.build, "tests", "fault"))
    os.makedirs(args.work, exist_ok=True)
    try:
        CASES[args.case](args)
    except Fail as e:
        print(f"fault-test: FAIL {args.case}: {e}")
        return 1
    print(f"fault-test: PASS {args.case}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

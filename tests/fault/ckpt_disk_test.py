#!/usr/bin/env python3
"""Checkpoint directories under stress, with real jobs (CTest label fault):
genie-launch, Open MPI ranks, UCX, HDF5 files on a real small file system.
Tokens are compared with plain PyTorch's greedy decoding of the same model
(jobs/examples/generate.py's gpt2-tiny and prompts).

  ckpt_disk_test.py CASE --build BUILD [--work DIR]

Cases:
  disk_full    the checkpoint directory is on a 64 MiB tmpfs; at a step the
               app fills it, later frees it.  Each checkpoint while it is full
               is one "genie: checkpoint epoch N failed: ... No space left on
               device" line and is removed; the newest complete epoch stays
               the last good one (in the driver's stats and on disk, as
               _C.ckpt_open finds it at every step) (a decode executor killed while the disk is
               full is recovered from it); checkpoints work again once there
               is room; every token is right and the job exits 0.
  sigterm_full SIGTERM while the disk is full: one line saying the checkpoint
               failed and which sessions were not saved, exit status 143; a
               new job restores from the last good epoch with every token right.
  two_jobs     job A checkpoints into DIR and waits at a step; job B given the
               same DIR is refused at its start, naming job A; A then finishes
               with every token right.
  prune_own    job A checkpoints into DIR and dies (SIGKILL of every rank); job C
               restores from DIR into DIR (keep 1): its pruning leaves A's
               epochs alone, and C keeps only its own newest.

Mounting a tmpfs needs root (CAP_SYS_ADMIN): without it the two disk cases exit 77
(CTest: skipped) saying so.  Prints "ckpt-disk-test: PASS <case>" or
"ckpt-disk-test: FAIL <case>: why".
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fault_test import Fail, finish_job, load  # noqa: E402  (the fault tests' job helpers)
PROMPTS, TOKENS, EVERY = 8, 48, 4
SKIP = 77


class Skip(Exception):
    pass


# ---- the app (run by genie-launch: ckpt_disk_test.py --app ...) ------------------------

def app(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--app", action="store_true")
    ap.add_argument("--out", required=True)
    ap.add_argument("--fill", help="a file to grow until the disk is full")
    ap.add_argument("--fill-at", type=int, default=-1)
    ap.add_argument("--free-at", type=int, default=-1)
    ap.add_argument("--kill-decode-at", type=int, default=-1)
    ap.add_argument("--sigterm-at", type=int, default=-1)
    ap.add_argument("--pause-at", type=int, default=-1, help="wait here until --pause-file goes")
    ap.add_argument("--pause-file")
    ap.add_argument("--kill-all-at", type=int, default=-1)
    a = ap.parse_args(argv)
    sys.path.insert(0, os.path.join(REPO, "jobs", "examples"))
    import genie
    import generate as example
    from genie import _C

    model = example.build_model("gpt2-tiny", 0)
    prompts = example.make_prompts(PROMPTS, model.config.vocab_size, 0)
    genie.init()
    model.to("remote_accelerator:0")
    execs = genie.get_stats()["executors"]
    seen = {}

    def on_token(index, step, tokens, session):
        if index != 0:
            return
        ck = genie.get_stats()["checkpoint"]
        seen[step] = {"failed": ck.get("failed", 0), "last_epoch": ck["last_epoch"],
                      "newest_on_disk": newest_on_disk(ck["dir"])}
        if step == a.fill_at:
            with open(a.fill, "wb") as f:
                block = b"\xa5" * (1 << 20)
                try:
                    while True:
                        f.write(block)
                        f.flush()
                except OSError as e:
                    print(f"ckpt-disk-app: step {step}: disk filled ({e.strerror})", flush=True)
        if step == a.free_at:
            os.unlink(a.fill)
            print(f"ckpt-disk-app: step {step}: disk freed", flush=True)
        if step == a.kill_decode_at:
            victim = [e for e in execs if e["phase"] == "decode"][0]
            print(f"ckpt-disk-app: step {step}: SIGKILL decode rank {victim['rank']}", flush=True)
            os.kill(victim["pid"], signal.SIGKILL)
        if step == a.sigterm_at:
            print(f"ckpt-disk-app: step {step}: SIGTERM to the driver", flush=True)
            os.kill(os.getpid(), signal.SIGTERM)
        if step == a.pause_at:
            print(f"ckpt-disk-app: step {step}: paused", flush=True)
            while os.path.exists(a.pause_file):
                time.sleep(0.1)
        if step == a.kill_all_at:
            print(f"ckpt-disk-app: step {step}: SIGKILL every rank", flush=True)
            for e in execs:
                os.kill(e["pid"], signal.SIGKILL)
            os.kill(os.getpid(), signal.SIGKILL)

    def newest_on_disk(root):
        # what a restore would use now: the newest complete epoch in the
        # job's directory, opened and checked by the library (None: none)
        try:
            return _C.ckpt_open(root)["epoch"] if root else None
        except FileNotFoundError:
            return None

    outs = genie.generate_many(model, prompts, max_new_tokens=TOKENS, on_token=on_token)
    stats = genie.get_stats()
    tokens = [o[0, p.shape[1]:].tolist() for p, o in zip(prompts, outs)]
    with open(a.out, "w") as f:
        json.dump({"tokens": tokens, "checkpoint": stats["checkpoint"], "seen": seen,
                   "lost": [e["rank"] for e in stats["executors"] if e["lost"]]}, f)
    return 0


# ---- the test -----------------------------------------------------------------------

def reference():
    sys.path.insert(0, os.path.join(REPO, "jobs", "examples"))
    import generate as example
    model = example.build_model("gpt2-tiny", 0)
    prompts = example.make_prompts(PROMPTS, model.config.vocab_size, 0)
    return [example.reference_greedy(model, p, TOKENS) for p in prompts]


def launch(args, ckpt_dir, app_args, restore=None, keep=2, wait=True):
    cmd = [os.path.join(args.build, "bin", "genie-launch"), "--phases", "prefill:1,decode:2",
           "--checkpoint-dir", ckpt_dir, "--checkpoint-every", str(EVERY)]
    if restore:
        cmd += ["--restore", restore]
    cmd += ["--", sys.executable, os.path.abspath(__file__), "--app", *app_args]
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "frontend"), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", GENIE_THREADS="1", GENIE_REQUEST_TIMEOUT_S="60",
               GENIE_TERM_GRACE_S="10", GENIE_CHECKPOINT_KEEP=str(keep))
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                         start_new_session=True)
    if not wait:
        return p
    return finish(p, cmd)


def finish(p, cmd, timeout=300):
    return finish_job(p, cmd, " ".join(cmd[1:]), time.monotonic(), timeout)


def same_tokens(got, want, what):
    if got["tokens"] != want:
        for i, (a, b) in enumerate(zip(got["tokens"], want)):
            if a != b:
                raise Fail(f"{what}: prompt {i} differs from PyTorch:\n  got  {a}\n  want {b}")
        raise Fail(f"{what}: {len(got['tokens'])} prompts, want {len(want)}")


def complete_epochs(ck):
    import h5py
    found = {}
    for name in sorted(os.listdir(ck)):
        m = os.path.join(ck, name, "manifest.h5")
        if re.fullmatch(r"epoch-\d{8}", name) and os.path.exists(m):
            with h5py.File(m, "r") as f:
                found[int(name[6:])] = f.attrs["job"].decode()
    return found


class Tmpfs:
    """A tmpfs of `mib` MiB at `path`, unmounted on exit."""

    def __init__(self, path, mib):
        self.path, self.mib = path, mib

    def __enter__(self):
        os.makedirs(self.path, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.mib}m,mode=0700", "tmpfs",
                            self.path], capture_output=True, text=True)
        if r.returncode != 0:
            raise Skip(f"cannot mount a tmpfs at {self.path} (needs root): {r.stderr.strip()}")
        return self.path

    def __exit__(self, *exc):
        subprocess.run(["umount", "-l", self.path])


FAILED = re.compile(r"^genie: checkpoint epoch (\d+) failed: .*No space left on device.*; the newest "
                    r"complete checkpoint of this job is still epoch (\d+); the generation goes on and "
                    r"the next checkpoint is tried in 4 steps$", re.M)


def case_disk_full(args):
    want = reference()
    mnt = os.path.join(args.work, "disk-full")
    with Tmpfs(mnt, 64):
        ck = os.path.join(mnt, "ck")
        out = os.path.join(args.work, "disk-full.json")
        # Full from step 10 to 22: the checkpoints at steps 12, 16, 20 fail
        # (the one at 8 is the newest complete), a decode executor dies at
        # 14 and is recovered from epoch 2 (step 8); 24 onwards succeed.
        rc, text = launch(args, ck, ["--out", out, "--fill", os.path.join(mnt, "filler"),
                                     "--fill-at", "10", "--free-at", "22", "--kill-decode-at", "14"])
        if rc != 0:
            raise Fail(f"the job exited {rc}, want 0")
        got = load(out)
        same_tokens(got, want, "disk full")
        fails = FAILED.findall(text)
        if len(fails) != 3:
            raise Fail(f"{len(fails)} 'checkpoint epoch N failed ... No space left on device' lines, "
                       "want 3 (steps 12, 16, 20)")
        if any(int(prev) != 2 for _, prev in fails):
            raise Fail(f"the newest complete epoch during the full disk was not epoch 2: {fails}")
        if any("Traceback" in line for line in text.splitlines()):
            raise Fail("a traceback was printed")
        st = got["checkpoint"]
        if st["failed"] != 3 or st["recovered_from_checkpoint"] < 1 or not got["lost"]:
            raise Fail(f"want 3 failed checkpoints and a recovery from a checkpoint: {st}")
        seen = {int(k): v for k, v in got["seen"].items()}
        if seen[13]["last_epoch"] != 2 or seen[21]["last_epoch"] != 2 or seen[21]["failed"] != 3:
            raise Fail(f"during the full disk the last epoch moved: {seen[13]}, {seen[21]}")
        # on disk: from the first checkpoint (step 8) to the disk being freed
        # (step 22) the newest complete epoch is epoch 2, and a later one
        # once there is room again
        full = [seen[k]["newest_on_disk"] for k in range(9, 22)]
        if any(e != 2 for e in full):
            raise Fail(f"the newest complete epoch on disk during steps 9..21 was not always 2: {full}")
        if not seen[25]["last_epoch"] or seen[25]["last_epoch"] <= 2 or \
                seen[25]["newest_on_disk"] != seen[25]["last_epoch"]:
            raise Fail(f"no checkpoint succeeded after the disk was freed: {seen[25]}")
        failed_epochs = {int(e) for e, _ in fails}
        left = set(os.listdir(ck)) & {f"epoch-{e:08d}" for e in failed_epochs}
        if left:
            raise Fail(f"failed epochs were left behind: {sorted(left)}")
        print(f"ckpt-disk-test: 3 checkpoints failed on the full disk (epochs "
              f"{sorted(failed_epochs)}), recovery used epoch 2, {st['epochs_written']} epochs "
              f"written in all; newest complete on disk: epoch 2 at steps 9..21, epoch "
              f"{seen[25]['newest_on_disk']} at step 25")


def case_sigterm_full(args):
    want = reference()
    mnt = os.path.join(args.work, "sigterm-full")
    with Tmpfs(mnt, 64):
        ck = os.path.join(mnt, "ck")
        filler = os.path.join(mnt, "filler")
        first = os.path.join(args.work, "sigterm-full-first.json")
        rc, text = launch(args, ck, ["--out", first, "--fill", filler, "--fill-at", "10",
                                     "--sigterm-at", "13"])
        if rc != 143:
            raise Fail(f"the job exited {rc} after SIGTERM, want 143")
        lines = [ln for ln in text.splitlines() if ln.startswith("genie: SIGTERM:")]
        want_line = re.compile(r"^genie: SIGTERM: the checkpoint \(epoch \d+\) failed: .*No space left "
                               r"on device.*; 8 sessions were not saved \(the newest complete checkpoint "
                               r"of this job is still epoch 2\); the job ends$")
        if len(lines) != 1 or not want_line.match(lines[0]):
            raise Fail(f"want one line saying the SIGTERM checkpoint failed and 8 sessions were not "
                       f"saved, got {lines}")
        if os.path.exists(first):
            raise Fail("the job finished after SIGTERM")
        os.unlink(filler)
        out = os.path.join(args.work, "sigterm-full-restored.json")
        rc, text = launch(args, ck, ["--out", out], restore=ck)
        if rc != 0 or "continue at steps 8..8" not in text:
            raise Fail(f"the restore (exit {rc}) did not continue at step 8 (epoch 2)")
        same_tokens(load(out), want, "restore after SIGTERM on a full disk")


def case_two_jobs(args):
    want = reference()
    ck = os.path.join(args.work, "two-jobs-ck")
    shutil.rmtree(ck, ignore_errors=True)
    pause = os.path.join(args.work, "two-jobs-pause")
    open(pause, "w").close()
    a_out = os.path.join(args.work, "two-jobs-a.json")
    b_out = os.path.join(args.work, "two-jobs-b.json")
    for p in (a_out, b_out):
        if os.path.exists(p):
            os.unlink(p)
    a = launch(args, ck, ["--out", a_out, "--pause-at", "10", "--pause-file", pause], wait=False)
    try:
        deadline = time.monotonic() + 240
        second = os.path.join(ck, "epoch-00000002", "manifest.h5")
        while not os.path.exists(second):
            if a.poll() is not None or time.monotonic() > deadline:
                raise Fail("job A did not reach its 2nd checkpoint")
            time.sleep(0.2)
        # A holds the directory: B is refused at its start, naming A.  (The
        # refusal is raised by genie.init(); the app does not catch it, so
        # Python prints it after its traceback.)
        rc, text = launch(args, ck, ["--out", b_out])
        m = re.search(r"genie: checkpoint directory \S+ is in use by job (\S+) \(pid (\d+) on \S+\): "
                      r"two jobs must not write one checkpoint directory", text)
        if rc == 0 or m is None:
            raise Fail(f"job B (exit {rc}) was not refused with a line naming job A")
        if os.path.exists(b_out):
            raise Fail("job B generated")
        print(f"ckpt-disk-test: job B refused: the directory is held by job {m.group(1)}")
    finally:
        os.unlink(pause)                     # A goes on
    rc, _ = finish(a, ["genie-launch", "A"])
    if rc != 0:
        raise Fail(f"job A exited {rc}")
    same_tokens(load(a_out), want, "job A")


def case_prune_own(args):
    want = reference()
    ck = os.path.join(args.work, "prune-own-ck")
    shutil.rmtree(ck, ignore_errors=True)
    a_out = os.path.join(args.work, "prune-own-a.json")
    launch(args, ck, ["--out", a_out, "--kill-all-at", "30"])
    if os.path.exists(a_out):
        raise Fail("job A finished; it should have died at step 30")
    a_epochs = complete_epochs(ck)
    a_job = set(a_epochs.values())
    if len(a_job) != 1 or len(a_epochs) != 2:
        raise Fail(f"job A should have left its 2 newest epochs (keep 2): {a_epochs}")
    # C restores from A's epochs into the same directory, keep 1.
    c_out = os.path.join(args.work, "prune-own-c.json")
    rc, text = launch(args, ck, ["--out", c_out], restore=ck, keep=1)
    if rc != 0:
        raise Fail(f"job C exited {rc}")
    same_tokens(load(c_out), want, "restore into the same directory")
    after = complete_epochs(ck)
    for e, job in a_epochs.items():
        if after.get(e) != job:
            raise Fail(f"job C's pruning removed job A's epoch {e}: left {after}")
    c_own = [e for e, job in after.items() if job not in a_job]
    if len(c_own) != 1:
        raise Fail(f"job C should keep exactly its newest epoch (keep 1): {after}")
    print(f"ckpt-disk-test: job A's epochs {sorted(a_epochs)} kept; job C kept its epoch {c_own}")


CASES = {"disk_full": case_disk_full, "sigterm_full": case_sigterm_full, "two_jobs": case_two_jobs,
         "prune_own": case_prune_own}


def main():
    if "--app" in sys.argv[1:]:
        return app(sys.argv[1:])
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--build", required=True)
    ap.add_argument("--work", default=None)
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    args.work = os.path.abspath(args.work or os.path.join(args.build, "tests", "fault"))
    os.makedirs(args.work, exist_ok=True)
    try:
        CASES[args.case](args)
    except Skip as e:
        print(f"ckpt-disk-test: SKIP {args.case}: {e}")
        return SKIP
    except Fail as e:
        print(f"ckpt-disk-test: FAIL {args.case}: {e}")
        return 1
    print(f"ckpt-disk-test: PASS {args.case}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

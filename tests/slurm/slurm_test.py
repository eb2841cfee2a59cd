#!/usr/bin/env python3
"""Acceptance cases for Genie on a real Slurm cluster: the SPANK plugin
(genie_spank.so, option --genie-phases) and the cli_filter (configs/
cli_filter.lua) that sizes the step, on the one-node cluster that
tests/slurm/cluster.sh starts as a CTest fixture.

  slurm_test.py CASE        CASE: one of CASES at the end (smoke, help, bad_specs, ...)

Run from the repository root with SLURM_CONF pointing at the test cluster's
slurm.conf (CTest sets it; tests/slurm/README.md says how to run by hand).
Every case prints what it checks, the output of any command that did not do
what was expected, and ends with one line "PASS: ..." or "FAIL: ...".
Exit status: 0 pass, 1 fail, 77 skipped (the cluster fixture did not start,
e.g. not root or the plugin not built); CTest's SKIP_RETURN_CODE is 77.
"""

import glob
import os
import re
import select
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import traceback

SKIP = 77

# What the plugin is configured with in plugstack.conf (cluster.sh):
# allowed_phases=prefill,decode,vision max_slices=8.
BAD_SPECS = [
    "",                        # empty
    "prefill",                 # no count
    "prefill:",                # empty count
    "prefill:0",               # zero slices
    "prefill:-1",              # negative
    "prefill:x",               # not a number
    ":3",                      # no name
    "prefill:2,prefill:1",     # phase given twice
    "embed:1",                 # not in allowed_phases
    "prefill:99999999999",     # overflows
    "prefill:5,decode:4",      # 9 slices > max_slices=8
    "decode:1+",               # nothing after '+'
    "decode:+1",               # no count before '+'
    "prefill:4+1,decode:4",    # 9 slices, the spare included, > max_slices=8
]
# Specs also tried through sbatch (each costs about a second).
BAD_SPECS_SBATCH = ["prefill:x", "prefill:5,decode:4"]

GENIE_OPTIONS = ["--genie-phases", "--genie-restore", "--genie-checkpoint-dir", "--genie-config"]

# A line of the plugin's: "genie: ..." as printed by slurm_error() in srun,
# sbatch or slurmstepd ("srun: error: genie: ...").
GENIE_LINE = re.compile(r"^(?:(?:srun|sbatch|salloc|slurmstepd(?:-\S+)?): (?:error: )?)?genie: ")


class Result:
    def __init__(self, argv, rc, out, err, secs, timed_out=False):
        self.argv, self.rc, self.out, self.err = argv, rc, out, err
        self.secs, self.timed_out = secs, timed_out

    def show(self, why=""):
        print(f"--- {why or 'command'}: {shlex.join(self.argv)}")
        state = "timed out" if self.timed_out else f"exit {self.rc}"
        print(f"--- {state} after {self.secs:.1f} s; stdout:")
        print(self.out.rstrip("\n") or "(empty)")
        print("--- stderr:")
        print(self.err.rstrip("\n") or "(empty)")
        print("---", flush=True)


def run(argv, timeout, env=None, job_name=None):
    """Run argv, return a Result; never raises on failure or timeout.  A
    timed-out srun/sbatch is killed and its job cancelled by name, so that
    the next case finds the node free."""
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, env=env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        return Result(argv, proc.returncode, out, err, time.monotonic() - t0)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        if job_name:
            subprocess.run(["scancel", "--name", job_name], env=env, timeout=30,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return Result(argv, 124, out, err, time.monotonic() - t0, timed_out=True)


def genie_lines(text):
    return [l for l in text.splitlines() if "genie:" in l]


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    return 1


def ok_line(msg):
    print(f"PASS: {msg}", flush=True)
    return 0


def state_dir():
    return os.path.dirname(os.path.abspath(os.environ["SLURM_CONF"]))


def check_cluster():
    """None when the cluster answers; otherwise the exit status for the case:
    77 when the fixture did not start the cluster (it skipped), 1 when it
    started it and the cluster no longer answers (that is a failure, not a
    reason to skip)."""
    conf = os.environ.get("SLURM_CONF")
    if not conf or not os.path.isfile(conf):
        print(f"skipped: no test cluster (SLURM_CONF={conf!r} is not a file)")
        return SKIP
    up_file = os.path.join(state_dir(), "up")
    r = run(["sinfo", "-h", "-o", "%T"], timeout=30)
    if r.rc == 0 and r.out.strip():
        return None
    if not os.path.exists(up_file):
        print(f"skipped: the test cluster of {conf} is not up (the slurm_cluster_start fixture "
              "skipped or failed; see its output)")
        return SKIP
    r.show("sinfo")
    return fail(f"the test cluster of {conf} was started but does not answer; "
                f"logs: {state_dir()}/log/")


# --- cases -------------------------------------------------------------------

def case_smoke(tmp):
    """srun -n1 hostname on the cluster, with no genie option: the cluster
    works, and the plugin and the cli_filter leave a plain step alone."""
    print("checks: srun -n1 hostname prints this host; srun -n1 env without --genie-phases "
          "has SLURM_NTASKS=1, no GPUs and no GENIE_* variable the caller did not set; "
          "no 'genie:' line on stderr")
    host = run(["hostname", "-s"], timeout=10).out.strip()
    r = run(["srun", "-n1", "-t", "1", "-J", "genie-smoke", "hostname"], timeout=120,
            job_name="genie-smoke")
    problems = []
    if r.rc != 0 or r.out.strip().split(".")[0] != host:
        r.show("srun hostname")
        problems.append(f"srun -n1 hostname: exit {r.rc}, printed {r.out.strip()!r}, want {host!r}")
    r2 = run(["srun", "-n1", "-t", "1", "-J", "genie-smoke", "env"], timeout=120,
             job_name="genie-smoke")
    env = dict(l.split("=", 1) for l in r2.out.splitlines() if "=" in l)
    added = {k: v for k, v in env.items()
             if k.startswith("GENIE_") and os.environ.get(k) != v}
    if r2.rc != 0:
        r2.show("srun env")
        problems.append(f"srun -n1 env: exit {r2.rc}")
    else:
        if env.get("SLURM_NTASKS") != "1":
            problems.append(f"SLURM_NTASKS={env.get('SLURM_NTASKS')!r}, want '1' "
                            "(the cli_filter changed a step without --genie-phases?)")
        if env.get("SLURM_STEP_GPUS") or env.get("CUDA_VISIBLE_DEVICES"):
            problems.append("a step without --gpus got GPUs: SLURM_STEP_GPUS="
                            f"{env.get('SLURM_STEP_GPUS')!r} CUDA_VISIBLE_DEVICES="
                            f"{env.get('CUDA_VISIBLE_DEVICES')!r}")
        if added:
            problems.append(f"GENIE_* set in the task without --genie-phases: {added}")
    for res in (r, r2):
        if genie_lines(res.err):
            res.show("genie output without --genie-phases")
            problems.append("'genie:' on stderr of a step without --genie-phases")
    for p in problems:
        print(f"  problem: {p}")
    if problems:
        return fail(f"{len(problems)} problem(s) with a plain step")
    return ok_line(f"srun -n1 hostname -> {host}; a plain step is left alone")


def help_text(lines, opt):
    """The help text of opt in `srun --help` output: what follows the option
    (and its argument) on its line, or the indented line(s) under it when
    the option is too long to share its line."""
    pat = re.compile(r"^\s+" + re.escape(opt) + r"(?:=\S+)?(?:\s+(.*))?$")
    for i, line in enumerate(lines):
        m = pat.match(line)
        if not m:
            continue
        text = (m.group(1) or "").strip()
        j = i + 1
        # Continuation lines: indented, not a new option, not blank.
        while j < len(lines) and lines[j].strip() and not lines[j].lstrip().startswith("-"):
            text += " " + lines[j].strip()
            j += 1
        return text.strip()
    return None


def case_help(tmp):
    print(f"checks: srun --help lists {', '.join(GENIE_OPTIONS)}, each with help text; "
          "sbatch --help lists them too")
    r = run(["srun", "--help"], timeout=60)
    if r.rc != 0:
        r.show("srun --help")
        return fail(f"srun --help: exit {r.rc}")
    lines = r.out.splitlines()
    problems = []
    for opt in GENIE_OPTIONS:
        text = help_text(lines, opt)
        if text is None:
            problems.append(f"{opt} is not listed")
        elif len(re.findall(r"[A-Za-z]{2,}", text)) < 3:
            problems.append(f"{opt} has no real help text: {text!r}")
        else:
            print(f"  {opt}: {text}")
    # sbatch too: job scripts give the options as #SBATCH lines
    # (jobs/*.sbatch).  In 22.05 sbatch knows a SPANK option only if the
    # plugin registers it with spank_option_register() (the static
    # spank_options table is read by srun alone).
    rs = run(["sbatch", "--help"], timeout=60)
    missing = [o for o in GENIE_OPTIONS if help_text(rs.out.splitlines(), o) is None]
    if rs.rc != 0 or missing:
        problems.append(f"sbatch --help (exit {rs.rc}) does not list {', '.join(missing)}")
    else:
        print(f"  sbatch --help lists all {len(GENIE_OPTIONS)} as well")
    if problems:
        block = [l for l in lines if "genie" in l.lower()]
        print("--- srun --help lines that mention genie:")
        print("\n".join(block) or "(none)")
        for p in problems:
            print(f"  problem: {p}")
        return fail(f"{len(problems)} problem(s) with the options in --help")
    return ok_line(f"srun and sbatch --help list all {len(GENIE_OPTIONS)} options with help text")


def refused(r, marker, what, submit=False):
    """Problems with a run that should have been refused before anything
    launched: exit status, exactly one 'genie:' line, no marker file, and
    for sbatch no job submitted."""
    problems = []
    if r.timed_out:
        problems.append("timed out")
    elif r.rc == 0:
        problems.append("exit status 0")
    lines = genie_lines(r.err)
    if len(lines) != 1:
        problems.append(f"{len(lines)} lines with 'genie:' on stderr, want exactly 1")
    elif not GENIE_LINE.match(lines[0]):
        problems.append(f"the genie line does not start with 'genie:' (after a "
                        f"'srun: error: ' prefix): {lines[0]!r}")
    if genie_lines(r.out):
        problems.append("'genie:' on stdout (errors belong on stderr)")
    if os.path.exists(marker):
        problems.append("the command ran (marker file created)")
    if submit and "Submitted batch job" in r.out:
        problems.append(f"a job was submitted: {r.out.strip()}")
    if problems:
        r.show(what)
    return problems, (lines[0] if len(lines) == 1 else None)


def case_bad_specs(tmp):
    print(f"checks: {len(BAD_SPECS)} bad --genie-phases specs are refused by srun (and "
          f"{len(BAD_SPECS_SBATCH)} by sbatch): non-zero exit, exactly one 'genie:' line, "
          "nothing launched")
    failed = []
    runs = [("srun", s) for s in BAD_SPECS] + [("sbatch", s) for s in BAD_SPECS_SBATCH]
    for n, (tool, spec) in enumerate(runs):
        marker = os.path.join(tmp, f"marker{n}")
        code = f"open({marker!r}, 'w')"
        if tool == "srun":
            argv = ["srun", f"--genie-phases={spec}", "-t", "1", "-J", "genie-bad-spec",
                    "python", "-c", code]
        else:
            argv = ["sbatch", f"--genie-phases={spec}", "-t", "1", "-J", "genie-bad-spec",
                    "-o", os.path.join(tmp, f"sbatch{n}.out"),
                    "--wrap", shlex.join(["python", "-c", code])]
        r = run(argv, timeout=120, job_name="genie-bad-spec")
        if tool == "sbatch" and r.rc == 0:
            # Submitted: give the job the time to run, so that the marker
            # check means something.
            time.sleep(5)
        problems, line = refused(r, marker, f"{tool} --genie-phases={spec!r}",
                                 submit=(tool == "sbatch"))
        if problems:
            failed.append(f"{tool} {spec!r}")
            print(f"  {tool} --genie-phases={spec!r}: FAIL: {'; '.join(problems)}")
        else:
            print(f"  {tool} --genie-phases={spec!r}: refused, exit {r.rc}: {line}")
    if failed:
        return fail(f"{len(failed)} of {len(runs)} bad specs not refused as required: "
                    + ", ".join(failed))
    return ok_line(f"all {len(runs)} bad specs refused with one genie line, nothing launched")


def executor_gpus(text):
    """cuda_visible_devices per executor from generate.py --stats: its lines
    'cuda_visible_devices=<value>' (one per executor), or failing those the
    JSON keys of get_stats()["executors"]."""
    vals = re.findall(r"cuda_visible_devices=(\S*)", text)
    if vals:
        return vals, "summary lines"
    return re.findall(r'"cuda_visible_devices":\s*"([^"]*)"', text), "get_stats JSON"


def check_gpus(text, n):
    """The executors' CUDA_VISIBLE_DEVICES in text: (values, where they were
    found, problems); want n values, each one index, all different."""
    gpus, source = executor_gpus(text)
    if len(gpus) != n:
        return gpus, source, [f"{len(gpus)} executor cuda_visible_devices values found "
                              f"({source}), want {n}: {gpus}"]
    if not all(re.fullmatch(r"\d+", g) for g in gpus):
        return gpus, source, [f"executors' CUDA_VISIBLE_DEVICES must be one index each: {gpus}"]
    if len(set(gpus)) != n:
        return gpus, source, [f"executors share a GPU: CUDA_VISIBLE_DEVICES {gpus}"]
    return gpus, source, []


def step_dirs():
    """The plugin's per-step directories in the rendezvous dir (/tmp):
    genie-<uid>-<jobid>.<stepid>."""
    return {n for n in os.listdir("/tmp") if re.fullmatch(r"genie-\d+-\d+\.\d+", n)}


def left_step_dirs(before, timeout=15.0):
    """Step directories made since `before` still there after up to timeout
    s: the plugin removes its directory in slurmstepd's exit hook, which
    runs after srun has already been told the step ended."""
    deadline = time.monotonic() + timeout
    while True:
        left = sorted(step_dirs() - before)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def case_cpu_only(tmp):
    """A step without GPUs (cli_filter off, -n given, no --gpus) runs its
    executors on the CPU backend (slurm.cpu_fallback defaults to true)."""
    conf = os.path.join(state_dir(), "nofilter", "slurm.conf")
    env = dict(os.environ, SLURM_CONF=conf)
    argv = ["srun", "--genie-phases=prefill:1,decode:1", "-n", "3", "-t", "2", "-J",
            "genie-cpu-only", "sh", "-c",
            'echo "task $SLURM_PROCID role=$GENIE_ROLE backend=$GENIE_BACKEND '
            'phase=$GENIE_PHASE rank=$GENIE_PHASE_RANK"']
    print(f"checks: {shlex.join(argv)} with the cli_filter off and no GPUs: the driver and "
          "2 executors start, the executors with GENIE_BACKEND=cpu and their phase and slice, "
          "and the user is told once that they run on the CPU")
    r = run(argv, timeout=120, env=env, job_name="genie-cpu-only")
    lines = sorted(l for l in r.out.splitlines() if l.startswith("task "))
    want = ["task 0 role=driver backend=auto phase= rank=",
            "task 1 role=executor backend=cpu phase=prefill rank=0",
            "task 2 role=executor backend=cpu phase=decode rank=0"]
    notice = [l for l in r.err.splitlines() if "executors run on the CPU backend" in l]
    if r.rc != 0 or lines != want or len(notice) != 1 or not notice[0].startswith("genie: "):
        r.show("srun")
        return fail(f"exit {r.rc}, tasks said {lines}, want {want}; CPU notice lines "
                    f"{notice} (want exactly one, starting 'genie: ')")
    return ok_line("no GPUs: executors on the CPU backend with their phase and slice")


def case_spares_env(tmp):
    """A spec with a spare slice, sized by the cli_filter, and the checkpoint
    policy of a user's --genie-config in every task's environment; the
    config's spares group is genie-launch's and the plugin ignores it."""
    conf = os.path.join(tmp, "user.conf")
    with open(conf, "w") as f:
        f.write('checkpoint = { dir = "/scratch/cfg-ckpt"; every_steps = 5; every_seconds = 1.5;\n'
                '  keep = 3; term_grace_s = 90; };\nspares = { decode = 3; };\n'
                'request_timeout_s = 12.5;\nbootstrap_timeout_s = 300;\nmemory_mb = 2048;\n')
    os.chmod(tmp, 0o755)
    os.chmod(conf, 0o644)
    show = ('echo "task $SLURM_PROCID $GENIE_ROLE $GENIE_PHASES phase=$GENIE_PHASE '
            'rank=$GENIE_PHASE_RANK gpu=$CUDA_VISIBLE_DEVICES dir=$GENIE_CHECKPOINT_DIR '
            'steps=$GENIE_CHECKPOINT_EVERY_STEPS s=$GENIE_CHECKPOINT_EVERY_S '
            'keep=$GENIE_CHECKPOINT_KEEP grace=$GENIE_TERM_GRACE_S '
            'waits=$GENIE_REQUEST_TIMEOUT_S,$GENIE_HANDOFF_TIMEOUT_S,$GENIE_CHECKPOINT_TIMEOUT_S,'
            '$GENIE_BOOTSTRAP_TIMEOUT_S mem=$GENIE_MEMORY_MB"')
    base = ["srun", "--genie-phases=prefill:1,decode:1+1", "-t", "2", "-J", "genie-spares"]
    steps = [
        (base + [f"--genie-config={conf}", "sh", "-c", show], "/scratch/cfg-ckpt",
         "steps=5 s=1.5 keep=3 grace=90 waits=12.5,60,600,300 mem=2048"),
        (base + [f"--genie-config={conf}", "--genie-checkpoint-dir=/scratch/flag", "sh", "-c",
                 show], "/scratch/flag", "steps=5 s=1.5 keep=3 grace=90 waits=12.5,60,600,300 "
                                         "mem=2048"),
        # no config: the defaults, always passed (the caller's values below replaced)
        (base + ["sh", "-c", show], "", "steps= s= keep= grace= waits=30,60,600,120 mem=0"),
    ]
    print("checks: srun --genie-phases=prefill:1,decode:1+1 (no -n: the cli_filter sizes it "
          "to 4 tasks and 3 GPUs) starts the driver, prefill slice 0 and decode slices 0 and 1 "
          "(the spare), each executor with its own GPU; GENIE_PHASES keeps the '+1'; the "
          "checkpoint group of --genie-config reaches every task (GENIE_CHECKPOINT_DIR: "
          "--genie-checkpoint-dir over the config's dir); without it nothing is set; every "
          "task gets the four timeouts and memory_mb (the config's, else the defaults, even "
          "over the caller's environment)")
    want_roles = {0: ("driver", "", ""), 1: ("executor", "prefill", "0"),
                  2: ("executor", "decode", "0"), 3: ("executor", "decode", "1")}
    # srun passes the caller's environment on: none of these may come from it
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GENIE_CHECKPOINT_", "GENIE_TERM_GRACE_S", "GENIE_RESTORE_DIR"))}
    # ... and these the plugin must replace with genie.conf's values
    env.update(GENIE_REQUEST_TIMEOUT_S="0", GENIE_CHECKPOINT_TIMEOUT_S="1", GENIE_MEMORY_MB="7")
    for argv, ckpt_dir, policy in steps:
        r = run(argv, timeout=120, env=env, job_name="genie-spares")
        tasks = {}
        for line in r.out.splitlines():
            parts = line.split()
            if len(parts) >= 4 and parts[0] == "task":
                # "task ID ROLE SPEC key=value ...", empty values included
                tasks[int(parts[1])] = (parts[2], parts[3],
                                        dict(p.split("=", 1) for p in parts[4:] if "=" in p))
        problems = []
        if r.rc != 0:
            problems.append(f"exit {'timeout' if r.timed_out else r.rc}")
        roles = {t: (v[0], v[2].get("phase"), v[2].get("rank")) for t, v in tasks.items()}
        if roles != want_roles:
            problems.append(f"tasks (role, phase, slice) {roles}, want {want_roles}")
        if any(v[1] != "prefill:1,decode:1+1" for v in tasks.values()):
            problems.append("GENIE_PHASES is not prefill:1,decode:1+1 in every task")
        gpus = [tasks[t][2].get("gpu", "") for t in (1, 2, 3) if t in tasks]
        if len(set(gpus)) != 3 or not all(re.fullmatch(r"\d+", g) for g in gpus):
            problems.append(f"the executors' CUDA_VISIBLE_DEVICES {gpus}: want one each, "
                            "all different")
        want_env = dict(p.split("=", 1) for p in f"dir={ckpt_dir} {policy}".split(" "))
        for t, v in sorted(tasks.items()):
            got = {k: v[2].get(k) for k in want_env}
            if got != want_env:
                problems.append(f"task {t}: checkpoint settings {got}, want {want_env}")
        if problems:
            r.show(shlex.join(argv))
            for p in problems:
                print(f"  problem: {p}")
            return fail(f"spare slice / checkpoint settings: {'; '.join(problems)}")
        print(f"  {shlex.join(a for a in argv if a.startswith('--genie-'))}: 4 tasks, executor "
              f"GPUs {gpus}, dir={ckpt_dir!r} {policy}")
    return ok_line("a spare slice is a task with its own GPU; the checkpoint policy reaches "
                   "every task")


def case_generate(tmp):
    argv = ["srun", "--genie-phases=prefill:2,decode:1", "-t", "5", "-J", "genie-generate",
            "python", "jobs/examples/generate.py", "--check", "--stats"]
    print(f"checks: {shlex.join(argv)} (no -n, no --gpus: the cli_filter sizes the step "
          "to 4 tasks and 3 GPUs) exits 0, its tokens match PyTorch, and the 3 executors "
          "each see one GPU, all different; the step's rendezvous directory is gone after")
    before = step_dirs()
    r = run(argv, timeout=600, job_name="genie-generate")
    problems = []
    left = left_step_dirs(before)
    if left:
        problems.append(f"the step left its rendezvous directory behind: {left}")
    if r.rc != 0:
        problems.append(f"exit {'timeout' if r.timed_out else r.rc}")
    out = r.out + r.err
    m = re.search(r"^all (\d+) prompts match$", r.out, re.M)
    if not m:
        problems.append("no 'all N prompts match' line (tokens not checked against PyTorch, "
                        "or they differ)")
    if re.search(r"MISMATCH", out):
        problems.append("a prompt's tokens differ from PyTorch")
    if not re.search(r"mode=distributed", out):
        problems.append("genie did not run in the distributed mode")
    gpus, source, gpu_problems = check_gpus(out, 3)
    problems += gpu_problems
    if problems:
        r.show("generate")
        for p in problems:
            print(f"  problem: {p}")
        return fail(f"generate through srun: {'; '.join(problems)}")
    return ok_line(f"{m.group(0)}; executors' CUDA_VISIBLE_DEVICES {', '.join(gpus)} "
                   f"({source}); {r.secs:.0f} s")


def case_nofilter(tmp):
    conf = os.path.join(state_dir(), "nofilter", "slurm.conf")
    env = dict(os.environ, SLURM_CONF=conf)
    marker = os.path.join(tmp, "marker")
    argv = ["srun", "--genie-phases=prefill:2,decode:1", "-t", "1", "-J", "genie-nofilter",
            "python", "-c", f"open({marker!r}, 'w')"]
    print(f"checks: with the cli_filter off (SLURM_CONF={conf}), {shlex.join(argv)} fails "
          "before any task runs, with a genie: message naming '-n 4' and '--gpus=3'")
    if not os.path.isfile(conf):
        return fail(f"{conf} missing (cluster.sh writes it)")
    r = run(argv, timeout=120, env=env, job_name="genie-nofilter")
    problems = []
    if r.timed_out:
        problems.append("timed out")
    elif r.rc == 0:
        problems.append("exit status 0")
    lines = genie_lines(r.err)
    named = [l for l in lines if GENIE_LINE.match(l) and "-n 4" in l and "--gpus=3" in l]
    if not named:
        problems.append(f"no genie: line on stderr naming both '-n 4' and '--gpus=3' "
                        f"(genie lines: {lines})")
    if os.path.exists(marker):
        problems.append("a task ran (marker file created)")
    if problems:
        r.show("srun without the cli_filter")
        for p in problems:
            print(f"  problem: {p}")
        return fail(f"without the cli_filter: {'; '.join(problems)}")
    extra = f" ({len(lines)} genie lines)" if len(lines) > 1 else ""
    return ok_line(f"refused, exit {r.rc}, nothing ran: {named[0]}{extra}")


def sbatch_case(tmp, script, tag, match_re, n_gpus, what, script_args=(), extra_re=()):
    """sbatch --wait a template; pass iff the job exits 0, its output has a
    line matching match_re (and each of extra_re) and n_gpus executors each
    saw one GPU, all different."""
    out_file = os.path.join(tmp, f"{tag}.out")
    argv = ["sbatch", "--wait", "-J", f"genie-{tag}", "-t", "10", "-o", out_file, script,
            *script_args]
    print(f"checks: {shlex.join(argv)} completes with exit 0, its output shows {what} and "
          f"{n_gpus} executors on {n_gpus} different GPUs (the srun inside inherits "
          "--genie-phases, the task count and the GPUs)")
    if not os.path.isfile(script):
        return fail(f"{script} does not exist")
    r = run(argv, timeout=600, job_name=f"genie-{tag}")
    try:
        with open(out_file, errors="replace") as f:
            job_out = f.read()
    except OSError as e:
        job_out = f"(cannot read {out_file}: {e})"
    problems = []
    if r.rc != 0:
        problems.append(f"sbatch --wait: exit {'timeout' if r.timed_out else r.rc}")
    m = re.search(match_re, job_out, re.M)
    if not m:
        problems.append(f"no line matching {match_re!r} in the job's output")
    for rx in extra_re:
        if not re.search(rx, job_out, re.M):
            problems.append(f"no line matching {rx!r} in the job's output")
    gpus, source, gpu_problems = check_gpus(job_out, n_gpus)
    problems += gpu_problems
    if problems:
        r.show("sbatch")
        print(f"--- job output {out_file}:")
        print(job_out.rstrip("\n") or "(empty)")
        print("---")
        for p in problems:
            print(f"  problem: {p}")
        return fail(f"{script}: {'; '.join(problems)}")
    return ok_line(f"{script}: job exit 0, {m.group(0)}; executors' CUDA_VISIBLE_DEVICES "
                   f"{', '.join(gpus)}; {r.secs:.0f} s")


def case_sbatch_llm(tmp):
    return sbatch_case(tmp, "jobs/llm-serving.sbatch", "sbatch-llm", r"^all (\d+) prompts match$",
                       3, "the tokens match PyTorch")


def case_sbatch_vision(tmp):
    return sbatch_case(tmp, "jobs/vision-pipeline.sbatch", "sbatch-vision",
                       r"^all (\d+) images match.*$", 2, "the ViT's logits and labels match PyTorch")


def case_restore(tmp):
    """Checkpoints under srun, every task killed mid-generation, then the
    restore template: every session continues with identical tokens."""
    ckpt = os.path.join(tmp, "ckpt")
    os.makedirs(ckpt)
    os.chmod(tmp, 0o755)
    argv = ["srun", "--genie-phases=prefill:1,decode:2", f"--genie-checkpoint-dir={ckpt}",
            "-t", "5", "-J", "genie-ckpt", "python", "tests/fault/fault_app.py",
            "--prompts", "8", "--new-tokens", "64", "--kill-all-at", "24",
            "--out", os.path.join(tmp, "first.json")]
    env = dict(os.environ, GENIE_CHECKPOINT_EVERY_STEPS="8")
    print(f"checks: {shlex.join(argv)} writes checkpoints every 8 steps and dies (SIGKILL of "
          "every task at step 24); then sbatch jobs/restore-after-node-loss.sbatch on its "
          "directory continues all 8 sessions with tokens identical to PyTorch")
    r = run(argv, timeout=600, env=env, job_name="genie-ckpt")
    manifests = sorted(glob.glob(os.path.join(ckpt, "epoch-*", "manifest.h5")))
    problems = []
    if os.path.exists(os.path.join(tmp, "first.json")):
        problems.append("the first job finished instead of dying at step 24")
    if not manifests:
        problems.append(f"the first job left no complete checkpoint in {ckpt}")
    if problems:
        r.show("srun with checkpoints")
        return fail(f"checkpointing step: {'; '.join(problems)}")
    print(f"first step: exit {r.rc} after {r.secs:.0f} s, {len(manifests)} complete epochs")
    return sbatch_case(tmp, "jobs/restore-after-node-loss.sbatch", "sbatch-restore",
                       r"^all 8 prompts match$", 3, "the restored sessions' tokens match PyTorch",
                       script_args=(ckpt,), extra_re=(r"genie: restore: 8 sessions continue",))


def case_launch_in_allocation(tmp):
    """genie-launch inside an allocation starts its ranks with srun --multi-prog
    (no --genie-phases: the launcher sets the environment itself)."""
    launch = os.path.join(os.path.dirname(os.environ.get("GENIE_EXECUTOR", "")), "genie-launch")
    argv = ["salloc", "-n", "4", "-t", "5", "-J", "genie-launch-alloc", launch, "-v",
            "--phases", "prefill:2,decode:1", "--", "python", "jobs/examples/generate.py",
            "--check", "--stats"]
    print(f"checks: {shlex.join(argv)} exits 0, genie-launch used srun, and the tokens match "
          "PyTorch with 2 prefill ranks and 1 decode rank")
    if not os.access(launch, os.X_OK):
        return fail(f"{launch} is not built (GENIE_EXECUTOR={os.environ.get('GENIE_EXECUTOR')})")
    r = run(argv + [], timeout=600, job_name="genie-launch-alloc")
    out = r.out + r.err
    problems = []
    if r.rc != 0:
        problems.append(f"exit {'timeout' if r.timed_out else r.rc}")
    m = re.search(r"^all (\d+) prompts match$", r.out, re.M)
    if not m:
        problems.append("no 'all N prompts match' line")
    if not re.search(r"^genie-launch: .*\bsrun\b", r.err, re.M):
        problems.append("genie-launch -v does not say it started the ranks with srun")
    if len(re.findall(r"^prefill rank \d+: [1-9]", r.out, re.M)) != 2:
        problems.append("not both prefill ranks did prefill work")
    if problems:
        r.show("salloc genie-launch")
        for p in problems:
            print(f"  problem: {p}")
        return fail(f"genie-launch inside an allocation: {'; '.join(problems)}")
    return ok_line(f"genie-launch through srun: {m.group(0)}; {r.secs:.0f} s")


def _environ(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
    except OSError:
        return None


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _start_time(pid):
    """(state, start time in clock ticks) of pid, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return rest[0], int(rest[19])
    except (OSError, IndexError, ValueError):
        return None


def _running(proc):
    """The process (pid, start time) is alive and not a zombie: a pid with
    another start time is a later process that reused the number."""
    st = _start_time(proc[0])
    return st is not None and st[1] == proc[1] and st[0] != "Z"


def _job_tasks(job_id):
    """{(pid, start time): (SLURM_PROCID, cmdline)} of this node's processes
    of job_id."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        env = _environ(int(d))
        st = _start_time(int(d))
        if env is not None and st is not None and env.get(b"SLURM_JOB_ID") == job_id.encode() \
                and b"SLURM_PROCID" in env:
            out[(int(d), st[1])] = (env[b"SLURM_PROCID"].decode(), _cmdline(int(d)))
    return out


class _Lines:
    """The lines of a pipe, read without blocking for longer than asked."""

    def __init__(self, stream):
        self.stream, self.buf, self.lines, self.eof = stream, b"", [], False

    def read(self, timeout):
        deadline = time.monotonic() + timeout
        while not self.eof:
            r, _, _ = select.select([self.stream], [], [], max(0.0, deadline - time.monotonic()))
            if not r:
                return
            chunk = os.read(self.stream.fileno(), 4096)
            if not chunk:
                self.eof = True
                if self.buf:
                    self.lines.append(self.buf.decode(errors="replace"))
                return
            self.buf += chunk
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                self.lines.append(line.decode(errors="replace"))

    def until(self, want, timeout):
        """Read until a line starts with want; that line, or None after timeout."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline and not self.eof:
            self.read(min(0.2, max(0.0, deadline - time.monotonic())))
            for line in self.lines[seen:]:
                if line.startswith(want):
                    return line
            seen = len(self.lines)
        return None


DRIVER_CONNECT_SLEEP = ("import sys, time, genie\n"
                        "info = genie.init()\n"
                        "print('connected', info['mode'], info['executors'], flush=True)\n"
                        "time.sleep(600)\n")
# What an executor prints when it leaves because its driver is gone
# (launcher/executor_serve.c, genie_server_run).
LEFT_LINE = re.compile(r"genie: rank (\d+) \([a-z]+ slice \d+\): rank 0 \(the driver, pid (\d+) "
                       r"on [^)]*\) was lost: .*: exiting")


def case_driver_killed(tmp):
    """Executors never outlive their driver: SIGKILL of task 0 (the user's
    python) of a running srun --genie-phases step leaves no genie-executor
    task of the step running 10 s later, and they leave on their own (each
    says that its driver was lost; Slurm does not end a step when one task
    dies)."""
    name = "genie-driver-killed"
    argv = ["srun", "--genie-phases=prefill:1,decode:1", "-t", "3", "-J", name,
            "python", "-c", DRIVER_CONNECT_SLEEP]
    print(f"checks: {shlex.join(argv[:-2])} -c '<connect, then sleep>': once the driver "
          "has connected to its 2 executors, SIGKILL the driver task; within 10 s no "
          "genie-executor process of the job (by pid and start time) may still run, and each "
          "must say that it leaves because its driver was lost")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    out = _Lines(proc.stdout)

    def failed(msg):
        print("--- srun output:\n" + "\n".join(out.lines))
        return fail(msg)

    try:
        connected = out.until("connected", 300)
        if connected != "connected distributed 2":
            return failed(f"the driver did not connect to 2 executors (line {connected!r})")
        q = run(["squeue", "-h", "-n", name, "-o", "%i"], timeout=30)
        job_ids = q.out.split()
        if len(job_ids) != 1:
            return failed(f"squeue -n {name}: {q.out!r} (want one job)")
        tasks = _job_tasks(job_ids[0])
        drivers = [p for p, (rank, cmd) in tasks.items() if rank == "0" and cmd[1:2] == ["-c"]]
        executors = [p for p, (rank, cmd) in tasks.items()
                     if rank != "0" and os.path.basename((cmd or [""])[0]) == "genie-executor"]
        if len(drivers) != 1 or len(executors) != 2:
            return failed(f"job {job_ids[0]}: want 1 driver and 2 genie-executor tasks, found "
                          f"{tasks}")
        os.kill(drivers[0][0], signal.SIGKILL)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10 and any(_running(p) for p in executors):
            out.read(0.1)
        gone_s = time.monotonic() - t0
        left = [p[0] for p in executors if _running(p)]
        if left:
            return failed(f"{len(left)} genie-executor task(s) of job {job_ids[0]} still running "
                          f"10 s after SIGKILL of the driver: {left}")
        deadline = time.monotonic() + 60
        while not out.eof and time.monotonic() < deadline:
            out.read(deadline - time.monotonic())
        try:
            rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return failed("srun still running 60 s after its executors left")
        said = [m for m in map(LEFT_LINE.fullmatch, out.lines) if m]
        if sorted(int(m.group(1)) for m in said) != [1, 2] or \
                any(int(m.group(2)) != drivers[0][0] for m in said):
            return failed(f"each executor must say once that it leaves because its driver "
                          f"(pid {drivers[0][0]}) was lost")
        if rc == 0:
            return failed("srun exited 0 though its driver task was killed")
        print("--- srun output:\n" + "\n".join(out.lines))
        return ok_line(f"no executor left {gone_s:.1f} s after SIGKILL of the driver task; "
                       f"each said its driver was lost; srun exit {rc}")
    finally:
        subprocess.run(["scancel", "--name", name], timeout=30, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=60)
        proc.stdout.close()


CASES = {
    "smoke": case_smoke,
    "help": case_help,
    "bad_specs": case_bad_specs,
    "generate": case_generate,
    "nofilter": case_nofilter,
    "sbatch_llm": case_sbatch_llm,
    "sbatch_vision": case_sbatch_vision,
    "launch_in_allocation": case_launch_in_allocation,
    "cpu_only": case_cpu_only,
    "restore": case_restore,
    "spares_env": case_spares_env,
    "driver_killed": case_driver_killed,
}


def main(argv):
    if len(argv) != 2 or argv[1] not in CASES:
        print(f"usage: {argv[0]} {{{','.join(CASES)}}}", file=sys.stderr)
        return 2
    name = argv[1]
    print(f"slurm case {name}: SLURM_CONF={os.environ.get('SLURM_CONF')}", flush=True)
    status = check_cluster()
    if status is not None:
        return status
    with tempfile.TemporaryDirectory(prefix=f"genie-slurm-{name}-") as tmp:
        try:
            return CASES[name](tmp)
        except Exception as e:          # a bug in this file is a failure too
            traceback.print_exc()
            return fail(f"{type(e).__name__}: {e}")


if __name__ == "__main__":
    sys.exit(main(sys.argv))

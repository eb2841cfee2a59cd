"""genie-launch: command line, config file, --dry-run, --driver-shim, and
real runs through Open MPI.

Every refusal must be exactly one stderr line starting "genie-launch: ",
exit status 2, and nothing created.  The binary is build/bin/genie-launch;
the real runs also need build/bin/genie-executor and mpirun.
"""
import os
import random
import select
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "build" / "bin" / "genie-launch"
EXECUTOR = ROOT / "build" / "bin" / "genie-executor"
CONF = ROOT / "configs" / "genie.conf"

pytestmark = pytest.mark.skipif(
    not LAUNCH.exists(), reason="build/bin/genie-launch is not built (cmake --build build)")

# The variables of genie.conf's timeouts (configs/genie.conf, "timeouts").
WAITS = ("GENIE_REQUEST_TIMEOUT_S", "GENIE_HANDOFF_TIMEOUT_S", "GENIE_CHECKPOINT_TIMEOUT_S",
         "GENIE_BOOTSTRAP_TIMEOUT_S")

needs_executor = pytest.mark.skipif(
    not EXECUTOR.exists() or shutil.which("mpirun") is None,
    reason="real runs need build/bin/genie-executor and Open MPI's mpirun")


@pytest.fixture
def env(tmp_path):
    """An environment independent of the machine: a private TMPDIR, a stand-in
    executor and mpirun (only --dry-run and refusals use it), no Slurm, no
    UCX_* or GENIE_* variables from the caller."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    fake = tmp_path / "fakebin"
    fake.mkdir()
    for name in ("mpirun", "srun", "genie-executor"):
        p = fake / name
        p.write_text("#!/bin/sh\nexit 99\n")
        p.chmod(0o755)
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(("GENIE_", "UCX_", "SLURM_"))}
    e.update(TMPDIR=str(tmp), GENIE_EXECUTOR=str(fake / "genie-executor"),
             GENIE_MPIRUN=str(fake / "mpirun"))
    e["PATH"] = "/usr/bin:/bin"
    return e


def run(args, env, timeout=60, **kw):
    return subprocess.run([str(LAUNCH)] + list(args), env=env, capture_output=True,
                          timeout=timeout, **kw)


def assert_refused(p, needle=None):
    """Exit 2, nothing on stdout, exactly one stderr line "genie-launch: ..."."""
    err = p.stderr
    assert p.returncode == 2, (p.returncode, err)
    assert p.stdout == b"", p.stdout
    assert err.startswith(b"genie-launch: ") and err.count(b"\n") == 1 and err.endswith(b"\n"), err
    if needle is not None:
        assert needle in err.decode(), err
    return err.decode()


def assert_nothing_created(env):
    assert os.listdir(env["TMPDIR"]) == []


def dry_run(args, env):
    p = run(list(args[:-1]) + ["--dry-run", "--"] + list(args[-1]), env)
    assert p.returncode == 0, p.stderr
    assert p.stderr == b""
    out = p.stdout.decode()
    exports = {}
    cmd = None
    for line in out.splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export "):].partition("=")
            exports[name] = shlex.split(value, comments=True)[0]
        elif line and not line.startswith("#"):
            assert cmd is None, "one command line"
            cmd = shlex.split(line)
    assert_nothing_created(env)
    return exports, cmd, out


# --- refusals ---------------------------------------------------------------

@pytest.mark.parametrize("spec, needle", [
    ("prefill:0", "phase 'prefill' has 0 slices"),
    ("foo", "phase 'foo' has no slice count"),
    ("prefill:2,prefill:1", "phase 'prefill' appears more than once"),
    ("", "empty --phases spec"),
    ("prefill:8,", "ends with a comma"),
    ("Prefill:1", "bad character 'P'"),
    # spare slices
    ("decode:+1", "phase 'decode' has no slice count before '+'"),
    ("decode:1+", "phase 'decode' has nothing after '+'"),
    ("decode:1+x", "spare count '1+x', which is not a plain decimal number"),
    ("decode:1+-1", "bad character '-'"),
    ("decode:0+1", "phase 'decode' has 0 slices"),
    ("decode:4096+1", "at most 4096 per phase (spares included)"),
    ("decode:1+99999999999", "too large"),
])
def test_bad_spec(env, spec, needle):
    assert_refused(run(["--phases", spec, "--", "true"], env), needle)
    assert_nothing_created(env)


@pytest.mark.parametrize("args, needle", [
    (["--phases", "prefill:1", "--bogus", "--", "true"], "unknown option '--bogus'"),
    (["--phases", "prefill:1", "true"], "'true' is not an option; put the command after --"),
    (["--phases", "prefill:1"], "no command given"),
    (["--phases", "prefill:1", "--"], "no command after --"),
    (["--phases", "prefill:1", "--", ""], "empty string"),
    (["--phases"], "--phases needs a value"),
    (["--phases", "--", "true"], "--phases needs a value"),
    (["--", "true"], "no phase spec"),
    (["--phases", "prefill:1", "--threads", "-3", "--", "true"], "--threads '-3'"),
    (["--phases", "prefill:1", "--threads", "4097", "--", "true"], "0..4096"),
    (["--phases", "prefill:1", "--backend", "gpu", "--", "true"], "--backend 'gpu'"),
    (["--phases", "prefill:1", "--kv-mode=foo", "--", "true"], "--kv-mode 'foo'"),
    (["--phases", "prefill:1", "--config", "", "--", "true"], "--config needs a file name"),
    (["--phases", "prefill:1", "--no-srun", "--driver-shim", "x", "--", "true"], "internal"),
    (["--phases", "prefill:1", "--restore", "/nonexistent/ckpt", "--", "true"],
     "--restore /nonexistent/ckpt: no such directory"),
    (["--phases", "prefill:1", "--checkpoint-every", "x", "--", "true"], "--checkpoint-every 'x'"),
    (["--phases", "prefill:1", "--checkpoint-every", "-1", "--", "true"], "--checkpoint-every '-1'"),
    (["--phases", "prefill:1", "--checkpoint-dir", "", "--", "true"], "--checkpoint-dir needs"),
    (["--phases", "prefill:1", "--checkpoint-dir", "a\nb", "--", "true"],
     "--checkpoint-dir must be a directory name of 1..4095 bytes without control characters"),
    (["--phases", "prefill:1", "--checkpoint-dir", "/" + "d" * 4095, "--", "true"],
     "--checkpoint-dir must be a directory name of 1..4095 bytes"),
    (["--phases", "prefill:1", "--checkpoint-every", "1000000001", "--", "true"],
     "--checkpoint-every '1000000001' is not a whole number in 0..1000000000"),
    (["--phases", "prefill:1", "--checkpoint-every", "", "--", "true"], "--checkpoint-every ''"),
    (["--phases", "prefill:1", "--checkpoint-every", "--", "true"], "--checkpoint-every needs"),
    (["--phases", "prefill:1", "--restore", "", "--", "true"], "--restore : no such directory"),
    (["--phases", "prefill:1", "--restore", "--", "true"], "--restore needs a value"),
])
def test_bad_command_line(env, args, needle):
    assert_refused(run(args, env), needle)
    assert_nothing_created(env)


def test_missing_executor_and_mpirun(env, tmp_path):
    e = dict(env, GENIE_EXECUTOR=str(tmp_path / "nope"))
    assert_refused(run(["--phases", "prefill:1", "--", "true"], e), "GENIE_EXECUTOR=")
    e = dict(env, GENIE_MPIRUN=str(tmp_path / "nope"))
    assert_refused(run(["--phases", "prefill:1", "--", "true"], e), "GENIE_MPIRUN=")
    e = dict(env, PATH=str(tmp_path))
    del e["GENIE_MPIRUN"]
    assert_refused(run(["--phases", "prefill:1", "--", "true"], e), "mpirun not found on PATH")
    assert_nothing_created(env)


def test_colon_argument_refused_for_mpirun(env):
    assert_refused(run(["--phases", "prefill:1", "--dry-run", "--", "echo", ":"], env),
                   "argument 2 of the command is ':'")


@pytest.mark.parametrize("text, needle", [
    ("threads = 4;\nbackend = ;\n", ":2: syntax error"),
    ("\n\nfoo = 1;\n", ":3: unknown key 'foo'"),
    ("threads = \"4\";\n", ":1: threads must be an integer"),
    ("kv_mode = \"foo\";\n", ":1: kv_mode 'foo' is not one of colocated, blind"),
    ("kv_mode = 1;\n", ":1: kv_mode must be a string"),
    ("threads = -3;\n", ":1: threads = -3 is out of range"),
    ("arena_mb = 0;\n", ":1: arena_mb = 0 is out of range"),
    ("backend = \"gpu\";\n", ":1: backend 'gpu' is not one of cpu, cuda, auto"),
    # every wait is bounded: 0 and below, non-numbers and too large are refused
    *[row for key, default in [("request_timeout_s", 30), ("handoff_timeout_s", 60),
                               ("checkpoint_timeout_s", 600), ("bootstrap_timeout_s", 120)]
      for row in [
          (f"{key} = 0;\n", f":1: {key} = 0 is refused: every wait is bounded, there is no 0 "
           f"for 'forever'; give 0.001 to 1000000 seconds (e.g. {key} = {default};)"),
          (f"{key} = 0.0;\n", f":1: {key} = 0 is refused: every wait is bounded"),
          (f"{key} = -1.5;\n", f":1: {key} = -1.5 is refused: every wait is bounded"),
          (f"{key} = -3;\n", f":1: {key} = -3 is refused: every wait is bounded"),
          (f"{key} = \"1\";\n", f":1: {key} must be a number of seconds (e.g. {key} = "
           f"{default};), not a string"),
          (f"{key} = true;\n", f":1: {key} must be a number of seconds"),
          (f"{key} = 1000001;\n", f":1: {key} = 1000001 is out of range; give 0.001 to "
           "1000000 seconds"),
          (f"{key} = 1e9;\n", f":1: {key} = 1000000000 is out of range"),
          (f"{key} = 0.0001;\n", f":1: {key} = 0.0001 is out of range"),
          (f"{key} = 4294967297;\n", ":1: the integer 4294967297 does not fit in 32 bits"),
      ]],
    ("memory_mb = -1;\n", ":1: memory_mb = -1 is out of range; give 0..1073741824 (e.g. "
     "memory_mb = 4096; or 0 for the node's physical memory)"),
    ("memory_mb = 1073741825;\n", ":1: memory_mb = 1073741825 is out of range"),
    ("memory_mb = 4294968320L;\n", ":1: memory_mb = 4294968320 is out of range"),
    ("memory_mb = 1.5;\n", ":1: memory_mb must be an integer"),
    ("memory_mb = \"4096\";\n", ":1: memory_mb must be an integer"),
    # libconfig 1.5 reads an integer without L into 32 bits (4294968320 would
    # be 1024): refused with its line, wherever it is
    ("\n\nmemory_mb = 4294968320;\n",
     ":3: the integer 4294968320 does not fit in 32 bits, and libconfig would read it as "
     "another number"),
    ("threads = 4294967297;\n", ":1: the integer 4294967297 does not fit in 32 bits"),
    ("threads = -2147483649;\n", ":1: the integer -2147483649 does not fit in 32 bits"),
    ("threads = 0x100000004;\n", ":1: the integer 0x100000004 does not fit in 32 bits"),
    ("ucx = {\n  keepalive_ms = 4294967297; };\n", ":2: the integer 4294967297 does not fit"),
    ("phases = \"prefill:0\";\n", ":1: phases: phase 'prefill' has 0 slices"),
    ("phases = \"\";\n", ":1: phases is empty"),
    ("ucx = 3;\n", ":1: ucx must be a group"),
    ("ucx = { tls = \"tcp\";\n  bogus = 1; };\n", ":2: unknown key 'ucx.bogus'"),
    ("ucx = { tls = \"a b\"; };\n", ":1: ucx.tls has a bad character ' '"),
    ("ucx = { keepalive_ms = 0; };\n", ":1: ucx.keepalive_ms = 0 is out of range"),
    # the slurm group (genie_spank.so's policy) is checked by the same reader
    ("slurm = 1;\n", ":1: slurm must be a group"),
    ("slurm = {\n  bogus = 1; };\n", ":2: unknown key 'slurm.bogus'"),
    ("slurm = { slices_per_gpu = 0; };\n", ":1: slurm.slices_per_gpu = 0 is out of range"),
    ("slurm = { slices_per_gpu = { Decode = 2; }; };\n",
     ":1: slurm.slices_per_gpu.Decode = \"Decode\" is not a comma-separated list"),
    ("slurm = { driver_gpu = 1; };\n", ":1: slurm.driver_gpu must be true or false"),
    ("slurm = { rendezvous_dir = \"tmp\"; };\n", ":1: slurm.rendezvous_dir must be an absolute"),
    ("slurm = { allowed_phases = \"prefill,,decode\"; };\n",
     ":1: slurm.allowed_phases = \"prefill,,decode\" is not a comma-separated list"),
    ("slurm = { allowed_phases = \"prefill,\"; };\n", ":1: slurm.allowed_phases = \"prefill,\""),
    ("slurm = { max_slices = -1; };\n", ":1: slurm.max_slices = -1 is out of range"),
    ("checkpoint = 1;\n", ":1: checkpoint must be a group"),
    ("checkpoint = {\n  bogus = 1; };\n", ":2: unknown key 'checkpoint.bogus'"),
    ("checkpoint = { keep = 0; };\n", ":1: checkpoint.keep = 0 is out of range"),
    ("checkpoint = { every_steps = -1; };\n", ":1: checkpoint.every_steps = -1 is out of range"),
    ("checkpoint = { every_seconds = \"1\"; };\n",
     ":1: checkpoint.every_seconds must be a number of seconds"),
    ("checkpoint = { term_grace_s = 0; };\n", ":1: checkpoint.term_grace_s = 0 is out of range"),
    ("checkpoint = { dir = \"\"; };\n", ":1: checkpoint.dir must be a directory name"),
    ("checkpoint = { dir = \"a\\x01b\"; };\n",
     ":1: checkpoint.dir must be a directory name of 1..4095 bytes without control characters"),
    ("checkpoint = { dir = \"/" + "d" * 4095 + "\"; };\n", ":1: checkpoint.dir must be"),
    ("checkpoint = { dir = 1; };\n", ":1: checkpoint.dir must be a string"),
    ("checkpoint = { every_steps = 1000000001; };\n",
     ":1: checkpoint.every_steps = 1000000001 is out of range; give 0..1000000000"),
    ("checkpoint = { every_steps = 1.5; };\n", ":1: checkpoint.every_steps must be an integer"),
    ("checkpoint = { every_steps = \"32\"; };\n", ":1: checkpoint.every_steps must be an integer"),
    ("checkpoint = { every_seconds = -1; };\n", ":1: checkpoint.every_seconds = -1 is out of range"),
    ("checkpoint = { every_seconds = 1e10; };\n",
     ":1: checkpoint.every_seconds = 1e+10 is out of range; give 0 to 1e+09 seconds"),
    ("checkpoint = { keep = 1001; };\n", ":1: checkpoint.keep = 1001 is out of range; give 1..1000"),
    ("checkpoint = { term_grace_s = 86401; };\n",
     ":1: checkpoint.term_grace_s = 86401 is out of range; give 1..86400"),
    ("checkpoint = { term_grace_s = true; };\n", ":1: checkpoint.term_grace_s must be an integer"),
    ("checkpoint = {\n  root = \"/x\"; };\n",
     ":2: unknown key 'checkpoint.root'; the checkpoint group knows dir, every_steps, "
     "every_seconds, keep, term_grace_s"),
    # spares = { phase = count; }: genie-launch adds them to its spec
    ("spares = 1;\n", ":1: spares must be a group"),
    ("spares = { decode = -1; };\n", ":1: spares.decode = -1 is out of range; give 0..4096"),
    ("spares = { decode = 4097; };\n", ":1: spares.decode = 4097 is out of range"),
    ("spares = { decode = \"1\"; };\n", ":1: spares.decode must be an integer"),
    ("spares = { Decode = 1; };\n", ":1: spares.Decode: 'Decode' is not a phase name"),
    ("spares = { " + "a" * 32 + " = 1; };\n", ":1: spares." + "a" * 32 + ": '"),
    ("\nspares = {\n  prefill = 0;\n  decode = 1; };\n",
     ":4: spares.decode: phase 'decode' is not in the phase spec 'prefill:1'"),
])
def test_bad_config(env, tmp_path, text, needle):
    conf = tmp_path / "bad.conf"
    conf.write_text(text)
    msg = assert_refused(run(["--config", str(conf), "--phases", "prefill:1", "--", "true"], env))
    assert msg.startswith(f"genie-launch: {conf}{needle}"), msg
    # the same through $GENIE_CONFIG
    e = dict(env, GENIE_CONFIG=str(conf))
    assert assert_refused(run(["--phases", "prefill:1", "--", "true"], e)) == msg
    assert_nothing_created(env)


def test_slurm_group_accepted(env, tmp_path):
    """A site's genie.conf with a full slurm group also works for genie-launch."""
    conf = tmp_path / "site.conf"
    conf.write_text('slurm = {\n  slices_per_gpu = { default = 1; decode = 4; };\n'
                    '  driver_gpu = true;\n  cpu_fallback = false;\n'
                    '  rendezvous_dir = "/tmp";\n  checkpoint_root = "/scratch/genie";\n'
                    '  allowed_phases = "prefill,decode";\n  max_slices = 64;\n};\n')
    r = run(["--config", str(conf), "--phases", "prefill:1", "--dry-run", "--", "true"], env)
    assert r.returncode == 0, r.stderr


def test_unreadable_config(env, tmp_path):
    assert_refused(run(["--config", str(tmp_path / "none.conf"), "--phases", "a:1", "--", "true"],
                       env), "cannot open the config file")
    assert_refused(run(["--config", str(tmp_path), "--phases", "a:1", "--", "true"], env),
                   "not a regular file")


# --- --dry-run --------------------------------------------------------------

def test_dry_run_mpirun_line(env):
    exports, cmd, out = dry_run(["--phases", "prefill:2,decode:1", ["python", "app.py", "it's"]],
                                env)
    assert exports["GENIE_PHASES"] == "prefill:2,decode:1"
    assert exports["GENIE_BACKEND"] == "auto"
    assert exports["GENIE_KV_MODE"] == "colocated"
    assert exports["GENIE_ARENA_MB"] == "1024"
    assert exports["GENIE_MEMORY_MB"] == "0"
    # every wait, always, with its default
    assert {k: exports[k] for k in WAITS} == {"GENIE_REQUEST_TIMEOUT_S": "30",
                                              "GENIE_HANDOFF_TIMEOUT_S": "60",
                                              "GENIE_CHECKPOINT_TIMEOUT_S": "600",
                                              "GENIE_BOOTSTRAP_TIMEOUT_S": "120"}
    assert exports["GENIE_LAUNCHER"] == "genie-launch"
    job = exports["GENIE_JOB_DIR"]
    assert re.fullmatch(re.escape(env["TMPDIR"]) + r"/genie-\d+-XXXXXX", job), job
    assert exports["GENIE_SECRET_FILE"] == job + "/secret"
    assert exports["UCX_TLS"] == "self,posix,cma,tcp"
    assert exports["UCX_KEEPALIVE_INTERVAL"] == "1000ms"
    assert exports["UCX_POSIX_ERROR_HANDLING"] == "y"
    # only the transport sets it, and only where UCX_TLS may select sysv
    assert "UCX_SYSV_ERROR_HANDLING" not in exports
    cpus = os.cpu_count()
    assert exports["GENIE_THREADS"] == str(max(1, cpus // 3))

    assert cmd[0] == env["GENIE_MPIRUN"]
    for flag in ("--oversubscribe", "-q", "--enable-recovery"):
        assert flag in cmd
    assert cmd[cmd.index("--bind-to") + 1] == "none"
    assert ("--allow-run-as-root" in cmd) == (os.geteuid() == 0)
    exported = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-x"]
    assert sorted(exported) == sorted(exports)
    i = cmd.index("-np")
    assert cmd[i:i + 6] == ["-np", "1", str(LAUNCH), "--driver-shim", job + "/driver.status", "--"]
    assert cmd[i + 6:] == ["python", "app.py", "it's", ":", "-np", "3", env["GENIE_EXECUTOR"]]


def test_verbose_line(env):
    p = run(["-v", "--phases", "prefill:2,decode:1", "--threads", "1", "--dry-run", "--", "true"],
            env)
    assert p.returncode == 0
    assert p.stderr.decode() == ("genie-launch: driver + 3 executors (prefill:2,decode:1), backend "
                                 "auto, threads 1 per executor, via mpirun\n")


def test_cli_overrides_config(env, tmp_path):
    conf = tmp_path / "a.conf"
    conf.write_text('phases = "decode:2";\nthreads = 3;\nbackend = "cpu";\nkv_mode = "blind";\n'
                    'arena_mb = 64;\nrequest_timeout_s = 12.5;\nhandoff_timeout_s = 0.25;\n'
                    'checkpoint_timeout_s = 900;\nbootstrap_timeout_s = 1e3;\nmemory_mb = 4096;\n'
                    'ucx = { tls = "tcp"; keepalive_ms = 250; };\n')
    exports, cmd, _ = dry_run(["--config", str(conf), ["true"]], env)
    assert exports["GENIE_PHASES"] == "decode:2"
    assert exports["GENIE_THREADS"] == "3"
    assert exports["GENIE_BACKEND"] == "cpu"
    assert exports["GENIE_KV_MODE"] == "blind"
    assert exports["GENIE_ARENA_MB"] == "64"
    assert [exports[k] for k in WAITS] == ["12.5", "0.25", "900", "1000"]
    assert exports["GENIE_MEMORY_MB"] == "4096"
    assert exports["UCX_TLS"] == "tcp"
    assert exports["UCX_KEEPALIVE_INTERVAL"] == "250ms"
    assert cmd[-2:] == ["2", env["GENIE_EXECUTOR"]]
    exports, _, _ = dry_run(["--config", str(conf), "--threads", "5", "--phases", "prefill:1",
                             "--backend", "auto", "--kv-mode", "colocated", ["true"]], env)
    assert exports["GENIE_THREADS"] == "5"
    assert exports["GENIE_PHASES"] == "prefill:1"
    assert exports["GENIE_BACKEND"] == "auto"
    assert exports["GENIE_KV_MODE"] == "colocated"
    # $GENIE_CONFIG is used without --config, and --config wins over it
    exports, _, _ = dry_run([["true"]], dict(env, GENIE_CONFIG=str(conf)))
    assert exports["GENIE_THREADS"] == "3"
    other = tmp_path / "b.conf"
    other.write_text('phases = "prefill:4";\n')
    exports, _, _ = dry_run(["--config", str(other), ["true"]], dict(env, GENIE_CONFIG=str(conf)))
    assert exports["GENIE_PHASES"] == "prefill:4"
    assert exports["GENIE_THREADS"] == str(max(1, os.cpu_count() // 4))


def test_checkpoint_settings_reach_every_rank(env, tmp_path):
    conf = tmp_path / "ck.conf"
    conf.write_text('checkpoint = { dir = "/scratch/ck"; every_steps = 5; every_seconds = 30; '
                    'keep = 3; term_grace_s = 9; };\n')
    exports, cmd, _ = dry_run(["--config", str(conf), "--phases", "prefill:1", ["true"]], env)
    assert (exports["GENIE_CHECKPOINT_DIR"], exports["GENIE_CHECKPOINT_EVERY_STEPS"],
            exports["GENIE_CHECKPOINT_EVERY_S"], exports["GENIE_CHECKPOINT_KEEP"],
            exports["GENIE_TERM_GRACE_S"]) == ("/scratch/ck", "5", "30", "3", "9")
    assert "GENIE_RESTORE_DIR" not in exports
    for name in ("GENIE_CHECKPOINT_DIR", "GENIE_TERM_GRACE_S"):
        assert cmd[cmd.index(name) - 1] == "-x"
    # flags over the file; a relative directory becomes absolute; --restore
    # is passed as the directory's real path
    exports, _, _ = dry_run(["--config", str(conf), "--checkpoint-dir", "rel/ck",
                             "--checkpoint-every", "0", "--restore", str(tmp_path),
                             "--phases", "prefill:1", ["true"]], env)
    assert exports["GENIE_CHECKPOINT_DIR"] == os.path.join(os.getcwd(), "rel/ck")
    assert exports["GENIE_CHECKPOINT_EVERY_STEPS"] == "0"
    assert exports["GENIE_RESTORE_DIR"] == os.path.realpath(tmp_path)
    # nothing set: nothing passed, the runtime's defaults apply
    exports, _, _ = dry_run(["--phases", "prefill:1", ["true"]], env)
    assert not [k for k in exports if k not in WAITS and
                ("CHECKPOINT" in k or "RESTORE" in k or "GRACE" in k)]


def test_checkpoint_dir_made_absolute(env, tmp_path):
    """A relative checkpoint directory (flag or file) is taken from the current
    directory, "./" dropped; it need not exist (the driver creates it)."""
    cwd = tmp_path / "work"
    cwd.mkdir()
    conf = tmp_path / "rel.conf"
    conf.write_text('checkpoint = { dir = "./ck/run1"; };\n')
    for args, want in [(["--config", str(conf)], str(cwd / "ck" / "run1")),
                       (["--checkpoint-dir", "./"], str(cwd)),
                       (["--checkpoint-dir", "."], str(cwd)),
                       (["--checkpoint-dir", "x y"], str(cwd / "x y")),
                       (["--config", str(conf), "--checkpoint-dir", "/abs/ck"], "/abs/ck")]:
        p = run(args + ["--phases", "prefill:1", "--dry-run", "--", "true"], env, cwd=cwd)
        assert p.returncode == 0, p.stderr
        exports = dict(ln[len("export "):].split("=", 1) for ln in p.stdout.decode().splitlines()
                       if ln.startswith("export "))
        assert shlex.split(exports["GENIE_CHECKPOINT_DIR"])[0] == want, args
    assert not (cwd / "ck").exists()
    assert_nothing_created(env)


def test_restore_must_be_a_directory(env, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    assert_refused(run(["--phases", "prefill:1", "--restore", str(f), "--", "true"], env),
                   f"--restore {f}: no such directory")
    # a relative one is passed as its absolute real path
    (tmp_path / "ck").mkdir()
    link = tmp_path / "ln"
    link.symlink_to("ck")
    p = run(["--phases", "prefill:1", "--restore", "ln", "--dry-run", "--", "true"], env,
            cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert f"export GENIE_RESTORE_DIR={tmp_path / 'ck'}\n" in p.stdout.decode()
    assert_nothing_created(env)


def test_spare_slices(env, tmp_path):
    """decode:2+1 starts 3 decode executors (one a spare): GENIE_PHASES says
    so, and every count of ranks includes the spares."""
    exports, cmd, _ = dry_run(["--phases", "prefill:1,decode:2+1", ["true"]], env)
    assert exports["GENIE_PHASES"] == "prefill:1,decode:2+1"
    assert cmd[-3:] == ["-np", "4", env["GENIE_EXECUTOR"]]
    assert exports["GENIE_THREADS"] == str(max(1, os.cpu_count() // 4))
    exports, _, _ = dry_run(["--phases", "decode:1+0", ["true"]], env)
    assert exports["GENIE_PHASES"] == "decode:1"     # canonical: no "+0"
    # the config's spares group adds them where the spec gives none
    conf = tmp_path / "sp.conf"
    conf.write_text("spares = { decode = 1; prefill = 0; };\n")
    exports, cmd, _ = dry_run(["--config", str(conf), "--phases", "prefill:2,decode:2", ["true"]],
                              env)
    assert exports["GENIE_PHASES"] == "prefill:2,decode:2+1"
    assert cmd[-3:] == ["-np", "5", env["GENIE_EXECUTOR"]]
    # ... and the spec's own "+S" ("+0" too) wins over the file
    for spec, want in [("prefill:1,decode:2+2", "prefill:1,decode:2+2"),
                       ("prefill:1,decode:2+0", "prefill:1,decode:2")]:
        exports, _, _ = dry_run(["--config", str(conf), "--phases", spec, ["true"]], env)
        assert exports["GENIE_PHASES"] == want
    # the file's own phases too
    conf.write_text('phases = "prefill:1,decode:1";\nspares = { decode = 2; };\n')
    exports, _, _ = dry_run(["--config", str(conf), ["true"]], env)
    assert exports["GENIE_PHASES"] == "prefill:1,decode:1+2"
    # srun: -n and the multi-prog ranges count the spares
    e = dict(env, SLURM_JOB_ID="42", PATH=str(tmp_path / "fakebin") + ":/usr/bin:/bin")
    _, cmd, out = dry_run(["--config", str(conf), ["true"]], e)
    assert cmd[cmd.index("-n") + 1] == "5"
    assert f"#   1-4 '{env['GENIE_EXECUTOR']}'" in out.splitlines()
    # a phase would exceed 4096 slices with the file's spares
    conf.write_text("spares = { decode = 1; };\n")
    assert_refused(run(["--config", str(conf), "--phases", "decode:4096", "--", "true"], env),
                   f"{conf}:1: spares.decode = 1 would give phase 'decode' 4097 slices; "
                   "at most 4096")
    assert_nothing_created(env)


def test_checkpoint_settings_via_srun(env, tmp_path):
    """Inside an allocation the settings reach the ranks through srun
    --export=ALL: they are in the environment genie-launch prints and sets."""
    conf = tmp_path / "ck.conf"
    conf.write_text('checkpoint = { every_seconds = 2.5; term_grace_s = 120; };\n')
    e = dict(env, SLURM_JOB_ID="42", PATH=str(tmp_path / "fakebin") + ":/usr/bin:/bin")
    exports, cmd, _ = dry_run(["--config", str(conf), "--checkpoint-dir", "/scratch/x",
                               "--checkpoint-every", "7", "--restore", str(tmp_path),
                               "--phases", "decode:1+1", ["true"]], e)
    assert "--export=ALL" in cmd
    assert {k: v for k, v in exports.items() if ("CHECKPOINT" in k and k not in WAITS) or k in (
        "GENIE_TERM_GRACE_S", "GENIE_RESTORE_DIR")} == {
        "GENIE_CHECKPOINT_DIR": "/scratch/x", "GENIE_CHECKPOINT_EVERY_STEPS": "7",
        "GENIE_CHECKPOINT_EVERY_S": "2.5", "GENIE_TERM_GRACE_S": "120",
        "GENIE_RESTORE_DIR": os.path.realpath(tmp_path)}


def test_shipped_config_is_the_defaults(env):
    with_conf, _, _ = dry_run(["--config", str(CONF), "--phases", "prefill:1", ["true"]], env)
    without, _, _ = dry_run(["--phases", "prefill:1", ["true"]], env)
    for k in ("GENIE_JOB_DIR", "GENIE_SECRET_FILE"):   # the template holds our pid
        with_conf.pop(k)
        without.pop(k)
    assert with_conf == without


def test_shipped_config_examples_are_valid(env, tmp_path):
    """Every commented-out example key of configs/genie.conf, uncommented,
    is accepted (the documentation does not drift from the reader)."""
    text = re.sub(r"(?m)^(\s*)#([a-z_]+ = )", r"\1\2", CONF.read_text())
    assert "\nspares = " in text and "  term_grace_s = " in text
    conf = tmp_path / "all.conf"
    conf.write_text(text)
    exports, _, _ = dry_run(["--config", str(conf), "--phases", "decode:1", ["true"]], env)
    assert exports["GENIE_PHASES"] == "decode:1+1"
    assert exports["GENIE_TERM_GRACE_S"] == "60" and exports["GENIE_CHECKPOINT_KEEP"] == "2"


def test_waits_reach_every_rank_always(env, tmp_path):
    """Every timeout and the memory budget are passed to every rank (-x), the
    defaults too, replacing what the caller's environment says: all ranks
    of a job wait the same."""
    e = dict(env, GENIE_REQUEST_TIMEOUT_S="0", GENIE_BOOTSTRAP_TIMEOUT_S="7",
             GENIE_MEMORY_MB="5")
    exports, cmd, out = dry_run(["--phases", "prefill:1,decode:1", ["true"]], e)
    assert [exports[k] for k in WAITS] == ["30", "60", "600", "120"]
    assert exports["GENIE_MEMORY_MB"] == "0"
    assert "kept" not in out
    for name in WAITS + ("GENIE_MEMORY_MB",):
        assert cmd[cmd.index(name) - 1] == "-x", name
    # through srun (--export=ALL) the same values are in the environment
    conf = tmp_path / "w.conf"
    conf.write_text("checkpoint_timeout_s = 0.5;\nmemory_mb = 1073741824;\n")
    e = dict(e, SLURM_JOB_ID="42", PATH=str(tmp_path / "fakebin") + ":/usr/bin:/bin")
    exports, cmd, _ = dry_run(["--config", str(conf), "--phases", "decode:1", ["true"]], e)
    assert "--export=ALL" in cmd
    assert [exports[k] for k in WAITS] == ["30", "60", "0.5", "120"]
    assert exports["GENIE_MEMORY_MB"] == "1073741824"


def test_user_ucx_variables_are_kept(env):
    e = dict(env, UCX_TLS="tcp", UCX_POSIX_ERROR_HANDLING="n")
    exports, _, out = dry_run(["--phases", "prefill:1", ["true"]], e)
    assert exports["UCX_TLS"] == "tcp"
    assert exports["UCX_POSIX_ERROR_HANDLING"] == "n"
    assert "export UCX_TLS=tcp   # already set in the environment; kept" in out


def test_dry_run_srun(env, tmp_path):
    e = dict(env, SLURM_JOB_ID="42", PATH=str(tmp_path / "fakebin") + ":/usr/bin:/bin")
    exports, cmd, out = dry_run(["--phases", "prefill:2,decode:1",
                                 ["python", "app.py", "%t", "it's"]], e)
    job = exports["GENIE_JOB_DIR"]
    assert cmd == [str(tmp_path / "fakebin" / "srun"), "--mpi=pmix", "-n", "4",
                   "--kill-on-bad-exit=0", "--export=ALL", "--multi-prog",
                   job + "/multi-prog.conf"]
    lines = [ln[len("#   "):] for ln in out.splitlines() if ln.startswith("#   ")]
    assert lines[1] == (f"0 '{LAUNCH}' '--driver-shim' '{job}/driver.status' '--' 'python' "
                        "'app.py' '%t' 'it'\\''s'")
    assert lines[2] == f"1-3 '{e['GENIE_EXECUTOR']}'"
    # --no-srun, or no srun on PATH: mpirun
    _, cmd, _ = dry_run(["--no-srun", "--phases", "prefill:1", ["true"]], e)
    assert cmd[0] == env["GENIE_MPIRUN"]
    empty = tmp_path / "empty"
    empty.mkdir()
    _, cmd, _ = dry_run(["--phases", "prefill:1", ["true"]],
                        dict(env, SLURM_JOB_ID="42", PATH=str(empty)))
    assert cmd[0] == env["GENIE_MPIRUN"]


def test_help(env):
    p = run(["--help"], env)
    assert p.returncode == 0 and b"--phases SPEC" in p.stdout and b"--driver-shim" in p.stdout
    for flag in (b"--checkpoint-dir DIR", b"--checkpoint-every N", b"--restore DIR",
                 b"decode:2+1", b"GENIE_TERM_GRACE_S"):
        assert flag in p.stdout, flag


# --- --driver-shim ------------------------------------------------------------

def test_driver_shim_records_exit_code(env, tmp_path):
    status = tmp_path / "driver.status"
    p = run(["--driver-shim", str(status), "--", "sh", "-c", 'echo "$GENIE_ROLE"; exit 7'], env)
    assert p.returncode == 7
    assert p.stdout == b"driver\n"
    assert status.read_text() == "7\n"
    assert sorted(os.listdir(tmp_path)) == ["driver.status", "driver.status.pid", "fakebin", "tmp"]
    pid, host = (tmp_path / "driver.status.pid").read_text().split()
    assert int(pid) > 1 and host == os.uname().nodename


def test_driver_shim_signal_and_missing_command(env, tmp_path):
    status = tmp_path / "s"
    p = run(["--driver-shim", str(status), "--", "sh", "-c", "kill -TERM $$"], env)
    assert p.returncode == 128 + signal.SIGTERM
    assert status.read_text() == f"{128 + signal.SIGTERM}\n"
    p = run(["--driver-shim", str(status), "--", str(tmp_path / "nope")], env)
    assert p.returncode == 127 and status.read_text() == "127\n"
    assert p.stderr.startswith(b"genie-launch: cannot run ")


def test_driver_shim_forwards_sigterm(env, tmp_path):
    status = tmp_path / "s"
    p = subprocess.Popen([str(LAUNCH), "--driver-shim", str(status), "--", "sh", "-c",
                          'trap "exit 5" TERM; while :; do sleep 0.05; done'], env=env)
    while not (tmp_path / "s.pid").exists():
        time.sleep(0.05)
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=30) == 5
    assert status.read_text() == "5\n"


def test_driver_shim_usage(env, tmp_path):
    assert_refused(run(["--driver-shim", str(tmp_path / "s"), "true"], env), "--driver-shim is internal")
    assert not (tmp_path / "s").exists()


# --- real runs ----------------------------------------------------------------

@needs_executor
def test_real_run_true(env):
    e = dict(env)
    del e["GENIE_EXECUTOR"], e["GENIE_MPIRUN"]
    e["PATH"] = os.environ["PATH"]
    p = run(["--phases", "prefill:1", "--", "/bin/true"], e, timeout=120)
    assert p.returncode == 0, p.stderr
    assert_nothing_created(env)


@needs_executor
def test_real_run_env_secret_and_exit_code(env):
    e = dict(env)
    del e["GENIE_EXECUTOR"], e["GENIE_MPIRUN"]
    e["PATH"] = os.environ["PATH"]
    script = ('echo "$GENIE_ROLE $GENIE_PHASES $GENIE_LAUNCHER $UCX_POSIX_ERROR_HANDLING"; '
              'stat -c %a "$GENIE_JOB_DIR" "$GENIE_SECRET_FILE"; cat "$GENIE_SECRET_FILE"; exit 3')
    p = run(["--phases", "prefill:1,decode:1", "--", "sh", "-c", script], e, timeout=120)
    assert p.returncode == 3, p.stderr
    out = p.stdout.decode().split("\n")
    assert out[0] == "driver prefill:1,decode:1 genie-launch y"
    assert out[1:3] == ["700", "600"]
    assert re.fullmatch(r"[0-9a-f]{64}", out[3]), out[3]
    assert_nothing_created(env)


@needs_executor
def test_real_run_checkpoint_env_and_spares(env, tmp_path):
    """Through a real mpirun: the driver (and so every rank: the same -x list)
    sees the checkpoint settings, and a spare slice is one more executor."""
    e = dict(env)
    del e["GENIE_EXECUTOR"], e["GENIE_MPIRUN"]
    e["PATH"] = os.environ["PATH"]
    conf = tmp_path / "ck.conf"
    conf.write_text('checkpoint = { keep = 4; term_grace_s = 30; every_seconds = 0.5; };\n'
                    'handoff_timeout_s = 2.5;\nmemory_mb = 512;\n')
    e["GENIE_REQUEST_TIMEOUT_S"] = "0"     # replaced: every rank gets genie.conf's value
    script = ('echo "$GENIE_PHASES|$GENIE_CHECKPOINT_DIR|$GENIE_CHECKPOINT_EVERY_STEPS|'
              '$GENIE_CHECKPOINT_EVERY_S|$GENIE_CHECKPOINT_KEEP|$GENIE_TERM_GRACE_S|'
              '$GENIE_RESTORE_DIR"; echo "$GENIE_REQUEST_TIMEOUT_S|$GENIE_HANDOFF_TIMEOUT_S|'
              '$GENIE_CHECKPOINT_TIMEOUT_S|$GENIE_BOOTSTRAP_TIMEOUT_S|$GENIE_MEMORY_MB"')
    p = run(["--config", str(conf), "--phases", "decode:1+1", "--checkpoint-dir", "ck",
             "--checkpoint-every", "3", "--restore", str(tmp_path), "--", "sh", "-c", script],
            e, timeout=120, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().splitlines()[:2] == [
        f"decode:1+1|{tmp_path}/ck|3|0.5|4|30|{os.path.realpath(tmp_path)}", "30|2.5|600|120|512"]
    assert not (tmp_path / "ck").exists()   # the driver creates it, not genie-launch
    assert_nothing_created(env)


@needs_executor
def test_real_run_sigterm_cleans_up(env):
    e = dict(env)
    del e["GENIE_EXECUTOR"], e["GENIE_MPIRUN"]
    e["PATH"] = os.environ["PATH"]
    p = subprocess.Popen([str(LAUNCH), "--phases", "prefill:1", "--", "sleep", "60"], env=e,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tmp = Path(env["TMPDIR"])
    deadline = time.time() + 60
    while not list(tmp.glob("genie-*/driver.status.pid")) and time.time() < deadline:
        time.sleep(0.1)
    assert list(tmp.glob("genie-*")), "job directory never appeared"
    p.send_signal(signal.SIGTERM)
    rc = p.wait(timeout=60)
    assert rc == 128 + signal.SIGTERM, (rc, p.stderr.read().decode())
    assert_nothing_created(env)


# --- fuzz-ish -----------------------------------------------------------------

def _check_no_crash(p):
    assert p.returncode in (0, 2), (p.returncode, p.stderr)
    if p.returncode == 2:
        assert p.stderr.startswith(b"genie-launch: ") and p.stderr.count(b"\n") == 1, p.stderr


def test_fuzz_phases(env):
    rng = random.Random(1234)
    alphabet = b"abcpre_fil:,0123456789 -+\t"
    for i in range(200):
        n = rng.randint(1, 48)
        if i % 2:
            spec = bytes(rng.choice(alphabet) for _ in range(n))
        else:
            spec = bytes(rng.randint(1, 255) for _ in range(n))   # no NUL in argv
        p = run([b"--phases", spec, b"--dry-run", b"--", b"true"], env, timeout=10)
        _check_no_crash(p)
    assert_nothing_created(env)


def test_fuzz_config(env, tmp_path):
    rng = random.Random(5678)
    conf = tmp_path / "fuzz.conf"
    pieces = [b"threads", b"phases", b"ucx", b"=", b";", b"{", b"}", b'"', b"1", b"-3", b"1.5",
              b"\n", b" ", b"kv_mode", b"tls", b",", b"(", b")", b"[", b"]", b"0x", b"L", b"#",
              b"checkpoint", b"spares", b"dir", b"keep", b"every_seconds", b"prefill", b"1e9",
              b"memory_mb", b"request_timeout_s", b"handoff_timeout_s", b"checkpoint_timeout_s",
              b"bootstrap_timeout_s", b"0", b"0.0", b"4294967297", b"0xffffffff", b"/*", b"*/",
              b"//", b"\\"]
    for i in range(200):
        if i % 2:
            data = b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 30)))
        else:
            data = bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 200)))
        conf.write_bytes(data)
        p = run(["--config", str(conf), "--phases", "prefill:1", "--dry-run", "--", "true"], env,
                timeout=10)
        _check_no_crash(p)
    assert_nothing_created(env)


# --- executors never outlive the driver ---------------------------------------

# The driver: connect to the executors, say so, then wait to be killed.
DRIVER_CONNECT_SLEEP = ("import sys, time, genie\n"
                        "info = genie.init()\n"
                        "print('connected', info['mode'], info['executors'], flush=True)\n"
                        "time.sleep(600)\n")
LEFT_WITHIN_S = 10
# What an executor prints when it leaves because its driver is gone
# (launcher/executor_serve.c, genie_server_run).
LEFT_LINE = re.compile(r"genie: rank (\d+) \([a-z]+ slice \d+\): rank 0 \(the driver, pid (\d+) "
                       r"on [^)]*\) was lost: .*: exiting")
# What genie-launch prints when it has to end the job itself, the driver's
# status being written and the job still running GENIE_LAUNCH_DRIVER_GRACE_S
# later (launcher/launch_run.c, wait_runner).
LAUNCHER_ENDS_JOB = "the driver has exited and the job is still running"


def _proc_stat(pid):
    """(ppid, state, start time in clock ticks) of pid, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(rest[1]), rest[0], int(rest[19])


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _descendants(root):
    """(pid, start time) of every descendant of root: a pid with the start
    time it had is that process, never a later one that reused the number."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = _proc_stat(int(d))
            if st is not None:
                kids.setdefault(st[0], []).append((int(d), st[2]))
    out, todo = [], [root]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c[0])
    return out


def _running(proc):
    """The process (pid, start time) is alive and not a zombie (a zombie runs
    nothing; its parent reaps it)."""
    st = _proc_stat(proc[0])
    return st is not None and st[2] == proc[1] and st[1] != "Z"


class _Lines:
    """The lines of a pipe, read without blocking for longer than asked."""

    def __init__(self, stream):
        self.stream, self.buf, self.lines, self.eof = stream, b"", [], False

    def read(self, timeout):
        """Read for at most timeout seconds (less at end of file)."""
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
        seen = len(self.lines)
        while time.monotonic() < deadline and not self.eof:
            self.read(min(0.2, max(0.0, deadline - time.monotonic())))
            for line in self.lines[seen:]:
                if line.startswith(want):
                    return line
            seen = len(self.lines)
        return None


def _driver_killed(env, victim):
    """genie-launch --phases prefill:1,decode:1 -- python -c CONNECT-SLEEP; once
    the driver has connected, SIGKILL `victim` ("driver": the python process,
    "shim": genie-launch --driver-shim around it).  Then no genie-executor of
    the job (known by pid and start time) may still run LEFT_WITHIN_S seconds
    later, and they must have left on their own: each says its driver was
    lost, and genie-launch never had to end the job itself."""
    e = dict(env)
    del e["GENIE_EXECUTOR"], e["GENIE_MPIRUN"]
    e["PATH"] = os.environ["PATH"]
    p = subprocess.Popen([str(LAUNCH), "--phases", "prefill:1,decode:1", "--", sys.executable,
                          "-c", DRIVER_CONNECT_SLEEP], env=e, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, start_new_session=True)
    out = _Lines(p.stdout)
    procs = []
    try:
        connected = out.until("connected", 180)
        assert connected == "connected distributed 2", out.lines
        procs = _descendants(p.pid)
        executors = [q for q in procs if os.path.basename((_cmdline(q[0]) or [""])[0]) ==
                     "genie-executor"]
        shims = [q for q in procs if _cmdline(q[0])[1:2] == ["--driver-shim"]]
        drivers = [q for q in procs if _cmdline(q[0])[:2] == [sys.executable, "-c"]]
        assert len(executors) == 2 and len(shims) == 1 and len(drivers) == 1, \
            [(q, _cmdline(q[0])) for q in procs]
        target = drivers[0] if victim == "driver" else shims[0]
        os.kill(target[0], signal.SIGKILL)
        t0 = time.monotonic()
        while time.monotonic() - t0 < LEFT_WITHIN_S and any(_running(q) for q in executors):
            out.read(0.1)
        gone_s = time.monotonic() - t0
        left = [q[0] for q in executors if _running(q)]
        assert not left, (f"{len(left)} genie-executor process(es) of the job still running "
                          f"{LEFT_WITHIN_S} s after SIGKILL of the {victim}: {left}; output: "
                          f"{out.lines}")
        # The rest of the job ends too; its output says how.
        deadline = time.monotonic() + 60
        while not out.eof and time.monotonic() < deadline:
            out.read(deadline - time.monotonic())
        rc = p.wait(timeout=max(1.0, deadline - time.monotonic()))
        said = [m for m in map(LEFT_LINE.fullmatch, out.lines) if m]
        assert sorted(int(m.group(1)) for m in said) == [1, 2] and \
            all(int(m.group(2)) == drivers[0][0] for m in said), \
            ("each executor must say once that it leaves because its driver "
             f"(pid {drivers[0][0]}) was lost", out.lines)
        assert not any(LAUNCHER_ENDS_JOB in line for line in out.lines), out.lines
        if victim == "driver":
            assert rc == 128 + signal.SIGKILL, (rc, out.lines)   # the driver's own status
        else:
            assert rc != 0, (rc, out.lines)
        print(f"no executor left {gone_s:.1f} s after SIGKILL of the {victim}; "
              f"genie-launch exit {rc}")
    finally:
        # Whatever the outcome, nothing of this job may outlive the test; only
        # processes still running with the start time they had are signalled.
        for q in [(p.pid, None)] + procs + _descendants(p.pid):
            if q[1] is None and p.poll() is not None:
                continue
            if q[1] is not None and not _running(q):
                continue
            try:
                os.kill(q[0], signal.SIGKILL)
            except ProcessLookupError:
                pass
        p.wait(timeout=60)
        p.stdout.close()


@needs_executor
def test_driver_sigkill_leaves_no_executor(env):
    _driver_killed(env, "driver")


@needs_executor
def test_driver_shim_sigkill_leaves_no_executor(env):
    _driver_killed(env, "shim")

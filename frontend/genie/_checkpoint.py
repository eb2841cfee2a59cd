"""Lineage, HDF5 checkpoints and restore of generation sessions.

Every generation stream (``_generate._Stream``) carries its **lineage**: the
prompt, every token it produced (sampled tokens are recorded, never drawn
again) and one record per step saying which tokens the step consumed.  Its
KV cache is a deterministic function of the prompt and those tokens, so a
cache lost with its executor can be rebuilt by replaying the steps.

A **checkpoint** makes that replay short.  At a step boundary, when the
policy says so, the driver asks every executor holding sessions to write
its rank file of a new epoch (the executors write their KV tensors
themselves, in parallel; nothing passes through the driver), then commits
the epoch by writing its manifest (``docs/checkpoint-format.md``).

Policy (environment, set by genie-launch / the Slurm plugin from genie.conf
or their options):

  GENIE_CHECKPOINT_DIR          where epochs go (nothing is written without it);
                                it must be the user's and not writable by group
                                or others; in a sticky shared root (/tmp) the job
                                writes into a subdirectory of its own.  The job
                                holds it locked until it ends.
  GENIE_CHECKPOINT_EVERY_STEPS  every N decode steps (default 32; 0 = never)
  GENIE_CHECKPOINT_EVERY_S      every T seconds (default 0 = never)
  GENIE_CHECKPOINT_KEEP         complete epochs kept (default 2)
  SIGUSR1                       checkpoint at the next step boundary
  SIGTERM                       checkpoint, then leave (exit status 143)

A checkpoint that fails (a full disk, an executor's write error) never ends
the generation: it is one ``genie:`` line, the epoch is removed, the newest
complete epoch stays what it was, and the next periodic checkpoint is tried
when it is due.  On SIGTERM the job still ends with 143 after one line
saying what was not saved.

**Restore** (``GENIE_RESTORE_DIR``, ``genie.restore(DIR)``): the newest
complete epoch is opened; a stream whose key (model fingerprint, prompt and
sampling settings) matches a checkpointed session gets its KV cache read by
a live executor from the rank file, its tokens and sampler state back, and
continues from the step where it stopped.  A session whose data fails its
checksum is taken from the previous complete epoch, saying so.
"""

import hashlib
import json
import os
import signal
import socket
import sys
import time

import torch

from . import _C
from ._dtypes import TORCH_TO_CODE
from ._errors import ExecutorLostError, GenieError
from ._graph import PHASES

LINEAGE_COLS = 6          # step | phase | input_start | input_len | srg_nodes | epoch
PHASE_CODE = {name: i for i, name in enumerate(PHASES)}


def _env_int(name, default, low=0):
    text = os.environ.get(name, "")
    if text.strip() == "":
        return default
    try:
        v = int(text)
    except ValueError:
        v = None
    if v is None or v < low:
        raise GenieError(f"genie: {name} must be an integer >= {low}, got '{text}'")
    return v


def _env_float(name, default):
    text = os.environ.get(name, "")
    if text.strip() == "":
        return default
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not v >= 0.0 or v == float("inf"):
        raise GenieError(f"genie: {name} must be a number of seconds >= 0, got '{text}'")
    return v


def _job_id():
    for k in ("SLURM_JOB_ID", "GENIE_JOB_ID"):
        if os.environ.get(k):
            step = os.environ.get("SLURM_STEP_ID")
            return os.environ[k] + (f".{step}" if k == "SLURM_JOB_ID" and step else "")
    return f"{socket.gethostname()}:{os.getpid()}"


def _need_hdf5():
    if not hasattr(_C, "ckpt_open"):
        raise GenieError("genie: checkpoints need HDF5, and this build of genie._C has none "
                         "(apt-get install libhdf5-dev, then rebuild)")


def _job_dirs_hint(root):
    """In a sticky shared root each job wrote into its own subdirectory
    (genie-<user>-<job>): name the user's, since restore wants one of them."""
    import pwd

    try:
        user = pwd.getpwuid(os.geteuid()).pw_name
        mine = sorted(n for n in os.listdir(root) if n.startswith(f"genie-{user}-") and
                      os.path.isdir(os.path.join(root, n)))
    except (KeyError, OSError):
        return ""
    if not mine:
        return ""
    shown = ", ".join(mine[-3:])
    return (f"; it is a shared root, where each job wrote into its own subdirectory: give one of "
            f"yours ({shown})")


def _say(msg):
    print(msg, file=sys.stderr, flush=True)


class CheckpointRecord:
    """Where a stream's newest checkpointed state is."""

    __slots__ = ("path", "file_session", "step", "kv", "epoch")

    def __init__(self, path, file_session, step, kv, epoch):
        self.path = path                  # rank file
        self.file_session = file_session  # the session id inside it
        self.step = step                  # the next step to run after loading it
        self.kv = kv                      # [(name, dtype code, shape)]
        self.epoch = epoch


def model_fingerprint(model):
    """64-bit fingerprint of a model's weights (their Genie fingerprints)."""
    from ._annotate import _fingerprint_weights
    from ._capture import RemoteTensor

    _fingerprint_weights(model)
    h = hashlib.blake2b(digest_size=8)
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        fp = t._value.fp if isinstance(t, RemoteTensor) else 0
        h.update(f"{name}={fp};".encode())
    return int.from_bytes(h.digest(), "little")


def stream_key(model_fp, prompt, do_sample, seed, temperature, top_k, eos_token_id, extra=None):
    """What ties a checkpointed session to a prompt of a later job.  extra:
    settings added later (top_p, pad id, attention mask, ...), only those
    that differ from their defaults, so that older keys stay what they were."""
    h = hashlib.blake2b(digest_size=8)
    h.update(model_fp.to_bytes(8, "little"))
    fields = [list(prompt.shape), bool(do_sample), seed, float(temperature), top_k, eos_token_id]
    if extra:
        fields.append(extra)
    h.update(json.dumps(fields, sort_keys=True).encode())
    h.update(prompt.to(torch.int64).contiguous().numpy().tobytes())
    return int.from_bytes(h.digest(), "little") or 1


def kv_names(n):
    """Dataset names of a cache's tensors, in cache_tensors() order."""
    return [f"layer_{i // 2:02d}/{'key' if i % 2 == 0 else 'value'}" for i in range(n)]


class Checkpoints:
    """The driver's checkpoint writer, policy, signal handling and restore
    index (one per process: ``CHECKPOINTS``)."""

    def __init__(self):
        self.root = None             # where this job's epochs go
        self.root_given = None       # the directory asked for (a shared root's parent)
        self.root_handle = None      # _C.ckpt_root_open: checked and locked for the job's life
        self.job = None              # this job's id in manifests and rank files (set_root)
        self.every_steps = 32
        self.every_s = 0.0
        self.keep = 2
        self.configured = False
        self.steps_since = 0
        self.last_time = time.monotonic()
        self.pending = None          # signal name waiting for the next step boundary
        self.generating = 0
        self.handlers_installed = False
        self.prune_warned = False
        self.restore_root = None
        self.restore_epochs = None   # [opened epoch dicts], newest first, loaded lazily
        self.restore_taken = set()   # (epoch, session id) already given to a stream
        self.stats = {"dir": None, "restore_dir": None, "epochs_written": 0, "last_epoch": None,
                      "last_reason": None, "bytes": 0, "write_s": 0.0, "executor_write_s": 0.0,
                      "sessions_written": 0, "restored_sessions": 0, "restore_s": 0.0,
                      "restore_bytes": 0, "restore_fallbacks": 0, "failed": 0, "last_failure": None,
                      "recoveries": 0,
                      "recovered_from_checkpoint": 0, "replayed_steps": 0, "replayed_prefills": 0}

    # ---- configuration ---------------------------------------------------
    def configure(self):
        """Read the policy from the environment (once, at the runtime's
        init in the distributed mode)."""
        if self.configured:
            return
        root = os.environ.get("GENIE_CHECKPOINT_DIR") or None
        self.every_steps = _env_int("GENIE_CHECKPOINT_EVERY_STEPS", 32)
        self.every_s = _env_float("GENIE_CHECKPOINT_EVERY_S", 0.0)
        self.keep = _env_int("GENIE_CHECKPOINT_KEEP", 2, low=1)
        if root:
            self.set_root(root)
        restore = os.environ.get("GENIE_RESTORE_DIR") or None
        if restore:
            self.set_restore(restore)
        self.configured = True
        self.install_handlers()

    def set_root(self, root):
        """Hold `root` as this job's checkpoint directory: checked, created
        and locked by the C library (genie_ckpt_root_open); in a sticky
        shared root the job's own subdirectory is used, and said once."""
        _need_hdf5()
        root = os.path.abspath(root)
        if self.root_handle is not None and root in (self.root, self.root_given):
            return
        if self.job is None:
            self.job = _job_id()
        handle = _C.ckpt_root_open(root, self.job)
        if self.root_handle is not None:
            _C.ckpt_root_close(self.root_handle)
        info = _C.ckpt_root_info(handle)
        self.root_handle = handle
        self.root_given = root
        self.root = info["dir"]
        self.stats["dir"] = self.root
        if info["shared"]:
            _say(f"genie: checkpoint directory {root} is shared (sticky, writable by others): this "
                 f"job's checkpoints go to its own {self.root}")

    def set_restore(self, root):
        _need_hdf5()
        root = os.path.abspath(root)
        if not os.path.isdir(root):
            raise GenieError(f"genie: restore directory {root} does not exist")
        self.restore_root = root
        self.restore_epochs = None
        self.stats["restore_dir"] = root
        self._restore_epoch(0)          # fail now, not at the first prompt, if nothing is there

    # ---- signals -----------------------------------------------------------
    def install_handlers(self):
        if self.handlers_installed:
            return
        import threading
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGUSR1, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        self.handlers_installed = True

    def _on_signal(self, signum, frame):
        name = signal.Signals(signum).name
        if self.generating and self.root is not None:
            self.pending = name          # acted on at the next step boundary
            return
        if self.root is None:
            _say(f"genie: {name}: no checkpoint directory is set (--genie-checkpoint-dir, "
                 "genie-launch --checkpoint-dir or GENIE_CHECKPOINT_DIR); nothing was saved")
        else:
            _say(f"genie: {name}: no generation is running; nothing to checkpoint")
        if signum == signal.SIGTERM:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    # ---- policy ------------------------------------------------------------
    def due(self):
        """The reason to checkpoint now, or None."""
        if self.root is None:
            return None
        if self.pending:
            return self.pending
        if self.every_steps and self.steps_since >= self.every_steps:
            return "steps"
        if self.every_s and time.monotonic() - self.last_time >= self.every_s:
            return "seconds"
        return None

    # ---- writing -------------------------------------------------------------
    def write(self, runtime, streams, reason):
        """Checkpoint the streams' sessions as one new epoch.  Returns the
        epoch number; None when no stream had state on an executor, or when
        the checkpoint failed (said in one line; the generation goes on).
        ExecutorLostError is raised for the caller to recover and retry."""
        t0 = time.perf_counter()
        by_rank, unsaved = {}, 0
        for s in streams:
            sess = runtime.sessions.get(s.session)
            if s.step < 1 or sess is None or sess.rank is None or runtime.ranks[sess.rank].lost:
                unsaved += 1
                continue
            by_rank.setdefault(sess.rank, []).append(s)
        self.pending = None if reason == self.pending else self.pending
        # Counted from the attempt, so that a failed one is retried when the
        # next one is due, not at every step.
        self.steps_since = 0
        self.last_time = time.monotonic()
        if not by_rank:
            if reason in ("SIGUSR1", "SIGTERM"):
                _say(f"genie: {reason}: no session had state on an executor yet; nothing was saved "
                     f"({unsaved} not started)")
            return None
        epoch = None
        try:
            epoch, edir = _C.ckpt_root_new_epoch(self.root_handle)
            replies, jobs, recs = self._write_epoch(runtime, by_rank, epoch, edir, reason)
        except ExecutorLostError:
            self._drop(epoch)
            raise
        except GenieError as e:
            self._failed(epoch, reason, e, sum(len(ss) for ss in by_rank.values()), unsaved)
            return None
        for s, rec in recs:
            s.ckpt = rec
        try:
            _C.ckpt_root_prune(self.root_handle, self.keep)
        except GenieError as e:      # the epoch is committed; old ones stay
            if not self.prune_warned:
                _say(f"{e}; older checkpoints are kept")
                self.prune_warned = True
        st = self.stats
        st["epochs_written"] += 1
        st["last_epoch"] = epoch
        st["last_reason"] = reason
        st["bytes"] += sum(r["bytes"] for r in replies)
        st["executor_write_s"] += max(r["seconds"] for r in replies)
        st["sessions_written"] += len(recs)
        st["write_s"] += time.perf_counter() - t0
        if reason in ("SIGUSR1", "SIGTERM"):
            rest = f"; {unsaved} sessions not started yet were not saved" if unsaved else ""
            _say(f"genie: {reason}: checkpointed {len(recs)} sessions to {edir}{rest}")
        return epoch

    def _write_epoch(self, runtime, by_rank, epoch, edir, reason):
        """The executors write their rank files of `epoch`, then the driver
        commits its manifest.  Returns (replies, jobs, [(stream, record)])."""
        from ._capture import cache_tensors

        jobs, recs = [], []
        for rank, ss in sorted(by_rank.items()):
            path = os.path.join(edir, _C.ckpt_rank_file(rank))
            tuples = []
            for s in ss:
                tensors = cache_tensors(s.cache)
                vals = [t._value for t in tensors]
                names = kv_names(len(vals))
                tokens = s.result().to(torch.int64).contiguous()
                lineage = torch.tensor(s.lineage, dtype=torch.int64).reshape(-1, LINEAGE_COLS)
                rng = s.gen.get_state().numpy().tobytes() if s.gen is not None else b""
                tuples.append((s.session, s.key, s.model_fp, s.step, s.prompt.shape[1],
                               (tokens.numpy().tobytes(), tokens.shape[0], tokens.shape[1]),
                               rng, lineage.numpy().tobytes(), [v.uid for v in vals], names))
                kv = [(n, TORCH_TO_CODE[v.meta.dtype], tuple(v.meta.shape))
                      for n, v in zip(names, vals)]
                recs.append((s, CheckpointRecord(path, s.session, s.step, kv, epoch)))
            jobs.append((rank, epoch, path, self.job, tuples))
        try:
            replies = runtime.cluster.checkpoint(jobs)
        except ExecutorLostError:
            raise
        except GenieError:
            # A rank that stopped answering is found by asking each one, so
            # that the next round recovers its sessions.
            for rank in by_rank:
                try:
                    runtime._call(rank, runtime.cluster.ping, rank, b"")
                except GenieError:
                    pass
            raise
        files = [(os.path.basename(path), rank, r["bytes"], len(by_rank[rank]))
                 for (rank, _, path, _, _), r in zip(jobs, sorted(replies, key=lambda r: r["rank"]))]
        fps = sorted({s.model_fp for ss in by_rank.values() for s in ss})
        _C.ckpt_write_manifest(self.root, {
            "epoch": epoch, "job": self.job, "phases": os.environ.get("GENIE_PHASES", ""),
            "reason": reason, "created": time.time(), "model_fps": fps, "files": files})
        return replies, jobs, recs

    def _drop(self, epoch):
        """Remove this job's epoch whose commit failed; if that fails too, it
        stays without a manifest, which readers skip."""
        if epoch is None:
            return
        try:
            _C.ckpt_root_drop(self.root_handle, epoch)
        except GenieError:
            pass

    def _failed(self, epoch, reason, err, n_sessions, unsaved):
        """One line for a checkpoint that failed; the generation goes on."""
        self._drop(epoch)
        detail = str(err).replace("genie: ", "")     # one prefix, ours, for the whole line
        st = self.stats
        st["failed"] += 1
        st["last_failure"] = detail
        newest = (f"the newest complete checkpoint of this job is still epoch {st['last_epoch']}"
                  if st["last_epoch"] else "this job has no complete checkpoint yet")
        what = f"epoch {epoch}" if epoch is not None else "a new epoch"
        if reason == "SIGTERM":
            rest = f", nor {unsaved} not started yet" if unsaved else ""
            _say(f"genie: SIGTERM: the checkpoint ({what}) failed: {detail}; {n_sessions} sessions "
                 f"were not saved{rest} ({newest}); the job ends")
        elif reason == "SIGUSR1":
            _say(f"genie: SIGUSR1: the checkpoint ({what}) failed: {detail}; {newest}; the "
                 "generation goes on")
        else:
            when = (f"in {self.every_steps} steps" if self.every_steps and reason == "steps"
                    else f"in {self.every_s:g} s")
            _say(f"genie: checkpoint {what} failed: {detail}; {newest}; the generation goes on "
                 f"and the next checkpoint is tried {when}")

    # ---- restore -------------------------------------------------------------
    def _restore_epoch(self, i):
        """The i-th newest complete epoch of the restore directory (opened
        lazily), or None past the oldest."""
        if self.restore_epochs is None:
            try:
                first = _C.ckpt_open(self.restore_root)
            except FileNotFoundError:
                raise GenieError(f"genie: restore: no complete checkpoint in {self.restore_root}"
                                 f"{_job_dirs_hint(self.restore_root)}") from None
            for epoch, why in first["skipped"]:
                _say(f"genie: restore: skipping epoch {epoch}: {why}")
            _say(f"genie: restore: using {first['dir']} (job {first['job'] or '?'}, "
                 f"{len(first['sessions'])} sessions, written on {first['reason']})")
            self.restore_epochs = [first]
        while len(self.restore_epochs) <= i:
            older = self.restore_epochs[-1]["epoch"] - 1
            found = None
            while older >= 1 and found is None:
                try:
                    found = _C.ckpt_open(self.restore_root, older)
                except (GenieError, FileNotFoundError):
                    older -= 1
            if found is None:
                return None
            self.restore_epochs.append(found)
        return self.restore_epochs[i]

    def restore_candidates(self, key):
        """(epoch dict, session dict) for `key`, newest epoch first."""
        if self.restore_root is None:
            return
        i = 0
        while True:
            ep = self._restore_epoch(i)
            if ep is None:
                return
            for sd in ep["sessions"]:
                if sd["key"] == key and (ep["epoch"], sd["id"]) not in self.restore_taken:
                    yield ep, sd
                    break
            i += 1

    def as_dict(self):
        d = dict(self.stats)
        for k in ("write_s", "executor_write_s", "restore_s"):
            d[k] = round(d[k], 6)
        d["policy"] = {"every_steps": self.every_steps, "every_s": self.every_s, "keep": self.keep}
        return d


CHECKPOINTS = Checkpoints()


def restore(directory):
    """Resume generations from the newest complete checkpoint in `directory`:
    the next ``generate``/``generate_many`` continues every prompt that has
    a checkpointed session there instead of starting it over."""
    from ._runtime import RUNTIME

    if RUNTIME.cluster is None:
        RUNTIME.init()
    if RUNTIME.mode != "distributed":
        raise GenieError("genie: restore() needs executor ranks: run under genie-launch or srun "
                         "(this process runs in the embedded mode)")
    CHECKPOINTS.set_restore(directory)
    return {"dir": CHECKPOINTS.restore_epochs[0]["dir"],
            "epoch": CHECKPOINTS.restore_epochs[0]["epoch"],
            "sessions": len(CHECKPOINTS.restore_epochs[0]["sessions"])}

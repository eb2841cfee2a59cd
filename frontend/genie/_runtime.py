"""The driver runtime: places requests on executors, submits them, collects them.

Two modes share one code path, because both talk to a *cluster*: an object
with the interface of ``genie._C.Cluster`` (docs/architecture.md, "Distributed
mode").

* **embedded** (no launcher): one executor inside this process, CPU backend,
  wrapped by ``EmbeddedCluster`` as a cluster of one rank (rank 0, group
  "all") whose requests run when they are submitted.  Requests still travel as
  encoded SRG bytes through the decoder an executor in another process uses;
  ``get_stats()`` reports the mode so nobody mistakes it for a disaggregated run.
* **distributed** (``GENIE_ROLE=driver``, set by genie-launch or the Slurm
  plugin): ``_C.Cluster()`` connects this process (MPI rank 0) to executor
  ranks 1..N over UCX; each rank is one slice of a phase group
  (``GENIE_PHASES``, e.g. ``prefill:2,decode:1``).

Requests are asynchronous.  ``flush(wait=False)`` encodes the pending program,
places it on a rank and submits it; the values it produces are INFLIGHT until
the request is collected, which happens when one of them is materialised (or
``synchronize()``).  Placement, sessions and the KV-cache handoff are described
in the methods below and in the architecture doc.
"""

import atexit
import os
import socket
import sys
import threading
import time
import weakref

import torch

from . import _C
from ._dtypes import CODE_TO_TORCH, TORCH_TO_CODE
from ._errors import ExecutorLostError, GenieError
from ._graph import (FAILED, HOST, INFLIGHT, PENDING, PHASES, RES_KV, RESIDENT, WEIGHT,
                     PendingProgram, Value)

# Request phase (srg.h genie_phase_t) -> the slice group that serves it.  A
# group may also be named after the phase itself ("llm_prefill:4").  Phases
# not listed here go to the first group of the spec.
PHASE_GROUP = {"llm_prefill": "prefill", "llm_decode": "decode",
               "vision_encoding": "vision", "vision_decoding": "vision"}
KV_MODES = ("colocated", "blind")
_MAX_ENDED_SESSIONS = 4096     # per-session stats kept after the session ended


class EmbeddedCluster:
    """The in-process executor behind the cluster interface: one rank (0).

    ``submit`` runs the request at once and keeps its result (or error) until
    ``wait``, so the runtime's asynchronous path is exercised unchanged."""

    def __init__(self, backend="cpu", threads=0):
        self.executor = _C.Executor(backend, threads)
        self._done = {}
        self._next = 0

    def executors(self):
        return [dict(rank=0, phase="all", slice=0, host=socket.gethostname(), pid=os.getpid())]

    def register_weight(self, rank, fp, code, shape, ptr, name):
        self.executor.register_weight(fp, code, shape, ptr, name)

    def submit(self, rank, srg, inputs):
        self._next += 1
        try:
            self._done[self._next] = (self.executor.run(srg, inputs), None)
        except GenieError as e:
            self._done[self._next] = (None, e)
        return self._next

    def wait(self, ticket):
        outs, err = self._done.pop(ticket)
        if err is not None:
            raise err
        return outs

    def run(self, rank, srg, inputs):
        return self.wait(self.submit(rank, srg, inputs))

    def free(self, rank, ids):
        self.executor.free(ids)

    def fetch(self, rank, object_id):
        return self.executor.fetch(object_id)

    def bind_session(self, rank, session, ids):
        self.executor.bind_session(session, ids)

    def end_session(self, rank, session):
        return self.executor.end_session(session)

    def session_info(self, rank, session):
        return self.executor.session_info(session)

    def handoff(self, src, dst, session, ids):
        raise GenieError("genie: the embedded executor has no other rank to hand objects to")

    def stats(self, rank):
        return self.executor.stats()

    def link_stats(self):
        return {}

    def close(self):
        pass


class _Rank:
    """The driver's view of one executor rank."""

    __slots__ = ("rank", "group", "slice", "host", "pid", "outstanding", "requests",
                 "phase_requests", "weights", "sessions", "lost", "spare")

    def __init__(self, info):
        self.rank = int(info["rank"])
        self.group = str(info["phase"])
        self.slice = int(info.get("slice", 0))
        self.host = info.get("host", "")
        self.pid = info.get("pid", 0)
        self.outstanding = 0        # submitted, not yet collected
        self.requests = 0           # placed here so far
        self.phase_requests = {}    # request phase -> count
        self.weights = set()        # fingerprints registered on this rank
        self.sessions = 0           # live sessions handed to this rank
        self.lost = None            # the error that reported it dead
        self.spare = False          # a spare slice: idle until a slice of its group is lost


class _Request:
    """A submitted request, until it is collected."""

    __slots__ = ("ticket", "rank", "phase", "kept", "uids", "reads", "targets", "out_sids",
                 "t0", "done", "error")

    def __init__(self, ticket, rank, phase, t0):
        self.ticket = ticket
        self.rank = rank
        self.phase = phase
        self.kept = []        # (weakref(Value), was HOST) for the values it leaves resident
        self.uids = []        # their object ids
        self.reads = []       # object ids of the resident values it reads
        self.targets = []     # (weakref(Value), srg id) whose bytes come back
        self.out_sids = []    # srg ids of the outputs, in the order they come back
        self.t0 = t0
        self.done = False
        self.error = None


class _Session:
    """Where a generation's state lives, and what moving it cost."""

    __slots__ = ("id", "rank", "prefill_rank", "decode_rank", "kv_bytes_moved",
                 "kv_cache_bytes", "handoffs", "handoff_s", "other_bytes_moved", "steps",
                 "uids", "ended", "restored")

    def __init__(self, sid):
        self.id = sid
        self.rank = None              # rank holding its objects now (None: on the host)
        self.prefill_rank = None      # rank that ran its first request
        self.decode_rank = None       # rank it was handed to
        self.kv_bytes_moved = 0       # KV bytes that crossed a link (transport count)
        self.kv_cache_bytes = 0       # KV bytes at handoff (driver metadata)
        self.handoffs = 0
        self.handoff_s = 0.0
        self.other_bytes_moved = 0    # non-KV state routed through the driver
        self.steps = 0                # binds
        self.uids = set()             # object ids it owns on `rank`
        self.ended = False
        self.restored = False         # its KV cache was read from a checkpoint file

    def as_dict(self):
        return {"prefill_rank": self.prefill_rank, "decode_rank": self.decode_rank,
                "rank": self.rank, "kv_bytes_moved": self.kv_bytes_moved,
                "kv_cache_bytes": self.kv_cache_bytes, "handoffs": self.handoffs,
                "handoff_s": round(self.handoff_s, 6),
                "other_bytes_moved": self.other_bytes_moved, "steps": self.steps,
                "ended": self.ended, "restored": self.restored}


def _majority_phase(counts):
    """The phase most nodes of a request carry ("unknown" only if all do)."""
    best = max(range(1, len(counts)), key=lambda i: (counts[i], -i))
    return PHASES[best] if counts[best] else PHASES[0]


class Runtime:
    def __init__(self):
        # One program is captured and run at a time: generate, flush and the
        # cluster calls they make hold this lock (re-entrant), so two Python
        # threads calling generate take turns instead of mixing their nodes.
        self.lock = threading.RLock()
        self.program = PendingProgram()
        self.last_srg = b""          # the most recent request, for genie.last_srg_json()
        self._next_session = 0
        self._atexit = False
        self.connected_once = False  # a driver that never connects still releases its executors
        self._reset()

    def _reset(self):
        self.cluster = None
        self.executor = None         # embedded: the _C.Executor (benchmarks time it alone)
        self.mode = None
        self._warned_groups = set()  # phases already reported as placed outside their group
        self.backend = None
        self.threads = 0
        self.kv_mode = "colocated"
        self.ranks = {}              # rank -> _Rank
        self.groups = {}             # group name -> [ranks], in spec (rank) order
        self.uid_rank = {}           # object id -> rank (RESIDENT and INFLIGHT values)
        self.uid_session = {}        # object id -> owning session
        self.lost_uids = {}          # object id -> the lost rank that held it
        self.inflight = {}           # ticket -> _Request
        self.busy = {}               # object id -> outstanding requests reading/making it
        self.sessions = {}           # session id -> _Session
        self.blind_kv = {}           # blind mode: uid of a HOST KV value -> session
        self.transit_session = 0     # owner of unowned objects moved between ranks
        self.weights_registered = set()
        self.phase_time = {}         # request phase -> [requests, driver wall s]
        self.placement = {"least_loaded": 0, "resident_affinity": 0,
                          "phase_fallback_placements": 0, "straggler_handoffs": 0,
                          "straggler_bytes": 0, "by_group": {}}
        self.counters = {
            "flushes": 0,
            "nodes_sent": 0,
            "srg_bytes_sent": 0,
            "input_bytes_sent": 0,
            "output_bytes_received": 0,
            "weight_bytes_sent": 0,
            "weights_registered": 0,
            "weight_cache_hits": 0,
            "objects_freed": 0,
            "capture_s": 0.0,
            "flush_s": 0.0,
        }

    # ---- lifecycle -------------------------------------------------------
    def init(self, backend=None, threads=None, cluster=None, kv_mode=None):
        """Connect to the executors (once).

        cluster: an object with the ``_C.Cluster`` interface to use instead of
        the one the environment asks for (tests pass a fake one).
        kv_mode: "colocated" (default; GENIE_KV_MODE) keeps each session's KV
        cache on an executor; "blind" ships it through the driver every step
        (the baseline the benchmarks compare against).
        """
        if self.cluster is not None:
            if cluster is not None and cluster is not self.cluster:
                raise GenieError("genie: already initialised; close the runtime before "
                                 "connecting another cluster")
            if backend not in (None, "auto", self.backend):
                raise GenieError(f"genie: already initialised with backend {self.backend}")
            return self.info()
        kv_mode = kv_mode or os.environ.get("GENIE_KV_MODE") or "colocated"
        if kv_mode not in KV_MODES:
            raise GenieError(f"genie: GENIE_KV_MODE must be one of {', '.join(KV_MODES)}, "
                             f"got '{kv_mode}'")
        if threads is None:
            threads = int(os.environ.get("GENIE_THREADS", "0") or 0)
        role = os.environ.get("GENIE_ROLE") or "embedded"
        if cluster is None and role == "driver":
            launched = os.environ.get("GENIE_BACKEND")
            if backend not in (None, "auto") and launched and backend != launched:
                raise GenieError(f"genie: the executors were launched with backend '{launched}'; "
                                 f"init(backend='{backend}') cannot change it (use the "
                                 "launcher's --backend)")
            if not hasattr(_C, "Cluster"):
                raise GenieError("genie: GENIE_ROLE=driver, but this build of genie._C has no "
                                 "distributed mode (built without MPI/UCX); install "
                                 "libopenmpi-dev and libucx-dev and rebuild, or unset GENIE_ROLE")
            cluster = _C.Cluster()
            self.connected_once = True
        elif cluster is None:
            if role != "embedded":
                raise GenieError(f"genie: GENIE_ROLE={role} is not a role this process can "
                                 "take (driver, or unset for the embedded mode)")
            backend = backend or os.environ.get("GENIE_BACKEND", "cpu")
            if backend == "auto":
                backend = "cpu"
            if backend != "cpu":
                raise GenieError(f"genie: backend '{backend}' is not available in this build "
                                 "(available: cpu)")
            cluster = EmbeddedCluster(backend, threads)
            self.executor = cluster.executor
            self.mode = "embedded"
            self.backend = backend
            self.threads = threads
        try:
            ranks = [_Rank(e) for e in cluster.executors()]
            if not ranks:
                raise GenieError("genie: the cluster has no executor ranks")
            if self.mode is None:
                first = cluster.stats(ranks[0].rank)
                self.mode = "distributed"
                self.backend = first.get("backend")
                self.threads = int(first.get("threads", threads) or 0)
        except BaseException:
            if self.executor is None:
                cluster.close()
            self._reset()
            raise
        self.cluster = cluster
        self.kv_mode = kv_mode
        for r in sorted(ranks, key=lambda r: r.rank):
            self.ranks[r.rank] = r
            self.groups.setdefault(r.group, []).append(r.rank)
        self._mark_spares()
        if self.mode == "distributed":
            from ._checkpoint import CHECKPOINTS
            CHECKPOINTS.configure()
        elif os.environ.get("GENIE_RESTORE_DIR"):
            raise GenieError("genie: GENIE_RESTORE_DIR is set, but checkpoints are restored by "
                             "executor ranks: run under genie-launch --restore or srun "
                             "--genie-restore (this process runs in the embedded mode)")
        elif os.environ.get("GENIE_CHECKPOINT_DIR"):
            print("genie: GENIE_CHECKPOINT_DIR is ignored in the embedded mode (checkpoints are "
                  "written by executor ranks: run under genie-launch or srun)", file=sys.stderr)
        if self.mode == "distributed" and not self._atexit:
            atexit.register(self._close_at_exit)
            self._atexit = True
        return self.info()

    def _mark_spares(self):
        """Spare slices ("decode:2+1" in GENIE_PHASES: the last slice of the
        group) take no work until a slice of their group is lost."""
        spec = os.environ.get("GENIE_PHASES", "") if self.mode == "distributed" else ""
        if not spec:
            return
        try:
            entries = _C.parse_phases(spec, spares=True)
        except (TypeError, ValueError):      # a parser without spares, or a spec it refuses
            return
        for name, total, spares in entries:
            ranks = sorted(self.groups.get(name, []), key=lambda r: self.ranks[r].slice)
            for r in ranks[max(0, total - spares):]:
                self.ranks[r].spare = True

    def release_unused_executors(self):
        """At a driver's exit: if it never connected (it failed before its
        first request, or never made one), connect once and shut the
        executors down.  Under srun nothing else would: they would wait in
        the bootstrap for this rank until the job's time limit."""
        if self.connected_once or not hasattr(_C, "Cluster"):
            return
        self.connected_once = True
        try:
            _C.Cluster().close()
        except Exception as e:      # exiting anyway: one line, no stack
            print(f"genie: could not release the executors: {e}", file=sys.stderr)

    def info(self):
        return {"mode": self.mode, "backend": self.backend, "executors": len(self.ranks),
                "threads": self.threads or os.cpu_count(),
                "phases": {g: list(rs) for g, rs in self.groups.items()},
                "kv_mode": self.kv_mode}

    def close(self):
        """Collect what is in flight, shut the executors down, forget them.
        The next request starts a new connection (embedded unless told
        otherwise).  Values computed before stay unusable (their objects are
        gone); weights are registered again as needed."""
        if self.cluster is None:
            return
        for req in list(self.inflight.values()):
            try:
                self._complete(req)
            except GenieError:
                pass
        cluster = self.cluster
        self._reset()
        cluster.close()

    def _close_at_exit(self):
        if self.cluster is not None and self.mode == "distributed":
            try:
                self.cluster.close()
            except Exception as e:       # nothing to unwind at exit; say what happened
                print(f"genie: closing the executors at exit failed: {e}", file=sys.stderr)

    # ---- cluster calls ---------------------------------------------------
    def _call(self, rank, fn, *args):
        """Call the cluster about `rank`; a lost executor is remembered."""
        rk = self.ranks[rank]
        if rk.lost is not None:
            raise ExecutorLostError(f"genie: executor rank {rank} ({rk.group}) was lost "
                                    f"earlier: {rk.lost}")
        try:
            return fn(*args)
        except ExecutorLostError as e:
            # The error names the rank that was lost (a handoff about the
            # source can lose the destination).
            lost = getattr(e, "rank", None)
            self._mark_lost(lost if lost in self.ranks else rank, e)
            raise

    def _mark_lost(self, rank, err):
        rk = self.ranks[rank]
        if rk.lost is None:
            rk.lost = str(err)
            spare = next((self.ranks[r] for r in self.groups[rk.group]
                          if self.ranks[r].spare and self.ranks[r].lost is None), None)
            if not rk.spare and spare is not None:
                spare.spare = False
                self.placement["spares_used"] = self.placement.get("spares_used", 0) + 1
                print(f"genie: spare executor rank {spare.rank} ({spare.group} slice "
                      f"{spare.slice}) takes the place of lost rank {rank}", file=sys.stderr)
            rk.spare = False
            for uid in [u for u, r in self.uid_rank.items() if r == rank]:
                del self.uid_rank[uid]
                self.uid_session.pop(uid, None)
                self.lost_uids[uid] = rank

    # ---- placement ---------------------------------------------------------
    def _group_for(self, phase):
        """(group, fell back) for a request phase."""
        want = PHASE_GROUP.get(phase)
        first = next(iter(self.groups))
        if want is None:
            return first, False
        for name in (want, phase):
            if name in self.groups:
                return name, False
        # The embedded executor's one group serves every phase: no fallback.
        if self.mode == "embedded":
            return first, False
        # A placement choice, not a local fallback, but it must not be silent:
        # one line per phase, and the count in get_stats()["placement"].
        if want not in self._warned_groups:
            self._warned_groups.add(want)
            print(f"genie: the phase spec has no '{want}' group; {phase} requests run on "
                  f"'{first}' slices (counted in get_stats()['placement'])", file=sys.stderr)
        return first, True

    def _served_group(self, phase):
        """The group the spec has for `phase`, or None."""
        for name in (PHASE_GROUP.get(phase), phase):
            if name in self.groups:
                return name
        return None

    def _live(self, group):
        ranks = [self.ranks[r] for r in self.groups[group]
                 if self.ranks[r].lost is None and not self.ranks[r].spare]
        if not ranks:
            raise ExecutorLostError(f"genie: no executor of group '{group}' is alive "
                                    f"(ranks {self.groups[group]} were lost)")
        return ranks

    def _least_loaded(self, group):
        """Fewest outstanding requests, then fewest requests so far, then lowest rank."""
        return min(self._live(group), key=lambda r: (r.outstanding, r.requests, r.rank)).rank

    def _rank_of(self, v):
        r = self.uid_rank.get(v.uid)
        if r is None:
            lost = self.lost_uids.get(v.uid)
            if lost is not None:
                raise ExecutorLostError(f"genie: tensor {v.name or v.uid} was on executor rank "
                                        f"{lost}, which was lost: {self.ranks[lost].lost}")
            raise GenieError(f"genie: tensor {v.name or v.uid} is not on any executor (its "
                             "session ended, or it was computed before the runtime "
                             "restarted); compute it again")
        return r

    def _place(self, phase, sources):
        """The rank a request runs on.

        A request that reads resident objects runs where they are (the most
        bytes of them, if they are spread; the others are handed over first).
        One that reads none goes to the least-loaded rank of its phase's group.
        """
        group, fell_back = self._group_for(phase)
        held = {}
        for v in sources:
            if v.state == RESIDENT:
                r = self._rank_of(v)
                held[r] = held.get(r, 0) + v.nbytes
        if held:
            rank = max(held, key=lambda r: (held[r], self.ranks[r].group == group, -r))
            if len(held) > 1:
                self._gather([v for v in sources if v.state == RESIDENT
                              and self.uid_rank[v.uid] != rank], rank)
            self.placement["resident_affinity"] += 1
        else:
            rank = self._least_loaded(group)
            self.placement["least_loaded"] += 1
            self.placement["phase_fallback_placements"] += fell_back
        g = self.ranks[rank].group
        self.placement["by_group"][g] = self.placement["by_group"].get(g, 0) + 1
        return rank

    def _gather(self, values, dst):
        """Hand resident `values` from wherever they are to `dst` (executor to
        executor, never through the driver).  Objects keep their ids and
        owner; unowned ones are owned on `dst` by the runtime's transit
        session (and freed by id as usual)."""
        moves = {}
        for v in values:
            src = self._rank_of(v)
            if src == dst:
                continue
            owner = self.uid_session.get(v.uid) or self._transit()
            moves.setdefault((src, owner, v.residency == RES_KV), []).append(v)
        for (src, owner, is_kv), vs in moves.items():
            ids = [v.uid for v in vs]
            res = self._call(src, self.cluster.handoff, src, dst, owner, ids)
            for uid in ids:
                self.uid_rank[uid] = dst
                self.uid_session[uid] = owner
            s = self.sessions.get(owner)
            if s is not None:
                s.handoffs += 1
                s.handoff_s += float(res["seconds"])
                if is_kv:
                    s.kv_bytes_moved += int(res["bytes"])
                else:
                    s.other_bytes_moved += int(res["bytes"])
                if s.rank == src and s.uids <= set(ids):
                    s.rank = dst        # all of the session moved
            self.placement["straggler_handoffs"] += 1
            self.placement["straggler_bytes"] += int(res["bytes"])

    def _transit(self):
        if not self.transit_session:
            self.transit_session = self.new_session()
        return self.transit_session

    # ---- weights -----------------------------------------------------------
    def register_weight(self, v, rank=None):
        """Make sure weight `v` is on `rank` (default: the first rank); count a
        cache hit if it was."""
        if self.cluster is None:
            self.init()
        rank = next(iter(self.ranks)) if rank is None else rank
        rk = self.ranks[rank]
        if v.fp in rk.weights:
            self.counters["weight_cache_hits"] += 1
            return
        if v.host._version != v.host_version:
            raise GenieError(f"genie: weight {v.name} was modified in place on the CPU after "
                             "being moved to remote_accelerator; move the module again")
        h = v.host
        self._call(rank, self.cluster.register_weight, rank, v.fp, TORCH_TO_CODE[h.dtype],
                   tuple(h.shape), h.data_ptr(), v.name)
        rk.weights.add(v.fp)
        self.weights_registered.add(v.fp)
        self.counters["weights_registered"] += 1
        self.counters["weight_bytes_sent"] += h.numel() * h.element_size()

    # ---- sessions ----------------------------------------------------------
    def new_session(self):
        if self.cluster is None:
            self.init()
        self._next_session += 1
        sid = self._next_session
        if len(self.sessions) >= _MAX_ENDED_SESSIONS:
            for old in [k for k, s in self.sessions.items() if s.ended][:len(self.sessions) // 2]:
                del self.sessions[old]
        self.sessions[sid] = _Session(sid)
        return sid

    def bind_session(self, session, kv_values, other_values=()):
        """Make `session` own the executor objects behind the values: its KV
        cache (`kv_values`) and other state (`other_values`, e.g. the next
        token).

        The first bind of a session whose objects are on a rank outside the
        decode group (its prefill rank P), when the spec has a decode group,
        hands the KV cache once, executor to executor, to the decode rank D
        with the fewest sessions; the other state is tiny and goes through
        the driver (it is the next step's input).  Later binds on D are plain
        binds.  In blind mode the state is fetched to the driver instead and
        freed on the executors: every step ships the whole KV cache.
        """
        if self.cluster is None:
            self.init()
        kv, other = list(kv_values), list(other_values)
        for v in kv + other:
            if v.state == INFLIGHT:
                self._complete(v.req)
        # Objects the program dropped since the last request (e.g. the previous
        # step's KV tensors) are freed first, so the session owns exactly its
        # current state.
        self._send_frees()
        s = self.sessions.get(session)
        if s is None:
            s = self.sessions[session] = _Session(session)
        s.steps += 1
        if self.kv_mode == "blind":
            self._bind_blind(s, kv, other)
            return
        kv = [v for v in kv if v.state == RESIDENT]
        other = [v for v in other if v.state == RESIDENT]
        res = kv + other
        if not res:
            return
        if s.rank is None:
            held = {}
            for v in res:
                held[self._rank_of(v)] = held.get(self._rank_of(v), 0) + v.nbytes
            src = max(held, key=lambda r: (held[r], -r))
            s.rank = s.prefill_rank = src
            decode = self._served_group("llm_decode")
            if decode is not None and decode != self.ranks[src].group:
                self._gather(res, src)
                self._handoff_session(s, src, decode, kv, other)
                return
        self._gather(res, s.rank)
        ids = [v.uid for v in res]
        self._call(s.rank, self.cluster.bind_session, s.rank, session, ids)
        for uid in ids:
            self.uid_session[uid] = session
            s.uids.add(uid)

    def _handoff_session(self, s, src, group, kv, other):
        dst = min(self._live(group), key=lambda r: (r.sessions, r.rank)).rank
        # The non-KV state (the next token: bytes) goes through the driver and
        # is the next step's input, so the one handoff carries exactly the KV
        # cache and its byte count can be checked against the cache's size.
        for v in other:
            s.other_bytes_moved += self._to_host(v)
        s.rank = s.decode_rank = dst
        self.ranks[dst].sessions += 1
        if not kv:
            return
        ids = [v.uid for v in kv]
        s.kv_cache_bytes = sum(v.nbytes for v in kv)
        res = self._call(src, self.cluster.handoff, src, dst, s.id, ids)
        s.handoffs += 1
        s.kv_bytes_moved += int(res["bytes"])
        if int(res["bytes"]) != s.kv_cache_bytes:
            # The count is the destination transport's (RMA bytes received):
            # a short or long transfer is an error, never a silent success.
            raise GenieError(f"genie: the KV handoff of session {s.id} from rank {src} to rank "
                             f"{dst} moved {int(res['bytes'])} bytes, the cache is "
                             f"{s.kv_cache_bytes} bytes")
        s.handoff_s += float(res["seconds"])
        for uid in ids:
            self.uid_rank[uid] = dst
            self.uid_session[uid] = s.id
            s.uids.add(uid)

    def _bind_blind(self, s, kv, other):
        kv_ids = {id(v) for v in kv}
        for v in kv + other:
            if v.state != RESIDENT:
                continue
            if s.prefill_rank is None:
                s.prefill_rank = self._rank_of(v)
            moved = self._to_host(v)
            if id(v) in kv_ids:
                s.kv_bytes_moved += moved
                self.blind_kv[v.uid] = s.id
            else:
                s.other_bytes_moved += moved
        if kv:
            s.kv_cache_bytes = sum(v.nbytes for v in kv)
        s.rank = None

    def _to_host(self, v):
        """Turn resident `v` into a HOST value (its bytes on the driver; the
        object is freed on its rank).  Returns the bytes fetched for it."""
        rank = self._rank_of(v)
        fetched = 0
        data = v.cpu_cache
        if data is None:
            data = _to_torch(self._call(rank, self.cluster.fetch, rank, v.uid))
            fetched = data.numel() * data.element_size()
            self.counters["output_bytes_received"] += fetched
        data = data.reshape(v.meta.shape)
        # A new object id: the old one is freed (once no outstanding request
        # uses it) and must not be confused with the object this value may
        # become again.
        old = v.uid
        s = self.sessions.get(self.uid_session.pop(old, None))
        if s is not None:
            s.uids.discard(old)
        v.uid = Value._next_uid
        Value._next_uid += 1
        v.host = data
        v.host_version = data._version
        v.state = HOST
        v.cpu_cache = data
        Value.free_queue.append(old)
        return fetched

    def end_session(self, session):
        """Free everything the session owns on the executors now."""
        if self.cluster is None:
            return 0
        self._send_frees()
        s = self.sessions.get(session)
        if s is None or s.ended:
            return 0
        s.ended = True
        n = 0
        if s.rank is not None and self.ranks[s.rank].lost is None:
            n = self._call(s.rank, self.cluster.end_session, s.rank, session)
        for uid in s.uids:
            self.uid_rank.pop(uid, None)
            self.uid_session.pop(uid, None)
        s.uids = set()
        if s.decode_rank is not None and self.kv_mode != "blind":
            self.ranks[s.decode_rank].sessions -= 1
        for uid in [u for u, sid in self.blind_kv.items() if sid == session]:
            del self.blind_kv[uid]
        return n

    def restore_objects(self, session, rank, path, file_session, kv):
        """Make executor `rank` read session `file_session`'s KV tensors from
        the checkpoint rank file `path` into new objects owned by `session`.
        kv: [(name, dtype code, shape)].  Returns (values, reply) with one
        RESIDENT KV Value per tensor, in order."""
        s = self.sessions.get(session)
        if s is None:
            s = self.sessions[session] = _Session(session)
        vals, descs = [], []
        for name, code, shape in kv:
            v = Value(torch.empty(tuple(shape), dtype=CODE_TO_TORCH[code], device="meta"),
                      HOST, RES_KV)
            vals.append(v)
            descs.append((v.uid, name, code, tuple(shape)))
        self._send_frees()
        res = self._call(rank, self.cluster.restore, rank, path, file_session, session, descs)
        for v in vals:
            v.state = RESIDENT
            self.uid_rank[v.uid] = rank
            self.uid_session[v.uid] = session
            s.uids.add(v.uid)
        s.rank = s.decode_rank = rank
        s.restored = True
        s.kv_cache_bytes = sum(v.nbytes for v in vals)
        self.ranks[rank].sessions += 1
        return vals, res

    def restore_rank(self):
        """The live rank a restored session goes to: the decode group's rank
        with the fewest sessions (the first group's without a decode group)."""
        group = self._served_group("llm_decode") or next(iter(self.groups))
        return min(self._live(group), key=lambda r: (r.sessions, r.rank)).rank

    def discard_pending(self, err):
        """Drop the captured, unsubmitted program (after a failure its
        values are FAILED with `err`)."""
        self._discard_program(err)

    def session_info(self, session):
        """(objects, bytes) the session owns on its executor."""
        s = self.sessions.get(session)
        if s is None or s.rank is None:
            return (0, 0)
        return self._call(s.rank, self.cluster.session_info, s.rank, session)

    # ---- execution ---------------------------------------------------------
    def materialize(self, value, take=False):
        """CPU tensor holding `value`'s data (runs pending work if needed).

        take=True hands the tensor to the caller (who may modify it): the
        runtime keeps no cached copy, and host/weight data is cloned.
        """
        if take:
            out = self.materialize(value)
            if value.state in (HOST, WEIGHT):
                return out.clone()
            value.cpu_cache = None
            return out
        if value.cpu_cache is not None:
            return value.cpu_cache
        if value.state == PENDING:
            self.flush([value])
        if value.state == INFLIGHT:
            self._complete(value.req)
        if value.cpu_cache is not None:
            return value.cpu_cache
        if value.state in (HOST, WEIGHT):
            out = value.host
        elif value.state == FAILED:
            raise _again(value.req, "this tensor's request failed")
        else:
            self._send_frees()
            rank = self._rank_of(value)
            out = _to_torch(self._call(rank, self.cluster.fetch, rank, value.uid))
            self.counters["output_bytes_received"] += out.numel() * out.element_size()
        meta = value.meta
        if tuple(out.shape) != tuple(meta.shape):
            out = out.reshape(meta.shape)
        value.cpu_cache = out
        return out

    def _send_frees(self):
        """Free the objects of values that died.  An object that an
        outstanding request reads or creates is freed after that request was
        collected: frees are fire-and-forget, and nothing here relies on the
        order in which an executor receives messages."""
        q = Value.free_queue
        if not q:
            return
        # Slice, then delete what was taken: a value dying meanwhile (the
        # garbage collector runs on allocation) appends to the same list.
        n = len(q)
        uids = q[:n]
        del q[:n]
        later, by_rank = [], {}
        for uid in uids:
            r = self.uid_rank.get(uid)
            if r is None:           # never placed, lost, or from a closed runtime
                continue
            if self.busy.get(uid):
                later.append(uid)
                continue
            del self.uid_rank[uid]
            s = self.sessions.get(self.uid_session.pop(uid, None))
            if s is not None:
                s.uids.discard(uid)
            by_rank.setdefault(r, []).append(uid)
        q.extend(later)
        for r, ids in by_rank.items():
            if self.ranks[r].lost is None:
                self._call(r, self.cluster.free, r, ids)
                self.counters["objects_freed"] += len(ids)

    def _await_sources(self):
        """Collect the requests computing values the pending program reads.
        If one failed, the pending program cannot run: its values fail too."""
        for n in self.program.nodes:
            for v in n.inputs:
                if v is None or v.state == PENDING:
                    continue
                try:
                    if v.state == INFLIGHT:
                        self._complete(v.req)
                    if v.state == FAILED:
                        raise _again(v.req, "a tensor this computation reads was never computed")
                except GenieError as e:
                    self._discard_program(e)
                    raise

    def _discard_program(self, err):
        nodes, self.program.nodes = self.program.nodes, []
        for n in nodes:
            for wr in n.outs:
                v = wr()
                if v is not None and v.state == PENDING:
                    v.state, v.req, v.node = FAILED, _failure(err), None
            n.inputs = None

    def _build(self, targets):
        """Encode the pending program and choose its rank.  Returns (graph,
        host inputs, produced, ids, sources, phase, rank), or None when no
        node was live and nothing was asked for."""
        self._await_sources()
        self._send_frees()
        weights = []
        g, host_inputs, produced, ids, sources, counts = \
            self.program.build(targets, weights.append)
        if not targets and g.n_nodes == 0:
            return None
        phase = _majority_phase(counts)
        try:
            rank = self._place(phase, sources)
            for w in weights:
                self.register_weight(w, rank)
        except BaseException as e:
            self._fail_produced(produced, e)
            raise
        return g, host_inputs, produced, ids, sources, phase, rank

    @staticmethod
    def _fail_produced(produced, err):
        for wr, _ in produced:
            v = wr()
            if v is not None and v.state == PENDING:
                v.state, v.req, v.node = FAILED, _failure(err), None

    def compile_request(self, targets):
        """Encode the pending program as one request without running it.

        Returns (srg_bytes, inputs, keep) for ``executor.run``; the targets are the
        request's outputs.  Used by benchmarks to time the executor alone; the
        pending program is consumed and the targets stay unmaterialised.
        """
        if self.cluster is None:
            self.init()
        built = self._build(targets)
        if built is None:
            raise GenieError("genie: compile_request: nothing is pending for these targets")
        g, host_inputs, produced, ids, sources, _, _ = built
        for v in targets:
            g.mark_output(ids[id(v)], True, 0)
        inputs = [(TORCH_TO_CODE[h.dtype], tuple(h.shape), h.data_ptr()) for h in host_inputs]
        # The caller holds `keep` while it reuses the request: it pins the host
        # buffers and the resident objects the graph reads.
        return g.encode(), inputs, (host_inputs, sources)

    def submit(self, targets=()):
        """Submit the pending program without waiting (see flush)."""
        return self.flush(targets, wait=False)

    def flush(self, targets=(), wait=True):
        """Run every pending node as one request; `targets` get their CPU
        copies cached.  wait=False returns once the request is submitted; its
        values are INFLIGHT until collected.  Returns the request (or None when
        nothing was pending)."""
        with self.lock:
            return self._flush(targets, wait)

    def _flush(self, targets, wait):
        if not self.program.nodes:
            return None
        if self.cluster is None:
            self.init()
        if self.inflight:
            self._collect_orphans()
        t0 = time.perf_counter()
        # Frees queued *before* this graph was built are safe to send now;
        # values that die while it is built (inputs only the pending nodes
        # referenced) are still read by it and are freed with a later request.
        built = self._build(targets)
        if built is None:
            return None
        g, host_inputs, produced, ids, sources, phase, rank = built
        for v in sources:
            sid = self.blind_kv.pop(v.uid, None) if v.state == HOST else None
            if sid is not None and sid in self.sessions:
                s = self.sessions[sid]
                s.kv_bytes_moved += v.nbytes
                if phase == "llm_decode":
                    s.decode_rank = rank
        reads = [v.uid for v in sources if v.state == RESIDENT]
        # What the user's program still references after the driver dropped
        # its own references stays resident (see _graph.py).
        del sources
        target_ids = {ids[id(v)] for v in targets}
        kept = []
        for wr, sid in produced:
            v = wr()
            if v is not None:
                g.mark_output(sid, sid in target_ids, v.uid)
                kept.append(v)
        kept_sids = {ids[id(v)] for v in kept}
        for v in targets:
            sid = ids[id(v)]
            if sid not in kept_sids:
                g.mark_output(sid, True, 0)
        try:
            srg = g.encode()
            self.last_srg = srg
            inputs = [(TORCH_TO_CODE[h.dtype], tuple(h.shape), h.data_ptr()) for h in host_inputs]
            ticket = self._call(rank, self.cluster.submit, rank, srg, inputs)
        except BaseException as e:
            self._fail_produced(produced, e)
            raise
        req = _Request(ticket, rank, phase, t0)
        req.reads = reads
        req.out_sids = sorted(target_ids)
        req.targets = [(weakref.ref(v), ids[id(v)]) for v in targets]
        for v in kept:
            # A HOST value keeps its bytes until the request succeeded: if it
            # fails, the value is still usable from the host.
            req.kept.append((weakref.ref(v), v.state == HOST))
            req.uids.append(v.uid)
            v.state, v.req, v.node = INFLIGHT, req, None
            self.uid_rank[v.uid] = rank
        del kept
        for uid in req.reads + req.uids:
            self.busy[uid] = self.busy.get(uid, 0) + 1
        rk = self.ranks[rank]
        rk.outstanding += 1
        rk.requests += 1
        rk.phase_requests[phase] = rk.phase_requests.get(phase, 0) + 1
        self.inflight[ticket] = req
        c = self.counters
        c["flushes"] += 1
        c["nodes_sent"] += g.n_nodes
        c["srg_bytes_sent"] += len(srg)
        c["input_bytes_sent"] += sum(h.numel() * h.element_size() for h in host_inputs)
        if wait:
            self._complete(req)
        return req

    def _complete(self, req):
        """Collect a submitted request: its values become RESIDENT (or FAILED,
        and the error is raised)."""
        if req.done:
            if req.error is not None:
                raise _again(req.error, "request failed")
            return
        rk = self.ranks[req.rank]
        try:
            outs = self.cluster.wait(req.ticket)
        except BaseException as e:
            self._unbusy(req)
            req.done, req.error = True, _failure(e)
            rk.outstanding -= 1
            self.inflight.pop(req.ticket, None)
            if isinstance(e, ExecutorLostError):
                self._mark_lost(req.rank, e)
            for uid in req.uids:
                self.uid_rank.pop(uid, None)
            for wr, was_host in req.kept:
                v = wr()
                if v is not None and v.req is req:
                    v.state, v.req = (HOST, None) if was_host else (FAILED, req.error)
            raise
        self._unbusy(req)
        req.done = True
        rk.outstanding -= 1
        self.inflight.pop(req.ticket, None)
        for wr, _ in req.kept:
            v = wr()
            if v is not None and v.req is req:
                v.state, v.req, v.host = RESIDENT, None, None
        by_sid = dict(zip(req.out_sids, outs))
        for wr, sid in req.targets:
            v = wr()
            if v is not None:
                v.cpu_cache = _to_torch(by_sid[sid])
        wall = time.perf_counter() - req.t0
        c = self.counters
        c["output_bytes_received"] += sum(len(o[2]) for o in outs)
        c["flush_s"] += wall
        pt = self.phase_time.setdefault(req.phase, [0, 0.0])
        pt[0] += 1
        pt[1] += wall

    def _unbusy(self, req):
        for uid in req.reads + req.uids:
            n = self.busy.get(uid, 0) - 1
            if n > 0:
                self.busy[uid] = n
            else:
                self.busy.pop(uid, None)

    def _collect_orphans(self):
        """Collect requests none of whose results anybody holds any more:
        nothing else would wait for them, and their executor would look busy
        to placement forever.  Their failures have nobody to tell (a lost
        executor is remembered and reported by the next call about it)."""
        for req in list(self.inflight.values()):
            if all(wr() is None for wr, _ in req.kept) and \
                    all(wr() is None for wr, _ in req.targets):
                try:
                    self._complete(req)
                except GenieError:
                    pass

    def synchronize(self):
        """Submit what is pending and collect every outstanding request."""
        self.flush(wait=False)
        for req in list(self.inflight.values()):
            self._complete(req)


def _failure(err):
    """What a FAILED value keeps of its request's error: class and message
    (not the exception, whose traceback would keep the request's frames)."""
    return (type(err) if isinstance(err, GenieError) else GenieError, str(err))


def _again(failure, what):
    """The error to raise when a failed request's result is used again."""
    cls, msg = failure
    try:
        return cls(msg if msg.startswith("genie:") else f"genie: {what}: {msg}")
    except TypeError:
        return GenieError(f"genie: {what}: {msg}")


def _to_torch(out):
    code, shape, data = out
    dtype = CODE_TO_TORCH[code]
    if len(data) == 0:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(data, dtype=dtype).reshape(shape)


RUNTIME = Runtime()

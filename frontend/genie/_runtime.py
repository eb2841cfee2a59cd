"""The driver runtime: owns the executor connection and runs flushes.

Without a launcher (no ``GENIE_ROLE`` in the environment) Genie runs in the
*embedded* mode: one executor inside this process, CPU backend.  Requests still
travel as encoded SRG bytes through the same decoder an executor in another
process uses; ``get_stats()`` reports the mode so nobody mistakes it for a
disaggregated run.
"""

import os
import time

import torch

from . import _C
from ._dtypes import CODE_TO_TORCH, TORCH_TO_CODE
from ._errors import GenieError
from ._graph import HOST, PENDING, RESIDENT, WEIGHT, PendingProgram, Value


class Runtime:
    def __init__(self):
        self.program = PendingProgram()
        self.executor = None
        self.mode = None
        self.backend = None
        self.threads = 0
        self.weights_registered = set()
        self.last_srg = b""          # the most recent request, for genie.last_srg_json()
        self._next_session = 0
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
    def init(self, backend=None, threads=None):
        if self.executor is not None:
            if backend not in (None, self.backend):
                raise GenieError(f"genie: already initialised with backend {self.backend}")
            return self.info()
        role = os.environ.get("GENIE_ROLE")
        if role not in (None, "", "embedded"):
            raise GenieError(
                f"genie: GENIE_ROLE={role} needs the MPI launcher, which this build does not "
                "provide yet; unset GENIE_ROLE to run embedded")
        backend = backend or os.environ.get("GENIE_BACKEND", "cpu")
        if backend == "auto":
            backend = "cpu"
        if backend != "cpu":
            raise GenieError(f"genie: backend '{backend}' is not available in this build (available: cpu)")
        if threads is None:
            threads = int(os.environ.get("GENIE_THREADS", "0") or 0)
        self.executor = _C.Executor(backend, threads)
        self.mode = "embedded"
        self.backend = backend
        self.threads = threads
        return self.info()

    def info(self):
        return {"mode": self.mode, "backend": self.backend, "executors": 1,
                "threads": self.threads or os.cpu_count()}

    # ---- sessions ----------------------------------------------------------
    def new_session(self):
        self.init()
        self._next_session += 1
        return self._next_session

    def bind_session(self, session, values):
        """Make the executor objects behind `values` (resident) owned by `session`."""
        # Objects the program dropped since the last request (e.g. the previous
        # step's KV tensors) are freed first, so the session owns exactly its
        # current state.
        self._send_frees()
        ids = [v.uid for v in values if v.state == RESIDENT]
        if ids:
            self.executor.bind_session(session, ids)

    def end_session(self, session):
        """Free everything the session owns on the executor now."""
        if self.executor is not None:
            self._send_frees()
            self.executor.end_session(session)

    def session_info(self, session):
        return self.executor.session_info(session)

    # ---- weights -----------------------------------------------------------
    def register_weight(self, v):
        """Make sure weight `v` is on the executor; count a cache hit if it was."""
        ex = self.executor
        if v.fp in self.weights_registered or ex.has_weight(v.fp):
            self.counters["weight_cache_hits"] += 1
        else:
            if v.host._version != v.host_version:
                raise GenieError(f"genie: weight {v.name} was modified in place on the CPU after "
                                 "being moved to remote_accelerator; move the module again")
            h = v.host
            ex.register_weight(v.fp, TORCH_TO_CODE[h.dtype], tuple(h.shape), h.data_ptr(), v.name)
            self.counters["weights_registered"] += 1
            self.counters["weight_bytes_sent"] += h.numel() * h.element_size()
        self.weights_registered.add(v.fp)

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
        if value.state in (HOST, WEIGHT):
            out = value.host
        elif value.state == PENDING:
            self.flush([value])
            out = value.cpu_cache
        else:
            self.init()
            self._send_frees()
            out = _to_torch(self.executor.fetch(value.uid))
            self.counters["output_bytes_received"] += out.numel() * out.element_size()
        meta = value.meta
        if tuple(out.shape) != tuple(meta.shape):
            out = out.reshape(meta.shape)
        value.cpu_cache = out
        return out

    def _send_frees(self):
        q = Value.free_queue
        if q:
            ids, q[:] = list(q), []
            self.executor.free(ids)
            self.counters["objects_freed"] += len(ids)

    def compile_request(self, targets):
        """Encode the pending program as one request without running it.

        Returns (srg_bytes, inputs, keep) for ``executor.run``; the targets are the
        request's outputs.  Used by benchmarks to time the executor alone; the
        pending program is consumed and the targets stay unmaterialised.
        """
        self.init()
        self._send_frees()
        g, host_inputs, produced, ids, sources = self.program.build(targets, self.register_weight)
        for v in targets:
            g.mark_output(ids[id(v)], True, 0)
        inputs = [(TORCH_TO_CODE[h.dtype], tuple(h.shape), h.data_ptr()) for h in host_inputs]
        # The caller holds `keep` while it reuses the request: it pins the host
        # buffers and the resident objects the graph reads.
        return g.encode(), inputs, (host_inputs, sources)

    def flush(self, targets=()):
        """Run every pending node; `targets` get their CPU copies cached."""
        if not self.program.nodes:
            return
        self.init()
        t0 = time.perf_counter()
        # Frees queued *before* this graph was built are safe to send now;
        # values that die while it is built (inputs only the pending nodes
        # referenced) are still read by it and are freed with the next request.
        self._send_frees()
        g, host_inputs, produced, ids, _ = self.program.build(targets, self.register_weight)
        target_ids = {ids[id(v)] for v in targets}
        kept = []
        for wr, sid in produced:
            v = wr()
            if v is not None:
                g.mark_output(sid, sid in target_ids, v.uid)
                kept.append((v, sid))
        for v in targets:
            sid = ids[id(v)]
            if not any(s == sid for _, s in kept):
                g.mark_output(sid, True, 0)
        srg = g.encode()
        self.last_srg = srg
        inputs = [(TORCH_TO_CODE[h.dtype], tuple(h.shape), h.data_ptr()) for h in host_inputs]
        outs = self.executor.run(srg, inputs)
        # Results: outputs come back in value-id order.
        out_sids = sorted(target_ids)
        by_sid = dict(zip(out_sids, (_to_torch(o) for o in outs)))
        for v, sid in kept:
            v.state = RESIDENT
            v.node = None
            v.host = None
        for v in targets:
            v.cpu_cache = by_sid[ids[id(v)]]
        c = self.counters
        c["flushes"] += 1
        c["nodes_sent"] += g.n_nodes
        c["srg_bytes_sent"] += len(srg)
        c["input_bytes_sent"] += sum(h.numel() * h.element_size() for h in host_inputs)
        c["output_bytes_received"] += sum(len(o[2]) for o in outs)
        c["flush_s"] += time.perf_counter() - t0


def _to_torch(out):
    code, shape, data = out
    dtype = CODE_TO_TORCH[code]
    if len(data) == 0:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(data, dtype=dtype).reshape(shape)


RUNTIME = Runtime()

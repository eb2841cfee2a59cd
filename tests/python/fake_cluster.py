"""A fake ``genie._C.Cluster`` for the Python tests: the executor ranks are
embedded ``_C.Executor`` instances in this process.

It implements the exact interface of the C cluster (docs/architecture.md,
"Distributed mode") so the driver runtime runs its distributed code path
unchanged: ranks 1..N grouped by a phase spec ("prefill:2,decode:1"),
``submit`` runs the request at once and keeps its result until ``wait``,
and ``handoff`` moves objects executor to executor with ``fetch`` on the
source, ``Executor.put_object`` on the destination and ``free`` on the
source, never through the runtime.

Bytes on the driver's links are counted as the transport would put them on
the wire (docs/wire-protocol.md): a 32-byte header per message, plus the
payload, in which a tensor is a 16 + 8 * ndim byte header and its data.
There is no plan cache (every RUN carries its SRG), so "plan_cache_hits" is
always 0.  Handoff bytes go between ranks and are counted per rank
("kv_bytes_out" / "kv_bytes_in"), not on the driver's links.

Fault injection: ``kill(rank)`` makes every later call about that rank
raise ``genie.ExecutorLostError``, including ``wait`` for requests it had
accepted; ``lose_after={rank: n}`` kills a rank once it accepted n requests.
"""

import contextlib
import os
import time

import torch

from genie import _C, ExecutorLostError, GenieError
from genie._dtypes import CODE_TO_TORCH

HDR = 32        # wire header bytes (genie_wire_hdr_t)


def _tensor_bytes(shape, nbytes):
    return 16 + 8 * len(shape) + nbytes


class FakeCluster:
    def __init__(self, spec="prefill:2,decode:1", threads=1, lose_after=None):
        self._execs = {}
        self._info = []
        rank = 1
        for name, n in _C.parse_phases(spec):
            for i in range(n):
                self._execs[rank] = _C.Executor("cpu", threads)
                self._info.append(dict(rank=rank, phase=name, slice=i, host="fake",
                                       pid=os.getpid()))
                rank += 1
        self.threads = threads
        self._results = {}            # ticket -> (rank, outputs, error)
        self._next = 0
        self.links = {r: dict(bytes_sent=0, bytes_received=0, messages=0) for r in self._execs}
        self.extra = {r: dict(kv_bytes_in=0, kv_bytes_out=0, handoffs_in=0, handoffs_out=0)
                      for r in self._execs}
        self.accepted = {r: 0 for r in self._execs}     # requests submitted per rank
        self.handoffs = []            # (src, dst, session, ids, bytes)
        self.lost = {}                # rank -> reason
        self.lose_after = dict(lose_after or {})
        self.closed = False

    # ---- test controls ---------------------------------------------------
    def kill(self, rank, reason="killed by the test"):
        self.lost[rank] = reason

    def totals(self):
        """Bytes on all the driver's links together (sent + received)."""
        return sum(l["bytes_sent"] + l["bytes_received"] for l in self.links.values())

    # ---- helpers -----------------------------------------------------------
    def _ex(self, rank):
        if self.closed:
            raise GenieError("genie: the cluster is closed")
        if rank in self.lost:
            raise ExecutorLostError(f"genie: executor rank {rank} was lost: {self.lost[rank]}")
        ex = self._execs.get(rank)
        if ex is None:
            raise GenieError(f"genie: no executor rank {rank}")
        return ex

    def _count(self, rank, sent, received, messages=2):
        link = self.links[rank]
        link["bytes_sent"] += sent
        link["bytes_received"] += received
        link["messages"] += messages

    # ---- the _C.Cluster interface -------------------------------------------
    def executors(self):
        return [dict(i) for i in self._info]

    def register_weight(self, rank, fp, code, shape, ptr, name):
        ex = self._ex(rank)
        ex.register_weight(fp, code, shape, ptr, name)
        nbytes = int(torch.Size(shape).numel()) * _C_ELSIZE[code]
        self._count(rank, HDR + 8 + 4 + len(name) + _tensor_bytes(shape, nbytes), HDR)

    def submit(self, rank, srg, inputs):
        ex = self._ex(rank)
        sent = HDR + 4 + len(srg) + 4
        for code, shape, _ in inputs:
            sent += _tensor_bytes(shape, int(torch.Size(shape).numel()) * _C_ELSIZE[code])
        self._count(rank, sent, 0, messages=1)
        self._next += 1
        try:
            self._results[self._next] = (rank, ex.run(srg, inputs), None)
        except GenieError as e:
            self._results[self._next] = (rank, None, e)
        self.accepted[rank] += 1
        if self.lose_after.get(rank) == self.accepted[rank]:
            self.kill(rank, f"lost after {self.accepted[rank]} requests (lose_after)")
        return self._next

    def wait(self, ticket):
        rank, outs, err = self._results.pop(ticket)
        self._ex(rank)
        if err is not None:
            self._count(rank, 0, HDR + len(str(err)), messages=1)
            raise err
        self._count(rank, 0, HDR + 8 + 4 + sum(_tensor_bytes(o[1], len(o[2])) for o in outs),
                    messages=1)
        return outs

    def run(self, rank, srg, inputs):
        return self.wait(self.submit(rank, srg, inputs))

    def free(self, rank, ids):
        self._ex(rank).free(list(ids))
        self._count(rank, HDR + 4 + 8 * len(ids), 0, messages=1)

    def fetch(self, rank, object_id):
        out = self._ex(rank).fetch(object_id)
        self._count(rank, HDR + 8, HDR + _tensor_bytes(out[1], len(out[2])))
        return out

    def bind_session(self, rank, session, ids):
        self._ex(rank).bind_session(session, list(ids))
        self._count(rank, HDR + 8 + 4 + 8 * len(ids), HDR)

    def end_session(self, rank, session):
        n = self._ex(rank).end_session(session)
        self._count(rank, HDR + 8, HDR + 4)
        return n

    def session_info(self, rank, session):
        info = self._ex(rank).session_info(session)
        self._count(rank, HDR + 8, HDR + 12)
        return info

    def handoff(self, src, dst, session, ids):
        s, d = self._ex(src), self._ex(dst)
        t0 = time.perf_counter()
        moved = 0
        for object_id in ids:
            code, shape, buf = s.fetch(object_id)
            ptr = torch.frombuffer(buf, dtype=torch.uint8).data_ptr() if len(buf) else 0
            d.put_object(object_id, session, code, shape, ptr)
            moved += len(buf)
        s.free(list(ids))
        seconds = time.perf_counter() - t0
        self._count(src, HDR + 8 + 4 + 4 + 8 * len(ids), HDR + 16)
        self.extra[src]["kv_bytes_out"] += moved
        self.extra[src]["handoffs_out"] += 1
        self.extra[dst]["kv_bytes_in"] += moved
        self.extra[dst]["handoffs_in"] += 1
        self.handoffs.append((src, dst, session, list(ids), moved))
        return dict(bytes=moved, seconds=seconds)

    def stats(self, rank):
        st = self._ex(rank).stats()
        st.update(self.extra[rank])
        st["threads"] = self.threads
        st["plan_cache_hits"] = 0
        self._count(rank, HDR, HDR + 512)
        return st

    def link_stats(self):
        return {r: dict(l) for r, l in self.links.items()}

    def close(self):
        self.closed = True
        self._execs = {}


# dtype code -> element size
_C_ELSIZE = {code: torch.empty((), dtype=dt).element_size() for code, dt in CODE_TO_TORCH.items()}


@contextlib.contextmanager
def distributed(spec="prefill:2,decode:1", kv_mode="colocated", **kw):
    """Run the block with the global runtime driving a FakeCluster; the
    runtime is closed afterwards (the next request starts embedded again)."""
    from genie._runtime import RUNTIME

    RUNTIME.close()
    fake = FakeCluster(spec, **kw)
    RUNTIME.init(cluster=fake, kv_mode=kv_mode)
    try:
        yield fake
    finally:
        RUNTIME.close()

"""Lazy values and pending nodes, and the flush that turns them into an SRG.

Every tensor on ``remote_accelerator`` is a thin ``RemoteTensor`` pointing at a
``Value``.  A Value is in one of six states:

  PENDING   produced by a captured node that has not run yet,
  HOST      data still on the driver (a CPU tensor moved to the device),
  WEIGHT    a persistent weight registered on the executor by fingerprint,
  INFLIGHT  its request was submitted and has not been collected yet
            (``req`` is the request; the object will be ``uid``),
  RESIDENT  computed and kept on the executor under object id ``uid``,
  FAILED    its request failed (``req`` is the error); using it raises.

Nothing executes until something needs bytes on the host (``.cpu()``,
``.item()``, ``.tolist()``, ``.numpy()``, printing).  Then ``flush`` encodes all
pending nodes into one SRG.  Which results to keep on the executor is decided
by liveness: after the graph is built, the driver drops its own references to
the pending nodes; every produced Value that is still alive is referenced by the
user's program (a tensor, a KV cache, ...) and is kept resident, everything else
is freed on the executor right after its last consumer.  When a resident Value
is garbage-collected its uid is queued and freed with the next request.
"""

import weakref

PENDING, HOST, WEIGHT, RESIDENT, INFLIGHT, FAILED = range(6)

# SRG enums (runtime/include/genie/srg.h)
VAL_NODE, VAL_INPUT, VAL_WEIGHT, VAL_RESIDENT = range(4)
RES_ACTIVATION, RES_WEIGHT, RES_KV, RES_GRADIENT = range(4)
PHASES = ["unknown", "forward", "llm_prefill", "llm_decode", "vision_encoding",
          "vision_decoding", "multimodal_fusion", "training"]
MODALITIES = ["none", "vision", "text", "audio", "fusion"]


class Value:
    """One tensor of the lazy program (see module docstring)."""

    __slots__ = ("uid", "meta", "state", "node", "out_idx", "host", "host_version",
                 "fp", "name", "residency", "view_of", "views", "cpu_cache", "req",
                 "__weakref__")

    _next_uid = 1
    free_queue = []          # uids of RESIDENT values that died
    host_epoch = 0           # bumped whenever a HOST value is created

    def __init__(self, meta, state, residency=RES_ACTIVATION):
        self.uid = Value._next_uid
        Value._next_uid += 1
        self.meta = meta             # meta tensor: shape, strides, dtype
        self.state = state
        self.node = None             # PENDING: producing Node
        self.out_idx = 0
        self.host = None             # HOST/WEIGHT: CPU tensor (contiguous)
        self.host_version = 0
        self.fp = 0                  # WEIGHT: fingerprint
        self.name = ""
        self.residency = residency
        self.view_of = None          # Value this one is a view of (in-place checks)
        self.views = None            # weakrefs to Values that are views of this one
        self.cpu_cache = None        # last materialised CPU copy
        self.req = None              # INFLIGHT: producing request; FAILED: the error

    @property
    def nbytes(self):
        return self.meta.numel() * self.meta.element_size()

    def __del__(self):
        # An INFLIGHT value's object will exist once its request ran; the
        # runtime holds the free back until then.
        if self.state == RESIDENT or self.state == INFLIGHT:
            Value.free_queue.append(self.uid)


class Node:
    """A captured op waiting to run.  Holds its inputs strongly and its outputs
    weakly, so that outputs nobody references can be dropped."""

    __slots__ = ("op", "inputs", "attrs", "outs", "out_meta", "phase", "modality",
                 "residency", "module_path", "block")

    def __init__(self, op, inputs, attrs, phase, modality, module_path, block=0):
        self.op = op
        self.inputs = inputs         # list of Value or None
        self.attrs = attrs
        self.outs = []               # weakrefs to output Values
        self.out_meta = []           # (dtype code, shape) per output
        self.phase = phase
        self.modality = modality
        self.residency = RES_ACTIVATION
        self.module_path = module_path
        self.block = block           # genie_block_t: attention, mlp, conv, ...


class PendingProgram:
    """The nodes captured since the last flush, in program (topological) order."""

    def __init__(self):
        self.nodes = []
        self.captured_ops = 0

    def add(self, node, metas):
        from ._dtypes import code_of

        outs = []
        for i, m in enumerate(metas):
            v = Value(m, PENDING)
            v.node = node
            v.out_idx = i
            outs.append(v)
            node.outs.append(weakref.ref(v))
            node.out_meta.append((code_of(m.dtype, f"output of {node.module_path or 'op'}"),
                                  tuple(m.shape)))
        self.nodes.append(node)
        self.captured_ops += 1
        return outs

    def build(self, targets, register_weight):
        """Encode pending nodes (and the sources they read) into an SRG.

        Returns (graph, host_inputs, produced, ids, sources, phases): produced
        lists (weakref, srg id) for every value a node produced or a HOST
        source that was uploaded, so the caller can mark the survivors as kept;
        ids maps id(Value) -> srg id for the values alive during the build;
        sources are the source Values the graph reads (the caller must drop
        them before deciding what is kept); phases counts the nodes per phase
        index.  `register_weight(v)` is called once per weight the graph reads.
        """
        from . import _C
        from ._dtypes import code_of

        nodes, self.nodes = self.nodes, []
        # Dead-node elimination: consumers hold their inputs strongly, so a node
        # whose outputs are all unreachable has no consumer and no user.  Walking
        # backwards and dropping such nodes' inputs lets whole dead chains go
        # (e.g. the placeholder a copy into a fresh tensor replaced).
        live = []
        for n in reversed(nodes):
            if any(wr() is not None for wr in n.outs):
                live.append(n)
            else:
                n.inputs = None
        nodes = live[::-1]
        del live
        g = _C.Graph()
        ids = {}            # id(Value) -> srg value id (only for Values kept alive here)
        host_inputs = []    # CPU tensors, slot = index
        produced = []       # (weakref(Value), srg id)
        keep_alive = []     # Values we reference while building

        def source(v):
            sid = ids.get(id(v))
            if sid is not None:
                return sid
            dt = code_of(v.meta.dtype, v.name or "input")
            shape = tuple(v.meta.shape)
            if v.state == HOST:
                if v.host._version != v.host_version:
                    from ._errors import GenieError
                    raise GenieError(
                        "genie: a CPU tensor moved to remote_accelerator was modified in place "
                        "before it was used; move it again after modifying it")
                sid = g.add_source(VAL_INPUT, dt, shape, v.residency, len(host_inputs), v.name)
                host_inputs.append(v.host)
                produced.append((weakref.ref(v), sid))
            elif v.state == WEIGHT:
                register_weight(v)      # sends it only the first time
                sid = g.add_source(VAL_WEIGHT, dt, shape, RES_WEIGHT, v.fp, v.name)
            elif v.state == RESIDENT or v.state == INFLIGHT:
                # An INFLIGHT source is read by id; the runtime waits for its
                # request before submitting this one.
                sid = g.add_source(VAL_RESIDENT, dt, shape, v.residency, v.uid, v.name)
            elif v.state == FAILED:
                from ._errors import GenieError
                raise GenieError(f"genie: a tensor this computation reads was never computed: {v.req}")
            else:
                raise AssertionError("pending value outside the pending program")
            ids[id(v)] = sid
            keep_alive.append(v)
            return sid

        phases = [0] * len(PHASES)
        for n in nodes:
            phases[n.phase] += 1
            ins = [None if v is None else
                   (ids[id(v)] if v.state == PENDING else source(v)) for v in n.inputs]
            residency = n.residency
            for wr in n.outs:
                v = wr()
                if v is not None and v.residency == RES_KV:
                    residency = RES_KV
            out_ids = g.add_node(n.op, ins, n.attrs, n.out_meta, n.phase, n.modality,
                                 residency, n.module_path, n.block)
            for wr, sid in zip(n.outs, out_ids):
                v = wr()
                if v is not None:
                    ids[id(v)] = sid
                    keep_alive.append(v)
                produced.append((wr, sid))
        for v in targets:
            if v.state != PENDING:
                source(v)
        # Drop every reference the driver holds to the pending program; what
        # survives is referenced by the user's program.
        sources = [v for v in keep_alive if v.state != PENDING]
        for n in nodes:
            n.inputs = None
        nodes = keep_alive = None       # (source() closes over keep_alive)
        return g, host_inputs, produced, ids, sources, phases

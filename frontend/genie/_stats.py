"""``genie.get_stats()``: what ran where, how long, and how many bytes moved."""

import os

from ._checkpoint import CHECKPOINTS
from ._runtime import RUNTIME

# Executor counters reported as they are (cluster.stats(rank) / Executor.stats()).
_EXEC_KEYS = ("requests", "nodes_run", "weights", "weight_bytes", "peak_activation_bytes",
              "sessions", "session_bytes", "kv_bytes_in", "kv_bytes_out", "handoffs_in",
              "handoffs_out", "plan_cache_hits", "checkpoints", "checkpoint_bytes",
              "checkpoint_s", "restores", "restore_bytes")


def get_stats():
    """A JSON-serialisable dict of counters.

    mode        "embedded" (executor in this process), "distributed" (executor
                ranks started by a launcher) or "not started"
    executors   one entry per executor: rank, phase group, slice, host, pid,
                backend, requests, nodes, compute seconds (total and per phase),
                resident bytes, sessions, KV bytes in/out (handoffs); plus what
                the driver placed there ("driver_requests" per request phase,
                "weights_registered")
    bytes       SRG bytes, input bytes, output bytes and weight bytes sent
    weights     registrations, and cache hits: weight references in requests that
                an earlier registration served without sending the weight again
    time        capture seconds (Python), flush seconds (submit to result)
    links       driver <-> rank bytes and messages, counted at the transport
                (distributed mode; empty when embedded)
    bytes_per_phase   the links' bytes summed per phase group
    time_per_phase    per request phase: requests, driver wall seconds (submit to
                result) and executor compute seconds (all executors)
    requests_per_executor  requests the driver placed on each rank
    sessions    per generation session: prefill/decode rank, KV bytes moved
                between executors (transport count), KV cache bytes at handoff,
                handoffs
    checkpoint  checkpoint directory and policy, epochs written (bytes, driver
                and executor seconds), sessions restored from another job
                (seconds, bytes, fallbacks to older epochs) and in-job
                recoveries (from a checkpoint, steps and prefills replayed)
    placement   how requests were placed (resident affinity, least loaded, phase
                fallbacks, objects handed between ranks to join a request)
    """
    r = RUNTIME
    c = dict(r.counters)
    stats = {
        "mode": r.mode or "not started",
        "backend": r.backend,
        "kv_mode": r.kv_mode,
        "executors": [],
        "bytes": {
            "srg": c["srg_bytes_sent"],
            "inputs": c["input_bytes_sent"],
            "outputs": c["output_bytes_received"],
            "weights": c["weight_bytes_sent"],
        },
        "weights": {"registered": c["weights_registered"], "cache_hits": c["weight_cache_hits"]},
        "requests": c["flushes"],
        "nodes_sent": c["nodes_sent"],
        "ops_captured": r.program.captured_ops,
        "objects_freed": c["objects_freed"],
        "time": {"capture_s": round(c["capture_s"], 6), "flush_s": round(c["flush_s"], 6)},
        "links": {},
        "bytes_per_phase": {},
        "time_per_phase": {},
        "requests_per_executor": {},
        "sessions": {sid: s.as_dict() for sid, s in r.sessions.items()
                     if sid != r.transit_session},
        "placement": dict(r.placement, by_group=dict(r.placement["by_group"])),
        "checkpoint": CHECKPOINTS.as_dict(),
    }
    if r.cluster is None:
        return stats
    compute = {}
    for rank, rk in r.ranks.items():
        entry = {"rank": rank, "role": r.mode, "phase": rk.group, "slice": rk.slice,
                 "host": rk.host, "pid": rk.pid, "lost": rk.lost, "spare": rk.spare,
                 "driver_requests": dict(rk.phase_requests),
                 "weights_registered": len(rk.weights)}
        stats["requests_per_executor"][rank] = rk.requests
        if rk.lost is None:
            e = r.cluster.stats(rank)
            entry.update({k: e[k] for k in _EXEC_KEYS if k in e})
            entry["backend"] = e.get("backend")
            entry["threads"] = e.get("threads", r.threads or os.cpu_count())
            phase_s = e.get("phase_compute_s", {})
            entry["compute_s"] = round(e.get("compute_s", 0.0), 6)
            entry["phase_compute_s"] = {k: round(v, 6) for k, v in phase_s.items() if v}
            entry["resident_objects"] = e.get("residents")
            entry["resident_bytes"] = e.get("resident_bytes")
            for k, v in phase_s.items():
                compute[k] = compute.get(k, 0.0) + v
        if r.mode == "embedded":
            entry["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES")
        elif rk.lost is None:
            # As the executor saw it (srun --genie-phases narrows it per task);
            # None where it was not set.
            entry["cuda_visible_devices"] = e.get("cuda_visible_devices")
        stats["executors"].append(entry)
    links = r.cluster.link_stats()
    stats["links"] = {rank: dict(l) for rank, l in sorted(links.items())}
    for rank, l in links.items():
        rk = r.ranks.get(rank)
        group = rk.group if rk is not None else "?"
        b = stats["bytes_per_phase"].setdefault(group, {"bytes_sent": 0, "bytes_received": 0,
                                                        "messages": 0})
        for k in b:
            b[k] += int(l.get(k, 0))
    for phase in sorted(set(r.phase_time) | {k for k, v in compute.items() if v}):
        n, wall = r.phase_time.get(phase, (0, 0.0))
        stats["time_per_phase"][phase] = {"requests": n, "driver_wall_s": round(wall, 6),
                                          "executor_compute_s": round(compute.get(phase, 0.0), 6)}
    return stats

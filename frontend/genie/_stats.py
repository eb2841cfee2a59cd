"""``genie.get_stats()``: what ran where, how long, and how many bytes moved."""

import os

from ._runtime import RUNTIME


def get_stats():
    """A JSON-serialisable dict of counters.

    mode        "embedded" (executor in this process) or the launcher's mode
    executors   one entry per executor: rank, phase, backend, requests, nodes,
                compute seconds (total and per phase), resident bytes
    bytes       SRG bytes, input bytes, output bytes and weight bytes sent
    weights     registrations, and cache hits: weight references in requests that
                an earlier registration served without sending the weight again
    time        capture seconds (Python), flush seconds (end-to-end runs)
    """
    r = RUNTIME
    c = dict(r.counters)
    stats = {
        "mode": r.mode or "not started",
        "backend": r.backend,
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
    }
    if r.executor is not None:
        e = r.executor.stats()
        stats["executors"].append({
            "rank": 0,
            "role": r.mode,
            "phase": "all",
            "backend": e["backend"],
            "threads": r.threads or os.cpu_count(),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "requests": e["requests"],
            "nodes_run": e["nodes_run"],
            "compute_s": round(e["compute_s"], 6),
            "phase_compute_s": {k: round(v, 6) for k, v in e["phase_compute_s"].items() if v},
            "weights": e["weights"],
            "weight_bytes": e["weight_bytes"],
            "resident_objects": e["residents"],
            "resident_bytes": e["resident_bytes"],
            "peak_activation_bytes": e["peak_activation_bytes"],
            "sessions": e["sessions"],
            "session_bytes": e["session_bytes"],
        })
    return stats

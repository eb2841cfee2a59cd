"""Genie: semantic-driven GPU disaggregation, Python frontend.

``import genie`` adds the ``remote_accelerator`` device to PyTorch.  Models and
tensors moved there are captured into a Semantically Rich Graph instead of
being executed; materialising a result (``.cpu()``, ``.item()``, ``.tolist()``,
``.numpy()``, printing) ships the graph to a Genie executor, which runs it in C.

Without a launcher the executor runs inside this process (``mode: embedded``,
CPU backend); ``genie.init()`` and ``genie.get_stats()`` say so.  Started by
genie-launch or ``srun --genie-phases=...``, the process with
``GENIE_ROLE=driver`` runs the program and talks to executor ranks
(``mode: distributed``); in the executor ranks (``GENIE_ROLE=executor``)
``import genie`` runs the executor's main loop and never returns.
"""

import os as _os

if _os.environ.get("GENIE_ROLE") == "executor":
    # An executor rank: the same command line as the driver's, but this
    # process serves requests until the driver shuts it down.  Nothing else
    # of the package (torch included) is loaded.
    import sys as _sys

    from . import _C

    _main = getattr(_C, "executor_main", None)
    if _main is None:
        _sys.stderr.write("genie: GENIE_ROLE=executor, but this build of genie._C has no "
                          "executor (built without MPI/UCX)\n")
        _sys.stderr.flush()
        _os._exit(1)
    try:
        _rc = _main()
    except Exception as _e:          # one line, no stack noise (style.md)
        _sys.stderr.write(f"{_e if str(_e).startswith('genie:') else f'genie: executor: {_e}'}\n")
        _rc = 1
    _sys.stdout.flush()
    _sys.stderr.flush()
    _os._exit(_rc if isinstance(_rc, int) else 0)

from . import _device  # noqa: F401,E402  (registers the device first)
from ._annotate import phase
from ._capture import RemoteTensor, capture
from ._checkpoint import restore
from ._errors import ExecutorLostError, GenieError, UnsupportedOperationError
from ._generate import generate, generate_many
from ._runtime import RUNTIME as _RUNTIME
from ._stats import get_stats

__version__ = "0.1.0"

if _os.environ.get("GENIE_ROLE") == "driver":
    import atexit as _atexit

    _atexit.register(_RUNTIME.release_unused_executors)

DEVICE = _device.DEVICE


def init(backend=None, threads=None):
    """Start (or describe) the executor connection.

    backend: "cpu" (default), "cuda" or "auto"; threads: executor threads
    (0 = all cores).  Under a launcher both come from it (GENIE_BACKEND,
    GENIE_THREADS).  Returns a dict with "mode" ("embedded" without a
    launcher, "distributed" with one), "backend", "executors" (how many),
    "threads", "phases" (group -> ranks) and "kv_mode".
    """
    return _RUNTIME.init(backend=backend, threads=threads)


def last_srg_json():
    """JSON dump of the most recent SRG sent to an executor (for humans)."""
    from . import _C
    if not _RUNTIME.last_srg:
        raise GenieError("genie: no SRG has been sent yet")
    return _C.decode_json(_RUNTIME.last_srg)


def synchronize():
    """Run all pending captured work now and wait for every request in
    flight (results stay on the executors)."""
    _RUNTIME.synchronize()


__all__ = ["DEVICE", "ExecutorLostError", "GenieError", "RemoteTensor",
           "UnsupportedOperationError", "capture", "generate", "generate_many", "get_stats",
           "init", "last_srg_json", "phase", "restore", "synchronize"]

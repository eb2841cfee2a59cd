"""Genie: semantic-driven GPU disaggregation, Python frontend.

``import genie`` adds the ``remote_accelerator`` device to PyTorch.  Models and
tensors moved there are captured into a Semantically Rich Graph instead of
being executed; materialising a result (``.cpu()``, ``.item()``, ``.tolist()``,
``.numpy()``, printing) ships the graph to a Genie executor, which runs it in C.

Without a launcher the executor runs inside this process (``mode: embedded``,
CPU backend); ``genie.init()`` and ``genie.get_stats()`` say so.
"""

from . import _device  # noqa: F401  (registers the device first)
from ._annotate import phase
from ._capture import RemoteTensor, capture
from ._errors import GenieError, UnsupportedOperationError
from ._generate import generate
from ._runtime import RUNTIME as _RUNTIME
from ._stats import get_stats

__version__ = "0.1.0"

DEVICE = _device.DEVICE


def init(backend=None, threads=None):
    """Start (or describe) the executor connection.

    backend: "cpu" (default), "cuda" or "auto"; threads: executor threads
    (0 = all cores).  Returns a dict with "mode" ("embedded" without a
    launcher), "backend", "executors" and "threads".
    """
    return _RUNTIME.init(backend=backend, threads=threads)


def last_srg_json():
    """JSON dump of the most recent SRG sent to an executor (for humans)."""
    from . import _C
    if not _RUNTIME.last_srg:
        raise GenieError("genie: no SRG has been sent yet")
    return _C.decode_json(_RUNTIME.last_srg)


def synchronize():
    """Run all pending captured work now (results stay on the executor)."""
    _RUNTIME.flush(())


__all__ = ["DEVICE", "GenieError", "RemoteTensor", "UnsupportedOperationError", "capture",
           "generate", "get_stats", "init", "last_srg_json", "phase", "synchronize"]

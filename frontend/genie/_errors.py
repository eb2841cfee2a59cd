"""Exceptions raised by Genie.  Every message starts with ``genie:`` and is one line."""

from . import _C
from ._C import GenieError


class UnsupportedOperationError(GenieError):
    """An operation (or dtype) that the Genie executor cannot run remotely.

    Genie never falls back to running it locally: the error names the ATen op and
    the module path that issued it, so the user can see exactly what is missing.
    """


class _ExecutorLostError(GenieError):
    """An executor rank died (or its connection did): the request it was
    running failed, and the objects it held are gone."""


# The distributed build's extension raises its own class (a GenieError
# subclass); without MPI/UCX nothing raises it, but code can still catch it.
ExecutorLostError = getattr(_C, "ExecutorLostError", _ExecutorLostError)


__all__ = ["ExecutorLostError", "GenieError", "UnsupportedOperationError"]

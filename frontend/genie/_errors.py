"""Exceptions raised by Genie.  Every message starts with ``genie:`` and is one line."""

from ._C import GenieError


class UnsupportedOperationError(GenieError):
    """An operation (or dtype) that the Genie executor cannot run remotely.

    Genie never falls back to running it locally: the error names the ATen op and
    the module path that issued it, so the user can see exactly what is missing.
    """


__all__ = ["GenieError", "UnsupportedOperationError"]

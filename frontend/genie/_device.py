"""The ``remote_accelerator`` device.

PyTorch's PrivateUse1 dispatch key is renamed to ``remote_accelerator`` and set
up as a Python backend (device guard, hooks, device module), so that
``torch.device("remote_accelerator:0")``, ``module.to(...)`` and tensor
factories with ``device=`` work unchanged.  Tensors on this device are
``RemoteTensor`` wrappers (``_capture.py``); the few kernels registered here for
the PrivateUse1 key are the ones PyTorch calls *below* the Python key:
allocation (``empty``) and host<->device copies made by ``torch.tensor(...,
device=...)``.
"""

import torch
from torch.utils.backend_registration import _setup_privateuseone_for_python_backend

DEVICE_TYPE = "remote_accelerator"

if torch._C._get_privateuse1_backend_name() != DEVICE_TYPE:
    _setup_privateuseone_for_python_backend(DEVICE_TYPE)

DEVICE = torch.device(f"{DEVICE_TYPE}:0")

_lib = torch.library.Library("aten", "IMPL")


def _empty(size, dtype=None, layout=None, device=None, pin_memory=None, memory_format=None):
    from ._capture import _full_node
    return _full_node(tuple(size), 0, dtype or torch.get_default_dtype())


def _empty_strided(size, stride, dtype=None, layout=None, device=None, pin_memory=None):
    return _empty(size, dtype)


def _copy_from(src, dst, non_blocking=False):
    from ._capture import RemoteTensor, _check_rebind, _rebind, host_value
    from ._runtime import RUNTIME

    if isinstance(dst, RemoteTensor) and not isinstance(src, RemoteTensor):
        _check_rebind(dst, "copy")
        data = src.detach().to(dst.dtype).expand(dst.shape)
        _rebind(dst, host_value(data))
        return dst
    if isinstance(src, RemoteTensor) and not isinstance(dst, RemoteTensor):
        dst.copy_(RUNTIME.materialize(src._value))
        return dst
    return dst.copy_(src)


_lib.impl("empty.memory_format", _empty, "PrivateUse1")
_lib.impl("empty_strided", _empty_strided, "PrivateUse1")
_lib.impl("_copy_from", _copy_from, "PrivateUse1")
